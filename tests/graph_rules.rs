//! Architecture recovery and the GMN parameter-graph rules (shared/papers.md §2) on in-memory
//! checkpoints: reference counts, graph invariants (DAG, weakly connected, #edges >= #params),
//! exact inversion graph -> weights, kernel coordinates, shared attention neurons, permutation
//! equivariance, ONNX operator graphs, and implicit edges for a BERT-base-sized model.

use std::collections::HashMap;

use gmnscope::arch::{self, Architecture, Input, LayerKind, NormKind};
use gmnscope::checkpoint::{ByteView, DType, Format, OpNode, TensorInfo, TensorStore};
use gmnscope::graph::{self, EdgeType, EdgeValues, NodeRole, NodeType, ParamGraph};
use petgraph::graph::{DiGraph, NodeIndex};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A tensor spec: (name, shape, values).
type Spec = (String, Vec<usize>, Vec<f32>);

fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> TensorInfo {
    assert_eq!(values.len(), shape.iter().product::<usize>(), "{name}");
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    TensorInfo { name: name.into(), dtype: DType::F32, shape: shape.to_vec(), data: ByteView::from_vec(bytes) }
}

fn i64_tensor(name: &str, shape: &[usize]) -> TensorInfo {
    let n: usize = shape.iter().product();
    let bytes = (0..n as i64).flat_map(|v| v.to_le_bytes()).collect();
    TensorInfo { name: name.into(), dtype: DType::I64, shape: shape.to_vec(), data: ByteView::from_vec(bytes) }
}

fn store_of(specs: &[Spec]) -> TensorStore {
    let tensors = specs.iter().map(|(n, s, v)| f32_tensor(n, s, v)).collect();
    TensorStore::new("mem.safetensors", Format::Safetensors, tensors).unwrap()
}

/// Deterministic pseudo-random values in (-1, 1), distinct enough that a misplaced weight shows.
struct Rng(u64);

impl Rng {
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn spec(&mut self, name: &str, shape: &[usize]) -> Spec {
        (name.to_string(), shape.to_vec(), self.values(shape.iter().product()))
    }
}

fn linear(rng: &mut Rng, name: &str, inp: usize, out: usize) -> Vec<Spec> {
    vec![rng.spec(&format!("{name}.weight"), &[out, inp]), rng.spec(&format!("{name}.bias"), &[out])]
}

fn batch_norm(rng: &mut Rng, name: &str, c: usize) -> Vec<Spec> {
    ["weight", "bias", "running_mean", "running_var"]
        .iter()
        .map(|leaf| rng.spec(&format!("{name}.{leaf}"), &[c]))
        .collect()
}

fn layer_norm(rng: &mut Rng, name: &str, d: usize) -> Vec<Spec> {
    vec![rng.spec(&format!("{name}.weight"), &[d]), rng.spec(&format!("{name}.bias"), &[d])]
}

fn recover_and_build(store: &TensorStore) -> (Architecture, ParamGraph) {
    let arch = arch::recover(store);
    let g = graph::build(&arch, store).unwrap_or_else(|e| panic!("{e}\n{arch:#?}"));
    (arch, g)
}

/// The explicit neuron-level graph as petgraph (small models only).
fn explicit_petgraph(g: &ParamGraph) -> DiGraph<(), ()> {
    let mut pg = DiGraph::with_capacity(g.num_nodes(), g.num_edges());
    for _ in 0..g.num_nodes() {
        pg.add_node(());
    }
    g.for_each_edge(|s, d, _| {
        pg.add_edge(NodeIndex::new(s), NodeIndex::new(d), ());
    });
    pg
}

/// The reference invariants: DAG, weakly connected, every node on an edge, #edges >= #params.
fn assert_invariants(g: &ParamGraph) {
    let pg = explicit_petgraph(g);
    assert!(!petgraph::algo::is_cyclic_directed(&pg), "parameter graph must be a DAG");
    assert_eq!(petgraph::algo::connected_components(&pg), 1, "parameter graph must be weakly connected");
    let mut touched = vec![false; g.num_nodes()];
    g.for_each_edge(|s, d, _| {
        touched[s] = true;
        touched[d] = true;
    });
    assert!(touched.iter().all(|&t| t), "every node lies on an edge");
    assert!(g.num_edges() >= g.num_parameters());
    assert_eq!(g.edges().count(), g.num_edges());
    assert_eq!(g.node_features().len(), g.num_nodes());
}

/// Graph -> weights must give back every parameter tensor bit for bit, in parameter order.
fn assert_exact_inversion(g: &ParamGraph, store: &TensorStore, expected_order: &[&str]) {
    let (_, features) = g.explicit_edges();
    let weights = g.to_weights_from_features(&features).unwrap();
    let names: Vec<&str> = weights.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, expected_order, "parameter order");
    for (name, shape, values) in &weights {
        let t = store.get(name).unwrap();
        assert_eq!(&t.shape, shape, "{name}");
        let original = t.to_f32();
        assert!(
            original.iter().zip(values).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name} not reconstructed exactly"
        );
    }
    assert!(g.to_weights(&features.iter().map(|f| f[0]).take(g.num_edges() - 1).collect::<Vec<_>>()).is_err());
}

/// `(start, len, features_in)` of every channel slice, in layer order.
fn slices_of(arch: &Architecture) -> Vec<(usize, usize, usize)> {
    arch.layers
        .iter()
        .filter_map(|l| match l.kind {
            LayerKind::Slice { start, len, features_in } => Some((start, len, features_in)),
            _ => None,
        })
        .collect()
}

fn kinds(arch: &Architecture) -> Vec<String> {
    arch.layers.iter().map(|l| l.kind.name()).collect()
}

/// Every tensor is owned by exactly one layer or listed as unrecognised.
fn assert_every_tensor_placed_once(arch: &Architecture, store: &TensorStore) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for name in arch.layers.iter().flat_map(|l| l.tensors.iter()).chain(&arch.unrecognized) {
        *seen.entry(name.as_str()).or_default() += 1;
    }
    for t in store.tensors() {
        assert_eq!(seen.get(t.name.as_str()), Some(&1), "{} placed {:?} times", t.name, seen.get(t.name.as_str()));
    }
    assert_eq!(seen.len(), store.len());
}

// ---------------------------------------------------------------------------------------------
// MLPs

fn siren_specs(rng: &mut Rng, naming: impl Fn(usize) -> String) -> Vec<Spec> {
    let widths = [2usize, 32, 32, 1];
    widths.windows(2).enumerate().flat_map(|(i, w)| linear(rng, &naming(i), w[0], w[1])).collect()
}

#[test]
fn siren_2_32_32_1_counts_features_and_inversion() {
    let specs = siren_specs(&mut Rng(1), |i| format!("seq.{i}"));
    let store = store_of(&specs);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(kinds(&arch), ["linear", "linear", "linear"]);
    assert_eq!(arch.layers[0].input, Input::Fresh);
    assert_eq!(arch.layers[1].input, Input::Layer(0));
    assert_eq!(arch.layers[2].input, Input::Layer(1));
    assert!(arch.unrecognized.is_empty() && arch.notes.is_empty());
    // Nodes: 2 inputs + 32 + 32 + 1 neurons + 3 bias nodes = 70. Edges: one per parameter = 1,185.
    assert_eq!(g.num_nodes(), 70);
    assert_eq!(g.num_parameters(), 1185);
    assert_eq!(g.num_edges(), 1185);
    assert_invariants(&g);

    // Node ids: inputs 0-1, seq.0 neurons 2-33, its bias 34, seq.1 35-66, bias 67, output 68, bias 69.
    let x = g.node_features();
    assert_eq!(x[0], [0, 0, 0]);
    assert_eq!(x[1], [0, 1, 0]);
    assert_eq!(x[2], [1, -1, 0], "hidden neurons carry no order");
    assert_eq!(x[34], [1, -1, 1], "bias node of layer 0 sits with its outputs");
    assert_eq!(x[66], [2, -1, 0]);
    assert_eq!(x[68], [3, 0, 0], "the final output carries its order");
    assert_eq!(x[69], [3, -1, 1]);

    // Edge 2*5+1 of the stream is W0[5, 1]: input 1 -> neuron 5 of layer 1 (node 7).
    let edges: Vec<_> = g.edges().collect();
    let w0 = store.get("seq.0.weight").unwrap().to_f32();
    assert_eq!((edges[11].src, edges[11].dst), (1, 7));
    assert_eq!(edges[11].features, [w0[11], 0.0, 0.0, -1.0, -1.0, -1.0]);
    // First bias edge: bias node 34 -> neuron 0 of layer 1, type lin_bias.
    let b0 = store.get("seq.0.bias").unwrap().to_f32();
    assert_eq!((edges[64].src, edges[64].dst), (34, 2));
    assert_eq!(edges[64].features, [b0[0], 0.0, 1.0, -1.0, -1.0, -1.0]);

    let order = ["seq.0.weight", "seq.0.bias", "seq.1.weight", "seq.1.bias", "seq.2.weight", "seq.2.bias"];
    assert_exact_inversion(&g, &store, &order);
}

#[test]
fn siren_with_nested_linear_names_is_the_same_graph() {
    let a = store_of(&siren_specs(&mut Rng(2), |i| format!("seq.{i}")));
    let b = store_of(&siren_specs(&mut Rng(2), |i| format!("net.{i}.linear")));
    let (arch, gb) = recover_and_build(&b);
    assert_eq!(arch.layers[0].name, "net.0.linear");
    let (_, ga) = recover_and_build(&a);
    assert_eq!(ga.node_features(), gb.node_features());
    assert_eq!(ga.explicit_edges(), gb.explicit_edges());
}

#[test]
fn permuting_hidden_neurons_gives_an_isomorphic_graph() {
    let (inp, h, out) = (3usize, 5usize, 2usize);
    let mut rng = Rng(3);
    let specs: Vec<Spec> = [linear(&mut rng, "0", inp, h), linear(&mut rng, "2", h, out)].concat();
    let perm = [3usize, 0, 4, 1, 2];
    // Permute rows of W0 and b0 and columns of W1: the same function, scrambled weights.
    let mut permuted = specs.clone();
    for (new, &old) in perm.iter().enumerate() {
        permuted[0].2[new * inp..(new + 1) * inp].copy_from_slice(&specs[0].2[old * inp..(old + 1) * inp]);
        permuted[1].2[new] = specs[1].2[old];
        for o in 0..out {
            permuted[2].2[o * h + new] = specs[2].2[o * h + old];
        }
    }
    let (_, g1) = recover_and_build(&store_of(&specs));
    let (_, g2) = recover_and_build(&store_of(&permuted));
    assert_eq!(g1.node_features(), g2.node_features(), "hidden neurons are interchangeable");
    // Node ids: inputs 0..3, hidden 3..8 (permuted), bias 8, outputs 9..11, bias 11.
    let relabel = |n: usize| if (3..8).contains(&n) { 3 + perm.iter().position(|&p| p == n - 3).unwrap() } else { n };
    let key = |s: usize, d: usize, f: [f32; 6]| (s, d, f.map(f32::to_bits));
    let mut e1: Vec<_> = g1.edges().map(|e| key(relabel(e.src), relabel(e.dst), e.features)).collect();
    let mut e2: Vec<_> = g2.edges().map(|e| key(e.src, e.dst, e.features)).collect();
    e1.sort();
    e2.sort();
    assert_eq!(e1, e2, "the permutation is a graph isomorphism");
    let mut f1: Vec<_> = g1.edges().map(|e| e.features.map(f32::to_bits)).collect();
    let mut f2: Vec<_> = g2.edges().map(|e| e.features.map(f32::to_bits)).collect();
    f1.sort();
    f2.sort();
    assert_eq!(f1, f2, "same multiset of edge features");
    assert_ne!(g1.explicit_edges().1, g2.explicit_edges().1, "but a different edge list order");
}

