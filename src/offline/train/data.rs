//! The training data: the sources of a [`DataSpec`] (a YAML file), each read with the
//! backtest's CSV rules and bucketed at its step and coarser ones ([`prepare`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{format_duration, PromDuration};
use crate::offline::data::{read_traces, CsvOptions, Trace};

/// One data source of a [`DataSpec`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    /// File or directory; relative paths are resolved against the spec file's directory.
    pub input: PathBuf,
    #[serde(default)]
    pub column: Vec<String>,
    #[serde(default)]
    pub time_column: Option<String>,
    #[serde(default)]
    pub key: Vec<String>,
    /// Step the traces are bucketed to.
    pub step: PromDuration,
    /// Also train on copies aggregated (mean per bucket) to these coarser steps.
    #[serde(default)]
    pub also_at: Vec<PromDuration>,
    #[serde(default)]
    pub zero_run_gap: Option<usize>,
    /// Sum the members this column names into one series per key group.
    #[serde(default)]
    pub sum_over: Option<String>,
    /// Relative sampling weight of the source (per step variant).
    #[serde(default = "one")]
    pub weight: f64,
    /// Use at most this many series (the first ones).
    #[serde(default)]
    pub max_series: Option<usize>,
}

fn one() -> f64 {
    1.0
}

/// The training data: a list of sources.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub sources: Vec<Source>,
}

impl DataSpec {
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let de = serde_yaml_ng::Deserializer::from_str(&text);
        let spec: DataSpec = serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.path(), e.inner()))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok((spec, base))
    }
}

/// A series ready for sampling: bucketed values at its step.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub source: usize,
    pub name: String,
    pub step: Duration,
    pub first_ms: i64,
    pub calendar: bool,
    pub values: Vec<f32>,
}

/// Bucketed values aggregated by `factor` (mean of the observed ones per coarse bucket,
/// NaN when fewer than half are observed).
pub fn aggregate(values: &[f32], factor: usize) -> Vec<f32> {
    values
        .chunks(factor)
        .map(|c| {
            let obs: Vec<f32> = c.iter().copied().filter(|v| v.is_finite()).collect();
            if obs.len() * 2 >= factor {
                obs.iter().sum::<f32>() / obs.len() as f32
            } else {
                f32::NAN
            }
        })
        .collect()
}

/// A source at one step: its name (`source@step`) and sampling weight.
pub type Variant = (String, f64);

/// Loads every source (and its aggregated copies).
pub fn prepare(spec: &DataSpec, base: &Path) -> Result<(Vec<Prepared>, Vec<Variant>)> {
    let mut out = Vec::new();
    let mut variants = Vec::new();
    for src in &spec.sources {
        let path = if src.input.is_relative() {
            base.join(&src.input)
        } else {
            src.input.clone()
        };
        let opts = CsvOptions {
            time_column: src.time_column.clone(),
            columns: src.column.clone(),
            keys: src.key.clone(),
            step: Some(src.step.0),
            sum_over: src.sum_over.clone(),
            filters: vec![],
        };
        let mut traces: Vec<Trace> =
            read_traces(&path, &opts).with_context(|| format!("source {}", src.name))?;
        if let Some(m) = src.max_series {
            traces.truncate(m);
        }
        if let Some(n) = src.zero_run_gap {
            traces.iter_mut().for_each(|t| t.zero_runs_as_gaps(n));
        }
        let step_ms = src.step.0.as_millis() as i64;
        let mut steps = vec![(src.step.0, 1usize)];
        for a in &src.also_at {
            let f = a.0.as_millis() as i64 / step_ms;
            if f < 2 || a.0.as_millis() as i64 % step_ms != 0 {
                bail!(
                    "source {}: also_at {} is not a multiple of its step {}",
                    src.name,
                    a,
                    src.step
                );
            }
            steps.push((a.0, f as usize));
        }
        for (step, factor) in steps {
            let vi = variants.len();
            variants.push((
                format!("{}@{}", src.name, format_duration(step)),
                src.weight,
            ));
            for t in &traces {
                let (b0, v) = t.bucketed(step_ms);
                // Coarse buckets start on a multiple of the coarse step.
                let skip = (factor - b0.rem_euclid(factor as i64) as usize) % factor;
                let v = if factor > 1 {
                    aggregate(&v[skip.min(v.len())..], factor)
                } else {
                    v
                };
                let first_ms = (b0 + skip as i64) * step_ms;
                out.push(Prepared {
                    source: vi,
                    name: format!("{}@{}", t.name, format_duration(step)),
                    step,
                    first_ms,
                    calendar: t.calendar,
                    values: v,
                });
            }
        }
    }
    Ok((out, variants))
}
