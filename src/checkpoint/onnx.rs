//! ONNX model files. STUB: replaced by the real reader.
use super::{Blob, Error, Result, TensorStore};
use std::path::Path;

pub fn read(path: &Path, _blob: Blob) -> Result<TensorStore> {
    Err(Error::new(path, "ONNX reader not implemented yet"))
}

pub fn looks_like_onnx(_bytes: &[u8]) -> bool {
    false
}
