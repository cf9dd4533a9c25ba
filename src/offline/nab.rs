//! `promcast anomaly-eval`: replays NAB-layout series through [`features`] and
//! [`AnomalyForest`] (only past data at each step) and scores the alarms against NAB's
//! labelled windows, next to two baselines.
//!
//! Detectors:
//! - `agent`: what the agent exports as `N:anomalous`: its own scorer
//!   ([`crate::anomaly::AnomalyScorer`]) and decision, point by point ([`agent_verdicts`]),
//!   with the agent's signal, threshold and one day of suppression.
//! - `forest`: the agent's per-series forest: trained at the end of the probation period on
//!   the feature rows of the last `history` points (the agent's ring) and retrained every
//!   `retrain_every` points, with the same functions the agent calls
//!   ([`online::training_rows`], [`online::training_due`]). Alarm: score ≥ threshold.
//! - `forest_debounced`: the `forest` scores, but after an alarm point further alarm points
//!   are suppressed for one day of steps (the season; 288 when unknown), see [`debounce`].
//!   NAB charges every alarm point outside a window; this is the agent's `for:`/`keep_firing`
//!   alerting behaviour expressed per point.
//! - `likelihood` (and `likelihood_debounced`): the `forest` scores through the anomaly
//!   likelihood layer ([`crate::anomaly::likelihood`]).
//! - `forest_pooled`: one forest per category (group), trained on the probation rows of the
//!   series being scored plus all rows of the *other* series of its category (leave one
//!   out), never retrained: can a forest trained on other series score this one?
//! - `band` (and `band_debounced`, same debounce as above): value outside the naive band of [`naive_band`] (last value + 1 %/99 % quantiles
//!   of recent 1-step changes).
//! - `mad` (and `mad_debounced`): `|x − median| / (1.4826·MAD) > `[`MAD_K`] over the trailing [`LONG_WINDOW`]
//!   points.
//!
//! Probation: the first `min(⌊0.15·n⌋, 750)` points (NAB's rule) train and never alarm.

// Index loops over parallel arrays read better here; NaN-aware `!(a >= b)` is intended.
#![allow(
    clippy::needless_range_loop,
    clippy::too_many_arguments,
    clippy::neg_cmp_op_on_partial_ord
)]

use crate::anomaly::*;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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
    /// Score at or above which the forest alarms.
    #[arg(long, default_value_t = 0.65)]
    pub threshold: f64,
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
    /// --threshold) or `likelihood` (against --likelihood-threshold).
    #[arg(long, default_value = "likelihood")]
    pub signal: AlarmSignal,
    /// Threshold of the likelihood detectors (the agent's anomaly.likelihood_threshold).
    #[arg(long = "likelihood-threshold", default_value_t = LIKELIHOOD_THRESHOLD)]
    pub likelihood_threshold: f64,
    /// How long the `agent` detector holds after it fires (the agent's anomaly.suppress; 0s:
    /// every anomalous point fires), counted in each file's steps [default: 1d]
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub suppress: Option<std::time::Duration>,
    /// Also optimise each detector's threshold per NAB profile (standard, reward_low_FP_rate,
    /// reward_low_FN_rate) as NAB's optimiser does, over all files of the run; printed and
    /// written to summary.csv.
    #[arg(long)]
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

/// Window counts and scores of one detector on one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub detector: String,
    /// `<category>/<name>.csv`, the labels key.
    pub file: String,
    pub category: String,
    /// Windows that reach past the probation period.
    pub windows: usize,
    pub caught: usize,
    pub fp_events: usize,
    pub alarm_points: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// NAB score parts (raw, null and perfect scores of each profile follow from them).
    pub nab: NabParts,
}

/// A detector's figures over a set of files.
#[derive(Debug, Clone)]
pub struct Summary {
    pub detector: String,
    /// `ALL` or a category.
    pub scope: String,
    pub files: usize,
    pub mean_precision: f64,
    pub mean_recall: f64,
    pub mean_f1: f64,
    /// Pooled counts: caught / windows, caught / (caught + FP events).
    pub micro_precision: f64,
    pub micro_recall: f64,
    pub micro_f1: f64,
    /// NAB scores per profile ([`NAB_PROFILES`] order: standard, low FP, low FN),
    /// normalised: 0 = null detector, 100 = perfect.
    pub nab: [f64; 3],
    /// With [`NabEvalOptions::optimize`]: per profile, the threshold that maximises the
    /// detector's summed raw score over all files of the run, and this scope's normalised
    /// score at that threshold.
    pub opt: Option<[OptScore; 3]>,
}

/// A profile's optimised threshold and the normalised score there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptScore {
    pub threshold: f64,
    pub score: f64,
}

/// Scores kept for threshold sweeps.
#[derive(Debug, Clone)]
pub struct ScoredFile {
    pub detector: String,
    pub file: String,
    pub category: String,
    pub probation: usize,
    pub windows: Vec<(usize, usize)>,
    pub scores: Vec<f64>,
    /// Debounce (points) applied when evaluating.
    pub refractory: usize,
}

impl ScoredFile {
    /// The file's figures with its detector alarming at `threshold`.
    pub fn evaluate_at(&self, threshold: f64) -> FileResult {
        evaluate(
            &self.detector,
            &self.file,
            &self.category,
            &self.scores,
            &self.windows,
            self.probation,
            threshold,
            self.refractory,
        )
    }
}

/// Everything [`run_nab_eval`] measured.
#[derive(Debug, Clone)]
pub struct NabReport {
    pub threshold: f64,
    pub files: Vec<FileResult>,
    /// Per detector: `ALL` first, then one per category.
    pub summary: Vec<Summary>,
    pub scored: Vec<ScoredFile>,
    /// Seconds [`optimize`] took over all detectors (`None` without `optimize`).
    pub optimize_secs: Option<f64>,
    /// Per detector, the normalised score per profile with each file at its own best
    /// threshold ([`per_file_oracle`]; empty without `optimize`).
    pub oracle: Vec<(&'static str, [f64; 3])>,
}

// ---------------------------------------------------------------- metrics

/// Window-level counts: a window is caught if any alarm falls in it; alarm points outside
/// windows form false-positive events (a run of consecutive alarm points is one event).
/// Alarms before `start` and windows ending before `start` are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCounts {
    pub windows: usize,
    pub caught: usize,
    pub fp_events: usize,
}

pub fn window_counts(alarms: &[bool], windows: &[(usize, usize)], start: usize) -> WindowCounts {
    let n = alarms.len();
    let mut inside = vec![false; n];
    let mut c = WindowCounts {
        windows: 0,
        caught: 0,
        fp_events: 0,
    };
    for &(l, r) in windows {
        let r = r.min(n.saturating_sub(1));
        if r < start || l > r {
            continue;
        }
        c.windows += 1;
        inside[l..=r].iter_mut().for_each(|x| *x = true);
        if (l.max(start)..=r).any(|i| alarms[i]) {
            c.caught += 1;
        }
    }
    let mut in_event = false;
    for i in start..n {
        let fp = alarms[i] && !inside[i];
        if fp && !in_event {
            c.fp_events += 1;
        }
        in_event = fp;
    }
    c
}

/// Precision, recall, F1 from window counts. No windows: recall 1. No alarms at all:
/// precision 1 when there is nothing to catch, else 0.
pub fn prf(c: WindowCounts) -> (f64, f64, f64) {
    let recall = if c.windows == 0 {
        1.0
    } else {
        c.caught as f64 / c.windows as f64
    };
    let alarms = c.caught + c.fp_events;
    let precision = if alarms == 0 {
        if c.windows == 0 {
            1.0
        } else {
            0.0
        }
    } else {
        c.caught as f64 / alarms as f64
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, f1)
}

/// NAB's scaled sigmoid (`sweeper.py`): `2·sigmoid(−5·y) − 1`, and −1 from 3 on.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// NAB probation length: `min(⌊0.15·n⌋, 0.15·5000)`.
pub fn nab_probation(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// One of NAB's application profiles (`config/profiles.json`, `CostMatrix`; `tnWeight` is
/// unused by the scorer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NabProfile {
    /// NAB's name.
    pub name: &'static str,
    /// Our column suffix: `nab_<column>`, `opt_<column>`.
    pub column: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_weight: f64,
}

/// `standard`: TP 1, FP 0.11, FN 1.
pub const NAB_STANDARD: NabProfile = NabProfile {
    name: "standard",
    column: "standard",
    tp: 1.0,
    fp: 0.11,
    fn_weight: 1.0,
};
/// `reward_low_FP_rate`: TP 1, FP 0.22, FN 1.
pub const NAB_LOW_FP: NabProfile = NabProfile {
    name: "reward_low_FP_rate",
    column: "low_fp",
    tp: 1.0,
    fp: 0.22,
    fn_weight: 1.0,
};
/// `reward_low_FN_rate`: TP 1, FP 0.11, FN 2.
pub const NAB_LOW_FN: NabProfile = NabProfile {
    name: "reward_low_FN_rate",
    column: "low_fn",
    tp: 1.0,
    fp: 0.11,
    fn_weight: 2.0,
};
/// NAB's three profiles, in our column order.
pub const NAB_PROFILES: [NabProfile; 3] = [NAB_STANDARD, NAB_LOW_FP, NAB_LOW_FN];

/// NAB standard profile weights.
pub const NAB_TP: f64 = NAB_STANDARD.tp;
pub const NAB_FP: f64 = NAB_STANDARD.fp;
pub const NAB_FN: f64 = NAB_STANDARD.fn_weight;

