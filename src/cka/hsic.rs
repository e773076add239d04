//! HSIC values for every layer pair and their normalisation into CKA.
//!
//! Both estimators are expressed through the same per-pair quantities of centred kernels
//! `K = Xc Xc^T` (never formed in feature space): `<K, L>` (= `||Yc^T Xc||_F^2`), the diagonals
//! `r = diag K` (squared row norms) and traces `s = tr K`.
//! - biased: `HSIC0 = <K, L> / (n-1)^2`;
//! - unbiased (Song et al. 2012, rewritten for centred data, papers.md §5):
//!   `HSIC1 = [<K, L> - n/(n-2) r_K . r_L + s_K s_L / ((n-1)(n-2))] / (n(n-3))`.

use super::{Estimator, Matrix};

/// HSIC between every row layer and column layer, plus each layer's HSIC with itself.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HsicTerms {
    pub rows: usize,
    pub cols: usize,
    /// Row-major `rows x cols`.
    pub cross: Vec<f64>,
    pub row_self: Vec<f64>,
    pub col_self: Vec<f64>,
    /// The units: every term involving row layer i was computed from its data times
    /// `2^row_exp[i]` (so a term is in `2^(2 row_exp[i] + 2 col_exp[j])` times its own units).
    /// f64 cannot hold HSIC of 1e-300-scale data in the data's units; CKA cancels the factors.
    pub row_exp: Vec<i32>,
    pub col_exp: Vec<i32>,
}

impl HsicTerms {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            cross: vec![0.0; rows * cols],
            row_self: vec![0.0; rows],
            col_self: vec![0.0; cols],
            row_exp: vec![0; rows],
            col_exp: vec![0; cols],
        }
    }

    /// `self += other` (for averaging minibatches), `other` converted to `self`'s units. A layer
    /// with nothing accumulated yet (constant so far: all its terms are 0) takes `other`'s units.
    pub fn add(&mut self, other: &HsicTerms) {
        let adopt = |exp: &mut [i32], own: &[f64], theirs: &[i32]| {
            for ((e, &v), &t) in exp.iter_mut().zip(own).zip(theirs) {
                if v == 0.0 {
                    *e = t;
                }
            }
        };
        adopt(&mut self.row_exp, &self.row_self, &other.row_exp);
        adopt(&mut self.col_exp, &self.col_self, &other.col_exp);
        // Factor taking a term of `other` into self's units for layer pair (i, j).
        let shift = |mine: i32, theirs: i32| 2.0 * (mine as f64 - theirs as f64);
        let rows: Vec<f64> = self.row_exp.iter().zip(&other.row_exp).map(|(&m, &t)| shift(m, t)).collect();
        let cols: Vec<f64> = self.col_exp.iter().zip(&other.col_exp).map(|(&m, &t)| shift(m, t)).collect();
        for (k, (x, y)) in self.cross.iter_mut().zip(&other.cross).enumerate() {
            *x += y * (rows[k / self.cols.max(1)] + cols[k % self.cols.max(1)]).exp2();
        }
        for ((x, y), r) in self.row_self.iter_mut().zip(&other.row_self).zip(&rows) {
            *x += y * (2.0 * r).exp2();
        }
        for ((x, y), c) in self.col_self.iter_mut().zip(&other.col_self).zip(&cols) {
            *x += y * (2.0 * c).exp2();
        }
    }

    /// CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)); undefined where a self term is not
    /// positive (constant layer, or a negative unbiased estimate).
    pub fn to_matrix(&self) -> Matrix {
        Matrix::from_fn(self.rows, self.cols, |i, j| {
            let (kk, ll) = (self.row_self[i], self.col_self[j]);
            (kk > 0.0 && ll > 0.0).then(|| self.cross[i * self.cols + j] / (kk.sqrt() * ll.sqrt()))
        })
    }
}

/// The centred-kernel quantities of one layer needed by the unbiased estimator.
#[derive(Clone, Debug, Default)]
pub(crate) struct Diagonal {
    /// `diag K`: squared norm of each centred example.
    pub r: Vec<f64>,
    /// `tr K`.
    pub s: f64,
}

impl Diagonal {
    pub fn new(r: Vec<f64>) -> Self {
        let s = r.iter().sum();
        Self { r, s }
    }
}

/// Turns `<K, L>` into an HSIC estimate. `k`, `l` are only read by the unbiased estimator.
pub(crate) fn hsic_from_inner(inner: f64, k: &Diagonal, l: &Diagonal, n: usize, estimator: Estimator) -> f64 {
    let nf = n as f64;
    match estimator {
        Estimator::Biased => inner / ((nf - 1.0) * (nf - 1.0)),
        Estimator::Unbiased => {
            let rr: f64 = k.r.iter().zip(&l.r).map(|(a, b)| a * b).sum();
            let d = inner - nf / (nf - 2.0) * rr + k.s * l.s / ((nf - 1.0) * (nf - 2.0));
            d / (nf * (nf - 3.0))
        }
    }
}
