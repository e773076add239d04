//! Architecture recovery: [`TensorStore`] -> [`Architecture`], the ordered layers of a network and
//! how they connect, recovered from tensor names, shapes and (for ONNX) the operator graph.
//!
//! Owns: recognising layers ([`LayerKind`]), ordering them in execution order, wiring each layer
//! to the layer whose output it reads ([`Input`]), and inserting residual connections.
//! Must not import: `graph`, `ui` (the graph is built *from* an architecture).
//!
//! Brief overview of the pipeline:
//! 1. `modules` groups tensors by module path (`layer1.0.conv1.weight` -> module `layer1.0.conv1`,
//!    leaf `weight`), keeping file order.
//! 2. `primitives` turns modules into primitive layers using leaf names AND shapes: Linear
//!    (2-D `weight`/`kernel`), Conv1d/2d/3d (3/4/5-D `weight`), Norm (1-D `weight`/`gamma` with
//!    `bias`/`beta` and optional running statistics), Embedding (2-D tables under an `*embed*` /
//!    `wte`/`wpe` name), Attention (fused `in_proj_weight` + `out_proj`, HF `query/key/value` +
//!    `attention.output.dense`, `q_proj/k_proj/v_proj` + `out_proj`, timm `qkv` + `proj`),
//!    recurrent layers (`weight_ih*`/`weight_hh*`), per-channel vectors (`prelu*`, `ls1.gamma`).
//!    When the file lists its tensors sorted by name (the `safetensors` library's order), `order`
//!    puts the primitives into execution order first (numeric-aware names, module groups chained
//!    by width); any other file order is kept.
//! 3. `structure` orders the primitives into blocks and chains them: ResNet blocks
//!    (`conv1/bn1/conv2/bn2[/conv3/bn3]` with an optional `downsample.*`/`shortcut.*` projection),
//!    transformer blocks (attention + feed-forward + norms, pre- or post-LN), BERT heads, and plain
//!    chains for everything else.
//! 4. For ONNX stores with an operator graph, `onnx` replaces steps 1-3: the ops give the layers,
//!    their order and their true inputs (residual `Add`/`Mul`s, `Concat`, `Split`/`Slice`) even
//!    when initializer names are opaque (`onnx::Conv_12`).
//!
//! Recovery never fails. Every tensor of the store ends up either in exactly one layer's
//! [`Layer::tensors`] or in [`Architecture::unrecognized`] (with its reason:
//! [`Architecture::unplaced`]); anything surprising (a chain break, an assumed LayerNorm
//! placement) is explained in [`Architecture::notes`].
//!
//! Judgement calls (documented where they are made):
//! - **BatchNorm buffers** (`running_mean`, `running_var`, `num_batches_tracked`, Keras
//!   `moving_*`) are owned by their norm layer (listed in `tensors` and [`LayerKind::Norm`]'s
//!   `buffers`) but are not parameters: the parameter graph encodes gamma and beta only.
//! - **Chain breaks**: a layer whose input width does not match the output width of the layer
//!   before it first tries to fit: a Linear after a conv map with `in = C * positions` reads the `C`
//!   channels with one parallel edge per position (torch's channel-major flatten assumed); a conv
//!   whose weight holds `in / g` channels reads `in` channels in `g` groups. Otherwise it reads the
//!   nearest earlier group on the path back with its width (sibling heads such as MTCNN's
//!   `dense5_1`/`dense5_2`), and only then a fresh group of input neurons ([`Input::Fresh`]). Each
//!   choice is noted. Conv -> Linear with `in == channels` (global pooling) chains normally.
//! - **Recurrent layers**: torch `LSTMCell`/`GRUCell`/`RNNCell` and each layer and direction of
//!   `nn.LSTM`/`nn.GRU`/`nn.RNN` is one [`LayerKind::Recurrent`]; a reverse direction reads what
//!   the forward one read, and a [`LayerKind::Concat`] joins both for the next layer.
//! - **Per-channel vectors**: PReLU slopes and layer scale are [`LayerKind::PerChannel`]; a single
//!   slope shared by all channels is left out with the reason ([`Architecture::unplaced`]).
//! - **Transformer norm placement**: when a block's first norm is stored before its attention the
//!   block is pre-LN (timm/ViT), otherwise post-LN (BERT, `nn.TransformerEncoderLayer` default);
//!   PyTorch state dicts list `norm1/norm2` after `linear2` in both cases, so post-LN is assumed.
//! - **Embeddings** of one module (word/position/token-type) are summed in the model, so they form
//!   one [`LayerKind::Embedding`] layer with several tables feeding the same `dim` neurons.

