//! Forecasting: the models and how they serve a series. The loop that runs them once per
//! step is [`crate::step`], above this module.
//!
//! - [`model`]: the interface every model implements ([`Fit`] → [`Predict`] on a
//!   [`Window`], returning a [`Forecast`]) and what the agent knows of a model beyond fitting
//!   ([`Listed`]); [`registry`] dispatches over every model as one value type, generated from
//!   the list in [`crate::models`].
//! - The models, one file each: [`naive`] (the last value; the lagged rule with empirical
//!   bands from the series' own past errors), [`seasonal_naive`], [`mstl`] (augurs' MSTL with
//!   an AutoETS trend), [`lstm`] (the ONNX model of [`neural`], batched); [`path`] is the
//!   read-forward fit of the models that keep fits between refits.
//! - [`auto`]: the per-series model choice by rolling backtest, a pure function.
//! - [`forecaster`]: per entry, which model serves a series and the fallbacks; per series,
//!   the state kept between steps; the step's budget; the batch batched models are fed.
//! - [`accuracy`]: per series and horizon, the rolling error of the forecasts served
//!   against what then happened (kept by the forecaster, exported with the forecasts).
//! - [`load`]: loading the LSTM a config asks for and checking it fits each entry.

pub mod accuracy;
pub mod auto;
pub mod forecaster;
pub mod load;
pub mod model;
pub mod neural;
pub mod path;
pub mod registry;

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
