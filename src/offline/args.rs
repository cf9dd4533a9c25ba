//! What the offline subcommands read from the command line beyond their options: where a
//! trace comes from ([`TraceArgs`]), and the `value_parser`s of the option structs' flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::data::{read_traces, CsvOptions, Trace};
use crate::config::{format_duration, parse_duration, PromDuration};
use crate::scale::{Policy, ScaleIn, Sizing};

/// Where a trace comes from and how to read it (shared by the offline subcommands).
#[derive(clap::Args, Clone)]
pub struct TraceArgs {
    /// CSV file (optionally gzipped) or a directory of them.
    #[arg(long)]
    pub input: PathBuf,
    /// Value column(s); `*` = every column but the time and key columns (a wide file).
    /// Default: the second column.
    #[arg(long, value_delimiter = ',')]
    pub column: Vec<String>,
    /// Time column; default the first. Unix seconds, RFC 3339, `YYYY-MM-DD HH:MM:SS`, or an
    /// integer index (then --step is its spacing).
    #[arg(long = "time-column")]
    pub time_column: Option<String>,
    /// Columns whose values split a long-format file into series.
    #[arg(long, value_delimiter = ',')]
    pub key: Vec<String>,
    /// Step the trace is bucketed to (the agent's storage.step); default: the median spacing.
    #[arg(long, value_parser = parse_duration)]
    pub step: Option<Duration>,
    /// Treat runs of at least N zeros as missing data (a monitoring outage recorded as 0).
    #[arg(long = "zero-run-gap")]
    pub zero_run_gap: Option<usize>,
    /// Sum the members named by this column (e.g. container_ip) into one series per --key
    /// group, as a `sum by (key)` recording rule would (needs --step).
    #[arg(long = "sum-over")]
    pub sum_over: Option<String>,
    /// Keep only rows where COLUMN equals VALUE (`--where request_type=API Requests`).
    #[arg(long = "where", value_parser = parse_where)]
    pub filters: Vec<(String, String)>,
}

impl TraceArgs {
    /// The traces, and their step: `--step`, or else the shortest median sample spacing.
    pub fn load(&self) -> anyhow::Result<(Vec<Trace>, Duration)> {
        let opts = CsvOptions {
            time_column: self.time_column.clone(),
            columns: self.column.clone(),
            keys: self.key.clone(),
            step: self.step,
            sum_over: self.sum_over.clone(),
            filters: self.filters.clone(),
        };
        let mut traces = read_traces(&self.input, &opts)?;
        if let Some(n) = self.zero_run_gap {
            traces.iter_mut().for_each(|t| t.zero_runs_as_gaps(n));
        }
        let step = match self.step {
            Some(s) => s,
            None => {
                let ms = traces
                    .iter()
                    .filter_map(|t| t.median_spacing_ms())
                    .min()
                    .context("cannot infer the step from fewer than two samples: give --step")?;
                let s = Duration::from_secs(((ms + 500) / 1000).max(1) as u64);
                eprintln!(
                    "promcast: --step not given; using the median sample spacing {}",
                    format_duration(s)
                );
                s
            }
        };
        Ok((traces, step))
    }
}

/// `--where COLUMN=VALUE`.
pub fn parse_where(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(c, v)| (c.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected COLUMN=VALUE, got {s:?}"))
}

/// A duration flag written as [`PromDuration`] in the options.
pub fn parse_prom_duration(s: &str) -> Result<PromDuration, String> {
    parse_duration(s)
        .map(PromDuration)
        .map_err(|e| e.to_string())
}

/// `--sizing`: [`Sizing`] by its name in the config.
pub fn parse_sizing(s: &str) -> Result<Sizing, String> {
    Sizing::ALL
        .into_iter()
        .find(|z| z.as_str() == s)
        .ok_or_else(|| format!("{s:?}: one of up_to_lead, at_lead, peak"))
}

/// `--scale-in`: [`ScaleIn`] by its name in the config.
pub fn parse_scale_in(s: &str) -> Result<ScaleIn, String> {
    [ScaleIn::Window, ScaleIn::Forecast]
        .into_iter()
        .find(|z| z.as_str() == s)
        .ok_or_else(|| format!("{s:?}: window or forecast"))
}

/// One of `--policies`: a [`Policy`] by its name in the config (its parameters come from
/// their own flags, [`super::simulate::SimOptions::params`]).
pub fn parse_policy(p: &str) -> Result<Policy, String> {
    Policy::from_name(p).ok_or_else(|| format!("unknown policy {p:?} ({})", Policy::ALL.join(", ")))
}

/// `--quantiles LOWER,UPPER`: the band's two levels.
pub fn parse_quantiles(s: &str) -> Result<(f64, f64), String> {
    let levels = s
        .split(',')
        .map(|q| q.parse::<f64>().map_err(|e| format!("{q:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    match levels[..] {
        [lo, hi] => Ok((lo, hi)),
        _ => Err("--quantiles needs two levels, lower and upper".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_take_the_config_names_and_reject_others() {
        assert_eq!(parse_where("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_where("ab").is_err());
        assert_eq!(parse_sizing("at_lead"), Ok(Sizing::AtLead));
        assert!(parse_sizing("peak ").is_err());
        assert_eq!(parse_scale_in("forecast"), Ok(ScaleIn::Forecast));
        assert_eq!(
            parse_policy("quantile"),
            Ok(Policy::Quantile(crate::policy::Quantile { q: 0.9 }))
        );
        assert_eq!(
            parse_policy("x").unwrap_err(),
            "unknown policy \"x\" (static, reactive, ceiling, buffered, quantile, incremental)"
        );
        assert!(parse_policy("hpa").unwrap_err().contains("unknown policy"));
        assert_eq!(parse_quantiles("0.1,0.9"), Ok((0.1, 0.9)));
        assert!(parse_quantiles("0.1").is_err());
        assert!(parse_quantiles("0.1,x").is_err());
    }
}
