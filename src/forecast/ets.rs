//! `ets`: exponential smoothing (augurs' AutoETS: additive errors, trend and damping chosen
//! per series by AICc, [`SPEC`]; non-seasonal, as augurs implements no seasonal ETS), fitted
//! on the series' last [`ETS_WINDOW`] points. Fits cost milliseconds, so like MSTL a fit is a
//! path read forward until the next refit.

use augurs::ets::AutoETS;
use augurs::{Fit as _, Predict as _};

use super::model::{Ask, Entry, Fit, Gate, Listed, ModelError, Window, MAX_PAD};
use super::path::{band, interpolate, FittedPath};

/// Points a fit sees at most: the cost of AutoETS grows with them, and the level and trend
/// it estimates are local.
pub const ETS_WINDOW: usize = 720;
/// The models AutoETS chooses among: additive errors, no, additive or damped trend, no
/// season. Multiplicative errors (which AutoETS also tries on positive data) gave bands of
/// 10^13 times the series' scale 30 minutes ahead on NAB's AWS traces (docs/ACCURACY.md).
pub const SPEC: &str = "AZN";
/// Points before the first fit.
pub const ETS_MIN_POINTS: usize = 30;

/// `ets`, for one forecast entry.
#[derive(Debug, Clone)]
pub struct Ets {
    ask: Ask,
    refit_every: usize,
}

impl Ets {
    /// Refitted every `refit_every` steps; the path reaches until then (and over the padding).
    pub fn new(ask: Ask, refit_every: usize) -> Self {
        Self { ask, refit_every }
    }
}

impl Fit for Ets {
    type Fitted = FittedPath;

    fn points_needed(&self, w: &Window<'_>) -> usize {
        ETS_MIN_POINTS.saturating_sub(w.observed_count())
    }

    fn fit(&self, w: &Window<'_>) -> Result<FittedPath, ModelError> {
        let points_needed = self.points_needed(w);
        if points_needed > 0 {
            return Err(ModelError::WarmingUp { points_needed });
        }
        let tail = &w.values[w.values.len().saturating_sub(ETS_WINDOW)..];
        // Leading gaps cannot be interpolated; start at the first observed point.
        let first = tail.iter().position(|v| v.is_finite()).unwrap_or(tail.len());
        let y = interpolate(tail[first..].iter().map(|&v| v as f64).collect());
        let failed = |e: augurs::ets::Error| ModelError::Failed(format!("ets fit failed: {e}"));
        let fitted = AutoETS::new(1, SPEC).map_err(failed)?.fit(&y).map_err(failed)?;
        let (lo_q, hi_q) = self.ask.quantiles;
        let level = (hi_q - lo_q).clamp(0.01, 0.99);
        let len = self.ask.longest() + self.refit_every + MAX_PAD as usize;
        let forecast = fitted.predict(len, level).map_err(failed)?;
        let points = band(&forecast, level, self.ask.quantiles)
            .ok_or_else(|| ModelError::Failed("ets produced non-finite forecasts".into()))?;
        Ok(FittedPath::new(w.origin, points).at_horizons(self.ask.horizons.clone()))
    }

    fn keeps_fit(&self) -> bool {
        true
    }

    fn refit_due(&self, path: &FittedPath, origin: i64) -> bool {
        path.due(origin, self.refit_every)
    }
}

impl Listed for Ets {
    /// After the baselines: a model new to `auto` serves only where its backtest beat the
    /// incumbent by the margin.
    const RANK: u8 = 50;

    fn for_entry(entry: &Entry<'_>) -> Result<Self, String> {
        Ok(Self::new(entry.ask.clone(), entry.refit_every))
    }

    fn candidate(&self, history: usize, refit_every: usize) -> Option<Self> {
        (history >= ETS_MIN_POINTS).then(|| Self::new(self.ask.clone(), refit_every))
    }

