//! Overload and a sender restart, with a real Prometheus 2.42 writing to the real binary:
//!
//! 1. Slow clients hold every remote-write slot (`limits.max_concurrent_writes`: they send
//!    headers and never the body). Prometheus' requests are then answered 503 (never 400)
//!    and Prometheus retries them; each slow client is answered 503 after
//!    `limits.body_timeout`, so they cannot hold the slots for ever.
//! 2. Once the slow clients stop, every sample Prometheus has for the selected series over
//!    the whole run is in promcast's ring, value for value: nothing retried was lost. The
//!    retried samples are counted from Prometheus' own metric.
//! 3. Prometheus restarted mid-stream (it replays its WAL): promcast keeps running, answers
//!    no request 400, and every sample Prometheus scrapes after the restart arrives.
//!
//! And kill -9 under load: Prometheus scraping 20,000 series a second and remote-writing them
//! to promcast (1,000 of them selected, snapshots every 2 s, backfill on); promcast killed
//! with SIGKILL mid-stream and restarted: every sample Prometheus holds for the selected
//! series is in promcast's rings afterwards (from the snapshot, Prometheus' retries, or the
//! backfill of what was acknowledged after the last snapshot), and every series is forecast
//! again by the next step.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{addr, free_port, http_get, metric_total, now_ms, poll, urlencode, Procs};
use serde_json::Value;

/// Every series of Prometheus' head block metrics (about twenty), selected by promcast.
const SELECTOR: &str = r#"{__name__=~"prometheus_tsdb_head_.+"}"#;

/// A request that sends its headers and holds its slot until the server answers.
fn slow_client(at: SocketAddr) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(at)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let head = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: {at}\r\nContent-Encoding: snappy\r\n\
         Content-Type: application/x-protobuf\r\nContent-Length: 4096\r\n\r\n"
    );
    s.write_all(head.as_bytes())?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf)?;
    let status = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(status)
}

/// A series' labels, as both Prometheus' query API and promcast's history API give them.
type Labels = BTreeMap<String, String>;
/// Per series: timestamp (ms for Prometheus, bucket seconds for promcast) → value.
type Samples = BTreeMap<Labels, BTreeMap<i64, f64>>;

