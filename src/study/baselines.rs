//! Training the image baselines ([`ImageMlp`], [`ImageCnn`]) with Adam on the images the INRs were
//! fitted to (the zoo's training split), and recording their probe-set activations.
//!
//! Batches are drawn from a per-epoch shuffle seeded by `(seed, epoch)`; the model is initialised
//! from `seed`; so a run is a pure function of its seed on the Flex device. The trained weights
//! are saved (burnpack, atomically) as `model.bpk` in the run directory and reused when present.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData};

use super::files::{ActivationSet, write_bytes};
use crate::models::image::{ImageCnn, ImageMlp};

/// Images as model input: `pixels` is `[n, side * side]` in `[0, 1]`.
pub struct ImageBatch<'a> {
    pub pixels: &'a [f32],
    pub labels: &'a [u8],
    pub side: usize,
}

impl ImageBatch<'_> {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn rows(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let d = self.side * self.side;
        let mut values = Vec::with_capacity(indices.len() * d);
        for &i in indices {
            values.extend_from_slice(&self.pixels[i * d..(i + 1) * d]);
        }
        Tensor::from_data(TensorData::new(values, [indices.len(), d]), device)
    }
}

/// A baseline family: how to build, run and persist one of its models.
pub trait Baseline: Module {
    fn forward_layers(&self, x: Tensor<2>) -> Vec<Tensor<2>>;
    fn layer_names(&self) -> Vec<String>;
}

impl Baseline for ImageMlp {
    fn forward_layers(&self, x: Tensor<2>) -> Vec<Tensor<2>> {
        ImageMlp::forward_layers(self, x)
    }
    fn layer_names(&self) -> Vec<String> {
        ImageMlp::layer_names(self)
    }
}

impl Baseline for ImageCnn {
    fn forward_layers(&self, x: Tensor<2>) -> Vec<Tensor<2>> {
        ImageCnn::forward_layers(self, x)
    }
    fn layer_names(&self) -> Vec<String> {
        ImageCnn::layer_names(self)
    }
}

/// Training settings of one baseline run.
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

/// Trains `model` (built on an autodiff device) on `train`; `progress(epoch, loss)` after each epoch.
pub fn train<M: Baseline>(
    mut model: M,
    train: &ImageBatch<'_>,
    settings: &TrainSettings,
    device: &Device,
    progress: &mut dyn FnMut(usize, f64),
) -> anyhow::Result<M> {
    let n = train.len();
    if n == 0 {
        return Err(anyhow!("no training images"));
    }
    let mut optim = AdamConfig::new().init();
    for epoch in 0..settings.epochs {
        let order = crate::data::split::permutation(n, settings.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9));
        let (mut loss_sum, mut batches) = (0.0f64, 0usize);
        for chunk in order.chunks(settings.batch_size.max(1)) {
            let x = train.rows(chunk, device);
            let labels: Vec<i64> = chunk.iter().map(|&i| train.labels[i] as i64).collect();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [chunk.len()]), device);
            let logits = model.forward_layers(x).pop().ok_or_else(|| anyhow!("the model has no layers"))?;
            let loss = cross_entropy(logits, targets);
            let value = loss.clone().into_data().try_into_vec_as::<f32>().ok().and_then(|v| v.first().copied());
            let value = value.map_or(f64::NAN, f64::from);
            if !value.is_finite() {
                return Err(anyhow!(
                    "training diverged (loss {value}) in epoch {}; lower the learning rate",
                    epoch + 1
                ));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(settings.lr, model, grads);
            loss_sum += value;
            batches += 1;
        }
        progress(epoch + 1, loss_sum / batches.max(1) as f64);
    }
    Ok(model)
}

/// Mean cross-entropy of `logits [B, C]` against class indices.
fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let b = logits.dims()[0];
    let picked = log_softmax(logits, 1).gather(1, targets.reshape([b, 1]));
    picked.mean().neg()
}

/// Runs `model` on the probe images: every layer's activations and the predicted classes.
pub fn activations<M: Baseline>(model: &M, probe: &ImageBatch<'_>, device: &Device) -> anyhow::Result<ActivationSet> {
    let model = model.valid();
    let names = Baseline::layer_names(&model);
    let mut layers: Vec<(usize, Vec<f32>)> = vec![(0, Vec::new()); names.len()];
    let mut predictions = Vec::with_capacity(probe.len());
    let all: Vec<usize> = (0..probe.len()).collect();
    for chunk in all.chunks(128) {
        let outs = Baseline::forward_layers(&model, probe.rows(chunk, device));
        for (slot, t) in layers.iter_mut().zip(outs) {
            slot.0 = t.dims()[1];
            slot.1.extend(to_vec(t)?);
        }
        let (classes, logits) = layers.last().map(|(p, v)| (*p, v)).ok_or_else(|| anyhow!("no layers"))?;
        let start = predictions.len() * classes;
        for row in logits[start..].chunks(classes.max(1)) {
            predictions.push(crate::train::metrics::argmax(row) as u8);
        }
    }
    Ok(ActivationSet { names, layers, predictions })
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> anyhow::Result<Vec<f32>> {
    t.into_data().try_into_vec_as::<f32>().map_err(|e| anyhow!("cannot read a tensor back: {e:?}"))
}

/// Saves the weights as burnpack bytes (atomically).
pub fn save<M: Module>(model: &M, path: &Path) -> anyhow::Result<()> {
    let mut store = BurnpackStore::from_bytes(None);
    model.save_into(&mut store).map_err(|e| anyhow!("{}: cannot serialise the model: {e}", path.display()))?;
    let bytes = store.get_bytes().map_err(|e| anyhow!("{}: cannot serialise the model: {e}", path.display()))?;
    write_bytes(path, &bytes)
}

/// Loads weights saved by [`save`] into `model` (built with the same shape).
pub fn load<M: Module>(mut model: M, path: &Path) -> anyhow::Result<M> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)));
    let result =
        model.load_from(&mut store).map_err(|e| anyhow!("{}: not a model of this shape: {e}", path.display()))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(anyhow!("{}: does not match the configured model; delete it to retrain", path.display()));
    }
    Ok(model)
}
