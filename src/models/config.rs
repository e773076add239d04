//! GMN hyper-parameters: what a run saves next to its weights (`RUN/config.json`) and what
//! [`super::Gmn::new`] builds from.

use serde::{Deserialize, Serialize};

/// How a block aggregates the messages arriving at a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregation {
    /// The mean (the EdgeMPNN of papers.md §3).
    #[default]
    #[value(name = "edge-mpnn", alias = "mean")]
    Mean,
    /// PNA (Corso et al. 2020, as neural-graphs uses it): mean, standard deviation, maximum
    /// and minimum, each also scaled by `log(d + 1) / delta` (the amplification scaler; `d` the
    /// in-degree, `delta` its mean over the graph's nodes). Mean alone averages away what makes
    /// a network's weights differ from another's; spread and extremes keep it.
    Pna,
}

impl Aggregation {
    /// Number of `h`-wide aggregates the message projection reads.
    pub fn width(self) -> usize {
        match self {
            Aggregation::Mean => 1,
            Aggregation::Pna => 8,
        }
    }
}

impl std::str::FromStr for Aggregation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "edge-mpnn" | "mean" => Ok(Aggregation::Mean),
            "pna" => Ok(Aggregation::Pna),
            other => Err(format!("unknown GMN model '{other}' (edge-mpnn or pna)")),
        }
    }
}

/// What the graph-level embedding is read out from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
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

/// How a scalar input (an edge's standardised weight, a neuron's standardised bias) becomes an
/// `h`-vector.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WeightLift {
    /// `s * w_row + b`: a rank-1 term (runs before this option existed).
    #[default]
    Linear,
    /// Random Fourier features (Tancik et al. 2020; neural-graphs' `sin_emb`): `Linear(2k, h)` of
    /// `[cos(2 pi f_i s), sin(2 pi f_i s)]` with `k` fixed frequencies `f_i ~ N(0, sigma^2)` drawn
    /// from the model's seed. A linear term can only move an edge's state along one direction;
    /// a SIREN's function depends on its weights through `sin(30 (W x + b))`, so a small change
    /// of one weight can matter as much as a large one, and the lift has to be able to say so.
    Fourier { frequencies: usize, sigma: f32 },
}

impl WeightLift {
    /// The recommended lift: 64 frequencies at sigma 3 (neural-graphs uses sigma 3).
    pub const FOURIER: WeightLift = WeightLift::Fourier { frequencies: 64, sigma: 3.0 };

    /// Width of the lifted input (the rows of the lift's weight matrix).
    pub fn width(self) -> usize {
        match self {
            WeightLift::Linear => 1,
            WeightLift::Fourier { frequencies, .. } => 2 * frequencies,
        }
    }

    /// The angular frequencies `2 pi f_i` of a model with `seed` (empty for `Linear`): a pure
    /// function of the seed, so a saved run needs to store nothing but its config.
    pub fn angular_frequencies(self, seed: u64) -> Vec<f32> {
        match self {
            WeightLift::Linear => Vec::new(),
            WeightLift::Fourier { frequencies, sigma } => {
                let mut rng = crate::rng::SplitMix64::new(seed ^ 0x7266_665f_6c69_6674);
                (0..frequencies).map(|_| std::f32::consts::TAU * sigma * rng.normal()).collect()
            }
        }
    }

    /// `out[..width]` = the lifted value of `s` for the frequencies `omega`
    /// ([`Self::angular_frequencies`]): `[s]` for `Linear`, `[cos(omega s).., sin(omega s)..]`.
    pub fn features(omega: &[f32], s: f32, out: &mut [f32]) {
        if omega.is_empty() {
            out[0] = s;
            return;
        }
        let (cos, sin) = out.split_at_mut(omega.len());
        for ((c, si), w) in cos.iter_mut().zip(sin.iter_mut()).zip(omega) {
            let (sv, cv) = (w * s).sin_cos();
            *c = cv;
            *si = sv;
        }
    }
}

impl std::str::FromStr for WeightLift {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linear" => Ok(WeightLift::Linear),
            "fourier" => Ok(WeightLift::FOURIER),
            other => Err(format!("unknown weight lift '{other}' (linear or fourier)")),
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
    /// Standardisation of the weight input per edge class (layer index, edge type): weights
    /// and biases of a layer each get `(w - mean) / std` with statistics of the training split.
    /// When non-empty it replaces `weight_scales` (runs before it existed used those).
    pub edge_norm: Vec<EdgeNorm>,
    /// Also read out the output neurons' mean final state (always on with probe features): the
    /// output neurons are where an MLP's or INR's function is read, and a mean over every node
    /// and edge gives them a ~1% share.
    pub output_readout: bool,
    /// With `undirected`: reversed edges get their own type embeddings (a direction tag), so a
    /// message knows whether it flows with or against the input network's forward pass.
    pub direction_tag: bool,
    /// Message aggregation of every block (`--model edge-mpnn|pna`).
    pub aggregation: Aggregation,
    /// Every neuron also gets its own (standardised) bias as a node feature, `value x row`
    /// (neural-graphs' node features). The bias nodes stay in the graph (the GMN rules); this
    /// lets a neuron's state differ from its layer's from the first block on, instead of
    /// reaching it as one message in a mean over all its neighbours.
    pub bias_features: bool,
    /// Inputs are sign-canonicalised first (`models::canonical`): every hidden neuron's bias is
    /// made >= 0 by negating the neuron's weights, which leaves an odd-activation network's
    /// (a SIREN's) function unchanged. The GMN is then exactly invariant to these sign flips.
    /// Only for networks with odd activations.
    pub canonical_signs: bool,
    /// How weights and bias node features enter (`--weight-lift`).
    pub weight_lift: WeightLift,
}

