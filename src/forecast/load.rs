//! Loading the LSTM a configuration asks for, and whether it fits each forecast entry: one
//! place for `serve`, `check-config`, `backtest` and `simulate`.

use std::sync::Arc;

use super::model::{Ask, Entry};
pub use super::neural::BUILTIN_ORIGIN;
use super::neural::{builtin_model, BackendChoice, LstmModel, NeuralError};
use super::neural::{BUILTIN_HOUR_MODEL, BUILTIN_HOUR_ORIGIN, BUILTIN_MODEL};
use super::registry::Models;
use crate::config::{Config, ModelChoice, ModelKind, ModelSource};

/// The model `source` names, loaded on `backend`; `None` for `inference.model: none`. A
/// missing file is an error naming the path.
pub fn load_lstm(
    source: &ModelSource,
    backend: &BackendChoice,
) -> Result<Option<Arc<LstmModel>>, NeuralError> {
    let model = match (source, backend) {
        (ModelSource::Disabled, _) => return Ok(None),
        (ModelSource::File(path), b) => LstmModel::load_on(path, b)?,
        // Shared by every caller in the process (offline tools load it per model).
        (ModelSource::Builtin, BackendChoice::Cpu) => builtin_model()?,
        (ModelSource::Builtin, b) => {
            LstmModel::from_bytes_on(BUILTIN_MODEL, BUILTIN_ORIGIN, b)?.with_companion(
                LstmModel::from_bytes_on(BUILTIN_HOUR_MODEL, BUILTIN_HOUR_ORIGIN, b)?,
            )
        }
    };
    Ok(Some(Arc::new(model)))
}

/// The agent's model: on `backend`, falling back to tract when `inference.backend` is `auto`
/// and onnxruntime would not start.
pub fn load_for_agent(
    config: &Config,
    backend: &BackendChoice,
) -> Result<Option<Arc<LstmModel>>, NeuralError> {
    match load_lstm(&config.lstm_model, backend) {
        Err(e)
            if config.inference.backend == crate::config::BackendKind::Auto
                && !matches!(backend, BackendChoice::Cpu | BackendChoice::Tract) =>
        {
            tracing::warn!(error = %e, "onnxruntime unavailable; using the CPU");
            load_lstm(&config.lstm_model, &BackendChoice::Cpu)
        }
        other => other,
    }
}

/// What `check-config` reports about the model and the entries.
#[derive(Debug, Default, PartialEq)]
pub struct ModelCheck {
    /// Errors, each prefixed with its key path (`inference.model: ...`).
    pub problems: Vec<String>,
    /// Things worth knowing that are not errors.
    pub notes: Vec<String>,
}

