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
//!    `attention.output.dense`, `q_proj/k_proj/v_proj` + `out_proj`, timm `qkv` + `proj`).
//! 3. `structure` orders the primitives into blocks and chains them: ResNet blocks
//!    (`conv1/bn1/conv2/bn2[/conv3/bn3]` with an optional `downsample.*`/`shortcut.*` projection),
//!    transformer blocks (attention + feed-forward + norms, pre- or post-LN), BERT heads, and plain
//!    chains for everything else.
//! 4. For ONNX stores with an operator graph, `onnx` replaces steps 1-3: the ops give the layers,
//!    their order and their true inputs (including residual `Add`s) even when initializer names are
//!    opaque (`onnx::Conv_12`).
//!
//! Recovery never fails. Every tensor of the store ends up either in exactly one layer's
//! [`Layer::tensors`] or in [`Architecture::unrecognized`]; anything surprising (a chain break, an
//! assumed LayerNorm placement) is explained in [`Architecture::notes`].
//!
//! Judgement calls (documented where they are made):
//! - **BatchNorm buffers** (`running_mean`, `running_var`, `num_batches_tracked`, Keras
//!   `moving_*`) are owned by their norm layer (listed in `tensors` and [`LayerKind::Norm`]'s
//!   `buffers`) but are not parameters: the parameter graph encodes gamma and beta only.
//! - **Chain breaks**: a layer whose input width does not match the output width of the layer
//!   before it (e.g. a Linear after `flatten` of a conv map, `in = C*H*W`, which the GMN rules cannot
//!   represent) reads a fresh group of input neurons ([`Input::Fresh`]) and a note records the
//!   break. Conv -> Linear with `in == channels` (global pooling) chains normally.
//! - **Transformer norm placement**: when a block's first norm is stored before its attention the
//!   block is pre-LN (timm/ViT), otherwise post-LN (BERT, `nn.TransformerEncoderLayer` default);
//!   PyTorch state dicts list `norm1/norm2` after `linear2` in both cases, so post-LN is assumed.
//! - **Embeddings** of one module (word/position/token-type) are summed in the model, so they form
//!   one [`LayerKind::Embedding`] layer with several tables feeding the same `dim` neurons.

mod modules;
mod onnx;
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
    },
    Conv {
        /// 1, 2 or 3.
        dims: usize,
        in_channels: usize,
        out_channels: usize,
        kernel: Vec<usize>,
        weight: String,
        bias: Option<String>,
        layout: KernelLayout,
    },
    /// Acts in place on the neurons of its input; `buffers` are running statistics (not parameters).
    Norm {
        kind: NormKind,
        features: usize,
        gamma: Option<String>,
        beta: Option<String>,
        buffers: Vec<String>,
    },
    /// Tables whose looked-up rows are summed into `dim` neurons.
    Embedding {
        dim: usize,
        tables: Vec<EmbeddingTable>,
    },
    /// Self-attention: q/k/v map `embed_dim` inputs to `attn_dim` shared attention neurons,
    /// `out` maps those to `out_dim` new neurons. Head count is not recoverable from weights.
    Attention {
        embed_dim: usize,
        attn_dim: usize,
        out_dim: usize,
        qkv: Qkv,
        out: Projection,
    },
    /// Adds the neurons of `from` to this layer's input neurons (value-1 edges, no parameters).
    /// `block_input` is the input of the block the residual closes (its depth labels the edges).
    Residual {
        from: Input,
        block_input: Input,
        features: usize,
    },
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
        }
    }

    /// Width of the neuron group this layer reads (`None` for embeddings, which read token ids).
    pub fn in_width(&self) -> Option<usize> {
        match self {
            LayerKind::Linear { in_features, .. } => Some(*in_features),
            LayerKind::Conv { in_channels, .. } => Some(*in_channels),
            LayerKind::Norm { features, .. } => Some(*features),
            LayerKind::Embedding { .. } => None,
            LayerKind::Attention { embed_dim, .. } => Some(*embed_dim),
            LayerKind::Residual { features, .. } => Some(*features),
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
        }
    }

    /// True for layers that create new neurons (as opposed to norms and residuals, which act in place).
    pub fn creates_neurons(&self) -> bool {
        !matches!(self, LayerKind::Norm { .. } | LayerKind::Residual { .. })
    }

    /// One-line description, e.g. `Linear(2 -> 32, bias)`.
    pub fn describe(&self) -> String {
        let bias = |b: &Option<String>| if b.is_some() { ", bias" } else { "" };
        match self {
            LayerKind::Linear { in_features, out_features, bias: b, .. } => {
                format!("Linear({in_features} -> {out_features}{})", bias(b))
            }
            LayerKind::Conv { dims, in_channels, out_channels, kernel, bias: b, .. } => {
                format!("Conv{dims}d({in_channels} -> {out_channels}, kernel {kernel:?}{})", bias(b))
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
            LayerKind::Residual { .. } => {}
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
}

impl Architecture {
    /// Width of the neuron group `input` refers to (`None` for [`Input::Fresh`] or a bad index).
    pub fn width_of(&self, input: Input) -> Option<usize> {
        match input {
            Input::Fresh => None,
            Input::Layer(i) => self.layers.get(i).map(|l| l.kind.out_width()),
            Input::InputOf(i) => self.layers.get(i).and_then(|l| l.kind.in_width()),
        }
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

/// Recovers the architecture of a checkpoint. Never fails: what it cannot place is listed in
/// [`Architecture::unrecognized`].
pub fn recover(store: &TensorStore) -> Architecture {
    if store.format == Format::Onnx && !store.ops.is_empty() {
        return onnx::recover(store);
    }
    let modules = modules::group(store);
    let prims = primitives::recognize(store, &modules);
    structure::assemble(store, prims)
}

#[cfg(test)]
mod tests;
