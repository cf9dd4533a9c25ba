//! The series store: only series that match a forecast selector are kept, each with a
//! fixed-capacity ring of step buckets, in a sharded map keyed by the label-set hash.
//!
//! Ingest hands each request's series to [`Store::append_known_batch`] and calls
//! [`Store::append`] for those seen for the first time; the forecast loop reads rings
//! with [`Store::visit_shard`] and copies what it needs out under a short lock.

mod labels;
pub mod persist;
mod ring;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hashbrown::HashTable;

pub(crate) use labels::varint_len;
pub use labels::{encode_canonical, hash_labels, LabelHash, LabelRef, LabelSet};
pub use ring::{Push, Ring};

use crate::config::{Config, Selector};

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

/// A series' stable identity for the lifetime of the process (never reused after eviction),
/// so per-series model state kept elsewhere cannot attach to a newer series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub u64);

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
    }
}

/// A stored series.
pub struct Series {
    pub id: SeriesId,
    pub labels: Arc<LabelSet>,
    /// Index of the forecast entry whose selector matched.
    pub spec: u16,
    /// True after a staleness marker until the next real sample: the run has ended.
    pub stale: bool,
    /// Seconds since the store's epoch of the last sample received (for idle eviction).
    last_seen: u32,
    hash: u64,
    /// The second half of the series' [`LabelHash`].
    check: u64,
    pub ring: Ring,
}

#[derive(Default)]
struct Shard {
    /// Slot indices, found by the first half of the label hash and checked against the
    /// slot's whole 128-bit [`LabelHash`].
    index: HashTable<u32>,
    slots: Vec<Option<Series>>,
    free: Vec<u32>,
    /// Label hashes of series known not to be stored (no selector matches, or promcast's
    /// own output), so a Prometheus that forwards everything costs one lookup per series
    /// rather than a selector evaluation. Selection depends only on the labels, so an entry
    /// never goes stale; the set is cleared when it reaches [`UNSELECTED_PER_SHARD`]. Keyed
    /// by the 64-bit hash alone: a selected series whose hash equals an earlier unselected
    /// one's (odds ~n²/2⁶⁵) would be dropped as unselected.
    unselected: hashbrown::HashSet<u64, BuildNoHash>,
}

/// Negative-cache entries per shard (64 shards: about 1M series, ~9 MiB at most).
const UNSELECTED_PER_SHARD: usize = 16_384;

/// The keys are already hashes.
#[derive(Default, Clone, Copy)]
struct BuildNoHash;

struct NoHash(u64);

impl std::hash::BuildHasher for BuildNoHash {
    type Hasher = NoHash;
    fn build_hasher(&self) -> NoHash {
        NoHash(0)
    }
}

impl std::hash::Hasher for NoHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
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

impl Shard {
    fn find(&self, h: LabelHash) -> Option<u32> {
        self.index
            .find(h.hash, |&slot| {
                self.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|s| s.hash == h.hash && s.check == h.check)
            })
            .copied()
    }

    fn insert(&mut self, series: Series) -> u32 {
        let hash = series.hash;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(series);
                slot
            }
            None => {
                self.slots.push(Some(series));
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, slot, |&s| {
            slots[s as usize].as_ref().map_or(0, |x| x.hash)
        });
        slot
    }
}

const SHARDS: usize = 64;

/// The shard of a label hash. The low bits pick the hash-table bucket inside a shard; use the
/// high bits here.
fn shard_index(hash: u64) -> usize {
    (hash >> 58) as usize % SHARDS
}

