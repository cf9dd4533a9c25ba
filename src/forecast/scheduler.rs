//! The forecast loop: once per step, on its own OS thread (model work never runs on the
//! async runtime), forecast every stored series and publish a snapshot.
//!
//! Degrading on purpose when a step's work does not fit in the step:
//! - cheap models (`naive`, `seasonal_naive`) and batched `lstm` inference run every step;
//! - `mstl` refits are spent from a per-step budget (half the step); a series whose refit
//!   does not fit is served from its last fitted path (its forecast carries its age), or,
//!   with no usable path, by a baseline for that step; deferred refits are counted;
//! - `auto`'s per-series re-choices (a rolling backtest each) are spent from a budget of a
//!   quarter of the step: a series whose re-choice does not fit keeps its current model (or,
//!   before its first choice, the fixed order) and is re-chosen at a later step (counted);
//! - a step that overruns the next boundary skips the missed steps (counted) instead of
//!   queueing them, and the publication lag is exported.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::baseline::{lagged_forecast, MIN_ERRORS};
use super::mstl::{fit_path, usable_seasons, Path};
use super::neural::{History, LstmModel};
use super::{ModelKind, Point, SeriesState, MIN_POINTS};
use crate::anomaly::online::season_for;
use crate::anomaly::AnomalyScorer;
use crate::config::{AnomalySpec, Config, ForecastSpec, ModelChoice};
use crate::export::history::ForecastHistory;
use crate::export::remote_write::RemoteWriteQueue;
use crate::export::{horizons_of, SeriesForecast, Snapshot, SnapshotCell};
use crate::scale::Targets;
use crate::store::{now_ms, LabelSet, SeriesId, Store};
use crate::telemetry::{Telemetry, SERIES_STATES};

/// Trailing gap, in steps, filled up to "now" so forecasts start from the current step
/// even when the newest samples are a little late. Older heads are not extended.
const MAX_PAD: i64 = 5;
/// Rows per tract call.
const LSTM_BATCH: usize = 512;

/// How the LSTM's outputs map to one forecast entry.
struct LstmPlan {
    horizons: Vec<usize>,
    quantiles: [usize; 3],
}

/// Per-series state that outlives a step (only for models that fit).
struct SeriesModel {
    path: Option<Path>,
    fitted_ms: i64,
    /// `auto`'s current choice and the step it was made.
    auto: Option<(ModelKind, u64)>,
    /// Step counter of the last step that saw the series, to drop state of evicted ones.
    seen: u64,
}

impl SeriesModel {
    fn new() -> Self {
        Self {
            path: None,
            fitted_ms: 0,
            auto: None,
            seen: 0,
        }
    }
}

/// Recent origins `auto` compares the models on (every half longest horizon apart).
pub const AUTO_ORIGINS: usize = 16;
/// Fewer when MSTL is among the candidates: each origin is a fit.
pub const AUTO_ORIGINS_MSTL: usize = 6;
/// `auto` leaves its incumbent (the current choice, or the first available of lstm, mstl,
/// seasonal naive, naive) only for a model whose error is this much lower: per-series
/// errors over a few origins are noisy, and the incumbent order reflects which model is
/// better across many series (docs/ACCURACY.md).
pub const AUTO_MARGIN: f64 = 0.15;

struct Job {
    labels: Arc<LabelSet>,
    id: SeriesId,
    spec: u16,
    stale: bool,
    /// Bucket the forecast starts from (the head, padded towards now).
    origin: i64,
    head: i64,
    start: usize,
    len: usize,
}

pub struct Scheduler {
    config: Arc<Config>,
    store: Arc<Store>,
    telemetry: Arc<Telemetry>,
    snapshots: Arc<SnapshotCell>,
    outputs: Vec<RemoteWriteQueue>,
    lstm: Option<Arc<LstmModel>>,
    /// Per forecast entry: how to read LSTM outputs, or why the model does not fit it.
    lstm_plans: Vec<Result<LstmPlan, String>>,
    models: HashMap<SeriesId, SeriesModel>,
    anomaly: AnomalyScorer,
    anomaly_specs: Vec<Option<AnomalySpec>>,
    /// Past forecasts for remote read, when kept.
    history: Option<Arc<ForecastHistory>>,
    /// `(series, origin bucket)` of each element of the step's output, in order.
    origins: Vec<(SeriesId, i64)>,
    /// Until when this step may spend time on `auto` re-choices.
    auto_deadline: Instant,
    /// Whether bucket times are calendar times (always, in the agent; not for a backtest of
    /// an indexed trace): the LSTM's time features are 0 otherwise.
    calendar: bool,
    steps: u64,
    horizons: Vec<Vec<(String, i64)>>,
    /// `scaling:` targets and their scale-in windows.
    targets: Targets,
    // Reused buffers.
    values: Vec<f32>,
    jobs: Vec<Job>,
    errors: Vec<f32>,
    lstm_rows: Vec<(usize, usize, usize, i64)>,
    lstm_values: Vec<f32>,
    lstm_out: Vec<f32>,
}

/// Error from [`Scheduler::new`] when the configuration cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("forecast[{index}]: model lstm cannot serve this entry: {reason}")]
pub struct LstmMismatch {
    pub index: usize,
    pub reason: String,
}

