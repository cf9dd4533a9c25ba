//! Configuration: serde structs that mirror the YAML file (their doc comments are the user
//! reference), validated once into [`Config`], the runtime form everything else reads.
//!
//! This file holds the whole file ([`FileConfig`]), the whole runtime form ([`Config`]) and
//! the problems; each section lives in its own file with its checks: [`storage`](StorageSection),
//! [`forecast`](ForecastSection) (with [`ModelChoice`]), [`remote`](RemoteWriteSection)
//! (remote write and backfill), [`limits`](LimitsSection), [`inference`](InferenceSection),
//! `scaling`, `auth`, `tls`, `ha`; `client`, `duration`, `selector`, `paths` and `check`
//! serve them.

mod auth;
mod check;
mod client;
mod duration;
mod forecast;
mod ha;
mod inference;
mod limits;
mod paths;
mod remote;
mod scaling;
mod selector;
mod size;
mod storage;
mod tls;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use auth::{AuthSection, AuthSpec, BasicAuthSection, Denied, ListenerAuth};
pub use client::{AuthorizationSection, ClientSpec, ClientTlsSection};
pub use duration::{format_duration, parse_duration, DurationError, PromDuration};
pub use forecast::{
    AlarmSignal, AnomalySection, AnomalySpec, ForecastSection, ForecastSpec, Horizon, ModelChoice,
    ModelKind, Verdict,
};
pub use ha::{HaSection, HaSpec};
pub use inference::{BackendKind, InferenceSection, InferenceSpec, ModelSource};
pub use limits::{Limits, LimitsSection};
pub use remote::{BackfillSection, BackfillSpec, RemoteWriteSection, RemoteWriteSpec};
pub use scaling::{
    Policy, PolicyParams, ScaleIn, ScalingMode, ScalingSection, ScalingSpec, Sizing,
};
pub use selector::{valid_label_name, valid_metric_name, Selector, SelectorError};
pub use size::{parse_size, ByteSize, SizeError};
pub use storage::{CounterMode, Persistence, StorageSection};
pub use tls::{server_config, ListenerTls, ListenerTlsSection, TlsError, TlsSection, TlsSpec};

