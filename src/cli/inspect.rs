//! `gmnscope inspect FILE [--json]`: what a model file holds — format, tensors, recovered layers,
//! unrecognised tensors and the size of its parameter graph. Reads no tensor data: opening and
//! graph construction are lazy, so this is fast even for large checkpoints.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use gmnscope::arch::{self, Architecture, Unplaced};
use gmnscope::checkpoint::{self, TensorStore};
use gmnscope::compare::spectra::{self, SPECTRUM_WORK, Spectrum};
use gmnscope::graph::{self, ParamGraph};
use gmnscope::text::{shown, thousands};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Model file (.safetensors, .pt/.pth/.bin, .onnx, .npy, .npz), a sharded checkpoint's
    /// `*.index.json` or the directory holding it, or `demo:NAME` for an embedded demo model
    /// (siren, resnet, transformer).
    pub file: PathBuf,
    /// Print one JSON object instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    /// Also compute each Linear/conv layer's spectrum: singular values, stable rank and
    /// WeightWatcher's power-law alpha (reads the weights; without it inspect reads headers only).
    #[arg(long)]
    pub spectra: bool,
    /// Most multiply-adds spent on one layer's spectrum; larger layers are reported as skipped.
    #[arg(long, value_name = "N", default_value_t = SPECTRUM_WORK.default)]
    pub max_spectrum_work: u64,
}

/// A layer's spectrum, or why it has none.
#[derive(Serialize)]
#[serde(untagged)]
enum LayerSpectrum {
    Computed(Spectrum),
    Skipped { skipped: String },
}

#[derive(Serialize)]
struct LayerReport<'a> {
    kind: String,
    name: &'a str,
    description: String,
    /// Tensor name -> shape, for every tensor the layer owns (parameters and buffers).
    shapes: Vec<(&'a str, &'a [usize])>,
    parameters: usize,
    /// With `--spectra`, for Linear and conv layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    spectrum: Option<LayerSpectrum>,
}

#[derive(Serialize)]
struct GraphReport {
    nodes: Option<usize>,
    edges: Option<usize>,
    parameters: Option<usize>,
    error: Option<String>,
}

/// What share of the file's parameters the graph encodes, and what it left out.
#[derive(Serialize)]
struct Coverage {
    /// Elements of every tensor in the file.
    file: usize,
    /// Parameters the graph encodes (0 when it was not built).
    encoded: usize,
    /// Elements that are not weights: norm running statistics and fixed values (ids, masks,
    /// integer shapes, constant operands).
    non_weights: usize,
    /// Weights the graph does not encode.
    missing: usize,
    /// `encoded / (file - non_weights)`, in percent.
    percent: f64,
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    format: &'static str,
    tensors: usize,
    parameters: usize,
    layers: Vec<LayerReport<'a>>,
    unrecognized: &'a [String],
    /// Every tensor the graph does not encode, with the reason.
    unplaced: Vec<Unplaced>,
    notes: &'a [String],
    graph: GraphReport,
    coverage: Coverage,
}

/// Opens a model file, or an embedded demo model named `demo:NAME`.
pub fn open_model(file: &Path) -> anyhow::Result<TensorStore> {
    if let Some(name) = file.to_str().and_then(|s| s.strip_prefix("demo:")) {
        return Ok(gmnscope::demo::open(name)?);
    }
    Ok(checkpoint::open(file)?)
}

/// The spectrum of a Linear or conv layer (`None` for other layers).
fn layer_spectrum(kind: &arch::LayerKind, store: &TensorStore, max_work: u64) -> Option<LayerSpectrum> {
    Some(match spectra::layer_spectrum(kind, store, max_work)? {
        Ok(s) => LayerSpectrum::Computed(s),
        Err(e) => LayerSpectrum::Skipped { skipped: e.to_string() },
    })
}

fn layer_reports<'a>(store: &'a TensorStore, arch: &'a Architecture, spectra: Option<u64>) -> Vec<LayerReport<'a>> {
    arch.layers
        .iter()
        .map(|layer| {
            let shapes: Vec<(&str, &[usize])> = layer
                .tensors
                .iter()
                .filter_map(|name| store.get(name).map(|t| (name.as_str(), t.shape.as_slice())))
                .collect();
            let parameters = layer
                .kind
                .parameter_tensors()
                .iter()
                .filter_map(|name| store.get(name))
                .map(|t| t.num_elements())
                .sum();
            LayerReport {
                kind: layer.kind.name(),
                name: &layer.name,
                description: layer.kind.describe(),
                shapes,
                parameters,
                spectrum: spectra.and_then(|max| layer_spectrum(&layer.kind, store, max)),
            }
        })
        .collect()
}

fn graph_report(graph: &Result<ParamGraph, graph::Error>) -> GraphReport {
    match graph {
        Ok(g) => GraphReport {
            nodes: Some(g.num_nodes()),
            edges: Some(g.num_edges()),
            parameters: Some(g.num_parameters()),
            error: None,
        },
        Err(e) => GraphReport { nodes: None, edges: None, parameters: None, error: Some(e.to_string()) },
    }
}

