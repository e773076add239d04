//! Activation files (safetensors or .npz, one tensor per layer, first dimension = examples) ->
//! CKA layers. Shared by `gmnscope cka` and the app's CKA explorer.
//!
//! A gmnscope activation set (what `gmnscope study` writes: tensors `layer0..layerK`, a
//! `predictions` vector, and the layer names in the safetensors metadata under
//! [`LAYER_NAMES_KEY`]) is read as its named layers only: the prediction vector is a class id per
//! example, not a representation, and is listed in [`LayerFile::skipped`].
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
    /// Tensors of the file that are not layers (an activation set's `predictions`).
    pub skipped: Vec<String>,
}

/// The safetensors metadata key under which an activation set lists its layer names.
pub const LAYER_NAMES_KEY: &str = "layers";

/// The metadata value naming an activation set's layers: a JSON array of strings (names may hold
/// commas and quotes).
pub fn layer_names_metadata(names: &[String]) -> String {
    serde_json::to_string(names).unwrap_or_default()
}

/// Reads [`layer_names_metadata`]; files of earlier versions hold the names joined by commas.
pub fn parse_layer_names(value: &str) -> Vec<String> {
    if value.trim_start().starts_with('[')
        && let Ok(names) = serde_json::from_str::<Vec<String>>(value)
    {
        return names;
    }
    value.split(',').map(str::to_string).collect()
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
    // An activation set: its `layer<i>` tensors under the names in the metadata, nothing else.
    let (layers, display_names, skipped): (Vec<&TensorInfo>, Vec<String>, Vec<String>) = match store
        .metadata
        .get(LAYER_NAMES_KEY)
    {
        Some(value) => {
            let listed = parse_layer_names(value);
            let mut layers = Vec::with_capacity(listed.len());
            for i in 0..listed.len() {
                let t = store.get(&format!("layer{i}")).ok_or_else(|| {
                    err(format!("the metadata names {} layers but there is no tensor 'layer{i}'", listed.len()))
                })?;
                layers.push(t);
            }
            let taken: std::collections::HashSet<&str> = layers.iter().map(|t| t.name.as_str()).collect();
            let skipped =
                store.tensors().iter().filter(|t| !taken.contains(t.name.as_str())).map(|t| t.name.clone()).collect();
            (layers, listed, skipped)
        }
        None => {
            (store.tensors().iter().collect(), store.tensors().iter().map(|t| t.name.clone()).collect(), Vec::new())
        }
    };
    let mut names: Vec<String> = Vec::with_capacity(layers.len());
    let mut acts: Vec<Activations> = Vec::with_capacity(layers.len());
    for (t, display_name) in layers.into_iter().zip(display_names) {
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
        names.push(display_name);
        acts.push(act);
    }
    if acts.is_empty() {
        return Err(err("no tensors (expected one activation tensor per layer)".into()));
    }
    Ok(LayerFile { path: path.to_path_buf(), names, acts, skipped })
}

/// Checks the CKA matrix of two files (layers of `a` x layers of `b`) against `max_entries`
/// before anything of that size is allocated.
pub fn check_matrix_size(a: &LayerFile, b: &LayerFile, max_entries: u64) -> Result<(), String> {
    let entries = (a.acts.len() as u64).checked_mul(b.acts.len() as u64);
    CKA_ENTRIES.check(entries, max_entries).map_err(|e: OverLimit| {
        format!("{} ({} layers) vs {} ({} layers): {e}", a.path.display(), a.acts.len(), b.path.display(), b.acts.len())
    })
}
