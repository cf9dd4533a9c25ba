//! The container image (Containerfile for users; scripts/image.sh builds the same image
//! offline, FROM scratch, with podman):
//!
//! 1. Both Containerfiles end in the same runtime instructions (user, entrypoint, command,
//!    ports, volume, label keys); the image's config is the embedded defaults plus
//!    `storage.path: /var/lib/promcast`, and passes `check-config`.
//! 2. scripts/image.sh builds an image from this test's own binary (PROMCAST_BINARY); its
//!    metadata says user 65534:65534, the entrypoint, the command, the labels, the ports and
//!    the volume; its files (seen through `podman image mount`) are root's and read-only but
//!    for the volume's directory, owned by 65534, and the binary runs inside it (`--version`,
//!    `check-config` of the image's config) as 65534.
//! 3. The image runs as 65534 on a read-only root with a volume at /var/lib/promcast, on its
//!    own config: a day of the NASA trace written into it is forecast; SIGTERM leaves a
//!    snapshot in the volume owned by 65534; restarted on the same volume, it holds the same
//!    ring before anything new is written.
//!
//! It runs the image with `podman run --read-only` where that works; where it does not
//! (on these VMs crun fails: "cgroups in hybrid mode not supported"), it runs the image's
//! root filesystem, from `podman image mount`, bind-mounted read-only in a mount namespace of
//! its own with the volume bind-mounted read-write, under `chroot --userspec=65534:65534`.
//! It says which on stderr. Needs root and podman (`./scripts/test.sh` installs Debian's).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::traces::nasa_requests_per_minute;
use common::{
    addr, free_port, http_get, now_ms, poll, remote_write, series, urlencode, Proc, Procs,
};
use serde_json::Value;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const VOLUME: &str = "/var/lib/promcast";
const ENTRYPOINT: &str = "/usr/local/bin/promcast";
const CONFIG: &str = "/etc/promcast/promcast.yml";
const CMD: [&str; 4] = [
    "serve",
    "--config=/etc/promcast/promcast.yml",
    "--web.listen-address=0.0.0.0:9201",
    "--grpc.listen-address=0.0.0.0:9202",
];
const LABEL_KEYS: [&str; 6] = [
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.licenses",
];
/// Where both Containerfiles' shared runtime instructions start.
const RUNTIME_MARKER: &str = "# ---- runtime:";
const NAME: &str = "job:http_requests:rate1m";
const JOB: &str = "nasa-http";

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Runs `cmd`; its stdout, or a panic with both streams when it fails.
fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn get_json(at: SocketAddr, path: &str) -> Result<Value, String> {
    let r = http_get(at, path)?;
    if r.status != 200 {
        return Err(format!("GET {path}: HTTP {}: {}", r.status, r.body.trim()));
    }
    serde_json::from_str(&r.body).map_err(|e| format!("{path}: {e}: {}", r.body))
}

/// The lines from [`RUNTIME_MARKER`] to the end of a Containerfile.
fn runtime_block(file: &str) -> String {
    let text = read(Path::new(ROOT).join(file));
    let at = text
        .find(RUNTIME_MARKER)
        .unwrap_or_else(|| panic!("{file}: no line starting with {RUNTIME_MARKER:?}"));
    text[at..].trim_end().to_owned()
}

#[test]
fn containerfiles_share_their_runtime_instructions() {
    let users = runtime_block("Containerfile");
    let offline = runtime_block("scripts/Containerfile.offline");
    assert_eq!(
        users, offline,
        "Containerfile and scripts/Containerfile.offline differ after {RUNTIME_MARKER:?}"
    );
    let cmd = serde_json::to_string(&CMD).unwrap().replace(",", ", ");
    for line in [
        "USER 65534:65534".to_owned(),
        format!("ENTRYPOINT [\"{ENTRYPOINT}\"]"),
        format!("CMD {cmd}"),
        "EXPOSE 9201 9202".to_owned(),
        format!("VOLUME [\"{VOLUME}\"]"),
        // The users' Containerfile has no other source of the version.
        format!("ARG VERSION={VERSION}"),
    ] {
        assert!(
            users.lines().any(|l| l.trim() == line),
            "no line {line:?} in:\n{users}"
        );
    }
    for key in LABEL_KEYS {
        assert!(users.contains(&format!("{key}=")), "no label {key}");
    }
    assert!(users.contains("org.opencontainers.image.licenses=\"Apache-2.0\""));
    // The runtime stage is the last; the user's build is the release build of the lock file.
    let containerfile = read(Path::new(ROOT).join("Containerfile"));
    assert!(containerfile.contains("cargo build --release --locked"));
    assert!(
        containerfile.contains("COPY --from=build --chown=65534:65534 /volume/ /var/lib/promcast/")
    );
    // The build context leaves out the build output (.dockerignore: Docker and Podman).
    let ignore = read(Path::new(ROOT).join(".dockerignore"));
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        ".dockerignore:\n{ignore}"
    );
}

