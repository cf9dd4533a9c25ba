//! Past forecasts, aligned to the time they were made *for*: per series and horizon, the
//! forecast made `horizon` before each target bucket (`yhat`, `yhat_lower`, `yhat_upper`).
//! A [`Subscriber`] of the published snapshots (one record per step, on the forecast
//! thread), read by remote read
//! (`N:forecast{L, ml_forecast, horizon}`), so "actual against what was predicted 15 minutes
//! earlier" overlays without `offset`.
//!
//! Memory: `storage.forecast_history / step` buckets × horizons × 8 bytes per series (6h at
//! 1m with three horizons: 8.6 KB; reached as the history fills, from 16 buckets, doubling),
//! and 2 bytes per bucket for the anomaly scores of a scored series (0.7 KB; the score to
//! 1/16383), which the web page marks on its chart.
//!
//! Precision: `yhat` is kept as the `f32` it was published as; each band edge as its
//! distance from `yhat` in bfloat16 (the `f32` exponent, 8 significant bits), so a past
//! `yhat_lower` or `yhat_upper` read back lies within 0.4% (2⁻⁸) of its distance from `yhat`
//! of what was published (`f32` rounding aside). A band is an estimate drawn under a line;
//! 8 bytes a point instead of 12 is a third of the history's memory.
//!
//! It also keeps the scaling samples of the same window ([`ScalingHistory`]:
//! `promcast_desired_replicas` and `promcast_scaling_load` per step, a few per target), so a
//! panel reading promcast over remote read draws desired replicas over time too.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::samples::SnapshotSamples;
use crate::snapshot::{Anomaly, SeriesForecast, SeriesState, Snapshot, Subscriber};
use crate::store::{LabelSet, SeriesId};

const SHARDS: usize = 16;

/// One series' past forecasts.
pub struct Entry {
    pub labels: Arc<LabelSet>,
    pub spec: u16,
    /// The forecasts are of a counter's per-second rate (`N:rate:forecast`).
    pub rate: bool,
    /// Newest target bucket written.
    pub head: i64,
    /// The first target bucket written (nothing before it is kept).
    first: i64,
    /// `[slot][horizon]` `yhat`, NaN where nothing was forecast. Bucket `b` is at slot
    /// `b % slots`; the slots grow (doubling, up to the history's length) as the kept span
    /// does, so a new series' first record does not write its whole window.
    values: Box<[f32]>,
    /// `[slot][horizon][below, above]`: `yhat - lower` and `upper - yhat` in bfloat16.
    bands: Box<[[u16; 2]]>,
    horizons: usize,
    /// The anomaly scores of the observed points, by bucket; allocated at the first score.
    scores: Option<Box<Scores>>,
}

/// One series' anomaly scores of the last `len` buckets (the page marks anomalous points).
struct Scores {
    head: i64,
    /// `[slot]`: [`pack_score`]: the score to 1/16383 and the direction, or not scored.
    slots: Box<[u16]>,
}

/// A slot with no score.
const NOT_SCORED: u16 = u16::MAX;
/// Steps of a packed score (14 bits).
const SCORE_STEPS: f64 = 16383.0;

/// A score in [0, 1] (clamped) to 14 bits, its direction (1 above, -1 below, 0 normal) in
/// the top two: 2 bytes a bucket instead of 5, the score within 3.1e-5 of what was published.
fn pack_score(a: Anomaly) -> u16 {
    let q = if a.score.is_nan() {
        0
    } else {
        (a.score.clamp(0.0, 1.0) * SCORE_STEPS).round() as u16
    };
    let d = match a.direction {
        1 => 1,
        -1 => 2,
        _ => 0,
    };
    q | d << 14
}

fn unpack_score(v: u16) -> Option<(f32, i8)> {
    let d = match v >> 14 {
        0 => 0,
        1 => 1,
        2 => -1,
        _ => return None,
    };
    Some(((f64::from(v & 0x3fff) / SCORE_STEPS) as f32, d))
}

impl Scores {
    fn new(len: usize) -> Self {
        Self {
            head: i64::MIN,
            slots: vec![NOT_SCORED; len].into_boxed_slice(),
        }
    }

