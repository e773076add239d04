//! Opening a ~90 MB, ~22M-parameter BERT-sized safetensors file and building its (implicit)
//! parameter graph, against the peer: Python `safetensors.numpy.load_file` of the same file.
//!
//! The file is generated here (random weights, the real tensor names and shapes of a 6-layer,
//! 384-wide BERT encoder with a 30,522-token vocabulary: 22.7M parameters, the size of
//! all-MiniLM-L6-v2) and deleted afterwards; it is never committed.
//!
//! Run: `cargo bench --bench open_bert`. Prints the ratio to the peer and both processes' peak
//! memory (the goal: at most 1 s and 1.5x the file size).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use gmnscope::checkpoint::writer::{OwnedTensor, write_safetensors};
use gmnscope::rng::SplitMix64;

const VOCAB: usize = 30_522;
const MAX_POS: usize = 512;
const HIDDEN: usize = 384;
const FFN: usize = 1536;
const LAYERS: usize = 6;

fn random(rng: &mut SplitMix64, shape: &[usize]) -> Vec<f32> {
    let n = shape.iter().product();
    (0..n).map(|_| 0.02 * rng.normal()).collect()
}

fn bert_tensors() -> Vec<OwnedTensor> {
    let mut rng = SplitMix64::new(42);
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, rng: &mut SplitMix64| {
        let values = random(rng, &shape);
        out.push(OwnedTensor::f32(name, shape, &values));
    };
    push("embeddings.word_embeddings.weight".into(), vec![VOCAB, HIDDEN], &mut rng);
    push("embeddings.position_embeddings.weight".into(), vec![MAX_POS, HIDDEN], &mut rng);
    push("embeddings.token_type_embeddings.weight".into(), vec![2, HIDDEN], &mut rng);
    push("embeddings.LayerNorm.weight".into(), vec![HIDDEN], &mut rng);
    push("embeddings.LayerNorm.bias".into(), vec![HIDDEN], &mut rng);
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        for proj in ["query", "key", "value"] {
            push(format!("{p}.attention.self.{proj}.weight"), vec![HIDDEN, HIDDEN], &mut rng);
            push(format!("{p}.attention.self.{proj}.bias"), vec![HIDDEN], &mut rng);
        }
        push(format!("{p}.attention.output.dense.weight"), vec![HIDDEN, HIDDEN], &mut rng);
        push(format!("{p}.attention.output.dense.bias"), vec![HIDDEN], &mut rng);
        push(format!("{p}.attention.output.LayerNorm.weight"), vec![HIDDEN], &mut rng);
        push(format!("{p}.attention.output.LayerNorm.bias"), vec![HIDDEN], &mut rng);
        push(format!("{p}.intermediate.dense.weight"), vec![FFN, HIDDEN], &mut rng);
        push(format!("{p}.intermediate.dense.bias"), vec![FFN], &mut rng);
        push(format!("{p}.output.dense.weight"), vec![HIDDEN, FFN], &mut rng);
        push(format!("{p}.output.dense.bias"), vec![HIDDEN], &mut rng);
        push(format!("{p}.output.LayerNorm.weight"), vec![HIDDEN], &mut rng);
        push(format!("{p}.output.LayerNorm.bias"), vec![HIDDEN], &mut rng);
    }
    push("pooler.dense.weight".into(), vec![HIDDEN, HIDDEN], &mut rng);
    push("pooler.dense.bias".into(), vec![HIDDEN], &mut rng);
    out
}

/// Open + recover + implicit graph: what `gmnscope inspect` and the app's overview need.
fn open_and_build(path: &Path) -> usize {
    let store = gmnscope::checkpoint::open(path).expect("open");
    let arch = gmnscope::arch::recover(&store);
    let graph = gmnscope::graph::build(&arch, &store).expect("graph");
    graph.num_edges()
}

/// Open and read every value (what the peer does): the sum forces every page in.
fn open_and_read_all(path: &Path) -> f64 {
    let store = gmnscope::checkpoint::open(path).expect("open");
    store.tensors().iter().map(|t| t.to_f32().iter().map(|&v| v as f64).sum::<f64>()).sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn python_peer_seconds(path: &Path, runs: usize) -> Option<Vec<f64>> {
    let script = "import sys,time\nfrom safetensors.numpy import load_file\nts=[]\nfor _ in range(int(sys.argv[2])):\n    t=time.perf_counter(); d=load_file(sys.argv[1]); ts.append(time.perf_counter()-t); del d\nprint(' '.join(map(str,ts)))";
    let out = Command::new("python3").args(["-c", script]).arg(path).arg(runs.to_string()).output().ok()?;
    if !out.status.success() {
        eprintln!("peer unavailable: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|s| s.parse().ok()).collect())
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bert_l6_h384.safetensors");
    let tensors = bert_tensors();
    let params: usize = tensors.iter().map(|t| t.bytes.len() / 4).sum();
    write_safetensors(&path, &tensors).expect("write");
    drop(tensors);
    let file_size = std::fs::metadata(&path).unwrap().len();
    println!("file: {:.1} MB, {:.1}M parameters", file_size as f64 / 1e6, params as f64 / 1e6);

    let mut group = c.benchmark_group("open_bert");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    group.bench_function("open+implicit graph", |b| b.iter(|| open_and_build(&path)));
    group.bench_function("open+read every value", |b| b.iter(|| open_and_read_all(&path)));
    group.finish();

    // Same-run comparison with the peer, timed the same way (median of 5 runs each).
    let ours_graph = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                open_and_build(&path);
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let ours_all = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                open_and_read_all(&path);
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    println!("gmnscope open + implicit graph:  {:>9.3} ms", ours_graph * 1e3);
    println!("gmnscope open + read all values: {:>9.3} ms", ours_all * 1e3);

    // Peak memory of the real CLI doing the same work in its own process (it reports its own
    // VmHWM: the parent's RUSAGE_CHILDREN would also count pages shared before exec).
    let out = Command::new(env!("CARGO_BIN_EXE_gmnscope"))
        .arg("inspect")
        .arg(&path)
        .arg("--json")
        .env("GMNSCOPE_PEAK_RSS", "1")
        .output()
        .expect("run gmnscope");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours_kb: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak RSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    let ours_rss = ours_kb * 1024.0;
    println!(
        "gmnscope inspect peak RSS:       {:>9.1} MB ({:.2}x the file)",
        ours_rss / 1e6,
        ours_rss / file_size as f64
    );

    match python_peer_seconds(&path, 5) {
        Some(times) if !times.is_empty() => {
            let peer = median(times);
            println!("peer safetensors.numpy.load_file:         {:>9.3} ms", peer * 1e3);
            println!("ratio peer / gmnscope (open + graph):    {:>9.1}x", peer / ours_graph);
            println!("ratio peer / gmnscope (read all values): {:>9.1}x", peer / ours_all);
        }
        _ => {
            println!("peer: python3 with safetensors+numpy not available; install with `pip install safetensors numpy`")
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