#[test]
fn container_config_is_the_defaults_plus_the_volume() {
    let file = Path::new(ROOT).join("examples/container.yml");
    let mut ours: Value = serde_yaml_ng::from_str(&read(&file)).unwrap();
    let defaults = run_ok(Command::new(PROMCAST).arg("default-config"));
    let defaults: Value = serde_yaml_ng::from_str(&defaults).unwrap();
    let path = ours["storage"]
        .as_object_mut()
        .and_then(|s| s.remove("path"))
        .expect("storage.path in examples/container.yml");
    assert_eq!(path, VOLUME);
    assert_eq!(
        ours, defaults,
        "examples/container.yml is not `promcast default-config` plus storage.path"
    );
    let out = run_ok(Command::new(PROMCAST).arg("check-config").arg(&file));
    eprintln!("check-config examples/container.yml: {}", out.trim());
}

/// The image (and its `podman image mount`), removed when dropped.
struct Image {
    tag: String,
    mounted: bool,
}

impl Image {
    /// `podman image mount`: the image's root filesystem, read-only.
    fn mount(&mut self) -> PathBuf {
        let out = run_ok(Command::new("podman").args(["image", "mount", &self.tag]));
        self.mounted = true;
        PathBuf::from(out.trim())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("podman")
                .args(["image", "unmount", &self.tag])
                .output();
        }
        // -f: also the containers of a failed `podman run`.
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.tag])
            .output();
    }
}

/// How the image is run: `podman run`, or its mounted root filesystem in a mount namespace
/// under chroot.
enum Runner {
    Podman {
        tag: String,
    },
    Chroot {
        image_root: PathBuf,
        scratch: PathBuf,
    },
}

/// The image's entrypoint with `serve` on its own config, listening at `web`, as 65534:65534
/// on a read-only root with `volume` at /var/lib/promcast.
fn start(runner: &Runner, name: &'static str, volume: &Path, logs: &Path, web: SocketAddr) -> Proc {
    let grpc = addr(free_port());
    let args = [
        "serve".to_owned(),
        format!("--config={CONFIG}"),
        format!("--web.listen-address={web}"),
        format!("--grpc.listen-address={grpc}"),
    ];
    let cmd = match runner {
        Runner::Podman { tag } => {
            let mut cmd = Command::new("podman");
            cmd.args(["run", "--rm", "--name", &container_name(tag, name)])
                .args(["--user", "65534:65534", "--read-only"])
                .arg("-v")
                .arg(format!("{}:{VOLUME}", volume.display()))
                .args(["--network", "host"])
                .args([
                    "--ulimit",
                    "nofile=1024:1024",
                    "--ulimit",
                    "nproc=1024:1024",
                ])
                .arg(tag)
                .args(&args);
            cmd
        }
        Runner::Chroot {
            image_root,
            scratch,
        } => {
            // unshare (no --fork) execs sh, sh execs chroot, chroot execs promcast: one
            // process, so SIGTERM reaches promcast. The mounts are private to the namespace
            // and go with it.
            let script = r#"set -eu
scratch=$1 image=$2 volume=$3
shift 3
mount --bind -o ro "$image" "$scratch"
if touch "$scratch/.write-probe" 2>/dev/null; then
    echo "the image's root is writable in the namespace" >&2
    exit 1
fi
mount --bind "$volume" "$scratch/var/lib/promcast"
exec chroot --userspec=65534:65534 "$scratch" /usr/local/bin/promcast "$@"
"#;
            let mut cmd = Command::new("unshare");
            cmd.args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(scratch)
            .arg(image_root)
            .arg(volume)
            .args(&args);
            cmd
        }
    };
    Proc::spawn(name, cmd, logs.join(format!("{name}.log")))
}

