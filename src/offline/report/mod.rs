//! The files the offline tools write into `--out`: the CSV tables, the PNG plots, and one
//! self-contained `report.html` per run (tables and plots inline, `html.rs`).
//! - backtest: `metrics.csv`, `forecasts.csv`, `per_series.csv`, `buckets.csv`,
//!   `plots/*.png`, `report.html`;
//! - simulate: `summary.csv`, `timeline.png`, `cost_vs_violations.png`, `report.html`;
//! - simulate `--frontier`: `frontier.csv`, `frontier.png`, `report.html`;
//! - tune: `trials.csv`, `best.yaml`, `frontier.png`, `convergence.png`, `report.html`.
//!
//! One file per tool (`backtest.rs`, `simulate.rs`, `frontier.rs`, `tune.rs`); `common.rs`
//! holds what they share (the output files, one-panel plots, a page's plots section).

mod backtest;
mod common;
mod frontier;
mod simulate;
mod tune;

pub use backtest::{print_table, write_backtest, write_backtest_series, MAX_PLOTS};
pub use common::PLOT_BUCKETS;
pub use frontier::write_frontier;
pub use simulate::{print_simulation, write_simulation};
pub use tune::write_tuning;

#[cfg(test)]
mod tests;
