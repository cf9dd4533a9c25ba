//! Forecasting series with the configured models: for each forecast entry, which model
//! serves a series (the configured one, or `auto`'s choice, with the fallbacks below), the
//! per-series state kept between steps (`auto`'s choice, expensive fits), the step's time
//! budget, and the batch that batched models are fed. The agent's loop
//! ([`crate::step`]) and the offline replays (`backtest`, `simulate`) both forecast
//! through a [`Forecaster`]: what is measured offline is what the agent runs.
//!
//! Nothing here names a model: what a model is to the loop comes from its capabilities.
//! Per series and step, the models are tried in order until one serves:
//! - an entry that names a model tries it, then the fallbacks ([`Listed::FALLBACK`], in
//!   `auto`'s preference order: `seasonal_naive` with the longest season the history
//!   covers, then `naive`) when its kept fit is deferred; while it warms up, or when it
//!   fails, the series says so;
//! - `auto` tries the model [`auto::choose`] picked for the series (re-chosen every
//!   `auto_every` steps within the choice budget), then the fallbacks; before the history
//!   can compare models, every model in preference order. While first choices wait on the
//!   budget (a backlog: thousands of series arriving at once), the budget goes to them
//!   alone and they are made among the cheap candidates (MSTL, the expensive one, left
//!   out), to be made again with every candidate once no series waits;
//! - a batched model ([`Fit::batches`]) queues the series for one batch per entry; a
//!   model that keeps fits ([`Fit::keeps_fit`]) is refitted when due and within the refit
//!   budget, its kept fit read forward meanwhile (with none, the next model serves); cheap
//!   models are fitted every step.
//!
//! [`Listed::FALLBACK`]: super::model::Listed::FALLBACK

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::accuracy::{Accuracy, Calibration};
use super::auto;
use super::model::{self, Ask, Fit, ModelError, Predict, Window};
use super::neural::LstmModel;
use super::registry::{FittedModel, Model, Models};
use crate::config::{Config, ModelChoice};
use crate::snapshot::{AutoChoice, ModelKind, PerModel, SeriesForecast, SeriesState};
use crate::store::SeriesId;

/// Rows per batched-model call once a shard is done.
pub const BATCH_ROWS: usize = 512;

/// How long a step may spend on expensive work before deferring the rest.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Refits of kept models, and expensive models among `auto`'s candidates, until then.
    refits_until: Option<Instant>,
    /// `auto` choices: at most this much time spent choosing in a step, whatever else the
    /// step does before a series' turn comes (so the choices a step makes do not depend on
    /// where in the step the series waiting for one lie) ...
    choice_time: Option<Duration>,
    /// ... and none after this ...
    choices_until: Option<Instant>,
    /// ... spread over the step's series (by the share of them seen, at least
    /// [`UP_FRONT`] of the allowance), and none once the rest of the step, projected from
    /// the time its series took so far (choices aside), would end it after [`ON_TIME`] of
    /// its length: `(start, step, series in the step)`. At a million series the step's own
    /// work nears the step, and the choices give way to it.
    projection: Option<(Instant, Duration, usize)>,
}

/// The share of the step a step's projected end must stay within for `auto` to keep
/// choosing (the rest is a margin for the batched forecasts at its end and for noise).
const ON_TIME: f64 = 0.85;

/// Series a step must have seen before its pace is projected.
const PROJECT_AFTER: usize = 1000;

/// The share of the choice allowance a step may spend before its series' share.
const UP_FRONT: f64 = 0.05;

impl Budget {
    /// No limit: offline replays, where the result must not depend on the machine.
    pub fn unlimited() -> Self {
        Self {
            refits_until: None,
            choice_time: None,
            choices_until: None,
            projection: None,
        }
    }

    /// The agent's: refits within the first half of the step, `auto` choices for a quarter
    /// of the step's time, within its first half, while the step of `series` series is
    /// projected to end on time.
    pub fn for_step(start: Instant, step: Duration, series: usize) -> Self {
        Self {
            refits_until: Some(start + step / 2),
            choice_time: Some(step / 4),
            choices_until: Some(start + step / 2),
            projection: Some((start, step, series)),
        }
    }

