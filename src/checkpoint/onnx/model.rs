//! The subset of `onnx.proto` gmnscope needs, decoded with [`super::proto`].
//!
//! Owns: field numbers (checked against onnx.proto of onnx 1.23), protobuf merge semantics
//! (a repeated `graph` field merges; repeated fields append) and the nesting limit. Of a node's
//! attributes only two kinds are decoded: tensor values (`value`, `value_floats`, what `Constant`
//! nodes hold) and graphs (`then_branch`/`else_branch` of `If`, `body` of `Loop`/`Scan`, any
//! other graph attribute). Subgraphs nest at most [`MAX_SUBGRAPH_DEPTH`] deep; deeper input is an
//! error, so the decoder's recursion is bounded whatever the file holds.
//! Payloads stay as ranges into the model bytes; [`super::tensor`] turns them into tensors.

use std::ops::Range;

use super::proto::{DecodeError, DecodeResult, Field, Fields, Value};
use crate::checkpoint::{Attribute, OpNode};

mod field {
    // ModelProto
    pub const MODEL_IR_VERSION: u32 = 1;
    pub const MODEL_GRAPH: u32 = 7;
    // GraphProto
    pub const GRAPH_NODE: u32 = 1;
    pub const GRAPH_NAME: u32 = 2;
    pub const GRAPH_INITIALIZER: u32 = 5;
    pub const GRAPH_INPUT: u32 = 11;
    pub const GRAPH_OUTPUT: u32 = 12;
    // NodeProto
    pub const NODE_INPUT: u32 = 1;
    pub const NODE_OUTPUT: u32 = 2;
    pub const NODE_NAME: u32 = 3;
    pub const NODE_OP_TYPE: u32 = 4;
    pub const NODE_ATTRIBUTE: u32 = 5;
    // AttributeProto
    pub const ATTR_NAME: u32 = 1;
    pub const ATTR_I: u32 = 3;
    pub const ATTR_S: u32 = 4;
    pub const ATTR_T: u32 = 5;
    pub const ATTR_G: u32 = 6;
    pub const ATTR_FLOATS: u32 = 7;
    pub const ATTR_INTS: u32 = 8;
    pub const ATTR_GRAPHS: u32 = 11;
    // ValueInfoProto
    pub const VALUE_INFO_NAME: u32 = 1;
    // TensorProto
    pub const TENSOR_DIMS: u32 = 1;
    pub const TENSOR_DATA_TYPE: u32 = 2;
    pub const TENSOR_FLOAT_DATA: u32 = 4;
    pub const TENSOR_INT32_DATA: u32 = 5;
    pub const TENSOR_INT64_DATA: u32 = 7;
    pub const TENSOR_NAME: u32 = 8;
    pub const TENSOR_RAW_DATA: u32 = 9;
    pub const TENSOR_DOUBLE_DATA: u32 = 10;
    pub const TENSOR_UINT64_DATA: u32 = 11;
    pub const TENSOR_EXTERNAL_DATA: u32 = 13;
    pub const TENSOR_DATA_LOCATION: u32 = 14;
    // StringStringEntryProto
    pub const ENTRY_KEY: u32 = 1;
    pub const ENTRY_VALUE: u32 = 2;
}

/// `TensorProto.DataLocation.EXTERNAL`.
pub const DATA_LOCATION_EXTERNAL: u64 = 1;
/// `TensorProto.DataType.FLOAT`.
pub const DATA_TYPE_FLOAT: i32 = 1;
/// `TensorProto.DataType.INT32` and `INT64`.
const DATA_TYPE_INT32: i32 = 6;
const DATA_TYPE_INT64: i32 = 7;

/// How deep graphs may nest inside node attributes (the main graph is depth 0). Real models nest
/// a few levels (a `Loop` inside an `If`); the limit bounds the decoder's recursion.
pub const MAX_SUBGRAPH_DEPTH: usize = 64;

