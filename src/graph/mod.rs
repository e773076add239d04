//! The GMN parameter graph: [`Architecture`] -> [`ParamGraph`], following `shared/papers.md` §2.
//!
//! Owns: the graph rules, the implicit (block) representation, streaming of explicit edges, and
//! the exact inversion graph -> weights. Must not import: `ui`.
//!
//! # Features
//! Nodes carry `[layer_index, neuron_order, node_type]`: `neuron_order` is the position for input
//! neurons and final outputs and -1 for every other node. Edges carry
//! `[weight_value, layer_index, edge_type, p0, p1, p2]` with `p0..p2` the kernel coordinates of a
//! conv edge (-1 otherwise). Type numbers: [`NodeType`], [`EdgeType`] (the reference code's).
//!
//! # Rules
//! - **Linear(in, out)**: `out` new neurons; edge `i -> o` carries `W[o, i]`; one bias node per
//!   layer with an edge to every output neuron carrying `b[o]`.
//! - **Conv**: one node per channel (type `channel`); each kernel element is its own parallel edge
//!   with its coordinates in `p0..p2`; a `channel_bias` node as for Linear.
//! - **Norm** (batch/layer/group/instance): no new neurons, the layer index does not advance; one
//!   gamma and one beta node with an edge to each neuron carrying `gamma_i` / `beta_i`. Running
//!   statistics are buffers, not parameters: they are not encoded (`num_parameters` excludes them).
//! - **Residual**: value-1 edges (type `residual`) from neuron `i` of the skipped-from group to
//!   neuron `i` of the block output; a shortcut projection builds its own neurons (at the layer
//!   index of the block output, as in the reference) and those feed the residual edges.
//! - **Attention**: q, k and v all connect the inputs to the same `attn_dim` attention neurons
//!   (type 12; three parallel edges per pair), each projection with its own attention-bias node
//!   (type 13); `out` is a Linear onto new ordinary neurons.
//! - **Grouped conv**: output group `j` has edges only from input group `j` (one block per group).
//! - **Linear after a flattened `C x P` map**: the `C` channel nodes, `P` parallel edges per pair
//!   (the position in `p0`), as for a conv kernel.
//! - **Per-channel vector** (PReLU slopes, layer scale): one node (type 14) with an edge (type 13)
//!   per neuron, like a norm's gamma.
//! - **Recurrent** (LSTM/GRU/RNN): `hidden` new neurons; each gate's input weights are parallel
//!   edges from the input neurons, each gate's recurrent weights parallel edges from an `h(t-1)`
//!   state block (role [`NodeRole::State`], the input's layer index) so the graph stays acyclic; a
//!   bias node per gate and bias tensor.
//! - **Concat / Slice**: no nodes; a group is the union of its parts' nodes, or a subset of one.
//!   A layer reading a concatenation has one edge block per segment, over a column window of its
//!   weight; residual edges pair two groups piece by piece and skip `i -> i` (a self-loop).
//! - **Embedding** (judgement call): a table `[num, dim]` is a bias-free Linear(num -> dim) from
//!   `num` input neurons (one per row, ordered) to `dim` neurons. BERT's word, position and
//!   token-type tables all feed the same `dim` neurons, since the model sums them.
//!
//! Layer indices: a layer reading neurons at index `l` puts its edges at `l` and its new neurons
//! and bias nodes at `l + 1`; norm nodes and edges take the index of the neurons they scale;
//! residual edges take the index of the block input. (The reference BasicBlock labels its norm
//! nodes one lower than the conv outputs they scale; we use the consistent rule.)
//!
//! **Parameter order** (of [`ParamGraph::params`] and [`ParamGraph::to_weights`]) is the order the
//! graph encodes tensors: layers in execution order; within a layer weight then bias (norms:
//! gamma then beta; attention: q, k, v, then out, a fused `in_proj` counted once). It equals the
//! state-dict order except where a state dict lists modules in another order than they run
//! (`nn.TransformerEncoderLayer` stores `norm1` after `linear2`). Tensors come back by name.
//!
//! "Final outputs" are the neuron groups no later layer reads (several for multi-head models).
//! Input groups are every fresh group a layer reads: the network input, each embedding table's
//! rows, and each chain break recorded by `arch`.
//!
//! # Implicit edges
//! A 22M-parameter transformer has ~22M edges, so edges are never materialised by [`build`]:
//! the graph stores **node blocks** (contiguous id ranges sharing layer index, type and order
//! rule) and **edge blocks** (source block, target block, type, layer index, and a view of the
//! tensor that holds the values: which tensor, at which offset, in which storage order, with
//! which kernel shape). Building costs O(layers), independent of the edge count. Explicit edges
//! are produced on request by [`ParamGraph::edges`] / [`ParamGraph::for_each_edge`], which decode
//! one tensor at a time. Edges of a block follow the storage order of its tensor slice, so edge
//! `k` of a block is element `offset + k` of the tensor, which makes [`ParamGraph::to_weights`] an
//! exact inverse. A petgraph overview ([`ParamGraph::overview`]) has one node per node block and
//! one edge per edge block, for the GUI.

