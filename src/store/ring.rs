//! A fixed-capacity ring of step buckets for one series, kept in compressed blocks.
//!
//! Bucket `b` holds the sample whose timestamp falls in `[b*step, (b+1)*step)`; the last
//! sample (by timestamp) of a bucket wins. Buckets never written read as NaN (a gap).
//! Values are `f32` (forecasts need no more than 7 significant digits), read back bit for
//! bit.
//!
//! The buckets are grouped in blocks of [`BLOCK`] aligned to the bucket index. The newest
//! block is open: plain `f32`s, written in place. When the head moves past it, it is sealed
//! with Gorilla's XOR coding ([`super::xor`]) and appended to one buffer of the sealed blocks
//! that the window (the last `capacity` buckets) still reaches. A day at one minute takes
//! 1.8 KiB on request counts and 4.1 KiB on noisy utilisation floats instead of 5.6 KiB
//! (docs/PERFORMANCE.md). A late sample for a sealed block decodes it, fills its gap and
//! codes it again; reading a block decodes it whole (~2 ns a value).

use super::xor;

/// Buckets a block holds.
pub const BLOCK: usize = 64;
const B: i64 = BLOCK as i64;

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
    /// Buckets the window ends at the head holds.
    cap: usize,
    /// Bucket index of the newest bucket; `i64::MIN` while empty.
    head: i64,
    /// Timestamp of the sample that last wrote the head bucket, so that an older sample of
    /// the same bucket arriving late does not replace a newer one.
    head_ts: i64,
    /// Bucket of the first sample ever pushed: how much history exists.
    first: i64,
    /// Block index of the first sealed block; the sealed blocks run from it to the open one.
    oldest: i64,
    /// The open block (`head / BLOCK`): its buckets after the head are NaN.
    open: Box<[f32; BLOCK]>,
    /// The sealed blocks' codings, oldest first.
    sealed: Box<[u8]>,
    /// Bytes of each sealed block's coding; 0 for a block with no sample.
    lens: Box<[u16]>,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "ring capacity must be positive");
        Self {
            cap: capacity,
            head: i64::MIN,
            head_ts: i64::MIN,
            first: i64::MIN,
            oldest: 0,
            open: Box::new([f32::NAN; BLOCK]),
            sealed: Box::default(),
            lens: Box::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Newest bucket index, if any sample was pushed.
    pub fn head(&self) -> Option<i64> {
        (self.head != i64::MIN).then_some(self.head)
    }

    /// Buckets from the first sample to the head, at most the capacity.
    pub fn history_len(&self) -> usize {
        match self.head() {
            None => 0,
            Some(h) => ((h - self.first + 1) as u64).min(self.cap as u64) as usize,
        }
    }

    fn open_block(&self) -> i64 {
        self.head.div_euclid(B)
    }

    pub fn push(&mut self, bucket: i64, ts: i64, value: f32) -> Push {
        self.writer().push(bucket, ts, value)
    }

    /// [`Ring::push`], a late sample into a sealed block filled in `late`'s decoded copy of
    /// it (coded back by [`Ring::settle`]).
    fn push_late(&mut self, bucket: i64, ts: i64, value: f32, late: &mut Late) -> Push {
        if self.head == i64::MIN {
            self.head = bucket;
            self.head_ts = ts;
            self.first = bucket;
            self.oldest = bucket.div_euclid(B);
            self.open[bucket.rem_euclid(B) as usize] = value;
            return Push::Appended;
        }
        if bucket == self.head {
            if ts >= self.head_ts {
                self.open[bucket.rem_euclid(B) as usize] = value;
                self.head_ts = ts;
                return Push::Appended;
            }
            return Push::Merged;
        }
        if bucket > self.head {
            if bucket.div_euclid(B) != self.open_block() {
                self.seal(bucket);
            }
            // The open block's buckets after the old head are NaN already.
            self.open[bucket.rem_euclid(B) as usize] = value;
            self.head = bucket;
            self.head_ts = ts;
            return Push::Appended;
        }
        if bucket <= self.head - self.cap as i64 {
            return Push::TooOld;
        }
        if bucket < self.first {
            self.first = bucket;
        }
        // An older bucket: fill it when empty; a value already there came from a sample
        // that was in order at the time, so it stays.
        let k = bucket.div_euclid(B);
        let at = bucket.rem_euclid(B) as usize;
        if k == self.open_block() {
            if self.open[at].is_nan() {
                self.open[at] = value;
            }
        } else {
            // The decoded block may stay across other pushes: `settle` finds its place again
            // (a seal moves the blocks; one the window left behind is dropped with its late
            // samples, which no read could see any more).
            self.fill_late(k, at, value, late);
        }
        Push::Merged
    }

    /// Seals the open block and opens the one of `bucket` (a later block), keeping the
    /// blocks the new window reaches.
    fn seal(&mut self, bucket: i64) {
        let new_open = bucket.div_euclid(B);
        let keep_from = (bucket - self.cap as i64 + 1).div_euclid(B);
        let old_open = self.open_block();
        let mut coded = Vec::with_capacity(RAW_BYTES + 8);
        let code = if old_open >= keep_from {
            encode_block(&self.open, &mut coded)
        } else {
            EMPTY
        };
        // Blocks dropped from the front, and bytes they take. The buffers are reused in
        // place (the allocator grows them within their size class without moving, mostly).
        let drop = (keep_from - self.oldest).clamp(0, self.lens.len() as i64) as usize;
        let drop_bytes: usize = self.lens[..drop].iter().map(|&l| stored(l)).sum();
        let start = self.oldest.max(keep_from).min(new_open);
        let mut lens = Vec::from(std::mem::take(&mut self.lens));
        lens.drain(..drop);
        let mut sealed = Vec::from(std::mem::take(&mut self.sealed));
        sealed.drain(..drop_bytes);
        if old_open >= start {
            lens.reserve_exact(1);
            lens.push(code);
            sealed.reserve_exact(coded.len());
            sealed.extend_from_slice(&coded);
        }
        // Blocks skipped over hold nothing.
        let blocks = (new_open - start) as usize;
        lens.reserve_exact(blocks.saturating_sub(lens.len()));
        lens.resize(blocks, EMPTY);
        self.oldest = start;
        self.lens = lens.into_boxed_slice();
        self.sealed = sealed.into_boxed_slice();
        self.open.fill(f32::NAN);
    }

    /// Index into `lens` and byte offset of sealed block `k`, if held.
    fn locate(&self, k: i64) -> Option<(usize, usize)> {
        let i = usize::try_from(k - self.oldest).ok()?;
        self.lens.get(i)?;
        Some((i, self.lens[..i].iter().map(|&l| stored(l)).sum()))
    }

    /// Decodes sealed block `k` into `out` (NaN when it is not held or holds nothing).
    fn read_block(&self, k: i64, out: &mut [f32; BLOCK]) {
        match self.locate(k) {
            Some((i, off)) => decode_block(&self.sealed, off, self.lens[i], out),
            None => out.fill(f32::NAN),
        }
    }

    /// Fills bucket `at` of sealed block `k` in `late` (decoding the block into it first,
    /// after settling the one it held) when it is a gap.
    fn fill_late(&mut self, k: i64, at: usize, value: f32, late: &mut Late) {
        if late.block != Some(k) {
            self.settle(late);
            if k < self.oldest {
                // Before the first sealed block (a late sample of a new series): the blocks
                // in between hold nothing yet.
                let more = (self.oldest - k) as usize;
                let mut lens = vec![EMPTY; more];
                lens.extend_from_slice(&self.lens);
                self.lens = lens.into_boxed_slice();
                self.oldest = k;
            }
            self.read_block(k, &mut late.values);
            late.block = Some(k);
        }
        if late.values[at].is_nan() {
            late.values[at] = value;
            late.dirty = true;
        }
    }

    /// Codes the block `late` holds back into its place, if it changed.
    fn settle(&mut self, late: &mut Late) {
        let (Some(k), true) = (late.block.take(), std::mem::take(&mut late.dirty)) else {
            return;
        };
        let Some((i, off)) = self.locate(k) else {
            return;
        };
        let mut coded = Vec::with_capacity(RAW_BYTES + 8);
        let code = encode_block(&late.values, &mut coded);
        let old = stored(self.lens[i]);
        let mut sealed = Vec::from(std::mem::take(&mut self.sealed));
        sealed.splice(off..off + old, coded);
        self.sealed = sealed.into_boxed_slice();
        self.lens[i] = code;
    }

    /// A writer for a run of pushes (one append's samples of this series): late samples
    /// into the same sealed block are filled in one decoded copy of it, coded once when
    /// the run moves to another block or ends (the writer dropped).
    /// A day of backfill behind a new series' first sample codes each block once instead
    /// of once a sample.
    pub fn writer(&mut self) -> Writer<'_> {
        Writer {
            ring: self,
            late: Late::default(),
        }
    }

    /// Value of one bucket, `None` outside the ring; NaN for a gap.
    pub fn get(&self, bucket: i64) -> Option<f32> {
        let head = self.head()?;
        if bucket > head || bucket <= head - self.cap as i64 {
            return None;
        }
        let (k, at) = (bucket.div_euclid(B), bucket.rem_euclid(B) as usize);
        if k == self.open_block() {
            return Some(self.open[at]);
        }
        let mut block = [f32::NAN; BLOCK];
        self.read_block(k, &mut block);
        Some(block[at])
    }

    /// Appends the last `n` buckets ending at the head (oldest first) to `out`; buckets
    /// before the ring's history read as NaN.
    pub fn copy_last(&self, n: usize, out: &mut Vec<f32>) {
        let Some(head) = self.head() else {
            out.extend(std::iter::repeat_n(f32::NAN, n));
            return;
        };
        let avail = n.min(self.cap);
        out.extend(std::iter::repeat_n(f32::NAN, n - avail));
        let start = head - avail as i64 + 1;
        let open = self.open_block();
        let mut block = [f32::NAN; BLOCK];
        // Byte offset of sealed block `k` as `k` walks forward.
        let mut k = start.div_euclid(B);
        let mut off: usize = match self.locate(k) {
            Some((_, off)) => off,
            None => 0,
        };
        while k <= open {
            let lo = (k * B).max(start);
            let hi = (k * B + B - 1).min(head);
            let (a, b) = ((lo - k * B) as usize, (hi - k * B) as usize);
            if k == open {
                out.extend_from_slice(&self.open[a..=b]);
            } else {
                let i = usize::try_from(k - self.oldest).ok();
                match i.and_then(|i| self.lens.get(i)) {
                    Some(&code) if code != EMPTY => {
                        decode_block(&self.sealed, off, code, &mut block);
                        out.extend_from_slice(&block[a..=b]);
                        off += stored(code);
                    }
                    _ => out.extend(std::iter::repeat_n(f32::NAN, b - a + 1)),
                }
            }
            k += 1;
        }
    }

    /// `(head, head_ts, first)`: the head bucket (`i64::MIN` while empty), the timestamp
    /// that wrote it, and the first bucket ever pushed.
    pub fn marks(&self) -> (i64, i64, i64) {
        (self.head, self.head_ts, self.first)
    }

    /// The ring's state as a version 1 snapshot saved it: `(head, head_ts, first, values)`
    /// with the values by slot (bucket `b` at `b % capacity`, NaN outside the window); the
    /// tests' model of [`Ring::from_parts`], which still reads such files.
    #[cfg(test)]
    pub fn parts(&self) -> (i64, i64, i64, Vec<f32>) {
        let mut values = vec![f32::NAN; self.cap];
        if let Some(head) = self.head() {
            let mut last = Vec::with_capacity(self.cap);
            self.copy_last(self.cap, &mut last);
            for (b, v) in (head - self.cap as i64 + 1..=head).zip(last) {
                values[b.rem_euclid(self.cap as i64) as usize] = v;
            }
        }
        (self.head, self.head_ts, self.first, values)
    }

    /// A ring from [`Ring::parts`]; `None` when the values are empty.
    pub fn from_parts(head: i64, head_ts: i64, first: i64, values: Vec<f32>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut ring = Self::new(values.len());
        if head == i64::MIN {
            return Some(ring);
        }
        let cap = values.len() as i64;
        let start = head.saturating_sub(cap - 1).max(first.min(head));
        let value = |b: i64| values[b.rem_euclid(cap) as usize];
        let open = head.div_euclid(B);
        let (mut sealed, mut lens) = (Vec::new(), Vec::new());
        for k in start.div_euclid(B)..open {
            let mut block = [f32::NAN; BLOCK];
            for b in (k * B).max(start)..(k + 1) * B {
                block[(b - k * B) as usize] = value(b);
            }
            lens.push(encode_block(&block, &mut sealed));
        }
        for b in (open * B).max(start)..=head {
            ring.open[(b - open * B) as usize] = value(b);
        }
        ring.head = head;
        ring.head_ts = head_ts;
        ring.first = first;
        ring.oldest = start.div_euclid(B);
        ring.sealed = sealed.into_boxed_slice();
        ring.lens = lens.into_boxed_slice();
        Some(ring)
    }

    /// Appends the ring's blocks as a snapshot keeps them (after its head, head timestamp and
    /// first bucket): `i64` oldest sealed block, `u32` sealed blocks, their `u16` codes, the
    /// open block's `u16` code, `u32` bytes, then the bytes (the sealed blocks', then the open
    /// block's coding). No decoding or coding again, except the open block's.
    pub fn write_blocks(&self, out: &mut Vec<u8>) {
        let mut open = Vec::with_capacity(RAW_BYTES + 8);
        let open_code = if self.head == i64::MIN {
            EMPTY
        } else {
            encode_block(&self.open, &mut open)
        };
        out.extend_from_slice(&self.oldest.to_le_bytes());
        out.extend_from_slice(&(self.lens.len() as u32).to_le_bytes());
        for code in self.lens.iter().chain([&open_code]) {
            out.extend_from_slice(&code.to_le_bytes());
        }
        out.extend_from_slice(&((self.sealed.len() + open.len()) as u32).to_le_bytes());
        out.extend_from_slice(&self.sealed);
        out.extend_from_slice(&open);
    }

    /// A ring of `capacity` from what [`Ring::write_blocks`] wrote at the start of `input`,
    /// and the bytes it took; `None` when they do not describe such a ring.
    pub fn read_blocks(
        capacity: usize,
        (head, head_ts, first): (i64, i64, i64),
        input: &[u8],
    ) -> Option<(Self, usize)> {
        let mut at = 0usize;
        let mut take = |n: usize| {
            let s = input.get(at..at.checked_add(n)?)?;
            at += n;
            Some(s)
        };
        let oldest = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        if capacity == 0 || n > capacity / BLOCK + 2 {
            return None;
        }
        let mut lens = Vec::with_capacity(n);
        for _ in 0..=n {
            let code = u16::from_le_bytes(take(2)?.try_into().ok()?);
            if code != RAW && usize::from(code) >= RAW_BYTES {
                return None;
            }
            lens.push(code);
        }
        let open_code = lens.pop()?;
        let bytes = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let sealed_bytes: usize = lens.iter().map(|&c| stored(c)).sum();
        if sealed_bytes + stored(open_code) != bytes {
            return None;
        }
        let data = take(bytes)?;
        let mut ring = Self::new(capacity);
        if head == i64::MIN {
            return (n == 0).then_some((ring, at));
        }
        if oldest.checked_add(n as i64)? != head.div_euclid(B) {
            return None;
        }
        decode_block(data, sealed_bytes, open_code, &mut ring.open);
        ring.head = head;
        ring.head_ts = head_ts;
        ring.first = first;
        ring.oldest = oldest;
        ring.lens = lens.into_boxed_slice();
        ring.sealed = data[..sealed_bytes].into();
        Some((ring, at))
    }

    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<[f32; BLOCK]>() + self.sealed.len() + 2 * self.lens.len()
    }
}

