//! `promcast backtest`: rolling-origin evaluation of the agent's own forecasting code.
//!
//! Each trace is replayed origin by origin through the agent's own [`Forecaster`] (one per
//! model, configured like the agent with `model: <that model>`; [`super::replay`]), so what
//! is measured is what the agent would have exported: the same windows, gap handling, ring
//! length, refit cadence and `auto` choices. At every origin `o` of the test split (the last
//! `test_fraction` of the trace's buckets, every `stride` steps), only buckets up to `o` have
//! been appended; the forecast for `o + h` is compared with the actual bucket `o + h`.
//! Missing actuals are not scored.
//!
//! Metrics per model × horizon ([`Metrics`]): MAE, RMSE, sMAPE, MASE (MAE over the in-sample
//! MAE of the seasonal-naive rule on the series' training part), R², coverage and width of the
//! band, and an under-forecast-weighted error. Across several series, MASE, sMAPE, R²,
//! coverage and the scaled width are means over series; MAE, RMSE and under-weighted error are
//! over all forecasts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};

use super::data::Trace;
use super::replay::{Replay, REPLAY_NAME};
use crate::config::{format_duration, Config, ModelSource};
use crate::forecast::load::load_lstm;
use crate::forecast::neural::{BackendChoice, LstmModel};
#[cfg(doc)]
use crate::forecast::Forecaster;
use crate::snapshot::{ForecastAccuracy, ModelKind, SeriesForecast, SeriesState};

/// Cost of an under-forecast relative to an over-forecast in [`Metrics::under_weighted`]:
/// under-provisioning (forecast below the load) hurts more than paying for idle capacity.
pub const UNDER_WEIGHT: f64 = 3.0;

/// What `promcast backtest` evaluates; its doc comments are the flags' help.
#[derive(Debug, Clone, clap::Args)]
pub struct BacktestOptions {
    /// The trace's step (the CLI sets it from the trace).
    #[arg(skip = Duration::ZERO)]
    pub step: Duration,
    #[arg(long, value_delimiter = ',', default_value = "5m,15m,30m", value_parser = crate::config::parse_duration)]
    pub horizons: Vec<Duration>,
    /// Models to evaluate (names as in the config, and auto); default every model and auto.
    #[arg(long, value_delimiter = ',', default_values_t = every_model())]
    pub models: Vec<String>,
    /// The agent's storage.retention: history the models may use at each origin.
    #[arg(long, default_value = "24h", value_parser = crate::config::parse_duration)]
    pub retention: Duration,
    /// Seasonal periods for mstl and seasonal_naive.
    #[arg(long, value_delimiter = ',', default_value = "1h,1d", value_parser = crate::config::parse_duration)]
    pub seasons: Vec<Duration>,
    /// Band quantiles (yhat_lower, yhat_upper).
    #[arg(long, default_value = "0.1,0.9", value_parser = super::args::parse_quantiles)]
    pub quantiles: (f64, f64),
    /// How often mstl refits (as in the agent).
    #[arg(long = "refit-every", default_value = "15m", value_parser = crate::config::parse_duration)]
    pub refit_every: Duration,
    /// Share of each series (at its end) that is the test split.
    #[arg(long = "test-fraction", default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Evaluate every N steps of the test split.
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// Steps the newest data is behind each forecast, as in the agent, whose newest bucket
    /// is usually the one before its step's (Prometheus writes a few seconds late): the
    /// forecast at origin `o` sees the buckets up to `o` and counts its horizons from
    /// `o + lag`. 0 (the default): the horizons count from the newest bucket.
    #[arg(long, default_value_t = 0)]
    pub lag: usize,
    /// ONNX model for lstm and auto.
    #[arg(long = "model", value_name = "MODEL_FILE")]
    pub lstm: Option<PathBuf>,
    /// Season (in steps) of the MASE scale; default one day of steps.
    #[arg(skip)]
    pub mase_season: Option<usize>,
    /// The agent's `forecast[].accuracy_window`: the time constant of the rolling accuracy
    /// written to accuracy.csv (what the agent would export as `N:forecast_mase`).
    #[arg(long = "accuracy-window", default_value = "1d", value_parser = crate::config::parse_duration)]
    pub accuracy_window: Duration,
    /// Serves the models' own bands (the agent's `forecast[].calibrate_band: false`);
    /// by default bands are calibrated on each series' scored forecasts, as the agent does.
    #[arg(long = "raw-band")]
    pub raw_band: bool,
}

