//! `POST /api/v1/read`: Prometheus remote read (`ReadRequest`, answered with the `SAMPLES`
//! response type, snappy-compressed protobuf), over two families per input series `N{L}`:
//!
//! - `N:forecast{L, ml_forecast}`: the latest forecast as a curve at its target times
//!   (`generated + horizon` for each of the entry's horizons), reaching into the future, so a
//!   Grafana panel whose range ends after now draws the cone after the actual line;
//! - `N:forecast{L, ml_forecast, horizon}`: past forecasts at the time they were made for
//!   (the forecast `horizon` earlier), from [`ForecastHistory`], so actual and "what we said
//!   15 minutes before" overlay with no `offset`;
//! - `promcast_desired_replicas{target, mode}` and `promcast_scaling_load{target, mode, kind}`
//!   of every step in the same window, under the names they have on `/metrics`.
//!
//! Matchers (`=`, `!=`, `=~`, `!~`, regexes fully anchored as in PromQL) and each query's time
//! range are honoured. `limits.max_read_samples` bounds one request: beyond it the answer is
//! 400 with a message. Only `SAMPLES` is served: a request that accepts only
//! `STREAMED_XOR_CHUNKS` gets 400 (Prometheus' own remote-read client asks for `SAMPLES`).

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use regex::Regex;

use super::history::{ForecastHistory, SampleLabels};
use super::samples::ML_FORECAST;
use crate::proto::prometheus as pb;
use crate::snapshot::Snapshot;

/// Suffix of the remote-read family.
pub const FORECAST_SUFFIX: &str = ":forecast";

/// Why a remote read is refused; the answer is the message as plain text. Each is the
/// client's to fix (4xx: Prometheus does not retry) except [`ReadError::Busy`] (503: the
/// agent is answering `limits.max_concurrent_reads` reads already) and
/// [`ReadError::Internal`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("unsupported Content-Encoding {0:?}: remote read is snappy protobuf")]
    Encoding(HeaderValue),
    #[error("body larger than limits.max_body_bytes ({0} bytes)")]
    BodyTooLarge(usize),
    #[error("snappy: {0}")]
    Snappy(snap::Error),
    #[error(
        "decompressed body of {got} bytes is larger than limits.max_decompressed_bytes ({limit})"
    )]
    TooLarge { got: usize, limit: usize },
    #[error("not a remote-read ReadRequest: {0}")]
    Decode(prost::DecodeError),
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "too many concurrent remote-read requests (limits.max_concurrent_reads = {0}), retry later"
    )]
    Busy(usize),
    /// The task answering the request failed (logged where it is seen).
    #[error("internal error")]
    Internal,
}

