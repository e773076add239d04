//! Training settings: [`TrainConfig`] is what a job runs with, checked by
//! [`TrainConfig::validate`] before the job starts (a panel or the CLI edits raw values; only a
//! validated config reaches the worker).

use serde::{Deserialize, Serialize};

use crate::models::{GmnConfig, Readout};

/// Where tensors live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// wgpu when a hardware GPU adapter exists, otherwise the fused CPU engine (burn-flex where
    /// that engine does not apply: zoos of mixed architectures).
    #[default]
    Auto,
    /// burn-flex, pure-Rust CPU: deterministic, the reference for numbers.
    Flex,
    /// The fused CPU engine (`train::fused`): the same model and optimizer as Flex, the forward
    /// and backward passes hand-written; deterministic too, and several times faster.
    Cpu,
    /// wgpu on the default adapter (never for numeric checks on a software adapter).
    #[value(alias = "gpu")]
    Wgpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "flex" => Ok(DeviceChoice::Flex),
            "cpu" => Ok(DeviceChoice::Cpu),
            "wgpu" | "gpu" => Ok(DeviceChoice::Wgpu),
            _ => Err(format!("unknown device '{s}' (expected auto, cpu, flex or wgpu)")),
        }
    }
}

/// Learning rate after the warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The default: the learning rate stays at its peak (neural-graphs' recipe; a cosine decay
    /// to zero ends short runs before the GMN leaves its plateau).
    #[default]
    Constant,
    /// Cosine decay to zero at the last step.
    Cosine,
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(Schedule::Constant),
            "cosine" => Ok(Schedule::Cosine),
            _ => Err(format!("unknown schedule '{s}' (expected constant or cosine)")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub hidden: usize,
    pub layers: usize,
    pub readout: Readout,
    /// Messages flow both ways along every edge (the reversed copy reads the same weight).
    pub undirected: bool,
    /// With `undirected`: reversed edges get their own type embeddings (`GmnConfig::direction_tag`).
    pub direction_tag: bool,
    /// Standardise the weight input per edge class (weights and biases of each layer
    /// separately) with training-split statistics; off = the older per-layer `1 / std` scale.
    pub standardize: bool,
    /// Read out the output neurons' mean state next to the global means (`GmnConfig::output_readout`).
    pub output_readout: bool,
    /// Message aggregation: the EdgeMPNN's mean or PNA (`GmnConfig::aggregation`).
    pub aggregation: crate::models::Aggregation,
    /// Biases as node features as well (`GmnConfig::bias_features`).
    pub bias_features: bool,
    /// Sign-canonicalise the networks first (`GmnConfig::canonical_signs`; odd activations only).
    pub canonical_signs: bool,
    /// How weights and bias features enter the GMN (`GmnConfig::weight_lift`).
    pub weight_lift: crate::models::WeightLift,
    /// Augment every training batch (`train::augment`: rotated and shifted input coordinates,
    /// weight dropout; INR zoos only).
    pub augment: bool,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Linear warm-up from 0 to `lr` over this many steps (capped at a tenth of the run).
    pub warmup_steps: u64,
    pub schedule: Schedule,
    /// Global gradient-norm clipping threshold (0 = off).
    pub grad_clip: f64,
    pub seed: u64,
    /// Probe points for probe features on INR zoos (0 = off; see `models::probe`).
    pub probe_points: usize,
    pub device: DeviceChoice,
    /// Data-parallel worker threads per step (0 = one per core, at most 4). Each runs its share
    /// of the batch on its own copy of the model; gradients are summed in a fixed order, so runs
    /// stay repeatable for a given worker count.
    pub workers: usize,
    /// Also checkpoint every this many steps (0 = only at the end of each epoch).
    pub checkpoint_every: u64,
    /// Append a step line to `metrics.jsonl` every this many steps (0 = epochs only).
    pub log_every: u64,
}

/// The one place training defaults live: the **weights-only recipe** that `gmnscope train` runs
/// with no flags (the CLI's defaults are read from here, the app's form starts from
/// [`TrainConfig::demo`], the study from its config file). Chosen by measurement on MNIST INRs
/// (README, "The GMN"): PNA aggregation, 3 blocks, batch 32, lr 2e-3 after a 200-step warm-up,
/// then constant.
impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            layers: 3,
            readout: Readout::Both,
            undirected: true,
            direction_tag: true,
            standardize: true,
            output_readout: true,
            aggregation: crate::models::Aggregation::Pna,
            bias_features: true,
            canonical_signs: false,
            weight_lift: crate::models::WeightLift::Linear,
            augment: false,
            epochs: 10,
            batch_size: 32,
            lr: 2e-3,
            weight_decay: 5e-4,
            warmup_steps: 200,
            schedule: Schedule::Constant,
            grad_clip: 10.0,
            seed: 0,
            probe_points: 0,
            device: DeviceChoice::Auto,
            workers: 0,
            checkpoint_every: 0,
            log_every: 10,
        }
    }
}

impl TrainConfig {
    /// The app's preset for the embedded demo zoo (64 procedural-digit INRs): a small, fast GMN
    /// on the fused CPU engine with no warm-up (a 10-epoch demo run has ~40 steps).
    pub fn demo() -> Self {
        Self {
            hidden: 32,
            batch_size: 16,
            lr: 3e-3,
            warmup_steps: 0,
            // The demo preset as it was before PNA became `train`'s default (the app's demo run is unchanged).
            aggregation: crate::models::Aggregation::Mean,
            device: DeviceChoice::Cpu,
            log_every: 0,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 || self.epochs > 100_000 {
            return Err(format!("epochs must be in 1..=100000, got {}", self.epochs));
        }
        if self.batch_size == 0 || self.batch_size > 65_536 {
            return Err(format!("batch size must be in 1..=65536, got {}", self.batch_size));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("the learning rate must be positive and finite, got {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("weight decay must be >= 0, got {}", self.weight_decay));
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return Err(format!("gradient clipping must be >= 0, got {}", self.grad_clip));
        }
        if self.probe_points > 4096 {
            return Err(format!("at most 4096 probe points, got {}", self.probe_points));
        }
        if self.workers > 64 {
            return Err(format!("at most 64 workers, got {}", self.workers));
        }
        self.gmn(2).validate()
    }

    /// The model shape for `outputs` outputs (weight scales and seed filled in by the trainer).
    pub fn gmn(&self, outputs: usize) -> GmnConfig {
        GmnConfig {
            hidden: self.hidden,
            layers: self.layers,
            readout: self.readout,
            undirected: self.undirected,
            outputs,
            weight_scales: Vec::new(),
            seed: self.seed,
            probe: None,
            edge_norm: Vec::new(),
            output_readout: self.output_readout,
            direction_tag: self.undirected && self.direction_tag,
            aggregation: self.aggregation,
            bias_features: self.bias_features,
            canonical_signs: self.canonical_signs,
            weight_lift: self.weight_lift,
        }
    }

    /// Worker threads to use for a batch of `batch` graphs.
    pub fn worker_count(&self, batch: usize) -> usize {
        let wanted = if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
        } else {
            self.workers
        };
        wanted.clamp(1, batch.max(1))
    }
}
