//! Every model as one value type, generated from the list in [`crate::models`]: [`Model`]
//! and [`FittedModel`] dispatch the model traits by `match` (no boxing on the forecast
//! path), and [`Models`] holds one entry's models by kind with what the loop and `auto`
//! read of them (preference, fallbacks, batching) — so a new model is its file and its line
//! in the list, nothing here.

use super::model::{Entry, Fit, Forecast, Gate, Listed, ModelError, Predict, Window};
use crate::snapshot::ModelKind;

/// Generates [`Model`], [`FittedModel`] and their dispatch from the list.
macro_rules! registry {
    ($($kind:ident $name:ident [$($need:ident)?]),* $(,)?) => {
        /// Every model, as a value. Dispatch is by `match`: no boxing on the forecast path.
        #[derive(Debug, Clone)]
        pub enum Model {
            $($kind(super::$name::$kind)),*
        }

        /// A fitted [`Model`].
        #[derive(Debug, Clone)]
        pub enum FittedModel {
            $($kind(<super::$name::$kind as Fit>::Fitted)),*
        }

        impl Model {
            pub fn kind(&self) -> ModelKind {
                match self {
                    $(Model::$kind(_) => ModelKind::$kind),*
                }
            }

            /// Model `kind` for one entry, or why it cannot serve it.
            pub fn for_entry(kind: ModelKind, entry: &Entry<'_>) -> Result<Model, String> {
                match kind {
                    $(ModelKind::$kind => {
                        <super::$name::$kind as Listed>::for_entry(entry).map(Model::$kind)
                    }),*
                }
            }

            /// `auto`'s preference (lower is preferred).
            pub fn rank(kind: ModelKind) -> u8 {
                match kind {
                    $(ModelKind::$kind => <super::$name::$kind as Listed>::RANK),*
                }
            }

            /// Whether the model serves when the wanted one cannot.
            pub fn fallback(kind: ModelKind) -> bool {
                match kind {
                    $(ModelKind::$kind => <super::$name::$kind as Listed>::FALLBACK),*
                }
            }

            /// See [`Listed::candidate`].
            pub fn candidate(&self, history: usize, refit_every: usize) -> Option<Model> {
                match self {
                    $(Model::$kind(m) => m.candidate(history, refit_every).map(Model::$kind)),*
                }
            }

            /// See [`Listed::gate`].
            pub fn gate(&self) -> Gate {
                match self {
                    $(Model::$kind(m) => m.gate()),*
                }
            }
        }

        impl Fit for Model {
            type Fitted = FittedModel;

            fn points_needed(&self, window: &Window<'_>) -> usize {
                match self {
                    $(Model::$kind(m) => m.points_needed(window)),*
                }
            }

            fn fit(&self, window: &Window<'_>) -> Result<FittedModel, ModelError> {
                match self {
                    $(Model::$kind(m) => m.fit(window).map(FittedModel::$kind)),*
                }
            }

            fn fit_batch(
                &self,
                windows: &[Window<'_>],
                out: &mut Vec<Result<FittedModel, ModelError>>,
            ) {
                match self {
                    $(Model::$kind(m) => {
                        let mut fits = Vec::with_capacity(windows.len());
                        m.fit_batch(windows, &mut fits);
                        out.extend(fits.into_iter().map(|f| f.map(FittedModel::$kind)));
                    }),*
                }
            }

            fn batches(&self) -> bool {
                match self {
                    $(Model::$kind(m) => m.batches()),*
                }
            }

            fn keeps_fit(&self) -> bool {
                match self {
                    $(Model::$kind(m) => m.keeps_fit()),*
                }
            }

            fn refit_due(&self, fitted: &FittedModel, origin: i64) -> bool {
                match (self, fitted) {
                    $((Model::$kind(m), FittedModel::$kind(f)) => m.refit_due(f, origin),)*
                    // A fit of another model is never this model's.
                    #[allow(unreachable_patterns)]
                    _ => true,
                }
            }
        }

        impl Predict for FittedModel {
            fn predict(&self, origin: i64) -> Result<Forecast, ModelError> {
                match self {
                    $(FittedModel::$kind(f) => f.predict(origin)),*
                }
            }

            fn into_forecast(self, origin: i64) -> Result<Forecast, ModelError> {
                match self {
                    $(FittedModel::$kind(f) => f.into_forecast(origin)),*
                }
            }

            fn fitted_at(&self) -> i64 {
                match self {
                    $(FittedModel::$kind(f) => f.fitted_at()),*
                }
            }
        }
    };
}

with_models!(registry);

impl Model {
    /// Every model in `auto`'s order of preference.
    pub fn preference() -> [ModelKind; ModelKind::ALL.len()] {
        let mut kinds = ModelKind::ALL;
        kinds.sort_by_key(|k| Model::rank(*k));
        kinds
    }
}

/// One forecast entry's models, by kind: `None` where a model cannot serve the entry (the
/// LSTM with no network loaded, or one that does not fit the entry's horizons).
#[derive(Debug, Clone)]
pub struct Models {
    models: Vec<Option<Model>>,
    /// Why each model that cannot serve the entry cannot.
    unusable: Vec<(ModelKind, String)>,
}

impl Models {
    /// Every listed model built for `entry`.
    pub fn for_entry(entry: &Entry<'_>) -> Self {
        let mut models = Vec::with_capacity(ModelKind::ALL.len());
        let mut unusable = Vec::new();
        for kind in ModelKind::ALL {
            match Model::for_entry(kind, entry) {
                Ok(m) => models.push(Some(m)),
                Err(reason) => {
                    models.push(None);
                    unusable.push((kind, reason));
                }
            }
        }
        Self { models, unusable }
    }

    /// Model `kind`, if it can serve the entry.
    pub fn get(&self, kind: ModelKind) -> Option<&Model> {
        self.models[kind as usize].as_ref()
    }

    /// Why model `kind` cannot serve the entry, if it cannot.
    pub fn unusable(&self, kind: ModelKind) -> Option<&str> {
        self.unusable
            .iter()
            .find(|u| u.0 == kind)
            .map(|u| u.1.as_str())
    }

    /// The models that can serve the entry, in the list's order.
    pub fn iter(&self) -> impl Iterator<Item = &Model> {
        self.models.iter().flatten()
    }
}
