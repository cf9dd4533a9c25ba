//! Forecasting series with the configured models: for each forecast entry, which model
//! serves a series (the configured one, or `auto`'s choice, with the fallbacks below), the
//! per-series state kept between steps (`auto`'s choice, expensive fits), the step's time
//! budget, and the batch that batched models are fed. The agent's loop
//! ([`super::scheduler`]) and the offline replays (`backtest`, `simulate`) both forecast
//! through a [`Forecaster`]: what is measured offline is what the agent runs.
//!
//! Per series and step, with the entry's `model`:
//! - `lstm`: queued for the batch once its window is filled, warming up before;
//! - `mstl`: refitted when due and within the refit budget, else its kept fit read forward;
//!   with no usable fit (deferred) a baseline serves the step; a failed fit fails the series;
//! - `seasonal_naive`, `naive`: fitted every step;
//! - `auto`: the model [`auto::choose`] picked for the series (re-chosen every `auto_every`
//!   steps within the choice budget), falling through lstm → mstl → baseline when the chosen
//!   model cannot serve this step; a model that fails hands the step to the baseline.
//!
//! The baseline is seasonal naive with the longest season the history covers, else naive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::auto;
use super::lstm::Lstm;
use super::model::{Ask, AtOrigin, Fit, ModelError, Predict, Window};
use super::mstl::Mstl;
use super::naive::{Naive, SeasonalNaive, MIN_ERRORS};
use super::neural::LstmModel;
use super::registry::{FittedModel, Model};
use crate::config::{Config, ModelChoice};
use crate::snapshot::{ModelKind, PerModel, Point, SeriesForecast, SeriesState};
use crate::store::SeriesId;

/// Rows per batched-model call once a shard is done.
pub const BATCH_ROWS: usize = 512;

/// How long a step may spend on expensive work before deferring the rest.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Refits of kept models, and MSTL among `auto`'s candidates, until then.
    refits_until: Option<Instant>,
    /// `auto` re-choices until then.
    choices_until: Option<Instant>,
}

impl Budget {
    /// No limit: offline replays, where the result must not depend on the machine.
    pub fn unlimited() -> Self {
        Self {
            refits_until: None,
            choices_until: None,
        }
    }

    /// The agent's: refits within the first half of the step, `auto` re-choices within its
    /// first quarter.
    pub fn for_step(start: Instant, step: Duration) -> Self {
        Self {
            refits_until: Some(start + step / 2),
            choices_until: Some(start + step / 4),
        }
    }

    fn refits(&self) -> bool {
        self.refits_until.is_none_or(|d| Instant::now() < d)
    }

    fn choices(&self) -> bool {
        self.choices_until.is_none_or(|d| Instant::now() < d)
    }
}

/// What forecasting did in one step, for self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ForecastStats {
    /// Per-series model failures, by model.
    pub errors: PerModel<u64>,
    /// Refits postponed to a later step (over the refit budget).
    pub refits_deferred: u64,
    /// `auto`'s (re-)choices, by the model chosen.
    pub auto_choices: PerModel<u64>,
    /// `auto` re-choices postponed to a later step.
    pub auto_deferred: u64,
}

/// Why the configured LSTM cannot serve an entry that asks for it.
#[derive(Debug, thiserror::Error)]
#[error("forecast[{index}]: model lstm cannot serve this entry: {reason}")]
pub struct LstmMismatch {
    pub index: usize,
    pub reason: String,
}

/// One forecast entry's models.
struct Entry {
    choice: ModelChoice,
    auto_every: u64,
    ask: Ask,
    naive: Model,
    seasonal: Model,
    mstl: Model,
    /// `None` when no model is loaded or it does not fit the entry.
    lstm: Option<Lstm>,
}

/// Per-series state kept between steps (only for series that need some).
#[derive(Debug)]
struct SeriesModels {
    /// The fit of a model that keeps fits (mstl), read forward between refits.
    kept: Option<FittedModel>,
    /// `auto`'s current choice and the step it was made.
    auto: Option<(ModelKind, u64)>,
    /// The last step that saw the series, to drop state of series that are gone.
    seen: u64,
}

/// A series waiting for its entry's batched model: its window, copied.
struct Pending {
    /// Index into the step's output.
    at: usize,
    entry: usize,
    start: usize,
    len: usize,
    origin: i64,
    pad: usize,
}

