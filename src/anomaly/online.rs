//! Scoring in the agent, and the training schedule the offline replay shares with it.
//!
//! Per series, every step, the newest point's [`features`] are scored by a forest:
//! - the series' **own forest** once it has [`MIN_TRAIN_ROWS`] feature rows of history
//!   ([`MIN_HISTORY`] + [`MIN_TRAIN_ROWS`] valid points), retrained every
//!   `anomaly.retrain_every` on the feature rows of the points its ring holds
//!   ([`SeriesDetector`]: the rows are computed once from the ring by [`training_rows`], then
//!   kept as each step computes them, so a retraining costs only the forest build); at most
//!   `limits.max_anomaly_forests` series hold one (about 0.23 MiB each with their kept rows, measured in
//!   `benches/anomaly.rs`);
//! - otherwise the **pooled forest** of its forecast entry: trained on a reservoir of the
//!   newest-point rows of all the entry's series (bounded, [`POOL_ROWS`]), so a young series,
//!   or one beyond the forest limit, is scored as soon as its features exist. The features
//!   are scale-free, which is what makes one forest usable across series (measured in
//!   `docs/ANOMALY.md`: somewhat weaker than a series' own forest).
//!
//! Training runs on the forecast thread (never on the async runtime) within a per-step time
//! budget; what does not fit is deferred to the next step and counted.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::likelihood::Likelihood;
use super::{features, naive_band, Alarm, AlarmSignal, AnomalyForest, FeatureVec, MIN_HISTORY};
use super::{MAX_TRAIN_ROWS, MIN_TRAIN_ROWS};
use crate::config::AnomalySpec;
use crate::rng::SplitMix64;
use crate::snapshot::Anomaly;
use crate::store::SeriesId;

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

/// A band: `(lower, median, upper)`.
pub type Band = (f64, f64, f64);

/// Features of the newest point of `values`, and the one-step band they used.
pub fn newest_features(
    values: &[f32],
    season: Option<usize>,
) -> Option<(FeatureVec, Option<Band>)> {
    let (_, past) = values.split_last()?;
    let band = naive_band(past);
    features(values, band, season).map(|f| (f, band))
}

/// Whether a forest trained at point `trained_at` (if any) should be retrained at `now`.
pub fn training_due(trained_at: Option<u64>, now: u64, retrain_every: usize) -> bool {
    trained_at.is_none_or(|t| now.saturating_sub(t) >= retrain_every as u64)
}

/// The season the seasonal feature uses: the longest configured one the history covers
/// (the feature looks at ±2 points around one season back).
pub fn season_for(seasons: &[usize], len: usize) -> Option<usize> {
    seasons.iter().rev().copied().find(|&p| len >= p + 3)
}

/// One series' own forest and the feature rows it trains on. The agent and the offline
/// replay (`offline::nab`) both drive it: [`SeriesDetector::observe`] with each new point's
/// row, [`SeriesDetector::train_if_due`] with the ring.
pub struct SeriesDetector {
    forest: Option<AnomalyForest>,
    trained_at: Option<u64>,
    /// Feature rows of the newest `history` points (quantised, so exact in f32).
    rows: VecDeque<[f32; super::FEATURES]>,
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
            + self.rows.capacity() * std::mem::size_of::<[f32; super::FEATURES]>()
    }
}

struct SeriesState {
    /// Only series within `limits.max_anomaly_forests` get a detector.
    own: Option<Box<SeriesDetector>>,
    likelihood: Likelihood,
    alarm: Alarm,
    /// The newest point's verdict, repeated until a new point arrives.
    last: Option<Anomaly>,
    /// Newest bucket seen, so a point is recorded once even if no new sample arrived.
    last_head: i64,
    seen: u64,
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

/// The newest point of one series, as the scorer is asked about it.
#[derive(Debug, Clone, Copy)]
pub struct Newest<'a> {
    pub id: SeriesId,
    /// The forecast entry the series belongs to (its pooled forest).
    pub entry: usize,
    pub spec: &'a AnomalySpec,
    /// Oldest → newest, ending at the series' newest bucket `head`, no padding.
    pub values: &'a [f32],
    pub head: i64,
    /// The season (in steps) the features compare against, if the history covers one.
    pub season: Option<usize>,
}

