//! `gmnscope fit-inrs (--images DIR | --demo) --count N --out ZOO [--steps S] [--seed S]
//! [--batch B] [--device flex|wgpu]`: fits a zoo of SIREN INRs (see `gmnscope::inr`), with a
//! progress line on the terminal and a summary at the end. Re-running with the same arguments
//! resumes an interrupted zoo.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct FitInrsArgs {
    /// Folder with IDX files (images-idx3-ubyte[.gz] + labels-idx1-ubyte[.gz], or the classic
    /// train-/t10k- names).
    #[arg(long, conflicts_with = "demo", required_unless_present = "demo")]
    pub images: Option<PathBuf>,
    /// Use the built-in procedural digit images instead of files.
    #[arg(long)]
    pub demo: bool,
    /// Number of INRs in the zoo.
    #[arg(long)]
    pub count: usize,
    /// Zoo directory to write (created; an existing zoo is resumed).
    #[arg(long)]
    pub out: PathBuf,
    /// Initialisation and schedule: dwsnets (DWSNets' fitting code, the literature's MNIST and
    /// Fashion-MNIST zoos: lr 5e-4, 1,000 steps) or siren (Sitzmann et al.: lr 1e-4, 500 steps).
    #[arg(long, default_value = "dwsnets", value_parser = ["dwsnets", "siren"])]
    pub recipe: String,
    /// Maximum optimisation steps per INR (default: the recipe's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of the initial weights, the image choice and the train/val/test split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// INRs fitted together as one batched model.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Compute engine: cpu (hand-fused kernels on every core, the fast CPU choice), or burn on
    /// flex (CPU) or wgpu (GPU).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "flex", "wgpu"])]
    pub device: String,
    /// Adam learning rate (default: the recipe's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Stop an INR once its PSNR reaches this many dB (0 = always run all steps).
    #[arg(long, default_value_t = 40.0)]
    pub target_psnr: f64,
    /// Start every INR from the same initial weights (drawn from --seed) instead of one draw
    /// per image: the weights of similar images stay similar (an easier, aligned zoo).
    #[arg(long)]
    pub shared_init: bool,
}

#[cfg(not(feature = "burn"))]
pub fn run(_args: &FitInrsArgs) -> anyhow::Result<()> {
    anyhow::bail!("fit-inrs needs the burn feature; this gmnscope was built without it (build with default features)")
}

#[cfg(feature = "burn")]
pub fn run(args: &FitInrsArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::time::Instant;

    use anyhow::Context as _;
    use gmnscope::data::{ImageSet, procedural};
    use gmnscope::inr::{FitConfig, FitEngine, ZooFitConfig, ZooFitEvent, fit_zoo};

    let images = match (&args.images, args.demo) {
        (Some(dir), _) => ImageSet::open_dir_first(dir, Some(args.count))?,
        (None, true) => procedural::generate(args.count, args.seed),
        (None, false) => anyhow::bail!("give --images DIR or --demo"),
    };
    let device = match args.device.as_str() {
        "wgpu" => burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        _ => burn::tensor::Device::flex(),
    };
    let recipe: gmnscope::inr::Recipe = args.recipe.parse().map_err(anyhow::Error::msg)?;
    let (steps, lr) = (args.steps.unwrap_or(recipe.steps()), args.lr.unwrap_or(recipe.lr()));
    let config = ZooFitConfig {
        fit: FitConfig {
            steps,
            lr,
            recipe,
            seed: args.seed,
            target_psnr: (args.target_psnr > 0.0).then_some(args.target_psnr),
            shared_init: args.shared_init,
            engine: if args.device == "cpu" { FitEngine::Cpu } else { FitEngine::Burn },
            ..FitConfig::default()
        },
        count: args.count,
        batch: args.batch,
        split_seed: args.seed,
    };
    eprintln!(
        "fitting {} SIREN INRs ({}, {} images) into {} on {} (recipe {}, batch {}, <= {} steps, lr {}, stop at {})",
        args.count,
        images.source,
        images.len(),
        args.out.display(),
        args.device,
        recipe.name(),
        args.batch,
        steps,
        lr,
        config.fit.target_psnr.map_or("never".to_string(), |db| format!("{db} dB")),
    );

    let started = Instant::now();
    let mut resumed = 0usize;
    let mut fitted_this_run = 0usize;
    let mut last_batch_psnr: Option<f32> = None;
    let mut last_draw = Instant::now();
    let mut on_event = |event: &ZooFitEvent| match event {
        ZooFitEvent::Resumed { already } => {
            resumed = *already;
            eprintln!("resuming: {already} INRs are already in the zoo");
        }
        ZooFitEvent::Step { zoo_done, count, batch_size, progress, max_steps } => {
            if last_draw.elapsed().as_millis() < 250 {
                return;
            }
            last_draw = Instant::now();
            let eta = eta(started.elapsed().as_secs_f64(), fitted_this_run, count - zoo_done);
            let psnr = last_batch_psnr.map_or("--".into(), |p| format!("{p:.1} dB"));
            eprint!(
                "\r{zoo_done}/{count} INRs | batch of {batch_size}: step {}/{max_steps}, {} training, loss {:.2e} | \
                 last batch mean PSNR {psnr} | ETA {eta}   ",
                progress.step, progress.active, progress.loss
            );
            std::io::stderr().flush().ok();
        }
        ZooFitEvent::BatchWritten { zoo_done, count, batch_mean_psnr, seconds } => {
            fitted_this_run = zoo_done.saturating_sub(resumed);
            last_batch_psnr = Some(*batch_mean_psnr);
            eprint!(
                "\r{zoo_done}/{count} INRs | batch written in {seconds:.1} s, mean PSNR {batch_mean_psnr:.1} dB{:40}",
                ""
            );
            std::io::stderr().flush().ok();
        }
    };
    let cancel = gmnscope::jobs::CancelToken::new();
    let summary = fit_zoo(&images, &args.out, &config, &device, &cancel, &mut on_event)
        .with_context(|| format!("fitting INRs into {}", args.out.display()))?;
    eprintln!();
    println!(
        "zoo {}: {} INRs ({} fitted now, {} resumed) | median PSNR {:.2} dB, mean {:.2} dB | {:.1} s, {:.2} INRs/s",
        args.out.display(),
        summary.total,
        summary.fitted,
        summary.skipped,
        summary.median_psnr,
        summary.mean_psnr,
        summary.seconds,
        summary.inrs_per_second
    );
    Ok(())
}

/// `1h02m` / `3m20s` from the rate so far, or `--` before the first batch.
#[cfg(feature = "burn")]
fn eta(elapsed_secs: f64, done: usize, remaining: usize) -> String {
    if done == 0 {
        return "--".into();
    }
    let secs = (elapsed_secs / done as f64 * remaining as f64).round() as u64;
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}
