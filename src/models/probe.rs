//! Probe features: every neuron's activations when the input network runs on `K` fixed probe
//! inputs, given to the GMN as extra node features.
//!
//! Why: the graph encoders see each weight only as an edge feature, and mean aggregation of many
//! near-identically distributed weights leaves the graph embeddings of different networks almost
//! equal at initialisation (0.3% apart on real SIREN zoos; the GMN then trains at chance). The
//! activations of a neuron on probe inputs describe what it computes; they move with the neuron
//! when hidden neurons are permuted, so the GMN stays invariant (tests/gmn_symmetry.rs). For an
//! INR, the output neuron's probe features are the image at the probe points. (Kofinas et al.,
//! ICLR 2024, introduced probe features for neural graphs.)
//!
//! Computed on the device from the batch's weight tensor by propagating through the graph's
//! forward edges (`layer(dst) > layer(src)`, and bias -> neuron) `depth` times; in a layered DAG this is exact after
//! `depth` rounds. Supported: graphs of neurons and biases (SIRENs: `sin(omega_0 z)` in hidden
//! layers); anything else is refused when the topology is built (`Gmn::topology`).

use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::topology::Topology;
use crate::rng::SplitMix64;

/// Node type numbers of `graph::NodeType` that probe propagation understands.
pub(crate) const NEURON: i64 = 0;
pub(crate) const BIAS: i64 = 1;

/// The input network's hidden activation and output offset.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ProbeActivation {
    /// SIREN: `sin(omega_0 z)` in hidden layers; `z + output_offset` at the output.
    Sine { omega_0: f32, output_offset: f32 },
}

/// Probe settings saved with a GMN (`GmnConfig::probe`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Number of probe inputs `K`. With 2 inputs and a square `K`, a `sqrt(K) x sqrt(K)` grid
    /// over [-1, 1]^2 (the INR coordinate grid, `ij` order); otherwise fixed pseudo-random
    /// points in [-1, 1].
    pub points: usize,
    pub activation: ProbeActivation,
}

impl ProbeConfig {
    /// `[K][inputs]`: coordinate `j` of probe point `k`.
    pub fn points(&self, inputs: usize) -> Vec<Vec<f32>> {
        let k = self.points;
        let side = (k as f64).sqrt().round() as usize;
        if inputs == 2 && side * side == k && side > 0 {
            let lin = |i: usize| if side > 1 { -1.0 + 2.0 * i as f32 / (side - 1) as f32 } else { 0.0 };
            return (0..k).map(|p| vec![lin(p / side), lin(p % side)]).collect();
        }
        let mut rng = SplitMix64::new(0x7072_6f62_6573);
        (0..k).map(|_| (0..inputs).map(|_| rng.uniform(-1.0, 1.0)).collect()).collect()
    }
}

/// The probe-propagation structure of a batch topology (device tensors + host facts).
#[derive(Clone, Debug)]
pub struct ProbeGraph {
    /// Forward edges: index into the batch's edges.
    edges: Tensor<1, Int>,
    /// Per layer of target neurons (input to output): the forward edges into that layer
    /// (positions in `edges`), their sources, their targets as positions in the layer's node
    /// list, and that node list. Propagation visits each edge once: O(edges), not
    /// O(layers x edges).
    layers: Vec<LayerEdges>,
    /// `[N, 1, 1]` mask of the output neurons (the output readout).
    is_output: Tensor<3>,
    /// The host-side facts the tensors were built from.
    plan: ProbePlan,
    /// `[S, 1]`: 1 / number of output neurons per segment (0 when a segment has none).
    inv_segment_outputs: Tensor<2>,
}

/// The forward edges into one layer of neurons, on the device (see `ProbeGraph::layers`).
#[derive(Clone, Debug)]
struct LayerEdges {
    positions: Tensor<1, Int>,
    src: Tensor<1, Int>,
    local_dst: Tensor<1, Int>,
    nodes: Tensor<1, Int>,
    num_nodes: usize,
    /// `[n_l, 1, 1]`: which of the layer's nodes are hidden (sine) and which are outputs.
    is_hidden: Tensor<3>,
    is_output: Tensor<3>,
}

/// The host-side facts of probe propagation over a (union of) topologies: which edges carry
/// activations forward, which nodes are biases, hidden or output neurons, the input order of
/// every input neuron. [`ProbeGraph`] puts them on a device; the fused CPU trainer
/// (`train::fused`) uses them as they are.
#[derive(Clone, Debug)]
pub struct ProbePlan {
    /// Forward edges: index into the union's edges, and their endpoints.
    pub edges: Vec<u32>,
    pub src: Vec<u32>,
    pub dst: Vec<u32>,
    pub is_bias: Vec<bool>,
    pub is_hidden: Vec<bool>,
    pub is_output: Vec<bool>,
    /// Input order of every node (`None` for non-inputs).
    pub input_order: Vec<Option<usize>>,
    /// Output neurons per part.
    pub outputs: Vec<usize>,
    /// Rounds of propagation needed (the deepest layer index).
    pub depth: usize,
    /// Layer index of every node.
    pub node_layer: Vec<i64>,
    /// Why probe features cannot be computed for these topologies, if they cannot.
    pub unsupported: Option<String>,
}

