//! Files and tables of a backtest: `metrics.csv`, `forecasts.csv`, `per_series.csv`,
//! `buckets.csv` and `plots/*.png`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::backtest::{Backtest, Metrics};
use super::plot::{panels_png, Band, Line, Panel};

/// Series plotted at most (the first ones of the input).
pub const MAX_PLOTS: usize = 8;

fn metric_cells(m: &Metrics) -> String {
    format!(
        "{:.6},{:.6},{:.4},{:.4},{:.4},{:.4},{:.4},{:.6}",
        m.mae, m.rmse, m.smape, m.mase, m.r2, m.coverage, m.width, m.under_weighted
    )
}

/// Writes every report file into `out` (created).
pub fn write_backtest(bt: &Backtest, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, text: String| {
        let p = out.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };

    let mut csv =
        String::from("model,horizon,mae,rmse,smape,mase,r2,coverage,width,under_weighted\n");
    for (m, h, x) in bt.table() {
        let _ = writeln!(csv, "{m},{},{}", bt.horizon_label(h), metric_cells(&x));
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
        for (t, b, m, h, x) in buckets {
            let _ = writeln!(
                csv,
                "{t},{b},{m},{},{},{}",
                bt.horizon_label(h),
                x.n,
                metric_cells(&x)
            );
        }
        write("buckets.csv", csv)?;
    }

    if !bt.skipped.is_empty() {
        write("skipped.txt", bt.skipped.join("\n") + "\n")?;
    }
    plots(bt, &out.join("plots"))
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
/// target time, with the band.
fn plots(bt: &Backtest, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
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
        panels_png(
            &dir.join(format!("{si:03}_{name}.png")),
            "step",
            &panels,
            1400,
        )?;
    }
    Ok(())
}

/// The table printed to stdout (Markdown), then what `auto` used.
pub fn print_table(bt: &Backtest) -> String {
    let mut out = String::new();
    let auto: Vec<_> = bt.rows.iter().filter(|r| r.model == "auto").collect();
    let mut used = std::collections::BTreeMap::<&str, usize>::new();
    for r in &auto {
        *used
            .entry(r.used.map_or("none", |m| m.as_str()))
            .or_default() += 1;
    }
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
    if !auto.is_empty() {
        let share: Vec<String> = used
            .iter()
            .map(|(m, n)| format!("{m} {:.1}%", 100.0 * *n as f64 / auto.len() as f64))
            .collect();
        let _ = writeln!(out, "\nauto used: {}", share.join(", "));
    }
    out
}

/// Writes `summary.csv`, `timeline.png` and `cost_vs_violations.png` of a simulation.
pub fn write_simulation(sim: &super::simulate::Simulation, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
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
    std::fs::write(out.join("summary.csv"), csv)?;
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
    )
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
    let _ = writeln!(
        out,
        "\nstatic keeps {} replicas; predictive policies use the forecast {} steps after the last complete bucket ({} decisions with a forecast, {} without)",
        sim.static_replicas, sim.horizon_steps, sim.forecasts_ready, sim.forecasts_missing
    );
    out
}
