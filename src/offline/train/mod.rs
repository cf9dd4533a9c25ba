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
//!   aggregated to coarser steps (`data.rs`). Sources are sampled by weight, then series by
//!   length (`sample.rs`).
//! - Deterministic for a seed (weight initialisation, sampling, batch order), one thread.

mod data;
pub mod export;
pub mod net;
mod sample;

pub use data::{aggregate, prepare, DataSpec, Prepared, Source, Variant};
pub use sample::{Batch, Sampler, Split};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::Optimizer as _;
use serde::Serialize;

use crate::config::{format_duration, PromDuration};
use crate::forecast::neural::{Feature, ModelMeta, Normalisation};
use crate::rng::SplitMix64;
use net::{Net, Shape};

/// Hyperparameters and files of one run; the doc comments of the tunable ones are
/// `promcast train`'s help, the others are fixed by the model's contract.
#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct TrainOptions {
    /// Input steps of the model (longer than the longest horizon).
    #[arg(long, default_value_t = 48)]
    pub window: usize,
    /// LSTM hidden size.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    #[arg(skip = TrainOptions::default().head)]
    pub head: usize,
    /// The horizons the model forecasts, in steps (`models/promcast-lstm-60m.onnx`:
    /// 1,2,3,5,6,9,10,12,15,30,45,60 with `--window 64`).
    #[arg(long = "horizon-steps", value_delimiter = ',', default_values_t = TrainOptions::default().horizon_steps)]
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
    use super::sample::origins;
    use super::*;
    use crate::forecast::neural::{History, LstmModel};

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
