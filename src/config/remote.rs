//! The outgoing clients' sections: `remote_write:` (where forecasts are pushed) and
//! `backfill:` (Prometheus' remote read, for new series' history).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::auth::BasicAuthSection;
use super::check::at_least_one;
use super::client::{self, AuthorizationSection, ClientSpec, ClientTlsSection};
use super::duration::PromDuration;

/// The client keys of a section (`url`, `authorization`, `basic_auth`, `headers`,
/// `tls_config`, `timeout`) for `client::validate`: the sections repeat them (serde's
/// `flatten` does not combine with `deny_unknown_fields`), so they are read by name.
macro_rules! client_fields {
    ($s:expr) => {
        client::ClientFields {
            url: &$s.url,
            authorization: $s.authorization.as_ref(),
            basic_auth: $s.basic_auth.as_ref(),
            headers: &$s.headers,
            tls_config: $s.tls_config.as_ref(),
            timeout: $s.timeout.0,
        }
    };
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteSection {
    pub url: String,
    #[serde(default = "default_rw_timeout")]
    pub timeout: PromDuration,
    /// Samples per request.
    #[serde(default = "default_max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// Forecast snapshots waiting to be sent; when full the oldest waiting one is dropped
    /// and counted.
    #[serde(default = "default_rw_capacity")]
    pub capacity: usize,
    #[serde(default = "default_min_backoff")]
    pub min_backoff: PromDuration,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: PromDuration,
    /// `Authorization: <type> <credentials>` on every request (Prometheus' key).
    #[serde(default)]
    pub authorization: Option<AuthorizationSection>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSection>,
    /// Extra headers on every request (e.g. Mimir's `X-Scope-OrgID`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// TLS towards the target: its CA, a client certificate, as in Prometheus.
    #[serde(default)]
    pub tls_config: Option<ClientTlsSection>,
}

fn default_rw_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}
fn default_max_samples_per_send() -> usize {
    2000
}
fn default_rw_capacity() -> usize {
    4
}
fn default_min_backoff() -> PromDuration {
    PromDuration(Duration::from_millis(30))
}
fn default_max_backoff() -> PromDuration {
    PromDuration(Duration::from_secs(5))
}

#[derive(Debug, Clone)]
pub struct RemoteWriteSpec {
    pub url: String,
    /// The requests' client: TLS, credentials, headers and `timeout`.
    pub client: ClientSpec,
    pub max_samples_per_send: usize,
    pub capacity: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

/// One `remote_write:` entry; `None` when its client does not build (reported).
pub(super) fn remote_write_entry(
    i: usize,
    rw: &RemoteWriteSection,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> Option<RemoteWriteSpec> {
    let at = format!("remote_write[{i}]");
    let client = client::validate(client_fields!(rw), &at, base_dir, problem);
    at_least_one(
        &at,
        &[
            ("max_samples_per_send", rw.max_samples_per_send),
            ("capacity", rw.capacity),
        ],
        problem,
    );
    if rw.min_backoff > rw.max_backoff {
        problem(
            format!("{at}.min_backoff"),
            "must not exceed max_backoff".into(),
        );
    }
    Some(RemoteWriteSpec {
        url: rw.url.clone(),
        client: client?,
        max_samples_per_send: rw.max_samples_per_send.max(1),
        capacity: rw.capacity.max(1),
        min_backoff: rw.min_backoff.0,
        max_backoff: rw.max_backoff.0,
    })
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillSection {
    /// Prometheus' remote-read endpoint, e.g. `http://prometheus:9090/api/v1/read`.
    pub url: String,
    /// History read per series (at most the ring's retention is kept).
    #[serde(default = "default_lookback")]
    pub lookback: PromDuration,
    /// Reads in flight at once.
    #[serde(default = "default_backfill_concurrency")]
    pub concurrency: usize,
    /// Series waiting for a read; beyond it new series are not backfilled (counted).
    #[serde(default = "default_backfill_queue")]
    pub queue: usize,
    #[serde(default = "default_backfill_timeout")]
    pub timeout: PromDuration,
    /// Tries per series (with exponential backoff from 1s to 30s).
    #[serde(default = "default_backfill_attempts")]
    pub max_attempts: usize,
    // The client keys, as in `RemoteWriteSection` (written out twice: serde's `flatten`
    // does not combine with `deny_unknown_fields`); `client::validate` reads both.
    /// `Authorization: <type> <credentials>` on every request (Prometheus' key).
    #[serde(default)]
    pub authorization: Option<AuthorizationSection>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSection>,
    /// Extra headers on every request (e.g. Mimir's `X-Scope-OrgID`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// TLS towards the target: its CA, a client certificate, as in Prometheus.
    #[serde(default)]
    pub tls_config: Option<ClientTlsSection>,
}

fn default_lookback() -> PromDuration {
    PromDuration(Duration::from_secs(24 * 3600))
}
fn default_backfill_concurrency() -> usize {
    4
}
fn default_backfill_queue() -> usize {
    100_000
}
fn default_backfill_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}
fn default_backfill_attempts() -> usize {
    5
}

#[derive(Debug, Clone)]
pub struct BackfillSpec {
    pub url: String,
    /// The reads' client: TLS, credentials, headers and `timeout`.
    pub client: ClientSpec,
    pub lookback: Duration,
    pub concurrency: usize,
    pub queue: usize,
    pub max_attempts: usize,
}

/// The `backfill:` section; `None` when its client does not build (reported).
pub(super) fn backfill_spec(
    b: &BackfillSection,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> Option<BackfillSpec> {
    let client = client::validate(client_fields!(b), "backfill", base_dir, problem);
    at_least_one(
        "backfill",
        &[
            ("concurrency", b.concurrency),
            ("queue", b.queue),
            ("max_attempts", b.max_attempts),
        ],
        problem,
    );
    Some(BackfillSpec {
        url: b.url.clone(),
        client: client?,
        lookback: b.lookback.0,
        concurrency: b.concurrency.max(1),
        queue: b.queue.max(1),
        max_attempts: b.max_attempts.max(1),
    })
}
