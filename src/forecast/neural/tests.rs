//! Tests of the model contract, the input rows and the tract backend against reference
//! implementations.

use super::fixture::{
    fixture_model_with_features, INIT_HEAD_B, INIT_HEAD_W, INIT_LSTM_B, INIT_LSTM_R, INIT_LSTM_W,
    INIT_Q_OFFSET,
};
use super::window::{quantile_sorted, RowNorm};
use super::*;
use crate::rng::SplitMix64;

const MIN: Duration = Duration::from_secs(60);

fn mins(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

fn load_fixture(params: &FixtureParams) -> LstmModel {
    LstmModel::from_bytes(&fixture_model(params), "fixture").expect("fixture loads")
}

/// A real-looking series: a level, a daily-ish wave and noise, with magnitudes from 1 to 1e4.
fn series(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let level = 10f64.powf(rng.unit() * 4.0);
    let amp = level * 0.2 * rng.unit();
    let phase = rng.unit() * std::f64::consts::TAU;
    (0..len)
        .map(|t| {
            let wave = (t as f64 / 9.0 + phase).sin();
            (level + amp * wave + 0.1 * level * (rng.unit() - 0.5)) as f32
        })
        .collect()
}

/// The fixture's weights, read back from the ONNX file, and an independent f64 forward pass
/// of its graph (ONNX LSTM equations, gate order i, o, f, c).
struct Reference {
    w: Vec<f64>,
    r: Vec<f64>,
    b: Vec<f64>,
    head_w: Vec<f64>,
    head_b: Vec<f64>,
    q_offset: Vec<f64>,
    hidden: usize,
    features: usize,
    outputs: usize,
}

impl Reference {
    fn from_bytes(bytes: &[u8]) -> Reference {
        let model = onnx::ModelProto::decode(bytes).unwrap();
        let graph = model.graph.unwrap();
        let get = |name: &str| -> (Vec<i64>, Vec<f64>) {
            let t = graph
                .initializer
                .iter()
                .find(|t| t.name() == name)
                .unwrap_or_else(|| panic!("no initializer {name}"));
            (
                t.dims.clone(),
                t.float_data.iter().map(|v| *v as f64).collect(),
            )
        };
        let (w_dims, w) = get(INIT_LSTM_W);
        let (_, r) = get(INIT_LSTM_R);
        let (_, b) = get(INIT_LSTM_B);
        let (hw_dims, head_w) = get(INIT_HEAD_W);
        let (_, head_b) = get(INIT_HEAD_B);
        let (_, q_offset) = get(INIT_Q_OFFSET);
        Reference {
            w,
            r,
            b,
            head_w,
            head_b,
            q_offset,
            hidden: hw_dims[0] as usize,
            features: w_dims[2] as usize,
            outputs: hw_dims[1] as usize,
        }
    }

    /// `x` is `[n, window, features]`; returns `[n, horizons, quantiles]` flattened.
    fn forward(&self, x: &[f32], window: usize) -> Vec<f64> {
        let (hd, nf, k) = (self.hidden, self.features, self.outputs);
        let nq = self.q_offset.len();
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut out = Vec::new();
        for row in x.chunks_exact(window * nf) {
            let mut h = vec![0.0f64; hd];
            let mut c = vec![0.0f64; hd];
            for xt in row.chunks_exact(nf) {
                let gate = |g: usize| -> f64 {
                    let mut acc = self.b[g] + self.b[4 * hd + g];
                    for (j, xv) in xt.iter().enumerate() {
                        acc += self.w[g * nf + j] * *xv as f64;
                    }
                    for (j, hv) in h.iter().enumerate() {
                        acc += self.r[g * hd + j] * hv;
                    }
                    acc
                };
                let pre: Vec<f64> = (0..4 * hd).map(gate).collect();
                for u in 0..hd {
                    let i = sigmoid(pre[u]);
                    let o = sigmoid(pre[hd + u]);
                    let f = sigmoid(pre[2 * hd + u]);
                    let g = pre[3 * hd + u].tanh();
                    c[u] = f * c[u] + i * g;
                    h[u] = o * c[u].tanh();
                }
            }
            let last = row[(window - 1) * nf] as f64;
            for j in 0..k {
                let mut acc = self.head_b[j];
                for (u, hv) in h.iter().enumerate() {
                    acc += hv * self.head_w[u * k + j];
                }
                out.push(acc + last + self.q_offset[j % nq]);
            }
        }
        out
    }
}

/// An independent (naive) robust normalisation, for cross-checking.
fn naive_norm(window: &[f32]) -> (f64, f64) {
    let mut v: Vec<f64> = window
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| *x as f64)
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| {
        let pos = p * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] * (1.0 - (pos - lo as f64)) + v[hi] * (pos - lo as f64)
    };
    let center = q(0.5);
    let scale = [q(0.75) - q(0.25), 1e-3 * center.abs(), 1e-9]
        .into_iter()
        .fold(f64::MIN, f64::max);
    (center, scale)
}

