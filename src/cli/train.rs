//! `gmnscope train`: train a graph metanetwork on a zoo (classification for INR zoos, regression
//! for CNN zoos), with progress on the terminal, metrics in `RUN/metrics.jsonl` and the model in
//! `RUN/` (see `train::checkpoint` for the layout).

#[cfg(feature = "burn")]
pub use args::*;

/// Without `burn` there is no trainer: `train` still parses (any arguments) and says why it
/// cannot run.
#[cfg(not(feature = "burn"))]
#[derive(clap::Args)]
pub struct TrainArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _rest: Vec<String>,
}

#[cfg(feature = "burn")]
mod args {
    use std::path::PathBuf;

    use gmnscope::models::{Aggregation, Readout, WeightLift};
    use gmnscope::train::{DeviceChoice, Schedule, TrainConfig};

    #[derive(clap::Args)]
    pub struct TrainArgs {
        /// Zoo directory (gmnscope INR zoo, DWSNets / NFN INRs, or the Small CNN Zoo).
        #[arg(long)]
        pub zoo: PathBuf,
        /// Run directory to create (or continue with --resume).
        #[arg(long)]
        pub out: PathBuf,
        #[arg(long, default_value_t = defaults().seed)]
        pub seed: u64,
        #[arg(long, default_value_t = defaults().epochs)]
        pub epochs: usize,
        /// auto (wgpu on a hardware GPU, else cpu), cpu (the fused CPU engine; burn-flex for zoos of
        /// mixed architectures), flex (burn-flex autodiff) or wgpu.
        #[arg(long, value_enum, default_value_t = defaults().device)]
        pub device: DeviceChoice,
        #[arg(long, default_value_t = defaults().hidden)]
        pub hidden: usize,
        #[arg(long, default_value_t = defaults().layers)]
        pub layers: usize,
        #[arg(long, default_value_t = defaults().batch_size)]
        pub batch: usize,
        #[arg(long, default_value_t = defaults().lr)]
        pub lr: f64,
        #[arg(long, default_value_t = defaults().weight_decay)]
        pub weight_decay: f64,
        /// Linear warm-up steps (capped at a tenth of the run).
        #[arg(long, default_value_t = defaults().warmup_steps)]
        pub warmup: u64,
        /// Learning rate after the warm-up: constant or cosine (decay to zero).
        #[arg(long, value_enum, default_value_t = defaults().schedule)]
        pub schedule: Schedule,
        /// Global gradient-norm clipping (0 = off).
        #[arg(long, default_value_t = defaults().grad_clip)]
        pub clip: f64,
        /// Data-parallel worker threads (0 = one per core, at most 4).
        #[arg(long, default_value_t = defaults().workers)]
        pub workers: usize,
        /// What the graph embedding is read from: the mean over nodes, over edges, or both.
        #[arg(long, value_enum, default_value_t = defaults().readout)]
        pub readout: Readout,
        /// GMN block: edge-mpnn (mean aggregation) or pna (mean, std, max and min with degree
        /// scaling, as neural-graphs); the fused CPU engine and burn run both.
        #[arg(long, value_enum, default_value_t = defaults().aggregation)]
        pub model: Aggregation,
        /// Message directions: both (every edge also reversed, reversed edges tagged), both-untagged
        /// (reversed without a tag) or forward (the input network's direction only).
        #[arg(long, value_enum, default_value_t = Messages::of(&defaults()))]
        pub messages: Messages,
        /// Weight input: class (standardised per layer and edge type, weights and biases separately,
        /// with training-split statistics) or layer (the older per-layer 1/std scale).
        #[arg(long, value_enum, default_value_t = InputNorm::of(&defaults()))]
        pub input_norm: InputNorm,
        /// Every neuron also gets its own (standardised) bias as a node feature.
        #[arg(long, value_enum, default_value_t = Switch::from(defaults().bias_features))]
        pub bias_features: Switch,
        /// Sign-canonicalise every network first (each hidden neuron's bias made >= 0 by negating
        /// its weights; a SIREN computes the same function): the GMN is then exactly invariant to
        /// the sign flips of odd activations. For zoos of odd-activation networks (SIRENs) only.
        #[arg(long, value_enum, default_value_t = Switch::from(defaults().canonical_signs))]
        pub canonical_signs: Switch,
        /// How a weight (and a bias node feature) enters the GMN: linear (a learned row times the
        /// standardised value) or fourier (64 random Fourier features at sigma 3, then a learned
        /// projection).
        #[arg(long, value_enum, default_value_t = Lift::of(&defaults()))]
        pub weight_lift: Lift,
        /// Augment every training batch of an INR zoo: input coordinates rotated (±45°) and shifted
        /// (±0.25) by editing the first layer (the same image moved), 1% weight dropout.
        #[arg(long, value_enum, default_value_t = Switch::from(defaults().augment))]
        pub augment: Switch,
        /// Read out the output neurons' mean state next to the global means.
        #[arg(long, value_enum, default_value_t = Switch::from(defaults().output_readout))]
        pub output_readout: Switch,
        /// Probe features on INR zoos (an ablation: the GMN then also sees the INR's activations,
        /// for an INR the image itself at the probe points): every neuron's activations on this many
        /// fixed inputs (a square number gives a grid: 196 = 14 x 14) become node features; 0 = off,
        /// the weights-only GMN.
        #[arg(long, default_value_t = defaults().probe_points)]
        pub probe: usize,
        /// Continue the run in --out from its latest checkpoint.
        #[arg(long)]
        pub resume: bool,
        /// Also checkpoint every N steps (0 = at the end of each epoch only).
        #[arg(long, default_value_t = defaults().checkpoint_every)]
        pub checkpoint_every: u64,
        /// Largest training step in bytes (a batch of the zoo's largest network: node and edge
        /// features, probe activations), checked before training starts.
        #[arg(long, value_name = "BYTES", default_value_t = gmnscope::limits::GMN_BYTES.default)]
        pub max_gmn_bytes: u64,
    }

