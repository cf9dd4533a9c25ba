//! What one forecast step produces, and how it is handed on.
//!
//! The forecast loop (`forecast`, with `anomaly` and `scale`) writes one immutable
//! [`Snapshot`] per step: every series' forecast ([`SeriesForecast`]: state, model, band per
//! horizon, anomaly verdict) and every scaling target's [`Recommendation`]. It publishes the
//! snapshot through the [`SnapshotCell`]: readers (scrape, the JSON API, remote read, the KEDA
//! scaler) load the newest one lock-free, and [`Subscriber`]s (remote-write queues, the
//! forecast history) are handed each one as it is published. Everything in `export` reads
//! these types; nothing here knows how a forecast was made or how it is encoded.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::{Config, ScalingMode};
use crate::policy::Policy;
use crate::store::{LabelSet, SeriesId};

/// Median and band at one horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub yhat: f64,
    pub lower: f64,
    pub upper: f64,
}

impl Point {
    pub fn is_finite(&self) -> bool {
        self.yhat.is_finite() && self.lower.is_finite() && self.upper.is_finite()
    }

    /// Keeps lower <= yhat <= upper whatever the model produced.
    pub fn ordered(mut self) -> Self {
        self.lower = self.lower.min(self.yhat);
        self.upper = self.upper.max(self.yhat);
        self
    }

    /// The element-wise maximum of two bands.
    pub fn max(self, other: Point) -> Point {
        Point {
            yhat: self.yhat.max(other.yhat),
            lower: self.lower.max(other.lower),
            upper: self.upper.max(other.upper),
        }
    }
}

pub use crate::models::ModelKind;

/// One series' rolling accuracy at one horizon (`crate::forecast::accuracy`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastAccuracy {
    /// Mean absolute error over the last value's on the same points (`NaN` while the last
    /// value never erred).
    pub mase: f64,
    /// Share of the targets inside the band.
    pub coverage: f64,
    /// Forecasts scored, exponentially weighted (the effective count behind the two).
    pub weight: f64,
}

/// A count per model, indexed by [`ModelKind`] (a new model is a new index, never a string).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerModel<T>([T; ModelKind::ALL.len()]);

impl<T> std::ops::Index<ModelKind> for PerModel<T> {
    type Output = T;
    fn index(&self, m: ModelKind) -> &T {
        &self.0[m as usize]
    }
}

impl<T> std::ops::IndexMut<ModelKind> for PerModel<T> {
    fn index_mut(&mut self, m: ModelKind) -> &mut T {
        &mut self.0[m as usize]
    }
}

impl<T> PerModel<T> {
    /// From one value per model, in [`ModelKind::ALL`] order.
    pub fn from_array(values: [T; ModelKind::ALL.len()]) -> Self {
        Self(values)
    }
}

impl<T: Copy> PerModel<T> {
    /// `(model, value)` for every model, in [`ModelKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ModelKind, T)> + '_ {
        ModelKind::ALL.into_iter().map(|m| (m, self[m]))
    }
}

/// Where an `auto` series stands with its choice of model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoChoice {
    /// Not an `auto` entry: the entry names its model.
    #[default]
    Fixed,
    /// No choice yet (history too short to compare, or waiting for its turn): served by
    /// the preference order.
    Waiting,
    /// Chosen without the expensive candidates while other series waited for a first
    /// choice; made again with every candidate once none waits.
    Provisional,
    /// Chosen with every candidate.
    Chosen,
}

/// Where a series stands with the forecast loop.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SeriesState {
    /// Not enough history yet for the configured model.
    WarmingUp {
        for_model: &'static str,
        points_needed: usize,
    },
    Ready,
    /// The model failed on this series; the reason is kept until it succeeds again.
    Failed {
        reason: String,
    },
    /// A staleness marker ended the series' run; no forecast until it resumes.
    Stale,
}

/// [`SeriesState`] without its details: the label of `promcast_forecast_series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    WarmingUp,
    Ready,
    Failed,
    Stale,
}

impl StateKind {
    pub const ALL: [StateKind; 4] = [
        StateKind::WarmingUp,
        StateKind::Ready,
        StateKind::Failed,
        StateKind::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::WarmingUp => "warming_up",
            StateKind::Ready => "ready",
            StateKind::Failed => "failed",
            StateKind::Stale => "stale",
        }
    }
}

impl SeriesState {
    pub fn kind(&self) -> StateKind {
        match self {
            SeriesState::WarmingUp { .. } => StateKind::WarmingUp,
            SeriesState::Ready => StateKind::Ready,
            SeriesState::Failed { .. } => StateKind::Failed,
            SeriesState::Stale => StateKind::Stale,
        }
    }
}

/// An anomaly verdict on a series' newest point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anomaly {
    pub score: f64,
    /// The score's anomaly likelihood (`anomaly::likelihood`), 0..1, log-scaled.
    pub likelihood: f64,
    /// The exported decision (`anomaly::Alarm`): 1 above, -1 below, 0 normal or suppressed.
    pub direction: i8,
}

