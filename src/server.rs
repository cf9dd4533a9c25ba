//! The HTTP router and the agent's life cycle: start-up, serving, graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::config::{Config, ModelSource};
use crate::export::{api, remote_write, scrape, Snapshot, SnapshotCell};
use crate::forecast::neural::{builtin_model, LstmModel};
use crate::forecast::scheduler::Scheduler;
use crate::ingest::{write_handler, Ingest};
use crate::store::{now_ms, Store};
use crate::telemetry::Telemetry;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Arc<Ingest>,
    pub snapshots: Arc<SnapshotCell>,
    pub telemetry: Arc<Telemetry>,
    /// False before start-up finished and once shutdown began.
    pub ready: Arc<AtomicBool>,
}

impl AppState {
    /// Builds the shared state for a validated config (no threads, no sockets).
    pub fn new(config: &Config) -> Self {
        let telemetry = Arc::new(Telemetry::new(
            config.remote_write.iter().map(|r| r.url.clone()),
        ));
        let store = Arc::new(Store::new(config, now_ms()));
        Self {
            ingest: Arc::new(Ingest::new(store, telemetry.clone(), config.limits.clone())),
            snapshots: Arc::new(SnapshotCell::new(Snapshot::empty(config))),
            telemetry,
            ready: Arc::new(AtomicBool::new(false)),
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
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/forecasts", get(forecasts))
        .route("/-/healthy", get(|| async { "Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/", get(index))
        .with_state(state)
        .merge(write)
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
) -> Response {
    let snapshot = state.snapshots.load();
    let limit = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10_000);
    match api::forecasts_json(&snapshot, q.get("selector").map(String::as_str), limit) {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"status": "error", "errorType": "bad_data", "error": e})),
        )
            .into_response(),
    }
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready.\n").into_response()
    }
}

async fn index() -> &'static str {
    "promcast: POST /api/v1/write, GET /metrics, GET /api/v1/forecasts?selector=..., /-/healthy, /-/ready\n"
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// How long to keep delivering queued forecasts after a shutdown signal.
    pub flush_deadline: Duration,
}

/// Runs the agent until `shutdown` resolves: binds the listener, starts the forecast thread
/// and the remote-write senders, then drains them in order (ingest first, forecasts last).
pub async fn serve(
    config: Config,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let lstm = match &config.lstm_model {
        ModelSource::File(path) => {
            let model = LstmModel::load(path).context("loading inference.model")?;
            tracing::info!(path = %path.display(), window = model.meta().window, "lstm model loaded");
            Some(Arc::new(model))
        }
        ModelSource::Builtin => {
            let model = builtin_model().context("loading the built-in model")?;
            tracing::info!(window = model.meta().window, "built-in lstm model loaded");
            Some(Arc::new(model))
        }
        ModelSource::Disabled => None,
    };
    let state = AppState::new(&config);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut outputs = Vec::new();
    let mut senders = Vec::new();
    for (i, rw) in config.remote_write.iter().enumerate() {
        let (queue, task) = remote_write::spawn(
            rw.clone(),
            i,
            state.telemetry.clone(),
            stop_rx.clone(),
            opts.flush_deadline,
        );
        outputs.push(queue);
        senders.push(task);
    }
    let scheduler = Scheduler::new(
        config.clone(),
        state.store().clone(),
        state.telemetry.clone(),
        state.snapshots.clone(),
        outputs,
        lstm,
    )?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding --web.listen-address {}", opts.listen))?;
    let (tick_stop, tick_rx) = std::sync::mpsc::channel::<()>();
    let forecast_thread = std::thread::Builder::new()
        .name("promcast-forecast".into())
        .spawn(move || scheduler.run(tick_rx))
        .context("starting the forecast thread")?;

    tracing::info!(
        listen = %listener.local_addr()?,
        step = ?config.step,
        series_limit = config.limits.max_series,
        forecast_entries = config.forecast.len(),
        remote_write = config.remote_write.len(),
        "promcast ready"
    );
    state.ready.store(true, Ordering::Relaxed);
    let ready = state.ready.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            ready.store(false, Ordering::Relaxed);
            tracing::info!("shutdown: no new requests; draining");
        })
        .await
        .context("HTTP server")?;

    // Ingest has stopped; stop forecasting, then flush what is queued for remote write.
    drop(tick_stop);
    tokio::task::spawn_blocking(move || forecast_thread.join())
        .await
        .ok();
    let _ = stop_tx.send(true);
    let wait = opts.flush_deadline + Duration::from_secs(1);
    for task in senders {
        if tokio::time::timeout(wait, task).await.is_err() {
            tracing::warn!("remote-write sender did not finish within the flush deadline");
        }
    }
    tracing::info!("shutdown complete");
    Ok(())
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
