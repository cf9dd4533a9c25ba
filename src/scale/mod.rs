//! Replica recommendations: the policies (pure functions of the observed load and the
//! forecast), the agent's own scale-in rule ([`Recommender`]), and the Kubernetes HPA
//! controller ([`Hpa`]) that `promcast simulate` runs downstream, as KEDA/HPA would in a
//! cluster.
//!
//! Semantics (every predictive policy): `desired = max(reactive, predictive)`, where
//! `reactive = observed / capacity` and `predictive` is the policy's replicas for the load
//! forecast `lead_time` ahead; scale-in happens only when the maximum of the recommendations
//! over the `scale_down_stabilization` window allows it, i.e. when both the observed load and
//! the forecast have allowed it for that long.

use std::collections::VecDeque;
use std::time::Duration;

pub use crate::config::{Policy, PolicyParams};
use crate::forecast::normal_quantile;
use crate::snapshot::Point;

mod targets;
pub use targets::{band_at, Targets};

/// The load a forecast band implies at quantile `q` (≥ 0.5): the median plus the upper
/// half-band scaled by the normal quantile ratio `z(q) / z(upper)`, so any level can be asked
/// of a band given at `upper` (e.g. 0.95 of a 0.1/0.9 band). Below 0.5 the lower half is used.
pub fn band_quantile(p: &Point, q: f64, lower_q: f64, upper_q: f64) -> f64 {
    if (q - 0.5).abs() < 1e-12 {
        return p.yhat;
    }
    if q > 0.5 {
        let z = normal_quantile(q) / normal_quantile(upper_q);
        p.yhat + (p.upper - p.yhat) * z
    } else {
        let z = normal_quantile(q) / normal_quantile(lower_q);
        p.yhat - (p.yhat - p.lower) * z
    }
}

/// The load a predictive policy plans for, from the band `lead_time` ahead: the median
/// (`ceiling`, `incremental`), the buffered median (`buffered`) or the band quantile
/// (`quantile`). For `static` and `reactive`, which use no forecast: the median.
pub fn predicted_load(params: &PolicyParams, p: &Point, lower_q: f64, upper_q: f64) -> f64 {
    match params.policy {
        Policy::Buffered => p.yhat * (1.0 + params.margin),
        Policy::Quantile => band_quantile(p, params.quantile, lower_q, upper_q),
        Policy::Ceiling | Policy::Incremental | Policy::Static | Policy::Reactive => p.yhat,
    }
}

/// Raw desired replicas (before clamping and stabilisation) for one decision.
///
/// `observed`: the newest observed load (`None`: unknown). `forecast`: the band `lead_time`
/// ahead with its quantile levels. `current`: replicas now (for `incremental`). Returns `None`
/// when nothing is known (no observation and, for predictive policies, no forecast).
pub fn recommend(
    params: &PolicyParams,
    observed: Option<f64>,
    forecast: Option<(Point, f64, f64)>,
    current: u32,
) -> Option<f64> {
    let cap = params.capacity.max(f64::MIN_POSITIVE);
    let reactive = observed
        .filter(|v| v.is_finite())
        .map(|v| (v / cap).max(0.0));
    let predictive = || -> Option<f64> {
        let (p, lo_q, hi_q) = forecast?;
        if !p.is_finite() {
            return None;
        }
        let target = (predicted_load(params, &p, lo_q, hi_q) / cap).max(0.0);
        Some(if params.policy == Policy::Incremental {
            let step = params.max_step.max(1) as f64;
            let cur = current as f64;
            cur + (target.ceil() - cur).clamp(-step, step)
        } else {
            target
        })
    };
    match params.policy {
        Policy::Static => Some(params.static_replicas as f64),
        Policy::Reactive => reactive,
        _ => match (reactive, predictive()) {
            (Some(r), Some(p)) => Some(r.max(p)),
            (r, p) => r.or(p),
        },
    }
}

/// The agent's recommendation over time: raw desired replicas, rounded up and clamped, with
/// scale-in only to the maximum of the recommendations of the last `stabilization`.
#[derive(Debug, Clone)]
pub struct Recommender {
    stabilization_ms: i64,
    min: u32,
    max: u32,
    history: VecDeque<(i64, u32)>,
}

impl Recommender {
    pub fn new(stabilization: Duration, min: u32, max: u32) -> Self {
        Self {
            stabilization_ms: stabilization.as_millis() as i64,
            min,
            max: max.max(min),
            history: VecDeque::new(),
        }
    }

    /// Records `raw` (desired replicas) at `now_ms` and returns the stabilised recommendation.
    pub fn update(&mut self, now_ms: i64, raw: f64) -> u32 {
        let r = (raw.ceil().max(0.0) as u32).clamp(self.min, self.max);
        self.history.push_back((now_ms, r));
        while self
            .history
            .front()
            .is_some_and(|(t, _)| *t < now_ms - self.stabilization_ms)
        {
            self.history.pop_front();
        }
        self.history.iter().map(|(_, r)| *r).max().unwrap_or(r)
    }
}

/// The Kubernetes HPA controller as documented (autoscaling/v2, default behaviour): every
/// sync period `desired = ceil(current · ratio)` where `ratio = metric / target`, no change
/// within the 10% tolerance, scale-down stabilised to the maximum recommendation of the last
/// 5 minutes, scale-up limited per period to `max(100% of current, 4 pods)`, clamped to
/// min/max. The metric here is already "replicas wanted" (a load over per-replica capacity,
/// or promcast's recommendation with a target of 1 per replica, as KEDA sets it up).
#[derive(Debug, Clone)]
pub struct Hpa {
    pub tolerance: f64,
    pub stabilization_ms: i64,
    pub up_percent: f64,
    pub up_pods: u32,
    min: u32,
    max: u32,
    history: VecDeque<(i64, u32)>,
}

