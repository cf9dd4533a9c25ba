//! A small Gaussian-process regression and expected improvement, for `promcast tune`'s
//! Bayesian optimisation: tens of trials in a handful of dimensions, where a dense Cholesky
//! of an n × n kernel matrix is all it takes. Inputs live in `[0, 1]^d`; outputs are
//! standardised inside. Deterministic: no randomness here.

/// Squared-exponential kernel with one length scale, fitted by the best log marginal
/// likelihood over a small grid of length scales and noise levels.
#[derive(Debug, Clone)]
pub struct Gp {
    x: Vec<Vec<f64>>,
    /// `K⁻¹ (y − mean) / std` via the Cholesky factor.
    alpha: Vec<f64>,
    /// Lower-triangular Cholesky factor of `K + σ²I`, row-major n × n.
    chol: Vec<f64>,
    mean: f64,
    std: f64,
    length: f64,
}

const LENGTHS: [f64; 7] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2];
const NOISES: [f64; 3] = [1e-6, 1e-3, 1e-1];

fn kernel(a: &[f64], b: &[f64], length: f64) -> f64 {
    let d2: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (-0.5 * d2 / (length * length)).exp()
}

/// Cholesky factor of a symmetric positive-definite matrix (row-major n × n), or `None`.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves `L z = b` (forward) then `Lᵀ x = z` (backward).
fn solve(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut z = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            z[i] -= l[i * n + k] * z[k];
        }
        z[i] /= l[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= l[k * n + i] * z[k];
        }
        z[i] /= l[i * n + i];
    }
    z
}

impl Gp {
    /// Fits `y` at `x` (at least one point). Returns `None` only if no grid point gives a
    /// positive-definite kernel matrix.
    pub fn fit(x: &[Vec<f64>], y: &[f64]) -> Option<Gp> {
        let n = x.len();
        if n == 0 || n != y.len() {
            return None;
        }
        let mean = y.iter().sum::<f64>() / n as f64;
        let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let std = var.sqrt().max(1e-12);
        let ys: Vec<f64> = y.iter().map(|v| (v - mean) / std).collect();
        let mut best: Option<(f64, Gp)> = None;
        for &length in &LENGTHS {
            for &noise in &NOISES {
                let mut k = vec![0.0; n * n];
                for i in 0..n {
                    for j in 0..n {
                        k[i * n + j] = kernel(&x[i], &x[j], length);
                    }
                    k[i * n + i] += noise;
                }
                let Some(chol) = cholesky(&k, n) else {
                    continue;
                };
                let alpha = solve(&chol, n, &ys);
                let fit: f64 = ys.iter().zip(&alpha).map(|(a, b)| a * b).sum();
                let logdet: f64 = (0..n).map(|i| chol[i * n + i].ln()).sum();
                let lml = -0.5 * fit - logdet;
                if best.as_ref().is_none_or(|(b, _)| lml > *b) {
                    best = Some((
                        lml,
                        Gp {
                            x: x.to_vec(),
                            alpha,
                            chol,
                            mean,
                            std,
                            length,
                        },
                    ));
                }
            }
        }
        best.map(|(_, gp)| gp)
    }

    /// Predictive mean and standard deviation at `p`, in the units of `y`.
    pub fn predict(&self, p: &[f64]) -> (f64, f64) {
        let n = self.x.len();
        let ks: Vec<f64> = self.x.iter().map(|xi| kernel(xi, p, self.length)).collect();
        let mu: f64 = ks.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        // v = L⁻¹ k*; var = k(p, p) − vᵀv
        let mut v = ks;
        for i in 0..n {
            for k in 0..i {
                v[i] -= self.chol[i * n + k] * v[k];
            }
            v[i] /= self.chol[i * n + i];
        }
        let var = (1.0 - v.iter().map(|x| x * x).sum::<f64>()).max(1e-12);
        (self.mean + self.std * mu, self.std * var.sqrt())
    }
}

/// Standard normal density and distribution function.
fn phi(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn big_phi(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// erf (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

/// Expected improvement below `best` of a normal prediction `(mu, sigma)`.
pub fn expected_improvement(mu: f64, sigma: f64, best: f64) -> f64 {
    if sigma <= 0.0 {
        return (best - mu).max(0.0);
    }
    let z = (best - mu) / sigma;
    (best - mu) * big_phi(z) + sigma * phi(z)
}

/// Probability that a normal prediction `(mu, sigma)` lies at or below `limit`.
pub fn probability_below(mu: f64, sigma: f64, limit: f64) -> f64 {
    if sigma <= 0.0 {
        return if mu <= limit { 1.0 } else { 0.0 };
    }
    big_phi((limit - mu) / sigma)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_a_smooth_function_and_knows_where_it_does_not_know() {
        let f = |x: f64| (6.0 * x).sin() + 0.5 * x;
        let xs: Vec<Vec<f64>> = (0..8).map(|i| vec![i as f64 / 7.0]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| f(x[0])).collect();
        let gp = Gp::fit(&xs, &ys).unwrap();
        for t in [0.07, 0.33, 0.61, 0.93] {
            let (mu, sd) = gp.predict(&[t]);
            assert!((mu - f(t)).abs() < 0.1, "at {t}: {mu} vs {}", f(t));
            assert!(sd < 0.2, "at {t}: sd {sd}");
        }
        let (_, near) = gp.predict(&[0.0]);
        let (_, far) = gp.predict(&[3.0]);
        assert!(far > 10.0 * near, "{near} {far}");
    }

    #[test]
    fn acquisition_by_hand() {
        assert!((big_phi(0.0) - 0.5).abs() < 1e-9);
        assert!((big_phi(1.959_964) - 0.975).abs() < 1e-6);
        // At the incumbent with some uncertainty: sigma * phi(0).
        assert!((expected_improvement(1.0, 2.0, 1.0) - 2.0 * phi(0.0)).abs() < 1e-12);
        assert_eq!(expected_improvement(3.0, 0.0, 1.0), 0.0);
        assert!((probability_below(0.0, 1.0, 0.0) - 0.5).abs() < 1e-9);
    }
}
