//! What an `anomaly-eval` run is told ([`NabEvalOptions`]) and the constants it runs with:
//! the detectors in report order, their default thresholds and refractory period.

use std::path::PathBuf;

use crate::anomaly::AlarmSignal;
use crate::detectors::DetectorKind;

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

/// Options of [`run_nab_eval`]; their doc comments are `promcast anomaly-eval`'s help.
#[derive(Debug, Clone, clap::Args)]
pub struct NabEvalOptions {
    /// Tree in NAB's layout: DIR/<category>/<name>.csv with `timestamp,value`.
    #[arg(long = "nab", value_name = "NAB")]
    pub nab_dir: PathBuf,
    /// NAB's combined_windows.json.
    #[arg(long)]
    pub labels: PathBuf,
    /// Output directory: anomaly.csv, summary.csv, plots/, results/ (NAB's results layout:
    /// results/<detectorname>/<category>/<detectorname>_<name>.csv).
    #[arg(long)]
    pub out: PathBuf,
    /// The detector the `agent` detector runs (the agent's anomaly.detector).
    #[arg(long, default_value_t = DetectorKind::default())]
    pub detector: DetectorKind,
    /// Score at or above which the forest detectors alarm, and the `agent` detector with
    /// `--signal score` (the agent's anomaly.threshold) [default: 0.65 for the forest
    /// detectors; the agent's detector's own for `agent`: knn 0.99, forest 0.65]
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Sub-folders to run (comma-separated); default: every sub-folder of --nab.
    #[arg(long, value_delimiter = ',')]
    pub categories: Option<Vec<String>>,
    /// Points of history each forest trains on (the agent's retention / step).
    #[arg(long, default_value_t = 1440)]
    pub history: usize,
    /// Points between retrainings (the agent's anomaly.retrain_every / step).
    #[arg(long = "retrain-every", default_value_t = 60)]
    pub retrain_every: usize,
    /// Seed of the forests (the agent's is 0); the same seed gives the same figures.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// What drives the `agent` detector (the agent's anomaly.signal): `score` (against
    /// --threshold) or `likelihood` (against --likelihood-threshold) [default: the
    /// detector's: knn score, forest likelihood]
    #[arg(long)]
    pub signal: Option<AlarmSignal>,
    /// Threshold of the likelihood detectors (the agent's anomaly.likelihood_threshold).
    #[arg(long = "likelihood-threshold", default_value_t = LIKELIHOOD_THRESHOLD)]
    pub likelihood_threshold: f64,
    /// How long the `agent` detector holds after it fires (the agent's anomaly.suppress; 0s:
    /// every anomalous point fires), counted in each file's steps [default: the detector's:
    /// knn 0s (it holds its own scores), forest 1d]
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub suppress: Option<std::time::Duration>,
    /// Also optimise each detector's threshold per NAB profile (standard, reward_low_FP_rate,
    /// reward_low_FN_rate) as NAB's optimiser does, over all files of the run; printed and
    /// written to summary.csv.
    #[arg(long)]
    pub optimize: bool,
}

/// Score threshold of the forest detectors unless `--threshold` says otherwise (the
/// forest's default `anomaly.threshold`).
pub const FOREST_THRESHOLD: f64 = 0.65;

impl NabEvalOptions {
    /// The `agent` detector's verdict: `--signal`, `--threshold` and `--suppress`, else its
    /// detector's defaults (as the agent's config resolves them).
    pub fn agent_verdict(&self) -> crate::config::Verdict {
        crate::config::Verdict::of(
            self.detector,
            self.signal,
            self.threshold,
            self.likelihood_threshold,
            self.suppress,
        )
    }

    /// The score threshold of the forest detectors.
    pub fn forest_threshold(&self) -> f64 {
        self.threshold.unwrap_or(FOREST_THRESHOLD)
    }

    /// The agent's defaults expressed in points: a 24h@1m ring (1440 points) and
    /// `retrain_every: 1h` (60 points).
    pub fn new(nab_dir: PathBuf, labels: PathBuf, out: PathBuf) -> Self {
        Self {
            nab_dir,
            labels,
            out,
            detector: DetectorKind::default(),
            threshold: None,
            categories: None,
            history: 1440,
            retrain_every: 60,
            seed: 0,
            signal: None,
            likelihood_threshold: LIKELIHOOD_THRESHOLD,
            suppress: None,
            optimize: false,
        }
    }
}
