//! The HTTP router and the agent's life cycle: start-up, serving, graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt as _;
use tokio::sync::Semaphore;

#[cfg(feature = "gpu")]
use crate::config::BackendKind;
use crate::config::{Config, Denied, ListenerAuth};
use crate::export::api::ApiError;
use crate::export::history::ForecastHistory;
use crate::export::remote_read::ReadError;
use crate::export::{api, keda, remote_read, remote_write, scrape, web};
use crate::forecast::load::load_for_agent;
use crate::forecast::neural::{BackendChoice, LstmModel};
use crate::ingest::backfill;
use crate::ingest::{write_handler, Ingest};
use crate::snapshot::{Snapshot, SnapshotCell};
use crate::step::Scheduler;
use crate::store::{now_ms, persist, Clock, Store};
use crate::telemetry::Telemetry;
use crate::tls;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Arc<Ingest>,
    pub snapshots: Arc<SnapshotCell>,
    pub telemetry: Arc<Telemetry>,
    /// Past forecasts, aligned to their targets (remote read).
    pub history: Arc<ForecastHistory>,
    pub config: Arc<Config>,
    /// False before start-up finished and once shutdown began.
    pub ready: Arc<AtomicBool>,
    /// Remote reads being answered (`limits.max_concurrent_reads`): each holds one until its
    /// blocking work ends, even if its client has gone.
    pub read_permits: Arc<Semaphore>,
}

impl AppState {
    /// Builds the shared state for a validated config (no threads, no sockets).
    pub fn new(config: &Config) -> Self {
        Self::with_clock(config, Clock::wall())
    }

    /// [`AppState::new`] on `clock` (`promcast demo` runs an accelerated one).
    pub fn with_clock(config: &Config, clock: Clock) -> Self {
        let telemetry = Arc::new(
            Telemetry::new(config.remote_write.iter().map(|r| r.url.clone()))
                .with_scaling_targets(config.scaling.iter().map(|t| &*t.name)),
        );
        let store = Arc::new(Store::new(config, now_ms()).with_clock(clock));
        let history = Arc::new(
            ForecastHistory::new(config.forecast_history)
                .with_budget(config.forecast_history_memory)
                .with_metrics(telemetry.forecast_history.clone()),
        );
        Self {
            ingest: Arc::new(
                Ingest::new(store, telemetry.clone(), config.limits.clone())
                    .with_ha(config.ha.as_ref()),
            ),
            snapshots: Arc::new(SnapshotCell::new(Snapshot::empty(config))),
            telemetry,
            history,
            config: Arc::new(config.clone()),
            ready: Arc::new(AtomicBool::new(false)),
            read_permits: Arc::new(Semaphore::new(config.limits.max_concurrent_reads)),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.ingest.store
    }
}

/// The router; tests drive it without a socket.
pub fn app(state: AppState) -> Router {
    let write = Router::new()
        .route("/api/v1/write", post(write_handler))
        .with_state(state.ingest.clone());
    let read = Router::new()
        .route("/api/v1/read", post(remote_read))
        .with_state(state.clone());
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/forecasts", get(forecasts))
        .route("/api/v1/history", get(history))
        .route("/api/v1/forecast_history", get(forecast_history))
        .route("/api/v1/scaling", get(scaling))
        .route("/api/v1/scaling/{target}", get(scaling_target))
        .route("/-/healthy", get(|| async { "Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/", get(web::index))
        .route("/static/{file}", get(web::asset))
        .with_state(state.clone())
        .merge(write)
        .merge(read);
    match state.config.auth.http.clone() {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(
            (Arc::new(auth), state.telemetry.clone()),
            require_credentials,
        )),
        None => router,
    }
}

/// Refuses requests without the listener's credentials with 401 (before any body is read),
/// except on the paths configured as open (the probes, by default).
async fn require_credentials(
    State((auth, telemetry)): State<(Arc<ListenerAuth>, Arc<Telemetry>)>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if auth.is_open(req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match auth.check(given) {
        Ok(()) => next.run(req).await,
        Err(why) => {
            telemetry.unauthorized(crate::telemetry::Listener::Http);
            let message = match why {
                Denied::Missing => "credentials required (Authorization header)\n",
                Denied::Wrong => "wrong credentials\n",
            };
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, auth.challenge())],
                message,
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshots.load();
    let body = scrape::render(&snapshot, &state.telemetry);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn forecasts(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let snapshot = state.snapshots.load();
    let limit = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10_000);
    api::forecasts_json(&snapshot, q.get("selector").map(String::as_str), limit).map(Json)
}

/// `POST /api/v1/read`: decoding and answering run off the async runtime.
async fn remote_read(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ReadError> {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        if !enc.as_bytes().eq_ignore_ascii_case(b"snappy") {
            return Err(ReadError::Encoding(enc.clone()));
        }
    }
    // Taken before the body is read, so refused reads buffer nothing.
    let permit = state
        .read_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            state.telemetry.remote_reads_refused.inc();
            ReadError::Busy(state.config.limits.max_concurrent_reads)
        })?;
    let limit = state.config.limits.max_body_bytes;
    let bytes = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|_| ReadError::BodyTooLarge(limit))?
        .to_bytes();
    let snapshot = state.snapshots.load();
    let history = state.history.clone();
    let config = state.config.clone();
    let body = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        remote_read::handle(
            &bytes,
            config.limits.max_decompressed_bytes,
            &snapshot,
            &history,
            config.step.as_millis() as i64,
            config.limits.max_read_samples,
        )
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "remote read task failed");
        ReadError::Internal
    })??;
    let headers = [
        (header::CONTENT_TYPE, "application/x-protobuf"),
        (header::CONTENT_ENCODING, "snappy"),
    ];
    Ok((headers, body).into_response())
}

