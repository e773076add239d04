//! Writes safetensors files: tensors in the order given (the `safetensors` crate's `serialize`
//! sorts by dtype and name, which would lose the layer order gmnscope relies on).
//!
//! Used for the embedded demo models, benchmark inputs and exports. Output goes to a temp file
//! that is renamed into place, so an interrupted write leaves nothing half-written.

use std::io::{self, Write};
use std::path::Path;

use super::DType;

/// One tensor to write: name, dtype, shape and its little-endian bytes.
pub struct OwnedTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl OwnedTensor {
    pub fn f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), values.len(), "shape does not match the value count");
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self { name: name.into(), dtype: DType::F32, shape, bytes }
    }
}

fn safetensors_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::F64 => "F64",
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::I64 => "I64",
        DType::I32 => "I32",
        DType::I16 => "I16",
        DType::I8 => "I8",
        DType::U64 => "U64",
        DType::U32 => "U32",
        DType::U16 => "U16",
        DType::U8 => "U8",
        DType::Bool => "BOOL",
    }
}

/// The safetensors header for `tensors` laid out back to back in order, padded to 8 bytes.
fn header(tensors: &[OwnedTensor]) -> Vec<u8> {
    let mut json = String::from("{");
    let mut offset = 0usize;
    for (i, t) in tensors.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        let name = serde_json::to_string(&t.name).expect("a string always serialises");
        let end = offset + t.bytes.len();
        json.push_str(&format!(
            "{name}:{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{offset},{end}]}}",
            safetensors_dtype(t.dtype),
            t.shape
        ));
        offset = end;
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    json.into_bytes()
}

/// Serialises tensors into safetensors bytes.
pub fn to_safetensors_bytes(tensors: &[OwnedTensor]) -> Vec<u8> {
    let header = header(tensors);
    let data_len: usize = tensors.iter().map(|t| t.bytes.len()).sum();
    let mut out = Vec::with_capacity(8 + header.len() + data_len);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for t in tensors {
        out.extend_from_slice(&t.bytes);
    }
    out
}

/// Writes a safetensors file atomically (temp file + rename).
pub fn write_safetensors(path: &Path, tensors: &[OwnedTensor]) -> io::Result<()> {
    let header = header(tensors);
    crate::atomic_write::write_atomically(path, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        for t in tensors {
            w.write_all(&t.bytes)?;
        }
        Ok(())
    })
}
