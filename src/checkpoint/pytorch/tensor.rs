//! Tensors from recorded `torch._utils._rebuild_*` calls: which storage, dtype, shape, strides and
//! offset ([`TensorSpec`]), and the little-endian C-contiguous bytes they select ([`materialize`]).

use std::ops::Range;

use super::globals::{Global, Rebuild, StorageKind};
use super::pickle::{Object, Pickle, Value};
use crate::checkpoint::{Blob, ByteView, DType};
use crate::text::shown;

/// How deeply `_rebuild_parameter` / `_rebuild_from_type_v2` wrappers may nest.
const MAX_WRAPPERS: usize = 8;

/// Where a tensor's elements are: a storage plus offset/shape/strides in elements.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
    pub storage: StorageRef,
}

/// A persistent id `('storage', storage_class, key, location, numel[, view_metadata])`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub kind: StorageKind,
    /// Elements (bytes for untyped storages) the storage says it holds.
    pub numel: u64,
    /// Legacy storage views: `(view_key, offset, size)` inside the storage `key`, in elements.
    pub view: Option<(String, u64, u64)>,
}

impl StorageRef {
    /// Bytes per storage element (1 for untyped storages).
    pub fn element_size(&self) -> Result<usize, String> {
        match &self.kind {
            StorageKind::Typed(d) => Ok(d.size()),
            StorageKind::Untyped => Ok(1),
            StorageKind::Unsupported(name) => Err(format!("storage class {} is not supported", shown(name))),
        }
    }
}

/// The bytes of one storage: a range of a buffer (the mapped file, or a decompressed entry).
#[derive(Clone, Debug)]
pub struct StorageBytes {
    pub blob: Blob,
    pub range: Range<usize>,
}

impl StorageBytes {
    pub fn len(&self) -> usize {
        self.range.len()
    }

    fn as_slice(&self) -> &[u8] {
        self.blob.as_slice().get(self.range.clone()).unwrap_or_default()
    }

    /// The sub-range `range` (relative to this storage) as a zero-copy view.
    fn view(&self, range: Range<usize>) -> Option<ByteView> {
        let start = self.range.start.checked_add(range.start)?;
        let end = self.range.start.checked_add(range.end)?;
        (end <= self.range.end).then(|| self.blob.view(start..end)).flatten()
    }
}

/// True when the value is a tensor (a recorded call of a rebuild function).
pub fn is_tensor(pickle: &Pickle, value: &Value) -> bool {
    matches!(pickle.object(value), Some(Object::Call { func: Global::Rebuild(_), .. }))
}

/// Reads the rebuild call behind `value`.
pub fn spec(pickle: &Pickle, value: &Value) -> Result<TensorSpec, String> {
    let Some(Object::Call { func: Global::Rebuild(kind), args, .. }) = pickle.object(value) else {
        return Err("value is not a tensor".into());
    };
    let args = pickle.tuple(args).ok_or("rebuild arguments are not a tuple")?;
    rebuild(pickle, kind, args, 0)
}

