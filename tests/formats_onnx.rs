//! ONNX fixtures (onnx.helper / numpy_helper, external data via onnx.save_model) read through
//! `checkpoint::open`: initializers in file order, node graph, every payload encoding.

use gmnscope::checkpoint::{self, DType, Format};
use gmnscope::rng::SplitMix64;

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

// ---------------------------------------------------------------- ONNX as found in the wild (#12)

#[test]
fn constant_node_weights_are_tensors_and_shape_constants_are_not() {
    let store = checkpoint::open(fixture("onnx", "constant_cnn.onnx")).expect("opens");
    let names: Vec<&str> = store.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["conv_w", "conv_b", "fc_w", "fc_b"], "the int64 shape and the scalar are arguments");
    assert_eq!(store.num_parameters(), 36 + 4 + 64 * 3 + 3);
    assert_eq!(store.get("fc_b").map(|t| t.to_f32()), Some(vec![0.25, -0.5, 1.0]), "value_floats");
    // The Constant nodes stay in the op list; their weights are found through them.
    assert!(store.ops.iter().any(|o| o.op_type == "Constant" && o.outputs == ["bias_shape"]));
    let arch = gmnscope::arch::recover(&store);
    let claimed: Vec<&str> = arch.layers.iter().flat_map(|l| l.tensors.iter().map(String::as_str)).collect();
    assert!(claimed.contains(&"conv_w") && claimed.contains(&"fc_w"), "{claimed:?}");
}

#[test]
fn subgraph_weights_are_listed_with_their_paths() {
    let store = checkpoint::open(fixture("onnx", "if_branches.onnx")).expect("opens");
    let names: Vec<&str> = store.tensors().iter().map(|t| t.name.as_str()).collect();
    // Both branches name their weight `w`: the paths keep them apart.
    assert_eq!(names, ["shared_b", "If_0/else_branch/w", "If_0/then_branch/w"]);
    assert_eq!(store.num_parameters(), 3 + 12 + 12);
    let then_add = store.ops.iter().find(|o| o.name == "If_0/then_branch/then_add").expect("inlined");
    assert_eq!(then_add.inputs, ["If_0/then_branch/t", "shared_b"], "outer names keep their name");

    let store = checkpoint::open(fixture("onnx", "loop_body.onnx")).expect("opens");
    assert_eq!(store.get("recur/body/w_rec").map(|t| t.shape.clone()), Some(vec![5, 5]));
    let recur = store.ops.iter().find(|o| o.op_type == "Loop").expect("loop");
    assert_eq!(recur.inputs, ["steps", "cond", "h0", "recur/body/cond_out", "recur/body/h_out"]);
}

#[test]
fn identity_of_a_weight_reads_the_weight() {
    let store = checkpoint::open(fixture("onnx", "identity_tied.onnx")).expect("opens");
    assert_eq!(store.len(), 1, "a tied weight is one tensor");
    let reader = |name: &str| store.ops.iter().find(|o| o.name == name).map(|o| o.inputs.clone()).expect(name);
    assert_eq!(reader("transpose"), ["w"]);
    assert_eq!(reader("use_again"), ["y", "w"]);
}

#[test]
fn hostile_onnx_graphs_are_clear_errors() {
    for (name, expected) in [
        ("hostile_nested.onnx", "nest more than 64 levels"),
        ("hostile_huge_constant.onnx", "Constant 'huge'"),
        ("hostile_missing_name.onnx", "'ghost'"),
    ] {
        let err = checkpoint::open(fixture("onnx", name)).expect_err(name).to_string();
        assert!(err.contains(name) && err.contains(expected), "{name}: {err}");
    }
    let err = checkpoint::open(fixture("onnx", "hostile_missing_name.onnx")).expect_err("missing").to_string();
    assert!(err.contains("gate/then_branch") || err.contains("gate/else_branch"), "{err}");
}

