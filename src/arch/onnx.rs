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
//! **Gemm orientation heuristic.** The reader does not decode `transB`, so a Gemm weight `[a, b]`
//! may be `[out, in]` (`transB=1`, what `torch.onnx.export` writes) or `[in, out]` (`transB=0`).
//! Evidence, strongest first: the bias length (it equals `out`); the width of the neurons feeding
//! the op (it equals `in`); otherwise (square, or first layer with no bias) `[out, in]`, the
//! PyTorch exporter's convention. `MatMul` weights are always `[in, out]` by the ONNX spec.

use std::collections::HashMap;

use super::{Architecture, Input, KernelLayout, Layer, LayerKind, MatrixLayout, NormKind};
use crate::checkpoint::{OpNode, TensorInfo, TensorStore};

pub(super) fn recover(store: &TensorStore) -> Architecture {
    let mut r = Recovery {
        store,
        arch: Architecture::default(),
        index: store.tensors().iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect(),
        claimed: vec![false; store.len()],
        neurons: HashMap::new(),
        graph_inputs: HashMap::new(),
    };
    for op in &store.ops {
        r.op(op);
    }
    let Recovery { mut arch, claimed, .. } = r;
    arch.unrecognized =
        store.tensors().iter().zip(&claimed).filter(|(_, c)| !**c).map(|(t, _)| t.name.clone()).collect();
    arch
}

struct Recovery<'s> {
    store: &'s TensorStore,
    arch: Architecture,
    index: HashMap<&'s str, usize>,
    claimed: Vec<bool>,
    /// Activation name -> the neurons that carry it.
    neurons: HashMap<String, Input>,
    /// Graph inputs -> the first layer that read them (later readers share its input neurons).
    graph_inputs: HashMap<String, usize>,
}

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

    /// The first input that is an activation, not an initializer.
    fn activation<'o>(&self, op: &'o OpNode) -> Option<&'o String> {
        op.inputs.iter().find(|n| !n.is_empty() && !self.is_initializer(n))
    }

    /// The neurons behind activation `name` (graph inputs: the first reader's input group).
    fn neurons_of(&self, name: Option<&String>) -> Option<Input> {
        let name = name?;
        self.neurons.get(name).copied().or_else(|| self.graph_inputs.get(name).map(|&l| Input::InputOf(l)))
    }

    /// `wanted` when it has `width` neurons, else a fresh group (noted when it is a mismatch).
    fn connect(&mut self, layer_name: &str, wanted: Option<Input>, width: usize) -> Input {
        let Some(wanted) = wanted else { return Input::Fresh };
        match self.arch.width_of(wanted) {
            Some(have) if have == width => wanted,
            Some(have) => {
                self.arch.notes.push(format!(
                    "{}: expects {width} inputs but its input carries {have} (e.g. a flattened conv map); it \
                     starts a new input group",
                    crate::text::shown(layer_name)
                ));
                Input::Fresh
            }
            None => Input::Fresh,
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
            self.graph_inputs.entry(x.clone()).or_insert(index);
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
        let handled = match op.op_type.as_str() {
            "Gemm" | "MatMul" => self.linear(op),
            "Conv" => self.conv(op),
            "BatchNormalization" | "LayerNormalization" | "InstanceNormalization" | "GroupNormalization" => {
                self.norm(op)
            }
            "Add" => self.add(op),
            _ => false,
        };
        if !handled {
            // Parameter-free (or unsupported) op: its outputs carry its first activation's neurons.
            if let Some(n) = self.neurons_of(self.activation(op)) {
                self.set_outputs(op, n);
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
        let bias_len = bias.map(|(_, t)| t.num_elements());
        // Which dimension is `out`: the bias length decides, else the input width (see module docs).
        let by_bias = bias_len
            .filter(|&n| a != b && (n == a || n == b))
            .map(|n| if n == a { MatrixLayout::OutIn } else { MatrixLayout::InOut });
        let by_width = width
            .filter(|&w| a != b && (w == a || w == b))
            .map(|w| if w == b { MatrixLayout::OutIn } else { MatrixLayout::InOut });
        let layout = if op.op_type == "MatMul" {
            MatrixLayout::InOut
        } else {
            by_bias.or(by_width).unwrap_or(MatrixLayout::OutIn)
        };
        let (in_features, out_features) = match layout {
            MatrixLayout::OutIn => (b, a),
            MatrixLayout::InOut => (a, b),
        };
        let bias = bias.filter(|(_, t)| t.num_elements() == out_features);
        let name = t.name.clone();
        let input = self.connect(&name, x, in_features);
        let kind = LayerKind::Linear {
            in_features,
            out_features,
            weight: name,
            bias: bias.map(|(_, t)| t.name.clone()),
            layout,
        };
        let tensors: Vec<usize> = std::iter::once(w).chain(bias.map(|(i, _)| i)).collect();
        self.push(op, kind, &tensors, input);
        true
    }

    fn conv(&mut self, op: &OpNode) -> bool {
        let Some((w, t)) = self.init(op.inputs.get(1)) else { return false };
        if !(3..=5).contains(&t.shape.len()) {
            return false;
        }
        let (out_channels, in_channels) = (t.shape[0], t.shape[1]);
        let bias = self.init(op.inputs.get(2)).filter(|(_, b)| b.shape == [out_channels]);
        let x = self.neurons_of(self.activation(op));
        let input = self.connect(&t.name, x, in_channels);
        let kind = LayerKind::Conv {
            dims: t.shape.len() - 2,
            in_channels,
            out_channels,
            kernel: t.shape[2..].to_vec(),
            weight: t.name.clone(),
            bias: bias.map(|(_, b)| b.name.clone()),
            layout: KernelLayout::OutInKernel,
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
        let input = self.connect(&gamma.name, x, features);
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
            return self.attach_bias(op, x, other);
        }
        let Some(y) = self.neurons_of(Some(other)) else { return false };
        // Two views of the same neurons (`x*x + y*y` after a `Slice`, as STFT front ends write
        // it) are an element-wise op, not a skip connection: a residual into itself is a cycle.
        if x == y {
            return false;
        }
        let (wx, wy) = (self.arch.width_of(x), self.arch.width_of(y));
        if wx.is_none() || wx != wy {
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
        let name = if op.name.is_empty() { format!("Add_{}", self.arch.layers.len()) } else { op.name.clone() };
        let kind = LayerKind::Residual { from, block_input: from, features };
        self.arch.layers.push(Layer { name, kind, tensors: Vec::new(), input: target, parallel_to: None });
        let index = self.arch.layers.len() - 1;
        self.set_outputs(op, Input::Layer(index));
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
