//! The accuracy outputs end to end, against a real Prometheus (Debian's 2.42):
//!
//! ```text
//! this test ──remote_write (a real trace, live, one sample a second)──▶ promcast serve
//!                                                                         │ seasonal_naive, step 1s
//! Prometheus ◀── remote_write N:forecast_mase, N:forecast_coverage, … ───┘
//! ```
//!
//! Then the PromQL value of `N:forecast_mase` and `N:forecast_coverage` at the end must equal
//! what `promcast backtest --lag 1` computes (its `accuracy.csv`) on the same samples, with the
//! same window: the agent's rolling accuracy is the error of the forecasts it served against
//! what then happened, nothing else. Prometheus is required (`./scripts/test.sh` installs it).
//!
//! Timing: the agent steps at each second's start and sees the buckets up to the one before
//! (`--lag 1` in the backtest); the test writes bucket `j`'s sample half a second into it and
//! reads the agent's snapshot back to check that the step saw exactly the buckets before.
//! A machine too loaded to keep that (a write or a step half a second late) is detected, and
//! the run is repeated (at most three times) rather than compared.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{
    addr, free_port, http_get, now_ms, poll, remote_write, series, traces, urlencode, Procs,
};
use serde_json::Value;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");
const NAME: &str = "nasa_requests";
const HORIZONS: [&str; 2] = ["2s", "5s"];
/// Seconds of live replay.
const POINTS: usize = 75;

fn sleep_until(ms: i64) {
    let d = ms - now_ms();
    if d > 0 {
        std::thread::sleep(Duration::from_millis(d as u64));
    }
}

/// Prometheus' instant query, its vector's `(labels, value)` pairs.
fn query(prom: SocketAddr, q: &str) -> Result<Vec<(Value, f64)>, String> {
    let r = http_get(prom, &format!("/api/v1/query?query={}", urlencode(q)))?;
    let v: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
    if v["status"] != "success" {
        return Err(r.body);
    }
    Ok(v["data"]["result"]
        .as_array()
        .ok_or_else(|| r.body.clone())?
        .iter()
        .map(|s| {
            let value = s["value"][1].as_str().unwrap_or("NaN").parse().unwrap();
            (s["metric"].clone(), value)
        })
        .collect())
}