/// Forecasts series with the entries' models; see the module documentation.
pub struct Forecaster {
    entries: Vec<Entry>,
    series: HashMap<SeriesId, SeriesModels>,
    step_ms: i64,
    /// Whether bucket times are calendar times (always in the agent; not for a replay of an
    /// indexed trace).
    calendar: bool,
    steps: u64,
    budget: Budget,
    stats: ForecastStats,
    pending: Vec<Pending>,
    pending_values: Vec<f32>,
    points: Vec<Point>,
}

impl Forecaster {
    /// The models of every entry of `config`; `lstm` is the loaded neural model, if any. An
    /// entry that asks for `lstm` when the model cannot serve it is an error; `auto` entries
    /// then use the classic models.
    pub fn new(config: &Config, lstm: Option<Arc<LstmModel>>) -> Result<Self, LstmMismatch> {
        let mut entries = Vec::with_capacity(config.forecast.len());
        for (index, spec) in config.forecast.iter().enumerate() {
            let ask = Ask::new(spec, config.step);
            let fitted = match &lstm {
                None => Err("no model loaded (inference.model)".to_string()),
                Some(m) => Lstm::new(m.clone(), ask.clone()),
            };
            if let Err(reason) = &fitted {
                if spec.model == ModelChoice::Lstm {
                    return Err(LstmMismatch {
                        index,
                        reason: reason.clone(),
                    });
                }
                if lstm.is_some() {
                    tracing::info!(forecast = index, %reason, "lstm model does not fit this entry; auto uses the classic models");
                }
            }
            entries.push(Entry {
                choice: spec.model,
                auto_every: spec.auto_every as u64,
                naive: Model::Naive(Naive::new(ask.clone())),
                seasonal: Model::SeasonalNaive(SeasonalNaive::new(ask.clone())),
                mstl: Model::Mstl(Mstl::new(ask.clone(), spec.refit_every)),
                lstm: fitted.ok(),
                ask,
            });
        }
        Ok(Self {
            entries,
            series: HashMap::new(),
            step_ms: config.step.as_millis() as i64,
            calendar: true,
            steps: 0,
            budget: Budget::unlimited(),
            stats: ForecastStats::default(),
            pending: Vec::new(),
            pending_values: Vec::new(),
            points: Vec::new(),
        })
    }

    /// Marks bucket times as carrying no calendar meaning (offline replays of indexed traces).
    pub fn set_calendar(&mut self, calendar: bool) {
        self.calendar = calendar;
    }

    /// Starts a step with this budget.
    pub fn begin_step(&mut self, budget: Budget) {
        self.steps += 1;
        self.budget = budget;
        self.stats = ForecastStats::default();
    }

    /// Ends a step: forgets the state of series the step did not see; returns its figures.
    pub fn end_step(&mut self) -> ForecastStats {
        let steps = self.steps;
        self.series.retain(|_, s| s.seen == steps);
        self.stats
    }

    /// Series waiting for a batched model.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Forecasts the series `f` describes (its id, entry and the bucket its horizons count
    /// from) whose history is `values` (oldest → newest, the last `pad` of them gaps padded
    /// towards now), and pushes `f` with its state, model, points and fit time filled in onto
    /// `out`. A series for a batched model is pushed as it is and completed by
    /// [`Forecaster::flush`].
    pub fn forecast(
        &mut self,
        values: &[f32],
        pad: usize,
        mut f: SeriesForecast,
        out: &mut Vec<SeriesForecast>,
    ) {
        let (entry, origin) = (f.spec as usize, f.base);
        let w = Window {
            values,
            origin,
            pad,
            step_ms: self.step_ms,
            calendar: self.calendar,
        };
        if self.forecast_one(f.id, entry, &w, &mut f) {
            let start = self.pending_values.len();
            self.pending_values.extend_from_slice(values);
            self.pending.push(Pending {
                at: out.len(),
                entry,
                start,
                len: values.len(),
                origin,
                pad,
            });
        }
        out.push(f);
    }

    /// Runs the batched models on the waiting series once there are [`BATCH_ROWS`] of them.
    pub fn flush_if_full(&mut self, out: &mut [SeriesForecast]) {
        if self.pending.len() >= BATCH_ROWS {
            self.flush(out);
        }
    }

