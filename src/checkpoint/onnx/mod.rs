//! ONNX model files: weights (initializers and `Constant` tensors, subgraphs included) become
//! tensors in file order, nodes become [`OpNode`](super::OpNode)s.
//!
//! - [`proto`]: a minimal protobuf wire-format decoder (no generated code, no dependency);
//! - [`model`]: the few onnx.proto messages and fields gmnscope needs (subgraphs depth-capped);
//! - [`flatten`]: which values are weights, subgraph paths, name scopes, `Identity` aliases;
//! - [`tensor`]: TensorProto payloads -> little-endian bytes (zero-copy where possible);
//! - [`external`]: tensors stored in a data file next to the model.

mod external;
mod flatten;
mod model;
mod proto;
mod tensor;

use std::path::Path;

use super::{Blob, Error, Format, Result, TensorStore};
use crate::text::shown;

/// Reads an ONNX model: its weights and its nodes, subgraphs inlined (rules in [`flatten`]).
pub fn read(path: &Path, blob: Blob) -> Result<TensorStore> {
    let graph =
        model::decode_model(blob.as_slice()).map_err(|e| Error::new(path, format!("invalid ONNX model: {e}")))?;
    let flat = flatten::flatten(graph, blob.len()).map_err(|e| Error::new(path, format!("invalid ONNX graph: {e}")))?;
    let mut external = external::ExternalFiles::new(path);
    let mut tensors = Vec::with_capacity(flat.weights.len());
    for flatten::Weight { proto, origin } in flat.weights {
        let name = proto.name.clone();
        let tensor = tensor::to_tensor_info(proto, &blob, &mut external)
            .map_err(|e| Error::new(path, format!("{origin} '{}': {e}", shown(&name))))?;
        tensors.push(tensor);
    }
    Ok(TensorStore::new(path, Format::Onnx, tensors)?.with_ops(flat.ops))
}

/// The graph's name and its declared inputs and outputs (value names), for callers that need to
/// know where data enters and leaves the node graph of [`read`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphIo {
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// Decodes only the graph's name, inputs and outputs.
pub fn graph_io(path: &Path, bytes: &[u8]) -> Result<GraphIo> {
    let graph = model::decode_model(bytes).map_err(|e| Error::new(path, format!("invalid ONNX model: {e}")))?;
    Ok(GraphIo { name: graph.name, inputs: graph.inputs, outputs: graph.outputs })
}

