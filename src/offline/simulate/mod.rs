//! `promcast simulate`: replays a demand trace against autoscaling policies.
//!
//! Time runs in ticks of the HPA sync period (15 s). Demand is the trace, constant within a
//! bucket; a gap is missing data: not scored, and every policy sees it as missing. At the
//! start of each bucket:
//! - the observed load (what a metric pipeline shows) is the last *complete* bucket;
//! - the forecast is what the agent would have at that moment: its own forecaster
//!   ([`super::replay::Replay`], model `auto` unless told) on the data up to the last
//!   complete bucket, its ring padded to the current bucket. The forecasts of a trace are
//!   made once ([`Outlooks`]) and shared by every policy and every point of a sweep;
//! - predictive policies decide through the agent's own [`Scaler`] (the code the `scaling:`
//!   targets run) and then, like every policy but `static`, go through the Kubernetes
//!   [`Hpa`] controller each tick, as KEDA and the HPA would apply them in a cluster;
//! - `reactive` is the HPA alone on the observed load per replica, with its default 5-minute
//!   scale-down window.
//!
//! SLO model: every policy sizes a replica for `capacity × target_utilization` (the HPA's
//! target value); violations and unserved demand count against *full* capacity, since that
//! is when requests fail. A replica asked for becomes ready `startup` later; removed replicas
//! go at once (those still starting first).
//!
//! Scored per policy over the evaluated part (by default the last 20% of the trace, which the
//! built-in model never trained on): violation minutes (demand above ready capacity), unserved
//! demand (load × minutes above ready capacity), replica-minutes (every replica asked for,
//! starting or ready: what is paid for), over-provisioning (idle ready capacity, load ×
//! minutes) and scaling events.

use std::time::Duration;

use anyhow::{bail, Result};

use super::replay::Replay;
use crate::config::{format_duration, Config, ModelSource};
use crate::forecast::load::load_lstm;
use crate::forecast::neural::BackendChoice;
use crate::scale::{Hpa, Outlook, Policy, PolicyParams, ScaleIn, Scaler, Sizing, HPA_SYNC};
use crate::snapshot::{Point, SeriesState};
use crate::stats::normal_quantile;

/// The band quantiles forecasts are made at; a policy asks any level of the band through
/// [`crate::scale::band_quantile`].
pub const BAND: (f64, f64) = (0.1, 0.9);

