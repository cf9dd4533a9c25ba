//! promcast's outgoing requests to a target that requires TLS, a client certificate and
//! credentials: a real Prometheus 2.42 whose `--web.config.file` asks for all three
//! (`RequireAndVerifyClientCert`, `basic_auth_users`), as a Prometheus behind its own
//! security is run.
//!
//! - remote write out with `tls_config` (CA, client certificate, key), `basic_auth` and
//!   `headers`: the forecasts arrive in that Prometheus;
//! - the same target with a wrong password: every batch refused (401, dropped and counted,
//!   never retried), nothing sent;
//! - backfill over remote read with the same keys: new series are backfilled from it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::tls::{client_config, https_request, Pki};
use common::{addr, free_port, metric_total, poll, urlencode, Procs};
use tokio_rustls::rustls::ClientConfig;

const PASSWORD: &str = "promcast-test-password";
/// bcrypt of `PASSWORD` (cost 4), as Prometheus' `basic_auth_users` takes it.
const PASSWORD_BCRYPT: &str = "$2b$04$FNiebI7ykZ8o2dp0cDH5u.Ob4Wti1FnB3/i3GRa2CsIvns9iM3Xsm";

/// An instant query to the secured Prometheus; the number of series in its result.
fn query(
    tls: &Arc<ClientConfig>,
    prom: SocketAddr,
    auth: Option<&str>,
    q: &str,
) -> Result<usize, String> {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let path = format!("/api/v1/query?query={}", urlencode(q));
    let r = https_request(tls, prom, "GET", &path, &headers, &[])?;
    if r.status != 200 {
        return Err(format!("HTTP {}: {}", r.status, r.body.trim()));
    }
    let v: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
    Ok(v["data"]["result"].as_array().map_or(0, Vec::len))
}

#[test]
fn remote_write_and_backfill_reach_a_prometheus_that_requires_tls_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &["127.0.0.1", "localhost"]);
    let (web, prom) = loop {
        let (w, p) = (addr(free_port()), addr(free_port()));
        if w != p {
            break (w, p);
        }
    };
    std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(dir.path().join("wrong-password"), "not-it\n").unwrap();

    // Prometheus: HTTPS only, client certificates from the test CA, basic auth; it scrapes
    // itself through the same, and remote-writes to promcast (plain HTTP).
    std::fs::write(
        dir.path().join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
             basic_auth_users:\n  promcast: {PASSWORD_BCRYPT}\n"
        ),
    )
    .unwrap();
    let tls_keys = format!(
        "{{ ca_file: {}, cert_file: {}, key_file: {} }}",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            r#"global: {{ scrape_interval: 1s }}
scrape_configs:
  - job_name: prometheus
    scheme: https
    tls_config: {tls_keys}
    basic_auth: {{ username: promcast, password: {PASSWORD} }}
    static_configs: [{{ targets: ["{prom}"] }}]
remote_write:
  - url: http://{web}/api/v1/write
    queue_config: {{ batch_send_deadline: 1s }}
    write_relabel_configs:
      - {{ source_labels: [__name__], regex: prometheus_tsdb_head_series, action: keep }}
"#
        ),
    )
    .unwrap();

    // promcast: forecasts out to the secured Prometheus twice (right and wrong password,
    // told apart by host name), backfill from it.
    let good = format!("https://{prom}/api/v1/write");
    let bad = format!("https://localhost:{}/api/v1/write", prom.port());
    std::fs::write(
        dir.path().join("promcast.yml"),
        format!(
            r#"storage: {{ step: 1s, retention: 10m }}
forecast:
  - selector: '{{__name__="prometheus_tsdb_head_series"}}'
    horizons: [2s]
    model: naive
remote_write:
  - url: {good}
    basic_auth: {{ username: promcast, password_file: password }}
    headers: {{ X-Scope-OrgID: team-a }}
    tls_config: {{ ca_file: ca.crt, cert_file: client.crt, key_file: client.key }}
    min_backoff: 50ms
    max_backoff: 500ms
  - url: {bad}
    basic_auth: {{ username: promcast, password_file: wrong-password }}
    tls_config: {{ ca_file: ca.crt, cert_file: client.crt, key_file: client.key }}
backfill:
  url: https://{prom}/api/v1/read
  lookback: 10m
  basic_auth: {{ username: promcast, password_file: password }}
  tls_config: {{ ca_file: ca.crt, cert_file: client.crt, key_file: client.key }}
"#
        ),
    )
    .unwrap();

    let mut procs = Procs::default();
    let web_config = format!("--web.config.file={}", dir.path().join("web.yml").display());
    procs.start_prometheus(
        dir.path(),
        prom,
        &[&web_config, "--web.enable-remote-write-receiver"],
    );

    // The Prometheus really requires what promcast will present: without credentials 401.
    let tls = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("promcast:{PASSWORD}"))
    );
    poll(
        "the secured Prometheus scraping itself",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            procs.get("prometheus").check_running()?;
            match query(&tls, prom, Some(&basic), "prometheus_tsdb_head_series")? {
                0 => Err("no samples yet".into()),
                _ => Ok(()),
            }
        },
    );
    let anonymous = query(&tls, prom, None, "up");
    assert!(
        anonymous.as_ref().is_err_and(|e| e.contains("401")),
        "{anonymous:?}"
    );

    // promcast starts after Prometheus has history, so its first sight of the series is
    // backfilled.
    procs.start_promcast(dir.path(), web);

    let predicted = "prometheus_tsdb_head_series:predicted{ml_forecast=\"yhat\",horizon=\"2s\"}";
    poll(
        "forecasts in the secured Prometheus",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            procs.get("promcast").check_running()?;
            procs.get("prometheus").check_running()?;
            match query(&tls, prom, Some(&basic), predicted)? {
                0 => Err(format!(
                    "not yet; sent {}, failed {}",
                    metric_total(web, "promcast_remote_write_samples_sent_total"),
                    metric_total(web, "promcast_remote_write_samples_failed_total")
                )),
                _ => Ok(()),
            }
        },
    );
    let sent = |url: &str| {
        metric_total(
            web,
            &format!("promcast_remote_write_samples_sent_total{{url=\"{url}\"}}"),
        )
    };
    let failed = |url: &str| {
        metric_total(
            web,
            &format!("promcast_remote_write_samples_failed_total{{url=\"{url}\"}}"),
        )
    };
    assert!(sent(&good) > 0.0);
    poll(
        "the wrong password's batches refused",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || match failed(&bad) {
            n if n > 0.0 => Ok(()),
            n => Err(format!("{n} failed")),
        },
    );
    assert_eq!(sent(&bad), 0.0, "a refused credential must not deliver");
    assert_eq!(
        metric_total(
            web,
            &format!("promcast_remote_write_retries_total{{url=\"{bad}\"}}")
        ),
        0.0,
        "401 is not retried"
    );
    let backfilled = metric_total(web, "promcast_backfill_series_total{result=\"ok\"}");
    let samples = metric_total(web, "promcast_backfill_samples_total");
    assert!(
        backfilled >= 1.0 && samples > 0.0,
        "backfill over TLS with credentials: {backfilled} series, {samples} samples\n{}",
        procs.logs()
    );
    // Prometheus first: it flushes its remote-write queue to promcast on the way out.
    for name in ["prometheus", "promcast"] {
        let status = procs.get(name).terminate(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "{name}: {status:?}");
    }
}
