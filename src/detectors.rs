//! The one list of anomaly detectors. Everything that names detectors follows from it: the
//! config's `anomaly.detector` ([`DetectorKind`]) and what it accepts, `anomaly-eval
//! --detector`, the modules of [`crate::anomaly`] and the dispatch of `anomaly::registry`
//! through which the scorer drives them.
//!
//! Adding a detector is its file `src/anomaly/<name>.rs` (a type named after the kind that
//! implements `anomaly::Detector`) and one line below (docs/ARCHITECTURE.md, "Adding an
//! anomaly detector"). As with [`crate::models`], the list is a macro that hands every line
//! to another macro, so that each layer generates what it needs without importing the
//! layers above it: this file imports nothing.
//!
//! A line is `Kind name`: the kind (also the detector type's name) and the name in configs
//! and output (also the file's name). The first line is the default.

/// Calls `$then! { Kind name, ... }` with every detector.
macro_rules! with_detectors {
    ($then:ident) => {
        $then! {
            Forest forest,
        }
    };
}

/// Generates [`DetectorKind`] from the list.
macro_rules! detector_kinds {
    ($($kind:ident $name:ident),* $(,)?) => {
        /// An anomaly detector: what scores each series' newest point (the config's
        /// `anomaly.detector`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DetectorKind {
            $($kind),*
        }

        impl DetectorKind {
            /// Every detector, in the list's order (the first is the default).
            pub const ALL: [DetectorKind; [$(stringify!($kind)),*].len()] =
                [$(DetectorKind::$kind),*];

            /// The name in configs and output.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(DetectorKind::$kind => stringify!($name)),*
                }
            }
        }
    };
}

with_detectors!(detector_kinds);

impl DetectorKind {
    /// The detector named `name` in a config.
    pub fn from_name(name: &str) -> Option<DetectorKind> {
        DetectorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Its place in [`DetectorKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl Default for DetectorKind {
    /// The list's first line.
    fn default() -> Self {
        DetectorKind::ALL[0]
    }
}

impl std::fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DetectorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        DetectorKind::from_name(s)
            .ok_or_else(|| unknown_name!(s, DetectorKind::ALL.iter().map(|k| k.as_str())))
    }
}

serde_by_name!(DetectorKind);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        for (i, k) in DetectorKind::ALL.into_iter().enumerate() {
            assert_eq!(k.as_str().parse::<DetectorKind>(), Ok(k));
            assert_eq!(k.index(), i);
        }
        assert_eq!(DetectorKind::default(), DetectorKind::ALL[0]);
        let err = "lof".parse::<DetectorKind>().unwrap_err();
        assert!(err.contains("`lof`") && err.contains("`forest`"), "{err}");
    }
}
