//! Training windows: a [`Sampler`] draws (series, origin) pairs of a [`Split`] by weight and
//! builds each window with the agent's own [`input_row`], so training inputs equal serving
//! inputs; targets are the normalised values at every horizon, masked where missing.

use std::time::Duration;

use super::data::Prepared;
use crate::forecast::neural::{input_row, History, ModelMeta};
use crate::rng::SplitMix64;

/// Which part of a series a window's targets may fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
}

/// Bounds (origin range) of a split in a series of `n` buckets: origins `t` whose targets
/// `t + L` stay inside the split.
pub(super) fn origins(
    n: usize,
    split: Split,
    window: usize,
    lead: usize,
) -> std::ops::Range<usize> {
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
