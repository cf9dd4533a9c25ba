//! The loop on real NASA traffic: what each series ends a step with, `auto`'s choices over
//! steps, and work deferred when a step's budget runs out.

use super::*;
use crate::snapshot::ModelKind;
use crate::store::{hash_labels, AppendStats, LabelRef, Sample, STALE_NAN_BITS};

use crate::test_data::nasa_per_minute as nasa;

fn setup(yaml: &str) -> (Arc<Config>, Arc<Store>, Scheduler) {
    let config = Arc::new(Config::from_yaml(yaml, "test", None).unwrap());
    let store = Arc::new(Store::new(&config, 0));
    let cell = Arc::new(SnapshotCell::new(Snapshot::empty(&config)));
    let s = Scheduler::new(config.clone(), store.clone(), cell, None).unwrap();
    (config, store, s)
}

fn push(store: &Store, job: &str, values: &[f64], first_ms: i64, step_ms: i64) {
    let labels = [
        LabelRef::new("__name__", "job:req:rate1m"),
        LabelRef::new("job", job),
    ];
    let samples: Vec<Sample> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Sample {
            value: *v,
            timestamp: first_ms + i as i64 * step_ms,
        })
        .collect();
    let last_ms = samples.last().map_or(first_ms, |s| s.timestamp);
    store.append(
        hash_labels(&labels),
        &labels,
        &samples,
        last_ms,
        &mut AppendStats::default(),
    );
}

const YAML: &str = r#"
storage: { step: 1m, retention: 6h }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5m, 15m]
    seasons: [1h]
"#;

#[test]
fn auto_forecasts_at_every_history_length_with_a_model_it_can_run() {
    let y = nasa();
    let (config, store, mut sched) = setup(YAML);
    // (points, the models auto may use with that much history: those ready for it)
    let spec = &config.forecast[0];
    let ask = crate::forecast::Ask::new(spec, config.step);
    let models = crate::forecast::Models::for_entry(&crate::forecast::Entry {
        ask: &ask,
        refit_every: spec.refit_every,
        network: None,
    });
    let ready = |n: usize| -> Vec<ModelKind> {
        let values: Vec<f32> = y[1000..1000 + n].iter().map(|v| *v as f32).collect();
        let w = crate::forecast::Window {
            values: &values,
            origin: n as i64 - 1,
            pad: 0,
            step_ms: 60_000,
            calendar: true,
        };
        use crate::forecast::Fit;
        models
            .iter()
            .filter(|m| m.points_needed(&w) == 0)
            .map(|m| m.kind())
            .collect()
    };
    let cases: Vec<(usize, Vec<ModelKind>)> = [3, 8, 80, 150].map(|n| (n, ready(n))).into();
    // Naive starts at 6 points, seasonal naive with a season and the horizons, MSTL with two.
    assert!(cases[0].1.is_empty());
    assert_eq!(cases[1].1, [ModelKind::Naive]);
    assert!(cases[2].1.contains(&ModelKind::SeasonalNaive));
    assert!(!cases[2].1.contains(&ModelKind::Mstl) && cases[3].1.contains(&ModelKind::Mstl));
    let now = 149 * 60_000;
    for (i, (n, _)) in cases.iter().enumerate() {
        let job = format!("j{i}");
        push(
            &store,
            &job,
            &y[1000..1000 + *n],
            now - (*n as i64 - 1) * 60_000,
            60_000,
        );
    }
    let snap = sched.step(now).snapshot;
    for (i, (n, want)) in cases.iter().enumerate() {
        let job = format!("j{i}");
        let s = snap
            .series
            .iter()
            .find(|s| s.labels.get("job") == Some(&job))
            .unwrap();
        match s.model {
            None => assert!(
                want.is_empty()
                    && matches!(s.state, SeriesState::WarmingUp { points_needed, .. } if points_needed > 0),
                "{n} points: {:?}",
                s.state
            ),
            Some(m) => {
                assert!(want.contains(&m), "{n} points: {m:?} not in {want:?}");
                assert_eq!(s.state, SeriesState::Ready);
                assert_eq!(s.points.len(), 2);
                assert!(s
                    .points
                    .iter()
                    .all(|p| p.is_finite() && p.lower <= p.yhat && p.yhat <= p.upper));
            }
        }
    }
}

