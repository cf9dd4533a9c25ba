//! The fit of a model that forecasts a path ahead and is read forward between refits
//! (`mstl`, `ets`): one point per step from the fit's origin, read at the entry's horizons
//! from later origins; and what such models share (gap interpolation, the band from a
//! symmetric interval at the entry's quantiles).

use std::sync::Arc;

use super::model::{Forecast, ModelError, Predict};
use crate::snapshot::Point;
use crate::stats::normal_quantile;

/// A forecast path: `points[i]` is the forecast for bucket `origin + i + 1`, read at
/// `horizons`.
#[derive(Debug, Clone)]
pub struct FittedPath {
    pub horizons: Arc<[usize]>,
    pub origin: i64,
    pub points: Vec<Point>,
}

impl FittedPath {
    /// A path from `origin`, read at no horizon yet.
    pub fn new(origin: i64, points: Vec<Point>) -> Self {
        Self {
            horizons: Arc::from(Vec::new()),
            origin,
            points,
        }
    }

    /// The same path, read at `horizons`.
    pub fn at_horizons(self, horizons: Arc<[usize]>) -> Self {
        Self { horizons, ..self }
    }

    /// Forecast for bucket `target`, if the path reaches it.
    pub fn at(&self, target: i64) -> Option<Point> {
        let i = target - self.origin - 1;
        if i < 0 {
            return None;
        }
        self.points.get(i as usize).copied()
    }

    /// Whether the path has a point at every horizon from `origin`.
    pub fn reaches(&self, origin: i64) -> bool {
        self.horizons
            .iter()
            .all(|h| self.at(origin + *h as i64).is_some())
    }

    /// Whether a model refitted every `refit_every` steps should replace this fit at
    /// `origin`.
    pub fn due(&self, origin: i64, refit_every: usize) -> bool {
        origin - self.origin >= refit_every as i64 || !self.reaches(origin)
    }
}

impl Predict for FittedPath {
    fn predict(&self, origin: i64) -> Result<Forecast, ModelError> {
        let points = self
            .horizons
            .iter()
            .map(|h| self.at(origin + *h as i64))
            .collect::<Option<Vec<Point>>>()
            .ok_or(ModelError::OutOfReach)?;
        Ok(Forecast { points })
    }

    fn fitted_at(&self) -> i64 {
        self.origin
    }
}

/// The band at `quantiles` from augurs' forecast with a central interval at `level`
/// (rescaled, so the band may be asymmetric); `None` when a point is not finite.
pub fn band(forecast: &augurs::Forecast, level: f64, quantiles: (f64, f64)) -> Option<Vec<Point>> {
    let intervals = forecast.intervals.as_ref();
    let z_level = normal_quantile(0.5 + level / 2.0);
    let (z_lo, z_hi) = (normal_quantile(quantiles.0), normal_quantile(quantiles.1));
    let mut points = Vec::with_capacity(forecast.point.len());
    for (i, &yhat) in forecast.point.iter().enumerate() {
        let (lower, upper) = match intervals {
            Some(iv) => {
                let half = ((iv.upper[i] - iv.lower[i]) / 2.0).abs();
                let sigma = if z_level > 0.0 { half / z_level } else { 0.0 };
                (yhat + z_lo * sigma, yhat + z_hi * sigma)
            }
            None => (yhat, yhat),
        };
        let p = Point { yhat, lower, upper }.ordered();
        if !p.is_finite() {
            return None;
        }
        points.push(p);
    }
    Some(points)
}

/// Linear interpolation over gaps; trailing gaps carry the last value.
pub fn interpolate(mut y: Vec<f64>) -> Vec<f64> {
    let mut last: Option<usize> = None;
    for i in 0..y.len() {
        if y[i].is_finite() {
            if let Some(l) = last {
                if i > l + 1 {
                    let (a, b) = (y[l], y[i]);
                    for (k, v) in y[l + 1..i].iter_mut().enumerate() {
                        *v = a + (b - a) * (k + 1) as f64 / (i - l) as f64;
                    }
                }
            }
            last = Some(i);
        }
    }
    if let Some(l) = last {
        let v = y[l];
        y[l + 1..].iter_mut().for_each(|x| *x = v);
    }
    y
}
