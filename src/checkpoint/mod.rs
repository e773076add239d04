//! Model files -> [`TensorStore`]: named tensors in file order, with dtype, shape and a lazy view of
//! their bytes (memory-mapped where the format allows it).
//!
//! Owns: format detection and the readers (`safetensors`, `pytorch`, `onnx`, `numpy`), and
//! [`sharded`] checkpoints (an `*.index.json` and its shards, or the directory holding them).
//! Must not import: `ui`, `graph`, `arch` (they build on this module, not the other way round).
//!
//! Every reader treats its input as hostile: sizes read from headers are checked against the file
//! size before anything is allocated, and a malformed file gives an [`Error`] naming the file and
//! the problem. No reader panics on any input.

mod blob;
mod dtype;
pub mod numpy;
pub mod onnx;
pub mod pytorch;
pub mod safetensors;
pub mod sharded;
pub mod writer;
mod zip_names;

pub use blob::{Blob, ByteView};
pub use dtype::DType;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file formats gmnscope reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Safetensors,
    /// `torch.save` zip archive (PyTorch >= 1.6).
    PytorchZip,
    /// `torch.save` legacy (pre-1.6) sequential pickle format.
    PytorchLegacy,
    /// `torch.save` tar format (PyTorch <= 0.1.10).
    PytorchTar,
    Onnx,
    Npy,
    Npz,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::PytorchZip => "pytorch-zip",
            Format::PytorchLegacy => "pytorch-legacy",
            Format::PytorchTar => "pytorch-tar",
            Format::Onnx => "onnx",
            Format::Npy => "npy",
            Format::Npz => "npz",
        }
    }
}

/// One tensor of a checkpoint. The bytes are little-endian, C-contiguous, `dtype.size() *
/// shape.product()` long (readers convert anything else when they open the file).
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: ByteView,
}

impl TensorInfo {
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The tensor's bytes (lazy: touching them may page in a memory-mapped file).
    pub fn bytes(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// The values converted to f32 (f64 and integers are cast; f16/bf16 widened).
    pub fn to_f32(&self) -> Vec<f32> {
        self.dtype.to_f32(self.bytes())
    }

    /// The values converted to f64.
    pub fn to_f64(&self) -> Vec<f64> {
        self.dtype.to_f64(self.bytes())
    }
}

/// An ONNX operator node: which tensors feed which op (initializers and activations by name).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct OpNode {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// The node's integer and string attributes (`axis`, `group`, `transB`, `direction`, ...), in
    /// file order; tensor and graph attributes are decoded elsewhere.
    #[serde(skip)]
    pub attributes: Vec<(String, Attribute)>,
}

/// An integer or string attribute of an ONNX node.
#[derive(Clone, Debug, PartialEq)]
pub enum Attribute {
    Int(i64),
    Ints(Vec<i64>),
    Str(String),
}

