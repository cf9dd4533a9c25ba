//! The files the offline tools write into `--out`: the CSV tables, the PNG plots, and one
//! self-contained `report.html` per run (tables and plots inline, `html.rs`).
//! - backtest: `metrics.csv`, `forecasts.csv`, `per_series.csv`, `buckets.csv`,
//!   `plots/*.png`, `report.html`;
//! - simulate: `summary.csv`, `timeline.png`, `cost_vs_violations.png`, `report.html`;
//! - simulate `--frontier`: `frontier.csv`, `frontier.png`, `report.html`;
//! - tune: `trials.csv`, `best.yaml`, `frontier.png`, `convergence.png`, `report.html`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::backtest::{Backtest, Metrics};
use super::html::{Cell, Page, Table};
use super::plot::{panels_png, Band, Line, Panel};
use super::simulate::{Outcome, SimOptions};
use crate::config::format_duration;

/// Series plotted at most (the first ones of the input).
pub const MAX_PLOTS: usize = 8;

fn metric_cells(m: &Metrics) -> String {
    format!(
        "{:.6},{:.6},{:.4},{:.4},{:.4},{:.4},{:.4},{:.6}",
        m.mae, m.rmse, m.smape, m.mase, m.r2, m.coverage, m.width, m.under_weighted
    )
}

/// Creates `out` (and its parents).
fn create_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

/// Writes `text` to `out/name`.
fn write_file(out: &Path, name: &str, text: &str) -> Result<()> {
    let p = out.join(name);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}

/// Writes every report file into `out` (created): `metrics.csv`, `forecasts.csv`,
/// `per_series.csv`, `buckets.csv` (3 series or more), `skipped.txt` (when any was),
/// `plots/*.png` and `report.html` (the tables and plots on one page).
pub fn write_backtest(bt: &Backtest, out: &Path) -> Result<()> {
    create_dir(out)?;
    let write = |name: &str, text: String| write_file(out, name, &text);

    let table = bt.table();
    let mut csv =
        String::from("model,horizon,mae,rmse,smape,mase,r2,coverage,width,under_weighted\n");
    for (m, h, x) in &table {
        let _ = writeln!(csv, "{m},{},{}", bt.horizon_label(*h), metric_cells(x));
    }
    write("metrics.csv", csv)?;

    let mut csv = String::from("model,horizon,origin,target,yhat,lower,upper,actual,series,used\n");
    for r in &bt.rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{}",
            r.model,
            bt.horizon_label(r.horizon),
            bt.time_label(r.series, r.origin),
            bt.time_label(r.series, r.target),
            r.yhat,
            r.lower,
            r.upper,
            r.actual,
            csv_field(&bt.series[r.series].name),
            r.used.map_or("", |m| m.as_str())
        );
    }
    write("forecasts.csv", csv)?;

    let mut csv = String::from(
        "series,seasonality,volatility,trend,model,horizon,n,mae,rmse,smape,mase,r2,coverage,width,under_weighted\n",
    );
    for (m, h, s, x) in bt.per_series() {
        let info = &bt.series[s];
        let _ = writeln!(
            csv,
            "{},{:.4},{:.4},{:.4},{m},{},{},{}",
            csv_field(&info.name),
            info.traits.seasonality,
            info.traits.volatility,
            info.traits.trend,
            bt.horizon_label(h),
            x.n,
            metric_cells(&x)
        );
    }
    write("per_series.csv", csv)?;

    let buckets = bt.per_bucket();
    if !buckets.is_empty() {
        let mut csv = String::from(
            "trait,bucket,model,horizon,n,mae,rmse,smape,mase,r2,coverage,width,under_weighted\n",
        );
        for (t, b, m, h, x) in &buckets {
            let _ = writeln!(
                csv,
                "{t},{b},{m},{},{},{}",
                bt.horizon_label(*h),
                x.n,
                metric_cells(x)
            );
        }
        write("buckets.csv", csv)?;
    }

    if !bt.skipped.is_empty() {
        write("skipped.txt", bt.skipped.join("\n") + "\n")?;
    }
    let plots = plots(bt, &out.join("plots"))?;
    backtest_page(bt, &table, &buckets, &plots)?.write(&out.join("report.html"))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Buckets a plot shows at most (the end of the test split), so the lines stay readable.
pub const PLOT_BUCKETS: i64 = 720;

/// One PNG per series (the first [`MAX_PLOTS`]): per model, the actual values of the end of
/// the test split (at most [`PLOT_BUCKETS`]) and the forecast for the longest horizon at its
/// target time, with the band. Returns each file with a caption.
fn plots(bt: &Backtest, dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    create_dir(dir)?;
    let mut written = Vec::new();
    let h = bt.options.horizons.len().saturating_sub(1);
    for (si, s) in bt.series.iter().enumerate().take(MAX_PLOTS) {
        let end = s.first_bucket + s.values.len() as i64;
        let from = (s.test_start).max(end - PLOT_BUCKETS) - s.first_bucket;
        let actual: Vec<(f64, f64)> = s.values[from as usize..]
            .iter()
            .enumerate()
            .map(|(i, v)| ((from + i as i64) as f64, *v as f64))
            .collect();
        let mut panels = Vec::new();
        for (mi, m) in bt.options.models.iter().enumerate() {
            let mut rows: Vec<_> = bt
                .rows
                .iter()
                .filter(|r| {
                    r.series == si
                        && &r.model == m
                        && r.horizon == h
                        && r.target - s.first_bucket >= from
                })
                .collect();
            rows.sort_by_key(|r| r.target);
            let x = |r: &&super::backtest::ForecastRow| (r.target - s.first_bucket) as f64;
            panels.push(Panel {
                title: format!("{} — {m}, {} ahead", s.name, bt.horizon_label(h)),
                lines: vec![
                    Line {
                        label: "actual".into(),
                        points: actual.clone(),
                        color: 7,
                    },
                    Line {
                        label: format!("{m} yhat"),
                        points: rows.iter().map(|r| (x(r), r.yhat)).collect(),
                        color: mi,
                    },
                ],
                bands: vec![Band {
                    points: rows.iter().map(|r| (x(r), r.lower, r.upper)).collect(),
                    color: mi,
                }],
                scatter: false,
            });
        }
        let name: String = s
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{si:03}_{name}.png"));
        panels_png(&path, "step", &panels, 1400)?;
        written.push((
            path,
            format!(
                "{}: the actual values and each model's {} forecast with its band",
                s.name,
                bt.horizon_label(h)
            ),
        ));
    }
    Ok(written)
}

