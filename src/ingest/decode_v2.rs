//! A zero-copy decoder for remote-write 2.0 `io.prometheus.write.v2.Request` bodies (after
//! snappy), with the discipline of [`super::decode`]: labels are slices of the request
//! buffer (the symbols they reference, resolved as the references are read), one scratch
//! vector of samples is reused for every series, unknown fields are skipped, and nothing panics on
//! arbitrary input (proptests below, `fuzz/fuzz_targets/ingest_v2.rs`).
//!
//! A 2.0 body interns every string once in `symbols` and refers to them by index. A series
//! whose references are broken (a reference past the symbols, an odd number of label
//! references, an empty label name) or whose samples go back in time is handed on as a
//! [`SeriesError`], so the caller refuses that series and keeps the others; a body that is
//! not valid protobuf, or whose first symbol is not `""`, is refused whole ([`DecodeError`]).

use super::decode::{decode_sample, expect, DecodeError, DecodeSummary, Reader, LEN, VARINT};
use crate::store::{LabelRef, MetricType, Sample};

/// Why one series of a 2.0 request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error("symbol reference {reference} is past the request's {symbols} symbols")]
    DanglingRef { reference: u64, symbols: usize },
    #[error("odd number of label references ({0}): they come in name/value pairs")]
    OddLabelRefs(usize),
    #[error("empty label name")]
    EmptyLabelName,
    #[error("samples out of order: timestamp {timestamp} after {previous}")]
    OutOfOrder { previous: i64, timestamp: i64 },
}

/// A series refused whole, and how many samples it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub error: SeriesError,
    pub samples: usize,
}

/// One series of a 2.0 request, as [`decode_write_request_v2`] passes it on.
pub struct DecodedSeriesV2<'a, 'b> {
    /// As sent (resolved from the symbols): not validated, not necessarily sorted.
    pub labels: &'b [LabelRef<'a>],
    pub samples: &'b [Sample],
    /// From the series' `Metadata`; [`MetricType::Unknown`] when absent.
    pub metric_type: MetricType,
    /// When the counter started counting (ms since the epoch), if the sender knows.
    pub created_ms: Option<i64>,
    /// The whole `TimeSeries` message, for [`decode_labels_v2`] later.
    pub raw: &'a [u8],
}

/// Reusable per-request buffers.
#[derive(Default)]
pub struct ScratchV2 {
    samples: Vec<Sample>,
}

/// The request's symbol table (pass one: a sender may put `symbols` after `timeseries`).
/// Every symbol is a slice of `buf`. The first must be `""` when there are any.
pub fn symbols<'a>(buf: &'a [u8], out: &mut Vec<&'a [u8]>) -> Result<(), DecodeError> {
    out.clear();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wt) = r.key()?;
        if field == 4 {
            expect(4, wt, LEN)?;
            out.push(r.bytes()?);
        } else {
            r.skip(wt)?;
        }
    }
    match out.first() {
        Some(first) if !first.is_empty() => Err(DecodeError::FirstSymbolNotEmpty),
        _ => Ok(()),
    }
}

/// Decodes the series of `buf` (whose symbols [`symbols`] read into `symbols`) and calls `f`
/// for every one, in order: `Ok` for a well-formed series, `Err` for one to refuse. A decode
/// error after some series were passed to `f` returns the error; what `f` saw stays seen.
pub fn decode_write_request_v2<'a>(
    buf: &'a [u8],
    symbols: &[&'a [u8]],
    scratch: &mut ScratchV2,
    mut f: impl FnMut(Result<DecodedSeriesV2<'a, '_>, Refused>),
) -> Result<DecodeSummary, DecodeError> {
    let mut summary = DecodeSummary::default();
    let labels = &mut Vec::with_capacity(16);
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wt) = r.key()?;
        if field != 5 {
            r.skip(wt)?;
            continue;
        }
        expect(5, wt, LEN)?;
        let ts = r.bytes()?;
        labels.clear();
        scratch.samples.clear();
        summary.series += 1;
        let series = decode_series(ts, symbols, scratch, labels, &mut summary)?;
        let n = scratch.samples.len();
        summary.samples += n as u64;
        f(series
            .map(|(metric_type, created_ms)| DecodedSeriesV2 {
                labels,
                samples: &scratch.samples,
                metric_type,
                created_ms,
                raw: ts,
            })
            .map_err(|error| Refused { error, samples: n }));
    }
    Ok(summary)
}

