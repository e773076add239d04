//! CKA against the committed NumPy reference (tests/fixtures/cka/reference.py: Gram-matrix forms
//! straight from the HSIC definitions), for all four estimators, in every precision, plus the
//! `gmnscope cka` command on the same activation files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gmnscope::cka::linear::{LinearForm, plan};
use gmnscope::cka::{Activations, ActivationsView, Kernel, MinibatchCka, Options, Precision, RbfMedian, cka_matrix};

const TOLERANCE: f64 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cka").join(name)
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// Every tensor of a fixture file as an `n x (rest)` activation matrix.
fn activations(file: &str) -> HashMap<String, Activations> {
    let store = gmnscope::checkpoint::open(fixture(file)).expect("fixture opens");
    store
        .tensors()
        .iter()
        .map(|t| {
            let n = t.shape[0];
            let p = t.shape[1..].iter().product();
            (t.name.clone(), Activations::new(n, p, t.to_f32()).expect("shape"))
        })
        .collect()
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn assert_matrix_close(got: &gmnscope::cka::Matrix, want: &serde_json::Value, what: &str) {
    let rows = want.as_array().unwrap();
    assert_eq!(got.rows(), rows.len(), "{what}: rows");
    for (i, row) in rows.iter().enumerate() {
        let row = row.as_array().unwrap();
        assert_eq!(got.cols(), row.len(), "{what}: cols");
        for (j, w) in row.iter().enumerate() {
            let w = w.as_f64().unwrap();
            let g = got.get(i, j).unwrap_or_else(|| panic!("{what}: entry ({i}, {j}) undefined"));
            assert!(
                (g - w).abs() <= TOLERANCE,
                "{what}: entry ({i}, {j}) = {g}, reference {w}, diff {:e}",
                (g - w).abs()
            );
        }
    }
}

fn options(estimator: &str, sigma_frac: f64, precision: Precision) -> Options {
    let base = match estimator {
        "linear" => Options::linear(),
        "debiased" => Options::debiased_linear(),
        "rbf" => Options { rbf_median: RbfMedian::OffDiagonal, ..Options::rbf(sigma_frac) },
        "rbf_debiased" => Options {
            estimator: gmnscope::cka::Estimator::Unbiased,
            rbf_median: RbfMedian::OffDiagonal,
            ..Options::rbf(sigma_frac)
        },
        "rbf_with_diagonal" => Options::rbf(sigma_frac),
        "rbf_debiased_with_diagonal" => {
            Options { estimator: gmnscope::cka::Estimator::Unbiased, ..Options::rbf(sigma_frac) }
        }
        other => panic!("unknown estimator {other}"),
    };
    Options { precision, ..base }
}

#[test]
fn all_estimators_match_numpy_reference_in_every_precision() {
    let expected = expected();
    let acts = activations("reference.safetensors");
    let sigma_frac = expected["sigma_frac"].as_f64().unwrap();
    let mut checked = 0;
    for case in expected["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let a: Vec<ActivationsView<'_>> = names(&case["a"]).iter().map(|k| acts[k].view()).collect();
        let b: Vec<ActivationsView<'_>> = names(&case["b"]).iter().map(|k| acts[k].view()).collect();
        for estimator in
            ["linear", "debiased", "rbf", "rbf_debiased", "rbf_with_diagonal", "rbf_debiased_with_diagonal"]
        {
            for precision in [Precision::Auto, Precision::F32, Precision::F64] {
                let got = cka_matrix(&a, &b, &options(estimator, sigma_frac, precision)).expect("cka");
                assert_matrix_close(&got, &case[estimator], &format!("{name}/{estimator}/{precision:?}"));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6 * 6 * 3);
}

#[test]
fn wide_case_uses_the_gram_form_and_tall_cases_the_feature_form() {
    // The reference covers both code paths only if the planner picks them as intended.
    let widths = |p: usize| vec![p];
    assert_eq!(plan(40, &widths(150), &widths(90), false, Precision::Auto, 1 << 30).form, LinearForm::Gram);
    assert_eq!(plan(150, &widths(24), &widths(16), false, Precision::Auto, 1 << 30).form, LinearForm::Feature);
    // n = 50,000 with 4,096-wide layers: feature space (a 50k x 50k Gram would need 10 GB).
    assert_eq!(plan(50_000, &widths(4096), &widths(4096), false, Precision::Auto, 1 << 30).form, LinearForm::Feature);
}

#[test]
fn minibatch_matches_numpy_mean_of_hsics() {
    let expected = expected();
    let mb = &expected["minibatch"];
    let case = expected["cases"].as_array().unwrap().iter().find(|c| c["name"] == mb["case"]).unwrap();
    let acts = activations("reference.safetensors");
    let a: Vec<&Activations> = names(&case["a"]).iter().map(|k| &acts[k]).collect();
    let b: Vec<&Activations> = names(&case["b"]).iter().map(|k| &acts[k]).collect();
    let batch = mb["batch_size"].as_u64().unwrap() as usize;
    let n = a[0].n;
    let rbf = Kernel::Rbf { sigma_frac: expected["sigma_frac"].as_f64().unwrap() };
    for (kernel, median, key) in [
        (Kernel::Linear, RbfMedian::WithDiagonal, "linear"),
        (rbf, RbfMedian::OffDiagonal, "rbf"),
        (rbf, RbfMedian::WithDiagonal, "rbf_with_diagonal"),
    ] {
        let mut acc = MinibatchCka::new(Options { kernel, rbf_median: median, ..Options::default() });
        for start in (0..=n - batch).step_by(batch) {
            acc.push(&rows(&a, start, batch), &rows(&b, start, batch)).expect("push");
        }
        assert_eq!(acc.batches(), n / batch);
        assert_matrix_close(&acc.estimate().unwrap(), &mb[key], &format!("minibatch/{key}"));
    }
}

fn rows<'a>(layers: &[&'a Activations], start: usize, len: usize) -> Vec<ActivationsView<'a>> {
    layers.iter().map(|x| x.view().rows(start, start + len).unwrap()).collect()
}

