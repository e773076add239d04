//! GMN hyper-parameters: what a run saves next to its weights (`RUN/config.json`) and what
//! [`super::Gmn::new`] builds from.

use serde::{Deserialize, Serialize};

/// What the graph-level embedding is read out from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Readout {
    /// Mean over nodes.
    Nodes,
    /// Mean over edges.
    Edges,
    /// Mean over nodes and mean over edges, concatenated (the default).
    #[default]
    Both,
}

impl Readout {
    /// Width of the graph embedding for hidden size `h`.
    pub fn width(self, hidden: usize) -> usize {
        match self {
            Readout::Nodes | Readout::Edges => hidden,
            Readout::Both => 2 * hidden,
        }
    }
}

/// The GMN's shape. `outputs` is the number of classes (classification) or 1 (regression).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GmnConfig {
    pub hidden: usize,
    pub layers: usize,
    pub readout: Readout,
    /// Treat the graph as undirected: every edge is also used reversed.
    pub undirected: bool,
    pub outputs: usize,
    /// Multiplier applied to the weight of an edge with layer index `l` (`weight_scales[l]`,
    /// 1 past the end): zoo statistics put SIREN weights of every layer on a similar scale.
    /// A per-layer constant, so it does not break the permutation symmetry.
    pub weight_scales: Vec<f32>,
    /// Seed of the parameter initialisation.
    pub seed: u64,
    /// Probe features (every neuron's activations on fixed inputs) as extra node features;
    /// `None` = off. See `models::probe`.
    pub probe: Option<super::probe::ProbeConfig>,
}

impl Default for GmnConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            layers: 4,
            readout: Readout::Both,
            undirected: false,
            outputs: 10,
            weight_scales: Vec::new(),
            seed: 0,
            probe: None,
        }
    }
}

/// Largest node / edge type number the embedding tables hold (graph::NodeType / EdgeType use
/// 0..=16 and 0..=13); anything larger shares the last row.
pub const NODE_TYPES: usize = 17;
pub const EDGE_TYPES: usize = 14;

impl GmnConfig {
    /// Checks the sizes before any tensor is allocated.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=4096).contains(&self.hidden) {
            return Err(format!("hidden size must be in 1..=4096, got {}", self.hidden));
        }
        if self.layers > 64 {
            return Err(format!("at most 64 GMN layers, got {}", self.layers));
        }
        if !(1..=100_000).contains(&self.outputs) {
            return Err(format!("the output size must be in 1..=100000, got {}", self.outputs));
        }
        if let Some(p) = &self.probe
            && !(1..=4096).contains(&p.points)
        {
            return Err(format!("the number of probe points must be in 1..=4096, got {}", p.points));
        }
        if let Some(s) = self.weight_scales.iter().find(|s| !s.is_finite() || **s <= 0.0) {
            return Err(format!("weight scales must be finite and positive, got {s}"));
        }
        Ok(())
    }

    /// The scale for edges at `layer_index`.
    pub fn weight_scale(&self, layer_index: i64) -> f32 {
        usize::try_from(layer_index).ok().and_then(|l| self.weight_scales.get(l)).copied().unwrap_or(1.0)
    }
}