fn labels(v: &Value) -> Labels {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Each element of `list` as labels (under `labels_key`) and points (under `points_key`,
/// each turned into timestamp and value by `point`).
fn by_series(
    list: &[Value],
    labels_key: &str,
    points_key: &str,
    point: impl Fn(&Value) -> (i64, f64),
) -> Result<Samples, String> {
    let mut out = Samples::new();
    for s in list {
        let points = s[points_key]
            .as_array()
            .ok_or_else(|| format!("no {points_key}"))?;
        out.insert(labels(&s[labels_key]), points.iter().map(&point).collect());
    }
    Ok(out)
}

/// Prometheus' raw samples of every series `selector` matches, over the last `range`: ms
/// timestamps.
fn prometheus_samples(prom: SocketAddr, selector: &str, range: &str) -> Result<Samples, String> {
    let q = urlencode(&format!("{selector}[{range}]"));
    let body = http_get(prom, &format!("/api/v1/query?query={q}"))?.body;
    let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let series = v["data"]["result"].as_array().ok_or(body.clone())?;
    by_series(series, "metric", "values", |p| {
        (
            (p[0].as_f64().unwrap_or(0.0) * 1e3).round() as i64,
            p[1].as_str().unwrap_or("NaN").parse().unwrap_or(f64::NAN),
        )
    })
}

/// promcast's rings of every series `selector` matches (at most 10,000): labels → bucket (s)
/// → value.
fn ring(at: SocketAddr, selector: &str) -> Result<Samples, String> {
    let body = http_get(
        at,
        &format!(
            "/api/v1/history?selector={}&limit=10000",
            urlencode(selector)
        ),
    )?
    .body;
    let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let series = v["data"]["series"].as_array().ok_or_else(|| body.clone())?;
    by_series(series, "labels", "points", |p| {
        (
            p[0].as_f64().unwrap_or(0.0).floor() as i64,
            p[1].as_f64().unwrap_or(f64::NAN),
        )
    })
}

/// Every Prometheus sample has its value in promcast's bucket of the same second of the
/// same series. When two samples of a series fall into one second (Prometheus' scrape phase
/// moves when it restarts), the bucket holds one of them: either value counts.
fn missing(prom: &Samples, ring: &Samples) -> Vec<(String, i64, f64, Option<f64>)> {
    let empty = BTreeMap::new();
    prom.iter()
        .flat_map(|(labels, samples)| {
            let have = ring.get(labels).unwrap_or(&empty);
            samples
                .iter()
                .filter(|(t, _)| {
                    let second = t.div_euclid(1000);
                    have.get(&second).is_none_or(|r| {
                        !samples
                            .range(second * 1000..(second + 1) * 1000)
                            .any(|(_, v)| *r == *v as f32 as f64)
                    })
                })
                .map(|(t, v)| {
                    let r = have.get(&t.div_euclid(1000)).copied();
                    (labels["__name__"].clone(), *t, *v, r)
                })
        })
        .collect()
}

fn sample_count(s: &Samples) -> usize {
    s.values().map(BTreeMap::len).sum()
}

#[test]
fn overload_is_503_and_retried_samples_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let web = addr(free_port());
    let prom = loop {
        let p = addr(free_port());
        if p != web {
            break p;
        }
    };
    std::fs::write(
        dir.path().join("promcast.yml"),
        format!(
            r#"storage: {{ step: 1s, retention: 10m, idle_timeout: 5m }}
forecast:
  # The rings are compared with Prometheus' samples value for value: counters as sent.
  - selector: '{SELECTOR}'
    counters: raw
    horizons: [5s]
    model: naive
limits: {{ max_concurrent_writes: 2, body_timeout: 3s }}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            r#"global: {{ scrape_interval: 1s }}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{ targets: ["{prom}"] }}]
remote_write:
  - url: http://{web}/api/v1/write
    queue_config: {{ batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s }}
"#
        ),
    )
    .unwrap();
    let mut procs = Procs::default();
    procs.start_promcast(dir.path(), web);
    procs.wait_ready("promcast", web);
    procs.start_prometheus(dir.path(), prom, &[]);
    poll(
        "the first samples through remote write",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            procs.get("prometheus").check_running()?;
            let n = metric_total(web, "promcast_samples_accepted_total");
            (n > 0.0).then_some(()).ok_or(format!("{n} accepted"))
        },
    );

    // 1. One slow client per slot, reconnecting as soon as it is answered.
    let hold = Arc::new(AtomicBool::new(true));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let hold = hold.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while hold.load(Ordering::Relaxed) {
                    answers.push(slow_client(web).unwrap_or(0));
                }
                answers
            })
        })
        .collect();
    let retried = poll(
        "Prometheus retrying requests refused with 503",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            procs.get("promcast").check_running()?;
            let refused = metric_total(web, "promcast_write_requests_total{code=\"503\"}");
            let retried = metric_total(prom, "prometheus_remote_storage_samples_retried_total");
            // ... across at least ten scrapes of the selected series
            let scraped = prometheus_samples(prom, SELECTOR, "5m")
                .ok()
                .and_then(|p| p.values().map(BTreeMap::len).min())
                .unwrap_or(0);
            if refused >= 10.0 && retried > 0.0 && scraped >= 15 {
                Ok(retried)
            } else {
                Err(format!(
                    "{refused} refused, {retried} retried, {scraped} scraped"
                ))
            }
        },
    );
    hold.store(false, Ordering::Relaxed);
    let answers: Vec<u16> = hogs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(
        answers.iter().all(|s| *s == 503),
        "slow clients must be answered 503 after body_timeout: {answers:?}"
    );

    // 2. Every sample Prometheus holds arrived, the retried ones included.
    let (prom_samples, retried_total) = poll(
        "every Prometheus sample in promcast's ring",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let p = prometheus_samples(prom, SELECTOR, "5m")?;
            let lost = missing(&p, &ring(web, SELECTOR)?);
            if lost.is_empty() {
                Ok((
                    p,
                    metric_total(prom, "prometheus_remote_storage_samples_retried_total"),
                ))
            } else {
                Err(format!(
                    "{} of {} missing: {:?}",
                    lost.len(),
                    sample_count(&p),
                    &lost[..lost.len().min(5)]
                ))
            }
        },
    );
    assert!(retried_total >= retried);
    assert!(prom_samples.len() >= 10, "{} series", prom_samples.len());
    assert!(
        prom_samples.values().all(|s| s.len() >= 15),
        "{prom_samples:?}"
    );
    assert_eq!(
        metric_total(web, "promcast_write_requests_total{code=\"400\"}"),
        0.0,
        "overload must never be answered 400"
    );
    eprintln!(
        "overload: {} requests refused with 503, Prometheus retried {retried_total} samples; \
         all {} samples of the {} selected series present",
        metric_total(web, "promcast_write_requests_total{code=\"503\"}"),
        sample_count(&prom_samples),
        prom_samples.len()
    );

    // 3. Prometheus restarted mid-stream.
    let before = metric_total(web, "promcast_samples_accepted_total");
    let status = procs.get("prometheus").terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    procs.procs.retain(|p| p.name != "prometheus");
    // Only what Prometheus scrapes from here on is certain to be sent: its WAL watcher stops
    // at SIGTERM, so the last scrape or two before it can be in its TSDB and never
    // remote-written (seen here: 2 scrapes of 19 series).
    let restarted_ms = now_ms();
    procs.start_prometheus(dir.path(), prom, &[]);
    poll(
        "samples after the Prometheus restart",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            procs.get("prometheus").check_running()?;
            procs.get("promcast").check_running()?;
            let mut p = prometheus_samples(prom, SELECTOR, "2m")?;
            for samples in p.values_mut() {
                samples.retain(|t, _| *t >= restarted_ms);
            }
            if p.is_empty() || sample_count(&p) < 5 * p.len() {
                return Err(format!("{} samples since the restart", sample_count(&p)));
            }
            let lost = missing(&p, &ring(web, SELECTOR)?);
            let accepted = metric_total(web, "promcast_samples_accepted_total");
            if accepted > before && lost.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{accepted} accepted (before: {before}), {} missing: {:?}",
                    lost.len(),
                    &lost[..lost.len().min(4)]
                ))
            }
        },
    );
    assert_eq!(
        metric_total(web, "promcast_write_requests_total{code=\"400\"}"),
        0.0,
        "re-sent samples must not be refused"
    );
    let status = procs.get("promcast").terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// The load target's series: `app_load{shard, i}`, [`load_shards`] × `LOAD_PER_SHARD` of them.
