//! `GET /api/v1/forecasts?selector=...`: the latest forecasts as JSON, for people and
//! scripts. Shaped like Prometheus' API (`status`, `data`, `errorType`, `error`).

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Selector;
use crate::snapshot::{SeriesState, Snapshot};

#[derive(Serialize)]
struct SeriesJson<'a> {
    labels: serde_json::Map<String, Value>,
    #[serde(flatten)]
    state: &'a SeriesState,
    model: Option<&'static str>,
    /// Unix seconds of the newest observed point the forecast starts from.
    origin: f64,
    /// Seconds between the model's last fit and the snapshot.
    age_seconds: f64,
    forecasts: Vec<Value>,
    /// The newest point's anomaly score (0..1), its likelihood (0..1) and the exported
    /// decision (1, -1, 0), when scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    anomaly_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anomaly_likelihood: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anomalous: Option<i8>,
}

/// The `selector` query parameter; absent or empty selects everything.
fn parse_selector(selector: Option<&str>) -> Result<Selector, String> {
    match selector {
        Some(s) if !s.trim().is_empty() => Selector::parse(s).map_err(|e| e.to_string()),
        _ => Ok(Selector::all()),
    }
}

/// Builds the response body; `Err` is a client error message (400).
pub fn forecasts_json(
    snapshot: &Snapshot,
    selector: Option<&str>,
    limit: usize,
) -> Result<Value, String> {
    let selector = parse_selector(selector)?;
    let mut series = Vec::new();
    let mut truncated = false;
    for s in &snapshot.series {
        if !selector.matches(|n| s.labels.get(n)) {
            continue;
        }
        if series.len() >= limit {
            truncated = true;
            break;
        }
        let horizons = &snapshot.horizons[s.spec as usize];
        let forecasts = horizons
            .iter()
            .zip(&s.points)
            .map(|((label, ms), p)| {
                json!({
                    "horizon": label,
                    "target_time": (snapshot.generated_ms + ms) as f64 / 1e3,
                    "yhat": finite(p.yhat),
                    "yhat_lower": finite(p.lower),
                    "yhat_upper": finite(p.upper),
                })
            })
            .collect();
        series.push(SeriesJson {
            labels: labels_json(&s.labels),
            state: &s.state,
            model: s.model.map(|m| m.as_str()),
            origin: s.origin_ms as f64 / 1e3,
            age_seconds: ((snapshot.generated_ms - s.fitted_ms).max(0)) as f64 / 1e3,
            forecasts,
            anomaly_score: s.anomaly.map(|a| a.score),
            anomaly_likelihood: s.anomaly.map(|a| a.likelihood),
            anomalous: s.anomaly.map(|a| a.direction),
        });
    }
    Ok(json!({
        "status": "success",
        "data": {
            "generated_at": snapshot.generated_ms as f64 / 1e3,
            "truncated": truncated,
            "series": series,
        }
    }))
}

/// `GET /api/v1/scaling/{target}`, for KEDA's `metrics-api` scaler (`valueLocation:
/// data.desired_replicas`): the target's desired replicas, or an HTTP error saying why there
/// are none (404: no such target, 409: observe mode, 503: no fresh recommendation). Never a
/// 0 that would scale a workload down because promcast does not know.
pub fn scaling_target_json(
    snapshot: &Snapshot,
    config: &crate::config::Config,
    name: &str,
    now_ms: i64,
) -> Result<Value, (u16, Value)> {
    let error = |code: u16, e: String| {
        Err((
            code,
            json!({"status": "error", "errorType": "unavailable", "error": e}),
        ))
    };
    let Some(spec) = config.scaling.iter().find(|t| &*t.name == name) else {
        let names: Vec<&str> = config.scaling.iter().map(|t| &*t.name).collect();
        return error(
            404,
            format!(
                "no scaling target {name:?} (configured: {})",
                names.join(", ")
            ),
        );
    };
    if spec.mode == crate::config::ScalingMode::Observe {
        return error(
            409,
            format!("scaling target {name:?} is in observe mode: exported, not served"),
        );
    }
    match snapshot.desired(name, now_ms) {
        Ok(desired) => {
            let r = snapshot.recommendation(name);
            Ok(json!({
                "status": "success",
                "data": {
                    "target": name,
                    "desired_replicas": desired,
                    "decided_by": r.and_then(|r| r.reason).map(|x| x.as_str()),
                    "generated_at": snapshot.generated_ms as f64 / 1e3,
                }
            }))
        }
        Err(e) => error(503, format!("{name:?}: {e}")),
    }
}

