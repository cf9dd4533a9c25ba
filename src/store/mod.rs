//! The series store: only series that match a forecast selector are kept, each with a
//! fixed-capacity ring of step buckets, in a sharded map keyed by the label-set hash.
//!
//! Ingest hands each request's series to [`Store::append_known_batch`] and calls
//! [`Store::append`] for those seen for the first time; the forecast loop reads rings
//! with [`Store::visit_shard`] and copies what it needs out under a short lock.

mod clock;
mod kind;
mod labels;
mod metadata;
pub mod persist;
mod ring;
mod shard;
mod xor;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use clock::Clock;
pub use kind::{cumulative_stem, is_cumulative, CounterState, MetricType, RateStep};
pub(crate) use labels::varint_len;
pub use labels::{
    encode_canonical, hash_labels, hash_labels_within, LabelHash, LabelRef, LabelSet,
};
pub use metadata::MAX_METRIC_TYPES;
pub use ring::{Push, Ring};
use shard::{shard_index, Shard, SHARDS};
pub use shard::{Series, SeriesId};

use crate::config::{Config, CounterMode, Selector};

/// Prometheus' staleness marker: a NaN with this exact bit pattern ends a series' run.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample as sent by Prometheus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// What one append did, summed over a request. The handler maps these to a status code and
/// self-metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    pub appended: u64,
    /// Duplicates and out-of-order samples merged into the ring.
    pub merged: u64,
    pub too_old: u64,
    pub stale_markers: u64,
    /// Samples of series no selector matches (dropped cheaply, not an error).
    pub unselected: u64,
    /// Samples of series beyond `limits.max_series` (the sender should retry later).
    pub series_limit: u64,
    pub series_created: u64,
    /// Series switched between raw values and rates because their metric type became known
    /// (their ring starts over).
    pub kind_changes: u64,
}

impl AppendStats {
    pub fn add(&mut self, o: &AppendStats) {
        self.appended += o.appended;
        self.merged += o.merged;
        self.too_old += o.too_old;
        self.stale_markers += o.stale_markers;
        self.unselected += o.unselected;
        self.series_limit += o.series_limit;
        self.series_created += o.series_created;
        self.kind_changes += o.kind_changes;
    }
}

/// What a request says of one series besides its labels and samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesMeta {
    /// From the series' own metadata (remote write 2.0); `Unknown` when not sent.
    pub metric_type: MetricType,
    /// The counter's created timestamp (remote write 2.0), if sent.
    pub created_ms: Option<i64>,
}

/// What [`Store::append_known`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The series is stored: its samples were appended.
    Appended,
    /// The series is known not to be stored: its samples were counted as unselected.
    Unselected,
    /// Never seen: validate it, then call [`Store::append`].
    New,
}

/// One series of a request for [`Store::append_known_batch`]: its label hash, and where its
/// samples lie in the request's flat array (`start..start + len`).
#[derive(Debug, Clone, Copy)]
pub struct BatchItem {
    pub hash: LabelHash,
    pub samples: (u32, u32),
    pub meta: SeriesMeta,
}

pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    selectors: Box<[Selector]>,
    step_ms: i64,
    ring_len: usize,
    max_series: usize,
    idle_timeout_s: u32,
    epoch_ms: i64,
    series: AtomicUsize,
    next_id: AtomicU64,
    /// Per forecast entry: whether its counters are stored as rates.
    counters_as_rates: Box<[bool]>,
    /// Metric family name -> type, from remote-write 1.0 metadata.
    types: Mutex<hashbrown::HashMap<Box<[u8]>, MetricType>>,
    /// Told of every series created (backfill queues it); must not block.
    on_new: std::sync::OnceLock<Box<NewSeriesHook>>,
    clock: Clock,
}

/// Called with the labels of each series the store creates.
pub type NewSeriesHook = dyn Fn(&Arc<LabelSet>) + Send + Sync;

