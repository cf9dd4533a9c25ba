//! Remote-write out: pushes each snapshot's forecasts to a `remote_write` URL.
//!
//! Per target, a bounded queue of snapshots (newest kept: when full the oldest waiting one
//! is dropped and counted, since a newer forecast supersedes it) and one task that sends
//! them in batches of `max_samples_per_send`. 5xx, 429 and connection errors are retried
//! with exponential backoff; other 4xx are dropped and counted (retrying cannot help).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::{watch, Notify};

use super::samples::SnapshotSamples;
use crate::config::RemoteWriteSpec;
use crate::proto::prometheus as pb;
use crate::snapshot::{Snapshot, Subscriber};
use crate::telemetry::{RemoteWriteMetrics, Telemetry};

/// The producer side: subscribed to the published snapshots.
#[derive(Clone)]
pub struct RemoteWriteQueue {
    inner: Arc<Queue>,
}

struct Queue {
    snapshots: Mutex<VecDeque<Arc<Snapshot>>>,
    capacity: usize,
    notify: Notify,
    telemetry: Arc<Telemetry>,
    index: usize,
}

impl Queue {
    fn metrics(&self) -> &RemoteWriteMetrics {
        &self.telemetry.remote_write[self.index].1
    }
}

impl RemoteWriteQueue {
    /// Enqueues without blocking.
    pub fn offer(&self, snapshot: Arc<Snapshot>) {
        let q = &self.inner;
        let mut waiting = q.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.len() >= q.capacity {
            if let Some(old) = waiting.pop_front() {
                q.metrics()
                    .samples_dropped_queue_full
                    .inc_by(sample_count(&old) as u64);
            }
        }
        waiting.push_back(snapshot);
        q.metrics().queue_depth.set(waiting.len() as i64);
        drop(waiting);
        q.notify.notify_one();
    }
}

impl Subscriber for RemoteWriteQueue {
    fn publish(&self, snapshot: &Arc<Snapshot>) {
        self.offer(snapshot.clone());
    }
}

fn sample_count(s: &Snapshot) -> usize {
    s.sample_count()
}

/// Starts the sender task for one target. It runs until `shutdown` turns true, then
/// delivers what is queued, giving up at `flush_deadline` after the signal.
pub fn spawn(
    spec: RemoteWriteSpec,
    index: usize,
    telemetry: Arc<Telemetry>,
    mut shutdown: watch::Receiver<bool>,
    flush_deadline: Duration,
) -> (RemoteWriteQueue, tokio::task::JoinHandle<()>) {
    let inner = Arc::new(Queue {
        snapshots: Mutex::new(VecDeque::with_capacity(spec.capacity)),
        capacity: spec.capacity,
        notify: Notify::new(),
        telemetry,
        index,
    });
    let queue = RemoteWriteQueue {
        inner: inner.clone(),
    };
    let task = tokio::spawn(async move {
        if spec.client.insecure() {
            tracing::warn!(url = %spec.url, "tls_config.insecure_skip_verify: the target's certificate is not checked");
        }
        let client = spec.client.client().clone();
        let sender = Sender {
            client,
            spec,
            queue: inner,
        };
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let next = {
                let mut waiting = sender
                    .queue
                    .snapshots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let next = waiting.pop_front();
                sender.queue.metrics().queue_depth.set(waiting.len() as i64);
                next
            };
            match next {
                Some(snapshot) => {
                    sender
                        .send_snapshot(&snapshot, &mut shutdown, &mut deadline, flush_deadline)
                        .await
                }
                None if deadline.is_some() || *shutdown.borrow() => break,
                None => {
                    tokio::select! {
                        _ = sender.queue.notify.notified() => {}
                        _ = shutdown.changed() => {
                            deadline = Some(tokio::time::Instant::now() + flush_deadline);
                        }
                    }
                }
            }
        }
    });
    (queue, task)
}

struct Sender {
    client: reqwest::Client,
    spec: RemoteWriteSpec,
    queue: Arc<Queue>,
}

enum Outcome {
    Sent,
    Retry(String),
    Drop(String),
}

impl Sender {
    async fn send_snapshot(
        &self,
        snapshot: &Snapshot,
        shutdown: &mut watch::Receiver<bool>,
        deadline: &mut Option<tokio::time::Instant>,
        flush_deadline: Duration,
    ) {
        let mut batch = pb::WriteRequest::default();
        let mut labels = Vec::new();
        let mut batches = Vec::new();
        let mut in_batch = 0;
        snapshot.for_each_sample(&mut labels, |labels, value| {
            batch.timeseries.push(pb::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| pb::Label {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: vec![pb::Sample {
                    value,
                    timestamp: snapshot.generated_ms,
                }],
            });
            in_batch += 1;
            if in_batch >= self.spec.max_samples_per_send {
                batches.push(std::mem::take(&mut batch));
                in_batch = 0;
            }
        });
        if in_batch > 0 {
            batches.push(batch);
        }
        for req in batches {
            let samples = req.timeseries.len() as u64;
            let body = match snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()) {
                Ok(b) => bytes::Bytes::from(b),
                Err(e) => {
                    tracing::error!(url = %self.spec.url, error = %e, "snappy compression failed");
                    self.queue.metrics().samples_failed.inc_by(samples);
                    continue;
                }
            };
            let mut backoff = self.spec.min_backoff;
            loop {
                match self.post(body.clone()).await {
                    Outcome::Sent => {
                        let m = self.queue.metrics();
                        m.samples_sent.inc_by(samples);
                        m.last_success
                            .set(crate::store::now_ms().max(0) as f64 / 1e3);
                        break;
                    }
                    Outcome::Drop(reason) => {
                        tracing::warn!(url = %self.spec.url, %reason, samples, "remote write rejected the batch; dropped");
                        self.queue.metrics().samples_failed.inc_by(samples);
                        break;
                    }
                    Outcome::Retry(reason) => {
                        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                            tracing::warn!(url = %self.spec.url, %reason, samples, "shutdown deadline passed; batch dropped");
                            self.queue.metrics().samples_failed.inc_by(samples);
                            break;
                        }
                        tracing::debug!(url = %self.spec.url, %reason, ?backoff, "remote write failed; retrying");
                        self.queue.metrics().requests_retried.inc();
                        let sleep = tokio::time::sleep(backoff);
                        tokio::pin!(sleep);
                        loop {
                            tokio::select! {
                                _ = &mut sleep => break,
                                r = shutdown.changed(), if deadline.is_none() => {
                                    if r.is_err() || *shutdown.borrow() {
                                        *deadline = Some(tokio::time::Instant::now() + flush_deadline);
                                    }
                                }
                            }
                        }
                        backoff = (backoff * 2).min(self.spec.max_backoff);
                    }
                }
            }
        }
    }

    async fn post(&self, body: bytes::Bytes) -> Outcome {
        let resp = self
            .client
            .post(&self.spec.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .await;
        match resp {
            Err(e) => Outcome::Retry(e.to_string()),
            Ok(r) if r.status().is_success() => Outcome::Sent,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let reason = format!("{status}: {}", text.trim());
                if status.is_server_error() || status.as_u16() == 429 {
                    Outcome::Retry(reason)
                } else {
                    Outcome::Drop(reason)
                }
            }
        }
    }
}
