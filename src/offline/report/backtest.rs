//! `promcast backtest`'s files: `metrics.csv`, `forecasts.csv`, `per_series.csv`,
//! `buckets.csv`, `series.csv`, one PNG per series, `report.html`, and the table printed
//! to stdout.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::common::{create_dir, write_file, PLOT_BUCKETS};
use crate::config::format_duration;
use crate::offline::backtest::{Backtest, Metrics};
use crate::offline::html::{Cell, Page, Table};
use crate::offline::plot::{panels_png, Band, Line, Panel};

/// Series plotted at most (the first ones of the input).
pub const MAX_PLOTS: usize = 8;

fn metric_cells(m: &Metrics) -> String {
    format!(
        "{:.6},{:.6},{:.4},{:.4},{:.4},{:.4},{:.4},{:.6}",
        m.mae, m.rmse, m.smape, m.mase, m.r2, m.coverage, m.width, m.under_weighted
    )
}

/// Writes every report file into `out` (created): `metrics.csv`, `forecasts.csv`,
/// `per_series.csv`, `accuracy.csv` (the rolling accuracy the agent would export, at the
/// last origin), `buckets.csv` (3 series or more), `skipped.txt` (when any was),
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

    // What the agent would export as N:forecast_mase / N:forecast_coverage at the last origin.
    let mut csv = String::from("model,series,horizon,origin,mase,coverage,scored\n");
    for a in &bt.accuracy {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{}",
            a.model,
            csv_field(&bt.series[a.series].name),
            bt.horizon_label(a.horizon),
            bt.time_label(a.series, a.origin),
            a.accuracy.mase,
            a.accuracy.coverage,
            a.accuracy.weight
        );
    }
    write("accuracy.csv", csv)?;

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
            let x = |r: &&crate::offline::backtest::ForecastRow| (r.target - s.first_bucket) as f64;
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
