//! GMN training as a background job, on tiny zoos made here (Flex): it learns a weight statistic,
//! same seed = same losses bit for bit, a NaN stops the run with a clear message, cancelling
//! keeps a loadable checkpoint, a resumed run continues exactly where an uninterrupted one would,
//! and the `train` / `infer` commands work end to end.

use std::path::Path;
use std::sync::Arc;

use gmnscope::data::zoo::native;
use gmnscope::data::{Split, Target};
use gmnscope::jobs::{JobError, JobEvent};
use gmnscope::models::GraphInput;
use gmnscope::rng::SplitMix64;
use gmnscope::train::{
    self, DeviceChoice, GraphSet, Sample, Schedule, TrainConfig, TrainOutcome, TrainProgress, TrainRequest,
};

use crate::gmn_symmetry::{siren_layers, siren_store};

const WIDTHS: [usize; 4] = [2, 8, 8, 1];

/// The label a GMN can learn (permutation invariant, so a GMN can represent it): whether the
/// mean of the SIREN's hidden-to-hidden weights is positive.
fn label(layers: &[(Vec<f32>, Vec<f32>)]) -> u8 {
    (layers[1].0.iter().sum::<f32>() > 0.0) as u8
}

/// A random SIREN of class `class`: its hidden-to-hidden weights all get the class's sign, so
/// [`label`] is `class` with a wide margin (a few dozen steps suffice to learn it).
fn siren_of_class(rng: &mut SplitMix64, class: u8) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut layers = siren_layers(rng, &WIDTHS);
    let sign = if class == 1 { 1.0 } else { -1.0 };
    layers[1].0.iter_mut().for_each(|w| *w = sign * w.abs());
    assert_eq!(label(&layers), class);
    layers
}

fn split_of(i: usize) -> Split {
    match i % 8 {
        6 => Split::Val,
        7 => Split::Test,
        _ => Split::Train,
    }
}

/// `n` random SIRENs 2-8-8-1 labelled by [`label`].
fn tiny_zoo(n: usize, seed: u64) -> GraphSet {
    let mut rng = SplitMix64::new(seed);
    let samples = (0..n)
        .map(|i| {
            let class = rng.below(2) as u8;
            let layers = siren_of_class(&mut rng, class);
            let store = siren_store(&WIDTHS, &layers);
            let (topology, weights) = train::dataset::graph_input(&store, false).unwrap();
            Sample {
                id: format!("inr{i}"),
                input: GraphInput { topology: Arc::new(topology), weights },
                target: Target::Class(label(&layers)),
                split: split_of(i),
            }
        })
        .collect();
    GraphSet::new(samples, Some(2)).unwrap()
}

fn config(seed: u64, epochs: usize) -> TrainConfig {
    TrainConfig {
        hidden: 16,
        layers: 2,
        epochs,
        batch_size: 16,
        lr: 3e-3,
        warmup_steps: 0,
        seed,
        device: DeviceChoice::Flex,
        workers: 2,
        log_every: 1,
        ..TrainConfig::default()
    }
}

fn train_in(dir: &Path, config: TrainConfig, data: &Arc<GraphSet>, resume: bool) -> Result<TrainOutcome, JobError> {
    let request = TrainRequest { config, data: data.clone(), run_dir: dir.to_path_buf(), resume, zoo: None };
    train::spawn(request).unwrap().wait(|_| {})
}

fn metrics_lines(dir: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .collect()
}

/// Both CPU engines: burn-flex autodiff and the fused engine (`train::fused`).
const CPU_ENGINES: [DeviceChoice; 2] = [DeviceChoice::Flex, DeviceChoice::Cpu];

#[test]
fn training_learns_a_weight_statistic_and_reports_events() {
    for device in CPU_ENGINES {
        learns_on(device);
    }
}