/// What `promcast simulate` replays; its doc comments are the flags' help.
#[derive(Debug, Clone, clap::Args)]
pub struct SimOptions {
    /// The trace's step (the CLI sets it from the trace).
    #[arg(skip = Duration::ZERO)]
    pub step: Duration,
    /// Load one replica serves (the trace's units).
    #[arg(long)]
    pub capacity: f64,
    /// The share of --capacity every policy sizes a replica for (the HPA's target value);
    /// violations and unserved demand count against full capacity.
    #[arg(long = "target-utilization", default_value_t = 0.7)]
    pub target_utilization: f64,
    /// Pod start-up: a replica is ready this long after it is asked for.
    #[arg(long, default_value = "2m", value_parser = crate::config::parse_duration)]
    pub startup: Duration,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = every_policy(),
        value_parser = super::args::parse_policy
    )]
    pub policies: Vec<Policy>,
    /// `static`'s replicas (default: enough for the mean demand).
    #[arg(long = "static-replicas")]
    pub static_replicas: Option<u32>,
    #[arg(long = "min-replicas", default_value_t = 1)]
    pub min_replicas: u32,
    #[arg(long = "max-replicas", default_value_t = 1000)]
    pub max_replicas: u32,
    /// `buffered`'s margin.
    #[arg(long, default_value_t = 0.2)]
    pub margin: f64,
    /// `quantile`'s level.
    #[arg(long, default_value_t = 0.9)]
    pub quantile: f64,
    /// `incremental`'s largest change per decision.
    #[arg(long = "max-step", default_value_t = 2)]
    pub max_step: u32,
    #[arg(long = "scale-down-stabilization", default_value = "2m", value_parser = crate::config::parse_duration)]
    pub scale_down_stabilization: Duration,
    /// What predictive policies size for: up_to_lead (the band's maximum until new replicas
    /// are ready), at_lead (the band when they are), peak (the maximum over --peak-window
    /// after that).
    #[arg(long, default_value = "peak", value_parser = super::args::parse_sizing)]
    pub sizing: Sizing,
    #[arg(long = "peak-window", default_value = "1m", value_parser = crate::config::parse_duration)]
    pub peak_window: Duration,
    /// How predictive policies scale in: window (to the highest recommendation of
    /// --scale-down-stabilization) or forecast (as far as the band over the start-up plus
    /// that window allows).
    #[arg(long = "scale-in", default_value = "window", value_parser = super::args::parse_scale_in)]
    pub scale_in: ScaleIn,
    /// desired = max(reactive, predictive); `--reactive-floor false` lets the forecast decide.
    #[arg(long = "reactive-floor", default_value_t = true, action = clap::ArgAction::Set)]
    pub reactive_floor: bool,
    /// Forecast model of the predictive policies. `oracle:N` is a bound, not a model: the
    /// centred N-bucket mean of the actual trace, future included.
    #[arg(long, default_value = "auto")]
    pub model: String,
    /// ONNX model file for lstm/auto (default: the built-in one).
    #[arg(long = "model-file", value_name = "MODEL_FILE")]
    pub lstm: Option<std::path::PathBuf>,
    /// The forecaster's history (the agent's storage.retention).
    #[arg(long, default_value = "24h", value_parser = crate::config::parse_duration)]
    pub retention: Duration,
    /// Seasonal periods of the forecast models (multiples of the step, two steps or more).
    #[arg(long, value_delimiter = ',', default_value = "1h,1d", value_parser = crate::config::parse_duration)]
    pub seasons: Vec<Duration>,
    /// Share of the trace (at its end) that is scored.
    #[arg(long = "eval-fraction", default_value_t = 0.2)]
    pub eval_fraction: f64,
}

/// `--policies`' default: every policy in the list (`src/policy/mod.rs`), in its order.
fn every_policy() -> &'static str {
    static ALL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ALL.get_or_init(|| Policy::ALL.join(","))
}

impl SimOptions {
    pub fn new(step: Duration) -> Self {
        Self {
            step,
            capacity: 100.0,
            target_utilization: 0.7,
            startup: Duration::from_secs(120),
            policies: Policy::all(),
            static_replicas: None,
            min_replicas: 1,
            max_replicas: 1000,
            margin: 0.2,
            quantile: 0.9,
            max_step: 2,
            scale_down_stabilization: Duration::from_secs(120),
            sizing: Sizing::Peak,
            peak_window: Duration::from_secs(60),
            scale_in: ScaleIn::Window,
            reactive_floor: true,
            model: "auto".into(),
            lstm: None,
            retention: Duration::from_secs(86_400),
            seasons: vec![Duration::from_secs(3600), Duration::from_secs(86_400)],
            eval_fraction: 0.2,
        }
    }

    /// The parameters of `policy` with these options: its own from their flags (`--margin`,
    /// `--quantile`, `--max-step`, `static`'s count), the shared ones.
    pub fn params(&self, policy: Policy, static_replicas: u32) -> PolicyParams {
        let settings = |key: &str| match key {
            "margin" => Some(self.margin),
            "quantile" => Some(self.quantile),
            "max_step" => Some(self.max_step as f64),
            "static_replicas" => Some(static_replicas as f64),
            _ => None,
        };
        PolicyParams {
            policy: policy.configured(&settings),
            capacity: self.capacity,
            target_utilization: self.target_utilization,
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            sizing: self.sizing,
            peak_window: self.peak_window,
            scale_in: self.scale_in,
            stabilization: self.scale_down_stabilization,
            reactive_floor: self.reactive_floor,
        }
    }

    /// Pod start-up in steps: replicas asked for at the start of bucket `b` serve from
    /// bucket `b + lead` on.
    pub fn lead(&self) -> f64 {
        self.startup.as_secs_f64() / self.step.as_secs_f64()
    }
}

/// Totals of one policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub policy: String,
    pub violation_minutes: f64,
    pub unserved: f64,
    pub replica_minutes: f64,
    pub overprovision: f64,
    pub scaling_events: u64,
}

