//! promcast's own metrics (`promcast_*`): typed families of the `prometheus-client` crate,
//! registered once and encoded at scrape time. Every label value comes from a fixed enum
//! (never series labels, never free strings at call sites), so cardinality is bounded and a
//! typo is a compile error. Hot paths hold the per-label handles (an atomic each) and never
//! look a label set up.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::Registry;

use crate::snapshot::{ModelKind, PerModel, Reason, StateKind};

/// What this binary is, for `promcast --version` and `promcast_build_info` (set by
/// `build.rs`: the git revision, the compiler, the enabled Cargo features).
pub mod build {
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    /// `git rev-parse --short=12 HEAD` when built, `$PROMCAST_REVISION` without a `.git`, or
    /// "unknown".
    pub const REVISION: &str = env!("PROMCAST_REVISION");
    /// `rustc --version` of the compiler that built it.
    pub const RUSTC: &str = env!("PROMCAST_RUSTC");
    /// Enabled Cargo features, comma-separated (`gpu`, `offline`; empty for a slim agent).
    pub const FEATURES: &str = env!("PROMCAST_FEATURES");
    /// `promcast --version`.
    pub const LONG_VERSION: &str = concat!(
        env!("CARGO_PKG_VERSION"),
        "\n  revision: ",
        env!("PROMCAST_REVISION"),
        "\n  features: ",
        env!("PROMCAST_FEATURES"),
        "\n  rustc:    ",
        env!("PROMCAST_RUSTC"),
    );
}

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
    /// A remote-write 2.0 series with broken symbol references or samples out of order (400).
    Malformed,
    /// From a Prometheus HA replica that is not the elected one of its cluster (`ha:`; 2xx).
    HaDuplicate,
    /// From a new HA cluster beyond `ha.max_clusters` (400).
    HaClusterLimit,
}

impl Dropped {
    const ALL: [Dropped; 10] = [
        Dropped::Unselected,
        Dropped::OwnOutput,
        Dropped::TooOld,
        Dropped::InvalidLabels,
        Dropped::TooFarInFuture,
        Dropped::SeriesLimit,
        Dropped::Histogram,
        Dropped::Malformed,
        Dropped::HaDuplicate,
        Dropped::HaClusterLimit,
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
            Dropped::Malformed => "malformed",
            Dropped::HaDuplicate => "ha_duplicate",
            Dropped::HaClusterLimit => "ha_cluster_limit",
        }
    }
}

/// Status codes the write endpoint answers with.
pub const WRITE_CODES: [u16; 6] = [204, 400, 413, 415, 500, 503];

/// Which listener, for logs and `promcast_{unauthorized_requests,tls_*}_total{listener}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Http = 0,
    Grpc = 1,
}

impl Listener {
    pub const ALL: [Listener; 2] = [Listener::Http, Listener::Grpc];

    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Http => "http",
            Listener::Grpc => "grpc",
        }
    }
}

/// What became of one series' backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backfilled {
    Ok = 0,
    Failed = 1,
    /// The backfill queue was full.
    Dropped = 2,
}

impl Backfilled {
    const ALL: [Backfilled; 3] = [Backfilled::Ok, Backfilled::Failed, Backfilled::Dropped];

    fn as_str(self) -> &'static str {
        match self {
            Backfilled::Ok => "ok",
            Backfilled::Failed => "failed",
            Backfilled::Dropped => "dropped",
        }
    }
}

/// Step-duration histogram buckets, seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A gauge holding a float (seconds, timestamps).
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// Label pairs of one sample: static names, values from the enums' `as_str`.
type Labels = Vec<(&'static str, &'static str)>;

/// Registers families on one registry; names are full Prometheus names (a counter's
/// `_total` is added by the encoder) and help texts end without a period (it adds one).
struct Builder<'a>(&'a mut Registry);