/// What one point contributes when it is a detection: NAB's `sweepScore` before the
/// profile's weight (`calcSweepScore`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SweepPoint {
    /// Before the probation's end: never scored.
    Probation,
    /// In window `id`: `scaledSigmoid(−(r − i + 1)/width) / scaledSigmoid(−1)`, times TP.
    Window { id: usize, tp: f64 },
    /// Outside windows: `scaledSigmoid(|i − r_prev| / (width_prev − 1))` after a window,
    /// `scaledSigmoid(3) = −1` before the first, times FP.
    Outside { fp: f64 },
}

/// The weight-free parts of a NAB score: `raw = TP·tp + FP·fp − FN·(windows − detected)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NabParts {
    /// Windows with a point past the probation (the ones NAB scores).
    pub windows: usize,
    /// Of those, windows with a detection.
    pub detected: usize,
    /// Sum over detected windows of the best (earliest) detection's unweighted TP score.
    pub tp: f64,
    /// Sum over detections outside windows of their unweighted (≤ 0) FP score.
    pub fp: f64,
}

impl NabParts {
    /// Raw score under `p`.
    pub fn raw(&self, p: &NabProfile) -> f64 {
        p.tp * self.tp + p.fp * self.fp - p.fn_weight * (self.windows - self.detected) as f64
    }
    /// The null detector's (no detection) raw score under `p`: −FN per window.
    pub fn null(&self, p: &NabProfile) -> f64 {
        -p.fn_weight * self.windows as f64
    }
    /// The perfect detector's (each window at its first point) raw score: +TP per window.
    pub fn perfect(&self, p: &NabProfile) -> f64 {
        p.tp * self.windows as f64
    }
    fn add(&mut self, o: &NabParts) {
        self.windows += o.windows;
        self.detected += o.detected;
        self.tp += o.tp;
        self.fp += o.fp;
    }
}

/// Windows clipped to `n` points, sorted, overlapping ones merged (NAB's labels have none).
fn clean_windows(windows: &[(usize, usize)], n: usize) -> Vec<(usize, usize)> {
    let mut ws: Vec<(usize, usize)> = windows
        .iter()
        .map(|&(l, r)| (l, r.min(n.saturating_sub(1))))
        .filter(|&(l, r)| l <= r && l < n)
        .collect();
    ws.sort();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ws.len());
    for (l, r) in ws {
        match out.last_mut() {
            Some(last) if l <= last.1 => last.1 = last.1.max(r),
            _ => out.push((l, r)),
        }
    }
    out
}

/// NAB's `Sweeper.calcSweepScore` for `n` points: each point's unweighted contribution
/// as a detection, and the number of windows scored (those reaching past `probation`).
/// A window of one point is followed by FP positions `|i − r|/1` (NAB divides by zero).
pub fn sweep_points(
    n: usize,
    windows: &[(usize, usize)],
    probation: usize,
) -> (Vec<SweepPoint>, usize) {
    let ws = clean_windows(windows, n);
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = Vec::with_capacity(n);
    let (mut next, mut cur, mut prev) = (0usize, None::<usize>, None::<(usize, usize)>);
    let mut scored = 0;
    for i in 0..n {
        if cur.is_none() && next < ws.len() && i == ws[next].0 {
            cur = Some(next);
            next += 1;
            if ws[next - 1].1 >= probation {
                scored += 1;
            }
        }
        let p = match cur {
            Some(id) => {
                let (l, r) = ws[id];
                let pos = -((r - i + 1) as f64) / (r - l + 1) as f64;
                SweepPoint::Window {
                    id,
                    tp: scaled_sigmoid(pos) / max_tp,
                }
            }
            None => {
                let pos = match prev {
                    None => 3.0,
                    Some((r, w)) => (i - r) as f64 / (w.saturating_sub(1).max(1)) as f64,
                };
                SweepPoint::Outside {
                    fp: scaled_sigmoid(pos),
                }
            }
        };
        out.push(if i < probation {
            SweepPoint::Probation
        } else {
            p
        });
        if let Some(id) = cur {
            let (l, r) = ws[id];
            if i == r {
                prev = Some((r, r - l + 1));
                cur = None;
            }
        }
    }
    (out, scored)
}

/// Scores the detections at `alarm_at` (ascending or not) against `points`
/// ([`sweep_points`]): the best detection per window, every detection outside windows.
fn parts_of(
    points: &[SweepPoint],
    windows: usize,
    alarm_at: impl Iterator<Item = usize>,
) -> NabParts {
    let mut best: Vec<f64> = Vec::new();
    let mut p = NabParts {
        windows,
        ..NabParts::default()
    };
    for i in alarm_at {
        match points[i] {
            SweepPoint::Probation => {}
            SweepPoint::Window { id, tp } => {
                if best.len() <= id {
                    best.resize(id + 1, f64::NEG_INFINITY);
                }
                best[id] = best[id].max(tp);
            }
            SweepPoint::Outside { fp } => p.fp += fp,
        }
    }
    for b in best.into_iter().filter(|b| b.is_finite()) {
        p.detected += 1;
        p.tp += b;
    }
    p
}

/// NAB score parts of one file's detections, following NAB's `sweeper.py`
/// (`calcSweepScore` + `calcScoreByThreshold`): points before `probation` are ignored;
/// each window that reaches past the probation scores its best (earliest) detection, or
/// −FN if none; each detection outside windows scores FP·`scaledSigmoid` of its distance
/// after the previous window (−FP before the first).
pub fn nab_parts(alarms: &[bool], windows: &[(usize, usize)], probation: usize) -> NabParts {
    let (points, scored) = sweep_points(alarms.len(), windows, probation);
    parts_of(&points, scored, (0..alarms.len()).filter(|&i| alarms[i]))
}

/// `(raw, null, perfect)` NAB scores of one file under profile `p`; null = −FN and
/// perfect = +TP per scored window.
pub fn nab_score_profile(
    alarms: &[bool],
    windows: &[(usize, usize)],
    probation: usize,
    p: &NabProfile,
) -> (f64, f64, f64) {
    let parts = nab_parts(alarms, windows, probation);
    (parts.raw(p), parts.null(p), parts.perfect(p))
}

/// [`nab_score_profile`] under the standard profile.
pub fn nab_score(alarms: &[bool], windows: &[(usize, usize)], probation: usize) -> (f64, f64, f64) {
    nab_score_profile(alarms, windows, probation, &NAB_STANDARD)
}

/// Normalised NAB score of summed raw/null/perfect scores.
pub fn nab_normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    if perfect - null <= 0.0 {
        return 0.0;
    }
    100.0 * (raw - null) / (perfect - null)
}

/// Normalised score of summed parts under `p`.
pub fn nab_normalise_parts(parts: &NabParts, p: &NabProfile) -> f64 {
    nab_normalise(parts.raw(p), parts.null(p), parts.perfect(p))
}

// ---------------------------------------------------------------- data

/// Seconds since 1970 of `YYYY-MM-DD HH:MM:SS[.ffffff]`.
pub fn parse_ts(s: &str) -> Option<i64> {
    crate::offline::data::parse_datetime(s).map(|ms| ms.div_euclid(1000))
}

struct Series {
    category: String,
    name: String,
    key: String,
    stamps: Vec<String>,
    /// The value column as written in the file.
    value_text: Vec<String>,
    values: Vec<f32>,
    windows: Vec<(usize, usize)>,
    probation: usize,
    season: Option<usize>,
    rows: Vec<Option<FeatureVec>>,
    bands: Vec<Option<(f64, f64, f64)>>,
}

/// `timestamp,value` file: stamps and values as written, seconds, values.
type RawSeries = (Vec<String>, Vec<String>, Vec<i64>, Vec<f32>);

fn read_series(path: &Path) -> Result<RawSeries> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    if !header.starts_with("timestamp") {
        bail!("{}: expected a timestamp,value header", path.display());
    }
    let (mut stamps, mut texts, mut ts, mut vals) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (a, b) = line
            .split_once(',')
            .with_context(|| format!("{}:{}: no comma", path.display(), i + 2))?;
        let t =
            parse_ts(a).with_context(|| format!("{}:{}: bad timestamp", path.display(), i + 2))?;
        let v: f64 = b.trim().parse().unwrap_or(f64::NAN);
        stamps.push(a.trim().to_string());
        texts.push(b.trim().to_string());
        ts.push(t);
        vals.push(v as f32);
    }
    Ok((stamps, texts, ts, vals))
}

/// The `anomaly_score` column of a NAB results file (`timestamp,value,anomaly_score,...`).
pub fn read_results(path: &Path) -> Result<Vec<f64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let Some(col) = header.iter().position(|h| h.trim() == "anomaly_score") else {
        bail!("{}: no anomaly_score column", path.display());
    };
    let mut out = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v = line
            .split(',')
            .nth(col)
            .and_then(|s| s.trim().parse().ok())
            .with_context(|| format!("{}:{}: bad anomaly_score", path.display(), i + 2))?;
        out.push(v);
    }
    Ok(out)
}

fn season_of(ts: &[i64]) -> Option<usize> {
    if ts.len() < 3 {
        return None;
    }
    let mut d: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    let k = d.len() / 2;
    let step = *d.select_nth_unstable(k).1;
    (step > 0 && 86400 % step == 0 && 86400 / step >= 3).then(|| (86400 / step) as usize)
}

/// NAB's `combined_windows.json`: `{"<category>/<name>.csv": [[start, end], ...]}`.
pub type NabLabels = HashMap<String, Vec<Vec<String>>>;

/// Reads a labels file; errors name the path.
pub fn read_labels(path: &Path) -> Result<NabLabels> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected NAB's labels JSON, {{\"<category>/<name>.csv\": [[start, end], ...]}}",
            path.display()
        )
    })
}

