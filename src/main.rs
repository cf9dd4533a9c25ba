//! The `promcast` command: parse the CLI, set up logging, call the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use promcast::config::Config;
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
    Backtest(BacktestArgs),
    #[cfg(feature = "offline")]
    /// Train the global quantile LSTM on recorded traces (candle, CPU) and export it as ONNX.
    Train(TrainArgs),
    #[cfg(feature = "offline")]
    /// Replay a demand trace against autoscaling policies (HPA as documented, promcast's
    /// predictive policies) and score violations against cost.
    Simulate(SimulateArgs),
    #[cfg(feature = "offline")]
    /// Find the cheapest scaling policy that meets an SLO on recorded history (Bayesian
    /// optimisation), check it on held-out data, and write it as a ready `scaling:` block.
    Tune(TuneArgs),
    #[cfg(feature = "offline")]
    /// Replay NAB-layout series through the agent's anomaly scoring and score the alarms
    /// against labelled windows, next to the band and rolling-MAD baselines.
    AnomalyEval(AnomalyEvalArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// YAML configuration file; without it promcast runs on its embedded defaults
    /// (forecast every recording-rule output, `level:metric:operations`).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    listen: ListenArgs,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// YAML configuration file (its `auth:` and `tls:` protect the page as they do for
    /// `serve`); without it, the embedded defaults plus the demo's scaling target `nasa-web`.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    listen: ListenArgs,
    /// How many times faster than real time the traces are replayed (60: a minute of trace
    /// per second, an hour a minute).
    #[arg(long, default_value_t = 60.0, value_parser = parse_speed)]
    speed: f64,
    /// Feed each trace this many times (label `copy`), to look at the page with many series.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    copies: u32,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (1.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?}: a speed from 1 to 3600 (60 replays a minute of trace per second)"
        )),
    }
}

#[derive(clap::Args)]
struct ListenArgs {
    /// Address to listen on for remote write, /metrics and the API.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9201")]
    listen: SocketAddr,
    /// Address of the KEDA external scaler (gRPC); served when `scaling:` has targets.
    #[arg(long = "grpc.listen-address", default_value = "0.0.0.0:9202")]
    grpc_listen: SocketAddr,
    /// After SIGTERM, how long to keep delivering queued forecasts.
    #[arg(long = "remote-write.flush-deadline", default_value = "10s", value_parser = parse_duration)]
    flush_deadline: Duration,
}

#[cfg(feature = "offline")]
#[derive(clap::Args)]
struct BacktestArgs {
    #[command(flatten)]
    input: TraceArgs,
    /// Models to evaluate: naive, seasonal_naive, mstl, lstm, auto.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "seasonal_naive,mstl,lstm,auto"
    )]
    models: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "5m,15m,30m", value_parser = parse_duration)]
    horizons: Vec<Duration>,
    /// The agent's storage.retention: history the models may use at each origin.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    retention: Duration,
    /// Seasonal periods for mstl and seasonal_naive.
    #[arg(long, value_delimiter = ',', default_value = "1h,1d", value_parser = parse_duration)]
    seasons: Vec<Duration>,
    /// How often mstl refits (as in the agent).
    #[arg(long = "refit-every", default_value = "15m", value_parser = parse_duration)]
    refit_every: Duration,
    /// Band quantiles (yhat_lower, yhat_upper).
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.9")]
    quantiles: Vec<f64>,
    /// ONNX model for lstm and auto.
    #[arg(long = "model")]
    model_file: Option<PathBuf>,
    /// Share of each series (at its end) that is the test split.
    #[arg(long = "test-fraction", default_value_t = 0.2)]
    test_fraction: f64,
    /// Evaluate every N steps of the test split.
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// Also write `series.csv` (every evaluated series as bucketed, with its MASE scale and
    /// test start), from which `bench/peers/` fits other tools on the same origins.
    #[arg(long = "write-series")]
    write_series: bool,
    /// Output directory: metrics.csv, forecasts.csv, per_series.csv, buckets.csv, plots/.
    #[arg(long)]
    out: PathBuf,
}