fn learns_on(device: DeviceChoice) {
    const EPOCHS: usize = 12;
    let data = Arc::new(tiny_zoo(160, 1));
    assert!(data.shared.is_some(), "one architecture: one shared topology");
    let dir = tempfile::tempdir().unwrap();
    let request = TrainRequest {
        config: TrainConfig { device, ..config(3, EPOCHS) },
        data: data.clone(),
        run_dir: dir.path().to_path_buf(),
        resume: false,
        zoo: None,
    };
    let handle = train::spawn(request).unwrap();
    let (mut epochs, mut checkpoints, mut progress) = (Vec::new(), 0, 0);
    let outcome = handle
        .wait(|e| match e {
            JobEvent::Progress(TrainProgress::Epoch(m)) => epochs.push(m.clone()),
            JobEvent::Progress(TrainProgress::CheckpointSaved { path, .. }) => {
                assert!(path.join("model.bpk").is_file() && path.join("optimizer.bpk").is_file());
                checkpoints += 1;
            }
            JobEvent::Progress(TrainProgress::Batch(_)) => progress += 1,
            _ => {}
        })
        .unwrap();
    assert_eq!(outcome.steps, EPOCHS as u64 * 8, "120 training networks in batches of 16: 8 steps per epoch");
    assert_eq!(epochs.len(), EPOCHS);
    assert_eq!(checkpoints, EPOCHS);
    assert!(progress > 0);
    let first = epochs[0].get("train_loss").unwrap();
    let last = epochs.last().unwrap();
    assert!(last.get("train_loss").unwrap() < first, "loss went down: {first} -> {:?}", last.get("train_loss"));
    let val = last.get("val_accuracy").unwrap();
    let trace: Vec<_> = epochs.iter().map(|m| (m.get("train_loss"), m.get("val_accuracy"))).collect();
    assert!(val >= 0.8, "{device:?}: validation accuracy {val} (chance is ~0.5); per epoch {trace:?}");
    assert_eq!(metrics_lines(dir.path(), "epoch").len(), EPOCHS);
    assert_eq!(metrics_lines(dir.path(), "step").len() as u64, outcome.steps);

    // The saved run loads and predicts.
    let (info, _model) = train::load_run(dir.path(), &burn::tensor::Device::flex()).unwrap();
    assert_eq!(info.task, train::Task::Classification { classes: 2 });
}

#[test]
fn same_seed_gives_bit_identical_losses() {
    let data = Arc::new(tiny_zoo(48, 2));
    for device in CPU_ENGINES {
        let losses = |seed: u64| {
            let dir = tempfile::tempdir().unwrap();
            train_in(dir.path(), TrainConfig { device, ..config(seed, 2) }, &data, false).unwrap();
            metrics_lines(dir.path(), "step").iter().map(|v| v["loss"].as_f64().unwrap().to_bits()).collect::<Vec<_>>()
        };
        let a = losses(7);
        assert!(a.len() >= 6);
        assert_eq!(a, losses(7), "{device:?}: same seed, same bits");
        assert_ne!(a, losses(8), "{device:?}: another seed, another run");
    }
}

/// `augment` transforms every training batch: a run with it is repeatable, differs from the
/// plain run from the first step on, and works on both engines; a zoo that is not an INR zoo is
/// refused with the reason.
#[test]
fn augmented_training_is_repeatable_and_refused_without_inrs() {
    let mut set = tiny_zoo(48, 2);
    set.inr = Some(gmnscope::data::siren::InrSpec::DWSNETS);
    let data = Arc::new(set);
    for device in CPU_ENGINES {
        let losses = |augment: bool| {
            let dir = tempfile::tempdir().unwrap();
            train_in(dir.path(), TrainConfig { device, augment, ..config(7, 2) }, &data, false).unwrap();
            metrics_lines(dir.path(), "step").iter().map(|v| v["loss"].as_f64().unwrap()).collect::<Vec<_>>()
        };
        let a = losses(true);
        assert!(a.len() >= 6 && a.iter().all(|l| l.is_finite()), "{device:?}: {a:?}");
        assert_eq!(a, losses(true), "{device:?}: same seed, same augmentations");
        assert_ne!(a[0], losses(false)[0], "{device:?}: the first batch is transformed");
    }
    let plain = Arc::new(tiny_zoo(16, 2));
    let dir = tempfile::tempdir().unwrap();
    let err = train_in(dir.path(), TrainConfig { augment: true, ..config(7, 1) }, &plain, false).unwrap_err();
    assert!(format!("{err:?}").contains("INRs"), "{err:?}");
}

/// The fused engine trains the same model as burn: from the same initial weights, the per-step
/// losses of the two engines agree to float rounding for a whole epoch, and so do the
/// validation metrics the trainer evaluates (on the fused engine's forward pass).
#[test]
fn the_fused_engine_follows_the_burn_engine_step_by_step() {
    let data = Arc::new(tiny_zoo(48, 12));
    let run = |device| {
        let dir = tempfile::tempdir().unwrap();
        train_in(dir.path(), TrainConfig { device, ..config(4, 1) }, &data, false).unwrap();
        (metrics_lines(dir.path(), "step"), metrics_lines(dir.path(), "epoch"))
    };
    let ((flex_steps, flex_epoch), (cpu_steps, cpu_epoch)) = (run(DeviceChoice::Flex), run(DeviceChoice::Cpu));
    assert_eq!(flex_steps.len(), cpu_steps.len());
    for (a, b) in flex_steps.iter().zip(&cpu_steps) {
        let (a, b) = (a["loss"].as_f64().unwrap(), b["loss"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "step losses: flex {a} vs fused {b}");
    }
    let (a, b) = (flex_epoch[0]["val_loss"].as_f64().unwrap(), cpu_epoch[0]["val_loss"].as_f64().unwrap());
    assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "validation loss: flex {a} vs fused {b}");
    assert_eq!(flex_epoch[0]["val_accuracy"], cpu_epoch[0]["val_accuracy"]);
}

