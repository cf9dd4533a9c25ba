//! The model contract: what an ONNX file must declare for promcast to run it, parsed into a
//! [`ModelMeta`], and the shape checks every backend runs against it ([`PlanShape`]).
//!
//! # Model contract
//!
//! A model is an ONNX file with one input and one output:
//!
//! - input `input`: f32 `[batch, window, features]`. The batch dimension may be symbolic or
//!   fixed in the file; promcast always runs it with a symbolic batch `N`.
//! - output `output` (or the graph's only output): f32 `[batch, horizons, quantiles]`, in the
//!   normalised space of the input (see below); promcast de-normalises it.
//!
//! The file's `metadata_props` say what the model expects. All keys are required:
//!
//! | key | example | meaning |
//! |---|---|---|
//! | `promcast.format` | `1` | version of this contract |
//! | `promcast.window` | `16` | input steps |
//! | `promcast.step` | `1m` | spacing of the steps (a Prometheus duration) the horizons are written at |
//! | `promcast.steps` | `1m,5m` | optional: every `storage.step` the model serves (default: `promcast.step`); at step `s`, horizon `h` of the model is `h / promcast.step` steps of `s` |
//! | `promcast.horizons` | `5m,15m,30m` | output horizons, strictly increasing, in output order |
//! | `promcast.quantiles` | `0.1,0.5,0.9` | output quantile levels in (0, 1), strictly increasing; must include 0.5 (the point forecast) |
//! | `promcast.features` | `value,mask,tod_sin,tod_cos` | input features per step, in input order; `value` first |
//! | `promcast.normalisation` | `robust_median_iqr` | how values are normalised |
//!
//! Features (timestamps are those of each step's bucket, UTC):
//!
//! - `value`: the normalised value, gaps filled (below). Required, and must be first.
//! - `mask`: 1 where the step was observed, 0 where it was a gap and got filled.
//! - `tod_sin`, `tod_cos`: sin/cos of 2π · (time of day / 1 day).
//! - `dow_sin`, `dow_cos`: sin/cos of 2π · (time since Monday 00:00 / 7 days), i.e. phase 0 is
//!   Monday 00:00 UTC and the phase advances continuously through the week.
//! - `lag_1d`, `lag_1w`: the normalised value (with the current window's center and scale) one
//!   day / one week before that step, from the same history. When that point is not available
//!   (history too short, or a gap there) the step's own normalised value is used instead. These
//!   features need a step that divides 1d / 1w exactly.
//! - `lag_1d_lead`: the normalised value one day before the point `L` steps after that step,
//!   `L` the model's longest horizon in steps; so the last `L` window steps carry, for every
//!   target, the value at the same time the day before (the seasonal-naive forecast). Missing
//!   points fall back to the step's own value, as above; `lag_1d_lead_mask` is 1 where the
//!   point was there, 0 where it fell back.
//!
//! Normalisation `robust_median_iqr`, per row (series) and window:
//!
//! - Gaps (NaN, ±inf) in the window are forward-filled from the previous observed value; leading
//!   gaps are back-filled with the first observed value. A history shorter than the window counts
//!   as leading gaps. A window with no observed value is *not forecastable*: its outputs are NaN.
//! - `center` = median of the observed window values; `iqr` = q75 − q25 of the observed window
//!   values (linear interpolation between order statistics, as numpy's default);
//!   `scale = max(iqr, 1e-3·|center|, 1e-9)` so a constant window never divides by zero.
//! - Inputs `x' = (x − center) / scale`; outputs `y = y' · scale + center`.
//! - A window whose IQR is 0 (half or more of its observed values equal: a counter that
//!   repeats but for spikes) is forecast at its level: at each horizon every output is first
//!   shifted by the median output, `y = (y' − y'₀.₅) · scale + center`, keeping the band's
//!   width and order. (The network's scale there comes from the spikes alone, and its answer
//!   sat about half a unit below the level.)
//!
//! Normalisation `robust_median_iqr_mad` is the same with `scale = max(iqr, 1.25·mean |x −
//! center|, 1e-3·|center|, 1e-9)` over the observed window values, and every normalised input
//! clipped to ±50: a window flat but for one spike keeps a sane scale.
//!
//! Missing or malformed metadata is a load error naming the key and the file; a graph whose
//! declared shapes disagree with the metadata is an `Incompatible` error.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::onnx;
use crate::config::{format_duration, parse_duration};