/// `promcast-test-<the tag's nonce>-<name>`.
fn container_name(tag: &str, name: &str) -> String {
    let nonce = tag.rsplit(':').next().unwrap_or_default();
    format!("promcast-test-{nonce}-{name}")
}

/// Polls `/-/ready` until it answers 200; `Err` with the log when the process exits first.
fn wait_ready(p: &mut Proc, web: SocketAddr, timeout: Duration) -> Result<(), String> {
    let start = std::time::Instant::now();
    loop {
        if let Err(e) = p.check_running() {
            return Err(format!("{e}\n{}", p.log_tail(40)));
        }
        if http_get(web, "/-/ready").is_ok_and(|r| r.status == 200) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "{} not ready after {timeout:?}\n{}",
                p.name,
                p.log_tail(40)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The series' ring from `/api/v1/history`: unix ms -> value.
fn ring(at: SocketAddr) -> Result<BTreeMap<i64, f64>, String> {
    let selector = urlencode(&format!("{NAME}{{job=\"{JOB}\"}}"));
    let h = get_json(at, &format!("/api/v1/history?selector={selector}"))?;
    let points = h["data"]["series"][0]["points"]
        .as_array()
        .ok_or_else(|| format!("no series in {h}"))?;
    Ok(points
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().unwrap() * 1e3).round() as i64,
                p[1].as_f64().unwrap(),
            )
        })
        .collect())
}

/// Every path under `root` (not following links) but `root` itself.
fn walk(root: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let p = e.unwrap().path();
        if p.symlink_metadata().unwrap().is_dir() {
            walk(&p, out);
        }
        out.push(p);
    }
}

fn check_files(root: &Path) {
    let bin = root.join(ENTRYPOINT.trim_start_matches('/'));
    let meta = bin
        .metadata()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(meta.is_file());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o755,
        "{}",
        bin.display()
    );
    let config = read(root.join(CONFIG.trim_start_matches('/')));
    assert_eq!(config, read(Path::new(ROOT).join("examples/container.yml")));
    let volume = root.join(VOLUME.trim_start_matches('/'));
    let meta = volume.metadata().unwrap();
    assert!(meta.is_dir());
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{VOLUME}");
    assert_eq!(
        std::fs::read_dir(&volume).unwrap().count(),
        0,
        "{VOLUME} is not empty"
    );
    let ca = read(root.join("etc/ssl/certs/ca-certificates.crt"));
    assert!(ca.contains("BEGIN CERTIFICATE"), "no CA bundle");
    assert!(read(root.join("etc/passwd")).contains(":x:65534:65534:"));
    assert!(read(root.join("etc/group")).contains(":x:65534:"));
    // Nothing but the volume is 65534's, or writable by it: it needs nothing else writable.
    let mut all = Vec::new();
    walk(root, &mut all);
    for p in &all {
        let rel = Path::new("/").join(p.strip_prefix(root).unwrap());
        let m = p.symlink_metadata().unwrap();
        if rel == Path::new(VOLUME) {
            continue;
        }
        let mode = m.permissions().mode();
        assert_eq!(
            (m.uid(), m.gid()),
            (0, 0),
            "{} is not root's",
            rel.display()
        );
        let world_writable = mode & 0o002 != 0 && !m.file_type().is_symlink();
        // /tmp as in distroless: 1777, empty (and read-only with the root).
        if rel == Path::new("/tmp") {
            assert_eq!(mode & 0o7777, 0o1777);
            continue;
        }
        assert!(
            !world_writable,
            "{} is writable by anyone ({mode:o})",
            rel.display()
        );
    }
    eprintln!("image files: {} paths, all root's but {VOLUME}", all.len());
}

