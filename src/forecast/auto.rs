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
/// MSTL, whose fits are expensive (tens of milliseconds each), is fitted at every sixth
/// scored origin (every longest horizon) and read forward in between, as the agent serves it
/// between refits: 8 fits per choice over 4 hours.
pub const AUTO_MSTL_EVERY: usize = 6;
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
    /// Summed pinball loss of each candidate's band and median over the backtest.
    pub scores: Vec<(ModelKind, f64)>,
    /// The model kept unless another was [`AUTO_MARGIN`] better.
    pub incumbent: Option<(ModelKind, f64)>,
}

/// Chooses a model for the series whose history is `window` (its padding is ignored): every
/// candidate that has the history for it forecasts the origins of the last [`AUTO_LOOKBACK`]
/// (one every `longest / AUTO_DENSITY` steps, at most [`AUTO_MAX_ORIGINS`]); MSTL competes
/// only `with_mstl` (within the step's refit budget) and where seasonal naive scored better
/// than naive (the season pays on this series; elsewhere MSTL, the most expensive to score,
/// is not tried), and is fitted every [`AUTO_MSTL_EVERY`] origins. Each is scored by its
/// summed pinball loss at the band's quantiles and the median, at the entry's horizons: a
/// proper score, so a model wins by a better median *and* a better band. The incumbent
/// (`current`, else the first of [`PREFERENCE`] scored) is kept unless another model is
/// [`AUTO_MARGIN`] better. `None` while the history is too short to compare.
pub fn choose(
    window: &Window<'_>,
    ask: &Ask,
    lstm: Option<&Lstm>,
    current: Option<ModelKind>,
    with_mstl: bool,
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
    // Oldest first: MSTL's fits are read forward.
    let os: Vec<usize> = (0..count).rev().map(|j| n - 1 - max_h - j * gap).collect();
    let oldest_o = os[0];
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
    let observed = window.observed();
    let mut scores: Vec<(ModelKind, f64)> = candidates
        .iter()
        .filter_map(|m| Some((m.kind(), backtest(m, &windows, observed, ask)?)))
        .collect();
    // MSTL, a seasonal model and by far the most expensive to score, competes only where
    // the season pays on this series' recent history: seasonal naive beat naive.
    let score_of = |k: ModelKind| scores.iter().find(|s| s.0 == k).map(|s| s.1);
    let seasonal_pays = matches!(
        (score_of(ModelKind::SeasonalNaive), score_of(ModelKind::Naive)),
        (Some(s), Some(n)) if s < n
    );
    let mstl = Mstl::new(ask.clone(), AUTO_MSTL_EVERY * gap);
    if with_mstl && seasonal_pays && !mstl.usable(oldest_o + 1).is_empty() {
        let m = Model::Mstl(mstl);
        if let Some(sc) = backtest(&m, &windows, observed, ask) {
            scores.push((ModelKind::Mstl, sc));
        }
    }
    decide(scores, current)
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
    let mut points: Vec<Point> = Vec::new();
    let mut sum = 0.0;
    for (i, w) in windows.iter().enumerate() {
        let fit = fits[i / every].as_ref().ok()?;
        let o = w.values.len() - 1;
        let reached = fit.predict(w.origin, &mut points);
        for (hi, h) in ask.horizons.iter().enumerate() {
            let y = observed[o + h];
            if !y.is_finite() {
                continue;
            }
            let p = points.get(hi).filter(|_| reached)?;
            if !(p.yhat.is_finite() && p.lower.is_finite() && p.upper.is_finite()) {
                return None;
            }
            let y = y as f64;
            sum += pinball(0.5, p.yhat, y) + pinball(q_lo, p.lower, y) + pinball(q_hi, p.upper, y);
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
        let c = choose(&window(&walk), &ask(&[5, 15], &[60]), None, None, true).unwrap();
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
        assert_eq!(
            choose(&window(&y), &ask(&[5, 15], &[60]), None, None, true),
            None
        );
    }

    /// The scored origins reach back [`AUTO_LOOKBACK`], one every `longest / AUTO_DENSITY`
    /// steps: at 1m with a 15m longest horizon, 64 origins (capped) 2 steps apart, the
    /// newest 15 steps before the end; the oldest needs [`MIN_POINTS`] of history.
    #[test]
    fn the_history_must_cover_every_scored_origin() {
        let a = ask(&[5, 15], &[60]);
        let need = MIN_POINTS + (AUTO_MAX_ORIGINS - 1) * 2 + 15 + 1;
        let y: Vec<f32> = (0..need).map(|t| (t % 7) as f32).collect();
        assert_eq!(choose(&window(&y[..need - 1]), &a, None, None, false), None);
        let c = choose(&window(&y), &a, None, None, false).expect("a choice");
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
