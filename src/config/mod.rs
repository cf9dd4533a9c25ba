//! Configuration: serde structs that mirror the YAML file (their doc comments are the user
//! reference), validated once into [`Config`], the runtime form everything else reads.

mod auth;
mod client;
mod duration;
mod ha;
mod paths;
mod scaling;
mod selector;
mod tls;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use paths::resolve_path;

pub use auth::{AuthSection, AuthSpec, BasicAuthSection, Denied, ListenerAuth};
pub use client::{AuthorizationSection, ClientSpec, ClientTlsSection};
pub use duration::{format_duration, parse_duration, DurationError, PromDuration};
pub use ha::{HaSection, HaSpec};
pub use scaling::{
    Policy, PolicyParams, ScaleIn, ScalingMode, ScalingSection, ScalingSpec, Sizing,
};
pub use selector::{valid_label_name, valid_metric_name, Selector, SelectorError};
pub use tls::{server_config, ListenerTls, ListenerTlsSection, TlsError, TlsSection, TlsSpec};

/// The configuration `promcast serve` runs on when no `--config` is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default.yml");

// ---------------------------------------------------------------------------------------------
// File form.

/// The YAML file. Every section is optional; see `src/config/default.yml` for the defaults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub storage: StorageSection,
    /// Which series to forecast, and how. A series is kept only when it matches one entry;
    /// the first matching entry wins.
    #[serde(default)]
    pub forecast: Vec<ForecastSection>,
    /// Where forecasts are pushed with remote write; any number.
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteSection>,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub inference: InferenceSection,
    /// Warm start: read each new series' history from Prometheus' remote-read endpoint.
    #[serde(default)]
    pub backfill: Option<BackfillSection>,
    /// Replica recommendations: which forecast series drives which workload, and how
    /// (`promcast_desired_replicas`, the KEDA external scaler; docs/AUTOSCALING.md).
    #[serde(default)]
    pub scaling: Vec<ScalingSection>,
    /// Credentials the HTTP and gRPC listeners require (secrets from files).
    #[serde(default)]
    pub auth: AuthSection,
    /// TLS on the HTTP and gRPC listeners, optionally requiring client certificates.
    #[serde(default)]
    pub tls: TlsSection,
    /// Prometheus HA pairs: keep one replica's samples per cluster (absent: every sample
    /// is kept as sent).
    #[serde(default)]
    pub ha: Option<HaSection>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillSection {
    /// Prometheus' remote-read endpoint, e.g. `http://prometheus:9090/api/v1/read`.
    pub url: String,
    /// History read per series (at most the ring's retention is kept).
    #[serde(default = "default_lookback")]
    pub lookback: PromDuration,
    /// Reads in flight at once.
    #[serde(default = "default_backfill_concurrency")]
    pub concurrency: usize,
    /// Series waiting for a read; beyond it new series are not backfilled (counted).
    #[serde(default = "default_backfill_queue")]
    pub queue: usize,
    #[serde(default = "default_backfill_timeout")]
    pub timeout: PromDuration,
    /// Tries per series (with exponential backoff from 1s to 30s).
    #[serde(default = "default_backfill_attempts")]
    pub max_attempts: usize,
    // The client keys, as in `RemoteWriteSection` (written out twice: serde's `flatten`
    // does not combine with `deny_unknown_fields`); `client::validate` reads both.
    /// `Authorization: <type> <credentials>` on every request (Prometheus' key).
    #[serde(default)]
    pub authorization: Option<AuthorizationSection>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSection>,
    /// Extra headers on every request (e.g. Mimir's `X-Scope-OrgID`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// TLS towards the target: its CA, a client certificate, as in Prometheus.
    #[serde(default)]
    pub tls_config: Option<ClientTlsSection>,
}