// ---- the command line ----

fn gmnscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gmnscope")).args(args).output().expect("run gmnscope")
}

fn layers_case(expected: &serde_json::Value) -> &serde_json::Value {
    expected["cases"].as_array().unwrap().iter().find(|c| c["name"] == "layers").unwrap()
}

#[test]
fn cli_json_matches_reference_for_safetensors_and_npz() {
    let expected = expected();
    let case = layers_case(&expected);
    let mut formats = vec!["safetensors"];
    // The .npz reader is another module's; use it when it can open the fixture.
    if gmnscope::checkpoint::open(fixture("layers_a.npz")).is_ok() {
        formats.push("npz");
    }
    for ext in formats {
        let a = fixture(&format!("layers_a.{ext}"));
        let b = fixture(&format!("layers_b.{ext}"));
        for (flags, key) in [
            (vec![], "linear"),
            (vec!["--debiased"], "debiased"),
            (vec!["--kernel", "rbf", "--rbf-median", "off-diagonal"], "rbf"),
            (vec!["--kernel", "rbf"], "rbf_with_diagonal"),
        ] {
            let mut args = vec!["cka", a.to_str().unwrap(), b.to_str().unwrap(), "--json"];
            args.extend(flags);
            let out = gmnscope(&args);
            assert!(out.status.success(), "{ext} {key}: {}", String::from_utf8_lossy(&out.stderr));
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
            assert_eq!(json["rows"], serde_json::json!(["l1_relu", "l2_relu", "l3_tanh"]));
            assert_eq!(json["cols"], serde_json::json!(["m1_relu", "m2_linear"]));
            assert_eq!(json["n"], 160);
            assert_eq!(json["kernel"], if key.starts_with("rbf") { "rbf" } else { "linear" });
            let matrix: Vec<Vec<Option<f64>>> = serde_json::from_value(json["matrix"].clone()).unwrap();
            let m = gmnscope::cka::Matrix::from_rows(&matrix);
            assert_matrix_close(&m, &case[key], &format!("cli/{ext}/{key}"));
        }
    }
}

#[test]
fn cli_writes_csv_and_png_and_minibatch_matches_reference() {
    let expected = expected();
    let dir = tempfile::tempdir().unwrap();
    let (csv, png) = (dir.path().join("m.csv"), dir.path().join("m.png"));
    let a = fixture("layers_a.safetensors");
    let b = fixture("layers_b.safetensors");
    let args = [
        "cka",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--minibatch",
        "40",
        "--json",
        "--csv",
        csv.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
    ];
    let out = gmnscope(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let matrix: Vec<Vec<Option<f64>>> = serde_json::from_value(json["matrix"].clone()).unwrap();
    assert_matrix_close(&gmnscope::cka::Matrix::from_rows(&matrix), &expected["minibatch"]["linear"], "cli/minibatch");
    assert_eq!(json["estimator"], "minibatch-unbiased");

    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "layer,m1_relu,m2_linear");
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("l1_relu,0."), "{}", lines[1]);

    let bytes = std::fs::read(&png).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().expect("valid PNG");
    let info = reader.info();
    assert!(info.width >= 400 && info.height >= 300, "{}x{}", info.width, info.height);
    // No temp files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn cli_table_is_readable_without_json() {
    let a = fixture("layers_a.safetensors");
    let b = fixture("layers_b.safetensors");
    let out = gmnscope(&["cka", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("m2_linear") && text.contains("l3_tanh"), "{text}");
    let want = layers_case(&expected())["linear"][0][0].as_f64().unwrap();
    assert!(text.contains(&format!("{want:.4}")), "{text}");
}

#[test]
fn cli_errors_are_one_line_naming_the_file() {
    let a = fixture("layers_a.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let out = gmnscope(&["cka", a.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nope.safetensors"), "{err}");

    // Different numbers of examples between A (160) and B (a layer of 7 examples).
    let short = dir.path().join("short.safetensors");
    let tensor = gmnscope::checkpoint::writer::OwnedTensor::f32("x", vec![7, 2], &[0.5; 14]);
    gmnscope::checkpoint::writer::write_safetensors(&short, &[tensor]).unwrap();
    let out = gmnscope(&["cka", a.to_str().unwrap(), short.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("short.safetensors") && err.contains("160") && err.contains('7'), "{err}");

    // Layers of one file with different example counts.
    let reference = fixture("reference.safetensors");
    let out = gmnscope(&["cka", reference.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("reference.safetensors") && err.contains("examples"), "{err}");
}