/// What one step of scoring did, for self-metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct StepStats {
    pub trained: u64,
    pub deferred: u64,
    pub failed: u64,
    pub scored: u64,
}

/// Anomaly state of the agent: per-series forests within a limit, and a pooled forest per
/// forecast entry. Owned by the forecast thread.
pub struct AnomalyScorer {
    series: HashMap<SeriesId, SeriesState>,
    pools: Vec<Pool>,
    max_forests: usize,
    /// Series holding a detector.
    forests: usize,
    /// Rows kept per detector: the ring length.
    history: usize,
    rows: Vec<FeatureVec>,
    /// Seed of every forest trained here (the agent's is 0).
    seed: u64,
    pub stats: StepStats,
}

impl AnomalyScorer {
    /// `history`: the ring length in points. Forests are drawn from seed 0.
    pub fn new(entries: usize, max_forests: usize, history: usize) -> Self {
        Self::with_seed(entries, max_forests, history, 0)
    }

    /// The same, with every forest (own and pooled) and the pools' reservoirs drawn from
    /// `seed` (`anomaly-eval --seed`; the agent uses 0).
    pub fn with_seed(entries: usize, max_forests: usize, history: usize, seed: u64) -> Self {
        Self {
            history,
            series: HashMap::new(),
            pools: (0..entries)
                .map(|i| Pool::new(0x9e37_79b9_7f4a_7c15 ^ i as u64 ^ seed))
                .collect(),
            max_forests,
            forests: 0,
            rows: Vec::new(),
            seed,
            stats: StepStats::default(),
        }
    }

    /// Starts a step: its figures count from zero.
    pub fn begin_step(&mut self) {
        self.stats = StepStats::default();
    }

    /// Scores the newest point of a series. `step` counts forecast steps; `deadline` bounds
    /// the time spent training in this step.
    pub fn score(&mut self, point: &Newest<'_>, step: u64, deadline: Instant) -> Option<Anomaly> {
        let Newest {
            id,
            entry,
            spec,
            values,
            head,
            season,
        } = *point;
        let state = self.series.entry(id).or_insert(SeriesState {
            own: None,
            likelihood: Likelihood::new(),
            alarm: Alarm::default(),
            last: None,
            last_head: i64::MIN,
            seen: step,
        });
        state.seen = step;
        let (row, band) = newest_features(values, season)?;
        let fresh = state.last_head != head;
        state.last_head = head;
        if fresh {
            self.pools[entry].offer(row);
        }

        // The series' own detector, within the limit, once it has the history to train.
        if state.own.is_none()
            && self.forests < self.max_forests
            && values.iter().filter(|v| v.is_finite()).count() >= MIN_HISTORY + MIN_TRAIN_ROWS
        {
            state.own = Some(Box::new(SeriesDetector::with_seed(self.history, self.seed)));
            self.forests += 1;
        }
        if let Some(own) = &mut state.own {
            if fresh {
                own.observe(&row);
            }
            if training_due(own.trained_at, step, spec.retrain_every) {
                if Instant::now() < deadline {
                    match own.train_if_due(values, season, step, spec.retrain_every, &mut self.rows)
                    {
                        Some(true) => self.stats.trained += 1,
                        Some(false) => self.stats.failed += 1,
                        None => {}
                    }
                } else {
                    self.stats.deferred += 1;
                }
            }
        }

        if !fresh && state.last.is_some() {
            // No new point: the newest point's verdict stands (its score, likelihood and
            // the alarm's hold were already counted once).
            return state.last;
        }
        let own = state.own.as_ref().and_then(|d| d.forest());
        let forest = own.or(self.pools[entry].forest.as_ref())?;
        let score = forest.score(&row);
        self.stats.scored += 1;
        let likelihood = state.likelihood.update(score);
        let x = values.last().map_or(f64::NAN, |&v| v as f64);
        let signal = match spec.signal {
            AlarmSignal::Score => score,
            AlarmSignal::Likelihood => likelihood,
        };
        let direction =
            state
                .alarm
                .decide(step, signal, spec.threshold, x, band, spec.suppress as u64);
        state.last = Some(Anomaly {
            score,
            likelihood,
            direction,
        });
        state.last
    }

