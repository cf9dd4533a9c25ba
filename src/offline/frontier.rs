//! `promcast simulate --frontier`: cost against unserved demand, frontier against frontier.
//!
//! The HPA is swept over its target utilisation (0.40 to 1.00 by 0.05); each predictive
//! policy over its knobs (band quantile or margin, target utilisation, sizing, scale-in rule
//! and window, reactive floor); and the same policies again on the oracle's forecasts (a
//! bound: the true level, future included). A trace's forecasts are made once and shared by
//! every point. Two figures answer "does promcast pay": its least unserved demand at no more
//! replica-minutes than the HPA at U = 0.7, and its fewest replica-minutes at no more
//! unserved demand; and how much of the HPA-to-oracle gap that closes.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};

use super::simulate::{outlooks, steps_needed, Outcome, Outlooks, Run, SimOptions};
use crate::config::format_duration;
use crate::scale::{Policy, PolicyParams, ScaleIn, Sizing};

/// The HPA's target utilisation the headline compares against.
pub const REFERENCE_UTILIZATION: f64 = 0.7;

/// The knobs a sweep tries for each predictive policy.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The settings of the policies' own knobs; `None`: each policy's own sweep
    /// ([`Policy::sweep`]). A policy with none here (or no sweep) runs as configured.
    pub knobs: Option<Vec<Policy>>,
    pub utilizations: Vec<f64>,
    pub sizings: Vec<Sizing>,
    /// `(rule, window)` pairs.
    pub scale_ins: Vec<(ScaleIn, Duration)>,
    pub reactive_floors: Vec<bool>,
    /// The HPA's utilisations.
    pub hpa_utilizations: Vec<f64>,
    /// The oracle's centred window, buckets (0: no oracle rows).
    pub oracle_window: usize,
}

impl Default for Grid {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        Self {
            knobs: None,
            utilizations: vec![0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            sizings: Sizing::ALL.to_vec(),
            scale_ins: vec![
                (ScaleIn::Window, Duration::ZERO),
                (ScaleIn::Window, min(2)),
                (ScaleIn::Window, min(5)),
                (ScaleIn::Forecast, min(2)),
                (ScaleIn::Forecast, min(5)),
            ],
            reactive_floors: vec![true, false],
            hpa_utilizations: (0..=12).map(|i| 0.40 + 0.05 * i as f64).collect(),
            oracle_window: 15,
        }
    }
}

/// One point of a sweep.
#[derive(Debug, Clone)]
pub struct Row {
    /// `reactive` (the HPA), a predictive policy's name, or `oracle`.
    pub policy: String,
    /// `k=v;k=v`.
    pub params: String,
    pub target_utilization: f64,
    pub outcome: Outcome,
}

/// Where one family of points stands against the HPA at the reference utilisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Against {
    /// The least unserved demand at no more replica-minutes than the HPA's, and its row.
    pub unserved_at_cost: Option<(f64, usize)>,
    /// The fewest replica-minutes at no more unserved demand than the HPA's, and its row.
    pub cost_at_unserved: Option<(f64, usize)>,
}

pub struct Frontier {
    pub rows: Vec<Row>,
    /// Index of the HPA at [`REFERENCE_UTILIZATION`].
    pub reference: usize,
    pub promcast: Against,
    pub oracle: Option<Against>,
    pub forecasts_ready: usize,
    pub decisions: usize,
}

/// The knob settings of one predictive policy in the grid, with their `k=v` labels (empty:
/// the policy as configured).
fn settings(policy: Policy, grid: &Grid) -> Vec<(String, Policy)> {
    let swept = match &grid.knobs {
        None => policy.sweep(),
        Some(knobs) => knobs
            .iter()
            .copied()
            .filter(|k| k.as_str() == policy.as_str())
            .collect(),
    };
    if swept.is_empty() {
        return vec![(String::new(), policy)];
    }
    swept
        .into_iter()
        .map(|p| (p.label().unwrap_or_default(), p))
        .collect()
}

