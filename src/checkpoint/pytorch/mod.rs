//! PyTorch `torch.save` files -> [`TensorStore`], without Python and without running the pickle.
//!
//! # Supported
//! - **Zip format** (PyTorch >= 1.6, the default): `<dir>/data.pkl` plus one `<dir>/data/<key>` entry
//!   per storage, `<dir>/byteorder` honoured (big-endian storages are byte-swapped). Stored entries
//!   are zero-copy views of the memory-mapped file; deflated entries are inflated when their
//!   values are first read. (`zipfile.rs`).
//! - **Legacy format** (PyTorch < 1.6 or `_use_new_zipfile_serialization=False`): magic number,
//!   version, sys_info and object pickles followed by the raw storages. (`legacy.rs`).
//! - Pickle protocols 0-5 (torch writes 2), read by our own restricted unpickler (`pickle.rs`).
//! - Tensors from `torch._utils._rebuild_tensor{,_v2,_v3}`, wrapped or not in `_rebuild_parameter*`
//!   or `torch._tensor._rebuild_from_type_v2`; dtypes f64/f32/f16/bf16, i64/i32/i16/i8, u64/u32/
//!   u16/u8, bool. Views (several tensors on one storage, offsets, transposes, expands) are
//!   gathered into C order; contiguous little-endian tensors stay zero-copy.
//! - Checkpoint layouts: a bare (Ordered)dict of tensors, or a dict nesting it under `state_dict`,
//!   `model`, `ema`, ... next to epochs, optimizer state and configs (ignored); nested dicts and
//!   lists of tensors are flattened with `.`; a `module.` prefix on every name is stripped. (`state_dict.rs`). Tensors keep the order in which the pickle lists them.
//!
//! # Refused, and why
//! A pickle is a program: GLOBAL/STACK_GLOBAL/INST import any Python name and REDUCE/NEWOBJ/OBJ
//! call it, which is how a `.pt` file runs `os.system`. The unpickler never imports or calls; it
//! accepts only the names on the allow-list in `globals.rs` (OrderedDict, the tensor rebuild
//! functions, storage classes, dtypes, `torch.Size`, and a few plain-data classes kept as opaque
//! values) and refuses the whole file on any other name, e.g. `refusing to load: pickle references
//! global 'os.system' (arbitrary code)`. Whole pickled modules (`torch.save(model)`) are refused the
//! same way: they name model classes. Also refused: sparse/quantized/complex tensors, conj/neg view
//! bits, out-of-band pickle buffers, the extension registry, and the pre-2018 tar format.
//!
//! Every length and offset from the file is checked (with checked arithmetic) against the file
//! size before use; malformed files give an [`Error`] naming the file and the problem.
//!
//! # Work budget
//! What a file may cost grows linearly with its size (`budget.rs`): the unpickler's memory and
//! copying, the tensor names, a deflated pickle's inflated size (`zipfile.rs`), and bytes copied to
//! gather strided tensors or inflated at open for them (below). Beyond it the file is refused with
//! the limit named.

mod budget;
mod globals;
mod legacy;
mod pickle;
mod state_dict;
mod tensor;
mod zipfile;

use std::path::Path;

use super::{Blob, Error, Format, Result, TensorInfo, TensorStore};
use crate::text::shown;
use pickle::Pickle;
use tensor::StorageBytes;

/// Reads a `torch.save` file in any of the formats above (chosen from its first bytes).
pub fn read(path: &Path, blob: Blob) -> Result<TensorStore> {
    let bytes = blob.as_slice();
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return zipfile::read(path, blob);
    }
    if bytes.first() == Some(&0x80) {
        return legacy::read(path, blob);
    }
    if bytes.get(257..262) == Some(b"ustar".as_slice()) {
        return Err(Error::new(
            path,
            "this is the tar-based torch.save format of PyTorch <= 0.1.10, which is not supported; \
             load and re-save it with a recent PyTorch",
        ));
    }
    Err(Error::new(path, "not a torch.save file (neither a zip archive nor a legacy pickle stream)"))
}

/// Storage bytes by key, from whichever container the file uses.
trait StorageSource {
    fn storage(&mut self, key: &str) -> Result<StorageBytes, String>;
}

/// Turns the unpickled object into the store: finds the state dict, resolves each tensor's
/// storage and cuts out its bytes.
fn build_store(
    path: &Path,
    format: Format,
    pickle: &Pickle,
    storages: &mut dyn StorageSource,
    big_endian: bool,
    file_len: usize,
) -> Result<TensorStore> {
    let named = state_dict::discover(pickle).map_err(|m| Error::new(path, m))?;
    if named.is_empty() {
        return Err(Error::new(path, "no tensors found: the file holds no state dict of tensors"));
    }
    // Gathering strided tensors copies bytes; a small file may not claim unbounded memory.
    let mut copy_budget = file_len.saturating_mul(8).saturating_add(256 << 20);
    let mut tensors = Vec::with_capacity(named.len());
    for (name, value) in named {
        let fail = |message: String| Error::new(path, format!("tensor '{}': {message}", shown(&name)));
        let spec = tensor::spec(pickle, &value).map_err(fail)?;
        let bytes = storage_bytes(storages, &spec.storage).map_err(fail)?;
        let was_deferred = bytes.blob.is_deferred();
        let data = tensor::materialize(&spec, &bytes, big_endian, copy_budget).map_err(fail)?;
        if !data.is_in(&bytes.blob) {
            copy_budget = copy_budget.saturating_sub(data.len());
            if was_deferred && !bytes.blob.is_deferred() {
                copy_budget = copy_budget.saturating_sub(bytes.blob.len());
            }
        }
        tensors.push(TensorInfo { name, dtype: spec.dtype, shape: spec.shape, data });
    }
    TensorStore::new(path, format, tensors)
}

/// The bytes of a storage reference: the whole storage, or for a legacy storage view its part.
fn storage_bytes(storages: &mut dyn StorageSource, storage: &tensor::StorageRef) -> Result<StorageBytes, String> {
    let bytes = storages.storage(&storage.key)?;
    let element = storage.element_size()?;
    let Some((_, offset, size)) = &storage.view else {
        let declared = usize::try_from(storage.numel).ok().and_then(|n| n.checked_mul(element));
        if declared != Some(bytes.len()) {
            return Err(format!(
                "storage '{}' declares {} elements of {element} bytes but holds {} bytes",
                shown(&storage.key),
                storage.numel,
                bytes.len()
            ));
        }
        return Ok(bytes);
    };
    let start = usize::try_from(*offset).ok().and_then(|o| o.checked_mul(element));
    let len = usize::try_from(*size).ok().and_then(|s| s.checked_mul(element));
    match start.zip(len).and_then(|(s, l)| Some(s..s.checked_add(l)?)) {
        Some(r) if r.end <= bytes.len() => {
            Ok(StorageBytes { blob: bytes.blob, range: bytes.range.start + r.start..bytes.range.start + r.end })
        }
        _ => Err(format!("storage view of '{}' lies outside the storage", shown(&storage.key))),
    }
}
