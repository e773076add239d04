//! Small files that ask for unbounded work (issue 13): pickle bombs inside torch zips, nested
//! shared keys, huge text integers, ambiguous archives, compressed storages, FIFOs, and names
//! carrying terminal escapes. Each file is generated here; each must give one clean error that
//! names the file (or, for a compressed storage, open without inflating it).
//!
//! Memory is checked without timing: the bombs run in a child `gmnscope inspect` whose address
//! space is capped with `ulimit -v` (an unbounded reader aborts with "memory allocation failed"
//! instead of printing our error), and whose peak RSS (`GMNSCOPE_PEAK_RSS=1`) must stay small.

use std::io::{Cursor, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use gmnscope::checkpoint::{self, Blob};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::common::{fixtures_dir, gmnscope_bin};

/// Address space the child may map (KiB): far above what a bounded read needs, far below what the
/// bombs ask for.
const ADDRESS_LIMIT_KIB: u64 = 1536 * 1024;
/// Peak resident memory (KiB) a refused bomb may have cost.
const PEAK_LIMIT_KIB: u64 = 400 * 1024;

/// Writes a torch-style zip: `(name, bytes, deflate?)` entries in order.
fn zip_of(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes, deflate) in entries {
        let method = if *deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored };
        let options =
            SimpleFileOptions::default().compression_method(method).large_file(bytes.len() > u32::MAX as usize);
        zip.start_file(*name, options).expect("start entry");
        zip.write_all(bytes).expect("write entry");
    }
    zip.finish().expect("finish zip").into_inner()
}

/// A protocol-2 pickle `body` framed as one: PROTO 2 ... STOP.
fn pickle(body: &[u8]) -> Vec<u8> {
    let mut out = b"\x80\x02".to_vec();
    out.extend_from_slice(body);
    out.push(b'.');
    out
}

fn binunicode(text: &[u8]) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text);
    out
}

/// `torch._utils._rebuild_tensor_v2(storage '0' of `numel` f32, 0, (numel,), (1,), False, {})`.
fn tensor_call(numel: u32) -> Vec<u8> {
    let mut out = b"ctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
    out.push(b'(');
    out.extend(binunicode(b"storage"));
    out.extend_from_slice(b"ctorch\nFloatStorage\n");
    out.extend(binunicode(b"0"));
    out.extend(binunicode(b"cpu"));
    out.push(b'J');
    out.extend_from_slice(&numel.to_le_bytes());
    out.extend_from_slice(b"tQK\x00J");
    out.extend_from_slice(&numel.to_le_bytes());
    out.extend_from_slice(b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR");
    out
}

/// `{name: tensor}` with one f32 storage of `numel` elements.
fn state_dict_pickle(name: &[u8], numel: u32) -> Vec<u8> {
    let mut body = b"}".to_vec();
    body.extend(binunicode(name));
    body.extend(tensor_call(numel));
    body.push(b's');
    pickle(&body)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    peak_kib: u64,
}

/// `gmnscope inspect FILE` with the address space capped and the peak RSS reported.
fn inspect_capped(path: &Path) -> Run {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_LIMIT_KIB}; exec \"$0\" inspect \"$1\""))
        .arg(gmnscope_bin())
        .arg(path)
        .env("GMNSCOPE_PEAK_RSS", "1")
        .output()
        .expect("run gmnscope");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let peak_kib = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak RSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(u64::MAX);
    Run { code: out.status.code(), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr, peak_kib }
}

/// The bomb is refused with exit 2, an error naming the file and containing `phrase`, within
/// [`PEAK_LIMIT_KIB`].
fn assert_refused(path: &Path, phrase: &str) -> String {
    let run = inspect_capped(path);
    let name = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(run.code, Some(2), "{name}: expected a clean error, got {:?}: {}", run.code, run.stderr);
    let error = run.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default().to_string();
    assert!(error.contains(name), "{name}: error should name the file: {error}");
    assert!(error.contains(phrase), "{name}: error should say '{phrase}': {error}");
    assert!(run.peak_kib < PEAK_LIMIT_KIB, "{name}: peak RSS {} KiB", run.peak_kib);
    error
}

