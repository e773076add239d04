//! The GMN's symmetry, tested rather than assumed (Flex, f32): permuting the hidden neurons of a
//! SIREN (rows of W_l and b_l, columns of W_{l+1}) leaves the graph-level output unchanged and
//! permutes the per-node features the same way; the flattened-weights MLP baseline is not
//! invariant. Also: a mixed (disjoint-union) batch computes what the shared-topology batch does.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use gmnscope::checkpoint::writer::{OwnedTensor, to_safetensors_bytes};
use gmnscope::checkpoint::{self, Blob, TensorStore};
use gmnscope::graph::{self, NodeRole};
use gmnscope::models::probe::{ProbeActivation, ProbeConfig};
use gmnscope::models::{FlatMlp, Gmn, GmnBatch, GmnConfig, GraphInput, Readout, Topology};
use gmnscope::rng::SplitMix64;
use gmnscope::train::step::to_vec;

/// A SIREN state dict `seq.{i}.{weight,bias}` with the given widths (SIREN-style init).
pub fn siren_layers(rng: &mut SplitMix64, widths: &[usize]) -> Vec<(Vec<f32>, Vec<f32>)> {
    widths
        .windows(2)
        .enumerate()
        .map(|(l, w)| {
            let (fan_in, out) = (w[0], w[1]);
            let bound = if l == 0 { 1.0 / fan_in as f32 } else { (6.0 / fan_in as f32).sqrt() / 30.0 };
            let weight = (0..out * fan_in).map(|_| rng.uniform(-bound, bound)).collect();
            let bias = (0..out).map(|_| rng.uniform(-0.5, 0.5)).collect();
            (weight, bias)
        })
        .collect()
}

pub fn siren_store(widths: &[usize], layers: &[(Vec<f32>, Vec<f32>)]) -> TensorStore {
    let mut tensors = Vec::new();
    for (l, (w, b)) in layers.iter().enumerate() {
        tensors.push(OwnedTensor::f32(format!("seq.{l}.weight"), vec![widths[l + 1], widths[l]], w));
        tensors.push(OwnedTensor::f32(format!("seq.{l}.bias"), vec![widths[l + 1]], b));
    }
    let bytes = to_safetensors_bytes(&tensors);
    checkpoint::open_blob(Path::new("siren.safetensors"), Blob::from_vec(bytes)).expect("a valid safetensors file")
}

/// Permutes the outputs of every hidden layer: `perms[l]` reorders the outputs of layer `l`
/// (new neuron `j` is old neuron `perms[l][j]`).
pub fn permute(widths: &[usize], layers: &[(Vec<f32>, Vec<f32>)], perms: &[Vec<usize>]) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut out = layers.to_vec();
    // Layer l's rows (and bias) follow perms[l]; then layer l+1's columns follow perms[l].
    for (l, perm) in perms.iter().enumerate() {
        let (inp, outp) = (widths[l], widths[l + 1]);
        // Rows of W_l and entries of b_l.
        let (w, b) = out[l].clone();
        let mut w_new = w.clone();
        for j in 0..outp {
            w_new[j * inp..(j + 1) * inp].copy_from_slice(&w[perm[j] * inp..(perm[j] + 1) * inp]);
        }
        out[l] = (w_new, perm.iter().map(|&p| b[p]).collect());
        // Columns of W_{l+1} (applied to the already row-permuted next layer if any).
        let next_in = outp;
        let next_out = widths[l + 2];
        let w_next = out[l + 1].0.clone();
        for r in 0..next_out {
            for j in 0..next_in {
                out[l + 1].0[r * next_in + j] = w_next[r * next_in + perm[j]];
            }
        }
    }
    out
}

/// The SIREN's output at `x` (sin(30 (W x + b)) on hidden layers, linear output).
pub fn siren_eval(widths: &[usize], layers: &[(Vec<f32>, Vec<f32>)], x: &[f32]) -> Vec<f32> {
    let mut a = x.to_vec();
    for (l, (w, b)) in layers.iter().enumerate() {
        let (inp, outp) = (widths[l], widths[l + 1]);
        let z: Vec<f32> = (0..outp).map(|o| b[o] + (0..inp).map(|i| w[o * inp + i] * a[i]).sum::<f32>()).collect();
        a = if l + 1 < layers.len() { z.iter().map(|v| (30.0 * v).sin()).collect() } else { z };
    }
    a
}