/// One series of a request for [`Store::append_known_batch`]: its label hash, and where its
/// samples lie in the request's flat array (`start..start + len`).
#[derive(Debug, Clone, Copy)]
pub struct BatchItem {
    pub hash: LabelHash,
    pub samples: (u32, u32),
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
    /// Told of every series created (backfill queues it); must not block.
    on_new: std::sync::OnceLock<Box<NewSeriesHook>>,
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
            on_new: std::sync::OnceLock::new(),
        }
    }

    /// Registers the hook told of new series (once; later calls are ignored).
    pub fn on_new_series(&self, hook: Box<NewSeriesHook>) {
        let _ = self.on_new.set(hook);
    }

    /// Puts back a series from a snapshot: selected by the current selectors, within
    /// `max_series`, its ring as saved. Returns false when it is not (no longer) selected,
    /// the limit is reached, or it is already stored.
    pub fn restore(&self, labels: LabelSet, ring: Ring, stale: bool, now_ms: i64) -> bool {
        let refs: Vec<LabelRef<'_>> = labels.iter().map(|(n, v)| LabelRef::new(n, v)).collect();
        let Some(spec) = self.select(&refs) else {
            return false;
        };
        if ring.capacity() != self.ring_len {
            return false;
        }
        let hash = hash_labels(&refs);
        let shard = self.shard_of(hash.hash);
        let mut guard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if guard.find(hash).is_some() {
            return false;
        }
        if self
            .series
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_series).then_some(n + 1)
            })
            .is_err()
        {
            return false;
        }
        let labels = Arc::new(labels);
        guard.insert(Series {
            id: SeriesId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            labels: labels.clone(),
            spec,
            stale,
            last_seen: self.seconds_since_epoch(now_ms),
            hash: hash.hash,
            check: hash.check,
            ring,
        });
        drop(guard);
        if let Some(hook) = self.on_new.get() {
            hook(&labels);
        }
        true
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

    fn shard_of(&self, hash: u64) -> &Mutex<Shard> {
        &self.shards[shard_index(hash)]
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
        let mut guard = self
            .shard_of(hash.hash)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now_s = self.seconds_since_epoch(now_ms);
        self.append_known_locked(&mut guard, hash, samples, now_s, stats)
    }

    /// [`Store::append_known`] under the lock of the series' shard.
    fn append_known_locked(
        &self,
        shard: &mut Shard,
        hash: LabelHash,
        samples: &[Sample],
        now_s: u32,
        stats: &mut AppendStats,
    ) -> Known {
        if let Some(slot) = shard.find(hash) {
            let series = shard.slots[slot as usize]
                .as_mut()
                .expect("indexed slot is live");
            self.push_samples(series, samples, now_s, stats);
            return Known::Appended;
        }
        if shard.unselected.contains(&hash.hash) {
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
                if self.append_known_locked(&mut guard, it.hash, s, now_s, stats) == Known::New {
                    new.push(i);
                }
            }
        }
        new.sort_unstable();
    }

    /// Remembers that the series with this label hash is never stored (see
    /// [`Store::append_known`]).
    pub fn remember_unselected(&self, hash: u64) {
        let mut guard = self
            .shard_of(hash)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if guard.unselected.len() >= UNSELECTED_PER_SHARD {
            guard.unselected.clear();
        }
        guard.unselected.insert(hash);
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
        if self.append_known(hash, samples, now_ms, stats) != Known::New {
            return;
        }
        let now_s = self.seconds_since_epoch(now_ms);
        let shard = self.shard_of(hash.hash);
        // New series: selectors run outside the lock.
        let Some(spec) = self.select(labels) else {
            stats.unselected += samples.len() as u64;
            self.remember_unselected(hash.hash);
            return;
        };
        // Reserve a place under the limit before building the ring.
        if self
            .series
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_series).then_some(n + 1)
            })
            .is_err()
        {
            stats.series_limit += samples.len() as u64;
            return;
        }
        let mut guard = shard.lock().unwrap_or_else(|e| e.into_inner());
        // Another request may have created it meanwhile.
        let slot = match guard.find(hash) {
            Some(slot) => {
                self.series.fetch_sub(1, Ordering::AcqRel);
                slot
            }
            None => {
                stats.series_created += 1;
                let interned = Arc::new(LabelSet::from_refs(labels));
                if let Some(hook) = self.on_new.get() {
                    hook(&interned);
                }
                guard.insert(Series {
                    id: SeriesId(self.next_id.fetch_add(1, Ordering::Relaxed)),
                    labels: interned,
                    spec,
                    stale: false,
                    last_seen: now_s,
                    hash: hash.hash,
                    check: hash.check,
                    ring: Ring::new(self.ring_len),
                })
            }
        };
        let series = guard.slots[slot as usize]
            .as_mut()
            .expect("indexed slot is live");
        self.push_samples(series, samples, now_s, stats);
    }

    fn push_samples(
        &self,
        series: &mut Series,
        samples: &[Sample],
        now_s: u32,
        stats: &mut AppendStats,
    ) {
        series.last_seen = now_s;
        for s in samples {
            let bucket = self.bucket_after(series.ring.head(), s.timestamp);
            if is_stale_marker(s.value) {
                stats.stale_markers += 1;
                if series.ring.head().is_none_or(|h| bucket >= h) {
                    series.stale = true;
                }
                continue;
            }
            match series.ring.push(bucket, s.timestamp, s.value as f32) {
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
            let Shard {
                index, slots, free, ..
            } = &mut *guard;
            let mut removed = Vec::new();
            for (i, slot) in slots.iter_mut().enumerate() {
                if slot
                    .as_ref()
                    .is_some_and(|s| now_s.saturating_sub(s.last_seen) >= self.idle_timeout_s)
                {
                    let s = slot.take().expect("checked");
                    removed.push((i as u32, s.hash));
                }
            }
            for (i, hash) in removed {
                if let Ok(entry) = index.find_entry(hash, |&x| x == i) {
                    entry.remove();
                }
                free.push(i);
                evicted += 1;
            }
        }
        self.series.fetch_sub(evicted, Ordering::AcqRel);
        evicted
    }

    /// Calls `f` for every series of shard `i` under that shard's lock: copy out, don't compute.
    pub fn visit_shard(&self, i: usize, mut f: impl FnMut(&Series)) {
        let guard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        for s in guard.slots.iter().flatten() {
            f(s);
        }
    }

    pub fn shard_count(&self) -> usize {
        SHARDS
    }

    /// Runs `f` on the series with these labels, if stored.
    pub fn with_series<R>(&self, labels: &LabelSet, f: impl FnOnce(&Series) -> R) -> Option<R> {
        let hash = labels.label_hash();
        let guard = self
            .shard_of(hash.hash)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let slot = guard.find(hash)?;
        guard.slots[slot as usize].as_ref().map(f)
    }

    /// Bytes held per series (ring, labels, entry, index), averaged: for the memory bench.
    pub fn heap_bytes(&self) -> usize {
        let mut total = 0;
        for shard in self.shards.iter() {
            let g = shard.lock().unwrap_or_else(|e| e.into_inner());
            total += g.slots.capacity() * std::mem::size_of::<Option<Series>>()
                + g.index.capacity() * (std::mem::size_of::<u32>() + 1)
                + g.free.capacity() * 4;
            for s in g.slots.iter().flatten() {
                total +=
                    s.ring.heap_bytes() + s.labels.heap_bytes() + 2 * std::mem::size_of::<usize>();
            }
        }
        total
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
}
