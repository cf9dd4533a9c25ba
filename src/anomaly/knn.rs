//! The conformal nearest-neighbour detector (`knn`): KNN-CAD (Burnaev & Ishimtsev,
//! arXiv:1608.04585; NAB's `knncad` detector), made causal. Each point's window of the last
//! [`DIM`] values is compared with older windows of the same series (the *reference*); its
//! nonconformity is the sum of the squared Mahalanobis distances to its [`K`] nearest
//! reference windows, and its score is the fraction of the series' recent nonconformities
//! (the *calibration*) below it: a conformal p-value, so a score of 0.999 means the same in
//! every series.
//!
//! NAB's KNN-CAD sizes everything from the file's length (its reference is the first 15% of
//! the file, at most 750 points): a look-ahead a streaming agent does not have. Here the
//! reference size `P` grows in stages as the series' history does ([`FIRST_STAGE`],
//! doubling, up to [`MAX_STAGE`] or half the ring), and at each stage the detector restarts
//! as KNN-CAD does at the end of its probation:
//! - the reference is the `P − DIM` windows before the point, fixed for `P` points, then
//!   sliding `P` points behind the newest (so a window is never compared with itself or its
//!   neighbours, and a shift stays unusual for `P` points);
//! - the metric is `(XᵀX)⁻¹` of the reference windows `X` (uncentred: a difference in level
//!   weighs less than one in shape), recomputed every `P/2` points;
//! - the calibration starts as the reference windows' leave-one-out nonconformities and then
//!   grows to the newest [`CALIBRATION`] points' ones and slides (KNN-CAD keeps one
//!   reference length, `P − DIM`: too few to tell a 1% tail);
//! - after a score of [`FIRE`] or more, the next `P/5` scores are 0.5 (one incident, one
//!   firing: KNN-CAD's own hold).
//!
//! Cost per series and point: one distance per reference window (`DIM` multiply-adds each,
//! through `d = aᵀSa + bᵀSb − 2(Sa)ᵀb` with `bᵀSb` kept per reference window), a selection
//! and a count over the calibration; `O(P·DIM²)` every `P/2` points and `O(P²·DIM)` at each
//! stage start. Memory per series: the metric (`DIM²` f64), `bᵀSb` per reference window
//! (f64) and the calibration (f32): about 24 KiB at `P` = 700 (`benches/anomaly.rs`).
//! The windows themselves are read from the ring, not kept.

use std::collections::VecDeque;

use super::detector::{Detector, Point, Seen, Setup, Train};
use super::forest::Forest;
use super::likelihood::{tail_probability, Likelihood};
use super::AlarmSignal;
use crate::config::AnomalySpec;

/// Values in a window.
pub const DIM: usize = 19;
/// Nearest reference windows summed in a nonconformity.
pub const K: usize = 27;
/// Reference size (points) of the first stage: scoring starts after this many points.
pub const FIRST_STAGE: usize = 150;
/// Largest reference size (points); also at most half the ring.
pub const MAX_STAGE: usize = 700;
/// Nonconformities the calibration keeps at most (the newest). At the default threshold
/// (0.99) about 41 of them lie above the threshold's quantile, so that quantile is estimated
/// from dozens of points rather than the handful KNN-CAD's calibration of one reference
/// length (`P − DIM` = 681) leaves. Measured on NAB (docs/ANOMALY.md): 1, 2, 3, 4, 6 and 8
/// reference lengths score 52.4, 61.4, 62.7, 63.8, 65.3 and 64.8.
pub const CALIBRATION: usize = 4096;
/// Score at or above which the detector holds its next `P/5` scores at 0.5 when the entry's
/// `signal` is the likelihood (with `signal: score`, its `threshold`, so that the hold
/// starts where the alarm fires).
pub const FIRE: f64 = 0.99;
/// Score while holding.
const HELD: f64 = 0.5;

/// The detector: per-series state for at most `limits.max_anomaly_forests` series; the
/// others are scored by the entry's pooled forest ([`Forest`] without own forests), its
/// score turned into the same scale, the tail probability of the series' own forest scores
/// ([`Likelihood`]), until a place frees. So is a series too young for the first stage
/// ([`FIRST_STAGE`] points), so that it has scores from its first points.
pub struct Knn {
    /// Largest stage the ring allows.
    max_stage: usize,
    /// Series that may hold their own state, and those that do.
    max_own: usize,
    own: usize,
    /// The pooled forests of the series beyond the limit.
    pool: Forest,
    /// Distances of the newest window to the reference (reused every call).
    scratch: Vec<f64>,
}

