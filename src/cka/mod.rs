//! Centred kernel alignment (CKA) between layer activations (papers.md §5).
//!
//! Owns: the estimators — linear CKA (biased HSIC), debiased linear CKA (unbiased HSIC), RBF CKA
//! (bandwidth = t x median distance) — layer-by-layer matrices ([`cka_matrix`]) and the streaming
//! [`MinibatchCka`] accumulator. Must not import: `ui`, `checkpoint` (callers turn files into
//! [`ActivationsView`]s; this module only sees row-major f32 or f64 `n x p` matrices).
//!
//! How the work is organised:
//! - [`centre`]: column means in f64, NaN/Inf check, power-of-two scaling, once per layer (HSIC
//!   terms stay in these scaled units, so f64 data at 1e300 or 1e-300 neither overflows nor
//!   underflows; a layer is constant relative to its own scale);
//! - [`linear`]: picks feature space (`||Yc^T Xc||_F^2`, never n x n) or the Gram form (n small)
//!   from n and the widths; [`feature`] concatenates layers so the cross products of a whole
//!   matrix are a few large GEMMs, streaming rows so memory does not grow with n, and packs each
//!   row chunk once for both the cross products and the symmetric self products (`?syrk`, half
//!   a GEMM); [`gemm`] runs them on a system BLAS ([`blas`]) or the pure-Rust `gemm` crate;
//! - [`rbf`]: n x n kernels (bounded by [`Options::memory_budget`]);
//! - [`hsic`]: HSIC values -> CKA, with undefined entries for degenerate layers;
//! - [`csv`]: the one CSV dialect of a CKA matrix (every writer and reader uses it).
//!
//! Degenerate input: NaN/Inf, mismatched n, too few examples and oversize RBF problems are
//! [`Error`]s. A constant layer (zero variance) — or, for the unbiased estimator, a layer whose
//! self-HSIC estimate is not positive — has no CKA: its matrix entries are undefined (`None` from
//! [`Matrix::get`]) and [`cka`] returns [`Error::Undefined`]. Debiased CKA may be slightly
//! negative (or above 1) for unrelated layers; that is the estimator, not an error.

mod blas;
mod centre;
pub mod csv;
mod feature;
/// Also used by `compare` (Gram matrices of spectra, assignment profits).
pub(crate) mod gemm;
mod hsic;
pub mod linear;
mod matrix;
mod minibatch;
pub mod rbf;
mod scratch;

pub use matrix::{Activations, ActivationsView, Matrix, Slice, Values};

pub use minibatch::MinibatchCka;

use hsic::HsicTerms;

/// The kernel applied to each layer's examples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    Linear,
    /// Gaussian kernel with sigma = `sigma_frac` x the median pairwise distance of the layer.
    Rbf {
        sigma_frac: f64,
    },
}

impl Kernel {
    pub const DEFAULT_SIGMA_FRAC: f64 = 0.5;

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Linear => "linear",
            Kernel::Rbf { .. } => "rbf",
        }
    }
}

/// Which median of a layer's pairwise distances sets the RBF bandwidth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RbfMedian {
    /// The median of the whole `n x n` distance matrix, its `n` zeros on the diagonal included,
    /// as Kornblith et al.'s reference code takes it (`np.median` of the distance matrix).
    #[default]
    WithDiagonal,
    /// The median over distinct pairs (the off-diagonal entries): a slightly larger sigma for
    /// small `n` (CKA differs by up to ~2e-4 at n = 600).
    OffDiagonal,
}

impl RbfMedian {
    pub fn name(self) -> &'static str {
        match self {
            RbfMedian::WithDiagonal => "with-diagonal",
            RbfMedian::OffDiagonal => "off-diagonal",
        }
    }
}

/// Which HSIC estimator CKA is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimator {
    /// `tr(KHLH) / (n-1)^2` (Gretton et al.); CKA in [0, 1]; n >= 2.
    Biased,
    /// Song et al. 2012, as in debiased CKA; n >= 4.
    Unbiased,
}

impl Estimator {
    pub fn name(self) -> &'static str {
        match self {
            Estimator::Biased => "biased",
            Estimator::Unbiased => "unbiased",
        }
    }

    fn min_examples(self) -> usize {
        match self {
            Estimator::Biased => 2,
            Estimator::Unbiased => 4,
        }
    }
}

/// Element type of the large products. Centring and every sum are f64 in all cases, and f64
/// inputs are computed in f64 whatever is asked (their values were never f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// f64 for small problems (where it costs milliseconds), f32 GEMM for large ones (about 1e-6
    /// relative error on CKA values, see the tests).
    #[default]
    Auto,
    F32,
    F64,
}

/// What to compute and within which limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub kernel: Kernel,
    pub estimator: Estimator,
    pub precision: Precision,
    /// Working memory for products and kernels, in bytes (inputs not counted). Linear CKA fits
    /// any n into it by streaming; RBF CKA fails with [`Error::TooLarge`] when n x n kernels do not fit.
    pub memory_budget: usize,
    /// The RBF bandwidth's median convention.
    pub rbf_median: RbfMedian,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kernel: Kernel::Linear,
            estimator: Estimator::Biased,
            precision: Precision::Auto,
            memory_budget: 1 << 30,
            rbf_median: RbfMedian::WithDiagonal,
        }
    }
}