/// `GET /api/v1/scaling`: every scaling target's latest recommendation, or why it has none,
/// next to the replicas the observed load alone needs (what an HPA on the series asks for);
/// with `history`, also each target's kept steps (`storage.forecast_history`) as
/// `[unix seconds, desired replicas, replicas for the observed load]`.
pub fn scaling_json(
    snapshot: &Snapshot,
    config: &crate::config::Config,
    history: Option<&crate::export::history::ScalingHistory>,
) -> Value {
    let mut past = history.map(|h| scaling_history(h, config));
    let targets: Vec<Value> = snapshot
        .scaling
        .iter()
        .map(|r| {
            let observed = r.observed.and_then(|v| v.is_finite().then_some(v));
            let mut v = json!({
                "target": &*r.target,
                "mode": r.mode.as_str(),
                "policy": r.policy.as_str(),
                "desired_replicas": r.desired,
                "observed_replicas": observed.and_then(|load| replicas_for(config, &r.target, load)),
                "decided_by": r.reason.map(|x| x.as_str()),
                "load": r.load.and_then(|v| v.is_finite().then_some(v)),
                "observed": observed,
                "predicted": r.predicted.and_then(|v| v.is_finite().then_some(v)),
                "status": r.status.reason(),
            });
            if let Some(past) = past.as_mut() {
                v["history"] = Value::from(past.remove(&*r.target).unwrap_or_default());
            }
            v
        })
        .collect();
    json!({
        "status": "success",
        "data": {
            "generated_at": snapshot.generated_ms as f64 / 1e3,
            "targets": targets,
        }
    })
}

/// The replicas `load` needs on its own for target `name`: `ceil(load / sized capacity)`
/// within its replica limits.
fn replicas_for(config: &crate::config::Config, name: &str, load: f64) -> Option<u32> {
    let p = &config.scaling.iter().find(|t| &*t.name == name)?.params;
    let wanted = (load / p.sized_capacity()).ceil().max(0.0) as u32;
    Some(wanted.clamp(p.min_replicas, p.max_replicas.max(p.min_replicas)))
}

/// Per target, `[seconds, desired, replicas for the observed load]` per kept step.
fn scaling_history(
    history: &crate::export::history::ScalingHistory,
    config: &crate::config::Config,
) -> std::collections::HashMap<String, Vec<Value>> {
    use crate::export::{DESIRED_REPLICAS, SCALING_LOAD};
    let mut steps: std::collections::HashMap<String, Vec<(i64, Value, Value)>> = Default::default();
    history.for_each(|t, labels, v| {
        let get = |n: &str| labels.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let (Some(name), Some(target)) = (get("__name__"), get("target")) else {
            return;
        };
        let rows = steps.entry(target.to_owned()).or_default();
        if rows.last().is_none_or(|r| r.0 != t) {
            rows.push((t, Value::Null, Value::Null));
        }
        let row = rows.last_mut().expect("pushed");
        if name == DESIRED_REPLICAS {
            row.1 = json!(v);
        } else if name == SCALING_LOAD && get("kind") == Some("observed") {
            row.2 = json!(replicas_for(config, target, v));
        }
    });
    steps
        .into_iter()
        .map(|(target, rows)| {
            let rows = rows
                .into_iter()
                .map(|(t, d, o)| json!([t as f64 / 1e3, d, o]))
                .collect();
            (target, rows)
        })
        .collect()
}

fn finite(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// `GET /api/v1/history?selector=...`: each stored series' ring as `[unix seconds, value]`
/// (a counter stored as rates under its own name, its points its per-second rates, `rate: true`)
/// pairs (gaps left out), for checking what promcast holds against Prometheus' own data.
pub fn history_json(
    store: &crate::store::Store,
    selector: Option<&str>,
    limit: usize,
) -> Result<Value, String> {
    let selector = parse_selector(selector)?;
    let step_ms = store.step_ms();
    let mut series = Vec::new();
    let mut truncated = false;
    let mut values = Vec::new();
    for shard in 0..store.shard_count() {
        store.visit_shard(shard, |s| {
            if !selector.matches(|n| s.labels.get(n)) {
                return;
            }
            if series.len() >= limit {
                truncated = true;
                return;
            }
            let Some(head) = s.ring.head() else { return };
            values.clear();
            s.ring.copy_last(s.ring.history_len(), &mut values);
            let first = head - values.len() as i64 + 1;
            let points: Vec<Value> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| json!([((first + i as i64) * step_ms) as f64 / 1e3, *v as f64]))
                .collect();
            series.push(json!({
                "labels": labels_json(&s.labels),
                "stale": s.stale,
                // A counter stored as its per-second rate: the points are rates.
                "rate": s.is_rate(),
                "step_seconds": step_ms as f64 / 1e3,
                "points": points,
            }));
        });
    }
    Ok(json!({
        "status": "success",
        "data": { "series": series, "truncated": truncated },
    }))
}

