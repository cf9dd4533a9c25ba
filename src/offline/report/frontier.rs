//! `promcast simulate --frontier`'s files: `frontier.csv`, `frontier.png` and
//! `report.html`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::common::{create_dir, one_panel_png, plots_section, write_file};
use super::simulate::{outcome_cells, outcome_html, sim_facts, OUTCOME_CSV_HEAD, OUTCOME_HEAD};
use crate::offline::frontier::{efficient, Frontier};
use crate::offline::html::{Cell, Page, Table};
use crate::offline::plot::Line;
use crate::offline::simulate::SimOptions;

/// Writes `frontier.csv` (every point of the sweep), `frontier.png` (replica-minutes
/// against unserved demand: each family's efficient points, and the HPA at U = 0.7) and
/// `report.html` (what ran, the headline, the efficient points, the plot) of a sweep of
/// the trace `input` with the options `opts`.
pub fn write_frontier(f: &Frontier, opts: &SimOptions, input: &str, out: &Path) -> Result<()> {
    create_dir(out)?;
    let mut csv = format!("policy,params,target_utilization,{OUTCOME_CSV_HEAD}\n");
    for r in &f.rows {
        let _ = writeln!(
            csv,
            "{},{},{:.2},{}",
            r.policy,
            r.params,
            r.target_utilization,
            outcome_cells(&r.outcome, 2, ",")
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
    one_panel_png(
        &out.join("frontier.png"),
        "replica-minutes (cost)",
        "unserved demand (load x minutes above ready capacity) against cost",
        lines,
        false,
        1000,
    )?;
    frontier_page(f, opts, input, out)?.write(&out.join("report.html"))
}

/// The policy families of a sweep, in the order of their first row.
fn frontier_families(f: &Frontier) -> Vec<&str> {
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
fn frontier_page(f: &Frontier, opts: &SimOptions, input: &str, out: &Path) -> Result<Page> {
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
        shown.extend(efficient(&f.rows, name));
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
    plots_section(
        &mut page,
        "Plot",
        out,
        &[(
            "Unserved demand against replica-minutes: each family's efficient points and the HPA at U=0.7",
            "frontier.png",
        )],
    )?;
    Ok(page)
}