/// Quantiles are compared with this tolerance.
pub(super) const QUANTILE_TOLERANCE: f64 = 1e-6;

pub(super) const DAY_MS: i64 = 86_400_000;
pub(super) const WEEK_MS: i64 = 7 * DAY_MS;
/// 1970-01-05 00:00 UTC, the first Monday after the Unix epoch: phase 0 of `dow_*`.
pub(super) const MONDAY_MS: i64 = 4 * DAY_MS;

pub const KEY_FORMAT: &str = "promcast.format";
pub const KEY_WINDOW: &str = "promcast.window";
pub const KEY_STEP: &str = "promcast.step";
pub const KEY_STEPS: &str = "promcast.steps";
pub const KEY_HORIZONS: &str = "promcast.horizons";
pub const KEY_QUANTILES: &str = "promcast.quantiles";
pub const KEY_FEATURES: &str = "promcast.features";
pub const KEY_NORMALISATION: &str = "promcast.normalisation";

/// What a model expects, from its `promcast.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMeta {
    pub window: usize,
    /// The step `horizons` are written at.
    pub step: Duration,
    /// Every `storage.step` the model serves (contains `step`).
    pub steps: Vec<Duration>,
    pub horizons: Vec<Duration>,
    pub quantiles: Vec<f64>,
    pub features: Vec<Feature>,
    pub normalisation: Normalisation,
}

impl ModelMeta {
    /// Index of `horizon` in [`ModelMeta::horizons`] (the output's axis 1), at the model's
    /// own step.
    pub fn horizon_index(&self, horizon: Duration) -> Option<usize> {
        self.horizon_index_at(horizon, self.step)
    }

    /// Index of the output that forecasts `horizon` when the model runs at `step`: the one
    /// whose length in steps is `horizon / step`.
    pub fn horizon_index_at(&self, horizon: Duration, step: Duration) -> Option<usize> {
        if step == self.step {
            return self.horizons.iter().position(|h| *h == horizon);
        }
        let (h, s) = (horizon.as_millis(), step.as_millis());
        if s == 0 || h % s != 0 {
            return None;
        }
        let want = (h / s) as usize;
        self.horizon_steps().iter().position(|&k| k == want)
    }

    /// Each output horizon in steps (rounded down when a horizon is not a whole number of
    /// steps; such a horizon is only served at the model's own step).
    pub fn horizon_steps(&self) -> Vec<usize> {
        let s = self.step.as_millis().max(1);
        self.horizons
            .iter()
            .map(|h| (h.as_millis() / s) as usize)
            .collect()
    }

    /// Index of quantile level `q` in [`ModelMeta::quantiles`] (the output's axis 2), with
    /// tolerance 1e-6.
    pub fn quantile_index(&self, q: f64) -> Option<usize> {
        self.quantiles
            .iter()
            .position(|m| (m - q).abs() <= QUANTILE_TOLERANCE)
    }

    /// Output values per row: `horizons × quantiles`.
    pub fn outputs_per_row(&self) -> usize {
        self.horizons.len() * self.quantiles.len()
    }