impl Builder<'_> {
    fn counter(&mut self, name: &str, help: &str) -> Counter {
        let c = Counter::default();
        self.0.register(name, help, c.clone());
        c
    }

    fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        let g = Gauge::default();
        self.0.register(name, help, g.clone());
        g
    }

    fn float_gauge(&mut self, name: &str, help: &str) -> FloatGauge {
        let g = FloatGauge::default();
        self.0.register(name, help, g.clone());
        g
    }

    /// One metric per value of `label`, taken from the family once.
    fn family<M, const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        label: &'static str,
        values: [&'static str; N],
    ) -> [M; N]
    where
        M: EncodeMetric + TypedMetric + Default + Clone + std::fmt::Debug + Send + Sync + 'static,
    {
        let family = Family::<Labels, M>::default();
        self.0.register(name, help, family.clone());
        values.map(|v| family.get_or_create(&vec![(label, v)]).clone())
    }

    fn per_model(&mut self, name: &str, help: &str) -> PerModel<Counter> {
        PerModel::from_array(self.family::<Counter, { ModelKind::ALL.len() }>(
            name,
            help,
            "model",
            ModelKind::ALL.map(ModelKind::as_str),
        ))
    }
}

/// What the forecast loop reports once per step (`step::StepStats::record`).
pub struct LoopMetrics {
    pub series_evicted: Counter,
    pub series: Gauge,
    /// Indexed by [`StateKind`].
    pub series_by_state: [Gauge; StateKind::ALL.len()],
    pub forecasts: PerModel<Counter>,
    pub forecast_errors: PerModel<Counter>,
    pub auto_choices: PerModel<Counter>,
    pub step_duration: Histogram,
    pub forecast_lag: FloatGauge,
    pub forecast_max_age: FloatGauge,
    pub steps_skipped: Counter,
    pub refits_deferred: Counter,
    pub auto_choices_deferred: Counter,
    pub auto_first_choices: Counter,
    pub auto_waiting: Gauge,
    pub auto_provisional: Gauge,
    pub anomaly_trainings: Counter,
    pub anomaly_trainings_deferred: Counter,
    pub anomaly_training_failures: Counter,
    pub anomaly_scored: Counter,
    /// `[own, pooled]`.
    pub anomaly_forests: [Gauge; 2],
    pub anomaly_bytes: Gauge,
}

impl LoopMetrics {
    fn new(r: &mut Builder<'_>) -> Self {
        let series = r.gauge("promcast_series", "Selected series held in rings");
        let series_evicted = r.counter(
            "promcast_series_evicted",
            "Series evicted after storage.idle_timeout without samples",
        );
        let series_by_state = r.family::<Gauge, _>(
            "promcast_forecast_series",
            "Series by forecast state",
            "state",
            StateKind::ALL.map(StateKind::as_str),
        );
        let forecasts = r.per_model("promcast_forecasts", "Series forecasts produced, by model");
        let forecast_errors = r.per_model(
            "promcast_forecast_errors",
            "Per-series model failures, by model",
        );
        let auto_choices = r.per_model(
            "promcast_auto_choices",
            "Models chosen by `auto` at each per-series re-choice",
        );
        let step_duration = Histogram::new(DURATION_BUCKETS);
        r.0.register(
            "promcast_forecast_step_duration_seconds",
            "Time to compute one forecast step over all series",
            step_duration.clone(),
        );
        let forecast_lag = r.float_gauge(
            "promcast_forecast_lag_seconds",
            "How late the latest forecast snapshot was published relative to its step",
        );
        let forecast_max_age = r.float_gauge(
                "promcast_forecast_max_age_seconds",
                "Age of the oldest forecast in the latest snapshot (time since its model last saw data)",
            );
        let steps_skipped = r.counter(
            "promcast_forecast_steps_skipped",
            "Steps skipped because the previous step was still running",
        );
        let refits_deferred = r.counter(
            "promcast_forecast_refits_deferred",
            "Model refits postponed to a later step to keep within the step budget",
        );
        let auto_choices_deferred = r.counter(
                "promcast_auto_choices_deferred",
                "Per-series `auto` re-choices postponed to a later step to keep within the step budget (the series keeps its current model meanwhile)",
            );
        let auto_first_choices = r.counter(
            "promcast_auto_first_choices",
            "Series given their first `auto` choice",
        );
        let auto_waiting = r.gauge(
            "promcast_auto_series_waiting",
            "Series an `auto` entry served in the last step with no choice yet (history too short to compare models, or the first choice postponed by the step budget); the preference order serves them meanwhile",
        );
        let auto_provisional = r.gauge(
            "promcast_auto_series_provisional",
            "Series an `auto` entry served in the last step by a provisional first choice, made without the expensive candidates (MSTL) while first choices were backlogged; each is made again with every candidate once none waits",
        );
        let anomaly_trainings = r.counter(
            "promcast_anomaly_trainings",
            "Isolation forests trained (per series and pooled)",
        );
        let anomaly_trainings_deferred = r.counter(
            "promcast_anomaly_trainings_deferred",
            "Forest trainings postponed to a later step to keep within the step budget",
        );
        let anomaly_training_failures = r.counter(
            "promcast_anomaly_training_failures",
            "Forest trainings that failed (e.g. too few finite feature rows)",
        );
        let anomaly_scored = r.counter(
            "promcast_anomaly_points_scored",
            "Newest points given an anomaly score",
        );
        let anomaly_forests = r.family::<Gauge, _>(
            "promcast_anomaly_forests",
            "Isolation forests held: own (one series) or pooled (one forecast entry)",
            "kind",
            ["own", "pooled"],
        );
        let anomaly_bytes = r.gauge(
            "promcast_anomaly_memory_bytes",
            "Approximate heap held by anomaly forests and pooled rows",
        );
        Self {
            series_evicted,
            series,
            series_by_state,
            forecasts,
            forecast_errors,
            auto_choices,
            step_duration,
            forecast_lag,
            forecast_max_age,
            steps_skipped,
            refits_deferred,
            auto_choices_deferred,
            auto_first_choices,
            auto_waiting,
            auto_provisional,
            anomaly_trainings,
            anomaly_trainings_deferred,
            anomaly_training_failures,
            anomaly_scored,
            anomaly_forests,
            anomaly_bytes,
        }
    }
}

