//! MSTL (multiple seasonal-trend decomposition by LOESS) with an AutoETS trend, via augurs.
//!
//! Fitting costs tens of milliseconds per series, so a fit produces a *path*: forecasts for
//! every step from the fit's origin up to the longest horizon plus the refit interval. The
//! loop keeps the fit ([`Fit::keeps_fit`]) and reads the path forward until the next refit.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit as _, Predict as _};

use super::model::{Ask, Entry, Fit, Gate, Listed, ModelError, Window, MAX_PAD};
use super::path::{band, interpolate, FittedPath};

#[derive(Debug, thiserror::Error)]
pub enum MstlError {
    #[error("mstl needs two full seasons of history")]
    TooShort,
    #[error("mstl fit failed: {0}")]
    Fit(String),
    #[error("mstl produced non-finite forecasts")]
    NonFinite,
}

/// Seasons (in steps) usable with `n` points: two full cycles each.
pub fn usable_seasons(seasons: &[usize], n: usize) -> Vec<usize> {
    seasons
        .iter()
        .copied()
        .filter(|&p| p >= 2 && n >= 2 * p)
        .collect()
}

/// Fits on `values` (oldest to newest; NaN gaps are interpolated) whose last point is
/// bucket `origin`, and forecasts `len` steps with the band at `quantiles`.
pub fn fit_path(
    values: &[f32],
    origin: i64,
    seasons: &[usize],
    len: usize,
    quantiles: (f64, f64),
) -> Result<FittedPath, MstlError> {
    // Leading gaps cannot be interpolated; start at the first observed point.
    let first = values
        .iter()
        .position(|v| v.is_finite())
        .ok_or(MstlError::TooShort)?;
    let y: Vec<f64> = values[first..].iter().map(|&v| v as f64).collect();
    let periods = usable_seasons(seasons, y.len());
    if periods.is_empty() {
        return Err(MstlError::TooShort);
    }
    let y = interpolate(y);
    // MSTL's interval is central; the band's quantiles give its half-widths separately.
    let (lo_q, hi_q) = quantiles;
    let level = (hi_q - lo_q).clamp(0.01, 0.99);
    let trend = AutoETS::non_seasonal().into_trend_model();
    let fitted = MSTLModel::new(periods, trend)
        .fit(&y)
        .map_err(|e| MstlError::Fit(e.to_string()))?;
    let forecast = fitted
        .predict(len, level)
        .map_err(|e| MstlError::Fit(e.to_string()))?;
    let points = band(&forecast, level, quantiles).ok_or(MstlError::NonFinite)?;
    Ok(FittedPath::new(origin, points))
}

/// `mstl`, for one forecast entry.
#[derive(Debug, Clone)]
pub struct Mstl {
    ask: Ask,
    refit_every: usize,
    /// Steps a path reaches beyond the longest horizon.
    extra: usize,
}

impl Mstl {
    /// The agent's MSTL: refitted every `refit_every` steps, its path reaching far enough to
    /// be read forward until then (and over the padding towards now).
    pub fn new(ask: Ask, refit_every: usize) -> Self {
        Self {
            ask,
            refit_every,
            extra: refit_every + MAX_PAD as usize,
        }
    }

    /// One fit per origin, read at that origin only (a backtest's).
    pub fn once(ask: Ask) -> Self {
        Self {
            ask,
            refit_every: 1,
            extra: 0,
        }
    }

    /// The seasons usable with `n` points of history.
    pub fn usable(&self, n: usize) -> Vec<usize> {
        usable_seasons(&self.ask.seasons, n)
    }
}

impl Fit for Mstl {
    type Fitted = FittedPath;

    fn points_needed(&self, w: &Window<'_>) -> usize {
        if !self.usable(w.values.len()).is_empty() {
            return 0;
        }
        // Never 0 here: an entry without seasons never has MSTL ready.
        let need = self.ask.seasons.first().map_or(0, |p| 2 * p);
        need.saturating_sub(w.values.len()).max(1)
    }

    fn fit(&self, w: &Window<'_>) -> Result<FittedPath, ModelError> {
        let path = fit_path(
            w.values,
            w.origin,
            &self.ask.seasons,
            self.ask.longest() + self.extra,
            self.ask.quantiles,
        )
        .map_err(|e| ModelError::Failed(e.to_string()))?;
        Ok(path.at_horizons(self.ask.horizons.clone()))
    }

    fn keeps_fit(&self) -> bool {
        true
    }

    fn refit_due(&self, path: &FittedPath, origin: i64) -> bool {
        path.due(origin, self.refit_every)
    }
}

impl Listed for Mstl {
    const RANK: u8 = 20;

    fn for_entry(entry: &Entry<'_>) -> Result<Self, String> {
        Ok(Self::new(entry.ask.clone(), entry.refit_every))
    }

    fn candidate(&self, history: usize, refit_every: usize) -> Option<Self> {
        let m = Self::new(self.ask.clone(), refit_every);
        (!m.usable(history).is_empty()).then_some(m)
    }

    /// The most expensive model to score: only where the season pays.
    fn gate(&self) -> Gate {
        Gate::WhereSeasonPays
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_gaps() {
        let y = interpolate(vec![1.0, f64::NAN, f64::NAN, 4.0, f64::NAN]);
        assert_eq!(y, vec![1.0, 2.0, 3.0, 4.0, 4.0]);
    }

    #[test]
    fn fits_a_seasonal_series_and_reads_forward() {
        // Real data: NASA HTTP requests per minute, summed into 10-minute buckets; 16 origins
        // over a week, each with 3 days of history, forecasting 1 hour ahead.
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/nasa_http_1995/nasa_requests_per_minute.csv"
        ))
        .expect("../shared/data is missing: the NASA trace is needed for this test");
        let per_min: Vec<f32> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(1)?.trim().parse().ok())
            .collect();
        let y: Vec<f32> = per_min
            .chunks(10)
            .take(144 * 10)
            .map(|c| c.iter().sum())
            .collect();
        let (mut inside, mut total, mut err, mut naive_err) = (0, 0, 0.0, 0.0);
        for k in 0..16 {
            let end = 144 * 3 + k * 53;
            let train = &y[end - 144 * 3..end];
            let path = fit_path(train, 100, &[144], 6, (0.1, 0.9)).unwrap();
            assert_eq!(path.points.len(), 6);
            assert!(path.at(100).is_none() && path.at(107).is_none());
            let last = *train.last().unwrap() as f64;
            for i in 0..6 {
                let p = path.at(101 + i as i64).unwrap();
                assert!(p.lower <= p.yhat && p.yhat <= p.upper, "{p:?}");
                let a = y[end + i] as f64;
                inside += (p.lower <= a && a <= p.upper) as usize;
                total += 1;
                err += (p.yhat - a).abs();
                naive_err += (last - a).abs();
            }
        }
        let coverage = inside as f64 / total as f64;
        eprintln!(
            "coverage {coverage:.2}, mae mstl {:.1}, naive {:.1}",
            err / total as f64,
            naive_err / total as f64
        );
        assert!(
            coverage > 0.4,
            "an 80% band held only {coverage:.2} of the actuals"
        );
        assert!(
            err < naive_err * 1.25,
            "mstl mae {err} vs naive {naive_err}"
        );
    }

    #[test]
    fn too_short_is_an_error() {
        let y = vec![1.0f32; 30];
        assert!(matches!(
            fit_path(&y, 0, &[24], 5, (0.1, 0.9)),
            Err(MstlError::TooShort)
        ));
    }
}
