//! `forecast:` entries: which series are forecast, by which model ([`ModelChoice`]), at
//! which horizons and quantiles, with which seasons and anomaly scoring; and their checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::PromDuration;
use super::inference::InferenceSection;
use super::selector::Selector;
use super::storage::{CounterMode, StorageSection};
use crate::detectors::DetectorKind;

pub use crate::models::{ModelChoice, ModelKind};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastSection {
    /// PromQL series selector: `name{label="v"}` with `=`, `!=`, `=~`, `!~`.
    pub selector: String,
    #[serde(default = "default_horizons")]
    pub horizons: Vec<PromDuration>,
    #[serde(default = "default_model")]
    pub model: ModelChoice,
    /// Lower and upper quantile of the band (`yhat_lower`, `yhat_upper`).
    #[serde(default = "default_quantiles")]
    pub quantiles: Vec<f64>,
    /// Seasonal periods for `mstl` and `seasonal_naive`; a period is used once the series
    /// holds enough of it (one cycle for seasonal naive, two for MSTL).
    #[serde(default = "default_seasons")]
    pub seasons: Vec<PromDuration>,
    /// How often an expensive model (`mstl`) is refitted per series; between refits its
    /// forecast path is read forward and its age is exported.
    #[serde(default = "default_refit")]
    pub refit_every: PromDuration,
    /// How often `model: auto` re-chooses each series' model by a rolling backtest on the
    /// series' own history.
    #[serde(default = "default_auto_every")]
    pub auto_every: PromDuration,
    /// The time constant of the rolling accuracy exported per series and horizon
    /// (`N:forecast_mase`, `N:forecast_coverage`): the forecasts' errors against what then
    /// happened, exponentially weighted so that the last `accuracy_window` weighs 63%.
    /// `0s` turns the accuracy outputs off.
    #[serde(default = "default_accuracy_window")]
    pub accuracy_window: PromDuration,
    /// Calibrates each series' band per horizon on its own recent errors (adaptive conformal
    /// inference, `src/forecast/accuracy.rs`): over time each side misses at its nominal
    /// rate (`quantiles`), whatever the model's band. `false` serves the models' bands.
    #[serde(default = "default_true")]
    pub calibrate_band: bool,
    /// Anomaly scoring of each series' newest point (`N:anomaly_score`,
    /// `N:anomaly_likelihood`, `N:anomalous`).
    #[serde(default)]
    pub anomaly: AnomalySection,
    /// Overrides `storage.counters` for the counters this entry selects.
    #[serde(default)]
    pub counters: Option<CounterMode>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySection {
    pub enabled: bool,
    /// What scores each series' newest point: a detector in the list of
    /// `src/detectors.rs` (`knn`: conformal nearest neighbours, the default; `forest`: the
    /// extended isolation forest).
    pub detector: DetectorKind,
    /// Score (0..1) at or above which a point is flagged anomalous when `signal: score`
    /// [default: the detector's: `knn` 0.99, `forest` 0.65].
    pub threshold: Option<f64>,
    /// How often the entry's isolation forest is retrained from the rings.
    pub retrain_every: PromDuration,
    /// What drives `N:anomalous`: the detector's `score` (against `threshold`) or its
    /// `likelihood` (against `likelihood_threshold`) [default: the detector's: `knn` score,
    /// `forest` likelihood].
    pub signal: Option<AlarmSignal>,
    /// Likelihood (0..1, log-scaled) at or above which a point is flagged anomalous when
    /// `signal: likelihood`.
    pub likelihood_threshold: f64,
    /// After `N:anomalous` fires for a series, it does not fire again for this long (`0s`:
    /// every anomalous point fires) [default: the detector's: `knn` 0s (it holds its own
    /// scores after a firing), `forest` 1d].
    pub suppress: Option<PromDuration>,
}

impl Default for AnomalySection {
    fn default() -> Self {
        Self {
            enabled: true,
            detector: DetectorKind::default(),
            threshold: None,
            retrain_every: PromDuration(Duration::from_secs(3600)),
            signal: None,
            likelihood_threshold: 0.15,
            suppress: None,
        }
    }
}

fn default_horizons() -> Vec<PromDuration> {
    [5, 15, 30]
        .map(|m| PromDuration(Duration::from_secs(m * 60)))
        .to_vec()
}
fn default_model() -> ModelChoice {
    ModelChoice::Auto
}
fn default_quantiles() -> Vec<f64> {
    vec![0.1, 0.9]
}
fn default_seasons() -> Vec<PromDuration> {
    vec![
        PromDuration(Duration::from_secs(3600)),
        PromDuration(Duration::from_secs(86_400)),
    ]
}
fn default_auto_every() -> PromDuration {
    PromDuration(Duration::from_secs(3600))
}
fn default_true() -> bool {
    true
}
fn default_accuracy_window() -> PromDuration {
    PromDuration(Duration::from_secs(86_400))
}
fn default_refit() -> PromDuration {
    PromDuration(Duration::from_secs(15 * 60))
}

#[derive(Debug, Clone)]
pub struct ForecastSpec {
    pub selector: Selector,
    pub horizons: Vec<Horizon>,
    pub model: ModelChoice,
    pub lower_quantile: f64,
    pub upper_quantile: f64,
    /// Seasonal periods in steps, ascending.
    pub seasons: Vec<usize>,
    /// Refit interval in steps (at least 1).
    pub refit_every: usize,
    /// `auto` re-choice interval in steps (at least 1).
    pub auto_every: usize,
    /// The accuracy outputs' time constant in steps; `None`: no accuracy outputs.
    pub accuracy_window: Option<usize>,
    /// Whether bands are calibrated on each series' own errors.
    pub calibrate_band: bool,
    pub anomaly: Option<AnomalySpec>,
    /// Whether the counters this entry selects are stored as rates.
    pub counters: CounterMode,
}

/// What drives `N:anomalous`: the detector's raw score or its likelihood
/// (`crate::anomaly::likelihood`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmSignal {
    /// The detector's score (`N:anomaly_score`): `knn`'s default (a p-value already).
    Score,
    /// The anomaly likelihood of the score (`N:anomaly_likelihood`): `forest`'s default,
    /// measured better for it on NAB (docs/ANOMALY.md).
    Likelihood,
}