#[test]
fn compressed_pickle_of_empty_lists_is_refused() {
    // 30M EMPTY_LIST opcodes deflate to ~30 KB and would build 30M lists (~3 GB).
    let dir = tempfile::tempdir().unwrap();
    let mut body = vec![b']'; 30_000_000];
    body.push(b'0');
    let file = zip_of(&[("archive/data.pkl", &pickle(&body), true)]);
    assert!(file.len() < 200_000, "{}", file.len());
    let path = write(dir.path(), "empty_lists.pt", &file);
    assert_refused(&path, "pickle bomb");
}

#[test]
fn compressed_pickle_of_stack_duplicates_is_refused() {
    // NONE then 60M DUPs: a 60M-entry stack (~1.4 GB) from ~60 KB.
    let dir = tempfile::tempdir().unwrap();
    let mut body = b"N".to_vec();
    body.resize(60_000_001, b'2');
    let file = zip_of(&[("archive/data.pkl", &pickle(&body), true)]);
    let path = write(dir.path(), "dups.pt", &file);
    assert_refused(&path, "pickle bomb");
}

#[test]
fn stored_pickle_of_empty_lists_exceeds_the_unpickler_budget() {
    // Uncompressed: 3M lists cost ~104 bytes of memory per file byte, over the 64 allowed.
    let dir = tempfile::tempdir().unwrap();
    let body = vec![b']'; 3_000_000];
    let path = write(dir.path(), "stored_lists.pt", &zip_of(&[("archive/data.pkl", &pickle(&body), false)]));
    let error = assert_refused(&path, "passes its limit of");
    assert!(error.contains("64 per byte of this"), "the limit is stated: {error}");
}

/// `{k: {k: ... {k: tensor}}}`, `depth` levels sharing one memoized key of `key_len` bytes.
fn nested_key_zip(key_len: usize, depth: usize) -> Vec<u8> {
    let mut body = b"}".to_vec();
    body.extend(binunicode(&vec![b'k'; key_len]));
    body.extend_from_slice(b"q\x00");
    for _ in 1..depth {
        body.extend_from_slice(b"}h\x00");
    }
    body.extend(tensor_call(1));
    body.extend(std::iter::repeat_n(b's', depth));
    zip_of(&[("archive/data.pkl", &pickle(&body), false), ("archive/data/0", &[0u8; 4], false)])
}

#[test]
fn shared_megabyte_key_nested_95_deep_is_refused() {
    // The issue's file: one 1 MB key at 95 levels names a tensor with 95 MB, and the prefixes
    // built on the way take 4.5 GB. Hashing the key 95 times already passes the work limit.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nested_key.pt", &nested_key_zip(1 << 20, 95));
    assert_refused(&path, "limit of");
}

#[test]
fn shared_key_names_are_charged_to_the_memory_limit() {
    // A 64 KB key at 95 levels: cheap to hash, but the names would take 290 MB.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nested_64k_key.pt", &nested_key_zip(64 << 10, 95));
    assert_refused(&path, "tensor names would take more than");
}

#[test]
fn protocol_0_integers_are_capped_at_python_digits() {
    // 60,000 digits took ~1 s each to convert; Python itself refuses more than 4,300.
    let dir = tempfile::tempdir().unwrap();
    let mut body = b"(I".to_vec();
    body.extend(std::iter::repeat_n(b'7', 60_000));
    body.extend_from_slice(b"\nt");
    let path = write(dir.path(), "long_int.pt", &legacy_file(&body));
    let err = checkpoint::open(&path).expect_err("refused").to_string();
    assert!(err.contains("long_int.pt") && err.contains("4300"), "{err}");

    // 4,300 digits still parse (and to the right value: 10^4299 has 4,300 digits).
    let mut ok = b"(L1".to_vec();
    ok.extend(std::iter::repeat_n(b'0', 4299));
    ok.extend_from_slice(b"L\nt");
    let path = write(dir.path(), "max_int.pt", &legacy_file(&ok));
    let err = checkpoint::open(&path).expect_err("no tensors").to_string();
    assert!(err.contains("storage key list") || err.contains("no tensors"), "parsed past the integer: {err}");
}

/// The entries of a committed torch zip, as (name, bytes).
fn entries_of(fixture: &str) -> Vec<(String, Vec<u8>)> {
    entries_of_zip(std::fs::read(fixtures_dir().join("pytorch").join(fixture)).unwrap())
}

