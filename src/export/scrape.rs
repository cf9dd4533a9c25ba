//! `GET /metrics`: forecast gauges from the latest snapshot, then promcast's own metrics.
//!
//! Scrape promcast with `honor_labels: true`: forecasts keep the input's `job` and
//! `instance` labels, which Prometheus would otherwise rename to `exported_*`.

use std::fmt::Write as _;

use super::samples::{Family, SnapshotSamples, DESIRED_REPLICAS, SCALING_LOAD};
use crate::snapshot::Snapshot;
use crate::telemetry::{escape_label_value, Telemetry};

/// Encodes the snapshot's forecasts and anomaly verdicts in the text exposition format.
pub fn render_forecasts(snapshot: &Snapshot, out: &mut String) {
    // Samples of one metric name must be contiguous, after its TYPE line: group by name.
    let mut by_name: Vec<(&str, bool, usize)> = snapshot
        .exported()
        .enumerate()
        .map(|(i, s)| (s.labels.metric_name(), s.rate, i))
        .collect();
    by_name.sort_unstable();
    let ready: Vec<_> = snapshot.exported().collect();
    let mut buf = Vec::new();
    for family in Family::ALL {
        let mut last_name = None;
        for &(name, rate, i) in &by_name {
            let s = ready[i];
            if !snapshot.has_samples(s, family) {
                continue;
            }
            if last_name != Some((name, rate)) {
                let _ = writeln!(out, "# TYPE {name}{} gauge", family.suffix_for(rate));
                last_name = Some((name, rate));
            }
            snapshot.series_samples(s, family, &mut buf, |labels, value| {
                write_sample(out, labels, value)
            });
        }
    }
    // Replica recommendations: one name at a time, so each name's samples are contiguous.
    for (name, help) in [
        (
            DESIRED_REPLICAS,
            "Replicas promcast recommends per scaling target (absent when it cannot tell).",
        ),
        (
            SCALING_LOAD,
            "The load behind the recommendation: used = max(observed, predicted).",
        ),
    ] {
        let mut first = true;
        snapshot.scaling_samples(&mut buf, |labels, value| {
            if labels[0].1 != name {
                return;
            }
            if first {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                first = false;
            }
            write_sample(out, labels, value);
        });
    }
}

fn write_sample(out: &mut String, labels: &[(String, String)], value: f64) {
    out.push_str(
        labels
            .iter()
            .find(|(n, _)| n == "__name__")
            .map_or("", |(_, v)| v),
    );
    out.push('{');
    let mut first = true;
    for (n, v) in labels {
        if n == "__name__" {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        out.push_str(&escape_label_value(v));
        out.push('"');
    }
    out.push_str("} ");
    let _ = write!(out, "{value}");
    out.push('\n');
}

/// The whole `/metrics` body.
pub fn render(snapshot: &Snapshot, telemetry: &Telemetry) -> String {
    let mut out = String::with_capacity(4096 + snapshot.series.len() * 600);
    render_forecasts(snapshot, &mut out);
    telemetry.render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SeriesForecast;
    use crate::snapshot::{ModelKind, Point, SeriesState};
    use crate::store::LabelSet;
    use std::sync::Arc;

    #[test]
    fn renders_ready_series_only() {
        let mk = |name: &str, state| SeriesForecast {
            labels: Arc::new(LabelSet::from_pairs([("__name__", name), ("job", "w\"eb")])),
            id: crate::store::SeriesId(0),
            base: 0,
            spec: 0,
            state,
            model: Some(ModelKind::Naive),
            auto: Default::default(),
            origin_ms: 0,
            fitted_ms: 0,
            points: vec![Point {
                yhat: 2.0,
                lower: 1.0,
                upper: 3.5,
            }],
            anomaly: None,
            accuracy: Vec::new(),
            band_scales: Vec::new(),
            rate: false,
        };
        let mut flagged = mk("a:x", SeriesState::Ready);
        flagged.labels = Arc::new(LabelSet::from_pairs([("__name__", "a:x"), ("job", "api")]));
        flagged.anomaly = Some(crate::snapshot::Anomaly {
            score: 0.8,
            likelihood: 0.75,
            direction: -1,
        });
        // Accuracy at the one horizon: a MASE, and a coverage that is not a number yet (not
        // exported).
        flagged.accuracy = vec![Some(crate::snapshot::ForecastAccuracy {
            mase: 0.5,
            coverage: f64::NAN,
            weight: 3.0,
        })];
        let snap = Snapshot {
            generated_ms: 1,
            step_ms: 60_000,
            horizons: vec![vec![("5m".into(), 300_000)]],
            series: vec![
                mk("b:x", SeriesState::Ready),
                mk("a:x", SeriesState::Ready),
                mk("c:x", SeriesState::Stale),
                flagged,
            ],
            scaling: Vec::new(),
        };
        let mut out = String::new();
        render_forecasts(&snap, &mut out);
        assert!(out.contains("# TYPE a:x:predicted gauge\n"), "{out}");
        assert!(
            out.contains(
                "a:x:predicted{horizon=\"5m\",job=\"w\\\"eb\",ml_forecast=\"yhat_upper\"} 3.5\n"
            ),
            "{out}"
        );
        assert!(!out.contains("c:x"), "stale series are not exported");
        assert!(out.find("a:x").unwrap() < out.find("b:x").unwrap());
        assert!(
            out.contains("# TYPE a:x:anomaly_score gauge\na:x:anomaly_score{job=\"api\"} 0.8\n"),
            "{out}"
        );
        assert!(out.contains("a:x:anomalous{job=\"api\"} -1\n"), "{out}");
        assert!(
            out.contains("a:x:anomaly_likelihood{job=\"api\"} 0.75\n"),
            "{out}"
        );
        assert_eq!(
            out.matches("# TYPE a:x:predicted gauge").count(),
            1,
            "one TYPE line per name"
        );
        assert!(
            out.contains(
                "# TYPE a:x:forecast_mase gauge\na:x:forecast_mase{horizon=\"5m\",job=\"api\"} 0.5\n"
            ),
            "{out}"
        );
        assert!(!out.contains("forecast_coverage"), "{out}");
        assert_eq!(
            out.lines().filter(|l| !l.starts_with('#')).count(),
            3 * 3 + 3 + 1
        );
        assert_eq!(
            snap.sample_count(),
            3 * 3 + 3 + 1,
            "the count remote write reports"
        );
    }
}
