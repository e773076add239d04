//! Safe wrappers around the `gemm` crate for the two products CKA needs: `A^T B` (feature-space
//! cross products) and `A A^T` (Gram matrices), on row-major buffers, in f32 or f64.
//!
//! This is the only module with `unsafe`: each wrapper checks that every element the product
//! reads or writes lies inside the slices it was given.

/// Element types the engine computes in. Values enter as f64 (centred, scaled) and are rounded once.
pub(crate) trait Real: Copy + Default + Send + Sync + 'static + super::blas::BlasReal {
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
}

/// `dst[i, j] (+)= sum_k a[k, i] * b[k, j]`: the `a.width x b.width` product `A^T B`, written
/// *column-major* into `dst` (element (i, j) at `dst_offset + i + j * dst_ld`). With `accumulate`
/// the product is added to what `dst` holds (row chunks of A and B sum to the full product).
///
/// Column-major output lets the `gemm` crate use `A^T` (unit stride along i) as its left
/// operand directly; a row-major output made it transpose the problem, measured ~1.4x slower
/// for 5120 x 5120 x 10000.
pub(crate) fn at_b<T: Real>(
    a: Cols<'_, T>,
    b: Cols<'_, T>,
    dst: &mut [T],
    dst_offset: usize,
    dst_ld: usize,
    accumulate: bool,
) {
    at_b_with(a, b, dst, dst_offset, dst_ld, accumulate, true);
}

/// [`at_b`], with the system BLAS allowed or not (tests check both paths).
fn at_b_with<T: Real>(
    a: Cols<'_, T>,
    b: Cols<'_, T>,
    dst: &mut [T],
    dst_offset: usize,
    dst_ld: usize,
    accumulate: bool,
    allow_blas: bool,
) {
    a.check();
    b.check();
    assert_eq!(a.rows, b.rows, "A and B must have the same rows");
    let (m, n, k) = (a.width, b.width, a.rows);
    if m == 0 || n == 0 {
        return;
    }
    assert!(m <= dst_ld, "destination leading dimension too small");
    assert!(dst_offset + (n - 1) * dst_ld + m <= dst.len(), "destination too small");
    if k == 0 {
        if !accumulate {
            for j in 0..n {
                dst[dst_offset + j * dst_ld..][..m].fill(T::default());
            }
        }
        return;
    }
    // SAFETY (both paths): the asserts above bound every index: lhs (i, kk) =
    // a[kk*stride + col0 + i] with i < m, kk < k; rhs (kk, j) = b[kk*stride + col0 + j] with
    // j < n; dst (i, j) = dst[offset + i + j*dst_ld]. `dst` is a unique borrow.
    if let Some(blas) = super::blas::get().filter(|_| allow_blas) {
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
    // SAFETY: the asserts above bound every index: lhs (i, kk) = a[kk*stride + col0 + i] with
    // i < m, kk < k; rhs (kk, j) = b[kk*stride + col0 + j] with j < n; dst (i, j) =
    // dst[offset + i + j*dst_ld]. `dst` is a unique borrow, so it aliases neither input.
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

/// `dst = A A^T` for row-major `a` (`rows x width`, row stride `width`): the `rows x rows` Gram
/// matrix of the examples, written row-major into `dst`.
pub(crate) fn a_at<T: Real>(a: &[T], rows: usize, width: usize, dst: &mut [T]) {
    assert!(a.len() >= rows * width, "A too small");
    assert!(dst.len() >= rows * rows, "destination too small");
    if rows == 0 {
        return;
    }
    if width == 0 {
        dst[..rows * rows].fill(T::default());
        return;
    }
    let one = T::from_f64(1.0);
    // SAFETY: lhs (i, kk) = a[i*width + kk], rhs (kk, j) = a[j*width + kk], i, j < rows,
    // kk < width, all inside `a` by the assert; dst (i, j) = dst[i*rows + j] < rows^2.
    unsafe {
        gemm::gemm(
            rows,
            rows,
            width,
            dst.as_mut_ptr(),
            1,
            rows as isize,
            false,
            a.as_ptr(),
            1,
            width as isize,
            a.as_ptr(),
            width as isize,
            1,
            one,
            one,
            false,
            false,
            false,
            parallelism(rows, rows, width),
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
        // Both paths: the system BLAS (when installed) and the `gemm` crate.
        for allow_blas in [true, false] {
            let mut dst = vec![0.0; 15];
            at_b_with(ca, cb, &mut dst, 1, 5, false, allow_blas);
            at_b_with(ca, cb, &mut dst, 1, 5, true, allow_blas);
            for i in 0..3 {
                for j in 0..2 {
                    let want = 2.0 * full[(i + 1) * wb + (j + 2)];
                    assert!((dst[1 + i + j * 5] - want).abs() < 1e-12, "allow_blas = {allow_blas}");
                }
            }
            assert_eq!(dst[0], 0.0);
            // f32 too (sgemm vs the gemm crate's f32 kernel).
            let (a32, b32): (Vec<f32>, Vec<f32>) =
                (a.iter().map(|&v| v as f32).collect(), b.iter().map(|&v| v as f32).collect());
            let mut d32 = vec![0.0f32; 15];
            let ca32 = Cols { data: &a32[..], rows: k, stride: wa, col0: 1, width: 3 };
            let cb32 = Cols { data: &b32[..], rows: k, stride: wb, col0: 2, width: 2 };
            at_b_with(ca32, cb32, &mut d32, 1, 5, false, allow_blas);
            assert!((d32[1] as f64 - full[wb + 2]).abs() < 1e-5, "allow_blas = {allow_blas}");
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