#[test]
fn a_nan_weight_stops_the_run_with_a_clear_message() {
    let mut data = tiny_zoo(32, 3);
    let i = data.indices(Split::Train)[5];
    data.samples[i].input.weights[3] = f32::NAN;
    let data = Arc::new(data);
    for device in CPU_ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let err = train_in(dir.path(), TrainConfig { device, ..config(1, 3) }, &data, false).unwrap_err();
        let JobError::Failed(message) = err else { panic!("expected a failure, got {err:?}") };
        assert!(message.contains("diverged") && message.contains("NaN"), "{device:?}: {message}");
    }
}

#[test]
fn resume_continues_exactly_and_cancel_keeps_a_checkpoint() {
    for device in CPU_ENGINES {
        resume_and_cancel_on(device);
    }
}

fn resume_and_cancel_on(device: DeviceChoice) {
    let data = Arc::new(tiny_zoo(48, 4));
    // A cosine schedule depends on the run's length, so extending a 1-epoch run to 2 epochs can
    // only match an uninterrupted 2-epoch run with a constant learning rate.
    let constant = |epochs| TrainConfig { schedule: Schedule::Constant, device, ..config(5, epochs) };
    // Uninterrupted: 2 epochs.
    let full = tempfile::tempdir().unwrap();
    train_in(full.path(), constant(2), &data, false).unwrap();
    // 1 epoch, then resumed to 2: same epoch-2 numbers (model, AdamW moments and position restored).
    let split = tempfile::tempdir().unwrap();
    train_in(split.path(), constant(1), &data, false).unwrap();
    let again = train_in(split.path(), constant(2), &data, false).unwrap_err();
    assert!(again.to_string().contains("--resume"), "{again}");
    let resumed = train_in(split.path(), constant(2), &data, true).unwrap();
    assert_eq!(resumed.epochs, 2);
    let (a, b) = (metrics_lines(full.path(), "epoch"), metrics_lines(split.path(), "epoch"));
    assert_eq!(a.len(), 2);
    assert_eq!(a[1], b[1], "{device:?}: epoch 2 after a resume equals epoch 2 of the uninterrupted run");

    // Cancel as soon as the first checkpoint is on disk: the job ends Cancelled, the run loads.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TrainConfig { device, ..config(6, 1000) };
    cfg.checkpoint_every = 1;
    let request =
        TrainRequest { config: cfg, data: data.clone(), run_dir: dir.path().to_path_buf(), resume: false, zoo: None };
    let handle = train::spawn(request).unwrap();
    let cancel = handle.cancel.clone();
    let result = handle.wait(|e| {
        if let JobEvent::Progress(TrainProgress::CheckpointSaved { .. }) = e {
            cancel.cancel();
        }
    });
    assert_eq!(result.unwrap_err(), JobError::Cancelled);
    let latest = train::checkpoint::latest(dir.path()).unwrap().expect("a checkpoint survives the cancel");
    let state = train::checkpoint::load_state(&latest).unwrap();
    assert!(state.step >= 1);
    assert!(train::load_run(dir.path(), &burn::tensor::Device::flex()).is_ok());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints")).unwrap().flatten().collect();
    assert_eq!(leftovers.len(), 1, "only the latest checkpoint remains, no temp directories");
}

