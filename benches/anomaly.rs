//! Anomaly scoring costs (harness = false; prints figures).
//!
//! `cargo bench --bench anomaly`: per-step cost of `features` + `AnomalyForest::score` for one
//! series, training time, and forest heap bytes (allocator-measured vs `heap_bytes()`); then
//! the agent's scorer with every listed detector at its defaults, at 200 and 100,000 series.
use promcast::anomaly::forest::training_rows;
use promcast::anomaly::online::Newest;
use promcast::anomaly::{features, naive_band, AnomalyForest, AnomalyScorer, FeatureVec};
use promcast::config::{AnomalySpec, Verdict};
use promcast::detectors::DetectorKind;
use promcast::store::SeriesId;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
}
#[global_allocator]
static A: Counting = Counting;

fn load() -> Vec<f32> {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/nab/data/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv"
    );
    std::fs::read_to_string(p)
        .expect("NAB data under ../shared/data/nab")
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().trim().parse().unwrap())
        .collect()
}

fn main() {
    let v = load();
    let season = Some(288);
    let rows: Vec<FeatureVec> = (20..v.len())
        .filter_map(|t| features(&v[..=t], naive_band(&v[..t]), season))
        .collect();
    println!("series: {} points, {} feature rows", v.len(), rows.len());

    // training time (rows capped at 4096 inside train)
    let mut times = Vec::new();
    for _ in 0..10 {
        let t0 = Instant::now();
        let f = AnomalyForest::train(&rows).unwrap();
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(&f);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "train ({} rows): median {:.2} ms, min {:.2} ms",
        rows.len(),
        times[5],
        times[0]
    );

    // heap bytes: allocator-measured vs estimate
    let before = LIVE.load(Ordering::Relaxed);
    let forest = AnomalyForest::train(&rows).unwrap();
    let after = LIVE.load(Ordering::Relaxed);
    println!(
        "forest heap: measured {} bytes ({:.2} MiB), heap_bytes() estimate {} bytes",
        after - before,
        (after - before) as f64 / 1048576.0,
        forest.heap_bytes()
    );

    // features + score per step
    let steps: Vec<usize> = (300..v.len()).collect();
    let reps = 3;
    let t0 = Instant::now();
    let mut acc = 0.0;
    for _ in 0..reps {
        for &t in &steps {
            let band = naive_band(&v[..t]);
            if let Some(f) = features(&v[..=t], band, season) {
                acc += forest.score(&f);
            }
        }
    }
    let per = t0.elapsed().as_secs_f64() * 1e6 / (reps * steps.len()) as f64;
    let t1 = Instant::now();
    for _ in 0..reps {
        for &t in &steps {
            if let Some(f) = features(&v[..=t], None, season) {
                acc += f[0];
            }
        }
    }
    let feat = t1.elapsed().as_secs_f64() * 1e6 / (reps * steps.len()) as f64;
    let t2 = Instant::now();
    for _ in 0..reps {
        for r in &rows {
            acc += forest.score(r);
        }
    }
    let sc = t2.elapsed().as_secs_f64() * 1e6 / (reps * rows.len()) as f64;
    println!("per series per step: naive_band + features + score {per:.2} us (features alone {feat:.2} us, score alone {sc:.2} us) [{acc:.1}]");

    let ring = 1440;
    let mut rows_buf = Vec::new();
    let t3 = Instant::now();
    training_rows(&v[..ring], season, &mut rows_buf);
    let tr = t3.elapsed().as_secs_f64() * 1e3;
    println!(
        "training_rows over a {ring}-point ring: {tr:.2} ms ({} rows)",
        rows_buf.len()
    );
    for kind in DetectorKind::ALL {
        acc += agent_path(kind, &v, ring, season);
    }
    println!("[{acc:.1}]");
}