fn entries_of_zip(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (entry.name().to_string(), data)
        })
        .collect()
}

fn pickle_of(fixture: &str) -> Vec<u8> {
    entries_of(fixture).into_iter().find(|(n, _)| n.ends_with("data.pkl")).unwrap().1
}

#[test]
fn two_pickles_in_one_archive_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mlp = entries_of("mlp_zip.pt");
    let evil = pickle_of("malicious_os_system.pt");
    // The code-running pickle first, then the real checkpoint: a reader taking the first runs it.
    let mut entries: Vec<(&str, &[u8], bool)> = vec![("evil/data.pkl", &evil, false)];
    entries.extend(mlp.iter().map(|(n, b)| (n.as_str(), b.as_slice(), false)));
    let path = write(dir.path(), "two_pickles.pt", &zip_of(&entries));
    let err = checkpoint::open(&path).expect_err("ambiguous").to_string();
    assert!(err.contains("two_pickles.pt") && err.contains("holds 2 pickles"), "{err}");
}

#[test]
fn duplicate_entry_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mlp = entries_of("mlp_zip.pt");
    let pickle_name = mlp.iter().find(|(n, _)| n.ends_with("data.pkl")).unwrap().0.clone();
    let evil = pickle_of("malicious_os_system.pt");
    // A second entry named like the pickle (written as `data.pkX`, then renamed in both headers).
    let twin = format!("{}X", &pickle_name[..pickle_name.len() - 1]);
    let mut entries: Vec<(&str, &[u8], bool)> = vec![(twin.as_str(), &evil, false)];
    entries.extend(mlp.iter().map(|(n, b)| (n.as_str(), b.as_slice(), false)));
    let mut file = zip_of(&entries);
    rename_entry(&mut file, &twin, &pickle_name);
    let path = write(dir.path(), "duplicate_names.pt", &file);
    let err = checkpoint::open(&path).expect_err("ambiguous").to_string();
    assert!(err.contains("duplicate_names.pt") && err.contains("two entries named"), "{err}");

    // The same in an .npz: two arrays named `a`.
    let a = deflated_npz_of_zeros(4);
    let npy = entries_of_zip(a).remove(0).1;
    let mut file = zip_of(&[("a.npy", &npy, false), ("b.npy", &npy, false)]);
    rename_entry(&mut file, "b.npy", "a.npy");
    let path = write(dir.path(), "duplicate_names.npz", &file);
    let err = checkpoint::open(&path).expect_err("ambiguous").to_string();
    assert!(err.contains("duplicate_names.npz") && err.contains("two entries named 'a.npy'"), "{err}");
}

/// Renames entry `from` to `to` (same length) in the local and the central header.
fn rename_entry(file: &mut [u8], from: &str, to: &str) {
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut renamed = 0;
    for i in 0..file.len() - from.len() {
        if &file[i..i + from.len()] == from {
            file[i..i + to.len()].copy_from_slice(to);
            renamed += 1;
        }
    }
    assert_eq!(renamed, 2, "local and central header");
}

/// A zip whose one f32 storage of `numel` elements is deflated.
fn compressed_storage_zip(numel: u32, fill: impl Fn(usize) -> f32) -> Vec<u8> {
    let storage: Vec<u8> = (0..numel as usize).flat_map(|i| fill(i).to_le_bytes()).collect();
    zip_of(&[
        ("archive/data.pkl", &state_dict_pickle(b"w", numel), false),
        ("archive/byteorder", b"little", false),
        ("archive/data/0", &storage, true),
    ])
}

#[test]
fn compressed_storages_are_inflated_only_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "lazy.pt", &compressed_storage_zip(1000, |i| i as f32 * 0.5));
    let store = checkpoint::open(&path).expect("opens");
    let w = store.get("w").unwrap();
    assert_eq!(w.shape, [1000]);
    assert!(w.data.is_deferred(), "opening must not inflate the storage");
    let values = w.to_f32();
    assert!(!w.data.is_deferred());
    assert_eq!(values.len(), 1000);
    assert!(values.iter().enumerate().all(|(i, &v)| v == i as f32 * 0.5));

    // A corrupt stream (CRC mismatch) reads as zeros, never panics.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    let crc_at = (0..n - 4).rev().find(|&i| bytes[i..i + 4] == *b"PK\x01\x02").unwrap();
    bytes[crc_at + 16] ^= 0xff; // the storage's central-directory CRC (last entry)
    let corrupt = write(dir.path(), "corrupt_crc.pt", &bytes);
    let store = checkpoint::open(&corrupt).expect("the header is fine");
    assert!(store.get("w").unwrap().to_f32().iter().all(|&v| v == 0.0));
}