    fn refits(&self) -> bool {
        self.refits_until.is_none_or(|d| Instant::now() < d)
    }

    /// Whether another choice fits, `spent` having been spent choosing this step and
    /// `seen` series visited before this one.
    fn choices(&self, spent: Duration, seen: usize) -> bool {
        let now = Instant::now();
        let share = self.projection.map_or(1.0, |(_, _, series)| {
            (seen as f64 / series.max(1) as f64).clamp(UP_FRONT, 1.0)
        });
        self.choice_time.is_none_or(|t| spent < t.mul_f64(share))
            && self.choices_until.is_none_or(|d| now < d)
            && self
                .projection
                .is_none_or(|(start, step, series)| on_time(now - start, spent, seen, series, step))
    }
}

/// Whether a step `elapsed` into its length `step`, `spent` of it choosing, having seen
/// `seen` of its `series` series, is projected to end within [`ON_TIME`] of it: the series
/// left at the pace of those seen, choices aside.
fn on_time(elapsed: Duration, spent: Duration, seen: usize, series: usize, step: Duration) -> bool {
    if seen < PROJECT_AFTER {
        return true;
    }
    let pace = elapsed.saturating_sub(spent).as_secs_f64() / seen as f64;
    let end = elapsed.as_secs_f64() + pace * series.saturating_sub(seen) as f64;
    end < step.as_secs_f64() * ON_TIME
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
    /// Series given their first `auto` choice this step.
    pub auto_first_choices: u64,
    /// Series an `auto` entry served this step with no choice yet: a history too short to
    /// compare models, or a first choice postponed by the choice budget (the preference order
    /// serves them meanwhile).
    pub auto_waiting: u64,
    /// Of those, the series whose first choice the budget postponed: the next step is in
    /// backlog mode (first choices only, among the cheap candidates).
    pub auto_first_deferred: u64,
    /// Series served this step by a provisional choice made in backlog mode, without the
    /// expensive candidates.
    pub auto_provisional: u64,
    /// Series given their first choice with every candidate this step (a first choice, or
    /// the re-choice of a provisional one).
    pub auto_first_full_choices: u64,
}

/// Why the model an entry names cannot serve it.
#[derive(Debug, thiserror::Error)]
#[error("forecast[{index}]: model {model} cannot serve this entry: {reason}")]
pub struct ModelMismatch {
    pub index: usize,
    pub model: ModelKind,
    pub reason: String,
}

/// One forecast entry's models.
struct Entry {
    choice: ModelChoice,
    auto_every: u64,
    ask: Ask,
    models: Models,
    /// Every model in `auto`'s preference order, and the fallbacks among them.
    preference: Vec<ModelKind>,
    fallbacks: Vec<ModelKind>,
    /// The accuracy outputs' time constant in steps (`None`: none exported).
    accuracy_window: Option<usize>,
    /// How its bands are calibrated on each series' scored forecasts.
    calibration: Calibration,
}

impl Entry {
    /// Whether the entry keeps each series' [`Accuracy`] (for its outputs or its bands).
    fn keeps_accuracy(&self) -> bool {
        self.accuracy_window.is_some() || self.calibration != Calibration::Off
    }
}

/// Per-series state kept between steps (only for series that need some).
#[derive(Debug)]
struct SeriesModels {
    /// The fit of a model that keeps fits, read forward between refits.
    kept: Option<FittedModel>,
    /// `auto`'s current choice and the step it is due to be made again.
    auto: Option<(ModelKind, u64)>,
    /// Whether that choice was made in backlog mode, without the expensive candidates.
    provisional: bool,
    /// The last step that saw the series, to drop state of series that are gone.
    seen: u64,
}

/// A series waiting for its entry's batched model: its window, copied.
struct Pending {
    /// Index into the step's output.
    at: usize,
    entry: usize,
    model: ModelKind,
    start: usize,
    len: usize,
    origin: i64,
    pad: usize,
}