// ---------------------------------------------------------------------------------------------
// CNNs and ResNet blocks

fn conv(rng: &mut Rng, name: &str, inp: usize, out: usize, k: usize) -> Spec {
    rng.spec(&format!("{name}.weight"), &[out, inp, k, k])
}

/// A ResNet BasicBlock(1 -> 2 channels, 3x3 convs, BN, 1x1 conv + BN shortcut), torchvision-like names.
fn basic_block_1_to_2() -> Vec<Spec> {
    let mut rng = Rng(4);
    let mut specs = vec![conv(&mut rng, "layer1.0.conv1", 1, 2, 3)];
    specs.extend(batch_norm(&mut rng, "layer1.0.bn1", 2));
    specs.push(conv(&mut rng, "layer1.0.conv2", 2, 2, 3));
    specs.extend(batch_norm(&mut rng, "layer1.0.bn2", 2));
    specs.push(conv(&mut rng, "layer1.0.shortcut.0", 1, 2, 1));
    specs.extend(batch_norm(&mut rng, "layer1.0.shortcut.1", 2));
    specs
}

#[test]
fn basic_block_1_to_2_is_13_nodes_68_parameters_70_edges() {
    let mut tensors: Vec<TensorInfo> = basic_block_1_to_2().iter().map(|(n, s, v)| f32_tensor(n, s, v)).collect();
    for bn in ["bn1", "bn2", "shortcut.1"] {
        tensors.push(i64_tensor(&format!("layer1.0.{bn}.num_batches_tracked"), &[]));
    }
    let store = TensorStore::new("block.pt", Format::PytorchZip, tensors).unwrap();
    let (arch, g) = recover_and_build(&store);
    assert_eq!(
        kinds(&arch),
        ["conv2d", "batch-norm", "conv2d", "batch-norm", "conv2d", "batch-norm", "residual"],
        "{arch:#?}"
    );
    assert!(arch.unrecognized.is_empty());
    assert_every_tensor_placed_once(&arch, &store);
    // The shortcut reads the block input (what conv1 reads) and sits beside conv2.
    assert_eq!(arch.layers[4].input, Input::InputOf(0));
    assert_eq!(arch.layers[4].parallel_to, Some(2));
    match &arch.layers[1].kind {
        LayerKind::Norm { buffers, .. } => assert_eq!(buffers.len(), 3, "running stats are owned as buffers"),
        k => panic!("{k:?}"),
    }

    // Derivation (papers.md §2 rules):
    //   nodes: 1 input channel + 2 conv1 channels + 2 conv2 channels + 2 shortcut-conv channels
    //          + 3 norms x (gamma, beta) = 1 + 2 + 2 + 2 + 6 = 13 (the convs have no bias nodes);
    //   parameters: conv1 2*1*3*3 = 18, bn1 2+2, conv2 2*2*3*3 = 36, bn2 2+2, shortcut conv
    //          2*1*1*1 = 2, shortcut bn 2+2 -> 18 + 4 + 36 + 4 + 2 + 4 = 68 (running stats are buffers);
    //   edges: one per parameter (68) + 2 residual edges shortcut -> block output = 70.
    assert_eq!(g.num_nodes(), 13);
    assert_eq!(g.num_parameters(), 68);
    assert_eq!(g.num_edges(), 70);
    assert_invariants(&g);

    // Node ids: 0 input; 1-2 conv1; 3-4 bn1 gamma/beta; 5-6 conv2; 7-8 bn2; 9-10 shortcut conv;
    // 11-12 shortcut bn. Weight edges follow the [out, in, kh, kw] storage order.
    let (index, features) = g.explicit_edges();
    let mut expected: Vec<[usize; 2]> = Vec::new();
    let rep = |e: [usize; 2], n: usize, v: &mut Vec<[usize; 2]>| v.extend(std::iter::repeat_n(e, n));
    rep([0, 1], 9, &mut expected);
    rep([0, 2], 9, &mut expected);
    expected.extend([[3, 1], [3, 2], [4, 1], [4, 2]]);
    for (o, i) in [(5, 1), (5, 2), (6, 1), (6, 2)] {
        rep([i, o], 9, &mut expected);
    }
    expected.extend([[7, 5], [7, 6], [8, 5], [8, 6]]);
    expected.extend([[0, 9], [0, 10], [11, 9], [11, 10], [12, 9], [12, 10]]);
    expected.extend([[9, 5], [10, 6]]);
    assert_eq!(index, expected);

    let x = g.node_features();
    assert_eq!(x[0], [0, 0, NodeType::Channel as i64]);
    assert_eq!(x[1], [1, -1, 2]);
    assert_eq!(x[3], [1, -1, NodeType::BnGamma as i64]);
    assert_eq!(x[4], [1, -1, NodeType::BnBeta as i64]);
    assert_eq!(x[5], [2, 0, 2], "block outputs are the final outputs");
    assert_eq!(x[6], [2, 1, 2]);
    assert_eq!(x[9], [2, -1, 2], "shortcut channels share the block output's layer index");
    assert_eq!(x[12], [2, -1, 5]);

    // Conv parallel edges carry their kernel coordinates: edge k of conv1 is W[0, 0, k/3, k%3].
    let w1 = store.get("layer1.0.conv1.weight").unwrap().to_f32();
    for k in 0..9 {
        assert_eq!(features[k], [w1[k], 0.0, EdgeType::ConvWeight as i64 as f32, (k / 3) as f32, (k % 3) as f32, -1.0]);
    }
    // Shortcut conv (1x1) edges: layer index 1, kernel position (0, 0).
    assert_eq!(&features[62][1..], &[1.0, 2.0, 0.0, 0.0, -1.0]);
    // Residual edges: value 1, type residual, layer index of the block input (0).
    assert_eq!(features[68], [1.0, 0.0, 4.0, -1.0, -1.0, -1.0]);
    assert_eq!(features[69], [1.0, 0.0, 4.0, -1.0, -1.0, -1.0]);

    let order = [
        "layer1.0.conv1.weight",
        "layer1.0.bn1.weight",
        "layer1.0.bn1.bias",
        "layer1.0.conv2.weight",
        "layer1.0.bn2.weight",
        "layer1.0.bn2.bias",
        "layer1.0.shortcut.0.weight",
        "layer1.0.shortcut.1.weight",
        "layer1.0.shortcut.1.bias",
    ];
    assert_exact_inversion(&g, &store, &order);
}

#[test]
fn cnn_conv_bn_conv_bn_linear() {
    let mut rng = Rng(5);
    let mut specs = vec![conv(&mut rng, "features.0", 3, 4, 3), rng.spec("features.0.bias", &[4])];
    specs.extend(batch_norm(&mut rng, "features.1", 4));
    specs.extend([conv(&mut rng, "features.3", 4, 8, 3), rng.spec("features.3.bias", &[8])]);
    specs.extend(batch_norm(&mut rng, "features.4", 8));
    specs.extend(linear(&mut rng, "classifier", 8, 10));
    let store = store_of(&specs);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(kinds(&arch), ["conv2d", "batch-norm", "conv2d", "batch-norm", "linear"]);
    assert_eq!(arch.layers[4].input, Input::Layer(3), "global pooling: conv channels feed the Linear");
    // Nodes: 3 + (4 + bias) + 2 + (8 + bias) + 2 + (10 + bias) = 32.
    assert_eq!(g.num_nodes(), 32);
    // Parameters (running stats excluded): 108+4 + 4+4 + 288+8 + 8+8 + 80+10 = 522.
    assert_eq!(g.num_parameters(), 522);
    assert_eq!(g.num_edges(), 522);
    assert_invariants(&g);
    let x = g.node_features();
    assert_eq!(x[7], [1, -1, NodeType::ChannelBias as i64]);
    assert_eq!(x[8], [1, -1, NodeType::BnGamma as i64], "norm nodes take the index of the neurons they scale");
    let order = [
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "features.3.weight",
        "features.3.bias",
        "features.4.weight",
        "features.4.bias",
        "classifier.weight",
        "classifier.bias",
    ];
    assert_exact_inversion(&g, &store, &order);
}

#[test]
fn flatten_after_conv_reads_the_channels_with_an_edge_per_position() {
    let mut rng = Rng(6);
    let mut specs = vec![conv(&mut rng, "conv", 1, 4, 3)];
    specs.extend(linear(&mut rng, "fc", 4 * 5 * 5, 10));
    let store = store_of(&specs);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(arch.layers[1].input, Input::Layer(0));
    assert_eq!(arch.chain_breaks(), 0);
    assert!(matches!(arch.layers[1].kind, LayerKind::Linear { positions: 25, .. }));
    assert!(arch.notes.iter().any(|n| n.contains("flattened conv map") && n.contains("100 = 4 channels x 25")));
    // One input group (the image channel); fc's edges leave the 4 conv channels, 25 per pair.
    let inputs: Vec<_> = g.node_blocks().iter().filter(|b| b.role == NodeRole::Input).map(|b| b.len).collect();
    assert_eq!(inputs, [1]);
    assert_eq!(g.num_edges(), 36 + 1000 + 10);
    let positions: Vec<f32> = g.edges().skip(36).take(26).map(|e| e.features[3]).collect();
    assert_eq!(positions[..25], (0..25).map(|p| p as f32).collect::<Vec<_>>()[..]);
    assert_eq!(positions[25], 0.0, "the next channel starts again at position 0");
    assert_invariants(&g);
    assert_exact_inversion(&g, &store, &["conv.weight", "fc.weight", "fc.bias"]);
}

