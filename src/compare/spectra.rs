//! Per-layer spectra: singular values, stable rank and the power-law exponent alpha of the
//! empirical spectral density (ESD), fitted the way WeightWatcher 0.7.7 fits it.
//!
//! WeightWatcher's method (Martin & Mahoney, "Implicit self-regularization in deep neural
//! networks", JMLR 2021; `weightwatcher` package, `WW_powerlaw.WWFit`):
//! - the ESD of a layer is the squared singular values of its weight matrix, i.e. the eigenvalues
//!   of `W^T W` (we report them divided by `N`, the larger dimension: `X = W^T W / N`; alpha and the
//!   choice of `xmin` are scale-free, so the division changes no fitted exponent). A conv kernel
//!   contributes one `[out, in]` matrix per kernel position, their eigenvalues pooled;
//! - eigenvalues of `W^T W` at or below `1e-5` are dropped (its `EVALS_THRESH`);
//! - for every candidate `xmin` (each eigenvalue but the largest) the continuous power-law MLE
//!   `alpha = 1 + n / sum(ln(x / xmin))` over the `n` eigenvalues `>= xmin`, and the
//!   Kolmogorov-Smirnov distance between the tail's empirical CDF and `1 - (x / xmin)^(1 - alpha)`;
//!   the `xmin` with the smallest distance wins. Below 20 eigenvalues it uses the bias-corrected
//!   `1 + (n - 1) / sum(...)` and tails of at least 8 (its small-N branch);
//! - layers whose smaller dimension is below 8 get no alpha (its `min_evals`).
//!
//! Singular values and the stable rank (`||W||_F^2 / ||W||_2^2`) are those of the layer's weight as
//! one `[out, in * kernel]` matrix. Eigenvalues come from the Gram matrix of the smaller side
//! (`eig.rs`), so singular values far below `sqrt(eps) * sigma_max` are not resolved.

use super::eig::symmetric_eigenvalues;
use crate::arch::{KernelLayout, LayerKind, MatrixLayout};
use crate::checkpoint::TensorStore;
use crate::limits::OverLimit;
pub use crate::limits::SPECTRUM_WORK;

/// WeightWatcher's `EVALS_THRESH`: eigenvalues of `W^T W` at or below it are not fitted.
pub const EVALS_THRESHOLD: f64 = 1e-5;
/// WeightWatcher's `min_evals`: no alpha for matrices with a smaller side below this.
pub const MIN_EVALS: usize = 8;
/// Below this many eigenvalues WeightWatcher fits with its small-N estimator.
const SMALL_N: usize = 20;
/// Smallest tail the small-N estimator considers.
const SMALL_N_MIN_TAIL: usize = 8;

/// The spectrum of one layer's weight.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Spectrum {
    /// The weight as one matrix: `[rows, cols]` = `[out, in * kernel positions]`.
    pub rows: usize,
    pub cols: usize,
    /// Singular values of that matrix, largest first.
    pub singular_values: Vec<f64>,
    /// `||W||_F^2 / ||W||_2^2` (0 for an all-zero weight).
    pub stable_rank: f64,
    /// The power-law fit of the ESD; `None` when the matrix is too small or the fit fails.
    pub power_law: Option<PowerLaw>,
}

/// A continuous power law fitted to the tail of the ESD.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PowerLaw {
    pub alpha: f64,
    /// The tail's lower end, as an eigenvalue of `W^T W / N`.
    pub xmin: f64,
    /// Kolmogorov-Smirnov distance of the fit.
    pub ks_distance: f64,
    /// `(alpha - 1) / sqrt(tail)`.
    pub sigma: f64,
    /// Eigenvalues in the tail (`>= xmin`).
    pub tail: usize,
    /// Eigenvalues fitted (after the threshold).
    pub eigenvalues: usize,
}

/// A weight seen as `positions` matrices of `[out, in]` (one per kernel position; 1 for a Linear).
#[derive(Clone, Debug)]
pub struct WeightMatrix {
    pub out: usize,
    pub inp: usize,
    pub positions: usize,
    /// `values[(o * inp + i) * positions + p]`: the canonical `[out, in, positions]` order.
    pub values: Vec<f64>,
}

