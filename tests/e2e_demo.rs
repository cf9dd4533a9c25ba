//! `promcast demo` and the web page at `/`, in a real browser (headless Chromium, Debian
//! package `chromium`; `./scripts/test.sh` installs it):
//! - the demo on its defaults shows, within 60 seconds of starting, the series list, a chart
//!   of the NASA trace with its forecast cone and an anomaly score, and the scaling target's
//!   recommendation (a screenshot is saved under the test's output);
//! - with basic auth and TLS on the listener, the page is refused without credentials and
//!   works with them, and what it drew is what the JSON API says: the cone is the current
//!   forecast, point for point, and the chart holds every stored point of its window;
//! - with 1,000 series the page renders its list and chart quickly (figure printed).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::browser;
use common::tls::{client_config, https_request, Pki};
use common::{http_get, poll, Proc, Procs};
use serde_json::Value;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");

/// Starts `promcast demo` with `args` on free ports; returns the processes and the URL it
/// printed (polled from its log).
fn start_demo(dir: &Path, args: &[&str]) -> (Procs, String) {
    let mut cmd = Command::new(PROMCAST);
    cmd.arg("demo")
        .args(["--web.listen-address", "127.0.0.1:0"])
        .args(["--grpc.listen-address", "127.0.0.1:0"])
        .args(args);
    let mut procs = Procs::default();
    procs
        .procs
        .push(Proc::spawn("promcast", cmd, dir.join("promcast.log")));
    let log = dir.join("promcast.log");
    let url = poll(
        "promcast demo printing its URL",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            procs.get("promcast").check_running()?;
            let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
            text.lines()
                .find_map(|l| l.strip_prefix("promcast demo: open "))
                .map(str::to_owned)
                .ok_or_else(|| "not yet".to_string())
        },
    );
    (procs, url)
}

fn host_port(url: &str) -> std::net::SocketAddr {
    let rest = url.split("://").nth(1).unwrap();
    let rest = rest.rsplit('@').next().unwrap();
    rest[..rest.find('/').unwrap()].parse().unwrap()
}

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_demo");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Numbers of a `data-*` attribute.
fn num(dom: &str, id: &str, name: &str) -> Option<f64> {
    browser::attr(dom, id, name).and_then(|v| v.parse().ok())
}