/// Loads the configured model (on tract) and checks it against every entry: an entry that
/// asks for `lstm` must fit it; an `auto` entry that does not is a note.
pub fn check(config: &Config) -> ModelCheck {
    let mut check = ModelCheck::default();
    let model = match load_lstm(&config.lstm_model, &BackendChoice::Cpu) {
        Ok(Some(m)) => m,
        Ok(None) => return check,
        Err(e) => {
            check.problems.push(format!("inference.model: {e}"));
            return check;
        }
    };
    for (i, spec) in config.forecast.iter().enumerate() {
        let ask = Ask::new(spec, config.step);
        let models = Models::for_entry(&Entry {
            ask: &ask,
            refit_every: spec.refit_every,
            network: Some(&model),
        });
        for kind in ModelKind::ALL.into_iter().filter(|k| k.needs_network()) {
            let Some(e) = models.unusable(kind) else {
                continue;
            };
            match spec.model {
                ModelChoice::Model(k) if k == kind => {
                    check.problems.push(format!("forecast[{i}].model: {e}"))
                }
                ModelChoice::Auto => check.notes.push(format!(
                    "forecast[{i}]: auto will not use the {kind} model: {e}"
                )),
                ModelChoice::Model(_) => {}
            }
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_says_where_it_looked() {
        let source = ModelSource::File("/nonexistent/model.onnx".into());
        let err = load_lstm(&source, &BackendChoice::Cpu).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/model.onnx"), "{err}");
    }

    #[test]
    fn entries_the_model_cannot_serve_are_problems_or_notes() {
        let yaml = r#"
storage: { step: 1m, retention: 6h }
forecast:
  - selector: 'a'
    horizons: [7m]
    model: lstm
  - selector: 'b'
    horizons: [7m]
    model: auto
  - selector: 'c'
    horizons: [5m, 15m]
    model: lstm
"#;
        let config = Config::from_yaml(yaml, "test", None).unwrap();
        let check = check(&config);
        assert_eq!(check.problems.len(), 1, "{check:?}");
        assert!(
            check.problems[0].starts_with("forecast[0].model: "),
            "{check:?}"
        );
        assert!(check.problems[0].contains("no horizon 7m"), "{check:?}");
        assert_eq!(check.notes.len(), 1, "{check:?}");
        assert!(check.notes[0].starts_with("forecast[1]: auto"), "{check:?}");
    }

    /// The shipped hour model (`models/promcast-lstm-60m.onnx`) serves the horizons the
    /// built-in one cannot: 45m and 60m at 1m, and 5m to 60m at 5m; the built-in stops at 30
    /// steps.
    #[test]
    fn the_hour_model_serves_45m_and_60m() {
        use std::time::Duration;
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/promcast-lstm-60m.onnx");
        let hour = load_lstm(&ModelSource::File(path), &BackendChoice::Cpu)
            .unwrap()
            .expect("a model");
        let builtin = load_lstm(&ModelSource::Builtin, &BackendChoice::Cpu)
            .unwrap()
            .expect("a model");
        let m = |v: &[u64]| -> Vec<Duration> {
            v.iter().map(|m| Duration::from_secs(m * 60)).collect()
        };
        for (step, horizons) in [
            (1, m(&[1, 2, 5, 15, 30, 45, 60])),
            (5, m(&[5, 15, 30, 45, 60])),
        ] {
            let step = Duration::from_secs(step * 60);
            hour.check_fits(step, &horizons, &[0.1, 0.9])
                .unwrap_or_else(|e| panic!("{step:?} {horizons:?}: {e}"));
        }
        assert!(builtin
            .check_fits(Duration::from_secs(60), &m(&[60]), &[0.1, 0.9])
            .is_err());
    }

    /// `inference.model: builtin` serves every entry up to the hour: an entry the short
    /// model fits gets it (48-step window), one that reaches past 30m gets the hour model
    /// (64 steps) for all its horizons, and one neither fits names both.
    #[test]
    fn the_builtin_serves_to_the_hour_with_its_companion() {
        use crate::forecast::registry::Model;
        let yaml = r#"
storage: { step: 1m, retention: 6h }
forecast:
  - { selector: 'a', horizons: [5m, 15m, 30m], model: lstm }
  - { selector: 'b', horizons: [5m, 15m, 30m, 60m], model: lstm }
  - { selector: 'c', horizons: [5m, 7m], model: lstm }
"#;
        let config = Config::from_yaml(yaml, "test", None).unwrap();
        let network = load_lstm(&ModelSource::Builtin, &BackendChoice::Cpu)
            .unwrap()
            .expect("a model");
        let window = |i: usize| {
            let spec = &config.forecast[i];
            let ask = Ask::new(spec, config.step);
            let models = Models::for_entry(&Entry {
                ask: &ask,
                refit_every: spec.refit_every,
                network: Some(&network),
            });
            match models.get(ModelKind::Lstm) {
                Some(Model::Lstm(l)) => Ok(l.window()),
                _ => Err(models.unusable(ModelKind::Lstm).unwrap().to_string()),
            }
        };
        assert_eq!(window(0), Ok(48));
        assert_eq!(window(1), Ok(64));
        let err = window(2).unwrap_err();
        assert!(
            err.contains("promcast-lstm-60m.onnx") && err.matches("no horizon 7m").count() == 2,
            "{err}"
        );
        assert!(check(&config).problems[0].starts_with("forecast[2].model"));
        assert_eq!(check(&config).problems.len(), 1);
    }
}