impl Scheduler {
    pub fn new(
        config: Arc<Config>,
        store: Arc<Store>,
        telemetry: Arc<Telemetry>,
        snapshots: Arc<SnapshotCell>,
        outputs: Vec<RemoteWriteQueue>,
        lstm: Option<Arc<LstmModel>>,
    ) -> Result<Self, LstmMismatch> {
        let mut lstm_plans = Vec::new();
        for (index, spec) in config.forecast.iter().enumerate() {
            let plan = match &lstm {
                None => Err("no model loaded (inference.model)".to_string()),
                Some(m) => lstm_plan(m, &config, spec),
            };
            if let Err(reason) = &plan {
                if spec.model == ModelChoice::Lstm {
                    return Err(LstmMismatch {
                        index,
                        reason: reason.clone(),
                    });
                }
                if lstm.is_some() {
                    tracing::info!(forecast = index, %reason, "lstm model does not fit this entry; auto uses the classic models");
                }
            }
            lstm_plans.push(plan);
        }
        Ok(Self {
            anomaly: AnomalyScorer::new(
                config.forecast.len(),
                config.limits.max_anomaly_forests,
                config.ring_len.get(),
            ),
            anomaly_specs: config.forecast.iter().map(|f| f.anomaly.clone()).collect(),
            auto_deadline: Instant::now(),
            calendar: true,
            history: None,
            origins: Vec::new(),
            horizons: horizons_of(&config),
            targets: Targets::new(&config.scaling),
            config,
            store,
            telemetry,
            snapshots,
            outputs,
            lstm,
            lstm_plans,
            models: HashMap::new(),
            steps: 0,
            values: Vec::new(),
            jobs: Vec::new(),
            errors: Vec::new(),
            lstm_rows: Vec::new(),
            lstm_values: Vec::new(),
            lstm_out: Vec::new(),
        })
    }

    /// Records every step's forecasts in `history` (for remote read).
    pub fn set_history(&mut self, history: Arc<ForecastHistory>) {
        self.history = Some(history);
    }

    /// Marks bucket times as carrying no calendar meaning (offline replays of indexed traces).
    pub fn set_calendar(&mut self, calendar: bool) {
        self.calendar = calendar;
    }

    /// Runs a step at every step boundary until `shutdown` is signalled or dropped.
    pub fn run(mut self, shutdown: Receiver<()>) {
        let step_ms = self.store.step_ms();
        loop {
            let now = now_ms();
            let due = (now.div_euclid(step_ms) + 1) * step_ms;
            match shutdown.recv_timeout(Duration::from_millis((due - now).max(0) as u64)) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let started = now_ms();
            self.step(started);
            let finished = now_ms();
            self.telemetry
                .forecast_lag_ms
                .store((finished - due).max(0) as u64, Relaxed);
            let missed = (finished - due) / step_ms;
            if missed > 0 {
                self.telemetry
                    .forecast_steps_skipped
                    .fetch_add(missed as u64, Relaxed);
                tracing::warn!(
                    missed,
                    step_ms,
                    "forecast step overran; skipping missed steps"
                );
            }
        }
    }

