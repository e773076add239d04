//! `gmnscope retrieve --gmn RUN --zoo ZOO FILE [-k K] [--json]`: the networks of a zoo nearest to
//! a model by their GMN embedding (`retrieval`); the zoo's embedding is cached in `RUN/embeddings/`.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RetrieveArgs {
    /// Training run directory (written by `gmnscope train`).
    #[arg(long)]
    pub gmn: PathBuf,
    /// The zoo to search (any zoo `train` reads).
    #[arg(long)]
    pub zoo: PathBuf,
    /// The query model file (any format `inspect` reads, or `demo:NAME`).
    pub file: PathBuf,
    /// How many networks to list.
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,
    /// Which model of the run: latest or best (`RUN/best/`).
    #[arg(long, default_value = "latest", value_parser = ["latest", "best"])]
    pub checkpoint: String,
    /// Print JSON: `{"query", "run", "zoo", "cached", "hits": [{rank, index, id, file, target, distance}]}`.
    #[arg(long)]
    pub json: bool,
}

#[cfg(not(feature = "burn"))]
pub fn run(_args: &RetrieveArgs) -> anyhow::Result<()> {
    anyhow::bail!("this gmnscope was built without the `burn` feature: GMN retrieval is not available")
}

#[cfg(feature = "burn")]
pub fn run(args: &RetrieveArgs) -> anyhow::Result<()> {
    use std::io::Write as _;

    use anyhow::Context as _;
    use gmnscope::train::{DeviceChoice, Which, checkpoint, device, load_run_at};
    use gmnscope::{inference, retrieval};

    let (device, _, _) = device::resolve(DeviceChoice::Flex);
    let which = if args.checkpoint == "best" { Which::Best } else { Which::Latest };
    let (info, model) = load_run_at(&args.gmn, which, &device)?;
    let checkpoint_dir = match which {
        Which::Best => checkpoint::best(&args.gmn),
        Which::Latest => checkpoint::latest(&args.gmn)?,
    }
    .unwrap_or_else(|| args.gmn.clone());

    let store = super::inspect::open_model(&args.file)?;
    let input = inference::prepare(&store, &info, gmnscope::limits::GMN_BYTES.default)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}: cannot run the GMN on it", args.file.display()))?;
    let query = inference::run(&model, &info, &device, &input).map_err(anyhow::Error::msg)?.embedding;

    let mut stderr = std::io::stderr();
    let (zoo, cached) =
        retrieval::cached_embed_zoo(&model, &info, &device, &args.gmn, &checkpoint_dir, &args.zoo, &mut |done, n| {
            write!(stderr, "\rembedding the zoo: {done}/{n} networks").ok();
        })
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}", args.zoo.display()))?;
    if !cached {
        eprintln!();
    }
    let hits = retrieval::nearest(&zoo, &query, args.k).map_err(anyhow::Error::msg)?;
    if args.json {
        let report = serde_json::json!({
            "query": args.file.display().to_string(),
            "run": args.gmn.display().to_string(),
            "zoo": args.zoo.display().to_string(),
            "cached": cached,
            "hits": hits,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} nearest of {} networks in {} to {} (GMN embedding, Euclidean):",
        hits.len(),
        zoo.len(),
        args.zoo.display(),
        args.file.display()
    );
    println!("{:>4}  {:>10}  {:>8}  network", "rank", "distance", "target");
    for h in &hits {
        let file = h.file.as_ref().map(|f| format!("  ({})", f.display())).unwrap_or_default();
        println!(
            "{:>4}  {:>10.6}  {:>8}  {}{file}",
            h.rank,
            h.distance,
            format!("{}", h.target),
            gmnscope::text::shown(&h.id)
        );
    }
    Ok(())
}
