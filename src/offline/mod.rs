//! The CLI's offline tools, on recorded traces, deterministic and without the async runtime
//! (Cargo feature `offline`, on by default; the agent builds without it):
//! - [`data`]: reading trace CSVs (plain or gzipped; wide, long or summed) into [`data::Trace`]s;
//! - [`replay`]: one series through the agent's own forecaster, origin by origin;
//! - [`backtest`]: `promcast backtest`, rolling-origin accuracy of the agent's models;
//! - [`simulate`]: `promcast simulate`, autoscaling policies against a demand trace, and
//!   [`frontier`], the same swept over every policy's knobs against the HPA's;
//! - [`prom`]: one series' history read from Prometheus' HTTP API;
//! - [`tune`]: `promcast tune`, the policy serving most within a cost cap (or cheapest within
//!   an SLO), by Bayesian optimisation ([`gp`]) on recorded history, checked on held-out data;
//! - [`nab`]: `promcast anomaly-eval`, the agent's anomaly scoring on NAB's labelled series;
//! - [`train`]: `promcast train`, the quantile LSTM (candle) and its ONNX export;
//! - [`report`], [`plot`], [`html`]: CSV tables, PNG plots and one self-contained
//!   `report.html` per run (tables and plots inline) of the above;
//! - [`commands`]: each subcommand's arguments (its options struct flattened) and its run,
//!   with [`args`]: the trace flags and the options' value parsers.

pub mod args;
pub mod backtest;
pub mod commands;
pub mod data;
pub mod frontier;
pub mod gp;
pub mod html;
pub mod nab;
pub mod plot;
pub mod prom;
pub mod replay;
pub mod report;
pub mod simulate;
pub mod train;
pub mod tune;