impl WeightMatrix {
    /// The weight of a Linear or (ungrouped or grouped) conv layer in canonical order; `None` for
    /// other layers or a weight whose shape does not match its layout.
    pub fn of_layer(kind: &LayerKind, store: &TensorStore) -> Option<WeightMatrix> {
        match kind {
            LayerKind::Linear { weight, layout, .. } => {
                let t = store.get(weight)?;
                let [a, b] = t.shape[..] else { return None };
                let raw = t.to_f64();
                let (out, inp) = match layout {
                    MatrixLayout::OutIn => (a, b),
                    MatrixLayout::InOut => (b, a),
                };
                let values = match layout {
                    MatrixLayout::OutIn => raw,
                    MatrixLayout::InOut => (0..out * inp).map(|k| raw[(k % inp) * out + k / inp]).collect(),
                };
                Some(WeightMatrix { out, inp, positions: 1, values })
            }
            LayerKind::Conv { weight, layout, kernel, .. } => {
                let t = store.get(weight)?;
                let positions: usize = kernel.iter().product();
                let k = kernel.len();
                if t.shape.len() != k + 2 || positions == 0 {
                    return None;
                }
                let raw = t.to_f64();
                let (out, inp) = match layout {
                    KernelLayout::OutInKernel => (t.shape[0], t.shape[1]),
                    KernelLayout::KernelInOut => (t.shape[k + 1], t.shape[k]),
                    KernelLayout::InOutKernel => (t.shape[1], t.shape[0]),
                };
                if out * inp * positions != raw.len() {
                    return None;
                }
                let values = match layout {
                    KernelLayout::OutInKernel => raw,
                    KernelLayout::KernelInOut => {
                        let mut v = vec![0.0; raw.len()];
                        for p in 0..positions {
                            for i in 0..inp {
                                for o in 0..out {
                                    v[(o * inp + i) * positions + p] = raw[(p * inp + i) * out + o];
                                }
                            }
                        }
                        v
                    }
                    KernelLayout::InOutKernel => {
                        let mut v = vec![0.0; raw.len()];
                        for i in 0..inp {
                            for o in 0..out {
                                for p in 0..positions {
                                    v[(o * inp + i) * positions + p] = raw[(i * out + o) * positions + p];
                                }
                            }
                        }
                        v
                    }
                };
                Some(WeightMatrix { out, inp, positions, values })
            }
            _ => None,
        }
    }

    /// Multiply-adds of [`spectrum`] on this weight (`None`: overflow).
    pub fn work(&self) -> Option<u64> {
        work(self.out, self.inp, self.positions)
    }
}

/// Multiply-adds of a spectrum of an `[out, in, positions]` weight: the Gram matrix (`m^2 n`) and
/// its eigenvalues (`m^3`) of the whole `[out, in * positions]` matrix, plus the same for each
/// kernel position's `[out, in]` slice when there is more than one (the ESD). `None`: overflow.
pub fn work(out: usize, inp: usize, positions: usize) -> Option<u64> {
    let gram = |r: usize, c: usize| -> Option<u64> {
        let (m, n) = (r.min(c) as u64, r.max(c) as u64);
        m.checked_mul(m)?.checked_mul(n)?.checked_add(m.checked_mul(m)?.checked_mul(m)?)
    };
    let whole = gram(out, inp.checked_mul(positions)?)?;
    if positions == 1 {
        return Some(whole);
    }
    whole.checked_add(gram(out, inp)?.checked_mul(positions as u64)?)
}

/// The spectrum of a Linear or conv layer, its work checked against `max_work` before any weight
/// value is read; `None` for other layers.
pub fn layer_spectrum(kind: &LayerKind, store: &TensorStore, max_work: u64) -> Option<Result<Spectrum, SpectrumError>> {
    let (out, inp, positions) = layer_dims(kind, store)?;
    if let Err(e) = SPECTRUM_WORK.check(work(out, inp, positions), max_work) {
        return Some(Err(e.into()));
    }
    Some(spectrum(&WeightMatrix::of_layer(kind, store)?, max_work))
}

/// `(out, in, kernel positions)` of a Linear or conv weight, from its shape alone.
fn layer_dims(kind: &LayerKind, store: &TensorStore) -> Option<(usize, usize, usize)> {
    match kind {
        LayerKind::Linear { weight, layout, .. } => {
            let [a, b] = store.get(weight)?.shape[..] else { return None };
            Some(match layout {
                MatrixLayout::OutIn => (a, b, 1),
                MatrixLayout::InOut => (b, a, 1),
            })
        }
        LayerKind::Conv { weight, layout, kernel, .. } => {
            let shape = &store.get(weight)?.shape;
            let k = kernel.len();
            if shape.len() != k + 2 {
                return None;
            }
            let (out, inp) = match layout {
                KernelLayout::OutInKernel => (shape[0], shape[1]),
                KernelLayout::KernelInOut => (shape[k + 1], shape[k]),
                KernelLayout::InOutKernel => (shape[1], shape[0]),
            };
            Some((out, inp, kernel.iter().product()))
        }
        _ => None,
    }
}

