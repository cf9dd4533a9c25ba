//! `promcast tune`: from recorded history, the scaling policy and knobs that meet an SLO at
//! the lowest cost, found by Bayesian optimisation and checked on held-out data.
//!
//! The trace is split: the first `train_fraction` is for tuning (its last `tune_fraction`
//! scored, the rest warms the models up), the rest is held out. Forecasts are made once, by
//! the agent's own forecaster, for both parts. Each trial simulates one configuration on the
//! tuning window ([`super::simulate::Run`]); the search is a Gaussian-process Bayesian
//! optimisation ([`super::gp`]) of the replica-minutes under the SLO constraint (expected
//! improvement times the probability of meeting the SLO, each from its own GP), started from
//! a few random points. A random search with the same budget runs beside it, for the
//! convergence plot. The winner (the cheapest trial meeting the SLO) is then run on the
//! held-out part next to the HPA at the reference utilisation.
//!
//! Why not a crate: egobox-ego, the Rust EGO we weighed, brings linfa and ndarray-linalg with a
//! LAPACK backend (a C toolchain and a BLAS build); tens of trials in seven dimensions need a
//! 200-line GP, which is also easy to make deterministic under `--seed`.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::gp::{expected_improvement, probability_below, Gp};
use super::simulate::{outlooks, steps_needed, Outcome, Outlooks, Run, SimOptions};
use crate::config::format_duration;
use crate::rng::SplitMix64;
use crate::scale::{Policy, PolicyParams, ScaleIn, Sizing};

/// What the tuned configuration must meet, measured on the tuning window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slo {
    /// Unserved demand at most this share of all demand.
    UnservedFraction(f64),
    /// Violation minutes per day at most this.
    ViolationMinutesPerDay(f64),
    /// No more unserved demand than the HPA at this target utilisation.
    MatchHpa(f64),
    /// No more replica-minutes than the HPA at this target utilisation; the search then
    /// minimises unserved demand instead of cost.
    HpaCost(f64),
}

impl Slo {
    /// Whether the search minimises unserved demand (under a cost cap) rather than cost.
    pub fn minimises_unserved(self) -> bool {
        matches!(self, Slo::HpaCost(_))
    }
}

/// What `promcast tune` searches for; its doc comments are the flags' help (the SLO's flags
/// are [`Slo`]'s, in `super::commands`).
#[derive(Debug, Clone, clap::Args)]
pub struct TuneOptions {
    /// The trace's step, capacity, start-up, model, replica bounds (the CLI sets them).
    #[arg(skip = SimOptions::new(Duration::ZERO))]
    pub sim: SimOptions,
    #[command(flatten)]
    pub slo: Slo,
    /// Trials of the Bayesian optimisation (a random search of the same size runs beside it).
    #[arg(long, default_value_t = 40)]
    pub budget: usize,
    /// Random trials the optimisation starts from.
    #[arg(skip = INITIAL)]
    pub initial: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of the history used for tuning; the rest is held out to check the winner.
    #[arg(long = "train-fraction", default_value_t = 0.8)]
    pub train_fraction: f64,
    /// Share of the tuning part the trials are scored on (at its end).
    #[arg(skip = TUNE_FRACTION)]
    pub tune_fraction: f64,
    /// The SLO must hold in each of this many consecutive blocks of the tuning window, not
    /// only on the whole: a configuration that spends one quiet stretch's slack on another's
    /// burst does not generalise.
    #[arg(skip = BLOCKS)]
    pub blocks: usize,
    /// The HPA's target utilisation the held-out check compares against.
    #[arg(long = "hpa-utilization", default_value_t = 0.7)]
    pub hpa_utilization: f64,
    /// An SLO must hold with this share to spare on the tuning window, since unserved demand
    /// varies more from week to week than cost does.
    #[arg(long = "slo-margin", default_value_t = 0.2)]
    pub slo_margin: f64,
}

