//! `promcast train`: trains the global quantile LSTM forecaster on many traces at once, in
//! Rust with candle on the CPU, and exports it as an ONNX model the agent loads.
//!
//! - **Inputs** are built by the agent's own code ([`crate::forecast::neural::input_row`]) from
//!   a history cut to the agent's ring (`retention`), so training and serving see identical
//!   windows: robust per-window normalisation, gap filling, time features, and the
//!   `lag_1d_lead` seasonal features.
//! - **Targets** are the normalised values `k` steps after the origin for every horizon `k`;
//!   missing targets are masked out; the loss is the pinball loss over all quantiles.
//! - **Split** (per series, by time): the first 70% trains, the next 10% validates (early
//!   stopping, best checkpoint), the last 20% is never touched (it is `backtest`'s test split).
//! - **Data**: the backtest CSV rules; several sources through a YAML file
//!   ([`DataSpec`], e.g. `models/training-data.yml`), each at its own step, optionally also
//!   aggregated to coarser steps. Sources are sampled by weight, then series by length.
//! - Deterministic for a seed (weight initialisation, sampling, batch order), one thread.

pub mod export;
pub mod net;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::Optimizer as _;
use serde::{Deserialize, Serialize};

use crate::config::{format_duration, PromDuration};
use crate::forecast::neural::{input_row, Feature, History, ModelMeta, Normalisation};
use crate::offline::data::{read_traces, CsvOptions, Trace};
use crate::rng::SplitMix64;
use net::{Net, Shape};

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

/// Hyperparameters and files of one run; the doc comments of the tunable ones are
/// `promcast train`'s help, the others are fixed by the model's contract.
#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct TrainOptions {
    /// Input steps of the model.
    #[arg(long, default_value_t = 48)]
    pub window: usize,
    /// LSTM hidden size.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    #[arg(skip = TrainOptions::default().head)]
    pub head: usize,
    #[arg(skip = TrainOptions::default().horizon_steps)]
    pub horizon_steps: Vec<usize>,
    #[arg(skip = TrainOptions::default().quantiles)]
    pub quantiles: Vec<f64>,
    /// The steps the model will serve (every source step must be one of them).
    #[arg(skip = TrainOptions::default().steps)]
    pub steps: Vec<PromDuration>,
    /// History each window may look back on (the agent's `storage.retention`).
    #[arg(skip = TrainOptions::default().retention)]
    pub retention: PromDuration,
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    #[arg(long = "windows-per-epoch", default_value_t = 65_536)]
    pub windows_per_epoch: usize,
    #[arg(skip = TrainOptions::default().validation_windows)]
    pub validation_windows: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    #[arg(skip = TrainOptions::default().weight_decay)]
    pub weight_decay: f64,
    /// Epochs without a better validation loss before stopping.
    #[arg(long, default_value_t = 6)]
    pub patience: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this long (the best checkpoint is exported).
    #[arg(long = "max-time", value_parser = crate::offline::args::parse_prom_duration)]
    pub max_time: Option<PromDuration>,
    /// Start from a checkpoint (best.safetensors of a run with the same shapes), e.g. to
    /// fine-tune the shipped model's weights on your own history.
    #[arg(long)]
    pub init: Option<PathBuf>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            window: 48,
            hidden: 32,
            head: 64,
            horizon_steps: vec![1, 2, 3, 5, 6, 10, 15, 30],
            quantiles: vec![0.05, 0.1, 0.5, 0.9, 0.95],
            steps: vec![
                PromDuration(Duration::from_secs(60)),
                PromDuration(Duration::from_secs(300)),
            ],
            retention: PromDuration(Duration::from_secs(86_400)),
            epochs: 40,
            batch: 256,
            windows_per_epoch: 65_536,
            validation_windows: 16_384,
            lr: 3e-3,
            weight_decay: 1e-4,
            patience: 6,
            seed: 1,
            max_time: None,
            init: None,
        }
    }
}