/// What `auto` used, as shares of its forecasts (`mstl 60.0%, lstm 40.0%`); `None` when
/// `auto` was not run.
fn auto_used(bt: &Backtest) -> Option<String> {
    let auto: Vec<_> = bt.rows.iter().filter(|r| r.model == "auto").collect();
    if auto.is_empty() {
        return None;
    }
    let mut used = std::collections::BTreeMap::<&str, usize>::new();
    for r in &auto {
        *used
            .entry(r.used.map_or("none", |m| m.as_str()))
            .or_default() += 1;
    }
    let share: Vec<String> = used
        .iter()
        .map(|(m, n)| format!("{m} {:.1}%", 100.0 * *n as f64 / auto.len() as f64))
        .collect();
    Some(share.join(", "))
}

/// The table printed to stdout (Markdown), then what `auto` used.
pub fn print_table(bt: &Backtest) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| model | horizon | n | MAE | RMSE | sMAPE % | MASE | R² | coverage | width | under-weighted |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (m, h, x) in bt.table() {
        let _ = writeln!(
            out,
            "| {m} | {} | {} | {:.4} | {:.4} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} |",
            bt.horizon_label(h),
            x.n,
            x.mae,
            x.rmse,
            x.smape,
            x.mase,
            x.r2,
            x.coverage,
            x.width,
            x.under_weighted
        );
    }
    let _ = writeln!(
        out,
        "\n{} series evaluated, {} skipped",
        bt.series.len(),
        bt.skipped.len()
    );
    if let Some(share) = auto_used(bt) {
        let _ = writeln!(out, "\nauto used: {share}");
    }
    out
}

/// The metric columns of the HTML tables, after the keys.
const METRIC_HEAD: [&str; 9] = [
    "n",
    "MAE",
    "RMSE",
    "sMAPE %",
    "MASE",
    "R²",
    "coverage",
    "width",
    "under-weighted",
];

/// One row's metric cells, with the precision of the printed table.
fn metric_html(x: &Metrics) -> [Cell; 9] {
    [
        Cell::int(x.n as u64),
        Cell::num(x.mae, 4),
        Cell::num(x.rmse, 4),
        Cell::num(x.smape, 2),
        Cell::num(x.mase, 3),
        Cell::num(x.r2, 3),
        Cell::num(x.coverage, 3),
        Cell::num(x.width, 3),
        Cell::num(x.under_weighted, 4),
    ]
}

/// Marks the best errors (lowest) and R² (highest) per `group` in a table whose metric
/// columns start at `first`. Coverage and width have no "best" on their own.
fn mark_metric_best(t: &mut Table, first: usize, group: &[usize]) {
    for (col, lower) in [
        (1, true),
        (2, true),
        (3, true),
        (4, true),
        (5, false),
        (8, true),
    ] {
        t.mark_best(first + col, group, lower);
    }
}

/// The first `n` of `names`, and how many more there are.
fn some_names(names: &[&str], n: usize) -> String {
    let mut s = names[..names.len().min(n)].join(", ");
    if names.len() > n {
        let _ = write!(s, " and {} more", names.len() - n);
    }
    s
}