#[cfg(feature = "offline")]
#[derive(clap::Args)]
struct TrainArgs {
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
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Input steps of the model.
    #[arg(long, default_value_t = 48)]
    window: usize,
    /// LSTM hidden size.
    #[arg(long, default_value_t = 32)]
    hidden: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[arg(long = "windows-per-epoch", default_value_t = 65_536)]
    windows_per_epoch: usize,
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Epochs without a better validation loss before stopping.
    #[arg(long, default_value_t = 6)]
    patience: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this long (the best checkpoint is exported).
    #[arg(long = "max-time", value_parser = parse_duration)]
    max_time: Option<Duration>,
    /// Start from a checkpoint (best.safetensors of a run with the same shapes), e.g. to
    /// fine-tune the shipped model's weights on your own history.
    #[arg(long)]
    init: Option<PathBuf>,
}

#[cfg(feature = "offline")]
#[derive(clap::Args)]
struct SimulateArgs {
    #[command(flatten)]
    input: TraceArgs,
    /// Load one replica serves (the trace's units).
    #[arg(long)]
    capacity: f64,
    /// Pod start-up: a replica is ready this long after it is asked for.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    startup: Duration,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "static,reactive,ceiling,buffered,quantile,incremental"
    )]
    policies: Vec<String>,
    /// `static`'s replicas (default: enough for the mean demand).
    #[arg(long = "static-replicas")]
    static_replicas: Option<u32>,
    #[arg(long = "min-replicas", default_value_t = 1)]
    min_replicas: u32,
    #[arg(long = "max-replicas", default_value_t = 1000)]
    max_replicas: u32,
    /// `buffered`'s margin.
    #[arg(long, default_value_t = 0.2)]
    margin: f64,
    /// `quantile`'s level.
    #[arg(long, default_value_t = 0.9)]
    quantile: f64,
    /// `incremental`'s largest change per decision.
    #[arg(long = "max-step", default_value_t = 2)]
    max_step: u32,
    #[arg(long = "scale-down-stabilization", default_value = "2m", value_parser = parse_duration)]
    scale_down_stabilization: Duration,
    /// The share of --capacity every policy sizes a replica for (the HPA's target value);
    /// violations and unserved demand count against full capacity.
    #[arg(long = "target-utilization", default_value_t = 0.7)]
    target_utilization: f64,
    /// What predictive policies size for: up_to_lead (the band's maximum until new replicas
    /// are ready), at_lead (the band when they are), peak (the maximum over --peak-window
    /// after that).
    #[arg(long, default_value = "peak", value_parser = parse_sizing)]
    sizing: promcast::scale::Sizing,
    #[arg(long = "peak-window", default_value = "1m", value_parser = parse_duration)]
    peak_window: Duration,
    /// How predictive policies scale in: window (to the highest recommendation of
    /// --scale-down-stabilization) or forecast (as far as the band over the start-up plus
    /// that window allows).
    #[arg(long = "scale-in", default_value = "window", value_parser = parse_scale_in)]
    scale_in: promcast::scale::ScaleIn,
    /// desired = max(reactive, predictive); `--reactive-floor false` lets the forecast decide.
    #[arg(long = "reactive-floor", default_value_t = true, action = clap::ArgAction::Set)]
    reactive_floor: bool,
    /// Sweep the HPA over its target utilisation and every predictive policy over its knobs
    /// (and the oracle bound): frontier.csv, frontier.png and the headline figures.
    #[arg(long)]
    frontier: bool,
    /// The oracle's centred window in buckets for --frontier (0: no oracle).
    #[arg(long = "oracle-window", default_value_t = 15)]
    oracle_window: usize,
    /// Forecast model of the predictive policies. `oracle:N` is a bound, not a model: the
    /// centred N-bucket mean of the actual trace, future included.
    #[arg(long, default_value = "auto")]
    model: String,
    /// ONNX model file for lstm/auto (default: the built-in one).
    #[arg(long = "model-file")]
    model_file: Option<PathBuf>,
    /// Share of the trace (at its end) that is scored.
    #[arg(long = "eval-fraction", default_value_t = 0.2)]
    eval_fraction: f64,
    /// The forecaster's history (the agent's storage.retention).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    retention: Duration,
    /// Seasonal periods of the forecast models (multiples of the step, two steps or more).
    #[arg(long, value_delimiter = ',', default_value = "1h,1d", value_parser = parse_duration)]
    seasons: Vec<Duration>,
    /// Output directory: summary.csv, timeline.png, cost_vs_violations.png (with --frontier:
    /// frontier.csv, frontier.png).
    #[arg(long)]
    out: PathBuf,
}