/// The features the trained model reads, in input order.
pub const FEATURES: [Feature; 8] = [
    Feature::Value,
    Feature::Mask,
    Feature::TodSin,
    Feature::TodCos,
    Feature::DowSin,
    Feature::DowCos,
    Feature::Lag1dLead,
    Feature::Lag1dLeadMask,
];

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

/// Which part of a series a window's targets may fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
}

/// Bounds (origin range) of a split in a series of `n` buckets: origins `t` whose targets
/// `t + L` stay inside the split.
fn origins(n: usize, split: Split, window: usize, lead: usize) -> std::ops::Range<usize> {
    let train_end = n * 7 / 10;
    let val_end = n * 8 / 10;
    let (lo, hi) = match split {
        Split::Train => (window.saturating_sub(1), train_end),
        Split::Validation => (train_end.max(window.saturating_sub(1)), val_end),
    };
    lo..hi.saturating_sub(lead).max(lo)
}

/// Training windows: `[n, W, F]` inputs, `[n, K]` normalised targets and mask.
pub struct Batch {
    pub inputs: Vec<f32>,
    pub targets: Vec<f32>,
    pub mask: Vec<f32>,
    pub rows: usize,
}

/// Largest |normalised target| used in the loss.
const TARGET_CLIP: f32 = 30.0;

/// Builds windows by sampling `count` (series, origin) pairs of `split`.
pub struct Sampler<'a> {
    pub meta: ModelMeta,
    pub data: &'a [Prepared],
    pub ring: Duration,
    pub horizon_steps: Vec<usize>,
    /// Per variant: weight and the series in it with their number of origins.
    variants: Vec<(f64, Vec<(usize, usize)>)>,
}

