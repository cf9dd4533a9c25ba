//! What an anomaly detector is: the interface between the scorer
//! ([`super::online::AnomalyScorer`], which owns each series' likelihood, alarm and verdict)
//! and one way of scoring a series' newest point. The detectors are listed in
//! [`crate::detectors`]; each is a type in `src/anomaly/<name>.rs` implementing [`Detector`].
//!
//! A detector owns what its series share (e.g. the forest's pooled forests, one per forecast
//! entry, and its limit on per-series forests) and gives the scorer one [`Detector::Series`]
//! value per series to keep. Every step the scorer calls [`Detector::update`] once per series
//! with the newest point, then [`Detector::finish_step`] once. The raw score it returns (in
//! 0..1, higher is more anomalous) goes through the same likelihood, alarm and suppression
//! for every detector, so `N:anomaly_score`, `N:anomaly_likelihood` and `N:anomalous` mean
//! the same whichever detector made them.

use std::time::Instant;

use crate::config::AnomalySpec;

/// A band: `(lower, median, upper)`.
pub type Band = (f64, f64, f64);

/// What one step of scoring did, for self-metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct StepStats {
    pub trained: u64,
    pub deferred: u64,
    pub failed: u64,
    pub scored: u64,
}

/// How a detector is set up: the same for every detector of a scorer.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Forecast entries (each may share state across its series).
    pub entries: usize,
    /// `limits.max_anomaly_forests`: series that may hold their own trained model.
    pub max_series_models: usize,
    /// Ring length in points: the history a series' own model may learn from.
    pub history: usize,
    /// Seed of everything drawn at random (the agent's is 0).
    pub seed: u64,
}

/// The newest point of one series, as a detector is asked about it.
#[derive(Debug, Clone, Copy)]
pub struct Point<'a> {
    /// The forecast entry the series belongs to.
    pub entry: usize,
    pub spec: &'a AnomalySpec,
    /// Oldest → newest, ending at the newest point; `NaN` = gap. At most the ring.
    pub values: &'a [f32],
    /// The season (in steps) to compare against, if the history covers one.
    pub season: Option<usize>,
    /// The naive one-step band for the newest point, made from the points before it.
    pub band: Option<Band>,
    /// Forecast steps so far (the time of training schedules).
    pub step: u64,
    /// Whether the newest point is new since the last call for this series (else the same
    /// point is asked about again: learn nothing from it twice).
    pub fresh: bool,
    /// Whether a score is wanted (not when the point is not fresh and was scored before).
    pub want_score: bool,
}

/// What a detector says of the newest point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seen {
    /// The point cannot be looked at (a gap, or too little history): nothing was learnt
    /// and the point does not count as seen.
    Unusable,
    /// Learnt from, but no score (nothing trained yet, or none wanted).
    Unscored,
    /// The raw score, 0..1.
    Score(f64),
}

/// The step's training budget and what was done with it.
pub struct Train<'a> {
    /// No training starts after this instant; what is due is deferred and counted.
    pub deadline: Instant,
    pub stats: &'a mut StepStats,
}

impl Train<'_> {
    /// Whether training may start now; counts a deferral when not.
    pub fn may_start(&mut self) -> bool {
        let ok = Instant::now() < self.deadline;
        if !ok {
            self.stats.deferred += 1;
        }
        ok
    }

    /// Counts a training's outcome.
    pub fn done(&mut self, trained: bool) {
        if trained {
            self.stats.trained += 1;
        } else {
            self.stats.failed += 1;
        }
    }
}

/// An anomaly detector (see the module doc). Runs on the forecast thread; `update` is the
/// hot path (once per series per step) and must not allocate in the common case.
pub trait Detector: Send + Sized {
    /// What it keeps per series.
    type Series: Send;

    fn new(setup: &Setup) -> Self;

    /// The state of a series it has not seen before.
    fn series(&mut self) -> Self::Series;

    /// Learns from and scores the newest point of a series (see [`Point`] and [`Seen`]).
    /// Training it does here goes through `train`.
    fn update(
        &mut self,
        series: &mut Self::Series,
        point: &Point<'_>,
        train: &mut Train<'_>,
    ) -> Seen;

    /// A series is gone (not seen in a step): its state is dropped after this.
    fn forget(&mut self, series: &Self::Series);

    /// End of a step, after every series' update: shared training. `specs` are the
    /// entries' anomaly settings (`None`: scoring off for the entry).
    fn finish_step(&mut self, step: u64, specs: &[Option<AnomalySpec>], train: &mut Train<'_>);

    /// Whether the series holds its own trained model (self-metrics).
    fn has_own_model(series: &Self::Series) -> bool;

    /// Shared models trained (self-metrics).
    fn shared_models(&self) -> usize;

    /// Approximate heap bytes of a series' state.
    fn series_bytes(series: &Self::Series) -> usize;

    /// Approximate heap bytes of the shared state.
    fn shared_bytes(&self) -> usize;
}
