//! The open-model job: file (or embedded demo) -> everything the model view shows, computed on a
//! worker thread so the UI never waits: tensors, architecture, parameter graph, layout, per-layer
//! weight statistics, level-of-detail bands, explicit edges (small graphs only) and GPU-ready
//! instance arrays. The numerics live in the core modules; this file only sequences them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::arch::{self, Architecture};
use crate::checkpoint::{self, Format, TensorStore};
use crate::graph::{self, ParamGraph};
use crate::jobs::{JobError, Reporter};
use crate::layout::{self, BlockQuad, EdgeSegment, GraphLayout, Histogram, SpatialGrid, StatsAccumulator, WeightStats};
use crate::ui::model::graph_view::captions::Annotations;
use crate::ui::model::graph_view::renderer::GpuGeometry;

/// Graphs with more edges than this keep their edges implicit: only layer bands are drawn.
pub const EXPLICIT_EDGE_CAP: usize = 2_000_000;
/// Bins of the per-layer weight histograms.
const HISTOGRAM_BINS: usize = 48;
/// Models with more parameters than this read no weight value when they open (issue 12): the
/// overview (layers, graph, layout, bands) comes from headers alone, and a layer's statistics are
/// sampled in the background when it is selected ([`layer_stats`]). Even evenly spread samples
/// of a 7B model map hundreds of megabytes of its files (the kernel maps whole 64 KB windows
/// around each touched page), which is what the open path must not do.
pub const DEFERRED_STATS_PARAMETERS: usize = 16 << 20;
/// Values sampled for one layer's deferred statistics: evenly spread blocks of [`STATS_BLOCK`].
const LAYER_SAMPLE: usize = 1 << 20;
/// Values per contiguous block of a statistics sample (whole pages of the mapped file).
const STATS_BLOCK: usize = 4096;

/// Where a model comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelSource {
    /// One of `demo::MODELS`.
    Demo(String),
    File(PathBuf),
}

impl ModelSource {
    /// Short name for tabs and toasts.
    pub fn title(&self) -> String {
        match self {
            ModelSource::Demo(name) => format!("demo: {name}"),
            ModelSource::File(path) => {
                path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
            }
        }
    }
}

/// One tensor as listed in the layer tree.
#[derive(Clone, Debug)]
pub struct TensorSummary {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: &'static str,
    /// False for buffers (BatchNorm running statistics): listed, but not graph parameters.
    pub is_parameter: bool,
}

/// One recovered layer as the tree and the details panel show it.
#[derive(Clone, Debug)]
pub struct LayerSummary {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub tensors: Vec<TensorSummary>,
    pub parameters: usize,
    pub stats: Option<WeightStats>,
    pub histogram: Option<Histogram>,
}

/// The drawable parameter graph.
pub struct GraphData {
    pub graph: ParamGraph,
    pub layout: GraphLayout,
    pub grid: SpatialGrid,
    pub quads: Vec<BlockQuad>,
    /// `None` above [`EXPLICIT_EDGE_CAP`].
    pub edges: Option<Vec<EdgeSegment>>,
    pub geometry: Arc<GpuGeometry>,
    /// Column captions, group outlines and per-layer blocks for the labels on the graph.
    pub annotations: Annotations,
    /// |weight| at the ends of the colour map (98th percentile of |w|) and of block means.
    pub weight_scale: f32,
    pub block_scale: f32,
    pub min_weight: f32,
    pub max_weight: f32,
}

/// Everything the model view needs about one open model.
pub struct LoadedModel {
    pub id: u64,
    pub source: ModelSource,
    pub format: Format,
    pub num_tensors: usize,
    pub num_values: usize,
    pub store: Arc<TensorStore>,
    pub layers: Vec<LayerSummary>,
    pub unrecognized: Vec<TensorSummary>,
    pub notes: Vec<String>,
    /// The graph, or why it could not be built (the layer tree still works).
    pub graph: Result<GraphData, String>,
    /// True when the model is too large to read values at open ([`DEFERRED_STATS_PARAMETERS`]):
    /// layer statistics are sampled on demand and the bands are not coloured by weight.
    pub stats_deferred: bool,
    pub load_secs: f32,
}