/// Forecasts series with the entries' models; see the module documentation.
pub struct Forecaster {
    entries: Vec<Entry>,
    serve: Serve,
    /// Whether bucket times are calendar times (always in the agent; not for a replay of an
    /// indexed trace).
    calendar: bool,
    pending: Vec<Pending>,
    pending_values: Vec<f32>,
}

/// What serving a series needs besides its entry: the per-series state, the step's count,
/// budget and figures.
struct Serve {
    series: HashMap<SeriesId, SeriesModels>,
    /// Per series, its rolling accuracy and the last step that saw it.
    accuracy: HashMap<SeriesId, (Accuracy, u64)>,
    steps: u64,
    budget: Budget,
    /// Time spent in [`auto::choose`] this step.
    choosing: Duration,
    /// Series visited this step before the current one.
    seen: usize,
    /// Whether the last step postponed first choices: this step makes only first choices,
    /// among the cheap candidates.
    backlog: bool,
    stats: ForecastStats,
    step_ms: i64,
}

impl Forecaster {
    /// The models of every entry of `config`; `network` is the loaded neural model, if any.
    /// An entry that names a model that cannot serve it is an error; `auto` entries then use
    /// the others.
    pub fn new(config: &Config, network: Option<Arc<LstmModel>>) -> Result<Self, ModelMismatch> {
        let mut entries = Vec::with_capacity(config.forecast.len());
        for (index, spec) in config.forecast.iter().enumerate() {
            let ask = Ask::new(spec, config.step);
            let models = Models::for_entry(&model::Entry {
                ask: &ask,
                refit_every: spec.refit_every,
                network: network.as_ref(),
            });
            for kind in ModelKind::ALL {
                let Some(reason) = models.unusable(kind) else {
                    continue;
                };
                if spec.model == ModelChoice::Model(kind) {
                    return Err(ModelMismatch {
                        index,
                        model: kind,
                        reason: reason.to_string(),
                    });
                }
                if network.is_some() || !kind.needs_network() {
                    tracing::info!(forecast = index, model = %kind, %reason, "model does not fit this entry; auto uses the others");
                }
            }
            let preference = Model::preference().to_vec();
            entries.push(Entry {
                choice: spec.model,
                auto_every: spec.auto_every as u64,
                fallbacks: preference
                    .iter()
                    .copied()
                    .filter(|k| Model::fallback(*k))
                    .collect(),
                preference,
                models,
                ask,
                accuracy_window: spec.accuracy_window,
                calibration: if spec.calibrate_band {
                    Calibration::adaptive(spec.lower_quantile, spec.upper_quantile)
                } else {
                    Calibration::Off
                },
            });
        }
        Ok(Self {
            entries,
            serve: Serve {
                series: HashMap::new(),
                accuracy: HashMap::new(),
                steps: 0,
                budget: Budget::unlimited(),
                choosing: Duration::ZERO,
                seen: 0,
                backlog: false,
                stats: ForecastStats::default(),
                step_ms: config.step.as_millis() as i64,
            },
            calendar: true,
            pending: Vec::new(),
            pending_values: Vec::new(),
        })
    }

    /// Marks bucket times as carrying no calendar meaning (offline replays of indexed traces).
    pub fn set_calendar(&mut self, calendar: bool) {
        self.calendar = calendar;
    }

    /// Starts a step with this budget.
    pub fn begin_step(&mut self, budget: Budget) {
        let s = &mut self.serve;
        s.steps += 1;
        s.budget = budget;
        s.choosing = Duration::ZERO;
        s.seen = 0;
        s.backlog = s.stats.auto_first_deferred > 0;
        s.stats = ForecastStats::default();
    }

    /// Ends a step: forgets the state of series the step did not see; returns its figures.
    pub fn end_step(&mut self) -> ForecastStats {
        let steps = self.serve.steps;
        self.serve.series.retain(|_, s| s.seen == steps);
        self.serve.accuracy.retain(|_, a| a.1 == steps);
        self.serve.stats
    }

