//! The KEDA external scaler, driven by a real tonic client the way KEDA drives it, against
//! the real promcast binary fed real traffic (NASA requests per minute, remote write 1.0):
//!
//! - before any forecast every call fails (never a 0 that would scale production down);
//! - bad or unknown targets are refused with the right gRPC code;
//! - once forecasting, `GetMetricSpec`/`GetMetrics`/`IsActive`/`StreamIsActive` answer with
//!   the same recommendation `/metrics` exports as `promcast_desired_replicas`;
//! - an `observe` target is exported but refused to KEDA; a selector matching two series
//!   gives no recommendation and says why.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::traces::nasa_requests_per_minute;
use common::{free_port, http_get, now_ms, poll, remote_write, series, Proc, Procs};
use promcast::proto::externalscaler as ks;
use promcast::proto::externalscaler::external_scaler_client::ExternalScalerClient;
use promcast::proto::prometheus as pb;
use serde_json::Value;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");

/// `n` NASA requests-per-minute values from the 600th on.
fn nasa(n: usize) -> Vec<f64> {
    nasa_requests_per_minute()
        .into_iter()
        .skip(600)
        .take(n)
        .collect()
}

/// One series of `values` spaced `step_ms` apart, the newest at `end_ms`.
fn spaced(labels: &[(&str, &str)], values: &[f64], end_ms: i64, step_ms: i64) -> pb::TimeSeries {
    let start = end_ms - (values.len() as i64 - 1) * step_ms;
    let samples: Vec<(i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (start + i as i64 * step_ms, *v))
        .collect();
    series(labels, &samples)
}

/// Remote-writes `ts` to promcast; it must answer 2xx.
fn write(at: SocketAddr, ts: Vec<pb::TimeSeries>) {
    remote_write(at, ts).expect("remote write");
}

fn object(target: Option<&str>) -> ks::ScaledObjectRef {
    ks::ScaledObjectRef {
        name: "web".into(),
        namespace: "default".into(),
        scaler_metadata: target
            .map(|t| HashMap::from([("target".to_string(), t.to_string())]))
            .unwrap_or_default(),
    }
}

fn metrics_request(target: &str) -> ks::GetMetricsRequest {
    ks::GetMetricsRequest {
        scaled_object_ref: Some(object(Some(target))),
        metric_name: format!("s0-promcast-{target}"),
    }
}

