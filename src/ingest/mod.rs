//! `POST /api/v1/write`: Prometheus remote-write 1.0 in.
//!
//! Status codes decide what the sender does, so they are chosen with care:
//! - 204: stored (or deliberately dropped: unselected series, samples older than the ring,
//!   promcast's own output sent back).
//! - 400: the data can never succeed (malformed body, invalid labels, timestamps too far
//!   ahead); Prometheus drops the batch. Valid series of the same request are kept.
//! - 413: body too large compressed or decompressed. 415: not snappy-compressed protobuf
//!   `WriteRequest` (e.g. remote-write 2.0).
//! - 503 with `Retry-After`: overload (too many requests at once, series limit reached, a
//!   body not delivered within `limits.body_timeout`, so slow clients cannot hold every
//!   slot); Prometheus retries, and merging makes the retry idempotent.
//!
//! Decoding and appending run synchronously in the handler (a typical request is tens of
//! microseconds of work), so every error reaches the status code.

pub mod backfill;
pub mod decode;

use std::cell::RefCell;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use crate::config::Limits;
use crate::store::{
    hash_labels, now_ms, AppendStats, BatchItem, LabelHash, LabelRef, Sample, Store,
};
use crate::telemetry::{Dropped, Telemetry};
use decode::{decode_labels, decode_write_request, DecodeError, Scratch};

/// Suffixes of the series promcast itself writes. A Prometheus that forwards everything it
/// receives would send them back; they are dropped so no forecast-of-a-forecast loop forms.
pub const OWN_OUTPUT_SUFFIXES: [&str; 4] =
    [":predicted", ":forecast", ":anomaly_score", ":anomalous"];
/// The label every forecast series carries.
pub const FORECAST_LABEL: &str = "ml_forecast";

/// Whether a series is promcast's own output.
pub fn is_own_output(labels: &[LabelRef<'_>]) -> bool {
    labels.iter().any(|l| {
        l.name == FORECAST_LABEL.as_bytes()
            || (l.name == b"__name__"
                && OWN_OUTPUT_SUFFIXES
                    .iter()
                    .any(|s| l.value.ends_with(s.as_bytes())))
    })
}

/// Why a request was refused. Messages name the offending value.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "unsupported Content-Encoding {0:?}: remote write 1.0 bodies must be snappy-compressed"
    )]
    Encoding(String),
    #[error("unsupported Content-Type {0:?}: expected application/x-protobuf (remote write 1.0, prometheus.WriteRequest)")]
    ContentType(String),
    #[error("body larger than limits.max_body_bytes ({0} bytes)")]
    BodyTooLarge(usize),
    #[error("decompressed body of {got} bytes is larger than limits.max_decompressed_bytes ({limit} bytes)")]
    DecompressedTooLarge { got: usize, limit: usize },
    #[error("invalid snappy block: {0}")]
    Snappy(snap::Error),
    #[error("reading request body: {0}")]
    Body(String),
    #[error("malformed WriteRequest: {0}")]
    Decode(DecodeError),
    #[error("{message} ({count} samples rejected, {accepted} accepted)")]
    Invalid {
        message: String,
        count: u64,
        accepted: u64,
    },
    #[error("series limit reached (limits.max_series = {limit}): {count} samples of new series refused, retry later")]
    SeriesLimit { limit: usize, count: u64 },
    #[error("too many concurrent remote-write requests (limits.max_concurrent_writes = {0}), retry later")]
    Busy(usize),
    #[error("request body not received within limits.body_timeout ({0:?}), retry later")]
    BodyTimeout(std::time::Duration),
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Encoding(_) | IngestError::ContentType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::BodyTooLarge(_) | IngestError::DecompressedTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::Snappy(_)
            | IngestError::Body(_)
            | IngestError::Decode(_)
            | IngestError::Invalid { .. } => StatusCode::BAD_REQUEST,
            IngestError::SeriesLimit { .. }
            | IngestError::Busy(_)
            | IngestError::BodyTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (status, format!("{self}\n")).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

/// What the write handler needs, and nothing else.
pub struct Ingest {
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    limits: Limits,
    in_flight: Semaphore,
}