    fn record(&mut self, bucket: i64, a: Anomaly) {
        let len = self.slots.len() as i64;
        if self.head != i64::MIN && bucket <= self.head - len {
            return;
        }
        if bucket > self.head {
            let from = if self.head == i64::MIN {
                bucket
            } else {
                (self.head + 1).max(bucket - len + 1)
            };
            for b in from..bucket {
                self.slots[b.rem_euclid(len) as usize] = NOT_SCORED;
            }
            self.head = bucket;
        }
        self.slots[bucket.rem_euclid(len) as usize] = pack_score(a);
    }
}

/// Slots a series' history starts with.
const MIN_SLOTS: usize = 16;

impl Entry {
    /// Buckets the arrays hold now (they grow to the history's length as it fills).
    pub fn slots(&self) -> usize {
        self.values.len() / self.horizons.max(1)
    }

    /// Makes room for the buckets from `first` to `last` (at most `len` of them), keeping
    /// what is held.
    fn reserve(&mut self, last: i64, len: usize) {
        let (cap, nh) = (self.slots(), self.horizons);
        let need = ((last - self.first + 1).max(1) as usize).min(len);
        if need <= cap {
            return;
        }
        let new_cap = need.max(cap * 2).max(MIN_SLOTS).min(len);
        let mut values = vec![f32::NAN; new_cap * nh].into_boxed_slice();
        let mut bands = vec![[0; 2]; new_cap * nh].into_boxed_slice();
        if self.head != i64::MIN && cap > 0 {
            for b in (self.head - cap as i64 + 1).max(self.first)..=self.head {
                let from = b.rem_euclid(cap as i64) as usize * nh;
                let to = b.rem_euclid(new_cap as i64) as usize * nh;
                values[to..to + nh].copy_from_slice(&self.values[from..from + nh]);
                bands[to..to + nh].copy_from_slice(&self.bands[from..from + nh]);
            }
        }
        self.values = values;
        self.bands = bands;
    }

    /// The forecast made `horizons[h]` before `bucket`, if kept.
    pub fn get(&self, bucket: i64, h: usize, len: usize) -> Option<[f32; 3]> {
        let slots = self.slots().min(len) as i64;
        if bucket > self.head || bucket <= self.head - slots || h >= self.horizons {
            return None;
        }
        let slot = bucket.rem_euclid(slots) as usize;
        let i = slot * self.horizons + h;
        let y = self.values[i];
        let [below, above] = self.bands[i].map(from_bf16);
        (!y.is_nan()).then_some([y, y - below, y + above])
    }

    /// The kept anomaly scores, oldest first: `(bucket, score, direction)`.
    pub fn anomalies(&self) -> impl Iterator<Item = (i64, f32, i8)> + '_ {
        self.scores.iter().flat_map(|s| {
            let len = s.slots.len() as i64;
            ((s.head - len + 1)..=s.head).filter_map(move |b| {
                let (score, direction) = unpack_score(s.slots[b.rem_euclid(len) as usize])?;
                Some((b, score, direction))
            })
        })
    }

    /// Horizons per kept point.
    pub fn horizons(&self) -> usize {
        self.horizons
    }
}

/// `x` rounded to bfloat16 (to nearest, ties to even; NaN stays NaN).
fn to_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let b = x.to_bits();
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

fn from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

pub struct ForecastHistory {
    len: usize,
    shards: Vec<Mutex<HashMap<SeriesId, Entry>>>,
    scaling: ScalingHistory,
}

/// Sorted labels of one scaling sample.
pub type SampleLabels = Arc<[(String, String)]>;

/// One step's scaling samples: its time and `(labels, value)` per sample.
type ScalingStep = (i64, Vec<(SampleLabels, f64)>);

/// The scaling samples of the last `len` steps. Label sets are shared between steps while
/// they do not change.
#[derive(Default)]
pub struct ScalingHistory {
    steps: Mutex<VecDeque<ScalingStep>>,
}

