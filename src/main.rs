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

/// jemalloc gives freed memory back to the system; glibc's malloc kept the forecast loop's
/// transient buffers resident (at 100k LSTM series, 6.6 GiB of RSS against 0.7 GiB; see
/// docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
        /// Address of the KEDA external scaler (gRPC); served when `scaling:` has targets.
        #[arg(long = "grpc.listen-address", default_value = "0.0.0.0:9202")]
        grpc_listen: SocketAddr,
        /// After SIGTERM, how long to keep delivering queued forecasts.
        #[arg(long = "remote-write.flush-deadline", default_value = "10s", value_parser = parse_duration)]
        flush_deadline: Duration,
    },
    /// Validate a configuration file and report every problem with its key path.
    CheckConfig { file: PathBuf },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Rolling-origin backtest of the agent's models on a recorded trace (CSV).
    Backtest {
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
        /// Output directory: metrics.csv, forecasts.csv, per_series.csv, buckets.csv, plots/.
        #[arg(long)]
        out: PathBuf,
    },
    /// Train the global quantile LSTM on recorded traces (candle, CPU) and export it as ONNX.
    Train {
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
    },
    /// Replay a demand trace against autoscaling policies (HPA as documented, promcast's
    /// predictive policies) and score violations against cost.
    Simulate {
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
        #[arg(long, default_value_t = 0.15)]
        margin: f64,
        /// `quantile`'s level.
        #[arg(long, default_value_t = 0.9)]
        quantile: f64,
        /// `incremental`'s largest change per decision.
        #[arg(long = "max-step", default_value_t = 2)]
        max_step: u32,
        #[arg(long = "scale-down-stabilization", default_value = "5m", value_parser = parse_duration)]
        scale_down_stabilization: Duration,
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
        /// Output directory: summary.csv, timeline.png, cost_vs_violations.png.
        #[arg(long)]
        out: PathBuf,
    },
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

/// Where a trace comes from and how to read it (shared by the offline subcommands).
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

