//! Anomaly likelihood: how unusual a series' recent raw anomaly scores are against that
//! series' own score distribution (after Numenta's HTM "anomaly likelihood"). A forest score
//! of 0.7 is routine for a noisy series and alarming for a quiet one; the likelihood turns
//! the raw score into the tail probability of its short-window mean under a normal fitted to
//! the series' own (short-window mean) scores, then log-scales it so that 0.999 and 0.99999
//! differ: `ln(1.0000000001 − L) / ln(1e-10)`, 0.5 at L = 0.99999.
//!
//! O(1) state per series: the mean and variance are exponentially weighted (about the last
//! `HALF_LIFE` points), and the short window is a small ring. Until `LEARNING` scores were
//! seen the likelihood is 0.5 (log 0.03): not enough to know.

/// Points in the short-window mean.
pub const SHORT: usize = 10;
/// Scores seen before the likelihood says anything.
pub const LEARNING: u32 = 288;
/// Half-life, in points, of the distribution's weights.
pub const HALF_LIFE: f64 = 1440.0;
/// Smallest standard deviation the distribution assumes (scores are in [0, 1]).
const MIN_STD: f64 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Likelihood {
    recent: [f32; SHORT],
    /// Scores seen (saturating).
    seen: u32,
    mean: f64,
    var: f64,
}

impl Default for Likelihood {
    fn default() -> Self {
        Self::new()
    }
}

impl Likelihood {
    pub const fn new() -> Self {
        Self {
            recent: [f32::NAN; SHORT],
            seen: 0,
            mean: 0.0,
            var: 0.0,
        }
    }

    /// Takes the newest raw score (0..1) and returns the log-likelihood (0..1) of the
    /// short-window mean ending at it, judged against the distribution before it.
    pub fn update(&mut self, score: f64) -> f64 {
        if !score.is_finite() {
            return 0.0;
        }
        self.recent[self.seen as usize % SHORT] = score as f32;
        self.seen = self.seen.saturating_add(1);
        let n = (self.seen as usize).min(SHORT);
        let avg = self.recent[..n].iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let likelihood = if self.seen <= LEARNING {
            0.5
        } else {
            let std = self.var.sqrt().max(MIN_STD);
            // The upper tail: a quieter window than usual is not an anomaly of this series.
            let z = (avg - self.mean) / std;
            1.0 - 0.5 * erfc(z / std::f64::consts::SQRT_2)
        };
        // Fold the window mean into the distribution (after judging it).
        let alpha = if self.seen <= LEARNING {
            1.0 / self.seen as f64
        } else {
            1.0 - 0.5f64.powf(1.0 / HALF_LIFE)
        };
        let d = avg - self.mean;
        self.mean += alpha * d;
        self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        log_likelihood(likelihood)
    }
}

/// `ln(1.0000000001 − L) / ln(1e-10)`: 0 for L = 0, 0.5 for L = 0.99999, 1 for L = 1.
pub fn log_likelihood(l: f64) -> f64 {
    ((1.000_000_000_1 - l).ln() / (1e-10f64).ln()).clamp(0.0, 1.0)
}

/// The tail probability `L` whose [`log_likelihood`] is `ll` (its inverse): 0.99999 for 0.5.
pub fn tail_probability(ll: f64) -> f64 {
    (1.000_000_000_1 - (ll * (1e-10f64).ln()).exp()).clamp(0.0, 1.0)
}

/// The complementary error function (Numerical Recipes' erfcc: |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 2e-7, "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn log_scale() {
        assert_eq!(log_likelihood(0.0), 0.0);
        assert!((log_likelihood(0.99999) - 0.5).abs() < 1e-4);
        assert!(log_likelihood(0.999) < log_likelihood(0.99999));
        assert!((log_likelihood(1.0) - 1.0).abs() < 1e-3);
        for l in [0.0, 0.5, 0.968, 0.99, 0.99999] {
            assert!(
                (tail_probability(log_likelihood(l)) - l).abs() < 1e-9,
                "{l}"
            );
        }
    }

    #[test]
    fn routine_scores_stay_low_and_a_sustained_jump_rises() {
        let mut l = Likelihood::new();
        // A noisy series' routine scores: 0.45..0.55.
        let mut rng = crate::rng::SplitMix64::new(1);
        let mut routine = || 0.45 + 0.1 * rng.unit();
        let mut worst = 0.0f64;
        for i in 0..3000 {
            let v = l.update(routine());
            if i > LEARNING as usize {
                worst = worst.max(v);
            }
        }
        assert!(worst < 0.5, "routine scores reached {worst}");
        // Five scores of 0.8 in a row: the window mean leaves the distribution.
        let peak = (0..5).map(|_| l.update(0.8)).fold(0.0, f64::max);
        assert!(peak > 0.5, "{peak}");
        // Nothing before the learning period.
        let mut fresh = Likelihood::new();
        assert!((0..LEARNING).all(|_| fresh.update(0.99) < 0.1));
    }
}