#[test]
fn resnet_with_identity_and_downsample_blocks() {
    let mut rng = Rng(7);
    let mut specs = vec![conv(&mut rng, "conv1", 1, 8, 3)];
    specs.extend(batch_norm(&mut rng, "bn1", 8));
    for (p, cin, cout) in [("layer1.0", 8, 8), ("layer2.0", 8, 16)] {
        specs.push(conv(&mut rng, &format!("{p}.conv1"), cin, cout, 3));
        specs.extend(batch_norm(&mut rng, &format!("{p}.bn1"), cout));
        specs.push(conv(&mut rng, &format!("{p}.conv2"), cout, cout, 3));
        specs.extend(batch_norm(&mut rng, &format!("{p}.bn2"), cout));
        if cin != cout {
            specs.push(conv(&mut rng, &format!("{p}.downsample.0"), cin, cout, 1));
            specs.extend(batch_norm(&mut rng, &format!("{p}.downsample.1"), cout));
        }
    }
    specs.extend(linear(&mut rng, "fc", 16, 10));
    let store = store_of(&specs);
    let (arch, g) = recover_and_build(&store);
    let residuals: Vec<_> = arch.layers.iter().filter(|l| matches!(l.kind, LayerKind::Residual { .. })).collect();
    assert_eq!(residuals.len(), 2);
    // The identity block adds the block input (the stem's BN output = stem conv neurons).
    assert_eq!(
        residuals[0].kind,
        LayerKind::Residual { from: Input::Layer(1), block_input: Input::Layer(1), features: 8 }
    );
    assert_eq!(arch.layers.last().unwrap().input, Input::Layer(arch.layers.len() - 2), "fc reads the last block");
    assert_invariants(&g);
    assert_eq!(g.num_edges(), g.num_parameters() + 8 + 16);
    let order: Vec<&str> = specs.iter().map(|(n, _, _)| n.as_str()).filter(|n| !n.contains("running")).collect();
    assert_exact_inversion(&g, &store, &order);
}

// ---------------------------------------------------------------------------------------------
// Transformers

/// `nn.TransformerEncoderLayer` names (fused in_proj), d = 4, feed-forward 8.
fn torch_encoder_layer(rng: &mut Rng, p: &str, d: usize, ff: usize) -> Vec<Spec> {
    let mut specs = vec![
        rng.spec(&format!("{p}.self_attn.in_proj_weight"), &[3 * d, d]),
        rng.spec(&format!("{p}.self_attn.in_proj_bias"), &[3 * d]),
    ];
    specs.extend(linear(rng, &format!("{p}.self_attn.out_proj"), d, d));
    specs.extend(linear(rng, &format!("{p}.linear1"), d, ff));
    specs.extend(linear(rng, &format!("{p}.linear2"), ff, d));
    specs.extend(layer_norm(rng, &format!("{p}.norm1"), d));
    specs.extend(layer_norm(rng, &format!("{p}.norm2"), d));
    specs
}

#[test]
fn fused_attention_q_k_v_share_attention_neurons() {
    let (d, ff) = (4usize, 8usize);
    let mut rng = Rng(8);
    let mut specs = linear(&mut rng, "input_proj", 3, d);
    specs.extend(torch_encoder_layer(&mut rng, "layers.0", d, ff));
    let store = store_of(&specs);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(
        kinds(&arch),
        ["linear", "attention", "residual", "layer-norm", "linear", "linear", "residual", "layer-norm"],
        "post-LN order for nn.TransformerEncoderLayer"
    );
    assert!(arch.notes.iter().any(|n| n.contains("post-LN")));
    assert_invariants(&g);
    // Residual edges: d (attention) + d (feed-forward).
    assert_eq!(g.num_edges(), g.num_parameters() + 2 * d);

    let attn = g.node_blocks().iter().position(|b| b.role == NodeRole::Attention).unwrap();
    let attn_block = &g.node_blocks()[attn];
    assert_eq!((attn_block.len, attn_block.node_type), (d, NodeType::AttentionNeuron));
    let qkv: Vec<_> = g.edge_blocks().iter().filter(|e| e.dst == attn && e.edge_type == EdgeType::LinWeight).collect();
    assert_eq!(qkv.len(), 3, "q, k and v all end on the same attention neurons");
    assert!(qkv.iter().all(|e| e.src == qkv[0].src));
    let offsets: Vec<usize> = qkv
        .iter()
        .map(|e| match e.values {
            EdgeValues::Dense { offset, .. } => offset,
            _ => usize::MAX,
        })
        .collect();
    assert_eq!(offsets, [0, d * d, 2 * d * d]);
    let attn_bias: Vec<_> = g.node_blocks().iter().filter(|b| b.node_type == NodeType::AttentionBias).collect();
    assert_eq!(attn_bias.len(), 3, "one bias node each for q, k, v");

    // Between input neuron i and attention neuron j: exactly 3 parallel edges carrying q/k/v[j, i].
    let w = store.get("layers.0.self_attn.in_proj_weight").unwrap().to_f32();
    let src0 = g.node_blocks()[qkv[0].src].start;
    let dst0 = attn_block.start;
    let (i, j) = (2usize, 1usize);
    let mut values: Vec<f32> =
        g.edges().filter(|e| e.src == src0 + i && e.dst == dst0 + j).map(|e| e.features[0]).collect();
    let mut want = vec![w[j * d + i], w[d * d + j * d + i], w[2 * d * d + j * d + i]];
    values.sort_by(f32::total_cmp);
    want.sort_by(f32::total_cmp);
    assert_eq!(values, want);

    // Parameter order is the graph's (execution) order: norm1 runs before linear1.
    let order: Vec<&str> = arch.layers.iter().flat_map(|l| l.kind.parameter_tensors()).collect();
    assert_eq!(order[6..8], ["layers.0.norm1.weight", "layers.0.norm1.bias"]);
    assert_exact_inversion(&g, &store, &order);
}

/// Hugging Face BERT names; `old_ln` uses the TF-era `gamma/beta` LayerNorm leaves.
fn bert_specs(
    rng: &mut Rng,
    prefix: &str,
    vocab: usize,
    d: usize,
    ff: usize,
    layers: usize,
    old_ln: bool,
) -> Vec<Spec> {
    let ln = |rng: &mut Rng, name: &str| {
        let (g, b) = if old_ln { ("gamma", "beta") } else { ("weight", "bias") };
        vec![rng.spec(&format!("{name}.{g}"), &[d]), rng.spec(&format!("{name}.{b}"), &[d])]
    };
    let e = format!("{prefix}embeddings");
    let mut specs = vec![
        rng.spec(&format!("{e}.word_embeddings.weight"), &[vocab, d]),
        rng.spec(&format!("{e}.position_embeddings.weight"), &[16, d]),
        rng.spec(&format!("{e}.token_type_embeddings.weight"), &[2, d]),
    ];
    specs.extend(ln(rng, &format!("{e}.LayerNorm")));
    for l in 0..layers {
        let p = format!("{prefix}encoder.layer.{l}");
        for proj in ["query", "key", "value"] {
            specs.extend(linear(rng, &format!("{p}.attention.self.{proj}"), d, d));
        }
        specs.extend(linear(rng, &format!("{p}.attention.output.dense"), d, d));
        specs.extend(ln(rng, &format!("{p}.attention.output.LayerNorm")));
        specs.extend(linear(rng, &format!("{p}.intermediate.dense"), d, ff));
        specs.extend(linear(rng, &format!("{p}.output.dense"), ff, d));
        specs.extend(ln(rng, &format!("{p}.output.LayerNorm")));
    }
    specs.extend(linear(rng, &format!("{prefix}pooler.dense"), d, d));
    specs
}

#[test]
fn bert_style_encoder_with_heads() {
    let (vocab, d, ff, layers) = (30usize, 8usize, 16usize, 2usize);
    let mut rng = Rng(9);
    let mut specs = bert_specs(&mut rng, "bert.", vocab, d, ff, layers, false);
    // BertForPreTraining heads: MLM (transform + decoder with its bias stored beside it) and NSP.
    specs.push(rng.spec("cls.predictions.bias", &[vocab]));
    specs.extend(linear(&mut rng, "cls.predictions.transform.dense", d, d));
    specs.extend(layer_norm(&mut rng, "cls.predictions.transform.LayerNorm", d));
    specs.push(rng.spec("cls.predictions.decoder.weight", &[vocab, d]));
    specs.extend(linear(&mut rng, "cls.seq_relationship", d, 2));
    let mut tensors: Vec<TensorInfo> = specs.iter().map(|(n, s, v)| f32_tensor(n, s, v)).collect();
    tensors.insert(3, i64_tensor("bert.embeddings.position_ids", &[1, 16]));
    let store = TensorStore::new("bert.bin", Format::PytorchZip, tensors).unwrap();
    let (arch, g) = recover_and_build(&store);
    assert_eq!(arch.unrecognized, ["bert.embeddings.position_ids"]);
    assert_every_tensor_placed_once(&arch, &store);
    let block = ["attention", "residual", "layer-norm", "linear", "linear", "residual", "layer-norm"];
    let mut want = vec!["embedding", "layer-norm"];
    for _ in 0..layers {
        want.extend(block);
    }
    want.extend(["linear", "linear", "layer-norm", "linear", "linear"]);
    assert_eq!(kinds(&arch), want, "{:#?}", arch.layers.iter().map(|l| &l.name).collect::<Vec<_>>());
    match &arch.layers[0].kind {
        LayerKind::Embedding { dim, tables } => {
            assert_eq!(*dim, d);
            assert_eq!(tables.iter().map(|t| t.num).collect::<Vec<_>>(), [vocab, 16, 2]);
        }
        k => panic!("{k:?}"),
    }
    // Heads: the MLM transform reads the sequence output (what the pooler reads), NSP the pooler.
    let index_of = |name: &str| arch.layers.iter().position(|l| l.name == name).unwrap();
    let pooler = index_of("bert.pooler.dense");
    assert_eq!(arch.layers[index_of("cls.predictions.transform.dense")].input, arch.layers[pooler].input);
    assert_eq!(arch.layers[index_of("cls.seq_relationship")].input, Input::Layer(pooler));
    let decoder = &arch.layers[index_of("cls.predictions.decoder")];
    assert_eq!(decoder.tensors, ["cls.predictions.decoder.weight", "cls.predictions.bias"]);

    assert_invariants(&g);
    assert_eq!(g.num_parameters(), store.num_parameters() - 16);
    assert_eq!(g.num_edges(), g.num_parameters() + 2 * layers * d);
    // Three input groups (vocabulary rows, positions, token types), all ordered.
    let inputs: Vec<_> =
        g.node_blocks().iter().filter(|b| b.role == NodeRole::Input).map(|b| (b.len, b.ordered)).collect();
    assert_eq!(inputs, [(vocab, true), (16, true), (2, true)]);
    // Final outputs: the MLM decoder (vocab) and NSP (2) neurons; the pooler feeds NSP.
    let outputs: Vec<_> =
        g.node_blocks().iter().filter(|b| b.role == NodeRole::Neurons && b.ordered).map(|b| b.len).collect();
    assert_eq!(outputs, [vocab, 2]);
    let order: Vec<&str> = arch.layers.iter().flat_map(|l| l.kind.parameter_tensors()).collect();
    assert_exact_inversion(&g, &store, &order);
}

#[test]
fn bert_with_old_gamma_beta_layer_norms() {
    let store = store_of(&bert_specs(&mut Rng(10), "", 20, 4, 8, 1, true));
    let (arch, g) = recover_and_build(&store);
    assert!(arch.unrecognized.is_empty());
    let norms = arch.layers.iter().filter(|l| matches!(l.kind, LayerKind::Norm { kind: NormKind::Layer, .. })).count();
    assert_eq!(norms, 3);
    assert_invariants(&g);
}

