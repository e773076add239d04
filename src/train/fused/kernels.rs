//! The numeric building blocks of the fused GMN pass, on row-major `f32` slices: GEMM (the
//! `gemm` crate, single-threaded: the engine parallelises over graphs), LayerNorm and SiLU with
//! their backward passes, row gathers and scatters.
//!
//! Everything here is `#[inline(always)]` so the engine's AVX2 entry point compiles it with
//! AVX2/FMA enabled; the loops are branch-free over contiguous rows so they vectorise (SiLU's
//! `exp` is a polynomial for that reason: a libm call per element cost more than the GEMMs).

/// `dst (+)= op(a) · op(b)`: `dst` is `[m, n]`; `a` is `[m, k]` (or `[k, m]` when `a_t`, used
/// transposed); `b` is `[k, n]` (or `[n, k]` when `b_t`). `accumulate` adds to `dst`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn matmul(dst: &mut [f32], m: usize, n: usize, k: usize, a: &[f32], a_t: bool, b: &[f32], b_t: bool, add: bool) {
    assert!(dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n, "matmul: operand too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !add {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // (column stride, row stride) of each operand as the product reads it.
    let (a_cs, a_rs) = if a_t { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if b_t { (k as isize, 1) } else { (1, n as isize) };
    // SAFETY: the assert above keeps every index the strides reach inside the slices; `dst` is a
    // unique borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            add,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// LayerNorm's epsilon (burn's and PyTorch's default).
pub const LN_EPS: f32 = 1e-5;

/// `sum(a * b)` with eight partial sums, so the loop vectorises (a single running sum would
/// pin the loop to scalar adds: float addition is not reassociated by the compiler).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `sum(a)`, vectorised like [`dot`].
#[inline(always)]
pub fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for l in 0..8 {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// One row of a LayerNorm: writes `xhat = (row - mean) / sqrt(var + eps)` (biased variance) to
/// `xhat` and returns `(mean, 1 / sqrt(var + eps))`.
#[inline(always)]
fn normalize_row(row: &[f32], xhat: &mut [f32]) -> (f32, f32) {
    let inv_h = 1.0 / row.len() as f32;
    let mean = sum(row) * inv_h;
    for (c, v) in xhat.iter_mut().zip(row) {
        *c = v - mean;
    }
    let s = 1.0 / (dot(xhat, xhat) * inv_h + LN_EPS).sqrt();
    xhat.iter_mut().for_each(|c| *c *= s);
    (mean, s)
}

/// Per row of `x: [rows, h]`: `xhat` (see [`normalize_row`]) and `y = xhat * gamma + beta`.
/// Keeps `xhat` and `1 / sqrt(var + eps)` for the backward pass.
#[inline(always)]
pub fn layer_norm(x: &[f32], h: usize, gamma: &[f32], beta: &[f32], xhat: &mut [f32], rstd: &mut [f32], y: &mut [f32]) {
    let (gamma, beta) = (&gamma[..h], &beta[..h]);
    for (r, row) in x.chunks_exact(h).enumerate() {
        let xh = &mut xhat[r * h..(r + 1) * h];
        rstd[r] = normalize_row(row, xh).1;
        let out = &mut y[r * h..(r + 1) * h];
        for j in 0..h {
            out[j] = xh[j] * gamma[j] + beta[j];
        }
    }
}

/// LayerNorm forward that keeps only each row's mean and `1 / std` (for inputs that stay
/// available until the backward pass, which recomputes `xhat` from them: one `[rows, h]` array
/// less to write and to keep in cache).
#[inline(always)]
pub fn layer_norm_stats(
    x: &[f32],
    h: usize,
    gamma: &[f32],
    beta: &[f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    y: &mut [f32],
) {
    let (gamma, beta) = (&gamma[..h], &beta[..h]);
    for (r, row) in x.chunks_exact(h).enumerate() {
        let out = &mut y[r * h..(r + 1) * h];
        (mean[r], rstd[r]) = normalize_row(row, out);
        for j in 0..h {
            out[j] = out[j] * gamma[j] + beta[j];
        }
    }
}

/// LayerNorm backward: adds `dx` (into `dx`, which holds the residual gradient) and the
/// parameter gradients. `dy` is the gradient of the LayerNorm's output. `scratch`: `h` floats.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn layer_norm_backward(
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    h: usize,
    gamma: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    let (gamma, dgamma, dbeta) = (&gamma[..h], &mut dgamma[..h], &mut dbeta[..h]);
    let dxhat = &mut scratch[..h];
    for (r, (g, xh)) in dy.chunks_exact(h).zip(xhat.chunks_exact(h)).enumerate() {
        layer_norm_backward_row(g, xh, rstd[r], gamma, dgamma, dbeta, &mut dx[r * h..(r + 1) * h], dxhat);
    }
}

/// [`layer_norm_backward`] for a forward pass run by [`layer_norm_stats`]: `x` is the forward
/// input. `scratch`: `2 h` floats.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn layer_norm_backward_from_input(
    dy: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    h: usize,
    gamma: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    let (gamma, dgamma, dbeta) = (&gamma[..h], &mut dgamma[..h], &mut dbeta[..h]);
    let (dxhat, xh) = scratch[..2 * h].split_at_mut(h);
    for (r, (g, row)) in dy.chunks_exact(h).zip(x.chunks_exact(h)).enumerate() {
        let (mu, s) = (mean[r], rstd[r]);
        for (c, v) in xh.iter_mut().zip(row) {
            *c = (v - mu) * s;
        }
        layer_norm_backward_row(g, xh, s, gamma, dgamma, dbeta, &mut dx[r * h..(r + 1) * h], dxhat);
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn layer_norm_backward_row(
    g: &[f32],
    xh: &[f32],
    s: f32,
    gamma: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    out: &mut [f32],
    dxhat: &mut [f32],
) {
    let h = gamma.len();
    let inv_h = 1.0 / h as f32;
    for j in 0..h {
        dgamma[j] += g[j] * xh[j];
        dbeta[j] += g[j];
        dxhat[j] = g[j] * gamma[j];
    }
    let mean_d = sum(dxhat) * inv_h;
    let mean_dx = dot(dxhat, xh) * inv_h;
    // Eight lanes loaded into arrays before the store: written as one loop over `j`, the
    // compiler guarded the vector loop with an overlap check that sent it down the scalar
    // path (about 4% of a training step).
    let mut j = 0;
    while j + 8 <= h {
        let d: [f32; 8] = std::array::from_fn(|l| dxhat[j + l]);
        let x: [f32; 8] = std::array::from_fn(|l| xh[j + l]);
        let mut o: [f32; 8] = std::array::from_fn(|l| out[j + l]);
        for l in 0..8 {
            o[l] += s * (d[l] - mean_d - x[l] * mean_dx);
        }
        out[j..j + 8].copy_from_slice(&o);
        j += 8;
    }
    for j in j..h {
        out[j] += s * (dxhat[j] - mean_d - xh[j] * mean_dx);
    }
}

/// `e^x` to a few ulp for `x` in about [-87, 88] (clamped outside): `x = n ln2 + r`, a degree-6
/// polynomial for `e^r`, `2^n` from the exponent bits. Branch-free, so loops over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding it rounds to the nearest integer and leaves it in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    let bits = (t.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    p * f32::from_bits(((bits + 127) << 23) as u32)
}

/// The logistic function through [`exp`].
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `z = a * sigmoid(a)`, element-wise.
#[inline(always)]
pub fn silu(a: &[f32], z: &mut [f32]) {
    for (z, &a) in z.iter_mut().zip(a) {
        *z = a * sigmoid(a);
    }
}

/// `z = silu(a)` and `d = silu'(a) = s (1 + a (1 - s))` with `s = sigmoid(a)`: one `exp` per
/// element serves the forward and the backward pass.
#[inline(always)]
pub fn silu_with_derivative(a: &[f32], z: &mut [f32], d: &mut [f32]) {
    for ((z, d), &a) in z.iter_mut().zip(d.iter_mut()).zip(a) {
        let s = sigmoid(a);
        *z = a * s;
        *d = s * (1.0 + a * (1.0 - s));
    }
}

/// `d *= silu'(a)`.
#[inline(always)]
pub fn silu_backward(a: &[f32], d: &mut [f32]) {
    for (d, &a) in d.iter_mut().zip(a) {
        let s = sigmoid(a);
        *d *= s * (1.0 + a * (1.0 - s));
    }
}

/// `x *= y`, element-wise.
#[inline(always)]
pub fn mul_assign(x: &mut [f32], y: &[f32]) {
    for (x, y) in x.iter_mut().zip(y) {
        *x *= y;
    }
}

/// `dst[r] += src` for every `h`-wide row `r` (a bias).
#[inline(always)]
pub fn add_row(dst: &mut [f32], h: usize, row: &[f32]) {
    for out in dst.chunks_exact_mut(h) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// `dst[r] = src[r] + row` for every `h`-wide row `r` (a residual plus a bias, one pass).
#[inline(always)]
pub fn copy_add_row(dst: &mut [f32], src: &[f32], h: usize, row: &[f32]) {
    let row = &row[..h];
    for (out, inp) in dst.chunks_exact_mut(h).zip(src.chunks_exact(h)) {
        for j in 0..h {
            out[j] = inp[j] + row[j];
        }
    }
}

/// `acc += column sums of x: [rows, h]` (a bias gradient).
#[inline(always)]
pub fn add_column_sums(acc: &mut [f32], h: usize, x: &[f32]) {
    for row in x.chunks_exact(h) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
}

/// `dst[e] += bias + a[ia[e]] (+ b[ib[e]])`: a first linear's bias and its per-node terms
/// gathered to the edges, in one pass over `dst`.
#[inline(always)]
pub fn add_bias_gathers(dst: &mut [f32], h: usize, bias: &[f32], a: &[f32], ia: &[u32], b: Option<(&[f32], &[u32])>) {
    let bias = &bias[..h];
    for (e, out) in dst.chunks_exact_mut(h).enumerate() {
        let ra = &a[ia[e] as usize * h..][..h];
        match b {
            Some((b, ib)) => {
                let rb = &b[ib[e] as usize * h..][..h];
                for j in 0..h {
                    out[j] += bias[j] + ra[j] + rb[j];
                }
            }
            None => {
                for j in 0..h {
                    out[j] += bias[j] + ra[j];
                }
            }
        }
    }
}

/// `d[e] = src[index[e]] * scale[e]` (the gradient of a gathered, SiLU'd row) and `acc +=`
/// column sums of `d`, in one pass.
#[inline(always)]
pub fn gather_scale_sum(d: &mut [f32], h: usize, src: &[f32], index: &[u32], scale: &[f32], acc: &mut [f32]) {
    let acc = &mut acc[..h];
    for (e, (out, sc)) in d.chunks_exact_mut(h).zip(scale.chunks_exact(h)).enumerate() {
        let row = &src[index[e] as usize * h..][..h];
        for j in 0..h {
            let v = row[j] * sc[j];
            out[j] = v;
            acc[j] += v;
        }
    }
}

/// `d *= scale` (SiLU's derivative), `acc +=` column sums of the result, and the result
/// scattered to `to_a[ia[e]]` and `to_b[ib[e]]`, in one pass.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn scale_sum_scatter2(
    d: &mut [f32],
    h: usize,
    scale: &[f32],
    acc: &mut [f32],
    to_a: &mut [f32],
    ia: &[u32],
    to_b: &mut [f32],
    ib: &[u32],
) {
    let acc = &mut acc[..h];
    for (e, (row, sc)) in d.chunks_exact_mut(h).zip(scale.chunks_exact(h)).enumerate() {
        for j in 0..h {
            row[j] *= sc[j];
            acc[j] += row[j];
        }
        let ra = &mut to_a[ia[e] as usize * h..][..h];
        for j in 0..h {
            ra[j] += row[j];
        }
        let rb = &mut to_b[ib[e] as usize * h..][..h];
        for j in 0..h {
            rb[j] += row[j];
        }
    }
}

/// `dst[index[e]] += src[e]`, rows of `h` (`dst` is not cleared).
#[inline(always)]
pub fn scatter_add(dst: &mut [f32], h: usize, src: &[f32], index: &[u32]) {
    for (row, &i) in src.chunks_exact(h).zip(index) {
        let out = &mut dst[i as usize * h..(i as usize + 1) * h];
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], a_t: bool, b: &[f32], b_t: bool) -> Vec<f32> {
        let mut out = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|l| {
                        let x = if a_t { a[l * m + i] } else { a[i * k + l] };
                        let y = if b_t { b[j * k + l] } else { b[l * n + j] };
                        x * y
                    })
                    .sum();
            }
        }
        out
    }

    #[test]
    fn matmul_matches_the_definition_for_every_transpose() {
        let mut rng = SplitMix64::new(5);
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            let expected = naive(m, n, k, &a, a_t, &b, b_t);
            let mut out = vec![1.0f32; m * n];
            matmul(&mut out, m, n, k, &a, a_t, &b, b_t, false);
            for (o, e) in out.iter().zip(&expected) {
                assert!((o - e).abs() < 1e-5, "{a_t} {b_t}: {o} vs {e}");
            }
            matmul(&mut out, m, n, k, &a, a_t, &b, b_t, true);
            for (o, e) in out.iter().zip(&expected) {
                assert!((o - 2.0 * e).abs() < 1e-5, "accumulate {a_t} {b_t}");
            }
        }
    }

    #[test]
    fn exp_matches_the_standard_library() {
        let mut worst = 0f32;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = (exp(x) - x.exp()).abs() / x.exp();
            worst = worst.max(rel);
            x += 0.013;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.0), "clamped below");
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let mut rng = SplitMix64::new(9);
        let h = 6;
        let x: Vec<f32> = (0..2 * h).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let gamma: Vec<f32> = (0..h).map(|_| rng.uniform(0.5, 1.5)).collect();
        let beta: Vec<f32> = (0..h).map(|_| rng.uniform(-0.5, 0.5)).collect();
        let w: Vec<f32> = (0..2 * h).map(|_| rng.uniform(-1.0, 1.0)).collect();
        // Loss = sum(w * LN(x)).
        let loss = |x: &[f32]| -> f64 {
            let (mut xh, mut rs, mut y) = (vec![0.0; 2 * h], vec![0.0; 2], vec![0.0; 2 * h]);
            layer_norm(x, h, &gamma, &beta, &mut xh, &mut rs, &mut y);
            y.iter().zip(&w).map(|(a, b)| (a * b) as f64).sum()
        };
        let (mut xh, mut rs, mut y) = (vec![0.0; 2 * h], vec![0.0; 2], vec![0.0; 2 * h]);
        layer_norm(&x, h, &gamma, &beta, &mut xh, &mut rs, &mut y);
        let (mut dg, mut db, mut dx, mut scratch) = (vec![0.0; h], vec![0.0; h], vec![0.0; 2 * h], vec![0.0; h]);
        layer_norm_backward(&w, &xh, &rs, h, &gamma, &mut dg, &mut db, &mut dx, &mut scratch);
        for i in 0..2 * h {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += 1e-3;
            down[i] -= 1e-3;
            let numeric = (loss(&up) - loss(&down)) / 2e-3;
            assert!((numeric - dx[i] as f64).abs() < 2e-3, "dx[{i}]: {numeric} vs {}", dx[i]);
        }
        // The stats-only forward and the recomputing backward give the same numbers.
        let (mut mean, mut rs2, mut y2) = (vec![0.0; 2], vec![0.0; 2], vec![0.0; 2 * h]);
        layer_norm_stats(&x, h, &gamma, &beta, &mut mean, &mut rs2, &mut y2);
        for (a, b) in y.iter().zip(&y2) {
            assert!((a - b).abs() < 1e-6);
        }
        let (mut dg2, mut db2, mut dx2, mut scratch2) =
            (vec![0.0; h], vec![0.0; h], vec![0.0; 2 * h], vec![0.0; 2 * h]);
        layer_norm_backward_from_input(&w, &x, &mean, &rs2, h, &gamma, &mut dg2, &mut db2, &mut dx2, &mut scratch2);
        for (a, b) in dx.iter().zip(&dx2).chain(dg.iter().zip(&dg2)).chain(db.iter().zip(&db2)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let expected_db: Vec<f32> = (0..h).map(|j| w[j] + w[h + j]).collect();
        for j in 0..h {
            assert!((db[j] - expected_db[j]).abs() < 1e-6);
            assert!((dg[j] - (w[j] * xh[j] + w[h + j] * xh[h + j])).abs() < 1e-6);
        }
    }

    #[test]
    fn silu_backward_is_the_derivative() {
        for &a in &[-6.0f32, -1.0, -0.1, 0.0, 0.3, 2.0, 7.0] {
            let f = |v: f32| v / (1.0 + (-v).exp());
            let numeric = (f(a + 1e-3) - f(a - 1e-3)) / 2e-3;
            let mut d = [1.0f32];
            silu_backward(&[a], &mut d);
            assert!((d[0] - numeric).abs() < 1e-3, "silu'({a}) = {} vs {numeric}", d[0]);
            let mut z = [0.0f32];
            silu(&[a], &mut z);
            assert!((z[0] - f(a)).abs() < 1e-6);
            let (mut z2, mut d2) = ([0.0f32], [0.0f32]);
            silu_with_derivative(&[a], &mut z2, &mut d2);
            assert_eq!((z2[0], d2[0]), (z[0], d[0]));
        }
    }
}
