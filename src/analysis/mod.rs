//! Analyses of a graph metanetwork's outputs over a parameter graph, as plain numbers: what the
//! app's GMN overlay shows and what `gmnscope infer` prints. No burn, no egui: inputs and outputs
//! are slices and `Vec<f32>`, so everything here is tested without a device.
//!
//! Brief overview:
//! - [`node_colouring`]: one GMN layer's node features (`N x h`) -> one value per node (a
//!   channel, the L2 norm, or the first principal component) and the colour range they span.
//! - [`node_alignment`]: proof that GMN node `i` is node `i` of the drawn parameter graph.
//! - [`softmax`]: class probabilities from a classification head's logits.
//!
//! Must not import: `ui`, `models`, `train` (those call in, not the other way round).

pub mod node_alignment;
pub mod node_colouring;

/// Probabilities from logits (shifted by the maximum, so large logits do not overflow). Empty in,
/// empty out; non-finite logits give a uniform distribution rather than NaN.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if logits.is_empty() || !max.is_finite() || logits.iter().any(|v| !v.is_finite()) {
        return vec![1.0 / logits.len().max(1) as f32; logits.len()];
    }
    let exps: Vec<f64> = logits.iter().map(|&v| f64::from(v - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::softmax;

    #[test]
    fn softmax_matches_the_definition_and_survives_large_and_bad_logits() {
        // exp(1), exp(2), exp(3) normalised: 0.09003057, 0.24472847, 0.66524096.
        let p = softmax(&[1.0, 2.0, 3.0]);
        for (got, want) in p.iter().zip([0.090_030_57, 0.244_728_47, 0.665_240_96]) {
            assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        }
        // Shift invariance: huge logits do not overflow.
        let q = softmax(&[1001.0, 1002.0, 1003.0]);
        assert!(p.iter().zip(&q).all(|(a, b)| (a - b).abs() < 1e-6));
        assert!(softmax(&[]).is_empty());
        assert_eq!(softmax(&[f32::NAN, 1.0]), vec![0.5, 0.5]);
    }
}
