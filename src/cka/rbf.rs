//! RBF-kernel HSIC terms: `K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))`, sigma = t x median
//! pairwise distance.
//!
//! The median ([`RbfMedian`]) is by default that of the whole n x n distance matrix, its zero
//! diagonal included, as Kornblith et al.'s reference code takes it; the other convention takes
//! the off-diagonal entries only (each pair appears twice there, which gives the same median as
//! the n(n-1)/2 distinct pairs). An even count averages the two middle values, as `numpy.median`
//! does.
//!
//! There is no feature-space shortcut: every layer's kernel is an n x n f64 matrix. The caller's
//! memory budget bounds n (see [`rbf_bytes`]); larger data goes through minibatch CKA.

use super::centre::Centring;
use super::gemm::a_at;
use super::hsic::HsicTerms;
use super::{ActivationsView, Error, Estimator, RbfMedian, Result, Side};

/// Bytes an RBF matrix needs: cached kernels (one per column layer, or per layer if symmetric)
/// plus a working kernel and the median scratch.
pub fn rbf_bytes(n: usize, cached_kernels: usize) -> f64 {
    let n2 = (n as f64) * (n as f64);
    8.0 * n2 * (cached_kernels as f64 + 1.0) + 4.0 * n2
}

/// One layer's kernel, prepared for the chosen estimator.
struct Kernel {
    /// Biased: the doubly centred kernel `HKH`. Unbiased: `K` with its diagonal zeroed.
    k: Vec<f64>,
    /// Unbiased only: row sums of the zero-diagonal kernel, and their total.
    row_sums: Vec<f64>,
    total: f64,
}

