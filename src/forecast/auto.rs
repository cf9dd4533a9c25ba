//! `auto`: which model serves a series, chosen by a rolling backtest on the series' own
//! history. [`choose`] is a pure function of the history, the candidate models and the
//! incumbent; the agent calls it every `auto_every` per series (within a step budget), and
//! `backtest`/`simulate` reach it through the same [`super::Forecaster`].

use super::model::{Ask, Fit, Gate, Predict, Window, MIN_POINTS};
use super::registry::{Model, Models};
use crate::snapshot::ModelKind;
use std::time::Duration;

/// How far back `auto` scores the candidates: the origins of the last 4 hours whose
/// forecasts have all their horizons observed. Measured on dense backtests (docs/ACCURACY.md):
/// 4h scores as well as 8h or 24h, and costs half as much.
pub const AUTO_LOOKBACK: Duration = Duration::from_secs(4 * 3600);
/// Origins per longest horizon: the candidates are scored every `longest / AUTO_DENSITY`
/// steps (at least every step). Sparser grids, or MSTL scored on fewer origins than the
/// others (as `auto` once did), chose worse: 1-8% above the best single candidate on NAB.
pub const AUTO_DENSITY: usize = 6;
/// At most this many origins, whatever the step and horizons.
pub const AUTO_MAX_ORIGINS: usize = 64;
/// Models that keep their fits (MSTL: tens of milliseconds each) are fitted at every sixth
/// scored origin (every longest horizon) and read forward in between, as the agent serves
/// them between refits: 8 fits per choice over 4 hours.
pub const AUTO_MSTL_EVERY: usize = 6;
/// `auto` leaves its incumbent (the current choice, or the most preferred model scored,
/// [`Model::preference`]) only for a model whose error is this much lower: per-series errors over a
/// few origins are noisy, and the preference order reflects which model is better across
/// many series (docs/ACCURACY.md).
pub const AUTO_MARGIN: f64 = 0.15;
/// `auto`'s choice for one series, and what it was based on.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub model: ModelKind,
    /// Summed pinball loss of each candidate's band and median over the backtest.
    pub scores: Vec<(ModelKind, f64)>,
    /// The model kept unless another was [`AUTO_MARGIN`] better.
    pub incumbent: Option<(ModelKind, f64)>,
}

/// Chooses a model for the series whose history is `window` (its padding is ignored) among
/// the entry's `models`: every model that can compete with the history of the oldest origin
/// ([`Model::candidate`]) forecasts the origins of the last [`AUTO_LOOKBACK`] (one every
/// `longest / AUTO_DENSITY` steps, at most [`AUTO_MAX_ORIGINS`]). Expensive models compete
/// only `within_budget` (the step's refit budget), and seasonal ones gated on it
/// ([`Gate::WhereSeasonPays`]: MSTL, the most expensive to score) only where a seasonal
/// baseline scored better than a non-seasonal one. Models that keep fits are fitted every
/// [`AUTO_MSTL_EVERY`] origins. Each is scored by its summed pinball loss at the band's
/// quantiles and the median, at the entry's horizons: a proper score, so a model wins by a
/// better median *and* a better band. The incumbent (`current`, else the most preferred
/// model scored) is kept unless another model is [`AUTO_MARGIN`] better. `None` while the
/// history is too short to compare.
pub fn choose(
    window: &Window<'_>,
    ask: &Ask,
    models: &Models,
    current: Option<ModelKind>,
    within_budget: bool,
) -> Option<Choice> {
    let n = window.observed().len();
    let max_h = ask.longest();
    let gap = (max_h / AUTO_DENSITY).max(1);
    let step = ask.step.as_secs_f64().max(1e-3);
    let lookback = (AUTO_LOOKBACK.as_secs_f64() / step) as usize;
    let count = (lookback / gap).clamp(1, AUTO_MAX_ORIGINS);
    let oldest = n as i64 - 1 - max_h as i64 - ((count - 1) * gap) as i64;
    if oldest < MIN_POINTS as i64 {
        return None;
    }
    // Oldest first: kept fits are read forward.
    let os: Vec<usize> = (0..count).rev().map(|j| n - 1 - max_h - j * gap).collect();
    let windows: Vec<Window<'_>> = os.iter().map(|&o| window.prefix(o + 1)).collect();
    let candidates: Vec<Model> = models
        .iter()
        .filter_map(|m| m.candidate(os[0] + 1, AUTO_MSTL_EVERY * gap))
        .collect();
    let observed = window.observed();
    let score = |m: &Model| Some((m.kind(), backtest(m, &windows, observed, ask)?));
    let mut scores: Vec<(ModelKind, f64)> = candidates
        .iter()
        .filter(|m| m.gate() == Gate::Always)
        .filter_map(score)
        .collect();
    let pays = season_pays(&scores);
    for m in &candidates {
        let scored = match m.gate() {
            Gate::Always => false,
            Gate::WithinBudget => within_budget,
            Gate::WhereSeasonPays => within_budget && pays,
        };
        if scored {
            scores.extend(score(m));
        }
    }
    decide(scores, current)
}

