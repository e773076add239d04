//! Weight-space augmentation (`train::augment`): on random SIRENs, the augmented weights compute
//! the original INR at rotated and shifted coordinates, `f'(x) = f(R x + t)`, whatever the
//! magnitudes; sign canonicalisation after the transform keeps the function; a training run
//! with `augment` on learns and is repeatable.

use gmnscope::data::siren::{Dense, Siren};
use gmnscope::models::Topology;
use gmnscope::rng::SplitMix64;
use gmnscope::train::augment::{AugmentPlan, Augmentation};

use crate::gmn_symmetry::{siren_layers, siren_store};

const WIDTHS: [usize; 4] = [2, 12, 12, 1];

fn siren_from(widths: &[usize], tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Siren {
    let layers = tensors
        .chunks(2)
        .enumerate()
        .map(|(l, pair)| Dense {
            weight: pair[0].2.clone(),
            bias: pair[1].2.clone(),
            inputs: widths[l],
            outputs: widths[l + 1],
        })
        .collect();
    Siren { layers }
}

/// Finds the rotation and translation the plan drew by replaying the same stream.
fn drawn(augmentation: &Augmentation, seed: u64) -> (f32, [f32; 2]) {
    let mut rng = SplitMix64::new(seed);
    let angle = rng.uniform(-augmentation.rotation_degrees, augmentation.rotation_degrees).to_radians();
    let t = [
        rng.uniform(-augmentation.translation, augmentation.translation),
        rng.uniform(-augmentation.translation, augmentation.translation),
    ];
    (angle, t)
}

#[test]
fn augmented_weights_compute_the_inr_at_moved_coordinates() {
    let no_dropout = Augmentation { weight_dropout: 0.0, ..Augmentation::INR };
    let mut rng = SplitMix64::new(3);
    for trial in 0..40u64 {
        let mut layers = siren_layers(&mut rng, &WIDTHS);
        // Every fourth network has weights and biases 1,000x larger.
        if trial % 4 == 3 {
            for (w, b) in &mut layers {
                w.iter_mut().chain(b.iter_mut()).for_each(|v| *v *= 1000.0);
            }
        }
        let store = siren_store(&WIDTHS, &layers);
        let graph = gmnscope::graph::build(&gmnscope::arch::recover(&store), &store).unwrap();
        for canonical in [false, true] {
            let (topology, mut column): (Topology, Vec<f32>) = Topology::from_graph(&graph, false).unwrap();
            if canonical {
                gmnscope::models::canonical::canonicalise_signs(&topology, &mut column);
            }
            let original = siren_from(&WIDTHS, &graph.to_weights(&column).unwrap());
            let plan = AugmentPlan::new(&topology, canonical).unwrap();
            let seed = 100 + trial;
            plan.apply(&no_dropout, &mut SplitMix64::new(seed), &mut column);
            let moved = siren_from(&WIDTHS, &graph.to_weights(&column).unwrap());
            let (angle, t) = drawn(&no_dropout, seed);
            let (sin, cos) = angle.sin_cos();
            let mut points = SplitMix64::new(trial);
            for _ in 0..20 {
                let x = [points.uniform(-1.0, 1.0), points.uniform(-1.0, 1.0)];
                let rx = [cos * x[0] - sin * x[1] + t[0], sin * x[0] + cos * x[1] + t[1]];
                // omega_0 = 1 keeps the sine's argument small enough for f32 at large weights.
                let omega = if trial % 4 == 3 { 1e-3 } else { 30.0 };
                let (a, b) = (moved.eval(&x, omega)[0], original.eval(&rx, omega)[0]);
                let scale = 1.0 + b.abs();
                assert!(
                    (a - b).abs() < 2e-3 * scale,
                    "trial {trial}, canonical {canonical}: f'(x) = {a}, f(Rx + t) = {b} at {x:?}"
                );
            }
        }
    }
}

#[test]
fn weight_dropout_zeroes_about_its_share_and_rescales_the_rest() {
    let mut rng = SplitMix64::new(5);
    let layers = siren_layers(&mut rng, &[2, 32, 32, 1]);
    let store = siren_store(&[2, 32, 32, 1], &layers);
    let graph = gmnscope::graph::build(&gmnscope::arch::recover(&store), &store).unwrap();
    let (topology, column) = Topology::from_graph(&graph, true).unwrap();
    let plan = AugmentPlan::new(&topology, false).unwrap();
    let only_dropout = Augmentation { rotation_degrees: 0.0, translation: 0.0, weight_dropout: 0.1 };
    let mut zeroed = 0;
    let trials = 50;
    for seed in 0..trials {
        let mut c = column.clone();
        plan.apply(&only_dropout, &mut SplitMix64::new(seed), &mut c);
        for (a, b) in c.iter().zip(&column) {
            if *a == 0.0 && *b != 0.0 {
                zeroed += 1;
            } else {
                assert!((a - b / 0.9).abs() <= 1e-6 * (1.0 + b.abs()), "kept weight {b} became {a}");
            }
        }
    }
    let share = zeroed as f64 / (trials as usize * column.len()) as f64;
    assert!((share - 0.1).abs() < 0.01, "dropped {share} of the weights, expected 0.1");
}
