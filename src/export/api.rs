//! `GET /api/v1/forecasts?selector=...`: the latest forecasts as JSON, for people and
//! scripts. Shaped like Prometheus' API (`status`, `data`, `errorType`, `error`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Selector, SelectorError};
use crate::snapshot::{AutoChoice, NoDesired, SeriesState, Snapshot};
use crate::store::LabelSet;

/// Why the JSON API answers with an error. Every variant answers in Prometheus' error shape,
/// built in one place ([`error_body`]); the status tells the client whether to retry: 4xx
/// never succeeds as asked, 503 may later.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The `selector` parameter is not a plain series selector (400, `bad_data`).
    #[error(transparent)]
    BadSelector(#[from] SelectorError),
    /// `/api/v1/scaling/{target}` names no configured target (404).
    #[error("no scaling target {name:?} (configured: {configured})")]
    NoSuchTarget { name: String, configured: String },
    /// The target is in `observe` mode: exported, never served (409).
    #[error("scaling target {0:?} is in observe mode: exported, not served")]
    ObserveMode(String),
    /// The target has no fresh recommendation (503): never a 0 that would scale it down.
    #[error("{name:?}: {why}")]
    NoRecommendation { name: String, why: NoDesired },
    /// The task building the answer failed (500, with no body).
    #[error("the task building the answer failed")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadSelector(_) => StatusCode::BAD_REQUEST,
            ApiError::NoSuchTarget { .. } => StatusCode::NOT_FOUND,
            ApiError::ObserveMode(_) => StatusCode::CONFLICT,
            ApiError::NoRecommendation { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Prometheus' `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadSelector(_) => "bad_data",
            ApiError::Internal => "internal",
            _ => "unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal = self {
            tracing::error!(error = %self, "JSON API");
            return self.status().into_response();
        }
        let body = error_body(self.error_type(), &self.to_string());
        (self.status(), Json(body)).into_response()
    }
}

/// Prometheus' API error body: `{"status":"error","errorType":...,"error":...}`.
pub fn error_body(error_type: &str, error: &str) -> Value {
    json!({"status": "error", "errorType": error_type, "error": error})
}

/// Prometheus' API success body: `{"status":"success","data":...}`.
fn success(data: Value) -> Value {
    json!({"status": "success", "data": data})
}

/// The series a `selector` picks, at most `limit` of them; `truncated` once one that matches
/// is left out.
struct Picked<T> {
    selector: Selector,
    limit: usize,
    series: Vec<T>,
    truncated: bool,
}

impl<T> Picked<T> {
    /// An absent or empty `selector` selects everything.
    fn new(selector: Option<&str>, limit: usize) -> Result<Self, ApiError> {
        let selector = match selector {
            Some(s) if !s.trim().is_empty() => Selector::parse(s)?,
            _ => Selector::all(),
        };
        Ok(Self {
            selector,
            limit,
            series: Vec::new(),
            truncated: false,
        })
    }

    /// Whether a series with these labels is wanted: it matches and there is room for it.
    fn wants(&mut self, labels: &LabelSet) -> bool {
        if !self.selector.matches(|n| labels.get(n)) {
            return false;
        }
        if self.series.len() >= self.limit {
            self.truncated = true;
            return false;
        }
        true
    }
}

#[derive(Serialize)]
struct SeriesJson<'a> {
    labels: serde_json::Map<String, Value>,
    #[serde(flatten)]
    state: &'a SeriesState,
    model: Option<&'static str>,
    /// For an `auto` entry: `waiting` (no choice yet, the preference order serves),
    /// `provisional` (chosen without the expensive candidates while others waited) or
    /// `chosen`.
    #[serde(skip_serializing_if = "is_fixed")]
    auto_choice: AutoChoice,
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

fn is_fixed(c: &AutoChoice) -> bool {
    *c == AutoChoice::Fixed
}