async fn history(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = state.store().clone();
    json_off_runtime(q, move |selector, limit| {
        api::history_json(&store, selector, limit)
    })
    .await
}

/// `GET /api/v1/forecast_history`: past forecasts at their targets and anomaly scores.
async fn forecast_history(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (history, snapshot) = (state.history.clone(), state.snapshots.load());
    json_off_runtime(q, move |selector, limit| {
        api::forecast_history_json(&history, &snapshot, selector, limit)
    })
    .await
}

/// Builds a JSON answer from the `selector` and `limit` (default 1,000) query parameters off
/// the async runtime.
async fn json_off_runtime(
    q: HashMap<String, String>,
    build: impl FnOnce(Option<&str>, usize) -> Result<serde_json::Value, ApiError> + Send + 'static,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1_000);
    let selector = q.get("selector").cloned();
    tokio::task::spawn_blocking(move || build(selector.as_deref(), limit))
        .await
        .map_err(|_| ApiError::Internal)?
        .map(Json)
}

/// `GET /api/v1/scaling[?history=1]`.
async fn scaling(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let history = q.contains_key("history").then(|| state.history.scaling());
    Json(api::scaling_json(
        &state.snapshots.load(),
        &state.config,
        history,
    ))
    .into_response()
}

/// KEDA's `metrics-api` scaler reads one target's desired replicas here.
async fn scaling_target(
    State(state): State<AppState>,
    axum::extract::Path(target): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let snapshot = state.snapshots.load();
    let now_ms = state.store().clock().now_ms();
    api::scaling_target_json(&snapshot, &state.config, &target, now_ms).map(Json)
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready.\n").into_response()
    }
}