    /// Runs the batched models on every waiting series (one call per entry) and completes
    /// their forecasts in `out`.
    pub fn flush(&mut self, out: &mut [SeriesForecast]) {
        if self.pending.is_empty() {
            return;
        }
        let Self {
            entries,
            pending,
            pending_values,
            stats,
            points,
            step_ms,
            calendar,
            ..
        } = self;
        let mut fits = Vec::with_capacity(pending.len());
        for (index, e) in entries.iter().enumerate() {
            let rows: Vec<&Pending> = pending.iter().filter(|p| p.entry == index).collect();
            let Some(lstm) = e.lstm.as_ref().filter(|_| !rows.is_empty()) else {
                continue;
            };
            let windows: Vec<Window<'_>> = rows
                .iter()
                .map(|p| Window {
                    values: &pending_values[p.start..p.start + p.len],
                    origin: p.origin,
                    pad: p.pad,
                    step_ms: *step_ms,
                    calendar: *calendar,
                })
                .collect();
            fits.clear();
            lstm.fit_batch(&windows, &mut fits);
            for ((p, w), fit) in rows.iter().zip(&windows).zip(fits.drain(..)) {
                complete_batched(e, w, fit, &mut out[p.at], points, stats);
            }
        }
        pending.clear();
        pending_values.clear();
    }

    /// Fills `f` for one series; true when it waits for the batch.
    fn forecast_one(
        &mut self,
        id: SeriesId,
        entry: usize,
        w: &Window<'_>,
        f: &mut SeriesForecast,
    ) -> bool {
        let Self {
            entries,
            series,
            steps,
            budget,
            stats,
            points,
            step_ms,
            ..
        } = self;
        let e = &entries[entry];
        let auto = e.choice == ModelChoice::Auto;
        let want = if auto {
            auto_choice(e, w, state_of(series, id, *steps), *steps, budget, stats)
        } else {
            None
        };
        let wants = |k: ModelKind| want.is_none_or(|w| w == k);

        if let Some(lstm) = &e.lstm {
            if e.choice == ModelChoice::Lstm || (auto && wants(ModelKind::Lstm)) {
                let points_needed = lstm.points_needed(w);
                if points_needed == 0 {
                    f.model = Some(ModelKind::Lstm);
                    return true;
                }
                if !auto {
                    f.state = warming(ModelKind::Lstm, points_needed);
                    return false;
                }
            }
        }

        let mstl_ready = e.mstl.points_needed(w) == 0;
        let mstl_wanted = want.map_or(mstl_ready, |k| k == ModelKind::Mstl);
        if e.choice == ModelChoice::Mstl || (auto && mstl_wanted) {
            if !mstl_ready {
                if !auto {
                    f.state = warming(ModelKind::Mstl, e.mstl.points_needed(w));
                    return false;
                }
            } else {
                match kept_forecast(
                    &e.mstl,
                    w,
                    state_of(series, id, *steps),
                    budget,
                    stats,
                    points,
                ) {
                    Kept::Points(fitted_at) => {
                        f.model = Some(e.mstl.kind());
                        f.points = points.clone();
                        f.fitted_ms = fitted_at * *step_ms;
                        return false;
                    }
                    Kept::Failed(reason) if !auto => {
                        f.state = SeriesState::Failed { reason };
                        return false;
                    }
                    // Deferred, or failed under auto: a baseline serves this step.
                    Kept::Failed(_) | Kept::Unavailable => {}
                }
            }
        }

        let prefer_naive = e.choice == ModelChoice::Naive || want == Some(ModelKind::Naive);
        baseline(e, w, prefer_naive, points, f);
        false
    }
}

/// Completes a batched series from its fit; a failure hands `auto`'s series to the baseline
/// and fails the others.
fn complete_batched(
    e: &Entry,
    w: &Window<'_>,
    fit: Result<AtOrigin, ModelError>,
    f: &mut SeriesForecast,
    points: &mut Vec<Point>,
    stats: &mut ForecastStats,
) {
    let reason = match fit {
        Ok(fit) => {
            if fit.predict(w.origin, points) && points.iter().all(Point::is_finite) {
                f.points = points.clone();
                return;
            }
            "lstm produced non-finite forecasts".to_string()
        }
        Err(ModelError::Failed(reason)) => reason,
        Err(ModelError::WarmingUp { points_needed }) => {
            format!("lstm needs {points_needed} more points")
        }
    };
    stats.errors[ModelKind::Lstm] += 1;
    if e.choice == ModelChoice::Auto {
        baseline(e, w, false, points, f);
    } else {
        f.state = SeriesState::Failed { reason };
    }
}

/// The series' kept state, created when first needed; marks it seen in this step.
fn state_of(
    series: &mut HashMap<SeriesId, SeriesModels>,
    id: SeriesId,
    steps: u64,
) -> &mut SeriesModels {
    let s = series.entry(id).or_insert(SeriesModels {
        kept: None,
        auto: None,
        seen: steps,
    });
    s.seen = steps;
    s
}

