//! The remote-write 2.0 path as a request body reaches it: snappy, the hand-written
//! `io.prometheus.write.v2.Request` decoder (symbols table, label references, per-series
//! metadata and created timestamps), label validation, selector matching, counters as rates,
//! ring append. See `shared/ingest.rs`.
#![no_main]

#[path = "shared/ingest.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;
use promcast::ingest::Protocol;

fuzz_target!(|data: &[u8]| harness::run(data, Protocol::V2));
