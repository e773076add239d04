//! The zip container of `torch.save` (PyTorch >= 1.6): `<dir>/data.pkl` (the pickle),
//! `<dir>/data/<key>` (one entry per storage), `<dir>/byteorder` ("little" or "big").
//!
//! torch writes every entry STORED, so a storage is a byte range of the memory-mapped file (found
//! from the entry's local header). Deflated entries (a re-zipped checkpoint) stay deflated until
//! their bytes are read ([`Blob::deflated`]), never beyond what deflate can produce from the
//! compressed size; only the pickle is inflated at open, to at most [`PICKLE_RATIO`] times its
//! compressed size plus [`PICKLE_FLOOR`].
//!
//! Ambiguous archives are refused: two central-directory entries with one name, or two
//! `data.pkl` pickles. Readers disagree on which copy wins (we would read the last, another tool
//! the first), so a file could show one checkpoint here and load another elsewhere.

use std::collections::HashMap;
use std::io::{Cursor, Read as _};
use std::path::Path;

use ::zip::{CompressionMethod, ZipArchive};

use super::pickle::unpickle;
use super::tensor::StorageBytes;
use super::{StorageSource, build_store};
use crate::checkpoint::{Blob, Error, Format, Result, TensorStore};
use crate::text::{shown, thousands};

/// Deflate expands at most ~1032:1; a larger declared size is a lie (or a zip bomb).
const MAX_DEFLATE_RATIO: u64 = 1100;
/// A deflated pickle may inflate to this many times its compressed size, plus [`PICKLE_FLOOR`]:
/// a state dict's pickle deflates about 5:1. The unpickler's budget grows with the inflated
/// length, so this ratio is what ties it to the size of the file.
pub const PICKLE_RATIO: u64 = 32;
pub const PICKLE_FLOOR: u64 = 4 << 20;
/// Longest `byteorder` entry read ("little" or "big", perhaps with a newline).
const MAX_BYTEORDER: u64 = 64;

pub fn read(path: &Path, blob: Blob) -> Result<TensorStore> {
    let fail = |message: String| Error::new(path, message);
    let archive =
        ZipArchive::new(Cursor::new(blob.as_slice())).map_err(|e| fail(format!("not a readable zip archive: {e}")))?;
    crate::checkpoint::zip_names::check_unique(&archive, blob.as_slice()).map_err(fail)?;
    // The pickle sits in a top-level folder named after the file when it was saved.
    let pickles: Vec<&str> = archive.file_names().filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl")).collect();
    let pickle_name = match pickles.as_slice() {
        [] => return Err(fail("zip archive has no data.pkl entry, so it is not a torch.save file".into())),
        [one] => one.to_string(),
        [first, second, ..] => {
            return Err(fail(format!(
                "zip archive holds {} pickles ('{}', '{}'{}); refusing an ambiguous archive (readers disagree on \
                 which one is the checkpoint)",
                pickles.len(),
                shown(first),
                shown(second),
                if pickles.len() > 2 { ", ..." } else { "" }
            )));
        }
    };
    let prefix = pickle_name[..pickle_name.len() - "data.pkl".len()].to_string();

    let mut entries = Entries { archive, blob: blob.clone(), path };
    let big_endian = match entries.read_optional(&format!("{prefix}byteorder"), MAX_BYTEORDER).map_err(fail)? {
        None => false,
        Some(bytes) => match bytes.blob.as_slice().get(bytes.range.clone()).map(<[u8]>::trim_ascii) {
            Some(b"little") => false,
            Some(b"big") => true,
            _ => return Err(fail("the byteorder entry is neither 'little' nor 'big'".into())),
        },
    };
    let pickle_bytes = entries.read_pickle(&pickle_name).map_err(fail)?;
    let pickle_slice = pickle_bytes.blob.as_slice().get(pickle_bytes.range.clone()).unwrap_or_default();
    let (pickle, _) = unpickle(pickle_slice).map_err(|e| fail(format!("{}: {e}", shown(&pickle_name))))?;

    let mut storages = ZipStorages { entries, prefix, cache: HashMap::new() };
    build_store(path, Format::PytorchZip, &pickle, &mut storages, big_endian, blob.len())
}

/// Entry contents of the archive, as ranges of the mapped file where possible.
struct Entries<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    blob: Blob,
    path: &'a Path,
}

/// Where an entry's data lies and how it is stored.
struct Located {
    method: CompressionMethod,
    range: std::ops::Range<usize>,
    size: u64,
    crc32: u32,
}