#[test]
fn fixture_round_trip_meta() {
    let params = FixtureParams::default();
    let model = load_fixture(&params);
    let meta = model.meta();
    assert_eq!(meta.window, 16);
    assert_eq!(meta.step, MIN);
    assert_eq!(meta.horizons, vec![mins(5), mins(15), mins(30)]);
    assert_eq!(meta.quantiles, vec![0.1, 0.5, 0.9]);
    assert_eq!(meta.features, vec![Feature::Value]);
    assert_eq!(meta.normalisation, Normalisation::RobustMedianIqr);
    assert_eq!(model.history_needed(model.meta().step), 16);
    assert_eq!(meta.outputs_per_row(), 9);
    assert_eq!(meta.quantile_index(0.5000001), Some(1));
    assert_eq!(meta.horizon_index(mins(30)), Some(2));

    let params = FixtureParams {
        window: 7,
        step: Duration::from_secs(1),
        horizons: vec![Duration::from_secs(10), mins(2)],
        quantiles: vec![0.05, 0.25, 0.5, 0.75, 0.95],
        hidden: 5,
        seed: 3,
    };
    let meta = load_fixture(&params).meta().clone();
    assert_eq!(meta.window, params.window);
    assert_eq!(meta.step, params.step);
    assert_eq!(meta.horizons, params.horizons);
    assert_eq!(meta.quantiles, params.quantiles);
}

#[test]
fn predict_shapes_order_and_persistence() {
    let model = load_fixture(&FixtureParams::default());
    let (hz, nq) = (3, 3);
    let mut out = vec![123.0; 5]; // must be cleared
    for n in [1usize, 3, 1000] {
        let data: Vec<Vec<f32>> = (0..n).map(|i| series(i as u64 + 1, 20)).collect();
        let histories: Vec<History<'_>> = data
            .iter()
            .map(|v| History {
                values: v,
                last_ts_ms: 1_700_000_000_000,
                calendar: true,
            })
            .collect();
        model
            .predict(&histories, model.meta().step, &mut out)
            .unwrap();
        assert_eq!(out.len(), n * hz * nq, "batch {n}");
        for (row, values) in out.chunks_exact(hz * nq).zip(&data) {
            let last = *values.last().unwrap();
            let (_, scale) = naive_norm(&values[values.len() - 16..]);
            for q in row.chunks_exact(nq) {
                assert!(q.iter().all(|v| v.is_finite()), "{q:?}");
                assert!(q[0] <= q[1] && q[1] <= q[2], "quantiles cross: {q:?}");
                // Persistence: the median is near the last value, which lies in the band.
                assert!(q[0] <= last && last <= q[2], "last {last} outside {q:?}");
                let tol = 0.5 * scale as f32 + 1e-3 * last.abs();
                assert!((q[1] - last).abs() <= tol, "median {} vs last {last}", q[1]);
                // Band ≈ ±0.64 IQR around the median.
                let half = (q[2] - q[0]) / 2.0;
                let expect = (0.5 * 1.281_551_6 * scale) as f32;
                assert!((half - expect).abs() <= 1e-3 * expect + 1e-4 * last.abs());
            }
        }
    }
}