/// A tiny protobuf writer for generated models.
mod pb {
    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    pub fn uint(number: u32, v: u64, out: &mut Vec<u8>) {
        varint(u64::from(number) << 3, out);
        varint(v, out);
    }
    pub fn bytes(number: u32, payload: &[u8], out: &mut Vec<u8>) {
        varint((u64::from(number) << 3) | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
}

/// What a random graph should open as: (tensor name, element count) in file order.
type Expected = Vec<(String, usize)>;

/// Writes a random GraphProto with initializers, Constant nodes of random dtypes and shapes, and
/// If/Loop nodes whose subgraphs recurse; records the weights the documented rule keeps.
fn random_graph(rng: &mut SplitMix64, prefix: &str, depth: usize, expected: &mut Expected) -> Vec<u8> {
    let mut graph = Vec::new();
    let dims = |rng: &mut SplitMix64| -> Vec<usize> { (0..rng.below(3)).map(|_| 1 + rng.below(4) as usize).collect() };
    let tensor = |name: &str, data_type: u64, dims: &[usize]| {
        let size = match data_type {
            1 | 6 => 4,
            7 | 11 => 8,
            _ => 2,
        };
        let mut t = Vec::new();
        for &d in dims {
            pb::uint(1, d as u64, &mut t);
        }
        pb::uint(2, data_type, &mut t);
        pb::bytes(8, name.as_bytes(), &mut t);
        pb::bytes(9, &vec![0u8; size * dims.iter().product::<usize>()], &mut t);
        t
    };
    let mut initializers = Vec::new();
    for i in 0..rng.below(3) {
        let (name, shape) = (format!("init{i}"), dims(rng));
        initializers.push(tensor(&name, [1, 7][rng.below(2) as usize], &shape));
        expected.push((format!("{prefix}{name}"), shape.iter().product()));
    }
    let mut nodes = Vec::new();
    for index in 0..1 + rng.below(4) as usize {
        let mut node = Vec::new();
        let output = format!("v{index}");
        if depth < 4 && rng.below(3) == 0 {
            let (op, attributes): (&str, &[&str]) =
                if rng.below(2) == 0 { ("If", &["else_branch", "then_branch"]) } else { ("Loop", &["body"]) };
            pb::bytes(2, output.as_bytes(), &mut node);
            pb::bytes(4, op.as_bytes(), &mut node);
            for attribute in attributes {
                let sub_prefix = format!("{prefix}{op}_{index}/{attribute}/");
                let sub = random_graph(rng, &sub_prefix, depth + 1, expected);
                let mut a = Vec::new();
                pb::bytes(1, attribute.as_bytes(), &mut a);
                pb::bytes(6, &sub, &mut a);
                pb::uint(20, 5, &mut a);
                pb::bytes(5, &a, &mut node);
            }
        } else {
            let data_type = [1, 10, 11, 16, 6, 7][rng.below(6) as usize];
            let shape = dims(rng);
            let elements: usize = shape.iter().product();
            pb::bytes(2, output.as_bytes(), &mut node);
            pb::bytes(4, b"Constant", &mut node);
            let mut a = Vec::new();
            pb::bytes(1, b"value", &mut a);
            pb::bytes(5, &tensor("", data_type, &shape), &mut a);
            pb::uint(20, 4, &mut a);
            pb::bytes(5, &a, &mut node);
            if [1, 10, 11, 16].contains(&data_type) && elements > 1 {
                expected.push((format!("{prefix}{output}"), elements));
            }
        }
        nodes.push(node);
    }
    for node in &nodes {
        pb::bytes(1, node, &mut graph);
    }
    for init in &initializers {
        pb::bytes(5, init, &mut graph);
    }
    graph
}

#[test]
fn random_nested_graphs_open_with_every_weight_at_its_path() {
    let mut rng = SplitMix64::new(12);
    for case in 0..300 {
        let mut expected = Vec::new();
        let graph = random_graph(&mut rng, "", 0, &mut expected);
        let mut model = Vec::new();
        pb::uint(1, 8, &mut model);
        pb::bytes(7, &graph, &mut model);
        let store = checkpoint::open_blob(std::path::Path::new("random.onnx"), checkpoint::Blob::from_vec(model))
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        let mut got: Expected = store.tensors().iter().map(|t| (t.name.clone(), t.num_elements())).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "case {case}");
        assert_eq!(store.num_parameters(), expected.iter().map(|(_, n)| n).sum::<usize>(), "case {case}");
    }
}

#[test]
fn real_paddleocr_classifier_with_constant_weights_opens_with_all_its_parameters() {
    // tests/fixtures/onnx/real/README.md: provenance, licence, and how the counts were obtained.
    let store = checkpoint::open(fixture("onnx", "real/ch_ppocr_mobile_v2.0_cls_infer.onnx")).expect("opens");
    assert_eq!((store.len(), store.num_parameters()), (213, 133_628));
    for t in store.tensors() {
        assert!(store.ops.iter().any(|o| o.op_type == "Constant" && o.outputs == [t.name.clone()]), "{}", t.name);
    }
    let arch = gmnscope::arch::recover(&store);
    let convs = arch.layers.iter().filter(|l| matches!(l.kind, gmnscope::arch::LayerKind::Conv { .. })).count();
    assert!(convs >= 20, "the classifier's convolutions are recovered from the op graph: {convs}");
}