/// [`TuneOptions::initial`]'s default.
const INITIAL: usize = 8;
/// [`TuneOptions::tune_fraction`]'s default.
const TUNE_FRACTION: f64 = 0.7;
/// [`TuneOptions::blocks`]'s default.
const BLOCKS: usize = 4;

impl TuneOptions {
    pub fn new(sim: SimOptions) -> Self {
        Self {
            sim,
            slo: Slo::HpaCost(0.7),
            budget: 40,
            initial: INITIAL,
            seed: 1,
            train_fraction: 0.8,
            tune_fraction: TUNE_FRACTION,
            blocks: BLOCKS,
            slo_margin: 0.2,
            hpa_utilization: 0.7,
        }
    }
}

/// The dimensions of the search space, each encoded in `[0, 1]`.
const DIMS: usize = 7;

/// The configuration a point of the space stands for.
fn decode(x: &[f64], base: &PolicyParams) -> PolicyParams {
    let pick = |v: f64, n: usize| ((v * n as f64) as usize).min(n - 1);
    // The tuned policies of the list, each with its knob at the second coordinate.
    let tuned = Policy::tuned();
    let (_, at) = tuned[pick(x[0], tuned.len())];
    PolicyParams {
        policy: at(x[1]),
        target_utilization: ((0.4 + 0.6 * x[2]) * 100.0).round() / 100.0,
        sizing: Sizing::ALL[pick(x[3], 3)],
        scale_in: [ScaleIn::Window, ScaleIn::Forecast][pick(x[4], 2)],
        stabilization: Duration::from_secs(60 * (10.0 * x[5]).round() as u64),
        reactive_floor: pick(x[6], 2) == 0,
        ..base.clone()
    }
}

/// `k=v;k=v` of a configuration.
pub fn describe(p: &PolicyParams) -> String {
    let level = p.policy.label().unwrap_or_default();
    format!(
        "policy={};{level};u={};sizing={};scale_in={};window={};floor={}",
        p.policy,
        p.target_utilization,
        p.sizing.as_str(),
        p.scale_in.as_str(),
        format_duration(p.stabilization),
        p.reactive_floor
    )
}

/// One evaluated configuration.
#[derive(Debug, Clone)]
pub struct Trial {
    /// `bo` or `random`.
    pub method: &'static str,
    pub x: Vec<f64>,
    pub params: PolicyParams,
    pub outcome: Outcome,
    pub unserved_fraction: f64,
    pub violation_minutes_per_day: f64,
    /// What the search minimises: log replica-minutes, or log unserved demand under a cost
    /// cap.
    pub objective: f64,
    /// The SLO measure over its limit, as a log ratio (≤ 0: met).
    pub slack: f64,
    pub seconds: f64,
}

impl Trial {
    pub fn feasible(&self) -> bool {
        self.slack <= 0.0
    }
}

pub struct Tuning {
    pub options: TuneOptions,
    pub trials: Vec<Trial>,
    /// Index of the winner among the `bo` trials.
    pub best: usize,
    /// The SLO limit as an unserved fraction or violation minutes per day.
    pub limit: f64,
    /// The HPA swept over its utilisation on the tuning window: (U, outcome).
    pub hpa: Vec<(f64, Outcome)>,
    /// Held out: the winner, the HPA at the reference utilisation, and the HPA at the
    /// cheapest utilisation that met the SLO on the tuning window.
    pub held_out: HeldOut,
}

pub struct HeldOut {
    pub best: Outcome,
    pub hpa: Outcome,
    pub hpa_slo: Option<(f64, Outcome)>,
    pub demand: f64,
    pub days: f64,
}

/// The part of a run a trial is scored on: its trace split and forecasts.
struct Window<'a> {
    run: Run<'a>,
    fc: Outlooks,
    demand: f64,
    days: f64,
}