use std::path::PathBuf;

/// Every listed model's name, then `auto`.
pub fn every_model() -> Vec<String> {
    ModelKind::ALL
        .iter()
        .map(|k| k.as_str())
        .chain(["auto"])
        .map(String::from)
        .collect()
}

impl BacktestOptions {
    pub fn new(step: Duration) -> Self {
        Self {
            step,
            horizons: [5, 15, 30].map(|m| Duration::from_secs(m * 60)).to_vec(),
            models: every_model(),
            retention: Duration::from_secs(24 * 3600),
            seasons: vec![Duration::from_secs(3600), Duration::from_secs(86_400)],
            quantiles: (0.1, 0.9),
            refit_every: Duration::from_secs(15 * 60),
            test_fraction: 0.2,
            stride: 1,
            lag: 0,
            lstm: None,
            mase_season: None,
            accuracy_window: Duration::from_secs(86_400),
            raw_band: false,
        }
    }

    fn step_ms(&self) -> i64 {
        self.step.as_millis() as i64
    }

    /// The agent configuration the replay runs for one model.
    pub fn agent_config(&self, model: &str) -> Result<Config> {
        let list = |d: &[Duration]| d.iter().map(|d| format_duration(*d)).collect::<Vec<_>>();
        let inference = match &self.lstm {
            Some(p) => format!("inference: {{ model: '{}' }}\n", p.display()),
            None => "inference: { model: builtin }\n".to_string(),
        };
        let yaml = format!(
            "storage: {{ step: {step}, retention: {retention}, idle_timeout: 3650d }}\n\
             forecast:\n  - selector: '{{__name__=\"{name}\"}}'\n    horizons: [{h}]\n    model: {model}\n    \
             quantiles: [{lo}, {hi}]\n    seasons: [{seasons}]\n    refit_every: {refit}\n    accuracy_window: {accuracy}\n    calibrate_band: {calibrate}\n    anomaly: {{ enabled: false }}\n\
             limits: {{ max_series: 1000000, max_future: 3650d }}\n{inference}",
            step = format_duration(self.step),
            retention = format_duration(self.retention),
            h = list(&self.horizons).join(", "),
            lo = self.quantiles.0,
            hi = self.quantiles.1,
            seasons = list(&self.seasons).join(", "),
            refit = format_duration(self.refit_every.max(self.step)),
            accuracy = format_duration(self.accuracy_window),
            calibrate = !self.raw_band,
            name = REPLAY_NAME,
        );
        Config::from_yaml(&yaml, "backtest", None).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// One evaluated forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastRow {
    pub model: String,
    /// Index into [`BacktestOptions::horizons`].
    pub horizon: usize,
    pub series: usize,
    /// Bucket of the origin and of the target.
    pub origin: i64,
    pub target: i64,
    pub yhat: f64,
    pub lower: f64,
    pub upper: f64,
    pub actual: f64,
    /// The model that produced it (what `auto` chose).
    pub used: Option<ModelKind>,
}

/// Accuracy of one model at one horizon.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub n: usize,
    pub mae: f64,
    pub rmse: f64,
    pub smape: f64,
    pub mase: f64,
    pub r2: f64,
    pub coverage: f64,
    /// Mean band width over the MASE scale (unitless, comparable across series).
    pub width: f64,
    /// Mean of `UNDER_WEIGHT·max(y − ŷ, 0) + max(ŷ − y, 0)`.
    pub under_weighted: f64,
}

/// The rolling accuracy the agent would export for one series at one horizon
/// (`N:forecast_mase`, `N:forecast_coverage`), as the replay ended: over the forecasts made
/// from the first origin on.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyRow {
    pub model: String,
    pub series: usize,
    /// Index into [`BacktestOptions::horizons`].
    pub horizon: usize,
    /// Bucket of the last origin.
    pub origin: i64,
    pub accuracy: ForecastAccuracy,
}

/// One series' characteristics, for grouping results.
#[derive(Debug, Clone, PartialEq)]
pub struct Traits {
    /// 1 − var(remainder) / var(series − trend) for a daily profile; 0 when no full day.
    pub seasonality: f64,
    /// Mean |first difference| over the mean |value|.
    pub volatility: f64,
    /// |last-quarter mean − first-quarter mean| over the series' mean |value|.
    pub trend: f64,
}