    /// Series waiting for a batched model.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Forecasts the series `f` describes (its id, entry and the bucket its horizons count
    /// from) whose history is `values` (oldest → newest, the last `pad` of them gaps padded
    /// towards now): fills in its state, model, points and fit time. A series for a batched
    /// model waits, as `out[at]` of the step's output, until [`Forecaster::flush`].
    /// Its rolling accuracy ([`super::accuracy`]) first scores the forecasts whose targets
    /// it now holds; the forecast made here is kept for scoring once complete.
    pub fn forecast(&mut self, values: &[f32], pad: usize, f: &mut SeriesForecast, at: usize) {
        let (entry, origin) = (f.spec as usize, f.base);
        let w = Window {
            values,
            origin,
            pad,
            step_ms: self.serve.step_ms,
            calendar: self.calendar,
        };
        let e = &self.entries[entry];
        self.serve.seen = at;
        self.serve.score_accuracy(e, &w, f);
        if let Some(model) = self.serve.series_forecast(e, f.id, &w, f) {
            let start = self.pending_values.len();
            self.pending_values.extend_from_slice(values);
            self.pending.push(Pending {
                at,
                entry,
                model,
                start,
                len: values.len(),
                origin,
                pad,
            });
        } else {
            self.serve.keep_for_accuracy(e, &w, f);
        }
    }

    /// Runs the batched models on the waiting series once there are [`BATCH_ROWS`] of them.
    pub fn flush_if_full(&mut self, out: &mut [SeriesForecast]) {
        if self.pending.len() >= BATCH_ROWS {
            self.flush(out);
        }
    }

    /// Runs the batched models on every waiting series (one call per entry and model) and
    /// completes their forecasts in `out`.
    pub fn flush(&mut self, out: &mut [SeriesForecast]) {
        if self.pending.is_empty() {
            return;
        }
        let mut fits = Vec::with_capacity(self.pending.len());
        for (index, e) in self.entries.iter().enumerate() {
            for model in e.models.iter().filter(|m| m.batches()) {
                let rows: Vec<&Pending> = self
                    .pending
                    .iter()
                    .filter(|p| p.entry == index && p.model == model.kind())
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let windows: Vec<Window<'_>> = rows
                    .iter()
                    .map(|p| Window {
                        values: &self.pending_values[p.start..p.start + p.len],
                        origin: p.origin,
                        pad: p.pad,
                        step_ms: self.serve.step_ms,
                        calendar: self.calendar,
                    })
                    .collect();
                fits.clear();
                model.fit_batch(&windows, &mut fits);
                for ((p, w), fit) in rows.iter().zip(&windows).zip(fits.drain(..)) {
                    self.serve
                        .complete_batched(e, model.kind(), w, fit, &mut out[p.at]);
                    self.serve.keep_for_accuracy(e, w, &mut out[p.at]);
                }
            }
        }
        self.pending.clear();
        self.pending_values.clear();
    }
}

/// What a model offers a series this step.
enum Served {
    /// The series' forecast is filled in (points, or a state).
    Done,
    /// The series waits for this batched model.
    Queued(ModelKind),
    /// The model cannot serve this step (not ready, deferred, failed under `auto`): the next
    /// one in line tries.
    Next,
}

impl Serve {
    /// Scores the series' kept forecasts whose targets `w` now holds, and reports its
    /// rolling accuracy in `f` (entries that export it).
    fn score_accuracy(&mut self, e: &Entry, w: &Window<'_>, f: &mut SeriesForecast) {
        if !e.keeps_accuracy() {
            return;
        }
        let steps = self.steps;
        let (a, seen) = self.accuracy.entry(f.id).or_insert_with(|| {
            // Without outputs the window only decays sums nobody reads.
            let window = e.accuracy_window.unwrap_or(1);
            (
                Accuracy::new(e.ask.horizons.len(), window, e.calibration),
                steps,
            )
        });
        *seen = steps;
        a.observe(w.observed(), w.head());
        if e.accuracy_window.is_some() {
            f.accuracy.extend(a.scores());
        }
    }

