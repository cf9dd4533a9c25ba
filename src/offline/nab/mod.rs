//! `promcast anomaly-eval`: replays NAB-layout series through [`features`] and
//! [`AnomalyForest`] (only past data at each step) and scores the alarms against NAB's
//! labelled windows, next to two baselines.
//!
//! Detectors:
//! - `agent`: what the agent exports as `N:anomalous`: its own scorer
//!   ([`crate::anomaly::AnomalyScorer`]) and decision, point by point ([`agent_verdicts`]),
//!   with the agent's signal, threshold and one day of suppression.
//! - `forest`: the agent's per-series forest: trained at the end of the probation period on
//!   the feature rows of the last `history` points (the agent's ring) and retrained every
//!   `retrain_every` points, with the same functions the agent calls
//!   ([`forest::training_rows`], [`forest::training_due`]). Alarm: score ≥ threshold.
//! - `forest_debounced`: the `forest` scores, but after an alarm point further alarm points
//!   are suppressed for one day of steps (the season; 288 when unknown), see [`debounce`].
//!   NAB charges every alarm point outside a window; this is the agent's `for:`/`keep_firing`
//!   alerting behaviour expressed per point.
//! - `likelihood` (and `likelihood_debounced`): the `forest` scores through the anomaly
//!   likelihood layer ([`crate::anomaly::likelihood`]).
//! - `forest_pooled`: one forest per category (group), trained on the probation rows of the
//!   series being scored plus all rows of the *other* series of its category (leave one
//!   out), never retrained: can a forest trained on other series score this one?
//! - `band` (and `band_debounced`, same debounce as above): value outside the naive band of [`naive_band`] (last value + 1 %/99 % quantiles
//!   of recent 1-step changes).
//! - `mad` (and `mad_debounced`): `|x − median| / (1.4826·MAD) > `[`MAD_K`] over the trailing [`LONG_WINDOW`]
//!   points.
//!
//! Probation: the first `min(⌊0.15·n⌋, 750)` points (NAB's rule) train and never alarm.
//!
//! Files, in the order the data flows: `options.rs` (what a run is told), `load.rs` (NAB's
//! files), `replay.rs` (the detectors), `score.rs` (NAB's scorer), `results.rs` (the
//! figures per file and detector), `optimise.rs` (the threshold optimiser), `plot.rs` (one
//! SVG per file) and `run.rs` (the run, and what it writes and prints).
//!
//! [`features`]: crate::anomaly::features
//! [`AnomalyForest`]: crate::anomaly::AnomalyForest
//! [`forest::training_rows`]: crate::anomaly::forest::training_rows
//! [`forest::training_due`]: crate::anomaly::forest::training_due
//! [`naive_band`]: crate::anomaly::naive_band
//! [`LONG_WINDOW`]: crate::anomaly::LONG_WINDOW

// Index loops over parallel arrays read better here; NaN-aware `!(a >= b)` is intended.
#![allow(
    clippy::needless_range_loop,
    clippy::too_many_arguments,
    clippy::neg_cmp_op_on_partial_ord
)]

mod load;
mod optimise;
mod options;
mod plot;
mod replay;
mod results;
mod run;
mod score;

pub use load::{parse_ts, read_labels, read_results, window_indices, NabLabels};
pub use optimise::{optimize, per_file_oracle, NO_DETECTION_THRESHOLD, OPT_TIE};
pub use options::{
    NabEvalOptions, DEFAULT_REFRACTORY, DETECTORS, LIKELIHOOD_THRESHOLD, MAD_K, REAL_CATEGORIES,
};
pub use replay::agent_verdicts;
pub use results::{summarise, FileResult, NabReport, OptScore, ScoredFile, Summary};
pub use run::{nab_detector_name, print_report, print_sweep, run_nab_eval};
pub use score::{
    debounce, nab_normalise, nab_normalise_parts, nab_parts, nab_probation, nab_score,
    nab_score_profile, prf, scaled_sigmoid, sweep_points, window_counts, NabParts, NabProfile,
    SweepPoint, WindowCounts, NAB_FN, NAB_FP, NAB_LOW_FN, NAB_LOW_FP, NAB_PROFILES, NAB_STANDARD,
    NAB_TP,
};

#[cfg(test)]
mod tests;