/// Per bucket of the evaluated part, for the timeline plot.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub first_bucket: i64,
    pub demand: Vec<f64>,
    /// Per policy: ready capacity at the end of each bucket.
    pub capacity: Vec<Vec<f64>>,
}

pub struct Simulation {
    pub options: SimOptions,
    pub outcomes: Vec<Outcome>,
    pub timeline: Timeline,
    pub static_replicas: u32,
    /// The forecasts the predictive policies used.
    pub outlooks: Outlooks,
}

/// The forecast at every decision of the evaluated part, made once per trace.
#[derive(Debug, Clone)]
pub struct Outlooks {
    /// Horizons in steps after the decision's bucket.
    pub steps: Vec<usize>,
    /// Per evaluated bucket: the band at each horizon, `None` without a forecast.
    pub bands: Vec<Option<Vec<Point>>>,
    pub quantiles: (f64, f64),
}

impl Outlooks {
    pub fn ready(&self) -> usize {
        self.bands.iter().filter(|b| b.is_some()).count()
    }

    /// The forecasts of evaluated buckets `from..to`.
    pub fn slice(&self, from: usize, to: usize) -> Outlooks {
        Outlooks {
            steps: self.steps.clone(),
            bands: self.bands[from..to].to_vec(),
            quantiles: self.quantiles,
        }
    }

    /// The outlook of evaluated bucket `i`.
    pub fn get(&self, i: usize) -> Option<Outlook<'_>> {
        self.bands[i].as_ref().map(|points| Outlook {
            steps: &self.steps,
            points,
            quantiles: self.quantiles,
        })
    }
}

/// Most ticks per bucket: for steps over an hour (daily traces) the HPA's 15-second sync
/// period would only repeat itself within a bucket whose demand is constant, so the ticks are
/// spread out (1 d: a tick every 6 minutes).
const MAX_TICKS_PER_BUCKET: u128 = 240;

/// Ticks per bucket (`step / 15 s`, at least 1, at most [`MAX_TICKS_PER_BUCKET`]).
fn ticks_per_bucket(step: Duration) -> usize {
    (step.as_millis() / HPA_SYNC.as_millis()).clamp(1, MAX_TICKS_PER_BUCKET) as usize
}

/// The horizons (steps) the forecasts are made at: enough to read the band out to `need`
/// steps; the loaded model's horizons when it has one (so the LSTM can serve them), else
/// every step.
fn horizon_steps(opts: &SimOptions, need: usize) -> Result<Vec<usize>> {
    let source = match &opts.lstm {
        Some(p) => ModelSource::File(p.clone()),
        None => ModelSource::Builtin,
    };
    let model_steps = match load_lstm(&source, &BackendChoice::Cpu)? {
        Some(m) if m.meta().steps.contains(&opts.step) => {
            let step_ms = opts.step.as_millis();
            m.meta()
                .horizons
                .iter()
                .filter(|h| h.as_millis() % step_ms == 0)
                .map(|h| (h.as_millis() / step_ms) as usize)
                .collect()
        }
        _ => Vec::new(),
    };
    let mut steps: Vec<usize> = if model_steps.is_empty() {
        (1..=need).collect()
    } else {
        let cut = model_steps.iter().position(|&s| s >= need);
        model_steps[..cut.map_or(model_steps.len(), |c| c + 1)].to_vec()
    };
    steps.dedup();
    Ok(steps)
}

