//! Eigenvalues of a symmetric matrix (no eigenvectors): Householder reduction to tridiagonal form,
//! then the implicit QL iteration with Wilkinson shifts. O(n^3) flops, O(n^2) memory, f64.
//!
//! The spectra only need the eigenvalues of a Gram matrix `W W^T`; a dense LAPACK would be a large
//! dependency for that one call, and the textbook algorithm is short and well conditioned.

/// Eigenvalues of the symmetric `n x n` matrix `a` (row-major, only read as symmetric), ascending.
/// `a` is overwritten. Returns `None` when the QL iteration does not converge (not expected for
/// finite input; NaN or infinite entries give `None` too).
pub fn symmetric_eigenvalues(a: &mut [f64], n: usize) -> Option<Vec<f64>> {
    assert_eq!(a.len(), n * n, "a must be n x n");
    if a.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    tridiagonalise(a, n, &mut d, &mut e);
    tridiagonal_ql(&mut d, &mut e)?;
    d.sort_by(f64::total_cmp);
    Some(d)
}

/// Householder reduction of the symmetric `a` to tridiagonal form: diagonal `d`, sub-diagonal `e`
/// (`e[i]` couples `i - 1` and `i`; `e[0] = 0`). Works on the lower triangle, row by row from the
/// bottom, as in the classic EISPACK `tred1` (eigenvalues only).
fn tridiagonalise(a: &mut [f64], n: usize, d: &mut [f64], e: &mut [f64]) {
    for i in (1..n).rev() {
        let l = i - 1;
        let row = i * n;
        let mut h = 0.0;
        if l > 0 {
            let scale: f64 = (0..=l).map(|k| a[row + k].abs()).sum();
            if scale == 0.0 {
                e[i] = a[row + l];
            } else {
                for k in 0..=l {
                    a[row + k] /= scale;
                    h += a[row + k] * a[row + k];
                }
                let f = a[row + l];
                let g = if f >= 0.0 { -h.sqrt() } else { h.sqrt() };
                e[i] = scale * g;
                h -= f * g;
                a[row + l] = f - g;
                // p = A u / h, then K = u^T p / 2h, q = p - K u; A -= u q^T + q u^T (lower part).
                let mut f_acc = 0.0;
                for j in 0..=l {
                    let mut g = 0.0;
                    for k in 0..=j {
                        g += a[j * n + k] * a[row + k];
                    }
                    for k in j + 1..=l {
                        g += a[k * n + j] * a[row + k];
                    }
                    e[j] = g / h;
                    f_acc += e[j] * a[row + j];
                }
                let hh = f_acc / (h + h);
                for j in 0..=l {
                    let f = a[row + j];
                    let g = e[j] - hh * f;
                    e[j] = g;
                    for k in 0..=j {
                        a[j * n + k] -= f * e[k] + g * a[row + k];
                    }
                }
            }
        } else {
            e[i] = a[row + l];
        }
        d[i] = h;
    }
    for i in 0..n {
        d[i] = a[i * n + i];
    }
}

/// Implicit QL with Wilkinson shifts on a tridiagonal matrix (`d` diagonal, `e[i]` coupling
/// `i - 1` and `i`); `d` ends as the eigenvalues (unsorted).
fn tridiagonal_ql(d: &mut [f64], e: &mut [f64]) -> Option<()> {
    let n = d.len();
    if n == 0 {
        return Some(());
    }
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    for l in 0..n {
        let mut iterations = 0;
        loop {
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > 60 {
                return None;
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + if g >= 0.0 { r.abs() } else { -r.abs() });
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut i = m;
            let mut underflow = false;
            while i > l {
                i -= 1;
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    underflow = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
            }
            if underflow {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// `Q diag(lambda) Q^T` with `Q` a product of random Householder reflections: known eigenvalues.
    fn with_eigenvalues(lambda: &[f64], rng: &mut SplitMix64) -> Vec<f64> {
        let n = lambda.len();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            a[i * n + i] = lambda[i];
        }
        for _ in 0..3 {
            let v: Vec<f64> = (0..n).map(|_| f64::from(rng.normal())).collect();
            let norm2: f64 = v.iter().map(|x| x * x).sum();
            // H = I - 2 v v^T / |v|^2; A <- H A H.
            let mut av = vec![0.0; n];
            for i in 0..n {
                av[i] = (0..n).map(|k| a[i * n + k] * v[k]).sum();
            }
            let vav: f64 = (0..n).map(|i| v[i] * av[i]).sum();
            let c = 2.0 / norm2;
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] += -c * (v[i] * av[j] + av[i] * v[j]) + c * c * vav * v[i] * v[j];
                }
            }
        }
        a
    }

    #[test]
    fn recovers_known_spectra() {
        let mut rng = SplitMix64::new(7);
        for n in [1usize, 2, 3, 5, 17, 40] {
            for case in 0..4 {
                let mut lambda: Vec<f64> = (0..n)
                    .map(|i| match case {
                        0 => f64::from(rng.normal()),
                        1 => (i % 3) as f64, // repeated eigenvalues
                        2 => 1e-8 * (i + 1) as f64,
                        _ => 10f64.powi(i as i32 % 12 - 6), // wide dynamic range
                    })
                    .collect();
                let mut a = with_eigenvalues(&lambda, &mut rng);
                let got = symmetric_eigenvalues(&mut a, n).expect("converges");
                lambda.sort_by(f64::total_cmp);
                let scale = lambda.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for (g, w) in got.iter().zip(&lambda) {
                    assert!((g - w).abs() <= 1e-10 * scale.max(1e-300), "n={n} case={case}: {got:?} vs {lambda:?}");
                }
            }
        }
    }

    #[test]
    fn non_finite_input_is_refused() {
        let mut a = vec![1.0, f64::NAN, f64::NAN, 1.0];
        assert!(symmetric_eigenvalues(&mut a, 2).is_none());
    }
}
