//! Every sample promcast exports, named and labelled one way for every exporter: the output
//! families of a series' forecast (`N:predicted`, `N:anomaly_score`, `N:anomalous`) and the
//! scaling samples (`promcast_desired_replicas`, `promcast_scaling_load`), built from a
//! [`Snapshot`] without computing anything.
//!
//! Naming (Grafana ML's convention): for an input series `N{L}`, promcast writes
//! `N:predicted{L, ml_forecast="yhat"|"yhat_lower"|"yhat_upper", horizon="15m"}` whose value
//! at time t is the forecast *for* t + horizon.
//!
//! A counter stored as its per-second rate (`storage.counters: rate`, the default) is
//! forecast as that rate, and its outputs say so: `N:rate:predicted`, `N:rate:anomaly_score`,
//! `N:rate:anomalous` (and `N:rate:forecast` in remote read), for `N` the counter's own name
//! (`http_requests_total:rate:predicted`). Gauges keep `N:predicted`.

use crate::snapshot::{SeriesForecast, Snapshot};
use crate::store::LabelSet;

/// Suffix appended to the input metric name.
pub const PREDICTED_SUFFIX: &str = ":predicted";
/// The same for a counter stored as its per-second rate (`storage.counters: rate`).
pub const RATE_PREDICTED_SUFFIX: &str = ":rate:predicted";

/// The output families written per input series `N{L}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `N:predicted{L, horizon, ml_forecast}`: the forecast for t + horizon.
    Predicted,
    /// `N:anomaly_score{L}`: 0..1, how unusual the newest point is.
    AnomalyScore,
    /// `N:anomaly_likelihood{L}`: 0..1, how unusual the recent scores are for this series.
    AnomalyLikelihood,
    /// `N:anomalous{L}`: 1 above the band and scored anomalous, -1 below, 0 otherwise.
    Anomalous,
    /// `N:forecast_mase{L, horizon}`: the served forecasts' rolling mean absolute error at
    /// that horizon over the last value's on the same points (below 1: better than "it stays
    /// as it is"; `crate::forecast::accuracy`).
    ForecastMase,
    /// `N:forecast_coverage{L, horizon}`: the rolling share of targets inside the served band.
    ForecastCoverage,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Predicted,
        Family::AnomalyScore,
        Family::AnomalyLikelihood,
        Family::Anomalous,
        Family::ForecastMase,
        Family::ForecastCoverage,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            Family::Predicted => PREDICTED_SUFFIX,
            Family::AnomalyScore => ":anomaly_score",
            Family::AnomalyLikelihood => ":anomaly_likelihood",
            Family::Anomalous => ":anomalous",
            Family::ForecastMase => ":forecast_mase",
            Family::ForecastCoverage => ":forecast_coverage",
        }
    }

    /// The suffix for a series stored as values (`rate == false`) or as a counter's
    /// per-second rate: `N:rate:predicted`, `N:rate:anomaly_score`, `N:rate:anomalous`.
    pub fn suffix_for(self, rate: bool) -> &'static str {
        match (self, rate) {
            (_, false) => self.suffix(),
            (Family::Predicted, true) => RATE_PREDICTED_SUFFIX,
            (Family::AnomalyScore, true) => ":rate:anomaly_score",
            (Family::AnomalyLikelihood, true) => ":rate:anomaly_likelihood",
            (Family::Anomalous, true) => ":rate:anomalous",
            (Family::ForecastMase, true) => ":rate:forecast_mase",
            (Family::ForecastCoverage, true) => ":rate:forecast_coverage",
        }
    }
}

/// The three values of the `ml_forecast` label, in the order of [`crate::snapshot::Point`]'s fields.
pub const ML_FORECAST: [&str; 3] = ["yhat", "yhat_lower", "yhat_upper"];

/// Names of the scaling samples.
pub const DESIRED_REPLICAS: &str = "promcast_desired_replicas";
pub const SCALING_LOAD: &str = "promcast_scaling_load";

