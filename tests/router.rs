//! HTTP behaviour of the router, driven through `app(state)` without a socket, plus one
//! real-socket round trip in which promcast's remote-write client posts into promcast's
//! own ingest handler. Series values come from the NASA HTTP trace in ../shared/data.

mod common;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::series;
use common::traces::nasa_requests_per_minute;
use http_body_util::BodyExt;
use promcast::config::Config;
use promcast::export::remote_write;
use promcast::proto::prometheus as pb;
use promcast::server::{app, AppState};
use promcast::snapshot::Snapshot;
use promcast::step::Scheduler;
use promcast::store::now_ms;
use promcast::telemetry::Dropped;
use prost::Message;
use tower::ServiceExt;

/// The first `n` NASA KSC requests-per-minute values (July 1995).
fn nasa_per_minute(n: usize) -> Vec<f64> {
    let mut v = nasa_requests_per_minute();
    v.truncate(n);
    v
}

fn snappy(req: &pb::WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

fn write_request(body: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/write")
        .header(header::CONTENT_ENCODING, "snappy")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(Body::from(body))
        .unwrap()
}

fn config(extra: &str) -> Config {
    let yaml = format!(
        r#"
storage: {{ step: 1m, retention: 6h, idle_timeout: 1h }}
forecast:
  - selector: '{{__name__=~".+:.+"}}'
    horizons: [5m, 15m]
    model: auto
{extra}"#
    );
    Config::from_yaml(&yaml, "test", None).unwrap()
}

async fn send(state: &AppState, req: Request<Body>) -> (StatusCode, String, Option<String>) {
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), retry)
}

fn nasa_request(name: &str, job: &str, minutes: usize, end_ms: i64) -> pb::WriteRequest {
    let values = nasa_per_minute(minutes);
    let start = end_ms - (values.len() as i64 - 1) * 60_000;
    let samples: Vec<(i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (start + i as i64 * 60_000, *v))
        .collect();
    pb::WriteRequest {
        metadata: vec![],
        timeseries: vec![series(&[("__name__", name), ("job", job)], &samples)],
    }
}

/// Writes three hours of real traffic into `state` over the router, runs one forecast step
/// of `cfg` at now, records its stats and returns the snapshot it published.
async fn ingest_and_step(state: &AppState, cfg: &Arc<Config>) -> Arc<Snapshot> {
    let now = now_ms();
    let req = nasa_request("job:nasa_requests:rate1m", "nasa", 180, now);
    assert_eq!(
        send(state, write_request(snappy(&req))).await.0,
        StatusCode::NO_CONTENT
    );
    let mut scheduler = Scheduler::new(
        cfg.clone(),
        state.store().clone(),
        state.snapshots.clone(),
        None,
    )
    .unwrap();
    let step = scheduler.step(now);
    step.stats.record(&state.telemetry);
    step.snapshot
}