thread_local! {
    /// Decompression buffer reused across requests on this thread.
    static DECOMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Requests bigger than this give their decompression buffer back afterwards.
const KEEP_BUFFER_BYTES: usize = 4 << 20;

impl Ingest {
    pub fn new(store: Arc<Store>, telemetry: Arc<Telemetry>, limits: Limits) -> Self {
        Self {
            store,
            telemetry,
            in_flight: Semaphore::new(limits.max_concurrent_writes),
            limits,
        }
    }

    /// Decompresses, decodes, validates and appends one snappy-compressed body.
    pub fn ingest_snappy(
        &self,
        compressed: &[u8],
        now_ms: i64,
    ) -> Result<AppendStats, IngestError> {
        let len = snap::raw::decompress_len(compressed).map_err(IngestError::Snappy)?;
        if len > self.limits.max_decompressed_bytes {
            return Err(IngestError::DecompressedTooLarge {
                got: len,
                limit: self.limits.max_decompressed_bytes,
            });
        }
        DECOMPRESSED.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.clear();
            buf.resize(len, 0);
            let n = snap::raw::Decoder::new()
                .decompress(compressed, &mut buf)
                .map_err(IngestError::Snappy)?;
            buf.truncate(n);
            let result = self.ingest_decoded(&buf, now_ms);
            if buf.capacity() > KEEP_BUFFER_BYTES {
                *buf = Vec::new();
            }
            result
        })
    }

    /// Decodes, validates and appends one uncompressed `WriteRequest`.
    pub fn ingest_decoded(&self, buf: &[u8], now_ms: i64) -> Result<AppendStats, IngestError> {
        let mut stats = AppendStats::default();
        let mut scratch = Scratch::default();
        let mut sorted: Vec<LabelRef<'_>> = Vec::new();
        let mut kept: Vec<Sample> = Vec::new();
        // The request's series: each item's label hash and where its samples lie in
        // `samples`; `raw` holds each one's `TimeSeries` bytes, decoded again only for the
        // few series seen for the first time.
        let mut items: Vec<BatchItem> = Vec::new();
        let mut raw: Vec<&[u8]> = Vec::new();
        let mut samples: Vec<Sample> = Vec::new();
        let mut invalid = 0u64;
        let mut future = 0u64;
        let mut own = 0u64;
        let mut first_error: Option<String> = None;
        let max_ts = now_ms.saturating_add(self.limits.max_future.as_millis() as i64);
        let decoded = decode_write_request(buf, &mut scratch, |series| {
            if series.samples.is_empty() {
                return;
            }
            // Prometheus sends labels sorted, without empty values, in the canonical
            // encoding: hashed as they lie in the request. Anything else is normalised into a
            // copy rather than refused.
            let labels = series.labels;
            let normal = is_normal(labels);
            let hash = match series.canonical_labels {
                Some(bytes) if normal => LabelHash::of_canonical(bytes),
                _ => hash_labels(normalize(labels, normal, &mut sorted)),
            };
            let mut series_samples = series.samples;
            if series_samples.iter().any(|s| s.timestamp > max_ts) {
                kept.clear();
                kept.extend(series_samples.iter().filter(|s| s.timestamp <= max_ts));
                future += (series_samples.len() - kept.len()) as u64;
                first_error.get_or_insert_with(|| {
                    format!(
                        "sample timestamp more than limits.max_future ahead of now for series {}",
                        display_labels(normalize(labels, normal, &mut sorted))
                    )
                });
                series_samples = &kept;
            }
            if series_samples.is_empty() {
                return;
            }
            items.push(BatchItem {
                hash,
                samples: (samples.len() as u32, series_samples.len() as u32),
            });
            raw.push(series.raw);
            samples.extend_from_slice(series_samples);
        });
        // Series seen before were validated then: append (or drop) without re-checking.
        let mut new = Vec::new();
        self.store
            .append_known_batch(&items, &samples, now_ms, &mut stats, &mut new);
        let mut labels = Vec::new();
        for &i in &new {
            let (it, i) = (&items[i as usize], i as usize);
            labels.clear();
            // Decoded once already: cannot fail.
            if decode_labels(raw[i], &mut labels).is_err() {
                continue;
            }
            let labels = normalize(&labels, is_normal(&labels), &mut sorted);
            let (start, len) = it.samples;
            let samples = &samples[start as usize..(start + len) as usize];
            if let Err(reason) = self.validate(labels) {
                invalid += samples.len() as u64;
                first_error.get_or_insert(reason);
                continue;
            }
            if is_own_output(labels) {
                own += samples.len() as u64;
                self.store.remember_unselected(it.hash.hash);
                continue;
            }
            self.store
                .append(it.hash, labels, samples, now_ms, &mut stats);
        }
        let t = &self.telemetry;
        if let Ok(summary) = &decoded {
            t.samples_received.inc_by(summary.samples);
            t.dropped(Dropped::Histogram, summary.histograms);
        }
        self.count(&stats);
        t.dropped(Dropped::OwnOutput, own);
        t.dropped(Dropped::InvalidLabels, invalid);
        t.dropped(Dropped::TooFarInFuture, future);
        decoded.map_err(IngestError::Decode)?;
        if let Some(message) = first_error {
            return Err(IngestError::Invalid {
                message,
                count: invalid + future,
                accepted: stats.appended + stats.merged,
            });
        }
        if stats.series_limit > 0 {
            return Err(IngestError::SeriesLimit {
                limit: self.limits.max_series,
                count: stats.series_limit,
            });
        }
        Ok(stats)
    }

    fn count(&self, s: &AppendStats) {
        let t = &self.telemetry;
        t.samples_accepted.inc_by(s.appended + s.merged);
        t.samples_merged.inc_by(s.merged);
        t.stale_markers.inc_by(s.stale_markers);
        t.series_created.inc_by(s.series_created);
        t.dropped(Dropped::Unselected, s.unselected);
        t.dropped(Dropped::TooOld, s.too_old);
        t.dropped(Dropped::SeriesLimit, s.series_limit);
    }

    /// Checks a sorted label set against Prometheus' naming rules and the configured limits.
    fn validate(&self, labels: &[LabelRef<'_>]) -> Result<(), String> {
        let l = &self.limits;
        if labels.is_empty() {
            return Err("series without labels".into());
        }
        if labels.len() > l.max_labels_per_series {
            return Err(format!(
                "series {} has {} labels, more than limits.max_labels_per_series ({})",
                display_labels(labels),
                labels.len(),
                l.max_labels_per_series
            ));
        }
        let mut has_name = false;
        for (i, label) in labels.iter().enumerate() {
            if i > 0 && labels[i - 1].name == label.name {
                return Err(format!(
                    "duplicate label name {:?} in series {}",
                    String::from_utf8_lossy(label.name),
                    display_labels(labels)
                ));
            }
            if label.name.len() > l.max_label_name_length {
                return Err(format!(
                    "label name of {} bytes is longer than limits.max_label_name_length ({})",
                    label.name.len(),
                    l.max_label_name_length
                ));
            }
            if label.value.len() > l.max_label_value_length {
                return Err(format!(
                    "value of label {:?} has {} bytes, more than limits.max_label_value_length ({})",
                    String::from_utf8_lossy(label.name),
                    label.value.len(),
                    l.max_label_value_length
                ));
            }
            if !valid_label_name(label.name) {
                return Err(format!(
                    "invalid label name {:?}",
                    String::from_utf8_lossy(label.name)
                ));
            }
            if std::str::from_utf8(label.value).is_err() {
                return Err(format!(
                    "value of label {:?} is not valid UTF-8",
                    String::from_utf8_lossy(label.name)
                ));
            }
            if label.name == b"__name__" {
                has_name = true;
                if !valid_metric_name(label.value) {
                    return Err(format!(
                        "invalid metric name {:?}",
                        String::from_utf8_lossy(label.value)
                    ));
                }
            }
        }
        if !has_name {
            return Err(format!(
                "series {} has no metric name",
                display_labels(labels)
            ));
        }
        Ok(())
    }
}

