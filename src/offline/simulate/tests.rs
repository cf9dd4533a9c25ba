//! `simulate`'s unit tests: the simulator against the agent's own scaler, on real traces.

use super::*;

/// `--policies` runs every policy of the list by default, in its order.
#[test]
fn the_default_policies_are_the_list() {
    use clap::Args as _;
    let cmd = SimOptions::augment_args(clap::Command::new("simulate"));
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_id() == "policies")
        .unwrap();
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    assert_eq!(defaults.join(","), Policy::ALL.join(","));
    assert_eq!(SimOptions::new(Duration::ZERO).policies, Policy::all());
}

/// Ten hours of real NASA traffic, scored on the last two: every policy runs, the
/// accounting adds up, and the static policy never scales.
#[test]
fn policies_run_and_the_books_balance() {
    let t = crate::offline::data::nasa_days(1);
    let (b0, v) = t.bucketed(60_000);
    let v = &v[300..900];
    let mut opts = SimOptions::new(Duration::from_secs(60));
    opts.capacity = 10.0;
    opts.model = "seasonal_naive".into();
    opts.eval_fraction = 0.2;
    let sim = simulate(v, b0 + 300, false, &opts).unwrap();
    assert_eq!(sim.outcomes.len(), 6);
    assert!(sim.outlooks.ready() > 0);
    let minutes = 120.0;
    for o in &sim.outcomes {
        assert!(o.violation_minutes >= 0.0 && o.violation_minutes <= minutes + 1e-9);
        assert!(o.replica_minutes >= minutes * 1.0 - 1e-9, "{o:?}");
        assert!(o.unserved >= 0.0 && o.overprovision >= 0.0);
    }
    let st = &sim.outcomes[0];
    assert_eq!(st.policy, "static");
    assert_eq!(st.scaling_events, 0);
    assert!((st.replica_minutes - sim.static_replicas as f64 * minutes).abs() < 1e-6);
    // more capacity can only lower violations: quantile (upper band) vs ceiling (median)
    let by = |p: &str| sim.outcomes.iter().find(|o| o.policy == p).unwrap();
    assert!(by("quantile").replica_minutes >= by("ceiling").replica_minutes - 1e-9);
    assert_eq!(sim.timeline.demand.len(), 120);
    assert!(sim.timeline.capacity.iter().all(|c| c.len() == 120));
}

/// The agent's recommendation and the simulator's are the same code on the same inputs:
/// a day of NASA traffic replayed through a real store, the agent's loop and a
/// `scaling:` target, and through the simulator's forecasts and decisions, gives the
/// same replicas and the same deciding rule at every step.
#[test]
fn the_agent_and_the_simulator_decide_alike() {
    use crate::snapshot::{Snapshot, SnapshotCell};
    use crate::step::Scheduler;
    use crate::store::{hash_labels, AppendStats, LabelRef, Sample, Store};
    use std::sync::Arc;

    let t = crate::offline::data::nasa_days(2);
    let (b0, mut v) = t.bucketed(60_000);
    v.truncate(1600);
    v[1450..1453].fill(f32::NAN); // a short gap in the evaluated part
    let mut opts = SimOptions::new(Duration::from_secs(60));
    opts.capacity = 10.0;
    opts.model = "auto".into();
    opts.eval_fraction = 0.1;
    opts.policies = vec![Policy::Buffered(Default::default())];
    let run = Run::new(&v, b0, &opts).unwrap();
    let fc = outlooks(
        &opts,
        true,
        b0,
        &v,
        run.eval_start,
        steps_needed(&opts, Duration::ZERO),
    )
    .unwrap();
    let params = opts.params(Policy::Buffered(Default::default()), 1);
    let mut scaler = Scaler::new(params.clone());
    let sim: Vec<_> = (run.eval_start..v.len())
        .enumerate()
        .map(|(i, b)| {
            let current = scaler.last().unwrap_or(params.min_replicas);
            let now = (b0 + b as i64) * 60_000;
            scaler.decide(
                now,
                run.newest(b),
                fc.get(i).as_ref(),
                opts.lead(),
                60_000,
                current,
            )
        })
        .collect();

    let horizons: Vec<String> = fc.steps.iter().map(|k| format!("{k}m")).collect();
    let yaml = format!(
        "storage: {{ step: 1m, retention: 1d, idle_timeout: 3650d }}\n\
         forecast:\n  - selector: 'replay'\n    horizons: [{}]\n    model: auto\n    \
         quantiles: [0.1, 0.9]\n    anomaly: {{ enabled: false }}\n\
         scaling:\n  - {{ name: web, series: replay, capacity_per_replica: 10, \
         target_utilization: 0.7, max_replicas: 1000, policy: buffered, margin: 0.2, \
         sizing: peak, peak_window: 1m, scale_down_stabilization: 2m }}\n\
         limits: {{ max_series: 10, max_future: 3650d }}\n",
        horizons.join(", ")
    );
    let config = Arc::new(Config::from_yaml(&yaml, "test", None).unwrap());
    assert_eq!(config.scaling[0].params, params, "same knobs");
    let store = Arc::new(Store::new(&config, b0 * 60_000));
    let cell = Arc::new(SnapshotCell::new(Snapshot::empty(&config)));
    let lstm = load_lstm(&ModelSource::Builtin, &BackendChoice::Cpu).unwrap();
    let mut sched = Scheduler::new(config.clone(), store.clone(), cell, lstm).unwrap();
    let labels = [LabelRef::new("__name__", "replay")];
    let append = |from: usize, to: usize| {
        let samples: Vec<Sample> = (from..to)
            .filter(|&b| v[b].is_finite())
            .map(|b| Sample {
                value: v[b] as f64,
                timestamp: (b0 + b as i64) * 60_000,
            })
            .collect();
        let now = (b0 + to as i64) * 60_000;
        store.append(
            hash_labels(&labels),
            &labels,
            &samples,
            now,
            &mut AppendStats::default(),
        );
    };
    append(0, run.eval_start - 1);
    let mut agreed = 0;
    for (i, b) in (run.eval_start..v.len()).enumerate() {
        append(b - 1, b);
        let snap = sched.step((b0 + b as i64) * 60_000).snapshot;
        let r = snap.recommendation("web").unwrap();
        let (desired, reason) = (r.desired, r.reason);
        let s = sim[i];
        assert_eq!(desired, s.map(|d| d.desired), "bucket {b}");
        assert_eq!(reason, s.map(|d| d.reason), "bucket {b}");
        assert_eq!(r.predicted, s.and_then(|d| d.predicted), "bucket {b}");
        agreed += desired.is_some() as usize;
    }
    assert!(agreed > 150, "only {agreed} decisions to compare");
}

