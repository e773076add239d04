//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The committed fixtures directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every model-like fixture file (by extension), sorted, recursively.
pub fn model_fixtures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("pt" | "pth" | "bin" | "safetensors" | "onnx" | "npy" | "npz")
            ) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&fixtures_dir(), &mut out);
    out.sort();
    out
}

/// The gmnscope binary built for this test run.
pub fn gmnscope_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gmnscope"))
}
