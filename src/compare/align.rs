//! Weight matching (Ainsworth, Hayase & Srinivasa, "Git Re-Basin", ICLR 2023): the permutation of
//! B's hidden units that makes B's weights closest to A's. Each permutation group
//! ([`super::groups`]) is one linear assignment maximising `sum <A, P(B)>` over every tensor axis
//! the group indexes, with the other groups' current permutations applied; the groups are solved
//! in turn, in a seeded random order, until a whole sweep changes nothing (a fixed point: the
//! objective never decreases, so this ends) or `max_sweeps` is reached.
//!
//! Residual streams are one group (Git Re-Basin's reference code permutes the blocks of a ResNet
//! independently, which breaks the shortcut additions); B is checked to be A's architecture first.

use super::assignment;
use super::groups::{self, Groups, TensorAxes};
use super::matching::{self, Mismatch};
use crate::arch::Architecture;
use crate::checkpoint::TensorStore;
use crate::checkpoint::writer::OwnedTensor;
use crate::limits::OverLimit;
pub use crate::limits::{ASSIGNMENT_ENTRIES, SWEEP_WORK};
use crate::rng::SplitMix64;

#[derive(Clone, Copy, Debug)]
pub struct AlignOptions {
    pub max_assignment_entries: u64,
    pub max_sweep_work: u64,
    pub max_sweeps: usize,
    /// Seeds the order in which groups are solved within a sweep.
    pub seed: u64,
}

impl Default for AlignOptions {
    fn default() -> Self {
        Self {
            max_assignment_entries: ASSIGNMENT_ENTRIES.default,
            max_sweep_work: SWEEP_WORK.default,
            max_sweeps: 100,
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    #[error(transparent)]
    TooLarge(#[from] OverLimit),
    #[error("tensor '{0}' holds NaN or infinite values: no alignment is defined")]
    NonFinite(String),
}

/// One permutation group and what alignment did to it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupReport {
    /// The first layer whose outputs are these units.
    pub name: String,
    pub units: usize,
    /// Why the group keeps its order, or `None` when it was aligned.
    pub fixed: Option<String>,
    /// Units that moved (not at their own index).
    pub moved: usize,
    /// `permutation[i]`: the unit of B now at position `i`.
    pub permutation: Vec<usize>,
}

/// A layer's distance between A and B, before and after alignment.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerDistance {
    pub name: String,
    pub kind: String,
    /// `||A - B||` over the layer's floating-point tensors (parameters and running statistics).
    pub before: f64,
    pub after: f64,
}

/// The result of aligning B to A.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Alignment {
    pub groups: Vec<GroupReport>,
    /// Layers with floating-point tensors, in A's order.
    pub layers: Vec<LayerDistance>,
    /// `||A - B||` over every tensor of every layer.
    pub distance_before: f64,
    pub distance_after: f64,
    /// Sweeps run; `converged`: the last one changed nothing.
    pub sweeps: usize,
    pub converged: bool,
    #[serde(skip)]
    spec: Groups,
}

/// One tensor's values in A and B, with the axes it has on groups.
struct Pair {
    axes: TensorAxes,
    shape: Vec<usize>,
    a: Vec<f64>,
    b: Vec<f64>,
}

