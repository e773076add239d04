//! Our INR zoo format, written by `gmnscope fit-inrs` (`crate::inr`) and read by [`open`].
//!
//! A directory with one safetensors file per INR (`inr_000017.safetensors`: f32 tensors
//! `seq.0.weight [32, 2]`, `seq.0.bias [32]`, `seq.1.weight [32, 32]`, `seq.1.bias [32]`,
//! `seq.2.weight [1, 32]`, `seq.2.bias [1]`, the DWSNets names and layout) and `index.json`:
//!
//! ```json
//! { "format": "gmnscope-inr-zoo", "version": 1,
//!   "image_source": "idx:/data/mnist", "num_classes": 10,
//!   "architecture": "siren 2-32-32-1", "omega_0": 30.0, "output_offset": 0.5, "side": 28,
//!   "coordinates": "...", "steps": 1000, "target_psnr": 40.0, "lr": 0.0005, "batch": 256, "seed": 0, "split_seed": 0,
//!   "entries": [ { "file": "inr_000000.safetensors", "label": 7, "split": "train",
//!                  "psnr": 31.4, "image_index": 4127 }, ... ] }
//! ```
//!
//! `index.json` is rewritten atomically (temp file + rename) after every fitted batch, and an INR
//! file is written before its index entry, so an interrupted run leaves a valid zoo that a rerun
//! resumes (entries already in the index are skipped).

use std::path::Path;

use super::{EntrySource, Target, Zoo, ZooEntry, ZooKind};
use crate::atomic_write::write_atomically;
use crate::checkpoint::writer::OwnedTensor;
use crate::data::siren::{Dense, InrSpec};
use crate::data::split::Split;
use crate::data::{Error, Result};

pub const INDEX_FILE: &str = "index.json";
pub const FORMAT: &str = "gmnscope-inr-zoo";
pub const VERSION: u32 = 1;

/// The zoo-level metadata and one record per INR.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZooIndex {
    pub format: String,
    pub version: u32,
    /// Where the images came from (`idx:<dir>`, `procedural:seed=<s>`).
    pub image_source: String,
    pub num_classes: usize,
    pub architecture: String,
    pub omega_0: f32,
    pub output_offset: f32,
    pub side: usize,
    /// How pixels map to INR inputs, in words (for people reading the file).
    pub coordinates: String,
    pub steps: usize,
    /// PSNR (dB) at which an INR stopped early, if early stopping was on.
    #[serde(default)]
    pub target_psnr: Option<f64>,
    pub lr: f64,
    pub batch: usize,
    /// Seed of the weight initialisation.
    pub seed: u64,
    /// Whether every INR started from the same initial weights (see `inr::FitConfig`).
    #[serde(default)]
    pub shared_init: bool,
    /// Initialisation recipe (`dwsnets` or `siren`, see `inr::init::Recipe`); zoos written
    /// before the field existed used the SIREN paper's initialisation.
    #[serde(default = "legacy_recipe")]
    pub recipe: String,
    /// Seed of the image order and the train/val/test split.
    pub split_seed: u64,
    pub entries: Vec<IndexEntry>,
}

/// One INR of the zoo.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexEntry {
    /// File name inside the zoo directory (no path separators).
    pub file: String,
    pub label: u8,
    pub split: Split,
    /// PSNR (dB) of the fitted image against the source image.
    pub psnr: f32,
    /// Index of the source image in the image set.
    pub image_index: usize,
}

fn legacy_recipe() -> String {
    "siren".into()
}

impl ZooIndex {
    pub fn inr_spec(&self) -> InrSpec {
        InrSpec { omega_0: self.omega_0, output_offset: self.output_offset, side: self.side }
    }

    /// Reads and validates `dir/index.json`.
    pub fn read(dir: &Path) -> Result<ZooIndex> {
        let path = dir.join(INDEX_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, "cannot read", e))?;
        let index: ZooIndex =
            serde_json::from_str(&text).map_err(|e| Error::new(&path, format!("not a valid zoo index: {e}")))?;
        if index.format != FORMAT {
            return Err(Error::new(&path, format!("format is '{}', expected '{FORMAT}'", index.format)));
        }
        if index.version != VERSION {
            return Err(Error::new(
                &path,
                format!("version {} is not supported (this build reads {VERSION})", index.version),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for e in &index.entries {
            if !is_plain_file_name(&e.file) {
                return Err(Error::new(&path, format!("entry file '{}' is not a plain file name", e.file)));
            }
            if !seen.insert(e.file.as_str()) {
                return Err(Error::new(&path, format!("entry file '{}' is listed twice", e.file)));
            }
            if e.label as usize >= index.num_classes {
                return Err(Error::new(
                    &path,
                    format!("entry '{}' has label {} but the zoo has {} classes", e.file, e.label, index.num_classes),
                ));
            }
        }
        Ok(index)
    }

    /// Writes `dir/index.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(INDEX_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::new(&path, format!("cannot serialise: {e}")))?;
        write_atomically(&path, |w| std::io::Write::write_all(w, &json))
            .map_err(|e| Error::io(&path, "cannot write", e))
    }
}

/// A name without separators or parent references, so an index cannot point outside its zoo.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\']) && !name.contains('\0')
}

/// The file name of INR number `i` in our zoos.
pub fn inr_file_name(i: usize) -> String {
    format!("inr_{i:06}.safetensors")
}

/// The tensors of a SIREN under the DWSNets names `seq.<k>.weight` / `seq.<k>.bias`.
pub fn inr_tensors(layers: &[Dense]) -> Vec<OwnedTensor> {
    layers
        .iter()
        .enumerate()
        .flat_map(|(k, l)| {
            [
                OwnedTensor::f32(format!("seq.{k}.weight"), vec![l.outputs, l.inputs], &l.weight),
                OwnedTensor::f32(format!("seq.{k}.bias"), vec![l.outputs], &l.bias),
            ]
        })
        .collect()
}

/// Opens a zoo written by `fit-inrs`.
pub fn open(dir: &Path) -> Result<Zoo> {
    let index = ZooIndex::read(dir)?;
    let entries = index
        .entries
        .iter()
        .map(|e| ZooEntry {
            id: e.file.trim_end_matches(".safetensors").to_string(),
            target: Target::Class(e.label),
            split: e.split,
            source: EntrySource::File(dir.join(&e.file)),
            psnr: Some(e.psnr),
        })
        .collect();
    let mut zoo = Zoo::new(ZooKind::Gmnscope, dir, entries, Some(index.num_classes), Some(index.inr_spec()));
    zoo.notes.push(format!("images: {}; {} steps, lr {}", index.image_source, index.steps, index.lr));
    Ok(zoo)
}
