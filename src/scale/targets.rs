//! The agent's scaling targets: each step, the forecast loop reports the series that match a
//! target's selector, and [`Targets::finish`] turns the matched series' forecast into the
//! target's [`Recommendation`] (through its [`Recommender`], which keeps the scale-in window
//! across steps).

use std::time::Duration;

use super::{predicted_load, recommend, Policy, Recommender};
use crate::config::{ForecastSpec, ScalingSpec};
use crate::snapshot::{Point, Recommendation, ScalingStatus, SeriesForecast, SeriesState};
use crate::store::LabelSet;

struct TargetState {
    recommender: Recommender,
    last: Option<u32>,
    /// This step's matches: index into the snapshot's series, newest observed value.
    matches: Vec<(usize, Option<f64>)>,
}

/// Every configured target and its state between steps.
pub struct Targets {
    specs: Vec<ScalingSpec>,
    state: Vec<TargetState>,
}

impl Targets {
    pub fn new(specs: &[ScalingSpec]) -> Self {
        Self {
            specs: specs.to_vec(),
            state: specs
                .iter()
                .map(|s| TargetState {
                    recommender: Recommender::new(
                        s.scale_down_stabilization,
                        s.params.min_replicas,
                        s.params.max_replicas,
                    ),
                    last: None,
                    matches: Vec::new(),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Starts a step: forgets the last step's matches.
    pub fn begin_step(&mut self) {
        for s in &mut self.state {
            s.matches.clear();
        }
    }

    /// Reports a series of this step: `index` into the snapshot's series, and its newest
    /// observed value (`None` when its newest buckets are empty).
    pub fn observe(&mut self, labels: &LabelSet, index: usize, observed: Option<f64>) {
        for (spec, state) in self.specs.iter().zip(&mut self.state) {
            if spec.selector.matches(|n| labels.get(n)) {
                state.matches.push((index, observed));
            }
        }
    }

    /// The recommendations of this step, one per target in config order.
    pub fn finish(
        &mut self,
        now_ms: i64,
        series: &[SeriesForecast],
        horizons: &[Vec<(String, i64)>],
        forecast: &[ForecastSpec],
    ) -> Vec<Recommendation> {
        self.specs
            .iter()
            .zip(&mut self.state)
            .map(|(spec, state)| {
                let mut r = Recommendation {
                    target: spec.name.clone(),
                    mode: spec.mode,
                    policy: spec.params.policy,
                    desired: None,
                    load: None,
                    observed: None,
                    predicted: None,
                    status: ScalingStatus::Ok,
                };
                let (index, observed) = match state.matches.as_slice() {
                    [] => {
                        r.status = ScalingStatus::NoSeries;
                        return r;
                    }
                    [one] => *one,
                    many => {
                        r.status = ScalingStatus::Ambiguous(many.len());
                        return r;
                    }
                };
                let f = &series[index];
                r.observed = observed;
                if f.state != SeriesState::Ready || f.points.is_empty() {
                    r.status = ScalingStatus::NoForecast(match &f.state {
                        SeriesState::Ready => "the forecast has no points".into(),
                        other => format!("series state {other:?}"),
                    });
                    return r;
                }
                let Some(observed) = observed else {
                    r.status =
                        ScalingStatus::NoForecast("no observed value in the newest buckets".into());
                    return r;
                };
                let spec_f = &forecast[f.spec as usize];
                let band = band_at(&horizons[f.spec as usize], &f.points, spec.lead_time);
                let q = (spec_f.lower_quantile, spec_f.upper_quantile);
                let current = state.last.unwrap_or(spec.params.min_replicas);
                let Some(raw) = recommend(
                    &spec.params,
                    Some(observed),
                    Some((band, q.0, q.1)),
                    current,
                ) else {
                    r.status = ScalingStatus::NoForecast("the forecast is not finite".into());
                    return r;
                };
                let desired = state.recommender.update(now_ms, raw);
                state.last = Some(desired);
                r.predicted = (spec.params.policy != Policy::Reactive)
                    .then(|| predicted_load(&spec.params, &band, q.0, q.1));
                r.load = Some(r.predicted.map_or(observed, |p| p.max(observed)));
                r.desired = Some(desired);
                r
            })
            .collect()
    }
}

/// The band a target decides on: the element-wise maximum of the forecast over every horizon
/// up to `lead_time` (at least the first horizon), so a peak before the pods are ready counts.
pub fn band_at(horizons: &[(String, i64)], points: &[Point], lead_time: Duration) -> Point {
    let lead_ms = lead_time.as_millis() as i64;
    let first_ms = horizons.first().map_or(0, |h| h.1);
    let limit = lead_ms.max(first_ms);
    let mut band: Option<Point> = None;
    for ((_, ms), p) in horizons.iter().zip(points) {
        if *ms > limit {
            break;
        }
        band = Some(match band {
            None => *p,
            Some(b) => Point {
                yhat: b.yhat.max(p.yhat),
                lower: b.lower.max(p.lower),
                upper: b.upper.max(p.upper),
            },
        });
    }
    band.unwrap_or(points[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(y: f64) -> Point {
        Point {
            yhat: y,
            lower: y - 10.0,
            upper: y + 10.0,
        }
    }

    #[test]
    fn band_covers_every_horizon_up_to_the_lead_time() {
        let h = vec![
            ("1m".to_string(), 60_000),
            ("2m".to_string(), 120_000),
            ("5m".to_string(), 300_000),
        ];
        let p = [pt(100.0), pt(300.0), pt(900.0)];
        // 2m lead: the 1m and 2m points, element-wise maximum
        assert_eq!(band_at(&h, &p, Duration::from_secs(120)).yhat, 300.0);
        // shorter than the first horizon: the first horizon
        assert_eq!(band_at(&h, &p, Duration::from_secs(10)).yhat, 100.0);
        // beyond the last: all of them
        assert_eq!(band_at(&h, &p, Duration::from_secs(3600)).upper, 910.0);
    }
}
