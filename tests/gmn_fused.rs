//! The fused CPU engine (`train::fused`) against burn's autodiff on the same model and batch:
//! the same outputs and the same gradients, for every model variant the engine accepts (both
//! readouts, probe features, classification and regression, one and several workers). burn is
//! the reference: if the hand-written backward pass got any term wrong, a gradient would differ.

use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use gmnscope::data::{Split, Target};
use gmnscope::models::probe::{ProbeActivation, ProbeConfig};
use gmnscope::models::{Aggregation, Gmn, GmnConfig, GraphInput, Readout, WeightLift};
use gmnscope::rng::SplitMix64;
use gmnscope::train::fused::FusedEngine;
use gmnscope::train::step::{self, StepInput, to_vec};
use gmnscope::train::{self, GraphSet, Sample};

use crate::gmn_symmetry::{siren_layers, siren_store};

const WIDTHS: [usize; 4] = [2, 8, 8, 1];
/// 337 edges: three of the engine's 128-edge tiles, the last one partial.
const WIDE: [usize; 4] = [2, 16, 16, 1];

fn zoo(n: usize, regression: bool) -> GraphSet {
    zoo_of(&WIDTHS, n, regression)
}

fn zoo_of(widths: &[usize], n: usize, regression: bool) -> GraphSet {
    let mut rng = SplitMix64::new(77);
    let samples = (0..n)
        .map(|i| {
            let layers = siren_layers(&mut rng, widths);
            let (topology, weights) = train::dataset::graph_input(&siren_store(widths, &layers), false).unwrap();
            let target = if regression { Target::Value(rng.uniform(0.2, 0.9)) } else { Target::Class((i % 3) as u8) };
            Sample {
                id: format!("inr{i}"),
                input: GraphInput { topology: Arc::new(topology), weights },
                target,
                split: Split::Train,
            }
        })
        .collect();
    GraphSet::new(samples, if regression { None } else { Some(3) }).unwrap()
}

/// Which GMN: the plain EdgeMPNN of earlier runs, the weights-only recipe's inputs (messages both
/// ways with a direction tag, per-class standardisation with a shift as well as a scale, bias node
/// features, the output neurons' readout), or those with PNA's aggregation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    Plain,
    Recipe,
    RecipePna,
    /// The recipe with the random-Fourier-feature weight lift.
    RecipeFourier,
    RecipePnaFourier,
}

fn model(data: &GraphSet, readout: Readout, probe: bool, variant: Variant, device: &Device) -> Gmn {
    let recipe = variant != Variant::Plain;
    let config = GmnConfig {
        aggregation: if matches!(variant, Variant::RecipePna | Variant::RecipePnaFourier) {
            Aggregation::Pna
        } else {
            Aggregation::Mean
        },
        weight_lift: if matches!(variant, Variant::RecipeFourier | Variant::RecipePnaFourier) {
            WeightLift::Fourier { frequencies: 6, sigma: 3.0 }
        } else {
            WeightLift::Linear
        },
        hidden: 16,
        layers: 2,
        readout,
        outputs: data.task.outputs(),
        weight_scales: if recipe { Vec::new() } else { data.weight_scales() },
        edge_norm: if recipe { data.edge_norm() } else { Vec::new() },
        undirected: recipe,
        direction_tag: recipe,
        output_readout: recipe,
        bias_features: recipe,
        canonical_signs: false,
        seed: 5,
        probe: probe.then_some(ProbeConfig {
            points: 9,
            activation: ProbeActivation::Sine { omega_0: 30.0, output_offset: 0.5 },
        }),
    };
    Gmn::new(&config, device).unwrap()
}

/// Every parameter's gradient in visit order (`None` where burn has none).
fn flat(model: &Gmn, grads: &GradientsParams) -> Vec<Option<Vec<f32>>> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        out: Vec<Option<Vec<f32>>>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.push(self.grads.get::<D>(param.id).map(to_vec));
        }
    }
    let mut c = Collect { grads, out: Vec::new() };
    model.visit(&mut c);
    c.out
}

fn check(readout: Readout, probe: bool, regression: bool, workers: usize) {
    check_on(zoo(10, regression), readout, probe, Variant::Plain, regression, workers);
}

