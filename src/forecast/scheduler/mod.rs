//! The forecast loop: once per step, on its own OS thread (model work never runs on the
//! async runtime), visit every stored series shard by shard, hand each to the anomaly scorer,
//! the scaling targets and the [`Forecaster`], publish the step's [`Snapshot`], and report
//! one [`StepStats`].
//!
//! Degrading on purpose when a step's work does not fit in the step: expensive work (MSTL
//! refits, `auto` re-choices, forest trainings) is spent from the step's [`Budget`] and the
//! rest deferred and counted; a step that overruns the next boundary skips the missed steps
//! (counted) instead of queueing them, and the publication lag is reported.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::forecaster::{Budget, ForecastStats, Forecaster, ModelMismatch};
use super::model::{pad_to, MAX_PAD};
use super::neural::LstmModel;
use crate::anomaly::online::{season_for, AnomalyScorer, StepStats as AnomalyStats};
use crate::config::{AnomalySpec, Config};
use crate::scale::Targets;
use crate::snapshot::{
    ModelKind, PerModel, Reason, SeriesForecast, SeriesState, Snapshot, SnapshotCell, StateKind,
};
use crate::store::{LabelSet, SeriesId, Store};
use crate::telemetry::Telemetry;

/// What one step did, for self-metrics.
#[derive(Debug, Clone, Default)]
pub struct StepStats {
    pub duration: Duration,
    /// Series evicted for idleness at the start of the step.
    pub evicted: u64,
    /// Series held after eviction.
    pub series: u64,
    /// Series by state at the end of the step (indexed by [`StateKind`] order).
    pub by_state: [u64; StateKind::ALL.len()],
    /// Ready forecasts, by model.
    pub forecasts: PerModel<u64>,
    /// Age of the oldest ready forecast.
    pub max_age_ms: i64,
    pub forecast: ForecastStats,
    pub anomaly: AnomalyStats,
    /// Forests held: own (per series) and pooled (per entry), and their heap.
    pub forests: (usize, usize),
    pub anomaly_bytes: usize,
    /// Per scaling target: the rule that set its recommendation, if it has one.
    pub decisions: Vec<Option<Reason>>,
    /// Set by [`Scheduler::run`]: how late the snapshot was published, and how many step
    /// boundaries the step overran.
    pub lag_ms: i64,
    pub skipped: u64,
}

impl StepStats {
    /// Adds this step to promcast's self-metrics.
    pub fn record(&self, t: &Telemetry) {
        for (counters, reason) in t.scaling_decisions.iter().zip(&self.decisions) {
            if let Some(r) = reason {
                counters[*r as usize].inc();
            }
        }
        let (s, t) = (self, &t.forecast_loop);
        t.series_evicted.inc_by(s.evicted);
        for (g, v) in t.series_by_state.iter().zip(s.by_state) {
            g.set(v as i64);
        }
        for m in ModelKind::ALL {
            t.forecasts[m].inc_by(s.forecasts[m]);
            t.forecast_errors[m].inc_by(s.forecast.errors[m]);
            t.auto_choices[m].inc_by(s.forecast.auto_choices[m]);
        }
        t.series.set(s.series as i64);
        t.forecast_max_age.set(s.max_age_ms.max(0) as f64 / 1e3);
        t.refits_deferred.inc_by(s.forecast.refits_deferred);
        t.auto_choices_deferred.inc_by(s.forecast.auto_deferred);
        t.anomaly_trainings.inc_by(s.anomaly.trained);
        t.anomaly_trainings_deferred.inc_by(s.anomaly.deferred);
        t.anomaly_training_failures.inc_by(s.anomaly.failed);
        t.anomaly_scored.inc_by(s.anomaly.scored);
        t.anomaly_forests[0].set(s.forests.0 as i64);
        t.anomaly_forests[1].set(s.forests.1 as i64);
        t.anomaly_bytes.set(s.anomaly_bytes as i64);
        t.step_duration.observe(s.duration.as_secs_f64());
        t.forecast_lag.set(s.lag_ms.max(0) as f64 / 1e3);
        t.steps_skipped.inc_by(s.skipped);
    }
}