/// A GraphProto, reduced to names, the node list and the initializers.
#[derive(Debug, Default)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// A NodeProto: the operator, plus the attributes that can hold weights.
#[derive(Debug)]
pub struct Node {
    pub op: OpNode,
    /// A tensor-valued attribute named `value` (`Constant`'s tensor; `value_floats` arrives as a
    /// 1-D float tensor). Scalar and integer attributes are not decoded.
    pub value: Option<TensorProto>,
    /// Graph-valued attributes in file order: (`then_branch`, graph), (`body`, graph), ...; a
    /// `graphs` list contributes `name_0`, `name_1`, ...
    pub subgraphs: Vec<(String, Graph)>,
}

/// One piece of a repeated scalar field: a packed run or a single unpacked value (raw bits).
/// Protobuf allows both encodings, even mixed, for the same field.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    Packed(Range<usize>),
    Single(u64),
}

/// A TensorProto with its payload left in place.
#[derive(Debug, Default)]
pub struct TensorProto {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub raw_data: Option<Range<usize>>,
    pub float_data: Vec<Piece>,
    pub double_data: Vec<Piece>,
    pub int32_data: Vec<Piece>,
    pub int64_data: Vec<Piece>,
    pub uint64_data: Vec<Piece>,
    pub external_data: Vec<(String, String)>,
    pub data_location: u64,
}

/// Decodes the graph of a ModelProto (`bytes` is the whole file); a model without one is an error.
pub fn decode_model(bytes: &[u8]) -> DecodeResult<Graph> {
    let mut graph = Graph::default();
    let mut has_graph = false;
    for field in Fields::new(bytes, 0..bytes.len()) {
        let field = field?;
        if field.number == field::MODEL_GRAPH {
            merge_graph(bytes, field.bytes()?, &mut graph, 0)?;
            has_graph = true;
        }
    }
    if !has_graph {
        return Err(DecodeError { offset: bytes.len(), message: "the model has no graph (field 7)".into() });
    }
    Ok(graph)
}

/// Cheap structural check: the message starts with `ir_version` (tag 0x08) and every top-level
/// field frames correctly, one of them being a graph. Sub-messages are not entered.
pub fn looks_like_model(bytes: &[u8]) -> bool {
    if bytes.first() != Some(&((field::MODEL_IR_VERSION as u8) << 3)) {
        return false;
    }
    let mut has_graph = false;
    for field in Fields::new(bytes, 0..bytes.len()) {
        match field {
            Ok(f) if f.number == field::MODEL_GRAPH => has_graph = matches!(f.value, Value::Bytes(_)),
            Ok(f) if f.number <= 32 => {}
            _ => return false,
        }
    }
    has_graph
}

fn merge_graph(buf: &[u8], range: Range<usize>, graph: &mut Graph, depth: usize) -> DecodeResult<()> {
    for field in Fields::new(buf, range) {
        let field = field?;
        match field.number {
            field::GRAPH_NODE => graph.nodes.push(decode_node(buf, field.bytes()?, depth)?),
            field::GRAPH_NAME => graph.name = field.string(buf)?,
            field::GRAPH_INITIALIZER => graph.initializers.push(decode_tensor(buf, field.bytes()?)?),
            field::GRAPH_INPUT => graph.inputs.push(value_info_name(buf, field.bytes()?)?),
            field::GRAPH_OUTPUT => graph.outputs.push(value_info_name(buf, field.bytes()?)?),
            _ => {}
        }
    }
    Ok(())
}

fn decode_node(buf: &[u8], range: Range<usize>, depth: usize) -> DecodeResult<Node> {
    let op = OpNode::default();
    let mut node = Node { op, value: None, subgraphs: Vec::new() };
    for field in Fields::new(buf, range) {
        let field = field?;
        match field.number {
            field::NODE_INPUT => node.op.inputs.push(field.string(buf)?),
            field::NODE_OUTPUT => node.op.outputs.push(field.string(buf)?),
            field::NODE_NAME => node.op.name = field.string(buf)?,
            field::NODE_OP_TYPE => node.op.op_type = field.string(buf)?,
            field::NODE_ATTRIBUTE => decode_attribute(buf, &field, depth, &mut node)?,
            _ => {}
        }
    }
    Ok(node)
}

