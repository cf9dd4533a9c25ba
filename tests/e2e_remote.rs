//! Remote read both ways, and restarts, against a real Prometheus 2.42 over real HTTP:
//!
//! 1. Prometheus with `remote_read` pointing at promcast: a PromQL range query over
//!    `N:forecast` returns points after now, with the input's labels; past forecasts and
//!    the scaling target's desired replicas come back over the last minute.
//! 2. Prometheus already holds an hour of history; promcast, started afterwards with
//!    `backfill`, forecasts the series with a model that needs that history right after its
//!    first sample.
//! 3. promcast killed with SIGKILL while Prometheus keeps writing, then restarted: the ring
//!    it holds afterwards equals Prometheus' own samples, with no hole.
//!
//! Prometheus is required (`./scripts/test.sh` installs it).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::traces::nasa_requests_per_minute;
use common::{
    addr, free_port, http_get, http_post, now_ms, poll, remote_write, urlencode, Proc, Procs,
};
use promcast::proto::prometheus as pb;
use serde_json::Value;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");

fn two_ports() -> (SocketAddr, SocketAddr) {
    let a = free_port();
    let b = loop {
        let p = free_port();
        if p != a {
            break p;
        }
    };
    (addr(a), addr(b))
}

fn get_json(at: SocketAddr, path: &str) -> Result<Value, String> {
    let r = http_get(at, path)?;
    if r.status != 200 {
        return Err(format!("GET {path}: HTTP {}: {}", r.status, r.body.trim()));
    }
    serde_json::from_str(&r.body).map_err(|e| format!("{path}: {e}: {}", r.body))
}

fn start_promcast(procs: &mut Procs, dir: &Path, name: &'static str, at: SocketAddr, yaml: &str) {
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg, yaml).unwrap();
    let mut cmd = Command::new(PROMCAST);
    cmd.arg("serve").arg("--config").arg(&cfg).args([
        "--web.listen-address",
        &at.to_string(),
        "--log.level",
        "debug",
    ]);
    procs
        .procs
        .push(Proc::spawn(name, cmd, dir.join(format!("{name}.log"))));
    poll(
        &format!("{name} /-/ready"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            procs.get(name).check_running()?;
            http_get(at, "/-/ready").and_then(|r| {
                if r.status == 200 {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status))
                }
            })
        },
    );
}

fn start_prometheus(procs: &mut Procs, dir: &Path, at: SocketAddr, yml: &str) {
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, yml).unwrap();
    procs.start_prometheus(
        dir,
        at,
        &[
            "--web.enable-remote-write-receiver",
            "--storage.remote.flush-deadline=1s",
        ],
    );
    poll(
        "Prometheus /-/ready",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            procs.get("prometheus").check_running()?;
            http_get(at, "/-/ready").and_then(|r| {
                if r.status == 200 {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status))
                }
            })
        },
    );
}