/// One remote-write target's metrics (label `url`).
pub struct RemoteWriteMetrics {
    pub samples_sent: Counter,
    pub samples_failed: Counter,
    pub samples_dropped_queue_full: Counter,
    pub requests_retried: Counter,
    pub queue_depth: Gauge,
    pub last_success: FloatGauge,
}

/// Prometheus HA pairs (`ingest::ha`): the elected replica of each cluster (labels from the
/// requests, bounded by `ha.max_clusters`), failovers, clusters tracked.
#[derive(Clone)]
pub struct HaMetrics {
    elected: Family<Vec<(&'static str, String)>, Gauge>,
    pub failovers: Counter,
    pub clusters: Gauge,
}

impl HaMetrics {
    fn new(r: &mut Builder<'_>) -> Self {
        let elected = Family::<Vec<(&'static str, String)>, Gauge>::default();
        r.0.register(
            "promcast_ha_elected_replica",
            "1 for the replica of each Prometheus HA cluster whose samples are kept (ha:)",
            elected.clone(),
        );
        let failovers = r.counter(
            "promcast_ha_failovers",
            "Elections of another replica after the elected one sent nothing for ha.failover_timeout",
        );
        let clusters = r.gauge("promcast_ha_clusters", "Prometheus HA clusters tracked");
        Self {
            elected,
            failovers,
            clusters,
        }
    }

    fn labels(cluster: &[u8], replica: &[u8]) -> Vec<(&'static str, String)> {
        vec![
            ("cluster", String::from_utf8_lossy(cluster).into_owned()),
            ("replica", String::from_utf8_lossy(replica).into_owned()),
        ]
    }

    pub fn elect(&self, cluster: &[u8], replica: &[u8]) {
        self.elected
            .get_or_create(&Self::labels(cluster, replica))
            .set(1);
    }

    pub fn unelect(&self, cluster: &[u8], replica: &[u8]) {
        self.elected.remove(&Self::labels(cluster, replica));
    }
}

pub struct Telemetry {
    registry: Registry,
    pub samples_received: Counter,
    pub samples_accepted: Counter,
    pub samples_merged: Counter,
    pub stale_markers: Counter,
    dropped: [Counter; Dropped::ALL.len()],
    write_requests: [Counter; WRITE_CODES.len()],
    pub series_created: Counter,
    /// Remote-write requests by protocol version ("1.0", "2.0").
    write_protocol: [Counter; 2],
    pub metadata_received: Counter,
    pub series_type_changes: Counter,
    /// The forecast loop's.
    pub forecast_loop: LoopMetrics,
    backfill_series: [Counter; Backfilled::ALL.len()],
    pub backfill_retries: Counter,
    pub backfill_samples: Counter,
    inference_backend: Family<Labels, Gauge>,
    unauthorized: [Counter; Listener::ALL.len()],
    tls_handshake_failures: [Counter; Listener::ALL.len()],
    /// `[listener][ok, failed]`.
    tls_reloads: [[Counter; 2]; Listener::ALL.len()],
    /// Remote reads refused with 503 (`limits.max_concurrent_reads` already answering).
    pub remote_reads_refused: Counter,
    pub snapshot_series: Gauge,
    pub forecast_history: HistoryMetrics,
    pub snapshot_failures: Counter,
    pub snapshot_last_success: FloatGauge,
    pub remote_write: Vec<(String, RemoteWriteMetrics)>,
    /// Per scaling target (config order): decisions by the rule that set them.
    pub scaling_decisions: Vec<[Counter; Reason::ALL.len()]>,
    ha: HaMetrics,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new(std::iter::empty())
    }
}

/// The forecast history's span and size (`storage.forecast_history`, `_memory`).
#[derive(Clone)]
pub struct HistoryMetrics {
    pub span_seconds: FloatGauge,
    pub bytes: Gauge,
}

fn history_metrics(r: &mut Builder<'_>) -> HistoryMetrics {
    HistoryMetrics {
        span_seconds: r.float_gauge(
            "promcast_forecast_history_span_seconds",
            "How far back past forecasts are kept now: storage.forecast_history, or less where all series' history at that length would exceed storage.forecast_history_memory",
        ),
        bytes: r.gauge(
            "promcast_forecast_history_bytes",
            "Bytes the past forecasts and anomaly scores of all series hold",
        ),
    }
}

/// Remote-write protocol versions and metric types: requests by version, 1.0 metadata entries,
/// series switched between values and rates.
/// Snapshots of the rings (`storage.path`): series written, failures, last success.
fn snapshot_metrics(r: &mut Builder<'_>) -> (Gauge, Counter, FloatGauge) {
    let series = r.gauge(
        "promcast_snapshot_series",
        "Series in the last snapshot written (storage.path)",
    );
    let failures = r.counter(
        "promcast_snapshot_failures",
        "Snapshots that could not be written",
    );
    let last_success = r.float_gauge(
        "promcast_snapshot_last_success_timestamp_seconds",
        "When a snapshot was last written",
    );
    (series, failures, last_success)
}

fn type_metrics(r: &mut Builder<'_>) -> ([Counter; 2], Counter, Counter) {
    let write_protocol = r.family::<Counter, _>(
        "promcast_write_requests_by_protocol",
        "Remote-write requests by protocol version (chosen by Content-Type)",
        "version",
        ["1.0", "2.0"],
    );
    let metadata_received = r.counter(
        "promcast_metadata_received",
        "Remote-write 1.0 metric metadata entries received (metric types)",
    );
    let series_type_changes = r.counter(
        "promcast_series_type_changes",
        "Series switched between raw values and counter rates when their type became known (the ring starts over)",
    );
    (write_protocol, metadata_received, series_type_changes)
}

impl Telemetry {
    pub fn new(remote_write_urls: impl IntoIterator<Item = String>) -> Self {
        let mut registry = Registry::default();
        let mut r = Builder(&mut registry);
        let samples_received = r.counter(
            "promcast_samples_received",
            "Samples received by remote write",
        );
        let samples_accepted = r.counter(
            "promcast_samples_accepted",
            "Samples stored in a ring (new, or merged into an older bucket)",
        );
        let samples_merged = r.counter(
            "promcast_samples_merged",
            "Accepted samples that were duplicates or out of order inside the ring",
        );
        let stale_markers = r.counter(
            "promcast_stale_markers",
            "Prometheus staleness markers received (they end a run; not values)",
        );
        let dropped = r.family::<Counter, _>(
            "promcast_samples_dropped",
            "Samples not stored, by reason",
            "reason",
            Dropped::ALL.map(Dropped::as_str),
        );
        let write_requests = r.family::<Counter, _>(
            "promcast_write_requests",
            "Remote-write requests by status code",
            "code",
            ["204", "400", "413", "415", "500", "503"],
        );
        let series_created = r.counter("promcast_series_created", "Series created");
        let (write_protocol, metadata_received, series_type_changes) = type_metrics(&mut r);
        let forecast_loop = LoopMetrics::new(&mut r);
        let backfill_series = r.family::<Counter, _>(
            "promcast_backfill_series",
            "Series whose history was read from Prometheus (backfill), by result",
            "result",
            Backfilled::ALL.map(Backfilled::as_str),
        );
        let backfill_retries = r.counter(
            "promcast_backfill_retries",
            "Backfill reads retried after an error",
        );
        let backfill_samples = r.counter("promcast_backfill_samples", "Samples read by backfill");
        let unauthorized = r.family::<Counter, _>(
            "promcast_unauthorized_requests",
            "Requests refused with 401 / UNAUTHENTICATED (missing or wrong credentials), by listener",
            "listener",
            Listener::ALL.map(Listener::as_str),
        );
        let tls_handshake_failures = r.family::<Counter, _>(
            "promcast_tls_handshake_failures",
            "TLS handshakes that failed (no or an untrusted client certificate, plain HTTP on a TLS port) or timed out, by listener",
            "listener",
            Listener::ALL.map(Listener::as_str),
        );
        let reloads = Family::<Labels, Counter>::default();
        r.0.register(
            "promcast_tls_reloads",
            "Certificate reloads after the TLS files changed, by listener and result (a failed reload keeps the previous certificate)",
            reloads.clone(),
        );
        let tls_reloads = Listener::ALL.map(|l| {
            ["ok", "failed"].map(|result| {
                reloads
                    .get_or_create(&vec![("listener", l.as_str()), ("result", result)])
                    .clone()
            })
        });
        let inference_backend = Family::<Labels, Gauge>::default();
        r.0.register(
            "promcast_inference_backend_info",
            "The engine running the LSTM model and its execution provider",
            inference_backend.clone(),
        );
        let remote_reads_refused = r.counter(
            "promcast_remote_reads_refused",
            "Remote-read requests refused with 503: limits.max_concurrent_reads were being answered",
        );
        let (snapshot_series, snapshot_failures, snapshot_last_success) = snapshot_metrics(&mut r);
        let forecast_history = history_metrics(&mut r);
        register_build_info(&mut r);
        let ha = HaMetrics::new(&mut r);
        let remote_write = remote_write_metrics(&mut registry, remote_write_urls);
        Self {
            registry,
            samples_received,
            samples_accepted,
            samples_merged,
            stale_markers,
            dropped,
            write_requests,
            series_created,
            write_protocol,
            metadata_received,
            series_type_changes,
            forecast_loop,
            backfill_series,
            backfill_retries,
            backfill_samples,
            inference_backend,
            unauthorized,
            tls_handshake_failures,
            tls_reloads,
            remote_reads_refused,
            snapshot_series,
            forecast_history,
            snapshot_failures,
            snapshot_last_success,
            remote_write,
            scaling_decisions: Vec::new(),
            ha,
        }
    }

