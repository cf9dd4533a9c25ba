//! A small, deterministic ONNX model that follows promcast's model contract, for tests, examples
//! and `models/fixture-lstm.onnx`. It is a *persistence* forecaster with random LSTM weights,
//! not a trained model: on normalised inputs its median is about the last input value and its
//! band is about ±0.64 of the window's IQR (0.5 × the standard normal quantile of each level).
//!
//! Graph (opset 14, input `input` `[N, W, 1]` (the only feature is `value`), output `output`
//! `[N, Hz, Q]`):
//!
//! ```text
//! input ─┬─ Transpose(1,0,2) ─ LSTM(H, initial_h = initial_c = zeros) ─ Y_h [1,N,H]
//!        ├─ Shape ─ Slice(0..1) ─ Concat([1], N, [H]) ─ ConstantOfShape(0) ─ zeros [1,N,H]
//!        └─ Slice(last step, feature 0) ─ last [N,1,1]
//! Y_h ─ Squeeze(0) ─ MatMul(head_W [H, Hz·Q]) ─ Add(head_b) ─ Reshape [-1, Hz, Q]
//!     ─ Add(last) ─ Add(q_offset [1, 1, Q]) ─ output [N, Hz, Q]
//! ```
//!
//! The explicit zero initial state is needed: tract panics optimising an LSTM without one when
//! the batch dimension is symbolic. The head's random weights are drawn per horizon and shared
//! by that horizon's quantiles, so the quantiles never cross (they differ only by `q_offset`).

use std::time::Duration;

use prost::Message;

use super::onnx::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
};
use super::onnx_build::{lstm_front, node, tensor_f32, tensor_i64, value_info, Dim};
use super::Feature;
use crate::config::format_duration;
use crate::rng::SplitMix64;
use crate::stats::normal_quantile;

/// ONNX opset the fixture is written against (LSTM-14, Squeeze/Slice-13 with tensor inputs).
pub(super) const FIXTURE_OPSET: i64 = 14;
/// Initializer names, read back by the reference forward pass in the tests.
pub(super) const INIT_LSTM_W: &str = "lstm_W";
pub(super) const INIT_LSTM_R: &str = "lstm_R";
pub(super) const INIT_LSTM_B: &str = "lstm_B";
pub(super) const INIT_HEAD_W: &str = "head_W";
pub(super) const INIT_HEAD_B: &str = "head_b";
pub(super) const INIT_Q_OFFSET: &str = "q_offset";

/// What [`fixture_model`] builds. The model's only feature is `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureParams {
    /// Input steps.
    pub window: usize,
    /// The step the model claims (`promcast.step`).
    pub step: Duration,
    /// Forecast horizons, strictly increasing.
    pub horizons: Vec<Duration>,
    /// Quantile levels in (0, 1), strictly increasing, including 0.5.
    pub quantiles: Vec<f64>,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Seed of the weights.
    pub seed: u64,
}

impl Default for FixtureParams {
    fn default() -> Self {
        FixtureParams {
            window: 16,
            step: Duration::from_secs(60),
            horizons: [5, 15, 30].map(|m| Duration::from_secs(m * 60)).to_vec(),
            quantiles: vec![0.1, 0.5, 0.9],
            hidden: 8,
            seed: 42,
        }
    }
}

/// Builds the fixture model's ONNX bytes (see the module documentation).
///
/// # Panics
/// If `params` cannot describe a valid model: zero window, hidden size or step, no horizons, or
/// quantiles outside (0, 1). (Metadata rules such as "contains 0.5" are checked at load time.)
pub fn fixture_model(params: &FixtureParams) -> Vec<u8> {
    fixture_model_with_features(params, &[Feature::Value])
}

