//! `promcast tune --from-prometheus` against a real Prometheus 2.42 holding three days of real
//! NASA traffic (written as TSDB blocks by `promtool tsdb create-blocks-from openmetrics`,
//! the way a user backfills history): it reads the series over HTTP, tunes, checks the winner
//! on held-out data and writes every report.

mod common;

use std::process::Command;
use std::time::Duration;

use common::traces::nasa_requests_per_minute;
use common::{addr, backfill_openmetrics, free_port, http_get, poll, Procs};

#[test]
fn tune_reads_history_from_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let nasa = nasa_requests_per_minute();
    let points = 3 * 1440;
    // The history ends ten minutes from now, so every point of the lookback is a real sample.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end_s = (now_s / 60 + 10) * 60;
    let mut om = String::from("# TYPE nasa_requests_per_minute gauge\n");
    for (i, v) in nasa[..points].iter().enumerate() {
        let t = end_s - (points - 1 - i) as i64 * 60;
        om.push_str(&format!("nasa_requests_per_minute {v} {t}\n"));
    }
    om.push_str("# EOF\n");
    backfill_openmetrics(dir.path(), &om);
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global: { scrape_interval: 1m }\n",
    )
    .unwrap();

    let port = free_port();
    let mut procs = Procs::default();
    procs.start_prometheus(dir.path(), addr(port), &[]);
    poll(
        "Prometheus ready with the history",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            procs.get("prometheus").check_running()?;
            let r = http_get(
                addr(port),
                "/api/v1/query?query=count_over_time(nasa_requests_per_minute%5B3d%5D)",
            )?;
            if r.status == 200 && r.body.contains("\"result\":[{") {
                Ok(())
            } else {
                Err(format!("{}: {}", r.status, r.body))
            }
        },
    );

    let report = dir.path().join("tune");
    let run = Command::new(env!("CARGO_BIN_EXE_promcast"))
        .args([
            "tune",
            "--from-prometheus",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--series", "nasa_requests_per_minute", "--lookback", "3d"])
        .args([
            "--capacity",
            "10",
            "--startup",
            "2m",
            "--budget",
            "6",
            "--seed",
            "3",
        ])
        .args(["--model", "seasonal_naive", "--name", "web", "--out"])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "tune failed:\n{stdout}\n{stderr}\n{}",
        procs.logs()
    );
    // It read the whole lookback at one minute: three days less the ten minutes of history
    // that lie after the end of the lookback.
    let read: usize = stderr
        .lines()
        .find_map(|l| l.split("read ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no point count in {stderr}"));
    assert!(
        (points - 12..=points - 8).contains(&read),
        "read {read} points"
    );
    assert!(stdout.contains("held out (0.6 days)"), "{stdout}");
    let trials = std::fs::read_to_string(report.join("trials.csv")).unwrap();
    assert_eq!(trials.lines().count(), 1 + 2 * 6, "{trials}");
    let best = std::fs::read_to_string(report.join("best.yaml")).unwrap();
    let config = format!(
        "forecast:\n  - selector: 'nasa_requests_per_minute'\n{}",
        best.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let file = dir.path().join("promcast.yml");
    std::fs::write(&file, config).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_promcast"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "best.yaml is not a valid scaling block: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    for png in ["frontier.png", "convergence.png"] {
        let bytes = std::fs::read(report.join(png)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{png}");
    }
    // report.html: the result, the held-out check and both plots inline
    let page = report.join("report.html");
    assert!(
        stdout.contains(&format!("wrote {}", page.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for table in ["result", "held-out", "trials"] {
        assert!(html.contains(&format!("<table id=\"{table}\">")), "{table}");
    }
    assert!(html.contains("nasa_requests_per_minute"));
    assert_eq!(html.matches("<img src=\"data:image/png;base64,").count(), 2);
}
