//! What a run measured: one detector's figures on one file ([`FileResult`], by
//! [`evaluate`]), over a set of files ([`Summary`]), the scores kept for threshold sweeps
//! ([`ScoredFile`]) and the whole run ([`NabReport`]).

use super::options::DETECTORS;
use super::score::{
    debounce, nab_normalise_parts, nab_parts, prf, window_counts, NabParts, WindowCounts,
    NAB_PROFILES,
};

/// Window counts and scores of one detector on one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub detector: String,
    /// `<category>/<name>.csv`, the labels key.
    pub file: String,
    pub category: String,
    /// Windows that reach past the probation period.
    pub windows: usize,
    pub caught: usize,
    pub fp_events: usize,
    pub alarm_points: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// NAB score parts (raw, null and perfect scores of each profile follow from them).
    pub nab: NabParts,
}

/// A detector's figures over a set of files.
#[derive(Debug, Clone)]
pub struct Summary {
    pub detector: String,
    /// `ALL` or a category.
    pub scope: String,
    pub files: usize,
    pub mean_precision: f64,
    pub mean_recall: f64,
    pub mean_f1: f64,
    /// Pooled counts: caught / windows, caught / (caught + FP events).
    pub micro_precision: f64,
    pub micro_recall: f64,
    pub micro_f1: f64,
    /// NAB scores per profile ([`NAB_PROFILES`] order: standard, low FP, low FN),
    /// normalised: 0 = null detector, 100 = perfect.
    pub nab: [f64; 3],
    /// With [`NabEvalOptions::optimize`](super::NabEvalOptions::optimize): per profile, the threshold that maximises the
    /// detector's summed raw score over all files of the run, and this scope's normalised
    /// score at that threshold.
    pub opt: Option<[OptScore; 3]>,
}

impl Summary {
    /// The row of `summary.csv` and of the printed table: detector, scope, files, the mean
    /// precision, recall and F1, the micro precision and recall (with `micro_pr`), the micro
    /// F1 (`ratio` digits each), then the NAB score per profile (`score` digits).
    pub(super) fn cells(&self, micro_pr: bool, ratio: usize, score: usize) -> Vec<String> {
        let mut ratios = vec![self.mean_precision, self.mean_recall, self.mean_f1];
        if micro_pr {
            ratios.extend([self.micro_precision, self.micro_recall]);
        }
        ratios.push(self.micro_f1);
        let mut cells = vec![
            self.detector.clone(),
            self.scope.clone(),
            self.files.to_string(),
        ];
        cells.extend(ratios.iter().map(|v| format!("{v:.ratio$}")));
        cells.extend(self.nab.iter().map(|v| format!("{v:.score$}")));
        cells
    }
}

/// A profile's optimised threshold and the normalised score there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptScore {
    pub threshold: f64,
    pub score: f64,
}

/// Scores kept for threshold sweeps.
#[derive(Debug, Clone)]
pub struct ScoredFile {
    pub detector: String,
    pub file: String,
    pub category: String,
    pub probation: usize,
    pub windows: Vec<(usize, usize)>,
    pub scores: Vec<f64>,
    /// Debounce (points) applied when evaluating.
    pub refractory: usize,
}

impl ScoredFile {
    /// The file's figures with its detector alarming at `threshold`.
    pub fn evaluate_at(&self, threshold: f64) -> FileResult {
        evaluate(
            &self.detector,
            &self.file,
            &self.category,
            &self.scores,
            &self.windows,
            self.probation,
            threshold,
            self.refractory,
        )
    }
}