impl ReadError {
    pub fn status(&self) -> StatusCode {
        match self {
            ReadError::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ReadError::BodyTooLarge(_) | ReadError::TooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ReadError::Snappy(_) | ReadError::Decode(_) | ReadError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ReadError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ReadError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        (self.status(), format!("{self}\n")).into_response()
    }
}

enum Op {
    Eq(String),
    Neq(String),
    Re(Regex),
    Nre(Regex),
}

struct Matcher {
    name: String,
    op: Op,
}

impl Matcher {
    fn new(m: &pb::LabelMatcher) -> Result<Self, ReadError> {
        let re = |v: &str| {
            regex::RegexBuilder::new(&format!("^(?:{v})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ReadError::BadRequest(format!("invalid regex {v:?}: {e}")))
        };
        let op = match pb::label_matcher::Type::try_from(m.r#type) {
            Ok(pb::label_matcher::Type::Eq) => Op::Eq(m.value.clone()),
            Ok(pb::label_matcher::Type::Neq) => Op::Neq(m.value.clone()),
            Ok(pb::label_matcher::Type::Re) => Op::Re(re(&m.value)?),
            Ok(pb::label_matcher::Type::Nre) => Op::Nre(re(&m.value)?),
            Err(_) => {
                return Err(ReadError::BadRequest(format!(
                    "unknown matcher type {} for label {:?}",
                    m.r#type, m.name
                )))
            }
        };
        Ok(Self {
            name: m.name.clone(),
            op,
        })
    }

    /// A missing label matches as the empty value, as in PromQL.
    fn matches(&self, labels: &[(String, String)]) -> bool {
        let v = labels
            .iter()
            .find(|(n, _)| *n == self.name)
            .map_or("", |(_, v)| v.as_str());
        match &self.op {
            Op::Eq(x) => v == x,
            Op::Neq(x) => v != x,
            Op::Re(r) => r.is_match(v),
            Op::Nre(r) => !r.is_match(v),
        }
    }
}

/// Answers one decompressed `ReadRequest`.
pub fn read(
    req: &pb::ReadRequest,
    snapshot: &Snapshot,
    history: &ForecastHistory,
    step_ms: i64,
    max_samples: usize,
) -> Result<pb::ReadResponse, ReadError> {
    use pb::read_request::ResponseType;
    if !req.accepted_response_types.is_empty()
        && !req
            .accepted_response_types
            .contains(&(ResponseType::Samples as i32))
    {
        return Err(ReadError::BadRequest(
            "promcast serves the SAMPLES response type only".into(),
        ));
    }
    let mut total = 0usize;
    let mut results = Vec::with_capacity(req.queries.len());
    for (qi, q) in req.queries.iter().enumerate() {
        let mut out = QueryOut {
            matchers: q
                .matchers
                .iter()
                .map(Matcher::new)
                .collect::<Result<_, _>>()?,
            start: q.start_timestamp_ms,
            end: q.end_timestamp_ms,
            index: qi,
            max_samples,
            total: &mut total,
            timeseries: Vec::new(),
        };
        latest_forecasts(snapshot, &mut out)?;
        past_forecasts(snapshot, history, step_ms, &mut out)?;
        scaling_series(history, &mut out)?;
        results.push(pb::QueryResult {
            timeseries: out.timeseries,
        });
    }
    Ok(pb::ReadResponse { results })
}

/// The answer to one query of a request, being collected.
struct QueryOut<'a> {
    matchers: Vec<Matcher>,
    /// The query's time range, inclusive.
    start: i64,
    end: i64,
    /// The query's position in the request (for the error message).
    index: usize,
    max_samples: usize,
    /// Samples answered so far by the whole request.
    total: &'a mut usize,
    timeseries: Vec<pb::TimeSeries>,
}

impl QueryOut<'_> {
    /// Whether `t` is in the query's time range.
    fn in_range(&self, t: i64) -> bool {
        t >= self.start && t <= self.end
    }