/// One live run; `Err` when the machine could not keep the timing (the caller repeats).
fn run(values: &[f64]) -> Result<(), String> {
    let tmp = tempfile::Builder::new()
        .prefix("promcast-e2e-accuracy-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let promcast_at = addr(free_port());
    let prom_at = loop {
        let a = addr(free_port());
        if a != promcast_at {
            break a;
        }
    };
    std::fs::write(
        dir.join("promcast.yml"),
        format!(
            r#"storage: {{ step: 1s, retention: 10m, idle_timeout: 10m }}
forecast:
  - selector: '{{__name__="{NAME}"}}'
    horizons: [{h}]
    model: seasonal_naive
    seasons: [10s]
    quantiles: [0.1, 0.9]
    accuracy_window: 30s
    anomaly: {{ enabled: false }}
remote_write:
  - url: http://{prom_at}/api/v1/write
    timeout: 5s
"#,
            h = HORIZONS.join(", ")
        ),
    )
    .unwrap();
    std::fs::write(dir.join("prometheus.yml"), "global: {}\n").unwrap();
    let mut procs = Procs::default();
    procs.start_promcast(dir, promcast_at);
    procs.start_prometheus(
        dir,
        prom_at,
        &["--web.enable-remote-write-receiver", "--log.level=warn"],
    );
    for (name, at) in [("promcast", promcast_at), ("Prometheus", prom_at)] {
        poll(
            &format!("{name} /-/ready"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                for p in ["promcast", "prometheus"] {
                    procs.get(p).check_running()?;
                }
                http_get(at, "/-/ready").map(drop)
            },
        );
    }

    // Live: bucket j's sample half a second into second j; the agent's step at the start of
    // second j + 1 forecasts from it, its horizons counted from j + 1.
    let b0 = now_ms() / 1000 + 2;
    let mut csv = String::from("time,value\n");
    for (j, &v) in values.iter().enumerate() {
        let bucket = b0 + j as i64;
        let t = bucket * 1000 + 500;
        sleep_until(t);
        remote_write(promcast_at, vec![series(&[("__name__", NAME)], &[(t, v)])])?;
        csv.push_str(&format!("{}.5,{v}\n", bucket));
        // The step at the start of this second saw the buckets up to the one before.
        if j > 0 {
            let r = http_get(
                promcast_at,
                &format!("/api/v1/forecasts?selector={}", urlencode(NAME)),
            )?;
            let v: Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
            let origin = v["data"]["series"][0]["origin"]
                .as_f64()
                .unwrap_or(f64::NAN);
            let generated = v["data"]["generated_at"].as_f64().unwrap_or(f64::NAN);
            if origin != (bucket - 1) as f64 || generated.floor() != bucket as f64 {
                return Err(format!(
                    "second {bucket}: the step at {generated} forecast from {origin}, not {}",
                    bucket - 1
                ));
            }
        }
        if now_ms() >= (bucket + 1) * 1000 {
            return Err(format!("the write of second {bucket} ended after it"));
        }
    }
    let end = b0 + values.len() as i64;

    // The backtest of the same samples, with the agent's lag of one step: every origin from
    // the first sample (a test split of all but three points: the first forecast's targets).
    let input = dir.join("trace.csv");
    std::fs::write(&input, csv).unwrap();
    let out = dir.join("backtest");
    let bt = Command::new(PROMCAST)
        .arg("backtest")
        .arg("--input")
        .arg(&input)
        .args(["--step", "1s", "--horizons", &HORIZONS.join(",")])
        .args(["--models", "seasonal_naive", "--seasons", "10s"])
        .args(["--retention", "10m", "--accuracy-window", "30s"])
        .args(["--test-fraction", "0.95", "--lag", "1"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        bt.status.success(),
        "promcast backtest: {}",
        String::from_utf8_lossy(&bt.stderr)
    );
    let accuracy = std::fs::read_to_string(out.join("accuracy.csv")).unwrap();
    let expected: Vec<(String, f64, f64)> = accuracy
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[2].to_string(),
                c[4].parse().unwrap(),
                c[5].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        expected.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        HORIZONS,
        "accuracy.csv: {accuracy}"
    );

    // In Prometheus, once a step after the last target's has been written there: the value
    // PromQL reads at the end equals the backtest's, horizon by horizon.
    for (horizon, mase, coverage) in &expected {
        assert!(mase.is_finite() && *mase > 0.0, "{accuracy}");
        assert!((0.0..=1.0).contains(coverage), "{accuracy}");
        for (family, want) in [("forecast_mase", mase), ("forecast_coverage", coverage)] {
            let q = format!(r#"{NAME}:{family}{{horizon="{horizon}"}}"#);
            let got = poll(
                &format!("{q} written after second {end}"),
                Duration::from_secs(60),
                Duration::from_millis(250),
                || {
                    let at = query(prom_at, &format!("timestamp({q})"))?;
                    match at.first() {
                        Some((_, t)) if *t >= (end + 1) as f64 => {}
                        other => return Err(format!("newest sample at {other:?}")),
                    }
                    query(prom_at, &q)?
                        .first()
                        .map(|s| s.1)
                        .ok_or_else(|| "no sample".to_string())
                },
            );
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{q}: Prometheus has {got}, the backtest {want}"
            );
        }
    }
    // The page's API serves the same figures beside the forecasts.
    let r = http_get(
        promcast_at,
        &format!("/api/v1/forecasts?selector={}", urlencode(NAME)),
    )?;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    for (i, (_, mase, _)) in expected.iter().enumerate() {
        let api = v["data"]["series"][0]["forecasts"][i]["mase"].as_f64();
        assert_eq!(api, Some(*mase), "{}", r.body);
    }
    Ok(())
}

#[test]
fn accuracy_outputs_in_prometheus_equal_the_backtest() {
    // NASA requests per minute, two days in (daytime traffic), one value a second.
    let nasa = traces::nasa_requests_per_minute();
    let values = &nasa[2 * 1440 + 600..2 * 1440 + 600 + POINTS];
    let mut failures = Vec::new();
    for _ in 0..3 {
        match run(values) {
            Ok(()) => return,
            Err(e) => {
                eprintln!("e2e_accuracy: timing not kept, repeating: {e}");
                failures.push(e);
            }
        }
    }
    panic!("the machine never kept the live timing: {failures:?}");
}
