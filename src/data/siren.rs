//! SIREN INRs evaluated in plain Rust: the image an INR encodes, and its PSNR against a target.
//!
//! Convention (DWSNets, and our fitter): the pixel grid is `linspace(-1, 1, side)` in both axes,
//! flattened row-major with `indexing="ij"`, so pixel `(r, c)` has input `(x0, x1) = (lin[r],
//! lin[c])`; every layer but the last computes `sin(omega_0 * (W x + b))`, the last is linear, and
//! the image is the output plus `output_offset` (0.5 for DWSNets and our zoos, 0 for NFN). Pixel
//! targets are intensities in [0, 1] (u8 / 255), so PSNR uses a data range of 1.

use crate::checkpoint::TensorStore;

/// How to evaluate an INR of a zoo.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InrSpec {
    pub omega_0: f32,
    pub output_offset: f32,
    /// Side of the square pixel grid the INR was fitted on.
    pub side: usize,
}

impl InrSpec {
    /// DWSNets MNIST/FMNIST INRs and our zoos.
    pub const DWSNETS: InrSpec = InrSpec { omega_0: 30.0, output_offset: 0.5, side: 28 };
    /// NFN SIREN sets (no output offset).
    pub const NFN: InrSpec = InrSpec { omega_0: 30.0, output_offset: 0.0, side: 28 };
}

/// One dense layer: `weight` is `[out, in]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
}

/// A SIREN as a chain of dense layers read from a state dict.
#[derive(Clone, Debug, PartialEq)]
pub struct Siren {
    pub layers: Vec<Dense>,
}

impl Siren {
    /// Reads the layers in file order: each 2-D float tensor `[out, in]` followed by its 1-D bias
    /// `[out]`; consecutive layers must chain (`in` of one = `out` of the previous). Other tensors
    /// are an error, so a non-SIREN file is not silently misread.
    pub fn from_store(store: &TensorStore) -> Result<Siren, String> {
        let tensors = store.tensors();
        let mut layers = Vec::new();
        let mut i = 0;
        while i < tensors.len() {
            let w = &tensors[i];
            let [outputs, inputs] = w.shape[..] else {
                return Err(format!("tensor '{}' has shape {:?}; a SIREN layer weight is 2-D", w.name, w.shape));
            };
            let Some(b) = tensors.get(i + 1).filter(|b| b.shape == [outputs]) else {
                return Err(format!(
                    "weight '{}' [{outputs}, {inputs}] is not followed by a bias of {outputs}",
                    w.name
                ));
            };
            if !w.dtype.is_float() || !b.dtype.is_float() {
                return Err(format!("'{}' / '{}' are not floating point", w.name, b.name));
            }
            if let Some(prev) = layers.last().map(|l: &Dense| l.outputs)
                && prev != inputs
            {
                return Err(format!("'{}' reads {inputs} inputs but the previous layer has {prev} outputs", w.name));
            }
            layers.push(Dense { weight: w.to_f32(), bias: b.to_f32(), inputs, outputs });
            i += 2;
        }
        if layers.len() < 2 {
            return Err(format!("{} dense layers; a SIREN has at least 2", layers.len()));
        }
        Ok(Siren { layers })
    }

    pub fn in_features(&self) -> usize {
        self.layers.first().map_or(0, |l| l.inputs)
    }

    pub fn out_features(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Output at one input point (before the output offset).
    pub fn eval(&self, x: &[f32], omega_0: f32) -> Vec<f32> {
        let mut h = x.to_vec();
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter().enumerate() {
            let mut next = layer.bias.clone();
            for (o, acc) in next.iter_mut().enumerate() {
                let row = &layer.weight[o * layer.inputs..(o + 1) * layer.inputs];
                *acc += row.iter().zip(&h).map(|(w, v)| w * v).sum::<f32>();
            }
            if k < last {
                next.iter_mut().for_each(|v| *v = (omega_0 * *v).sin());
            }
            h = next;
        }
        h
    }

    /// The image: `side * side * out_features` values, pixel-major, offset added.
    pub fn render(&self, spec: &InrSpec) -> Vec<f32> {
        grid(spec.side)
            .iter()
            .flat_map(|p| self.eval(p, spec.omega_0).into_iter().map(|v| v + spec.output_offset))
            .collect()
    }
}

/// The `side * side` input coordinates, row-major, `indexing="ij"` (see the module doc).
pub fn grid(side: usize) -> Vec<[f32; 2]> {
    let lin = |i: usize| if side > 1 { -1.0 + 2.0 * i as f32 / (side - 1) as f32 } else { 0.0 };
    (0..side * side).map(|k| [lin(k / side), lin(k % side)]).collect()
}

/// Peak signal-to-noise ratio in dB for intensities in [0, 1]: `10 log10(1 / MSE)`.
pub fn psnr(prediction: &[f32], target: &[f32]) -> f64 {
    let n = prediction.len().min(target.len()).max(1);
    let mse = prediction.iter().zip(target).map(|(p, t)| (*p as f64 - *t as f64).powi(2)).sum::<f64>() / n as f64;
    10.0 * (1.0 / mse.max(1e-12)).log10()
}

/// Pixel intensities of a u8 image in [0, 1].
pub fn intensities(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| p as f32 / 255.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_ij_ordered_linspace() {
        let g = grid(3);
        assert_eq!(g[0], [-1.0, -1.0]);
        assert_eq!(g[1], [-1.0, 0.0]);
        assert_eq!(g[3], [0.0, -1.0]);
        assert_eq!(g[8], [1.0, 1.0]);
    }

    #[test]
    fn eval_matches_a_hand_computed_siren() {
        let siren = Siren {
            layers: vec![
                Dense { weight: vec![0.01, 0.02], bias: vec![0.03], inputs: 2, outputs: 1 },
                Dense { weight: vec![2.0], bias: vec![-0.5], inputs: 1, outputs: 1 },
            ],
        };
        let x = [0.5, -1.0];
        let h = (30.0f32 * (0.01 * 0.5 + -0.02 + 0.03)).sin();
        assert!((siren.eval(&x, 30.0)[0] - (2.0 * h - 0.5)).abs() < 1e-6);
        assert!((psnr(&[0.5, 0.5], &[0.6, 0.4]) - 20.0).abs() < 1e-5);
    }
}