#[test]
fn image_builds_runs_read_only_and_restores_its_snapshot() {
    let uid = run_ok(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "tests/image.rs builds and runs images with rootful podman and mounts: run as root"
    );
    assert!(
        common::find_program("podman").is_some(),
        "podman not found: install Debian package podman (./scripts/test.sh does it)"
    );
    let work = tempfile::Builder::new()
        .prefix("promcast-image-")
        .tempdir()
        .unwrap();
    let nonce = format!("{}-{}", std::process::id(), now_ms());
    let tag = format!("localhost/promcast-test:{nonce}");
    let mut image = Image {
        tag: tag.clone(),
        mounted: false,
    };

    // 1. Build it from this test's binary.
    let out = run_ok(
        Command::new(Path::new(ROOT).join("scripts/image.sh"))
            .arg(&tag)
            .env("PROMCAST_BINARY", PROMCAST),
    );
    assert_eq!(
        out.lines().last(),
        Some(tag.as_str()),
        "image.sh's last line"
    );

    // 2. Its metadata.
    let inspect = run_ok(Command::new("podman").args(["image", "inspect", &tag]));
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "65534:65534", "{config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!([ENTRYPOINT]),
        "{config}"
    );
    assert_eq!(config["Cmd"], serde_json::json!(CMD), "{config}");
    for port in ["9201/tcp", "9202/tcp"] {
        assert!(config["ExposedPorts"].get(port).is_some(), "{config}");
    }
    assert!(config["Volumes"].get(VOLUME).is_some(), "{config}");
    let labels = &config["Labels"];
    for key in LABEL_KEYS {
        assert!(
            labels[key].as_str().is_some_and(|v| !v.is_empty()),
            "label {key}: {labels}"
        );
    }
    assert_eq!(labels["org.opencontainers.image.version"], VERSION);
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert_eq!(labels["org.opencontainers.image.title"], "promcast");
    let revision = run(Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(ROOT));
    let revision = if revision.status.success() {
        String::from_utf8_lossy(&revision.stdout).trim().to_owned()
    } else {
        "unknown".to_owned()
    };
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        revision.as_str()
    );
    eprintln!("image {tag}: {} bytes, labels {labels}", inspect[0]["Size"]);

    // 3. Its files, and the binary inside it as 65534.
    let image_root = image.mount();
    check_files(&image_root);
    let version = run_ok(
        Command::new("chroot")
            .arg("--userspec=65534:65534")
            .arg(&image_root)
            .args([ENTRYPOINT, "--version"]),
    );
    assert!(version.contains(VERSION), "{version}");
    assert!(version.contains(&revision), "{version}");
    run_ok(
        Command::new("chroot")
            .arg("--userspec=65534:65534")
            .arg(&image_root)
            .args([ENTRYPOINT, "check-config", CONFIG]),
    );

    // 4. Run it: podman run if it works here, else the chroot runner.
    let volume = work.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    std::os::unix::fs::chown(&volume, Some(65534), Some(65534)).unwrap();
    let logs = work.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let scratch = work.path().join("root");
    std::fs::create_dir(&scratch).unwrap();
    let mut procs = Procs::default();
    let web = addr(free_port());
    let podman = Runner::Podman { tag: tag.clone() };
    let mut p = start(&podman, "podman-run", &volume, &logs, web);
    let runner = match wait_ready(&mut p, web, Duration::from_secs(60)) {
        Ok(()) => {
            eprintln!("runner: podman run --user 65534:65534 --read-only -v VOLUME:{VOLUME}");
            procs.procs.push(p);
            podman
        }
        Err(e) => {
            if p.terminate(Duration::from_secs(10)).is_none() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
            let _ = Command::new("podman")
                .args(["rm", "-f", &container_name(&tag, "podman-run")])
                .output();
            eprintln!(
                "runner: podman run failed here ({}); running the image's root from \
                 `podman image mount` read-only in a mount namespace (unshare --mount), the \
                 volume bound read-write, under chroot --userspec=65534:65534",
                e.trim().replace('\n', " | ")
            );
            let runner = Runner::Chroot {
                image_root: image_root.clone(),
                scratch: scratch.clone(),
            };
            let p = start(&runner, "chroot-run", &volume, &logs, web);
            procs.procs.push(p);
            let p = procs.procs.last_mut().unwrap();
            if let Err(e) = wait_ready(p, web, Duration::from_secs(60)) {
                panic!("the chroot runner: {e}");
            }
            runner
        }
    };

    // 5. A day of the NASA trace, one point a minute, ending now; forecast.
    let values: Vec<f64> = nasa_requests_per_minute().into_iter().take(1440).collect();
    assert_eq!(values.len(), 1440);
    let now = now_ms();
    let written: BTreeMap<i64, f64> = values
        .iter()
        .enumerate()
        .map(|(k, v)| (now - (1439 - k as i64) * 60_000, *v))
        .collect();
    let samples: Vec<(i64, f64)> = written.iter().map(|(t, v)| (*t, *v)).collect();
    remote_write(
        web,
        vec![series(&[("__name__", NAME), ("job", JOB)], &samples)],
    )
    .unwrap();
    let selector = urlencode(&format!("{NAME}{{job=\"{JOB}\"}}"));
    let forecast = poll(
        "forecasts of the NASA series (the first step is at the next minute)",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || {
            procs.procs.last_mut().unwrap().check_running()?;
            let v = get_json(web, &format!("/api/v1/forecasts?selector={selector}"))?;
            let s = &v["data"]["series"][0];
            let f = s["forecasts"].as_array().cloned().unwrap_or_default();
            if !f.is_empty() && f.iter().all(|f| f["yhat"].is_number()) {
                Ok(s.clone())
            } else {
                Err(format!("not yet: {v}"))
            }
        },
    );
    eprintln!(
        "forecast: state {}, model {}, {}",
        forecast["state"], forecast["model"], forecast["forecasts"]
    );
    let before = ring(web).unwrap();
    // The ring buckets to the minute: one point per minute, the values as written (f32).
    let step = |t: i64| t.div_euclid(60_000) * 60_000;
    let expected: BTreeMap<i64, f64> = written
        .iter()
        .map(|(t, v)| (step(*t), *v as f32 as f64))
        .collect();
    assert_eq!(before.len(), 1440, "points in the ring");
    assert_eq!(before, expected, "the ring differs from what was written");

    // 6. SIGTERM: the shutdown snapshot, in the volume, 65534's.
    let status = procs
        .procs
        .last_mut()
        .unwrap()
        .terminate(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{}",
        procs.logs()
    );
    let snapshot = volume.join("promcast.snapshot");
    let meta = snapshot
        .metadata()
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", snapshot.display(), procs.logs()));
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "snapshot owner");
    // A day of one-minute buckets, XOR-coded (about 1.3 bytes a bucket on this trace; what
    // it holds is checked point by point after the restart below).
    assert!(meta.len() > 1440 / 2, "snapshot of {} bytes", meta.len());
    let names: Vec<String> = std::fs::read_dir(&volume)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["promcast.snapshot"], "the volume holds");
    let log = read(&procs.procs.last().unwrap().log);
    assert!(
        !log.contains("Read-only file system") && !log.contains("os error 30"),
        "it tried to write outside the volume:\n{log}"
    );

    // 7. Restart on the same volume: the ring is back before anything new is written.
    let web2 = addr(free_port());
    let name = match runner {
        Runner::Podman { .. } => "podman-run-2",
        Runner::Chroot { .. } => "chroot-run-2",
    };
    procs.procs.push(start(&runner, name, &volume, &logs, web2));
    let p = procs.procs.last_mut().unwrap();
    if let Err(e) = wait_ready(p, web2, Duration::from_secs(60)) {
        panic!("restart: {e}");
    }
    let log = read(&p.log);
    assert!(log.contains("snapshot loaded"), "{log}");
    let after = ring(web2).unwrap();
    // A restart in a later minute may have moved the ring past its oldest buckets.
    assert!(
        after.len() >= 1437,
        "{} points after the restart",
        after.len()
    );
    assert_eq!(
        after.last_key_value(),
        before.last_key_value(),
        "the newest point"
    );
    for (t, v) in &after {
        assert_eq!(before.get(t), Some(v), "restored point at {t}");
    }
    eprintln!(
        "restart: {} of {} points restored from {} ({} bytes)",
        after.len(),
        before.len(),
        snapshot.display(),
        meta.len()
    );
    let status = procs
        .procs
        .last_mut()
        .unwrap()
        .terminate(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}");
    drop(procs);
    drop(image);
}
