//! Baselines that need no fitting: `naive` and `seasonal_naive`, with empirical bands.
//!
//! The band at horizon h comes from the quantiles of the errors the same rule would have
//! made on the series' own recent past (the last [`ERROR_WINDOW`] points): calibrated by
//! construction, and free of distribution assumptions. Gaps are skipped. While a young
//! series has too few h-step errors, `naive` scales its one-step errors by sqrt(h) (the
//! random-walk rule), so a series is forecast a few steps after it first appears.

use super::{Point, MIN_POINTS};

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

/// The `q` quantile (linear interpolation) of `xs`, reordering it. `xs` must not be empty.
pub fn quantile_in_place(xs: &mut [f32], q: f64) -> f64 {
    let n = xs.len();
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let i = pos.floor() as usize;
    let frac = pos - i as f64;
    let (_, lo, upper) = xs.select_nth_unstable_by(i, f32::total_cmp);
    let lo = *lo as f64;
    if frac == 0.0 || upper.is_empty() {
        return lo;
    }
    let hi = upper.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    lo + frac * (hi - lo)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let mut xs = [4.0f32, 1.0, 3.0, 2.0];
        assert_eq!(quantile_in_place(&mut xs, 0.0), 1.0);
        assert_eq!(quantile_in_place(&mut xs, 1.0), 4.0);
        assert!((quantile_in_place(&mut xs, 0.5) - 2.5).abs() < 1e-9);
    }

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
