//! safetensors fixtures (written by safetensors.torch / safetensors.numpy, see
//! tests/fixtures/generate_formats.py) read through `checkpoint::open`, and the shared
//! `.expected.json` comparison the numpy and ONNX fixture tests use too.

use std::path::{Path, PathBuf};

use gmnscope::checkpoint::{self, DType, Format, TensorStore};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// `tests/fixtures/<dir>/<name>`.
pub fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(FIXTURES).join(dir).join(name)
}

/// Fixtures in `dir` that have an `.expected.json` next to them.
pub fn fixtures_with_expectations(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(Path::new(FIXTURES).join(dir))
        .expect("fixture directory exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| p.to_str()?.strip_suffix(".expected.json").map(PathBuf::from))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures with expectations in {dir}");
    out
}

/// Checks `store` against `<fixture>.expected.json`: tensor names in order, dtypes, shapes, the
/// sum (relative 1e-9 of the absolute sum: numpy sums pairwise) and the first values (to the last
/// digit JSON parsing preserves); for ONNX also the node list.
pub fn assert_matches_expected(store: &TensorStore, fixture: &Path) {
    let json_path = format!("{}.expected.json", fixture.display());
    let text = std::fs::read_to_string(&json_path).expect("expected.json readable");
    let expected: serde_json::Value = serde_json::from_str(&text).expect("expected.json is JSON");
    let tensors = expected["tensors"].as_array().expect("tensors array");
    let names: Vec<&str> = store.tensors().iter().map(|t| t.name.as_str()).collect();
    let expected_names: Vec<&str> = tensors.iter().map(|t| t["name"].as_str().expect("name")).collect();
    assert_eq!(names, expected_names, "{}: tensor order", fixture.display());

    for (tensor, want) in store.tensors().iter().zip(tensors) {
        let what = format!("{} / {}", fixture.display(), tensor.name);
        assert_eq!(tensor.dtype.name(), want["dtype"].as_str().expect("dtype"), "{what}: dtype");
        let shape: Vec<usize> =
            want["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect();
        assert_eq!(tensor.shape, shape, "{what}: shape");
        let values = tensor.to_f64();
        assert_eq!(values.len(), tensor.num_elements(), "{what}: element count");
        let first: Vec<f64> =
            want["first"].as_array().expect("first").iter().map(|v| v.as_f64().expect("f64")).collect();
        // serde_json's default float parsing can be one ulp off Python's repr: compare to ~1e-15.
        let close = values.iter().zip(&first).all(|(a, b)| (a - b).abs() <= 1e-15 * b.abs());
        assert!(
            close && values.len() >= first.len(),
            "{what}: first values {:?} vs {first:?}",
            &values[..3.min(values.len())]
        );
        let sum: f64 = values.iter().sum();
        let scale: f64 = values.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
        let want_sum = want["sum"].as_f64().expect("sum");
        assert!((sum - want_sum).abs() <= 1e-9 * scale, "{what}: sum {sum} != {want_sum}");
    }

    if let Some(nodes) = expected.get("nodes").and_then(|n| n.as_array()) {
        assert_eq!(store.ops.len(), nodes.len(), "{}: node count", fixture.display());
        for (op, want) in store.ops.iter().zip(nodes) {
            let strings = |key: &str| -> Vec<String> {
                want[key].as_array().expect("list").iter().map(|s| s.as_str().expect("str").to_string()).collect()
            };
            assert_eq!(op.name, want["name"].as_str().expect("name"));
            assert_eq!(op.op_type, want["op_type"].as_str().expect("op_type"), "{}", op.name);
            assert_eq!(op.inputs, strings("inputs"), "{}: inputs", op.name);
            assert_eq!(op.outputs, strings("outputs"), "{}: outputs", op.name);
        }
    }
}

#[test]
fn every_safetensors_fixture_matches_its_expectations() {
    for path in fixtures_with_expectations("safetensors") {
        let store = checkpoint::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.format, Format::Safetensors);
        assert_matches_expected(&store, &path);
    }
}

#[test]
fn siren_mlp_has_the_dwsnets_layout() {
    let store = checkpoint::open(fixture("safetensors", "mlp.safetensors")).expect("opens");
    assert_eq!(store.num_parameters(), 1185);
    assert_eq!(store.get("seq.0.weight").map(|t| t.shape.clone()), Some(vec![32, 2]));
    assert_eq!(store.get("seq.2.weight").map(|t| t.shape.clone()), Some(vec![1, 32]));
}

#[test]
fn dtypes_fixture_covers_every_stored_type() {
    let store = checkpoint::open(fixture("safetensors", "dtypes.safetensors")).expect("opens");
    let get = |name: &str| store.get(name).unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(get("bf16").dtype, DType::BF16);
    assert_eq!(get("bf16").to_f32()[1], -3.140625);
    assert_eq!(get("f16").to_f32()[2], 65504.0);
    assert_eq!(get("i64").to_f64()[0], -(2f64.powi(40)));
    assert_eq!(get("bool").to_f64(), vec![1.0, 0.0, 1.0, 1.0, 0.0]);
    assert_eq!(get("scalar").shape, Vec::<usize>::new());
    // safetensors lays out by descending alignment, then name: i64 before f64, u8 before bool.
    let names: Vec<&str> = store.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["i64", "f64", "scalar", "i32", "bf16", "f16", "i8", "u8", "bool"]);
}

#[test]
fn bert_tiny_keeps_hf_names() {
    let store = checkpoint::open(fixture("safetensors", "bert_tiny.safetensors")).expect("opens");
    for name in [
        "embeddings.word_embeddings.weight",
        "encoder.layer.1.attention.self.query.weight",
        "encoder.layer.0.attention.output.LayerNorm.bias",
        "encoder.layer.1.intermediate.dense.weight",
        "pooler.dense.bias",
    ] {
        assert!(store.get(name).is_some(), "{name}");
    }
    assert_eq!(store.get("encoder.layer.0.intermediate.dense.weight").map(|t| t.shape.clone()), Some(vec![16, 8]));
}

#[test]
fn unknown_extension_is_sniffed_and_truncation_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(fixture("safetensors", "mlp.safetensors")).expect("fixture");
    let renamed = dir.path().join("weights.data");
    std::fs::write(&renamed, &bytes).expect("write");
    assert_eq!(checkpoint::open(&renamed).expect("sniffed").len(), 6);

    let truncated = dir.path().join("cut.safetensors");
    for cut in [4, 100, bytes.len() - 1] {
        std::fs::write(&truncated, &bytes[..cut]).expect("write");
        let err = checkpoint::open(&truncated).expect_err("truncated").to_string();
        assert!(err.contains("cut.safetensors"), "{err}");
    }
}
