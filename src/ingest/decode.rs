//! A zero-copy decoder for remote-write 1.0 `WriteRequest` bodies (after snappy).
//!
//! prost would allocate a `String` per label and a `Vec` per series; here labels are
//! slices of the request buffer and one scratch vector per request is reused for every
//! series. Unknown fields are skipped, as protobuf requires. Decoding never panics on
//! arbitrary input (see the proptest below and `fuzz/`).

use crate::store::{varint_len, LabelRef, Sample};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated protobuf message")]
    Truncated,
    #[error("malformed varint")]
    Varint,
    #[error("unsupported protobuf wire type {0}")]
    WireType(u8),
    #[error("field {field} has wire type {got}, expected {want}")]
    FieldType { field: u32, got: u8, want: u8 },
    #[error("the first symbol is not the empty string (remote write 2.0 requires it)")]
    FirstSymbolNotEmpty,
}

/// Totals of one request, for self-metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeSummary {
    pub series: u64,
    pub samples: u64,
    /// Native histograms and exemplars are not forecast; counted and skipped.
    pub histograms: u64,
    pub exemplars: u64,
    /// Remote-write 1.0 `MetricMetadata` entries (read by [`decode_metadata`]).
    pub metadata: u64,
}

pub(super) const VARINT: u8 = 0;
pub(super) const I64: u8 = 1;
pub(super) const LEN: u8 = 2;
const I32: u8 = 5;

pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Keys, label lengths and most other varints of a remote-write body are one byte: that
    /// case is inlined, the rest is not.
    #[inline(always)]
    pub(super) fn varint(&mut self) -> Result<u64, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            // Two bytes: lengths and symbol references from 128 to 16383.
            Some(&b) => match self.buf.get(self.pos + 1) {
                Some(&c) if c < 0x80 => {
                    self.pos += 2;
                    Ok(u64::from(b & 0x7f) | u64::from(c) << 7)
                }
                _ => self.varint_long(),
            },
            None => self.varint_long(),
        }
    }

    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(DecodeError::Truncated);
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(DecodeError::Varint);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::Varint)
    }

    #[inline]
    pub(super) fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let k = self.varint()?;
        let wt = (k & 7) as u8;
        let field = (k >> 3).min(u32::MAX as u64) as u32;
        Ok((field, wt))
    }

    #[inline]
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    #[inline]
    pub(super) fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let end = self.pos + 8;
        let bytes = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    pub(super) fn skip(&mut self, wt: u8) -> Result<(), DecodeError> {
        match wt {
            VARINT => self.varint().map(drop),
            I64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            I32 => {
                let end = self.pos + 4;
                if end > self.buf.len() {
                    return Err(DecodeError::Truncated);
                }
                self.pos = end;
                Ok(())
            }
            other => Err(DecodeError::WireType(other)),
        }
    }
}

pub(super) fn expect(field: u32, got: u8, want: u8) -> Result<(), DecodeError> {
    if got == want {
        Ok(())
    } else {
        Err(DecodeError::FieldType { field, got, want })
    }
}

/// Reusable per-request buffers.
#[derive(Default)]
pub struct Scratch {
    samples: Vec<Sample>,
}

/// One series of a request, as [`decode_write_request`] passes it on.
pub struct DecodedSeries<'a, 'b> {
    /// As sent: not validated, not necessarily sorted.
    pub labels: &'b [LabelRef<'a>],
    pub samples: &'b [Sample],
    /// The labels' bytes as sent when they are exactly the canonical encoding of `labels`
    /// ([`crate::store::encode_canonical`]): every label a `Label` message with its name then
    /// its value, minimal varints, one after another, as Prometheus writes them. The store
    /// hashes these bytes as they are, without re-encoding.
    pub canonical_labels: Option<&'a [u8]>,
    /// The whole `TimeSeries` message, for [`decode_labels`] later.
    pub raw: &'a [u8],
}

