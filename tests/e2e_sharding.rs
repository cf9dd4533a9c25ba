//! Scale-out by sharding, as `deploy/kubernetes-sharded.yaml` sets it up: one Prometheus
//! 2.42, two promcast processes, the manifest's own `remote_write` fragment (hashmod
//! relabelling) with the replicas' addresses put in. Prometheus' recording rules produce the
//! selected series; both promcasts write their forecasts back into the same Prometheus.
//! Every selected series is forecast by exactly one promcast, and Prometheus holds exactly
//! one forecast per series.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{addr, free_port, http_get, poll, urlencode, Proc, Procs};
use serde::Deserialize;
use serde_json::Value;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");

/// A series' identity: its labels, sorted.
type Labels = BTreeSet<(String, String)>;

fn labels_of(v: &Value) -> Labels {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The series a promcast forecasts (ready or not).
fn forecast_by(at: SocketAddr) -> Result<BTreeSet<Labels>, String> {
    let body = http_get(at, "/api/v1/forecasts?limit=100000")?.body;
    let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["data"]["series"]
        .as_array()
        .ok_or(body.clone())?
        .iter()
        .filter(|s| s["state"] == "ready")
        .map(|s| labels_of(&s["labels"]))
        .collect())
}

/// Series in Prometheus matching `selector`.
fn prom_series(prom: SocketAddr, selector: &str) -> Result<BTreeSet<Labels>, String> {
    let body = http_get(
        prom,
        &format!("/api/v1/series?match[]={}", urlencode(selector)),
    )?
    .body;
    let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["data"]
        .as_array()
        .ok_or(body.clone())?
        .iter()
        .map(labels_of)
        .collect())
}

