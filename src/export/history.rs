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
//! 1/16383), which the web page marks on its chart. All series together keep within
//! `storage.forecast_history_memory`: where more series are forecast than fit the whole
//! span in it, every series keeps the same shorter span ([`ForecastHistory::span`], exported
//! as `promcast_forecast_history_span_seconds`), recomputed each step from the series kept.
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::samples::SnapshotSamples;
use crate::snapshot::{Anomaly, SeriesForecast, SeriesState, Snapshot, Subscriber};
use crate::store::{LabelSet, SeriesId};
use crate::telemetry::HistoryMetrics;

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

/// One series' anomaly scores of the last buckets (the page marks anomalous points).
struct Scores {
    head: i64,
    /// The first bucket scored (nothing before it is kept).
    first: i64,
    /// `[slot]`: [`pack_score`]: the score to 1/16383 and the direction, or not scored.
    /// Bucket `b` is at slot `b % slots`; grown like [`Entry`]'s values.
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
    fn new() -> Self {
        Self {
            head: i64::MIN,
            first: i64::MIN,
            slots: Box::default(),
        }
    }

    /// Records `bucket`'s score, keeping at most `len` buckets.
    fn record(&mut self, bucket: i64, a: Anomaly, len: usize) {
        if self.head == i64::MIN {
            self.first = bucket;
        } else if bucket < self.first {
            return;
        }
        if let Some(cap) = fitted(self.slots.len(), self.first, bucket.max(self.head), len) {
            self.slots = relayout(&self.slots, 1, cap, self.head, self.first, NOT_SCORED);
        }
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

/// The slots to hold the buckets from `first` to `last` with at most `len` kept, where that
/// differs from `cap`: more (doubling, from [`MIN_SLOTS`]) as the kept span grows, fewer
/// when `len` fell below `cap`.
fn fitted(cap: usize, first: i64, last: i64, len: usize) -> Option<usize> {
    if cap > len {
        return Some(len);
    }
    let need = ((last - first + 1).max(1) as usize).min(len);
    (need > cap).then(|| need.max(cap * 2).max(MIN_SLOTS).min(len))
}

/// `old` (`width` values a slot, bucket `b` at slot `b % slots`) in `cap` slots, keeping the
/// newest buckets up to `head` that both hold (none before `first`); the rest `fill`.
fn relayout<T: Copy>(
    old: &[T],
    width: usize,
    cap: usize,
    head: i64,
    first: i64,
    fill: T,
) -> Box<[T]> {
    let mut out = vec![fill; cap * width].into_boxed_slice();
    let old_cap = old.len() / width.max(1);
    if head != i64::MIN && old_cap > 0 && cap > 0 {
        let keep = old_cap.min(cap) as i64;
        for b in (head - keep + 1).max(first)..=head {
            let from = b.rem_euclid(old_cap as i64) as usize * width;
            let to = b.rem_euclid(cap as i64) as usize * width;
            out[to..to + width].copy_from_slice(&old[from..from + width]);
        }
    }
    out
}

impl Entry {
    /// Buckets the arrays hold now (they grow to the history's span as it fills).
    pub fn slots(&self) -> usize {
        self.values.len() / self.horizons.max(1)
    }

    /// Makes room for the buckets from `first` to `last`, keeping at most `len` (fewer slots
    /// than it holds when the span fell), keeping what is held.
    fn reserve(&mut self, last: i64, len: usize) {
        let nh = self.horizons;
        if let Some(cap) = fitted(self.slots(), self.first, last, len) {
            let (head, first) = (self.head, self.first);
            self.values = relayout(&self.values, nh, cap, head, first, f32::NAN);
            self.bands = relayout(&self.bands, nh, cap, head, first, [0; 2]);
        }
    }

    /// Bytes its kept slots take now, and a kept bucket of it when the slots are held.
    pub fn bytes(&self) -> (usize, usize) {
        let scores = self.scores.as_ref().map_or(0, |s| s.slots.len());
        let per_bucket = if self.values.is_empty() {
            0
        } else {
            self.horizons * 8
        } + if self.scores.is_some() { 2 } else { 0 };
        (self.slots() * self.horizons * 8 + scores * 2, per_bucket)
    }

    /// The forecast made `horizons[h]` before `bucket`, if kept.
    pub fn get(&self, bucket: i64, h: usize, len: usize) -> Option<[f32; 3]> {
        let slots = self.slots() as i64;
        let kept = slots.min(len as i64);
        if bucket > self.head || bucket <= self.head - kept || h >= self.horizons {
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
            ((s.head - len + 1).max(s.first)..=s.head).filter_map(move |b| {
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
    /// Buckets kept per series when the memory allows (`storage.forecast_history`).
    len: usize,
    /// Bytes all series' kept slots may take (`storage.forecast_history_memory`).
    budget: usize,
    /// Buckets each series keeps now: `len`, or fewer to stay within `budget`.
    span: AtomicUsize,
    metrics: Option<HistoryMetrics>,
    shards: Vec<Mutex<HashMap<SeriesId, Entry>>>,
    scaling: ScalingHistory,
}

/// What the kept entries hold: bytes now, and bytes a kept bucket of all of them.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    held: usize,
    per_bucket: usize,
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
    /// Keeps `len` target buckets per series (0: keeps nothing), with no bound on memory.
    pub fn new(len: usize) -> Self {
        Self {
            len,
            budget: usize::MAX,
            span: AtomicUsize::new(len),
            metrics: None,
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

    /// All series' kept slots within `bytes` (8 a horizon and 2 for the score, a bucket).
    pub fn with_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes.max(1);
        self
    }

    pub fn with_metrics(self, metrics: HistoryMetrics) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Buckets per series when the memory allows (`storage.forecast_history`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Buckets each series keeps now: [`Self::len`], or fewer where all series' history at
    /// that length would not fit the memory budget.
    pub fn span(&self) -> usize {
        self.span.load(Ordering::Relaxed)
    }

    /// Sets the span from what the kept entries need a bucket: the most buckets that fit
    /// the budget, at most `len`. It falls at once (the entries shrink as they are next
    /// written); it rises only once an eighth more fits, so series coming and going near
    /// the bound do not resize every entry every step.
    fn rebudget(&self, usage: Usage, step_ms: i64) {
        let old = self.span();
        let fits = self
            .budget
            .checked_div(usage.per_bucket)
            .unwrap_or(usize::MAX)
            .clamp(1, self.len.max(1));
        let span = if fits < old || fits == self.len || fits >= old + old.div_ceil(8) {
            fits
        } else {
            old
        };
        if span != old {
            self.span.store(span, Ordering::Relaxed);
            let secs = |n: usize| n as f64 * step_ms as f64 / 1e3;
            if old == self.len {
                tracing::warn!(
                    kept_s = secs(span),
                    configured_s = secs(self.len),
                    budget_bytes = self.budget,
                    bytes_a_step = usage.per_bucket,
                    "past forecasts kept for less than storage.forecast_history: the series \
                     forecast need more than storage.forecast_history_memory at its length"
                );
            } else if span == self.len {
                tracing::info!(
                    kept_s = secs(span),
                    "past forecasts kept for all of storage.forecast_history again"
                );
            }
        }
        if let Some(m) = &self.metrics {
            m.span_seconds
                .set(self.span() as f64 * step_ms as f64 / 1e3);
            m.bytes.set(i64::try_from(usage.held).unwrap_or(i64::MAX));
        }
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
        let len = self.span();
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
                .get_or_insert_with(|| Box::new(Scores::new()))
                .record(origin, a, len);
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

    /// Drops series whose newest target is older than `oldest` bucket; says what the rest
    /// hold.
    fn sweep(&self, oldest: i64) -> Usage {
        let mut usage = Usage::default();
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, e| {
                let keep = e.head.max(e.scores.as_ref().map_or(i64::MIN, |s| s.head)) >= oldest;
                if keep {
                    let (held, per_bucket) = e.bytes();
                    usage.held += held;
                    usage.per_bucket += per_bucket;
                }
                keep
            });
        }
        usage
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
            let usage = self.sweep(now_bucket - self.span() as i64);
            self.rebudget(usage, step_ms);
        }
        self.record_scaling(snapshot, step_ms);
    }
}

#[cfg(test)]
mod tests;
