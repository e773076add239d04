//! Safe wrappers for the products CKA needs, on row-major buffers, in f32 or f64: `A^T B`
//! (feature-space cross products) and the symmetric `A^T A` (self products, upper triangle only)
//! through the system BLAS or the `gemm` crate ([`Backend`]), and `A A^T` (Gram matrices).
//!
//! This module and [`super::blas`] are the only ones with `unsafe`: each wrapper checks that every
//! element the product reads or writes lies inside the slices it was given.

use super::blas::{Blas, BlasReal};

/// Element types the engine computes in. Values enter as f64 (centred, scaled) and are rounded once.
pub(crate) trait Real: Copy + Default + Send + Sync + 'static + BlasReal {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// Below this many multiply-adds a product runs on the calling thread (thread start-up would
/// cost more than it saves).
const PARALLEL_MIN_WORK: usize = 1 << 21;

fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_WORK {
        gemm::Parallelism::None
    } else {
        // 0 = all threads of rayon's global pool.
        gemm::Parallelism::Rayon(0)
    }
}

/// Which library runs the `A^T B` / `A^T A` products.
#[derive(Clone, Copy)]
pub(crate) enum Backend {
    /// The system BLAS (see [`super::blas`]).
    Blas(&'static Blas),
    /// The pure-Rust `gemm` crate.
    Crate,
}

impl Backend {
    /// The system BLAS when one is loaded, else the `gemm` crate.
    pub fn detect() -> Self {
        super::blas::get().map_or(Backend::Crate, Backend::Blas)
    }

    /// Every backend available on this machine (tests check each).
    #[cfg(test)]
    pub fn available() -> Vec<Self> {
        std::iter::once(Backend::Crate).chain(super::blas::get().map(Backend::Blas)).collect()
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Blas(b) => write!(f, "Blas({})", b.name),
            Backend::Crate => f.write_str("Crate"),
        }
    }
}

/// A column block of a row-major matrix: columns `col0..col0 + width` of a buffer whose rows
/// are `stride` elements apart, `rows` rows long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cols<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub stride: usize,
    pub col0: usize,
    pub width: usize,
}

impl<T> Cols<'_, T> {
    fn check(&self) {
        assert!(self.col0 + self.width <= self.stride, "column block exceeds row stride");
        if self.rows > 0 && self.width > 0 {
            let last = (self.rows - 1) * self.stride + self.col0 + self.width;
            assert!(last <= self.data.len(), "column block exceeds buffer");
        }
    }

    /// Columns `range` of this block.
    fn sub(self, range: std::ops::Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= self.width, "sub-block outside the block");
        Self { col0: self.col0 + range.start, width: range.len(), ..self }
    }
}

/// Checks that an `m x n` column-major block at `offset` (leading dimension `ld`) lies inside
/// `dst`; returns false for an empty block.
fn check_dst<T>(dst: &[T], offset: usize, ld: usize, m: usize, n: usize) -> bool {
    if m == 0 || n == 0 {
        return false;
    }
    assert!(m <= ld, "destination leading dimension too small");
    assert!(offset + (n - 1) * ld + m <= dst.len(), "destination too small");
    true
}

/// `dst[i, j] (+)= sum_k a[k, i] * b[k, j]`: the `a.width x b.width` product `A^T B`, written
/// *column-major* into `dst` (element (i, j) at `dst_offset + i + j * dst_ld`). With `accumulate`
/// the product is added to what `dst` holds (row chunks of A and B sum to the full product).
///
/// Column-major output lets the `gemm` crate use `A^T` (unit stride along i) as its left
/// operand directly; a row-major output made it transpose the problem, measured ~1.4x slower
/// for 5120 x 5120 x 10000.
pub(crate) fn at_b<T: Real>(
    backend: Backend,
    a: Cols<'_, T>,
    b: Cols<'_, T>,
    dst: &mut [T],
    dst_offset: usize,
    dst_ld: usize,
    accumulate: bool,
) {
    a.check();
    b.check();
    assert_eq!(a.rows, b.rows, "A and B must have the same rows");
    let (m, n, k) = (a.width, b.width, a.rows);
    if !check_dst(dst, dst_offset, dst_ld, m, n) {
        return;
    }
    if k == 0 {
        if !accumulate {
            for j in 0..n {
                dst[dst_offset + j * dst_ld..][..m].fill(T::default());
            }
        }
        return;
    }
    if let Backend::Blas(blas) = backend {
        // SAFETY: the checks above bound every index: lhs (i, kk) = a[kk*stride + col0 + i] with
        // i < m, kk < k; rhs (kk, j) = b[kk*stride + col0 + j] with j < n; dst (i, j) =
        // dst[offset + i + j*dst_ld]. `dst` is a unique borrow.
        let done = unsafe {
            super::blas::at_b::<T>(
                blas,
                m,
                n,
                k,
                a.data.as_ptr().add(a.col0),
                a.stride,
                b.data.as_ptr().add(b.col0),
                b.stride,
                dst.as_mut_ptr().add(dst_offset),
                dst_ld,
                accumulate,
            )
        };
        if done {
            return;
        }
    }
    let one = T::from_f64(1.0);
    // SAFETY: as above; `dst` is a unique borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(dst_offset),
            dst_ld as isize,
            1,
            accumulate,
            a.data.as_ptr().add(a.col0),
            a.stride as isize,
            1,
            b.data.as_ptr().add(b.col0),
            1,
            b.stride as isize,
            one,
            one,
            false,
            false,
            false,
            parallelism(m, n, k),
        );
    }
}

