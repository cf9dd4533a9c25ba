//! The model interface every forecaster implements, in the style of augurs: an unfitted
//! model value ([`Fit`]) is fitted on one series' [`Window`] into a fitted value
//! ([`Predict`]) that returns a [`Forecast`] (the band at the entry's horizons) or says why
//! it has none. A model value is built once per forecast entry from what the entry asks
//! ([`Ask`], [`Listed::for_entry`]) and is callable on its own, in a unit test or a
//! backtest, with no store or loop around it.
//!
//! What the agent needs to know of a model beyond fitting (how `auto` compares it, whether
//! it serves when another cannot) is [`Listed`]; whether it batches or keeps its fits
//! between steps are [`Fit`]'s capabilities. The loop reads those, never a model's name.
//!
//! Adding a model: write `src/forecast/<name>.rs` (a type named after its kind that
//! implements [`Fit`] and [`Listed`]) and add one line to the list in [`crate::models`].

use std::sync::Arc;
use std::time::Duration;

use super::neural::LstmModel;
use crate::config::ForecastSpec;
use crate::snapshot::Point;

/// Minimum points before any model forecasts a series.
pub const MIN_POINTS: usize = 6;

/// Trailing gap, in steps, filled up to "now" so forecasts start from the current step even
/// when the newest samples are a little late. Older heads are not extended.
pub const MAX_PAD: i64 = 5;

/// Gaps to append to a series whose newest bucket is `head` when the step's bucket is `now`.
pub fn pad_to(now: i64, head: i64) -> usize {
    (now - head).clamp(0, MAX_PAD) as usize
}

/// What a forecast entry asks of every model.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// Horizons in steps, ascending (shared with every fit that reads them).
    pub horizons: Arc<[usize]>,
    /// The band's lower and upper quantile.
    pub quantiles: (f64, f64),
    /// Seasonal periods in steps, ascending.
    pub seasons: Vec<usize>,
    /// `storage.step`.
    pub step: Duration,
}

impl Ask {
    pub fn new(spec: &ForecastSpec, step: Duration) -> Self {
        Self {
            horizons: spec.horizons.iter().map(|h| h.steps).collect(),
            quantiles: (spec.lower_quantile, spec.upper_quantile),
            seasons: spec.seasons.clone(),
            step,
        }
    }

    /// The longest horizon in steps (1 when there is none).
    pub fn longest(&self) -> usize {
        self.horizons.last().copied().unwrap_or(1)
    }
}

/// One series' history as every model sees it.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Values oldest → newest, one per step; NaN (or ±inf) marks a gap. The last `pad` values
    /// are the gaps between the series' newest bucket and the step's bucket.
    pub values: &'a [f32],
    /// Bucket of the last value: where the horizons count from.
    pub origin: i64,
    pub pad: usize,
    /// `storage.step` in ms: bucket `b` starts at `b * step_ms`.
    pub step_ms: i64,
    /// False when bucket times carry no calendar meaning (an offline replay of an indexed
    /// trace): calendar features are then unknown.
    pub calendar: bool,
}

impl<'a> Window<'a> {
    /// The values up to the series' newest bucket (without the padding).
    pub fn observed(&self) -> &'a [f32] {
        &self.values[..self.values.len() - self.pad]
    }

    /// The series' newest bucket.
    pub fn head(&self) -> i64 {
        self.origin - self.pad as i64
    }

    /// The history as it was at an earlier origin: the first `len` observed values, ending at
    /// bucket `head - (observed - len)`, without padding. For backtests on the window itself.
    pub fn prefix(&self, len: usize) -> Window<'a> {
        let observed = self.observed();
        Window {
            values: &observed[..len],
            origin: self.head() - (observed.len() - len) as i64,
            pad: 0,
            step_ms: self.step_ms,
            calendar: self.calendar,
        }
    }

    /// Observed (finite) values.
    pub fn observed_count(&self) -> usize {
        self.values.iter().filter(|v| v.is_finite()).count()
    }
}

/// Why a model has no forecast for a series.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// Too little history yet.
    WarmingUp { points_needed: usize },
    /// The model failed on this series.
    Failed(String),
    /// The fit does not reach the horizons from this origin (a kept fit read too far).
    OutOfReach,
}

impl ModelError {
    /// What the series' state says when a model failed with this.
    pub fn reason(&self) -> String {
        match self {
            ModelError::Failed(reason) => reason.clone(),
            ModelError::WarmingUp { points_needed } => {
                format!("needs {points_needed} more points")
            }
            ModelError::OutOfReach => "the fit does not reach this origin".into(),
        }
    }
}

/// A model's forecast from one origin: the band at each of the entry's horizons, every
/// value finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub points: Vec<Point>,
}

