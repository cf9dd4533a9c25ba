//! `POST /api/v1/write`: Prometheus remote write in, 1.0 and 2.0 on the same path, chosen by
//! Content-Type (`application/x-protobuf;proto=io.prometheus.write.v2.Request` is 2.0; no
//! `proto` parameter or `proto=prometheus.WriteRequest` is 1.0). 2.0 answers carry the
//! spec's `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` headers:
//! samples counts every float sample accepted, including those promcast drops by design
//! (unselected series, its own outputs, samples older than the ring); native histograms and
//! exemplars are never stored, so they are reported as 0 written (histograms are counted in
//! `promcast_samples_dropped_total{reason="histogram"}`).
//!
//! Status codes decide what the sender does, so they are chosen with care:
//! - 204: stored (or deliberately dropped: unselected series, samples older than the ring,
//!   promcast's own output sent back).
//! - 400: the data can never succeed (malformed body, invalid labels, timestamps too far
//!   ahead); Prometheus drops the batch. Valid series of the same request are kept.
//! - 413: body too large compressed or decompressed. 415: not snappy-compressed protobuf, or
//!   a `proto` other than the two above.
//! - 503 with `Retry-After`: overload (too many requests at once, series limit reached, a
//!   body not delivered within `limits.body_timeout`, so slow clients cannot hold every
//!   slot); Prometheus retries, and merging makes the retry idempotent.
//!
//! Decoding and appending run synchronously in the handler (a typical request is tens of
//! microseconds of work), so every error reaches the status code. The handler is in
//! `handler.rs`, the refusals and their status codes in `error.rs`; this file turns a
//! decompressed body into appends ([`Ingest`], the request's `Batch`, validation).

pub mod backfill;
pub mod decode;
pub mod decode_v2;
mod error;
pub mod ha;
mod handler;

use std::cell::RefCell;
use std::sync::Arc;

use tokio::sync::Semaphore;

pub use crate::config::{valid_label_name, valid_metric_name};
use crate::config::{HaSpec, Limits};
use crate::store::{
    hash_labels_within, AppendStats, BatchItem, LabelHash, LabelRef, MetricType, Sample,
    SeriesMeta, Store,
};
use crate::telemetry::{Dropped, Telemetry};
use decode::{decode_labels, decode_write_request, DecodeError, DecodeSummary, Scratch};
use decode_v2::{decode_labels_v2, decode_write_request_v2, Refused, ScratchV2};
use ha::{HaTracker, Verdict};

pub use error::{IngestError, Protocol, Written};
pub use handler::{write_handler, EXEMPLARS_WRITTEN, HISTOGRAMS_WRITTEN, SAMPLES_WRITTEN};

/// Suffixes of the series promcast itself writes. A Prometheus that forwards everything it
/// receives would send them back; they are dropped so no forecast-of-a-forecast loop forms.
pub const OWN_OUTPUT_SUFFIXES: [&str; 7] = [
    ":predicted",
    ":forecast",
    ":forecast_mase",
    ":forecast_coverage",
    ":anomaly_score",
    ":anomaly_likelihood",
    ":anomalous",
];
/// The label every forecast series carries.
pub const FORECAST_LABEL: &str = "ml_forecast";

