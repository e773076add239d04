//! Sign canonicalisation (`models::canonical`) as a property over random SIRENs: the graph-level
//! operation equals negating a hidden neuron's row, bias and outgoing column (which leaves the
//! SIREN's function unchanged), maps every sign-flipped and permuted copy of a network to the
//! same representative, and makes a GMN that takes canonical inputs exactly invariant to sign
//! flips (a GMN that does not is not).

use burn::tensor::Device;
use gmnscope::models::canonical::canonicalise_signs;
use gmnscope::models::{Gmn, GmnConfig, GraphInput, Readout};
use gmnscope::rng::SplitMix64;

use crate::gmn_symmetry::{input, max_diff, permute, run, shuffled, siren_eval, siren_store};

const WIDTHS: [usize; 4] = [2, 16, 16, 1];

type Layers = Vec<(Vec<f32>, Vec<f32>)>;

fn random_siren(rng: &mut SplitMix64, scale: f32) -> Layers {
    WIDTHS
        .windows(2)
        .map(|w| {
            let weight = (0..w[0] * w[1]).map(|_| scale * rng.uniform(-1.0, 1.0)).collect();
            let bias = (0..w[1]).map(|_| scale * rng.uniform(-1.0, 1.0)).collect();
            (weight, bias)
        })
        .collect()
}

/// Negates hidden neuron `j` of layer `l` (its row and bias in layer `l`, its column in `l + 1`).
fn flip(layers: &mut Layers, l: usize, j: usize) {
    let (fan_in, next_in) = (WIDTHS[l], WIDTHS[l + 1]);
    for i in 0..fan_in {
        layers[l].0[j * fan_in + i] *= -1.0;
    }
    layers[l].1[j] *= -1.0;
    for o in 0..WIDTHS[l + 2] {
        layers[l + 1].0[o * next_in + j] *= -1.0;
    }
}

/// The representative by hand: every hidden bias made non-negative.
fn canonical_by_hand(layers: &Layers) -> Layers {
    let mut out = layers.clone();
    for l in 0..WIDTHS.len() - 2 {
        for j in 0..WIDTHS[l + 1] {
            if out[l].1[j] < 0.0 {
                flip(&mut out, l, j);
            }
        }
    }
    out
}

fn column(layers: &Layers) -> GraphInput {
    input(&siren_store(&WIDTHS, layers), false)
}

fn canonical_column(layers: &Layers) -> Vec<f32> {
    let g = column(layers);
    let mut w = g.weights.clone();
    canonicalise_signs(&g.topology, &mut w);
    w
}

#[test]
fn canonicalisation_is_the_function_preserving_flip_and_ignores_flips_and_permutations() {
    let mut rng = SplitMix64::new(41);
    let grid: Vec<[f32; 2]> = (0..25).map(|k| [(k % 5) as f32 / 2.0 - 1.0, (k / 5) as f32 / 2.0 - 1.0]).collect();
    for case in 0..40 {
        let scale = [0.05, 0.5, 10.0][case % 3];
        let net = random_siren(&mut rng, scale);
        let by_hand = canonical_by_hand(&net);
        // The flip leaves the function unchanged (the premise)...
        for x in &grid {
            let (a, b) = (siren_eval(&WIDTHS, &net, x), siren_eval(&WIDTHS, &by_hand, x));
            assert!(max_diff(&a, &b) <= 1e-5 * (1.0 + a[0].abs()), "case {case}: the flip changed the function");
        }
        // ...and the graph operation is exactly that flip.
        let canonical = canonical_column(&net);
        assert_eq!(canonical, column(&by_hand).weights, "case {case}: graph canonicalisation != the flip by hand");

        // Random flips, then a random permutation of the hidden neurons: same representative,
        // permuted.
        let mut flipped = net.clone();
        for l in 0..WIDTHS.len() - 2 {
            for j in 0..WIDTHS[l + 1] {
                if rng.below(2) == 1 {
                    flip(&mut flipped, l, j);
                }
            }
        }
        assert_eq!(canonical_column(&flipped), canonical, "case {case}: flips changed the representative");
        let perms: Vec<Vec<usize>> = (1..WIDTHS.len() - 1).map(|l| shuffled(WIDTHS[l], &mut rng)).collect();
        let permuted_then = canonical_column(&permute(&WIDTHS, &flipped, &perms));
        let then_permuted = column(&permute(&WIDTHS, &by_hand, &perms)).weights;
        assert_eq!(permuted_then, then_permuted, "case {case}: canonicalisation does not commute with permutations");
    }
}

#[test]
fn a_zero_bias_is_decided_by_the_incoming_weights() {
    let mut rng = SplitMix64::new(5);
    let mut net = random_siren(&mut rng, 0.5);
    net[0].1[3] = 0.0;
    let mut flipped = net.clone();
    flip(&mut flipped, 0, 3);
    assert_eq!(canonical_column(&net), canonical_column(&flipped));
}

#[test]
fn a_gmn_on_canonical_inputs_is_invariant_to_sign_flips() {
    let device = Device::flex();
    let mut rng = SplitMix64::new(9);
    let net = random_siren(&mut rng, 0.5);
    let mut flipped = net.clone();
    for j in (0..WIDTHS[1]).step_by(3) {
        flip(&mut flipped, 0, j);
    }
    for j in (1..WIDTHS[2]).step_by(2) {
        flip(&mut flipped, 1, j);
    }
    let (a, b) = (column(&net), column(&flipped));
    let config = |canonical_signs| GmnConfig {
        hidden: 16,
        layers: 2,
        readout: Readout::Both,
        outputs: 10,
        seed: 3,
        output_readout: true,
        canonical_signs,
        ..GmnConfig::default()
    };
    let outputs = |canonical| {
        let model = Gmn::new(&config(canonical), &device).unwrap();
        let prepared = |g: &GraphInput| GraphInput {
            topology: g.topology.clone(),
            weights: model.config().input_weights(&g.topology, &g.weights).into_owned(),
        };
        (run(&model, &prepared(&a), &device).0, run(&model, &prepared(&b), &device).0)
    };
    let (x, y) = outputs(true);
    assert!(max_diff(&x, &y) == 0.0, "canonical GMN: outputs differ by {}", max_diff(&x, &y));
    // Without canonicalisation the flips are visible to the GMN: the test can fail.
    let (x, y) = outputs(false);
    assert!(max_diff(&x, &y) > 1e-4, "a GMN on raw weights should see the flips");
}

#[test]
fn a_zoo_loaded_for_a_canonical_gmn_holds_one_representative_per_flip_class() {
    use gmnscope::data::{Split, Target};
    use gmnscope::train::dataset::{GraphSet, Sample};
    let mut rng = SplitMix64::new(77);
    let net = random_siren(&mut rng, 0.5);
    let samples: Vec<Sample> = (0..6)
        .map(|i| {
            let mut copy = net.clone();
            for j in 0..WIDTHS[1] {
                if rng.below(2) == 1 {
                    flip(&mut copy, 0, j);
                }
            }
            Sample {
                id: format!("n{i}"),
                input: column(&copy),
                target: Target::Class(i as u8 % 2),
                split: Split::Train,
            }
        })
        .collect();
    let set = std::sync::Arc::new(GraphSet::new(samples, Some(2)).unwrap());
    let canonical = set.for_gmn(true).unwrap();
    assert!(canonical.canonical_signs);
    let want = canonical_column(&net);
    assert!(canonical.samples.iter().all(|s| s.input.weights == want), "every flipped copy maps to one column");
    assert!(canonical.for_gmn(false).is_err(), "a canonical set cannot be handed to a raw-weights GMN");
}