pub fn shuffled(n: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i as u64 + 1) as usize);
    }
    p
}

pub fn input(store: &TensorStore, undirected: bool) -> GraphInput {
    let (topology, weights) = gmnscope::train::dataset::graph_input(store, undirected).expect("a SIREN graph");
    GraphInput { topology: Arc::new(topology), weights }
}

pub fn run(model: &Gmn, g: &GraphInput, device: &Device) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let topo = Arc::new(model.topology(&[g.topology.as_ref()], device).unwrap());
    let batch = GmnBatch::shared(topo, &[g.weights.as_slice()], device).unwrap();
    let out = model.forward_states(&batch, true);
    (to_vec(out.output), to_vec(out.embedding), out.node_states.into_iter().map(to_vec).collect())
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

const WIDTHS: [usize; 4] = [2, 32, 32, 1];
/// Per-layer weight scales (about 1 / std of SIREN weights and biases per layer), as a trained
/// model would have them from its zoo: they put the tiny hidden weights on an O(1) scale.
const SCALES: [f32; 3] = [3.0, 30.0, 30.0];

#[test]
fn gmn_is_invariant_and_node_equivariant_under_hidden_permutations() {
    let device = Device::flex();
    let mut rng = SplitMix64::new(11);
    let layers = siren_layers(&mut rng, &WIDTHS);
    let perms = vec![shuffled(32, &mut rng), shuffled(32, &mut rng)];
    assert_ne!(perms[0], (0..32).collect::<Vec<_>>());
    let permuted = permute(&WIDTHS, &layers, &perms);
    let original = siren_store(&WIDTHS, &layers);
    let permuted_store = siren_store(&WIDTHS, &permuted);

    // Same function (the permutation is a true symmetry of the SIREN).
    for x in [[0.1f32, -0.3], [-0.9, 0.8], [0.5, 0.5]] {
        let d = max_diff(&siren_eval(&WIDTHS, &layers, &x), &siren_eval(&WIDTHS, &permuted, &x));
        assert!(d < 1e-5, "permute() must not change the function (diff {d})");
    }
    let g0 = input(&original, false);
    let g1 = input(&permuted_store, false);
    assert_eq!(g0.topology, g1.topology, "a permutation keeps the topology");
    assert_ne!(g0.weights, g1.weights, "but changes the weight column");

    // Probe features (neuron activations on fixed inputs) move with the neurons they belong to.
    let probe = ProbeConfig { points: 16, activation: ProbeActivation::Sine { omega_0: 30.0, output_offset: 0.5 } };
    for (readout, probe) in
        [(Readout::Both, None), (Readout::Nodes, None), (Readout::Edges, None), (Readout::Both, Some(probe))]
    {
        let config = GmnConfig {
            hidden: 32,
            layers: 3,
            readout,
            outputs: 10,
            seed: 5,
            weight_scales: SCALES.to_vec(),
            probe,
            ..GmnConfig::default()
        };
        let model = Gmn::new(&config, &device).unwrap();
        let (out0, emb0, nodes0) = run(&model, &g0, &device);
        let (out1, emb1, nodes1) = run(&model, &g1, &device);
        let scale = out0.iter().map(|v| v.abs()).fold(0.0, f32::max);
        assert!(scale > 1e-3, "outputs are not trivially zero");
        assert!(max_diff(&out0, &out1) <= 1e-4, "{readout:?}: graph output changed by {}", max_diff(&out0, &out1));
        assert!(max_diff(&emb0, &emb1) <= 1e-4, "{readout:?}: embedding changed by {}", max_diff(&emb0, &emb1));

        // Node equivariance: node `start + j` of the permuted graph is node `start + perm[j]`.
        let graph = graph::build(&gmnscope::arch::recover(&original), &original).unwrap();
        let hidden: Vec<_> = graph.node_blocks().iter().filter(|b| b.role == NodeRole::Neurons && !b.ordered).collect();
        assert_eq!(hidden.len(), 2, "two hidden layers");
        let n = graph.num_nodes();
        let mut mapping: Vec<usize> = (0..n).collect();
        for (block, perm) in hidden.iter().zip(&perms) {
            for (j, &p) in perm.iter().enumerate() {
                mapping[block.start + j] = block.start + p;
            }
        }
        let h = config.hidden;
        for (layer, (a, b)) in nodes0.iter().zip(&nodes1).enumerate() {
            assert_eq!(a.len(), n * h);
            let mut worst = 0.0f32;
            for (node, &orig) in mapping.iter().enumerate() {
                let d = max_diff(&b[node * h..(node + 1) * h], &a[orig * h..(orig + 1) * h]);
                worst = worst.max(d);
            }
            assert!(worst <= 1e-4, "{readout:?}: layer {layer} node features not permuted (max diff {worst})");
        }
        // Hidden neurons are distinguishable after message passing: the check above is not vacuous.
        let (s, p) = (hidden[0].start, perms[0].iter().position(|&p| p != perms[0][0]).unwrap_or(1));
        let last = nodes0.last().unwrap();
        assert!(max_diff(&last[s * h..(s + 1) * h], &last[(s + p) * h..(s + p + 1) * h]) > 1e-4);
    }

    // Undirected graphs are invariant too.
    let config = GmnConfig { hidden: 16, layers: 2, undirected: true, outputs: 3, seed: 1, ..GmnConfig::default() };
    let model = Gmn::new(&config, &device).unwrap();
    let (u0, _, _) = run(&model, &input(&original, true), &device);
    let (u1, _, _) = run(&model, &input(&permuted_store, true), &device);
    assert!(max_diff(&u0, &u1) <= 1e-4);

    // A different network gives a different output (the GMN is not constant).
    let other = siren_store(&WIDTHS, &siren_layers(&mut rng, &WIDTHS));
    let config = GmnConfig {
        hidden: 32,
        layers: 3,
        outputs: 10,
        seed: 5,
        weight_scales: SCALES.to_vec(),
        ..GmnConfig::default()
    };
    let model = Gmn::new(&config, &device).unwrap();
    let (a, _, _) = run(&model, &g0, &device);
    let (b, _, _) = run(&model, &input(&other, false), &device);
    let gmn_other = max_diff(&a, &b);
    assert!(gmn_other > 1e-3, "different networks map to different outputs ({gmn_other})");

    // The flattened-weights MLP on the same pair (original, permuted) is NOT invariant: it sees
    // the permuted network as a different input.
    let mlp = FlatMlp::new(3, g0.weights.len(), 64, 2, 10, &device);
    let out = to_vec(mlp.forward_columns(&[g0.weights.as_slice(), g1.weights.as_slice()], &device));
    let (m0, m1) = out.split_at(10);
    let flat = max_diff(m0, m1);
    assert!(flat > 1e-3, "the flat MLP changed by only {flat} under the permutation");
}