mod modules;
mod onnx;
mod order;
mod primitives;
mod structure;

use crate::checkpoint::{Format, TensorStore};

/// Where a layer's input neurons come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Input {
    /// A fresh group of input neurons (the network input, or a break in the chain).
    Fresh,
    /// The output neurons of `layers[i]` (for a norm or residual: the neurons it acts on).
    Layer(usize),
    /// The same neurons `layers[i]` reads (a shortcut reading its block's input, or a second
    /// consumer of the network input).
    InputOf(usize),
}

/// How a 2-D weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatrixLayout {
    /// `[out, in]` (PyTorch `nn.Linear`, ONNX Gemm with `transB=1`).
    OutIn,
    /// `[in, out]` (Keras `Dense` kernels, ONNX MatMul, embedding tables `[num, dim]`).
    InOut,
}

/// How a conv kernel is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelLayout {
    /// `[out, in, k...]` (PyTorch OIHW, ONNX).
    OutInKernel,
    /// `[k..., in, out]` (Keras / TensorFlow HWIO).
    KernelInOut,
    /// `[in, out / groups, k...]` (a transposed convolution: PyTorch `ConvTranspose`, ONNX).
    InOutKernel,
}

/// The gate structure of a recurrent layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cell {
    /// 4 gates (input, forget, cell, output).
    Lstm,
    /// 3 gates (reset, update, new).
    Gru,
    /// 1 gate (Elman RNN).
    Rnn,
}

impl Cell {
    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::Rnn => 1,
        }
    }

    /// The cell for a number of gate blocks, if any.
    pub fn from_gates(gates: usize) -> Option<Cell> {
        match gates {
            4 => Some(Cell::Lstm),
            3 => Some(Cell::Gru),
            1 => Some(Cell::Rnn),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    Batch,
    Layer,
    Group,
    Instance,
}

/// One embedding table: `num` rows (one input neuron each) of `dim` values.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EmbeddingTable {
    pub tensor: String,
    pub num: usize,
    pub layout: MatrixLayout,
}

/// A projection inside attention: weight `[out, in]` and optional bias.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Projection {
    pub weight: String,
    pub bias: Option<String>,
}

/// How the query/key/value projections are stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Qkv {
    /// One `[3a, d]` weight (rows: q, then k, then v) and an optional `[3a]` bias.
    Fused(Projection),
    /// Three `[a, d]` weights.
    Separate { q: Projection, k: Projection, v: Projection },
}

