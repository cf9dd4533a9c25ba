use super::*;

#[test]
fn renders_counters_with_fixed_labels() {
    let t = Telemetry::new(["http://x/api/v1/write".to_string()]);
    t.dropped(Dropped::TooOld, 3);
    t.write_request(415);
    t.forecast_loop.step_duration.observe(0.02);
    let mut out = String::new();
    t.render(&mut out);
    assert!(out.contains("promcast_samples_dropped_total{reason=\"too_old\"} 3"));
    assert!(out.contains("promcast_write_requests_total{code=\"415\"} 1"));
    assert!(out.contains("promcast_forecast_step_duration_seconds_bucket{le=\"0.05\"} 1"));
    assert!(out.contains("promcast_forecast_step_duration_seconds_bucket{le=\"0.01\"} 0"));
    assert!(out.contains("promcast_remote_write_queue_depth{url=\"http://x/api/v1/write\"} 0"));
    let info = out
        .lines()
        .find(|l| l.starts_with("promcast_build_info{"))
        .expect("promcast_build_info");
    assert!(info.ends_with("} 1"), "{info}");
    assert!(info.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))));
    assert!(
        info.contains("revision=\"") && info.contains("rustc=\"rustc "),
        "{info}"
    );
    let features = if cfg!(feature = "gpu") { "gpu," } else { "" };
    let features = format!(
        "{features}{}",
        if cfg!(feature = "offline") {
            "offline"
        } else {
            ""
        }
    );
    assert!(
        info.contains(&format!("features=\"{}\"", features.trim_end_matches(','))),
        "{info}"
    );
}

#[test]
fn escapes() {
    assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}