fn parse_where(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(c, v)| (c.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected COLUMN=VALUE, got {s:?}"))
}

impl TraceArgs {
    fn load(&self) -> anyhow::Result<(Vec<promcast::sim::data::Trace>, Duration)> {
        use promcast::sim::data::{read_traces, CsvOptions};
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
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => {
                // The model too: it must load, and fit every entry that asks for lstm.
                let model = match &config.lstm_model {
                    promcast::config::ModelSource::File(p) => Some(
                        promcast::forecast::neural::LstmModel::load(p).map_err(|e| e.to_string()),
                    ),
                    promcast::config::ModelSource::Builtin => {
                        Some(promcast::forecast::neural::builtin_model().map_err(|e| e.to_string()))
                    }
                    promcast::config::ModelSource::Disabled => None,
                };
                let mut problems = Vec::new();
                match model {
                    Some(Err(e)) => problems.push(format!("inference.model: {e}")),
                    Some(Ok(m)) => {
                        for (i, f) in config.forecast.iter().enumerate() {
                            let hs: Vec<Duration> = f.horizons.iter().map(|h| h.duration).collect();
                            let fit = m.check_fits(
                                config.step,
                                &hs,
                                &[f.lower_quantile, f.upper_quantile],
                            );
                            match (fit, f.model) {
                                (Err(e), promcast::config::ModelChoice::Lstm) => {
                                    problems.push(format!("forecast[{i}].model: {e}"))
                                }
                                (Err(e), promcast::config::ModelChoice::Auto) => println!(
                                    "{}: note: forecast[{i}]: auto will not use the lstm model: {e}",
                                    file.display()
                                ),
                                _ => {}
                            }
                        }
                    }
                    None => {}
                }
                if problems.is_empty() {
                    println!("{}: OK", file.display());
                    Ok(ExitCode::SUCCESS)
                } else {
                    for p in problems {
                        println!("{}: {p}", file.display());
                    }
                    Ok(ExitCode::FAILURE)
                }
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
        Command::Backtest {
            input,
            models,
            horizons,
            retention,
            seasons,
            refit_every,
            quantiles,
            model_file,
            test_fraction,
            stride,
            out,
        } => {
            let (traces, step) = input.load()?;
            let mut opts = promcast::sim::backtest::BacktestOptions::new(step);
            opts.models = models;
            opts.horizons = horizons;
            opts.retention = retention;
            opts.seasons = seasons;
            opts.refit_every = refit_every;
            opts.quantiles = match quantiles.as_slice() {
                [lo, hi] => (*lo, *hi),
                _ => anyhow::bail!("--quantiles needs two levels, lower and upper"),
            };
            opts.lstm = model_file;
            opts.test_fraction = test_fraction;
            opts.stride = stride;
            let bar = progress_bar((traces.len() * opts.models.len()) as u64, "backtest");
            let bt = promcast::sim::backtest::run(&traces, &opts, &|model, i, _| {
                bar.set_message(model.to_string());
                if i > 0 || model != opts.models[0] {
                    bar.inc(1);
                }
            })?;
            bar.finish_and_clear();
            promcast::sim::report::write_backtest(&bt, &out)?;
            print!("{}", promcast::sim::report::print_table(&bt));
            println!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Train {
            data,
            input,
            column,
            step,
            out,
            epochs,
            window,
            hidden,
            batch,
            windows_per_epoch,
            lr,
            patience,
            seed,
            max_time,
            init,
        } => {
            use promcast::config::PromDuration;
            use promcast::train::{prepare, train, DataSpec, Source, TrainOptions};
            let (spec, base) = match (data, input) {
                (Some(d), _) => DataSpec::load(&d)?,
                (None, Some(i)) => (
                    DataSpec {
                        sources: vec![Source {
                            name: i.display().to_string(),
                            input: i,
                            column,
                            time_column: None,
                            key: vec![],
                            step: PromDuration(step),
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
                window,
                hidden,
                epochs,
                batch,
                windows_per_epoch,
                lr,
                patience,
                seed,
                max_time: max_time.map(PromDuration),
                init,
                ..TrainOptions::default()
            };
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let bar = progress_bar(epochs as u64, "train");
            let record = train(
                &prepared,
                &sources,
                &opts,
                &out,
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
        Command::Simulate {
            input,
            capacity,
            startup,
            policies,
            static_replicas,
            min_replicas,
            max_replicas,
            margin,
            quantile,
            max_step,
            scale_down_stabilization,
            model,
            model_file,
            eval_fraction,
            out,
        } => {
            use promcast::scale::Policy;
            use promcast::sim::simulate::{simulate, SimOptions};
            let (traces, step) = input.load()?;
            let [trace] = &traces[..] else {
                anyhow::bail!(
                    "simulate needs one series; {} has {} (pick one with --column/--key)",
                    input.input.display(),
                    traces.len()
                );
            };
            let mut opts = SimOptions::new(step);
            opts.capacity = capacity;
            opts.startup = startup;
            opts.policies = policies
                .iter()
                .map(|p| {
                    Policy::from_name(p).with_context(|| {
                        format!("unknown policy {p:?} (static, reactive, ceiling, buffered, quantile, incremental)")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            opts.static_replicas = static_replicas;
            opts.min_replicas = min_replicas;
            opts.max_replicas = max_replicas;
            opts.margin = margin;
            opts.quantile = quantile;
            opts.max_step = max_step;
            opts.scale_down_stabilization = scale_down_stabilization;
            opts.model = model;
            opts.lstm = model_file;
            opts.eval_fraction = eval_fraction;
            let step_ms = step.as_millis() as i64;
            let (b0, values) = trace.bucketed(step_ms);
            let sim = simulate(&values, b0, trace.calendar, &opts)?;
            promcast::sim::report::write_simulation(&sim, &out)?;
            print!("{}", promcast::sim::report::print_simulation(&sim));
            println!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::DefaultConfig => {
            print!("{}", promcast::config::DEFAULT_CONFIG_YAML);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            config,
            listen,
            grpc_listen,
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
                    grpc_listen,
                    flush_deadline,
                },
                shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
