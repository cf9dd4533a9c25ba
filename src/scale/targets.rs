//! The agent's scaling targets: each step, the forecast loop reports the series that match a
//! target's selector, and [`Targets::finish`] turns the matched series' forecast into the
//! target's [`Recommendation`] through its [`Scaler`] (which keeps the scale-in memory across
//! steps): the code `promcast simulate` runs.

use super::{Outlook, Scaler};
use crate::config::{ForecastSpec, ScalingSpec};
use crate::snapshot::{Point, Recommendation, ScalingStatus, SeriesForecast, SeriesState};
use crate::store::LabelSet;

struct TargetState {
    scaler: Scaler,
    /// This step's matches: index into the snapshot's series, newest observed value.
    matches: Vec<(usize, Option<f64>)>,
}

/// Every configured target and its state between steps.
pub struct Targets {
    specs: Vec<ScalingSpec>,
    state: Vec<TargetState>,
    /// Reused: one entry's horizons in steps.
    steps: Vec<usize>,
    /// Reused: the series' bands as the model made them (before calibration).
    bands: Vec<Point>,
}

impl Targets {
    pub fn new(specs: &[ScalingSpec]) -> Self {
        Self {
            specs: specs.to_vec(),
            state: specs
                .iter()
                .map(|s| TargetState {
                    scaler: Scaler::new(s.params.clone()),
                    matches: Vec::new(),
                })
                .collect(),
            steps: Vec::new(),
            bands: Vec::new(),
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

    /// The recommendations of this step, one per target in config order. `horizons` are
    /// each entry's horizon labels and lengths in ms.
    pub fn finish(
        &mut self,
        now_ms: i64,
        step_ms: i64,
        series: &[SeriesForecast],
        horizons: &[Vec<(String, i64)>],
        forecast: &[ForecastSpec],
    ) -> Vec<Recommendation> {
        let mut out = Vec::with_capacity(self.specs.len());
        for (spec, state) in self.specs.iter().zip(&mut self.state) {
            let mut r = Recommendation {
                target: spec.name.clone(),
                mode: spec.mode,
                policy: spec.params.policy,
                desired: None,
                reason: None,
                load: None,
                observed: None,
                predicted: None,
                status: ScalingStatus::Ok,
            };
            let (index, observed) = match state.matches.as_slice() {
                [] => {
                    r.status = ScalingStatus::NoSeries;
                    out.push(r);
                    continue;
                }
                [one] => *one,
                many => {
                    r.status = ScalingStatus::Ambiguous(many.len());
                    out.push(r);
                    continue;
                }
            };
            let f = &series[index];
            r.observed = observed;
            if let Err(status) = usable(f, observed) {
                r.status = status;
                out.push(r);
                continue;
            }
            let entry = f.spec as usize;
            self.steps.clear();
            self.steps.extend(
                horizons[entry]
                    .iter()
                    .map(|h| (h.1 / step_ms.max(1)) as usize),
            );
            self.bands.clear();
            self.bands.extend(f.model_bands());
            let outlook = Outlook {
                steps: &self.steps,
                points: &self.bands,
                quantiles: (
                    forecast[entry].lower_quantile,
                    forecast[entry].upper_quantile,
                ),
            };
            let lead = spec.lead_time.as_millis() as f64 / step_ms.max(1) as f64;
            let current = state.scaler.last().unwrap_or(spec.params.min_replicas);
            match state
                .scaler
                .decide(now_ms, observed, Some(&outlook), lead, step_ms, current)
            {
                Some(d) => {
                    let observed = observed.unwrap_or(f64::NAN);
                    r.predicted = d.predicted;
                    r.load = Some(d.predicted.map_or(observed, |p| p.max(observed)));
                    r.desired = Some(d.desired);
                    r.reason = Some(d.reason);
                }
                None => r.status = ScalingStatus::NoForecast("the forecast is not finite".into()),
            }
            out.push(r);
        }
        out
    }
}

/// Whether a target's series can be scaled on: a ready forecast and an observed value.
fn usable(f: &SeriesForecast, observed: Option<f64>) -> Result<(), ScalingStatus> {
    if f.state != SeriesState::Ready || f.points.is_empty() {
        return Err(ScalingStatus::NoForecast(match &f.state {
            SeriesState::Ready => "the forecast has no points".into(),
            other => format!("series state {other:?}"),
        }));
    }
    if observed.is_none() {
        return Err(ScalingStatus::NoForecast(
            "no observed value in the newest buckets".into(),
        ));
    }
    Ok(())
}
