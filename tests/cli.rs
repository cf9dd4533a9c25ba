//! The `promcast` binary's command line: check-config, default-config, and start-up errors.

use std::process::Command;

/// The header and the first `days` days of the real NASA requests-per-minute trace.
fn nasa_days(days: usize) -> String {
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/nasa_http_1995/nasa_requests_per_minute.csv"
    );
    let text = std::fs::read_to_string(src).unwrap();
    text.lines()
        .take(1 + days * 1440)
        .map(|l| format!("{l}\n"))
        .collect()
}

fn promcast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_promcast"))
}

/// `promcast --version` says the version, the git revision it was built from and the enabled
/// features, as Prometheus' own components do.
#[test]
fn version_names_the_revision_and_features() {
    let out = promcast().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("promcast {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name}: in {text}"))
    };
    // Built from this checkout: the revision is its HEAD (where git and .git are there).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(field("revision"), head, "{text}"),
        None => assert!(!field("revision").is_empty(), "{text}"),
    }
    let features = field("features");
    let features: Vec<&str> = features.split(',').filter(|f| !f.is_empty()).collect();
    assert_eq!(features.contains(&"gpu"), cfg!(feature = "gpu"), "{text}");
    assert_eq!(
        features.contains(&"offline"),
        cfg!(feature = "offline"),
        "{text}"
    );
    assert!(field("rustc").starts_with("rustc "), "{text}");
}

#[test]
fn check_config_names_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        r#"
storage: { step: 1m, retention: 24h }
forecast:
  - selector: 'sum(rate(x[5m]))'
    horizons: [5m, 90s]
    quantiles: [0.9, 0.1]
remote_write:
  - url: 'not a url'
"#,
    )
    .unwrap();
    let out = promcast().arg("check-config").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for path in [
        "forecast[0].selector",
        "forecast[0].horizons[1]",
        "forecast[0].quantiles",
        "remote_write[0].url",
    ] {
        assert!(text.contains(path), "{path} missing from:\n{text}");
    }
}

/// A malformed `ha:` section is refused with each key's path.
#[test]
fn check_config_names_bad_ha_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ha.yml");
    std::fs::write(
        &file,
        "forecast: [{ selector: '{__name__=~\".+:.+\"}', horizons: [5m] }]\n\
         ha: { cluster_label: prometheus, replica_label: 'prometheus-replica', failover_timeout: 0s, max_clusters: 0 }\n",
    )
    .unwrap();
    let out = promcast().arg("check-config").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    for key in ["ha.replica_label", "ha.failover_timeout", "ha.max_clusters"] {
        assert!(text.contains(key), "{key} not named in: {text}");
    }
    assert!(!text.contains("ha.cluster_label"), "{text}");
    // An unknown key and a label equal to the cluster label.
    std::fs::write(
        &file,
        "forecast: [{ selector: '{__name__=~\".+:.+\"}', horizons: [5m] }]\n\
         ha: { cluster_label: prometheus, replica_label: prometheus }\n",
    )
    .unwrap();
    let out = promcast().arg("check-config").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ha.replica_label: must differ"), "{text}");
    std::fs::write(
        &file,
        "forecast: [{ selector: '{__name__=~\".+:.+\"}', horizons: [5m] }]\n\
         ha: { replica: x }\n",
    )
    .unwrap();
    let out = promcast().arg("check-config").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ha") && text.contains("unknown field `replica`"),
        "{text}"
    );
}

#[test]
fn check_config_reports_yaml_type_errors_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        "forecast:\n  - selector: up\n    horizons: [5m, fast]\n",
    )
    .unwrap();
    let out = promcast().arg("check-config").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("forecast[0].horizons[1]") && text.contains("fast"),
        "{text}"
    );
}

