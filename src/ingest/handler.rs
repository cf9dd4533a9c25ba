//! The axum handler of `POST /api/v1/write`: negotiates the protocol from the headers,
//! takes a slot, reads the body within the limits, hands it to [`Ingest`] and maps the
//! outcome to a status (and, for 2.0, the `X-Prometheus-Remote-Write-*-Written` headers).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::error::{IngestError, Protocol, Written};
use super::Ingest;

/// Remote write 2.0's answer headers: what the request wrote.
pub const SAMPLES_WRITTEN: &str = "x-prometheus-remote-write-samples-written";
pub const HISTOGRAMS_WRITTEN: &str = "x-prometheus-remote-write-histograms-written";
pub const EXEMPLARS_WRITTEN: &str = "x-prometheus-remote-write-exemplars-written";

/// The protocol a request's `Content-Encoding` and `Content-Type` ask for (415 otherwise).
fn check_headers(headers: &HeaderMap) -> Result<Protocol, IngestError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("<non-ASCII>").trim().to_owned());
    match encoding.as_deref() {
        Some(e) if e.eq_ignore_ascii_case("snappy") => {}
        Some(e) => return Err(IngestError::Encoding(e.to_owned())),
        None => return Err(IngestError::Encoding(String::new())),
    }
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Protocol::V1);
    };
    let ct = ct.to_str().unwrap_or("<non-ASCII>");
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(IngestError::ContentType(ct.to_owned()));
    }
    let mut protocol = Protocol::V1;
    for p in parts {
        let Some((key, value)) = p.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        protocol = match value.trim().trim_matches('"') {
            "prometheus.WriteRequest" => Protocol::V1,
            "io.prometheus.write.v2.Request" => Protocol::V2,
            _ => return Err(IngestError::ContentType(ct.to_owned())),
        };
    }
    Ok(protocol)
}

/// The axum handler.
pub async fn write_handler(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let protocol = check_headers(&headers);
    let v2 = matches!(protocol, Ok(Protocol::V2));
    let result = match protocol {
        Ok(protocol) => handle(&ingest, &headers, protocol, body).await,
        Err(e) => Err(e),
    };
    let code = match &result {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(e) => e.status(),
    };
    ingest.telemetry.write_request(code.as_u16());
    let (mut resp, written) = match result {
        Ok(written) => (StatusCode::NO_CONTENT.into_response(), Some(written)),
        Err(e) => {
            tracing::debug!(status = code.as_u16(), error = %e, "remote write refused");
            let written = match &e {
                IngestError::Invalid { written, .. } => Some(*written),
                _ => None,
            };
            (e.into_response(), written)
        }
    };
    if v2 {
        let h = resp.headers_mut();
        let samples = written.unwrap_or_default().samples;
        h.insert(SAMPLES_WRITTEN, HeaderValue::from(samples));
        h.insert(HISTOGRAMS_WRITTEN, HeaderValue::from(0u64));
        h.insert(EXEMPLARS_WRITTEN, HeaderValue::from(0u64));
    }
    resp
}

async fn handle(
    ingest: &Ingest,
    headers: &HeaderMap,
    protocol: Protocol,
    body: Body,
) -> Result<Written, IngestError> {
    let _permit = ingest
        .in_flight
        .try_acquire()
        .map_err(|_| IngestError::Busy(ingest.limits.max_concurrent_writes))?;
    ingest.telemetry.write_protocol(protocol == Protocol::V2);
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
    ingest.ingest_snappy(&body, protocol, ingest.store.clock().now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(check_headers(&h).unwrap(), Protocol::V1);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        );
        assert_eq!(check_headers(&h).unwrap(), Protocol::V2);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf; proto=\"prometheus.WriteRequest\""),
        );
        assert_eq!(check_headers(&h).unwrap(), Protocol::V1);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf;proto=io.prometheus.write.v3.Request"),
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
