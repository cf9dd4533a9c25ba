//! Anomaly scores: scale-free features of the newest point of a series, scored by an
//! extended isolation forest (our seeded implementation, [`eif`]). The offline NAB evaluation
//! (`promcast anomaly-eval`, in `offline::nab`) replays labelled series through the same code.
//!
//! # Features ([`FEATURES`] = 7)
//!
//! All computed from the newest point `x` and the *past* valid points before it (at most
//! [`LONG_WINDOW`] of them; `NaN` gaps are skipped). `s` is the robust scale of those past
//! values (1.4826·MAD, falling back to 1.2533·mean absolute deviation when the MAD is 0),
//! `d` the same robust scale of their first differences. Every ratio `r` goes through the
//! signed log `slog(r) = sign(r)·ln(1 + |r|)` (after clamping to ±1e6) so that heavy tails do
//! not dominate the forest's random hyperplanes. The features are therefore invariant to
//! `x → a·x + b` with `a > 0` (up to f32 rounding of the input).
//!
//! | # | name | definition |
//! |---|---|---|
//! | 0 | `z_long` | `slog((x − median(past)) / s)` |
//! | 1 | `z_short` | `slog((x − median(last 16 past)) / s)` |
//! | 2 | `diff` | `slog((x − previous valid) / d)` |
//! | 3 | `band` | `slog((x − band median) / half band width)`; no band → same as `diff` (the naive forecast) |
//! | 4 | `seasonal` | `slog((x − median of the 5 points around the same time one season ago) / s)`; no season → same as `z_long` |
//! | 5 | `level` | `slog((median(x and its 4 predecessors) − median(past)) / s)`: persistent level shifts |
//! | 6 | `volatility` | `ln((mean |Δ| of the last 8 steps) / (mean |Δ| over the past))`, clamped to ±14 |
//!
//! Each feature is finally rounded to a grid of [`FEATURE_GRID`] = 1/256 (see there why).
//!
//! Minimum history: [`MIN_HISTORY`] valid past points.

// Index loops over parallel arrays read better here; NaN-aware `!(a >= b)` is intended.
#![allow(
    clippy::needless_range_loop,
    clippy::too_many_arguments,
    clippy::neg_cmp_op_on_partial_ord
)]

pub mod detector;
pub mod eif;
pub mod likelihood;
pub mod online;
pub mod registry;

/// The detectors' modules, one per line of the list in [`crate::detectors`].
macro_rules! detector_modules {
    ($($kind:ident $name:ident [$($verdict:tt)*]),* $(,)?) => {
        $(pub mod $name;)*
    };
}
with_detectors!(detector_modules);

pub use detector::{Detector, Point, Seen, Setup, Train};
pub use online::AnomalyScorer;

/// Number of features in a [`FeatureVec`] (see the module doc for each).
pub const FEATURES: usize = 7;
/// One feature vector.
pub type FeatureVec = [f64; FEATURES];
/// Past valid points needed before [`features`] returns anything.
pub const MIN_HISTORY: usize = 16;
/// At most this many past valid points are looked at (plus one season back when given).
pub const LONG_WINDOW: usize = 256;
/// Trees per forest. 50: on NAB (all 44 files, seeds 0-4) the agent's detector scored
/// 47.4-53.7 with 25 trees, 50.4-53.5 with 50 and 50.8-53.7 with 100 (docs/ANOMALY.md).
pub const N_TREES: usize = 50;
/// Rows sampled per tree (fewer if fewer rows are given).
pub const SAMPLE_SIZE: usize = 128;
/// Fewest finite rows [`AnomalyForest::train`] accepts.
pub const MIN_TRAIN_ROWS: usize = 64;
/// More rows than this are subsampled (evenly spaced, deterministic) before training.
pub const MAX_TRAIN_ROWS: usize = 4096;

const SHORT: usize = 16;
const LEVEL: usize = 5;
const VOL: usize = 8;
const CLIP: f64 = 1e6;

#[inline]
fn slog(v: f64) -> f64 {
    if v.is_nan() {
        return 0.0;
    }
    let v = v.clamp(-CLIP, CLIP);
    v.signum() * v.abs().ln_1p()
}

/// Median of `v` (reorders it). `v` must not be empty and hold no NaN.
pub fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let k = n / 2;
    let (lo, m, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let l = lo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (l + m)
    }
}

/// Robust scale from a MAD and a mean absolute deviation (both around the median).
#[inline]
fn robust_scale(mad: f64, mean_ad: f64) -> f64 {
    if mad > 0.0 {
        1.4826 * mad
    } else if mean_ad > 0.0 {
        1.2533 * mean_ad
    } else {
        f64::MIN_POSITIVE
    }
}

