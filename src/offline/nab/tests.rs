//! `anomaly-eval`'s unit tests: the metrics and NAB's scores on hand-built and hand-scored
//! cases, the optimiser against brute force, one file end to end, and the `agent` detector
//! against what the agent itself exports.

use super::load::{categories, read_series};
use super::optimise::file_steps;
use super::replay::hold_points;
use super::results::evaluate;
use super::*;
use crate::anomaly::median;
use std::path::Path;

#[test]
fn window_counts_exact() {
    // 20 points, windows [5,7] and [12,14], start 0
    let mut a = vec![false; 20];
    let w = [(5, 7), (12, 14)];
    assert_eq!(
        window_counts(&a, &w, 0),
        WindowCounts {
            windows: 2,
            caught: 0,
            fp_events: 0
        }
    );
    a[6] = true; // catches window 1
    a[7] = true; // same window
    a[9] = true; // FP event 1
    a[10] = true; // same event
    a[17] = true; // FP event 2
    a[19] = true; // FP event 3
    let c = window_counts(&a, &w, 0);
    assert_eq!(
        c,
        WindowCounts {
            windows: 2,
            caught: 1,
            fp_events: 3
        }
    );
    let (p, r, f) = prf(c);
    assert!((p - 0.25).abs() < 1e-12);
    assert!((r - 0.5).abs() < 1e-12);
    assert!((f - 2.0 * 0.25 * 0.5 / 0.75).abs() < 1e-12);
    // an alarm run that leaves a window: the outside part is one FP event
    let mut b = vec![false; 20];
    for i in 13..=16 {
        b[i] = true;
    }
    assert_eq!(
        window_counts(&b, &w, 0),
        WindowCounts {
            windows: 2,
            caught: 1,
            fp_events: 1
        }
    );
    // start hides the first window and early alarms
    assert_eq!(
        window_counts(&a, &w, 8),
        WindowCounts {
            windows: 1,
            caught: 0,
            fp_events: 3
        }
    );
    assert_eq!(
        prf(WindowCounts {
            windows: 0,
            caught: 0,
            fp_events: 0
        }),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(
        prf(WindowCounts {
            windows: 3,
            caught: 0,
            fp_events: 0
        }),
        (0.0, 0.0, 0.0)
    );
}

// scaledSigmoid(y) = 2/(1+e^{5y}) - 1 = tanh(-2.5 y)
fn ss(y: f64) -> f64 {
    (-2.5 * y).tanh()
}

#[test]
fn nab_score_hand_built() {
    assert!((scaled_sigmoid(-1.0) - 0.9866142981514305).abs() < 1e-12);
    assert_eq!(scaled_sigmoid(3.0), -1.0);
    let w = [(40usize, 49usize)];
    let n = 100;
    let mut a = vec![false; n];
    // nothing: null score
    assert_eq!(nab_score(&a, &w, 15), (-1.0, -1.0, 1.0));
    // earliest detection = perfect
    a[40] = true;
    let (raw, _, _) = nab_score(&a, &w, 15);
    assert!((raw - 1.0).abs() < 1e-12);
    // latest detection only
    a[40] = false;
    a[49] = true;
    let (raw, _, _) = nab_score(&a, &w, 15);
    assert!((raw - ss(-0.1) / ss(-1.0)).abs() < 1e-12, "{raw}");
    // two detections in the window: the best counts
    a[45] = true;
    let (raw, _, _) = nab_score(&a, &w, 15);
    assert!((raw - ss(-0.5) / ss(-1.0)).abs() < 1e-12, "{raw}");
    // FP before any window (after probation): -0.11; inside probation: ignored
    a[20] = true;
    a[10] = true;
    let (raw2, _, _) = nab_score(&a, &w, 15);
    assert!((raw2 - (raw - 0.11)).abs() < 1e-12);
    // FP after the window: 0.11 * scaledSigmoid(|59-49| / (10-1))
    a[59] = true;
    let (raw3, _, _) = nab_score(&a, &w, 15);
    assert!((raw3 - (raw2 + 0.11 * ss(10.0 / 9.0))).abs() < 1e-12);
    // a window entirely inside probation is not scored
    assert_eq!(nab_score(&vec![false; n], &[(2, 8)], 15), (0.0, 0.0, 0.0));
    assert!((nab_normalise(-1.0, -1.0, 1.0)).abs() < 1e-12);
    assert!((nab_normalise(1.0, -1.0, 1.0) - 100.0).abs() < 1e-12);
    assert_eq!(nab_probation(100), 15);
    assert_eq!(nab_probation(15_000), 750);
}

#[test]
fn parse_timestamps() {
    assert_eq!(parse_ts("1970-01-01 00:00:00"), Some(0));
    assert_eq!(parse_ts("2014-02-14 14:27:00"), Some(1_392_388_020));
    assert_eq!(parse_ts("2014-02-14 14:27:00.000000"), Some(1_392_388_020));
    assert_eq!(parse_ts("garbage"), None);
}

#[test]
fn end_to_end_one_file() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab");
    let tmp = tempfile::tempdir().unwrap();
    let nab = tmp.path().join("nab");
    std::fs::create_dir_all(nab.join("realAdExchange")).unwrap();
    std::fs::copy(
        format!("{root}/data/realAdExchange/exchange-2_cpc_results.csv"),
        nab.join("realAdExchange/exchange-2_cpc_results.csv"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let mut opts = NabEvalOptions::new(
        nab,
        format!("{root}/labels/combined_windows.json").into(),
        out.clone(),
    );
    opts.categories = Some(vec!["realAdExchange".into()]);
    let report = run_nab_eval(&opts).unwrap();
    assert_eq!(report.files.len(), DETECTORS.len());
    let csv = std::fs::read_to_string(out.join("anomaly.csv")).unwrap();
    assert!(csv.starts_with("detector,file,precision,recall,f1\n"));
    assert!(csv.contains("forest,realAdExchange/exchange-2_cpc_results.csv,"));
    assert!(csv.contains("\nforest,ALL,"));
    let input = std::fs::read_to_string(format!(
        "{root}/data/realAdExchange/exchange-2_cpc_results.csv"
    ))
    .unwrap();
    for det in DETECTORS {
        let name = nab_detector_name(det);
        assert!(!name.contains('_'));
        let p = out.join(format!(
            "results/{name}/realAdExchange/{name}_exchange-2_cpc_results.csv"
        ));
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.starts_with("timestamp,value,anomaly_score,label\n2011-07-01 00:00:01,"));
        assert_eq!(s.lines().count(), 1 + 1624);
        // timestamps and values exactly as in the input; labels = the window's points
        for (a, b) in s.lines().zip(input.lines()).skip(1) {
            assert!(a.starts_with(&format!("{b},")), "{a} vs {b}");
        }
        let labelled = s.lines().skip(1).filter(|l| l.ends_with(",1")).count();
        let (l, r) = report.scored[0].windows[0];
        assert_eq!(labelled, r - l + 1);
        // raw scores, except the debounce's suppressed points
        let sc = report.scored.iter().find(|x| x.detector == det).unwrap();
        let written = read_results(&p).unwrap();
        let th = if det.starts_with("likelihood") {
            LIKELIHOOD_THRESHOLD
        } else if det.starts_with("forest") {
            0.65
        } else {
            0.5
        };
        let fired = debounce(&sc.scores, th, sc.refractory);
        for t in 0..written.len() {
            let expect = if sc.refractory > 0 && sc.scores[t] >= th && !fired[t] {
                0.0
            } else {
                sc.scores[t]
            };
            assert_eq!(written[t], expect, "{det} {t}");
        }
    }
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(summary.starts_with(
        "detector,scope,files,mean_precision,mean_recall,mean_f1,micro_precision,micro_recall,micro_f1,nab_standard,nab_low_fp,nab_low_fn\n"
    ));
    let svg = std::fs::read_to_string(out.join("plots/realAdExchange_exchange-2_cpc_results.svg"))
        .unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let r = &report.files[0];
    assert_eq!(r.windows, 1);
    assert!((0.0..=1.0).contains(&r.f1));
    print_report(&report);
}

/// The hand-computed fixture: `tests/fixtures/nab/` (48 points at 5 min, labels with two
/// windows, scores in NAB's results layout), alarms at score ≥ 0.5.
///
/// Probation: ⌊0.15·48⌋ = ⌊7.2⌋ = 7 points (indices 0–6). Windows: W1 = 01:00–01:45 =
/// indices 12–21 (width 10), W2 = 02:10–02:30 = indices 26–30 (width 5).
/// Alarms (score ≥ 0.5) and their unweighted sweep scores, scaledSigmoid(y) = 2/(1+e^{5y})−1:
/// - i = 3 (0.9): in probation, ignored.
/// - i = 8 (0.8): before the first window: scaledSigmoid(3) = −1, an FP: −FP.
/// - i = 13 (0.95): W1, position −(21−13+1)/10 = −0.9: scaledSigmoid(−0.9) /
///   scaledSigmoid(−1) = 0.9780261147388136 / 0.9866142981514305 = 0.9912952980422967.
/// - i = 18 (0.7): W1 again, −0.4: 0.7719269398210883 < 0.9913, does not count.
/// - i = 22 (0.6): right after W1, |22−21|/(10−1) = 1/9: scaledSigmoid(1/9) =
///   −0.2708471185167214, times FP.
/// - W2: no alarm: −FN.
/// - i = 45 (0.75): after W2, |45−30|/(5−1) = 3.75 ≥ 3: −1, times FP.
///
/// raw = TP·0.9912952980422967 − FN − FP + FP·(−0.2708471185167214) − FP; null = −2·FN,
/// perfect = 2·TP; normalised = 100·(raw − null)/(perfect − null):
/// - standard (1, 0.11, 1): raw = 0.9912952980422967 − 1 − 0.11 − 0.029793183036839 − 0.11
///   = −0.2584978849945427; 100·1.7415021150054573/4 = 43.537552875136434.
/// - low FP (1, 0.22, 1): raw = 0.9912952980422967 − 1 − 0.22 − 0.059586366073678 − 0.22
///   = −0.508291068031382; 100·1.491708931968618/4 = 37.292723299215446.
/// - low FN (1, 0.11, 2): raw = 0.9912952980422967 − 2 − 0.11 − 0.029793183036839 − 0.11
///   = −1.258497884994543; 100·2.741502115005457/6 = 45.691701916757616.
#[test]
fn nab_fixture_hand_computed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nab");
    let (_, _, ts, values) =
        read_series(Path::new(&format!("{dir}/data/fixture/tiny.csv"))).unwrap();
    assert_eq!(values.len(), 48);
    let labels = read_labels(Path::new(&format!("{dir}/labels.json"))).unwrap();
    let windows = window_indices(&labels, "fixture/tiny.csv", &ts).unwrap();
    assert_eq!(windows, vec![(12, 21), (26, 30)]);
    let probation = nab_probation(ts.len());
    assert_eq!(probation, 7);
    let scores = read_results(Path::new(&format!(
        "{dir}/results/handmade/fixture/handmade_tiny.csv"
    )))
    .unwrap();
    let alarms = debounce(&scores, 0.5, 0);
    let on: Vec<usize> = (0..48).filter(|&i| alarms[i]).collect();
    assert_eq!(on, vec![3, 8, 13, 18, 22, 45]);
    // the sigmoid values used above
    assert!((scaled_sigmoid(-1.0) - 0.9866142981514305).abs() < 1e-15);
    assert!((scaled_sigmoid(-0.9) - 0.9780261147388136).abs() < 1e-15);
    assert!((scaled_sigmoid(1.0 / 9.0) + 0.2708471185167214).abs() < 1e-15);
    assert_eq!(scaled_sigmoid(3.75), -1.0);
    let expect = [
        (-0.2584978849945427, -2.0, 2.0, 43.537552875136434),
        (-0.508291068031382, -2.0, 2.0, 37.292723299215446),
        (-1.258497884994543, -4.0, 2.0, 45.691701916757616),
    ];
    for (p, (raw, null, perfect, norm)) in NAB_PROFILES.iter().zip(expect) {
        let (r, n, pf) = nab_score_profile(&alarms, &windows, probation, p);
        assert!((r - raw).abs() < 1e-9, "{} raw {r} vs {raw}", p.name);
        assert_eq!((n, pf), (null, perfect), "{}", p.name);
        assert!((nab_normalise(r, n, pf) - norm).abs() < 1e-9, "{}", p.name);
    }
    assert_eq!(
        nab_score(&alarms, &windows, probation).0,
        nab_score_profile(&alarms, &windows, probation, &NAB_STANDARD).0
    );
    // through the summary as well
    let fr = evaluate(
        "handmade",
        "fixture/tiny.csv",
        "fixture",
        &scores,
        &windows,
        probation,
        0.5,
        0,
    );
    let s = summarise("handmade", "ALL", &[&fr]);
    for (got, want) in s.nab.iter().zip(expect) {
        assert!((got - want.3).abs() < 1e-9);
    }
}

