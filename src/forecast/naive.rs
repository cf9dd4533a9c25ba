//! `naive`, and the lagged rule with empirical bands it shares with `seasonal_naive`.
//!
//! The band at horizon h comes from the quantiles of the errors the same rule would have
//! made on the series' own recent past (the last [`ERROR_WINDOW`] points): calibrated by
//! construction, and free of distribution assumptions. Gaps are skipped. While a young
//! series has too few h-step errors, `naive` scales its one-step errors by sqrt(h) (the
//! random-walk rule), so a series is forecast a few steps after it first appears.

use std::cell::RefCell;

use super::model::{
    Ask, AtOrigin, Entry, Fit, Forecast, Listed, ModelError, Window, MIN_POINTS,
};
use crate::stats::quantile_in_place;
use crate::snapshot::Point;

/// Points of recent history whose errors set the band.
pub const ERROR_WINDOW: usize = 720;
/// Errors needed before a band is trusted.
pub const MIN_ERRORS: usize = 8;

/// Last finite value and its index.
pub fn last_observed(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .enumerate()
        .rev()
        .find(|(_, v)| v.is_finite())
        .map(|(i, v)| (i, *v))
}

/// Forecasts `steps_ahead` from the end of `values` by repeating the value `lag` steps
/// before the target (`lag = 1` is naive: the last value; a season for seasonal naive).
/// Returns `None` when there is no value to repeat or too few errors for a band.
pub fn lagged_forecast(
    values: &[f32],
    lag: usize,
    steps_ahead: usize,
    quantiles: (f64, f64),
    errors: &mut Vec<f32>,
) -> Option<Point> {
    let n = values.len();
    if n == 0 || lag == 0 {
        return None;
    }
    // The value repeated: the one k*lag steps before the target, k the fewest whole lags
    // that reach back into the history.
    let k = steps_ahead.div_ceil(lag);
    let back = k * lag - steps_ahead; // steps before the last point
    let base = if lag == 1 {
        last_observed(values)?.1
    } else {
        let idx = (n - 1).checked_sub(back)?;
        let v = values[idx];
        if v.is_finite() {
            v
        } else {
            // A gap one season ago: fall back to the nearest observed point before it.
            last_observed(&values[..=idx])?.1
        }
    };
    // Errors of the same rule on the recent past: y[t] - y[t - k*lag].
    let dist = k * lag;
    errors.clear();
    let start = n.saturating_sub(ERROR_WINDOW).max(dist);
    for t in start..n {
        let (a, b) = (values[t], values[t - dist]);
        if a.is_finite() && b.is_finite() {
            errors.push(a - b);
        }
    }
    let mut scale = 1.0;
    if errors.len() < MIN_ERRORS {
        if lag != 1 || dist == 1 {
            return None;
        }
        errors.clear();
        for t in n.saturating_sub(ERROR_WINDOW).max(1)..n {
            let (a, b) = (values[t], values[t - 1]);
            if a.is_finite() && b.is_finite() {
                errors.push(a - b);
            }
        }
        if errors.len() + 1 < MIN_POINTS {
            return None;
        }
        scale = (steps_ahead as f64).sqrt();
    }
    let lo = quantile_in_place(errors, quantiles.0) * scale;
    let hi = quantile_in_place(errors, quantiles.1) * scale;
    let mid = quantile_in_place(errors, 0.5) * scale;
    let base = base as f64;
    Some(
        Point {
            // The median error corrects a drift the rule would otherwise miss.
            yhat: base + mid,
            lower: base + lo,
            upper: base + hi,
        }
        .ordered(),
    )
}

/// Points an entry needs before a lagged rule with lag `lag` has a band at every horizon.
pub fn needed_for_lag(ask: &Ask, lag: usize) -> usize {
    ask.longest().div_ceil(lag) * lag + MIN_ERRORS + 1
}

