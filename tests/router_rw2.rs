//! Remote write 2.0 and counters through the router (`app(state)`, no socket): the same real
//! traffic sent as 1.0 and as 2.0 bodies (built from the 2.0 proto with prost) fills identical
//! rings; every malformed 2.0 case gets its status code and spares the valid series of the
//! same request; counters are stored as rates whether their type comes from 2.0 metadata,
//! 1.0 metadata or their name, and their outputs are named `N:rate:...`. Values are the NASA
//! HTTP trace from ../shared/data.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::series;
use common::traces::nasa_requests_per_minute;
use http_body_util::BodyExt;
use promcast::config::Config;
use promcast::export::{ML_FORECAST, RATE_PREDICTED_SUFFIX};
use promcast::proto::prometheus as pb;
use promcast::proto::write_v2 as v2;
use promcast::server::{app, AppState};
use promcast::step::Scheduler;
use promcast::store::{now_ms, LabelSet};
use promcast::telemetry::Dropped;
use prost::Message;
use tower::ServiceExt;

const RW2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn config() -> Config {
    Config::from_yaml(
        r#"
storage: { step: 1m, retention: 6h, idle_timeout: 1h }
forecast:
  - selector: '{__name__=~".+:.+|.+_total|served"}'
    horizons: [5m, 15m]
    model: naive
"#,
        "test",
        None,
    )
    .unwrap()
}

fn post(content_type: &str, body: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/write")
        .header(header::CONTENT_ENCODING, "snappy")
        .header(header::CONTENT_TYPE, content_type)
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .body(Body::from(
            snap::raw::Encoder::new().compress_vec(&body).unwrap(),
        ))
        .unwrap()
}

struct Answer {
    status: StatusCode,
    body: String,
    samples_written: Option<u64>,
    histograms_written: Option<u64>,
}

async fn send(state: &AppState, req: Request<Body>) -> Answer {
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let get = |h: &str| {
        resp.headers()
            .get(h)
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap())
    };
    let samples_written = get("X-Prometheus-Remote-Write-Samples-Written");
    let histograms_written = get("X-Prometheus-Remote-Write-Histograms-Written");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        samples_written,
        histograms_written,
    }
}

/// One series of a 2.0 request before interning.
struct Series2<'a> {
    labels: Vec<(&'a str, &'a str)>,
    samples: Vec<(i64, f64)>,
    metric_type: v2::metadata::MetricType,
    created_ms: i64,
}

