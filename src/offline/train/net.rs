//! The forecaster network in candle (training only; the agent runs its ONNX export on tract).
//! All candle types of the project live in `train/`.
//!
//! ```text
//! input [N, W, F] ── LSTM(H), gate blocks i, o, f, c (ONNX order), zero initial state ── h_T [N, H]
//! z = concat(h_T, x_last, seas[K], seas_mask[K])           x_last: `value` at the last step
//!                                                           seas[k]: `lag_1d_lead` at step W−1−L+k
//! r = W2 · relu(W1 · z + b1) + b2   → [N, K, Q]
//! out[q] = x_last + r[mid] + Σ_j M[q][j] · softplus(r[j])   M: cumulative offsets, so the
//!                                                            quantiles never cross
//! ```
//!
//! The LSTM step is one matmul on `cat(x_t, h)` with `W = [W_x; W_h]` of shape `[F + H, 4H]`
//! (what is exported as ONNX `W` = `W_x`ᵀ, `R` = `W_h`ᵀ, `B` = `[b; 0]`).

use candle_core::{DType, Device, Result, Tensor, Var, D};

use crate::rng::SplitMix64;

/// Shapes of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub window: usize,
    pub features: usize,
    pub hidden: usize,
    /// Width of the head's hidden layer.
    pub head: usize,
    /// Horizon lengths in steps (ascending); `L` is the last.
    pub horizon_steps: Vec<usize>,
    pub quantiles: Vec<f64>,
    /// Index of `value` and of `lag_1d_lead` / `lag_1d_lead_mask` among the features.
    pub value_feature: usize,
    pub lead_feature: usize,
    pub lead_mask_feature: usize,
}

impl Shape {
    pub fn k(&self) -> usize {
        self.horizon_steps.len()
    }
    pub fn q(&self) -> usize {
        self.quantiles.len()
    }
    /// Index of the median among the quantiles.
    pub fn mid(&self) -> usize {
        self.quantiles
            .iter()
            .position(|q| (q - 0.5).abs() < 1e-9)
            .expect("quantiles include 0.5")
    }
    /// Width of the head input `z`.
    pub fn z(&self) -> usize {
        self.hidden + 1 + 2 * self.k()
    }
    /// Window positions of `seas[k]`: `W − 1 − L + k`.
    pub fn seasonal_positions(&self) -> Vec<usize> {
        let l = *self.horizon_steps.last().expect("horizons");
        self.horizon_steps
            .iter()
            .map(|k| self.window - 1 - l + k)
            .collect()
    }
    /// The `[Q, Q]` matrix of cumulative offsets: row `q` adds `softplus(r[j])` for the
    /// quantiles between the median and `q` (negative below the median).
    pub fn offsets(&self) -> Vec<f32> {
        let (q, mid) = (self.q(), self.mid());
        let mut m = vec![0f32; q * q];
        for row in 0..q {
            if row < mid {
                for j in row..mid {
                    m[row * q + j] = -1.0;
                }
            } else if row > mid {
                for j in mid + 1..=row {
                    m[row * q + j] = 1.0;
                }
            }
        }
        m
    }
}

/// The trainable parameters.
pub struct Net {
    pub shape: Shape,
    /// `[F + H, 4H]`.
    pub w: Var,
    /// `[4H]`.
    pub b: Var,
    /// `[Z, head]`, `[head]`, `[head, K·Q]`, `[K·Q]`.
    pub w1: Var,
    pub b1: Var,
    pub w2: Var,
    pub b2: Var,
}

/// Parameter names, in the order of [`Net::vars`] (checkpoints use them).
pub const PARAM_NAMES: [&str; 6] = [
    "lstm_w", "lstm_b", "head_w1", "head_b1", "head_w2", "head_b2",
];

impl Net {
    /// Glorot-uniform weights from `seed`; forget-gate bias 1.
    pub fn new(shape: Shape, seed: u64, dev: &Device) -> Result<Self> {
        let mut rng = SplitMix64::new(seed);
        let (f, h, z, hd, kq) = (
            shape.features,
            shape.hidden,
            shape.z(),
            shape.head,
            shape.k() * shape.q(),
        );
        let glorot = |rng: &mut SplitMix64, fan_in: usize, fan_out: usize| {
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
            rng.uniform_vec(fan_in * fan_out, limit)
        };
        let w = glorot(&mut rng, f + h, 4 * h);
        let mut b = vec![0f32; 4 * h];
        // gate blocks i, o, f, c: forget gate starts open
        b[2 * h..3 * h].fill(1.0);
        let w1 = glorot(&mut rng, z, hd);
        let w2: Vec<f32> = glorot(&mut rng, hd, kq).iter().map(|x| x * 0.1).collect();
        let var = |v: Vec<f32>, dims: &[usize]| Var::from_tensor(&Tensor::from_vec(v, dims, dev)?);
        Ok(Self {
            w: var(w, &[f + h, 4 * h])?,
            b: var(b, &[4 * h])?,
            w1: var(w1, &[z, hd])?,
            b1: var(vec![0.0; hd], &[hd])?,
            w2: var(w2, &[hd, kq])?,
            b2: var(vec![0.0; kq], &[kq])?,
            shape,
        })
    }