    /// End of a step: forget series not seen in it, (re)train the pooled forests that are
    /// due. Returns nothing; see [`AnomalyScorer::stats`].
    pub fn finish_step(&mut self, step: u64, specs: &[Option<AnomalySpec>], deadline: Instant) {
        let mut dropped = 0;
        self.series.retain(|_, s| {
            let keep = s.seen == step;
            if !keep && s.own.is_some() {
                dropped += 1;
            }
            keep
        });
        self.forests -= dropped;
        for (pool, spec) in self.pools.iter_mut().zip(specs) {
            let Some(spec) = spec else { continue };
            if pool.rows.len() < MIN_TRAIN_ROWS
                || !training_due(pool.trained_step, step, spec.retrain_every)
            {
                continue;
            }
            if Instant::now() >= deadline {
                self.stats.deferred += 1;
                continue;
            }
            match AnomalyForest::train_seeded(&pool.rows, self.seed) {
                Ok(f) => {
                    pool.forest = Some(f);
                    self.stats.trained += 1;
                }
                Err(_) => self.stats.failed += 1,
            }
            pool.trained_step = Some(step);
            // Older rows weigh less after each training: halving the counter lets new
            // rows replace kept ones twice as often.
            pool.offered /= 2;
        }
    }

    /// Series holding their own (trained) forest, and pooled forests trained.
    pub fn forest_counts(&self) -> (usize, usize) {
        (
            self.series
                .values()
                .filter(|s| s.own.as_ref().is_some_and(|d| d.forest.is_some()))
                .count(),
            self.pools.iter().filter(|p| p.forest.is_some()).count(),
        )
    }

    /// Approximate heap bytes of the series' own detectors (forests and kept rows).
    pub fn own_heap_bytes(&self) -> usize {
        self.series
            .values()
            .filter_map(|s| s.own.as_deref())
            .map(SeriesDetector::heap_bytes)
            .sum()
    }

