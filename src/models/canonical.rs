//! Sign canonicalisation of hidden neurons, for networks whose activation is odd (SIREN's sine,
//! tanh): `act(-z) = -act(z)`, so negating a hidden neuron's incoming weights, its bias and its
//! outgoing weights leaves the network's function unchanged. Each such neuron has two equivalent
//! weight settings; a GMN that is only permutation-symmetric sees them as different networks.
//! Mapping every network to one representative first (as ScaleGMN discusses for SIRENs) makes the
//! GMN's input, and so its output, exactly invariant to these flips, without changing what a
//! network computes.
//!
//! The representative: every hidden neuron's bias is >= 0; a neuron whose bias is exactly 0 is
//! decided by the sum of its incoming weights. Layers are processed input to output, so a neuron's
//! incoming weights are read after the previous layer is already canonical, and the sum does not
//! depend on the order of that layer's neurons (the rule commutes with permutations).
//!
//! Applies to plain MLP-style graphs (neurons linked by `LinWeight` edges). It must not be used for
//! networks with non-odd activations (ReLU, GELU): there the flip changes the function.

use super::Topology;
use crate::graph::{EdgeType, NodeType};

/// Negates the weights of every hidden neuron whose bias is negative (see the module docs);
/// returns how many neurons were flipped. `weights` is the graph's weight column.
pub fn canonicalise_signs(topology: &Topology, weights: &mut [f32]) -> usize {
    SignPlan::new(topology).apply(weights)
}

/// The hidden neurons of one topology, input to output, with the weight-column positions of
/// their bias, incoming weights and every incident weight: built once per topology and applied
/// to every network of a zoo that shares it.
#[derive(Clone, Debug)]
pub struct SignPlan {
    neurons: Vec<HiddenNeuron>,
}

#[derive(Clone, Debug)]
struct HiddenNeuron {
    bias: Vec<usize>,
    weights_in: Vec<usize>,
    incident: Vec<usize>,
}

impl SignPlan {
    pub fn new(topology: &Topology) -> Self {
        let n = topology.num_nodes();
        let forward = |k: usize| (topology.edge_features[k][1] as i64) < super::config::REVERSED;
        let edge_type = |k: usize| topology.edge_features[k][1] as i64;
        // Incident forward edges of every node, split by direction.
        let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut outgoing: Vec<Vec<usize>> = vec![Vec::new(); n];
        for k in (0..topology.num_edges()).filter(|&k| forward(k)) {
            let (s, d) = (topology.src[k] as usize, topology.dst[k] as usize);
            if s < n && d < n {
                outgoing[s].push(k);
                incoming[d].push(k);
            }
        }
        let is_weight = |k: &usize| edge_type(*k) == EdgeType::LinWeight as i64;
        let mut hidden: Vec<usize> = (0..n)
            .filter(|&v| topology.node_features[v][2] == NodeType::Neuron as i64)
            .filter(|&v| incoming[v].iter().any(is_weight) && outgoing[v].iter().any(is_weight))
            .collect();
        // Input to output: a neuron's incoming weights are final once its layer's turn comes.
        hidden.sort_by_key(|&v| (topology.node_features[v][0], v));
        let column = |k: usize| topology.weight_index[k] as usize;
        let neurons = hidden
            .into_iter()
            .map(|v| HiddenNeuron {
                bias: incoming[v]
                    .iter()
                    .filter(|&&k| edge_type(k) == EdgeType::LinBias as i64)
                    .map(|&k| column(k))
                    .collect(),
                weights_in: incoming[v].iter().filter(|k| is_weight(k)).map(|&k| column(k)).collect(),
                incident: incoming[v].iter().chain(&outgoing[v]).map(|&k| column(k)).collect(),
            })
            .collect();
        Self { neurons }
    }

    /// Canonicalises one weight column of this plan's topology; returns how many neurons flipped.
    pub fn apply(&self, weights: &mut [f32]) -> usize {
        let sum =
            |weights: &[f32], at: &[usize]| -> f32 { at.iter().map(|&i| weights.get(i).copied().unwrap_or(0.0)).sum() };
        let mut flipped = 0;
        for neuron in &self.neurons {
            let bias = sum(weights, &neuron.bias);
            let key = if bias != 0.0 { bias } else { sum(weights, &neuron.weights_in) };
            if key < 0.0 {
                for &i in &neuron.incident {
                    if let Some(w) = weights.get_mut(i) {
                        *w = -*w;
                    }
                }
                flipped += 1;
            }
        }
        flipped
    }
}
