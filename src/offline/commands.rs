//! The offline subcommands as `promcast` runs them: each one's arguments (where its data
//! comes from, its options struct flattened, where its files go) and the function that runs
//! it, prints its summary and reports what it wrote. `main.rs` only dispatches here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgMatches, FromArgMatches};

use super::args::TraceArgs;
use super::backtest::{self, BacktestOptions};
use super::frontier::{frontier, Grid};
use super::nab::{self, NabEvalOptions};
use super::simulate::{simulate, SimOptions};
use super::train::{prepare, train, DataSpec, Source, TrainOptions};
use super::tune::{tune, Slo, TuneOptions};
use super::{prom, report};
use crate::config::{format_duration, parse_duration, PromDuration};

/// `promcast backtest`.
#[derive(clap::Args)]
pub struct Backtest {
    #[command(flatten)]
    input: TraceArgs,
    #[command(flatten)]
    opts: BacktestOptions,
    /// Also write `series.csv` (every evaluated series as bucketed, with its MASE scale and
    /// test start), from which `bench/peers/` fits other tools on the same origins.
    #[arg(long = "write-series")]
    write_series: bool,
    /// Output directory: metrics.csv, forecasts.csv, per_series.csv, buckets.csv, plots/.
    #[arg(long)]
    out: PathBuf,
}

impl Backtest {
    pub fn run(self) -> anyhow::Result<()> {
        let (traces, step) = self.input.load()?;
        let opts = BacktestOptions { step, ..self.opts };
        let bar = progress_bar((traces.len() * opts.models.len()) as u64, "backtest");
        let bt = backtest::run(&traces, &opts, &|model, i, _| {
            bar.set_message(model.to_string());
            if i > 0 || model != opts.models[0] {
                bar.inc(1);
            }
        })?;
        bar.finish_and_clear();
        report::write_backtest(&bt, &self.out)?;
        if self.write_series {
            report::write_backtest_series(&bt, &self.out)?;
        }
        print!("{}", report::print_table(&bt));
        print_wrote(&self.out);
        Ok(())
    }
}

/// `promcast train`.
#[derive(clap::Args)]
pub struct Train {
    /// YAML list of data sources (see models/training-data.yml); or use --input.
    #[arg(long, conflicts_with = "input")]
    data: Option<PathBuf>,
    /// One CSV file or directory as the only source (the backtest's CSV rules).
    #[arg(long)]
    input: Option<PathBuf>,
    /// With --input: value column(s) (`*` = all but time/key columns).
    #[arg(long, value_delimiter = ',')]
    column: Vec<String>,
    /// With --input: the step to bucket to (1m or 5m).
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    step: Duration,
    /// Output directory: model.onnx, run.json, losses.csv, best.safetensors, checkpoints/.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    opts: TrainOptions,
}

impl Train {
    /// The data sources: `--data`'s file, or `--input` as the only one.
    fn spec(self) -> anyhow::Result<(DataSpec, PathBuf)> {
        Ok(match (self.data, self.input) {
            (Some(d), _) => DataSpec::load(&d)?,
            (None, Some(i)) => (
                DataSpec {
                    sources: vec![Source {
                        name: i.display().to_string(),
                        input: i,
                        column: self.column,
                        time_column: None,
                        key: vec![],
                        step: PromDuration(self.step),
                        also_at: vec![],
                        zero_run_gap: None,
                        sum_over: None,
                        weight: 1.0,
                        max_series: None,
                    }],
                },
                PathBuf::from("."),
            ),
            (None, None) => anyhow::bail!("give --data FILE.yml or --input FILE"),
        })
    }

    pub fn run(self) -> anyhow::Result<()> {
        let (opts, out) = (self.opts.clone(), self.out.clone());
        let (spec, base) = self.spec()?;
        // One compute thread: on small machines candle's default threading is far slower.
        std::env::set_var("RAYON_NUM_THREADS", "1");
        let (prepared, sources) = prepare(&spec, &base)?;
        eprintln!(
            "promcast train: {} series from {} source variants",
            prepared.len(),
            sources.len()
        );
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let bar = progress_bar(opts.epochs as u64, "train");
        let progress = |e: usize, b: usize, n: usize, loss: f64| {
            bar.set_position((e - 1) as u64);
            bar.set_message(format!("epoch {e} batch {b}/{n} loss {loss:.4}"));
        };
        let record = train(&prepared, &sources, &opts, &out, &command, &progress)?;
        bar.finish_and_clear();
        for e in &record.epochs {
            println!(
                "epoch {:>3}: train {:.5} validation {:.5} ({:.0} windows/s)",
                e.epoch, e.train_loss, e.validation_loss, e.windows_per_second
            );
        }
        println!(
            "best epoch {} (validation {:.5}); wrote {}",
            record.best_epoch,
            record.best_validation_loss,
            record.model.display()
        );
        Ok(())
    }
}

