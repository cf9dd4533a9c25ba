//! `auto`: which model serves a series, chosen by a rolling backtest on the series' own
//! history. [`choose`] is a pure function of the history, the candidate models and the
//! incumbent; the agent calls it every `auto_every` per series (within a step budget), and
//! `backtest`/`simulate` reach it through the same [`super::Forecaster`].

use super::lstm::Lstm;
use super::model::{Ask, Fit, Predict, Window, MIN_POINTS};
use super::mstl::Mstl;
use super::naive::{needed_for_lag, Naive, SeasonalNaive};
use super::registry::Model;
use crate::snapshot::{ModelKind, Point};

/// Recent origins `auto` compares the models on (every longest horizon apart).
pub const AUTO_ORIGINS: usize = 16;
/// Fewer when MSTL is among the candidates: each origin is a fit.
pub const AUTO_ORIGINS_MSTL: usize = 6;
/// `auto` leaves its incumbent (the current choice, or the first available model of
/// [`PREFERENCE`]) only for a model whose error is this much lower: per-series errors over a
/// few origins are noisy, and the preference order reflects which model is better across
/// many series (docs/ACCURACY.md).
pub const AUTO_MARGIN: f64 = 0.15;
/// The order `auto` prefers models in when the history cannot tell them apart.
pub const PREFERENCE: [ModelKind; 4] = [
    ModelKind::Lstm,
    ModelKind::Mstl,
    ModelKind::SeasonalNaive,
    ModelKind::Naive,
];

/// `auto`'s choice for one series, and what it was based on.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub model: ModelKind,
    /// Summed absolute error of each candidate's median over the backtest.
    pub scores: Vec<(ModelKind, f64)>,
    /// The model kept unless another was [`AUTO_MARGIN`] better.
    pub incumbent: Option<(ModelKind, f64)>,
}

/// Chooses a model for the series whose history is `window` (its padding is ignored): every
/// candidate that has the history for it forecasts the last [`AUTO_ORIGINS`] origins
/// ([`AUTO_ORIGINS_MSTL`] when MSTL competes, which only happens `with_mstl`, i.e. within the
/// step's refit budget), scored by the summed absolute error of the median at the entry's
/// horizons; the incumbent (`current`, else the first of [`PREFERENCE`] scored) is kept
/// unless another model is [`AUTO_MARGIN`] better. `None` while the history is too short to
/// compare.
pub fn choose(
    window: &Window<'_>,
    ask: &Ask,
    lstm: Option<&Lstm>,
    current: Option<ModelKind>,
    with_mstl: bool,
) -> Option<Choice> {
    let n = window.observed().len();
    let max_h = ask.longest();
    let gap = max_h.max(1);
    let oldest = |k: usize| n as i64 - 1 - max_h as i64 - ((k - 1) * gap) as i64;
    let mstl = Mstl::once(ask.clone());
    let mut origins = AUTO_ORIGINS;
    if with_mstl
        && oldest(AUTO_ORIGINS_MSTL) >= 0
        && !mstl
            .usable(oldest(AUTO_ORIGINS_MSTL) as usize + 1)
            .is_empty()
    {
        origins = AUTO_ORIGINS_MSTL;
    }
    if oldest(origins) < MIN_POINTS as i64 {
        return None;
    }
    let os: Vec<usize> = (0..origins).map(|j| n - 1 - max_h - j * gap).collect();
    let oldest_o = *os.last().expect("origins");
    let windows: Vec<Window<'_>> = os.iter().map(|&o| window.prefix(o + 1)).collect();

    // Candidates with the history for the oldest origin, in the order their ties resolve.
    let mut candidates = Vec::new();
    if let Some(p) = ask
        .seasons
        .iter()
        .rev()
        .copied()
        .find(|&p| oldest_o + 1 >= needed_for_lag(ask, p))
    {
        candidates.push(Model::SeasonalNaive(SeasonalNaive::with_season(
            ask.clone(),
            p,
        )));
    }
    candidates.push(Model::Naive(Naive::new(ask.clone())));
    if let Some(lstm) = lstm.filter(|l| oldest_o + 1 >= l.window()) {
        candidates.push(Model::Lstm(lstm.clone()));
    }
    if origins == AUTO_ORIGINS_MSTL {
        candidates.push(Model::Mstl(mstl));
    }
    let observed = window.observed();
    let scores: Vec<(ModelKind, f64)> = candidates
        .iter()
        .filter_map(|m| Some((m.kind(), backtest(m, &windows, observed, &ask.horizons)?)))
        .collect();
    decide(scores, current)
}

