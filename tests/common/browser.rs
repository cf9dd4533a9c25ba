//! Headless Chromium (Debian package `chromium`; `./scripts/test.sh` installs it): load a
//! page, let its scripts run, and read back the DOM they left, or a screenshot.
//!
//! The page's scripts record what they drew in `data-*` attributes; `--dump-dom` prints the
//! DOM once the page has been idle for the virtual time budget.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Chromium binary; panics with the install hint when it is missing.
pub fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|p| super::find_program(p))
        .unwrap_or_else(|| {
            panic!(
                "Chromium not found on PATH or in /usr/bin: install Debian package chromium \
                 (./scripts/test.sh does it)"
            )
        })
}

fn base_args(profile: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--no-first-run".into(),
        "--hide-scrollbars".into(),
        format!("--user-data-dir={}", profile.display()),
    ]
}

/// Runs Chromium with `args` (after the headless basics) and returns its stdout; panics with
/// stderr's tail when it fails or runs past `timeout`.
pub fn run(args: &[String], timeout: Duration) -> String {
    run_with_stderr(args, timeout).0
}

/// [`run`], also returning stderr (with `--enable-logging=stderr`, the console's messages
/// with wall-clock timestamps).
pub fn run_with_stderr(args: &[String], timeout: Duration) -> (String, String) {
    let profile = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(chromium());
    cmd.args(base_args(profile.path()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("starting chromium");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("chromium did not finish within {timeout:?}: {args:?}"))
        .expect("waiting for chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chromium {args:?} failed ({}): {}",
        out.status,
        tail(&stderr, 2000)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr.into_owned(),
    )
}

/// The DOM after the page's scripts ran for up to `budget` of virtual time.
pub fn dump_dom(url: &str, budget: Duration, extra: &[&str]) -> String {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.push(format!("--virtual-time-budget={}", budget.as_millis()));
    args.push("--dump-dom".into());
    args.push(url.into());
    run(&args, budget + Duration::from_secs(60))
}

/// A PNG screenshot of the page at `size` (width, height) into `path`.
pub fn screenshot(url: &str, path: &Path, size: (u32, u32), budget: Duration, extra: &[&str]) {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.push(format!("--window-size={},{}", size.0, size.1));
    args.push(format!("--virtual-time-budget={}", budget.as_millis()));
    args.push(format!("--screenshot={}", path.display()));
    args.push(url.into());
    run(&args, budget + Duration::from_secs(60));
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} is not a screenshot ({} bytes)",
        path.display(),
        png.len()
    );
}

/// The value of attribute `name` on the element with `id="id"` in a dumped DOM.
pub fn attr(dom: &str, id: &str, name: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let tag_start = dom[..start].rfind('<')?;
    let tag_end = start + dom[start..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!("{name}=\"");
    let at = tag.find(&key)? + key.len();
    let end = tag[at..].find('"')?;
    Some(
        tag[at..at + end]
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

/// The value of attribute `name` on `<body>` in a dumped DOM.
pub fn body_attr(dom: &str, name: &str) -> Option<String> {
    let start = dom.find("<body")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let key = format!("{name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
