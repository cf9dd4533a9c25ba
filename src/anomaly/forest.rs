//! The isolation-forest detector (`forest`): per series, the newest point's [`features`] are
//! scored by a forest:
//! - the series' **own forest** once it has [`MIN_TRAIN_ROWS`] feature rows of history
//!   ([`MIN_HISTORY`] + [`MIN_TRAIN_ROWS`] valid points), retrained every
//!   `anomaly.retrain_every` on the feature rows of the points its ring holds
//!   ([`SeriesDetector`]: the rows are computed once from the ring by [`training_rows`], then
//!   kept as each step computes them, so a retraining costs only the forest build); at most
//!   `limits.max_anomaly_forests` series hold one (about 0.23 MiB each with their kept rows,
//!   measured in `benches/anomaly.rs`);
//! - otherwise the **pooled forest** of its forecast entry: trained on a reservoir of the
//!   newest-point rows of all the entry's series (bounded, [`POOL_ROWS`]), so a young series,
//!   or one beyond the forest limit, is scored as soon as its features exist. The features
//!   are scale-free, which is what makes one forest usable across series (measured in
//!   `docs/ANOMALY.md`: somewhat weaker than a series' own forest).
//!
//! Training runs on the forecast thread (never on the async runtime) within the step's
//! training budget ([`Train`]); what does not fit is deferred to the next step and counted.

use std::collections::VecDeque;

use super::detector::{Detector, Point, Seen, Setup, Train};
use super::{features, naive_band, AnomalyForest, FeatureVec, FEATURES, MIN_HISTORY};
use super::{MAX_TRAIN_ROWS, MIN_TRAIN_ROWS};
use crate::config::AnomalySpec;
use crate::rng::SplitMix64;

/// Rows kept per forecast entry for its pooled forest.
pub const POOL_ROWS: usize = 4096;

/// Feature rows of every point of `values` (oldest → newest) that has [`MIN_HISTORY`]
/// valid points before it, each computed exactly as it was (or would have been) online:
/// from that point and the data before it only. At most [`MAX_TRAIN_ROWS`] rows, the
/// points evenly spaced when there are more. Appends to `out`.
pub fn training_rows(values: &[f32], season: Option<usize>, out: &mut Vec<FeatureVec>) {
    let n = values.len();
    if n <= MIN_HISTORY {
        return;
    }
    let candidates = n - MIN_HISTORY;
    let take = candidates.min(MAX_TRAIN_ROWS);
    for k in 0..take {
        let t = MIN_HISTORY + k * candidates / take;
        if let Some(row) = features(&values[..=t], naive_band(&values[..t]), season) {
            out.push(row);
        }
    }
}

/// Whether a forest trained at point `trained_at` (if any) should be retrained at `now`.
pub fn training_due(trained_at: Option<u64>, now: u64, retrain_every: usize) -> bool {
    trained_at.is_none_or(|t| now.saturating_sub(t) >= retrain_every as u64)
}

/// One series' own forest and the feature rows it trains on. The agent and the offline
/// replay (`offline::nab`) both drive it: [`SeriesDetector::observe`] with each new point's
/// row, [`SeriesDetector::train_if_due`] with the ring.
pub struct SeriesDetector {
    forest: Option<AnomalyForest>,
    trained_at: Option<u64>,
    /// Feature rows of the newest `history` points (quantised, so exact in f32).
    pub(in crate::anomaly) rows: VecDeque<[f32; FEATURES]>,
    history: usize,
    /// False until the rows were filled from the ring (on the first training).
    primed: bool,
    /// Mixed into every training's seed (the forest is a function of its rows and this).
    seed: u64,
}

impl SeriesDetector {
    /// `history`: points of rows kept, the ring length.
    pub fn new(history: usize) -> Self {
        Self {
            forest: None,
            trained_at: None,
            rows: VecDeque::new(),
            history: history.max(1),
            primed: false,
            seed: 0,
        }
    }

    /// The same, with forests drawn from `seed` (the agent uses 0).
    pub fn with_seed(history: usize, seed: u64) -> Self {
        Self {
            seed,
            ..Self::new(history)
        }
    }

    pub fn forest(&self) -> Option<&AnomalyForest> {
        self.forest.as_ref()
    }

    /// Records the newest point's row (once per point).
    pub fn observe(&mut self, row: &FeatureVec) {
        if !self.primed {
            return;
        }
        if self.rows.len() == self.history {
            self.rows.pop_front();
        }
        self.rows.push_back(row.map(|v| v as f32));
    }

    /// Trains when due (see [`training_due`]) on the rows of the ring's points. `ring` holds
    /// the series' values, oldest → newest, ending with the newest observed point. Returns
    /// `None` when nothing was due, else whether a forest came out (a failure waits for the
    /// next period).
    pub fn train_if_due(
        &mut self,
        ring: &[f32],
        season: Option<usize>,
        now: u64,
        retrain_every: usize,
        scratch: &mut Vec<FeatureVec>,
    ) -> Option<bool> {
        if !training_due(self.trained_at, now, retrain_every) {
            return None;
        }
        self.trained_at = Some(now);
        scratch.clear();
        if !self.primed {
            let from = ring.len().saturating_sub(self.history);
            training_rows(&ring[from..], season, scratch);
            self.rows.clear();
            self.rows
                .extend(scratch.iter().map(|r| r.map(|v| v as f32)));
            self.primed = true;
        } else {
            scratch.extend(self.rows.iter().map(|r| r.map(|v| v as f64)));
        }
        match AnomalyForest::train_seeded(scratch, self.seed) {
            Ok(f) => {
                self.forest = Some(f);
                Some(true)
            }
            Err(_) => Some(false),
        }
    }