/// Aligns B to A. Both must have one architecture ([`matching::same_architecture`]).
pub fn align(
    a: &TensorStore,
    a_arch: &Architecture,
    b: &TensorStore,
    b_arch: &Architecture,
    options: &AlignOptions,
) -> Result<Alignment, AlignError> {
    matching::same_architecture(a, a_arch, b, b_arch)?;
    let spec = groups::groups(a_arch, a);
    let largest = spec.permuted().map(|g| spec.groups[g].size as u64).max().unwrap_or(0);
    ASSIGNMENT_ENTRIES.check(largest.checked_mul(largest), options.max_assignment_entries)?;
    SWEEP_WORK.check(sweep_work(&spec, a, a_arch), options.max_sweep_work)?;

    let mut pairs = Vec::with_capacity(spec.tensors.len());
    for t in &spec.tensors {
        let (ta, tb) = (tensor(a, a_arch, t.layer, t.slot), tensor(b, b_arch, t.layer, t.slot));
        let (Some(ta), Some(tb)) = (ta, tb) else { continue };
        let (va, vb) = (ta.to_f64(), tb.to_f64());
        for (info, v) in [(ta, &va), (tb, &vb)] {
            if v.iter().any(|x| !x.is_finite()) {
                return Err(AlignError::NonFinite(crate::text::shown(&info.name).to_string()));
            }
        }
        pairs.push(Pair { axes: t.clone(), shape: ta.shape.clone(), a: va, b: vb });
    }

    let mut perms: Vec<Vec<usize>> = spec.groups.iter().map(|g| (0..g.size).collect()).collect();
    let mut order: Vec<usize> = spec.permuted().filter(|&g| spec.groups[g].size > 1).collect();
    let mut rng = SplitMix64::new(options.seed);
    let mut sweeps = 0;
    let mut converged = order.is_empty();
    while !converged && sweeps < options.max_sweeps {
        sweeps += 1;
        shuffle(&mut order, &mut rng);
        let mut changed = false;
        for &g in &order {
            let n = spec.groups[g].size;
            let profit = profit(&pairs, g, n, &perms);
            let p = assignment::maximise(&profit, n);
            // Only a strictly better assignment replaces the current one (ties would cycle).
            let current: f64 = (0..n).map(|i| profit[i * n + perms[g][i]]).sum();
            let proposed: f64 = (0..n).map(|i| profit[i * n + p[i]]).sum();
            if p != perms[g] && proposed > current + 1e-12 * current.abs() {
                perms[g] = p;
                changed = true;
            }
        }
        converged = !changed;
    }

    let groups = spec
        .groups
        .iter()
        .zip(&perms)
        .map(|(g, p)| GroupReport {
            name: g.name.clone(),
            units: g.size,
            fixed: g.fixed.clone(),
            moved: p.iter().enumerate().filter(|(i, j)| i != *j).count(),
            permutation: p.clone(),
        })
        .collect();
    let mut alignment =
        Alignment { groups, layers: Vec::new(), distance_before: 0.0, distance_after: 0.0, sweeps, converged, spec };
    alignment.layers = layer_distances(a, a_arch, b, b_arch, &alignment);
    alignment.distance_before = alignment.layers.iter().map(|l| l.before * l.before).sum::<f64>().sqrt();
    alignment.distance_after = alignment.layers.iter().map(|l| l.after * l.after).sum::<f64>().sqrt();
    Ok(alignment)
}

impl Alignment {
    /// The permutation of every tensor of layer `layer`, slot `slot`: (axis, block, permutation).
    fn axes_of(&self, layer: usize, slot: usize) -> Vec<(usize, usize, &[usize])> {
        self.spec
            .tensors
            .iter()
            .filter(|t| t.layer == layer && t.slot == slot)
            .flat_map(|t| t.axes.iter())
            .map(|a| (a.axis, a.block, self.groups[a.group].permutation.as_slice()))
            .collect()
    }

    /// B's tensor with the alignment applied (values as f64).
    pub fn permuted_values(
        &self,
        b: &TensorStore,
        b_arch: &Architecture,
        layer: usize,
        slot: usize,
    ) -> Option<Vec<f64>> {
        let t = tensor(b, b_arch, layer, slot)?;
        let mut v = t.to_f64();
        for (axis, block, perm) in self.axes_of(layer, slot) {
            v = permute_axis(&v, &t.shape, axis, block, perm);
        }
        Some(v)
    }

    /// Every tensor of B in B's file order, with B's names and dtypes, the permuted ones with
    /// their elements moved (bytes, so no value changes by a conversion).
    pub fn aligned_tensors(&self, b: &TensorStore, b_arch: &Architecture) -> Vec<OwnedTensor> {
        let mut slot_of = std::collections::HashMap::new();
        for (l, layer) in b_arch.layers.iter().enumerate() {
            for (s, name) in layer.tensors.iter().enumerate() {
                slot_of.insert(name.as_str(), (l, s));
            }
        }
        b.tensors()
            .iter()
            .map(|t| {
                let mut bytes = t.bytes().to_vec();
                if let Some(&(l, s)) = slot_of.get(t.name.as_str()) {
                    let size = t.dtype.size();
                    for (axis, block, perm) in self.axes_of(l, s) {
                        let chunks: Vec<&[u8]> = bytes.chunks_exact(size).collect();
                        bytes = permute_axis(&chunks, &t.shape, axis, block, perm).concat();
                    }
                }
                OwnedTensor { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone(), bytes }
            })
            .collect()
    }
}

fn tensor<'s>(
    store: &'s TensorStore,
    arch: &Architecture,
    layer: usize,
    slot: usize,
) -> Option<&'s crate::checkpoint::TensorInfo> {
    store.get(arch.layers.get(layer)?.tensors.get(slot)?)
}

fn sweep_work(spec: &Groups, store: &TensorStore, arch: &Architecture) -> Option<u64> {
    let mut total = 0u64;
    for t in &spec.tensors {
        let elements = tensor(store, arch, t.layer, t.slot).map_or(0, |t| t.num_elements()) as u64;
        for a in &t.axes {
            total = total.checked_add((spec.groups[a.group].size as u64).checked_mul(elements)?)?;
        }
    }
    Some(total)
}

