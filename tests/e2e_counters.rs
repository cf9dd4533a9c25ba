//! Raw counters against a real Prometheus (Debian package `prometheus`, 2.42), over real HTTP.
//!
//! 1. A counter of real NASA traffic (requests scraped every 15 s, restarted twice) is
//!    written into Prometheus' TSDB with `promtool` and sent to `promcast serve` by remote
//!    write: the per-second rates promcast stores (read back with `/api/v1/history`) equal
//!    PromQL's `rate` over the same samples, computed by Prometheus, bucket for bucket.
//! 2. Prometheus scrapes a counter whose name says nothing (`served`, no `_total`) and
//!    remote-writes to promcast with `metadata_config: { send: true }`: promcast learns the
//!    type from the metadata and forecasts the counter as a rate, `served:rate:predicted`,
//!    without any recording rule.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::traces::nasa_requests_per_minute;
use common::{
    addr, backfill_openmetrics, free_port, http_get, metric_total, poll, remote_write, series,
    urlencode, Procs,
};
use serde_json::Value;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn get_json(at: SocketAddr, path: &str) -> Result<Value, String> {
    let r = http_get(at, path)?;
    if r.status != 200 {
        return Err(format!("GET {path}: HTTP {}: {}", r.status, r.body));
    }
    serde_json::from_str(&r.body).map_err(|e| format!("GET {path}: {e}: {}", r.body))
}

#[test]
fn stored_counter_rates_equal_promql_rate() {
    let dir = tempfile::tempdir().unwrap();
    // Two hours of the NASA trace as a counter scraped every 15 s (a quarter of each
    // minute's requests per scrape), restarted at minutes 40 and 95, ending 10 minutes ago.
    let nasa = nasa_requests_per_minute();
    let minutes = &nasa[2000..2120];
    let start_s = (now_s() / 60 - 130) * 60;
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut total = 0.0;
    for (i, v) in minutes.iter().enumerate() {
        for q in 0..4 {
            if (i, q) == (40, 1) || (i, q) == (95, 3) {
                total = 0.0;
            }
            total += (v / 4.0).round();
            samples.push(((start_s + i as i64 * 60 + q * 15) * 1000, total));
        }
    }
    let mut om = String::new();
    for (t, v) in &samples {
        om.push_str(&format!(
            "nasa_requests_total{{job=\"nasa\"}} {v} {}\n",
            t / 1000
        ));
    }
    om.push_str("# EOF\n");
    backfill_openmetrics(dir.path(), &om);
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global: { scrape_interval: 1m }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("promcast.yml"),
        r#"storage: { step: 1m, retention: 6h }
forecast:
  - selector: '{__name__="nasa_requests_total"}'
    horizons: [5m]
    model: naive
"#,
    )
    .unwrap();
    let (prom, web) = (addr(free_port()), addr(free_port()));
    let mut procs = Procs::default();
    procs.start_prometheus(dir.path(), prom, &[]);
    procs.start_promcast(dir.path(), web);
    poll(
        "promcast ready",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            procs.get("promcast").check_running()?;
            let r = http_get(web, "/-/ready")?;
            (r.status == 200).then_some(()).ok_or(r.body)
        },
    );
    // The same samples by remote write, a minute's scrapes per request as Prometheus would.
    for chunk in samples.chunks(4) {
        let s = series(
            &[("__name__", "nasa_requests_total"), ("job", "nasa")],
            chunk,
        );
        remote_write(web, vec![s]).unwrap();
    }
    let history = get_json(web, "/api/v1/history?selector=nasa_requests_total").unwrap();
    let stored = &history["data"]["series"][0];
    assert_eq!(
        stored["labels"]["__name__"], "nasa_requests_total",
        "{history}"
    );
    assert_eq!(stored["rate"], true, "{history}");
    let points = stored["points"].as_array().unwrap();
    assert_eq!(points.len(), minutes.len(), "{history}");

    // PromQL: rate over exactly the samples from the previous minute's last scrape to this
    // minute's last one, evaluated at this minute's last scrape, for every minute but the
    // first. Prometheus 2.x ranges include their start, so `[1m]` holds the earlier scrape and
    // nothing is extrapolated (Prometheus 3 made the start open: there `[60001ms]` does it).
    let first_end = start_s + 60 + 45;
    let q = format!(
        "/api/v1/query_range?query={}&start={first_end}&end={}&step=60",
        urlencode("rate(nasa_requests_total[1m])"),
        first_end + (minutes.len() as i64 - 2) * 60
    );
    let promql = poll(
        "Prometheus answers rate() over the backfilled counter",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            procs.get("prometheus").check_running()?;
            let v = get_json(prom, &q)?;
            let values = v["data"]["result"][0]["values"].as_array().cloned();
            values
                .filter(|x| x.len() == minutes.len() - 1)
                .ok_or_else(|| format!("{v}"))
        },
    );
    let mut compared = 0;
    for (p, r) in points[1..].iter().zip(&promql) {
        let bucket_s = p[0].as_f64().unwrap() as i64;
        let at_s = r[0].as_f64().unwrap() as i64;
        assert_eq!(at_s, bucket_s + 45, "the bucket's last scrape");
        let ours = p[1].as_f64().unwrap();
        let theirs: f64 = r[1].as_str().unwrap().parse().unwrap();
        assert!(
            (ours - theirs).abs() <= 1e-6 * theirs.abs().max(1.0),
            "minute at {bucket_s}: promcast {ours} vs PromQL rate {theirs}"
        );
        compared += 1;
    }
    // The first minute: from its first scrape only (promcast's only start for the chain).
    let first = points[0][1].as_f64().unwrap();
    let want = (samples[3].1 - samples[0].1) / 45.0;
    assert!(
        (first - want).abs() <= 1e-6 * want.max(1.0),
        "{first} vs {want}"
    );
    eprintln!("e2e_counters: {compared} minutes of rates equal PromQL rate(), two resets included");
}