/// [`fixture_model`] with other input features (`value` must be first). The LSTM reads all of
/// them; the persistence skip reads feature 0 (`value`) of the last step.
pub(super) fn fixture_model_with_features(params: &FixtureParams, features: &[Feature]) -> Vec<u8> {
    check_params(params, features);
    let (w, h, hz, nq, nf) = (
        params.window as i64,
        params.hidden as i64,
        params.horizons.len() as i64,
        params.quantiles.len() as i64,
        features.len() as i64,
    );
    let mut initializer = initializers(params, features.len());
    let (front_init, mut nodes) = lstm_front(INIT_LSTM_W, INIT_LSTM_R, INIT_LSTM_B, h);
    initializer.extend(front_init);
    nodes.extend(head_nodes());

    let graph = GraphProto {
        node: nodes,
        name: Some("promcast_fixture_lstm".to_owned()),
        initializer,
        doc_string: None,
        input: vec![value_info(
            "input",
            &[Dim::Param("N"), Dim::Value(w), Dim::Value(nf)],
        )],
        output: vec![value_info(
            "output",
            &[Dim::Param("N"), Dim::Value(hz), Dim::Value(nq)],
        )],
        value_info: vec![],
    };

    let model = ModelProto {
        ir_version: Some(7),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(FIXTURE_OPSET),
        }],
        producer_name: Some("promcast-fixture".to_owned()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        domain: None,
        model_version: Some(1),
        doc_string: Some(
            "promcast test fixture: a persistence forecaster (median = last value, band from \
             fixed normal quantiles) with random LSTM weights; NOT a trained model."
                .to_owned(),
        ),
        graph: Some(graph),
        metadata_props: metadata(params, features)
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.to_owned()),
                value: Some(v),
            })
            .collect(),
    };
    model.encode_to_vec()
}

/// Panics unless `params` and `features` can describe a valid model (see [`fixture_model`]).
fn check_params(params: &FixtureParams, features: &[Feature]) {
    assert_eq!(
        features.first(),
        Some(&Feature::Value),
        "the first feature must be value"
    );
    assert!(params.window >= 1, "fixture window must be at least 1");
    assert!(params.hidden >= 1, "fixture hidden size must be at least 1");
    assert!(!params.step.is_zero(), "fixture step must be positive");
    assert!(
        !params.horizons.is_empty(),
        "fixture needs at least one horizon"
    );
    let nq = params.quantiles.len();
    assert!(
        nq >= 1 && params.quantiles.iter().all(|q| *q > 0.0 && *q < 1.0),
        "fixture quantiles must lie in (0, 1)"
    );
}

/// The random weights (drawn from the seed in a fixed order), the quantile offsets and the
/// slice and reshape constants, for a model reading `nf` features.
fn initializers(params: &FixtureParams, nf: usize) -> Vec<TensorProto> {
    let w = params.window;
    let h = params.hidden;
    let hz = params.horizons.len();
    let nq = params.quantiles.len();
    let mut rng = SplitMix64::new(params.seed);
    let scale = 0.05;
    let lstm_w = rng.uniform_vec(4 * h * nf, scale); // [1, 4H, F], gate blocks i, o, f, c
    let lstm_r = rng.uniform_vec(4 * h * h, scale); // [1, 4H, H]
    let lstm_b = rng.uniform_vec(8 * h, scale); // [1, 8H] = [Wb; Rb]
    let per_horizon_w = rng.uniform_vec(h * hz, scale); // [H, Hz]
    let per_horizon_b = rng.uniform_vec(hz, scale);
    let mut head_w = Vec::with_capacity(h * hz * nq);
    for k in 0..h {
        for j in 0..hz {
            head_w.extend(std::iter::repeat_n(per_horizon_w[k * hz + j], nq));
        }
    }
    let head_b: Vec<f32> = per_horizon_b
        .iter()
        .flat_map(|b| std::iter::repeat_n(*b, nq))
        .collect();
    let q_offset: Vec<f32> = params
        .quantiles
        .iter()
        .map(|q| (0.5 * normal_quantile(*q)) as f32)
        .collect();

    let (w_i, h_i, hz_i, nq_i, nf_i) = (w as i64, h as i64, hz as i64, nq as i64, nf as i64);
    vec![
        tensor_f32(INIT_LSTM_W, &[1, 4 * h_i, nf_i], lstm_w),
        tensor_f32(INIT_LSTM_R, &[1, 4 * h_i, h_i], lstm_r),
        tensor_f32(INIT_LSTM_B, &[1, 8 * h_i], lstm_b),
        tensor_f32(INIT_HEAD_W, &[h_i, hz_i * nq_i], head_w),
        tensor_f32(INIT_HEAD_B, &[hz_i * nq_i], head_b),
        tensor_f32(INIT_Q_OFFSET, &[1, 1, nq_i], q_offset),
        tensor_i64("c_last_start", &[2], vec![w_i - 1, 0]),
        tensor_i64("c_last_end", &[2], vec![w_i, 1]),
        tensor_i64("c_last_axes", &[2], vec![1, 2]),
        tensor_i64("c_out_shape", &[3], vec![-1, hz_i, nq_i]),
    ]
}

