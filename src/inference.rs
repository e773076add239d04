//! Running a trained GMN on one model: the one pipeline behind `gmnscope infer` and the app's
//! activation overlay, so both accept and refuse the same files with the same words.
//!
//! [`prepare`] turns an opened model into the GMN's input (parameter graph, limits, the check that
//! the GMN can read this kind of network, finite weights); [`run`] runs the model and returns the
//! prediction, the embedding and the node features after every GMN layer as plain numbers.
//! Errors are plain sentences without the file name (callers prefix it).

use std::sync::Arc;

use burn::prelude::Device;

use crate::checkpoint::TensorStore;
use crate::graph::{EdgeType, NodeType, ParamGraph};
use crate::models::{Gmn, GmnBatch, Topology};
use crate::train::{RunInfo, Task};

/// A model made ready for a GMN: its parameter graph and the GMN's input topology and weights.
pub struct GmnInput {
    pub graph: ParamGraph,
    pub topology: Topology,
    /// Edge weights in the topology's edge order, before `GmnConfig::input_weights`.
    pub weights: Vec<f32>,
}

/// What a GMN says about one model.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    Class {
        class: usize,
        probabilities: Vec<f32>,
    },
    /// A regression target, in the units it was trained on.
    Value(f32),
}

/// The outputs of [`run`].
pub struct GmnOutputs {
    pub prediction: Prediction,
    /// The graph embedding the head reads.
    pub embedding: Vec<f32>,
    /// Node features `[nodes, channels]` row-major after the encoder and after every block.
    pub node_states: Vec<Vec<f32>>,
    pub nodes: usize,
    pub channels: usize,
}

/// Builds the GMN input for `store` and checks it is one this run can read; `max_gmn_bytes` is
/// the limit on the GMN's features (`infer --max-gmn-bytes`).
pub fn prepare(store: &TensorStore, info: &RunInfo, max_gmn_bytes: u64) -> Result<GmnInput, String> {
    let arch = crate::arch::recover(store);
    let graph = crate::graph::build(&arch, store)
        .map_err(|e| format!("cannot build its parameter graph: {}", crate::text::shown_message(&e.to_string())))?;
    if graph.num_edges() == 0 {
        return Err("it has no parameters the parameter graph can encode".into());
    }
    check_fits(&graph, info)?;
    crate::limits::check_gmn_on_graph(&graph, &info.gmn, max_gmn_bytes).map_err(|e| e.to_string())?;
    crate::train::dataset::check_finite(store)?;
    let (topology, weights) = Topology::from_graph(&graph, info.gmn.undirected)?;
    Ok(GmnInput { graph, topology, weights })
}

/// Whether a GMN of this run can read `graph`: the same number of weight layers as the networks
/// it was trained on, only the kinds of parameters they had (where the run recorded them), and
/// for probe features a graph of neurons and biases. The refusal names both sides in words.
pub fn check_fits(graph: &ParamGraph, info: &RunInfo) -> Result<(), String> {
    let layers = graph.edge_blocks().iter().map(|b| b.layer_index.max(-1) + 1).max().unwrap_or(0).max(0) as usize;
    let trained_layers = info.gmn.trained_weight_layers();
    let unknown_kind = graph.edge_blocks().iter().find(|b| {
        !info.gmn.edge_norm.is_empty()
            && !info.gmn.edge_norm.iter().any(|n| n.layer == b.layer_index && n.edge_type == b.edge_type as i64)
    });
    let probe_misfit = info.gmn.probe.is_some()
        && graph.node_blocks().iter().any(|b| !matches!(b.node_type, NodeType::Neuron | NodeType::Bias));
    let layer_misfit = trained_layers != 0 && layers != trained_layers;
    if !(probe_misfit || layer_misfit || unknown_kind.is_some()) {
        return Ok(());
    }
    let trained = match info.task {
        Task::Classification { .. } => "INRs (MLPs of neurons and biases)",
        Task::Regression => "a zoo of networks",
    };
    let layers_text = |n: usize| if n == 1 { "1 weight layer".to_string() } else { format!("{n} weight layers") };
    let mut trained_text = format!("this GMN was trained on {trained}");
    if trained_layers != 0 {
        trained_text += &format!(" with {}", layers_text(trained_layers));
    }
    if info.gmn.probe.is_some() {
        trained_text += ", read through probe features (neurons and biases only)";
    }
    let kinds = kinds_in(graph);
    let model_text = match kinds.split_last() {
        None => format!("this file is an MLP with {}", layers_text(layers)),
        Some((last, [])) => format!("this file has {last} ({})", layers_text(layers)),
        Some((last, rest)) => format!("this file has {} and {last} ({})", rest.join(", "), layers_text(layers)),
    };
    let detail = match unknown_kind {
        Some(b) if !layer_misfit && !probe_misfit => {
            format!(
                " and {} in weight layer {}, which those networks did not have",
                edge_kind(b.edge_type),
                b.layer_index
            )
        }
        _ => String::new(),
    };
    Err(format!("{trained_text}; {model_text}{detail}"))
}

