//! `storage:`: the rings' step and retention, eviction, snapshots, how counters are kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::PromDuration;
use super::paths::resolve_path;
use super::size::ByteSize;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Ring-buffer resolution: samples are bucketed to this step (the last sample of a
    /// bucket wins) and the forecast loop runs once per step.
    pub step: PromDuration,
    /// How much history each series keeps (`retention / step` buckets).
    pub retention: PromDuration,
    /// A series with no samples for this long is evicted.
    pub idle_timeout: PromDuration,
    /// Directory for snapshots of the rings (written every `snapshot_every` and on shutdown,
    /// loaded on start). Unset: nothing is kept across restarts.
    pub path: Option<PathBuf>,
    pub snapshot_every: PromDuration,
    /// How far back past forecasts are kept, per series and horizon, for remote read
    /// (`N:forecast{horizon=...}` at their target times).
    pub forecast_history: PromDuration,
    /// The most memory those past forecasts may take, all series together (8 bytes a
    /// horizon and 2 for the anomaly score per kept step and series). With more series than
    /// fit `forecast_history` in it, every series keeps a shorter span
    /// (`promcast_forecast_history_span_seconds`): 2GiB holds 6h@1m of three horizons for
    /// about 230,000 series, and 82 minutes for a million.
    pub forecast_history_memory: ByteSize,
    /// How selected counters are stored: `rate` (their per-second rate over each step,
    /// reset-aware, exported as `N:rate:predicted`) or `raw` (the value as sent). A forecast
    /// entry's own `counters:` overrides it.
    pub counters: CounterMode,
}

/// How a selected counter is stored (`storage.counters`, `forecast[].counters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterMode {
    /// Its per-second rate over each step, like PromQL's `rate`.
    #[default]
    Rate,
    /// The cumulative value as sent, like a gauge.
    Raw,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            step: PromDuration(Duration::from_secs(60)),
            retention: PromDuration(Duration::from_secs(24 * 3600)),
            idle_timeout: PromDuration(Duration::from_secs(3600)),
            path: None,
            snapshot_every: PromDuration(Duration::from_secs(300)),
            forecast_history: PromDuration(Duration::from_secs(6 * 3600)),
            forecast_history_memory: ByteSize(2 << 30),
            counters: CounterMode::Rate,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Persistence {
    pub dir: PathBuf,
    pub every: Duration,
}

/// `storage.step` and the ring length (`retention / step`, 1 when either is invalid).
pub(super) fn shape(
    storage: &StorageSection,
    problem: &mut impl FnMut(String, String),
) -> (Duration, usize) {
    let step = storage.step.0;
    let step_ms = step.as_millis() as u64;
    if step_ms == 0 {
        problem("storage.step".into(), "must be greater than 0".into());
    }
    let retention_ms = storage.retention.0.as_millis() as u64;
    let ring_len = if step_ms == 0 {
        1
    } else if retention_ms % step_ms != 0 || retention_ms < 2 * step_ms {
        problem(
            "storage.retention".into(),
            format!(
                "must be a multiple of storage.step ({}) and at least two steps, got {}",
                storage.step, storage.retention
            ),
        );
        1
    } else {
        (retention_ms / step_ms) as usize
    };
    if ring_len > 10_000_000 {
        problem(
            "storage.retention".into(),
            format!("{ring_len} buckets per series is more than 10,000,000"),
        );
    }
    if storage.forecast_history_memory.0 == 0 && !storage.forecast_history.0.is_zero() {
        problem(
            "storage.forecast_history_memory".into(),
            "must be greater than 0 (storage.forecast_history: 0s keeps no past forecasts)".into(),
        );
    }
    if storage.idle_timeout.0 < step {
        problem(
            "storage.idle_timeout".into(),
            "must be at least one storage.step".into(),
        );
    }
    (step, ring_len)
}

/// Where and how often the rings are snapshotted (`storage.path`), if anywhere.
pub(super) fn persistence(
    storage: &StorageSection,
    base_dir: Option<&Path>,
    problem: &mut impl FnMut(String, String),
) -> Option<Persistence> {
    let persistence = storage.path.as_ref().map(|p| Persistence {
        dir: resolve_path(p, base_dir),
        every: storage.snapshot_every.0,
    });
    if persistence.is_some() && storage.snapshot_every.0 < Duration::from_secs(1) {
        problem(
            "storage.snapshot_every".into(),
            "must be at least 1s".into(),
        );
    }
    persistence
}
