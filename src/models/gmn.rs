//! The graph metanetwork: encoders, `L` EdgeMPNN blocks, final LayerNorms, mean readout and an
//! MLP head. Invariant to permutations of hidden neurons of the input network by construction
//! (every operation is per node, per edge, or a mean over them); `tests/gmn_symmetry.rs` checks.

use burn::module::{Module, Param};
use burn::nn::LayerNorm;
use burn::tensor::activation::silu;
use burn::tensor::{Device, IndexingUpdateOp, Tensor};

use super::block::EdgeMpnnBlock;
use super::config::{GmnConfig, Readout};
use super::encoders::{EdgeEncoder, NodeEncoder};
use super::init::{Dense, layer_norm};
use super::topology::{BatchTopology, GmnBatch};
use crate::rng::SplitMix64;

#[derive(Module, Debug)]
pub struct Gmn {
    node_encoder: NodeEncoder,
    edge_encoder: EdgeEncoder,
    blocks: Vec<EdgeMpnnBlock>,
    final_node_norm: LayerNorm,
    final_edge_norm: LayerNorm,
    head_hidden: Dense,
    head_out: Dense,
    /// `K -> h` projection of the probe features (when `config.probe` is on).
    probe_encoder: Option<Dense>,
    /// `[lift width, h]` projection of the bias node features (when `config.bias_features` is on).
    bias_encoder: Option<Param<Tensor<2>>>,
    /// The weight lift's angular frequencies (`WeightLift::angular_frequencies`; empty: linear).
    #[module(skip)]
    omega: Vec<f32>,
    #[module(skip)]
    config: GmnConfig,
}

/// What a forward pass returns. Graph `g` is copy `g % B` of segment `g / B` of the batch.
#[derive(Clone, Debug)]
pub struct GmnOutput {
    /// `[G, outputs]`: logits (classification) or the regressed value.
    pub output: Tensor<2>,
    /// `[G, GmnConfig::embedding_width]` (the readout's means, then the output neurons' mean
    /// state when `GmnConfig::reads_outputs`): the graph
    /// embedding the head reads.
    pub embedding: Tensor<2>,
    /// Node features `[N, B, h]` after the encoder and after every block (`layers + 1` entries),
    /// when asked for.
    pub node_states: Vec<Tensor<3>>,
}

impl Gmn {
    /// A GMN initialised deterministically from `config.seed`.
    pub fn new(config: &GmnConfig, device: &Device) -> Result<Self, String> {
        config.validate()?;
        let h = config.hidden;
        let mut rng = SplitMix64::new(config.seed ^ 0x6d6e_5f67_6d6e_7331);
        let node_encoder = NodeEncoder::new(&mut rng, h, device);
        let omega = config.weight_lift.angular_frequencies(config.seed);
        let edge_encoder = EdgeEncoder::new(&mut rng, h, config.edge_type_rows(), omega.clone(), device);
        let blocks = (0..config.layers).map(|_| EdgeMpnnBlock::new(&mut rng, h, config.aggregation, device)).collect();
        let width = config.embedding_width();
        let head_hidden = Dense::new(&mut rng, width, h, true, device);
        let head_out = Dense::new(&mut rng, h, config.outputs, true, device);
        // Drawn last, so switching probes on leaves every other initial value unchanged.
        let probe_encoder = config.probe.map(|p| Dense::new(&mut rng, p.points, h, true, device));
        let lift_width = config.weight_lift.width();
        let bias_encoder =
            config.bias_features.then(|| super::init::projection(&mut rng, lift_width, h, lift_width, device));
        Ok(Self {
            node_encoder,
            edge_encoder,
            blocks,
            final_node_norm: layer_norm(h, device),
            final_edge_norm: layer_norm(h, device),
            head_hidden,
            head_out,
            probe_encoder,
            bias_encoder,
            omega,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &GmnConfig {
        &self.config
    }

    /// Builds the device topology of `parts` with this model's weight scales.
    /// Refused when the GMN uses probe features and the graphs are not MLP/SIREN graphs.
    pub fn topology(&self, parts: &[&super::Topology], device: &Device) -> Result<BatchTopology, String> {
        let topology = BatchTopology::new(parts, &self.config, device)?;
        if self.config.probe.is_some()
            && let Some(why) = topology.probe.unsupported()
        {
            return Err(format!("this GMN uses probe features: {why}"));
        }
        Ok(topology)
    }

    pub fn forward(&self, batch: &GmnBatch) -> GmnOutput {
        self.forward_states(batch, false)
    }

    /// The forward pass; `keep_states` also returns every layer's node features.
    pub fn forward_states(&self, batch: &GmnBatch, keep_states: bool) -> GmnOutput {
        let topo = batch.topology.as_ref();
        let b = batch.copies();
        let h = self.config.hidden;
        let x0 = self.node_encoder.forward(topo);
        let mut x = x0.reshape([topo.num_nodes, 1, h]).repeat_dim(1, b);
        if let (Some(probe), Some(encoder)) = (&self.config.probe, &self.probe_encoder) {
            x = x + encoder.forward3(topo.probe.activations(probe, batch.weights.clone()));
        }
        if let Some(row) = &self.bias_encoder {
            x = x + super::encoders::bias_features(topo, batch.weights.clone(), row, &self.omega);
        }
        let mut e = self.edge_encoder.forward(topo, batch.weights.clone());
        let mut node_states = Vec::new();
        if keep_states {
            node_states.push(x.clone());
        }
        for block in &self.blocks {
            (x, e) = block.forward(topo, x, e);
            if keep_states {
                node_states.push(x.clone());
            }
        }
        let outputs = self
            .config
            .reads_outputs()
            .then(|| topo.probe.output_mean(self.final_node_norm.forward(x.clone()), topo.node_segment.as_ref()));
        let embedding = match self.config.readout {
            Readout::Nodes => segment_mean(topo, self.final_node_norm.forward(x), true),
            Readout::Edges => segment_mean(topo, self.final_edge_norm.forward(e), false),
            Readout::Both => Tensor::cat(
                vec![
                    segment_mean(topo, self.final_node_norm.forward(x), true),
                    segment_mean(topo, self.final_edge_norm.forward(e), false),
                ],
                1,
            ),
        };
        let embedding = match outputs {
            Some(outputs) => Tensor::cat(vec![embedding, outputs], 1),
            None => embedding,
        };
        let output = self.head_out.forward2(silu(self.head_hidden.forward2(embedding.clone())));
        GmnOutput { output, embedding, node_states }
    }
}

/// Mean over the nodes (or edges) of each segment: `[R, B, h] -> [S * B, h]`.
fn segment_mean(topo: &BatchTopology, rows: Tensor<3>, nodes: bool) -> Tensor<2> {
    let [r, b, h] = rows.dims();
    let (segment, inv_count) = if nodes {
        (&topo.node_segment, &topo.inv_segment_nodes)
    } else {
        (&topo.edge_segment, &topo.inv_segment_edges)
    };
    match segment {
        None => rows.mean_dim(0).reshape([b, h]),
        Some(segment) => {
            let s = topo.segments;
            let sums = Tensor::<2>::zeros([s, b * h], &rows.device()).select_assign(
                0,
                segment.clone(),
                rows.reshape([r, b * h]),
                IndexingUpdateOp::Add,
            );
            (sums * inv_count.clone()).reshape([s * b, h])
        }
    }
}