    /// Approximate heap bytes of all forests, pooled rows and per-series state.
    pub fn heap_bytes(&self) -> usize {
        let own = self.own_heap_bytes();
        let pooled: usize = self
            .pools
            .iter()
            .map(|p| {
                p.forest.as_ref().map_or(0, AnomalyForest::heap_bytes)
                    + p.rows.capacity() * std::mem::size_of::<FeatureVec>()
            })
            .sum();
        own + pooled + self.series.capacity() * std::mem::size_of::<(SeriesId, SeriesState)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scorer asked about one newest point.
    #[allow(clippy::too_many_arguments)]
    fn score_at(
        s: &mut AnomalyScorer,
        id: SeriesId,
        entry: usize,
        spec: &AnomalySpec,
        values: &[f32],
        head: i64,
        season: Option<usize>,
        step: u64,
        deadline: Instant,
    ) -> Option<Anomaly> {
        let newest = Newest {
            id,
            entry,
            spec,
            values,
            head,
            season,
        };
        s.score(&newest, step, deadline)
    }
    use std::time::Duration;

    fn nab(name: &str) -> Vec<f32> {
        let path = format!(
            "{}/../shared/data/nab/data/realAWSCloudwatch/{name}.csv",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .lines()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap().trim().parse::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn training_rows_match_online_features() {
        let v = nab("ec2_cpu_utilization_5f5533");
        let w = &v[..600];
        let mut rows = Vec::new();
        training_rows(w, Some(288), &mut rows);
        assert_eq!(rows.len(), 600 - MIN_HISTORY);
        // the last training row is what the agent computed online for that point
        let (online, _) = newest_features(w, Some(288)).unwrap();
        assert_eq!(rows[rows.len() - 1], online);
        let mut long = Vec::new();
        training_rows(&v, None, &mut long);
        assert_eq!(long.len(), MAX_TRAIN_ROWS.min(v.len() - MIN_HISTORY));
    }

    #[test]
    fn scorer_uses_the_pool_first_then_its_own_forest_within_the_limit() {
        let spec = AnomalySpec {
            threshold: 0.65,
            retrain_every: 50,
            signal: crate::anomaly::AlarmSignal::Score,
            suppress: 0,
        };
        let series: Vec<Vec<f32>> = [
            "ec2_cpu_utilization_5f5533",
            "ec2_cpu_utilization_825cc2",
            "ec2_network_in_257a54",
        ]
        .iter()
        .map(|n| nab(n))
        .collect();
        // one forest allowed: the first series gets it, the others stay on the pool
        let mut s = AnomalyScorer::new(1, 1, 1440);
        let later = Instant::now() + Duration::from_secs(3600);
        let mut first_scored = None;
        for t in 20..400usize {
            for (k, v) in series.iter().enumerate() {
                let a = score_at(
                    &mut s,
                    SeriesId(k as u64),
                    0,
                    &spec,
                    &v[..=t],
                    t as i64,
                    None,
                    t as u64,
                    later,
                );
                if let Some(a) = a {
                    assert!((0.0..=1.0).contains(&a.score));
                    first_scored.get_or_insert(t);
                }
            }
            s.finish_step(t as u64, &[Some(spec.clone())], later);
        }
        // the pool (three series' rows) is trained before any single series has enough
        let first = first_scored.expect("scored");
        assert!(
            first < MIN_HISTORY + MIN_TRAIN_ROWS,
            "first scored at {first}"
        );
        assert_eq!(s.forest_counts(), (1, 1));
        assert!(s.heap_bytes() > 0);
        // the detector's kept rows are the ring's rows: retraining from them equals training
        // from the ring afresh
        let own = s.series[&SeriesId(0)].own.as_ref().unwrap();
        let mut fresh = Vec::new();
        training_rows(&series[0][..400], None, &mut fresh);
        let kept: Vec<FeatureVec> = own.rows.iter().map(|r| r.map(|v| v as f64)).collect();
        assert_eq!(kept, fresh[fresh.len() - kept.len()..]);
        // a series that disappears gives its forest back
        for k in 1..3u64 {
            score_at(
                &mut s,
                SeriesId(k),
                0,
                &spec,
                &series[k as usize][..=400],
                400,
                None,
                400,
                later,
            );
        }
        s.finish_step(400, &[Some(spec.clone())], later);
        assert_eq!(s.forest_counts().0, 0);
        score_at(
            &mut s,
            SeriesId(2),
            0,
            &spec,
            &series[2][..=401],
            401,
            None,
            401,
            later,
        );
        assert_eq!(s.forest_counts().0, 1);
    }

    #[test]
    fn training_past_the_deadline_is_deferred() {
        let spec = AnomalySpec {
            threshold: 0.65,
            retrain_every: 10,
            signal: crate::anomaly::AlarmSignal::Score,
            suppress: 0,
        };
        let v = nab("ec2_cpu_utilization_5f5533");
        let mut s = AnomalyScorer::new(1, 10, 1440);
        let past = Instant::now();
        score_at(&mut s, SeriesId(1), 0, &spec, &v[..300], 299, None, 1, past);
        assert_eq!(s.stats.deferred, 1);
        assert_eq!(s.forest_counts().0, 0);
    }
}
