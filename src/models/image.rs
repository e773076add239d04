//! Image baselines for the seed study (`crate::study`): an MLP and a small CNN that classify the
//! image itself (where the GMN classifies the image's INR). Both return the activation after
//! every layer, flattened per example, so CKA can compare them with the GMN's layers.
//!
//! Defaults (the study configs may override them):
//! - [`ImageMlp`]: `784 -> 128 -> 64 -> 10`, ReLU after every hidden layer; recorded layers: each
//!   hidden layer after its ReLU, then the logits.
//! - [`ImageCnn`]: `conv3x3(1 -> 16) -> ReLU -> maxpool 2 -> conv3x3(16 -> 32) -> ReLU -> maxpool 2
//!   -> linear(32*7*7 -> 64) -> ReLU -> linear(64 -> 10)` (3x3 convolutions with padding 1);
//!   recorded layers: each conv block after its pooling, the hidden linear after its ReLU, the
//!   logits.
//!
//! Initialisation is drawn from our own seeded stream (as in [`super::init`]), so a model is a
//! pure function of its seed: different seeds are the only difference between study runs.

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use super::init::Dense;
use crate::rng::SplitMix64;

/// Default hidden widths of [`ImageMlp`].
pub const MLP_HIDDEN: [usize; 2] = [128, 64];
/// Default channel counts of [`ImageCnn`]'s conv blocks and its hidden linear width.
pub const CNN_CHANNELS: [usize; 2] = [16, 32];
pub const CNN_HIDDEN: usize = 64;

/// A multi-layer perceptron on the flattened image.
#[derive(Module, Debug)]
pub struct ImageMlp {
    layers: Vec<Dense>,
}

impl ImageMlp {
    /// `inputs -> hidden[0] -> ... -> outputs`, ReLU between layers.
    pub fn new(seed: u64, inputs: usize, hidden: &[usize], outputs: usize, device: &Device) -> Result<Self, String> {
        if inputs == 0 || outputs == 0 || hidden.contains(&0) {
            return Err(format!("MLP widths must be positive (inputs {inputs}, hidden {hidden:?}, outputs {outputs})"));
        }
        let mut rng = SplitMix64::new(seed ^ 0x696d_675f_6d6c_7030);
        let mut widths = vec![inputs];
        widths.extend_from_slice(hidden);
        widths.push(outputs);
        let layers = widths.windows(2).map(|w| Dense::new(&mut rng, w[0], w[1], true, device)).collect();
        Ok(Self { layers })
    }

    /// Names of the recorded layers, in [`ImageMlp::forward_layers`] order.
    pub fn layer_names(&self) -> Vec<String> {
        let last = self.layers.len().saturating_sub(1);
        (0..self.layers.len()).map(|i| if i == last { "logits".into() } else { format!("fc{}", i + 1) }).collect()
    }

    /// `x: [B, inputs]` -> the activation after every layer (`[B, width]`); the last is the logits.
    pub fn forward_layers(&self, x: Tensor<2>) -> Vec<Tensor<2>> {
        let last = self.layers.len().saturating_sub(1);
        let mut out = Vec::with_capacity(self.layers.len());
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward2(x);
            if i < last {
                x = relu(x);
            }
            out.push(x.clone());
        }
        out
    }
}

/// One 3x3 convolution (padding 1) with bias.
#[derive(Module, Debug)]
pub struct Conv3x3 {
    weight: Param<Tensor<4>>,
    bias: Param<Tensor<1>>,
}

impl Conv3x3 {
    /// PyTorch's default init: uniform in `±1/sqrt(c_in * 9)`.
    fn new(rng: &mut SplitMix64, c_in: usize, c_out: usize, device: &Device) -> Self {
        let bound = 1.0 / ((c_in * 9) as f32).sqrt();
        let w: Vec<f32> = (0..c_out * c_in * 9).map(|_| rng.uniform(-bound, bound)).collect();
        let b: Vec<f32> = (0..c_out).map(|_| rng.uniform(-bound, bound)).collect();
        Self {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [c_out, c_in, 3, 3]), device)),
            bias: Param::from_tensor(Tensor::from_data(TensorData::new(b, [c_out]), device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(x, self.weight.val(), Some(self.bias.val()), ConvOptions::new([1, 1], [1, 1], [1, 1], 1))
    }
}

/// A small convolutional network on the `side x side` image (one channel).
#[derive(Module, Debug)]
pub struct ImageCnn {
    convs: Vec<Conv3x3>,
    hidden: Dense,
    out: Dense,
    #[module(skip)]
    side: usize,
}

impl ImageCnn {
    /// Conv blocks with `channels[i]` output channels (each halves the side by max pooling), a
    /// hidden linear layer of `hidden` units and `outputs` logits.
    pub fn new(
        seed: u64,
        side: usize,
        channels: &[usize],
        hidden: usize,
        outputs: usize,
        device: &Device,
    ) -> Result<Self, String> {
        if channels.is_empty() || channels.contains(&0) || hidden == 0 || outputs == 0 {
            return Err(format!(
                "CNN sizes must be positive (channels {channels:?}, hidden {hidden}, outputs {outputs})"
            ));
        }
        let final_side = side.checked_shr(channels.len() as u32).unwrap_or(0);
        if final_side == 0 {
            return Err(format!("{side}x{side} images are too small for {} pooling stages", channels.len()));
        }
        let mut rng = SplitMix64::new(seed ^ 0x696d_675f_636e_6e30);
        let mut c_in = 1;
        let mut convs = Vec::with_capacity(channels.len());
        for &c in channels {
            convs.push(Conv3x3::new(&mut rng, c_in, c, device));
            c_in = c;
        }
        let flat = c_in * final_side * final_side;
        let hidden_layer = Dense::new(&mut rng, flat, hidden, true, device);
        let out = Dense::new(&mut rng, hidden, outputs, true, device);
        Ok(Self { convs, hidden: hidden_layer, out, side })
    }

    /// Names of the recorded layers, in [`ImageCnn::forward_layers`] order.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.convs.len()).map(|i| format!("conv{}", i + 1)).collect();
        names.push("fc1".into());
        names.push("logits".into());
        names
    }

    /// `x: [B, side * side]` -> the flattened activation after every layer; the last is the logits.
    pub fn forward_layers(&self, x: Tensor<2>) -> Vec<Tensor<2>> {
        let b = x.dims()[0];
        let mut h: Tensor<4> = x.reshape([b, 1, self.side, self.side]);
        let mut out = Vec::with_capacity(self.convs.len() + 2);
        for conv in &self.convs {
            h = max_pool2d(relu(conv.forward(h)), MaxPoolOptions::new([2, 2]));
            let [_, c, hh, ww] = h.dims();
            out.push(h.clone().reshape([b, c * hh * ww]));
        }
        let flat = out.last().cloned().unwrap_or_else(|| h.clone().reshape([b, self.side * self.side]));
        let hidden = relu(self.hidden.forward2(flat));
        out.push(hidden.clone());
        out.push(self.out.forward2(hidden));
        out
    }
}
