//! `limits:`: what one remote-write or remote-read request, and the agent as a whole, may
//! hold.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::at_least_one;
use super::duration::PromDuration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Selected series kept at once; samples of new series beyond it get 503 (retried).
    pub max_series: usize,
    /// Largest compressed remote-write body (413 beyond).
    pub max_body_bytes: usize,
    /// Largest decompressed remote-write body (413 beyond).
    pub max_decompressed_bytes: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Samples further than this ahead of the local clock are rejected (400).
    pub max_future: PromDuration,
    /// Remote-write requests handled at once; beyond it promcast answers 503 with
    /// Retry-After so the sender retries.
    pub max_concurrent_writes: usize,
    /// How long a remote-write request may take to deliver its body; a slower one is
    /// answered 503 (retry) and its slot freed, so slow clients cannot hold every slot.
    pub body_timeout: PromDuration,
    /// Series that may hold their own anomaly model (the `knn` detector's state, about
    /// 24 KiB, or a `forest`, about 0.23 MiB); the others are scored by their forecast
    /// entry's pooled forest.
    pub max_anomaly_forests: usize,
    /// Samples one remote-read request may return; beyond it the read fails with 400.
    pub max_read_samples: usize,
    /// Remote-read requests answered at once (each compiles its regexes and walks the
    /// snapshot on a blocking thread); beyond it the read is refused with 503.
    pub max_concurrent_reads: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_series: 100_000,
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 128 << 20,
            max_labels_per_series: 64,
            max_label_name_length: 1024,
            max_label_value_length: 4096,
            max_future: PromDuration(Duration::from_secs(600)),
            max_concurrent_writes: 64,
            body_timeout: PromDuration(Duration::from_secs(10)),
            max_anomaly_forests: 256,
            max_read_samples: 5_000_000,
            max_concurrent_reads: 32,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_series: usize,
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    pub max_future: Duration,
    pub max_concurrent_writes: usize,
    pub body_timeout: Duration,
    pub max_anomaly_forests: usize,
    pub max_read_samples: usize,
    pub max_concurrent_reads: usize,
}

/// Checks `limits:` (each problem reported) and takes its durations.
pub(super) fn validate(l: &LimitsSection, problem: &mut impl FnMut(String, String)) -> Limits {
    at_least_one(
        "limits",
        &[
            ("max_series", l.max_series),
            ("max_body_bytes", l.max_body_bytes),
            ("max_decompressed_bytes", l.max_decompressed_bytes),
            ("max_labels_per_series", l.max_labels_per_series),
            ("max_label_name_length", l.max_label_name_length),
            ("max_label_value_length", l.max_label_value_length),
            ("max_concurrent_writes", l.max_concurrent_writes),
            ("max_concurrent_reads", l.max_concurrent_reads),
        ],
        problem,
    );
    if l.body_timeout.0.is_zero() {
        problem(
            "limits.body_timeout".into(),
            "must be greater than 0".into(),
        );
    }
    if l.max_series > u32::MAX as usize / 2 {
        problem("limits.max_series".into(), "too large".into());
    }
    Limits {
        max_series: l.max_series,
        max_body_bytes: l.max_body_bytes,
        max_decompressed_bytes: l.max_decompressed_bytes,
        max_labels_per_series: l.max_labels_per_series,
        max_label_name_length: l.max_label_name_length,
        max_label_value_length: l.max_label_value_length,
        max_future: l.max_future.0,
        max_concurrent_writes: l.max_concurrent_writes,
        body_timeout: l.body_timeout.0,
        max_anomaly_forests: l.max_anomaly_forests,
        max_read_samples: l.max_read_samples,
        max_concurrent_reads: l.max_concurrent_reads,
    }
}
