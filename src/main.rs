//! The `promcast` command: parse the CLI, set up logging, call the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use promcast::config::Config;
use promcast::server::{serve, shutdown_signal, ServeOptions};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "promcast",
    version,
    about = "Predictive autoscaling sidecar for Prometheus: remote-write in, forecasts out"
)]
struct Cli {
    /// Only log messages with the given severity or above: debug, info, warn, error.
    #[arg(long = "log.level", global = true, default_value = "info")]
    log_level: String,
    /// Output format of log messages.
    #[arg(long = "log.format", global = true, value_enum, default_value_t = LogFormat::Logfmt)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: accept remote write, forecast, export.
    Serve {
        /// YAML configuration file; without it promcast runs on its embedded defaults
        /// (forecast every recording-rule output, `level:metric:operations`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on for remote write, /metrics and the API.
        #[arg(long = "web.listen-address", default_value = "0.0.0.0:9201")]
        listen: SocketAddr,
        /// After SIGTERM, how long to keep delivering queued forecasts.
        #[arg(long = "remote-write.flush-deadline", default_value = "10s", value_parser = parse_duration)]
        flush_deadline: Duration,
    },
    /// Validate a configuration file and report every problem with its key path.
    CheckConfig { file: PathBuf },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Replay NAB-layout series through the agent's anomaly scoring and score the alarms
    /// against labelled windows, next to the band and rolling-MAD baselines.
    AnomalyEval {
        /// Tree in NAB's layout: DIR/<category>/<name>.csv with `timestamp,value`.
        #[arg(long)]
        nab: PathBuf,
        /// NAB's combined_windows.json.
        #[arg(long)]
        labels: PathBuf,
        /// Output directory: anomaly.csv, summary.csv, plots/, scores/ (NAB's results layout).
        #[arg(long)]
        out: PathBuf,
        /// Score at or above which the forest alarms.
        #[arg(long, default_value_t = 0.65)]
        threshold: f64,
        /// Sub-folders to run (comma-separated); default: the real ones
        /// (realAWSCloudwatch, realAdExchange, realTweets).
        #[arg(long, value_delimiter = ',')]
        categories: Option<Vec<String>>,
        /// Points of history each forest trains on (the agent's retention / step).
        #[arg(long, default_value_t = 1440)]
        history: usize,
        /// Points between retrainings (the agent's anomaly.retrain_every / step).
        #[arg(long = "retrain-every", default_value_t = 60)]
        retrain_every: usize,
        /// Also print each forest detector's figures over thresholds 0.50..0.80.
        #[arg(long)]
        sweep: bool,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    promcast::config::parse_duration(s).map_err(|e| e.to_string())
}

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(format!("warn,promcast={level}"))
        .with_context(|| format!("invalid --log.level {level:?}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Logfmt => registry.with(tracing_logfmt::layer()).init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("promcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: OK", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) if !e.problems().is_empty() => {
                for p in e.problems() {
                    println!("{}: {p}", file.display());
                }
                Ok(ExitCode::FAILURE)
            }
            Err(e) => {
                println!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::AnomalyEval {
            nab,
            labels,
            out,
            threshold,
            categories,
            history,
            retrain_every,
            sweep,
        } => {
            let mut opts = promcast::anomaly::NabEvalOptions::new(nab, labels, out);
            opts.threshold = threshold;
            opts.categories = categories;
            opts.history = history;
            opts.retrain_every = retrain_every.max(1);
            let report = promcast::anomaly::run_nab_eval(&opts)?;
            promcast::anomaly::print_report(&report);
            if sweep {
                promcast::anomaly::print_sweep(&report);
            }
            println!("wrote {}", opts.out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::DefaultConfig => {
            print!("{}", promcast::config::DEFAULT_CONFIG_YAML);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            config,
            listen,
            flush_deadline,
        } => {
            init_logging(&cli.log_level, cli.log_format)?;
            let config = match &config {
                Some(path) => Config::load(path)?,
                None => {
                    tracing::info!("no --config given; running on the embedded defaults (promcast default-config prints them)");
                    Config::embedded_default()
                }
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("promcast-io")
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(
                config,
                ServeOptions {
                    listen,
                    flush_deadline,
                },
                shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
