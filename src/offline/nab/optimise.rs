//! NAB's threshold optimiser: per detector and profile, the threshold whose summed raw score
//! over the files is highest ([`optimize`]), each file's bound at its own best threshold
//! ([`per_file_oracle`]), and [`NabReport::apply_optimize`].

use super::options::DETECTORS;
use super::results::{summaries, FileResult, NabReport, OptScore, ScoredFile};
use super::score::{nab_normalise, parts_of, sweep_points, NabParts, SweepPoint, NAB_PROFILES};

/// The threshold NAB's optimiser reports when no detection scores best (its sweep starts
/// there); above every score here.
pub const NO_DETECTION_THRESHOLD: f64 = 1.1;

/// Raw-score differences below this are ties in [`optimize`].
pub const OPT_TIE: f64 = 1e-9;

/// Max segment tree over scores (NaN as −∞): the first index from `j` with a score ≥ `v`.
struct MaxTree {
    size: usize,
    n: usize,
    t: Vec<f64>,
}

impl MaxTree {
    fn new(v: &[f64]) -> Self {
        let size = v.len().next_power_of_two().max(1);
        let mut t = vec![f64::NEG_INFINITY; 2 * size];
        for (i, &x) in v.iter().enumerate() {
            t[size + i] = if x.is_nan() { f64::NEG_INFINITY } else { x };
        }
        for i in (1..size).rev() {
            t[i] = t[2 * i].max(t[2 * i + 1]);
        }
        Self {
            size,
            n: v.len(),
            t,
        }
    }

    fn first_at_least(&self, j: usize, v: f64) -> Option<usize> {
        if j >= self.n {
            return None;
        }
        let mut i = j + self.size;
        loop {
            if self.t[i] >= v {
                while i < self.size {
                    i = if self.t[2 * i] >= v { 2 * i } else { 2 * i + 1 };
                }
                return (i - self.size < self.n).then_some(i - self.size);
            }
            while i & 1 == 1 {
                i >>= 1;
            }
            if i == 0 {
                return None;
            }
            i += 1;
        }
    }
}

/// One file's score parts at each of its distinct finite scores `v`, descending: the
/// detections at threshold `v` (score ≥ `v`, debounced as [`debounce`] does with the file's
/// refractory). Also returns the parts with no detection.
pub(super) fn file_steps(f: &ScoredFile) -> (NabParts, Vec<(f64, NabParts)>) {
    let (points, scored) = sweep_points(f.scores.len(), &f.windows, f.probation);
    let none = NabParts {
        windows: scored,
        ..NabParts::default()
    };
    if f.refractory == 0 {
        return (none, steps_plain(&f.scores, &points, none));
    }
    let mut vals: Vec<f64> = f.scores.iter().copied().filter(|v| v.is_finite()).collect();
    vals.sort_by(|a, b| b.total_cmp(a));
    vals.dedup_by(|a, b| a == b);
    let tree = MaxTree::new(&f.scores);
    let gap = f.refractory.max(1);
    let steps = vals
        .into_iter()
        .map(|v| {
            let mut j = 0;
            let fired = std::iter::from_fn(|| {
                let i = tree.first_at_least(j, v)?;
                j = i + gap;
                Some(i)
            });
            (v, parts_of(&points, scored, fired))
        })
        .collect();
    (none, steps)
}

/// Without debounce the detections only grow as the threshold falls: NAB's
/// `calcScoreByThreshold`, points taken in descending score order.
fn steps_plain(scores: &[f64], points: &[SweepPoint], none: NabParts) -> Vec<(f64, NabParts)> {
    let mut order: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i].is_finite() && points[i] != SweepPoint::Probation)
        .collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut best: Vec<f64> = Vec::new();
    let mut p = none;
    let mut out = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        match points[i] {
            SweepPoint::Window { id, tp } => {
                if best.len() <= id {
                    best.resize(id + 1, f64::NEG_INFINITY);
                }
                if best[id] == f64::NEG_INFINITY {
                    p.detected += 1;
                    p.tp += tp;
                    best[id] = tp;
                } else if tp > best[id] {
                    p.tp += tp - best[id];
                    best[id] = tp;
                }
            }
            SweepPoint::Outside { fp } => p.fp += fp,
            SweepPoint::Probation => {}
        }
        if order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]) {
            out.push((scores[i], p));
        }
    }
    out
}

