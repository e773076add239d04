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