/// Median and robust scale of `xs` (uses `tmp` as scratch, same length or longer).
fn med_scale(xs: &[f64], tmp: &mut [f64]) -> (f64, f64) {
    let n = xs.len();
    tmp[..n].copy_from_slice(xs);
    let med = median(&mut tmp[..n]);
    let mut sum = 0.0;
    for (t, &x) in tmp[..n].iter_mut().zip(xs) {
        *t = (x - med).abs();
        sum += *t;
    }
    let mad = median(&mut tmp[..n]);
    (med, robust_scale(mad, sum / n as f64))
}

/// Copies the newest valid values of `values` (newest first; at most [`LONG_WINDOW`], looking
/// back at most twice that) into `past`; their count, or `None` below [`MIN_HISTORY`].
fn recent_valid(values: &[f32], past: &mut [f64; LONG_WINDOW]) -> Option<usize> {
    let mut n = 0;
    for &v in values.iter().rev().take(2 * LONG_WINDOW) {
        if v.is_finite() {
            past[n] = v as f64;
            n += 1;
            if n == LONG_WINDOW {
                break;
            }
        }
    }
    (n >= MIN_HISTORY).then_some(n)
}

/// Features of the newest point of `values` (oldest → newest, at the agent's step, `NaN` =
/// gap), using only that point and the data before it. `band`: the forecast band
/// `(lower, median, upper)` made earlier for this point, if any. `season`: steps per day
/// when the history covers it. `None` when the newest point is a gap or fewer than
/// [`MIN_HISTORY`] valid past points exist.
pub fn features(
    values: &[f32],
    band: Option<(f64, f64, f64)>,
    season: Option<usize>,
) -> Option<FeatureVec> {
    let (&last, rest) = values.split_last()?;
    if !last.is_finite() {
        return None;
    }
    let x = last as f64;
    let mut past = [0f64; LONG_WINDOW];
    let n = recent_valid(rest, &mut past)?;
    let past = &past[..n];
    let prev = past[0];
    let mut tmp = [0f64; LONG_WINDOW];

    let (med, s) = med_scale(past, &mut tmp);

    let mut diffs = [0f64; LONG_WINDOW];
    let m = n - 1;
    let mut abs_sum = 0.0;
    for i in 0..m {
        diffs[i] = past[i] - past[i + 1];
        abs_sum += diffs[i].abs();
    }
    let (_, d) = med_scale(&diffs[..m], &mut tmp);
    let mean_abs_diff = abs_sum / m as f64;

    tmp[..SHORT].copy_from_slice(&past[..SHORT]);
    let med_short = median(&mut tmp[..SHORT]);

    let mut lv = [0f64; LEVEL];
    lv[0] = x;
    lv[1..].copy_from_slice(&past[..LEVEL - 1]);
    let med_level = median(&mut lv);

    let mut recent = (x - prev).abs();
    for i in 0..VOL - 1 {
        recent += diffs[i].abs();
    }
    recent /= VOL as f64;
    let volatility = if mean_abs_diff > 0.0 {
        if recent > 0.0 {
            (recent / mean_abs_diff).ln().clamp(-14.0, 14.0)
        } else {
            -14.0
        }
    } else if recent > 0.0 {
        14.0
    } else {
        0.0
    };

    let z_long = slog((x - med) / s);
    let diff = slog((x - prev) / d);
    let band_f = match band {
        Some((lo, mid, hi)) if mid.is_finite() => {
            let half = 0.5 * (hi - lo);
            if half.is_finite() && half > 0.0 {
                slog((x - mid) / half)
            } else {
                slog((x - mid) / d)
            }
        }
        _ => diff,
    };
    let seasonal = season
        .and_then(|p| {
            let len = values.len();
            // index of the same time one season ago; its ±2 neighbours must be in the past.
            let idx = (len - 1).checked_sub(p)?;
            if p < 3 || idx < 2 {
                return None;
            }
            let mut buf = [0f64; 5];
            let mut k = 0;
            for &v in &values[idx - 2..=idx + 2] {
                if v.is_finite() {
                    buf[k] = v as f64;
                    k += 1;
                }
            }
            (k > 0).then(|| slog((x - median(&mut buf[..k])) / s))
        })
        .unwrap_or(z_long);

    Some(quantise([
        z_long,
        slog((x - med_short) / s),
        diff,
        band_f,
        seasonal,
        slog((med_level - med) / s),
        volatility,
    ]))
}