/// One series' latest forecast.
#[derive(Debug, Clone)]
pub struct SeriesForecast {
    pub labels: Arc<LabelSet>,
    /// The store's id of the series (the forecast history keys on it).
    pub id: SeriesId,
    /// Index of the forecast entry (into [`Snapshot::horizons`]).
    pub spec: u16,
    pub state: SeriesState,
    pub model: Option<ModelKind>,
    /// For an `auto` entry, whether `model` is its choice and how it was made.
    pub auto: AutoChoice,
    /// Time of the newest observed bucket the forecast starts from.
    pub origin_ms: i64,
    /// Bucket the horizons count from: the newest bucket, padded towards the step's time
    /// when the newest samples are a little late.
    pub base: i64,
    /// When the model last fitted this series (equals `origin_ms` for models that need no fit).
    pub fitted_ms: i64,
    /// One per horizon of the spec, in the same order; empty unless `state` is ready.
    pub points: Vec<Point>,
    /// The newest point's anomaly verdict, when the entry scores anomalies.
    pub anomaly: Option<Anomaly>,
    /// The rolling accuracy of the forecasts served for this series, one per horizon of the
    /// spec (`None` before a forecast at that horizon was scored); empty when the entry
    /// keeps none (`accuracy_window: 0s`).
    pub accuracy: Vec<Option<ForecastAccuracy>>,
    /// The band calibration `points` carry, per horizon: the scales of the lower and upper
    /// sides (`crate::forecast::accuracy`); empty when the entry does not calibrate. The
    /// scaling policies read the model's own band ([`SeriesForecast::model_band`]).
    pub band_scales: Vec<(f32, f32)>,
    /// The series is a counter stored as its per-second rate: every value above (points,
    /// anomaly) is a rate, and its outputs are named `N:rate:...`.
    pub rate: bool,
}

impl SeriesForecast {
    /// A forecast not made yet (state ready, no model, no points) for a series whose newest
    /// bucket is `head` and whose horizons count from `base`.
    pub fn new(
        labels: Arc<LabelSet>,
        id: SeriesId,
        spec: u16,
        head: i64,
        base: i64,
        step_ms: i64,
    ) -> Self {
        Self {
            labels,
            id,
            spec,
            state: SeriesState::Ready,
            model: None,
            auto: AutoChoice::Fixed,
            origin_ms: head * step_ms,
            base,
            fitted_ms: head * step_ms,
            points: Vec::new(),
            anomaly: None,
            accuracy: Vec::new(),
            band_scales: Vec::new(),
            rate: false,
        }
    }

    /// The band at horizon `i` as the model made it, before the series' calibration:
    /// what the scaling policies read (their quantiles were set on frontiers measured with
    /// the models' bands; docs/ACCURACY.md, "Bands calibrated per horizon").
    pub fn model_band(&self, i: usize) -> Point {
        let p = self.points[i];
        match self.band_scales.get(i) {
            Some(&(lo, hi)) => Point {
                yhat: p.yhat,
                lower: p.yhat - (p.yhat - p.lower) / f64::from(lo),
                upper: p.yhat + (p.upper - p.yhat) / f64::from(hi),
            },
            None => p,
        }
    }

    /// Every horizon's [`SeriesForecast::model_band`].
    pub fn model_bands(&self) -> impl Iterator<Item = Point> + '_ {
        (0..self.points.len()).map(|i| self.model_band(i))
    }

    /// Ready with points: what exporters emit.
    pub fn is_ready(&self) -> bool {
        self.state == SeriesState::Ready && !self.points.is_empty()
    }
}

/// Why a scaling target has no recommendation this step.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalingStatus {
    Ok,
    /// No stored series matches the target's selector.
    NoSeries,
    /// The selector matches this many series; it must match exactly one.
    Ambiguous(usize),
    /// The series has no usable forecast (warming up, failed, stale, or not observed).
    NoForecast(String),
}

impl ScalingStatus {
    pub fn reason(&self) -> String {
        match self {
            ScalingStatus::Ok => "ok".into(),
            ScalingStatus::NoSeries => "no series matches the target's selector".into(),
            ScalingStatus::Ambiguous(n) => {
                format!("the target's selector matches {n} series; it must match exactly one")
            }
            ScalingStatus::NoForecast(why) => format!("no forecast: {why}"),
        }
    }
}

/// Which rule set a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The observed load needed more than the forecast (`reactive_floor`), or there was no
    /// forecast.
    Reactive,
    /// The forecast.
    Forecast,
    /// The forecast let replicas go before the scale-in window would have.
    ForecastScaleIn,
    /// Scale-in held back: the window's highest recommendation, or the band ahead.
    Held,
    /// min_replicas or max_replicas.
    Clamp,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Reactive,
        Reason::Forecast,
        Reason::ForecastScaleIn,
        Reason::Held,
        Reason::Clamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Reactive => "reactive",
            Reason::Forecast => "forecast",
            Reason::ForecastScaleIn => "forecast_scale_in",
            Reason::Held => "held",
            Reason::Clamp => "clamp",
        }
    }
}

