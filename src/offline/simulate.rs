//! `promcast simulate`: replays a demand trace against autoscaling policies.
//!
//! Time runs in ticks of the HPA sync period (15 s). Demand is the trace, constant within a
//! bucket; a gap is missing data: not scored, and every policy sees it as missing. At each
//! tick:
//! - the observed load (what a metric pipeline shows) is the last *complete* bucket;
//! - predictive policies decide at the start of each bucket from a forecast made by the
//!   agent's own forecast loop ([`super::replay::Replay`], model `auto` unless told) with the
//!   data up to the last complete bucket, for the time the pods asked for now will be ready
//!   (`startup` ahead); their recommendation goes through the agent's [`Recommender`] (scale
//!   in only after the stabilisation window) and then, like every policy but `static`, through
//!   the Kubernetes [`Hpa`] controller, as KEDA and the HPA would apply it in a cluster;
//! - `reactive` is the HPA alone on the observed load per replica;
//! - a replica asked for becomes ready `startup` later; removed replicas go at once (those
//!   still starting first). Ready capacity = ready replicas × capacity.
//!
//! Scored per policy over the evaluated part (by default the last 20% of the trace, which the
//! built-in model never trained on): violation minutes (demand above ready capacity), unserved
//! demand (load × minutes above capacity), replica-minutes (every replica asked for, starting
//! or ready: what is paid for), over-provisioning (idle ready capacity, load × minutes) and
//! scaling events.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};

use super::replay::Replay;
use crate::config::{format_duration, Config, ModelSource};
use crate::forecast::load::load_lstm;
use crate::forecast::neural::BackendChoice;
use crate::forecast::normal_quantile;
use crate::scale::{recommend, Hpa, Policy, PolicyParams, Recommender, HPA_SYNC};
use crate::snapshot::{Point, SeriesState};

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub step: Duration,
    pub capacity: f64,
    pub startup: Duration,
    pub policies: Vec<Policy>,
    /// `static`'s count; default: enough for the mean demand of the evaluated part.
    pub static_replicas: Option<u32>,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub margin: f64,
    pub quantile: f64,
    pub max_step: u32,
    pub scale_down_stabilization: Duration,
    /// Forecast model of the predictive policies (`auto`, `lstm`, `mstl`, ...).
    pub model: String,
    /// ONNX file for `lstm`/`auto`; `None`: the built-in model.
    pub lstm: Option<std::path::PathBuf>,
    pub retention: Duration,
    /// Share of the trace (at its end) that is scored; the rest warms the models up.
    pub eval_fraction: f64,
}

