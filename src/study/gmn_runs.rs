//! GMN runs of the study: training on the INR zoo with the project trainer (`crate::train`), and
//! the probe-set representation of every GMN layer.
//!
//! A GMN layer's representation of a sample is the mean of the features of the input network's
//! HIDDEN neurons (neuron nodes that are neither inputs nor outputs: `node_type == Neuron` and
//! `neuron_order == -1`) after that EdgeMPNN block: graph level and invariant to permutations of
//! hidden neurons (papers.md §4). The encoder's node features are not recorded: they depend on
//! the topology only, so they are the same for every sample (a constant layer has no CKA).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use burn::tensor::Device;

use super::baselines::to_vec;
use super::files::{ActivationSet, write_bytes};
use crate::graph::NodeType;
use crate::jobs::{CancelToken, Cancelled, JobError, JobEvent};
use crate::models::{Gmn, GmnBatch};
use crate::train::{DeviceChoice, GraphSet, TrainConfig, TrainProgress, TrainRequest};

/// Marker written once a GMN run finished (a run directory without it is resumed).
const DONE: &str = "study-done";

/// Trains (or resumes, or reuses) the GMN of one seed in `run_dir`. Setting `cancel` stops the
/// training at its next batch (its checkpoint is kept, so a rerun resumes) with a [`Cancelled`]
/// error: the training job runs on a child of `cancel`.
pub fn train(
    data: &Arc<GraphSet>,
    config: TrainConfig,
    run_dir: &Path,
    zoo: &Path,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    if run_dir.join(DONE).is_file() {
        return Ok(());
    }
    let resume = crate::train::checkpoint::latest(run_dir).ok().flatten().is_some();
    let request = TrainRequest {
        config,
        data: data.clone(),
        run_dir: run_dir.to_path_buf(),
        resume,
        zoo: Some(zoo.to_path_buf()),
    };
    let handle =
        crate::train::spawn_with(request, cancel.child()).with_context(|| "cannot start the GMN training thread")?;
    let result = handle.wait(|event| {
        if let JobEvent::Progress(TrainProgress::Epoch(m)) = event
            && m.scope == "epoch"
        {
            let val = m.get("val_accuracy").map_or("--".into(), |v| format!("{v:.3}"));
            progress(&format!("epoch {}: validation accuracy {val}", m.index));
        }
    });
    match result {
        Ok(_) => {}
        Err(JobError::Cancelled) => return Err(anyhow::Error::new(Cancelled)),
        Err(e) => return Err(anyhow!("{}: GMN training failed: {e}", run_dir.display())),
    }
    write_bytes(&run_dir.join(DONE), b"finished\n")
}

/// Every block's mean hidden-node features and the predictions of the trained GMN in `run_dir`
/// on the samples `probe` of `data`.
pub fn activations(data: &GraphSet, probe: &[usize], run_dir: &Path, device: &Device) -> anyhow::Result<ActivationSet> {
    let (_, model) = crate::train::load_run(run_dir, device)?;
    representations(&model, data, probe, device)
}

/// The GMN layer representation (module doc) of `model` on the samples `probe` of `data`: one
/// `[probe.len(), hidden]` layer per EdgeMPNN block (`block1`, ...), plus the predicted classes.
/// Shared by the study and the live training CKA (`training_cka`), so both measure the same thing.
pub fn representations(
    model: &Gmn,
    data: &GraphSet,
    probe: &[usize],
    device: &Device,
) -> anyhow::Result<ActivationSet> {
    let topology = data.shared.clone().ok_or_else(|| anyhow!("the zoo's INRs do not share one architecture"))?;
    let hidden: Vec<usize> = topology
        .node_features
        .iter()
        .enumerate()
        .filter(|(_, f)| f[2] == NodeType::Neuron as i64 && f[1] == -1)
        .map(|(i, _)| i)
        .collect();
    if hidden.is_empty() {
        return Err(anyhow!("the INRs have no hidden neurons"));
    }
    let device_topology = Arc::new(model.topology(&[topology.as_ref()], device).map_err(|e| anyhow!(e))?);
    let h = model.config().hidden;
    let blocks = model.config().layers;
    let names: Vec<String> = (1..=blocks).map(|l| format!("block{l}")).collect();
    let mut layers: Vec<(usize, Vec<f32>)> = vec![(h, Vec::with_capacity(probe.len() * h)); blocks];
    let mut predictions = Vec::with_capacity(probe.len());
    for chunk in probe.chunks(64) {
        // As the GMN takes them (sign-canonicalised when it was trained so).
        let inputs: Vec<std::borrow::Cow<'_, [f32]>> = chunk
            .iter()
            .map(|&i| {
                let s = data.samples.get(i).ok_or_else(|| anyhow!("bad probe index"))?;
                Ok(model.config().input_weights(&s.input.topology, &s.input.weights))
            })
            .collect::<anyhow::Result<_>>()?;
        let columns: Vec<&[f32]> = inputs.iter().map(|c| c.as_ref()).collect();
        let batch = GmnBatch::shared(device_topology.clone(), &columns, device).map_err(|e| anyhow!(e))?;
        let out = model.forward_states(&batch, true);
        let b = chunk.len();
        for (slot, state) in layers.iter_mut().zip(out.node_states.into_iter().skip(1)) {
            let [n, bb, hh] = state.dims();
            let values = to_vec(state)?;
            if bb != b || hh != h || values.len() != n * b * h {
                return Err(anyhow!("unexpected node-state shape [{n}, {bb}, {hh}]"));
            }
            // [N, B, h] node-major: mean over the hidden nodes for every graph.
            let mut means = vec![0.0f64; b * h];
            for &node in &hidden {
                let row = &values[node * b * h..(node + 1) * b * h];
                for (m, &v) in means.iter_mut().zip(row) {
                    *m += v as f64;
                }
            }
            let scale = 1.0 / hidden.len() as f64;
            slot.1.extend(means.iter().map(|&m| (m * scale) as f32));
        }
        let logits = to_vec(out.output)?;
        let classes = logits.len() / b.max(1);
        for row in logits.chunks(classes.max(1)) {
            predictions.push(crate::train::metrics::argmax(row) as u8);
        }
    }
    Ok(ActivationSet { names, layers, predictions })
}

/// The trainer settings of a study GMN.
pub fn train_config(c: &super::config::GmnStudyConfig, seed: u64) -> TrainConfig {
    TrainConfig {
        hidden: c.hidden,
        layers: c.layers,
        epochs: c.epochs,
        batch_size: c.batch_size,
        lr: c.lr,
        warmup_steps: c.warmup_steps,
        probe_points: c.probe_points,
        aggregation: c.aggregation,
        seed,
        // The fused CPU engine: deterministic like burn-flex, the same numbers to rounding, ~5x
        // faster (train::fused).
        device: DeviceChoice::Cpu,
        log_every: 0,
        ..TrainConfig::default()
    }
}