/// The forecasts for every decision of the evaluated part: at the start of bucket `b`, from
/// the data up to bucket `b − 1`, for `need` steps from `b` on.
pub fn outlooks(
    opts: &SimOptions,
    calendar: bool,
    first_bucket: i64,
    values: &[f32],
    eval_start: usize,
    need: usize,
) -> Result<Outlooks> {
    if let Some(w) = opts.model.strip_prefix("oracle:") {
        let w: usize =
            w.parse().ok().filter(|w| *w >= 1).ok_or_else(|| {
                anyhow::anyhow!("--model oracle:N needs a window N >= 1 (buckets)")
            })?;
        return Ok(oracle_outlooks(values, eval_start, need, w));
    }
    let steps = horizon_steps(opts, need)?;
    let horizons: Vec<String> = steps
        .iter()
        .map(|k| format_duration(opts.step * *k as u32))
        .collect();
    let inference = match &opts.lstm {
        Some(p) => format!("inference: {{ model: '{}' }}\n", p.display()),
        None => "inference: { model: builtin }\n".into(),
    };
    let yaml = format!(
        "storage: {{ step: {}, retention: {}, idle_timeout: 3650d }}\n\
         forecast:\n  - selector: '{{__name__=\"{}\"}}'\n    horizons: [{}]\n    model: {}\n    \
         quantiles: [{}, {}]\n    seasons: [{}]\n    anomaly: {{ enabled: false }}\n\
         limits: {{ max_series: 10, max_future: 3650d }}\n{inference}",
        format_duration(opts.step),
        format_duration(opts.retention),
        super::replay::REPLAY_NAME,
        horizons.join(", "),
        opts.model,
        BAND.0,
        BAND.1,
        opts.seasons
            .iter()
            .map(|d| format_duration(*d))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let config = Config::from_yaml(&yaml, "simulate", None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let source = match &opts.lstm {
        Some(p) => ModelSource::File(p.clone()),
        None => ModelSource::Builtin,
    };
    let lstm = load_lstm(&source, &BackendChoice::Cpu)?;
    let mut replay = Replay::new(&config, lstm, calendar, first_bucket, values)?;
    let mut bands = Vec::with_capacity(values.len() - eval_start);
    for b in eval_start..values.len() {
        let now = first_bucket + b as i64;
        let f = replay.forecast_with(now, now - 1).filter(|f| {
            f.state == SeriesState::Ready
                && f.points.len() == steps.len()
                && f.points.iter().all(Point::is_finite)
        });
        // The policies read the model's band, as the agent's do.
        bands.push(f.map(|f| f.model_bands().collect()));
    }
    Ok(Outlooks {
        steps,
        bands,
        quantiles: BAND,
    })
}

/// A bound, not a model: what a forecaster that knew the trace's true level could do. The
/// "forecast" of bucket `t` is the centred mean of the actual values over `w` buckets around
/// `t` (future included), with a band `± z(0.9)·√(D·mean)` where `D` is the trace's
/// dispersion index around that mean over the warm-up part (1 for Poisson counts). What is
/// left for a policy to miss is the bucket-to-bucket noise around the level.
fn oracle_outlooks(values: &[f32], eval_start: usize, need: usize, w: usize) -> Outlooks {
    let n = values.len();
    let level = |t: usize| -> Option<f64> {
        let (a, b) = (t.saturating_sub(w / 2), (t + w - w / 2).min(n));
        let (sum, k) = values[a..b]
            .iter()
            .filter(|v| v.is_finite())
            .fold((0.0, 0usize), |(s, k), v| (s + *v as f64, k + 1));
        (k > 0).then(|| sum / k as f64)
    };
    let (mut r2, mut m) = (0.0, 0.0);
    for (t, v) in values[..eval_start].iter().enumerate() {
        if let (true, Some(l)) = (v.is_finite(), level(t)) {
            r2 += (*v as f64 - l).powi(2);
            m += l.abs();
        }
    }
    let dispersion = if m > 0.0 { r2 / m } else { 1.0 };
    let z = normal_quantile(BAND.1);
    let steps: Vec<usize> = (1..=need).collect();
    let bands = (eval_start..n)
        .map(|b| {
            steps
                .iter()
                .map(|k| {
                    let l = level((b + k).min(n - 1))?;
                    let half = z * (dispersion * l.abs().max(1.0)).sqrt();
                    Some(Point {
                        yhat: l,
                        lower: l - half,
                        upper: l + half,
                    })
                })
                .collect::<Option<Vec<Point>>>()
        })
        .collect();
    Outlooks {
        steps,
        bands,
        quantiles: BAND,
    }
}

/// A trace and its evaluated part, ready to run policies on.
pub struct Run<'a> {
    pub values: &'a [f32],
    pub first_bucket: i64,
    /// Index of the first evaluated bucket.
    pub eval_start: usize,
    pub step: Duration,
    pub startup: Duration,
    /// Buckets the agent's ring holds (`retention / step`).
    pub ring: usize,
}

impl Run<'_> {
    /// The trace with `opts`' split; both parts need at least two buckets.
    pub fn new<'a>(values: &'a [f32], first_bucket: i64, opts: &SimOptions) -> Result<Run<'a>> {
        let n = values.len();
        let eval_start = ((n as f64) * (1.0 - opts.eval_fraction)).floor() as usize;
        if eval_start < 2 || n - eval_start < 2 {
            bail!("{n} buckets are too few to simulate");
        }
        Ok(Run {
            values,
            first_bucket,
            eval_start,
            step: opts.step,
            startup: opts.startup,
            ring: (opts.retention.as_millis() / opts.step.as_millis().max(1)).max(1) as usize,
        })
    }

    /// The newest observed value before bucket `b` that the agent's ring still holds: what
    /// its scaling targets read as the observed load.
    pub fn newest(&self, b: usize) -> Option<f64> {
        let from = b.saturating_sub(self.ring);
        self.values[from..b]
            .iter()
            .rev()
            .find(|v| v.is_finite())
            .map(|v| *v as f64)
    }

    /// The mean observed demand of the evaluated part.
    pub fn mean_demand(&self) -> f64 {
        let o: Vec<f64> = self.values[self.eval_start..]
            .iter()
            .filter(|v| v.is_finite())
            .map(|v| *v as f64)
            .collect();
        o.iter().sum::<f64>() / o.len().max(1) as f64
    }

    /// One policy over the evaluated part, tick by tick, deciding with the forecasts `fc`;
    /// its totals and its ready capacity at the end of each bucket.
    pub fn policy(&self, params: &PolicyParams, fc: &Outlooks) -> (Outcome, Vec<f64>) {
        let (mut outs, caps) = self.policy_blocks(params, fc, 1);
        (outs.remove(0), caps)
    }

    /// [`Run::policy`] with its totals per block: the evaluated part cut into `blocks`
    /// consecutive parts of (nearly) equal length.
    pub fn policy_blocks(
        &self,
        params: &PolicyParams,
        fc: &Outlooks,
        blocks: usize,
    ) -> (Vec<Outcome>, Vec<f64>) {
        let values = self.values;
        let step_ms = self.step.as_millis() as i64;
        let tpb = ticks_per_bucket(self.step);
        let tick_ms = step_ms / tpb as i64;
        let tick_min = tick_ms as f64 / 60_000.0;
        let startup_ticks = (self.startup.as_millis() as u64).div_ceil(tick_ms as u64) as usize;
        let lead = self.startup.as_secs_f64() / self.step.as_secs_f64();
        let policy = params.policy;
        let sized = params.sized_capacity();
        // The reactive HPA keeps Kubernetes' default 5-minute scale-down window; behind promcast
        // (KEDA with `scaleDown.stabilizationWindowSeconds: 0`, as deploy/ sets it up) the
        // stabilisation is promcast's own, so the HPA adds none.
        let hpa_window = if policy.is_predictive() {
            Duration::ZERO
        } else {
            Duration::from_secs(300)
        };
        let mut hpa = Hpa::new(params.min_replicas, params.max_replicas, hpa_window);
        let mut scaler = Scaler::new(params.clone());
        // start from what the load before the evaluated part needed
        let start_load = values[..self.eval_start]
            .iter()
            .rev()
            .find(|v| v.is_finite());
        let initial = match policy.fixed() {
            Some(n) => n,
            None => start_load.map_or(params.min_replicas, |v| {
                ((*v as f64 / sized).ceil() as u32).clamp(params.min_replicas, params.max_replicas)
            }),
        };
        // pods: ready tick of each; all initial ones ready
        let mut pods: Vec<i64> = vec![i64::MIN; initial as usize];
        let blocks = blocks.max(1);
        let mut outs = vec![
            Outcome {
                policy: policy.to_string(),
                ..Default::default()
            };
            blocks
        ];
        let eval = &values[self.eval_start..];
        let mut caps = Vec::with_capacity(eval.len());
        let mut predictive_wanted: Option<f64> = None;
        for (i, &d) in eval.iter().enumerate() {
            let out = &mut outs[i * blocks / eval.len()];
            let b = self.eval_start + i;
            let observed = values[b - 1];
            let observed = observed.is_finite().then_some(observed as f64);
            let bucket_ms = (self.first_bucket + b as i64) * step_ms;
            if policy.is_predictive() {
                let current = pods.len() as u32;
                let newest = self.newest(b);
                predictive_wanted = scaler
                    .decide(
                        bucket_ms,
                        newest,
                        fc.get(i).as_ref(),
                        lead,
                        step_ms,
                        current,
                    )
                    .map(|d| d.desired as f64);
            }
            for k in 0..tpb {
                let tick = (b * tpb + k) as i64;
                let now_ms = bucket_ms + k as i64 * tick_ms;
                let current = pods.len() as u32;
                let target = match (policy.fixed(), policy.is_predictive()) {
                    (Some(n), _) => n,
                    (None, false) => hpa.reconcile(now_ms, current, observed.map(|o| o / sized)),
                    (None, true) => hpa.reconcile(now_ms, current, predictive_wanted),
                };
                if target != current {
                    out.scaling_events += 1;
                    if target > current {
                        pods.extend(std::iter::repeat_n(
                            tick + startup_ticks as i64,
                            (target - current) as usize,
                        ));
                    } else {
                        // remove the latest-ready (still starting) first
                        pods.sort_unstable();
                        pods.truncate(target as usize);
                    }
                }
                let ready_cap =
                    pods.iter().filter(|r| **r <= tick).count() as f64 * params.capacity;
                out.replica_minutes += pods.len() as f64 * tick_min;
                if d.is_finite() {
                    let d = d as f64;
                    if d > ready_cap {
                        out.violation_minutes += tick_min;
                        out.unserved += (d - ready_cap) * tick_min;
                    } else {
                        out.overprovision += (ready_cap - d) * tick_min;
                    }
                }
                if k + 1 == tpb {
                    caps.push(ready_cap);
                }
            }
        }
        (outs, caps)
    }
}

