//! Remote-write load generator (1.0, or 2.0 with `--protocol 2.0`): realistic traffic for any
//! receiver (promcast, vmagent, VictoriaMetrics, Prometheus' receiver), with what the receiver
//! accepted.
//!
//! ```sh
//! cargo run --release --example loadgen -- --url http://127.0.0.1:9201/api/v1/write \
//!     --series 10000 --labels 8 --samples-per-request 2000 --concurrency 4 --duration 30s
//! ```
//!
//! Traffic: `--series` series named `loadgen:metric_<k>:rate1m` (colon names, as recording
//! rules write them, so promcast's default selector keeps them), each with `--labels` more
//! labels (`job`, `instance`, `pod`, `namespace`, ... with realistic values). Every round sends
//! one sample per series, in requests of `--samples-per-request` samples (Prometheus' default
//! `max_samples_per_send` is 2000), snappy-compressed as Prometheus sends them. A round's
//! timestamp is the wall clock (less `--start-ago`), and at least 1 ms after the previous
//! round's, so timestamps increase per series and never run ahead of the clock. Each series
//! always goes out from the same connection, in order, as one Prometheus shard would send it.
//!
//! `--protocol 2.0` sends the same series, labels, samples and requests as remote-write 2.0
//! (`io.prometheus.write.v2.Request`, Content-Type
//! `application/x-protobuf;proto=io.prometheus.write.v2.Request`,
//! `X-Prometheus-Remote-Write-Version: 2.0.0`): one symbol table per request (`symbols[0]` is
//! `""`, then every label name and value of the request's series once), each series' labels as
//! sorted name/value references, and `Metadata { type: GAUGE }` as a Prometheus 3 sender
//! writes it. A request always holds the same series, so its symbol table and every series'
//! references are built once at start; only the samples are encoded per round. A 2xx answer
//! must carry `X-Prometheus-Remote-Write-Samples-Written` equal to the samples sent; answers
//! where it is missing or differs are counted (and the first few printed on stderr).
//!
//! Prints a summary (and with `--json` one JSON line): requests and samples by status,
//! accepted samples per second, request latency p50/p90/p99/max. With `--retry`, requests
//! answered 429 or 5xx are sent again with backoff, as Prometheus does, and counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(about = "Remote-write 1.0/2.0 load generator")]
struct Args {
    /// Receiver URL (`.../api/v1/write`).
    #[arg(long)]
    url: String,
    /// Remote-write protocol: `1.0` (`prometheus.WriteRequest`) or `2.0`
    /// (`io.prometheus.write.v2.Request`).
    #[arg(long, default_value = "1.0", value_parser = ["1.0", "2.0"])]
    protocol: String,
    /// Distinct series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Labels per series besides `__name__`.
    #[arg(long, default_value_t = 8)]
    labels: usize,
    /// Samples per request.
    #[arg(long = "samples-per-request", default_value_t = 2000)]
    samples_per_request: usize,
    /// Requests in flight (connections).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long to send (e.g. `30s`, `2m`); with `--requests`, whichever comes first.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Requests to send in all.
    #[arg(long)]
    requests: Option<u64>,
    /// Target rate in samples per second (all connections together); default: as fast as
    /// the receiver takes them.
    #[arg(long)]
    rate: Option<f64>,
    /// How far behind the wall clock the timestamps run.
    #[arg(long = "start-ago", default_value = "0s", value_parser = parse_duration)]
    start_ago: Duration,
    /// Re-send requests answered 429/5xx (or failed to connect), with backoff 30 ms..5 s.
    #[arg(long)]
    retry: bool,
    /// `Authorization: Bearer <token>`.
    #[arg(long = "bearer-token")]
    bearer_token: Option<String>,
    /// Print one JSON line with the results.
    #[arg(long)]
    json: bool,
    /// Interval of the progress line on stderr (`0s`: none).
    #[arg(long = "progress", default_value = "5s", value_parser = parse_duration)]
    progress: Duration,
    /// The receiver's process id: progress lines add its RSS and CPU use (from /proc).
    #[arg(long = "watch-pid")]
    watch_pid: Option<u32>,
}

/// RSS (KiB) and CPU time (s) of a process, from /proc.
fn proc_usage(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name (which may hold spaces): utime is the 14th field
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((rss, ticks / 100.0))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    promcast::config::parse_duration(s).map_err(|e| e.to_string())
}