fn check_on(data: GraphSet, readout: Readout, probe: bool, variant: Variant, regression: bool, workers: usize) {
    let (target_mean, target_std) = if regression { data.target_stats() } else { (0.0, 1.0) };
    let device = Device::flex();
    let autodiff = device.clone().autodiff();
    let model = model(&data, readout, probe, variant, &autodiff);
    let what = format!("{readout:?}, probe {probe}, {variant:?}, regression {regression}, {workers} workers");
    let indices: Vec<usize> = (0..data.samples.len()).collect();

    // Outputs.
    let topology = Arc::new(model.topology(&[data.shared.as_ref().unwrap().as_ref()], &autodiff).unwrap());
    let batch = step::make_batch(&model, &data, Some(&topology), &indices, &autodiff).unwrap();
    let reference = to_vec(model.forward(&batch).output);
    let mut engine = FusedEngine::new(&model, &data).unwrap();
    let ours = engine.outputs(&model, &data, &indices, workers).unwrap();
    assert_eq!(ours.len(), reference.len());
    for (k, (a, b)) in ours.iter().zip(&reference).enumerate() {
        assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{what}: output {k}: fused {a} vs burn {b}");
    }

    // Gradients and loss.
    let input = StepInput { data: &data, shared: Some(&topology), target_mean, target_std, device: &autodiff };
    let (burn_grads, burn_stats) = step::gradients(&model, &input, &indices, 1).unwrap();
    let (fused_grads, fused_stats) =
        engine.gradients(&model, &data, &indices, target_mean, target_std, workers, &device).unwrap();
    assert!(
        (burn_stats.loss() - fused_stats.loss()).abs() < 1e-4,
        "{what}: loss {} vs {}",
        burn_stats.loss(),
        fused_stats.loss()
    );
    assert_eq!(burn_stats.correct, fused_stats.correct, "{what}: correct");
    let (expected, got) = (flat(&model, &burn_grads), flat(&model, &fused_grads));
    assert_eq!(expected.len(), got.len());
    let mut compared = 0;
    for (p, (e, g)) in expected.iter().zip(&got).enumerate() {
        match (e, g) {
            (None, None) => {}
            (Some(e), Some(g)) => {
                let scale = e.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
                for (k, (a, b)) in g.iter().zip(e).enumerate() {
                    assert!(
                        (a - b).abs() <= 2e-3 * scale + 1e-6,
                        "{what}: parameter {p} entry {k}: fused {a} vs burn {b}"
                    );
                }
                compared += 1;
            }
            _ => panic!("{what}: parameter {p}: burn has a gradient: {}, fused: {}", e.is_some(), g.is_some()),
        }
    }
    assert!(compared > 40, "{what}: only {compared} gradients compared");
}

#[test]
fn fused_engine_matches_burn_with_both_readouts() {
    check(Readout::Both, false, false, 1);
}

#[test]
fn fused_engine_matches_burn_with_probe_features_and_two_workers() {
    check(Readout::Both, true, false, 2);
}

#[test]
fn fused_engine_matches_burn_with_a_node_readout_on_regression() {
    check(Readout::Nodes, false, true, 3);
}

#[test]
fn fused_engine_matches_burn_with_an_edge_readout_and_probes() {
    check(Readout::Edges, true, false, 2);
}

#[test]
fn fused_engine_matches_burn_across_edge_tiles() {
    let data = zoo_of(&WIDE, 6, false);
    assert!(data.shared.as_ref().unwrap().num_edges() > 2 * 128);
    check_on(data, Readout::Both, true, Variant::Plain, false, 2);
}

#[test]
fn fused_engine_matches_burn_with_the_weights_only_recipe() {
    check_on(zoo(10, false), Readout::Both, false, Variant::Recipe, false, 2);
    check_on(zoo(8, true), Readout::Nodes, false, Variant::Recipe, true, 1);
    check_on(zoo_of(&WIDE, 6, false), Readout::Edges, false, Variant::Recipe, false, 3);
}

#[test]
fn fused_engine_matches_burn_with_pna_aggregation() {
    check_on(zoo(10, false), Readout::Both, false, Variant::RecipePna, false, 2);
    check_on(zoo(8, true), Readout::Nodes, true, Variant::RecipePna, true, 1);
    check_on(zoo_of(&WIDE, 6, false), Readout::Edges, false, Variant::RecipePna, false, 3);
}

#[test]
fn fused_engine_matches_burn_with_the_fourier_weight_lift() {
    check_on(zoo(10, false), Readout::Both, false, Variant::RecipeFourier, false, 2);
    check_on(zoo(8, true), Readout::Nodes, true, Variant::RecipeFourier, true, 1);
    check_on(zoo_of(&WIDE, 6, false), Readout::Edges, false, Variant::RecipePnaFourier, false, 3);
}

#[test]
fn fused_engine_is_deterministic_for_a_worker_count() {
    let data = zoo(10, false);
    let device = Device::flex();
    let model = model(&data, Readout::Both, true, Variant::Plain, &device.clone().autodiff());
    let mut engine = FusedEngine::new(&model, &data).unwrap();
    let indices: Vec<usize> = (0..10).collect();
    let a = engine.flat_gradients(&model, &data, &indices, 0.0, 1.0, 2).unwrap().0;
    let b = engine.flat_gradients(&model, &data, &indices, 0.0, 1.0, 2).unwrap().0;
    assert_eq!(a, b);
}