impl Entries<'_> {
    fn read_optional(&mut self, name: &str, max_size: u64) -> Result<Option<StorageBytes>, String> {
        if self.archive.index_for_name(name).is_none() {
            return Ok(None);
        }
        let located = self.locate(name)?;
        if located.size > max_size {
            return Err(format!("zip entry '{}' holds {} bytes, more than {max_size}", shown(name), located.size));
        }
        self.bytes(name, located).map(Some)
    }

    /// The pickle, inflated now (within [`PICKLE_RATIO`]) if it is deflated.
    fn read_pickle(&mut self, name: &str) -> Result<StorageBytes, String> {
        let located = self.locate(name)?;
        let compressed = located.range.len() as u64;
        let limit = compressed.saturating_mul(PICKLE_RATIO).saturating_add(PICKLE_FLOOR);
        if located.method == CompressionMethod::Deflated && located.size > limit {
            return Err(format!(
                "zip entry '{}' inflates {} compressed bytes to {} bytes, more than the {} allowed for a pickle \
                 ({PICKLE_RATIO} times its compressed size + {} MiB): a pickle bomb?",
                shown(name),
                thousands(compressed),
                thousands(located.size),
                thousands(limit),
                PICKLE_FLOOR >> 20
            ));
        }
        let bytes = self.bytes(name, located)?;
        if bytes.blob.is_deferred() {
            // Inflated here rather than through the lazy buffer, so a corrupt pickle is an error
            // (the zip reader checks the CRC once the entry is read to its end).
            let entry = self.archive.index_for_name(name).ok_or("pickle entry vanished")?;
            let mut out = Vec::new();
            self.archive
                .by_index(entry)
                .map_err(|e| format!("zip entry '{}': {e}", shown(name)))?
                .take(bytes.len() as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("zip entry '{}' does not inflate: {e}", shown(name)))?;
            if out.len() != bytes.len() {
                return Err(format!("zip entry '{}' does not inflate to its declared size", shown(name)));
            }
            let len = out.len();
            return Ok(StorageBytes { blob: Blob::from_vec(out), range: 0..len });
        }
        Ok(bytes)
    }

    fn read(&mut self, name: &str) -> Result<StorageBytes, String> {
        let located = self.locate(name)?;
        self.bytes(name, located)
    }

    fn locate(&mut self, name: &str) -> Result<Located, String> {
        let index =
            self.archive.index_for_name(name).ok_or_else(|| format!("zip entry '{}' is missing", shown(name)))?;
        let (method, data_start, compressed, size, encrypted, crc32) = {
            let entry = self.archive.by_index_raw(index).map_err(|e| format!("zip entry '{}': {e}", shown(name)))?;
            (
                entry.compression(),
                entry.data_start(),
                entry.compressed_size(),
                entry.size(),
                entry.encrypted(),
                entry.crc32(),
            )
        };
        if encrypted {
            return Err(format!("zip entry '{}' is encrypted", shown(name)));
        }
        let range = usize::try_from(data_start)
            .ok()
            .zip(usize::try_from(compressed).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?))
            .filter(|r| r.end <= self.blob.len())
            .ok_or_else(|| format!("zip entry '{}' runs past the end of the file (truncated?)", shown(name)))?;
        Ok(Located { method, range, size, crc32 })
    }

    /// The entry's bytes: a range of the mapped file, or a deflated buffer inflated on first read.
    fn bytes(&mut self, name: &str, located: Located) -> Result<StorageBytes, String> {
        let Located { method, range, size, crc32 } = located;
        let compressed = range.len() as u64;
        match method {
            CompressionMethod::Stored => {
                if size != compressed {
                    return Err(format!(
                        "stored zip entry '{}' has size {size} but {compressed} stored bytes",
                        shown(name)
                    ));
                }
                Ok(StorageBytes { blob: self.blob.clone(), range })
            }
            CompressionMethod::Deflated => {
                let len = usize::try_from(size)
                    .ok()
                    .filter(|_| size <= compressed.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024))
                    .ok_or_else(|| {
                        format!(
                            "zip entry '{}' claims {size} bytes from {compressed} deflated bytes, more than deflate \
                             can produce",
                            shown(name)
                        )
                    })?;
                let origin = (self.path.to_path_buf(), name.to_string());
                let blob = Blob::deflated(self.blob.clone(), range, len, crc32, origin);
                Ok(StorageBytes { blob, range: 0..len })
            }
            other => Err(format!("zip entry '{}' uses compression {other:?}, which is not supported", shown(name))),
        }
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
