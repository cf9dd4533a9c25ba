//! Scoring in the agent: per series, every step, the newest point goes to the entry's
//! detector ([`super::detector`], listed in [`crate::detectors`]), whose raw score then goes
//! through the series' likelihood ([`super::likelihood`]), the alarm and its suppression
//! ([`Alarm`]): the verdict the snapshot carries (`N:anomaly_score`, `N:anomaly_likelihood`,
//! `N:anomalous`). The offline replay (`anomaly-eval`'s `agent`) drives this same scorer.
//!
//! Training runs on the forecast thread (never on the async runtime) within a per-step time
//! budget; what does not fit is deferred to the next step and counted.

use std::collections::HashMap;
use std::time::Instant;

pub use super::detector::{Band, StepStats};
use super::detector::{Point, Seen, Setup, Train};
use super::likelihood::Likelihood;
use super::registry::{AnyDetector, AnySeries};
use super::{features, naive_band, Alarm, AlarmSignal, FeatureVec};
use crate::config::AnomalySpec;
use crate::detectors::DetectorKind;
use crate::snapshot::Anomaly;
use crate::store::SeriesId;

/// Features of the newest point of `values`, and the one-step band they used.
pub fn newest_features(
    values: &[f32],
    season: Option<usize>,
) -> Option<(FeatureVec, Option<Band>)> {
    let (_, past) = values.split_last()?;
    let band = naive_band(past);
    features(values, band, season).map(|f| (f, band))
}

/// The season the seasonal feature uses: the longest configured one the history covers
/// (the feature looks at ±2 points around one season back).
pub fn season_for(seasons: &[usize], len: usize) -> Option<usize> {
    seasons.iter().rev().copied().find(|&p| len >= p + 3)
}

struct SeriesState {
    /// What the entry's detector keeps for the series.
    detector: AnySeries,
    likelihood: Likelihood,
    alarm: Alarm,
    /// The newest point's verdict, repeated until a new point arrives.
    last: Option<Anomaly>,
    /// Newest bucket seen, so a point is recorded once even if no new sample arrived.
    last_head: i64,
    seen: u64,
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

/// Anomaly state of the agent: every listed detector (each entry uses the one its
/// `anomaly.detector` names) and each series' verdict state. Owned by the forecast thread.
pub struct AnomalyScorer {
    series: HashMap<SeriesId, SeriesState>,
    /// One per listed detector, in the list's order.
    detectors: Vec<AnyDetector>,
    pub stats: StepStats,
}

impl AnomalyScorer {
    /// `history`: the ring length in points. Forests are drawn from seed 0.
    pub fn new(entries: usize, max_forests: usize, history: usize) -> Self {
        Self::with_seed(entries, max_forests, history, 0)
    }

