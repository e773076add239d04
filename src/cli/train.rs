//! `gmnscope train`: train a graph metanetwork on a zoo (classification for INR zoos, regression
//! for CNN zoos), with progress on the terminal, metrics in `RUN/metrics.jsonl` and the model in
//! `RUN/` (see `train::checkpoint` for the layout).

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Zoo directory (gmnscope INR zoo, DWSNets / NFN INRs, or the Small CNN Zoo).
    #[arg(long)]
    pub zoo: PathBuf,
    /// Run directory to create (or continue with --resume).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// auto (wgpu on a hardware GPU, else cpu), cpu (the fused CPU engine; burn-flex for zoos of
    /// mixed architectures), flex (burn-flex autodiff) or wgpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Linear warm-up steps (capped at a tenth of the run).
    #[arg(long, default_value_t = 1000)]
    pub warmup: u64,
    /// Learning rate after the warm-up: constant or cosine (decay to zero).
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Global gradient-norm clipping (0 = off).
    #[arg(long, default_value_t = 10.0)]
    pub clip: f64,
    /// Data-parallel worker threads (0 = one per core, at most 4).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// nodes, edges or both.
    #[arg(long, default_value = "both")]
    pub readout: String,
    /// GMN block: edge-mpnn (mean aggregation; the fused CPU engine runs it) or pna (mean, std,
    /// max and min with degree scaling, as neural-graphs; runs on burn).
    #[arg(long, default_value = "edge-mpnn", value_parser = ["edge-mpnn", "pna"])]
    pub model: String,
    /// Message directions: both (every edge also reversed, reversed edges tagged), both-untagged
    /// (reversed without a tag) or forward (the input network's direction only).
    #[arg(long, default_value = "both", value_parser = ["both", "both-untagged", "forward"])]
    pub messages: String,
    /// Weight input: class (standardised per layer and edge type, weights and biases separately,
    /// with training-split statistics) or layer (the older per-layer 1/std scale).
    #[arg(long, default_value = "class", value_parser = ["class", "layer"])]
    pub input_norm: String,
    /// Every neuron also gets its own (standardised) bias as a node feature.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub bias_features: String,
    /// Sign-canonicalise every network first (each hidden neuron's bias made >= 0 by negating
    /// its weights; a SIREN computes the same function): the GMN is then exactly invariant to
    /// the sign flips of odd activations. For zoos of odd-activation networks (SIRENs) only.
    #[arg(long, default_value = "off", value_parser = ["on", "off"])]
    pub canonical_signs: String,
    /// How a weight (and a bias node feature) enters the GMN: linear (a learned row times the
    /// standardised value) or fourier (64 random Fourier features at sigma 3, then a learned
    /// projection).
    #[arg(long, default_value = "linear", value_parser = ["linear", "fourier"])]
    pub weight_lift: String,
    /// Augment every training batch of an INR zoo: input coordinates rotated (±45°) and shifted
    /// (±0.25) by editing the first layer (the same image moved), 1% weight dropout.
    #[arg(long, default_value = "off", value_parser = ["on", "off"])]
    pub augment: String,
    /// Read out the output neurons' mean state next to the global means.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub output_readout: String,
    /// Probe features on INR zoos (an ablation: the GMN then also sees the INR's activations,
    /// for an INR the image itself at the probe points): every neuron's activations on this many
    /// fixed inputs (a square number gives a grid: 196 = 14 x 14) become node features; 0 = off,
    /// the weights-only GMN.
    #[arg(long, default_value_t = 0)]
    pub probe: usize,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Also checkpoint every N steps (0 = at the end of each epoch only).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Largest training step in bytes (a batch of the zoo's largest network: node and edge
    /// features, probe activations), checked before training starts.
    #[arg(long, value_name = "BYTES", default_value_t = gmnscope::limits::GMN_BYTES.default)]
    pub max_gmn_bytes: u64,
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
    use gmnscope::models::Readout;
    use gmnscope::train::{self, GraphSet, Task, TrainConfig, TrainProgress, TrainRequest};

    let readout = match args.readout.as_str() {
        "nodes" => Readout::Nodes,
        "edges" => Readout::Edges,
        "both" => Readout::Both,
        other => anyhow::bail!("--readout must be nodes, edges or both, got '{other}'"),
    };
    let config = TrainConfig {
        hidden: args.hidden,
        layers: args.layers,
        readout,
        undirected: args.messages != "forward",
        direction_tag: args.messages == "both",
        standardize: args.input_norm == "class",
        output_readout: args.output_readout == "on",
        aggregation: args.model.parse().map_err(anyhow::Error::msg)?,
        bias_features: args.bias_features == "on",
        canonical_signs: args.canonical_signs == "on",
        weight_lift: args.weight_lift.parse().map_err(anyhow::Error::msg)?,
        augment: args.augment == "on",
        epochs: args.epochs,
        batch_size: args.batch,
        lr: args.lr,
        weight_decay: args.weight_decay,
        warmup_steps: args.warmup,
        grad_clip: args.clip,
        schedule: args.schedule.parse().map_err(anyhow::Error::msg)?,
        seed: args.seed,
        probe_points: args.probe,
        device: args.device.parse().map_err(anyhow::Error::msg)?,
        workers: args.workers,
        checkpoint_every: args.checkpoint_every,
        log_every: 10,
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
