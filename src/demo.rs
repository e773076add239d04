//! The embedded default: small demo models that gmnscope generates itself, so the app and the
//! CLI work on a fresh machine with no files and no network.
//!
//! Each model is built deterministically (fixed seeds), serialised to safetensors bytes with
//! real-world tensor names, and opened through the normal safetensors reader — the demo exercises
//! exactly the code path a user's file takes.

use crate::checkpoint::writer::{OwnedTensor, to_safetensors_bytes};
use crate::checkpoint::{self, Blob, TensorStore};
use crate::rng::SplitMix64;

/// The demo models, in the order the app lists them.
pub const MODELS: [&str; 3] = ["siren", "resnet", "transformer"];

/// The pseudo-path under which a demo model is shown (it does not exist on disk).
pub fn demo_path(name: &str) -> std::path::PathBuf {
    format!("<embedded>/demo_{name}.safetensors").into()
}

/// Tensors of one demo model, or `None` for an unknown name.
pub fn tensors(name: &str) -> Option<Vec<OwnedTensor>> {
    match name {
        "siren" => Some(siren(&mut SplitMix64::new(1))),
        "resnet" => Some(resnet(&mut SplitMix64::new(2))),
        "transformer" => Some(transformer(&mut SplitMix64::new(3))),
        _ => None,
    }
}

/// Opens a demo model through the safetensors reader.
pub fn open(name: &str) -> checkpoint::Result<TensorStore> {
    let path = demo_path(name);
    let tensors = tensors(name).ok_or_else(|| checkpoint::Error::new(&path, "no such demo model"))?;
    checkpoint::safetensors::read(&path, Blob::from_vec(to_safetensors_bytes(&tensors)))
}

fn uniform(rng: &mut SplitMix64, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-bound, bound)).collect()
}

fn linear(rng: &mut SplitMix64, name: &str, input: usize, output: usize, bound: f32) -> [OwnedTensor; 2] {
    [
        OwnedTensor::f32(format!("{name}.weight"), vec![output, input], &uniform(rng, input * output, bound)),
        OwnedTensor::f32(format!("{name}.bias"), vec![output], &uniform(rng, output, bound)),
    ]
}

/// SIREN 2-32-32-1 with the DWSNets key names (`seq.{0,1,2}.{weight,bias}`), SIREN init
/// (first layer U(-1/in, 1/in), later layers U(-sqrt(6/in)/omega0, +)).
fn siren(rng: &mut SplitMix64) -> Vec<OwnedTensor> {
    const OMEGA0: f32 = 30.0;
    let widths = [2usize, 32, 32, 1];
    let mut out = Vec::new();
    for (i, w) in widths.windows(2).enumerate() {
        let bound = if i == 0 { 1.0 / w[0] as f32 } else { (6.0 / w[0] as f32).sqrt() / OMEGA0 };
        out.extend(linear(rng, &format!("seq.{i}"), w[0], w[1], bound));
    }
    out
}

/// BatchNorm2d parameters and buffers, PyTorch names.
fn batch_norm(rng: &mut SplitMix64, name: &str, channels: usize) -> Vec<OwnedTensor> {
    let gamma: Vec<f32> = (0..channels).map(|_| 1.0 + 0.1 * rng.normal()).collect();
    let beta: Vec<f32> = (0..channels).map(|_| 0.1 * rng.normal()).collect();
    let mean: Vec<f32> = (0..channels).map(|_| 0.05 * rng.normal()).collect();
    let var: Vec<f32> = (0..channels).map(|_| 1.0 + 0.1 * rng.uniform(0.0, 1.0)).collect();
    vec![
        OwnedTensor::f32(format!("{name}.weight"), vec![channels], &gamma),
        OwnedTensor::f32(format!("{name}.bias"), vec![channels], &beta),
        OwnedTensor::f32(format!("{name}.running_mean"), vec![channels], &mean),
        OwnedTensor::f32(format!("{name}.running_var"), vec![channels], &var),
        OwnedTensor {
            name: format!("{name}.num_batches_tracked"),
            dtype: checkpoint::DType::I64,
            shape: vec![],
            bytes: 100i64.to_le_bytes().to_vec(),
        },
    ]
}

