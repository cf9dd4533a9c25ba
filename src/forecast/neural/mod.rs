//! The `lstm` model's inference: an ONNX model that follows promcast's model contract
//! ([`contract`]), fed windows built from the rings ([`window`]), run by one of two backends:
//! tract-onnx on the calling thread (`tract.rs`: every tract type stays there) or, with the
//! `gpu` feature, onnxruntime's batch worker ([`ort_worker`]). [`LstmModel`] is the facade
//! the rest of promcast uses: load, check that it fits an entry, predict a batch.
//!
//! [`fixture_model`] writes a small model that follows the contract (a persistence forecaster
//! with random LSTM weights, for tests and examples).

pub mod contract;
mod fixture;
mod native;
pub(crate) mod onnx;
pub(crate) mod onnx_build;
#[cfg(feature = "gpu")]
pub mod ort_worker;
mod tract;
pub mod window;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;

use contract::{check_declared_shapes, parse_meta};
pub use contract::{
    Feature, ModelMeta, NeuralError, Normalisation, CLIP_MAD, KEY_FEATURES, KEY_FORMAT,
    KEY_HORIZONS, KEY_NORMALISATION, KEY_QUANTILES, KEY_STEP, KEY_STEPS, KEY_WINDOW,
};
pub use fixture::{fixture_model, FixtureParams};
use window::build_row;
pub use window::{input_row, History, RowNorm};

/// Which inference engine runs a model.
#[derive(Debug, Clone)]
pub enum BackendChoice {
    /// The CPU: promcast's own kernel for the graphs `promcast train` exports (the built-in
    /// models), tract for any other.
    Cpu,
    /// tract, whatever the graph (`inference.backend: tract`).
    Tract,
    /// onnxruntime through the batch worker (Cargo feature `gpu`).
    #[cfg(feature = "gpu")]
    Ort(ort_worker::OrtOptions),
}

enum Backend {
    Native(Box<native::NativePlan>),
    Tract(tract::TractPlan),
    #[cfg(feature = "gpu")]
    Ort(ort_worker::OrtWorker),
}

impl Backend {
    fn run(&self, rows: usize, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        match self {
            Backend::Native(p) => p.run(rows, input, out),
            Backend::Tract(p) => p.run(rows, input, out),
            #[cfg(feature = "gpu")]
            Backend::Ort(w) => w.run(rows, input, out),
        }
    }

    fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Backend::Native(_) => ("native", "cpu"),
            Backend::Tract(_) => ("tract", "cpu"),
            #[cfg(feature = "gpu")]
            Backend::Ort(w) => ("ort", w.provider()),
        }
    }
}

/// Rows per tract run: bigger batches are split to bound memory.
const CHUNK_ROWS: usize = 1024;

/// The model shipped inside promcast (`models/promcast-lstm.onnx`; its card is
/// `models/README.md`).
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../../../models/promcast-lstm.onnx");

/// The built-in model's companion to the hour (`models/promcast-lstm-60m.onnx`): it serves
/// the entries whose horizons [`BUILTIN_MODEL`] does not reach (past 30 minutes at 1m).
pub const BUILTIN_HOUR_MODEL: &[u8] = include_bytes!("../../../models/promcast-lstm-60m.onnx");
/// Where the built-in models' errors say they came from.
pub const BUILTIN_ORIGIN: &str = "builtin (models/promcast-lstm.onnx)";
pub const BUILTIN_HOUR_ORIGIN: &str = "builtin (models/promcast-lstm-60m.onnx)";

/// Loads [`BUILTIN_MODEL`] with [`BUILTIN_HOUR_MODEL`] as its companion (each once per
/// process; later calls share them).
pub fn builtin_model() -> Result<LstmModel, NeuralError> {
    type Cached = std::sync::OnceLock<Result<LstmModel, String>>;
    fn cached(cell: &'static Cached, bytes: &[u8], origin: &str) -> Result<LstmModel, NeuralError> {
        cell.get_or_init(|| LstmModel::from_bytes(bytes, origin).map_err(|e| e.to_string()))
            .clone()
            .map_err(|reason| NeuralError::Incompatible {
                origin: "builtin".into(),
                reason,
            })
    }
    static MODEL: Cached = std::sync::OnceLock::new();
    static HOUR: Cached = std::sync::OnceLock::new();
    let hour = cached(&HOUR, BUILTIN_HOUR_MODEL, BUILTIN_HOUR_ORIGIN)?;
    Ok(cached(&MODEL, BUILTIN_MODEL, BUILTIN_ORIGIN)?.with_companion(hour))
}