    /// One forecast step over every stored series; publishes and returns the snapshot.
    pub fn step(&mut self, now_ms: i64) -> Arc<Snapshot> {
        let t0 = Instant::now();
        self.steps += 1;
        let evicted = self.store.evict_idle(now_ms);
        self.telemetry
            .series_evicted
            .fetch_add(evicted as u64, Relaxed);
        let step_ms = self.store.step_ms();
        let now_bucket = now_ms.div_euclid(step_ms);
        let refit_deadline = t0 + Duration::from_millis(step_ms as u64 / 2);
        // `auto` re-choices and anomaly forest training each get the first quarter of the
        // step, then wait.
        let train_deadline = t0 + Duration::from_millis(step_ms as u64 / 4);
        self.auto_deadline = train_deadline;
        self.anomaly.stats = Default::default();
        let mut out: Vec<SeriesForecast> = Vec::with_capacity(self.store.series_count());
        self.lstm_rows.clear();
        self.lstm_values.clear();
        self.origins.clear();
        self.targets.begin_step();

        for shard in 0..self.store.shard_count() {
            self.jobs.clear();
            self.values.clear();
            let (values, jobs) = (&mut self.values, &mut self.jobs);
            self.store.visit_shard(shard, |s| {
                let Some(head) = s.ring.head() else { return };
                let pad = (now_bucket - head).clamp(0, MAX_PAD);
                let start = values.len();
                s.ring.copy_last(s.ring.history_len(), values);
                values.extend(std::iter::repeat_n(f32::NAN, pad as usize));
                jobs.push(Job {
                    labels: s.labels.clone(),
                    id: s.id,
                    spec: s.spec,
                    stale: s.stale,
                    origin: head + pad,
                    head,
                    start,
                    len: values.len() - start,
                });
            });
            let jobs = std::mem::take(&mut self.jobs);
            for job in &jobs {
                let anomaly = self.score_anomaly(job, train_deadline);
                self.origins.push((job.id, job.origin));
                let at = out.len();
                if !self.targets.is_empty() {
                    // The newest observed value: the head bucket, before the padding.
                    let observed = (!job.stale)
                        .then(|| {
                            let v = &self.values[job.start..job.start + job.len];
                            v.iter()
                                .rev()
                                .take(MAX_PAD as usize + 1)
                                .find(|x| x.is_finite())
                        })
                        .flatten()
                        .map(|&x| x as f64);
                    self.targets.observe(&job.labels, at, observed);
                }
                match self.forecast_one(job, step_ms, refit_deadline, &mut out) {
                    Some(mut f) => {
                        f.anomaly = anomaly;
                        out.push(f);
                    }
                    // Queued for the LSTM batch: already in `out`.
                    None => out[at].anomaly = anomaly,
                }
            }
            self.jobs = jobs;
            if self.lstm_rows.len() >= LSTM_BATCH {
                self.run_lstm(&mut out, step_ms);
            }
        }
        self.run_lstm(&mut out, step_ms);

        if let Some(history) = &self.history {
            let steps: Vec<Vec<i64>> = self
                .config
                .forecast
                .iter()
                .map(|f| f.horizons.iter().map(|h| h.steps as i64).collect())
                .collect();
            for (f, &(id, origin)) in out.iter().zip(&self.origins) {
                if f.state == SeriesState::Ready {
                    history.record(id, f, origin, &steps[f.spec as usize]);
                }
            }
            history.evict_before(now_bucket - history.len() as i64);
        }

        // Forget model state of series that are gone.
        let steps = self.steps;
        self.models.retain(|_, m| m.seen == steps);
        self.anomaly
            .finish_step(steps, &self.anomaly_specs, train_deadline);

        let t = &self.telemetry;
        let mut by_state = [0u64; SERIES_STATES.len()];
        let mut max_age = 0;
        for s in &out {
            by_state[s.state.index()] += 1;
            if s.state == SeriesState::Ready {
                max_age = max_age.max(now_ms - s.fitted_ms);
                if let Some(m) = s.model {
                    t.forecasts[Telemetry::model_index(m.as_str())].fetch_add(1, Relaxed);
                }
            }
        }
        for (g, v) in t.series_by_state.iter().zip(by_state) {
            g.store(v, Relaxed);
        }
        t.series.store(self.store.series_count() as u64, Relaxed);
        t.forecast_max_age_ms.store(max_age.max(0) as u64, Relaxed);
        let a = self.anomaly.stats;
        t.anomaly_trainings.fetch_add(a.trained, Relaxed);
        t.anomaly_trainings_deferred.fetch_add(a.deferred, Relaxed);
        t.anomaly_training_failures.fetch_add(a.failed, Relaxed);
        t.anomaly_scored.fetch_add(a.scored, Relaxed);
        let (own, pooled) = self.anomaly.forest_counts();
        t.anomaly_forests[0].store(own as u64, Relaxed);
        t.anomaly_forests[1].store(pooled as u64, Relaxed);
        t.anomaly_bytes
            .store(self.anomaly.heap_bytes() as u64, Relaxed);
        let scaling = if self.targets.is_empty() {
            Vec::new()
        } else {
            self.targets
                .finish(now_ms, &out, &self.horizons, &self.config.forecast)
        };
        let snapshot = Arc::new(Snapshot {
            generated_ms: now_ms,
            horizons: self.horizons.clone(),
            series: out,
            scaling,
        });
        if let Some(history) = &self.history {
            history.record_scaling(&snapshot, step_ms);
        }
        self.snapshots.store(snapshot.clone());
        for o in &self.outputs {
            o.offer(snapshot.clone());
        }
        t.forecast_step_duration.observe(t0.elapsed().as_secs_f64());
        snapshot
    }

    /// Scores the series' newest observed point when its entry scores anomalies.
    fn score_anomaly(
        &mut self,
        job: &Job,
        train_deadline: Instant,
    ) -> Option<crate::export::Anomaly> {
        if job.stale {
            return None;
        }
        let spec = self.anomaly_specs[job.spec as usize].as_ref()?;
        // Without the padding towards now: the newest point is the head bucket.
        let pad = (job.origin - job.head) as usize;
        let values = &self.values[job.start..job.start + job.len - pad];
        let season = season_for(
            &self.config.forecast[job.spec as usize].seasons,
            values.len(),
        );
        self.anomaly.score(
            job.id,
            job.spec as usize,
            spec,
            values,
            job.head,
            season,
            self.steps,
            train_deadline,
        )
    }