#[test]
fn resume_after_a_kill_mid_epoch_logs_what_an_uninterrupted_run_logs() {
    let data = Arc::new(tiny_zoo(160, 1));
    let cfg = |checkpoint_every| TrainConfig {
        schedule: Schedule::Constant,
        device: DeviceChoice::Cpu,
        checkpoint_every,
        ..config(8, 2)
    };
    let full = tempfile::tempdir().unwrap();
    train_in(full.path(), cfg(0), &data, false).unwrap();
    // Stopped right after the checkpoint at step 3 of 8 in epoch 1 ...
    let dir = tempfile::tempdir().unwrap();
    let request = TrainRequest {
        config: cfg(3),
        data: data.clone(),
        run_dir: dir.path().to_path_buf(),
        resume: false,
        zoo: None,
    };
    let handle = train::spawn(request).unwrap();
    let cancel = handle.cancel.clone();
    let result = handle.wait(|e| {
        if let JobEvent::Progress(TrainProgress::CheckpointSaved { .. }) = e {
            cancel.cancel();
        }
    });
    assert_eq!(result.unwrap_err(), JobError::Cancelled);
    // ... as a kill would leave it: two more steps logged after the checkpoint and a cut line.
    // The cancel may land a step or two after the checkpoint that triggered it (the trainer
    // checkpoints again on cancel): the steps a kill would leave come after the latest one.
    let latest = train::checkpoint::latest(dir.path()).unwrap().unwrap();
    let at = train::checkpoint::load_state(&latest).unwrap().step;
    let log = dir.path().join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(&format!(
        "{{\"kind\":\"step\",\"step\":{},\"epoch\":1}}\n{{\"kind\":\"step\",\"step\":{},\"epoch\":1}}\n{{\"kind\":\"st",
        at + 1,
        at + 2
    ));
    std::fs::write(&log, text).unwrap();
    train_in(dir.path(), cfg(3), &data, true).unwrap();
    // No duplicates, and epoch 1's statistics cover all 8 batches: the same log line by line.
    let read = |d: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (want, got) = (read(full.path()), read(dir.path()));
    assert_eq!(want.len(), 2 * 8 + 2);
    assert_eq!(got, want);
}