/// Steps of forecast the options read: the lead time plus the longest window after it.
pub fn steps_needed(opts: &SimOptions, extra: Duration) -> usize {
    let after = opts
        .peak_window
        .max(opts.scale_down_stabilization)
        .max(extra);
    ((opts.startup + after).as_secs_f64() / opts.step.as_secs_f64()).ceil() as usize + 1
}

/// Runs every policy over `values` (bucketed at `opts.step`, NaN = gap).
pub fn simulate(
    values: &[f32],
    first_bucket: i64,
    calendar: bool,
    opts: &SimOptions,
) -> Result<Simulation> {
    if opts.capacity <= 0.0 {
        bail!("--capacity must be positive");
    }
    if !(opts.target_utilization > 0.0 && opts.target_utilization <= 1.0) {
        bail!("--target-utilization must be in (0, 1]");
    }
    let run = Run::new(values, first_bucket, opts)?;
    let sized = opts.capacity * opts.target_utilization;
    let static_replicas = opts
        .static_replicas
        .unwrap_or(((run.mean_demand() / sized).ceil() as u32).max(opts.min_replicas));
    let need = steps_needed(opts, Duration::ZERO);
    let fc = if opts.policies.iter().any(|p| p.is_predictive()) {
        outlooks(opts, calendar, first_bucket, values, run.eval_start, need)?
    } else {
        Outlooks {
            steps: Vec::new(),
            bands: vec![None; values.len() - run.eval_start],
            quantiles: BAND,
        }
    };
    let mut outcomes = Vec::new();
    let mut timeline = Timeline {
        first_bucket: first_bucket + run.eval_start as i64,
        demand: values[run.eval_start..].iter().map(|v| *v as f64).collect(),
        capacity: Vec::new(),
    };
    for &policy in &opts.policies {
        let (out, caps) = run.policy(&opts.params(policy, static_replicas), &fc);
        timeline.capacity.push(caps);
        outcomes.push(out);
    }
    Ok(Simulation {
        options: opts.clone(),
        outcomes,
        timeline,
        static_replicas,
        outlooks: fc,
    })
}

#[cfg(test)]
mod tests;
