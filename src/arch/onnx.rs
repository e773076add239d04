//! ONNX operator graph -> [`Architecture`]. The ops, in graph (topological) order, give the layers,
//! their execution order and their true inputs, so opaque initializer names (`onnx::Conv_12`)
//! and residual `Add`s are handled without guessing from names.
//!
//! - `Gemm` / `MatMul` with an initializer weight -> Linear; `Conv` -> Conv (ONNX kernels are
//!   `[out, in, k...]`); `BatchNormalization` (scale, B, mean, var), `LayerNormalization`,
//!   `InstanceNormalization`, `GroupNormalization` -> Norm acting on the input's neurons.
//! - `Add` of a bias-free Linear's output and a 1-D initializer of its width -> that Linear's bias
//!   (how exporters write `MatMul` + bias). `Add` of two activations of one width -> a residual
//!   into the later layer's neurons from the earlier one's.
//! - Every other op (Relu, Flatten, pooling, Reshape, Dropout, ...) passes its first activation
//!   input's neurons through.
//!
//! **Attributes decide.** A Gemm weight is `[out, in]` when `transB = 1` and `[in, out]` otherwise
//! (the spec's default 0); `MatMul` weights are always `[in, out]`. A conv's `group` attribute
//! (default 1) gives its groups. `Concat` and `Split` regroup neurons only on the channel axis
//! (`axis = 1`, or `-1` of a Linear's 2-D output); on any other axis the output carries the first
//! input's neurons. `Slice` reads its axes from its inputs (opset 10+) or attributes (older).
//! `LSTM`/`GRU`/`RNN` read `direction`: a bidirectional op is two layers (one per direction) that
//! read the same input, and what reads the op's output reads both directions' hidden nodes.
//! Recurrent weights that the graph builds from initializers by `Slice`/`Concat`/`Unsqueeze`
//! (torch exports an `LSTMCell` so, reordering the gates) are the initializers' layer.
//! `If`: both branches are encoded (their nodes are inlined by the reader); the op's outputs carry
//! the neurons of the first branch's outputs, so what follows reads the `then` branch.

use std::collections::HashMap;

use super::{Architecture, Input, KernelLayout, Layer, LayerKind, MatrixLayout, NormKind};
use crate::checkpoint::DType;
use crate::checkpoint::{OpNode, TensorInfo, TensorStore};

pub(super) fn recover(store: &TensorStore) -> Architecture {
    let mut r = Recovery {
        store,
        arch: Architecture::default(),
        index: store.tensors().iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect(),
        claimed: vec![false; store.len()],
        neurons: HashMap::new(),
        graph_inputs: HashMap::new(),
        input_roots: HashMap::new(),
        reshaped: std::collections::HashSet::new(),
        splits: HashMap::new(),
        constants: store
            .ops
            .iter()
            .filter(|o| o.op_type == "Constant")
            .flat_map(|o| o.outputs.iter().map(String::as_str))
            .collect(),
        derived: derived_weights(store),
        constant_ints: HashMap::new(),
        shape_tails: HashMap::new(),
        shape_channels: HashMap::new(),
        folded: Default::default(),
    };
    (r.constant_ints, r.shape_tails) = constant_ints(store);
    for op in &store.ops {
        r.op(op);
    }
    let Recovery { mut arch, claimed, .. } = r;
    arch.unrecognized =
        store.tensors().iter().zip(&claimed).filter(|(_, c)| !**c).map(|(t, _)| t.name.clone()).collect();
    explain_constants(store, &mut arch);
    arch
}

/// Unclaimed float initializers that only feed element-wise arithmetic (`Mul` by a stride, `Add`
/// of anchors, `Div`, `Pow`) or shape ops are constants of the computation, not weights.
fn explain_constants(store: &TensorStore, arch: &mut Architecture) {
    const ARITHMETIC: [&str; 10] =
        ["Mul", "Add", "Sub", "Div", "Pow", "Reshape", "Expand", "Clip", "Resize", "ConstantOfShape"];
    let unclaimed: std::collections::HashSet<&str> = arch.unrecognized.iter().map(String::as_str).collect();
    // One pass over the ops: which op types read each unclaimed tensor.
    let mut readers: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for op in &store.ops {
        for input in op.inputs.iter().filter(|i| unclaimed.contains(i.as_str())) {
            readers.entry(input.as_str()).or_default().push(op.op_type.as_str());
        }
    }
    // A MatMul/Gemm left out keeps its weight unclaimed; the Add of its bias follows it.
    let left_out_linear: HashMap<&str, &str> = store
        .ops
        .iter()
        .filter(|o| matches!(o.op_type.as_str(), "MatMul" | "Gemm"))
        .filter_map(|o| {
            let w = o.inputs.get(1).filter(|w| unclaimed.contains(w.as_str()))?;
            Some((o.outputs.first()?.as_str(), w.as_str()))
        })
        .collect();
    let mut reasons = Vec::new();
    for op in store.ops.iter().filter(|o| o.op_type == "Add") {
        let [a, b] = op.inputs.as_slice() else { continue };
        for (bias, product) in [(a, b), (b, a)] {
            if let (true, Some(weight)) = (unclaimed.contains(bias.as_str()), left_out_linear.get(product.as_str())) {
                reasons.push(super::Reason {
                    tensor: bias.clone(),
                    reason: format!("the bias of {}, which is left out (see its reason)", crate::text::shown(weight)),
                    non_weight: false,
                });
            }
        }
    }
    let explained: std::collections::HashSet<String> = reasons.iter().map(|r| r.tensor.clone()).collect();
    for (&name, ops) in &readers {
        if explained.contains(name) {
            continue;
        }
        let mut ops = ops.clone();
        if ops.iter().all(|o| ARITHMETIC.contains(o)) && store.get(name).is_some_and(|t| t.dtype.is_float()) {
            ops.sort_unstable();
            ops.dedup();
            reasons.push(super::Reason {
                tensor: name.to_string(),
                reason: format!(
                    "a constant operand of {} (broadcast arithmetic), not a per-neuron weight",
                    ops.join("/")
                ),
                non_weight: true,
            });
        }
    }
    // An initializer no op reads (exporters leave zero biases behind) takes no part in the network.
    for name in unclaimed.iter().filter(|n| !readers.contains_key(*n)) {
        reasons.push(super::Reason {
            tensor: name.to_string(),
            reason: "no operator reads it (an unused initializer): not part of the network".into(),
            non_weight: true,
        });
    }
    reasons.sort_by(|a, b| a.tensor.cmp(&b.tensor));
    arch.reasons.extend(reasons);
}

/// A value's rank when known, and each factor of its split neuron axis: (axis counted from the
/// end, size), outermost first.
type SplitFactors = (Option<usize>, Vec<(usize, usize)>);

