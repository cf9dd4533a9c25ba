//! The snapshot directory fails under a running agent, on a real filesystem: promcast runs in
//! its own mount namespace (`unshare`, util-linux) with `storage.path` on a 64 KiB tmpfs.
//!
//! 1. The first snapshot fits. Then more series arrive and the next ones do not: each
//!    failure is logged with the path and the OS error ("No space left on device") and
//!    counted (`promcast_snapshot_failures_total`), no half-written file is left taking the
//!    space, the last good snapshot stays, and the agent keeps accepting, storing and
//!    forecasting every series.
//! 2. The directory is remounted read-only: the same, with "Read-only file system".
//! 3. SIGTERM: the shutdown snapshot fails the same way and the agent still exits cleanly.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    addr, free_port, http_get, metric_total, now_ms, poll, remote_write, series, urlencode,
};
use common::{Proc, Procs};
use serde_json::Value;

const NAME: &str = "disk_test";

/// Five hundred samples a second apart, ending now, for `count` series from `first` on,
/// with values whose every mantissa bit varies (square roots), so that the rings' coding
/// keeps them at about 2.2 bytes a bucket and a snapshot's size follows the series count.
fn write(at: SocketAddr, first: usize, count: usize) -> Result<(), String> {
    let t = now_ms() / 1000 * 1000 - 499_000;
    let all = (first..first + count)
        .map(|i| {
            let samples: Vec<(i64, f64)> = (0..500)
                .map(|k| (t + k * 1000, ((i * 1000 + k as usize) as f64).sqrt()))
                .collect();
            series(&[("__name__", NAME), ("i", &i.to_string())], &samples)
        })
        .collect();
    remote_write(at, all)
}

/// The series promcast stores and forecasts (`ready`), by `/api/v1/history` and
/// `/api/v1/forecasts`.
fn stored_and_forecast(at: SocketAddr) -> Result<(usize, usize), String> {
    let get = |path: &str| -> Result<Value, String> {
        let body = http_get(at, path)?.body;
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    };
    let sel = urlencode(&format!("{{__name__=\"{NAME}\"}}"));
    let h = get(&format!("/api/v1/history?selector={sel}&limit=10000"))?;
    let f = get(&format!("/api/v1/forecasts?selector={sel}&limit=10000"))?;
    let stored = h["data"]["series"].as_array().map_or(0, Vec::len);
    let ready = f["data"]["series"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|s| s["state"] == "ready").count());
    Ok((stored, ready))
}

/// What the agent's mount namespace holds in `dir` (through `/proc/PID/root`).
fn files_seen_by(pid: u32, dir: &Path) -> Vec<(String, u64)> {
    let inside = PathBuf::from(format!("/proc/{pid}/root")).join(dir.strip_prefix("/").unwrap());
    let mut out: Vec<(String, u64)> = std::fs::read_dir(&inside)
        .unwrap_or_else(|e| panic!("{}: {e}", inside.display()))
        .filter_map(|e| {
            let e = e.ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().ok()?.len(),
            ))
        })
        .collect();
    out.sort();
    out
}

/// Polls until the agent has counted more than `after` snapshot failures and logged one
/// with `reason`.
fn failed_with(procs: &mut Procs, web: SocketAddr, log: &Path, after: f64, reason: &str) -> f64 {
    poll(
        &format!("a snapshot failure logged with {reason:?}"),
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            procs.get("promcast").check_running()?;
            let failures = metric_total(web, "promcast_snapshot_failures_total");
            let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
            let logged = text
                .lines()
                .any(|l| l.contains("snapshot failed") && l.contains(reason));
            if failures > after && logged {
                Ok(failures)
            } else {
                Err(format!("{failures} failures; logged: {logged}"))
            }
        },
    )
}

