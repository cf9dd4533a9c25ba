//! ONNX export of a trained [`Net`], written with the project's own ONNX protobuf subset
//! (`proto/onnx.proto`). The graph computes exactly [`Net::forward`]:
//!
//! ```text
//! input ─┬─ Transpose(1,0,2) ─ LSTM(W, R, B, initial_h = initial_c = zeros) ─ Y_h ─ Squeeze ─ h
//!        ├─ Shape ─ Slice ─ Concat([1], N, [H]) ─ ConstantOfShape(0) ─ zeros
//!        ├─ Slice(last step, `value`) ─ x_last [N,1,1] ─ Reshape ─ [N,1]
//!        └─ Gather(axis 1, seasonal positions) ─ Slice(`lag_1d_lead` | `lag_1d_lead_mask`)
//! Concat(h, x_last, seas, seas_mask) ─ MatMul W1 ─ Add b1 ─ Relu ─ MatMul W2 ─ Add b2
//!   ─ Reshape [N, K, Q] = r ─┬─ Softplus ─ MatMul Mᵀ ─ spread
//!                            └─ Slice(median) ─ Add x_last ─ base ─ Add(spread, base) ─ output
//! ```
//!
//! The explicit zero initial state: tract panics optimising an LSTM without one when the batch
//! dimension is symbolic (see `../shared/NOTES.md`).

use std::time::Duration;

use anyhow::Result;
use prost::Message;

use super::net::{Net, Shape};
use crate::config::format_duration;
use crate::forecast::neural::onnx::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
};
use crate::forecast::neural::onnx_build::{
    feature_nodes, head_nodes, lstm_front, tensor_f32, tensor_i64, value_info, Dim,
};
use crate::forecast::neural::{
    Feature, Normalisation, KEY_FEATURES, KEY_FORMAT, KEY_HORIZONS, KEY_NORMALISATION,
    KEY_QUANTILES, KEY_STEP, KEY_STEPS, KEY_WINDOW,
};

/// What the metadata says besides the shapes.
#[derive(Debug, Clone)]
pub struct ExportMeta {
    pub features: Vec<Feature>,
    /// The step horizons are written at.
    pub step: Duration,
    /// Every step the model serves.
    pub steps: Vec<Duration>,
    pub normalisation: Normalisation,
    /// Free text for `doc_string` (data, command, metrics).
    pub doc: String,
    /// Extra `metadata_props` (`promcast.train.*`), informational.
    pub extra: Vec<(String, String)>,
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

fn values(v: &candle_core::Var) -> Result<Vec<f32>> {
    Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?)
}

/// The ONNX bytes of `net`.
pub fn export_onnx(net: &Net, meta: &ExportMeta) -> Result<Vec<u8>> {
    let s = &net.shape;
    let i = |x: usize| x as i64;
    let mut initializer = weights(net)?;
    initializer.extend(constants(s));
    let (front_init, mut nodes) = lstm_front("lstm_W", "lstm_R", "lstm_B", i(s.hidden));
    initializer.extend(front_init);
    nodes.extend(feature_nodes());
    nodes.extend(head_nodes());
    let graph = GraphProto {
        node: nodes,
        name: Some("promcast_lstm".to_owned()),
        initializer,
        doc_string: None,
        input: vec![value_info(
            "input",
            &[
                Dim::Param("N"),
                Dim::Value(i(s.window)),
                Dim::Value(i(s.features)),
            ],
        )],
        output: vec![value_info(
            "output",
            &[Dim::Param("N"), Dim::Value(i(s.k())), Dim::Value(i(s.q()))],
        )],
        value_info: vec![],
    };
    let model = ModelProto {
        ir_version: Some(7),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(14),
        }],
        producer_name: Some("promcast-train".to_owned()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        domain: None,
        model_version: Some(1),
        doc_string: Some(meta.doc.clone()),
        graph: Some(graph),
        metadata_props: metadata_props(s, meta)
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k),
                value: Some(v),
            })
            .collect(),
    };
    Ok(model.encode_to_vec())
}