#[test]
fn vit_pre_ln_blocks_with_timm_names() {
    let (d, ff) = (6usize, 12usize);
    let mut rng = Rng(11);
    let mut specs = vec![rng.spec("cls_token", &[1, 1, d]), rng.spec("pos_embed", &[1, 5, d])];
    specs.extend([conv(&mut rng, "patch_embed.proj", 3, d, 4), rng.spec("patch_embed.proj.bias", &[d])]);
    for b in 0..2 {
        let p = format!("blocks.{b}");
        specs.extend(layer_norm(&mut rng, &format!("{p}.norm1"), d));
        specs.extend(linear(&mut rng, &format!("{p}.attn.qkv"), d, 3 * d));
        specs.extend(linear(&mut rng, &format!("{p}.attn.proj"), d, d));
        specs.extend(layer_norm(&mut rng, &format!("{p}.norm2"), d));
        specs.extend(linear(&mut rng, &format!("{p}.mlp.fc1"), d, ff));
        specs.extend(linear(&mut rng, &format!("{p}.mlp.fc2"), ff, d));
    }
    specs.extend(layer_norm(&mut rng, "norm", d));
    specs.extend(linear(&mut rng, "head", d, 10));
    let store = store_of(&specs);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(arch.unrecognized, ["cls_token", "pos_embed"]);
    let block = ["layer-norm", "attention", "residual", "layer-norm", "linear", "linear", "residual"];
    let mut want = vec!["conv2d"];
    want.extend(block);
    want.extend(block);
    want.extend(["layer-norm", "linear"]);
    assert_eq!(kinds(&arch), want);
    assert!(arch.notes.iter().any(|n| n.contains("pre-LN")));
    assert_invariants(&g);
    assert_eq!(g.num_edges(), g.num_parameters() + 2 * 2 * d);
    let order: Vec<&str> = arch.layers.iter().flat_map(|l| l.kind.parameter_tensors()).collect();
    assert_exact_inversion(&g, &store, &order);
}

// ---------------------------------------------------------------------------------------------
// What recovery must not choke on

#[test]
fn unplaceable_tensors_are_reported_not_fatal() {
    let mut rng = Rng(12);
    let mut specs = linear(&mut rng, "fc1", 4, 3);
    specs.push(rng.spec("temperature", &[]));
    specs.push(rng.spec("weird.weight", &[1, 1, 1, 1, 1, 1]));
    specs.push(rng.spec("volume", &[2, 2, 2, 2, 2]));
    specs.push(rng.spec("foo.weight", &[7]));
    specs.extend(linear(&mut rng, "fc2", 3, 2));
    let mut tensors: Vec<TensorInfo> = specs.iter().map(|(n, s, v)| f32_tensor(n, s, v)).collect();
    tensors.push(i64_tensor("embeddings.position_ids", &[1, 8]));
    let store = TensorStore::new("odd.safetensors", Format::Safetensors, tensors).unwrap();
    let (arch, g) = recover_and_build(&store);
    assert_eq!(kinds(&arch), ["linear", "linear"]);
    assert_eq!(arch.layers[1].input, Input::Layer(0));
    assert_eq!(arch.unrecognized, ["temperature", "weird.weight", "volume", "foo.weight", "embeddings.position_ids"]);
    assert_every_tensor_placed_once(&arch, &store);
    assert_eq!(g.num_parameters(), 4 * 3 + 3 + 3 * 2 + 2);
    assert_invariants(&g);

    let empty = TensorStore::new("empty.safetensors", Format::Safetensors, Vec::new()).unwrap();
    let (arch, g) = recover_and_build(&empty);
    assert!(arch.layers.is_empty());
    assert_eq!((g.num_nodes(), g.num_edges()), (0, 0));
}

#[test]
fn keras_kernels_are_read_in_hwio_and_in_out_order() {
    let mut rng = Rng(13);
    let specs = vec![
        rng.spec("conv2d/kernel:0", &[3, 3, 1, 4]),
        rng.spec("conv2d/bias:0", &[4]),
        rng.spec("dense/kernel:0", &[4, 10]),
        rng.spec("dense/bias:0", &[10]),
    ];
    let store = store_of(&specs);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(kinds(&arch), ["conv2d", "linear"]);
    assert_eq!(arch.layers[1].input, Input::Layer(0));
    assert_invariants(&g);
    // HWIO: element k = ((kh * 3 + kw) * 1 + i) * 4 + o; element 6 is (kh 0, kw 1, i 0, o 2).
    let edges: Vec<_> = g.edges().collect();
    let w = &specs[0].2;
    assert_eq!((edges[6].src, edges[6].dst), (0, 1 + 2));
    assert_eq!(edges[6].features, [w[6], 0.0, 2.0, 0.0, 1.0, -1.0]);
    // Dense [in, out]: element 13 is (i 1, o 3).
    let first_dense = g.edge_blocks()[2].first_edge;
    let e = edges[first_dense + 13];
    assert_eq!((e.src, e.dst), (1 + 1, 1 + 4 + 1 + 3));
    assert_eq!(e.features[0], specs[2].2[13]);
    assert_exact_inversion(&g, &store, &["conv2d/kernel:0", "conv2d/bias:0", "dense/kernel:0", "dense/bias:0"]);
}

// ---------------------------------------------------------------------------------------------
// ONNX operator graphs

fn op(name: &str, op_type: &str, inputs: &[&str], outputs: &[&str]) -> OpNode {
    OpNode {
        name: name.into(),
        op_type: op_type.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        ..OpNode::default()
    }
}

/// `op` with integer attributes (`transB`, `axis`, `group`).
fn op_with(name: &str, op_type: &str, inputs: &[&str], outputs: &[&str], attributes: &[(&str, i64)]) -> OpNode {
    let mut o = op(name, op_type, inputs, outputs);
    o.attributes = attributes.iter().map(|&(n, v)| (n.to_string(), gmnscope::checkpoint::Attribute::Int(v))).collect();
    o
}

#[test]
fn onnx_mlp_with_opaque_names_and_transposed_weights() {
    let mut rng = Rng(14);
    let specs = [
        rng.spec("fc1.weight", &[8, 2]), // Gemm transB=1: [out, in]
        rng.spec("fc1.bias", &[8]),
        rng.spec("onnx::Gemm_7", &[8, 3]), // Gemm transB=0: [in, out], told apart by the bias
        rng.spec("onnx::Gemm_8", &[3]),
        rng.spec("onnx::MatMul_9", &[3, 4]), // MatMul: always [in, out]; bias in a later Add
        rng.spec("head.bias", &[4]),
    ];
    let tensors = specs.iter().map(|(n, s, v)| f32_tensor(n, s, v)).collect();
    let ops = vec![
        op_with("/fc1/Gemm", "Gemm", &["x", "fc1.weight", "fc1.bias"], &["h1"], &[("transB", 1)]),
        op("/act/Relu", "Relu", &["h1"], &["a1"]),
        op("/fc2/Gemm", "Gemm", &["a1", "onnx::Gemm_7", "onnx::Gemm_8"], &["h2"]),
        op("/act2/Sin", "Sin", &["h2"], &["a2"]),
        op("/head/MatMul", "MatMul", &["a2", "onnx::MatMul_9"], &["m"]),
        op("/head/Add", "Add", &["m", "head.bias"], &["y"]),
    ];
    let store = TensorStore::new("mlp.onnx", Format::Onnx, tensors).unwrap().with_ops(ops);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(kinds(&arch), ["linear", "linear", "linear"]);
    assert_eq!(arch.layers[0].name, "fc1");
    let dims: Vec<_> = arch
        .layers
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Linear { in_features, out_features, layout, bias, .. } => {
                (*in_features, *out_features, *layout, bias.is_some())
            }
            k => panic!("{k:?}"),
        })
        .collect();
    use gmnscope::arch::MatrixLayout::{InOut, OutIn};
    assert_eq!(dims, [(2, 8, OutIn, true), (8, 3, InOut, true), (3, 4, InOut, true)]);
    assert_eq!(arch.layers[2].input, Input::Layer(1));
    assert!(arch.unrecognized.is_empty());
    assert_invariants(&g);
    assert_eq!(g.num_edges(), 16 + 8 + 24 + 3 + 12 + 4);
    let order: Vec<&str> = specs.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_exact_inversion(&g, &store, &order);
}

#[test]
fn onnx_basic_block_matches_the_hand_checked_counts() {
    // The BasicBlock(1 -> 2) as an exporter writes it: opaque names, BN with mean/var inputs,
    // and the residual as an Add of two activations.
    let mut rng = Rng(15);
    let mut specs = vec![rng.spec("onnx::Conv_1", &[2, 1, 3, 3])];
    let bn = |rng: &mut Rng, k: usize| -> Vec<Spec> { (0..4).map(|j| rng.spec(&format!("bn{k}_{j}"), &[2])).collect() };
    specs.extend(bn(&mut rng, 1));
    specs.push(rng.spec("onnx::Conv_2", &[2, 2, 3, 3]));
    specs.extend(bn(&mut rng, 2));
    specs.push(rng.spec("onnx::Conv_3", &[2, 1, 1, 1]));
    specs.extend(bn(&mut rng, 3));
    let tensors = specs.iter().map(|(n, s, v)| f32_tensor(n, s, v)).collect();
    let ops = vec![
        op("c1", "Conv", &["x", "onnx::Conv_1"], &["c1"]),
        op("b1", "BatchNormalization", &["c1", "bn1_0", "bn1_1", "bn1_2", "bn1_3"], &["b1"]),
        op("r1", "Relu", &["b1"], &["r1"]),
        op("c2", "Conv", &["r1", "onnx::Conv_2"], &["c2"]),
        op("b2", "BatchNormalization", &["c2", "bn2_0", "bn2_1", "bn2_2", "bn2_3"], &["b2"]),
        op("s", "Conv", &["x", "onnx::Conv_3"], &["s"]),
        op("sb", "BatchNormalization", &["s", "bn3_0", "bn3_1", "bn3_2", "bn3_3"], &["sb"]),
        op("add", "Add", &["sb", "b2"], &["sum"]),
        op("out", "Relu", &["sum"], &["y"]),
    ];
    let store = TensorStore::new("block.onnx", Format::Onnx, tensors).unwrap().with_ops(ops);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(kinds(&arch), ["conv2d", "batch-norm", "conv2d", "batch-norm", "conv2d", "batch-norm", "residual"]);
    assert_eq!(arch.layers[4].input, Input::InputOf(0), "the shortcut shares the block input");
    assert_eq!(
        arch.layers[6].kind,
        LayerKind::Residual { from: Input::Layer(5), block_input: Input::Layer(5), features: 2 },
        "the residual flows from the shallow shortcut into the main path"
    );
    assert!(arch.unrecognized.is_empty());
    assert_eq!((g.num_nodes(), g.num_parameters(), g.num_edges()), (13, 68, 70));
    assert_invariants(&g);
}

// ---------------------------------------------------------------------------------------------
// Implicit edges at scale