    /// Calibrates the band of the forecast just served (complete in `f`) and keeps it for
    /// scoring when its targets arrive.
    fn keep_for_accuracy(&mut self, e: &Entry, w: &Window<'_>, f: &mut SeriesForecast) {
        if f.state != SeriesState::Ready || f.points.is_empty() {
            return;
        }
        let (Some((a, _)), Some(&last)) = (self.accuracy.get_mut(&f.id), w.observed().last())
        else {
            return;
        };
        a.calibrate(&mut f.points, &mut f.band_scales);
        a.keep(f.base, &e.ask.horizons, &f.points, last);
    }

    /// Fills `f` for one series; `Some(model)` when it waits for that batched model.
    fn series_forecast(
        &mut self,
        e: &Entry,
        id: SeriesId,
        w: &Window<'_>,
        f: &mut SeriesForecast,
    ) -> Option<ModelKind> {
        let first = match e.choice {
            ModelChoice::Model(kind) => Some(kind),
            ModelChoice::Auto => {
                let choice = self.auto_choice(e, id, w);
                f.auto = match choice {
                    None => AutoChoice::Waiting,
                    Some((_, true)) => AutoChoice::Provisional,
                    Some((_, false)) => AutoChoice::Chosen,
                };
                choice.map(|(kind, _)| kind)
            }
        };
        let rest = if first.is_some() {
            &e.fallbacks
        } else {
            &e.preference
        };
        let line = first.into_iter().chain(rest.iter().copied());
        let last = usize::from(first.is_some()) + rest.len() - 1;
        for (i, kind) in line.enumerate() {
            // The model the entry names answers for itself; the others give way.
            let named = i == 0 && e.choice != ModelChoice::Auto;
            let Some(model) = e.models.get(kind) else {
                continue;
            };
            match self.try_model(model, named || i == last, id, w, f) {
                Served::Done => return None,
                Served::Queued(kind) => return Some(kind),
                Served::Next => {}
            }
        }
        None
    }

    /// What `model` does for the series; `answers`: it warms up or fails in the series'
    /// state rather than give way to the next model.
    fn try_model(
        &mut self,
        model: &Model,
        answers: bool,
        id: SeriesId,
        w: &Window<'_>,
        f: &mut SeriesForecast,
    ) -> Served {
        let kind = model.kind();
        let points_needed = model.points_needed(w);
        if points_needed > 0 {
            if !answers {
                return Served::Next;
            }
            f.state = warming(kind, points_needed);
            return Served::Done;
        }
        if model.batches() {
            f.model = Some(kind);
            return Served::Queued(kind);
        }
        if model.keeps_fit() {
            return match self.kept_forecast(model, id, w) {
                Ok((forecast, fitted_at)) => {
                    f.model = Some(kind);
                    f.points = forecast.points;
                    f.fitted_ms = fitted_at * self.step_ms;
                    Served::Done
                }
                Err(Some(reason)) if answers => {
                    f.state = SeriesState::Failed { reason };
                    Served::Done
                }
                // Deferred, or failed where another model may serve.
                Err(_) => Served::Next,
            };
        }
        match model.fit(w).and_then(|fit| fit.into_forecast(w.origin)) {
            Ok(forecast) => {
                f.model = Some(kind);
                f.points = forecast.points;
            }
            Err(ModelError::WarmingUp { points_needed }) => f.state = warming(kind, points_needed),
            Err(err) => {
                f.state = SeriesState::Failed {
                    reason: err.reason(),
                }
            }
        }
        Served::Done
    }

    /// Completes a batched series from its fit; a failure hands `auto`'s series to the
    /// fallbacks and fails the others.
    fn complete_batched(
        &mut self,
        e: &Entry,
        kind: ModelKind,
        w: &Window<'_>,
        fit: Result<FittedModel, ModelError>,
        f: &mut SeriesForecast,
    ) {
        let reason = match fit.and_then(|fit| fit.into_forecast(w.origin)) {
            Ok(forecast) => {
                f.points = forecast.points;
                return;
            }
            Err(ModelError::WarmingUp { points_needed }) => {
                format!("{kind} needs {points_needed} more points")
            }
            Err(err) => err.reason(),
        };
        self.stats.errors[kind] += 1;
        if e.choice != ModelChoice::Auto {
            f.state = SeriesState::Failed { reason };
            return;
        }
        let last = e.fallbacks.len() - 1;
        for (i, fallback) in e.fallbacks.iter().enumerate() {
            if let Some(model) = e.models.get(*fallback) {
                if let Served::Done = self.try_model(model, i == last, f.id, w, f) {
                    return;
                }
            }
        }
    }

