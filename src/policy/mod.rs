//! Scaling policies: how a forecast (or only the observed load) becomes replicas.
//!
//! Each policy is a type in its own file, carrying its own parameters, implementing
//! [`PolicyType`] (`spec.rs`): its name, whether it is predictive, the load it reads off a
//! forecast band, how that load becomes replicas where it differs, its config checks, its
//! `tune` knob and its `simulate --frontier` grid. The list below generates the [`Policy`]
//! enum (one variant per type, carrying its parameters) and the dispatch everything else
//! goes through: the config, `scale`'s scaler, and the offline tools.
//!
//! Adding a policy is its file and one line in the list (docs/ARCHITECTURE.md, "Adding a
//! scaling policy").
//! This module imports only `crate::stats`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod spec;
pub use spec::{Band, Check, Knob, PolicyType, Settings};

/// Generates the modules, [`Policy`] and its dispatch from `module::Type` lines.
macro_rules! policies {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        $(mod $module; pub use $module::$ty;)*

        /// A policy with its parameters.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum Policy {
            $($ty($ty)),*
        }

        impl Policy {
            /// Every policy's name, in the list's order.
            pub const ALL: &'static [&'static str] = &[$($ty::NAME),*];

            /// Every policy with its default parameters, in the list's order.
            pub fn all() -> Vec<Policy> {
                vec![$(Policy::$ty($ty::default())),*]
            }

            /// Policy `name` with its parameters from `get` (absent: its defaults).
            pub fn with_settings(name: &str, get: Settings<'_>) -> Option<Policy> {
                $(if name == $ty::NAME {
                    return Some(Policy::$ty($ty::from_settings(get)));
                })*
                None
            }

            /// Every policy's config checks, in the list's order.
            pub fn checks() -> impl Iterator<Item = &'static Check> {
                [$($ty::CHECKS),*].into_iter().flatten()
            }

            /// The tuned policies in their search order: knob, and the policy at a
            /// coordinate in `[0, 1]`.
            pub fn tuned() -> Vec<(Knob, fn(f64) -> Policy)> {
                let mut out: Vec<(usize, Knob, fn(f64) -> Policy)> = Vec::new();
                $(if let (Some(slot), Some(knob)) = ($ty::TUNE_SLOT, $ty::KNOB) {
                    let at: fn(f64) -> Policy = |x| Policy::$ty($ty::from_unit(x));
                    out.push((slot, knob, at));
                })*
                out.sort_by_key(|t| t.0);
                out.into_iter().map(|(_, k, f)| (k, f)).collect()
            }

            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Policy::$ty(_) => $ty::NAME),*
                }
            }

            pub fn is_predictive(&self) -> bool {
                match self {
                    $(Policy::$ty(_) => $ty::PREDICTIVE),*
                }
            }

            /// Whether the agent offers it (else: a simulation baseline).
            pub fn for_agent(&self) -> bool {
                match self {
                    $(Policy::$ty(_) => $ty::AGENT),*
                }
            }

            /// The load it plans for from `band`.
            pub fn load(&self, band: &Band) -> f64 {
                match self {
                    $(Policy::$ty(p) => p.load(band)),*
                }
            }

            /// Replicas from `target` (load / sized capacity) and the replicas running now.
            pub fn replicas(&self, target: f64, current: u32) -> f64 {
                match self {
                    $(Policy::$ty(p) => p.replicas(target, current)),*
                }
            }

            /// A fixed count, whatever the load (`static`).
            pub fn fixed(&self) -> Option<u32> {
                match self {
                    $(Policy::$ty(p) => p.fixed()),*
                }
            }

            /// Its tunable knob and the value it has here.
            pub fn knob(&self) -> Option<(Knob, f64)> {
                match self {
                    $(Policy::$ty(p) => $ty::KNOB.map(|k| (k, p.knob_value()))),*
                }
            }

            /// The settings `simulate --frontier` sweeps (empty: only this one).
            pub fn sweep(&self) -> Vec<Policy> {
                match self {
                    $(Policy::$ty(_) => $ty::sweep().into_iter().map(Policy::$ty).collect()),*
                }
            }
        }
    };
}

policies! {
    static_::Static,
    reactive::Reactive,
    ceiling::Ceiling,
    buffered::Buffered,
    quantile::Quantile,
    incremental::Incremental,
}

