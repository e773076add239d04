//! Comparing networks (issue 17): spectra against WeightWatcher, alignment recovering known
//! permutations of real architectures, diffs, and the refusals (other architectures, limits).

use std::path::{Path, PathBuf};
use std::process::Command;

use gmnscope::arch;
use gmnscope::checkpoint::writer::{OwnedTensor, write_safetensors};
use gmnscope::checkpoint::{self, DType, TensorStore};
use gmnscope::compare::align::{AlignError, AlignOptions, align};
use gmnscope::compare::diff::{Verdict, diff};
use gmnscope::compare::groups::groups;
use gmnscope::compare::spectra::{WeightMatrix, spectrum};
use gmnscope::rng::SplitMix64;

use crate::common::{fixtures_dir, gmnscope_bin};

#[test]
fn spectra_match_weightwatcher_and_numpy() {
    let dir = fixtures_dir().join("spectra");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("layers.expected.json")).unwrap()).unwrap();
    let store = checkpoint::open(dir.join("layers.safetensors")).unwrap();
    let arch = arch::recover(&store);
    let mut checked = 0;
    for layer in &arch.layers {
        let want = &expected["layers"][&layer.name];
        assert!(want.is_object(), "no reference for {}", layer.name);
        let w = WeightMatrix::of_layer(&layer.kind, &store).expect("a Linear or conv");
        let s = spectrum(&w, u64::MAX).unwrap();
        let sv: Vec<f64> = want["singular_values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(s.singular_values.len(), sv.len(), "{}", layer.name);
        for (got, want) in s.singular_values.iter().zip(&sv) {
            assert!((got - want).abs() <= 1e-6 * sv[0], "{}: {got} vs {want}", layer.name);
        }
        let sr = want["stable_rank"].as_f64().unwrap();
        assert!((s.stable_rank - sr).abs() <= 1e-9 * sr, "{}: stable rank {} vs {sr}", layer.name, s.stable_rank);
        let alpha = s.power_law.as_ref().map(|p| p.alpha);
        match want["alpha"].as_f64() {
            Some(ww) => {
                let got = alpha.unwrap_or_else(|| panic!("{}: no alpha, WeightWatcher has {ww}", layer.name));
                assert!((got - ww).abs() <= 0.05, "{}: alpha {got} vs WeightWatcher {ww}", layer.name);
            }
            None => assert_eq!(alpha, None, "{}", layer.name),
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// How a test net's units are grouped, written out by hand per architecture (independently of
/// `compare::groups`): `(tensor, axis, block)` for every axis of one group.
struct Net {
    tensors: Vec<OwnedTensor>,
    groups: Vec<(usize, Axes)>,
}

/// `(tensor, axis, block)` of every axis one group indexes.
type Axes = Vec<(String, usize, usize)>;

fn normal_tensor(rng: &mut SplitMix64, name: &str, shape: Vec<usize>, scale: f32) -> OwnedTensor {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() * scale).collect();
    OwnedTensor::f32(name, shape, &v)
}

fn bn(rng: &mut SplitMix64, name: &str, c: usize, out: &mut Vec<OwnedTensor>) {
    for (leaf, base) in [("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)] {
        let v: Vec<f32> = (0..c).map(|_| base + 0.3 * rng.normal().abs()).collect();
        out.push(OwnedTensor::f32(format!("{name}.{leaf}"), vec![c], &v));
    }
    out.push(OwnedTensor {
        name: format!("{name}.num_batches_tracked"),
        dtype: DType::I64,
        shape: vec![],
        bytes: 7i64.to_le_bytes().to_vec(),
    });
}

/// Axes of one group, owned.
fn axes(list: &[(&str, usize, usize)]) -> Axes {
    list.iter().map(|&(n, a, b)| (n.to_string(), a, b)).collect()
}

/// A BatchNorm's four per-channel vectors.
fn bn_axes(name: &str) -> Axes {
    ["weight", "bias", "running_mean", "running_var"].iter().map(|l| (format!("{name}.{l}"), 0, 1)).collect()
}

fn siren() -> Net {
    Net {
        tensors: gmnscope::demo::tensors("siren").unwrap(),
        groups: vec![
            (32, axes(&[("seq.0.weight", 0, 1), ("seq.0.bias", 0, 1), ("seq.1.weight", 1, 1)])),
            (32, axes(&[("seq.1.weight", 0, 1), ("seq.1.bias", 0, 1), ("seq.2.weight", 1, 1)])),
        ],
    }
}

fn mlp(seed: u64, hidden: [usize; 2]) -> Net {
    let mut rng = SplitMix64::new(seed);
    let [h1, h2] = hidden;
    let tensors = vec![
        normal_tensor(&mut rng, "fc1.weight", vec![h1, 10], 0.3),
        normal_tensor(&mut rng, "fc1.bias", vec![h1], 0.1),
        normal_tensor(&mut rng, "fc2.weight", vec![h2, h1], 0.2),
        normal_tensor(&mut rng, "fc2.bias", vec![h2], 0.1),
        normal_tensor(&mut rng, "fc3.weight", vec![3, h2], 0.2),
        normal_tensor(&mut rng, "fc3.bias", vec![3], 0.1),
    ];
    Net {
        tensors,
        groups: vec![
            (h1, axes(&[("fc1.weight", 0, 1), ("fc1.bias", 0, 1), ("fc2.weight", 1, 1)])),
            (h2, axes(&[("fc2.weight", 0, 1), ("fc2.bias", 0, 1), ("fc3.weight", 1, 1)])),
        ],
    }
}

/// conv(1->6) + BN, conv(6->8) + BN, then a Linear over the flattened 8 x 4 x 4 map.
fn cnn(seed: u64) -> Net {
    let mut rng = SplitMix64::new(seed);
    let mut t = vec![normal_tensor(&mut rng, "conv1.weight", vec![6, 1, 3, 3], 0.3)];
    t.push(normal_tensor(&mut rng, "conv1.bias", vec![6], 0.1));
    bn(&mut rng, "bn1", 6, &mut t);
    t.push(normal_tensor(&mut rng, "conv2.weight", vec![8, 6, 3, 3], 0.2));
    t.push(normal_tensor(&mut rng, "conv2.bias", vec![8], 0.1));
    bn(&mut rng, "bn2", 8, &mut t);
    t.push(normal_tensor(&mut rng, "fc.weight", vec![10, 128], 0.1));
    t.push(normal_tensor(&mut rng, "fc.bias", vec![10], 0.1));
    let mut g1 = axes(&[("conv1.weight", 0, 1), ("conv1.bias", 0, 1), ("conv2.weight", 1, 1)]);
    g1.extend(bn_axes("bn1"));
    let mut g2 = axes(&[("conv2.weight", 0, 1), ("conv2.bias", 0, 1), ("fc.weight", 1, 16)]);
    g2.extend(bn_axes("bn2"));
    Net { tensors: t, groups: vec![(6, g1), (8, g2)] }
}

/// The demo ResNet: stem conv + BN, a BasicBlock at 8 channels, a BasicBlock 8 -> 16 with a
/// `downsample` shortcut, `fc`. Residual streams are one group each.
fn resnet() -> Net {
    let mut stream1 = axes(&[
        ("conv1.weight", 0, 1),
        ("layer1.0.conv1.weight", 1, 1),
        ("layer1.0.conv2.weight", 0, 1),
        ("layer2.0.conv1.weight", 1, 1),
        ("layer2.0.downsample.0.weight", 1, 1),
    ]);
    stream1.extend(bn_axes("bn1"));
    stream1.extend(bn_axes("layer1.0.bn2"));
    let mut inner1 = axes(&[("layer1.0.conv1.weight", 0, 1), ("layer1.0.conv2.weight", 1, 1)]);
    inner1.extend(bn_axes("layer1.0.bn1"));
    let mut inner2 = axes(&[("layer2.0.conv1.weight", 0, 1), ("layer2.0.conv2.weight", 1, 1)]);
    inner2.extend(bn_axes("layer2.0.bn1"));
    let mut stream2 =
        axes(&[("layer2.0.conv2.weight", 0, 1), ("layer2.0.downsample.0.weight", 0, 1), ("fc.weight", 1, 1)]);
    stream2.extend(bn_axes("layer2.0.bn2"));
    stream2.extend(bn_axes("layer2.0.downsample.1"));
    Net {
        tensors: gmnscope::demo::tensors("resnet").unwrap(),
        groups: vec![(8, stream1), (8, inner1), (16, inner2), (16, stream2)],
    }
}

fn random_permutation(n: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i as u64 + 1) as usize);
    }
    p
}

