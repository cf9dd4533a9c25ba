//! Credentials on both listeners, against the real binary:
//!
//! - HTTP: without credentials, or with wrong ones, every endpoint but the probes answers 401
//!   with a challenge, and a refused remote write stores nothing; bearer and basic auth are
//!   both accepted;
//! - a real Prometheus 2.42 writing with `authorization: { credentials_file }` gets its
//!   samples in;
//! - gRPC (KEDA external scaler): calls without the token fail with `UNAUTHENTICATED`, calls
//!   with it reach the scaler;
//! - refusals are counted per listener in `promcast_unauthorized_requests_total`.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{
    addr, free_port, http_get, http_get_with, http_post, poll, recent_body, Proc, Procs,
    WRITE_HEADERS,
};
use promcast::proto::externalscaler as ks;
use promcast::proto::externalscaler::external_scaler_client::ExternalScalerClient;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");
const TOKEN: &str = "e2e-token-1f0c";
const GRPC_TOKEN: &str = "e2e-grpc-token-77aa";
/// `prometheus:pa55word`.
const BASIC: &str = "Basic cHJvbWV0aGV1czpwYTU1d29yZA==";

fn post_write(at: SocketAddr, auth: Option<&str>, job: &str) -> common::Response {
    let mut headers = WRITE_HEADERS.to_vec();
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    http_post(at, "/api/v1/write", &headers, &recent_body(job)).expect("POST /api/v1/write")
}

/// A counter's value in promcast's /metrics (read with credentials).
fn metric(at: SocketAddr, line_prefix: &str) -> Option<f64> {
    let bearer = format!("Bearer {TOKEN}");
    let r = http_get_with(at, "/metrics", &[("Authorization", &bearer)]).ok()?;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn listeners_refuse_requests_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.path().join("grpc-token"), GRPC_TOKEN).unwrap();
    std::fs::write(dir.path().join("password"), "pa55word\n").unwrap();
    let cfg = dir.path().join("promcast.yml");
    std::fs::write(
        &cfg,
        r#"storage: { step: 1s, retention: 10m }
forecast:
  - selector: '{__name__=~"job:.+"}'
    horizons: [2s, 4s]
    model: naive
scaling:
  - name: web
    series: 'job:requests:rate1m{job="web"}'
    capacity_per_replica: 10
    max_replicas: 50
    lead_time: 2s
auth:
  http:
    bearer_token_file: token
    basic_auth: { username: prometheus, password_file: password }
  grpc:
    bearer_token_file: grpc-token
"#,
    )
    .unwrap();
    let web = addr(free_port());
    let grpc = loop {
        let g = addr(free_port());
        if g != web {
            break g;
        }
    };
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
    // The probes stay open (kubelet sends no credentials).
    poll(
        "promcast /-/ready without credentials",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            procs.get("promcast").check_running()?;
            http_get(web, "/-/ready").and_then(|r| match r.status {
                200 => Ok(()),
                s => Err(format!("HTTP {s}")),
            })
        },
    );
    assert_eq!(http_get(web, "/-/healthy").unwrap().status, 200);

    // HTTP: no credentials, a wrong token, a wrong password, a token of the other listener.
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic cHJvbWV0aGV1czp3cm9uZw=="),
        Some(&format!("Bearer {GRPC_TOKEN}")[..]),
    ] {
        let r = post_write(web, auth, "intruder");
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        let r = http_get_with(
            web,
            "/api/v1/scaling",
            &auth.map(|a| vec![("Authorization", a)]).unwrap_or_default(),
        )
        .unwrap();
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
    }
    assert_eq!(http_get(web, "/metrics").unwrap().status, 401);
    // Nothing of the refused writes was stored.
    assert_eq!(
        metric(web, "promcast_samples_received_total "),
        Some(0.0),
        "refused writes must not reach the store"
    );
    let unauthorized = r#"promcast_unauthorized_requests_total{listener="http"} "#;
    assert_eq!(metric(web, unauthorized), Some(9.0));

    // Both accepted credentials get in.
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(post_write(web, Some(&bearer), "web").status, 204);
    assert_eq!(post_write(web, Some(BASIC), "basic").status, 204);
    assert_eq!(metric(web, "promcast_samples_received_total "), Some(20.0));
    let r = http_get_with(web, "/api/v1/forecasts", &[("Authorization", &bearer)]).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("intruder"), "{}", r.body);

    // A real Prometheus writing with a credentials file.
    let prom_at = loop {
        let p = addr(free_port());
        if p != web && p != grpc {
            break p;
        }
    };
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            r#"global: {{ scrape_interval: 1s }}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{ targets: ["{prom_at}"] }}]
remote_write:
  - url: http://{web}/api/v1/write
    authorization: {{ credentials_file: {} }}
    queue_config: {{ batch_send_deadline: 1s }}
"#,
            dir.path().join("token").display()
        ),
    )
    .unwrap();
    procs.start_prometheus(dir.path(), prom_at, &[]);
    poll(
        "Prometheus' samples accepted through bearer auth",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            procs.get("prometheus").check_running()?;
            let n = metric(web, "promcast_samples_received_total ").unwrap_or(0.0);
            if n > 100.0 {
                Ok(())
            } else {
                Err(format!("{n} samples received"))
            }
        },
    );
    assert_eq!(
        metric(web, unauthorized),
        Some(9.0),
        "Prometheus' writes were all authenticated"
    );

    // gRPC.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt
        .block_on(ExternalScalerClient::connect(format!("http://{grpc}")))
        .expect("connect to the external scaler");
    let request = |auth: Option<&str>| {
        let mut r = tonic::Request::new(ks::ScaledObjectRef {
            name: "web".into(),
            namespace: "default".into(),
            scaler_metadata: HashMap::from([("target".to_string(), "web".to_string())]),
        });
        if let Some(a) = auth {
            r.metadata_mut().insert("authorization", a.parse().unwrap());
        }
        r
    };
    for auth in [None, Some("Bearer wrong"), Some(&bearer[..])] {
        let e = rt
            .block_on(client.get_metric_spec(request(auth)))
            .expect_err("no valid gRPC credentials");
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{auth:?}: {e:?}");
    }
    let grpc_bearer = format!("Bearer {GRPC_TOKEN}");
    let spec = rt
        .block_on(client.get_metric_spec(request(Some(&grpc_bearer))))
        .expect("GetMetricSpec with the token")
        .into_inner();
    assert_eq!(spec.metric_specs[0].metric_name, "promcast-web");
    assert_eq!(
        metric(
            web,
            r#"promcast_unauthorized_requests_total{listener="grpc"} "#
        ),
        Some(3.0)
    );

    procs.get("prometheus").terminate(Duration::from_secs(30));
    let status = procs.get("promcast").terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