    /// Every default above comes from here: the recipe lives in one place, `TrainConfig::default`.
    pub(super) fn defaults() -> TrainConfig {
        TrainConfig::default()
    }

    /// `on` / `off` for boolean settings that are on by default (a bare `--flag` could not turn them off).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
    pub enum Switch {
        On,
        Off,
    }

    impl From<bool> for Switch {
        fn from(on: bool) -> Self {
            if on { Switch::On } else { Switch::Off }
        }
    }

    impl Switch {
        pub(super) fn on(self) -> bool {
            self == Switch::On
        }
    }

    /// `--messages`: `TrainConfig::undirected` and `direction_tag` as one choice.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
    pub enum Messages {
        Both,
        BothUntagged,
        Forward,
    }

    impl Messages {
        pub(super) fn of(c: &TrainConfig) -> Self {
            match (c.undirected, c.direction_tag) {
                (false, _) => Messages::Forward,
                (true, true) => Messages::Both,
                (true, false) => Messages::BothUntagged,
            }
        }
    }

    /// `--input-norm`: `TrainConfig::standardize`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
    pub enum InputNorm {
        Class,
        Layer,
    }

    impl InputNorm {
        pub(super) fn of(c: &TrainConfig) -> Self {
            if c.standardize { InputNorm::Class } else { InputNorm::Layer }
        }
    }

    /// `--weight-lift`: `TrainConfig::weight_lift` without its parameters (fixed for `fourier`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
    pub enum Lift {
        Linear,
        Fourier,
    }

    impl Lift {
        pub(super) fn of(c: &TrainConfig) -> Self {
            match c.weight_lift {
                WeightLift::Linear => Lift::Linear,
                WeightLift::Fourier { .. } => Lift::Fourier,
            }
        }
        pub(super) fn weight_lift(self) -> WeightLift {
            match self {
                Lift::Linear => WeightLift::Linear,
                Lift::Fourier => WeightLift::FOURIER,
            }
        }
    }
}

#[cfg(not(feature = "burn"))]
pub fn run(_args: &TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("this gmnscope was built without the `burn` feature: GMN training is not available")
}