    /// Forecasts one series, or queues it for the LSTM batch (returns `None` then).
    fn forecast_one(
        &mut self,
        job: &Job,
        step_ms: i64,
        refit_deadline: Instant,
        out: &mut Vec<SeriesForecast>,
    ) -> Option<SeriesForecast> {
        let mut result = SeriesForecast {
            labels: job.labels.clone(),
            spec: job.spec,
            state: SeriesState::Ready,
            model: None,
            origin_ms: job.head * step_ms,
            fitted_ms: job.head * step_ms,
            points: Vec::new(),
            anomaly: None,
        };
        if job.stale {
            result.state = SeriesState::Stale;
            return Some(result);
        }
        let config = self.config.clone();
        let spec = &config.forecast[job.spec as usize];
        let auto = spec.model == ModelChoice::Auto;
        // `auto`: the model this series' own recent history favours (re-chosen every
        // `auto_every`); an unavailable choice falls through to the next model below.
        let want = if auto {
            self.auto_choice(job, spec, step_ms, refit_deadline)
        } else {
            None
        };
        let values = &self.values[job.start..job.start + job.len];
        let origin_ms = job.origin * step_ms;
        let observed = values.iter().filter(|v| v.is_finite()).count();
        let quantiles = (spec.lower_quantile, spec.upper_quantile);
        let wants = |k: ModelKind| want.is_none_or(|w| w == k);

        // LSTM: batched after the shard.
        if let (Some(lstm), Ok(_)) = (&self.lstm, &self.lstm_plans[job.spec as usize]) {
            if spec.model == ModelChoice::Lstm || (auto && wants(ModelKind::Lstm)) {
                let window = lstm.meta().window;
                if observed >= MIN_POINTS.min(window) && values.len() >= window {
                    let start = self.lstm_values.len();
                    self.lstm_values.extend_from_slice(values);
                    self.lstm_rows
                        .push((out.len(), start, values.len(), origin_ms));
                    result.model = Some(ModelKind::Lstm);
                    out.push(result);
                    return None;
                }
                if !auto {
                    result.state = SeriesState::WarmingUp {
                        for_model: "lstm",
                        points_needed: window
                            .saturating_sub(values.len())
                            .max(MIN_POINTS.saturating_sub(observed)),
                    };
                    return Some(result);
                }
            }
        }

        // MSTL: a refit when due and within budget, else the last path read forward.
        let usable = usable_seasons(&spec.seasons, values.len());
        let mstl_wanted = match want {
            Some(k) => k == ModelKind::Mstl,
            None => !usable.is_empty(),
        };
        if spec.model == ModelChoice::Mstl || (auto && mstl_wanted) {
            if usable.is_empty() {
                let need = spec.seasons.first().map_or(0, |p| 2 * p);
                result.state = SeriesState::WarmingUp {
                    for_model: "mstl",
                    points_needed: need.saturating_sub(values.len()),
                };
                if !auto {
                    return Some(result);
                }
                result.state = SeriesState::Ready;
            } else {
                let max_h = spec.horizons.last().map_or(1, |h| h.steps);
                let state = self.models.entry(job.id).or_insert(SeriesModel::new());
                state.seen = self.steps;
                let targets_ok = |p: &Path| {
                    spec.horizons
                        .iter()
                        .all(|h| p.at(job.origin + h.steps as i64).is_some())
                };
                let due = match &state.path {
                    None => true,
                    Some(p) => job.origin - p.origin >= spec.refit_every as i64 || !targets_ok(p),
                };
                let mut fit_error = None;
                if due {
                    if Instant::now() < refit_deadline {
                        match fit_path(
                            values,
                            job.origin,
                            &usable,
                            max_h + spec.refit_every + MAX_PAD as usize,
                            quantiles,
                        ) {
                            Ok(p) => {
                                state.path = Some(p);
                                state.fitted_ms = origin_ms;
                            }
                            Err(e) => {
                                self.telemetry.forecast_errors[Telemetry::model_index("mstl")]
                                    .fetch_add(1, Relaxed);
                                state.path = None;
                                fit_error = Some(e.to_string());
                            }
                        }
                    } else {
                        self.telemetry.refits_deferred.fetch_add(1, Relaxed);
                    }
                }
                if let Some(p) = state.path.as_ref().filter(|p| targets_ok(p)) {
                    result.points = spec
                        .horizons
                        .iter()
                        .map(|h| p.at(job.origin + h.steps as i64).expect("checked"))
                        .collect();
                    result.model = Some(ModelKind::Mstl);
                    result.fitted_ms = state.fitted_ms;
                    return Some(result);
                }
                if let (Some(reason), false) = (&fit_error, auto) {
                    result.state = SeriesState::Failed {
                        reason: reason.clone(),
                    };
                    return Some(result);
                }
                // No usable path this step (deferred or failed under auto): a baseline serves.
            }
        }

        let prefer_naive = spec.model == ModelChoice::Naive || want == Some(ModelKind::Naive);
        match baseline(values, spec, quantiles, prefer_naive, &mut self.errors) {
            Ok((kind, points)) => {
                result.model = Some(kind);
                result.points = points;
            }
            Err(state) => result.state = state,
        }
        Some(result)
    }

