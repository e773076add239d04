//! An optional system BLAS (OpenBLAS), loaded at run time, for the big `A^T B` products.
//!
//! Why: on this project's 2-core reference machine Debian's OpenBLAS `sgemm` runs at ~188 GFLOP/s
//! against ~144-177 for the pure-Rust `gemm` crate, and the CKA matrix is GEMM-bound. Why at run
//! time: no link-time dependency, so the crate builds and runs without any BLAS installed
//! (`scripts/setup.sh` installs `libopenblas0-pthread`); without one, `gemm` is used.
//!
//! `GMNSCOPE_BLAS=off` forces the `gemm` crate; `GMNSCOPE_BLAS=/path/to/libopenblas.so` picks a
//! library. Only libraries exporting the CBLAS `cblas_?gemm` and `cblas_?syrk` symbols are used
//! (`?syrk` computes a symmetric `X^T X` at about half the work of a GEMM).

use std::ffi::{c_double, c_float, c_int};
use std::sync::OnceLock;

const COL_MAJOR: c_int = 102;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;
const UPPER: c_int = 121;

/// `cblas_?gemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`.
type Gemm<T> = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    T,
    *const T,
    c_int,
    *const T,
    c_int,
    T,
    *mut T,
    c_int,
);

/// `cblas_?syrk(order, uplo, trans, n, k, alpha, a, lda, beta, c, ldc)`.
type Syrk<T> = unsafe extern "C" fn(c_int, c_int, c_int, c_int, c_int, T, *const T, c_int, T, *mut T, c_int);

/// A loaded CBLAS library.
pub(crate) struct Blas {
    sgemm: Gemm<c_float>,
    dgemm: Gemm<c_double>,
    ssyrk: Syrk<c_float>,
    dsyrk: Syrk<c_double>,
    pub(crate) name: String,
    // Keeps the symbols valid for the life of the process.
    _lib: libloading::Library,
}

const CANDIDATES: [&str; 3] = ["libopenblas.so.0", "libopenblas.so", "libblis.so.4"];

fn load(name: &str) -> Option<Blas> {
    // SAFETY: loading a shared library runs its initialisers; these are system BLAS libraries
    // chosen by name (or by the user through GMNSCOPE_BLAS), and we only read four symbols.
    unsafe {
        let lib = libloading::Library::new(name).ok()?;
        let sgemm = *lib.get::<Gemm<c_float>>(b"cblas_sgemm\0").ok()?;
        let dgemm = *lib.get::<Gemm<c_double>>(b"cblas_dgemm\0").ok()?;
        let ssyrk = *lib.get::<Syrk<c_float>>(b"cblas_ssyrk\0").ok()?;
        let dsyrk = *lib.get::<Syrk<c_double>>(b"cblas_dsyrk\0").ok()?;
        Some(Blas { sgemm, dgemm, ssyrk, dsyrk, name: name.to_string(), _lib: lib })
    }
}

/// The system BLAS, if one is installed and not disabled (looked up once).
pub(crate) fn get() -> Option<&'static Blas> {
    static BLAS: OnceLock<Option<Blas>> = OnceLock::new();
    BLAS.get_or_init(|| match std::env::var("GMNSCOPE_BLAS") {
        Ok(v) if v == "off" || v == "0" => None,
        Ok(path) if !path.is_empty() => load(&path),
        _ => CANDIDATES.iter().find_map(|name| load(name)),
    })
    .as_ref()
}

/// Which element types the BLAS path takes, and their CBLAS routines.
pub(crate) trait BlasReal: Copy {
    const ZERO: Self;
    const ONE: Self;
    fn gemm(blas: &Blas) -> Gemm<Self>;
    fn syrk(blas: &Blas) -> Syrk<Self>;
}

impl BlasReal for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn gemm(blas: &Blas) -> Gemm<Self> {
        blas.sgemm
    }
    fn syrk(blas: &Blas) -> Syrk<Self> {
        blas.ssyrk
    }
}

impl BlasReal for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn gemm(blas: &Blas) -> Gemm<Self> {
        blas.dgemm
    }
    fn syrk(blas: &Blas) -> Syrk<Self> {
        blas.dsyrk
    }
}

/// CBLAS takes `int` dimensions: larger problems stay on the `gemm` crate.
fn dims(values: [usize; 6]) -> Option<[c_int; 6]> {
    let mut out = [0; 6];
    for (o, v) in out.iter_mut().zip(values) {
        *o = c_int::try_from(v).ok()?;
    }
    Some(out)
}

/// `C (+)= A^T B`, column-major `C` (`m x n`, leading dimension `ldc`); `a` is the `k x m`
/// row-major block with row stride `lda`, `b` the `k x n` one with row stride `ldb`. Returns
/// false (nothing done) when a dimension does not fit CBLAS's `int`.
///
/// # Safety
/// The caller guarantees every element read or written lies inside the allocations.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn at_b<T: BlasReal>(
    blas: &Blas,
    m: usize,
    n: usize,
    k: usize,
    a: *const T,
    lda: usize,
    b: *const T,
    ldb: usize,
    c: *mut T,
    ldc: usize,
    accumulate: bool,
) -> bool {
    let Some([m, n, k, lda, ldb, ldc]) = dims([m, n, k, lda, ldb, ldc]) else { return false };
    // Row-major `a` (k x m, stride lda) read column-major is `A^T` (m x k): no transpose.
    // Row-major `b` (k x n, stride ldb) read column-major is `B^T` (n x k): transpose.
    let beta = if accumulate { T::ONE } else { T::ZERO };
    // SAFETY: forwarded from the caller's contract.
    unsafe { T::gemm(blas)(COL_MAJOR, NO_TRANS, TRANS, m, n, k, T::ONE, a, lda, b, ldb, beta, c, ldc) };
    true
}

/// `C (+)= A^T A`, upper triangle only (the strict lower triangle of `C` is left untouched),
/// column-major `C` (`m x m`, leading dimension `ldc`); `a` is the `k x m` row-major block with
/// row stride `lda`. Returns false (nothing done) when a dimension does not fit CBLAS's `int`.
///
/// # Safety
/// The caller guarantees every element read or written lies inside the allocations.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn at_a_upper<T: BlasReal>(
    blas: &Blas,
    m: usize,
    k: usize,
    a: *const T,
    lda: usize,
    c: *mut T,
    ldc: usize,
    accumulate: bool,
) -> bool {
    let Some([m, k, lda, ldc, ..]) = dims([m, k, lda, ldc, 0, 0]) else { return false };
    // Row-major `a` read column-major is `A^T` (m x k), so `A^T A` is syrk's `op(A) op(A)^T`
    // with no transpose.
    let beta = if accumulate { T::ONE } else { T::ZERO };
    // SAFETY: forwarded from the caller's contract.
    unsafe { T::syrk(blas)(COL_MAJOR, UPPER, NO_TRANS, m, k, T::ONE, a, lda, beta, c, ldc) };
    true
}
