//! A zero-copy decoder for remote-write 1.0 `WriteRequest` bodies (after snappy).
//!
//! prost would allocate a `String` per label and a `Vec` per series; here labels are
//! slices of the request buffer and one scratch vector per request is reused for every
//! series. Unknown fields are skipped, as protobuf requires. Decoding never panics on
//! arbitrary input (see the proptest below and `fuzz/`).

use crate::store::{LabelRef, Sample};

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
}

/// Totals of one request, for self-metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeSummary {
    pub series: u64,
    pub samples: u64,
    /// Native histograms and exemplars are not forecast; counted and skipped.
    pub histograms: u64,
    pub exemplars: u64,
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
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
    fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let k = self.varint()?;
        let wt = (k & 7) as u8;
        let field = (k >> 3).min(u32::MAX as u64) as u32;
        Ok((field, wt))
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
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
    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let end = self.pos + 8;
        let bytes = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn skip(&mut self, wt: u8) -> Result<(), DecodeError> {
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

fn expect(field: u32, got: u8, want: u8) -> Result<(), DecodeError> {
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

/// Decodes `buf` and calls `f(labels, samples)` for every series, in order. Labels are as
/// sent (validation is the caller's). A decode error after some series were passed to `f`
/// returns the error; what `f` saw stays seen. One label vector is allocated per call and
/// reused for every series (labels borrow `buf`, so it cannot outlive the call).
pub fn decode_write_request<'a>(
    buf: &'a [u8],
    scratch: &mut Scratch,
    mut f: impl FnMut(&[LabelRef<'a>], &[Sample]),
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
            decode_series(ts, labels, &mut scratch.samples, &mut summary)?;
            summary.series += 1;
            summary.samples += scratch.samples.len() as u64;
            f(labels, &scratch.samples);
        } else {
            r.skip(wt)?;
        }
    }
    Ok(summary)
}

fn decode_series<'a>(
    buf: &'a [u8],
    labels: &mut Vec<LabelRef<'a>>,
    samples: &mut Vec<Sample>,
    summary: &mut DecodeSummary,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                expect(1, wt, LEN)?;
                labels.push(decode_label(r.bytes()?)?);
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
    Ok(())
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

fn decode_sample(buf: &[u8]) -> Result<Sample, DecodeError> {
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
        decode_write_request(buf, &mut scratch, |l, s| {
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