/// `new[.., u * block + q, ..] = old[.., perm[u] * block + q, ..]` on f32 values.
fn permute(values: &[f32], shape: &[usize], axis: usize, block: usize, perm: &[usize]) -> Vec<f32> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let len = shape[axis];
    let mut out = Vec::with_capacity(values.len());
    for o in 0..outer {
        for i in 0..len {
            let src = perm[i / block] * block + i % block;
            out.extend_from_slice(&values[(o * len + src) * inner..(o * len + src + 1) * inner]);
        }
    }
    out
}

fn f32s(t: &OwnedTensor) -> Vec<f32> {
    t.bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// `tensors` (the net's, possibly scaled) with each of the net's groups permuted at random.
fn permuted_copy(tensors: &[OwnedTensor], net: &Net, rng: &mut SplitMix64) -> Vec<OwnedTensor> {
    let perms: Vec<Vec<usize>> = net.groups.iter().map(|(n, _)| random_permutation(*n, rng)).collect();
    tensors
        .iter()
        .map(|t| {
            if t.dtype != DType::F32 {
                return OwnedTensor {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    bytes: t.bytes.clone(),
                };
            }
            let mut v = f32s(t);
            for ((_, axes), perm) in net.groups.iter().zip(&perms) {
                for (name, axis, block) in axes {
                    if *name == t.name {
                        v = permute(&v, &t.shape, *axis, *block, perm);
                    }
                }
            }
            OwnedTensor::f32(t.name.clone(), t.shape.clone(), &v)
        })
        .collect()
}

fn scaled(tensors: &[OwnedTensor], scale: f32) -> Vec<OwnedTensor> {
    tensors
        .iter()
        .map(|t| match t.dtype {
            DType::F32 => {
                let v: Vec<f32> = f32s(t).iter().map(|x| x * scale).collect();
                OwnedTensor::f32(t.name.clone(), t.shape.clone(), &v)
            }
            _ => OwnedTensor { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone(), bytes: t.bytes.clone() },
        })
        .collect()
}

fn save(dir: &Path, name: &str, tensors: &[OwnedTensor]) -> (PathBuf, TensorStore) {
    let path = dir.join(name);
    write_safetensors(&path, tensors).unwrap();
    let store = checkpoint::open(&path).unwrap();
    (path, store)
}

/// Aligns a permuted (and scaled) copy of `net` back to it and checks every tensor is A's.
fn check_recovery(label: &str, net: &Net, scale: f32, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(seed);
    let a_tensors = scaled(&net.tensors, scale);
    let b_tensors = permuted_copy(&a_tensors, net, &mut rng);
    let (_, a) = save(dir.path(), "a.safetensors", &a_tensors);
    let (_, b) = save(dir.path(), "b.safetensors", &b_tensors);
    let (a_arch, b_arch) = (arch::recover(&a), arch::recover(&b));
    let spec = groups(&a_arch, &a);
    let mut sizes: Vec<usize> = spec.permuted().map(|g| spec.groups[g].size).collect();
    let mut want: Vec<usize> = net.groups.iter().map(|(n, _)| *n).collect();
    sizes.sort_unstable();
    want.sort_unstable();
    assert_eq!(sizes, want, "{label}: permutation groups {:?}", spec.groups);

    let al = align(&a, &a_arch, &b, &b_arch, &AlignOptions::default()).unwrap();
    assert!(al.converged, "{label}");
    let (_, out) = save(dir.path(), "out.safetensors", &al.aligned_tensors(&b, &b_arch));
    let names = |s: &TensorStore| s.tensors().iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&out), names(&b), "{label}: B's names in B's order");
    for ta in a.tensors() {
        let to = out.get(&ta.name).unwrap();
        let (va, vo) = (ta.to_f64(), to.to_f64());
        let max = va.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (x, y) in va.iter().zip(&vo) {
            assert!((x - y).abs() <= 1e-6 * max, "{label} scale {scale} seed {seed}: {} differs: {x} vs {y}", ta.name);
        }
    }
    assert!(al.distance_after <= 1e-6 * al.distance_before.max(f64::MIN_POSITIVE), "{label}");
    let d = diff(&a, &a_arch, &b, &b_arch, Some(&al));
    assert_eq!(d.verdict, Verdict::EquivalentUpToPermutation, "{label}");
    assert_eq!(diff(&a, &a_arch, &b, &b_arch, None).verdict, Verdict::Different, "{label}");
}