/// A lower target utilisation buys headroom: more replica-minutes, less unserved demand.
#[test]
fn lower_utilisation_costs_more_and_serves_more() {
    let t = crate::offline::data::nasa_days(1);
    let (b0, v) = t.bucketed(60_000);
    let v = &v[300..900];
    let mut opts = SimOptions::new(Duration::from_secs(60));
    opts.capacity = 10.0;
    opts.policies = vec![Policy::Reactive(crate::policy::Reactive)];
    let at = |u: f64| {
        let mut o = opts.clone();
        o.target_utilization = u;
        simulate(v, b0 + 300, false, &o).unwrap().outcomes.remove(0)
    };
    let (low, high) = (at(0.5), at(1.0));
    assert!(
        low.replica_minutes > high.replica_minutes,
        "{low:?} {high:?}"
    );
    assert!(low.unserved < high.unserved, "{low:?} {high:?}");
}

/// The oracle bound knows the level: on real traffic its median tracks the centred mean,
/// and planning at its 0.9 level misses less than planning at its median.
#[test]
fn oracle_bound_knows_the_level() {
    let t = crate::offline::data::nasa_days(1);
    let (b0, v) = t.bucketed(60_000);
    let v = &v[300..900];
    let mut opts = SimOptions::new(Duration::from_secs(60));
    opts.capacity = 10.0;
    opts.model = "oracle:15".into();
    opts.policies = vec![
        Policy::Reactive(crate::policy::Reactive),
        Policy::Ceiling(crate::policy::Ceiling),
        Policy::Quantile(Default::default()),
    ];
    opts.scale_down_stabilization = Duration::ZERO;
    // At full utilisation, where the band's width is all the headroom there is.
    opts.target_utilization = 1.0;
    let sim = simulate(v, b0 + 300, false, &opts).unwrap();
    assert_eq!(sim.outlooks.ready(), 120);
    let by = |p: &str| sim.outcomes.iter().find(|o| o.policy == p).unwrap();
    assert!(
        by("quantile").violation_minutes < by("ceiling").violation_minutes,
        "{:?}",
        sim.outcomes
    );
    let fc = oracle_outlooks(v, 480, 1, 15);
    let centred: f64 = v[500 - 7..500 + 8].iter().map(|x| *x as f64).sum::<f64>() / 15.0;
    assert!((fc.bands[19].as_ref().unwrap()[0].yhat - centred).abs() < 1e-9);
    opts.model = "oracle:0".into();
    let e = simulate(v, b0 + 300, false, &opts).err().unwrap();
    assert!(e.to_string().contains("oracle:N"), "{e}");
}
