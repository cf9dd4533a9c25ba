//! The inference-backend conformance suite, written once and run for every backend this build
//! has: tract always; promcast's own kernel (`BackendChoice::Cpu`) for the graphs
//! `promcast train` exports (the built-in models; the fixture falls back to tract there);
//! onnxruntime with `--features gpu` (on the CPU provider unless the node has a GPU). The same
//! models (the test fixture and both built-in models), the same windows of
//! real traffic (NASA requests per minute), several batch sizes on the symbolic batch
//! dimension, and concurrent callers. Every backend must give tract's answers within
//! [`TOLERANCE`] in the model's normalised units (1e-4 of the window's scale after
//! de-normalisation).
//!
//! With `--features gpu`, onnxruntime is required: `ORT_DYLIB_PATH` must name the library
//! (`./scripts/test.sh` installs the PyPI `onnxruntime` wheel and sets it); the test fails,
//! it does not skip.

#[path = "common/traces.rs"]
mod traces;

use std::time::Duration;

use promcast::forecast::neural::{
    fixture_model, BackendChoice, FixtureParams, History, LstmModel, BUILTIN_HOUR_MODEL,
    BUILTIN_MODEL,
};

/// Largest difference allowed between backends, in normalised output units.
const TOLERANCE: f32 = 1e-4;

/// The NASA requests-per-minute trace as `f32`.
fn nasa() -> Vec<f32> {
    traces::nasa_requests_per_minute()
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

fn models() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("fixture", fixture_model(&FixtureParams::default())),
        ("builtin", BUILTIN_MODEL.to_vec()),
        ("builtin-60m", BUILTIN_HOUR_MODEL.to_vec()),
    ]
}

/// Every backend this build has, besides tract (the reference).
fn other_backends() -> Vec<(&'static str, BackendChoice)> {
    #[allow(unused_mut)]
    let mut v: Vec<(&'static str, BackendChoice)> = vec![("native", BackendChoice::Cpu)];
    #[cfg(feature = "gpu")]
    {
        use promcast::forecast::neural::ort_worker::OrtOptions;
        let lib = std::env::var_os("ORT_DYLIB_PATH").unwrap_or_else(|| {
            panic!(
                "built with --features gpu but ORT_DYLIB_PATH is not set: point it at \
                 libonnxruntime.so.<version> from the PyPI onnxruntime wheel \
                 (./scripts/test.sh does it)"
            )
        });
        v.push((
            "ort",
            BackendChoice::Ort(OrtOptions {
                library: Some(lib.into()),
                cuda: promcast::server::gpu_present(),
                max_batch: 256,
                max_wait: Duration::from_millis(2),
                ..OrtOptions::default()
            }),
        ));
    }
    v
}

fn histories(y: &[f32], n: usize, ring: usize) -> Vec<History<'_>> {
    (0..n)
        .map(|i| {
            let end = ring + (i * 131) % (y.len() - ring);
            History {
                values: &y[end - ring..end],
                last_ts_ms: end as i64 * 60_000,
                calendar: true,
            }
        })
        .collect()
}

#[test]
fn every_backend_gives_tracts_answers() {
    let y = nasa();
    let step = Duration::from_secs(60);
    let others = other_backends();
    eprintln!(
        "conformance: tract against {:?}",
        others.iter().map(|b| b.0).collect::<Vec<_>>()
    );
    for (name, bytes) in models() {
        let reference = LstmModel::from_bytes_on(&bytes, name, &BackendChoice::Tract).unwrap();
        assert_eq!(reference.backend(), ("tract", "cpu"));
        for (backend, choice) in &others {
            let model = LstmModel::from_bytes_on(&bytes, name, choice)
                .unwrap_or_else(|e| panic!("{name} on {backend}: {e}"));
            // The native kernel serves only the graphs promcast train exports.
            let expect = match (*backend, name) {
                ("native", "fixture") => "tract",
                _ => backend,
            };
            assert_eq!(model.backend().0, expect, "{name}");
            for n in [1usize, 7, 64, 1000] {
                // raw normalised outputs on identical inputs
                let meta = reference.meta();
                let x: Vec<f32> = (0..n * meta.window * meta.features.len())
                    .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
                    .collect();
                let want = reference.run_raw(n, &x).unwrap();
                let got = model.run_raw(n, &x).unwrap();
                assert_eq!(got.len(), want.len());
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                eprintln!("{name} on {backend}, batch {n}: max |difference| {worst:.1e}");
                assert!(
                    worst <= TOLERANCE,
                    "{name} on {backend}, batch {n}: max |difference| {worst}"
                );
                // the whole path on real windows, de-normalised
                let hs = histories(&y, n, 1440);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                reference.predict(&hs, step, &mut a).unwrap();
                model.predict(&hs, step, &mut b).unwrap();
                assert_eq!(a.len(), b.len());
                assert!(!a.is_empty());
                for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                    let scale = 1.0 + p.abs();
                    assert!(
                        (p - q).abs() <= 1e-3 * scale,
                        "{name} on {backend}, batch {n}, value {i}: {p} vs {q}"
                    );
                }
            }
        }
    }
}

#[test]
fn concurrent_callers_get_their_own_rows() {
    let y = nasa();
    let step = Duration::from_secs(60);
    for (backend, choice) in
        std::iter::once(("tract", BackendChoice::Tract)).chain(other_backends())
    {
        let model = LstmModel::from_bytes_on(BUILTIN_MODEL, "builtin", &choice).unwrap();
        let all = histories(&y, 96, 1440);
        let mut single = Vec::new();
        model.predict(&all, step, &mut single).unwrap();
        let per = model.meta().outputs_per_row();
        std::thread::scope(|s| {
            let handles: Vec<_> = all
                .chunks(12)
                .enumerate()
                .map(|(k, chunk)| {
                    let m = &model;
                    s.spawn(move || {
                        let mut out = Vec::new();
                        m.predict(chunk, step, &mut out).unwrap();
                        (k, out)
                    })
                })
                .collect();
            for h in handles {
                let (k, out) = h.join().unwrap();
                let want = &single[k * 12 * per..(k * 12 + 12) * per];
                for (a, b) in out.iter().zip(want) {
                    assert!(
                        (a - b).abs() <= 1e-3 * (1.0 + b.abs()),
                        "{backend}: caller {k}: {a} vs {b}"
                    );
                }
            }
        });
    }
}

#[cfg(feature = "gpu")]
#[test]
fn a_missing_library_is_a_clear_error() {
    use promcast::forecast::neural::ort_worker::OrtOptions;
    let e = LstmModel::from_bytes_on(
        BUILTIN_MODEL,
        "builtin",
        &BackendChoice::Ort(OrtOptions {
            library: Some("/nonexistent/libonnxruntime.so".into()),
            ..OrtOptions::default()
        }),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("/nonexistent/libonnxruntime.so") && e.contains("not found"),
        "{e}"
    );
}
