//! PyTorch `torch.save` files written by real torch (`tests/fixtures/pytorch/generate.py`): every
//! fixture must open through `checkpoint::open` and match its `.expected.json` (names in file
//! order, dtypes, shapes, values); files that would run code must be refused without side effects;
//! damaged files must give errors, never panics.

use std::path::{Path, PathBuf};

use gmnscope::checkpoint::{self, Blob, DType, Format, TensorStore};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pytorch");

fn fixture(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

fn expected(name: &str) -> Value {
    let path = fixture(&format!("{name}.expected.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("expected.json parses")
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0)
}

/// Opens a fixture and checks it against its expected.json; returns the store for further checks.
fn open_and_compare(name: &str) -> TensorStore {
    let store = checkpoint::open(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let exp = expected(name);
    assert_eq!(store.format.name(), exp["format"].as_str().unwrap(), "{name}: format");
    let exp_tensors = exp["tensors"].as_array().unwrap();
    let names: Vec<&str> = store.tensors().iter().map(|t| t.name.as_str()).collect();
    let exp_names: Vec<&str> = exp_tensors.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, exp_names, "{name}: tensor names in file order");
    for (tensor, exp) in store.tensors().iter().zip(exp_tensors) {
        let what = format!("{name}: {}", tensor.name);
        assert_eq!(tensor.dtype.name(), exp["dtype"].as_str().unwrap(), "{what}: dtype");
        let shape: Vec<usize> = exp["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(tensor.shape, shape, "{what}: shape");
        let values = tensor.to_f64();
        assert_eq!(values.len(), tensor.num_elements(), "{what}: element count");
        let sum: f64 = values.iter().sum();
        let weighted: f64 = values.iter().enumerate().map(|(i, v)| (i + 1) as f64 * v).sum();
        assert!(close(sum, exp["sum"].as_f64().unwrap()), "{what}: sum {sum} vs {}", exp["sum"]);
        assert!(
            close(weighted, exp["weighted_sum"].as_f64().unwrap()),
            "{what}: weighted sum {weighted} vs {} (element order)",
            exp["weighted_sum"]
        );
        for (i, e) in exp["first"].as_array().unwrap().iter().enumerate() {
            assert!(close(values[i], e.as_f64().unwrap()), "{what}: value {i} is {} not {e}", values[i]);
        }
        if let Some(last) = exp["last"].as_f64() {
            assert!(close(*values.last().unwrap(), last), "{what}: last value");
        }
    }
    store
}

#[test]
fn mlp_zip() {
    let store = open_and_compare("mlp_zip.pt");
    assert_eq!(store.format, Format::PytorchZip);
    let names: Vec<&str> = store.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["seq.0.weight", "seq.0.bias", "seq.2.weight", "seq.2.bias", "seq.4.weight", "seq.4.bias"]);
    assert_eq!(store.get("seq.2.weight").unwrap().shape, [32, 32]);
    assert_eq!(store.num_parameters(), 2 * 32 + 32 + 32 * 32 + 32 + 32 + 1);
}

#[test]
fn mlp_legacy() {
    let store = open_and_compare("mlp_legacy.pt");
    assert_eq!(store.format, Format::PytorchLegacy);
}

#[test]
fn mlp_protocol_4_uses_stack_global_and_frames() {
    open_and_compare("mlp_proto4.pt");
}

#[test]
fn mlp_deflated_zip() {
    open_and_compare("mlp_deflated.pt");
}

#[test]
fn mlp_big_endian_zip() {
    open_and_compare("mlp_big_endian.pt");
}

#[test]
fn mlp_big_endian_legacy() {
    open_and_compare("mlp_legacy_big_endian.pt");
}

#[test]
fn every_encoding_of_the_mlp_gives_the_same_bytes() {
    let reference = checkpoint::open(fixture("mlp_zip.pt")).unwrap();
    for name in [
        "mlp_legacy.pt",
        "mlp_proto4.pt",
        "mlp_deflated.pt",
        "mlp_big_endian.pt",
        "mlp_legacy_big_endian.pt",
        "dataparallel.pth",
    ] {
        let other = checkpoint::open(fixture(name)).unwrap();
        assert_eq!(other.len(), reference.len(), "{name}");
        for (a, b) in reference.tensors().iter().zip(other.tensors()) {
            assert_eq!(a.name, b.name, "{name}");
            assert_eq!(a.shape, b.shape, "{name}");
            if name != "dataparallel.pth" {
                assert_eq!(a.bytes(), b.bytes(), "{name}: {}", a.name);
            }
        }
    }
}

#[test]
fn nested_training_checkpoint_yields_the_model_state_dict() {
    for name in ["nested_checkpoint.pth", "nested_checkpoint_legacy.pth"] {
        let store = open_and_compare(name);
        // The optimizer's exp_avg tensors and the config are ignored.
        assert_eq!(store.len(), 6, "{name}");
        assert!(store.tensors().iter().all(|t| t.name.starts_with("seq.")), "{name}");
    }
}

#[test]
fn dataparallel_prefix_is_stripped() {
    let store = open_and_compare("dataparallel.pth");
    assert_eq!(store.tensors()[0].name, "seq.0.weight");
}

#[test]
fn conv_batchnorm_with_int64_counter() {
    let store = open_and_compare("cnn_bn.pt");
    let tracked = store.get("1.num_batches_tracked").expect("BatchNorm counter");
    assert_eq!(tracked.dtype, DType::I64);
    assert!(tracked.shape.is_empty(), "a 0-d tensor");
    assert_eq!(tracked.to_f64(), [1.0]);
    assert_eq!(store.get("0.weight").unwrap().shape, [4, 1, 3, 3]);
}

#[test]
fn resnet_basic_block() {
    let store = open_and_compare("resnet_block.pt");
    let layers: Vec<&str> = store.tensors().iter().map(|t| t.name.rsplit_once('.').unwrap().0).collect();
    let mut unique = layers.clone();
    unique.dedup();
    assert_eq!(unique, ["conv1", "bn1", "conv2", "bn2", "shortcut.0", "shortcut.1"]);
    assert_eq!(store.get("conv2.weight").unwrap().shape, [2, 2, 3, 3]);
    assert_eq!(store.get("shortcut.0.weight").unwrap().shape, [2, 1, 1, 1]);
}

#[test]
fn all_dtypes() {
    let store = open_and_compare("dtypes.pt");
    let dtype = |n: &str| store.get(n).unwrap().dtype;
    assert_eq!(dtype("f16"), DType::F16);
    assert_eq!(dtype("bf16"), DType::BF16);
    assert_eq!(dtype("u16"), DType::U16, "uint16 goes through _rebuild_tensor_v3 with an untyped storage");
    assert_eq!(store.get("u8").unwrap().to_f64(), [250.0, 251.0, 252.0, 253.0, 254.0, 255.0]);
    assert_eq!(store.get("i32").unwrap().to_f64(), [-2147483648.0, 7.0, 2147483647.0]);
    assert_eq!(store.get("scalar").unwrap().shape, Vec::<usize>::new());
    assert_eq!(store.get("empty").unwrap().shape, [0, 4]);
}

#[test]
fn views_sharing_one_storage() {
    for name in ["shared_storage.pt", "shared_storage_legacy.pt"] {
        let store = open_and_compare(name);
        let matrix = store.get("matrix").unwrap().to_f64();
        let at = |r: usize, c: usize| matrix[r * 6 + c];
        let transposed = store.get("transposed").unwrap();
        assert_eq!(transposed.shape, [6, 4]);
        let t = transposed.to_f64();
        assert!((0..6).all(|c| (0..4).all(|r| t[c * 4 + r] == at(r, c))), "{name}: transpose");
        assert_eq!(store.get("column").unwrap().to_f64(), (0..4).map(|r| at(r, 3)).collect::<Vec<_>>());
        assert_eq!(store.get("block").unwrap().to_f64(), [at(1, 2), at(1, 3), at(1, 4), at(2, 2), at(2, 3), at(2, 4)]);
        let expanded = store.get("expanded").unwrap().to_f64();
        let column = store.get("tied_a").unwrap().to_f64();
        assert!((0..3).all(|r| (0..5).all(|c| expanded[r * 5 + c] == column[r])), "{name}: expand");
        assert_eq!(store.get("tied_b").unwrap().bytes(), store.get("tied_a").unwrap().bytes());
    }
}

#[test]
fn parameters_and_tensors_with_python_attributes() {
    // _rebuild_parameter (requires_grad true/false) and _rebuild_from_type_v2 (a tensor with `.note`).
    let store = open_and_compare("wrapped_tensors.pt");
    assert_eq!(store.get("param").unwrap().shape, [2, 2]);
    assert_eq!(store.get("frozen").unwrap().to_f64(), [1.0; 3]);
    let tagged = store.get("tagged").unwrap().to_f64();
    assert_eq!((tagged[0], tagged[3]), (-1.0, 1.0));
}

#[test]
fn contiguous_tensors_are_zero_copy_views_of_the_mapped_file() {
    for (name, copied) in [
        ("mlp_zip.pt", &[][..]),
        ("mlp_legacy.pt", &[]),
        ("shared_storage.pt", &["transposed", "column", "block", "every_other", "expanded"]),
    ] {
        let path = fixture(name);
        let blob = Blob::map_file(&path).unwrap();
        let file = blob.as_slice().as_ptr_range();
        let store = checkpoint::pytorch::read(&path, blob.clone()).unwrap();
        for t in store.tensors() {
            let inside = file.contains(&t.bytes().as_ptr());
            assert_eq!(inside, !copied.contains(&t.name.as_str()), "{name}: {} zero-copy = {inside}", t.name);
        }
    }
}

#[test]
fn malicious_pickles_are_refused_without_running_them() {
    let marker = Path::new("/tmp/gmnscope_pytorch_pwned");
    let _ = std::fs::remove_file(marker);
    for name in ["malicious_os_system.pt", "malicious_legacy.pt", "malicious_eval_proto4.pt", "full_model.pt"] {
        let global = expected(name)["refused_global"].as_str().unwrap().to_string();
        let err = checkpoint::open(fixture(name)).expect_err(name).to_string();
        assert!(err.contains("refusing to load"), "{name}: {err}");
        assert!(err.contains(&format!("'{global}'")), "{name}: error should name {global}: {err}");
        assert!(err.contains(name), "{name}: error should name the file: {err}");
    }
    assert!(!marker.exists(), "a payload ran");
}

#[test]
fn old_tar_format_is_reported_as_unsupported() {
    let err = checkpoint::open(fixture("old_tar_format.tar")).unwrap_err().to_string();
    assert!(err.contains("tar-based torch.save format"), "{err}");
}

#[test]
fn format_is_detected_from_content_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [("mlp_zip.pt", Format::PytorchZip), ("mlp_legacy.pt", Format::PytorchLegacy)] {
        for ext in ["bin", "ckpt", "weights"] {
            let copy = dir.path().join(format!("model.{ext}"));
            std::fs::copy(fixture(name), &copy).unwrap();
            let store = checkpoint::open(&copy).unwrap_or_else(|e| panic!("{name} as .{ext}: {e}"));
            assert_eq!(store.format, format, "{name} as .{ext}");
            assert_eq!(store.len(), 6);
        }
    }
}

#[test]
fn plain_pickles_and_other_bytes_are_not_torch_files() {
    let read = |bytes: &[u8]| checkpoint::pytorch::read(Path::new("x.pt"), Blob::from_vec(bytes.to_vec()));
    assert!(read(b"\x80\x02}q\x00.").unwrap_err().to_string().contains("magic number"));
    assert!(read(b"hello").unwrap_err().to_string().contains("not a torch.save file"));
    assert!(read(b"PK\x05\x06").unwrap_err().to_string().contains("zip"));
}

fn fixtures_of_kind(suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

#[test]
fn truncated_files_give_errors() {
    for name in [fixtures_of_kind(".pt"), fixtures_of_kind(".pth")].concat() {
        let bytes = std::fs::read(fixture(&name)).unwrap();
        for cut in (0..bytes.len()).step_by(7) {
            let result = checkpoint::pytorch::read(Path::new(&name), Blob::from_vec(bytes[..cut].to_vec()));
            assert!(result.is_err(), "{name} cut at {cut} of {} bytes opened", bytes.len());
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    for name in ["mlp_legacy.pt", "shared_storage_legacy.pt", "shared_storage.pt", "dtypes.pt", "nested_checkpoint.pth"]
    {
        let original = std::fs::read(fixture(name)).unwrap();
        for i in 0..original.len() {
            for flip in [0xffu8, 0x01, 0x80] {
                let mut bytes = original.clone();
                bytes[i] ^= flip;
                // Either outcome is fine; a store that opens must still be self-consistent.
                if let Ok(store) = checkpoint::pytorch::read(Path::new(name), Blob::from_vec(bytes)) {
                    for t in store.tensors() {
                        assert_eq!(t.bytes().len(), t.num_elements() * t.dtype.size());
                    }
                }
            }
        }
    }
}

/// The hand-checked example of papers.md §2, from a real `torch.save` of a standalone BasicBlock:
/// 13 nodes, 68 parameters, 70 edges (68 + 2 residual edges).
#[test]
fn real_basic_block_file_gives_the_hand_checked_graph() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pytorch/resnet_block.pt");
    let store = gmnscope::checkpoint::open(path).unwrap();
    let arch = gmnscope::arch::recover(&store);
    let graph = gmnscope::graph::build(&arch, &store).unwrap();
    assert_eq!((graph.num_nodes(), graph.num_parameters(), graph.num_edges()), (13, 68, 70));
    assert!(arch.layers.iter().any(|l| l.name == "residual"), "{:?}", arch.layers);
}