/// Builds the response body; `Err` is the client's mistake (400).
pub fn forecasts_json(
    snapshot: &Snapshot,
    selector: Option<&str>,
    limit: usize,
) -> Result<Value, ApiError> {
    let mut picked = Picked::new(selector, limit)?;
    for s in &snapshot.series {
        if !picked.wants(&s.labels) {
            if picked.truncated {
                break;
            }
            continue;
        }
        let horizons = &snapshot.horizons[s.spec as usize];
        let forecasts = horizons
            .iter()
            .zip(&s.points)
            .enumerate()
            .map(|(i, ((label, ms), p))| {
                let mut v = json!({
                    "horizon": label,
                    "target_time": (snapshot.generated_ms + ms) as f64 / 1e3,
                    "yhat": finite(p.yhat),
                    "yhat_lower": finite(p.lower),
                    "yhat_upper": finite(p.upper),
                });
                // The rolling accuracy of the forecasts served at this horizon
                // (`N:forecast_mase`, `N:forecast_coverage`), once one was scored.
                if let Some(a) = s.accuracy.get(i).copied().flatten() {
                    v["mase"] = finite(a.mase);
                    v["coverage"] = finite(a.coverage);
                    v["scored"] = finite(a.weight);
                }
                // How the band's calibration scaled each side of the model's band.
                if let Some(&(lo, hi)) = s.band_scales.get(i) {
                    v["band_scale"] = json!([finite(f64::from(lo)), finite(f64::from(hi))]);
                }
                v
            })
            .collect();
        picked.series.push(SeriesJson {
            labels: labels_json(&s.labels),
            state: &s.state,
            model: s.model.map(|m| m.as_str()),
            auto_choice: s.auto,
            origin: s.origin_ms as f64 / 1e3,
            age_seconds: ((snapshot.generated_ms - s.fitted_ms).max(0)) as f64 / 1e3,
            forecasts,
            anomaly_score: s.anomaly.map(|a| a.score),
            anomaly_likelihood: s.anomaly.map(|a| a.likelihood),
            anomalous: s.anomaly.map(|a| a.direction),
        });
    }
    Ok(success(json!({
        "generated_at": snapshot.generated_ms as f64 / 1e3,
        "truncated": picked.truncated,
        "series": picked.series,
    })))
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
) -> Result<Value, ApiError> {
    let Some(spec) = config.scaling.iter().find(|t| &*t.name == name) else {
        let names: Vec<&str> = config.scaling.iter().map(|t| &*t.name).collect();
        return Err(ApiError::NoSuchTarget {
            name: name.to_owned(),
            configured: names.join(", "),
        });
    };
    if spec.mode == crate::config::ScalingMode::Observe {
        return Err(ApiError::ObserveMode(name.to_owned()));
    }
    let desired = snapshot
        .desired(name, now_ms)
        .map_err(|why| ApiError::NoRecommendation {
            name: name.to_owned(),
            why,
        })?;
    let r = snapshot.recommendation(name);
    Ok(success(json!({
        "target": name,
        "desired_replicas": desired,
        "decided_by": r.and_then(|r| r.reason).map(|x| x.as_str()),
        "generated_at": snapshot.generated_ms as f64 / 1e3,
    })))
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
    success(json!({
        "generated_at": snapshot.generated_ms as f64 / 1e3,
        "targets": targets,
    }))
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
) -> Result<Value, ApiError> {
    let mut picked = Picked::new(selector, limit)?;
    let step_ms = store.step_ms();
    let mut values = Vec::new();
    for shard in 0..store.shard_count() {
        store.visit_shard(shard, |s| {
            if !picked.wants(&s.labels) {
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
            picked.series.push(json!({
                "labels": labels_json(&s.labels),
                "stale": s.stale,
                // A counter stored as its per-second rate: the points are rates.
                "rate": s.is_rate(),
                "step_seconds": step_ms as f64 / 1e3,
                "points": points,
            }));
        });
    }
    Ok(success(
        json!({ "series": picked.series, "truncated": picked.truncated }),
    ))
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
) -> Result<Value, ApiError> {
    let mut picked = Picked::new(selector, limit)?;
    let step_ms = snapshot.step_ms.max(1);
    let len = history.span();
    let seconds = |bucket: i64| (bucket * step_ms) as f64 / 1e3;
    history.for_each(|e| {
        if !picked.wants(&e.labels) {
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
        picked.series.push(json!({
            "labels": labels_json(&e.labels),
            "rate": e.rate,
            "forecasts": if e.head == i64::MIN { Vec::new() } else { forecasts },
            "anomalies": anomalies,
        }));
    });
    Ok(success(json!({
        "step_seconds": step_ms as f64 / 1e3,
        "span_seconds": (len as i64 * step_ms) as f64 / 1e3,
        "series": picked.series,
        "truncated": picked.truncated,
    })))
}

fn labels_json(labels: &LabelSet) -> serde_json::Map<String, Value> {
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
    use std::sync::Arc;

    fn snapshot() -> Snapshot {
        let mk = |job: &str, state, auto| SeriesForecast {
            labels: Arc::new(LabelSet::from_pairs([("__name__", "a:b"), ("job", job)])),
            id: crate::store::SeriesId(0),
            base: 0,
            spec: 0,
            state,
            model: Some(ModelKind::Naive),
            auto,
            origin_ms: 60_000,
            fitted_ms: 60_000,
            points: vec![Point {
                yhat: 2.0,
                lower: 1.0,
                upper: 3.0,
            }],
            anomaly: None,
            accuracy: vec![Some(crate::snapshot::ForecastAccuracy {
                mase: 0.8,
                coverage: 0.75,
                weight: 12.5,
            })],
            band_scales: vec![(1.5, 0.75)],
            rate: false,
        };
        Snapshot {
            generated_ms: 120_000,
            step_ms: 60_000,
            horizons: vec![vec![("5m".into(), 300_000)]],
            series: vec![
                mk("web", SeriesState::Ready, AutoChoice::Provisional),
                mk(
                    "api",
                    SeriesState::WarmingUp {
                        for_model: "naive",
                        points_needed: 4,
                    },
                    AutoChoice::Fixed,
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
        assert_eq!(series[0]["forecasts"][0]["mase"], 0.8);
        assert_eq!(series[0]["forecasts"][0]["coverage"], 0.75);
        assert_eq!(series[0]["forecasts"][0]["scored"], 12.5);
        assert_eq!(series[0]["forecasts"][0]["band_scale"], json!([1.5, 0.75]));
        assert_eq!(series[0]["auto_choice"], "provisional");
        let v = forecasts_json(&snapshot(), None, 100).unwrap();
        let api = &v["data"]["series"][1];
        // An entry that names its model says nothing about a choice.
        assert!(api.get("auto_choice").is_none(), "{api}");
        assert_eq!(api["state"], "warming_up");
        assert_eq!(api["points_needed"], 4);
        assert_eq!(api["for_model"], "naive");
        let v = forecasts_json(&snapshot(), None, 1).unwrap();
        assert_eq!(v["data"]["truncated"], true);
        assert!(forecasts_json(&snapshot(), Some("rate(x[5m])"), 1).is_err());
    }

    /// A client's mistake is a 400 in Prometheus' error shape; a target without a fresh
    /// recommendation a 503 (retried), never a 0.
    #[test]
    fn errors_have_prometheus_shape_and_their_status() {
        let e = forecasts_json(&snapshot(), Some("rate(x[5m])"), 1).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let want = json!({
            "status": "error",
            "errorType": "bad_data",
            "error": "\"rate(x[5m])\" is not a plain series selector (no functions, ranges or offsets)",
        });
        assert_eq!(error_body(e.error_type(), &e.to_string()), want);
        let e = ApiError::NoRecommendation {
            name: "web".into(),
            why: NoDesired::NoStep,
        };
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.error_type(), "unavailable");
        assert_eq!(
            ApiError::Internal.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
