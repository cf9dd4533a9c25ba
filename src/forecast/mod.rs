//! Forecasting: the models, per-series state, and the loop that runs them.
//!
//! Models answer the same question: given a series' ring (oldest to newest, NaN for gaps)
//! and the forecast entry's horizons, what is the median and the band at each horizon?
//! - `naive`: the last value; band from the empirical quantiles of the series' own past
//!   h-step changes.
//! - `seasonal_naive`: the value one season earlier; band from past seasonal errors.
//! - `mstl`: augurs' MSTL decomposition with an AutoETS trend, refitted every
//!   `refit_every` and read forward between refits (forecasts carry their age).
//! - `lstm`: an ONNX model run by tract ([`neural`]), batched.
//!
//! [`scheduler`] runs them once per step on a dedicated thread and publishes an
//! [`crate::export::Snapshot`].

pub mod baseline;
pub mod mstl;
pub mod neural;
pub mod scheduler;

use std::fmt;

/// A model that actually produced a forecast (`auto` resolves to one of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Naive,
    SeasonalNaive,
    Mstl,
    Lstm,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Naive => "naive",
            ModelKind::SeasonalNaive => "seasonal_naive",
            ModelKind::Mstl => "mstl",
            ModelKind::Lstm => "lstm",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a series stands with the forecast loop.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SeriesState {
    /// Not enough history yet for the configured model.
    WarmingUp {
        for_model: &'static str,
        points_needed: usize,
    },
    Ready,
    /// The model failed on this series; the reason is kept until it succeeds again.
    Failed {
        reason: String,
    },
    /// A staleness marker ended the series' run; no forecast until it resumes.
    Stale,
}

impl SeriesState {
    pub fn index(&self) -> usize {
        match self {
            SeriesState::WarmingUp { .. } => 0,
            SeriesState::Ready => 1,
            SeriesState::Failed { .. } => 2,
            SeriesState::Stale => 3,
        }
    }
}

/// Median and band at one horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub yhat: f64,
    pub lower: f64,
    pub upper: f64,
}

impl Point {
    pub fn is_finite(&self) -> bool {
        self.yhat.is_finite() && self.lower.is_finite() && self.upper.is_finite()
    }

    /// Keeps lower <= yhat <= upper whatever the model produced.
    pub fn ordered(mut self) -> Self {
        self.lower = self.lower.min(self.yhat);
        self.upper = self.upper.max(self.yhat);
        self
    }
}

/// Minimum points before any model forecasts a series.
pub const MIN_POINTS: usize = 6;

/// Standard-normal quantile (Acklam's rational approximation, |error| < 1.2e-9), used to
/// turn a band's quantiles into the central coverage level MSTL asks for.
#[allow(clippy::excessive_precision)]
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let lo = 0.02425;
    if p < lo {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - lo {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.9) - 1.281_551_565_5).abs() < 1e-8);
        assert!((normal_quantile(0.1) + 1.281_551_565_5).abs() < 1e-8);
        assert!(normal_quantile(0.5).abs() < 1e-12);
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-8);
    }
}