fn rebuild(pickle: &Pickle, kind: &Rebuild, args: &[Value], depth: usize) -> Result<TensorSpec, String> {
    if depth > MAX_WRAPPERS {
        return Err("tensor wrappers nest too deeply".into());
    }
    let arg = |i: usize| args.get(i).ok_or_else(|| format!("rebuild call has {} arguments, needs more", args.len()));
    match kind {
        Rebuild::Tensor | Rebuild::TensorV2 => {
            let storage = storage_ref(pickle, arg(0)?)?;
            let StorageKind::Typed(dtype) = storage.kind else {
                return Err(match &storage.kind {
                    StorageKind::Unsupported(name) => format!("storage class {} is not supported", shown(name)),
                    _ => "an untyped storage without a dtype".into(),
                });
            };
            if matches!(kind, Rebuild::TensorV2) {
                check_metadata(pickle, args.get(6))?;
            }
            layout(pickle, storage, dtype, &args[1..])
        }
        Rebuild::TensorV3 => {
            let storage = storage_ref(pickle, arg(0)?)?;
            let dtype = match pickle.object(arg(6)?) {
                Some(Object::Global(Global::DType(Some(d), _))) => *d,
                Some(Object::Global(Global::DType(None, name))) => {
                    return Err(format!("dtype {} is not supported", shown(name)));
                }
                _ => return Err("_rebuild_tensor_v3 without a dtype".into()),
            };
            if let StorageKind::Unsupported(name) = &storage.kind {
                return Err(format!("storage class {} is not supported", shown(name)));
            }
            check_metadata(pickle, args.get(7))?;
            layout(pickle, storage, dtype, &args[1..])
        }
        Rebuild::Parameter | Rebuild::ParameterWithState => {
            let Some(Object::Call { func: Global::Rebuild(inner), args, .. }) = pickle.object(arg(0)?) else {
                return Err("parameter does not wrap a tensor".into());
            };
            let inner_args = pickle.tuple(args).ok_or("rebuild arguments are not a tuple")?;
            rebuild(pickle, inner, inner_args, depth + 1)
        }
        Rebuild::FromTypeV2 => {
            // (func, type, args, state): a tensor with Python attributes; the type must be a tensor class.
            let Some(Object::Global(Global::Rebuild(inner))) = pickle.object(arg(0)?) else {
                return Err("_rebuild_from_type_v2 does not call a tensor rebuild function".into());
            };
            if !matches!(pickle.object(arg(1)?), Some(Object::Global(Global::TensorClass))) {
                return Err("_rebuild_from_type_v2 builds a type that is not a tensor".into());
            }
            let inner_args = pickle.tuple(arg(2)?).ok_or("rebuild arguments are not a tuple")?;
            rebuild(pickle, inner, inner_args, depth + 1)
        }
        Rebuild::Unsupported(name) => {
            Err(format!("{} tensors (sparse/quantized/meta/nested) are not supported", shown(name)))
        }
    }
}

/// `(storage_offset, size, stride, ...)` after the storage argument.
fn layout(pickle: &Pickle, storage: StorageRef, dtype: DType, rest: &[Value]) -> Result<TensorSpec, String> {
    let [offset, size, stride, ..] = rest else {
        return Err("rebuild call lacks offset/size/stride".into());
    };
    let offset = as_usize(offset).ok_or("storage offset is not a non-negative integer")?;
    let shape = int_tuple(pickle, size).ok_or("size is not a tuple of non-negative integers")?;
    let strides = int_tuple(pickle, stride).ok_or("stride is not a tuple of non-negative integers")?;
    if shape.len() != strides.len() {
        return Err(format!("size has {} dimensions but stride has {}", shape.len(), strides.len()));
    }
    Ok(TensorSpec { dtype, shape, strides, offset, storage })
}

/// `_rebuild_tensor_v2` metadata: conj/neg view bits would change the values; refuse them.
fn check_metadata(pickle: &Pickle, metadata: Option<&Value>) -> Result<(), String> {
    let Some(dict) = metadata.and_then(|m| pickle.dict(m)) else {
        return Ok(());
    };
    for (key, value) in &dict.entries {
        if let (Value::Str(k), Value::Bool(true)) = (key, value) {
            return Err(format!("tensors with the '{}' view bit are not supported", shown(k)));
        }
    }
    Ok(())
}

fn storage_ref(pickle: &Pickle, value: &Value) -> Result<StorageRef, String> {
    let Some(Object::PersistentId(id)) = pickle.object(value) else {
        return Err("tensor storage is not a persistent id".into());
    };
    let items = pickle.tuple(id).ok_or("storage persistent id is not a tuple")?;
    let [Value::Str(tag), class, key, _location, numel, rest @ ..] = items else {
        return Err("storage persistent id is not ('storage', class, key, location, numel)".into());
    };
    if &**tag != "storage" {
        return Err(format!("unknown persistent id type '{}'", shown(tag)));
    }
    let Some(Object::Global(Global::Storage(kind))) = pickle.object(class) else {
        return Err("storage persistent id does not name a storage class".into());
    };
    let key = key_string(key).ok_or("storage key is not a string")?;
    let numel = as_u64(numel).ok_or("storage size is not a non-negative integer")?;
    let view = match rest.first() {
        None | Some(Value::None) => None,
        Some(v) => match pickle.tuple(v) {
            Some([view_key, offset, size]) => Some((
                key_string(view_key).ok_or("storage view key is not a string")?,
                as_u64(offset).ok_or("storage view offset is not an integer")?,
                as_u64(size).ok_or("storage view size is not an integer")?,
            )),
            _ => return Err("storage view metadata is not (key, offset, size)".into()),
        },
    };
    Ok(StorageRef { key, kind: kind.clone(), numel, view })
}

