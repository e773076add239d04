//! CKA properties that hold for any data (papers.md §5): self-similarity 1, invariance to
//! orthogonal maps and isotropic scaling, symmetry, no invariance to general linear maps,
//! minibatch convergence, precision and memory-streaming consistency, and degenerate input.

use gmnscope::cka::{
    Activations, ActivationsView, Error, Estimator, Kernel, MinibatchCka, Options, Precision, Side, cka, cka_matrix,
};
use gmnscope::rng::SplitMix64;

fn gaussian(rng: &mut SplitMix64, n: usize, p: usize) -> Vec<f64> {
    (0..n * p).map(|_| rng.normal() as f64).collect()
}

fn acts(n: usize, p: usize, data: &[f64]) -> Activations {
    Activations::new(n, p, data.iter().map(|&v| v as f32).collect::<Vec<f32>>()).unwrap()
}

/// `x (n x p) * m (p x q)`, row-major f64.
fn matmul(x: &[f64], n: usize, p: usize, m: &[f64], q: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * q];
    for i in 0..n {
        for k in 0..p {
            let xv = x[i * p + k];
            for j in 0..q {
                out[i * q + j] += xv * m[k * q + j];
            }
        }
    }
    out
}

/// A random p x p orthogonal matrix: the product of p Householder reflections of random
/// directions (equivalently, the Q of a QR factorisation of a Gaussian matrix).
fn random_orthogonal(rng: &mut SplitMix64, p: usize) -> Vec<f64> {
    let mut q: Vec<f64> = (0..p * p).map(|k| if k / p == k % p { 1.0 } else { 0.0 }).collect();
    for _ in 0..p {
        let v = gaussian(rng, 1, p);
        let norm2: f64 = v.iter().map(|x| x * x).sum();
        // Q <- Q (I - 2 v v^T / |v|^2)
        for row in 0..p {
            let dot: f64 = (0..p).map(|k| q[row * p + k] * v[k]).sum();
            for k in 0..p {
                q[row * p + k] -= 2.0 * dot * v[k] / norm2;
            }
        }
    }
    q
}

/// Y related to X nonlinearly, plus noise: CKA values well inside (0, 1).
fn related_pair(rng: &mut SplitMix64, n: usize, p: usize, q: usize) -> (Vec<f64>, Vec<f64>) {
    let x = gaussian(rng, n, p);
    let w = gaussian(rng, p, q);
    let mut y = matmul(&x, n, p, &w, q);
    for v in &mut y {
        *v = (*v / (p as f64).sqrt()).tanh() + 0.5 * rng.normal() as f64;
    }
    (x, y)
}

fn all_options() -> Vec<(&'static str, Options)> {
    vec![
        ("linear", Options::linear()),
        ("debiased", Options::debiased_linear()),
        ("rbf", Options::rbf(0.5)),
        ("rbf-debiased", Options { estimator: Estimator::Unbiased, ..Options::rbf(0.5) }),
    ]
}

#[test]
fn self_similarity_is_one_for_every_estimator_and_path() {
    let mut rng = SplitMix64::new(1);
    let (n, p) = (200, 30);
    let x = acts(n, p, &gaussian(&mut rng, n, p));
    let copy = x.clone();
    for (name, opts) in all_options() {
        for precision in [Precision::F32, Precision::F64] {
            let opts = Options { precision, ..opts.clone() };
            // Same buffer (symmetric path) and an equal copy (general path).
            let same = cka(x.view(), x.view(), &opts).unwrap();
            let other = cka(x.view(), copy.view(), &opts).unwrap();
            assert!((same - 1.0).abs() < 1e-12, "{name} {precision:?}: {same}");
            assert!((other - 1.0).abs() < 1e-6, "{name} {precision:?}: {other}");
        }
    }
}

