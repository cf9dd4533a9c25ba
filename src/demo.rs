//! `promcast demo`: the agent on its embedded defaults plus one scaling target, fed real
//! traces shipped in the binary (`examples/demo/`, cut by `scripts/demo-data.py`), so that a
//! newcomer sees forecasts, bands, anomaly scores and a replica recommendation move on the
//! web page within a minute, with nothing else installed.
//!
//! Time: the agent runs on an accelerated [`Clock`] (`--speed 60`: one minute per second).
//! Each trace's history before its `live_from` point (as much as `storage.retention` keeps)
//! is loaded at once through the backfill path; the rest is replayed live, one remote-write
//! 1.0 request per step through the path Prometheus' requests take after HTTP (snappy,
//! decode, validate, append). Traces with a longer step than the agent's (NAB's 5 minutes)
//! hold each value until the next, as a Prometheus scraping such a gauge every minute sees it.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use prost::Message as _;

use crate::config::{Config, DEFAULT_CONFIG_YAML};
use crate::ingest::{Ingest, Protocol};
use crate::proto::prometheus as pb;
use crate::store::{AppendStats, Clock, LabelRef, Sample};

/// A shipped trace: series name, labels, unit conversion, file.
type Shipped = (
    &'static str,
    &'static [(&'static str, &'static str)],
    f64,
    &'static str,
);

const TRACES: [Shipped; 3] = [
    (
        "job:http_requests:rate1m",
        &[("job", "nasa-http"), ("source", "NASA-HTTP Jul 1995")],
        1.0 / 60.0,
        include_str!("../examples/demo/nasa_http.txt"),
    ),
    (
        "instance:cpu_utilization:ratio",
        &[
            ("instance", "ec2-5f5533"),
            ("source", "NAB realAWSCloudwatch"),
        ],
        0.01,
        include_str!("../examples/demo/ec2_cpu_utilization_5f5533.txt"),
    ),
    (
        "topic:tweets:rate5m",
        &[("topic", "AMZN"), ("source", "NAB realTweets")],
        1.0 / 300.0,
        include_str!("../examples/demo/twitter_volume_amzn.txt"),
    ),
];

/// The demo's scaling target, appended to the embedded defaults: the NASA web servers, each
/// serving half a request per second (July 1995's weekday peaks need five or six).
const SCALING_YAML: &str = r#"
scaling:
  - name: nasa-web
    series: 'job:http_requests:rate1m{job="nasa-http"}'
    capacity_per_replica: 0.5
    min_replicas: 1
    max_replicas: 20
    lead_time: 2m
"#;

/// The flags of `promcast demo` beyond the agent's.
#[derive(clap::Args)]
pub struct DemoOptions {
    /// How many times faster than real time the traces are replayed (60: a minute of trace
    /// per second, an hour a minute).
    #[arg(long, default_value_t = 60.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Feed each trace this many times (label `copy`), to look at the page with many series.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub copies: u32,
}

/// `--speed`: from 1 to 3600 times real time.
fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (1.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?}: a speed from 1 to 3600 (60 replays a minute of trace per second)"
        )),
    }
}

/// The page's URL fragment that selects the NASA series (its selector, percent-encoded).
pub const FIRST_SERIES_FRAGMENT: &str = "%7B__name__%3D%22job%3Ahttp_requests%3Arate1m%22%2Cjob%3D%22nasa-http%22%2Csource%3D%22NASA-HTTP%20Jul%201995%22%7D";

/// The embedded defaults plus the demo's scaling target.
pub fn config() -> Config {
    Config::from_yaml(
        &format!("{DEFAULT_CONFIG_YAML}{SCALING_YAML}"),
        "<demo defaults>",
        None,
    )
    .expect("the demo config is valid")
}

/// One recorded series: values every `step_s` from `start_s`, live from `live_from`.
#[derive(Debug, Clone)]
pub struct Trace {
    pub name: &'static str,
    pub labels: Vec<(String, String)>,
    values: Vec<f64>,
    step_ms: i64,
    live_from: usize,
    /// Where it came from (the file's `source:` line).
    pub source: String,
}

