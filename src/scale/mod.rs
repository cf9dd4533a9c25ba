//! Replica recommendations: the load a policy reads off a forecast band ([`predicted_load`]),
//! one target's decisions over time ([`Scaler`], shared by the agent and `promcast
//! simulate`), the agent's `scaling:` targets ([`Targets`]), and the Kubernetes HPA
//! controller ([`Hpa`]) that `promcast simulate` runs downstream, as KEDA/HPA would in a
//! cluster.

use std::collections::VecDeque;
use std::time::Duration;

pub use crate::config::{PolicyParams, ScaleIn, Sizing};
use crate::policy::Band;
pub use crate::policy::Policy;
use crate::snapshot::Point;

mod scaler;
mod targets;
pub use crate::snapshot::Reason;
pub use scaler::{Decision, Outlook, Scaler};
pub use targets::Targets;

/// A band and its quantile levels, as the policies read it.
fn band(p: &Point, lower_q: f64, upper_q: f64) -> Band {
    Band {
        yhat: p.yhat,
        lower: p.lower,
        upper: p.upper,
        lower_q,
        upper_q,
    }
}

/// The load a forecast band implies at quantile `q` ([`Band::quantile`]).
pub fn band_quantile(p: &Point, q: f64, lower_q: f64, upper_q: f64) -> f64 {
    band(p, lower_q, upper_q).quantile(q)
}