/// What a layer computes, with the names of the tensors that hold its parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LayerKind {
    Linear {
        in_features: usize,
        out_features: usize,
        weight: String,
        bias: Option<String>,
        layout: MatrixLayout,
        /// Spatial positions per input channel: a Linear reading a flattened `C x H x W` map has
        /// `in_features = C * positions` and reads the `C` channel nodes with one parallel edge per
        /// position (1 for an ordinary Linear).
        positions: usize,
    },
    Conv {
        /// 1, 2 or 3.
        dims: usize,
        /// Channels of the input (all groups); the weight holds `in_channels / groups` per output.
        in_channels: usize,
        out_channels: usize,
        kernel: Vec<usize>,
        weight: String,
        bias: Option<String>,
        layout: KernelLayout,
        /// Grouped convolution: output group `j` reads only input group `j` (depthwise:
        /// `groups == in_channels`).
        groups: usize,
    },
    /// A parameter vector with one value per neuron of its input (PReLU slopes, layer scale):
    /// acts in place, like a norm's gamma.
    PerChannel {
        /// What the vector is (`prelu`, `layer-scale`).
        role: String,
        features: usize,
        weight: String,
    },
    /// A recurrent cell (LSTM, GRU, plain RNN), one direction of one layer: `gates` blocks of
    /// input->hidden and hidden->hidden weights (torch `weight_ih [gates*hidden, input]`,
    /// `weight_hh [gates*hidden, hidden]`). When `bias_ih` and `bias_hh` name one tensor (ONNX
    /// `B`, `[2 * gates * hidden]`), the input biases come first.
    Recurrent {
        cell: Cell,
        input_size: usize,
        hidden: usize,
        weight_ih: String,
        weight_hh: String,
        bias_ih: Option<String>,
        bias_hh: Option<String>,
        /// Which of the `directions` stacked in each tensor this layer is (ONNX bidirectional ops
        /// keep both directions in one `W`/`R`/`B`, `[directions, ...]`); 0 and 1 for torch.
        direction: usize,
        directions: usize,
    },
    /// The union of several neuron groups (channel concatenation); no parameters, no new neurons.
    Concat { parts: Vec<Input>, features: usize },
    /// Neurons `start..start + len` of the group it reads (split / chunk / slice on channels).
    Slice { start: usize, len: usize, features_in: usize },
    /// Acts in place on the neurons of its input; `buffers` are running statistics (not parameters).
    Norm { kind: NormKind, features: usize, gamma: Option<String>, beta: Option<String>, buffers: Vec<String> },
    /// Tables whose looked-up rows are summed into `dim` neurons.
    Embedding { dim: usize, tables: Vec<EmbeddingTable> },
    /// Self-attention: q/k/v map `embed_dim` inputs to `attn_dim` shared attention neurons,
    /// `out` maps those to `out_dim` new neurons. Head count is not recoverable from weights.
    Attention { embed_dim: usize, attn_dim: usize, out_dim: usize, qkv: Qkv, out: Projection },
    /// Adds the neurons of `from` to this layer's input neurons (value-1 edges, no parameters).
    /// `block_input` is the input of the block the residual closes (its depth labels the edges).
    Residual { from: Input, block_input: Input, features: usize },
}

impl LayerKind {
    /// Short kind name for listings (`linear`, `conv2d`, `batch-norm`, ...).
    pub fn name(&self) -> String {
        match self {
            LayerKind::Linear { .. } => "linear".into(),
            LayerKind::Conv { dims, .. } => format!("conv{dims}d"),
            LayerKind::Norm { kind, .. } => match kind {
                NormKind::Batch => "batch-norm",
                NormKind::Layer => "layer-norm",
                NormKind::Group => "group-norm",
                NormKind::Instance => "instance-norm",
            }
            .into(),
            LayerKind::Embedding { .. } => "embedding".into(),
            LayerKind::Attention { .. } => "attention".into(),
            LayerKind::Residual { .. } => "residual".into(),
            LayerKind::PerChannel { role, .. } => role.clone(),
            LayerKind::Recurrent { cell, .. } => match cell {
                Cell::Lstm => "lstm",
                Cell::Gru => "gru",
                Cell::Rnn => "rnn",
            }
            .into(),
            LayerKind::Concat { .. } => "concat".into(),
            LayerKind::Slice { .. } => "slice".into(),
        }
    }

    /// Width of the neuron group this layer reads (`None` for embeddings, which read token ids).
    pub fn in_width(&self) -> Option<usize> {
        match self {
            LayerKind::Linear { in_features, positions, .. } => Some(*in_features / (*positions).max(1)),
            LayerKind::Conv { in_channels, .. } => Some(*in_channels),
            LayerKind::Norm { features, .. } => Some(*features),
            LayerKind::Embedding { .. } | LayerKind::Concat { .. } => None,
            LayerKind::Attention { embed_dim, .. } => Some(*embed_dim),
            LayerKind::Residual { features, .. } => Some(*features),
            LayerKind::PerChannel { features, .. } => Some(*features),
            LayerKind::Recurrent { input_size, .. } => Some(*input_size),
            LayerKind::Slice { features_in, .. } => Some(*features_in),
        }
    }