    /// The model `auto` uses for this series: kept for `auto_every` steps, then re-chosen by
    /// [`auto::choose`] within the choice budget (over it: the current choice, re-chosen at a
    /// later step). In backlog mode (the last step postponed first choices) only first
    /// choices are made, without the expensive candidates, and they are provisional: made
    /// again with every candidate at the first step with no backlog. `None` while the
    /// history is too short to compare or the series waits for its first choice; the flag
    /// says whether the choice is provisional.
    fn auto_choice(
        &mut self,
        e: &Entry,
        id: SeriesId,
        w: &Window<'_>,
    ) -> Option<(ModelKind, bool)> {
        let steps = self.steps;
        let state = state_of(&mut self.series, id, steps);
        if let Some((kind, due)) = state.auto {
            if steps < due {
                self.stats.auto_provisional += u64::from(state.provisional);
                return Some((kind, state.provisional));
            }
        }
        let current = state.auto.map(|a| (a.0, state.provisional));
        if !self.budget.choices(self.choosing, self.seen) || (self.backlog && current.is_some()) {
            self.stats.auto_deferred += 1;
            self.stats.auto_waiting += u64::from(current.is_none());
            self.stats.auto_first_deferred += u64::from(current.is_none());
            self.stats.auto_provisional += u64::from(current.is_some() && state.provisional);
            return current;
        }
        let full = !self.backlog;
        let t0 = Instant::now();
        let choice = auto::choose(w, &e.ask, &e.models, full && self.budget.refits());
        self.choosing += t0.elapsed();
        let Some(choice) = choice else {
            self.stats.auto_waiting += u64::from(current.is_none());
            return None;
        };
        tracing::debug!(
            scores = ?choice.scores,
            incumbent = ?choice.incumbent,
            chosen = ?choice.model,
            "auto choice"
        );
        let again = if full {
            choice.recheck.map_or(e.auto_every, |r| r as u64).max(1)
        } else {
            1
        };
        state.auto = Some((choice.model, steps + again));
        self.stats.auto_choices[choice.model] += 1;
        self.stats.auto_first_choices += u64::from(current.is_none());
        self.stats.auto_first_full_choices +=
            u64::from(full && (current.is_none() || state.provisional));
        self.stats.auto_provisional += u64::from(!full);
        state.provisional = !full;
        Some((choice.model, !full))
    }

    /// Refits `model` when due and within the refit budget, then reads its kept fit at the
    /// window's origin with the bucket it was fitted at. `Err(Some(reason))`: the refit
    /// failed; `Err(None)`: no fit reaches this step (the refit was deferred).
    fn kept_forecast(
        &mut self,
        model: &Model,
        id: SeriesId,
        w: &Window<'_>,
    ) -> Result<(model::Forecast, i64), Option<String>> {
        let state = state_of(&mut self.series, id, self.steps);
        let due = state
            .kept
            .as_ref()
            .is_none_or(|k| model.refit_due(k, w.origin));
        let mut failed = None;
        if due {
            if self.budget.refits() {
                match model.fit(w) {
                    Ok(fit) => state.kept = Some(fit),
                    Err(e) => {
                        self.stats.errors[model.kind()] += 1;
                        state.kept = None;
                        failed = Some(e.reason());
                    }
                }
            } else {
                self.stats.refits_deferred += 1;
            }
        }
        match state
            .kept
            .as_ref()
            .map(|k| (k.predict(w.origin), k.fitted_at()))
        {
            Some((Ok(forecast), fitted_at)) => Ok((forecast, fitted_at)),
            _ => Err(failed),
        }
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
        provisional: false,
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

#[cfg(test)]
mod tests;
