//! SIREN initial weights, drawn with SplitMix64 from `(seed, image index)`, in one of the two
//! recipes the weight-space literature used for its INR zoos ([`Recipe`]).

use serde::{Deserialize, Serialize};

use crate::data::siren::Dense;
use crate::rng::SplitMix64;

/// How a zoo's INRs start (and, through [`Recipe::lr`] / [`Recipe::steps`], how long they train
/// by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// DWSNets' fitting code (`nn/inr.py`, as its maintainers state in DWSNets issues #6/#7; the
    /// MNIST/Fashion-MNIST INR sets of DWSNets, NFN, NG-GNN and ScaleGMN): every sine layer,
    /// the first included, `W ~ U(+-sqrt(6/in)/omega_0)` with zero biases; the last layer a
    /// default `nn.Linear` (`W, b ~ U(+-1/sqrt(in))`). Adam lr 5e-4, at most 1,000 steps, early
    /// stop at 40 dB.
    #[default]
    Dwsnets,
    /// Sitzmann et al. 2020 (SIREN): first layer `W ~ U(+-1/in)`, later layers (the last
    /// included) `W ~ U(+-sqrt(6/in)/omega_0)`; biases `nn.Linear`'s default
    /// `U(+-1/sqrt(in))`. Their image-fitting schedule: Adam lr 1e-4, 500 steps.
    Siren,
}

impl Recipe {
    /// The recipe's learning rate.
    pub fn lr(self) -> f64 {
        match self {
            Recipe::Dwsnets => 5e-4,
            Recipe::Siren => 1e-4,
        }
    }

    /// The recipe's number of optimisation steps.
    pub fn steps(self) -> usize {
        match self {
            Recipe::Dwsnets => 1000,
            Recipe::Siren => 500,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Recipe::Dwsnets => "dwsnets",
            Recipe::Siren => "siren",
        }
    }
}

impl std::str::FromStr for Recipe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dwsnets" => Ok(Recipe::Dwsnets),
            "siren" => Ok(Recipe::Siren),
            other => Err(format!("unknown INR recipe '{other}' (dwsnets or siren)")),
        }
    }
}

/// Initial layers of a SIREN `widths[0] -> widths[1] -> ... -> widths[last]`.
pub fn siren(widths: &[usize], omega_0: f32, recipe: Recipe, seed: u64, image_index: usize) -> Vec<Dense> {
    let mut rng = SplitMix64::new(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (image_index as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93),
    );
    let last = widths.len().saturating_sub(2);
    widths
        .windows(2)
        .enumerate()
        .map(|(k, w)| {
            let (inputs, outputs) = (w[0], w[1]);
            let sine_bound = (6.0 / inputs as f32).sqrt() / omega_0;
            let linear_bound = 1.0 / (inputs as f32).sqrt();
            let (bound, bias_bound) = match recipe {
                Recipe::Dwsnets if k == last => (linear_bound, linear_bound),
                Recipe::Dwsnets => (sine_bound, 0.0),
                Recipe::Siren if k == 0 => (1.0 / inputs as f32, linear_bound),
                Recipe::Siren => (sine_bound, linear_bound),
            };
            Dense {
                weight: (0..outputs * inputs).map(|_| rng.uniform(-bound, bound)).collect(),
                bias: (0..outputs)
                    .map(|_| if bias_bound > 0.0 { rng.uniform(-bias_bound, bias_bound) } else { 0.0 })
                    .collect(),
                inputs,
                outputs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_abs(v: &[f32]) -> f32 {
        v.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    #[test]
    fn siren_recipe_bounds_and_determinism() {
        let a = siren(&[2, 32, 32, 1], 30.0, Recipe::Siren, 1, 5);
        assert_eq!(a, siren(&[2, 32, 32, 1], 30.0, Recipe::Siren, 1, 5));
        assert_ne!(a, siren(&[2, 32, 32, 1], 30.0, Recipe::Siren, 1, 6));
        assert!(max_abs(&a[0].weight) <= 0.5 && max_abs(&a[0].weight) > 0.4);
        let b = (6.0f32 / 32.0).sqrt() / 30.0;
        assert!(max_abs(&a[1].weight) <= b && max_abs(&a[2].weight) <= b);
        assert!(max_abs(&a[1].bias) > 0.1, "nn.Linear default biases");
        assert_eq!((a[1].weight.len(), a[2].bias.len()), (1024, 1));
    }

    #[test]
    fn dwsnets_recipe_has_zero_sine_biases_and_a_default_linear_last_layer() {
        let a = siren(&[2, 32, 32, 1], 30.0, Recipe::Dwsnets, 1, 5);
        let first = 3f32.sqrt() / 30.0;
        assert!(max_abs(&a[0].weight) <= first && max_abs(&a[0].weight) > 0.8 * first);
        assert!(a[0].bias.iter().chain(&a[1].bias).all(|&b| b == 0.0));
        let hidden = (6.0f32 / 32.0).sqrt() / 30.0;
        assert!(max_abs(&a[1].weight) <= hidden);
        let linear = 1.0 / 32f32.sqrt();
        assert!(max_abs(&a[2].weight) <= linear && max_abs(&a[2].weight) > 0.5 * linear);
        assert!(a[2].bias[0].abs() <= linear && a[2].bias[0] != 0.0);
        assert_ne!(a, siren(&[2, 32, 32, 1], 30.0, Recipe::Siren, 1, 5));
    }
}
