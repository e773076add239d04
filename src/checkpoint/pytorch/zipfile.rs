//! The zip container of `torch.save` (PyTorch >= 1.6): `<dir>/data.pkl` (the pickle),
//! `<dir>/data/<key>` (one entry per storage), `<dir>/byteorder` ("little" or "big").
//!
//! torch writes every entry STORED, so a storage is a byte range of the memory-mapped file (found
//! from the entry's local header); deflated entries (a re-zipped checkpoint) are inflated into
//! owned buffers, never beyond what deflate can produce from the compressed size.

use std::collections::HashMap;
use std::io::{Cursor, Read as _};
use std::path::Path;

use ::zip::{CompressionMethod, ZipArchive};

use super::pickle::unpickle;
use super::tensor::StorageBytes;
use super::{StorageSource, build_store};
use crate::checkpoint::{Blob, Error, Format, Result, TensorStore};

/// Deflate expands at most ~1032:1; a larger declared size is a lie (or a zip bomb).
const MAX_DEFLATE_RATIO: u64 = 1100;

pub fn read(path: &Path, blob: Blob) -> Result<TensorStore> {
    let fail = |message: String| Error::new(path, message);
    let archive =
        ZipArchive::new(Cursor::new(blob.as_slice())).map_err(|e| fail(format!("not a readable zip archive: {e}")))?;
    // The pickle sits in a top-level folder named after the file when it was saved.
    let pickle_name = archive
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.matches('/').count())
        .map(str::to_string)
        .ok_or_else(|| fail("zip archive has no data.pkl entry, so it is not a torch.save file".into()))?;
    let prefix = pickle_name[..pickle_name.len() - "data.pkl".len()].to_string();

    let mut entries = Entries { archive, blob: blob.clone() };
    let big_endian = match entries.read_optional(&format!("{prefix}byteorder")).map_err(fail)? {
        None => false,
        Some(bytes) => match bytes.blob.as_slice().get(bytes.range.clone()).map(<[u8]>::trim_ascii) {
            Some(b"little") => false,
            Some(b"big") => true,
            _ => return Err(fail("the byteorder entry is neither 'little' nor 'big'".into())),
        },
    };
    let pickle_bytes = entries.read(&pickle_name).map_err(fail)?;
    let pickle_slice = pickle_bytes.blob.as_slice().get(pickle_bytes.range.clone()).unwrap_or_default();
    let (pickle, _) = unpickle(pickle_slice).map_err(|e| fail(format!("{pickle_name}: {e}")))?;

    let mut storages = ZipStorages { entries, prefix, cache: HashMap::new() };
    build_store(path, Format::PytorchZip, &pickle, &mut storages, big_endian, blob.len())
}

/// Entry contents of the archive, as ranges of the mapped file where possible.
struct Entries<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    blob: Blob,
}

impl Entries<'_> {
    fn read_optional(&mut self, name: &str) -> Result<Option<StorageBytes>, String> {
        match self.archive.index_for_name(name) {
            Some(_) => self.read(name).map(Some),
            None => Ok(None),
        }
    }

    fn read(&mut self, name: &str) -> Result<StorageBytes, String> {
        let index = self.archive.index_for_name(name).ok_or_else(|| format!("zip entry '{name}' is missing"))?;
        let (method, data_start, compressed, size, encrypted) = {
            let entry = self.archive.by_index_raw(index).map_err(|e| format!("zip entry '{name}': {e}"))?;
            (entry.compression(), entry.data_start(), entry.compressed_size(), entry.size(), entry.encrypted())
        };
        if encrypted {
            return Err(format!("zip entry '{name}' is encrypted"));
        }
        let range = usize::try_from(data_start)
            .ok()
            .zip(usize::try_from(compressed).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?))
            .filter(|r| r.end <= self.blob.len())
            .ok_or_else(|| format!("zip entry '{name}' runs past the end of the file (truncated?)"))?;
        match method {
            CompressionMethod::Stored => {
                if size != compressed {
                    return Err(format!("stored zip entry '{name}' has size {size} but {compressed} stored bytes"));
                }
                Ok(StorageBytes { blob: self.blob.clone(), range })
            }
            CompressionMethod::Deflated => self.inflate(name, index, compressed, size),
            other => Err(format!("zip entry '{name}' uses compression {other:?}, which is not supported")),
        }
    }

    fn inflate(&mut self, name: &str, index: usize, compressed: u64, size: u64) -> Result<StorageBytes, String> {
        if size > compressed.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024) {
            return Err(format!(
                "zip entry '{name}' claims {size} bytes from {compressed} deflated bytes, more than deflate can produce"
            ));
        }
        let entry = self.archive.by_index(index).map_err(|e| format!("zip entry '{name}': {e}"))?;
        let mut out = Vec::new();
        // The zip reader checks the CRC once the entry is read to its end.
        entry
            .take(size.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| format!("zip entry '{name}' does not inflate: {e}"))?;
        if out.len() as u64 != size {
            return Err(format!("zip entry '{name}' inflates to {} bytes, not the declared {size}", out.len()));
        }
        let len = out.len();
        Ok(StorageBytes { blob: Blob::from_vec(out), range: 0..len })
    }
}

/// Storages `<prefix>data/<key>`, each read (and inflated) once.
struct ZipStorages<'a> {
    entries: Entries<'a>,
    prefix: String,
    cache: HashMap<String, StorageBytes>,
}

impl StorageSource for ZipStorages<'_> {
    fn storage(&mut self, key: &str) -> Result<StorageBytes, String> {
        if let Some(bytes) = self.cache.get(key) {
            return Ok(bytes.clone());
        }
        let bytes = self.entries.read(&format!("{}data/{key}", self.prefix))?;
        self.cache.insert(key.to_string(), bytes.clone());
        Ok(bytes)
    }
}