#[test]
fn demo_shows_a_forecast_cone_and_anomaly_scores_within_a_minute() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (mut procs, url) = start_demo(dir.path(), &[]);
    let web = host_port(&url);
    assert!(
        url.contains("#%7B__name__%3D%22job%3Ahttp_requests"),
        "{url}"
    );
    // The page as a newcomer opens it, until it shows a cone and an anomaly score.
    let dom = poll(
        "the demo page showing a forecast cone and an anomaly score",
        Duration::from_secs(60).saturating_sub(started.elapsed()),
        Duration::from_millis(200),
        || {
            procs.get("promcast").check_running()?;
            let dom = browser::dump_dom(&url, Duration::from_secs(3), &[]);
            let cone = num(&dom, "chart", "data-cone-points").unwrap_or(0.0);
            let score = browser::attr(&dom, "chart", "data-anomaly-score").unwrap_or_default();
            if cone >= 3.0 && !score.is_empty() {
                Ok(dom)
            } else {
                Err(format!("cone {cone}, anomaly score {score:?}"))
            }
        },
    );
    let took = started.elapsed();
    println!("demo start to forecast cone and anomaly score on the page: {took:.1?}");
    assert!(took < Duration::from_secs(60));

    // The series list: the three shipped traces, ready.
    assert_eq!(num(&dom, "series-list", "data-rows"), Some(3.0), "{dom}");
    // The demo runs the defaults (`auto`): the page says how far the series' choice of
    // model is, beside the model ("model lstm (waiting)" until its first choice).
    let choice = browser::attr(&dom, "chart", "data-auto-choice").unwrap_or_default();
    assert!(
        ["waiting", "provisional", "chosen"].contains(&choice.as_str()),
        "auto choice {choice:?}"
    );
    let meta = browser::attr(&dom, "chart", "data-meta").unwrap_or_default();
    println!("auto choice on the page: {choice}; chart meta {meta:?}");
    assert_eq!(
        meta.contains(&format!("({choice})")),
        choice != "chosen",
        "chart meta {meta:?} for choice {choice}"
    );
    for name in [
        "job:http_requests:rate1m",
        "instance:cpu_utilization:ratio",
        "topic:tweets:rate5m",
    ] {
        assert!(dom.contains(name), "{name} missing from the list");
    }
    // The chart: the NASA series (the URL's fragment), 6 hours of actual points (the ring
    // was filled by the history load), the cone's three horizons ahead of the newest point.
    let series = browser::attr(&dom, "chart", "data-series").unwrap();
    assert!(series.contains("job:http_requests:rate1m"), "{series}");
    let actual = num(&dom, "chart", "data-actual-points").unwrap();
    assert!((300.0..=361.0).contains(&actual), "{actual} actual points");
    let last = num(&dom, "chart", "data-last-actual").unwrap();
    let cone: Vec<[f64; 4]> =
        serde_json::from_str(&browser::attr(&dom, "chart", "data-cone").unwrap()).unwrap();
    assert_eq!(cone.len(), 3);
    let origin = cone[0][0] - 300.0;
    // The demo replays at 60x, so one forecast step (60 s of trace) is one second of wall
    // time; on a loaded 2-core machine running an unoptimised build a step can overrun and
    // the scheduler skips what it missed (logged as "forecast step overran"), so the newest
    // cone may be a few steps behind the newest point. It must never be ahead of it, and
    // never stale by more than five steps.
    assert!(
        origin <= last + 60.0 && last - origin <= 5.0 * 60.0,
        "cone origin {origin}, last {last}"
    );
    for ([t, y, lo, hi], ahead) in cone.iter().zip([300.0, 900.0, 1800.0]) {
        assert_eq!(*t, origin + ahead);
        assert!(lo <= y && y <= hi && *y >= 0.0, "{lo} {y} {hi}");
    }
    // Against the real values: NASA's requests per second this week stay under 10.
    let hist: Value = serde_json::from_str(
        &http_get(web, "/api/v1/history?selector=%7Bjob%3D%22nasa-http%22%7D")
            .unwrap()
            .body,
    )
    .unwrap();
    let points = hist["data"]["series"][0]["points"].as_array().unwrap();
    let max = points
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        max > 0.0 && cone.iter().all(|c| c[1] <= 3.0 * max),
        "{cone:?} vs max {max}"
    );
    // The scaling target's recommendation.
    assert_eq!(num(&dom, "scaling", "data-rows"), Some(1.0));
    assert!(num(&dom, "scaling", "data-desired").is_some_and(|d| d >= 1.0));
    assert!(dom.contains("nasa-web"));

    // Under the chart, the served forecasts' rolling accuracy per horizon, once a forecast's
    // target time has passed (5 minutes of trace: a few seconds at 60x): a MASE against the
    // last value and the band's coverage, as the API serves them.
    let dom = poll(
        "the page showing the selected series' accuracy",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            procs.get("promcast").check_running()?;
            let dom = browser::dump_dom(&url, Duration::from_secs(3), &[]);
            match num(&dom, "accuracy", "data-rows") {
                Some(n) if n >= 1.0 => Ok(dom),
                n => Err(format!("accuracy rows {n:?}")),
            }
        },
    );
    let shown: Vec<(String, Option<f64>)> =
        serde_json::from_str(&browser::attr(&dom, "accuracy", "data-mase").unwrap()).unwrap();
    assert!(
        shown
            .iter()
            .all(|(h, _)| ["5m", "15m", "30m"].contains(&h.as_str())),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|(_, m)| m.is_some_and(|m| m.is_finite() && m > 0.0)),
        "{shown:?}"
    );
    assert!(dom.contains("MASE vs last value"), "{dom}");

    let png = out_dir().join("demo.png");
    browser::screenshot(&url, &png, (1400, 900), Duration::from_secs(3), &[]);
    println!("screenshot: {}", png.display());
    procs.get("promcast").terminate(Duration::from_secs(10));
}