/// Every point of one predictive policy's sweep on forecasts `fc`, labelled `label`.
fn sweep_policy(
    run: &Run<'_>,
    base: &PolicyParams,
    grid: &Grid,
    fc: &Outlooks,
    label: &str,
    rows: &mut Vec<Row>,
) {
    for (knob, policy) in settings(base.policy, grid) {
        for &u in &grid.utilizations {
            for &sizing in &grid.sizings {
                for &(scale_in, window) in &grid.scale_ins {
                    for &floor in &grid.reactive_floors {
                        let params = PolicyParams {
                            policy,
                            target_utilization: u,
                            sizing,
                            scale_in,
                            stabilization: window,
                            reactive_floor: floor,
                            ..base.clone()
                        };
                        let (outcome, _) = run.policy(&params, fc);
                        let mut text = format!("policy={}", base.policy);
                        if !knob.is_empty() {
                            let _ = write!(text, ";{knob}");
                        }
                        let _ = write!(
                            text,
                            ";sizing={};scale_in={};window={};floor={floor}",
                            sizing.as_str(),
                            scale_in.as_str(),
                            format_duration(window)
                        );
                        rows.push(Row {
                            policy: label.to_string(),
                            params: text,
                            target_utilization: u,
                            outcome,
                        });
                    }
                }
            }
        }
    }
}

/// Sweeps the HPA, every predictive policy of `opts.policies` and their oracle bound over
/// `values` (bucketed at `opts.step`, NaN = gap).
pub fn frontier(
    values: &[f32],
    first_bucket: i64,
    calendar: bool,
    opts: &SimOptions,
    grid: &Grid,
) -> Result<Frontier> {
    let run = Run::new(values, first_bucket, opts)?;
    let longest = grid
        .scale_ins
        .iter()
        .map(|s| s.1)
        .chain([opts.peak_window])
        .max()
        .unwrap_or_default();
    let need = steps_needed(opts, longest);
    let fc = outlooks(opts, calendar, first_bucket, values, run.eval_start, need)?;
    let mut rows = Vec::new();
    for &u in &grid.hpa_utilizations {
        let mut params = opts.params(Policy::Reactive(crate::policy::Reactive), opts.min_replicas);
        params.target_utilization = u;
        let (outcome, _) = run.policy(&params, &fc);
        rows.push(Row {
            policy: "reactive".into(),
            params: format!("u={u:.2}"),
            target_utilization: u,
            outcome,
        });
    }
    let reference = rows
        .iter()
        .position(|r| (r.target_utilization - REFERENCE_UTILIZATION).abs() < 1e-9)
        .context("the HPA's sweep must include U = 0.70")?;
    let predictive: Vec<Policy> = opts
        .policies
        .iter()
        .copied()
        .filter(|p| p.is_predictive())
        .collect();
    for &policy in &predictive {
        let base = opts.params(policy, opts.min_replicas);
        sweep_policy(&run, &base, grid, &fc, policy.as_str(), &mut rows);
    }
    let promcast = against(&rows, reference, |p| p != "reactive" && p != "oracle");
    let oracle = if grid.oracle_window > 0 {
        let o = SimOptions {
            model: format!("oracle:{}", grid.oracle_window),
            ..opts.clone()
        };
        let ofc = outlooks(&o, calendar, first_bucket, values, run.eval_start, need)?;
        for &policy in &predictive {
            let base = opts.params(policy, opts.min_replicas);
            sweep_policy(&run, &base, grid, &ofc, "oracle", &mut rows);
        }
        Some(against(&rows, reference, |p| p == "oracle"))
    } else {
        None
    };
    Ok(Frontier {
        reference,
        promcast,
        oracle,
        forecasts_ready: fc.ready(),
        decisions: fc.bands.len(),
        rows,
    })
}