/// The kinds of parameters beyond an MLP's neurons and biases, in words ("conv layers",
/// "BatchNorm", ...), each once, in graph order.
fn kinds_in(graph: &ParamGraph) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = Vec::new();
    for b in graph.node_blocks() {
        let kind = match b.node_type {
            NodeType::Neuron | NodeType::Bias => continue,
            NodeType::Channel | NodeType::ChannelBias => "conv layers",
            NodeType::BnGamma | NodeType::BnBeta => "BatchNorm",
            NodeType::LnGamma | NodeType::LnBeta => "LayerNorm",
            NodeType::GnGamma | NodeType::GnBeta => "GroupNorm",
            NodeType::InGamma | NodeType::InBeta => "InstanceNorm",
            NodeType::AttentionNeuron | NodeType::AttentionBias => "attention",
            NodeType::ChannelParam => "per-channel parameters",
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

/// `conv_weight` -> "conv weight parameters".
fn edge_kind(edge_type: EdgeType) -> String {
    let name = serde_json::to_value(edge_type).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    format!("{} parameters", name.replace('_', " "))
}

/// Runs `model` (of run `info`) on a prepared input.
pub fn run(model: &Gmn, info: &RunInfo, device: &Device, input: &GmnInput) -> Result<GmnOutputs, String> {
    let batch_topology = model.topology(&[&input.topology], device)?;
    let weights = info.gmn.input_weights(&input.topology, &input.weights);
    let batch = GmnBatch::shared(Arc::new(batch_topology), &[weights.as_ref()], device)?;
    let out = model.forward_states(&batch, true);
    let raw = crate::train::step::to_vec(out.output);
    let prediction = match info.task {
        Task::Classification { .. } => {
            let probabilities = crate::analysis::softmax(&raw);
            Prediction::Class { class: crate::train::metrics::argmax(&probabilities), probabilities }
        }
        Task::Regression => {
            let v = raw.first().copied().unwrap_or(f32::NAN);
            Prediction::Value(v * info.target_std + info.target_mean)
        }
    };
    let (nodes, channels) = (input.topology.num_nodes(), info.gmn.hidden);
    let mut node_states = Vec::with_capacity(out.node_states.len());
    for (l, state) in out.node_states.into_iter().enumerate() {
        let dims = state.dims();
        if dims != [nodes, 1, channels] {
            return Err(format!(
                "GMN layer {l} returned node features of shape {dims:?}, expected [{nodes}, 1, {channels}]"
            ));
        }
        node_states.push(crate::train::step::to_vec(state));
    }
    Ok(GmnOutputs { prediction, embedding: crate::train::step::to_vec(out.embedding), node_states, nodes, channels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::GmnConfig;
    use crate::models::config::EdgeNorm;

    fn graph(name: &str) -> ParamGraph {
        let store = crate::demo::open(name).unwrap();
        crate::graph::build(&crate::arch::recover(&store), &store).unwrap()
    }

    fn info(gmn: GmnConfig) -> RunInfo {
        RunInfo {
            format: crate::train::checkpoint::RUN_FORMAT.into(),
            gmn,
            task: Task::Classification { classes: 10 },
            train: Default::default(),
            target_mean: 0.0,
            target_std: 1.0,
            zoo: None,
        }
    }

    /// A SIREN GMN's recorded input classes: (layer, edge type) of a 3-layer MLP.
    fn siren_norms() -> Vec<EdgeNorm> {
        (0..3)
            .flat_map(|layer| {
                [EdgeType::LinWeight, EdgeType::LinBias].map(|t| EdgeNorm {
                    layer,
                    edge_type: t as i64,
                    mean: 0.0,
                    std: 1.0,
                })
            })
            .collect()
    }

    #[test]
    fn a_siren_gmn_reads_sirens_and_refuses_other_networks_in_words() {
        let siren_gmn = info(GmnConfig { edge_norm: siren_norms(), ..GmnConfig::default() });
        assert_eq!(check_fits(&graph("siren"), &siren_gmn), Ok(()));
        let e = check_fits(&graph("resnet"), &siren_gmn).unwrap_err();
        assert!(
            e.starts_with("this GMN was trained on INRs (MLPs of neurons and biases) with 3 weight layers;"),
            "{e}"
        );
        assert!(e.contains("conv layers and BatchNorm (6 weight layers)"), "{e}");
        assert!(!e.contains("node type"), "no jargon: {e}");
        let e = check_fits(&graph("transformer"), &siren_gmn).unwrap_err();
        assert!(e.contains("attention") && e.contains("LayerNorm"), "{e}");
    }

    #[test]
    fn probe_gmns_and_unseen_parameter_kinds_are_named() {
        let probe = crate::models::probe::ProbeConfig {
            points: 4,
            activation: crate::models::probe::ProbeActivation::Sine { omega_0: 30.0, output_offset: 0.5 },
        };
        // Without recorded classes only the probe rule and the layer count can refuse.
        let probe_gmn = info(GmnConfig { probe: Some(probe), ..GmnConfig::default() });
        assert_eq!(check_fits(&graph("siren"), &probe_gmn), Ok(()));
        let e = check_fits(&graph("resnet"), &probe_gmn).unwrap_err();
        assert!(e.contains("read through probe features (neurons and biases only)"), "{e}");
        // Same number of layers, but a kind of parameter the training networks did not have.
        let mut norms = siren_norms();
        norms.retain(|n| !(n.layer == 1 && n.edge_type == EdgeType::LinBias as i64));
        let e = check_fits(&graph("siren"), &info(GmnConfig { edge_norm: norms, ..GmnConfig::default() })).unwrap_err();
        assert!(e.ends_with("and lin bias parameters in weight layer 1, which those networks did not have"), "{e}");
    }
}
