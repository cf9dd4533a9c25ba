//! Offline evaluation on recorded traces, deterministic and without the async runtime:
//! reading trace files ([`data`]), rolling-origin backtests of the agent's own forecasting
//! code ([`backtest`]), autoscaling simulation ([`simulate`]) and their reports ([`report`],
//! PNG plots in [`plot`]).

pub mod backtest;
pub mod data;
pub mod plot;
pub mod replay;
pub mod report;
pub mod simulate;