/// The agent's path for detector `kind` with its default verdict (signal, threshold, hold at
/// a 1-minute step), as the forecast thread calls it: 200 series made of 1440-point windows
/// of the trace (the default 24h@1m ring), each step scoring every series' newest point
/// (the forest retrained every 60 steps, `retrain_every: 1h`, its training amortised into
/// the per-step figure); then 100,000 series with the default limits (256 series with their
/// own model, the rest on the entry's pooled forest). Returns a checksum.
fn agent_path(kind: DetectorKind, v: &[f32], ring: usize, season: Option<usize>) -> f64 {
    let d = Verdict::of(kind, None, None, 0.15, None);
    let spec = AnomalySpec {
        detector: kind,
        threshold: d.threshold,
        retrain_every: 60,
        signal: d.signal,
        suppress: (d.suppress.as_secs() / 60) as usize,
        outside_band_only: d.outside_band_only,
    };
    let mut acc = 0.0;
    let n_series = 200;
    let before = LIVE.load(Ordering::Relaxed);
    let mut scorer = AnomalyScorer::new(1, n_series, ring);
    let steps = 361u64;
    let run = drive(&mut scorer, &spec, v, ring, season, n_series, steps, |k| {
        (k * 13) % (v.len() - ring - steps as usize)
    });
    let (first_step, total, scored) = (run.first_step, run.rest, run.scored);
    acc += run.checksum;
    println!(
        "{kind}: agent scorer, first step (each series' model from its ring): {:.2} ms per series",
        first_step * 1e3 / n_series as f64
    );
    let steps = steps - 1;
    let after = LIVE.load(Ordering::Relaxed);
    let (own, pooled) = scorer.forest_counts();
    println!(
        "{kind}: agent scorer: {n_series} series x {steps} steps, {scored} scored, {own} own + {pooled} pooled models: {:.2} us per series per step including amortised retraining",
        total * 1e6 / (n_series as f64 * steps as f64)
    );
    println!(
        "{kind}: agent scorer memory: {:.3} MiB per series with its own model (allocator-measured), heap_bytes() {:.3} MiB per series",
        (after - before) as f64 / own.max(1) as f64 / 1048576.0,
        scorer.heap_bytes() as f64 / own.max(1) as f64 / 1048576.0
    );
    drop(scorer);

    // At scale: one warm-up step (each own model from its ring), then `STEPS_AT_SCALE`
    // measured steps.
    const AT_SCALE: usize = 100_000;
    const STEPS_AT_SCALE: u64 = 5;
    let before = LIVE.load(Ordering::Relaxed);
    let mut scorer = AnomalyScorer::new(1, 256, ring);
    let run = drive(
        &mut scorer,
        &spec,
        v,
        ring,
        season,
        AT_SCALE,
        STEPS_AT_SCALE + 1,
        |k| (k * 7) % (v.len() - ring - STEPS_AT_SCALE as usize - 1),
    );
    println!(
        "{kind}: at {AT_SCALE} series: warm-up step {:.2} s",
        run.first_step
    );
    let (total, scored) = (run.rest, run.scored);
    acc += run.checksum;
    let after = LIVE.load(Ordering::Relaxed);
    let (own, pooled) = scorer.forest_counts();
    let own_bytes = scorer.own_heap_bytes() as f64;
    println!(
        "{kind}: at {AT_SCALE} series ({own} own + {pooled} pooled models, {scored} points scored): {:.2} us per series per step (score, likelihood, decision)",
        total * 1e6 / (AT_SCALE as f64 * STEPS_AT_SCALE as f64),
    );
    println!(
        "{kind}: at {AT_SCALE} series: scorer memory {:.0} bytes per series in all (allocator-measured); without the own models ({:.3} MiB each) {:.0} bytes per series",
        (after - before) as f64 / AT_SCALE as f64,
        own_bytes / own.max(1) as f64 / 1048576.0,
        ((after - before) as f64 - own_bytes) / AT_SCALE as f64,
    );
    acc
}

/// What [`drive`] measured.
struct Driven {
    /// Seconds of step 0, which builds every detector from its ring (a one-off).
    first_step: f64,
    /// Seconds of the steps after it.
    rest: f64,
    /// Points scored after step 0.
    scored: u64,
    /// Sum of the scores and likelihoods, so that nothing is optimised away.
    checksum: f64,
}

/// Drives `scorer` as the forecast thread does: at each of `steps` steps, scores the newest
/// point of `n_series` series (series `k` is the `ring` points of `v` ending at
/// `offset(k) + ring + step`), then finishes the step.
#[allow(clippy::too_many_arguments)]
fn drive(
    scorer: &mut AnomalyScorer,
    spec: &AnomalySpec,
    v: &[f32],
    ring: usize,
    season: Option<usize>,
    n_series: usize,
    steps: u64,
    offset: impl Fn(usize) -> usize,
) -> Driven {
    let far = Instant::now() + std::time::Duration::from_secs(3600);
    let mut out = Driven {
        first_step: 0.0,
        rest: 0.0,
        scored: 0,
        checksum: 0.0,
    };
    let mut t = Instant::now();
    for step in 0..steps {
        for k in 0..n_series {
            let end = offset(k) + ring + step as usize;
            let newest = Newest {
                id: SeriesId(k as u64),
                entry: 0,
                spec,
                values: &v[end - ring..end],
                head: step as i64,
                season,
            };
            if let Some(a) = scorer.score(&newest, step, far) {
                out.checksum += a.score + a.likelihood;
                out.scored += (step > 0) as u64;
            }
        }
        scorer.finish_step(step, &[Some(spec.clone())], far);
        if step == 0 {
            out.first_step = t.elapsed().as_secs_f64();
            t = Instant::now();
        }
    }
    out.rest = t.elapsed().as_secs_f64();
    out
}
