//! Fitting SIREN INRs to images, many at once, with burn (feature `burn`).
//!
//! Owns:
//! - [`init`]: SIREN initial weights, drawn on the host per INR from `(seed, image index)`, so an
//!   INR's start does not depend on which batch it lands in (resume and batch size change nothing);
//! - [`batch`]: B SIRENs as ONE batched model (`W1 [B,2,32]`, `W2 [B,32,32]`, `W3 [B,32,1]` and
//!   biases, stored transposed for `x W`), trained with hand-written Adam on plain tensors; INRs
//!   that reach the target PSNR are taken out of the batch (their weights are final), so the
//!   batch shrinks and the remaining ones run faster;
//! - [`zoo_fit`]: fitting an image set into a zoo directory (`data::zoo::native` format), batch by
//!   batch, with progress events, a cancel flag, atomic writes and resume.
//!
//! The recipe is DWSNets' (shared/papers.md §6): SIREN 2-32-32-1, omega_0 = 30 in both sine
//! layers, coordinates `linspace(-1, 1, 28)` per axis (`indexing="ij"`, see `data::siren`),
//! linear output + 0.5, targets = pixel / 255, per-INR MSE, Adam lr 5e-4, at most 1,000 steps,
//! early stop at 40 dB. Each INR's loss is its own mean over pixels and the batch loss is their
//! SUM, so every INR gets exactly the gradient it would get alone (Adam is per element).
//!
//! Must not import: `ui`, `train`, `models`.

pub mod batch;
pub mod fused;
pub mod init;
pub mod zoo_fit;

pub use batch::{FitProgress, FittedInr, fit_batch};
pub use fused::fit_batch_fused;
pub use init::Recipe;
pub use zoo_fit::{ZooFitConfig, ZooFitEvent, ZooFitSummary, fit_zoo};

/// Hyperparameters of one fit.
#[derive(Clone, Debug, PartialEq)]
pub struct FitConfig {
    /// Maximum optimisation steps per INR.
    pub steps: usize,
    pub lr: f64,
    pub omega_0: f32,
    /// Added to the linear output (DWSNets: 0.5, so a zero network draws mid-grey).
    pub output_offset: f32,
    pub hidden: usize,
    /// An INR whose PSNR reaches this (dB) stops early; `None` runs every INR for `steps`.
    pub target_psnr: Option<f64>,
    /// Seed of the initial weights (mixed with each image's index unless `shared_init`).
    pub seed: u64,
    /// Start every INR from the same initial weights (drawn from `seed` alone) instead of one
    /// draw per image. Fits from a shared start stay close to it, so the weights of similar
    /// images stay similar and weight-space classification gets much easier; independent
    /// starts (the default, as DWSNets) make the task depend on the permutation symmetry.
    pub shared_init: bool,
    /// Which implementation runs the fit (the recipe and the results are the same).
    pub engine: FitEngine,
    /// How the INRs are initialised ([`Recipe`]).
    pub recipe: Recipe,
}

/// The two implementations of one fitting recipe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FitEngine {
    /// Hand-fused CPU kernels on every core ([`fused`]): the fast choice without a GPU.
    #[default]
    Cpu,
    /// burn on the device given to [`fit_zoo`] ([`batch`]): for GPUs (wgpu).
    Burn,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            lr: 5e-4,
            omega_0: 30.0,
            output_offset: 0.5,
            hidden: 32,
            target_psnr: Some(40.0),
            seed: 0,
            shared_init: false,
            engine: FitEngine::Cpu,
            recipe: Recipe::Dwsnets,
        }
    }
}

/// What can stop a fit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Data(#[from] crate::data::Error),
}