impl SimOptions {
    pub fn new(step: Duration) -> Self {
        Self {
            step,
            capacity: 100.0,
            startup: Duration::from_secs(120),
            policies: Policy::ALL.to_vec(),
            static_replicas: None,
            min_replicas: 1,
            max_replicas: 1000,
            margin: 0.15,
            quantile: 0.9,
            max_step: 2,
            scale_down_stabilization: Duration::from_secs(300),
            model: "auto".into(),
            lstm: None,
            retention: Duration::from_secs(86_400),
            eval_fraction: 0.2,
        }
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
    /// The forecast horizon (steps from the last complete bucket) the predictive policies
    /// used, and the model's forecast count by state.
    pub horizon_steps: usize,
    pub forecasts_ready: usize,
    pub forecasts_missing: usize,
}

/// Ticks per bucket (`step / 15 s`, at least 1).
fn ticks_per_bucket(step: Duration) -> usize {
    (step.as_millis() / HPA_SYNC.as_millis()).max(1) as usize
}

/// A forecast band and its lower and upper quantile levels.
type Band = (Point, f64, f64);

/// Forecasts for every decision of the evaluated part: for the decision at the start of
/// bucket `b`, the element-wise maximum of the bands at horizons `1..=h` from origin `b − 1`.
fn forecasts(
    opts: &SimOptions,
    calendar: bool,
    first_bucket: i64,
    values: &[f32],
    eval_start: usize,
    h: usize,
) -> Result<(Vec<Option<Band>>, usize, usize)> {
    if let Some(w) = opts.model.strip_prefix("oracle:") {
        let w: usize =
            w.parse().ok().filter(|w| *w >= 1).ok_or_else(|| {
                anyhow::anyhow!("--model oracle:N needs a window N >= 1 (buckets)")
            })?;
        return Ok(oracle_forecasts(opts, values, eval_start, h, w));
    }
    let step = format_duration(opts.step);
    let horizons: Vec<String> = (1..=h)
        .map(|k| format_duration(opts.step * k as u32))
        .collect();
    let (lo, hi) = (1.0 - opts.quantile.max(0.5), opts.quantile.max(0.5));
    let (lo, hi) = if hi >= 0.99 || hi <= 0.5 {
        (0.1, 0.9)
    } else {
        (lo, hi)
    };
    let inference = match &opts.lstm {
        Some(p) => format!("inference: {{ model: '{}' }}\n", p.display()),
        None => "inference: { model: builtin }\n".into(),
    };
    let yaml = format!(
        "storage: {{ step: {step}, retention: {}, idle_timeout: 3650d }}\n\
         forecast:\n  - selector: '{{__name__=\"{}\"}}'\n    horizons: [{}]\n    model: {}\n    \
         quantiles: [{lo}, {hi}]\n    anomaly: {{ enabled: false }}\n\
         limits: {{ max_series: 10, max_future: 3650d }}\n{inference}",
        format_duration(opts.retention),
        super::replay::REPLAY_NAME,
        horizons.join(", "),
        opts.model,
    );
    let config =
        Arc::new(Config::from_yaml(&yaml, "simulate", None).map_err(|e| anyhow::anyhow!("{e}"))?);
    let source = match &opts.lstm {
        Some(p) => ModelSource::File(p.clone()),
        None => ModelSource::Builtin,
    };
    let lstm = load_lstm(&source, &BackendChoice::Tract)?;
    let mut replay = Replay::new(&config, lstm, calendar, first_bucket, values)?;
    let mut out = Vec::with_capacity(values.len() - eval_start);
    let (mut ready, mut missing) = (0, 0);
    for b in eval_start..values.len() {
        let origin = first_bucket + b as i64 - 1;
        let f = replay.forecast_at(origin).filter(|f| {
            f.state == SeriesState::Ready
                && f.points.len() == h
                && f.points.iter().all(Point::is_finite)
        });
        match f {
            Some(f) => {
                ready += 1;
                let mut p = f.points[0];
                for q in &f.points[1..] {
                    p.yhat = p.yhat.max(q.yhat);
                    p.lower = p.lower.max(q.lower);
                    p.upper = p.upper.max(q.upper);
                }
                out.push(Some((p, lo, hi)));
            }
            None => {
                missing += 1;
                out.push(None);
            }
        }
    }
    Ok((out, ready, missing))
}

/// A bound, not a model: what a forecaster that knew the trace's true level could do. The
/// "forecast" of bucket `t` is the centred mean of the actual values over `w` buckets around
/// `t` (future included), with a band `± z(q)·√(D·mean)` where `D` is the trace's dispersion
/// index around that mean over the warm-up part (1 for Poisson counts). What is left for a
/// policy to miss is the bucket-to-bucket noise around the level.
fn oracle_forecasts(
    opts: &SimOptions,
    values: &[f32],
    eval_start: usize,
    h: usize,
    w: usize,
) -> (Vec<Option<Band>>, usize, usize) {
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
    let (lo, hi) = (1.0 - opts.quantile.max(0.5), opts.quantile.max(0.5));
    let (lo, hi) = if hi >= 0.99 || hi <= 0.5 {
        (0.1, 0.9)
    } else {
        (lo, hi)
    };
    let z = normal_quantile(hi);
    let mut out = Vec::with_capacity(n - eval_start);
    let mut ready = 0;
    for b in eval_start..n {
        let mut band: Option<Point> = None;
        for t in b..(b + h).min(n) {
            let Some(l) = level(t) else { continue };
            let half = z * (dispersion * l.abs().max(1.0)).sqrt();
            let p = Point {
                yhat: l,
                lower: l - half,
                upper: l + half,
            };
            band = Some(match band {
                None => p,
                Some(q) => Point {
                    yhat: q.yhat.max(p.yhat),
                    lower: q.lower.max(p.lower),
                    upper: q.upper.max(p.upper),
                },
            });
        }
        ready += band.is_some() as usize;
        out.push(band.map(|p| (p, lo, hi)));
    }
    let missing = out.len() - ready;
    (out, ready, missing)
}

/// Runs every policy over `values` (bucketed at `opts.step`, NaN = gap).
pub fn simulate(
    values: &[f32],
    first_bucket: i64,
    calendar: bool,
    opts: &SimOptions,
) -> Result<Simulation> {
    let n = values.len();
    let eval_start = ((n as f64) * (1.0 - opts.eval_fraction)).floor() as usize;
    if eval_start < 2 || n - eval_start < 2 {
        bail!("{n} buckets are too few to simulate");
    }
    if opts.capacity <= 0.0 {
        bail!("--capacity must be positive");
    }
    let step_ms = opts.step.as_millis() as i64;
    // the bucket the replicas asked for now are ready in, counted from the origin b − 1
    let h = 1
        + (opts.startup.as_millis() as u64)
            .div_ceil(step_ms as u64)
            .max(1) as usize;
    let eval = &values[eval_start..];
    let observed_mean = {
        let o: Vec<f64> = eval
            .iter()
            .filter(|v| v.is_finite())
            .map(|v| *v as f64)
            .collect();
        o.iter().sum::<f64>() / o.len().max(1) as f64
    };
    let static_replicas = opts
        .static_replicas
        .unwrap_or(((observed_mean / opts.capacity).ceil() as u32).max(opts.min_replicas));
    let any_predictive = opts.policies.iter().any(|p| p.is_predictive());
    let (fc, ready, missing) = if any_predictive {
        forecasts(opts, calendar, first_bucket, values, eval_start, h)?
    } else {
        (vec![None; n - eval_start], 0, 0)
    };
    let run = Run {
        opts,
        values,
        first_bucket,
        eval_start,
        static_replicas,
    };
    let mut outcomes = Vec::new();
    let mut timeline = Timeline {
        first_bucket: first_bucket + eval_start as i64,
        demand: eval.iter().map(|v| *v as f64).collect(),
        capacity: Vec::new(),
    };
    for &policy in &opts.policies {
        let (out, caps) = run.policy(policy, &fc);
        timeline.capacity.push(caps);
        outcomes.push(out);
    }
    Ok(Simulation {
        options: opts.clone(),
        outcomes,
        timeline,
        static_replicas,
        horizon_steps: h,
        forecasts_ready: ready,
        forecasts_missing: missing,
    })
}

/// One simulation's trace and settings, shared by its policies.
struct Run<'a> {
    opts: &'a SimOptions,
    values: &'a [f32],
    first_bucket: i64,
    /// Index of the first evaluated bucket.
    eval_start: usize,
    static_replicas: u32,
}