/// Grid the features are rounded to (1/256). Kept from the days of the forest crate (whose
/// split-point draw practically hung when a node's min and max were a few ulps apart): our
/// own forest ([`eif`]) has no such loop. Kept because the NAB figures in docs/ANOMALY.md
/// were measured with it: dropping it is a change to measure, not a clean-up.
pub const FEATURE_GRID: f64 = 1.0 / 256.0;

#[inline]
fn quantise(mut f: FeatureVec) -> FeatureVec {
    for v in &mut f {
        *v = (*v / FEATURE_GRID).round() * FEATURE_GRID;
    }
    f
}

/// The band the offline evaluation uses when no model band exists, usable by the agent for
/// the same purpose: a naive forecast (the last valid value) with the empirical 1 % and 99 %
/// quantiles of the 1-step changes over the last [`LONG_WINDOW`] valid points added.
/// `values` are the points *before* the one the band is for. `None` with fewer than
/// [`MIN_HISTORY`] valid points.
pub fn naive_band(values: &[f32]) -> Option<(f64, f64, f64)> {
    let mut past = [0f64; LONG_WINDOW];
    let n = recent_valid(values, &mut past)?;
    let mut diffs = [0f64; LONG_WINDOW];
    let m = n - 1;
    for i in 0..m {
        diffs[i] = past[i] - past[i + 1];
    }
    let d = &mut diffs[..m];
    let q = |d: &mut [f64], p: f64| {
        let k = ((p * (m - 1) as f64).round() as usize).min(m - 1);
        *d.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
    };
    let lo = q(d, 0.01);
    let hi = q(d, 0.99);
    Some((past[0] + lo, past[0], past[0] + hi))
}

/// Errors of [`AnomalyForest::train`].
#[derive(Debug, thiserror::Error)]
pub enum AnomalyError {
    /// Fewer than [`MIN_TRAIN_ROWS`] finite rows.
    #[error("too few training rows: {got} finite rows, need at least {need}")]
    TooFewRows { got: usize, need: usize },
}

/// A trained extended isolation forest over [`FeatureVec`]s ([`N_TREES`] trees, at most
/// [`SAMPLE_SIZE`] rows each, full extension level): our own seeded implementation
/// ([`eif`]), so the same rows always give the same forest.
#[derive(Debug, Clone)]
pub struct AnomalyForest {
    forest: eif::Eif<FEATURES>,
    rows: usize,
}

/// Features as the forest sees them: clamped to ±16 and on the 1/256 grid, so exact in `f32`.
fn forest_row(r: &FeatureVec) -> [f32; FEATURES] {
    quantise(r.map(|v| v.clamp(-16.0, 16.0))).map(|v| v as f32)
}

impl AnomalyForest {
    /// Trains on the finite rows of `rows` with seed 0 (see [`AnomalyForest::train_seeded`]).
    pub fn train(rows: &[FeatureVec]) -> Result<Self, AnomalyError> {
        Self::train_seeded(rows, 0)
    }

    /// Trains on the finite rows of `rows`; more than [`MAX_TRAIN_ROWS`] are subsampled
    /// evenly. Needs at least [`MIN_TRAIN_ROWS`] finite rows. Deterministic: the trees are
    /// drawn from `seed` mixed with a hash of the rows.
    pub fn train_seeded(rows: &[FeatureVec], seed: u64) -> Result<Self, AnomalyError> {
        let finite: Vec<[f32; FEATURES]> = rows
            .iter()
            .filter(|r| r.iter().all(|v| v.is_finite()))
            .map(forest_row)
            .collect();
        if finite.len() < MIN_TRAIN_ROWS {
            return Err(AnomalyError::TooFewRows {
                got: finite.len(),
                need: MIN_TRAIN_ROWS,
            });
        }
        let data: Vec<[f32; FEATURES]> = if finite.len() > MAX_TRAIN_ROWS {
            (0..MAX_TRAIN_ROWS)
                .map(|i| finite[i * finite.len() / MAX_TRAIN_ROWS])
                .collect()
        } else {
            finite
        };
        Ok(Self {
            forest: eif::Eif::train(&data, N_TREES, SAMPLE_SIZE, seed),
            rows: data.len(),
        })
    }

