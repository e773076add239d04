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

struct Builder<'s> {
    store: &'s TensorStore,
    nodes: Vec<NodeBlock>,
    edges: Vec<EdgeBlock>,
    params: Vec<ParamTensor>,
    param_index: HashMap<String, usize>,
    /// Per architecture layer: the node block it reads and the node block of its output.
    layer_in: Vec<Option<usize>>,
    layer_out: Vec<Option<usize>>,
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

impl Builder<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::Layer { layer: self.layer_name.clone(), message: message.into() }
    }

    fn node_block(&self, i: usize) -> Result<&NodeBlock, Error> {
        self.nodes.get(i).ok_or_else(|| self.err("internal: bad node block"))
    }

    fn depth(&self, block: usize) -> Result<i64, Error> {
        Ok(self.node_block(block)?.layer_index)
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

    /// Registers (once) a parameter tensor and checks its shape is `shape`.
    fn param(&mut self, name: &str, shape: &[usize]) -> Result<usize, Error> {
        let t = self.store.get(name).ok_or_else(|| Error::MissingTensor(name.to_string()))?;
        if t.shape != shape {
            return Err(self.err(format!("tensor '{name}' has shape {:?}, expected {shape:?}", t.shape)));
        }
        let numel = checked_product(shape).ok_or_else(|| self.err(format!("tensor '{name}' is too large")))?;
        if numel.checked_mul(t.dtype.size()) != Some(t.data.len()) {
            return Err(self.err(format!("tensor '{name}' has {} bytes for shape {shape:?}", t.data.len())));
        }
        if let Some(&i) = self.param_index.get(name) {
            return Ok(i);
        }
        self.params.push(ParamTensor { name: name.to_string(), shape: shape.to_vec(), tensor: t.clone() });
        self.param_index.insert(name.to_string(), self.params.len() - 1);
        Ok(self.params.len() - 1)
    }

    fn add_edges(
        &mut self,
        src: usize,
        dst: usize,
        edge_type: EdgeType,
        layer_index: i64,
        values: EdgeValues,
    ) -> Result<(), Error> {
        let (s, d) = (self.node_block(src)?.len, self.node_block(dst)?.len);
        let len = match &values {
            EdgeValues::Dense { out, inp, kernel, .. } => {
                if (*out, *inp) != (d, s) {
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
        self.edges.push(EdgeBlock { src, dst, edge_type, layer_index, values, first_edge, len, layer: self.layer });
        Ok(())
    }

    /// A single bias/gamma/beta node with one edge per target carrying `tensor[offset + t]`.
    fn vector_edges(
        &mut self,
        tensor: &str,
        offset: usize,
        dst: usize,
        (node_type, edge_type): (NodeType, EdgeType),
        (node_layer, edge_layer): (i64, i64),
        label: &str,
    ) -> Result<(), Error> {
        let node =
            self.add_nodes(1, node_layer, node_type, NodeRole::Parameter, format!("{} {label}", self.layer_name));
        let p = self.param_index.get(tensor).copied().ok_or_else(|| Error::MissingTensor(tensor.to_string()))?;
        self.add_edges(node, dst, edge_type, edge_layer, EdgeValues::PerTarget { param: p, offset })
    }

    /// The node block `input` refers to, creating a fresh input group of `width` when asked.
    fn resolve(&mut self, input: Input, width: usize, fresh_type: NodeType) -> Result<usize, Error> {
        let block = match input {
            Input::Fresh => {
                let label = format!("{} input", self.layer_name);
                self.add_nodes(width, 0, fresh_type, NodeRole::Input, label)
            }
            Input::Layer(j) if j < self.layer => {
                self.layer_out.get(j).copied().flatten().ok_or_else(|| self.err(format!("layer #{j} has no output")))?
            }
            Input::InputOf(j) if j < self.layer => {
                self.layer_in.get(j).copied().flatten().ok_or_else(|| self.err(format!("layer #{j} has no input")))?
            }
            _ => return Err(self.err("reads a layer that comes after it")),
        };
        let have = self.node_block(block)?.len;
        if have != width {
            return Err(self.err(format!("expects {width} inputs but is wired to {have}")));
        }
        Ok(block)
    }

    fn consume(&mut self, block: usize) {
        if let Some(c) = self.consumed.get_mut(block) {
            *c = true;
        }
    }

    fn add_layer(&mut self, layer: &Layer) -> Result<(), Error> {
        let name = layer.name.clone();
        match &layer.kind {
            LayerKind::Linear { in_features, out_features, weight, bias, layout } => {
                let (order, shape) = match layout {
                    MatrixLayout::OutIn => (DenseOrder::OutInKernel, [*out_features, *in_features]),
                    MatrixLayout::InOut => (DenseOrder::KernelInOut, [*in_features, *out_features]),
                };
                let types = (NodeType::Neuron, NodeType::Bias, EdgeType::LinWeight, EdgeType::LinBias);
                self.dense_layer(layer, *in_features, *out_features, weight, &shape, &[], order, bias.as_deref(), types)
            }
            LayerKind::Conv { in_channels, out_channels, kernel, weight, bias, layout, .. } => {
                let (order, shape) = match layout {
                    KernelLayout::OutInKernel => {
                        let mut s = vec![*out_channels, *in_channels];
                        s.extend(kernel);
                        (DenseOrder::OutInKernel, s)
                    }
                    KernelLayout::KernelInOut => {
                        let mut s = kernel.clone();
                        s.extend([*in_channels, *out_channels]);
                        (DenseOrder::KernelInOut, s)
                    }
                };
                if kernel.is_empty() || kernel.len() > 3 {
                    return Err(self.err(format!("conv kernel {kernel:?} is not 1-3 dimensional")));
                }
                let types = (NodeType::Channel, NodeType::ChannelBias, EdgeType::ConvWeight, EdgeType::ConvBias);
                self.dense_layer(
                    layer,
                    *in_channels,
                    *out_channels,
                    weight,
                    &shape,
                    kernel,
                    order,
                    bias.as_deref(),
                    types,
                )
            }
            LayerKind::Norm { kind, features, gamma, beta, .. } => {
                let x = self.resolve(layer.input, *features, NodeType::Neuron)?;
                let d = self.depth(x)?;
                let (gn, bn, ge, be) = norm_types(*kind);
                if let Some(g) = gamma {
                    self.param(g, &[*features])?;
                    self.vector_edges(g, 0, x, (gn, ge), (d, d), "gamma")?;
                }
                if let Some(b) = beta {
                    self.param(b, &[*features])?;
                    self.vector_edges(b, 0, x, (bn, be), (d, d), "beta")?;
                }
                self.set_io(x, x);
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
                for (x, p, t) in inputs {
                    let order = match t.layout {
                        MatrixLayout::InOut => DenseOrder::KernelInOut,
                        MatrixLayout::OutIn => DenseOrder::OutInKernel,
                    };
                    let values =
                        EdgeValues::Dense { param: p, offset: 0, out: *dim, inp: t.num, kernel: Vec::new(), order };
                    self.add_edges(x, out, EdgeType::LinWeight, 0, values)?;
                    self.consume(x);
                }
                self.layer_in[self.layer] = None;
                self.layer_out[self.layer] = Some(out);
                Ok(())
            }
            LayerKind::Attention { embed_dim, attn_dim, out_dim, qkv, out } => {
                let (e, a) = (*embed_dim, *attn_dim);
                let x = self.resolve(layer.input, e, NodeType::Neuron)?;
                self.consume(x);
                let d = self.depth(x)?;
                let attn = self.add_nodes(
                    a,
                    d + 1,
                    NodeType::AttentionNeuron,
                    NodeRole::Attention,
                    format!("{name} attention"),
                );
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
                    let values = EdgeValues::Dense {
                        param: p,
                        offset: w_off,
                        out: a,
                        inp: e,
                        kernel: Vec::new(),
                        order: DenseOrder::OutInKernel,
                    };
                    self.add_edges(x, attn, EdgeType::LinWeight, d, values)?;
                    if let Some(b) = bias {
                        let types = (NodeType::AttentionBias, EdgeType::LinBias);
                        self.vector_edges(&b, b_off, attn, types, (d + 1, d), label)?;
                    }
                }
                self.consume(attn);
                let y = self.add_nodes(*out_dim, d + 2, NodeType::Neuron, NodeRole::Neurons, format!("{name} -> out"));
                let p = self.param(&out.weight, &[*out_dim, a])?;
                let values = EdgeValues::Dense {
                    param: p,
                    offset: 0,
                    out: *out_dim,
                    inp: a,
                    kernel: Vec::new(),
                    order: DenseOrder::OutInKernel,
                };
                self.add_edges(attn, y, EdgeType::LinWeight, d + 1, values)?;
                if let Some(b) = &out.bias {
                    self.param(b, &[*out_dim])?;
                    self.vector_edges(b, 0, y, (NodeType::Bias, EdgeType::LinBias), (d + 2, d + 1), "out bias")?;
                }
                self.set_io(x, y);
                Ok(())
            }
            LayerKind::Residual { from, block_input, features } => {
                if matches!(from, Input::Fresh) || matches!(block_input, Input::Fresh) {
                    return Err(self.err("a residual must come from existing neurons"));
                }
                let target = self.resolve(layer.input, *features, NodeType::Neuron)?;
                let src = self.resolve(*from, *features, NodeType::Neuron)?;
                // The block input may be narrower than the output (a projection shortcut).
                let block_width = match *block_input {
                    Input::Layer(j) => self.layer_out.get(j).copied().flatten(),
                    Input::InputOf(j) => self.layer_in.get(j).copied().flatten(),
                    Input::Fresh => None,
                }
                .and_then(|b| self.nodes.get(b))
                .map_or(0, |b| b.len);
                let block = self.resolve(*block_input, block_width, NodeType::Neuron)?;
                if src == target {
                    return Err(self.err("a residual from a group to itself would be a cycle"));
                }
                self.consume(src);
                let l = self.depth(block)?;
                self.add_edges(src, target, EdgeType::Residual, l, EdgeValues::Ones)?;
                self.set_io(target, target);
                Ok(())
            }
        }
    }

    fn set_io(&mut self, input: usize, output: usize) {
        if let Some(slot) = self.layer_in.get_mut(self.layer) {
            *slot = Some(input);
        }
        if let Some(slot) = self.layer_out.get_mut(self.layer) {
            *slot = Some(output);
        }
    }

    /// Linear and conv: new neurons, a dense weight block, and an optional bias node.
    #[allow(clippy::too_many_arguments)]
    fn dense_layer(
        &mut self,
        layer: &Layer,
        inp: usize,
        out: usize,
        weight: &str,
        shape: &[usize],
        kernel: &[usize],
        order: DenseOrder,
        bias: Option<&str>,
        (neuron, bias_node, weight_edge, bias_edge): (NodeType, NodeType, EdgeType, EdgeType),
    ) -> Result<(), Error> {
        let p = self.param(weight, shape)?;
        if let Some(b) = bias {
            self.param(b, &[out])?;
        }
        let x = self.resolve(layer.input, inp, neuron)?;
        self.consume(x);
        // A shortcut projection's neurons sit beside the main path's output they are added to.
        let out_depth = match layer.parallel_to {
            Some(j) if j < self.layer => {
                let block = self.layer_out.get(j).copied().flatten().ok_or_else(|| self.err("bad parallel layer"))?;
                self.depth(block)?
            }
            _ => self.depth(x)? + 1,
        };
        let edge_depth = out_depth - 1;
        let y = self.add_nodes(out, out_depth, neuron, NodeRole::Neurons, format!("{} -> out", layer.name));
        let values = EdgeValues::Dense { param: p, offset: 0, out, inp, kernel: kernel.to_vec(), order };
        self.add_edges(x, y, weight_edge, edge_depth, values)?;
        if let Some(b) = bias {
            self.vector_edges(b, 0, y, (bias_node, bias_edge), (out_depth, edge_depth), "bias")?;
        }
        self.set_io(x, y);
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