fn warming(model: ModelKind, points_needed: usize) -> SeriesState {
    SeriesState::WarmingUp {
        for_model: model.as_str(),
        points_needed,
    }
}

/// The model `auto` uses for this series: kept for `auto_every` steps, then re-chosen by
/// [`auto::choose`] within the choice budget (over it: the current choice, re-chosen at a
/// later step). `None` while the history is too short to compare.
fn auto_choice(
    e: &Entry,
    w: &Window<'_>,
    state: &mut SeriesModels,
    steps: u64,
    budget: &Budget,
    stats: &mut ForecastStats,
) -> Option<ModelKind> {
    if let Some((kind, at)) = state.auto {
        if steps.saturating_sub(at) < e.auto_every {
            return Some(kind);
        }
    }
    let current = state.auto.map(|a| a.0);
    if !budget.choices() {
        stats.auto_deferred += 1;
        return current;
    }
    let choice = auto::choose(w, &e.ask, e.lstm.as_ref(), current, budget.refits())?;
    tracing::debug!(
        scores = ?choice.scores,
        incumbent = ?choice.incumbent,
        chosen = ?choice.model,
        "auto choice"
    );
    state.auto = Some((choice.model, steps));
    stats.auto_choices[choice.model] += 1;
    Some(choice.model)
}

/// What a model that keeps its fits offers this step.
enum Kept {
    /// Points (in the caller's buffer) from a fit of this bucket.
    Points(i64),
    /// The refit failed.
    Failed(String),
    /// No fit reaches this step (the refit was deferred).
    Unavailable,
}

/// Refits `model` when due and within the refit budget, then reads its kept fit at the
/// window's origin into `points`.
fn kept_forecast(
    model: &Model,
    w: &Window<'_>,
    state: &mut SeriesModels,
    budget: &Budget,
    stats: &mut ForecastStats,
    points: &mut Vec<Point>,
) -> Kept {
    let due = state
        .kept
        .as_ref()
        .is_none_or(|k| model.refit_due(k, w.origin));
    let mut failed = None;
    if due {
        if budget.refits() {
            match model.fit(w) {
                Ok(fit) => state.kept = Some(fit),
                Err(e) => {
                    stats.errors[model.kind()] += 1;
                    state.kept = None;
                    failed = Some(match e {
                        ModelError::Failed(reason) => reason,
                        ModelError::WarmingUp { points_needed } => {
                            format!("needs {points_needed} more points")
                        }
                    });
                }
            }
        } else {
            stats.refits_deferred += 1;
        }
    }
    match (&state.kept, failed) {
        (Some(k), _) if k.predict(w.origin, points) => Kept::Points(k.fitted_at()),
        (_, Some(reason)) => Kept::Failed(reason),
        _ => Kept::Unavailable,
    }
}