#[derive(Debug, Clone)]
pub struct SeriesInfo {
    pub name: String,
    pub calendar: bool,
    pub first_bucket: i64,
    pub test_start: i64,
    /// MASE denominator.
    pub scale: f64,
    pub traits: Traits,
    /// Bucketed values (for plots).
    pub values: Vec<f32>,
}

pub struct Backtest {
    pub options: BacktestOptions,
    pub series: Vec<SeriesInfo>,
    pub rows: Vec<ForecastRow>,
    /// The rolling accuracy at the last origin, per model, series and horizon.
    pub accuracy: Vec<AccuracyRow>,
    /// Series left out, with the reason (too short for the split and horizons).
    pub skipped: Vec<String>,
}

/// Replays every trace through every model.
pub fn run(
    traces: &[Trace],
    opts: &BacktestOptions,
    progress: &dyn Fn(&str, usize, usize),
) -> Result<Backtest> {
    if traces.is_empty() {
        bail!("no series to backtest");
    }
    let step_ms = opts.step_ms();
    let source = match &opts.lstm {
        Some(p) => ModelSource::File(p.clone()),
        None => ModelSource::Builtin,
    };
    let lstm = load_lstm(&source, &BackendChoice::Cpu)?;
    let day = (86_400_000 / step_ms).max(1) as usize;
    let mase_season = opts.mase_season.unwrap_or(day);
    let max_h = opts
        .horizons
        .iter()
        .map(|h| (h.as_millis() as i64 / step_ms) as usize)
        .max()
        .unwrap_or(1);
    let mut series = Vec::new();
    let mut skipped = Vec::new();
    for t in traces {
        let (b0, values) = t.bucketed(step_ms);
        let n = values.len();
        let split = ((n as f64) * (1.0 - opts.test_fraction)).floor() as usize;
        if split < 2 || n - split <= max_h {
            skipped.push(format!(
                "{}: {n} buckets of {} are too few for a test split of {} with horizons up to {max_h} steps",
                t.name,
                format_duration(opts.step),
                opts.test_fraction
            ));
            continue;
        }
        let train = &values[..split];
        let Some(scale) = mase_scale(train, mase_season).or_else(|| mase_scale(train, 1)) else {
            skipped.push(format!(
                "{}: no two different observed points in the training part (no MASE scale)",
                t.name
            ));
            continue;
        };
        series.push(SeriesInfo {
            name: t.name.clone(),
            calendar: t.calendar,
            first_bucket: b0,
            test_start: b0 + split as i64,
            scale,
            traits: traits(train, day),
            values,
        });
    }

    if series.is_empty() {
        bail!(
            "no series long enough to backtest:\n  {}",
            skipped.join("\n  ")
        );
    }
    let mut rows = Vec::new();
    let mut accuracy = Vec::new();
    for model in &opts.models {
        let config = Arc::new(opts.agent_config(model)?);
        for (si, s) in series.iter().enumerate() {
            progress(model, si, series.len());
            let last = replay(&config, lstm.clone(), s, si, model, opts, &mut rows)?;
            if let Some(f) = last {
                accuracy.extend(f.accuracy.iter().enumerate().filter_map(|(h, a)| {
                    Some(AccuracyRow {
                        model: model.clone(),
                        series: si,
                        horizon: h,
                        origin: f.base,
                        accuracy: (*a)?,
                    })
                }));
            }
        }
    }
    Ok(Backtest {
        options: opts.clone(),
        series,
        rows,
        accuracy,
        skipped,
    })
}

