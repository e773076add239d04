//! Architecture -> node and edge blocks (the rules of papers.md §2, see the module docs of `graph`).
//!
//! Every tensor shape is checked against what its layer says before a block points at it, and
//! every parameter must be covered exactly once, so the inversion is exact by construction.

use std::collections::HashMap;

use super::{
    DenseOrder, EdgeBlock, EdgeType, EdgeValues, Error, NodeBlock, NodeRole, NodeType, ParamGraph, ParamTensor,
};
use crate::arch::{Architecture, Input, KernelLayout, Layer, LayerKind, MatrixLayout, NormKind, Qkv};
use crate::checkpoint::TensorStore;

/// The shape of a Linear or conv layer as the graph sees it.
struct Dense<'a> {
    /// Input neurons (channels) and output neurons.
    inp: usize,
    out: usize,
    /// The weight tensor's shape.
    shape: &'a [usize],
    /// Parallel edges per (input, output) pair: the conv kernel, or the positions of a flattened map.
    kernel: &'a [usize],
    order: DenseOrder,
    groups: usize,
}

/// Builds the parameter graph of `arch`, whose tensors live in `store`. Cost: O(layers), no
/// per-edge work (edges stay implicit).
pub fn build(arch: &Architecture, store: &TensorStore) -> Result<ParamGraph, Error> {
    let mut b = Builder {
        store,
        nodes: Vec::new(),
        edges: Vec::new(),
        params: Vec::new(),
        param_index: HashMap::new(),
        layer_in: vec![None; arch.layers.len()],
        layer_out: vec![None; arch.layers.len()],
        consumed: Vec::new(),
        num_nodes: 0,
        num_edges: 0,
        layer: 0,
        layer_name: String::new(),
    };
    for (i, layer) in arch.layers.iter().enumerate() {
        b.layer = i;
        b.layer_name = layer.name.clone();
        b.add_layer(layer)?;
    }
    b.finish()
}

/// Nodes `start..start + len` of node block `block`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seg {
    block: usize,
    start: usize,
    len: usize,
}

/// A neuron group: the segments it is made of, in order. One segment for a layer's own output;
/// several for a concatenation; part of one for a split.
type Group = Vec<Seg>;

fn width(group: &[Seg]) -> usize {
    group.iter().map(|s| s.len).sum()
}

/// Neurons `start..start + len` of `group` (empty when out of range).
fn sub_group(group: &[Seg], start: usize, len: usize) -> Group {
    let mut out = Vec::new();
    let (mut pos, end) = (0usize, start.saturating_add(len));
    for s in group {
        let (lo, hi) = (pos.max(start), (pos + s.len).min(end));
        if lo < hi {
            out.push(Seg { block: s.block, start: s.start + (lo - pos), len: hi - lo });
        }
        pos += s.len;
    }
    out
}

/// Pairs the neurons of two groups of one width piece by piece: `(a piece, b piece)` of equal length.
fn aligned(a: &[Seg], b: &[Seg]) -> Vec<(Seg, Seg)> {
    let mut out = Vec::new();
    let (mut i, mut j, mut da, mut db) = (0usize, 0usize, 0usize, 0usize);
    while let (Some(sa), Some(sb)) = (a.get(i), b.get(j)) {
        let len = (sa.len - da).min(sb.len - db);
        if len > 0 {
            out.push((
                Seg { block: sa.block, start: sa.start + da, len },
                Seg { block: sb.block, start: sb.start + db, len },
            ));
        }
        da += len;
        db += len;
        if da >= sa.len {
            i += 1;
            da = 0;
        }
        if db >= sb.len {
            j += 1;
            db = 0;
        }
        if len == 0 {
            break;
        }
    }
    out
}