/// Whether labels are sorted by name and have no empty value, as Prometheus sends them.
fn is_normal(labels: &[LabelRef<'_>]) -> bool {
    labels.is_sorted_by(|a, b| name_less(a.name, b.name))
        && labels.iter().all(|l| !l.value.is_empty())
}

/// The labels sorted by name without empty values: `labels` itself when [`is_normal`], else a
/// copy in `buf`.
fn normalize<'s, 'a>(
    labels: &'s [LabelRef<'a>],
    normal: bool,
    buf: &'s mut Vec<LabelRef<'a>>,
) -> &'s [LabelRef<'a>] {
    if normal {
        return labels;
    }
    buf.clear();
    buf.extend(labels.iter().filter(|l| !l.value.is_empty()));
    buf.sort_by(|a, b| a.name.cmp(b.name));
    buf
}

/// `a < b`, deciding on the first byte where it can (label names nearly always differ there)
/// rather than calling `memcmp` for every pair.
#[inline]
fn name_less(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn valid_label_name(n: &[u8]) -> bool {
    !n.is_empty()
        && !n[0].is_ascii_digit()
        && n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn valid_metric_name(n: &[u8]) -> bool {
    !n.is_empty()
        && !n[0].is_ascii_digit()
        && n.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b':')
}

fn display_labels(labels: &[LabelRef<'_>]) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().take(8).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&String::from_utf8_lossy(&l.name[..l.name.len().min(64)]));
        s.push_str("=\"");
        s.push_str(&String::from_utf8_lossy(&l.value[..l.value.len().min(64)]));
        s.push('"');
    }
    if labels.len() > 8 {
        s.push_str(", ...");
    }
    s.push('}');
    s
}

fn check_headers(headers: &HeaderMap) -> Result<(), IngestError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("<non-ASCII>").trim().to_owned());
    match encoding.as_deref() {
        Some(e) if e.eq_ignore_ascii_case("snappy") => {}
        Some(e) => return Err(IngestError::Encoding(e.to_owned())),
        None => return Err(IngestError::Encoding(String::new())),
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("<non-ASCII>");
        let mut parts = ct.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let proto_ok = parts
            .filter_map(|p| p.strip_prefix("proto="))
            .all(|p| p.trim_matches('"') == "prometheus.WriteRequest");
        if !media.eq_ignore_ascii_case("application/x-protobuf") || !proto_ok {
            return Err(IngestError::ContentType(ct.to_owned()));
        }
    }
    Ok(())
}