    /// Width of the neuron group this layer outputs (for norms and residuals: the group it acts on).
    pub fn out_width(&self) -> usize {
        match self {
            LayerKind::Linear { out_features, .. } => *out_features,
            LayerKind::Conv { out_channels, .. } => *out_channels,
            LayerKind::Norm { features, .. } => *features,
            LayerKind::Embedding { dim, .. } => *dim,
            LayerKind::Attention { out_dim, .. } => *out_dim,
            LayerKind::Residual { features, .. } => *features,
            LayerKind::PerChannel { features, .. } => *features,
            LayerKind::Recurrent { hidden, .. } => *hidden,
            LayerKind::Concat { features, .. } => *features,
            LayerKind::Slice { len, .. } => *len,
        }
    }

    /// True for layers that create new neurons (as opposed to norms, residuals, per-channel
    /// vectors, concatenations and slices, which act on or regroup existing neurons).
    pub fn creates_neurons(&self) -> bool {
        !matches!(
            self,
            LayerKind::Norm { .. }
                | LayerKind::Residual { .. }
                | LayerKind::PerChannel { .. }
                | LayerKind::Concat { .. }
                | LayerKind::Slice { .. }
        )
    }

    /// One-line description, e.g. `Linear(2 -> 32, bias)`.
    pub fn describe(&self) -> String {
        let bias = |b: &Option<String>| if b.is_some() { ", bias" } else { "" };
        match self {
            LayerKind::Linear { in_features, out_features, bias: b, positions, .. } if *positions > 1 => format!(
                "Linear({} channels x {positions} positions -> {out_features}{})",
                in_features / positions,
                bias(b)
            ),
            LayerKind::Linear { in_features, out_features, bias: b, .. } => {
                format!("Linear({in_features} -> {out_features}{})", bias(b))
            }
            LayerKind::Conv { dims, in_channels, out_channels, kernel, bias: b, groups, .. } => {
                let g = if *groups > 1 { format!(", {groups} groups") } else { String::new() };
                format!("Conv{dims}d({in_channels} -> {out_channels}, kernel {kernel:?}{g}{})", bias(b))
            }
            LayerKind::PerChannel { role, features, .. } => format!("{role}({features})"),
            LayerKind::Recurrent { cell, input_size, hidden, bias_ih, bias_hh, direction, directions, .. } => {
                let biases = usize::from(bias_ih.is_some()) + usize::from(bias_hh.is_some());
                let dir =
                    if *directions > 1 { format!(", direction {direction} of {directions}") } else { String::new() };
                format!("{cell:?}({input_size} -> {hidden}, {biases} biases{dir})")
            }
            LayerKind::Concat { parts, features } => format!("Concat({} groups -> {features})", parts.len()),
            LayerKind::Slice { start, len, features_in } => {
                format!("Slice({start}..{} of {features_in})", start + len)
            }
            LayerKind::Norm { kind, features, .. } => format!("{kind:?}Norm({features})"),
            LayerKind::Embedding { dim, tables } => {
                let nums: Vec<String> = tables.iter().map(|t| t.num.to_string()).collect();
                format!("Embedding([{}] -> {dim})", nums.join(" + "))
            }
            LayerKind::Attention { embed_dim, attn_dim, out_dim, qkv, .. } => {
                let fused = if matches!(qkv, Qkv::Fused(_)) { "fused qkv" } else { "q/k/v" };
                format!("Attention({embed_dim} -> {attn_dim} -> {out_dim}, {fused})")
            }
            LayerKind::Residual { from, features, .. } => format!("Residual({features}, from {from:?})"),
        }
    }

