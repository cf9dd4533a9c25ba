//! Metric types, and counters stored as per-second rates.
//!
//! A series' type comes from, in order: the metadata of its own remote-write 2.0 series, the
//! remote-write 1.0 metadata Prometheus sends for its metric family (`metadata_config`), and
//! its name (`_total`, `_count`, `_sum`, `_bucket` are counters). A counter selected by an
//! entry with `counters: rate` (the default) is stored as its per-second rate over each step,
//! reset-aware like PromQL's `rate`:
//!
//! - the rate of bucket `b` is the increase from the last sample of the bucket before it (or
//!   of the newest earlier bucket, across a gap) to the newest sample of `b`, divided by the
//!   seconds between those two samples: `rate(N[r])` evaluated at that newest sample with `r`
//!   reaching back exactly to the earlier one;
//! - a drop is a reset: the sample after it counts from zero (its increase is its value);
//! - a created timestamp (remote write 2.0) newer than the previous sample is a reset even
//!   when the value did not drop;
//! - the first sample of a series only sets the start: its bucket stays empty.
//!
//! Samples of a counter must arrive in order: one older than the newest already seen
//! (a retry, a late write) cannot enter the chain of increases and is counted as merged.

/// A metric family's type, numbered as in both remote-write protos' enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricType {
    #[default]
    Unknown,
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
}

impl MetricType {
    /// From the enum number of `prometheus.MetricMetadata.MetricType` or
    /// `io.prometheus.write.v2.Metadata.MetricType` (the same numbers).
    pub fn from_proto(n: u64) -> Self {
        match n {
            1 => MetricType::Counter,
            2 => MetricType::Gauge,
            3 => MetricType::Histogram,
            4 => MetricType::GaugeHistogram,
            5 => MetricType::Summary,
            6 => MetricType::Info,
            7 => MetricType::StateSet,
            _ => MetricType::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }
}

/// Name suffixes of cumulative series: counters, and the `_count`/`_sum`/`_bucket` series of
/// classic histograms and summaries.
const CUMULATIVE_SUFFIXES: [&[u8]; 4] = [b"_total", b"_count", b"_sum", b"_bucket"];

/// `name` without its cumulative suffix (`http_requests` of `http_requests_total`), if it has one.
pub fn cumulative_stem(name: &[u8]) -> Option<&[u8]> {
    CUMULATIVE_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(*s))
}

/// Whether the series named `name` is cumulative (only grows, resets to zero), given the
/// type its own metadata says (`own`, remote write 2.0) and a lookup of the metadata table by
/// metric family name (remote write 1.0).
pub fn is_cumulative(
    name: &[u8],
    own: MetricType,
    family: impl Fn(&[u8]) -> Option<MetricType>,
) -> bool {
    let by_type = |t: MetricType, suffixed: bool| match t {
        MetricType::Counter => Some(true),
        // `foo_count`, `foo_sum`, `foo_bucket` of a histogram or summary `foo`.
        MetricType::Histogram | MetricType::Summary => Some(suffixed),
        MetricType::Unknown => None,
        _ => Some(false),
    };
    let stem = cumulative_stem(name);
    // `_count`, `_sum`, `_bucket`: a histogram's or summary's cumulative series.
    let of_histogram = stem.is_some() && !name.ends_with(b"_total");
    if let Some(v) = by_type(own, of_histogram) {
        return v;
    }
    if let Some(v) = family(name).and_then(|t| by_type(t, false)) {
        return v;
    }
    if let Some(v) = stem.and_then(&family).and_then(|t| by_type(t, true)) {
        return v;
    }
    stem.is_some()
}

/// The raw state a counter series keeps to turn its samples into rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterState {
    /// The newest sample seen (timestamp ms, value), if any.
    last: Option<(i64, f64)>,
    /// Timestamp of the sample the head bucket's rate counts from.
    anchor_ts: i64,
    /// Increase since the anchor.
    increase: f64,
    /// Bucket of the rate being accumulated.
    bucket: i64,
}

/// What one counter sample gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateStep {
    /// The rate of `bucket` (new or updated), from the newest sample at `ts`.
    Rate { bucket: i64, ts: i64, rate: f64 },
    /// The first sample: only a start.
    Start,
    /// Not newer than the newest sample seen: ignored.
    Old,
}

impl Default for CounterState {
    fn default() -> Self {
        Self::new()
    }
}

impl CounterState {
    pub const fn new() -> Self {
        Self {
            last: None,
            anchor_ts: 0,
            increase: 0.0,
            bucket: i64::MIN,
        }
    }