#[test]
fn flattened_weights_baseline_is_not_invariant() {
    let device = Device::flex();
    let mut rng = SplitMix64::new(12);
    let layers = siren_layers(&mut rng, &WIDTHS);
    let perms = vec![shuffled(32, &mut rng), shuffled(32, &mut rng)];
    let g0 = input(&siren_store(&WIDTHS, &layers), false);
    let g1 = input(&siren_store(&WIDTHS, &permute(&WIDTHS, &layers, &perms)), false);
    let mlp = FlatMlp::new(3, g0.weights.len(), 64, 2, 10, &device);
    let out = to_vec(mlp.forward_columns(&[g0.weights.as_slice(), g1.weights.as_slice()], &device));
    let (a, b) = out.split_at(10);
    let diff = max_diff(a, b);
    assert!(diff > 1e-3, "the flat MLP should see a permuted network as a different input (diff {diff})");
}

#[test]
fn mixed_batches_compute_what_shared_batches_do() {
    let device = Device::flex();
    let mut rng = SplitMix64::new(13);
    let widths_b = [2usize, 8, 8, 1];
    let a1 = input(&siren_store(&WIDTHS, &siren_layers(&mut rng, &WIDTHS)), false);
    let a2 = input(&siren_store(&WIDTHS, &siren_layers(&mut rng, &WIDTHS)), false);
    let b1 = input(&siren_store(&widths_b, &siren_layers(&mut rng, &widths_b)), false);
    let config = GmnConfig {
        hidden: 16,
        layers: 2,
        outputs: 4,
        seed: 2,
        weight_scales: vec![2.0, 30.0, 30.0],
        ..GmnConfig::default()
    };
    let model = Gmn::new(&config, &device).unwrap();

    // Shared: two copies of the SIREN 2-32-32-1 topology.
    let topo = Arc::new(model.topology(&[a1.topology.as_ref()], &device).unwrap());
    let shared = GmnBatch::shared(topo, &[a1.weights.as_slice(), a2.weights.as_slice()], &device).unwrap();
    let shared_out = to_vec(model.forward(&shared).output);

    // Mixed: [a1, b1, a2] as one disjoint union.
    let mixed = GmnBatch::mixed(&[&a1, &b1, &a2], &config, &device).unwrap();
    assert_eq!(mixed.num_graphs(), 3);
    let mixed_out = to_vec(model.forward(&mixed).output);
    assert!(max_diff(&shared_out[0..4], &mixed_out[0..4]) <= 1e-5);
    assert!(max_diff(&shared_out[4..8], &mixed_out[8..12]) <= 1e-5);

    // And the small network alone gives its row of the union.
    let alone = to_vec(model.forward(&GmnBatch::mixed(&[&b1], &config, &device).unwrap()).output);
    assert!(max_diff(&alone, &mixed_out[4..8]) <= 1e-5);

    // A topology mismatch is an error, not a panic.
    let topo = Arc::new(model.topology(&[a1.topology.as_ref()], &device).unwrap());
    assert!(GmnBatch::shared(topo, &[b1.weights.as_slice()], &device).is_err());
    let _: &Topology = a1.topology.as_ref();
}