/// NAB's optimiser over `files` (one detector's): for each profile of [`NAB_PROFILES`],
/// the threshold whose summed raw score over the files is highest, and that score. The
/// candidates are every distinct score of the files (the score only changes there) and
/// [`NO_DETECTION_THRESHOLD`]; ties (within [`OPT_TIE`], float noise of the running sums)
/// go to the higher threshold, as in NAB (a stable sort of thresholds swept downwards).
/// Debounced files are re-debounced at each candidate.
pub fn optimize(files: &[&ScoredFile]) -> [(f64, f64); 3] {
    let mut cur = Vec::with_capacity(files.len());
    let mut events: Vec<(f64, usize, NabParts)> = Vec::new();
    let mut top = f64::NEG_INFINITY;
    for (fi, f) in files.iter().enumerate() {
        let (none, steps) = file_steps(f);
        cur.push(none);
        top = steps.first().map_or(top, |s| top.max(s.0));
        events.extend(steps.into_iter().map(|(v, p)| (v, fi, p)));
    }
    events.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut total = NabParts::default();
    cur.iter().for_each(|p| total.add(p));
    let none_th = if top < NO_DETECTION_THRESHOLD {
        NO_DETECTION_THRESHOLD
    } else {
        top + top.abs().max(1.0)
    };
    let mut best = NAB_PROFILES.map(|p| (none_th, total.raw(&p)));
    for (k, &(v, fi, p)) in events.iter().enumerate() {
        let old = cur[fi];
        total.detected = total.detected + p.detected - old.detected;
        total.tp += p.tp - old.tp;
        total.fp += p.fp - old.fp;
        cur[fi] = p;
        if events.get(k + 1).is_none_or(|e| e.0 != v) {
            for (b, prof) in best.iter_mut().zip(NAB_PROFILES.iter()) {
                let raw = total.raw(prof);
                if raw > b.1 + OPT_TIE {
                    *b = (v, raw);
                }
            }
        }
    }
    best
}

/// An upper bound on what any per-series threshold could score: each file of `files` (one
/// detector's) at its own best threshold per profile ([`optimize`] on that file alone), the
/// raw scores summed and normalised over the corpus as NAB does. A detector whose oracle is
/// below a bar cannot reach it by threshold choice, only by better scores.
pub fn per_file_oracle(files: &[&ScoredFile]) -> [f64; 3] {
    let mut raw = [0.0; 3];
    let mut windows = NabParts::default();
    for f in files {
        windows.add(&file_steps(f).0);
        for (r, (_, best)) in raw.iter_mut().zip(optimize(&[f])) {
            *r += best;
        }
    }
    std::array::from_fn(|i| {
        let p = &NAB_PROFILES[i];
        nab_normalise(raw[i], windows.null(p), windows.perfect(p))
    })
}

impl NabReport {
    /// Sets each summary's [`Summary::opt`](super::Summary::opt): per detector and profile, [`optimize`] over all
    /// files of the run, then every scope re-scored at that threshold.
    pub fn apply_optimize(&mut self) {
        for det in DETECTORS {
            let mine: Vec<&ScoredFile> = self.scored.iter().filter(|s| s.detector == det).collect();
            if mine.is_empty() {
                continue;
            }
            let best = optimize(&mine);
            self.oracle.push((det, per_file_oracle(&mine)));
            let mut opt: Vec<[OptScore; 3]> = Vec::new();
            for (pi, &(th, _)) in best.iter().enumerate() {
                let rs: Vec<FileResult> = mine.iter().map(|s| s.evaluate_at(th)).collect();
                let scopes = summaries(&rs);
                if opt.is_empty() {
                    opt = vec![
                        [OptScore {
                            threshold: 0.0,
                            score: 0.0
                        }; 3];
                        scopes.len()
                    ];
                }
                for (o, s) in opt.iter_mut().zip(&scopes) {
                    o[pi] = OptScore {
                        threshold: th,
                        score: s.nab[pi],
                    };
                }
            }
            let mine_summaries = self.summary.iter_mut().filter(|s| s.detector == det);
            for (s, o) in mine_summaries.zip(opt) {
                s.opt = Some(o);
            }
        }
    }
}
