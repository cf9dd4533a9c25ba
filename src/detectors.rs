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
//! A line is `Kind name [signal threshold suppress band]`: the kind (also the detector type's
//! name), the name in configs and output (also the file's name), and the verdict its scores
//! get unless the entry's config says otherwise ([`VerdictDefaults`]): what drives
//! `N:anomalous` (`score` or `likelihood`), the score threshold (`anomaly.threshold`), the
//! hold after a firing in seconds (`anomaly.suppress`), and whether a point inside the naive
//! band may fire (`inside`) or only one outside it (`outside`). The first line is the
//! default.

/// Calls `$then! { Kind name, ... }` with every detector.
macro_rules! with_detectors {
    ($then:ident) => {
        $then! {
            Knn knn [score 0.99 0 inside],
            Forest forest [likelihood 0.65 86400 outside],
        }
    };
}

/// Generates [`DetectorKind`] from the list.
macro_rules! detector_kinds {
    ($($kind:ident $name:ident [$signal:ident $threshold:literal $suppress:literal $band:ident]),* $(,)?) => {
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

            /// The verdict its scores get unless the entry's config says otherwise.
            pub fn verdict(self) -> VerdictDefaults {
                match self {
                    $(DetectorKind::$kind => VerdictDefaults {
                        on_likelihood: stringify!($signal).as_bytes() == b"likelihood",
                        threshold: $threshold,
                        suppress_secs: $suppress,
                        outside_band_only: stringify!($band).as_bytes() == b"outside",
                    }),*
                }
            }
        }
    };
}

/// The verdict a detector's scores get unless the entry's config says otherwise (the list's
/// bracket).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerdictDefaults {
    /// `anomaly.signal`: the likelihood of the score drives `N:anomalous` (else the score).
    pub on_likelihood: bool,
    /// `anomaly.threshold`: the score at or above which a point is anomalous.
    pub threshold: f64,
    /// `anomaly.suppress`, in seconds (0: the detector holds itself, or no hold).
    pub suppress_secs: u64,
    /// Whether only a point outside the naive band may fire (a high score inside it is the
    /// series' routine change); else a point inside fires too, its direction against the
    /// band's median.
    pub outside_band_only: bool,
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
        for k in DetectorKind::ALL {
            let v = k.verdict();
            assert!((0.0..=1.0).contains(&v.threshold), "{k}");
        }
    }
}
