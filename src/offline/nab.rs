//! `promcast anomaly-eval`: replays NAB-layout series through [`features`] and
//! [`AnomalyForest`] (only past data at each step) and scores the alarms against NAB's
//! labelled windows, next to two baselines.
//!
//! Detectors:
//! - `forest`: the agent's per-series forest: trained at the end of the probation period on
//!   the feature rows of the last `history` points (the agent's ring) and retrained every
//!   `retrain_every` points, with the same functions the agent calls
//!   ([`online::training_rows`], [`online::training_due`]). Alarm: score ≥ threshold.
//! - `forest_debounced`: the `forest` scores, but after an alarm point further alarm points
//!   are suppressed for one day of steps (the season; 288 when unknown), see [`debounce`].
//!   NAB charges every alarm point outside a window; this is the agent's `for:`/`keep_firing`
//!   alerting behaviour expressed per point.
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
/// The real NAB folders, used when no categories are given.
pub const REAL_CATEGORIES: [&str; 3] = ["realAWSCloudwatch", "realAdExchange", "realTweets"];
/// Detector names in report order.
pub const DETECTORS: [&str; 9] = [
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

/// Options of [`run_nab_eval`].
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
    /// Categories (sub-folders) to run; `None` = the three real folders.
    pub categories: Option<Vec<String>>,
    /// Points of history a forest trains on: the agent's ring length (`retention / step`).
    pub history: usize,
    /// Points between retrainings: the agent's `anomaly.retrain_every / step`.
    pub retrain_every: usize,
    /// Seed of the forests (the agent's is 0); runs with the same seed are identical.
    pub seed: u64,
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
    /// NAB standard-profile raw score and the null/perfect detectors' raw scores.
    pub nab_raw: f64,
    pub nab_null: f64,
    pub nab_perfect: f64,
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
    /// NAB standard profile, normalised: 0 = null detector, 100 = perfect.
    pub nab_score: f64,
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

/// Everything [`run_nab_eval`] measured.
#[derive(Debug, Clone)]
pub struct NabReport {
    pub threshold: f64,
    pub files: Vec<FileResult>,
    /// Per detector: `ALL` first, then one per category.
    pub summary: Vec<Summary>,
    pub scored: Vec<ScoredFile>,
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

/// NAB's scaled sigmoid: `2·sigmoid(−5·y) − 1`, and −1 from 3 on.
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

/// NAB standard profile weights.
pub const NAB_TP: f64 = 1.0;
pub const NAB_FP: f64 = 0.11;
pub const NAB_FN: f64 = 1.0;

/// NAB raw score of one file, following NAB's sweeper (`calcSweepScore` +
/// `calcScoreByThreshold`, standard profile): points before `probation` are ignored; each
/// window that reaches past the probation scores the best (earliest) detection in it,
/// `scaledSigmoid(−(r − i + 1)/width) / scaledSigmoid(−1)`, or −1 if none; each detection
/// outside windows scores `0.11·scaledSigmoid(|i − r_prev| / (width_prev − 1))` after a
/// window, `−0.11` before the first. Returns `(raw, null, perfect)` where null = −1 and
/// perfect = +1 per scored window.
pub fn nab_score(alarms: &[bool], windows: &[(usize, usize)], probation: usize) -> (f64, f64, f64) {
    let n = alarms.len();
    let max_tp = scaled_sigmoid(-1.0);
    let mut ws: Vec<(usize, usize)> = windows
        .iter()
        .map(|&(l, r)| (l, r.min(n.saturating_sub(1))))
        .filter(|&(l, r)| l <= r)
        .collect();
    ws.sort();
    let mut raw = 0.0;
    let mut scored = 0usize;
    let mut wi = 0;
    let mut prev: Option<(usize, usize)> = None; // (right index, width)
    let mut i = 0;
    while i < n {
        if wi < ws.len() && i == ws[wi].0 {
            let (l, r) = ws[wi];
            let width = (r - l + 1) as f64;
            let mut best: Option<f64> = None;
            let mut counted = false;
            for j in l..=r {
                if j < probation {
                    continue;
                }
                counted = true;
                if alarms[j] {
                    let s = scaled_sigmoid(-((r - j + 1) as f64) / width) * NAB_TP / max_tp;
                    best = Some(best.map_or(s, |b: f64| b.max(s)));
                }
            }
            if counted {
                scored += 1;
                raw += best.map_or(-NAB_FN, |b| b.max(-NAB_FN));
            }
            prev = Some((r, r - l + 1));
            wi += 1;
            i = r + 1;
            continue;
        }
        if i >= probation && alarms[i] {
            let pos = match prev {
                None => 3.0,
                Some((r, w)) => (i - r) as f64 / (w.saturating_sub(1).max(1)) as f64,
            };
            raw += scaled_sigmoid(pos) * NAB_FP;
        }
        i += 1;
    }
    (raw, -NAB_FN * scored as f64, NAB_TP * scored as f64)
}

/// Normalised NAB score of summed raw/null/perfect scores.
pub fn nab_normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    if perfect - null <= 0.0 {
        return 0.0;
    }
    100.0 * (raw - null) / (perfect - null)
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
    values: Vec<f32>,
    windows: Vec<(usize, usize)>,
    probation: usize,
    season: Option<usize>,
    rows: Vec<Option<FeatureVec>>,
    bands: Vec<Option<(f64, f64, f64)>>,
}

fn read_series(path: &Path) -> Result<(Vec<String>, Vec<i64>, Vec<f32>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    if !header.starts_with("timestamp") {
        bail!("{}: expected a timestamp,value header", path.display());
    }
    let (mut stamps, mut ts, mut vals) = (Vec::new(), Vec::new(), Vec::new());
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
        ts.push(t);
        vals.push(v as f32);
    }
    Ok((stamps, ts, vals))
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

fn load(opts: &NabEvalOptions) -> Result<Vec<Series>> {
    let labels: HashMap<String, Vec<Vec<String>>> = serde_json::from_str(
        &std::fs::read_to_string(&opts.labels)
            .with_context(|| format!("reading {}", opts.labels.display()))?,
    )
    .context("parsing the labels JSON")?;
    let cats: Vec<String> = match &opts.categories {
        Some(c) => c.clone(),
        None => REAL_CATEGORIES.iter().map(|s| s.to_string()).collect(),
    };
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
            let (stamps, ts, values) = read_series(&dir.join(&name))?;
            let mut windows = Vec::new();
            for w in labels.get(&key).map(|v| v.as_slice()).unwrap_or(&[]) {
                let (Some(a), Some(b)) = (
                    w.first().and_then(|s| parse_ts(s)),
                    w.get(1).and_then(|s| parse_ts(s)),
                ) else {
                    bail!("{key}: bad window {w:?}");
                };
                let l = ts.partition_point(|&t| t < a);
                let r = ts.partition_point(|&t| t <= b);
                if r > l {
                    windows.push((l, r - 1));
                }
            }
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

/// Log-likelihood at or above which the likelihood detectors alarm.
pub const LIKELIHOOD_THRESHOLD: f64 = 0.5;

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
    let (nab_raw, nab_null, nab_perfect) = nab_score(&alarms, windows, probation);
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
        nab_raw,
        nab_null,
        nab_perfect,
    }
}

