//! Layer-by-layer differences between two checkpoints: relative change `||A - B|| / ||A||`,
//! cosine similarity, largest element difference, and the layers only one file has. With an
//! [`Alignment`], B is compared after its units are permuted onto A's.

use super::align::Alignment;
use super::matching;
use crate::arch::Architecture;
use crate::checkpoint::TensorStore;

/// Two tensors are called equal when every element differs by at most this times the largest
/// magnitude of A's tensor (relative, so it holds for weights of any scale; f32 rounding of a
/// permuted copy is exact, so only genuinely different values exceed it).
pub const EQUAL_TOLERANCE: f64 = 1e-6;

/// One layer present in both files.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerDiff {
    pub name: String,
    pub kind: String,
    /// Floating-point elements compared (parameters and running statistics).
    pub elements: usize,
    /// `||A - B|| / ||A||` (`None` when A's layer is all zeros).
    pub relative_change: Option<f64>,
    /// `<A, B> / (||A|| ||B||)` (`None` when either is all zeros).
    pub cosine: Option<f64>,
    pub max_abs_difference: f64,
    /// Every element within [`EQUAL_TOLERANCE`] of A's.
    pub equal: bool,
}

/// How two files relate overall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Same layers, every tensor equal within the tolerance.
    Equal,
    /// Not equal as stored, equal once B's units are permuted onto A's.
    EquivalentUpToPermutation,
    Different,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Diff {
    pub layers: Vec<LayerDiff>,
    /// Layers (by name) only A or only B has, and layers whose tensor shapes differ.
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub shape_differs: Vec<String>,
    /// `||A - B|| / ||A||` over every compared layer.
    pub relative_change: Option<f64>,
    pub aligned: bool,
    pub tolerance: f64,
    pub verdict: Verdict,
}

/// Accumulates the sums one layer's metrics need.
#[derive(Default)]
struct Sums {
    aa: f64,
    bb: f64,
    ab: f64,
    dd: f64,
    max_diff: f64,
    elements: usize,
    equal: bool,
}

impl Sums {
    fn add(&mut self, a: &[f64], b: &[f64]) {
        let max_a = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut max_diff = 0.0f64;
        for (x, y) in a.iter().zip(b) {
            self.aa += x * x;
            self.bb += y * y;
            self.ab += x * y;
            let d = x - y;
            self.dd += d * d;
            max_diff = max_diff.max(d.abs());
        }
        // NaN differences are never equal.
        self.equal &= max_diff <= EQUAL_TOLERANCE * max_a && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= max_diff);
        self.max_diff = self.max_diff.max(max_diff);
        self.elements += a.len();
    }

    fn finish(&self, name: String, kind: String) -> LayerDiff {
        let ratio = |num: f64, den: f64| (den > 0.0).then(|| num / den);
        LayerDiff {
            name,
            kind,
            elements: self.elements,
            relative_change: ratio(self.dd.sqrt(), self.aa.sqrt()),
            cosine: ratio(self.ab, self.aa.sqrt() * self.bb.sqrt()),
            max_abs_difference: self.max_diff,
            equal: self.equal,
        }
    }
}

/// Compares B with A. Layers are paired by position when the files have one architecture,
/// otherwise by name (tensors by position within a layer). `alignment` (from
/// [`super::align::align`] on the same files) permutes B first.
pub fn diff(
    a: &TensorStore,
    a_arch: &Architecture,
    b: &TensorStore,
    b_arch: &Architecture,
    alignment: Option<&Alignment>,
) -> Diff {
    let same = matching::same_architecture(a, a_arch, b, b_arch).is_ok();
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let (mut only_in_a, mut only_in_b, mut shape_differs) = (Vec::new(), Vec::new(), Vec::new());
    if same {
        pairs = (0..a_arch.layers.len()).map(|i| (i, i)).collect();
    } else {
        for (i, la) in a_arch.layers.iter().enumerate() {
            match b_arch.layers.iter().position(|lb| lb.name == la.name) {
                Some(j) => {
                    let lb = &b_arch.layers[j];
                    let shapes = |arch_store: &TensorStore, names: &[String]| -> Vec<Option<Vec<usize>>> {
                        names.iter().map(|n| arch_store.get(n).map(|t| t.shape.clone())).collect()
                    };
                    if shapes(a, &la.tensors) == shapes(b, &lb.tensors) {
                        pairs.push((i, j));
                    } else {
                        shape_differs.push(la.name.clone());
                    }
                }
                None => only_in_a.push(la.name.clone()),
            }
        }
        for lb in &b_arch.layers {
            if !a_arch.layers.iter().any(|la| la.name == lb.name) {
                only_in_b.push(lb.name.clone());
            }
        }
    }
    let alignment = alignment.filter(|_| same);
    let mut total = Sums { equal: true, ..Sums::default() };
    let mut layers = Vec::with_capacity(pairs.len());
    // With an alignment: whether B also equals A as stored (then no permutation was needed).
    let mut stored = Sums { equal: true, ..Sums::default() };
    for (i, j) in pairs {
        let (la, lb) = (&a_arch.layers[i], &b_arch.layers[j]);
        let mut sums = Sums { equal: true, ..Sums::default() };
        for (s, (na, nb)) in la.tensors.iter().zip(&lb.tensors).enumerate() {
            let (Some(ta), Some(tb)) = (a.get(na), b.get(nb)) else { continue };
            if !ta.dtype.is_float() || !tb.dtype.is_float() {
                continue;
            }
            let va = ta.to_f64();
            let raw = tb.to_f64();
            let vb = match alignment {
                Some(al) => {
                    stored.add(&va, &raw);
                    al.permuted_values(b, b_arch, j, s).unwrap_or(raw)
                }
                None => raw,
            };
            sums.add(&va, &vb);
            total.add(&va, &vb);
        }
        layers.push(sums.finish(la.name.clone(), la.kind.name()));
    }
    let all_equal = layers.iter().all(|l| l.equal);
    let nothing_missing = only_in_a.is_empty() && only_in_b.is_empty() && shape_differs.is_empty();
    let verdict = match (all_equal && nothing_missing, alignment) {
        (false, _) => Verdict::Different,
        (true, None) => Verdict::Equal,
        (true, Some(_)) if stored.equal => Verdict::Equal,
        (true, Some(_)) => Verdict::EquivalentUpToPermutation,
    };
    Diff {
        layers,
        only_in_a,
        only_in_b,
        shape_differs,
        relative_change: (total.aa > 0.0).then(|| total.dd.sqrt() / total.aa.sqrt()),
        aligned: alignment.is_some(),
        tolerance: EQUAL_TOLERANCE,
        verdict,
    }
}
