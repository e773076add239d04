//! GMN training throughput (graphs / second) of `train`'s default inputs (messages both ways with a
//! direction tag, per-class standardisation, bias node features, output-neuron readout) with
//! each block (PNA, the default, and the EdgeMPNN) on SIREN
//! 2-32-32-1 parameter graphs, hidden 64 and 128, 4 layers, batch 64, against the same model in
//! PyTorch (`benches/peers/gmn_torch.py`, `torch.set_num_threads(2)`) on the same CPU, in the same
//! run, on the same graphs (written to a temporary safetensors file the peer reads, with every
//! index and constant the model derives from the topology).
//!
//! `cargo bench --bench gmn_train` prints the rates and the ratios. Environment:
//! `GMN_BENCH_WORKERS` (worker threads, default one per core), `GMN_BENCH_SKIP_PEER=1`,
//! `GMN_BENCH_SKIP_BURN=1` (only the fused engine), `GMN_BENCH_FIXED_STEPS=N` (run N fused steps
//! and exit, for `perf stat`). Our step is the trainer's own, on each CPU
//! engine: gradients (the fused engine, `train::fused`, which `--device cpu` and the default
//! use without a GPU; and burn-flex autodiff, `train::step`), global clipping, AdamW.

use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::optim::AdamWConfig;
use burn::tensor::Device;
use criterion::Criterion;
use gmnscope::checkpoint::DType;
use gmnscope::checkpoint::writer::{OwnedTensor, write_safetensors};
use gmnscope::data::{Split, Target};
use gmnscope::models::{Aggregation, BatchTopology, Gmn, GmnConfig, GraphInput, Topology};
use gmnscope::rng::SplitMix64;
use gmnscope::train::fused::FusedEngine;
use gmnscope::train::step::{self, StepInput};
use gmnscope::train::{GraphSet, Sample, TrainConfig};

const WIDTHS: [usize; 4] = [2, 32, 32, 1];
const BATCH: usize = 64;
const HIDDEN: [usize; 2] = [64, 128];
const LAYERS: usize = 4;
const GRAPHS: usize = 4 * BATCH;

/// `GRAPHS` random SIRENs (SIREN init) with random labels: throughput does not depend on them.
fn synthetic_zoo() -> GraphSet {
    let mut rng = SplitMix64::new(2024);
    let samples = (0..GRAPHS)
        .map(|i| {
            let mut tensors = Vec::new();
            for l in 0..3 {
                let (fan_in, out) = (WIDTHS[l], WIDTHS[l + 1]);
                let bound = if l == 0 { 1.0 / fan_in as f32 } else { (6.0 / fan_in as f32).sqrt() / 30.0 };
                let w: Vec<f32> = (0..out * fan_in).map(|_| rng.uniform(-bound, bound)).collect();
                let b: Vec<f32> = (0..out).map(|_| rng.uniform(-0.5, 0.5)).collect();
                tensors.push(OwnedTensor::f32(format!("seq.{l}.weight"), vec![out, fan_in], &w));
                tensors.push(OwnedTensor::f32(format!("seq.{l}.bias"), vec![out], &b));
            }
            let bytes = gmnscope::checkpoint::writer::to_safetensors_bytes(&tensors);
            let store = gmnscope::checkpoint::open_blob(
                std::path::Path::new("inr.safetensors"),
                gmnscope::checkpoint::Blob::from_vec(bytes),
            )
            .expect("valid safetensors");
            // Both ways, as `train` loads a zoo by default.
            let (topology, weights) = gmnscope::train::dataset::graph_input(&store, true).expect("a SIREN graph");
            Sample {
                id: format!("inr{i}"),
                input: GraphInput { topology: Arc::new(topology), weights },
                target: Target::Class(rng.below(10) as u8),
                split: Split::Train,
            }
        })
        .collect();
    GraphSet::new(samples, Some(10)).expect("a zoo")
}