/// Where the rows of one family (`member(policy)`) stand against row `reference`.
fn against(rows: &[Row], reference: usize, member: impl Fn(&str) -> bool) -> Against {
    let r = &rows[reference].outcome;
    let best = |key: fn(&Outcome) -> f64, within: &dyn Fn(&Outcome) -> bool| {
        rows.iter()
            .enumerate()
            .filter(|(_, row)| member(&row.policy) && within(&row.outcome))
            .map(|(i, row)| (key(&row.outcome), i))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    Against {
        unserved_at_cost: best(|o| o.unserved, &|o| o.replica_minutes <= r.replica_minutes),
        cost_at_unserved: best(|o| o.replica_minutes, &|o| o.unserved <= r.unserved),
    }
}

/// The rows of one policy that no other row of it beats on both cost and unserved demand,
/// by cost.
pub fn efficient(rows: &[Row], policy: &str) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].policy == policy)
        .collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (&rows[a].outcome, &rows[b].outcome);
        x.replica_minutes
            .total_cmp(&y.replica_minutes)
            .then(x.unserved.total_cmp(&y.unserved))
    });
    let mut out = Vec::new();
    let mut best = f64::INFINITY;
    for i in idx {
        if rows[i].outcome.unserved < best {
            best = rows[i].outcome.unserved;
            out.push(i);
        }
    }
    out
}