#[test]
fn unforecastable_rows_are_nan_and_gaps_are_filled() {
    let model = load_fixture(&FixtureParams::default());
    let all_nan = vec![f32::NAN; 16];
    let mut gappy = series(9, 16);
    gappy[15] = f32::NAN; // newest missing: forward-filled from 14
    gappy[0] = f32::INFINITY; // leading gap: back-filled
    gappy[7] = f32::NAN;
    let good = series(10, 30);
    let histories = [
        History {
            values: &good,
            last_ts_ms: 0,
            calendar: true,
        },
        History {
            values: &all_nan,
            last_ts_ms: 0,
            calendar: true,
        },
        History {
            values: &gappy,
            last_ts_ms: 0,
            calendar: true,
        },
    ];
    let mut out = Vec::new();
    model
        .predict(&histories, model.meta().step, &mut out)
        .unwrap();
    assert_eq!(out.len(), 27);
    assert!(out[..9].iter().all(|v| v.is_finite()));
    assert!(out[9..18].iter().all(|v| v.is_nan()), "{:?}", &out[9..18]);
    let gappy_out = &out[18..];
    assert!(gappy_out.iter().all(|v| v.is_finite()), "{gappy_out:?}");
    let last_observed = gappy[14];
    for q in gappy_out.chunks_exact(3) {
        assert!(q[0] <= last_observed && last_observed <= q[2], "{q:?}");
    }

    // A batch of only unforecastable rows (and an empty batch) needs no inference.
    model
        .predict(
            &[History {
                values: &all_nan,
                last_ts_ms: 0,
                calendar: true,
            }],
            MIN,
            &mut out,
        )
        .unwrap();
    assert_eq!(out.len(), 9);
    assert!(out.iter().all(|v| v.is_nan()));
    model.predict(&[], model.meta().step, &mut out).unwrap();
    assert!(out.is_empty());

    // The filled row equals what the model gives for the same window filled by hand
    // (observed statistics are the same: only the gap positions differ in `mask`).
    let mut filled = Vec::new();
    let mut sorted = Vec::new();
    let meta = model.meta();
    let mut row = vec![0.0; 16];
    let norm = build_row(
        meta,
        meta.lag_steps(meta.step),
        meta.step,
        &History {
            values: &gappy,
            last_ts_ms: 0,
            calendar: true,
        },
        &mut row,
        &mut filled,
        &mut sorted,
    )
    .unwrap();
    assert_eq!(filled[0], gappy[1] as f64);
    assert_eq!(filled[7], gappy[6] as f64);
    assert_eq!(filled[15], gappy[14] as f64);
    assert_eq!(row[15], norm.normalise(gappy[14] as f64));
}

#[test]
fn predict_is_independent_of_batching_and_threads() {
    let model = load_fixture(&FixtureParams::default());
    let n = 2100; // more than two chunks
    let data: Vec<Vec<f32>> = (0..n).map(|i| series(1000 + i as u64, 16)).collect();
    let histories: Vec<History<'_>> = data
        .iter()
        .map(|v| History {
            values: v,
            last_ts_ms: 0,
            calendar: true,
        })
        .collect();
    let mut all = Vec::new();
    model
        .predict(&histories, model.meta().step, &mut all)
        .unwrap();
    assert_eq!(all.len(), n * 9);
    let mut one = Vec::new();
    for i in [0, 1, 1023, 1024, 2047, 2048, 2099] {
        model
            .predict(&histories[i..=i], model.meta().step, &mut one)
            .unwrap();
        for (a, b) in one.iter().zip(&all[i * 9..(i + 1) * 9]) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "row {i}: {a} vs {b}"
            );
        }
    }
    let shared = model.clone();
    let from_threads: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let m = shared.clone();
                let h = &histories;
                s.spawn(move || {
                    let mut out = Vec::new();
                    m.predict(h, MIN, &mut out).unwrap();
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in from_threads {
        // Same plan, fresh state per run: bit-identical.
        assert!(
            out == all,
            "a thread's forecasts differ from the single-thread run"
        );
    }
}

#[test]
fn tract_matches_reference_forward_pass() {
    let cases = [
        FixtureParams::default(),
        FixtureParams {
            window: 7,
            step: Duration::from_secs(1),
            horizons: vec![Duration::from_secs(10), mins(2)],
            quantiles: vec![0.05, 0.25, 0.5, 0.75, 0.95],
            hidden: 5,
            seed: 3,
        },
    ];
    for params in cases {
        let bytes = fixture_model(&params);
        let model = LstmModel::from_bytes(&bytes, "fixture").unwrap();
        let reference = Reference::from_bytes(&bytes);
        let mut rng = SplitMix64::new(params.seed);
        for n in [1usize, 4, 33] {
            let x: Vec<f32> = (0..n * params.window)
                .map(|_| (rng.unit() * 6.0 - 3.0) as f32)
                .collect();
            let mut got = Vec::new();
            model.inner.plan.run(n, &x, &mut got).unwrap();
            let want = reference.forward(&x, params.window);
            assert_eq!(got.len(), want.len());
            // The LSTM part alone must agree too, not just the persistence skip.
            let lstm_signal = want
                .iter()
                .zip(x.chunks_exact(params.window).flat_map(|r| {
                    std::iter::repeat_n(r[params.window - 1] as f64, reference.outputs)
                }))
                .map(|(w, last)| (w - last).abs())
                .fold(0.0, f64::max);
            assert!(lstm_signal > 1e-3, "the head contributes: {lstm_signal}");
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-4, "tract {g} vs reference {w}");
            }
        }
    }
}

