//! The tract-onnx side of the LSTM backend: ONNX bytes → typed → optimised runnable plan with a
//! symbolic batch dimension, and batch execution.
//!
//! Every tract type stays in this file: tract's internals are not a stable API, so the rest of
//! the crate sees only [`TractPlan`], plain slices and `String` reasons. tract may panic on
//! graphs it cannot handle (e.g. an LSTM without an initial state when the batch is symbolic);
//! loading, optimising and running are wrapped in `catch_unwind` and a panic becomes an error.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;

use super::contract::PlanShape;

/// Why a model could not be turned into a plan.
#[derive(Debug)]
pub(super) enum LoadError {
    /// tract could not parse, type or optimise the graph (or panicked doing so).
    Onnx(String),
    /// The graph loads but does not have the shapes the metadata promise.
    Incompatible(String),
}

/// An optimised tract plan with a symbolic batch dimension `N`.
///
/// Each run spawns a fresh run state (about 2 µs, next to ~100 µs for even one row of the
/// fixture). Pooling states is not worth it and not safe: in tract 0.23.9 a `Scan` (the LSTM's
/// lowering) keeps the batch size its body resolved, so reusing a state with another batch size
/// fails with "Clashing resolution for expression. N=1 != 4".
pub(super) struct TractPlan {
    plan: Arc<TypedRunnableModel>,
    shape: PlanShape,
}

impl std::fmt::Debug for TractPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractPlan")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl TractPlan {
    /// Parses, types and optimises `bytes`. Panics inside tract are caught.
    pub(super) fn load(bytes: &[u8], shape: PlanShape) -> Result<Self, LoadError> {
        match catch_unwind(AssertUnwindSafe(|| build(bytes, shape))) {
            Ok(result) => result,
            Err(panic) => Err(LoadError::Onnx(format!(
                "tract panicked while loading the model: {}",
                panic_message(&*panic)
            ))),
        }
    }

    /// Runs one batch: `input` holds `rows * window * features` values in `[N, W, F]` order;
    /// `out` is cleared and filled with `rows * horizons * quantiles` values.
    pub(super) fn run(&self, rows: usize, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        let s = self.shape;
        s.check_input(rows, input)?;
        let tensor = Tensor::from_shape(&[rows, s.window, s.features], input)
            .map_err(|e| format!("building the input tensor: {e:#}"))?;
        let outputs = match catch_unwind(AssertUnwindSafe(|| {
            self.plan.run(tvec!(tensor.into_tvalue()))
        })) {
            Ok(Ok(outputs)) => outputs,
            Ok(Err(e)) => return Err(format!("{e:#}")),
            Err(panic) => {
                return Err(format!(
                    "tract panicked while running the model: {}",
                    panic_message(&*panic)
                ))
            }
        };
        let output = outputs
            .first()
            .ok_or_else(|| "the model produced no output".to_owned())?;
        s.check_output(rows, output.shape())?;
        let view = output
            .to_plain_array_view::<f32>()
            .map_err(|e| format!("reading the output: {e:#}"))?;
        out.clear();
        out.extend(view.iter().copied());
        Ok(())
    }
}

fn build(bytes: &[u8], shape: PlanShape) -> Result<TractPlan, LoadError> {
    let onnx_err = |what: &str| {
        let what = what.to_owned();
        move |e: TractError| LoadError::Onnx(format!("{what}: {e:#}"))
    };
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(onnx_err("parsing"))?;
    let inputs = model.input_outlets().map_err(onnx_err("inputs"))?.len();
    if inputs != 1 {
        return Err(LoadError::Incompatible(format!(
            "the graph has {inputs} inputs, expected exactly one"
        )));
    }
    let outlets = model
        .output_outlets()
        .map_err(onnx_err("outputs"))?
        .to_vec();
    let Some(&outlet) = outlets.get(shape.output_index) else {
        return Err(LoadError::Incompatible(format!(
            "the graph has {} outputs, no output #{}",
            outlets.len(),
            shape.output_index
        )));
    };
    model
        .select_output_outlets(&[outlet])
        .map_err(onnx_err("selecting the output"))?;
    let n = model.sym("N");
    model
        .set_input_fact(0, f32::fact(dims!(n, shape.window, shape.features)).into())
        .map_err(onnx_err("setting the input shape"))?;
    let typed = model
        .into_typed()
        .map_err(onnx_err("analysing the graph"))?;
    check_output_fact(&typed, shape)?;
    let optimized = typed
        .into_optimized()
        .map_err(onnx_err("optimising the graph"))?;
    let plan = optimized
        .into_runnable()
        .map_err(onnx_err("building the plan"))?;
    Ok(TractPlan { plan, shape })
}

/// Checks what typing inferred for the output against the metadata, where tract knows it.
fn check_output_fact(model: &TypedModel, shape: PlanShape) -> Result<(), LoadError> {
    let fact = model
        .output_fact(0)
        .map_err(|e| LoadError::Onnx(format!("output: {e:#}")))?;
    if fact.datum_type != f32::datum_type() {
        return Err(LoadError::Incompatible(format!(
            "the output is {:?}, expected f32",
            fact.datum_type
        )));
    }
    if fact.shape.rank() != 3 {
        return Err(LoadError::Incompatible(format!(
            "the output has rank {} (shape {:?}), expected [batch, horizons, quantiles]",
            fact.shape.rank(),
            fact.shape
        )));
    }
    for (axis, want, what) in [
        (1, shape.horizons, "horizons"),
        (2, shape.quantiles, "quantiles"),
    ] {
        if let Some(got) = fact.shape[axis].as_i64() {
            if got != want as i64 {
                return Err(LoadError::Incompatible(format!(
                    "output axis {axis} has size {got}, but the metadata list {want} {what}"
                )));
            }
        }
    }
    Ok(())
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TractPlan>();
    }

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        let shape = PlanShape {
            window: 4,
            features: 1,
            horizons: 1,
            quantiles: 1,
            output_index: 0,
        };
        let err = TractPlan::load(b"definitely not onnx", shape).unwrap_err();
        assert!(matches!(err, LoadError::Onnx(_)), "{err:?}");
    }
}