/// Nodes after the LSTM front: the linear head on `h_last`, plus the last input value and
/// the quantile offsets (`output`).
fn head_nodes() -> Vec<NodeProto> {
    vec![
        node("MatMul", &["h_last", INIT_HEAD_W], &["head_mm"], vec![]),
        node("Add", &["head_mm", INIT_HEAD_B], &["head"], vec![]),
        node("Reshape", &["head", "c_out_shape"], &["head_3d"], vec![]),
        node(
            "Slice",
            &["input", "c_last_start", "c_last_end", "c_last_axes"],
            &["last_value"],
            vec![],
        ),
        node("Add", &["head_3d", "last_value"], &["persistence"], vec![]),
        node("Add", &["persistence", INIT_Q_OFFSET], &["output"], vec![]),
    ]
}

/// The model contract's `metadata_props`.
fn metadata(params: &FixtureParams, features: &[Feature]) -> [(&'static str, String); 7] {
    let join = |items: Vec<String>| items.join(",");
    [
        ("promcast.format", "1".to_owned()),
        ("promcast.window", params.window.to_string()),
        ("promcast.step", format_duration(params.step)),
        (
            "promcast.horizons",
            join(
                params
                    .horizons
                    .iter()
                    .map(|d| format_duration(*d))
                    .collect(),
            ),
        ),
        (
            "promcast.quantiles",
            join(params.quantiles.iter().map(|q| q.to_string()).collect()),
        ),
        (
            "promcast.features",
            join(features.iter().map(|f| f.name().to_owned()).collect()),
        ),
        ("promcast.normalisation", "robust_median_iqr".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_are_right() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.281_551_565_545),
            (0.1, -1.281_551_565_545),
            (0.975, 1.959_963_984_540),
            (0.01, -2.326_347_874_041),
            (0.999, 3.090_232_306_168),
        ] {
            let got = normal_quantile(p);
            assert!((got - z).abs() < 1e-8, "p={p}: {got} vs {z}");
        }
    }

    #[test]
    fn fixture_is_deterministic_and_seed_dependent() {
        let a = fixture_model(&FixtureParams::default());
        let b = fixture_model(&FixtureParams::default());
        let c = fixture_model(&FixtureParams {
            seed: 7,
            ..FixtureParams::default()
        });
        assert_eq!(a, b);
        assert_ne!(a, c);
        let decoded = ModelProto::decode(&a[..]).unwrap();
        let graph = decoded.graph.unwrap();
        let lstm = graph
            .node
            .iter()
            .find(|n| n.op_type() == "LSTM")
            .expect("an LSTM node");
        assert_eq!(lstm.input[5], "zero_state", "explicit initial_h");
        assert_eq!(lstm.input[6], "zero_state", "explicit initial_c");
        assert_eq!(decoded.opset_import[0].version(), FIXTURE_OPSET);
    }

    #[test]
    fn rng_is_uniform_in_range() {
        let mut rng = SplitMix64::new(1);
        let v = rng.uniform_vec(10_000, 0.05);
        assert!(v.iter().all(|x| (-0.05..0.05).contains(x)));
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.002, "mean {mean}");
    }
}