/// Brute force: every candidate threshold scored from scratch.
fn brute_optimum(files: &[&ScoredFile]) -> [(f64, f64); 3] {
    let mut cands: Vec<f64> = files
        .iter()
        .flat_map(|f| f.scores.iter().copied())
        .collect();
    cands.push(NO_DETECTION_THRESHOLD);
    cands.sort_by(|a, b| b.total_cmp(a));
    cands.dedup();
    let mut best = [(f64::NAN, f64::NEG_INFINITY); 3];
    for &th in &cands {
        let mut parts = NabParts::default();
        for f in files {
            let a = debounce(&f.scores, th, f.refractory);
            parts.add(&nab_parts(&a, &f.windows, f.probation));
        }
        for (b, p) in best.iter_mut().zip(NAB_PROFILES.iter()) {
            if parts.raw(p) > b.1 + 1e-9 {
                *b = (th, parts.raw(p));
            }
        }
    }
    best
}

#[test]
fn optimize_matches_brute_force() {
    // scores: each real series' |value − median| scaled to [0, 1], rounded to 1e-3 so
    // that ties occur; real windows and probation
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab");
    let labels = read_labels(Path::new(&format!("{root}/labels/combined_windows.json"))).unwrap();
    let mut files = Vec::new();
    for key in [
        "realAdExchange/exchange-2_cpc_results.csv",
        "realAdExchange/exchange-3_cpc_results.csv",
    ] {
        let (_, _, ts, values) = read_series(Path::new(&format!("{root}/data/{key}"))).unwrap();
        let mut sorted: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        let med = median(&mut sorted);
        let dev: Vec<f64> = values.iter().map(|&v| (v as f64 - med).abs()).collect();
        let top = dev.iter().cloned().fold(0.0, f64::max);
        let probation = nab_probation(ts.len());
        let scores: Vec<f64> = dev
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if i < probation {
                    0.0
                } else {
                    (d / top * 1000.0).round() / 1000.0
                }
            })
            .collect();
        files.push(ScoredFile {
            detector: "dev".into(),
            file: key.into(),
            category: "realAdExchange".into(),
            probation,
            windows: window_indices(&labels, key, &ts).unwrap(),
            scores,
            refractory: 0,
        });
    }
    for refractory in [0, 1, 24, 288] {
        let fs: Vec<ScoredFile> = files
            .iter()
            .cloned()
            .map(|mut f| {
                f.refractory = refractory;
                f
            })
            .collect();
        let refs: Vec<&ScoredFile> = fs.iter().collect();
        let fast = optimize(&refs);
        let slow = brute_optimum(&refs);
        for ((ft, fr), (st, sr)) in fast.iter().zip(slow) {
            assert!(
                (fr - sr).abs() < 1e-9,
                "refractory {refractory}: {fr} vs {sr}"
            );
            assert_eq!(*ft, st, "refractory {refractory}");
        }
        // the per-file oracle: each file's brute-force optimum, normalised over both
        // files; never below the joint optimum
        let oracle = per_file_oracle(&refs);
        let mut windows = NabParts::default();
        refs.iter().for_each(|f| windows.add(&file_steps(f).0));
        for (i, p) in NAB_PROFILES.iter().enumerate() {
            let raw: f64 = refs.iter().map(|f| brute_optimum(&[f])[i].1).sum();
            let want = nab_normalise(raw, windows.null(p), windows.perfect(p));
            assert!((oracle[i] - want).abs() < 1e-9, "{} vs {want}", oracle[i]);
            let joint = nab_normalise(fast[i].1, windows.null(p), windows.perfect(p));
            assert!(
                oracle[i] >= joint - 1e-9,
                "oracle {} < joint {joint}",
                oracle[i]
            );
        }
    }
}