/// Decodes `buf` and calls `f` for every series, in order. A decode error after some
/// series were passed to `f` returns the error; what `f` saw stays seen. One label vector is
/// allocated per call and reused for every series (labels borrow `buf`, so it cannot
/// outlive the call).
pub fn decode_write_request<'a>(
    buf: &'a [u8],
    scratch: &mut Scratch,
    mut f: impl FnMut(DecodedSeries<'a, '_>),
) -> Result<DecodeSummary, DecodeError> {
    let mut summary = DecodeSummary::default();
    let labels = &mut Vec::with_capacity(16);
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wt) = r.key()?;
        if field == 1 {
            expect(1, wt, LEN)?;
            let ts = r.bytes()?;
            labels.clear();
            scratch.samples.clear();
            let canonical = decode_series(ts, labels, &mut scratch.samples, &mut summary)?;
            summary.series += 1;
            summary.samples += scratch.samples.len() as u64;
            f(DecodedSeries {
                labels,
                samples: &scratch.samples,
                canonical_labels: canonical,
                raw: ts,
            });
        } else {
            if field == 3 {
                summary.metadata += 1;
            }
            r.skip(wt)?;
        }
    }
    Ok(summary)
}

/// Calls `f(type, metric family name)` for every `MetricMetadata` (field 3) of a remote-write
/// 1.0 `WriteRequest`: what Prometheus sends with `metadata_config: { send: true }`. `type` is
/// the protobuf enum's number (0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gauge histogram,
/// 5 summary, 6 info, 7 stateset).
pub fn decode_metadata<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u64, &'a [u8]),
) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wt) = r.key()?;
        if field != 3 {
            r.skip(wt)?;
            continue;
        }
        expect(3, wt, LEN)?;
        let mut m = Reader::new(r.bytes()?);
        let (mut kind, mut name): (u64, &[u8]) = (0, b"");
        while !m.done() {
            let (field, wt) = m.key()?;
            match field {
                1 => {
                    expect(1, wt, VARINT)?;
                    kind = m.varint()?;
                }
                2 => {
                    expect(2, wt, LEN)?;
                    name = m.bytes()?;
                }
                _ => m.skip(wt)?,
            }
        }
        if !name.is_empty() {
            f(kind, name);
        }
    }
    Ok(())
}

/// The labels of one `TimeSeries` message (its bytes from [`DecodedSeries::raw`]).
pub fn decode_labels<'a>(
    series: &'a [u8],
    labels: &mut Vec<LabelRef<'a>>,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(series);
    while !r.done() {
        let (field, wt) = r.key()?;
        if field == 1 {
            expect(1, wt, LEN)?;
            labels.push(decode_label(r.bytes()?)?);
        } else {
            r.skip(wt)?;
        }
    }
    Ok(())
}

/// Decodes one `TimeSeries`; returns its label bytes when they are canonical (see
/// [`DecodedSeries::canonical_labels`]).
fn decode_series<'a>(
    buf: &'a [u8],
    labels: &mut Vec<LabelRef<'a>>,
    samples: &mut Vec<Sample>,
    summary: &mut DecodeSummary,
) -> Result<Option<&'a [u8]>, DecodeError> {
    let mut r = Reader::new(buf);
    // The run of label fields: where it starts and ends, and whether it is canonical.
    let (mut start, mut end, mut canonical) = (None, 0, true);
    while !r.done() {
        let at = r.pos;
        let (field, wt) = r.key()?;
        match field {
            1 => {
                expect(1, wt, LEN)?;
                let len_at = r.pos;
                let bytes = r.bytes()?;
                let contiguous = start.is_none_or(|_| at == end)
                    && len_at == at + 1
                    && r.pos - bytes.len() - len_at == varint_len(bytes.len());
                let label = match short_label(bytes) {
                    Some(label) => {
                        canonical &= contiguous;
                        label
                    }
                    None => {
                        let label = decode_label(bytes)?;
                        let n = varint_len(label.name.len());
                        canonical &= contiguous
                            && bytes.len()
                                == 2 + n
                                    + label.name.len()
                                    + varint_len(label.value.len())
                                    + label.value.len()
                            && bytes[0] == 0x0a
                            && bytes[1 + n + label.name.len()] == 0x12;
                        label
                    }
                };
                start.get_or_insert(at);
                end = r.pos;
                labels.push(label);
            }
            2 => {
                expect(2, wt, LEN)?;
                samples.push(decode_sample(r.bytes()?)?);
            }
            3 => {
                summary.exemplars += 1;
                r.skip(wt)?;
            }
            4 => {
                summary.histograms += 1;
                r.skip(wt)?;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(match start {
        Some(s) if canonical => Some(&buf[s..end]),
        None => Some(&buf[..0]),
        _ => None,
    })
}

/// The common label: name then value, each shorter than 128 bytes, nothing else (which is
/// canonical). `None` for anything else, left to [`decode_label`].
#[inline]
fn short_label(b: &[u8]) -> Option<LabelRef<'_>> {
    if b.first() != Some(&0x0a) {
        return None;
    }
    let n = *b.get(1)? as usize;
    let tag = 2 + n;
    if n >= 0x80 || b.get(tag) != Some(&0x12) {
        return None;
    }
    let v = *b.get(tag + 1)? as usize;
    if v >= 0x80 || b.len() != tag + 2 + v {
        return None;
    }
    Some(LabelRef {
        name: &b[2..tag],
        value: &b[tag + 2..],
    })
}

fn decode_label(buf: &[u8]) -> Result<LabelRef<'_>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut label = LabelRef {
        name: b"",
        value: b"",
    };
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                expect(1, wt, LEN)?;
                label.name = r.bytes()?;
            }
            2 => {
                expect(2, wt, LEN)?;
                label.value = r.bytes()?;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(label)
}

