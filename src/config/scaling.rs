//! `scaling:` targets: which series drives which workload's replica recommendation, and how.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::PromDuration;
use super::selector::Selector;
use crate::policy::Buffered;
pub use crate::policy::Policy;

/// Whether a target's recommendation is meant to be acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalingMode {
    /// Exported and served to KEDA.
    #[default]
    Active,
    /// Computed and exported with `mode="observe"`, refused to KEDA: to watch what promcast
    /// would do before letting it.
    Observe,
}

impl ScalingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalingMode::Active => "active",
            ScalingMode::Observe => "observe",
        }
    }
}

/// Which part of the forecast a predictive policy sizes for, counted from the newest
/// observed bucket; `lead` is the pod start-up in steps (when replicas asked for now are
/// ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sizing {
    /// The element-wise maximum of the band at every horizon up to `lead` (at least the
    /// first): a peak before the pods are ready counts.
    UpToLead,
    /// The band at `lead` (interpolated between horizons).
    AtLead,
    /// The maximum over `[lead, lead + peak_window]`: the peak the pods asked for now will
    /// serve until the next decision has its own pods ready.
    #[default]
    Peak,
}

impl Sizing {
    pub const ALL: [Sizing; 3] = [Sizing::UpToLead, Sizing::AtLead, Sizing::Peak];

    pub fn as_str(self) -> &'static str {
        match self {
            Sizing::UpToLead => "up_to_lead",
            Sizing::AtLead => "at_lead",
            Sizing::Peak => "peak",
        }
    }
}

/// How a predictive policy lets replicas go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScaleIn {
    /// Only to the highest recommendation of the last `scale_down_stabilization` (what the
    /// HPA does against noise).
    #[default]
    Window,
    /// As soon as the band's policy load over the next `lead + scale_down_stabilization`
    /// stays below what fewer replicas serve: the band sizes the noise directly.
    Forecast,
}

impl ScaleIn {
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleIn::Window => "window",
            ScaleIn::Forecast => "forecast",
        }
    }
}

/// Parameters of one scaling target's policy: the policy with its own parameters, and what
/// every policy shares.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyParams {
    pub policy: Policy,
    /// Load one replica serves at full utilisation (the series' units).
    pub capacity: f64,
    /// The share of `capacity` a replica is sized for: replicas = load / (capacity × U).
    pub target_utilization: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub sizing: Sizing,
    /// `peak`'s window after the lead time.
    pub peak_window: Duration,
    pub scale_in: ScaleIn,
    /// The scale-in window (`window`) or the look-ahead beyond the lead time (`forecast`).
    pub stabilization: Duration,
    /// `desired = max(reactive, predictive)`: never fewer replicas than the observed load
    /// needs. Off, the forecast alone decides (and can save what the reactive part holds).
    pub reactive_floor: bool,
}

impl PolicyParams {
    /// The load one replica is sized for.
    pub fn sized_capacity(&self) -> f64 {
        (self.capacity * self.target_utilization).max(f64::MIN_POSITIVE)
    }
}

/// One target as written in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingSection {
    /// The `target` label value and the name KEDA asks for.
    pub name: String,
    /// Selector that must match exactly one forecast series.
    pub series: String,
    /// Series units one replica serves at its target load.
    pub capacity_per_replica: f64,
    #[serde(default = "default_min_replicas")]
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Pod start-up time: the decision is for now + lead_time.
    #[serde(default = "default_lead_time")]
    pub lead_time: PromDuration,
    /// The policy's name; its parameters are the keys below (`margin`, `quantile`,
    /// `max_step`), each read by the policy it belongs to.
    #[serde(default = "default_policy")]
    pub policy: Policy,
    #[serde(default = "default_margin")]
    pub margin: f64,
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    #[serde(default = "default_max_step")]
    pub max_step: u32,
    #[serde(default = "default_stabilization")]
    pub scale_down_stabilization: PromDuration,
    /// The share of `capacity_per_replica` a replica is sized for (1: `capacity_per_replica`
    /// is already the load a replica should carry).
    #[serde(default = "default_utilization")]
    pub target_utilization: f64,
    #[serde(default)]
    pub sizing: Sizing,
    #[serde(default = "default_peak_window")]
    pub peak_window: PromDuration,
    #[serde(default)]
    pub scale_in: ScaleIn,
    #[serde(default = "default_reactive_floor")]
    pub reactive_floor: bool,
    #[serde(default)]
    pub mode: ScalingMode,
}