/// Why a layer has no spectrum.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SpectrumError {
    #[error(transparent)]
    TooLarge(#[from] OverLimit),
    #[error("the weight holds non-finite values (NaN or infinity)")]
    NonFinite,
}

/// The spectrum of `w`, refused when its work exceeds `max_work` ([`SPECTRUM_WORK`]).
pub fn spectrum(w: &WeightMatrix, max_work: u64) -> Result<Spectrum, SpectrumError> {
    SPECTRUM_WORK.check(w.work(), max_work)?;
    let cols = w.inp * w.positions;
    let ascending = gram_eigenvalues(w.out, cols, |r, c| w.values[r * cols + c]).ok_or(SpectrumError::NonFinite)?;
    let mut eig = ascending.clone();
    eig.reverse();
    let singular_values: Vec<f64> = eig.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let frobenius2: f64 = eig.iter().map(|&l| l.max(0.0)).sum();
    let top = eig.first().copied().unwrap_or(0.0);
    let stable_rank = if top > 0.0 { frobenius2 / top } else { 0.0 };
    let power_law = if w.out.min(w.inp) < MIN_EVALS {
        None
    } else if w.positions == 1 {
        // One kernel position: the ESD is the whole matrix's eigenvalues.
        let esd: Vec<f64> = ascending.iter().map(|l| l.max(0.0)).collect();
        fit_power_law(&esd, w)
    } else {
        esd(w).and_then(|e| fit_power_law(&e, w))
    };
    Ok(Spectrum { rows: w.out, cols, singular_values, stable_rank, power_law })
}

/// Eigenvalues of `W^T W` for every kernel-position slice of `w`, pooled and ascending.
fn esd(w: &WeightMatrix) -> Option<Vec<f64>> {
    let mut all = Vec::with_capacity(w.out.min(w.inp) * w.positions);
    for p in 0..w.positions {
        let slice = gram_eigenvalues(w.out, w.inp, |o, i| w.values[(o * w.inp + i) * w.positions + p])?;
        all.extend(slice.into_iter().map(|l| l.max(0.0)));
    }
    all.sort_by(f64::total_cmp);
    Some(all)
}

/// Eigenvalues (ascending) of the Gram matrix of the smaller side of the `rows x cols` matrix
/// `at(r, c)`: the squared singular values.
fn gram_eigenvalues(rows: usize, cols: usize, at: impl Fn(usize, usize) -> f64) -> Option<Vec<f64>> {
    // X: the smaller side's vectors as contiguous rows, so each Gram entry is one dot product.
    let (m, n) = if rows <= cols { (rows, cols) } else { (cols, rows) };
    let mut x = vec![0.0; m * n];
    for r in 0..rows {
        for c in 0..cols {
            let (i, k) = if rows <= cols { (r, c) } else { (c, r) };
            x[i * n + k] = at(r, c);
        }
    }
    let mut g = vec![0.0; m * m];
    crate::cka::gemm::a_at(&x, m, n, &mut g);
    symmetric_eigenvalues(&mut g, m)
}

