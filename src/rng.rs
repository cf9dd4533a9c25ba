//! The one deterministic generator every seeded part of promcast draws from: the isolation
//! forests' subsamples and hyperplanes ([`crate::anomaly::eif`]), the pooled anomaly
//! reservoir's sampling, the fixture model's weights, `promcast train`'s initialisation and
//! sampling, `tune`'s proposals, and the made-up inputs of unit tests that need no real
//! trace. SplitMix64 (Steele, Lea and Flood 2014): one `u64` of state, a Weyl step and a
//! bijective mix; the same seed gives the same stream on every machine.

/// SplitMix64: small, fast, and good enough for sampling and random hyperplanes.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`; the bias of the modulo is below 2^-50 for our `n`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[-scale, scale)`, as `f32` (weights).
    pub fn uniform(&mut self, scale: f64) -> f32 {
        ((2.0 * self.unit() - 1.0) * scale) as f32
    }

    pub fn uniform_vec(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform(scale)).collect()
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
