//! ONNX fixtures (onnx.helper / numpy_helper, external data via onnx.save_model) read through
//! `checkpoint::open`: initializers in file order, node graph, every payload encoding.

use gmnscope::checkpoint::{self, DType, Format};

use crate::formats_safetensors::{assert_matches_expected, fixture, fixtures_with_expectations};

#[test]
fn every_onnx_fixture_matches_its_expectations() {
    for path in fixtures_with_expectations("onnx") {
        let store = checkpoint::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.format, Format::Onnx);
        assert_matches_expected(&store, &path);
    }
}

#[test]
fn cnn_graph_connects_initializers_to_ops() {
    let store = checkpoint::open(fixture("onnx", "cnn.onnx")).expect("opens");
    let ops: Vec<&str> = store.ops.iter().map(|o| o.op_type.as_str()).collect();
    assert_eq!(ops, ["Conv", "BatchNormalization", "Relu", "GlobalAveragePool", "Flatten", "Gemm"]);
    let conv = &store.ops[0];
    assert_eq!(conv.inputs, ["x", "conv.weight", "conv.bias"]);
    assert_eq!(store.get("conv.weight").map(|t| t.shape.clone()), Some(vec![4, 1, 3, 3]));
    // Every initializer feeds some node.
    for t in store.tensors() {
        assert!(store.ops.iter().any(|o| o.inputs.contains(&t.name)), "{} unused", t.name);
    }
}

#[test]
fn encodings_fixture_decodes_every_payload_kind() {
    let store = checkpoint::open(fixture("onnx", "encodings.onnx")).expect("opens");
    let get = |name: &str| store.get(name).unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(get("floats").to_f32(), vec![1.5, -2.0, 0.25, 8.0]);
    assert_eq!(get("int8s").to_f64(), vec![-128.0, -1.0, 0.0, 127.0]);
    assert_eq!(get("uint16s").to_f64(), vec![0.0, 65535.0]);
    assert_eq!(get("halfs").to_f32(), vec![0.5, -1.75, 1024.0]);
    assert_eq!(get("int32s").to_f64(), vec![-(2f64.powi(31)), 2f64.powi(31) - 1.0]);
    assert_eq!(get("int64s").bytes()[..8], (-(1i64 << 62)).to_le_bytes());
    assert_eq!(get("uint64s").bytes()[..8], ((1u64 << 63) + 5).to_le_bytes());
    assert_eq!((get("uint32s").dtype, get("uint32s").to_f64()), (DType::U32, vec![4e9, 1.0]));
    assert_eq!(get("bf16_raw").to_f32(), vec![1.5, -3.0]);
    assert_eq!((get("empty").shape.clone(), get("empty").bytes().len()), (vec![0, 3], 0));
    assert_eq!((get("scalar").shape.clone(), get("scalar").to_f64()), (vec![], vec![42.0]));
}

#[test]
fn external_data_is_read_next_to_the_model() {
    let store = checkpoint::open(fixture("onnx", "external.onnx")).expect("opens");
    assert_eq!(store.len(), 4);
    assert_eq!(store.get("w").map(|t| t.shape.clone()), Some(vec![6, 4]));

    // Without its data file the model cannot be read, and the error says which file is missing.
    let dir = tempfile::tempdir().expect("tempdir");
    let alone = dir.path().join("external.onnx");
    std::fs::copy(fixture("onnx", "external.onnx"), &alone).expect("copy");
    let err = checkpoint::open(&alone).expect_err("missing data").to_string();
    assert!(err.contains("external.onnx.data"), "{err}");

    // A data file too short for the declared ranges.
    std::fs::write(dir.path().join("external.onnx.data"), [0u8; 40]).expect("write");
    let err = checkpoint::open(&alone).expect_err("short data").to_string();
    assert!(err.contains("outside"), "{err}");
}

#[test]
fn onnx_is_sniffed_and_corruption_is_an_error() {
    let bytes = std::fs::read(fixture("onnx", "mlp.onnx")).expect("fixture");
    assert!(checkpoint::onnx::looks_like_onnx(&bytes));
    assert!(!checkpoint::onnx::looks_like_onnx(&std::fs::read(fixture("numpy", "arrays.npz")).expect("npz")));
    let dir = tempfile::tempdir().expect("tempdir");
    let renamed = dir.path().join("model");
    std::fs::write(&renamed, &bytes).expect("write");
    assert_eq!(checkpoint::open(&renamed).expect("sniffed").format, Format::Onnx);

    let io = checkpoint::onnx::graph_io(&renamed, &bytes).expect("graph io");
    assert_eq!((io.name.as_str(), io.inputs.clone(), io.outputs.clone()), ("mlp", vec!["x".into()], vec!["y".into()]));

    // Every truncation is an error naming the file, except a cut exactly between two top-level
    // fields after the graph (the opset_import that follows it is optional on the wire).
    let full = checkpoint::open(fixture("onnx", "mlp.onnx")).expect("opens");
    let cut = dir.path().join("cut.onnx");
    for len in 1..bytes.len() {
        std::fs::write(&cut, &bytes[..len]).expect("write");
        match checkpoint::open(&cut) {
            Ok(store) => assert_eq!((store.len(), store.ops.len()), (full.len(), full.ops.len()), "cut at {len}"),
            Err(e) => assert!(e.to_string().contains("cut.onnx"), "{e}"),
        }
    }
}