fn coverage(
    store: &TensorStore,
    arch: &Architecture,
    unplaced: &[Unplaced],
    graph: &Result<ParamGraph, graph::Error>,
) -> Coverage {
    let file = store.num_parameters();
    let encoded = graph.as_ref().map_or(0, ParamGraph::num_parameters);
    let fixed: usize = unplaced.iter().filter(|u| u.non_weight).map(|u| u.parameters).sum();
    let non_weights = arch.buffer_elements(store) + fixed;
    let weights = file.saturating_sub(non_weights);
    let percent = if weights == 0 { 100.0 } else { 100.0 * encoded as f64 / weights as f64 };
    Coverage { file, encoded, non_weights, missing: weights.saturating_sub(encoded), percent }
}

pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let store = open_model(&args.file)?;
    let arch = arch::recover(&store);
    let graph = graph::build(&arch, &store);
    let unplaced = arch.unplaced(&store);
    let coverage = coverage(&store, &arch, &unplaced, &graph);
    let report = Report {
        file: store.path.display().to_string(),
        format: store.format.name(),
        tensors: store.len(),
        parameters: store.num_parameters(),
        layers: layer_reports(&store, &arch, args.spectra.then_some(args.max_spectrum_work)),
        unrecognized: &arch.unrecognized,
        unplaced,
        notes: &arch.notes,
        graph: graph_report(&graph),
        coverage,
    };
    if args.json {
        let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
        println!("{json}");
    } else {
        print_text(&report);
    }
    Ok(())
}

/// The readable summary. Every name comes from the file, so each goes through [`shown`]
/// (escaped, cut to 200 characters); `--json` keeps names exact (JSON escapes control bytes).
fn print_text(r: &Report) {
    println!("{}", shown(&r.file));
    println!("  format      {}", r.format);
    println!("  tensors     {}", thousands(r.tensors as u64));
    println!("  parameters  {}", thousands(r.parameters as u64));
    match (&r.graph.nodes, &r.graph.edges, &r.graph.error) {
        (Some(n), Some(e), _) => println!(
            "  graph       {} nodes, {} edges, {} parameters encoded",
            thousands(*n as u64),
            thousands(*e as u64),
            thousands(r.graph.parameters.unwrap_or(0) as u64)
        ),
        (_, _, Some(err)) => println!("  graph       not built: {}", gmnscope::text::shown_message(err)),
        _ => {}
    }
    let c = &r.coverage;
    println!(
        "  coverage    {:.1}% of the weights: {} of {} encoded ({} non-weight values left out, {} weights missing)",
        c.percent,
        thousands(c.encoded as u64),
        thousands(c.file.saturating_sub(c.non_weights) as u64),
        thousands(c.non_weights as u64),
        thousands(c.missing as u64)
    );
    println!();
    println!("layers ({}):", r.layers.len());
    let names: Vec<String> = r.layers.iter().map(|l| shown(l.name).to_string()).collect();
    let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(4).clamp(4, 48);
    let kind_width = r.layers.iter().map(|l| l.kind.len()).max().unwrap_or(4).max(4);
    for (i, (l, name)) in r.layers.iter().zip(&names).enumerate() {
        let shapes: Vec<String> = l
            .shapes
            .iter()
            .map(|(name, shape)| {
                // Show the tensor relative to its layer: `query.weight` reads better than `weight`.
                let short = name.strip_prefix(l.name).map(|s| s.trim_start_matches('.')).filter(|s| !s.is_empty());
                format!("{} {shape:?}", shown(short.unwrap_or(name)))
            })
            .collect();
        println!(
            "  {i:>4}  {:<kind_width$}  {:<name_width$}  {:>12}  {}",
            l.kind,
            name,
            thousands(l.parameters as u64),
            shapes.join(", ")
        );
    }
    if r.layers.iter().any(|l| l.spectrum.is_some()) {
        println!();
        println!("spectra (singular values of [out, in x kernel]; alpha: WeightWatcher's power-law fit of the ESD):");
        for (i, (l, name)) in r.layers.iter().zip(&names).enumerate() {
            match &l.spectrum {
                Some(LayerSpectrum::Computed(s)) => {
                    let alpha = s.power_law.as_ref().map_or("-".to_string(), |p| format!("{:.3}", p.alpha));
                    println!(
                        "  {i:>4}  {:<name_width$}  sigma_max {:>10.4}  stable rank {:>8.3}  alpha {alpha:>7}",
                        name,
                        s.singular_values.first().copied().unwrap_or(0.0),
                        s.stable_rank
                    );
                }
                Some(LayerSpectrum::Skipped { skipped }) => {
                    println!("  {i:>4}  {:<name_width$}  skipped: {}", name, gmnscope::text::shown_message(skipped))
                }
                None => {}
            }
        }
    }
    if !r.unplaced.is_empty() {
        println!();
        println!("not in the graph ({}):", r.unplaced.len());
        let width =
            r.unplaced.iter().map(|u| shown(&u.tensor).to_string().chars().count()).max().unwrap_or(4).clamp(4, 48);
        for u in &r.unplaced {
            let name = shown(&u.tensor).to_string();
            println!("  {name:<width$}  {:>10}  {}", thousands(u.parameters as u64), shown(&u.reason));
        }
    }
    if !r.notes.is_empty() {
        println!();
        println!("notes:");
        for note in r.notes {
            println!("  - {}", gmnscope::text::shown_message(note));
        }
    }
}