    pub fn vars(&self) -> Vec<Var> {
        vec![
            self.w.clone(),
            self.b.clone(),
            self.w1.clone(),
            self.b1.clone(),
            self.w2.clone(),
            self.b2.clone(),
        ]
    }

    /// Forward pass: `input [N, W, F]` → `[N, K, Q]` in normalised units.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let s = &self.shape;
        let (n, w, _) = input.dims3()?;
        let hsz = s.hidden;
        let dev = input.device();
        let mut h = Tensor::zeros((n, hsz), DType::F32, dev)?;
        let mut c = Tensor::zeros((n, hsz), DType::F32, dev)?;
        // The raw input is not tracked: slicing it per step is cheap.
        let steps = input.chunk(w, 1)?;
        for x_t in &steps {
            let x_t = x_t.squeeze(1)?;
            let g = Tensor::cat(&[&x_t, &h], 1)?
                .matmul(self.w.as_tensor())?
                .broadcast_add(self.b.as_tensor())?;
            let i = candle_nn::ops::sigmoid(&g.narrow(1, 0, hsz)?)?;
            let o = candle_nn::ops::sigmoid(&g.narrow(1, hsz, hsz)?)?;
            let f = candle_nn::ops::sigmoid(&g.narrow(1, 2 * hsz, hsz)?)?;
            let cand = g.narrow(1, 3 * hsz, hsz)?.tanh()?;
            c = ((f * &c)? + (i * cand)?)?;
            h = (o * c.tanh()?)?;
        }
        let last = input.narrow(1, w - 1, 1)?.squeeze(1)?; // [N, F]
        let x_last = last.narrow(1, s.value_feature, 1)?; // [N, 1]
        let pos: Vec<u32> = s.seasonal_positions().iter().map(|&p| p as u32).collect();
        let idx = Tensor::from_vec(pos.clone(), pos.len(), dev)?;
        let picked = input.index_select(&idx, 1)?; // [N, K, F]
        let seas = picked.narrow(2, s.lead_feature, 1)?.squeeze(2)?;
        let seas_mask = picked.narrow(2, s.lead_mask_feature, 1)?.squeeze(2)?;
        let z = Tensor::cat(&[&h, &x_last, &seas, &seas_mask], 1)?;
        let hid = z
            .matmul(self.w1.as_tensor())?
            .broadcast_add(self.b1.as_tensor())?
            .relu()?;
        let r = hid
            .matmul(self.w2.as_tensor())?
            .broadcast_add(self.b2.as_tensor())?
            .reshape((n, s.k(), s.q()))?;
        let m = Tensor::from_vec(s.offsets(), (s.q(), s.q()), dev)?;
        // out[q] = Σ_j softplus(r[j]) · M[q][j] = softplus(r) · Mᵀ
        let spread = softplus(&r)?
            .reshape((n * s.k(), s.q()))?
            .matmul(&m.t()?)?
            .reshape((n, s.k(), s.q()))?;
        let base = r
            .narrow(2, s.mid(), 1)?
            .broadcast_add(&x_last.unsqueeze(2)?)?; // [N, K, 1]
        spread.broadcast_add(&base)
    }
}