fn default_lookback() -> PromDuration {
    PromDuration(Duration::from_secs(24 * 3600))
}
fn default_backfill_concurrency() -> usize {
    4
}
fn default_backfill_queue() -> usize {
    100_000
}
fn default_backfill_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}
fn default_backfill_attempts() -> usize {
    5
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Ring-buffer resolution: samples are bucketed to this step (the last sample of a
    /// bucket wins) and the forecast loop runs once per step.
    pub step: PromDuration,
    /// How much history each series keeps (`retention / step` buckets).
    pub retention: PromDuration,
    /// A series with no samples for this long is evicted.
    pub idle_timeout: PromDuration,
    /// Directory for snapshots of the rings (written every `snapshot_every` and on shutdown,
    /// loaded on start). Unset: nothing is kept across restarts.
    pub path: Option<PathBuf>,
    pub snapshot_every: PromDuration,
    /// How far back past forecasts are kept, per series and horizon, for remote read
    /// (`N:forecast{horizon=...}` at their target times).
    pub forecast_history: PromDuration,
    /// How selected counters are stored: `rate` (their per-second rate over each step,
    /// reset-aware, exported as `N:rate:predicted`) or `raw` (the value as sent). A forecast
    /// entry's own `counters:` overrides it.
    pub counters: CounterMode,
}

/// How a selected counter is stored (`storage.counters`, `forecast[].counters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterMode {
    /// Its per-second rate over each step, like PromQL's `rate`.
    #[default]
    Rate,
    /// The cumulative value as sent, like a gauge.
    Raw,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            step: PromDuration(Duration::from_secs(60)),
            retention: PromDuration(Duration::from_secs(24 * 3600)),
            idle_timeout: PromDuration(Duration::from_secs(3600)),
            path: None,
            snapshot_every: PromDuration(Duration::from_secs(300)),
            forecast_history: PromDuration(Duration::from_secs(6 * 3600)),
            counters: CounterMode::Rate,
        }
    }
}

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
    /// Score (0..1) at or above which a point outside the band is flagged anomalous.
    pub threshold: f64,
    /// How often the entry's isolation forest is retrained from the rings.
    pub retrain_every: PromDuration,
    /// What drives `N:anomalous`: the forest's `score` (against `threshold`) or its
    /// `likelihood` (against `likelihood_threshold`).
    pub signal: AlarmSignal,
    /// Likelihood (0..1, log-scaled) at or above which a point outside the band is flagged
    /// anomalous when `signal: likelihood`.
    pub likelihood_threshold: f64,
    /// After `N:anomalous` fires for a series, it does not fire again for this long
    /// (`0s`: every anomalous point fires).
    pub suppress: PromDuration,
}

