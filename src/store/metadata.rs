//! What the metric types say: remote-write 1.0 metadata gives a family's type, 2.0 gives a
//! series' own; a counter of a forecast entry with `counters: rate` is stored as its
//! per-second rate. Here the store remembers the families' types (at most
//! [`MAX_METRIC_TYPES`]) and switches the series a new type changes.

use std::sync::atomic::Ordering;

use super::kind::{cumulative_stem, is_cumulative, MetricType};
use super::labels::LabelRef;
use super::ring::Ring;
use super::shard::{Series, SeriesId};
use super::Store;

/// Metric families whose type the metadata table remembers, at most.
pub const MAX_METRIC_TYPES: usize = 100_000;

impl Store {
    /// Whether a new series of entry `spec` with these labels is stored as a counter's rates,
    /// given the type its own metadata says (`own`) and the metadata table.
    pub(super) fn wants_rate(&self, spec: u16, labels: &[LabelRef<'_>], own: MetricType) -> bool {
        let name = labels.iter().find(|l| l.name == b"__name__");
        let name = name.map_or(&b""[..], |l| l.value);
        self.counters_as_rates[spec as usize] && is_cumulative(name, own, |f| self.family_type(f))
    }

    /// The type remote-write 1.0 metadata gave the metric family `name`.
    fn family_type(&self, name: &[u8]) -> Option<MetricType> {
        let types = self.types.lock().unwrap_or_else(|e| e.into_inner());
        types.get(name).copied()
    }

    /// Stores a series as rates or as values from now on; its ring starts over when that
    /// changes. Returns whether it did.
    pub(super) fn set_rate(&self, series: &mut Series, rate: bool) -> bool {
        if series.is_rate() == rate {
            return false;
        }
        series.ring = Ring::new(self.ring_len);
        series.counter = rate.then(Box::default);
        // A new identity: model state and forecast history of the old values do not carry over.
        series.id = SeriesId(self.next_id.fetch_add(1, Ordering::Relaxed));
        tracing::info!(
            series = %series.labels.metric_name(),
            rate,
            "metric type known: series now stored as {}",
            if rate { "per-second rate" } else { "values as sent" }
        );
        true
    }

    /// Remembers the metric types of remote-write 1.0 metadata (`(type, family name)`) and
    /// switches the stored series whose type they change. Returns how many switched.
    /// Lock order: the type table, then shards (nothing takes them the other way round).
    pub fn apply_metadata<'a>(
        &self,
        entries: impl IntoIterator<Item = (MetricType, &'a [u8])>,
    ) -> usize {
        let mut types = self.types.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed: hashbrown::HashSet<&[u8]> = hashbrown::HashSet::new();
        for (kind, name) in entries {
            let full = types.len() >= MAX_METRIC_TYPES;
            match types.get_mut(name) {
                Some(t) if *t == kind => {}
                Some(t) => {
                    *t = kind;
                    changed.insert(name);
                }
                None if !full => {
                    types.insert(name.into(), kind);
                    changed.insert(name);
                }
                None => {}
            }
        }
        if changed.is_empty() {
            return 0;
        }
        let family = |f: &[u8]| types.get(f).copied();
        let mut switched = 0;
        for shard in self.shards.iter() {
            let mut guard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for series in guard.iter_mut() {
                if !self.counters_as_rates[series.spec as usize] {
                    continue;
                }
                let name = series.labels.metric_name().as_bytes();
                let stem = cumulative_stem(name);
                if !changed.contains(name) && !stem.is_some_and(|s| changed.contains(s)) {
                    continue;
                }
                let rate = is_cumulative(name, series.own_type, family);
                if self.set_rate(series, rate) {
                    switched += 1;
                }
            }
        }
        switched
    }
}