/// Whether a series is promcast's own output.
pub fn is_own_output(labels: &[LabelRef<'_>]) -> bool {
    labels.iter().any(|l| {
        l.name == FORECAST_LABEL.as_bytes()
            || (l.name == b"__name__"
                && OWN_OUTPUT_SUFFIXES
                    .iter()
                    .any(|s| l.value.ends_with(s.as_bytes())))
    })
}

/// What the write handler needs, and nothing else.
pub struct Ingest {
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    limits: Limits,
    in_flight: Semaphore,
    /// Deduplication of Prometheus HA pairs (`ha:`).
    ha: Option<HaTracker>,
}

thread_local! {
    /// Decompression buffer reused across requests on this thread.
    static DECOMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Requests bigger than this give their decompression buffer back afterwards.
const KEEP_BUFFER_BYTES: usize = 4 << 20;

impl Ingest {
    pub fn new(store: Arc<Store>, telemetry: Arc<Telemetry>, limits: Limits) -> Self {
        Self {
            store,
            telemetry,
            in_flight: Semaphore::new(limits.max_concurrent_writes),
            limits,
            ha: None,
        }
    }

    /// Keeps one replica's samples per Prometheus HA cluster (`ha:`; [`ha`]).
    pub fn with_ha(mut self, spec: Option<&HaSpec>) -> Self {
        self.ha = spec.map(|s| HaTracker::new(s, self.telemetry.ha_metrics()));
        self
    }

    /// Decompresses, decodes, validates and appends one snappy-compressed body of the given
    /// protocol.
    pub fn ingest_snappy(
        &self,
        compressed: &[u8],
        protocol: Protocol,
        now_ms: i64,
    ) -> Result<Written, IngestError> {
        let len = snap::raw::decompress_len(compressed).map_err(IngestError::Snappy)?;
        if len > self.limits.max_decompressed_bytes {
            return Err(IngestError::DecompressedTooLarge {
                got: len,
                limit: self.limits.max_decompressed_bytes,
            });
        }
        DECOMPRESSED.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.clear();
            buf.resize(len, 0);
            let n = snap::raw::Decoder::new()
                .decompress(compressed, &mut buf)
                .map_err(IngestError::Snappy)?;
            buf.truncate(n);
            let result = match protocol {
                Protocol::V1 => self.ingest_decoded(&buf, now_ms),
                Protocol::V2 => self.ingest_decoded_v2(&buf, now_ms),
            };
            if buf.capacity() > KEEP_BUFFER_BYTES {
                *buf = Vec::new();
            }
            result
        })
    }

    /// Decodes, validates and appends one uncompressed 1.0 `WriteRequest`.
    pub fn ingest_decoded(&self, buf: &[u8], now_ms: i64) -> Result<Written, IngestError> {
        let mut scratch = Scratch::default();
        let mut batch = Batch::new(Protocol::V1, buf, now_ms, &self.limits, self.ha.as_ref());
        let decoded = decode_write_request(buf, &mut scratch, |series| {
            let meta = SeriesMeta::default();
            let canonical = series.canonical_labels;
            batch.push(series.labels, canonical, series.samples, meta, series.raw);
        });
        if let Ok(summary) = &decoded {
            if summary.metadata > 0 {
                self.apply_metadata(buf);
            }
        }
        self.finish(batch, decoded, decode_labels)
    }

    /// Decodes, validates and appends one uncompressed 2.0 `io.prometheus.write.v2.Request`.
    pub fn ingest_decoded_v2(&self, buf: &[u8], now_ms: i64) -> Result<Written, IngestError> {
        let mut symbols = Vec::new();
        decode_v2::symbols(buf, &mut symbols).map_err(|e| IngestError::Decode(Protocol::V2, e))?;
        let mut scratch = ScratchV2::default();
        let mut batch = Batch::new(Protocol::V2, buf, now_ms, &self.limits, self.ha.as_ref());
        let mut index = 0usize;
        let decoded = decode_write_request_v2(buf, &symbols, &mut scratch, |series| {
            index += 1;
            match series {
                Ok(s) => {
                    let meta = SeriesMeta {
                        metric_type: s.metric_type,
                        created_ms: s.created_ms,
                    };
                    batch.push(s.labels, None, s.samples, meta, s.raw);
                }
                Err(refused) => batch.malformed(index - 1, refused),
            }
        });
        // Series with a broken reference were refused above; the rest resolve.
        self.finish(batch, decoded, |raw, labels| {
            decode_labels_v2(raw, &symbols, labels)
        })
    }

    /// Remembers the metric types of a 1.0 request's metadata.
    fn apply_metadata(&self, buf: &[u8]) {
        let mut entries = Vec::new();
        let _ = decode::decode_metadata(buf, |kind, name| {
            entries.push((MetricType::from_proto(kind), name));
        });
        self.telemetry
            .metadata_received
            .inc_by(entries.len() as u64);
        let switched = self.store.apply_metadata(entries);
        self.telemetry.series_type_changes.inc_by(switched as u64);
    }

    /// Appends a decoded request's series: those seen before in one pass, then the new ones
    /// after validation (their labels decoded again from their bytes with `labels_of`).
    fn finish<'a>(
        &self,
        mut b: Batch<'a>,
        decoded: Result<DecodeSummary, DecodeError>,
        labels_of: impl Fn(&'a [u8], &mut Vec<LabelRef<'a>>) -> Result<(), DecodeError>,
    ) -> Result<Written, IngestError> {
        let mut stats = AppendStats::default();
        // Series seen before were validated then: append (or drop) without re-checking.
        let mut new = Vec::new();
        self.store
            .append_known_batch(&b.items, &b.samples, b.now_ms, &mut stats, &mut new);
        let mut labels = Vec::new();
        for &i in &new {
            let (it, i) = (&b.items[i as usize], i as usize);
            labels.clear();
            // Decoded once already: cannot fail.
            if labels_of(b.raw[i], &mut labels).is_err() {
                continue;
            }
            let labels = normalize(&labels, is_normal(&labels, b.strip), &mut b.sorted, b.strip);
            let (start, len) = it.samples;
            let samples = &b.samples[start as usize..(start + len) as usize];
            if let Err(reason) = self.validate(labels) {
                b.invalid += samples.len() as u64;
                b.first_error.get_or_insert(reason);
                continue;
            }
            if is_own_output(labels) {
                b.own += samples.len() as u64;
                self.store.remember_unselected(it.hash.hash);
                continue;
            }
            self.store
                .append_with(it.hash, labels, samples, it.meta, b.now_ms, &mut stats);
        }
        let t = &self.telemetry;
        let mut written = Written::default();
        if let Ok(summary) = &decoded {
            t.samples_received.inc_by(summary.samples);
            t.dropped(Dropped::Histogram, summary.histograms);
            let refused = b.invalid + b.future + b.malformed + b.ha_limited + stats.series_limit;
            written.samples = summary.samples.saturating_sub(refused);
        }
        self.count(&stats);
        t.dropped(Dropped::OwnOutput, b.own);
        t.dropped(Dropped::InvalidLabels, b.invalid);
        t.dropped(Dropped::TooFarInFuture, b.future);
        t.dropped(Dropped::Malformed, b.malformed);
        t.dropped(Dropped::HaDuplicate, b.ha_duplicate);
        t.dropped(Dropped::HaClusterLimit, b.ha_limited);
        decoded.map_err(|e| IngestError::Decode(b.protocol, e))?;
        if let Some(message) = b.first_error {
            return Err(IngestError::Invalid {
                message,
                count: b.invalid + b.future + b.malformed + b.ha_limited,
                accepted: stats.appended + stats.merged,
                written,
            });
        }
        if stats.series_limit > 0 {
            return Err(IngestError::SeriesLimit {
                limit: self.limits.max_series,
                count: stats.series_limit,
            });
        }
        Ok(written)
    }

    fn count(&self, s: &AppendStats) {
        let t = &self.telemetry;
        t.samples_accepted.inc_by(s.appended + s.merged);
        t.samples_merged.inc_by(s.merged);
        t.stale_markers.inc_by(s.stale_markers);
        t.series_created.inc_by(s.series_created);
        t.series_type_changes.inc_by(s.kind_changes);
        t.dropped(Dropped::Unselected, s.unselected);
        t.dropped(Dropped::TooOld, s.too_old);
        t.dropped(Dropped::SeriesLimit, s.series_limit);
    }

    /// Checks a sorted label set against Prometheus' naming rules and the configured limits.
    fn validate(&self, labels: &[LabelRef<'_>]) -> Result<(), String> {
        let l = &self.limits;
        if labels.is_empty() {
            return Err("series without labels".into());
        }
        if labels.len() > l.max_labels_per_series {
            return Err(format!(
                "series {} has {} labels, more than limits.max_labels_per_series ({})",
                display_labels(labels),
                labels.len(),
                l.max_labels_per_series
            ));
        }
        let mut has_name = false;
        for (i, label) in labels.iter().enumerate() {
            if i > 0 && labels[i - 1].name == label.name {
                return Err(format!(
                    "duplicate label name {:?} in series {}",
                    String::from_utf8_lossy(label.name),
                    display_labels(labels)
                ));
            }
            if label.name.len() > l.max_label_name_length {
                return Err(format!(
                    "label name of {} bytes is longer than limits.max_label_name_length ({})",
                    label.name.len(),
                    l.max_label_name_length
                ));
            }
            if label.value.len() > l.max_label_value_length {
                return Err(format!(
                    "value of label {:?} has {} bytes, more than limits.max_label_value_length ({})",
                    String::from_utf8_lossy(label.name),
                    label.value.len(),
                    l.max_label_value_length
                ));
            }
            if !valid_label_name(label.name) {
                return Err(format!(
                    "invalid label name {:?}",
                    String::from_utf8_lossy(label.name)
                ));
            }
            if std::str::from_utf8(label.value).is_err() {
                return Err(format!(
                    "value of label {:?} is not valid UTF-8",
                    String::from_utf8_lossy(label.name)
                ));
            }
            if label.name == b"__name__" {
                has_name = true;
                if !valid_metric_name(label.value) {
                    return Err(format!(
                        "invalid metric name {:?}",
                        String::from_utf8_lossy(label.value)
                    ));
                }
            }
        }
        if !has_name {
            return Err(format!(
                "series {} has no metric name",
                display_labels(labels)
            ));
        }
        Ok(())
    }
}

