//! Ingest throughput on real remote-write bodies captured from Prometheus 2.42
//! (`benches/fixtures/`, see its README): decode alone, and decode + series lookup + ring
//! append through the same code the HTTP handler runs, the same bodies converted to remote
//! write 2.0, and the series identity (label hash) each protocol computes. Figures are
//! samples (identities: series) per second on one core (criterion's "thrpt").

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use promcast::config::Config;
use promcast::ingest::decode::{decode_write_request, DecodedSeries, Scratch};
use promcast::ingest::{Ingest, Protocol};
use promcast::store::{now_ms, Store};
use promcast::telemetry::Telemetry;
use std::sync::Arc;

fn fixtures() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no captured bodies in {}", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn decompress(bodies: &[Vec<u8>]) -> Vec<Vec<u8>> {
    bodies
        .iter()
        .map(|b| snap::raw::Decoder::new().decompress_vec(b).unwrap())
        .collect()
}

fn count_samples(raw: &[Vec<u8>]) -> u64 {
    let mut n = 0;
    let mut scratch = Scratch::default();
    for r in raw {
        n += decode_write_request(r, &mut scratch, |_| {})
            .unwrap()
            .samples;
    }
    n
}

/// The same series as a remote write 2.0 request (symbols interned in order of first use),
/// snappy-compressed as a sender sends it.
fn to_v2(raw: &[u8]) -> Vec<u8> {
    use promcast::proto::{prometheus as pb, write_v2 as v2};
    use prost::Message;
    let req = pb::WriteRequest::decode(raw).unwrap();
    let mut index = std::collections::HashMap::new();
    let mut symbols = vec![String::new()];
    index.insert(String::new(), 0u32);
    let mut intern = |s: &str| {
        *index.entry(s.to_string()).or_insert_with(|| {
            symbols.push(s.to_string());
            (symbols.len() - 1) as u32
        })
    };
    let timeseries = req
        .timeseries
        .iter()
        .map(|ts| v2::TimeSeries {
            labels_refs: ts
                .labels
                .iter()
                .flat_map(|l| [intern(&l.name), intern(&l.value)])
                .collect(),
            samples: ts
                .samples
                .iter()
                .map(|s| v2::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    let body = v2::Request {
        symbols,
        timeseries,
    }
    .encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&body).unwrap()
}

fn ingest_for(selector: &str) -> Ingest {
    let yaml = format!(
        "storage: {{ step: 15s, retention: 6h }}\nforecast:\n  - selector: '{selector}'\n    horizons: [1m]\nlimits: {{ max_series: 1000000 }}\n"
    );
    let config = Config::from_yaml(&yaml, "bench", None).unwrap();
    let store = Arc::new(Store::new(&config, now_ms()));
    Ingest::new(store, Arc::new(Telemetry::default()), config.limits.clone())
}

fn bench(c: &mut Criterion) {
    let bodies = fixtures();
    let raw = decompress(&bodies);
    let samples = count_samples(&raw);
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(samples));

    g.bench_function("decode", |b| {
        let mut scratch = Scratch::default();
        b.iter(|| {
            let mut n = 0u64;
            for r in &raw {
                decode_write_request(r, &mut scratch, |d| {
                    n += (d.labels.len() + d.samples.len()) as u64;
                })
                .unwrap();
            }
            n
        })
    });

    g.bench_function("snappy+decode", |b| {
        let mut scratch = Scratch::default();
        let mut buf = Vec::new();
        b.iter(|| {
            let mut n = 0u64;
            for body in &bodies {
                buf.resize(snap::raw::decompress_len(body).unwrap(), 0);
                snap::raw::Decoder::new()
                    .decompress(body, &mut buf)
                    .unwrap();
                decode_write_request(&buf, &mut scratch, |d| n += d.samples.len() as u64).unwrap();
            }
            n
        })
    });

    // Every series selected: each sample is validated, looked up and appended to its ring.
    let all = ingest_for(r#"{__name__=~".+"}"#);
    let now = now_ms();
    g.bench_function("snappy+decode+append (all selected)", |b| {
        b.iter(|| {
            for body in &bodies {
                all.ingest_snappy(body, Protocol::V1, now).unwrap();
            }
        })
    });

    // The same series as 2.0 requests, into a store of their own.
    let bodies_v2: Vec<Vec<u8>> = raw.iter().map(|r| to_v2(r)).collect();
    let all_v2 = ingest_for(r#"{__name__=~".+"}"#);
    g.bench_function("snappy+decode+append (all selected, 2.0)", |b| {
        b.iter(|| {
            for body in &bodies_v2 {
                all_v2.ingest_snappy(body, Protocol::V2, now).unwrap();
            }
        })
    });

    // The embedded default selector (recording rules): these bodies hold none, so every
    // series is checked against the selector and dropped.
    let none = ingest_for(r#"{__name__=~".+:.+"}"#);
    g.bench_function("snappy+decode+select (none selected)", |b| {
        b.iter(|| {
            for body in &bodies {
                none.ingest_snappy(body, Protocol::V1, now).unwrap();
            }
        })
    });
    g.finish();
    identity(c, &raw);
}

/// A series' identity: 1.0 hashes the label bytes as they lie in the request, 2.0 rebuilds
/// them from its symbol references (here: the same labels, read from the 1.0 bodies).
fn identity(c: &mut Criterion, raw: &[Vec<u8>]) {
    use promcast::store::{hash_labels, hash_labels_within, LabelHash};
    let mut scratch = Scratch::default();
    let mut series = 0u64;
    for r in raw {
        decode_write_request(r, &mut scratch, |_| series += 1).unwrap();
    }
    let mut g = c.benchmark_group("identity");
    g.throughput(Throughput::Elements(series));
    // Decodes every body and folds each series' identity as `id` computes it.
    let mut run = |name: &str, id: fn(&DecodedSeries<'_, '_>, &[u8]) -> u64| {
        g.bench_function(name, |b| {
            let mut scratch = Scratch::default();
            b.iter(|| {
                let mut x = 0u64;
                for r in raw {
                    decode_write_request(r, &mut scratch, |d| x ^= id(&d, r)).unwrap();
                }
                x
            })
        });
    };
    run("1.0: canonical bytes in the request", |d, _| {
        LabelHash::of_canonical(d.canonical_labels.unwrap()).hash
    });
    run(
        "2.0: encoded from the labels, read within the body",
        |d, r| hash_labels_within(d.labels, r).hash,
    );
    run("encoded from the labels, exact copies", |d, _| {
        hash_labels(d.labels).hash
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