/// `data.result` of a Prometheus API query.
fn prom_query(prom: SocketAddr, path_and_query: &str) -> Result<Vec<Value>, String> {
    let v = get_json(prom, path_and_query)?;
    if v["status"] != "success" {
        return Err(v.to_string());
    }
    v["data"]["result"]
        .as_array()
        .cloned()
        .ok_or_else(|| v.to_string())
}

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label {
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn prometheus_reads_forecasts_into_the_future() {
    let tmp = tempfile::Builder::new()
        .prefix("promcast-rr-")
        .tempdir()
        .unwrap();
    let (promcast_at, prom_at) = two_ports();
    let mut procs = Procs::default();
    start_promcast(
        &mut procs,
        tmp.path(),
        "promcast",
        promcast_at,
        r#"storage: { step: 1s, retention: 10m, idle_timeout: 1m, forecast_history: 5m }
forecast:
  - selector: '{__name__="prometheus_tsdb_head_series"}'
    horizons: [5s, 10s, 30s]
    model: naive
scaling:
  - name: head
    series: 'prometheus_tsdb_head_series'
    capacity_per_replica: 100
    min_replicas: 1
    max_replicas: 1000
    lead_time: 5s
"#,
    );
    start_prometheus(
        &mut procs,
        tmp.path(),
        prom_at,
        &format!(
            r#"global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{ targets: ["{prom_at}"] }}]
remote_write:
  - url: http://{promcast_at}/api/v1/write
    queue_config: {{ batch_send_deadline: 1s }}
remote_read:
  - url: http://{promcast_at}/api/v1/read
    read_recent: true
"#
        ),
    );
    // A range query ending 40 s in the future: the cone is there after now.
    let (result, asked_at) = poll(
        "forecast points after now through Prometheus' remote read",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let now = now_ms() as f64 / 1e3;
            let q = urlencode(r#"prometheus_tsdb_head_series:forecast{horizon=""}"#);
            let r = prom_query(
                prom_at,
                &format!(
                    "/api/v1/query_range?query={q}&start={:.3}&end={:.3}&step=1",
                    now - 20.0,
                    now + 40.0
                ),
            )?;
            let future = r.iter().any(|s| {
                s["values"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|p| p[0].as_f64().unwrap_or(0.0) > now + 1.0))
            });
            if r.len() == 3 && future {
                Ok((r, now))
            } else {
                Err(format!("{} series, future points: {future}", r.len()))
            }
        },
    );
    let kinds: Vec<String> = result
        .iter()
        .map(|s| {
            s["metric"]["ml_forecast"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    for k in ["yhat", "yhat_lower", "yhat_upper"] {
        assert!(kinds.contains(&k.to_string()), "{kinds:?}");
    }
    for s in &result {
        assert_eq!(s["metric"]["job"], "prometheus", "{s}");
        assert_eq!(s["metric"]["instance"], prom_at.to_string(), "{s}");
        let last = s["values"].as_array().unwrap().last().unwrap();
        assert!(last[0].as_f64().unwrap() > asked_at + 1.0, "{s}");
        let v: f64 = last[1].as_str().unwrap().parse().unwrap();
        assert!(v.is_finite() && v > 0.0);
    }
    // Past forecasts at their target times: the 5s forecasts of the last minute.
    let hist = poll(
        "past forecasts (horizon=5s) through remote read",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let q = urlencode(
                r#"prometheus_tsdb_head_series:forecast{horizon="5s", ml_forecast="yhat"}[1m]"#,
            );
            let r = prom_query(prom_at, &format!("/api/v1/query?query={q}"))?;
            match r.first() {
                Some(s) if s["values"].as_array().is_some_and(|v| v.len() >= 5) => Ok(s.clone()),
                _ => Err(format!("{r:?}")),
            }
        },
    );
    assert_eq!(hist["metric"]["horizon"], "5s");
    // their timestamps are whole seconds (bucket starts) in the past
    for p in hist["values"].as_array().unwrap() {
        let t = p[0].as_f64().unwrap();
        assert!(
            t <= now_ms() as f64 / 1e3 + 1.0 && (t - t.round()).abs() < 1e-6,
            "{p}"
        );
    }
    // Desired replicas and the load they used, over the last minute, only through remote
    // read (this Prometheus does not scrape promcast).
    let range = |q: &str| -> Result<BTreeMap<i64, f64>, String> {
        let r = prom_query(prom_at, &format!("/api/v1/query?query={}", urlencode(q)))?;
        let [s] = r.as_slice() else {
            return Err(format!("{q}: {} series: {r:?}", r.len()));
        };
        Ok(s["values"]
            .as_array()
            .ok_or("no values")?
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap_or(0.0) * 1e3).round() as i64;
                (
                    t,
                    p[1].as_str().unwrap_or("NaN").parse().unwrap_or(f64::NAN),
                )
            })
            .collect())
    };
    let (desired, used) = poll(
        "promcast_desired_replicas over a minute through remote read",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let desired = range(r#"promcast_desired_replicas{target="head", mode="active"}[1m]"#)?;
            let used = range(r#"promcast_scaling_load{target="head", kind="used"}[1m]"#)?;
            if desired.len() >= 5 && used.len() >= 5 {
                Ok((desired, used))
            } else {
                Err(format!("{} desired, {} used", desired.len(), used.len()))
            }
        },
    );
    let mut paired = 0;
    for (t, d) in &desired {
        assert!((1.0..=1000.0).contains(d) && d.fract() == 0.0, "{t}: {d}");
        // the recommendation covers the load it used (more while scale-in waits)
        if let Some(u) = used.get(t) {
            assert!(
                *d >= (u / 100.0).ceil(),
                "at {t}: desired {d} < load {u} / 100"
            );
            paired += 1;
        }
    }
    assert!(paired >= 5, "{desired:?} {used:?}");
    // A malformed read is a 400, not a crash.
    let r = http_post(
        promcast_at,
        "/api/v1/read",
        &[("Content-Encoding", "snappy")],
        b"\x05garbage",
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    procs.get("prometheus").terminate(Duration::from_secs(30));
    let status = procs.get("promcast").terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// NASA requests per minute, in order (replayed at the test's own spacing).
fn nasa(n: usize) -> Vec<f64> {
    let mut v = nasa_requests_per_minute();
    v.truncate(n);
    v
}

#[test]
fn backfill_reads_an_hour_of_history_at_first_sight() {
    let tmp = tempfile::Builder::new()
        .prefix("promcast-bf-")
        .tempdir()
        .unwrap();
    let (promcast_at, prom_at) = two_ports();
    let mut procs = Procs::default();
    start_prometheus(
        &mut procs,
        tmp.path(),
        prom_at,
        "global: { scrape_interval: 1h }\nscrape_configs: []\n",
    );
    // An hour of real traffic at 5 s per point, written into Prometheus.
    let step_ms = 5_000;
    let values = nasa(720);
    let end = now_ms() / step_ms * step_ms - step_ms;
    let start = end - (values.len() as i64 - 1) * step_ms;
    let labels = vec![
        label("__name__", "job:nasa_requests:rate1m"),
        label("job", "nasa"),
    ];
    for chunk in values.chunks(120).enumerate() {
        let (i, vs) = chunk;
        let samples = vs
            .iter()
            .enumerate()
            .map(|(k, v)| pb::Sample {
                value: *v,
                timestamp: start + (i * 120 + k) as i64 * step_ms,
            })
            .collect();
        remote_write(
            prom_at,
            vec![pb::TimeSeries {
                labels: labels.clone(),
                samples,
            }],
        )
        .unwrap();
    }
    let held = poll(
        "the hour of history in Prometheus",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let q = urlencode(r#"count_over_time(job:nasa_requests:rate1m[2h])"#);
            let r = prom_query(prom_at, &format!("/api/v1/query?query={q}"))?;
            let n: f64 = r
                .first()
                .and_then(|s| s["value"][1].as_str()?.parse().ok())
                .unwrap_or(0.0);
            if n >= 720.0 {
                Ok(n)
            } else {
                Err(format!("{n} samples"))
            }
        },
    );
    assert_eq!(held, 720.0);
    // promcast starts afterwards, with a model that needs 30 minutes of history.
    start_promcast(
        &mut procs,
        tmp.path(),
        "promcast",
        promcast_at,
        &format!(
            r#"storage: {{ step: 5s, retention: 2h, idle_timeout: 1h }}
forecast:
  - selector: '{{__name__=~".+:.+"}}'
    horizons: [5s, 30s]
    model: seasonal_naive
    seasons: [30m]
    anomaly: {{ enabled: false }}
backfill:
  url: http://{prom_at}/api/v1/read
  lookback: 2h
"#
        ),
    );
    // First sight: the series' newest sample arrives by remote write.
    let first_sight = Instant::now();
    remote_write(
        promcast_at,
        vec![pb::TimeSeries {
            labels: labels.clone(),
            samples: vec![pb::Sample {
                value: values[values.len() - 1],
                timestamp: now_ms(),
            }],
        }],
    )
    .unwrap();
    let ready = poll(
        "a seasonal-naive forecast right after first sight",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let v = get_json(promcast_at, "/api/v1/forecasts")?;
            let s = v["data"]["series"][0].clone();
            if s["state"] == "ready" && s["model"] == "seasonal_naive" {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    );
    let took = first_sight.elapsed();
    eprintln!("backfill: forecast ready {took:?} after first sight: {ready}");
    assert!(
        took < Duration::from_secs(15),
        "forecast took {took:?} (three steps are 15 s)"
    );
    // The ring holds the hour Prometheus had, value for value.
    let h = get_json(promcast_at, "/api/v1/history").unwrap();
    let points = h["data"]["series"][0]["points"].as_array().unwrap().clone();
    assert!(points.len() >= 720, "{} points", points.len());
    let by_t: BTreeMap<i64, f64> = points
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().unwrap() * 1e3).round() as i64,
                p[1].as_f64().unwrap(),
            )
        })
        .collect();
    for (k, v) in values.iter().enumerate() {
        let t = start + k as i64 * step_ms;
        assert_eq!(by_t.get(&t).copied(), Some(*v as f32 as f64), "at {t}");
    }
    let metrics = http_get(promcast_at, "/metrics").unwrap().body;
    assert!(
        metrics.contains("promcast_backfill_series_total{result=\"ok\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("promcast_backfill"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    procs.get("promcast").terminate(Duration::from_secs(30));
    procs.get("prometheus").terminate(Duration::from_secs(30));
}

#[test]
fn kill_9_and_restart_loses_nothing() {
    let tmp = tempfile::Builder::new()
        .prefix("promcast-k9-")
        .tempdir()
        .unwrap();
    let (promcast_at, prom_at) = two_ports();
    let mut procs = Procs::default();
    let yaml = format!(
        r#"storage: {{ step: 1s, retention: 10m, idle_timeout: 10m, path: '{}', snapshot_every: 2s }}
forecast:
  - selector: '{{__name__="prometheus_tsdb_head_series"}}'
    horizons: [5s]
    model: naive
    anomaly: {{ enabled: false }}
backfill:
  url: http://{prom_at}/api/v1/read
  lookback: 10m
"#,
        tmp.path().join("data").display()
    );
    start_promcast(&mut procs, tmp.path(), "promcast", promcast_at, &yaml);
    start_prometheus(
        &mut procs,
        tmp.path(),
        prom_at,
        &format!(
            r#"global: {{ scrape_interval: 1s }}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{ targets: ["{prom_at}"] }}]
remote_write:
  - url: http://{promcast_at}/api/v1/write
    queue_config: {{ batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s }}
"#
        ),
    );
    let selector = urlencode(r#"{__name__="prometheus_tsdb_head_series"}"#);
    let ring_points = |at: SocketAddr| -> Result<BTreeMap<i64, f64>, String> {
        let h = get_json(at, &format!("/api/v1/history?selector={selector}"))?;
        let pts = h["data"]["series"][0]["points"]
            .as_array()
            .cloned()
            .ok_or("no series yet")?;
        Ok(pts
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap() * 1e3).round() as i64,
                    p[1].as_f64().unwrap(),
                )
            })
            .collect())
    };
    // Enough history, and a snapshot with it.
    poll(
        "20 points and a snapshot",
        Duration::from_secs(90),
        Duration::from_millis(300),
        || {
            let n = ring_points(promcast_at)?.len();
            let m = http_get(promcast_at, "/metrics")?.body;
            let snap = m
                .lines()
                .find_map(|l| l.strip_prefix("promcast_snapshot_series "))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            if n >= 20 && snap >= 1.0 {
                Ok(())
            } else {
                Err(format!("{n} points, snapshot of {snap} series"))
            }
        },
    );
    let before = ring_points(promcast_at).unwrap();
    // SIGKILL: no shutdown snapshot. Prometheus keeps writing into the void (and retries).
    let p = procs.get("promcast");
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    let killed_at = now_ms();
    poll(
        "Prometheus retrying against the dead sink",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let q = urlencode(
                "sum(prometheus_remote_storage_samples_retried_total) > 0 \
                 or sum(prometheus_remote_storage_retried_samples_total) > 0",
            );
            let r = prom_query(prom_at, &format!("/api/v1/query?query={q}"))?;
            if r.is_empty() {
                Err("no retries yet".into())
            } else {
                Ok(())
            }
        },
    );
    procs.procs.retain(|p| p.name != "promcast");
    start_promcast(&mut procs, tmp.path(), "promcast", promcast_at, &yaml);
    let restarted_at = now_ms();
    let log = std::fs::read_to_string(tmp.path().join("promcast.log")).unwrap();
    assert!(log.contains("snapshot loaded"), "{log}");
    // Now the ring must equal Prometheus' own samples, bucketed to 1 s, with no hole older
    // than a few seconds: the snapshot brought back what came before, Prometheus' retries or
    // the backfill filled the time promcast was down.
    let checked = poll(
        "the ring equal to Prometheus' data",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let ring = ring_points(promcast_at)?;
            let q = urlencode(r#"prometheus_tsdb_head_series[10m]"#);
            let r = prom_query(prom_at, &format!("/api/v1/query?query={q}"))?;
            let raw = r.first().ok_or("no data in Prometheus")?["values"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut prom: BTreeMap<i64, f64> = BTreeMap::new();
            for p in &raw {
                let t = (p[0].as_f64().unwrap() * 1e3).round() as i64;
                let v: f64 = p[1].as_str().unwrap().parse().unwrap();
                prom.insert(t.div_euclid(1000) * 1000, v); // last sample of a bucket wins
            }
            let oldest_ring = *ring.keys().next().ok_or("empty ring")?;
            let settled = now_ms() - 4_000;
            let mut missing = Vec::new();
            let mut differ = Vec::new();
            // equal buckets before the kill, while promcast was down, after the restart
            let mut compared = [0usize; 3];
            for (t, v) in prom.range(oldest_ring..settled) {
                match ring.get(t) {
                    None => missing.push(*t),
                    Some(x) if (*x - (*v as f32 as f64)).abs() > 1e-9 => differ.push((*t, *v, *x)),
                    Some(_) => {
                        let phase = if *t < killed_at - 1000 {
                            0
                        } else if *t < restarted_at {
                            1
                        } else {
                            2
                        };
                        compared[phase] += 1;
                    }
                }
            }
            if missing.is_empty()
                && differ.is_empty()
                && oldest_ring <= *before.keys().next().unwrap()
                && compared.iter().all(|c| *c >= 2)
            {
                Ok(compared)
            } else {
                Err(format!(
                    "missing {} buckets (e.g. {:?}), {} differ (e.g. {:?}), ring from {oldest_ring}",
                    missing.len(),
                    missing.iter().take(5).collect::<Vec<_>>(),
                    differ.len(),
                    differ.iter().take(3).collect::<Vec<_>>()
                ))
            }
        },
    );
    eprintln!(
        "kill -9: buckets equal to Prometheus' samples: {} before the kill, {} while down, {} after the restart",
        checked[0], checked[1], checked[2]
    );
    procs.get("prometheus").terminate(Duration::from_secs(30));
    let status = procs.get("promcast").terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    // the shutdown snapshot is there and loads
    assert!(tmp.path().join("data/promcast.snapshot").exists());
}