#[test]
fn train_and_infer_commands_work_end_to_end() {
    let zoo = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(9);
    let mut entries = Vec::new();
    for i in 0..24 {
        let layers = siren_of_class(&mut rng, (i % 2) as u8);
        let file = native::inr_file_name(i);
        let mut tensors = Vec::new();
        for (l, (w, b)) in layers.iter().enumerate() {
            tensors.push(gmnscope::checkpoint::writer::OwnedTensor::f32(
                format!("seq.{l}.weight"),
                vec![WIDTHS[l + 1], WIDTHS[l]],
                w,
            ));
            tensors.push(gmnscope::checkpoint::writer::OwnedTensor::f32(
                format!("seq.{l}.bias"),
                vec![WIDTHS[l + 1]],
                b,
            ));
        }
        gmnscope::checkpoint::writer::write_safetensors(&zoo.path().join(&file), &tensors).unwrap();
        entries.push(serde_json::json!({
            "file": file, "label": label(&layers), "split": split_of(i).name(), "psnr": 30.0, "image_index": i,
        }));
    }
    // index.json as `fit-inrs` writes it (data::zoo::native).
    let index = serde_json::json!({
        "format": native::FORMAT, "version": native::VERSION, "image_source": "test", "num_classes": 2,
        "architecture": "siren 2-8-8-1", "omega_0": 30.0, "output_offset": 0.5, "side": 28,
        "coordinates": "[-1, 1]", "steps": 0, "lr": 0.0, "batch": 1, "seed": 0, "split_seed": 0,
        "entries": entries,
    });
    std::fs::write(zoo.path().join(native::INDEX_FILE), serde_json::to_vec_pretty(&index).unwrap()).unwrap();

    let run = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::common::gmnscope_bin())
        .args(["train", "--zoo"])
        .arg(zoo.path())
        .arg("--out")
        .arg(run.path())
        .args(["--epochs", "2", "--hidden", "8", "--layers", "1", "--batch", "8", "--device", "flex", "--seed", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(run.path().join("run.json").is_file());
    assert_eq!(metrics_lines(run.path(), "epoch").len(), 2);

    let out = std::process::Command::new(crate::common::gmnscope_bin())
        .args(["infer", "--json", "--gmn"])
        .arg(run.path())
        .arg(zoo.path().join(native::inr_file_name(3)))
        .output()
        .unwrap();
    assert!(out.status.success(), "infer failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let probabilities: Vec<f64> =
        report["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(probabilities.len(), 2);
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    let class = report["prediction"].as_u64().unwrap() as usize;
    assert!(probabilities[class] >= probabilities[1 - class]);
    assert_eq!(
        report["embedding"].as_array().unwrap().len(),
        24,
        "readout both (2 x hidden) + the output neurons' state (probe features are on for INR zoos)"
    );
    assert_eq!(report["layers"].as_array().unwrap().len(), 2, "encoder + 1 block");

    // The best-validation model is kept next to the checkpoints and `--checkpoint best` reads it.
    assert!(run.path().join("best/model.bpk").is_file() && run.path().join("best/state.json").is_file());
    let best: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.path().join("best/state.json")).unwrap()).unwrap();
    let epochs = metrics_lines(run.path(), "epoch");
    let best_epoch = best["best_epoch"].as_u64().unwrap() as usize;
    let best_val = epochs.iter().map(|e| e["val_accuracy"].as_f64().unwrap()).fold(f64::MIN, f64::max);
    assert_eq!(epochs[best_epoch - 1]["val_accuracy"].as_f64().unwrap(), best_val);
    let out = std::process::Command::new(crate::common::gmnscope_bin())
        .args(["infer", "--json", "--checkpoint", "best", "--gmn"])
        .arg(run.path())
        .arg(zoo.path().join(native::inr_file_name(3)))
        .output()
        .unwrap();
    assert!(out.status.success(), "infer --checkpoint best failed: {}", String::from_utf8_lossy(&out.stderr));

    // A run directory that is not one gives a one-line error naming it.
    let out = std::process::Command::new(crate::common::gmnscope_bin())
        .args(["infer", "--gmn"])
        .arg(zoo.path())
        .arg(zoo.path().join(native::inr_file_name(3)))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run.json"));
}

/// Relative spread of graph embeddings across samples: `sqrt(sum (x - mean_g x)^2 / sum x^2)`
/// over a `[G, w]` embedding (0 = every sample embeds the same).
fn relative_spread(embedding: burn::tensor::Tensor<2>) -> f64 {
    let [g, w] = embedding.dims();
    let v: Vec<f32> = embedding.into_data().try_to_vec::<f32>().unwrap();
    let (mut spread, mut magnitude) = (0.0f64, 0.0f64);
    for c in 0..w {
        let mean = (0..g).map(|r| v[r * w + c] as f64).sum::<f64>() / g as f64;
        for r in 0..g {
            let x = v[r * w + c] as f64;
            spread += (x - mean).powi(2);
            magnitude += x * x;
        }
    }
    (spread / magnitude.max(1e-30)).sqrt()
}

/// On SIREN 2-32-32-1 weights at their real scales (independent inits, per-layer standardised
/// by `weight_scales`), an untrained GMN without probe features embeds every network almost
/// identically (relative spread ~0.003: the weight signal is attenuated on its way from the edge
/// encoder to the node states, then averaged by the mean readout next to large
/// sample-independent encoder terms), and training on INR zoos stays at chance. Probe features
/// (every neuron's activations on fixed inputs, `models::probe`) carry what each network
/// computes into the node states: the embeddings then differ from the start.
#[test]
fn probe_features_make_embeddings_of_different_real_scale_sirens_differ() {
    use gmnscope::models::probe::{ProbeActivation, ProbeConfig};
    use gmnscope::models::{Gmn, GmnBatch, GmnConfig};
    const WIDE: [usize; 4] = [2, 32, 32, 1];
    let mut rng = SplitMix64::new(11);
    let samples = (0..32)
        .map(|i| {
            let store = siren_store(&WIDE, &siren_layers(&mut rng, &WIDE));
            let (topology, weights) = train::dataset::graph_input(&store, false).unwrap();
            let input = GraphInput { topology: Arc::new(topology), weights };
            Sample { id: format!("inr{i}"), input, target: Target::Class((i % 2) as u8), split: Split::Train }
        })
        .collect();
    let data = GraphSet::new(samples, Some(2)).unwrap();
    let device = burn::tensor::Device::flex();
    let spread_with = |probe: Option<ProbeConfig>| {
        let config = GmnConfig {
            hidden: 32,
            layers: 2,
            outputs: 2,
            weight_scales: data.weight_scales(),
            probe,
            ..GmnConfig::default()
        };
        let model = Gmn::new(&config, &device).unwrap();
        let topology = Arc::new(model.topology(&[data.shared.as_ref().unwrap().as_ref()], &device).unwrap());
        let columns: Vec<&[f32]> = data.samples.iter().map(|s| s.input.weights.as_slice()).collect();
        let batch = GmnBatch::shared(topology, &columns, &device).unwrap();
        relative_spread(model.forward(&batch).embedding)
    };
    let without = spread_with(None);
    let probe = ProbeConfig { points: 64, activation: ProbeActivation::Sine { omega_0: 30.0, output_offset: 0.5 } };
    let with = spread_with(Some(probe));
    assert!(without < 0.02, "without probe features the spread was expected to be tiny, got {without:.4}");
    assert!(with > 0.03 && with > 10.0 * without, "with probe features: {with:.4} (without: {without:.4})");
}