/// What a backtest ran: its inputs and options.
fn backtest_facts(bt: &Backtest) -> Vec<(&'static str, String)> {
    let o = &bt.options;
    let list = |d: &[std::time::Duration]| {
        d.iter()
            .map(|d| format_duration(*d))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let names: Vec<&str> = bt.series.iter().map(|s| s.name.as_str()).collect();
    vec![
        (
            "series",
            format!(
                "{} evaluated, {} skipped: {}",
                bt.series.len(),
                bt.skipped.len(),
                some_names(&names, 6)
            ),
        ),
        ("models", o.models.join(", ")),
        ("horizons", list(&o.horizons)),
        ("step", format_duration(o.step)),
        (
            "history per origin (retention)",
            format_duration(o.retention),
        ),
        ("seasons", list(&o.seasons)),
        ("mstl refit every", format_duration(o.refit_every)),
        (
            "band quantiles",
            format!("{} to {}", o.quantiles.0, o.quantiles.1),
        ),
        (
            "origins",
            format!(
                "the last {:.0}% of each series, every {} step(s)",
                100.0 * o.test_fraction,
                o.stride
            ),
        ),
        (
            "LSTM model",
            o.lstm
                .as_ref()
                .map_or("built-in".to_string(), |p| p.display().to_string()),
        ),
    ]
}

type BucketRow = (&'static str, &'static str, String, usize, Metrics);

/// The HTML page of a backtest: what ran, the metrics table (best per horizon in bold),
/// the per-bucket table, the plots.
fn backtest_page(
    bt: &Backtest,
    table: &[(String, usize, Metrics)],
    buckets: &[BucketRow],
    plots: &[(PathBuf, String)],
) -> Result<Page> {
    let mut page = Page::new("promcast backtest");
    page.section("run", "What was run");
    page.facts(&backtest_facts(bt));
    page.section("metrics", "Accuracy per model and horizon");
    let mut head = vec!["model", "horizon"];
    head.extend(METRIC_HEAD);
    let mut t = Table::new(
        "metrics",
        "All series pooled (metrics.csv). Bold: the lowest error and the highest R² per horizon.",
        &head,
    );
    for (m, h, x) in table {
        let mut row = vec![Cell::text(m.as_str()), Cell::text(bt.horizon_label(*h))];
        row.extend(metric_html(x));
        t.rows.push(row);
    }
    mark_metric_best(&mut t, 2, &[1]);
    page.table(&t);
    if let Some(share) = auto_used(bt) {
        page.paragraph(&format!("auto used: {share}"));
    }
    page.section("buckets", "Per-bucket results");
    if buckets.is_empty() {
        page.paragraph(&format!(
            "Per-bucket results split the series at the terciles of each trait; they need at \
             least 3 series, and this run evaluated {}.",
            bt.series.len()
        ));
    } else {
        let mut head = vec!["trait", "bucket", "model", "horizon"];
        head.extend(METRIC_HEAD);
        let mut t = Table::new(
            "buckets",
            "Series split at the terciles of each trait (buckets.csv). Bold: the best per \
             trait, bucket and horizon.",
            &head,
        );
        for (tr, b, m, h, x) in buckets {
            let mut row = vec![
                Cell::text(*tr),
                Cell::text(*b),
                Cell::text(m.as_str()),
                Cell::text(bt.horizon_label(*h)),
            ];
            row.extend(metric_html(x));
            t.rows.push(row);
        }
        mark_metric_best(&mut t, 4, &[0, 1, 3]);
        page.table(&t);
    }
    page.section("plots", "Forecasts against the actual values");
    if bt.series.len() > plots.len() {
        page.paragraph(&format!(
            "The first {} of {} series (per_series.csv has them all).",
            plots.len(),
            bt.series.len()
        ));
    }
    for (path, caption) in plots {
        page.image_file(caption, path)?;
    }
    if !bt.skipped.is_empty() {
        page.section("skipped", "Skipped series");
        page.pre(&bt.skipped.join("\n"));
    }
    Ok(page)
}

/// Writes `series.csv`: `series,time,value,scale,test_start` per bucket of every evaluated
/// series (value empty for a gap; `time` and `test_start` labelled as `forecasts.csv`'s
/// `origin` and `target`; `scale` is the series' MASE denominator), for tools that fit other
/// models on the same origins (`bench/peers/`).
pub fn write_backtest_series(bt: &Backtest, out: &Path) -> Result<()> {
    let mut csv = String::from("series,time,value,scale,test_start\n");
    for (si, s) in bt.series.iter().enumerate() {
        let (name, start) = (csv_field(&s.name), bt.time_label(si, s.test_start));
        for (i, v) in s.values.iter().enumerate() {
            let time = bt.time_label(si, s.first_bucket + i as i64);
            let _ = write!(csv, "{name},{time},");
            if v.is_finite() {
                let _ = write!(csv, "{v}");
            }
            let _ = writeln!(csv, ",{},{start}", s.scale);
        }
    }
    write_file(out, "series.csv", &csv)
}

/// Writes `summary.csv`, `timeline.png`, `cost_vs_violations.png` and `report.html` (what
/// ran, the summary table and both plots) of a simulation of the trace `input`.
pub fn write_simulation(sim: &super::simulate::Simulation, input: &str, out: &Path) -> Result<()> {
    create_dir(out)?;
    let mut csv = String::from(
        "policy,violation_minutes,unserved,replica_minutes,overprovision,scaling_events\n",
    );
    for o in &sim.outcomes {
        let _ = writeln!(
            csv,
            "{},{:.2},{:.2},{:.2},{:.2},{}",
            o.policy,
            o.violation_minutes,
            o.unserved,
            o.replica_minutes,
            o.overprovision,
            o.scaling_events
        );
    }
    write_file(out, "summary.csv", &csv)?;
    // timeline: the last PLOT_BUCKETS of the evaluated part
    let t = &sim.timeline;
    let from = t.demand.len().saturating_sub(PLOT_BUCKETS as usize);
    let x = |i: usize| (t.first_bucket + i as i64) as f64;
    let mut lines = vec![Line {
        label: "demand".into(),
        points: (from..t.demand.len())
            .map(|i| (x(i), t.demand[i]))
            .collect(),
        color: 7,
    }];
    for (pi, o) in sim.outcomes.iter().enumerate() {
        lines.push(Line {
            label: format!("{} capacity", o.policy),
            points: (from..t.demand.len())
                .map(|i| (x(i), t.capacity[pi][i]))
                .collect(),
            color: pi,
        });
    }
    panels_png(
        &out.join("timeline.png"),
        "step",
        &[Panel {
            title: "demand and ready capacity per policy".into(),
            lines,
            bands: vec![],
            scatter: false,
        }],
        1400,
    )?;
    let points: Vec<Line> = sim
        .outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| Line {
            label: o.policy.clone(),
            points: vec![(o.replica_minutes, o.violation_minutes)],
            color: i,
        })
        .collect();
    panels_png(
        &out.join("cost_vs_violations.png"),
        "replica-minutes (cost)",
        &[Panel {
            title: "violation minutes vs replica-minutes, per policy".into(),
            lines: points,
            bands: vec![],
            scatter: true,
        }],
        900,
    )?;
    simulation_page(sim, input, out)?.write(&out.join("report.html"))
}