/// `GET /api/v1/forecast_history?selector=...`: per series, the forecasts kept for each
/// horizon at the time they were made *for* (`[unix seconds, yhat, yhat_lower, yhat_upper]`),
/// and the anomaly scores of its observed points (`[unix seconds, score, direction]`); what
/// remote read serves as `N:forecast`, for the web page.
pub fn forecast_history_json(
    history: &crate::export::history::ForecastHistory,
    snapshot: &Snapshot,
    selector: Option<&str>,
    limit: usize,
) -> Result<Value, String> {
    let selector = parse_selector(selector)?;
    let step_ms = snapshot.step_ms.max(1);
    let len = history.len();
    let seconds = |bucket: i64| (bucket * step_ms) as f64 / 1e3;
    let mut series = Vec::new();
    let mut truncated = false;
    history.for_each(|e| {
        if !selector.matches(|n| e.labels.get(n)) {
            return;
        }
        if series.len() >= limit {
            truncated = true;
            return;
        }
        let horizons = snapshot.horizons.get(e.spec as usize);
        let forecasts: Vec<Value> = (0..e.horizons())
            .map(|h| {
                let points: Vec<Value> = ((e.head - len as i64 + 1)..=e.head)
                    .filter_map(|b| {
                        let [y, lo, hi] = e.get(b, h, len)?;
                        Some(json!([seconds(b), y, finite(lo as f64), finite(hi as f64)]))
                    })
                    .collect();
                let label = horizons.and_then(|hs| hs.get(h)).map(|(l, _)| l.as_str());
                json!({ "horizon": label, "points": points })
            })
            .collect();
        let anomalies: Vec<Value> = e
            .anomalies()
            .map(|(b, score, direction)| json!([seconds(b), score, direction]))
            .collect();
        series.push(json!({
            "labels": labels_json(&e.labels),
            "rate": e.rate,
            "forecasts": if e.head == i64::MIN { Vec::new() } else { forecasts },
            "anomalies": anomalies,
        }));
    });
    Ok(json!({
        "status": "success",
        "data": {
            "step_seconds": step_ms as f64 / 1e3,
            "series": series,
            "truncated": truncated,
        },
    }))
}

fn labels_json(labels: &crate::store::LabelSet) -> serde_json::Map<String, Value> {
    labels
        .iter()
        .map(|(n, v)| (n.to_owned(), Value::String(v.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SeriesForecast;
    use crate::snapshot::{ModelKind, Point};
    use crate::store::LabelSet;
    use std::sync::Arc;

    fn snapshot() -> Snapshot {
        let mk = |job: &str, state| SeriesForecast {
            labels: Arc::new(LabelSet::from_pairs([("__name__", "a:b"), ("job", job)])),
            id: crate::store::SeriesId(0),
            base: 0,
            spec: 0,
            state,
            model: Some(ModelKind::Naive),
            origin_ms: 60_000,
            fitted_ms: 60_000,
            points: vec![Point {
                yhat: 2.0,
                lower: 1.0,
                upper: 3.0,
            }],
            anomaly: None,
            rate: false,
        };
        Snapshot {
            generated_ms: 120_000,
            step_ms: 60_000,
            horizons: vec![vec![("5m".into(), 300_000)]],
            series: vec![
                mk("web", SeriesState::Ready),
                mk(
                    "api",
                    SeriesState::WarmingUp {
                        for_model: "naive",
                        points_needed: 4,
                    },
                ),
            ],
            scaling: Vec::new(),
        }
    }

    #[test]
    fn filters_by_selector_and_reports_state() {
        let v = forecasts_json(&snapshot(), Some(r#"{job="web"}"#), 100).unwrap();
        let series = v["data"]["series"].as_array().unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0]["state"], "ready");
        assert_eq!(series[0]["forecasts"][0]["target_time"], 420.0);
        assert_eq!(series[0]["age_seconds"], 60.0);
        let v = forecasts_json(&snapshot(), None, 100).unwrap();
        let api = &v["data"]["series"][1];
        assert_eq!(api["state"], "warming_up");
        assert_eq!(api["points_needed"], 4);
        assert_eq!(api["for_model"], "naive");
        let v = forecasts_json(&snapshot(), None, 1).unwrap();
        assert_eq!(v["data"]["truncated"], true);
        assert!(forecasts_json(&snapshot(), Some("rate(x[5m])"), 1).is_err());
    }
}
