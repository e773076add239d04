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
    assert_eq!(arch.chain_breaks(), 1, "v_proj (4 inputs) cannot follow k_proj (2 outputs): {:?}", arch.notes);
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