fn default_utilization() -> f64 {
    1.0
}
fn default_peak_window() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}
fn default_reactive_floor() -> bool {
    true
}
fn default_min_replicas() -> u32 {
    1
}
fn default_lead_time() -> PromDuration {
    PromDuration(Duration::from_secs(120))
}
// The defaults are what the frontiers on the shared traces show best as a drop-in for an HPA
// at the same target utilisation (docs/AUTOSCALING.md): cheaper and less unserved demand.
fn default_policy() -> Policy {
    Policy::Buffered(Buffered::default())
}
fn default_margin() -> f64 {
    0.2
}
fn default_quantile() -> f64 {
    0.9
}
fn default_max_step() -> u32 {
    2
}
fn default_stabilization() -> PromDuration {
    PromDuration(Duration::from_secs(120))
}

impl ScalingSection {
    /// The policies' parameters by key, as [`Policy::configured`] and the checks read them.
    fn settings(&self) -> impl Fn(&str) -> Option<f64> + '_ {
        move |key| match key {
            "margin" => Some(self.margin),
            "quantile" => Some(self.quantile),
            "max_step" => Some(self.max_step as f64),
            "static_replicas" => Some(self.min_replicas as f64),
            _ => None,
        }
    }
}

/// A validated target.
#[derive(Debug, Clone)]
pub struct ScalingSpec {
    pub name: Arc<str>,
    pub selector: Selector,
    pub params: PolicyParams,
    pub lead_time: Duration,
    pub scale_down_stabilization: Duration,
    pub mode: ScalingMode,
}