/// `promcast_desired_replicas{mode=..,target=..}` from promcast's /metrics.
fn exported_desired(at: SocketAddr, target: &str, mode: &str) -> Option<f64> {
    let text = http_get(at, "/metrics").ok()?.body;
    let prefix = format!("promcast_desired_replicas{{mode=\"{mode}\",target=\"{target}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn keda_external_scaler_serves_the_recommendation() {
    let dir = tempfile::tempdir().unwrap();
    let (web, grpc) = loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            break (common::addr(a), common::addr(b));
        }
    };
    // A 2-second step so the test sees several forecast steps quickly; the values are real
    // NASA requests per minute, replayed at that spacing.
    let cfg = dir.path().join("promcast.yml");
    std::fs::write(
        &cfg,
        r#"
storage: { step: 2s, retention: 1h }
forecast:
  - selector: '{__name__=~"job:.+"}'
    horizons: [2s, 4s, 10s]
    model: auto
    anomaly: { enabled: false }
scaling:
  - name: web
    series: 'job:requests:rate1m{job="web"}'
    capacity_per_replica: 10
    min_replicas: 2
    max_replicas: 50
    lead_time: 4s
    policy: quantile
    quantile: 0.9
    scale_down_stabilization: 10s
  - name: shadow
    series: 'job:requests:rate1m{job="web"}'
    capacity_per_replica: 10
    max_replicas: 50
    policy: ceiling
    mode: observe
  - name: both
    series: 'job:requests:rate1m'
    capacity_per_replica: 10
    max_replicas: 50
"#,
    )
    .unwrap();
    let mut procs = Procs::default();
    let mut cmd = Command::new(PROMCAST);
    cmd.arg("serve")
        .arg("--config")
        .arg(&cfg)
        .args(["--web.listen-address", &web.to_string()])
        .args(["--grpc.listen-address", &grpc.to_string()]);
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
            http_get(web, "/-/ready").and_then(|r| {
                if r.status == 200 {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status))
                }
            })
        },
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The gRPC listener is bound before /-/ready answers 200.
    let mut client = rt
        .block_on(ExternalScalerClient::connect(format!("http://{grpc}")))
        .unwrap_or_else(|e| panic!("connect to the external scaler at {grpc}: {e:?}"));

    // No data yet: errors, never 0.
    let e = rt
        .block_on(client.get_metrics(metrics_request("web")))
        .expect_err("GetMetrics before any forecast must fail");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    let e = rt
        .block_on(client.is_active(object(Some("web"))))
        .expect_err("IsActive before any forecast must fail");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    // Bad requests.
    let e = rt
        .block_on(client.get_metric_spec(object(None)))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("target"), "{e:?}");
    let e = rt
        .block_on(client.get_metrics(metrics_request("nope")))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert!(
        e.message().contains("web"),
        "lists the configured targets: {e:?}"
    );

    // Three hours of real traffic for job="web" and one for job="api", at 2 s spacing.
    let values = nasa(180);
    let end = now_ms();
    write(
        web,
        vec![
            spaced(
                &[("__name__", "job:requests:rate1m"), ("job", "web")],
                &values,
                end,
                2000,
            ),
            spaced(
                &[("__name__", "job:requests:rate1m"), ("job", "api")],
                &values[..60],
                end,
                2000,
            ),
        ],
    );

    // Keep both series live, as Prometheus would, so they never go stale mid-test: one new
    // real value per step.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        let more = nasa(180 + 600);
        std::thread::spawn(move || {
            let mut i = 180;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < more.len() {
                let sample = [(now_ms(), more[i])];
                write(
                    web,
                    vec![
                        series(
                            &[("__name__", "job:requests:rate1m"), ("job", "web")],
                            &sample,
                        ),
                        series(
                            &[("__name__", "job:requests:rate1m"), ("job", "api")],
                            &sample,
                        ),
                    ],
                );
                i += 1;
                std::thread::sleep(Duration::from_secs(2));
            }
        })
    };

    let desired = poll(
        "promcast_desired_replicas for target web",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            procs.get("promcast").check_running()?;
            exported_desired(web, "web", "active").ok_or_else(|| "not exported yet".to_string())
        },
    );
    assert!(
        (2.0..=50.0).contains(&desired),
        "within min/max replicas: {desired}"
    );
    // At least the observed load's replicas (max(reactive, predictive)), and the load it
    // used is the larger of observed and predicted.
    let v: Value = serde_json::from_str(&http_get(web, "/api/v1/scaling").unwrap().body).unwrap();
    let t = &v["data"]["targets"][0];
    assert_eq!(t["target"], "web", "{v}");
    let (observed, predicted, load) = (
        t["observed"].as_f64().unwrap(),
        t["predicted"].as_f64().unwrap(),
        t["load"].as_f64().unwrap(),
    );
    assert_eq!(load, observed.max(predicted), "{t}");
    let d = t["desired_replicas"].as_f64().unwrap();
    assert!(d >= (observed / 10.0).ceil().max(2.0), "{t}");
    assert!(d <= 50.0, "{t}");

    // What KEDA asks.
    let spec = rt
        .block_on(client.get_metric_spec(object(Some("web"))))
        .expect("GetMetricSpec")
        .into_inner();
    assert_eq!(spec.metric_specs.len(), 1);
    assert_eq!(spec.metric_specs[0].metric_name, "promcast-web");
    assert_eq!(spec.metric_specs[0].target_size_float, 1.0);

    let got = poll(
        "GetMetrics equal to the exported recommendation",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let before = exported_desired(web, "web", "active");
            let m = rt
                .block_on(client.get_metrics(metrics_request("web")))
                .map_err(|e| format!("{e:?}"))?
                .into_inner();
            let after = exported_desired(web, "web", "active");
            let v = m.metric_values.first().ok_or("no metric values")?;
            if v.metric_name != "s0-promcast-web" {
                return Err(format!("metric name {:?}", v.metric_name));
            }
            // A step may land between the reads: compare only when /metrics held still.
            if before == after && before == Some(v.metric_value_float) {
                Ok(v.metric_value_float)
            } else {
                Err(format!("{before:?} / {} / {after:?}", v.metric_value_float))
            }
        },
    );
    assert!(got >= 2.0);
    let active = rt
        .block_on(client.is_active(object(Some("web"))))
        .expect("IsActive")
        .into_inner();
    assert!(
        active.result,
        "a recommendation of {got} replicas is active"
    );
    let first = rt.block_on(async {
        let mut stream = client
            .stream_is_active(object(Some("web")))
            .await
            .expect("StreamIsActive")
            .into_inner();
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a first StreamIsActive message")
            .expect("stream ok")
            .expect("stream not ended")
    });
    assert!(first.result);

    // observe: exported, flagged, and refused to KEDA.
    let observed = poll(
        "the observe-mode target exported",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || exported_desired(web, "shadow", "observe").ok_or_else(|| "absent".to_string()),
    );
    assert!(observed >= 1.0);
    let e = rt
        .block_on(client.get_metrics(metrics_request("shadow")))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");

    // A selector matching two series: no recommendation, and the API says why.
    assert_eq!(exported_desired(web, "both", "active"), None);
    let e = rt
        .block_on(client.get_metrics(metrics_request("both")))
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("matches 2 series"), "{e:?}");
    let v: Value = serde_json::from_str(&http_get(web, "/api/v1/scaling").unwrap().body).unwrap();
    let both = v["data"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "both")
        .cloned()
        .unwrap();
    assert!(both["desired_replicas"].is_null(), "{both}");
    assert!(
        both["status"]
            .as_str()
            .unwrap()
            .contains("matches 2 series"),
        "{both}"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().expect("the feeder thread");
    let status = procs
        .get("promcast")
        .terminate(Duration::from_secs(20))
        .expect("promcast stops on SIGTERM");
    assert!(
        status.success(),
        "promcast exited with {status}:\n{}",
        procs.get("promcast").log_tail(40)
    );
}
