//! promcast's own metrics (`promcast_*`), kept in atomics and encoded at scrape time.
//! Label vocabularies are fixed enums (never series labels), so cardinality is bounded.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why samples were not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// No forecast selector matches the series (expected; not an error).
    Unselected,
    /// promcast's own output sent back by a forwarding Prometheus.
    OwnOutput,
    /// Older than the ring holds.
    TooOld,
    /// Invalid label set (400).
    InvalidLabels,
    /// Timestamp too far in the future (400).
    TooFarInFuture,
    /// Over `limits.max_series` (503, retried by the sender).
    SeriesLimit,
    /// Native histograms are not forecast.
    Histogram,
}

impl Dropped {
    const ALL: [Dropped; 7] = [
        Dropped::Unselected,
        Dropped::OwnOutput,
        Dropped::TooOld,
        Dropped::InvalidLabels,
        Dropped::TooFarInFuture,
        Dropped::SeriesLimit,
        Dropped::Histogram,
    ];
    fn as_str(self) -> &'static str {
        match self {
            Dropped::Unselected => "unselected",
            Dropped::OwnOutput => "own_output",
            Dropped::TooOld => "too_old",
            Dropped::InvalidLabels => "invalid_labels",
            Dropped::TooFarInFuture => "too_far_in_future",
            Dropped::SeriesLimit => "series_limit",
            Dropped::Histogram => "histogram",
        }
    }
}

/// Status codes the write endpoint answers with.
pub const WRITE_CODES: [u16; 6] = [204, 400, 413, 415, 500, 503];

/// Series states of the forecast loop.
pub const SERIES_STATES: [&str; 4] = ["warming_up", "ready", "failed", "stale"];

/// Model names, in the order used by per-model counters.
pub const MODELS: [&str; 4] = ["naive", "seasonal_naive", "mstl", "lstm"];

/// Step-duration histogram buckets, seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds (integer so it can be atomic).
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        for (b, le) in self.buckets.iter().zip(DURATION_BUCKETS) {
            if seconds <= le {
                b.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add((seconds * 1e6) as u64, Relaxed);
    }
}

#[derive(Default)]
pub struct RemoteWriteMetrics {
    pub samples_sent: AtomicU64,
    pub samples_failed: AtomicU64,
    pub samples_dropped_queue_full: AtomicU64,
    pub requests_retried: AtomicU64,
    pub queue_depth: AtomicU64,
    pub last_success_ms: AtomicU64,
}

#[derive(Default)]
pub struct Telemetry {
    pub samples_received: AtomicU64,
    pub samples_accepted: AtomicU64,
    pub samples_merged: AtomicU64,
    pub stale_markers: AtomicU64,
    dropped: [AtomicU64; Dropped::ALL.len()],
    write_requests: [AtomicU64; WRITE_CODES.len()],
    pub series_created: AtomicU64,
    pub series_evicted: AtomicU64,
    pub series: AtomicU64,
    pub series_by_state: [AtomicU64; SERIES_STATES.len()],
    pub forecasts: [AtomicU64; MODELS.len()],
    pub forecast_errors: [AtomicU64; MODELS.len()],
    /// `auto`'s (re-)choices, by the model chosen.
    pub auto_choices: [AtomicU64; MODELS.len()],
    pub forecast_step_duration: Histogram,
    /// Seconds between when a step was due and when its snapshot was published.
    pub forecast_lag_ms: AtomicU64,
    /// Age of the oldest forecast in the latest snapshot.
    pub forecast_max_age_ms: AtomicU64,
    pub forecast_steps_skipped: AtomicU64,
    pub refits_deferred: AtomicU64,
    /// `auto` re-choices postponed to a later step (over the step's budget).
    pub auto_choices_deferred: AtomicU64,
    pub anomaly_trainings: AtomicU64,
    pub anomaly_trainings_deferred: AtomicU64,
    pub anomaly_training_failures: AtomicU64,
    pub anomaly_scored: AtomicU64,
    /// Forests held: `[own (per series), pooled (per entry)]`.
    pub anomaly_forests: [AtomicU64; 2],
    pub anomaly_bytes: AtomicU64,
    /// Backfill: series ok, failed, dropped (queue full); retries; samples read.
    pub backfill: [AtomicU64; 5],
    /// `(backend, provider)` of the LSTM model, once loaded.
    pub inference_backend: std::sync::OnceLock<(&'static str, &'static str)>,
    /// Requests refused for missing or wrong credentials: `[http, grpc]`.
    pub unauthorized: [AtomicU64; 2],
    /// TLS handshakes that failed or timed out: `[http, grpc]`.
    pub tls_handshake_failures: [AtomicU64; 2],
    /// Certificate reloads after the files changed: `[listener][ok, failed]`.
    pub tls_reloads: [[AtomicU64; 2]; 2],
    pub snapshot_series: AtomicU64,
    pub snapshot_failures: AtomicU64,
    pub snapshot_last_success_ms: AtomicU64,
    pub remote_write: Vec<(String, RemoteWriteMetrics)>,
}

