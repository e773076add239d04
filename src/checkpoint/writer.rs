//! Writes safetensors files: tensors in the order given (the `safetensors` crate's `serialize`
//! sorts by dtype and name, which would lose the layer order gmnscope relies on).
//!
//! Used for the embedded demo models, benchmark inputs and exports. Output goes to a temp file
//! that is renamed into place, so an interrupted write leaves nothing half-written.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
    write_atomically(path, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        for t in tensors {
            w.write_all(&t.bytes)?;
        }
        Ok(())
    })
}

/// Runs `write` against a temp file next to `path`, then renames it into place.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut io::BufWriter<std::fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    prepare(path, write)?.commit()
}

/// A file written in full (and synced) to a temp path beside its destination, not yet in place:
/// several files can be prepared and then committed together, so an export on a nearly full
/// disk fails before any of them replaces an older one. Dropped uncommitted, the temp is removed.
#[must_use = "a prepared file is removed unless committed"]
pub struct Prepared {
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl Prepared {
    /// Renames the file into place.
    pub fn commit(mut self) -> io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.committed {
            std::fs::remove_file(&self.tmp).ok();
        }
    }
}

/// Writes `path`'s content to its temp file (after removing temps of `path` that killed runs
/// left, see [`crate::temp_files`]); [`Prepared::commit`] moves it into place.
pub fn prepare(
    path: &Path,
    write: impl FnOnce(&mut io::BufWriter<std::fs::File>) -> io::Result<()>,
) -> io::Result<Prepared> {
    crate::temp_files::remove_stale(path);
    let tmp = crate::temp_files::temp_path_for(path);
    let prepared = Prepared { tmp, path: path.to_path_buf(), committed: false };
    let mut w = io::BufWriter::new(std::fs::File::create(&prepared.tmp)?);
    write(&mut w)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(prepared)
}