    /// Heap bytes of the forest and the kept rows.
    pub fn heap_bytes(&self) -> usize {
        self.forest.as_ref().map_or(0, AnomalyForest::heap_bytes)
            + self.rows.capacity() * std::mem::size_of::<[f32; FEATURES]>()
    }
}

struct Pool {
    forest: Option<AnomalyForest>,
    trained_step: Option<u64>,
    rows: Vec<FeatureVec>,
    /// Rows offered since the reservoir was last thinned (Algorithm R's counter).
    offered: u64,
    rng: SplitMix64,
}

impl Pool {
    fn new(seed: u64) -> Self {
        Self {
            forest: None,
            trained_step: None,
            rows: Vec::new(),
            offered: 0,
            rng: SplitMix64::new(seed),
        }
    }

    /// Reservoir sampling: every row offered so far has the same chance to be kept.
    fn offer(&mut self, row: FeatureVec) {
        self.offered += 1;
        if self.rows.len() < POOL_ROWS {
            self.rows.push(row);
            return;
        }
        let r = self.rng.next_u64() % self.offered;
        if (r as usize) < POOL_ROWS {
            self.rows[r as usize] = row;
        }
    }
}


/// The forest detector: the entries' pooled forests and the limit on series' own forests.
pub struct Forest {
    pools: Vec<Pool>,
    max_forests: usize,
    /// Series holding a detector.
    forests: usize,
    /// Rows kept per detector: the ring length.
    history: usize,
    /// Scratch rows of a training.
    rows: Vec<FeatureVec>,
    /// Seed of every forest trained here (the agent's is 0).
    seed: u64,
}

impl Detector for Forest {
    /// The series' own forest, once it may hold one.
    type Series = Option<Box<SeriesDetector>>;

    fn new(setup: &Setup) -> Self {
        Self {
            pools: (0..setup.entries)
                .map(|i| Pool::new(0x9e37_79b9_7f4a_7c15 ^ i as u64 ^ setup.seed))
                .collect(),
            max_forests: setup.max_series_models,
            forests: 0,
            history: setup.history,
            rows: Vec::new(),
            seed: setup.seed,
        }
    }

    fn series(&mut self) -> Self::Series {
        None
    }

    fn update(&mut self, own: &mut Self::Series, p: &Point<'_>, train: &mut Train<'_>) -> Seen {
        let Some(row) = features(p.values, p.band, p.season) else {
            return Seen::Unusable;
        };
        if p.fresh {
            self.pools[p.entry].offer(row);
        }
        // The series' own detector, within the limit, once it has the history to train.
        if own.is_none()
            && self.forests < self.max_forests
            && p.values.iter().filter(|v| v.is_finite()).count() >= MIN_HISTORY + MIN_TRAIN_ROWS
        {
            *own = Some(Box::new(SeriesDetector::with_seed(self.history, self.seed)));
            self.forests += 1;
        }
        if let Some(own) = own.as_deref_mut() {
            if p.fresh {
                own.observe(&row);
            }
            let every = p.spec.retrain_every;
            if training_due(own.trained_at, p.step, every) && train.may_start() {
                if let Some(ok) = own.train_if_due(p.values, p.season, p.step, every, &mut self.rows)
                {
                    train.done(ok);
                }
            }
        }
        if !p.want_score {
            return Seen::Unscored;
        }
        let own = own.as_ref().and_then(|d| d.forest());
        match own.or(self.pools[p.entry].forest.as_ref()) {
            Some(forest) => Seen::Score(forest.score(&row)),
            None => Seen::Unscored,
        }
    }

    fn forget(&mut self, own: &Self::Series) {
        if own.is_some() {
            self.forests -= 1;
        }
    }

    /// (Re)trains the pooled forests that are due.
    fn finish_step(&mut self, step: u64, specs: &[Option<AnomalySpec>], train: &mut Train<'_>) {
        for (pool, spec) in self.pools.iter_mut().zip(specs) {
            let Some(spec) = spec else { continue };
            if pool.rows.len() < MIN_TRAIN_ROWS
                || !training_due(pool.trained_step, step, spec.retrain_every)
                || !train.may_start()
            {
                continue;
            }
            match AnomalyForest::train_seeded(&pool.rows, self.seed) {
                Ok(f) => {
                    pool.forest = Some(f);
                    train.done(true);
                }
                Err(_) => train.done(false),
            }
            pool.trained_step = Some(step);
            // Older rows weigh less after each training: halving the counter lets new
            // rows replace kept ones twice as often.
            pool.offered /= 2;
        }
    }

    fn has_own_model(own: &Self::Series) -> bool {
        own.as_ref().is_some_and(|d| d.forest.is_some())
    }

    fn shared_models(&self) -> usize {
        self.pools.iter().filter(|p| p.forest.is_some()).count()
    }

    fn series_bytes(own: &Self::Series) -> usize {
        own.as_deref().map_or(0, SeriesDetector::heap_bytes)
    }

    fn shared_bytes(&self) -> usize {
        self.pools
            .iter()
            .map(|p| {
                p.forest.as_ref().map_or(0, AnomalyForest::heap_bytes)
                    + p.rows.capacity() * std::mem::size_of::<FeatureVec>()
            })
            .sum()
    }
}