fn replay(
    config: &Arc<Config>,
    lstm: Option<Arc<LstmModel>>,
    s: &SeriesInfo,
    si: usize,
    model: &str,
    opts: &BacktestOptions,
    rows: &mut Vec<ForecastRow>,
) -> Result<Option<SeriesForecast>> {
    let step_ms = opts.step_ms();
    let mut replay = Replay::new(config, lstm, s.calendar, s.first_bucket, &s.values)?;
    let horizon_steps: Vec<i64> = opts
        .horizons
        .iter()
        .map(|h| h.as_millis() as i64 / step_ms)
        .collect();
    let min_h = *horizon_steps.iter().min().unwrap_or(&1);
    let end = s.first_bucket + s.values.len() as i64; // exclusive
    let lag = opts.lag as i64;
    let first_origin = s.test_start - min_h - lag;
    let mut origin = first_origin;
    let mut last = None;
    // Up to the last bucket: the origins whose horizons end past the data forecast nothing
    // scored here, but they observe the last targets for the rolling accuracy.
    while origin < end {
        if let Some(f) = replay.forecast_with(origin + lag, origin) {
            if f.state == SeriesState::Ready {
                for (hi, (p, &h)) in f.points.iter().zip(&horizon_steps).enumerate() {
                    let target = f.base + h;
                    if target < s.test_start || target >= end {
                        continue;
                    }
                    let actual = s.values[(target - s.first_bucket) as usize] as f64;
                    if !actual.is_finite() {
                        continue;
                    }
                    rows.push(ForecastRow {
                        model: model.to_string(),
                        horizon: hi,
                        series: si,
                        origin,
                        target,
                        yhat: p.yhat,
                        lower: p.lower,
                        upper: p.upper,
                        actual,
                        used: f.model,
                    });
                }
            }
            last = Some(f);
        }
        origin += opts.stride.max(1) as i64;
    }
    Ok(last)
}

/// Mean |y\[t\] − y\[t − m\]| over the observed pairs, if any and positive.
pub fn mase_scale(values: &[f32], m: usize) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for t in m..values.len() {
        let (a, b) = (values[t], values[t - m]);
        if a.is_finite() && b.is_finite() {
            sum += (a - b).abs() as f64;
            n += 1;
        }
    }
    (n > 0 && sum > 0.0).then(|| sum / n as f64)
}

fn traits(values: &[f32], day: usize) -> Traits {
    let obs: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| *v as f64)
        .collect();
    let mean_abs = obs.iter().map(|v| v.abs()).sum::<f64>() / obs.len().max(1) as f64;
    let mean_abs = mean_abs.max(1e-12);
    let diffs: Vec<f64> = values
        .windows(2)
        .filter(|w| w[0].is_finite() && w[1].is_finite())
        .map(|w| (w[1] - w[0]).abs() as f64)
        .collect();
    let volatility = diffs.iter().sum::<f64>() / diffs.len().max(1) as f64 / mean_abs;
    let q = obs.len() / 4;
    let trend = if q > 0 {
        let a = obs[..q].iter().sum::<f64>() / q as f64;
        let b = obs[obs.len() - q..].iter().sum::<f64>() / q as f64;
        (b - a).abs() / mean_abs
    } else {
        0.0
    };
    // Seasonality strength: share of the (daily-mean-removed) variance explained by the mean
    // profile over the time of day.
    let seasonality = if day >= 2 && values.len() >= 2 * day {
        let days = values.len() / day;
        let mut profile = vec![(0.0, 0usize); day];
        let mut detr = Vec::new();
        for d in 0..days {
            let chunk = &values[d * day..(d + 1) * day];
            let o: Vec<f64> = chunk
                .iter()
                .filter(|v| v.is_finite())
                .map(|v| *v as f64)
                .collect();
            if o.is_empty() {
                continue;
            }
            let m = o.iter().sum::<f64>() / o.len() as f64;
            for (i, v) in chunk.iter().enumerate() {
                if v.is_finite() {
                    let x = *v as f64 - m;
                    profile[i].0 += x;
                    profile[i].1 += 1;
                    detr.push((i, x));
                }
            }
        }
        let var = |xs: &mut dyn Iterator<Item = f64>| {
            let v: Vec<f64> = xs.collect();
            let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
            v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64
        };
        let total = var(&mut detr.iter().map(|(_, x)| *x));
        let rem = var(&mut detr
            .iter()
            .map(|(i, x)| x - profile[*i].0 / profile[*i].1.max(1) as f64));
        if total > 0.0 {
            (1.0 - rem / total).clamp(0.0, 1.0)
        } else {
            0.0
        }
    } else {
        0.0
    };
    Traits {
        seasonality,
        volatility,
        trend,
    }
}

