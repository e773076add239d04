//! B SIRENs trained as one batched model (see the module doc of `inr`).
//!
//! Layout: activations are `[B, P, width]` (P = pixels); weights are stored transposed,
//! `[B, in, out]`, so each layer is one batched `matmul` plus a `[B, 1, out]` bias broadcast.
//! Parameters and Adam moments are plain (non-autodiff) tensors; each step wraps the parameters
//! as fresh autodiff leaves, runs forward + backward, and updates them with Adam written out in
//! tensor ops.
//!
//! Early stop without waste: the PSNR of step `s` is measured on the parameters BEFORE update `s`,
//! so an INR that reaches the target leaves the batch with exactly the weights that scored it,
//! and the reported PSNR is the PSNR of the saved weights. Leaving INRs are removed from every
//! tensor (`select` on the batch axis), so the batch keeps shrinking.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::{Error, FitConfig, init};
use crate::data::siren::{self, Dense};

/// Adam's hyperparameters besides the learning rate (PyTorch defaults).
pub(super) const BETA1: f64 = 0.9;
pub(super) const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

/// Reported after every step.
#[derive(Clone, Debug, PartialEq)]
pub struct FitProgress {
    /// Steps done (1-based).
    pub step: usize,
    /// Mean MSE over the INRs still in the batch (before this step's update).
    pub loss: f64,
    /// INRs still training.
    pub active: usize,
    /// INRs of this batch that are finished.
    pub done: usize,
}

/// One fitted INR.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedInr {
    /// Layers with weights `[out, in]` (PyTorch layout), ready for `zoo::native::inr_tensors`.
    pub layers: Vec<Dense>,
    /// PSNR (dB) of exactly these weights against the target image.
    pub psnr: f32,
    /// Optimisation steps it took (< `steps` when it stopped early).
    pub steps: usize,
    /// PSNR of the initial weights, for reports.
    pub initial_psnr: f32,
}

/// Checks a batch for either fitter: every image holds `side * side` pixels and has an index.
/// `Ok(false)` for an empty batch (nothing to fit).
pub(super) fn check_batch(images: &[Vec<f32>], image_indices: &[usize], side: usize) -> Result<bool, Error> {
    let (n, pixels) = (images.len(), side * side);
    if image_indices.len() != n || images.iter().any(|im| im.len() != pixels) {
        return Err(Error::Invalid(format!("{n} images must each hold {pixels} pixels and have an index")));
    }
    Ok(n > 0)
}

/// The index that seeds the initial weights of image `image_index`'s INR: its own, or one index
/// for every image when the zoo uses a shared initialisation.
pub(super) fn init_index(config: &FitConfig, image_index: usize) -> usize {
    if config.shared_init { usize::MAX } else { image_index }
}

/// Number of parameter tensors of a 3-layer SIREN (weight + bias per layer).
const TENSORS: usize = 6;