/// Summed absolute error of `model`'s median over `windows` (each a prefix of `observed`),
/// at every horizon whose actual value is observed; `None` when a fit fails or a needed
/// median is not finite.
fn backtest(
    model: &Model,
    windows: &[Window<'_>],
    observed: &[f32],
    horizons: &[usize],
) -> Option<f64> {
    let mut fits = Vec::with_capacity(windows.len());
    model.fit_batch(windows, &mut fits);
    let mut points: Vec<Point> = Vec::new();
    let mut sum = 0.0;
    for (w, fit) in windows.iter().zip(fits) {
        let fit = fit.ok()?;
        let o = w.values.len() - 1;
        let reached = fit.predict(w.origin, &mut points);
        for (hi, h) in horizons.iter().enumerate() {
            let y = observed[o + h];
            if !y.is_finite() {
                continue;
            }
            let yhat = points.get(hi).filter(|_| reached)?.yhat;
            if !yhat.is_finite() {
                return None;
            }
            sum += (yhat - y as f64).abs();
        }
    }
    Some(sum)
}

/// The best-scored model unless the incumbent is within [`AUTO_MARGIN`] of it.
fn decide(scores: Vec<(ModelKind, f64)>, current: Option<ModelKind>) -> Option<Choice> {
    let best = scores.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied()?;
    let incumbent = current
        .and_then(|c| scores.iter().find(|s| s.0 == c))
        .or_else(|| {
            PREFERENCE
                .iter()
                .find_map(|k| scores.iter().find(|s| s.0 == *k))
        })
        .copied();
    let model = match incumbent {
        Some((c, sc)) if best.1 >= sc * (1.0 - AUTO_MARGIN) => c,
        _ => best.0,
    };
    Some(Choice {
        model,
        scores,
        incumbent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ask(horizons: &[usize], seasons: &[usize]) -> Ask {
        Ask {
            horizons: horizons.into(),
            quantiles: (0.1, 0.9),
            seasons: seasons.to_vec(),
            step: Duration::from_secs(60),
        }
    }

    fn window(values: &[f32]) -> Window<'_> {
        Window {
            values,
            origin: values.len() as i64 - 1,
            pad: 0,
            step_ms: 60_000,
            calendar: false,
        }
    }

    /// A strictly periodic signal is the case with a known answer: seasonal naive forecasts
    /// it exactly, so it must win by a wide margin whatever the incumbent.
    #[test]
    fn a_periodic_series_chooses_seasonal_naive() {
        let wave: Vec<f32> = (0..400)
            .map(|t| [3.0, 9.0, 4.0, 12.0, 6.0][(t % 60) / 12] * 10.0 + (t % 12) as f32)
            .collect();
        let a = ask(&[5, 15], &[60]);
        for current in [None, Some(ModelKind::Naive)] {
            let c = choose(&window(&wave), &a, None, current, true).unwrap();
            assert_eq!(c.model, ModelKind::SeasonalNaive, "{c:?}");
            let score = |k| c.scores.iter().find(|s| s.0 == k).unwrap().1;
            assert_eq!(score(ModelKind::SeasonalNaive), 0.0);
            assert!(score(ModelKind::Naive) > 0.0);
            assert!(c.scores.iter().any(|s| s.0 == ModelKind::Mstl), "{c:?}");
        }
        // Without the refit budget MSTL does not compete.
        let c = choose(&window(&wave), &a, None, None, false).unwrap();
        assert!(c.scores.iter().all(|s| s.0 != ModelKind::Mstl));
    }

    #[test]
    fn too_short_a_history_is_no_choice() {
        let y: Vec<f32> = (0..30).map(|t| t as f32).collect();
        assert_eq!(
            choose(&window(&y), &ask(&[5, 15], &[60]), None, None, true),
            None
        );
    }

    #[test]
    fn the_incumbent_stays_within_the_margin() {
        let scores = vec![(ModelKind::Naive, 100.0), (ModelKind::SeasonalNaive, 90.0)];
        let c = decide(scores.clone(), Some(ModelKind::Naive)).unwrap();
        assert_eq!(c.model, ModelKind::Naive, "10% better is not enough");
        let c = decide(scores, None).unwrap();
        assert_eq!(
            c.model,
            ModelKind::SeasonalNaive,
            "preference order's first"
        );
        let c = decide(
            vec![(ModelKind::Naive, 100.0), (ModelKind::SeasonalNaive, 80.0)],
            Some(ModelKind::Naive),
        )
        .unwrap();
        assert_eq!(c.model, ModelKind::SeasonalNaive, "20% better wins");
    }
}
