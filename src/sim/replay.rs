//! Feeding a recorded series into the agent's own store and forecast loop, origin by origin,
//! so offline tools see exactly what the agent would have exported at each step.

use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::export::{SeriesForecast, Snapshot, SnapshotCell};
use crate::forecast::neural::LstmModel;
use crate::forecast::scheduler::Scheduler;
use crate::store::{hash_labels, AppendStats, LabelRef, Sample, Store};
use crate::telemetry::Telemetry;

/// The metric name replayed series carry (configs select it).
pub const REPLAY_NAME: &str = "replay";

/// One series replayed through a real [`Store`] and [`Scheduler`].
pub struct Replay<'a> {
    store: Arc<Store>,
    sched: Scheduler,
    values: &'a [f32],
    first_bucket: i64,
    step_ms: i64,
    fed: i64,
    stats: AppendStats,
}

impl<'a> Replay<'a> {
    /// `values[i]` is bucket `first_bucket + i` (NaN: a gap, never sent).
    pub fn new(
        config: &Arc<Config>,
        lstm: Option<Arc<LstmModel>>,
        calendar: bool,
        first_bucket: i64,
        values: &'a [f32],
    ) -> Result<Self> {
        let step_ms = config.step.as_millis() as i64;
        let store = Arc::new(Store::new(config, first_bucket * step_ms));
        let cell = Arc::new(SnapshotCell::new(Snapshot::empty(config)));
        let mut sched = Scheduler::new(
            config.clone(),
            store.clone(),
            Arc::new(Telemetry::default()),
            cell,
            Vec::new(),
            lstm,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        sched.set_calendar(calendar);
        Ok(Self {
            store,
            sched,
            values,
            first_bucket,
            step_ms,
            fed: first_bucket,
            stats: AppendStats::default(),
        })
    }

    /// Appends every bucket up to `origin` not sent yet (as the samples Prometheus would
    /// have sent), runs one forecast step at the start of bucket `origin`, and returns the
    /// series' forecast (in any state); `None` before the series has a sample.
    pub fn forecast_at(&mut self, origin: i64) -> Option<SeriesForecast> {
        let labels = [LabelRef::new("__name__", REPLAY_NAME)];
        let end = (self.first_bucket + self.values.len() as i64 - 1).min(origin);
        let samples: Vec<Sample> = (self.fed..=end)
            .filter_map(|b| {
                let v = self.values[(b - self.first_bucket) as usize];
                v.is_finite().then_some(Sample {
                    value: v as f64,
                    timestamp: b * self.step_ms,
                })
            })
            .collect();
        if !samples.is_empty() {
            self.store.append(
                hash_labels(&labels),
                &labels,
                &samples,
                origin * self.step_ms,
                &mut self.stats,
            );
        }
        self.fed = self.fed.max(end + 1);
        let snap = self.sched.step(origin * self.step_ms);
        snap.series.first().cloned()
    }
}
