//! End to end against a real Prometheus (Debian package `prometheus`, 2.42), over real HTTP:
//!
//! ```text
//! Prometheus (scrapes itself every 1s) ──remote_write──▶ promcast serve
//!      ▲                                                      │ forecasts (naive, step 1s)
//!      └──── remote_write  N:predicted{…, ml_forecast, horizon} ◀┘  (--web.enable-remote-write-receiver)
//! ```
//!
//! The test then reads the forecasts back with Prometheus' own query API, checks their labels,
//! values and bands, checks that neither side failed a remote-write sample, and that promcast
//! exits 0 on SIGTERM. Prometheus is required: the test fails (it does not skip) when it is
//! missing; `./scripts/test.sh` installs it.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    addr, find_program, free_port, http_get, poll, prometheus_binary, urlencode, Proc, Procs,
};
use serde::Deserialize as _;
use serde_json::Value;

/// Series Prometheus exposes about itself that promcast is told to forecast: two gauges with
/// one series per target, and a counter with extra labels (`handler`, `code`), which promcast
/// stores and forecasts as its per-second rate (`N:rate:predicted`).
const INPUTS: [&str; 3] = [
    "prometheus_tsdb_head_series",
    "process_resident_memory_bytes",
    "prometheus_http_requests_total",
];
const HORIZONS: [&str; 2] = ["5s", "10s"];
const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");

/// The name of an input's outputs: `N:rate:` for the counter, `N:` for the gauges.
fn output_prefix(input: &str) -> String {
    if input.ends_with("_total") {
        format!("{input}:rate:")
    } else {
        format!("{input}:")
    }
}

/// The input an output name is of, and whether it is a rate.
fn input_of<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let base = name.strip_suffix(suffix)?;
    let (base, rate) = match base.strip_suffix(":rate") {
        Some(b) => (b, true),
        None => (base, false),
    };
    (rate == base.ends_with("_total")).then_some(base)
}

/// Panics (with the failure) if any process has exited; the guard then prints the logs.
fn all_running(procs: &mut Procs) {
    for p in &mut procs.procs {
        if let Err(e) = p.check_running() {
            panic!("{e}");
        }
    }
}

fn get_ok(at: SocketAddr, path: &str) -> Result<String, String> {
    let r = http_get(at, path)?;
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(format!("GET {path}: HTTP {}: {}", r.status, r.body.trim()))
    }
}

/// `GET /api/v1/query` (instant query at now); the `data.result` array.
fn query(prom: SocketAddr, q: &str) -> Result<Vec<Value>, String> {
    let body = get_ok(prom, &format!("/api/v1/query?query={}", urlencode(q)))?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{q}: bad JSON {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{q}: {body}"));
    }
    v["data"]["result"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("{q}: no data.result: {body}"))
}