/// A store of BERT-base shapes whose data is zero-filled lazily: `vec![0u8; n]` is calloc'd, so
/// untouched pages are never materialised. Building the graph must not read them.
fn lazy_zero_store(shapes: &[(String, Vec<usize>)]) -> TensorStore {
    let tensors = shapes
        .iter()
        .map(|(name, shape)| TensorInfo {
            name: name.clone(),
            dtype: DType::F32,
            shape: shape.clone(),
            data: ByteView::from_vec(vec![0u8; 4 * shape.iter().product::<usize>()]),
        })
        .collect();
    TensorStore::new("bert-base.safetensors", Format::Safetensors, tensors).unwrap()
}

#[test]
fn bert_base_graph_is_implicit_and_counts_match_the_formula() {
    let (vocab, pos, d, ff, layers) = (30522usize, 512usize, 768usize, 3072usize, 12usize);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![vocab, d]),
        ("embeddings.position_embeddings.weight".into(), vec![pos, d]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, d]),
        ("embeddings.LayerNorm.weight".into(), vec![d]),
        ("embeddings.LayerNorm.bias".into(), vec![d]),
    ];
    for l in 0..layers {
        let p = format!("encoder.layer.{l}");
        let lin = |shapes: &mut Vec<(String, Vec<usize>)>, n: String, i: usize, o: usize| {
            shapes.push((format!("{n}.weight"), vec![o, i]));
            shapes.push((format!("{n}.bias"), vec![o]));
        };
        for q in ["query", "key", "value"] {
            lin(&mut shapes, format!("{p}.attention.self.{q}"), d, d);
        }
        lin(&mut shapes, format!("{p}.attention.output.dense"), d, d);
        shapes.push((format!("{p}.attention.output.LayerNorm.weight"), vec![d]));
        shapes.push((format!("{p}.attention.output.LayerNorm.bias"), vec![d]));
        lin(&mut shapes, format!("{p}.intermediate.dense"), d, ff);
        lin(&mut shapes, format!("{p}.output.dense"), ff, d);
        shapes.push((format!("{p}.output.LayerNorm.weight"), vec![d]));
        shapes.push((format!("{p}.output.LayerNorm.bias"), vec![d]));
    }
    shapes.push(("pooler.dense.weight".into(), vec![d, d]));
    shapes.push(("pooler.dense.bias".into(), vec![d]));
    let store = lazy_zero_store(&shapes);

    let started = std::time::Instant::now();
    let arch = arch::recover(&store);
    let g = graph::build(&arch, &store).unwrap();
    let elapsed = started.elapsed();

    // bert-base-uncased BertModel: 109,482,240 parameters.
    assert_eq!(g.num_parameters(), 109_482_240);
    assert_eq!(store.num_parameters(), 109_482_240);
    // Edges: one per parameter plus two residuals of d edges per encoder layer.
    assert_eq!(g.num_edges(), 109_482_240 + 2 * layers * d);
    // Nodes: inputs (vocab + positions + token types), embedding neurons + LN gamma/beta; per layer
    // d attention neurons + 3 q/k/v bias nodes, d output neurons + bias, LN 2, ff + bias, d + bias,
    // LN 2; pooler d + bias.
    let per_layer = (d + 3) + (d + 1) + 2 + (ff + 1) + (d + 1) + 2;
    assert_eq!(g.num_nodes(), vocab + pos + 2 + d + 2 + layers * per_layer + d + 1);
    // Blocks, not edges: a handful per layer.
    assert!(g.edge_blocks().len() < 30 * layers, "{} edge blocks", g.edge_blocks().len());
    assert_eq!(g.overview().edge_count(), g.edge_blocks().len());
    assert_eq!(g.overview().node_count(), g.node_blocks().len());
    assert!(elapsed.as_secs_f64() < 2.0, "building an implicit graph took {elapsed:?}");
    // Streaming touches one tensor at a time; check the first block only (the word embeddings).
    let first = g.edges().next().unwrap();
    assert_eq!((first.src, first.dst), (0, vocab + pos + 2));
    assert_eq!(first.features, [0.0, 0.0, 0.0, -1.0, -1.0, -1.0]);
}

// ---------------------------------------------------------------------------------------------
// Real structure (issue 12): fixtures written by tests/fixtures/graphs/generate.py

fn open_graph_fixture(name: &str) -> TensorStore {
    let path = crate::common::fixtures_dir().join("graphs").join(name);
    gmnscope::checkpoint::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Everything issue 12 asks of a real model's graph: every weight encoded (graph parameters =
/// file parameters less norm statistics and documented non-weights), one weakly connected
/// component, a DAG, every node on an edge, and exact inversion graph -> weights.
fn assert_real_structure(store: &TensorStore) -> (Architecture, ParamGraph) {
    let (arch, g) = recover_and_build(store);
    assert_every_tensor_placed_once(&arch, store);
    let unplaced = arch.unplaced(store);
    assert!(unplaced.iter().all(|u| u.non_weight), "weights left out: {unplaced:#?}");
    let non_weights: usize = unplaced.iter().map(|u| u.parameters).sum();
    assert_eq!(
        g.num_parameters(),
        store.num_parameters() - arch.buffer_elements(store) - non_weights,
        "every weight of the file is in the graph"
    );
    assert_invariants(&g);
    let order: Vec<&str> = arch.layers.iter().flat_map(|l| l.kind.parameter_tensors()).collect();
    assert_exact_inversion(&g, store, &order);
    (arch, g)
}

fn layer_named<'a>(arch: &'a Architecture, name: &str) -> (usize, &'a gmnscope::arch::Layer) {
    arch.layers.iter().enumerate().find(|(_, l)| l.name == name).unwrap_or_else(|| panic!("no layer {name}"))
}

#[test]
fn mtcnn_pnet_prelu_slopes_and_sibling_heads() {
    let store = open_graph_fixture("mtcnn_pnet.pt");
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(kinds(&arch), ["conv2d", "prelu", "conv2d", "prelu", "conv2d", "prelu", "conv2d", "conv2d"]);
    assert!(arch.unrecognized.is_empty());
    // Both heads read prelu3's neurons (conv3's channels), not each other.
    let (_, h1) = layer_named(&arch, "conv4_1");
    let (_, h2) = layer_named(&arch, "conv4_2");
    assert_eq!(h1.input, h2.input);
    // A PReLU is one node with an edge per channel, like a norm's gamma.
    let slopes: Vec<_> = g.node_blocks().iter().filter(|b| b.node_type == NodeType::ChannelParam).collect();
    assert_eq!(slopes.len(), 3);
    assert!(slopes.iter().all(|b| b.len == 1 && b.role == NodeRole::Parameter));
    let slope_edges: usize =
        g.edge_blocks().iter().filter(|e| e.edge_type == EdgeType::ChannelParam).map(|e| e.len).sum();
    assert_eq!(slope_edges, 4 + 6 + 8);
    // Two final outputs: the 2 face scores and the 4 box offsets.
    let outputs: Vec<_> =
        g.node_blocks().iter().filter(|b| b.role == NodeRole::Neurons && b.ordered).map(|b| b.len).collect();
    assert_eq!(outputs, [2, 4]);
}

#[test]
fn mtcnn_rnet_linear_after_flatten_has_an_edge_per_position() {
    let store = open_graph_fixture("mtcnn_rnet.pt");
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(arch.chain_breaks(), 0);
    let (index, dense4) = layer_named(&arch, "dense4");
    match &dense4.kind {
        LayerKind::Linear { in_features: 72, positions: 9, out_features: 16, .. } => {}
        k => panic!("{k:?}"),
    }
    assert!(arch.notes.iter().any(|n| n.contains("72 = 8 channels x 9 positions")));
    // dense4 reads conv3's 8 channel nodes: 9 parallel edges per (channel, neuron) pair, each
    // with its position in p0 and the value W[o, c * 9 + p].
    let block = g.edge_blocks().iter().find(|e| e.layer == index && e.edge_type == EdgeType::LinWeight).unwrap();
    let (src, dst) = (&g.node_blocks()[block.src], &g.node_blocks()[block.dst]);
    assert_eq!((src.len, dst.len, src.node_type), (8, 16, NodeType::Channel));
    let w = store.get("dense4.weight").unwrap().to_f32();
    let (c, o) = (5usize, 11usize);
    let mut edges: Vec<_> = g
        .edges()
        .filter(|e| e.src == src.start + c && e.dst == dst.start + o)
        .map(|e| (e.features[3] as usize, e.features[0]))
        .collect();
    edges.sort_by_key(|e| e.0);
    let want: Vec<_> = (0..9).map(|p| (p, w[o * 72 + c * 9 + p])).collect();
    assert_eq!(edges, want);
    let (_, h1) = layer_named(&arch, "dense5_1");
    let (_, h2) = layer_named(&arch, "dense5_2");
    assert_eq!(h1.input, h2.input, "sibling heads read the same neurons");
}

#[test]
fn mtcnn_onet_is_one_network() {
    let store = open_graph_fixture("mtcnn_onet.pt");
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(g.num_parameters(), store.num_parameters());
    let heads: Vec<Input> =
        ["dense6_1", "dense6_2", "dense6_3"].iter().map(|n| layer_named(&arch, n).1.input).collect();
    assert!(heads.iter().all(|&h| h == heads[0]));
    let inputs: Vec<_> = g.node_blocks().iter().filter(|b| b.role == NodeRole::Input).map(|b| b.len).collect();
    assert_eq!(inputs, [3], "one input group: the image channels");
}

/// Gate weights are parallel edges between the same input and hidden nodes; recurrent weights run
/// from the h(t-1) state nodes to the hidden nodes.
fn assert_recurrent_layer(g: &ParamGraph, store: &TensorStore, arch: &Architecture, name: &str, gates: usize) {
    let (index, layer) = layer_named(arch, name);
    let LayerKind::Recurrent { input_size, hidden, weight_ih, weight_hh, .. } = &layer.kind else { panic!() };
    let weights: Vec<_> =
        g.edge_blocks().iter().filter(|e| e.layer == index && e.edge_type == EdgeType::LinWeight).collect();
    let hidden_block = weights[0].dst;
    assert!(weights.iter().all(|e| e.dst == hidden_block), "every gate ends on the same hidden nodes");
    let state: Vec<_> = weights.iter().filter(|e| g.node_blocks()[e.src].role == NodeRole::State).collect();
    assert_eq!(state.len(), gates, "one recurrent block per gate");
    assert!(state.iter().all(|e| g.node_blocks()[e.src].len == *hidden));
    // Input neuron i and hidden neuron j: one edge per gate carrying weight_ih[g*h + j, i].
    let from_input: Vec<_> = weights.iter().filter(|e| g.node_blocks()[e.src].role != NodeRole::State).collect();
    let w = store.get(weight_ih).unwrap().to_f32();
    // The last input node of the first input segment (a concatenated input has several).
    let EdgeValues::Dense { inp, col, .. } = from_input[0].values else { panic!() };
    let (i, j) = (col + inp - 1, hidden - 1);
    let src = &g.node_blocks()[from_input[0].src];
    let dst = &g.node_blocks()[hidden_block];
    let mut got: Vec<f32> = g
        .edges()
        .filter(|e| e.src == src.start + from_input[0].src_offset + inp - 1 && e.dst == dst.start + j)
        .filter(|e| e.features[2] == EdgeType::LinWeight as i64 as f32)
        .map(|e| e.features[0])
        .collect();
    let mut want: Vec<f32> = (0..gates).map(|k| w[(k * hidden + j) * input_size + i]).collect();
    got.sort_by(f32::total_cmp);
    want.sort_by(f32::total_cmp);
    assert_eq!(got, want);
    let wh = store.get(weight_hh).unwrap().to_f32();
    let state_block = &g.node_blocks()[state[0].src];
    let mut got: Vec<f32> =
        g.edges().filter(|e| e.src == state_block.start + j && e.dst == dst.start).map(|e| e.features[0]).collect();
    let mut want: Vec<f32> = (0..gates).map(|k| wh[(k * hidden) * hidden + j]).collect();
    got.sort_by(f32::total_cmp);
    want.sort_by(f32::total_cmp);
    assert_eq!(got, want, "h(t-1) node j -> hidden node 0");
}

