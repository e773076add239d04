//! The run directory: what a training run leaves on disk, and how it is written so that a
//! cancelled or killed run never leaves a half-written checkpoint.
//!
//! ```text
//! RUN/run.json                      RunInfo: model shape, task, training config, target scaling
//! RUN/metrics.jsonl                 one JSON object per logged step / epoch (appended)
//! RUN/latest                        "checkpoints/step-000000123-e2-b0": the newest complete one
//! RUN/checkpoints/step-000000123-e2-b0/   (step, epoch, batch in epoch): model.bpk (burnpack,
//!                                   with parameter ids), optimizer.bpk (AdamW moments),
//!                                   state.json (step, epoch, best validation score, ...)
//! RUN/best/model.bpk, state.json    the model at the best validation score so far (each file
//!                                   replaced atomically when a later epoch scores higher)
//! ```
//! A checkpoint is written into a temporary directory, renamed into place, and only then does
//! `latest` (itself written to a temp file and renamed) point at it; older checkpoints are
//! removed afterwards. At every moment `latest` names a complete checkpoint.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::dataset::Task;
use crate::atomic_write::write_atomically;
use crate::models::{Gmn, GmnConfig};

/// Everything needed to rebuild the model and interpret its outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub format: String,
    pub gmn: GmnConfig,
    pub task: Task,
    pub train: TrainConfig,
    /// Regression targets are trained standardised: `value = output * std + mean`.
    pub target_mean: f32,
    pub target_std: f32,
    /// The zoo the run trained on (informational).
    pub zoo: Option<PathBuf>,
}

pub const RUN_FORMAT: &str = "gmnscope-gmn-run-1";

/// Where training stands when a checkpoint is taken (`default()`: before the first step).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Epoch in progress (0-based) and the number of its batches already done.
    pub epoch: usize,
    pub batch_in_epoch: usize,
    pub best_val: Option<f64>,
    pub best_epoch: Option<usize>,
    pub test_at_best_val: Option<f64>,
    /// Training statistics of the epoch in progress over its batches done so far, so a run
    /// resumed mid-epoch logs that epoch's statistics over the whole epoch (checkpoints written
    /// before this field existed read as zeros).
    #[serde(default)]
    pub epoch_so_far: EpochSums,
}

/// Sums over an epoch's batches (loss over examples, correct predictions, examples).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    /// Written as a decimal string: serde_json's number parser may round the last bit, and a
    /// resumed epoch must log exactly what an uninterrupted one logs (`exact_f64`).
    #[serde(with = "exact_f64")]
    pub loss_sum: f64,
    pub correct: usize,
    pub count: usize,
}

/// An f64 written as its shortest round-trip decimal string and read back with Rust's correctly
/// rounded parser (bit-exact); a plain JSON number (states of earlier versions) is read too.
mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Number(f64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Failures reading or writing a run directory; always name the path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct Error {
    pub path: PathBuf,
    pub message: String,
}

fn err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error { path: path.to_path_buf(), message: message.to_string() }
}

pub fn write_run_info(run_dir: &Path, info: &RunInfo) -> Result<(), Error> {
    let path = run_dir.join("run.json");
    let json = serde_json::to_vec_pretty(info).map_err(|e| err(&path, e))?;
    write_atomically(&path, |w| std::io::Write::write_all(w, &json)).map_err(|e| err(&path, e))
}

pub fn read_run_info(run_dir: &Path) -> Result<RunInfo, Error> {
    let path = run_dir.join("run.json");
    let bytes = std::fs::read(&path)
        .map_err(|e| err(&path, format!("cannot read ({e}); is this a training run directory?")))?;
    let info: RunInfo =
        serde_json::from_slice(&bytes).map_err(|e| err(&path, format!("not a run description: {e}")))?;
    if info.format != RUN_FORMAT {
        return Err(err(&path, format!("unknown run format '{}' (expected {RUN_FORMAT})", info.format)));
    }
    info.gmn.validate().map_err(|e| err(&path, e))?;
    Ok(info)
}

/// The directory of the newest complete checkpoint, if any.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>, Error> {
    let pointer = run_dir.join("latest");
    let name = match std::fs::read_to_string(&pointer) {
        Ok(name) => name,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(&pointer, e)),
    };
    let name = name.trim();
    // The pointer must name a checkpoint inside this run, nothing else.
    let valid = name
        .strip_prefix("checkpoints/step-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !valid {
        return Err(err(&pointer, format!("does not name a checkpoint: '{name}'")));
    }
    let dir = run_dir.join(name);
    if !dir.is_dir() {
        return Err(err(&pointer, format!("names a missing checkpoint '{name}'")));
    }
    Ok(Some(dir))
}

