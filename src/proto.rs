//! Protobuf messages generated from `proto/` by prost-build (see `build.rs`).

/// Prometheus remote-write 1.0 and remote-read messages (`proto/remote.proto`, `proto/types.proto`).
#[allow(clippy::all)]
pub mod prometheus {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Prometheus remote-write 2.0 messages (`proto/write_v2.proto`), for tests, benches and
/// fuzz seeds: the agent decodes 2.0 bodies by hand (`ingest::decode_v2`).
#[allow(clippy::all)]
pub mod write_v2 {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}

/// KEDA's external scaler service (`proto/externalscaler.proto`): server and client, generated
/// by tonic's prost generator.
#[allow(clippy::all)]
pub mod externalscaler {
    include!(concat!(env!("OUT_DIR"), "/externalscaler.rs"));
}