    /// Checks that the model can serve a forecast entry stored at `step` with `horizons` and
    /// band `quantiles`: `step` is one of the model's steps, every horizon is one of the
    /// model's at that step, and the model has every quantile and 0.5 (tolerance 1e-6). The
    /// error says what does not fit.
    pub fn check_fits(
        &self,
        step: Duration,
        horizons: &[Duration],
        quantiles: &[f64],
    ) -> Result<(), String> {
        if !self.steps.contains(&step) {
            return Err(format!(
                "model step {} does not match storage.step {}",
                self.steps
                    .iter()
                    .map(|s| format_duration(*s))
                    .collect::<Vec<_>>()
                    .join(","),
                format_duration(step)
            ));
        }
        let missing: Vec<String> = horizons
            .iter()
            .filter(|h| self.horizon_index_at(**h, step).is_none())
            .map(|h| format_duration(*h))
            .collect();
        if !missing.is_empty() {
            let model_horizons = self
                .horizon_steps()
                .iter()
                .map(|k| format_duration(step * *k as u32))
                .collect::<Vec<_>>()
                .join(",");
            return Err(format!(
                "model has no horizon {} (model horizons: {model_horizons})",
                missing.join(","),
            ));
        }
        let missing: Vec<String> = quantiles
            .iter()
            .chain(std::iter::once(&0.5))
            .filter(|q| self.quantile_index(**q).is_none())
            .map(|q| q.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "model has no quantile {} (model quantiles: {})",
                missing.join(","),
                self.quantiles
                    .iter()
                    .map(|q| q.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        Ok(())
    }

    /// Ring points needed per series at `step`: the window, plus one day (`lag_1d*`) or one
    /// week (`lag_1w`) of steps before it when those features are used (the larger of the
    /// two, not the sum: a week of history covers the day).
    pub fn history_needed(&self, step: Duration) -> usize {
        let lags = self.lag_steps(step);
        self.window + lags.day.unwrap_or(0).max(lags.week.unwrap_or(0))
    }

    /// The tensor shapes a backend runs this model with.
    pub(super) fn plan_shape(&self, output_index: usize) -> PlanShape {
        PlanShape {
            window: self.window,
            features: self.features.len(),
            horizons: self.horizons.len(),
            quantiles: self.quantiles.len(),
            output_index,
        }
    }

    /// Steps between a point and the same point one day / one week earlier at `step`, when
    /// a feature needs them (`lag_1d`, `lag_1d_lead*` / `lag_1w`).
    pub(super) fn lag_steps(&self, step: Duration) -> Lags {
        let step = (step.as_millis() as i64).max(1);
        let uses = |fs: &[Feature]| fs.iter().any(|f| self.features.contains(f));
        Lags {
            day: uses(&[Feature::Lag1d, Feature::Lag1dLead, Feature::Lag1dLeadMask])
                .then(|| (DAY_MS / step) as usize),
            week: uses(&[Feature::Lag1w]).then(|| (WEEK_MS / step) as usize),
            lead: self.horizon_steps().into_iter().max().unwrap_or(0),
        }
    }
}

/// Lag lengths in steps at the step a model runs at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lags {
    pub(super) day: Option<usize>,
    pub(super) week: Option<usize>,
    /// The longest horizon in steps (`lag_1d_lead`).
    pub(super) lead: usize,
}

/// One input feature per step; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    Value,
    Mask,
    TodSin,
    TodCos,
    DowSin,
    DowCos,
    Lag1d,
    Lag1w,
    Lag1dLead,
    Lag1dLeadMask,
}

impl Feature {
    pub const ALL: [Feature; 10] = [
        Feature::Value,
        Feature::Mask,
        Feature::TodSin,
        Feature::TodCos,
        Feature::DowSin,
        Feature::DowCos,
        Feature::Lag1d,
        Feature::Lag1w,
        Feature::Lag1dLead,
        Feature::Lag1dLeadMask,
    ];

    /// The name used in `promcast.features`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Value => "value",
            Feature::Mask => "mask",
            Feature::TodSin => "tod_sin",
            Feature::TodCos => "tod_cos",
            Feature::DowSin => "dow_sin",
            Feature::DowCos => "dow_cos",
            Feature::Lag1d => "lag_1d",
            Feature::Lag1w => "lag_1w",
            Feature::Lag1dLead => "lag_1d_lead",
            Feature::Lag1dLeadMask => "lag_1d_lead_mask",
        }
    }

    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How values are normalised per window; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Normalisation {
    RobustMedianIqr,
    /// `robust_median_iqr` with a scale of at least 1.25 × the mean absolute deviation from
    /// the median, and normalised inputs clipped to ±[`CLIP_MAD`]: a window that is flat but
    /// for a spike (IQR 0, e.g. sparse counts) no longer divides by ~0.
    RobustMedianIqrMad,
}

