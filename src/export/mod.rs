//! Everything that reads forecasts: an immutable [`Snapshot`] published once per step by the
//! forecast loop (one writer, many readers through [`SnapshotCell`]), and its encoders: the
//! scrape endpoint ([`scrape`]), remote-write out ([`remote_write`]) and the JSON API
//! ([`api`]). None of them computes a forecast.
//!
//! Naming (Grafana ML's convention): for an input series `N{L}`, promcast writes
//! `N:predicted{L, ml_forecast="yhat"|"yhat_lower"|"yhat_upper", horizon="15m"}` whose value
//! at time t is the forecast *for* t + horizon.

pub mod api;
pub mod remote_write;
pub mod scrape;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::forecast::{ModelKind, Point, SeriesState};
use crate::store::LabelSet;

/// Suffix appended to the input metric name.
pub const PREDICTED_SUFFIX: &str = ":predicted";

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
}

/// All forecasts of one step.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// When the step ran: the timestamp exported samples carry.
    pub generated_ms: i64,
    /// Horizon labels (`"5m"`) and their length in ms, per forecast entry.
    pub horizons: Vec<Vec<(String, i64)>>,
    pub series: Vec<SeriesForecast>,
}

impl Snapshot {
    pub fn empty(config: &Config) -> Self {
        Self {
            generated_ms: 0,
            horizons: horizons_of(config),
            series: Vec::new(),
        }
    }

    /// Ready series with finite points: what exporters emit.
    pub fn ready(&self) -> impl Iterator<Item = &SeriesForecast> {
        self.series
            .iter()
            .filter(|s| s.state == SeriesState::Ready && !s.points.is_empty())
    }

    /// Calls `f(labels, value)` for every exported sample, building the output labels in
    /// `buf` (sorted by name) without allocating per sample once `buf` has grown.
    pub fn for_each_sample(
        &self,
        buf: &mut Vec<(String, String)>,
        mut f: impl FnMut(&[(String, String)], f64),
    ) {
        for s in self.ready() {
            let horizons = &self.horizons[s.spec as usize];
            for (h, p) in horizons.iter().zip(&s.points) {
                for (kind, value) in ML_FORECAST.iter().zip([p.yhat, p.lower, p.upper]) {
                    output_labels(&s.labels, &h.0, kind, buf);
                    f(buf, value);
                }
            }
        }
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

/// Output labels of one sample, sorted by name: the input's labels with `:predicted`
/// appended to the name, plus `horizon` and `ml_forecast` (replacing inputs of those names).
pub fn output_labels(input: &LabelSet, horizon: &str, kind: &str, buf: &mut Vec<(String, String)>) {
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
    let mut extra = [("horizon", horizon), ("ml_forecast", kind)]
        .into_iter()
        .peekable();
    for (name, value) in input.iter() {
        while let Some((en, ev)) = extra.peek().copied() {
            if en < name {
                put(buf, en, ev, "");
                extra.next();
            } else {
                break;
            }
        }
        if name == "horizon" || name == "ml_forecast" {
            continue;
        }
        if name == "__name__" {
            put(buf, name, value, PREDICTED_SUFFIX);
        } else {
            put(buf, name, value, "");
        }
    }
    for (en, ev) in extra {
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
        output_labels(&input, "15m", "yhat_lower", &mut buf);
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
        output_labels(
            &LabelSet::from_pairs([("__name__", "x")]),
            "5m",
            "yhat",
            &mut buf,
        );
        assert_eq!(buf.len(), 3);
        assert_eq!(buf[2], ("ml_forecast".to_string(), "yhat".to_string()));
    }
}
