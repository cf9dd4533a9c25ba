//! TLS on both listeners, with client certificates required (mutual TLS), against the real
//! binary:
//!
//! - HTTP: plain HTTP on the TLS port, a client with no certificate and a client with a
//!   certificate from another CA get no response at all (the handshake fails, counted in
//!   `promcast_tls_handshake_failures_total`), and a refused remote write stores nothing;
//! - a real Prometheus 2.42 writing over HTTPS with `tls_config` (CA, client certificate and
//!   key) gets its samples in;
//! - gRPC (KEDA external scaler): a tonic client with KEDA's `caCert`/`tlsClientCert`/
//!   `tlsClientKey` gets answers; without a client certificate its calls fail;
//! - rotation: new certificate files are served without a restart; files that do not load
//!   leave the previous certificate serving (`promcast_tls_reloads_total{result}`).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::tls::{client_config, https_request, peer_certificate, pem_certificate, Pki};
use common::{addr, free_port, http_get, poll, recent_body, Proc, Procs, Response, WRITE_HEADERS};
use promcast::proto::externalscaler as ks;
use promcast::proto::externalscaler::external_scaler_client::ExternalScalerClient;
use tokio_rustls::rustls::ClientConfig;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");

fn get(config: &Arc<ClientConfig>, at: SocketAddr, path: &str) -> Result<Response, String> {
    https_request(config, at, "GET", path, &[], &[])
}

/// A value of promcast's /metrics, read over mutual TLS.
fn metric(config: &Arc<ClientConfig>, at: SocketAddr, line_prefix: &str) -> Option<f64> {
    let r = get(config, at, "/metrics").ok()?;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn distinct_ports<const N: usize>() -> [SocketAddr; N] {
    let mut out = Vec::with_capacity(N);
    while out.len() < N {
        let a = addr(free_port());
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out.try_into().unwrap()
}

#[test]
fn both_listeners_serve_mutual_tls_and_rotate_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &["127.0.0.1", "localhost"]);
    let cfg = dir.path().join("promcast.yml");
    std::fs::write(
        &cfg,
        r#"storage: { step: 1s, retention: 10m }
forecast:
  - selector: '{__name__=~"job:.+|prometheus_tsdb_head_series"}'
    horizons: [2s, 4s]
    model: naive
scaling:
  - name: web
    series: 'job:requests:rate1m{job="web"}'
    capacity_per_replica: 10
    max_replicas: 50
    lead_time: 2s
tls:
  http: { cert_file: tls.crt, key_file: tls.key, client_ca_file: ca.crt }
  grpc: { cert_file: tls.crt, key_file: tls.key, client_ca_file: ca.crt }
"#,
    )
    .unwrap();
    let [web, grpc, prom_at] = distinct_ports();
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
    let trusted = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    poll(
        "promcast /-/ready over mutual TLS",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            procs.get("promcast").check_running()?;
            get(&trusted, web, "/-/ready").and_then(|r| match r.status {
                200 => Ok(()),
                s => Err(format!("HTTP {s}")),
            })
        },
    );

    // Refused: plain HTTP, no client certificate, a certificate from another CA.
    let plain = http_get(web, "/-/ready");
    assert!(plain.is_err(), "plain HTTP on the TLS port: {plain:?}");
    let anonymous = client_config(&pki.ca, None);
    let rogue = client_config(&pki.ca, Some((&pki.rogue_cert, &pki.rogue_key)));
    let body = recent_body("web");
    let write_headers = WRITE_HEADERS;
    for (who, config) in [("no client certificate", &anonymous), ("rogue CA", &rogue)] {
        let r = https_request(config, web, "POST", "/api/v1/write", &write_headers, &body);
        assert!(r.is_err(), "{who}: {r:?}");
    }
    assert_eq!(
        metric(&trusted, web, "promcast_samples_received_total "),
        Some(0.0),
        "refused clients must not reach the store"
    );
    let failures = r#"promcast_tls_handshake_failures_total{listener="http"} "#;
    assert!(
        metric(&trusted, web, failures).unwrap() >= 3.0,
        "plain, anonymous and rogue handshakes counted"
    );

    // A client with the right certificate writes.
    let r = https_request(
        &trusted,
        web,
        "POST",
        "/api/v1/write",
        &write_headers,
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        metric(&trusted, web, "promcast_samples_received_total "),
        Some(10.0)
    );

    // A real Prometheus writing over HTTPS with a client certificate.
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            r#"global: {{ scrape_interval: 1s }}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{ targets: ["{prom_at}"] }}]
remote_write:
  - url: https://{web}/api/v1/write
    tls_config: {{ ca_file: {}, cert_file: {}, key_file: {} }}
    queue_config: {{ batch_send_deadline: 1s }}
