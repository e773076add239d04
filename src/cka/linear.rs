//! Linear-kernel HSIC terms for lists of layers, in whichever form is cheaper:
//! - feature space (`||Yc^T Xc||_F^2`, p x p products, memory independent of n) — the usual case;
//! - Gram form (`<Xc Xc^T, Yc Yc^T>`, one n x n matrix per layer) — only when the examples are
//!   fewer than the widths make worthwhile and every Gram matrix fits in the memory budget.
//!
//! Each layer's centring, self term and diagonal are computed once and shared by its whole
//! row/column of the matrix.

use super::centre::Centring;
use super::feature::{Inner, Layer, feature_inner};
use super::gemm::{Backend, Real, a_at};
use super::hsic::{Diagonal, HsicTerms, hsic_from_inner};
use super::{ActivationsView, Estimator, Precision, Result, Side};

/// Below this many multiply-adds, `Precision::Auto` computes in f64 (it costs milliseconds).
const AUTO_F64_MAX_WORK: f64 = 2e8;

/// Which product form a linear CKA matrix uses (exposed for benchmarks and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearForm {
    Feature,
    Gram,
}

/// The work plan for a matrix: form and element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearPlan {
    pub form: LinearForm,
    pub f64: bool,
}

/// Picks the form from n and the widths (multiply-add counts of both, Gram only if it fits).
pub fn plan(
    n: usize,
    widths_a: &[usize],
    widths_b: &[usize],
    symmetric: bool,
    precision: Precision,
    budget: usize,
) -> LinearPlan {
    let nf = n as f64;
    let (pa, pb): (f64, f64) = (widths_a.iter().sum::<usize>() as f64, widths_b.iter().sum::<usize>() as f64);
    let sq = |w: &[usize]| w.iter().map(|&p| (p as f64).powi(2)).sum::<f64>();
    // Self products are symmetric: half a GEMM each.
    let feature = if symmetric { nf * pa * pa / 2.0 } else { nf * (pa * pb + 0.5 * (sq(widths_a) + sq(widths_b))) };
    let grams = if symmetric { widths_a.len() } else { widths_a.len() + widths_b.len() };
    let pairs = (widths_a.len() * widths_b.len()) as f64;
    let gram = nf * nf * (if symmetric { pa } else { pa + pb }) + 4.0 * nf * nf * pairs;
    let use_f64 = match precision {
        Precision::F64 => true,
        Precision::F32 => false,
        Precision::Auto => feature.min(gram) < AUTO_F64_MAX_WORK,
    };
    let elem = if use_f64 { 8.0 } else { 4.0 };
    let gram_bytes = grams as f64 * nf * nf * elem;
    let form = if gram < feature && gram_bytes <= budget as f64 { LinearForm::Gram } else { LinearForm::Feature };
    LinearPlan { form, f64: use_f64 }
}

