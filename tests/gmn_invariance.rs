//! Permutation symmetry of the GMN as a property over hostile cases: random SIRENs with small
//! (SIREN init), large (first layer and biases in +-0.5, the rest in +-0.2) and extreme weights,
//! random permutations of their hidden neurons, every readout, messages forward and both ways,
//! probe features on and off, per-class standardisation and the older per-layer scale, the
//! EdgeMPNN's mean and PNA's aggregation, on burn
//! (Flex) and on the fused CPU engine. Outputs and embeddings agree within 1e-4 of the
//! embedding's largest entry; node states permute with the nodes.

use burn::tensor::Device;
use gmnscope::data::{Split, Target};
use gmnscope::graph::{self, NodeRole};
use gmnscope::models::config::EdgeNorm;
use gmnscope::models::probe::{ProbeActivation, ProbeConfig};
use gmnscope::models::{Aggregation, Gmn, GmnConfig, GraphInput, Readout};
use gmnscope::rng::SplitMix64;
use gmnscope::train::dataset::{GraphSet, Sample};
use gmnscope::train::fused::FusedEngine;

use crate::gmn_symmetry::{input, max_diff, permute, shuffled, siren_store};

const WIDTHS: [usize; 4] = [2, 32, 32, 1];

#[derive(Clone, Copy, Debug)]
enum Magnitude {
    /// The SIREN paper's initialisation (what a zoo looks like).
    Small,
    /// The hostile case: first layer and biases U(+-0.5), the rest U(+-0.2).
    Large,
    /// 20x the large case.
    Extreme,
}

fn siren(rng: &mut SplitMix64, magnitude: Magnitude) -> Vec<(Vec<f32>, Vec<f32>)> {
    WIDTHS
        .windows(2)
        .enumerate()
        .map(|(l, w)| {
            let (fan_in, out) = (w[0], w[1]);
            let (wb, bb) = match magnitude {
                Magnitude::Small if l == 0 => (0.5, 0.7),
                Magnitude::Small => ((6.0 / fan_in as f32).sqrt() / 30.0, 0.17),
                Magnitude::Large if l == 0 => (0.5, 0.5),
                Magnitude::Large => (0.2, 0.2),
                Magnitude::Extreme if l == 0 => (10.0, 10.0),
                Magnitude::Extreme => (4.0, 4.0),
            };
            let weight = (0..out * fan_in).map(|_| rng.uniform(-wb, wb)).collect();
            let bias = (0..out).map(|_| rng.uniform(-bb, bb)).collect();
            (weight, bias)
        })
        .collect()
}

/// Standardisation statistics like a trained run's (a SIREN zoo's per-class stds).
fn zoo_like_norm(topology: &gmnscope::models::Topology) -> Vec<EdgeNorm> {
    let mut classes: Vec<(i64, i64)> =
        topology.edge_features.iter().map(|f| (f[0] as i64, f[1] as i64)).filter(|c| c.1 < 14).collect();
    classes.sort();
    classes.dedup();
    classes
        .into_iter()
        .enumerate()
        .map(|(i, (layer, edge_type))| EdgeNorm {
            layer,
            edge_type,
            mean: 0.01 * i as f32,
            std: [0.06, 0.02, 0.1][i % 3],
        })
        .collect()
}

struct Case {
    aggregation: Aggregation,
    readout: Readout,
    undirected: bool,
    probe: Option<ProbeConfig>,
    standardize: bool,
    output_readout: bool,
}

fn cases() -> Vec<Case> {
    let probe = ProbeConfig { points: 16, activation: ProbeActivation::Sine { omega_0: 30.0, output_offset: 0.5 } };
    let mut out = Vec::new();
    for aggregation in [Aggregation::Mean, Aggregation::Pna] {
        for readout in [Readout::Both, Readout::Nodes, Readout::Edges] {
            for undirected in [false, true] {
                for probe in [None, Some(probe)] {
                    for standardize in [true, false] {
                        let output_readout = readout != Readout::Edges || probe.is_some() || standardize;
                        out.push(Case { aggregation, readout, undirected, probe, standardize, output_readout });
                    }
                }
            }
        }
    }
    out
}

/// Graph outputs, embeddings and node states of `g` on burn.
fn burn_forward(model: &Gmn, g: &GraphInput, device: &Device) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    crate::gmn_symmetry::run(model, g, device)
}

fn fused_outputs(model: &Gmn, graphs: &[&GraphInput]) -> Vec<f32> {
    let samples = graphs
        .iter()
        .enumerate()
        .map(|(i, g)| Sample {
            id: format!("g{i}"),
            input: (*g).clone(),
            target: Target::Class(0),
            split: Split::Train,
        })
        .collect();
    let data = GraphSet::new(samples, Some(model.config().outputs)).unwrap();
    let mut engine = FusedEngine::new(model, &data).unwrap();
    let indices: Vec<usize> = (0..graphs.len()).collect();
    engine.outputs(model, &data, &indices, 1).unwrap()
}

