//! Inference backends side by side (harness = false; prints figures):
//! 1. series forecasts per second through `LstmModel::predict` (the built-in model, real NASA
//!    windows), per backend and batch size;
//! 2. end-to-end time of one forecast step of the agent's loop (`Scheduler::step`, model
//!    `lstm`) over N stored series, per backend.
//!
//! `cargo bench --bench backends [--features gpu] -- [native|tract|ort] [N ...]` (default: every
//! backend, N = 10000 100000; the onnxruntime backend needs `--features gpu` and
//! `ORT_DYLIB_PATH`).

#[path = "../tests/common/traces.rs"]
mod traces;

use std::sync::Arc;
use std::time::{Duration, Instant};

use promcast::config::Config;
use promcast::forecast::neural::{BackendChoice, History, LstmModel, BUILTIN_MODEL};
use promcast::snapshot::{Snapshot, SnapshotCell};
use promcast::step::Scheduler;
use promcast::store::{hash_labels, AppendStats, LabelRef, Sample, Store};

/// The NASA requests-per-minute trace as `f32`.
fn nasa() -> Vec<f32> {
    traces::nasa_requests_per_minute()
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

fn backends() -> Vec<(String, BackendChoice)> {
    #[allow(unused_mut)]
    let mut v = vec![
        ("native".to_string(), BackendChoice::Cpu),
        ("tract".to_string(), BackendChoice::Tract),
    ];
    #[cfg(feature = "gpu")]
    {
        use promcast::forecast::neural::ort_worker::OrtOptions;
        if std::env::var_os("ORT_DYLIB_PATH").is_some() {
            v.push((
                "ort".to_string(),
                BackendChoice::Ort(OrtOptions {
                    cuda: promcast::server::gpu_present(),
                    ..OrtOptions::default()
                }),
            ));
        } else {
            eprintln!("ORT_DYLIB_PATH not set: onnxruntime left out");
        }
    }
    v
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    // Words among the arguments pick backends (`native`, `tract`, `ort`); none: every one.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.parse::<usize>().is_err() && !a.starts_with('-'))
        .collect();
    let sizes = if args.is_empty() {
        vec![10_000, 100_000]
    } else {
        args
    };
    let y = nasa();
    let step = Duration::from_secs(60);
    let ring = 1440;
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (name, choice) in backends() {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let model = LstmModel::from_bytes_on(BUILTIN_MODEL, "builtin", &choice).unwrap();
        let (engine, provider) = model.backend();
        for batch in [1usize, 64, 1024, 4096] {
            let hs: Vec<History<'_>> = (0..batch)
                .map(|i| {
                    let end = ring + (i * 37) % (y.len() - ring);
                    History {
                        values: &y[end - ring..end],
                        last_ts_ms: end as i64 * 60_000,
                        calendar: true,
                    }
                })
                .collect();
            let mut out = Vec::new();
            model.predict(&hs, step, &mut out).unwrap();
            let reps = (20_000 / batch).clamp(3, 2000);
            let t0 = Instant::now();
            for _ in 0..reps {
                model.predict(&hs, step, &mut out).unwrap();
            }
            let per_s = (reps * batch) as f64 / t0.elapsed().as_secs_f64();
            println!(
                "{name} ({engine}/{provider}) batch {batch:>5}: {per_s:>9.0} series forecasts/s"
            );
        }
        for &n in &sizes {
            let config = Arc::new(
                Config::from_yaml(
                    "storage: { step: 1m, retention: 24h }\nforecast:\n  - selector: '{__name__=~\".+\"}'\n    model: lstm\n    anomaly: { enabled: false }\nlimits: { max_series: 100000000 }\n",
                    "bench",
                    None,
                )
                .unwrap(),
            );
            let now = 2_000_000 * 60_000i64;
            let store = Arc::new(Store::new(&config, now - 86_400_000));
            let mut stats = AppendStats::default();
            let t_fill = Instant::now();
            let mut samples = Vec::with_capacity(ring);
            for i in 0..n {
                let end = ring + (i * 37) % (y.len() - ring);
                samples.clear();
                samples.extend(y[end - ring..end].iter().enumerate().map(|(k, v)| Sample {
                    value: *v as f64,
                    timestamp: now - (ring - 1 - k) as i64 * 60_000,
                }));
                let id = i.to_string();
                let labels = [
                    LabelRef::new("__name__", "job:req:rate1m"),
                    LabelRef::new("id", &id),
                ];
                store.append(hash_labels(&labels), &labels, &samples, now, &mut stats);
            }
            let fill = t_fill.elapsed();
            let mut sched = Scheduler::new(
                config.clone(),
                store,
                Arc::new(SnapshotCell::new(Snapshot::empty(&config))),
                Some(Arc::new(model.clone())),
            )
            .unwrap();
            let t0 = Instant::now();
            let snap = sched.step(now).snapshot;
            let took = t0.elapsed();
            let ready = snap.ready().count();
            println!(
                "{name} ({engine}/{provider}): one forecast step over {n} series: {:.2} s ({:.0} series/s; {ready} ready; store filled in {:.1} s)",
                took.as_secs_f64(),
                n as f64 / took.as_secs_f64(),
                fill.as_secs_f64()
            );
        }
    }
}
