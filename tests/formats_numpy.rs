//! NumPy fixtures (np.save / np.savez / np.savez_compressed) and the `NpzWriter` round trip,
//! checked by our reader and, where python3 + numpy exist, by `numpy.load`.

use std::process::Command;

use gmnscope::checkpoint::{self, DType, Format};
use gmnscope::npz_writer::NpzWriter;

use crate::formats_safetensors::{assert_matches_expected, fixture, fixtures_with_expectations};

#[test]
fn every_numpy_fixture_matches_its_expectations() {
    for path in fixtures_with_expectations("numpy") {
        let store = checkpoint::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let is_npz = path.extension().is_some_and(|e| e == "npz");
        assert_eq!(store.format, if is_npz { Format::Npz } else { Format::Npy });
        assert_matches_expected(&store, &path);
    }
}

#[test]
fn fortran_and_big_endian_arrays_are_converted() {
    let f = checkpoint::open(fixture("numpy", "fortran.npy")).expect("opens");
    let t = &f.tensors()[0];
    assert_eq!(t.name, "fortran");
    assert_eq!(t.shape, vec![2, 3, 4]);
    // C order of arange(24) * 0.5 - 3.
    let want: Vec<f64> = (0..24).map(|i| i as f64 * 0.5 - 3.0).collect();
    assert_eq!(t.to_f64(), want);

    let b = checkpoint::open(fixture("numpy", "bigendian.npy")).expect("opens");
    let want: Vec<f32> = (0..12).map(|i| i as f32 - 5.5).collect();
    assert_eq!(b.tensors()[0].to_f32(), want);
}

#[test]
fn small_cnn_zoo_weights_are_one_row_per_network() {
    let store = checkpoint::open(fixture("numpy", "weights.npy")).expect("opens");
    let t = store.get("weights").expect("named after the file stem");
    assert_eq!((t.dtype, t.shape.clone()), (DType::F32, vec![2, 4970]));
}

#[test]
fn object_and_structured_arrays_are_refused_clearly() {
    let err = checkpoint::open(fixture("numpy", "object.npy")).expect_err("object").to_string();
    assert!(err.contains("object.npy") && err.contains("object arrays"), "{err}");
    let err = checkpoint::open(fixture("numpy", "structured.npy")).expect_err("structured").to_string();
    assert!(err.contains("structured"), "{err}");
}

#[test]
fn npz_is_recognised_by_content() {
    let blob = checkpoint::Blob::map_file(&fixture("numpy", "arrays.npz")).expect("maps");
    assert!(checkpoint::numpy::looks_like_npz(&blob));
    let dir = tempfile::tempdir().expect("tempdir");
    let renamed = dir.path().join("arrays.zip");
    std::fs::copy(fixture("numpy", "compressed.npz"), &renamed).expect("copy");
    assert_eq!(checkpoint::open(&renamed).expect("opens").format, Format::Npz);
}

/// Writes the same arrays with and without forced zip64 records.
fn write_sample(path: &std::path::Path, zip64: bool) {
    let mut npz = NpzWriter::create(path).expect("create").always_zip64(zip64);
    npz.add_array_f32("x", &[3, 2], &[0.5, -1.0, 2.0, 3.5, 1e-30, 7.0]).expect("x");
    npz.add_array_i64("edge_index", &[2, 3], &[0, 1, 2, 1, 2, -9_000_000_000]).expect("edges");
    npz.add_array_le_bytes("flags", DType::U8, &[4], &[0, 1, 254, 255]).expect("flags");
    npz.add_array_f32("empty", &[0, 5], &[]).expect("empty");
    let mut big = npz.begin_array("streamed", DType::F64, &[1000, 10]).expect("begin");
    for row in 0..1000 {
        let values: Vec<f64> = (0..10).map(|c| (row * 10 + c) as f64 / 7.0).collect();
        big.write_f64s(&values).expect("row");
    }
    big.finish().expect("finish streamed");
    npz.finish().expect("finish");
}

#[test]
fn npz_writer_round_trips_through_our_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    for zip64 in [false, true] {
        let path = dir.path().join(format!("graph_{zip64}.npz"));
        write_sample(&path, zip64);
        let store = checkpoint::open(&path).expect("reads back");
        let names: Vec<&str> = store.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["x", "edge_index", "flags", "empty", "streamed"]);
        assert_eq!(store.get("x").map(|t| t.to_f32()), Some(vec![0.5, -1.0, 2.0, 3.5, 1e-30, 7.0]));
        let edges = store.get("edge_index").expect("edges");
        assert_eq!((edges.dtype, edges.shape.clone()), (DType::I64, vec![2, 3]));
        assert_eq!(edges.to_f64()[5], -9e9);
        assert_eq!(store.get("empty").map(|t| t.shape.clone()), Some(vec![0, 5]));
        let streamed = store.get("streamed").expect("streamed").to_f64();
        assert_eq!(streamed.len(), 10_000);
        assert!(streamed.iter().enumerate().all(|(i, &v)| v == i as f64 / 7.0));
    }
}

#[test]
fn npz_writer_output_loads_in_numpy() {
    let python = Command::new("python3").args(["-c", "import numpy"]).output();
    match python {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!("skipping numpy.load check: numpy missing ({})", String::from_utf8_lossy(&out.stderr).trim());
            return;
        }
        Err(e) => {
            eprintln!("skipping numpy.load check: python3 not runnable ({e})");
            return;
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"
import json, sys, zipfile, numpy as np
path = sys.argv[1]
assert zipfile.ZipFile(path).testzip() is None, "CRC mismatch"
with np.load(path) as z:
    print(json.dumps({k: [z[k].dtype.str, list(z[k].shape), float(z[k].astype(np.float64).sum())] for k in z.files}))
"#;
    for zip64 in [false, true] {
        let path = dir.path().join(format!("np_{zip64}.npz"));
        write_sample(&path, zip64);
        let out = Command::new("python3").args(["-c", script]).arg(&path).output().expect("python3 runs");
        assert!(out.status.success(), "numpy.load failed: {}", String::from_utf8_lossy(&out.stderr));
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let streamed_sum: f64 = (0..10_000).map(|i| i as f64 / 7.0).sum();
        let want = serde_json::json!({
            "x": ["<f4", [3, 2], 0.5 - 1.0 + 2.0 + 3.5 + (1e-30f32 as f64) + 7.0],
            "edge_index": ["<i8", [2, 3], 6.0 - 9e9],
            "flags": ["|u1", [4], 510.0],
            "empty": ["<f4", [0, 5], 0.0],
        });
        for (key, value) in want.as_object().expect("object") {
            assert_eq!(&got[key], value, "{key} (zip64 {zip64})");
        }
        assert_eq!(got["streamed"][0], "<f8");
        assert_eq!(got["streamed"][1], serde_json::json!([1000, 10]));
        let sum = got["streamed"][2].as_f64().expect("sum");
        assert!((sum - streamed_sum).abs() < 1e-6 * streamed_sum, "{sum} vs {streamed_sum}");
    }
}
