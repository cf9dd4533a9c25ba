//! The remote-read request path: snappy, `ReadRequest` decode, matchers (regexes compiled
//! from the request), time ranges and the sample limit, answered from a snapshot with a
//! forecast, a history and scaling samples. The harness compresses the input, so the fuzzer
//! explores the protobuf; any input must give a response or an error, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use promcast::export::history::ForecastHistory;
use promcast::export::remote_read;
use promcast::snapshot::{ForecastAccuracy, Point, SeriesForecast, Snapshot};
use promcast::store::{LabelSet, SeriesId};

fn state() -> &'static (Snapshot, ForecastHistory) {
    static STATE: OnceLock<(Snapshot, ForecastHistory)> = OnceLock::new();
    STATE.get_or_init(|| {
        // Built with `..SeriesForecast::new(..)` so that a field added to the snapshot does
        // not stop this harness from compiling (it did: `accuracy`, `band_scales`).
        let labels = Arc::new(LabelSet::from_pairs([
            ("__name__", "job:req:rate1m"),
            ("job", "web"),
        ]));
        let f = SeriesForecast {
            points: vec![
                Point {
                    yhat: 1.0,
                    lower: 0.5,
                    upper: 1.5,
                },
                Point {
                    yhat: 2.0,
                    lower: 1.0,
                    upper: 3.0,
                },
            ],
            accuracy: vec![
                Some(ForecastAccuracy {
                    mase: 0.8,
                    coverage: 0.75,
                    weight: 12.5,
                }),
                None,
            ],
            band_scales: vec![(1.5, 0.75), (1.0, 1.0)],
            ..SeriesForecast::new(labels, SeriesId(1), 0, 0, 0, 60_000)
        };
        let history = ForecastHistory::new(60);
        for o in 0..60 {
            history.record(SeriesId(1), &f, o, &[1, 3]);
        }
        let snapshot = Snapshot {
            generated_ms: 60 * 60_000,
            step_ms: 60_000,
            horizons: vec![vec![("1m".into(), 60_000), ("3m".into(), 180_000)]],
            series: vec![f],
            scaling: Vec::new(),
        };
        (snapshot, history)
    })
}

fuzz_target!(|data: &[u8]| {
    let (snapshot, history) = state();
    if let Ok(body) = snap::raw::Encoder::new().compress_vec(data) {
        let _ = remote_read::handle(&body, 1 << 20, snapshot, history, 60_000, 10_000);
    }
});
