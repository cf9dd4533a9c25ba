//! The one list of forecast models. Everything that names models follows from it: the
//! [`ModelKind`] every forecast carries (JSON API, self-metrics, `backtest`), the config's
//! [`ModelChoice`] (`auto` or a model's name) and what it checks, the modules and the model
//! enum of [`crate::forecast`] (`forecast::registry`), `auto`'s candidates and fallbacks, and
//! the offline tools' model lists.
//!
//! Adding a model is its file `src/forecast/<name>.rs` (a type named after the kind that
//! implements `forecast::Fit` and `forecast::Listed`) and one line below. The list is a
//! macro that hands every line to another macro, so that each layer generates what it needs
//! without importing the layers above it: this file imports nothing.
//!
//! A line is `Kind name [needs]`: the kind (also the model type's name), the name in
//! configs and output (also the file's name), and what a forecast entry must give the
//! model: `season` (at least one of `seasons:`), `network` (a loaded `inference.model`).
//! The order is [`ModelKind::ALL`]'s: the order of per-model self-metrics.

/// serde's message for an unknown name, listing the names (`names`: an iterator of `&str`):
/// ``unknown variant `x`, expected one of `a`, `b` ``.
macro_rules! unknown_name {
    ($s:expr, $names:expr) => {{
        let names: Vec<String> = $names.map(|n| format!("`{n}`")).collect();
        format!(
            "unknown variant `{}`, expected one of {}",
            $s,
            names.join(", ")
        )
    }};
}

/// `Serialize` and `Deserialize` of a type named in configs, through its `as_str` and
/// `FromStr` (the lists' kinds and choices).
macro_rules! serde_by_name {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Calls `$then! { Kind name [needs], ... }` with every model.
macro_rules! with_models {
    ($then:ident) => {
        $then! {
            Naive naive [],
            SeasonalNaive seasonal_naive [season],
            Mstl mstl [season],
            Ets ets [],
            Lstm lstm [network],
        }
    };
}

/// Generates [`ModelKind`] and [`ModelChoice`] from the list.
macro_rules! kinds {
    ($($kind:ident $name:ident [$($need:ident)?]),* $(,)?) => {
        /// A model that produced a forecast (`auto` resolves to one of these). The names are
        /// what the JSON API, the self-metrics and `backtest` print.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ModelKind {
            $($kind),*
        }

        impl ModelKind {
            /// Every model, in the list's order.
            pub const ALL: [ModelKind; [$(stringify!($kind)),*].len()] = [$(ModelKind::$kind),*];

            /// The name in configs and output.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ModelKind::$kind => stringify!($name)),*
                }
            }

            /// What an entry must give the model (`season`, `network`), if anything.
            pub fn needs(self) -> Option<&'static str> {
                match self {
                    $(ModelKind::$kind => kinds!(@need $($need)?)),*
                }
            }
        }
    };
    (@need) => { None };
    (@need $need:ident) => { Some(stringify!($need)) };
}

with_models!(kinds);

impl ModelKind {
    /// The model named `name` in a config.
    pub fn from_name(name: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether an entry must name at least one season for this model.
    pub fn needs_season(self) -> bool {
        self.needs() == Some("season")
    }

    /// Whether this model needs a loaded neural network (`inference.model`).
    pub fn needs_network(self) -> bool {
        self.needs() == Some("network")
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ModelKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A forecast entry's `model:`: `auto` (the best model the series' history allows, chosen
/// per series by a rolling backtest) or one model by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelChoice {
    Auto,
    Model(ModelKind),
}

impl ModelChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelChoice::Auto => "auto",
            ModelChoice::Model(k) => k.as_str(),
        }
    }

    /// The model this choice names, if it names one.
    pub fn model(self) -> Option<ModelKind> {
        match self {
            ModelChoice::Auto => None,
            ModelChoice::Model(k) => Some(k),
        }
    }
}

impl std::str::FromStr for ModelChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(ModelChoice::Auto);
        }
        ModelKind::from_name(s)
            .map(ModelChoice::Model)
            .ok_or_else(|| {
                let names =
                    std::iter::once("auto").chain(ModelKind::ALL.iter().map(|k| k.as_str()));
                unknown_name!(s, names)
            })
    }
}

serde_by_name!(ModelChoice);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        for k in ModelKind::ALL {
            assert_eq!(k.as_str().parse::<ModelChoice>(), Ok(ModelChoice::Model(k)));
        }
        assert_eq!("auto".parse::<ModelChoice>(), Ok(ModelChoice::Auto));
        let err = "prophet".parse::<ModelChoice>().unwrap_err();
        assert!(
            err.contains("`prophet`") && err.contains("`auto`") && err.contains("`mstl`"),
            "{err}"
        );
    }

    #[test]
    fn needs_come_from_the_list() {
        assert!(ModelKind::SeasonalNaive.needs_season());
        assert!(ModelKind::Mstl.needs_season());
        assert!(!ModelKind::Naive.needs_season());
        assert!(ModelKind::Lstm.needs_network());
        assert_eq!(
            ModelKind::ALL.iter().filter(|k| k.needs_network()).count(),
            1
        );
    }
}