mod build;
mod edges;

pub use build::build;
pub use edges::{Edge, EdgeStream};

use crate::checkpoint::TensorInfo;

/// Node types (the reference code's numbering; 14-16 are reserved for deep-sets / triplanar).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeType {
    Neuron = 0,
    Bias = 1,
    Channel = 2,
    ChannelBias = 3,
    BnGamma = 4,
    BnBeta = 5,
    LnGamma = 6,
    LnBeta = 7,
    GnGamma = 8,
    GnBeta = 9,
    InGamma = 10,
    InBeta = 11,
    AttentionNeuron = 12,
    AttentionBias = 13,
    /// A per-channel parameter vector that is not a norm (PReLU slopes, layer scale): the first
    /// of the reference's reserved numbers (14-16, unused by gmnscope otherwise).
    ChannelParam = 14,
}

/// Edge types (the reference code's numbering; 13 is reserved for triplanar grids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeType {
    LinWeight = 0,
    LinBias = 1,
    ConvWeight = 2,
    ConvBias = 3,
    Residual = 4,
    BnGamma = 5,
    BnBeta = 6,
    LnGamma = 7,
    LnBeta = 8,
    GnGamma = 9,
    GnBeta = 10,
    InGamma = 11,
    InBeta = 12,
    /// Edges of a per-channel parameter vector (PReLU slopes, layer scale): the reference
    /// reserves 13 for triplanar grids, which gmnscope never builds.
    ChannelParam = 13,
}

/// What a node block is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Input neurons (network input, embedding rows, or a chain break).
    Input,
    /// Neurons created by a layer.
    Neurons,
    /// Attention neurons shared by q, k and v.
    Attention,
    /// A single bias / gamma / beta node.
    Parameter,
    /// A recurrent layer's previous hidden state (`h_{t-1}`): the recurrent weights run from
    /// these nodes to the hidden nodes, so the graph stays acyclic. Permutable like hidden neurons.
    State,
}

/// A contiguous range of nodes sharing layer index, type and order rule.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeBlock {
    pub start: usize,
    pub len: usize,
    pub layer_index: i64,
    pub node_type: NodeType,
    /// `neuron_order` is the position inside the block (input neurons, final outputs), else -1.
    pub ordered: bool,
    pub role: NodeRole,
    /// Index of the architecture layer that created the block.
    pub layer: usize,
    /// Short description, e.g. `seq.0 -> out`, `bn1 gamma`.
    pub label: String,
}

impl NodeBlock {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }
}

/// Storage order of a dense weight slice, which is also the order of its edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenseOrder {
    /// `[out, in, k...]` (PyTorch Linear `[out, in]`, conv OIHW).
    OutInKernel,
    /// `[k..., in, out]` (Keras HWIO, `[in, out]` matrices, embedding tables `[num, dim]`).
    KernelInOut,
    /// `[in, out, k...]` (a transposed convolution's kernel, ONNX `ConvTranspose`).
    InOutKernel,
}

