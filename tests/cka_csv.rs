//! One CSV dialect for a CKA matrix: what `gmnscope cka --csv`, the CKA explorer's export and
//! the study write is read back, identically, by every reader (`cka::csv::parse` and the study
//! reader), with layer names holding commas, quotes and spaces, and with undefined entries.

use std::process::Command;

use gmnscope::checkpoint::writer::{OwnedTensor, write_safetensors};
use gmnscope::cka::csv::MatrixTable;
use gmnscope::rng::SplitMix64;

use crate::common::gmnscope_bin;

const NAMES_A: [&str; 3] = ["conv,1", "say \"hi\"", "constant layer"];
const NAMES_B: [&str; 2] = ["fc, \"head\"", "plain"];

fn activations(path: &std::path::Path, names: &[&str], rng: &mut SplitMix64) {
    let n = 16;
    let tensors: Vec<OwnedTensor> = names
        .iter()
        .map(|name| {
            // A constant layer has no CKA: its row is undefined (empty fields).
            let values: Vec<f32> =
                (0..n * 3).map(|_| if name.starts_with("constant") { 1.0 } else { rng.uniform(-1.0, 1.0) }).collect();
            OwnedTensor::f32(name.to_string(), vec![n, 3], &values)
        })
        .collect();
    write_safetensors(path, &tensors).unwrap();
}

#[test]
fn every_writer_is_read_back_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(4);
    let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    activations(&a, &NAMES_A, &mut rng);
    activations(&b, &NAMES_B, &mut rng);
    let cli_csv = dir.path().join("cli.csv");
    let out = Command::new(gmnscope_bin())
        .args(["cka", a.to_str().unwrap(), b.to_str().unwrap(), "--csv", cli_csv.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli_text = std::fs::read_to_string(&cli_csv).unwrap();
    let expected: MatrixTable = gmnscope::cka::csv::parse(&cli_text).unwrap();
    let (rows, cols, values) = &expected;
    assert_eq!(rows, &NAMES_A.map(String::from).to_vec());
    assert_eq!(cols, &NAMES_B.map(String::from).to_vec());
    assert!(values[2].iter().all(Option::is_none), "the constant layer's row is undefined: {values:?}");
    assert!(values[0].iter().all(Option::is_some));

    let mut written = vec![("cli", cli_text.clone())];
    written.push(("study", gmnscope::study::figures::matrix_csv(rows, cols, values)));
    #[cfg(feature = "gui")]
    {
        let result = gmnscope::ui::cka::data::CkaResult {
            matrix: gmnscope::cka::Matrix::from_rows(values),
            rows: rows.clone(),
            cols: cols.clone(),
            row_title: String::new(),
            col_title: String::new(),
            n: 16,
            kernel: "linear".into(),
            estimator: "biased".into(),
            batches: None,
        };
        written.push(("explorer", gmnscope::ui::cka::data::to_csv(&result)));
    }
    for (writer, text) in &written {
        assert_eq!(&gmnscope::cka::csv::parse(text).unwrap(), &expected, "{writer} -> cka::csv::parse");
        let file = dir.path().join(format!("{writer}.read.csv"));
        std::fs::write(&file, text).unwrap();
        let read = gmnscope::study::reader::read_matrix_csv(&file).unwrap();
        assert_eq!(&read, &expected, "{writer} -> the study reader");
    }
    // The writers agree byte for byte.
    for (writer, text) in &written {
        assert_eq!(text, &cli_text, "{writer} writes the CLI's dialect");
    }
}

/// A study activation set (`layer<i>` tensors, a `predictions` vector, names in the metadata) is
/// read by `gmnscope cka` and the app as its named layers: names with commas and quotes come back
/// whole, the class-id vector is not a layer, and the matrix is the one the study computes.
#[test]
fn study_activation_sets_are_read_as_their_named_layers() {
    use gmnscope::study::files::ActivationSet;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(7);
    let n = 24;
    let set = |rng: &mut SplitMix64, names: &[&str]| ActivationSet {
        names: names.iter().map(|s| s.to_string()).collect(),
        layers: (0..names.len()).map(|i| (3 + i, (0..n * (3 + i)).map(|_| rng.uniform(-1.0, 1.0)).collect())).collect(),
        predictions: (0..n).map(|i| (i % 10) as u8).collect(),
    };
    let (a, b) = (set(&mut rng, &NAMES_A), set(&mut rng, &NAMES_B));
    let (pa, pb) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    a.write(&pa).unwrap();
    b.write(&pb).unwrap();
    assert_eq!(ActivationSet::read(&pa).unwrap(), a, "the study reads its own file back");

    let la = gmnscope::activations::load(&pa).unwrap();
    assert_eq!(la.names, NAMES_A, "names from the metadata, commas and quotes intact");
    assert_eq!(la.skipped, ["predictions"]);
    let lb = gmnscope::activations::load(&pb).unwrap();
    let options = gmnscope::cka::Options::default();
    let ours = gmnscope::cka::cka_matrix(&la.views(), &lb.views(), &options).unwrap();
    let va = gmnscope::study::analysis::views(&a).unwrap();
    let vb = gmnscope::study::analysis::views(&b).unwrap();
    let study = gmnscope::cka::cka_matrix(&va, &vb, &options).unwrap();
    assert_eq!(ours, study, "the same matrix as the study view");

    let csv = dir.path().join("m.csv");
    let out = Command::new(gmnscope_bin())
        .args(["cka", pa.to_str().unwrap(), pb.to_str().unwrap(), "--csv", csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not predictions"), "a note says what was left out");
    let table = gmnscope::cka::csv::parse(&std::fs::read_to_string(&csv).unwrap()).unwrap();
    assert_eq!(table.0, NAMES_A);
    assert_eq!(table.1, NAMES_B);

    // Files of earlier versions joined the names with commas.
    let old = dir.path().join("old.safetensors");
    let mut meta = std::collections::HashMap::new();
    meta.insert("layers".to_string(), "fc1,fc2".to_string());
    let data: Vec<u8> = (0..n * 2).flat_map(|i| (i as f32).sin().to_le_bytes()).collect();
    let views = ["layer0", "layer1", "predictions"].map(|name| {
        let shape = if name == "predictions" { vec![n] } else { vec![n, 2] };
        let bytes = if name == "predictions" { &data[..n * 4] } else { &data[..] };
        (name, safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, bytes).unwrap())
    });
    std::fs::write(&old, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
    assert_eq!(gmnscope::activations::load(&old).unwrap().names, ["fc1", "fc2"]);
}