#[test]
fn shipped_and_default_configs_check_clean() {
    let out = promcast().arg("default-config").output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("default.yml");
    std::fs::write(&file, &out.stdout).unwrap();
    let out = promcast().arg("check-config").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/promcast.yml");
    let out = promcast()
        .arg("check-config")
        .arg(example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn missing_model_file_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    std::fs::write(
        &file,
        "forecast:\n  - selector: up\n    model: lstm\ninference:\n  model: nowhere/model.onnx\n",
    )
    .unwrap();
    let out = promcast()
        .args(["serve", "--web.listen-address", "127.0.0.1:0", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let looked = dir.path().join("nowhere/model.onnx");
    assert!(err.contains(&looked.display().to_string()), "{err}");
}

#[test]
fn a_model_that_does_not_fit_the_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    // The shipped fixture has step 1m and horizons 5m/15m/30m; ask for 10m.
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/fixture-lstm.onnx");
    std::fs::write(
        &file,
        format!("forecast:\n  - selector: up\n    model: lstm\n    horizons: [10m]\ninference:\n  model: {model}\n"),
    )
    .unwrap();
    let out = promcast()
        .args(["serve", "--web.listen-address", "127.0.0.1:0", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("forecast[0]") && err.contains("10m"), "{err}");
}

/// `promcast anomaly-eval` on one real NAB file (copied into a NAB-layout tree): the report
/// table, the CSVs and NAB's results layout; and a clear error for a missing tree.
#[test]
fn anomaly_eval_writes_its_report_in_nabs_layout() {
    let nab = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nab");
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("data/realAWSCloudwatch");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(
        format!("{nab}/data/realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv"),
        tree.join("ec2_cpu_utilization_825cc2.csv"),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = promcast()
        .args(["anomaly-eval", "--nab"])
        .arg(dir.path().join("data"))
        .arg("--labels")
        .arg(format!("{nab}/labels/combined_windows.json"))
        .arg("--out")
        .arg(&out_dir)
        .args(["--categories", "realAWSCloudwatch"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| forest | ALL | 1 |"), "{stdout}");
    let csv = std::fs::read_to_string(out_dir.join("anomaly.csv")).unwrap();
    assert!(
        csv.starts_with("detector,file,precision,recall,f1\n"),
        "{csv}"
    );
    for det in ["agent", "forest", "forest_debounced", "band", "mad"] {
        assert!(
            csv.contains(&format!(
                "\n{det},realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv,"
            )),
            "{det} missing from {csv}"
        );
        // NAB's results layout: the detector's name without `_` (NAB splits on it)
        let name = det.replace('_', "");
        let scores = out_dir.join(format!(
            "results/{name}/realAWSCloudwatch/{name}_ec2_cpu_utilization_825cc2.csv"
        ));
        let text = std::fs::read_to_string(&scores)
            .unwrap_or_else(|e| panic!("{}: {e}", scores.display()));
        assert!(
            text.starts_with("timestamp,value,anomaly_score,label\n"),
            "{}",
            &text[..text.len().min(200)]
        );
    }
    assert!(out_dir
        .join("plots/realAWSCloudwatch_ec2_cpu_utilization_825cc2.svg")
        .exists());

    let out = promcast()
        .args(["anomaly-eval", "--nab", "/nonexistent/nab", "--labels"])
        .arg(format!("{nab}/labels/combined_windows.json"))
        .arg("--out")
        .arg(dir.path().join("out2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/nab"), "{err}");
}

/// `promcast backtest` on four days of the real NASA trace (a gzipped copy: gzip is read
/// directly): the table, `metrics.csv` with the documented columns, `forecasts.csv` whose
/// rows recompute the MAE, and one PNG per series. (flate2 comes with the `offline` feature.)
#[cfg(feature = "offline")]
#[test]
fn backtest_writes_metrics_forecasts_and_plots() {
    use std::io::Write as _;
    let slice = nasa_days(4);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("nasa.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&input).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(slice.as_bytes()).unwrap();
    gz.finish().unwrap();
    let out_dir = dir.path().join("bt");
    let out = promcast()
        .args(["backtest", "--input"])
        .arg(&input)
        .args([
            "--step",
            "1m",
            "--models",
            "seasonal_naive,lstm,auto",
            "--stride",
            "5",
        ])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| lstm | 15m |"), "{stdout}");
    let metrics = std::fs::read_to_string(out_dir.join("metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    assert_eq!(
        lines.next(),
        Some("model,horizon,mae,rmse,smape,mase,r2,coverage,width,under_weighted")
    );
    assert_eq!(lines.count(), 3 * 3);
    // forecasts.csv: recompute lstm's 30m MAE from the rows
    let forecasts = std::fs::read_to_string(out_dir.join("forecasts.csv")).unwrap();
    let mut f = forecasts.lines();
    assert_eq!(
        f.next(),
        Some("model,horizon,origin,target,yhat,lower,upper,actual,series,used")
    );
    let errs: Vec<f64> = f
        .filter(|l| l.starts_with("lstm,30m,"))
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            assert_eq!(
                c[3].parse::<i64>().unwrap() - c[2].parse::<i64>().unwrap(),
                30,
                "target = origin + 30 steps: {l}"
            );
            (c[4].parse::<f64>().unwrap() - c[7].parse::<f64>().unwrap()).abs()
        })
        .collect();
    assert!(!errs.is_empty());
    let mae = errs.iter().sum::<f64>() / errs.len() as f64;
    let reported: f64 = metrics
        .lines()
        .find(|l| l.starts_with("lstm,30m,"))
        .and_then(|l| l.split(',').nth(2)?.parse().ok())
        .unwrap();
    assert!(
        (mae - reported).abs() < 1e-4 * reported.max(1.0),
        "{mae} vs {reported}"
    );
    let plots: Vec<_> = std::fs::read_dir(out_dir.join("plots")).unwrap().collect();
    assert_eq!(plots.len(), 1);
}

/// `promcast train --input` on a real slice: a short run writes a model the agent accepts.
#[test]
fn train_writes_a_model_the_agent_loads() {
    let slice = nasa_days(3);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("nasa.csv");
    std::fs::write(&input, slice).unwrap();
    let out_dir = dir.path().join("run");
    let out = promcast()
        .args(["train", "--input"])
        .arg(&input)
        .args([
            "--step",
            "1m",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--windows-per-epoch",
            "512",
        ])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "model.onnx",
        "run.json",
        "losses.csv",
        "checkpoints/epoch-001.safetensors",
    ] {
        assert!(out_dir.join(f).exists(), "{f} missing");
    }
    // the agent accepts it: a config that uses it checks clean
    let cfg = dir.path().join("promcast.yml");
    std::fs::write(
        &cfg,
        "forecast:\n  - selector: '{__name__=~\".+:.+\"}'\n    model: lstm\ninference:\n  model: run/model.onnx\n",
    )
    .unwrap();
    let out = promcast().arg("check-config").arg(&cfg).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `promcast simulate` on a day of the real NASA trace: the table, summary.csv with the
/// documented columns and one row per policy, and both PNGs.
#[test]
fn simulate_writes_summary_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("nasa.csv");
    std::fs::write(&input, nasa_days(1)).unwrap();
    let out_dir = dir.path().join("sim");
    let out = promcast()
        .args(["simulate", "--input"])
        .arg(&input)
        .args([
            "--step",
            "1m",
            "--capacity",
            "10",
            "--startup",
            "2m",
            "--model",
            "seasonal_naive",
        ])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| reactive |"), "{stdout}");
    let csv = std::fs::read_to_string(out_dir.join("summary.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("policy,violation_minutes,unserved,replica_minutes,overprovision,scaling_events")
    );
    let policies: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(
        policies,
        [
            "static",
            "reactive",
            "ceiling",
            "buffered",
            "quantile",
            "incremental"
        ]
    );
    for f in ["timeline.png", "cost_vs_violations.png"] {
        let bytes = std::fs::read(out_dir.join(f)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{f}");
    }
    // a trace with several series needs one picked
    let wide = dir.path().join("wide.csv");
    std::fs::write(&wide, "t,a,b\n0,1,2\n1,2,3\n2,3,4\n").unwrap();
    let out = promcast()
        .args(["simulate", "--input"])
        .arg(&wide)
        .args(["--column", "*", "--step", "1m", "--capacity", "1"])
        .arg("--out")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs one series"));
}