impl ScalingHistory {
    /// Adds a snapshot's scaling samples (at `generated_ms`) and drops steps older than
    /// `oldest_ms`.
    fn record(&self, snapshot: &Snapshot, oldest_ms: i64) {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        while steps.front().is_some_and(|(t, _)| *t < oldest_ms) {
            steps.pop_front();
        }
        if snapshot.scaling.is_empty() {
            return;
        }
        let previous = steps.back().map(|(_, s)| s.as_slice()).unwrap_or_default();
        let mut samples = Vec::with_capacity(previous.len().max(4));
        let mut buf = Vec::new();
        snapshot.scaling_samples(&mut buf, |labels, v| {
            let shared = previous
                .iter()
                .find(|(l, _)| **l == *labels)
                .map_or_else(|| SampleLabels::from(labels), |(l, _)| l.clone());
            samples.push((shared, v));
        });
        steps.push_back((snapshot.generated_ms, samples));
    }

    /// Calls `f(time, labels, value)` for every kept sample, oldest step first.
    pub fn for_each(&self, mut f: impl FnMut(i64, &SampleLabels, f64)) {
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        for (t, samples) in steps.iter() {
            for (labels, v) in samples {
                f(*t, labels, *v);
            }
        }
    }
}

impl ForecastHistory {
    /// Keeps `len` target buckets per series (0: keeps nothing).
    pub fn new(len: usize) -> Self {
        Self {
            len,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            scaling: ScalingHistory::default(),
        }
    }

    /// Keeps a step's scaling samples for `len` steps of `step_ms` (with `len` 0, only the
    /// newest step's).
    pub fn record_scaling(&self, snapshot: &Snapshot, step_ms: i64) {
        let keep = (self.len.max(1) as i64) * step_ms;
        self.scaling
            .record(snapshot, snapshot.generated_ms - keep + 1);
    }

    pub fn scaling(&self) -> &ScalingHistory {
        &self.scaling
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn shard(&self, id: SeriesId) -> &Mutex<HashMap<SeriesId, Entry>> {
        &self.shards[(id.0 as usize) % SHARDS]
    }

    /// Records a step's forecast of one series: for each horizon `h` (in steps), the point
    /// for target bucket `origin + h`.
    pub fn record(&self, id: SeriesId, f: &SeriesForecast, origin: i64, horizon_steps: &[i64]) {
        if self.len == 0 || (f.points.is_empty() && f.anomaly.is_none()) {
            return;
        }
        let len = self.len;
        let nh = horizon_steps.len();
        let mut shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        let e = shard.entry(id).or_insert_with(|| Entry {
            labels: f.labels.clone(),
            spec: f.spec,
            rate: f.rate,
            head: i64::MIN,
            first: i64::MIN,
            values: Box::default(),
            bands: Box::default(),
            horizons: nh,
            scores: None,
        });
        // The newest observed point's score, at its bucket (the forecast's origin).
        if let Some(a) = f.anomaly {
            e.scores
                .get_or_insert_with(|| Box::new(Scores::new(len)))
                .record(origin, a);
        }
        if e.horizons != nh || f.state != SeriesState::Ready {
            return;
        }
        for (h, (p, &k)) in f.points.iter().zip(horizon_steps).enumerate() {
            let target = origin + k;
            if e.head == i64::MIN {
                e.first = target;
            } else if target < e.first {
                continue; // before the first record: never kept
            }
            e.reserve(target.max(e.head), len);
            let slots = e.slots() as i64;
            if e.head != i64::MIN && target > e.head {
                // clear the slots skipped over
                let gap = (target - e.head).min(slots);
                for b in (target - gap + 1)..=target {
                    let i = b.rem_euclid(slots) as usize * nh;
                    e.values[i..i + nh].fill(f32::NAN);
                }
                e.head = target;
            } else if e.head == i64::MIN {
                e.head = target;
            } else if target <= e.head - slots {
                continue;
            }
            let i = target.rem_euclid(slots) as usize * nh + h;
            let y = p.yhat as f32;
            e.values[i] = y;
            e.bands[i] = [to_bf16(y - p.lower as f32), to_bf16(p.upper as f32 - y)];
        }
    }

    /// Drops series whose newest target is older than `oldest` bucket.
    pub fn evict_before(&self, oldest: i64) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, e| {
                e.head.max(e.scores.as_ref().map_or(i64::MIN, |s| s.head)) >= oldest
            });
        }
    }

    /// Calls `f` for every entry (one shard locked at a time).
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        for s in &self.shards {
            for e in s.lock().unwrap_or_else(|e| e.into_inner()).values() {
                f(e);
            }
        }
    }
}