/// An AttributeProto: keeps tensor values named `value`/`value_floats`, every graph, and integer,
/// integer-list and string values (`axis`, `group`, `transB`, `direction`: what the architecture
/// rules read). Integer lists hold what the file spells out, so they cost at most a few times
/// their bytes.
fn decode_attribute(buf: &[u8], attribute: &Field, depth: usize, node: &mut Node) -> DecodeResult<()> {
    let mut name = String::new();
    let mut tensor = None;
    let mut floats = Vec::new();
    let mut graphs = Vec::new();
    let mut int = None;
    let mut ints: Option<Vec<i64>> = None;
    let mut string = None;
    for field in Fields::new(buf, attribute.bytes()?) {
        let field = field?;
        match field.number {
            field::ATTR_NAME => name = field.string(buf)?,
            // int64 on the wire: a varint holding the two's complement bits.
            field::ATTR_I => int = Some(field.varint()? as i64),
            field::ATTR_INTS => {
                let list = ints.get_or_insert_with(Vec::new);
                match &field.value {
                    Value::Bytes(packed) => {
                        for v in super::proto::packed_varints(buf, packed.clone()) {
                            list.push(v? as i64);
                        }
                    }
                    _ => list.push(field.varint()? as i64),
                }
            }
            field::ATTR_S => {
                string = Some(String::from_utf8_lossy(buf.get(field.bytes()?).unwrap_or_default()).into_owned())
            }
            field::ATTR_T => tensor = Some(decode_tensor(buf, field.bytes()?)?),
            field::ATTR_FLOATS => floats.push(piece(&field)?),
            field::ATTR_G | field::ATTR_GRAPHS => {
                if depth >= MAX_SUBGRAPH_DEPTH {
                    let message = format!("subgraphs nest more than {MAX_SUBGRAPH_DEPTH} levels deep");
                    return Err(DecodeError { offset: field.offset, message });
                }
                let mut graph = Graph::default();
                merge_graph(buf, field.bytes()?, &mut graph, depth + 1)?;
                graphs.push((field.number == field::ATTR_GRAPHS, graph));
            }
            _ => {}
        }
    }
    if let Some(v) = int {
        node.op.attributes.push((name.clone(), Attribute::Int(v)));
    }
    if let Some(v) = ints {
        node.op.attributes.push((name.clone(), Attribute::Ints(v)));
    }
    if let Some(v) = string {
        node.op.attributes.push((name.clone(), Attribute::Str(v)));
    }
    // A small integer `Constant` (slice bounds, axes, split sizes) is an operator argument, not a
    // tensor of the model: its values travel with the node for the rules that read them.
    if name == "value"
        && let Some(values) = tensor.as_ref().and_then(|t| small_ints(buf, t))
    {
        node.op.attributes.push((name.clone(), Attribute::Ints(values)));
    }
    match name.as_str() {
        "value" => node.value = tensor.or(node.value.take()),
        "value_floats" if !floats.is_empty() => node.value = Some(float_list(floats)),
        _ => {}
    }
    let mut listed = 0;
    for (in_list, graph) in graphs {
        let label = if in_list {
            listed += 1;
            format!("{name}_{}", listed - 1)
        } else {
            name.clone()
        };
        node.subgraphs.push((label, graph));
    }
    Ok(())
}

/// Integer constants of at most this many elements keep their values on the node.
const SMALL_INTS: usize = 64;