/// A scrape target exposing one counter, `served`, that grows by 10 a second.
fn serve_counter(stop: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            conn.set_nonblocking(false).ok();
            conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let value = 10.0 * t0.elapsed().as_secs_f64();
            let body = format!(
                "# HELP served Requests served.\n# TYPE served counter\nserved{{app=\"web\"}} {value}\n"
            );
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    at
}

#[test]
fn metadata_makes_a_scraped_counter_a_forecast_rate() {
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let target = serve_counter(stop.clone());
    let (prom, web) = (addr(free_port()), addr(free_port()));
    std::fs::write(
        dir.path().join("promcast.yml"),
        r#"storage: { step: 1s, retention: 10m, idle_timeout: 1m }
forecast:
  - selector: '{__name__="served"}'
    horizons: [5s]
    model: naive
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            r#"global: {{ scrape_interval: 1s, scrape_timeout: 1s }}
scrape_configs:
  - job_name: served
    static_configs: [{{ targets: ["{target}"] }}]
remote_write:
  - url: http://{web}/api/v1/write
    queue_config: {{ batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s }}
    metadata_config: {{ send: true, send_interval: 1s }}
"#
        ),
    )
    .unwrap();
    let mut procs = Procs::default();
    procs.start_promcast(dir.path(), web);
    procs.start_prometheus(dir.path(), prom, &["--storage.remote.flush-deadline=1s"]);
    let line = poll(
        "served:rate:predicted on promcast's /metrics",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || {
            for p in &mut procs.procs {
                p.check_running()?;
            }
            let r = http_get(web, "/metrics")?;
            r.body
                .lines()
                .find(|l| {
                    l.starts_with("served:rate:predicted{") && l.contains("ml_forecast=\"yhat\"")
                })
                .map(str::to_owned)
                .ok_or_else(|| {
                    let own: Vec<&str> = (r.body.lines())
                        .filter(|l| {
                            l.starts_with("promcast_metadata") || l.starts_with("promcast_series")
                        })
                        .collect();
                    format!("not yet; {own:?}")
                })
        },
    );
    let yhat: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (8.0..=12.0).contains(&yhat),
        "the forecast is the counter's rate (10/s): {line}"
    );
    assert!(metric_total(web, "promcast_metadata_received_total") >= 1.0);
    let r = http_get(web, "/metrics").unwrap();
    assert!(
        !r.body.contains("served:predicted"),
        "no forecast of the raw counter"
    );
    let history = get_json(web, "/api/v1/history?selector=served").unwrap();
    let s = &history["data"]["series"][0];
    assert_eq!(s["rate"], true, "{history}");
    let points = s["points"].as_array().unwrap();
    let last: Vec<f64> = points
        .iter()
        .rev()
        .take(5)
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert!(
        last.iter().all(|v| (5.0..=15.0).contains(v)),
        "stored rates near 10/s: {last:?}"
    );
    eprintln!("e2e_counters: {line}; last stored rates {last:?}");
    stop.store(true, Ordering::Relaxed);
}
