//! The step, above `forecast/`, `anomaly/` and `scale/`: once per step, on its own OS
//! thread (model work never runs on the async runtime), visit every stored series shard by
//! shard, hand each to the anomaly scorer, the scaling targets and the [`Forecaster`]
//! through one per-step interface ([`stage::Stage`]), publish the step's [`Snapshot`], and
//! report one [`StepStats`].
//!
//! Degrading on purpose when a step's work does not fit in the step: expensive work (MSTL
//! refits, `auto` re-choices, forest trainings) is spent from the step's [`Budget`] and the
//! rest deferred and counted; a step that overruns the next boundary skips the missed steps
//! (counted) instead of queueing them, and the publication lag is reported.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::forecast::model::pad_to;
use crate::forecast::neural::LstmModel;
use crate::forecast::{Forecaster, ModelMismatch};
use crate::snapshot::{SeriesForecast, SeriesState, Snapshot, SnapshotCell};
use crate::store::{LabelSet, SeriesId, Store};
use stage::{Anomalies, Scaling, Stage, StepInfo, StepOutput, Visit};
pub use stats::StepStats;

pub mod stage;
mod stats;

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
    anomalies: Anomalies,
    /// `scaling:` targets and their scale-in windows.
    scaling: Scaling,
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
        let horizons = crate::snapshot::horizons_of(&config);
        Ok(Self {
            forecaster: Forecaster::new(&config, lstm)?,
            anomalies: Anomalies::new(&config),
            scaling: Scaling::new(config.clone(), horizons.clone()),
            horizons,
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
        let start = Instant::now();
        self.steps += 1;
        let evicted = self.store.evict_idle(now_ms) as u64;
        let info = StepInfo {
            steps: self.steps,
            now_ms,
            step_ms: self.store.step_ms(),
            start,
            wall_step: self.store.clock().to_wall(self.config.step),
            series: self.store.series_count(),
        };
        let now_bucket = now_ms.div_euclid(info.step_ms);
        // In the order they see each series: the score, the observed load, the forecast.
        let mut stages: [&mut dyn Stage; 3] =
            [&mut self.anomalies, &mut self.scaling, &mut self.forecaster];
        stages.iter_mut().for_each(|s| s.begin(&info));
        let mut out: Vec<SeriesForecast> = Vec::with_capacity(self.store.series_count());
        for shard in 0..self.store.shard_count() {
            collect_shard(
                &self.store,
                shard,
                now_bucket,
                &mut self.values,
                &mut self.jobs,
            );
            for job in &self.jobs {
                let values = &self.values[job.start..job.start + job.len];
                let visit = job.visit(values, out.len());
                let mut f = job.forecast(info.step_ms);
                stages
                    .iter_mut()
                    .for_each(|s| s.visit(&info, &visit, &mut f));
                out.push(f);
            }
            stages.iter_mut().for_each(|s| s.shard_done(&mut out));
        }
        // Batched forecasts complete before the figures and the targets read them.
        let mut done = StepOutput::default();
        let [anomalies, scaling, forecaster] = stages;
        for s in [forecaster, anomalies, scaling] {
            s.finish(&info, &mut out, &mut done);
        }
        let mut stats = done.stats;
        stats.evicted = evicted;
        self.summarise(now_ms, &out, &mut stats);
        let snapshot = Arc::new(Snapshot {
            generated_ms: now_ms,
            step_ms: info.step_ms,
            horizons: self.horizons.clone(),
            series: out,
            scaling: done.scaling,
        });
        self.snapshots.publish(snapshot.clone());
        stats.duration = start.elapsed();
        Step { snapshot, stats }
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
    }
}

/// Copies each series of one shard (padded with gaps up to the step's bucket, at most
/// [`crate::forecast::model::MAX_PAD`]) into the reused buffer, under the shard's lock.
fn collect_shard(
    store: &Store,
    shard: usize,
    now_bucket: i64,
    values: &mut Vec<f32>,
    jobs: &mut Vec<Job>,
) {
    jobs.clear();
    values.clear();
    store.visit_shard(shard, |s| {
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

impl Job {
    /// The series as the stages see it, its forecast to be `out[at]`.
    fn visit<'a>(&'a self, values: &'a [f32], at: usize) -> Visit<'a> {
        Visit {
            id: self.id,
            entry: self.spec as usize,
            labels: &self.labels,
            values,
            pad: self.pad,
            head: self.head,
            stale: self.stale,
            at,
        }
    }

    /// The series' forecast before any stage has filled it in.
    fn forecast(&self, step_ms: i64) -> SeriesForecast {
        let origin = self.head + self.pad as i64;
        let mut f = SeriesForecast::new(
            self.labels.clone(),
            self.id,
            self.spec,
            self.head,
            origin,
            step_ms,
        );
        f.rate = self.rate;
        if self.stale {
            f.state = SeriesState::Stale;
        }
        f
    }
}

#[cfg(test)]
mod tests;