#[test]
fn inspect_does_not_inflate_a_compressed_storage() {
    // 256 MB of zeros deflate to ~250 KB; inspect shows shapes only.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "big_storage.pt", &compressed_storage_zip(64 << 20, |_| 0.0));
    let run = inspect_capped(&path);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("67,108,864"), "{}", run.stdout);
    assert!(run.peak_kib < 128 * 1024, "peak RSS {} KiB: the storage was inflated", run.peak_kib);
}

/// An `.npz` with one deflated `<f4` array of `numel` zeros named `a`.
fn deflated_npz_of_zeros(numel: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({numel},), }}");
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend(header);
    npy.resize(npy.len() + numel * 4, 0);
    zip_of(&[("a.npy", &npy, true)])
}

#[test]
fn deflated_npz_arrays_are_inflated_only_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "small.npz", &deflated_npz_of_zeros(1000));
    let store = checkpoint::open(&path).expect("opens");
    let a = store.get("a").unwrap();
    assert!(a.data.is_deferred(), "opening must not inflate the payload");
    assert_eq!(a.to_f32(), vec![0.0; 1000]);

    // 256 MB of zeros: inspect reads the header only.
    let path = write(dir.path(), "big.npz", &deflated_npz_of_zeros(64 << 20));
    let run = inspect_capped(&path);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.peak_kib < 128 * 1024, "peak RSS {} KiB: the payload was inflated", run.peak_kib);
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn fifos_are_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.safetensors");
    mkfifo(&fifo);
    let err = checkpoint::open(&fifo).expect_err("a FIFO is no model").to_string();
    assert!(err.contains("model.safetensors") && err.contains("not a regular file"), "{err}");

    // ONNX external data that is a FIFO.
    let model = dir.path().join("external.onnx");
    std::fs::copy(fixtures_dir().join("onnx/external.onnx"), &model).unwrap();
    mkfifo(&dir.path().join("external.onnx.data"));
    let err = checkpoint::open(&model).expect_err("FIFO data").to_string();
    assert!(err.contains("external.onnx") && err.contains("not a regular file"), "{err}");
}

/// A safetensors file with one 2x3 tensor named `name` of dtype `dtype` (`F32` or an 8-bit one).
fn safetensors_with(name: &str, dtype: &str) -> Vec<u8> {
    let bytes = if dtype == "F32" { 24 } else { 6 };
    let header =
        serde_json::json!({ name: { "dtype": dtype, "shape": [2, 3], "data_offsets": [0, bytes] } }).to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, bytes));
    out
}

#[test]
fn names_from_files_are_escaped_and_cut_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("\x1b[2J\x1b[31mALL CHECKS PASSED{}", "x".repeat(10 << 20));
    let path = write(dir.path(), "escape.safetensors", &safetensors_with(&name, "F8_E5M2"));
    let err = checkpoint::open(&path).expect_err("unsupported dtype").to_string();
    assert!(!err.contains('\x1b'), "raw escape in the error");
    assert!(err.contains("\\x1b[2J\\x1b[31mALL CHECKS PASSED"), "{}", &err[..300.min(err.len())]);
    assert!(err.contains("10,485,786 chars") && err.len() < 1000, "cut with its length: {} bytes", err.len());

    // A pickle global with an escape in its module name.
    let evil = pickle(b"cos\x1b[2J\nsystem\n.");
    let path = write(dir.path(), "evil_global.pt", &zip_of(&[("archive/data.pkl", &evil, false)]));
    let err = checkpoint::open(&path).expect_err("refused").to_string();
    assert!(err.contains("'os\\x1b[2J.system'") && !err.contains('\x1b'), "{err}");
}

