//! `inference:`: the LSTM model file and the engine that runs it (tract, onnxruntime).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::at_least_one;
use super::duration::PromDuration;
use super::paths::resolve_path;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceSection {
    /// ONNX model for `model: lstm` (and for `auto`): `builtin` (the default: the models
    /// shipped inside promcast, `models/promcast-lstm.onnx`, and for entries whose horizons it
    /// does not reach `models/promcast-lstm-60m.onnx`), `none` (no neural model), or a
    /// file path, resolved against the config file's directory when relative.
    pub model: Option<String>,
    /// `auto` (onnxruntime with CUDA when the node has an NVIDIA GPU and the library is
    /// there; otherwise the CPU: promcast's own kernel for the models `promcast train` exports,
    /// the built-in ones among them, tract for any other), `tract` (tract for every model) or
    /// `ort` (onnxruntime; needs a build with `--features gpu` and the library).
    pub backend: Option<String>,
    /// The onnxruntime shared library (default: `ORT_DYLIB_PATH`).
    pub ort_library: Option<PathBuf>,
    /// Rows per onnxruntime batch (the worker closes a batch at this size)...
    pub max_batch: Option<usize>,
    /// ...or this long after its first request.
    pub max_wait: Option<PromDuration>,
}

/// Which inference engine runs the LSTM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Auto,
    Tract,
    Ort,
}

/// Validated `inference` settings besides the model.
#[derive(Debug, Clone)]
pub struct InferenceSpec {
    pub backend: BackendKind,
    pub ort_library: Option<PathBuf>,
    pub max_batch: usize,
    pub max_wait: Duration,
}

/// Where the LSTM model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Builtin,
    File(PathBuf),
    Disabled,
}

pub(super) fn spec(
    inference: &InferenceSection,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> InferenceSpec {
    let backend = match inference.backend.as_deref() {
        None | Some("auto") => BackendKind::Auto,
        Some("tract") => BackendKind::Tract,
        Some("ort") => {
            if !cfg!(feature = "gpu") {
                problem(
                    "inference.backend".into(),
                    "`ort` needs a promcast built with `--features gpu`".into(),
                );
            }
            BackendKind::Ort
        }
        Some(other) => {
            problem(
                "inference.backend".into(),
                format!("unknown backend {other:?} (auto, tract, ort)"),
            );
            BackendKind::Auto
        }
    };
    if let Some(n) = inference.max_batch {
        at_least_one("inference", &[("max_batch", n)], problem);
    }
    InferenceSpec {
        backend,
        ort_library: inference
            .ort_library
            .as_deref()
            .map(|p| resolve_path(p, base_dir)),
        max_batch: inference.max_batch.unwrap_or(4096).max(1),
        max_wait: inference.max_wait.map_or(Duration::from_millis(5), |d| d.0),
    }
}

/// `inference.model`: the built-in model, none, or a file relative to the config's directory.
pub(super) fn model_source(inference: &InferenceSection, base_dir: Option<&Path>) -> ModelSource {
    match inference.model.as_deref() {
        None | Some("builtin") => ModelSource::Builtin,
        Some("none") => ModelSource::Disabled,
        Some(p) => ModelSource::File(resolve_path(Path::new(p), base_dir)),
    }
}
