//! Every detector as one value type, generated from the list in [`crate::detectors`]:
//! [`AnyDetector`] and [`AnySeries`] dispatch the [`Detector`] trait by `match` (no boxing
//! on the scoring path), so a new detector is its file and its line in the list, nothing
//! here.

// With one listed detector the mismatch arms below are unreachable; with two they are not.
#![allow(unreachable_patterns)]

use super::detector::{Detector, Point, Seen, Setup, Train};
use crate::config::AnomalySpec;
use crate::detectors::DetectorKind;

/// Generates [`AnyDetector`], [`AnySeries`] and their dispatch from the list.
macro_rules! detector_registry {
    ($($kind:ident $name:ident [$($verdict:tt)*]),* $(,)?) => {
        /// Every detector, as a value.
        pub enum AnyDetector {
            $($kind(super::$name::$kind)),*
        }

        /// A series' state of one of the detectors.
        pub enum AnySeries {
            $($kind(<super::$name::$kind as Detector>::Series)),*
        }

        impl AnyDetector {
            /// Detector `kind`, set up.
            pub fn new(kind: DetectorKind, setup: &Setup) -> AnyDetector {
                match kind {
                    $(DetectorKind::$kind => AnyDetector::$kind(Detector::new(setup))),*
                }
            }

            /// See [`Detector::series`].
            pub fn series(&mut self) -> AnySeries {
                match self {
                    $(AnyDetector::$kind(d) => AnySeries::$kind(d.series())),*
                }
            }

            /// See [`Detector::update`]. State of another detector's series is
            /// [`Seen::Unusable`] (the scorer never passes one).
            pub fn update(
                &mut self,
                series: &mut AnySeries,
                point: &Point<'_>,
                train: &mut Train<'_>,
            ) -> Seen {
                match (self, series) {
                    $((AnyDetector::$kind(d), AnySeries::$kind(s)) => d.update(s, point, train),)*
                    _ => Seen::Unusable,
                }
            }

            /// See [`Detector::forget`].
            pub fn forget(&mut self, series: &AnySeries) {
                match (self, series) {
                    $((AnyDetector::$kind(d), AnySeries::$kind(s)) => d.forget(s),)*
                    _ => {}
                }
            }

            /// See [`Detector::finish_step`].
            pub fn finish_step(
                &mut self,
                step: u64,
                specs: &[Option<AnomalySpec>],
                train: &mut Train<'_>,
            ) {
                match self {
                    $(AnyDetector::$kind(d) => d.finish_step(step, specs, train)),*
                }
            }

            /// See [`Detector::shared_models`].
            pub fn shared_models(&self) -> usize {
                match self {
                    $(AnyDetector::$kind(d) => d.shared_models()),*
                }
            }

            /// See [`Detector::shared_bytes`].
            pub fn shared_bytes(&self) -> usize {
                match self {
                    $(AnyDetector::$kind(d) => d.shared_bytes()),*
                }
            }
        }

        impl AnySeries {
            /// The detector whose state this is.
            pub fn kind(&self) -> DetectorKind {
                match self {
                    $(AnySeries::$kind(_) => DetectorKind::$kind),*
                }
            }

            /// See [`Detector::has_own_model`].
            pub fn has_own_model(&self) -> bool {
                match self {
                    $(AnySeries::$kind(s) => <super::$name::$kind as Detector>::has_own_model(s)),*
                }
            }

            /// See [`Detector::series_bytes`].
            pub fn bytes(&self) -> usize {
                match self {
                    $(AnySeries::$kind(s) => <super::$name::$kind as Detector>::series_bytes(s)),*
                }
            }
        }
    };
}

with_detectors!(detector_registry);