struct Recovery<'s> {
    store: &'s TensorStore,
    arch: Architecture,
    index: HashMap<&'s str, usize>,
    claimed: Vec<bool>,
    /// Activation name -> the neurons that carry it.
    neurons: HashMap<String, Input>,
    /// Graph inputs -> the first layer that read them (later readers share its input neurons).
    graph_inputs: HashMap<String, usize>,
    /// Values computed from a graph input by parameter-free ops before any layer reads it (a
    /// `Pad`, an `Unsqueeze`) -> that input: each branch of an `If` pads the input itself, and
    /// both branches' first layers must read the same input neurons.
    input_roots: HashMap<String, String>,
    /// Activations past a Reshape/Flatten/Transpose: their channels may no longer be axis 1.
    reshaped: std::collections::HashSet<String>,
    /// Values whose neuron axis a `Reshape` split into factors (attention's `[.., 3, heads, d]`):
    /// the value's rank when known, and each factor's axis counted from the end (1 = last) and
    /// size, outermost factor first.
    splits: HashMap<String, SplitFactors>,
    /// Outputs of `Constant` nodes: operator arguments (a scale, a shape), never activations.
    constants: std::collections::HashSet<&'s str>,
    /// Values computed from weights alone by rearranging ops -> the weights they rearrange.
    derived: HashMap<String, Vec<String>>,
    /// Small integer values known without running the graph (see [`constant_ints`]).
    constant_ints: HashMap<String, Vec<i64>>,
    /// The known trailing dimensions of shapes with a dynamic dimension (see [`constant_ints`]).
    shape_tails: HashMap<String, Vec<i64>>,
    /// `Shape(x)` outputs -> x's channel count (axis 1), see [`Recovery::fold_shape_ints`].
    shape_channels: HashMap<String, i64>,
    /// Values folded to integers from activation shapes: arguments, never activations.
    folded: std::collections::HashSet<String>,
}

/// Integer values the graph computes from small integer `Constant`s alone (slice bounds and axes
/// exported as `Unsqueeze(Constant)`, shapes joined by `Concat`): value name -> its elements.
fn constant_ints(store: &TensorStore) -> (HashMap<String, Vec<i64>>, HashMap<String, Vec<i64>>) {
    let mut known: HashMap<String, Vec<i64>> = HashMap::new();
    let mut known_tails: HashMap<String, Vec<i64>> = HashMap::new();
    // Small integer initializers (paddle2onnx's `p2o.helper.constant.*`) are known values too.
    for t in store.tensors() {
        if matches!(t.dtype, DType::I64 | DType::I32) && t.num_elements() <= 64 {
            known.insert(t.name.clone(), t.to_f64().into_iter().map(|v| v as i64).collect());
        }
    }
    for op in &store.ops {
        let values = match op.op_type.as_str() {
            "Constant" => op
                .ints_attribute("value")
                .or_else(|| op.ints_attribute("value_ints"))
                .map(<[i64]>::to_vec)
                .or_else(|| op.int_attribute("value_int").map(|v| vec![v])),
            "Unsqueeze" | "Squeeze" | "Cast" | "Identity" | "Reshape" => {
                op.inputs.first().and_then(|i| known.get(i)).cloned()
            }
            "Concat" => {
                let parts: Option<Vec<&Vec<i64>>> = op.inputs.iter().map(|i| known.get(i)).collect();
                if parts.is_none() {
                    // A shape with a dynamic dimension (`[0, N, 3, heads, d]`): the parts after
                    // the last unknown one are its known trailing dimensions.
                    let tail: Vec<i64> = op
                        .inputs
                        .iter()
                        .rev()
                        .map_while(|i| known.get(i))
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .flatten()
                        .copied()
                        .collect();
                    if let Some(out) = op.outputs.first().filter(|_| !tail.is_empty() && tail.len() <= 64) {
                        known_tails.insert(out.clone(), tail);
                    }
                }
                parts.map(|p| p.into_iter().flatten().copied().collect::<Vec<i64>>()).filter(|v| v.len() <= 64)
            }
            _ => None,
        };
        if let (Some(values), Some(out)) = (values, op.outputs.first()) {
            known.insert(out.clone(), values);
        }
    }
    (known, known_tails)
}

/// Weights one derived value may be made of (see [`derived_weights`]).
const MAX_DERIVED_SOURCES: usize = 4;

