//! A Prometheus HA pair, for real: two Prometheus 2.42 processes with the external labels
//! `cluster="a"` and `__replica__="r1"` / `"r2"` scrape the same target (promcast's own
//! `/metrics`), evaluate the same recording rules and remote-write them to one promcast with
//! `ha:` on; promcast writes its forecasts into a third Prometheus (the receiver).
//!
//! - promcast stores one series per input series (not one per replica), without the replica
//!   label, and the receiver gets one forecast per series, horizon and band;
//! - the elected replica is killed with SIGKILL: the other one is elected, its samples are
//!   accepted, and no input series' ring has a hole longer than `failover_timeout` plus one
//!   scrape interval (plus the one-step bucketing of the ring);
//! - forecasts keep arriving at the receiver, still one per series.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    addr, free_port, http_get, labels_of, poll, prom_series, urlencode, Labels, Proc, Procs,
};
use serde_json::Value;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");
/// `ha.failover_timeout` of the test, seconds.
const FAILOVER_S: f64 = 5.0;
/// The replicas' scrape and rule evaluation interval, seconds.
const SCRAPE_S: f64 = 1.0;

fn json(at: SocketAddr, path: &str) -> Result<Value, String> {
    let r = http_get(at, path)?;
    if r.status != 200 {
        return Err(format!("{path}: HTTP {}: {}", r.status, r.body));
    }
    serde_json::from_str(&r.body).map_err(|e| format!("{path}: {e}: {}", r.body))
}