impl Options {
    pub fn linear() -> Self {
        Self::default()
    }

    pub fn debiased_linear() -> Self {
        Self { estimator: Estimator::Unbiased, ..Self::default() }
    }

    pub fn rbf(sigma_frac: f64) -> Self {
        Self { kernel: Kernel::Rbf { sigma_frac }, ..Self::default() }
    }
}

/// Which of the two compared layer lists a layer belongs to (A = matrix rows, B = columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// Why a CKA could not be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("no layers to compare")]
    NoLayers,
    #[error("activations of {len} values cannot be an {n} x {p} matrix")]
    BadShape { n: usize, p: usize, len: usize, expected: Option<usize> },
    #[error("layer {layer} of {side} has {n} examples, expected {expected} (CKA compares the same examples)")]
    MismatchedExamples { side: Side, layer: usize, n: usize, expected: usize },
    #[error("the {estimator} estimator needs at least {needed} examples, got {n}")]
    TooFewExamples { estimator: &'static str, n: usize, needed: usize },
    #[error("layer {layer} of {side} has a non-finite value ({value}) at example {row}, feature {col}")]
    NonFinite { side: Side, layer: usize, row: usize, col: usize, value: f64 },
    #[error(
        "CKA is undefined: layer {layer} of {side} is constant over the examples \
         (or its unbiased self-HSIC is not positive)"
    )]
    Undefined { side: Side, layer: usize },
    #[error("{what}: needs {needed_bytes} bytes, over the memory budget of {budget_bytes} bytes (use minibatch CKA)")]
    TooLarge { what: String, needed_bytes: u64, budget_bytes: u64 },
    #[error("minibatch has layer widths {got:?} on side {side}, earlier batches had {expected:?}")]
    BatchLayersChanged { side: Side, expected: Vec<usize>, got: Vec<usize> },
    #[error("no minibatch pushed yet")]
    NoBatches,
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// CKA between two layers (the same n examples, any widths).
pub fn cka(x: ActivationsView<'_>, y: ActivationsView<'_>, options: &Options) -> Result<f64> {
    let terms = hsic_terms(&[x], &[y], options)?;
    let matrix = terms.to_matrix();
    matrix.get(0, 0).ok_or_else(|| {
        let side = if terms.row_self[0] > 0.0 { Side::B } else { Side::A };
        Error::Undefined { side, layer: 0 }
    })
}

/// Linear CKA with the biased HSIC estimator.
pub fn linear_cka(x: ActivationsView<'_>, y: ActivationsView<'_>) -> Result<f64> {
    cka(x, y, &Options::linear())
}

/// Linear CKA with the unbiased HSIC estimator (n >= 4).
pub fn debiased_linear_cka(x: ActivationsView<'_>, y: ActivationsView<'_>) -> Result<f64> {
    cka(x, y, &Options::debiased_linear())
}

/// RBF CKA (biased HSIC) with sigma = `sigma_frac` x median pairwise distance.
pub fn rbf_cka(x: ActivationsView<'_>, y: ActivationsView<'_>, sigma_frac: f64) -> Result<f64> {
    cka(x, y, &Options::rbf(sigma_frac))
}

/// The layer-by-layer CKA matrix: rows = layers of `a`, columns = layers of `b`. Passing the same
/// slice twice (CKA of a network with itself) computes each pair once.
pub fn cka_matrix(a: &[ActivationsView<'_>], b: &[ActivationsView<'_>], options: &Options) -> Result<Matrix> {
    Ok(hsic_terms(a, b, options)?.to_matrix())
}

/// Validates the input and computes every HSIC value of the matrix.
pub(crate) fn hsic_terms(a: &[ActivationsView<'_>], b: &[ActivationsView<'_>], options: &Options) -> Result<HsicTerms> {
    let n = matrix::common_n(a, b)?;
    let needed = options.estimator.min_examples();
    if n < needed {
        return Err(Error::TooFewExamples { estimator: options.estimator.name(), n, needed });
    }
    let symmetric = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y));
    match options.kernel {
        Kernel::Linear => {
            linear::linear_terms(a, b, symmetric, options.estimator, options.precision, options.memory_budget)
        }
        Kernel::Rbf { sigma_frac } => {
            if !(sigma_frac > 0.0 && sigma_frac.is_finite()) {
                return Err(Error::InvalidOption(format!("RBF sigma fraction must be positive, got {sigma_frac}")));
            }
            rbf::rbf_terms(a, b, symmetric, sigma_frac, options.rbf_median, options.estimator, options.memory_budget)
        }
    }
}

/// The matrix-product backend the engine uses: a system BLAS loaded at run time, or the
/// pure-Rust `gemm` crate (benchmarks print it next to their figures).
pub fn gemm_backend() -> String {
    match blas::get() {
        Some(b) => format!("system BLAS ({})", b.name),
        None => "gemm crate (pure Rust)".to_string(),
    }
}

/// Measured speed of that backend on one f32 `k x k x k` matrix product (best of three), in
/// GFLOP/s: the peak the CKA engine's throughput is compared with. Takes `3 x 2k^3` flops.
pub fn gemm_peak_gflops(k: usize) -> f64 {
    gemm::measure_gflops(gemm::Backend::detect(), k)
}