fn shuffle(v: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// `profit[i * n + j]`: the inner product of A's unit `i` with B's unit `j` over every tensor
/// axis on group `g`, B's other axes permuted by their groups' current permutations.
fn profit(pairs: &[Pair], g: usize, n: usize, perms: &[Vec<usize>]) -> Vec<f64> {
    let mut profit = vec![0.0; n * n];
    for pair in pairs {
        let Some(k) = pair.axes.axes.iter().position(|a| a.group == g) else { continue };
        let mut b = pair.b.clone();
        for (m, a) in pair.axes.axes.iter().enumerate() {
            if m != k {
                b = permute_axis(&b, &pair.shape, a.axis, a.block, &perms[a.group]);
            }
        }
        let axis = pair.axes.axes[k];
        let ra = rows_along(&pair.a, &pair.shape, axis.axis, axis.block, n);
        let rb = rows_along(&b, &pair.shape, axis.axis, axis.block, n);
        let width = ra.len() / n;
        crate::cka::gemm::a_bt_add(&ra, n, &rb, n, width, &mut profit);
    }
    profit
}

/// `shape` split around `axis`: (elements before it, its length, elements after it).
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// The values as `units` contiguous rows: row `u` holds every element whose index along `axis`
/// is in unit `u`'s block.
fn rows_along(v: &[f64], shape: &[usize], axis: usize, block: usize, units: usize) -> Vec<f64> {
    let (outer, len, inner) = split(shape, axis);
    debug_assert_eq!(len, units * block);
    let width = outer * block * inner;
    let mut rows = vec![0.0; v.len()];
    for o in 0..outer {
        for idx in 0..len {
            let (u, q) = (idx / block, idx % block);
            let src = &v[(o * len + idx) * inner..(o * len + idx + 1) * inner];
            let dst = u * width + (o * block + q) * inner;
            rows[dst..dst + inner].copy_from_slice(src);
        }
    }
    rows
}

/// `new[.., u * block + q, ..] = old[.., perm[u] * block + q, ..]` along `axis`.
pub fn permute_axis<T: Copy>(v: &[T], shape: &[usize], axis: usize, block: usize, perm: &[usize]) -> Vec<T> {
    let (outer, len, inner) = split(shape, axis);
    let mut out = Vec::with_capacity(v.len());
    for o in 0..outer {
        for idx in 0..len {
            let src = perm[idx / block] * block + idx % block;
            out.extend_from_slice(&v[(o * len + src) * inner..(o * len + src + 1) * inner]);
        }
    }
    out
}

/// Per-layer `||A - B||` before and after alignment, over the layer's float tensors (layers
/// without any, such as residuals, are left out).
fn layer_distances(
    a: &TensorStore,
    a_arch: &Architecture,
    b: &TensorStore,
    b_arch: &Architecture,
    alignment: &Alignment,
) -> Vec<LayerDistance> {
    a_arch
        .layers
        .iter()
        .enumerate()
        .filter_map(|(l, layer)| {
            let (mut before, mut after) = (0.0, 0.0);
            let mut compared = false;
            for s in 0..layer.tensors.len() {
                let (Some(ta), Some(tb)) = (tensor(a, a_arch, l, s), tensor(b, b_arch, l, s)) else { continue };
                if !ta.dtype.is_float() || ta.shape != tb.shape {
                    continue;
                }
                let va = ta.to_f64();
                let vb = tb.to_f64();
                let pb = alignment.permuted_values(b, b_arch, l, s).unwrap_or_else(|| vb.clone());
                compared = true;
                before += va.iter().zip(&vb).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
                after += va.iter().zip(&pb).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
            }
            compared.then(|| LayerDistance {
                name: layer.name.clone(),
                kind: layer.kind.name(),
                before: before.sqrt(),
                after: after.sqrt(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_axis_moves_whole_blocks() {
        // shape [2, 4] viewed along axis 1 as 2 units of 2 columns.
        let v = [0, 1, 2, 3, 10, 11, 12, 13];
        assert_eq!(permute_axis(&v, &[2, 4], 1, 2, &[1, 0]), vec![2, 3, 0, 1, 12, 13, 10, 11]);
        assert_eq!(permute_axis(&v, &[2, 4], 0, 1, &[1, 0]), vec![10, 11, 12, 13, 0, 1, 2, 3]);
        let rows = rows_along(&[0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0], &[2, 4], 1, 2, 2);
        assert_eq!(rows, vec![0.0, 1.0, 10.0, 11.0, 2.0, 3.0, 12.0, 13.0]);
    }
}