/// WeightWatcher's power-law fit of the pooled eigenvalues `evals` (of `W^T W`, ascending).
fn fit_power_law(evals: &[f64], w: &WeightMatrix) -> Option<PowerLaw> {
    let data: Vec<f64> = evals.iter().copied().filter(|&l| l > EVALS_THRESHOLD).collect();
    let n_all = data.len();
    if n_all < 2 {
        return None;
    }
    let logs: Vec<f64> = data.iter().map(|x| x.ln()).collect();
    // Suffix sums of the logs: sum over the tail starting at i.
    let mut suffix = vec![0.0; n_all + 1];
    for i in (0..n_all).rev() {
        suffix[i] = suffix[i + 1] + logs[i];
    }
    let small = n_all < SMALL_N;
    let mut best: Option<(f64, usize, f64)> = None; // (D, i, alpha)
    let mut first_alpha = None;
    for i in 0..n_all - 1 {
        let tail = n_all - i;
        let n = tail as f64;
        let s = suffix[i] - n * logs[i];
        let (alpha, valid) = if small {
            if tail < SMALL_N_MIN_TAIL || s <= 1e-12 {
                (0.0, false)
            } else {
                let a = 1.0 + (n - 1.0) / s;
                (a, a > 1.0)
            }
        } else {
            let a = 1.0 + n / s;
            (a, a > 1.0 && a.is_finite())
        };
        if i == 0 {
            first_alpha = Some(alpha);
        }
        // WeightWatcher keeps D = 1 for candidates it skips, and takes the first smallest D.
        let d = if valid {
            let xmin = data[i];
            (0..tail)
                .map(|k| (1.0 - (data[i + k] / xmin).powf(1.0 - alpha) - k as f64 / n).abs())
                .fold(0.0f64, f64::max)
        } else {
            1.0
        };
        if best.is_none_or(|(bd, _, _)| d < bd) {
            best = Some((d, i, alpha));
        }
    }
    let (d, i, alpha) = best.or(first_alpha.map(|a| (1.0, 0, a)))?;
    if !alpha.is_finite() || alpha <= 0.0 {
        return None;
    }
    let tail = n_all - i;
    let big_n = w.out.max(w.inp) as f64;
    Some(PowerLaw {
        alpha,
        xmin: data[i] / big_n,
        ks_distance: d,
        sigma: (alpha - 1.0) / (tail as f64).sqrt(),
        tail,
        eigenvalues: n_all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn matrix(out: usize, inp: usize, positions: usize, seed: u64) -> WeightMatrix {
        let mut rng = SplitMix64::new(seed);
        let values = (0..out * inp * positions).map(|_| f64::from(rng.normal())).collect();
        WeightMatrix { out, inp, positions, values }
    }

    #[test]
    fn singular_values_of_a_diagonal_matrix_and_its_stable_rank() {
        let mut w = WeightMatrix { out: 3, inp: 4, positions: 1, values: vec![0.0; 12] };
        for (i, s) in [2.0, -5.0, 1.0].into_iter().enumerate() {
            w.values[i * 4 + i] = s;
        }
        let s = spectrum(&w, u64::MAX).unwrap();
        for (got, want) in s.singular_values.iter().zip([5.0, 2.0, 1.0]) {
            assert!((got - want).abs() < 1e-12, "{:?}", s.singular_values);
        }
        assert!((s.stable_rank - 30.0 / 25.0).abs() < 1e-12);
        assert!(s.power_law.is_none(), "3 x 4 is below min_evals");
    }

    #[test]
    fn spectrum_is_invariant_to_transposition_and_row_permutation() {
        let w = matrix(12, 30, 1, 3);
        let mut t = WeightMatrix { out: 30, inp: 12, positions: 1, values: vec![0.0; 360] };
        for o in 0..12 {
            for i in 0..30 {
                // transpose, and reverse the rows
                t.values[(29 - i) * 12 + o] = w.values[o * 30 + i];
            }
        }
        let (a, b) = (spectrum(&w, u64::MAX).unwrap(), spectrum(&t, u64::MAX).unwrap());
        for (x, y) in a.singular_values.iter().zip(&b.singular_values) {
            assert!((x - y).abs() < 1e-10 * a.singular_values[0]);
        }
        let (pa, pb) = (a.power_law.unwrap(), b.power_law.unwrap());
        assert!((pa.alpha - pb.alpha).abs() < 1e-9);
        // The ESD is normalised by the larger side both ways.
        assert!((pa.xmin - pb.xmin).abs() < 1e-9 * pa.xmin);
    }

    #[test]
    fn alpha_does_not_depend_on_the_weight_scale() {
        let w = matrix(40, 64, 1, 5);
        let scaled = WeightMatrix { values: w.values.iter().map(|v| v * 1e3).collect(), ..w.clone() };
        let (a, b) = (spectrum(&w, u64::MAX).unwrap(), spectrum(&scaled, u64::MAX).unwrap());
        assert!((a.power_law.unwrap().alpha - b.power_law.unwrap().alpha).abs() < 1e-9);
        assert!((a.stable_rank - b.stable_rank).abs() < 1e-9 * a.stable_rank);
    }

    #[test]
    fn a_pure_power_law_esd_gives_its_exponent() {
        // Eigenvalues at the quantiles of a Pareto law with exponent 3: the MLE must find ~3.
        let n = 2000;
        let alpha = 3.0f64;
        let evals: Vec<f64> = (0..n).map(|k| (1.0 - (k as f64 + 0.5) / n as f64).powf(-1.0 / (alpha - 1.0))).collect();
        let w = WeightMatrix { out: 2000, inp: 2000, positions: 1, values: Vec::new() };
        let fit = fit_power_law(&evals, &w).unwrap();
        assert!((fit.alpha - alpha).abs() < 0.1, "{fit:?}");
    }

    #[test]
    fn over_the_limit_is_refused_with_the_flag() {
        let w = WeightMatrix { out: 4096, inp: 4096, positions: 1, values: Vec::new() };
        let err = spectrum(&w, SPECTRUM_WORK.default).unwrap_err().to_string();
        assert!(err.contains("--max-spectrum-work"), "{err}");
        let bad = WeightMatrix { out: 2, inp: 2, positions: 1, values: vec![1.0, f64::NAN, 0.0, 1.0] };
        assert_eq!(spectrum(&bad, u64::MAX), Err(SpectrumError::NonFinite));
    }
}