impl Default for AnomalySection {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: 0.65,
            retrain_every: PromDuration(Duration::from_secs(3600)),
            signal: AlarmSignal::Likelihood,
            likelihood_threshold: 0.15,
            suppress: PromDuration(Duration::from_secs(86_400)),
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
fn default_refit() -> PromDuration {
    PromDuration(Duration::from_secs(15 * 60))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteSection {
    pub url: String,
    #[serde(default = "default_rw_timeout")]
    pub timeout: PromDuration,
    /// Samples per request.
    #[serde(default = "default_max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// Forecast snapshots waiting to be sent; when full the oldest waiting one is dropped
    /// and counted.
    #[serde(default = "default_rw_capacity")]
    pub capacity: usize,
    #[serde(default = "default_min_backoff")]
    pub min_backoff: PromDuration,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: PromDuration,
    /// `Authorization: <type> <credentials>` on every request (Prometheus' key).
    #[serde(default)]
    pub authorization: Option<AuthorizationSection>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSection>,
    /// Extra headers on every request (e.g. Mimir's `X-Scope-OrgID`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// TLS towards the target: its CA, a client certificate, as in Prometheus.
    #[serde(default)]
    pub tls_config: Option<ClientTlsSection>,
}

fn default_rw_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}
fn default_max_samples_per_send() -> usize {
    2000
}
fn default_rw_capacity() -> usize {
    4
}
fn default_min_backoff() -> PromDuration {
    PromDuration(Duration::from_millis(30))
}
fn default_max_backoff() -> PromDuration {
    PromDuration(Duration::from_secs(5))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Selected series kept at once; samples of new series beyond it get 503 (retried).
    pub max_series: usize,
    /// Largest compressed remote-write body (413 beyond).
    pub max_body_bytes: usize,
    /// Largest decompressed remote-write body (413 beyond).
    pub max_decompressed_bytes: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Samples further than this ahead of the local clock are rejected (400).
    pub max_future: PromDuration,
    /// Remote-write requests handled at once; beyond it promcast answers 503 with
    /// Retry-After so the sender retries.
    pub max_concurrent_writes: usize,
    /// How long a remote-write request may take to deliver its body; a slower one is
    /// answered 503 (retry) and its slot freed, so slow clients cannot hold every slot.
    pub body_timeout: PromDuration,
    /// Series that may hold their own anomaly forest (about 0.23 MiB each); the others are
    /// scored by their forecast entry's pooled forest.
    pub max_anomaly_forests: usize,
    /// Samples one remote-read request may return; beyond it the read fails with 400.
    pub max_read_samples: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_series: 100_000,
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 128 << 20,
            max_labels_per_series: 64,
            max_label_name_length: 1024,
            max_label_value_length: 4096,
            max_future: PromDuration(Duration::from_secs(600)),
            max_concurrent_writes: 64,
            body_timeout: PromDuration(Duration::from_secs(10)),
            max_anomaly_forests: 256,
            max_read_samples: 5_000_000,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceSection {
    /// ONNX model for `model: lstm` (and for `auto`): `builtin` (the default: the model
    /// shipped inside promcast, `models/promcast-lstm.onnx`), `none` (no neural model), or a
    /// file path, resolved against the config file's directory when relative.
    pub model: Option<String>,
    /// `auto` (onnxruntime with CUDA when the node has an NVIDIA GPU and the library is
    /// there, tract otherwise), `tract` (CPU, built in) or `ort` (onnxruntime; needs a build
    /// with `--features gpu` and the library).
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

// ---------------------------------------------------------------------------------------------
// Runtime form.

/// Validated configuration: every duration, limit and selector checked once.
#[derive(Debug, Clone)]
pub struct Config {
    pub step: Duration,
    /// Buckets per ring (`retention / step`).
    pub ring_len: NonZeroUsize,
    pub idle_timeout: Duration,
    pub forecast: Vec<ForecastSpec>,
    pub remote_write: Vec<RemoteWriteSpec>,
    pub limits: Limits,
    pub lstm_model: ModelSource,
    pub inference: InferenceSpec,
    pub persistence: Option<Persistence>,
    /// Buckets of past forecasts kept per series and horizon.
    pub forecast_history: usize,
    pub backfill: Option<BackfillSpec>,
    pub scaling: Vec<ScalingSpec>,
    pub auth: AuthSpec,
    pub tls: TlsSpec,
    /// Deduplication of Prometheus HA pairs (`ha:`).
    pub ha: Option<HaSpec>,
}

#[derive(Debug, Clone)]
pub struct Persistence {
    pub dir: PathBuf,
    pub every: Duration,
}

#[derive(Debug, Clone)]
pub struct BackfillSpec {
    pub url: String,
    /// The reads' client: TLS, credentials, headers and `timeout`.
    pub client: ClientSpec,
    pub lookback: Duration,
    pub concurrency: usize,
    pub queue: usize,
    pub max_attempts: usize,
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
    pub anomaly: Option<AnomalySpec>,
    /// Whether the counters this entry selects are stored as rates.
    pub counters: CounterMode,
}

/// What drives `N:anomalous`: the forest's raw score or its likelihood
/// (`crate::anomaly::likelihood`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmSignal {
    /// The isolation-forest score (`N:anomaly_score`).
    Score,
    /// The anomaly likelihood of the score (`N:anomaly_likelihood`): the default, measured
    /// better on NAB (docs/ANOMALY.md).
    #[default]
    Likelihood,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnomalySpec {
    /// Score threshold; with `signal: likelihood`, the likelihood threshold.
    pub threshold: f64,
    /// Retrain interval in steps (at least 1).
    pub retrain_every: usize,
    pub signal: AlarmSignal,
    /// Suppression after a firing, in steps (0: none).
    pub suppress: usize,
}

/// One forecast horizon: the label text users see and the number of steps ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Horizon {
    pub label: String,
    pub duration: Duration,
    pub steps: usize,
}

#[derive(Debug, Clone)]
pub struct RemoteWriteSpec {
    pub url: String,
    /// The requests' client: TLS, credentials, headers and `timeout`.
    pub client: ClientSpec,
    pub max_samples_per_send: usize,
    pub capacity: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_series: usize,
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    pub max_future: Duration,
    pub max_concurrent_writes: usize,
    pub body_timeout: Duration,
    pub max_anomaly_forests: usize,
    pub max_read_samples: usize,
}

/// One problem in a config file, with the key path that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        origin: String,
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

impl Config {
    /// The embedded defaults: forecast every recording-rule output.
    pub fn embedded_default() -> Self {
        Self::from_yaml(DEFAULT_CONFIG_YAML, "<embedded defaults>", None)
            .expect("embedded default config is valid")
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string(), path.parent())
    }

    /// Parses and validates; `base_dir` resolves relative file paths in the config.
    pub fn from_yaml(
        text: &str,
        origin: &str,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        };
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let file: FileConfig = match serde_path_to_error::deserialize(de) {
            Ok(f) => f,
            Err(e) => {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                return Err(invalid(vec![ConfigProblem { path, message }]));
            }
        };
        file.validate(base_dir).map_err(invalid)
    }
}