#[test]
fn probe_features_are_the_networks_activations_on_the_probe_inputs() {
    // The output neuron's probe features are the SIREN's outputs at the probe points (plus the
    // offset), computed independently here; a hidden neuron's are its sine activations.
    let device = Device::flex();
    let mut rng = SplitMix64::new(42);
    let layers = siren_layers(&mut rng, &WIDTHS);
    let g = input(&siren_store(&WIDTHS, &layers), false);
    let probe = ProbeConfig { points: 9, activation: ProbeActivation::Sine { omega_0: 30.0, output_offset: 0.5 } };
    let config = GmnConfig { hidden: 8, layers: 1, outputs: 2, probe: Some(probe), ..GmnConfig::default() };
    let model = Gmn::new(&config, &device).unwrap();
    let topo = model.topology(&[g.topology.as_ref()], &device).unwrap();
    let batch = GmnBatch::shared(Arc::new(topo.clone()), &[g.weights.as_slice()], &device).unwrap();
    let acts = to_vec(topo.probe.activations(&probe, batch.weights.clone())); // [N, 1, K]
    let points = probe.points(2);
    assert_eq!(points[0], vec![-1.0, -1.0]);
    assert_eq!(points[5], vec![0.0, 1.0], "a 3x3 grid in ij order");
    let nodes = &g.topology.node_features;
    let output = nodes.iter().position(|f| f[0] == 3 && f[2] == 0).expect("an output neuron");
    let first_hidden = nodes.iter().position(|f| f[0] == 1 && f[2] == 0).expect("a hidden neuron");
    let input_y = nodes.iter().position(|f| f[0] == 0 && f[1] == 1).expect("input neuron 1");
    for (k, point) in points.iter().enumerate() {
        let expected = siren_eval(&WIDTHS, &layers, point)[0] + 0.5;
        let got = acts[output * 9 + k];
        assert!((got - expected).abs() < 1e-4, "probe {k}: output {got} vs {expected}");
        let (w, b) = &layers[0];
        let hidden = (30.0 * (w[0] * point[0] + w[1] * point[1] + b[0])).sin();
        assert!((acts[first_hidden * 9 + k] - hidden).abs() < 1e-4);
        assert_eq!(acts[input_y * 9 + k], point[1]);
    }
    // A GMN with probe features refuses graphs that are not neuron/bias graphs.
    let conv = gmnscope::demo::open("resnet").expect("the demo ResNet");
    let (conv_topology, _) = gmnscope::train::dataset::graph_input(&conv, false).unwrap();
    let err = model.topology(&[&conv_topology], &device).unwrap_err();
    assert!(err.contains("probe features"), "{err}");
}
