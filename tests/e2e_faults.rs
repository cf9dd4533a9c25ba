//! The remote-write-out target slow, then down, then back, against the real binary and a
//! real Prometheus 2.42 as the target:
//!
//! - while the target accepts connections and never answers (requests run into `timeout`),
//!   and while nothing listens at the URL, the queue stays within its capacity (the oldest
//!   snapshot is dropped and counted), retries back off (a handful per second, not a hot
//!   loop), and promcast's memory stays flat;
//! - once Prometheus listens there, the forecasts arrive in it and the last-success time
//!   moves.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::traces::nasa_requests_per_minute;
use common::{
    addr, free_port, http_get, metric_total, now_ms, poll, remote_write, series, urlencode, Procs,
};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn remote_write_target_slow_then_down_then_back() {
    let dir = tempfile::tempdir().unwrap();
    let web = addr(free_port());
    let sink = loop {
        let p = addr(free_port());
        if p != web {
            break p;
        }
    };
    std::fs::write(
        dir.path().join("promcast.yml"),
        format!(
            r#"storage: {{ step: 1s, retention: 10m }}
forecast:
  - selector: '{{__name__=~"job:.+"}}'
    horizons: [1s, 5s]
    model: naive
    anomaly: {{ enabled: false }}
remote_write:
  - url: http://{sink}/api/v1/write
    timeout: 2s
    capacity: 4
    min_backoff: 50ms
    max_backoff: 1s
"#
        ),
    )
    .unwrap();
    let mut procs = Procs::default();
    procs.start_promcast(dir.path(), web);
    procs.wait_ready("promcast", web);
    let pid = procs.get("promcast").child.id();

    // Real traffic: 50 series of NASA requests per minute, one value per second.
    let values = nasa_requests_per_minute();
    let feeding = Arc::new(AtomicBool::new(true));
    let feeder = {
        let feeding = feeding.clone();
        std::thread::spawn(move || {
            let mut k = 0;
            while feeding.load(Ordering::Relaxed) {
                let t = now_ms();
                let batch: Vec<_> = (0..50)
                    .map(|s| {
                        let inst = format!("web-{s}");
                        series(
                            &[("__name__", "job:requests:rate1m"), ("instance", &inst)],
                            &[(t, values[(k + s * 97) % values.len()])],
                        )
                    })
                    .collect();
                let _ = remote_write(web, batch);
                k += 1;
                // the feeder paces real traffic at one sample per series per second
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };

    let url = format!("{{url=\"http://{sink}/api/v1/write\"}}");
    let depth = |at| metric_total(at, &format!("promcast_remote_write_queue_depth{url}"));
    let retries = |at| metric_total(at, &format!("promcast_remote_write_retries_total{url}"));
    let dropped = |at| {
        metric_total(
            at,
            &format!("promcast_remote_write_samples_dropped_total{url}"),
        )
    };
    // Watches the sender for ten seconds while the target misbehaves: snapshots pile up to
    // the capacity and the oldest are dropped, the queue never exceeds its capacity, retries
    // back off (a handful per second, not a hot loop) and memory does not grow.
    let watch = |procs: &mut Procs, what: &str| {
        let dropped_before = dropped(web);
        poll(
            &format!("snapshots dropped while the target is {what}"),
            Duration::from_secs(60),
            Duration::from_millis(250),
            || {
                procs.get("promcast").check_running()?;
                let d = dropped(web);
                if d > dropped_before {
                    Ok(())
                } else {
                    Err(format!("{d} dropped, depth {}", depth(web)))
                }
            },
        );
        let rss_start = rss_kib(pid);
        let (r0, t0) = (retries(web), Instant::now());
        let mut max_depth = 0.0f64;
        let mut rss_max = rss_start;
        poll(
            &format!("ten seconds of the target {what}"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                max_depth = max_depth.max(depth(web));
                rss_max = rss_max.max(rss_kib(pid));
                (t0.elapsed() >= Duration::from_secs(10))
                    .then_some(())
                    .ok_or_else(|| "watching".to_string())
            },
        );
        let (r1, secs) = (retries(web), t0.elapsed().as_secs_f64());
        assert!(
            max_depth <= 4.0,
            "{what}: queue depth {max_depth} beyond capacity 4"
        );
        let rate = (r1 - r0) / secs;
        assert!(
            r1 > r0 && rate < 5.0,
            "{what}: retries must back off: {} in {secs:.1}s ({rate:.1}/s)",
            r1 - r0
        );
        assert!(
            rss_max < rss_start + 16 * 1024,
            "{what}: memory grew: {rss_start} KiB -> {rss_max} KiB"
        );
        eprintln!(
            "faults: target {what} {secs:.1}s: {} retries ({rate:.1}/s), queue depth <= {max_depth}, \
             RSS {rss_start} -> {rss_max} KiB",
            r1 - r0
        );
    };

    // 1. The target is slow: it accepts connections and never answers; every request runs
    //    into `timeout` (2s) and is retried.
    let hole = std::net::TcpListener::bind(sink).expect("bind the slow target");
    hole.set_nonblocking(true).unwrap();
    let holding = Arc::new(AtomicBool::new(true));
    let black_hole = {
        let holding = holding.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while holding.load(Ordering::Relaxed) {
                match hole.accept() {
                    Ok((conn, _)) => held.push(conn),
                    // a non-blocking accept loop: wait a little for the next connection
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            held.len()
        })
    };
    watch(&mut procs, "slow");
    holding.store(false, Ordering::Relaxed);
    let held = black_hole.join().unwrap();
    assert!(held >= 2, "the sender kept connecting: {held} connections");

    // 2. The target is down: nothing listens at the address.
    watch(&mut procs, "down");
    let last_success = metric_total(
        web,
        &format!("promcast_remote_write_last_success_timestamp_seconds{url}"),
    );

    // 3. The target comes back: a Prometheus with its remote-write receiver at that address.
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global: { scrape_interval: 1h }\nscrape_configs: []\n",
    )
    .unwrap();
    procs.start_prometheus(dir.path(), sink, &["--web.enable-remote-write-receiver"]);
    let q = urlencode(r#"count(job:requests:rate1m:predicted{ml_forecast="yhat", horizon="5s"})"#);
    poll(
        "forecasts arriving in Prometheus once it listens",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            procs.get("prometheus").check_running()?;
            let body = http_get(sink, &format!("/api/v1/query?query={q}"))?.body;
            let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let n: f64 = v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0);
            if n == 50.0 {
                Ok(())
            } else {
                Err(format!("{n} series: {body}"))
            }
        },
    );
    assert!(
        metric_total(
            web,
            &format!("promcast_remote_write_last_success_timestamp_seconds{url}")
        ) > last_success
    );
    feeding.store(false, Ordering::Relaxed);
    feeder.join().unwrap();
    eprintln!("faults: forecasts delivered once the target was back");
    procs.get("prometheus").terminate(Duration::from_secs(30));
    let status = procs.get("promcast").terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
