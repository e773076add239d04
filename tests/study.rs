//! The seed study end to end on a tiny config: results.json schema and value ranges, every CSV
//! and PNG it lists, and resume (a second run reuses every piece and reproduces results.json).

use std::path::Path;
use std::time::Instant;

use gmnscope::study::files::ActivationSet;
use gmnscope::study::{self, StudyConfig};

/// The smallest study that yields every family and a probe set CKA accepts (seconds on 2
/// cores); `inr_steps` trades INR quality for time.
pub fn tiny_study(name: &str, inr_steps: usize) -> String {
    format!(
        r#"
name = "{name}"
seeds = [0, 1]
probe = 0
[data]
count = 100
[inr]
steps = {inr_steps}
batch = 100
[gmn]
hidden = 8
layers = 2
epochs = 1
batch_size = 16
warmup_steps = 0
[mlp]
hidden = [16]
epochs = 1
[cnn]
channels = [4]
hidden = 8
epochs = 1
"#
    )
}

fn run(config: &StudyConfig, out: &Path) -> (serde_json::Value, f64, Vec<String>) {
    let mut lines = Vec::new();
    let started = Instant::now();
    study::run(config, out, &mut |l: &str| lines.push(l.to_string())).expect("the study runs");
    let seconds = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    (serde_json::from_str(&text).expect("valid JSON"), seconds, lines)
}

fn in_unit(v: &serde_json::Value, what: &str) {
    let x = v.as_f64().unwrap_or_else(|| panic!("{what}: {v} is not a number"));
    assert!(x.is_finite() && (-1e-9..=1.0 + 1e-9).contains(&x), "{what} = {x} outside [0, 1]");
}