impl Store {
    pub fn new(config: &Config, now_ms: i64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            selectors: config.forecast.iter().map(|f| f.selector.clone()).collect(),
            step_ms: config.step.as_millis() as i64,
            ring_len: config.ring_len.get(),
            max_series: config.limits.max_series,
            idle_timeout_s: config.idle_timeout.as_secs().min(u32::MAX as u64) as u32,
            epoch_ms: now_ms,
            series: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            counters_as_rates: (config.forecast.iter())
                .map(|f| f.counters == CounterMode::Rate)
                .collect(),
            types: Mutex::new(hashbrown::HashMap::new()),
            on_new: std::sync::OnceLock::new(),
            clock: Clock::wall(),
        }
    }

    /// The store on `clock` (the wall clock unless set): the agent's time, see [`Clock`].
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.epoch_ms = clock.now_ms();
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Registers the hook told of new series (once; later calls are ignored).
    pub fn on_new_series(&self, hook: Box<NewSeriesHook>) {
        let _ = self.on_new.set(hook);
    }

    /// Puts back a series from a snapshot: selected by the current selectors, within
    /// `max_series`, its ring as saved. Returns false when it is not (no longer) selected,
    /// the limit is reached, or it is already stored.
    pub fn restore(
        &self,
        labels: LabelSet,
        ring: Ring,
        stale: bool,
        rate: bool,
        now_ms: i64,
    ) -> bool {
        let refs: Vec<LabelRef<'_>> = labels.iter().map(|(n, v)| LabelRef::new(n, v)).collect();
        let Some(spec) = self.select(&refs) else {
            return false;
        };
        if ring.capacity() != self.ring_len {
            return false;
        }
        let hash = hash_labels(&refs);
        // The ring is kept when it holds what the series is stored as now (rates, or values
        // as sent: `counters:` or the metadata may have changed since it was saved). Asked
        // before the shard's lock: the type table is locked first (see `apply_metadata`).
        let wants_rate = self.wants_rate(spec, &refs, MetricType::Unknown);
        let ring = if rate == wants_rate {
            ring
        } else {
            Ring::new(self.ring_len)
        };
        let mut guard = self.lock_shard(hash.hash);
        if guard.find(hash).is_some() || !self.reserve_series() {
            return false;
        }
        let series = self.new_series(Arc::new(labels), hash, spec, ring, wants_rate);
        guard.insert(Series {
            stale,
            last_seen: self.seconds_since_epoch(now_ms),
            ..series
        });
        true
    }

    /// Takes a place under `limits.max_series` for a new series; false when there is none.
    fn reserve_series(&self) -> bool {
        self.series
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_series).then_some(n + 1)
            })
            .is_ok()
    }

    /// A series created now, its place reserved ([`Store::reserve_series`]): a new
    /// identity, not stale, told to the new-series hook (which must not block: the caller
    /// holds the shard's lock).
    fn new_series(
        &self,
        labels: Arc<LabelSet>,
        hash: LabelHash,
        spec: u16,
        ring: Ring,
        rate: bool,
    ) -> Series {
        if let Some(hook) = self.on_new.get() {
            hook(&labels);
        }
        Series {
            id: SeriesId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            labels,
            spec,
            stale: false,
            last_seen: 0,
            hash: hash.hash,
            check: hash.check,
            ring,
            counter: rate.then(Box::default),
            own_type: MetricType::Unknown,
        }
    }

    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    pub fn ring_len(&self) -> usize {
        self.ring_len
    }

    pub fn series_count(&self) -> usize {
        self.series.load(Ordering::Relaxed)
    }

    pub fn bucket_of(&self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.step_ms)
    }

    /// [`Store::bucket_of`] without a division when the sample falls in the ring's head
    /// bucket or the next one, as nearly every sample does.
    fn bucket_after(&self, head: Option<i64>, ts_ms: i64) -> i64 {
        if let Some(h) = head {
            // i128: no overflow whatever the timestamps.
            let d = ts_ms as i128 - h as i128 * self.step_ms as i128;
            let step = self.step_ms as i128;
            if (0..step).contains(&d) {
                return h;
            }
            if (step..2 * step).contains(&d) {
                return h + 1;
            }
        }
        self.bucket_of(ts_ms)
    }

    fn seconds_since_epoch(&self, now_ms: i64) -> u32 {
        ((now_ms - self.epoch_ms).max(0) / 1000).min(u32::MAX as i64) as u32
    }

    /// The lock of the shard holding the series with this label hash.
    fn lock_shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        let shard = &self.shards[shard_index(hash)];
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Which forecast entry selects these labels, if any.
    pub fn select(&self, labels: &[LabelRef<'_>]) -> Option<u16> {
        let get = |name: &str| {
            labels
                .iter()
                .find(|l| l.name == name.as_bytes())
                .and_then(|l| std::str::from_utf8(l.value).ok())
        };
        self.selectors
            .iter()
            .position(|s| {
                if let Some(required) = s.required_name() {
                    if get("__name__") != Some(required) {
                        return false;
                    }
                }
                s.matches(get)
            })
            .map(|i| i as u16)
    }

    /// The fast path for series seen before: appends to a stored series, or counts the
    /// samples of a series known not to be stored. Only [`Known::New`] series need
    /// validating; those known have passed validation when first seen.
    pub fn append_known(
        &self,
        hash: LabelHash,
        samples: &[Sample],
        now_ms: i64,
        stats: &mut AppendStats,
    ) -> Known {
        let mut guard = self.lock_shard(hash.hash);
        let now_s = self.seconds_since_epoch(now_ms);
        let meta = SeriesMeta::default();
        self.append_known_locked(&mut guard, hash, samples, meta, now_s, stats)
    }

    /// [`Store::append_known`] under the lock of the series' shard.
    fn append_known_locked(
        &self,
        shard: &mut Shard,
        hash: LabelHash,
        samples: &[Sample],
        meta: SeriesMeta,
        now_s: u32,
        stats: &mut AppendStats,
    ) -> Known {
        if let Some(slot) = shard.find(hash) {
            self.push_samples(shard.series_mut(slot), samples, meta, now_s, stats);
            return Known::Appended;
        }
        if shard.is_unselected(hash.hash) {
            stats.unselected += samples.len() as u64;
            return Known::Unselected;
        }
        Known::New
    }

    /// [`Store::append_known`] for every series of a request, taking each shard's lock once
    /// for all the request's series in it (rather than once per series): the writes to the
    /// rings under one lock overlap instead of each waiting for its unlock. Fills `new` with
    /// the indices, in request order, of the items not seen before ([`Known::New`]).
    pub fn append_known_batch(
        &self,
        items: &[BatchItem],
        samples: &[Sample],
        now_ms: i64,
        stats: &mut AppendStats,
        new: &mut Vec<u32>,
    ) {
        new.clear();
        // Item indices grouped by shard (a stable counting sort).
        let mut start = [0u32; SHARDS + 1];
        for it in items {
            start[shard_index(it.hash.hash) + 1] += 1;
        }
        for i in 0..SHARDS {
            start[i + 1] += start[i];
        }
        let mut next = start;
        let mut order = vec![0u32; items.len()];
        for (i, it) in items.iter().enumerate() {
            let s = &mut next[shard_index(it.hash.hash)];
            order[*s as usize] = i as u32;
            *s += 1;
        }
        let now_s = self.seconds_since_epoch(now_ms);
        let part = |(start, len): (u32, u32)| start as usize..(start + len) as usize;
        for (shard, mutex) in self.shards.iter().enumerate() {
            let group = &order[start[shard] as usize..start[shard + 1] as usize];
            if group.is_empty() {
                continue;
            }
            let mut guard = mutex.lock().unwrap_or_else(|e| e.into_inner());
            for &i in group {
                let it = &items[i as usize];
                let s = &samples[part(it.samples)];
                let known = self.append_known_locked(&mut guard, it.hash, s, it.meta, now_s, stats);
                if known == Known::New {
                    new.push(i);
                }
            }
        }
        new.sort_unstable();
    }

    /// Remembers that the series with this label hash is never stored (see
    /// [`Store::append_known`]).
    pub fn remember_unselected(&self, hash: u64) {
        self.lock_shard(hash).remember_unselected(hash);
    }

    /// Appends one series' samples. `labels` must be sorted, unique and valid (ingest
    /// validates); `hash` is [`hash_labels`] of them.
    pub fn append(
        &self,
        hash: LabelHash,
        labels: &[LabelRef<'_>],
        samples: &[Sample],
        now_ms: i64,
        stats: &mut AppendStats,
    ) {
        self.append_with(hash, labels, samples, SeriesMeta::default(), now_ms, stats)
    }

    /// [`Store::append`] with what the request said of the series' type.
    pub fn append_with(
        &self,
        hash: LabelHash,
        labels: &[LabelRef<'_>],
        samples: &[Sample],
        meta: SeriesMeta,
        now_ms: i64,
        stats: &mut AppendStats,
    ) {
        let now_s = self.seconds_since_epoch(now_ms);
        {
            let mut guard = self.lock_shard(hash.hash);
            if self.append_known_locked(&mut guard, hash, samples, meta, now_s, stats) != Known::New
            {
                return;
            }
        }
        // New series: selectors run outside the lock.
        let Some(spec) = self.select(labels) else {
            stats.unselected += samples.len() as u64;
            self.remember_unselected(hash.hash);
            return;
        };
        let rate = self.wants_rate(spec, labels, meta.metric_type);
        // Reserve a place under the limit before building the ring.
        if !self.reserve_series() {
            stats.series_limit += samples.len() as u64;
            return;
        }
        let mut guard = self.lock_shard(hash.hash);
        // Another request may have created it meanwhile.
        let slot = match guard.find(hash) {
            Some(slot) => {
                self.series.fetch_sub(1, Ordering::AcqRel);
                slot
            }
            None => {
                stats.series_created += 1;
                let labels = Arc::new(LabelSet::from_refs(labels));
                let ring = Ring::new(self.ring_len);
                let series = self.new_series(labels, hash, spec, ring, rate);
                guard.insert(Series {
                    last_seen: now_s,
                    own_type: meta.metric_type,
                    ..series
                })
            }
        };
        self.push_samples(guard.series_mut(slot), samples, meta, now_s, stats);
    }

    /// Backfilled history (oldest first) for a stored series: values fill the empty buckets,
    /// as [`Store::append`] does; a counter stored as rates is rebuilt from the history, as
    /// its rates need its samples in order.
    pub fn backfill(
        &self,
        labels: &[LabelRef<'_>],
        samples: &[Sample],
        now_ms: i64,
        stats: &mut AppendStats,
    ) {
        let hash = hash_labels(labels);
        let mut guard = self.lock_shard(hash.hash);
        let Some(slot) = guard.find(hash) else {
            return;
        };
        let series = guard.series_mut(slot);
        let newest = series.counter.as_ref().and_then(|c| c.last_ts());
        if let Some(newest) = newest {
            if samples.last().is_some_and(|s| s.timestamp >= newest) {
                series.ring = Ring::new(self.ring_len);
                series.counter = Some(Box::default());
            }
        }
        let now_s = self.seconds_since_epoch(now_ms);
        self.push_samples(series, samples, SeriesMeta::default(), now_s, stats);
    }

    fn push_samples(
        &self,
        series: &mut Series,
        samples: &[Sample],
        meta: SeriesMeta,
        now_s: u32,
        stats: &mut AppendStats,
    ) {
        series.last_seen = now_s;
        if meta.metric_type != MetricType::Unknown && meta.metric_type != series.own_type {
            series.own_type = meta.metric_type;
            if self.counters_as_rates[series.spec as usize] {
                let name = series.labels.metric_name().as_bytes();
                // A type of its own decides without the family table.
                let rate = is_cumulative(name, meta.metric_type, |_| None);
                if self.set_rate(series, rate) {
                    stats.kind_changes += 1;
                }
            }
        }
        // Late samples (backfill) coded once a block, when the writer is dropped at the end.
        let mut ring = series.ring.writer();
        for s in samples {
            let bucket = self.bucket_after(ring.head(), s.timestamp);
            if is_stale_marker(s.value) {
                stats.stale_markers += 1;
                if ring.head().is_none_or(|h| bucket >= h) {
                    series.stale = true;
                }
                continue;
            }
            // A counter stored as rates pushes its rate, at the bucket and time it is for.
            let (bucket, ts, value) = match series.counter.as_deref_mut() {
                None => (bucket, s.timestamp, s.value),
                Some(c) => match c.push(bucket, s.timestamp, s.value, meta.created_ms) {
                    RateStep::Rate { bucket, ts, rate } => (bucket, ts, rate),
                    RateStep::Start => {
                        series.stale = false;
                        stats.appended += 1;
                        continue;
                    }
                    RateStep::Old => {
                        stats.merged += 1;
                        continue;
                    }
                },
            };
            match ring.push(bucket, ts, value as f32) {
                Push::Appended => {
                    series.stale = false;
                    stats.appended += 1;
                }
                Push::Merged => stats.merged += 1,
                Push::TooOld => stats.too_old += 1,
            }
        }
    }

    /// Removes series with no sample for `idle_timeout`; returns how many.
    pub fn evict_idle(&self, now_ms: i64) -> usize {
        let now_s = self.seconds_since_epoch(now_ms);
        let mut evicted = 0;
        for shard in self.shards.iter() {
            let mut guard = shard.lock().unwrap_or_else(|e| e.into_inner());
            evicted += guard.evict_idle(now_s, self.idle_timeout_s);
        }
        self.series.fetch_sub(evicted, Ordering::AcqRel);
        evicted
    }

    /// Calls `f` for every series of shard `i` under that shard's lock: copy out, don't compute.
    pub fn visit_shard(&self, i: usize, f: impl FnMut(&Series)) {
        let guard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        guard.iter().for_each(f);
    }

    pub fn shard_count(&self) -> usize {
        SHARDS
    }

    /// Runs `f` on the series with these labels, if stored.
    pub fn with_series<R>(&self, labels: &LabelSet, f: impl FnOnce(&Series) -> R) -> Option<R> {
        let hash = labels.label_hash();
        self.lock_shard(hash.hash).get(hash).map(f)
    }

    /// Bytes held per series (ring, labels, entry, index), averaged: for the memory bench.
    pub fn heap_bytes(&self) -> usize {
        let shards = self.shards.iter();
        shards
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).heap_bytes())
            .sum()
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml, "test", None).unwrap()
    }

    fn refs<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<LabelRef<'a>> {
        pairs.iter().map(|(n, v)| LabelRef::new(n, v)).collect()
    }

    const YAML: &str = r#"