/// Blocks at most this wide are computed as full squares by the `gemm`-crate path of
/// [`at_a_upper`]: narrower GEMMs lose more speed than skipping the lower triangle saves.
const UPPER_LEAF_WIDTH: usize = 256;

/// `dst (+)= A^T A` for the `a.width x a.width` symmetric product, column-major like [`at_b`].
/// Only the upper triangle (i <= j) is guaranteed; entries below the diagonal may or may not be
/// written. About half the work of [`at_b`]: BLAS `?syrk`, or for the `gemm` crate a recursive
/// split (two diagonal halves plus one off-diagonal GEMM) down to [`UPPER_LEAF_WIDTH`].
pub(crate) fn at_a_upper<T: Real>(
    backend: Backend,
    a: Cols<'_, T>,
    dst: &mut [T],
    dst_offset: usize,
    dst_ld: usize,
    accumulate: bool,
) {
    a.check();
    let (m, k) = (a.width, a.rows);
    if !check_dst(dst, dst_offset, dst_ld, m, m) {
        return;
    }
    if let Backend::Blas(blas) = backend
        && k > 0
    {
        // SAFETY: the checks above bound every index: a (kk, i) = a[kk*stride + col0 + i] with
        // i < m, kk < k; dst (i, j) = dst[offset + i + j*dst_ld] with i <= j < m.
        let done = unsafe {
            super::blas::at_a_upper::<T>(
                blas,
                m,
                k,
                a.data.as_ptr().add(a.col0),
                a.stride,
                dst.as_mut_ptr().add(dst_offset),
                dst_ld,
                accumulate,
            )
        };
        if done {
            return;
        }
    }
    if m <= UPPER_LEAF_WIDTH {
        return at_b(Backend::Crate, a, a, dst, dst_offset, dst_ld, accumulate);
    }
    // [T  X]   T = upper of A1^T A1, X = A1^T A2, B = upper of A2^T A2. A split on a multiple of
    // [.  B]   16 keeps the blocks aligned with the kernels' register tiles.
    let half = (m / 2).next_multiple_of(16).min(m - 1);
    let (top, bottom) = (a.sub(0..half), a.sub(half..m));
    at_a_upper(Backend::Crate, top, dst, dst_offset, dst_ld, accumulate);
    at_b(Backend::Crate, top, bottom, dst, dst_offset + half * dst_ld, dst_ld, accumulate);
    at_a_upper(Backend::Crate, bottom, dst, dst_offset + half + half * dst_ld, dst_ld, accumulate);
}