/// One step's result.
pub struct Step {
    pub snapshot: Arc<Snapshot>,
    pub stats: StepStats,
}

/// A series visited in a shard: where its values sit in the shard's buffer.
struct Job {
    labels: Arc<LabelSet>,
    id: SeriesId,
    spec: u16,
    stale: bool,
    /// A counter's rates (see `SeriesForecast::rate`).
    rate: bool,
    /// The newest bucket, and the padding towards the step's bucket.
    head: i64,
    pad: usize,
    start: usize,
    len: usize,
}

pub struct Scheduler {
    config: Arc<Config>,
    store: Arc<Store>,
    snapshots: Arc<SnapshotCell>,
    forecaster: Forecaster,
    anomaly: AnomalyScorer,
    anomaly_specs: Vec<Option<AnomalySpec>>,
    /// `scaling:` targets and their scale-in windows.
    targets: Targets,
    horizons: Vec<Vec<(String, i64)>>,
    steps: u64,
    // Reused buffers.
    values: Vec<f32>,
    jobs: Vec<Job>,
}

impl Scheduler {
    /// The loop over `store` for `config`'s entries, with the loaded LSTM if any; it
    /// publishes into `snapshots`.
    pub fn new(
        config: Arc<Config>,
        store: Arc<Store>,
        snapshots: Arc<SnapshotCell>,
        lstm: Option<Arc<LstmModel>>,
    ) -> Result<Self, ModelMismatch> {
        Ok(Self {
            forecaster: Forecaster::new(&config, lstm)?,
            anomaly: AnomalyScorer::new(
                config.forecast.len(),
                config.limits.max_anomaly_forests,
                config.ring_len.get(),
            ),
            anomaly_specs: config.forecast.iter().map(|f| f.anomaly.clone()).collect(),
            targets: Targets::new(&config.scaling),
            horizons: crate::snapshot::horizons_of(&config),
            config,
            store,
            snapshots,
            steps: 0,
            values: Vec::new(),
            jobs: Vec::new(),
        })
    }

    /// Runs a step at every step boundary until `shutdown` is signalled or dropped, handing
    /// each step's figures to `report`.
    pub fn run(mut self, shutdown: Receiver<()>, mut report: impl FnMut(&StepStats)) {
        let step_ms = self.store.step_ms();
        let clock = *self.store.clock();
        loop {
            let now = clock.now_ms();
            let due = (now.div_euclid(step_ms) + 1) * step_ms;
            match shutdown.recv_timeout(clock.wall_until(due)) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let mut stats = self.step(clock.now_ms().max(due)).stats;
            let finished = clock.now_ms();
            stats.lag_ms = (finished - due).max(0);
            let missed = (finished - due) / step_ms;
            if missed > 0 {
                stats.skipped = missed as u64;
                tracing::warn!(
                    missed,
                    step_ms,
                    "forecast step overran; skipping missed steps"
                );
            }
            report(&stats);
        }
    }

    /// One forecast step over every stored series at `now_ms`; publishes the snapshot.
    pub fn step(&mut self, now_ms: i64) -> Step {
        let t0 = Instant::now();
        self.steps += 1;
        let mut stats = StepStats {
            evicted: self.store.evict_idle(now_ms) as u64,
            ..StepStats::default()
        };
        let step = self.config.step;
        let now_bucket = now_ms.div_euclid(self.store.step_ms());
        let wall_step = self.store.clock().to_wall(step);
        let budget = Budget::for_step(t0, wall_step);
        // Forest training gets the first quarter of the step, like `auto` re-choices.
        let train_deadline = t0 + wall_step / 4;
        self.forecaster.begin_step(budget);
        self.anomaly.stats = Default::default();
        self.targets.begin_step();
        let mut out: Vec<SeriesForecast> = Vec::with_capacity(self.store.series_count());
        for shard in 0..self.store.shard_count() {
            self.collect_shard(shard, now_bucket);
            let jobs = std::mem::take(&mut self.jobs);
            for job in &jobs {
                self.visit(job, train_deadline, &mut out);
            }
            self.jobs = jobs;
            self.forecaster.flush_if_full(&mut out);
        }
        self.forecaster.flush(&mut out);
        stats.forecast = self.forecaster.end_step();
        self.anomaly
            .finish_step(self.steps, &self.anomaly_specs, train_deadline);
        self.summarise(now_ms, &out, &mut stats);
        let scaling = if self.targets.is_empty() {
            Vec::new()
        } else {
            self.targets.finish(
                now_ms,
                self.store.step_ms(),
                &out,
                &self.horizons,
                &self.config.forecast,
            )
        };
        stats.decisions = scaling.iter().map(|r| r.reason).collect();
        let snapshot = Arc::new(Snapshot {
            generated_ms: now_ms,
            step_ms: self.store.step_ms(),
            horizons: self.horizons.clone(),
            series: out,
            scaling,
        });
        self.snapshots.publish(snapshot.clone());
        stats.duration = t0.elapsed();
        Step { snapshot, stats }
    }

