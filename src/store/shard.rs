//! The sharded series map: a stored [`Series`], and one [`Shard`] of the map (series in
//! slots, found by their label hash, freed slots reused), with its negative cache of label
//! hashes known not to be stored. The [`super::Store`] takes a shard's lock and works
//! through these; nothing here knows selectors, limits or the clock.

use std::sync::Arc;

use hashbrown::HashTable;

use super::kind::{CounterState, MetricType};
use super::labels::{LabelHash, LabelSet};
use super::ring::Ring;

/// Shards of the map; a label hash picks one with [`shard_index`].
pub(super) const SHARDS: usize = 64;

/// Negative-cache entries per shard (64 shards: about 1M series, ~9 MiB at most).
const UNSELECTED_PER_SHARD: usize = 16_384;

/// The shard of a label hash. The low bits pick the hash-table bucket inside a shard; use the
/// high bits here.
pub(super) fn shard_index(hash: u64) -> usize {
    (hash >> 58) as usize % SHARDS
}

/// A series' stable identity for the lifetime of the process (never reused after eviction),
/// so per-series model state kept elsewhere cannot attach to a newer series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(pub u64);

/// A stored series.
pub struct Series {
    pub id: SeriesId,
    pub labels: Arc<LabelSet>,
    /// Index of the forecast entry whose selector matched.
    pub spec: u16,
    /// True after a staleness marker until the next real sample: the run has ended.
    pub stale: bool,
    /// Seconds since the store's epoch of the last sample received (for idle eviction).
    pub(super) last_seen: u32,
    pub(super) hash: u64,
    /// The second half of the series' [`LabelHash`].
    pub(super) check: u64,
    pub ring: Ring,
    /// Set for a counter stored as its per-second rate (see [`super::kind`]): the ring holds
    /// rates.
    pub counter: Option<Box<CounterState>>,
    /// The type the series' own remote-write 2.0 metadata last said.
    pub(super) own_type: MetricType,
}

impl Series {
    /// Whether the ring holds the per-second rate of a counter rather than values as sent.
    pub fn is_rate(&self) -> bool {
        self.counter.is_some()
    }
}

#[derive(Default)]
pub(super) struct Shard {
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

impl Shard {
    /// The slot of the series with this label hash, if stored.
    pub(super) fn find(&self, h: LabelHash) -> Option<u32> {
        self.index
            .find(h.hash, |&slot| {
                self.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|s| s.hash == h.hash && s.check == h.check)
            })
            .copied()
    }

    /// The series in a slot [`Shard::find`] or [`Shard::insert`] returned.
    pub(super) fn series_mut(&mut self, slot: u32) -> &mut Series {
        self.slots[slot as usize]
            .as_mut()
            .expect("indexed slot is live")
    }

    /// The series with this label hash, if stored.
    pub(super) fn get(&self, h: LabelHash) -> Option<&Series> {
        let slot = self.find(h)?;
        self.slots[slot as usize].as_ref()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Series> {
        self.slots.iter().flatten()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Series> {
        self.slots.iter_mut().flatten()
    }

    /// Stores a series (not stored yet) in a free slot; returns the slot.
    pub(super) fn insert(&mut self, series: Series) -> u32 {
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

    /// Whether the series with this label hash is known not to be stored.
    pub(super) fn is_unselected(&self, hash: u64) -> bool {
        self.unselected.contains(&hash)
    }

    /// Remembers that the series with this label hash is never stored.
    pub(super) fn remember_unselected(&mut self, hash: u64) {
        if self.unselected.len() >= UNSELECTED_PER_SHARD {
            self.unselected.clear();
        }
        self.unselected.insert(hash);
    }

    /// Removes the series last seen `idle_s` seconds or more before `now_s`; returns how many.
    pub(super) fn evict_idle(&mut self, now_s: u32, idle_s: u32) -> usize {
        let Shard {
            index, slots, free, ..
        } = self;
        let mut evicted = 0;
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(s) = slot.take_if(|s| now_s.saturating_sub(s.last_seen) >= idle_s) else {
                continue;
            };
            if let Ok(entry) = index.find_entry(s.hash, |&x| x == i as u32) {
                entry.remove();
            }
            free.push(i as u32);
            evicted += 1;
        }
        evicted
    }

    /// Bytes the shard holds (slots, index, rings, labels).
    pub(super) fn heap_bytes(&self) -> usize {
        let mut total = self.slots.capacity() * std::mem::size_of::<Option<Series>>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.free.capacity() * 4;
        for s in self.iter() {
            total += s.ring.heap_bytes() + s.labels.heap_bytes() + 2 * std::mem::size_of::<usize>();
        }
        total
    }
}

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