#[test]
fn a_permuted_copy_is_recovered_exactly() {
    check_recovery("siren", &siren(), 1.0, 1);
    check_recovery("mlp", &mlp(3, [24, 16]), 1.0, 2);
    check_recovery("cnn with batchnorm", &cnn(4), 1.0, 3);
    check_recovery("resnet with downsampling", &resnet(), 1.0, 4);
}

#[test]
fn recovery_holds_over_random_permutations_and_extreme_magnitudes() {
    let nets = [("siren", siren()), ("mlp", mlp(9, [20, 12])), ("cnn", cnn(10)), ("resnet", resnet())];
    for seed in 0..6u64 {
        for (i, (label, net)) in nets.iter().enumerate() {
            let scale = [1e-30f32, 1e-6, 1.0, 1e6, 1e30][(seed as usize + i) % 5];
            check_recovery(label, net, scale, 100 + seed * 7 + i as u64);
        }
    }
}

#[test]
fn independent_networks_get_closer_and_report_per_layer_distances() {
    let dir = tempfile::tempdir().unwrap();
    let (_, a) = save(dir.path(), "a.safetensors", &mlp(21, [32, 32]).tensors);
    let (_, b) = save(dir.path(), "b.safetensors", &mlp(22, [32, 32]).tensors);
    let (a_arch, b_arch) = (arch::recover(&a), arch::recover(&b));
    let al = align(&a, &a_arch, &b, &b_arch, &AlignOptions::default()).unwrap();
    assert!(al.distance_after < al.distance_before, "{} -> {}", al.distance_before, al.distance_after);
    let names: Vec<&str> = al.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["fc1", "fc2", "fc3"]);
    // The distances are those of the layers: their squares add up to the total.
    let sum: f64 = al.layers.iter().map(|l| l.after * l.after).sum();
    assert!((sum.sqrt() - al.distance_after).abs() <= 1e-12 * al.distance_after);
    // Aligning A to itself moves nothing.
    let same = align(&a, &a_arch, &a, &a_arch, &AlignOptions::default()).unwrap();
    assert!(same.groups.iter().all(|g| g.moved == 0));
    assert_eq!(diff(&a, &a_arch, &a, &a_arch, Some(&same)).verdict, Verdict::Equal);
    assert_eq!(diff(&a, &a_arch, &b, &b_arch, Some(&al)).verdict, Verdict::Different);
}