impl Forecast {
    /// `points` as a forecast, or `err` when one of them is not finite.
    pub fn finite(
        points: Vec<Point>,
        err: impl FnOnce() -> ModelError,
    ) -> Result<Self, ModelError> {
        if points.iter().all(Point::is_finite) {
            Ok(Self { points })
        } else {
            Err(err())
        }
    }
}

/// An unfitted model: the configuration of one model for one forecast entry.
pub trait Fit {
    type Fitted: Predict;

    /// Points of history `window` still lacks before this model forecasts it (0: ready).
    fn points_needed(&self, window: &Window<'_>) -> usize;

    /// Fits on `window`.
    fn fit(&self, window: &Window<'_>) -> Result<Self::Fitted, ModelError>;

    /// Fits many windows at once (batched models run them as one batch); one by one unless
    /// the model batches.
    fn fit_batch(&self, windows: &[Window<'_>], out: &mut Vec<Result<Self::Fitted, ModelError>>) {
        out.extend(windows.iter().map(|w| self.fit(w)));
    }

    /// Whether the model is run on many series at once: then the loop queues every ready
    /// series and hands them to [`Fit::fit_batch`] together.
    fn batches(&self) -> bool {
        false
    }

    /// Whether fits are expensive: then the loop keeps a fit between steps, refits it only
    /// when [`Fit::refit_due`] and within the step's budget, and reads it forward
    /// meanwhile. Cheap models are fitted at every step.
    fn keeps_fit(&self) -> bool {
        false
    }

    /// Whether a kept fit should be replaced at `origin`.
    fn refit_due(&self, _fitted: &Self::Fitted, _origin: i64) -> bool {
        true
    }
}

/// A fitted model.
pub trait Predict {
    /// The band at each of the entry's horizons counted from bucket `origin`, or why this
    /// fit has none from there.
    fn predict(&self, origin: i64) -> Result<Forecast, ModelError>;

    /// The same, consuming the fit (no copy where the fit holds the forecast).
    fn into_forecast(self, origin: i64) -> Result<Forecast, ModelError>
    where
        Self: Sized,
    {
        self.predict(origin)
    }

    /// The bucket whose data the fit last saw.
    fn fitted_at(&self) -> i64;
}

/// What a forecast entry offers every model when the agent builds it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub ask: &'a Ask,
    /// `refit_every` in steps, for models that keep their fits.
    pub refit_every: usize,
    /// The loaded neural network, for models that need one.
    pub network: Option<&'a Arc<LstmModel>>,
}

/// When `auto` scores a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Always.
    Always,
    /// Only within the step's refit budget (an expensive model).
    WithinBudget,
    /// Only within the refit budget and where the season pays on the series (a seasonal
    /// baseline scored better than a non-seasonal one).
    WhereSeasonPays,
    /// Never: not among `auto`'s candidates; it serves an entry that names it.
    Never,
}

/// What the agent knows of a model beyond fitting it: how it is built for an entry, how
/// `auto` ranks and scores it, whether it serves when another model cannot.
pub trait Listed: Fit + Sized {
    /// `auto`'s preference when the history cannot tell models apart: lower is preferred.
    const RANK: u8;
    /// A fallback serves a step that the wanted model cannot (not ready, deferred, failed
    /// under `auto`), in [`Listed::RANK`] order.
    const FALLBACK: bool = false;

    /// The model for one entry, or why it cannot serve it.
    fn for_entry(entry: &Entry<'_>) -> Result<Self, String>;

    /// `auto`'s candidate for a rolling backtest whose oldest origin has `history` points; a
    /// model that keeps fits is refitted every `refit_every` steps of it and read forward in
    /// between, as the agent serves it. `None` when it cannot compete there.
    fn candidate(&self, history: usize, refit_every: usize) -> Option<Self>;

    /// When `auto` scores it.
    fn gate(&self) -> Gate {
        Gate::Always
    }
}

/// The fit of a model that forecasts from one origin at a time (the baselines, the LSTM):
/// its band at each horizon from the origin it was fitted at, and nothing from elsewhere.
#[derive(Debug, Clone)]
pub struct AtOrigin {
    origin: i64,
    forecast: Forecast,
}

impl AtOrigin {
    pub fn new(origin: i64, forecast: Forecast) -> Self {
        Self { origin, forecast }
    }
}

impl Predict for AtOrigin {
    fn predict(&self, origin: i64) -> Result<Forecast, ModelError> {
        if origin != self.origin {
            return Err(ModelError::OutOfReach);
        }
        Ok(self.forecast.clone())
    }

    fn into_forecast(self, origin: i64) -> Result<Forecast, ModelError> {
        if origin != self.origin {
            return Err(ModelError::OutOfReach);
        }
        Ok(self.forecast)
    }

    fn fitted_at(&self) -> i64 {
        self.origin
    }
}