/// HSIC terms (linear kernel) between every layer of `a` and every layer of `b`. `symmetric`
/// means `b` is `a` (its terms are then computed once). Inputs are validated by the caller.
pub(crate) fn linear_terms(
    a: &[ActivationsView<'_>],
    b: &[ActivationsView<'_>],
    symmetric: bool,
    estimator: Estimator,
    precision: Precision,
    budget: usize,
) -> Result<HsicTerms> {
    let n = a[0].n();
    let ca = Centring::of_layers(a, Side::A)?;
    let cb = if symmetric { Vec::new() } else { Centring::of_layers(b, Side::B)? };
    let la: Vec<Layer<'_>> = a.iter().zip(&ca).map(|(&view, centring)| Layer { view, centring }).collect();
    let lb: Vec<Layer<'_>> = if symmetric {
        la.clone()
    } else {
        b.iter().zip(&cb).map(|(&view, centring)| Layer { view, centring }).collect()
    };
    let widths = |l: &[Layer<'_>]| l.iter().map(|l| l.view.p()).collect::<Vec<_>>();
    // f64 inputs are computed in f64 throughout: their values were never f32.
    let any_f64 = a.iter().chain(b).any(ActivationsView::is_f64);
    let precision = if any_f64 { Precision::F64 } else { precision };
    let plan = plan(n, &widths(&la), &widths(&lb), symmetric, precision, budget);
    let raw = match (plan.form, plan.f64) {
        (LinearForm::Feature, true) => feature_raw::<f64>(&la, &lb, symmetric, n, budget),
        (LinearForm::Feature, false) => feature_raw::<f32>(&la, &lb, symmetric, n, budget),
        (LinearForm::Gram, true) => gram_raw::<f64>(&la, &lb, symmetric, n),
        (LinearForm::Gram, false) => gram_raw::<f32>(&la, &lb, symmetric, n),
    };
    let diag = |layers: &[Layer<'_>]| -> Vec<Diagonal> {
        match estimator {
            Estimator::Unbiased => layers.iter().map(|l| Diagonal::new(l.centring.row_sq_norms(&l.view))).collect(),
            Estimator::Biased => vec![Diagonal::default(); layers.len()],
        }
    };
    let da = diag(&la);
    let db = if symmetric { da.clone() } else { diag(&lb) };
    let cross = (0..da.len() * db.len())
        .map(|k| {
            let (i, j) = (k / db.len(), k % db.len());
            hsic_from_inner(raw.cross[k], &da[i], &db[j], n, estimator)
        })
        .collect();
    let self_terms = |inner: &[f64], d: &[Diagonal]| -> Vec<f64> {
        inner.iter().zip(d).map(|(&x, d)| hsic_from_inner(x, d, d, n, estimator)).collect()
    };
    let exponents = |l: &[Layer<'_>]| l.iter().map(|l| l.centring.exponent).collect();
    let terms = HsicTerms {
        rows: la.len(),
        cols: lb.len(),
        cross,
        row_self: self_terms(&raw.self_a, &da),
        col_self: self_terms(&raw.self_b, &db),
        row_exp: exponents(&la),
        col_exp: exponents(&lb),
    };
    Ok(terms)
}

fn feature_raw<T: Real>(a: &[Layer<'_>], b: &[Layer<'_>], symmetric: bool, n: usize, budget: usize) -> Inner {
    feature_inner::<T>(a, (!symmetric).then_some(b), n, budget, Backend::detect())
}

/// Gram form: one centred n x n Gram matrix per layer, then inner products between them.
fn gram_raw<T: Real>(a: &[Layer<'_>], b: &[Layer<'_>], symmetric: bool, n: usize) -> Inner {
    let gram = |l: &Layer<'_>| -> Vec<T> {
        let mut centred = vec![T::default(); n * l.view.p()];
        l.centring.pack(&l.view, 0, n, &mut centred, l.view.p(), 0);
        let mut k = vec![T::default(); n * n];
        a_at(&centred, n, l.view.p(), &mut k);
        k
    };
    let inner = |x: &[T], y: &[T]| x.iter().zip(y).map(|(u, v)| u.to_f64() * v.to_f64()).sum::<f64>();
    let ka: Vec<Vec<T>> = a.iter().map(gram).collect();
    let kb: Vec<Vec<T>> = if symmetric { Vec::new() } else { b.iter().map(gram).collect() };
    let kb_ref = if symmetric { &ka } else { &kb };
    // In scaled units, like the feature form: K_scaled = s^2 K.
    let mut cross = vec![0.0; a.len() * b.len()];
    for (i, ki) in ka.iter().enumerate() {
        for (j, lj) in kb_ref.iter().enumerate() {
            if symmetric && j < i {
                cross[i * b.len() + j] = cross[j * b.len() + i];
            } else {
                cross[i * b.len() + j] = inner(ki, lj);
            }
        }
    }
    let self_a: Vec<f64> = ka.iter().map(|k| inner(k, k)).collect();
    let self_b = if symmetric { self_a.clone() } else { kb.iter().map(|k| inner(k, k)).collect() };
    Inner { cross, self_a, self_b }
}