#[test]
fn tiny_study_end_to_end_and_resume() {
    let config = StudyConfig::parse(&tiny_study("tiny", 20), Path::new("tiny.toml")).expect("config parses");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("study");
    let (results, first_seconds, _) = run(&config, &out);

    assert_eq!(results["format"], "gmnscope-study");
    let n = results["probe"]["samples"].as_u64().expect("probe size") as usize;
    assert!(n >= 4, "probe set of {n}");
    for family in ["gmn", "mlp", "cnn"] {
        for seed in ["0", "1"] {
            in_unit(&results["accuracy"][family][seed], &format!("accuracy {family} {seed}"));
        }
        let summary = &results["cka"]["families"][family];
        let layers = results["layers"][family].as_array().expect("layer names").len();
        assert_eq!(summary["per_layer"].as_array().expect("per-layer stats").len(), layers);
        in_unit(&summary["overall"]["mean"], &format!("{family} same-layer mean"));
        assert!(summary["overall"]["std"].as_f64().expect("std") >= 0.0);
        // Two seeds: one seed pair per layer.
        assert_eq!(summary["overall"]["count"].as_u64(), Some(layers as u64));
    }
    assert_eq!(results["layers"]["gmn"], serde_json::json!(["block1", "block2"]));
    assert_eq!(results["layers"]["mlp"], serde_json::json!(["fc1", "logits"]));
    assert_eq!(results["layers"]["cnn"], serde_json::json!(["conv1", "fc1", "logits"]));
    for pair in ["gmn-mlp", "gmn-cnn", "mlp-cnn", "gmn-gmn", "mlp-mlp", "cnn-cnn"] {
        let s = &results["cka"]["pairs"][pair];
        in_unit(&s["mean"], &format!("{pair} mean"));
        in_unit(&s["max"], &format!("{pair} max"));
        assert!(s["max"].as_f64() >= s["mean"].as_f64(), "{pair}: max below mean");
        for row in s["mean_matrix"].as_array().expect("matrix") {
            for v in row.as_array().expect("row") {
                in_unit(v, &format!("{pair} matrix entry"));
            }
        }
    }
    let a = &results["agreement"];
    let parts: u64 = ["gmn_only", "mlp_only", "cnn_only", "all", "none", "two_families"]
        .iter()
        .map(|k| a[*k].as_u64().expect("count"))
        .sum();
    assert_eq!(parts, n as u64, "the agreement categories partition the probe set");
    assert_eq!(a["gmn_only_samples"].as_array().map(Vec::len), a["gmn_only"].as_u64().map(|v| v as usize));

    // 3 within-family + 12 cross-family run pairs, plus 6 mean matrices.
    let matrices = results["files"]["matrices"].as_array().expect("matrix list");
    assert_eq!(matrices.len(), 3 + 12 + 6);
    for m in matrices {
        let text = std::fs::read_to_string(out.join(m.as_str().expect("path"))).expect("CSV exists");
        let mut lines = text.lines();
        let header = lines.next().expect("header");
        assert!(header.starts_with("layer,"));
        let cols = header.split(',').count();
        for line in lines {
            assert_eq!(line.split(',').count(), cols, "{m}: ragged row");
            for cell in line.split(',').skip(1) {
                let v: f64 = cell.parse().expect("number");
                assert!((-1e-9..=1.0 + 1e-9).contains(&v), "{m}: {v}");
            }
        }
    }
    let figures = results["files"]["figures"].as_array().expect("figure list");
    assert!(figures.iter().any(|f| f == "figures/seed-cka.png"));
    assert!(figures.iter().any(|f| f == "figures/gmn-only-correct.png"));
    for f in figures {
        let bytes = std::fs::read(out.join(f.as_str().expect("path"))).expect("PNG exists");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f} is a PNG");
    }
    // Nothing half-written is left behind.
    for entry in walk(&out) {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        assert!(!name.contains(".tmp-"), "temp file left: {}", entry.display());
    }

    // Resume: everything is reused, nothing retrained, same results.
    let before = std::fs::read(out.join("results.json")).expect("results");
    let (_, second_seconds, lines) = run(&config, &out);
    assert!(lines.iter().any(|l| l.contains("zoo: reusing")));
    assert_eq!(lines.iter().filter(|l| l.contains(": reusing") && l.contains("acts")).count(), 6);
    assert!(!lines.iter().any(|l| l.contains("training")), "retrained: {lines:?}");
    assert!(second_seconds < first_seconds / 2.0, "rerun took {second_seconds:.2} s vs {first_seconds:.2} s");
    assert_eq!(std::fs::read(out.join("results.json")).expect("results"), before, "results.json changed");

    // A different config in the same directory is refused rather than mixed in.
    let mut other = config.clone();
    other.mlp.epochs = 2;
    let err = study::run(&other, &out, &mut |_: &str| {}).expect_err("a different config is refused");
    assert!(err.to_string().contains("different config"), "{err}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn configs_parse_and_reject_mistakes() {
    let demo = StudyConfig::load("demo").expect("the embedded demo config parses");
    assert_eq!(demo.seeds.len(), 3);
    for name in ["mnist.toml", "fashion-mnist.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/studies").join(name);
        let c = StudyConfig::load(path.to_str().expect("utf-8 path")).expect("real-data config parses");
        assert_eq!(c.data.source, "idx");
        assert!(c.data.dir.as_ref().is_some_and(|d| d.starts_with(path.parent().expect("parent"))));
    }
    let typo = StudyConfig::parse("seeds = [0, 1]\n[mlp]\nepochz = 3\n", Path::new("typo.toml"));
    assert!(typo.expect_err("unknown key").contains("typo.toml"));
    assert!(StudyConfig::parse("seeds = [1, 1]", Path::new("x.toml")).is_err());
    assert!(StudyConfig::parse("[cka]\nkernel = \"cosine\"", Path::new("x.toml")).is_err());
    assert!(StudyConfig::parse("[data]\nsource = \"idx\"", Path::new("x.toml")).is_err());
    let rbf = StudyConfig::parse("[cka]\nkernel = \"rbf\"\nsigma_frac = 0.8", Path::new("x.toml")).expect("rbf");
    assert_eq!(rbf.cka_options().kernel, gmnscope::cka::Kernel::Rbf { sigma_frac: 0.8 });
}

#[test]
fn activation_sets_round_trip() {
    let set = ActivationSet {
        names: vec!["a".into(), "b".into()],
        layers: vec![(2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), (1, vec![-1.5, 0.0, 7.25])],
        predictions: vec![3, 0, 9],
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("acts.safetensors");
    set.write(&path).expect("write");
    assert_eq!(ActivationSet::read(&path).expect("read"), set);
    std::fs::write(&path, b"not safetensors").expect("overwrite");
    let err = ActivationSet::read(&path).expect_err("garbage is an error").to_string();
    assert!(err.contains("acts.safetensors"), "{err}");
}
