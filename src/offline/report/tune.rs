//! `promcast tune`'s files: `trials.csv`, `best.yaml`, `frontier.png`, `convergence.png`
//! and `report.html`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::common::{create_dir, one_panel_png, plots_section, write_file};
use crate::config::format_duration;
use crate::offline::html::{Cell, Page, Table};
use crate::offline::plot::Line;
use crate::offline::tune::{describe, Trial, Tuning};
use crate::policy::{Knob, Policy};

/// Writes `trials.csv` (every experiment), `best.yaml` (the winner as a `scaling:` block),
/// `frontier.png` (the trials and the HPA's sweep, cost against unserved demand),
/// `convergence.png` (the best cost meeting the SLO after each trial, Bayesian optimisation
/// against random search) and `report.html` (what ran, the result, the held-out check,
/// `best.yaml`, both plots and every trial) of a tuning run on `input`.
pub fn write_tuning(t: &Tuning, input: &str, out: &Path, name: &str, series: &str) -> Result<()> {
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
    one_panel_png(
        &out.join("frontier.png"),
        "replica-minutes (cost), tuning window",
        "unserved demand against cost: every trial and the HPA's sweep",
        lines,
        true,
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
    one_panel_png(
        &out.join("convergence.png"),
        "trial",
        "lowest replica-minutes meeting the SLO so far",
        vec![
            curve("bo", 0, "Bayesian optimisation"),
            curve("random", 1, "random search, same budget"),
        ],
        false,
        900,
    )?;
    tuning_page(t, input, name, series, &best_yaml, out)?.write(&out.join("report.html"))
}

/// `trials.csv`: every trial, its configuration and its scores. Each tuned policy's knob has
/// its column (`quantile`, `margin`), its idle value in the other policies' rows.
fn trials_csv(t: &Tuning) -> String {
    let knobs: Vec<Knob> = Policy::tuned().into_iter().map(|(k, _)| k).collect();
    let columns: Vec<&str> = knobs.iter().map(|k| k.key).collect();
    let mut csv = format!(
        "trial,method,policy,{},target_utilization,sizing,scale_in,window_seconds,reactive_floor,\
         replica_minutes,unserved,unserved_fraction,violation_minutes,violation_minutes_per_day,meets_slo,seconds\n",
        columns.join(",")
    );
    for (i, tr) in t.trials.iter().enumerate() {
        let p = &tr.params;
        let o = &tr.outcome;
        let own = p.policy.knob();
        let levels: Vec<String> = knobs
            .iter()
            .map(|k| match own {
                Some((mine, v)) if mine.key == k.key => v.to_string(),
                _ => k.idle.to_string(),
            })
            .collect();
        let _ = writeln!(
            csv,
            "{i},{},{},{},{},{},{},{},{},{:.2},{:.2},{:.6},{:.2},{:.3},{},{:.4}",
            tr.method,
            p.policy,
            levels.join(","),
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
fn tuning_facts(t: &Tuning, input: &str, name: &str, series: &str) -> Vec<(&'static str, String)> {
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
fn trial_html(tr: &Trial) -> [Cell; 5] {
    [
        Cell::text(describe(&tr.params)),
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
fn held_out_table(t: &Tuning) -> Table {
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
    t: &Tuning,
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
    plots_section(
        &mut page,
        "Plots",
        out,
        &[
            (
                "Unserved demand against cost on the tuning window: every trial and the HPA's sweep",
                "frontier.png",
            ),
            (
                "The best objective meeting the SLO after each trial: Bayesian optimisation and random search",
                "convergence.png",
            ),
        ],
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