#[cfg(feature = "burn")]
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::sync::Arc;

    use anyhow::Context as _;
    use gmnscope::jobs::JobEvent;
    use gmnscope::train::{self, GraphSet, Task, TrainConfig, TrainProgress, TrainRequest};

    let config = TrainConfig {
        hidden: args.hidden,
        layers: args.layers,
        readout: args.readout,
        undirected: args.messages != Messages::Forward,
        direction_tag: args.messages == Messages::Both,
        standardize: args.input_norm == InputNorm::Class,
        output_readout: args.output_readout.on(),
        aggregation: args.model,
        bias_features: args.bias_features.on(),
        canonical_signs: args.canonical_signs.on(),
        weight_lift: args.weight_lift.weight_lift(),
        augment: args.augment.on(),
        epochs: args.epochs,
        batch_size: args.batch,
        lr: args.lr,
        weight_decay: args.weight_decay,
        warmup_steps: args.warmup,
        grad_clip: args.clip,
        schedule: args.schedule,
        seed: args.seed,
        probe_points: args.probe,
        device: args.device,
        workers: args.workers,
        checkpoint_every: args.checkpoint_every,
        log_every: defaults().log_every,
    };
    config.validate().map_err(anyhow::Error::msg).context("invalid training settings")?;

    let mut stderr = std::io::stderr();
    let data = GraphSet::from_zoo(&args.zoo, config.undirected, |i, n| {
        if i == n || i % 256 == 0 {
            write!(stderr, "\rloading {i}/{n} networks").ok();
        }
    })?;
    eprintln!();
    let counts = [gmnscope::data::Split::Train, gmnscope::data::Split::Val, gmnscope::data::Split::Test]
        .map(|s| data.indices(s).len());
    let task = match data.task {
        Task::Classification { classes } => format!("classification, {classes} classes"),
        Task::Regression => "regression".to_string(),
    };
    eprintln!(
        "{}: {} networks (train {}, val {}, test {}), {task}, {} topology",
        args.zoo.display(),
        data.samples.len(),
        counts[0],
        counts[1],
        counts[2],
        if data.shared.is_some() { "one shared" } else { "mixed" }
    );

    if counts[1] == 0 {
        eprintln!(
            "warning: {}: no validation networks: no validation metrics and no best-validation model (RUN/best/)",
            args.zoo.display()
        );
    }
    if counts[0] == 0 {
        anyhow::bail!(
            "{}: no training networks (every network is in the validation or test split)",
            args.zoo.display()
        );
    }
    gmnscope::limits::check_training(&data, &config, args.max_gmn_bytes)
        .with_context(|| format!("{}", args.zoo.display()))?;
    let request = TrainRequest {
        config,
        data: Arc::new(data),
        run_dir: args.out.clone(),
        resume: args.resume,
        zoo: Some(args.zoo.clone()),
    };
    let handle = train::spawn(request).context("cannot start the training thread")?;
    let started = std::time::Instant::now();
    let result = handle.wait(|event| match event {
        JobEvent::Started { .. } => {}
        JobEvent::Progress(TrainProgress::Batch(p)) => {
            let values: Vec<String> = p.values().iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            let rate = p.step as f64 / started.elapsed().as_secs_f64().max(1e-9);
            write!(
                stderr,
                "\r{} | step {}/{} | {} | {rate:.2} steps/s   ",
                p.position(),
                p.step,
                p.total_steps,
                values.join(" ")
            )
            .ok();
        }
        JobEvent::Progress(TrainProgress::Epoch(m)) => {
            let values: Vec<String> = m.values.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            eprintln!("\repoch {}: {}", m.index, values.join("  "));
        }
        JobEvent::Progress(TrainProgress::CheckpointSaved { path, step }) => {
            tracing::info!("checkpoint at step {step}: {}", path.display());
        }
        JobEvent::Finished(_) => {}
    });
    eprintln!();
    let outcome = result.map_err(|e| anyhow::anyhow!("training stopped: {e}"))?;
    println!(
        "trained {} steps ({} epochs) on {} in {:.1} s; run in {}",
        outcome.steps,
        outcome.epochs,
        outcome.device,
        started.elapsed().as_secs_f64(),
        outcome.run_dir.display()
    );
    if let (Some(val), Some(epoch)) = (outcome.best_val, outcome.best_epoch) {
        let test = outcome.test_at_best_val.map_or("n/a".to_string(), |t| format!("{t:.4}"));
        println!("best validation score {val:.4} at epoch {epoch}; test score there {test}");
    }
    Ok(())
}
