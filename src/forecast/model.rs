//! The model interface every forecaster implements, in the style of augurs: an unfitted
//! model value ([`Fit`]) is fitted on one series' [`Window`] into a fitted value
//! ([`Predict`]) that is asked for the band at the entry's horizons. A model value is built
//! once per forecast entry from what the entry asks ([`Ask`]) and is callable on its own, in
//! a unit test or a backtest, with no store or loop around it.
//!
//! Batched models (the LSTM) take a whole batch of windows in [`Fit::fit_batch`]; the
//! loop feeds it and never knows which models batch.
//!
//! Adding a model: write its file (a `Foo: Fit` whose `FittedFoo: Predict`), add its
//! name to [`crate::snapshot::ModelKind`] and one line to the list in [`super::registry`].

use std::sync::Arc;
use std::time::Duration;

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
    /// Writes the band at each of the entry's horizons counted from bucket `origin` into
    /// `out` (cleared first); false when this fit cannot forecast from there. Points may be
    /// non-finite when the model produced nothing better; callers check.
    fn predict(&self, origin: i64, out: &mut Vec<Point>) -> bool;

    /// The bucket whose data the fit last saw.
    fn fitted_at(&self) -> i64;
}

/// The fit of a model that forecasts from one origin at a time (the baselines, the LSTM):
/// its band at each horizon from the origin it was fitted at, and nothing from elsewhere.
#[derive(Debug, Clone)]
pub struct AtOrigin {
    origin: i64,
    points: Vec<Point>,
}

impl AtOrigin {
    pub fn new(origin: i64, points: Vec<Point>) -> Self {
        Self { origin, points }
    }
}

impl Predict for AtOrigin {
    fn predict(&self, origin: i64, out: &mut Vec<Point>) -> bool {
        out.clear();
        if origin != self.origin {
            return false;
        }
        out.extend_from_slice(&self.points);
        true
    }

    fn fitted_at(&self) -> i64 {
        self.origin
    }
}
