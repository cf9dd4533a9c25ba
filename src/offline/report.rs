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
    let o = &sim.options;
    let ready = sim.outlooks.ready();
    let _ = writeln!(
        out,
        "\nreplicas sized for {:.0}% of capacity {}; static keeps {} replicas; predictive policies \
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
    );
    out
}

/// Writes `frontier.csv` (every point of the sweep) and `frontier.png` (replica-minutes
/// against unserved demand: each family's efficient points, and the HPA at U = 0.7).
pub fn write_frontier(f: &super::frontier::Frontier, out: &Path) -> Result<()> {
    use super::frontier::efficient;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
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
    std::fs::write(out.join("frontier.csv"), csv)?;
    let mut families: Vec<&str> = Vec::new();
    for r in &f.rows {
        if !families.contains(&r.policy.as_str()) {
            families.push(&r.policy);
        }
    }
    let mut lines: Vec<Line> = families
        .iter()
        .enumerate()
        .map(|(c, name)| Line {
            label: if *name == "reactive" {
                "HPA (target utilisation 0.40-1.00)".to_string()
            } else {
                format!("{name} (efficient points)")
            },
            points: efficient(&f.rows, name)
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
    )
}

/// Writes `trials.csv` (every experiment), `best.yaml` (the winner as a `scaling:` block),
/// `frontier.png` (the trials and the HPA's sweep, cost against unserved demand) and
/// `convergence.png` (the best cost meeting the SLO after each trial, Bayesian optimisation
/// against random search).
pub fn write_tuning(t: &super::tune::Tuning, out: &Path, name: &str, series: &str) -> Result<()> {
    use super::tune::describe;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
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
    std::fs::write(out.join("trials.csv"), csv)?;
    std::fs::write(out.join("best.yaml"), t.best_yaml(name, series))?;
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
    )
}