pub(super) fn decode_sample(buf: &[u8]) -> Result<Sample, DecodeError> {
    // The common sample: the value (fixed64), then the timestamp, nothing else.
    if buf.len() > 10 && buf[0] == 0x09 && buf[9] == 0x10 {
        let mut r = Reader::new(&buf[10..]);
        let ts = r.varint()?;
        if r.done() {
            return Ok(Sample {
                value: f64::from_bits(u64::from_le_bytes(buf[1..9].try_into().expect("8 bytes"))),
                timestamp: ts as i64,
            });
        }
    }
    let mut r = Reader::new(buf);
    let mut s = Sample {
        value: 0.0,
        timestamp: 0,
    };
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                expect(1, wt, I64)?;
                s.value = f64::from_bits(r.fixed64()?);
            }
            2 => {
                expect(2, wt, VARINT)?;
                s.timestamp = r.varint()? as i64;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::prometheus as pb;
    use proptest::prelude::*;
    use prost::Message;

    fn request() -> pb::WriteRequest {
        pb::WriteRequest {
            metadata: vec![],
            timeseries: vec![
                pb::TimeSeries {
                    labels: vec![
                        pb::Label {
                            name: "__name__".into(),
                            value: "job:req:rate5m".into(),
                        },
                        pb::Label {
                            name: "job".into(),
                            value: "web".into(),
                        },
                    ],
                    samples: vec![
                        pb::Sample {
                            value: 1.5,
                            timestamp: 1_700_000_000_000,
                        },
                        pb::Sample {
                            value: -2.0,
                            timestamp: -5,
                        },
                    ],
                },
                pb::TimeSeries {
                    labels: vec![pb::Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    }],
                    samples: vec![pb::Sample {
                        value: f64::NAN,
                        timestamp: 7,
                    }],
                },
            ],
        }
    }

    type Decoded = Vec<(Vec<(String, String)>, Vec<(u64, i64)>)>;

    fn decode_all(buf: &[u8]) -> Result<Decoded, DecodeError> {
        let mut out = Vec::new();
        let mut scratch = Scratch::default();
        decode_write_request(buf, &mut scratch, |d| {
            let (l, s) = (d.labels, d.samples);
            out.push((
                l.iter()
                    .map(|l| {
                        (
                            String::from_utf8_lossy(l.name).into_owned(),
                            String::from_utf8_lossy(l.value).into_owned(),
                        )
                    })
                    .collect(),
                s.iter().map(|s| (s.value.to_bits(), s.timestamp)).collect(),
            ))
        })?;
        Ok(out)
    }

    #[test]
    fn matches_prost() {
        let req = request();
        let got = decode_all(&req.encode_to_vec()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0[0], ("__name__".into(), "job:req:rate5m".into()));
        assert_eq!(
            got[0].1,
            vec![
                (1.5f64.to_bits(), 1_700_000_000_000),
                ((-2.0f64).to_bits(), -5)
            ]
        );
        assert_eq!(got[1].1[0].0, f64::NAN.to_bits());
    }

    /// What Prometheus (and prost) write is canonical: the label bytes are handed on, and
    /// hash as the store's own encoding of the same labels does. Other encodings of the same
    /// labels are not handed on.
    #[test]
    fn canonical_label_bytes_are_recognised() {
        use crate::store::{encode_canonical, hash_labels, LabelHash};
        let check = |buf: &[u8], want_canonical: bool| {
            let mut scratch = Scratch::default();
            let mut n = 0;
            decode_write_request(buf, &mut scratch, |d| {
                n += 1;
                let mut own = Vec::new();
                encode_canonical(d.labels, &mut own);
                match d.canonical_labels {
                    Some(bytes) => {
                        assert!(want_canonical, "{bytes:?}");
                        assert_eq!(bytes, &own[..]);
                        assert_eq!(LabelHash::of_canonical(bytes), hash_labels(d.labels));
                    }
                    None => assert!(!want_canonical),
                }
                let mut again = Vec::new();
                decode_labels(d.raw, &mut again).unwrap();
                assert_eq!(again, d.labels);
            })
            .unwrap();
            assert!(n > 0);
        };
        check(&request().encode_to_vec(), true);
        // One series, labels `a="b"`, `c="d"`, then a sample; variants of its encoding.
        let series = |labels: &[u8]| {
            let sample = [0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x01];
            let mut ts = labels.to_vec();
            ts.extend_from_slice(&sample);
            let mut out = vec![0x0a, ts.len() as u8];
            out.extend_from_slice(&ts);
            out
        };
        let a = [0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b'];
        let c = [0x0a, 0x06, 0x0a, 0x01, b'c', 0x12, 0x01, b'd'];
        check(&series(&[a, c].concat()), true);
        // value before name
        let a_swapped = [0x0a, 0x06, 0x12, 0x01, b'b', 0x0a, 0x01, b'a'];
        check(&series(&[a_swapped, c].concat()), false);
        // a non-minimal length varint
        let a_long = [0x0a, 0x07, 0x0a, 0x81, 0x00, b'a', 0x12, 0x01, b'b'];
        check(&series(&[&a_long[..], &c[..]].concat()), false);
        // an unknown field inside a label
        let a_extra = [0x0a, 0x08, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', 0x18, 0x01];
        check(&series(&[&a_extra[..], &c[..]].concat()), false);
        // labels interleaved with a sample
        let sample = [0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x01];
        check(&series(&[&a[..], &sample[..], &c[..]].concat()), false);
    }

    #[test]
    fn skips_unknown_fields_and_metadata() {
        let mut buf = request().encode_to_vec();
        // Field 3 (metadata, LEN) and field 15 (varint) appended at top level.
        buf.extend_from_slice(&[0x1a, 0x02, 0x08, 0x01, 0x78, 0x05]);
        assert_eq!(decode_all(&buf).unwrap().len(), 2);
    }

    #[test]
    fn truncation_is_an_error() {
        let buf = request().encode_to_vec();
        for cut in 1..buf.len() {
            // Any strict prefix either decodes fewer series or fails; never panics.
            let _ = decode_all(&buf[..cut]);
        }
        assert_eq!(
            decode_all(&buf[..buf.len() - 1]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode_all(&[0x0a, 0x05, 0x0a]), Err(DecodeError::Truncated));
        assert!(matches!(decode_all(&[0x17]), Err(DecodeError::WireType(7))));
        assert!(matches!(
            decode_all(&[0x08, 0x01]),
            Err(DecodeError::FieldType { field: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(buf in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_all(&buf);
        }

        #[test]
        fn never_panics_on_mutated_requests(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut buf = request().encode_to_vec();
            for (i, b) in flips {
                let n = buf.len();
                buf[i % n] = b;
            }
            let _ = decode_all(&buf);
        }
    }
}