/// The load a policy plans for, from the band `lead_time` ahead ([`Policy::load`]): the
/// median (`ceiling`, `incremental`), the buffered median (`buffered`) or the band quantile
/// (`quantile`). For `static` and `reactive`, which use no forecast: the median.
pub fn predicted_load(params: &PolicyParams, p: &Point, lower_q: f64, upper_q: f64) -> f64 {
    params.policy.load(&band(p, lower_q, upper_q))
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

    fn params(name: &str) -> PolicyParams {
        let policy = Policy::from_name(name).unwrap().configured(&|k| match k {
            "margin" => Some(0.15),
            "quantile" => Some(0.9),
            "max_step" => Some(2.0),
            "static_replicas" => Some(7.0),
            _ => None,
        });
        PolicyParams {
            policy,
            capacity: 100.0,
            target_utilization: 1.0,
            min_replicas: 1,
            max_replicas: 50,
            sizing: Sizing::UpToLead,
            peak_window: Duration::from_secs(60),
            scale_in: ScaleIn::Window,
            stabilization: Duration::ZERO,
            reactive_floor: true,
        }
    }

    /// One decision of a fresh scaler with the band at one step ahead.
    fn decide(p: PolicyParams, observed: Option<f64>, band: Option<Point>) -> Option<u32> {
        let points: Vec<Point> = band.into_iter().collect();
        let o = Outlook {
            steps: &[1],
            points: &points,
            quantiles: (0.1, 0.9),
        };
        let o = band.map(|_| o);
        Scaler::new(p)
            .decide(0, observed, o.as_ref(), 1.0, 60_000, 3)
            .map(|d| d.desired)
    }

    #[test]
    fn policies_by_hand() {
        let band = Point {
            yhat: 420.0,
            lower: 300.0,
            upper: 560.0,
        };
        let r = |p, obs| decide(params(p), obs, Some(band)).unwrap();
        assert_eq!(r("static", Some(50.0)), 7);
        assert_eq!(r("reactive", Some(250.0)), 3, "2.5 replicas");
        assert_eq!(r("ceiling", Some(250.0)), 5, "4.2 replicas");
        assert_eq!(r("buffered", Some(250.0)), 5, "4.83 replicas");
        // quantile 0.9 of a 0.1/0.9 band is its upper bound: 5.6 replicas
        assert_eq!(r("quantile", Some(250.0)), 6);
        // incremental: from 3 towards ceil(4.2) = 5, at most 2 a decision
        assert_eq!(r("incremental", Some(250.0)), 5);
        // max(reactive, predictive): an observed load above the forecast wins
        assert_eq!(r("ceiling", Some(900.0)), 9);
        // without the reactive floor the forecast alone decides
        let mut no_floor = params("ceiling");
        no_floor.reactive_floor = false;
        assert_eq!(decide(no_floor, Some(900.0), Some(band)), Some(5));
        // sized at 70% utilisation: 420 / 70 = 6 replicas
        let mut at_70 = params("ceiling");
        at_70.target_utilization = 0.7;
        assert_eq!(decide(at_70, Some(250.0), Some(band)), Some(6));
        // no forecast: the reactive part alone; nothing known: None
        assert_eq!(decide(params("quantile"), Some(250.0), None), Some(3));
        assert_eq!(decide(params("quantile"), None, None), None);
        // band quantiles: 0.95 lies beyond the 0.9 bound, 0.5 is the median
        assert!(band_quantile(&band, 0.95, 0.1, 0.9) > 560.0);
        assert_eq!(band_quantile(&band, 0.5, 0.1, 0.9), 420.0);
    }

    #[test]
    fn quantile_sizing_is_confidence_aware_utilisation() {
        // Sizing the band's 0.9 quantile at U = 0.7 runs the median load at a utilisation that
        // rises as the band narrows and falls as it widens, never above U.
        let mut p = params("quantile");
        p.target_utilization = 0.7;
        p.reactive_floor = false;
        let median_utilisation = |half_width: f64| {
            let band = Point {
                yhat: 420.0,
                lower: 420.0 - half_width,
                upper: 420.0 + half_width,
            };
            let replicas = decide(p.clone(), None, Some(band)).unwrap();
            420.0 / (replicas as f64 * 100.0)
        };
        let u: Vec<f64> = [0.0, 50.0, 150.0, 400.0]
            .into_iter()
            .map(median_utilisation)
            .collect();
        assert!(u.windows(2).all(|w| w[0] > w[1]), "{u:?}");
        assert!(u[0] <= 0.7 + 1e-9 && u[0] > 0.6, "{u:?}");
        assert!(u[3] < 0.4, "{u:?}");
    }

    #[test]
    fn scale_in_only_after_the_window() {
        let mut p = params("reactive");
        p.min_replicas = 2;
        p.stabilization = Duration::from_secs(300);
        let mut s = Scaler::new(p);
        let mut at = |t: i64, load: f64| {
            s.decide(t, Some(load * 100.0), None, 1.0, 60_000, 3)
                .unwrap()
        };
        assert_eq!(at(0, 9.2).desired, 10);
        let held = at(60_000, 3.0);
        assert_eq!((held.desired, held.reason), (10, Reason::Held));
        assert_eq!(at(240_000, 3.0).desired, 10);
        assert_eq!(at(301_000, 3.0).desired, 3);
        assert_eq!(at(302_000, 0.2).desired, 3);
        let clamped = at(900_000, 0.2);
        assert_eq!((clamped.desired, clamped.reason), (2, Reason::Clamp));
        assert_eq!(at(960_000, 80.0).desired, 50, "max_replicas");
    }

    #[test]
    fn forecast_scale_in_lets_go_when_the_band_ahead_allows() {
        let mut p = params("quantile");
        p.stabilization = Duration::from_secs(300);
        p.scale_in = ScaleIn::Forecast;
        let mut s = Scaler::new(p);
        let band = |y: f64| Point {
            yhat: y,
            lower: y * 0.8,
            upper: y * 1.2,
        };
        let steps = [1, 2, 5, 10];
        let mut decide = |next: f64, later: f64| {
            let points = [band(next), band(later), band(later), band(later)];
            let o = Outlook {
                steps: &steps,
                points: &points,
                quantiles: (0.1, 0.9),
            };
            s.decide(0, None, Some(&o), 1.0, 60_000, 3).unwrap()
        };
        assert_eq!(decide(1000.0, 1000.0).desired, 12);
        // The next step is low but the band a few minutes ahead is high again: held.
        let d = decide(200.0, 1000.0);
        assert_eq!((d.desired, d.reason), (12, Reason::Held));
        // Low all the way out to lead + window: scale in at once (no 5-minute wait).
        let d = decide(200.0, 200.0);
        assert_eq!((d.desired, d.reason), (3, Reason::ForecastScaleIn));
    }

    #[test]
    fn outlook_reads_between_and_beyond_horizons() {
        let p = |y: f64| Point {
            yhat: y,
            lower: y - 10.0,
            upper: y + 10.0,
        };
        let points = [p(100.0), p(300.0), p(900.0)];
        let o = Outlook {
            steps: &[1, 2, 5],
            points: &points,
            quantiles: (0.1, 0.9),
        };
        // up to 2 steps: the 1 and 2 step points, element-wise maximum
        assert_eq!(o.sized(Sizing::UpToLead, 2.0, 1.0).unwrap().yhat, 300.0);
        // shorter than the first horizon: the first horizon
        assert_eq!(o.sized(Sizing::UpToLead, 0.5, 1.0).unwrap().yhat, 100.0);
        // beyond the last: all of them
        assert_eq!(o.sized(Sizing::UpToLead, 60.0, 1.0).unwrap().upper, 910.0);
        // at 3.5 steps: halfway between 300 and 900
        assert_eq!(o.sized(Sizing::AtLead, 3.5, 1.0).unwrap().yhat, 600.0);
        // peak over [2, 3]: 2 → 300, 3 → 500
        assert_eq!(o.sized(Sizing::Peak, 2.0, 1.0).unwrap().yhat, 500.0);
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
