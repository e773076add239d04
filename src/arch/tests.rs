//! Unit tests of architecture recovery (name/shape rules); whole-model tests live in
//! `tests/graph_rules.rs`.

use super::*;
use crate::checkpoint::{ByteView, DType, TensorInfo};

fn store(specs: &[(&str, &[usize])]) -> TensorStore {
    let tensors = specs
        .iter()
        .map(|(name, shape)| TensorInfo {
            name: name.to_string(),
            dtype: DType::F32,
            shape: shape.to_vec(),
            data: ByteView::from_vec(vec![0; 4 * shape.iter().product::<usize>()]),
        })
        .collect();
    TensorStore::new("t.safetensors", Format::Safetensors, tensors).unwrap()
}

fn norm_kind(arch: &Architecture, i: usize) -> Option<NormKind> {
    match arch.layers.get(i)?.kind {
        LayerKind::Norm { kind, .. } => Some(kind),
        _ => None,
    }
}

#[test]
fn norm_kinds_come_from_names_statistics_and_context() {
    let arch = recover(&store(&[
        ("conv.weight", &[4, 1, 3, 3]),
        ("norm.weight", &[4]),
        ("norm.bias", &[4]),
        ("gn1.weight", &[4]),
        ("gn1.bias", &[4]),
        ("fc.weight", &[3, 4]),
        ("ln_f.weight", &[3]),
        ("ln_f.bias", &[3]),
        ("out_norm.weight", &[3]),
    ]));
    assert_eq!(norm_kind(&arch, 1), Some(NormKind::Batch), "unnamed affine norm after a conv");
    assert_eq!(norm_kind(&arch, 2), Some(NormKind::Group));
    assert_eq!(norm_kind(&arch, 4), Some(NormKind::Layer));
    // A lone 1-D weight counts as a (gamma-only) norm under a norm-like name.
    match &arch.layers[5].kind {
        LayerKind::Norm { kind: NormKind::Layer, gamma: Some(_), beta: None, .. } => {}
        k => panic!("{k:?}"),
    }
    assert!(arch.unrecognized.is_empty());
}

#[test]
fn mismatched_bias_is_not_trusted() {
    let arch = recover(&store(&[("fc.weight", &[3, 4]), ("fc.bias", &[4])]));
    match &arch.layers[0].kind {
        LayerKind::Linear { bias: None, out_features: 3, .. } => {}
        k => panic!("{k:?}"),
    }
    assert_eq!(arch.unrecognized, ["fc.bias"]);
}

#[test]
fn q_k_v_with_mismatched_shapes_fall_back_to_linears() {
    let arch = recover(&store(&[
        ("attn.q_proj.weight", &[4, 4]),
        ("attn.k_proj.weight", &[2, 4]),
        ("attn.v_proj.weight", &[4, 4]),
        ("attn.out_proj.weight", &[4, 4]),
    ]));
    assert!(arch.layers.iter().all(|l| matches!(l.kind, LayerKind::Linear { .. })));
    // v_proj (4 inputs) cannot follow k_proj (2 outputs): it reads what k_proj read (a sibling).
    assert_eq!(arch.chain_breaks(), 0, "{:?}", arch.notes);
    assert_eq!(arch.layers[2].input, arch.layers[1].input);
    assert!(arch.notes.iter().any(|n| n.contains("attn.v_proj") && n.contains("sibling")));
}

#[test]
fn conv1d_and_conv3d_are_recognised_by_rank() {
    let arch = recover(&store(&[("a.weight", &[4, 2, 5]), ("b.weight", &[3, 4, 3, 3, 3]), ("b.bias", &[3])]));
    let dims: Vec<usize> = arch
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Conv { dims, .. } => Some(*dims),
            _ => None,
        })
        .collect();
    assert_eq!(dims, [1, 3]);
    assert_eq!(arch.layers[1].input, Input::Layer(0));
}

#[test]
fn attention_first_in_the_network_has_its_residual_from_the_input() {
    let arch = recover(&store(&[
        ("blocks.0.attn.in_proj_weight", &[12, 4]),
        ("blocks.0.attn.in_proj_bias", &[12]),
        ("blocks.0.attn.out_proj.weight", &[4, 4]),
        ("blocks.0.attn.out_proj.bias", &[4]),
    ]));
    assert_eq!(arch.layers.len(), 2);
    assert_eq!(
        arch.layers[1].kind,
        LayerKind::Residual { from: Input::InputOf(0), block_input: Input::InputOf(0), features: 4 }
    );
}

#[test]
fn prelu_and_layer_scale_are_per_channel_vectors() {
    let arch = recover(&store(&[
        ("conv1.weight", &[4, 3, 3, 3]),
        ("prelu1.weight", &[4]),
        ("blocks.0.ls1.gamma", &[4]),
        ("act.prelu.weight", &[1]),
    ]));
    let roles: Vec<String> = arch.layers.iter().map(|l| l.kind.name()).collect();
    assert_eq!(roles, ["conv2d", "prelu", "layer-scale"]);
    // A single shared slope cannot give each channel its own edge: listed with the reason.
    assert_eq!(arch.unrecognized, ["act.prelu.weight"]);
    let unplaced = arch.unplaced(&store(&[("act.prelu.weight", &[1])]));
    assert!(unplaced[0].reason.contains("shared by all channels"), "{unplaced:?}");
    assert!(!unplaced[0].non_weight);
}

#[test]
fn grouped_convolutions_are_inferred_from_widths() {
    let arch =
        recover(&store(&[("a.weight", &[8, 3, 3, 3]), ("dw.weight", &[8, 1, 3, 3]), ("g.weight", &[4, 4, 1, 1])]));
    let groups: Vec<(usize, usize)> = arch
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Conv { groups, in_channels, .. } => Some((*groups, *in_channels)),
            _ => None,
        })
        .collect();
    assert_eq!(groups, [(1, 3), (8, 8), (2, 8)]);
    assert_eq!(arch.chain_breaks(), 0);
}