/// A 2.0 request as a Prometheus 3 sender builds it: one symbol table, `""` first.
fn v2_request(series: &[Series2<'_>]) -> v2::Request {
    let mut symbols = vec![String::new()];
    let mut intern = |s: &str| -> u32 {
        match symbols.iter().position(|x| x == s) {
            Some(i) => i as u32,
            None => {
                symbols.push(s.to_owned());
                (symbols.len() - 1) as u32
            }
        }
    };
    let timeseries = series
        .iter()
        .map(|s| v2::TimeSeries {
            labels_refs: s
                .labels
                .iter()
                .flat_map(|(n, v)| [intern(n), intern(v)])
                .collect(),
            samples: s
                .samples
                .iter()
                .map(|&(timestamp, value)| v2::Sample { value, timestamp })
                .collect(),
            metadata: Some(v2::Metadata {
                r#type: s.metric_type as i32,
                help_ref: intern("help text"),
                unit_ref: 0,
            }),
            created_timestamp: s.created_ms,
            ..Default::default()
        })
        .collect();
    v2::Request {
        symbols,
        timeseries,
    }
}

/// Three hours of real traffic, minute by minute, ending at `end_ms`: the NASA requests per
/// minute (a gauge) starting at `offset`, and the same requests as a counter (their running
/// total, scraped every 15 s with linear interpolation inside the minute) that restarts
/// twice.
/// `(timestamp ms, value)` samples.
type Samples = Vec<(i64, f64)>;

fn traffic(offset: usize, end_ms: i64) -> (Samples, Samples) {
    let nasa = nasa_requests_per_minute();
    let minutes = &nasa[offset..offset + 180];
    let start = end_ms - 179 * 60_000;
    let gauge: Vec<(i64, f64)> = (minutes.iter().enumerate())
        .map(|(i, v)| (start + i as i64 * 60_000, *v))
        .collect();
    let mut counter = Vec::new();
    let mut total = 0.0;
    for (i, v) in minutes.iter().enumerate() {
        for q in 0..4 {
            if (i, q) == (60, 2) || (i, q) == (130, 0) {
                total = 0.0; // process restarts
            }
            total += v / 4.0;
            counter.push((start + i as i64 * 60_000 + q * 15_000, total));
        }
    }
    (gauge, counter)
}

fn ring(state: &AppState, labels: &[(&str, &str)]) -> Option<(bool, Vec<u32>)> {
    state
        .store()
        .with_series(&LabelSet::from_pairs(labels.iter().copied()), |s| {
            let mut v = Vec::new();
            s.ring.copy_last(s.ring.history_len(), &mut v);
            (s.is_rate(), v.iter().map(|x| x.to_bits()).collect())
        })
}

#[tokio::test]
async fn the_same_traffic_as_1_0_and_2_0_fills_identical_rings() {
    let (one, two) = (AppState::new(&config()), AppState::new(&config()));
    let end = now_ms() / 60_000 * 60_000;
    let jobs = ["a", "b", "c"];
    let mut rw1 = pb::WriteRequest::default();
    let mut rw2 = Vec::new();
    for (k, job) in jobs.iter().enumerate() {
        let (gauge, counter) = traffic(k * 500, end);
        rw1.timeseries.push(series(
            &[("__name__", "job:requests:rate1m"), ("job", job)],
            &gauge,
        ));
        rw1.timeseries.push(series(
            &[("__name__", "http_requests_total"), ("job", job)],
            &counter,
        ));
        rw2.push(Series2 {
            labels: vec![("__name__", "job:requests:rate1m"), ("job", job)],
            samples: gauge,
            metric_type: v2::metadata::MetricType::Gauge,
            created_ms: 0,
        });
        rw2.push(Series2 {
            labels: vec![("__name__", "http_requests_total"), ("job", job)],
            samples: counter,
            metric_type: v2::metadata::MetricType::Counter,
            created_ms: 0,
        });
    }
    let sent: u64 = rw2.iter().map(|s| s.samples.len() as u64).sum();
    let a = send(&one, post("application/x-protobuf", rw1.encode_to_vec())).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(a.samples_written, None, "1.0 answers carry no 2.0 headers");
    let b = send(&two, post(RW2, v2_request(&rw2).encode_to_vec())).await;
    assert_eq!(b.status, StatusCode::NO_CONTENT, "{}", b.body);
    assert_eq!(b.samples_written, Some(sent));
    assert_eq!(b.histograms_written, Some(0));
    for job in jobs {
        for name in ["job:requests:rate1m", "http_requests_total"] {
            let labels = [("__name__", name), ("job", job)];
            let x = ring(&one, &labels).expect("stored from 1.0");
            let y = ring(&two, &labels).expect("stored from 2.0");
            assert_eq!(x, y, "{name}{{job={job}}}");
            assert_eq!(x.0, name.ends_with("_total"), "counters hold rates");
            assert!(x.1.len() >= 179, "{}", x.1.len());
        }
    }
    assert_eq!(two.telemetry.samples_received.get(), sent);
    assert_eq!(one.telemetry.samples_received.get(), sent);
}

/// A Prometheus HA pair (`ha:`): both replicas send the same traffic, one over 1.0 and one
/// over 2.0, each with its own replica label. The first one heard from is elected: its
/// series are stored once, without the replica label, exactly as one Prometheus would fill
/// them; the other's are dropped with a 2xx (nothing to retry) and counted; a second cluster
/// elects its own replica; a series without the replica label passes untouched.
#[tokio::test]
async fn an_ha_pair_fills_one_series_per_input_series() {
    let ha = Config::from_yaml(
        r#"
storage: { step: 1m, retention: 6h, idle_timeout: 1h }
forecast:
  - selector: '{__name__=~".+:.+|.+_total|served"}'
    horizons: [5m, 15m]
    model: naive
ha: { cluster_label: cluster, replica_label: __replica__, failover_timeout: 30s }
"#,
        "test",
        None,
    )
    .unwrap();
    let (state, single) = (AppState::new(&ha), AppState::new(&config()));
    let end = now_ms() / 60_000 * 60_000;
    let (gauge, counter) = traffic(0, end);
    let rw1 = |cluster: &str, replica: &str| pb::WriteRequest {
        metadata: vec![],
        timeseries: vec![
            series(
                &[
                    ("__name__", "job:requests:rate1m"),
                    ("__replica__", replica),
                    ("cluster", cluster),
                    ("job", "web"),
                ],
                &gauge,
            ),
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("__replica__", replica),
                    ("cluster", cluster),
                    ("job", "web"),
                ],
                &counter,
            ),
        ],
    };
    let rw2 = v2_request(&[Series2 {
        labels: vec![
            ("__name__", "job:requests:rate1m"),
            ("__replica__", "r2"),
            ("cluster", "a"),
            ("job", "web"),
        ],
        samples: gauge.clone(),
        metric_type: v2::metadata::MetricType::Gauge,
        created_ms: 0,
    }]);
    let first = send(
        &state,
        post("application/x-protobuf", rw1("a", "r1").encode_to_vec()),
    )
    .await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{}", first.body);
    let second = send(&state, post(RW2, rw2.encode_to_vec())).await;
    assert_eq!(second.status, StatusCode::NO_CONTENT, "{}", second.body);
    assert_eq!(
        second.samples_written,
        Some(gauge.len() as u64),
        "deliberately dropped samples count as written: nothing for the sender to retry"
    );
    assert_eq!(
        state.telemetry.dropped_count(Dropped::HaDuplicate),
        gauge.len() as u64
    );
    assert_eq!(state.store().series_count(), 2, "one per input series");
    // The same rings as one Prometheus without a replica label fills.
    let plain = pb::WriteRequest {
        metadata: vec![],
        timeseries: rw1("a", "r1")
            .timeseries
            .into_iter()
            .map(|mut s| {
                s.labels.retain(|l| l.name != "__replica__");
                s
            })
            .collect(),
    };
    let a = send(
        &single,
        post("application/x-protobuf", plain.encode_to_vec()),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    for name in ["job:requests:rate1m", "http_requests_total"] {
        let labels = [("__name__", name), ("cluster", "a"), ("job", "web")];
        let got = ring(&state, &labels).expect("stored without the replica label");
        assert_eq!(Some(got), ring(&single, &labels), "{name}");
        let with_replica = [
            ("__name__", name),
            ("__replica__", "r1"),
            ("cluster", "a"),
            ("job", "web"),
        ];
        assert!(ring(&state, &with_replica).is_none());
    }
    // Cluster b elects r2; its series are its own.
    let b = send(
        &state,
        post("application/x-protobuf", rw1("b", "r2").encode_to_vec()),
    )
    .await;
    assert_eq!(b.status, StatusCode::NO_CONTENT, "{}", b.body);
    assert_eq!(state.store().series_count(), 4);
    // No replica label: untouched.
    let lone = pb::WriteRequest {
        metadata: vec![],
        timeseries: vec![series(&[("__name__", "served"), ("cluster", "a")], &gauge)],
    };
    let c = send(&state, post("application/x-protobuf", lone.encode_to_vec())).await;
    assert_eq!(c.status, StatusCode::NO_CONTENT, "{}", c.body);
    assert!(ring(&state, &[("__name__", "served"), ("cluster", "a")]).is_some());
    let mut metrics = String::new();
    state.telemetry.render(&mut metrics);
    for line in [
        "promcast_ha_elected_replica{cluster=\"a\",replica=\"r1\"} 1",
        "promcast_ha_elected_replica{cluster=\"b\",replica=\"r2\"} 1",
        "promcast_ha_clusters 2",
        "promcast_samples_dropped_total{reason=\"ha_duplicate\"} 180",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

/// Each malformed 2.0 series gets a 400 naming it, and the valid series of the same request
/// are stored; an unknown proto gets 415.
#[tokio::test]
async fn malformed_2_0_series_get_400_and_the_valid_ones_are_kept() {
    let end = now_ms() / 60_000 * 60_000;
    let (gauge, _) = traffic(0, end);
    let good = || Series2 {
        labels: vec![("__name__", "job:requests:rate1m"), ("job", "good")],
        samples: gauge.clone(),
        metric_type: v2::metadata::MetricType::Gauge,
        created_ms: 0,
    };
    type Edit = Box<dyn Fn(&mut v2::Request)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "symbol reference 999 is past",
            Box::new(|r| r.timeseries[0].labels_refs[1] = 999),
        ),
        (
            "odd number of label references (3)",
            Box::new(|r| {
                r.timeseries[0].labels_refs.pop();
            }),
        ),
        (
            "empty label name",
            Box::new(|r| r.timeseries[0].labels_refs[2] = 0),
        ),
        (
            "samples out of order",
            Box::new(|r| r.timeseries[0].samples.swap(3, 4)),
        ),
    ];
    for (want, edit) in cases {
        let state = AppState::new(&config());
        let mut bad = good();
        bad.labels[1].1 = "bad";
        let mut req = v2_request(&[bad, good()]);
        edit(&mut req);
        let a = send(&state, post(RW2, req.encode_to_vec())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{want}: {}", a.body);
        assert!(a.body.contains("timeseries[0]"), "{}", a.body);
        assert!(a.body.contains(want), "{want}: {}", a.body);
        assert_eq!(a.samples_written, Some(gauge.len() as u64), "{want}");
        let labels = [("__name__", "job:requests:rate1m"), ("job", "good")];
        assert_eq!(
            ring(&state, &labels).map(|r| r.1.len()),
            Some(180),
            "{want}: the valid series is stored"
        );
        assert_eq!(state.store().series_count(), 1, "{want}");
        assert_eq!(
            state.telemetry.dropped_count(Dropped::Malformed),
            gauge.len() as u64,
            "{want}"
        );
    }
    // The first symbol must be "": the whole request is malformed.
    let state = AppState::new(&config());
    let mut req = v2_request(&[good()]);
    req.symbols[0] = "x".into();
    let a = send(&state, post(RW2, req.encode_to_vec())).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.body.contains("first symbol"), "{}", a.body);
    // An unknown proto: 415, whatever the body.
    let body = v2_request(&[good()]).encode_to_vec();
    let a = send(
        &state,
        post(
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            body,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.body);
    assert_eq!(state.store().series_count(), 0);
}

/// Native histograms are accepted, counted as dropped, reported as not written; the float
/// series beside them are stored.
#[tokio::test]
async fn native_histograms_are_dropped_not_refused() {
    let state = AppState::new(&config());
    let end = now_ms() / 60_000 * 60_000;
    let (gauge, _) = traffic(0, end);
    let mut req = v2_request(&[
        Series2 {
            labels: vec![("__name__", "job:requests:rate1m"), ("job", "x")],
            samples: gauge.clone(),
            metric_type: v2::metadata::MetricType::Gauge,
            created_ms: 0,
        },
        Series2 {
            labels: vec![("__name__", "rpc_latency_seconds"), ("job", "x")],
            samples: vec![],
            metric_type: v2::metadata::MetricType::Histogram,
            created_ms: 0,
        },
    ]);
    for (i, (t, _)) in gauge.iter().enumerate().take(3) {
        req.timeseries[1].histograms.push(v2::Histogram {
            count: Some(v2::histogram::Count::CountInt(i as u64 + 1)),
            sum: 0.25,
            schema: 3,
            zero_threshold: 1e-128,
            timestamp: *t,
        });
    }
    let a = send(&state, post(RW2, req.encode_to_vec())).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(a.samples_written, Some(gauge.len() as u64));
    assert_eq!(a.histograms_written, Some(0));
    assert_eq!(state.telemetry.dropped_count(Dropped::Histogram), 3);
    assert_eq!(state.store().series_count(), 1);
}

/// A counter without a telling name (`served`): a gauge until Prometheus' 1.0 metadata says
/// counter, then stored as rates (the ring starts over) and exported as `served:rate:...`.
/// With 2.0, its own metadata decides at once, and a created timestamp marks a reset the
/// values hide.
#[tokio::test]
async fn counters_become_rates_from_metadata_and_are_named_so() {
    let state = AppState::new(&config());
    let end = now_ms() / 60_000 * 60_000;
    let (_, counter) = traffic(0, end);
    let labels = [("__name__", "served"), ("job", "web")];
    let (first, rest) = counter.split_at(counter.len() / 2);
    let req = pb::WriteRequest {
        timeseries: vec![series(&labels, first)],
        metadata: vec![],
    };
    let a = send(&state, post("application/x-protobuf", req.encode_to_vec())).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert!(!ring(&state, &labels).unwrap().0, "a gauge by its name");
    // Prometheus' metadata request (metadata_config), in a request of its own.
    let meta = pb::WriteRequest {
        timeseries: vec![],
        metadata: vec![pb::MetricMetadata {
            r#type: pb::metric_metadata::MetricType::Counter as i32,
            metric_family_name: "served".into(),
            help: "Requests served.".into(),
            unit: String::new(),
        }],
    };
    let a = send(&state, post("application/x-protobuf", meta.encode_to_vec())).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(state.telemetry.metadata_received.get(), 1);
    assert_eq!(state.telemetry.series_type_changes.get(), 1);
    let (is_rate, values) = ring(&state, &labels).unwrap();
    assert!(
        is_rate && values.is_empty(),
        "the ring starts over as rates"
    );
    let req = pb::WriteRequest {
        timeseries: vec![series(&labels, rest)],
        metadata: vec![],
    };
    let a = send(&state, post("application/x-protobuf", req.encode_to_vec())).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let (_, values) = ring(&state, &labels).unwrap();
    let rates: Vec<f32> = values.iter().map(|b| f32::from_bits(*b)).collect();
    // Every minute's rate is that minute's NASA requests / 60 (the counter's increase
    // between minute ends), resets included.
    let nasa = nasa_requests_per_minute();
    let minutes = rest.len() / 4;
    assert!(rates.len() >= minutes - 1, "{}", rates.len());
    for (k, r) in rates.iter().rev().take(minutes - 1).enumerate() {
        let want = nasa[179 - k] / 60.0;
        assert!(
            (*r as f64 - want).abs() < 1e-4 * want.max(1.0),
            "minute {}: {r} vs {want}",
            179 - k
        );
    }

    // The outputs say rate.
    let cfg = Arc::new(config());
    let mut scheduler =
        Scheduler::new(cfg, state.store().clone(), state.snapshots.clone(), None).unwrap();
    let snapshot = scheduler.step(end + 60_000).snapshot;
    let s = snapshot
        .series
        .iter()
        .find(|s| s.labels.metric_name() == "served")
        .unwrap();
    assert!(s.rate && s.is_ready(), "{:?}", s.state);
    let resp = app(state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let name = format!("served{RATE_PREDICTED_SUFFIX}");
    assert!(text.contains(&format!("# TYPE {name} gauge")), "{text}");
    for kind in ML_FORECAST {
        assert!(
            text.contains(&format!(
                "{name}{{horizon=\"5m\",job=\"web\",ml_forecast=\"{kind}\"}}"
            )),
            "{text}"
        );
    }
    assert!(!text.contains("served:predicted"), "{text}");

    // 2.0: the series' own metadata says counter; a created timestamp newer than the last
    // sample is a reset even though the value went up (100 -> 130 after a restart at +5 s).
    let two = AppState::new(&config());
    let labels = vec![("__name__", "served"), ("job", "api")];
    let t0 = end - 120_000;
    for (samples, created) in [
        (vec![(t0, 100.0)], t0 - 600_000),
        (vec![(t0 + 60_000, 130.0)], t0 + 5_000),
    ] {
        let req = v2_request(&[Series2 {
            labels: labels.clone(),
            samples,
            metric_type: v2::metadata::MetricType::Counter,
            created_ms: created,
        }]);
        let a = send(&two, post(RW2, req.encode_to_vec())).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    }
    let (is_rate, values) = ring(&two, &labels).unwrap();
    assert!(is_rate);
    assert_eq!(
        values.last().map(|b| f32::from_bits(*b)),
        Some(130.0 / 60.0)
    );
}