impl<'a> Sampler<'a> {
    pub fn new(
        meta: ModelMeta,
        data: &'a [Prepared],
        weights: &[(String, f64)],
        ring: Duration,
        split: Split,
    ) -> Self {
        let horizon_steps = meta.horizon_steps();
        let lead = *horizon_steps.iter().max().unwrap_or(&1);
        let mut variants: Vec<(f64, Vec<(usize, usize)>)> =
            weights.iter().map(|(_, w)| (*w, Vec::new())).collect();
        for (i, p) in data.iter().enumerate() {
            let r = origins(p.values.len(), split, meta.window, lead);
            if !r.is_empty() {
                variants[p.source].1.push((i, r.len()));
            }
        }
        variants.retain(|v| !v.1.is_empty() && v.0 > 0.0);
        Self {
            meta,
            data,
            ring,
            horizon_steps,
            variants,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }

    /// `count` windows (fewer when windows are unusable), deterministic for `rng`.
    pub fn sample(&self, count: usize, split: Split, rng: &mut SplitMix64) -> Batch {
        let (w, f, k) = (
            self.meta.window,
            self.meta.features.len(),
            self.horizon_steps.len(),
        );
        let lead = *self.horizon_steps.iter().max().unwrap_or(&1);
        let total_w: f64 = self.variants.iter().map(|v| v.0).sum();
        let mut b = Batch {
            inputs: Vec::with_capacity(count * w * f),
            targets: Vec::with_capacity(count * k),
            mask: Vec::with_capacity(count * k),
            rows: 0,
        };
        let mut row = vec![0f32; w * f];
        let mut scratch = (Vec::new(), Vec::new());
        let mut attempts = 0;
        while b.rows < count && attempts < count * 20 {
            attempts += 1;
            // variant by weight, series by its number of origins, origin uniform
            let mut x = rng.unit() * total_w;
            let var = self
                .variants
                .iter()
                .find(|v| {
                    x -= v.0;
                    x < 0.0
                })
                .unwrap_or(&self.variants[self.variants.len() - 1]);
            let total: usize = var.1.iter().map(|s| s.1).sum();
            let mut y = (rng.unit() * total as f64) as usize;
            let &(si, _) = var
                .1
                .iter()
                .find(|s| {
                    if y < s.1 {
                        true
                    } else {
                        y -= s.1;
                        false
                    }
                })
                .unwrap_or(&var.1[var.1.len() - 1]);
            let p = &self.data[si];
            let r = origins(p.values.len(), split, w, lead);
            let t = r.start + (rng.unit() * r.len() as f64) as usize;
            let t = t.min(r.end - 1);
            let step_ms = p.step.as_millis() as i64;
            let ring = (self.ring.as_millis() as i64 / step_ms).max(1) as usize;
            let from = (t + 1).saturating_sub(ring);
            let window = &p.values[(t + 1).saturating_sub(w)..=t];
            if window.iter().filter(|v| v.is_finite()).count() * 2 < w {
                continue;
            }
            let history = History {
                values: &p.values[from..=t],
                last_ts_ms: p.first_ms + t as i64 * step_ms,
                calendar: p.calendar,
            };
            let Some(norm) = input_row(&self.meta, p.step, &history, &mut row, &mut scratch) else {
                continue;
            };
            let mut any = false;
            let (t0, m0) = (b.targets.len(), b.mask.len());
            for &h in &self.horizon_steps {
                let y = p.values.get(t + h).copied().unwrap_or(f32::NAN);
                if y.is_finite() {
                    b.targets
                        .push(norm.normalise(y as f64).clamp(-TARGET_CLIP, TARGET_CLIP));
                    b.mask.push(1.0);
                    any = true;
                } else {
                    b.targets.push(0.0);
                    b.mask.push(0.0);
                }
            }
            if !any {
                b.targets.truncate(t0);
                b.mask.truncate(m0);
                continue;
            }
            b.inputs.extend_from_slice(&row);
            b.rows += 1;
        }
        b
    }
}

/// The model metadata a run trains for.
pub fn model_meta(opts: &TrainOptions) -> ModelMeta {
    let step = opts.steps[0].0;
    ModelMeta {
        window: opts.window,
        step,
        steps: opts.steps.iter().map(|s| s.0).collect(),
        horizons: opts
            .horizon_steps
            .iter()
            .map(|k| step * *k as u32)
            .collect(),
        quantiles: opts.quantiles.clone(),
        features: FEATURES.to_vec(),
        normalisation: Normalisation::RobustMedianIqrMad,
    }
}

pub fn shape(opts: &TrainOptions) -> Shape {
    let pos = |f: Feature| FEATURES.iter().position(|x| *x == f).expect("listed");
    Shape {
        window: opts.window,
        features: FEATURES.len(),
        hidden: opts.hidden,
        head: opts.head,
        horizon_steps: opts.horizon_steps.clone(),
        quantiles: opts.quantiles.clone(),
        value_feature: pos(Feature::Value),
        lead_feature: pos(Feature::Lag1dLead),
        lead_mask_feature: pos(Feature::Lag1dLeadMask),
    }
}

/// Per-epoch record.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub lr: f64,
    pub seconds: f64,
    pub windows_per_second: f64,
}

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub options: TrainOptions,
    pub sources: Vec<(String, f64)>,
    pub series: usize,
    pub epochs: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best_validation_loss: f64,
    pub command: String,
    pub model: PathBuf,
}

fn tensors(b: &Batch, meta: &ModelMeta, dev: &Device) -> Result<(Tensor, Tensor, Tensor)> {
    let k = meta.horizons.len();
    Ok((
        Tensor::from_slice(&b.inputs, (b.rows, meta.window, meta.features.len()), dev)?,
        Tensor::from_slice(&b.targets, (b.rows, k), dev)?,
        Tensor::from_slice(&b.mask, (b.rows, k), dev)?,
    ))
}

fn batch_slice(b: &Batch, from: usize, to: usize, meta: &ModelMeta) -> Batch {
    let (rw, k) = (meta.window * meta.features.len(), meta.horizons.len());
    Batch {
        inputs: b.inputs[from * rw..to * rw].to_vec(),
        targets: b.targets[from * k..to * k].to_vec(),
        mask: b.mask[from * k..to * k].to_vec(),
        rows: to - from,
    }
}