/// Every storage referenced anywhere in the pickle (the legacy format needs their element sizes
/// before it can walk the storage section).
pub fn all_storage_refs(pickle: &Pickle) -> Vec<StorageRef> {
    (0..pickle.objects.len())
        .filter(|&id| matches!(pickle.objects[id], Object::PersistentId(_)))
        .filter_map(|id| storage_ref(pickle, &Value::Obj(id)).ok())
        .collect()
}

pub fn key_string(value: &Value) -> Option<String> {
    match value {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

fn as_usize(value: &Value) -> Option<usize> {
    as_u64(value).and_then(|v| usize::try_from(v).ok())
}

fn int_tuple(pickle: &Pickle, value: &Value) -> Option<Vec<usize>> {
    pickle.tuple(value)?.iter().map(as_usize).collect()
}

/// The tensor's bytes, little-endian and C-contiguous: a zero-copy view when the tensor is a
/// contiguous little-endian run of its storage, otherwise a gathered (and byte-swapped) copy of at
/// most `max_copy` bytes.
pub fn materialize(
    spec: &TensorSpec,
    storage: &StorageBytes,
    big_endian: bool,
    max_copy: usize,
) -> Result<ByteView, String> {
    let elem = spec.dtype.size();
    let numel = spec.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or("tensor size overflows")?;
    let nbytes = numel.checked_mul(elem).ok_or("tensor size overflows")?;
    if numel == 0 {
        return Ok(ByteView::from_vec(Vec::new()));
    }
    // Highest element index the tensor touches; strides are non-negative in torch.
    let mut last = spec.offset;
    for (&dim, &stride) in spec.shape.iter().zip(&spec.strides) {
        last = (dim - 1).checked_mul(stride).and_then(|x| x.checked_add(last)).ok_or("tensor extent overflows")?;
    }
    let needed = last.checked_add(1).and_then(|n| n.checked_mul(elem)).ok_or("tensor extent overflows")?;
    if needed > storage.len() {
        return Err(format!(
            "tensor needs {needed} bytes of its storage '{}' but the storage has only {}",
            shown(&spec.storage.key),
            storage.len()
        ));
    }
    let start = spec.offset * elem; // <= needed, so no overflow
    let swap = big_endian && elem > 1;
    if is_c_contiguous(&spec.shape, &spec.strides) && !swap {
        return storage.view(start..start + nbytes).ok_or_else(|| "tensor bytes out of range".to_string());
    }
    if nbytes > max_copy {
        return Err(format!("tensor would expand to {nbytes} bytes, more than the file size justifies"));
    }
    // Gathering from a storage still deflated inflates all of it first: that counts as a copy too.
    if storage.blob.is_deferred() && nbytes.saturating_add(storage.blob.len()) > max_copy {
        return Err(format!(
            "tensor is gathered from a compressed storage of {} bytes, more than the file size justifies \
             inflating at open",
            storage.blob.len()
        ));
    }
    let mut out = gather(storage.as_slice(), spec, elem, numel);
    if swap {
        out.chunks_exact_mut(elem).for_each(<[u8]>::reverse);
    }
    Ok(ByteView::from_vec(out))
}

/// Strides of dimensions of size 1 do not matter; the others must be the C-order ones.
fn is_c_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&dim, &stride) in shape.iter().zip(strides).rev() {
        if dim != 1 && stride != expected {
            return false;
        }
        expected = expected.saturating_mul(dim);
    }
    true
}