#[test]
fn categories_default_and_errors() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nab");
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = NabEvalOptions::new(
        format!("{fixture}/data").into(),
        format!("{fixture}/labels.json").into(),
        tmp.path().join("out"),
    );
    assert_eq!(categories(&opts).unwrap(), vec!["fixture".to_string()]);
    opts.categories = Some(vec!["a".into(), "b".into()]);
    assert_eq!(
        categories(&opts).unwrap(),
        vec!["a".to_string(), "b".to_string()]
    );
    // a missing labels file, bad JSON, a missing folder: errors name the path
    let missing = tmp.path().join("nope.json");
    let e = format!("{:#}", read_labels(&missing).unwrap_err());
    assert!(e.contains("nope.json"), "{e}");
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"x\": 3}").unwrap();
    let e = format!("{:#}", read_labels(&bad).unwrap_err());
    assert!(e.contains("bad.json"), "{e}");
    opts.categories = None;
    opts.nab_dir = tmp.path().join("nodata");
    let e = format!("{:#}", run_nab_eval(&opts).unwrap_err());
    assert!(e.contains("nodata"), "{e}");
    let e = format!("{:#}", read_results(&tmp.path().join("r.csv")).unwrap_err());
    assert!(e.contains("r.csv"), "{e}");
}

/// The agent's exported decision is the evaluation's `agent` detector, point for point:
/// one real NAB file (5-minute CPU utilisation, regular timestamps) fed through the
/// agent's ingest (remote-write 1.0 requests, snappy, decode, validate, append), one
/// point per forecast step of the real loop over a real store, and the exported
/// `N:anomalous` / `N:anomaly_score` / `N:anomaly_likelihood` read back from the
/// rendered scrape text, against [`agent_verdicts`] on the file's values.
#[test]
fn agent_exports_what_the_evaluation_scores() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab/data");
    let path = format!("{root}/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv");
    let (_, _, secs, values) = read_series(Path::new(&path)).unwrap();
    let ts: Vec<i64> = secs.iter().map(|s| s * 1000).collect();
    assert!(
        ts.windows(2).all(|w| w[1] - w[0] == 300_000),
        "regular steps"
    );
    // The eval's defaults in agent terms: ring 1440 points, retrain every 60 points, season
    // one day (288 points), each detector's own signal, threshold and suppression (the
    // default knn's, the forest's likelihood with one day's hold); and the forest's score
    // with a threshold low enough for firings to compare.
    for anomaly in [
        "{ retrain_every: 5h }",
        "{ detector: forest, retrain_every: 5h }",
        "{ detector: forest, signal: score, threshold: 0.55, retrain_every: 5h }",
    ] {
        agent_matches_evaluation(anomaly, &ts, &values);
    }
}