#[test]
fn demo_page_behind_basic_auth_and_tls_draws_what_the_api_serves() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &["127.0.0.1"]);
    std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
    let cfg = dir.path().join("promcast.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"forecast:
  - selector: '{{__name__=~".+:.+"}}'
    horizons: [5m, 15m, 30m]
    model: seasonal_naive
    seasons: [1h]
    anomaly: {{ enabled: true }}
scaling:
  - name: nasa-web
    series: 'job:http_requests:rate1m{{job="nasa-http"}}'
    capacity_per_replica: 0.5
    max_replicas: 20
auth:
  http:
    basic_auth: {{ username: demo, password_file: password }}
tls:
  http: {{ cert_file: {}, key_file: {} }}
"#,
            pki.server_cert.display(),
            pki.server_key.display()
        ),
    )
    .unwrap();
    // Two minutes of trace per second... slowed to one step every 20 s, so that a page load
    // and the API calls after it see the same snapshot.
    let (mut procs, url) = start_demo(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "--speed", "3"],
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let web = host_port(&url);
    let tls = client_config(&pki.ca, None);
    let get = |path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        https_request(&tls, web, "GET", path, &headers, b"").unwrap()
    };
    let basic = "Basic ZGVtbzpzM2NyZXQ="; // demo:s3cret
    for path in ["/", "/static/app.js", "/api/v1/forecast_history"] {
        assert_eq!(get(path, None).status, 401, "{path}");
        assert_eq!(
            get(path, Some("Basic ZGVtbzp3cm9uZw==")).status,
            401,
            "{path}"
        );
        assert_eq!(get(path, Some(basic)).status, 200, "{path}");
    }
    assert!(get("/", Some(basic))
        .body
        .contains("<title>promcast</title>"));

    // Chromium without credentials sees the refusal, not the page.
    let insecure = ["--ignore-certificate-errors"];
    let dom = browser::dump_dom(&url, Duration::from_secs(2), &insecure);
    assert!(
        !dom.contains("id=\"series-list\""),
        "page served without credentials"
    );
    // With them (in the URL; the page's own requests reuse them).
    let authed = url.replacen("https://", "https://demo:s3cret@", 1);
    let api_json =
        |path: &str| -> Value { serde_json::from_str(&get(path, Some(basic)).body).unwrap() };
    let mut checked = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !checked && Instant::now() < deadline {
        procs.get("promcast").check_running().unwrap();
        let dom = browser::dump_dom(&authed, Duration::from_secs(3), &insecure);
        let Some(shown) = browser::attr(&dom, "chart", "data-series") else {
            continue;
        };
        if num(&dom, "chart", "data-cone-points") != Some(3.0) {
            continue;
        }
        let refreshed = browser::body_attr(&dom, "data-refreshed").and_then(|v| v.parse().ok());
        let q = format!("?selector={}", common::urlencode(&shown));
        let now = api_json(&format!("/api/v1/forecasts{q}"));
        if refreshed != now["data"]["generated_at"].as_f64() {
            continue; // a step ran between the page's requests and ours
        }
        // The cone is the API's current forecast of that series, point for point.
        let api_cone: Vec<[f64; 4]> = now["data"]["series"][0]["forecasts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let g = |k: &str| f[k].as_f64().unwrap();
                [
                    g("target_time"),
                    g("yhat"),
                    g("yhat_lower"),
                    g("yhat_upper"),
                ]
            })
            .collect();
        let cone: Vec<[f64; 4]> =
            serde_json::from_str(&browser::attr(&dom, "chart", "data-cone").unwrap()).unwrap();
        assert_eq!(cone, api_cone);
        // Every stored point of the chart's 6-hour window is on it.
        let hist = api_json(&format!("/api/v1/history{q}"));
        let points = hist["data"]["series"][0]["points"].as_array().unwrap();
        let last = points.last().unwrap()[0].as_f64().unwrap();
        let in_window = points
            .iter()
            .filter(|p| p[0].as_f64().unwrap() >= last - 6.0 * 3600.0)
            .count();
        assert_eq!(
            num(&dom, "chart", "data-actual-points"),
            Some(in_window as f64)
        );
        assert_eq!(num(&dom, "chart", "data-last-actual"), Some(last));
        assert_eq!(num(&dom, "series-list", "data-rows"), Some(3.0));
        checked = true;
    }
    assert!(checked, "no page load matched a snapshot{}", procs.logs());
    procs.get("promcast").terminate(Duration::from_secs(10));
}

/// Seconds of day of a Chromium log line (`[pid:tid:MMDD/HHMMSS.micro:...`).
fn log_time(line: &str) -> Option<f64> {
    let t = line.split(':').nth(2)?.split('/').nth(1)?;
    let (hms, micro) = t.split_once('.')?;
    let n: u32 = hms.parse().ok()?;
    let s = (n / 10_000) * 3600 + (n / 100 % 100) * 60 + n % 100;
    Some(s as f64 + micro.parse::<f64>().ok()? / 1e6)
}

#[test]
fn page_renders_a_thousand_series_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut procs, url) = start_demo(dir.path(), &["--copies", "334"]);
    let web = host_port(&url);
    poll(
        "1,002 series forecast",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            procs.get("promcast").check_running()?;
            let r = http_get(web, "/api/v1/forecasts?limit=5000")?;
            let v: Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
            let ready = v["data"]["series"]
                .as_array()
                .map_or(0, |s| s.iter().filter(|s| s["state"] == "ready").count());
            (ready == 1002)
                .then_some(())
                .ok_or(format!("{ready} ready"))
        },
    );
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        let mut args: Vec<String> = ["--enable-logging=stderr", "--v=0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push("--virtual-time-budget=3000".into());
        args.push("--dump-dom".into());
        args.push(url.clone());
        let (dom, stderr) = browser::run_with_stderr(&args, Duration::from_secs(60));
        let wall = started.elapsed();
        assert_eq!(num(&dom, "series-list", "data-rows"), Some(1002.0));
        assert_eq!(num(&dom, "chart", "data-cone-points"), Some(3.0));
        let mark = |what: &str| {
            stderr
                .lines()
                .find(|l| l.contains(&format!("promcast-mark {what}")))
                .and_then(log_time)
                .unwrap_or_else(|| panic!("no {what} mark in chromium's log"))
        };
        let ms = (mark("rendered") - mark("start")) * 1e3;
        println!(
            "1,002 series: page start to list and chart drawn {ms:.0} ms (chromium run {wall:.2?})"
        );
        best = best.min(ms);
    }
    // The figure is for the note; the bound only catches a page that got much slower.
    assert!(best < 5_000.0, "{best} ms");
    procs.get("promcast").terminate(Duration::from_secs(10));
}
