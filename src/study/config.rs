//! The study configuration: a TOML file (see `assets/studies/*.toml`) parsed into [`StudyConfig`].
//! Every field has a default, so a config names only what it changes; unknown keys are errors
//! (a typo must not silently fall back to a default).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The embedded `demo` study (procedural digits, a few minutes on two CPU cores).
pub const DEMO_TOML: &str = include_str!("../../assets/studies/demo.toml");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudyConfig {
    pub name: String,
    pub data: DataConfig,
    pub inr: InrConfig,
    /// Seeds of every family's runs (GMN, MLP and CNN run `seeds[i]` each).
    pub seeds: Vec<u64>,
    /// At most this many test samples form the probe set (all of them when 0).
    pub probe: usize,
    pub cka: CkaConfig,
    pub gmn: GmnStudyConfig,
    pub mlp: MlpConfig,
    pub cnn: CnnConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `procedural` (built-in digits) or `idx` (an MNIST-style IDX directory in `dir`).
    pub source: String,
    /// IDX directory (relative paths are relative to the config file's directory).
    pub dir: Option<PathBuf>,
    /// Images used (the first `count` of a seeded permutation; split 80/10/10 per class).
    pub count: usize,
    /// Seed of the image set (procedural), the image order and the split.
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InrConfig {
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    /// Early stop in dB (0 = never).
    pub target_psnr: f64,
    /// Every INR starts from the same initial weights (see `inr::FitConfig::shared_init`).
    pub shared_init: bool,
    /// Initialisation recipe (see `inr::Recipe`): `dwsnets` (default) or `siren`.
    pub recipe: crate::inr::init::Recipe,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CkaConfig {
    /// `linear` (default), `debiased` (unbiased-HSIC linear CKA) or `rbf`.
    pub kernel: String,
    /// RBF bandwidth as a fraction of the median distance.
    pub sigma_frac: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GmnStudyConfig {
    pub hidden: usize,
    pub layers: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: u64,
    /// Probe points of the GMN's probe features (0 = off, the default: the paper's GMN sees
    /// weights only; probe features are an ablation in which the GMN also sees the INR's
    /// activations, for an INR the image rendered at the probe points; see `models::probe`).
    pub probe_points: usize,
    /// The blocks' aggregation: `mean` (the EdgeMPNN, what the README's study results were
    /// measured with) or `pna` (the `train` command's default).
    pub aggregation: crate::models::Aggregation,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {
    pub hidden: Vec<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CnnConfig {
    pub channels: Vec<usize>,
    pub hidden: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            name: "study".into(),
            data: DataConfig::default(),
            inr: InrConfig::default(),
            seeds: vec![0, 1, 2],
            probe: 500,
            cka: CkaConfig::default(),
            gmn: GmnStudyConfig::default(),
            mlp: MlpConfig::default(),
            cnn: CnnConfig::default(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self { source: "procedural".into(), dir: None, count: 600, seed: 0 }
    }
}

impl Default for InrConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch: 256,
            lr: 5e-4,
            target_psnr: 40.0,
            shared_init: false,
            recipe: crate::inr::init::Recipe::Dwsnets,
        }
    }
}

impl Default for CkaConfig {
    fn default() -> Self {
        Self { kernel: "linear".into(), sigma_frac: crate::cka::Kernel::DEFAULT_SIGMA_FRAC }
    }
}

impl Default for GmnStudyConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            layers: 3,
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
            warmup_steps: 50,
            probe_points: 0,
            aggregation: crate::models::Aggregation::Mean,
        }
    }
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self { hidden: crate::models::image::MLP_HIDDEN.to_vec(), epochs: 5, batch_size: 32, lr: 1e-3 }
    }
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            channels: crate::models::image::CNN_CHANNELS.to_vec(),
            hidden: crate::models::image::CNN_HIDDEN,
            epochs: 5,
            batch_size: 32,
            lr: 1e-3,
        }
    }
}

impl StudyConfig {
    /// Parses TOML text; `origin` names the file in errors and anchors relative IDX paths.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, String> {
        let mut config: StudyConfig =
            toml::from_str(text).map_err(|e| format!("{}: not a valid study config: {e}", origin.display()))?;
        if let Some(dir) = &config.data.dir
            && dir.is_relative()
            && let Some(parent) = origin.parent()
        {
            config.data.dir = Some(parent.join(dir));
        }
        config.validate().map_err(|e| format!("{}: {e}", origin.display()))?;
        Ok(config)
    }

    /// `demo` means the embedded demo config; anything else is a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Self, String> {
        if name_or_path == "demo" {
            return Self::parse(DEMO_TOML, Path::new("demo"));
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.seeds.is_empty() {
            return Err("`seeds` is empty; give at least one (two or more for cross-seed CKA)".into());
        }
        let mut sorted = self.seeds.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.seeds.len() {
            return Err(format!("`seeds` {:?} repeats a seed", self.seeds));
        }
        match self.data.source.as_str() {
            "procedural" => {}
            "idx" if self.data.dir.is_some() => {}
            "idx" => return Err("data.source = \"idx\" needs data.dir".into()),
            other => return Err(format!("unknown data.source '{other}' (expected procedural or idx)")),
        }
        if self.data.count < 20 {
            return Err(format!("data.count = {} is too small (at least 20 images)", self.data.count));
        }
        if self.inr.steps == 0 || self.inr.batch == 0 || !(self.inr.lr.is_finite() && self.inr.lr > 0.0) {
            return Err("inr.steps, inr.batch and inr.lr must be positive".into());
        }
        match self.cka.kernel.as_str() {
            "linear" | "debiased" => {}
            "rbf" if self.cka.sigma_frac > 0.0 && self.cka.sigma_frac.is_finite() => {}
            "rbf" => return Err("cka.sigma_frac must be positive".into()),
            other => return Err(format!("unknown cka.kernel '{other}' (expected linear, debiased or rbf)")),
        }
        let positive = |what: &str, epochs: usize, batch: usize, lr: f64| {
            if epochs == 0 || batch == 0 || !(lr > 0.0 && lr.is_finite()) {
                Err(format!("{what}: epochs, batch_size and lr must be positive"))
            } else {
                Ok(())
            }
        };
        positive("gmn", self.gmn.epochs, self.gmn.batch_size, self.gmn.lr)?;
        positive("mlp", self.mlp.epochs, self.mlp.batch_size, self.mlp.lr)?;
        positive("cnn", self.cnn.epochs, self.cnn.batch_size, self.cnn.lr)?;
        if self.gmn.hidden == 0 || self.gmn.layers == 0 {
            return Err("gmn.hidden and gmn.layers must be positive".into());
        }
        Ok(())
    }

    /// The CKA estimator the config asks for.
    pub fn cka_options(&self) -> crate::cka::Options {
        match self.cka.kernel.as_str() {
            "debiased" => crate::cka::Options::debiased_linear(),
            "rbf" => crate::cka::Options::rbf(self.cka.sigma_frac),
            _ => crate::cka::Options::linear(),
        }
    }
}
