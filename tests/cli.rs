//! The CLI as a user runs it: the real binary, real fixture files, exit codes and outputs.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{fixtures_dir, gmnscope_bin};

fn run(args: &[&str]) -> Output {
    Command::new(gmnscope_bin()).args(args).output().expect("run gmnscope")
}

fn fixture(rel: &str) -> String {
    fixtures_dir().join(rel).to_string_lossy().into_owned()
}

fn inspect_json(file: &str) -> serde_json::Value {
    let out = run(&["inspect", file, "--json"]);
    assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("inspect --json prints one JSON object")
}

#[test]
fn inspect_json_reports_the_documented_keys_for_every_format() {
    // The same SIREN 2-32-32-1 written by torch (zip and legacy), safetensors and ONNX.
    for (file, format) in [
        ("pytorch/mlp_zip.pt", "pytorch-zip"),
        ("pytorch/mlp_legacy.pt", "pytorch-legacy"),
        ("safetensors/mlp.safetensors", "safetensors"),
    ] {
        let v = inspect_json(&fixture(file));
        assert_eq!(v["format"], format, "{file}");
        assert_eq!(v["parameters"], 1185, "{file}");
        assert_eq!(v["tensors"], 6, "{file}");
        let layers = v["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3, "{file}");
        assert!(layers.iter().all(|l| l["kind"] == "linear" && l["name"].is_string()), "{file}: {layers:?}");
        assert_eq!(v["unrecognized"].as_array().unwrap().len(), 0, "{file}");
        assert_eq!(v["graph"]["nodes"], 70, "{file}");
        assert_eq!(v["graph"]["edges"], 1185, "{file}");
    }
    for file in ["onnx/mlp.onnx", "onnx/cnn.onnx", "numpy/arrays.npz", "numpy/weights.npy", "pytorch/cnn_bn.pt"] {
        let v = inspect_json(&fixture(file));
        for key in ["format", "tensors", "parameters", "layers", "unrecognized", "graph"] {
            assert!(v.get(key).is_some(), "{file}: missing key {key}");
        }
    }
}

#[test]
fn inspect_reports_unrecognized_tensors_instead_of_failing() {
    // A 2 x 4970 matrix (the Small CNN Zoo's weights.npy) is no layer: it is listed, not fatal.
    let v = inspect_json(&fixture("numpy/weights.npy"));
    assert_eq!(v["unrecognized"], serde_json::json!(["weights"]));
}

#[test]
fn inspect_reports_coverage_and_every_unplaced_tensor_with_its_reason() {
    // The YOLO-shaped DAG: every weight encoded; the split sizes and the stride are not weights.
    let v = inspect_json(&fixture("graphs/c2f_block.onnx"));
    assert_eq!(v["coverage"]["percent"], 100.0);
    assert_eq!(v["coverage"]["missing"], 0);
    assert_eq!(v["coverage"]["non_weights"], 3);
    let unplaced = v["unplaced"].as_array().unwrap();
    let names: Vec<&str> = unplaced.iter().map(|u| u["tensor"].as_str().unwrap()).collect();
    assert_eq!(names, ["onnx::Split_sizes", "model.4.stride"]);
    assert!(unplaced.iter().all(|u| u["non_weight"] == true && u["reason"].as_str().is_some_and(|r| !r.is_empty())));
    // A bare weight matrix: no layer, 0% encoded, listed with the reason.
    let v = inspect_json(&fixture("numpy/weights.npy"));
    assert_eq!(v["coverage"]["percent"], 0.0);
    assert_eq!(v["coverage"]["missing"], 2 * 4970);
    assert!(v["unplaced"][0]["reason"].as_str().unwrap().contains("no layer rule"));
    let out = run(&["inspect", &fixture("numpy/weights.npy")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("coverage    0.0% of the weights"), "{text}");
    assert!(text.contains("not in the graph (1):"), "{text}");
}

#[test]
fn inspect_text_names_layers_and_graph_size() {
    let out = run(&["inspect", "demo:siren"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("70 nodes, 1,185 edges"), "{text}");
    assert!(text.contains("seq.1"), "{text}");
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    let bytes = std::fs::read(fixture("safetensors/mlp.safetensors")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.pt");
    std::fs::write(&garbage, b"definitely not a checkpoint").unwrap();
    let missing = dir.path().join("missing.onnx");
    let cases = [
        (fixture("pytorch/malicious_os_system.pt"), "system"),
        (truncated.to_string_lossy().into_owned(), "truncated.safetensors"),
        (garbage.to_string_lossy().into_owned(), "garbage.pt"),
        (missing.to_string_lossy().into_owned(), "missing.onnx"),
    ];
    for (file, needle) in cases {
        let out = run(&["inspect", &file]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{file}: {stderr}");
        assert!(stderr.contains(&file) && stderr.contains(needle), "{file}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Reads an array of the exported .npz back through gmnscope's own npz reader.
fn npz_array(store: &gmnscope::checkpoint::TensorStore, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = store.get(name).unwrap_or_else(|| panic!("no array {name}"));
    (t.shape.clone(), t.to_f64())
}

#[test]
fn graph_export_round_trips_to_the_original_weights() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("block.npz");
    let source = fixture("pytorch/resnet_block.pt");
    let out = run(&["graph", &source, "--out", out_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let exported = gmnscope::checkpoint::open(&out_path).unwrap();
    let (nf_shape, _) = npz_array(&exported, "node_features");
    let (ei_shape, ei) = npz_array(&exported, "edge_index");
    let (ef_shape, ef) = npz_array(&exported, "edge_features");
    assert_eq!(nf_shape, vec![13, 3]);
    assert_eq!(ei_shape, vec![2, 70]);
    assert_eq!(ef_shape, vec![70, 6]);
    assert!(ei.iter().all(|&v| (0.0..13.0).contains(&v)));

    // Exact inversion: the exported edge weights rebuild every parameter tensor bit for bit.
    let store = gmnscope::checkpoint::open(&source).unwrap();
    let graph = gmnscope::graph::build(&gmnscope::arch::recover(&store), &store).unwrap();
    let features: Vec<[f32; 6]> = ef.chunks_exact(6).map(|c| std::array::from_fn(|k| c[k] as f32)).collect();
    let weights = graph.to_weights_from_features(&features).unwrap();
    assert_eq!(weights.len(), 9, "conv1, bn1 (gamma, beta), conv2, bn2 (2), shortcut conv, shortcut bn (2)");
    for (name, shape, values) in &weights {
        let original = store.get(name).unwrap();
        assert_eq!(shape, &original.shape, "{name}");
        assert_eq!(values, &original.to_f32(), "{name}");
    }

    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_path.with_extension("json")).unwrap()).unwrap();
    assert_eq!(sidecar["edges"], 70);
    assert!(sidecar["layers"].as_array().unwrap().len() >= 6);
}

#[test]
fn graph_export_is_readable_by_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("siren.npz");
    assert!(run(&["graph", "demo:siren", "--out", out_path.to_str().unwrap()]).status.success());
    let script = "import sys, numpy as np\nz = np.load(sys.argv[1])\nprint(z['node_features'].shape, z['edge_index'].shape, z['edge_features'].shape, z['edge_index'].dtype, z['edge_features'].dtype)";
    match Command::new("python3").args(["-c", script]).arg(&out_path).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert_eq!(text.trim(), "(70, 3) (2, 1185) (1185, 6) int64 float32");
        }
        _ => eprintln!("skipped: python3 with numpy is not available"),
    }
    let _ = Path::new(&out_path);
}

/// `gmnscope inspect ... | head -0`: a reader that closes the pipe ends the command quietly
/// (SIGPIPE, as `cat`), without a panic message and backtrace on the terminal.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    use std::process::Stdio;
    let mut child = Command::new(gmnscope_bin())
        .args(["inspect", "demo:transformer"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gmnscope");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
