//! Compiles every `.proto` file under `proto/` with protox (pure Rust, no protoc): messages
//! with prost-build, and `externalscaler.proto` (KEDA's gRPC service) with tonic's generator.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed=proto");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let (grpc, messages): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|p| p.file_name().is_some_and(|n| n == "externalscaler.proto"));
    let fds = protox::compile(&messages, [&dir])?;
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    config.compile_fds(fds)?;
    if !grpc.is_empty() {
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(protox::compile(&grpc, [&dir])?)?;
    }
    Ok(())
}
