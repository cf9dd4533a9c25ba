//! Label sets: borrowed views from a decoded request, and the interned form kept per series.

use std::hash::{BuildHasher, Hasher};

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

/// Hash of a sorted label set; equals [`LabelSet::hash64`] of the interned form.
pub fn hash_labels(labels: &[LabelRef<'_>]) -> u64 {
    let mut h = HASH_STATE.build_hasher();
    for l in labels {
        h.write(l.name);
        h.write_u8(SEP);
        h.write(l.value);
        h.write_u8(SEP);
    }
    h.finish()
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

    /// Equals [`hash_labels`] of the same labels (the hasher is fed piece by piece there,
    /// and a streaming hash depends on how its input is split).
    pub fn hash64(&self) -> u64 {
        let mut h = HASH_STATE.build_hasher();
        for (n, v) in self.iter() {
            h.write(n.as_bytes());
            h.write_u8(SEP);
            h.write(v.as_bytes());
            h.write_u8(SEP);
        }
        h.finish()
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

    /// Compares against sorted borrowed labels without allocating.
    pub fn eq_refs(&self, labels: &[LabelRef<'_>]) -> bool {
        let mut rest: &[u8] = &self.0;
        for l in labels {
            for part in [l.name, l.value] {
                if rest.len() < part.len() + 1
                    || &rest[..part.len()] != part
                    || rest[part.len()] != SEP
                {
                    return false;
                }
                rest = &rest[part.len() + 1..];
            }
        }
        rest.is_empty()
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
        assert!(set.eq_refs(&refs));
        assert!(!set.eq_refs(&refs[..2]));
        let mut other = refs;
        other[2].value = b"api";
        assert!(!set.eq_refs(&other));
        assert_eq!(set.hash64(), hash_labels(&refs));
        assert_eq!(set.metric_name(), "job:x:rate5m");
        assert_eq!(set.get("instance"), Some(""));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn label_boundaries_matter() {
        // "ab"="c" must differ from "a"="bc".
        let a = [LabelRef::new("ab", "c")];
        let b = [LabelRef::new("a", "bc")];
        assert_ne!(hash_labels(&a), hash_labels(&b));
        assert!(!LabelSet::from_refs(&a).eq_refs(&b));
    }

    #[test]
    fn from_pairs_sorts() {
        let s = LabelSet::from_pairs([("job", "x"), ("__name__", "m")]);
        assert_eq!(s.iter().next(), Some(("__name__", "m")));
    }
}