/// Metrics of `rows` (one model, one horizon, any series).
pub fn metrics(rows: &[&ForecastRow], series: &[SeriesInfo]) -> Metrics {
    if rows.is_empty() {
        return Metrics::default();
    }
    let n = rows.len() as f64;
    let (mut ae, mut se, mut uw) = (0.0, 0.0, 0.0);
    for r in rows {
        let e = r.actual - r.yhat;
        ae += e.abs();
        se += e * e;
        uw += if e > 0.0 { UNDER_WEIGHT * e } else { -e };
    }
    // Per-series means for the scale-free figures.
    let mut by: BTreeMap<usize, Vec<&ForecastRow>> = BTreeMap::new();
    for r in rows {
        by.entry(r.series).or_default().push(r);
    }
    let (mut mase, mut smape, mut r2, mut cov, mut width) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (si, rs) in &by {
        let k = rs.len() as f64;
        let scale = series[*si].scale;
        let mae_s = rs.iter().map(|r| (r.actual - r.yhat).abs()).sum::<f64>() / k;
        mase += mae_s / scale;
        smape += rs
            .iter()
            .map(|r| {
                let d = r.actual.abs() + r.yhat.abs();
                if d > 0.0 {
                    2.0 * (r.actual - r.yhat).abs() / d
                } else {
                    0.0
                }
            })
            .sum::<f64>()
            / k
            * 100.0;
        let mean = rs.iter().map(|r| r.actual).sum::<f64>() / k;
        let ss_tot = rs.iter().map(|r| (r.actual - mean).powi(2)).sum::<f64>();
        let ss_res = rs.iter().map(|r| (r.actual - r.yhat).powi(2)).sum::<f64>();
        r2 += if ss_tot > 0.0 {
            1.0 - ss_res / ss_tot
        } else {
            0.0
        };
        cov += rs
            .iter()
            .filter(|r| r.lower <= r.actual && r.actual <= r.upper)
            .count() as f64
            / k;
        width += rs.iter().map(|r| r.upper - r.lower).sum::<f64>() / k / scale;
    }
    let m = by.len() as f64;
    Metrics {
        n: rows.len(),
        mae: ae / n,
        rmse: (se / n).sqrt(),
        smape: smape / m,
        mase: mase / m,
        r2: r2 / m,
        coverage: cov / m,
        width: width / m,
        under_weighted: uw / n,
    }
}

impl Backtest {
    /// Metrics per (model, horizon index) over all series, in option order.
    pub fn table(&self) -> Vec<(String, usize, Metrics)> {
        let mut out = Vec::new();
        for m in &self.options.models {
            for h in 0..self.options.horizons.len() {
                let rows: Vec<&ForecastRow> = self
                    .rows
                    .iter()
                    .filter(|r| &r.model == m && r.horizon == h)
                    .collect();
                out.push((m.clone(), h, metrics(&rows, &self.series)));
            }
        }
        out
    }

    /// Metrics per (model, horizon, series).
    pub fn per_series(&self) -> Vec<(String, usize, usize, Metrics)> {
        let mut groups: BTreeMap<(String, usize, usize), Vec<&ForecastRow>> = BTreeMap::new();
        for r in &self.rows {
            groups
                .entry((r.model.clone(), r.horizon, r.series))
                .or_default()
                .push(r);
        }
        groups
            .into_iter()
            .map(|((m, h, s), rows)| (m, h, s, metrics(&rows, &self.series)))
            .collect()
    }