/// The labels of one 2.0 `TimeSeries` (its bytes from [`DecodedSeriesV2::raw`]).
pub fn decode_labels_v2<'a>(
    series: &'a [u8],
    symbols: &[&'a [u8]],
    labels: &mut Vec<LabelRef<'a>>,
) -> Result<(), DecodeError> {
    let mut refs = Resolver::new(symbols);
    let mut r = Reader::new(series);
    while !r.done() {
        let (field, wt) = r.key()?;
        if field == 1 {
            label_refs(&mut r, wt, &mut refs, labels)?;
        } else {
            r.skip(wt)?;
        }
    }
    // Validated when first decoded: a broken reference cannot occur here.
    let _ = refs.finish();
    Ok(())
}

/// Field 1 (`labels_refs`): packed, or one varint per key as protobuf also allows.
fn label_refs<'a>(
    r: &mut Reader<'_>,
    wt: u8,
    refs: &mut Resolver<'_, 'a>,
    labels: &mut Vec<LabelRef<'a>>,
) -> Result<(), DecodeError> {
    if wt == VARINT {
        refs.push(r.varint()?, labels);
        return Ok(());
    }
    expect(1, wt, LEN)?;
    let mut packed = Reader::new(r.bytes()?);
    while !packed.done() {
        refs.push(packed.varint()?, labels);
    }
    Ok(())
}

fn symbol<'a>(symbols: &[&'a [u8]], reference: u64) -> Result<&'a [u8], SeriesError> {
    usize::try_from(reference)
        .ok()
        .and_then(|i| symbols.get(i))
        .copied()
        .ok_or(SeriesError::DanglingRef {
            reference,
            symbols: symbols.len(),
        })
}

/// A series' label references, resolved to labels as they are read (in one pass, with no
/// list of references in between). The first broken one is remembered and the rest only
/// counted: the series is still read to its end, then refused.
struct Resolver<'s, 'a> {
    symbols: &'s [&'a [u8]],
    count: usize,
    /// A label's name, waiting for its value's reference.
    name: Option<&'a [u8]>,
    error: Option<SeriesError>,
}

impl<'s, 'a> Resolver<'s, 'a> {
    fn new(symbols: &'s [&'a [u8]]) -> Self {
        Self {
            symbols,
            count: 0,
            name: None,
            error: None,
        }
    }

    #[inline]
    fn push(&mut self, reference: u64, labels: &mut Vec<LabelRef<'a>>) {
        self.count += 1;
        if self.error.is_some() {
            return;
        }
        match (symbol(self.symbols, reference), self.name.take()) {
            (Err(e), _) => self.error = Some(e),
            (Ok(value), Some(name)) => labels.push(LabelRef { name, value }),
            (Ok([]), None) => self.error = Some(SeriesError::EmptyLabelName),
            (Ok(name), None) => self.name = Some(name),
        }
    }

    /// An odd number of references first, then the first broken one, as they were sent.
    fn finish(self) -> Result<(), SeriesError> {
        if self.count % 2 != 0 {
            return Err(SeriesError::OddLabelRefs(self.count));
        }
        self.error.map_or(Ok(()), Err)
    }
}