/// Cheap check that `bytes` start like a serialised ModelProto (ir_version first, top-level
/// fields well framed, a graph present).
pub fn looks_like_onnx(bytes: &[u8]) -> bool {
    model::looks_like_model(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny protobuf encoder for building test models.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field_varint(number: u32, v: u64, out: &mut Vec<u8>) {
        varint(u64::from(number) << 3, out);
        varint(v, out);
    }
    fn field_bytes(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
        varint((u64::from(number) << 3) | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn tensor(name: &str, dims: &[i64], data_type: u64, raw: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in dims {
            field_varint(1, d as u64, &mut t);
        }
        field_varint(2, data_type, &mut t);
        field_bytes(8, name.as_bytes(), &mut t);
        field_bytes(9, raw, &mut t);
        t
    }

    fn model(graph_fields: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        field_varint(1, 8, &mut m);
        field_bytes(7, graph_fields, &mut m);
        m
    }

    fn read_bytes(bytes: Vec<u8>) -> Result<TensorStore> {
        read(Path::new("t.onnx"), Blob::from_vec(bytes))
    }

    #[test]
    fn decodes_nodes_and_unpacked_dims() {
        let mut graph = Vec::new();
        let mut node = Vec::new();
        field_bytes(1, b"x", &mut node);
        field_bytes(1, b"w", &mut node);
        field_bytes(2, b"y", &mut node);
        field_bytes(3, b"mm", &mut node);
        field_bytes(4, b"MatMul", &mut node);
        field_bytes(5, b"\x0a\x01a", &mut node); // an attribute: skipped
        field_bytes(1, &node, &mut graph);
        field_bytes(5, &tensor("w", &[2, 1], 1, &[0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]), &mut graph);
        // float_data, packed (one run: zero-copy) and unpacked (fixed32 fields: owned).
        let mut packed = Vec::new();
        field_varint(1, 2, &mut packed);
        field_varint(2, 1, &mut packed);
        field_bytes(8, b"p", &mut packed);
        field_bytes(4, &[1.5f32, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(), &mut packed);
        field_bytes(5, &packed, &mut graph);
        let mut loose = Vec::new();
        field_bytes(1, &[0x02], &mut loose); // packed dims: [2]
        field_varint(2, 1, &mut loose);
        field_bytes(8, b"u", &mut loose);
        for v in [3.0f32, 4.0] {
            loose.push((4 << 3) | 5);
            loose.extend(v.to_le_bytes());
        }
        field_bytes(5, &loose, &mut graph);
        let bytes = model(&graph);
        assert!(looks_like_onnx(&bytes));
        let blob = Blob::from_vec(bytes);
        let store = read(Path::new("t.onnx"), blob.clone()).expect("valid");
        assert_eq!(store.get("w").map(|t| (t.shape.clone(), t.to_f32())), Some((vec![2, 1], vec![1.0, 2.0])));
        assert_eq!(store.get("p").map(|t| t.to_f32()), Some(vec![1.5, -1.0]));
        assert_eq!(store.get("u").map(|t| (t.shape.clone(), t.to_f32())), Some((vec![2], vec![3.0, 4.0])));
        let inside =
            |name: &str| store.get(name).is_some_and(|t| blob.as_slice().as_ptr_range().contains(&t.bytes().as_ptr()));
        assert!(inside("w") && inside("p") && !inside("u"), "raw_data and packed runs are zero-copy");
        let op = &store.ops[0];
        assert_eq!((op.name.as_str(), op.op_type.as_str()), ("mm", "MatMul"));
        assert_eq!((op.inputs.clone(), op.outputs.clone()), (vec!["x".into(), "w".into()], vec!["y".into()]));
    }

    #[test]
    fn hostile_tensors_are_errors() {
        let cases = [
            (tensor("a", &[-1], 1, &[]), "negative"),
            (tensor("a", &[1 << 62, 1 << 62], 1, &[]), "overflow"),
            (tensor("a", &[3], 1, &[0; 8]), "needs 12"),
            (tensor("a", &[1], 8, &[]), "STRING"),
            (tensor("a", &[1], 99, &[]), "not supported"),
        ];
        for (t, expected) in cases {
            let mut graph = Vec::new();
            field_bytes(5, &t, &mut graph);
            let err = read_bytes(model(&graph)).expect_err(expected).to_string();
            assert!(err.contains(expected) && err.contains("t.onnx"), "{err} should mention {expected}");
        }
    }

    #[test]
    fn truncated_and_corrupted_models_never_panic() {
        let mut graph = Vec::new();
        field_bytes(5, &tensor("w", &[2], 1, &[0; 8]), &mut graph);
        let good = model(&graph);
        for cut in 1..good.len() {
            assert!(read_bytes(good[..cut].to_vec()).is_err(), "truncated at {cut}");
        }
        for i in 0..good.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                let _ = read_bytes(bad);
            }
        }
    }

    #[test]
    fn deep_nesting_is_not_followed() {
        // 100k nested length-delimited fields below a subgraph: the graph's unknown field 6 is
        // skipped as one field, whatever it holds.
        // Built from the inside out: each level is just a tag and the length of what it wraps.
        let (mut len, mut prefixes) = (0usize, Vec::new());
        for _ in 0..100_000 {
            let mut prefix = Vec::new();
            varint((6 << 3) | 2, &mut prefix);
            varint(len as u64, &mut prefix);
            len += prefix.len();
            prefixes.push(prefix);
        }
        let nested: Vec<u8> = prefixes.into_iter().rev().flatten().collect();
        let mut node = Vec::new();
        field_bytes(4, b"If", &mut node);
        field_bytes(5, &nested, &mut node);
        let mut graph = Vec::new();
        field_bytes(1, &node, &mut graph);
        let store = read_bytes(model(&graph)).expect("valid");
        assert_eq!(store.ops.len(), 1);
    }

    /// A graph holding one `If` whose then_branch is `inner` (a serialised GraphProto body).
    fn if_graph(inner: &[u8], weight: &str) -> Vec<u8> {
        let mut attribute = Vec::new();
        field_bytes(1, b"then_branch", &mut attribute);
        field_bytes(6, inner, &mut attribute);
        let mut node = Vec::new();
        field_bytes(4, b"If", &mut node);
        field_bytes(5, &attribute, &mut node);
        let mut graph = Vec::new();
        field_bytes(5, &tensor(weight, &[2], 1, &[0; 8]), &mut graph);
        field_bytes(1, &node, &mut graph);
        graph
    }

    #[test]
    fn nested_subgraphs_are_read_up_to_the_depth_limit() {
        let mut graph = Vec::new();
        field_bytes(5, &tensor("w", &[2], 1, &[0; 8]), &mut graph);
        for _ in 0..model::MAX_SUBGRAPH_DEPTH {
            graph = if_graph(&graph, "w");
        }
        let store = read_bytes(model(&graph)).expect("at the limit");
        assert_eq!(store.len(), model::MAX_SUBGRAPH_DEPTH + 1);
        let deepest = store.tensors().last().map(|t| t.name.clone()).unwrap_or_default();
        assert!(deepest.starts_with("If_0/then_branch/If_0/then_branch/") && deepest.ends_with("/w"), "{deepest}");
        for _ in 0..200 - model::MAX_SUBGRAPH_DEPTH {
            graph = if_graph(&graph, "w");
        }
        let err = read_bytes(model(&graph)).expect_err("too deep").to_string();
        assert!(err.contains("nest more than 64") && err.contains("t.onnx"), "{err}");
    }

    #[test]
    fn rejects_non_models() {
        assert!(!looks_like_onnx(b""));
        assert!(!looks_like_onnx(b"\x08"));
        assert!(!looks_like_onnx(b"\x08\x07")); // no graph
        assert!(!looks_like_onnx(b"PK\x03\x04"));
        assert!(!looks_like_onnx(b"\x08\x07\x3a\x05ab")); // graph longer than the buffer
    }
}