/// Standardisation statistics of one edge class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeNorm {
    pub layer: i64,
    pub edge_type: i64,
    pub mean: f32,
    pub std: f32,
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
            edge_norm: Vec::new(),
            output_readout: false,
            direction_tag: false,
            aggregation: Aggregation::Mean,
            bias_features: false,
            canonical_signs: false,
            weight_lift: WeightLift::Linear,
        }
    }
}

/// Largest node / edge type number the embedding tables hold (graph::NodeType / EdgeType use
/// 0..=16 and 0..=13); anything larger shares the last row.
pub const NODE_TYPES: usize = 17;
pub const EDGE_TYPES: usize = 14;

/// A reversed edge of an undirected topology carries its type plus this offset
/// (`Topology::from_graph`); [`GmnConfig::edge_type_row`] maps it to a table row.
pub const REVERSED: i64 = EDGE_TYPES as i64;

impl GmnConfig {
    /// Checks the sizes before any tensor is allocated.
    /// The weight column as this GMN takes it: sign-canonicalised when the GMN was trained so
    /// (borrowed otherwise). Every place that feeds a network to a trained GMN goes through here.
    pub fn input_weights<'w>(&self, topology: &super::Topology, weights: &'w [f32]) -> std::borrow::Cow<'w, [f32]> {
        if !self.canonical_signs {
            return std::borrow::Cow::Borrowed(weights);
        }
        let mut owned = weights.to_vec();
        super::canonical::canonicalise_signs(topology, &mut owned);
        std::borrow::Cow::Owned(owned)
    }

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
        if let WeightLift::Fourier { frequencies, sigma } = self.weight_lift
            && !((1..=1024).contains(&frequencies) && sigma.is_finite() && sigma > 0.0 && sigma <= 1e3)
        {
            return Err(format!(
                "the Fourier weight lift needs 1..=1024 frequencies and a sigma in (0, 1000], got {frequencies} and {sigma}"
            ));
        }
        if let Some(s) = self.weight_scales.iter().find(|s| !s.is_finite() || **s <= 0.0) {
            return Err(format!("weight scales must be finite and positive, got {s}"));
        }
        if let Some(n) = self.edge_norm.iter().find(|n| !n.mean.is_finite() || !n.std.is_finite() || n.std <= 0.0) {
            return Err(format!(
                "edge class (layer {}, type {}) has an invalid standardisation (mean {}, std {})",
                n.layer, n.edge_type, n.mean, n.std
            ));
        }
        Ok(())
    }

    /// Rows of the edge type table: doubled when reversed edges are tagged.
    pub fn edge_type_rows(&self) -> usize {
        if self.undirected && self.direction_tag { 2 * EDGE_TYPES } else { EDGE_TYPES }
    }

    /// The table row of an edge of (topology) type `edge_type`: reversed edges (type +
    /// [`REVERSED`]) share their forward type's row unless tagged.
    pub fn edge_type_row(&self, edge_type: i64) -> usize {
        let reversed = edge_type >= REVERSED;
        let base = if reversed { edge_type - REVERSED } else { edge_type }.clamp(0, EDGE_TYPES as i64 - 1) as usize;
        if reversed && self.edge_type_rows() > EDGE_TYPES { base + EDGE_TYPES } else { base }
    }

    /// `(scale, shift)` of the weight input of an edge at `layer_index` with (topology) type
    /// `edge_type`: the encoder sees `scale * w + shift`. A per-class constant, so it keeps the
    /// permutation symmetry.
    pub fn edge_affine(&self, layer_index: i64, edge_type: i64) -> (f32, f32) {
        if self.edge_norm.is_empty() {
            return (self.weight_scale(layer_index), 0.0);
        }
        let base = if edge_type >= REVERSED { edge_type - REVERSED } else { edge_type };
        match self.edge_norm.iter().find(|n| n.layer == layer_index && n.edge_type == base) {
            Some(n) => (1.0 / n.std, -n.mean / n.std),
            None => (1.0, 0.0),
        }
    }

    /// Number of weight layers (edge layer indices) of the networks the GMN was trained on, from
    /// its input statistics; 0 when unknown.
    pub fn trained_weight_layers(&self) -> usize {
        let from_norm = self.edge_norm.iter().map(|n| n.layer.max(-1) + 1).max().unwrap_or(0).max(0) as usize;
        from_norm.max(self.weight_scales.len())
    }

    /// Whether the embedding holds the output neurons' mean state.
    pub fn reads_outputs(&self) -> bool {
        self.output_readout || self.probe.is_some()
    }

    /// Width of the graph embedding the head reads.
    pub fn embedding_width(&self) -> usize {
        self.readout.width(self.hidden) + if self.reads_outputs() { self.hidden } else { 0 }
    }

    /// The scale for edges at `layer_index`.
    pub fn weight_scale(&self, layer_index: i64) -> f32 {
        usize::try_from(layer_index).ok().and_then(|l| self.weight_scales.get(l)).copied().unwrap_or(1.0)
    }
}