impl Policy {
    /// Policy `name` with its default parameters.
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::with_settings(name, &|_| None)
    }

    /// This policy with its parameters from `get` (absent: its defaults).
    pub fn configured(self, get: Settings<'_>) -> Policy {
        Policy::with_settings(self.as_str(), get).unwrap_or(self)
    }

    /// `k=v` of its knob (`q=0.9`, `margin=0.2`), if it has one.
    pub fn label(&self) -> Option<String> {
        self.knob().map(|(k, v)| format!("{}={v}", k.short))
    }

    /// Its knob's line in a `scaling:` block, if it has one.
    pub fn yaml_line(&self) -> Option<String> {
        self.knob().map(|(k, v)| format!("    {}: {v}\n", k.key))
    }

    /// The names of the policies the agent offers, as prose (`a, b and c`).
    pub fn agent_names() -> String {
        let names: Vec<&str> = Policy::all()
            .iter()
            .filter(|p| p.for_agent())
            .map(|p| p.as_str())
            .collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// By name, with the policy's default parameters (a config gives them under their own keys).
impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Policy;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a policy name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Policy, E> {
                Policy::from_name(v).ok_or_else(|| E::unknown_variant(v, Policy::ALL))
            }
        }
        d.deserialize_str(Name)
    }
}

/// By name (its parameters are the config's own keys).
impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_and_orders_every_policy() {
        assert_eq!(
            Policy::ALL,
            [
                "static",
                "reactive",
                "ceiling",
                "buffered",
                "quantile",
                "incremental"
            ]
        );
        for p in Policy::all() {
            assert_eq!(Policy::from_name(p.as_str()), Some(p));
        }
        assert_eq!(Policy::from_name("hpa"), None);
        assert_eq!(
            Policy::agent_names(),
            "reactive, ceiling, buffered, quantile and incremental"
        );
        let keys: Vec<&str> = Policy::checks().map(|c| c.key).collect();
        assert_eq!(keys, ["margin", "quantile", "max_step"]);
    }

    #[test]
    fn settings_knobs_and_tune_order() {
        let get = |k: &str| match k {
            "margin" => Some(0.3),
            "quantile" => Some(0.8),
            "max_step" => Some(4.0),
            "static_replicas" => Some(7.0),
            _ => None,
        };
        let all: Vec<Policy> = Policy::all()
            .into_iter()
            .map(|p| p.configured(&get))
            .collect();
        assert_eq!(all[0], Policy::Static(Static { replicas: 7 }));
        assert_eq!(all[3], Policy::Buffered(Buffered { margin: 0.3 }));
        assert_eq!(all[4], Policy::Quantile(Quantile { q: 0.8 }));
        assert_eq!(all[5], Policy::Incremental(Incremental { max_step: 4 }));
        assert_eq!(all[4].label().as_deref(), Some("q=0.8"));
        assert_eq!(all[3].yaml_line().as_deref(), Some("    margin: 0.3\n"));
        assert_eq!(all[2].label(), None);
        let tuned: Vec<&str> = Policy::tuned().iter().map(|t| t.0.key).collect();
        assert_eq!(tuned, ["quantile", "margin"]);
        assert_eq!(
            Policy::tuned()[0].1(1.0),
            Policy::Quantile(Quantile { q: 0.97 })
        );
        assert_eq!(all[4].sweep().len(), 6);
        assert!(all[2].sweep().is_empty());
    }

    #[test]
    fn loads_and_replicas_by_hand() {
        let band = Band {
            yhat: 420.0,
            lower: 300.0,
            upper: 560.0,
            lower_q: 0.1,
            upper_q: 0.9,
        };
        let load = |p: Policy| p.load(&band);
        assert_eq!(load(Policy::Ceiling(Ceiling)), 420.0);
        assert!((load(Policy::Buffered(Buffered { margin: 0.15 })) - 483.0).abs() < 1e-9);
        assert!((load(Policy::Quantile(Quantile { q: 0.9 })) - 560.0).abs() < 1e-9);
        assert_eq!(band.quantile(0.5), 420.0);
        let inc = Policy::Incremental(Incremental { max_step: 2 });
        assert_eq!(inc.replicas(7.5, 3), 5.0);
        assert_eq!(inc.replicas(1.0, 3), 1.0);
        assert_eq!(Policy::Static(Static { replicas: 7 }).fixed(), Some(7));
        assert!(!Policy::Reactive(Reactive).is_predictive());
    }
}