pub(crate) fn rbf_terms(
    a: &[ActivationsView<'_>],
    b: &[ActivationsView<'_>],
    symmetric: bool,
    sigma_frac: f64,
    median: RbfMedian,
    estimator: Estimator,
    budget: usize,
) -> Result<HsicTerms> {
    let n = a[0].n();
    let cached = if symmetric { a.len() } else { b.len() };
    let needed = rbf_bytes(n, cached);
    if needed > budget as f64 {
        return Err(Error::TooLarge {
            what: format!("RBF CKA with n = {n} builds n x n kernels"),
            needed_bytes: needed as u64,
            budget_bytes: budget as u64,
        });
    }
    let build = |side, layers: &[ActivationsView<'_>]| -> Result<Vec<Option<Kernel>>> {
        layers.iter().enumerate().map(|(i, v)| kernel(v, side, i, sigma_frac, median, estimator)).collect()
    };
    let cols = build(if symmetric { Side::A } else { Side::B }, if symmetric { a } else { b })?;
    let mut terms = HsicTerms::zeros(a.len(), cols.len());
    for (j, l) in cols.iter().enumerate() {
        terms.col_self[j] = l.as_ref().map_or(0.0, |l| hsic(l, l, n, estimator));
    }
    for (i, view) in a.iter().enumerate() {
        let own;
        let k = if symmetric {
            &cols[i]
        } else {
            own = kernel(view, Side::A, i, sigma_frac, median, estimator)?;
            &own
        };
        let Some(k) = k else { continue };
        terms.row_self[i] = hsic(k, k, n, estimator);
        for (j, l) in cols.iter().enumerate() {
            if let Some(l) = l {
                terms.cross[i * cols.len() + j] = hsic(k, l, n, estimator);
            }
        }
    }
    Ok(terms)
}

fn hsic(k: &Kernel, l: &Kernel, n: usize, estimator: Estimator) -> f64 {
    let nf = n as f64;
    let inner: f64 = k.k.iter().zip(&l.k).map(|(x, y)| x * y).sum();
    match estimator {
        Estimator::Biased => inner / ((nf - 1.0) * (nf - 1.0)),
        Estimator::Unbiased => {
            let uu: f64 = k.row_sums.iter().zip(&l.row_sums).map(|(x, y)| x * y).sum();
            let d = inner + k.total * l.total / ((nf - 1.0) * (nf - 2.0)) - 2.0 / (nf - 2.0) * uu;
            d / (nf * (nf - 3.0))
        }
    }
}

/// Builds a layer's kernel; `None` when the median distance is 0 (at least half the examples
/// coincide, e.g. a constant layer), where the bandwidth and hence CKA are undefined.
fn kernel(
    view: &ActivationsView<'_>,
    side: Side,
    layer: usize,
    sigma_frac: f64,
    convention: RbfMedian,
    estimator: Estimator,
) -> Result<Option<Kernel>> {
    let (n, p) = (view.n(), view.p());
    let centring = Centring::of(view, side, layer)?;
    // Centred (distances do not change) so the Gram-based distances lose nothing to cancellation.
    let mut x = vec![0.0f64; n * p];
    centring.pack(view, 0, n, &mut x, p, 0);
    let mut k = vec![0.0f64; n * n];
    a_at(&x, n, p, &mut k);
    drop(x);
    let sq: Vec<f64> = (0..n).map(|i| k[i * n + i]).collect();
    for i in 0..n {
        for j in 0..n {
            let d2 = if i == j { 0.0 } else { (sq[i] + sq[j] - 2.0 * k[i * n + j]).max(0.0) };
            k[i * n + j] = d2;
        }
    }
    let median = median_distance(&k, n, convention);
    if median.is_nan() || median <= 0.0 {
        return Ok(None);
    }
    let sigma = sigma_frac * median;
    let gamma = 1.0 / (2.0 * sigma * sigma);
    for v in &mut k {
        *v = (-*v * gamma).exp();
    }
    Ok(Some(match estimator {
        Estimator::Biased => {
            double_centre(&mut k, n);
            Kernel { k, row_sums: Vec::new(), total: 0.0 }
        }
        Estimator::Unbiased => {
            for i in 0..n {
                k[i * n + i] = 0.0;
            }
            let row_sums: Vec<f64> = k.chunks_exact(n.max(1)).map(|r| r.iter().sum()).collect();
            let total = row_sums.iter().sum();
            Kernel { k, row_sums, total }
        }
    }))
}

/// Median distance of a squared-distance matrix under `convention`.
fn median_distance(d2: &[f64], n: usize, convention: RbfMedian) -> f64 {
    // The distinct pairs (the whole matrix holds each twice, plus n zeros on the diagonal).
    let mut d: Vec<f64> = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        d.extend(d2[i * n + i + 1..(i + 1) * n].iter().map(|v| v.sqrt()));
    }
    if d.is_empty() {
        return 0.0;
    }
    // `k`-th smallest (0-based) of the multiset the convention takes the median of (a selection,
    // not a sort: n^2 / 2 distances), and the multiset's size.
    let m = d.len();
    let mut select = |k: usize| *d.select_nth_unstable_by(k, f64::total_cmp).1;
    let mut kth = |k: usize| match convention {
        RbfMedian::OffDiagonal => select(k),
        RbfMedian::WithDiagonal if k < n => 0.0,
        RbfMedian::WithDiagonal => select((k - n) / 2),
    };
    let count = match convention {
        RbfMedian::OffDiagonal => m,
        RbfMedian::WithDiagonal => n * n,
    };
    if count % 2 == 1 { kth(count / 2) } else { 0.5 * (kth(count / 2 - 1) + kth(count / 2)) }
}

/// `K <- H K H` for symmetric K: subtract row and column means, add back the grand mean.
fn double_centre(k: &mut [f64], n: usize) {
    let means: Vec<f64> = k.chunks_exact(n).map(|r| r.iter().sum::<f64>() / n as f64).collect();
    let grand = means.iter().sum::<f64>() / n as f64;
    for (i, row) in k.chunks_exact_mut(n).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v += grand - means[i] - means[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_matches_numpy_convention() {
        // Points on a line at 0, 1, 3, 7: distances 1, 3, 7, 2, 6, 4 -> sorted 1 2 3 4 6 7 -> 3.5.
        let xs = [0.0f64, 1.0, 3.0, 7.0];
        let n = 4;
        let d2: Vec<f64> = (0..16).map(|k| (xs[k / 4] - xs[k % 4]).powi(2)).collect();
        assert_eq!(median_distance(&d2, n, RbfMedian::OffDiagonal), 3.5);
        // The whole matrix: 0 0 0 0 1 1 2 2 3 3 4 4 6 6 7 7 -> (2 + 3) / 2 (numpy.median of it).
        assert_eq!(median_distance(&d2, n, RbfMedian::WithDiagonal), 2.5);
        // Odd count (n = 3: distances 1, 3, 2) -> 2; whole matrix 0 0 0 1 1 2 2 3 3 -> 1.
        let d2: Vec<f64> = (0..9).map(|k| (xs[k / 3] - xs[k % 3]).powi(2)).collect();
        assert_eq!(median_distance(&d2, 3, RbfMedian::OffDiagonal), 2.0);
        assert_eq!(median_distance(&d2, 3, RbfMedian::WithDiagonal), 1.0);
    }

    #[test]
    fn double_centring_zeroes_row_sums() {
        let mut k = vec![1.0, 0.5, 0.2, 0.5, 1.0, 0.1, 0.2, 0.1, 1.0];
        double_centre(&mut k, 3);
        for row in k.chunks(3) {
            assert!(row.iter().sum::<f64>().abs() < 1e-15);
        }
    }
}