#[test]
fn every_series_is_forecast_by_exactly_one_shard() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("deploy/kubernetes-sharded.yaml")).unwrap();
    let (mut promcast_yml, mut fragment) = (None, None);
    for doc in serde_yaml_ng::Deserializer::from_str(&manifest) {
        let v = serde_yaml_ng::Value::deserialize(doc).expect("the manifest is YAML");
        if v["kind"].as_str() == Some("ConfigMap") {
            promcast_yml = v["data"]["promcast.yml"].as_str().map(str::to_owned);
            fragment = v["data"]["prometheus-remote-write.yml"]
                .as_str()
                .map(str::to_owned);
        }
    }
    let (promcast_yml, fragment) = (promcast_yml.unwrap(), fragment.unwrap());
    assert_eq!(fragment.matches("modulus: 2").count(), 2);

    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<SocketAddr> = {
        let mut v: Vec<SocketAddr> = Vec::new();
        while v.len() < 3 {
            let p = addr(free_port());
            if !v.contains(&p) {
                v.push(p);
            }
        }
        v
    };
    let (prom, shards) = (ports[0], [ports[1], ports[2]]);

    // The manifest's promcast.yml, at test speed, writing into this Prometheus.
    let yml = promcast_yml
        .replace("step: 1m", "step: 1s")
        .replace("retention: 24h", "retention: 10m")
        .replace("idle_timeout: 1h", "idle_timeout: 5m")
        .replace("[5m, 15m, 30m]", "[2s, 5s]")
        .replace("model: auto", "model: naive")
        .replace(
            "http://prometheus-operated.monitoring.svc:9090",
            &format!("http://{prom}"),
        );
    assert!(yml.contains(&prom.to_string()), "{yml}");
    let cfg = dir.path().join("promcast.yml");
    std::fs::write(&cfg, &yml).unwrap();
    let check = Command::new(PROMCAST)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    let mut procs = Procs::default();
    for (i, at) in shards.iter().enumerate() {
        let name: &'static str = ["promcast-0", "promcast-1"][i];
        let mut cmd = Command::new(PROMCAST);
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfg)
            .args(["--web.listen-address", &at.to_string()]);
        procs.procs.push(Proc::spawn(
            name,
            cmd,
            dir.path().join(format!("{name}.log")),
        ));
    }
    for (i, at) in shards.iter().enumerate() {
        let name = ["promcast-0", "promcast-1"][i];
        poll(
            &format!("{name} /-/ready"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                procs.get(name).check_running()?;
                http_get(*at, "/-/ready").and_then(|r| match r.status {
                    200 => Ok(()),
                    s => Err(format!("HTTP {s}")),
                })
            },
        );
    }

    // Prometheus: recording rules give colon-named series (per handler, code and bucket), the
    // manifest's fragment shards them.
    std::fs::write(
        dir.path().join("rules.yml"),
        r#"groups:
  - name: e2e
    interval: 1s
    rules:
      - record: handler:prometheus_http_requests:rate1m
        expr: sum by (job, handler, code) (rate(prometheus_http_requests_total[1m]))
      - record: handler:prometheus_http_response_size_bytes:sum_rate1m
        expr: sum by (job, handler) (rate(prometheus_http_response_size_bytes_sum[1m]))
      - record: handler:prometheus_http_request_duration_seconds_bucket:rate1m
        expr: sum by (job, handler, le) (rate(prometheus_http_request_duration_seconds_bucket[1m]))
"#,
    )
    .unwrap();
    let fragment = fragment
        .replace(
            "http://promcast-sharded-0.promcast-sharded.monitoring.svc:9201",
            &format!("http://{}", shards[0]),
        )
        .replace(
            "http://promcast-sharded-1.promcast-sharded.monitoring.svc:9201",
            &format!("http://{}", shards[1]),
        );
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             rule_files: [{}]\n\
             scrape_configs:\n  - job_name: prometheus\n    static_configs: [{{ targets: [\"{prom}\"] }}]\n\
             {fragment}",
            dir.path().join("rules.yml").display()
        ),
    )
    .unwrap();
    procs.start_prometheus(dir.path(), prom, &["--web.enable-remote-write-receiver"]);

    // Wait until the rules' series exist and, between them, the shards forecast all of them.
    let inputs = r#"{__name__=~"handler:.+", __name__!~".+:predicted"}"#;
    let (all, a, b) = poll(
        "every selected series forecast by one of the shards",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            procs.get("prometheus").check_running()?;
            procs.get("promcast-0").check_running()?;
            procs.get("promcast-1").check_running()?;
            let all = prom_series(prom, inputs)?;
            let (a, b) = (forecast_by(shards[0])?, forecast_by(shards[1])?);
            let union: BTreeSet<Labels> = a.union(&b).cloned().collect();
            if all.len() >= 20 && union == all {
                Ok((all, a, b))
            } else {
                Err(format!(
                    "{} series in Prometheus, forecast: {} + {}",
                    all.len(),
                    a.len(),
                    b.len()
                ))
            }
        },
    );
    assert!(
        a.is_disjoint(&b),
        "a series forecast twice: {:?}",
        a.intersection(&b).collect::<Vec<_>>()
    );
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both shards get series: {} / {}",
        a.len(),
        b.len()
    );

    // The forecasts of every input series are back in Prometheus.
    poll(
        "the forecast of every series in Prometheus",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let predicted = prom_series(
                prom,
                r#"{__name__=~"handler:.+:predicted", horizon="5s", ml_forecast="yhat"}"#,
            )?;
            let back: BTreeSet<Labels> = predicted
                .into_iter()
                .map(|l| {
                    l.into_iter()
                        .filter(|(k, _)| k != "horizon" && k != "ml_forecast")
                        .map(|(k, v)| {
                            if k == "__name__" {
                                (k, v.trim_end_matches(":predicted").to_string())
                            } else {
                                (k, v)
                            }
                        })
                        .collect()
                })
                .collect();
            if back.is_superset(&all) {
                Ok(())
            } else {
                Err(format!("{} of {} forecast back", back.len(), all.len()))
            }
        },
    );
    eprintln!(
        "sharding: {} series, {} on promcast-0 and {} on promcast-1, none on both",
        all.len(),
        a.len(),
        b.len()
    );
    procs.get("prometheus").terminate(Duration::from_secs(30));
    for name in ["promcast-0", "promcast-1"] {
        let status = procs.get(name).terminate(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "{name}: {status:?}");
    }
}