/// A sealed block decoded for late samples ([`Ring::writer`]).
struct Late {
    block: Option<i64>,
    values: [f32; BLOCK],
    /// A gap was filled: the block must be coded again.
    dirty: bool,
}

impl Default for Late {
    fn default() -> Self {
        Self {
            block: None,
            values: [f32::NAN; BLOCK],
            dirty: false,
        }
    }
}

/// Pushes into one ring with late samples batched by block ([`Ring::writer`]).
pub struct Writer<'a> {
    ring: &'a mut Ring,
    late: Late,
}

impl Writer<'_> {
    /// [`Ring::push`], a late sample into a sealed block kept in the writer's copy of it.
    pub fn push(&mut self, bucket: i64, ts: i64, value: f32) -> Push {
        self.ring.push_late(bucket, ts, value, &mut self.late)
    }

    pub fn head(&self) -> Option<i64> {
        self.ring.head()
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        self.ring.settle(&mut self.late);
    }
}

/// The code of a sealed block with no sample (nothing stored).
const EMPTY: u16 = 0;
/// The code of a block kept as plain little-endian `f32`s: values whose coding would take
/// more (noise in every bit), so a bucket never takes more than 4 bytes.
const RAW: u16 = u16::MAX;
const RAW_BYTES: usize = BLOCK * 4;