/// Summary of `files` (all of one detector).
pub fn summarise(detector: &str, scope: &str, files: &[&FileResult]) -> Summary {
    let k = files.len().max(1) as f64;
    let mean = |f: fn(&FileResult) -> f64| files.iter().map(|r| f(r)).sum::<f64>() / k;
    let caught: usize = files.iter().map(|r| r.caught).sum();
    let windows: usize = files.iter().map(|r| r.windows).sum();
    let fp: usize = files.iter().map(|r| r.fp_events).sum();
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
        nab_score: nab_normalise(
            files.iter().map(|r| r.nab_raw).sum(),
            files.iter().map(|r| r.nab_null).sum(),
            files.iter().map(|r| r.nab_perfect).sum(),
        ),
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
                    .map(|s| {
                        evaluate(
                            detector,
                            &s.file,
                            &s.category,
                            &s.scores,
                            &s.windows,
                            s.probation,
                            th,
                            s.refractory,
                        )
                    })
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
/// `OUT/plots/<category>_<name>.svg` and `OUT/scores/<detector>/<category>/<detector>_<name>.csv`.
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
        let band = band_scores(s);
        let mad = mad_scores(s);
        let likely = likelihood_scores(&forest, s.probation);
        let per_det: [(&str, Vec<f64>, f64, usize); 9] = [
            ("forest", forest.clone(), opts.threshold, 0),
            ("forest_debounced", forest, opts.threshold, day),
            ("likelihood", likely.clone(), LIKELIHOOD_THRESHOLD, 0),
            ("likelihood_debounced", likely, LIKELIHOOD_THRESHOLD, day),
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
            // NAB layout; debounced: suppressed points written as 0 so NAB's scorer sees the
            // same detections at this threshold.
            let fired = debounce(scores, *th, *refractory);
            let dir = opts.out.join("scores").join(det).join(&s.category);
            std::fs::create_dir_all(&dir)?;
            let mut csv = String::with_capacity(scores.len() * 40);
            csv.push_str("timestamp,value,anomaly_score\n");
            for t in 0..scores.len() {
                let sc = if *refractory > 0 && !fired[t] {
                    0.0
                } else {
                    scores[t]
                };
                let _ = writeln!(csv, "{},{},{}", s.stamps[t], s.values[t], sc);
            }
            std::fs::write(dir.join(format!("{det}_{}.csv", s.name)), csv)?;
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
        let svg = plot_svg(s, &per_det[0].1, opts.threshold);
        std::fs::write(
            opts.out
                .join("plots")
                .join(format!("{}_{}.svg", s.category, s.name)),
            svg,
        )?;
    }
    let summary = summaries(&files);
    let mut csv = String::from("detector,file,precision,recall,f1\n");
    for r in &files {
        let _ = writeln!(
            csv,
            "{},{},{:.4},{:.4},{:.4}",
            r.detector, r.file, r.precision, r.recall, r.f1
        );
    }
    for s in summary.iter().filter(|s| s.scope == "ALL") {
        let _ = writeln!(
            csv,
            "{},ALL,{:.4},{:.4},{:.4}",
            s.detector, s.micro_precision, s.micro_recall, s.micro_f1
        );
    }
    std::fs::write(opts.out.join("anomaly.csv"), csv)?;
    let mut sc = String::from(
        "detector,scope,files,mean_precision,mean_recall,mean_f1,micro_precision,micro_recall,micro_f1,nab_standard\n",
    );
    for s in &summary {
        let _ = writeln!(
            sc,
            "{},{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.2}",
            s.detector,
            s.scope,
            s.files,
            s.mean_precision,
            s.mean_recall,
            s.mean_f1,
            s.micro_precision,
            s.micro_recall,
            s.micro_f1,
            s.nab_score
        );
    }
    std::fs::write(opts.out.join("summary.csv"), sc)?;
    Ok(NabReport {
        threshold: opts.threshold,
        files,
        summary,
        scored,
    })
}

