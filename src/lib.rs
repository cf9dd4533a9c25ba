//! promcast: a predictive-autoscaling sidecar for Prometheus.
//!
//! The modules follow one sample through the agent; arrows point one way:
//!
//! ```text
//!  Prometheus ──remote_write──▶ ingest ──▶ store ──▶ step ─┬─ forecast ─┐
//!                               (decode,    (series   (the   ├─ anomaly  ├─▶ snapshot ──▶ export ──▶ /metrics
//!                                validate)   index,    loop)  └─ scale  ──┘   (one per     (encode)   remote-write out
//!                                            rings)                           step)                  remote read, API, KEDA
//! ```
//!
//! - [`models`]: the one list of forecast models (a macro each layer expands: [`models::ModelKind`],
//!   the config's [`models::ModelChoice`], the model modules and the registry); it imports
//!   nothing.
//! - [`detectors`]: the one list of anomaly detectors, the same way
//!   ([`detectors::DetectorKind`], the config's `anomaly.detector`, the detector modules and
//!   their dispatch); it imports nothing.
//! - [`stats`]: shared maths (normal and sample quantiles); it imports nothing.
//! - [`config`]: YAML file form and its validated runtime form, a file per section (storage,
//!   forecast entries, remote write and backfill, limits, inference); PromQL selectors; durations;
//!   scaling targets and policies; listener credentials (`auth:`) and certificates (`tls:`);
//!   outgoing clients' credentials, headers and TLS (`remote_write`, `backfill`).
//! - [`proto`]: Prometheus remote-write (1.0 and 2.0)/remote-read messages and KEDA's external scaler
//!   service, generated from `proto/` by prost and tonic.
//! - [`ingest`]: the `POST /api/v1/write` handler (content negotiation between remote write
//!   1.0 and 2.0, size limits, status mapping), zero-copy decoders for both versions, the
//!   deduplication of Prometheus HA pairs ([`ingest::ha`]), and backfill from Prometheus.
//! - [`store`]: label-set interning, fixed-capacity per-series rings bucketed to the step
//!   (older buckets in XOR-coded blocks),
//!   metric types and counters stored as per-second rates, a sharded series map, idle
//!   eviction, ring snapshots on disk.
//! - [`forecast`]: the model interface ([`forecast::Fit`] / [`forecast::Predict`] /
//!   [`forecast::Listed`]), the models, one file each (those of [`models`]: `naive`,
//!   `seasonal_naive`, `mstl`, `ets`, `lstm` via promcast's own CPU kernel for the models
//!   `promcast train` exports (the crate `crates/lstm-kernel`), tract-onnx for any other, or,
//!   with the `gpu` feature, an onnxruntime batch worker), `auto`'s choice, the per-series forecaster and each
//!   series' rolling accuracy (`N:forecast_mase`, `N:forecast_coverage`), which also
//!   calibrates its band per horizon.
//! - [`anomaly`]: the detector interface ([`anomaly::Detector`]) and the detectors, one file
//!   each (those of [`detectors`]: `knn`, the default, a conformal nearest-neighbour p-value
//!   of the newest window against the series' older windows, per series within a limit,
//!   else the pooled forest; `forest`, scale-free features of the newest point scored by
//!   extended isolation forests, per series within a limit, pooled per forecast entry
//!   otherwise, our own seeded implementation with flat `f32` nodes, [`anomaly::eif`]); the
//!   scorer that gives any detector's scores the anomaly likelihood
//!   ([`anomaly::likelihood`]) and the decision `N:anomalous` on the signal, threshold and
//!   hold each detector brings (the config may override them).
//! - [`policy`]: the scaling policies, one file each, and their list: what each reads off a
//!   forecast band and its parameters; config, scale and the offline tools go through it.
//! - [`scale`]: replica recommendations: one target's decisions over time (the `Scaler`,
//!   shared by the agent's `scaling:` targets and the simulator) and the HPA controller the
//!   simulator runs.
//! - [`step`]: the loop, above forecast, anomaly and scale: once per step, off the async
//!   runtime, every stored series through the three (one per-step interface,
//!   [`step::stage::Stage`]), then the snapshot published.
//! - [`snapshot`]: what a step produces (forecasts, anomaly verdicts, recommendations) as one
//!   immutable snapshot, published to readers and subscribers.
//! - [`export`]: everything that reads the snapshot: the scrape endpoint, remote-write out,
//!   the forecast history and remote read, the JSON API, the web page at `/` (embedded
//!   assets), the KEDA external scaler (gRPC).
//!   None of them computes a forecast.
//! - [`telemetry`]: promcast's own `promcast_*` metrics, and what the binary was built from
//!   (`promcast --version`, `promcast_build_info`).
//! - [`rng`]: the one seeded generator (SplitMix64) behind the forests and the pooled anomaly
//!   reservoir, the fixture model, `train` and `tune`, so that every seeded figure reproduces.
//! - [`server`]: the HTTP router (`app(state)`), start-up and graceful shutdown.
//! - [`demo`]: `promcast demo`: the agent on an accelerated clock, fed real traces shipped
//!   in the binary (history through the backfill path, then live through the ingest path).
//! - [`tls`]: TLS termination for both listeners (rustls): certificates re-read when they
//!   change, optional client certificates, handshakes off the accept loop.
//! - [`offline`] (Cargo feature `offline`, default): the CLI's tools on recorded traces:
//!   `backtest`, `simulate` (and its frontiers), `tune`, `anomaly-eval` and `train`, through
//!   the agent's own code, with CSV, PNG and self-contained HTML reports; their option
//!   structs are the CLI's flags (`clap::Args`), run by `offline::commands`.

// Everything runs on network input; memory safety is the compiler's, not ours.
#![forbid(unsafe_code)]

// The list of models: a macro every layer reads (first, so that it is in scope below).
#[macro_use]
pub mod models;
// The list of anomaly detectors, likewise.
#[macro_use]
pub mod detectors;

pub mod anomaly;
pub mod config;
pub mod demo;
pub mod export;
pub mod forecast;
pub mod ingest;
#[cfg(feature = "offline")]
pub mod offline;
pub mod policy;
pub mod proto;
pub mod rng;
pub mod scale;
pub mod server;
pub mod snapshot;
pub mod stats;
pub mod step;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod test_data;
pub mod tls;