"#,
            pki.ca.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        ),
    )
    .unwrap();
    procs.start_prometheus(dir.path(), prom_at, &[]);
    poll(
        "Prometheus' samples accepted over mutual TLS",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            procs.get("prometheus").check_running()?;
            let n = metric(&trusted, web, "promcast_samples_received_total ").unwrap_or(0.0);
            if n > 100.0 {
                Ok(())
            } else {
                Err(format!("{n} samples received"))
            }
        },
    );
    let r = get(
        &trusted,
        web,
        "/api/v1/history?selector=prometheus_tsdb_head_series",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("prometheus_tsdb_head_series"), "{}", r.body);

    // gRPC, as KEDA's external trigger connects with caCert, tlsClientCert and tlsClientKey.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let channel = |identity: bool| {
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(&pki.ca)))
            .domain_name("127.0.0.1");
        if identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(&pki.client_cert),
                read(&pki.client_key),
            ));
        }
        tonic::transport::Channel::from_shared(format!("https://{grpc}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
    };
    let request = || {
        tonic::Request::new(ks::ScaledObjectRef {
            name: "web".into(),
            namespace: "default".into(),
            scaler_metadata: HashMap::from([("target".to_string(), "web".to_string())]),
        })
    };
    let spec = rt
        .block_on(async {
            let mut c = ExternalScalerClient::new(channel(true).connect().await?);
            Ok::<_, Box<dyn std::error::Error>>(c.get_metric_spec(request()).await?)
        })
        .expect("GetMetricSpec over mutual TLS")
        .into_inner();
    assert_eq!(spec.metric_specs[0].metric_name, "promcast-web");
    let refused = rt.block_on(async {
        let mut c = ExternalScalerClient::new(channel(false).connect().await?);
        Ok::<_, Box<dyn std::error::Error>>(c.get_metric_spec(request()).await?)
    });
    assert!(
        refused.is_err(),
        "gRPC without a client certificate: {refused:?}"
    );
    assert!(
        metric(
            &trusted,
            web,
            r#"promcast_tls_handshake_failures_total{listener="grpc"} "#
        )
        .unwrap()
            >= 1.0
    );

    // Rotation: a new pair is served without a restart.
    let old = pem_certificate(&pki.server_cert);
    assert_eq!(peer_certificate(&trusted, web).unwrap(), old);
    pki.rotate_server(&["127.0.0.1", "localhost"]);
    let new = pem_certificate(&pki.server_cert);
    assert_ne!(new, old);
    poll(
        "the rotated certificate served",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || match peer_certificate(&trusted, web)? {
            c if c == new => Ok(()),
            _ => Err("still the old certificate".to_string()),
        },
    );
    // A key file that does not load: counted, and the rotated pair keeps serving.
    let reload_failed = r#"promcast_tls_reloads_total{listener="http",result="failed"} "#;
    let failed_before = metric(&trusted, web, reload_failed).unwrap();
    std::fs::write(&pki.server_key, "not a key\n").unwrap();
    poll(
        "the broken key file reported",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || match metric(&trusted, web, reload_failed) {
            Some(n) if n > failed_before => Ok(()),
            n => Err(format!("{n:?} failed reloads")),
        },
    );
    assert_eq!(peer_certificate(&trusted, web).unwrap(), new);
    let r = https_request(
        &trusted,
        web,
        "POST",
        "/api/v1/write",
        &write_headers,
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);

    procs.get("prometheus").terminate(Duration::from_secs(30));
    let status = procs.get("promcast").terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
