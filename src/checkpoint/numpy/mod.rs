//! NumPy `.npy` arrays and `.npz` archives of them.
//!
//! - [`literal`]: the Python-literal dict inside an NPY header;
//! - [`npy`]: one array (header, descr, byte order, Fortran order) and the NPY header encoder the
//!   [`crate::npz_writer`] uses;
//! - [`npz`]: the zip container.

mod literal;
pub(crate) mod npy;
mod npz;

use std::path::Path;

use super::{Blob, Error, Format, Result, TensorStore};

/// Reads a single `.npy` file; the tensor is named after the file stem (`weights.npy` -> `weights`).
pub fn read_npy(path: &Path, blob: Blob) -> Result<TensorStore> {
    let name = path.file_stem().map_or_else(|| "array".to_string(), |s| s.to_string_lossy().into_owned());
    let tensor = npy::read_array(name, &blob, 0..blob.len()).map_err(|e| Error::new(path, e))?;
    TensorStore::new(path, Format::Npy, vec![tensor])
}

/// Reads an `.npz` archive; tensors in archive order, named after their entries minus `.npy`.
pub fn read_npz(path: &Path, blob: Blob) -> Result<TensorStore> {
    npz::read(path, blob)
}

/// A zip archive whose entries all end in `.npy`.
pub fn looks_like_npz(blob: &Blob) -> bool {
    npz::looks_like_npz(blob)
}
