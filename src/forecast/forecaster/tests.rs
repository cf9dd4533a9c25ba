//! The forecaster's unit tests: which model serves, budgets, `auto`'s bookkeeping.

use super::*;
use crate::store::LabelSet;
use crate::test_data::nasa_per_minute;

fn forecaster(model: &str) -> Forecaster {
    forecaster_with(model, "[1h]")
}

fn forecaster_with(model: &str, seasons: &str) -> Forecaster {
    let yaml = format!(
        "storage: {{ step: 1m, retention: 1d }}\nforecast:\n  - selector: 'x'\n    \
         horizons: [5m, 15m]\n    model: {model}\n    seasons: {seasons}\n"
    );
    let config = Config::from_yaml(&yaml, "test", None).unwrap();
    let lstm = super::super::load::load_lstm(
        &crate::config::ModelSource::Builtin,
        &super::super::neural::BackendChoice::Cpu,
    )
    .unwrap();
    Forecaster::new(&config, lstm).unwrap()
}

/// One step for one series whose history is `values` (its last value at bucket 1000).
fn step(f: &mut Forecaster, values: &[f32], budget: Budget) -> SeriesForecast {
    step_with_stats(f, values, budget).0
}

/// One step of one series: its forecast and the step's stats.
fn step_with_stats(
    f: &mut Forecaster,
    values: &[f32],
    budget: Budget,
) -> (SeriesForecast, ForecastStats) {
    let labels = Arc::new(LabelSet::from_pairs([("__name__", "x")]));
    let mut series = SeriesForecast::new(labels, SeriesId(7), 0, 1000, 1000, 60_000);
    f.begin_step(budget);
    f.forecast(values, 0, &mut series, 0);
    let mut out = [series];
    f.flush(&mut out);
    let stats = f.end_step();
    let [series] = out;
    (series, stats)
}

fn nasa(n: usize) -> Vec<f32> {
    nasa_per_minute()[2000..2000 + n]
        .iter()
        .map(|v| *v as f32)
        .collect()
}

#[test]
fn an_entry_that_asks_for_a_model_warms_up_for_it() {
    for (model, n, want) in [
        ("lstm", 10, "lstm"),
        ("mstl", 100, "mstl"),
        ("seasonal_naive", 50, "seasonal_naive"),
        ("naive", 3, "naive"),
    ] {
        let s = step(&mut forecaster(model), &nasa(n), Budget::unlimited());
        match s.state {
            SeriesState::WarmingUp {
                for_model,
                points_needed,
            } => assert!(
                for_model == want && points_needed > 0,
                "{model}: {for_model}"
            ),
            other => panic!("{model} with {n} points: {other:?}"),
        }
    }
    // `auto` serves what the history allows meanwhile: naive before the LSTM's window
    // (48 steps) is filled, then the LSTM.
    let s = step(&mut forecaster("auto"), &nasa(10), Budget::unlimited());
    assert_eq!(s.model, Some(ModelKind::Naive), "{:?}", s.state);
    let s = step(&mut forecaster("auto"), &nasa(50), Budget::unlimited());
    assert_eq!(s.model, Some(ModelKind::Lstm), "{:?}", s.state);
}

/// One step of one series: the step's stats.
fn step_stats(f: &mut Forecaster, values: &[f32], budget: Budget) -> ForecastStats {
    step_with_stats(f, values, budget).1
}