impl FileConfig {
    /// Checks every key and collects all problems, each with its key path.
    pub fn validate(&self, base_dir: Option<&Path>) -> Result<Config, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut problem =
            |path: String, message: String| problems.push(ConfigProblem { path, message });
        let (step, ring_len) = self.storage_shape(&mut problem);
        let step_ms = step.as_millis() as u64;
        if self.forecast.is_empty() {
            problem(
                "forecast".into(),
                "at least one entry is needed: promcast keeps only series that match a forecast selector".into(),
            );
        }
        let forecast: Vec<ForecastSpec> = (self.forecast.iter().enumerate())
            .filter_map(|(i, f)| self.forecast_entry(i, f, step_ms, ring_len, &mut problem))
            .collect();
        let remote_write: Vec<RemoteWriteSpec> = (self.remote_write.iter().enumerate())
            .filter_map(|(i, rw)| remote_write_entry(i, rw, base_dir, &mut problem))
            .collect();
        self.check_limits(&mut problem);
        let inference = self.inference_spec(base_dir, &mut problem);
        let persistence = self.storage.path.as_ref().map(|p| Persistence {
            dir: resolve_path(p, base_dir),
            every: self.storage.snapshot_every.0,
        });
        if persistence.is_some() && self.storage.snapshot_every.0 < Duration::from_secs(1) {
            problem(
                "storage.snapshot_every".into(),
                "must be at least 1s".into(),
            );
        }
        let backfill = self
            .backfill
            .as_ref()
            .and_then(|b| backfill_spec(b, base_dir, &mut problem));
        let scaling = scaling::validate(&self.scaling, &mut problem);
        let auth = auth::validate(&self.auth, base_dir, &mut problem);
        let tls = tls::validate(&self.tls, base_dir, &mut problem);
        let ha = self.ha.as_ref().and_then(|h| ha::validate(h, &mut problem));
        if !problems.is_empty() {
            return Err(problems);
        }
        let l = &self.limits;
        Ok(Config {
            step,
            ring_len: NonZeroUsize::new(ring_len).expect("validated"),
            idle_timeout: self.storage.idle_timeout.0,
            forecast,
            remote_write,
            limits: Limits {
                max_series: l.max_series,
                max_body_bytes: l.max_body_bytes,
                max_decompressed_bytes: l.max_decompressed_bytes,
                max_labels_per_series: l.max_labels_per_series,
                max_label_name_length: l.max_label_name_length,
                max_label_value_length: l.max_label_value_length,
                max_future: l.max_future.0,
                max_concurrent_writes: l.max_concurrent_writes,
                body_timeout: l.body_timeout.0,
                max_anomaly_forests: l.max_anomaly_forests,
                max_read_samples: l.max_read_samples,
            },
            lstm_model: match self.inference.model.as_deref() {
                None | Some("builtin") => ModelSource::Builtin,
                Some("none") => ModelSource::Disabled,
                Some(p) => ModelSource::File(resolve_path(Path::new(p), base_dir)),
            },
            inference,
            persistence,
            forecast_history: (self.storage.forecast_history.0.as_millis() as u64)
                .checked_div(step_ms)
                .unwrap_or(0) as usize,
            backfill,
            scaling,
            auth,
            tls,
            ha,
        })
    }

    /// `storage.step` and the ring length (`retention / step`, 1 when either is invalid).
    fn storage_shape(&self, problem: &mut impl FnMut(String, String)) -> (Duration, usize) {
        let step = self.storage.step.0;
        let step_ms = step.as_millis() as u64;
        if step_ms == 0 {
            problem("storage.step".into(), "must be greater than 0".into());
        }
        let retention_ms = self.storage.retention.0.as_millis() as u64;
        let ring_len = if step_ms == 0 {
            1
        } else if retention_ms % step_ms != 0 || retention_ms < 2 * step_ms {
            problem(
                "storage.retention".into(),
                format!(
                    "must be a multiple of storage.step ({}) and at least two steps, got {}",
                    self.storage.step, self.storage.retention
                ),
            );
            1
        } else {
            (retention_ms / step_ms) as usize
        };
        if ring_len > 10_000_000 {
            problem(
                "storage.retention".into(),
                format!("{ring_len} buckets per series is more than 10,000,000"),
            );
        }
        if self.storage.idle_timeout.0 < step {
            problem(
                "storage.idle_timeout".into(),
                "must be at least one storage.step".into(),
            );
        }
        (step, ring_len)
    }

    /// One `forecast:` entry; `None` when its selector does not parse (reported).
    fn forecast_entry(
        &self,
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
        let horizons = self.horizons(i, f, step_ms, ring_len, problem);
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
            if self.inference.model.as_deref() == Some("none") {
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
        if !(0.0..=1.0).contains(&f.anomaly.threshold) {
            problem(
                at("anomaly.threshold"),
                format!("must be within 0..1, got {}", f.anomaly.threshold),
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
            anomaly: f.anomaly.enabled.then(|| AnomalySpec {
                threshold: match f.anomaly.signal {
                    AlarmSignal::Score => f.anomaly.threshold,
                    AlarmSignal::Likelihood => f.anomaly.likelihood_threshold,
                },
                retrain_every: in_steps(&f.anomaly.retrain_every),
                signal: f.anomaly.signal,
                suppress: (f.anomaly.suppress.0.as_millis() as u64)
                    .checked_div(step_ms)
                    .unwrap_or(0) as usize,
            }),
            counters: f.counters.unwrap_or(self.storage.counters),
        })
    }

    /// An entry's horizons: positive multiples of the step within the retention, each once,
    /// sorted.
    fn horizons(
        &self,
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
                        self.storage.step
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
                        self.storage.retention
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

    fn check_limits(&self, problem: &mut impl FnMut(String, String)) {
        let l = &self.limits;
        for (key, v) in [
            ("max_series", l.max_series),
            ("max_body_bytes", l.max_body_bytes),
            ("max_decompressed_bytes", l.max_decompressed_bytes),
            ("max_labels_per_series", l.max_labels_per_series),
            ("max_label_name_length", l.max_label_name_length),
            ("max_label_value_length", l.max_label_value_length),
            ("max_concurrent_writes", l.max_concurrent_writes),
        ] {
            if v == 0 {
                problem(format!("limits.{key}"), "must be at least 1".into());
            }
        }
        if l.body_timeout.0.is_zero() {
            problem(
                "limits.body_timeout".into(),
                "must be greater than 0".into(),
            );
        }
        if l.max_series > u32::MAX as usize / 2 {
            problem("limits.max_series".into(), "too large".into());
        }
    }

    fn inference_spec(
        &self,
        base_dir: Option<&Path>,
        problem: &mut impl FnMut(String, String),
    ) -> InferenceSpec {
        let backend = match self.inference.backend.as_deref() {
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
        if self.inference.max_batch == Some(0) {
            problem("inference.max_batch".into(), "must be at least 1".into());
        }
        InferenceSpec {
            backend,
            ort_library: self
                .inference
                .ort_library
                .as_deref()
                .map(|p| resolve_path(p, base_dir)),
            max_batch: self.inference.max_batch.unwrap_or(4096).max(1),
            max_wait: self
                .inference
                .max_wait
                .map_or(Duration::from_millis(5), |d| d.0),
        }
    }
}

/// One `remote_write:` entry; `None` when its client does not build (reported).
fn remote_write_entry(
    i: usize,
    rw: &RemoteWriteSection,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> Option<RemoteWriteSpec> {
    let at = |key: &str| format!("remote_write[{i}].{key}");
    let client = client::validate(
        client::ClientFields {
            url: &rw.url,
            authorization: rw.authorization.as_ref(),
            basic_auth: rw.basic_auth.as_ref(),
            headers: &rw.headers,
            tls_config: rw.tls_config.as_ref(),
            timeout: rw.timeout.0,
        },
        &format!("remote_write[{i}]"),
        base_dir,
        problem,
    );
    if rw.max_samples_per_send == 0 {
        problem(at("max_samples_per_send"), "must be at least 1".into());
    }
    if rw.capacity == 0 {
        problem(at("capacity"), "must be at least 1".into());
    }
    if rw.min_backoff > rw.max_backoff {
        problem(at("min_backoff"), "must not exceed max_backoff".into());
    }
    Some(RemoteWriteSpec {
        url: rw.url.clone(),
        client: client?,
        max_samples_per_send: rw.max_samples_per_send.max(1),
        capacity: rw.capacity.max(1),
        min_backoff: rw.min_backoff.0,
        max_backoff: rw.max_backoff.0,
    })
}

/// The `backfill:` section; `None` when its client does not build (reported).
fn backfill_spec(
    b: &BackfillSection,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> Option<BackfillSpec> {
    let client = client::validate(
        client::ClientFields {
            url: &b.url,
            authorization: b.authorization.as_ref(),
            basic_auth: b.basic_auth.as_ref(),
            headers: &b.headers,
            tls_config: b.tls_config.as_ref(),
            timeout: b.timeout.0,
        },
        "backfill",
        base_dir,
        problem,
    );
    for (key, v) in [
        ("concurrency", b.concurrency),
        ("queue", b.queue),
        ("max_attempts", b.max_attempts),
    ] {
        if v == 0 {
            problem(format!("backfill.{key}"), "must be at least 1".into());
        }
    }
    Some(BackfillSpec {
        url: b.url.clone(),
        client: client?,
        lookback: b.lookback.0,
        concurrency: b.concurrency.max(1),
        queue: b.queue.max(1),
        max_attempts: b.max_attempts.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_selects_recording_rules() {
        let c = Config::embedded_default();
        assert_eq!(c.step, Duration::from_secs(60));
        assert_eq!(c.ring_len.get(), 1440);
        let f = &c.forecast[0];
        assert_eq!(f.model, ModelChoice::Auto);
        let labels: Vec<_> = f.horizons.iter().map(|h| h.label.as_str()).collect();
        assert_eq!(labels, ["5m", "15m", "30m"]);
        let get = |name: &'static str| move |n: &str| (n == "__name__").then_some(name);
        assert!(f.selector.matches(get("job:http_requests:rate5m")));
        assert!(!f.selector.matches(get("http_requests_total")));
    }

    #[test]
    fn issue_example_parses() {
        let yaml = r#"
storage:
  step: 1m
  retention: 24h
  idle_timeout: 1h
forecast:
  - selector: '{__name__="job:http_requests:rate5m", job=~"web.*"}'
    horizons: [5m, 15m, 30m]
    model: auto
    quantiles: [0.1, 0.9]
remote_write:
  - url: http://127.0.0.1:9090/api/v1/write
limits:
  max_series: 100000
  max_body_bytes: 33554432
"#;
        let c = Config::from_yaml(yaml, "test", None).unwrap();
        assert_eq!(c.forecast[0].horizons[2].steps, 30);
        assert_eq!(c.remote_write.len(), 1);
        assert_eq!(c.limits.max_body_bytes, 33_554_432);
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let yaml = "storage:\n  stepp: 1m\nforecast:\n  - selector: up\n";
        let err = Config::from_yaml(yaml, "test", None).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.path, "storage.stepp");
        assert!(p.message.contains("unknown field `stepp`"), "{}", p.message);
    }

    #[test]
    fn bad_duration_is_named_with_its_path() {
        let yaml = "forecast:\n  - selector: up\n    horizons: [5m, 7x]\n";
        let err = Config::from_yaml(yaml, "test", None).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.path, "forecast[0].horizons[1]");
        assert!(p.message.contains("7x"), "{}", p.message);
    }

    #[test]
    fn semantic_problems_are_all_reported() {
        let yaml = r#"
storage: { step: 1m, retention: 90s }
forecast:
  - selector: 'rate(x[5m])'
    horizons: [90s]
    quantiles: [0.9, 0.1]
  - selector: up
    model: lstm
    anomaly: { threshold: 1.5, likelihood_threshold: -0.1 }
remote_write:
  - url: 'ftp://x'
limits: { max_series: 0 }
inference: { model: none }
"#;
        let err = Config::from_yaml(yaml, "test", None).unwrap_err();
        let paths: Vec<_> = err.problems().iter().map(|p| p.path.as_str()).collect();
        for want in [
            "storage.retention",
            "forecast[0].selector",
            "forecast[0].horizons[0]",
            "forecast[0].quantiles",
            "forecast[1].model",
            "forecast[1].anomaly.threshold",
            "forecast[1].anomaly.likelihood_threshold",
            "remote_write[0].url",
            "limits.max_series",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
    }
}
