//! Weight-space augmentations of INR zoos during training (`train --augment on`), after
//! neural-graphs' INR recipe: each training step sees every network of its batch transformed.
//!
//! - **Rotation and translation of the input coordinates.** The INR `f` becomes
//!   `f'(x) = f(R x + t)`: the same image rotated and shifted. Only the first layer changes:
//!   `w' = R^T w` for every first-layer neuron's two input weights, `b' = b + w . t` (the SIREN's
//!   `omega_0` multiplies both, so the identity holds for any `omega_0`). The label stays.
//! - **Weight dropout**: every weight and bias is zeroed with a small probability and the others
//!   scaled by `1 / (1 - p)` (torch's `F.dropout` on each tensor, as neural-graphs does).
//!
//! neural-graphs also adds `noise_scale * std` to every weight of a layer: the same constant
//! for all of them, which shifts the function without a geometric meaning; it is left out.
//! Networks loaded sign-canonicalised are re-canonicalised after the transform (a translation
//! can change a bias's sign), so the GMN still sees one representative per sign-flip class.

use crate::graph::{EdgeType, NodeType};
use crate::models::Topology;
use crate::models::canonical::SignPlan;
use crate::rng::SplitMix64;

/// How strongly to augment; [`Augmentation::INR`] is neural-graphs' setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augmentation {
    /// Rotation angle drawn uniformly in `±rotation_degrees`.
    pub rotation_degrees: f32,
    /// Translation of each coordinate drawn uniformly in `±translation` (coordinates span
    /// `[-1, 1]`).
    pub translation: f32,
    /// Probability of zeroing a weight.
    pub weight_dropout: f32,
}

impl Augmentation {
    pub const INR: Augmentation = Augmentation { rotation_degrees: 45.0, translation: 0.25, weight_dropout: 0.01 };
}

/// Where the first layer of a 2-D-input network sits in its weight column: built once per
/// topology and applied to every network that shares it.
#[derive(Clone, Debug)]
pub struct AugmentPlan {
    /// Per first-layer neuron: the columns of its weights from input coordinates 0 and 1, and
    /// of its bias (if any).
    first_layer: Vec<([usize; 2], Option<usize>)>,
    num_weights: usize,
    signs: Option<SignPlan>,
}

impl AugmentPlan {
    /// The plan for networks of `topology` (two input neurons feeding dense neurons); `canonical`
    /// re-canonicalises signs after each transform. Refused for other inputs, with the reason.
    pub fn new(topology: &Topology, canonical: bool) -> Result<Self, String> {
        let n = topology.num_nodes();
        let is_input = |v: usize| {
            let f = topology.node_features[v];
            f[0] == 0 && f[2] == NodeType::Neuron as i64 && f[1] >= 0
        };
        let inputs: Vec<usize> = (0..n).filter(|&v| is_input(v)).collect();
        if inputs.len() != 2 {
            return Err(format!(
                "weight augmentation rotates and shifts 2-D input coordinates; these networks have {} inputs",
                inputs.len()
            ));
        }
        let forward = |k: usize| (topology.edge_features[k][1] as i64) < crate::models::config::REVERSED;
        let mut first: std::collections::BTreeMap<u32, ([Option<usize>; 2], Option<usize>)> = Default::default();
        for k in (0..topology.num_edges()).filter(|&k| forward(k)) {
            let (s, d) = (topology.src[k] as usize, topology.dst[k]);
            if topology.edge_features[k][1] as i64 == EdgeType::LinWeight as i64 && is_input(s) {
                let coordinate = topology.node_features[s][1] as usize;
                if coordinate < 2 {
                    first.entry(d).or_default().0[coordinate] = Some(topology.weight_index[k] as usize);
                }
            }
        }
        for k in (0..topology.num_edges()).filter(|&k| forward(k)) {
            if topology.edge_features[k][1] as i64 == EdgeType::LinBias as i64
                && let Some(entry) = first.get_mut(&topology.dst[k])
            {
                entry.1 = Some(topology.weight_index[k] as usize);
            }
        }
        let first_layer = first
            .into_values()
            .map(|(w, b)| match w {
                [Some(a), Some(c)] => Ok(([a, c], b)),
                _ => Err("a first-layer neuron does not read both input coordinates".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if first_layer.is_empty() {
            return Err("no dense first layer to augment".into());
        }
        Ok(Self { first_layer, num_weights: topology.num_weights, signs: canonical.then(|| SignPlan::new(topology)) })
    }

    /// Transforms one weight column in place with draws from `rng`.
    pub fn apply(&self, augmentation: &Augmentation, rng: &mut SplitMix64, weights: &mut [f32]) {
        if weights.len() != self.num_weights {
            return;
        }
        let angle = rng.uniform(-augmentation.rotation_degrees, augmentation.rotation_degrees).to_radians();
        let (sin, cos) = angle.sin_cos();
        let t = [
            rng.uniform(-augmentation.translation, augmentation.translation),
            rng.uniform(-augmentation.translation, augmentation.translation),
        ];
        for &([a, c], bias) in &self.first_layer {
            let (w0, w1) = (weights[a], weights[c]);
            // f(R x + t): w . (R x) = (R^T w) . x with R = [[cos, -sin], [sin, cos]].
            weights[a] = cos * w0 + sin * w1;
            weights[c] = -sin * w0 + cos * w1;
            if let Some(b) = bias {
                weights[b] += w0 * t[0] + w1 * t[1];
            }
        }
        let p = augmentation.weight_dropout;
        if p > 0.0 {
            let keep = 1.0 / (1.0 - p);
            for w in weights.iter_mut() {
                *w = if (rng.next_f64() as f32) < p { 0.0 } else { *w * keep };
            }
        }
        if let Some(signs) = &self.signs {
            signs.apply(weights);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_without_two_inputs_is_refused() {
        let topology = Topology {
            node_features: vec![[0, 0, 0], [1, -1, 0]],
            src: vec![0],
            dst: vec![1],
            edge_features: vec![[0.0, EdgeType::LinWeight as i64 as f32, -1.0, -1.0, -1.0]],
            weight_index: vec![0],
            num_weights: 1,
        };
        let err = AugmentPlan::new(&topology, false).unwrap_err();
        assert!(err.contains("1 inputs"), "{err}");
    }
}