/// The configuration `promcast serve` runs on when no `--config` is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default.yml");

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
    /// Bytes all series' past forecasts may hold; the kept span shortens below
    /// `forecast_history` when more series than that fit are forecast.
    pub forecast_history_memory: usize,
    pub backfill: Option<BackfillSpec>,
    pub scaling: Vec<ScalingSpec>,
    pub auth: AuthSpec,
    pub tls: TlsSpec,
    /// Deduplication of Prometheus HA pairs (`ha:`).
    pub ha: Option<HaSpec>,
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
        let (step, ring_len) = storage::shape(&self.storage, &mut problem);
        let step_ms = step.as_millis() as u64;
        if self.forecast.is_empty() {
            problem(
                "forecast".into(),
                "at least one entry is needed: promcast keeps only series that match a forecast selector".into(),
            );
        }
        let forecast: Vec<ForecastSpec> = (self.forecast.iter().enumerate())
            .filter_map(|(i, f)| {
                let (storage, inference) = (&self.storage, &self.inference);
                forecast::forecast_entry(storage, inference, i, f, step_ms, ring_len, &mut problem)
            })
            .collect();
        let remote_write: Vec<RemoteWriteSpec> = (self.remote_write.iter().enumerate())
            .filter_map(|(i, rw)| remote::remote_write_entry(i, rw, base_dir, &mut problem))
            .collect();
        let limits = limits::validate(&self.limits, &mut problem);
        let inference = inference::spec(&self.inference, base_dir, &mut problem);
        let persistence = storage::persistence(&self.storage, base_dir, &mut problem);
        let backfill = self
            .backfill
            .as_ref()
            .and_then(|b| remote::backfill_spec(b, base_dir, &mut problem));
        let scaling = scaling::validate(&self.scaling, &mut problem);
        let auth = auth::validate(&self.auth, base_dir, &mut problem);
        let tls = tls::validate(&self.tls, base_dir, &mut problem);
        let ha = self.ha.as_ref().and_then(|h| ha::validate(h, &mut problem));
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            step,
            ring_len: NonZeroUsize::new(ring_len).expect("validated"),
            idle_timeout: self.storage.idle_timeout.0,
            forecast,
            remote_write,
            limits,
            lstm_model: inference::model_source(&self.inference, base_dir),
            inference,
            persistence,
            forecast_history: check::whole_steps(self.storage.forecast_history.0, step_ms),
            forecast_history_memory: usize::try_from(self.storage.forecast_history_memory.0)
                .unwrap_or(usize::MAX),
            backfill,
            scaling,
            auth,
            tls,
            ha,
        })
    }
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
    fn unknown_detector_is_named_with_its_path_and_the_list() {
        let yaml = "forecast:\n  - selector: up\n    anomaly: { detector: lof }\n";
        let err = Config::from_yaml(yaml, "test", None).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.path, "forecast[0].anomaly.detector");
        assert!(
            p.message.contains("`lof`") && p.message.contains("`forest`"),
            "{}",
            p.message
        );
    }

    #[test]
    fn each_detector_brings_its_verdict_unless_the_entry_overrides_it() {
        use crate::anomaly::AlarmSignal;
        let yaml = "storage: { step: 5m }\nforecast:\n  - selector: a\n  \
                    - selector: b\n    anomaly: { detector: forest }\n  \
                    - selector: c\n    anomaly: { detector: forest, signal: score, suppress: 0s }\n  \
                    - selector: d\n    anomaly: { signal: likelihood, threshold: 0.5, suppress: 1h }\n";
        let c = Config::from_yaml(yaml, "test", None).unwrap();
        let spec = |i: usize| c.forecast[i].anomaly.clone().unwrap();
        let steps = |secs: u64| (secs / 300) as usize;
        let default = crate::detectors::DetectorKind::default();
        for (i, name) in [(0, default.as_str()), (1, "forest")] {
            let s = spec(i);
            assert_eq!(s.detector.as_str(), name);
            let d = s.detector.verdict();
            let signal = if d.on_likelihood {
                AlarmSignal::Likelihood
            } else {
                AlarmSignal::Score
            };
            let threshold = if d.on_likelihood { 0.15 } else { d.threshold };
            assert_eq!(
                (s.signal, s.threshold, s.suppress, s.outside_band_only),
                (
                    signal,
                    threshold,
                    steps(d.suppress_secs),
                    d.outside_band_only
                ),
                "{name}"
            );
        }
        // the forest's likelihood and one day's hold; knn's score with its own hold
        assert_eq!(
            (spec(1).signal, spec(1).suppress),
            (AlarmSignal::Likelihood, 288)
        );
        assert_eq!(spec(0).signal, AlarmSignal::Score);
        // overrides: the forest on its score (its threshold), no hold
        let s = spec(2);
        assert_eq!(
            (s.signal, s.threshold, s.suppress),
            (AlarmSignal::Score, 0.65, 0)
        );
        // the likelihood ignores the score threshold
        let s = spec(3);
        assert_eq!(
            (s.signal, s.threshold, s.suppress),
            (AlarmSignal::Likelihood, 0.15, 12)
        );
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
    fn bad_size_is_named_with_its_path() {
        let yaml = "storage:\n  forecast_history_memory: 2 gigs\n";
        let err = Config::from_yaml(yaml, "test", None).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.path, "storage.forecast_history_memory");
        assert!(p.message.contains("2 gigs"), "{}", p.message);
        let ok = "storage:\n  forecast_history_memory: 512MiB\nforecast:\n  - selector: up\n";
        let config = Config::from_yaml(ok, "test", None).unwrap();
        assert_eq!(config.forecast_history_memory, 512 << 20);
    }

    #[test]
    fn semantic_problems_are_all_reported() {
        let yaml = r#"
storage: { step: 1m, retention: 90s, forecast_history_memory: 0 }
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
            "storage.forecast_history_memory",
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
