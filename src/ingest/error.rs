//! Why a remote write is refused, and the status that tells the sender what to do: 400 for
//! data that can never succeed (Prometheus drops it), 413/415 for a body it must not send
//! so, 503 with `Retry-After` for transient trouble (Prometheus retries).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::decode::DecodeError;

/// The remote-write protocol of a request, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest`
    V1,
    /// `io.prometheus.write.v2.Request`
    V2,
}

impl Protocol {
    /// The protobuf message of the protocol.
    pub fn message(self) -> &'static str {
        match self {
            Protocol::V1 => "prometheus.WriteRequest",
            Protocol::V2 => "io.prometheus.write.v2.Request",
        }
    }
}

/// What a request wrote, for 2.0's `X-Prometheus-Remote-Write-*-Written` headers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub samples: u64,
}

/// Why a request was refused. Messages name the offending value.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "unsupported Content-Encoding {0:?}: remote-write bodies (1.0 and 2.0) must be snappy-compressed"
    )]
    Encoding(String),
    #[error("unsupported Content-Type {0:?}: expected application/x-protobuf with no proto, proto=prometheus.WriteRequest (remote write 1.0) or proto=io.prometheus.write.v2.Request (2.0)")]
    ContentType(String),
    #[error("body larger than limits.max_body_bytes ({0} bytes)")]
    BodyTooLarge(usize),
    #[error("decompressed body of {got} bytes is larger than limits.max_decompressed_bytes ({limit} bytes)")]
    DecompressedTooLarge { got: usize, limit: usize },
    #[error("invalid snappy block: {0}")]
    Snappy(snap::Error),
    #[error("reading request body: {0}")]
    Body(String),
    #[error("malformed {message}: {1}", message = .0.message())]
    Decode(Protocol, DecodeError),
    #[error("{message} ({count} samples rejected, {accepted} accepted)")]
    Invalid {
        message: String,
        count: u64,
        accepted: u64,
        written: Written,
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
            | IngestError::Decode(..)
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
