//! The shipped LSTM on each CPU engine (promcast's own kernel, the default, and tract): series
//! forecasts per second at batch 1, 64 and 1024, one thread, through `LstmModel::predict`
//! (input windows built from real NASA histories, normalisation, inference,
//! de-normalisation), and the raw plan alone.
//!
//! `cargo bench --bench lstm` (criterion's "thrpt" is forecasts per second; groups
//! `lstm_native` and `lstm_tract`).

#[path = "../tests/common/traces.rs"]
mod traces;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use promcast::forecast::neural::{BackendChoice, History, LstmModel, BUILTIN_MODEL};

/// The NASA requests-per-minute trace as `f32`.
fn nasa() -> Vec<f32> {
    traces::nasa_requests_per_minute()
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

fn bench(c: &mut Criterion) {
    for (name, choice) in [
        ("native", BackendChoice::Cpu),
        ("tract", BackendChoice::Tract),
    ] {
        let model = LstmModel::from_bytes_on(BUILTIN_MODEL, "builtin", &choice)
            .expect("the shipped model loads");
        assert_eq!(model.backend().0, name);
        engine(c, name, &model);
    }
}

fn engine(c: &mut Criterion, name: &str, model: &LstmModel) {
    let y = nasa();
    let step = Duration::from_secs(60);
    let ring = 1440;
    let mut g = c.benchmark_group(format!("lstm_{name}"));
    for batch in [1usize, 64, 1024] {
        let histories: Vec<History<'_>> = (0..batch)
            .map(|i| {
                let end = ring + (i * 37) % (y.len() - ring);
                History {
                    values: &y[end - ring..end],
                    last_ts_ms: end as i64 * 60_000,
                    calendar: true,
                }
            })
            .collect();
        g.throughput(Throughput::Elements(batch as u64));
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::new("predict", batch), &batch, |b, _| {
            b.iter(|| model.predict(&histories, step, &mut out).unwrap())
        });
        let meta = model.meta();
        let input = vec![0.1f32; batch * meta.window * meta.features.len()];
        g.bench_with_input(BenchmarkId::new("plan_only", batch), &batch, |b, _| {
            b.iter(|| model.run_raw(batch, &input).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