    /// The same, with everything a detector draws at random (the forests, the pools'
    /// reservoirs) drawn from `seed` (`anomaly-eval --seed`; the agent uses 0).
    pub fn with_seed(entries: usize, max_forests: usize, history: usize, seed: u64) -> Self {
        let setup = Setup {
            entries,
            max_series_models: max_forests,
            history,
            seed,
        };
        Self {
            series: HashMap::new(),
            detectors: DetectorKind::ALL
                .into_iter()
                .map(|k| AnyDetector::new(k, &setup))
                .collect(),
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
        let (spec, values, head) = (point.spec, point.values, point.head);
        let detector = &mut self.detectors[spec.detector.index()];
        let state = self.series.entry(point.id).or_insert_with(|| SeriesState {
            detector: detector.series(),
            likelihood: Likelihood::new(),
            alarm: Alarm::default(),
            last: None,
            last_head: i64::MIN,
            seen: step,
        });
        state.seen = step;
        if state.detector.kind() != spec.detector {
            // The entry's detector changed (a reload): start the series afresh.
            detector.forget(&state.detector);
            state.detector = detector.series();
        }
        let (_, past) = values.split_last()?;
        let fresh = state.last_head != head;
        let p = Point {
            entry: point.entry,
            spec,
            values,
            season: point.season,
            band: naive_band(past),
            step,
            fresh,
            want_score: fresh || state.last.is_none(),
        };
        let mut train = Train {
            deadline,
            stats: &mut self.stats,
        };
        let seen = detector.update(&mut state.detector, &p, &mut train);
        if seen == Seen::Unusable {
            return None;
        }
        state.last_head = head;
        if !p.want_score {
            // No new point: the newest point's verdict stands (its score, likelihood and
            // the alarm's hold were already counted once).
            return state.last;
        }
        let Seen::Score(score) = seen else {
            return None;
        };
        self.stats.scored += 1;
        let likelihood = state.likelihood.update(score);
        let x = values.last().map_or(f64::NAN, |&v| v as f64);
        let signal = match spec.signal {
            AlarmSignal::Score => score,
            AlarmSignal::Likelihood => likelihood,
        };
        let direction = state.alarm.decide(
            step,
            signal,
            spec.threshold,
            x,
            p.band,
            spec.outside_band_only,
            spec.suppress as u64,
        );
        state.last = Some(Anomaly {
            score,
            likelihood,
            direction,
        });
        state.last
    }

    /// End of a step: forget series not seen in it, then each detector's shared training.
    /// Returns nothing; see [`AnomalyScorer::stats`].
    pub fn finish_step(&mut self, step: u64, specs: &[Option<AnomalySpec>], deadline: Instant) {
        let detectors = &mut self.detectors;
        self.series.retain(|_, s| {
            let keep = s.seen == step;
            if !keep {
                detectors[s.detector.kind().index()].forget(&s.detector);
            }
            keep
        });
        let mut train = Train {
            deadline,
            stats: &mut self.stats,
        };
        for d in &mut self.detectors {
            d.finish_step(step, specs, &mut train);
        }
    }

    /// Series holding their own trained model (forest), and shared (pooled) ones trained.
    pub fn forest_counts(&self) -> (usize, usize) {
        (
            self.series
                .values()
                .filter(|s| s.detector.has_own_model())
                .count(),
            self.detectors.iter().map(AnyDetector::shared_models).sum(),
        )
    }

    /// Approximate heap bytes of the series' own detector state (forests and kept rows).
    pub fn own_heap_bytes(&self) -> usize {
        self.series.values().map(|s| s.detector.bytes()).sum()
    }

    /// Approximate heap bytes of all detectors, shared state and per-series state.
    pub fn heap_bytes(&self) -> usize {
        let shared: usize = self.detectors.iter().map(AnyDetector::shared_bytes).sum();
        self.own_heap_bytes()
            + shared
            + self.series.capacity() * std::mem::size_of::<(SeriesId, SeriesState)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::forest::training_rows;
    use crate::anomaly::{MAX_TRAIN_ROWS, MIN_HISTORY, MIN_TRAIN_ROWS};

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
        crate::test_data::nab(&format!("realAWSCloudwatch/{name}.csv"))
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
            // the forest's own and pooled forests, through the scorer
            detector: DetectorKind::from_name("forest").unwrap(),
            threshold: 0.65,
            retrain_every: 50,
            signal: crate::anomaly::AlarmSignal::Score,
            suppress: 0,
            outside_band_only: true,
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
        let AnySeries::Forest(Some(own)) = &s.series[&SeriesId(0)].detector else {
            panic!("series 0 holds no forest");
        };
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
            // the forest's own and pooled forests, through the scorer
            detector: DetectorKind::from_name("forest").unwrap(),
            threshold: 0.65,
            retrain_every: 10,
            signal: crate::anomaly::AlarmSignal::Score,
            suppress: 0,
            outside_band_only: true,
        };
        let v = nab("ec2_cpu_utilization_5f5533");
        let mut s = AnomalyScorer::new(1, 10, 1440);
        let past = Instant::now();
        score_at(&mut s, SeriesId(1), 0, &spec, &v[..300], 299, None, 1, past);
        assert_eq!(s.stats.deferred, 1);
        assert_eq!(s.forest_counts().0, 0);
    }
}
