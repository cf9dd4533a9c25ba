//! `quantile`: `ceil(q-quantile of the forecast / capacity)`: confidence-aware.

use super::spec::{Band, Check, Knob, PolicyType, Settings};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantile {
    /// The band's level it sizes for (config `quantile:`, flag `--quantile`).
    pub q: f64,
}

impl Default for Quantile {
    fn default() -> Self {
        Quantile { q: 0.9 }
    }
}

fn check_q(q: f64) -> Option<String> {
    (!(q > 0.0 && q < 1.0)).then(|| format!("must lie strictly between 0 and 1, got {q}"))
}

impl PolicyType for Quantile {
    const NAME: &'static str = "quantile";
    const CHECKS: &'static [Check] = &[Check {
        key: "quantile",
        check: check_q,
    }];
    const KNOB: Option<Knob> = Some(Knob {
        key: "quantile",
        short: "q",
        idle: 0.9,
    });
    const TUNE_SLOT: Option<usize> = Some(0);

    fn from_settings(get: Settings<'_>) -> Self {
        get("quantile").map_or_else(Self::default, |q| Quantile { q })
    }

    fn load(&self, band: &Band) -> f64 {
        band.quantile(self.q)
    }

    fn knob_value(&self) -> f64 {
        self.q
    }

    /// 0.5 to 0.97, by 0.01.
    fn from_unit(x: f64) -> Self {
        Quantile {
            q: ((0.5 + 0.47 * x) * 100.0).round() / 100.0,
        }
    }

    fn sweep() -> Vec<Self> {
        [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
            .into_iter()
            .map(|q| Quantile { q })
            .collect()
    }
}