#[test]
fn predict_matches_reference_with_independent_normalisation() {
    let params = FixtureParams::default();
    let bytes = fixture_model(&params);
    let model = LstmModel::from_bytes(&bytes, "fixture").unwrap();
    let reference = Reference::from_bytes(&bytes);
    let data: Vec<Vec<f32>> = (0..20).map(|i| series(77 + i, 25)).collect();
    let histories: Vec<History<'_>> = data
        .iter()
        .map(|v| History {
            values: v,
            last_ts_ms: 0,
            calendar: true,
        })
        .collect();
    let mut out = Vec::new();
    model
        .predict(&histories, model.meta().step, &mut out)
        .unwrap();
    for (values, got) in data.iter().zip(out.chunks_exact(9)) {
        let window = &values[values.len() - 16..];
        let (center, scale) = naive_norm(window);
        let x: Vec<f32> = window
            .iter()
            .map(|v| ((*v as f64 - center) / scale) as f32)
            .collect();
        let want = reference.forward(&x, 16);
        for (g, w) in got.iter().zip(&want) {
            let expect = w * scale + center;
            let tol = 1e-4 * scale + 1e-6 * center.abs();
            assert!((*g as f64 - expect).abs() <= tol, "{g} vs {expect}");
        }
    }
}

#[test]
fn all_features_model_loads_builds_inputs_and_matches_reference() {
    let params = FixtureParams {
        window: 12,
        step: Duration::from_secs(3600),
        ..FixtureParams::default()
    };
    // The features with a per-step definition (the lead ones have their own test).
    let features = &Feature::ALL[..8];
    let bytes = fixture_model_with_features(&params, features);
    let model = LstmModel::from_bytes(&bytes, "all-features").unwrap();
    assert_eq!(model.meta().features, features.to_vec());
    assert_eq!(model.history_needed(model.meta().step), 12 + 168);
    let reference = Reference::from_bytes(&bytes);
    assert_eq!(reference.features, 8);

    let long = series(5, 200);
    let short = series(6, 14);
    let histories = [
        History {
            values: &long,
            last_ts_ms: 1_704_067_200_000,
            calendar: true,
        },
        History {
            values: &short,
            last_ts_ms: 1_704_067_200_000,
            calendar: true,
        },
    ];
    let mut out = Vec::new();
    model
        .predict(&histories, model.meta().step, &mut out)
        .unwrap();
    assert_eq!(out.len(), 18);
    for (h, got) in histories.iter().zip(out.chunks_exact(9)) {
        let mut row = vec![0.0; 12 * 8];
        let norm = build_row(
            model.meta(),
            model.meta().lag_steps(model.meta().step),
            model.meta().step,
            h,
            &mut row,
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .unwrap();
        let want = reference.forward(&row, 12);
        for (g, w) in got.iter().zip(&want) {
            let expect = w * norm.scale + norm.center;
            assert!(
                (*g as f64 - expect).abs() <= 1e-4 * norm.scale + 1e-6 * norm.center.abs(),
                "{g} vs {expect}"
            );
        }
    }
}

#[test]
fn time_and_lag_features() {
    let meta = ModelMeta {
        window: 4,
        step: Duration::from_secs(6 * 3600),
        steps: vec![Duration::from_secs(6 * 3600)],
        horizons: vec![Duration::from_secs(6 * 3600)],
        quantiles: vec![0.5],
        features: Feature::ALL[..8].to_vec(),
        normalisation: Normalisation::RobustMedianIqr,
    };
    let lags = meta.lag_steps(meta.step);
    assert_eq!((lags.day, lags.week, lags.lead), (Some(4), Some(28), 1));
    // 2024-01-01 00:00 UTC was a Monday; the newest step is then, the others 6h apart.
    let monday = 1_704_067_200_000i64;
    let mut values: Vec<f32> = (0..40).map(|i| i as f32).collect();
    values[39 - 4] = f32::NAN; // the day-lag of the newest step is a gap
    let h = History {
        values: &values,
        last_ts_ms: monday,
        calendar: true,
    };
    let mut row = vec![0.0; 4 * 8];
    let norm = build_row(
        &meta,
        lags,
        meta.step,
        &h,
        &mut row,
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .unwrap();
    fn step(row: &[f32], j: usize) -> &[f32] {
        &row[j * 8..(j + 1) * 8]
    }
    let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-6;
    // Newest step (j = 3): Monday 00:00.
    let s = step(&row, 3);
    assert_eq!(s[0], norm.normalise(39.0));
    assert_eq!(s[1], 1.0);
    assert!(close(s[2], 0.0) && close(s[3], 1.0), "tod {s:?}");
    assert!(close(s[4], 0.0) && close(s[5], 1.0), "dow {s:?}");
    assert_eq!(s[6], s[0], "lag_1d at a gap falls back to the own value");
    assert_eq!(s[7], norm.normalise(39.0 - 28.0));
    // j = 2: Sunday 18:00 → tod phase 3/4, dow phase (6.75 / 7) of the week.
    let s = step(&row, 2);
    assert!(close(s[2], -1.0) && close(s[3], 0.0), "tod {s:?}");
    let dow = std::f64::consts::TAU * 6.75 / 7.0;
    assert!(
        close(s[4], dow.sin()) && close(s[5], dow.cos()),
        "dow {s:?}"
    );
    assert_eq!(s[6], norm.normalise(38.0 - 4.0));

    // Lags beyond the history fall back to the step's own value.
    let short: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0];
    let h = History {
        values: &short,
        last_ts_ms: monday,
        calendar: true,
    };
    build_row(
        &meta,
        lags,
        meta.step,
        &h,
        &mut row,
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .unwrap();
    for j in 0..4 {
        let s = step(&row, j);
        assert_eq!(s[6], s[0]);
        assert_eq!(s[7], s[0]);
    }
}

/// The calendar features are each step's time of day and week, whatever window the thread
/// built before (they are kept for the last window asked for): rows for windows ending at
/// different times, with and without calendar meaning, alternating.
#[test]
fn calendar_features_follow_each_window() {
    let step = Duration::from_secs(3600);
    let meta = ModelMeta {
        window: 6,
        step,
        steps: vec![step],
        horizons: vec![step],
        quantiles: vec![0.5],
        features: vec![
            Feature::Value,
            Feature::TodSin,
            Feature::TodCos,
            Feature::DowSin,
            Feature::DowCos,
        ],
        normalisation: Normalisation::RobustMedianIqr,
    };
    let values: Vec<f32> = (0..30).map(|i| (i % 7) as f32).collect();
    let (monday, week, day) = (4 * 86_400_000i64, 7 * 86_400_000i64, 86_400_000i64);
    let angle = |t: i64, origin: i64, period: i64| {
        std::f64::consts::TAU * (t - origin).rem_euclid(period) as f64 / period as f64
    };
    let ends = [
        (1_700_000_000_000i64, true),
        (1_700_000_000_000 + 5 * 3_600_000, true),
        (1_700_000_000_000, false),
        (1_700_000_000_000, true),
        (-3 * 3_600_000, true),
    ];
    for (last_ts_ms, calendar) in ends {
        let h = History {
            values: &values,
            last_ts_ms,
            calendar,
        };
        let mut row = vec![0.0; 6 * 5];
        build_row(
            &meta,
            meta.lag_steps(step),
            step,
            &h,
            &mut row,
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .unwrap();
        for j in 0..6 {
            let t = last_ts_ms - (5 - j as i64) * 3_600_000;
            let want = if calendar {
                let (d, w) = (angle(t, 0, day), angle(t, monday, week));
                [
                    d.sin() as f32,
                    d.cos() as f32,
                    w.sin() as f32,
                    w.cos() as f32,
                ]
            } else {
                [0.0; 4]
            };
            assert_eq!(
                row[j * 5 + 1..j * 5 + 5],
                want,
                "window ending {last_ts_ms}, step {j}"
            );
        }
    }
}

#[test]
fn lead_features_carry_the_day_before_each_target() {
    // step 6h: a day is 4 steps; horizons 6h and 12h: the lead L is 2 steps.
    let six = Duration::from_secs(6 * 3600);
    let meta = ModelMeta {
        window: 4,
        step: six,
        steps: vec![six],
        horizons: vec![six, six * 2],
        quantiles: vec![0.5],
        features: vec![Feature::Value, Feature::Lag1dLead, Feature::Lag1dLeadMask],
        normalisation: Normalisation::RobustMedianIqr,
    };
    let lags = meta.lag_steps(six);
    assert_eq!((lags.day, lags.lead), (Some(4), 2));
    let mut values: Vec<f32> = (0..40).map(|i| i as f32).collect();
    values[37 - 2] = f32::NAN; // the lead point of window step j = 2 (index 37)
    let h = History {
        values: &values,
        last_ts_ms: 0,
        calendar: false,
    };
    let mut row = vec![0.0; 4 * 3];
    let norm = build_row(
        &meta,
        lags,
        six,
        &h,
        &mut row,
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .unwrap();
    // j = 3 (index 39): the point 2 steps later minus a day is index 37.
    assert_eq!(row[9 + 1], norm.normalise(37.0));
    assert_eq!(row[9 + 2], 1.0);
    // j = 2 (index 38): index 36... is there; j = 1 (index 37): index 35 is the gap.
    assert_eq!(row[6 + 1], norm.normalise(36.0));
    assert_eq!(
        row[3 + 1],
        row[3],
        "a missing lead point falls back to the own value"
    );
    assert_eq!(row[3 + 2], 0.0);
    // The lead point of the newest step is one day before its longest target.
    assert_eq!(39 + 2 - 4, 37);
}

#[test]
fn short_history_counts_as_leading_gaps() {
    let meta = load_fixture(&FixtureParams::default()).meta().clone();
    let values = [5.0f32, 7.0];
    let mut row = vec![0.0; 16];
    let mut filled = Vec::new();
    let norm = build_row(
        &meta,
        meta.lag_steps(meta.step),
        meta.step,
        &History {
            values: &values,
            last_ts_ms: 0,
            calendar: true,
        },
        &mut row,
        &mut filled,
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(norm.center, 6.0);
    assert!(filled[..15].iter().all(|v| *v == 5.0));
    assert_eq!(filled[15], 7.0);
}

#[test]
fn normalisation_inverts_and_handles_constant_windows() {
    let mut sorted = Vec::new();
    let s = [4.0, 1.0, 3.0, 2.0];
    assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
    assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.75), 3.25);
    let n = RowNorm::robust(s, &mut sorted).unwrap();
    assert_eq!(
        n,
        RowNorm {
            center: 2.5,
            scale: 1.5,
            clip: f32::INFINITY,
            flat: false,
        }
    );
    // The MAD floor: a flat window with one spike keeps a scale of 1.25 × the mean
    // absolute deviation, and inputs are clipped.
    let spike = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 80.0];
    let m = RowNorm::new(Normalisation::RobustMedianIqrMad, spike, &mut sorted).unwrap();
    assert_eq!((m.center, m.scale), (0.0, 1.25 * 10.0));
    assert!(m.flat && !n.flat);
    assert_eq!(m.normalise(80.0), 6.4);
    assert_eq!(m.normalise(1e9), CLIP_MAD);

    for seed in 0..20 {
        let window = series(seed, 16);
        let n = RowNorm::robust(window.iter().map(|v| *v as f64), &mut sorted).unwrap();
        let (c, sc) = naive_norm(&window);
        assert_eq!((n.center, n.scale), (c, sc));
        for x in &window {
            let back = n.denormalise(n.normalise(*x as f64));
            assert!((back - x).abs() <= 1e-6 * x.abs(), "{back} vs {x}");
        }
    }

    for constant in [0.0f64, 42.0, -3e6] {
        let n = RowNorm::robust([constant; 16], &mut sorted).unwrap();
        assert!(n.scale > 0.0 && n.scale.is_finite());
        assert_eq!(n.normalise(constant), 0.0);
        assert_eq!(n.denormalise(0.0), constant as f32);
    }
    assert_eq!(
        RowNorm::robust([f64::NAN, f64::INFINITY], &mut sorted),
        None
    );

    // Through the model: a constant series forecasts finite values at that constant.
    let model = load_fixture(&FixtureParams::default());
    let flat = vec![42.0f32; 16];
    let zeros = vec![0.0f32; 16];
    let mut out = Vec::new();
    model
        .predict(
            &[
                History {
                    values: &flat,
                    last_ts_ms: 0,
                    calendar: true,
                },
                History {
                    values: &zeros,
                    last_ts_ms: 0,
                    calendar: true,
                },
            ],
            MIN,
            &mut out,
        )
        .unwrap();
    assert!(out[..9].iter().all(|v| (v - 42.0).abs() < 0.1), "{out:?}");
    assert!(out[9..].iter().all(|v| v.abs() < 1e-6), "{out:?}");
}

#[test]
fn check_fits_names_the_mismatch() {
    let model = load_fixture(&FixtureParams::default());
    model
        .check_fits(MIN, &[mins(5), mins(30)], &[0.1, 0.9])
        .unwrap();
    model.check_fits(MIN, &[], &[0.1000000001]).unwrap();

    let e = model
        .check_fits(Duration::from_secs(1), &[mins(5)], &[0.1, 0.9])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model step 1m does not match storage.step 1s"),
        "{e}"
    );
    assert!(e.contains("fixture"), "{e}");

    let e = model
        .check_fits(MIN, &[mins(5), mins(10)], &[0.1, 0.9])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no horizon 10m"), "{e}");
    assert!(e.contains("5m,15m,30m"), "{e}");

    let e = model
        .check_fits(MIN, &[mins(5)], &[0.05, 0.9])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no quantile 0.05"), "{e}");

    let no_median = FixtureParams {
        quantiles: vec![0.1, 0.9],
        ..FixtureParams::default()
    };
    // A model without 0.5 does not even load.
    let e = LstmModel::from_bytes(&fixture_model(&no_median), "m.onnx")
        .unwrap_err()
        .to_string();
    assert!(e.contains("promcast.quantiles") && e.contains("0.5"), "{e}");
}

/// The fixture with its metadata edited by `edit`.
fn with_metadata(edit: impl FnOnce(&mut Vec<onnx::StringStringEntryProto>)) -> Vec<u8> {
    let mut proto =
        onnx::ModelProto::decode(&fixture_model(&FixtureParams::default())[..]).unwrap();
    edit(&mut proto.metadata_props);
    proto.encode_to_vec()
}

fn set(props: &mut [onnx::StringStringEntryProto], key: &str, value: &str) {
    props.iter_mut().find(|p| p.key() == key).unwrap().value = Some(value.to_owned());
}

#[test]
fn metadata_errors_name_key_and_file() {
    let bytes = with_metadata(|p| p.retain(|e| e.key() != KEY_WINDOW));
    let err = LstmModel::from_bytes(&bytes, "models/x.onnx").unwrap_err();
    assert!(
        matches!(&err, NeuralError::Metadata { key, .. } if key == KEY_WINDOW),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(
        e.contains("promcast.window") && e.contains("models/x.onnx"),
        "{e}"
    );

    let bytes = with_metadata(|p| set(p, KEY_FEATURES, "value,moon_phase"));
    let e = LstmModel::from_bytes(&bytes, "m.onnx")
        .unwrap_err()
        .to_string();
    assert!(e.contains("moon_phase") && e.contains(KEY_FEATURES), "{e}");

    let cases: [(&str, &str, &str); 9] = [
        (KEY_FORMAT, "2", "unsupported format"),
        (KEY_WINDOW, "sixteen", "sixteen"),
        (KEY_STEP, "1 minute", "invalid duration"),
        (KEY_HORIZONS, "15m,5m", "strictly increasing"),
        (KEY_HORIZONS, "5m,,30m", "empty item"),
        (KEY_QUANTILES, "0.1,0.5,1.5", "1.5"),
        (KEY_FEATURES, "mask,value", "first feature"),
        (KEY_FEATURES, "value,lag_1d", "divides 1d"),
        (KEY_NORMALISATION, "zscore", "zscore"),
    ];
    for (key, value, needle) in cases {
        let bytes = with_metadata(|p| {
            set(p, key, value);
            if value == "value,lag_1d" {
                set(p, KEY_STEP, "7m");
            }
        });
        let e = LstmModel::from_bytes(&bytes, "m.onnx")
            .unwrap_err()
            .to_string();
        assert!(e.contains(key) && e.contains(needle), "{key}={value}: {e}");
    }

    // Metadata that disagree with the graph's declared shapes.
    let bytes = with_metadata(|p| set(p, KEY_WINDOW, "32"));
    let e = LstmModel::from_bytes(&bytes, "m.onnx").unwrap_err();
    assert!(matches!(e, NeuralError::Incompatible { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("input `input` is declared [?, 16, 1]"),
        "{e}"
    );
    let bytes = with_metadata(|p| set(p, KEY_HORIZONS, "5m,15m"));
    let e = LstmModel::from_bytes(&bytes, "m.onnx")
        .unwrap_err()
        .to_string();
    assert!(e.contains("output `output`"), "{e}");

    let e = LstmModel::from_bytes(b"\x08\x07garbage", "junk.onnx").unwrap_err();
    assert!(matches!(e, NeuralError::Onnx { .. }), "{e:?}");
    assert!(e.to_string().contains("junk.onnx"), "{e}");
}

#[test]
fn tract_failures_at_load_are_errors_not_panics() {
    // Without an explicit initial state, tract 0.23 panics optimising an LSTM whose batch
    // is symbolic; the loader must turn that into an error.
    let mut proto =
        onnx::ModelProto::decode(&fixture_model(&FixtureParams::default())[..]).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let lstm = graph
        .node
        .iter_mut()
        .find(|n| n.op_type() == "LSTM")
        .unwrap();
    lstm.input.truncate(4);
    let bytes = proto.encode_to_vec();
    let e = LstmModel::from_bytes(&bytes, "no-state.onnx").unwrap_err();
    assert!(matches!(e, NeuralError::Onnx { .. }), "{e:?}");
    assert!(e.to_string().contains("no-state.onnx"), "{e}");
}

#[test]
fn load_reads_files_and_names_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope").join("model.onnx");
    let e = LstmModel::load(&missing).unwrap_err();
    assert!(matches!(e, NeuralError::Io { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.starts_with("reading model file "), "{msg}");

    let path = dir.path().join("fixture.onnx");
    std::fs::write(&path, fixture_model(&FixtureParams::default())).unwrap();
    let model = LstmModel::load(&path).unwrap();
    assert_eq!(model.origin(), path.display().to_string());
    assert_eq!(model.meta().window, 16);
}

#[test]
fn committed_fixture_model_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixture-lstm.onnx");
    let committed = LstmModel::load(&path).expect("models/fixture-lstm.onnx loads");
    assert_eq!(
        committed.meta(),
        load_fixture(&FixtureParams::default()).meta()
    );
    let mut a = onnx::ModelProto::decode(&std::fs::read(&path).unwrap()[..]).unwrap();
    let mut b = onnx::ModelProto::decode(&fixture_model(&FixtureParams::default())[..]).unwrap();
    a.producer_version = None;
    b.producer_version = None;
    assert!(
        a == b,
        "models/fixture-lstm.onnx is stale: regenerate it with \
         `cargo run --example gen_fixture_model -- models/fixture-lstm.onnx`"
    );
}

#[test]
fn model_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<LstmModel>();
}

/// A window flat but for spikes (half or more of it at one value: the IQR is 0) is forecast
/// at its level, with the network's band around it: NAB's ec2_cpu_utilization_77c1ca, whose
/// CPU sits at 0.1 with a few higher readings, through the built-in model.
#[test]
fn a_flat_window_is_forecast_at_its_level() {
    let model = builtin_model().unwrap();
    let meta = model.meta();
    let values = crate::test_data::nab("realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv");
    let values = &values[..1170];
    let window = &values[values.len() - meta.window..];
    let mut sorted: Vec<f64> = window.iter().map(|v| *v as f64).collect();
    sorted.sort_by(f64::total_cmp);
    let level = quantile_sorted(&sorted, 0.5);
    assert_eq!(
        quantile_sorted(&sorted, 0.75),
        quantile_sorted(&sorted, 0.25)
    );
    assert!(sorted[sorted.len() - 1] > level, "spikes in the window");
    let mut out = Vec::new();
    let history = History {
        values,
        last_ts_ms: 0,
        calendar: false,
    };
    model.predict(&[history], meta.step, &mut out).unwrap();
    let q = meta.quantiles.len();
    let m = meta.quantile_index(0.5).unwrap();
    assert_eq!(out.len(), meta.horizons.len() * q);
    for h in out.chunks_exact(q) {
        assert_eq!(h[m], level as f32, "{h:?}");
        assert!(h[0] <= h[m] && h[m] <= h[q - 1], "{h:?}");
        assert!(h[q - 1] > h[0], "the network's band is kept: {h:?}");
    }
}