/// Everything [`run_nab_eval`](super::run_nab_eval) measured.
#[derive(Debug, Clone)]
pub struct NabReport {
    pub threshold: f64,
    pub files: Vec<FileResult>,
    /// Per detector: `ALL` first, then one per category.
    pub summary: Vec<Summary>,
    pub scored: Vec<ScoredFile>,
    /// Seconds [`optimize`](super::optimize) took over all detectors (`None` without `optimize`).
    pub optimize_secs: Option<f64>,
    /// Per detector, the normalised score per profile with each file at its own best
    /// threshold ([`per_file_oracle`](super::per_file_oracle); empty without `optimize`).
    pub oracle: Vec<(&'static str, [f64; 3])>,
}

pub(super) fn evaluate(
    detector: &str,
    file: &str,
    category: &str,
    scores: &[f64],
    windows: &[(usize, usize)],
    probation: usize,
    threshold: f64,
    refractory: usize,
) -> FileResult {
    let alarms = debounce(scores, threshold, refractory);
    let c = window_counts(&alarms, windows, probation);
    let (precision, recall, f1) = prf(c);
    let nab = nab_parts(&alarms, windows, probation);
    FileResult {
        detector: detector.to_string(),
        file: file.to_string(),
        category: category.to_string(),
        windows: c.windows,
        caught: c.caught,
        fp_events: c.fp_events,
        alarm_points: alarms[probation.min(alarms.len())..]
            .iter()
            .filter(|&&a| a)
            .count(),
        precision,
        recall,
        f1,
        nab,
    }
}

/// Summary of `files` (all of one detector).
pub fn summarise(detector: &str, scope: &str, files: &[&FileResult]) -> Summary {
    let k = files.len().max(1) as f64;
    let mean = |f: fn(&FileResult) -> f64| files.iter().map(|r| f(r)).sum::<f64>() / k;
    let caught: usize = files.iter().map(|r| r.caught).sum();
    let windows: usize = files.iter().map(|r| r.windows).sum();
    let fp: usize = files.iter().map(|r| r.fp_events).sum();
    let mut nab = NabParts::default();
    files.iter().for_each(|r| nab.add(&r.nab));
    let (mp, mr, mf) = prf(WindowCounts {
        windows,
        caught,
        fp_events: fp,
    });
    Summary {
        detector: detector.to_string(),
        scope: scope.to_string(),
        files: files.len(),
        mean_precision: mean(|r| r.precision),
        mean_recall: mean(|r| r.recall),
        mean_f1: mean(|r| r.f1),
        micro_precision: mp,
        micro_recall: mr,
        micro_f1: mf,
        nab: NAB_PROFILES.map(|p| nab_normalise_parts(&nab, &p)),
        opt: None,
    }
}

pub(super) fn summaries(files: &[FileResult]) -> Vec<Summary> {
    let mut out = Vec::new();
    for det in DETECTORS {
        let mine: Vec<&FileResult> = files.iter().filter(|r| r.detector == det).collect();
        if mine.is_empty() {
            continue;
        }
        out.push(summarise(det, "ALL", &mine));
        let mut cats: Vec<&str> = mine.iter().map(|r| r.category.as_str()).collect();
        cats.dedup();
        for c in cats {
            let sub: Vec<&FileResult> = mine.iter().copied().filter(|r| r.category == c).collect();
            out.push(summarise(det, c, &sub));
        }
    }
    out
}

impl NabReport {
    /// Re-scores the kept scores of `detector` at each threshold: `(threshold, summary)`.
    pub fn sweep(&self, detector: &str, thresholds: &[f64]) -> Vec<(f64, Summary)> {
        thresholds
            .iter()
            .map(|&th| {
                let rs: Vec<FileResult> = self
                    .scored
                    .iter()
                    .filter(|s| s.detector == detector)
                    .map(|s| s.evaluate_at(th))
                    .collect();
                let refs: Vec<&FileResult> = rs.iter().collect();
                (th, summarise(detector, "ALL", &refs))
            })
            .collect()
    }

    /// Quantiles of `detector`'s scores after probation, outside and inside windows.
    pub fn score_quantiles(&self, detector: &str, qs: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (mut out, mut inn) = (Vec::new(), Vec::new());
        for s in self.scored.iter().filter(|s| s.detector == detector) {
            let mut inside = vec![false; s.scores.len()];
            for &(l, r) in &s.windows {
                inside[l..=r.min(s.scores.len() - 1)]
                    .iter_mut()
                    .for_each(|x| *x = true);
            }
            for t in s.probation..s.scores.len() {
                if inside[t] {
                    inn.push(s.scores[t]);
                } else {
                    out.push(s.scores[t]);
                }
            }
        }
        let q = |v: &mut Vec<f64>| -> Vec<f64> {
            v.sort_by(f64::total_cmp);
            qs.iter()
                .map(|&q| {
                    if v.is_empty() {
                        f64::NAN
                    } else {
                        v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
                    }
                })
                .collect()
        };
        (q(&mut out), q(&mut inn))
    }
}