    /// The isolation-forest anomaly score in [0, 1] (about 0.5 and below for typical points,
    /// towards 1 for isolated ones). Non-finite input scores 0.
    pub fn score(&self, x: &FeatureVec) -> f64 {
        if !x.iter().all(|v| v.is_finite()) {
            return 0.0;
        }
        let s = self.forest.score(&forest_row(x));
        if s.is_finite() {
            s.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Rows the forest was trained on (after subsampling).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Heap bytes of the trees (one flat node array, 36 bytes a node).
    pub fn heap_bytes(&self) -> usize {
        self.forest.heap_bytes()
    }
}

/// Whether a scored point is anomalous: `0` when `score < threshold`; otherwise `+1` when
/// `value` is above the band's upper bound, `-1` below its lower bound, and inside the band
/// `0` when `outside_only` (the detector's verdict: a high score inside the band is the
/// series' routine change), else its side of the band's median.
/// Without a band (or with non-finite bounds) the direction is taken against the band
/// median when it is finite, and is `+1` when nothing is known (pass [`naive_band`] of the
/// history for a direction before a model band exists).
pub fn anomalous(
    score: f64,
    threshold: f64,
    value: f64,
    band: Option<(f64, f64, f64)>,
    outside_only: bool,
) -> i8 {
    if !(score >= threshold) || !value.is_finite() {
        return 0;
    }
    match band {
        Some((lo, _, hi)) if lo.is_finite() && hi.is_finite() => {
            if value > hi {
                1
            } else if value < lo {
                -1
            } else if outside_only {
                0
            } else if value >= (lo + hi) / 2.0 {
                1
            } else {
                -1
            }
        }
        Some((_, mid, _)) if mid.is_finite() => {
            if value >= mid {
                1
            } else {
                -1
            }
        }
        _ => 1,
    }
}

/// What drives `N:anomalous` (defined with the configuration, which names it).
pub use crate::config::AlarmSignal;

/// The exported decision `N:anomalous` of one series: [`anomalous`] on the chosen signal,
/// then causal suppression: no point fires within `hold` steps of the last firing (an alert fires once per incident rather than once per point of it; NAB likewise
/// charges every alarm point). The agent and `anomaly-eval` both decide through this.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alarm {
    last_fired: Option<u64>,
}

impl Alarm {
    /// The decision for the point of step `step` (non-decreasing between calls): `±1` or `0`.
    pub fn decide(
        &mut self,
        step: u64,
        signal: f64,
        threshold: f64,
        value: f64,
        band: Option<(f64, f64, f64)>,
        outside_only: bool,
        hold: u64,
    ) -> i8 {
        let direction = anomalous(signal, threshold, value, band, outside_only);
        if direction == 0 {
            return 0;
        }
        if let Some(last) = self.last_fired {
            if step.saturating_sub(last) < hold {
                return 0;
            }
        }
        self.last_fired = Some(step);
        direction
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: &str = "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv";

    fn load(file: &str) -> Vec<f32> {
        crate::test_data::nab(file)
    }

    #[test]
    fn features_use_only_past_data() {
        let v = load(CPU);
        let n = 600;
        let before: Vec<_> = (20..n)
            .map(|t| features(&v[..=t], naive_band(&v[..t]), Some(288)))
            .collect();
        let mut w = v.clone();
        for x in &mut w[n..n + 50] {
            *x *= 10.0;
        }
        w[n] = f32::NAN;
        for (i, t) in (20..n).enumerate() {
            let a = features(&w[..=t], naive_band(&w[..t]), Some(288));
            assert_eq!(a, before[i], "t={t}");
        }
    }

    #[test]
    fn gaps_and_short_history_give_none() {
        let mut v: Vec<f32> = (0..40).map(|i| (i as f32).sin()).collect();
        assert!(features(&v[..MIN_HISTORY], None, None).is_none());
        assert!(features(&v[..=MIN_HISTORY], None, None).is_some());
        v[39] = f32::NAN;
        assert!(features(&v, None, None).is_none());
        // gaps in the past are skipped
        v[39] = 1.0;
        v[30] = f32::NAN;
        let f = features(&v, None, Some(24)).unwrap();
        assert!(f.iter().all(|x| x.is_finite()));
        assert!(features(&[], None, None).is_none());
    }

    #[test]
    fn features_are_scale_and_shift_invariant() {
        let v = load(CPU);
        let a = 8.0f32; // power of two: exact in f32
        let b = 3.0f32;
        let w: Vec<f32> = v.iter().map(|x| a * x + b).collect();
        for t in [300usize, 777, 1500, 3000] {
            let bv = naive_band(&v[..t]);
            let bw = naive_band(&w[..t]);
            let fv = features(&v[..=t], bv, Some(288)).unwrap();
            let fw = features(&w[..=t], bw, Some(288)).unwrap();
            for k in 0..FEATURES {
                assert!(
                    (fv[k] - fw[k]).abs() < 1e-3,
                    "t={t} k={k}: {fv:?} vs {fw:?}"
                );
            }
        }
    }

    #[test]
    fn constant_series_is_finite() {
        let v = vec![5.0f32; 100];
        let f = features(&v, None, None).unwrap();
        assert_eq!(f, [0.0; FEATURES]);
        let mut w = v.clone();
        w[99] = 6.0;
        let f = features(&w, naive_band(&w[..99]), None).unwrap();
        assert!(f.iter().all(|x| x.is_finite()));
        assert!(f[0] > 10.0);
    }

    #[test]
    fn forest_scores_in_unit_interval_and_flags_a_spike() {
        let v = load(CPU);
        let rows: Vec<FeatureVec> = (20..3000)
            .filter_map(|t| features(&v[..=t], naive_band(&v[..t]), Some(288)))
            .collect();
        // inject a spike at t = 3100
        let mut w = v.clone();
        w[3100] = w[3099] * 3.0 + 20.0;
        let spike = features(&w[..=3100], naive_band(&w[..3100]), Some(288)).unwrap();
        // Five seeds, averaged, so the property holds for the method and not one draw.
        let forests: Vec<AnomalyForest> = (0..5)
            .map(|seed| AnomalyForest::train_seeded(&rows, seed).unwrap())
            .collect();
        let mean_score =
            |x: &FeatureVec| forests.iter().map(|f| f.score(x)).sum::<f64>() / forests.len() as f64;
        for f in &forests {
            assert!(f.heap_bytes() > 0);
            assert!(rows.iter().all(|r| (0.0..=1.0).contains(&f.score(r))));
            assert!((0.0..=1.0).contains(&f.score(&spike)));
        }
        let mut sorted: Vec<f64> = rows.iter().map(mean_score).collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let s = mean_score(&spike);
        assert!(s > median + 0.1, "spike {s} vs median {median}");
        assert!(
            s > sorted[sorted.len() * 99 / 100],
            "spike {s} not above p99 {}",
            sorted[sorted.len() * 99 / 100]
        );
    }

    #[test]
    fn too_few_rows_is_an_error() {
        let rows = vec![[0.0; FEATURES]; MIN_TRAIN_ROWS - 1];
        assert!(matches!(
            AnomalyForest::train(&rows),
            Err(AnomalyError::TooFewRows { .. })
        ));
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<AnomalyForest>();
    }

    #[test]
    fn alarm_suppresses_for_hold_steps_after_firing() {
        let band = Some((0.0, 1.0, 2.0));
        let mut a = Alarm::default();
        assert_eq!(a.decide(10, 0.9, 0.65, 5.0, band, true, 3), 1);
        // within 3 steps of the firing: held
        assert_eq!(a.decide(11, 0.9, 0.65, 5.0, band, true, 3), 0);
        assert_eq!(a.decide(12, 0.9, 0.65, -5.0, band, true, 3), 0);
        // a point below the threshold never fires and does not extend the hold
        assert_eq!(a.decide(13, 0.1, 0.65, 5.0, band, true, 3), 0);
        assert_eq!(a.decide(13, 0.9, 0.65, -5.0, band, true, 3), -1);
        // hold 0 (or 1): every point may fire
        let mut b = Alarm::default();
        assert_eq!(b.decide(1, 0.9, 0.65, 5.0, band, true, 0), 1);
        assert_eq!(b.decide(2, 0.9, 0.65, 5.0, band, true, 0), 1);
        // a score over the threshold inside the band is not a firing
        assert_eq!(b.decide(3, 0.9, 0.65, 1.5, band, true, 0), 0);
        // unless the detector's verdict lets points inside the band fire
        assert_eq!(b.decide(4, 0.9, 0.65, 1.5, band, false, 0), 1);
        assert_eq!(b.decide(5, 0.9, 0.65, 0.5, band, false, 0), -1);
    }

    #[test]
    fn anomalous_direction() {
        let band = Some((1.0, 2.0, 3.0));
        assert_eq!(anomalous(0.9, 0.65, 4.0, band, true), 1);
        assert_eq!(anomalous(0.9, 0.65, 0.5, band, true), -1);
        assert_eq!(anomalous(0.9, 0.65, 2.5, band, true), 0);
        assert_eq!(anomalous(0.5, 0.65, 4.0, band, true), 0);
        assert_eq!(anomalous(0.9, 0.65, 2.5, band, false), 1);
        assert_eq!(anomalous(0.9, 0.65, 1.5, band, false), -1);
        assert_eq!(anomalous(0.9, 0.65, 4.0, None, true), 1);
        assert_eq!(
            anomalous(0.9, 0.65, 1.0, Some((f64::NAN, 2.0, f64::NAN)), true),
            -1
        );
    }
}
