//! What an `anomaly-eval` run is told ([`NabEvalOptions`]) and the constants it runs with:
//! the detectors in report order, their default thresholds and refractory period.

use std::path::PathBuf;

use crate::anomaly::AlarmSignal;

/// Refractory period of the debounced detectors when a file's season is unknown (one day
/// of 5-minute steps).
pub const DEFAULT_REFRACTORY: usize = 288;
/// Threshold of the rolling-MAD baseline.
pub const MAD_K: f64 = 3.5;
/// NAB's real-data folders.
pub const REAL_CATEGORIES: [&str; 3] = ["realAWSCloudwatch", "realAdExchange", "realTweets"];
/// Detector names in report order.
pub const DETECTORS: [&str; 10] = [
    "agent",
    "forest",
    "forest_debounced",
    "likelihood",
    "likelihood_debounced",
    "forest_pooled",
    "band",
    "band_debounced",
    "mad",
    "mad_debounced",
];

/// Log-likelihood at or above which the likelihood detectors alarm by default (the agent's
/// default `anomaly.likelihood_threshold`).
pub const LIKELIHOOD_THRESHOLD: f64 = 0.15;

/// Options of [`run_nab_eval`](super::run_nab_eval).
#[derive(Debug, Clone)]
pub struct NabEvalOptions {
    /// `DIR/<category>/<name>.csv` with `timestamp,value`.
    pub nab_dir: PathBuf,
    /// NAB's `combined_windows.json`.
    pub labels: PathBuf,
    /// Output directory (created).
    pub out: PathBuf,
    /// Forest alarm threshold on the score.
    pub threshold: f64,
    /// Categories (sub-folders) to run; `None` = every sub-folder of `nab_dir`.
    pub categories: Option<Vec<String>>,
    /// Points of history a forest trains on: the agent's ring length (`retention / step`).
    pub history: usize,
    /// Points between retrainings: the agent's `anomaly.retrain_every / step`.
    pub retrain_every: usize,
    /// Seed of the forests (the agent's is 0); runs with the same seed are identical.
    pub seed: u64,
    /// What drives the `agent` detector (the agent's `anomaly.signal`).
    pub signal: AlarmSignal,
    /// Threshold of the likelihood detectors, and of `agent` with the likelihood signal
    /// (the agent's `anomaly.likelihood_threshold`).
    pub likelihood_threshold: f64,
    /// How long the `agent` detector holds after firing (the agent's `anomaly.suppress`),
    /// counted in the file's steps (rounded down); `None`: one day, the agent's default.
    pub suppress: Option<std::time::Duration>,
    /// Also sweep each detector's threshold per NAB profile ([`optimize`](super::optimize)).
    pub optimize: bool,
}

impl NabEvalOptions {
    /// The agent's defaults expressed in points: a 24h@1m ring (1440 points) and
    /// `retrain_every: 1h` (60 points).
    pub fn new(nab_dir: PathBuf, labels: PathBuf, out: PathBuf) -> Self {
        Self {
            nab_dir,
            labels,
            out,
            threshold: 0.65,
            categories: None,
            history: 1440,
            retrain_every: 60,
            seed: 0,
            signal: AlarmSignal::Likelihood,
            likelihood_threshold: LIKELIHOOD_THRESHOLD,
            suppress: None,
            optimize: false,
        }
    }
}