    /// The model `auto` uses for this series: re-chosen every `auto_every` steps by a rolling
    /// backtest on the series' own ring ([`AUTO_ORIGINS`] recent origins, every candidate
    /// that has the history for them, summed absolute error at the entry's horizons; the
    /// incumbent is kept unless another is [`AUTO_MARGIN`] better). `None` while the history
    /// is too short to compare (the fixed order lstm > mstl > seasonal > naive then applies).
    fn auto_choice(
        &mut self,
        job: &Job,
        spec: &ForecastSpec,
        step_ms: i64,
        refit_deadline: Instant,
    ) -> Option<ModelKind> {
        let steps = self.steps;
        let state = self.models.entry(job.id).or_insert(SeriesModel::new());
        state.seen = steps;
        if let Some((kind, at)) = state.auto {
            if steps.saturating_sub(at) < spec.auto_every as u64 {
                return Some(kind);
            }
        }
        let current = state.auto.map(|a| a.0);
        if Instant::now() >= self.auto_deadline {
            // Over this step's budget: keep the current choice; re-chosen at a later step.
            self.telemetry.auto_choices_deferred.fetch_add(1, Relaxed);
            return current;
        }
        // The ring without the padding towards now: its last point is the head bucket.
        let pad = (job.origin - job.head) as usize;
        let hist: Vec<f32> = self.values[job.start..job.start + job.len - pad].to_vec();
        let n = hist.len();
        let max_h = spec.horizons.last().map_or(1, |h| h.steps);
        let gap = max_h.max(1);
        let lstm = match (&self.lstm, &self.lstm_plans[job.spec as usize]) {
            (Some(m), Ok(plan)) => Some((m.clone(), plan.horizons.clone(), plan.quantiles[1])),
            _ => None,
        };
        let mstl_seasons = |len: usize| usable_seasons(&spec.seasons, len);
        let mut origins = AUTO_ORIGINS;
        let with_mstl = Instant::now() < refit_deadline;
        let oldest = |k: usize| (n as i64) - 1 - max_h as i64 - ((k - 1) * gap) as i64;
        if with_mstl
            && oldest(AUTO_ORIGINS_MSTL) >= 0
            && !mstl_seasons(oldest(AUTO_ORIGINS_MSTL) as usize + 1).is_empty()
        {
            origins = AUTO_ORIGINS_MSTL;
        }
        if oldest(origins) < MIN_POINTS as i64 {
            return None;
        }
        let os: Vec<usize> = (0..origins).map(|j| n - 1 - max_h - j * gap).collect();
        let q = (spec.lower_quantile, spec.upper_quantile);
        let mut scores: Vec<(ModelKind, f64)> = Vec::new();
        let score = |forecast: &mut dyn FnMut(usize, usize) -> Option<f64>| -> Option<f64> {
            let mut sum = 0.0;
            for &o in &os {
                for (hi, h) in spec.horizons.iter().enumerate() {
                    let y = hist[o + h.steps];
                    if !y.is_finite() {
                        continue;
                    }
                    sum += (forecast(o, hi)? - y as f64).abs();
                }
            }
            Some(sum)
        };
        let mut errors = std::mem::take(&mut self.errors);
        let oldest_o = *os.last().expect("origins");
        // Baselines.
        let lag_ok = |lag: usize| oldest_o + 1 >= needed_for_lag(spec, lag);
        if let Some(p) = spec.seasons.iter().rev().copied().find(|&p| lag_ok(p)) {
            if let Some(sc) = score(&mut |o, hi| {
                lagged_forecast(&hist[..=o], p, spec.horizons[hi].steps, q, &mut errors)
                    .map(|pt| pt.yhat)
            }) {
                scores.push((ModelKind::SeasonalNaive, sc));
            }
        }
        if let Some(sc) = score(&mut |o, hi| {
            lagged_forecast(&hist[..=o], 1, spec.horizons[hi].steps, q, &mut errors)
                .map(|pt| pt.yhat)
        }) {
            scores.push((ModelKind::Naive, sc));
        }
        self.errors = errors;
        // LSTM: one small batch of the origins.
        if let Some((model, hidx, qmid)) = &lstm {
            if oldest_o + 1 >= model.meta().window {
                let histories: Vec<History<'_>> = os
                    .iter()
                    .map(|&o| History {
                        values: &hist[..=o],
                        last_ts_ms: (job.head - (n - 1 - o) as i64) * step_ms,
                        calendar: self.calendar,
                    })
                    .collect();
                let mut out = Vec::new();
                if model
                    .predict(&histories, self.config.step, &mut out)
                    .is_ok()
                {
                    let per = model.meta().outputs_per_row();
                    let nq = model.meta().quantiles.len();
                    let row = |o: usize| os.iter().position(|x| *x == o).expect("origin");
                    if let Some(sc) = score(&mut |o, hi| {
                        let v = out[row(o) * per + hidx[hi] * nq + qmid] as f64;
                        v.is_finite().then_some(v)
                    }) {
                        scores.push((ModelKind::Lstm, sc));
                    }
                }
            }
        }
        // MSTL, within the refit budget.
        if origins == AUTO_ORIGINS_MSTL {
            let paths: Vec<Option<Path>> = os
                .iter()
                .map(|&o| {
                    let seasons = mstl_seasons(o + 1);
                    fit_path(&hist[..=o], o as i64, &seasons, max_h, q).ok()
                })
                .collect();
            if paths.iter().all(Option::is_some) {
                if let Some(sc) = score(&mut |o, hi| {
                    let j = os.iter().position(|x| *x == o).expect("origin");
                    let p = paths[j].as_ref()?;
                    p.at((o + spec.horizons[hi].steps) as i64).map(|pt| pt.yhat)
                }) {
                    scores.push((ModelKind::Mstl, sc));
                }
            }
        }
        let best = scores.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied()?;
        let order = [
            ModelKind::Lstm,
            ModelKind::Mstl,
            ModelKind::SeasonalNaive,
            ModelKind::Naive,
        ];
        let incumbent = current
            .and_then(|c| scores.iter().find(|s| s.0 == c))
            .or_else(|| order.iter().find_map(|k| scores.iter().find(|s| s.0 == *k)))
            .copied();
        let chosen = match incumbent {
            Some((c, sc)) if best.1 >= sc * (1.0 - AUTO_MARGIN) => c,
            _ => best.0,
        };
        tracing::debug!(
            series = job.id.0,
            ?scores,
            ?incumbent,
            ?chosen,
            "auto choice"
        );
        let state = self.models.entry(job.id).or_insert(SeriesModel::new());
        state.auto = Some((chosen, steps));
        self.telemetry.auto_choices[Telemetry::model_index(chosen.as_str())].fetch_add(1, Relaxed);
        Some(chosen)
    }