impl std::str::FromStr for AlarmSignal {
    type Err = String;

    /// The names of the config (`score`, `likelihood`), as `--signal` takes them.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "score" => Ok(AlarmSignal::Score),
            "likelihood" => Ok(AlarmSignal::Likelihood),
            _ => Err(format!("expected `score` or `likelihood`, got `{s}`")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnomalySpec {
    /// The detector that scores the entry's series.
    pub detector: DetectorKind,
    /// Score threshold; with `signal: likelihood`, the likelihood threshold.
    pub threshold: f64,
    /// Retrain interval in steps (at least 1).
    pub retrain_every: usize,
    pub signal: AlarmSignal,
    /// Suppression after a firing, in steps (0: none).
    pub suppress: usize,
    /// Whether only a point outside the naive band may fire (the detector's
    /// [`crate::detectors::VerdictDefaults::outside_band_only`]).
    pub outside_band_only: bool,
}

/// The verdict an entry's detector gets: its own defaults
/// ([`DetectorKind::verdict`]) where the entry does not override them. The agent's config and
/// `anomaly-eval` both resolve it here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub signal: AlarmSignal,
    /// The threshold the signal is compared with (with `signal: likelihood`, the
    /// likelihood threshold).
    pub threshold: f64,
    pub suppress: Duration,
    pub outside_band_only: bool,
}

impl Verdict {
    /// `detector`'s verdict with the entry's overrides (`None`: the detector's default).
    pub fn of(
        detector: DetectorKind,
        signal: Option<AlarmSignal>,
        threshold: Option<f64>,
        likelihood_threshold: f64,
        suppress: Option<Duration>,
    ) -> Verdict {
        let d = detector.verdict();
        let signal = signal.unwrap_or(if d.on_likelihood {
            AlarmSignal::Likelihood
        } else {
            AlarmSignal::Score
        });
        Verdict {
            signal,
            threshold: match signal {
                AlarmSignal::Score => threshold.unwrap_or(d.threshold),
                AlarmSignal::Likelihood => likelihood_threshold,
            },
            suppress: suppress.unwrap_or(Duration::from_secs(d.suppress_secs)),
            outside_band_only: d.outside_band_only,
        }
    }
}

/// One forecast horizon: the label text users see and the number of steps ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Horizon {
    pub label: String,
    pub duration: Duration,
    pub steps: usize,
}

