//! One scaling target's decisions over time, shared by the agent ([`super::Targets`]) and
//! `promcast simulate`: the same inputs give the same replicas in both.
//!
//! A decision sees the newest observed load and the forecast as an [`Outlook`] (the band at
//! each horizon, counted in steps from the newest observed bucket), and the pod start-up as
//! `lead` steps. It sizes for `capacity × target_utilization` per replica:
//! - `reactive` = observed / sized capacity;
//! - `predictive` = the policy's load (median, buffered median, band quantile) over the part
//!   of the band [`Sizing`] says, / sized capacity (`incremental` moves towards it);
//! - `desired` = max(reactive, predictive) with `reactive_floor`, else the predictive part
//!   alone (the reactive part when there is no forecast);
//! - scale-in ([`ScaleIn`]): to the highest recommendation of the window, or, driven by the
//!   forecast, as far as the band over the next `lead + window` allows;
//! - clamped to min/max.
//!
//! Each decision says which of these rules set it ([`Reason`]).

use std::collections::VecDeque;

use super::{predicted_load, PolicyParams, ScaleIn, Sizing};
use crate::snapshot::{Point, Reason};

/// The forecast one decision sees: the band at each horizon (`steps[i]` steps after the
/// newest observed bucket, ascending), with its quantile levels.
#[derive(Debug, Clone, Copy)]
pub struct Outlook<'a> {
    pub steps: &'a [usize],
    pub points: &'a [Point],
    pub quantiles: (f64, f64),
}

impl Outlook<'_> {
    /// The band at `k` steps, linear between the horizons around it, the nearest horizon
    /// outside them.
    pub fn at(&self, k: f64) -> Option<Point> {
        let (first, last) = (*self.steps.first()?, *self.steps.last()?);
        if k <= first as f64 {
            return self.points.first().copied();
        }
        if k >= last as f64 {
            return self.points.last().copied();
        }
        let j = self.steps.iter().position(|&s| s as f64 >= k)?;
        let (s0, s1) = (self.steps[j - 1] as f64, self.steps[j] as f64);
        let (a, b) = (self.points[j - 1], self.points[j]);
        let w = (k - s0) / (s1 - s0);
        let mix = |x: f64, y: f64| x + (y - x) * w;
        Some(Point {
            yhat: mix(a.yhat, b.yhat),
            lower: mix(a.lower, b.lower),
            upper: mix(a.upper, b.upper),
        })
    }

    /// The element-wise maximum of the band at every horizon up to `limit` steps (at least
    /// the first).
    pub fn max_up_to(&self, limit: f64) -> Option<Point> {
        let limit = limit.max(*self.steps.first()? as f64);
        self.steps
            .iter()
            .zip(self.points)
            .take_while(|(s, _)| **s as f64 <= limit)
            .map(|(_, p)| *p)
            .reduce(Point::max)
    }

    /// The element-wise maximum over `[from, to]` steps: both ends interpolated, and every
    /// horizon between them.
    pub fn max_between(&self, from: f64, to: f64) -> Option<Point> {
        let inside = self
            .steps
            .iter()
            .zip(self.points)
            .filter(|(s, _)| (from..=to).contains(&(**s as f64)))
            .map(|(_, p)| *p);
        [self.at(from)?, self.at(to)?]
            .into_iter()
            .chain(inside)
            .reduce(Point::max)
    }

    /// The part of the band a policy sizes for.
    pub fn sized(&self, sizing: Sizing, lead: f64, peak: f64) -> Option<Point> {
        match sizing {
            Sizing::UpToLead => self.max_up_to(lead),
            Sizing::AtLead => self.at(lead),
            Sizing::Peak => self.max_between(lead, lead + peak),
        }
    }
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub desired: u32,
    pub reason: Reason,
    /// The policy's load from the forecast (`None` for reactive and static policies, or with
    /// no forecast).
    pub predicted: Option<f64>,
}

/// One target's policy and what it remembers between decisions.
#[derive(Debug, Clone)]
pub struct Scaler {
    params: PolicyParams,
    /// `params.stabilization` in ms.
    window_ms: i64,
    /// Recent raw recommendations (`window`) with their times.
    history: VecDeque<(i64, u32)>,
    last: Option<u32>,
}

