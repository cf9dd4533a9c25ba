//! `promcast simulate`'s files (`summary.csv`, `timeline.png`, `cost_vs_violations.png`,
//! `report.html`) and printed table, and the pieces the frontier's report shares: what ran,
//! and an outcome's columns.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::common::{create_dir, one_panel_png, plots_section, write_file, PLOT_BUCKETS};
use crate::config::format_duration;
use crate::offline::html::{Cell, Page, Table};
use crate::offline::plot::Line;
use crate::offline::simulate::{Outcome, SimOptions, Simulation};

/// Writes `summary.csv`, `timeline.png`, `cost_vs_violations.png` and `report.html` (what
/// ran, the summary table and both plots) of a simulation of the trace `input`.
pub fn write_simulation(sim: &Simulation, input: &str, out: &Path) -> Result<()> {
    create_dir(out)?;
    let mut csv = format!("policy,{OUTCOME_CSV_HEAD}\n");
    for o in &sim.outcomes {
        let _ = writeln!(csv, "{},{}", o.policy, outcome_cells(o, 2, ","));
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
    one_panel_png(
        &out.join("timeline.png"),
        "step",
        "demand and ready capacity per policy",
        lines,
        false,
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
    one_panel_png(
        &out.join("cost_vs_violations.png"),
        "replica-minutes (cost)",
        "violation minutes vs replica-minutes, per policy",
        points,
        true,
        900,
    )?;
    simulation_page(sim, input, out)?.write(&out.join("report.html"))
}

/// The simulation table printed to stdout (Markdown).
pub fn print_simulation(sim: &Simulation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| policy | violation minutes | unserved | replica-minutes | over-provisioning | scaling events |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for o in &sim.outcomes {
        let _ = writeln!(out, "| {} | {} |", o.policy, outcome_cells(o, 1, " | "));
    }
    let _ = writeln!(out, "\n{}", simulation_note(sim));
    out
}

/// How the simulation sized replicas and decided, in one sentence.
fn simulation_note(sim: &Simulation) -> String {
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
pub(super) fn sim_facts(input: &str, o: &SimOptions) -> Vec<(&'static str, String)> {
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

/// The outcome columns of the CSV files, in [`outcome_cells`]' order.
pub(super) const OUTCOME_CSV_HEAD: &str =
    "violation_minutes,unserved,replica_minutes,overprovision,scaling_events";

/// An outcome's columns (violation minutes, unserved, replica-minutes, over-provisioning,
/// scaling events), the first four with `digits` decimals, joined by `sep`.
pub(super) fn outcome_cells(o: &Outcome, digits: usize, sep: &str) -> String {
    format!(
        "{:.d$}{sep}{:.d$}{sep}{:.d$}{sep}{:.d$}{sep}{}",
        o.violation_minutes,
        o.unserved,
        o.replica_minutes,
        o.overprovision,
        o.scaling_events,
        d = digits
    )
}

/// The outcome columns of the HTML tables.
pub(super) const OUTCOME_HEAD: [&str; 5] = [
    "violation minutes",
    "unserved",
    "replica-minutes",
    "over-provisioning",
    "scaling events",
];

pub(super) fn outcome_html(o: &Outcome) -> [Cell; 5] {
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
fn simulation_page(sim: &Simulation, input: &str, out: &Path) -> Result<Page> {
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
    plots_section(
        &mut page,
        "Plots",
        out,
        &[
            (
                "Demand and ready capacity per policy (the end of the evaluated part)",
                "timeline.png",
            ),
            (
                "Violation minutes against replica-minutes, per policy",
                "cost_vs_violations.png",
            ),
        ],
    )?;
    Ok(page)
}