/// Clip of normalised inputs under `robust_median_iqr_mad`.
pub const CLIP_MAD: f32 = 50.0;

impl Normalisation {
    pub fn name(self) -> &'static str {
        match self {
            Normalisation::RobustMedianIqr => "robust_median_iqr",
            Normalisation::RobustMedianIqrMad => "robust_median_iqr_mad",
        }
    }
}

impl fmt::Display for Normalisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NeuralError {
    #[error("reading model file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model {origin}: metadata key {key}: {reason}")]
    Metadata {
        origin: String,
        key: String,
        reason: String,
    },
    #[error("model {origin}: cannot load the ONNX graph: {reason}")]
    Onnx { origin: String, reason: String },
    #[error("model {origin}: {reason}")]
    Incompatible { origin: String, reason: String },
    /// The inference backend would not start (onnxruntime missing, wrong version, no session).
    #[error("model {origin}: inference backend: {reason}")]
    Backend { origin: String, reason: String },
    #[error("running the neural model: {reason}")]
    Run { reason: String },
}

/// The `promcast.*` entries of a model's `metadata_props`, with errors that name the key and
/// the file.
struct Props<'a> {
    props: &'a [onnx::StringStringEntryProto],
    origin: &'a str,
}

impl<'a> Props<'a> {
    fn err(&self, key: &str, reason: String) -> NeuralError {
        NeuralError::Metadata {
            origin: self.origin.to_owned(),
            key: key.to_owned(),
            reason,
        }
    }

    fn has(&self, key: &str) -> bool {
        self.props.iter().any(|p| p.key() == key)
    }

    fn get(&self, key: &str) -> Result<&'a str, NeuralError> {
        let mut found = self.props.iter().filter(|p| p.key() == key);
        let first = found
            .next()
            .ok_or_else(|| self.err(key, "missing from the model's metadata_props".to_owned()))?;
        if found.next().is_some() {
            return Err(self.err(key, "appears more than once".to_owned()));
        }
        Ok(first.value().trim())
    }

    fn list(&self, key: &str) -> Result<Vec<&'a str>, NeuralError> {
        let raw = self.get(key)?;
        if raw.is_empty() {
            return Err(self.err(key, "is empty".to_owned()));
        }
        raw.split(',')
            .map(|s| {
                let s = s.trim();
                if s.is_empty() {
                    Err(self.err(key, format!("{raw:?} has an empty item")))
                } else {
                    Ok(s)
                }
            })
            .collect()
    }

    /// A list of positive durations under `key`, strictly increasing when `increasing`.
    fn durations(
        &self,
        key: &str,
        what: &str,
        increasing: bool,
    ) -> Result<Vec<Duration>, NeuralError> {
        let mut out: Vec<Duration> = Vec::new();
        for item in self.list(key)? {
            let d = parse_duration(item).map_err(|e| self.err(key, e.to_string()))?;
            if d.is_zero() {
                return Err(self.err(key, format!("{what} {item:?} must be positive")));
            }
            if increasing && out.last().is_some_and(|prev| *prev >= d) {
                return Err(self.err(key, format!("{what}s must be strictly increasing")));
            }
            out.push(d);
        }
        Ok(out)
    }
}