thread_local! {
    /// The rules' recent errors, reused across series.
    static ERRORS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The lagged rule at every horizon of `ask` from `origin`; warming up while a horizon has
/// too few errors for a band.
pub fn lagged_fit(values: &[f32], origin: i64, lag: usize, ask: &Ask) -> Result<AtOrigin, ModelError> {
    let points = ERRORS.with_borrow_mut(|errors| {
        ask.horizons
            .iter()
            .map(|&h| {
                lagged_forecast(values, lag, h, ask.quantiles, errors).unwrap_or(Point {
                    yhat: f64::NAN,
                    lower: f64::NAN,
                    upper: f64::NAN,
                })
            })
            .collect()
    });
    // A horizon the series' own errors cannot band yet.
    let forecast = Forecast::finite(points, || ModelError::WarmingUp {
        points_needed: MIN_ERRORS,
    })?;
    Ok(AtOrigin::new(origin, forecast))
}

/// `naive`: the last observed value, with a band from the series' own past changes.
#[derive(Debug, Clone)]
pub struct Naive {
    ask: Ask,
}

impl Naive {
    pub fn new(ask: Ask) -> Self {
        Self { ask }
    }
}

impl Fit for Naive {
    type Fitted = AtOrigin;

    /// Naive starts early: its band falls back to scaled one-step errors.
    fn points_needed(&self, w: &Window<'_>) -> usize {
        MIN_POINTS.saturating_sub(w.values.len())
    }

    fn fit(&self, w: &Window<'_>) -> Result<AtOrigin, ModelError> {
        let points_needed = self.points_needed(w);
        if points_needed > 0 {
            return Err(ModelError::WarmingUp { points_needed });
        }
        lagged_fit(w.values, w.origin, 1, &self.ask)
    }
}


impl Listed for Naive {
    const RANK: u8 = 40;
    const FALLBACK: bool = true;

    fn for_entry(entry: &Entry<'_>) -> Result<Self, String> {
        Ok(Self::new(entry.ask.clone()))
    }

    fn candidate(&self, _history: usize, _refit_every: usize) -> Option<Self> {
        Some(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_repeats_last_value_with_band_from_changes() {
        // A random walk with steps of exactly +1 or -1: 1-step errors are +-1.
        let values: Vec<f32> = (0..200)
            .map(|i| if i % 2 == 0 { 10.0 } else { 11.0 })
            .collect();
        let mut errors = Vec::new();
        let p = lagged_forecast(&values, 1, 1, (0.1, 0.9), &mut errors).unwrap();
        assert!(
            (p.lower - 10.0).abs() < 1e-6 && (p.upper - 12.0).abs() < 1e-6,
            "{p:?}"
        );
        // Two steps ahead the alternation cancels: errors are all 0.
        let p = lagged_forecast(&values, 1, 2, (0.1, 0.9), &mut errors).unwrap();
        assert_eq!((p.lower, p.yhat, p.upper), (11.0, 11.0, 11.0));
    }

    #[test]
    fn seasonal_naive_repeats_the_season() {
        let season = 24;
        let values: Vec<f32> = (0..24 * 5).map(|i| ((i % season) * 10) as f32).collect();
        let mut errors = Vec::new();
        for h in [1, 5, 24, 30] {
            let p = lagged_forecast(&values, season, h, (0.1, 0.9), &mut errors).unwrap();
            let want = (((values.len() - 1 + h) % season) * 10) as f64;
            assert_eq!(p.yhat, want, "h={h}");
            assert_eq!(p.upper - p.lower, 0.0, "a perfect season has no error");
        }
    }

    #[test]
    fn gaps_are_skipped_and_too_little_is_none() {
        let mut values: Vec<f32> = (0..50).map(|i| i as f32).collect();
        values[49] = f32::NAN;
        values[10] = f32::NAN;
        let mut errors = Vec::new();
        let p = lagged_forecast(&values, 1, 1, (0.1, 0.9), &mut errors).unwrap();
        assert_eq!(p.yhat, 48.0 + 1.0, "last observed plus the typical change");
        assert!(lagged_forecast(&values[..5], 1, 1, (0.1, 0.9), &mut errors).is_none());
    }

    #[test]
    fn young_series_get_a_sqrt_h_band() {
        // Twelve points: too few 30-step errors, enough one-step ones (all +1 or -1... here +2).
        let values: Vec<f32> = (0..12).map(|i| (i * 2) as f32).collect();
        let mut errors = Vec::new();
        let p = lagged_forecast(&values, 1, 25, (0.1, 0.9), &mut errors).unwrap();
        // Median one-step change 2, scaled by sqrt(25) = 5.
        assert_eq!(p.yhat, 22.0 + 10.0);
        assert!(lagged_forecast(&values[..4], 1, 25, (0.1, 0.9), &mut errors).is_none());
        assert!(
            lagged_forecast(&values, 24, 25, (0.1, 0.9), &mut errors).is_none(),
            "seasonal needs its own errors"
        );
    }
}