impl Subscriber for ForecastHistory {
    /// Records every ready forecast of the step at its target buckets, forgets series not
    /// forecast for longer than it keeps, and keeps the step's scaling samples.
    fn publish(&self, snapshot: &Arc<Snapshot>) {
        let step_ms = snapshot.step_ms.max(1);
        if !self.is_empty() {
            let steps: Vec<Vec<i64>> = snapshot
                .horizons
                .iter()
                .map(|hs| hs.iter().map(|(_, ms)| ms / step_ms).collect())
                .collect();
            for f in snapshot
                .series
                .iter()
                .filter(|f| f.state == SeriesState::Ready || f.anomaly.is_some())
            {
                self.record(f.id, f, f.base, &steps[f.spec as usize]);
            }
            let now_bucket = snapshot.generated_ms.div_euclid(step_ms);
            self.evict_before(now_bucket - self.len() as i64);
        }
        self.record_scaling(snapshot, step_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Point;

    fn forecast(v: f64) -> SeriesForecast {
        let labels = Arc::new(LabelSet::from_pairs([("__name__", "a:b")]));
        SeriesForecast {
            points: vec![
                Point {
                    yhat: v,
                    lower: v - 1.0,
                    upper: v + 1.0,
                },
                Point {
                    yhat: v * 10.0,
                    lower: v * 10.0 - 1.0,
                    upper: v * 10.0 + 1.0,
                },
            ],
            ..SeriesForecast::new(labels, SeriesId(0), 0, 0, 0, 0)
        }
    }

    #[test]
    fn aligns_forecasts_to_their_targets_and_forgets_old_ones() {
        let h = ForecastHistory::new(20);
        let id = SeriesId(7);
        // horizons 1 and 3 steps; origins 100..110
        for o in 100..110 {
            h.record(id, &forecast(o as f64), o, &[1, 3]);
        }
        let mut seen = 0;
        h.for_each(|e| {
            seen += 1;
            assert_eq!(e.head, 112);
            // target 105 at horizon 1 came from origin 104; at horizon 3 from origin 102
            assert_eq!(e.get(105, 0, 20), Some([104.0, 103.0, 105.0]));
            assert_eq!(e.get(105, 1, 20).unwrap()[0], 1020.0);
            // target 101: horizon 1 from origin 100; horizon 3 would be origin 98: never made
            assert_eq!(e.get(101, 0, 20).unwrap()[0], 100.0);
            assert_eq!(e.get(101, 1, 20), None);
            // outside the kept window (92, 112]
            assert_eq!(e.get(92, 0, 20), None);
            assert_eq!(e.get(113, 0, 20), None);
        });
        assert_eq!(seen, 1);
        h.evict_before(113);
        h.for_each(|_| panic!("evicted"));
    }

    /// The slots grow with the kept span (a new series does not write its whole window) and
    /// every kept forecast survives each growth: checked against a map of what was recorded,
    /// through gaps and past the window's length.
    #[test]
    fn grows_as_it_fills_and_keeps_every_forecast() {
        let len = 100;
        let h = ForecastHistory::new(len);
        let id = SeriesId(9);
        let mut want = std::collections::HashMap::new();
        let mut origins: Vec<i64> = (1000..1030).collect();
        origins.extend(1040..1100); // a gap of 10 steps
        origins.extend(1300..1400); // beyond the window
        for (n, &o) in origins.iter().enumerate() {
            h.record(id, &forecast(o as f64), o, &[1, 3]);
            want.insert((o + 1, 0), o as f32);
            want.insert((o + 3, 1), (o * 10) as f32);
            h.for_each(|e| {
                assert!(e.slots() <= len);
                if n == 0 {
                    assert_eq!(e.slots(), MIN_SLOTS, "first record");
                }
                for b in e.head - len as i64 + 1..=e.head {
                    for hz in 0..2 {
                        let got = e.get(b, hz, len).map(|v| v[0]);
                        assert_eq!(
                            got,
                            want.get(&(b, hz)).copied(),
                            "after origin {o}: {b} h{hz}"
                        );
                    }
                }
            });
        }
        h.for_each(|e| assert_eq!(e.slots(), len));
    }

    /// Band edges come back within 0.4% of the band's half-width (yhat exact), wherever
    /// the values lie; infinite and NaN edges stay so.
    #[test]
    fn band_edges_keep_their_stated_precision() {
        let h = ForecastHistory::new(16);
        let id = SeriesId(1);
        let cases = [
            (0.5, 0.1, 0.2),
            (1234.567, 17.3, 250.9),
            (3.0e9, 1.234e7, 5.0e5),
            (-42.0, 0.001, 1e-6),
            (7.0, 0.0, 0.0),
            (1.0, f64::INFINITY, 2.0),
            (1.0, f64::NAN, 2.0),
        ];
        for (o, &(y, below, above)) in cases.iter().enumerate() {
            let mut f = forecast(0.0);
            f.points[0] = Point {
                yhat: y,
                lower: y - below,
                upper: y + above,
            };
            h.record(id, &f, o as i64, &[1, 3]);
        }
        h.for_each(|e| {
            for (o, &(y, below, above)) in cases.iter().enumerate() {
                let [gy, lo, hi] = e.get(o as i64 + 1, 0, 16).unwrap();
                assert_eq!(gy, y as f32);
                let y = y as f32 as f64;
                for (got, want, d) in [(lo, y - below, below), (hi, y + above, above)] {
                    let got = got as f64;
                    if want.is_nan() {
                        assert!(got.is_nan(), "case {o}");
                    } else if want.is_infinite() {
                        assert_eq!(got, want, "case {o}");
                    } else {
                        // 2^-8 of the distance (half a bfloat16 step), plus f32 rounding of the edge
                        let tol = d * 2f64.powi(-8) + want.abs() * 2f64.powi(-23);
                        assert!((got - want).abs() <= tol, "case {o}: {got} vs {want}");
                    }
                }
            }
        });
    }

    #[test]
    fn keeps_anomaly_scores_by_bucket_and_forgets_old_ones() {
        let h = ForecastHistory::new(4);
        let id = SeriesId(3);
        for o in 10..17 {
            let mut f = forecast(1.0);
            if o != 14 {
                f.anomaly = Some(Anomaly {
                    score: o as f64 / 100.0,
                    likelihood: 0.5,
                    direction: if o == 15 { 1 } else { 0 },
                });
            }
            h.record(id, &f, o, &[1, 3]);
        }
        let mut kept = Vec::new();
        h.for_each(|e| kept.extend(e.anomalies()));
        // four buckets kept (13..=16); 14 was not scored; scores to 1/16383
        let buckets: Vec<(i64, i8)> = kept.iter().map(|&(b, _, d)| (b, d)).collect();
        assert_eq!(buckets, vec![(13, 0), (15, 1), (16, 0)]);
        for (b, score, _) in kept {
            assert!(
                (score as f64 - b as f64 / 100.0).abs() <= 0.5 / 16383.0,
                "{b}: {score}"
            );
        }
        // every direction, the ends of the range, out-of-range scores clamped
        for (score, direction, want) in [
            (0.0, -1, 0.0),
            (1.0, 1, 1.0),
            (1.7, 0, 1.0),
            (-0.2, -1, 0.0),
            (0.5, 1, 0.5),
        ] {
            let a = Anomaly {
                score,
                likelihood: 0.5,
                direction,
            };
            let (got, d) = unpack_score(pack_score(a)).unwrap();
            assert_eq!(d, direction);
            assert!((got as f64 - want).abs() <= 0.5 / 16383.0, "{score}: {got}");
        }
        assert_eq!(unpack_score(NOT_SCORED), None);
    }
}
