//! Zoos of networks on disk, behind one API.
//!
//! ```no_run
//! use gmnscope::data::{Split, Zoo};
//! # fn main() -> Result<(), gmnscope::data::Error> {
//! let zoo = Zoo::open(std::path::Path::new("zoos/mnist"))?; // format auto-detected
//! for i in zoo.split(Split::Train) {
//!     let store = zoo.load(i)?; // a TensorStore: arch::recover + graph::build apply
//!     let target = zoo.entries[i].target; // Target::Class(label) or Target::Value(accuracy)
//! #   let _ = (store, target);
//! }
//! # Ok(()) }
//! ```
//!
//! Formats ([`ZooKind`]), detected by [`Zoo::open`] from what the directory holds:
//! - **gmnscope** (written by `fit-inrs`, see [`native`]): `index.json` + one safetensors SIREN per
//!   entry with the DWSNets key names `seq.{0,1,2}.{weight,bias}`; label, split and PSNR per entry.
//! - **DWSNets MNIST INRs** ([`dwsnets`]): `mnist_png_<split>_<label>_<id>/**/<name>.pth`; the
//!   directory may be `mnist-inrs` itself or its parent.
//! - **DWSNets Fashion-MNIST INRs** ([`dwsnets`]): `fmnist_inrs/{train,val,test}/model_<i>.pth`
//!   (or `{train,test}` + `splits.json`), the label stored in each file under `"label"`.
//! - **NFN SIREN sets** ([`nfn`]): `<prefix>_<digit>s/net<idx>.pth`; split by index.
//! - **Small CNN Zoo** ([`cnn_zoo`]): `weights.npy` + `layout.csv` + `metrics.csv.gz`; one
//!   network per row, target = test accuracy (regression).
//!
//! Targets: INR zoos are classification ([`Target::Class`], `num_classes = Some(10)`), the CNN zoo
//! is regression ([`Target::Value`], `num_classes = None`). Splits are fixed when the zoo is opened
//! (each loader documents its rule), so every consumer sees the same train/val/test partition.

pub mod cnn_zoo;
pub mod dwsnets;
pub mod native;
pub mod nfn;

use std::path::{Path, PathBuf};

use super::siren::InrSpec;
use super::split::Split;
use super::{Error, Result};
use crate::checkpoint::{self, TensorStore};

/// What a metanetwork predicts for one network of the zoo.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Class of the image an INR encodes.
    Class(u8),
    /// A scalar property (the Small CNN Zoo: test accuracy in [0, 1]).
    Value(f32),
}

/// The on-disk format of a zoo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZooKind {
    /// Ours: `index.json` + safetensors INRs (written by `fit-inrs`).
    Gmnscope,
    DwsnetsMnist,
    DwsnetsFmnist,
    NfnSiren,
    SmallCnnZoo,
}

impl ZooKind {
    pub fn name(self) -> &'static str {
        match self {
            ZooKind::Gmnscope => "gmnscope INR zoo",
            ZooKind::DwsnetsMnist => "DWSNets MNIST INRs",
            ZooKind::DwsnetsFmnist => "DWSNets Fashion-MNIST INRs",
            ZooKind::NfnSiren => "NFN SIREN set",
            ZooKind::SmallCnnZoo => "Small CNN Zoo",
        }
    }
}

/// Where an entry's weights are.
#[derive(Clone, Debug, PartialEq)]
pub enum EntrySource {
    /// A checkpoint file of its own.
    File(PathBuf),
    /// A row of the zoo's weight matrix (Small CNN Zoo).
    Row(usize),
}

/// One network of a zoo.
#[derive(Clone, Debug, PartialEq)]
pub struct ZooEntry {
    /// Stable name: the file name, folder name or `row<i>`.
    pub id: String,
    pub target: Target,
    pub split: Split,
    pub source: EntrySource,
    /// Fitting quality (our zoos record it; other formats do not).
    pub psnr: Option<f32>,
}

