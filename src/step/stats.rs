//! What one step did ([`StepStats`]), and how it adds to promcast's self-metrics.

use std::time::Duration;

use crate::anomaly::online::StepStats as AnomalyStats;
use crate::forecast::ForecastStats;
use crate::snapshot::{ModelKind, PerModel, Reason, StateKind};
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
        t.auto_first_choices.inc_by(s.forecast.auto_first_choices);
        t.auto_waiting.set(s.forecast.auto_waiting as i64);
        t.auto_provisional.set(s.forecast.auto_provisional as i64);
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