/// A request's series between decoding and appending: each item's label hash and where its
/// samples lie in `samples`; `raw` holds each one's `TimeSeries` bytes, decoded again only
/// for the few series seen for the first time.
struct Batch<'a> {
    items: Vec<BatchItem>,
    raw: Vec<&'a [u8]>,
    samples: Vec<Sample>,
    sorted: Vec<LabelRef<'a>>,
    kept: Vec<Sample>,
    invalid: u64,
    future: u64,
    own: u64,
    malformed: u64,
    first_error: Option<String>,
    max_ts: i64,
    now_ms: i64,
    protocol: Protocol,
    /// The decompressed request, which the decoded labels borrow from.
    body: &'a [u8],
    ha: Option<&'a HaTracker>,
    /// The label dropped from every series (`ha.replica_label`).
    strip: Option<&'a [u8]>,
    /// The request's last HA cluster and replica and their verdict: a request comes from
    /// one Prometheus, so the tracker is asked about once per request.
    ha_last: Option<(&'a [u8], &'a [u8], Verdict)>,
    /// Samples of replicas that are not elected (dropped, 2xx).
    ha_duplicate: u64,
    /// Samples of clusters beyond `ha.max_clusters` (400).
    ha_limited: u64,
}

impl<'a> Batch<'a> {
    fn new(
        protocol: Protocol,
        body: &'a [u8],
        now_ms: i64,
        limits: &Limits,
        ha: Option<&'a HaTracker>,
    ) -> Self {
        Self {
            items: Vec::new(),
            raw: Vec::new(),
            samples: Vec::new(),
            sorted: Vec::new(),
            kept: Vec::new(),
            invalid: 0,
            future: 0,
            own: 0,
            malformed: 0,
            first_error: None,
            max_ts: now_ms.saturating_add(limits.max_future.as_millis() as i64),
            now_ms,
            protocol,
            body,
            ha,
            strip: ha.map(HaTracker::replica_label),
            ha_last: None,
            ha_duplicate: 0,
            ha_limited: 0,
        }
    }

