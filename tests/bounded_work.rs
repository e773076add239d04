//! Issue 13, derived work and honest numbers: CKA of f64 activations at any scale f64 holds
//! (1e300, 1e-300, subnormal) with a constant test relative to the layer's scale; limits on the
//! sizes commands derive from a file's contents, refused with the number and the flag.

use std::path::Path;
use std::process::{Command, Output};

use gmnscope::checkpoint::DType;
use gmnscope::checkpoint::writer::{OwnedTensor, write_safetensors};
use gmnscope::cka::{Activations, Error, MinibatchCka, Options, Precision, cka, cka_matrix};
use gmnscope::rng::SplitMix64;

use crate::common::gmnscope_bin;

fn run(args: &[&str]) -> Output {
    Command::new(gmnscope_bin()).args(args).output().expect("run gmnscope")
}

/// Y related to X (a random linear map, tanh, noise): CKA values inside (0, 1).
fn related(rng: &mut SplitMix64, n: usize, p: usize, q: usize) -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..n * p).map(|_| rng.normal() as f64).collect();
    let w: Vec<f64> = (0..p * q).map(|_| rng.normal() as f64).collect();
    let y = (0..n * q)
        .map(|k| {
            let (i, j) = (k / q, k % q);
            let s: f64 = (0..p).map(|l| x[i * p + l] * w[l * q + j]).sum();
            (s / (p as f64).sqrt()).tanh() + 0.5 * rng.normal() as f64
        })
        .collect();
    (x, y)
}

/// Linear CKA (biased HSIC) by its definition, in f64.
fn naive_linear_cka(x: &[f64], y: &[f64], n: usize, p: usize, q: usize) -> f64 {
    let centred = |d: &[f64], w: usize| -> Vec<f64> {
        let mean: Vec<f64> = (0..w).map(|c| (0..n).map(|r| d[r * w + c]).sum::<f64>() / n as f64).collect();
        (0..n * w).map(|k| d[k] - mean[k % w]).collect()
    };
    let (cx, cy) = (centred(x, p), centred(y, q));
    let cross = |a: &[f64], pa: usize, b: &[f64], pb: usize| -> f64 {
        let mut total = 0.0;
        for i in 0..pa {
            for j in 0..pb {
                let v: f64 = (0..n).map(|r| a[r * pa + i] * b[r * pb + j]).sum();
                total += v * v;
            }
        }
        total
    };
    cross(&cx, p, &cy, q) / (cross(&cx, p, &cx, p).sqrt() * cross(&cy, q, &cy, q).sqrt())
}

fn scaled(d: &[f64], scale: f64, offset: f64) -> Vec<f64> {
    d.iter().map(|v| (v + offset) * scale).collect()
}

fn estimators() -> Vec<(&'static str, Options)> {
    vec![("linear", Options::linear()), ("debiased", Options::debiased_linear()), ("rbf", Options::rbf(0.5))]
}

#[test]
fn f64_cka_is_the_same_at_every_scale_f64_holds() {
    let mut rng = SplitMix64::new(13);
    for case in 0..12 {
        let n = 6 + (rng.next_u64() % 40) as usize;
        let (p, q) = (1 + (rng.next_u64() % 12) as usize, 1 + (rng.next_u64() % 12) as usize);
        let (x, y) = related(&mut rng, n, p, q);
        let want_linear = naive_linear_cka(&x, &y, n, p, q);
        for (name, options) in estimators() {
            let unit = cka(
                Activations::new(n, p, x.clone()).unwrap().view(),
                Activations::new(n, q, y.clone()).unwrap().view(),
                &options,
            )
            .unwrap();
            if name == "linear" {
                assert!((unit - want_linear).abs() <= 1e-12, "case {case}: {unit} vs definition {want_linear}");
            }
            // 1e300 and 1e-300 overflow/underflow f32; 1e-310 is subnormal in f64 itself.
            for (scale, offset) in [(1e300, 0.0), (1e300, 3.0), (1e-300, 0.0), (1e-300, -5.0), (1e-310, 0.0)] {
                let (xs, ys) = (scaled(&x, scale, offset), scaled(&y, scale * 7.0, -offset));
                let got = cka(
                    Activations::new(n, p, xs).unwrap().view(),
                    Activations::new(n, q, ys).unwrap().view(),
                    &options,
                )
                .unwrap_or_else(|e| panic!("case {case} {name} at {scale:e}: {e}"));
                let tol = if scale < 1e-307 { 1e-9 } else { 1e-11 };
                assert!((got - unit).abs() <= tol, "case {case} {name} at {scale:e} offset {offset}: {got} vs {unit}");
            }
        }
    }
}