/// Point indices `(first, last)` of `key`'s labelled windows (points with `start ≤ t ≤ end`,
/// as NAB's labeler marks them); windows without points are dropped.
pub fn window_indices(labels: &NabLabels, key: &str, ts: &[i64]) -> Result<Vec<(usize, usize)>> {
    let mut windows = Vec::new();
    for w in labels.get(key).map(|v| v.as_slice()).unwrap_or(&[]) {
        let (Some(a), Some(b)) = (
            w.first().and_then(|s| parse_ts(s)),
            w.get(1).and_then(|s| parse_ts(s)),
        ) else {
            bail!("labels of {key}: bad window {w:?}");
        };
        let l = ts.partition_point(|&t| t < a);
        let r = ts.partition_point(|&t| t <= b);
        if r > l {
            windows.push((l, r - 1));
        }
    }
    Ok(windows)
}

/// The categories to run: the given ones, else every sub-folder of `nab_dir` (sorted).
fn categories(opts: &NabEvalOptions) -> Result<Vec<String>> {
    if let Some(c) = &opts.categories {
        return Ok(c.clone());
    }
    let dir = &opts.nab_dir;
    let mut cats: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    cats.sort();
    Ok(cats)
}

fn load(opts: &NabEvalOptions) -> Result<Vec<Series>> {
    let labels = read_labels(&opts.labels)?;
    let cats = categories(opts)?;
    let mut out = Vec::new();
    for cat in &cats {
        let dir = opts.nab_dir.join(cat);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".csv"))
            .collect();
        names.sort();
        for name in names {
            let key = format!("{cat}/{name}");
            let (stamps, value_text, ts, values) = read_series(&dir.join(&name))?;
            let windows = window_indices(&labels, &key, &ts)
                .with_context(|| format!("in {}", opts.labels.display()))?;
            let season = season_of(&ts);
            let n = values.len();
            let mut rows = Vec::with_capacity(n);
            let mut bands = Vec::with_capacity(n);
            for t in 0..n {
                let band = naive_band(&values[..t]);
                bands.push(band);
                rows.push(features(&values[..=t], band, season));
            }
            out.push(Series {
                category: cat.clone(),
                name: name.trim_end_matches(".csv").to_string(),
                key,
                stamps,
                value_text,
                values,
                windows,
                probation: nab_probation(n),
                season,
                rows,
                bands,
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- detectors

/// The agent's own-forest path ([`online::SeriesDetector`]): from the end of probation, rows
/// of the last `history` points (as the ring holds them), retrained every `retrain_every`
/// points, scoring each newest point.
fn forest_scores(s: &Series, history: usize, retrain_every: usize, seed: u64) -> Vec<f64> {
    let n = s.values.len();
    let mut scores = vec![0.0; n];
    let mut detector = online::SeriesDetector::with_seed(history, seed);
    let mut scratch = Vec::new();
    for t in s.probation..n {
        if let Some(row) = &s.rows[t] {
            detector.observe(row);
        }
        let ring = &s.values[(t + 1).saturating_sub(history.max(2))..=t];
        detector.train_if_due(ring, s.season, t as u64, retrain_every, &mut scratch);
        if let (Some(f), Some(row)) = (detector.forest(), &s.rows[t]) {
            scores[t] = f.score(row);
        }
    }
    scores
}

/// The agent's own scorer ([`online::AnomalyScorer`], exactly as the forecast loop drives
/// it) over one series fed one point per step: the verdict exported at each point
/// (`N:anomaly_score`, `N:anomaly_likelihood`, `N:anomalous`). The ring is the last
/// `history` points (from the first one), the season the longest of `seasons` it covers.
/// This is the `agent` detector of `anomaly-eval`, and what the agent exports with `seed` 0.
pub fn agent_verdicts(
    values: &[f32],
    seasons: &[usize],
    history: usize,
    spec: &crate::config::AnomalySpec,
    seed: u64,
) -> Vec<Option<crate::snapshot::Anomaly>> {
    let mut scorer = online::AnomalyScorer::with_seed(1, 1, history, seed);
    let far = std::time::Instant::now() + std::time::Duration::from_secs(365 * 86_400);
    let specs = [Some(spec.clone())];
    let id = crate::store::SeriesId(0);
    (0..values.len())
        .map(|t| {
            let ring = &values[(t + 1).saturating_sub(history.max(1))..=t];
            let season = online::season_for(seasons, ring.len());
            let v = scorer.score(id, 0, spec, ring, t as i64, season, t as u64, far);
            scorer.finish_step(t as u64, &specs, far);
            v
        })
        .collect()
}

/// The `agent` detector's scores as `anomaly-eval` scores them: the signal the threshold
/// applies to, 0 where it is at or above the threshold but the agent did not fire (held by
/// the suppression, or inside the band), so that at the threshold the alarms are exactly
/// the agent's `N:anomalous != 0`.
fn agent_scores(s: &Series, opts: &NabEvalOptions, suppress: usize) -> Vec<f64> {
    let threshold = agent_threshold(opts);
    let spec = crate::config::AnomalySpec {
        threshold,
        retrain_every: opts.retrain_every,
        signal: opts.signal,
        suppress,
    };
    let seasons: Vec<usize> = s.season.into_iter().collect();
    agent_verdicts(&s.values, &seasons, opts.history, &spec, opts.seed)
        .into_iter()
        .map(|v| {
            v.map_or(0.0, |a| {
                let signal = match opts.signal {
                    AlarmSignal::Score => a.score,
                    AlarmSignal::Likelihood => a.likelihood,
                };
                if signal >= threshold && a.direction == 0 {
                    0.0
                } else {
                    signal
                }
            })
        })
        .collect()
}

/// The `agent` detector's threshold: the one its signal is compared with.
fn agent_threshold(opts: &NabEvalOptions) -> f64 {
    match opts.signal {
        AlarmSignal::Score => opts.threshold,
        AlarmSignal::Likelihood => opts.likelihood_threshold,
    }
}

/// Log-likelihood at or above which the likelihood detectors alarm by default (the agent's
/// default `anomaly.likelihood_threshold`).
pub const LIKELIHOOD_THRESHOLD: f64 = 0.15;

/// The forest's scores through the likelihood layer ([`crate::anomaly::likelihood`]), from
/// the first scored point.
fn likelihood_scores(forest: &[f64], probation: usize) -> Vec<f64> {
    let mut l = crate::anomaly::likelihood::Likelihood::new();
    forest
        .iter()
        .enumerate()
        .map(|(t, &s)| if t < probation { 0.0 } else { l.update(s) })
        .collect()
}

fn pooled_scores(all: &[Series], idx: usize, seed: u64) -> Vec<f64> {
    let s = &all[idx];
    let mut rows: Vec<FeatureVec> = s.rows[..s.probation].iter().flatten().copied().collect();
    // other series of the category, evenly subsampled so each contributes alike
    let others: Vec<&Series> = all
        .iter()
        .enumerate()
        .filter(|(j, o)| *j != idx && o.category == s.category)
        .map(|(_, o)| o)
        .collect();
    if !others.is_empty() {
        let per = (MAX_TRAIN_ROWS / others.len()).max(1);
        for o in others {
            let r: Vec<FeatureVec> = o.rows.iter().flatten().copied().collect();
            if r.is_empty() {
                continue;
            }
            let k = per.min(r.len());
            rows.extend((0..k).map(|i| r[i * r.len() / k]));
        }
    }
    let n = s.values.len();
    let mut scores = vec![0.0; n];
    if let Ok(f) = AnomalyForest::train_seeded(&rows, seed) {
        for t in s.probation..n {
            if let Some(row) = &s.rows[t] {
                scores[t] = f.score(row);
            }
        }
    }
    scores
}

fn band_scores(s: &Series) -> Vec<f64> {
    (0..s.values.len())
        .map(|t| {
            let x = s.values[t] as f64;
            match s.bands[t] {
                Some((lo, _, hi)) if t >= s.probation && x.is_finite() && (x < lo || x > hi) => 1.0,
                _ => 0.0,
            }
        })
        .collect()
}

fn mad_scores(s: &Series) -> Vec<f64> {
    let n = s.values.len();
    let mut out = vec![0.0; n];
    let mut tmp = vec![0f64; LONG_WINDOW];
    let mut buf = Vec::with_capacity(LONG_WINDOW);
    for t in s.probation.max(1)..n {
        let x = s.values[t] as f64;
        if !x.is_finite() {
            continue;
        }
        buf.clear();
        buf.extend(
            s.values[t.saturating_sub(LONG_WINDOW)..t]
                .iter()
                .filter(|v| v.is_finite())
                .map(|&v| v as f64),
        );
        if buf.len() < MIN_HISTORY {
            continue;
        }
        tmp[..buf.len()].copy_from_slice(&buf);
        let med = median(&mut tmp[..buf.len()]);
        for (t2, v) in tmp.iter_mut().zip(&buf) {
            *t2 = (v - med).abs();
        }
        let mad = median(&mut tmp[..buf.len()]);
        let z = (x - med).abs() / (1.4826 * mad);
        if z > MAD_K || (mad == 0.0 && x != med) {
            out[t] = 1.0;
        }
    }
    out
}

// ---------------------------------------------------------------- run

/// The `agent` detector's hold in points for a file whose day is `day` points: `suppress`
/// counted in the file's steps (rounded down, as the agent counts it), one day by default.
fn hold_points(suppress: Option<std::time::Duration>, day: usize) -> usize {
    suppress.map_or(day, |d| (d.as_secs_f64() / 86_400.0 * day as f64) as usize)
}

/// Alarm points: `score >= threshold`, and with `refractory > 0` only when no alarm fired in
/// the `refractory` points before (the first point of each burst alarms, the rest of the
/// burst is suppressed).
pub fn debounce(scores: &[f64], threshold: f64, refractory: usize) -> Vec<bool> {
    let mut last: Option<usize> = None;
    scores
        .iter()
        .enumerate()
        .map(|(t, &s)| {
            let fire = s >= threshold && last.is_none_or(|l| t - l >= refractory.max(1));
            if fire {
                last = Some(t);
            }
            fire
        })
        .collect()
}

fn evaluate(
    detector: &str,
    file: &str,
    category: &str,
    scores: &[f64],
    windows: &[(usize, usize)],
    probation: usize,
    threshold: f64,
    refractory: usize,
) -> FileResult {
    let alarms = debounce(scores, threshold, refractory);
    let c = window_counts(&alarms, windows, probation);
    let (precision, recall, f1) = prf(c);
    let nab = nab_parts(&alarms, windows, probation);
    FileResult {
        detector: detector.to_string(),
        file: file.to_string(),
        category: category.to_string(),
        windows: c.windows,
        caught: c.caught,
        fp_events: c.fp_events,
        alarm_points: alarms[probation.min(alarms.len())..]
            .iter()
            .filter(|&&a| a)
            .count(),
        precision,
        recall,
        f1,
        nab,
    }
}

/// Summary of `files` (all of one detector).
pub fn summarise(detector: &str, scope: &str, files: &[&FileResult]) -> Summary {
    let k = files.len().max(1) as f64;
    let mean = |f: fn(&FileResult) -> f64| files.iter().map(|r| f(r)).sum::<f64>() / k;
    let caught: usize = files.iter().map(|r| r.caught).sum();
    let windows: usize = files.iter().map(|r| r.windows).sum();
    let fp: usize = files.iter().map(|r| r.fp_events).sum();
    let mut nab = NabParts::default();
    files.iter().for_each(|r| nab.add(&r.nab));
    let (mp, mr, mf) = prf(WindowCounts {
        windows,
        caught,
        fp_events: fp,
    });
    Summary {
        detector: detector.to_string(),
        scope: scope.to_string(),
        files: files.len(),
        mean_precision: mean(|r| r.precision),
        mean_recall: mean(|r| r.recall),
        mean_f1: mean(|r| r.f1),
        micro_precision: mp,
        micro_recall: mr,
        micro_f1: mf,
        nab: NAB_PROFILES.map(|p| nab_normalise_parts(&nab, &p)),
        opt: None,
    }
}

fn summaries(files: &[FileResult]) -> Vec<Summary> {
    let mut out = Vec::new();
    for det in DETECTORS {
        let mine: Vec<&FileResult> = files.iter().filter(|r| r.detector == det).collect();
        if mine.is_empty() {
            continue;
        }
        out.push(summarise(det, "ALL", &mine));
        let mut cats: Vec<&str> = mine.iter().map(|r| r.category.as_str()).collect();
        cats.dedup();
        for c in cats {
            let sub: Vec<&FileResult> = mine.iter().copied().filter(|r| r.category == c).collect();
            out.push(summarise(det, c, &sub));
        }
    }
    out
}

impl NabReport {
    /// Re-scores the kept scores of `detector` at each threshold: `(threshold, summary)`.
    pub fn sweep(&self, detector: &str, thresholds: &[f64]) -> Vec<(f64, Summary)> {
        thresholds
            .iter()
            .map(|&th| {
                let rs: Vec<FileResult> = self
                    .scored
                    .iter()
                    .filter(|s| s.detector == detector)
                    .map(|s| s.evaluate_at(th))
                    .collect();
                let refs: Vec<&FileResult> = rs.iter().collect();
                (th, summarise(detector, "ALL", &refs))
            })
            .collect()
    }

    /// Quantiles of `detector`'s scores after probation, outside and inside windows.
    pub fn score_quantiles(&self, detector: &str, qs: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (mut out, mut inn) = (Vec::new(), Vec::new());
        for s in self.scored.iter().filter(|s| s.detector == detector) {
            let mut inside = vec![false; s.scores.len()];
            for &(l, r) in &s.windows {
                inside[l..=r.min(s.scores.len() - 1)]
                    .iter_mut()
                    .for_each(|x| *x = true);
            }
            for t in s.probation..s.scores.len() {
                if inside[t] {
                    inn.push(s.scores[t]);
                } else {
                    out.push(s.scores[t]);
                }
            }
        }
        let q = |v: &mut Vec<f64>| -> Vec<f64> {
            v.sort_by(f64::total_cmp);
            qs.iter()
                .map(|&q| {
                    if v.is_empty() {
                        f64::NAN
                    } else {
                        v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
                    }
                })
                .collect()
        };
        (q(&mut out), q(&mut inn))
    }
}

/// Runs the evaluation and writes `OUT/anomaly.csv`, `OUT/summary.csv`,
/// `OUT/plots/<category>_<name>.svg` and, in NAB's results layout,
/// `OUT/results/<detectorname>/<category>/<detectorname>_<name>.csv` (see [`write_results`]).
pub fn run_nab_eval(opts: &NabEvalOptions) -> Result<NabReport> {
    let series = load(opts)?;
    if series.is_empty() {
        bail!("no series found under {}", opts.nab_dir.display());
    }
    std::fs::create_dir_all(opts.out.join("plots"))?;
    let mut files = Vec::new();
    let mut scored = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let forest = forest_scores(s, opts.history, opts.retrain_every, opts.seed);
        let day = s.season.unwrap_or(DEFAULT_REFRACTORY);
        let hold = hold_points(opts.suppress, day);
        let band = band_scores(s);
        let mad = mad_scores(s);
        let likely = likelihood_scores(&forest, s.probation);
        let per_det: [(&str, Vec<f64>, f64, usize); 10] = [
            (
                "agent",
                agent_scores(s, opts, hold),
                agent_threshold(opts),
                hold,
            ),
            ("forest", forest.clone(), opts.threshold, 0),
            ("forest_debounced", forest, opts.threshold, day),
            ("likelihood", likely.clone(), opts.likelihood_threshold, 0),
            (
                "likelihood_debounced",
                likely,
                opts.likelihood_threshold,
                day,
            ),
            (
                "forest_pooled",
                pooled_scores(&series, i, opts.seed),
                opts.threshold,
                0,
            ),
            ("band", band.clone(), 0.5, 0),
            ("band_debounced", band, 0.5, day),
            ("mad", mad.clone(), 0.5, 0),
            ("mad_debounced", mad, 0.5, day),
        ];
        for (det, scores, th, refractory) in &per_det {
            files.push(evaluate(
                det,
                &s.key,
                &s.category,
                scores,
                &s.windows,
                s.probation,
                *th,
                *refractory,
            ));
            write_results(&opts.out, s, det, scores, *th, *refractory)?;
            scored.push(ScoredFile {
                detector: det.to_string(),
                file: s.key.clone(),
                category: s.category.clone(),
                probation: s.probation,
                windows: s.windows.clone(),
                scores: scores.clone(),
                refractory: *refractory,
            });
        }
        let svg = plot_svg(s, &per_det[1].1, opts.threshold);
        std::fs::write(
            opts.out
                .join("plots")
                .join(format!("{}_{}.svg", s.category, s.name)),
            svg,
        )?;
    }
    let summary = summaries(&files);
    let mut report = NabReport {
        threshold: opts.threshold,
        files,
        summary,
        scored,
        optimize_secs: None,
        oracle: Vec::new(),
    };
    if opts.optimize {
        let t0 = std::time::Instant::now();
        report.apply_optimize();
        report.optimize_secs = Some(t0.elapsed().as_secs_f64());
    }
    write_csvs(&opts.out, &report)?;
    Ok(report)
}

/// NAB's name for a detector: no `_` (NAB splits result file names on `_`).
pub fn nab_detector_name(det: &str) -> String {
    det.replace('_', "")
}

/// Writes `OUT/results/<detectorname>/<category>/<detectorname>_<name>.csv` with NAB's
/// results header `timestamp,value,anomaly_score,label`: timestamps and values as in the
/// input file, the detector's raw score, label 1 inside a labelled window. Debounced
/// detectors: points the debounce suppresses at threshold `th` are written as 0, so NAB's
/// scorer at `th` sees exactly the detections scored here.
fn write_results(
    out: &Path,
    s: &Series,
    det: &str,
    scores: &[f64],
    th: f64,
    refractory: usize,
) -> Result<()> {
    let name = nab_detector_name(det);
    let dir = out.join("results").join(&name).join(&s.category);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let fired = debounce(scores, th, refractory);
    let mut label = vec![0u8; scores.len()];
    for &(l, r) in &s.windows {
        label[l..=r.min(scores.len() - 1)].fill(1);
    }
    let mut csv = String::with_capacity(scores.len() * 48);
    csv.push_str("timestamp,value,anomaly_score,label\n");
    for t in 0..scores.len() {
        let suppressed = refractory > 0 && scores[t] >= th && !fired[t];
        let sc = if suppressed { 0.0 } else { scores[t] };
        let _ = writeln!(
            csv,
            "{},{},{},{}",
            s.stamps[t], s.value_text[t], sc, label[t]
        );
    }
    let path = dir.join(format!("{name}_{}.csv", s.name));
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))
}

