//! Warm start (`backfill:`): on first sight of a selected series (created by ingest, or
//! restored from a snapshot), read its history from Prometheus' remote-read endpoint and fill
//! its ring, so a model that needs hours of history forecasts at the next step.
//!
//! The store tells a bounded queue of each new series without waiting (a full queue drops
//! the backfill of that series, counted); a task reads them with at most `concurrency` reads
//! in flight, each retried with exponential backoff (1 s doubling to 30 s) up to
//! `max_attempts`. Ingest never waits for it: fetched samples fill the buckets that are still empty
//! ([`Store::backfill`]; a counter stored as rates is rebuilt from them).

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::{mpsc, Semaphore};

use crate::config::BackfillSpec;
use crate::proto::prometheus as pb;
use crate::store::{now_ms, AppendStats, LabelRef, LabelSet, Sample, Store};
use crate::telemetry::{Backfilled, Telemetry};

/// Registers the store hook and starts the reader; returns its task.
pub fn spawn(
    spec: BackfillSpec,
    store: Arc<Store>,
    telemetry: Arc<Telemetry>,
) -> tokio::task::JoinHandle<()> {
    let (tx, rx) = mpsc::channel::<Arc<LabelSet>>(spec.queue);
    let t = telemetry.clone();
    store.on_new_series(Box::new(move |labels| {
        if tx.try_send(labels.clone()).is_err() {
            t.backfilled(Backfilled::Dropped);
        }
    }));
    tokio::spawn(run(spec, store, telemetry, rx))
}

async fn run(
    spec: BackfillSpec,
    store: Arc<Store>,
    telemetry: Arc<Telemetry>,
    mut rx: mpsc::Receiver<Arc<LabelSet>>,
) {
    if spec.client.insecure() {
        tracing::warn!(url = %spec.url, "tls_config.insecure_skip_verify: the backfill source's certificate is not checked");
    }
    let client = spec.client.client().clone();
    let permits = Arc::new(Semaphore::new(spec.concurrency));
    let spec = Arc::new(spec);
    while let Some(labels) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (client, spec, store, telemetry) = (
            client.clone(),
            spec.clone(),
            store.clone(),
            telemetry.clone(),
        );
        tokio::spawn(async move {
            let result = fetch_with_retries(&client, &spec, &store, &telemetry, &labels).await;
            match result {
                Ok(n) => {
                    telemetry.backfilled(Backfilled::Ok);
                    telemetry.backfill_samples.inc_by(n as u64);
                    tracing::debug!(series = ?labels, samples = n, "backfilled");
                }
                Err(e) => {
                    telemetry.backfilled(Backfilled::Failed);
                    tracing::warn!(series = ?labels, error = %e, "backfill failed");
                }
            }
            drop(permit);
        });
    }
}

async fn fetch_with_retries(
    client: &reqwest::Client,
    spec: &BackfillSpec,
    store: &Store,
    telemetry: &Telemetry,
    labels: &LabelSet,
) -> Result<usize, String> {
    let mut delay = Duration::from_secs(1);
    let mut last = String::new();
    for attempt in 0..spec.max_attempts {
        if attempt > 0 {
            telemetry.backfill_retries.inc();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
        match fetch(client, spec, labels).await {
            Ok(series) => return Ok(append(store, labels, &series)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The remote-read request for one series over `[now − lookback, now]`.
pub fn request(labels: &LabelSet, lookback: Duration, now_ms: i64) -> pb::ReadRequest {
    pb::ReadRequest {
        queries: vec![pb::Query {
            start_timestamp_ms: now_ms - lookback.as_millis() as i64,
            end_timestamp_ms: now_ms,
            matchers: labels
                .iter()
                .map(|(n, v)| pb::LabelMatcher {
                    r#type: pb::label_matcher::Type::Eq as i32,
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            hints: None,
        }],
        accepted_response_types: vec![pb::read_request::ResponseType::Samples as i32],
    }
}

async fn fetch(
    client: &reqwest::Client,
    spec: &BackfillSpec,
    labels: &LabelSet,
) -> Result<Vec<pb::TimeSeries>, String> {
    let body = snap::raw::Encoder::new()
        .compress_vec(&request(labels, spec.lookback, now_ms()).encode_to_vec())
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(&spec.url)
        .header("Content-Encoding", "snappy")
        .header("Accept-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", spec.url))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!(
            "{}: HTTP {status}: {}",
            spec.url,
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim()
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&bytes)
        .map_err(|e| format!("{}: snappy: {e}", spec.url))?;
    let resp = pb::ReadResponse::decode(&raw[..]).map_err(|e| format!("{}: {e}", spec.url))?;
    Ok(resp
        .results
        .into_iter()
        .flat_map(|r| r.timeseries)
        .collect())
}

/// Appends the samples of the series that are exactly `labels` (Prometheus adds its external
/// labels to what it returns; those are ignored here).
fn append(store: &Store, labels: &LabelSet, series: &[pb::TimeSeries]) -> usize {
    let refs: Vec<LabelRef<'_>> = labels.iter().map(|(n, v)| LabelRef::new(n, v)).collect();
    let mut stats = AppendStats::default();
    let mut n = 0;
    for ts in series {
        let matches = labels
            .iter()
            .all(|(name, value)| ts.labels.iter().any(|l| l.name == name && l.value == value));
        if !matches {
            continue;
        }
        let samples: Vec<Sample> = ts
            .samples
            .iter()
            .map(|s| Sample {
                value: s.value,
                timestamp: s.timestamp,
            })
            .collect();
        n += samples.len();
        store.backfill(&refs, &samples, store.clock().now_ms(), &mut stats);
    }
    n
}