/// Parses and validates the `promcast.*` metadata.
pub(super) fn parse_meta(
    props: &[onnx::StringStringEntryProto],
    origin: &str,
) -> Result<ModelMeta, NeuralError> {
    let p = Props { props, origin };
    let format = p.get(KEY_FORMAT)?;
    if format != "1" {
        return Err(p.err(
            KEY_FORMAT,
            format!("unsupported format {format:?} (this promcast reads format 1)"),
        ));
    }
    let raw = p.get(KEY_WINDOW)?;
    let window: usize = raw
        .parse()
        .ok()
        .filter(|w| (1..=1_000_000).contains(w))
        .ok_or_else(|| {
            p.err(
                KEY_WINDOW,
                format!("{raw:?} is not a step count in 1..=1000000"),
            )
        })?;
    let raw = p.get(KEY_STEP)?;
    let step = parse_duration(raw).map_err(|e| p.err(KEY_STEP, e.to_string()))?;
    if step.is_zero() {
        return Err(p.err(KEY_STEP, "must be positive".to_owned()));
    }
    let steps = if p.has(KEY_STEPS) {
        let steps = p.durations(KEY_STEPS, "step", false)?;
        if !steps.contains(&step) {
            return Err(p.err(
                KEY_STEPS,
                format!("must include promcast.step ({})", format_duration(step)),
            ));
        }
        steps
    } else {
        vec![step]
    };
    let horizons = p.durations(KEY_HORIZONS, "horizon", true)?;
    let quantiles = parse_quantiles(&p)?;
    let features = parse_features(&p, &steps)?;
    let raw = p.get(KEY_NORMALISATION)?;
    let normalisation = match raw {
        "robust_median_iqr" => Normalisation::RobustMedianIqr,
        "robust_median_iqr_mad" => Normalisation::RobustMedianIqrMad,
        other => {
            return Err(p.err(
                KEY_NORMALISATION,
                format!(
                "unknown normalisation {other:?} (known: robust_median_iqr, robust_median_iqr_mad)"
            ),
            ))
        }
    };
    Ok(ModelMeta {
        window,
        step,
        steps,
        horizons,
        quantiles,
        features,
        normalisation,
    })
}

fn parse_quantiles(p: &Props<'_>) -> Result<Vec<f64>, NeuralError> {
    let mut quantiles: Vec<f64> = Vec::new();
    for item in p.list(KEY_QUANTILES)? {
        let q: f64 = item
            .parse()
            .ok()
            .filter(|q: &f64| *q > 0.0 && *q < 1.0)
            .ok_or_else(|| p.err(KEY_QUANTILES, format!("{item:?} is not a level in (0, 1)")))?;
        if quantiles.last().is_some_and(|prev| *prev >= q) {
            return Err(p.err(
                KEY_QUANTILES,
                "quantiles must be strictly increasing".to_owned(),
            ));
        }
        quantiles.push(q);
    }
    if !quantiles
        .iter()
        .any(|q| (q - 0.5).abs() <= QUANTILE_TOLERANCE)
    {
        return Err(p.err(
            KEY_QUANTILES,
            "must include 0.5 (the point forecast)".to_owned(),
        ));
    }
    Ok(quantiles)
}

/// The features, `value` first, each once; lag features only with steps that divide their lag.
fn parse_features(p: &Props<'_>, steps: &[Duration]) -> Result<Vec<Feature>, NeuralError> {
    let mut features = Vec::new();
    for item in p.list(KEY_FEATURES)? {
        let f = Feature::from_name(item).ok_or_else(|| {
            p.err(
                KEY_FEATURES,
                format!(
                    "unknown feature {item:?} (known: {})",
                    Feature::ALL.map(Feature::name).join(", ")
                ),
            )
        })?;
        if features.contains(&f) {
            return Err(p.err(KEY_FEATURES, format!("feature {item:?} appears twice")));
        }
        features.push(f);
    }
    if features.first() != Some(&Feature::Value) {
        return Err(p.err(KEY_FEATURES, "the first feature must be `value`".to_owned()));
    }
    for s in steps {
        let step_ms = s.as_millis() as i64;
        for (f, period, name) in [
            (Feature::Lag1d, DAY_MS, "1d"),
            (Feature::Lag1dLead, DAY_MS, "1d"),
            (Feature::Lag1dLeadMask, DAY_MS, "1d"),
            (Feature::Lag1w, WEEK_MS, "1w"),
        ] {
            if features.contains(&f) && period % step_ms != 0 {
                return Err(p.err(
                    KEY_FEATURES,
                    format!(
                        "{f} needs a step that divides {name}; the model serves step {}",
                        format_duration(*s)
                    ),
                ));
            }
        }
    }
    Ok(features)
}