/// One scaling target's recommendation at a step.
#[derive(Debug, Clone)]
pub struct Recommendation {
    pub target: Arc<str>,
    pub mode: ScalingMode,
    pub policy: Policy,
    /// Stabilised desired replicas; `None` when promcast cannot recommend (`status` says why).
    /// Never a stand-in 0: consumers must see "unknown" as unknown.
    pub desired: Option<u32>,
    /// Which rule set `desired`.
    pub reason: Option<Reason>,
    /// The load the recommendation used: the larger of observed and predicted.
    pub load: Option<f64>,
    /// The series' newest observed value.
    pub observed: Option<f64>,
    /// The policy's load `lead_time` ahead (median, buffered median or band quantile).
    pub predicted: Option<f64>,
    pub status: ScalingStatus,
}

/// All forecasts of one step.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// When the step ran: the timestamp exported samples carry.
    pub generated_ms: i64,
    /// `storage.step` in ms (bucket `b` starts at `b * step_ms`).
    pub step_ms: i64,
    /// Horizon labels (`"5m"`) and their length in ms, per forecast entry.
    pub horizons: Vec<Vec<(String, i64)>>,
    pub series: Vec<SeriesForecast>,
    /// One per `scaling:` target, in config order.
    pub scaling: Vec<Recommendation>,
}

impl Snapshot {
    pub fn empty(config: &Config) -> Self {
        Self {
            generated_ms: 0,
            step_ms: config.step.as_millis() as i64,
            horizons: horizons_of(config),
            series: Vec::new(),
            scaling: Vec::new(),
        }
    }

    /// The recommendation for target `name`.
    pub fn recommendation(&self, name: &str) -> Option<&Recommendation> {
        self.scaling.iter().find(|r| &*r.target == name)
    }

    /// The desired replicas of target `name` at `now_ms`, or why there are none. Every
    /// consumer that scales on them (KEDA's external scaler, its metrics-api scaler) asks
    /// here, so none of them ever turns "unknown" into 0.
    pub fn desired(&self, name: &str, now_ms: i64) -> Result<u32, NoDesired> {
        let age_ms = now_ms - self.generated_ms;
        // The loop steps once per step; three steps without one means it is stuck or behind.
        if self.generated_ms <= 0 {
            return Err(NoDesired::NoStep);
        }
        if age_ms > 3 * self.step_ms {
            return Err(NoDesired::Stale {
                age_ms,
                step_ms: self.step_ms,
            });
        }
        match self.recommendation(name) {
            Some(Recommendation {
                desired: Some(d), ..
            }) => Ok(*d),
            Some(r) => Err(NoDesired::NoRecommendation(r.status.reason())),
            None => Err(NoDesired::NoRecommendation("not computed yet".into())),
        }
    }

    /// Ready series with points: what exporters emit.
    pub fn ready(&self) -> impl Iterator<Item = &SeriesForecast> {
        self.series.iter().filter(|s| s.is_ready())
    }

    /// Series with anything to export: a ready forecast, or an anomaly verdict (a series
    /// can be scored while its configured model is still warming up).
    pub fn exported(&self) -> impl Iterator<Item = &SeriesForecast> {
        self.series
            .iter()
            .filter(|s| s.is_ready() || s.anomaly.is_some())
    }
}

/// Why a target has no desired replicas now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoDesired {
    #[error("no forecast step has run yet")]
    NoStep,
    #[error("the forecasts are stale: the last step ran {:.0} s ago (step {} s)", *age_ms as f64 / 1000.0, step_ms / 1000)]
    Stale { age_ms: i64, step_ms: i64 },
    #[error("no recommendation: {0}")]
    NoRecommendation(String),
}

/// Horizon labels and lengths in ms, per forecast entry.
pub fn horizons_of(config: &Config) -> Vec<Vec<(String, i64)>> {
    config
        .forecast
        .iter()
        .map(|f| {
            f.horizons
                .iter()
                .map(|h| (h.label.clone(), h.duration.as_millis() as i64))
                .collect()
        })
        .collect()
}

/// Something handed every published snapshot, on the forecast thread, before readers see
/// it: it must only queue or record (remote-write queues, the forecast history).
pub trait Subscriber: Send + Sync {
    fn publish(&self, snapshot: &Arc<Snapshot>);
}

/// The latest snapshot: one writer (the forecast loop), lock-free readers, and subscribers
/// registered at start-up.
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    subscribers: Mutex<Vec<Arc<dyn Subscriber>>>,
}

impl SnapshotCell {
    pub fn new(initial: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(initial),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Hands every snapshot published from now on to `s`.
    pub fn subscribe(&self, s: Arc<dyn Subscriber>) {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(s);
    }

    /// Hands `snapshot` to the subscribers (in the order they subscribed), then makes it
    /// the one readers load.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        let subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for s in &subscribers {
            s.publish(&snapshot);
        }
        self.current.store(snapshot);
    }
}