/// Decodes one `TimeSeries` into `labels` and `scratch.samples`; the outer error is a
/// malformed message (refuse the request), the inner one a series to refuse.
#[allow(clippy::type_complexity)]
fn decode_series<'a>(
    buf: &'a [u8],
    symbols: &[&'a [u8]],
    scratch: &mut ScratchV2,
    labels: &mut Vec<LabelRef<'a>>,
    summary: &mut DecodeSummary,
) -> Result<Result<(MetricType, Option<i64>), SeriesError>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut refs = Resolver::new(symbols);
    let mut metric_type = MetricType::Unknown;
    let mut created = 0i64;
    let mut meta_refs = [0u64; 2];
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => label_refs(&mut r, wt, &mut refs, labels)?,
            2 => {
                expect(2, wt, LEN)?;
                scratch.samples.push(decode_sample(r.bytes()?)?);
            }
            3 => {
                summary.histograms += 1;
                r.skip(wt)?;
            }
            4 => {
                summary.exemplars += 1;
                r.skip(wt)?;
            }
            5 => {
                expect(5, wt, LEN)?;
                let mut m = Reader::new(r.bytes()?);
                while !m.done() {
                    let (field, wt) = m.key()?;
                    match field {
                        1 => {
                            expect(1, wt, VARINT)?;
                            metric_type = MetricType::from_proto(m.varint()?);
                        }
                        3 | 4 => {
                            expect(field, wt, VARINT)?;
                            meta_refs[(field - 3) as usize] = m.varint()?;
                        }
                        _ => m.skip(wt)?,
                    }
                }
            }
            6 => {
                expect(6, wt, VARINT)?;
                created = r.varint()? as i64;
            }
            _ => r.skip(wt)?,
        }
    }
    let checked = (|| {
        for reference in meta_refs {
            symbol(symbols, reference)?;
        }
        refs.finish()?;
        if let Some(w) = scratch
            .samples
            .windows(2)
            .find(|w| w[1].timestamp < w[0].timestamp)
        {
            return Err(SeriesError::OutOfOrder {
                previous: w[0].timestamp,
                timestamp: w[1].timestamp,
            });
        }
        Ok((metric_type, (created != 0).then_some(created)))
    })();
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::write_v2 as v2;
    use proptest::prelude::*;
    use prost::Message;

    fn request() -> v2::Request {
        v2::Request {
            symbols: [
                "",
                "__name__",
                "http_requests_total",
                "job",
                "web",
                "up",
                "requests",
            ]
            .map(String::from)
            .to_vec(),
            timeseries: vec![
                v2::TimeSeries {
                    labels_refs: vec![1, 2, 3, 4],
                    samples: vec![
                        v2::Sample {
                            value: 1.5,
                            timestamp: 1_700_000_000_000,
                        },
                        v2::Sample {
                            value: 3.0,
                            timestamp: 1_700_000_015_000,
                        },
                    ],
                    metadata: Some(v2::Metadata {
                        r#type: v2::metadata::MetricType::Counter as i32,
                        help_ref: 6,
                        unit_ref: 0,
                    }),
                    created_timestamp: 1_699_999_000_000,
                    ..Default::default()
                },
                v2::TimeSeries {
                    labels_refs: vec![1, 5],
                    samples: vec![v2::Sample {
                        value: f64::NAN,
                        timestamp: 7,
                    }],
                    ..Default::default()
                },
            ],
        }
    }

    type Decoded = Vec<
        Result<
            (
                Vec<(String, String)>,
                Vec<(u64, i64)>,
                MetricType,
                Option<i64>,
            ),
            SeriesError,
        >,
    >;

    fn decode_all(buf: &[u8]) -> Result<Decoded, DecodeError> {
        let mut syms = Vec::new();
        symbols(buf, &mut syms)?;
        let mut out = Vec::new();
        let mut scratch = ScratchV2::default();
        decode_write_request_v2(buf, &syms, &mut scratch, |d| {
            out.push(d.map_err(|r| r.error).map(|d| {
                let mut again = Vec::new();
                decode_labels_v2(d.raw, &syms, &mut again).unwrap();
                assert_eq!(again, d.labels);
                (
                    d.labels
                        .iter()
                        .map(|l| {
                            (
                                String::from_utf8_lossy(l.name).into_owned(),
                                String::from_utf8_lossy(l.value).into_owned(),
                            )
                        })
                        .collect(),
                    d.samples
                        .iter()
                        .map(|s| (s.value.to_bits(), s.timestamp))
                        .collect(),
                    d.metric_type,
                    d.created_ms,
                )
            }))
        })?;
        Ok(out)
    }

    #[test]
    fn matches_prost() {
        let got = decode_all(&request().encode_to_vec()).unwrap();
        assert_eq!(got.len(), 2);
        let (labels, samples, kind, created) = got[0].clone().unwrap();
        assert_eq!(
            labels,
            vec![
                ("__name__".into(), "http_requests_total".into()),
                ("job".into(), "web".into())
            ]
        );
        assert_eq!(
            samples,
            vec![
                (1.5f64.to_bits(), 1_700_000_000_000),
                (3.0f64.to_bits(), 1_700_000_015_000)
            ]
        );
        assert_eq!(kind, MetricType::Counter);
        assert_eq!(created, Some(1_699_999_000_000));
        let (_, samples, kind, created) = got[1].clone().unwrap();
        assert_eq!(samples[0].0, f64::NAN.to_bits());
        assert_eq!((kind, created), (MetricType::Unknown, None));
    }

    #[test]
    fn symbols_after_series_and_unpacked_refs_decode_the_same() {
        let req = request();
        let want = decode_all(&req.encode_to_vec()).unwrap();
        // timeseries first, then symbols.
        let mut buf = Vec::new();
        for ts in &req.timeseries {
            prost::encoding::message::encode(5, ts, &mut buf);
        }
        for s in &req.symbols {
            prost::encoding::string::encode(4, s, &mut buf);
        }
        assert_eq!(decode_all(&buf).unwrap(), want);
        // labels_refs unpacked: one varint field per reference.
        let mut ts = Vec::new();
        for r in [1u32, 5] {
            prost::encoding::uint32::encode(1, &r, &mut ts);
        }
        let mut buf = Vec::new();
        for s in &req.symbols {
            prost::encoding::string::encode(4, s, &mut buf);
        }
        prost::encoding::bytes::encode(5, &ts, &mut buf);
        let got = decode_all(&buf).unwrap();
        assert_eq!(
            got[0].clone().unwrap().0,
            vec![("__name__".into(), "up".into())]
        );
    }

    #[test]
    fn broken_series_are_refused_and_the_rest_kept() {
        let broken = |edit: &dyn Fn(&mut v2::TimeSeries)| {
            let mut req = request();
            edit(&mut req.timeseries[0]);
            let got = decode_all(&req.encode_to_vec()).unwrap();
            assert!(got[1].is_ok(), "the other series is kept");
            got[0].clone().unwrap_err()
        };
        assert_eq!(
            broken(&|ts| ts.labels_refs[3] = 99),
            SeriesError::DanglingRef {
                reference: 99,
                symbols: 7
            }
        );
        assert_eq!(
            broken(&|ts| ts.labels_refs.push(1)),
            SeriesError::OddLabelRefs(5)
        );
        assert_eq!(
            broken(&|ts| ts.labels_refs[2] = 0),
            SeriesError::EmptyLabelName
        );
        assert_eq!(
            broken(&|ts| ts.samples.swap(0, 1)),
            SeriesError::OutOfOrder {
                previous: 1_700_000_015_000,
                timestamp: 1_700_000_000_000
            }
        );
        assert!(matches!(
            broken(&|ts| ts.metadata.as_mut().unwrap().help_ref = 7),
            SeriesError::DanglingRef { reference: 7, .. }
        ));
    }

    #[test]
    fn first_symbol_must_be_empty_and_truncation_is_an_error() {
        let mut req = request();
        req.symbols[0] = "x".into();
        assert_eq!(
            decode_all(&req.encode_to_vec()),
            Err(DecodeError::FirstSymbolNotEmpty)
        );
        let buf = request().encode_to_vec();
        for cut in 1..buf.len() {
            let _ = decode_all(&buf[..cut]);
        }
        assert_eq!(
            decode_all(&buf[..buf.len() - 1]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn histograms_and_exemplars_are_counted() {
        let mut req = request();
        req.timeseries[1].histograms.push(v2::Histogram {
            count: Some(v2::histogram::Count::CountInt(3)),
            sum: 1.0,
            schema: 0,
            zero_threshold: 0.0,
            timestamp: 9,
        });
        req.timeseries[0].exemplars.push(v2::Exemplar {
            labels_refs: vec![],
            value: 1.0,
            timestamp: 1,
        });
        let buf = req.encode_to_vec();
        let mut syms = Vec::new();
        symbols(&buf, &mut syms).unwrap();
        let summary =
            decode_write_request_v2(&buf, &syms, &mut ScratchV2::default(), |_| {}).unwrap();
        assert_eq!((summary.histograms, summary.exemplars), (1, 1));
        assert_eq!((summary.series, summary.samples), (2, 3));
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