    fn run_lstm(&mut self, out: &mut [SeriesForecast], step_ms: i64) {
        if self.lstm_rows.is_empty() {
            return;
        }
        let Some(lstm) = self.lstm.clone() else {
            return;
        };
        let histories: Vec<History<'_>> = self
            .lstm_rows
            .iter()
            .map(|&(_, start, len, origin_ms)| History {
                values: &self.lstm_values[start..start + len],
                last_ts_ms: origin_ms,
                calendar: self.calendar,
            })
            .collect();
        let result = lstm.predict(&histories, self.config.step, &mut self.lstm_out);
        drop(histories);
        let per_row = lstm.meta().horizons.len() * lstm.meta().quantiles.len();
        let nq = lstm.meta().quantiles.len();
        let _ = step_ms;
        for (row, &(idx, start, len, _)) in self.lstm_rows.iter().enumerate() {
            let f = &mut out[idx];
            let spec = &self.config.forecast[f.spec as usize];
            let plan = self.lstm_plans[f.spec as usize]
                .as_ref()
                .expect("queued only with a plan");
            let points: Option<Vec<Point>> = result.as_ref().ok().and_then(|_| {
                let r = &self.lstm_out[row * per_row..(row + 1) * per_row];
                let pts: Vec<Point> = plan
                    .horizons
                    .iter()
                    .map(|&h| {
                        let q = |i: usize| r[h * nq + plan.quantiles[i]] as f64;
                        Point {
                            yhat: q(1),
                            lower: q(0),
                            upper: q(2),
                        }
                        .ordered()
                    })
                    .collect();
                pts.iter().all(Point::is_finite).then_some(pts)
            });
            match points {
                Some(p) => f.points = p,
                None => {
                    self.telemetry.forecast_errors[Telemetry::model_index("lstm")]
                        .fetch_add(1, Relaxed);
                    let reason = match &result {
                        Err(e) => e.to_string(),
                        Ok(()) => "lstm produced non-finite forecasts".to_string(),
                    };
                    if spec.model == ModelChoice::Auto {
                        let values = &self.lstm_values[start..start + len];
                        let q = (spec.lower_quantile, spec.upper_quantile);
                        match baseline(values, spec, q, false, &mut self.errors) {
                            Ok((kind, pts)) => {
                                f.model = Some(kind);
                                f.points = pts;
                            }
                            Err(state) => f.state = state,
                        }
                    } else {
                        f.state = SeriesState::Failed { reason };
                    }
                }
            }
        }
        if let Err(e) = &result {
            tracing::warn!(error = %e, rows = self.lstm_rows.len(), "lstm batch failed");
        }
        self.lstm_rows.clear();
        self.lstm_values.clear();
    }
}

fn lstm_plan(model: &LstmModel, config: &Config, spec: &ForecastSpec) -> Result<LstmPlan, String> {
    let durations: Vec<Duration> = spec.horizons.iter().map(|h| h.duration).collect();
    model
        .check_fits(
            config.step,
            &durations,
            &[spec.lower_quantile, spec.upper_quantile],
        )
        .map_err(|e| e.to_string())?;
    let meta = model.meta();
    let horizons = durations
        .iter()
        .map(|d| {
            meta.horizon_index_at(*d, config.step)
                .ok_or_else(|| format!("no horizon {d:?}"))
        })
        .collect::<Result<_, _>>()?;
    let q = |x: f64| {
        meta.quantile_index(x)
            .ok_or_else(|| format!("no quantile {x}"))
    };
    Ok(LstmPlan {
        horizons,
        quantiles: [q(spec.lower_quantile)?, q(0.5)?, q(spec.upper_quantile)?],
    })
}

/// Points an entry needs before `naive` (lag 1) or `seasonal_naive` (lag p) has a band.
fn needed_for_lag(spec: &ForecastSpec, lag: usize) -> usize {
    let max_h = spec.horizons.last().map_or(1, |h| h.steps);
    max_h.div_ceil(lag) * lag + MIN_ERRORS + 1
}

/// `seasonal_naive` with the longest season the history covers, else `naive` (unless the
/// entry asks for seasonal naive explicitly).
fn baseline(
    values: &[f32],
    spec: &ForecastSpec,
    quantiles: (f64, f64),
    prefer_naive: bool,
    errors: &mut Vec<f32>,
) -> Result<(ModelKind, Vec<Point>), SeriesState> {
    let n = values.len();
    let explicit_seasonal = spec.model == ModelChoice::SeasonalNaive;
    let season = spec
        .seasons
        .iter()
        .rev()
        .copied()
        .find(|&p| n >= needed_for_lag(spec, p));
    let (kind, lag) = match season {
        Some(p) if !prefer_naive => (ModelKind::SeasonalNaive, p),
        _ if explicit_seasonal => {
            let p = spec.seasons.first().copied().unwrap_or(1);
            return Err(SeriesState::WarmingUp {
                for_model: "seasonal_naive",
                points_needed: needed_for_lag(spec, p).saturating_sub(n),
            });
        }
        _ => (ModelKind::Naive, 1),
    };
    // Naive starts early (its band falls back to scaled one-step errors).
    let need = if lag == 1 {
        MIN_POINTS
    } else {
        needed_for_lag(spec, lag)
    };
    if n < need {
        return Err(SeriesState::WarmingUp {
            for_model: kind.as_str(),
            points_needed: need - n,
        });
    }
    let mut points = Vec::with_capacity(spec.horizons.len());
    for h in &spec.horizons {
        match lagged_forecast(values, lag, h.steps, quantiles, errors) {
            Some(p) => points.push(p),
            None => {
                return Err(SeriesState::WarmingUp {
                    for_model: kind.as_str(),
                    points_needed: MIN_ERRORS,
                })
            }
        }
    }
    Ok((kind, points))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::SnapshotCell;
    use crate::store::{hash_labels, AppendStats, LabelRef, Sample, STALE_NAN_BITS};

    /// NASA HTTP requests per minute (July 1995), from ../shared/data.
    fn nasa() -> Vec<f64> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/nasa_http_1995/nasa_requests_per_minute.csv"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(1)?.trim().parse().ok())
            .collect()
    }

    fn setup(yaml: &str) -> (Arc<Config>, Arc<Store>, Arc<Telemetry>, Scheduler) {
        let config = Arc::new(Config::from_yaml(yaml, "test", None).unwrap());
        let store = Arc::new(Store::new(&config, 0));
        let telemetry = Arc::new(Telemetry::default());
        let cell = Arc::new(SnapshotCell::new(Snapshot::empty(&config)));
        let s = Scheduler::new(
            config.clone(),
            store.clone(),
            telemetry.clone(),
            cell,
            Vec::new(),
            None,
        )
        .unwrap();
        (config, store, telemetry, s)
    }

    fn push(store: &Store, job: &str, values: &[f64], first_ms: i64, step_ms: i64) {
        let labels = [
            LabelRef::new("__name__", "job:req:rate1m"),
            LabelRef::new("job", job),
        ];
        let samples: Vec<Sample> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                value: *v,
                timestamp: first_ms + i as i64 * step_ms,
            })
            .collect();
        let last_ms = samples.last().map_or(first_ms, |s| s.timestamp);
        store.append(
            hash_labels(&labels),
            &labels,
            &samples,
            last_ms,
            &mut AppendStats::default(),
        );
    }

    const YAML: &str = r#"