#[cfg(feature = "offline")]
#[derive(clap::Args)]
struct TuneArgs {
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
    /// An SLO must hold with this share to spare on the tuning window, since unserved demand
    /// varies more from week to week than cost does.
    #[arg(long = "slo-margin", default_value_t = 0.2)]
    slo_margin: f64,
    /// Trials of the Bayesian optimisation (a random search of the same size runs beside it).
    #[arg(long, default_value_t = 40)]
    budget: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of the history used for tuning; the rest is held out to check the winner.
    #[arg(long = "train-fraction", default_value_t = 0.8)]
    train_fraction: f64,
    /// The HPA's target utilisation the held-out check compares against.
    #[arg(long = "hpa-utilization", default_value_t = 0.7)]
    hpa_utilization: f64,
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

#[cfg(feature = "offline")]
fn parse_sizing(s: &str) -> Result<promcast::scale::Sizing, String> {
    use promcast::scale::Sizing;
    Sizing::ALL
        .into_iter()
        .find(|z| z.as_str() == s)
        .ok_or_else(|| format!("{s:?}: one of up_to_lead, at_lead, peak"))
}

#[cfg(feature = "offline")]
fn parse_scale_in(s: &str) -> Result<promcast::scale::ScaleIn, String> {
    use promcast::scale::ScaleIn;
    [ScaleIn::Window, ScaleIn::Forecast]
        .into_iter()
        .find(|z| z.as_str() == s)
        .ok_or_else(|| format!("{s:?}: window or forecast"))
}

#[cfg(feature = "offline")]
#[derive(clap::Args)]
struct AnomalyEvalArgs {
    /// Tree in NAB's layout: DIR/<category>/<name>.csv with `timestamp,value`.
    #[arg(long)]
    nab: PathBuf,
    /// NAB's combined_windows.json.
    #[arg(long)]
    labels: PathBuf,
    /// Output directory: anomaly.csv, summary.csv, plots/, results/ (NAB's results layout:
    /// results/<detectorname>/<category>/<detectorname>_<name>.csv).
    #[arg(long)]
    out: PathBuf,
    /// Score at or above which the forest alarms.
    #[arg(long, default_value_t = 0.65)]
    threshold: f64,
    /// Sub-folders to run (comma-separated); default: every sub-folder of --nab.
    #[arg(long, value_delimiter = ',')]
    categories: Option<Vec<String>>,
    /// Points of history each forest trains on (the agent's retention / step).
    #[arg(long, default_value_t = 1440)]
    history: usize,
    /// Points between retrainings (the agent's anomaly.retrain_every / step).
    #[arg(long = "retrain-every", default_value_t = 60)]
    retrain_every: usize,
    /// Seed of the forests (the agent's is 0); the same seed gives the same figures.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// What drives the `agent` detector (the agent's anomaly.signal): `score` (against
    /// --threshold) or `likelihood` (against --likelihood-threshold).
    #[arg(long, default_value = "likelihood", value_parser = parse_signal)]
    signal: promcast::anomaly::AlarmSignal,
    /// Threshold of the likelihood detectors (the agent's anomaly.likelihood_threshold).
    #[arg(long = "likelihood-threshold", default_value_t = 0.15)]
    likelihood_threshold: f64,
    /// How long the `agent` detector holds after it fires (the agent's anomaly.suppress; 0s:
    /// every anomalous point fires), counted in each file's steps [default: 1d]
    #[arg(long, value_parser = parse_duration)]
    suppress: Option<std::time::Duration>,
    /// Also print each forest detector's figures over thresholds 0.30..0.90.
    #[arg(long)]
    sweep: bool,
    /// Also optimise each detector's threshold per NAB profile (standard, reward_low_FP_rate,
    /// reward_low_FN_rate) as NAB's optimiser does, over all files of the run; printed and
    /// written to summary.csv.
    #[arg(long)]
    optimize: bool,
}

/// Where a trace comes from and how to read it (shared by the offline subcommands).
#[cfg(feature = "offline")]
#[derive(clap::Args, Clone)]
struct TraceArgs {
    /// CSV file (optionally gzipped) or a directory of them.
    #[arg(long)]
    input: PathBuf,
    /// Value column(s); `*` = every column but the time and key columns (a wide file).
    /// Default: the second column.
    #[arg(long, value_delimiter = ',')]
    column: Vec<String>,
    /// Time column; default the first. Unix seconds, RFC 3339, `YYYY-MM-DD HH:MM:SS`, or an
    /// integer index (then --step is its spacing).
    #[arg(long = "time-column")]
    time_column: Option<String>,
    /// Columns whose values split a long-format file into series.
    #[arg(long, value_delimiter = ',')]
    key: Vec<String>,
    /// Step the trace is bucketed to (the agent's storage.step); default: the median spacing.
    #[arg(long, value_parser = parse_duration)]
    step: Option<Duration>,
    /// Treat runs of at least N zeros as missing data (a monitoring outage recorded as 0).
    #[arg(long = "zero-run-gap")]
    zero_run_gap: Option<usize>,
    /// Sum the members named by this column (e.g. container_ip) into one series per --key
    /// group, as a `sum by (key)` recording rule would (needs --step).
    #[arg(long = "sum-over")]
    sum_over: Option<String>,
    /// Keep only rows where COLUMN equals VALUE (`--where request_type=API Requests`).
    #[arg(long = "where", value_parser = parse_where)]
    filters: Vec<(String, String)>,
}

#[cfg(feature = "offline")]
fn parse_where(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(c, v)| (c.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected COLUMN=VALUE, got {s:?}"))
}

#[cfg(feature = "offline")]
impl TraceArgs {
    fn load(&self) -> anyhow::Result<(Vec<promcast::offline::data::Trace>, Duration)> {
        use promcast::offline::data::{read_traces, CsvOptions};
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
                    promcast::config::format_duration(s)
                );
                s
            }
        };
        Ok((traces, step))
    }
}

