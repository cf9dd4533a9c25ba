//! Forecasting a recorded series origin by origin with the agent's own [`Forecaster`]: at
//! each origin the window is what the agent's ring would hold (every observed bucket up to
//! the origin, at most `storage.retention / step` of them, padded towards the origin as the
//! loop pads), and the forecaster keeps its per-series state (MSTL fits, `auto`'s choice)
//! from origin to origin as the agent does from step to step. No store, no loop: the same
//! model values and windowing, so offline tools measure what the agent would have exported.

use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::forecast::model::pad_to;
use crate::forecast::neural::LstmModel;
use crate::forecast::{Budget, Forecaster};
use crate::snapshot::SeriesForecast;
use crate::store::{LabelSet, SeriesId};

/// The metric name replayed series carry (configs select it).
pub const REPLAY_NAME: &str = "replay";

/// One series replayed through a [`Forecaster`] built for `config`'s single entry.
pub struct Replay<'a> {
    forecaster: Forecaster,
    labels: Arc<LabelSet>,
    values: &'a [f32],
    first_bucket: i64,
    /// Index of the first observed value: where the ring's history starts.
    first_observed: Option<usize>,
    ring_len: usize,
    step_ms: i64,
    window: Vec<f32>,
    out: Vec<SeriesForecast>,
}

impl<'a> Replay<'a> {
    /// `values[i]` is bucket `first_bucket + i` (NaN: a gap, never sent); `calendar` says
    /// whether bucket times are real times.
    pub fn new(
        config: &Config,
        lstm: Option<Arc<LstmModel>>,
        calendar: bool,
        first_bucket: i64,
        values: &'a [f32],
    ) -> Result<Self> {
        let mut forecaster = Forecaster::new(config, lstm).map_err(|e| anyhow::anyhow!("{e}"))?;
        forecaster.set_calendar(calendar);
        Ok(Self {
            forecaster,
            labels: Arc::new(LabelSet::from_pairs([("__name__", REPLAY_NAME)])),
            values,
            first_bucket,
            first_observed: values.iter().position(|v| v.is_finite()),
            ring_len: config.ring_len.get(),
            step_ms: config.step.as_millis() as i64,
            window: Vec::new(),
            out: Vec::with_capacity(1),
        })
    }

    /// The series' forecast (in any state) made at the start of bucket `origin` from the
    /// buckets up to it; `None` before the series has an observed bucket.
    pub fn forecast_at(&mut self, origin: i64) -> Option<SeriesForecast> {
        self.forecast_with(origin, origin)
    }

    /// The forecast the agent makes at the start of bucket `now` when its newest data is
    /// bucket `last` (the ring padded from there to `now`, as the loop pads it).
    pub fn forecast_with(&mut self, now: i64, last: i64) -> Option<SeriesForecast> {
        self.forecaster.begin_step(Budget::unlimited());
        let f = self.forecast_step(now, last);
        self.forecaster.end_step();
        f
    }

    fn forecast_step(&mut self, origin: i64, last: i64) -> Option<SeriesForecast> {
        let first = self.first_observed?;
        let end =
            ((last.min(origin) - self.first_bucket).min(self.values.len() as i64 - 1)) as isize;
        let head = (first as isize..=end)
            .rev()
            .find(|&i| self.values[i as usize].is_finite())? as usize;
        let len = (head - first + 1).min(self.ring_len);
        let head_bucket = self.first_bucket + head as i64;
        let pad = pad_to(origin, head_bucket);
        self.window.clear();
        self.window
            .extend_from_slice(&self.values[head + 1 - len..=head]);
        self.window.extend(std::iter::repeat_n(f32::NAN, pad));
        let base = head_bucket + pad as i64;
        let mut f = SeriesForecast::new(
            self.labels.clone(),
            SeriesId(0),
            0,
            head_bucket,
            base,
            self.step_ms,
        );
        self.out.clear();
        self.forecaster.forecast(&self.window, pad, &mut f, 0);
        self.out.push(f);
        self.forecaster.flush(&mut self.out);
        self.out.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::load::load_lstm;
    use crate::forecast::neural::BackendChoice;
    use crate::snapshot::{Snapshot, SnapshotCell};
    use crate::step::Scheduler;
    use crate::store::{hash_labels, AppendStats, LabelRef, Sample, Store};

    /// The replay without a store must forecast exactly what the agent's loop over a real
    /// store forecasts at the same origins: same windows, same per-series state, same
    /// choices. Real NASA traffic with its gaps (a zero run made a gap), every model.
    #[test]
    fn replay_equals_the_agents_loop_over_a_store() {
        let nasa = crate::offline::data::nasa_days(3);
        let (b0, mut values) = nasa.bucketed(60_000);
        // A gap longer than the padding, and the series' first buckets missing.
        values[..7].fill(f32::NAN);
        values[3000..3012].fill(f32::NAN);
        let lstm = load_lstm(&crate::config::ModelSource::Builtin, &BackendChoice::Cpu).unwrap();
        for model in crate::offline::backtest::every_model() {
            let yaml = format!(
                "storage: {{ step: 1m, retention: 1d, idle_timeout: 3650d }}\n\
                 forecast:\n  - selector: '{{__name__=\"{REPLAY_NAME}\"}}'\n    horizons: [5m, 15m, 30m]\n    \
                 model: {model}\n    seasons: [1h, 1d]\n    refit_every: 15m\n    auto_every: 20m\n    anomaly: {{ enabled: false }}\n\
                 limits: {{ max_series: 10, max_future: 3650d }}\n"
            );
            let config = Arc::new(Config::from_yaml(&yaml, "test", None).unwrap());
            let mut replay = Replay::new(&config, lstm.clone(), true, b0, &values).unwrap();
            let store = Arc::new(Store::new(&config, b0 * 60_000));
            let cell = Arc::new(SnapshotCell::new(Snapshot::empty(&config)));
            let mut sched =
                Scheduler::new(config.clone(), store.clone(), cell, lstm.clone()).unwrap();
            let labels = [LabelRef::new("__name__", REPLAY_NAME)];
            let mut fed = b0;
            let (mut compared, mut ready) = (0, 0);
            for origin in (b0 + 2900..b0 + 3100).chain(b0 + 4000..b0 + 4100) {
                let samples: Vec<Sample> = (fed..=origin)
                    .filter_map(|b| {
                        let v = values[(b - b0) as usize];
                        v.is_finite().then_some(Sample {
                            value: v as f64,
                            timestamp: b * 60_000,
                        })
                    })
                    .collect();
                fed = origin + 1;
                if !samples.is_empty() {
                    let h = hash_labels(&labels);
                    store.append(
                        h,
                        &labels,
                        &samples,
                        origin * 60_000,
                        &mut AppendStats::default(),
                    );
                }
                let agent = sched.step(origin * 60_000).snapshot.series.first().cloned();
                let offline = replay.forecast_at(origin);
                let (Some(a), Some(o)) = (agent, offline) else {
                    panic!("{model} at {origin}: a forecast on one side only");
                };
                assert_eq!(a.state, o.state, "{model} at {origin}");
                assert_eq!(a.model, o.model, "{model} at {origin}");
                assert_eq!(a.points, o.points, "{model} at {origin}");
                assert_eq!(
                    (a.origin_ms, a.base, a.fitted_ms),
                    (o.origin_ms, o.base, o.fitted_ms)
                );
                compared += 1;
                ready += a.is_ready() as usize;
            }
            assert_eq!(compared, 300);
            assert!(ready > 250, "{model}: only {ready} ready forecasts");
        }
    }
}