/// A series' state: its own ([`KnnSeries`]) or, beyond the limit, the likelihood of its
/// pooled-forest scores.
pub enum KnnState {
    Own(Box<KnnSeries>),
    Pooled(Box<Likelihood>),
}

/// One series' state (see the module doc).
pub struct KnnSeries {
    /// The stage's reference size `P` (0: not started).
    stage: usize,
    /// Points since the stage started.
    age: usize,
    /// Points since the metric was computed.
    since_metric: usize,
    /// The metric `S = (XᵀX)⁻¹`, row-major `DIM × DIM`.
    metric: Vec<f64>,
    /// `bᵀSb` of each reference window, oldest first (`NaN`: the window has a gap).
    quad: VecDeque<f64>,
    /// The calibration's nonconformities, oldest first.
    calibration: VecDeque<f32>,
    /// Scores still to hold at [`HELD`].
    hold: usize,
    /// The newest score (repeated when the same point is asked about again).
    last: Option<f64>,
    /// Before the first stage: the likelihood of the series' pooled-forest scores.
    young: Option<Box<Likelihood>>,
}

impl KnnSeries {
    fn new() -> Self {
        Self {
            stage: 0,
            age: 0,
            since_metric: 0,
            metric: Vec::new(),
            quad: VecDeque::new(),
            calibration: VecDeque::new(),
            hold: 0,
            last: None,
            young: None,
        }
    }

    /// Offsets (from the newest point, 0 = newest) of the newest reference window's end.
    fn youngest(&self) -> usize {
        self.age.min(self.stage) + 1
    }

    /// Reference windows (`P − DIM`).
    fn reference_len(&self) -> usize {
        self.stage - DIM
    }
}

/// The window of `values` that ends `offset` points before the newest, if the ring holds
/// it and it has no gap.
fn window(values: &[f32], offset: usize) -> Option<&[f32]> {
    let end = values.len().checked_sub(offset)?;
    let w = values.get(end.checked_sub(DIM)?..end)?;
    w.iter().all(|v| v.is_finite()).then_some(w)
}

/// `bᵀSb`.
fn quad_form(metric: &[f64], b: &[f32]) -> f64 {
    let mut sum = 0.0;
    for (i, &bi) in b.iter().enumerate() {
        let row = &metric[i * DIM..(i + 1) * DIM];
        let sb: f64 = row.iter().zip(b).map(|(s, &v)| s * v as f64).sum();
        sum += bi as f64 * sb;
    }
    sum
}

/// `Sa`.
fn mat_vec(metric: &[f64], a: &[f32], out: &mut [f64; DIM]) {
    for (i, o) in out.iter_mut().enumerate() {
        let row = &metric[i * DIM..(i + 1) * DIM];
        *o = row.iter().zip(a).map(|(s, &v)| s * v as f64).sum();
    }
}

/// `(XᵀX + εI)⁻¹` of the windows (rows of `X`), by Cholesky; `None` when it is not
/// positive definite (too few windows, or none).
fn inverse_gram<'a>(windows: impl Iterator<Item = &'a [f32]>) -> Option<Vec<f64>> {
    let mut g = vec![0.0f64; DIM * DIM];
    let mut n = 0;
    for w in windows {
        n += 1;
        for i in 0..DIM {
            let wi = w[i] as f64;
            for j in 0..=i {
                g[i * DIM + j] += wi * w[j] as f64;
            }
        }
    }
    if n < DIM {
        return None;
    }
    let trace: f64 = (0..DIM).map(|i| g[i * DIM + i]).sum();
    let ridge = 1e-9 * trace / DIM as f64 + f64::MIN_POSITIVE;
    // Cholesky of the lower triangle, in place: G = L Lᵀ.
    for i in 0..DIM {
        g[i * DIM + i] += ridge;
        for j in 0..=i {
            let mut s = g[i * DIM + j];
            for k in 0..j {
                s -= g[i * DIM + k] * g[j * DIM + k];
            }
            if i == j {
                if !(s > 0.0) || !s.is_finite() {
                    return None;
                }
                g[i * DIM + i] = s.sqrt();
            } else {
                g[i * DIM + j] = s / g[j * DIM + j];
            }
        }
    }
    // L⁻¹ (lower), then S = L⁻ᵀ L⁻¹.
    let mut inv = vec![0.0f64; DIM * DIM];
    for i in 0..DIM {
        inv[i * DIM + i] = 1.0 / g[i * DIM + i];
        for j in 0..i {
            let s: f64 = (j..i).map(|k| g[i * DIM + k] * inv[k * DIM + j]).sum();
            inv[i * DIM + j] = -s / g[i * DIM + i];
        }
    }
    let mut s = vec![0.0f64; DIM * DIM];
    for i in 0..DIM {
        for j in 0..=i {
            let v: f64 = (i..DIM).map(|k| inv[k * DIM + i] * inv[k * DIM + j]).sum();
            s[i * DIM + j] = v;
            s[j * DIM + i] = v;
        }
    }
    s.iter().all(|v| v.is_finite()).then_some(s)
}