/// `promcast simulate`.
#[derive(clap::Args)]
pub struct Simulate {
    #[command(flatten)]
    input: TraceArgs,
    #[command(flatten)]
    opts: SimOptions,
    /// Sweep the HPA over its target utilisation and every predictive policy over its knobs
    /// (and the oracle bound): frontier.csv, frontier.png and the headline figures.
    #[arg(long)]
    frontier: bool,
    /// The oracle's centred window in buckets for --frontier (0: no oracle).
    #[arg(long = "oracle-window", default_value_t = 15)]
    oracle_window: usize,
    /// Output directory: summary.csv, timeline.png, cost_vs_violations.png (with --frontier:
    /// frontier.csv, frontier.png).
    #[arg(long)]
    out: PathBuf,
}

impl Simulate {
    pub fn run(self) -> anyhow::Result<()> {
        let (traces, step) = self.input.load()?;
        let [trace] = &traces[..] else {
            anyhow::bail!(
                "simulate needs one series; {} has {} (pick one with --column/--key)",
                self.input.input.display(),
                traces.len()
            );
        };
        let opts = SimOptions { step, ..self.opts };
        let (b0, values) = trace.bucketed(step.as_millis() as i64);
        if self.frontier {
            let grid = Grid {
                oracle_window: self.oracle_window,
                ..Grid::default()
            };
            let f = frontier(&values, b0, trace.calendar, &opts, &grid)?;
            report::write_frontier(&f, &opts, &trace.name, &self.out)?;
            print!("{}", f.headline());
            print_wrote(&self.out);
            return Ok(());
        }
        let sim = simulate(&values, b0, trace.calendar, &opts)?;
        report::write_simulation(&sim, &trace.name, &self.out)?;
        print!("{}", report::print_simulation(&sim));
        print_wrote(&self.out);
        Ok(())
    }
}

/// `promcast tune`.
#[derive(clap::Args)]
pub struct Tune {
    /// The history: a trace file (with the usual trace options) ...
    #[command(flatten)]
    input: Option<TraceArgs>,
    /// ... or a Prometheus to read one series from (HTTP API, `query_range`).
    #[arg(long = "from-prometheus", conflicts_with = "input")]
    from_prometheus: Option<String>,
    /// With --from-prometheus: the series (a selector or expression giving one series).
    #[arg(long, requires = "from_prometheus")]
    series: Option<String>,
    /// With --from-prometheus: how far back to read.
    #[arg(long, default_value = "14d", value_parser = parse_duration)]
    lookback: Duration,
    /// With --from-prometheus: the resolution to read at (the agent's storage.step).
    #[arg(long = "query-step", default_value = "1m", value_parser = parse_duration)]
    query_step: Duration,
    /// Load one replica serves at full utilisation (the series' units).
    #[arg(long)]
    capacity: f64,
    /// Pod start-up: a replica is ready this long after it is asked for.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    startup: Duration,
    #[command(flatten)]
    opts: TuneOptions,
    #[arg(long = "min-replicas", default_value_t = 1)]
    min_replicas: u32,
    #[arg(long = "max-replicas", default_value_t = 1000)]
    max_replicas: u32,
    /// Forecast model (as in the agent's config).
    #[arg(long, default_value = "auto")]
    model: String,
    /// ONNX model file for lstm/auto (default: the built-in one).
    #[arg(long = "model-file")]
    model_file: Option<PathBuf>,
    /// The target's name in best.yaml.
    #[arg(long, default_value = "web")]
    name: String,
    /// Output directory: trials.csv, best.yaml, frontier.png, convergence.png.
    #[arg(long)]
    out: PathBuf,
}

impl Tune {
    /// The history, its step, and the series' name for best.yaml.
    fn history(&self) -> anyhow::Result<(super::data::Trace, Duration, String)> {
        match (&self.input, &self.from_prometheus) {
            (Some(input), _) => {
                let (traces, step) = input.load()?;
                let [trace] = <[_; 1]>::try_from(traces).map_err(|t: Vec<_>| {
                    anyhow::anyhow!(
                        "tune needs one series; {} has {} (pick one with --column/--key)",
                        input.input.display(),
                        t.len()
                    )
                })?;
                Ok((trace, step, "<your series>".to_string()))
            }
            (None, Some(url)) => {
                let series = self
                    .series
                    .clone()
                    .context("--from-prometheus needs --series SELECTOR")?;
                eprintln!(
                    "promcast tune: reading {series} from {url} over {}",
                    format_duration(self.lookback)
                );
                let end = crate::store::now_ms();
                let trace = prom::fetch(url, &series, self.lookback, self.query_step, end)?;
                eprintln!(
                    "promcast tune: read {} points from {}",
                    trace.values.len(),
                    url
                );
                Ok((trace, self.query_step, series))
            }
            (None, None) => {
                anyhow::bail!("give --input FILE or --from-prometheus URL --series SELECTOR")
            }
        }
    }

