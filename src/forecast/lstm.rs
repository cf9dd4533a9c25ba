//! `lstm`: the loaded neural model ([`super::neural::LstmModel`]) read at one forecast
//! entry's horizons and band. Batched: the loop hands it every waiting series at once
//! ([`Fit::fit_batch`]), and the backend (tract, or onnxruntime's worker) runs them as one
//! batch.

use std::sync::Arc;

use super::model::{Ask, AtOrigin, Entry, Fit, Forecast, Listed, ModelError, Window, MIN_POINTS};
use super::neural::{History, LstmModel};
use crate::snapshot::Point;

/// Where one entry's outputs sit in the model's output row.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    /// Per entry horizon, its index on the model's horizon axis.
    horizons: Vec<usize>,
    /// The model's indices of the lower quantile, the median and the upper quantile.
    quantiles: [usize; 3],
}

/// The LSTM for one forecast entry.
#[derive(Debug, Clone)]
pub struct Lstm {
    model: Arc<LstmModel>,
    plan: Plan,
    ask: Ask,
}

impl Lstm {
    /// The model read at `ask`'s horizons and band, or why it cannot serve them.
    pub fn new(model: Arc<LstmModel>, ask: Ask) -> Result<Self, String> {
        let durations: Vec<_> = ask.horizons.iter().map(|&h| ask.step * h as u32).collect();
        model
            .check_fits(ask.step, &durations, &[ask.quantiles.0, ask.quantiles.1])
            .map_err(|e| e.to_string())?;
        let meta = model.meta();
        let horizons = durations
            .iter()
            .map(|d| {
                meta.horizon_index_at(*d, ask.step)
                    .ok_or_else(|| format!("no horizon {d:?}"))
            })
            .collect::<Result<_, _>>()?;
        let q = |x: f64| {
            meta.quantile_index(x)
                .ok_or_else(|| format!("no quantile {x}"))
        };
        let plan = Plan {
            horizons,
            quantiles: [q(ask.quantiles.0)?, q(0.5)?, q(ask.quantiles.1)?],
        };
        Ok(Self { model, plan, ask })
    }

    /// Input steps of the model.
    pub fn window(&self) -> usize {
        self.model.meta().window
    }

    /// The band at each horizon from one row of de-normalised model output.
    fn points(&self, row: &[f32]) -> Vec<Point> {
        let nq = self.model.meta().quantiles.len();
        self.plan
            .horizons
            .iter()
            .map(|&h| {
                let q = |i: usize| row[h * nq + self.plan.quantiles[i]] as f64;
                Point {
                    yhat: q(1),
                    lower: q(0),
                    upper: q(2),
                }
                .ordered()
            })
            .collect()
    }
}

impl Fit for Lstm {
    type Fitted = AtOrigin;

    /// A full window and a few observed points in it.
    fn points_needed(&self, w: &Window<'_>) -> usize {
        let window = self.window();
        let observed = w.observed_count();
        if observed >= MIN_POINTS.min(window) && w.values.len() >= window {
            return 0;
        }
        window
            .saturating_sub(w.values.len())
            .max(MIN_POINTS.saturating_sub(observed))
    }

    fn batches(&self) -> bool {
        true
    }

    fn fit(&self, w: &Window<'_>) -> Result<AtOrigin, ModelError> {
        let mut out = Vec::with_capacity(1);
        self.fit_batch(std::slice::from_ref(w), &mut out);
        out.pop()
            .unwrap_or_else(|| Err(ModelError::Failed("no output".into())))
    }

    fn fit_batch(&self, windows: &[Window<'_>], out: &mut Vec<Result<AtOrigin, ModelError>>) {
        let histories: Vec<History<'_>> = windows
            .iter()
            .map(|w| History {
                values: w.values,
                last_ts_ms: w.origin * w.step_ms,
                calendar: w.calendar,
            })
            .collect();
        let mut raw = Vec::new();
        match self.model.predict(&histories, self.ask.step, &mut raw) {
            Ok(()) => {
                let per_row = self.model.meta().outputs_per_row();
                out.extend(
                    windows
                        .iter()
                        .zip(raw.chunks_exact(per_row))
                        .map(|(w, row)| {
                            let forecast = Forecast::finite(self.points(row), || {
                                ModelError::Failed("lstm produced non-finite forecasts".into())
                            })?;
                            Ok(AtOrigin::new(w.origin, forecast))
                        }),
                );
            }
            Err(e) => {
                let reason = e.to_string();
                out.extend(
                    windows
                        .iter()
                        .map(|_| Err(ModelError::Failed(reason.clone()))),
                );
            }
        }
    }
}

impl Listed for Lstm {
    const RANK: u8 = 10;

    fn for_entry(entry: &Entry<'_>) -> Result<Self, String> {
        let network = entry
            .network
            .ok_or_else(|| "no model loaded (inference.model)".to_string())?;
        match (Self::new(network.clone(), entry.ask.clone()), network.companion()) {
            // The built-in's hour model serves the entries the short one cannot.
            (Err(first), Some(companion)) => Self::new(companion.clone(), entry.ask.clone())
                .map_err(|second| {
                    format!(
                        "{first}; {}: {second}",
                        companion.origin()
                    )
                }),
            (first, _) => first,
        }
    }

    fn candidate(&self, history: usize, _refit_every: usize) -> Option<Self> {
        (history >= self.window()).then(|| self.clone())
    }
}