/// Protobuf varint.
fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn len_field(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(buf, ((field << 3) | 2) as u64);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// The labels of series `i`, sorted by name (`__name__` first).
fn series_labels(i: usize, labels: usize) -> Vec<(String, String)> {
    const NAMES: [&str; 12] = [
        "cluster",
        "container",
        "endpoint",
        "instance",
        "job",
        "namespace",
        "node",
        "pod",
        "region",
        "service",
        "team",
        "zone",
    ];
    let mut pairs: Vec<(String, String)> = vec![(
        "__name__".into(),
        format!("loadgen:metric_{}:rate1m", i % 50),
    )];
    let group = i / 50;
    for k in 0..labels {
        let name = NAMES
            .get(k)
            .map_or_else(|| format!("label_{k}"), |n| n.to_string());
        let value = match name.as_str() {
            "instance" => format!("10.{}.{}.{}:9100", group % 200, (group / 200) % 250, k),
            "pod" => format!(
                "web-{:08x}-{:05}",
                (group as u64).wrapping_mul(2654435761),
                group
            ),
            "job" => "kubernetes-pods".to_string(),
            "namespace" => format!("team-{}", group % 40),
            "zone" => format!("eu-west-1{}", ["a", "b", "c"][group % 3]),
            _ => format!("{name}-{}", group % 97),
        };
        pairs.push((name, value));
    }
    pairs.sort();
    pairs
}

/// 1.0: the encoded `Label` fields (field 1 of `prometheus.TimeSeries`) of a series.
fn encode_labels_v1(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in pairs {
        let mut l = Vec::new();
        len_field(&mut l, 1, n.as_bytes());
        len_field(&mut l, 2, v.as_bytes());
        len_field(&mut out, 1, &l);
    }
    out
}

/// 2.0 `TimeSeries.metadata` (field 5): `Metadata { type: METRIC_TYPE_GAUGE }` (help_ref and
/// unit_ref 0, the empty symbol, are default values and not written).
const METADATA_GAUGE_V2: [u8; 4] = [5 << 3 | 2, 2, 1 << 3, 2];

/// 2.0: one request's symbol table, interning the labels of `series` in order of first use,
/// and every series' `labels_refs` (field 1 of `io.prometheus.write.v2.TimeSeries`, packed).
/// Returns the encoded `symbols` fields (field 4 of `Request`, `""` first) and the refs.
fn encode_chunk_v2(series: &[Vec<(String, String)>]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut index: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let mut symbols: Vec<&str> = vec![""];
    index.insert("", 0);
    let mut refs = Vec::with_capacity(series.len());
    for pairs in series {
        let mut packed = Vec::new();
        for (n, v) in pairs {
            for s in [n.as_str(), v.as_str()] {
                let r = *index.entry(s).or_insert_with(|| {
                    symbols.push(s);
                    (symbols.len() - 1) as u32
                });
                varint(&mut packed, r as u64);
            }
        }
        let mut field = Vec::new();
        len_field(&mut field, 1, &packed);
        refs.push(field);
    }
    let mut enc = Vec::new();
    for s in symbols {
        len_field(&mut enc, 4, s.as_bytes());
    }
    (enc, refs)
}

/// Appends one `TimeSeries` (pre-encoded labels, one sample, then `suffix`: 2.0's metadata)
/// as field `field` of the request body (1: `WriteRequest.timeseries`, 5: 2.0's
/// `Request.timeseries`; `Sample` is the same message in both).
fn push_series(
    body: &mut Vec<u8>,
    ts_buf: &mut Vec<u8>,
    field: u32,
    labels: &[u8],
    suffix: &[u8],
    t: i64,
    v: f64,
) {
    ts_buf.clear();
    ts_buf.extend_from_slice(labels);
    // Sample { double value = 1; int64 timestamp = 2; }
    let mut sample = [0u8; 32];
    let mut n = 0;
    sample[n] = (1 << 3) | 1;
    n += 1;
    sample[n..n + 8].copy_from_slice(&v.to_le_bytes());
    n += 8;
    sample[n] = 2 << 3;
    n += 1;
    let mut tv = t as u64;
    while tv >= 0x80 {
        sample[n] = (tv as u8) | 0x80;
        tv >>= 7;
        n += 1;
    }
    sample[n] = tv as u8;
    n += 1;
    len_field(ts_buf, 2, &sample[..n]);
    ts_buf.extend_from_slice(suffix);
    len_field(body, field, ts_buf);
}

/// Checks a 2.0 body built here against the prost types of `proto/write_v2.proto`: symbols[0]
/// is "", every series resolves to the labels of `series`, with one sample and gauge metadata.
fn check_v2_body(body: &[u8], series: &[Vec<(String, String)>]) -> anyhow::Result<()> {
    use promcast::proto::write_v2 as v2;
    use prost::Message;
    let req = v2::Request::decode(body)?;
    anyhow::ensure!(
        req.symbols.first().map(String::as_str) == Some(""),
        "symbols[0] is not \"\""
    );
    anyhow::ensure!(req.timeseries.len() == series.len(), "series count");
    for (ts, want) in req.timeseries.iter().zip(series) {
        let got: Vec<(String, String)> = ts
            .labels_refs
            .chunks(2)
            .map(|p| {
                (
                    req.symbols[p[0] as usize].clone(),
                    req.symbols[p[1] as usize].clone(),
                )
            })
            .collect();
        anyhow::ensure!(&got == want, "labels {got:?} != {want:?}");
        anyhow::ensure!(ts.samples.len() == 1, "samples");
        let meta = ts.metadata.as_ref().map(|m| m.r#type);
        anyhow::ensure!(
            meta == Some(v2::metadata::MetricType::Gauge as i32),
            "metadata {meta:?}"
        );
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    by_status: BTreeMap<u16, (u64, u64)>,
    errors: u64,
    retries: u64,
    accepted: u64,
    latencies_us: Vec<u32>,
    /// 2.0: the sum of `X-Prometheus-Remote-Write-Samples-Written` of 2xx answers.
    written: u64,
    /// 2.0: 2xx answers whose samples-written header was missing or not the samples sent.
    written_mismatches: u64,
}

/// 2.0 mismatches printed on stderr (the rest are only counted).
const MISMATCHES_PRINTED: u64 = 10;
const SAMPLES_WRITTEN: &str = "x-prometheus-remote-write-samples-written";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.series > 0, "--series must be positive");
    anyhow::ensure!(
        args.samples_per_request > 0,
        "--samples-per-request must be positive"
    );
    anyhow::ensure!(
        args.duration.is_some() || args.requests.is_some(),
        "give --duration or --requests"
    );
    let conc = args.concurrency.max(1);
    let v2 = args.protocol == "2.0";
    // Series chunks of one request each; chunk c goes out from connection c % conc.
    let chunks: Vec<(usize, usize)> = (0..args.series)
        .step_by(args.samples_per_request)
        .map(|a| (a, (a + args.samples_per_request).min(args.series)))
        .collect();
    // Per series, its pre-encoded labels (1.0: `Label` fields; 2.0: `labels_refs` into its
    // request's symbols); per chunk, what the body starts with (2.0: the symbols).
    let (labels, prefixes): (Vec<Vec<u8>>, Vec<Vec<u8>>) = if v2 {
        let mut labels = Vec::with_capacity(args.series);
        let mut prefixes = Vec::with_capacity(chunks.len());
        for (c, &(a, b)) in chunks.iter().enumerate() {
            let pairs: Vec<_> = (a..b).map(|i| series_labels(i, args.labels)).collect();
            let (symbols, refs) = encode_chunk_v2(&pairs);
            if c == 0 {
                let mut body = symbols.clone();
                let mut ts_buf = Vec::new();
                for r in &refs {
                    push_series(&mut body, &mut ts_buf, 5, r, &METADATA_GAUGE_V2, 1, 0.0);
                }
                check_v2_body(&body, &pairs)
                    .map_err(|e| anyhow::anyhow!("2.0 body self-check: {e}"))?;
            }
            labels.extend(refs);
            prefixes.push(symbols);
        }
        (labels, prefixes)
    } else {
        let labels = (0..args.series)
            .map(|i| encode_labels_v1(&series_labels(i, args.labels)))
            .collect();
        (labels, vec![Vec::new(); chunks.len()])
    };
    let (labels, prefixes) = (Arc::new(labels), Arc::new(prefixes));
    let (ts_field, suffix, content_type, version): (u32, &'static [u8], &str, &str) = if v2 {
        (
            5,
            &METADATA_GAUGE_V2,
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "2.0.0",
        )
    } else {
        (1, &[], "application/x-protobuf", "0.1.0")
    };
    let mismatches_seen = Arc::new(AtomicU64::new(0));
    let start_ago_ms = args.start_ago.as_millis() as i64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .timeout(Duration::from_secs(30))
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent_requests = Arc::new(AtomicU64::new(0));
    let accepted_live = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = args.duration.map(|d| t0 + d);
    let per_conn_rate = args.rate.map(|r| r / conc as f64);
    let interval_latencies = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));

    let totals = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..conc {
            let my: Vec<(usize, (usize, usize))> = chunks
                .iter()
                .copied()
                .enumerate()
                .skip(w)
                .step_by(conc)
                .collect();
            if my.is_empty() {
                continue;
            }
            let (client, labels, args) = (client.clone(), labels.clone(), args.clone());
            let (prefixes, mismatches_seen) = (prefixes.clone(), mismatches_seen.clone());
            let (stop, sent_requests, accepted_live) =
                (stop.clone(), sent_requests.clone(), accepted_live.clone());
            let interval_latencies = interval_latencies.clone();
            tasks.push(tokio::spawn(async move {
                let mut t = Totals::default();
                let (mut body, mut ts_buf) = (Vec::new(), Vec::new());
                let mut encoder = snap::raw::Encoder::new();
                let mut last_ts = i64::MIN;
                let started = Instant::now();
                let mut samples_sent = 0u64;
                'outer: loop {
                    let wall = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    let ts = (wall - start_ago_ms).max(last_ts.saturating_add(1));
                    last_ts = ts;
                    for &(c, (a, b)) in &my {
                        if stop.load(Ordering::Relaxed)
                            || deadline.is_some_and(|d| Instant::now() >= d)
                        {
                            break 'outer;
                        }
                        if let Some(max) = args.requests {
                            if sent_requests.fetch_add(1, Ordering::Relaxed) >= max {
                                break 'outer;
                            }
                        }
                        if let Some(rate) = per_conn_rate {
                            let due = Duration::from_secs_f64(samples_sent as f64 / rate);
                            let elapsed = started.elapsed();
                            if due > elapsed {
                                tokio::time::sleep(due - elapsed).await;
                            }
                        }
                        body.clear();
                        body.extend_from_slice(&prefixes[c]);
                        for (i, l) in labels[a..b].iter().enumerate() {
                            let v = ((a + i) % 1000) as f64 + ((ts / 1000) % 60) as f64;
                            push_series(&mut body, &mut ts_buf, ts_field, l, suffix, ts, v);
                        }
                        let payload =
                            bytes::Bytes::from(encoder.compress_vec(&body).expect("snappy"));
                        let n = (b - a) as u64;
                        samples_sent += n;
                        let mut backoff = Duration::from_millis(30);
                        loop {
                            let mut req = client
                                .post(&args.url)
                                .header("Content-Encoding", "snappy")
                                .header("Content-Type", content_type)
                                .header("X-Prometheus-Remote-Write-Version", version)
                                .header("User-Agent", "promcast-loadgen")
                                .body(payload.clone());
                            if let Some(tok) = &args.bearer_token {
                                req = req.bearer_auth(tok);
                            }
                            let q0 = Instant::now();
                            let res = req.send().await;
                            let mut written = None;
                            let status = match res {
                                Ok(r) => {
                                    let s = r.status().as_u16();
                                    written = r.headers().get(SAMPLES_WRITTEN).map(|h| {
                                        h.to_str().ok().and_then(|h| h.trim().parse::<u64>().ok())
                                    });
                                    let _ = r.bytes().await;
                                    Some(s)
                                }
                                Err(_) => None,
                            };
                            let us = q0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                            t.latencies_us.push(us);
                            if !args.progress.is_zero() {
                                interval_latencies
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push(us);
                            }
                            match status {
                                Some(s) => {
                                    let e = t.by_status.entry(s).or_default();
                                    e.0 += 1;
                                    e.1 += n;
                                    if (200..300).contains(&s) {
                                        t.accepted += n;
                                        accepted_live.fetch_add(n, Ordering::Relaxed);
                                        if v2 {
                                            t.written += written.flatten().unwrap_or(0);
                                            if written != Some(Some(n)) {
                                                t.written_mismatches += 1;
                                                let k = mismatches_seen
                                                    .fetch_add(1, Ordering::Relaxed);
                                                if k < MISMATCHES_PRINTED {
                                                    let got = match written {
                                                        None => "no header".to_string(),
                                                        Some(None) => "unparsable header".into(),
                                                        Some(Some(w)) => w.to_string(),
                                                    };
                                                    eprintln!(
                                                        "loadgen: HTTP {s}: {SAMPLES_WRITTEN} {got}, {n} samples sent"
                                                    );
                                                }
                                            }
                                        }
                                        break;
                                    }
                                    if !(args.retry && (s == 429 || s >= 500)) {
                                        break;
                                    }
                                }
                                None => {
                                    t.errors += 1;
                                    if !args.retry {
                                        break;
                                    }
                                }
                            }
                            if stop.load(Ordering::Relaxed) {
                                break 'outer;
                            }
                            t.retries += 1;
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                t
            }));
        }
        if !args.progress.is_zero() {
            let accepted_live = accepted_live.clone();
            let interval_latencies = interval_latencies.clone();
            let (every, pid) = (args.progress, args.watch_pid);
            tokio::spawn(async move {
                let mut last = 0;
                let mut last_cpu = pid.and_then(proc_usage).map_or(0.0, |u| u.1);
                loop {
                    tokio::time::sleep(every).await;
                    let a = accepted_live.load(Ordering::Relaxed);
                    let mut lat = std::mem::take(
                        &mut *interval_latencies.lock().unwrap_or_else(|e| e.into_inner()),
                    );
                    lat.sort_unstable();
                    let p = |q: f64| {
                        lat.get(((lat.len().max(1) - 1) as f64 * q).round() as usize)
                            .map_or(f64::NAN, |v| *v as f64 / 1000.0)
                    };
                    let mut line = format!(
                        "loadgen: {:>7.1}s {:>12} accepted ({:>9.0}/s)  p50 {:.2} ms  p99 {:.2} ms",
                        t0.elapsed().as_secs_f64(),
                        a,
                        (a - last) as f64 / every.as_secs_f64(),
                        p(0.5),
                        p(0.99)
                    );
                    if let Some((rss, cpu)) = pid.and_then(proc_usage) {
                        line.push_str(&format!(
                            "  receiver RSS {:.1} MiB  CPU {:.0}%",
                            rss as f64 / 1024.0,
                            (cpu - last_cpu) / every.as_secs_f64() * 100.0
                        ));
                        last_cpu = cpu;
                    }
                    eprintln!("{line}");
                    last = a;
                }
            });
        }
        let mut all = Totals::default();
        for task in tasks {
            let t = task.await.expect("sender task");
            for (s, (r, n)) in t.by_status {
                let e = all.by_status.entry(s).or_default();
                e.0 += r;
                e.1 += n;
            }
            all.errors += t.errors;
            all.retries += t.retries;
            all.accepted += t.accepted;
            all.latencies_us.extend(t.latencies_us);
            all.written += t.written;
            all.written_mismatches += t.written_mismatches;
        }
        all
    });
    stop.store(true, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let mut lat = totals.latencies_us;
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((lat.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
    };
    let requests: u64 = totals.by_status.values().map(|(r, _)| r).sum::<u64>() + totals.errors;
    let status: Vec<String> = totals
        .by_status
        .iter()
        .map(|(s, (r, n))| format!("\"{s}\": {{\"requests\": {r}, \"samples\": {n}}}"))
        .collect();
    // 2.0 only (1.0's output is unchanged): the protocol and the samples-written check.
    let v2_json = if v2 {
        format!(
            ", \"protocol\": \"2.0\", \"samples_written\": {}, \"written_mismatches\": {}",
            totals.written, totals.written_mismatches
        )
    } else {
        String::new()
    };
    if args.json {
        println!(
            "{{\"seconds\": {secs:.3}, \"series\": {}, \"labels\": {}, \"samples_per_request\": {}, \"concurrency\": {conc}, \"requests\": {requests}, \"accepted_samples\": {}, \"accepted_per_second\": {:.1}, \"errors\": {}, \"retries\": {}, \"status\": {{{}}}, \"latency_ms\": {{\"p50\": {:.3}, \"p90\": {:.3}, \"p99\": {:.3}, \"max\": {:.3}}}{v2_json}}}",
            args.series,
            args.labels,
            args.samples_per_request,
            totals.accepted,
            totals.accepted as f64 / secs,
            totals.errors,
            totals.retries,
            status.join(", "),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0),
        );
    } else {
        println!(
            "{requests} requests in {secs:.1}s: {} samples accepted ({:.0}/s), {} connection errors, {} retries",
            totals.accepted,
            totals.accepted as f64 / secs,
            totals.errors,
            totals.retries
        );
        for (s, (r, n)) in &totals.by_status {
            println!("  HTTP {s}: {r} requests, {n} samples");
        }
        if v2 {
            println!(
                "  remote write 2.0: {} samples written (X-Prometheus-Remote-Write-Samples-Written), {} 2xx answers not matching the samples sent",
                totals.written, totals.written_mismatches
            );
        }
        println!(
            "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0)
        );
    }
    Ok(())
}
