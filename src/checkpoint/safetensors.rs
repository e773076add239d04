//! safetensors files: `u64 header length | JSON header | tensor bytes`.
//!
//! Owns: header validation (delegated to the `safetensors` crate, which checks the length against
//! the file, offsets for gaps/overlaps, shape overflow and dtype*shape == byte length), the mapping
//! of its dtypes onto [`DType`], and file order. Tensors are zero-copy views into the mapped file.
//!
//! File order: the crate hands tensors back from a `HashMap`, so order is recovered from the data
//! offsets (writers lay tensors out in header order); equal offsets, which only empty tensors
//! share, are broken by their position in the JSON header.

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

use super::{Blob, DType, Error, Format, Result, TensorInfo, TensorStore};
use crate::text::shown;

/// Bytes of the little-endian header-length prefix.
const LENGTH_PREFIX: usize = 8;

/// Reads a safetensors file; `__metadata__` goes to [`TensorStore::metadata`].
pub fn read(path: &Path, blob: Blob) -> Result<TensorStore> {
    let bytes = blob.as_slice();
    // The crate reports this case as "invalid header length"; say what is wrong.
    if let Some(prefix) = bytes.get(..LENGTH_PREFIX).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        let declared = u64::from_le_bytes(prefix);
        let available = (bytes.len() - LENGTH_PREFIX) as u64;
        if declared > available {
            return Err(Error::new(
                path,
                format!(
                    "header length {declared} exceeds the {available} bytes after it (truncated, or not safetensors)"
                ),
            ));
        }
    }
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::new(path, format!("invalid safetensors header: {e}")))?;
    // read_metadata checked that the header fits in the file, so this cannot overflow.
    let data_start = LENGTH_PREFIX + header_len;
    let header_order = header_key_order(bytes.get(LENGTH_PREFIX..data_start).unwrap_or_default());
    let header_position: HashMap<&str, usize> = header_order.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();

    let mut entries: Vec<(String, &safetensors::tensor::TensorInfo)> = metadata.tensors().into_iter().collect();
    entries.sort_by_key(|(name, info)| {
        (info.data_offsets.0, header_position.get(name.as_str()).copied().unwrap_or(usize::MAX))
    });

    let mut tensors = Vec::with_capacity(entries.len());
    for (name, info) in entries {
        let dtype = convert_dtype(info.dtype).ok_or_else(|| {
            Error::new(
                path,
                format!("tensor '{}' has dtype {:?}, which gmnscope does not read", shown(&name), info.dtype),
            )
        })?;
        let (start, end) = info.data_offsets;
        let range = data_start
            .checked_add(start)
            .zip(data_start.checked_add(end))
            .map(|(s, e)| s..e)
            .ok_or_else(|| Error::new(path, format!("tensor '{}': data offsets overflow", shown(&name))))?;
        let data = blob
            .view(range)
            .ok_or_else(|| Error::new(path, format!("tensor '{}': data offsets lie outside the file", shown(&name))))?;
        tensors.push(TensorInfo { name, dtype, shape: info.shape.clone(), data });
    }
    let mut store = TensorStore::new(path, Format::Safetensors, tensors)?;
    store.metadata = metadata.metadata().clone().map(|m| m.into_iter().collect()).unwrap_or_default();
    Ok(store)
}

fn convert_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U64 => DType::U64,
        Dtype::U32 => DType::U32,
        Dtype::U16 => DType::U16,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool,
        _ => return None, // fp8/fp6/fp4 and complex
    })
}

/// Top-level keys of the JSON header in the order they are written (serde_json's map would sort
/// them). The crate has already validated the JSON; a failure here only loses the tie-break.
fn header_key_order(header: &[u8]) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visitor)
        }
    }
    serde_json::from_slice::<Keys>(header).map(|k| k.0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend((0..data_len).map(|i| i as u8));
        bytes
    }

    fn read_bytes(bytes: Vec<u8>) -> Result<TensorStore> {
        read(Path::new("test.safetensors"), Blob::from_vec(bytes))
    }

    fn err(bytes: Vec<u8>) -> String {
        read_bytes(bytes).expect_err("hostile input must be refused").to_string()
    }

    #[test]
    fn order_follows_data_offsets_not_key_order() {
        let header = r#"{"__metadata__":{"k":"v"},"z":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},
            "a":{"dtype":"I16","shape":[1,2],"data_offsets":[2,6]}}"#;
        let blob = Blob::from_vec(file(header, 6));
        let store = read(Path::new("test.safetensors"), blob.clone()).expect("valid file");
        let names: Vec<_> = store.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["z", "a"]);
        let inside = blob.as_slice().as_ptr_range();
        assert!(store.tensors().iter().all(|t| inside.contains(&t.bytes().as_ptr())), "zero-copy views");
        assert_eq!(store.get("a").map(|t| t.bytes().to_vec()), Some(vec![2, 3, 4, 5]));
        assert_eq!(store.get("a").map(|t| t.dtype), Some(DType::I16));
    }

    #[test]
    fn empty_tensors_keep_header_order() {
        let header = r#"{"q":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},
            "b":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},
            "m":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        let store = read_bytes(file(header, 4)).expect("valid file");
        let names: Vec<_> = store.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["q", "b", "m"]);
    }

    #[test]
    fn header_length_beyond_file_is_an_error() {
        let mut bytes = file(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, 1);
        bytes[..8].copy_from_slice(&1000u64.to_le_bytes());
        assert!(err(bytes).contains("header length 1000 exceeds"));
        let mut huge = vec![0xff; 8];
        huge.extend_from_slice(b"{}");
        assert!(err(huge).contains("test.safetensors"));
        assert!(err(vec![1, 2, 3]).contains("header"));
    }

    #[test]
    fn corrupted_headers_never_panic() {
        let good = file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[1],"data_offsets":[8,9]}}"#,
            9,
        );
        for i in 0..good.len() {
            for value in [0u8, b'9', b'-', b'[', b'"', 0xff] {
                let mut bad = good.clone();
                bad[i] = value;
                let _ = read_bytes(bad);
            }
        }
    }

    #[test]
    fn bad_offsets_and_shapes_are_errors() {
        // Overlapping tensors.
        err(file(
            r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#,
            3,
        ));
        // Offsets past the data section.
        err(file(r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#, 2));
        // Byte length does not match dtype * shape.
        err(file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, 4));
        // Shape product overflows usize.
        err(file(r#"{"a":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#, 8));
        // Negative dimension, reversed offsets, unsupported dtype, not JSON.
        err(file(r#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#, 1));
        err(file(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}"#, 1));
        assert!(err(file(r#"{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}"#, 1)).contains("F8_E4M3"));
        err(file("{not json", 0));
    }
}
