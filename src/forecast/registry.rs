//! Every model as one value type: [`Model`] and [`FittedModel`] dispatch the model traits by
//! `match` (no boxing on the forecast path). They are generated from one list, so a new
//! model is one line here (plus its file and its [`ModelKind`] name).

use super::lstm::Lstm;
use super::model::{Fit, ModelError, Predict, Window};
use super::mstl::Mstl;
use super::naive::{Naive, SeasonalNaive};
use crate::snapshot::{ModelKind, Point};

/// Generates [`Model`] and [`FittedModel`], enums of every model value dispatching the
/// traits above, from one list of `Kind => Type` (the kind names a [`ModelKind`] variant).
macro_rules! models {
    ($($kind:ident => $model:ty),* $(,)?) => {
        /// Every model, as a value. Dispatch is by `match`: no boxing on the forecast path.
        #[derive(Debug, Clone)]
        pub enum Model {
            $($kind($model)),*
        }

        /// A fitted [`Model`].
        #[derive(Debug, Clone)]
        pub enum FittedModel {
            $($kind(<$model as Fit>::Fitted)),*
        }

        impl Model {
            pub fn kind(&self) -> ModelKind {
                match self {
                    $(Model::$kind(_) => ModelKind::$kind),*
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
            fn predict(&self, origin: i64, out: &mut Vec<Point>) -> bool {
                match self {
                    $(FittedModel::$kind(f) => f.predict(origin, out)),*
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

models! {
    Naive => Naive,
    SeasonalNaive => SeasonalNaive,
    Mstl => Mstl,
    Lstm => Lstm,
}