fn i64_tensor(name: &str, shape: Vec<usize>, values: &[i64]) -> OwnedTensor {
    OwnedTensor {
        name: name.into(),
        dtype: DType::I64,
        shape,
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Writes the graphs for the PyTorch peer: the topology, every per-edge and per-node constant the
/// GMN derives from it (computed by gmnscope's own functions), the raw weight columns and labels.
fn write_peer_data(path: &std::path::Path, data: &GraphSet, topo: &Topology, gmn: &GmnConfig) {
    let n = topo.num_nodes();
    let e = topo.num_edges();
    let nodes: Vec<i64> = topo.node_features.iter().flatten().copied().collect();
    let edges: Vec<f32> = topo.edge_features.iter().flatten().copied().collect();
    let src: Vec<i64> = topo.src.iter().map(|&v| v as i64).collect();
    let dst: Vec<i64> = topo.dst.iter().map(|&v| v as i64).collect();
    let affine: Vec<(f32, f32)> =
        topo.edge_features.iter().map(|f| gmn.edge_affine(f[0] as i64, f[1] as i64)).collect();
    let edge_scale: Vec<f32> = affine.iter().map(|a| a.0).collect();
    let edge_shift: Vec<f32> = affine.iter().map(|a| a.1).collect();
    let type_row: Vec<i64> = topo.edge_features.iter().map(|f| gmn.edge_type_row(f[1] as i64) as i64).collect();
    let weight_index: Vec<i64> = topo.weight_index.iter().map(|&w| w as i64).collect();
    let bias = gmnscope::models::topology::bias_edges(&[topo]);
    let bias_edge: Vec<i64> = bias.iter().map(|b| b.unwrap_or(0) as i64).collect();
    let has_bias: Vec<f32> = bias.iter().map(|b| if b.is_some() { 1.0 } else { 0.0 }).collect();
    let plan = gmnscope::models::probe::ProbePlan::new(&[topo]);
    let is_output: Vec<f32> = plan.is_output.iter().map(|&o| if o { 1.0 } else { 0.0 }).collect();
    let weights: Vec<f32> = data.samples.iter().flat_map(|s| s.input.weights.iter().copied()).collect();
    let labels: Vec<i64> =
        data.samples.iter().map(|s| if let Target::Class(c) = s.target { c as i64 } else { 0 }).collect();
    let tensors = vec![
        i64_tensor("src", vec![e], &src),
        i64_tensor("dst", vec![e], &dst),
        i64_tensor("node_features", vec![n, 3], &nodes),
        OwnedTensor::f32("edge_features", vec![e, 5], &edges),
        OwnedTensor::f32("edge_scale", vec![e], &edge_scale),
        OwnedTensor::f32("edge_shift", vec![e], &edge_shift),
        i64_tensor("edge_type_row", vec![e], &type_row),
        i64_tensor("type_rows", vec![1], &[gmn.edge_type_rows() as i64]),
        i64_tensor("weight_index", vec![e], &weight_index),
        i64_tensor("bias_edge", vec![n], &bias_edge),
        OwnedTensor::f32("has_bias", vec![n], &has_bias),
        OwnedTensor::f32("is_output", vec![n], &is_output),
        OwnedTensor::f32("weights", vec![data.samples.len(), topo.num_weights], &weights),
        i64_tensor("labels", vec![data.samples.len()], &labels),
    ];
    write_safetensors(path, &tensors).expect("write the peer's data");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    gmnscope::train::alloc::tune_for_training();
    let data = synthetic_zoo();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    let mut summary = Vec::new();
    for aggregation in [Aggregation::Pna, Aggregation::Mean] {
        for hidden in HIDDEN {
            summary.push((aggregation, bench_size(&data, hidden, aggregation, &mut criterion)));
        }
    }
    let topo = data.shared.clone().expect("one topology");
    println!(
        "GMN training (train's default inputs), SIREN 2-32-32-1 graphs ({} nodes, {} edges both ways), {LAYERS} layers, batch {BATCH}:",
        topo.num_nodes(),
        topo.num_edges()
    );
    for (aggregation, (hidden, workers, rates, peer)) in summary {
        let model = if aggregation == Aggregation::Pna { "PNA (train's default)" } else { "EdgeMPNN" };
        println!(" {model}, hidden {hidden}:");
        for (name, rate) in &rates {
            println!("  gmnscope ({name}, {workers} workers): {rate:.1} graphs/s");
        }
        match peer {
            Some(torch) => {
                println!("  PyTorch (same model, 2 threads):        {torch:.1} graphs/s");
                for (name, rate) in &rates {
                    println!("  ratio gmnscope {name} / PyTorch: {:.2}x (goal >= 2x)", rate / torch);
                }
            }
            None => println!("  PyTorch peer: not run"),
        }
    }
    criterion.final_summary();
}

type SizeResult = (usize, usize, Vec<(&'static str, f64)>, Option<f64>);

/// Both CPU engines and the PyTorch peer at one hidden size and block.
fn bench_size(data: &GraphSet, hidden: usize, aggregation: Aggregation, criterion: &mut Criterion) -> SizeResult {
    let topo = data.shared.clone().expect("one topology");
    let workers = std::env::var("GMN_BENCH_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(0);
    let config =
        TrainConfig { hidden, layers: LAYERS, batch_size: BATCH, workers, aggregation, ..TrainConfig::default() };
    let model_flag = if aggregation == Aggregation::Pna { "pna" } else { "edge-mpnn" };
    let mut gmn_config = config.gmn(10);
    // As the trainer does with its defaults (`standardize`).
    gmn_config.edge_norm = data.edge_norm();

    let device = Device::flex();
    let autodiff = device.clone().autodiff();
    let mut model = Gmn::new(&gmn_config, &autodiff).expect("a model");
    let batch_topology = Arc::new(BatchTopology::new(&[topo.as_ref()], &gmn_config, &autodiff).expect("topology"));
    let mut optim = AdamWConfig::new().with_weight_decay(5e-4).init();
    let input = StepInput { data, shared: Some(&batch_topology), target_mean: 0.0, target_std: 1.0, device: &autodiff };
    let n_workers = config.worker_count(BATCH);

    // The trainer's step on each CPU engine: gradients (fused engine or burn-flex autodiff),
    // global clipping, AdamW on the burn model.
    let mut rates = Vec::new();
    for fused in [true, false] {
        if !fused && std::env::var("GMN_BENCH_SKIP_BURN").is_ok_and(|v| v == "1") {
            continue;
        }
        let mut engine = fused.then(|| FusedEngine::new(&model, data).expect("the fused engine applies"));
        let mut next = 0usize;
        let mut train_step = || {
            let indices: Vec<usize> = (0..BATCH).map(|k| (next * BATCH + k) % GRAPHS).collect();
            next += 1;
            let (mut grads, _) = match &mut engine {
                Some(engine) => engine.gradients(&model, data, &indices, 0.0, 1.0, n_workers, &device),
                None => step::gradients(&model, &input, &indices, n_workers),
            }
            .expect("a step");
            step::clip_global_norm(&model, &mut grads, 10.0);
            model = optim.step(1e-3, model.clone(), grads);
        };
        // A fixed number of steps, no statistics: for `perf stat` comparisons of two builds.
        if let Some(steps) = std::env::var("GMN_BENCH_FIXED_STEPS").ok().and_then(|v| v.parse::<usize>().ok()) {
            let start = Instant::now();
            for _ in 0..steps {
                train_step();
            }
            println!("h{hidden}: {steps} steps: {:.3} s", start.elapsed().as_secs_f64());
            std::process::exit(0);
        }
        let mut per_step = Vec::new();
        let name = if fused { "cpu-fused" } else { "flex-burn" };
        criterion.bench_function(
            &format!("gmn_train/siren-2-32-32-1/{model_flag}-h{hidden}-l{LAYERS}-b{BATCH}/{name}-w{n_workers}"),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        train_step();
                    }
                    let elapsed = start.elapsed();
                    per_step.push(elapsed / iters.max(1) as u32);
                    elapsed
                })
            },
        );
        rates.push((name, BATCH as f64 / median(per_step).as_secs_f64().max(1e-12)));
    }

    let peer = if std::env::var("GMN_BENCH_SKIP_PEER").is_ok_and(|v| v == "1") {
        None
    } else {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("graphs.safetensors");
        write_peer_data(&path, data, &topo, &gmn_config);
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/gmn_torch.py");
        // PASSIVE: OpenMP threads sleep instead of spinning at barriers; on a shared 2-core
        // machine spinning made the peer up to 5x slower, which would flatter our ratio.
        let out = std::process::Command::new("python3")
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .arg(script)
            .arg("--data")
            .arg(&path)
            .args(["--batch", &BATCH.to_string(), "--hidden", &hidden.to_string(), "--layers", &LAYERS.to_string()])
            .args(["--steps", "20", "--warmup", "3", "--threads", "2", "--model", model_flag])
            .output();
        match out {
            Ok(out) if out.status.success() => {
                let line = String::from_utf8_lossy(&out.stdout);
                serde_json::from_str::<serde_json::Value>(line.trim()).ok().and_then(|v| v["graphs_per_s"].as_f64())
            }
            Ok(out) => {
                eprintln!("PyTorch peer failed: {}", String::from_utf8_lossy(&out.stderr));
                None
            }
            Err(e) => {
                eprintln!("cannot run python3: {e}");
                None
            }
        }
    };
    (hidden, n_workers, rates, peer)
}