/// How long series wait for `auto` is visible: a series counts as waiting while its
/// history is too short to compare models or the choice budget is spent, and once when
/// it gets its first choice; a kept choice is neither. Each series' forecast says where
/// its choice stands (`SeriesForecast::auto`, the API's `auto_choice`).
#[test]
fn series_waiting_for_a_first_choice_are_counted() {
    let mut f = forecaster("auto");
    let (s, young) = step_with_stats(&mut f, &nasa(10), Budget::unlimited());
    assert_eq!((young.auto_waiting, young.auto_first_choices), (1, 0));
    assert_eq!(s.auto, AutoChoice::Waiting);
    let spent = Budget::for_step(
        Instant::now() - Duration::from_secs(60),
        Duration::from_secs(60),
        1,
    );
    let (s, deferred) = step_with_stats(&mut f, &nasa(600), spent);
    assert_eq!(s.auto, AutoChoice::Waiting);
    assert_eq!(
        (
            deferred.auto_waiting,
            deferred.auto_first_choices,
            deferred.auto_deferred
        ),
        (1, 0, 1)
    );
    // The step after one that postponed a first choice is in backlog mode: the first
    // choice is made without the expensive candidates, and is provisional.
    let (s, first) = step_with_stats(&mut f, &nasa(601), Budget::unlimited());
    assert_eq!(s.auto, AutoChoice::Provisional);
    assert_eq!(
        (
            first.auto_waiting,
            first.auto_first_choices,
            first.auto_provisional,
            first.auto_first_full_choices
        ),
        (0, 1, 1, 0)
    );
    // No first choice waits any more: the provisional choice is made again with every
    // candidate, and then kept.
    let (s, full) = step_with_stats(&mut f, &nasa(602), Budget::unlimited());
    assert_eq!(s.auto, AutoChoice::Chosen);
    assert_eq!(
        (
            full.auto_first_choices,
            full.auto_provisional,
            full.auto_first_full_choices
        ),
        (0, 0, 1)
    );
    let (s, kept) = step_with_stats(&mut f, &nasa(603), Budget::unlimited());
    assert_eq!(s.auto, AutoChoice::Chosen);
    assert_eq!((kept.auto_waiting, kept.auto_first_choices), (0, 0));
    let chosen: u64 = ModelKind::ALL.iter().map(|m| kept.auto_choices[*m]).sum();
    assert_eq!(chosen, 0, "the choice is kept until it is due");
    assert_eq!(kept.auto_first_full_choices, 0);
}

/// Without a backlog a first choice is made with every candidate at once: nothing is
/// provisional.
#[test]
fn without_a_backlog_the_first_choice_is_made_with_every_candidate() {
    let mut f = forecaster("auto");
    let first = step_stats(&mut f, &nasa(600), Budget::unlimited());
    assert_eq!(
        (
            first.auto_first_choices,
            first.auto_provisional,
            first.auto_first_full_choices
        ),
        (1, 0, 1)
    );
}

#[test]
fn without_seasons_auto_never_waits_for_a_seasonal_model() {
    let mut f = forecaster_with("auto", "[]");
    for n in [10, 47, 300] {
        let s = step(&mut f, &nasa(n), Budget::unlimited());
        assert_eq!(s.state, SeriesState::Ready, "{n} points");
        let model = s.model.expect("a model serves");
        assert!(!model.needs_season(), "{n} points: {model}");
        // Before the LSTM's window (48 steps) is filled, and before `auto` can compare
        // models, the most preferred ready model serves: naive.
        if n < 48 {
            assert_eq!(model, ModelKind::Naive, "{n} points");
        }
    }
}

#[test]
fn a_failed_fit_fails_the_series_unless_auto_can_fall_back() {
    // Two hours of buckets, the first 90 minutes never observed: MSTL has the window for
    // its season but not the data.
    let mut values = nasa(120);
    values[..90].fill(f32::NAN);
    let s = step(&mut forecaster("mstl"), &values, Budget::unlimited());
    assert!(
        matches!(&s.state, SeriesState::Failed { reason } if reason.contains("two full seasons")),
        "{:?}",
        s.state
    );
    assert_eq!(
        s.auto,
        AutoChoice::Fixed,
        "an entry naming its model chooses nothing"
    );
    let mut f = forecaster("auto");
    f.begin_step(Budget::unlimited());
    let s = step(&mut f, &values, Budget::unlimited());
    assert_eq!(s.state, SeriesState::Ready);
    assert_ne!(s.model, Some(ModelKind::Mstl));
}

#[test]
fn an_exhausted_budget_defers_refits_and_a_baseline_serves() {
    let spent = Budget::for_step(
        Instant::now() - Duration::from_secs(120),
        Duration::from_secs(60),
        1,
    );
    let mut f = forecaster("mstl");
    let s = step(&mut f, &nasa(300), spent);
    assert_eq!(s.state, SeriesState::Ready);
    assert_eq!(s.model, Some(ModelKind::SeasonalNaive));
    assert_eq!(f.serve.stats.refits_deferred, 1);
    // With time to spare the refit happens, and the fit is read forward next step.
    let s = step(&mut f, &nasa(300), Budget::unlimited());
    assert_eq!(s.model, Some(ModelKind::Mstl));
    assert_eq!(s.fitted_ms, 1000 * 60_000);
}

