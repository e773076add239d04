//! Seeded-mutation fuzzing of every reader, run by `cargo test` (issue 13, item 7).
//!
//! The corpus is the committed fixtures, grouped by the reader that parses them: safetensors,
//! torch.save zip, torch legacy, ONNX, .npy, .npz, and activation files for CKA. Each input is
//! mutated (the byte-level corruptions of `corruption.rs`, plus splices with another file of the
//! same reader and repeated spans) and must satisfy, besides not panicking:
//! - memory: the heap the reader holds at its peak stays within [`HEAP_PER_BYTE`] x the input
//!   plus a fixed floor (measured by the counting allocator in `alloc_meter.rs`);
//! - sizes: no tensor claims more bytes than its file could hold (deflate expands at most 1032x);
//! - messages: an error is one line, names the file, and holds no raw control characters.
//!
//! CI runs [`DEFAULT_ITERATIONS`] mutations per reader (a few seconds each); set
//! `GMNSCOPE_FUZZ_ITERATIONS` (e.g. 200000) for a long run, `GMNSCOPE_FUZZ_SEED` to explore
//! other mutations. A failing case prints its reader, fixture and seed, which reproduce it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use gmnscope::checkpoint::{self, Blob, TensorStore};
use gmnscope::cka::{Options, cka_matrix};
use gmnscope::rng::SplitMix64;

use crate::alloc_meter::peak_during;
use crate::common::fixtures_dir;

/// Mutations per reader in a plain `cargo test`.
const DEFAULT_ITERATIONS: u64 = 600;
/// Heap a reader may hold per input byte at its peak (the pickle budget allows 64 per pickle
/// byte; names, offsets and the tensor list are a few per byte).
const HEAP_PER_BYTE: u64 = 96;
/// Fixed allowance: buffers of a fixed size (inflate windows, BufReaders, a 64 KiB pickle floor).
const HEAP_FLOOR: u64 = 8 << 20;
/// Deflate's largest expansion ratio.
const DEFLATE_MAX_RATIO: u64 = 1032;

fn iterations() -> u64 {
    std::env::var("GMNSCOPE_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_ITERATIONS)
}

fn base_seed() -> u64 {
    std::env::var("GMNSCOPE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(13)
}

/// The readers and the fixtures each parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    Safetensors,
    TorchZip,
    TorchLegacy,
    Onnx,
    Npy,
    Npz,
    Activations,
}

const READERS: [Reader; 7] = [
    Reader::Safetensors,
    Reader::TorchZip,
    Reader::TorchLegacy,
    Reader::Onnx,
    Reader::Npy,
    Reader::Npz,
    Reader::Activations,
];

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn corpus(reader: Reader) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    files_under(&fixtures_dir(), &mut files);
    files.sort();
    let ext = |p: &Path| p.extension().and_then(|e| e.to_str()).unwrap_or("").to_string();
    let in_cka = |p: &Path| p.components().any(|c| c.as_os_str() == "cka");
    files
        .into_iter()
        .filter_map(|p| {
            let bytes = std::fs::read(&p).ok()?;
            let zip = bytes.starts_with(b"PK");
            let keep = match reader {
                Reader::Safetensors => ext(&p) == "safetensors" && !in_cka(&p),
                Reader::TorchZip => matches!(ext(&p).as_str(), "pt" | "pth" | "bin") && zip,
                Reader::TorchLegacy => matches!(ext(&p).as_str(), "pt" | "pth" | "bin") && !zip,
                Reader::Onnx => ext(&p) == "onnx",
                Reader::Npy => ext(&p) == "npy",
                Reader::Npz => ext(&p) == "npz" && !in_cka(&p),
                Reader::Activations => in_cka(&p) && matches!(ext(&p).as_str(), "safetensors" | "npz"),
            };
            keep.then_some((p, bytes))
        })
        .collect()
}

/// One mutation of `input`: a byte-level corruption, a splice with `other`, or a repeated span.
fn mutate(input: &[u8], other: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    match rng.below(8) {
        0 => {
            // Head of one file, tail of another (same reader): valid-looking headers over
            // foreign bodies.
            let cut = rng.below(input.len() as u64 + 1) as usize;
            let from = rng.below(other.len() as u64 + 1) as usize;
            [&input[..cut], &other[from..]].concat()
        }
        1 => {
            // A span repeated many times (amplifies whatever count or length it holds).
            let len = input.len().max(1) as u64;
            let i = rng.below(len) as usize;
            let j = (i + 1 + rng.below(32) as usize).min(input.len());
            let mut out = input[..i].to_vec();
            for _ in 0..(2 + rng.below(200)) {
                out.extend_from_slice(&input[i..j]);
            }
            out.extend_from_slice(&input[j..]);
            out
        }
        _ => crate::corruption::corrupt(input, rng),
    }
}