    /// Metrics per (trait, bucket, model, horizon), each trait split at its terciles over the
    /// series (`low`, `mid`, `high`). Empty with fewer than 3 series.
    pub fn per_bucket(&self) -> Vec<(&'static str, &'static str, String, usize, Metrics)> {
        let n = self.series.len();
        if n < 3 {
            return Vec::new();
        }
        let mut out = Vec::new();
        type Get = fn(&Traits) -> f64;
        let traits: [(&str, Get); 3] = [
            ("seasonality", |t| t.seasonality),
            ("volatility", |t| t.volatility),
            ("trend", |t| t.trend),
        ];
        for (tname, get) in traits {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|a, b| {
                get(&self.series[*a].traits).total_cmp(&get(&self.series[*b].traits))
            });
            let mut bucket_of = vec![""; n];
            for (rank, &si) in order.iter().enumerate() {
                bucket_of[si] = ["low", "mid", "high"][(rank * 3 / n).min(2)];
            }
            for b in ["low", "mid", "high"] {
                for m in &self.options.models {
                    for h in 0..self.options.horizons.len() {
                        let rows: Vec<&ForecastRow> = self
                            .rows
                            .iter()
                            .filter(|r| &r.model == m && r.horizon == h && bucket_of[r.series] == b)
                            .collect();
                        out.push((tname, b, m.clone(), h, metrics(&rows, &self.series)));
                    }
                }
            }
        }
        out
    }

    /// A time as the input wrote it: unix seconds for calendar traces, else the index.
    pub fn time_label(&self, series: usize, bucket: i64) -> String {
        let step_ms = self.options.step_ms();
        let ms = bucket * step_ms;
        if self.series[series].calendar {
            if ms % 1000 == 0 {
                (ms / 1000).to_string()
            } else {
                format!("{:.3}", ms as f64 / 1000.0)
            }
        } else {
            (ms / step_ms).to_string()
        }
    }

    pub fn horizon_label(&self, h: usize) -> String {
        format_duration(self.options.horizons[h])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nasa() -> Trace {
        // four days of July: enough for a test split, quick in debug builds
        crate::offline::data::nasa_days(4)
    }

    #[test]
    fn replay_uses_only_the_past_and_scores_the_test_split() {
        let t = nasa();
        let mut opts = BacktestOptions::new(Duration::from_secs(60));
        opts.models = vec!["naive".into(), "seasonal_naive".into()];
        opts.stride = 7;
        let bt = run(std::slice::from_ref(&t), &opts, &|_, _, _| {}).unwrap();
        let s = &bt.series[0];
        assert_eq!(s.test_start, (4 * 1440) as i64 * 8 / 10);
        for r in &bt.rows {
            assert!(r.target >= s.test_start && r.target < 4 * 1440);
            assert_eq!(r.target - r.origin, [5, 15, 30][r.horizon]);
            assert_eq!(r.actual, t.values[r.target as usize]);
            assert!(r.lower <= r.yhat && r.yhat <= r.upper);
        }
        // Naive repeats the last value seen at the origin: the forecast for any horizon from
        // the same origin has the same point forecast only if it used no future value.
        let naive: Vec<_> = bt.rows.iter().filter(|r| r.model == "naive").collect();
        assert!(!naive.is_empty());
        // seasonal naive at 5m with a 1h season repeats the value 55 minutes before the origin
        let sn = bt
            .rows
            .iter()
            .find(|r| r.model == "seasonal_naive" && r.horizon == 0)
            .unwrap();
        assert_eq!(sn.used, Some(ModelKind::SeasonalNaive));
        let table = bt.table();
        assert_eq!(table.len(), 2 * 3);
        for (_, _, m) in &table {
            assert!(m.n > 0 && m.mae > 0.0 && m.mase > 0.0 && m.rmse >= m.mae);
            assert!((0.0..=1.0).contains(&m.coverage));
        }
    }

    #[test]
    fn metrics_by_hand() {
        let info = SeriesInfo {
            name: "x".into(),
            calendar: false,
            first_bucket: 0,
            test_start: 0,
            scale: 2.0,
            traits: Traits {
                seasonality: 0.0,
                volatility: 0.0,
                trend: 0.0,
            },
            values: vec![],
        };
        let row = |yhat: f64, actual: f64| ForecastRow {
            model: "m".into(),
            horizon: 0,
            series: 0,
            origin: 0,
            target: 1,
            yhat,
            lower: yhat - 1.0,
            upper: yhat + 1.0,
            actual,
            used: None,
        };
        let rows = [row(10.0, 12.0), row(10.0, 9.0)];
        let refs: Vec<&ForecastRow> = rows.iter().collect();
        let m = metrics(&refs, &[info]);
        assert_eq!(m.n, 2);
        assert!((m.mae - 1.5).abs() < 1e-12);
        assert!((m.rmse - (2.5f64).sqrt()).abs() < 1e-12);
        assert!((m.mase - 0.75).abs() < 1e-12);
        assert!((m.coverage - 0.5).abs() < 1e-12);
        assert!((m.width - 1.0).abs() < 1e-12);
        assert!((m.under_weighted - (3.0 * 2.0 + 1.0) / 2.0).abs() < 1e-12);
    }
}