impl Telemetry {
    pub fn new(remote_write_urls: impl IntoIterator<Item = String>) -> Self {
        Self {
            remote_write: remote_write_urls
                .into_iter()
                .map(|u| (u, RemoteWriteMetrics::default()))
                .collect(),
            ..Default::default()
        }
    }

    pub fn dropped(&self, reason: Dropped, n: u64) {
        if n > 0 {
            let i = Dropped::ALL
                .iter()
                .position(|r| *r == reason)
                .expect("listed");
            self.dropped[i].fetch_add(n, Relaxed);
        }
    }

    pub fn dropped_count(&self, reason: Dropped) -> u64 {
        let i = Dropped::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("listed");
        self.dropped[i].load(Relaxed)
    }

    pub fn write_request(&self, code: u16) {
        if let Some(i) = WRITE_CODES.iter().position(|c| *c == code) {
            self.write_requests[i].fetch_add(1, Relaxed);
        }
    }

    pub fn model_index(model: &str) -> usize {
        MODELS.iter().position(|m| *m == model).unwrap_or(0)
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, out: &mut String) {
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        counter(
            out,
            "promcast_samples_received_total",
            "Samples received by remote write.",
            self.samples_received.load(Relaxed),
        );
        counter(
            out,
            "promcast_samples_accepted_total",
            "Samples stored in a ring (new, or merged into an older bucket).",
            self.samples_accepted.load(Relaxed),
        );
        counter(
            out,
            "promcast_samples_merged_total",
            "Accepted samples that were duplicates or out of order inside the ring.",
            self.samples_merged.load(Relaxed),
        );
        counter(
            out,
            "promcast_stale_markers_total",
            "Prometheus staleness markers received (they end a run; not values).",
            self.stale_markers.load(Relaxed),
        );
        let _ = writeln!(out, "# HELP promcast_samples_dropped_total Samples not stored, by reason.\n# TYPE promcast_samples_dropped_total counter");
        for (r, v) in Dropped::ALL.iter().zip(&self.dropped) {
            let _ = writeln!(
                out,
                "promcast_samples_dropped_total{{reason=\"{}\"}} {}",
                r.as_str(),
                v.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP promcast_write_requests_total Remote-write requests by status code.\n# TYPE promcast_write_requests_total counter");
        for (c, v) in WRITE_CODES.iter().zip(&self.write_requests) {
            let _ = writeln!(
                out,
                "promcast_write_requests_total{{code=\"{c}\"}} {}",
                v.load(Relaxed)
            );
        }
        gauge(
            out,
            "promcast_series",
            "Selected series held in rings.",
            self.series.load(Relaxed) as f64,
        );
        counter(
            out,
            "promcast_series_created_total",
            "Series created.",
            self.series_created.load(Relaxed),
        );
        counter(
            out,
            "promcast_series_evicted_total",
            "Series evicted after storage.idle_timeout without samples.",
            self.series_evicted.load(Relaxed),
        );
        let _ = writeln!(out, "# HELP promcast_forecast_series Series by forecast state.\n# TYPE promcast_forecast_series gauge");
        for (s, v) in SERIES_STATES.iter().zip(&self.series_by_state) {
            let _ = writeln!(
                out,
                "promcast_forecast_series{{state=\"{s}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP promcast_forecasts_total Series forecasts produced, by model.\n# TYPE promcast_forecasts_total counter");
        for (m, v) in MODELS.iter().zip(&self.forecasts) {
            let _ = writeln!(
                out,
                "promcast_forecasts_total{{model=\"{m}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP promcast_forecast_errors_total Per-series model failures, by model.\n# TYPE promcast_forecast_errors_total counter");
        for (m, v) in MODELS.iter().zip(&self.forecast_errors) {
            let _ = writeln!(
                out,
                "promcast_forecast_errors_total{{model=\"{m}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP promcast_auto_choices_total Models chosen by `auto` at each per-series re-choice.\n# TYPE promcast_auto_choices_total counter");
        for (m, v) in MODELS.iter().zip(&self.auto_choices) {
            let _ = writeln!(
                out,
                "promcast_auto_choices_total{{model=\"{m}\"}} {}",
                v.load(Relaxed)
            );
        }
        let h = &self.forecast_step_duration;
        let _ = writeln!(out, "# HELP promcast_forecast_step_duration_seconds Time to compute one forecast step over all series.\n# TYPE promcast_forecast_step_duration_seconds histogram");
        for (b, le) in h.buckets.iter().zip(DURATION_BUCKETS) {
            let _ = writeln!(
                out,
                "promcast_forecast_step_duration_seconds_bucket{{le=\"{le}\"}} {}",
                b.load(Relaxed)
            );
        }
        let count = h.count.load(Relaxed);
        let _ = writeln!(
            out,
            "promcast_forecast_step_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "promcast_forecast_step_duration_seconds_sum {}",
            h.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "promcast_forecast_step_duration_seconds_count {count}");
        gauge(
            out,
            "promcast_forecast_lag_seconds",
            "How late the latest forecast snapshot was published relative to its step.",
            self.forecast_lag_ms.load(Relaxed) as f64 / 1e3,
        );
        gauge(out, "promcast_forecast_max_age_seconds", "Age of the oldest forecast in the latest snapshot (time since its model last saw data).", self.forecast_max_age_ms.load(Relaxed) as f64 / 1e3);
        counter(
            out,
            "promcast_forecast_steps_skipped_total",
            "Steps skipped because the previous step was still running.",
            self.forecast_steps_skipped.load(Relaxed),
        );
        counter(
            out,
            "promcast_forecast_refits_deferred_total",
            "Model refits postponed to a later step to keep within the step budget.",
            self.refits_deferred.load(Relaxed),
        );
        counter(
            out,
            "promcast_auto_choices_deferred_total",
            "Per-series `auto` re-choices postponed to a later step to keep within the step budget (the series keeps its current model meanwhile).",
            self.auto_choices_deferred.load(Relaxed),
        );
        counter(
            out,
            "promcast_anomaly_trainings_total",
            "Isolation forests trained (per series and pooled).",
            self.anomaly_trainings.load(Relaxed),
        );
        counter(
            out,
            "promcast_anomaly_trainings_deferred_total",
            "Forest trainings postponed to a later step to keep within the step budget.",
            self.anomaly_trainings_deferred.load(Relaxed),
        );
        counter(
            out,
            "promcast_anomaly_training_failures_total",
            "Forest trainings that failed (e.g. too few finite feature rows).",
            self.anomaly_training_failures.load(Relaxed),
        );
        counter(
            out,
            "promcast_anomaly_points_scored_total",
            "Newest points given an anomaly score.",
            self.anomaly_scored.load(Relaxed),
        );
        let _ = writeln!(out, "# HELP promcast_anomaly_forests Isolation forests held: own (one series) or pooled (one forecast entry).\n# TYPE promcast_anomaly_forests gauge");
        for (kind, v) in ["own", "pooled"].iter().zip(&self.anomaly_forests) {
            let _ = writeln!(
                out,
                "promcast_anomaly_forests{{kind=\"{kind}\"}} {}",
                v.load(Relaxed)
            );
        }
        gauge(
            out,
            "promcast_anomaly_memory_bytes",
            "Approximate heap held by anomaly forests and pooled rows.",
            self.anomaly_bytes.load(Relaxed) as f64,
        );
        let _ = writeln!(out, "# HELP promcast_backfill_series_total Series whose history was read from Prometheus (backfill), by result.\n# TYPE promcast_backfill_series_total counter");
        for (r, i) in [("ok", 0), ("failed", 1), ("dropped", 2)] {
            let _ = writeln!(
                out,
                "promcast_backfill_series_total{{result=\"{r}\"}} {}",
                self.backfill[i].load(Relaxed)
            );
        }
        counter(
            out,
            "promcast_backfill_retries_total",
            "Backfill reads retried after an error.",
            self.backfill[3].load(Relaxed),
        );
        counter(
            out,
            "promcast_backfill_samples_total",
            "Samples read by backfill.",
            self.backfill[4].load(Relaxed),
        );
        let _ = writeln!(out, "# HELP promcast_unauthorized_requests_total Requests refused with 401 / UNAUTHENTICATED (missing or wrong credentials), by listener.\n# TYPE promcast_unauthorized_requests_total counter");
        for (l, i) in [("http", 0), ("grpc", 1)] {
            let _ = writeln!(
                out,
                "promcast_unauthorized_requests_total{{listener=\"{l}\"}} {}",
                self.unauthorized[i].load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP promcast_tls_handshake_failures_total TLS handshakes that failed (no or an untrusted client certificate, plain HTTP on a TLS port) or timed out, by listener.\n# TYPE promcast_tls_handshake_failures_total counter");
        for l in crate::tls::Listener::ALL {
            let _ = writeln!(
                out,
                "promcast_tls_handshake_failures_total{{listener=\"{}\"}} {}",
                l.as_str(),
                self.tls_handshake_failures[l as usize].load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP promcast_tls_reloads_total Certificate reloads after the TLS files changed, by listener and result (a failed reload keeps the previous certificate).\n# TYPE promcast_tls_reloads_total counter");
        for l in crate::tls::Listener::ALL {
            for (r, result) in ["ok", "failed"].into_iter().enumerate() {
                let _ = writeln!(
                    out,
                    "promcast_tls_reloads_total{{listener=\"{}\",result=\"{result}\"}} {}",
                    l.as_str(),
                    self.tls_reloads[l as usize][r].load(Relaxed)
                );
            }
        }
        if let Some((backend, provider)) = self.inference_backend.get() {
            let _ = writeln!(
                out,
                "# HELP promcast_inference_backend_info The engine running the LSTM model and its execution provider.\n# TYPE promcast_inference_backend_info gauge\npromcast_inference_backend_info{{backend=\"{backend}\",provider=\"{provider}\"}} 1"
            );
        }
        gauge(
            out,
            "promcast_snapshot_series",
            "Series in the last snapshot written (storage.path).",
            self.snapshot_series.load(Relaxed) as f64,
        );
        counter(
            out,
            "promcast_snapshot_failures_total",
            "Snapshots that could not be written.",
            self.snapshot_failures.load(Relaxed),
        );
        gauge(
            out,
            "promcast_snapshot_last_success_timestamp_seconds",
            "When a snapshot was last written.",
            self.snapshot_last_success_ms.load(Relaxed) as f64 / 1e3,
        );
        if !self.remote_write.is_empty() {
            type Field = fn(&RemoteWriteMetrics) -> &AtomicU64;
            let families: [(&str, &str, &str, Field); 6] = [
                (
                    "promcast_remote_write_samples_sent_total",
                    "counter",
                    "Forecast samples delivered.",
                    |m| &m.samples_sent,
                ),
                (
                    "promcast_remote_write_samples_failed_total",
                    "counter",
                    "Forecast samples dropped after a non-retryable error.",
                    |m| &m.samples_failed,
                ),
                (
                    "promcast_remote_write_samples_dropped_total",
                    "counter",
                    "Forecast samples dropped because the queue was full.",
                    |m| &m.samples_dropped_queue_full,
                ),
                (
                    "promcast_remote_write_retries_total",
                    "counter",
                    "Requests retried after 5xx, 429 or a connection error.",
                    |m| &m.requests_retried,
                ),
                (
                    "promcast_remote_write_queue_depth",
                    "gauge",
                    "Snapshots waiting to be sent.",
                    |m| &m.queue_depth,
                ),
                (
                    "promcast_remote_write_last_success_timestamp_seconds",
                    "gauge",
                    "When a request last succeeded.",
                    |m| &m.last_success_ms,
                ),
            ];
            for (name, kind, help, field) in families {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (url, m) in &self.remote_write {
                    let v = field(m).load(Relaxed);
                    let v = if name.ends_with("timestamp_seconds") {
                        v as f64 / 1e3
                    } else {
                        v as f64
                    };
                    let _ = writeln!(out, "{name}{{url=\"{}\"}} {v}", escape_label_value(url));
                }
            }
        }
    }
}

/// Escapes a label value for the text format: backslash, double quote and newline.
pub fn escape_label_value(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    std::borrow::Cow::Owned(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_fixed_labels() {
        let t = Telemetry::new(["http://x/api/v1/write".to_string()]);
        t.dropped(Dropped::TooOld, 3);
        t.write_request(415);
        t.forecast_step_duration.observe(0.02);
        let mut out = String::new();
        t.render(&mut out);
        assert!(out.contains("promcast_samples_dropped_total{reason=\"too_old\"} 3"));
        assert!(out.contains("promcast_write_requests_total{code=\"415\"} 1"));
        assert!(out.contains("promcast_forecast_step_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(out.contains("promcast_forecast_step_duration_seconds_bucket{le=\"0.01\"} 0"));
        assert!(out.contains("promcast_remote_write_queue_depth{url=\"http://x/api/v1/write\"} 0"));
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