impl Trace {
    /// Parses a shipped file: `# key: value` header lines, then one value per line.
    fn parse(name: &'static str, scale: f64, text: &str) -> anyhow::Result<Self> {
        let mut header = std::collections::HashMap::new();
        let mut values = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if let Some(h) = line.strip_prefix("# ") {
                if let Some((k, v)) = h.split_once(": ") {
                    header.insert(k, v);
                }
            } else if !line.trim().is_empty() {
                let v: f64 = line
                    .trim()
                    .parse()
                    .with_context(|| format!("{name}: line {}: {line:?}", i + 1))?;
                values.push(v * scale);
            }
        }
        let field = |k: &str| -> anyhow::Result<i64> {
            header
                .get(k)
                .with_context(|| format!("{name}: no `# {k}:` line"))?
                .parse()
                .with_context(|| format!("{name}: `# {k}:`"))
        };
        let (step_s, live_from) = (field("step")?, field("live_from")?);
        if step_s <= 0 || live_from <= 0 || live_from as usize >= values.len() {
            bail!(
                "{name}: step {step_s}, live_from {live_from} of {} values",
                values.len()
            );
        }
        Ok(Self {
            name,
            labels: Vec::new(),
            values,
            step_ms: step_s * 1000,
            live_from: live_from as usize,
            source: header.get("source").unwrap_or(&"").to_string(),
        })
    }

    /// The value at `offset_ms` from the start of the live replay (negative: history), held
    /// from the trace's point at or before it; `None` outside the recording.
    pub fn value_at(&self, offset_ms: i64) -> Option<f64> {
        let i = self.live_from as i64 + offset_ms.div_euclid(self.step_ms);
        usize::try_from(i)
            .ok()
            .and_then(|i| self.values.get(i))
            .copied()
    }

    /// Milliseconds of live replay.
    pub fn live_ms(&self) -> i64 {
        (self.values.len() - self.live_from) as i64 * self.step_ms
    }
}

/// The shipped traces, each `copies` times (label `copy` from 1 when more than one: to
/// look at the page with many series).
pub fn traces(copies: usize) -> Vec<Trace> {
    let shipped: Vec<Trace> = TRACES
        .iter()
        .map(|&(name, labels, scale, text)| {
            let mut t = Trace::parse(name, scale, text).expect("shipped demo traces parse");
            t.labels = labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            t
        })
        .collect();
    let mut out = Vec::with_capacity(shipped.len() * copies.max(1));
    for copy in 1..=copies.max(1) {
        for t in &shipped {
            let mut t = t.clone();
            if copies > 1 {
                t.labels.push(("copy".into(), copy.to_string()));
            }
            out.push(t);
        }
    }
    out
}

/// The demo's feed: its traces, aligned so that their live parts start at `live_ms` on the
/// agent's clock.
pub struct Replay {
    traces: Vec<Trace>,
    live_ms: i64,
    step_ms: i64,
}

impl Replay {
    /// Starts the live part at the current step boundary of `clock`.
    pub fn new(traces: Vec<Trace>, clock: &Clock, step_ms: i64) -> Self {
        let live_ms = clock.now_ms().div_euclid(step_ms) * step_ms;
        Self {
            traces,
            live_ms,
            step_ms,
        }
    }

    /// A remote-write 1.0 request with every trace's value at `t` (ms on the agent's clock).
    fn request(&self, t: i64) -> pb::WriteRequest {
        let timeseries = self
            .traces
            .iter()
            .filter_map(|tr| {
                let value = tr.value_at(t - self.live_ms)?;
                Some(pb::TimeSeries {
                    labels: wire_labels(tr),
                    samples: vec![pb::Sample {
                        value,
                        timestamp: t,
                    }],
                })
            })
            .collect();
        pb::WriteRequest {
            timeseries,
            ..Default::default()
        }
    }

    /// Loads each trace's history (`retention_ms` of it before the live part): the series are
    /// created by a remote-write request with their newest history point, then the rest
    /// fills their rings through [`crate::store::Store::backfill`].
    pub fn load_history(&self, ingest: &Ingest, retention_ms: i64) -> anyhow::Result<u64> {
        let now = ingest.store.clock().now_ms();
        send(ingest, &self.request(self.live_ms - self.step_ms), now)?;
        let mut stats = AppendStats::default();
        for tr in &self.traces {
            let samples: Vec<Sample> = (1..=retention_ms / self.step_ms)
                .rev()
                .filter_map(|k| {
                    let t = self.live_ms - k * self.step_ms;
                    let value = tr.value_at(t - self.live_ms)?;
                    Some(Sample {
                        value,
                        timestamp: t,
                    })
                })
                .collect();
            let labels = wire_labels(tr);
            let refs: Vec<LabelRef<'_>> = labels
                .iter()
                .map(|l| LabelRef::new(&l.name, &l.value))
                .collect();
            ingest.store.backfill(&refs, &samples, now, &mut stats);
        }
        Ok(stats.appended + stats.merged)
    }