#[cfg(feature = "offline")]
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
        Command::Serve(args) => serve_command(args, &cli.log_level, cli.log_format),
        Command::Demo(args) => demo_command(args, &cli.log_level, cli.log_format),
        Command::CheckConfig { file } => check_config(&file),
        Command::DefaultConfig => {
            print!("{}", promcast::config::DEFAULT_CONFIG_YAML);
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "offline")]
        Command::Backtest(args) => backtest(args),
        #[cfg(feature = "offline")]
        Command::Train(args) => train(args),
        #[cfg(feature = "offline")]
        Command::Simulate(args) => simulate(args),
        #[cfg(feature = "offline")]
        Command::Tune(args) => tune(args),
        #[cfg(feature = "offline")]
        Command::AnomalyEval(args) => anomaly_eval(args),
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
    let l = args.listen;
    run_agent(
        config,
        ServeOptions::new(l.listen, l.grpc_listen, l.flush_deadline),
    )
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
    let l = args.listen;
    let mut opts = ServeOptions::new(l.listen, l.grpc_listen, l.flush_deadline);
    opts.clock = promcast::store::Clock::accelerated(args.speed);
    let speed = args.speed;
    let retention_ms = (config.step * config.ring_len.get() as u32).as_millis() as i64;
    opts.on_ready = Some(Box::new(move |state, url| {
        let traces = traces(args.copies as usize);
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

#[cfg(feature = "offline")]
fn parse_signal(s: &str) -> Result<promcast::anomaly::AlarmSignal, String> {
    match s {
        "score" => Ok(promcast::anomaly::AlarmSignal::Score),
        "likelihood" => Ok(promcast::anomaly::AlarmSignal::Likelihood),
        _ => Err(format!("expected `score` or `likelihood`, got `{s}`")),
    }
}

#[cfg(feature = "offline")]
fn anomaly_eval(a: AnomalyEvalArgs) -> anyhow::Result<ExitCode> {
    use promcast::offline::nab;
    let mut opts = nab::NabEvalOptions::new(a.nab, a.labels, a.out);
    opts.threshold = a.threshold;
    opts.categories = a.categories;
    opts.history = a.history;
    opts.retrain_every = a.retrain_every.max(1);
    opts.seed = a.seed;
    opts.signal = a.signal;
    opts.likelihood_threshold = a.likelihood_threshold;
    opts.suppress = a.suppress;
    opts.optimize = a.optimize;
    let report = nab::run_nab_eval(&opts)?;
    nab::print_report(&report);
    if a.sweep {
        nab::print_sweep(&report);
    }
    println!("wrote {}", opts.out.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "offline")]
fn backtest(a: BacktestArgs) -> anyhow::Result<ExitCode> {
    use promcast::offline::{backtest, report};
    let (traces, step) = a.input.load()?;
    let mut opts = backtest::BacktestOptions::new(step);
    opts.models = a.models;
    opts.horizons = a.horizons;
    opts.retention = a.retention;
    opts.seasons = a.seasons;
    opts.refit_every = a.refit_every;
    opts.quantiles = match a.quantiles.as_slice() {
        [lo, hi] => (*lo, *hi),
        _ => anyhow::bail!("--quantiles needs two levels, lower and upper"),
    };
    opts.lstm = a.model_file;
    opts.test_fraction = a.test_fraction;
    opts.stride = a.stride;
    let bar = progress_bar((traces.len() * opts.models.len()) as u64, "backtest");
    let bt = backtest::run(&traces, &opts, &|model, i, _| {
        bar.set_message(model.to_string());
        if i > 0 || model != opts.models[0] {
            bar.inc(1);
        }
    })?;
    bar.finish_and_clear();
    report::write_backtest(&bt, &a.out)?;
    if a.write_series {
        report::write_backtest_series(&bt, &a.out)?;
    }
    print!("{}", report::print_table(&bt));
    print_wrote(&a.out);
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "offline")]
fn train(a: TrainArgs) -> anyhow::Result<ExitCode> {
    use promcast::config::PromDuration;
    use promcast::offline::train::{prepare, train, DataSpec, Source, TrainOptions};
    let (spec, base) = match (a.data, a.input) {
        (Some(d), _) => DataSpec::load(&d)?,
        (None, Some(i)) => (
            DataSpec {
                sources: vec![Source {
                    name: i.display().to_string(),
                    input: i,
                    column: a.column,
                    time_column: None,
                    key: vec![],
                    step: PromDuration(a.step),
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
    };
    // One compute thread: on small machines candle's default threading is far slower.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let (prepared, sources) = prepare(&spec, &base)?;
    eprintln!(
        "promcast train: {} series from {} source variants",
        prepared.len(),
        sources.len()
    );
    let opts = TrainOptions {
        window: a.window,
        hidden: a.hidden,
        epochs: a.epochs,
        batch: a.batch,
        windows_per_epoch: a.windows_per_epoch,
        lr: a.lr,
        patience: a.patience,
        seed: a.seed,
        max_time: a.max_time.map(PromDuration),
        init: a.init,
        ..TrainOptions::default()
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let bar = progress_bar(a.epochs as u64, "train");
    let record = train(
        &prepared,
        &sources,
        &opts,
        &a.out,
        &command,
        &|e, b, n, loss| {
            bar.set_position((e - 1) as u64);
            bar.set_message(format!("epoch {e} batch {b}/{n} loss {loss:.4}"));
        },
    )?;
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
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "offline")]
fn simulate(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    use promcast::offline::report;
    use promcast::offline::simulate::{simulate, SimOptions};
    use promcast::scale::Policy;
    let (traces, step) = a.input.load()?;
    let [trace] = &traces[..] else {
        anyhow::bail!(
            "simulate needs one series; {} has {} (pick one with --column/--key)",
            a.input.input.display(),
            traces.len()
        );
    };
    let mut opts = SimOptions::new(step);
    opts.capacity = a.capacity;
    opts.startup = a.startup;
    opts.policies = a
        .policies
        .iter()
        .map(|p| {
            Policy::from_name(p).with_context(|| {
                format!("unknown policy {p:?} (static, reactive, ceiling, buffered, quantile, incremental)")
            })
        })
        .collect::<anyhow::Result<_>>()?;
    opts.static_replicas = a.static_replicas;
    opts.min_replicas = a.min_replicas;
    opts.max_replicas = a.max_replicas;
    opts.margin = a.margin;
    opts.quantile = a.quantile;
    opts.max_step = a.max_step;
    opts.scale_down_stabilization = a.scale_down_stabilization;
    opts.target_utilization = a.target_utilization;
    opts.sizing = a.sizing;
    opts.peak_window = a.peak_window;
    opts.scale_in = a.scale_in;
    opts.reactive_floor = a.reactive_floor;
    opts.model = a.model;
    opts.lstm = a.model_file;
    opts.eval_fraction = a.eval_fraction;
    opts.retention = a.retention;
    opts.seasons = a.seasons;
    let (b0, values) = trace.bucketed(step.as_millis() as i64);
    if a.frontier {
        use promcast::offline::frontier::{frontier, Grid};
        let grid = Grid {
            oracle_window: a.oracle_window,
            ..Grid::default()
        };
        let f = frontier(&values, b0, trace.calendar, &opts, &grid)?;
        report::write_frontier(&f, &opts, &trace.name, &a.out)?;
        print!("{}", f.headline());
        print_wrote(&a.out);
        return Ok(ExitCode::SUCCESS);
    }
    let sim = simulate(&values, b0, trace.calendar, &opts)?;
    report::write_simulation(&sim, &trace.name, &a.out)?;
    print!("{}", report::print_simulation(&sim));
    print_wrote(&a.out);
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "offline")]
fn tune(a: TuneArgs) -> anyhow::Result<ExitCode> {
    use promcast::offline::simulate::SimOptions;
    use promcast::offline::tune::{tune, Slo, TuneOptions};
    use promcast::offline::{prom, report};
    let (trace, step, series) = match (&a.input, &a.from_prometheus) {
        (Some(input), _) => {
            let (traces, step) = input.load()?;
            let [trace] = <[_; 1]>::try_from(traces).map_err(|t: Vec<_>| {
                anyhow::anyhow!(
                    "tune needs one series; {} has {} (pick one with --column/--key)",
                    input.input.display(),
                    t.len()
                )
            })?;
            (trace, step, "<your series>".to_string())
        }
        (None, Some(url)) => {
            let series = a
                .series
                .clone()
                .context("--from-prometheus needs --series SELECTOR")?;
            eprintln!(
                "promcast tune: reading {series} from {url} over {}",
                promcast::config::format_duration(a.lookback)
            );
            let end = promcast::store::now_ms();
            let trace = prom::fetch(url, &series, a.lookback, a.query_step, end)?;
            eprintln!(
                "promcast tune: read {} points from {}",
                trace.values.len(),
                url
            );
            (trace, a.query_step, series)
        }
        (None, None) => {
            anyhow::bail!("give --input FILE or --from-prometheus URL --series SELECTOR")
        }
    };
    let mut sim = SimOptions::new(step);
    sim.capacity = a.capacity;
    sim.startup = a.startup;
    sim.min_replicas = a.min_replicas;
    sim.max_replicas = a.max_replicas;
    sim.model = a.model;
    sim.lstm = a.model_file;
    let mut opts = TuneOptions::new(sim);
    opts.slo = match (
        a.max_unserved_fraction,
        a.max_violation_minutes_per_day,
        a.match_hpa,
        a.within_hpa_cost,
    ) {
        (Some(f), ..) => Slo::UnservedFraction(f),
        (_, Some(m), ..) => Slo::ViolationMinutesPerDay(m),
        (_, _, Some(u), _) => Slo::MatchHpa(u),
        (.., Some(u)) => Slo::HpaCost(u),
        _ => Slo::HpaCost(0.7),
    };
    opts.slo_margin = a.slo_margin;
    opts.budget = a.budget.max(1);
    opts.seed = a.seed;
    opts.train_fraction = a.train_fraction;
    opts.hpa_utilization = a.hpa_utilization;
    let (b0, values) = trace.bucketed(step.as_millis() as i64);
    let bar = progress_bar(2 * opts.budget as u64, "tune");
    bar.set_message("forecasting the history once");
    let t = tune(&values, b0, trace.calendar, &opts, &|done, _| {
        bar.set_message("trials");
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    report::write_tuning(&t, &trace.name, &a.out, &a.name, &series)?;
    print!("{}", t.summary());
    print_wrote(&a.out);
    Ok(ExitCode::SUCCESS)
}

/// The last lines of an offline tool: where its files and its page are.
#[cfg(feature = "offline")]
fn print_wrote(out: &Path) {
    println!("wrote {}", out.display());
    println!("wrote {}", out.join("report.html").display());
}
