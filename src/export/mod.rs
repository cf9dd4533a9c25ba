//! Everything that reads forecasts out: each exporter encodes the published
//! [`crate::snapshot::Snapshot`] (or, for remote read and the history, the snapshots it was
//! handed) and none of them computes a forecast.
//! - [`samples`]: the names and labels of every exported sample, shared by the exporters;
//! - [`scrape`]: `GET /metrics`;
//! - [`remote_write`]: remote-write out, a subscriber with a bounded queue per target;
//! - [`history`]: past forecasts aligned to their targets, a subscriber, for remote read;
//! - [`remote_read`]: `POST /api/v1/read`;
//! - [`api`]: the JSON API (`/api/v1/forecasts`, `/api/v1/history`,
//!   `/api/v1/forecast_history`, `/api/v1/scaling`);
//! - [`web`]: the web page at `/` and its embedded assets (uPlot), drawn from the JSON API;
//! - [`keda`]: the KEDA external scaler (gRPC).

pub mod api;
pub mod history;
pub mod keda;
pub mod remote_read;
pub mod remote_write;
pub mod samples;
pub mod scrape;
pub mod web;

pub use samples::{
    output_labels, Family, SnapshotSamples, DESIRED_REPLICAS, ML_FORECAST, PREDICTED_SUFFIX,
    RATE_PREDICTED_SUFFIX, SCALING_LOAD,
};