    /// Replays the live part: at each step boundary of the agent's clock, one request with
    /// every trace's value (catching up on any boundary missed). Returns when every trace
    /// has ended.
    pub async fn run(self, ingest: Arc<Ingest>) {
        let clock = *ingest.store.clock();
        let end = self.live_ms + self.traces.iter().map(Trace::live_ms).max().unwrap_or(0);
        let mut next = self.live_ms;
        while next < end {
            tokio::time::sleep(clock.wall_until(next)).await;
            let now = clock.now_ms();
            while next <= now && next < end {
                if let Err(e) = send(&ingest, &self.request(next), now) {
                    tracing::warn!(error = %e, "demo replay: request refused");
                }
                next += self.step_ms;
            }
        }
        tracing::info!("demo replay finished: the traces have ended; the agent keeps serving");
    }
}

/// The trace's labels as Prometheus sends them: `__name__` and the rest, sorted by name.
fn wire_labels(tr: &Trace) -> Vec<pb::Label> {
    let mut labels: Vec<pb::Label> = std::iter::once(("__name__", tr.name))
        .chain(tr.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .map(|(name, value)| pb::Label {
            name: name.into(),
            value: value.into(),
        })
        .collect();
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels
}

/// Encodes and compresses `req` and hands it to the ingest path.
fn send(ingest: &Ingest, req: &pb::WriteRequest, now_ms: i64) -> anyhow::Result<()> {
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .context("snappy")?;
    ingest
        .ingest_snappy(&body, Protocol::V1, now_ms)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_traces_parse_and_hold_values_between_points() {
        let traces = traces(1);
        assert_eq!(traces.len(), TRACES.len());
        let nasa = &traces[0];
        // NASA: one value a minute, 4.75 days live.
        assert_eq!(nasa.live_ms(), (14 * 1440 - 13_320) * 60_000);
        let ec2 = &traces[1];
        // NAB: 5-minute points held for five 1-minute steps.
        let at = |m: i64| ec2.value_at(m * 60_000).unwrap();
        assert_eq!(at(0), at(4));
        assert_ne!(at(0), at(5));
        assert!(ec2.value_at(-(1_247 * 5 + 1) * 60_000).is_none());
        assert!(ec2.value_at(ec2.live_ms()).is_none());
        assert!(traces.iter().all(|t| t.source.starts_with("shared/data/")));
        let copies = super::traces(3);
        assert_eq!(copies.len(), 9);
        assert_eq!(
            copies[8].labels.last().unwrap(),
            &("copy".into(), "3".into())
        );
    }

    #[test]
    fn the_printed_url_selects_the_scaling_targets_series() {
        // The page's selector of the NASA series: every label, sorted, quoted.
        let nasa = &traces(1)[0];
        let mut labels = wire_labels(nasa);
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let selector = format!(
            "{{{}}}",
            labels
                .iter()
                .map(|l| format!("{}=\"{}\"", l.name, l.value))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut decoded = Vec::new();
        let mut bytes = FIRST_SERIES_FRAGMENT.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex: String = [bytes.next().unwrap(), bytes.next().unwrap()]
                    .iter()
                    .map(|&c| c as char)
                    .collect();
                decoded.push(u8::from_str_radix(&hex, 16).unwrap());
            } else {
                decoded.push(b);
            }
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), selector);
        let config = config();
        assert!(config.scaling[0].selector.matches(|n| labels
            .iter()
            .find(|l| l.name == n)
            .map(|l| l.value.as_str())));
    }

    #[test]
    fn demo_config_selects_every_trace_and_has_a_scaling_target() {
        let config = config();
        assert_eq!(config.scaling.len(), 1);
        for tr in traces(1) {
            let labels: Vec<pb::Label> = wire_labels(&tr);
            let get = |n: &str| {
                labels
                    .iter()
                    .find(|l| l.name == n)
                    .map(|l| l.value.as_str())
            };
            assert!(
                config.forecast.iter().any(|f| f.selector.matches(get)),
                "{} is not selected by the defaults",
                tr.name
            );
        }
    }
}