#[test]
fn vad_lstm_cell_is_encoded_between_the_encoder_and_the_head() {
    let store = open_graph_fixture("vad_lstmcell.pt");
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(g.num_parameters(), store.num_parameters(), "100% of the parameters, the LSTM included");
    assert_eq!(kinds(&arch), ["conv1d", "conv1d", "conv1d", "lstm", "conv1d"]);
    let (rnn, _) = layer_named(&arch, "_model.decoder.rnn");
    assert_eq!(arch.layers[rnn].input, Input::Layer(rnn - 1));
    assert_eq!(arch.layers[rnn + 1].input, Input::Layer(rnn));
    assert_recurrent_layer(&g, &store, &arch, "_model.decoder.rnn", 4);
    // Two biases x four gates: eight bias nodes on the hidden nodes.
    let biases = g.node_blocks().iter().filter(|b| b.layer == rnn && b.node_type == NodeType::Bias).count();
    assert_eq!(biases, 8);
}

#[test]
fn bidirectional_lstm_and_gru_stack() {
    let store = open_graph_fixture("recurrent_stack.pt");
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(g.num_parameters(), store.num_parameters());
    assert_eq!(
        kinds(&arch),
        ["embedding", "lstm", "lstm", "concat", "lstm", "lstm", "concat", "gru", "linear"],
        "each direction of each layer, their hidden nodes concatenated"
    );
    let (rev, reverse) = layer_named(&arch, "lstm.l0_reverse");
    assert_eq!(reverse.input, arch.layers[rev - 1].input, "both directions read the embedding");
    let (_, l1) = layer_named(&arch, "lstm.l1");
    assert!(matches!(l1.kind, LayerKind::Recurrent { input_size: 10, .. }));
    assert_recurrent_layer(&g, &store, &arch, "lstm.l1", 4);
    assert_recurrent_layer(&g, &store, &arch, "gru.l0", 3);
    // The layer after a bidirectional layer reads both directions: 2 source blocks per gate.
    let (l1_index, _) = layer_named(&arch, "lstm.l1");
    let from_inputs = g
        .edge_blocks()
        .iter()
        .filter(|e| e.layer == l1_index && g.node_blocks()[e.src].role == NodeRole::Neurons)
        .count();
    assert_eq!(from_inputs, 2 * 4);
}

#[test]
fn yolo_like_onnx_dag_merges_without_cycles() {
    let store = open_graph_fixture("c2f_block.onnx");
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(arch.chain_breaks(), 0, "{:#?}", arch.notes);
    let kinds = kinds(&arch);
    assert_eq!(kinds.iter().filter(|k| *k == "slice").count(), 2, "the C2f Split");
    assert_eq!(kinds.iter().filter(|k| *k == "concat").count(), 3, "C2f, SPPF and head Concats");
    assert_eq!(kinds.iter().filter(|k| *k == "residual").count(), 2, "the bottleneck Add and the gating Mul");
    let unplaced = arch.unplaced(&store);
    let names: Vec<&str> = unplaced.iter().map(|u| u.tensor.as_str()).collect();
    assert_eq!(names, ["onnx::Split_sizes", "model.4.stride"]);

    // Nothing invented: only convolutions create channel nodes.
    let channels: usize = g.node_blocks().iter().filter(|b| b.node_type == NodeType::Channel).map(|b| b.len).sum();
    let conv_out: usize = arch
        .layers
        .iter()
        .filter_map(|l| match l.kind {
            LayerKind::Conv { out_channels, .. } => Some(out_channels),
            _ => None,
        })
        .sum();
    assert_eq!(channels, 3 + conv_out);

    // The bottleneck's residual runs from the second half of cv1's channels into m.0.cv2's.
    let (cv1, _) = layer_named(&arch, "model.1.cv1.conv");
    let residual = g.edge_blocks().iter().find(|e| e.edge_type == EdgeType::Residual).unwrap();
    assert_eq!(g.node_blocks()[residual.src].layer, cv1);
    assert_eq!((residual.src_offset, residual.len), (4, 4));

    // cv2 reads the C2f Concat (cv1's 8 channels, then m.0's 4): one column window each.
    let (cv2, _) = layer_named(&arch, "model.1.cv2.conv");
    let windows: Vec<_> = g
        .edge_blocks()
        .iter()
        .filter(|e| e.layer == cv2 && e.edge_type == EdgeType::ConvWeight)
        .map(|e| match e.values {
            EdgeValues::Dense { col, cols, inp, .. } => (col, inp, cols),
            _ => panic!(),
        })
        .collect();
    assert_eq!(windows, [(0, 4, 12), (4, 4, 12), (8, 4, 12)]);

    // Depthwise: channel c only feeds channel c.
    let (dw, dw_layer) = layer_named(&arch, "model.2.dw.conv");
    assert!(matches!(dw_layer.kind, LayerKind::Conv { groups: 8, in_channels: 8, .. }));
    let dw_blocks: Vec<_> =
        g.edge_blocks().iter().filter(|e| e.layer == dw && e.edge_type == EdgeType::ConvWeight).collect();
    assert_eq!(dw_blocks.len(), 8);
    let starts: Vec<(usize, usize)> = dw_blocks
        .iter()
        .map(|e| (g.node_blocks()[e.src].start + e.src_offset, g.node_blocks()[e.dst].start + e.dst_offset))
        .collect();
    let mut in_group = 0;
    for e in g.edges() {
        if let Some(k) = starts.iter().position(|&(s, d)| e.features[2] == 2.0 && e.src == s && e.dst == d) {
            in_group += 1;
            assert!(k < 8);
        }
    }
    assert_eq!(in_group, 8 * 9, "9 kernel edges per channel, none across channels");

    // SPPF's Concat repeats cv1's 4 channels four times (max-pools of one map): its cv2 gets four
    // parallel edge blocks from the same nodes.
    let (sppf_cv1, _) = layer_named(&arch, "model.3.cv1.conv");
    let (sppf_cv2, _) = layer_named(&arch, "model.3.cv2.conv");
    let sources: Vec<usize> = g
        .edge_blocks()
        .iter()
        .filter(|e| e.layer == sppf_cv2 && e.edge_type == EdgeType::ConvWeight)
        .map(|e| g.node_blocks()[e.src].layer)
        .collect();
    assert_eq!(sources, [sppf_cv1; 4]);
}