/// The distances `(a − b)ᵀS(a − b) = aᵀSa + bᵀSb − 2(Sa)ᵀb` of a window `a`, given as `Sa`
/// and `aᵀSa`, to every reference window without a gap, into `out` (cleared first); the
/// reference window `skip` (its place, oldest first) left out.
fn reference_distances(
    s: &KnnSeries,
    values: &[f32],
    sa: &[f64; DIM],
    asa: f64,
    skip: Option<usize>,
    out: &mut Vec<f64>,
) {
    out.clear();
    let young = s.youngest();
    let n = s.quad.len();
    for (k, &q) in s.quad.iter().enumerate() {
        if !q.is_finite() || skip == Some(k) {
            continue;
        }
        let Some(b) = window(values, young + n - 1 - k) else {
            continue;
        };
        let cross: f64 = sa.iter().zip(b).map(|(x, &v)| x * v as f64).sum();
        out.push((asa + q - 2.0 * cross).max(0.0));
    }
}

/// Sum of the `k` smallest of `d` (reorders `d`).
fn sum_smallest(d: &mut [f64], k: usize) -> f64 {
    let k = k.min(d.len());
    if k == 0 {
        return 0.0;
    }
    if k < d.len() {
        d.select_nth_unstable_by(k - 1, f64::total_cmp);
    }
    d[..k].iter().sum()
}

impl Knn {
    /// Starts stage `stage` at the newest point of `values`: the reference is the
    /// `stage − DIM` windows before it, the metric theirs, the calibration their
    /// leave-one-out nonconformities.
    fn start_stage(&mut self, s: &mut KnnSeries, values: &[f32], stage: usize) {
        s.stage = stage;
        s.age = 0;
        s.hold = 0;
        s.calibration.clear();
        self.compute_metric(s, values);
        // Leave-one-out nonconformities of the reference windows.
        let young = s.youngest();
        let n = s.quad.len();
        let mut sb = [0.0f64; DIM];
        for i in 0..n {
            let (Some(b), true) = (window(values, young + n - 1 - i), s.quad[i].is_finite())
            else {
                continue;
            };
            mat_vec(&s.metric, b, &mut sb);
            reference_distances(s, values, &sb, s.quad[i], Some(i), &mut self.scratch);
            if self.scratch.len() >= K {
                s.calibration.push_back(sum_smallest(&mut self.scratch, K) as f32);
            }
        }
    }

    /// The metric from the current reference windows, and every window's `bᵀSb`. Keeps the
    /// previous metric when the new one cannot be computed (identity before any).
    fn compute_metric(&mut self, s: &mut KnnSeries, values: &[f32]) {
        let n = s.reference_len();
        let young = s.youngest();
        let offsets = (young..young + n).rev();
        match inverse_gram(offsets.clone().filter_map(|o| window(values, o))) {
            Some(m) => s.metric = m,
            None if s.metric.is_empty() => {
                s.metric = vec![0.0; DIM * DIM];
                for i in 0..DIM {
                    s.metric[i * DIM + i] = 1.0;
                }
            }
            None => {}
        }
        s.quad.clear();
        s.quad.extend(
            offsets.map(|o| window(values, o).map_or(f64::NAN, |b| quad_form(&s.metric, b))),
        );
        s.since_metric = 0;
    }

