//! Label sets: borrowed views from a decoded request, and the interned form kept per series.

use std::hash::BuildHasher;

/// One label borrowed from a request body. Bytes, not `str`: validation decides whether they
/// are UTF-8, so decoding never fails on a label's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelRef<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> LabelRef<'a> {
    pub fn new(name: &'a str, value: &'a str) -> Self {
        Self {
            name: name.as_bytes(),
            value: value.as_bytes(),
        }
    }
}

/// Separator in the interned encoding. `0xFF` never occurs in UTF-8, so names and values
/// (validated as UTF-8 before interning) cannot contain it.
const SEP: u8 = 0xFF;

/// An interned, sorted label set in one allocation: `name 0xFF value 0xFF ...`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelSet(Box<[u8]>);

/// Seeded so that a series hashes the same in every shard lookup within a process.
const HASH_STATE: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x7072_6f6d_6361_7374);
/// The second, independent hash of [`LabelHash::check`].
const CHECK_STATE: foldhash::quality::FixedState =
    foldhash::quality::FixedState::with_seed(0x6964_656e_7469_7479);

/// A label set's identity in the store: two independent 64-bit hashes of the canonical
/// encoding of its sorted labels ([`encode_canonical`]). `hash` places the series (shard,
/// table bucket, the negative cache); `check` confirms it. A lookup compares these 128 bits,
/// held in the series' own entry, instead of the label bytes: at 100k+ series that comparison
/// cost two dependent cache misses and a `memcmp` per sample, most of the ingest path's time.
/// Two different label sets are taken for one with odds of about n²/2¹²⁹ for n series
/// (10⁻²⁶ at a million).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LabelHash {
    pub hash: u64,
    pub check: u64,
}

impl LabelHash {
    /// Of labels already in the canonical encoding (as Prometheus sends them: ingest hashes
    /// the request's bytes without copying them).
    pub fn of_canonical(bytes: &[u8]) -> Self {
        Self {
            hash: HASH_STATE.hash_one(bytes),
            check: CHECK_STATE.hash_one(bytes),
        }
    }
}