    /// Names of the tensors the parameter graph encodes, in parameter order.
    pub fn parameter_tensors(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        match self {
            LayerKind::Linear { weight, bias, .. } | LayerKind::Conv { weight, bias, .. } => {
                out.push(weight);
                out.extend(bias.as_deref());
            }
            LayerKind::Norm { gamma, beta, .. } => {
                out.extend(gamma.as_deref());
                out.extend(beta.as_deref());
            }
            LayerKind::Embedding { tables, .. } => out.extend(tables.iter().map(|t| t.tensor.as_str())),
            LayerKind::Attention { qkv, out: o, .. } => {
                let projections: Vec<&Projection> = match qkv {
                    Qkv::Fused(p) => vec![p, o],
                    Qkv::Separate { q, k, v } => vec![q, k, v, o],
                };
                for p in projections {
                    out.push(&p.weight);
                    out.extend(p.bias.as_deref());
                }
            }
            LayerKind::PerChannel { weight, .. } => out.push(weight),
            // The later directions of a bidirectional op share the first one's tensors: listed once.
            LayerKind::Recurrent { direction, .. } if *direction > 0 => {}
            LayerKind::Recurrent { weight_ih, weight_hh, bias_ih, bias_hh, .. } => {
                out.extend([weight_ih.as_str(), weight_hh.as_str()]);
                out.extend(bias_ih.as_deref());
                // ONNX keeps both biases in one `B` tensor: counted once.
                out.extend(bias_hh.as_deref().filter(|b| bias_ih.as_deref() != Some(*b)));
            }
            LayerKind::Residual { .. } | LayerKind::Concat { .. } | LayerKind::Slice { .. } => {}
        }
        out
    }
}

/// One recovered layer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Layer {
    /// Module path, e.g. `layer1.0.conv1` (for ONNX with opaque names: the op name).
    pub name: String,
    pub kind: LayerKind,
    /// Every tensor this layer owns: parameters and buffers (running statistics).
    pub tensors: Vec<String>,
    /// The neurons this layer reads (norms and residuals: the neurons they act on).
    pub input: Input,
    /// Shortcut projections: the main-path layer whose outputs this layer's outputs are added to.
    /// The graph gives the shortcut's neurons the same layer index as that layer's outputs.
    pub parallel_to: Option<usize>,
}

/// The recovered network: layers in execution order, and what could not be placed.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Architecture {
    pub layers: Vec<Layer>,
    /// Tensors no layer owns (scalars, `position_ids`, tied heads, unknown shapes), in file order.
    pub unrecognized: Vec<String>,
    /// Human-readable explanations: chain breaks, assumptions.
    pub notes: Vec<String>,
    /// Why a tensor of [`Self::unrecognized`] was left out, where recovery knows a specific
    /// reason; [`Self::unplaced`] supplies a generic one for the rest.
    pub reasons: Vec<Reason>,
}

/// A specific reason recovery left a tensor out.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Reason {
    pub tensor: String,
    pub reason: String,
    /// The tensor holds fixed values rather than weights (a constant operand, ids, a mask).
    pub non_weight: bool,
}

/// A tensor the parameter graph does not encode, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Unplaced {
    pub tensor: String,
    /// Elements of the tensor.
    pub parameters: usize,
    pub reason: String,
    /// Fixed values rather than weights (integer tensors, `position_ids`, masks, constant
    /// operands): leaving them out loses nothing a GMN should see.
    pub non_weight: bool,
}

impl Architecture {
    /// Appends the layer that joins a bidirectional recurrent layer's two directions (the next
    /// layer reads both directions' neurons) and returns its index.
    pub(crate) fn join_directions(&mut self, name: String, forward: usize, reverse: Input) -> usize {
        let features = self.width_of(Input::Layer(forward)).unwrap_or(0) + self.width_of(reverse).unwrap_or(0);
        let kind = LayerKind::Concat { parts: vec![Input::Layer(forward), reverse], features };
        self.layers.push(Layer { name, kind, tensors: Vec::new(), input: Input::Layer(forward), parallel_to: None });
        self.layers.len() - 1
    }