impl ProbePlan {
    pub fn new(parts: &[&Topology]) -> Self {
        let mut plan = ProbePlan {
            edges: Vec::new(),
            src: Vec::new(),
            dst: Vec::new(),
            is_bias: Vec::new(),
            is_hidden: Vec::new(),
            is_output: Vec::new(),
            input_order: Vec::new(),
            outputs: Vec::with_capacity(parts.len()),
            depth: 0,
            node_layer: Vec::new(),
            unsupported: None,
        };
        let (mut node_base, mut edge_base) = (0usize, 0usize);
        for t in parts {
            let last = t.node_features.iter().filter(|f| f[2] == NEURON).map(|f| f[0]).max().unwrap_or(0);
            plan.depth = plan.depth.max(last.max(0) as usize);
            for f in &t.node_features {
                let (layer, order, kind) = (f[0], f[1], f[2]);
                if kind != NEURON && kind != BIAS && plan.unsupported.is_none() {
                    plan.unsupported = Some(format!(
                        "probe features need a graph of neurons and biases (an MLP or SIREN); this one has node type {kind}"
                    ));
                }
                let neuron = kind == NEURON;
                plan.is_bias.push(kind == BIAS);
                plan.is_hidden.push(neuron && layer > 0 && layer < last);
                plan.is_output.push(neuron && layer == last && last > 0);
                plan.input_order.push((neuron && layer == 0).then(|| order.max(0) as usize));
                plan.node_layer.push(layer);
            }
            for k in 0..t.src.len() {
                let (a, b) = (t.src[k] as usize, t.dst[k] as usize);
                let (from, to) = (&t.node_features[a], &t.node_features[b]);
                // A bias node carries the layer index of the neurons it feeds.
                if to[0] > from[0] || (from[2] == BIAS && to[0] == from[0]) {
                    plan.edges.push((edge_base + k) as u32);
                    plan.src.push((node_base + a) as u32);
                    plan.dst.push((node_base + b) as u32);
                }
            }
            plan.outputs.push(t.node_features.iter().filter(|f| f[2] == NEURON && f[0] == last && last > 0).count());
            node_base += t.node_features.len();
            edge_base += t.src.len();
        }
        plan
    }

    /// The forward edges grouped by their target's layer (input to output; bias edges go with the
    /// neurons they feed): per group, the edges' positions in `edges` (in order) and the
    /// distinct target nodes (in order of first appearance).
    pub fn layer_groups(&self) -> Vec<(Vec<u32>, Vec<u32>)> {
        let mut by_layer: std::collections::BTreeMap<i64, (Vec<u32>, Vec<u32>)> = Default::default();
        let mut seen = vec![false; self.is_bias.len()];
        for (p, &d) in self.dst.iter().enumerate() {
            let group = by_layer.entry(self.node_layer.get(d as usize).copied().unwrap_or(0)).or_default();
            group.0.push(p as u32);
            if let Some(s) = seen.get_mut(d as usize)
                && !*s
            {
                *s = true;
                group.1.push(d);
            }
        }
        by_layer.into_values().collect()
    }

    /// Number of input neurons (the probe points' dimension).
    pub fn inputs(&self) -> usize {
        self.input_order.iter().flatten().max().map_or(0, |m| m + 1)
    }

    /// `[N * K]`: what never changes during propagation: probe coordinates at the inputs, 1 at
    /// biases, 0 elsewhere.
    pub fn fixed(&self, config: &ProbeConfig) -> Vec<f32> {
        let k = config.points;
        let points = config.points(self.inputs());
        let mut fixed = vec![0f32; self.input_order.len() * k];
        for (v, order) in self.input_order.iter().enumerate() {
            if let Some(j) = order {
                for (p, point) in points.iter().enumerate() {
                    fixed[v * k + p] = point.get(*j).copied().unwrap_or(0.0);
                }
            }
            if self.is_bias[v] {
                fixed[v * k..(v + 1) * k].iter_mut().for_each(|x| *x += 1.0);
            }
        }
        fixed
    }
}