    /// The HA tracker's metrics (handles onto families registered here).
    pub fn ha_metrics(&self) -> HaMetrics {
        self.ha.clone()
    }

    /// Registers `promcast_scaling_decisions_total{target, reason}` for these targets (the
    /// config's names: a bounded set).
    pub fn with_scaling_targets<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        let family = Family::<Vec<(&'static str, String)>, Counter>::default();
        self.registry.register(
            "promcast_scaling_decisions",
            "Replica recommendations by target and the rule that set them (reactive floor, forecast, forecast scale-in, held by the scale-in window or the band ahead, clamp)",
            family.clone(),
        );
        self.scaling_decisions = names
            .into_iter()
            .map(|t| {
                Reason::ALL.map(|r| {
                    family
                        .get_or_create(&vec![
                            ("target", t.to_owned()),
                            ("reason", r.as_str().to_owned()),
                        ])
                        .clone()
                })
            })
            .collect();
        self
    }

    pub fn dropped(&self, reason: Dropped, n: u64) {
        if n > 0 {
            self.dropped[reason as usize].inc_by(n);
        }
    }

    pub fn dropped_count(&self, reason: Dropped) -> u64 {
        self.dropped[reason as usize].get()
    }

    pub fn write_request(&self, code: u16) {
        if let Some(i) = WRITE_CODES.iter().position(|c| *c == code) {
            self.write_requests[i].inc();
        }
    }