struct Builder<'s> {
    store: &'s TensorStore,
    nodes: Vec<NodeBlock>,
    edges: Vec<EdgeBlock>,
    params: Vec<ParamTensor>,
    param_index: HashMap<String, usize>,
    /// Per architecture layer: the neurons it reads and the neurons of its output.
    layer_in: Vec<Option<Group>>,
    layer_out: Vec<Option<Group>>,
    /// Per node block: read by a weight layer (so not a final output).
    consumed: Vec<bool>,
    num_nodes: usize,
    num_edges: usize,
    /// The layer being built (for errors and labels).
    layer: usize,
    layer_name: String,
}

/// Node types of a norm's gamma/beta nodes and edge types of its edges.
fn norm_types(kind: NormKind) -> (NodeType, NodeType, EdgeType, EdgeType) {
    match kind {
        NormKind::Batch => (NodeType::BnGamma, NodeType::BnBeta, EdgeType::BnGamma, EdgeType::BnBeta),
        NormKind::Layer => (NodeType::LnGamma, NodeType::LnBeta, EdgeType::LnGamma, EdgeType::LnBeta),
        NormKind::Group => (NodeType::GnGamma, NodeType::GnBeta, EdgeType::GnGamma, EdgeType::GnBeta),
        NormKind::Instance => (NodeType::InGamma, NodeType::InBeta, EdgeType::InGamma, EdgeType::InBeta),
    }
}

fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// A shape without its size-1 dimensions (ONNX stores a PReLU slope as `[C, 1, 1]`, an LSTM
/// weight as `[1, 4H, in]`).
fn squeezed(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// Where a dense weight lives and how its elements are laid out.
struct DenseWeight<'k> {
    param: usize,
    offset: usize,
    kernel: &'k [usize],
    order: DenseOrder,
}