fn conv(rng: &mut SplitMix64, name: &str, input: usize, output: usize, k: usize) -> OwnedTensor {
    let bound = (6.0 / (input * k * k) as f32).sqrt();
    OwnedTensor::f32(format!("{name}.weight"), vec![output, input, k, k], &uniform(rng, output * input * k * k, bound))
}

/// A small ResNet for 1-channel images (torchvision names): stem conv+BN, a BasicBlock at 8
/// channels, a BasicBlock 8->16 with a 1x1 `downsample` shortcut, then global pooling and `fc`.
fn resnet(rng: &mut SplitMix64) -> Vec<OwnedTensor> {
    let mut out = vec![conv(rng, "conv1", 1, 8, 3)];
    out.extend(batch_norm(rng, "bn1", 8));
    for (block, (cin, cout)) in [(8usize, 8usize), (8, 16)].into_iter().enumerate() {
        let p = format!("layer{}.0", block + 1);
        out.push(conv(rng, &format!("{p}.conv1"), cin, cout, 3));
        out.extend(batch_norm(rng, &format!("{p}.bn1"), cout));
        out.push(conv(rng, &format!("{p}.conv2"), cout, cout, 3));
        out.extend(batch_norm(rng, &format!("{p}.bn2"), cout));
        if cin != cout {
            out.push(conv(rng, &format!("{p}.downsample.0"), cin, cout, 1));
            out.extend(batch_norm(rng, &format!("{p}.downsample.1"), cout));
        }
    }
    out.extend(linear(rng, "fc", 16, 10, 0.25));
    out
}

fn layer_norm(name: &str, dim: usize) -> [OwnedTensor; 2] {
    [
        OwnedTensor::f32(format!("{name}.weight"), vec![dim], &vec![1.0; dim]),
        OwnedTensor::f32(format!("{name}.bias"), vec![dim], &vec![0.0; dim]),
    ]
}

/// A two-layer BERT-style encoder (Hugging Face names), hidden 16, 4x feed-forward, vocab 64.
fn transformer(rng: &mut SplitMix64) -> Vec<OwnedTensor> {
    let (vocab, max_pos, hidden, ffn) = (64usize, 32usize, 16usize, 64usize);
    let mut out = vec![
        OwnedTensor::f32("embeddings.word_embeddings.weight", vec![vocab, hidden], &uniform(rng, vocab * hidden, 0.1)),
        OwnedTensor::f32(
            "embeddings.position_embeddings.weight",
            vec![max_pos, hidden],
            &uniform(rng, max_pos * hidden, 0.1),
        ),
    ];
    out.extend(layer_norm("embeddings.LayerNorm", hidden));
    let bound = (1.0 / hidden as f32).sqrt();
    for layer in 0..2 {
        let p = format!("encoder.layer.{layer}");
        for proj in ["query", "key", "value"] {
            out.extend(linear(rng, &format!("{p}.attention.self.{proj}"), hidden, hidden, bound));
        }
        out.extend(linear(rng, &format!("{p}.attention.output.dense"), hidden, hidden, bound));
        out.extend(layer_norm(&format!("{p}.attention.output.LayerNorm"), hidden));
        out.extend(linear(rng, &format!("{p}.intermediate.dense"), hidden, ffn, bound));
        out.extend(linear(rng, &format!("{p}.output.dense"), ffn, hidden, (1.0 / ffn as f32).sqrt()));
        out.extend(layer_norm(&format!("{p}.output.LayerNorm"), hidden));
    }
    out.extend(linear(rng, "pooler.dense", hidden, hidden, bound));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_models_are_deterministic_and_have_expected_sizes() {
        let count = |name: &str| tensors(name).unwrap().iter().map(|t| t.bytes.len() / 4).sum::<usize>();
        // SIREN 2-32-32-1: 2*32+32 + 32*32+32 + 32+1 = 1,185 parameters (papers.md §6).
        assert_eq!(count("siren"), 1185);
        let a = to_safetensors_bytes(&tensors("resnet").unwrap());
        let b = to_safetensors_bytes(&tensors("resnet").unwrap());
        assert_eq!(a, b, "same seed, same bytes");
        assert!(tensors("nope").is_none());
    }
}
