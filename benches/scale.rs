//! One agent at scale, in one process (harness = false; prints figures): N selected series
//! (default 1,000,000) with full 24h@1m rings of real traffic (windows of the NASA requests-
//! per-minute trace at different offsets), the embedded default forecast entry (horizons
//! 5m/15m/30m, band 0.1/0.9, anomaly scores on, 6h of forecast history) with the chosen model,
//! then consecutive forecast steps through the agent's own loop (`Scheduler::step`), one new
//! real sample per series between steps.
//!
//! Prints RSS per series after filling the store (rings, labels, index) and after the steps
//! (plus per-series model state, anomaly features, forecast history and the snapshot), and
//! the time of each step. The clock is simulated: step k (from 1) starts at (k − 1) × 60 s,
//! whatever the step took, so a series given its first `auto` choice in step k waited
//! (k − 1) × 60 s plus that step's time since its data was there (all rings are full before
//! step 1). First choices made while others wait on the step budget are provisional (made
//! without MSTL, the expensive candidate, and again with it once none waits): the wait for
//! the first choice with every candidate is printed too. The waits' distributions follow the
//! steps, and the last line is one a script can read:
//! `summary: series=N model=M steps=K rss_kib_per_series=X step_s_max=Y first_choice_p99_s=Z
//! rss_kib_per_series_history_full=W` (`first_choice_p99_s=none` when fewer than 99% of the
//! series had a first choice within the steps, or with a model other than `auto`; `W` is `X`
//! plus the forecast history's slots not yet held, 8 bytes a horizon and 2 for the score, up
//! to the span it keeps: the steady state, since the history grows as it fills and three
//! steps hold a tenth of it).
//!
//! `cargo bench --bench scale -- [N] [--model auto|lstm|mstl|seasonal_naive|naive] [--steps K]
//! [--history 6h] [--history-memory 2GiB] [--no-anomaly] [--backend cpu|tract]` (`cpu`, the
//! default, is what the agent runs: promcast's own kernel for the built-in model; `tract` runs
//! it on tract; `--history-memory` defaults to the agent's `storage.forecast_history_memory`).

#[path = "../tests/common/traces.rs"]
mod traces;

use std::sync::Arc;
use std::time::Instant;

use promcast::config::Config;
use promcast::export::history::ForecastHistory;
use promcast::forecast::neural::{BackendChoice, LstmModel, BUILTIN_MODEL};
use promcast::snapshot::{ModelKind, Snapshot, SnapshotCell};
use promcast::step::Scheduler;
use promcast::store::{hash_labels, AppendStats, LabelRef, Sample, Store};
use promcast::telemetry::Telemetry;