impl<'a> Window<'a> {
    /// `values` scored from bucket `start` on, with the forecasts of those buckets.
    fn new(
        values: &'a [f32],
        first_bucket: i64,
        sim: &SimOptions,
        start: usize,
        fc: Outlooks,
    ) -> Result<Self> {
        let mut o = sim.clone();
        o.eval_fraction = (values.len() - start) as f64 / values.len() as f64;
        let mut run = Run::new(values, first_bucket, &o)?;
        run.eval_start = start;
        let (demand, days) = totals(&run);
        Ok(Window {
            run,
            fc,
            demand,
            days,
        })
    }

    fn score(&self, params: &PolicyParams) -> Outcome {
        self.run.policy(params, &self.fc).0
    }

    /// Totals per block, and the demand and days of each block.
    fn blocks(&self, params: &PolicyParams, blocks: usize) -> Vec<(Outcome, f64, f64)> {
        let (outs, _) = self.run.policy_blocks(params, &self.fc, blocks);
        let eval = &self.run.values[self.run.eval_start..];
        let minutes = self.run.step.as_secs_f64() / 60.0;
        outs.into_iter()
            .enumerate()
            .map(|(k, o)| {
                let part: Vec<f32> = (0..eval.len())
                    .filter(|i| i * blocks / eval.len() == k)
                    .map(|i| eval[i])
                    .collect();
                let demand: f64 = part
                    .iter()
                    .filter(|v| v.is_finite())
                    .map(|v| *v as f64 * minutes)
                    .sum();
                (o, demand, part.len() as f64 * minutes / 1440.0)
            })
            .collect()
    }
}

/// The demand (load × minutes) and days of the evaluated part.
fn totals(run: &Run<'_>) -> (f64, f64) {
    let minutes = run.step.as_secs_f64() / 60.0;
    let eval = &run.values[run.eval_start..];
    let demand: f64 = eval
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| *v as f64 * minutes)
        .sum();
    (demand, eval.len() as f64 * minutes / 1440.0)
}

/// Tunes on `values` (bucketed at `opts.sim.step`); `progress(done, total)` after each trial.
pub fn tune(
    values: &[f32],
    first_bucket: i64,
    calendar: bool,
    opts: &TuneOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<Tuning> {
    let n = values.len();
    let train_end = ((n as f64) * opts.train_fraction).floor() as usize;
    let tune_start = train_end - ((train_end as f64) * opts.tune_fraction).floor() as usize;
    if tune_start < 2 || n - train_end < 2 || train_end - tune_start < 2 {
        bail!("{n} buckets are too few to tune and hold out");
    }
    let sim = &opts.sim;
    let need = steps_needed(sim, Duration::from_secs(600));
    let all = outlooks(sim, calendar, first_bucket, values, tune_start, need)?;
    let tuning = Window::new(
        &values[..train_end],
        first_bucket,
        sim,
        tune_start,
        all.slice(0, train_end - tune_start),
    )?;
    let held = Window::new(
        values,
        first_bucket,
        sim,
        train_end,
        all.slice(train_end - tune_start, n - tune_start),
    )?;
    let search = Search::new(opts, tuning);
    let total = 2 * opts.budget;
    let mut trials = Vec::with_capacity(total);
    let mut rng = SplitMix64::new(opts.seed);
    for i in 0..opts.budget {
        let x = if i < opts.initial.min(opts.budget) {
            (0..DIMS).map(|_| rng.unit()).collect()
        } else {
            propose(&trials, &mut rng)
        };
        trials.push(search.evaluate("bo", x));
        progress(trials.len(), total);
    }
    let mut rng = SplitMix64::new(opts.seed ^ 0x5EED_0F5E);
    for _ in 0..opts.budget {
        let x = (0..DIMS).map(|_| rng.unit()).collect();
        trials.push(search.evaluate("random", x));
        progress(trials.len(), total);
    }
    let best = winner(&trials[..opts.budget]);
    let t = &search.tuning;
    let cheapest_hpa = search
        .hpa
        .iter()
        .filter(|(_, o)| search.measure(o, t.demand, t.days) <= search.limit)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(u, _)| *u);
    let held_out = HeldOut {
        best: held.score(&trials[best].params),
        hpa: held.score(&search.hpa_params(opts.hpa_utilization)),
        hpa_slo: cheapest_hpa.map(|u| (u, held.score(&search.hpa_params(u)))),
        demand: held.demand,
        days: held.days,
    };
    Ok(Tuning {
        options: opts.clone(),
        trials,
        best,
        limit: search.limit,
        hpa: search.hpa,
        held_out,
    })
}