impl ProbeGraph {
    /// Built for every batch topology; `unsupported` is set when the graph is not an MLP graph.
    pub fn new(parts: &[&Topology], device: &Device) -> Self {
        let plan = ProbePlan::new(parts);
        let n = plan.input_order.len();
        let int1 = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            let len = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [len]), device)
        };
        let mask = |v: &[bool]| {
            let v: Vec<f32> = v.iter().map(|&b| f32::from(u8::from(b))).collect();
            Tensor::<3>::from_data(TensorData::new(v, [n, 1, 1]), device)
        };
        let inv_outputs: Vec<f32> = plan.outputs.iter().map(|&o| if o > 0 { 1.0 / o as f32 } else { 0.0 }).collect();
        let layers = plan
            .layer_groups()
            .into_iter()
            .map(|(positions, nodes)| {
                let local: std::collections::HashMap<u32, u32> =
                    nodes.iter().enumerate().map(|(i, &v)| (v, i as u32)).collect();
                let src: Vec<u32> = positions.iter().map(|&p| plan.src[p as usize]).collect();
                let local_dst: Vec<u32> = positions.iter().map(|&p| local[&plan.dst[p as usize]]).collect();
                let layer_mask = |of: &[bool]| {
                    let v: Vec<f32> = nodes.iter().map(|&v| f32::from(u8::from(of[v as usize]))).collect();
                    Tensor::<3>::from_data(TensorData::new(v, [nodes.len(), 1, 1]), device)
                };
                LayerEdges {
                    positions: int1(&positions),
                    src: int1(&src),
                    local_dst: int1(&local_dst),
                    nodes: int1(&nodes),
                    num_nodes: nodes.len(),
                    is_hidden: layer_mask(&plan.is_hidden),
                    is_output: layer_mask(&plan.is_output),
                }
            })
            .collect();
        Self {
            edges: int1(&plan.edges),
            layers,
            is_output: mask(&plan.is_output),
            inv_segment_outputs: Tensor::from_data(TensorData::new(inv_outputs, [parts.len(), 1]), device),
            plan,
        }
    }

    /// Mean of `rows: [N, B, h]` over each segment's output neurons: `[S * B, h]`. The output
    /// neurons are where a network's probe features say most about its function (for an INR:
    /// the image at the probe points), so the GMN reads them out next to the global means.
    pub fn output_mean(&self, rows: Tensor<3>, node_segment: Option<&Tensor<1, Int>>) -> Tensor<2> {
        let [n, b, h] = rows.dims();
        let masked = rows * self.is_output.clone();
        let s = self.inv_segment_outputs.dims()[0];
        let sums = match node_segment {
            None => masked.sum_dim(0).reshape([1, b * h]),
            Some(segment) => Tensor::<2>::zeros([s, b * h], &masked.device()).select_assign(
                0,
                segment.clone(),
                masked.reshape([n, b * h]),
                IndexingUpdateOp::Add,
            ),
        };
        (sums * self.inv_segment_outputs.clone()).reshape([s * b, h])
    }

    /// Why probe features are not available for this topology, if they are not.
    pub fn unsupported(&self) -> Option<&str> {
        self.plan.unsupported.as_deref()
    }

    /// `[N, B, K]`: every node's activation on the `K` probe inputs, for the `[E, B, 1]` raw
    /// weights of `B` networks. Inputs hold the probe coordinates, biases 1.
    pub fn activations(&self, config: &ProbeConfig, weights: Tensor<3>) -> Tensor<3> {
        let [_, b, _] = weights.dims();
        let k = config.points;
        let n = self.plan.input_order.len();
        let device = weights.device();
        // Inputs and biases never change; every other node is recomputed from them each round.
        let fixed = Tensor::<3>::from_data(TensorData::new(self.plan.fixed(config), [n, 1, k]), &device);
        let w = weights.select(0, self.edges.clone()); // [Ep, B, 1]
        let mut act = fixed.repeat_dim(1, b);
        // Layer by layer, input to output: a layer's sources are final when its turn comes, and
        // its neurons' rows are zero until then (only inputs and biases are fixed), so adding
        // the new activations sets them.
        for layer in &self.layers {
            let m = layer.src.dims()[0];
            let messages = act.clone().select(0, layer.src.clone()) * w.clone().select(0, layer.positions.clone());
            let z = Tensor::<2>::zeros([layer.num_nodes, b * k], &device)
                .select_assign(0, layer.local_dst.clone(), messages.reshape([m, b * k]), IndexingUpdateOp::Add)
                .reshape([layer.num_nodes, b, k]);
            let (hidden, output) = match config.activation {
                ProbeActivation::Sine { omega_0, output_offset } => {
                    (z.clone().mul_scalar(omega_0).sin(), z.add_scalar(output_offset))
                }
            };
            let new = hidden * layer.is_hidden.clone() + output * layer.is_output.clone();
            act = act.select_assign(0, layer.nodes.clone(), new, IndexingUpdateOp::Add);
        }
        act
    }
}