    pub fn run(self) -> anyhow::Result<()> {
        let (trace, step, series) = self.history()?;
        // The simulation knobs tune takes: its own help texts, a subset of simulate's.
        let mut sim = SimOptions::new(step);
        sim.capacity = self.capacity;
        sim.startup = self.startup;
        sim.min_replicas = self.min_replicas;
        sim.max_replicas = self.max_replicas;
        sim.model = self.model;
        sim.lstm = self.model_file;
        let opts = TuneOptions {
            sim,
            budget: self.opts.budget.max(1),
            ..self.opts
        };
        let (b0, values) = trace.bucketed(step.as_millis() as i64);
        let bar = progress_bar(2 * opts.budget as u64, "tune");
        bar.set_message("forecasting the history once");
        let t = tune(&values, b0, trace.calendar, &opts, &|done, _| {
            bar.set_message("trials");
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        report::write_tuning(&t, &trace.name, &self.out, &self.name, &series)?;
        print!("{}", t.summary());
        print_wrote(&self.out);
        Ok(())
    }
}

/// [`Slo`]'s flags: at most one SLO, or a budget; none is `--within-hpa-cost 0.7`.
#[derive(clap::Args)]
struct SloArgs {
    /// SLO: unserved demand at most this share of all demand (e.g. 0.001).
    #[arg(long = "max-unserved-fraction", conflicts_with_all = ["max_violation_minutes_per_day", "match_hpa", "within_hpa_cost"])]
    max_unserved_fraction: Option<f64>,
    /// SLO: at most this many minutes a day with demand above ready capacity.
    #[arg(long = "max-violation-minutes-per-day", conflicts_with_all = ["match_hpa", "within_hpa_cost"])]
    max_violation_minutes_per_day: Option<f64>,
    /// SLO: no more unserved demand than the HPA at this target utilisation.
    #[arg(long = "match-hpa", conflicts_with = "within_hpa_cost")]
    match_hpa: Option<f64>,
    /// Instead of an SLO, a budget: no more replica-minutes than the HPA at this target
    /// utilisation, with as little unserved demand as possible (the default, at 0.7, when
    /// no SLO is given).
    #[arg(long = "within-hpa-cost")]
    within_hpa_cost: Option<f64>,
}

impl From<SloArgs> for Slo {
    fn from(a: SloArgs) -> Slo {
        match a {
            SloArgs {
                max_unserved_fraction: Some(f),
                ..
            } => Slo::UnservedFraction(f),
            SloArgs {
                max_violation_minutes_per_day: Some(m),
                ..
            } => Slo::ViolationMinutesPerDay(m),
            SloArgs {
                match_hpa: Some(u), ..
            } => Slo::MatchHpa(u),
            SloArgs {
                within_hpa_cost: u, ..
            } => Slo::HpaCost(u.unwrap_or(0.7)),
        }
    }
}

impl FromArgMatches for Slo {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        SloArgs::from_arg_matches(m).map(Slo::from)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for Slo {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        SloArgs::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        SloArgs::augment_args_for_update(cmd)
    }
}

/// `promcast anomaly-eval`.
#[derive(clap::Args)]
pub struct AnomalyEval {
    #[command(flatten)]
    opts: NabEvalOptions,
    /// Also print each forest detector's figures over thresholds 0.30..0.90.
    #[arg(long)]
    sweep: bool,
}

impl AnomalyEval {
    pub fn run(self) -> anyhow::Result<()> {
        let opts = NabEvalOptions {
            retrain_every: self.opts.retrain_every.max(1),
            ..self.opts
        };
        let report = nab::run_nab_eval(&opts)?;
        nab::print_report(&report);
        if self.sweep {
            nab::print_sweep(&report);
        }
        println!("wrote {}", opts.out.display());
        Ok(())
    }
}

fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// The last lines of an offline tool: where its files and its page are.
fn print_wrote(out: &Path) {
    println!("wrote {}", out.display());
    println!("wrote {}", out.join("report.html").display());
}
