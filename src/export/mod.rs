//! Everything that reads forecasts: an immutable [`Snapshot`] published once per step by the
//! forecast loop (one writer, many readers through [`SnapshotCell`]), and its encoders: the
//! scrape endpoint ([`scrape`]), remote-write out ([`remote_write`]) and the JSON API
//! ([`api`]). None of them computes a forecast.
//!
//! Naming (Grafana ML's convention): for an input series `N{L}`, promcast writes
//! `N:predicted{L, ml_forecast="yhat"|"yhat_lower"|"yhat_upper", horizon="15m"}` whose value
//! at time t is the forecast *for* t + horizon.

pub mod api;
pub mod history;
pub mod keda;
pub mod remote_read;
pub mod remote_write;
pub mod scrape;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, ScalingMode};
use crate::forecast::{ModelKind, Point, SeriesState};
use crate::scale::Policy;
use crate::store::LabelSet;

/// Suffix appended to the input metric name.
pub const PREDICTED_SUFFIX: &str = ":predicted";

/// The output families written per input series `N{L}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `N:predicted{L, horizon, ml_forecast}`: the forecast for t + horizon.
    Predicted,
    /// `N:anomaly_score{L}`: 0..1, how unusual the newest point is.
    AnomalyScore,
    /// `N:anomalous{L}`: 1 above the band and scored anomalous, -1 below, 0 otherwise.
    Anomalous,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Predicted, Family::AnomalyScore, Family::Anomalous];

    pub fn suffix(self) -> &'static str {
        match self {
            Family::Predicted => PREDICTED_SUFFIX,
            Family::AnomalyScore => ":anomaly_score",
            Family::Anomalous => ":anomalous",
        }
    }
}

/// An anomaly verdict on a series' newest point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anomaly {
    pub score: f64,
    /// 1 above, -1 below, 0 normal.
    pub direction: i8,
}

/// The three values of the `ml_forecast` label, in the order of [`Point`]'s fields.
pub const ML_FORECAST: [&str; 3] = ["yhat", "yhat_lower", "yhat_upper"];

/// One series' latest forecast.
#[derive(Debug, Clone)]
pub struct SeriesForecast {
    pub labels: Arc<LabelSet>,
    /// Index into [`Snapshot::horizons`].
    pub spec: u16,
    pub state: SeriesState,
    pub model: Option<ModelKind>,
    /// Time of the newest observed bucket the forecast starts from.
    pub origin_ms: i64,
    /// When the model last fitted this series (equals `origin_ms` for models that need no fit).
    pub fitted_ms: i64,
    /// One per horizon of the spec, in the same order; empty unless `state` is ready.
    pub points: Vec<Point>,
    /// The newest point's anomaly verdict, when the entry scores anomalies.
    pub anomaly: Option<Anomaly>,
}

/// Why a scaling target has no recommendation this step.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalingStatus {
    Ok,
    /// No stored series matches the target's selector.
    NoSeries,
    /// The selector matches this many series; it must match exactly one.
    Ambiguous(usize),
    /// The series has no usable forecast (warming up, failed, stale, or not observed).
    NoForecast(String),
}

impl ScalingStatus {
    pub fn reason(&self) -> String {
        match self {
            ScalingStatus::Ok => "ok".into(),
            ScalingStatus::NoSeries => "no series matches the target's selector".into(),
            ScalingStatus::Ambiguous(n) => {
                format!("the target's selector matches {n} series; it must match exactly one")
            }
            ScalingStatus::NoForecast(why) => format!("no forecast: {why}"),
        }
    }
}

/// One scaling target's recommendation at a step.
#[derive(Debug, Clone)]
pub struct Recommendation {
    pub target: Arc<str>,
    pub mode: ScalingMode,
    pub policy: Policy,
    /// Stabilised desired replicas; `None` when promcast cannot recommend (`status` says why).
    /// Never a stand-in 0: consumers must see "unknown" as unknown.
    pub desired: Option<u32>,
    /// The load the recommendation used: the larger of observed and predicted.
    pub load: Option<f64>,
    /// The series' newest observed value.
    pub observed: Option<f64>,
    /// The policy's load `lead_time` ahead (median, buffered median or band quantile).
    pub predicted: Option<f64>,
    pub status: ScalingStatus,
}

