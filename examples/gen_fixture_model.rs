//! Writes promcast's fixture LSTM model (a persistence forecaster with random LSTM weights, not
//! a trained model) as an ONNX file, after checking that it loads.
//!
//! ```text
//! cargo run --example gen_fixture_model -- OUT.onnx [--step 1m] [--window 16]
//!     [--horizons 5m,15m,30m] [--quantiles 0.1,0.5,0.9] [--hidden 8] [--seed 42]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use promcast::config::{format_duration, parse_duration};
use promcast::forecast::neural::{fixture_model, FixtureParams, LstmModel};

const USAGE: &str = "usage: gen_fixture_model OUT.onnx [--step 1m] [--window 16] \
                     [--horizons 5m,15m,30m] [--quantiles 0.1,0.5,0.9] [--hidden 8] [--seed 42]";

fn parse_args(args: &[String]) -> Result<(PathBuf, FixtureParams), String> {
    let mut params = FixtureParams::default();
    let mut out = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Err(USAGE.to_owned()),
            "--step" => {
                let v = value("--step")?;
                params.step = parse_duration(&v).map_err(|e| format!("--step: {e}"))?;
            }
            "--window" => {
                let v = value("--window")?;
                params.window = v
                    .parse()
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or_else(|| format!("--window: {v:?} is not a positive integer"))?;
            }
            "--horizons" => {
                let v = value("--horizons")?;
                params.horizons = v
                    .split(',')
                    .map(|h| parse_duration(h.trim()).map_err(|e| format!("--horizons: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--quantiles" => {
                let v = value("--quantiles")?;
                params.quantiles = v
                    .split(',')
                    .map(|q| {
                        q.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|q| *q > 0.0 && *q < 1.0)
                            .ok_or_else(|| format!("--quantiles: {q:?} is not in (0, 1)"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--hidden" => {
                let v = value("--hidden")?;
                params.hidden = v
                    .parse()
                    .ok()
                    .filter(|h| *h > 0)
                    .ok_or_else(|| format!("--hidden: {v:?} is not a positive integer"))?;
            }
            "--seed" => {
                let v = value("--seed")?;
                params.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: {v:?} is not an unsigned integer"))?;
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}\n{USAGE}")),
            path if out.is_none() => out = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra:?}\n{USAGE}")),
        }
    }
    let out = out.ok_or_else(|| USAGE.to_owned())?;
    if params.step.is_zero() {
        return Err("--step must be positive".to_owned());
    }
    if params.horizons.is_empty() || params.horizons.iter().any(|h| h.is_zero()) {
        return Err("--horizons must be positive durations".to_owned());
    }
    Ok((out, params))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, params) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let bytes = fixture_model(&params);
    // Load it before writing, so a bad combination of options (e.g. no 0.5 quantile) leaves no
    // file behind.
    let model = match LstmModel::from_bytes(&bytes, &out.display().to_string()) {
        Ok(model) => model,
        Err(e) => {
            eprintln!("the fixture does not load: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(&out, &bytes) {
        eprintln!("writing {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let meta = model.meta();
    println!(
        "wrote {} ({} bytes): window {}, step {}, horizons {}, quantiles {:?}, hidden {}, seed {}",
        out.display(),
        bytes.len(),
        meta.window,
        format_duration(meta.step),
        meta.horizons
            .iter()
            .map(|h| format_duration(*h))
            .collect::<Vec<_>>()
            .join(","),
        meta.quantiles,
        params.hidden,
        params.seed
    );
    ExitCode::SUCCESS
}