#[test]
fn gmn_is_invariant_on_hostile_permuted_sirens() {
    let device = Device::flex();
    let mut rng = SplitMix64::new(2026);
    let mut worst = 0.0f32;
    for (trial, magnitude) in
        [Magnitude::Small, Magnitude::Large, Magnitude::Extreme].into_iter().cycle().take(6).enumerate()
    {
        let layers = siren(&mut rng, magnitude);
        let perms = vec![shuffled(32, &mut rng), shuffled(32, &mut rng)];
        let original = siren_store(&WIDTHS, &layers);
        let permuted = siren_store(&WIDTHS, &permute(&WIDTHS, &layers, &perms));
        let graph = graph::build(&gmnscope::arch::recover(&original), &original).unwrap();
        let mut mapping: Vec<usize> = (0..graph.num_nodes()).collect();
        let hidden: Vec<_> = graph.node_blocks().iter().filter(|b| b.role == NodeRole::Neurons && !b.ordered).collect();
        for (block, perm) in hidden.iter().zip(&perms) {
            for (j, &p) in perm.iter().enumerate() {
                mapping[block.start + j] = block.start + p;
            }
        }
        for (c, case) in cases().iter().enumerate() {
            // Probe features compute the input network itself: with extreme weights its own
            // float evaluation differs between the two neuron orders, so they are left out there.
            if case.probe.is_some() && matches!(magnitude, Magnitude::Extreme) {
                continue;
            }
            let g0 = input(&original, case.undirected);
            let g1 = input(&permuted, case.undirected);
            let config = GmnConfig {
                hidden: 16,
                layers: 3,
                readout: case.readout,
                undirected: case.undirected,
                direction_tag: case.undirected,
                outputs: 10,
                seed: trial as u64 * 100 + c as u64,
                weight_scales: if case.standardize { Vec::new() } else { vec![3.0, 50.0, 50.0, 50.0] },
                edge_norm: if case.standardize { zoo_like_norm(&g0.topology) } else { Vec::new() },
                probe: case.probe,
                output_readout: case.output_readout,
                aggregation: case.aggregation,
                bias_features: case.standardize,
                // Sign canonicalisation rides with the recipe: it must commute with permutations.
                canonical_signs: case.standardize && case.undirected,
                // Every other trial lifts weights with random Fourier features.
                weight_lift: if trial % 2 == 1 {
                    gmnscope::models::WeightLift::Fourier { frequencies: 8, sigma: 3.0 }
                } else {
                    gmnscope::models::WeightLift::Linear
                },
            };
            let what = format!(
                "{magnitude:?} trial {trial}, {:?}, readout {:?}, undirected {}, probe {}, standardize {}",
                case.aggregation,
                case.readout,
                case.undirected,
                case.probe.is_some(),
                case.standardize
            );
            let model = Gmn::new(&config, &device).unwrap();
            let prepared = |g: &GraphInput| GraphInput {
                topology: g.topology.clone(),
                weights: config.input_weights(&g.topology, &g.weights).into_owned(),
            };
            let (g0, g1) = (prepared(&g0), prepared(&g1));
            let (out0, emb0, nodes0) = burn_forward(&model, &g0, &device);
            let (out1, emb1, nodes1) = burn_forward(&model, &g1, &device);
            let scale = emb0.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
            let rel = |a: &[f32], b: &[f32]| max_diff(a, b) / scale;
            worst = worst.max(rel(&emb0, &emb1));
            assert!(rel(&emb0, &emb1) <= 1e-4, "{what}: embeddings differ by {:.2e} relative", rel(&emb0, &emb1));
            assert!(rel(&out0, &out1) <= 1e-4, "{what}: outputs differ by {:.2e} relative", rel(&out0, &out1));
            let h = config.hidden;
            for (layer, (a, b)) in nodes0.iter().zip(&nodes1).enumerate() {
                let node_scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
                let mut d = 0.0f32;
                for (node, &orig) in mapping.iter().enumerate() {
                    d = d.max(max_diff(&b[node * h..(node + 1) * h], &a[orig * h..(orig + 1) * h]));
                }
                assert!(
                    d / node_scale <= 1e-4,
                    "{what}: block {layer} node states not permuted ({:.2e})",
                    d / node_scale
                );
            }
            // The fused engine computes the same outputs, invariantly.
            // (It has no edges-only readout without a node readout.)
            if case.readout != Readout::Edges || config.reads_outputs() {
                let fused = fused_outputs(&model, &[&g0, &g1]);
                let (f0, f1) = fused.split_at(10);
                assert!(rel(f0, f1) <= 1e-4, "{what}: fused outputs differ by {:.2e} relative", rel(f0, f1));
                assert!(rel(f0, &out0) <= 1e-3, "{what}: fused vs burn {:.2e} relative", rel(f0, &out0));
            }
        }
    }
    eprintln!("worst relative embedding difference: {worst:.2e}");
}