/// The values of an int64/int32 tensor of at most [`SMALL_INTS`] elements held in the file.
fn small_ints(buf: &[u8], t: &TensorProto) -> Option<Vec<i64>> {
    let count = t.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))?;
    let width = match t.data_type {
        DATA_TYPE_INT64 => 8,
        DATA_TYPE_INT32 => 4,
        _ => return None,
    };
    if count > SMALL_INTS {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    if let Some(range) = &t.raw_data {
        let bytes = buf.get(range.clone())?;
        if bytes.len() != count * width {
            return None;
        }
        for c in bytes.chunks_exact(width) {
            out.push(match width {
                8 => i64::from_le_bytes(c.try_into().ok()?),
                _ => i64::from(i32::from_le_bytes(c.try_into().ok()?)),
            });
        }
    } else {
        // Both are varints on the wire; an int32 is sign-extended, so the bits read as i64 hold it.
        let pieces = if width == 8 { &t.int64_data } else { &t.int32_data };
        for p in pieces {
            match p {
                Piece::Single(v) => out.push(*v as i64),
                Piece::Packed(range) => {
                    for v in super::proto::packed_varints(buf, range.clone()) {
                        out.push(v.ok()? as i64);
                        if out.len() > count {
                            return None;
                        }
                    }
                }
            }
            if out.len() > count {
                return None;
            }
        }
    }
    (out.len() == count).then_some(out)
}

/// `value_floats` as the 1-D float tensor it denotes.
fn float_list(pieces: Vec<Piece>) -> TensorProto {
    let count: usize = pieces
        .iter()
        .map(|p| match p {
            Piece::Packed(range) => range.len() / 4,
            Piece::Single(_) => 1,
        })
        .sum();
    TensorProto { dims: vec![count as i64], data_type: DATA_TYPE_FLOAT, float_data: pieces, ..TensorProto::default() }
}

fn value_info_name(buf: &[u8], range: Range<usize>) -> DecodeResult<String> {
    let mut name = String::new();
    for field in Fields::new(buf, range) {
        let field = field?;
        if field.number == field::VALUE_INFO_NAME {
            name = field.string(buf)?;
        }
    }
    Ok(name)
}

fn decode_tensor(buf: &[u8], range: Range<usize>) -> DecodeResult<TensorProto> {
    let mut t = TensorProto::default();
    for field in Fields::new(buf, range) {
        let field = field?;
        match field.number {
            field::TENSOR_DIMS => match &field.value {
                Value::Bytes(packed) => {
                    for v in super::proto::packed_varints(buf, packed.clone()) {
                        t.dims.push(v? as i64);
                    }
                }
                _ => t.dims.push(field.varint()? as i64),
            },
            // int32 on the wire is a sign-extended varint; truncation recovers the value.
            field::TENSOR_DATA_TYPE => t.data_type = field.varint()? as i32,
            field::TENSOR_FLOAT_DATA => t.float_data.push(piece(&field)?),
            field::TENSOR_INT32_DATA => t.int32_data.push(piece(&field)?),
            field::TENSOR_INT64_DATA => t.int64_data.push(piece(&field)?),
            field::TENSOR_NAME => t.name = field.string(buf)?,
            field::TENSOR_RAW_DATA => t.raw_data = Some(field.bytes()?),
            field::TENSOR_DOUBLE_DATA => t.double_data.push(piece(&field)?),
            field::TENSOR_UINT64_DATA => t.uint64_data.push(piece(&field)?),
            field::TENSOR_EXTERNAL_DATA => t.external_data.push(decode_entry(buf, field.bytes()?)?),
            field::TENSOR_DATA_LOCATION => t.data_location = field.varint()?,
            _ => {}
        }
    }
    Ok(t)
}

fn piece(field: &Field) -> DecodeResult<Piece> {
    Ok(match &field.value {
        Value::Bytes(range) => Piece::Packed(range.clone()),
        Value::Varint(v) | Value::Fixed64(v) => Piece::Single(*v),
        Value::Fixed32(v) => Piece::Single(u64::from(*v)),
    })
}

fn decode_entry(buf: &[u8], range: Range<usize>) -> DecodeResult<(String, String)> {
    let (mut key, mut value) = (String::new(), String::new());
    for field in Fields::new(buf, range) {
        let field = field?;
        match field.number {
            field::ENTRY_KEY => key = field.string(buf)?,
            field::ENTRY_VALUE => value = field.string(buf)?,
            _ => {}
        }
    }
    Ok((key, value))
}
