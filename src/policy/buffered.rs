//! `buffered`: `ceil(yhat · (1 + margin) / capacity)`.

use super::spec::{Band, Check, Knob, PolicyType, Settings};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Buffered {
    /// The share added to the median (config `margin:`, flag `--margin`).
    pub margin: f64,
}

impl Default for Buffered {
    fn default() -> Self {
        Buffered { margin: 0.2 }
    }
}

fn check_margin(m: f64) -> Option<String> {
    (!(m.is_finite() && m >= 0.0)).then(|| format!("must be 0 or more, got {m}"))
}

impl PolicyType for Buffered {
    const NAME: &'static str = "buffered";
    const CHECKS: &'static [Check] = &[Check {
        key: "margin",
        check: check_margin,
    }];
    const KNOB: Option<Knob> = Some(Knob {
        key: "margin",
        short: "margin",
        idle: 0.0,
    });
    const TUNE_SLOT: Option<usize> = Some(1);

    fn from_settings(get: Settings<'_>) -> Self {
        get("margin").map_or_else(Self::default, |margin| Buffered { margin })
    }

    fn load(&self, band: &Band) -> f64 {
        band.yhat * (1.0 + self.margin)
    }

    fn knob_value(&self) -> f64 {
        self.margin
    }

    /// 0 to 0.5, by 0.01.
    fn from_unit(x: f64) -> Self {
        Buffered {
            margin: ((0.5 * x) * 100.0).round() / 100.0,
        }
    }

    fn sweep() -> Vec<Self> {
        [0.0, 0.1, 0.2, 0.3]
            .into_iter()
            .map(|margin| Buffered { margin })
            .collect()
    }
}