/// The axum handler.
pub async fn write_handler(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = handle(&ingest, &headers, body).await;
    let code = match &result {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(e) => e.status(),
    };
    ingest.telemetry.write_request(code.as_u16());
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::debug!(status = code.as_u16(), error = %e, "remote write refused");
            e.into_response()
        }
    }
}

async fn handle(ingest: &Ingest, headers: &HeaderMap, body: Body) -> Result<(), IngestError> {
    let _permit = ingest
        .in_flight
        .try_acquire()
        .map_err(|_| IngestError::Busy(ingest.limits.max_concurrent_writes))?;
    check_headers(headers)?;
    let limit = ingest.limits.max_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(IngestError::BodyTooLarge(limit));
        }
    }
    let timeout = ingest.limits.body_timeout;
    let body = tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect())
        .await
        .map_err(|_| IngestError::BodyTimeout(timeout))?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                IngestError::BodyTooLarge(limit)
            } else {
                IngestError::Body(e.to_string())
            }
        })?
        .to_bytes();
    ingest.ingest_snappy(&body, now_ms()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_label_name(b"job"));
        assert!(valid_label_name(b"_x1"));
        assert!(!valid_label_name(b"1x"));
        assert!(!valid_label_name(b"a:b"));
        assert!(!valid_label_name(b""));
        assert!(valid_metric_name(b"job:http:rate5m"));
        assert!(!valid_metric_name(b"a-b"));
    }

    #[test]
    fn own_output_is_recognised() {
        assert!(is_own_output(&[LabelRef::new("__name__", "a:b:predicted")]));
        assert!(is_own_output(&[
            LabelRef::new("__name__", "x"),
            LabelRef::new("ml_forecast", "yhat")
        ]));
        assert!(!is_own_output(&[LabelRef::new(
            "__name__",
            "a:predicted_total"
        )]));
    }

    #[test]
    fn header_negotiation() {
        let mut h = HeaderMap::new();
        assert!(matches!(check_headers(&h), Err(IngestError::Encoding(_))));
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(matches!(check_headers(&h), Err(IngestError::Encoding(_))));
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        assert!(check_headers(&h).is_ok());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        assert!(check_headers(&h).is_ok());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        );
        assert!(matches!(
            check_headers(&h),
            Err(IngestError::ContentType(_))
        ));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(matches!(
            check_headers(&h),
            Err(IngestError::ContentType(_))
        ));
    }
}