storage: { step: 1m, retention: 6h }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5m, 15m]
    seasons: [1h]
"#;

    #[test]
    fn auto_forecasts_at_every_history_length_with_a_model_it_can_run() {
        let y = nasa();
        let (_, store, _, mut sched) = setup(YAML);
        // (points, the models auto may use with that much history)
        let cases: [(usize, &[ModelKind]); 4] = [
            (3, &[]),
            (8, &[ModelKind::Naive]),
            (80, &[ModelKind::Naive, ModelKind::SeasonalNaive]),
            (
                150,
                &[ModelKind::Naive, ModelKind::SeasonalNaive, ModelKind::Mstl],
            ),
        ];
        let now = 149 * 60_000;
        for (i, (n, _)) in cases.into_iter().enumerate() {
            let job = format!("j{i}");
            push(
                &store,
                &job,
                &y[1000..1000 + n],
                now - (n as i64 - 1) * 60_000,
                60_000,
            );
        }
        let snap = sched.step(now);
        for (i, (n, want)) in cases.into_iter().enumerate() {
            let job = format!("j{i}");
            let s = snap
                .series
                .iter()
                .find(|s| s.labels.get("job") == Some(&job))
                .unwrap();
            match s.model {
                None => assert!(
                    want.is_empty()
                        && matches!(s.state, SeriesState::WarmingUp { points_needed, .. } if points_needed > 0),
                    "{n} points: {:?}",
                    s.state
                ),
                Some(m) => {
                    assert!(want.contains(&m), "{n} points: {m:?} not in {want:?}");
                    assert_eq!(s.state, SeriesState::Ready);
                    assert_eq!(s.points.len(), 2);
                    assert!(s
                        .points
                        .iter()
                        .all(|p| p.is_finite() && p.lower <= p.yhat && p.yhat <= p.upper));
                }
            }
        }
    }

    /// `auto` picks by a rolling backtest on the series' own history and keeps its choice for
    /// `auto_every`. A strictly periodic signal is the case with a known answer: seasonal
    /// naive forecasts it exactly, so it must win (a made-up series on purpose: its ground
    /// truth is the point of the test).
    #[test]
    fn auto_chooses_by_backtest_and_keeps_the_choice() {
        let yaml = r#"
storage: { step: 1m, retention: 6h }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5m, 15m]
    seasons: [1h]
    auto_every: 30m
    anomaly: { enabled: false }
inference: { model: none }
"#;
        let (_, store, telemetry, mut sched) = setup(yaml);
        let wave: Vec<f64> = (0..400)
            .map(|t| [3.0, 9.0, 4.0, 12.0, 6.0][(t % 60) / 12] * 10.0 + (t % 12) as f64)
            .collect();
        let now = 399 * 60_000;
        push(&store, "wave", &wave, 0, 60_000);
        let snap = sched.step(now);
        assert_eq!(snap.series[0].model, Some(ModelKind::SeasonalNaive));
        let chosen =
            |t: &Telemetry| t.auto_choices[Telemetry::model_index("seasonal_naive")].load(Relaxed);
        assert_eq!(chosen(&telemetry), 1);
        // no re-choice before auto_every (30 steps) has passed
        for k in 1..30 {
            push(
                &store,
                "wave",
                &[wave[(399 + k) % 60 + 60]],
                now + k as i64 * 60_000,
                60_000,
            );
            sched.step(now + k as i64 * 60_000);
        }
        assert_eq!(chosen(&telemetry), 1);
        push(
            &store,
            "wave",
            &[wave[(399 + 30) % 60 + 60]],
            now + 30 * 60_000,
            60_000,
        );
        sched.step(now + 30 * 60_000);
        assert_eq!(chosen(&telemetry), 2);
    }

    #[test]
    fn stale_series_are_not_forecast_until_they_resume() {
        let y = nasa();
        let (_, store, _, mut sched) = setup(YAML);
        push(&store, "a", &y[..30], 0, 60_000);
        push(
            &store,
            "a",
            &[f64::from_bits(STALE_NAN_BITS)],
            30 * 60_000,
            60_000,
        );
        let snap = sched.step(31 * 60_000);
        assert_eq!(snap.series[0].state, SeriesState::Stale);
        assert_eq!(snap.ready().count(), 0);
        push(&store, "a", &y[31..32], 31 * 60_000, 60_000);
        let snap = sched.step(32 * 60_000);
        assert_eq!(snap.series[0].state, SeriesState::Ready);
    }

    #[test]
    fn auto_choices_beyond_the_step_budget_are_deferred() {
        // Step 1s: a quarter of a second for 600 re-choices, each a rolling backtest with MSTL
        // fits among the candidates. Every series still gets a forecast; the rest of the
        // choices are made over the next steps.
        let yaml = r#"
storage: { step: 1s, retention: 10m }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5s, 10s]
    model: auto
    seasons: [1m]
    anomaly: { enabled: false }
