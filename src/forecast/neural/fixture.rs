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
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::Feature;
use crate::config::format_duration;

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
    assert_eq!(
        features.first(),
        Some(&Feature::Value),
        "the first feature must be value"
    );
    let nf = features.len();
    let w = params.window;
    let h = params.hidden;
    let hz = params.horizons.len();
    let nq = params.quantiles.len();
    assert!(w >= 1, "fixture window must be at least 1");
    assert!(h >= 1, "fixture hidden size must be at least 1");
    assert!(!params.step.is_zero(), "fixture step must be positive");
    assert!(hz >= 1, "fixture needs at least one horizon");
    assert!(
        nq >= 1 && params.quantiles.iter().all(|q| *q > 0.0 && *q < 1.0),
        "fixture quantiles must lie in (0, 1)"
    );

    let mut rng = SplitMix64(params.seed);
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
        .map(|q| (0.5 * standard_normal_quantile(*q)) as f32)
        .collect();

    let (w_i, h_i, hz_i, nq_i, nf_i) = (w as i64, h as i64, hz as i64, nq as i64, nf as i64);
    let initializer = vec![
        tensor_f32(INIT_LSTM_W, &[1, 4 * h_i, nf_i], lstm_w),
        tensor_f32(INIT_LSTM_R, &[1, 4 * h_i, h_i], lstm_r),
        tensor_f32(INIT_LSTM_B, &[1, 8 * h_i], lstm_b),
        tensor_f32(INIT_HEAD_W, &[h_i, hz_i * nq_i], head_w),
        tensor_f32(INIT_HEAD_B, &[hz_i * nq_i], head_b),
        tensor_f32(INIT_Q_OFFSET, &[1, 1, nq_i], q_offset),
        tensor_i64("c_zero", &[1], vec![0]),
        tensor_i64("c_one", &[1], vec![1]),
        tensor_i64("c_hidden", &[1], vec![h_i]),
        tensor_i64("c_last_start", &[2], vec![w_i - 1, 0]),
        tensor_i64("c_last_end", &[2], vec![w_i, 1]),
        tensor_i64("c_last_axes", &[2], vec![1, 2]),
        tensor_i64("c_out_shape", &[3], vec![-1, hz_i, nq_i]),
    ];

    let node = vec![
        node(
            "Transpose",
            &["input"],
            &["x_tnf"],
            vec![attr_ints("perm", &[1, 0, 2])],
        ),
        node("Shape", &["input"], &["x_shape"], vec![]),
        node(
            "Slice",
            &["x_shape", "c_zero", "c_one", "c_zero"],
            &["batch"],
            vec![],
        ),
        node(
            "Concat",
            &["c_one", "batch", "c_hidden"],
            &["state_shape"],
            vec![attr_int("axis", 0)],
        ),
        node(
            "ConstantOfShape",
            &["state_shape"],
            &["zero_state"],
            vec![attr_tensor("value", tensor_f32("zero", &[1], vec![0.0]))],
        ),
        node(
            "LSTM",
            &[
                "x_tnf",
                INIT_LSTM_W,
                INIT_LSTM_R,
                INIT_LSTM_B,
                "",
                "zero_state",
                "zero_state",
            ],
            &["", "y_h"],
            vec![attr_int("hidden_size", h_i), attr_int("layout", 0)],
        ),
        node("Squeeze", &["y_h", "c_zero"], &["h_last"], vec![]),
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
    ];

    let graph = GraphProto {
        node,
        name: Some("promcast_fixture_lstm".to_owned()),
        initializer,
        doc_string: None,
        input: vec![value_info(
            "input",
            &[Dim::Param("N"), Dim::Value(w_i), Dim::Value(nf_i)],
        )],
        output: vec![value_info(
            "output",
            &[Dim::Param("N"), Dim::Value(hz_i), Dim::Value(nq_i)],
        )],
        value_info: vec![],
    };

    let join = |items: Vec<String>| items.join(",");
    let metadata = [
        ("promcast.format", "1".to_owned()),
        ("promcast.window", w.to_string()),
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
    ];

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
        metadata_props: metadata
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.to_owned()),
                value: Some(v),
            })
            .collect(),
    };
    model.encode_to_vec()
}

/// SplitMix64: a tiny deterministic generator, enough for fixture weights.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    fn uniform(&mut self, scale: f64) -> f32 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((2.0 * unit - 1.0) * scale) as f32
    }

    fn uniform_vec(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform(scale)).collect()
    }
}

/// The standard normal quantile (inverse CDF) for `p` in (0, 1): Acklam's rational
/// approximation (relative error below 1.2e-9), exact 0 at 0.5.
pub(super) fn standard_normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.02425;
    if p == 0.5 {
        return 0.0;
    }
    if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -standard_normal_quantile(1.0 - p)
    }
}

fn tensor_f32(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: data,
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

fn tensor_i64(name: &str, dims: &[i64], data: Vec<i64>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: data,
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: outputs.iter().map(|s| (*s).to_owned()).collect(),
        name: Some(format!(
            "{op}_{}",
            outputs.iter().find(|o| !o.is_empty()).unwrap_or(&"")
        )),
        op_type: Some(op.to_owned()),
        attribute,
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(i),
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Ints as i32),
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(t),
        ..Default::default()
    }
}

enum Dim {
    Value(i64),
    Param(&'static str),
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Value(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                Dim::Param(p) => tensor_shape_proto::dimension::Value::DimParam((*p).to_owned()),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        doc_string: None,
    }
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
            let got = standard_normal_quantile(p);
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
        let mut rng = SplitMix64(1);
        let v = rng.uniform_vec(10_000, 0.05);
        assert!(v.iter().all(|x| (-0.05..0.05).contains(x)));
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.002, "mean {mean}");
    }
}