thread_local! {
    /// The canonical encoding of labels being hashed, reused. Never shrunk: its length is the
    /// largest encoding seen plus [`COPY`], written over rather than cleared.
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The identity of a sorted label set; equals [`LabelSet::label_hash`] of the interned form.
pub fn hash_labels(labels: &[LabelRef<'_>]) -> LabelHash {
    hash_labels_within(labels, &[])
}

/// [`hash_labels`] of labels that lie in `body` (the decompressed request they were decoded
/// from; any other slice is still hashed right, only slower). The canonical encoding is
/// written with fixed-size copies read from `body` past a name or value's end, which the
/// encoding then overwrites: remote write 2.0's labels are references to the request's
/// symbols, so its series identity is this encoding rebuilt, where a 1.0 body already holds
/// it, and copies of the exact length (a `memcpy` call each, four a label) were most of the
/// gap between the two protocols.
pub fn hash_labels_within(labels: &[LabelRef<'_>], body: &[u8]) -> LabelHash {
    ENCODED.with(|cell| {
        let mut buf = cell.borrow_mut();
        let len = encode_within(labels, body, &mut buf);
        LabelHash::of_canonical(&buf[..len])
    })
}

/// Bytes of `v` as a protobuf varint.
#[inline]
pub(crate) fn varint_len(v: usize) -> usize {
    (usize::BITS - (v | 1).leading_zeros()).div_ceil(7) as usize
}

/// The canonical encoding of labels, the bytes their identity is hashed from: each label as
/// the remote-write `Label` message in its `TimeSeries` (`0x0a len 0x0a len name 0x12 len
/// value`, minimal varints), in the order given. It is what Prometheus writes for the labels
/// of a series, so a request from Prometheus already holds it. Appended to `buf`.
pub fn encode_canonical(labels: &[LabelRef<'_>], buf: &mut Vec<u8>) {
    let mut own = Vec::new();
    let len = encode_within(labels, &[], &mut own);
    buf.extend_from_slice(&own[..len]);
}

/// Bytes a name or value is copied in when it lies in the body with this many bytes after
/// its start: one fixed-size move instead of a call.
const COPY: usize = 32;

/// Writes the canonical encoding of `labels` at the start of `buf` (grown as needed, never
/// cleared: bytes after the encoding are left over) and returns its length.
fn encode_within(labels: &[LabelRef<'_>], body: &[u8], buf: &mut Vec<u8>) -> usize {
    // Per label at most three tags and three varints of a `usize` (10 bytes each).
    let need = labels
        .iter()
        .map(|l| l.name.len() + l.value.len() + 33)
        .sum::<usize>()
        + COPY;
    if buf.len() < need {
        buf.resize(need, 0);
    }
    let out = &mut buf[..need];
    let mut pos = 0;
    for l in labels {
        let (n, v) = (l.name.len(), l.value.len());
        // The common label: every length one byte.
        if 4 + n + v < 0x80 {
            out[pos..pos + 4].copy_from_slice(&[0x0a, (4 + n + v) as u8, 0x0a, n as u8]);
            pos = put(out, pos + 4, l.name, body);
            out[pos..pos + 2].copy_from_slice(&[0x12, v as u8]);
            pos = put(out, pos + 2, l.value, body);
            continue;
        }
        pos = put_byte(out, pos, 0x0a);
        pos = varint(out, pos, 2 + varint_len(n) + n + varint_len(v) + v);
        pos = put_byte(out, pos, 0x0a);
        pos = varint(out, pos, n);
        pos = put(out, pos, l.name, body);
        pos = put_byte(out, pos, 0x12);
        pos = varint(out, pos, v);
        pos = put(out, pos, l.value, body);
    }
    pos
}

#[inline]
fn put_byte(out: &mut [u8], pos: usize, b: u8) -> usize {
    out[pos] = b;
    pos + 1
}

#[inline]
fn varint(out: &mut [u8], mut pos: usize, mut v: usize) -> usize {
    while v >= 0x80 {
        pos = put_byte(out, pos, v as u8 | 0x80);
        v >>= 7;
    }
    put_byte(out, pos, v as u8)
}

/// Copies `piece` to `out[pos..]` (which has [`COPY`] bytes to spare) and returns the
/// position after it. When `piece` lies in `body` with its length rounded up to [`COPY`]
/// bytes from its start, it is copied in blocks of [`COPY`] (the bytes after the piece are
/// overwritten by what follows it).
#[inline]
fn put(out: &mut [u8], pos: usize, piece: &[u8], body: &[u8]) -> usize {
    let n = piece.len();
    // Where `piece` starts in `body`; an address comparison, nothing is read through it.
    let at = (piece.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    match body.get(at..at.wrapping_add(n.next_multiple_of(COPY).max(COPY))) {
        Some(src) => {
            for (k, block) in src.chunks_exact(COPY).enumerate() {
                out[pos + k * COPY..pos + (k + 1) * COPY].copy_from_slice(block);
            }
        }
        None => out[pos..pos + n].copy_from_slice(piece),
    }
    pos + n
}

impl LabelSet {
    /// Interns labels that are already sorted by name and valid UTF-8.
    pub fn from_refs(labels: &[LabelRef<'_>]) -> Self {
        let len = labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + 2)
            .sum();
        let mut buf = Vec::with_capacity(len);
        for l in labels {
            buf.extend_from_slice(l.name);
            buf.push(SEP);
            buf.extend_from_slice(l.value);
            buf.push(SEP);
        }
        Self(buf.into_boxed_slice())
    }

    /// Builds from owned pairs in any order (sorted here); for tests and exporters.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut owned: Vec<(N, V)> = pairs.into_iter().collect();
        owned.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let refs: Vec<LabelRef<'_>> = owned
            .iter()
            .map(|(n, v)| LabelRef::new(n.as_ref(), v.as_ref()))
            .collect();
        Self::from_refs(&refs)
    }

    /// Equals [`hash_labels`] of the same labels.
    pub fn label_hash(&self) -> LabelHash {
        let refs: Vec<LabelRef<'_>> = self.iter().map(|(n, v)| LabelRef::new(n, v)).collect();
        hash_labels(&refs)
    }

    /// `(name, value)` pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut parts = self.0.split(|b| *b == SEP);
        std::iter::from_fn(move || {
            let name = parts.next()?;
            let value = parts.next()?;
            if name.is_empty() && value.is_empty() {
                return None; // the empty tail after the final separator
            }
            // Interned sets are built from validated UTF-8 only.
            Some((
                std::str::from_utf8(name).unwrap_or_default(),
                std::str::from_utf8(value).unwrap_or_default(),
            ))
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The metric name (`__name__`), or "" when absent.
    pub fn metric_name(&self) -> &str {
        self.get("__name__").unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Heap bytes held (for the memory accounting in benches and self-metrics).
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (n, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_form_round_trips_and_compares() {
        let refs = [
            LabelRef::new("__name__", "job:x:rate5m"),
            LabelRef::new("instance", ""),
            LabelRef::new("job", "web"),
        ];
        let set = LabelSet::from_refs(&refs);
        let pairs: Vec<_> = set.iter().collect();
        assert_eq!(
            pairs,
            [
                ("__name__", "job:x:rate5m"),
                ("instance", ""),
                ("job", "web")
            ]
        );
        assert_eq!(set.label_hash(), hash_labels(&refs));
        // Either half differs for another value or a missing label.
        let mut other = refs;
        other[2].value = b"api";
        for o in [hash_labels(&other), hash_labels(&refs[..2])] {
            assert_ne!(o.hash, set.label_hash().hash);
            assert_ne!(o.check, set.label_hash().check);
        }
        assert_eq!(set.metric_name(), "job:x:rate5m");
        assert_eq!(set.get("instance"), Some(""));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn canonical_encoding_is_what_prost_writes() {
        use crate::proto::prometheus as pb;
        use prost::Message;
        for (n, v) in [
            (1, 1),
            (8, 2),
            (60, 63),
            (62, 62),
            (100, 30),
            (127, 1),
            (130, 300),
        ] {
            let (name, value) = ("n".repeat(n), "v".repeat(v));
            let labels = [LabelRef::new("a", "b"), LabelRef::new(&name, &value)];
            let mut ours = Vec::new();
            encode_canonical(&labels, &mut ours);
            let theirs = pb::TimeSeries {
                labels: labels
                    .iter()
                    .map(|l| pb::Label {
                        name: String::from_utf8(l.name.to_vec()).unwrap(),
                        value: String::from_utf8(l.value.to_vec()).unwrap(),
                    })
                    .collect(),
                samples: vec![],
            }
            .encode_to_vec();
            assert_eq!(ours, theirs, "name {n} value {v}");
        }
    }

    /// The encoding read within a body (block copies past each piece's end) is the exact
    /// encoding, wherever the labels lie: well inside, at its very end (no room for a block),
    /// long enough for several blocks or for two-byte lengths.
    #[test]
    fn encoding_within_a_body_is_the_exact_encoding() {
        use proptest::prelude::*;
        let lens = prop::collection::vec((0usize..150, 0usize..150), 1..12);
        proptest!(|(lens in lens, pad in 0usize..80, seed in any::<u8>())| {
            // A body of distinct bytes holding every name and value, then `pad` bytes.
            let total: usize = lens.iter().map(|(n, v)| n + v).sum();
            let body: Vec<u8> = (0..total + pad)
                .map(|i| b'a' + ((i + seed as usize) % 26) as u8)
                .collect();
            let mut at = 0;
            let labels: Vec<LabelRef<'_>> = lens
                .iter()
                .map(|&(n, v)| {
                    let l = LabelRef {
                        name: &body[at..at + n],
                        value: &body[at + n..at + n + v],
                    };
                    at += n + v;
                    l
                })
                .collect();
            let mut exact = Vec::new();
            encode_canonical(&labels, &mut exact);
            let mut within = vec![0xEE; 7];
            let len = encode_within(&labels, &body, &mut within);
            prop_assert_eq!(&within[..len], &exact[..]);
            prop_assert_eq!(hash_labels_within(&labels, &body), hash_labels(&labels));
            prop_assert_eq!(LabelHash::of_canonical(&exact), hash_labels(&labels));
        });
    }

    #[test]
    fn label_boundaries_matter() {
        // "ab"="c" must differ from "a"="bc".
        let a = [LabelRef::new("ab", "c")];
        let b = [LabelRef::new("a", "bc")];
        let (a, b) = (hash_labels(&a), hash_labels(&b));
        assert_ne!(a.hash, b.hash);
        assert_ne!(a.check, b.check);
    }

    #[test]
    fn from_pairs_sorts() {
        let s = LabelSet::from_pairs([("job", "x"), ("__name__", "m")]);
        assert_eq!(s.iter().next(), Some(("__name__", "m")));
    }
}