/// What every trial is scored against: the tuning window, the SLO's limits per block, the
/// HPA's sweep.
struct Search<'a> {
    opts: &'a TuneOptions,
    tuning: Window<'a>,
    base: PolicyParams,
    /// The SLO's limit on the whole window (an unserved fraction, violation minutes a day,
    /// or replica-minutes).
    limit: f64,
    /// Each block's limit, the SLO margin taken off.
    block_limits: Vec<f64>,
    hpa: Vec<(f64, Outcome)>,
}

impl<'a> Search<'a> {
    fn new(opts: &'a TuneOptions, tuning: Window<'a>) -> Self {
        let base = opts
            .sim
            .params(Policy::Quantile(Default::default()), opts.sim.min_replicas);
        let mut s = Search {
            opts,
            tuning,
            base,
            limit: 0.0,
            block_limits: Vec::new(),
            hpa: Vec::new(),
        };
        s.hpa = (0..=12)
            .map(|i| {
                let u = ((0.40 + 0.05 * i as f64) * 100.0).round() / 100.0;
                (u, s.tuning.score(&s.hpa_params(u)))
            })
            .collect();
        let whole = |u: f64| s.tuning.score(&s.hpa_params(u));
        s.limit = match opts.slo {
            Slo::UnservedFraction(f) => f,
            Slo::ViolationMinutesPerDay(m) => m,
            Slo::MatchHpa(u) => whole(u).unserved / s.tuning.demand.max(1e-12),
            Slo::HpaCost(u) => whole(u).replica_minutes,
        };
        // The limit in each block: the SLO's, or the HPA's own measure there.
        let limits: Vec<f64> = match opts.slo {
            Slo::MatchHpa(u) | Slo::HpaCost(u) => s
                .tuning
                .blocks(&s.hpa_params(u), opts.blocks)
                .iter()
                .map(|(o, d, days)| s.measure(o, *d, *days))
                .collect(),
            _ => vec![s.limit; opts.blocks.max(1)],
        };
        let spare = if opts.slo.minimises_unserved() {
            1.0
        } else {
            1.0 - opts.slo_margin.clamp(0.0, 0.9)
        };
        s.block_limits = limits.iter().map(|l| l * spare).collect();
        s
    }

    fn hpa_params(&self, u: f64) -> PolicyParams {
        PolicyParams {
            policy: Policy::Reactive(crate::policy::Reactive),
            target_utilization: u,
            ..self.base.clone()
        }
    }

    /// What the SLO measures of an outcome over `demand` and `days`.
    fn measure(&self, o: &Outcome, demand: f64, days: f64) -> f64 {
        match self.opts.slo {
            Slo::ViolationMinutesPerDay(_) => o.violation_minutes / days.max(1e-12),
            Slo::HpaCost(_) => o.replica_minutes,
            _ => o.unserved / demand.max(1e-12),
        }
    }