/// How the agent listens and shuts down; the flags of `promcast serve` and `promcast demo`
/// besides `--config`.
#[derive(clap::Args)]
pub struct ServeOptions {
    /// Address to listen on for remote write, /metrics and the API.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9201")]
    pub listen: SocketAddr,
    /// Address of the KEDA external scaler (gRPC); served when `scaling:` has targets.
    #[arg(long = "grpc.listen-address", default_value = "0.0.0.0:9202")]
    pub grpc_listen: SocketAddr,
    /// After SIGTERM, how long to keep delivering queued forecasts.
    #[arg(long = "remote-write.flush-deadline", default_value = "10s", value_parser = crate::config::parse_duration)]
    pub flush_deadline: Duration,
    /// The agent's time: the wall clock, or `promcast demo`'s accelerated one.
    #[arg(skip = Clock::wall())]
    pub clock: Clock,
    /// Called once the listener is bound, before requests are served, with the state and
    /// the page's URL (`promcast demo` loads its history and starts its replay here).
    #[arg(skip)]
    pub on_ready: Option<OnReady>,
}

/// See [`ServeOptions::on_ready`].
pub type OnReady = Box<dyn FnOnce(&AppState, &str) -> anyhow::Result<()> + Send>;

impl ServeOptions {
    /// Serving on the wall clock.
    pub fn new(listen: SocketAddr, grpc_listen: SocketAddr, flush_deadline: Duration) -> Self {
        Self {
            listen,
            grpc_listen,
            flush_deadline,
            clock: Clock::wall(),
            on_ready: None,
        }
    }
}

