//! The history's tests: alignment, growth, precision, scores, the memory budget.

use super::*;
use crate::snapshot::Point;

fn forecast(v: f64) -> SeriesForecast {
    let labels = Arc::new(LabelSet::from_pairs([("__name__", "a:b")]));
    SeriesForecast {
        points: vec![
            Point {
                yhat: v,
                lower: v - 1.0,
                upper: v + 1.0,
            },
            Point {
                yhat: v * 10.0,
                lower: v * 10.0 - 1.0,
                upper: v * 10.0 + 1.0,
            },
        ],
        ..SeriesForecast::new(labels, SeriesId(0), 0, 0, 0, 0)
    }
}

#[test]
fn aligns_forecasts_to_their_targets_and_forgets_old_ones() {
    let h = ForecastHistory::new(20);
    let id = SeriesId(7);
    // horizons 1 and 3 steps; origins 100..110
    for o in 100..110 {
        h.record(id, &forecast(o as f64), o, &[1, 3]);
    }
    let mut seen = 0;
    h.for_each(|e| {
        seen += 1;
        assert_eq!(e.head, 112);
        // target 105 at horizon 1 came from origin 104; at horizon 3 from origin 102
        assert_eq!(e.get(105, 0, 20), Some([104.0, 103.0, 105.0]));
        assert_eq!(e.get(105, 1, 20).unwrap()[0], 1020.0);
        // target 101: horizon 1 from origin 100; horizon 3 would be origin 98: never made
        assert_eq!(e.get(101, 0, 20).unwrap()[0], 100.0);
        assert_eq!(e.get(101, 1, 20), None);
        // outside the kept window (92, 112]
        assert_eq!(e.get(92, 0, 20), None);
        assert_eq!(e.get(113, 0, 20), None);
    });
    assert_eq!(seen, 1);
    h.sweep(113);
    h.for_each(|_| panic!("evicted"));
}

/// The slots grow with the kept span (a new series does not write its whole window) and
/// every kept forecast survives each growth: checked against a map of what was recorded,
/// through gaps and past the window's length.
#[test]
fn grows_as_it_fills_and_keeps_every_forecast() {
    let len = 100;
    let h = ForecastHistory::new(len);
    let id = SeriesId(9);
    let mut want = std::collections::HashMap::new();
    let mut origins: Vec<i64> = (1000..1030).collect();
    origins.extend(1040..1100); // a gap of 10 steps
    origins.extend(1300..1400); // beyond the window
    for (n, &o) in origins.iter().enumerate() {
        h.record(id, &forecast(o as f64), o, &[1, 3]);
        want.insert((o + 1, 0), o as f32);
        want.insert((o + 3, 1), (o * 10) as f32);
        h.for_each(|e| {
            assert!(e.slots() <= len);
            if n == 0 {
                assert_eq!(e.slots(), MIN_SLOTS, "first record");
            }
            for b in e.head - len as i64 + 1..=e.head {
                for hz in 0..2 {
                    let got = e.get(b, hz, len).map(|v| v[0]);
                    assert_eq!(
                        got,
                        want.get(&(b, hz)).copied(),
                        "after origin {o}: {b} h{hz}"
                    );
                }
            }
        });
    }
    h.for_each(|e| assert_eq!(e.slots(), len));
}

/// One step of the agent for `ids`: each recorded at `origin` (horizons 1 and 3, scored),
/// then the sweep and the span as `publish` does them.
fn step(h: &ForecastHistory, ids: &[u64], origin: i64) {
    for &id in ids {
        let mut f = forecast((origin * 100 + id as i64) as f64);
        f.anomaly = Some(Anomaly {
            score: 0.5,
            likelihood: 0.5,
            direction: 0,
        });
        h.record(SeriesId(id), &f, origin, &[1, 3]);
    }
    let usage = h.sweep(origin - h.span() as i64);
    h.rebudget(usage, 60_000);
}

/// Checks every series' kept forecasts against what was recorded: the newest `span`
/// targets of each are served exactly, none older.
fn served_as_recorded(h: &ForecastHistory, span: usize) {
    let mut seen = 0;
    h.for_each(|e| {
        seen += 1;
        // the newest target is horizon 3's; horizon 1's newest is two buckets before
        let id = e.get(e.head - 2, 0, span).unwrap()[0] as i64 % 100;
        for b in e.head - span as i64 - 5..=e.head - 2 {
            let want =
                (b >= e.first && b > e.head - span as i64).then(|| ((b - 1) * 100 + id) as f32);
            assert_eq!(
                e.get(b, 0, span).map(|v| v[0]),
                want,
                "series {id} bucket {b}"
            );
        }
        let scores: Vec<i64> = e.anomalies().map(|(b, _, _)| b).collect();
        assert!(scores.len() <= span, "{} scores kept", scores.len());
    });
    assert!(seen > 0);
}