/// Compares the graph's declared input/output (where the file declares them) with the metadata,
/// for a clear error before tract sees the graph. Returns the index of the forecast output.
pub(super) fn check_declared_shapes(
    proto: &onnx::ModelProto,
    meta: &ModelMeta,
    origin: &str,
) -> Result<usize, NeuralError> {
    let incompatible = |reason: String| NeuralError::Incompatible {
        origin: origin.to_owned(),
        reason,
    };
    let graph = proto.graph.as_ref().ok_or_else(|| NeuralError::Onnx {
        origin: origin.to_owned(),
        reason: "the model has no graph".to_owned(),
    })?;
    // Before IR 4, initializers were also listed as graph inputs.
    let inputs: Vec<&onnx::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name() == i.name()))
        .collect();
    let [input] = inputs[..] else {
        return Err(incompatible(format!(
            "the graph has {} inputs ({}), expected one: input [batch, window, features]",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let output_index = match graph.output.iter().position(|o| o.name() == "output") {
        Some(i) => i,
        None if graph.output.len() == 1 => 0,
        None => {
            return Err(incompatible(format!(
                "the graph has {} outputs and none is named `output`",
                graph.output.len()
            )))
        }
    };
    let output = &graph.output[output_index];
    let expect = |vi: &onnx::ValueInfoProto, what: &str, want: [Option<usize>; 3]| {
        let Some(onnx::type_proto::Value::TensorType(t)) =
            vi.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Ok(());
        };
        if let Some(et) = t.elem_type.filter(|et| *et != 0) {
            if et != onnx::tensor_proto::DataType::Float as i32 {
                return Err(incompatible(format!(
                    "{what} `{}` has element type {et}, expected float (1)",
                    vi.name()
                )));
            }
        }
        let Some(shape) = &t.shape else {
            return Ok(());
        };
        let declared: Vec<Option<i64>> = shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(onnx::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                _ => None,
            })
            .collect();
        let show = || {
            declared
                .iter()
                .map(|d| d.map_or("?".to_owned(), |v| v.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mismatch = declared.len() != 3
            || declared
                .iter()
                .zip(want)
                .any(|(d, w)| matches!((d, w), (Some(d), Some(w)) if *d != w as i64));
        if mismatch {
            return Err(incompatible(format!(
                "{what} `{}` is declared [{}], but the metadata say [batch, {}]",
                vi.name(),
                show(),
                want[1..]
                    .iter()
                    .map(|w| w.map_or("?".to_owned(), |w| w.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    };
    expect(
        input,
        "input",
        [None, Some(meta.window), Some(meta.features.len())],
    )?;
    expect(
        output,
        "output",
        [None, Some(meta.horizons.len()), Some(meta.quantiles.len())],
    )?;
    Ok(output_index)
}

/// What a backend's plan is built for: input `[N, window, features]`, output
/// `[N, horizons, quantiles]`. Every backend checks each run against it with the same two
/// functions, so tract and onnxruntime report a mismatch in the same words.
#[derive(Debug, Clone, Copy)]
pub struct PlanShape {
    pub window: usize,
    pub features: usize,
    pub horizons: usize,
    pub quantiles: usize,
    /// Which of the graph's outputs is the forecast (the others are dropped).
    pub output_index: usize,
}

impl PlanShape {
    /// Values in one input row (`window × features`).
    pub fn row_len(&self) -> usize {
        self.window * self.features
    }

    /// Values in one output row (`horizons × quantiles`).
    pub fn out_len(&self) -> usize {
        self.horizons * self.quantiles
    }

    /// `input` must hold `rows` whole input rows.
    pub fn check_input(&self, rows: usize, input: &[f32]) -> Result<(), String> {
        if input.len() != rows * self.row_len() {
            return Err(format!(
                "input has {} values, expected {rows} x {} x {}",
                input.len(),
                self.window,
                self.features
            ));
        }
        Ok(())
    }

    /// The backend's output shape must be `[rows, horizons, quantiles]`.
    pub fn check_output(&self, rows: usize, shape: &[usize]) -> Result<(), String> {
        let want = [rows, self.horizons, self.quantiles];
        if shape != want {
            return Err(format!(
                "output has shape {shape:?}, expected {want:?} [batch, horizons, quantiles]"
            ));
        }
        Ok(())
    }
}
