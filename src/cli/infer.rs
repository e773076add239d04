//! `gmnscope infer`: run a trained graph metanetwork on one model file: the prediction (class
//! and probabilities, or the regressed value), the graph embedding, and a summary of the node
//! features after every GMN layer (mean / std / mean L2 norm per node).

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct InferArgs {
    /// Training run directory (written by `gmnscope train`).
    #[arg(long)]
    pub gmn: PathBuf,
    /// Model file to classify / score (any format `inspect` reads, or `demo:NAME`).
    pub file: PathBuf,
    /// Print JSON (keys: prediction, probabilities, value, embedding, layers, ...).
    #[arg(long)]
    pub json: bool,
    /// flex (default) or wgpu.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Which model of the run: latest (the newest checkpoint) or best (the best validation
    /// score, `RUN/best/`).
    #[arg(long, default_value = "latest", value_parser = ["latest", "best"])]
    pub checkpoint: String,
    /// Largest GMN job in bytes (node and edge features, probe activations), checked before any
    /// tensor is built.
    #[arg(long, value_name = "BYTES", default_value_t = gmnscope::limits::GMN_BYTES.default)]
    pub max_gmn_bytes: u64,
}

#[cfg(not(feature = "burn"))]
pub fn run(_args: &InferArgs) -> anyhow::Result<()> {
    anyhow::bail!("this gmnscope was built without the `burn` feature: GMN inference is not available")
}

#[cfg(feature = "burn")]
pub fn run(args: &InferArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use gmnscope::inference;
    use gmnscope::train::{DeviceChoice, Which, device, load_run_at};

    let choice: DeviceChoice = args.device.parse().map_err(anyhow::Error::msg)?;
    let (device, _, _) = device::resolve(choice);
    let which = if args.checkpoint == "best" { Which::Best } else { Which::Latest };
    let (info, model) = load_run_at(&args.gmn, which, &device)?;
    let store = super::inspect::open_model(&args.file)?;
    let input = inference::prepare(&store, &info, args.max_gmn_bytes)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}: cannot run the GMN on it", args.file.display()))?;
    let out = inference::run(&model, &info, &device, &input).map_err(anyhow::Error::msg)?;
    let topology = &input.topology;
    let embedding = out.embedding;
    let layers: Vec<serde_json::Value> = out
        .node_states
        .iter()
        .enumerate()
        .map(|(layer, state)| {
            let s = layer_summary(state, out.nodes, out.channels);
            serde_json::json!({"layer": layer, "mean": s.0, "std": s.1, "norm": s.2})
        })
        .collect();

    let mut report = serde_json::json!({
        "file": args.file.display().to_string(),
        "run": args.gmn.display().to_string(),
        "nodes": topology.num_nodes(),
        "edges": topology.num_edges(),
        "embedding": embedding,
        "layers": layers,
    });
    match out.prediction {
        inference::Prediction::Class { class, probabilities } => {
            report["task"] = "classification".into();
            report["prediction"] = class.into();
            report["probabilities"] = probabilities.into();
        }
        inference::Prediction::Value(value) => {
            report["task"] = "regression".into();
            report["prediction"] = value.into();
            report["value"] = value.into();
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{} ({} nodes, {} edges)", args.file.display(), topology.num_nodes(), topology.num_edges());
    if let Some(p) = report["probabilities"].as_array() {
        let probs: Vec<String> =
            p.iter().enumerate().map(|(i, v)| format!("{i}: {:.3}", v.as_f64().unwrap_or(0.0))).collect();
        println!("prediction: class {} (probabilities {})", report["prediction"], probs.join(", "));
    } else {
        println!("prediction: {}", report["prediction"]);
    }
    println!(
        "embedding: {} values, L2 norm {:.4}",
        embedding.len(),
        embedding.iter().map(|v| v * v).sum::<f32>().sqrt()
    );
    println!("node features per GMN layer (layer 0 = encoder):");
    for l in report["layers"].as_array().into_iter().flatten() {
        println!(
            "  layer {}: mean {:+.4}  std {:.4}  mean node norm {:.4}",
            l["layer"],
            l["mean"].as_f64().unwrap_or(f64::NAN),
            l["std"].as_f64().unwrap_or(f64::NAN),
            l["norm"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

/// Mean, standard deviation and mean per-node L2 norm of `n` nodes x `h` features.
#[cfg(feature = "burn")]
fn layer_summary(values: &[f32], n: usize, h: usize) -> (f64, f64, f64) {
    let count = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / count;
    let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / count;
    let norm =
        values.chunks(h.max(1)).map(|row| row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()).sum::<f64>()
            / n.max(1) as f64;
    (mean, var.sqrt(), norm)
}