/// The HPA's sync period (`--horizontal-pod-autoscaler-sync-period`).
pub const HPA_SYNC: Duration = Duration::from_secs(15);

impl Hpa {
    pub fn new(min: u32, max: u32, stabilization: Duration) -> Self {
        Self {
            tolerance: 0.1,
            stabilization_ms: stabilization.as_millis() as i64,
            up_percent: 100.0,
            up_pods: 4,
            min,
            max: max.max(min),
            history: VecDeque::new(),
        }
    }

    /// One reconcile at `now_ms`: `wanted` is the metric expressed in replicas (metric /
    /// per-replica target), `None` when the metric is unavailable (the HPA then keeps the
    /// current count). Returns the new replica count.
    pub fn reconcile(&mut self, now_ms: i64, current: u32, wanted: Option<f64>) -> u32 {
        let Some(wanted) = wanted.filter(|w| w.is_finite()) else {
            return current;
        };
        let current_eff = current.max(1) as f64;
        let ratio = wanted / current_eff;
        let mut rec = if current > 0 && (ratio - 1.0).abs() <= self.tolerance {
            current
        } else {
            (wanted.ceil().max(0.0)) as u32
        };
        rec = rec.clamp(self.min, self.max);
        self.history.push_back((now_ms, rec));
        while self
            .history
            .front()
            .is_some_and(|(t, _)| *t <= now_ms - self.stabilization_ms)
        {
            self.history.pop_front();
        }
        // scale-down stabilisation: the highest recommendation in the window
        if rec < current {
            rec = self
                .history
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(rec)
                .min(current);
        }
        // scale-up rate limit per sync period
        if rec > current {
            let by_percent = (current as f64 * (1.0 + self.up_percent / 100.0)).ceil() as u32;
            let limit = by_percent.max(current + self.up_pods);
            rec = rec.min(limit);
        }
        rec.clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(policy: Policy) -> PolicyParams {
        PolicyParams {
            policy,
            capacity: 100.0,
            min_replicas: 1,
            max_replicas: 50,
            margin: 0.15,
            quantile: 0.9,
            max_step: 2,
            static_replicas: 7,
        }
    }

    #[test]
    fn policies_by_hand() {
        let band = Point {
            yhat: 420.0,
            lower: 300.0,
            upper: 560.0,
        };
        let f = Some((band, 0.1, 0.9));
        let r = |p, obs| recommend(&params(p), obs, f, 3).unwrap();
        assert_eq!(r(Policy::Static, Some(50.0)), 7.0);
        assert_eq!(r(Policy::Reactive, Some(250.0)), 2.5);
        assert_eq!(r(Policy::Ceiling, Some(250.0)), 4.2);
        assert!((r(Policy::Buffered, Some(250.0)) - 4.83).abs() < 1e-9);
        // quantile 0.9 of a 0.1/0.9 band is its upper bound
        assert!((r(Policy::Quantile, Some(250.0)) - 5.6).abs() < 1e-9);
        // incremental: from 3 towards ceil(4.2) = 5, at most 2 a decision
        assert_eq!(r(Policy::Incremental, Some(250.0)), 5.0);
        // max(reactive, predictive): an observed load above the forecast wins
        assert_eq!(r(Policy::Ceiling, Some(900.0)), 9.0);
        // no forecast: the reactive part alone; nothing known: None
        assert_eq!(
            recommend(&params(Policy::Quantile), Some(250.0), None, 3),
            Some(2.5)
        );
        assert_eq!(recommend(&params(Policy::Quantile), None, None, 3), None);
        // band quantiles: 0.95 lies beyond the 0.9 bound, 0.5 is the median
        assert!(band_quantile(&band, 0.95, 0.1, 0.9) > 560.0);
        assert_eq!(band_quantile(&band, 0.5, 0.1, 0.9), 420.0);
    }

    #[test]
    fn recommender_scales_in_only_after_the_window() {
        let mut r = Recommender::new(Duration::from_secs(300), 2, 50);
        assert_eq!(r.update(0, 9.2), 10);
        assert_eq!(r.update(60_000, 3.0), 10);
        assert_eq!(r.update(240_000, 3.0), 10);
        assert_eq!(r.update(301_000, 3.0), 3);
        assert_eq!(r.update(302_000, 0.2), 3);
        assert_eq!(r.update(900_000, 0.2), 2, "min_replicas");
        assert_eq!(r.update(960_000, 80.0), 50, "max_replicas");
    }

    #[test]
    fn hpa_tolerance_rate_limit_and_stabilisation() {
        let mut h = Hpa::new(1, 100, Duration::from_secs(300));
        // within 10%: no change
        assert_eq!(h.reconcile(0, 10, Some(10.8)), 10);
        // up: limited to max(2x, +4) per period
        assert_eq!(h.reconcile(15_000, 10, Some(45.0)), 20);
        assert_eq!(h.reconcile(30_000, 20, Some(45.0)), 40);
        assert_eq!(h.reconcile(45_000, 40, Some(45.0)), 45);
        // down: held at the window's highest recommendation for 5 minutes
        assert_eq!(h.reconcile(60_000, 45, Some(12.0)), 45);
        assert_eq!(h.reconcile(300_000, 45, Some(12.0)), 45);
        assert_eq!(h.reconcile(346_000, 45, Some(12.0)), 12);
        // unknown metric: keep
        assert_eq!(h.reconcile(361_000, 12, None), 12);
    }
}