/// `summary.csv` header: the original columns, NAB's other two profiles, then (with
/// `--optimize`) threshold and score per profile.
fn summary_header(optimize: bool) -> String {
    let mut h = String::from(
        "detector,scope,files,mean_precision,mean_recall,mean_f1,micro_precision,micro_recall,micro_f1,nab_standard,nab_low_fp,nab_low_fn",
    );
    if optimize {
        for p in NAB_PROFILES {
            let _ = write!(h, ",opt_threshold_{c},opt_{c}", c = p.column);
        }
    }
    h
}

fn write_csvs(out: &Path, report: &NabReport) -> Result<()> {
    let mut csv = String::from("detector,file,precision,recall,f1\n");
    for r in &report.files {
        let _ = writeln!(
            csv,
            "{},{},{:.4},{:.4},{:.4}",
            r.detector, r.file, r.precision, r.recall, r.f1
        );
    }
    for s in report.summary.iter().filter(|s| s.scope == "ALL") {
        let _ = writeln!(
            csv,
            "{},ALL,{:.4},{:.4},{:.4}",
            s.detector, s.micro_precision, s.micro_recall, s.micro_f1
        );
    }
    std::fs::write(out.join("anomaly.csv"), csv)?;
    let mut sc = summary_header(report.optimize_secs.is_some());
    sc.push('\n');
    for s in &report.summary {
        let _ = write!(
            sc,
            "{},{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.2},{:.2},{:.2}",
            s.detector,
            s.scope,
            s.files,
            s.mean_precision,
            s.mean_recall,
            s.mean_f1,
            s.micro_precision,
            s.micro_recall,
            s.micro_f1,
            s.nab[0],
            s.nab[1],
            s.nab[2]
        );
        if report.optimize_secs.is_some() {
            for o in s.opt.iter().flatten() {
                let _ = write!(sc, ",{},{:.2}", o.threshold, o.score);
            }
        }
        sc.push('\n');
    }
    std::fs::write(out.join("summary.csv"), sc)?;
    Ok(())
}

