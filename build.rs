//! Compiles every `.proto` file under `proto/` with protox (pure Rust, no protoc): messages
//! with prost-build, and `externalscaler.proto` (KEDA's gRPC service) with tonic's generator.
//! Also records what `promcast --version` and `promcast_build_info` report: the git revision
//! (`PROMCAST_REVISION`), the compiler (`PROMCAST_RUSTC`) and the enabled features
//! (`PROMCAST_FEATURES`).
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    build_info();
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

/// The output of a command, trimmed, when it ran and succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// Sets `PROMCAST_REVISION`, `PROMCAST_RUSTC` and `PROMCAST_FEATURES` for the crate. The
/// revision is `git rev-parse HEAD` (12 digits), or `$PROMCAST_REVISION` where the source
/// has no `.git` (a container build context, a source tarball), else "unknown".
fn build_info() {
    println!("cargo:rerun-if-env-changed=PROMCAST_REVISION");
    let revision = std::env::var("PROMCAST_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // A new commit moves the branch's ref (or HEAD itself, when detached).
    let head = Path::new(".git/HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Some(r) = std::fs::read_to_string(head)
            .ok()
            .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_owned()))
        {
            // A loose ref, or one packed into packed-refs (a watched path that does not
            // exist would make cargo re-run this script on every build).
            for path in [format!(".git/{r}"), ".git/packed-refs".to_owned()] {
                if Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc = output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".to_owned());
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(|f| f.to_lowercase()))
        .filter(|f| f != "default")
        .collect();
    features.sort();
    println!("cargo:rustc-env=PROMCAST_REVISION={revision}");
    println!("cargo:rustc-env=PROMCAST_RUSTC={rustc}");
    println!("cargo:rustc-env=PROMCAST_FEATURES={}", features.join(","));
}