/// The exported samples of a snapshot, for every exporter.
pub trait SnapshotSamples {
    /// Calls `f(labels, value)` for every scaling sample: `promcast_desired_replicas{target,
    /// mode}` and `promcast_scaling_load{target, mode, kind="used"|"observed"|"predicted"}`
    /// (labels sorted by name). A target without a recommendation has no samples.
    fn scaling_samples(
        &self,
        buf: &mut Vec<(String, String)>,
        f: impl FnMut(&[(String, String)], f64),
    );

    /// Scaling samples one snapshot exports.
    fn scaling_sample_count(&self) -> usize;

    /// Calls `f(labels, value)` for every sample of one family of one series, building the
    /// output labels in `buf` (sorted by name) without allocating once `buf` has grown.
    fn series_samples(
        &self,
        s: &SeriesForecast,
        family: Family,
        buf: &mut Vec<(String, String)>,
        f: impl FnMut(&[(String, String)], f64),
    );

    /// Whether `s` has any sample of `family` (the scrape endpoint writes a family's TYPE
    /// line only for names that have samples).
    fn has_samples(&self, s: &SeriesForecast, family: Family) -> bool;

    /// Every exported sample of every family.
    fn for_each_sample(
        &self,
        buf: &mut Vec<(String, String)>,
        f: impl FnMut(&[(String, String)], f64),
    );

    /// Samples one snapshot exports.
    fn sample_count(&self) -> usize;
}

impl SnapshotSamples for Snapshot {
    fn scaling_samples(
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

    fn series_samples(
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
                            family.suffix_for(s.rate),
                            &[("horizon", &h.0), ("ml_forecast", kind)],
                            buf,
                        );
                        f(buf, value);
                    }
                }
            }
            Family::AnomalyScore | Family::AnomalyLikelihood | Family::Anomalous => {
                if let Some(a) = s.anomaly {
                    output_labels(&s.labels, family.suffix_for(s.rate), &[], buf);
                    let value = match family {
                        Family::AnomalyScore => a.score,
                        Family::AnomalyLikelihood => a.likelihood,
                        _ => a.direction as f64,
                    };
                    f(buf, value);
                }
            }
            Family::ForecastMase | Family::ForecastCoverage => {
                let horizons = &self.horizons[s.spec as usize];
                for (h, a) in horizons.iter().zip(&s.accuracy) {
                    let Some(a) = a else { continue };
                    let value = match family {
                        Family::ForecastMase => a.mase,
                        _ => a.coverage,
                    };
                    if !value.is_finite() {
                        continue;
                    }
                    output_labels(
                        &s.labels,
                        family.suffix_for(s.rate),
                        &[("horizon", &h.0)],
                        buf,
                    );
                    f(buf, value);
                }
            }
        }
    }

    /// Whether `s` has any sample of `family`.
    fn has_samples(&self, s: &SeriesForecast, family: Family) -> bool {
        let accuracy = |f: fn(&crate::snapshot::ForecastAccuracy) -> f64| {
            s.accuracy.iter().flatten().any(|a| f(a).is_finite())
        };
        match family {
            Family::Predicted => !s.points.is_empty(),
            Family::AnomalyScore | Family::AnomalyLikelihood | Family::Anomalous => {
                s.anomaly.is_some()
            }
            Family::ForecastMase => accuracy(|a| a.mase),
            Family::ForecastCoverage => accuracy(|a| a.coverage),
        }
    }

    fn for_each_sample(
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

    fn sample_count(&self) -> usize {
        self.exported()
            .map(|s| {
                let accuracy = s
                    .accuracy
                    .iter()
                    .flatten()
                    .map(|a| usize::from(a.mase.is_finite()) + usize::from(a.coverage.is_finite()))
                    .sum::<usize>();
                s.points.len() * ML_FORECAST.len()
                    + if s.anomaly.is_some() { 3 } else { 0 }
                    + accuracy
            })
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
