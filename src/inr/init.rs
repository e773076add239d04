//! SIREN initialisation (Sitzmann et al. 2020, as in DWSNets' fitting code): first layer
//! `W ~ U(-1/in, 1/in)`, later layers `W ~ U(-sqrt(6/in)/omega_0, +sqrt(6/in)/omega_0)`, biases
//! PyTorch's `nn.Linear` default `U(-1/sqrt(in), 1/sqrt(in))`. Drawn with SplitMix64 from
//! `(seed, image index)`.

use crate::data::siren::Dense;
use crate::rng::SplitMix64;

/// Initial layers of a SIREN `widths[0] -> widths[1] -> ... -> widths[last]`.
pub fn siren(widths: &[usize], omega_0: f32, seed: u64, image_index: usize) -> Vec<Dense> {
    let mut rng = SplitMix64::new(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (image_index as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93),
    );
    widths
        .windows(2)
        .enumerate()
        .map(|(k, w)| {
            let (inputs, outputs) = (w[0], w[1]);
            let bound = if k == 0 { 1.0 / inputs as f32 } else { (6.0 / inputs as f32).sqrt() / omega_0 };
            let bias_bound = 1.0 / (inputs as f32).sqrt();
            Dense {
                weight: (0..outputs * inputs).map(|_| rng.uniform(-bound, bound)).collect(),
                bias: (0..outputs).map(|_| rng.uniform(-bias_bound, bias_bound)).collect(),
                inputs,
                outputs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_determinism() {
        let a = siren(&[2, 32, 32, 1], 30.0, 1, 5);
        assert_eq!(a, siren(&[2, 32, 32, 1], 30.0, 1, 5));
        assert_ne!(a, siren(&[2, 32, 32, 1], 30.0, 1, 6));
        assert!(a[0].weight.iter().all(|w| w.abs() <= 0.5));
        let b = (6.0f32 / 32.0).sqrt() / 30.0;
        assert!(a[1].weight.iter().all(|w| w.abs() <= b) && a[2].weight.iter().all(|w| w.abs() <= b));
        assert_eq!((a[1].weight.len(), a[2].bias.len()), (1024, 1));
    }
}
