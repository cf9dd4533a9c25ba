//! What every policy type implements ([`PolicyType`]), and what it is handed: the forecast
//! band at one horizon ([`Band`]). The list in `mod.rs` dispatches to these.

use std::fmt::Debug;

use crate::stats::normal_quantile;

/// The forecast band at one horizon, with the quantile levels of its bounds (what `scale`
/// reads off a `snapshot::Point` and its forecast's quantiles).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub yhat: f64,
    pub lower: f64,
    pub upper: f64,
    pub lower_q: f64,
    pub upper_q: f64,
}

impl Band {
    /// The load the band implies at quantile `q` (≥ 0.5): the median plus the upper
    /// half-band scaled by the normal quantile ratio `z(q) / z(upper)`, so any level can be
    /// asked of a band given at `upper` (e.g. 0.95 of a 0.1/0.9 band). Below 0.5 the lower
    /// half is used.
    pub fn quantile(&self, q: f64) -> f64 {
        if (q - 0.5).abs() < 1e-12 {
            return self.yhat;
        }
        if q > 0.5 {
            let z = normal_quantile(q) / normal_quantile(self.upper_q);
            self.yhat + (self.upper - self.yhat) * z
        } else {
            let z = normal_quantile(q) / normal_quantile(self.lower_q);
            self.yhat - (self.yhat - self.lower) * z
        }
    }
}

/// A policy's one tunable knob: how `tune`, `simulate --frontier` and `best.yaml` name it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knob {
    /// The config key (`best.yaml`'s line) and `trials.csv`'s column.
    pub key: &'static str,
    /// The `k=v` label in tune's and the frontier's parameter strings (`q=0.9`).
    pub short: &'static str,
    /// What `trials.csv` shows in this column for the other policies' trials.
    pub idle: f64,
}

/// One parameter a config file gives a policy, and its check (`None`: fine; else the
/// message the config problem is reported with at `scaling[i].<key>`).
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub key: &'static str,
    pub check: fn(f64) -> Option<String>,
}

/// A setting by its key (`margin`, `quantile`, `max_step`, `static_replicas`): from the
/// config file or from `simulate`'s flags.
pub type Settings<'a> = &'a dyn Fn(&str) -> Option<f64>;

/// One scaling policy: its parameters are the type's fields.
pub trait PolicyType: Sized + Copy + Debug + PartialEq + Default {
    /// The name in configs, flags and output.
    const NAME: &'static str;
    /// Whether it reads the forecast (else: only the observed load, or nothing).
    const PREDICTIVE: bool = true;
    /// Whether the agent offers it (else: a simulation baseline).
    const AGENT: bool = true;
    /// The config keys of its parameters, checked whatever the policy (as the agent always
    /// did).
    const CHECKS: &'static [Check] = &[];
    /// Its tunable knob, if any.
    const KNOB: Option<Knob> = None;
    /// Its place among `tune`'s policies (the first search coordinate picks one), if tuned.
    const TUNE_SLOT: Option<usize> = None;

    /// The policy with its parameters from `get` (absent: the type's default).
    fn from_settings(_get: Settings<'_>) -> Self {
        Self::default()
    }

    /// The load it plans for from the band: the median unless it says otherwise.
    fn load(&self, band: &Band) -> f64 {
        band.yhat
    }

    /// Replicas from `target` (its load over the sized capacity) and the replicas running
    /// now: `target` unless it says otherwise.
    fn replicas(&self, target: f64, _current: u32) -> f64 {
        target
    }

    /// A fixed count, whatever the load.
    fn fixed(&self) -> Option<u32> {
        None
    }

    /// [`Self::KNOB`]'s value.
    fn knob_value(&self) -> f64 {
        0.0
    }

    /// The policy at a tune coordinate in `[0, 1]` ([`Self::TUNE_SLOT`]).
    fn from_unit(_x: f64) -> Self {
        Self::default()
    }

    /// The settings `simulate --frontier` sweeps (empty: only the configured one).
    fn sweep() -> Vec<Self> {
        Vec::new()
    }
}