    /// The stage for a series with `points` points: the largest that they cover.
    fn stage_for(&self, points: usize) -> usize {
        let mut stage = 0;
        let mut p = FIRST_STAGE;
        loop {
            let p_capped = p.min(self.max_stage);
            if p_capped <= DIM + K || p_capped > points {
                return stage;
            }
            stage = p_capped;
            if p_capped == self.max_stage {
                return stage;
            }
            p *= 2;
        }
    }
}

impl Knn {
    /// A series beyond the limit: the pooled forest's score as a tail probability.
    fn pooled(&mut self, l: &mut Likelihood, p: &Point<'_>, train: &mut Train<'_>) -> Seen {
        let mut none = None;
        let seen = self.pool.update(&mut none, p, train);
        match seen {
            Seen::Score(v) if p.fresh => Seen::Score(tail_probability(l.update(v))),
            Seen::Score(_) => Seen::Unscored,
            other => other,
        }
    }

    /// The series' own state: learns from and scores the newest point.
    fn own(&mut self, s: &mut KnnSeries, p: &Point<'_>) -> Seen {
        let values = p.values;
        if !p.fresh {
            return match s.last {
                Some(v) if p.want_score => Seen::Score(v),
                _ => Seen::Unscored,
            };
        }
        // A new stage when the ring covers it.
        let stage = self.stage_for(values.len().max(s.stage));
        if stage > s.stage {
            self.start_stage(s, values, stage);
        } else if s.stage > 0 {
            s.age += 1;
            s.since_metric += 1;
            if s.age > s.stage {
                // The reference slides: the oldest window leaves, the one `P` points back
                // enters.
                s.quad.pop_front();
                let young = s.youngest();
                s.quad.push_back(
                    window(values, young).map_or(f64::NAN, |b| quad_form(&s.metric, b)),
                );
            }
            if s.since_metric >= s.stage / 2 {
                self.compute_metric(s, values);
            }
        }
        if s.stage == 0 {
            return Seen::Unscored;
        }
        let Some(a) = window(values, 0) else {
            s.last = None;
            return Seen::Unscored;
        };
        // Distances to the reference: aᵀSa + bᵀSb − 2 (Sa)ᵀb.
        let mut sa = [0.0f64; DIM];
        mat_vec(&s.metric, a, &mut sa);
        let asa: f64 = sa.iter().zip(a).map(|(x, &v)| x * v as f64).sum();
        reference_distances(s, values, &sa, asa, None, &mut self.scratch);
        if self.scratch.len() < K || s.calibration.is_empty() {
            s.last = None;
            return Seen::Unscored;
        }
        let ncm = sum_smallest(&mut self.scratch, K) as f32;
        let below = s.calibration.iter().filter(|&&c| c < ncm).count();
        let p_value = below as f64 / s.calibration.len() as f64;
        if s.calibration.len() >= CALIBRATION {
            s.calibration.pop_front();
        }
        s.calibration.push_back(ncm);
        let fire = match p.spec.signal {
            AlarmSignal::Score => p.spec.threshold,
            AlarmSignal::Likelihood => FIRE,
        };
        let score = if s.hold > 0 {
            s.hold -= 1;
            HELD
        } else {
            if p_value >= fire {
                s.hold = s.stage / 5;
            }
            p_value
        };
        s.last = Some(score);
        if p.want_score {
            Seen::Score(score)
        } else {
            Seen::Unscored
        }
    }
}

impl Detector for Knn {
    type Series = KnnState;

    fn new(setup: &Setup) -> Self {
        Self {
            max_stage: MAX_STAGE.min(setup.history.saturating_sub(1) / 2),
            max_own: setup.max_series_models,
            own: 0,
            pool: Forest::new(&Setup {
                max_series_models: 0,
                ..*setup
            }),
            scratch: Vec::with_capacity(MAX_STAGE),
        }
    }

    fn series(&mut self) -> Self::Series {
        KnnState::Pooled(Box::default())
    }

    fn update(&mut self, s: &mut Self::Series, p: &Point<'_>, train: &mut Train<'_>) -> Seen {
        if matches!(s, KnnState::Pooled(_)) && self.own < self.max_own {
            // A place is free: the series' own state, from its ring.
            *s = KnnState::Own(Box::new(KnnSeries::new()));
            self.own += 1;
        }
        match s {
            KnnState::Own(own) => {
                let seen = self.own(own, p);
                if own.stage > 0 {
                    own.young = None;
                    return seen;
                }
                // Too young for a reference: the pooled forest, as beyond the limit.
                let young = own.young.get_or_insert_with(Box::default);
                self.pooled(young, p, train)
            }
            KnnState::Pooled(l) => self.pooled(l, p, train),
        }
    }