/// Bytes a sealed block of this code takes.
fn stored(code: u16) -> usize {
    match code {
        RAW => RAW_BYTES,
        n => usize::from(n),
    }
}

/// Appends a sealed block to `out`; returns its code (its length, [`EMPTY`] or [`RAW`]).
fn encode_block(block: &[f32; BLOCK], out: &mut Vec<u8>) -> u16 {
    if block.iter().all(|v| v.to_bits() == f32::NAN.to_bits()) {
        return EMPTY;
    }
    let start = out.len();
    xor::encode(block, out);
    let len = out.len() - start;
    if len < RAW_BYTES {
        return len as u16;
    }
    out.truncate(start);
    for v in block {
        out.extend_from_slice(&v.to_le_bytes());
    }
    RAW
}

/// Decodes the sealed block of `code` at byte `off` of `sealed` into `out`.
fn decode_block(sealed: &[u8], off: usize, code: u16, out: &mut [f32; BLOCK]) {
    match code {
        EMPTY => out.fill(f32::NAN),
        RAW => {
            let raw = sealed.get(off..off + RAW_BYTES).unwrap_or_default();
            out.fill(f32::NAN);
            for (v, b) in out.iter_mut().zip(raw.chunks_exact(4)) {
                *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        _ => xor::decode(sealed, off, out),
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

    /// Pushes `ops` into a ring and the model, comparing every step, then checks that the
    /// snapshot parts rebuild the same ring.
    /// With `run` > 1 the pushes go through a [`Writer`] `run` at a time (late samples
    /// batched by block), the reads between runs.
    fn check(cap: usize, ops: &[(i64, i64, f32)], run: usize) -> Result<(), TestCaseError> {
        let mut ring = Ring::new(cap);
        let mut model = Model {
            cap,
            head: None,
            buckets: BTreeMap::new(),
        };
        for chunk in ops.chunks(run.max(1)) {
            if run <= 1 {
                let (b, sub, v) = chunk[0];
                prop_assert_eq!(
                    ring.push(b, b * 10 + sub, v),
                    model.push(b, b * 10 + sub, v)
                );
            } else {
                let mut w = ring.writer();
                for &(b, sub, v) in chunk {
                    prop_assert_eq!(w.push(b, b * 10 + sub, v), model.push(b, b * 10 + sub, v));
                    prop_assert_eq!(w.head(), model.head);
                }
            }
            let n = cap + 2;
            let mut got = Vec::new();
            ring.copy_last(n, &mut got);
            let want = model.last(n);
            prop_assert_eq!(got.len(), want.len());
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                match w {
                    Some(w) => prop_assert_eq!(g.to_bits(), w.to_bits(), "bucket {} of {}", k, n),
                    None => prop_assert!(g.is_nan()),
                }
                let b = model.head.unwrap() - (n - 1 - k) as i64;
                match ring.get(b) {
                    Some(x) => prop_assert_eq!(x.to_bits(), g.to_bits()),
                    None => prop_assert!(w.is_none() && b <= model.head.unwrap() - cap as i64),
                }
            }
        }
        let (h, t, f, v) = ring.parts();
        let back = Ring::from_parts(h, t, f, v.clone()).unwrap();
        let (h2, t2, f2, v2) = back.parts();
        prop_assert_eq!((h, t, f), (h2, t2, f2));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&v), bits(&v2));
        prop_assert_eq!(back.history_len(), ring.history_len());
        // and as a snapshot keeps it: the blocks as they are
        let mut buf = Vec::new();
        ring.write_blocks(&mut buf);
        let (kept, used) = Ring::read_blocks(cap, ring.marks(), &buf).unwrap();
        prop_assert_eq!(used, buf.len());
        let (h3, t3, f3, v3) = kept.parts();
        prop_assert_eq!((h, t, f), (h3, t3, f3));
        prop_assert_eq!(bits(&v), bits(&v3));
        Ok(())
    }

    #[test]
    fn noise_is_kept_plain_and_counts_are_coded() {
        let mut noisy = Ring::new(256);
        let mut counts = Ring::new(256);
        let mut x = 0x9E37_79B9u32;
        for b in 0..256 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noisy.push(b, b, f32::from_bits(x & 0x7f7f_ffff));
            counts.push(b, b, (300 + (b * 37) % 50) as f32);
        }
        // three sealed blocks of 64 buckets each, plus the open one
        assert_eq!(
            noisy.sealed.len(),
            3 * RAW_BYTES,
            "noise: plain, never more"
        );
        assert!(
            counts.sealed.len() < 3 * RAW_BYTES / 2,
            "{}",
            counts.sealed.len()
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        noisy.copy_last(256, &mut a);
        let mut y = 0x9E37_79B9u32;
        for _ in 0..a.len() {
            y ^= y << 13;
            y ^= y >> 17;
            y ^= y << 5;
            b.push(f32::from_bits(y & 0x7f7f_ffff));
        }
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    proptest! {
        #[test]
        fn ring_matches_model(cap in 1usize..12, ops in prop::collection::vec((0i64..40, 0i64..10, -1e6f32..1e6), 1..200)) {
            check(cap, &ops, 1)?;
        }

        /// Rings over several blocks: mostly in order with jumps, late samples and repeats.
        #[test]
        fn blocks_match_model(
            cap in 1usize..300,
            start in -500i64..500,
            moves in prop::collection::vec((-80i64..150, 0i64..10, 0u8..6), 1..300),
            noisy in any::<bool>(),
            run in 1usize..40,
        ) {
            let mut b = start;
            let mut ops = Vec::new();
            for (i, &(d, sub, v)) in moves.iter().enumerate() {
                // a step forward most of the time, back or far ahead now and then
                b += match d { -80..=-70 => d, 146.. => d * 3, _ => 1 };
                let value = if noisy {
                    // every bit random: blocks kept plain
                    let z = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    f32::from_bits((z ^ (z >> 27)) as u32 & 0x7f7f_ffff)
                } else if v == 0 {
                    0.0
                } else {
                    100.0 + f32::from(v) + (i % 3) as f32 * 0.25
                };
                ops.push((b, sub, value));
            }
            check(cap, &ops, run)?;
        }
    }
}