    /// Whether a series' samples are kept, by the HA tracker's verdict on its replica
    /// (always, without `ha:` or a replica label); counts those it drops.
    fn ha_keeps(&mut self, labels: &[LabelRef<'a>], samples: u64) -> bool {
        let Some((ha, (cluster, replica))) = self.ha.and_then(|h| Some((h, h.identify(labels)?)))
        else {
            return true;
        };
        let verdict = match self.ha_last {
            Some((c, r, v)) if c == cluster && r == replica => v,
            _ => {
                let v = ha.check(cluster, replica, self.now_ms);
                self.ha_last = Some((cluster, replica, v));
                v
            }
        };
        match verdict {
            Verdict::Accept => return true,
            Verdict::Duplicate => self.ha_duplicate += samples,
            Verdict::TooManyClusters => {
                self.ha_limited += samples;
                self.first_error.get_or_insert_with(|| {
                    format!(
                        "HA cluster {:?} refused: ha.max_clusters ({}) clusters are tracked and none has been idle for ha.failover_timeout",
                        String::from_utf8_lossy(cluster),
                        ha.max_clusters()
                    )
                });
            }
        }
        false
    }

    /// One decoded series. Prometheus sends labels sorted, without empty values, in the
    /// canonical encoding (`canonical`, 1.0 only): hashed as they lie in the request.
    /// Anything else is normalised into a copy rather than refused.
    fn push(
        &mut self,
        labels: &[LabelRef<'a>],
        canonical: Option<&[u8]>,
        samples: &[Sample],
        meta: SeriesMeta,
        raw: &'a [u8],
    ) {
        if samples.is_empty() || !self.ha_keeps(labels, samples.len() as u64) {
            return;
        }
        let (normal, strip) = (is_normal(labels, self.strip), self.strip);
        let hash = match canonical {
            Some(bytes) if normal => LabelHash::of_canonical(bytes),
            _ => hash_labels_within(
                normalize(labels, normal, &mut self.sorted, strip),
                self.body,
            ),
        };
        let mut series_samples = samples;
        if series_samples.iter().any(|s| s.timestamp > self.max_ts) {
            self.kept.clear();
            let max_ts = self.max_ts;
            self.kept
                .extend(series_samples.iter().filter(|s| s.timestamp <= max_ts));
            self.future += (series_samples.len() - self.kept.len()) as u64;
            let sorted = &mut self.sorted;
            self.first_error.get_or_insert_with(|| {
                format!(
                    "sample timestamp more than limits.max_future ahead of now for series {}",
                    display_labels(normalize(labels, normal, sorted, strip))
                )
            });
            series_samples = &self.kept;
        }
        if series_samples.is_empty() {
            return;
        }
        self.items.push(BatchItem {
            hash,
            samples: (self.samples.len() as u32, series_samples.len() as u32),
            meta,
        });
        self.raw.push(raw);
        self.samples.extend_from_slice(series_samples);
    }

    /// A 2.0 series refused whole (`index`: its position in the request).
    fn malformed(&mut self, index: usize, refused: Refused) {
        self.malformed += refused.samples as u64;
        self.first_error
            .get_or_insert_with(|| format!("timeseries[{index}]: {}", refused.error));
    }
}

/// Whether labels are sorted by name and have no empty value, as Prometheus sends them, and
/// none is named `strip` (the HA replica label).
fn is_normal(labels: &[LabelRef<'_>], strip: Option<&[u8]>) -> bool {
    labels.is_sorted_by(|a, b| name_less(a.name, b.name))
        && labels
            .iter()
            .all(|l| !l.value.is_empty() && Some(l.name) != strip)
}

/// The labels sorted by name without empty values and without `strip`: `labels` itself when
/// [`is_normal`], else a copy in `buf`.
fn normalize<'s, 'a>(
    labels: &'s [LabelRef<'a>],
    normal: bool,
    buf: &'s mut Vec<LabelRef<'a>>,
    strip: Option<&[u8]>,
) -> &'s [LabelRef<'a>] {
    if normal {
        return labels;
    }
    buf.clear();
    buf.extend(
        labels
            .iter()
            .filter(|l| !l.value.is_empty() && Some(l.name) != strip),
    );
    buf.sort_by(|a, b| a.name.cmp(b.name));
    buf
}

/// `a < b`, deciding on the first byte where it can (label names nearly always differ there)
/// rather than calling `memcmp` for every pair.
#[inline]
fn name_less(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

fn display_labels(labels: &[LabelRef<'_>]) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().take(8).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&String::from_utf8_lossy(&l.name[..l.name.len().min(64)]));
        s.push_str("=\"");
        s.push_str(&String::from_utf8_lossy(&l.value[..l.value.len().min(64)]));
        s.push('"');
    }
    if labels.len() > 8 {
        s.push_str(", ...");
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_label_name(b"job"));
        assert!(valid_label_name(b"_x1"));
        assert!(!valid_label_name(b"1x"));
        assert!(!valid_label_name(b"a:b"));
        assert!(!valid_label_name(b""));
        assert!(valid_metric_name(b"job:http:rate5m"));
        assert!(!valid_metric_name(b"a-b"));
    }

    /// The relabel rules we ship (examples, deploy manifests, the Prometheus configs inside
    /// Kubernetes ConfigMaps) that drop promcast's forecasts on their way back must drop
    /// every family it exports, not only `:predicted`: each drop rule on `__name__` that
    /// matches `x:predicted` matches `x<suffix>` and `x:rate<suffix>` for every suffix of
    /// [`OWN_OUTPUT_SUFFIXES`].
    #[test]
    fn shipped_relabel_rules_drop_every_output_family() {
        fn rules(v: &serde_yaml_ng::Value, out: &mut Vec<String>) {
            use serde_yaml_ng::Value;
            match v {
                Value::Mapping(m) => {
                    let get = |k: &str| m.get(Value::from(k));
                    let on_name = ["source_labels", "sourceLabels"].iter().any(|k| {
                        get(k)
                            .and_then(|l| l.as_sequence())
                            .is_some_and(|l| l.len() == 1 && l[0].as_str() == Some("__name__"))
                    });
                    if on_name && get("action").and_then(|a| a.as_str()) == Some("drop") {
                        if let Some(r) = get("regex").and_then(|r| r.as_str()) {
                            out.push(r.to_string());
                        }
                    }
                    m.values().for_each(|x| rules(x, out));
                }
                Value::Sequence(s) => s.iter().for_each(|x| rules(x, out)),
                // A Prometheus config inside a ConfigMap is a string holding YAML.
                Value::String(text) if text.contains("action:") => {
                    if let Ok(inner) = serde_yaml_ng::from_str::<Value>(text) {
                        rules(&inner, out);
                    }
                }
                _ => {}
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![
            root.join("examples/prometheus.yml"),
            root.join("examples/prometheus3.yml"),
        ];
        // Every manifest under deploy/ (the kustomize base, overlays and components).
        let mut dirs = vec![root.join("deploy")];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                    files.push(p);
                }
            }
        }
        files.sort();
        let mut checked = 0;
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                use serde::Deserialize;
                let Ok(v) = serde_yaml_ng::Value::deserialize(doc) else {
                    continue;
                };
                let mut found = Vec::new();
                rules(&v, &mut found);
                for r in found {
                    let re = regex::Regex::new(&format!("^(?:{r})$")).unwrap();
                    if !re.is_match("job:x:predicted") {
                        continue;
                    }
                    checked += 1;
                    for suffix in OWN_OUTPUT_SUFFIXES {
                        for name in [format!("job:x{suffix}"), format!("job:x:rate{suffix}")] {
                            assert!(
                                re.is_match(&name),
                                "{}: the drop rule {r:?} lets {name} back in",
                                path.display()
                            );
                        }
                    }
                }
            }
        }
        // examples/prometheus.yml (2), prometheus3.yml, the sidecar (2), the sharded
        // deployment (2), prometheus-remote-write.yaml
        assert!(checked >= 8, "only {checked} drop rules found in {files:?}");
    }

    #[test]
    fn own_output_is_recognised() {
        assert!(is_own_output(&[LabelRef::new("__name__", "a:b:predicted")]));
        assert!(is_own_output(&[
            LabelRef::new("__name__", "x"),
            LabelRef::new("ml_forecast", "yhat")
        ]));
        assert!(!is_own_output(&[LabelRef::new(
            "__name__",
            "a:predicted_total"
        )]));
    }
}
