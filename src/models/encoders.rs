//! Node and edge feature encoders (papers.md §3): integer features -> `h`-dim vectors.
//!
//! Nodes: `sin(Linear(1, h)(layer_index)) + sin(Linear(1, h)(neuron_order)) + type_table[type]`.
//! `neuron_order` is the position of input and output neurons and -1 for every other node, so
//! each input and output neuron gets its own vector while the hidden neurons of a layer share one
//! (they are interchangeable, inputs and outputs are not).
//!
//! Edges: `Linear(lift(scale_c * weight + shift_c)) + sin(Linear(1, h)(layer_index)) + type_table[type] +
//! Linear(3, h)(kernel position)`, `lift` the identity or random Fourier features
//! ([`WeightLift`]). Only the weight term differs between the networks of a zoo, so the rest is
//! computed once per edge of the topology and broadcast over the batch.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use super::config::{NODE_TYPES, WeightLift};
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

/// `[R, B, 1]` standardised values -> `[R, B, width]` lifted ([`WeightLift::features`]);
/// `omega` are the angular frequencies (empty: the identity).
pub fn lift(omega: &[f32], values: Tensor<3>) -> Tensor<3> {
    if omega.is_empty() {
        return values;
    }
    let k = omega.len();
    let omega = Tensor::<1>::from_data(burn::tensor::TensorData::new(omega.to_vec(), [k]), &values.device());
    let angle = values * omega.reshape([1, 1, k]);
    Tensor::cat(vec![angle.clone().cos(), angle.sin()], 2)
}

/// `[R, B, w]` times `[w, h]` -> `[R, B, h]`; a broadcast product when `w = 1`.
fn project(lifted: Tensor<3>, matrix: Tensor<2>) -> Tensor<3> {
    let [r, b, w] = lifted.dims();
    let h = matrix.dims()[1];
    if w == 1 {
        return lifted * matrix.reshape([1, 1, h]);
    }
    lifted.reshape([r * b, w]).matmul(matrix).reshape([r, b, h])
}

/// Every neuron's own standardised bias, lifted and projected by a learned matrix
/// (`GmnConfig::bias_features`): `[E, B, 1]` raw weights -> `[N, B, h]` (zero for nodes without
/// a bias).
pub fn bias_features(topo: &BatchTopology, weights: Tensor<3>, matrix: &Param<Tensor<2>>, omega: &[f32]) -> Tensor<3> {
    let values = standardised(topo, weights).select(0, topo.bias_edge.clone());
    project(lift(omega, values), matrix.val()) * topo.has_bias.clone()
}

#[derive(Module, Debug)]
pub struct EdgeEncoder {
    weight: Dense,
    layer: Dense,
    types: Param<Tensor<2>>,
    position: Dense,
    /// The lift's angular frequencies (empty: linear); derived from the seed, not trained.
    #[module(skip)]
    omega: Vec<f32>,
}

impl EdgeEncoder {
    /// `type_rows`: rows of the edge type table (`GmnConfig::edge_type_rows`); `omega` the
    /// weight lift's angular frequencies ([`WeightLift::angular_frequencies`]).
    pub fn new(rng: &mut SplitMix64, hidden: usize, type_rows: usize, omega: Vec<f32>, device: &Device) -> Self {
        let width = if omega.is_empty() { WeightLift::Linear.width() } else { 2 * omega.len() };
        Self {
            omega,
            weight: Dense::new(rng, width, hidden, true, device),
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
        let lifted = lift(&self.omega, standardised(topo, weights));
        project(lifted, self.weight.weight.val()) + fixed.reshape([e, 1, h])
    }
}