const LOAD_PER_SHARD: usize = 1000;

/// 20 shards (20,000 series a second), or `PROMCAST_LOAD_SHARDS` to try a higher rate.
fn load_shards() -> usize {
    std::env::var("PROMCAST_LOAD_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}
/// The series promcast selects: one shard.
const LOAD_SELECTOR: &str = r#"{__name__="app_load",shard="0"}"#;

/// Serves every scrape on `listener` until `stop`: all `app_load` series, valued
/// k · 1000 + i at the k-th scrape (exact in the ring's f32), so that every sample differs
/// from the one before it.
fn load_target(listener: TcpListener, stop: Arc<AtomicBool>, scrapes: Arc<AtomicU64>) {
    let shards = load_shards();
    listener.set_nonblocking(true).unwrap();
    let mut k = 0u64;
    let mut body = String::new();
    while !stop.load(Ordering::Relaxed) {
        let mut conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // An accept loop's idle wait, not a synchronisation.
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => panic!("load target: accept: {e}"),
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        // The request's head (a scrape is a GET: no body).
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        k += 1;
        scrapes.store(k, Ordering::Relaxed);
        body.clear();
        for shard in 0..shards {
            for i in 0..LOAD_PER_SHARD {
                let _ = std::fmt::Write::write_fmt(
                    &mut body,
                    format_args!(
                        "app_load{{shard=\"{shard}\",i=\"{i}\"}} {}\n",
                        k * 1000 + i as u64
                    ),
                );
            }
        }
        let _ = conn.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        let _ = conn.write_all(body.as_bytes());
    }
}

#[test]
fn kill_9_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicU64::new(0));
    let serving = {
        let (stop, scrapes) = (stop.clone(), scrapes.clone());
        std::thread::spawn(move || load_target(listener, stop, scrapes))
    };
    let web = addr(free_port());
    let prom = loop {
        let p = addr(free_port());
        if p != web && p != target {
            break p;
        }
    };
    std::fs::write(
        dir.path().join("promcast.yml"),
        format!(
            r#"storage: {{ step: 1s, retention: 10m, idle_timeout: 5m, path: '{}', snapshot_every: 2s }}
forecast:
  - selector: '{LOAD_SELECTOR}'
    counters: raw
    horizons: [5s]
    model: naive
    anomaly: {{ enabled: false }}
backfill:
  url: http://{prom}/api/v1/read
  lookback: 10m
"#,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            r#"global: {{ scrape_interval: 1s, scrape_timeout: 1s }}
scrape_configs:
  - job_name: load
    static_configs: [{{ targets: ["{target}"] }}]
remote_write:
  - url: http://{web}/api/v1/write
    queue_config: {{ batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s }}
"#
        ),
    )
    .unwrap();
    let mut procs = Procs::default();
    procs.start_promcast(dir.path(), web);
    procs.wait_ready("promcast", web);
    procs.start_prometheus(dir.path(), prom, &[]);
    let started = poll(
        "the first samples through remote write",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            procs.get("prometheus").check_running()?;
            let n = metric_total(web, "promcast_samples_received_total");
            (n > 0.0)
                .then_some((now_ms(), n))
                .ok_or(format!("{n} received"))
        },
    );
    // Twenty seconds of history in every selected series, and a snapshot of all of them.
    poll(
        "20 points in every selected series and a snapshot of them",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            procs.get("promcast").check_running()?;
            let r = ring(web, LOAD_SELECTOR)?;
            let shortest = r.values().map(BTreeMap::len).min().unwrap_or(0);
            let snap = metric_total(web, "promcast_snapshot_series");
            if r.len() == LOAD_PER_SHARD && shortest >= 20 && snap >= LOAD_PER_SHARD as f64 {
                Ok(())
            } else {
                Err(format!(
                    "{} series, the shortest with {shortest} points; snapshot of {snap}",
                    r.len()
                ))
            }
        },
    );
    let received = metric_total(web, "promcast_samples_received_total") - started.1;
    let rate = received / ((now_ms() - started.0) as f64 / 1e3);

    // SIGKILL mid-stream: no shutdown snapshot, requests in flight cut off.
    let p = procs.get("promcast");
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    let killed_at = now_ms();
    let scraped_at_kill = scrapes.load(Ordering::Relaxed);
    let retried_before = metric_total(prom, "prometheus_remote_storage_samples_retried_total");
    poll(
        "Prometheus retrying against the dead sink, two scrapes on",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            procs.get("prometheus").check_running()?;
            let r = metric_total(prom, "prometheus_remote_storage_samples_retried_total");
            let scraped = scrapes.load(Ordering::Relaxed) - scraped_at_kill;
            (r > retried_before && scraped >= 2)
                .then_some(())
                .ok_or(format!("{r} retried, {scraped} scrapes since the kill"))
        },
    );
    procs.procs.retain(|p| p.name != "promcast");
    procs.start_promcast(dir.path(), web);
    let restarted_at = now_ms();

    // Every sample Prometheus holds for the selected series, up to a few seconds ago (what
    // it scraped since is still on its way), is in the rings.
    let (compared, phases) = poll(
        "every Prometheus sample of the selected series in promcast's rings",
        Duration::from_secs(180),
        Duration::from_millis(1000),
        || {
            procs.get("promcast").check_running()?;
            let settled = now_ms() - 5_000;
            let mut p = prometheus_samples(prom, LOAD_SELECTOR, "10m")?;
            for samples in p.values_mut() {
                samples.retain(|t, _| *t < settled);
            }
            let after = p
                .values()
                .map(|s| s.range(restarted_at..).count())
                .min()
                .unwrap_or(0);
            if p.len() != LOAD_PER_SHARD || after < 3 {
                return Err(format!(
                    "{} series in Prometheus, at least {after} samples each since the restart",
                    p.len()
                ));
            }
            let lost = missing(&p, &ring(web, LOAD_SELECTOR)?);
            if !lost.is_empty() {
                // How far behind Prometheus' remote write is: late is not lost.
                let behind = metric_total(
                    prom,
                    "prometheus_remote_storage_highest_timestamp_in_seconds",
                ) - metric_total(
                    prom,
                    "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                );
                return Err(format!(
                    "{} of {} missing (remote write {behind:.1} s behind): {:?}",
                    lost.len(),
                    sample_count(&p),
                    &lost[..lost.len().min(5)]
                ));
            }
            // Samples before the kill, while promcast was down, and after the restart.
            let mut phases = [0usize; 3];
            for t in p.values().flat_map(BTreeMap::keys) {
                phases[usize::from(*t >= killed_at) + usize::from(*t >= restarted_at)] += 1;
            }
            Ok((sample_count(&p), phases))
        },
    );
    assert!(
        phases.iter().all(|n| *n >= LOAD_PER_SHARD),
        "samples before the kill, while down, after the restart: {phases:?}"
    );
    let log = std::fs::read_to_string(dir.path().join("promcast.log")).unwrap();
    assert!(log.contains("snapshot loaded"), "{log}");

    // Forecasts resume: every selected series forecast from an origin after the restart.
    poll(
        "forecasts of every selected series after the restart",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let body = http_get(
                web,
                &format!(
                    "/api/v1/forecasts?selector={}&limit=10000",
                    urlencode(LOAD_SELECTOR)
                ),
            )?
            .body;
            let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let series = v["data"]["series"].as_array().ok_or(body.clone())?;
            let fresh = series
                .iter()
                .filter(|s| {
                    s["state"] == "ready"
                        && s["origin"].as_f64().unwrap_or(0.0) * 1e3 >= restarted_at as f64
                })
                .count();
            (fresh == LOAD_PER_SHARD).then_some(()).ok_or(format!(
                "{fresh} of {} series forecast since the restart",
                series.len()
            ))
        },
    );
    assert_eq!(
        metric_total(web, "promcast_write_requests_total{code=\"400\"}"),
        0.0,
        "nothing Prometheus re-sends may be refused"
    );
    eprintln!(
        "kill -9 under load: {rate:.0} samples/s received before the kill \
         ({} series scraped every second); all {compared} samples of the {LOAD_PER_SHARD} \
         selected series present: {} before the kill, {} while down, {} after the restart; \
         backfilled {} samples, Prometheus retried {} in all",
        load_shards() * LOAD_PER_SHARD,
        phases[0],
        phases[1],
        phases[2],
        metric_total(web, "promcast_backfill_samples_total"),
        metric_total(prom, "prometheus_remote_storage_samples_retried_total"),
    );
    let status = procs.get("promcast").terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    stop.store(true, Ordering::Relaxed);
    serving.join().unwrap();
}
