//! The remote-write 1.0 path as a request body reaches it: snappy, protobuf decode (and 1.0
//! metadata), label validation, selector matching, ring append. See `shared/ingest.rs`.
#![no_main]

#[path = "shared/ingest.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;
use promcast::ingest::Protocol;

fuzz_target!(|data: &[u8]| harness::run(data, Protocol::V1));