impl Scaler {
    pub fn new(params: PolicyParams) -> Self {
        Self {
            window_ms: params.stabilization.as_millis() as i64,
            params,
            history: VecDeque::new(),
            last: None,
        }
    }

    pub fn params(&self) -> &PolicyParams {
        &self.params
    }

    /// The last decision's replicas.
    pub fn last(&self) -> Option<u32> {
        self.last
    }

    /// Decides at `now_ms` from the newest observed load, the forecast, the pod start-up
    /// (`lead` steps from the outlook's origin; `step_ms` converts the windows) and the
    /// replicas running now (`incremental` moves from them). `None` when nothing is known.
    pub fn decide(
        &mut self,
        now_ms: i64,
        observed: Option<f64>,
        outlook: Option<&Outlook<'_>>,
        lead: f64,
        step_ms: i64,
        current: u32,
    ) -> Option<Decision> {
        let p = &self.params;
        let c = p.sized_capacity();
        let reactive = observed.filter(|v| v.is_finite()).map(|v| (v / c).max(0.0));
        let steps = |ms: i64| ms as f64 / step_ms.max(1) as f64;
        let band = outlook.and_then(|o| {
            let b = o.sized(p.sizing, lead, steps(p.peak_window.as_millis() as i64))?;
            b.is_finite().then_some((b, o.quantiles))
        });
        let predicted = band
            .filter(|_| p.policy.is_predictive())
            .map(|(b, (lo, hi))| predicted_load(p, &b, lo, hi));
        let predictive = predicted.map(|load| p.policy.replicas((load / c).max(0.0), current));
        let (raw, mut reason) = match (p.policy.fixed(), p.policy.is_predictive()) {
            (Some(n), _) => (n as f64, Reason::Forecast),
            (None, false) => (reactive?, Reason::Reactive),
            (None, true) => match (reactive, predictive) {
                (Some(r), Some(f)) if p.reactive_floor && r > f => (r, Reason::Reactive),
                (_, Some(f)) => (f, Reason::Forecast),
                (Some(r), None) => (r, Reason::Reactive),
                (None, None) => return None,
            },
        };
        let wanted = raw.ceil().max(0.0) as u32;
        let r = wanted.clamp(p.min_replicas, p.max_replicas.max(p.min_replicas));
        if r != wanted {
            reason = Reason::Clamp;
        }
        let desired = match (p.scale_in, outlook) {
            (ScaleIn::Forecast, Some(o)) if p.policy.is_predictive() => {
                self.forecast_scale_in(r, &mut reason, o, lead, step_ms)
            }
            _ => self.window_scale_in(now_ms, r, &mut reason),
        };
        self.last = Some(desired);
        Some(Decision {
            desired,
            reason,
            predicted,
        })
    }

    /// Scale-in to the highest recommendation of the last window.
    fn window_scale_in(&mut self, now_ms: i64, r: u32, reason: &mut Reason) -> u32 {
        self.history.push_back((now_ms, r));
        while self
            .history
            .front()
            .is_some_and(|(t, _)| *t < now_ms - self.window_ms)
        {
            self.history.pop_front();
        }
        let desired = self.history.iter().map(|(_, r)| *r).max().unwrap_or(r);
        if desired > r {
            *reason = Reason::Held;
        }
        desired
    }

    /// Scale-in as far as the policy's load of the band over the next `lead + window` allows:
    /// replicas removed now are gone at once, and new ones take `lead` to come back.
    fn forecast_scale_in(
        &mut self,
        r: u32,
        reason: &mut Reason,
        o: &Outlook<'_>,
        lead: f64,
        step_ms: i64,
    ) -> u32 {
        let Some(last) = self.last.filter(|last| r < *last) else {
            return r;
        };
        let p = &self.params;
        let ahead = lead + self.window_ms as f64 / step_ms.max(1) as f64;
        let needed = o
            .max_up_to(ahead)
            .filter(Point::is_finite)
            .map(|b| predicted_load(p, &b, o.quantiles.0, o.quantiles.1) / p.sized_capacity())
            .map_or(last, |n| {
                (n.ceil().max(0.0) as u32).clamp(p.min_replicas, p.max_replicas.max(p.min_replicas))
            });
        let desired = r.max(needed).min(last);
        *reason = if desired < last {
            Reason::ForecastScaleIn
        } else {
            Reason::Held
        };
        desired
    }
}
