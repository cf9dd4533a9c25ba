//! NAB's scoring, without I/O: window counts and precision/recall/F1, NAB's profiles, its
//! sweep scores per point ([`sweep_points`]) and score parts per file ([`nab_parts`]), the
//! normalised score, and the debounce that turns scores into alarm points ([`debounce`]).

/// Window-level counts: a window is caught if any alarm falls in it; alarm points outside
/// windows form false-positive events (a run of consecutive alarm points is one event).
/// Alarms before `start` and windows ending before `start` are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCounts {
    pub windows: usize,
    pub caught: usize,
    pub fp_events: usize,
}

pub fn window_counts(alarms: &[bool], windows: &[(usize, usize)], start: usize) -> WindowCounts {
    let n = alarms.len();
    let mut inside = vec![false; n];
    let mut c = WindowCounts {
        windows: 0,
        caught: 0,
        fp_events: 0,
    };
    for &(l, r) in windows {
        let r = r.min(n.saturating_sub(1));
        if r < start || l > r {
            continue;
        }
        c.windows += 1;
        inside[l..=r].iter_mut().for_each(|x| *x = true);
        if (l.max(start)..=r).any(|i| alarms[i]) {
            c.caught += 1;
        }
    }
    let mut in_event = false;
    for i in start..n {
        let fp = alarms[i] && !inside[i];
        if fp && !in_event {
            c.fp_events += 1;
        }
        in_event = fp;
    }
    c
}

/// Precision, recall, F1 from window counts. No windows: recall 1. No alarms at all:
/// precision 1 when there is nothing to catch, else 0.
pub fn prf(c: WindowCounts) -> (f64, f64, f64) {
    let recall = if c.windows == 0 {
        1.0
    } else {
        c.caught as f64 / c.windows as f64
    };
    let alarms = c.caught + c.fp_events;
    let precision = if alarms == 0 {
        if c.windows == 0 {
            1.0
        } else {
            0.0
        }
    } else {
        c.caught as f64 / alarms as f64
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, f1)
}

/// NAB's scaled sigmoid (`sweeper.py`): `2·sigmoid(−5·y) − 1`, and −1 from 3 on.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// NAB probation length: `min(⌊0.15·n⌋, 0.15·5000)`.
pub fn nab_probation(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// One of NAB's application profiles (`config/profiles.json`, `CostMatrix`; `tnWeight` is
/// unused by the scorer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NabProfile {
    /// NAB's name.
    pub name: &'static str,
    /// Our column suffix: `nab_<column>`, `opt_<column>`.
    pub column: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_weight: f64,
}

/// `standard`: TP 1, FP 0.11, FN 1.
pub const NAB_STANDARD: NabProfile = NabProfile {
    name: "standard",
    column: "standard",
    tp: 1.0,
    fp: 0.11,
    fn_weight: 1.0,
};
/// `reward_low_FP_rate`: TP 1, FP 0.22, FN 1.
pub const NAB_LOW_FP: NabProfile = NabProfile {
    name: "reward_low_FP_rate",
    column: "low_fp",
    tp: 1.0,
    fp: 0.22,
    fn_weight: 1.0,
};
/// `reward_low_FN_rate`: TP 1, FP 0.11, FN 2.
pub const NAB_LOW_FN: NabProfile = NabProfile {
    name: "reward_low_FN_rate",
    column: "low_fn",
    tp: 1.0,
    fp: 0.11,
    fn_weight: 2.0,
};
/// NAB's three profiles, in our column order.
pub const NAB_PROFILES: [NabProfile; 3] = [NAB_STANDARD, NAB_LOW_FP, NAB_LOW_FN];

/// NAB standard profile weights.
pub const NAB_TP: f64 = NAB_STANDARD.tp;
pub const NAB_FP: f64 = NAB_STANDARD.fp;
pub const NAB_FN: f64 = NAB_STANDARD.fn_weight;

/// What one point contributes when it is a detection: NAB's `sweepScore` before the
/// profile's weight (`calcSweepScore`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SweepPoint {
    /// Before the probation's end: never scored.
    Probation,
    /// In window `id`: `scaledSigmoid(−(r − i + 1)/width) / scaledSigmoid(−1)`, times TP.
    Window { id: usize, tp: f64 },
    /// Outside windows: `scaledSigmoid(|i − r_prev| / (width_prev − 1))` after a window,
    /// `scaledSigmoid(3) = −1` before the first, times FP.
    Outside { fp: f64 },
}

/// The weight-free parts of a NAB score: `raw = TP·tp + FP·fp − FN·(windows − detected)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NabParts {
    /// Windows with a point past the probation (the ones NAB scores).
    pub windows: usize,
    /// Of those, windows with a detection.
    pub detected: usize,
    /// Sum over detected windows of the best (earliest) detection's unweighted TP score.
    pub tp: f64,
    /// Sum over detections outside windows of their unweighted (≤ 0) FP score.
    pub fp: f64,
}

impl NabParts {
    /// Raw score under `p`.
    pub fn raw(&self, p: &NabProfile) -> f64 {
        p.tp * self.tp + p.fp * self.fp - p.fn_weight * (self.windows - self.detected) as f64
    }
    /// The null detector's (no detection) raw score under `p`: −FN per window.
    pub fn null(&self, p: &NabProfile) -> f64 {
        -p.fn_weight * self.windows as f64
    }
    /// The perfect detector's (each window at its first point) raw score: +TP per window.
    pub fn perfect(&self, p: &NabProfile) -> f64 {
        p.tp * self.windows as f64
    }
    pub(super) fn add(&mut self, o: &NabParts) {
        self.windows += o.windows;
        self.detected += o.detected;
        self.tp += o.tp;
        self.fp += o.fp;
    }
}