/// `auto` picks by a rolling backtest on the series' own history and keeps its choice for
/// `auto_every`. A strictly periodic signal is the case with a known answer: seasonal
/// naive forecasts it exactly, so it must win (a made-up series on purpose: its ground
/// truth is the point of the test).
#[test]
fn auto_chooses_by_backtest_and_keeps_the_choice() {
    let yaml = r#"
storage: { step: 1m, retention: 6h }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5m, 15m]
    seasons: [1h]
    auto_every: 30m
    anomaly: { enabled: false }
inference: { model: none }
"#;
    let (_, store, mut sched) = setup(yaml);
    let wave: Vec<f64> = (0..400)
        .map(|t| [3.0, 9.0, 4.0, 12.0, 6.0][(t % 60) / 12] * 10.0 + (t % 12) as f64)
        .collect();
    let now = 399 * 60_000;
    push(&store, "wave", &wave, 0, 60_000);
    let step = sched.step(now);
    assert_eq!(
        step.snapshot.series[0].model,
        Some(ModelKind::SeasonalNaive)
    );
    let mut chosen = step.stats.forecast.auto_choices[ModelKind::SeasonalNaive];
    assert_eq!(chosen, 1);
    // no re-choice before auto_every (30 steps) has passed
    for k in 1..30 {
        push(
            &store,
            "wave",
            &[wave[(399 + k) % 60 + 60]],
            now + k as i64 * 60_000,
            60_000,
        );
        chosen += sched
            .step(now + k as i64 * 60_000)
            .stats
            .forecast
            .auto_choices[ModelKind::SeasonalNaive];
    }
    assert_eq!(chosen, 1);
    push(
        &store,
        "wave",
        &[wave[(399 + 30) % 60 + 60]],
        now + 30 * 60_000,
        60_000,
    );
    chosen += sched.step(now + 30 * 60_000).stats.forecast.auto_choices[ModelKind::SeasonalNaive];
    assert_eq!(chosen, 2);
}

#[test]
fn stale_series_are_not_forecast_until_they_resume() {
    let y = nasa();
    let (_, store, mut sched) = setup(YAML);
    push(&store, "a", &y[..30], 0, 60_000);
    push(
        &store,
        "a",
        &[f64::from_bits(STALE_NAN_BITS)],
        30 * 60_000,
        60_000,
    );
    let snap = sched.step(31 * 60_000).snapshot;
    assert_eq!(snap.series[0].state, SeriesState::Stale);
    assert_eq!(snap.ready().count(), 0);
    push(&store, "a", &y[31..32], 31 * 60_000, 60_000);
    let snap = sched.step(32 * 60_000).snapshot;
    assert_eq!(snap.series[0].state, SeriesState::Ready);
}

#[test]
fn auto_choices_beyond_the_step_budget_are_deferred() {
    // Step 1s: a quarter of a second for 600 re-choices, each a rolling backtest with MSTL
    // fits among the candidates. Every series still gets a forecast; the rest of the
    // choices are made over the next steps.
    let yaml = r#"
storage: { step: 1s, retention: 10m }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5s, 10s]
    model: auto
    seasons: [1m]
    anomaly: { enabled: false }
inference: { model: none }
"#;
    let y = nasa();
    let (_, store, mut sched) = setup(yaml);
    for k in 0..600 {
        push(&store, &format!("s{k}"), &y[k * 50..k * 50 + 600], 0, 1000);
    }
    let chosen = |s: &StepStats| s.forecast.auto_choices.iter().map(|c| c.1).sum::<u64>();
    let t0 = Instant::now();
    let step = sched.step(600_000);
    let took = t0.elapsed();
    let (snap, first) = (step.snapshot, chosen(&step.stats));
    let deferred = step.stats.forecast.auto_deferred;
    assert!(
        deferred > 0,
        "600 choices in {took:?} without deferring any"
    );
    assert_eq!(first + deferred, 600);
    assert!(snap
        .series
        .iter()
        .all(|s| s.state == SeriesState::Ready && s.model.is_some()));
    assert!(
        chosen(&sched.step(601_000).stats) > 0,
        "the next step makes more choices"
    );
}

