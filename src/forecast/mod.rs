//! Forecasting: the models, how they serve a series, and the loop that runs them.
//!
//! - [`model`]: the interface every model implements ([`Fit`] → [`Predict`] on a
//!   [`Window`]); [`registry`] dispatches over every model as one value type.
//! - The models: [`naive`] (`naive`, `seasonal_naive`: empirical bands from the series' own
//!   past errors), [`mstl`] (augurs' MSTL with an AutoETS trend, refitted every
//!   `refit_every` and read forward), [`lstm`] (the ONNX model of [`neural`], batched).
//! - [`auto`]: the per-series model choice by rolling backtest, a pure function.
//! - [`forecaster`]: per entry, which model serves a series and the fallbacks; per series,
//!   the state kept between steps; the step's budget; the batch batched models are fed.
//! - [`load`]: loading the LSTM a config asks for and checking it fits each entry.
//! - [`scheduler`]: the loop: once per step, on a dedicated thread, visit every stored
//!   series and publish a [`crate::snapshot::Snapshot`].

pub mod auto;
pub mod forecaster;
pub mod load;
pub mod model;
pub mod neural;
pub mod path;
pub mod registry;
pub mod scheduler;

/// The models' modules, one file each, from the list in [`crate::models`].
macro_rules! model_modules {
    ($($kind:ident $name:ident [$($need:ident)?]),* $(,)?) => {
        $(pub mod $name;)*
    };
}
with_models!(model_modules);

pub use forecaster::{Budget, ForecastStats, Forecaster, ModelMismatch};
pub use model::{Ask, Entry, Fit, Forecast, Gate, Listed, ModelError, Predict, Window, MIN_POINTS};
pub use registry::{FittedModel, Model, Models};