/// Mean pinball loss of `net` over `b`, in batches.
pub fn evaluate(net: &Net, b: &Batch, meta: &ModelMeta, dev: &Device) -> Result<f64> {
    let mut total = 0.0;
    let mut weight = 0.0;
    let step = 1024;
    let mut i = 0;
    while i < b.rows {
        let j = (i + step).min(b.rows);
        let part = batch_slice(b, i, j, meta);
        let (x, y, m) = tensors(&part, meta, dev)?;
        let n: f32 = part.mask.iter().sum();
        let loss = net::pinball(&net.forward(&x)?, &y, &m, &net.shape.quantiles)?;
        total += loss.to_scalar::<f32>()? as f64 * n as f64;
        weight += n as f64;
        i = j;
    }
    Ok(if weight > 0.0 {
        total / weight
    } else {
        f64::NAN
    })
}

fn save_checkpoint(net: &Net, path: &Path) -> Result<()> {
    let map: std::collections::HashMap<String, Tensor> = net::PARAM_NAMES
        .iter()
        .zip(net.vars())
        .map(|(n, v)| (n.to_string(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&map, path)
        .with_context(|| format!("writing {}", path.display()))
}

fn load_checkpoint(net: &Net, path: &Path) -> Result<()> {
    let map = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("reading checkpoint {}", path.display()))?;
    for (name, var) in net::PARAM_NAMES.iter().zip(net.vars()) {
        let t = map
            .get(*name)
            .with_context(|| format!("{}: no tensor {name}", path.display()))?;
        if t.dims() != var.dims() {
            bail!(
                "{}: {name} has shape {:?}, this run needs {:?}",
                path.display(),
                t.dims(),
                var.dims()
            );
        }
        var.set(t)?;
    }
    Ok(())
}

/// Progress callbacks: `(epoch, batch, batches, running loss)`.
pub type Progress<'a> = &'a dyn Fn(usize, usize, usize, f64);

/// Trains on `data`, writes `out/{model.onnx, run.json, losses.csv, checkpoints/}` and
/// returns the record.
pub fn train(
    data: &[Prepared],
    sources: &[(String, f64)],
    opts: &TrainOptions,
    out: &Path,
    command: &str,
    progress: Progress<'_>,
) -> Result<RunRecord> {
    let lead = check_options(data, opts)?;
    std::fs::create_dir_all(out.join("checkpoints"))
        .with_context(|| format!("creating {}", out.display()))?;
    let dev = Device::Cpu;
    let meta = model_meta(opts);
    let net = Net::new(shape(opts), opts.seed, &dev)?;
    if let Some(init) = &opts.init {
        load_checkpoint(&net, init)?;
    }
    let train_s = Sampler::new(meta.clone(), data, sources, opts.retention.0, Split::Train);
    let val_s = Sampler::new(
        meta.clone(),
        data,
        sources,
        opts.retention.0,
        Split::Validation,
    );
    if train_s.is_empty() || val_s.is_empty() {
        bail!(
            "no usable windows: series need more than {} buckets so that 70% trains and 10% validates",
            (opts.window + lead) * 10
        );
    }
    let mut rng = SplitMix64::new(opts.seed ^ 0x5151);
    let val = val_s.sample(opts.validation_windows, Split::Validation, &mut rng);
    let opt = candle_nn::AdamW::new(
        net.vars(),
        candle_nn::ParamsAdamW {
            lr: opts.lr,
            weight_decay: opts.weight_decay,
            ..Default::default()
        },
    )?;
    let started = Instant::now();
    let mut record = RunRecord {
        options: opts.clone(),
        sources: sources.to_vec(),
        series: data.len(),
        epochs: Vec::new(),
        best_epoch: 0,
        best_validation_loss: f64::INFINITY,
        command: command.to_string(),
        model: out.join("model.onnx"),
    };
    let best_path = out.join("best.safetensors");
    let mut trainer = Trainer {
        opts,
        meta: &meta,
        dev: &dev,
        net: &net,
        opt,
        train_s,
        val,
        progress,
    };
    trainer.run(&mut record, out, &best_path, started)?;
    load_checkpoint(&net, &best_path)?;
    write_model(&net, &meta, &record, sources, opts)?;
    write_record(&record, out)?;
    Ok(record)
}

/// Checks that every series is at one of the model's steps and that the options describe a
/// model that can be trained; returns the longest horizon (in steps).
fn check_options(data: &[Prepared], opts: &TrainOptions) -> Result<usize> {
    for p in data {
        if !opts.steps.iter().any(|s| s.0 == p.step) {
            bail!(
                "{} is at step {}, not one of the model's steps ({})",
                p.name,
                format_duration(p.step),
                opts.steps
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
    }
    if !opts.quantiles.iter().any(|q| (q - 0.5).abs() < 1e-9) {
        bail!("quantiles must include 0.5");
    }
    let lead = *opts.horizon_steps.iter().max().context("no horizons")?;
    if lead >= opts.window {
        bail!(
            "the window ({}) must be longer than the longest horizon ({lead} steps)",
            opts.window
        );
    }
    Ok(lead)
}

/// The state the epochs of a run share: the network, its optimiser and the data.
struct Trainer<'a> {
    opts: &'a TrainOptions,
    meta: &'a ModelMeta,
    dev: &'a Device,
    net: &'a Net,
    opt: candle_nn::AdamW,
    train_s: Sampler<'a>,
    /// The fixed validation windows.
    val: Batch,
    progress: Progress<'a>,
}

impl Trainer<'_> {
    /// Runs the epochs, checkpointing each one (and the best so far to `best_path`) and
    /// rewriting the record after each, until the last epoch, `patience` epochs without a
    /// better validation loss, or `max_time` after `started`.
    fn run(
        &mut self,
        record: &mut RunRecord,
        out: &Path,
        best_path: &Path,
        started: Instant,
    ) -> Result<()> {
        let mut since_best = 0;
        for epoch in 1..=self.opts.epochs {
            let e = self.epoch(epoch)?;
            let val_loss = e.validation_loss;
            record.epochs.push(e);
            save_checkpoint(
                self.net,
                &out.join(format!("checkpoints/epoch-{epoch:03}.safetensors")),
            )?;
            if val_loss < record.best_validation_loss {
                record.best_validation_loss = val_loss;
                record.best_epoch = epoch;
                save_checkpoint(self.net, best_path)?;
                since_best = 0;
            } else {
                since_best += 1;
            }
            write_record(record, out)?;
            if since_best >= self.opts.patience {
                break;
            }
            if let Some(max) = self.opts.max_time {
                if started.elapsed() >= max.0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The learning rate of `epoch` (1-based).
    fn learning_rate(&self, epoch: usize) -> f64 {
        let opts = self.opts;
        // cosine decay to 10% of the rate over the planned epochs
        opts.lr
            * (0.1
                + 0.9
                    * 0.5
                    * (1.0
                        + (std::f64::consts::PI * (epoch - 1) as f64 / opts.epochs as f64).cos()))
    }

    /// One epoch: trains on freshly sampled windows batch by batch, then validates.
    fn epoch(&mut self, epoch: usize) -> Result<EpochRecord> {
        let opts = self.opts;
        let t0 = Instant::now();
        let lr = self.learning_rate(epoch);
        self.opt.set_learning_rate(lr);
        let mut erng =
            SplitMix64::new(opts.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let windows = self
            .train_s
            .sample(opts.windows_per_epoch, Split::Train, &mut erng);
        let batches = windows.rows.div_ceil(opts.batch);
        let (mut sum, mut count) = (0.0, 0usize);
        for bi in 0..batches {
            let (i, j) = (bi * opts.batch, ((bi + 1) * opts.batch).min(windows.rows));
            if let Some(v) = self.step(&batch_slice(&windows, i, j, self.meta))? {
                sum += v;
                count += 1;
            }
            (self.progress)(epoch, bi + 1, batches, sum / count.max(1) as f64);
        }
        let train_loss = sum / count.max(1) as f64;
        let val_loss = evaluate(self.net, &self.val, self.meta, self.dev)?;
        let secs = t0.elapsed().as_secs_f64();
        Ok(EpochRecord {
            epoch,
            train_loss,
            validation_loss: val_loss,
            lr,
            seconds: secs,
            windows_per_second: windows.rows as f64 / secs,
        })
    }

    /// One optimiser step on `part`; returns its loss, or `None` (and leaves the weights
    /// alone) when the loss is not finite.
    fn step(&mut self, part: &Batch) -> Result<Option<f64>> {
        let (x, y, m) = tensors(part, self.meta, self.dev)?;
        let loss = net::pinball(&self.net.forward(&x)?, &y, &m, &self.opts.quantiles)?;
        let v = loss.to_scalar::<f32>()? as f64;
        if !v.is_finite() {
            return Ok(None);
        }
        let grads = loss.backward()?;
        self.opt.step(&grads)?;
        Ok(Some(v))
    }
}

/// Exports `net` as ONNX, with the run's provenance in the metadata, to `record.model`.
fn write_model(
    net: &Net,
    meta: &ModelMeta,
    record: &RunRecord,
    sources: &[(String, f64)],
    opts: &TrainOptions,
) -> Result<()> {
    let command = &record.command;
    let bytes = export::export_onnx(
        net,
        &export::ExportMeta {
            features: FEATURES.to_vec(),
            step: meta.step,
            steps: meta.steps.clone(),
            normalisation: meta.normalisation,
            doc: format!(
                "promcast quantile LSTM forecaster; trained by `{command}`; best epoch {} of {}, validation pinball loss {:.5}",
                record.best_epoch,
                record.epochs.len(),
                record.best_validation_loss
            ),
            extra: vec![
                ("promcast.train.sources".into(), sources.iter().map(|s| s.0.clone()).collect::<Vec<_>>().join(",")),
                ("promcast.train.seed".into(), opts.seed.to_string()),
                ("promcast.train.best_epoch".into(), record.best_epoch.to_string()),
                ("promcast.train.validation_loss".into(), format!("{:.6}", record.best_validation_loss)),
            ],
        },
    )?;
    std::fs::write(&record.model, bytes)
        .with_context(|| format!("writing {}", record.model.display()))
}

fn write_record(r: &RunRecord, out: &Path) -> Result<()> {
    std::fs::write(out.join("run.json"), serde_json::to_string_pretty(r)?)?;
    let mut csv = String::from("epoch,train_loss,validation_loss,lr,seconds,windows_per_second\n");
    for e in &r.epochs {
        let _ = writeln!(
            csv,
            "{},{:.6},{:.6},{:.6},{:.2},{:.0}",
            e.epoch, e.train_loss, e.validation_loss, e.lr, e.seconds, e.windows_per_second
        );
    }
    std::fs::write(out.join("losses.csv"), csv)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::neural::LstmModel;

    #[test]
    fn aggregation_and_splits() {
        let v = [1.0, 3.0, f32::NAN, f32::NAN, 5.0, f32::NAN];
        let a = aggregate(&v, 2);
        assert_eq!(a[0], 2.0);
        assert!(a[1].is_nan());
        assert_eq!(a[2], 5.0);
        let r = origins(1000, Split::Train, 48, 30);
        assert_eq!(r, 47..670);
        let r = origins(1000, Split::Validation, 48, 30);
        assert_eq!(r, 700..770);
    }

    /// The exported ONNX model, run by tract through the agent's own `LstmModel`, equals
    /// candle's forward pass within 1e-4 on random windows of several batch sizes.
    #[test]
    fn export_matches_candle_on_tract() {
        let opts = TrainOptions {
            window: 40,
            hidden: 12,
            head: 16,
            ..TrainOptions::default()
        };
        let dev = Device::Cpu;
        let net = Net::new(shape(&opts), 11, &dev).unwrap();
        let meta = model_meta(&opts);
        let bytes = export::export_onnx(
            &net,
            &export::ExportMeta {
                features: FEATURES.to_vec(),
                step: meta.step,
                steps: meta.steps.clone(),
                normalisation: meta.normalisation,
                doc: "test".into(),
                extra: vec![],
            },
        )
        .unwrap();
        let model = LstmModel::from_bytes(&bytes, "exported").unwrap();
        assert_eq!(model.meta(), &meta);
        let mut rng = SplitMix64::new(3);
        for n in [1usize, 7, 64, 300] {
            let x = rng.uniform_vec(n * 40 * FEATURES.len(), 2.0);
            let want = net
                .forward(&Tensor::from_slice(&x, (n, 40, FEATURES.len()), &dev).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let got = model.run_raw(n, &x).unwrap();
            assert_eq!(got.len(), want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "batch {n}: max |tract - candle| = {worst}");
        }
    }

    /// Seconds-long smoke training on a slice of a real trace: the validation loss falls and
    /// the exported model loads and forecasts.
    #[test]
    fn smoke_training_lowers_the_loss_and_exports() {
        let (_, v) = crate::offline::data::nasa_days(3).bucketed(60_000);
        let data = vec![Prepared {
            source: 0,
            name: "nasa".into(),
            step: Duration::from_secs(60),
            first_ms: 0,
            calendar: false,
            values: v,
        }];
        let opts = TrainOptions {
            window: 40,
            hidden: 8,
            head: 16,
            epochs: 3,
            batch: 64,
            windows_per_epoch: 1024,
            validation_windows: 512,
            lr: 1e-2,
            ..TrainOptions::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let sources = vec![("nasa@1m".to_string(), 1.0)];
        // the untrained network's validation loss
        let meta = model_meta(&opts);
        let untrained = Net::new(shape(&opts), opts.seed, &Device::Cpu).unwrap();
        let val = Sampler::new(
            meta.clone(),
            &data,
            &sources,
            opts.retention.0,
            Split::Validation,
        )
        .sample(
            opts.validation_windows,
            Split::Validation,
            &mut SplitMix64::new(opts.seed ^ 0x5151),
        );
        let before = evaluate(&untrained, &val, &meta, &Device::Cpu).unwrap();
        let r = train(&data, &sources, &opts, dir.path(), "test", &|_, _, _, _| {}).unwrap();
        assert_eq!(r.epochs.len(), 3);
        assert!(
            r.best_validation_loss < before * 0.8,
            "validation loss {before} -> {}",
            r.best_validation_loss
        );
        for f in ["model.onnx", "run.json", "losses.csv", "best.safetensors"] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        // Deterministic for a seed: a second run writes the same model.
        let dir2 = tempfile::tempdir().unwrap();
        train(
            &data,
            &sources,
            &opts,
            dir2.path(),
            "test",
            &|_, _, _, _| {},
        )
        .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("model.onnx")).unwrap(),
            std::fs::read(dir2.path().join("model.onnx")).unwrap(),
            "same seed, same data: same model"
        );
        let model = LstmModel::load(&dir.path().join("model.onnx")).unwrap();
        let hist: Vec<f32> = data[0].values[..2000].to_vec();
        let mut out = Vec::new();
        model
            .predict(
                &[History {
                    values: &hist,
                    last_ts_ms: 0,
                    calendar: false,
                }],
                Duration::from_secs(60),
                &mut out,
            )
            .unwrap();
        assert_eq!(out.len(), 8 * 5);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