/// Speed of `backend` on one f32 `k x k x k` product [`at_b`] (best of three), in GFLOP/s: the
/// machine's GEMM peak that benchmarks compare the engine with.
pub(crate) fn measure_gflops(backend: Backend, k: usize) -> f64 {
    let x: Vec<f32> = (0..k * k).map(|i| (i % 97) as f32 * 0.01).collect();
    let mut y = vec![0.0f32; k * k];
    let cols = Cols { data: &x[..], rows: k, stride: k, col0: 0, width: k };
    let best = (0..3)
        .map(|_| {
            let start = std::time::Instant::now();
            at_b(backend, cols, cols, &mut y, 0, k, false);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (k as f64).powi(3) / best / 1e9
}

/// `dst = A A^T` for row-major `a` (`rows x width`, row stride `width`): the `rows x rows` Gram
/// matrix of the examples, written row-major into `dst`.
pub(crate) fn a_at<T: Real>(a: &[T], rows: usize, width: usize, dst: &mut [T]) {
    a_bt(a, rows, a, rows, width, dst, false);
}

/// `dst += A B^T` for row-major `a` (`rows_a x width`) and `b` (`rows_b x width`), `dst` row-major
/// `rows_a x rows_b`: every row of A against every row of B (alignment's assignment profits).
pub(crate) fn a_bt_add<T: Real>(a: &[T], rows_a: usize, b: &[T], rows_b: usize, width: usize, dst: &mut [T]) {
    a_bt(a, rows_a, b, rows_b, width, dst, true);
}

/// `dst = A B^T` (or `dst += A B^T` with `accumulate`), shapes as in [`a_bt_add`].
fn a_bt<T: Real>(a: &[T], rows_a: usize, b: &[T], rows_b: usize, width: usize, dst: &mut [T], accumulate: bool) {
    assert!(a.len() >= rows_a * width, "A too small");
    assert!(b.len() >= rows_b * width, "B too small");
    assert!(dst.len() >= rows_a * rows_b, "destination too small");
    if rows_a == 0 || rows_b == 0 {
        return;
    }
    if width == 0 {
        if !accumulate {
            dst[..rows_a * rows_b].fill(T::default());
        }
        return;
    }
    let one = T::from_f64(1.0);
    // SAFETY: lhs (i, kk) = a[i*width + kk], rhs (kk, j) = b[j*width + kk], i < rows_a, j < rows_b,
    // kk < width, all inside `a` and `b` by the asserts; dst (i, j) = dst[i*rows_b + j] < rows_a*rows_b.
    unsafe {
        gemm::gemm(
            rows_a,
            rows_b,
            width,
            dst.as_mut_ptr(),
            1,
            rows_b as isize,
            accumulate,
            a.as_ptr(),
            1,
            width as isize,
            b.as_ptr(),
            width as isize,
            1,
            one,
            one,
            false,
            false,
            false,
            parallelism(rows_a, rows_b, width),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_at_b(a: &[f64], wa: usize, b: &[f64], wb: usize, k: usize) -> Vec<f64> {
        let mut out = vec![0.0; wa * wb];
        for kk in 0..k {
            for i in 0..wa {
                for j in 0..wb {
                    out[i * wb + j] += a[kk * wa + i] * b[kk * wb + j];
                }
            }
        }
        out
    }

    #[test]
    fn at_b_matches_naive_on_column_blocks_and_accumulates() {
        let (k, wa, wb) = (7, 5, 4);
        let a: Vec<f64> = (0..k * wa).map(|v| (v as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * wb).map(|v| (v as f64 * 0.91).cos()).collect();
        let full = naive_at_b(&a, wa, &b, wb, k);
        // Columns 1..4 of A against columns 2..4 of B, into a corner of a column-major buffer
        // with leading dimension 5.
        let ca = Cols { data: &a[..], rows: k, stride: wa, col0: 1, width: 3 };
        let cb = Cols { data: &b[..], rows: k, stride: wb, col0: 2, width: 2 };
        // Every backend: the system BLAS (when installed) and the `gemm` crate.
        for backend in Backend::available() {
            let mut dst = vec![0.0; 15];
            at_b(backend, ca, cb, &mut dst, 1, 5, false);
            at_b(backend, ca, cb, &mut dst, 1, 5, true);
            for i in 0..3 {
                for j in 0..2 {
                    let want = 2.0 * full[(i + 1) * wb + (j + 2)];
                    assert!((dst[1 + i + j * 5] - want).abs() < 1e-12, "{backend:?}");
                }
            }
            assert_eq!(dst[0], 0.0);
            // f32 too (sgemm vs the gemm crate's f32 kernel).
            let (a32, b32): (Vec<f32>, Vec<f32>) =
                (a.iter().map(|&v| v as f32).collect(), b.iter().map(|&v| v as f32).collect());
            let mut d32 = vec![0.0f32; 15];
            let ca32 = Cols { data: &a32[..], rows: k, stride: wa, col0: 1, width: 3 };
            let cb32 = Cols { data: &b32[..], rows: k, stride: wb, col0: 2, width: 2 };
            at_b(backend, ca32, cb32, &mut d32, 1, 5, false);
            assert!((d32[1] as f64 - full[wb + 2]).abs() < 1e-5, "{backend:?}");
        }
    }

    #[test]
    fn at_a_upper_fills_the_upper_triangle_inside_its_block_only() {
        // 600 columns: the gemm-crate path splits twice (600 -> 304 + 296 -> 160 + 144, ...).
        let (k, stride, col0, m) = (37, 610, 3, 600);
        let a: Vec<f64> = (0..k * stride).map(|v| ((v * 7919 % 1000) as f64 / 500.0) - 1.0).collect();
        let want = naive_at_b(&a, stride, &a, stride, k);
        let (ld, offset) = (m + 2, 5);
        for backend in Backend::available() {
            let sentinel = -12345.0;
            let mut dst = vec![sentinel; offset + m * ld + 3];
            let cols = Cols { data: &a[..], rows: k, stride, col0, width: m };
            at_a_upper(backend, cols, &mut dst, offset, ld, false);
            at_a_upper(backend, cols, &mut dst, offset, ld, true);
            for j in 0..m {
                for i in 0..=j {
                    let w = 2.0 * want[(col0 + i) * stride + col0 + j];
                    let got = dst[offset + i + j * ld];
                    assert!((got - w).abs() < 1e-10, "{backend:?} ({i}, {j}): {got} vs {w}");
                }
                // Rows outside the m x m block are never written.
                for i in m..ld {
                    assert_eq!(dst[offset + i + j * ld], sentinel, "{backend:?}");
                }
            }
            assert!(dst[..offset].iter().chain(&dst[offset + (m - 1) * ld + m..]).all(|&v| v == sentinel));
        }
    }

    #[test]
    fn a_at_is_the_gram_matrix() {
        let (rows, width) = (4, 3);
        let a: Vec<f32> = (0..12).map(|v| v as f32 - 5.0).collect();
        let mut g = vec![f32::NAN; 16];
        a_at(&a, rows, width, &mut g);
        for i in 0..rows {
            for j in 0..rows {
                let want: f32 = (0..width).map(|kk| a[i * width + kk] * a[j * width + kk]).sum();
                assert_eq!(g[i * rows + j], want);
            }
        }
    }
}