    /// One trial: the configuration `x` stands for, simulated on the tuning window.
    fn evaluate(&self, method: &'static str, x: Vec<f64>) -> Trial {
        let t0 = Instant::now();
        let (opts, tuning) = (self.opts, &self.tuning);
        let params = decode(&x, &self.base);
        let blocks = tuning.blocks(&params, opts.blocks);
        let ratios = blocks
            .iter()
            .zip(&self.block_limits)
            .map(|((o, d, days), l)| (self.measure(o, *d, *days).max(1e-9) / l.max(1e-9)).ln());
        // Unserved demand must hold in every block; a cost cap on the whole.
        let slack = if opts.slo.minimises_unserved() {
            ratios.sum::<f64>() / blocks.len().max(1) as f64
        } else {
            ratios.fold(f64::NEG_INFINITY, f64::max)
        };
        let outcome = sum(blocks.into_iter().map(|b| b.0));
        let objective = if opts.slo.minimises_unserved() {
            (outcome.unserved + 1e-3 * tuning.demand / tuning.days.max(1e-12) / 1440.0).ln()
        } else {
            outcome.replica_minutes.max(1e-9).ln()
        };
        Trial {
            method,
            x,
            unserved_fraction: outcome.unserved / tuning.demand.max(1e-12),
            violation_minutes_per_day: outcome.violation_minutes / tuning.days.max(1e-12),
            objective,
            slack,
            params,
            outcome,
            seconds: t0.elapsed().as_secs_f64(),
        }
    }
}

/// The totals of several outcomes.
fn sum(outs: impl Iterator<Item = Outcome>) -> Outcome {
    outs.fold(Outcome::default(), |a, o| Outcome {
        policy: o.policy,
        violation_minutes: a.violation_minutes + o.violation_minutes,
        unserved: a.unserved + o.unserved,
        replica_minutes: a.replica_minutes + o.replica_minutes,
        overprovision: a.overprovision + o.overprovision,
        scaling_events: a.scaling_events + o.scaling_events,
    })
}

/// The cheapest trial meeting the SLO, else the one closest to meeting it.
fn winner(trials: &[Trial]) -> usize {
    let key = |t: &Trial| {
        if t.feasible() {
            (0, t.objective)
        } else {
            (1, t.slack)
        }
    };
    (0..trials.len())
        .min_by(|&a, &b| {
            let (ka, kb) = (key(&trials[a]), key(&trials[b]));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
        })
        .unwrap_or(0)
}

/// The next point of the optimisation: the best of random candidates and perturbations of
/// the incumbent by expected improvement of log cost times the probability of meeting the
/// SLO (the probability alone while nothing meets it).
fn propose(trials: &[Trial], rng: &mut SplitMix64) -> Vec<f64> {
    let bo: Vec<&Trial> = trials.iter().filter(|t| t.method == "bo").collect();
    let xs: Vec<Vec<f64>> = bo.iter().map(|t| t.x.clone()).collect();
    let cost: Vec<f64> = bo.iter().map(|t| t.objective).collect();
    let slack: Vec<f64> = bo.iter().map(|t| t.slack).collect();
    let random = |rng: &mut SplitMix64| -> Vec<f64> { (0..DIMS).map(|_| rng.unit()).collect() };
    let (Some(gc), Some(gs)) = (Gp::fit(&xs, &cost), Gp::fit(&xs, &slack)) else {
        return random(rng);
    };
    let incumbent = bo
        .iter()
        .filter(|t| t.feasible())
        .min_by(|a, b| a.objective.total_cmp(&b.objective));
    let mut candidates: Vec<Vec<f64>> = (0..2000).map(|_| random(rng)).collect();
    if let Some(inc) = incumbent {
        for _ in 0..500 {
            candidates.push(
                inc.x
                    .iter()
                    .map(|v| (v + 0.1 * (2.0 * rng.unit() - 1.0)).clamp(0.0, 1.0))
                    .collect(),
            );
        }
    }
    let best_cost = incumbent.map(|t| t.objective);
    let score = |x: &[f64]| {
        let (ms, ss) = gs.predict(x);
        let feasible = probability_below(ms, ss, 0.0);
        match best_cost {
            Some(b) => {
                let (mc, sc) = gc.predict(x);
                expected_improvement(mc, sc, b) * feasible
            }
            None => feasible,
        }
    };
    candidates
        .into_iter()
        .map(|x| (score(&x), x))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, x)| x)
        .unwrap_or_else(|| random(rng))
}

impl Tuning {
    /// The winning trial.
    pub fn winner(&self) -> &Trial {
        &self.trials[self.best]
    }