inference: { model: none }
"#;
        let y = nasa();
        let (_, store, telemetry, mut sched) = setup(yaml);
        for k in 0..600 {
            push(&store, &format!("s{k}"), &y[k * 50..k * 50 + 600], 0, 1000);
        }
        let chosen = |t: &Telemetry| t.auto_choices.iter().map(|c| c.load(Relaxed)).sum::<u64>();
        let t0 = Instant::now();
        let snap = sched.step(600_000);
        let took = t0.elapsed();
        let deferred = telemetry.auto_choices_deferred.load(Relaxed);
        assert!(
            deferred > 0,
            "600 choices in {took:?} without deferring any"
        );
        assert_eq!(chosen(&telemetry) + deferred, 600);
        assert!(snap
            .series
            .iter()
            .all(|s| s.state == SeriesState::Ready && s.model.is_some()));
        let first = chosen(&telemetry);
        sched.step(601_000);
        assert!(
            chosen(&telemetry) > first,
            "the next step makes more choices"
        );
    }

    #[test]
    fn refits_beyond_the_step_budget_are_deferred_not_queued() {
        // Step 1s: half a second of refit budget for 600 MSTL fits of 600 points each, far
        // more than one step allows on any machine. Every series still gets a forecast.
        let yaml = r#"
storage: { step: 1s, retention: 10m }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [5s, 10s]
    model: mstl
    seasons: [1m]
    refit_every: 1m
"#;
        let y = nasa();
        let (_, store, telemetry, mut sched) = setup(yaml);
        for k in 0..600 {
            push(&store, &format!("s{k}"), &y[k * 50..k * 50 + 600], 0, 1000);
        }
        let t0 = Instant::now();
        let snap = sched.step(600_000);
        let took = t0.elapsed();
        let deferred = telemetry.refits_deferred.load(Relaxed);
        assert!(deferred > 0, "600 fits in {took:?} without deferring any");
        assert_eq!(snap.series.len(), 600);
        let mstl = snap
            .series
            .iter()
            .filter(|s| s.model == Some(ModelKind::Mstl))
            .count();
        assert_eq!(mstl as u64 + deferred, 600);
        // Deferred series have no path yet: a baseline serves them this step.
        for s in &snap.series {
            assert_eq!(s.state, SeriesState::Ready);
            assert!(s.model.is_some());
        }
        // The next step serves the fitted ones from their paths (no refit due) and fits more.
        let snap2 = sched.step(601_000);
        let mstl2 = snap2
            .series
            .iter()
            .filter(|s| s.model == Some(ModelKind::Mstl))
            .count();
        assert!(mstl2 > mstl, "{mstl2} <= {mstl}");
        let aged = snap2
            .series
            .iter()
            .filter(|s| s.model == Some(ModelKind::Mstl) && s.fitted_ms < snap2.generated_ms)
            .count();
        assert!(
            aged > 0,
            "forecasts read forward from an earlier fit carry their age"
        );
    }

    #[test]
    fn lstm_rows_are_batched_and_mapped_to_the_entry() {
        use crate::forecast::neural::{fixture_model, FixtureParams};
        let yaml = r#"
storage: { step: 1m, retention: 6h }
forecast:
  - selector: '{__name__=~".+:.+"}'
    horizons: [30m, 5m]
"#;
        let config = Arc::new(Config::from_yaml(yaml, "test", None).unwrap());
        let store = Arc::new(Store::new(&config, 0));
        let telemetry = Arc::new(Telemetry::default());
        let cell = Arc::new(SnapshotCell::new(Snapshot::empty(&config)));
        let model =
            LstmModel::from_bytes(&fixture_model(&FixtureParams::default()), "fixture").unwrap();
        let mut sched = Scheduler::new(
            config.clone(),
            store.clone(),
            telemetry.clone(),
            cell,
            Vec::new(),
            Some(Arc::new(model)),
        )
        .unwrap();
        let y = nasa();
        let now = 1_000 * 60_000;
        // 700 series (more than one tract batch), plus one too young for the window.
        for k in 0..700 {
            push(
                &store,
                &format!("s{k}"),
                &y[k * 7..k * 7 + 40],
                now - 39 * 60_000,
                60_000,
            );
        }
        push(&store, "young", &y[..3], now - 2 * 60_000, 60_000);
        let snap = sched.step(now);
        let lstm: Vec<_> = snap
            .series
            .iter()
            .filter(|s| s.model == Some(ModelKind::Lstm))
            .collect();
        assert_eq!(lstm.len(), 700);
        for s in &lstm {
            assert_eq!(s.state, SeriesState::Ready);
            // Horizons are sorted (5m, 30m) and each point is an ordered, finite band around
            // a persistence forecast (the fixture's median is near the last value).
            assert_eq!(s.points.len(), 2);
            assert!(s
                .points
                .iter()
                .all(|p| p.is_finite() && p.lower <= p.yhat && p.yhat <= p.upper));
        }
        let young = snap
            .series
            .iter()
            .find(|s| s.labels.get("job") == Some("young"))
            .unwrap();
        assert!(
            matches!(young.state, SeriesState::WarmingUp { .. }),
            "{:?}",
            young.state
        );
        assert_eq!(
            telemetry.forecast_errors[Telemetry::model_index("lstm")].load(Relaxed),
            0
        );
    }
}