#[test]
fn a_full_or_read_only_snapshot_directory_costs_only_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    std::fs::create_dir(&snap).unwrap();
    let web = addr(free_port());
    let config = tmp.path().join("promcast.yml");
    std::fs::write(
        &config,
        format!(
            r#"storage: {{ step: 1s, retention: 10m, path: '{}', snapshot_every: 1s }}
forecast:
  - selector: '{{__name__="{NAME}"}}'
    horizons: [5s]
    model: naive
    anomaly: {{ enabled: false }}
"#,
            snap.display()
        ),
    )
    .unwrap();
    // A user and mount namespace of its own, a 64 KiB tmpfs on the snapshot directory, then
    // the agent in place of the shell (same PID).
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=64k tmpfs "$0" && exec "$1" serve --config "$2" --web.listen-address "$3""#)
        .arg(&snap)
        .arg(env!("CARGO_BIN_EXE_promcast"))
        .arg(&config)
        .arg(web.to_string());
    let log = tmp.path().join("promcast.log");
    let mut procs = Procs::default();
    procs.procs.push(Proc::spawn("promcast", cmd, log.clone()));
    let pid = procs.get("promcast").child.id();
    procs.wait_ready("promcast", web);

    // The first snapshot fits: three series of 500 one-second buckets (about 3 KiB).
    write(web, 0, 3).unwrap();
    poll(
        "a snapshot of 3 series",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let n = metric_total(web, "promcast_snapshot_series");
            (n == 3.0).then_some(()).ok_or(format!("snapshot of {n}"))
        },
    );
    let good = files_seen_by(pid, &snap);
    assert_eq!(good.len(), 1, "{good:?}");
    assert_eq!(good[0].0, "promcast.snapshot");
    let last_success = metric_total(web, "promcast_snapshot_last_success_timestamp_seconds");

    // 1. A hundred more series: a snapshot now needs about 110 KiB.
    write(web, 3, 100).unwrap();
    let failures = failed_with(&mut procs, web, &log, 0.0, "No space left on device");
    assert_eq!(
        files_seen_by(pid, &snap),
        good,
        "the last good snapshot stays, and nothing half-written"
    );
    assert_eq!(metric_total(web, "promcast_snapshot_series"), 3.0);
    assert_eq!(
        metric_total(web, "promcast_snapshot_last_success_timestamp_seconds"),
        last_success
    );
    // The agent keeps serving: new series are accepted, stored and forecast.
    write(web, 103, 2).unwrap();
    poll(
        "105 series stored and forecast on a full disk",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || match stored_and_forecast(web)? {
            (105, 105) => Ok(()),
            other => Err(format!("stored, forecast: {other:?}")),
        },
    );

    // 2. The directory turns read-only (with room to spare: the reason is not space).
    let remount = Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--user", "--mount"])
        .args(["mount", "-o", "remount,ro,size=16m"])
        .arg(&snap)
        .output()
        .unwrap();
    assert!(
        remount.status.success(),
        "remount read-only: {}",
        String::from_utf8_lossy(&remount.stderr)
    );
    let failures = failed_with(&mut procs, web, &log, failures, "Read-only file system");
    assert_eq!(files_seen_by(pid, &snap), good);
    write(web, 105, 2).unwrap();
    poll(
        "107 series stored and forecast on a read-only disk",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || match stored_and_forecast(web)? {
            (107, 107) => Ok(()),
            other => Err(format!("stored, forecast: {other:?}")),
        },
    );
    assert_eq!(
        metric_total(web, "promcast_write_requests_total{code=\"400\"}")
            + metric_total(web, "promcast_write_requests_total{code=\"503\"}"),
        0.0,
        "a failing snapshot directory refuses no write"
    );

    // 3. SIGTERM: the shutdown snapshot fails too, and the agent exits cleanly.
    let status = procs.get("promcast").terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let draining = lines
        .iter()
        .position(|l| l.contains("shutdown: no new requests"))
        .expect("the shutdown is logged");
    assert!(
        lines[draining..]
            .iter()
            .any(|l| l.contains("snapshot failed") && l.contains("Read-only file system")),
        "the shutdown snapshot's failure is logged: {:?}",
        &lines[draining..]
    );
    assert!(failures >= 2.0);
}