// ---------------------------------------------------------------- threshold optimisation

/// The threshold NAB's optimiser reports when no detection scores best (its sweep starts
/// there); above every score here.
pub const NO_DETECTION_THRESHOLD: f64 = 1.1;

/// Raw-score differences below this are ties in [`optimize`].
pub const OPT_TIE: f64 = 1e-9;

/// Max segment tree over scores (NaN as −∞): the first index from `j` with a score ≥ `v`.
struct MaxTree {
    size: usize,
    n: usize,
    t: Vec<f64>,
}

impl MaxTree {
    fn new(v: &[f64]) -> Self {
        let size = v.len().next_power_of_two().max(1);
        let mut t = vec![f64::NEG_INFINITY; 2 * size];
        for (i, &x) in v.iter().enumerate() {
            t[size + i] = if x.is_nan() { f64::NEG_INFINITY } else { x };
        }
        for i in (1..size).rev() {
            t[i] = t[2 * i].max(t[2 * i + 1]);
        }
        Self {
            size,
            n: v.len(),
            t,
        }
    }

    fn first_at_least(&self, j: usize, v: f64) -> Option<usize> {
        if j >= self.n {
            return None;
        }
        let mut i = j + self.size;
        loop {
            if self.t[i] >= v {
                while i < self.size {
                    i = if self.t[2 * i] >= v { 2 * i } else { 2 * i + 1 };
                }
                return (i - self.size < self.n).then_some(i - self.size);
            }
            while i & 1 == 1 {
                i >>= 1;
            }
            if i == 0 {
                return None;
            }
            i += 1;
        }
    }
}

/// One file's score parts at each of its distinct finite scores `v`, descending: the
/// detections at threshold `v` (score ≥ `v`, debounced as [`debounce`] does with the file's
/// refractory). Also returns the parts with no detection.
fn file_steps(f: &ScoredFile) -> (NabParts, Vec<(f64, NabParts)>) {
    let (points, scored) = sweep_points(f.scores.len(), &f.windows, f.probation);
    let none = NabParts {
        windows: scored,
        ..NabParts::default()
    };
    if f.refractory == 0 {
        return (none, steps_plain(&f.scores, &points, none));
    }
    let mut vals: Vec<f64> = f.scores.iter().copied().filter(|v| v.is_finite()).collect();
    vals.sort_by(|a, b| b.total_cmp(a));
    vals.dedup_by(|a, b| a == b);
    let tree = MaxTree::new(&f.scores);
    let gap = f.refractory.max(1);
    let steps = vals
        .into_iter()
        .map(|v| {
            let mut j = 0;
            let fired = std::iter::from_fn(|| {
                let i = tree.first_at_least(j, v)?;
                j = i + gap;
                Some(i)
            });
            (v, parts_of(&points, scored, fired))
        })
        .collect();
    (none, steps)
}

/// Without debounce the detections only grow as the threshold falls: NAB's
/// `calcScoreByThreshold`, points taken in descending score order.
fn steps_plain(scores: &[f64], points: &[SweepPoint], none: NabParts) -> Vec<(f64, NabParts)> {
    let mut order: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i].is_finite() && points[i] != SweepPoint::Probation)
        .collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut best: Vec<f64> = Vec::new();
    let mut p = none;
    let mut out = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        match points[i] {
            SweepPoint::Window { id, tp } => {
                if best.len() <= id {
                    best.resize(id + 1, f64::NEG_INFINITY);
                }
                if best[id] == f64::NEG_INFINITY {
                    p.detected += 1;
                    p.tp += tp;
                    best[id] = tp;
                } else if tp > best[id] {
                    p.tp += tp - best[id];
                    best[id] = tp;
                }
            }
            SweepPoint::Outside { fp } => p.fp += fp,
            SweepPoint::Probation => {}
        }
        if order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]) {
            out.push((scores[i], p));
        }
    }
    out
}

/// NAB's optimiser over `files` (one detector's): for each profile of [`NAB_PROFILES`],
/// the threshold whose summed raw score over the files is highest, and that score. The
/// candidates are every distinct score of the files (the score only changes there) and
/// [`NO_DETECTION_THRESHOLD`]; ties (within [`OPT_TIE`], float noise of the running sums)
/// go to the higher threshold, as in NAB (a stable sort of thresholds swept downwards).
/// Debounced files are re-debounced at each candidate.
pub fn optimize(files: &[&ScoredFile]) -> [(f64, f64); 3] {
    let mut cur = Vec::with_capacity(files.len());
    let mut events: Vec<(f64, usize, NabParts)> = Vec::new();
    let mut top = f64::NEG_INFINITY;
    for (fi, f) in files.iter().enumerate() {
        let (none, steps) = file_steps(f);
        cur.push(none);
        top = steps.first().map_or(top, |s| top.max(s.0));
        events.extend(steps.into_iter().map(|(v, p)| (v, fi, p)));
    }
    events.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut total = NabParts::default();
    cur.iter().for_each(|p| total.add(p));
    let none_th = if top < NO_DETECTION_THRESHOLD {
        NO_DETECTION_THRESHOLD
    } else {
        top + top.abs().max(1.0)
    };
    let mut best = NAB_PROFILES.map(|p| (none_th, total.raw(&p)));
    for (k, &(v, fi, p)) in events.iter().enumerate() {
        let old = cur[fi];
        total.detected = total.detected + p.detected - old.detected;
        total.tp += p.tp - old.tp;
        total.fp += p.fp - old.fp;
        cur[fi] = p;
        if events.get(k + 1).is_none_or(|e| e.0 != v) {
            for (b, prof) in best.iter_mut().zip(NAB_PROFILES.iter()) {
                let raw = total.raw(prof);
                if raw > b.1 + OPT_TIE {
                    *b = (v, raw);
                }
            }
        }
    }
    best
}

/// An upper bound on what any per-series threshold could score: each file of `files` (one
/// detector's) at its own best threshold per profile ([`optimize`] on that file alone), the
/// raw scores summed and normalised over the corpus as NAB does. A detector whose oracle is
/// below a bar cannot reach it by threshold choice, only by better scores.
pub fn per_file_oracle(files: &[&ScoredFile]) -> [f64; 3] {
    let mut raw = [0.0; 3];
    let mut windows = NabParts::default();
    for f in files {
        windows.add(&file_steps(f).0);
        for (r, (_, best)) in raw.iter_mut().zip(optimize(&[f])) {
            *r += best;
        }
    }
    std::array::from_fn(|i| {
        let p = &NAB_PROFILES[i];
        nab_normalise(raw[i], windows.null(p), windows.perfect(p))
    })
}

impl NabReport {
    /// Sets each summary's [`Summary::opt`]: per detector and profile, [`optimize`] over all
    /// files of the run, then every scope re-scored at that threshold.
    pub fn apply_optimize(&mut self) {
        for det in DETECTORS {
            let mine: Vec<&ScoredFile> = self.scored.iter().filter(|s| s.detector == det).collect();
            if mine.is_empty() {
                continue;
            }
            let best = optimize(&mine);
            self.oracle.push((det, per_file_oracle(&mine)));
            let mut opt: Vec<[OptScore; 3]> = Vec::new();
            for (pi, &(th, _)) in best.iter().enumerate() {
                let rs: Vec<FileResult> = mine.iter().map(|s| s.evaluate_at(th)).collect();
                let scopes = summaries(&rs);
                if opt.is_empty() {
                    opt = vec![
                        [OptScore {
                            threshold: 0.0,
                            score: 0.0
                        }; 3];
                        scopes.len()
                    ];
                }
                for (o, s) in opt.iter_mut().zip(&scopes) {
                    o[pi] = OptScore {
                        threshold: th,
                        score: s.nab[pi],
                    };
                }
            }
            let mine_summaries = self.summary.iter_mut().filter(|s| s.detector == det);
            for (s, o) in mine_summaries.zip(opt) {
                s.opt = Some(o);
            }
        }
    }
}

/// Prints, per forest detector, the figures over thresholds 0.30..0.90 and the score
/// quantiles outside and inside the labelled windows (for choosing a threshold).
pub fn print_sweep(report: &NabReport) {
    let ths: Vec<f64> = (30..=90).map(|i| i as f64 / 100.0).collect();
    for det in [
        "forest",
        "forest_debounced",
        "forest_pooled",
        "likelihood",
        "likelihood_debounced",
    ] {
        println!("sweep {det}: threshold mean_P mean_R mean_F1 micro_F1 NAB");
        for (th, s) in report.sweep(det, &ths) {
            println!(
                "  {th:.2} {:.3} {:.3} {:.3} {:.3} {:.1}",
                s.mean_precision, s.mean_recall, s.mean_f1, s.micro_f1, s.nab[0]
            );
        }
        let qs = [0.5, 0.9, 0.99, 0.999, 1.0];
        let (o, i) = report.score_quantiles(det, &qs);
        println!("  quantiles {qs:?}\n  outside windows {o:.3?}\n  inside windows  {i:.3?}");
    }
}

