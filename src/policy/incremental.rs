//! `incremental`: towards `ceil(yhat / capacity)` by at most `max_step` replicas per decision.

use super::spec::{Check, PolicyType, Settings};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Incremental {
    /// The largest change per decision (config `max_step:`, flag `--max-step`).
    pub max_step: u32,
}

impl Default for Incremental {
    fn default() -> Self {
        Incremental { max_step: 2 }
    }
}

fn check_max_step(n: f64) -> Option<String> {
    (n < 1.0).then(|| "must be at least 1".to_string())
}

impl PolicyType for Incremental {
    const NAME: &'static str = "incremental";
    const CHECKS: &'static [Check] = &[Check {
        key: "max_step",
        check: check_max_step,
    }];

    fn from_settings(get: Settings<'_>) -> Self {
        get("max_step").map_or_else(Self::default, |n| Incremental {
            max_step: n as u32,
        })
    }

    fn replicas(&self, target: f64, current: u32) -> f64 {
        let step = self.max_step.max(1) as f64;
        let cur = current as f64;
        cur + (target.ceil() - cur).clamp(-step, step)
    }
}