    /// The best objective (replica-minutes, or unserved demand under a cost cap) meeting
    /// the SLO after each trial, per method.
    pub fn convergence(&self, method: &str) -> Vec<f64> {
        let mut best = f64::NAN;
        let value = |t: &Trial| {
            if self.options.slo.minimises_unserved() {
                t.outcome.unserved
            } else {
                t.outcome.replica_minutes
            }
        };
        self.trials
            .iter()
            .filter(|t| t.method == method)
            .map(|t| {
                if t.feasible() && (best.is_nan() || value(t) < best) {
                    best = value(t);
                }
                best
            })
            .collect()
    }

    /// A ready `scaling:` block for the winner.
    pub fn best_yaml(&self, name: &str, series: &str) -> String {
        let p = &self.winner().params;
        let s = &self.options.sim;
        let level = p.policy.yaml_line().unwrap_or_default();
        format!(
            "# promcast tune: {} on the tuning window\n\
             # (replica-minutes {:.1}, unserved {:.4}% of demand, {:.1} violation minutes/day).\n\
             scaling:\n  - name: {name}\n    series: '{series}'\n    capacity_per_replica: {}\n    \
             target_utilization: {}\n    min_replicas: {}\n    max_replicas: {}\n    lead_time: {}\n    \
             policy: {}\n{level}    sizing: {}\n    peak_window: {}\n    scale_in: {}\n    \
             scale_down_stabilization: {}\n    reactive_floor: {}\n",
            if self.options.slo.minimises_unserved() {
                "the least unserved demand within the HPA's cost"
            } else {
                "the cheapest configuration meeting the SLO"
            },
            self.winner().outcome.replica_minutes,
            100.0 * self.winner().unserved_fraction,
            self.winner().violation_minutes_per_day,
            s.capacity,
            p.target_utilization,
            p.min_replicas,
            p.max_replicas,
            format_duration(s.startup),
            p.policy,
            p.sizing.as_str(),
            format_duration(p.peak_window),
            p.scale_in.as_str(),
            format_duration(p.stabilization),
            p.reactive_floor,
        )
    }

    /// The SLO (or cost cap) the winner had to meet, with its limit.
    pub fn slo_text(&self) -> String {
        match self.options.slo {
            Slo::ViolationMinutesPerDay(_) => {
                format!("at most {:.1} violation minutes/day", self.limit)
            }
            Slo::HpaCost(u) => format!(
                "at most {:.1} replica-minutes, the HPA's at U={u}",
                self.limit
            ),
            Slo::MatchHpa(u) => format!(
                "unserved at most {:.4}% of demand, the HPA's at U={u}",
                100.0 * self.limit
            ),
            Slo::UnservedFraction(_) => {
                format!("unserved at most {:.4}% of demand", 100.0 * self.limit)
            }
        }
    }