    fn forget(&mut self, s: &Self::Series) {
        if matches!(s, KnnState::Own(_)) {
            self.own -= 1;
        }
    }

    fn finish_step(&mut self, step: u64, specs: &[Option<AnomalySpec>], train: &mut Train) {
        self.pool.finish_step(step, specs, train);
    }

    fn has_own_model(s: &Self::Series) -> bool {
        matches!(s, KnnState::Own(own) if own.stage > 0)
    }

    fn shared_models(&self) -> usize {
        self.pool.shared_models()
    }

    fn series_bytes(s: &Self::Series) -> usize {
        match s {
            KnnState::Own(s) => {
                std::mem::size_of::<KnnSeries>()
                    + s.metric.capacity() * 8
                    + s.quad.capacity() * 8
                    + s.calibration.capacity() * 4
            }
            KnnState::Pooled(_) => std::mem::size_of::<Likelihood>(),
        }
    }

    fn shared_bytes(&self) -> usize {
        self.scratch.capacity() * 8 + self.pool.shared_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::DetectorKind;
    use std::time::Instant;

    fn setup(history: usize) -> Setup {
        Setup {
            entries: 1,
            max_series_models: 1,
            history,
            seed: 0,
        }
    }

    /// Every point of `values` through a fresh detector with a ring of `history` points:
    /// the scores, and the detector and series after the last point.
    fn replay(values: &[f32], history: usize) -> (Vec<Option<f64>>, Knn, Box<KnnSeries>) {
        replay_with(values, history, FIRE)
    }

    /// The same, holding after scores of at least `threshold` (`signal: score`).
    fn replay_with(
        values: &[f32],
        history: usize,
        threshold: f64,
    ) -> (Vec<Option<f64>>, Knn, Box<KnnSeries>) {
        let spec = AnomalySpec {
            detector: DetectorKind::Knn,
            threshold,
            retrain_every: 60,
            signal: AlarmSignal::Score,
            suppress: 0,
            outside_band_only: false,
        };
        let mut knn = Knn::new(&setup(history));
        let mut s = knn.series();
        let mut stats = Default::default();
        let mut train = Train {
            deadline: Instant::now(),
            stats: &mut stats,
        };
        let scores = (0..values.len())
            .map(|t| {
                let ring = &values[(t + 1).saturating_sub(history)..=t];
                let point = Point {
                    entry: 0,
                    spec: &spec,
                    values: ring,
                    season: None,
                    band: None,
                    step: t as u64,
                    fresh: true,
                    want_score: true,
                };
                match knn.update(&mut s, &point, &mut train) {
                    Seen::Score(v) => Some(v),
                    _ => None,
                }
            })
            .collect();
        let KnnState::Own(s) = s else {
            panic!("a series within the limit holds its own state")
        };
        (scores, knn, s)
    }

    fn tweets() -> Vec<f32> {
        crate::test_data::nab("realTweets/Twitter_volume_AAPL.csv")
    }

    #[test]
    fn scores_are_p_values_from_the_first_stage_on() {
        let v = tweets();
        let (scores, _, s) = replay(&v[..3000], 1440);
        assert!(scores[..FIRST_STAGE - 1].iter().all(Option::is_none));
        assert!(scores[FIRST_STAGE - 1..].iter().all(Option::is_some));
        let scores: Vec<f64> = scores.into_iter().flatten().collect();
        assert!(scores.iter().all(|v| (0.0..=1.0).contains(v)));
        // A p-value: most points are unremarkable, a few are extreme.
        let high = scores.iter().filter(|&&v| v >= FIRE).count();
        assert!(high > 0 && high < scores.len() / 20, "{high} of {}", scores.len());
        assert_eq!(s.stage, MAX_STAGE);
        // the last stage started at point 700: its leave-one-out set, then one per point
        assert_eq!(s.calibration.len(), s.reference_len() + 3000 - 699);
    }

    #[test]
    fn scores_use_only_the_past() {
        let v = tweets();
        let n = 1200;
        let (before, ..) = replay(&v[..n], 1440);
        let mut w = v[..n + 200].to_vec();
        for x in &mut w[n..] {
            *x *= 10.0;
        }
        let (after, ..) = replay(&w, 1440);
        assert_eq!(before, after[..n]);
        // and the change is seen
        assert!(after[n..].iter().flatten().any(|&s| s >= FIRE));
    }

    #[test]
    fn the_kept_reference_is_the_rings_windows() {
        // After sliding for many points (and a metric recomputed in between), what is kept
        // per reference window is what the ring's windows give afresh.
        let v = tweets();
        for n in [600, 1400, 2203, 3001] {
            let history = 1440;
            let (_, _, s) = replay(&v[..n], history);
            let ring = &v[n.saturating_sub(history)..n];
            let young = s.youngest();
            let len = s.quad.len();
            assert_eq!(len, s.reference_len());
            for (k, &q) in s.quad.iter().enumerate() {
                let b = window(ring, young + len - 1 - k).expect("window in the ring");
                let fresh = quad_form(&s.metric, b);
                assert!((q - fresh).abs() <= 1e-9 * fresh.abs().max(1.0), "{n} {k}");
            }
        }
    }

    #[test]
    fn the_metric_inverts_the_gram_matrix() {
        let v = tweets();
        let windows: Vec<&[f32]> = (0..300).map(|i| &v[i..i + DIM]).collect();
        let s = inverse_gram(windows.iter().copied()).unwrap();
        for i in 0..DIM {
            for j in 0..DIM {
                let g_row: Vec<f64> = (0..DIM)
                    .map(|k| windows.iter().map(|w| w[i] as f64 * w[k] as f64).sum())
                    .collect();
                let v: f64 = (0..DIM).map(|k| g_row[k] * s[k * DIM + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-6, "({i},{j}) {v}");
            }
        }
        // too few windows: none
        assert!(inverse_gram(windows[..DIM - 1].iter().copied()).is_none());
    }

    #[test]
    fn young_series_and_those_beyond_the_limit_are_scored_by_the_pool() {
        use crate::anomaly::online::{AnomalyScorer, Newest};
        use crate::store::SeriesId;
        let spec = AnomalySpec {
            detector: DetectorKind::Knn,
            threshold: 0.99,
            retrain_every: 50,
            signal: AlarmSignal::Score,
            suppress: 0,
            outside_band_only: false,
        };
        let series: Vec<Vec<f32>> = [
            "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
            "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
            "realAWSCloudwatch/ec2_network_in_257a54.csv",
        ]
        .iter()
        .map(|n| crate::test_data::nab(n))
        .collect();
        // one series may hold its own state
        let mut scorer = AnomalyScorer::new(1, 1, 1440);
        let later = Instant::now() + std::time::Duration::from_secs(3600);
        let mut first = [None; 3];
        let end = 400;
        for t in 0..end {
            for (k, v) in series.iter().enumerate() {
                let newest = Newest {
                    id: SeriesId(k as u64),
                    entry: 0,
                    spec: &spec,
                    values: &v[..=t],
                    head: t as i64,
                    season: None,
                };
                if let Some(a) = scorer.score(&newest, t as u64, later) {
                    assert!((0.0..=1.0).contains(&a.score));
                    first[k].get_or_insert(t);
                }
            }
            scorer.finish_step(t as u64, &[Some(spec.clone())], later);
        }
        // every series is scored before it could have a reference of its own: by the pool
        for (k, f) in first.iter().enumerate() {
            let f = f.unwrap_or_else(|| panic!("series {k} never scored"));
            assert!(f < FIRST_STAGE - 1, "series {k} first scored at {f}");
        }
        // the first series holds its own state (past its first stage), the others not
        assert_eq!(scorer.forest_counts().0, 1);
        // when it goes, the next series takes its place, its state built from its ring
        for k in 1..3usize {
            let newest = Newest {
                id: SeriesId(k as u64),
                entry: 0,
                spec: &spec,
                values: &series[k][..=end],
                head: end as i64,
                season: None,
            };
            scorer.score(&newest, end as u64, later);
        }
        scorer.finish_step(end as u64, &[Some(spec.clone())], later);
        assert_eq!(scorer.forest_counts().0, 0);
        let newest = Newest {
            id: SeriesId(1),
            entry: 0,
            spec: &spec,
            values: &series[1][..=end + 1],
            head: end as i64 + 1,
            season: None,
        };
        assert!(scorer.score(&newest, end as u64 + 1, later).is_some());
        assert_eq!(scorer.forest_counts().0, 1);
    }
}
