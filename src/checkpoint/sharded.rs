//! Sharded checkpoints: a `*.index.json` (`model.safetensors.index.json`,
//! `pytorch_model.bin.index.json`, as Hugging Face writes them) whose `weight_map` names, for
//! every tensor, the shard file that holds it. The shards open as one [`TensorStore`].
//!
//! Owns: finding the index in a model directory, shard-name safety (a shard is a plain file name
//! in the index's directory: no separators, no `..`, no absolute path, no symlink leading out)
//! and the agreement between index and shards (every listed tensor is in its shard; tensors a
//! shard holds but the index does not list are left out, as loaders do).
//!
//! Opening stays lazy: each shard is opened by its own reader (headers only, data memory-mapped),
//! so a 7B-parameter set opens in milliseconds without reading its weights.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{Blob, Error, Format, Result, TensorStore};
use crate::text::shown;

/// The suffix that marks a shard index.
pub const INDEX_SUFFIX: &str = ".index.json";

/// Index files looked for in a directory, in order of preference.
const KNOWN_INDEXES: [&str; 2] = ["model.safetensors.index.json", "pytorch_model.bin.index.json"];
/// Single-file checkpoints a model directory may hold instead of shards.
const KNOWN_SINGLE_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];
/// Real indexes are tens of kilobytes (one line per tensor); anything this large is not one.
const MAX_INDEX_BYTES: usize = 64 << 20;

/// Whether `path` names a shard index (`*.index.json`).
pub fn is_index(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(INDEX_SUFFIX))
}

/// The model file a directory stands for: its shard index (`model.safetensors.index.json`, then
/// `pytorch_model.bin.index.json`, then a single other `*.safetensors.index.json` /
/// `*.bin.index.json`), else `model.safetensors` or `pytorch_model.bin`.
pub fn model_in_dir(dir: &Path) -> Result<PathBuf> {
    for name in KNOWN_INDEXES {
        if dir.join(name).is_file() {
            return Ok(dir.join(name));
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::new(dir, format!("cannot list the directory: {e}")))?;
    let mut indexes: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            (name.ends_with(".safetensors.index.json") || name.ends_with(".bin.index.json")) && p.is_file()
        })
        .collect();
    indexes.sort();
    match indexes.as_slice() {
        [one] => return Ok(one.clone()),
        [] => {}
        many => {
            let names: Vec<String> =
                many.iter().map(|p| shown(&p.file_name().unwrap_or_default().to_string_lossy()).to_string()).collect();
            return Err(Error::new(
                dir,
                format!("holds several shard indexes ({}); open one of them", names.join(", ")),
            ));
        }
    }
    for name in KNOWN_SINGLE_FILES {
        if dir.join(name).is_file() {
            return Ok(dir.join(name));
        }
    }
    Err(Error::new(
        dir,
        "is a directory without a model: expected model.safetensors.index.json, pytorch_model.bin.index.json, \
         model.safetensors or pytorch_model.bin",
    ))
}

#[derive(serde::Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

/// Opens the shards an index names as one store (named by the index file).
pub fn read(index_path: &Path) -> Result<TensorStore> {
    let err = |message: String| Error::new(index_path, message);
    let blob = Blob::map_file(index_path)?;
    if blob.len() > MAX_INDEX_BYTES {
        return Err(err(format!("a shard index of {} bytes is larger than any real one; refusing it", blob.len())));
    }
    let index: Index = serde_json::from_slice(blob.as_slice()).map_err(|e| err(format!("invalid shard index: {e}")))?;
    if index.weight_map.is_empty() {
        return Err(err("the shard index's weight_map lists no tensors".into()));
    }
    // Shard file -> the tensors the index places in it.
    let mut shards: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (tensor, shard) in &index.weight_map {
        shards.entry(shard.as_str()).or_default().push(tensor.as_str());
    }
    let dir = match index_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let real_dir = dir
        .canonicalize()
        .map_err(|e| err(format!("cannot resolve the index's directory '{}': {e}", dir.display())))?;

    let mut format = None;
    let mut tensors = Vec::with_capacity(index.weight_map.len());
    for (shard, listed) in shards {
        let path = shard_path(&real_dir, shard).map_err(err)?;
        // Straight to the file readers: a shard is never itself an index or a directory.
        let store = super::open_blob(&path, Blob::map_file(&path)?)?;
        match format {
            None => format = Some(store.format),
            Some(f) if f == store.format => {}
            Some(f) => {
                return Err(err(format!(
                    "shard '{}' is {} but earlier shards are {}; one index cannot mix formats",
                    shown(shard),
                    store.format.name(),
                    f.name()
                )));
            }
        }
        if let Some(missing) = listed.iter().find(|name| store.get(name).is_none()) {
            return Err(err(format!(
                "the index places tensor '{}' in shard '{}', which does not hold it",
                shown(missing),
                shown(shard)
            )));
        }
        // Shard file order (the model's order), restricted to what the index lists for it.
        let listed: std::collections::HashSet<&str> = listed.into_iter().collect();
        tensors.extend(store.tensors().iter().filter(|t| listed.contains(t.name.as_str())).cloned());
    }
    TensorStore::new(index_path, format.unwrap_or(Format::Safetensors), tensors)
}

/// The path of shard `name`, which must be a plain file name inside `real_dir` (canonical).
fn shard_path(real_dir: &Path, name: &str) -> Result<PathBuf, String> {
    let mut components = Path::new(name).components();
    let plain = matches!((components.next(), components.next()), (Some(Component::Normal(c)), None) if c == name)
        && !name.contains(['/', '\\']);
    if !plain {
        return Err(format!("shard '{}' is not a plain file name inside the index's directory", shown(name)));
    }
    if name.ends_with(".json") {
        return Err(format!("shard '{}' is not a model file", shown(name)));
    }
    let path = real_dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("shard '{}' is missing (looked for {})", shown(name), path.display()));
        }
        Err(e) => return Err(format!("shard '{}': {e}", shown(name))),
    }
    let real = path.canonicalize().map_err(|e| format!("shard '{}': {e}", shown(name)))?;
    if !real.starts_with(real_dir) {
        return Err(format!("shard '{}' resolves outside the index's directory", shown(name)));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_must_be_plain_files_in_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().canonicalize().expect("canonical");
        std::fs::write(real.join("ok.safetensors"), b"x").expect("write");
        assert_eq!(shard_path(&real, "ok.safetensors"), Ok(real.join("ok.safetensors")));
        for bad in ["", "..", ".", "../x.safetensors", "/etc/passwd", "a/b.safetensors", "a\\b.bin", "other.index.json"]
        {
            assert!(shard_path(&real, bad).is_err(), "{bad}");
        }
        let missing = shard_path(&real, "gone.safetensors").expect_err("missing");
        assert!(missing.contains("missing") && missing.contains("gone.safetensors"), "{missing}");
        #[cfg(unix)]
        {
            let outside = tempfile::NamedTempFile::new().expect("temp file");
            std::os::unix::fs::symlink(outside.path(), real.join("link.safetensors")).expect("symlink");
            let err = shard_path(&real, "link.safetensors").expect_err("escape");
            assert!(err.contains("outside"), "{err}");
        }
    }

    #[test]
    fn index_names_are_recognised() {
        assert!(is_index(Path::new("/m/model.safetensors.index.json")));
        assert!(is_index(Path::new("pytorch_model.bin.index.json")));
        assert!(!is_index(Path::new("model.safetensors")));
        assert!(!is_index(Path::new("index.json.bak")));
    }
}