/// Where an edge block's values live.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EdgeValues {
    /// `out * inp * prod(kernel)` edges from the slice of `params[param]` that starts at `offset`
    /// and holds a `[out, cols, kernel...]` (or `[kernel..., cols, out]`) weight; the block covers
    /// its input columns `col..col + inp` (all of them unless the input is a concatenation).
    Dense {
        param: usize,
        offset: usize,
        out: usize,
        inp: usize,
        kernel: Vec<usize>,
        order: DenseOrder,
        col: usize,
        cols: usize,
    },
    /// The source block is one node; edge `t` goes to target `t` with element `offset + t`.
    PerTarget { param: usize, offset: usize },
    /// Residual: edge `i` goes from source `i` to target `i` with value 1.
    Ones,
}

/// A block of edges between two node blocks, with a view of the tensor holding its values.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EdgeBlock {
    /// Source and target node blocks (indices into [`ParamGraph::node_blocks`]).
    pub src: usize,
    pub dst: usize,
    /// First node of the source / target block the edges touch (a slice of a split group).
    pub src_offset: usize,
    pub dst_offset: usize,
    pub edge_type: EdgeType,
    pub layer_index: i64,
    pub values: EdgeValues,
    /// Position of the block's first edge in the edge stream.
    pub first_edge: usize,
    pub len: usize,
    /// Index of the architecture layer the block belongs to.
    pub layer: usize,
}

/// A reconstructed tensor: name, shape, values (row-major).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// A parameter tensor the graph encodes (in parameter order).
#[derive(Clone, Debug)]
pub struct ParamTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub(crate) tensor: TensorInfo,
}

impl ParamTensor {
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parameter graph with implicit neuron-level edges.
#[derive(Clone, Debug)]
pub struct ParamGraph {
    node_blocks: Vec<NodeBlock>,
    edge_blocks: Vec<EdgeBlock>,
    params: Vec<ParamTensor>,
    num_nodes: usize,
    num_edges: usize,
    overview: petgraph::Graph<usize, usize>,
}

/// Why a graph could not be built (an architecture inconsistent with its checkpoint) or inverted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("layer '{layer}': {message}")]
    Layer { layer: String, message: String },
    #[error("tensor '{0}' is not in the checkpoint")]
    MissingTensor(String),
    #[error("cannot invert the graph: {0}")]
    Inversion(String),
}

impl ParamGraph {
    pub fn num_nodes(&self) -> usize {
        self.num_nodes
    }

    /// Number of explicit edges (parameters plus residual edges).
    pub fn num_edges(&self) -> usize {
        self.num_edges
    }

    /// Number of parameters the graph encodes (norm running statistics and unrecognised tensors
    /// are not parameters of the graph).
    pub fn num_parameters(&self) -> usize {
        self.params.iter().map(ParamTensor::num_elements).sum()
    }

    pub fn node_blocks(&self) -> &[NodeBlock] {
        &self.node_blocks
    }

    pub fn edge_blocks(&self) -> &[EdgeBlock] {
        &self.edge_blocks
    }

    /// The encoded parameter tensors, in parameter order (the order of [`Self::to_weights`]).
    pub fn params(&self) -> &[ParamTensor] {
        &self.params
    }

    /// Layer-level structure: one node per node block (weight: its index), one edge per edge
    /// block (weight: its index).
    pub fn overview(&self) -> &petgraph::Graph<usize, usize> {
        &self.overview
    }

    /// `[layer_index, neuron_order, node_type]` for every node, in node-id order.
    pub fn node_features(&self) -> Vec<[i64; 3]> {
        let mut out = Vec::with_capacity(self.num_nodes);
        for b in &self.node_blocks {
            for k in 0..b.len {
                let order = if b.ordered { k as i64 } else { -1 };
                out.push([b.layer_index, order, b.node_type as i64]);
            }
        }
        out
    }
}