    /// Counts a remote-write request of protocol 1.0 (`v2 == false`) or 2.0.
    pub fn write_protocol(&self, v2: bool) {
        self.write_protocol[v2 as usize].inc();
    }

    pub fn unauthorized(&self, listener: Listener) {
        self.unauthorized[listener as usize].inc();
    }

    pub fn tls_handshake_failed(&self, listener: Listener) {
        self.tls_handshake_failures[listener as usize].inc();
    }

    pub fn tls_reloaded(&self, listener: Listener, ok: bool) {
        self.tls_reloads[listener as usize][usize::from(!ok)].inc();
    }

    pub fn backfilled(&self, result: Backfilled) {
        self.backfill_series[result as usize].inc();
    }

    /// `promcast_inference_backend_info{backend, provider} 1`, once the model is loaded.
    pub fn set_inference_backend(&self, backend: &'static str, provider: &'static str) {
        self.inference_backend
            .get_or_create(&vec![("backend", backend), ("provider", provider)])
            .set(1);
    }

    /// Heap held by anomaly forests and pooled rows, as last recorded.
    pub fn anomaly_bytes(&self) -> i64 {
        self.forecast_loop.anomaly_bytes.get()
    }

    /// The text exposition format (0.0.4; OpenMetrics' `# EOF` left out, since forecasts
    /// may follow in the same body).
    pub fn render(&self, out: &mut String) {
        let start = out.len();
        if encode(out, &self.registry).is_err() {
            out.truncate(start);
            return;
        }
        if out.ends_with("# EOF\n") {
            out.truncate(out.len() - "# EOF\n".len());
        }
    }
}

/// `promcast_build_info{version,revision,rustc,features} 1`.
fn register_build_info(r: &mut Builder<'_>) {
    let build_info = Family::<Labels, Gauge>::default();
    r.0.register(
        "promcast_build_info",
        "A metric with a constant '1' value labeled by the version, git revision, compiler and Cargo features promcast was built with",
        build_info.clone(),
    );
    build_info
        .get_or_create(&vec![
            ("version", build::VERSION),
            ("revision", build::REVISION),
            ("rustc", build::RUSTC),
            ("features", build::FEATURES),
        ])
        .set(1);
}

fn remote_write_metrics(
    registry: &mut Registry,
    urls: impl IntoIterator<Item = String>,
) -> Vec<(String, RemoteWriteMetrics)> {
    let urls: Vec<String> = urls.into_iter().collect();
    if urls.is_empty() {
        return Vec::new();
    }
    type UrlLabels = Vec<(&'static str, String)>;
    let mut counters = |name: &str, help: &str| {
        let f = Family::<UrlLabels, Counter>::default();
        registry.register(name, help, f.clone());
        f
    };
    let sent = counters(
        "promcast_remote_write_samples_sent",
        "Forecast samples delivered",
    );
    let failed = counters(
        "promcast_remote_write_samples_failed",
        "Forecast samples dropped after a non-retryable error",
    );
    let dropped = counters(
        "promcast_remote_write_samples_dropped",
        "Forecast samples dropped because the queue was full",
    );
    let retried = counters(
        "promcast_remote_write_retries",
        "Requests retried after 5xx, 429 or a connection error",
    );
    let depth = Family::<UrlLabels, Gauge>::default();
    registry.register(
        "promcast_remote_write_queue_depth",
        "Snapshots waiting to be sent",
        depth.clone(),
    );
    let last = Family::<UrlLabels, FloatGauge>::default();
    registry.register(
        "promcast_remote_write_last_success_timestamp_seconds",
        "When a request last succeeded",
        last.clone(),
    );
    urls.into_iter()
        .map(|url| {
            let l = vec![("url", url.clone())];
            let m = RemoteWriteMetrics {
                samples_sent: sent.get_or_create(&l).clone(),
                samples_failed: failed.get_or_create(&l).clone(),
                samples_dropped_queue_full: dropped.get_or_create(&l).clone(),
                requests_retried: retried.get_or_create(&l).clone(),
                queue_depth: depth.get_or_create(&l).clone(),
                last_success: last.get_or_create(&l).clone(),
            };
            (url, m)
        })
        .collect()
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
mod tests;