/// Copies the elements in C order (odometer over the index; bounds checked by the caller).
fn gather(src: &[u8], spec: &TensorSpec, elem: usize, numel: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(numel * elem);
    let rank = spec.shape.len();
    let mut index = vec![0usize; rank];
    let mut pos = spec.offset;
    for _ in 0..numel {
        let at = pos * elem;
        out.extend_from_slice(src.get(at..at + elem).unwrap_or(&[]));
        // advance the odometer from the last dimension
        for d in (0..rank).rev() {
            // Wrapping: the step past a unit dimension may be any stride; it is undone below.
            index[d] += 1;
            pos = pos.wrapping_add(spec.strides[d]);
            if index[d] < spec.shape[d] {
                break;
            }
            pos = pos.wrapping_sub(spec.strides[d].wrapping_mul(spec.shape[d]));
            index[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: &[usize], strides: &[usize], offset: usize, dtype: DType) -> TensorSpec {
        TensorSpec {
            dtype,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
            storage: StorageRef { key: "0".into(), kind: StorageKind::Typed(dtype), numel: 0, view: None },
        }
    }

    fn storage_of(values: &[f32]) -> StorageBytes {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let len = bytes.len();
        StorageBytes { blob: Blob::from_vec(bytes), range: 0..len }
    }

    fn values(view: &ByteView) -> Vec<f32> {
        DType::F32.to_f32(view.as_slice())
    }

    #[test]
    fn contiguous_tensors_are_views_of_the_storage() {
        let storage = storage_of(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let view = materialize(&spec(&[2, 2], &[2, 1], 1, DType::F32), &storage, false, 0).unwrap();
        assert_eq!(values(&view), [1.0, 2.0, 3.0, 4.0]);
        let base = storage.blob.as_slice().as_ptr() as usize;
        assert_eq!(view.as_slice().as_ptr() as usize, base + 4, "zero-copy view at the offset");
    }

    #[test]
    fn strided_tensors_are_gathered_in_c_order() {
        let storage = storage_of(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        // transpose of a 2x3 matrix
        let t = materialize(&spec(&[3, 2], &[1, 3], 0, DType::F32), &storage, false, 1 << 20).unwrap();
        assert_eq!(values(&t), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        // column 1 of the 2x3 matrix, and an expanded scalar
        let col = materialize(&spec(&[2], &[3], 1, DType::F32), &storage, false, 1 << 20).unwrap();
        assert_eq!(values(&col), [1.0, 4.0]);
        let expanded = materialize(&spec(&[2, 2], &[0, 0], 5, DType::F32), &storage, false, 1 << 20).unwrap();
        assert_eq!(values(&expanded), [5.0; 4]);
    }

    #[test]
    fn big_endian_storages_are_swapped() {
        let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let storage = StorageBytes { blob: Blob::from_vec(bytes), range: 0..8 };
        let t = materialize(&spec(&[2], &[1], 0, DType::F32), &storage, true, 1 << 20).unwrap();
        assert_eq!(values(&t), [1.5, -2.0]);
    }

    #[test]
    fn out_of_range_and_overflowing_layouts_are_errors() {
        let storage = storage_of(&[0.0; 4]);
        let past_end = materialize(&spec(&[2, 2], &[2, 1], 1, DType::F32), &storage, false, 1 << 20);
        assert!(past_end.unwrap_err().contains("needs 20 bytes"));
        let huge = materialize(&spec(&[usize::MAX, 2], &[1, 1], 0, DType::F32), &storage, false, 1 << 20);
        assert!(huge.unwrap_err().contains("overflow"));
        let stride_overflow = materialize(&spec(&[3], &[usize::MAX / 2], 0, DType::F32), &storage, false, 1 << 20);
        assert!(stride_overflow.unwrap_err().contains("overflow"));
        let too_big = materialize(&spec(&[1 << 20], &[0], 0, DType::F32), &storage, false, 1 << 10);
        assert!(too_big.unwrap_err().contains("more than the file size"));
        let empty = materialize(&spec(&[0, 5], &[5, 1], 1000, DType::F32), &storage, false, 0).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn contiguity_ignores_unit_dimensions() {
        assert!(is_c_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(is_c_contiguous(&[], &[]));
        assert!(!is_c_contiguous(&[2, 3], &[1, 2]));
    }
}
