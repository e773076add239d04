//! The allow-list of pickle globals a `torch.save` state dict may reference.
//!
//! A pickle names Python objects by `module.name` (opcodes GLOBAL, STACK_GLOBAL, INST) and then
//! *calls* them (REDUCE, NEWOBJ, OBJ, BUILD). That is how a malicious `.pt` runs `os.system`. The
//! unpickler resolves every name through [`Global::resolve`]: names listed here become inert
//! markers that the tensor layer interprets as data; every other name refuses the whole file.
//! Nothing here is ever imported or called.

use crate::checkpoint::DType;

/// A global the unpickler accepts, as an inert marker.
#[derive(Clone, Debug, PartialEq)]
pub enum Global {
    /// `collections.OrderedDict`, `collections.Counter`, `builtins.dict`: calling one makes a dict.
    Dict,
    /// `builtins.set` / `builtins.frozenset`.
    Set,
    /// `_codecs.encode`: protocol 2 pickles `bytes` as `encode(latin1_text, 'latin1')`.
    Encode,
    /// `builtins.bytearray`.
    ByteArray,
    /// `torch.Size`: a tuple of ints.
    Size,
    /// One of the `torch._utils._rebuild_*` functions that turn storages into tensors.
    Rebuild(Rebuild),
    /// A storage class named in a persistent id (`torch.FloatStorage`, `torch.storage.UntypedStorage`).
    Storage(StorageKind),
    /// A dtype (`torch.float32`), as passed to `_rebuild_tensor_v3`; `None` for dtypes gmnscope
    /// has no [`DType`] for (complex, float8, quantized).
    DType(Option<DType>, Box<str>),
    /// `torch.Tensor` / `torch.nn.parameter.Parameter`, passed to `_rebuild_from_type_v2`.
    TensorClass,
    /// A harmless data class (`argparse.Namespace`, numpy scalars, `torch.device`, ...). Calls to it
    /// are recorded, never made; the value is ignored when looking for tensors.
    Opaque(Box<str>),
}

/// The tensor rebuild functions of `torch._utils` (and `torch._tensor`).
#[derive(Clone, Debug, PartialEq)]
pub enum Rebuild {
    /// `_rebuild_tensor(storage, offset, size, stride)`.
    Tensor,
    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    TensorV2,
    /// `_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])`.
    TensorV3,
    /// `_rebuild_parameter(data, requires_grad, hooks)`.
    Parameter,
    /// `_rebuild_parameter_with_state(data, requires_grad, hooks, state)`.
    ParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: a tensor with Python attributes.
    FromTypeV2,
    /// A rebuild function for tensors gmnscope does not read (sparse, quantized, meta, nested...).
    Unsupported(Box<str>),
}

/// What a storage class says about the bytes of a storage.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageKind {
    /// A typed storage (`torch.FloatStorage`): elements of one dtype.
    Typed(DType),
    /// `torch.storage.UntypedStorage`: raw bytes, the tensor's dtype comes from elsewhere.
    Untyped,
    /// A storage class of a dtype gmnscope does not read (complex, quantized).
    Unsupported(Box<str>),
}

impl Global {
    /// Resolves `module.name`, or `None` when the name is not on the allow-list (refuse the file).
    pub fn resolve(module: &str, name: &str) -> Option<Global> {
        // Python 2 pickles spell the builtins module differently.
        let module = match module {
            "__builtin__" => "builtins",
            other => other,
        };
        let global = match (module, name) {
            ("collections", "OrderedDict" | "Counter") | ("builtins", "dict") => Global::Dict,
            ("builtins", "set" | "frozenset") => Global::Set,
            ("_codecs", "encode") => Global::Encode,
            ("builtins", "bytearray") => Global::ByteArray,
            ("torch", "Size") => Global::Size,
            ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => Global::TensorClass,
            ("torch._utils", function) => Global::Rebuild(rebuild_function(function)?),
            ("torch._tensor", "_rebuild_from_type_v2") => Global::Rebuild(Rebuild::FromTypeV2),
            ("torch" | "torch.cuda", class) if class.ends_with("Storage") => Global::Storage(storage_class(class)),
            ("torch.storage", "UntypedStorage") => Global::Storage(StorageKind::Untyped),
            ("torch", dtype) if dtype_name(dtype).is_some() => {
                Global::DType(dtype_name(dtype).flatten(), format!("torch.{dtype}").into())
            }
            _ if is_opaque_data(module, name) => Global::Opaque(format!("{module}.{name}").into()),
            _ => return None,
        };
        Some(global)
    }
}