/// With more series than fit the memory at the configured length, every series keeps the
/// same shorter span and the whole history stays within the budget; the span comes back
/// when series go, but not for a few (no resizing every step near the bound).
#[test]
fn keeps_within_its_memory_and_shortens_the_span_for_every_series() {
    let per_bucket = 2 * 8 + 2; // two horizons and the score
    let budget = 10 * per_bucket * 40;
    let metrics = crate::telemetry::Telemetry::default().forecast_history;
    let h = ForecastHistory::new(100)
        .with_budget(budget)
        .with_metrics(metrics.clone());
    let ten: Vec<u64> = (0..10).collect();
    for o in 1000..1200 {
        step(&h, &ten, o);
    }
    assert_eq!(
        h.span(),
        40,
        "ten series of 18 bytes a step in {budget} bytes"
    );
    assert_eq!(metrics.span_seconds.get(), 40.0 * 60.0);
    let held = metrics.bytes.get() as usize;
    assert!(held <= budget, "{held} bytes held, budget {budget}");
    assert!(held >= budget * 9 / 10, "{held} bytes held of {budget}");
    served_as_recorded(&h, 40);

    // one series fewer: 44 steps would fit, not an eighth more than 40: the span stays
    let nine: Vec<u64> = (0..9).collect();
    for o in 1200..1300 {
        step(&h, &nine, o);
    }
    assert_eq!(h.span(), 40);
    served_as_recorded(&h, 40);

    // half the series gone: 80 steps fit; the span rises and the entries grow into it
    let five: Vec<u64> = (0..5).collect();
    for o in 1300..1500 {
        step(&h, &five, o);
    }
    assert_eq!(h.span(), 80);
    let mut n = 0;
    h.for_each(|e| {
        n += 1;
        assert_eq!(e.bytes(), (80 * per_bucket, per_bucket));
    });
    assert_eq!(n, 5, "the others evicted");
    served_as_recorded(&h, 80);

    // twenty series: the span falls at once and the entries shrink as they are written
    let twenty: Vec<u64> = (0..20).collect();
    for o in 1500..1600 {
        step(&h, &twenty, o);
    }
    assert_eq!(h.span(), 20);
    assert!(metrics.bytes.get() as usize <= budget);
    served_as_recorded(&h, 20);

    // without a budget, nothing changes
    let unbounded = ForecastHistory::new(100);
    for o in 1000..1200 {
        step(&unbounded, &twenty, o);
    }
    assert_eq!(unbounded.span(), 100);
    served_as_recorded(&unbounded, 100);
}

/// Band edges come back within 0.4% of the band's half-width (yhat exact), wherever
/// the values lie; infinite and NaN edges stay so.
#[test]
fn band_edges_keep_their_stated_precision() {
    let h = ForecastHistory::new(16);
    let id = SeriesId(1);
    let cases = [
        (0.5, 0.1, 0.2),
        (1234.567, 17.3, 250.9),
        (3.0e9, 1.234e7, 5.0e5),
        (-42.0, 0.001, 1e-6),
        (7.0, 0.0, 0.0),
        (1.0, f64::INFINITY, 2.0),
        (1.0, f64::NAN, 2.0),
    ];
    for (o, &(y, below, above)) in cases.iter().enumerate() {
        let mut f = forecast(0.0);
        f.points[0] = Point {
            yhat: y,
            lower: y - below,
            upper: y + above,
        };
        h.record(id, &f, o as i64, &[1, 3]);
    }
    h.for_each(|e| {
        for (o, &(y, below, above)) in cases.iter().enumerate() {
            let [gy, lo, hi] = e.get(o as i64 + 1, 0, 16).unwrap();
            assert_eq!(gy, y as f32);
            let y = y as f32 as f64;
            for (got, want, d) in [(lo, y - below, below), (hi, y + above, above)] {
                let got = got as f64;
                if want.is_nan() {
                    assert!(got.is_nan(), "case {o}");
                } else if want.is_infinite() {
                    assert_eq!(got, want, "case {o}");
                } else {
                    // 2^-8 of the distance (half a bfloat16 step), plus f32 rounding of the edge
                    let tol = d * 2f64.powi(-8) + want.abs() * 2f64.powi(-23);
                    assert!((got - want).abs() <= tol, "case {o}: {got} vs {want}");
                }
            }
        }
    });
}

#[test]
fn keeps_anomaly_scores_by_bucket_and_forgets_old_ones() {
    let h = ForecastHistory::new(4);
    let id = SeriesId(3);
    for o in 10..17 {
        let mut f = forecast(1.0);
        if o != 14 {
            f.anomaly = Some(Anomaly {
                score: o as f64 / 100.0,
                likelihood: 0.5,
                direction: if o == 15 { 1 } else { 0 },
            });
        }
        h.record(id, &f, o, &[1, 3]);
    }
    let mut kept = Vec::new();
    h.for_each(|e| kept.extend(e.anomalies()));
    // four buckets kept (13..=16); 14 was not scored; scores to 1/16383
    let buckets: Vec<(i64, i8)> = kept.iter().map(|&(b, _, d)| (b, d)).collect();
    assert_eq!(buckets, vec![(13, 0), (15, 1), (16, 0)]);
    for (b, score, _) in kept {
        assert!(
            (score as f64 - b as f64 / 100.0).abs() <= 0.5 / 16383.0,
            "{b}: {score}"
        );
    }
    // every direction, the ends of the range, out-of-range scores clamped
    for (score, direction, want) in [
        (0.0, -1, 0.0),
        (1.0, 1, 1.0),
        (1.7, 0, 1.0),
        (-0.2, -1, 0.0),
        (0.5, 1, 0.5),
    ] {
        let a = Anomaly {
            score,
            likelihood: 0.5,
            direction,
        };
        let (got, d) = unpack_score(pack_score(a)).unwrap();
        assert_eq!(d, direction);
        assert!((got as f64 - want).abs() <= 0.5 / 16383.0, "{score}: {got}");
    }
    assert_eq!(unpack_score(NOT_SCORED), None);
}