impl LoadedModel {
    pub fn title(&self) -> String {
        self.source.title()
    }
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The job body: opens `source` and prepares it for drawing, reporting progress between stages.
pub fn load(source: ModelSource, reporter: &Reporter<LoadedModel>) -> Result<LoadedModel, JobError> {
    let started = Instant::now();
    reporter.stage("reading tensors", Some(0.02));
    let store = match &source {
        ModelSource::Demo(name) => crate::demo::open(name),
        ModelSource::File(path) => checkpoint::open(path),
    }
    .map_err(JobError::failed)?;
    reporter.check()?;
    reporter.stage("recovering architecture", Some(0.08));
    let arch = arch::recover(&store);
    reporter.check()?;
    let stats_deferred = store.num_parameters() > DEFERRED_STATS_PARAMETERS;
    let (layers, sample) = summarise_layers(&arch, &store, !stats_deferred, reporter)?;
    let unrecognized =
        arch.unrecognized.iter().filter_map(|name| store.get(name)).map(|t| tensor_summary(t, false)).collect();
    reporter.stage("building parameter graph", Some(0.45));
    let id = next_id();
    let graph = match graph::build(&arch, &store) {
        Ok(graph) => Ok(prepare_graph(id, graph, &layers, &sample, !stats_deferred, reporter)?),
        Err(e) => Err(format!("{}: {e}", store.path.display())),
    };
    Ok(LoadedModel {
        id,
        source,
        format: store.format,
        num_tensors: store.len(),
        num_values: store.num_parameters(),
        store: Arc::new(store),
        layers,
        unrecognized,
        notes: arch.notes.clone(),
        graph,
        stats_deferred,
        load_secs: started.elapsed().as_secs_f32(),
    })
}

fn tensor_summary(t: &checkpoint::TensorInfo, is_parameter: bool) -> TensorSummary {
    TensorSummary { name: t.name.clone(), shape: t.shape.clone(), dtype: t.dtype.name(), is_parameter }
}

/// Per-layer statistics over the layer's parameter tensors (decoded one layer at a time; none when
/// `read_values` is false), plus an evenly strided sample of all parameter values (at most ~200k)
/// for the colour scale.
fn summarise_layers(
    arch: &Architecture,
    store: &TensorStore,
    read_values: bool,
    reporter: &Reporter<LoadedModel>,
) -> Result<(Vec<LayerSummary>, Vec<f32>), JobError> {
    let mut out = Vec::with_capacity(arch.layers.len());
    let stride = (store.num_parameters() / 200_000).max(1);
    let mut sample = Vec::new();
    let n = arch.layers.len().max(1) as f32;
    for (i, layer) in arch.layers.iter().enumerate() {
        reporter.check()?;
        if read_values {
            reporter.stage(format!("weight statistics: {}", layer.name), Some(0.1 + 0.35 * i as f32 / n));
        }
        let params = layer.kind.parameter_tensors();
        let param_tensors: Vec<&checkpoint::TensorInfo> = params.iter().filter_map(|name| store.get(name)).collect();
        let (stats, histogram) = if read_values {
            let values: Vec<Vec<f32>> = param_tensors.iter().map(|t| t.to_f32()).collect();
            for v in &values {
                sample.extend(v.iter().step_by(stride));
            }
            summarise(&values)
        } else {
            (None, None)
        };
        let tensors = layer
            .tensors
            .iter()
            .filter_map(|name| store.get(name))
            .map(|t| tensor_summary(t, params.contains(&t.name.as_str())))
            .collect();
        out.push(LayerSummary {
            name: layer.name.clone(),
            kind: layer.kind.name(),
            description: layer.kind.describe(),
            tensors,
            parameters: param_tensors.iter().map(|t| t.num_elements()).sum(),
            stats,
            histogram,
        });
    }
    Ok((out, sample))
}

fn summarise(values: &[Vec<f32>]) -> (Option<WeightStats>, Option<Histogram>) {
    let mut acc = StatsAccumulator::default();
    for v in values {
        acc.push_slice(v);
    }
    let stats = acc.finish();
    let histogram = stats.map(|s| Histogram::of_slices(values.iter().map(Vec::as_slice), s.min, s.max, HISTOGRAM_BINS));
    (stats, histogram)
}

/// Statistics and histogram of one layer's parameter tensors (`names`), for a model whose
/// statistics were deferred: at most [`LAYER_SAMPLE`] values, shared among the tensors by size,
/// in evenly spread contiguous blocks. Runs as a background job when the layer is selected.
pub fn layer_stats(store: &TensorStore, names: &[String]) -> (Option<WeightStats>, Option<Histogram>) {
    let tensors: Vec<&checkpoint::TensorInfo> = names.iter().filter_map(|n| store.get(n)).collect();
    let total: usize = tensors.iter().map(|t| t.num_elements()).sum();
    let values: Vec<Vec<f32>> = tensors
        .iter()
        .map(|t| {
            let share = (LAYER_SAMPLE as u128 * t.num_elements() as u128 / total.max(1) as u128) as usize;
            stats_values(t, share.max(4 * STATS_BLOCK))
        })
        .collect();
    summarise(&values)
}

/// A tensor's values for statistics: all of them, or (more than `quota`) evenly spread
/// contiguous blocks of [`STATS_BLOCK`] values, so that only the sampled pages are read.
fn stats_values(t: &checkpoint::TensorInfo, quota: usize) -> Vec<f32> {
    let n = t.num_elements();
    if n <= quota || n <= STATS_BLOCK {
        return t.to_f32();
    }
    let blocks = (quota / STATS_BLOCK).max(2);
    let size = t.dtype.size();
    let bytes = t.bytes();
    let mut out = Vec::with_capacity(blocks * STATS_BLOCK);
    for k in 0..blocks {
        let start = k * (n - STATS_BLOCK) / (blocks - 1);
        if let Some(block) = bytes.get(start * size..(start + STATS_BLOCK) * size) {
            out.extend(t.dtype.to_f32(block));
        }
    }
    out
}

fn prepare_graph(
    id: u64,
    graph: ParamGraph,
    layers: &[LayerSummary],
    sample: &[f32],
    read_values: bool,
    reporter: &Reporter<LoadedModel>,
) -> Result<GraphData, JobError> {
    reporter.stage("layout", Some(0.5));
    let layout = layout::compute(&graph, &layout::LayoutOptions::default());
    reporter.check()?;
    let grid = SpatialGrid::new(&layout.positions, layout.bounds, 1.0);
    reporter.stage("layer bands", Some(0.6));
    let quads =
        if read_values { layout::block_quads(&graph, &layout) } else { layout::block_quads_unvalued(&graph, &layout) };
    reporter.check()?;
    let edges = layout::explicit_edges(&graph, EXPLICIT_EDGE_CAP, |f| {
        reporter.stage("neuron edges", Some(0.7 + 0.2 * f));
        reporter.is_cancelled()
    });
    reporter.check()?;
    reporter.stage("colour scale", Some(0.92));
    let edge_block_scales = edges.as_deref().map(|e| layout::block_scales(&graph, e, 0.98)).unwrap_or_default();
    let weight_scale = layout::abs_quantile([sample], 0.98, usize::MAX).unwrap_or(1.0);
    let block_scale = quads.iter().map(|q| q.mean_weight.abs()).filter(|v| v.is_finite()).fold(0.0f32, f32::max);
    let min_weight = layers.iter().filter_map(|l| l.stats).map(|s| s.min).fold(f32::INFINITY, f32::min);
    let max_weight = layers.iter().filter_map(|l| l.stats).map(|s| s.max).fold(f32::NEG_INFINITY, f32::max);
    reporter.stage("GPU buffers", Some(0.95));
    let geometry = Arc::new(GpuGeometry::build(id, &graph, &layout, edges.as_deref(), &edge_block_scales, &quads));
    let annotations = Annotations::build(&graph, &layout, layers);
    Ok(GraphData {
        annotations,
        graph,
        layout,
        grid,
        quads,
        edges,
        geometry,
        weight_scale: positive_or_one(weight_scale),
        block_scale: positive_or_one(block_scale),
        min_weight: if min_weight.is_finite() { min_weight } else { 0.0 },
        max_weight: if max_weight.is_finite() { max_weight } else { 0.0 },
    })
}

fn positive_or_one(v: f32) -> f32 {
    if v.is_finite() && v > 0.0 { v } else { 1.0 }
}