/// Runs the agent until `shutdown` resolves: binds the listener, starts the forecast thread
/// and the remote-write senders, then drains them in order (ingest first, forecasts last).
pub async fn serve(
    config: Config,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let lstm = load_model(&config)?;
    let state = AppState::with_clock(&config, opts.clock);
    if let Some(m) = &lstm {
        let (backend, provider) = m.backend();
        state.telemetry.set_inference_backend(backend, provider);
    }
    // Backfill first, so that series restored from a snapshot are backfilled too.
    if let Some(spec) = &config.backfill {
        backfill::spawn(spec.clone(), state.store().clone(), state.telemetry.clone());
        tracing::info!(url = %spec.url, lookback = ?spec.lookback, "backfill enabled");
    }
    if let Some(p) = &config.persistence {
        restore(state.store(), &p.dir).await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The forecast history first: remote read then never sees a snapshot without its past.
    state.snapshots.subscribe(state.history.clone());
    let mut senders = Vec::new();
    for (i, rw) in config.remote_write.iter().enumerate() {
        let (queue, task) = remote_write::spawn(
            rw.clone(),
            i,
            state.telemetry.clone(),
            stop_rx.clone(),
            opts.flush_deadline,
        );
        state.snapshots.subscribe(Arc::new(queue));
        senders.push(task);
    }
    let scheduler = Scheduler::new(
        config.clone(),
        state.store().clone(),
        state.snapshots.clone(),
        lstm,
    )?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding --web.listen-address {}", opts.listen))?;
    // TLS files were checked by config validation; they may have changed since.
    let http_tls = tls_acceptor(
        &state,
        &config.tls.http,
        tls::HTTP_ALPN,
        tls::Listener::Http,
    )?;
    let grpc = start_grpc(&state, &opts, stop_rx.clone()).await?;
    let (tick_stop, tick_rx) = std::sync::mpsc::channel::<()>();
    let telemetry = state.telemetry.clone();
    let forecast_thread = std::thread::Builder::new()
        .name("promcast-forecast".into())
        .spawn(move || scheduler.run(tick_rx, |stats| stats.record(&telemetry)))
        .context("starting the forecast thread")?;
    tracing::info!(
        listen = %listener.local_addr()?,
        tls = http_tls.is_some(),
        step = ?config.step,
        series_limit = config.limits.max_series,
        forecast_entries = config.forecast.len(),
        remote_write = config.remote_write.len(),
        "promcast ready"
    );
    let snapshots = config.persistence.clone().map(|p| {
        let (store, telemetry) = (state.store().clone(), state.telemetry.clone());
        tokio::spawn(snapshot_every(store, p, telemetry, stop_rx.clone()))
    });
    if let Some(on_ready) = opts.on_ready {
        on_ready(
            &state,
            &page_url(listener.local_addr()?, http_tls.is_some()),
        )?;
    }
    state.ready.store(true, Ordering::Relaxed);
    let ready = state.ready.clone();
    let (state_store, state_telemetry) = (state.store().clone(), state.telemetry.clone());
    let drain = async move {
        shutdown.await;
        ready.store(false, Ordering::Relaxed);
        tracing::info!("shutdown: no new requests; draining");
    };
    match http_tls {
        None => axum::serve(listener, app(state))
            .with_graceful_shutdown(drain)
            .await
            .context("HTTP server")?,
        Some(acceptor) => axum::serve(tls::TlsListener::new(listener, acceptor)?, app(state))
            .with_graceful_shutdown(drain)
            .await
            .context("HTTP server")?,
    }

    // Ingest has stopped; stop forecasting, then flush what is queued for remote write.
    drop(tick_stop);
    tokio::task::spawn_blocking(move || forecast_thread.join())
        .await
        .ok();
    let _ = stop_tx.send(true);
    if let Some(task) = grpc {
        stop_grpc(task).await;
    }
    if let Some(task) = snapshots {
        let _ = task.await;
    }
    if let Some(p) = &config.persistence {
        snapshot(&state_store, &p.dir, &state_telemetry).await;
    }
    let wait = opts.flush_deadline + Duration::from_secs(1);
    for task in senders {
        if tokio::time::timeout(wait, task).await.is_err() {
            tracing::warn!("remote-write sender did not finish within the flush deadline");
        }
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// Where a browser on this machine finds the web page served at `addr`.
fn page_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}:{}/", addr.port())
}

/// The LSTM the config asks for, on the backend `inference.backend` picks.
fn load_model(config: &Config) -> anyhow::Result<Option<Arc<LstmModel>>> {
    let lstm =
        load_for_agent(config, &choose_backend(config)).context(match config.lstm_model {
            crate::config::ModelSource::File(_) => "loading inference.model",
            _ => "loading the built-in model",
        })?;
    if let Some(m) = &lstm {
        let (engine, provider) = m.backend();
        tracing::info!(
            origin = m.origin(),
            window = m.meta().window,
            backend = engine,
            provider,
            "lstm model loaded"
        );
    }
    Ok(lstm)
}

/// Loads the rings' snapshot from `dir` (off the async runtime) before the listener opens.
async fn restore(store: &Arc<Store>, dir: &std::path::Path) -> anyhow::Result<()> {
    let (s, d) = (store.clone(), dir.to_path_buf());
    let loaded = tokio::task::spawn_blocking(move || persist::load(&s, &d, now_ms()))
        .await
        .context("loading the snapshot")?;
    match loaded {
        Ok(persist::Loaded::None) => tracing::info!(dir = %dir.display(), "no snapshot to load"),
        Ok(persist::Loaded::Restored { restored, skipped }) => {
            tracing::info!(dir = %dir.display(), restored, skipped, "snapshot loaded")
        }
        Ok(persist::Loaded::MovedAside { to, reason }) => tracing::error!(
            moved_to = %to.display(), %reason,
            "snapshot unusable: moved aside, starting empty"
        ),
        Err(e) => tracing::error!(error = %e, "snapshot unreadable, starting empty"),
    }
    Ok(())
}

/// A listener's TLS acceptor when its files are configured.
fn tls_acceptor(
    state: &AppState,
    files: &Option<crate::config::ListenerTls>,
    alpn: &'static [&'static [u8]],
    which: tls::Listener,
) -> anyhow::Result<Option<Arc<tls::Acceptor>>> {
    files
        .clone()
        .map(|f| tls::Acceptor::new(f, alpn, which, state.telemetry.clone()))
        .transpose()
        .with_context(|| format!("tls.{}", which.as_str()))
}

type GrpcTask = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;