impl Run<'_> {
    /// One policy over the evaluated part, tick by tick, with the forecasts `fc` (one per
    /// evaluated bucket); its totals and its ready capacity at the end of each bucket.
    fn policy(&self, policy: Policy, fc: &[Option<Band>]) -> (Outcome, Vec<f64>) {
        let (opts, values, eval_start) = (self.opts, self.values, self.eval_start);
        let step_ms = opts.step.as_millis() as i64;
        let tpb = ticks_per_bucket(opts.step);
        let tick_ms = step_ms / tpb as i64;
        let tick_min = tick_ms as f64 / 60_000.0;
        let startup_ticks = (opts.startup.as_millis() as u64).div_ceil(tick_ms as u64) as usize;
        let params = PolicyParams {
            policy,
            capacity: opts.capacity,
            min_replicas: opts.min_replicas,
            max_replicas: opts.max_replicas,
            margin: opts.margin,
            quantile: opts.quantile,
            max_step: opts.max_step,
            static_replicas: self.static_replicas,
        };
        // The reactive HPA keeps Kubernetes' default 5-minute scale-down window; behind promcast
        // (KEDA with `scaleDown.stabilizationWindowSeconds: 0`, as deploy/ sets it up) the
        // stabilisation is promcast's own, so the HPA adds none.
        let hpa_window = if policy.is_predictive() {
            Duration::ZERO
        } else {
            Duration::from_secs(300)
        };
        let mut hpa = Hpa::new(opts.min_replicas, opts.max_replicas, hpa_window);
        let mut rec = Recommender::new(
            opts.scale_down_stabilization,
            opts.min_replicas,
            opts.max_replicas,
        );
        // start from what the load before the evaluated part needed
        let start_load = values[..eval_start].iter().rev().find(|v| v.is_finite());
        let initial = match policy {
            Policy::Static => self.static_replicas,
            _ => start_load.map_or(opts.min_replicas, |v| {
                ((*v as f64 / opts.capacity).ceil() as u32)
                    .clamp(opts.min_replicas, opts.max_replicas)
            }),
        };
        // pods: ready tick of each; all initial ones ready
        let mut pods: Vec<i64> = vec![i64::MIN; initial as usize];
        let mut out = Outcome {
            policy: policy.to_string(),
            ..Default::default()
        };
        let eval = &values[eval_start..];
        let mut caps = Vec::with_capacity(eval.len());
        let mut predictive_wanted: Option<f64> = None;
        for (i, &d) in eval.iter().enumerate() {
            let b = eval_start + i;
            let observed = values[b - 1];
            let observed = observed.is_finite().then_some(observed as f64);
            let bucket_ms = (self.first_bucket + b as i64) * step_ms;
            if policy.is_predictive() {
                let current = pods.len() as u32;
                predictive_wanted = recommend(&params, observed, fc[i], current)
                    .map(|raw| rec.update(bucket_ms, raw) as f64);
            }
            for k in 0..tpb {
                let tick = (b * tpb + k) as i64;
                let now_ms = bucket_ms + k as i64 * tick_ms;
                let current = pods.len() as u32;
                let target = match policy {
                    Policy::Static => self.static_replicas,
                    Policy::Reactive => {
                        hpa.reconcile(now_ms, current, observed.map(|o| o / opts.capacity))
                    }
                    _ => hpa.reconcile(now_ms, current, predictive_wanted),
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
                let ready_cap = pods.iter().filter(|r| **r <= tick).count() as f64 * opts.capacity;
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
        (out, caps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten hours of real NASA traffic, scored on the last two: every policy runs, the
    /// accounting adds up, and the static policy never scales.
    #[test]
    fn policies_run_and_the_books_balance() {
        let t = crate::offline::data::nasa_days(1);
        let (b0, v) = t.bucketed(60_000);
        let v = &v[300..900];
        let mut opts = SimOptions::new(Duration::from_secs(60));
        opts.capacity = 10.0;
        opts.model = "seasonal_naive".into();
        opts.eval_fraction = 0.2;
        let sim = simulate(v, b0 + 300, false, &opts).unwrap();
        assert_eq!(sim.outcomes.len(), 6);
        assert_eq!(sim.horizon_steps, 3);
        assert!(sim.forecasts_ready > 0);
        let minutes = 120.0;
        for o in &sim.outcomes {
            assert!(o.violation_minutes >= 0.0 && o.violation_minutes <= minutes + 1e-9);
            assert!(o.replica_minutes >= minutes * 1.0 - 1e-9, "{o:?}");
            assert!(o.unserved >= 0.0 && o.overprovision >= 0.0);
        }
        let st = &sim.outcomes[0];
        assert_eq!(st.policy, "static");
        assert_eq!(st.scaling_events, 0);
        assert!((st.replica_minutes - sim.static_replicas as f64 * minutes).abs() < 1e-6);
        // more capacity can only lower violations: quantile (upper band) vs ceiling (median)
        let by = |p: &str| sim.outcomes.iter().find(|o| o.policy == p).unwrap();
        assert!(by("quantile").replica_minutes >= by("ceiling").replica_minutes - 1e-9);
        assert_eq!(sim.timeline.demand.len(), 120);
        assert!(sim.timeline.capacity.iter().all(|c| c.len() == 120));
    }

    /// The oracle bound knows the level: on real traffic its median tracks the centred mean,
    /// and planning at its 0.9 level misses less than planning at its median.
    #[test]
    fn oracle_bound_knows_the_level() {
        let t = crate::offline::data::nasa_days(1);
        let (b0, v) = t.bucketed(60_000);
        let v = &v[300..900];
        let mut opts = SimOptions::new(Duration::from_secs(60));
        opts.capacity = 10.0;
        opts.model = "oracle:15".into();
        opts.policies = vec![Policy::Reactive, Policy::Ceiling, Policy::Quantile];
        opts.scale_down_stabilization = Duration::ZERO;
        let sim = simulate(v, b0 + 300, false, &opts).unwrap();
        assert_eq!(sim.forecasts_ready, 120);
        let by = |p: &str| sim.outcomes.iter().find(|o| o.policy == p).unwrap();
        assert!(
            by("quantile").violation_minutes < by("ceiling").violation_minutes,
            "{:?}",
            sim.outcomes
        );
        let (fc, _, _) = oracle_forecasts(&opts, v, 480, 1, 15);
        let centred: f64 = v[500 - 7..500 + 8].iter().map(|x| *x as f64).sum::<f64>() / 15.0;
        assert!((fc[20].unwrap().0.yhat - centred).abs() < 1e-9);
        opts.model = "oracle:0".into();
        let e = simulate(v, b0 + 300, false, &opts).err().unwrap();
        assert!(e.to_string().contains("oracle:N"), "{e}");
    }
}