#[test]
fn f64_minibatch_cka_sums_batches_at_extreme_scales() {
    let mut rng = SplitMix64::new(7);
    let (n, p, q) = (64, 5, 3);
    let (x, y) = related(&mut rng, n, p, q);
    let estimate = |scale: f64| {
        let (xs, ys) = (scaled(&x, scale, 0.0), scaled(&y, scale, 0.0));
        let mut acc = MinibatchCka::new(Options::linear());
        for start in (0..n).step_by(16) {
            let a = Activations::new(16, p, xs[start * p..(start + 16) * p].to_vec()).unwrap();
            let b = Activations::new(16, q, ys[start * q..(start + 16) * q].to_vec()).unwrap();
            acc.push(&[a.view()], &[b.view()]).unwrap();
        }
        acc.estimate().unwrap().get(0, 0).unwrap()
    };
    let unit = estimate(1.0);
    for scale in [1e300, 1e-300] {
        assert!((estimate(scale) - unit).abs() <= 1e-11, "{scale:e}: {} vs {unit}", estimate(scale));
    }
}

#[test]
fn constant_layers_are_judged_relative_to_their_own_scale() {
    let n = 9;
    let mut rng = SplitMix64::new(3);
    let (x, _) = related(&mut rng, n, 4, 1);
    let varying = Activations::new(n, 4, scaled(&x, 1e-300, 0.0)).unwrap();
    // A 1e-300 layer that varies is data, not a constant layer (f32 would make it all zeros).
    let self_cka = cka(varying.view(), varying.view(), &Options::linear()).unwrap();
    assert!((self_cka - 1.0).abs() < 1e-12, "{self_cka}");
    // A layer of one value (whose f64 mean is not exactly that value) is constant at any scale.
    for value in [0.1, 1e-300 / 3.0, 1e300 / 3.0] {
        let constant = Activations::new(n, 2, vec![value; n * 2]).unwrap();
        for (name, options) in estimators() {
            let err = cka(constant.view(), varying.view(), &options).unwrap_err();
            assert!(matches!(err, Error::Undefined { .. }), "{name} at {value:e}: {err}");
        }
    }
    // Precision::F32 requested for f64 inputs still computes in f64 (no rounding to f32).
    let options = Options { precision: Precision::F32, ..Options::linear() };
    let m = cka_matrix(&[varying.view()], &[varying.view()], &options).unwrap();
    assert!((m.get(0, 0).unwrap() - 1.0).abs() < 1e-12);
}

