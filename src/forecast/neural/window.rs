//! Model inputs from a series' ring: the window of the last `window` steps, gaps filled, each
//! step's features (see the model contract in [`super::contract`]) and the per-window
//! normalisation. The agent and `promcast train` build rows with the same [`input_row`], so
//! what a model is trained on is what it is served.

use std::time::Duration;

use super::contract::{
    Feature, Lags, ModelMeta, Normalisation, CLIP_MAD, DAY_MS, MONDAY_MS, WEEK_MS,
};

/// One series' input to [`super::LstmModel::predict`].
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    /// Ring values oldest → newest, one per step; NaN (or ±inf) marks a gap.
    pub values: &'a [f32],
    /// Timestamp (ms since the epoch) of the newest value's bucket.
    pub last_ts_ms: i64,
    /// False when the timestamps carry no calendar meaning (an indexed trace): the time
    /// features are then 0, the value the model was trained with for unknown times.
    pub calendar: bool,
}

/// A window's normalisation: `x' = (x − center) / scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowNorm {
    pub center: f64,
    pub scale: f64,
    /// Normalised values are clipped to ±clip.
    pub clip: f32,
    /// Half the window or more sits at one value (an IQR of 0: a counter that repeats but
    /// for spikes): the forecast is centred at that level.
    pub flat: bool,
}

impl RowNorm {
    /// Median and IQR of the finite values in `window` (`sorted` is a scratch buffer); `None`
    /// when there is none.
    #[cfg(test)]
    pub(super) fn robust(
        window: impl IntoIterator<Item = f64>,
        sorted: &mut Vec<f64>,
    ) -> Option<RowNorm> {
        Self::new(Normalisation::RobustMedianIqr, window, sorted)
    }

    /// The normalisation of `kind` for the finite values of `window`.
    pub(super) fn new(
        kind: Normalisation,
        window: impl IntoIterator<Item = f64>,
        sorted: &mut Vec<f64>,
    ) -> Option<RowNorm> {
        sorted.clear();
        sorted.extend(window.into_iter().filter(|v| v.is_finite()));
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_unstable_by(f64::total_cmp);
        let center = quantile_sorted(sorted, 0.5);
        let iqr = quantile_sorted(sorted, 0.75) - quantile_sorted(sorted, 0.25);
        let (floor, clip) = match kind {
            Normalisation::RobustMedianIqr => (0.0, f32::INFINITY),
            Normalisation::RobustMedianIqrMad => {
                let mad =
                    sorted.iter().map(|v| (v - center).abs()).sum::<f64>() / sorted.len() as f64;
                (1.25 * mad, CLIP_MAD)
            }
        };
        let scale = iqr.max(floor).max(1e-3 * center.abs()).max(1e-9);
        Some(RowNorm {
            center,
            scale,
            clip,
            flat: iqr == 0.0,
        })
    }

    pub fn normalise(&self, x: f64) -> f32 {
        (((x - self.center) / self.scale) as f32).clamp(-self.clip, self.clip)
    }

    pub fn denormalise(&self, y: f32) -> f32 {
        (y as f64 * self.scale + self.center) as f32
    }
}

/// Writes the model input row (`window × features`) for one history at `step`, exactly as
/// [`super::LstmModel::predict`] builds it: what training uses so that the agent's inputs and the
/// trained model's agree. Returns the row's normalisation, or `None` when the window has no
/// observed value. `scratch` is reused across calls.
pub fn input_row(
    meta: &ModelMeta,
    step: Duration,
    history: &History<'_>,
    row: &mut [f32],
    scratch: &mut (Vec<f64>, Vec<f64>),
) -> Option<RowNorm> {
    build_row(
        meta,
        meta.lag_steps(step),
        step,
        history,
        row,
        &mut scratch.0,
        &mut scratch.1,
    )
}

