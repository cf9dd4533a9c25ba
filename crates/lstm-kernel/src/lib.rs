//! promcast's CPU kernel for its own LSTM forecaster: one LSTM layer over a window of
//! `[window, features]` inputs, then promcast's head (an MLP over the last hidden state, the
//! last value and the seasonal leads, and non-crossing quantiles: the median plus the last
//! value, the other quantiles offset from it by cumulative softplus terms).
//!
//! promcast (`src/forecast/neural/native.rs`) recognises the graphs `promcast train` exports
//! and hands their weights here; tract runs every other graph. Its own crate so that debug
//! builds (the test suite, which runs the agent) still optimise it: the root's
//! `[profile.dev.package.promcast-lstm-kernel]` does.
//!
//! Each time step is one matrix product of `[rows, F + H]` (the step's inputs beside the
//! hidden state) by the stacked gate weights (ndarray's `general_mat_mul`: matrixmultiply's
//! sgemm, which picks AVX/FMA/AVX-512 at run time); the gates' sigmoid and tanh are a rational
//! approximation in plain loops the compiler vectorises.

#![forbid(unsafe_code)]

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Rows per matrix product: the gates of 256 rows (128 KiB at H = 32) stay in L2.
const BLOCK_ROWS: usize = 256;

/// The weights and shapes of a network, in ONNX's layouts (what the exporter writes).
#[derive(Debug, Clone)]
pub struct Weights {
    pub window: usize,
    pub features: usize,
    pub hidden: usize,
    /// Horizons and quantiles of the output `[horizons, quantiles]`.
    pub horizons: usize,
    pub quantiles: usize,
    /// ONNX LSTM `W` `[4H, F]`, `R` `[4H, H]` and `B` `[8H]` (`[Wb; Rb]`), gates i, o, f, c.
    pub w: Vec<f32>,
    pub r: Vec<f32>,
    pub b: Vec<f32>,
    /// The head: `z = [h, x_last, seas, smask]` (`H + 1 + 2K`), `W1` `[Z, head]`, `b1`,
    /// `W2` `[head, K·Q]`, `b2`.
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
    /// `[Q, Q]`: quantile `qo`'s offset is `Σ_qi softplus(r[qi]) · offsets_t[qi, qo]`.
    pub offsets_t: Vec<f32>,
    /// Window position of each horizon's seasonal lead (`K` values).
    pub positions: Vec<usize>,
    /// Feature indices of the value, the seasonal lead and its mask.
    pub value_feature: usize,
    pub lead_feature: usize,
    pub mask_feature: usize,
    /// The median's index among the quantiles.
    pub mid: usize,
}

/// A network ready to run.
#[derive(Debug, Clone)]
pub struct Network {
    shape: Weights,
    /// `[F + H, 4H]`: input weights over recurrent weights.
    w_cat: Vec<f32>,
    /// `[4H]`: `Wb + Rb`.
    bias: Vec<f32>,
}

impl Network {
    /// Checks every length and index of `w` and lays the gate weights out for the kernel.
    pub fn new(w: Weights) -> Result<Self, String> {
        let (f, h, k, q) = (w.features, w.hidden, w.horizons, w.quantiles);
        if w.window == 0 || f == 0 || h == 0 || k == 0 || q == 0 {
            return Err("an empty dimension".into());
        }
        if w.b1.is_empty() {
            return Err("an empty head".into());
        }
        let head = w.b1.len();
        let z = h + 1 + 2 * k;
        for (name, got, want) in [
            ("W", w.w.len(), 4 * h * f),
            ("R", w.r.len(), 4 * h * h),
            ("B", w.b.len(), 8 * h),
            ("W1", w.w1.len(), z * head),
            ("W2", w.w2.len(), head * k * q),
            ("b2", w.b2.len(), k * q),
            ("offsets", w.offsets_t.len(), q * q),
            ("positions", w.positions.len(), k),
        ] {
            if got != want {
                return Err(format!("{name} has {got} values, expected {want}"));
            }
        }
        if w.positions.iter().any(|&p| p >= w.window) {
            return Err("a seasonal position outside the window".into());
        }
        if [w.value_feature, w.lead_feature, w.mask_feature]
            .iter()
            .any(|&i| i >= f)
            || w.mid >= q
        {
            return Err("a feature or quantile index out of range".into());
        }
        let mut w_cat = vec![0f32; (f + h) * 4 * h];
        for g in 0..4 * h {
            for j in 0..f {
                w_cat[j * 4 * h + g] = w.w[g * f + j];
            }
            for j in 0..h {
                w_cat[(f + j) * 4 * h + g] = w.r[g * h + j];
            }
        }
        let bias = (0..4 * h).map(|g| w.b[g] + w.b[4 * h + g]).collect();
        Ok(Network {
            shape: w,
            w_cat,
            bias,
        })
    }

    /// The weights and shapes it was built from.
    pub fn weights(&self) -> &Weights {
        &self.shape
    }

    /// Runs `rows` rows of `input` (`[rows, window, features]`); `out` is cleared and filled
    /// with `rows × horizons × quantiles` values.
    pub fn run(&self, rows: usize, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        let s = &self.shape;
        let row_len = s.window * s.features;
        if input.len() != rows * row_len {
            return Err(format!(
                "input has {} values, expected {rows} x {} x {}",
                input.len(),
                s.window,
                s.features
            ));
        }
        let out_row = s.horizons * s.quantiles;
        out.clear();
        out.resize(rows * out_row, 0.0);
        let mut scratch = Scratch::default();
        for (block, chunk) in out.chunks_mut(BLOCK_ROWS * out_row).enumerate() {
            let start = block * BLOCK_ROWS;
            let n = chunk.len() / out_row;
            self.run_block(
                n,
                &input[start * row_len..(start + n) * row_len],
                chunk,
                &mut scratch,
            );
        }
        Ok(())
    }