/// Seasonal naive with the longest season the history covers, else naive (unless the entry
/// asks for seasonal naive, which then warms up); fills `f`.
fn baseline(
    e: &Entry,
    w: &Window<'_>,
    prefer_naive: bool,
    points: &mut Vec<Point>,
    f: &mut SeriesForecast,
) {
    let seasonal_ready = e.seasonal.points_needed(w) == 0;
    let model = if seasonal_ready && !prefer_naive {
        &e.seasonal
    } else if e.choice == ModelChoice::SeasonalNaive {
        f.state = warming(ModelKind::SeasonalNaive, e.seasonal.points_needed(w));
        return;
    } else {
        &e.naive
    };
    match model.fit(w) {
        Err(ModelError::WarmingUp { points_needed }) => {
            f.state = warming(model.kind(), points_needed)
        }
        Err(ModelError::Failed(reason)) => f.state = SeriesState::Failed { reason },
        Ok(fit) => {
            // A horizon the series' own errors cannot band yet.
            if !fit.predict(w.origin, points) || !points.iter().all(Point::is_finite) {
                f.state = warming(model.kind(), MIN_ERRORS);
                return;
            }
            f.model = Some(model.kind());
            f.points = points.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LabelSet;
    use crate::test_data::nasa_per_minute;

    fn forecaster(model: &str) -> Forecaster {
        forecaster_with(model, "[1h]")
    }

    fn forecaster_with(model: &str, seasons: &str) -> Forecaster {
        let yaml = format!(
            "storage: {{ step: 1m, retention: 1d }}\nforecast:\n  - selector: 'x'\n    \
             horizons: [5m, 15m]\n    model: {model}\n    seasons: {seasons}\n"
        );
        let config = Config::from_yaml(&yaml, "test", None).unwrap();
        let lstm = super::super::load::load_lstm(
            &crate::config::ModelSource::Builtin,
            &super::super::neural::BackendChoice::Tract,
        )
        .unwrap();
        Forecaster::new(&config, lstm).unwrap()
    }

    /// One step for one series whose history is `values` (its last value at bucket 1000).
    fn step(f: &mut Forecaster, values: &[f32], budget: Budget) -> SeriesForecast {
        let labels = Arc::new(LabelSet::from_pairs([("__name__", "x")]));
        let series = SeriesForecast::new(labels, SeriesId(7), 0, 1000, 1000, 60_000);
        let mut out = Vec::new();
        f.begin_step(budget);
        f.forecast(values, 0, series, &mut out);
        f.flush(&mut out);
        f.end_step();
        out.pop().unwrap()
    }

    fn nasa(n: usize) -> Vec<f32> {
        nasa_per_minute()[2000..2000 + n]
            .iter()
            .map(|v| *v as f32)
            .collect()
    }

    #[test]
    fn an_entry_that_asks_for_a_model_warms_up_for_it() {
        for (model, n, want) in [
            ("lstm", 10, "lstm"),
            ("mstl", 100, "mstl"),
            ("seasonal_naive", 50, "seasonal_naive"),
            ("naive", 3, "naive"),
        ] {
            let s = step(&mut forecaster(model), &nasa(n), Budget::unlimited());
            match s.state {
                SeriesState::WarmingUp {
                    for_model,
                    points_needed,
                } => assert!(
                    for_model == want && points_needed > 0,
                    "{model}: {for_model}"
                ),
                other => panic!("{model} with {n} points: {other:?}"),
            }
        }
        // `auto` serves what the history allows meanwhile: naive before the LSTM's window
        // (48 steps) is filled, then the LSTM.
        let s = step(&mut forecaster("auto"), &nasa(10), Budget::unlimited());
        assert_eq!(s.model, Some(ModelKind::Naive), "{:?}", s.state);
        let s = step(&mut forecaster("auto"), &nasa(50), Budget::unlimited());
        assert_eq!(s.model, Some(ModelKind::Lstm), "{:?}", s.state);
    }

    #[test]
    fn without_seasons_auto_never_waits_for_a_seasonal_model() {
        let mut f = forecaster_with("auto", "[]");
        for n in [10, 47, 300] {
            let s = step(&mut f, &nasa(n), Budget::unlimited());
            assert_eq!(s.state, SeriesState::Ready, "{n} points");
            let want = if n < 48 {
                ModelKind::Naive
            } else {
                ModelKind::Lstm
            };
            assert_eq!(s.model, Some(want), "{n} points");
        }
    }

    #[test]
    fn a_failed_fit_fails_the_series_unless_auto_can_fall_back() {
        // Two hours of buckets, the first 90 minutes never observed: MSTL has the window for
        // its season but not the data.
        let mut values = nasa(120);
        values[..90].fill(f32::NAN);
        let s = step(&mut forecaster("mstl"), &values, Budget::unlimited());
        assert!(
            matches!(&s.state, SeriesState::Failed { reason } if reason.contains("two full seasons")),
            "{:?}",
            s.state
        );
        let mut f = forecaster("auto");
        f.begin_step(Budget::unlimited());
        let s = step(&mut f, &values, Budget::unlimited());
        assert_eq!(s.state, SeriesState::Ready);
        assert_ne!(s.model, Some(ModelKind::Mstl));
    }

    #[test]
    fn an_exhausted_budget_defers_refits_and_a_baseline_serves() {
        let spent = Budget::for_step(
            Instant::now() - Duration::from_secs(120),
            Duration::from_secs(60),
        );
        let mut f = forecaster("mstl");
        let s = step(&mut f, &nasa(300), spent);
        assert_eq!(s.state, SeriesState::Ready);
        assert_eq!(s.model, Some(ModelKind::SeasonalNaive));
        assert_eq!(f.stats.refits_deferred, 1);
        // With time to spare the refit happens, and the fit is read forward next step.
        let s = step(&mut f, &nasa(300), Budget::unlimited());
        assert_eq!(s.model, Some(ModelKind::Mstl));
        assert_eq!(s.fitted_ms, 1000 * 60_000);
    }

    #[test]
    fn state_of_series_not_seen_in_a_step_is_dropped() {
        let mut f = forecaster("auto");
        step(&mut f, &nasa(600), Budget::unlimited());
        assert_eq!(f.series.len(), 1, "auto keeps its choice");
        f.begin_step(Budget::unlimited());
        f.end_step();
        assert!(f.series.is_empty());
    }
}