    /// Not among `auto`'s candidates: scoring it was about two thirds of a choice's time
    /// (without it three times as many choices fit a step, the scale bench), and `auto`
    /// scores the same without it on every trace (docs/ACCURACY.md, 2026-12-07). An entry
    /// that names `ets` gets it.
    fn gate(&self) -> Gate {
        Gate::Never
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::Predict;
    use std::time::Duration;

    /// `ets` at horizons 1, 3 and 6 steps of `step`, band 0.1-0.9, refitted every 3 steps.
    fn ets_every(step: Duration) -> Ets {
        let ask = Ask {
            horizons: [1usize, 3, 6].into(),
            quantiles: (0.1, 0.9),
            seasons: vec![],
            step,
        };
        Ets::new(ask, 3)
    }

    /// All of `y` as a window (its prefixes are the histories at earlier origins).
    fn whole(y: &[f32], step_ms: i64) -> Window<'_> {
        Window {
            values: y,
            origin: y.len() as i64,
            pad: 0,
            step_ms,
            calendar: false,
        }
    }

    /// Real data: a week of the NASA trace in 10-minute buckets. ETS' path is read forward:
    /// its band holds the actuals about as often as it claims and its error is in the
    /// baseline's range; a series too short warms up.
    #[test]
    fn fits_nasa_and_reads_the_path_forward() {
        let per_min = crate::test_data::nasa_per_minute();
        let y: Vec<f32> = per_min
            .chunks(10)
            .take(144 * 7)
            .map(|c| c.iter().sum::<f64>() as f32)
            .collect();
        let ets = ets_every(Duration::from_secs(600));
        let whole = whole(&y, 600_000);
        let (mut inside, mut total, mut err, mut naive_err) = (0, 0, 0.0, 0.0);
        for end in (144 * 3..144 * 7 - 12).step_by(37) {
            let fit = ets.fit(&whole.prefix(end)).unwrap();
            assert!(!ets.refit_due(&fit, end as i64 + 2) && ets.refit_due(&fit, end as i64 + 3));
            let f = fit.predict(end as i64).unwrap();
            for (p, h) in f.points.iter().zip([1, 3, 6]) {
                let a = y[end + h - 1] as f64;
                inside += (p.lower <= a && a <= p.upper) as usize;
                total += 1;
                err += (p.yhat - a).abs();
                naive_err += (y[end - 1] as f64 - a).abs();
            }
        }
        let coverage = inside as f64 / total as f64;
        assert!(coverage > 0.5, "an 80% band held {coverage:.2} of the actuals");
        assert!(err < naive_err * 1.2, "ets mae {err} vs naive {naive_err}");
        assert_eq!(
            ets.fit(&whole.prefix(10)).unwrap_err(),
            ModelError::WarmingUp { points_needed: 20 }
        );
    }

    /// Real data: NAB's `ec2_network_in_5abac7` (AWS network bytes every 5 minutes, bursts of
    /// 100x its level). With multiplicative errors allowed, AutoETS' 80% band half an hour
    /// ahead was 10^14 times the series' scale there; with additive errors the band stays
    /// within a few times the range of the points it was fitted on.
    #[test]
    fn bands_stay_within_reach_on_bursty_bytes() {
        let y = crate::test_data::nab("realAWSCloudwatch/ec2_network_in_5abac7.csv");
        let ets = ets_every(Duration::from_secs(300));
        let whole = whole(&y, 300_000);
        let from = y.len() * 4 / 5;
        for end in (from..y.len()).step_by(47) {
            let seen = &y[end.saturating_sub(ETS_WINDOW)..end];
            let max = seen.iter().copied().fold(f32::MIN, f32::max) as f64;
            let min = seen.iter().copied().fold(f32::MAX, f32::min) as f64;
            let f = ets.fit(&whole.prefix(end)).unwrap().predict(end as i64).unwrap();
            for p in &f.points {
                assert!(
                    p.upper - p.lower <= 4.0 * (max - min),
                    "at {end}: band {:.3e}..{:.3e}, points in {min:.3e}..{max:.3e}",
                    p.lower,
                    p.upper
                );
            }
        }
    }
}