fn f64_tensor(name: &str, n: usize, p: usize, values: &[f64]) -> OwnedTensor {
    OwnedTensor {
        name: name.into(),
        dtype: DType::F64,
        shape: vec![n, p],
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn cka_json(a: &Path, b: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["cka", a.to_str().unwrap(), b.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cka --json prints one JSON document")
}

#[test]
fn cli_cka_of_f64_files_at_1e300_and_1e_300_matches_unit_scale() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(11);
    let n = 20;
    let (x, y) = related(&mut rng, n, 6, 4);
    let write = |tag: &str, scale: f64| {
        let (a, b) = (dir.path().join(format!("a_{tag}.safetensors")), dir.path().join(format!("b_{tag}.safetensors")));
        let tensors_a =
            [f64_tensor("x", n, 6, &scaled(&x, scale, 1.0)), f64_tensor("y", n, 4, &scaled(&y, scale, 0.0))];
        write_safetensors(&a, &tensors_a).unwrap();
        write_safetensors(&b, &[f64_tensor("y", n, 4, &scaled(&y, scale, 0.0))]).unwrap();
        (a, b)
    };
    let (ua, ub) = write("unit", 1.0);
    let unit = cka_json(&ua, &ub, &[]);
    let want = naive_linear_cka(&x, &y, n, 6, 4);
    assert!((unit["matrix"][0][0].as_f64().unwrap() - want).abs() < 1e-12, "{unit}");
    for (tag, scale) in [("big", 1e300), ("small", 1e-300)] {
        let (a, b) = write(tag, scale);
        let got = cka_json(&a, &b, &[]);
        for (i, j) in [(0, 0), (1, 0)] {
            let (g, u) = (got["matrix"][i][j].as_f64().unwrap(), unit["matrix"][i][j].as_f64().unwrap());
            assert!((g - u).abs() < 1e-12, "{tag} ({i}, {j}): {g} vs {u}");
        }
    }
}

#[test]
fn cli_cka_refuses_a_matrix_over_the_limit_naming_the_size_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    let layers: Vec<OwnedTensor> =
        (0..3).map(|l| OwnedTensor::f32(format!("l{l}"), vec![4, 1], &[0.0, 1.0, l as f32, 3.0])).collect();
    write_safetensors(&a, &layers).unwrap();
    write_safetensors(&b, &layers).unwrap();
    let csv = dir.path().join("m.csv");
    let out = run(&[
        "cka",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--max-cka-entries",
        "8",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("9 entries") && err.contains("limit of 8 entries"), "{err}");
    assert!(err.contains("--max-cka-entries 9"), "{err}");
    assert!(err.contains("a.safetensors") && err.contains("b.safetensors"), "{err}");
    assert!(!csv.exists(), "nothing written when refused");
    // Raised to the number it named, the same comparison runs.
    let ok = cka_json(&a, &b, &["--max-cka-entries", "9"]);
    assert_eq!(ok["matrix"].as_array().unwrap().len(), 3);
    // A heatmap that cannot be drawn is refused before the matrix is computed.
    let many: Vec<OwnedTensor> =
        (0..1001).map(|l| OwnedTensor::f32(format!("l{l}"), vec![2, 1], &[0.0, l as f32])).collect();
    write_safetensors(&a, &many).unwrap();
    let png = dir.path().join("m.png");
    let out = run(&["cka", a.to_str().unwrap(), a.to_str().unwrap(), "--png", png.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1001 x 1001 heatmap"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!png.exists());
}

#[test]
fn graph_export_removes_stale_temps_and_writes_both_files_or_neither() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.npz");
    // Temps of killed exports (a process id above Linux's largest): removed by the next export.
    std::fs::write(dir.path().join(".g.npz.4999999.0.tmp"), vec![0u8; 1 << 20]).unwrap();
    std::fs::write(dir.path().join(".g.json.tmp-4999999"), b"{").unwrap();
    let ok = run(&["graph", "demo:siren", "--out", out.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["g.json", "g.npz"]);
    // The archive cannot be moved into place (a directory is in the way): no sidecar appears and
    // no temp stays behind.
    let blocked = dir.path().join("h.npz");
    std::fs::create_dir_all(blocked.join("inside")).unwrap();
    let failed = run(&["graph", "demo:siren", "--out", blocked.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(2));
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["g.json", "g.npz", "h.npz"], "neither h.json nor a temp file");
}

#[cfg(feature = "burn")]
#[test]
fn train_device_auto_prints_no_probe_noise() {
    let (zoo, runs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fit = run(&["fit-inrs", "--demo", "--count", "8", "--steps", "2", "--out", zoo.path().to_str().unwrap()]);
    assert!(fit.status.success(), "{}", String::from_utf8_lossy(&fit.stderr));
    let run_dir = runs.path().join("run");
    let out = Command::new(gmnscope_bin())
        .args(["train", "--zoo", zoo.path().to_str().unwrap(), "--out", run_dir.to_str().unwrap()])
        .args(["--epochs", "1", "--hidden", "8", "--layers", "1", "--batch", "4", "--device", "auto"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
}

#[cfg(feature = "burn")]
#[test]
fn infer_and_train_refuse_gmn_jobs_over_the_limit_naming_the_flag() {
    let (zoo, runs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fit = run(&["fit-inrs", "--demo", "--count", "8", "--steps", "2", "--out", zoo.path().to_str().unwrap()]);
    assert!(fit.status.success(), "{}", String::from_utf8_lossy(&fit.stderr));
    let run_dir = runs.path().join("run");
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--zoo", zoo.path().to_str().unwrap(), "--out", run_dir.to_str().unwrap()];
        args.extend_from_slice(&["--epochs", "1", "--hidden", "8", "--layers", "1", "--batch", "4", "--device", "cpu"]);
        args.extend_from_slice(extra);
        run(&args)
    };
    let refused = train(&["--max-gmn-bytes", "1000"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("over the limit of 1,000 bytes") && err.contains("--max-gmn-bytes"), "{err}");
    assert!(err.contains(zoo.path().to_str().unwrap()), "{err}");
    assert!(!run_dir.join("latest").exists(), "refused before training");
    // The number it names is enough.
    let needed = err.split("--max-gmn-bytes ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap().to_string();
    let ok = train(&["--max-gmn-bytes", &needed]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let model = zoo.path().join("inr_000000.safetensors");
    let infer = |max: &str| {
        run(&["infer", "--gmn", run_dir.to_str().unwrap(), model.to_str().unwrap(), "--max-gmn-bytes", max])
    };
    let refused = infer("1000");
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("inr_000000.safetensors") && err.contains("--max-gmn-bytes"), "{err}");
    assert!(infer(&u64::MAX.to_string()).status.success());
}

#[test]
fn committed_regression_fixtures_at_1e300_and_1e_300_give_the_numpy_value() {
    let dir = crate::common::fixtures_dir().join("cka");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("scaled_expected.json")).unwrap()).unwrap();
    let want = expected["linear_xy"].as_f64().unwrap();
    let mut by_estimator: Vec<Vec<f64>> = vec![Vec::new(); estimators().len()];
    for tag in ["unit", "1e300", "1e-300"] {
        let file = gmnscope::activations::load(&dir.join(format!("scaled_{tag}.safetensors"))).unwrap();
        assert!(file.views().iter().all(|v| v.is_f64()), "{tag}: f64 tensors stay f64");
        let views = file.views();
        let linear = cka_matrix(&views, &views, &Options::linear()).unwrap();
        let got = linear.get(0, 1).unwrap();
        assert!((got - want).abs() < 1e-12, "{tag}: {got} vs NumPy {want}");
        for (k, (_, options)) in estimators().into_iter().enumerate() {
            by_estimator[k].push(cka(views[0], views[1], &options).unwrap());
        }
    }
    for values in by_estimator {
        assert!(values.iter().all(|v| (v - values[0]).abs() < 1e-12), "{values:?}");
    }
}

/// Bad training inputs are refused or flagged before any work, naming what is wrong: a zoo
/// network with a NaN weight, a zoo without validation networks, a run whose run.json no
/// longer matches its model (a short message, not burn's list of every tensor).
#[cfg(feature = "burn")]
#[test]
fn bad_zoos_and_edited_runs_get_short_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = tmp.path().join("zoo");
    let fit = run(&["fit-inrs", "--demo", "--count", "8", "--steps", "2", "--out", zoo.to_str().unwrap()]);
    assert!(fit.status.success(), "{}", String::from_utf8_lossy(&fit.stderr));
    let train = |zoo: &std::path::Path, out: &str| {
        let out = tmp.path().join(out);
        run(&[
            "train",
            "--zoo",
            zoo.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
            "--hidden",
            "8",
        ])
    };

    // A NaN in one network: refused at load, naming the network and the tensor.
    let copy_zoo = |name: &str| {
        let copy = tmp.path().join(name);
        std::fs::create_dir_all(&copy).unwrap();
        for entry in std::fs::read_dir(&zoo).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
        copy
    };
    let bad = copy_zoo("bad");
    let store = gmnscope::checkpoint::open(bad.join("inr_000003.safetensors")).unwrap();
    let tensors: Vec<gmnscope::checkpoint::writer::OwnedTensor> = store
        .tensors()
        .iter()
        .map(|t| {
            let mut v = t.to_f32();
            if t.name == "seq.1.weight" {
                v[5] = f32::NAN;
            }
            gmnscope::checkpoint::writer::OwnedTensor::f32(t.name.clone(), t.shape.clone(), &v)
        })
        .collect();
    drop(store);
    gmnscope::checkpoint::writer::write_safetensors(&bad.join("inr_000003.safetensors"), &tensors).unwrap();
    let out = train(&bad, "run-bad");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("inr_000003") && err.contains("seq.1.weight") && err.contains("not finite"), "{err}");

    // Every network in the training split: trains, with a warning about what is missing.
    let all_train = copy_zoo("all-train");
    let index_path = all_train.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for e in index["entries"].as_array_mut().unwrap() {
        e["split"] = "train".into();
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let out = train(&all_train, "run-all-train");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no validation networks"));

    // run.json edited to another width: one short line naming the model file.
    let good = train(&zoo, "run-good");
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let run_json = tmp.path().join("run-good").join("run.json");
    let mut info: serde_json::Value = serde_json::from_slice(&std::fs::read(&run_json).unwrap()).unwrap();
    info["gmn"]["hidden"] = 16.into();
    std::fs::write(&run_json, serde_json::to_vec(&info).unwrap()).unwrap();
    let gmn = tmp.path().join("run-good");
    let out = run(&["infer", "--gmn", gmn.to_str().unwrap(), "demo:siren"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model.bpk") && err.contains("does not match the model run.json describes"), "{err}");
    assert!(err.len() < 1_000, "short: {} chars", err.len());
}
