//! An optional system BLAS (OpenBLAS), loaded at run time, for the big `A^T B` products.
//!
//! Why: on this project's 2-core reference machine Debian's OpenBLAS `sgemm` runs at ~188 GFLOP/s
//! against ~144-177 for the pure-Rust `gemm` crate, and the CKA matrix is GEMM-bound. Why at run
//! time: no link-time dependency, so the crate builds and runs without any BLAS installed
//! (`scripts/setup.sh` installs `libopenblas0-pthread`); without one, `gemm` is used.
//!
//! `GMNSCOPE_BLAS=off` forces the `gemm` crate; `GMNSCOPE_BLAS=/path/to/libopenblas.so` picks a
//! library. Only libraries exporting the CBLAS `cblas_sgemm`/`cblas_dgemm` symbols are used.

use std::ffi::{c_double, c_float, c_int};
use std::sync::OnceLock;

const COL_MAJOR: c_int = 102;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_float,
    *const c_float,
    c_int,
    *const c_float,
    c_int,
    c_float,
    *mut c_float,
    c_int,
);
type Dgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_double,
    *const c_double,
    c_int,
    *const c_double,
    c_int,
    c_double,
    *mut c_double,
    c_int,
);

/// A loaded CBLAS library.
pub(crate) struct Blas {
    sgemm: Sgemm,
    dgemm: Dgemm,
    pub(crate) name: String,
    // Keeps the symbols valid for the life of the process.
    _lib: libloading::Library,
}

const CANDIDATES: [&str; 3] = ["libopenblas.so.0", "libopenblas.so", "libblis.so.4"];

fn load(name: &str) -> Option<Blas> {
    // SAFETY: loading a shared library runs its initialisers; these are system BLAS libraries
    // chosen by name (or by the user through GMNSCOPE_BLAS), and we only read two symbols.
    unsafe {
        let lib = libloading::Library::new(name).ok()?;
        let sgemm = *lib.get::<Sgemm>(b"cblas_sgemm\0").ok()?;
        let dgemm = *lib.get::<Dgemm>(b"cblas_dgemm\0").ok()?;
        Some(Blas { sgemm, dgemm, name: name.to_string(), _lib: lib })
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

/// Which element types the BLAS path takes.
pub(crate) trait BlasReal: Sized {
    /// `C (+)= A^T B`, column-major `C` (`m x n`, leading dimension `ldc`); `a` is the `k x m`
    /// row-major block with row stride `lda`, `b` the `k x n` one with row stride `ldb`.
    ///
    /// # Safety
    /// The caller guarantees every element read or written lies inside the allocations.
    #[allow(clippy::too_many_arguments)]
    unsafe fn at_b(
        blas: &Blas,
        m: usize,
        n: usize,
        k: usize,
        a: *const Self,
        lda: usize,
        b: *const Self,
        ldb: usize,
        c: *mut Self,
        ldc: usize,
        accumulate: bool,
    ) -> bool;
}

/// CBLAS takes `int` dimensions: larger problems stay on the `gemm` crate.
fn dims(values: [usize; 6]) -> Option<[c_int; 6]> {
    let mut out = [0; 6];
    for (o, v) in out.iter_mut().zip(values) {
        *o = c_int::try_from(v).ok()?;
    }
    Some(out)
}

macro_rules! blas_real {
    ($t:ty, $field:ident) => {
        impl BlasReal for $t {
            unsafe fn at_b(
                blas: &Blas,
                m: usize,
                n: usize,
                k: usize,
                a: *const Self,
                lda: usize,
                b: *const Self,
                ldb: usize,
                c: *mut Self,
                ldc: usize,
                accumulate: bool,
            ) -> bool {
                let Some([m, n, k, lda, ldb, ldc]) = dims([m, n, k, lda, ldb, ldc]) else { return false };
                // Row-major `a` (k x m, stride lda) read column-major is `A^T` (m x k): no transpose.
                // Row-major `b` (k x n, stride ldb) read column-major is `B^T` (n x k): transpose.
                let beta = if accumulate { 1.0 } else { 0.0 };
                // SAFETY: forwarded from the caller's contract.
                unsafe {
                    (blas.$field)(COL_MAJOR, NO_TRANS, TRANS, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
                }
                true
            }
        }
    };
}

blas_real!(f32, sgemm);
blas_real!(f64, dgemm);