/// `torch._utils` functions: the ones that rebuild a tensor from a storage (or say it is a kind of
/// tensor we do not read). Any other `torch._utils` name is not data and stays refused.
fn rebuild_function(name: &str) -> Option<Rebuild> {
    Some(match name {
        "_rebuild_tensor" => Rebuild::Tensor,
        "_rebuild_tensor_v2" => Rebuild::TensorV2,
        "_rebuild_tensor_v3" => Rebuild::TensorV3,
        "_rebuild_parameter" => Rebuild::Parameter,
        "_rebuild_parameter_with_state" => Rebuild::ParameterWithState,
        "_rebuild_sparse_tensor"
        | "_rebuild_qtensor"
        | "_rebuild_meta_tensor_no_storage"
        | "_rebuild_wrapper_subclass"
        | "_rebuild_nested_tensor"
        | "_rebuild_device_tensor_from_numpy"
        | "_rebuild_device_tensor_from_cpu_tensor" => Rebuild::Unsupported(format!("torch._utils.{name}").into()),
        _ => return None,
    })
}

/// Typed storage classes (`torch.FloatStorage`, also the old `torch.cuda.FloatStorage`).
fn storage_class(class: &str) -> StorageKind {
    let dtype = match class {
        "DoubleStorage" => DType::F64,
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        "UntypedStorage" => return StorageKind::Untyped,
        other => return StorageKind::Unsupported(format!("torch.{other}").into()),
    };
    StorageKind::Typed(dtype)
}

/// `Some(Some(dtype))` for a torch dtype gmnscope reads, `Some(None)` for one it knows but does
/// not read, `None` for a name that is not a dtype at all.
fn dtype_name(name: &str) -> Option<Option<DType>> {
    let dtype = match name {
        "float64" | "double" => DType::F64,
        "float32" | "float" => DType::F32,
        "float16" | "half" => DType::F16,
        "bfloat16" => DType::BF16,
        "int64" | "long" => DType::I64,
        "int32" | "int" => DType::I32,
        "int16" | "short" => DType::I16,
        "int8" => DType::I8,
        "uint64" => DType::U64,
        "uint32" => DType::U32,
        "uint16" => DType::U16,
        "uint8" => DType::U8,
        "bool" => DType::Bool,
        "complex32" | "complex64" | "complex128" | "cfloat" | "cdouble" | "chalf" | "qint8" | "qint32" | "quint8"
        | "quint4x2" | "quint2x4" => return Some(None),
        other if other.starts_with("float8_") => return Some(None),
        _ => return None,
    };
    Some(Some(dtype))
}

/// Plain-data classes that training scripts commonly leave in a checkpoint next to the weights
/// (hyper-parameters, metrics as numpy scalars, paths). Recording a call to one is harmless
/// because nothing is ever called; rejecting them would refuse many ordinary checkpoints.
fn is_opaque_data(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        ("argparse", "Namespace")
            | ("torch", "device")
            | ("torch", "strided" | "sparse_coo" | "per_tensor_affine")
            | ("torch.serialization", "_get_layout")
            | ("builtins", "slice" | "complex" | "range")
            | ("numpy", "dtype" | "ndarray")
            | ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar" | "_reconstruct")
            | ("numpy.dtypes", _)
            | ("pathlib", "Path" | "PosixPath" | "WindowsPath" | "PurePosixPath" | "PureWindowsPath")
            | ("datetime", "datetime" | "date" | "time" | "timedelta")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_names_resolve_to_markers() {
        assert_eq!(Global::resolve("collections", "OrderedDict"), Some(Global::Dict));
        assert_eq!(Global::resolve("torch._utils", "_rebuild_tensor_v2"), Some(Global::Rebuild(Rebuild::TensorV2)));
        assert_eq!(Global::resolve("torch", "BFloat16Storage"), Some(Global::Storage(StorageKind::Typed(DType::BF16))));
        assert_eq!(Global::resolve("torch.storage", "UntypedStorage"), Some(Global::Storage(StorageKind::Untyped)));
        assert_eq!(Global::resolve("torch", "uint16"), Some(Global::DType(Some(DType::U16), "torch.uint16".into())));
        assert_eq!(Global::resolve("torch", "complex64"), Some(Global::DType(None, "torch.complex64".into())));
        assert_eq!(Global::resolve("__builtin__", "set"), Some(Global::Set));
    }

    #[test]
    fn code_is_not_on_the_list() {
        for (module, name) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("__builtin__", "exec"),
            ("builtins", "getattr"),
            ("subprocess", "Popen"),
            ("torch", "load"),
            ("torch._utils", "_import_dotted_name"),
            ("torch.nn.modules.linear", "Linear"),
            ("__main__", "Net"),
        ] {
            assert_eq!(Global::resolve(module, name), None, "{module}.{name}");
        }
    }
}
