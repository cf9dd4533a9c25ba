//! The `promcast` command: parse the CLI, set up logging, call the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use promcast::config::Config;
use promcast::demo::DemoOptions;
#[cfg(feature = "offline")]
use promcast::offline::commands;
use promcast::server::{serve, shutdown_signal, ServeOptions};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// jemalloc gives freed memory back to the system; glibc's malloc kept the forecast loop's
/// transient buffers resident (at 100k LSTM series, 6.6 GiB of RSS against 0.7 GiB; see
/// docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "promcast",
    version = promcast::telemetry::build::LONG_VERSION,
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

// Parsed once; the offline tools' argument structs are what make some variants large.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the agent: accept remote write, forecast, export.
    Serve(ServeArgs),
    /// Run the agent on real traces shipped in the binary, replayed at an accelerated clock,
    /// and print the URL of its web page: forecasts, anomalies and scaling within a minute.
    Demo(DemoArgs),
    /// Validate a configuration file and report every problem with its key path.
    CheckConfig { file: PathBuf },
    /// Print the embedded default configuration.
    DefaultConfig,
    #[cfg(feature = "offline")]
    /// Rolling-origin backtest of the agent's models on a recorded trace (CSV).
    Backtest(commands::Backtest),
    #[cfg(feature = "offline")]
    /// Train the global quantile LSTM on recorded traces (candle, CPU) and export it as ONNX.
    Train(commands::Train),
    #[cfg(feature = "offline")]
    /// Replay a demand trace against autoscaling policies (HPA as documented, promcast's
    /// predictive policies) and score violations against cost.
    Simulate(commands::Simulate),
    #[cfg(feature = "offline")]
    /// Find the cheapest scaling policy that meets an SLO on recorded history (Bayesian
    /// optimisation), check it on held-out data, and write it as a ready `scaling:` block.
    Tune(commands::Tune),
    #[cfg(feature = "offline")]
    /// Replay NAB-layout series through the agent's anomaly scoring and score the alarms
    /// against labelled windows, next to the band and rolling-MAD baselines.
    AnomalyEval(commands::AnomalyEval),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// YAML configuration file; without it promcast runs on its embedded defaults
    /// (forecast every recording-rule output, `level:metric:operations`).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    listen: ServeOptions,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// YAML configuration file (its `auth:` and `tls:` protect the page as they do for
    /// `serve`); without it, the embedded defaults plus the demo's scaling target `nasa-web`.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    listen: ServeOptions,
    #[command(flatten)]
    demo: DemoOptions,
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
        Command::Serve(args) => serve_command(args, &cli.log_level, cli.log_format),
        Command::Demo(args) => demo_command(args, &cli.log_level, cli.log_format),
        Command::CheckConfig { file } => check_config(&file),
        Command::DefaultConfig => {
            print!("{}", promcast::config::DEFAULT_CONFIG_YAML);
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "offline")]
        Command::Backtest(c) => c.run().map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "offline")]
        Command::Train(c) => c.run().map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "offline")]
        Command::Simulate(c) => c.run().map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "offline")]
        Command::Tune(c) => c.run().map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "offline")]
        Command::AnomalyEval(c) => c.run().map(|()| ExitCode::SUCCESS),
    }
}

fn serve_command(
    args: ServeArgs,
    log_level: &str,
    log_format: LogFormat,
) -> anyhow::Result<ExitCode> {
    init_logging(log_level, log_format)?;
    let config = config_or(args.config.as_deref(), || {
        tracing::info!("no --config given; running on the embedded defaults (promcast default-config prints them)");
        Config::embedded_default()
    })?;
    run_agent(config, args.listen)
}

/// The `--config` file's configuration, or `default()` without one.
fn config_or(path: Option<&Path>, default: impl FnOnce() -> Config) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => default(),
    })
}

fn run_agent(config: Config, opts: ServeOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("promcast-io")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, opts, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// `promcast demo`: see `promcast::demo`.
fn demo_command(
    args: DemoArgs,
    log_level: &str,
    log_format: LogFormat,
) -> anyhow::Result<ExitCode> {
    use promcast::demo::{traces, Replay};
    init_logging(log_level, log_format)?;
    let config = config_or(args.config.as_deref(), promcast::demo::config)?;
    let mut opts = args.listen;
    let DemoOptions { speed, copies } = args.demo;
    opts.clock = promcast::store::Clock::accelerated(speed);
    let retention_ms = (config.step * config.ring_len.get() as u32).as_millis() as i64;
    opts.on_ready = Some(Box::new(move |state, url| {
        let traces = traces(copies as usize);
        let sources: Vec<String> = traces.iter().take(3).map(|t| t.source.clone()).collect();
        let step_ms = state.store().step_ms();
        let replay = Replay::new(traces, state.store().clock(), step_ms);
        let loaded = replay.load_history(&state.ingest, retention_ms)?;
        tracing::info!(samples = loaded, "demo: history loaded");
        tokio::spawn(replay.run(state.ingest.clone()));
        // The page opens on the series the scaling target follows.
        println!(
            "promcast demo: open {url}#{}",
            promcast::demo::FIRST_SERIES_FRAGMENT
        );
        println!("  replaying real traces at {speed}x their speed, from:");
        for s in sources {
            println!("    {s}");
        }
        use std::io::Write as _;
        std::io::stdout().flush().ok();
        Ok(())
    }));
    run_agent(config, opts)
}

/// Validates the file, then loads its model and checks it against every entry.
fn check_config(file: &Path) -> anyhow::Result<ExitCode> {
    let config = match Config::load(file) {
        Ok(config) => config,
        Err(e) => {
            if e.problems().is_empty() {
                println!("{e}");
            }
            for p in e.problems() {
                println!("{}: {p}", file.display());
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let check = promcast::forecast::load::check(&config);
    for note in &check.notes {
        println!("{}: note: {note}", file.display());
    }
    if check.problems.is_empty() {
        println!("{}: OK", file.display());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &check.problems {
        println!("{}: {p}", file.display());
    }
    Ok(ExitCode::FAILURE)
}