impl OpNode {
    fn attribute(&self, name: &str) -> Option<&Attribute> {
        // The last occurrence wins, as protobuf merging of a repeated field would have it.
        self.attributes.iter().rev().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// An integer attribute (`axis`, `group`, `transB`).
    pub fn int_attribute(&self, name: &str) -> Option<i64> {
        match self.attribute(name)? {
            Attribute::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// A list-of-integers attribute (`axes`, `starts`, `split`).
    pub fn ints_attribute(&self, name: &str) -> Option<&[i64]> {
        match self.attribute(name)? {
            Attribute::Ints(v) => Some(v),
            _ => None,
        }
    }

    /// A string attribute (`direction`).
    pub fn str_attribute(&self, name: &str) -> Option<&str> {
        match self.attribute(name)? {
            Attribute::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// Named tensors in file order, plus (for ONNX) the operator graph.
#[derive(Clone, Debug)]
pub struct TensorStore {
    pub path: PathBuf,
    pub format: Format,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    /// ONNX only: the operator nodes in graph order.
    pub ops: Vec<OpNode>,
    /// safetensors only: the header's `__metadata__` (string keys and values; gmnscope's
    /// activation sets name their layers there).
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl TensorStore {
    /// Builds a store; tensor names must be unique (a later duplicate is an error).
    pub fn new(path: impl Into<PathBuf>, format: Format, tensors: Vec<TensorInfo>) -> Result<Self> {
        let path = path.into();
        let mut index = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            let expected = t.dtype.size().checked_mul(t.num_elements());
            if expected != Some(t.data.len()) {
                return Err(Error::new(
                    &path,
                    format!(
                        "tensor '{}' has {} bytes of data but dtype {} and shape {:?} need {}",
                        crate::text::shown(&t.name),
                        t.data.len(),
                        t.dtype.name(),
                        t.shape,
                        expected.map_or("more than usize::MAX".to_string(), |e| e.to_string())
                    ),
                ));
            }
            if index.insert(t.name.clone(), i).is_some() {
                return Err(Error::new(&path, format!("duplicate tensor name '{}'", crate::text::shown(&t.name))));
            }
        }
        Ok(Self { path, format, tensors, index, ops: Vec::new(), metadata: Default::default() })
    }

    pub fn with_ops(mut self, ops: Vec<OpNode>) -> Self {
        self.ops = ops;
        self
    }

    /// Tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total number of scalar values over all tensors.
    pub fn num_parameters(&self) -> usize {
        self.tensors.iter().map(TensorInfo::num_elements).sum()
    }
}

/// What went wrong reading a model file; always names the file. Its message is printed escaped
/// and cut ([`crate::text::shown_message`]): readers pass names through [`crate::text::shown`],
/// and this is the backstop for any that slip through.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::text::shown_message;
        write!(f, "{}: {}", shown_message(&self.path.to_string_lossy()), shown_message(&self.message))
    }
}

impl Error {
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        Self { path: path.to_path_buf(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Opens a model file, choosing the reader from its magic bytes (extension only as a tie-break).
/// A shard index (`*.index.json`) opens its shards as one model; a directory opens the model it
/// holds ([`sharded::model_in_dir`]: its shard index, or its single `model.safetensors`).
pub fn open(path: impl AsRef<Path>) -> Result<TensorStore> {
    let path = path.as_ref();
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        let model = sharded::model_in_dir(path)?;
        return open(model);
    }
    if sharded::is_index(path) {
        return sharded::read(path);
    }
    open_blob(path, Blob::map_file(path)?)
}

/// Opens model bytes already in memory; `path` names them in errors, its extension breaks ties
/// and (ONNX) locates external data.
pub fn open_blob(path: &Path, blob: Blob) -> Result<TensorStore> {
    let head = &blob.as_slice()[..blob.len().min(16)];
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    if head.starts_with(b"\x93NUMPY") {
        return numpy::read_npy(path, blob);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        // Both .npz and torch.save(zip) are zip archives; the entries tell them apart.
        return if ext == "npz" || numpy::looks_like_npz(&blob) {
            numpy::read_npz(path, blob)
        } else {
            pytorch::read(path, blob)
        };
    }
    match ext.as_str() {
        "safetensors" => safetensors::read(path, blob),
        "onnx" => onnx::read(path, blob),
        "pt" | "pth" | "bin" | "ckpt" | "tar" => pytorch::read(path, blob),
        "npy" => numpy::read_npy(path, blob),
        "npz" => numpy::read_npz(path, blob),
        _ => sniff(path, blob),
    }
}

/// Guesses the format of a file with an unknown extension from its first bytes.
fn sniff(path: &Path, blob: Blob) -> Result<TensorStore> {
    let bytes = blob.as_slice();
    if bytes.len() >= 9 && bytes[8] == b'{' {
        return safetensors::read(path, blob);
    }
    if bytes.first() == Some(&0x80) {
        return pytorch::read(path, blob);
    }
    if bytes.len() >= 262 && &bytes[257..262] == b"ustar" {
        return pytorch::read(path, blob);
    }
    if onnx::looks_like_onnx(bytes) {
        return onnx::read(path, blob);
    }
    Err(Error::new(path, "unrecognised file format (expected safetensors, PyTorch .pt/.pth/.bin, ONNX, .npy or .npz)"))
}
