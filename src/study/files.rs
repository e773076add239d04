//! Study outputs on disk: atomic writes (temp file + rename, so an interrupted study never leaves
//! a half-written file that a rerun would trust) and the activation-set files.
//!
//! An activation set is a safetensors file with `layer<i>` (`[n, p_i]` f32, row = probe sample)
//! and `predictions` (`[n]` f32, the predicted class), plus `__metadata__` `layers` = the layer
//! names as a JSON array (`activations::layer_names_metadata`; earlier versions joined them with
//! commas, which `activations::parse_layer_names` still reads). `gmnscope cka` and the app read
//! these files as their named layers (`activations::from_store`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};

use crate::atomic_write::write_atomically;
use crate::checkpoint::writer::OwnedTensor;

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomically(path, |w| std::io::Write::write_all(w, bytes))
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// One model's representations of the probe set and its predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationSet {
    pub names: Vec<String>,
    /// Row-major `[n, p]` per layer.
    pub layers: Vec<(usize, Vec<f32>)>,
    pub predictions: Vec<u8>,
}

impl ActivationSet {
    pub fn n(&self) -> usize {
        self.predictions.len()
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let n = self.n();
        let mut tensors = Vec::with_capacity(self.layers.len() + 1);
        for (i, (p, data)) in self.layers.iter().enumerate() {
            if data.len() != n * p {
                bail!("{}: layer {i} holds {} values, expected {n} x {p}", path.display(), data.len());
            }
            tensors.push(OwnedTensor::f32(format!("layer{i}"), vec![n, *p], data));
        }
        let preds: Vec<f32> = self.predictions.iter().map(|&c| c as f32).collect();
        tensors.push(OwnedTensor::f32("predictions", vec![n], &preds));
        let mut metadata = HashMap::new();
        metadata.insert(
            crate::activations::LAYER_NAMES_KEY.to_string(),
            crate::activations::layer_names_metadata(&self.names),
        );
        let bytes = safetensors_bytes(&tensors, metadata)?;
        write_bytes(path, &bytes)
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| anyhow!("{}: not a safetensors file: {e}", path.display()))?;
        let names: Vec<String> = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(crate::activations::LAYER_NAMES_KEY))
            .map(|s| crate::activations::parse_layer_names(s))
            .ok_or_else(|| anyhow!("{}: no layer names in the metadata", path.display()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow!("{}: not a safetensors file: {e}", path.display()))?;
        let read = |name: &str| -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
            let t = st.tensor(name).map_err(|e| anyhow!("{}: tensor {name}: {e}", path.display()))?;
            if t.dtype() != safetensors::Dtype::F32 {
                bail!("{}: tensor {name} is not f32", path.display());
            }
            let values = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            Ok((t.shape().to_vec(), values))
        };
        let (pshape, preds) = read("predictions")?;
        let n = pshape.first().copied().unwrap_or(0);
        let mut layers = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            let (shape, data) = read(&format!("layer{i}"))?;
            match shape.as_slice() {
                [rows, p] if *rows == n => layers.push((*p, data)),
                _ => bail!("{}: layer{i} has shape {shape:?}, expected [{n}, p]", path.display()),
            }
        }
        let predictions = preds.iter().map(|&v| v.clamp(0.0, 255.0) as u8).collect();
        Ok(Self { names, layers, predictions })
    }
}

/// safetensors bytes with metadata (the project writer has none).
fn safetensors_bytes(tensors: &[OwnedTensor], metadata: HashMap<String, String>) -> anyhow::Result<Vec<u8>> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| anyhow!("tensor {}: {e}", t.name))
        })
        .collect::<anyhow::Result<_>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| anyhow!("cannot serialise activations: {e}"))
}
