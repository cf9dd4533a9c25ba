//! `GET /metrics` at scale (harness = false; prints figures): the body promcast renders for a
//! snapshot of N series (default 100,000; three horizons, each with an anomaly verdict, as the
//! embedded defaults export) plus its self-metrics.
//!
//! `cargo bench --bench scrape -- [N] [--iterations K]`

use std::sync::Arc;
use std::time::Instant;

use promcast::export::scrape;
use promcast::snapshot::{Anomaly, ModelKind, Point, SeriesForecast, SeriesState, Snapshot};
use promcast::store::{LabelSet, SeriesId};
use promcast::telemetry::Telemetry;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let iterations: usize = args
        .iter()
        .position(|a| a == "--iterations")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(10);
    let series = (0..n)
        .map(|i| {
            let pod = format!(
                "web-{:08x}-{:05}",
                (i as u64 * 2654435761) as u32,
                i % 99_991
            );
            let ns = format!("team-{}", (i / 8) % 300);
            let labels = LabelSet::from_pairs([
                ("__name__", "namespace_pod:http_requests:rate5m"),
                ("cluster", "prod-1"),
                ("namespace", ns.as_str()),
                ("pod", pod.as_str()),
            ]);
            let y = 100.0 + (i % 1000) as f64 * 0.37;
            SeriesForecast {
                labels: Arc::new(labels),
                id: SeriesId(i as u64),
                spec: 0,
                state: SeriesState::Ready,
                model: Some(ModelKind::Lstm),
                auto: Default::default(),
                origin_ms: 0,
                base: 0,
                fitted_ms: 0,
                points: (1..=3)
                    .map(|h| Point {
                        yhat: y * (1.0 + 0.01 * h as f64),
                        lower: y * 0.9,
                        upper: y * 1.1 + h as f64,
                    })
                    .collect(),
                anomaly: Some(Anomaly {
                    score: 0.42,
                    likelihood: 0.1,
                    direction: 0,
                }),
                accuracy: Vec::new(),
                band_scales: Vec::new(),
                rate: false,
            }
        })
        .collect();
    let snapshot = Snapshot {
        generated_ms: 1_700_000_000_000,
        step_ms: 60_000,
        horizons: vec![vec![
            ("5m".into(), 300_000),
            ("15m".into(), 900_000),
            ("30m".into(), 1_800_000),
        ]],
        series,
        scaling: Vec::new(),
    };
    let telemetry = Telemetry::new(["http://mimir:9009/api/v1/push".to_string()]);
    let mut bytes = 0;
    let t0 = Instant::now();
    for _ in 0..iterations {
        bytes = scrape::render(&snapshot, &telemetry).len();
    }
    let per = t0.elapsed().as_secs_f64() / iterations as f64;
    println!(
        "/metrics for {n} series: {:.1} ms per render ({:.2} M samples/s), {:.1} MB body",
        per * 1e3,
        (n * 11) as f64 / per / 1e6,
        bytes as f64 / 1e6
    );
}