    /// Timestamp of the newest sample seen.
    pub fn last_ts(&self) -> Option<i64> {
        self.last.map(|(ts, _)| ts)
    }

    /// Feeds one sample (in bucket `bucket`); `created_ms` is the series' created timestamp
    /// when the sender gave one.
    pub fn push(&mut self, bucket: i64, ts: i64, value: f64, created_ms: Option<i64>) -> RateStep {
        if !value.is_finite() {
            return RateStep::Old;
        }
        let Some((last_ts, last_v)) = self.last else {
            self.last = Some((ts, value));
            self.bucket = bucket;
            self.anchor_ts = ts;
            return RateStep::Start;
        };
        if ts <= last_ts {
            return RateStep::Old;
        }
        let reset = value < last_v || created_ms.is_some_and(|c| c > last_ts);
        let delta = if reset { value } else { value - last_v };
        if bucket != self.bucket {
            self.bucket = bucket;
            self.anchor_ts = last_ts;
            self.increase = 0.0;
        }
        self.increase += delta;
        self.last = Some((ts, value));
        let seconds = (ts - self.anchor_ts) as f64 / 1000.0;
        RateStep::Rate {
            bucket,
            ts,
            rate: self.increase / seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_metadata_then_family_then_name() {
        let none = |_: &[u8]| None;
        assert!(is_cumulative(
            b"http_requests_total",
            MetricType::Unknown,
            none
        ));
        assert!(is_cumulative(
            b"rpc_duration_seconds_count",
            MetricType::Unknown,
            none
        ));
        assert!(!is_cumulative(b"job:req:rate5m", MetricType::Unknown, none));
        assert!(is_cumulative(b"served", MetricType::Counter, none));
        assert!(!is_cumulative(b"odd_total", MetricType::Gauge, none));
        // Metadata by family name (RW1): an exact match, or the histogram's stem.
        let family = |n: &[u8]| match n {
            b"served" => Some(MetricType::Counter),
            b"temp_total" => Some(MetricType::Gauge),
            b"latency" => Some(MetricType::Histogram),
            _ => None,
        };
        assert!(is_cumulative(b"served", MetricType::Unknown, family));
        assert!(!is_cumulative(b"temp_total", MetricType::Unknown, family));
        assert!(is_cumulative(
            b"latency_bucket",
            MetricType::Unknown,
            family
        ));
        assert!(!is_cumulative(b"latency", MetricType::Unknown, family));
        // RW2's own metadata on a histogram's series.
        assert!(is_cumulative(b"latency_sum", MetricType::Histogram, none));
    }

    /// Samples every 15 s, buckets of 60 s, two resets: every rate is the increase since the
    /// previous bucket's last sample over the seconds between them.
    #[test]
    fn rates_are_reset_aware() {
        let mut c = CounterState::new();
        let samples = [
            (0, 10.0),
            (15, 16.0),
            (30, 22.0),
            (45, 28.0),
            (60, 34.0),
            (75, 4.0), // reset: counts 4 from zero
            (90, 10.0),
            (105, 16.0),
            (120, 22.0),
            (135, 1.0), // reset
        ];
        let mut rates = Vec::new();
        for (s, v) in samples {
            let ts = s * 1000;
            if let RateStep::Rate { bucket, rate, .. } = c.push(ts / 60_000, ts, v, None) {
                rates.push((bucket, rate));
            }
        }
        // Bucket 0: 6+6+6 over 45 s from the first sample.
        assert_eq!(rates[2], (0, 18.0 / 45.0));
        // Bucket 1: from t=45 (28) to t=105: 6 + 4 + 6 + 6 = 22 over 60 s.
        assert_eq!(rates[6], (1, 22.0 / 60.0));
        // Bucket 2: from t=105 (16): 6 + 1 over 30 s.
        assert_eq!(rates[8], (2, 7.0 / 30.0));
        assert_eq!(c.push(2, 135_000, 1.0, None), RateStep::Old);
    }

    #[test]
    fn created_timestamp_marks_a_reset_the_values_hide() {
        let mut c = CounterState::new();
        c.push(0, 0, 100.0, Some(-50_000));
        // The process restarted at t=5 s and counted past 100 by t=15 s.
        let step = c.push(0, 15_000, 130.0, Some(5_000));
        assert_eq!(
            step,
            RateStep::Rate {
                bucket: 0,
                ts: 15_000,
                rate: 130.0 / 15.0
            }
        );
        // Without the created timestamp it looks like an increase of 30.
        let mut c = CounterState::new();
        c.push(0, 0, 100.0, None);
        assert!(
            matches!(c.push(0, 15_000, 130.0, None), RateStep::Rate { rate, .. } if rate == 2.0)
        );
    }
}
