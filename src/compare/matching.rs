//! Whether two files hold one architecture, and if not, the first layer that differs.

use crate::arch::Architecture;
use crate::checkpoint::TensorStore;
use crate::text::shown;

/// Two files of different architectures: names the first layer that differs.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{a} and {b} have different architectures: {what}")]
pub struct Mismatch {
    pub a: String,
    pub b: String,
    /// Index of the first layer that differs (in A's order).
    pub layer: usize,
    pub what: String,
}

/// `Ok` when A and B have the same layers in the same order (kinds, sizes, wiring, tensor shapes
/// and float-ness); tensor and layer names may differ.
pub fn same_architecture(
    a: &TensorStore,
    a_arch: &Architecture,
    b: &TensorStore,
    b_arch: &Architecture,
) -> Result<(), Mismatch> {
    let err = |layer: usize, what: String| Mismatch {
        a: shown(&a.path.display().to_string()).to_string(),
        b: shown(&b.path.display().to_string()).to_string(),
        layer,
        what,
    };
    for (i, (la, lb)) in a_arch.layers.iter().zip(&b_arch.layers).enumerate() {
        let (da, db) = (la.kind.describe(), lb.kind.describe());
        let name = shown(&la.name);
        if da != db {
            return Err(err(i, format!("layer {i} `{name}` is {da} in A but {db} in B")));
        }
        if la.input != lb.input || la.parallel_to != lb.parallel_to {
            return Err(err(i, format!("layer {i} `{name}` reads {:?} in A but {:?} in B", la.input, lb.input)));
        }
        if la.tensors.len() != lb.tensors.len() {
            return Err(err(
                i,
                format!("layer {i} `{name}` has {} tensors in A but {} in B", la.tensors.len(), lb.tensors.len()),
            ));
        }
        for (ta, tb) in la.tensors.iter().zip(&lb.tensors) {
            let (Some(ta), Some(tb)) = (a.get(ta), b.get(tb)) else { continue };
            if ta.shape != tb.shape || ta.dtype.is_float() != tb.dtype.is_float() {
                return Err(err(
                    i,
                    format!(
                        "layer {i} `{name}`: tensor '{}' is {:?} {} in A but '{}' is {:?} {} in B",
                        shown(&ta.name),
                        ta.shape,
                        ta.dtype.name(),
                        shown(&tb.name),
                        tb.shape,
                        tb.dtype.name()
                    ),
                ));
            }
        }
    }
    let (na, nb) = (a_arch.layers.len(), b_arch.layers.len());
    if na != nb {
        let (which, longer) = if na > nb { ("A", a_arch) } else { ("B", b_arch) };
        let i = na.min(nb);
        let name = longer.layers.get(i).map(|l| shown(&l.name).to_string()).unwrap_or_default();
        return Err(err(i, format!("layer {i} `{name}` is only in {which} ({na} layers in A, {nb} in B)")));
    }
    Ok(())
}
