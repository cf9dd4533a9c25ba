//! A fixed-capacity ring of step buckets for one series.
//!
//! Bucket `b` holds the sample whose timestamp falls in `[b*step, (b+1)*step)`; the last
//! sample (by timestamp) of a bucket wins. Buckets never written read as NaN (a gap).
//! Values are `f32`: a day at one-minute resolution is 5.6 KiB, which keeps a series under
//! the 8 KiB budget; forecasts need no more than 7 significant digits.

/// What happened to one pushed sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Advanced the head or overwrote the head bucket with a newer sample.
    Appended,
    /// Filled a gap or repeated a sample inside the ring (a retry, an out-of-order write).
    Merged,
    /// Older than the ring holds: dropped.
    TooOld,
}

#[derive(Clone)]
pub struct Ring {
    values: Box<[f32]>,
    /// Bucket index of the newest bucket; `i64::MIN` while empty.
    head: i64,
    /// Timestamp of the sample that last wrote the head bucket, so that an older sample of
    /// the same bucket arriving late does not replace a newer one.
    head_ts: i64,
    /// Bucket of the first sample ever pushed: how much history exists.
    first: i64,
    /// `slot(head)`, kept so that the common pushes (into the head bucket or the next one)
    /// need no division.
    head_slot: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "ring capacity must be positive");
        Self {
            values: vec![f32::NAN; capacity].into_boxed_slice(),
            head: i64::MIN,
            head_ts: i64::MIN,
            first: i64::MIN,
            head_slot: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.values.len()
    }

    /// Newest bucket index, if any sample was pushed.
    pub fn head(&self) -> Option<i64> {
        (self.head != i64::MIN).then_some(self.head)
    }

    /// Buckets from the first sample to the head, at most the capacity.
    pub fn history_len(&self) -> usize {
        match self.head() {
            None => 0,
            Some(h) => ((h - self.first + 1) as u64).min(self.values.len() as u64) as usize,
        }
    }

    fn slot(&self, bucket: i64) -> usize {
        bucket.rem_euclid(self.values.len() as i64) as usize
    }

    pub fn push(&mut self, bucket: i64, ts: i64, value: f32) -> Push {
        let cap = self.values.len() as i64;
        if self.head == i64::MIN {
            self.head = bucket;
            self.head_ts = ts;
            self.first = bucket;
            self.head_slot = self.slot(bucket);
            self.values[self.head_slot] = value;
            return Push::Appended;
        }
        if bucket == self.head {
            if ts >= self.head_ts {
                self.values[self.head_slot] = value;
                self.head_ts = ts;
                return Push::Appended;
            }
            return Push::Merged;
        }
        if bucket > self.head {
            let s = if bucket == self.head + 1 {
                (self.head_slot + 1) % self.values.len()
            } else {
                // Clear the buckets skipped over (at most a full ring).
                let gap = (bucket - self.head - 1).min(cap);
                for b in (bucket - gap)..bucket {
                    let s = self.slot(b);
                    self.values[s] = f32::NAN;
                }
                self.slot(bucket)
            };
            self.values[s] = value;
            self.head = bucket;
            self.head_ts = ts;
            self.head_slot = s;
            return Push::Appended;
        }
        if bucket <= self.head - cap {
            return Push::TooOld;
        }
        if bucket < self.first {
            self.first = bucket;
        }
        // An older bucket: fill it when empty; a value already there came from a sample
        // that was in order at the time, so it stays.
        let s = self.slot(bucket);
        if self.values[s].is_nan() {
            self.values[s] = value;
        }
        Push::Merged
    }

    /// Value of one bucket, `None` outside the ring; NaN for a gap.
    pub fn get(&self, bucket: i64) -> Option<f32> {
        let head = self.head()?;
        if bucket > head || bucket <= head - self.values.len() as i64 {
            return None;
        }
        Some(self.values[self.slot(bucket)])
    }

    /// Appends the last `n` buckets ending at the head (oldest first) to `out`; buckets
    /// before the ring's history read as NaN.
    pub fn copy_last(&self, n: usize, out: &mut Vec<f32>) {
        let Some(head) = self.head() else {
            out.extend(std::iter::repeat_n(f32::NAN, n));
            return;
        };
        let cap = self.values.len();
        let avail = n.min(cap);
        out.extend(std::iter::repeat_n(f32::NAN, n - avail));
        let start = head - avail as i64 + 1;
        let s = self.slot(start);
        // Two contiguous runs at most.
        let first_run = (cap - s).min(avail);
        out.extend_from_slice(&self.values[s..s + first_run]);
        out.extend_from_slice(&self.values[..avail - first_run]);
    }

    /// The ring's state as saved in a snapshot: `(head, head_ts, first, values)` with the
    /// values in slot order.
    pub fn parts(&self) -> (i64, i64, i64, &[f32]) {
        (self.head, self.head_ts, self.first, &self.values)
    }

    /// A ring from [`Ring::parts`]; `None` when the values are empty.
    pub fn from_parts(head: i64, head_ts: i64, first: i64, values: Vec<f32>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let head_slot = head.rem_euclid(values.len() as i64) as usize;
        Some(Self {
            values: values.into_boxed_slice(),
            head,
            head_ts,
            first,
            head_slot,
        })
    }

    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn buckets_gaps_and_order() {
        let mut r = Ring::new(4);
        assert_eq!(r.push(10, 100, 1.0), Push::Appended);
        assert_eq!(r.push(12, 120, 3.0), Push::Appended);
        let mut out = Vec::new();
        r.copy_last(3, &mut out);
        assert_eq!(out[0], 1.0);
        assert!(out[1].is_nan(), "bucket 11 is a gap");
        assert_eq!(out[2], 3.0);
        assert_eq!(r.push(11, 110, 2.0), Push::Merged, "gap filled");
        assert_eq!(r.get(11), Some(2.0));
        assert_eq!(
            r.push(12, 119, 9.0),
            Push::Merged,
            "older sample of the head bucket loses"
        );
        assert_eq!(r.get(12), Some(3.0));
        assert_eq!(
            r.push(12, 125, 4.0),
            Push::Appended,
            "newer sample of the head bucket wins"
        );
        assert_eq!(r.get(12), Some(4.0));
        assert_eq!(r.push(8, 80, 0.0), Push::TooOld);
        assert_eq!(r.history_len(), 3);
        assert_eq!(r.push(100, 1000, 5.0), Push::Appended);
        assert_eq!(r.history_len(), 4);
        out.clear();
        r.copy_last(4, &mut out);
        assert!(
            out[..3].iter().all(|v| v.is_nan()),
            "a jump clears the ring: {out:?}"
        );
        assert_eq!(out[3], 5.0);
    }

    /// The model: every bucket ever written, keyed by absolute index; the ring must show
    /// exactly those inside the window that ends at the head.
    struct Model {
        cap: usize,
        head: Option<i64>,
        buckets: BTreeMap<i64, (i64, f32)>,
    }

    impl Model {
        fn push(&mut self, b: i64, ts: i64, v: f32) -> Push {
            let Some(h) = self.head else {
                self.head = Some(b);
                self.buckets.insert(b, (ts, v));
                return Push::Appended;
            };
            if b > h {
                self.head = Some(b);
                self.buckets.insert(b, (ts, v));
                Push::Appended
            } else if b <= h - self.cap as i64 {
                Push::TooOld
            } else if b == h {
                if ts >= self.buckets[&b].0 {
                    self.buckets.insert(b, (ts, v));
                    Push::Appended
                } else {
                    Push::Merged
                }
            } else {
                self.buckets.entry(b).or_insert((ts, v));
                Push::Merged
            }
        }

        fn last(&self, n: usize) -> Vec<Option<f32>> {
            let Some(h) = self.head else {
                return vec![None; n];
            };
            (0..n as i64)
                .rev()
                .map(|k| h - k)
                .map(|b| {
                    (b > h - self.cap as i64)
                        .then(|| self.buckets.get(&b).map(|x| x.1))
                        .flatten()
                })
                .collect()
        }
    }

    proptest! {
        #[test]
        fn ring_matches_model(cap in 1usize..12, ops in prop::collection::vec((0i64..40, 0i64..10, -1e6f32..1e6), 1..200)) {
            let mut ring = Ring::new(cap);
            let mut model = Model { cap, head: None, buckets: BTreeMap::new() };
            for (b, sub, v) in ops {
                let ts = b * 10 + sub;
                prop_assert_eq!(ring.push(b, ts, v), model.push(b, ts, v));
                let n = cap + 2;
                let mut got = Vec::new();
                ring.copy_last(n, &mut got);
                let want = model.last(n);
                prop_assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    match w {
                        Some(w) => prop_assert_eq!(*g, *w),
                        None => prop_assert!(g.is_nan()),
                    }
                }
            }
        }
    }
}