/// Quantile `q` of sorted, non-empty `s`, interpolating linearly between order statistics.
pub(super) fn quantile_sorted(s: &[f64], q: f64) -> f64 {
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Writes one row of model input (`window × features`) for `history` into `row`; returns the
/// row's normalisation, or `None` (row zeroed) when the window has no observed value.
pub(super) fn build_row(
    meta: &ModelMeta,
    lags: Lags,
    step: Duration,
    history: &History<'_>,
    row: &mut [f32],
    filled: &mut Vec<f64>,
    sorted: &mut Vec<f64>,
) -> Option<RowNorm> {
    let w = meta.window;
    let values = history.values;
    // Absolute index in `values` of window step j is `start + j` (negative: before the history).
    let start = values.len() as isize - w as isize;
    let at = |i: isize| -> Option<f64> {
        if i < 0 {
            return None;
        }
        values
            .get(i as usize)
            .map(|v| *v as f64)
            .filter(|v| v.is_finite())
    };
    let Some(norm) = RowNorm::new(
        meta.normalisation,
        (0..w as isize).filter_map(|j| at(start + j)),
        sorted,
    ) else {
        row.fill(0.0);
        return None;
    };

    // Gap filling: forward fill, then back-fill the leading gaps with the first observed value.
    filled.clear();
    let mut last = None;
    for j in 0..w as isize {
        last = at(start + j).or(last);
        filled.push(last.unwrap_or(f64::NAN));
    }
    let first_observed = filled.iter().copied().find(|v| !v.is_nan())?;
    for v in filled.iter_mut().take_while(|v| v.is_nan()) {
        *v = first_observed;
    }

    let step_ms = step.as_millis() as i64;
    let nf = meta.features.len();
    CLOCK.with_borrow_mut(|clock| {
        let clock = clock.window(history, step_ms, w);
        for (j, cells) in row.chunks_exact_mut(nf).enumerate() {
            let own = norm.normalise(filled[j]);
            let index = start + j as isize;
            let lag = |steps: Option<usize>| {
                steps
                    .and_then(|k| at(index - k as isize))
                    .map_or(own, |v| norm.normalise(v))
            };
            let lead = lags
                .day
                .and_then(|d| at(index + lags.lead as isize - d as isize));
            for (cell, feature) in cells.iter_mut().zip(&meta.features) {
                *cell = match feature {
                    Feature::Value => own,
                    Feature::Mask => {
                        if at(index).is_some() {
                            1.0
                        } else {
                            0.0
                        }
                    }
                    Feature::TodSin => clock[j][0],
                    Feature::TodCos => clock[j][1],
                    Feature::DowSin => clock[j][2],
                    Feature::DowCos => clock[j][3],
                    Feature::Lag1d => lag(lags.day),
                    Feature::Lag1w => lag(lags.week),
                    Feature::Lag1dLead => lead.map_or(own, |v| norm.normalise(v)),
                    Feature::Lag1dLeadMask => {
                        if lead.is_some() {
                            1.0
                        } else {
                            0.0
                        }
                    }
                };
            }
        }
    });
    Some(norm)
}

/// The calendar features of one window's steps (`[tod sin, tod cos, dow sin, dow cos]`, 0
/// where the timestamps carry no calendar meaning), kept for the window last asked for: the
/// series of a step end at the same bucket, so one computation serves the whole batch instead
/// of four trigonometric calls a step and series (4% of the 1M-series step).
#[derive(Default)]
struct Clock {
    key: Option<(i64, i64, bool)>,
    cells: Vec<[f32; 4]>,
}

thread_local! {
    static CLOCK: std::cell::RefCell<Clock> = std::cell::RefCell::default();
}

impl Clock {
    fn window(&mut self, history: &History<'_>, step_ms: i64, w: usize) -> &[[f32; 4]] {
        let key = Some((history.last_ts_ms, step_ms, history.calendar));
        if self.key != key || self.cells.len() != w {
            self.key = key;
            self.cells.clear();
            self.cells.extend((0..w).map(|j| {
                if !history.calendar {
                    return [0.0; 4];
                }
                let ts = history.last_ts_ms - (w - 1 - j) as i64 * step_ms;
                let (day, week) = (phase(ts, 0, DAY_MS), phase(ts, MONDAY_MS, WEEK_MS));
                [
                    day.sin() as f32,
                    day.cos() as f32,
                    week.sin() as f32,
                    week.cos() as f32,
                ]
            }));
        }
        &self.cells
    }
}

/// 2π · ((ts − origin) mod period) / period.
fn phase(ts_ms: i64, origin_ms: i64, period_ms: i64) -> f64 {
    let t = (ts_ms - origin_ms).rem_euclid(period_ms);
    std::f64::consts::TAU * t as f64 / period_ms as f64
}