/// An opened zoo: the entries and how to load each one.
#[derive(Debug)]
pub struct Zoo {
    pub kind: ZooKind,
    pub root: PathBuf,
    pub entries: Vec<ZooEntry>,
    /// `Some(classes)` for classification zoos, `None` for regression.
    pub num_classes: Option<usize>,
    /// How to evaluate the INRs (INR zoos only).
    pub inr: Option<InrSpec>,
    /// Things the loader wants the user to know (skipped files, assumptions).
    pub notes: Vec<String>,
    cnn: Option<cnn_zoo::Matrix>,
}

impl Zoo {
    /// Opens a zoo directory, detecting its format (see the module doc).
    pub fn open(dir: &Path) -> Result<Zoo> {
        if !dir.is_dir() {
            return Err(Error::new(dir, "not a directory (a zoo is a folder)"));
        }
        let zoo = if dir.join(native::INDEX_FILE).is_file() {
            native::open(dir)?
        } else if dir.join("weights.npy").is_file() && dir.join("layout.csv").is_file() {
            cnn_zoo::open(dir)?
        } else if let Some(root) = dwsnets::find_mnist_root(dir) {
            dwsnets::open_mnist(&root)?
        } else if let Some(root) = dwsnets::find_fmnist_root(dir) {
            dwsnets::open_fmnist(&root)?
        } else if nfn::looks_like_nfn(dir) {
            nfn::open(dir)?
        } else {
            return Err(Error::new(
                dir,
                "not a zoo: found neither index.json (gmnscope), weights.npy + layout.csv (Small CNN Zoo), \
                 mnist_png_*/ folders (DWSNets MNIST), train/model_*.pth (DWSNets FMNIST) nor \
                 *_<digit>s/net*.pth (NFN)",
            ));
        };
        if zoo.entries.is_empty() {
            return Err(Error::new(dir, format!("{} holds no networks", zoo.kind.name())));
        }
        Ok(zoo)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Indices of the entries in split `s`, in entry order.
    pub fn split(&self, s: Split) -> Vec<usize> {
        (0..self.entries.len()).filter(|&i| self.entries[i].split == s).collect()
    }

    /// The weights of entry `i` as a tensor store (names as in the source: `seq.0.weight`,
    /// `sequential/conv2d/kernel:0`, ...). Extra non-weight entries (a stored label) are removed.
    pub fn load(&self, i: usize) -> Result<TensorStore> {
        let entry = self
            .entries
            .get(i)
            .ok_or_else(|| Error::new(&self.root, format!("entry {i} out of range (the zoo has {})", self.len())))?;
        match &entry.source {
            EntrySource::File(path) => {
                let store = checkpoint::open(path)?;
                Ok(without_label(store)?)
            }
            EntrySource::Row(row) => match &self.cnn {
                Some(matrix) => matrix.network(*row),
                None => Err(Error::new(&self.root, format!("entry {i} names a row but the zoo has no weight matrix"))),
            },
        }
    }

    /// Per-split entry counts `[train, val, test]`.
    pub fn split_counts(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        for e in &self.entries {
            counts[e.split as usize] += 1;
        }
        counts
    }
}

/// Drops a tensor named `label` (DWSNets FMNIST files saved with `torch.tensor(label)`).
fn without_label(store: TensorStore) -> checkpoint::Result<TensorStore> {
    if store.get("label").is_none() {
        return Ok(store);
    }
    let tensors = store.tensors().iter().filter(|t| t.name != "label").cloned().collect();
    TensorStore::new(store.path.clone(), store.format, tensors)
}

/// Files under `dir` (recursively, at most `depth` levels) whose name satisfies `keep`, sorted.
fn files_under(dir: &Path, depth: usize, keep: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "cannot list", e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, "cannot stat", e))?;
        if kind.is_dir() && depth > 0 {
            out.extend(files_under(&path, depth - 1, keep)?);
        } else if kind.is_file() && path.file_name().and_then(|n| n.to_str()).is_some_and(keep) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Subdirectories of `dir` (names as UTF-8), sorted.
fn subdirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
        .collect();
    out.sort();
    out
}

impl Zoo {
    fn new(
        kind: ZooKind,
        root: &Path,
        entries: Vec<ZooEntry>,
        num_classes: Option<usize>,
        inr: Option<InrSpec>,
    ) -> Zoo {
        Zoo { kind, root: root.to_path_buf(), entries, num_classes, inr, notes: Vec::new(), cnn: None }
    }
}