/// A loaded model: metadata plus an optimised tract plan. Cheap to clone (`Arc`), `Send + Sync`;
/// concurrent [`LstmModel::predict`] calls are fine (each takes its own run state and buffers
/// from a pool).
#[derive(Clone)]
pub struct LstmModel {
    inner: Arc<Inner>,
    /// The model that serves the entries this one cannot fit (the built-in's hour model).
    companion: Option<Arc<LstmModel>>,
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
        Self::load_on(path, &BackendChoice::Cpu)
    }

    /// Loads a model from ONNX bytes on tract; `origin` (a path or a name) is used in error
    /// messages.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self, NeuralError> {
        Self::from_bytes_on(bytes, origin, &BackendChoice::Cpu)
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
        let shape = meta.plan_shape(output_index);
        let native = match backend {
            BackendChoice::Cpu => native::NativePlan::recognise(&proto, shape)
                .inspect_err(|why| tracing::debug!(origin, why, "tract runs the model"))
                .ok(),
            _ => None,
        };
        let plan = match (backend, native) {
            (_, Some(native)) => Backend::Native(Box::new(native)),
            (BackendChoice::Cpu | BackendChoice::Tract, None) => {
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
            (BackendChoice::Ort(opts), None) => {
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
            companion: None,
        })
    }

    /// This model, with `companion` serving the entries it cannot fit.
    pub fn with_companion(mut self, companion: LstmModel) -> Self {
        self.companion = Some(Arc::new(companion));
        self
    }

    /// The model that serves the entries this one cannot fit, if any.
    pub fn companion(&self) -> Option<&Arc<LstmModel>> {
        self.companion.as_ref()
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.inner.meta
    }

    /// `(backend, execution provider)`: `("native", "cpu")`, `("tract", "cpu")`, `("ort", "cpu")` or
    /// `("ort", "cuda")`.
    pub fn backend(&self) -> (&'static str, &'static str) {
        self.inner.plan.describe()
    }

    /// Where the model came from (the path or name given at load).
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// Checks that this model can serve a forecast entry ([`ModelMeta::check_fits`]); the
    /// error names the model.
    pub fn check_fits(
        &self,
        step: Duration,
        horizons: &[Duration],
        quantiles: &[f64],
    ) -> Result<(), NeuralError> {
        self.inner
            .meta
            .check_fits(step, horizons, quantiles)
            .map_err(|reason| NeuralError::Incompatible {
                origin: self.inner.origin.clone(),
                reason,
            })
    }

    /// Ring points needed per series at `step` ([`ModelMeta::history_needed`]).
    pub fn history_needed(&self, step: Duration) -> usize {
        self.inner.meta.history_needed(step)
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
        let quantiles = meta.quantiles.len();
        let median = meta.quantile_index(0.5);
        for (norm, raw) in scratch.norms.iter().zip(scratch.raw.chunks_exact(per_row)) {
            match (norm, median) {
                // A flat window (a counter that repeats but for spikes) is forecast at its
                // level: each horizon's quantiles are shifted so that the median is the
                // window's, keeping the band's width and order. The network, whose scale
                // then comes from the spikes, answers about half a unit low there
                // (docs/ACCURACY.md, Alibaba QPS).
                (Some(n), Some(m)) if n.flat => {
                    for h in raw.chunks_exact(quantiles) {
                        out.extend(h.iter().map(|y| n.denormalise(y - h[m])));
                    }
                }
                (Some(n), _) => out.extend(raw.iter().map(|y| n.denormalise(*y))),
                (None, _) => out.extend(std::iter::repeat_n(f32::NAN, per_row)),
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

#[cfg(test)]
mod tests;