/// Prints, per forest detector, the figures over thresholds 0.50..0.80 and the score
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
                s.mean_precision, s.mean_recall, s.mean_f1, s.micro_f1, s.nab_score
            );
        }
        let qs = [0.5, 0.9, 0.99, 0.999, 1.0];
        let (o, i) = report.score_quantiles(det, &qs);
        println!("  quantiles {qs:?}\n  outside windows {o:.3?}\n  inside windows  {i:.3?}");
    }
}

/// Prints the summary table (Markdown) to stdout.
pub fn print_report(r: &NabReport) {
    println!("forest threshold {}", r.threshold);
    println!("| detector | scope | files | mean P | mean R | mean F1 | micro F1 | NAB standard |");
    println!("|---|---|---|---|---|---|---|---|");
    for s in &r.summary {
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} |",
            s.detector,
            s.scope,
            s.files,
            s.mean_precision,
            s.mean_recall,
            s.mean_f1,
            s.micro_f1,
            s.nab_score
        );
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
        for det in DETECTORS {
            let p = out.join(format!(
                "scores/{det}/realAdExchange/{det}_exchange-2_cpc_results.csv"
            ));
            let s = std::fs::read_to_string(&p).unwrap();
            assert!(s.starts_with("timestamp,value,anomaly_score\n2011-07-01 00:00:01,"));
            assert_eq!(s.lines().count(), 1 + 1624);
        }
        let svg =
            std::fs::read_to_string(out.join("plots/realAdExchange_exchange-2_cpc_results.svg"))
                .unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let r = &report.files[0];
        assert_eq!(r.windows, 1);
        assert!((0.0..=1.0).contains(&r.f1));
        print_report(&report);
    }
}