impl Frontier {
    /// The headline: both figures for promcast and the oracle against the HPA at U = 0.7.
    pub fn headline(&self) -> String {
        let r = &self.rows[self.reference].outcome;
        let mut out = format!(
            "HPA at U={REFERENCE_UTILIZATION}: {:.1} unserved, {:.1} replica-minutes, {:.1} violation minutes\n",
            r.unserved, r.replica_minutes, r.violation_minutes
        );
        let pct = |new: f64, old: f64| 100.0 * (old - new) / old.max(f64::MIN_POSITIVE);
        let mut family = |name: &str, a: &Against| {
            match a.unserved_at_cost {
                Some((u, i)) => {
                    let _ = writeln!(
                        out,
                        "{name}: at the HPA's replica-minutes, unserved {u:.1} ({:.1}% less; {} {} at {:.1} replica-minutes)",
                        pct(u, r.unserved),
                        self.rows[i].policy,
                        self.rows[i].params,
                        self.rows[i].outcome.replica_minutes
                    );
                }
                None => {
                    let _ = writeln!(out, "{name}: no point as cheap as the HPA's");
                }
            }
            match a.cost_at_unserved {
                Some((c, i)) => {
                    let _ = writeln!(
                        out,
                        "{name}: at the HPA's unserved, {c:.1} replica-minutes ({:.1}% fewer; {} {} with {:.1} unserved)",
                        pct(c, r.replica_minutes),
                        self.rows[i].policy,
                        self.rows[i].params,
                        self.rows[i].outcome.unserved
                    );
                }
                None => {
                    let _ = writeln!(out, "{name}: no point serves as much as the HPA");
                }
            }
        };
        family("promcast", &self.promcast);
        if let Some(o) = &self.oracle {
            family("oracle", o);
            if let (Some((p, _)), Some((o, _))) =
                (self.promcast.unserved_at_cost, o.unserved_at_cost)
            {
                let gap = r.unserved - o;
                if gap > 0.0 {
                    let _ = writeln!(
                        out,
                        "promcast closes {:.0}% of the HPA-to-oracle gap in unserved demand at equal cost",
                        100.0 * (r.unserved - p) / gap
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "{} points; {} of {} decisions had a forecast",
            self.rows.len(),
            self.forecasts_ready,
            self.decisions
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::simulate::simulate;
    use crate::policy::{Buffered, Quantile};

    fn nasa() -> (i64, Vec<f32>) {
        let t = crate::offline::data::nasa_days(1);
        let (b0, v) = t.bucketed(60_000);
        (b0 + 300, v[300..900].to_vec())
    }

    fn small_grid() -> Grid {
        Grid {
            knobs: Some(vec![
                Policy::Quantile(Quantile { q: 0.5 }),
                Policy::Quantile(Quantile { q: 0.9 }),
                Policy::Buffered(Buffered { margin: 0.1 }),
            ]),
            utilizations: vec![0.6, 0.9],
            sizings: vec![Sizing::UpToLead, Sizing::Peak],
            scale_ins: vec![
                (ScaleIn::Window, Duration::from_secs(300)),
                (ScaleIn::Forecast, Duration::from_secs(120)),
            ],
            reactive_floors: vec![true, false],
            hpa_utilizations: vec![0.5, 0.7, 1.0],
            oracle_window: 15,
        }
    }

    /// The sweep's HPA rows are exactly what `simulate` reports for the HPA at those
    /// utilisations, and its predictive rows what `simulate` reports with those knobs.
    #[test]
    fn sweep_rows_equal_separate_simulations() {
        let (b0, v) = nasa();
        let mut opts = SimOptions::new(Duration::from_secs(60));
        opts.capacity = 10.0;
        opts.model = "seasonal_naive".into();
        opts.policies = vec![Policy::Quantile(Default::default())];
        let f = frontier(&v, b0, false, &opts, &small_grid()).unwrap();
        assert_eq!(f.rows[f.reference].target_utilization, 0.7);
        for u in [0.5, 0.7, 1.0] {
            let mut o = opts.clone();
            o.policies = vec![Policy::Reactive(crate::policy::Reactive)];
            o.target_utilization = u;
            let alone = simulate(&v, b0, false, &o).unwrap().outcomes.remove(0);
            let row = f
                .rows
                .iter()
                .find(|r| r.policy == "reactive" && r.target_utilization == u)
                .unwrap();
            assert_eq!(row.outcome, alone, "U={u}");
        }
        let row = f
            .rows
            .iter()
            .find(|r| {
                r.policy == "quantile"
                    && r.params == "policy=quantile;q=0.9;sizing=peak;scale_in=forecast;window=2m;floor=false"
                    && r.target_utilization == 0.9
            })
            .unwrap();
        let mut o = opts.clone();
        o.target_utilization = 0.9;
        o.sizing = Sizing::Peak;
        o.scale_in = ScaleIn::Forecast;
        o.scale_down_stabilization = Duration::from_secs(120);
        o.reactive_floor = false;
        let alone = simulate(&v, b0, false, &o).unwrap().outcomes.remove(0);
        assert_eq!(row.outcome, alone);
        // 3 HPA rows, 2 quantiles x 2 U x 2 sizings x 2 scale-ins x 2 floors, twice (oracle).
        assert_eq!(f.rows.len(), 3 + 2 * 32);
    }

    #[test]
    fn the_headline_compares_at_equal_cost_and_equal_service() {
        let (b0, v) = nasa();
        let mut opts = SimOptions::new(Duration::from_secs(60));
        opts.capacity = 10.0;
        opts.model = "naive".into();
        opts.policies = vec![Policy::Quantile(Default::default())];
        let f = frontier(&v, b0, false, &opts, &small_grid()).unwrap();
        let r = &f.rows[f.reference].outcome;
        if let Some((u, i)) = f.promcast.unserved_at_cost {
            assert!(f.rows[i].outcome.replica_minutes <= r.replica_minutes);
            assert_eq!(u, f.rows[i].outcome.unserved);
            assert_ne!(f.rows[i].policy, "reactive");
        }
        if let Some((c, i)) = f.promcast.cost_at_unserved {
            assert!(f.rows[i].outcome.unserved <= r.unserved);
            assert_eq!(c, f.rows[i].outcome.replica_minutes);
        }
        let text = f.headline();
        assert!(text.contains("HPA at U=0.7"), "{text}");
        // The efficient set of a family is ordered by cost with falling unserved demand.
        let e = efficient(&f.rows, "quantile");
        assert!(e.windows(2).all(|w| {
            let (a, b) = (&f.rows[w[0]].outcome, &f.rows[w[1]].outcome);
            a.replica_minutes <= b.replica_minutes && a.unserved > b.unserved
        }));
    }
}