/// Random small CNN/MLP/RNN state dicts (convs with optional bias, batch norm, PReLU and groups; a
/// flattened map or global pooling into Linears with PReLUs; an optional LSTM/GRU cell; one to
/// three sibling heads): every graph encodes every weight, is one weakly connected DAG and
/// inverts exactly.
#[test]
fn random_architectures_keep_every_weight_connected_and_invertible() {
    for seed in 0..150u64 {
        let mut rng = Rng(seed * 7919 + 1);
        let mut pick = |n: usize| -> usize {
            let v = rng.values(1)[0];
            (((v + 1.0) * 0.5 * n as f32) as usize).min(n - 1)
        };
        let mut specs: Vec<Spec> = Vec::new();
        let mut values = Rng(seed + 1000);
        let mut width = 1 + pick(3);
        let convs = pick(4);
        for i in 0..convs {
            let p = format!("convs.{i}");
            let out = 1 + pick(6);
            let k = 1 + pick(3);
            // A grouped conv when some g > 1 divides both widths.
            let groups =
                (2..=width.min(out)).rev().find(|g| width % g == 0 && out % g == 0 && pick(2) == 0).unwrap_or(1);
            specs.push(values.spec(&format!("{p}.conv.weight"), &[out, width / groups, k, k]));
            if pick(2) == 0 {
                specs.push(values.spec(&format!("{p}.conv.bias"), &[out]));
            }
            if pick(2) == 0 {
                specs.extend(batch_norm(&mut values, &format!("{p}.bn"), out));
            }
            if pick(2) == 0 {
                specs.push(values.spec(&format!("{p}.prelu.weight"), &[out]));
            }
            width = out;
        }
        let linears = 1 + pick(3);
        for i in 0..linears {
            let p = format!("fcs.{i}");
            let out = 2 + pick(7);
            // After convs: a flattened map of 1-5 positions per channel (1 = global pooling).
            let positions = if i == 0 && convs > 0 { 1 + pick(5) } else { 1 };
            specs.extend(linear(&mut values, &format!("{p}.fc"), width * positions, out));
            if pick(2) == 0 {
                specs.push(values.spec(&format!("{p}.prelu.weight"), &[out]));
            }
            width = out;
        }
        if pick(2) == 0 {
            let (gates, hidden) = ([1usize, 3, 4][pick(3)], 2 + pick(4));
            for (leaf, shape) in [
                ("weight_ih", vec![gates * hidden, width]),
                ("weight_hh", vec![gates * hidden, hidden]),
                ("bias_ih", vec![gates * hidden]),
                ("bias_hh", vec![gates * hidden]),
            ] {
                specs.push(values.spec(&format!("rnn.{leaf}"), &shape));
            }
            width = hidden;
        }
        // Sibling heads with widths that cannot be mistaken for a chain (never `width`).
        let heads = 1 + pick(3);
        for h in 0..heads {
            let out = [1usize, 2, 4, 10][h + pick(4 - h)].min(width + 11);
            let out = if out == width { width + 1 } else { out };
            specs.extend(linear(&mut values, &format!("head_{h}"), width, out));
        }
        let store = store_of(&specs);
        let arch = arch::recover(&store);
        let g = graph::build(&arch, &store).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{arch:#?}"));
        assert_eq!(arch.chain_breaks(), 0, "seed {seed}: {:#?}", arch.notes);
        assert!(arch.unrecognized.is_empty(), "seed {seed}: {:?}", arch.unrecognized);
        assert_eq!(g.num_parameters(), store.num_parameters() - arch.buffer_elements(&store), "seed {seed}");
        assert_invariants(&g);
        let order: Vec<&str> = arch.layers.iter().flat_map(|l| l.kind.parameter_tensors()).collect();
        assert_exact_inversion(&g, &store, &order);
    }
}

#[test]
fn yolo_detect_head_stays_connected_around_the_dfl_conv() {
    let store = open_graph_fixture("detect_head.onnx");
    let (arch, g) = recover_and_build(&store);
    assert_every_tensor_placed_once(&arch, &store);
    assert_invariants(&g);
    assert_eq!(arch.chain_breaks(), 0, "{:#?}", arch.notes);
    // The DFL conv reads 2 bins of a regrouped box map: it is the one weight left out, by name,
    // with the reason; the integer shapes and split sizes are not weights.
    let unplaced = arch.unplaced(&store);
    let weights: Vec<_> = unplaced.iter().filter(|u| !u.non_weight).collect();
    assert_eq!(weights.len(), 1, "{unplaced:#?}");
    assert_eq!(weights[0].tensor, "model.22.dfl.conv.weight");
    assert!(weights[0].reason.contains("regroup"), "{}", weights[0].reason);
    let non_weights: usize = unplaced.iter().map(|u| u.parameters).sum();
    assert_eq!(g.num_parameters(), store.num_parameters() - non_weights);
    // The box rows are a slice of the first scale's concatenated channels (its box conv's 8).
    let slices = slices_of(&arch);
    assert_eq!(slices, [(0, 8, 11), (8, 3, 11)]);
    let order: Vec<&str> = arch.layers.iter().flat_map(|l| l.kind.parameter_tensors()).collect();
    assert_exact_inversion(&g, &store, &order);
}

#[test]
fn onnx_slices_on_channels_are_subsets_and_a_residual_from_a_concat_pairs_segments() {
    // conv a (6 channels) -> Slice [0:2] and Slice [2:INT64_MAX] on axis 1; conv b reads the
    // second slice (4 -> 2); Concat(first slice, b) (4 channels); Add of that concat and a conv c
    // reading a's channels (6 -> 4): residual edges from the concat's two segments into c.
    let mut rng = Rng(16);
    let mut tensors: Vec<TensorInfo> = [
        rng.spec("a.weight", &[6, 3, 3, 3]),
        rng.spec("b.weight", &[2, 4, 1, 1]),
        rng.spec("c.weight", &[4, 6, 1, 1]),
        rng.spec("c.bias", &[4]),
    ]
    .iter()
    .map(|(n, s, v)| f32_tensor(n, s, v))
    .collect();
    let ints = |name: &str, values: &[i64]| TensorInfo {
        name: name.into(),
        dtype: DType::I64,
        shape: vec![values.len()],
        data: ByteView::from_vec(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
    };
    tensors.extend([ints("s0", &[0]), ints("e0", &[2]), ints("s1", &[2]), ints("e1", &[i64::MAX]), ints("axis", &[1])]);
    let ops = vec![
        op("a", "Conv", &["x", "a.weight"], &["a"]),
        op("slice0", "Slice", &["a", "s0", "e0", "axis"], &["lo"]),
        op("slice1", "Slice", &["a", "s1", "e1", "axis"], &["hi"]),
        op("b", "Conv", &["hi", "b.weight"], &["b"]),
        op_with("cat", "Concat", &["lo", "b"], &["cat"], &[("axis", 1)]),
        op("c", "Conv", &["a", "c.weight", "c.bias"], &["c"]),
        op("add", "Add", &["cat", "c"], &["y"]),
    ];
    let store = TensorStore::new("slices.onnx", Format::Onnx, tensors).unwrap().with_ops(ops);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(kinds(&arch), ["conv2d", "slice", "slice", "conv2d", "concat", "conv2d", "residual"]);
    assert_eq!(arch.layers[2].kind, LayerKind::Slice { start: 2, len: 4, features_in: 6 });
    assert_invariants(&g);
    // Residual edges pair c's 4 channels with the concat's segments (a's channels 0-1, then b's 2).
    let residuals: Vec<_> = g
        .edge_blocks()
        .iter()
        .filter(|e| e.edge_type == EdgeType::Residual)
        .map(|e| (g.node_blocks()[e.src].layer, e.src_offset, g.node_blocks()[e.dst].layer, e.dst_offset, e.len))
        .collect();
    // The concat is shallower (depth 1) than c (depth 2): the residual flows from its segments.
    assert_eq!(residuals, [(0, 0, 5, 0, 2), (3, 0, 5, 2, 2)]);
    let order: Vec<&str> = arch.layers.iter().flat_map(|l| l.kind.parameter_tensors()).collect();
    assert_exact_inversion(&g, &store, &order);
    assert_eq!(arch.unplaced(&store).iter().filter(|u| !u.non_weight).count(), 0);
}

#[test]
fn onnx_lstm_op_with_one_bias_tensor_is_a_recurrent_layer() {
    let mut rng = Rng(17);
    let specs = [
        rng.spec("fc.weight", &[4, 3]),
        rng.spec("fc.bias", &[4]),
        rng.spec("onnx::LSTM_W", &[1, 16, 4]),
        rng.spec("onnx::LSTM_R", &[1, 16, 4]),
        rng.spec("onnx::LSTM_B", &[1, 32]),
        rng.spec("head.weight", &[2, 4]),
        rng.spec("head.bias", &[2]),
    ];
    let tensors = specs.iter().map(|(n, s, v)| f32_tensor(n, s, v)).collect();
    let ops = vec![
        op_with("fc", "Gemm", &["x", "fc.weight", "fc.bias"], &["h"], &[("transB", 1)]),
        op("lstm", "LSTM", &["h", "onnx::LSTM_W", "onnx::LSTM_R", "onnx::LSTM_B"], &["y", "y_h", "y_c"]),
        op("squeeze", "Squeeze", &["y_h"], &["s"]),
        op_with("head", "Gemm", &["s", "head.weight", "head.bias"], &["out"], &[("transB", 1)]),
    ];
    let store = TensorStore::new("lstm.onnx", Format::Onnx, tensors).unwrap().with_ops(ops);
    let (arch, g) = recover_and_build(&store);
    assert_eq!(kinds(&arch), ["linear", "lstm", "linear"]);
    assert!(arch.unrecognized.is_empty());
    assert_eq!(g.num_parameters(), store.num_parameters());
    assert_invariants(&g);
    // B's first half is the input biases, its second the hidden ones: 2 x 4 gate bias nodes.
    let biases = g.node_blocks().iter().filter(|b| b.layer == 1 && b.node_type == NodeType::Bias).count();
    assert_eq!(biases, 8);
    let order = ["fc.weight", "fc.bias", "onnx::LSTM_W", "onnx::LSTM_R", "onnx::LSTM_B", "head.weight", "head.bias"];
    assert_exact_inversion(&g, &store, &order);
}

// ---------------------------------------------------------------------------------------------
// Issue 12, what exporters and writers really do: attributes, branches, rearranged weights,
// files sorted by name.

#[test]
fn vad_onnx_encodes_both_if_branches_and_lstm_weights_rearranged_by_slices() {
    let store = open_graph_fixture("vad_branches.onnx");
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(g.num_parameters(), store.num_parameters(), "both encoders, the LSTM and the head: 100%");
    assert_eq!(arch.chain_breaks(), 0, "{:#?}", arch.notes);
    // Both alternative encoders read the magnitude of the STFT's two channel slices.
    let encoders: Vec<_> =
        arch.layers.iter().filter(|l| l.name.contains("encoder.0.reparam_conv")).map(|l| l.input).collect();
    assert_eq!(encoders.len(), 2);
    assert_eq!(encoders[0], encoders[1]);
    let slices = slices_of(&arch);
    assert_eq!(slices, [(0, 3, 6), (3, 3, 6)], "bounds and axes from Unsqueeze(Constant)");
    // The LSTM op reads the cell's torch weights through Slice/Concat/Unsqueeze: one layer owns them.
    let lstm: Vec<_> = arch.layers.iter().filter(|l| matches!(l.kind, LayerKind::Recurrent { .. })).collect();
    assert_eq!(lstm.len(), 1, "the second branch's LSTM reuses the same weights");
    assert_eq!(
        lstm[0].tensors,
        [
            "model.decoder.rnn.weight_ih",
            "model.decoder.rnn.weight_hh",
            "model.decoder.rnn.bias_ih",
            "model.decoder.rnn.bias_hh"
        ]
    );
    assert!(arch.notes.iter().any(|n| n.contains("rearranged")), "{:#?}", arch.notes);
    // The head reads the LSTM's hidden nodes through the If's output.
    let (lstm_index, _) = layer_named(&arch, &lstm[0].name);
    let (_, head) = layer_named(&arch, "model.decoder.decoder.2");
    assert_eq!(head.input, Input::Layer(lstm_index));
    // Its one-element bias is a Constant read as the conv's bias: a weight, encoded.
    assert!(matches!(&head.kind, LayerKind::Conv { bias: Some(b), .. } if b == "model.decoder.decoder.2.bias"));
}

#[test]
fn onnx_attributes_decide_axes_groups_and_gemm_layout() {
    let store = open_graph_fixture("attributes.onnx");
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(g.num_parameters(), store.num_parameters());
    assert_eq!(arch.chain_breaks(), 0, "{:#?}", arch.notes);
    let (_, b) = layer_named(&arch, "b");
    assert!(matches!(b.kind, LayerKind::Conv { groups: 2, in_channels: 8, .. }), "{:?}", b.kind);
    // Only the channel slice (attributes starts/ends/axes = [1]) regroups neurons; the one on axis 2 does not.
    let slices = slices_of(&arch);
    assert_eq!(slices, [(0, 3, 8)]);
    // Concat on axis 1 is a union of 3 + 4 channels; on axis 2 it keeps `a`'s 8 channels.
    let concats: Vec<usize> = arch
        .layers
        .iter()
        .filter_map(|l| match l.kind {
            LayerKind::Concat { features, .. } => Some(features),
            _ => None,
        })
        .collect();
    assert_eq!(concats, [7]);
    let (a, _) = layer_named(&arch, "a");
    let (_, c) = layer_named(&arch, "c");
    assert_eq!(c.input, Input::Layer(a));
    // Transposed convs: [in, out / group, k, k]; the depthwise one has 3 groups of one channel.
    let (d, _) = layer_named(&arch, "d");
    for (name, groups) in [("up", 1), ("up_dw", 3)] {
        let (_, up) = layer_named(&arch, name);
        assert_eq!(up.input, Input::Layer(d));
        match &up.kind {
            LayerKind::Conv {
                in_channels: 3, groups: g, layout: gmnscope::arch::KernelLayout::InOutKernel, ..
            } => {
                assert_eq!(*g, groups);
            }
            k => panic!("{k:?}"),
        }
    }
    // A square Gemm weight with transB = 0 is [in, out].
    let (_, fc) = layer_named(&arch, "fc");
    assert!(matches!(fc.kind, LayerKind::Linear { layout: gmnscope::arch::MatrixLayout::InOut, .. }));
}

#[test]
fn bidirectional_onnx_lstm_is_two_directions_read_together() {
    let store = open_graph_fixture("bilstm.onnx");
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(kinds(&arch), ["lstm", "lstm", "concat", "linear"]);
    let (forward, reverse) = (&arch.layers[0], &arch.layers[1]);
    assert_eq!(reverse.input, Input::InputOf(0), "both directions read the same input");
    assert!(matches!(forward.kind, LayerKind::Recurrent { direction: 0, directions: 2, .. }));
    assert!(matches!(reverse.kind, LayerKind::Recurrent { direction: 1, directions: 2, .. }));
    assert_eq!(arch.layers[3].input, Input::Layer(2), "the Gemm reads both directions' hidden nodes");
    assert_recurrent_layer(&g, &store, &arch, "/rnn/LSTM", 4);
    // The reverse direction's input weights start after the forward direction's 4 gates x 3 x 4.
    let rev = g
        .edge_blocks()
        .iter()
        .find(|e| e.layer == 1 && e.edge_type == EdgeType::LinWeight && g.node_blocks()[e.src].role != NodeRole::State)
        .unwrap();
    let EdgeValues::Dense { offset, .. } = rev.values else { panic!() };
    assert_eq!(offset, 12 * 4);
}

/// A state dict sorted by name (what the `safetensors` library writes): `layer.10` sorts before
/// `layer.2` and Silero VAD's `decoder` before its `encoder`, so the order comes from the names'
/// numbers and from which module group's width feeds which.
#[test]
fn files_sorted_by_name_are_put_in_execution_order() {
    let mut rng = Rng(31);
    let mut specs: Vec<Spec> = Vec::new();
    for (i, (inp, out)) in [(129, 12), (12, 8), (8, 8), (8, 12)].into_iter().enumerate() {
        let p = format!("_model.encoder.{i}.reparam_conv");
        specs.push(rng.spec(&format!("{p}.weight"), &[out, inp, 3]));
        specs.push(rng.spec(&format!("{p}.bias"), &[out]));
    }
    for leaf in ["weight_ih", "weight_hh"] {
        specs.push(rng.spec(&format!("_model.decoder.rnn.{leaf}"), &[48, 12]));
    }
    for leaf in ["bias_ih", "bias_hh"] {
        specs.push(rng.spec(&format!("_model.decoder.rnn.{leaf}"), &[48]));
    }
    specs.push(rng.spec("_model.decoder.decoder.2.weight", &[1, 12, 1]));
    specs.push(rng.spec("_model.decoder.decoder.2.bias", &[1]));
    specs.push(rng.spec("_model.stft.forward_basis_buffer", &[258, 1, 16]));
    specs.sort_by(|a, b| a.0.cmp(&b.0));
    let store = store_of(&specs);
    let (arch, _) = assert_real_structure(&store);
    assert_eq!(kinds(&arch), ["conv1d", "conv1d", "conv1d", "conv1d", "lstm", "conv1d"]);
    assert_eq!(arch.chain_breaks(), 0, "{:#?}", arch.notes);
    assert!(arch.notes[0].contains("encoder -> decoder"), "{}", arch.notes[0]);
    let unplaced = arch.unplaced(&store);
    assert_eq!(unplaced.len(), 1);
    assert!(unplaced[0].non_weight && unplaced[0].tensor.ends_with("forward_basis_buffer"), "{unplaced:?}");

    // layer.10 after layer.9, not after layer.1.
    let mut specs: Vec<Spec> = Vec::new();
    for i in 0..12 {
        specs.extend(linear(&mut rng, &format!("layer.{i}"), i + 2, i + 3));
    }
    specs.sort_by(|a, b| a.0.cmp(&b.0));
    let store = store_of(&specs);
    let (arch, _) = assert_real_structure(&store);
    let names: Vec<&str> = arch.layers.iter().map(|l| l.name.as_str()).collect();
    let want: Vec<String> = (0..12).map(|i| format!("layer.{i}")).collect();
    assert_eq!(names, want);
    assert_eq!(arch.chain_breaks(), 0);

    // A file in any other order keeps it (a torch state dict lists modules as they were registered).
    let mut specs: Vec<Spec> = Vec::new();
    specs.extend(linear(&mut rng, "z_first", 2, 5));
    specs.extend(linear(&mut rng, "a_second", 5, 3));
    let (arch, _) = assert_real_structure(&store_of(&specs));
    assert_eq!(arch.layers[0].name, "z_first");
}

/// A LayerNorm exported as arithmetic (`Mul` by gamma, `Add` of beta, as paddle2onnx writes
/// PP-OCR's): per-channel vectors of the activation's width are scale and shift parameters; a
/// constant of another shape (a stride) stays a broadcast operand, and the bias of a left-out
/// projection is listed as a weight with it.
#[test]
fn onnx_per_channel_scale_and_shift_are_parameters() {
    let mut rng = Rng(41);
    let specs = [
        rng.spec("fc.weight", &[4, 3]),
        rng.spec("ln.w", &[4]),
        rng.spec("ln.b", &[1, 4]),
        rng.spec("stride", &[1, 7]),
        rng.spec("head.weight", &[5, 4]),
        rng.spec("proj.w", &[2, 2]),
        rng.spec("proj.b", &[2]),
    ];
    let tensors = specs.iter().map(|(n, s, v)| f32_tensor(n, s, v)).collect();
    let ops = vec![
        op_with("fc", "Gemm", &["x", "fc.weight"], &["h"], &[("transB", 1)]),
        op("scale", "Mul", &["ln.w", "h"], &["hs"]),
        op("shift", "Add", &["hs", "ln.b"], &["hn"]),
        op_with("head", "Gemm", &["hn", "head.weight"], &["y"], &[("transB", 1)]),
        op("stride", "Mul", &["y", "stride"], &["ys"]),
        op("proj", "MatMul", &["ys", "proj.w"], &["p"]),
        op("proj_bias", "Add", &["p", "proj.b"], &["out"]),
    ];
    let store = TensorStore::new("ln.onnx", Format::Onnx, tensors).unwrap().with_ops(ops);
    let (arch, g) = recover_and_build(&store);
    assert_invariants(&g);
    assert_eq!(kinds(&arch), ["linear", "scale", "shift", "linear"]);
    assert_eq!(arch.layers[3].input, Input::Layer(2));
    let unplaced = arch.unplaced(&store);
    let reason = |name: &str| unplaced.iter().find(|u| u.tensor == name).unwrap_or_else(|| panic!("{name}"));
    assert!(reason("stride").non_weight);
    assert!(!reason("proj.w").non_weight && !reason("proj.b").non_weight);
    assert!(reason("proj.b").reason.contains("bias of proj.w"), "{}", reason("proj.b").reason);
    let order: Vec<&str> = arch.layers.iter().flat_map(|l| l.kind.parameter_tensors()).collect();
    assert_exact_inversion(&g, &store, &order);
}

/// Attention exported as MatMuls (PP-OCRv4's recognizer, most ONNX transformer exports): a fused
/// qkv projection, `Reshape` to `[.., 3, heads, d]`, `Transpose`, a `Gather` per q/k/v,
/// `softmax(q k^T) v`, and the output projection. The projection reads the `v` third of the qkv
/// neurons: picking a factor of a split neuron axis is a slice, and a product of two activations
/// carries the second one's neurons.
#[test]
fn onnx_attention_as_matmuls_reads_v_out_of_fused_qkv() {
    use gmnscope::checkpoint::Attribute;
    let mut rng = Rng(43);
    let specs =
        [rng.spec("qkv.w", &[8, 24]), rng.spec("qkv.b", &[24]), rng.spec("proj.w", &[8, 8]), rng.spec("proj.b", &[8])];
    let tensors = specs.iter().map(|(n, s, v)| f32_tensor(n, s, v)).collect();
    let constant = |out: &str, values: &[i64]| {
        let mut o = op(out, "Constant", &[], &[out]);
        o.attributes = vec![("value".into(), Attribute::Ints(values.to_vec()))];
        o
    };
    let with_ints = |mut o: OpNode, name: &str, values: &[i64]| {
        o.attributes.push((name.into(), Attribute::Ints(values.to_vec())));
        o
    };
    let ops = vec![
        op("qkv", "MatMul", &["x", "qkv.w"], &["q0"]),
        op("qkv_bias", "Add", &["q0", "qkv.b"], &["q1"]),
        constant("shape", &[0, -1, 3, 2, 4]),
        op("split", "Reshape", &["q1", "shape"], &["r"]),
        with_ints(op("heads", "Transpose", &["r"], &["t"]), "perm", &[2, 0, 3, 1, 4]),
        constant("i0", &[0]),
        constant("i1", &[1]),
        constant("i2", &[2]),
        op("q", "Gather", &["t", "i0"], &["q"]),
        op("k", "Gather", &["t", "i1"], &["k"]),
        op("v", "Gather", &["t", "i2"], &["v"]),
        with_ints(op("kt", "Transpose", &["k"], &["kt"]), "perm", &[0, 1, 3, 2]),
        op("scores", "MatMul", &["q", "kt"], &["s"]),
        op("softmax", "Softmax", &["s"], &["a"]),
        op("mix", "MatMul", &["a", "v"], &["o"]),
        with_ints(op("merge", "Transpose", &["o"], &["ot"]), "perm", &[0, 2, 1, 3]),
        constant("shape2", &[0, -1, 8]),
        op("flat", "Reshape", &["ot", "shape2"], &["flat"]),
        op("proj", "MatMul", &["flat", "proj.w"], &["p"]),
        op("proj_bias", "Add", &["p", "proj.b"], &["out"]),
    ];
    let store = TensorStore::new("attn.onnx", Format::Onnx, tensors).unwrap().with_ops(ops);
    let (arch, g) = assert_real_structure(&store);
    assert_eq!(g.num_parameters(), store.num_parameters());
    let (proj, layer) = layer_named(&arch, "proj");
    let Input::Layer(v) = layer.input else { panic!("{:?}", layer.input) };
    assert!(v < proj);
    assert!(
        matches!(arch.layers[v].kind, LayerKind::Slice { start: 16, len: 8, features_in: 24 }),
        "{:?}",
        arch.layers[v]
    );
}

/// torch's TorchScript ONNX exporter writes `x.chunk(2, 1)` as `Slice`s whose end bound is
/// computed from the activation's shape (`Shape -> Gather(1) -> Div(2) -> Mul`): folded from the
/// known channel count, each slice is half the channels, so the C2f block's bottlenecks read 4
/// channels each and every weight is placed (before: 0.2% of a YOLO-sized export encoded).
#[test]
fn torch_chunk_export_with_shape_computed_bounds_is_a_channel_split() {
    let store = open_graph_fixture("c2f_chunk_torch.onnx");
    let (arch, g) = assert_real_structure(&store);
    let slices: Vec<_> = arch.layers.iter().filter(|l| matches!(l.kind, LayerKind::Slice { .. })).collect();
    assert_eq!(slices.len(), 2, "{:?}", kinds(&arch));
    for s in &slices {
        let LayerKind::Slice { len, features_in, .. } = s.kind else { unreachable!() };
        assert_eq!((len, features_in), (4, 8), "{}", s.name);
    }
    // 8 convs: stem, C2f's cv1, 2 bottlenecks x (cv1, cv2), C2f's cv2, head.
    assert_eq!(arch.layers.iter().filter(|l| l.kind.name() == "conv2d").count(), 8);
    assert!(g.num_parameters() > 0);
}