storage: { step: 1m, retention: 1h, idle_timeout: 5m }
forecast:
  - selector: '{__name__="a:b:c"}'
  - selector: '{__name__=~".+:.+", job="web"}'
limits: { max_series: 2 }
"#;

    #[test]
    fn selects_buckets_and_limits() {
        let store = Store::new(&config(YAML), 0);
        let mut st = AppendStats::default();
        let a = refs(&[("__name__", "a:b:c"), ("job", "x")]);
        let b = refs(&[("__name__", "x:y"), ("job", "web")]);
        let c = refs(&[("__name__", "x:y"), ("job", "api")]);
        let d = refs(&[("__name__", "z:y"), ("job", "web")]);
        let s = |t: i64, v: f64| Sample {
            value: v,
            timestamp: t,
        };
        store.append(
            hash_labels(&a),
            &a,
            &[s(60_000, 1.0), s(90_000, 2.0)],
            0,
            &mut st,
        );
        store.append(hash_labels(&b), &b, &[s(60_000, 5.0)], 0, &mut st);
        store.append(hash_labels(&c), &c, &[s(60_000, 5.0)], 0, &mut st);
        assert_eq!(st.unselected, 1, "job=api matches no selector");
        store.append(hash_labels(&d), &d, &[s(60_000, 5.0)], 0, &mut st);
        assert_eq!(
            st.series_limit, 1,
            "third selected series is over max_series"
        );
        assert_eq!(store.series_count(), 2);
        let got = store
            .with_series(&LabelSet::from_refs(&a), |s| (s.spec, s.ring.get(1)))
            .unwrap();
        assert_eq!(got, (0, Some(2.0)), "last sample of the bucket wins");
        let spec_b = store
            .with_series(&LabelSet::from_refs(&b), |s| s.spec)
            .unwrap();
        assert_eq!(spec_b, 1);
    }

    #[test]
    fn staleness_ends_a_run_and_eviction_frees() {
        let store = Store::new(&config(YAML), 0);
        let mut st = AppendStats::default();
        let a = refs(&[("__name__", "a:b:c")]);
        let h = hash_labels(&a);
        let stale = f64::from_bits(STALE_NAN_BITS);
        store.append(
            h,
            &a,
            &[Sample {
                value: 1.0,
                timestamp: 60_000,
            }],
            0,
            &mut st,
        );
        store.append(
            h,
            &a,
            &[Sample {
                value: stale,
                timestamp: 120_000,
            }],
            0,
            &mut st,
        );
        let set = LabelSet::from_refs(&a);
        assert_eq!(store.with_series(&set, |s| s.stale), Some(true));
        assert_eq!(st.stale_markers, 1);
        assert_eq!(st.appended, 1, "the marker is not a value");
        store.append(
            h,
            &a,
            &[Sample {
                value: 3.0,
                timestamp: 180_000,
            }],
            0,
            &mut st,
        );
        assert_eq!(store.with_series(&set, |s| s.stale), Some(false));

        assert_eq!(store.evict_idle(4 * 60_000), 0);
        assert_eq!(store.evict_idle(5 * 60_000), 1);
        assert_eq!(store.series_count(), 0);
        assert!(store.with_series(&set, |_| ()).is_none());
        // The slot is reused and the new series gets a new id.
        store.append(
            h,
            &a,
            &[Sample {
                value: 1.0,
                timestamp: 400_000,
            }],
            400_000,
            &mut st,
        );
        assert_eq!(store.series_count(), 1);
        assert_eq!(store.with_series(&set, |s| s.id), Some(SeriesId(2)));
    }

    /// Backfill fills a gauge's empty buckets; a counter stored as rates is rebuilt from the
    /// history (its live samples so far are in it), so its rates cover the history.
    #[test]
    fn backfill_rebuilds_a_counters_rates() {
        let yaml = "storage: { step: 1m, retention: 1h }\nforecast:\n  - selector: '{job=\"j\"}'\n";
        let store = Store::new(&config(yaml), 0);
        let mut st = AppendStats::default();
        let c = refs(&[("__name__", "req_total"), ("job", "j")]);
        let g = refs(&[("__name__", "temp"), ("job", "j")]);
        let history: Vec<Sample> = (0..20)
            .map(|i| Sample {
                value: 120.0 * i as f64,
                timestamp: i * 60_000,
            })
            .collect();
        // Live traffic starts with the newest sample; then the history arrives.
        for l in [&c, &g] {
            store.append(hash_labels(l), l, &history[19..], 0, &mut st);
        }
        for l in [&c, &g] {
            store.backfill(l, &history, 0, &mut st);
        }
        let ring = |l: &[LabelRef<'_>]| {
            store
                .with_series(&LabelSet::from_refs(l), |s| {
                    let mut v = Vec::new();
                    s.ring.copy_last(s.ring.history_len(), &mut v);
                    (s.is_rate(), v)
                })
                .unwrap()
        };
        let (rate, v) = ring(&c);
        assert!(rate);
        assert_eq!(v.len(), 19, "rates from the second sample on");
        assert!(v.iter().all(|r| *r == 2.0), "{v:?}");
        let (rate, v) = ring(&g);
        assert!(!rate);
        assert_eq!(v.len(), 20);
        assert_eq!(v[5], 600.0);
        // The next live sample continues the chain.
        let next = [Sample {
            value: 120.0 * 19.0 + 300.0,
            timestamp: 20 * 60_000,
        }];
        store.append(hash_labels(&c), &c, &next, 0, &mut st);
        assert_eq!(ring(&c).1.last(), Some(&5.0));
    }
}
