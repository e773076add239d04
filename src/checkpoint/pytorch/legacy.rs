//! The legacy `torch.save` stream (PyTorch < 1.6, or `_use_new_zipfile_serialization=False`):
//! five pickles back to back (magic number, protocol version, sys_info, the object, the list of
//! storage keys), then for each key in that order a u64 element count and the raw elements.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use super::pickle::{Pickle, Value, unpickle};
use super::tensor::{StorageBytes, all_storage_refs};
use super::{StorageSource, build_store};
use crate::checkpoint::{Blob, Error, Format, Result, TensorStore};
use crate::text::shown;

/// torch's legacy magic number 0x1950a86a20f9469cfc6c, as the LONG1 payload (little-endian).
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

pub fn read(path: &Path, blob: Blob) -> Result<TensorStore> {
    let fail = |message: String| Error::new(path, message);
    let bytes = blob.as_slice();
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<Pickle> {
        let rest = bytes.get(pos..).unwrap_or_default();
        let (pickle, used) = unpickle(rest).map_err(|e| fail(format!("{what}: {e}")))?;
        pos += used;
        Ok(pickle)
    };

    let magic = next("magic number")?;
    if !matches!(&magic.root, Value::BigInt(b) if **b == MAGIC) {
        return Err(fail("starts with a pickle but not torch's magic number: not a torch.save file".into()));
    }
    let version = next("protocol version")?;
    if version.root != Value::Int(PROTOCOL_VERSION) {
        return Err(fail(format!(
            "unsupported legacy torch.save protocol version {}",
            shown(&format!("{:?}", version.root))
        )));
    }
    let sys_info = next("sys_info")?;
    let little_endian = match sys_info.dict(&sys_info.root).and_then(|d| d.get_str("little_endian")) {
        Some(Value::Bool(little)) => *little,
        _ => true,
    };
    let main = next("main pickle")?;
    let keys_pickle = next("storage key list")?;
    let keys = keys_pickle
        .tuple(&keys_pickle.root)
        .and_then(|items| items.iter().map(super::tensor::key_string).collect::<Option<Vec<_>>>())
        .ok_or_else(|| fail("storage key list is not a list of strings".into()))?;

    let ranges = storage_ranges(&main, &keys, bytes, pos, little_endian).map_err(fail)?;
    let mut storages = LegacyStorages { blob: blob.clone(), ranges };
    build_store(path, Format::PytorchLegacy, &main, &mut storages, !little_endian, blob.len())
}

/// Walks the storage section: each storage is a u64 element count then count * element-size bytes.
/// The element size comes from the storage class the pickle names for that key.
fn storage_ranges(
    main: &Pickle,
    keys: &[String],
    bytes: &[u8],
    mut pos: usize,
    little_endian: bool,
) -> Result<HashMap<String, Range<usize>>, String> {
    let mut element_size: HashMap<String, usize> = HashMap::new();
    for storage in all_storage_refs(main) {
        let size = storage.element_size().map_err(|e| format!("storage '{}': {e}", shown(&storage.key)))?;
        if let Some(previous) = element_size.insert(storage.key.clone(), size)
            && previous != size
        {
            return Err(format!("storage '{}' is named with two different element sizes", shown(&storage.key)));
        }
    }
    let mut ranges = HashMap::with_capacity(keys.len());
    for key in keys {
        let size = *element_size
            .get(key)
            .ok_or_else(|| format!("storage '{}' is listed but no tensor says what type it holds", shown(key)))?;
        let header: [u8; 8] = bytes
            .get(pos..)
            .and_then(|rest| rest.get(..8))
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| format!("file ends before the size of storage '{}' (truncated)", shown(key)))?;
        let count = if little_endian { u64::from_le_bytes(header) } else { u64::from_be_bytes(header) };
        let start = pos + 8;
        let end = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(size))
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                format!("storage '{}' claims {count} elements, past the end of the file (truncated?)", shown(key))
            })?;
        ranges.insert(key.clone(), start..end);
        pos = end;
    }
    Ok(ranges)
}

struct LegacyStorages {
    blob: Blob,
    ranges: HashMap<String, Range<usize>>,
}

impl StorageSource for LegacyStorages {
    fn storage(&mut self, key: &str) -> Result<StorageBytes, String> {
        let range =
            self.ranges.get(key).ok_or_else(|| format!("storage '{}' is not in the storage list", shown(key)))?;
        Ok(StorageBytes { blob: self.blob.clone(), range: range.clone() })
    }
}
