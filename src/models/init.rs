//! Deterministic parameter initialisation from a [`SplitMix64`] stream.
//!
//! burn's initialisers draw from the backend's global RNG, whose order depends on when lazy
//! parameters are first touched (and on which thread). Drawing every initial value from our own
//! seeded stream, in construction order, makes a model a pure function of its seed on every
//! backend: the basis of bit-for-bit repeatable Flex runs.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor, TensorData};

use crate::rng::SplitMix64;

/// `y = x W + b` with `W: [d_in, d_out]`; the GMN's blocks call [`Dense::forward2`] on 2-D
/// views so burn-flex runs one large GEMM per call.
#[derive(Module, Debug)]
pub struct Dense {
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl Dense {
    /// PyTorch's default Linear init: weights and bias uniform in `±1/sqrt(d_in)`.
    pub fn new(rng: &mut SplitMix64, d_in: usize, d_out: usize, bias: bool, device: &Device) -> Self {
        let bound = 1.0 / (d_in.max(1) as f32).sqrt();
        Self {
            weight: Param::from_tensor(uniform(rng, [d_in, d_out], bound, device)),
            bias: bias.then(|| Param::from_tensor(uniform(rng, [d_out], bound, device))),
        }
    }

    /// `x: [m, d_in] -> [m, d_out]`.
    pub fn forward2(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight.val());
        match &self.bias {
            Some(b) => y + b.val().unsqueeze::<2>(),
            None => y,
        }
    }

    /// `x: [a, b, d_in] -> [a, b, d_out]` through a 2-D GEMM.
    pub fn forward3(&self, x: Tensor<3>) -> Tensor<3> {
        let [a, b, d] = x.dims();
        let y = self.forward2(x.reshape([a * b, d]));
        let out = y.dims()[1];
        y.reshape([a, b, out])
    }

    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }
}

/// A bias-free projection matrix `[d_in, d_out]`, uniform in `±1/sqrt(fan_in)` where `fan_in` is
/// the width of the whole (split) input it is part of.
pub fn projection(rng: &mut SplitMix64, d_in: usize, d_out: usize, fan_in: usize, device: &Device) -> Param<Tensor<2>> {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    Param::from_tensor(uniform(rng, [d_in, d_out], bound, device))
}

/// An embedding table `[rows, dim]` with standard-normal entries.
pub fn table(rng: &mut SplitMix64, rows: usize, dim: usize, device: &Device) -> Param<Tensor<2>> {
    let values: Vec<f32> = (0..rows * dim).map(|_| rng.normal()).collect();
    Param::from_tensor(Tensor::from_data(TensorData::new(values, [rows, dim]), device))
}

/// LayerNorm with gamma 1 and beta 0 (nothing random).
pub fn layer_norm(dim: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(dim).init(device)
}

fn uniform<const D: usize>(rng: &mut SplitMix64, shape: [usize; D], bound: f32, device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.uniform(-bound, bound)).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}