    /// What the run found and how the winner did on the held-out part.
    pub fn summary(&self) -> String {
        let w = self.winner();
        let h = &self.held_out;
        let pct = |new: f64, old: f64| 100.0 * (old - new) / old.max(f64::MIN_POSITIVE);
        let limit = self.slo_text();
        let mut out = format!(
            "best of {} trials (tuning window): {}\n  replica-minutes {:.1}, unserved {:.4}% of demand, {:.1} violation minutes/day; {}: {}\n",
            self.trials.len() / 2,
            describe(&w.params),
            w.outcome.replica_minutes,
            100.0 * w.unserved_fraction,
            w.violation_minutes_per_day,
            limit,
            if w.feasible() { "met" } else { "MISSED (no trial met it)" },
        );
        let u = self.options.hpa_utilization;
        out.push_str(&format!(
            "held out ({:.1} days): promcast {:.1} replica-minutes, {:.1} unserved ({:.4}%); HPA at U={u}: {:.1} replica-minutes, {:.1} unserved ({:.4}%)\n",
            h.days,
            h.best.replica_minutes,
            h.best.unserved,
            100.0 * h.best.unserved / h.demand.max(1e-12),
            h.hpa.replica_minutes,
            h.hpa.unserved,
            100.0 * h.hpa.unserved / h.demand.max(1e-12),
        ));
        out.push_str(&format!(
            "  against the HPA at U={u}: {:.1}% fewer replica-minutes, {:.1}% less unserved demand\n",
            pct(h.best.replica_minutes, h.hpa.replica_minutes),
            pct(h.best.unserved, h.hpa.unserved)
        ));
        if let Some((u, o)) = h
            .hpa_slo
            .as_ref()
            .filter(|_| !self.options.slo.minimises_unserved())
        {
            out.push_str(&format!(
                "  against the cheapest HPA meeting the SLO on the tuning window (U={u}): {:.1}% fewer replica-minutes, {:.1}% less unserved demand\n",
                pct(h.best.replica_minutes, o.replica_minutes),
                pct(h.best.unserved, o.unserved)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic problem with a known optimum: cost falls with the utilisation knob, the
    /// SLO measure rises with it, and they cross at x = 0.6. The search must find the edge.
    #[test]
    fn the_optimiser_finds_a_known_constrained_optimum() {
        let mut rng = SplitMix64::new(7);
        let mut trials: Vec<Trial> = Vec::new();
        let base = SimOptions::new(Duration::from_secs(60))
            .params(Policy::Quantile(Default::default()), 1);
        let eval = |x: Vec<f64>| {
            let u = x[2];
            let cost = 1000.0 * (1.5 - u) + 10.0 * (x[0] - 0.3).powi(2);
            let risk = (u / 0.6).powi(4);
            Trial {
                method: "bo",
                params: decode(&x, &base),
                x,
                outcome: Outcome {
                    replica_minutes: cost,
                    ..Default::default()
                },
                unserved_fraction: risk,
                violation_minutes_per_day: 0.0,
                objective: cost.ln(),
                slack: risk.ln(),
                seconds: 0.0,
            }
        };
        for i in 0..30 {
            let x = if i < 6 {
                (0..DIMS).map(|_| rng.unit()).collect()
            } else {
                propose(&trials, &mut rng)
            };
            trials.push(eval(x));
        }
        let best = &trials[winner(&trials)];
        assert!(best.feasible());
        assert!(
            (best.x[2] - 0.6).abs() < 0.05,
            "utilisation knob {} (optimum 0.6)",
            best.x[2]
        );
    }

    fn nasa() -> (i64, Vec<f32>) {
        let t = crate::offline::data::nasa_days(2);
        let (b0, v) = t.bucketed(60_000);
        (b0, v[..2400].to_vec())
    }

    fn options(seed: u64) -> TuneOptions {
        let mut sim = SimOptions::new(Duration::from_secs(60));
        sim.capacity = 10.0;
        sim.model = "seasonal_naive".into();
        let mut o = TuneOptions::new(sim);
        o.budget = 10;
        o.initial = 4;
        o.seed = seed;
        o
    }

    #[test]
    fn a_seed_makes_it_deterministic() {
        let (b0, v) = nasa();
        let a = tune(&v, b0, false, &options(3), &|_, _| {}).unwrap();
        let b = tune(&v, b0, false, &options(3), &|_, _| {}).unwrap();
        let key = |t: &Tuning| -> Vec<(String, u64)> {
            t.trials
                .iter()
                .map(|x| (describe(&x.params), x.outcome.replica_minutes.to_bits()))
                .collect()
        };
        assert_eq!(key(&a), key(&b));
        assert_eq!(a.trials.len(), 20);
        let c = tune(&v, b0, false, &options(4), &|_, _| {}).unwrap();
        assert_ne!(key(&a), key(&c), "another seed explores elsewhere");
        // The block it writes is a valid promcast config.
        let yaml = format!(
            "forecast:\n  - selector: 'x'\n{}",
            a.best_yaml("web", "x")
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let config = crate::config::Config::from_yaml(&yaml, "best.yaml", None).unwrap();
        assert_eq!(config.scaling[0].params.policy, a.winner().params.policy);
    }
}