#[test]
fn refits_beyond_the_step_budget_are_deferred_not_queued() {
    // Step 1s: half a second of refit budget for 600 MSTL fits of 600 points each, far
    // more than one step allows on any machine. Every series still gets a forecast.
    let yaml = r#"
storage: { step: 1s, retention: 10m }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5s, 10s]
    model: mstl
    seasons: [1m]
    refit_every: 1m
"#;
    let y = nasa();
    let (_, store, mut sched) = setup(yaml);
    for k in 0..600 {
        push(&store, &format!("s{k}"), &y[k * 50..k * 50 + 600], 0, 1000);
    }
    let t0 = Instant::now();
    let step = sched.step(600_000);
    let took = t0.elapsed();
    let snap = step.snapshot;
    let deferred = step.stats.forecast.refits_deferred;
    assert!(deferred > 0, "600 fits in {took:?} without deferring any");
    assert_eq!(snap.series.len(), 600);
    let mstl = snap
        .series
        .iter()
        .filter(|s| s.model == Some(ModelKind::Mstl))
        .count();
    assert_eq!(mstl as u64 + deferred, 600);
    // Deferred series have no path yet: a baseline serves them this step.
    for s in &snap.series {
        assert_eq!(s.state, SeriesState::Ready);
        assert!(s.model.is_some());
    }
    // The next step serves the fitted ones from their paths (no refit due) and fits more.
    let snap2 = sched.step(601_000).snapshot;
    let mstl2 = snap2
        .series
        .iter()
        .filter(|s| s.model == Some(ModelKind::Mstl))
        .count();
    assert!(mstl2 > mstl, "{mstl2} <= {mstl}");
    let aged = snap2
        .series
        .iter()
        .filter(|s| s.model == Some(ModelKind::Mstl) && s.fitted_ms < snap2.generated_ms)
        .count();
    assert!(
        aged > 0,
        "forecasts read forward from an earlier fit carry their age"
    );
}

#[test]
fn lstm_rows_are_batched_and_mapped_to_the_entry() {
    use crate::forecast::neural::{fixture_model, FixtureParams};
    let yaml = r#"
storage: { step: 1m, retention: 6h }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [30m, 5m]
"#;
    let config = Arc::new(Config::from_yaml(yaml, "test", None).unwrap());
    let store = Arc::new(Store::new(&config, 0));
    let cell = Arc::new(SnapshotCell::new(Snapshot::empty(&config)));
    let model =
        LstmModel::from_bytes(&fixture_model(&FixtureParams::default()), "fixture").unwrap();
    let mut sched =
        Scheduler::new(config.clone(), store.clone(), cell, Some(Arc::new(model))).unwrap();
    let y = nasa();
    let now = 1_000 * 60_000;
    // 700 series (more than one tract batch), plus one too young for the window.
    for k in 0..700 {
        push(
            &store,
            &format!("s{k}"),
            &y[k * 7..k * 7 + 40],
            now - 39 * 60_000,
            60_000,
        );
    }
    push(&store, "young", &y[..3], now - 2 * 60_000, 60_000);
    let step = sched.step(now);
    let snap = &step.snapshot;
    let lstm: Vec<_> = snap
        .series
        .iter()
        .filter(|s| s.model == Some(ModelKind::Lstm))
        .collect();
    assert_eq!(lstm.len(), 700);
    for s in &lstm {
        assert_eq!(s.state, SeriesState::Ready);
        // Horizons are sorted (5m, 30m) and each point is an ordered, finite band around
        // a persistence forecast (the fixture's median is near the last value).
        assert_eq!(s.points.len(), 2);
        assert!(s
            .points
            .iter()
            .all(|p| p.is_finite() && p.lower <= p.yhat && p.yhat <= p.upper));
    }
    let young = snap
        .series
        .iter()
        .find(|s| s.labels.get("job") == Some("young"))
        .unwrap();
    assert!(
        matches!(young.state, SeriesState::WarmingUp { .. }),
        "{:?}",
        young.state
    );
    assert_eq!(step.stats.forecast.errors[ModelKind::Lstm], 0);
}
