//! promcast: a predictive-autoscaling sidecar for Prometheus.
//!
//! The modules follow one sample through the agent:
//!
//! ```text
//!  Prometheus ──remote_write──▶ ingest ──▶ store ──▶ forecast ──▶ export ──▶ /metrics
//!                               (decode,    (series    (models,     (snapshot)  remote-write out
//!                                validate)   index,     scheduler,              /api/v1/forecasts
//!                                            rings)     neural/)
//! ```
//!
//! - [`anomaly`]: scale-free features of the newest point scored by extended isolation forests
//!   (per series within a limit, pooled per forecast entry otherwise), and the offline NAB
//!   replay behind `promcast anomaly-eval`.
//! - [`config`]: YAML file form and its validated runtime form; PromQL selectors; durations;
//!   scaling targets; listener credentials (`auth:`) and certificates (`tls:`); outgoing
//!   clients' credentials, headers and TLS (`remote_write`, `backfill`).
//! - [`proto`]: Prometheus remote-write/remote-read messages and KEDA's external scaler
//!   service, generated from `proto/` by prost and tonic.
//! - [`ingest`]: the `POST /api/v1/write` handler (content negotiation, size limits, status
//!   mapping) and a zero-copy remote-write decoder.
//! - [`store`]: label-set interning, fixed-capacity per-series rings bucketed to the step,
//!   a sharded series map, idle eviction.
//! - [`forecast`]: models (`naive`, `seasonal_naive`, `mstl`, `lstm` via tract-onnx or, with
//!   the `gpu` feature, an onnxruntime batch worker on CUDA or CPU), per-series state, and
//!   the forecast loop that runs them off the async runtime.
//! - [`export`]: the immutable forecast snapshot and everything that reads it: the scrape
//!   endpoint, remote-write out, remote read, the JSON API, the KEDA external scaler (gRPC).
//!   None of them computes a forecast.
//! - [`telemetry`]: promcast's own `promcast_*` metrics.
//! - [`train`]: `promcast train`: the global quantile LSTM trained with candle on recorded
//!   traces, and its ONNX export (all candle types live here).
//! - [`scale`]: replica recommendations (policies, the agent's scale-in rule, the `scaling:`
//!   targets the forecast loop evaluates every step) and the HPA controller the simulator runs.
//! - [`server`]: the HTTP router (`app(state)`), start-up and graceful shutdown.
//! - [`tls`]: TLS termination for both listeners (rustls): certificates re-read when they
//!   change, optional client certificates, handshakes off the accept loop.
//! - [`sim`]: offline work on recorded traces: reading CSV traces, `promcast backtest`
//!   (rolling-origin replays through the agent's own store and forecast loop), reports and
//!   PNG plots.

// Everything runs on network input; memory safety is the compiler's, not ours.
#![forbid(unsafe_code)]

pub mod anomaly;
pub mod config;
pub mod export;
pub mod forecast;
pub mod ingest;
pub mod proto;
pub mod scale;
pub mod server;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod train;