/// Binds and starts the KEDA external scaler when `scaling:` has targets. Bound before ready,
/// so a taken port fails start-up rather than later.
async fn start_grpc(
    state: &AppState,
    opts: &ServeOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<GrpcTask>> {
    let config = &state.config;
    if config.scaling.is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(opts.grpc_listen)
        .await
        .with_context(|| format!("binding --grpc.listen-address {}", opts.grpc_listen))?;
    let grpc_tls = tls_acceptor(state, &config.tls.grpc, tls::GRPC_ALPN, tls::Listener::Grpc)?;
    tracing::info!(listen = %listener.local_addr()?, targets = config.scaling.len(), tls = grpc_tls.is_some(), "KEDA external scaler ready");
    let scaler = keda::Scaler::new(
        config.clone(),
        state.snapshots.clone(),
        *state.store().clock(),
    );
    let stopped = async move {
        let _ = stop.changed().await;
    };
    let telemetry = state.telemetry.clone();
    Ok(Some(match grpc_tls {
        None => tokio::spawn(scaler.serve(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            telemetry,
            stopped,
        )),
        Some(acceptor) => tokio::spawn(scaler.serve(
            tls::TlsListener::new(listener, acceptor)?,
            telemetry,
            stopped,
        )),
    }))
}

/// Waits briefly for the scaler: open StreamIsActive streams would hold a graceful
/// shutdown forever, so they are cut.
async fn stop_grpc(mut task: GrpcTask) {
    match tokio::time::timeout(Duration::from_secs(2), &mut task).await {
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "KEDA external scaler"),
        Ok(Err(e)) => tracing::error!(error = %e, "KEDA external scaler task"),
        Ok(Ok(Ok(()))) => {}
        Err(_) => task.abort(),
    }
}

/// Writes the rings' snapshot every `p.every` until `stop`.
async fn snapshot_every(
    store: Arc<Store>,
    p: crate::config::Persistence,
    telemetry: Arc<Telemetry>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(p.every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        snapshot(&store, &p.dir, &telemetry).await;
    }
}

/// The inference engine for `inference.backend`: `auto` picks onnxruntime with CUDA when
/// this build has the `gpu` feature, the node has an NVIDIA GPU and the library is there.
fn choose_backend(config: &Config) -> BackendChoice {
    #[cfg(feature = "gpu")]
    {
        use crate::forecast::neural::ort_worker::{library_path, OrtOptions};
        let opts = OrtOptions {
            library: config.inference.ort_library.clone(),
            cuda: gpu_present(),
            max_batch: config.inference.max_batch,
            max_wait: config.inference.max_wait,
            ..OrtOptions::default()
        };
        match config.inference.backend {
            BackendKind::Ort => return BackendChoice::Ort(opts),
            BackendKind::Auto if opts.cuda && library_path(&opts).is_some_and(|p| p.is_file()) => {
                return BackendChoice::Ort(opts)
            }
            _ => {}
        }
    }
    match config.inference.backend {
        crate::config::BackendKind::Tract => BackendChoice::Tract,
        _ => BackendChoice::Cpu,
    }
}

/// Whether the node has an NVIDIA GPU driver loaded.
pub fn gpu_present() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
        || std::path::Path::new("/dev/nvidiactl").exists()
}

/// Writes a snapshot off the async runtime, counting the outcome.
async fn snapshot(store: &Arc<Store>, dir: &std::path::Path, telemetry: &Telemetry) {
    let (s, d) = (store.clone(), dir.to_path_buf());
    match tokio::task::spawn_blocking(move || persist::save(&s, &d)).await {
        Ok(Ok(n)) => {
            telemetry.snapshot_series.set(n as i64);
            telemetry
                .snapshot_last_success
                .set(now_ms().max(0) as f64 / 1e3);
            tracing::debug!(series = n, "snapshot written");
        }
        Ok(Err(e)) => {
            telemetry.snapshot_failures.inc();
            tracing::error!(error = %e, "snapshot failed");
        }
        Err(e) => {
            telemetry.snapshot_failures.inc();
            tracing::error!(error = %e, "snapshot task failed");
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