/// Writes model, optimizer and state as the new latest checkpoint; returns its directory.
pub fn save(
    run_dir: &Path,
    model: &Gmn,
    optim: Option<&ModuleOptimizer>,
    state: &TrainState,
) -> Result<PathBuf, Error> {
    let checkpoints = run_dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoints).map_err(|e| err(&checkpoints, e))?;
    // One name per training position. A position saved twice (a cancel right after a periodic
    // checkpoint) holds the same model: the existing directory is kept as it is.
    let name = format!("step-{:09}-e{}-b{}", state.step, state.epoch, state.batch_in_epoch);
    let tmp = checkpoints.join(format!(".{name}.tmp-{}", std::process::id()));
    let final_dir = checkpoints.join(&name);
    if final_dir.is_dir() && latest(run_dir).ok().flatten().is_some_and(|d| d == final_dir) {
        return Ok(final_dir);
    }
    let result = (|| {
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| err(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| err(&tmp, e))?;
        write_file(&tmp.join("model.bpk"), &model_bytes(model).map_err(|e| err(&tmp, e))?)?;
        if let Some(optim) = optim {
            let bytes = optim.into_bytes().map_err(|e| err(&tmp, format!("cannot serialise the optimizer: {e}")))?;
            write_file(&tmp.join("optimizer.bpk"), &bytes)?;
        }
        let json = serde_json::to_vec_pretty(state).map_err(|e| err(&tmp, e))?;
        write_file(&tmp.join("state.json"), &json)?;
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(|e| err(&final_dir, e))?;
        }
        std::fs::rename(&tmp, &final_dir).map_err(|e| err(&final_dir, e))
    })();
    if let Err(e) = result {
        std::fs::remove_dir_all(&tmp).ok();
        return Err(e);
    }
    let pointer = run_dir.join("latest");
    let target = format!("checkpoints/{name}");
    write_atomically(&pointer, |w| std::io::Write::write_all(w, target.as_bytes())).map_err(|e| err(&pointer, e))?;
    // Older checkpoints (and temp directories of crashed runs) are no longer needed.
    if let Ok(entries) = std::fs::read_dir(&checkpoints) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path != final_dir && path.is_dir() {
                std::fs::remove_dir_all(&path).ok();
            }
        }
    }
    Ok(final_dir)
}

/// Writes `model` as the run's best-validation model (`RUN/best/`). Each file is replaced
/// atomically; the model goes first, so `state.json` never describes a model that is not there.
pub fn save_best(run_dir: &Path, model: &Gmn, state: &TrainState) -> Result<PathBuf, Error> {
    let dir = run_dir.join("best");
    std::fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
    let bytes = model_bytes(model).map_err(|e| err(&dir, e))?;
    let model_path = dir.join("model.bpk");
    write_atomically(&model_path, |w| std::io::Write::write_all(w, &bytes)).map_err(|e| err(&model_path, e))?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| err(&dir, e))?;
    let state_path = dir.join("state.json");
    write_atomically(&state_path, |w| std::io::Write::write_all(w, &json)).map_err(|e| err(&state_path, e))?;
    Ok(dir)
}

/// The best-validation model's directory, if the run has one.
pub fn best(run_dir: &Path) -> Option<PathBuf> {
    let dir = run_dir.join("best");
    dir.join("model.bpk").is_file().then_some(dir)
}

/// The model's weights as burnpack bytes (parameter ids included, so optimizer state matches).
pub fn model_bytes(model: &Gmn) -> Result<Vec<u8>, String> {
    let mut store = BurnpackStore::from_bytes(None);
    model.save_into(&mut store).map_err(|e| format!("cannot serialise the model: {e}"))?;
    store.get_bytes().map(|b| b.to_vec()).map_err(|e| format!("cannot serialise the model: {e}"))
}

/// Loads a checkpoint's model (built from `config`, weights from `dir/model.bpk`).
pub fn load_model(dir: &Path, config: &GmnConfig, device: &Device) -> Result<Gmn, Error> {
    let path = dir.join("model.bpk");
    let bytes = std::fs::read(&path).map_err(|e| err(&path, e))?;
    let mut model = Gmn::new(config, device).map_err(|e| err(&path, e))?;
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)));
    let result = model.load_from(&mut store).map_err(|e| {
        // burn lists every mismatching tensor (thousands of characters): the first says enough.
        let text = e.to_string();
        let mismatches = text.matches("ShapeMismatch").count();
        let first = text.find("ShapeMismatch").map_or(text.as_str(), |i| &text[i..]);
        let first = first.split(" }, ShapeMismatch").next().unwrap_or(first);
        err(
            &path,
            format!(
                "does not match the model run.json describes ({mismatches} tensors differ in shape; first: {}): \
                 run.json edited, or written by another version?",
                crate::text::shown_message(first)
            ),
        )
    })?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(err(
            &path,
            format!("does not match the model in run.json (missing {:?}, errors {:?})", result.missing, result.errors),
        ));
    }
    Ok(model.fork(device))
}

/// Loads the optimizer state saved next to a model (absent file: a fresh optimizer).
pub fn load_optimizer(dir: &Path, optim: ModuleOptimizer) -> Result<ModuleOptimizer, Error> {
    let path = dir.join("optimizer.bpk");
    match std::fs::read(&path) {
        Ok(bytes) => optim.from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| err(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(optim),
        Err(e) => Err(err(&path, e)),
    }
}

pub fn load_state(dir: &Path) -> Result<TrainState, Error> {
    let path = dir.join("state.json");
    let bytes = std::fs::read(&path).map_err(|e| err(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| err(&path, format!("not a training state: {e}")))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let f = std::fs::File::create(path).map_err(|e| err(path, e))?;
    let mut w = std::io::BufWriter::new(f);
    std::io::Write::write_all(&mut w, bytes).map_err(|e| err(path, e))?;
    let f = w.into_inner().map_err(|e| err(path, e.into_error()))?;
    f.sync_all().map_err(|e| err(path, e))
}

#[cfg(test)]
mod exact_sum_tests {
    use super::EpochSums;

    #[test]
    fn epoch_loss_sums_survive_json_bit_for_bit() {
        let mut x = 0.6607566525825076f64 * 120.0;
        for _ in 0..2_000 {
            let sums = EpochSums { loss_sum: x, correct: 3, count: 7 };
            let back: EpochSums = serde_json::from_str(&serde_json::to_string(&sums).unwrap()).unwrap();
            assert_eq!(back.loss_sum.to_bits(), x.to_bits(), "{x:e}");
            x = x * 1.000_000_7 + 1e-9;
        }
        // States written before: a plain number.
        let old: EpochSums = serde_json::from_str(r#"{"loss_sum": 1.5, "correct": 1, "count": 2}"#).unwrap();
        assert_eq!(old.loss_sum, 1.5);
    }
}