    /// Copies each series of one shard (padded with gaps up to the step's bucket, at most
    /// [`MAX_PAD`]) into the reused buffer, under the shard's lock.
    fn collect_shard(&mut self, shard: usize, now_bucket: i64) {
        self.jobs.clear();
        self.values.clear();
        let (values, jobs) = (&mut self.values, &mut self.jobs);
        self.store.visit_shard(shard, |s| {
            let Some(head) = s.ring.head() else { return };
            let pad = pad_to(now_bucket, head);
            let start = values.len();
            s.ring.copy_last(s.ring.history_len(), values);
            values.extend(std::iter::repeat_n(f32::NAN, pad));
            jobs.push(Job {
                labels: s.labels.clone(),
                id: s.id,
                spec: s.spec,
                stale: s.stale,
                rate: s.is_rate(),
                head,
                pad,
                start,
                len: values.len() - start,
            });
        });
    }

    /// One series: its anomaly score, the scaling targets it matches, its forecast.
    fn visit(&mut self, job: &Job, train_deadline: Instant, out: &mut Vec<SeriesForecast>) {
        let values = &self.values[job.start..job.start + job.len];
        let step_ms = self.store.step_ms();
        let origin = job.head + job.pad as i64;
        let mut f = SeriesForecast::new(
            job.labels.clone(),
            job.id,
            job.spec,
            job.head,
            origin,
            step_ms,
        );
        f.rate = job.rate;
        if job.stale {
            f.state = SeriesState::Stale;
        } else if let Some(spec) = &self.anomaly_specs[job.spec as usize] {
            // The newest point is the head bucket, before the padding.
            let observed = &values[..values.len() - job.pad];
            let entry = &self.config.forecast[job.spec as usize];
            f.anomaly = self.anomaly.score(
                job.id,
                job.spec as usize,
                spec,
                observed,
                job.head,
                season_for(&entry.seasons, observed.len()),
                self.steps,
                train_deadline,
            );
        }
        if !self.targets.is_empty() {
            let newest = (!job.stale)
                .then(|| {
                    values
                        .iter()
                        .rev()
                        .take(MAX_PAD as usize + 1)
                        .find(|x| x.is_finite())
                })
                .flatten()
                .map(|&x| x as f64);
            self.targets.observe(&job.labels, out.len(), newest);
        }
        if job.stale {
            out.push(f);
            return;
        }
        self.forecaster.forecast(values, job.pad, f, out);
    }

    /// Counts the step's series by state and model, and the anomaly scorer's state.
    fn summarise(&self, now_ms: i64, out: &[SeriesForecast], stats: &mut StepStats) {
        for s in out {
            stats.by_state[s.state.kind() as usize] += 1;
            if s.state == SeriesState::Ready {
                stats.max_age_ms = stats.max_age_ms.max(now_ms - s.fitted_ms);
                if let Some(m) = s.model {
                    stats.forecasts[m] += 1;
                }
            }
        }
        stats.series = self.store.series_count() as u64;
        stats.anomaly = self.anomaly.stats;
        stats.forests = self.anomaly.forest_counts();
        stats.anomaly_bytes = self.anomaly.heap_bytes();
    }
}

#[cfg(test)]
mod tests;
