//! The CPU kernel's side in promcast: recognise a graph `promcast train` exported (the
//! built-in models are) and hand its weights to `promcast-lstm-kernel`
//! (`crates/lstm-kernel`), which runs it. Any other graph, or `inference.backend: tract`,
//! goes to tract.
//!
//! A graph is recognised only when its nodes are exactly the exporter's (compared node by
//! node with `onnx_build`), so the kernel computes the same function. Why a kernel of its
//! own: on the 2-core development machine tract spent 12% of an LSTM run in its matrix
//! kernel and the rest in scan bookkeeping, copies and page faults (`perf` on `cargo bench
//! --bench lstm`); the kernel is about 5 times as fast (docs/PERFORMANCE.md). Its outputs
//! match tract's within `tests/conformance.rs`'s tolerance, 1e-4 in normalised units.

use promcast_lstm_kernel::{Network, Weights};

use super::contract::PlanShape;
use super::onnx::{tensor_proto::DataType, ModelProto, TensorProto};
use super::onnx_build::{feature_nodes, head_nodes, lstm_front};

/// The exporter's names for the LSTM's weights.
const LSTM_W: &str = "lstm_W";
const LSTM_R: &str = "lstm_R";
const LSTM_B: &str = "lstm_B";

/// A recognised graph, ready for the kernel.
pub(super) struct NativePlan {
    shape: PlanShape,
    network: Network,
}

impl std::fmt::Debug for NativePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePlan")
            .field("shape", &self.shape)
            .field("hidden", &self.network.weights().hidden)
            .finish_non_exhaustive()
    }
}

/// Why a graph is not one the kernel serves (said at debug level; tract serves it).
pub(super) type NotRecognised = String;

impl NativePlan {
    /// The kernel's plan for `proto`, when its graph is exactly the exporter's.
    pub(super) fn recognise(proto: &ModelProto, shape: PlanShape) -> Result<Self, NotRecognised> {
        let graph = proto.graph.as_ref().ok_or("no graph")?;
        let init = |name: &str| {
            graph
                .initializer
                .iter()
                .find(|t| t.name.as_deref() == Some(name))
                .ok_or_else(|| format!("no initializer {name}"))
        };
        let r = init(LSTM_R)?;
        let [1, four_h, hidden] = r.dims[..] else {
            return Err(format!("{LSTM_R} has shape {:?}", r.dims));
        };
        if !(1..=1 << 16).contains(&hidden) || four_h != 4 * hidden {
            return Err(format!("{LSTM_R} has shape {:?}", r.dims));
        }
        let (_, mut expected) = lstm_front(LSTM_W, LSTM_R, LSTM_B, hidden);
        expected.extend(feature_nodes());
        expected.extend(head_nodes());
        if graph.node != expected {
            return Err("the graph's nodes are not those promcast train exports".into());
        }
        if graph.input.len() != 1 || graph.output.len() != 1 || shape.output_index != 0 {
            return Err("not one input and one output".into());
        }
        let (h, f) = (hidden as usize, shape.features);
        let (k, q) = (shape.horizons, shape.quantiles);
        let (h64, f64_) = (h as i64, f as i64);
        let wx = floats(init(LSTM_W)?, &[1, 4 * h64, f64_])?;
        let wh = floats(r, &[1, 4 * h64, h64])?;
        let b = floats(init(LSTM_B)?, &[1, 8 * h64])?;
        let w1_t = init("head_W1")?;
        let (z, head) = match w1_t.dims[..] {
            [z, hd] if z > 0 && hd > 0 => (z as usize, hd as usize),
            _ => return Err(format!("head_W1 has shape {:?}", w1_t.dims)),
        };
        if z != h + 1 + 2 * k {
            return Err(format!("head_W1 has {z} rows, expected {}", h + 1 + 2 * k));
        }
        let ints = |name: &str, len: usize| ints(init(name)?, len);
        let last_start = ints("c_last_start", 2)?;
        let positions = ints("c_positions", k)?;
        let lead = ints("c_lead", 1)?[0];
        let mask = ints("c_mask", 1)?[0];
        let mid = ints("c_mid", 1)?[0];
        let w = shape.window;
        if last_start[0] + 1 != w {
            return Err("the last value is not sliced from the window's last step".into());
        }
        // The positions and indices themselves are checked by `Network::new`.
        // The other constants the nodes read must be the exporter's for these shapes.
        let i = |x: usize| x as i64;
        for (name, want) in [
            ("c_zero", vec![0]),
            ("c_one", vec![1]),
            ("c_two", vec![2]),
            ("c_hidden", vec![hidden]),
            ("c_last_end", vec![i(w), i(last_start[1] + 1)]),
            ("c_axes_12", vec![1, 2]),
            ("c_col", vec![-1, 1]),
            ("c_cols_k", vec![-1, i(k)]),
            ("c_lead_end", vec![i(lead + 1)]),
            ("c_mask_end", vec![i(mask + 1)]),
            ("c_mid_end", vec![i(mid + 1)]),
            ("c_out_shape", vec![-1, i(k), i(q)]),
        ] {
            let t = init(name)?;
            if t.data_type != Some(DataType::Int64 as i32) || int64s(t) != want {
                return Err(format!("{name} is not {want:?}"));
            }
        }
        let network = Network::new(Weights {
            window: w,
            features: f,
            hidden: h,
            horizons: k,
            quantiles: q,
            w: wx,
            r: wh,
            b,
            w1: floats(w1_t, &[z as i64, head as i64])?,
            b1: floats(init("head_b1")?, &[head as i64])?,
            w2: floats(init("head_W2")?, &[head as i64, (k * q) as i64])?,
            b2: floats(init("head_b2")?, &[(k * q) as i64])?,
            offsets_t: floats(init("offsets_T")?, &[q as i64, q as i64])?,
            positions,
            value_feature: last_start[1],
            lead_feature: lead,
            mask_feature: mask,
            mid,
        })?;
        Ok(NativePlan { shape, network })
    }