/// Windows clipped to `n` points, sorted, overlapping ones merged (NAB's labels have none).
fn clean_windows(windows: &[(usize, usize)], n: usize) -> Vec<(usize, usize)> {
    let mut ws: Vec<(usize, usize)> = windows
        .iter()
        .map(|&(l, r)| (l, r.min(n.saturating_sub(1))))
        .filter(|&(l, r)| l <= r && l < n)
        .collect();
    ws.sort();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ws.len());
    for (l, r) in ws {
        match out.last_mut() {
            Some(last) if l <= last.1 => last.1 = last.1.max(r),
            _ => out.push((l, r)),
        }
    }
    out
}

/// NAB's `Sweeper.calcSweepScore` for `n` points: each point's unweighted contribution
/// as a detection, and the number of windows scored (those reaching past `probation`).
/// A window of one point is followed by FP positions `|i − r|/1` (NAB divides by zero).
pub fn sweep_points(
    n: usize,
    windows: &[(usize, usize)],
    probation: usize,
) -> (Vec<SweepPoint>, usize) {
    let ws = clean_windows(windows, n);
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = Vec::with_capacity(n);
    let (mut next, mut cur, mut prev) = (0usize, None::<usize>, None::<(usize, usize)>);
    let mut scored = 0;
    for i in 0..n {
        if cur.is_none() && next < ws.len() && i == ws[next].0 {
            cur = Some(next);
            next += 1;
            if ws[next - 1].1 >= probation {
                scored += 1;
            }
        }
        let p = match cur {
            Some(id) => {
                let (l, r) = ws[id];
                let pos = -((r - i + 1) as f64) / (r - l + 1) as f64;
                SweepPoint::Window {
                    id,
                    tp: scaled_sigmoid(pos) / max_tp,
                }
            }
            None => {
                let pos = match prev {
                    None => 3.0,
                    Some((r, w)) => (i - r) as f64 / (w.saturating_sub(1).max(1)) as f64,
                };
                SweepPoint::Outside {
                    fp: scaled_sigmoid(pos),
                }
            }
        };
        out.push(if i < probation {
            SweepPoint::Probation
        } else {
            p
        });
        if let Some(id) = cur {
            let (l, r) = ws[id];
            if i == r {
                prev = Some((r, r - l + 1));
                cur = None;
            }
        }
    }
    (out, scored)
}

/// Scores the detections at `alarm_at` (ascending or not) against `points`
/// ([`sweep_points`]): the best detection per window, every detection outside windows.
pub(super) fn parts_of(
    points: &[SweepPoint],
    windows: usize,
    alarm_at: impl Iterator<Item = usize>,
) -> NabParts {
    let mut best: Vec<f64> = Vec::new();
    let mut p = NabParts {
        windows,
        ..NabParts::default()
    };
    for i in alarm_at {
        match points[i] {
            SweepPoint::Probation => {}
            SweepPoint::Window { id, tp } => {
                if best.len() <= id {
                    best.resize(id + 1, f64::NEG_INFINITY);
                }
                best[id] = best[id].max(tp);
            }
            SweepPoint::Outside { fp } => p.fp += fp,
        }
    }
    for b in best.into_iter().filter(|b| b.is_finite()) {
        p.detected += 1;
        p.tp += b;
    }
    p
}

/// NAB score parts of one file's detections, following NAB's `sweeper.py`
/// (`calcSweepScore` + `calcScoreByThreshold`): points before `probation` are ignored;
/// each window that reaches past the probation scores its best (earliest) detection, or
/// −FN if none; each detection outside windows scores FP·`scaledSigmoid` of its distance
/// after the previous window (−FP before the first).
pub fn nab_parts(alarms: &[bool], windows: &[(usize, usize)], probation: usize) -> NabParts {
    let (points, scored) = sweep_points(alarms.len(), windows, probation);
    parts_of(&points, scored, (0..alarms.len()).filter(|&i| alarms[i]))
}

/// `(raw, null, perfect)` NAB scores of one file under profile `p`; null = −FN and
/// perfect = +TP per scored window.
pub fn nab_score_profile(
    alarms: &[bool],
    windows: &[(usize, usize)],
    probation: usize,
    p: &NabProfile,
) -> (f64, f64, f64) {
    let parts = nab_parts(alarms, windows, probation);
    (parts.raw(p), parts.null(p), parts.perfect(p))
}

/// [`nab_score_profile`] under the standard profile.
pub fn nab_score(alarms: &[bool], windows: &[(usize, usize)], probation: usize) -> (f64, f64, f64) {
    nab_score_profile(alarms, windows, probation, &NAB_STANDARD)
}

/// Normalised NAB score of summed raw/null/perfect scores.
pub fn nab_normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    if perfect - null <= 0.0 {
        return 0.0;
    }
    100.0 * (raw - null) / (perfect - null)
}

/// Normalised score of summed parts under `p`.
pub fn nab_normalise_parts(parts: &NabParts, p: &NabProfile) -> f64 {
    nab_normalise(parts.raw(p), parts.null(p), parts.perfect(p))
}

/// Alarm points: `score >= threshold`, and with `refractory > 0` only when no alarm fired in
/// the `refractory` points before (the first point of each burst alarms, the rest of the
/// burst is suppressed).
pub fn debounce(scores: &[f64], threshold: f64, refractory: usize) -> Vec<bool> {
    let mut last: Option<usize> = None;
    scores
        .iter()
        .enumerate()
        .map(|(t, &s)| {
            let fire = s >= threshold && last.is_none_or(|l| t - l >= refractory.max(1));
            if fire {
                last = Some(t);
            }
            fire
        })
        .collect()
}