    /// Width of the neuron group `input` refers to (`None` for [`Input::Fresh`] or a bad index).
    pub fn width_of(&self, input: Input) -> Option<usize> {
        match input {
            Input::Fresh => None,
            Input::Layer(i) => self.layers.get(i).map(|l| l.kind.out_width()),
            Input::InputOf(i) => self.layers.get(i).and_then(|l| l.kind.in_width()),
        }
    }

    /// Every unrecognised tensor with the reason it is not in the graph, in file order.
    pub fn unplaced(&self, store: &TensorStore) -> Vec<Unplaced> {
        self.unrecognized
            .iter()
            .map(|name| {
                let t = store.get(name);
                let parameters = t.map_or(0, |t| t.num_elements());
                if let Some(r) = self.reasons.iter().find(|r| &r.tensor == name) {
                    let (reason, non_weight) = (r.reason.clone(), r.non_weight);
                    return Unplaced { tensor: name.clone(), parameters, reason, non_weight };
                }
                let (reason, non_weight) = match t {
                    Some(t) if !t.dtype.is_float() => {
                        ("not floating point (ids, counters, shapes or masks): not a weight".into(), true)
                    }
                    _ if is_non_weight_name(name) => {
                        ("fixed values (ids, positions, masks or a registered buffer): not a weight".into(), true)
                    }
                    Some(t) if t.num_elements() <= 1 => ("a scalar no layer owns".into(), false),
                    Some(t) => (format!("no layer rule matches its name and shape {:?}", t.shape), false),
                    None => ("not in the file".into(), false),
                };
                Unplaced { tensor: name.clone(), parameters, reason, non_weight }
            })
            .collect()
    }

    /// Elements of the tensors layers own that are not parameters (norm running statistics).
    pub fn buffer_elements(&self, store: &TensorStore) -> usize {
        self.layers
            .iter()
            .filter_map(|l| match &l.kind {
                LayerKind::Norm { buffers, .. } => Some(buffers),
                _ => None,
            })
            .flatten()
            .filter_map(|name| store.get(name))
            .map(|t| t.num_elements())
            .sum()
    }

    /// Number of chain breaks (layers reading fresh inputs after the first layer).
    pub fn chain_breaks(&self) -> usize {
        self.layers
            .iter()
            .skip(1)
            .filter(|l| l.input == Input::Fresh && !matches!(l.kind, LayerKind::Embedding { .. }))
            .count()
    }
}

/// Names of tensors that hold fixed values rather than weights (`position_ids`, attention masks,
/// registered buffers such as Silero VAD's STFT basis `stft.forward_basis_buffer`).
pub fn is_non_weight_name(name: &str) -> bool {
    let leaf = modules::split_name(name).1.to_ascii_lowercase();
    leaf.ends_with("_ids") || leaf.contains("mask") || leaf == "num_batches_tracked" || leaf.ends_with("buffer")
}

/// Recovers the architecture of a checkpoint. Never fails: what it cannot place is listed in
/// [`Architecture::unrecognized`].
pub fn recover(store: &TensorStore) -> Architecture {
    if store.format == Format::Onnx && !store.ops.is_empty() {
        return onnx::recover(store);
    }
    let modules = modules::group(store);
    let mut prims = primitives::recognize(store, &modules);
    // A file sorted by name says nothing about execution order: order the layers (`order`).
    let sorted = order::is_sorted_by_name(store.tensors().iter().map(|t| (t.dtype, t.name.as_str())));
    let groups = if sorted { Some(order::arrange(&mut prims.layers)) } else { None };
    let mut arch = structure::assemble(store, prims);
    if let Some(groups) = groups {
        let groups: Vec<String> = groups.iter().map(|g| crate::text::shown(g).to_string()).collect();
        let chain = if groups.is_empty() { String::new() } else { format!("; module groups: {}", groups.join(" -> ")) };
        arch.notes.insert(
            0,
            format!(
                "execution order: the file lists its tensors sorted by name, so layers are ordered by their \
                 names with numbers compared by value, sibling module groups chained by width{chain}"
            ),
        );
    }
    arch
}

#[cfg(test)]
mod tests;