/// Prints the summary table (Markdown) to stdout, and with `optimize` the optimised one.
pub fn print_report(r: &NabReport) {
    println!("forest threshold {}", r.threshold);
    println!("| detector | scope | files | mean P | mean R | mean F1 | micro F1 | NAB standard | NAB low FP | NAB low FN |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for s in &r.summary {
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} |",
            s.detector,
            s.scope,
            s.files,
            s.mean_precision,
            s.mean_recall,
            s.mean_f1,
            s.micro_f1,
            s.nab[0],
            s.nab[1],
            s.nab[2]
        );
    }
    let Some(secs) = r.optimize_secs else {
        return;
    };
    println!(
        "\noptimised thresholds (per detector and profile, over all {} files; {secs:.2} s)",
        r.summary
            .iter()
            .find(|s| s.scope == "ALL")
            .map_or(0, |s| s.files)
    );
    println!("| detector | threshold standard | NAB standard | threshold low FP | NAB low FP | threshold low FN | NAB low FN |");
    println!("|---|---|---|---|---|---|---|");
    for s in r.summary.iter().filter(|s| s.scope == "ALL") {
        let Some(o) = &s.opt else { continue };
        println!(
            "| {} | {:.4} | {:.1} | {:.4} | {:.1} | {:.4} | {:.1} |",
            s.detector,
            o[0].threshold,
            o[0].score,
            o[1].threshold,
            o[1].score,
            o[2].threshold,
            o[2].score
        );
    }
    println!(
        "\nper-file oracle (each file at its own best threshold: a bound on threshold choice)"
    );
    println!("| detector | NAB standard | NAB low FP | NAB low FN |");
    println!("|---|---|---|---|");
    for (det, o) in &r.oracle {
        println!("| {det} | {:.1} | {:.1} | {:.1} |", o[0], o[1], o[2]);
    }
}

// ---------------------------------------------------------------- plot

