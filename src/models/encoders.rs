//! Node and edge feature encoders (papers.md §3): integer features -> `h`-dim vectors.
//!
//! Nodes: `sin(Linear(1, h)(layer_index)) + sin(Linear(1, h)(neuron_order)) + type_table[type]`.
//! `neuron_order` is the position of input and output neurons and -1 for every other node, so
//! each input and output neuron gets its own vector while the hidden neurons of a layer share one
//! (they are interchangeable, inputs and outputs are not).
//!
//! Edges: `Linear(1, h)(scale_c * weight + shift_c) + sin(Linear(1, h)(layer_index)) + type_table[type] +
//! Linear(3, h)(kernel position)`. Only the weight term differs between the networks of a zoo,
//! so the rest is computed once per edge of the topology and broadcast over the batch.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use super::config::NODE_TYPES;
use super::init::{Dense, table};
use super::topology::BatchTopology;
use crate::rng::SplitMix64;

#[derive(Module, Debug)]
pub struct NodeEncoder {
    layer: Dense,
    order: Dense,
    types: Param<Tensor<2>>,
}

impl NodeEncoder {
    pub fn new(rng: &mut SplitMix64, hidden: usize, device: &Device) -> Self {
        Self {
            layer: Dense::new(rng, 1, hidden, true, device),
            order: Dense::new(rng, 1, hidden, true, device),
            types: table(rng, NODE_TYPES, hidden, device),
        }
    }

    /// `[N, h]`: one vector per node of the topology (the same for every copy in the batch).
    pub fn forward(&self, topo: &BatchTopology) -> Tensor<2> {
        self.layer.forward2(topo.node_layer.clone()).sin()
            + self.order.forward2(topo.node_order.clone()).sin()
            + self.types.val().select(0, topo.node_type.clone())
    }
}

/// `[E, B, 1]` raw weights -> the encoders' input `edge_scale * w + edge_shift`.
pub fn standardised(topo: &BatchTopology, weights: Tensor<3>) -> Tensor<3> {
    let [e, _, _] = weights.dims();
    weights * topo.edge_scale.clone().reshape([e, 1, 1]) + topo.edge_shift.clone().reshape([e, 1, 1])
}

/// Every neuron's own standardised bias times a learned row (`GmnConfig::bias_features`):
/// `[E, B, 1]` raw weights -> `[N, B, h]` (zero for nodes without a bias).
pub fn bias_features(topo: &BatchTopology, weights: Tensor<3>, row: &Param<Tensor<2>>) -> Tensor<3> {
    let h = row.dims()[1];
    let values = standardised(topo, weights).select(0, topo.bias_edge.clone()) * topo.has_bias.clone();
    values * row.val().reshape([1, 1, h])
}

#[derive(Module, Debug)]
pub struct EdgeEncoder {
    weight: Dense,
    layer: Dense,
    types: Param<Tensor<2>>,
    position: Dense,
}

impl EdgeEncoder {
    /// `type_rows`: rows of the edge type table (`GmnConfig::edge_type_rows`).
    pub fn new(rng: &mut SplitMix64, hidden: usize, type_rows: usize, device: &Device) -> Self {
        Self {
            weight: Dense::new(rng, 1, hidden, true, device),
            layer: Dense::new(rng, 1, hidden, false, device),
            types: table(rng, type_rows, hidden, device),
            position: Dense::new(rng, 3, hidden, false, device),
        }
    }

    /// `weights: [E, B, 1] -> [E, B, h]`.
    pub fn forward(&self, topo: &BatchTopology, weights: Tensor<3>) -> Tensor<3> {
        let [e, _, _] = weights.dims();
        let h = self.weight.d_out();
        let mut fixed = self.layer.forward2(topo.edge_layer.clone()).sin()
            + self.types.val().select(0, topo.edge_type.clone())
            + self.position.forward2(topo.edge_position.clone());
        if let Some(bias) = &self.weight.bias {
            fixed = fixed + bias.val().unsqueeze::<2>();
        }
        let scaled = standardised(topo, weights);
        scaled * self.weight.weight.val().reshape([1, 1, h]) + fixed.reshape([e, 1, h])
    }
}
