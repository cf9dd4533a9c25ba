//! The `lstm` forecasting backend: an ONNX model run with tract-onnx.
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
//!
//! Normalisation `robust_median_iqr_mad` is the same with `scale = max(iqr, 1.25·mean |x −
//! center|, 1e-3·|center|, 1e-9)` over the observed window values, and every normalised input
//! clipped to ±50: a window flat but for one spike keeps a sane scale.
//!
//! Missing or malformed metadata is a load error naming the key and the file; a graph whose
//! declared shapes disagree with the metadata is an `Incompatible` error.
//!
//! [`fixture_model`] writes a small model that follows this contract (a persistence forecaster
//! with random LSTM weights, for tests and examples).

mod fixture;
pub(crate) mod onnx;
pub(crate) mod onnx_build;
#[cfg(feature = "gpu")]
pub mod ort_worker;
mod tract;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;

use crate::config::{format_duration, parse_duration};

pub use fixture::{fixture_model, FixtureParams};

/// Which inference engine runs a model.
#[derive(Debug, Clone)]
pub enum BackendChoice {
    Tract,
    /// onnxruntime through the batch worker (Cargo feature `gpu`).
    #[cfg(feature = "gpu")]
    Ort(ort_worker::OrtOptions),
}

enum Backend {
    Tract(tract::TractPlan),
    #[cfg(feature = "gpu")]
    Ort(ort_worker::OrtWorker),
}

impl Backend {
    fn run(&self, rows: usize, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        match self {
            Backend::Tract(p) => p.run(rows, input, out),
            #[cfg(feature = "gpu")]
            Backend::Ort(w) => w.run(rows, input, out),
        }
    }

    fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Backend::Tract(_) => ("tract", "cpu"),
            #[cfg(feature = "gpu")]
            Backend::Ort(w) => ("ort", w.provider()),
        }
    }
}

/// Rows per tract run: bigger batches are split to bound memory.
const CHUNK_ROWS: usize = 1024;
/// Quantiles are compared with this tolerance.
const QUANTILE_TOLERANCE: f64 = 1e-6;

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;
/// 1970-01-05 00:00 UTC, the first Monday after the Unix epoch: phase 0 of `dow_*`.
const MONDAY_MS: i64 = 4 * DAY_MS;

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

    /// Steps between a point and the same point one day / one week earlier at `step`, when
    /// a feature needs them (`lag_1d`, `lag_1d_lead*` / `lag_1w`).
    fn lag_steps(&self, step: Duration) -> Lags {
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
struct Lags {
    day: Option<usize>,
    week: Option<usize>,
    /// The longest horizon in steps (`lag_1d_lead`).
    lead: usize,
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

/// The model shipped inside promcast (`models/promcast-lstm.onnx`; its card is
/// `models/README.md`).
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../../../models/promcast-lstm.onnx");

/// Loads [`BUILTIN_MODEL`] (once per process; later calls share it).
pub fn builtin_model() -> Result<LstmModel, NeuralError> {
    static MODEL: std::sync::OnceLock<Result<LstmModel, String>> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            LstmModel::from_bytes(BUILTIN_MODEL, "builtin (models/promcast-lstm.onnx)")
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| NeuralError::Incompatible {
            origin: "builtin".into(),
            reason,
        })
}

/// One series' input to [`LstmModel::predict`].
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    /// Ring values oldest → newest, one per step; NaN (or ±inf) marks a gap.
    pub values: &'a [f32],
    /// Timestamp (ms since the epoch) of the newest value's bucket.
    pub last_ts_ms: i64,
    /// False when the timestamps carry no calendar meaning (an indexed trace): the time
    /// features are then 0, the value the model was trained with for unknown times.
    pub calendar: bool,
}

/// A loaded model: metadata plus an optimised tract plan. Cheap to clone (`Arc`), `Send + Sync`;
/// concurrent [`LstmModel::predict`] calls are fine (each takes its own run state and buffers
/// from a pool).
#[derive(Clone)]
pub struct LstmModel {
    inner: Arc<Inner>,
}

struct Inner {
    origin: String,
    meta: ModelMeta,
    plan: Backend,
    scratch: Mutex<Vec<Scratch>>,
}

impl fmt::Debug for LstmModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LstmModel")
            .field("origin", &self.inner.origin)
            .field("meta", &self.inner.meta)
            .finish_non_exhaustive()
    }
}