/// promcast's rings of the input series: labels and `(unix seconds, value)` points.
fn rings(promcast: SocketAddr) -> Result<Vec<(Labels, Vec<f64>)>, String> {
    let selector = urlencode(r#"{__name__=~"job:.+"}"#);
    let v = json(
        promcast,
        &format!("/api/v1/history?selector={selector}&limit=1000"),
    )?;
    Ok(v["data"]["series"]
        .as_array()
        .ok_or("no series")?
        .iter()
        .map(|s| {
            let times = s["points"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p[0].as_f64())
                .collect();
            (labels_of(&s["labels"]), times)
        })
        .collect())
}

/// The replica promcast has elected for cluster `a`, from its /metrics.
fn elected(promcast: SocketAddr) -> Result<String, String> {
    let body = http_get(promcast, "/metrics")?.body;
    let line = body
        .lines()
        .find(|l| l.starts_with("promcast_ha_elected_replica{") && l.contains("cluster=\"a\""))
        .ok_or("no promcast_ha_elected_replica for cluster a yet")?;
    let replica = line
        .split("replica=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or(format!("unparsable: {line}"))?;
    Ok(replica.to_owned())
}

fn metric(promcast: SocketAddr, name: &str) -> f64 {
    common::metric_total(promcast, name)
}

fn start_prometheus(procs: &mut Procs, name: &'static str, dir: &Path, at: SocketAddr, yml: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("prometheus.yml"), yml).unwrap();
    let mut flags = vec!["--storage.remote.flush-deadline=2s"];
    if name == "receiver" {
        flags.push("--web.enable-remote-write-receiver");
    }
    procs.start_prometheus_named(name, dir, at, &flags);
}

#[test]
fn an_ha_pair_is_stored_once_and_fails_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut ports: Vec<SocketAddr> = Vec::new();
    while ports.len() < 4 {
        let p = addr(free_port());
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    let (promcast, receiver, replicas) = (ports[0], ports[1], [ports[2], ports[3]]);

    let cfg = dir.path().join("promcast.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"storage: {{ step: 1s, retention: 10m, idle_timeout: 5m }}
forecast:
  - selector: '{{__name__=~".+:.+"}}'
    horizons: [2s, 5s]
    model: naive
    anomaly: {{ enabled: false }}
remote_write:
  - url: http://{receiver}/api/v1/write
ha:
  cluster_label: cluster
  replica_label: __replica__
  failover_timeout: {FAILOVER_S}s
"#
        ),
    )
    .unwrap();
    let check = Command::new(PROMCAST)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    let mut procs = Procs::default();
    let mut cmd = Command::new(PROMCAST);
    cmd.arg("serve")
        .arg("--config")
        .arg(&cfg)
        .args(["--web.listen-address", &promcast.to_string()])
        .args(["--grpc.listen-address", &addr(free_port()).to_string()]);
    procs.procs.push(Proc::spawn(
        "promcast",
        cmd,
        dir.path().join("promcast.log"),
    ));
    poll(
        "promcast /-/ready",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            procs.get("promcast").check_running()?;
            match http_get(promcast, "/-/ready")?.status {
                200 => Ok(()),
                s => Err(format!("HTTP {s}")),
            }
        },
    );
    start_prometheus(
        &mut procs,
        "receiver",
        &dir.path().join("receiver"),
        receiver,
        "global: { scrape_interval: 1m }\n",
    );

    // The pair: the same target, the same rules, their own replica label.
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: ha
    interval: 1s
    rules:
      - record: job:promcast_samples_received:rate10s
        expr: sum by (job) (rate(promcast_samples_received_total[10s]))
      - record: job:promcast_write_requests:rate10s
        expr: sum by (job, code) (rate(promcast_write_requests_total[10s]))
"#,
    )
    .unwrap();
    let own = ".+:(predicted|forecast|forecast_mase|forecast_coverage|anomaly_score|anomaly_likelihood|anomalous)";
    let names: [&'static str; 2] = ["prometheus-r1", "prometheus-r2"];
    for (i, at) in replicas.iter().enumerate() {
        let replica = format!("r{}", i + 1);
        let yml = format!(
            r#"global:
  scrape_interval: {SCRAPE_S}s
  evaluation_interval: {SCRAPE_S}s
  external_labels: {{ cluster: a, __replica__: {replica} }}
rule_files: [{rules}]
scrape_configs:
  - job_name: promcast
    static_configs: [{{ targets: ["{promcast}"] }}]
    metric_relabel_configs:
      - {{ source_labels: [__name__], regex: "{own}", action: drop }}
remote_write:
  - url: http://{promcast}/api/v1/write
    queue_config: {{ batch_send_deadline: 1s }}
    write_relabel_configs:
      - {{ source_labels: [__name__], regex: ".+:.+", action: keep }}
      - {{ source_labels: [__name__], regex: "{own}", action: drop }}
"#,
            rules = rules.display()
        );
        start_prometheus(&mut procs, names[i], &dir.path().join(&replica), *at, &yml);
    }

    // 1. Both replicas send; promcast holds one series per input series, forecast once.
    let inputs = r#"{__name__=~"job:.+"}"#;
    let (first, expected) = poll(
        "both replicas' rule outputs, each stored once by promcast",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            for name in ["promcast", "receiver", names[0], names[1]] {
                procs.get(name).check_running()?;
            }
            let elected = elected(promcast)?;
            if metric(
                promcast,
                "promcast_samples_dropped_total{reason=\"ha_duplicate\"}",
            ) == 0.0
            {
                return Err("no duplicate dropped yet: the other replica has not sent".into());
            }
            // What the elected replica holds itself (no external labels there), plus the
            // cluster label: what promcast must hold.
            let elected_at = replicas[if elected == "r1" { 0 } else { 1 }];
            let mut expected: Vec<Labels> = prom_series(elected_at, inputs)?
                .into_iter()
                .map(|mut l| {
                    l.insert(("cluster".into(), "a".into()));
                    l
                })
                .collect();
            expected.sort();
            let mut held: Vec<Labels> = rings(promcast)?.into_iter().map(|(l, _)| l).collect();
            held.sort();
            if expected.len() >= 3 && held == expected {
                Ok((elected, expected))
            } else {
                Err(format!("promcast holds {held:?}, expected {expected:?}"))
            }
        },
    );
    eprintln!("e2e_ha: {} input series, elected {first}", expected.len());
    for (labels, _) in rings(promcast).unwrap() {
        assert!(
            !labels.iter().any(|(k, _)| k == "__replica__"),
            "replica label kept: {labels:?}"
        );
    }
    // The receiver: every input's forecasts, once (2 horizons x yhat, lower, upper).
    let forecasts = r#"{__name__=~"job:.+:predicted"}"#;
    let per_input = 2 * 3;
    poll(
        "one forecast per input series, horizon and band at the receiver",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let got = prom_series(receiver, forecasts)?;
            if got
                .iter()
                .any(|l| l.iter().any(|(k, _)| k == "__replica__"))
            {
                return Err(format!("a forecast with a replica label: {got:?}"));
            }
            if got.len() == expected.len() * per_input {
                Ok(())
            } else {
                Err(format!(
                    "{} forecast series, expected {}",
                    got.len(),
                    expected.len() * per_input
                ))
            }
        },
    );

    // 2. SIGKILL the elected replica; the other is elected.
    let (dead, alive) = if first == "r1" {
        (names[0], "r2")
    } else {
        (names[1], "r1")
    };
    let dropped_before = metric(
        promcast,
        "promcast_samples_dropped_total{reason=\"ha_duplicate\"}",
    );
    let killed = Instant::now();
    let killed_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    procs.get(dead).child.kill().unwrap();
    procs.get(dead).child.wait().unwrap();
    poll(
        &format!("{alive} elected after {dead} was killed"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            procs.get("promcast").check_running()?;
            match elected(promcast)? {
                r if r == alive => Ok(()),
                r => Err(format!("{r} still elected")),
            }
        },
    );
    let failover = killed.elapsed().as_secs_f64();
    eprintln!("e2e_ha: {alive} elected {failover:.1} s after SIGKILL to {dead}");
    assert_eq!(metric(promcast, "promcast_ha_failovers_total"), 1.0);
    // The survivor's samples now land: every ring moves well past the kill.
    let rings = poll(
        "every ring filled past the failover",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let r = rings(promcast)?;
            let behind: Vec<_> = r
                .iter()
                .filter(|(_, t)| t.last().copied().unwrap_or(0.0) < killed_unix + FAILOVER_S + 5.0)
                .map(|(l, _)| l.clone())
                .collect();
            if r.len() == expected.len() && behind.is_empty() {
                Ok(r)
            } else {
                Err(format!("{} rings, behind: {behind:?}", r.len()))
            }
        },
    );
    // No hole longer than the failover timeout plus one scrape interval (plus one step of
    // bucketing) in any ring, around the failover or elsewhere.
    let step = 1.0;
    let bound = FAILOVER_S + SCRAPE_S + step;
    let mut worst: f64 = 0.0;
    for (labels, times) in &rings {
        for w in times.windows(2) {
            let hole = w[1] - w[0];
            worst = worst.max(hole);
            assert!(
                hole <= bound,
                "{labels:?}: a hole of {hole} s (at {}) longer than {bound} s",
                w[0]
            );
        }
    }
    eprintln!("e2e_ha: the longest hole between ring points: {worst} s (bound {bound} s)");
    // After the failover the survivor's samples are accepted, not dropped.
    let dropped_after = metric(
        promcast,
        "promcast_samples_dropped_total{reason=\"ha_duplicate\"}",
    );
    let accepted = metric(promcast, "promcast_samples_accepted_total");
    poll(
        "samples accepted after the failover",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let now = metric(promcast, "promcast_samples_accepted_total");
            if now > accepted {
                Ok(())
            } else {
                Err(format!("accepted stays at {now}"))
            }
        },
    );
    assert!(dropped_after >= dropped_before);
    // 3. Forecasts still arrive at the receiver, one per input series, horizon and band.
    let newest = |prom: SocketAddr| -> Result<f64, String> {
        let v = json(
            prom,
            &format!(
                "/api/v1/query?query={}",
                urlencode(r#"max(timestamp(job:promcast_samples_received:rate10s:predicted))"#)
            ),
        )?;
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or(format!("no forecast: {v}"))
    };
    poll(
        "forecasts made after the failover at the receiver",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let t = newest(receiver)?;
            if t > killed_unix + FAILOVER_S {
                Ok(())
            } else {
                Err(format!("newest forecast at {t}"))
            }
        },
    );
    let got = prom_series(receiver, forecasts).unwrap();
    assert_eq!(got.len(), expected.len() * per_input, "{got:?}");

    // Shut down: the live Prometheus processes first (else they retry a dead sink).
    for name in [names[0], names[1], "receiver"] {
        if name != dead {
            procs.get(name).terminate(Duration::from_secs(30));
        }
    }
    let status = procs
        .get("promcast")
        .terminate(Duration::from_secs(30))
        .expect("promcast did not exit within 30 s of SIGTERM");
    assert!(status.success(), "promcast exited with {status}");
}