/// Names of the scaling samples.
pub const DESIRED_REPLICAS: &str = "promcast_desired_replicas";
pub const SCALING_LOAD: &str = "promcast_scaling_load";

/// All forecasts of one step.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// When the step ran: the timestamp exported samples carry.
    pub generated_ms: i64,
    /// Horizon labels (`"5m"`) and their length in ms, per forecast entry.
    pub horizons: Vec<Vec<(String, i64)>>,
    pub series: Vec<SeriesForecast>,
    /// One per `scaling:` target, in config order.
    pub scaling: Vec<Recommendation>,
}

impl Snapshot {
    pub fn empty(config: &Config) -> Self {
        Self {
            generated_ms: 0,
            horizons: horizons_of(config),
            series: Vec::new(),
            scaling: Vec::new(),
        }
    }

    /// The recommendation for target `name`.
    pub fn recommendation(&self, name: &str) -> Option<&Recommendation> {
        self.scaling.iter().find(|r| &*r.target == name)
    }

    /// Calls `f(labels, value)` for every scaling sample: `promcast_desired_replicas{target,
    /// mode}` and `promcast_scaling_load{target, mode, kind="used"|"observed"|"predicted"}`
    /// (labels sorted by name). A target without a recommendation has no samples.
    pub fn scaling_samples(
        &self,
        buf: &mut Vec<(String, String)>,
        mut f: impl FnMut(&[(String, String)], f64),
    ) {
        for r in &self.scaling {
            let Some(desired) = r.desired else { continue };
            let mode = r.mode.as_str();
            set_labels(
                buf,
                &[
                    ("__name__", DESIRED_REPLICAS),
                    ("mode", mode),
                    ("target", &r.target),
                ],
            );
            f(buf, desired as f64);
            for (kind, v) in [
                ("used", r.load),
                ("observed", r.observed),
                ("predicted", r.predicted),
            ] {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    set_labels(
                        buf,
                        &[
                            ("__name__", SCALING_LOAD),
                            ("kind", kind),
                            ("mode", mode),
                            ("target", &r.target),
                        ],
                    );
                    f(buf, v);
                }
            }
        }
    }

    fn scaling_sample_count(&self) -> usize {
        let mut n = 0;
        self.scaling_samples(&mut Vec::new(), |_, _| n += 1);
        n
    }

    /// Ready series with finite points: what exporters emit.
    pub fn ready(&self) -> impl Iterator<Item = &SeriesForecast> {
        self.series
            .iter()
            .filter(|s| s.state == SeriesState::Ready && !s.points.is_empty())
    }

    /// Calls `f(labels, value)` for every sample of one family of one series, building the
    /// output labels in `buf` (sorted by name) without allocating once `buf` has grown.
    pub fn series_samples(
        &self,
        s: &SeriesForecast,
        family: Family,
        buf: &mut Vec<(String, String)>,
        mut f: impl FnMut(&[(String, String)], f64),
    ) {
        match family {
            Family::Predicted => {
                let horizons = &self.horizons[s.spec as usize];
                for (h, p) in horizons.iter().zip(&s.points) {
                    for (kind, value) in ML_FORECAST.iter().zip([p.yhat, p.lower, p.upper]) {
                        output_labels(
                            &s.labels,
                            family.suffix(),
                            &[("horizon", &h.0), ("ml_forecast", kind)],
                            buf,
                        );
                        f(buf, value);
                    }
                }
            }
            Family::AnomalyScore | Family::Anomalous => {
                if let Some(a) = s.anomaly {
                    output_labels(&s.labels, family.suffix(), &[], buf);
                    let value = if family == Family::AnomalyScore {
                        a.score
                    } else {
                        a.direction as f64
                    };
                    f(buf, value);
                }
            }
        }
    }

    /// Series with anything to export: a ready forecast, or an anomaly verdict (a series
    /// can be scored while its configured model is still warming up).
    pub fn exported(&self) -> impl Iterator<Item = &SeriesForecast> {
        self.series.iter().filter(|s| {
            (s.state == SeriesState::Ready && !s.points.is_empty()) || s.anomaly.is_some()
        })
    }

    /// Every exported sample of every family.
    pub fn for_each_sample(
        &self,
        buf: &mut Vec<(String, String)>,
        mut f: impl FnMut(&[(String, String)], f64),
    ) {
        for s in self.exported() {
            for family in Family::ALL {
                self.series_samples(s, family, buf, &mut f);
            }
        }
        self.scaling_samples(buf, &mut f);
    }

    /// Samples one snapshot exports.
    pub fn sample_count(&self) -> usize {
        self.exported()
            .map(|s| s.points.len() * ML_FORECAST.len() + if s.anomaly.is_some() { 2 } else { 0 })
            .sum::<usize>()
            + self.scaling_sample_count()
    }
}