#[tokio::test]
async fn accepts_remote_write_and_stores_selected_series() {
    let state = AppState::new(&config(""));
    let mut req = nasa_request("job:nasa_requests:rate1m", "nasa", 60, now_ms());
    req.timeseries.push(series(
        &[("__name__", "http_requests_total"), ("job", "x")],
        &[(now_ms(), 1.0)],
    ));
    let (status, body, _) = send(&state, write_request(snappy(&req))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        state.store().series_count(),
        1,
        "only the recording-rule series is kept"
    );
    let t = &state.telemetry;
    assert_eq!(t.samples_accepted.get(), 60);
    assert_eq!(t.dropped_count(Dropped::Unselected), 1);
    // Re-sending the same request (a Prometheus retry) merges; nothing doubles.
    let (status, _, _) = send(&state, write_request(snappy(&req))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(state.store().series_count(), 1);
    // The head bucket's sample re-applies as itself; the 59 older ones merge.
    assert_eq!(t.samples_accepted.get(), 120);
    assert_eq!(t.samples_merged.get(), 59);
}

#[tokio::test]
async fn malformed_bodies_get_400() {
    let state = AppState::new(&config(""));
    // Not snappy at all.
    let (status, body, _) = send(&state, write_request(b"\xff\xff\xff\xff\xff".to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("snappy"), "{body}");
    // Valid snappy around a truncated protobuf.
    let mut raw = nasa_request("a:b", "x", 5, now_ms()).encode_to_vec();
    raw.truncate(raw.len() - 3);
    let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    let (status, text, _) = send(&state, write_request(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("malformed prometheus.WriteRequest"), "{text}");
}

#[tokio::test]
async fn invalid_labels_get_400_and_keep_the_valid_series() {
    let state = AppState::new(&config(""));
    let now = now_ms();
    let req = pb::WriteRequest {
        metadata: vec![],
        timeseries: vec![
            series(&[("__name__", "a:b"), ("bad-name", "x")], &[(now, 1.0)]),
            series(&[("__name__", "a:c"), ("job", "ok")], &[(now, 2.0)]),
        ],
    };
    let (status, body, _) = send(&state, write_request(snappy(&req))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid label name \"bad-name\""), "{body}");
    assert_eq!(
        state.store().series_count(),
        1,
        "the valid series of the request is stored"
    );
    assert_eq!(state.telemetry.dropped_count(Dropped::InvalidLabels), 1);
}

#[tokio::test]
async fn samples_far_in_the_future_get_400() {
    let state = AppState::new(&config(""));
    let req = nasa_request("a:b", "x", 3, now_ms() + 3_600_000);
    let (status, body, _) = send(&state, write_request(snappy(&req))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("max_future"), "{body}");
    assert_eq!(state.telemetry.dropped_count(Dropped::TooFarInFuture), 3);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let state = AppState::new(&config(
        "limits: { max_body_bytes: 4000, max_decompressed_bytes: 20000 }",
    ));
    // Compressed size over the limit (a long real series compresses poorly).
    let big = snappy(&nasa_request("a:b", "x", 2000, now_ms()));
    assert!(big.len() > 4000, "{}", big.len());
    let (status, body, _) = send(&state, write_request(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // Without Content-Length (chunked), the streaming limit still applies.
    let stream = futures_stream(snappy(&nasa_request("a:b", "x", 2000, now_ms())));
    let req = Request::post("/api/v1/write")
        .header(header::CONTENT_ENCODING, "snappy")
        .body(stream)
        .unwrap();
    let (status, _, _) = send(&state, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A small compressed body that inflates past the decompressed limit (a bomb).
    let bomb = pb::WriteRequest {
        metadata: vec![],
        timeseries: vec![series(
            &[("__name__", "a:b"), ("pad", &"x".repeat(30_000))],
            &[(now_ms(), 1.0)],
        )],
    };
    let body = snappy(&bomb);
    assert!(body.len() < 4000, "compresses to {}", body.len());
    let (status, text, _) = send(&state, write_request(body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("decompressed"), "{text}");
}

/// Label floods (too many labels, a huge label value, a huge name) are 400 with the limit
/// named; the valid series of the same request are kept.
#[tokio::test]
async fn label_floods_get_400_and_spare_the_rest() {
    let state = AppState::new(&config(
        "limits: { max_labels_per_series: 16, max_label_value_length: 256, max_label_name_length: 64 }",
    ));
    let t = now_ms();
    let many: Vec<(String, String)> = (0..200)
        .map(|i| (format!("l{i:03}"), "v".to_string()))
        .chain([("__name__".to_string(), "a:flood".to_string())])
        .collect();
    let mut many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    many.sort();
    let long_value = "x".repeat(10_000);
    let long_name = "n".repeat(1_000);
    let cases: [(Vec<(&str, &str)>, &str); 3] = [
        (many, "max_labels_per_series"),
        (
            vec![("__name__", "a:value"), ("pod", &long_value)],
            "max_label_value_length",
        ),
        (
            vec![("__name__", "a:name"), (&long_name, "v")],
            "max_label_name_length",
        ),
    ];
    for (labels, limit) in cases {
        let req = pb::WriteRequest {
            metadata: vec![],
            timeseries: vec![
                series(&labels, &[(t, 1.0)]),
                series(&[("__name__", "a:ok"), ("job", limit)], &[(t, 2.0)]),
            ],
        };
        let (status, body, _) = send(&state, write_request(snappy(&req))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{limit}: {body}");
        assert!(body.contains(limit), "{body}");
    }
    assert_eq!(
        state.store().series_count(),
        3,
        "the three valid series are kept"
    );
}

fn futures_stream(bytes: Vec<u8>) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(100).map(|c| Ok(c.to_vec())).collect();
    Body::from_stream(tokio_stream_iter(chunks))
}

fn tokio_stream_iter(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct Iter(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

#[tokio::test]
async fn wrong_encoding_or_type_gets_415() {
    let state = AppState::new(&config(""));
    let body = snappy(&nasa_request("a:b", "x", 3, now_ms()));
    let req = Request::post("/api/v1/write")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(body.clone()))
        .unwrap();
    assert_eq!(
        send(&state, req).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let req = Request::post("/api/v1/write")
        .body(Body::from(body.clone()))
        .unwrap();
    assert_eq!(
        send(&state, req).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "no encoding header"
    );
    let req = Request::post("/api/v1/write")
        .header(header::CONTENT_ENCODING, "snappy")
        .header(
            header::CONTENT_TYPE,
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        )
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, text, _) = send(&state, req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        text.contains("io.prometheus.write.v2.Request (2.0)"),
        "{text}"
    );
    // A 1.0 body declared as 2.0 reads as an empty 2.0 request (the 2.0 message reserves
    // 1.0's field numbers): 204, and the written-samples header tells the sender 0.
    let req = Request::post("/api/v1/write")
        .header(header::CONTENT_ENCODING, "snappy")
        .header(
            header::CONTENT_TYPE,
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .body(Body::from(body))
        .unwrap();
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        resp.headers()["x-prometheus-remote-write-samples-written"],
        "0"
    );
    assert_eq!(state.store().series_count(), 0);
}

#[tokio::test]
async fn series_limit_gets_503_with_retry_after() {
    let state = AppState::new(&config("limits: { max_series: 1 }"));
    let now = now_ms();
    let req = pb::WriteRequest {
        metadata: vec![],
        timeseries: vec![
            series(&[("__name__", "a:b"), ("job", "1")], &[(now, 1.0)]),
            series(&[("__name__", "a:b"), ("job", "2")], &[(now, 2.0)]),
        ],
    };
    let (status, body, retry) = send(&state, write_request(snappy(&req))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(retry.is_some(), "Retry-After tells Prometheus to come back");
    assert_eq!(state.store().series_count(), 1);
    assert_eq!(state.telemetry.dropped_count(Dropped::SeriesLimit), 1);
}

/// Remote reads beyond `limits.max_concurrent_reads` are refused with 503 naming the limit
/// (before their body is read) and counted; once a read finishes, the next gets through.
#[tokio::test]
async fn remote_reads_beyond_the_limit_get_503() {
    let state = AppState::new(&config("limits: { max_concurrent_reads: 1 }"));
    let read = || {
        let req = pb::ReadRequest {
            queries: vec![pb::Query {
                start_timestamp_ms: 0,
                end_timestamp_ms: 60_000,
                matchers: vec![pb::LabelMatcher {
                    r#type: pb::label_matcher::Type::Eq as i32,
                    name: "__name__".into(),
                    value: "job:x:forecast".into(),
                }],
                hints: None,
            }],
            accepted_response_types: vec![],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        Request::post("/api/v1/read")
            .header(header::CONTENT_ENCODING, "snappy")
            .body(Body::from(body))
            .unwrap()
    };
    // One read being answered holds the only permit.
    let answering = state.read_permits.clone().try_acquire_owned().unwrap();
    let (status, text, _) = send(&state, read()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("limits.max_concurrent_reads = 1"), "{text}");
    drop(answering);
    let (status, text, _) = send(&state, read()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, metrics, _) = send(
        &state,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(
        metrics.contains("promcast_remote_reads_refused_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn own_output_is_dropped() {
    let state = AppState::new(&config(""));
    let now = now_ms();
    let req = pb::WriteRequest {
        metadata: vec![],
        timeseries: vec![series(
            &[
                ("__name__", "a:b:predicted"),
                ("horizon", "5m"),
                ("ml_forecast", "yhat"),
            ],
            &[(now, 1.0)],
        )],
    };
    let (status, _, _) = send(&state, write_request(snappy(&req))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(state.store().series_count(), 0);
    assert_eq!(state.telemetry.dropped_count(Dropped::OwnOutput), 1);
}

#[tokio::test]
async fn health_readiness_metrics_and_forecasts_api() {
    let cfg = Arc::new(config(""));
    let state = AppState::new(&cfg);
    assert_eq!(
        send(
            &state,
            Request::get("/-/healthy").body(Body::empty()).unwrap()
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        send(
            &state,
            Request::get("/-/ready").body(Body::empty()).unwrap()
        )
        .await
        .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    state
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        send(
            &state,
            Request::get("/-/ready").body(Body::empty()).unwrap()
        )
        .await
        .0,
        StatusCode::OK
    );

    // Three hours of real traffic, then one forecast step.
    let snap = ingest_and_step(&state, &cfg).await;
    assert_eq!(snap.series.len(), 1);
    let f = &snap.series[0];
    assert_eq!(
        f.state,
        promcast::snapshot::SeriesState::Ready,
        "{:?}",
        f.state
    );
    assert_eq!(f.points.len(), 2);
    for p in &f.points {
        assert!(
            p.lower <= p.yhat && p.yhat <= p.upper && p.is_finite(),
            "{p:?}"
        );
    }

    let (status, text, _) = send(
        &state,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for kind in ["yhat", "yhat_lower", "yhat_upper"] {
        for h in ["5m", "15m"] {
            let line = format!("job:nasa_requests:rate1m:predicted{{horizon=\"{h}\",job=\"nasa\",ml_forecast=\"{kind}\"}} ");
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
    }
    assert!(
        text.contains("promcast_samples_accepted_total 180"),
        "{text}"
    );
    assert!(text.contains("promcast_forecast_series{state=\"ready\"} 1"));
    // 180 points: the series' own anomaly forest is trained and scores the newest point.
    let score = text
        .lines()
        .find_map(|l| l.strip_prefix("job:nasa_requests:rate1m:anomaly_score{job=\"nasa\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no anomaly score in\n{text}"));
    assert!((0.0..=1.0).contains(&score), "{score}");
    let direction = text
        .lines()
        .find_map(|l| l.strip_prefix("job:nasa_requests:rate1m:anomalous{job=\"nasa\"} "))
        .unwrap_or_else(|| panic!("no anomalous series in\n{text}"));
    assert!(["-1", "0", "1"].contains(&direction), "{direction}");
    assert!(
        text.contains("promcast_anomaly_forests{kind=\"own\"} 1"),
        "{text}"
    );

    let (status, text, _) = send(
        &state,
        Request::get("/api/v1/forecasts?selector=%7Bjob%3D%22nasa%22%7D")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"]["series"][0]["labels"]["job"], "nasa");
    // serde_json's default float parsing may differ from Rust's in the last ulp.
    let api_score = v["data"]["series"][0]["anomaly_score"].as_f64();
    assert!(
        api_score.is_some_and(|a| (a - score).abs() <= 1e-12),
        "{api_score:?} vs {score}"
    );
    assert_eq!(
        v["data"]["series"][0]["forecasts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (status, _, _) = send(
        &state,
        Request::get("/api/v1/forecasts?selector=sum(x)")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// promcast A forecasts and remote-writes to promcast B over a real socket; B recognises
/// the samples as promcast output and drops them instead of forecasting a forecast.
#[tokio::test]
async fn remote_write_round_trip_into_our_own_ingest() {
    let receiver = AppState::new(&config(""));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app(receiver.clone())).into_future());

    let cfg = Arc::new(config(&format!(
        "remote_write:\n  - url: http://{addr}/api/v1/write\n    max_samples_per_send: 4\n"
    )));
    let sender = AppState::new(&cfg);
    let now = now_ms();
    let req = nasa_request("job:nasa_requests:rate1m", "nasa", 160, now);
    assert_eq!(
        send(&sender, write_request(snappy(&req))).await.0,
        StatusCode::NO_CONTENT
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (queue, task) = remote_write::spawn(
        cfg.remote_write[0].clone(),
        0,
        sender.telemetry.clone(),
        stop_rx,
        Duration::from_secs(5),
    );
    sender.snapshots.subscribe(Arc::new(queue));
    let mut scheduler = Scheduler::new(
        cfg.clone(),
        sender.store().clone(),
        sender.snapshots.clone(),
        None,
    )
    .unwrap();
    scheduler.step(now);
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();

    let sent = sender.telemetry.remote_write[0].1.samples_sent.get();
    // 160 points are enough for the default anomaly detector's first stage (150 points of
    // the series' own history; before it a young series is scored by the entry's pooled
    // forest, which needs a step of the entry's rows first): score, likelihood and direction
    // too.
    assert_eq!(
        sent,
        2 * 3 + 3,
        "two horizons x three values and three anomaly series, in batches of four"
    );
    assert_eq!(receiver.telemetry.dropped_count(Dropped::OwnOutput), sent);
    assert_eq!(receiver.store().series_count(), 0);
    server.abort();
}

/// Reads a GJSON path of the plain dotted form KEDA's docs use (`a.b.0.c`).
fn gjson<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.')
        .try_fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        })
}

/// KEDA's `metrics-api` scaler, as deploy/components/keda/metrics-api/scaledobject.yaml sets it up,
/// finds the desired replicas at its `valueLocation`; a target without a recommendation is
/// an HTTP error, never a 0.
#[tokio::test]
async fn keda_metrics_api_reads_the_recommendation() {
    let cfg = Arc::new(config(
        r#"
scaling:
  - { name: web, series: 'job:nasa_requests:rate1m{job="nasa"}', capacity_per_replica: 10, max_replicas: 100 }
  - { name: idle, series: 'job:nothing:rate1m', capacity_per_replica: 10, max_replicas: 100 }
  - { name: watched, series: 'job:nasa_requests:rate1m{job="nasa"}', capacity_per_replica: 10, max_replicas: 100, mode: observe }
"#,
    ));
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/components/keda/metrics-api/scaledobject.yaml"),
    )
    .unwrap();
    let so: serde_yaml_ng::Value = serde_yaml_ng::from_str(&manifest).unwrap();
    let meta = &so["spec"]["triggers"][0]["metadata"];
    assert_eq!(
        so["spec"]["triggers"][0]["type"].as_str(),
        Some("metrics-api")
    );
    let url = meta["url"].as_str().unwrap();
    let path = &url[url.find("/api/").unwrap()..];
    let location = meta["valueLocation"].as_str().unwrap();
    assert_eq!(meta["targetValue"].as_str(), Some("1"));

    let state = AppState::new(&cfg);
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    // No step yet: an error, not a number.
    let (code, body, _) = send(&state, get(path)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("no forecast step"), "{body}");

    let snap = ingest_and_step(&state, &cfg).await;
    let want = snap.recommendation("web").unwrap().desired.unwrap();
    assert!(want >= 1);
    // The decision is counted under the rule that made it.
    let reason = snap.recommendation("web").unwrap().reason.unwrap().as_str();
    let (_, metrics, _) = send(&state, get("/metrics")).await;
    let line = format!("promcast_scaling_decisions_total{{target=\"web\",reason=\"{reason}\"}} 1");
    assert!(metrics.contains(&line), "{line} not in /metrics");

    let (code, body, _) = send(&state, get(path)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let got = gjson(&v, location).and_then(|x| x.as_u64());
    assert_eq!(got, Some(want as u64), "{location} in {body}");
    assert!(v["data"]["decided_by"].is_string(), "{body}");

    let (code, body, _) = send(&state, get("/api/v1/scaling/idle")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("no series matches"), "{body}");
    let (code, body, _) = send(&state, get("/api/v1/scaling/nope")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("web, idle, watched"), "{body}");
    let (code, _, _) = send(&state, get("/api/v1/scaling/watched")).await;
    assert_eq!(code, StatusCode::CONFLICT);
}

/// A gauge's value from `/metrics`.
async fn gauge(state: &AppState, name: &str) -> f64 {
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let (_, body, _) = send(state, req).await;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// With more series than fit `storage.forecast_history_memory` at `forecast_history`, the
/// kept span shortens, and the agent says so: `/metrics` and `/api/v1/forecast_history`.
#[tokio::test]
async fn the_forecast_history_keeps_within_its_memory_and_says_how_far_back() {
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let mut cfg = config("    anomaly: { enabled: true }\n");
    let full = AppState::new(&cfg);
    full.snapshots.subscribe(full.history.clone());
    ingest_and_step(&full, &Arc::new(cfg.clone())).await;
    // one series fits the default 2GiB: the configured 6h
    assert_eq!(
        gauge(&full, "promcast_forecast_history_span_seconds").await,
        21600.0
    );

    // two horizons and the score: 18 bytes a step; 100 bytes hold 5 steps
    cfg.forecast_history_memory = 100;
    let cfg = Arc::new(cfg);
    let state = AppState::new(&cfg);
    state.snapshots.subscribe(state.history.clone());
    ingest_and_step(&state, &cfg).await;
    assert_eq!(
        gauge(&state, "promcast_forecast_history_span_seconds").await,
        300.0
    );
    let (code, body, _) = send(&state, get("/api/v1/forecast_history")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["span_seconds"].as_f64(), Some(300.0), "{v}");
    // the entry shrinks to the span when it is next written
    ingest_and_step(&state, &cfg).await;
    let held = gauge(&state, "promcast_forecast_history_bytes").await;
    assert!(held > 0.0 && held <= 100.0, "{held} bytes held");
}

/// Whether a JSON number is `want` as stored in `f32` (serde_json's parser may be an ulp
/// off the nearest `f64`, so compare to f32 precision).
fn f32_eq(got: &serde_json::Value, want: f64) -> bool {
    got.as_f64()
        .is_some_and(|g| (g - want).abs() <= 1e-6 * want.abs().max(1e-12))
}

/// The web page and its assets are served from the binary, and the JSON it draws from
/// (`/api/v1/forecast_history`, `/api/v1/scaling?history=1`) carries the step's forecasts at
/// their target times, the anomaly score at its point and the recommendation's history.
#[tokio::test]
async fn web_page_and_the_json_it_draws() {
    let cfg = Arc::new(config(
        r#"    anomaly: { enabled: true }
scaling:
  - { name: web, series: 'job:nasa_requests:rate1m{job="nasa"}', capacity_per_replica: 10, max_replicas: 100 }
"#,
    ));
    let state = AppState::new(&cfg);
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let resp = app(state.clone()).oneshot(get("/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    for (file, _, bytes) in promcast::export::web::ASSETS {
        let resp = app(state.clone())
            .oneshot(get(&format!("/static/{file}")))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{file}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], bytes, "{file}");
    }
    let (code, _, _) = send(&state, get("/static/Cargo.toml")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    state.snapshots.subscribe(state.history.clone());
    let snap = ingest_and_step(&state, &cfg).await;
    let s = &snap.series[0];
    let anomaly = s.anomaly.expect("scored at the first step");
    let (code, body, _) = send(
        &state,
        get("/api/v1/forecast_history?selector=%7Bjob%3D%22nasa%22%7D"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let series = &v["data"]["series"][0];
    assert_eq!(series["labels"]["job"], "nasa");
    // Each horizon's forecast sits at its target time (stored as f32).
    for (h, (label, ms)) in snap.horizons[0].iter().enumerate() {
        let f = &series["forecasts"][h];
        assert_eq!(f["horizon"].as_str(), Some(label.as_str()));
        let p = &f["points"][0];
        let target = (s.base * snap.step_ms + ms) as f64 / 1e3;
        assert_eq!(p[0].as_f64(), Some(target), "{f}");
        assert!(
            f32_eq(&p[1], s.points[h].yhat),
            "{f} vs {}",
            s.points[h].yhat
        );
    }
    let a = &series["anomalies"][0];
    assert_eq!(a[0].as_f64(), Some((s.base * snap.step_ms) as f64 / 1e3));
    // Past scores are kept to 1/16383 (docs: the history's stated precision).
    let kept = a[1].as_f64().unwrap();
    assert!(
        (kept - anomaly.score).abs() <= 0.5 / 16383.0 + 1e-7,
        "{a} vs {}",
        anomaly.score
    );
    assert_eq!(a[2].as_i64(), Some(anomaly.direction as i64));
    // A bad selector is the client's mistake.
    let (code, _, _) = send(
        &state,
        get("/api/v1/forecast_history?selector=rate(x%5B5m%5D)"),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    let (_, body, _) = send(&state, get("/api/v1/scaling?history=1")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let t = &v["data"]["targets"][0];
    let r = snap.recommendation("web").unwrap();
    let observed = r.observed.unwrap();
    let for_observed = ((observed / 10.0).ceil() as u64).clamp(1, 100);
    assert_eq!(t["observed_replicas"].as_u64(), Some(for_observed), "{t}");
    assert_eq!(
        t["history"],
        serde_json::json!([[
            snap.generated_ms as f64 / 1e3,
            r.desired.unwrap() as f64,
            for_observed
        ]])
    );
    let (_, body, _) = send(&state, get("/api/v1/scaling")).await;
    assert!(!body.contains("history"), "{body}");
}