/// A name usable as a label value, in a KEDA metric name and in a URL without escaping.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(super) fn validate(
    sections: &[ScalingSection],
    problem: &mut impl FnMut(String, String),
) -> Vec<ScalingSpec> {
    let mut out = Vec::with_capacity(sections.len());
    for (i, t) in sections.iter().enumerate() {
        let at = |key: &str| format!("scaling[{i}].{key}");
        let mut ok = true;
        let mut bad = |key: &str, message: String| {
            problem(at(key), message);
            ok = false;
        };
        if !valid_name(&t.name) {
            bad(
                "name",
                format!(
                    "{:?}: 1 to 63 characters of letters, digits, '-', '_' and '.'",
                    t.name
                ),
            );
        } else if sections[..i].iter().any(|o| o.name == t.name) {
            bad("name", format!("{:?} is used by an earlier target", t.name));
        }
        let selector = match Selector::parse(&t.series) {
            Ok(s) => Some(s),
            Err(e) => {
                bad("series", e.to_string());
                None
            }
        };
        if !(t.capacity_per_replica.is_finite() && t.capacity_per_replica > 0.0) {
            bad(
                "capacity_per_replica",
                format!("must be a positive number, got {}", t.capacity_per_replica),
            );
        }
        if t.max_replicas == 0 {
            bad("max_replicas", "must be at least 1".into());
        } else if t.min_replicas > t.max_replicas {
            bad(
                "min_replicas",
                format!(
                    "{} is above max_replicas ({})",
                    t.min_replicas, t.max_replicas
                ),
            );
        }
        if !t.policy.for_agent() {
            bad(
                "policy",
                format!(
                    "`{}` is a simulation baseline; the agent offers {}",
                    t.policy,
                    Policy::agent_names()
                ),
            );
        }
        let settings = t.settings();
        for c in Policy::checks() {
            if let Some(message) = settings(c.key).and_then(c.check) {
                bad(c.key, message);
            }
        }
        if !(t.target_utilization > 0.0 && t.target_utilization <= 1.0) {
            bad(
                "target_utilization",
                format!("must be in (0, 1], got {}", t.target_utilization),
            );
        }
        if let (true, Some(selector)) = (ok, selector) {
            out.push(ScalingSpec {
                name: Arc::from(t.name.as_str()),
                selector,
                params: PolicyParams {
                    policy: t.policy.configured(&settings),
                    capacity: t.capacity_per_replica,
                    target_utilization: t.target_utilization,
                    min_replicas: t.min_replicas,
                    max_replicas: t.max_replicas,
                    sizing: t.sizing,
                    peak_window: t.peak_window.0,
                    scale_in: t.scale_in,
                    stabilization: t.scale_down_stabilization.0,
                    reactive_floor: t.reactive_floor,
                },
                lead_time: t.lead_time.0,
                scale_down_stabilization: t.scale_down_stabilization.0,
                mode: t.mode,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "forecast:\n  - selector: '{__name__=~\".+:.+\"}'\n";

    fn problems(scaling: &str) -> Vec<String> {
        match Config::from_yaml(&format!("{BASE}scaling:\n{scaling}"), "t.yml", None) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_valid_target_and_its_defaults() {
        let c = Config::from_yaml(
            &format!(
                "{BASE}scaling:\n  - name: web\n    series: 'a:b{{job=\"web\"}}'\n    capacity_per_replica: 100\n    max_replicas: 10\n"
            ),
            "t.yml",
            None,
        )
        .unwrap();
        let t = &c.scaling[0];
        assert_eq!(&*t.name, "web");
        assert_eq!(t.params.min_replicas, 1);
        assert_eq!(
            t.params.policy,
            super::Policy::Buffered(crate::policy::Buffered { margin: 0.2 })
        );
        assert_eq!(t.params.sizing, super::Sizing::Peak);
        assert_eq!(t.params.scale_in, super::ScaleIn::Window);
        assert!(t.params.reactive_floor);
        assert_eq!(t.params.target_utilization, 1.0);
        assert_eq!(t.lead_time.as_secs(), 120);
        assert_eq!(t.scale_down_stabilization.as_secs(), 120);
        assert_eq!(t.mode, super::ScalingMode::Active);
    }

    #[test]
    fn every_bad_line_is_named_with_its_path() {
        let p = problems(
            "  - name: 'web app'\n    series: 'a:b{'\n    capacity_per_replica: 0\n    min_replicas: 5\n    max_replicas: 3\n    policy: static\n    quantile: 1.5\n",
        );
        for key in [
            "scaling[0].name",
            "scaling[0].series",
            "scaling[0].capacity_per_replica",
            "scaling[0].min_replicas",
            "scaling[0].policy",
            "scaling[0].quantile",
        ] {
            assert!(p.iter().any(|l| l.contains(key)), "{key} in {p:?}");
        }
        let p = problems(
            "  - { name: web, series: 'a:b', capacity_per_replica: 1, max_replicas: 2 }\n  - { name: web, series: 'a:c', capacity_per_replica: 1, max_replicas: 2 }\n",
        );
        assert!(p.iter().any(|l| l.contains("scaling[1].name")), "{p:?}");
        let p = problems("  - { name: web, series: 'a:b', capacity_per_replica: 1, max_replicas: 2, mode: maybe }\n");
        assert!(p.iter().any(|l| l.contains("scaling")), "{p:?}");
        let p = problems("  - { name: web, series: 'a:b', capacity_per_replica: 1, max_replicas: 2, target_utilization: 1.5 }\n");
        assert!(
            p.iter()
                .any(|l| l.contains("scaling[0].target_utilization")),
            "{p:?}"
        );
        let p = problems("  - { name: web, series: 'a:b', capacity_per_replica: 1, max_replicas: 2, sizing: biggest }\n");
        assert!(p.iter().any(|l| l.contains("scaling[0].sizing")), "{p:?}");
        let p = problems("  - { name: web, series: 'a:b', capacity_per_replica: 1, max_replicas: 2, scale_in: never }\n");
        assert!(p.iter().any(|l| l.contains("scaling[0].scale_in")), "{p:?}");
    }
}