impl Builder<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::Layer { layer: self.layer_name.clone(), message: message.into() }
    }

    fn node_block(&self, i: usize) -> Result<&NodeBlock, Error> {
        self.nodes.get(i).ok_or_else(|| self.err("internal: bad node block"))
    }

    /// The layer index of a group: the deepest of its blocks (a concatenation may mix depths).
    fn depth(&self, group: &[Seg]) -> Result<i64, Error> {
        let mut depth = None;
        for s in group {
            let d = self.node_block(s.block)?.layer_index;
            depth = Some(depth.map_or(d, |x: i64| x.max(d)));
        }
        depth.ok_or_else(|| self.err("an empty neuron group"))
    }

    fn add_nodes(&mut self, len: usize, layer_index: i64, node_type: NodeType, role: NodeRole, label: String) -> usize {
        let ordered = role == NodeRole::Input;
        self.nodes.push(NodeBlock {
            start: self.num_nodes,
            len,
            layer_index,
            node_type,
            ordered,
            role,
            layer: self.layer,
            label,
        });
        self.consumed.push(false);
        self.num_nodes += len;
        self.nodes.len() - 1
    }

    fn whole(&self, block: usize) -> Seg {
        Seg { block, start: 0, len: self.nodes.get(block).map_or(0, |b| b.len) }
    }

    /// Registers (once) a parameter tensor and checks its shape is `shape`.
    fn param(&mut self, name: &str, shape: &[usize]) -> Result<usize, Error> {
        self.param_with(name, shape, false)
    }

    /// [`Self::param`] that ignores size-1 dimensions (`[C, 1, 1]` for `[C]`).
    fn param_squeezed(&mut self, name: &str, shape: &[usize]) -> Result<usize, Error> {
        self.param_with(name, shape, true)
    }

    fn param_with(&mut self, name: &str, shape: &[usize], squeeze: bool) -> Result<usize, Error> {
        let t = self.store.get(name).ok_or_else(|| Error::MissingTensor(name.to_string()))?;
        let fits = if squeeze { squeezed(&t.shape) == squeezed(shape) } else { t.shape == shape };
        if !fits {
            return Err(self.err(format!("tensor '{name}' has shape {:?}, expected {shape:?}", t.shape)));
        }
        let numel = checked_product(shape).ok_or_else(|| self.err(format!("tensor '{name}' is too large")))?;
        if numel.checked_mul(t.dtype.size()) != Some(t.data.len()) {
            return Err(self.err(format!("tensor '{name}' has {} bytes for shape {shape:?}", t.data.len())));
        }
        if let Some(&i) = self.param_index.get(name) {
            return Ok(i);
        }
        self.params.push(ParamTensor { name: name.to_string(), shape: t.shape.clone(), tensor: t.clone() });
        self.param_index.insert(name.to_string(), self.params.len() - 1);
        Ok(self.params.len() - 1)
    }

    fn add_edges(
        &mut self,
        src: Seg,
        dst: Seg,
        edge_type: EdgeType,
        layer_index: i64,
        values: EdgeValues,
    ) -> Result<(), Error> {
        let (sb, db) = (self.node_block(src.block)?.len, self.node_block(dst.block)?.len);
        if src.start + src.len > sb || dst.start + dst.len > db {
            return Err(self.err("internal: an edge block outside its node blocks"));
        }
        let (s, d) = (src.len, dst.len);
        let len = match &values {
            EdgeValues::Dense { out, inp, kernel, col, cols, .. } => {
                if (*out, *inp) != (d, s) || col + inp > *cols {
                    return Err(self.err(format!("weight {out}x{inp} between groups of {s} and {d} neurons")));
                }
                checked_product(kernel).and_then(|k| k.checked_mul(*out)?.checked_mul(*inp))
            }
            EdgeValues::PerTarget { .. } => (s == 1).then_some(d),
            EdgeValues::Ones => (s == d).then_some(d),
        }
        .ok_or_else(|| self.err("edge block with inconsistent sizes"))?;
        let first_edge = self.num_edges;
        self.num_edges = first_edge.checked_add(len).ok_or_else(|| self.err("too many edges"))?;
        self.edges.push(EdgeBlock {
            src: src.block,
            dst: dst.block,
            src_offset: src.start,
            dst_offset: dst.start,
            edge_type,
            layer_index,
            values,
            first_edge,
            len,
            layer: self.layer,
        });
        Ok(())
    }

    /// Edges of a dense `[out, cols, kernel...]` weight from the neurons of `x` (its `cols`
    /// columns, in order, one edge block per segment) to the target segment `y`.
    fn dense_edges(
        &mut self,
        x: &[Seg],
        y: Seg,
        w: &DenseWeight,
        edge_type: EdgeType,
        layer_index: i64,
    ) -> Result<(), Error> {
        let cols = width(x);
        let mut col = 0;
        for s in x {
            let values = EdgeValues::Dense {
                param: w.param,
                offset: w.offset,
                out: y.len,
                inp: s.len,
                kernel: w.kernel.to_vec(),
                order: w.order,
                col,
                cols,
            };
            self.add_edges(*s, y, edge_type, layer_index, values)?;
            col += s.len;
        }
        Ok(())
    }

    /// A single bias/gamma/beta node with one edge per target neuron carrying `tensor[offset + t]`.
    fn vector_edges(
        &mut self,
        tensor: &str,
        offset: usize,
        dst: &[Seg],
        (node_type, edge_type): (NodeType, EdgeType),
        (node_layer, edge_layer): (i64, i64),
        label: &str,
    ) -> Result<(), Error> {
        let node =
            self.add_nodes(1, node_layer, node_type, NodeRole::Parameter, format!("{} {label}", self.layer_name));
        let p = self.param_index.get(tensor).copied().ok_or_else(|| Error::MissingTensor(tensor.to_string()))?;
        let mut at = offset;
        for s in dst {
            let values = EdgeValues::PerTarget { param: p, offset: at };
            self.add_edges(self.whole(node), *s, edge_type, edge_layer, values)?;
            at += s.len;
        }
        Ok(())
    }

    /// The neurons `input` refers to, without a width check (`None` for a fresh group).
    fn lookup(&self, input: Input) -> Result<Option<Group>, Error> {
        match input {
            Input::Fresh => Ok(None),
            Input::Layer(j) if j < self.layer => self
                .layer_out
                .get(j)
                .cloned()
                .flatten()
                .map(Some)
                .ok_or_else(|| self.err(format!("layer #{j} has no output"))),
            Input::InputOf(j) if j < self.layer => self
                .layer_in
                .get(j)
                .cloned()
                .flatten()
                .map(Some)
                .ok_or_else(|| self.err(format!("layer #{j} has no input"))),
            _ => Err(self.err("reads a layer that comes after it")),
        }
    }

    /// The neurons `input` refers to, creating a fresh input group of `width` when asked.
    fn resolve(&mut self, input: Input, width_wanted: usize, fresh_type: NodeType) -> Result<Group, Error> {
        let group = match self.lookup(input)? {
            Some(group) => group,
            None => {
                let label = format!("{} input", self.layer_name);
                let block = self.add_nodes(width_wanted, 0, fresh_type, NodeRole::Input, label);
                vec![self.whole(block)]
            }
        };
        let have = width(&group);
        if have != width_wanted {
            return Err(self.err(format!("expects {width_wanted} inputs but is wired to {have}")));
        }
        Ok(group)
    }

    fn consume(&mut self, group: &[Seg]) {
        for s in group {
            if let Some(c) = self.consumed.get_mut(s.block) {
                *c = true;
            }
        }
    }

    fn add_layer(&mut self, layer: &Layer) -> Result<(), Error> {
        let name = layer.name.clone();
        match &layer.kind {
            LayerKind::Linear { in_features, out_features, weight, bias, layout, positions } => {
                let positions = (*positions).max(1);
                if in_features % positions != 0 {
                    return Err(self.err(format!("{in_features} inputs are not {positions} positions per channel")));
                }
                let (order, shape) = match layout {
                    MatrixLayout::OutIn => (DenseOrder::OutInKernel, [*out_features, *in_features]),
                    MatrixLayout::InOut => (DenseOrder::KernelInOut, [*in_features, *out_features]),
                };
                // A flattened C x P map: C channel nodes, P parallel edges per pair (like a kernel).
                let kernel = if positions > 1 { vec![positions] } else { Vec::new() };
                let types = (NodeType::Neuron, NodeType::Bias, EdgeType::LinWeight, EdgeType::LinBias);
                let dense = Dense {
                    inp: in_features / positions,
                    out: *out_features,
                    shape: &shape,
                    kernel: &kernel,
                    order,
                    groups: 1,
                };
                self.dense_layer(layer, &dense, weight, bias.as_deref(), types)
            }
            LayerKind::Conv { in_channels, out_channels, kernel, weight, bias, layout, groups, .. } => {
                let groups = (*groups).max(1);
                if in_channels % groups != 0 || out_channels % groups != 0 {
                    return Err(self.err(format!("{in_channels} -> {out_channels} channels in {groups} groups")));
                }
                let (order, shape) = match layout {
                    KernelLayout::OutInKernel => {
                        let mut s = vec![*out_channels, in_channels / groups];
                        s.extend(kernel);
                        (DenseOrder::OutInKernel, s)
                    }
                    KernelLayout::KernelInOut if groups == 1 => {
                        let mut s = kernel.clone();
                        s.extend([*in_channels, *out_channels]);
                        (DenseOrder::KernelInOut, s)
                    }
                    KernelLayout::KernelInOut => return Err(self.err("grouped convolutions in HWIO layout")),
                    // Group j's rows (inputs j * in/g..) hold `out / groups` outputs each: the same
                    // offsets as `[out, in / groups, k...]`.
                    KernelLayout::InOutKernel => {
                        let mut s = vec![*in_channels, out_channels / groups];
                        s.extend(kernel);
                        (DenseOrder::InOutKernel, s)
                    }
                };
                if kernel.is_empty() || kernel.len() > 3 {
                    return Err(self.err(format!("conv kernel {kernel:?} is not 1-3 dimensional")));
                }
                let types = (NodeType::Channel, NodeType::ChannelBias, EdgeType::ConvWeight, EdgeType::ConvBias);
                let dense = Dense { inp: *in_channels, out: *out_channels, shape: &shape, kernel, order, groups };
                self.dense_layer(layer, &dense, weight, bias.as_deref(), types)
            }
            LayerKind::Norm { kind, features, gamma, beta, .. } => {
                let x = self.resolve(layer.input, *features, NodeType::Neuron)?;
                let d = self.depth(&x)?;
                let (gn, bn, ge, be) = norm_types(*kind);
                if let Some(g) = gamma {
                    self.param(g, &[*features])?;
                    self.vector_edges(g, 0, &x, (gn, ge), (d, d), "gamma")?;
                }
                if let Some(b) = beta {
                    self.param(b, &[*features])?;
                    self.vector_edges(b, 0, &x, (bn, be), (d, d), "beta")?;
                }
                self.set_io(x.clone(), x);
                Ok(())
            }
            LayerKind::PerChannel { role, features, weight } => {
                let x = self.resolve(layer.input, *features, NodeType::Neuron)?;
                let d = self.depth(&x)?;
                self.param_squeezed(weight, &[*features])?;
                let types = (NodeType::ChannelParam, EdgeType::ChannelParam);
                self.vector_edges(weight, 0, &x, types, (d, d), role)?;
                self.set_io(x.clone(), x);
                Ok(())
            }
            LayerKind::Concat { parts, features } => {
                let mut union = Group::new();
                for &part in parts {
                    let group = self.lookup(part)?.ok_or_else(|| self.err("concatenates a fresh group"))?;
                    union.extend(group);
                }
                if width(&union) != *features {
                    return Err(self.err(format!("concatenates {} neurons, expected {features}", width(&union))));
                }
                let first = match parts.first() {
                    Some(&p) => self.lookup(p)?.unwrap_or_default(),
                    None => Group::new(),
                };
                self.set_io(first, union);
                Ok(())
            }
            LayerKind::Slice { start, len, features_in } => {
                let x = self.resolve(layer.input, *features_in, NodeType::Neuron)?;
                let out = sub_group(&x, *start, *len);
                if width(&out) != *len || *len == 0 {
                    return Err(self.err(format!("slice {start}..{} of {features_in} neurons", start + len)));
                }
                self.set_io(x, out);
                Ok(())
            }
            LayerKind::Recurrent {
                cell,
                input_size,
                hidden,
                weight_ih,
                weight_hh,
                bias_ih,
                bias_hh,
                direction,
                directions,
            } => {
                let (e, h, gates) = (*input_size, *hidden, cell.gates());
                let (dir, dirs) = (*direction, *directions);
                if dir >= dirs {
                    return Err(self.err(format!("direction {dir} of {dirs}")));
                }
                let x = self.resolve(layer.input, e, NodeType::Neuron)?;
                self.consume(&x);
                let d = self.depth(&x)?;
                let rows = gates.checked_mul(h).ok_or_else(|| self.err("recurrent layer too large"))?;
                // Several directions stack along a leading axis: this one's values start at `dir` times
                // one direction's size.
                let stacked = |shape: &[usize]| -> Vec<usize> {
                    if dirs > 1 { std::iter::once(dirs).chain(shape.iter().copied()).collect() } else { shape.to_vec() }
                };
                let wi = self.param_squeezed(weight_ih, &stacked(&[rows, e]))?;
                let wh = self.param_squeezed(weight_hh, &stacked(&[rows, h]))?;
                let (wi_base, wh_base) = (dir * rows * e, dir * rows * h);
                // One tensor holding both biases (ONNX `B`): the hidden biases start after the input ones.
                let shared_bias = bias_ih.is_some() && bias_ih == bias_hh;
                let bias_base = if shared_bias { dir * 2 * rows } else { dir * rows };
                if shared_bias && let Some(b) = bias_ih {
                    self.param_squeezed(b, &stacked(&[2 * rows]))?;
                } else {
                    for b in [bias_ih, bias_hh].into_iter().flatten() {
                        self.param_squeezed(b, &stacked(&[rows]))?;
                    }
                }
                // h(t-1) is an input of the cell: recurrent weights run from it to the hidden
                // nodes, which keeps the graph acyclic without inventing neurons.
                let state = self.add_nodes(h, d, NodeType::Neuron, NodeRole::State, format!("{name} h(t-1)"));
                self.consume(&[self.whole(state)]);
                let y = self.add_nodes(h, d + 1, NodeType::Neuron, NodeRole::Neurons, format!("{name} -> hidden"));
                let y_seg = self.whole(y);
                for g in 0..gates {
                    let offset = wi_base + g * h * e;
                    let w = DenseWeight { param: wi, offset, kernel: &[], order: DenseOrder::OutInKernel };
                    self.dense_edges(&x, y_seg, &w, EdgeType::LinWeight, d)?;
                    let offset = wh_base + g * h * h;
                    let w = DenseWeight { param: wh, offset, kernel: &[], order: DenseOrder::OutInKernel };
                    self.dense_edges(&[self.whole(state)], y_seg, &w, EdgeType::LinWeight, d)?;
                }
                let hidden_base = bias_base + if shared_bias { rows } else { 0 };
                for (b, which, base) in [(bias_ih, "input", bias_base), (bias_hh, "hidden", hidden_base)] {
                    let Some(b) = b else { continue };
                    for g in 0..gates {
                        let label = format!("gate {g} {which} bias");
                        let types = (NodeType::Bias, EdgeType::LinBias);
                        self.vector_edges(b, base + g * h, &[y_seg], types, (d + 1, d), &label)?;
                    }
                }
                self.set_io(x, vec![y_seg]);
                Ok(())
            }
            LayerKind::Embedding { dim, tables } => {
                let mut inputs = Vec::new();
                for t in tables {
                    let shape = match t.layout {
                        MatrixLayout::InOut => [t.num, *dim],
                        MatrixLayout::OutIn => [*dim, t.num],
                    };
                    let p = self.param(&t.tensor, &shape)?;
                    let label = format!("{} rows", t.tensor);
                    inputs.push((self.add_nodes(t.num, 0, NodeType::Neuron, NodeRole::Input, label), p, t));
                }
                let out = self.add_nodes(*dim, 1, NodeType::Neuron, NodeRole::Neurons, format!("{name} -> out"));
                let out_seg = self.whole(out);
                for (x, p, t) in inputs {
                    let order = match t.layout {
                        MatrixLayout::InOut => DenseOrder::KernelInOut,
                        MatrixLayout::OutIn => DenseOrder::OutInKernel,
                    };
                    let w = DenseWeight { param: p, offset: 0, kernel: &[], order };
                    let x_seg = self.whole(x);
                    self.dense_edges(&[x_seg], out_seg, &w, EdgeType::LinWeight, 0)?;
                    self.consume(&[x_seg]);
                }
                self.layer_in[self.layer] = None;
                self.layer_out[self.layer] = Some(vec![out_seg]);
                Ok(())
            }
            LayerKind::Attention { embed_dim, attn_dim, out_dim, qkv, out } => {
                let (e, a) = (*embed_dim, *attn_dim);
                let x = self.resolve(layer.input, e, NodeType::Neuron)?;
                self.consume(&x);
                let d = self.depth(&x)?;
                let attn = self.add_nodes(
                    a,
                    d + 1,
                    NodeType::AttentionNeuron,
                    NodeRole::Attention,
                    format!("{name} attention"),
                );
                let attn_seg = self.whole(attn);
                // (weight tensor, row offset in it, bias tensor, offset in it) for q, k, v.
                let parts: Vec<(String, usize, Option<String>, usize)> = match qkv {
                    Qkv::Fused(p) => {
                        let rows = a.checked_mul(3).ok_or_else(|| self.err("attention too large"))?;
                        self.param(&p.weight, &[rows, e])?;
                        if let Some(b) = &p.bias {
                            self.param(b, &[rows])?;
                        }
                        (0..3).map(|j| (p.weight.clone(), j * a * e, p.bias.clone(), j * a)).collect()
                    }
                    Qkv::Separate { q, k, v } => {
                        let mut parts = Vec::new();
                        for p in [q, k, v] {
                            self.param(&p.weight, &[a, e])?;
                            if let Some(b) = &p.bias {
                                self.param(b, &[a])?;
                            }
                            parts.push((p.weight.clone(), 0, p.bias.clone(), 0));
                        }
                        parts
                    }
                };
                for ((w, w_off, bias, b_off), label) in parts.into_iter().zip(["q bias", "k bias", "v bias"]) {
                    let p = self.param_index.get(&w).copied().ok_or_else(|| Error::MissingTensor(w.clone()))?;
                    let weight = DenseWeight { param: p, offset: w_off, kernel: &[], order: DenseOrder::OutInKernel };
                    self.dense_edges(&x, attn_seg, &weight, EdgeType::LinWeight, d)?;
                    if let Some(b) = bias {
                        let types = (NodeType::AttentionBias, EdgeType::LinBias);
                        self.vector_edges(&b, b_off, &[attn_seg], types, (d + 1, d), label)?;
                    }
                }
                self.consume(&[attn_seg]);
                let y = self.add_nodes(*out_dim, d + 2, NodeType::Neuron, NodeRole::Neurons, format!("{name} -> out"));
                let y_seg = self.whole(y);
                let p = self.param(&out.weight, &[*out_dim, a])?;
                let weight = DenseWeight { param: p, offset: 0, kernel: &[], order: DenseOrder::OutInKernel };
                self.dense_edges(&[attn_seg], y_seg, &weight, EdgeType::LinWeight, d + 1)?;
                if let Some(b) = &out.bias {
                    self.param(b, &[*out_dim])?;
                    self.vector_edges(b, 0, &[y_seg], (NodeType::Bias, EdgeType::LinBias), (d + 2, d + 1), "out bias")?;
                }
                self.set_io(x, vec![y_seg]);
                Ok(())
            }
            LayerKind::Residual { from, block_input, features } => {
                if matches!(from, Input::Fresh) || matches!(block_input, Input::Fresh) {
                    return Err(self.err("a residual must come from existing neurons"));
                }
                let target = self.resolve(layer.input, *features, NodeType::Neuron)?;
                let src = self.resolve(*from, *features, NodeType::Neuron)?;
                // The block input may be narrower than the output (a projection shortcut).
                let block = self.lookup(*block_input)?.unwrap_or_default();
                let l = if block.is_empty() { self.depth(&src)? } else { self.depth(&block)? };
                self.consume(&src);
                // A neuron added to itself (x + x) gets no edge: a self-loop would be a cycle.
                for (s, t) in aligned(&src, &target) {
                    if s != t {
                        self.add_edges(s, t, EdgeType::Residual, l, EdgeValues::Ones)?;
                    }
                }
                self.set_io(target.clone(), target);
                Ok(())
            }
        }
    }

    fn set_io(&mut self, input: Group, output: Group) {
        if let Some(slot) = self.layer_in.get_mut(self.layer) {
            *slot = Some(input);
        }
        if let Some(slot) = self.layer_out.get_mut(self.layer) {
            *slot = Some(output);
        }
    }

    /// Linear and conv: new neurons, dense weight blocks (one per input segment and group), and
    /// an optional bias node.
    fn dense_layer(
        &mut self,
        layer: &Layer,
        dense: &Dense,
        weight: &str,
        bias: Option<&str>,
        (neuron, bias_node, weight_edge, bias_edge): (NodeType, NodeType, EdgeType, EdgeType),
    ) -> Result<(), Error> {
        let (inp, out) = (dense.inp, dense.out);
        let p = self.param(weight, dense.shape)?;
        if let Some(b) = bias {
            self.param(b, &[out])?;
        }
        let x = self.resolve(layer.input, inp, neuron)?;
        self.consume(&x);
        // A shortcut projection's neurons sit beside the main path's output they are added to.
        let out_depth = match layer.parallel_to {
            Some(j) if j < self.layer => {
                let group = self.layer_out.get(j).cloned().flatten().ok_or_else(|| self.err("bad parallel layer"))?;
                self.depth(&group)?
            }
            _ => self.depth(&x)? + 1,
        };
        let edge_depth = out_depth - 1;
        let y = self.add_nodes(out, out_depth, neuron, NodeRole::Neurons, format!("{} -> out", layer.name));
        // Group j of a grouped conv: outputs j*out_g.. read inputs j*in_g.. only, and its rows of
        // the weight are contiguous (`[out, in / groups, k...]`).
        let groups = dense.groups.max(1);
        let (in_g, out_g) = (inp / groups, out / groups);
        let kn = checked_product(dense.kernel).ok_or_else(|| self.err("kernel too large"))?;
        for j in 0..groups {
            let xs = sub_group(&x, j * in_g, in_g);
            let ys = Seg { block: y, start: j * out_g, len: out_g };
            let offset = j * out_g * in_g * kn;
            let w = DenseWeight { param: p, offset, kernel: dense.kernel, order: dense.order };
            self.dense_edges(&xs, ys, &w, weight_edge, edge_depth)?;
        }
        if let Some(b) = bias {
            let y_seg = self.whole(y);
            self.vector_edges(b, 0, &[y_seg], (bias_node, bias_edge), (out_depth, edge_depth), "bias")?;
        }
        self.set_io(x, vec![self.whole(y)]);
        Ok(())
    }

    fn finish(mut self) -> Result<ParamGraph, Error> {
        // Final outputs: neuron groups no later layer reads.
        for (block, consumed) in self.nodes.iter_mut().zip(&self.consumed) {
            if block.role == NodeRole::Neurons && !consumed {
                block.ordered = true;
            }
        }
        // Every parameter must be covered exactly once for the inversion to be exact.
        let mut covered = vec![0usize; self.params.len()];
        for e in &self.edges {
            if let EdgeValues::Dense { param, .. } | EdgeValues::PerTarget { param, .. } = e.values
                && let Some(c) = covered.get_mut(param)
            {
                *c += e.len;
            }
        }
        for (p, c) in self.params.iter().zip(&covered) {
            if *c != p.num_elements() {
                return Err(Error::Layer {
                    layer: p.name.clone(),
                    message: format!("{c} edges encode a tensor of {} values", p.num_elements()),
                });
            }
        }
        let mut overview = petgraph::Graph::with_capacity(self.nodes.len(), self.edges.len());
        let ids: Vec<_> = (0..self.nodes.len()).map(|i| overview.add_node(i)).collect();
        for (i, e) in self.edges.iter().enumerate() {
            if let (Some(&s), Some(&d)) = (ids.get(e.src), ids.get(e.dst)) {
                overview.add_edge(s, d, i);
            }
        }
        Ok(ParamGraph {
            node_blocks: self.nodes,
            edge_blocks: self.edges,
            params: self.params,
            num_nodes: self.num_nodes,
            num_edges: self.num_edges,
            overview,
        })
    }
}
