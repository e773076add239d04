//! `gmnscope study --config STUDY.toml|demo --out DIR`: the GMN-vs-MLP-vs-CNN seed study
//! (see `gmnscope::study`), headless, with one progress line per event (elapsed time first).
//! Rerunning the same command resumes an interrupted study and reuses every finished piece.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct StudyArgs {
    /// Study config (TOML), or `demo` for the embedded demo study.
    #[arg(long)]
    pub config: String,
    /// Output directory (created; an existing study there is resumed).
    #[arg(long)]
    pub out: PathBuf,
    /// IDX directory to use instead of the config's `[data] dir` (for configs with source = "idx").
    #[arg(long)]
    pub data: Option<PathBuf>,
}

#[cfg(not(feature = "burn"))]
pub fn run(_args: &StudyArgs) -> anyhow::Result<()> {
    anyhow::bail!("study needs the burn feature; this gmnscope was built without it (build with default features)")
}

#[cfg(feature = "burn")]
pub fn run(args: &StudyArgs) -> anyhow::Result<()> {
    use gmnscope::study::{self, StudyConfig};

    let mut config = StudyConfig::load(&args.config).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(dir) = &args.data {
        if config.data.source != "idx" {
            anyhow::bail!(
                "--data applies to configs with [data] source = \"idx\"; '{}' uses {}",
                args.config,
                config.data.source
            );
        }
        config.data.dir = Some(dir.clone());
    }
    let started = std::time::Instant::now();
    eprintln!("study '{}' ({} seeds per family) -> {}", config.name, config.seeds.len(), args.out.display());
    let mut progress = |line: &str| eprintln!("[{:>7.1} s] {line}", started.elapsed().as_secs_f64());
    let results = study::run(&config, &args.out, &mut progress)?;
    for (family, seeds) in &results.accuracy {
        let values: Vec<String> = seeds.iter().map(|(s, a)| format!("seed {s}: {a:.3}")).collect();
        println!("accuracy {family}: {}", values.join(", "));
    }
    for (family, s) in &results.cka.families {
        if let Some(o) = &s.overall {
            println!("same-layer cross-seed CKA {family}: mean {:.3} (std {:.3})", o.mean, o.std);
        }
    }
    for (pair, s) in &results.cka.pairs {
        if let (Some(mean), Some(max)) = (s.mean, s.max) {
            println!("CKA {pair}: mean {mean:.3}, max {max:.3}");
        }
    }
    let a = &results.agreement;
    println!(
        "agreement over {} probe samples: all {}, none {}, GMN only {}, MLP only {}, CNN only {}, two families {}",
        a.total, a.all, a.none, a.gmn_only, a.mlp_only, a.cnn_only, a.two_families
    );
    println!("results: {} ({:.1} s)", args.out.join("results.json").display(), started.elapsed().as_secs_f64());
    Ok(())
}