/// Checks an error message: one line, names the file, escaped.
fn check_message(reader: Reader, path: &Path, seed: u64, msg: &str) {
    let name = path.to_string_lossy();
    assert!(msg.contains(&*name), "{reader:?} seed {seed}: error does not name the file: {msg}");
    assert!(
        !msg.chars().any(|c| (c.is_control() && c != '\t') || ('\u{202a}'..='\u{202e}').contains(&c)),
        "{reader:?} seed {seed}: raw control character in: {msg:?}"
    );
}

/// Opens `bytes` as `path` and checks the properties; returns whether it opened.
fn exercise(reader: Reader, path: &Path, bytes: Vec<u8>, seed: u64) -> bool {
    let len = bytes.len() as u64;
    let (opened, peak) = peak_during(|| checkpoint::open_blob(path, Blob::from_vec(bytes)));
    let limit = HEAP_PER_BYTE * len + HEAP_FLOOR;
    assert!(
        peak <= limit,
        "{reader:?} {} seed {seed}: the reader held {peak} bytes for a {len}-byte input",
        path.display()
    );
    let store = match opened {
        Ok(store) => store,
        Err(e) => {
            check_message(reader, path, seed, &e.to_string());
            return false;
        }
    };
    check_sizes(reader, path, seed, len, &store);
    if reader == Reader::Activations {
        match gmnscope::activations::from_store(&store) {
            Ok(file) => {
                let views = file.views();
                let options = Options { memory_budget: 16 << 20, ..Options::linear() };
                if let Ok(m) = cka_matrix(&views, &views, &options) {
                    for i in 0..m.rows() {
                        for j in 0..m.cols() {
                            let v = m.get(i, j).unwrap_or(0.0);
                            assert!((-1e-9..=1.0 + 1e-9).contains(&v), "{reader:?} seed {seed}: CKA {v}");
                        }
                    }
                }
            }
            Err(e) => check_message(reader, path, seed, &e),
        }
    } else {
        let arch = gmnscope::arch::recover(&store);
        let _ = gmnscope::graph::build(&arch, &store);
    }
    true
}

/// No tensor claims more bytes than the file could hold, and each decodes to its element count.
fn check_sizes(reader: Reader, path: &Path, seed: u64, len: u64, store: &TensorStore) {
    let mut total = 0u64;
    for t in store.tensors() {
        let bytes = (t.num_elements() as u64).saturating_mul(t.dtype.size() as u64);
        total = total.saturating_add(bytes);
        assert_eq!(t.to_f32().len(), t.num_elements(), "{reader:?} {} seed {seed}: '{}'", path.display(), t.name);
    }
    assert!(
        total <= DEFLATE_MAX_RATIO * len + 1024,
        "{reader:?} {} seed {seed}: tensors of {total} bytes from a {len}-byte file",
        path.display()
    );
}

fn fuzz(reader: Reader) {
    let corpus = corpus(reader);
    assert!(!corpus.is_empty(), "{reader:?}: no fixtures in the corpus");
    let mut opened = 0;
    // The originals first: every fixture of the corpus is exercised as it is.
    for (path, bytes) in &corpus {
        opened += usize::from(exercise(reader, path, bytes.clone(), u64::MAX));
    }
    let n = iterations();
    for k in 0..n {
        let seed = base_seed().wrapping_mul(0x9e37_79b9).wrapping_add(k);
        let mut rng = SplitMix64::new(seed);
        let (path, input) = &corpus[rng.below(corpus.len() as u64) as usize];
        let (_, other) = &corpus[rng.below(corpus.len() as u64) as usize];
        let bytes = mutate(input, other, &mut rng);
        let outcome = catch_unwind(AssertUnwindSafe(|| exercise(reader, path, bytes, seed)));
        match outcome {
            Ok(ok) => opened += usize::from(ok),
            Err(e) => {
                let what = e.downcast_ref::<String>().cloned().unwrap_or_default();
                panic!("{reader:?}: {} mutation seed {seed} failed: {what}", path.display());
            }
        }
    }
    eprintln!("{reader:?}: {} fixtures, {n} mutations, {opened} inputs opened", corpus.len());
}

#[test]
fn fuzz_safetensors() {
    fuzz(Reader::Safetensors);
}

#[test]
fn fuzz_torch_zip() {
    fuzz(Reader::TorchZip);
}

#[test]
fn fuzz_torch_legacy() {
    fuzz(Reader::TorchLegacy);
}

#[test]
fn fuzz_onnx() {
    fuzz(Reader::Onnx);
}

#[test]
fn fuzz_npy() {
    fuzz(Reader::Npy);
}

#[test]
fn fuzz_npz() {
    fuzz(Reader::Npz);
}

#[test]
fn fuzz_activation_files() {
    fuzz(Reader::Activations);
}

#[test]
fn every_reader_has_a_corpus() {
    for reader in READERS {
        assert!(!corpus(reader).is_empty(), "{reader:?}");
    }
}