/// `gmnscope infer` as a user runs it: a GMN trained on a small zoo, then a SIREN with the
/// large weights of the hostile case and a copy with its hidden neurons permuted, written as
/// safetensors files: the same prediction, probabilities and embedding (1e-4 relative), for the
/// default weights-only GMN and for the probe-features ablation.
#[test]
fn infer_gives_a_permuted_siren_the_same_answer() {
    use std::process::Command;
    let bin = crate::common::gmnscope_bin();
    let tmp = tempfile::tempdir().unwrap();
    let zoo = tmp.path().join("zoo");
    let run = |args: &[&str]| {
        let out = Command::new(&bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    run(&["fit-inrs", "--demo", "--count", "24", "--steps", "20", "--out", zoo.to_str().unwrap()]);
    let mut rng = SplitMix64::new(99);
    let layers = siren(&mut rng, Magnitude::Large);
    let perms = vec![shuffled(32, &mut rng), shuffled(32, &mut rng)];
    let files: Vec<std::path::PathBuf> = [layers.clone(), permute(&WIDTHS, &layers, &perms)]
        .iter()
        .enumerate()
        .map(|(i, l)| write_siren(&tmp.path().join(format!("siren{i}.safetensors")), l))
        .collect();
    for (name, extra) in [("weights-only", vec![]), ("probes", vec!["--probe", "16"])] {
        let run_dir = tmp.path().join(name);
        let mut args =
            vec!["train", "--zoo", zoo.to_str().unwrap(), "--out", run_dir.to_str().unwrap(), "--epochs", "2"];
        args.extend(["--hidden", "16", "--layers", "2", "--batch", "8", "--warmup", "0"]);
        args.extend(extra);
        run(&args);
        let answers: Vec<serde_json::Value> = files
            .iter()
            .map(|f| {
                let out = run(&["infer", "--gmn", run_dir.to_str().unwrap(), f.to_str().unwrap(), "--json"]);
                serde_json::from_slice(&out).unwrap()
            })
            .collect();
        let floats = |v: &serde_json::Value, key: &str| -> Vec<f32> {
            v[key].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
        };
        let (e0, e1) = (floats(&answers[0], "embedding"), floats(&answers[1], "embedding"));
        let scale = e0.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max_diff(&e0, &e1) <= 1e-4 * scale, "{name}: embeddings differ by {}", max_diff(&e0, &e1) / scale);
        let (p0, p1) = (floats(&answers[0], "probabilities"), floats(&answers[1], "probabilities"));
        assert!(max_diff(&p0, &p1) <= 1e-4, "{name}: probabilities differ by {}", max_diff(&p0, &p1));
        assert_eq!(answers[0]["prediction"], answers[1]["prediction"], "{name}");
    }
}

/// A NaN or out-of-range weight is refused by `infer` with the tensor named, not answered with a
/// class; so is a network of another architecture than the GMN was trained on.
#[test]
fn infer_refuses_non_finite_weights_naming_the_tensor() {
    use std::process::Command;
    let bin = crate::common::gmnscope_bin();
    let tmp = tempfile::tempdir().unwrap();
    let zoo = tmp.path().join("zoo");
    let run_dir = tmp.path().join("run");
    for args in [
        vec!["fit-inrs", "--demo", "--count", "12", "--steps", "5", "--out", zoo.to_str().unwrap()],
        vec![
            "train",
            "--zoo",
            zoo.to_str().unwrap(),
            "--out",
            run_dir.to_str().unwrap(),
            "--epochs",
            "1",
            "--hidden",
            "8",
        ],
    ] {
        let out = Command::new(&bin).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut layers = siren(&mut SplitMix64::new(3), Magnitude::Small);
    layers[1].0[17] = f32::NAN;
    let path = write_siren(&tmp.path().join("nan.safetensors"), &layers);
    let out = Command::new(&bin)
        .args(["infer", "--gmn", run_dir.to_str().unwrap(), path.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("seq.1.weight") && err.contains("not finite") && err.contains("nan.safetensors"), "{err}");

    // A network of another architecture (a ResNet for a SIREN GMN) is refused as well.
    let out = Command::new(&bin).args(["infer", "--gmn", run_dir.to_str().unwrap(), "demo:resnet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this GMN was trained on INRs")
            && err.contains("this file has conv layers and BatchNorm (6 weight layers)"),
        "{err}"
    );
}

/// Writes a SIREN 2-32-32-1 as a safetensors file with the DWSNets names.
fn write_siren(path: &std::path::Path, layers: &[(Vec<f32>, Vec<f32>)]) -> std::path::PathBuf {
    use gmnscope::checkpoint::writer::{OwnedTensor, to_safetensors_bytes};
    let tensors: Vec<OwnedTensor> = layers
        .iter()
        .enumerate()
        .flat_map(|(k, (w, b))| {
            [
                OwnedTensor::f32(format!("seq.{k}.weight"), vec![WIDTHS[k + 1], WIDTHS[k]], w),
                OwnedTensor::f32(format!("seq.{k}.bias"), vec![WIDTHS[k + 1]], b),
            ]
        })
        .collect();
    std::fs::write(path, to_safetensors_bytes(&tensors)).unwrap();
    path.to_path_buf()
}
