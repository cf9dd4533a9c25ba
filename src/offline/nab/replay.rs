//! The detectors replayed over one [`Series`], point by point with only past data: the
//! agent's own scorer and decision (`agent`), its per-series forest, the likelihood layer, the
//! pooled forest and the two baselines (naive band, rolling MAD).

use super::load::Series;
use super::options::{NabEvalOptions, MAD_K};
use crate::anomaly::{
    forest, median, online, AlarmSignal, AnomalyForest, FeatureVec, LONG_WINDOW, MAX_TRAIN_ROWS,
    MIN_HISTORY,
};

/// The agent's own-forest path ([`forest::SeriesDetector`]): from the end of probation, rows
/// of the last `history` points (as the ring holds them), retrained every `retrain_every`
/// points, scoring each newest point.
pub(super) fn forest_scores(
    s: &Series,
    history: usize,
    retrain_every: usize,
    seed: u64,
) -> Vec<f64> {
    let n = s.values.len();
    let mut scores = vec![0.0; n];
    let mut detector = forest::SeriesDetector::with_seed(history, seed);
    let mut scratch = Vec::new();
    for t in s.probation..n {
        if let Some(row) = &s.rows[t] {
            detector.observe(row);
        }
        let ring = &s.values[(t + 1).saturating_sub(history.max(2))..=t];
        detector.train_if_due(ring, s.season, t as u64, retrain_every, &mut scratch);
        if let (Some(f), Some(row)) = (detector.forest(), &s.rows[t]) {
            scores[t] = f.score(row);
        }
    }
    scores
}

/// The agent's own scorer ([`online::AnomalyScorer`], exactly as the forecast loop drives
/// it) over one series fed one point per step: the verdict exported at each point
/// (`N:anomaly_score`, `N:anomaly_likelihood`, `N:anomalous`). The ring is the last
/// `history` points (from the first one), the season the longest of `seasons` it covers.
/// This is the `agent` detector of `anomaly-eval`, and what the agent exports with `seed` 0.
pub fn agent_verdicts(
    values: &[f32],
    seasons: &[usize],
    history: usize,
    spec: &crate::config::AnomalySpec,
    seed: u64,
) -> Vec<Option<crate::snapshot::Anomaly>> {
    let mut scorer = online::AnomalyScorer::with_seed(1, 1, history, seed);
    let far = std::time::Instant::now() + std::time::Duration::from_secs(365 * 86_400);
    let specs = [Some(spec.clone())];
    let id = crate::store::SeriesId(0);
    (0..values.len())
        .map(|t| {
            let ring = &values[(t + 1).saturating_sub(history.max(1))..=t];
            let newest = online::Newest {
                id,
                entry: 0,
                spec,
                values: ring,
                head: t as i64,
                season: online::season_for(seasons, ring.len()),
            };
            let v = scorer.score(&newest, t as u64, far);
            scorer.finish_step(t as u64, &specs, far);
            v
        })
        .collect()
}

/// The `agent` detector's scores as `anomaly-eval` scores them: the signal the threshold
/// applies to, 0 where it is at or above the threshold but the agent did not fire (held by
/// the suppression, or inside the band), so that at the threshold the alarms are exactly
/// the agent's `N:anomalous != 0`.
pub(super) fn agent_scores(s: &Series, opts: &NabEvalOptions, suppress: usize) -> Vec<f64> {
    let verdict = opts.agent_verdict();
    let (threshold, signal) = (verdict.threshold, verdict.signal);
    let spec = crate::config::AnomalySpec {
        detector: opts.detector,
        threshold,
        retrain_every: opts.retrain_every,
        signal,
        suppress,
        outside_band_only: verdict.outside_band_only,
    };
    let seasons: Vec<usize> = s.season.into_iter().collect();
    agent_verdicts(&s.values, &seasons, opts.history, &spec, opts.seed)
        .into_iter()
        .map(|v| {
            v.map_or(0.0, |a| {
                let signal = match signal {
                    AlarmSignal::Score => a.score,
                    AlarmSignal::Likelihood => a.likelihood,
                };
                if signal >= threshold && a.direction == 0 {
                    0.0
                } else {
                    signal
                }
            })
        })
        .collect()
}

/// The forest's scores through the likelihood layer ([`crate::anomaly::likelihood`]), from
/// the first scored point.
pub(super) fn likelihood_scores(forest: &[f64], probation: usize) -> Vec<f64> {
    let mut l = crate::anomaly::likelihood::Likelihood::new();
    forest
        .iter()
        .enumerate()
        .map(|(t, &s)| if t < probation { 0.0 } else { l.update(s) })
        .collect()
}

pub(super) fn pooled_scores(all: &[Series], idx: usize, seed: u64) -> Vec<f64> {
    let s = &all[idx];
    let mut rows: Vec<FeatureVec> = s.rows[..s.probation].iter().flatten().copied().collect();
    // other series of the category, evenly subsampled so each contributes alike
    let others: Vec<&Series> = all
        .iter()
        .enumerate()
        .filter(|(j, o)| *j != idx && o.category == s.category)
        .map(|(_, o)| o)
        .collect();
    if !others.is_empty() {
        let per = (MAX_TRAIN_ROWS / others.len()).max(1);
        for o in others {
            let r: Vec<FeatureVec> = o.rows.iter().flatten().copied().collect();
            if r.is_empty() {
                continue;
            }
            let k = per.min(r.len());
            rows.extend((0..k).map(|i| r[i * r.len() / k]));
        }
    }
    let n = s.values.len();
    let mut scores = vec![0.0; n];
    if let Ok(f) = AnomalyForest::train_seeded(&rows, seed) {
        for t in s.probation..n {
            if let Some(row) = &s.rows[t] {
                scores[t] = f.score(row);
            }
        }
    }
    scores
}

pub(super) fn band_scores(s: &Series) -> Vec<f64> {
    (0..s.values.len())
        .map(|t| {
            let x = s.values[t] as f64;
            match s.bands[t] {
                Some((lo, _, hi)) if t >= s.probation && x.is_finite() && (x < lo || x > hi) => 1.0,
                _ => 0.0,
            }
        })
        .collect()
}

pub(super) fn mad_scores(s: &Series) -> Vec<f64> {
    let n = s.values.len();
    let mut out = vec![0.0; n];
    let mut tmp = vec![0f64; LONG_WINDOW];
    let mut buf = Vec::with_capacity(LONG_WINDOW);
    for t in s.probation.max(1)..n {
        let x = s.values[t] as f64;
        if !x.is_finite() {
            continue;
        }
        buf.clear();
        buf.extend(
            s.values[t.saturating_sub(LONG_WINDOW)..t]
                .iter()
                .filter(|v| v.is_finite())
                .map(|&v| v as f64),
        );
        if buf.len() < MIN_HISTORY {
            continue;
        }
        tmp[..buf.len()].copy_from_slice(&buf);
        let med = median(&mut tmp[..buf.len()]);
        for (t2, v) in tmp.iter_mut().zip(&buf) {
            *t2 = (v - med).abs();
        }
        let mad = median(&mut tmp[..buf.len()]);
        let z = (x - med).abs() / (1.4826 * mad);
        if z > MAD_K || (mad == 0.0 && x != med) {
            out[t] = 1.0;
        }
    }
    out
}

/// The `agent` detector's hold in points for a file whose day is `day` points: `suppress`
/// counted in the file's steps (rounded down, as the agent counts it), one day by default.
pub(super) fn hold_points(suppress: std::time::Duration, day: usize) -> usize {
    (suppress.as_secs_f64() / 86_400.0 * day as f64) as usize
}
