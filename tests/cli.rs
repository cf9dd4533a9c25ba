//! The `promcast` binary's command line: check-config, default-config, and start-up errors.

use std::process::Command;

fn promcast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_promcast"))
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
