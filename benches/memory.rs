//! Memory per series at 24h@1m (1440 buckets): the store filled with N series that carry
//! label sets shaped like the Prometheus 2.42 capture in `benches/fixtures/` (name, job,
//! instance and three more labels), each ring full of real traffic (a day of the NASA
//! requests-per-minute trace, each series from another offset, as the scale bench). Prints
//! RSS growth per series and the store's own accounting, the time to read every ring as the
//! forecast step does (the compressed blocks decoded), then writes a snapshot of the store
//! (`storage.path`) and prints what that took: time, file size and the peak RSS above the
//! store's while writing; the time to load it back into an empty store (a restart); and
//! the time to write a day of history behind each new series' first sample, as backfill
//! does (N/10 series).
//! Run: `cargo bench --bench memory [-- N]` (default 100000).

#[path = "../tests/common/traces.rs"]
mod traces;

use promcast::config::Config;
use promcast::store::{hash_labels, AppendStats, LabelRef, Sample, Store};

/// The agent's allocator (`src/main.rs`), so that RSS here is the agent's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "common/proc_mem.rs"]
mod proc_mem;
use proc_mem::{peak_rss_bytes, reset_peak, rss_bytes};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let config = Config::from_yaml(
        "storage: { step: 1m, retention: 24h }\nforecast:\n  - selector: '{__name__=~\".+\"}'\nlimits: { max_series: 10000000 }\n",
        "bench",
        None,
    )
    .unwrap();
    let before = rss_bytes();
    let store = Store::new(&config, 0);
    let mut stats = AppendStats::default();
    let trace = traces::nasa_requests_per_minute();
    let mut samples = Vec::with_capacity(1440);
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let from = (i * 7919) % (trace.len() - 1440);
        samples.clear();
        samples.extend(
            trace[from..from + 1440]
                .iter()
                .enumerate()
                .map(|(t, &value)| Sample {
                    value,
                    timestamp: t as i64 * 60_000,
                }),
        );
        let instance = format!("10.{}.{}.{}:9100", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        let pod = format!("web-{:x}-{}", i * 2654435761 % 0xffffff, i % 7);
        let labels = [
            LabelRef::new("__name__", "job:http_requests:rate5m"),
            LabelRef::new("cluster", "prod-eu-west-1"),
            LabelRef::new("instance", &instance),
            LabelRef::new("job", "kubernetes-pods"),
            LabelRef::new("namespace", "checkout"),
            LabelRef::new("pod", &pod),
        ];
        store.append(hash_labels(&labels), &labels, &samples, 0, &mut stats);
    }
    let fill = t0.elapsed();
    let after = rss_bytes();
    assert_eq!(store.series_count(), n);
    let per_series_rss = (after - before) as f64 / n as f64;
    let per_series_heap = store.heap_bytes() as f64 / n as f64;
    println!("series: {n}, buckets per series: {}", store.ring_len());
    println!(
        "filled {} samples in {:.2?} ({:.1} M samples/s)",
        stats.appended,
        fill,
        stats.appended as f64 / fill.as_secs_f64() / 1e6
    );
    println!(
        "RSS growth per series: {:.0} bytes ({:.2} KiB)",
        per_series_rss,
        per_series_rss / 1024.0
    );
    println!(
        "store accounting per series: {:.0} bytes ({:.2} KiB)",
        per_series_heap,
        per_series_heap / 1024.0
    );
    println!(
        "budget: 8192 bytes per series -> {}",
        if per_series_rss <= 8192.0 {
            "within"
        } else {
            "OVER"
        }
    );

    // What the forecast step does first: every ring copied out (decoded) under its lock.
    let mut values = Vec::with_capacity(1440 * 1024);
    let t0 = std::time::Instant::now();
    let mut read = 0usize;
    for shard in 0..store.shard_count() {
        values.clear();
        store.visit_shard(shard, |s| {
            if values.len() > 1440 * 1000 {
                read += values.len();
                values.clear();
            }
            s.ring.copy_last(s.ring.history_len(), &mut values);
        });
        read += values.len();
    }
    let took = t0.elapsed();
    println!(
        "read every ring: {read} values in {took:.2?} ({:.2} ns a value)",
        took.as_nanos() as f64 / read.max(1) as f64
    );

    let dir = tempfile::tempdir().expect("a temporary directory for the snapshot");
    let reset = reset_peak();
    let base = rss_bytes();
    let t0 = std::time::Instant::now();
    let written = promcast::store::persist::save(&store, dir.path()).expect("snapshot");
    let took = t0.elapsed();
    let file = std::fs::metadata(dir.path().join(promcast::store::persist::FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "snapshot: {written} series, {:.0} MiB in {took:.2?}; peak RSS while writing {}",
        file as f64 / 1048576.0,
        if reset {
            format!(
                "{:.0} MiB above the store's",
                peak_rss_bytes().saturating_sub(base) as f64 / 1048576.0
            )
        } else {
            "unknown (clear_refs not writable)".to_string()
        }
    );

    // What a restart reads back: the snapshot loaded into an empty store.
    drop(store);
    let restored = Store::new(&config, 0);
    let t0 = std::time::Instant::now();
    let loaded = promcast::store::persist::load(&restored, dir.path(), 1440 * 60_000)
        .expect("snapshot loads");
    println!(
        "loaded: {loaded:?} in {:.2?}; {} series",
        t0.elapsed(),
        restored.series_count()
    );
    assert_eq!(restored.series_count(), written);
    drop(restored);

    // Backfill's order: a new series' first live sample, then its day of history read from
    // Prometheus in one append, every sample older than the head (late writes into blocks
    // already sealed).
    let backfilled = Store::new(&config, 0);
    let m = (n / 10).max(1);
    let mut late = 0u64;
    let t0 = std::time::Instant::now();
    for i in 0..m {
        let from = (i * 7919) % (trace.len() - 1441);
        let name = format!("backfilled-{i}");
        let labels = [LabelRef::new("__name__", &name)];
        let id = hash_labels(&labels);
        let live = [Sample {
            value: trace[from + 1440],
            timestamp: 1440 * 60_000,
        }];
        backfilled.append(id, &labels, &live, 0, &mut stats);
        samples.clear();
        samples.extend((0..1440).map(|t| Sample {
            value: trace[from + t],
            timestamp: t as i64 * 60_000,
        }));
        let mut s = AppendStats::default();
        backfilled.append(id, &labels, &samples, 0, &mut s);
        late += s.merged;
    }
    let took = t0.elapsed();
    println!(
        "backfill order: {m} series, {late} samples written behind the head in {took:.2?} ({:.0} ns a sample)",
        took.as_nanos() as f64 / late.max(1) as f64
    );
}
