//! ONNX external data: initializer bytes stored in a file next to the model
//! (`onnx.save_model(..., save_as_external_data=True)`).
//!
//! Owns: the `location`/`offset`/`length` keys, path safety (the location must stay inside the
//! model's directory: no absolute paths, no `..`, no symlink escapes) and mapping each data file
//! once, however many tensors point into it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::checkpoint::{Blob, ByteView};
use crate::text::shown;

pub struct ExternalFiles {
    model_dir: PathBuf,
    mapped: HashMap<String, Blob>,
}

impl ExternalFiles {
    pub fn new(model_path: &Path) -> Self {
        let model_dir = match model_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self { model_dir, mapped: HashMap::new() }
    }

    /// The `byte_len` bytes an `external_data` key/value list points to.
    pub fn view(&mut self, entries: &[(String, String)], byte_len: usize) -> Result<ByteView, String> {
        let get = |key: &str| entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let location = get("location").ok_or("external data has no 'location'")?;
        let parse = |key: &str| -> Result<Option<usize>, String> {
            get(key)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("external data {} '{}' is not a byte count", shown(key), shown(v)))
                })
                .transpose()
        };
        let offset = parse("offset")?.unwrap_or(0);
        let length = parse("length")?.unwrap_or(byte_len);
        if length != byte_len {
            return Err(format!("external data length {length} does not match the {byte_len} bytes the shape needs"));
        }
        let blob = self.open(location)?;
        let end = offset.checked_add(length).ok_or("external data offset + length overflows")?;
        blob.view(offset..end).ok_or_else(|| {
            format!("external data {offset}..{end} lies outside '{}' ({} bytes)", shown(location), blob.len())
        })
    }

    fn open(&mut self, location: &str) -> Result<Blob, String> {
        if let Some(blob) = self.mapped.get(location) {
            return Ok(blob.clone());
        }
        let path = self.resolve(location)?;
        let blob = Blob::map_file(&path).map_err(|e| format!("external data: {}", e.message))?;
        self.mapped.insert(location.to_string(), blob.clone());
        Ok(blob)
    }

    /// `model_dir/location`, refusing anything that could leave the model's directory.
    fn resolve(&self, location: &str) -> Result<PathBuf, String> {
        let relative = Path::new(location);
        let escapes = |c: Component| !matches!(c, Component::Normal(_) | Component::CurDir);
        if location.is_empty() || relative.components().any(escapes) {
            return Err(format!(
                "external data location '{}' must be a relative path inside the model's directory",
                shown(location)
            ));
        }
        let path = self.model_dir.join(relative);
        // A symlink inside the directory could still point elsewhere.
        let (real_dir, real_path) = match (self.model_dir.canonicalize(), path.canonicalize()) {
            (Ok(dir), Ok(path)) => (dir, path),
            (_, Err(e)) => return Err(format!("external data file '{}': {e}", shown(&path.to_string_lossy()))),
            (Err(e), _) => return Err(format!("model directory '{}': {e}", self.model_dir.display())),
        };
        if !real_path.starts_with(&real_dir) {
            return Err(format!("external data location '{}' resolves outside the model's directory", shown(location)));
        }
        Ok(real_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_outside_the_model_directory_are_refused() {
        let files = ExternalFiles::new(Path::new("/tmp/models/m.onnx"));
        for bad in ["", "/etc/passwd", "../secret.bin", "data/../../x", "a/../../b"] {
            let err = files.resolve(bad).expect_err(bad);
            assert!(err.contains("relative path inside"), "{bad}: {err}");
        }
    }

    #[test]
    fn symlink_escapes_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(outside.path(), [0u8; 16]).expect("write");
        let link = dir.path().join("weights.bin");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outside.path(), &link).expect("symlink");
            let mut files = ExternalFiles::new(&dir.path().join("m.onnx"));
            let entries = vec![("location".to_string(), "weights.bin".to_string())];
            let err = files.view(&entries, 16).expect_err("escape");
            assert!(err.contains("outside"), "{err}");
        }
    }

    #[test]
    fn ranges_are_checked_against_the_data_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("w.bin"), (0u8..32).collect::<Vec<_>>()).expect("write");
        let mut files = ExternalFiles::new(&dir.path().join("m.onnx"));
        let entry = |offset: &str, length: &str| {
            vec![
                ("location".to_string(), "w.bin".to_string()),
                ("offset".to_string(), offset.to_string()),
                ("length".to_string(), length.to_string()),
            ]
        };
        let view = files.view(&entry("8", "4"), 4).expect("in range");
        assert_eq!(view.as_slice(), &[8, 9, 10, 11]);
        assert!(files.view(&entry("30", "4"), 4).expect_err("past end").contains("outside"));
        assert!(files.view(&entry("18446744073709551615", "4"), 4).is_err(), "overflow");
        assert!(files.view(&entry("0", "8"), 4).expect_err("length").contains("does not match"));
        assert!(files.view(&entry("-1", "4"), 4).is_err());
        assert!(files.view(&[], 4).expect_err("no location").contains("location"));
    }
}
