//! Seeded random corruptions of every valid fixture: each must give an error or a valid result,
//! never a panic. A "valid result" is also pushed through architecture recovery and graph
//! construction, so those stages see hostile-but-parseable inputs too.

use std::panic::{AssertUnwindSafe, catch_unwind};

use gmnscope::checkpoint::{self, Blob};
use gmnscope::rng::SplitMix64;

use crate::common::model_fixtures;

/// Corruptions per fixture (CI-sized; raise with GMNSCOPE_CORRUPTIONS for a longer soak).
fn corruptions_per_fixture() -> u64 {
    std::env::var("GMNSCOPE_CORRUPTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500)
}

/// One seeded corruption: truncation, byte flips, header edits with large integers, or
/// duplicated/removed spans.
pub(crate) fn corrupt(original: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let len = bytes.len().max(1) as u64;
    match rng.below(6) {
        0 => bytes.truncate(rng.below(len) as usize),
        1 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(len) as usize;
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            // Header edit: most length/offset fields live in the first few hundred bytes.
            let window = (len as usize).min(512) as u64;
            let i = rng.below(window) as usize;
            let value: u64 = match rng.below(4) {
                0 => u64::MAX,
                1 => u32::MAX as u64,
                2 => 1 << 40,
                _ => rng.next_u64(),
            };
            for (k, b) in value.to_le_bytes().iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
        3 => {
            let i = rng.below(len) as usize;
            let j = (i + 1 + rng.below(64) as usize).min(bytes.len());
            if i < j {
                bytes.drain(i..j);
            }
        }
        4 => {
            let i = rng.below(len) as usize;
            let j = (i + 1 + rng.below(64) as usize).min(bytes.len());
            if i < j {
                let span = bytes[i..j].to_vec();
                bytes.splice(i..i, span);
            }
        }
        _ => {
            // Random printable garbage in the header area (JSON / NPY dict / pickle strings).
            let window = (len as usize).min(256) as u64;
            let i = rng.below(window) as usize;
            for k in 0..=rng.below(16) as usize {
                if let Some(b) = bytes.get_mut(i + k) {
                    *b = b" {}[]:,'\"0123456789-eE.x"[rng.below(24) as usize];
                }
            }
        }
    }
    bytes
}

/// Opens, decodes every tensor, recovers the architecture and builds the graph.
fn exercise(path: &std::path::Path, bytes: Vec<u8>) {
    let Ok(store) = checkpoint::open_blob(path, Blob::from_vec(bytes)) else { return };
    for t in store.tensors() {
        assert_eq!(t.to_f32().len(), t.num_elements(), "{}: decoded length", t.name);
    }
    let arch = gmnscope::arch::recover(&store);
    if let Ok(graph) = gmnscope::graph::build(&arch, &store) {
        assert!(graph.num_edges() >= graph.num_parameters() || graph.num_parameters() == 0);
    }
}

#[test]
fn random_corruptions_of_every_fixture_never_panic() {
    let fixtures = model_fixtures();
    assert!(fixtures.len() >= 10, "expected the committed fixtures, found {fixtures:?}");
    let per_fixture = corruptions_per_fixture();
    let mut opened_ok = 0usize;
    let mut total = 0usize;
    let mut valid = 0usize;
    for (f, path) in fixtures.iter().enumerate() {
        let original = std::fs::read(path).unwrap();
        // Deliberately invalid fixtures (object arrays, malicious pickles) are corrupted too: their
        // corruptions must not panic either.
        valid += checkpoint::open_blob(path, Blob::from_vec(original.clone())).is_ok() as usize;
        for seed in 0..per_fixture {
            let mut rng = SplitMix64::new(seed ^ ((f as u64) << 32));
            let bytes = corrupt(&original, &mut rng);
            let outcome =
                catch_unwind(AssertUnwindSafe(|| checkpoint::open_blob(path, Blob::from_vec(bytes.clone())).is_ok()));
            match outcome {
                Ok(ok) => opened_ok += ok as usize,
                Err(_) => panic!("{}: corruption seed {seed} made the reader panic", path.display()),
            }
            if catch_unwind(AssertUnwindSafe(|| exercise(path, bytes))).is_err() {
                panic!("{}: corruption seed {seed} made a later stage panic", path.display());
            }
            total += 1;
        }
    }
    assert!(valid >= 10, "expected at least 10 valid fixtures, {valid} opened");
    eprintln!(
        "{total} corruptions over {} fixtures ({valid} valid originals); {opened_ok} still opened as valid files",
        fixtures.len()
    );
}

#[test]
fn errors_name_the_file() {
    for path in model_fixtures() {
        let original = std::fs::read(&path).unwrap();
        let truncated = &original[..original.len() / 3];
        if let Err(e) = checkpoint::open_blob(&path, Blob::from_vec(truncated.to_vec())) {
            let msg = e.to_string();
            assert!(msg.contains(&*path.to_string_lossy()), "error does not name the file: {msg}");
            assert!(!msg.contains('\n'), "error should be one line: {msg}");
        }
    }
}