    /// Adds a series when it has samples and its labels match, failing once the request
    /// needs more than `max_samples` samples.
    fn emit(
        &mut self,
        labels: Vec<(String, String)>,
        samples: Vec<pb::Sample>,
    ) -> Result<(), ReadError> {
        if samples.is_empty() || !self.matchers.iter().all(|m| m.matches(&labels)) {
            return Ok(());
        }
        *self.total += samples.len();
        if *self.total > self.max_samples {
            let (qi, max_samples) = (self.index, self.max_samples);
            return Err(ReadError::BadRequest(format!(
                "query {qi} needs more than limits.max_read_samples ({max_samples}) samples; narrow the selector or the time range"
            )));
        }
        self.timeseries.push(pb::TimeSeries {
            labels: labels
                .into_iter()
                .map(|(name, value)| pb::Label { name, value })
                .collect(),
            samples,
        });
        Ok(())
    }
}

/// The latest forecast, at its target times.
fn latest_forecasts(snapshot: &Snapshot, out: &mut QueryOut<'_>) -> Result<(), ReadError> {
    for s in snapshot.ready() {
        let horizons = &snapshot.horizons[s.spec as usize];
        for (k, kind) in ML_FORECAST.iter().enumerate() {
            let labels = forecast_labels(&s.labels, s.rate, kind, None);
            let samples: Vec<pb::Sample> = horizons
                .iter()
                .zip(&s.points)
                .map(|((_, h_ms), p)| pb::Sample {
                    timestamp: snapshot.generated_ms + h_ms,
                    value: [p.yhat, p.lower, p.upper][k],
                })
                .filter(|x| out.in_range(x.timestamp) && x.value.is_finite())
                .collect();
            out.emit(labels, samples)?;
        }
    }
    Ok(())
}

/// Past forecasts at the times they were for.
fn past_forecasts(
    snapshot: &Snapshot,
    history: &ForecastHistory,
    step_ms: i64,
    out: &mut QueryOut<'_>,
) -> Result<(), ReadError> {
    let (start, end) = (out.start, out.end);
    let len = history.span();
    let mut err = None;
    history.for_each(|e| {
        if err.is_some() {
            return;
        }
        let Some(horizons) = snapshot.horizons.get(e.spec as usize) else {
            return;
        };
        let lo = (e.head - len as i64 + 1).max(start.div_euclid(step_ms));
        let hi = e.head.min(end.div_euclid(step_ms));
        for (h, (hl, _)) in horizons.iter().enumerate() {
            for (k, kind) in ML_FORECAST.iter().enumerate() {
                let samples: Vec<pb::Sample> = (lo..=hi)
                    .filter_map(|b| {
                        let v = e.get(b, h, len)?[k];
                        let ts = b * step_ms;
                        (ts >= start && ts <= end && v.is_finite()).then_some(pb::Sample {
                            timestamp: ts,
                            value: v as f64,
                        })
                    })
                    .collect();
                if let Err(x) =
                    out.emit(forecast_labels(&e.labels, e.rate, kind, Some(hl)), samples)
                {
                    err = Some(x);
                    return;
                }
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Desired replicas and the loads they used, over the kept steps.
fn scaling_series(history: &ForecastHistory, out: &mut QueryOut<'_>) -> Result<(), ReadError> {
    let mut scaling: Vec<(SampleLabels, Vec<pb::Sample>)> = Vec::new();
    history.scaling().for_each(|t, labels, value| {
        if !out.in_range(t) || !value.is_finite() {
            return;
        }
        let sample = pb::Sample {
            timestamp: t,
            value,
        };
        match scaling.iter_mut().find(|(l, _)| l == labels) {
            Some((_, samples)) => samples.push(sample),
            None => scaling.push((labels.clone(), vec![sample])),
        }
    });
    for (labels, samples) in scaling {
        out.emit(labels.to_vec(), samples)?;
    }
    Ok(())
}

/// `N:forecast` labels of an input label set, sorted by name.
fn forecast_labels(
    labels: &crate::store::LabelSet,
    rate: bool,
    kind: &str,
    horizon: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = labels
        .iter()
        .map(|(n, v)| {
            if n == "__name__" {
                let rate = if rate { ":rate" } else { "" };
                (n.to_string(), format!("{v}{rate}{FORECAST_SUFFIX}"))
            } else {
                (n.to_string(), v.to_string())
            }
        })
        .collect();
    out.push(("ml_forecast".into(), kind.into()));
    if let Some(h) = horizon {
        out.push(("horizon".into(), h.into()));
    }
    out.sort();
    out
}

/// Decompresses and decodes a snappy `ReadRequest`, answers it, and returns the snappy
/// `ReadResponse` bytes.
pub fn handle(
    body: &[u8],
    max_decompressed: usize,
    snapshot: &Snapshot,
    history: &ForecastHistory,
    step_ms: i64,
    max_samples: usize,
) -> Result<Vec<u8>, ReadError> {
    let len = snap::raw::decompress_len(body).map_err(ReadError::Snappy)?;
    if len > max_decompressed {
        return Err(ReadError::TooLarge {
            got: len,
            limit: max_decompressed,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(ReadError::Snappy)?;
    let req = pb::ReadRequest::decode(&raw[..]).map_err(ReadError::Decode)?;
    let resp = read(&req, snapshot, history, step_ms, max_samples)?;
    snap::raw::Encoder::new()
        .compress_vec(&resp.encode_to_vec())
        .map_err(ReadError::Snappy)
}

/// A response's series: sorted labels to `(timestamp, value)` samples.
pub type SeriesMap = HashMap<Vec<(String, String)>, Vec<(i64, f64)>>;

/// Series of a response by their sorted labels (tests and tools).
pub fn by_labels(resp: &pb::QueryResult) -> SeriesMap {
    resp.timeseries
        .iter()
        .map(|t| {
            (
                t.labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                t.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Point;
    use crate::snapshot::SeriesForecast;
    use crate::store::{LabelSet, SeriesId};
    use std::sync::Arc;

    fn snapshot() -> (Snapshot, ForecastHistory) {
        let labels = Arc::new(LabelSet::from_pairs([
            ("__name__", "job:req:rate1m"),
            ("job", "web"),
        ]));
        let point = |v: f64| Point {
            yhat: v,
            lower: v - 1.0,
            upper: v + 1.0,
        };
        let f = SeriesForecast {
            points: vec![point(10.0), point(20.0)],
            ..SeriesForecast::new(labels, SeriesId(1), 0, 0, 0, 0)
        };
        let history = ForecastHistory::new(100);
        for o in 0..50 {
            history.record(SeriesId(1), &f, o, &[1, 3]);
        }
        let snap = Snapshot {
            generated_ms: 50 * 60_000,
            step_ms: 60_000,
            horizons: vec![vec![("1m".into(), 60_000), ("3m".into(), 180_000)]],
            series: vec![f],
            scaling: Vec::new(),
        };
        (snap, history)
    }

    fn query(matchers: &[(i32, &str, &str)], start: i64, end: i64) -> pb::ReadRequest {
        pb::ReadRequest {
            queries: vec![pb::Query {
                start_timestamp_ms: start,
                end_timestamp_ms: end,
                matchers: matchers
                    .iter()
                    .map(|(t, n, v)| pb::LabelMatcher {
                        r#type: *t,
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                hints: None,
            }],
            accepted_response_types: vec![0],
        }
    }

    /// A counter's forecasts are of its rate: `N:rate:forecast`, now and in the history.
    #[test]
    fn counter_rates_are_named_as_rates() {
        let (mut snap, _) = snapshot();
        snap.series[0].rate = true;
        let history = ForecastHistory::new(100);
        for o in 0..50 {
            history.record(SeriesId(1), &snap.series[0], o, &[1, 3]);
        }
        for horizon in ["", "3m"] {
            let req = query(
                &[
                    (0, "__name__", "job:req:rate1m:rate:forecast"),
                    (0, "ml_forecast", "yhat"),
                    (0, "horizon", horizon),
                ],
                0,
                i64::MAX,
            );
            let resp = read(&req, &snap, &history, 60_000, 1000).unwrap();
            assert_eq!(by_labels(&resp.results[0]).len(), 1, "horizon {horizon:?}");
            let req = query(&[(0, "__name__", "job:req:rate1m:forecast")], 0, i64::MAX);
            let resp = read(&req, &snap, &history, 60_000, 1000).unwrap();
            assert!(by_labels(&resp.results[0]).is_empty());
        }
    }

    #[test]
    fn latest_curve_reaches_into_the_future_and_history_aligns_to_targets() {
        let (snap, history) = snapshot();
        // the cone: no horizon label (`horizon=""`), yhat only
        let req = query(
            &[
                (0, "__name__", "job:req:rate1m:forecast"),
                (0, "ml_forecast", "yhat"),
                (0, "horizon", ""),
            ],
            0,
            i64::MAX,
        );
        let resp = read(&req, &snap, &history, 60_000, 1000).unwrap();
        let series = by_labels(&resp.results[0]);
        assert_eq!(series.len(), 1);
        let (labels, samples) = series.iter().next().unwrap();
        assert!(labels.contains(&("job".into(), "web".into())));
        assert_eq!(samples, &vec![(51 * 60_000, 10.0), (53 * 60_000, 20.0)]);
        // history at horizon 3m, regex on the name, a time range
        let req = query(
            &[
                (2, "__name__", ".+:forecast"),
                (0, "horizon", "3m"),
                (1, "ml_forecast", "yhat"),
            ],
            10 * 60_000,
            20 * 60_000,
        );
        let resp = read(&req, &snap, &history, 60_000, 1000).unwrap();
        let series = by_labels(&resp.results[0]);
        assert_eq!(series.len(), 2, "yhat_lower and yhat_upper");
        for samples in series.values() {
            assert_eq!(samples.len(), 11);
            assert!(samples
                .iter()
                .all(|(t, _)| (10 * 60_000..=20 * 60_000).contains(t)));
        }
        // no match
        let req = query(&[(0, "__name__", "nothing")], 0, i64::MAX);
        assert!(
            read(&req, &snap, &history, 60_000, 1000).unwrap().results[0]
                .timeseries
                .is_empty()
        );
    }

    #[test]
    fn desired_replicas_of_the_kept_steps() {
        use crate::config::Policy;
        use crate::config::ScalingMode;
        use crate::snapshot::{Recommendation, ScalingStatus};
        let (mut snap, _) = snapshot();
        let history = ForecastHistory::new(10);
        let step = 60_000;
        for s in 0..30i64 {
            snap.generated_ms = s * step;
            snap.scaling = vec![Recommendation {
                target: "web".into(),
                mode: ScalingMode::Active,
                policy: Policy::Quantile(crate::policy::Quantile { q: 0.9 }),
                // a target with nothing to recommend every third step: no sample then
                desired: (s % 3 != 0).then_some(s as u32),
                reason: None,
                load: Some(s as f64 * 10.0),
                observed: Some(1.0),
                predicted: None,
                status: ScalingStatus::Ok,
            }];
            history.record_scaling(&snap, step);
        }
        let req = query(
            &[
                (0, "__name__", "promcast_desired_replicas"),
                (0, "target", "web"),
            ],
            0,
            i64::MAX,
        );
        let resp = read(&req, &snap, &history, step, 1000).unwrap();
        let series = by_labels(&resp.results[0]);
        let (labels, samples) = series.iter().next().expect("one series");
        assert_eq!(series.len(), 1);
        assert!(labels.contains(&("mode".into(), "active".into())));
        // the last 10 steps (20..=29) less those without a recommendation (21, 24, 27)
        let want: Vec<(i64, f64)> = (20..30)
            .filter(|s| s % 3 != 0)
            .map(|s| (s * step, s as f64))
            .collect();
        assert_eq!(samples, &want);
        // the load figures: `used` only, over a time range
        let req = query(
            &[
                (0, "__name__", "promcast_scaling_load"),
                (0, "kind", "used"),
            ],
            25 * step,
            26 * step,
        );
        let resp = read(&req, &snap, &history, step, 1000).unwrap();
        let series = by_labels(&resp.results[0]);
        assert_eq!(series.len(), 1);
        assert_eq!(
            series.values().next().unwrap(),
            &vec![(25 * step, 250.0), (26 * step, 260.0)]
        );
    }

    #[test]
    fn sample_limit_bad_regex_and_chunked_only_are_clear_errors() {
        let (snap, history) = snapshot();
        let req = query(&[(2, "__name__", ".+")], 0, i64::MAX);
        let e = read(&req, &snap, &history, 60_000, 10).unwrap_err();
        assert!(e.to_string().contains("max_read_samples"), "{e}");
        assert_eq!(
            e.status(),
            StatusCode::BAD_REQUEST,
            "Prometheus must not retry it"
        );
        let req = query(&[(2, "job", "(")], 0, i64::MAX);
        assert!(read(&req, &snap, &history, 60_000, 10)
            .unwrap_err()
            .to_string()
            .contains("invalid regex"));
        let mut req = query(&[(0, "job", "web")], 0, i64::MAX);
        req.accepted_response_types = vec![1];
        assert!(read(&req, &snap, &history, 60_000, 10)
            .unwrap_err()
            .to_string()
            .contains("SAMPLES"));
        // garbage bodies never panic
        let e = handle(b"\x00garbage", 1 << 20, &snap, &history, 60_000, 10).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let big = snap::raw::Encoder::new().compress_vec(&[0; 64]).unwrap();
        let e = handle(&big, 32, &snap, &history, 60_000, 10).unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
