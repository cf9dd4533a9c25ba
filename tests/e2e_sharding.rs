//! Scale-out by sharding, as `deploy/overlays/sharded` sets it up: one Prometheus
//! 2.42, two promcast processes, the overlay's own `remote_write` fragment (hashmod
//! relabelling) with the replicas' addresses put in. Prometheus' recording rules produce the
//! selected series; both promcasts write their forecasts back into the same Prometheus.
//! Every selected series is forecast by exactly one promcast, and Prometheus holds exactly
//! one forecast per series.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{addr, free_port, http_get, labels_of, poll, prom_series, Labels, Proc, Procs};
use serde_json::Value;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");

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

#[test]
fn every_series_is_forecast_by_exactly_one_shard() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The two files the overlay generates its ConfigMap from (tests/deploy.rs renders it).
    let overlay = root.join("deploy/overlays/sharded");
    let promcast_yml = std::fs::read_to_string(overlay.join("promcast.yml")).unwrap();
    let fragment = std::fs::read_to_string(overlay.join("prometheus-remote-write.yml")).unwrap();
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
    // Each shard snapshots into its own directory (its volume in the StatefulSet).
    assert!(yml.contains("path: /var/lib/promcast"), "{yml}");
    let cfgs: Vec<_> = (0..2)
        .map(|i| {
            let data = dir.path().join(format!("promcast-{i}-data"));
            let cfg = dir.path().join(format!("promcast-{i}.yml"));
            std::fs::write(
                &cfg,
                yml.replace("/var/lib/promcast", &data.display().to_string()),
            )
            .unwrap();
            let check = Command::new(PROMCAST)
                .arg("check-config")
                .arg(&cfg)
                .output()
                .unwrap();
            assert!(check.status.success(), "{check:?}");
            cfg
        })
        .collect();

    let mut procs = Procs::default();
    for (i, at) in shards.iter().enumerate() {
        let name: &'static str = ["promcast-0", "promcast-1"][i];
        let mut cmd = Command::new(PROMCAST);
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfgs[i])
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