/// Ops that only rearrange the elements of their first input (`Concat`: of all inputs); the
/// other inputs are integer arguments (starts, axes, shapes).
const REARRANGING: [&str; 8] = ["Slice", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Identity", "Cast", "Split"];

/// Values the graph computes from weights alone by [`REARRANGING`] ops (torch exports an
/// `LSTMCell` as an `LSTM` op whose `W`/`R`/`B` are its weights sliced into gates, reordered and
/// concatenated): each value -> the weights it is made of, in order of first use. Ops come in
/// topological order, so one pass sees every source before its users.
fn derived_weights(store: &TensorStore) -> HashMap<String, Vec<String>> {
    let mut derived: HashMap<String, Vec<String>> = HashMap::new();
    let constants: std::collections::HashSet<&str> =
        store.ops.iter().filter(|o| o.op_type == "Constant").flat_map(|o| &o.outputs).map(String::as_str).collect();
    for op in &store.ops {
        if !REARRANGING.contains(&op.op_type.as_str()) {
            continue;
        }
        let data: &[String] = if op.op_type == "Concat" { &op.inputs } else { op.inputs.get(..1).unwrap_or(&[]) };
        let mut sources: Vec<String> = Vec::new();
        let mut all_weights = !data.is_empty();
        for name in data.iter().filter(|n| !n.is_empty()) {
            match (derived.get(name), store.get(name)) {
                (Some(from), _) => sources.extend(from.iter().cloned()),
                (None, Some(t)) if t.dtype.is_float() => sources.push(name.clone()),
                _ if constants.contains(name.as_str()) => {}
                _ => all_weights = false,
            }
        }
        let mut unique: Vec<String> = Vec::new();
        for name in sources {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        // The rules read at most two sources (torch's two bias vectors); a cap keeps a hostile
        // chain of Concats from building lists that grow with every node.
        if all_weights && !unique.is_empty() && unique.len() <= MAX_DERIVED_SOURCES {
            let sources = unique;
            for out in &op.outputs {
                derived.insert(out.clone(), sources.clone());
            }
        }
    }
    derived
}

/// Ops after which the channel axis is no longer known (no shape inference).
const RESHAPING: [&str; 6] = ["Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Expand"];

impl<'s> Recovery<'s> {
    /// An unclaimed float initializer feeding an op.
    fn init(&self, name: Option<&String>) -> Option<(usize, &'s TensorInfo)> {
        let &i = self.index.get(name?.as_str())?;
        let t = self.store.tensors().get(i)?;
        (!self.claimed.get(i).copied().unwrap_or(true) && t.dtype.is_float() && t.shape.iter().all(|&d| d > 0))
            .then_some((i, t))
    }

    fn is_initializer(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The first input that is an activation: not a weight, not a value made of weights alone,
    /// not a `Constant`'s output (PP-OCR's `Mul(scale, x)` names the scale first).
    fn activation<'o>(&self, op: &'o OpNode) -> Option<&'o String> {
        op.inputs.iter().find(|n| self.activation_name(n))
    }

    /// The neurons behind activation `name` (graph inputs: the first reader's input group).
    fn neurons_of(&self, name: Option<&String>) -> Option<Input> {
        let name = name?;
        let root = self.input_roots.get(name).unwrap_or(name);
        self.neurons.get(name).copied().or_else(|| self.graph_inputs.get(root).map(|&l| Input::InputOf(l)))
    }

    /// `wanted` when it has `width` neurons; a fresh group when the op reads the graph input;
    /// `None` when its input carries another number of neurons (the ops between regroup neurons
    /// in a way the rules cannot follow, e.g. YOLO's DFL conv after Reshape/Transpose): the layer
    /// is then left out with the reason, and its output carries its input's neurons, so the
    /// graph stays connected around it.
    fn connect(
        &mut self,
        tensors: &[Option<(usize, &TensorInfo)>],
        wanted: Option<Input>,
        width: usize,
    ) -> Option<Input> {
        let Some(wanted) = wanted else { return Some(Input::Fresh) };
        let graph_input =
            matches!(wanted, Input::InputOf(l) if self.arch.layers.get(l).is_some_and(|l| l.input == Input::Fresh));
        match self.arch.width_of(wanted) {
            Some(have) if have == width => Some(wanted),
            // The network input seen through a Reshape by another layer: a group of its own.
            Some(_) if graph_input => Some(Input::Fresh),
            Some(have) => {
                let reason = format!(
                    "reads {width} neurons but its input carries {have} (the ops before it regroup neurons in a way \
                     the graph rules cannot follow); left out, the graph continues from its input"
                );
                for (_, t) in tensors.iter().flatten() {
                    self.arch.reasons.push(super::Reason {
                        tensor: t.name.clone(),
                        reason: reason.clone(),
                        non_weight: false,
                    });
                }
                None
            }
            None => Some(Input::Fresh),
        }
    }

    fn push(&mut self, op: &OpNode, kind: LayerKind, tensors: &[usize], input: Input) {
        for &t in tensors {
            if let Some(c) = self.claimed.get_mut(t) {
                *c = true;
            }
        }
        let weight_name = tensors.first().and_then(|&t| self.store.tensors().get(t)).map(|t| t.name.as_str());
        let name = match weight_name.and_then(|n| n.strip_suffix(".weight")) {
            Some(module) => module.to_string(),
            None if !op.name.is_empty() => op.name.clone(),
            None => format!("{}_{}", op.op_type, self.arch.layers.len()),
        };
        let names = tensors.iter().filter_map(|&t| self.store.tensors().get(t).map(|t| t.name.clone())).collect();
        self.arch.layers.push(Layer { name, kind, tensors: names, input, parallel_to: None });
        let index = self.arch.layers.len() - 1;
        if input == Input::Fresh
            && let Some(x) = self.activation(op)
            && !self.neurons.contains_key(x)
        {
            let root = self.input_roots.get(x).unwrap_or(x).clone();
            self.graph_inputs.entry(root).or_insert(index);
        }
        self.set_outputs(op, Input::Layer(index));
    }

    /// Number of neuron-creating layers between the network input and `input` (attention counts
    /// twice: attention neurons, then its output neurons), as the graph's layer index will be.
    fn depth(&self, input: Input) -> usize {
        let mut input = input;
        let mut depth = 0;
        for _ in 0..=self.arch.layers.len() {
            let (Input::Layer(i) | Input::InputOf(i)) = input else { break };
            let Some(layer) = self.arch.layers.get(i) else { break };
            if matches!(input, Input::Layer(_)) {
                depth += match layer.kind {
                    LayerKind::Attention { .. } => 2,
                    ref k if k.creates_neurons() => 1,
                    _ => 0,
                };
            }
            input = layer.input;
        }
        depth
    }

    fn set_outputs(&mut self, op: &OpNode, neurons: Input) {
        for out in &op.outputs {
            self.neurons.insert(out.clone(), neurons);
        }
    }

    fn op(&mut self, op: &OpNode) {
        if self.fold_shape_ints(op) {
            return;
        }
        let handled = match op.op_type.as_str() {
            "Gemm" | "MatMul" => self.linear(op) || self.product_of_activations(op),
            "Reshape" => self.track_split(op),
            "Transpose" => self.track_transpose(op),
            "Gather" => self.pick_factor(op),
            "Conv" | "ConvTranspose" => self.conv(op),
            "BatchNormalization" | "LayerNormalization" | "InstanceNormalization" | "GroupNormalization" => {
                self.norm(op)
            }
            "Add" | "Mul" => self.add(op),
            "Concat" => self.concat(op),
            "Split" => self.split(op),
            "Slice" => self.slice(op),
            "PRelu" => self.prelu(op),
            "LSTM" | "GRU" | "RNN" => self.recurrent(op),
            "If" => self.branches(op),
            _ => false,
        };
        if !handled {
            // Parameter-free (or unsupported) op: its outputs carry its first activation's neurons.
            let first = self.activation(op);
            if let Some(n) = self.neurons_of(first) {
                self.set_outputs(op, n);
            } else if let Some(f) = first {
                let root = self.input_roots.get(f).unwrap_or(f).clone();
                for out in &op.outputs {
                    self.input_roots.insert(out.clone(), root.clone());
                }
            }
            if RESHAPING.contains(&op.op_type.as_str()) || first.is_some_and(|f| self.reshaped.contains(f)) {
                self.reshaped.extend(op.outputs.iter().cloned());
            }
        }
    }

    fn linear(&mut self, op: &OpNode) -> bool {
        let Some((w, t)) = self.init(op.inputs.get(1)) else { return false };
        let [a, b] = t.shape[..] else { return false };
        let x = self.neurons_of(self.activation(op));
        let width = x.and_then(|x| self.arch.width_of(x));
        let bias =
            if op.op_type == "Gemm" { self.init(op.inputs.get(2)).filter(|(_, t)| t.shape.len() == 1) } else { None };
        // `transB = 1`: `[out, in]` (torch's Linear); the default 0: `[in, out]`. `transA` only
        // transposes the activation matrix, whose features stay the same neurons.
        let layout = if op.op_type == "Gemm" && op.int_attribute("transB").unwrap_or(0) != 0 {
            MatrixLayout::OutIn
        } else {
            MatrixLayout::InOut
        };
        let (in_features, out_features) = match layout {
            MatrixLayout::OutIn => (b, a),
            MatrixLayout::InOut => (a, b),
        };
        let bias = bias.filter(|(_, t)| t.num_elements() == out_features);
        let name = t.name.clone();
        // After a Flatten of a C x H x W map: C channel nodes, H*W parallel edges per pair.
        let positions = match width {
            Some(w) if w > 0 && w != in_features && in_features % w == 0 && self.reads_conv_map(x) => in_features / w,
            _ => 1,
        };
        if positions > 1 {
            self.arch.notes.push(format!(
                "{}: reads a flattened map ({in_features} = {} channels x {positions} positions), channel-major",
                crate::text::shown(&name),
                in_features / positions
            ));
        }
        let Some(input) = self.connect(&[Some((w, t)), bias], x, in_features / positions) else { return false };
        let kind = LayerKind::Linear {
            in_features,
            out_features,
            weight: name,
            bias: bias.map(|(_, t)| t.name.clone()),
            layout,
            positions,
        };
        let tensors: Vec<usize> = std::iter::once(w).chain(bias.map(|(i, _)| i)).collect();
        self.push(op, kind, &tensors, input);
        true
    }

    /// `Conv` (`[out, in / group, k...]`) or `ConvTranspose` (`[in, out / group, k...]`): one
    /// node per output channel, an edge per kernel element, groups from the `group` attribute.
    fn conv(&mut self, op: &OpNode) -> bool {
        let Some((w, t)) = self.init(op.inputs.get(1)) else { return false };
        if !(3..=5).contains(&t.shape.len()) {
            return false;
        }
        // The `group` attribute (default 1): output group `j` reads input group `j`.
        let groups = usize::try_from(op.int_attribute("group").unwrap_or(1)).unwrap_or(0);
        let transposed = op.op_type == "ConvTranspose";
        let (out_channels, per_group, layout) = if transposed {
            let Some(out) = t.shape[1].checked_mul(groups) else { return false };
            (out, t.shape[0] / groups.max(1), KernelLayout::InOutKernel)
        } else {
            (t.shape[0], t.shape[1], KernelLayout::OutInKernel)
        };
        if groups == 0 || out_channels % groups != 0 || (transposed && t.shape[0] % groups != 0) {
            return false;
        }
        let bias = self.init(op.inputs.get(2)).filter(|(_, b)| b.shape == [out_channels]);
        let x = self.neurons_of(self.activation(op));
        let Some(in_channels) = per_group.checked_mul(groups) else { return false };
        let Some(input) = self.connect(&[Some((w, t)), bias], x, in_channels) else { return false };
        let kind = LayerKind::Conv {
            dims: t.shape.len() - 2,
            in_channels,
            out_channels,
            kernel: t.shape[2..].to_vec(),
            weight: t.name.clone(),
            bias: bias.map(|(_, b)| b.name.clone()),
            layout,
            groups,
        };
        let tensors: Vec<usize> = std::iter::once(w).chain(bias.map(|(i, _)| i)).collect();
        self.push(op, kind, &tensors, input);
        true
    }

    fn norm(&mut self, op: &OpNode) -> bool {
        let Some((g, gamma)) = self.init(op.inputs.get(1)) else { return false };
        let features = gamma.num_elements();
        let vector = |i: usize| self.init(op.inputs.get(i)).filter(|(_, t)| t.num_elements() == features);
        let beta = vector(2);
        let (kind, buffers) = match op.op_type.as_str() {
            "BatchNormalization" => (NormKind::Batch, [vector(3), vector(4)].into_iter().flatten().collect()),
            "LayerNormalization" => (NormKind::Layer, Vec::new()),
            "InstanceNormalization" => (NormKind::Instance, Vec::new()),
            _ => (NormKind::Group, Vec::new()),
        };
        let buffers: Vec<(usize, &TensorInfo)> = buffers;
        let x = self.neurons_of(self.activation(op));
        let Some(input) = self.connect(&[Some((g, gamma)), beta], x, features) else { return false };
        let kind = LayerKind::Norm {
            kind,
            features,
            gamma: Some(gamma.name.clone()),
            beta: beta.map(|(_, t)| t.name.clone()),
            buffers: buffers.iter().map(|(_, t)| t.name.clone()).collect(),
        };
        let tensors: Vec<usize> =
            std::iter::once(g).chain(beta.map(|(i, _)| i)).chain(buffers.iter().map(|&(i, _)| i)).collect();
        self.push(op, kind, &tensors, input);
        true
    }

    /// `Add`: a bias for a bias-free Linear (MatMul + Add), or a residual between two activations.
    fn add(&mut self, op: &OpNode) -> bool {
        let (Some(a), Some(b)) = (op.inputs.first(), op.inputs.get(1)) else { return false };
        let (act, other) = if self.is_initializer(a) { (b, a) } else { (a, b) };
        let Some(x) = self.neurons_of(Some(act)) else { return false };
        if self.is_initializer(other) {
            // An Add can be a bias-free Linear's bias; otherwise a vector with one value per
            // neuron is a per-channel scale or shift (a LayerNorm exported as arithmetic); any
            // other constant is a broadcast operand (strides, anchors).
            return (op.op_type == "Add" && self.attach_bias(op, x, other)) || self.per_neuron(op, x, other);
        }
        let Some(y) = self.neurons_of(Some(other)) else { return false };
        // Two views of the same neurons (`x*x + y*y` after a `Slice`, as STFT front ends write
        // it) are an element-wise op, not a skip connection: a residual into itself is a cycle.
        if x == y {
            return false;
        }
        let (wx, wy) = (self.arch.width_of(x), self.arch.width_of(y));
        if wx.is_none() || wx != wy || self.same_neurons(x, y) {
            // x * sigmoid(x) (SiLU), x + x, or a broadcast: the output carries the input's neurons.
            return false;
        }
        // The residual flows from the shallower neurons (the skip) into the deeper ones (the
        // block output); at equal depth, into the later layer's.
        let key = |n: Input| {
            let rank = match n {
                Input::Layer(i) => i as isize,
                _ => -1,
            };
            (self.depth(n), rank)
        };
        let (from, target) = if key(x) >= key(y) { (y, x) } else { (x, y) };
        if !matches!(target, Input::Layer(_)) {
            return false;
        }
        let features = wx.unwrap_or(0);
        let kind = LayerKind::Residual { from, block_input: from, features };
        let name =
            if op.name.is_empty() { format!("{}_{}", op.op_type, self.arch.layers.len()) } else { op.name.clone() };
        self.arch.layers.push(Layer { name, kind, tensors: Vec::new(), input: target, parallel_to: None });
        let index = self.arch.layers.len() - 1;
        self.set_outputs(op, Input::Layer(index));
        true
    }

    /// `Mul`/`Add` of the neurons `x` and an unclaimed float vector with one value per neuron
    /// (`[C]`, `[1, C]`, `[C, 1, 1]`): a per-channel scale or shift, like a norm's gamma and beta
    /// (how LayerNorm looks when exported as `ReduceMean`/`Sub`/`Div`/`Mul`/`Add`).
    fn per_neuron(&mut self, op: &OpNode, x: Input, name: &str) -> bool {
        let Some((i, t)) = self.init(Some(&name.to_string())) else { return false };
        let features = t.num_elements();
        let one_axis = t.shape.iter().filter(|&&d| d != 1).count() == 1;
        if features < 2 || !one_axis || self.arch.width_of(x) != Some(features) {
            return false;
        }
        let role = if op.op_type == "Mul" { "scale" } else { "shift" };
        let kind = LayerKind::PerChannel { role: role.into(), features, weight: t.name.clone() };
        self.push(op, kind, &[i], x);
        true
    }

    /// True when `x` is the output of a conv (through in-place layers): a map with positions.
    fn reads_conv_map(&self, x: Option<Input>) -> bool {
        let Some(Input::Layer(i)) = x.map(|x| self.origin(x)) else { return false };
        matches!(self.arch.layers.get(i).map(|l| &l.kind), Some(LayerKind::Conv { .. }))
    }

    /// True when `a` and `b` are the same neurons (through in-place layers such as norms).
    fn same_neurons(&self, a: Input, b: Input) -> bool {
        self.origin(a) == self.origin(b)
    }

    /// The neuron-creating (or regrouping) layer behind `input`, skipping in-place layers.
    fn origin(&self, input: Input) -> Input {
        let mut input = input;
        for _ in 0..=self.arch.layers.len() {
            let Input::Layer(i) = input else { return input };
            match self.arch.layers.get(i) {
                Some(l)
                    if matches!(
                        l.kind,
                        LayerKind::Norm { .. } | LayerKind::Residual { .. } | LayerKind::PerChannel { .. }
                    ) =>
                {
                    input = l.input;
                }
                _ => return input,
            }
        }
        input
    }

    fn layer_name(&self, op: &OpNode) -> String {
        if op.name.is_empty() { format!("{}_{}", op.op_type, self.arch.layers.len()) } else { op.name.clone() }
    }

    /// True when `axis` is the neuron axis of every group in `parts`: axis 1 of a conv map, axis 1
    /// or -1 of a Linear-like output (`[batch, features]`); never after a Reshape/Transpose.
    fn on_channels(&self, axis: Option<i64>, parts: &[Input], names: &[&String]) -> bool {
        if names.iter().any(|a| self.reshaped.contains(*a)) {
            return false;
        }
        match axis {
            Some(1) => true,
            Some(-1) => parts.iter().all(|&p| !self.reads_conv_map(Some(p)) && p != Input::Fresh),
            _ => false,
        }
    }

    fn note_once(&mut self, note: String) {
        if !self.arch.notes.contains(&note) {
            self.arch.notes.push(note);
        }
    }

    /// `Concat` of activations on the channel axis ([`Self::on_channels`]): the union of their
    /// neurons, in input order. On another axis (positions, time, YOLO's anchors after a Reshape)
    /// the output carries its first input's neurons.
    fn concat(&mut self, op: &OpNode) -> bool {
        let acts: Vec<&String> = op
            .inputs
            .iter()
            .filter(|n| !n.is_empty() && !self.is_initializer(n) && !self.constants.contains(n.as_str()))
            .collect();
        let parts: Option<Vec<Input>> = acts.iter().map(|n| self.neurons_of(Some(n))).collect();
        let Some(parts) = parts else { return false };
        if parts.len() < 2 {
            return false;
        }
        let axis = op.int_attribute("axis");
        if !self.on_channels(axis, &parts, &acts) {
            let axis = axis.map_or_else(|| "none".to_string(), |a| a.to_string());
            self.note_once(format!(
                "Concat on axis {axis} after a Reshape/Transpose or off the channel axis (e.g. {}): the output \
                 carries its first input's neurons",
                crate::text::shown(&op.name)
            ));
            if acts.iter().any(|a| self.reshaped.contains(*a)) {
                self.reshaped.extend(op.outputs.iter().cloned());
            }
            return false;
        }
        let widths: Option<Vec<usize>> = parts.iter().map(|&p| self.arch.width_of(p)).collect();
        let Some(widths) = widths else { return false };
        // The same neurons may come more than once (SPPF concatenates max-pools of one map): the
        // union then lists them again, and a layer reading it gets parallel edges from them.
        let first = parts[0];
        let features = widths.iter().sum();
        let kind = LayerKind::Concat { parts, features };
        let name = self.layer_name(op);
        self.arch.layers.push(Layer { name, kind, tensors: Vec::new(), input: first, parallel_to: None });
        self.set_outputs(op, Input::Layer(self.arch.layers.len() - 1));
        true
    }

    /// `Split` on channels (`axis`, default 0, must be the channel axis): output `k` is a slice of
    /// the input's neurons. Sizes come from the `split` input (an int64 initializer, opset 13+)
    /// or attribute (older opsets); without either, equal parts. On another axis every output
    /// carries the input's neurons.
    fn split(&mut self, op: &OpNode) -> bool {
        let first = self.activation(op);
        let Some(x) = self.neurons_of(first) else { return false };
        let Some(total) = self.arch.width_of(x) else { return false };
        let n = op.outputs.len();
        // After a Reshape axis 1 is still taken as channels here: YOLO's `view(b, no, -1)` keeps
        // them there before it splits box from class rows.
        if n == 0 || !self.on_channels(Some(op.int_attribute("axis").unwrap_or(0)), &[x], &[]) {
            return false;
        }
        let from_attribute =
            || -> Option<Vec<usize>> { op.ints_attribute("split")?.iter().map(|&v| usize::try_from(v).ok()).collect() };
        let sizes: Vec<usize> = match self.int_initializer(op.inputs.get(1)).or_else(from_attribute) {
            Some(sizes) => sizes,
            None if total % n == 0 => vec![total / n; n],
            None => return false,
        };
        if sizes.len() != n || sizes.iter().sum::<usize>() != total || sizes.contains(&0) {
            return false;
        }
        let mut start = 0;
        for (out, len) in op.outputs.iter().zip(sizes) {
            let kind = LayerKind::Slice { start, len, features_in: total };
            let name = format!("{}:{out}", self.layer_name(op));
            self.arch.layers.push(Layer { name, kind, tensors: Vec::new(), input: x, parallel_to: None });
            self.neurons.insert(out.clone(), Input::Layer(self.arch.layers.len() - 1));
            start += len;
        }
        true
    }

    /// `Slice` on channels (one axis, the channel axis, step 1; starts/ends/axes as int
    /// initializers (opset 10+) or attributes (older), negative ones counted from the end, ends
    /// clamped; axes default to `0..len(starts)`): a subset of the input's neurons. Slices on
    /// other axes (positions) keep the input's neurons.
    fn slice(&mut self, op: &OpNode) -> bool {
        if self.pick_factor(op) {
            return true;
        }
        let first = self.activation(op);
        let Some(x) = self.neurons_of(first) else { return false };
        let Some(total) = self.arch.width_of(x) else { return false };
        let ints = |i: usize, attribute: &str| {
            self.signed_initializer(op.inputs.get(i)).or_else(|| op.ints_attribute(attribute).map(<[i64]>::to_vec))
        };
        let (Some(starts), Some(ends)) = (ints(1, "starts"), ints(2, "ends")) else { return false };
        let axes = ints(3, "axes").unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = self.signed_initializer(op.inputs.get(4)).unwrap_or_else(|| vec![1]);
        if axes.len() != 1 || !self.on_channels(axes.first().copied(), &[x], &[]) {
            return false;
        }
        if starts.len() != 1 || ends.len() != 1 || steps != [1] {
            return false;
        }
        let w = total as i64;
        let at = |v: i64| if v < 0 { (v + w).max(0) } else { v.min(w) };
        let (start, end) = (at(starts[0]), at(ends[0]));
        if end <= start || (start == 0 && end == w) {
            return false;
        }
        let kind = LayerKind::Slice { start: start as usize, len: (end - start) as usize, features_in: total };
        let name = self.layer_name(op);
        self.arch.layers.push(Layer { name, kind, tensors: Vec::new(), input: x, parallel_to: None });
        self.set_outputs(op, Input::Layer(self.arch.layers.len() - 1));
        true
    }

    /// `MatMul` of two activations (attention's `softmax(q k^T) v`): the output's features are
    /// the columns of the second operand, so it carries the second operand's neurons.
    fn product_of_activations(&mut self, op: &OpNode) -> bool {
        if op.op_type != "MatMul" {
            return false;
        }
        let acts: Vec<&String> = op.inputs.iter().filter(|n| self.activation_name(n)).collect();
        let [_, b] = acts.as_slice() else { return false };
        let Some(neurons) = self.neurons_of(Some(b)) else { return false };
        let split = self.splits.get(b.as_str()).cloned();
        self.set_outputs(op, neurons);
        for out in &op.outputs {
            self.reshaped.insert(out.clone());
            if let Some(split) = &split {
                self.splits.insert(out.clone(), split.clone());
            }
        }
        true
    }

    fn activation_name(&self, n: &str) -> bool {
        !n.is_empty()
            && !self.is_initializer(n)
            && !self.constants.contains(n)
            && !self.derived.contains_key(n)
            && !self.folded.contains(n)
    }

    /// Integers the graph computes from activation shapes, folded from the known channel counts:
    /// torch exports `x.chunk(2, 1)` as `Slice(x, 0, Mul(Div(Gather(Shape(x), 1), 2), 1), 1)`,
    /// and the slice is a channel split only if its bounds are known. `Shape(x)` gives x's width
    /// at axis 1 (while x's channels are still there); `Gather` of index 1, `Div`/`Mul`/`Add`/
    /// `Sub`, `Unsqueeze`/`Squeeze`/`Cast`/`Identity` and `Concat` of known values fold. Returns
    /// whether `op` was such an op (its output is then an argument, not an activation).
    fn fold_shape_ints(&mut self, op: &OpNode) -> bool {
        let Some(out) = op.outputs.first().cloned() else { return false };
        let known = |s: &Self, i: usize| op.inputs.get(i).and_then(|n| s.signed_initializer(Some(n)));
        let from_shape = |s: &Self| op.inputs.iter().any(|n| s.folded.contains(n));
        let value = match op.op_type.as_str() {
            "Shape" => {
                let first = op.inputs.first();
                if op.int_attribute("start").unwrap_or(0) != 0 || first.is_none_or(|n| self.reshaped.contains(n)) {
                    return false;
                }
                let Some(width) = self.neurons_of(first).and_then(|x| self.arch.width_of(x)) else { return false };
                self.shape_channels.insert(out.clone(), width as i64);
                self.folded.insert(out);
                return true;
            }
            "Gather" => {
                let Some(&width) = op.inputs.first().and_then(|n| self.shape_channels.get(n)) else { return false };
                if op.int_attribute("axis").unwrap_or(0) != 0 || known(self, 1).as_deref() != Some(&[1]) {
                    return false;
                }
                vec![width]
            }
            "Div" | "Mul" | "Add" | "Sub" if from_shape(self) => {
                let (Some(a), Some(b)) = (known(self, 0), known(self, 1)) else { return false };
                let len = a.len().max(b.len());
                if !(a.len() == len || a.len() == 1) || !(b.len() == len || b.len() == 1) || len > 64 {
                    return false;
                }
                let pick = |v: &[i64], k: usize| if v.len() == 1 { v[0] } else { v[k] };
                let mut values = Vec::with_capacity(len);
                for k in 0..len {
                    let (x, y) = (pick(&a, k), pick(&b, k));
                    let v = match op.op_type.as_str() {
                        "Div" if y != 0 => x.checked_div(y),
                        "Mul" => x.checked_mul(y),
                        "Add" => x.checked_add(y),
                        "Sub" => x.checked_sub(y),
                        _ => None,
                    };
                    let Some(v) = v else { return false };
                    values.push(v);
                }
                values
            }
            "Unsqueeze" | "Squeeze" | "Cast" | "Identity" if from_shape(self) => {
                let Some(v) = known(self, 0) else { return false };
                v
            }
            "Concat" if from_shape(self) => {
                let parts: Option<Vec<Vec<i64>>> = (0..op.inputs.len()).map(|i| known(self, i)).collect();
                let Some(parts) = parts else { return false };
                let values: Vec<i64> = parts.concat();
                if values.len() > 64 {
                    return false;
                }
                values
            }
            _ => return false,
        };
        self.constant_ints.insert(out.clone(), value);
        self.folded.insert(out);
        true
    }

    /// `Reshape` whose target shape ends in factors of the input's neuron count (`[0, -1, 3, 8,
    /// 15]` of 360 neurons): the factors are recorded, so a later pick of one factor (q, k or v)
    /// is a slice of the neurons. The output carries the input's neurons either way.
    fn track_split(&mut self, op: &OpNode) -> bool {
        let first = self.activation(op);
        let Some(x) = self.neurons_of(first) else { return false };
        let Some(width) = self.arch.width_of(x) else { return false };
        let full = self.signed_initializer(op.inputs.get(1));
        let rank = full.as_ref().map(Vec::len);
        let shape =
            full.or_else(|| op.inputs.get(1).and_then(|n| self.shape_tails.get(n)).cloned()).unwrap_or_default();
        let mut product = 1usize;
        let mut start = None;
        for (axis, &d) in shape.iter().enumerate().rev() {
            let Ok(d) = usize::try_from(d) else { break };
            if d == 0 {
                break;
            }
            product = product.saturating_mul(d);
            if product == width {
                start = Some(axis);
                break;
            }
            if product > width {
                break;
            }
        }
        self.set_outputs(op, x);
        self.reshaped.extend(op.outputs.iter().cloned());
        if let Some(start) = start.filter(|&s| shape.len() - s > 1) {
            let factors: Vec<(usize, usize)> = (start..shape.len())
                .filter_map(|a| Some((shape.len() - a, usize::try_from(*shape.get(a)?).ok()?)))
                .collect();
            for out in &op.outputs {
                self.splits.insert(out.clone(), (rank, factors.clone()));
            }
        }
        true
    }

    /// `Transpose` of a split value: its factors move with their axes.
    fn track_transpose(&mut self, op: &OpNode) -> bool {
        let first = self.activation(op);
        let Some(x) = self.neurons_of(first) else { return false };
        self.set_outputs(op, x);
        self.reshaped.extend(op.outputs.iter().cloned());
        let (Some((_, split)), Some(perm)) = (first.and_then(|f| self.splits.get(f)), op.ints_attribute("perm")) else {
            return true;
        };
        let rank = perm.len();
        let moved: Option<Vec<(usize, usize)>> = split
            .iter()
            .map(|&(from_end, size)| {
                let axis = rank.checked_sub(from_end)? as i64;
                let to = perm.iter().position(|&p| p == axis)?;
                Some((rank - to, size))
            })
            .collect();
        if let Some(moved) = moved {
            for out in &op.outputs {
                self.splits.insert(out.clone(), (Some(rank), moved.clone()));
            }
        }
        true
    }

    /// A `Slice` (one axis, step 1) or `Gather` (one index) on the outermost factor of a split
    /// value: picks neurons `k * W / s .. (k + n) * W / s` of its `W` (attention's q, k or v out of
    /// a fused qkv projection).
    fn pick_factor(&mut self, op: &OpNode) -> bool {
        let first = self.activation(op);
        let Some((rank, &[(from_end, size), ..])) =
            first.and_then(|f| self.splits.get(f)).map(|(r, f)| (*r, f.as_slice()))
        else {
            return false;
        };
        let Some(x) = self.neurons_of(first) else { return false };
        let Some(width) = self.arch.width_of(x) else { return false };
        let signed = |v: i64| if v < 0 { v + size as i64 } else { v };
        let (start, count, on) = if op.op_type == "Gather" {
            let Some(index) = self.signed_initializer(op.inputs.get(1)) else { return false };
            let ([k], Some(a)) = (index.as_slice(), Some(op.int_attribute("axis").unwrap_or(0))) else { return false };
            (signed(*k), 1, a)
        } else {
            let ints = |i: usize| self.signed_initializer(op.inputs.get(i));
            let (Some(starts), Some(ends), Some(axes)) = (ints(1), ints(2), ints(3)) else { return false };
            let steps = ints(4).unwrap_or_else(|| vec![1]);
            let ([b], [e], [a], [1]) = (starts.as_slice(), ends.as_slice(), axes.as_slice(), steps.as_slice()) else {
                return false;
            };
            let (b, e) = (signed(*b).clamp(0, size as i64), signed(*e).clamp(0, size as i64));
            (b, e - b, *a)
        };
        // The op's axis counted from the end (negative axes are; others need the rank).
        let on_from_end = if on < 0 { Some(-on) } else { rank.map(|r| r as i64 - on) };
        if on_from_end != Some(from_end as i64)
            || start < 0
            || count <= 0
            || start + count > size as i64
            || size == 0
            || width % size != 0
        {
            return false;
        }
        let per = width / size;
        let kind = LayerKind::Slice { start: start as usize * per, len: count as usize * per, features_in: width };
        let name = self.layer_name(op);
        self.arch.layers.push(Layer { name, kind, tensors: Vec::new(), input: x, parallel_to: None });
        self.set_outputs(op, Input::Layer(self.arch.layers.len() - 1));
        self.reshaped.extend(op.outputs.iter().cloned());
        true
    }

    /// The values of a small signed integer initializer or constant (slice starts, ends, axes).
    fn signed_initializer(&self, name: Option<&String>) -> Option<Vec<i64>> {
        if let Some(values) = self.constant_ints.get(name?.as_str()) {
            return Some(values.clone());
        }
        let &i = self.index.get(name?.as_str())?;
        let t = self.store.tensors().get(i)?;
        if !matches!(t.dtype, DType::I64 | DType::I32) || t.num_elements() > 16 {
            return None;
        }
        // f64 holds every value a slice bound needs; INT64_MAX ("to the end") saturates back.
        Some(t.to_f64().into_iter().map(|v| v as i64).collect())
    }

    /// The values of a small integer initializer or constant (split sizes), if `name` is one.
    fn int_initializer(&self, name: Option<&String>) -> Option<Vec<usize>> {
        if let Some(values) = self.constant_ints.get(name?.as_str()) {
            return values.iter().map(|&v| usize::try_from(v).ok()).collect();
        }
        let &i = self.index.get(name?.as_str())?;
        let t = self.store.tensors().get(i)?;
        if !matches!(t.dtype, DType::I64 | DType::I32) || t.num_elements() > 4096 {
            return None;
        }
        t.to_f64().iter().map(|&v| (v >= 0.0 && v.fract() == 0.0).then_some(v as usize)).collect()
    }

    /// A recurrent op's weight input: an unclaimed initializer, or the one initializer a value
    /// is rearranged from (gates sliced and reordered, [`derived_weights`]).
    fn recurrent_weight(&self, name: Option<&String>) -> Option<(usize, &'s TensorInfo)> {
        if let Some(found) = self.init(name) {
            return Some(found);
        }
        match self.derived.get(name?.as_str())?.as_slice() {
            [source] => self.init(Some(source)),
            _ => None,
        }
    }

    /// A recurrent op's bias input: one initializer (ONNX `B`, `[dirs, 2 * rows]`) or two it is
    /// concatenated from (torch's `bias_ih`, `bias_hh`).
    fn recurrent_bias(&self, name: Option<&String>, rows: usize) -> Vec<(usize, &'s TensorInfo)> {
        let Some(name) = name.filter(|n| !n.is_empty()) else { return Vec::new() };
        let sources: Vec<&String> = match self.derived.get(name.as_str()) {
            Some(from) => from.iter().collect(),
            None => vec![name],
        };
        let found: Option<Vec<(usize, &TensorInfo)>> = sources.iter().map(|n| self.init(Some(n))).collect();
        match found {
            Some(f) if f.len() == 1 && f[0].1.num_elements() % (2 * rows) == 0 => f,
            Some(f) if f.len() == 2 && f.iter().all(|(_, t)| t.num_elements() == rows) => f,
            _ => Vec::new(),
        }
    }

    /// `LSTM`/`GRU`/`RNN` with `W [dirs, gates * H, in]`, `R [dirs, gates * H, H]` and an optional
    /// `B [dirs, 2 * gates * H]` (the gate order differs from torch's, which the graph does not
    /// see: gates are parallel edges). `W`/`R`/`B` may be rearranged from torch's `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh` ([`derived_weights`]). A bidirectional op
    /// (`direction = "bidirectional"`, two directions in each tensor) is two layers reading the
    /// same input; the op's outputs carry both directions' hidden nodes.
    fn recurrent(&mut self, op: &OpNode) -> bool {
        let gates = match op.op_type.as_str() {
            "LSTM" => super::Cell::Lstm,
            "GRU" => super::Cell::Gru,
            _ => super::Cell::Rnn,
        };
        let (Some((wi, w)), Some((ri, r))) =
            (self.recurrent_weight(op.inputs.get(1)), self.recurrent_weight(op.inputs.get(2)))
        else {
            return false;
        };
        let dirs = if op.str_attribute("direction") == Some("bidirectional") { 2 } else { 1 };
        // A torch weight rearranged into W has no direction axis: `[rows, in]`.
        let dims = |shape: &[usize]| -> Option<(usize, usize, usize)> {
            match *shape {
                [d, rows, cols] => Some((d, rows, cols)),
                [rows, cols] => Some((1, rows, cols)),
                _ => None,
            }
        };
        let (Some((wd, rows, input_size)), Some((rd, rrows, hidden))) = (dims(&w.shape), dims(&r.shape)) else {
            return false;
        };
        if wd != dirs || rd != dirs || rows != rrows || rows != gates.gates() * hidden {
            return false;
        }
        let biases = self.recurrent_bias(op.inputs.get(3), rows * dirs);
        let biases = match biases.as_slice() {
            [(_, b)] if b.num_elements() == 2 * rows * dirs => biases,
            [_, _] if dirs == 1 => biases,
            _ => Vec::new(),
        };
        let x = self.neurons_of(self.activation(op));
        let Some(input) = self.connect(&[Some((wi, w)), Some((ri, r))], x, input_size) else { return false };
        let (bias_ih, bias_hh) = match biases.as_slice() {
            [(_, b)] => (Some(b.name.clone()), Some(b.name.clone())),
            [(_, i), (_, h)] => (Some(i.name.clone()), Some(h.name.clone())),
            _ => (None, None),
        };
        if self.derived.contains_key(op.inputs.get(1).map_or("", String::as_str)) {
            self.note_once(format!(
                "{}: its weights are rearranged (gates sliced and reordered) from {} before the op; the graph \
                 encodes them in the file's layout",
                crate::text::shown(&op.name),
                crate::text::shown(&w.name)
            ));
        }
        let kind = |direction: usize| LayerKind::Recurrent {
            cell: gates,
            input_size,
            hidden,
            weight_ih: w.name.clone(),
            weight_hh: r.name.clone(),
            bias_ih: bias_ih.clone(),
            bias_hh: bias_hh.clone(),
            direction,
            directions: dirs,
        };
        let tensors: Vec<usize> = [wi, ri].into_iter().chain(biases.iter().map(|&(i, _)| i)).collect();
        self.push(op, kind(0), &tensors, input);
        if dirs == 2 {
            let forward = self.arch.layers.len() - 1;
            // The reverse direction reads what the forward one reads (a fresh input: the same group).
            let read = if input == Input::Fresh { Input::InputOf(forward) } else { input };
            let name = format!("{} (reverse)", self.arch.layers[forward].name);
            self.arch.layers.push(Layer { name, kind: kind(1), tensors: Vec::new(), input: read, parallel_to: None });
            let reverse = self.arch.layers.len() - 1;
            let name = format!("{} directions", self.arch.layers[forward].name);
            let joined = self.arch.join_directions(name, forward, Input::Layer(reverse));
            self.set_outputs(op, Input::Layer(joined));
        }
        true
    }

    /// `If`: both branches' nodes are already in the op list (inlined by the reader, each branch's
    /// values named with its path), so both are encoded; the op's outputs carry the neurons of
    /// the first branch that computes them (the reader appends `then_branch`'s outputs, then
    /// `else_branch`'s, to the op's inputs).
    fn branches(&mut self, op: &OpNode) -> bool {
        let n = op.outputs.len();
        let branch_outputs = op.inputs.get(1..).unwrap_or(&[]);
        if n == 0 || branch_outputs.len() < n {
            return false;
        }
        let mut any = false;
        for (k, out) in op.outputs.iter().enumerate() {
            let candidates = branch_outputs.iter().skip(k).step_by(n);
            if let Some(neurons) = candidates.filter_map(|c| self.neurons_of(Some(c))).next() {
                self.neurons.insert(out.clone(), neurons);
                any = true;
            }
        }
        any
    }

    /// `PRelu` with a per-channel slope initializer (`[C]` or `[C, 1, 1]`).
    fn prelu(&mut self, op: &OpNode) -> bool {
        let Some((w, t)) = self.init(op.inputs.get(1)) else { return false };
        let Some(x) = self.neurons_of(self.activation(op)) else { return false };
        let features = t.num_elements();
        if self.arch.width_of(x) != Some(features) || features < 2 {
            return false;
        }
        let kind = LayerKind::PerChannel { role: "prelu".into(), features, weight: t.name.clone() };
        self.push(op, kind, &[w], x);
        true
    }

    fn attach_bias(&mut self, op: &OpNode, x: Input, bias_name: &str) -> bool {
        let Input::Layer(j) = x else { return false };
        let Some(&bi) = self.index.get(bias_name) else { return false };
        let Some(t) = self.store.tensors().get(bi) else { return false };
        let claimed = self.claimed.get(bi).copied().unwrap_or(true);
        let Some(layer) = self.arch.layers.get_mut(j) else { return false };
        let LayerKind::Linear { out_features, bias, .. } = &mut layer.kind else { return false };
        if claimed || bias.is_some() || t.num_elements() != *out_features || !t.dtype.is_float() {
            return false;
        }
        *bias = Some(t.name.clone());
        layer.tensors.push(t.name.clone());
        if let Some(c) = self.claimed.get_mut(bi) {
            *c = true;
        }
        self.set_outputs(op, x);
        true
    }
}
