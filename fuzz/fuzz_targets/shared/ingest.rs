//! The harness both ingest targets share: one agent ingest (config selecting recording rules
//! and the captured bodies' `prom-*` jobs, limits set low), and the input's first byte picking
//! the form: odd, the rest is a raw snappy body (exercising the decompressor and its size
//! check); even, the rest is a protobuf the harness compresses (so the fuzzer explores the
//! decoder). Any input must give `Ok` or an error, never a panic.

use std::sync::{Arc, OnceLock};

use promcast::config::Config;
use promcast::ingest::{Ingest, Protocol};
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

/// One input, as a request body of `protocol`.
pub fn run(data: &[u8], protocol: Protocol) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = 1_700_000_000_000;
    if mode & 1 == 1 {
        let _ = ingest().ingest_snappy(rest, protocol, now);
    } else if let Ok(body) = snap::raw::Encoder::new().compress_vec(rest) {
        let _ = ingest().ingest_snappy(&body, protocol, now);
    }
}