/// The served band is the model's scaled by the series' calibration: medians equal with
/// and without it, bands different once forecasts have been scored, and the calibration
/// runs without the accuracy outputs (`accuracy_window: 0s`) too.
#[test]
fn served_bands_are_calibrated_unless_the_entry_says_not() {
    let make = |extra: &str| {
        let yaml = format!(
            "storage: {{ step: 1m, retention: 1d }}\nforecast:\n  - selector: 'x'\n    \
             horizons: [5m, 15m]\n    model: naive\n{extra}"
        );
        let config = Config::from_yaml(&yaml, "test", None).unwrap();
        Forecaster::new(&config, None).unwrap()
    };
    let mut raw = make("    calibrate_band: false\n");
    let mut calibrated = make("    accuracy_window: 0s\n");
    let y = nasa(1200);
    let labels = Arc::new(LabelSet::from_pairs([("__name__", "x")]));
    let mut differ = 0;
    for n in 100..y.len() {
        let head = n as i64 - 1;
        let run = |f: &mut Forecaster| {
            let mut s = SeriesForecast::new(labels.clone(), SeriesId(7), 0, head, head, 60_000);
            f.begin_step(Budget::unlimited());
            f.forecast(&y[..n], 0, &mut s, 0);
            f.end_step();
            s
        };
        let (a, b) = (run(&mut raw), run(&mut calibrated));
        assert!(b.accuracy.is_empty(), "no outputs with accuracy_window: 0s");
        for ((p, q), m) in a.points.iter().zip(&b.points).zip(b.model_bands()) {
            assert_eq!(p.yhat, q.yhat);
            // What the scaling policies read: the model's band, recovered.
            assert!(
                (m.lower - p.lower).abs() <= 1e-6 * p.lower.abs().max(1.0),
                "{m:?} {p:?}"
            );
            assert!(
                (m.upper - p.upper).abs() <= 1e-6 * p.upper.abs().max(1.0),
                "{m:?} {p:?}"
            );
            assert!(q.lower <= q.yhat && q.yhat <= q.upper, "{q:?}");
            differ += usize::from(p.lower != q.lower || p.upper != q.upper);
        }
    }
    assert!(differ > 1000, "{differ} bands calibrated");
}

#[test]
fn state_of_series_not_seen_in_a_step_is_dropped() {
    let mut f = forecaster("auto");
    step(&mut f, &nasa(600), Budget::unlimited());
    assert_eq!(f.serve.series.len(), 1, "auto keeps its choice");
    f.begin_step(Budget::unlimited());
    f.end_step();
    assert!(f.serve.series.is_empty());
}

/// The choices give way once the step's own work, at its pace so far, would end it late.
#[test]
fn choices_stop_when_the_step_is_projected_late() {
    let step = Duration::from_secs(60);
    let s = Duration::from_secs;
    // too few series seen to project a pace
    assert!(on_time(s(50), s(0), 999, 1_000_000, step));
    // half the series in 30 s, 10 of them choosing: 20 s more, ending at 50 s of 60
    assert!(on_time(s(30), s(10), 500_000, 1_000_000, step));
    // the same with 5 s choosing: 25 s more, ending at 55 s, past 85% of the step
    assert!(!on_time(s(30), s(5), 500_000, 1_000_000, step));
    // every series seen: what is left is the step's end itself
    assert!(on_time(s(50), s(0), 1_000_000, 1_000_000, step));
    assert!(!on_time(s(52), s(0), 1_000_000, 1_000_000, step));

    // Through the budget: a step 20 s in, with time left in the choice allowance (15 s).
    let budget = Budget::for_step(Instant::now() - s(20), step, 100_000);
    assert!(
        budget.choices(s(1), 50_000),
        "20 s for half: 39 s at the end"
    );
    assert!(
        !budget.choices(s(1), 30_000),
        "19 s for 30%: 64 s at the end"
    );
    // spread over the series: 5% of the allowance (15 s) up front, then their share
    let early = Budget::for_step(Instant::now(), step, 100_000);
    assert!(early.choices(Duration::from_millis(700), 10));
    assert!(
        !early.choices(Duration::from_millis(800), 10),
        "over 5% of 15 s"
    );
    assert!(
        early.choices(s(7), 50_000),
        "half the series, half the allowance"
    );
    assert!(!early.choices(s(8), 50_000));
    assert!(Budget::unlimited().choices(s(1000), 1));
}
