//! The flattened-weights baseline: an MLP on a network's weights concatenated into one vector
//! (in parameter-graph edge order). It sees a permuted network as a different input, so it is
//! NOT invariant to hidden-neuron permutations: the contrast `tests/gmn_symmetry.rs` shows.

use burn::module::Module;
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor, TensorData};

use super::init::Dense;
use crate::rng::SplitMix64;

#[derive(Module, Debug)]
pub struct FlatMlp {
    layers: Vec<Dense>,
}

impl FlatMlp {
    /// `inputs -> hidden (x depth) -> outputs`, SiLU between layers.
    pub fn new(seed: u64, inputs: usize, hidden: usize, depth: usize, outputs: usize, device: &Device) -> Self {
        let mut rng = SplitMix64::new(seed ^ 0x666c_6174);
        let mut widths = vec![inputs];
        widths.extend(std::iter::repeat_n(hidden, depth));
        widths.push(outputs);
        let layers = widths.windows(2).map(|w| Dense::new(&mut rng, w[0], w[1], true, device)).collect();
        Self { layers }
    }

    /// `x: [G, inputs] -> [G, outputs]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward2(x);
            if i < last {
                x = silu(x);
            }
        }
        x
    }

    /// Runs on weight columns (one row per network; all must have the same length).
    pub fn forward_columns(&self, columns: &[&[f32]], device: &Device) -> Tensor<2> {
        let width = columns.first().map_or(0, |c| c.len());
        let values: Vec<f32> = columns.iter().flat_map(|c| c.iter().copied()).collect();
        self.forward(Tensor::from_data(TensorData::new(values, [columns.len(), width]), device))
    }
}