fn metric_labels(series: &Value) -> BTreeMap<String, String> {
    series["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A sample value as Prometheus' JSON writes it (`"1.5"`, `"NaN"`, `"+Inf"`).
fn sample_value(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

/// Sum of every sample of `name` in a text exposition; `None` when it has no sample.
fn metric_sum(text: &str, name: &str, label_filter: impl Fn(&str) -> bool) -> Option<f64> {
    let mut sum = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        if n == name && label_filter(labels) {
            *sum.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
        }
    }
    sum
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[test]
fn prometheus_round_trip() {
    let prometheus = prometheus_binary();
    let tmp = tempfile::Builder::new()
        .prefix("promcast-e2e-")
        .tempdir()
        .expect("temp dir");
    let promcast_port = free_port();
    let prom_port = loop {
        let p = free_port();
        if p != promcast_port {
            break p;
        }
    };
    let (promcast_at, prom_at) = (addr(promcast_port), addr(prom_port));

    let promcast_yml = tmp.path().join("promcast.yml");
    write_file(
        &promcast_yml,
        &format!(
            r#"storage: {{ step: 1s, retention: 10m, idle_timeout: 1m }}
forecast:
  - selector: '{{__name__=~"{inputs}"}}'
    horizons: [{horizons}]
    model: naive
    quantiles: [0.1, 0.9]
remote_write:
  - url: http://{prom_at}/api/v1/write
    timeout: 5s
limits: {{ max_series: 10000, max_body_bytes: 33554432 }}
scaling:
  - name: head
    series: 'prometheus_tsdb_head_series{{job="prometheus"}}'
    capacity_per_replica: 100
    min_replicas: 1
    max_replicas: 100
    lead_time: 5s
"#,
            inputs = INPUTS.join("|"),
            horizons = HORIZONS.join(", "),
        ),
    );
    let prometheus_yml = tmp.path().join("prometheus.yml");
    write_file(
        &prometheus_yml,
        &format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["{prom_at}"]
remote_write:
  - url: http://{promcast_at}/api/v1/write
    name: promcast
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#
        ),
    );

    // A rejected config fails here with promcast's own message rather than as a timeout.
    let check = Command::new(PROMCAST)
        .arg("check-config")
        .arg(&promcast_yml)
        .output()
        .expect("run promcast check-config");
    assert!(
        check.status.success(),
        "promcast check-config rejected the test config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // Declared after `tmp`, so it is dropped first: processes stop before their logs go.
    let mut procs = Procs::default();

    // 1. promcast, until ready.
    let mut cmd = Command::new(PROMCAST);
    cmd.arg("serve")
        .arg("--config")
        .arg(&promcast_yml)
        .args(["--web.listen-address", &promcast_at.to_string()])
        .args(["--grpc.listen-address", &addr(free_port()).to_string()])
        .args(["--log.level", "info"]);
    procs.procs.push(Proc::spawn(
        "promcast",
        cmd,
        tmp.path().join("promcast.log"),
    ));
    poll(
        "promcast /-/ready",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            all_running(&mut procs);
            get_ok(promcast_at, "/-/ready").map(drop)
        },
    );
    get_ok(promcast_at, "/-/healthy").expect("promcast /-/healthy");

    // 2. Prometheus, writing to promcast and accepting its forecasts.
    let mut cmd = Command::new(&prometheus);
    cmd.arg(format!("--config.file={}", prometheus_yml.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prom_at}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--storage.remote.flush-deadline=1s")
        .arg("--log.level=info");
    procs.procs.push(Proc::spawn(
        "prometheus",
        cmd,
        tmp.path().join("prometheus.log"),
    ));
    poll(
        "Prometheus /-/ready",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            all_running(&mut procs);
            get_ok(prom_at, "/-/ready").map(drop)
        },
    );

    // 3. Forecasts of every input name, back in Prometheus (the first remote write leaves
    //    Prometheus ~6 s after start; then promcast needs a few 1 s steps of history).
    let predicted = poll(
        "promcast's forecasts of all inputs in Prometheus",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            all_running(&mut procs);
            let result = query(prom_at, r#"{__name__=~".+:predicted", ml_forecast="yhat"}"#)?;
            let found: BTreeSet<(String, String)> = result
                .iter()
                .map(|s| {
                    let l = metric_labels(s);
                    (
                        l.get("__name__").cloned().unwrap_or_default(),
                        l.get("horizon").cloned().unwrap_or_default(),
                    )
                })
                .collect();
            let missing: Vec<String> = INPUTS
                .iter()
                .flat_map(|n| {
                    HORIZONS
                        .iter()
                        .map(move |h| (format!("{}predicted", output_prefix(n)), *h))
                })
                .filter(|(n, h)| !found.contains(&(n.clone(), h.to_string())))
                .map(|(n, h)| format!("{n}{{horizon=\"{h}\"}}"))
                .collect();
            if missing.is_empty() {
                Ok(result)
            } else {
                let metrics = http_get(promcast_at, "/metrics")
                    .map(|r| {
                        r.body
                            .lines()
                            .filter(|l| l.starts_with("promcast_"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_else(|e| e);
                Err(format!(
                    "missing {missing:?}; found {found:?}; promcast /metrics:\n{metrics}"
                ))
            }
        },
    );

    // Every forecast carries exactly the labels of an input series Prometheus has, plus
    // `ml_forecast` and `horizon`, and a finite value.
    let inputs = query(prom_at, &format!(r#"{{__name__=~"{}"}}"#, INPUTS.join("|")))
        .expect("query the input series");
    let input_sets: BTreeSet<BTreeMap<String, String>> = inputs.iter().map(metric_labels).collect();
    assert!(!input_sets.is_empty(), "no input series in Prometheus");
    for s in &predicted {
        let mut l = metric_labels(s);
        let name = l.remove("__name__").unwrap_or_default();
        let base = input_of(&name, ":predicted").unwrap_or_else(|| {
            panic!("forecast name {name:?} lacks the :predicted (:rate:predicted) suffix")
        });
        assert!(
            INPUTS.contains(&base),
            "forecast of a series not selected: {name}"
        );
        assert_eq!(l.remove("ml_forecast").as_deref(), Some("yhat"), "{s}");
        let horizon = l.remove("horizon").unwrap_or_default();
        assert!(
            HORIZONS.contains(&horizon.as_str()),
            "horizon {horizon:?} in {s}"
        );
        assert_eq!(l.get("job").map(String::as_str), Some("prometheus"), "{s}");
        assert_eq!(l.get("instance"), Some(&prom_at.to_string()), "{s}");
        l.insert("__name__".into(), base.into());
        assert!(
            input_sets.contains(&l),
            "forecast {s} does not carry the labels of any input series; inputs: {input_sets:?}"
        );
        let v = sample_value(&s["value"][1]);
        assert!(v.is_finite(), "non-finite forecast {v} in {s}");
    }

    // yhat_lower <= yhat <= yhat_upper for one series and horizon, at the instants where all
    // three were written (read with a range selector so the timestamps are the samples' own).
    let mut instants_checked = 0;
    for base in [
        "prometheus_tsdb_head_series",
        "process_resident_memory_bytes",
    ] {
        for h in HORIZONS {
            let q = format!(r#"{base}:predicted{{horizon="{h}"}}[1m]"#);
            let result = query(prom_at, &q).expect("range-selector query");
            let mut by_kind: HashMap<String, BTreeMap<i64, f64>> = HashMap::new();
            for s in &result {
                let kind = metric_labels(s).remove("ml_forecast").unwrap_or_default();
                let points = by_kind.entry(kind).or_default();
                for p in s["values"].as_array().into_iter().flatten() {
                    let ts = (p[0].as_f64().unwrap_or(f64::NAN) * 1e3).round() as i64;
                    points.insert(ts, sample_value(&p[1]));
                }
            }
            let kinds = ["yhat", "yhat_lower", "yhat_upper"];
            for k in kinds {
                assert!(
                    by_kind.get(k).is_some_and(|p| !p.is_empty()),
                    "{q}: no ml_forecast=\"{k}\" samples; got {result:?}"
                );
            }
            let (yhat, lo, hi) = (
                &by_kind["yhat"],
                &by_kind["yhat_lower"],
                &by_kind["yhat_upper"],
            );
            let mut common = 0;
            for (ts, y) in yhat {
                if let (Some(l), Some(u)) = (lo.get(ts), hi.get(ts)) {
                    common += 1;
                    assert!(
                        l.is_finite() && y.is_finite() && u.is_finite() && l <= y && y <= u,
                        "{q} at {ts} ms: lower {l} <= yhat {y} <= upper {u} does not hold"
                    );
                }
            }
            assert!(
                common > 0,
                "{q}: yhat, yhat_lower and yhat_upper share no timestamp"
            );
            instants_checked += common;
            if let Some((ts, y)) = yhat.iter().next_back() {
                eprintln!(
                    "e2e: {base}:predicted{{horizon=\"{h}\"}} at {ts} ms: [{:?}, {y}, {:?}]",
                    lo.get(ts),
                    hi.get(ts)
                );
            }
        }
    }
    eprintln!(
        "e2e: {} forecast series in Prometheus, band checked at {instants_checked} instants",
        predicted.len()
    );

    // 3b. Anomaly scores (on by default): once the entry's pooled forest has rows, every
    //     scored input has `N:anomaly_score` in [0, 1] and `N:anomalous` in {-1, 0, 1}, with
    //     the input's labels.
    let scores = poll(
        "promcast's anomaly scores in Prometheus",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            all_running(&mut procs);
            let r = query(prom_at, r#"{__name__=~".+:anomaly_score"}"#)?;
            if r.is_empty() {
                Err("no :anomaly_score series yet".to_owned())
            } else {
                Ok(r)
            }
        },
    );
    // (Inputs again: Prometheus grows new handler/code series as it runs.)
    let inputs = query(prom_at, &format!(r#"{{__name__=~"{}"}}"#, INPUTS.join("|")))
        .expect("query the input series");
    let input_sets: BTreeSet<BTreeMap<String, String>> = inputs.iter().map(metric_labels).collect();
    for s in &scores {
        let mut l = metric_labels(s);
        let name = l.remove("__name__").unwrap_or_default();
        let base = input_of(&name, ":anomaly_score").unwrap_or_default();
        assert!(INPUTS.contains(&base), "anomaly score of {name}");
        l.insert("__name__".into(), base.into());
        assert!(input_sets.contains(&l), "{s}: labels of no input series");
        let v = sample_value(&s["value"][1]);
        assert!((0.0..=1.0).contains(&v), "anomaly score {v} in {s}");
    }
    let flags = query(prom_at, r#"{__name__=~".+:anomalous"}"#).expect("query :anomalous");
    assert!(!flags.is_empty(), "scores without :anomalous series");
    for s in &flags {
        let v = sample_value(&s["value"][1]);
        assert!([-1.0, 0.0, 1.0].contains(&v), "anomalous = {v} in {s}");
    }
    eprintln!(
        "e2e: {} anomaly-score series in Prometheus, {} :anomalous",
        scores.len(),
        flags.len()
    );

    // 4. Prometheus failed none of the samples it sent to promcast.
    let failed = poll(
        "prometheus_remote_storage_samples_failed_total",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let r = query(
                prom_at,
                "sum(prometheus_remote_storage_samples_failed_total)",
            )?;
            r.first()
                .map(|s| sample_value(&s["value"][1]))
                .ok_or_else(|| "no such series yet".to_owned())
        },
    );
    assert_eq!(
        failed, 0.0,
        "Prometheus failed to remote-write {failed} samples to promcast"
    );

    // 5. promcast's own view: samples accepted, forecasts delivered, nothing rejected.
    let metrics = get_ok(promcast_at, "/metrics").expect("promcast /metrics");
    let own: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("promcast_"))
        .collect();
    assert!(
        !own.is_empty(),
        "no promcast_ metrics in /metrics:\n{metrics}"
    );
    // The engine that runs the LSTM is told: under `auto` without a GPU, promcast's own kernel
    // on the CPU (the built-in model is one promcast train exported).
    // With a GPU, onnxruntime (its provider depends on the library the test was given).
    let expect_backend = if promcast::server::gpu_present() && cfg!(feature = "gpu") {
        "promcast_inference_backend_info{backend=\"ort\","
    } else {
        "promcast_inference_backend_info{backend=\"native\",provider=\"cpu\"} 1"
    };
    assert!(
        metrics.lines().any(|l| l.starts_with(expect_backend)),
        "no `{expect_backend}` in /metrics:\n{metrics}"
    );
    let all = |_: &str| true;
    let accepted = metric_sum(&metrics, "promcast_samples_accepted_total", all);
    assert!(
        accepted.is_some_and(|v| v > 0.0),
        "promcast_samples_accepted_total = {accepted:?}"
    );
    let sent = metric_sum(&metrics, "promcast_remote_write_samples_sent_total", all);
    assert!(
        sent.is_some_and(|v| v > 0.0),
        "promcast_remote_write_samples_sent_total = {sent:?}"
    );
    let rw_failed = metric_sum(&metrics, "promcast_remote_write_samples_failed_total", all);
    assert!(
        rw_failed.unwrap_or(0.0) == 0.0,
        "Prometheus rejected forecasts: promcast_remote_write_samples_failed_total = {rw_failed:?}"
    );
    let non_2xx = metric_sum(&metrics, "promcast_write_requests_total", |l| {
        !l.contains("code=\"2")
    });
    assert!(
        non_2xx.unwrap_or(0.0) == 0.0,
        "promcast answered Prometheus' writes with errors:\n{}",
        own.iter()
            .filter(|l| l.starts_with("promcast_write_requests_total"))
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The JSON API serves the same forecasts.
    let body = get_ok(
        promcast_at,
        &format!(
            "/api/v1/forecasts?selector={}",
            urlencode(r#"{__name__="prometheus_tsdb_head_series"}"#)
        ),
    )
    .expect("promcast /api/v1/forecasts");
    let v: Value = serde_json::from_str(&body).expect("/api/v1/forecasts is JSON");
    assert_eq!(v["status"], "success", "{body}");
    let series = v["data"]["series"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        series.len(),
        1,
        "/api/v1/forecasts: one head_series expected: {body}"
    );
    let horizons: Vec<&str> = series[0]["forecasts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["horizon"].as_str())
        .collect();
    assert_eq!(horizons, HORIZONS, "/api/v1/forecasts horizons: {body}");

    // The Grafana dashboard: every panel's PromQL, with its variables set to this test's
    // series, parses and returns data from this Prometheus. (The one expression on
    // kube-state-metrics' `kube_deployment_status_replicas` can only parse here.)
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/components/grafana-dashboard/grafana-dashboard.json"),
        )
        .expect("read deploy/components/grafana-dashboard/grafana-dashboard.json"),
    )
    .expect("deploy/components/grafana-dashboard/grafana-dashboard.json is JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("dashboard panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 6, "dashboard expressions: {exprs:?}");
    for e in &exprs {
        let q = e
            .replace("$metric", "prometheus_tsdb_head_series")
            .replace("$horizon", HORIZONS[0])
            .replace("$target", "head");
        assert!(!q.contains('$'), "unset variable in {e}");
        if q.contains("kube_") {
            query(prom_at, &q).unwrap_or_else(|err| panic!("dashboard {e}: {err}"));
            continue;
        }
        poll(
            &format!("dashboard expression {q} to return data"),
            Duration::from_secs(90),
            Duration::from_millis(500),
            || {
                all_running(&mut procs);
                let r = query(prom_at, &q)?;
                if r.is_empty() {
                    Err("empty result".to_string())
                } else {
                    Ok(())
                }
            },
        );
    }
    // The KEDA `prometheus` trigger's query returns exactly one element, a replica count.
    let keda: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/components/keda/prometheus/scaledobject.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let keda_query = keda["spec"]["triggers"][0]["metadata"]["query"]
        .as_str()
        .expect("the ScaledObject's query")
        .replace("target=\"web\"", "target=\"head\"");
    let r = query(prom_at, &keda_query).expect("the KEDA query");
    assert_eq!(r.len(), 1, "{keda_query}: {r:?}");
    let replicas: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((1.0..=100.0).contains(&replicas), "{replicas}");

    // 6. Shut down: Prometheus first (else it retries a dead sink), then promcast, which must
    //    exit 0 on SIGTERM.
    let prom_status = procs
        .get("prometheus")
        .terminate(Duration::from_secs(30))
        .expect("Prometheus did not exit within 30 s of SIGTERM");
    eprintln!("e2e: Prometheus exited: {prom_status}");
    let status = procs
        .get("promcast")
        .terminate(Duration::from_secs(30))
        .expect("promcast did not exit within 30 s of SIGTERM");
    assert!(
        status.success(),
        "promcast exited with {status} after SIGTERM:\n{}",
        procs.get("promcast").log_tail(50)
    );
}

/// The shipped example and deploy configs are accepted by `promcast check-config` (and by
/// `promtool` when it is installed: it comes with the `prometheus` package), and the alerting
/// rules pass their `promtool test rules` unit tests.
#[test]
fn example_and_deploy_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = |file: &Path| {
        let out = Command::new(PROMCAST)
            .arg("check-config")
            .arg(file)
            .output()
            .expect("run promcast check-config");
        assert!(
            out.status.success(),
            "promcast check-config {} failed: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    check(&root.join("examples/promcast.yml"));
    check(&root.join("examples/promcast-counters.yml"));

    // The promcast.yml that deploy/base generates its ConfigMap from (tests/deploy.rs checks
    // every rendered one).
    let embedded = std::fs::read_to_string(root.join("deploy/base/promcast.yml"))
        .expect("read deploy/base/promcast.yml");

    // Every Kubernetes manifest under deploy/ (base, overlays, components) parses, and every
    // object names its apiVersion, kind and name. (tests/deploy.rs renders and validates
    // them with kustomize.)
    fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("a deploy/ directory") {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                yaml_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    let mut objects: Vec<(String, serde_yaml_ng::Value)> = Vec::new();
    let mut files = Vec::new();
    yaml_files(&root.join("deploy"), &mut files);
    files.retain(|p| {
        // kustomize's own files, and Prometheus config fragments rather than Kubernetes
        // objects (checked by promtool below).
        !p.ends_with("kustomization.yaml") && !p.ends_with("prometheus-remote-write.yaml")
    });
    files.sort();
    assert!(files.len() >= 6, "deploy manifests: {files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a manifest");
        let before = objects.len();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = serde_yaml_ng::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", file.display()));
            for key in ["apiVersion", "kind"] {
                assert!(
                    v[key].as_str().is_some(),
                    "{}: an object without {key}",
                    file.display()
                );
            }
            assert!(
                v["metadata"]["name"].as_str().is_some(),
                "{}: an object without a name",
                file.display()
            );
            objects.push((file.display().to_string(), v));
        }
        assert!(
            objects.len() > before,
            "{} holds no objects",
            file.display()
        );
    }
    // Scalers on promcast never read a missing recommendation as 0, and leave scale-in
    // stabilisation to promcast.
    let of_kind = |kind: &'static str| {
        objects
            .iter()
            .filter(move |(_, v)| v["kind"].as_str() == Some(kind))
    };
    let scaled: Vec<_> = of_kind("ScaledObject").collect();
    assert_eq!(
        scaled.len(),
        3,
        "a prometheus, an external and a metrics-api ScaledObject"
    );
    for (file, so) in &scaled {
        let window = &so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
            ["scaleDown"]["stabilizationWindowSeconds"];
        assert_eq!(window.as_u64(), Some(0), "{file}");
        let trigger = &so["spec"]["triggers"][0];
        match trigger["type"].as_str() {
            Some("prometheus") => {
                assert_eq!(
                    trigger["metadata"]["ignoreNullValues"].as_str(),
                    Some("false"),
                    "{file}"
                );
                assert!(
                    trigger["metadata"]["query"]
                        .as_str()
                        .unwrap()
                        .contains("promcast_desired_replicas"),
                    "{file}"
                );
            }
            Some("external") => assert!(trigger["metadata"]["target"].as_str().is_some(), "{file}"),
            Some("metrics-api") => {
                let url = trigger["metadata"]["url"].as_str().unwrap_or_default();
                assert!(url.contains("/api/v1/scaling/"), "{file}: {url}");
                assert_eq!(
                    trigger["metadata"]["valueLocation"].as_str(),
                    Some("data.desired_replicas"),
                    "{file}"
                );
            }
            other => panic!("{file}: trigger {other:?}"),
        }
    }
    let hpa: Vec<_> = of_kind("HorizontalPodAutoscaler").collect();
    assert_eq!(hpa.len(), 1);
    assert_eq!(
        hpa[0].1["spec"]["metrics"][0]["external"]["metric"]["name"].as_str(),
        Some("promcast_desired_replicas")
    );
    // The sidecar's promcast.yml (its ConfigMap is generated from it) is valid and defines
    // the target the external trigger names.
    let sidecar = std::fs::read_to_string(root.join("deploy/overlays/sidecar/promcast.yml"))
        .expect("read deploy/overlays/sidecar/promcast.yml");
    assert!(sidecar.contains("scaling:"), "{sidecar}");
    let external_target = scaled
        .iter()
        .find_map(|(_, so)| so["spec"]["triggers"][0]["metadata"]["target"].as_str())
        .unwrap();
    assert!(
        sidecar.contains(&format!("name: {external_target}")),
        "{sidecar}"
    );
    // The metrics-api trigger reads a target the sidecar defines too.
    let api_target = scaled
        .iter()
        .find_map(|(_, so)| so["spec"]["triggers"][0]["metadata"]["url"].as_str())
        .and_then(|url| url.rsplit('/').next())
        .expect("the metrics-api trigger's url");
    assert!(
        sidecar.contains(&format!("name: {api_target}")),
        "{api_target} not in {sidecar}"
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("promcast.yml");
    write_file(&path, &embedded);
    check(&path);
    let path = tmp.path().join("sidecar.yml");
    write_file(&path, &sidecar);
    check(&path);

    if let Some(promtool) = find_program("promtool") {
        for args in [
            vec!["check", "config", "examples/prometheus.yml"],
            vec!["check", "rules", "examples/recording_rules.yml"],
            vec!["check", "rules", "deploy/alerting-rules.yml"],
            vec!["test", "rules", "deploy/alerting-rules.test.yml"],
            vec![
                "check",
                "config",
                "deploy/overlays/remote-write/prometheus-remote-write.yaml",
            ],
            vec![
                "check",
                "config",
                "deploy/overlays/sharded/prometheus-remote-write.yml",
            ],
            vec!["check", "rules", "deploy/overlays/sidecar/rules.yml"],
        ] {
            let out = Command::new(&promtool)
                .args(&args)
                .current_dir(root)
                .output()
                .expect("run promtool");
            assert!(
                out.status.success(),
                "promtool {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