/// Overwrites `buf` with `pairs` (already sorted by name), reusing its strings.
fn set_labels(buf: &mut Vec<(String, String)>, pairs: &[(&str, &str)]) {
    buf.truncate(pairs.len());
    while buf.len() < pairs.len() {
        buf.push((String::new(), String::new()));
    }
    for ((n, v), (pn, pv)) in buf.iter_mut().zip(pairs) {
        n.clear();
        n.push_str(pn);
        v.clear();
        v.push_str(pv);
    }
}

pub fn horizons_of(config: &Config) -> Vec<Vec<(String, i64)>> {
    config
        .forecast
        .iter()
        .map(|f| {
            f.horizons
                .iter()
                .map(|h| (h.label.clone(), h.duration.as_millis() as i64))
                .collect()
        })
        .collect()
}

/// Output labels of one sample, sorted by name: the input's labels with `suffix` appended
/// to the name, plus `extra` (sorted by name; they replace inputs of the same names).
pub fn output_labels(
    input: &LabelSet,
    suffix: &str,
    extra: &[(&str, &str)],
    buf: &mut Vec<(String, String)>,
) {
    let mut n = 0;
    let mut put = |buf: &mut Vec<(String, String)>, name: &str, value: &str, suffix: &str| {
        if buf.len() <= n {
            buf.push((String::new(), String::new()));
        }
        let (bn, bv) = &mut buf[n];
        bn.clear();
        bn.push_str(name);
        bv.clear();
        bv.push_str(value);
        bv.push_str(suffix);
        n += 1;
    };
    let mut extra_iter = extra.iter().copied().peekable();
    for (name, value) in input.iter() {
        while let Some((en, ev)) = extra_iter.peek().copied() {
            if en < name {
                put(buf, en, ev, "");
                extra_iter.next();
            } else {
                break;
            }
        }
        if extra.iter().any(|(en, _)| *en == name) {
            continue;
        }
        if name == "__name__" {
            put(buf, name, value, suffix);
        } else {
            put(buf, name, value, "");
        }
    }
    for (en, ev) in extra_iter {
        put(buf, en, ev, "");
    }
    buf.truncate(n);
}

/// The latest snapshot: one writer (the forecast loop), lock-free readers.
pub struct SnapshotCell(ArcSwap<Snapshot>);

impl SnapshotCell {
    pub fn new(initial: Snapshot) -> Self {
        Self(ArcSwap::from_pointee(initial))
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    pub fn store(&self, snapshot: Arc<Snapshot>) {
        self.0.store(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_labels_are_sorted_and_renamed() {
        let input = LabelSet::from_pairs([
            ("__name__", "job:req:rate5m"),
            ("instance", "a:9090"),
            ("job", "web"),
            ("zone", "eu"),
        ]);
        let mut buf = Vec::new();
        output_labels(
            &input,
            PREDICTED_SUFFIX,
            &[("horizon", "15m"), ("ml_forecast", "yhat_lower")],
            &mut buf,
        );
        let got: Vec<(&str, &str)> = buf.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("__name__", "job:req:rate5m:predicted"),
                ("horizon", "15m"),
                ("instance", "a:9090"),
                ("job", "web"),
                ("ml_forecast", "yhat_lower"),
                ("zone", "eu"),
            ]
        );
        // Reusing the buffer for a shorter set truncates it.
        let short = LabelSet::from_pairs([("__name__", "x"), ("job", "j")]);
        output_labels(&short, ":anomaly_score", &[], &mut buf);
        assert_eq!(buf.len(), 2);
        assert_eq!(
            buf[0],
            ("__name__".to_string(), "x:anomaly_score".to_string())
        );
    }
}