/// Fits one SIREN per image. `images[k]` holds `side * side` intensities in [0, 1] and
/// `image_indices[k]` seeds its initial weights. `cancel` is checked between steps (then
/// `Err(Cancelled)`); `progress` is called after every step.
pub fn fit_batch(
    images: &[Vec<f32>],
    image_indices: &[usize],
    side: usize,
    config: &FitConfig,
    device: &Device,
    cancel: &crate::jobs::CancelToken,
    progress: &mut dyn FnMut(&FitProgress),
) -> Result<Vec<FittedInr>, Error> {
    let n = images.len();
    let pixels = side * side;
    if !check_batch(images, image_indices, side)? {
        return Ok(Vec::new());
    }
    let h = config.hidden;
    let widths = [2, h, h, 1];
    let inits: Vec<Vec<Dense>> = image_indices
        .iter()
        .map(|&i| init::siren(&widths, config.omega_0, config.recipe, config.seed, init_index(config, i)))
        .collect();

    let mut params: Vec<Tensor<3>> = (0..TENSORS).map(|t| upload_param(&inits, t, device)).collect();
    let mut m: Vec<Tensor<3>> = params.iter().map(Tensor::zeros_like).collect();
    let mut v: Vec<Tensor<3>> = params.iter().map(Tensor::zeros_like).collect();
    let coords: Vec<f32> = siren::grid(side).into_iter().flatten().collect();
    let coords = Tensor::<3>::from_data(TensorData::new(coords, [1, pixels, 2]), device);
    let targets_host: Vec<f32> = images.iter().flatten().copied().collect();
    let mut targets = Tensor::<3>::from_data(TensorData::new(targets_host, [n, pixels, 1]), device);

    // Which original INR each batch row holds, and the results so far.
    let mut rows: Vec<usize> = (0..n).collect();
    let mut results: Vec<Option<FittedInr>> = vec![None; n];
    let mut initial_psnr = vec![0.0f32; n];
    let target_mse = config.target_psnr.map(|db| 10f64.powf(-db / 10.0));

    for step in 0..=config.steps {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let b = rows.len();
        let leaves: Vec<Tensor<3>> = params.iter().map(|p| p.clone().autodiff().require_grad()).collect();
        let x = coords.clone().expand([b, pixels, 2]).autodiff();
        let out = forward(&leaves, x, config.omega_0);
        let diff = out.add_scalar(config.output_offset) - targets.clone().autodiff();
        let mse = diff.square().mean_dim(1); // [b, 1, 1]
        let mse_host = to_vec(mse.clone().inner());
        if mse_host.iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "the loss became {:?} at step {step}",
                mse_host.iter().find(|v| !v.is_finite())
            )));
        }
        if step == 0 {
            for (row, &e) in rows.iter().zip(&mse_host) {
                initial_psnr[*row] = psnr_of(e);
            }
        }

        // Who is finished: reached the target, or out of steps. Their weights are `params` now.
        let finished: Vec<usize> =
            (0..b).filter(|&r| step == config.steps || target_mse.is_some_and(|t| (mse_host[r] as f64) <= t)).collect();
        if !finished.is_empty() {
            let host: Vec<Vec<f32>> = params.iter().map(|p| to_vec(p.clone())).collect();
            for &r in &finished {
                let original = rows[r];
                results[original] = Some(FittedInr {
                    layers: download_inr(&host, r, &widths),
                    psnr: psnr_of(mse_host[r]),
                    steps: step,
                    initial_psnr: initial_psnr[original],
                });
            }
        }
        let loss = mse_host.iter().map(|&e| e as f64).sum::<f64>() / b as f64;
        let keep: Vec<usize> = (0..b).filter(|r| !finished.contains(r)).collect();
        if keep.is_empty() {
            progress(&FitProgress { step, loss, active: 0, done: n });
            break;
        }

        // Adam on the rows that keep training.
        let grads = mse.sum().backward();
        let mut g: Vec<Tensor<3>> = leaves
            .iter()
            .map(|leaf| leaf.grad(&grads).ok_or_else(|| Error::Invalid("a parameter received no gradient".into())))
            .collect::<Result<_, _>>()?;
        if keep.len() < b {
            let index = index_tensor(&keep, device);
            for t in params.iter_mut().chain(m.iter_mut()).chain(v.iter_mut()).chain(g.iter_mut()) {
                *t = t.clone().select(0, index.clone());
            }
            targets = targets.select(0, index);
            rows = keep.iter().map(|&r| rows[r]).collect();
        }
        let t = (step + 1) as i32;
        let step_size = config.lr / (1.0 - BETA1.powi(t));
        let v_correction = 1.0 / (1.0 - BETA2.powi(t));
        for k in 0..TENSORS {
            let grad = g[k].clone();
            m[k] = m[k].clone().mul_scalar(BETA1) + grad.clone().mul_scalar(1.0 - BETA1);
            v[k] = v[k].clone().mul_scalar(BETA2) + grad.square().mul_scalar(1.0 - BETA2);
            let denominator = v[k].clone().mul_scalar(v_correction).sqrt().add_scalar(EPSILON);
            params[k] = params[k].clone() - m[k].clone().mul_scalar(step_size) / denominator;
        }
        progress(&FitProgress { step: step + 1, loss, active: rows.len(), done: n - rows.len() });
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::Invalid("an INR finished without weights (internal error)".into())))
        .collect()
}

/// `sin(omega (x W1 + b1))`, `sin(omega (h W2 + b2))`, `h W3 + b3`: `[B, P, 1]`.
fn forward(p: &[Tensor<3>], x: Tensor<3>, omega_0: f32) -> Tensor<3> {
    let h1 = (x.matmul(p[0].clone()) + p[1].clone()).mul_scalar(omega_0).sin();
    let h2 = (h1.matmul(p[2].clone()) + p[3].clone()).mul_scalar(omega_0).sin();
    h2.matmul(p[4].clone()) + p[5].clone()
}

/// Tensor `t` (0 = W1, 1 = b1, 2 = W2, ...) of every INR: weights transposed to `[B, in, out]`,
/// biases `[B, 1, out]`.
fn upload_param(inits: &[Vec<Dense>], t: usize, device: &Device) -> Tensor<3> {
    let layer = t / 2;
    let (inputs, outputs) = (inits[0][layer].inputs, inits[0][layer].outputs);
    let mut values = Vec::new();
    for inr in inits {
        let l = &inr[layer];
        if t.is_multiple_of(2) {
            values.extend((0..inputs * outputs).map(|k| l.weight[(k % outputs) * inputs + k / outputs]));
        } else {
            values.extend_from_slice(&l.bias);
        }
    }
    let shape = if t.is_multiple_of(2) { [inits.len(), inputs, outputs] } else { [inits.len(), 1, outputs] };
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Row `r` of the downloaded parameter tensors as PyTorch-layout layers.
fn download_inr(host: &[Vec<f32>], r: usize, widths: &[usize]) -> Vec<Dense> {
    widths
        .windows(2)
        .enumerate()
        .map(|(layer, w)| {
            let (inputs, outputs) = (w[0], w[1]);
            let wt = &host[2 * layer][r * inputs * outputs..(r + 1) * inputs * outputs];
            Dense {
                weight: (0..outputs * inputs).map(|k| wt[(k % inputs) * outputs + k / inputs]).collect(),
                bias: host[2 * layer + 1][r * outputs..(r + 1) * outputs].to_vec(),
                inputs,
                outputs,
            }
        })
        .collect()
}

fn index_tensor(rows: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [rows.len()]), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
}

pub(super) fn psnr_of(mse: f32) -> f32 {
    (10.0 * (1.0 / (mse as f64).max(1e-12)).log10()) as f32
}