    /// Runs `rows` rows of `input` (`[rows, window, features]`); `out` is cleared and filled
    /// with `rows × horizons × quantiles` values, as tract's plan does.
    pub(super) fn run(&self, rows: usize, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        self.shape.check_input(rows, input)?;
        self.network.run(rows, input, out)
    }
}

/// An f32 initializer of exactly `dims`.
fn floats(t: &TensorProto, dims: &[i64]) -> Result<Vec<f32>, NotRecognised> {
    let name = t.name.as_deref().unwrap_or("?");
    if t.dims != dims || t.data_type != Some(DataType::Float as i32) {
        return Err(format!(
            "{name}: {:?} {:?}, expected f32 {dims:?}",
            t.data_type, t.dims
        ));
    }
    let len = dims.iter().product::<i64>() as usize;
    let data: Vec<f32> = match &t.raw_data {
        Some(raw) if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        _ => t.float_data.clone(),
    };
    if data.len() != len {
        return Err(format!("{name}: {} values, expected {len}", data.len()));
    }
    Ok(data)
}

/// The values of an int64 initializer, raw or typed.
fn int64s(t: &TensorProto) -> Vec<i64> {
    match &t.raw_data {
        Some(raw) if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("chunks of 8")))
            .collect(),
        _ => t.int64_data.clone(),
    }
}

/// A non-negative int64 initializer of `len` values.
fn ints(t: &TensorProto, len: usize) -> Result<Vec<usize>, NotRecognised> {
    let name = t.name.as_deref().unwrap_or("?");
    let data = int64s(t);
    if t.data_type != Some(DataType::Int64 as i32) || data.len() != len {
        return Err(format!("{name}: expected {len} int64 values"));
    }
    data.iter()
        .map(|&v| usize::try_from(v).map_err(|_| format!("{name}: negative value {v}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use promcast_lstm_kernel::{sigmoid, softplus, tanh};
    use prost::Message;

    use super::super::contract::parse_meta;
    use super::super::BUILTIN_MODEL;
    use super::*;

    /// The built-in model is recognised; the same graph with one constant or one node
    /// changed is not (tract would run it).
    #[test]
    fn only_the_exporters_graph_is_recognised() {
        let proto = ModelProto::decode(BUILTIN_MODEL).unwrap();
        let shape = parse_meta(&proto.metadata_props, "builtin")
            .unwrap()
            .plan_shape(0);
        assert!(NativePlan::recognise(&proto, shape).is_ok());

        let mut other = proto.clone();
        let graph = other.graph.as_mut().unwrap();
        let t = (graph.initializer.iter_mut())
            .find(|t| t.name.as_deref() == Some("c_lead_end"))
            .unwrap();
        t.int64_data[0] += 1;
        let err = NativePlan::recognise(&other, shape).unwrap_err();
        assert!(err.contains("c_lead_end"), "{err}");

        let mut other = proto.clone();
        let graph = other.graph.as_mut().unwrap();
        let relu = (graph.node.iter_mut())
            .find(|n| n.op_type.as_deref() == Some("Relu"))
            .unwrap();
        relu.op_type = Some("Sigmoid".into());
        let err = NativePlan::recognise(&other, shape).unwrap_err();
        assert!(err.contains("nodes"), "{err}");
    }

    #[test]
    fn the_kernels_rational_tanh_is_within_1e6_of_the_exact_one() {
        let mut worst = 0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            worst = worst.max((tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(tanh(1e6), tanh(7.905_311));
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert!((softplus(100.0) - 100.0).abs() < 1e-4 && softplus(-100.0) >= 0.0);
    }
}