/// `ln(1 + eˣ)`, computed stably as `max(x, 0) + ln(1 + e^{−|x|})`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Mean pinball loss over the finite targets: `pred [N, K, Q]`, `target [N, K]` (NaN targets
/// are excluded by `mask [N, K]`, 1 where the target exists; the target must hold a finite
/// placeholder there).
pub fn pinball(pred: &Tensor, target: &Tensor, mask: &Tensor, quantiles: &[f64]) -> Result<Tensor> {
    let dev = pred.device();
    let q = Tensor::from_vec(
        quantiles.iter().map(|q| *q as f32).collect::<Vec<_>>(),
        (1, 1, quantiles.len()),
        dev,
    )?;
    let diff = target.unsqueeze(2)?.broadcast_sub(pred)?; // y − ŷ
    let a = diff.broadcast_mul(&q)?;
    let b = diff.broadcast_mul(&(q - 1.0)?)?;
    let loss = a.maximum(&b)?; // [N, K, Q]
    let per = loss.mean(D::Minus1)?; // [N, K]
    let total = (per * mask)?.sum_all()?;
    let count = mask.sum_all()?.maximum(1.0)?;
    total.broadcast_div(&count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            window: 12,
            features: 4,
            hidden: 8,
            head: 16,
            horizon_steps: vec![1, 3, 5],
            quantiles: vec![0.1, 0.5, 0.9],
            value_feature: 0,
            lead_feature: 2,
            lead_mask_feature: 3,
        }
    }

    #[test]
    fn offsets_order_the_quantiles() {
        let s = Shape {
            quantiles: vec![0.05, 0.1, 0.5, 0.9, 0.95],
            ..shape()
        };
        let m = s.offsets();
        assert_eq!(&m[0..5], &[-1.0, -1.0, 0.0, 0.0, 0.0]);
        assert_eq!(&m[5..10], &[0.0, -1.0, 0.0, 0.0, 0.0]);
        assert_eq!(&m[10..15], &[0.0; 5]);
        assert_eq!(&m[20..25], &[0.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(s.seasonal_positions(), [7, 9, 11]);
    }

    #[test]
    fn forward_shapes_and_ordered_quantiles() {
        let dev = Device::Cpu;
        let net = Net::new(shape(), 3, &dev).unwrap();
        let mut rng = SplitMix64::new(9);
        let x = Tensor::from_vec(rng.uniform_vec(5 * 12 * 4, 2.0), (5, 12, 4), &dev).unwrap();
        let y = net.forward(&x).unwrap();
        assert_eq!(y.dims(), &[5, 3, 3]);
        let v = y.to_vec3::<f32>().unwrap();
        for row in v.iter().flatten() {
            assert!(row[0] <= row[1] && row[1] <= row[2], "{row:?}");
        }
    }

    #[test]
    fn pinball_by_hand_and_mask() {
        let dev = Device::Cpu;
        let pred = Tensor::from_vec(vec![0f32, 1.0, 2.0, 0.0, 1.0, 2.0], (2, 1, 3), &dev).unwrap();
        let target = Tensor::from_vec(vec![1.5f32, 0.0], (2, 1), &dev).unwrap();
        let mask = Tensor::from_vec(vec![1f32, 0.0], (2, 1), &dev).unwrap();
        let l = pinball(&pred, &target, &mask, &[0.1, 0.5, 0.9])
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // row 0: y=1.5: q0.1: 0.1*1.5=0.15; q0.5: 0.5*0.5=0.25; q0.9: (0.9-1)*(-0.5)=0.05
        let want = (0.15 + 0.25 + 0.05) / 3.0;
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    }

    #[test]
    fn training_lowers_the_loss() {
        let dev = Device::Cpu;
        let s = shape();
        let net = Net::new(s.clone(), 1, &dev).unwrap();
        let mut rng = SplitMix64::new(5);
        let x = Tensor::from_vec(rng.uniform_vec(32 * 12 * 4, 1.0), (32, 12, 4), &dev).unwrap();
        // target: the last value + 0.5 at every horizon
        let last = x
            .narrow(1, 11, 1)
            .unwrap()
            .narrow(2, 0, 1)
            .unwrap()
            .squeeze(2)
            .unwrap();
        let target = (last.broadcast_as((32, 3)).unwrap().contiguous().unwrap() + 0.5).unwrap();
        let mask = Tensor::ones((32, 3), DType::F32, &dev).unwrap();
        use candle_nn::Optimizer as _;
        let mut opt = candle_nn::AdamW::new(
            net.vars(),
            candle_nn::ParamsAdamW {
                lr: 1e-2,
                ..Default::default()
            },
        )
        .unwrap();
        let loss0 = pinball(&net.forward(&x).unwrap(), &target, &mask, &s.quantiles)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        for _ in 0..60 {
            let loss = pinball(&net.forward(&x).unwrap(), &target, &mask, &s.quantiles).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        let loss1 = pinball(&net.forward(&x).unwrap(), &target, &mask, &s.quantiles)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(loss1 < loss0 * 0.5, "{loss0} -> {loss1}");
    }
}
