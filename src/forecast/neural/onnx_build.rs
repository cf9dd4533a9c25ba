//! Helpers to write ONNX graphs with the prost types of `proto/onnx.proto`: the fixture
//! model and the models `promcast train` exports. The export's nodes live here (not with the
//! trainer) because the native kernel (`native.rs`) recognises a graph by comparing its
//! nodes with them, in builds without the `offline` feature too.

use super::onnx::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

pub fn tensor_f32(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: data,
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

pub fn tensor_i64(name: &str, dims: &[i64], data: Vec<i64>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: data,
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
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

pub fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(i),
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Ints as i32),
        ints: ints.to_vec(),
        ..Default::default()
    }
}

pub fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(t),
        ..Default::default()
    }
}

pub enum Dim {
    Value(i64),
    Param(&'static str),
}

pub fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
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

/// Initializers and nodes that run an ONNX `LSTM` over the graph input `input`
/// (`[N, window, features]`) with weights named `w`, `r`, `b`, and leave its last hidden state
/// as `h_last` (`[N, hidden]`). The initial state is an explicit zero tensor built from the
/// input's shape: tract panics optimising an LSTM without one when the batch dimension is
/// symbolic. Also defines the constants `c_zero` and `c_one` (`[1]`, int64) for the caller.
pub fn lstm_front(w: &str, r: &str, b: &str, hidden: i64) -> (Vec<TensorProto>, Vec<NodeProto>) {
    let init = vec![
        tensor_i64("c_zero", &[1], vec![0]),
        tensor_i64("c_one", &[1], vec![1]),
        tensor_i64("c_hidden", &[1], vec![hidden]),
    ];
    let nodes = vec![
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
            &["x_tnf", w, r, b, "", "zero_state", "zero_state"],
            &["", "y_h"],
            vec![attr_int("hidden_size", hidden), attr_int("layout", 0)],
        ),
        node("Squeeze", &["y_h", "c_zero"], &["h_last"], vec![]),
    ];
    (init, nodes)
}

/// Nodes reading the head's extra inputs from `input`: the last `value` (`x_last3`
/// `[N,1,1]`, `x_last` `[N,1]`) and the seasonal lead and its mask at each horizon's
/// position (`seas`, `smask`, `[N,K]`).
pub fn feature_nodes() -> Vec<NodeProto> {
    vec![
        node(
            "Slice",
            &["input", "c_last_start", "c_last_end", "c_axes_12"],
            &["x_last3"],
            vec![],
        ),
        node("Reshape", &["x_last3", "c_col"], &["x_last"], vec![]),
        node(
            "Gather",
            &["input", "c_positions"],
            &["picked"],
            vec![attr_int("axis", 1)],
        ),
        node(
            "Slice",
            &["picked", "c_lead", "c_lead_end", "c_two"],
            &["seas3"],
            vec![],
        ),
        node("Reshape", &["seas3", "c_cols_k"], &["seas"], vec![]),
        node(
            "Slice",
            &["picked", "c_mask", "c_mask_end", "c_two"],
            &["smask3"],
            vec![],
        ),
        node("Reshape", &["smask3", "c_cols_k"], &["smask"], vec![]),
    ]
}

/// Nodes of the head: the MLP over `[h_last, x_last, seas, smask]`, then non-crossing
/// quantiles around the median plus the last value (`output`).
pub fn head_nodes() -> Vec<NodeProto> {
    vec![
        node(
            "Concat",
            &["h_last", "x_last", "seas", "smask"],
            &["z"],
            vec![attr_int("axis", 1)],
        ),
        node("MatMul", &["z", "head_W1"], &["z1"], vec![]),
        node("Add", &["z1", "head_b1"], &["z1b"], vec![]),
        node("Relu", &["z1b"], &["hid"], vec![]),
        node("MatMul", &["hid", "head_W2"], &["r2"], vec![]),
        node("Add", &["r2", "head_b2"], &["r2b"], vec![]),
        node("Reshape", &["r2b", "c_out_shape"], &["r"], vec![]),
        node("Softplus", &["r"], &["sp"], vec![]),
        node("MatMul", &["sp", "offsets_T"], &["spread"], vec![]),
        node(
            "Slice",
            &["r", "c_mid", "c_mid_end", "c_two"],
            &["rmid"],
            vec![],
        ),
        node("Add", &["rmid", "x_last3"], &["base"], vec![]),
        node("Add", &["spread", "base"], &["output"], vec![]),
    ]
}