fn plot_svg(s: &Series, score: &[f64], threshold: f64) -> String {
    const W: f64 = 1200.0;
    const L: f64 = 50.0;
    const PW: f64 = W - L - 10.0;
    const VT: f64 = 30.0;
    const VH: f64 = 220.0;
    const ST: f64 = 280.0;
    const SH: f64 = 110.0;
    let n = s.values.len().max(2);
    let x = |i: usize| L + PW * i as f64 / (n - 1) as f64;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in s.values.iter().filter(|v| v.is_finite()) {
        lo = lo.min(v as f64);
        hi = hi.max(v as f64);
    }
    if !(hi > lo) {
        hi = lo + 1.0;
    }
    let vy = |v: f64| VT + VH * (1.0 - (v - lo) / (hi - lo));
    let sy = |v: f64| ST + SH * (1.0 - v.clamp(0.0, 1.0));
    let mut o = String::new();
    let _ = writeln!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="420" viewBox="0 0 {W} 420" font-family="sans-serif" font-size="11">"##
    );
    let _ = writeln!(o, r##"<rect width="{W}" height="420" fill="white"/>"##);
    let _ = writeln!(
        o,
        r##"<text x="{L}" y="18" font-size="13">{} — value (top), forest score (bottom); red: labelled windows, grey: probation</text>"##,
        s.key
    );
    let _ = writeln!(
        o,
        r##"<rect x="{L}" y="{VT}" width="{:.1}" height="{:.1}" fill="#ddd" opacity="0.6"/>"##,
        x(s.probation) - L,
        ST + SH - VT
    );
    for &(l, r) in &s.windows {
        let _ = writeln!(
            o,
            r##"<rect x="{:.1}" y="{VT}" width="{:.1}" height="{:.1}" fill="#f4a6a6" opacity="0.5"/>"##,
            x(l),
            (x(r) - x(l)).max(1.0),
            ST + SH - VT
        );
    }
    // min/max per pixel column
    let cols = PW as usize;
    let mut line = |vals: &dyn Fn(usize) -> Option<f64>, map: &dyn Fn(f64) -> f64, colour: &str| {
        let mut pts = String::new();
        for c in 0..cols {
            let a = c * n / cols;
            let b = ((c + 1) * n / cols).max(a + 1).min(n);
            let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
            for i in a..b.min(s.values.len()) {
                if let Some(v) = vals(i) {
                    mn = mn.min(v);
                    mx = mx.max(v);
                }
            }
            if mn.is_finite() {
                let px = L + c as f64;
                let _ = write!(pts, "{px:.1},{:.1} {px:.1},{:.1} ", map(mn), map(mx));
            }
        }
        let _ = writeln!(
            o,
            r##"<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1"/>"##
        );
    };
    line(
        &|i| {
            let v = s.values[i];
            v.is_finite().then_some(v as f64)
        },
        &vy,
        "#1f4e9c",
    );
    line(&|i| Some(score[i]), &sy, "#333");
    let _ = writeln!(
        o,
        r##"<line x1="{L}" x2="{:.1}" y1="{t:.1}" y2="{t:.1}" stroke="#c00" stroke-dasharray="4 3"/>"##,
        L + PW,
        t = sy(threshold)
    );
    for (i, &sc) in score.iter().enumerate() {
        if sc >= threshold {
            let _ = writeln!(
                o,
                r##"<line x1="{p:.1}" x2="{p:.1}" y1="{:.1}" y2="{:.1}" stroke="#c00"/>"##,
                ST - 8.0,
                ST - 2.0,
                p = x(i)
            );
        }
    }
    let _ = writeln!(o, r##"<text x="4" y="{:.1}">{hi:.3}</text>"##, VT + 10.0);
    let _ = writeln!(o, r##"<text x="4" y="{:.1}">{lo:.3}</text>"##, VT + VH);
    let _ = writeln!(
        o,
        r##"<text x="4" y="{:.1}">1</text><text x="4" y="{:.1}">0</text>"##,
        ST + 8.0,
        ST + SH
    );
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="{:.1}" fill="#c00">threshold {threshold}</text>"##,
        L + PW - 110.0,
        sy(threshold) - 3.0
    );
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_exact() {
        // 20 points, windows [5,7] and [12,14], start 0
        let mut a = vec![false; 20];
        let w = [(5, 7), (12, 14)];
        assert_eq!(
            window_counts(&a, &w, 0),
            WindowCounts {
                windows: 2,
                caught: 0,
                fp_events: 0
            }
        );
        a[6] = true; // catches window 1
        a[7] = true; // same window
        a[9] = true; // FP event 1
        a[10] = true; // same event
        a[17] = true; // FP event 2
        a[19] = true; // FP event 3
        let c = window_counts(&a, &w, 0);
        assert_eq!(
            c,
            WindowCounts {
                windows: 2,
                caught: 1,
                fp_events: 3
            }
        );
        let (p, r, f) = prf(c);
        assert!((p - 0.25).abs() < 1e-12);
        assert!((r - 0.5).abs() < 1e-12);
        assert!((f - 2.0 * 0.25 * 0.5 / 0.75).abs() < 1e-12);
        // an alarm run that leaves a window: the outside part is one FP event
        let mut b = vec![false; 20];
        for i in 13..=16 {
            b[i] = true;
        }
        assert_eq!(
            window_counts(&b, &w, 0),
            WindowCounts {
                windows: 2,
                caught: 1,
                fp_events: 1
            }
        );
        // start hides the first window and early alarms
        assert_eq!(
            window_counts(&a, &w, 8),
            WindowCounts {
                windows: 1,
                caught: 0,
                fp_events: 3
            }
        );
        assert_eq!(
            prf(WindowCounts {
                windows: 0,
                caught: 0,
                fp_events: 0
            }),
            (1.0, 1.0, 1.0)
        );
        assert_eq!(
            prf(WindowCounts {
                windows: 3,
                caught: 0,
                fp_events: 0
            }),
            (0.0, 0.0, 0.0)
        );
    }

    // scaledSigmoid(y) = 2/(1+e^{5y}) - 1 = tanh(-2.5 y)
    fn ss(y: f64) -> f64 {
        (-2.5 * y).tanh()
    }

    #[test]
    fn nab_score_hand_built() {
        assert!((scaled_sigmoid(-1.0) - 0.9866142981514305).abs() < 1e-12);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
        let w = [(40usize, 49usize)];
        let n = 100;
        let mut a = vec![false; n];
        // nothing: null score
        assert_eq!(nab_score(&a, &w, 15), (-1.0, -1.0, 1.0));
        // earliest detection = perfect
        a[40] = true;
        let (raw, _, _) = nab_score(&a, &w, 15);
        assert!((raw - 1.0).abs() < 1e-12);
        // latest detection only
        a[40] = false;
        a[49] = true;
        let (raw, _, _) = nab_score(&a, &w, 15);
        assert!((raw - ss(-0.1) / ss(-1.0)).abs() < 1e-12, "{raw}");
        // two detections in the window: the best counts
        a[45] = true;
        let (raw, _, _) = nab_score(&a, &w, 15);
        assert!((raw - ss(-0.5) / ss(-1.0)).abs() < 1e-12, "{raw}");
        // FP before any window (after probation): -0.11; inside probation: ignored
        a[20] = true;
        a[10] = true;
        let (raw2, _, _) = nab_score(&a, &w, 15);
        assert!((raw2 - (raw - 0.11)).abs() < 1e-12);
        // FP after the window: 0.11 * scaledSigmoid(|59-49| / (10-1))
        a[59] = true;
        let (raw3, _, _) = nab_score(&a, &w, 15);
        assert!((raw3 - (raw2 + 0.11 * ss(10.0 / 9.0))).abs() < 1e-12);
        // a window entirely inside probation is not scored
        assert_eq!(nab_score(&vec![false; n], &[(2, 8)], 15), (0.0, 0.0, 0.0));
        assert!((nab_normalise(-1.0, -1.0, 1.0)).abs() < 1e-12);
        assert!((nab_normalise(1.0, -1.0, 1.0) - 100.0).abs() < 1e-12);
        assert_eq!(nab_probation(100), 15);
        assert_eq!(nab_probation(15_000), 750);
    }

    #[test]
    fn parse_timestamps() {
        assert_eq!(parse_ts("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_ts("2014-02-14 14:27:00"), Some(1_392_388_020));
        assert_eq!(parse_ts("2014-02-14 14:27:00.000000"), Some(1_392_388_020));
        assert_eq!(parse_ts("garbage"), None);
    }

    #[test]
    fn end_to_end_one_file() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab");
        let tmp = tempfile::tempdir().unwrap();
        let nab = tmp.path().join("nab");
        std::fs::create_dir_all(nab.join("realAdExchange")).unwrap();
        std::fs::copy(
            format!("{root}/data/realAdExchange/exchange-2_cpc_results.csv"),
            nab.join("realAdExchange/exchange-2_cpc_results.csv"),
        )
        .unwrap();
        let out = tmp.path().join("out");
        let mut opts = NabEvalOptions::new(
            nab,
            format!("{root}/labels/combined_windows.json").into(),
            out.clone(),
        );
        opts.categories = Some(vec!["realAdExchange".into()]);
        let report = run_nab_eval(&opts).unwrap();
        assert_eq!(report.files.len(), DETECTORS.len());
        let csv = std::fs::read_to_string(out.join("anomaly.csv")).unwrap();
        assert!(csv.starts_with("detector,file,precision,recall,f1\n"));
        assert!(csv.contains("forest,realAdExchange/exchange-2_cpc_results.csv,"));
        assert!(csv.contains("\nforest,ALL,"));
        let input = std::fs::read_to_string(format!(
            "{root}/data/realAdExchange/exchange-2_cpc_results.csv"
        ))
        .unwrap();
        for det in DETECTORS {
            let name = nab_detector_name(det);
            assert!(!name.contains('_'));
            let p = out.join(format!(
                "results/{name}/realAdExchange/{name}_exchange-2_cpc_results.csv"
            ));
            let s = std::fs::read_to_string(&p).unwrap();
            assert!(s.starts_with("timestamp,value,anomaly_score,label\n2011-07-01 00:00:01,"));
            assert_eq!(s.lines().count(), 1 + 1624);
            // timestamps and values exactly as in the input; labels = the window's points
            for (a, b) in s.lines().zip(input.lines()).skip(1) {
                assert!(a.starts_with(&format!("{b},")), "{a} vs {b}");
            }
            let labelled = s.lines().skip(1).filter(|l| l.ends_with(",1")).count();
            let (l, r) = report.scored[0].windows[0];
            assert_eq!(labelled, r - l + 1);
            // raw scores, except the debounce's suppressed points
            let sc = report.scored.iter().find(|x| x.detector == det).unwrap();
            let written = read_results(&p).unwrap();
            let th = if det.starts_with("likelihood") {
                LIKELIHOOD_THRESHOLD
            } else if det.starts_with("forest") {
                0.65
            } else {
                0.5
            };
            let fired = debounce(&sc.scores, th, sc.refractory);
            for t in 0..written.len() {
                let expect = if sc.refractory > 0 && sc.scores[t] >= th && !fired[t] {
                    0.0
                } else {
                    sc.scores[t]
                };
                assert_eq!(written[t], expect, "{det} {t}");
            }
        }
        let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        assert!(summary.starts_with(
            "detector,scope,files,mean_precision,mean_recall,mean_f1,micro_precision,micro_recall,micro_f1,nab_standard,nab_low_fp,nab_low_fn\n"
        ));
        let svg =
            std::fs::read_to_string(out.join("plots/realAdExchange_exchange-2_cpc_results.svg"))
                .unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let r = &report.files[0];
        assert_eq!(r.windows, 1);
        assert!((0.0..=1.0).contains(&r.f1));
        print_report(&report);
    }

    /// The hand-computed fixture: `tests/fixtures/nab/` (48 points at 5 min, labels with two
    /// windows, scores in NAB's results layout), alarms at score ≥ 0.5.
    ///
    /// Probation: ⌊0.15·48⌋ = ⌊7.2⌋ = 7 points (indices 0–6). Windows: W1 = 01:00–01:45 =
    /// indices 12–21 (width 10), W2 = 02:10–02:30 = indices 26–30 (width 5).
    /// Alarms (score ≥ 0.5) and their unweighted sweep scores, scaledSigmoid(y) = 2/(1+e^{5y})−1:
    /// - i = 3 (0.9): in probation, ignored.
    /// - i = 8 (0.8): before the first window: scaledSigmoid(3) = −1, an FP: −FP.
    /// - i = 13 (0.95): W1, position −(21−13+1)/10 = −0.9: scaledSigmoid(−0.9) /
    ///   scaledSigmoid(−1) = 0.9780261147388136 / 0.9866142981514305 = 0.9912952980422967.
    /// - i = 18 (0.7): W1 again, −0.4: 0.7719269398210883 < 0.9913, does not count.
    /// - i = 22 (0.6): right after W1, |22−21|/(10−1) = 1/9: scaledSigmoid(1/9) =
    ///   −0.2708471185167214, times FP.
    /// - W2: no alarm: −FN.
    /// - i = 45 (0.75): after W2, |45−30|/(5−1) = 3.75 ≥ 3: −1, times FP.
    ///
    /// raw = TP·0.9912952980422967 − FN − FP + FP·(−0.2708471185167214) − FP; null = −2·FN,
    /// perfect = 2·TP; normalised = 100·(raw − null)/(perfect − null):
    /// - standard (1, 0.11, 1): raw = 0.9912952980422967 − 1 − 0.11 − 0.029793183036839 − 0.11
    ///   = −0.2584978849945427; 100·1.7415021150054573/4 = 43.537552875136434.
    /// - low FP (1, 0.22, 1): raw = 0.9912952980422967 − 1 − 0.22 − 0.059586366073678 − 0.22
    ///   = −0.508291068031382; 100·1.491708931968618/4 = 37.292723299215446.
    /// - low FN (1, 0.11, 2): raw = 0.9912952980422967 − 2 − 0.11 − 0.029793183036839 − 0.11
    ///   = −1.258497884994543; 100·2.741502115005457/6 = 45.691701916757616.
    #[test]
    fn nab_fixture_hand_computed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nab");
        let (_, _, ts, values) =
            read_series(Path::new(&format!("{dir}/data/fixture/tiny.csv"))).unwrap();
        assert_eq!(values.len(), 48);
        let labels = read_labels(Path::new(&format!("{dir}/labels.json"))).unwrap();
        let windows = window_indices(&labels, "fixture/tiny.csv", &ts).unwrap();
        assert_eq!(windows, vec![(12, 21), (26, 30)]);
        let probation = nab_probation(ts.len());
        assert_eq!(probation, 7);
        let scores = read_results(Path::new(&format!(
            "{dir}/results/handmade/fixture/handmade_tiny.csv"
        )))
        .unwrap();
        let alarms = debounce(&scores, 0.5, 0);
        let on: Vec<usize> = (0..48).filter(|&i| alarms[i]).collect();
        assert_eq!(on, vec![3, 8, 13, 18, 22, 45]);
        // the sigmoid values used above
        assert!((scaled_sigmoid(-1.0) - 0.9866142981514305).abs() < 1e-15);
        assert!((scaled_sigmoid(-0.9) - 0.9780261147388136).abs() < 1e-15);
        assert!((scaled_sigmoid(1.0 / 9.0) + 0.2708471185167214).abs() < 1e-15);
        assert_eq!(scaled_sigmoid(3.75), -1.0);
        let expect = [
            (-0.2584978849945427, -2.0, 2.0, 43.537552875136434),
            (-0.508291068031382, -2.0, 2.0, 37.292723299215446),
            (-1.258497884994543, -4.0, 2.0, 45.691701916757616),
        ];
        for (p, (raw, null, perfect, norm)) in NAB_PROFILES.iter().zip(expect) {
            let (r, n, pf) = nab_score_profile(&alarms, &windows, probation, p);
            assert!((r - raw).abs() < 1e-9, "{} raw {r} vs {raw}", p.name);
            assert_eq!((n, pf), (null, perfect), "{}", p.name);
            assert!((nab_normalise(r, n, pf) - norm).abs() < 1e-9, "{}", p.name);
        }
        assert_eq!(
            nab_score(&alarms, &windows, probation).0,
            nab_score_profile(&alarms, &windows, probation, &NAB_STANDARD).0
        );
        // through the summary as well
        let fr = evaluate(
            "handmade",
            "fixture/tiny.csv",
            "fixture",
            &scores,
            &windows,
            probation,
            0.5,
            0,
        );
        let s = summarise("handmade", "ALL", &[&fr]);
        for (got, want) in s.nab.iter().zip(expect) {
            assert!((got - want.3).abs() < 1e-9);
        }
    }

    /// Brute force: every candidate threshold scored from scratch.
    fn brute_optimum(files: &[&ScoredFile]) -> [(f64, f64); 3] {
        let mut cands: Vec<f64> = files
            .iter()
            .flat_map(|f| f.scores.iter().copied())
            .collect();
        cands.push(NO_DETECTION_THRESHOLD);
        cands.sort_by(|a, b| b.total_cmp(a));
        cands.dedup();
        let mut best = [(f64::NAN, f64::NEG_INFINITY); 3];
        for &th in &cands {
            let mut parts = NabParts::default();
            for f in files {
                let a = debounce(&f.scores, th, f.refractory);
                parts.add(&nab_parts(&a, &f.windows, f.probation));
            }
            for (b, p) in best.iter_mut().zip(NAB_PROFILES.iter()) {
                if parts.raw(p) > b.1 + 1e-9 {
                    *b = (th, parts.raw(p));
                }
            }
        }
        best
    }

    #[test]
    fn optimize_matches_brute_force() {
        // scores: each real series' |value − median| scaled to [0, 1], rounded to 1e-3 so
        // that ties occur; real windows and probation
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab");
        let labels =
            read_labels(Path::new(&format!("{root}/labels/combined_windows.json"))).unwrap();
        let mut files = Vec::new();
        for key in [
            "realAdExchange/exchange-2_cpc_results.csv",
            "realAdExchange/exchange-3_cpc_results.csv",
        ] {
            let (_, _, ts, values) = read_series(Path::new(&format!("{root}/data/{key}"))).unwrap();
            let mut sorted: Vec<f64> = values.iter().map(|&v| v as f64).collect();
            let med = median(&mut sorted);
            let dev: Vec<f64> = values.iter().map(|&v| (v as f64 - med).abs()).collect();
            let top = dev.iter().cloned().fold(0.0, f64::max);
            let probation = nab_probation(ts.len());
            let scores: Vec<f64> = dev
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    if i < probation {
                        0.0
                    } else {
                        (d / top * 1000.0).round() / 1000.0
                    }
                })
                .collect();
            files.push(ScoredFile {
                detector: "dev".into(),
                file: key.into(),
                category: "realAdExchange".into(),
                probation,
                windows: window_indices(&labels, key, &ts).unwrap(),
                scores,
                refractory: 0,
            });
        }
        for refractory in [0, 1, 24, 288] {
            let fs: Vec<ScoredFile> = files
                .iter()
                .cloned()
                .map(|mut f| {
                    f.refractory = refractory;
                    f
                })
                .collect();
            let refs: Vec<&ScoredFile> = fs.iter().collect();
            let fast = optimize(&refs);
            let slow = brute_optimum(&refs);
            for ((ft, fr), (st, sr)) in fast.iter().zip(slow) {
                assert!(
                    (fr - sr).abs() < 1e-9,
                    "refractory {refractory}: {fr} vs {sr}"
                );
                assert_eq!(*ft, st, "refractory {refractory}");
            }
            // the per-file oracle: each file's brute-force optimum, normalised over both
            // files; never below the joint optimum
            let oracle = per_file_oracle(&refs);
            let mut windows = NabParts::default();
            refs.iter().for_each(|f| windows.add(&file_steps(f).0));
            for (i, p) in NAB_PROFILES.iter().enumerate() {
                let raw: f64 = refs.iter().map(|f| brute_optimum(&[f])[i].1).sum();
                let want = nab_normalise(raw, windows.null(p), windows.perfect(p));
                assert!((oracle[i] - want).abs() < 1e-9, "{} vs {want}", oracle[i]);
                let joint = nab_normalise(fast[i].1, windows.null(p), windows.perfect(p));
                assert!(
                    oracle[i] >= joint - 1e-9,
                    "oracle {} < joint {joint}",
                    oracle[i]
                );
            }
        }
    }

    #[test]
    fn categories_default_and_errors() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nab");
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = NabEvalOptions::new(
            format!("{fixture}/data").into(),
            format!("{fixture}/labels.json").into(),
            tmp.path().join("out"),
        );
        assert_eq!(categories(&opts).unwrap(), vec!["fixture".to_string()]);
        opts.categories = Some(vec!["a".into(), "b".into()]);
        assert_eq!(
            categories(&opts).unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        // a missing labels file, bad JSON, a missing folder: errors name the path
        let missing = tmp.path().join("nope.json");
        let e = format!("{:#}", read_labels(&missing).unwrap_err());
        assert!(e.contains("nope.json"), "{e}");
        let bad = tmp.path().join("bad.json");
        std::fs::write(&bad, "{\"x\": 3}").unwrap();
        let e = format!("{:#}", read_labels(&bad).unwrap_err());
        assert!(e.contains("bad.json"), "{e}");
        opts.categories = None;
        opts.nab_dir = tmp.path().join("nodata");
        let e = format!("{:#}", run_nab_eval(&opts).unwrap_err());
        assert!(e.contains("nodata"), "{e}");
        let e = format!("{:#}", read_results(&tmp.path().join("r.csv")).unwrap_err());
        assert!(e.contains("r.csv"), "{e}");
    }

    /// The agent's exported decision is the evaluation's `agent` detector, point for point:
    /// one real NAB file (5-minute CPU utilisation, regular timestamps) fed through the
    /// agent's ingest (remote-write 1.0 requests, snappy, decode, validate, append), one
    /// point per forecast step of the real loop over a real store, and the exported
    /// `N:anomalous` / `N:anomaly_score` / `N:anomaly_likelihood` read back from the
    /// rendered scrape text, against [`agent_verdicts`] on the file's values.
    #[test]
    fn agent_exports_what_the_evaluation_scores() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab/data");
        let path = format!("{root}/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv");
        let (_, _, secs, values) = read_series(Path::new(&path)).unwrap();
        let ts: Vec<i64> = secs.iter().map(|s| s * 1000).collect();
        assert!(
            ts.windows(2).all(|w| w[1] - w[0] == 300_000),
            "regular steps"
        );
        // The eval's defaults in agent terms: ring 1440 points, retrain every 60 points, season
        // one day (288 points), suppression one day; both signals (the default likelihood, and
        // the score with a threshold low enough for firings to compare).
        for anomaly in [
            "{ retrain_every: 5h }",
            "{ signal: score, threshold: 0.55, retrain_every: 5h }",
        ] {
            agent_matches_evaluation(anomaly, &ts, &values);
        }
    }

    /// `--suppress` in each file's steps: 5-minute files have 288 points a day, hourly ones 24.
    #[test]
    fn the_hold_is_counted_in_each_files_steps() {
        let h = |s: u64| Some(std::time::Duration::from_secs(s));
        assert_eq!(hold_points(None, 288), 288);
        assert_eq!(hold_points(None, 24), 24);
        assert_eq!(hold_points(h(12 * 3600), 288), 144);
        assert_eq!(hold_points(h(12 * 3600), 24), 12);
        assert_eq!(hold_points(h(2 * 86_400), 24), 48);
        assert_eq!(hold_points(h(0), 288), 0);
    }

    fn agent_matches_evaluation(anomaly: &str, ts: &[i64], values: &[f32]) {
        use crate::config::Config;
        use crate::forecast::scheduler::Scheduler;
        use crate::ingest::{Ingest, Protocol};
        use crate::proto::prometheus as pb;
        use crate::snapshot::{Snapshot, SnapshotCell};
        use crate::store::Store;
        use prost::Message as _;
        use std::sync::Arc;

        let yaml = format!(
            "storage: {{ step: 5m, retention: 5d, idle_timeout: 3650d }}\n\
             forecast:\n  - selector: '{{__name__=\"cpu\"}}'\n    model: naive\n    \
             seasons: [1d]\n    anomaly: {anomaly}\n\
             limits: {{ max_series: 10, max_future: 3650d }}\n"
        );
        let config = Arc::new(Config::from_yaml(&yaml, "test", None).unwrap());
        let spec = config.forecast[0].anomaly.clone().unwrap();
        assert_eq!((spec.retrain_every, spec.suppress), (60, 288));
        let expected = agent_verdicts(values, &[288], config.ring_len.get(), &spec, 0);

        let store = Arc::new(Store::new(&config, ts[0]));
        let telemetry = Arc::new(crate::telemetry::Telemetry::new(Vec::new()));
        let ingest = Ingest::new(store.clone(), telemetry, config.limits.clone());
        let cell = Arc::new(SnapshotCell::new(Snapshot::empty(&config)));
        let mut sched = Scheduler::new(config.clone(), store, cell, None).unwrap();
        let (mut fired, mut compared) = (0, 0);
        for (t, (&at, &v)) in ts.iter().zip(values).enumerate() {
            let req = pb::WriteRequest {
                timeseries: vec![pb::TimeSeries {
                    labels: vec![pb::Label {
                        name: "__name__".into(),
                        value: "cpu".into(),
                    }],
                    samples: vec![pb::Sample {
                        value: v as f64,
                        timestamp: at,
                    }],
                }],
                ..Default::default()
            };
            let body = snap::raw::Encoder::new()
                .compress_vec(&req.encode_to_vec())
                .unwrap();
            ingest.ingest_snappy(&body, Protocol::V1, at).unwrap();
            let step = sched.step(at);
            let mut text = String::new();
            crate::export::scrape::render_forecasts(&step.snapshot, &mut text);
            let read = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("cpu:{name}{{}} ")))
                    .map(|v| v.parse::<f64>().unwrap())
            };
            let exported = (
                read("anomaly_score"),
                read("anomaly_likelihood"),
                read("anomalous"),
            );
            let want = expected[t].map(|a| (a.score, a.likelihood, a.direction as f64));
            match (want, exported) {
                (None, (None, None, None)) => {}
                (Some((s, l, d)), (Some(es), Some(el), Some(ed))) => {
                    // The text carries the shortest repr that parses back to the same f64.
                    assert_eq!(
                        (es.to_bits(), el.to_bits(), ed),
                        (s.to_bits(), l.to_bits(), d),
                        "{anomaly}: point {t}"
                    );
                    compared += 1;
                    fired += (d != 0.0) as usize;
                }
                (w, e) => panic!("{anomaly}: point {t}: evaluation {w:?}, agent {e:?}"),
            }
        }
        assert!(
            compared > values.len() - 100,
            "{anomaly}: {compared} points compared"
        );
        assert!(
            fired >= 3,
            "{anomaly}: only {fired} firings: the comparison would be weak"
        );
    }
}
