//! The per-step interface the loop drives its three parts through ([`Stage`]): the anomaly
//! scorer, the scaling targets and the forecaster each start a step, visit every series,
//! and finish the step into its figures (and, for the targets, the recommendations). The
//! parts live in `anomaly/`, `scale/` and `forecast/` and know nothing of the loop; the
//! adapters here are the only place that joins them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stats::StepStats;
use crate::anomaly::online::{season_for, AnomalyScorer, Newest};
use crate::config::{AnomalySpec, Config};
use crate::forecast::model::MAX_PAD;
use crate::forecast::{Budget, Forecaster};
use crate::scale::Targets;
use crate::snapshot::{Recommendation, SeriesForecast};
use crate::store::{LabelSet, SeriesId};

/// What every stage is told about the step.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// Steps run so far, this one included.
    pub steps: u64,
    pub now_ms: i64,
    pub step_ms: i64,
    /// When the step started, and the step's length in wall time (the budgets' base).
    pub start: Instant,
    pub wall_step: Duration,
    /// Series in the store when the step began (what the budgets project the step by).
    pub series: usize,
}

impl StepInfo {
    /// Forest training gets the first quarter of the step (`auto`'s choices a quarter of its
    /// time: `forecast::Budget`).
    pub fn train_deadline(&self) -> Instant {
        self.start + self.wall_step / 4
    }
}

/// One series as every stage sees it in a step.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    pub id: SeriesId,
    pub entry: usize,
    pub labels: &'a Arc<LabelSet>,
    /// Oldest → newest; the last `pad` are gaps padded towards the step's bucket.
    pub values: &'a [f32],
    pub pad: usize,
    /// The series' newest bucket.
    pub head: i64,
    /// Marked stale by Prometheus: no score, no forecast, no observed load.
    pub stale: bool,
    /// Where the series' forecast will sit in the step's output.
    pub at: usize,
}

impl Visit<'_> {
    /// The values up to the newest bucket (without the padding).
    pub fn observed(&self) -> &[f32] {
        &self.values[..self.values.len() - self.pad]
    }
}

/// What a step produces besides the series' forecasts.
#[derive(Debug, Default)]
pub struct StepOutput {
    pub stats: StepStats,
    pub scaling: Vec<Recommendation>,
}

/// One part of the step.
pub trait Stage {
    /// Starts a step.
    fn begin(&mut self, step: &StepInfo);
    /// One series: fills this stage's part of its forecast `f` (pushed to the output after
    /// every stage has seen it).
    fn visit(&mut self, step: &StepInfo, series: &Visit<'_>, f: &mut SeriesForecast);
    /// After each shard: work batched across series may run on the output so far.
    fn shard_done(&mut self, _out: &mut [SeriesForecast]) {}
    /// Ends the step; `out` holds every series' forecast.
    fn finish(&mut self, step: &StepInfo, out: &mut [SeriesForecast], done: &mut StepOutput);
}

impl Stage for Forecaster {
    fn begin(&mut self, step: &StepInfo) {
        self.begin_step(Budget::for_step(step.start, step.wall_step, step.series));
    }

    fn visit(&mut self, _step: &StepInfo, series: &Visit<'_>, f: &mut SeriesForecast) {
        if !series.stale {
            self.forecast(series.values, series.pad, f, series.at);
        }
    }

    fn shard_done(&mut self, out: &mut [SeriesForecast]) {
        self.flush_if_full(out);
    }

    fn finish(&mut self, _step: &StepInfo, out: &mut [SeriesForecast], done: &mut StepOutput) {
        self.flush(out);
        done.stats.forecast = self.end_step();
    }
}

/// The anomaly scorer with each entry's anomaly settings and seasons.
pub struct Anomalies {
    pub scorer: AnomalyScorer,
    specs: Vec<Option<AnomalySpec>>,
    seasons: Vec<Vec<usize>>,
}

impl Anomalies {
    pub fn new(config: &Config) -> Self {
        Self {
            scorer: AnomalyScorer::new(
                config.forecast.len(),
                config.limits.max_anomaly_forests,
                config.ring_len.get(),
            ),
            specs: config.forecast.iter().map(|f| f.anomaly.clone()).collect(),
            seasons: config.forecast.iter().map(|f| f.seasons.clone()).collect(),
        }
    }
}

impl Stage for Anomalies {
    fn begin(&mut self, _step: &StepInfo) {
        self.scorer.begin_step();
    }

    fn visit(&mut self, step: &StepInfo, series: &Visit<'_>, f: &mut SeriesForecast) {
        let Some(spec) = self.specs[series.entry].as_ref().filter(|_| !series.stale) else {
            return;
        };
        // The newest point is the head bucket, before the padding.
        let observed = series.observed();
        let newest = Newest {
            id: series.id,
            entry: series.entry,
            spec,
            values: observed,
            head: series.head,
            season: season_for(&self.seasons[series.entry], observed.len()),
        };
        f.anomaly = self
            .scorer
            .score(&newest, step.steps, step.train_deadline());
    }

    fn finish(&mut self, step: &StepInfo, _out: &mut [SeriesForecast], done: &mut StepOutput) {
        self.scorer
            .finish_step(step.steps, &self.specs, step.train_deadline());
        done.stats.anomaly = self.scorer.stats;
        done.stats.forests = self.scorer.forest_counts();
        done.stats.anomaly_bytes = self.scorer.heap_bytes();
    }
}

/// The `scaling:` targets, with what they read of each entry.
pub struct Scaling {
    targets: Targets,
    config: Arc<Config>,
    horizons: Vec<Vec<(String, i64)>>,
}

impl Scaling {
    pub fn new(config: Arc<Config>, horizons: Vec<Vec<(String, i64)>>) -> Self {
        Self {
            targets: Targets::new(&config.scaling),
            config,
            horizons,
        }
    }
}

impl Stage for Scaling {
    fn begin(&mut self, _step: &StepInfo) {
        self.targets.begin_step();
    }

    fn visit(&mut self, _step: &StepInfo, series: &Visit<'_>, _f: &mut SeriesForecast) {
        if self.targets.is_empty() {
            return;
        }
        let newest = (!series.stale)
            .then(|| {
                series
                    .values
                    .iter()
                    .rev()
                    .take(MAX_PAD as usize + 1)
                    .find(|x| x.is_finite())
            })
            .flatten()
            .map(|&x| x as f64);
        self.targets.observe(series.labels, series.at, newest);
    }

    fn finish(&mut self, step: &StepInfo, out: &mut [SeriesForecast], done: &mut StepOutput) {
        if self.targets.is_empty() {
            return;
        }
        done.scaling = self.targets.finish(
            step.now_ms,
            step.step_ms,
            out,
            &self.horizons,
            &self.config.forecast,
        );
        done.stats.decisions = done.scaling.iter().map(|r| r.reason).collect();
    }
}