/// The simulation table printed to stdout (Markdown).
pub fn print_simulation(sim: &super::simulate::Simulation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| policy | violation minutes | unserved | replica-minutes | over-provisioning | scaling events |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for o in &sim.outcomes {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            o.policy,
            o.violation_minutes,
            o.unserved,
            o.replica_minutes,
            o.overprovision,
            o.scaling_events
        );
    }
    let _ = writeln!(out, "\n{}", simulation_note(sim));
    out
}

/// How the simulation sized replicas and decided, in one sentence.
fn simulation_note(sim: &super::simulate::Simulation) -> String {
    let o = &sim.options;
    let ready = sim.outlooks.ready();
    format!(
        "replicas sized for {:.0}% of capacity {}; static keeps {} replicas; predictive policies \
         decide on the band {} steps ahead (sizing {}, scale-in {}, reactive floor {}; {} decisions \
         with a forecast, {} without)",
        o.target_utilization * 100.0,
        o.capacity,
        sim.static_replicas,
        o.lead(),
        o.sizing.as_str(),
        o.scale_in.as_str(),
        if o.reactive_floor { "on" } else { "off" },
        ready,
        sim.outlooks.bands.len() - ready
    )
}

/// What a simulation (or a sweep) ran on: the trace and the options every policy shares.
fn sim_facts(input: &str, o: &SimOptions) -> Vec<(&'static str, String)> {
    vec![
        ("trace", input.to_string()),
        ("step", format_duration(o.step)),
        (
            "evaluated",
            format!("the last {:.0}% of the trace", 100.0 * o.eval_fraction),
        ),
        ("capacity per replica", format!("{}", o.capacity)),
        ("target utilisation", format!("{}", o.target_utilization)),
        ("start-up (lead time)", format_duration(o.startup)),
        (
            "replicas",
            format!("{} to {}", o.min_replicas, o.max_replicas),
        ),
        ("forecast model", o.model.clone()),
        (
            "policies",
            o.policies
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ]
}

/// The outcome columns of the HTML tables.
const OUTCOME_HEAD: [&str; 5] = [
    "violation minutes",
    "unserved",
    "replica-minutes",
    "over-provisioning",
    "scaling events",
];

fn outcome_html(o: &Outcome) -> [Cell; 5] {
    [
        Cell::num(o.violation_minutes, 1),
        Cell::num(o.unserved, 1),
        Cell::num(o.replica_minutes, 1),
        Cell::num(o.overprovision, 1),
        Cell::int(o.scaling_events),
    ]
}

/// The HTML page of a simulation: what ran, the summary table (the lowest of each column
/// in bold), the plots.
fn simulation_page(sim: &super::simulate::Simulation, input: &str, out: &Path) -> Result<Page> {
    let mut page = Page::new("promcast simulate");
    page.section("run", "What was run");
    page.facts(&sim_facts(input, &sim.options));
    page.paragraph(&simulation_note(sim));
    page.section("summary", "Violations against cost, per policy");
    let mut head = vec!["policy"];
    head.extend(OUTCOME_HEAD);
    let mut t = Table::new(
        "summary",
        "The evaluated part of the trace (summary.csv). Bold: the lowest of each column.",
        &head,
    );
    for o in &sim.outcomes {
        let mut row = vec![Cell::text(o.policy.as_str())];
        row.extend(outcome_html(o));
        t.rows.push(row);
    }
    for col in 1..=5 {
        t.mark_best(col, &[], true);
    }
    page.table(&t);
    page.section("plots", "Plots");
    page.image_file(
        "Demand and ready capacity per policy (the end of the evaluated part)",
        &out.join("timeline.png"),
    )?;
    page.image_file(
        "Violation minutes against replica-minutes, per policy",
        &out.join("cost_vs_violations.png"),
    )?;
    Ok(page)
}

/// Writes `frontier.csv` (every point of the sweep), `frontier.png` (replica-minutes
/// against unserved demand: each family's efficient points, and the HPA at U = 0.7) and
/// `report.html` (what ran, the headline, the efficient points, the plot) of a sweep of
/// the trace `input` with the options `opts`.
pub fn write_frontier(
    f: &super::frontier::Frontier,
    opts: &SimOptions,
    input: &str,
    out: &Path,
) -> Result<()> {
    create_dir(out)?;
    let mut csv = String::from(
        "policy,params,target_utilization,violation_minutes,unserved,replica_minutes,overprovision,scaling_events\n",
    );
    for r in &f.rows {
        let o = &r.outcome;
        let _ = writeln!(
            csv,
            "{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{}",
            r.policy,
            r.params,
            r.target_utilization,
            o.violation_minutes,
            o.unserved,
            o.replica_minutes,
            o.overprovision,
            o.scaling_events
        );
    }
    write_file(out, "frontier.csv", &csv)?;
    let families = frontier_families(f);
    let mut lines: Vec<Line> = families
        .iter()
        .enumerate()
        .map(|(c, name)| Line {
            label: if *name == "reactive" {
                "HPA (target utilisation 0.40-1.00)".to_string()
            } else {
                format!("{name} (efficient points)")
            },
            points: super::frontier::efficient(&f.rows, name)
                .into_iter()
                .map(|i| {
                    (
                        f.rows[i].outcome.replica_minutes,
                        f.rows[i].outcome.unserved,
                    )
                })
                .collect(),
            color: c,
        })
        .collect();
    let r = &f.rows[f.reference].outcome;
    lines.push(Line {
        label: "HPA at U=0.7".into(),
        points: vec![
            (r.replica_minutes, r.unserved),
            (r.replica_minutes, r.unserved),
        ],
        color: 7,
    });
    panels_png(
        &out.join("frontier.png"),
        "replica-minutes (cost)",
        &[Panel {
            title: "unserved demand (load x minutes above ready capacity) against cost".into(),
            lines,
            bands: vec![],
            scatter: false,
        }],
        1000,
    )?;
    frontier_page(f, opts, input, out)?.write(&out.join("report.html"))
}

/// The policy families of a sweep, in the order of their first row.
fn frontier_families(f: &super::frontier::Frontier) -> Vec<&str> {
    let mut families: Vec<&str> = Vec::new();
    for r in &f.rows {
        if !families.contains(&r.policy.as_str()) {
            families.push(&r.policy);
        }
    }
    families
}

/// The HTML page of a sweep: what ran, the headline, each family's efficient points and
/// the HPA reference (the whole sweep stays in frontier.csv), the plot.
fn frontier_page(
    f: &super::frontier::Frontier,
    opts: &SimOptions,
    input: &str,
    out: &Path,
) -> Result<Page> {
    let mut page = Page::new("promcast simulate --frontier");
    page.section("run", "What was run");
    let mut facts = sim_facts(input, opts);
    facts.retain(|(k, _)| *k != "target utilisation" && *k != "policies");
    facts.push(("families swept", frontier_families(f).join(", ")));
    facts.push((
        "points",
        format!(
            "{} ({} of {} decisions had a forecast)",
            f.rows.len(),
            f.forecasts_ready,
            f.decisions
        ),
    ));
    page.facts(&facts);
    page.section("headline", "Against the HPA");
    for line in f.headline().lines() {
        page.paragraph(line);
    }
    page.section("frontier", "Frontier points");
    let mut head = vec!["family", "parameters", "target utilisation"];
    head.extend(OUTCOME_HEAD);
    let mut t = Table::new(
        "frontier",
        "Each family's efficient points (no other point of it costs less and serves more), by \
         cost, and the HPA reference first; every point is in frontier.csv.",
        &head,
    );
    let mut shown = vec![f.reference];
    for name in frontier_families(f) {
        shown.extend(super::frontier::efficient(&f.rows, name));
    }
    for (k, &i) in shown.iter().enumerate() {
        let r = &f.rows[i];
        let family = if k == 0 {
            format!("{} (reference)", r.policy)
        } else {
            r.policy.clone()
        };
        let mut row = vec![
            Cell::text(family),
            Cell::text(r.params.as_str()),
            Cell::num(r.target_utilization, 2),
        ];
        row.extend(outcome_html(&r.outcome));
        t.rows.push(row);
    }
    page.table(&t);
    page.section("plots", "Plot");
    page.image_file(
        "Unserved demand against replica-minutes: each family's efficient points and the HPA at U=0.7",
        &out.join("frontier.png"),
    )?;
    Ok(page)
}

/// Writes `trials.csv` (every experiment), `best.yaml` (the winner as a `scaling:` block),
/// `frontier.png` (the trials and the HPA's sweep, cost against unserved demand),
/// `convergence.png` (the best cost meeting the SLO after each trial, Bayesian optimisation
/// against random search) and `report.html` (what ran, the result, the held-out check,
/// `best.yaml`, both plots and every trial) of a tuning run on `input`.
pub fn write_tuning(
    t: &super::tune::Tuning,
    input: &str,
    out: &Path,
    name: &str,
    series: &str,
) -> Result<()> {
    use super::tune::describe;
    create_dir(out)?;
    write_file(out, "trials.csv", &trials_csv(t))?;
    let best_yaml = t.best_yaml(name, series);
    write_file(out, "best.yaml", &best_yaml)?;
    let scatter = |method: &str, color: usize, label: &str| Line {
        label: label.into(),
        points: t
            .trials
            .iter()
            .filter(|x| x.method == method)
            .map(|x| (x.outcome.replica_minutes, x.outcome.unserved))
            .collect(),
        color,
    };
    let w = t.winner();
    let mut lines = vec![
        scatter("bo", 0, "Bayesian optimisation trials"),
        scatter("random", 1, "random search trials"),
        Line {
            label: "HPA, target utilisation 0.40-1.00".into(),
            points: t
                .hpa
                .iter()
                .map(|(_, o)| (o.replica_minutes, o.unserved))
                .collect(),
            color: 2,
        },
    ];
    lines.push(Line {
        label: format!("best: {}", describe(&w.params)),
        points: vec![(w.outcome.replica_minutes, w.outcome.unserved)],
        color: 3,
    });
    panels_png(
        &out.join("frontier.png"),
        "replica-minutes (cost), tuning window",
        &[Panel {
            title: "unserved demand against cost: every trial and the HPA's sweep".into(),
            lines,
            bands: vec![],
            scatter: true,
        }],
        1000,
    )?;
    let curve = |method: &str, color: usize, label: &str| Line {
        label: label.into(),
        points: t
            .convergence(method)
            .into_iter()
            .enumerate()
            .map(|(i, c)| ((i + 1) as f64, c))
            .collect(),
        color,
    };
    panels_png(
        &out.join("convergence.png"),
        "trial",
        &[Panel {
            title: "lowest replica-minutes meeting the SLO so far".into(),
            lines: vec![
                curve("bo", 0, "Bayesian optimisation"),
                curve("random", 1, "random search, same budget"),
            ],
            bands: vec![],
            scatter: false,
        }],
        900,
    )?;
    tuning_page(t, input, name, series, &best_yaml, out)?.write(&out.join("report.html"))
}

/// `trials.csv`: every trial, its configuration and its scores.
fn trials_csv(t: &super::tune::Tuning) -> String {
    let mut csv = String::from(
        "trial,method,policy,quantile,margin,target_utilization,sizing,scale_in,window_seconds,reactive_floor,\
         replica_minutes,unserved,unserved_fraction,violation_minutes,violation_minutes_per_day,meets_slo,seconds\n",
    );
    for (i, tr) in t.trials.iter().enumerate() {
        let p = &tr.params;
        let o = &tr.outcome;
        let _ = writeln!(
            csv,
            "{i},{},{},{},{},{},{},{},{},{},{:.2},{:.2},{:.6},{:.2},{:.3},{},{:.4}",
            tr.method,
            p.policy,
            p.quantile,
            p.margin,
            p.target_utilization,
            p.sizing.as_str(),
            p.scale_in.as_str(),
            p.stabilization.as_secs(),
            p.reactive_floor,
            o.replica_minutes,
            o.unserved,
            tr.unserved_fraction,
            o.violation_minutes,
            tr.violation_minutes_per_day,
            tr.feasible(),
            tr.seconds
        );
    }
    csv
}

/// What a tuning run searched: the trace, the SLO and the search's options.
fn tuning_facts(
    t: &super::tune::Tuning,
    input: &str,
    name: &str,
    series: &str,
) -> Vec<(&'static str, String)> {
    let o = &t.options;
    let s = &o.sim;
    vec![
        ("trace", input.to_string()),
        ("scaling target", format!("{name} (series {series})")),
        ("SLO", t.slo_text()),
        (
            "search",
            format!(
                "{} trials of Bayesian optimisation ({} random to start) and {} of random \
                 search, seed {}",
                o.budget,
                o.initial.min(o.budget),
                o.budget,
                o.seed
            ),
        ),
        (
            "split",
            format!(
                "the first {:.0}% of the trace for tuning (trials scored on its last {:.0}%, \
                 the SLO held in each of {} blocks with {:.0}% to spare); the rest held out",
                100.0 * o.train_fraction,
                100.0 * o.tune_fraction,
                o.blocks,
                100.0 * o.slo_margin
            ),
        ),
        ("step", format_duration(s.step)),
        ("capacity per replica", format!("{}", s.capacity)),
        ("start-up (lead time)", format_duration(s.startup)),
        (
            "replicas",
            format!("{} to {}", s.min_replicas, s.max_replicas),
        ),
        ("forecast model", s.model.clone()),
    ]
}

/// A trial's configuration and scores on the tuning window.
fn trial_html(tr: &super::tune::Trial) -> [Cell; 5] {
    [
        Cell::text(super::tune::describe(&tr.params)),
        Cell::num(tr.outcome.replica_minutes, 1),
        Cell::num(100.0 * tr.unserved_fraction, 4),
        Cell::num(tr.violation_minutes_per_day, 1),
        Cell::text(if tr.feasible() { "met" } else { "missed" }),
    ]
}

const TRIAL_HEAD: [&str; 5] = [
    "configuration",
    "replica-minutes",
    "unserved % of demand",
    "violation minutes/day",
    "SLO",
];

/// The held-out check: the winner against the HPA, on data the search never saw.
fn held_out_table(t: &super::tune::Tuning) -> Table {
    let h = &t.held_out;
    let mut table = Table::new(
        "held-out",
        &format!(
            "The held-out last {:.1} days, which the search never saw. Bold: the lowest.",
            h.days
        ),
        &[
            "configuration",
            "replica-minutes",
            "unserved",
            "unserved % of demand",
            "violation minutes",
            "scaling events",
        ],
    );
    let u = t.options.hpa_utilization;
    let mut rows = vec![
        ("promcast, tuned".to_string(), &h.best),
        (format!("HPA at U={u}"), &h.hpa),
    ];
    if let Some((u, o)) = h
        .hpa_slo
        .as_ref()
        .filter(|_| !t.options.slo.minimises_unserved())
    {
        rows.push((
            format!("cheapest HPA meeting the SLO on the tuning window (U={u})"),
            o,
        ));
    }
    for (label, o) in rows {
        table.rows.push(vec![
            Cell::text(label),
            Cell::num(o.replica_minutes, 1),
            Cell::num(o.unserved, 1),
            Cell::num(100.0 * o.unserved / h.demand.max(1e-12), 4),
            Cell::num(o.violation_minutes, 1),
            Cell::int(o.scaling_events),
        ]);
    }
    for col in 1..=4 {
        table.mark_best(col, &[], true);
    }
    table
}

/// The HTML page of a tuning run: what ran, the result, the held-out check, `best.yaml`,
/// the plots and every trial.
fn tuning_page(
    t: &super::tune::Tuning,
    input: &str,
    name: &str,
    series: &str,
    best_yaml: &str,
    out: &Path,
) -> Result<Page> {
    let mut page = Page::new("promcast tune");
    page.section("run", "What was run");
    page.facts(&tuning_facts(t, input, name, series));
    page.section("result", "Tuning result");
    let mut head = vec!["search"];
    head.extend(TRIAL_HEAD);
    let mut result = Table::new(
        "result",
        "The best configuration of each search on the tuning window; the Bayesian \
         optimisation's is the one written to best.yaml.",
        &head,
    );
    let best_random = t
        .trials
        .iter()
        .filter(|x| x.method == "random" && x.feasible())
        .min_by(|a, b| a.objective.total_cmp(&b.objective));
    let winner = [("Bayesian optimisation", Some(t.winner()))];
    for (label, tr) in winner.into_iter().chain([("random search", best_random)]) {
        let mut row = vec![Cell::text(label)];
        match tr {
            Some(tr) => row.extend(trial_html(tr)),
            None => row.extend(
                [Cell::text("no trial met the SLO")]
                    .into_iter()
                    .chain((0..4).map(|_| Cell::text(""))),
            ),
        }
        result.rows.push(row);
    }
    page.table(&result);
    page.section("held-out", "Held-out check");
    page.table(&held_out_table(t));
    page.pre(&t.summary());
    page.section("best", "best.yaml");
    page.pre(best_yaml);
    page.section("plots", "Plots");
    page.image_file(
        "Unserved demand against cost on the tuning window: every trial and the HPA's sweep",
        &out.join("frontier.png"),
    )?;
    page.image_file(
        "The best objective meeting the SLO after each trial: Bayesian optimisation and random search",
        &out.join("convergence.png"),
    )?;
    page.section("trials", "Every trial");
    let mut head = vec!["#", "method"];
    head.extend(TRIAL_HEAD);
    let mut trials = Table::new("trials", "trials.csv, in the order run", &head);
    for (i, tr) in t.trials.iter().enumerate() {
        let mut row = vec![Cell::int(i as u64), Cell::text(tr.method)];
        row.extend(trial_html(tr));
        trials.rows.push(row);
    }
    page.folded_table(&format!("{} trials", t.trials.len()), &trials);
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::data::{nasa_days, Trace};
    use base64::Engine as _;
    use std::time::Duration;

    /// The `<table id="id">` element of a page.
    fn table<'a>(html: &'a str, id: &str) -> &'a str {
        let start = html
            .find(&format!("<table id=\"{id}\">"))
            .unwrap_or_else(|| panic!("no table {id}"));
        let end = start + html[start..].find("</table>").unwrap();
        &html[start..end]
    }

    /// The data rows of a table, each as its cells' text (tags removed).
    fn rows(table: &str) -> Vec<Vec<String>> {
        let body = &table[table.find("<tbody>").unwrap()..];
        body.split("<tr>")
            .skip(1)
            .map(|tr| {
                tr.split("<td")
                    .skip(1)
                    .map(|td| {
                        let text = &td[td.find('>').unwrap() + 1..];
                        text[..text.find("</td>").unwrap()].to_string()
                    })
                    .collect()
            })
            .collect()
    }

    /// The decoded inline images of a page.
    fn images(html: &str) -> Vec<Vec<u8>> {
        let prefix = "<img src=\"data:image/png;base64,";
        html.match_indices(prefix)
            .map(|(i, _)| {
                let enc = &html[i + prefix.len()..];
                let enc = &enc[..enc.find('"').unwrap()];
                base64::engine::general_purpose::STANDARD
                    .decode(enc)
                    .unwrap()
            })
            .collect()
    }

    /// Three real days of NASA traffic as three series, named with markup to escape.
    fn three_days() -> Vec<Trace> {
        let t = nasa_days(3);
        (0..3)
            .map(|d| Trace {
                name: format!("nasa <day {}> & \"july\"", d + 1),
                times_ms: t.times_ms[d * 1440..(d + 1) * 1440].to_vec(),
                values: t.values[d * 1440..(d + 1) * 1440].to_vec(),
                calendar: t.calendar,
            })
            .collect()
    }

    #[test]
    fn a_backtest_report_has_every_table_and_its_plots_inline() {
        let mut opts = super::super::backtest::BacktestOptions::new(Duration::from_secs(60));
        opts.models = vec!["naive".into(), "seasonal_naive".into()];
        opts.horizons = vec![Duration::from_secs(300), Duration::from_secs(900)];
        opts.retention = Duration::from_secs(4 * 3600);
        opts.seasons = vec![Duration::from_secs(3600)];
        opts.test_fraction = 0.1;
        opts.stride = 29;
        let bt = super::super::backtest::run(&three_days(), &opts, &|_, _, _| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_backtest(&bt, dir.path()).unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();

        let metrics = rows(table(&html, "metrics"));
        let keys: Vec<(&str, &str)> = metrics
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("naive", "5m"),
                ("naive", "15m"),
                ("seasonal_naive", "5m"),
                ("seasonal_naive", "15m")
            ]
        );
        // the numbers are metrics.csv's, at the printed precision (MASE: 3 decimals)
        let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
        for (line, row) in csv.lines().skip(1).zip(&metrics) {
            let mase: f64 = line.split(',').nth(5).unwrap().parse().unwrap();
            assert_eq!(row[6], format!("{mase:.3}"), "{line}");
        }
        // one lowest MASE per horizon in bold (a tie would mark both)
        let best = table(&html, "metrics")
            .matches("class=\"num best\"")
            .count();
        assert!(best >= 2 * 5, "{best} best cells");
        // 3 traits x 3 buckets x 2 models x 2 horizons, as buckets.csv
        let buckets = rows(table(&html, "buckets"));
        let csv = std::fs::read_to_string(dir.path().join("buckets.csv")).unwrap();
        assert_eq!(buckets.len(), 36);
        assert_eq!(buckets.len(), csv.lines().count() - 1);
        // every series' plot, inline and byte for byte the PNG beside it
        let imgs = images(&html);
        assert_eq!(imgs.len(), 3);
        assert!(html.contains("data-images=\"3\""));
        let mut files: Vec<_> = std::fs::read_dir(dir.path().join("plots"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for (img, file) in imgs.iter().zip(&files) {
            assert!(img.starts_with(b"\x89PNG\r\n\x1a\n"));
            assert_eq!(img, &std::fs::read(file).unwrap(), "{}", file.display());
        }
        // series names are text, never markup
        assert!(!html.contains("<day 1>"));
        assert!(html.contains("nasa &lt;day 1&gt; &amp; &quot;july&quot;"));
    }

    #[test]
    fn a_backtest_of_one_series_says_why_there_are_no_buckets() {
        let mut opts = super::super::backtest::BacktestOptions::new(Duration::from_secs(60));
        opts.models = vec!["naive".into()];
        opts.horizons = vec![Duration::from_secs(300)];
        opts.retention = Duration::from_secs(3600);
        opts.test_fraction = 0.05;
        opts.stride = 30;
        let bt = super::super::backtest::run(&three_days()[..1], &opts, &|_, _, _| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_backtest(&bt, dir.path()).unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert_eq!(rows(table(&html, "metrics")).len(), 1);
        assert!(!html.contains("<table id=\"buckets\">"));
        assert!(html.contains("need at least 3 series, and this run evaluated 1"));
        assert_eq!(images(&html).len(), 1);
    }

    #[test]
    fn a_simulation_report_has_the_summary_and_both_plots() {
        let t = nasa_days(1);
        let (b0, v) = t.bucketed(60_000);
        let mut opts = SimOptions::new(Duration::from_secs(60));
        opts.capacity = 10.0;
        opts.model = "seasonal_naive".into();
        opts.eval_fraction = 0.2;
        let sim = super::super::simulate::simulate(&v[300..900], b0 + 300, false, &opts).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_simulation(&sim, "nasa.csv", dir.path()).unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        let summary = rows(table(&html, "summary"));
        let policies: Vec<&str> = summary.iter().map(|r| r[0].as_str()).collect();
        let csv = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
        let expected: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(policies, expected);
        assert_eq!(policies.len(), 6);
        for (row, o) in summary.iter().zip(&sim.outcomes) {
            assert_eq!(row[3], format!("{:.1}", o.replica_minutes));
        }
        let imgs = images(&html);
        assert_eq!(imgs.len(), 2);
        assert_eq!(
            imgs[0],
            std::fs::read(dir.path().join("timeline.png")).unwrap()
        );
        assert!(html.contains("<dd>nasa.csv</dd>"));
    }

    #[test]
    fn a_frontier_report_has_the_reference_and_the_efficient_points() {
        use super::super::frontier::{efficient, frontier, Grid};
        let t = nasa_days(1);
        let (b0, v) = t.bucketed(60_000);
        let mut opts = SimOptions::new(Duration::from_secs(60));
        opts.capacity = 10.0;
        opts.model = "naive".into();
        opts.policies = vec![crate::scale::Policy::Quantile];
        let grid = Grid {
            quantiles: vec![0.5, 0.9],
            utilizations: vec![0.6, 0.9],
            sizings: vec![crate::scale::Sizing::Peak],
            scale_ins: vec![(crate::scale::ScaleIn::Window, Duration::from_secs(300))],
            reactive_floors: vec![true],
            hpa_utilizations: vec![0.5, 0.7, 1.0],
            ..Grid::default()
        };
        let f = frontier(&v[300..900], b0 + 300, false, &opts, &grid).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_frontier(&f, &opts, "nasa.csv", dir.path()).unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        let points = rows(table(&html, "frontier"));
        assert_eq!(points[0][0], "reactive (reference)");
        assert_eq!(points[0][1], "u=0.70");
        let shown: usize = ["reactive", "quantile", "oracle"]
            .iter()
            .map(|p| efficient(&f.rows, p).len())
            .sum();
        assert_eq!(points.len(), 1 + shown);
        assert_eq!(images(&html).len(), 1);
        let headline = f.headline();
        let first = headline.lines().next().unwrap();
        assert!(html.contains(&super::super::html::escape(first)), "{first}");
    }

    #[test]
    fn a_tuning_report_has_the_result_and_the_held_out_check() {
        use super::super::tune::{tune, TuneOptions};
        let t = nasa_days(2);
        let (b0, v) = t.bucketed(60_000);
        let mut sim = SimOptions::new(Duration::from_secs(60));
        sim.capacity = 10.0;
        sim.model = "seasonal_naive".into();
        let mut o = TuneOptions::new(sim);
        o.budget = 4;
        o.initial = 2;
        let tuning = tune(&v[..2400], b0, false, &o, &|_, _| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_tuning(&tuning, "nasa.csv", dir.path(), "web", "<your series>").unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        let result = rows(table(&html, "result"));
        assert_eq!(result[0][0], "Bayesian optimisation");
        assert_eq!(
            result[0][1],
            super::super::html::escape(&super::super::tune::describe(&tuning.winner().params))
        );
        let held_out = rows(table(&html, "held-out"));
        assert_eq!(held_out[0][0], "promcast, tuned");
        assert_eq!(
            held_out[0][1],
            format!("{:.1}", tuning.held_out.best.replica_minutes)
        );
        assert_eq!(held_out[1][0], "HPA at U=0.7");
        assert_eq!(rows(table(&html, "trials")).len(), 2 * 4);
        assert_eq!(images(&html).len(), 2);
        // best.yaml on the page, escaped, as written
        let yaml = std::fs::read_to_string(dir.path().join("best.yaml")).unwrap();
        assert!(html.contains(&super::super::html::escape(&yaml)));
        assert!(html.contains("<dd>web (series &lt;your series&gt;)</dd>"));
    }
}