impl LstmModel {
    /// Reads and loads the model file at `path`; errors name the path.
    pub fn load(path: &Path) -> Result<Self, NeuralError> {
        let bytes = std::fs::read(path).map_err(|source| NeuralError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Loads a model from ONNX bytes on tract; `origin` (a path or a name) is used in error
    /// messages.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self, NeuralError> {
        Self::from_bytes_on(bytes, origin, &BackendChoice::Tract)
    }

    /// Reads the model file at `path` and loads it on `backend`.
    pub fn load_on(path: &Path, backend: &BackendChoice) -> Result<Self, NeuralError> {
        let bytes = std::fs::read(path).map_err(|source| NeuralError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes_on(&bytes, &path.display().to_string(), backend)
    }

    /// Loads a model from ONNX bytes on `backend`.
    pub fn from_bytes_on(
        bytes: &[u8],
        origin: &str,
        backend: &BackendChoice,
    ) -> Result<Self, NeuralError> {
        let proto = onnx::ModelProto::decode(bytes).map_err(|e| NeuralError::Onnx {
            origin: origin.to_owned(),
            reason: format!("not an ONNX model: {e}"),
        })?;
        let meta = parse_meta(&proto.metadata_props, origin)?;
        let output_index = check_declared_shapes(&proto, &meta, origin)?;
        let shape = tract::PlanShape {
            window: meta.window,
            features: meta.features.len(),
            horizons: meta.horizons.len(),
            quantiles: meta.quantiles.len(),
            output_index,
        };
        let plan = match backend {
            BackendChoice::Tract => {
                Backend::Tract(tract::TractPlan::load(bytes, shape).map_err(|e| match e {
                    tract::LoadError::Onnx(reason) => NeuralError::Onnx {
                        origin: origin.to_owned(),
                        reason,
                    },
                    tract::LoadError::Incompatible(reason) => NeuralError::Incompatible {
                        origin: origin.to_owned(),
                        reason,
                    },
                })?)
            }
            #[cfg(feature = "gpu")]
            BackendChoice::Ort(opts) => {
                Backend::Ort(ort_worker::OrtWorker::start(bytes, shape, opts).map_err(
                    |reason| NeuralError::Backend {
                        origin: origin.to_owned(),
                        reason,
                    },
                )?)
            }
        };
        Ok(LstmModel {
            inner: Arc::new(Inner {
                origin: origin.to_owned(),
                meta,
                plan,
                scratch: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.inner.meta
    }

    /// `(backend, execution provider)`: `("tract", "cpu")`, `("ort", "cpu")` or
    /// `("ort", "cuda")`.
    pub fn backend(&self) -> (&'static str, &'static str) {
        self.inner.plan.describe()
    }

    /// Where the model came from (the path or name given at load).
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// Checks that this model can serve a forecast entry: `step` is one of the model's steps,
    /// every requested horizon is one of the model's at that step, and the model has every
    /// requested quantile and 0.5 (tolerance 1e-6). The error names what does not fit.
    pub fn check_fits(
        &self,
        step: Duration,
        horizons: &[Duration],
        quantiles: &[f64],
    ) -> Result<(), NeuralError> {
        let meta = &self.inner.meta;
        let incompatible = |reason: String| NeuralError::Incompatible {
            origin: self.inner.origin.clone(),
            reason,
        };
        if !meta.steps.contains(&step) {
            return Err(incompatible(format!(
                "model step {} does not match storage.step {}",
                meta.steps
                    .iter()
                    .map(|s| format_duration(*s))
                    .collect::<Vec<_>>()
                    .join(","),
                format_duration(step)
            )));
        }
        let model_horizons = || {
            meta.horizon_steps()
                .iter()
                .map(|k| format_duration(step * *k as u32))
                .collect::<Vec<_>>()
                .join(",")
        };
        let missing: Vec<String> = horizons
            .iter()
            .filter(|h| meta.horizon_index_at(**h, step).is_none())
            .map(|h| format_duration(*h))
            .collect();
        if !missing.is_empty() {
            return Err(incompatible(format!(
                "model has no horizon {} (model horizons: {})",
                missing.join(","),
                model_horizons()
            )));
        }
        let missing: Vec<String> = quantiles
            .iter()
            .chain(std::iter::once(&0.5))
            .filter(|q| meta.quantile_index(**q).is_none())
            .map(|q| q.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(incompatible(format!(
                "model has no quantile {} (model quantiles: {})",
                missing.join(","),
                meta.quantiles
                    .iter()
                    .map(|q| q.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        }
        Ok(())
    }

    /// Ring points needed per series at `step`: the window, plus one day (`lag_1d*`) or one
    /// week (`lag_1w`) of steps before it when those features are used (the larger of the
    /// two, not the sum: a week of history covers the day).
    pub fn history_needed(&self, step: Duration) -> usize {
        let meta = &self.inner.meta;
        let lags = meta.lag_steps(step);
        meta.window + lags.day.unwrap_or(0).max(lags.week.unwrap_or(0))
    }

    /// Runs the plan on `rows` already-built input rows (`rows × window × features`) and
    /// returns the raw, normalised output (`rows × horizons × quantiles`): for conformance
    /// tests and benches.
    pub fn run_raw(&self, rows: usize, input: &[f32]) -> Result<Vec<f32>, NeuralError> {
        let mut raw = Vec::new();
        self.inner
            .plan
            .run(rows, input, &mut raw)
            .map_err(|reason| NeuralError::Run {
                reason: format!("model {}: {reason}", self.inner.origin),
            })?;
        Ok(raw)
    }

    /// Forecasts one batch of series stored at `step` (one of the model's steps). `out` is
    /// cleared and filled with
    /// `histories.len() × horizons × quantiles` values in `[batch, horizon, quantile]` order,
    /// de-normalised. Rows whose window has no observed value get NaN. Batches larger than
    /// 1024 rows run in chunks.
    pub fn predict(
        &self,
        histories: &[History<'_>],
        step: Duration,
        out: &mut Vec<f32>,
    ) -> Result<(), NeuralError> {
        let inner = &*self.inner;
        let meta = &inner.meta;
        out.clear();
        out.reserve(histories.len() * meta.outputs_per_row());
        let pooled = inner
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut scratch = pooled.unwrap_or_default();
        for chunk in histories.chunks(CHUNK_ROWS) {
            self.predict_chunk(chunk, step, &mut scratch, out)?;
        }
        inner
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(scratch);
        Ok(())
    }

    fn predict_chunk(
        &self,
        chunk: &[History<'_>],
        step: Duration,
        scratch: &mut Scratch,
        out: &mut Vec<f32>,
    ) -> Result<(), NeuralError> {
        let inner = &*self.inner;
        let meta = &inner.meta;
        let per_row = meta.outputs_per_row();
        let row_len = meta.window * meta.features.len();
        let lags = meta.lag_steps(step);
        scratch.input.clear();
        scratch.input.resize(chunk.len() * row_len, 0.0);
        scratch.norms.clear();
        for (history, row) in chunk.iter().zip(scratch.input.chunks_exact_mut(row_len)) {
            let norm = build_row(
                meta,
                lags,
                step,
                history,
                row,
                &mut scratch.filled,
                &mut scratch.sorted,
            );
            scratch.norms.push(norm);
        }
        if scratch.norms.iter().all(Option::is_none) {
            out.extend(std::iter::repeat_n(f32::NAN, chunk.len() * per_row));
            return Ok(());
        }
        inner
            .plan
            .run(chunk.len(), &scratch.input, &mut scratch.raw)
            .map_err(|reason| NeuralError::Run {
                reason: format!("model {}: {reason}", inner.origin),
            })?;
        for (norm, raw) in scratch.norms.iter().zip(scratch.raw.chunks_exact(per_row)) {
            match norm {
                Some(n) => out.extend(raw.iter().map(|y| n.denormalise(*y))),
                None => out.extend(std::iter::repeat_n(f32::NAN, per_row)),
            }
        }
        Ok(())
    }
}

/// Buffers reused across [`LstmModel::predict`] calls.
#[derive(Default)]
struct Scratch {
    /// `[rows, window, features]` model input.
    input: Vec<f32>,
    /// Per row: normalisation, or `None` when not forecastable.
    norms: Vec<Option<RowNorm>>,
    /// Raw (normalised) model output.
    raw: Vec<f32>,
    /// One window, gap-filled.
    filled: Vec<f64>,
    /// Observed window values, sorted.
    sorted: Vec<f64>,
}

/// A window's normalisation: `x' = (x − center) / scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowNorm {
    pub center: f64,
    pub scale: f64,
    /// Normalised values are clipped to ±clip.
    pub clip: f32,
}

impl RowNorm {
    /// Median and IQR of the finite values in `window` (`sorted` is a scratch buffer); `None`
    /// when there is none.
    #[cfg(test)]
    fn robust(window: impl IntoIterator<Item = f64>, sorted: &mut Vec<f64>) -> Option<RowNorm> {
        Self::new(Normalisation::RobustMedianIqr, window, sorted)
    }

    /// The normalisation of `kind` for the finite values of `window`.
    fn new(
        kind: Normalisation,
        window: impl IntoIterator<Item = f64>,
        sorted: &mut Vec<f64>,
    ) -> Option<RowNorm> {
        sorted.clear();
        sorted.extend(window.into_iter().filter(|v| v.is_finite()));
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_unstable_by(f64::total_cmp);
        let center = quantile_sorted(sorted, 0.5);
        let iqr = quantile_sorted(sorted, 0.75) - quantile_sorted(sorted, 0.25);
        let (floor, clip) = match kind {
            Normalisation::RobustMedianIqr => (0.0, f32::INFINITY),
            Normalisation::RobustMedianIqrMad => {
                let mad =
                    sorted.iter().map(|v| (v - center).abs()).sum::<f64>() / sorted.len() as f64;
                (1.25 * mad, CLIP_MAD)
            }
        };
        let scale = iqr.max(floor).max(1e-3 * center.abs()).max(1e-9);
        Some(RowNorm {
            center,
            scale,
            clip,
        })
    }

    pub fn normalise(&self, x: f64) -> f32 {
        (((x - self.center) / self.scale) as f32).clamp(-self.clip, self.clip)
    }

    pub fn denormalise(&self, y: f32) -> f32 {
        (y as f64 * self.scale + self.center) as f32
    }
}

/// Writes the model input row (`window × features`) for one history at `step`, exactly as
/// [`LstmModel::predict`] builds it: what training uses so that the agent's inputs and the
/// trained model's agree. Returns the row's normalisation, or `None` when the window has no
/// observed value. `scratch` is reused across calls.
pub fn input_row(
    meta: &ModelMeta,
    step: Duration,
    history: &History<'_>,
    row: &mut [f32],
    scratch: &mut (Vec<f64>, Vec<f64>),
) -> Option<RowNorm> {
    build_row(
        meta,
        meta.lag_steps(step),
        step,
        history,
        row,
        &mut scratch.0,
        &mut scratch.1,
    )
}

/// Quantile `q` of sorted, non-empty `s`, interpolating linearly between order statistics.
fn quantile_sorted(s: &[f64], q: f64) -> f64 {
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Writes one row of model input (`window × features`) for `history` into `row`; returns the
/// row's normalisation, or `None` (row zeroed) when the window has no observed value.
fn build_row(
    meta: &ModelMeta,
    lags: Lags,
    step: Duration,
    history: &History<'_>,
    row: &mut [f32],
    filled: &mut Vec<f64>,
    sorted: &mut Vec<f64>,
) -> Option<RowNorm> {
    let w = meta.window;
    let values = history.values;
    // Absolute index in `values` of window step j is `start + j` (negative: before the history).
    let start = values.len() as isize - w as isize;
    let at = |i: isize| -> Option<f64> {
        if i < 0 {
            return None;
        }
        values
            .get(i as usize)
            .map(|v| *v as f64)
            .filter(|v| v.is_finite())
    };
    let Some(norm) = RowNorm::new(
        meta.normalisation,
        (0..w as isize).filter_map(|j| at(start + j)),
        sorted,
    ) else {
        row.fill(0.0);
        return None;
    };

    // Gap filling: forward fill, then back-fill the leading gaps with the first observed value.
    filled.clear();
    let mut last = None;
    for j in 0..w as isize {
        last = at(start + j).or(last);
        filled.push(last.unwrap_or(f64::NAN));
    }
    let first_observed = filled.iter().copied().find(|v| !v.is_nan())?;
    for v in filled.iter_mut().take_while(|v| v.is_nan()) {
        *v = first_observed;
    }

    let step_ms = step.as_millis() as i64;
    let nf = meta.features.len();
    let clock = |v: f64| if history.calendar { v as f32 } else { 0.0 };
    for (j, cells) in row.chunks_exact_mut(nf).enumerate() {
        let own = norm.normalise(filled[j]);
        let ts = history.last_ts_ms - (w - 1 - j) as i64 * step_ms;
        let index = start + j as isize;
        let lag = |steps: Option<usize>| {
            steps
                .and_then(|k| at(index - k as isize))
                .map_or(own, |v| norm.normalise(v))
        };
        let lead = lags
            .day
            .and_then(|d| at(index + lags.lead as isize - d as isize));
        for (cell, feature) in cells.iter_mut().zip(&meta.features) {
            *cell = match feature {
                Feature::Value => own,
                Feature::Mask => {
                    if at(index).is_some() {
                        1.0
                    } else {
                        0.0
                    }
                }
                Feature::TodSin => clock(phase(ts, 0, DAY_MS).sin()),
                Feature::TodCos => clock(phase(ts, 0, DAY_MS).cos()),
                Feature::DowSin => clock(phase(ts, MONDAY_MS, WEEK_MS).sin()),
                Feature::DowCos => clock(phase(ts, MONDAY_MS, WEEK_MS).cos()),
                Feature::Lag1d => lag(lags.day),
                Feature::Lag1w => lag(lags.week),
                Feature::Lag1dLead => lead.map_or(own, |v| norm.normalise(v)),
                Feature::Lag1dLeadMask => {
                    if lead.is_some() {
                        1.0
                    } else {
                        0.0
                    }
                }
            };
        }
    }
    Some(norm)
}

/// 2π · ((ts − origin) mod period) / period.
fn phase(ts_ms: i64, origin_ms: i64, period_ms: i64) -> f64 {
    let t = (ts_ms - origin_ms).rem_euclid(period_ms);
    std::f64::consts::TAU * t as f64 / period_ms as f64
}

/// Parses and validates the `promcast.*` metadata.
fn parse_meta(
    props: &[onnx::StringStringEntryProto],
    origin: &str,
) -> Result<ModelMeta, NeuralError> {
    let err = |key: &str, reason: String| NeuralError::Metadata {
        origin: origin.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let get = |key: &str| -> Result<&str, NeuralError> {
        let mut found = props.iter().filter(|p| p.key() == key);
        let first = found
            .next()
            .ok_or_else(|| err(key, "missing from the model's metadata_props".to_owned()))?;
        if found.next().is_some() {
            return Err(err(key, "appears more than once".to_owned()));
        }
        Ok(first.value().trim())
    };
    let list = |key: &str| -> Result<Vec<&str>, NeuralError> {
        let raw = get(key)?;
        if raw.is_empty() {
            return Err(err(key, "is empty".to_owned()));
        }
        raw.split(',')
            .map(|s| {
                let s = s.trim();
                if s.is_empty() {
                    Err(err(key, format!("{raw:?} has an empty item")))
                } else {
                    Ok(s)
                }
            })
            .collect()
    };

    let format = get(KEY_FORMAT)?;
    if format != "1" {
        return Err(err(
            KEY_FORMAT,
            format!("unsupported format {format:?} (this promcast reads format 1)"),
        ));
    }

    let raw = get(KEY_WINDOW)?;
    let window: usize = raw
        .parse()
        .ok()
        .filter(|w| (1..=1_000_000).contains(w))
        .ok_or_else(|| {
            err(
                KEY_WINDOW,
                format!("{raw:?} is not a step count in 1..=1000000"),
            )
        })?;

    let raw = get(KEY_STEP)?;
    let step = parse_duration(raw).map_err(|e| err(KEY_STEP, e.to_string()))?;
    if step.is_zero() {
        return Err(err(KEY_STEP, "must be positive".to_owned()));
    }

    let steps = match props.iter().find(|p| p.key() == KEY_STEPS) {
        None => vec![step],
        Some(_) => {
            let mut steps = Vec::new();
            for item in list(KEY_STEPS)? {
                let s = parse_duration(item).map_err(|e| err(KEY_STEPS, e.to_string()))?;
                if s.is_zero() {
                    return Err(err(KEY_STEPS, format!("step {item:?} must be positive")));
                }
                steps.push(s);
            }
            if !steps.contains(&step) {
                return Err(err(
                    KEY_STEPS,
                    format!("must include promcast.step ({})", format_duration(step)),
                ));
            }
            steps
        }
    };

    let mut horizons = Vec::new();
    for item in list(KEY_HORIZONS)? {
        let h = parse_duration(item).map_err(|e| err(KEY_HORIZONS, e.to_string()))?;
        if h.is_zero() {
            return Err(err(
                KEY_HORIZONS,
                format!("horizon {item:?} must be positive"),
            ));
        }
        if horizons.last().is_some_and(|prev| *prev >= h) {
            return Err(err(
                KEY_HORIZONS,
                "horizons must be strictly increasing".to_owned(),
            ));
        }
        horizons.push(h);
    }

    let mut quantiles: Vec<f64> = Vec::new();
    for item in list(KEY_QUANTILES)? {
        let q: f64 = item
            .parse()
            .ok()
            .filter(|q: &f64| *q > 0.0 && *q < 1.0)
            .ok_or_else(|| err(KEY_QUANTILES, format!("{item:?} is not a level in (0, 1)")))?;
        if quantiles.last().is_some_and(|prev| *prev >= q) {
            return Err(err(
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
        return Err(err(
            KEY_QUANTILES,
            "must include 0.5 (the point forecast)".to_owned(),
        ));
    }

    let mut features = Vec::new();
    for item in list(KEY_FEATURES)? {
        let f = Feature::from_name(item).ok_or_else(|| {
            err(
                KEY_FEATURES,
                format!(
                    "unknown feature {item:?} (known: {})",
                    Feature::ALL.map(Feature::name).join(", ")
                ),
            )
        })?;
        if features.contains(&f) {
            return Err(err(KEY_FEATURES, format!("feature {item:?} appears twice")));
        }
        features.push(f);
    }
    if features.first() != Some(&Feature::Value) {
        return Err(err(
            KEY_FEATURES,
            "the first feature must be `value`".to_owned(),
        ));
    }
    for s in &steps {
        let step_ms = s.as_millis() as i64;
        for (f, period, name) in [
            (Feature::Lag1d, DAY_MS, "1d"),
            (Feature::Lag1dLead, DAY_MS, "1d"),
            (Feature::Lag1dLeadMask, DAY_MS, "1d"),
            (Feature::Lag1w, WEEK_MS, "1w"),
        ] {
            if features.contains(&f) && period % step_ms != 0 {
                return Err(err(
                    KEY_FEATURES,
                    format!(
                        "{f} needs a step that divides {name}; the model serves step {}",
                        format_duration(*s)
                    ),
                ));
            }
        }
    }

    let raw = get(KEY_NORMALISATION)?;
    let normalisation = match raw {
        "robust_median_iqr" => Normalisation::RobustMedianIqr,
        "robust_median_iqr_mad" => Normalisation::RobustMedianIqrMad,
        other => {
            return Err(err(
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

/// Compares the graph's declared input/output (where the file declares them) with the metadata,
/// for a clear error before tract sees the graph. Returns the index of the forecast output.
fn check_declared_shapes(
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

#[cfg(test)]
mod tests {
    use super::fixture::{
        fixture_model_with_features, INIT_HEAD_B, INIT_HEAD_W, INIT_LSTM_B, INIT_LSTM_R,
        INIT_LSTM_W, INIT_Q_OFFSET,
    };
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn mins(m: u64) -> Duration {
        Duration::from_secs(60 * m)
    }

    fn load_fixture(params: &FixtureParams) -> LstmModel {
        LstmModel::from_bytes(&fixture_model(params), "fixture").expect("fixture loads")
    }

    /// Deterministic uniform [0, 1) numbers for test data.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A real-looking series: a level, a daily-ish wave and noise, with magnitudes from 1 to 1e4.
    fn series(seed: u64, len: usize) -> Vec<f32> {
        let mut rng = Lcg(seed);
        let level = 10f64.powf(rng.next() * 4.0);
        let amp = level * 0.2 * rng.next();
        let phase = rng.next() * std::f64::consts::TAU;
        (0..len)
            .map(|t| {
                let wave = (t as f64 / 9.0 + phase).sin();
                (level + amp * wave + 0.1 * level * (rng.next() - 0.5)) as f32
            })
            .collect()
    }

    /// The fixture's weights, read back from the ONNX file, and an independent f64 forward pass
    /// of its graph (ONNX LSTM equations, gate order i, o, f, c).
    struct Reference {
        w: Vec<f64>,
        r: Vec<f64>,
        b: Vec<f64>,
        head_w: Vec<f64>,
        head_b: Vec<f64>,
        q_offset: Vec<f64>,
        hidden: usize,
        features: usize,
        outputs: usize,
    }

    impl Reference {
        fn from_bytes(bytes: &[u8]) -> Reference {
            let model = onnx::ModelProto::decode(bytes).unwrap();
            let graph = model.graph.unwrap();
            let get = |name: &str| -> (Vec<i64>, Vec<f64>) {
                let t = graph
                    .initializer
                    .iter()
                    .find(|t| t.name() == name)
                    .unwrap_or_else(|| panic!("no initializer {name}"));
                (
                    t.dims.clone(),
                    t.float_data.iter().map(|v| *v as f64).collect(),
                )
            };
            let (w_dims, w) = get(INIT_LSTM_W);
            let (_, r) = get(INIT_LSTM_R);
            let (_, b) = get(INIT_LSTM_B);
            let (hw_dims, head_w) = get(INIT_HEAD_W);
            let (_, head_b) = get(INIT_HEAD_B);
            let (_, q_offset) = get(INIT_Q_OFFSET);
            Reference {
                w,
                r,
                b,
                head_w,
                head_b,
                q_offset,
                hidden: hw_dims[0] as usize,
                features: w_dims[2] as usize,
                outputs: hw_dims[1] as usize,
            }
        }

        /// `x` is `[n, window, features]`; returns `[n, horizons, quantiles]` flattened.
        fn forward(&self, x: &[f32], window: usize) -> Vec<f64> {
            let (hd, nf, k) = (self.hidden, self.features, self.outputs);
            let nq = self.q_offset.len();
            let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
            let mut out = Vec::new();
            for row in x.chunks_exact(window * nf) {
                let mut h = vec![0.0f64; hd];
                let mut c = vec![0.0f64; hd];
                for xt in row.chunks_exact(nf) {
                    let gate = |g: usize| -> f64 {
                        let mut acc = self.b[g] + self.b[4 * hd + g];
                        for (j, xv) in xt.iter().enumerate() {
                            acc += self.w[g * nf + j] * *xv as f64;
                        }
                        for (j, hv) in h.iter().enumerate() {
                            acc += self.r[g * hd + j] * hv;
                        }
                        acc
                    };
                    let pre: Vec<f64> = (0..4 * hd).map(gate).collect();
                    for u in 0..hd {
                        let i = sigmoid(pre[u]);
                        let o = sigmoid(pre[hd + u]);
                        let f = sigmoid(pre[2 * hd + u]);
                        let g = pre[3 * hd + u].tanh();
                        c[u] = f * c[u] + i * g;
                        h[u] = o * c[u].tanh();
                    }
                }
                let last = row[(window - 1) * nf] as f64;
                for j in 0..k {
                    let mut acc = self.head_b[j];
                    for (u, hv) in h.iter().enumerate() {
                        acc += hv * self.head_w[u * k + j];
                    }
                    out.push(acc + last + self.q_offset[j % nq]);
                }
            }
            out
        }
    }

    /// An independent (naive) robust normalisation, for cross-checking.
    fn naive_norm(window: &[f32]) -> (f64, f64) {
        let mut v: Vec<f64> = window
            .iter()
            .filter(|x| x.is_finite())
            .map(|x| *x as f64)
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |p: f64| {
            let pos = p * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] * (1.0 - (pos - lo as f64)) + v[hi] * (pos - lo as f64)
        };
        let center = q(0.5);
        let scale = [q(0.75) - q(0.25), 1e-3 * center.abs(), 1e-9]
            .into_iter()
            .fold(f64::MIN, f64::max);
        (center, scale)
    }

    #[test]
    fn fixture_round_trip_meta() {
        let params = FixtureParams::default();
        let model = load_fixture(&params);
        let meta = model.meta();
        assert_eq!(meta.window, 16);
        assert_eq!(meta.step, MIN);
        assert_eq!(meta.horizons, vec![mins(5), mins(15), mins(30)]);
        assert_eq!(meta.quantiles, vec![0.1, 0.5, 0.9]);
        assert_eq!(meta.features, vec![Feature::Value]);
        assert_eq!(meta.normalisation, Normalisation::RobustMedianIqr);
        assert_eq!(model.history_needed(model.meta().step), 16);
        assert_eq!(meta.outputs_per_row(), 9);
        assert_eq!(meta.quantile_index(0.5000001), Some(1));
        assert_eq!(meta.horizon_index(mins(30)), Some(2));

        let params = FixtureParams {
            window: 7,
            step: Duration::from_secs(1),
            horizons: vec![Duration::from_secs(10), mins(2)],
            quantiles: vec![0.05, 0.25, 0.5, 0.75, 0.95],
            hidden: 5,
            seed: 3,
        };
        let meta = load_fixture(&params).meta().clone();
        assert_eq!(meta.window, params.window);
        assert_eq!(meta.step, params.step);
        assert_eq!(meta.horizons, params.horizons);
        assert_eq!(meta.quantiles, params.quantiles);
    }

    #[test]
    fn predict_shapes_order_and_persistence() {
        let model = load_fixture(&FixtureParams::default());
        let (hz, nq) = (3, 3);
        let mut out = vec![123.0; 5]; // must be cleared
        for n in [1usize, 3, 1000] {
            let data: Vec<Vec<f32>> = (0..n).map(|i| series(i as u64 + 1, 20)).collect();
            let histories: Vec<History<'_>> = data
                .iter()
                .map(|v| History {
                    values: v,
                    last_ts_ms: 1_700_000_000_000,
                    calendar: true,
                })
                .collect();
            model
                .predict(&histories, model.meta().step, &mut out)
                .unwrap();
            assert_eq!(out.len(), n * hz * nq, "batch {n}");
            for (row, values) in out.chunks_exact(hz * nq).zip(&data) {
                let last = *values.last().unwrap();
                let (_, scale) = naive_norm(&values[values.len() - 16..]);
                for q in row.chunks_exact(nq) {
                    assert!(q.iter().all(|v| v.is_finite()), "{q:?}");
                    assert!(q[0] <= q[1] && q[1] <= q[2], "quantiles cross: {q:?}");
                    // Persistence: the median is near the last value, which lies in the band.
                    assert!(q[0] <= last && last <= q[2], "last {last} outside {q:?}");
                    let tol = 0.5 * scale as f32 + 1e-3 * last.abs();
                    assert!((q[1] - last).abs() <= tol, "median {} vs last {last}", q[1]);
                    // Band ≈ ±0.64 IQR around the median.
                    let half = (q[2] - q[0]) / 2.0;
                    let expect = (0.5 * 1.281_551_6 * scale) as f32;
                    assert!((half - expect).abs() <= 1e-3 * expect + 1e-4 * last.abs());
                }
            }
        }
    }

    #[test]
    fn unforecastable_rows_are_nan_and_gaps_are_filled() {
        let model = load_fixture(&FixtureParams::default());
        let all_nan = vec![f32::NAN; 16];
        let mut gappy = series(9, 16);
        gappy[15] = f32::NAN; // newest missing: forward-filled from 14
        gappy[0] = f32::INFINITY; // leading gap: back-filled
        gappy[7] = f32::NAN;
        let good = series(10, 30);
        let histories = [
            History {
                values: &good,
                last_ts_ms: 0,
                calendar: true,
            },
            History {
                values: &all_nan,
                last_ts_ms: 0,
                calendar: true,
            },
            History {
                values: &gappy,
                last_ts_ms: 0,
                calendar: true,
            },
        ];
        let mut out = Vec::new();
        model
            .predict(&histories, model.meta().step, &mut out)
            .unwrap();
        assert_eq!(out.len(), 27);
        assert!(out[..9].iter().all(|v| v.is_finite()));
        assert!(out[9..18].iter().all(|v| v.is_nan()), "{:?}", &out[9..18]);
        let gappy_out = &out[18..];
        assert!(gappy_out.iter().all(|v| v.is_finite()), "{gappy_out:?}");
        let last_observed = gappy[14];
        for q in gappy_out.chunks_exact(3) {
            assert!(q[0] <= last_observed && last_observed <= q[2], "{q:?}");
        }

        // A batch of only unforecastable rows (and an empty batch) needs no inference.
        model
            .predict(
                &[History {
                    values: &all_nan,
                    last_ts_ms: 0,
                    calendar: true,
                }],
                MIN,
                &mut out,
            )
            .unwrap();
        assert_eq!(out.len(), 9);
        assert!(out.iter().all(|v| v.is_nan()));
        model.predict(&[], model.meta().step, &mut out).unwrap();
        assert!(out.is_empty());

        // The filled row equals what the model gives for the same window filled by hand
        // (observed statistics are the same: only the gap positions differ in `mask`).
        let mut filled = Vec::new();
        let mut sorted = Vec::new();
        let meta = model.meta();
        let mut row = vec![0.0; 16];
        let norm = build_row(
            meta,
            meta.lag_steps(meta.step),
            meta.step,
            &History {
                values: &gappy,
                last_ts_ms: 0,
                calendar: true,
            },
            &mut row,
            &mut filled,
            &mut sorted,
        )
        .unwrap();
        assert_eq!(filled[0], gappy[1] as f64);
        assert_eq!(filled[7], gappy[6] as f64);
        assert_eq!(filled[15], gappy[14] as f64);
        assert_eq!(row[15], norm.normalise(gappy[14] as f64));
    }

    #[test]
    fn predict_is_independent_of_batching_and_threads() {
        let model = load_fixture(&FixtureParams::default());
        let n = 2100; // more than two chunks
        let data: Vec<Vec<f32>> = (0..n).map(|i| series(1000 + i as u64, 16)).collect();
        let histories: Vec<History<'_>> = data
            .iter()
            .map(|v| History {
                values: v,
                last_ts_ms: 0,
                calendar: true,
            })
            .collect();
        let mut all = Vec::new();
        model
            .predict(&histories, model.meta().step, &mut all)
            .unwrap();
        assert_eq!(all.len(), n * 9);
        let mut one = Vec::new();
        for i in [0, 1, 1023, 1024, 2047, 2048, 2099] {
            model
                .predict(&histories[i..=i], model.meta().step, &mut one)
                .unwrap();
            for (a, b) in one.iter().zip(&all[i * 9..(i + 1) * 9]) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "row {i}: {a} vs {b}"
                );
            }
        }
        let shared = model.clone();
        let from_threads: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let m = shared.clone();
                    let h = &histories;
                    s.spawn(move || {
                        let mut out = Vec::new();
                        m.predict(h, MIN, &mut out).unwrap();
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for out in from_threads {
            // Same plan, fresh state per run: bit-identical.
            assert!(
                out == all,
                "a thread's forecasts differ from the single-thread run"
            );
        }
    }

    #[test]
    fn tract_matches_reference_forward_pass() {
        let cases = [
            FixtureParams::default(),
            FixtureParams {
                window: 7,
                step: Duration::from_secs(1),
                horizons: vec![Duration::from_secs(10), mins(2)],
                quantiles: vec![0.05, 0.25, 0.5, 0.75, 0.95],
                hidden: 5,
                seed: 3,
            },
        ];
        for params in cases {
            let bytes = fixture_model(&params);
            let model = LstmModel::from_bytes(&bytes, "fixture").unwrap();
            let reference = Reference::from_bytes(&bytes);
            let mut rng = Lcg(params.seed);
            for n in [1usize, 4, 33] {
                let x: Vec<f32> = (0..n * params.window)
                    .map(|_| (rng.next() * 6.0 - 3.0) as f32)
                    .collect();
                let mut got = Vec::new();
                model.inner.plan.run(n, &x, &mut got).unwrap();
                let want = reference.forward(&x, params.window);
                assert_eq!(got.len(), want.len());
                // The LSTM part alone must agree too, not just the persistence skip.
                let lstm_signal = want
                    .iter()
                    .zip(x.chunks_exact(params.window).flat_map(|r| {
                        std::iter::repeat_n(r[params.window - 1] as f64, reference.outputs)
                    }))
                    .map(|(w, last)| (w - last).abs())
                    .fold(0.0, f64::max);
                assert!(lstm_signal > 1e-3, "the head contributes: {lstm_signal}");
                for (g, w) in got.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-4, "tract {g} vs reference {w}");
                }
            }
        }
    }

    #[test]
    fn predict_matches_reference_with_independent_normalisation() {
        let params = FixtureParams::default();
        let bytes = fixture_model(&params);
        let model = LstmModel::from_bytes(&bytes, "fixture").unwrap();
        let reference = Reference::from_bytes(&bytes);
        let data: Vec<Vec<f32>> = (0..20).map(|i| series(77 + i, 25)).collect();
        let histories: Vec<History<'_>> = data
            .iter()
            .map(|v| History {
                values: v,
                last_ts_ms: 0,
                calendar: true,
            })
            .collect();
        let mut out = Vec::new();
        model
            .predict(&histories, model.meta().step, &mut out)
            .unwrap();
        for (values, got) in data.iter().zip(out.chunks_exact(9)) {
            let window = &values[values.len() - 16..];
            let (center, scale) = naive_norm(window);
            let x: Vec<f32> = window
                .iter()
                .map(|v| ((*v as f64 - center) / scale) as f32)
                .collect();
            let want = reference.forward(&x, 16);
            for (g, w) in got.iter().zip(&want) {
                let expect = w * scale + center;
                let tol = 1e-4 * scale + 1e-6 * center.abs();
                assert!((*g as f64 - expect).abs() <= tol, "{g} vs {expect}");
            }
        }
    }

    #[test]
    fn all_features_model_loads_builds_inputs_and_matches_reference() {
        let params = FixtureParams {
            window: 12,
            step: Duration::from_secs(3600),
            ..FixtureParams::default()
        };
        // The features with a per-step definition (the lead ones have their own test).
        let features = &Feature::ALL[..8];
        let bytes = fixture_model_with_features(&params, features);
        let model = LstmModel::from_bytes(&bytes, "all-features").unwrap();
        assert_eq!(model.meta().features, features.to_vec());
        assert_eq!(model.history_needed(model.meta().step), 12 + 168);
        let reference = Reference::from_bytes(&bytes);
        assert_eq!(reference.features, 8);

        let long = series(5, 200);
        let short = series(6, 14);
        let histories = [
            History {
                values: &long,
                last_ts_ms: 1_704_067_200_000,
                calendar: true,
            },
            History {
                values: &short,
                last_ts_ms: 1_704_067_200_000,
                calendar: true,
            },
        ];
        let mut out = Vec::new();
        model
            .predict(&histories, model.meta().step, &mut out)
            .unwrap();
        assert_eq!(out.len(), 18);
        for (h, got) in histories.iter().zip(out.chunks_exact(9)) {
            let mut row = vec![0.0; 12 * 8];
            let norm = build_row(
                model.meta(),
                model.meta().lag_steps(model.meta().step),
                model.meta().step,
                h,
                &mut row,
                &mut Vec::new(),
                &mut Vec::new(),
            )
            .unwrap();
            let want = reference.forward(&row, 12);
            for (g, w) in got.iter().zip(&want) {
                let expect = w * norm.scale + norm.center;
                assert!(
                    (*g as f64 - expect).abs() <= 1e-4 * norm.scale + 1e-6 * norm.center.abs(),
                    "{g} vs {expect}"
                );
            }
        }
    }

    #[test]
    fn time_and_lag_features() {
        let meta = ModelMeta {
            window: 4,
            step: Duration::from_secs(6 * 3600),
            steps: vec![Duration::from_secs(6 * 3600)],
            horizons: vec![Duration::from_secs(6 * 3600)],
            quantiles: vec![0.5],
            features: Feature::ALL[..8].to_vec(),
            normalisation: Normalisation::RobustMedianIqr,
        };
        let lags = meta.lag_steps(meta.step);
        assert_eq!((lags.day, lags.week, lags.lead), (Some(4), Some(28), 1));
        // 2024-01-01 00:00 UTC was a Monday; the newest step is then, the others 6h apart.
        let monday = 1_704_067_200_000i64;
        let mut values: Vec<f32> = (0..40).map(|i| i as f32).collect();
        values[39 - 4] = f32::NAN; // the day-lag of the newest step is a gap
        let h = History {
            values: &values,
            last_ts_ms: monday,
            calendar: true,
        };
        let mut row = vec![0.0; 4 * 8];
        let norm = build_row(
            &meta,
            lags,
            meta.step,
            &h,
            &mut row,
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .unwrap();
        fn step(row: &[f32], j: usize) -> &[f32] {
            &row[j * 8..(j + 1) * 8]
        }
        let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-6;
        // Newest step (j = 3): Monday 00:00.
        let s = step(&row, 3);
        assert_eq!(s[0], norm.normalise(39.0));
        assert_eq!(s[1], 1.0);
        assert!(close(s[2], 0.0) && close(s[3], 1.0), "tod {s:?}");
        assert!(close(s[4], 0.0) && close(s[5], 1.0), "dow {s:?}");
        assert_eq!(s[6], s[0], "lag_1d at a gap falls back to the own value");
        assert_eq!(s[7], norm.normalise(39.0 - 28.0));
        // j = 2: Sunday 18:00 → tod phase 3/4, dow phase (6.75 / 7) of the week.
        let s = step(&row, 2);
        assert!(close(s[2], -1.0) && close(s[3], 0.0), "tod {s:?}");
        let dow = std::f64::consts::TAU * 6.75 / 7.0;
        assert!(
            close(s[4], dow.sin()) && close(s[5], dow.cos()),
            "dow {s:?}"
        );
        assert_eq!(s[6], norm.normalise(38.0 - 4.0));

        // Lags beyond the history fall back to the step's own value.
        let short: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0];
        let h = History {
            values: &short,
            last_ts_ms: monday,
            calendar: true,
        };
        build_row(
            &meta,
            lags,
            meta.step,
            &h,
            &mut row,
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .unwrap();
        for j in 0..4 {
            let s = step(&row, j);
            assert_eq!(s[6], s[0]);
            assert_eq!(s[7], s[0]);
        }
    }

    #[test]
    fn lead_features_carry_the_day_before_each_target() {
        // step 6h: a day is 4 steps; horizons 6h and 12h: the lead L is 2 steps.
        let six = Duration::from_secs(6 * 3600);
        let meta = ModelMeta {
            window: 4,
            step: six,
            steps: vec![six],
            horizons: vec![six, six * 2],
            quantiles: vec![0.5],
            features: vec![Feature::Value, Feature::Lag1dLead, Feature::Lag1dLeadMask],
            normalisation: Normalisation::RobustMedianIqr,
        };
        let lags = meta.lag_steps(six);
        assert_eq!((lags.day, lags.lead), (Some(4), 2));
        let mut values: Vec<f32> = (0..40).map(|i| i as f32).collect();
        values[37 - 2] = f32::NAN; // the lead point of window step j = 2 (index 37)
        let h = History {
            values: &values,
            last_ts_ms: 0,
            calendar: false,
        };
        let mut row = vec![0.0; 4 * 3];
        let norm = build_row(
            &meta,
            lags,
            six,
            &h,
            &mut row,
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .unwrap();
        // j = 3 (index 39): the point 2 steps later minus a day is index 37.
        assert_eq!(row[9 + 1], norm.normalise(37.0));
        assert_eq!(row[9 + 2], 1.0);
        // j = 2 (index 38): index 36... is there; j = 1 (index 37): index 35 is the gap.
        assert_eq!(row[6 + 1], norm.normalise(36.0));
        assert_eq!(
            row[3 + 1],
            row[3],
            "a missing lead point falls back to the own value"
        );
        assert_eq!(row[3 + 2], 0.0);
        // The lead point of the newest step is one day before its longest target.
        assert_eq!(39 + 2 - 4, 37);
    }

    #[test]
    fn short_history_counts_as_leading_gaps() {
        let meta = load_fixture(&FixtureParams::default()).meta().clone();
        let values = [5.0f32, 7.0];
        let mut row = vec![0.0; 16];
        let mut filled = Vec::new();
        let norm = build_row(
            &meta,
            meta.lag_steps(meta.step),
            meta.step,
            &History {
                values: &values,
                last_ts_ms: 0,
                calendar: true,
            },
            &mut row,
            &mut filled,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(norm.center, 6.0);
        assert!(filled[..15].iter().all(|v| *v == 5.0));
        assert_eq!(filled[15], 7.0);
    }

    #[test]
    fn normalisation_inverts_and_handles_constant_windows() {
        let mut sorted = Vec::new();
        let s = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.75), 3.25);
        let n = RowNorm::robust(s, &mut sorted).unwrap();
        assert_eq!(
            n,
            RowNorm {
                center: 2.5,
                scale: 1.5,
                clip: f32::INFINITY,
            }
        );
        // The MAD floor: a flat window with one spike keeps a scale of 1.25 × the mean
        // absolute deviation, and inputs are clipped.
        let spike = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 80.0];
        let m = RowNorm::new(Normalisation::RobustMedianIqrMad, spike, &mut sorted).unwrap();
        assert_eq!((m.center, m.scale), (0.0, 1.25 * 10.0));
        assert_eq!(m.normalise(80.0), 6.4);
        assert_eq!(m.normalise(1e9), CLIP_MAD);

        for seed in 0..20 {
            let window = series(seed, 16);
            let n = RowNorm::robust(window.iter().map(|v| *v as f64), &mut sorted).unwrap();
            let (c, sc) = naive_norm(&window);
            assert_eq!((n.center, n.scale), (c, sc));
            for x in &window {
                let back = n.denormalise(n.normalise(*x as f64));
                assert!((back - x).abs() <= 1e-6 * x.abs(), "{back} vs {x}");
            }
        }

        for constant in [0.0f64, 42.0, -3e6] {
            let n = RowNorm::robust([constant; 16], &mut sorted).unwrap();
            assert!(n.scale > 0.0 && n.scale.is_finite());
            assert_eq!(n.normalise(constant), 0.0);
            assert_eq!(n.denormalise(0.0), constant as f32);
        }
        assert_eq!(
            RowNorm::robust([f64::NAN, f64::INFINITY], &mut sorted),
            None
        );

        // Through the model: a constant series forecasts finite values at that constant.
        let model = load_fixture(&FixtureParams::default());
        let flat = vec![42.0f32; 16];
        let zeros = vec![0.0f32; 16];
        let mut out = Vec::new();
        model
            .predict(
                &[
                    History {
                        values: &flat,
                        last_ts_ms: 0,
                        calendar: true,
                    },
                    History {
                        values: &zeros,
                        last_ts_ms: 0,
                        calendar: true,
                    },
                ],
                MIN,
                &mut out,
            )
            .unwrap();
        assert!(out[..9].iter().all(|v| (v - 42.0).abs() < 0.1), "{out:?}");
        assert!(out[9..].iter().all(|v| v.abs() < 1e-6), "{out:?}");
    }

    #[test]
    fn check_fits_names_the_mismatch() {
        let model = load_fixture(&FixtureParams::default());
        model
            .check_fits(MIN, &[mins(5), mins(30)], &[0.1, 0.9])
            .unwrap();
        model.check_fits(MIN, &[], &[0.1000000001]).unwrap();

        let e = model
            .check_fits(Duration::from_secs(1), &[mins(5)], &[0.1, 0.9])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model step 1m does not match storage.step 1s"),
            "{e}"
        );
        assert!(e.contains("fixture"), "{e}");

        let e = model
            .check_fits(MIN, &[mins(5), mins(10)], &[0.1, 0.9])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no horizon 10m"), "{e}");
        assert!(e.contains("5m,15m,30m"), "{e}");

        let e = model
            .check_fits(MIN, &[mins(5)], &[0.05, 0.9])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no quantile 0.05"), "{e}");

        let no_median = FixtureParams {
            quantiles: vec![0.1, 0.9],
            ..FixtureParams::default()
        };
        // A model without 0.5 does not even load.
        let e = LstmModel::from_bytes(&fixture_model(&no_median), "m.onnx")
            .unwrap_err()
            .to_string();
        assert!(e.contains("promcast.quantiles") && e.contains("0.5"), "{e}");
    }

    /// The fixture with its metadata edited by `edit`.
    fn with_metadata(edit: impl FnOnce(&mut Vec<onnx::StringStringEntryProto>)) -> Vec<u8> {
        let mut proto =
            onnx::ModelProto::decode(&fixture_model(&FixtureParams::default())[..]).unwrap();
        edit(&mut proto.metadata_props);
        proto.encode_to_vec()
    }

    fn set(props: &mut [onnx::StringStringEntryProto], key: &str, value: &str) {
        props.iter_mut().find(|p| p.key() == key).unwrap().value = Some(value.to_owned());
    }

    #[test]
    fn metadata_errors_name_key_and_file() {
        let bytes = with_metadata(|p| p.retain(|e| e.key() != KEY_WINDOW));
        let err = LstmModel::from_bytes(&bytes, "models/x.onnx").unwrap_err();
        assert!(
            matches!(&err, NeuralError::Metadata { key, .. } if key == KEY_WINDOW),
            "{err:?}"
        );
        let e = err.to_string();
        assert!(
            e.contains("promcast.window") && e.contains("models/x.onnx"),
            "{e}"
        );

        let bytes = with_metadata(|p| set(p, KEY_FEATURES, "value,moon_phase"));
        let e = LstmModel::from_bytes(&bytes, "m.onnx")
            .unwrap_err()
            .to_string();
        assert!(e.contains("moon_phase") && e.contains(KEY_FEATURES), "{e}");

        let cases: [(&str, &str, &str); 9] = [
            (KEY_FORMAT, "2", "unsupported format"),
            (KEY_WINDOW, "sixteen", "sixteen"),
            (KEY_STEP, "1 minute", "invalid duration"),
            (KEY_HORIZONS, "15m,5m", "strictly increasing"),
            (KEY_HORIZONS, "5m,,30m", "empty item"),
            (KEY_QUANTILES, "0.1,0.5,1.5", "1.5"),
            (KEY_FEATURES, "mask,value", "first feature"),
            (KEY_FEATURES, "value,lag_1d", "divides 1d"),
            (KEY_NORMALISATION, "zscore", "zscore"),
        ];
        for (key, value, needle) in cases {
            let bytes = with_metadata(|p| {
                set(p, key, value);
                if value == "value,lag_1d" {
                    set(p, KEY_STEP, "7m");
                }
            });
            let e = LstmModel::from_bytes(&bytes, "m.onnx")
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains(needle), "{key}={value}: {e}");
        }

        // Metadata that disagree with the graph's declared shapes.
        let bytes = with_metadata(|p| set(p, KEY_WINDOW, "32"));
        let e = LstmModel::from_bytes(&bytes, "m.onnx").unwrap_err();
        assert!(matches!(e, NeuralError::Incompatible { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("input `input` is declared [?, 16, 1]"),
            "{e}"
        );
        let bytes = with_metadata(|p| set(p, KEY_HORIZONS, "5m,15m"));
        let e = LstmModel::from_bytes(&bytes, "m.onnx")
            .unwrap_err()
            .to_string();
        assert!(e.contains("output `output`"), "{e}");

        let e = LstmModel::from_bytes(b"\x08\x07garbage", "junk.onnx").unwrap_err();
        assert!(matches!(e, NeuralError::Onnx { .. }), "{e:?}");
        assert!(e.to_string().contains("junk.onnx"), "{e}");
    }

    #[test]
    fn tract_failures_at_load_are_errors_not_panics() {
        // Without an explicit initial state, tract 0.23 panics optimising an LSTM whose batch
        // is symbolic; the loader must turn that into an error.
        let mut proto =
            onnx::ModelProto::decode(&fixture_model(&FixtureParams::default())[..]).unwrap();
        let graph = proto.graph.as_mut().unwrap();
        let lstm = graph
            .node
            .iter_mut()
            .find(|n| n.op_type() == "LSTM")
            .unwrap();
        lstm.input.truncate(4);
        let bytes = proto.encode_to_vec();
        let e = LstmModel::from_bytes(&bytes, "no-state.onnx").unwrap_err();
        assert!(matches!(e, NeuralError::Onnx { .. }), "{e:?}");
        assert!(e.to_string().contains("no-state.onnx"), "{e}");
    }

    #[test]
    fn load_reads_files_and_names_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope").join("model.onnx");
        let e = LstmModel::load(&missing).unwrap_err();
        assert!(matches!(e, NeuralError::Io { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&missing.display().to_string()), "{msg}");
        assert!(msg.starts_with("reading model file "), "{msg}");

        let path = dir.path().join("fixture.onnx");
        std::fs::write(&path, fixture_model(&FixtureParams::default())).unwrap();
        let model = LstmModel::load(&path).unwrap();
        assert_eq!(model.origin(), path.display().to_string());
        assert_eq!(model.meta().window, 16);
    }

    #[test]
    fn committed_fixture_model_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixture-lstm.onnx");
        let committed = LstmModel::load(&path).expect("models/fixture-lstm.onnx loads");
        assert_eq!(
            committed.meta(),
            load_fixture(&FixtureParams::default()).meta()
        );
        let mut a = onnx::ModelProto::decode(&std::fs::read(&path).unwrap()[..]).unwrap();
        let mut b =
            onnx::ModelProto::decode(&fixture_model(&FixtureParams::default())[..]).unwrap();
        a.producer_version = None;
        b.producer_version = None;
        assert!(
            a == b,
            "models/fixture-lstm.onnx is stale: regenerate it with \
             `cargo run --example gen_fixture_model -- models/fixture-lstm.onnx`"
        );
    }

    #[test]
    fn model_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<LstmModel>();
    }
}