/// One `forecast:` entry; `None` when its selector does not parse (reported).
pub(super) fn forecast_entry(
    storage: &StorageSection,
    inference: &InferenceSection,
    i: usize,
    f: &ForecastSection,
    step_ms: u64,
    ring_len: usize,
    problem: &mut impl FnMut(String, String),
) -> Option<ForecastSpec> {
    let at = |key: &str| format!("forecast[{i}].{key}");
    let selector = Selector::parse(&f.selector)
        .map_err(|e| problem(at("selector"), e.to_string()))
        .ok();
    let horizons = horizons(storage, i, f, step_ms, ring_len, problem);
    let (lo, hi) = match f.quantiles.as_slice() {
        [lo, hi] if 0.0 < *lo && lo < hi && *hi < 1.0 => (*lo, *hi),
        _ => {
            problem(
                at("quantiles"),
                format!(
                    "expected [lower, upper] with 0 < lower < upper < 1, got {:?}",
                    f.quantiles
                ),
            );
            (0.1, 0.9)
        }
    };
    let mut seasons = Vec::new();
    for (j, s) in f.seasons.iter().enumerate() {
        let ms = s.0.as_millis() as u64;
        if step_ms == 0 {
            continue;
        }
        if ms == 0 || ms % step_ms != 0 || ms / step_ms < 2 {
            problem(
                format!("forecast[{i}].seasons[{j}]"),
                format!("{s} is not a multiple of storage.step of at least two steps"),
            );
            continue;
        }
        seasons.push((ms / step_ms) as usize);
    }
    seasons.sort_unstable();
    seasons.dedup();
    let in_steps = |d: &PromDuration| {
        (d.0.as_millis() as u64)
            .checked_div(step_ms)
            .unwrap_or(1)
            .max(1) as usize
    };
    let named = f.model.model();
    if let Some(model) = named.filter(|k| k.needs_network()) {
        if inference.model.as_deref() == Some("none") {
            problem(
                at("model"),
                format!("`{model}` needs a model, but inference.model is `none`"),
            );
        }
    }
    if let Some(model) = named.filter(|k| k.needs_season() && seasons.is_empty()) {
        problem(
            at("seasons"),
            format!("`{model}` needs at least one season"),
        );
    }
    if let Some(t) = f.anomaly.threshold.filter(|t| !(0.0..=1.0).contains(t)) {
        problem(
            at("anomaly.threshold"),
            format!("must be within 0..1, got {t}"),
        );
    }
    if !(0.0..=1.0).contains(&f.anomaly.likelihood_threshold) {
        problem(
            at("anomaly.likelihood_threshold"),
            format!(
                "must be within 0..1, got {}",
                f.anomaly.likelihood_threshold
            ),
        );
    }
    Some(ForecastSpec {
        selector: selector?,
        horizons,
        model: f.model,
        lower_quantile: lo,
        upper_quantile: hi,
        seasons,
        refit_every: in_steps(&f.refit_every),
        auto_every: in_steps(&f.auto_every),
        accuracy_window: (!f.accuracy_window.0.is_zero()).then(|| in_steps(&f.accuracy_window)),
        calibrate_band: f.calibrate_band,
        anomaly: f.anomaly.enabled.then(|| {
            let a = &f.anomaly;
            let v = Verdict::of(
                a.detector,
                a.signal,
                a.threshold,
                a.likelihood_threshold,
                a.suppress.map(|s| s.0),
            );
            AnomalySpec {
                detector: a.detector,
                threshold: v.threshold,
                retrain_every: in_steps(&a.retrain_every),
                signal: v.signal,
                suppress: (v.suppress.as_millis() as u64)
                    .checked_div(step_ms)
                    .unwrap_or(0) as usize,
                outside_band_only: v.outside_band_only,
            }
        }),
        counters: f.counters.unwrap_or(storage.counters),
    })
}

/// An entry's horizons: positive multiples of the step within the retention, each once,
/// sorted.
fn horizons(
    storage: &StorageSection,
    i: usize,
    f: &ForecastSection,
    step_ms: u64,
    ring_len: usize,
    problem: &mut impl FnMut(String, String),
) -> Vec<Horizon> {
    if f.horizons.is_empty() {
        problem(
            format!("forecast[{i}].horizons"),
            "at least one horizon is needed".into(),
        );
    }
    let mut horizons = Vec::with_capacity(f.horizons.len());
    for (j, h) in f.horizons.iter().enumerate() {
        let ms = h.0.as_millis() as u64;
        if step_ms == 0 {
            continue;
        }
        let at = format!("forecast[{i}].horizons[{j}]");
        if ms == 0 || ms % step_ms != 0 {
            problem(
                at,
                format!(
                    "{h} is not a positive multiple of storage.step ({})",
                    storage.step
                ),
            );
            continue;
        }
        let steps = (ms / step_ms) as usize;
        if steps > ring_len {
            problem(
                at,
                format!(
                    "{h} is longer than storage.retention ({})",
                    storage.retention
                ),
            );
            continue;
        }
        if horizons.iter().any(|x: &Horizon| x.steps == steps) {
            problem(at, format!("{h} is listed twice"));
            continue;
        }
        horizons.push(Horizon {
            label: h.to_string(),
            duration: h.0,
            steps,
        });
    }
    horizons.sort_by_key(|h| h.steps);
    horizons
}