#[test]
fn inspect_prints_names_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "names.safetensors", &safetensors_with("fc\x1b[2J\r.weight", "F32"));
    let run = inspect_capped(&path);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stdout.contains('\x1b') && !run.stdout.contains('\r'), "{:?}", run.stdout);
    assert!(run.stdout.contains("\\x1b[2J\\r"), "{}", run.stdout);
}

/// Seeded random pickle programs of container opcodes, memo traffic and duplicates, each inside a
/// torch zip: every one opens or fails with an error naming the file, and none panics.
#[test]
fn random_opcode_programs_stay_within_bounds() {
    const PIECES: &[&[u8]] = &[
        b"]",
        b")",
        b"}",
        b"(",
        b"2",
        b"0",
        b"a",
        b"e",
        b"s",
        b"u",
        b"t",
        b"l",
        b"d",
        b"\x85",
        b"\x86",
        b"q\x00",
        b"h\x00",
        b"\x94",
        b"K\x01",
        b"X\x01\x00\x00\x00k",
        b"\x8f",
        b"\x90",
        b"\x91",
        b"N",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let path = Path::new("random.pt");
    for _ in 0..300 {
        let mut body = Vec::new();
        let len = next() % 4000;
        for _ in 0..len {
            let piece = PIECES[(next() % PIECES.len() as u64) as usize];
            // Runs of one piece make the amplifying shapes (deep nests, long DUP chains).
            let repeat = if next() % 8 == 0 { next() % 2000 } else { 1 };
            for _ in 0..repeat {
                body.extend_from_slice(piece);
            }
        }
        let file = zip_of(&[("archive/data.pkl", &pickle(&body), false)]);
        match checkpoint::pytorch::read(path, Blob::from_vec(file)) {
            Ok(_) => {}
            Err(e) => assert!(e.to_string().starts_with("random.pt: "), "{e}"),
        }
    }
}

/// A legacy torch file (magic number, protocol, system info) whose state dict is the protocol-2
/// pickle body `body` (without its opcode 0x80 header and STOP).
fn legacy_file(body: &[u8]) -> Vec<u8> {
    let mut legacy = pickle(b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19");
    legacy.extend(pickle(b"M\xe9\x03"));
    legacy.extend(pickle(b"}"));
    legacy.extend(pickle(body));
    legacy
}

/// Protobuf: a length-delimited field.
fn pb_bytes(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    pb_varint((number << 3) | 2, out);
    pb_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn pb_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An ONNX model whose node `c_i = Concat(c_{i-1}, w_i)` chain makes every value out of one
/// more weight: recovery traces values made of weights (torch's LSTMCell export), and a
/// record of all sources per value would grow quadratically with the chain.
fn concat_chain_onnx(n: usize) -> Vec<u8> {
    let mut graph = Vec::new();
    for i in 0..n {
        let mut init = Vec::new();
        pb_varint(1 << 3, &mut init); // dims
        pb_varint(1, &mut init);
        pb_varint(2 << 3, &mut init); // data_type FLOAT
        pb_varint(1, &mut init);
        pb_bytes(8, format!("w{i}").as_bytes(), &mut init);
        pb_bytes(9, &1.0f32.to_le_bytes(), &mut init);
        pb_bytes(5, &init, &mut graph);
    }
    for i in 1..n {
        let mut node = Vec::new();
        let previous = if i == 1 { "w0".to_string() } else { format!("c{}", i - 1) };
        pb_bytes(1, previous.as_bytes(), &mut node);
        pb_bytes(1, format!("w{i}").as_bytes(), &mut node);
        pb_bytes(2, format!("c{i}").as_bytes(), &mut node);
        pb_bytes(4, b"Concat", &mut node);
        pb_bytes(1, &node, &mut graph);
    }
    let mut model = Vec::new();
    pb_varint(1 << 3, &mut model); // ir_version
    pb_varint(8, &mut model);
    pb_bytes(7, &graph, &mut model);
    model
}

#[test]
fn a_chain_of_concatenated_weights_stays_linear() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "concat_chain.onnx", &concat_chain_onnx(30_000));
    let run = inspect_capped(&path);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("tensors     30000") || run.stdout.contains("30,000"), "{}", run.stdout);
    assert!(run.peak_kib < PEAK_LIMIT_KIB, "peak RSS {} KiB", run.peak_kib);
}