/// Whether the season pays on this series' recent history: the best seasonal baseline
/// scored better than the best non-seasonal one.
fn season_pays(scores: &[(ModelKind, f64)]) -> bool {
    let best = |seasonal: bool| {
        scores
            .iter()
            .filter(|s| Model::fallback(s.0) && s.0.needs_season() == seasonal)
            .map(|s| s.1)
            .min_by(f64::total_cmp)
    };
    matches!((best(true), best(false)), (Some(s), Some(n)) if s < n)
}

/// Pinball loss of forecast `yhat` for quantile `q` against `y`.
fn pinball(q: f64, yhat: f64, y: f64) -> f64 {
    let d = y - yhat;
    if d >= 0.0 {
        q * d
    } else {
        (q - 1.0) * d
    }
}

/// Summed pinball loss of `model`'s band (at the ask's quantiles) and median (at 0.5) over
/// `windows` (prefixes of `observed`, oldest first), at every horizon whose actual value is
/// observed. A model that keeps its fits is fitted every [`AUTO_MSTL_EVERY`] windows and read
/// forward in between. `None` when a fit fails or a needed point is not finite.
fn backtest(model: &Model, windows: &[Window<'_>], observed: &[f32], ask: &Ask) -> Option<f64> {
    let every = if model.keeps_fit() {
        AUTO_MSTL_EVERY
    } else {
        1
    };
    let fitted: Vec<Window<'_>> = windows.iter().step_by(every).copied().collect();
    let mut fits = Vec::with_capacity(fitted.len());
    model.fit_batch(&fitted, &mut fits);
    let (q_lo, q_hi) = ask.quantiles;
    let mut sum = 0.0;
    for (i, w) in windows.iter().enumerate() {
        let fit = fits[i / every].as_ref().ok()?;
        let o = w.values.len() - 1;
        let forecast = fit.predict(w.origin);
        for (hi, h) in ask.horizons.iter().enumerate() {
            let y = observed[o + h];
            if !y.is_finite() {
                continue;
            }
            let p = forecast.as_ref().ok()?.points.get(hi)?;
            let y = y as f64;
            sum += pinball(0.5, p.yhat, y) + pinball(q_lo, p.lower, y) + pinball(q_hi, p.upper, y);
        }
    }
    Some(sum)
}

/// The best-scored model (ties to the preferred) unless the incumbent is within
/// [`AUTO_MARGIN`] of it.
fn decide(scores: Vec<(ModelKind, f64)>, current: Option<ModelKind>) -> Option<Choice> {
    let best = scores
        .iter()
        .min_by(|a, b| {
            a.1.total_cmp(&b.1)
                .then(Model::rank(a.0).cmp(&Model::rank(b.0)))
        })
        .copied()?;
    let incumbent = current
        .and_then(|c| scores.iter().find(|s| s.0 == c))
        .or_else(|| {
            Model::preference()
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

    fn ask(horizons: &[usize], seasons: &[usize]) -> Ask {
        Ask {
            horizons: horizons.into(),
            quantiles: (0.1, 0.9),
            seasons: seasons.to_vec(),
            step: Duration::from_secs(60),
        }
    }

    /// The classic models (no network loaded).
    fn classic(a: &Ask) -> Models {
        Models::for_entry(&crate::forecast::Entry {
            ask: a,
            refit_every: 15,
            network: None,
        })
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
            let c = choose(&window(&wave), &a, &classic(&a), current, true).unwrap();
            assert_eq!(c.model, ModelKind::SeasonalNaive, "{c:?}");
            let score = |k| c.scores.iter().find(|s| s.0 == k).unwrap().1;
            assert_eq!(score(ModelKind::SeasonalNaive), 0.0);
            assert!(score(ModelKind::Naive) > 0.0);
            assert!(c.scores.iter().any(|s| s.0 == ModelKind::Mstl), "{c:?}");
        }
        // Without the refit budget MSTL does not compete.
        let c = choose(&window(&wave), &a, &classic(&a), None, false).unwrap();
        assert!(c.scores.iter().all(|s| s.0 != ModelKind::Mstl));
    }

    /// Where the season does not pay (seasonal naive scores worse than naive), MSTL is not
    /// scored, budget or not: a random walk, whose changes over a whole season are much
    /// larger than over the horizons (seeded, so the walk is the same every run).
    #[test]
    fn mstl_competes_only_where_the_season_pays() {
        let mut rng = crate::rng::SplitMix64::new(7);
        let walk: Vec<f32> = (0..400)
            .scan(100.0, |y, _| {
                *y += rng.normal();
                Some(*y as f32)
            })
            .collect();
        let a = ask(&[5, 15], &[60]);
        let c = choose(&window(&walk), &a, &classic(&a), None, true).unwrap();
        let score = |k| c.scores.iter().find(|s| s.0 == k).map(|s| s.1);
        assert!(
            score(ModelKind::Naive).unwrap() < score(ModelKind::SeasonalNaive).unwrap(),
            "{c:?}"
        );
        assert_eq!(score(ModelKind::Mstl), None, "{c:?}");
    }

    #[test]
    fn too_short_a_history_is_no_choice() {
        let y: Vec<f32> = (0..30).map(|t| t as f32).collect();
        let a = ask(&[5, 15], &[60]);
        assert_eq!(choose(&window(&y), &a, &classic(&a), None, true), None);
    }

    /// The scored origins reach back [`AUTO_LOOKBACK`], one every `longest / AUTO_DENSITY`
    /// steps: at 1m with a 15m longest horizon, 64 origins (capped) 2 steps apart, the
    /// newest 15 steps before the end; the oldest needs [`MIN_POINTS`] of history.
    #[test]
    fn the_history_must_cover_every_scored_origin() {
        let a = ask(&[5, 15], &[60]);
        let need = MIN_POINTS + (AUTO_MAX_ORIGINS - 1) * 2 + 15 + 1;
        let y: Vec<f32> = (0..need).map(|t| (t % 7) as f32).collect();
        assert_eq!(
            choose(&window(&y[..need - 1]), &a, &classic(&a), None, false),
            None
        );
        let c = choose(&window(&y), &a, &classic(&a), None, false).expect("a choice");
        assert!(c.scores.iter().any(|s| s.0 == ModelKind::Naive), "{c:?}");
    }

    /// The score is the pinball loss of the band and the median: for a forecast `f` of
    /// quantile `q`, `q·(y − f)` above and `(1 − q)·(f − y)` below.
    #[test]
    fn pinball_loss_charges_each_side_by_its_quantile() {
        assert_eq!(pinball(0.9, 10.0, 12.0), 0.9 * 2.0);
        assert!((pinball(0.9, 10.0, 8.0) - 0.1 * 2.0).abs() < 1e-12);
        assert!((pinball(0.1, 10.0, 8.0) - 0.9 * 2.0).abs() < 1e-12);
        assert_eq!(pinball(0.5, 3.0, 3.0), 0.0);
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
