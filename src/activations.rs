//! Activation files (safetensors or .npz, one tensor per layer, first dimension = examples) ->
//! CKA layers. Shared by `gmnscope cka` and the app's CKA explorer.
//!
//! Values keep their precision: f64 (and 32/64-bit integer) tensors stay f64, so CKA of
//! activations beyond f32's range (1e300, 1e-300) is computed, not turned into infinities or
//! zeros; f32, f16 and bf16 tensors become f32. Memory is the file's values once, widened at
//! most 2x (f16 -> f32); a layer's name enters messages only through [`crate::text::shown`].

use std::path::{Path, PathBuf};

use crate::checkpoint::{DType, TensorInfo};
use crate::cka::{Activations, ActivationsView, Values};
use crate::limits::{CKA_ENTRIES, OverLimit};
use crate::text::shown;

/// One file's layers, in file order.
#[derive(Clone, Debug)]
pub struct LayerFile {
    pub path: PathBuf,
    pub names: Vec<String>,
    pub acts: Vec<Activations>,
}

impl LayerFile {
    pub fn views(&self) -> Vec<ActivationsView<'_>> {
        self.acts.iter().map(Activations::view).collect()
    }

    /// Examples per layer (every layer has the same).
    pub fn n(&self) -> usize {
        self.acts.first().map_or(0, |a| a.n)
    }
}

/// A tensor's values as CKA input: f64 where f32 would round or overflow them.
pub fn values(t: &TensorInfo) -> Values {
    match t.dtype {
        DType::F64 | DType::I64 | DType::U64 | DType::I32 | DType::U32 => Values::F64(t.to_f64()),
        _ => Values::F32(t.to_f32()),
    }
}

/// Reads every tensor of an activation file as an `examples x features` matrix. Errors are one
/// line naming the file (and the layer).
pub fn load(path: &Path) -> Result<LayerFile, String> {
    let store = crate::checkpoint::open(path).map_err(|e| e.to_string())?;
    from_store(&store)
}

/// [`load`] for a file already opened (the fuzz tests open bytes in memory).
pub fn from_store(store: &crate::checkpoint::TensorStore) -> Result<LayerFile, String> {
    let path = store.path.as_path();
    let err = |msg: String| format!("{}: {msg}", path.display());
    let mut names: Vec<String> = Vec::with_capacity(store.len());
    let mut acts: Vec<Activations> = Vec::with_capacity(store.len());
    for t in store.tensors() {
        let Some((&n, rest)) = t.shape.split_first() else {
            return Err(err(format!("tensor '{}' is a scalar; expected (examples, features...)", shown(&t.name))));
        };
        let Some(p) = rest.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
            return Err(err(format!("tensor '{}' has an impossible shape {:?}", shown(&t.name), t.shape)));
        };
        if let (Some(first), Some(first_name)) = (acts.first(), names.first())
            && first.n != n
        {
            return Err(err(format!(
                "layer '{}' has {n} examples but layer '{}' has {}; every layer must see the same examples",
                shown(&t.name),
                shown(first_name),
                first.n
            )));
        }
        let act = Activations::new(n, p, values(t)).map_err(|e| err(format!("tensor '{}': {e}", shown(&t.name))))?;
        names.push(t.name.clone());
        acts.push(act);
    }
    if acts.is_empty() {
        return Err(err("no tensors (expected one activation tensor per layer)".into()));
    }
    Ok(LayerFile { path: path.to_path_buf(), names, acts })
}

/// Checks the CKA matrix of two files (layers of `a` x layers of `b`) against `max_entries`
/// before anything of that size is allocated.
pub fn check_matrix_size(a: &LayerFile, b: &LayerFile, max_entries: u64) -> Result<(), String> {
    let entries = (a.acts.len() as u64).checked_mul(b.acts.len() as u64);
    CKA_ENTRIES.check(entries, max_entries).map_err(|e: OverLimit| {
        format!("{} ({} layers) vs {} ({} layers): {e}", a.path.display(), a.acts.len(), b.path.display(), b.acts.len())
    })
}
