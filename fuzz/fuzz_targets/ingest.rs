//! The remote-write path as a request body reaches it: snappy, protobuf decode, label
//! validation, selector matching, ring append. The first byte picks the form: odd, the rest
//! is a raw snappy body (exercising the decompressor and its size check); even, the rest is a
//! protobuf `WriteRequest` that the harness compresses (so the fuzzer explores the decoder).
//! Any input must give `Ok` or an error, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use promcast::config::Config;
use promcast::ingest::Ingest;
use promcast::store::Store;
use promcast::telemetry::Telemetry;

fn ingest() -> &'static Ingest {
    static INGEST: OnceLock<Ingest> = OnceLock::new();
    INGEST.get_or_init(|| {
        let config = Config::from_yaml(
            r#"
storage: { step: 1s, retention: 1m }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5s]
  - selector: '{job=~"web|prom-.*"}'
    horizons: [5s]
limits: { max_series: 1000, max_decompressed_bytes: 1048576 }
"#,
            "fuzz",
            None,
        )
        .expect("fuzz config");
        let store = Arc::new(Store::new(&config, 0));
        Ingest::new(store, Arc::new(Telemetry::default()), config.limits.clone())
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = 1_700_000_000_000;
    if mode & 1 == 1 {
        let _ = ingest().ingest_snappy(rest, now);
    } else if let Ok(body) = snap::raw::Encoder::new().compress_vec(rest) {
        let _ = ingest().ingest_snappy(&body, now);
    }
});