/// The trained weights as initializers, in ONNX's layouts (LSTM gates `[4H, ·]`, `[Wb; Rb]`
/// biases, the head's matrices as they are, the quantile offsets transposed).
fn weights(net: &Net) -> Result<Vec<TensorProto>> {
    let s = &net.shape;
    let (f, h, k, q, hd) = (s.features, s.hidden, s.k(), s.q(), s.head);
    let wcat = values(&net.w)?; // [F + H, 4H]
    let wx = transpose(&wcat[..f * 4 * h], f, 4 * h); // [4H, F]
    let wh = transpose(&wcat[f * 4 * h..], h, 4 * h); // [4H, H]
    let mut bias = values(&net.b)?;
    bias.extend(std::iter::repeat_n(0.0, 4 * h)); // [Wb; Rb]
    let m = s.offsets();
    let mt = transpose(&m, q, q);
    let i = |x: usize| x as i64;
    Ok(vec![
        tensor_f32("lstm_W", &[1, i(4 * h), i(f)], wx),
        tensor_f32("lstm_R", &[1, i(4 * h), i(h)], wh),
        tensor_f32("lstm_B", &[1, i(8 * h)], bias),
        tensor_f32("head_W1", &[i(s.z()), i(hd)], values(&net.w1)?),
        tensor_f32("head_b1", &[i(hd)], values(&net.b1)?),
        tensor_f32("head_W2", &[i(hd), i(k * q)], values(&net.w2)?),
        tensor_f32("head_b2", &[i(k * q)], values(&net.b2)?),
        tensor_f32("offsets_T", &[i(q), i(q)], mt),
    ])
}

/// The int64 constants the feature and head nodes use (slice bounds, axes, shapes).
fn constants(s: &Shape) -> Vec<TensorProto> {
    let (w, k, q) = (s.window, s.k(), s.q());
    let i = |x: usize| x as i64;
    let positions: Vec<i64> = s.seasonal_positions().iter().map(|&p| p as i64).collect();
    vec![
        tensor_i64("c_two", &[1], vec![2]),
        tensor_i64("c_last_start", &[2], vec![i(w - 1), i(s.value_feature)]),
        tensor_i64("c_last_end", &[2], vec![i(w), i(s.value_feature + 1)]),
        tensor_i64("c_axes_12", &[2], vec![1, 2]),
        tensor_i64("c_col", &[2], vec![-1, 1]),
        tensor_i64("c_cols_k", &[2], vec![-1, i(k)]),
        tensor_i64("c_positions", &[i(k)], positions),
        tensor_i64("c_lead", &[1], vec![i(s.lead_feature)]),
        tensor_i64("c_lead_end", &[1], vec![i(s.lead_feature + 1)]),
        tensor_i64("c_mask", &[1], vec![i(s.lead_mask_feature)]),
        tensor_i64("c_mask_end", &[1], vec![i(s.lead_mask_feature + 1)]),
        tensor_i64("c_mid", &[1], vec![i(s.mid())]),
        tensor_i64("c_mid_end", &[1], vec![i(s.mid() + 1)]),
        tensor_i64("c_out_shape", &[3], vec![-1, i(k), i(q)]),
    ]
}

/// The model contract's `metadata_props`, then `meta.extra`.
fn metadata_props(s: &Shape, meta: &ExportMeta) -> Vec<(String, String)> {
    let join = |v: Vec<String>| v.join(",");
    let mut props = vec![
        (KEY_FORMAT.to_owned(), "1".to_owned()),
        (KEY_WINDOW.to_owned(), s.window.to_string()),
        (KEY_STEP.to_owned(), format_duration(meta.step)),
        (
            KEY_STEPS.to_owned(),
            join(meta.steps.iter().map(|d| format_duration(*d)).collect()),
        ),
        (
            KEY_HORIZONS.to_owned(),
            join(
                s.horizon_steps
                    .iter()
                    .map(|k| format_duration(meta.step * *k as u32))
                    .collect(),
            ),
        ),
        (
            KEY_QUANTILES.to_owned(),
            join(s.quantiles.iter().map(|q| q.to_string()).collect()),
        ),
        (
            KEY_FEATURES.to_owned(),
            join(meta.features.iter().map(|f| f.name().to_owned()).collect()),
        ),
        (
            KEY_NORMALISATION.to_owned(),
            meta.normalisation.name().to_owned(),
        ),
    ];
    props.extend(meta.extra.iter().cloned());
    props
}