    fn run_block(&self, n: usize, input: &[f32], out: &mut [f32], s: &mut Scratch) {
        let p = &self.shape;
        let (w, f, h) = (p.window, p.features, p.hidden);
        let (k, q) = (p.horizons, p.quantiles);
        let g4 = 4 * h;
        let a_cols = f + h;
        let w_cat = ArrayView2::from_shape((a_cols, g4), &self.w_cat[..]).expect("sized in new");
        s.a.clear();
        s.a.resize(n * a_cols, 0.0); // [x_t, h] per row; h starts at zero
        s.c.clear();
        s.c.resize(n * h, 0.0);
        s.gates.resize(n * g4, 0.0);
        for t in 0..w {
            for r in 0..n {
                let x = &input[(r * w + t) * f..][..f];
                s.a[r * a_cols..][..f].copy_from_slice(x);
            }
            // gates = [x_t, h] · W_cat (+ bias in the cell).
            let a = ArrayView2::from_shape((n, a_cols), &s.a[..n * a_cols]).expect("sized above");
            let mut gates =
                ArrayViewMut2::from_shape((n, g4), &mut s.gates[..n * g4]).expect("sized above");
            general_mat_mul(1.0, &a, &w_cat, 0.0, &mut gates);
            for r in 0..n {
                let g = &mut s.gates[r * g4..][..g4];
                let c = &mut s.c[r * h..][..h];
                let hs = &mut s.a[r * a_cols + f..][..h];
                cell(g, &self.bias, c, hs);
            }
        }
        // The head, row by row (a few percent of the recurrence's cost).
        s.z.resize(h + 1 + 2 * k, 0.0);
        s.hid.resize(p.b1.len(), 0.0);
        s.r.resize(k * q, 0.0);
        for r in 0..n {
            let row = &input[r * w * f..][..w * f];
            let x_last = row[(w - 1) * f + p.value_feature];
            s.z[..h].copy_from_slice(&s.a[r * a_cols + f..][..h]);
            s.z[h] = x_last;
            for (j, &pos) in p.positions.iter().enumerate() {
                s.z[h + 1 + j] = row[pos * f + p.lead_feature];
                s.z[h + 1 + k + j] = row[pos * f + p.mask_feature];
            }
            affine(&s.z, &p.w1, &p.b1, &mut s.hid);
            for v in s.hid.iter_mut() {
                *v = v.max(0.0);
            }
            affine(&s.hid, &p.w2, &p.b2, &mut s.r);
            let o = &mut out[r * k * q..][..k * q];
            for hz in 0..k {
                let rr = &s.r[hz * q..][..q];
                let base = rr[p.mid] + x_last;
                s.sp.clear();
                s.sp.extend(rr.iter().map(|&x| softplus(x)));
                for (qo, cell) in o[hz * q..][..q].iter_mut().enumerate() {
                    let spread: f32 = (s.sp.iter().enumerate())
                        .map(|(qi, &sp)| sp * p.offsets_t[qi * q + qo])
                        .sum();
                    *cell = spread + base;
                }
            }
        }
    }
}

/// Per-run buffers.
#[derive(Default)]
struct Scratch {
    a: Vec<f32>,
    c: Vec<f32>,
    gates: Vec<f32>,
    z: Vec<f32>,
    hid: Vec<f32>,
    r: Vec<f32>,
    sp: Vec<f32>,
}

/// One LSTM cell update (ONNX defaults: sigmoid gates, tanh cell and output, no peepholes):
/// `g` holds the pre-activations of the gates i, o, f, c without their bias. Each pass is a
/// plain loop over contiguous values, which the compiler vectorises.
#[inline]
fn cell(g: &mut [f32], bias: &[f32], c: &mut [f32], h_out: &mut [f32]) {
    let h = c.len();
    for (v, b) in g.iter_mut().zip(bias) {
        *v += b;
    }
    let (ifo, cand) = g.split_at_mut(3 * h);
    for v in ifo.iter_mut() {
        *v = sigmoid(*v);
    }
    for v in cand.iter_mut() {
        *v = tanh(*v);
    }
    let (i, rest) = ifo.split_at(h);
    let (o, f) = rest.split_at(h);
    for j in 0..h {
        c[j] = f[j] * c[j] + i[j] * cand[j];
    }
    for ((hj, &cj), &oj) in h_out.iter_mut().zip(c.iter()).zip(o) {
        *hj = oj * tanh(cj);
    }
}

/// `out = x · W + b` with `W` `[x.len(), out.len()]` row-major.
fn affine(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
    out.copy_from_slice(b);
    let n = out.len();
    for (i, &xi) in x.iter().enumerate() {
        for (o, &wij) in out.iter_mut().zip(&w[i * n..][..n]) {
            *o += xi * wij;
        }
    }
}

/// `ln(1 + e^x)`, without overflow.
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The logistic function through [`tanh`].
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    0.5 + 0.5 * tanh(0.5 * x)
}

/// tanh as a 13/6 rational function on [-7.9, 7.9] (Eigen's `ptanh_float` coefficients),
/// within 1e-6 of `f32::tanh` and branch-free, so loops over it vectorise.
#[inline]
pub fn tanh(x: f32) -> f32 {
    const A1: f32 = 4.893_524_5e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let p = x * p;
    let d = x2 * B6 + B4;
    let d = x2 * d + B2;
    let d = x2 * d + B0;
    p / d
}