#[test]
fn different_architectures_name_the_first_layer_that_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, a) = save(dir.path(), "a.safetensors", &mlp(1, [24, 16]).tensors);
    let (_, b) = save(dir.path(), "b.safetensors", &mlp(1, [24, 12]).tensors);
    let err = align(&a, &arch::recover(&a), &b, &arch::recover(&b), &AlignOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AlignError::Mismatch(_)), "{msg}");
    assert!(msg.contains("`fc2`") && msg.contains("a.safetensors") && msg.contains("b.safetensors"), "{msg}");
}

#[test]
fn groups_too_large_for_a_dense_assignment_are_refused_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_, a) = save(dir.path(), "a.safetensors", &siren().tensors);
    let options = AlignOptions { max_assignment_entries: 1000, ..AlignOptions::default() };
    let arch = arch::recover(&a);
    let msg = align(&a, &arch, &a, &arch, &options).unwrap_err().to_string();
    assert!(msg.contains("1,024 entries") && msg.contains("--max-assignment-entries"), "{msg}");
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(gmnscope_bin()).args(args).output().expect("run gmnscope")
}

#[test]
fn align_and_diff_commands_report_equivalence_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let net = resnet();
    let (a, _) = save(dir.path(), "a.safetensors", &net.tensors);
    let b_tensors = permuted_copy(&net.tensors, &net, &mut SplitMix64::new(5));
    let (b, _) = save(dir.path(), "b.safetensors", &b_tensors);
    let out = dir.path().join("aligned.safetensors");
    let (a, b, o) = (a.to_str().unwrap(), b.to_str().unwrap(), out.to_str().unwrap());

    let r = run(&["align", a, b, "--out", o, "--json"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(v["distance_before"].as_f64().unwrap() > 0.0);
    assert!(v["distance_after"].as_f64().unwrap() <= 1e-6);
    assert_eq!(v["groups"].as_array().unwrap().iter().filter(|g| g["fixed"].is_null()).count(), 4);

    let r = run(&["diff", a, o, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["verdict"], "equal", "the aligned file equals A");

    let r = run(&["diff", a, b, "--align", "--json"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["verdict"], "equivalent-up-to-permutation");
    assert_eq!(v["tolerance"].as_f64(), Some(1e-6));
    let text = String::from_utf8_lossy(&run(&["diff", a, b, "--align"]).stdout).to_string();
    assert!(text.contains("equivalent up to permutation"), "{text}");

    let r = run(&["diff", a, b, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["verdict"], "different");
    let layer = v["layers"].as_array().unwrap().iter().find(|l| l["name"] == "layer1.0.conv1").unwrap();
    assert!(layer["relative_change"].as_f64().unwrap() > 0.1 && layer["cosine"].as_f64().unwrap() < 0.99);
}

#[test]
fn diff_lists_layers_only_one_file_has_and_align_refuses_other_architectures() {
    let dir = tempfile::tempdir().unwrap();
    let mut short = mlp(1, [24, 16]).tensors;
    short.truncate(4);
    let extra = {
        let mut t = mlp(1, [24, 16]).tensors;
        t.truncate(4);
        t.push(normal_tensor(&mut SplitMix64::new(3), "head.weight", vec![5, 16], 0.1));
        t
    };
    let (a, _) = save(dir.path(), "a.safetensors", &mlp(1, [24, 16]).tensors);
    let (b, _) = save(dir.path(), "b.safetensors", &extra);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let r = run(&["diff", a, b, "--json"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["only_in_a"], serde_json::json!(["fc3"]));
    assert_eq!(v["only_in_b"], serde_json::json!(["head"]));
    assert_eq!(v["layers"][0]["relative_change"].as_f64(), Some(0.0));
    let r = run(&["diff", a, b, "--align"]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("different architectures") && err.contains("layer 2"), "{err}");
}

#[test]
fn inspect_spectra_reports_every_linear_layer() {
    let file = fixtures_dir().join("spectra/layers.safetensors");
    let r = run(&["inspect", file.to_str().unwrap(), "--json", "--spectra"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    for l in v["layers"].as_array().unwrap() {
        let s = &l["spectrum"];
        assert!(s["stable_rank"].as_f64().unwrap() >= 1.0, "{l}");
        assert!(s["singular_values"].as_array().unwrap().len() >= 12);
        assert!(s["power_law"]["alpha"].as_f64().unwrap() > 1.0, "{l}");
    }
    // Over the work limit a layer is skipped with the limit and its flag, the rest still reported.
    let r = run(&["inspect", file.to_str().unwrap(), "--json", "--spectra", "--max-spectrum-work", "100000"]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let skipped: Vec<&str> =
        v["layers"].as_array().unwrap().iter().filter_map(|l| l["spectrum"]["skipped"].as_str()).collect();
    assert!(!skipped.is_empty() && skipped.iter().all(|s| s.contains("--max-spectrum-work")), "{skipped:?}");
    // Without --spectra inspect reads no weights and reports none.
    let v: serde_json::Value =
        serde_json::from_slice(&run(&["inspect", file.to_str().unwrap(), "--json"]).stdout).unwrap();
    assert!(v["layers"][0].get("spectrum").is_none());
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = mlp(1, [24, 16]).tensors;
    let mut v = f32s(&bad[2]);
    v[5] = f32::NAN;
    bad[2] = OwnedTensor::f32("fc2.weight", vec![16, 24], &v);
    let (_, a) = save(dir.path(), "a.safetensors", &mlp(1, [24, 16]).tensors);
    let (_, b) = save(dir.path(), "b.safetensors", &bad);
    let err = align(&a, &arch::recover(&a), &b, &arch::recover(&b), &AlignOptions::default()).unwrap_err();
    assert!(matches!(err, AlignError::NonFinite(ref t) if t == "fc2.weight"), "{err}");
    // The diff still reports it, as a layer that is not equal.
    let d = diff(&a, &arch::recover(&a), &b, &arch::recover(&b), None);
    assert!(!d.layers[1].equal && d.verdict == Verdict::Different);
}