#[test]
fn invariant_to_orthogonal_maps_and_isotropic_scaling() {
    let mut rng = SplitMix64::new(2);
    let (n, p, q) = (150, 12, 9);
    let (x, y) = related_pair(&mut rng, n, p, q);
    let rot = random_orthogonal(&mut rng, p);
    // Orthogonality of the test's own construction.
    let qtq = matmul(&transpose(&rot, p, p), p, p, &rot, p);
    for i in 0..p {
        for j in 0..p {
            assert!((qtq[i * p + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
        }
    }
    let rotated = matmul(&x, n, p, &rot, p);
    let scaled: Vec<f64> = x.iter().map(|v| v * 37.5).collect();
    let (xa, ya, ra, sa) = (acts(n, p, &x), acts(n, q, &y), acts(n, p, &rotated), acts(n, p, &scaled));
    for (name, opts) in all_options() {
        let base = cka(xa.view(), ya.view(), &opts).unwrap();
        assert!(base > 0.05 && base < 0.95, "{name}: {base}");
        let r = cka(ra.view(), ya.view(), &opts).unwrap();
        let s = cka(sa.view(), ya.view(), &opts).unwrap();
        assert!((r - base).abs() < 1e-5, "{name}: rotated {r} vs {base}");
        assert!((s - base).abs() < 1e-5, "{name}: scaled {s} vs {base}");
    }
}

fn transpose(m: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols * rows).map(|k| m[(k % rows) * cols + k / rows]).collect()
}

#[test]
fn not_invariant_to_a_general_invertible_linear_map() {
    let mut rng = SplitMix64::new(3);
    let (n, p) = (300, 6);
    let x = gaussian(&mut rng, n, p);
    // Y sees only the last five features of X.
    let y: Vec<f64> = (0..n).flat_map(|i| x[i * p + 1..(i + 1) * p].to_vec()).collect();
    // Invertible (triangular, non-zero diagonal) but not orthogonal: stretches feature 0, which Y ignores.
    let mut m = vec![0.0; p * p];
    for i in 0..p {
        m[i * p + i] = 1.0;
    }
    m[0] = 10.0;
    m[1] = 0.5;
    let mapped = matmul(&x, n, p, &m, p);
    let (xa, ya, ma) = (acts(n, p, &x), acts(n, p - 1, &y), acts(n, p, &mapped));
    for (name, opts) in all_options() {
        let before = cka(xa.view(), ya.view(), &opts).unwrap();
        let after = cka(ma.view(), ya.view(), &opts).unwrap();
        assert!((before - after).abs() > 0.1, "{name}: {before} vs {after}");
    }
}

#[test]
fn symmetric_in_its_arguments_and_matrices_transpose() {
    let mut rng = SplitMix64::new(4);
    let n = 120;
    let layers: Vec<Activations> = [5, 17, 40, 3].iter().map(|&p| acts(n, p, &gaussian(&mut rng, n, p))).collect();
    let (a, b): (Vec<_>, Vec<_>) =
        (layers[..2].iter().map(|l| l.view()).collect(), layers[2..].iter().map(|l| l.view()).collect());
    for (name, opts) in all_options() {
        let ab = cka_matrix(&a, &b, &opts).unwrap();
        let ba = cka_matrix(&b, &a, &opts).unwrap();
        for i in 0..2 {
            for j in 0..2 {
                let (u, v) = (ab.get(i, j).unwrap(), ba.get(j, i).unwrap());
                assert!((u - v).abs() < 1e-12, "{name}: {u} vs {v}");
                if opts.estimator == Estimator::Biased {
                    assert!((0.0..=1.0).contains(&u), "{name}: biased CKA {u} outside [0, 1]");
                }
            }
        }
    }
}

#[test]
fn symmetric_matrix_path_agrees_with_the_general_path() {
    let mut rng = SplitMix64::new(5);
    let n = 400;
    let layers: Vec<Activations> = [20, 300, 64].iter().map(|&p| acts(n, p, &gaussian(&mut rng, n, p))).collect();
    let copies = layers.clone();
    let a: Vec<ActivationsView<'_>> = layers.iter().map(Activations::view).collect();
    let c: Vec<ActivationsView<'_>> = copies.iter().map(Activations::view).collect();
    for (name, opts) in all_options() {
        let sym = cka_matrix(&a, &a, &opts).unwrap();
        let general = cka_matrix(&a, &c, &opts).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let (s, g) = (sym.get(i, j).unwrap(), general.get(i, j).unwrap());
                assert!((s - g).abs() < 1e-9, "{name} ({i},{j}): {s} vs {g}");
                assert!((s - sym.get(j, i).unwrap()).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn f32_products_agree_with_f64_and_memory_streaming_changes_nothing() {
    // Large offsets and spreads over 4 orders of magnitude stress the f32 path.
    let mut rng = SplitMix64::new(6);
    let n = 3000;
    let widths = [7, 64, 300, 129];
    let layers: Vec<Activations> = widths
        .iter()
        .enumerate()
        .map(|(k, &p)| {
            let scale = 10f64.powi(k as i32 - 2);
            let data: Vec<f64> = gaussian(&mut rng, n, p).iter().map(|v| 100.0 * scale + v * scale).collect();
            acts(n, p, &data)
        })
        .collect();
    let v: Vec<ActivationsView<'_>> = layers.iter().map(Activations::view).collect();
    let (a, b) = (&v[..2], &v[1..]);
    for estimator in [Estimator::Biased, Estimator::Unbiased] {
        let opts = |precision, memory_budget| Options { estimator, precision, memory_budget, ..Options::default() };
        let exact = cka_matrix(a, b, &opts(Precision::F64, 1 << 30)).unwrap();
        let f32_full = cka_matrix(a, b, &opts(Precision::F32, 1 << 30)).unwrap();
        // 256 KiB: many row chunks and one layer per group.
        let streamed = cka_matrix(a, b, &opts(Precision::F64, 256 << 10)).unwrap();
        let streamed32 = cka_matrix(a, b, &opts(Precision::F32, 256 << 10)).unwrap();
        for i in 0..a.len() {
            for j in 0..b.len() {
                let e = exact.get(i, j).unwrap();
                assert!((f32_full.get(i, j).unwrap() - e).abs() < 1e-5, "{estimator:?} f32 ({i},{j})");
                assert!((streamed.get(i, j).unwrap() - e).abs() < 1e-10, "{estimator:?} streamed ({i},{j})");
                assert!((streamed32.get(i, j).unwrap() - e).abs() < 1e-5, "{estimator:?} streamed f32 ({i},{j})");
            }
        }
    }
}

#[test]
fn minibatch_estimate_converges_to_the_full_data_debiased_value() {
    let mut rng = SplitMix64::new(7);
    let (n, p, q, batch) = (24_000, 10, 6, 120);
    let (x, y) = related_pair(&mut rng, n, p, q);
    let (xa, ya) = (acts(n, p, &x), acts(n, q, &y));
    let full = cka(xa.view(), ya.view(), &Options::debiased_linear()).unwrap();
    let mut acc = MinibatchCka::new(Options::default());
    assert_eq!(acc.estimate(), Err(Error::NoBatches));
    let mut errors = Vec::new();
    for (k, start) in (0..n).step_by(batch).enumerate() {
        let xb = xa.view().rows(start, start + batch).unwrap();
        let yb = ya.view().rows(start, start + batch).unwrap();
        acc.push(&[xb], &[yb]).unwrap();
        if [2, 20, 200].contains(&(k + 1)) {
            errors.push((acc.estimate().unwrap().get(0, 0).unwrap() - full).abs());
        }
    }
    assert_eq!((acc.batches(), acc.examples()), (200, n));
    // Error shrinks roughly as 1/sqrt(batches): loose bounds at each stage, tight at the end.
    assert!(errors[0] < 0.05 && errors[1] < 0.02 && errors[2] < 0.005, "{errors:?}");
    assert!(errors[2] < errors[0], "{errors:?}");
}

#[test]
fn minibatch_rejects_bad_batches_without_changing_the_estimate() {
    let mut rng = SplitMix64::new(8);
    let (x, y) = related_pair(&mut rng, 50, 4, 3);
    let (xa, ya) = (acts(50, 4, &x), acts(50, 3, &y));
    let mut acc = MinibatchCka::new(Options::default());
    acc.push(&[xa.view().rows(0, 25).unwrap()], &[ya.view().rows(0, 25).unwrap()]).unwrap();
    let before = acc.estimate().unwrap();
    let tiny = acc.push(&[xa.view().rows(25, 28).unwrap()], &[ya.view().rows(25, 28).unwrap()]);
    assert!(matches!(tiny, Err(Error::TooFewExamples { n: 3, needed: 4, .. })), "{tiny:?}");
    let wider = acts(25, 5, &gaussian(&mut rng, 25, 5));
    let changed = acc.push(&[wider.view()], &[ya.view().rows(25, 50).unwrap()]);
    assert!(matches!(changed, Err(Error::BatchLayersChanged { side: Side::A, .. })), "{changed:?}");
    assert_eq!(acc.estimate().unwrap(), before);
    assert_eq!(acc.batches(), 1);
}

#[test]
fn degenerate_input_gives_typed_errors_or_undefined_entries_never_nan() {
    let mut rng = SplitMix64::new(9);
    let n = 40;
    let x = acts(n, 5, &gaussian(&mut rng, n, 5));
    let constant = Activations::new(n, 3, vec![2.5; n * 3]).unwrap();
    for (name, opts) in all_options() {
        let e = cka(constant.view(), x.view(), &opts).unwrap_err();
        assert_eq!(e, Error::Undefined { side: Side::A, layer: 0 }, "{name}");
        let e = cka(x.view(), constant.view(), &opts).unwrap_err();
        assert_eq!(e, Error::Undefined { side: Side::B, layer: 0 }, "{name}");
        // In a matrix only the constant layer's entries are undefined.
        let m = cka_matrix(&[x.view(), constant.view()], &[x.view()], &opts).unwrap();
        assert!(m.get(0, 0).is_some_and(|v| (v - 1.0).abs() < 1e-9), "{name}");
        assert_eq!(m.get(1, 0), None, "{name}");
        assert_eq!(m.undefined_count(), 1);
    }

    let three = acts(3, 5, &gaussian(&mut rng, 3, 5));
    let e = cka(three.view(), three.view(), &Options::debiased_linear()).unwrap_err();
    assert_eq!(e, Error::TooFewExamples { estimator: "unbiased", n: 3, needed: 4 });
    assert!(cka(three.view(), three.view(), &Options::linear()).is_ok());

    let other_n = acts(n + 1, 5, &gaussian(&mut rng, n + 1, 5));
    let e = cka(x.view(), other_n.view(), &Options::linear()).unwrap_err();
    assert_eq!(e, Error::MismatchedExamples { side: Side::B, layer: 0, n: n + 1, expected: n });

    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let gmnscope::cka::Values::F32(mut data) = x.data.clone() else { unreachable!("f32 test data") };
        data[7 * 5 + 2] = bad;
        let poisoned = Activations::new(n, 5, data).unwrap();
        for (name, opts) in all_options() {
            let e = cka(x.view(), poisoned.view(), &opts).unwrap_err();
            assert!(matches!(e, Error::NonFinite { side: Side::B, layer: 0, row: 7, col: 2, .. }), "{name}: {e}");
        }
    }

    assert_eq!(cka_matrix(&[], &[x.view()], &Options::linear()), Err(Error::NoLayers));
    let e = cka(x.view(), x.view(), &Options::rbf(0.0)).unwrap_err();
    assert!(matches!(e, Error::InvalidOption(_)), "{e}");
    // RBF needs n x n kernels: a tiny budget refuses instead of allocating.
    let e = cka(x.view(), x.view(), &Options { memory_budget: 1000, ..Options::rbf(0.5) }).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    assert!(Activations::new(4, 4, vec![0.0; 15]).is_err());
}

#[test]
fn kernel_names_are_stable() {
    // The CLI's JSON uses these names.
    assert_eq!(Kernel::Linear.name(), "linear");
    assert_eq!(Kernel::Rbf { sigma_frac: 0.5 }.name(), "rbf");
    assert_eq!(Estimator::Unbiased.name(), "unbiased");
}