/// The agent's allocator (`src/main.rs`), so that RSS here is the agent's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "common/proc_mem.rs"]
mod proc_mem;
use proc_mem::{peak_rss_bytes, rss_bytes};

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Labels shaped like a recording rule's output in a large cluster.
fn labels_of(i: usize) -> [(String, String); 5] {
    [
        (
            "__name__".into(),
            "namespace_pod:http_requests:rate5m".into(),
        ),
        ("cluster".into(), format!("prod-{}", i % 8)),
        ("namespace".into(), format!("team-{}", (i / 8) % 300)),
        (
            "pod".into(),
            format!(
                "web-{:08x}-{:05}",
                (i as u64 * 2654435761) as u32,
                i % 99_991
            ),
        ),
        ("service".into(), format!("svc-{}", i % 4093)),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let model = arg_after(&args, "--model").unwrap_or_else(|| "auto".into());
    let steps: usize = arg_after(&args, "--steps")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let history = arg_after(&args, "--history").unwrap_or_else(|| "6h".into());
    let history_memory = arg_after(&args, "--history-memory")
        .map(|m| format!(", forecast_history_memory: {m}"))
        .unwrap_or_default();
    let anomaly = !args.iter().any(|a| a == "--no-anomaly");
    let backend = match arg_after(&args, "--backend").as_deref() {
        None | Some("cpu") => BackendChoice::Cpu,
        Some("tract") => BackendChoice::Tract,
        Some(other) => panic!("--backend {other}: expected cpu or tract"),
    };
    let y: Vec<f64> = traces::nasa_requests_per_minute();
    let ring = 1440usize;
    println!(
        "machine: {} cores; {n} series, model {model}, anomaly {anomaly}, forecast_history {history}, {steps} steps",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // The embedded default entry, with room for N series.
    let config = Arc::new(
        Config::from_yaml(
            &format!(
                "storage: {{ step: 1m, retention: 24h, forecast_history: {history}{history_memory} }}\n\
                 forecast:\n  - selector: '{{__name__=~\".+:.+\"}}'\n    horizons: [5m, 15m, 30m]\n    \
                 model: {model}\n    quantiles: [0.1, 0.9]\n    seasons: [1h, 1d]\n    \
                 anomaly: {{ enabled: {anomaly} }}\n\
                 limits: {{ max_series: {} }}\n",
                n + 1
            ),
            "bench",
            None,
        )
        .unwrap(),
    );
    let rss0 = rss_bytes();
    let step_ms = 60_000i64;
    let mut now = 2_000_000 * step_ms;
    let store = Arc::new(Store::new(&config, now - 86_400_000));
    let mut stats = AppendStats::default();
    let offset = |i: usize| ring + (i * 37) % (y.len() - ring - 100);
    let t_fill = Instant::now();
    let mut samples = Vec::with_capacity(ring);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let end = offset(i);
        samples.clear();
        samples.extend(y[end - ring..end].iter().enumerate().map(|(k, v)| Sample {
            value: *v,
            timestamp: now - (ring - 1 - k) as i64 * step_ms,
        }));
        let owned = labels_of(i);
        let labels: Vec<LabelRef<'_>> = owned.iter().map(|(k, v)| LabelRef::new(k, v)).collect();
        let h = hash_labels(&labels);
        store.append(h, &labels, &samples, now, &mut stats);
        ids.push((h, owned));
    }
    let fill = t_fill.elapsed();
    let rss_store = rss_bytes();
    assert_eq!(store.series_count(), n);
    println!(
        "store filled: {} samples in {:.1} s; RSS {:.0} MiB: {:.0} bytes ({:.2} KiB) per series",
        stats.appended,
        fill.as_secs_f64(),
        (rss_store - rss0) as f64 / 1048576.0,
        (rss_store - rss0) as f64 / n as f64,
        (rss_store - rss0) as f64 / n as f64 / 1024.0
    );

    let lstm = LstmModel::from_bytes_on(BUILTIN_MODEL, "builtin", &backend).unwrap();
    println!("LSTM engine: {}", lstm.backend().0);
    let telemetry = Arc::new(Telemetry::default());
    let cell = Arc::new(SnapshotCell::new(Snapshot::empty(&config)));
    let history = Arc::new(
        ForecastHistory::new(config.forecast_history).with_budget(config.forecast_history_memory),
    );
    cell.subscribe(history.clone());
    let mut sched =
        Scheduler::new(config.clone(), store.clone(), cell, Some(Arc::new(lstm))).unwrap();
    // Per step: (simulated seconds at its end, series given their first choice in it, and
    // their first choice with every candidate).
    let mut first_choices: Vec<(f64, u64, u64)> = Vec::with_capacity(steps);
    let mut step_s_max = 0.0f64;
    let mut rss_last = rss_store;
    for k in 0..steps {
        if k > 0 {
            // The next real minute of every series.
            now += step_ms;
            for (i, (h, owned)) in ids.iter().enumerate() {
                let labels: Vec<LabelRef<'_>> =
                    owned.iter().map(|(k, v)| LabelRef::new(k, v)).collect();
                let s = [Sample {
                    value: y[offset(i) + k - 1],
                    timestamp: now,
                }];
                store.append(*h, &labels, &s, now, &mut stats);
            }
        }
        let t0 = Instant::now();
        let step = sched.step(now);
        let took = t0.elapsed();
        step.stats.record(&telemetry);
        let snap = step.snapshot;
        let mut models = std::collections::BTreeMap::<&str, usize>::new();
        for f in snap.ready() {
            *models
                .entry(f.model.map_or("-", |m| m.as_str()))
                .or_default() += 1;
        }
        let rss = rss_bytes();
        let fs = &step.stats.forecast;
        let choices: u64 = ModelKind::ALL.iter().map(|m| fs.auto_choices[*m]).sum();
        step_s_max = step_s_max.max(took.as_secs_f64());
        rss_last = rss;
        first_choices.push((
            k as f64 * 60.0 + took.as_secs_f64(),
            fs.auto_first_choices,
            fs.auto_first_full_choices,
        ));
        println!(
            "step {}: {:.1} s ({:.0} series/s); auto choices {choices} ({} first, {} series still waiting, {} provisional, {} first with every candidate), deferred {}; ready {} by model {models:?}; RSS {:.0} MiB: {:.0} bytes ({:.2} KiB) per series",
            k + 1,
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            fs.auto_first_choices,
            fs.auto_waiting,
            fs.auto_provisional,
            fs.auto_first_full_choices,
            fs.auto_deferred,
            snap.ready().count(),
            (rss - rss0) as f64 / 1048576.0,
            (rss - rss0) as f64 / n as f64,
            (rss - rss0) as f64 / n as f64 / 1024.0
        );
        drop(snap);
    }
    println!(
        "anomaly state: {:.0} MiB; peak RSS (VmHWM) {:.0} MiB",
        telemetry.anomaly_bytes() as f64 / 1048576.0,
        peak_rss_bytes() as f64 / 1048576.0
    );
    // The wait for a first choice, as a distribution over the series (simulated clock): any
    // first choice (provisional ones, made without MSTL while first choices are backlogged,
    // included), and the first with every candidate.
    let wait_at = |q: f64, full: bool| -> Option<f64> {
        let want = (q * n as f64).ceil() as u64;
        let mut seen = 0;
        first_choices.iter().find_map(|&(t, any, all)| {
            seen += if full { all } else { any };
            (seen >= want && want > 0).then_some(t)
        })
    };
    let show = |w: Option<f64>| w.map_or("none".to_owned(), |s| format!("{s:.0}"));
    for (what, full) in [
        ("first auto choice", false),
        ("first with every candidate", true),
    ] {
        let chosen: u64 = first_choices
            .iter()
            .map(|c| if full { c.2 } else { c.1 })
            .sum();
        println!(
            "{what}: {chosen} of {n} series within {steps} steps; wait (s) p50 {}, p90 {}, p99 {}, max {}",
            show(wait_at(0.5, full)),
            show(wait_at(0.9, full)),
            show(wait_at(0.99, full)),
            show((chosen == n as u64).then(|| wait_at(1.0, full)).flatten()),
        );
    }
    // The history grows as it fills: say how much of it this run's RSS holds.
    let rss_kib = (rss_last - rss0) as f64 / n as f64 / 1024.0;
    let mut rss_full_kib = rss_kib;
    let (mut held, mut full, mut entries) = (0usize, 0usize, 0usize);
    let span = history.span();
    history.for_each(|e| {
        let (bytes, per_bucket) = e.bytes();
        held += bytes;
        full += per_bucket * span;
        entries += 1;
    });
    if entries > 0 {
        let more = full.saturating_sub(held) as f64 / n as f64 / 1024.0;
        rss_full_kib += more;
        println!(
            "forecast history: {span} of {} steps kept a series (storage.forecast_history_memory {} bytes); {held} of {full} bytes held ({:.1}%); when full, about {more:.2} KiB a series more",
            history.len(),
            config.forecast_history_memory,
            100.0 * held as f64 / full.max(1) as f64,
        );
    }
    println!(
        "summary: series={n} model={model} steps={steps} rss_kib_per_series={rss_kib:.2} step_s_max={step_s_max:.1} first_choice_p99_s={} rss_kib_per_series_history_full={rss_full_kib:.2}",
        show(wait_at(0.99, false))
    );
}