/// `--suppress` in each file's steps: 5-minute files have 288 points a day, hourly ones 24.
#[test]
fn the_hold_is_counted_in_each_files_steps() {
    let h = std::time::Duration::from_secs;
    assert_eq!(hold_points(h(86_400), 288), 288);
    assert_eq!(hold_points(h(86_400), 24), 24);
    assert_eq!(hold_points(h(12 * 3600), 288), 144);
    assert_eq!(hold_points(h(12 * 3600), 24), 12);
    assert_eq!(hold_points(h(2 * 86_400), 24), 48);
    assert_eq!(hold_points(h(0), 288), 0);
}

fn agent_matches_evaluation(anomaly: &str, ts: &[i64], values: &[f32]) {
    use crate::config::Config;
    use crate::ingest::{Ingest, Protocol};
    use crate::proto::prometheus as pb;
    use crate::snapshot::{Snapshot, SnapshotCell};
    use crate::step::Scheduler;
    use crate::store::Store;
    use prost::Message as _;
    use std::sync::Arc;

    let yaml = format!(
        "storage: {{ step: 5m, retention: 5d, idle_timeout: 3650d }}\n\
         forecast:\n  - selector: '{{__name__=\"cpu\"}}'\n    model: naive\n    \
         seasons: [1d]\n    anomaly: {anomaly}\n\
         limits: {{ max_series: 10, max_future: 3650d }}\n"
    );
    let config = Arc::new(Config::from_yaml(&yaml, "test", None).unwrap());
    let spec = config.forecast[0].anomaly.clone().unwrap();
    assert_eq!(spec.retrain_every, 60);
    let day_or_none = spec.detector.verdict().suppress_secs as usize / 300;
    assert_eq!(spec.suppress, day_or_none, "{anomaly}");
    let expected = agent_verdicts(values, &[288], config.ring_len.get(), &spec, 0);

    let store = Arc::new(Store::new(&config, ts[0]));
    let telemetry = Arc::new(crate::telemetry::Telemetry::new(Vec::new()));
    let ingest = Ingest::new(store.clone(), telemetry, config.limits.clone());
    let cell = Arc::new(SnapshotCell::new(Snapshot::empty(&config)));
    let mut sched = Scheduler::new(config.clone(), store, cell, None).unwrap();
    let (mut fired, mut compared) = (0, 0);
    for (t, (&at, &v)) in ts.iter().zip(values).enumerate() {
        let req = pb::WriteRequest {
            timeseries: vec![pb::TimeSeries {
                labels: vec![pb::Label {
                    name: "__name__".into(),
                    value: "cpu".into(),
                }],
                samples: vec![pb::Sample {
                    value: v as f64,
                    timestamp: at,
                }],
            }],
            ..Default::default()
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        ingest.ingest_snappy(&body, Protocol::V1, at).unwrap();
        let step = sched.step(at);
        let mut text = String::new();
        crate::export::scrape::render_forecasts(&step.snapshot, &mut text);
        let read = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("cpu:{name}{{}} ")))
                .map(|v| v.parse::<f64>().unwrap())
        };
        let exported = (
            read("anomaly_score"),
            read("anomaly_likelihood"),
            read("anomalous"),
        );
        let want = expected[t].map(|a| (a.score, a.likelihood, a.direction as f64));
        match (want, exported) {
            (None, (None, None, None)) => {}
            (Some((s, l, d)), (Some(es), Some(el), Some(ed))) => {
                // The text carries the shortest repr that parses back to the same f64.
                assert_eq!(
                    (es.to_bits(), el.to_bits(), ed),
                    (s.to_bits(), l.to_bits(), d),
                    "{anomaly}: point {t}"
                );
                compared += 1;
                fired += (d != 0.0) as usize;
            }
            (w, e) => panic!("{anomaly}: point {t}: evaluation {w:?}, agent {e:?}"),
        }
    }
    assert!(
        compared > values.len() - 200,
        "{anomaly}: {compared} points compared"
    );
    assert!(
        fired >= 3,
        "{anomaly}: only {fired} firings: the comparison would be weak"
    );
}
