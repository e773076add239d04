//! Level of detail: what to draw instead of (or as well as) every neuron-level edge.
//!
//! - [`block_quads`]: one quad per edge block, from the source block's extent to the target
//!   block's, with the block's mean weight and its density (edges per possible neuron pair). Cost
//!   O(parameters) once, O(blocks) to draw: this is the overview of a 22M-parameter model.
//! - [`explicit_edges`]: the neuron-level edge list (node ids and weight), only for graphs with at
//!   most `cap` edges — above that a viewer must never try to hold them all.

use super::GraphLayout;
use crate::graph::{EdgeValues, ParamGraph};

/// One neuron-level edge for drawing: node ids and the edge's weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EdgeSegment {
    pub src: u32,
    pub dst: u32,
    pub weight: f32,
}

/// One edge block drawn as a band between two node blocks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQuad {
    /// Index into [`ParamGraph::edge_blocks`].
    pub edge_block: usize,
    /// Source side: x and vertical extent.
    pub src: [f32; 3],
    /// Target side: x and vertical extent.
    pub dst: [f32; 3],
    pub mean_weight: f32,
    pub mean_abs_weight: f32,
    /// Edges per possible (source, target) pair, clamped to 1 (conv blocks have k*k per pair).
    pub density: f32,
    pub edges: usize,
}

/// One band per edge block, with value summaries decoded one tensor at a time.
pub fn block_quads(graph: &ParamGraph, layout: &GraphLayout) -> Vec<BlockQuad> {
    let mut decoded: Option<(usize, Vec<f32>)> = None;
    let mut out = Vec::with_capacity(graph.edge_blocks().len());
    for (i, e) in graph.edge_blocks().iter().enumerate() {
        let (Some(s), Some(d)) = (layout.blocks.get(e.src), layout.blocks.get(e.dst)) else { continue };
        let (Some(sb), Some(db)) = (graph.node_blocks().get(e.src), graph.node_blocks().get(e.dst)) else {
            continue;
        };
        let (mean, mean_abs) = match &e.values {
            EdgeValues::Dense { param, offset, .. } | EdgeValues::PerTarget { param, offset } => {
                if decoded.as_ref().is_none_or(|(p, _)| p != param) {
                    let values = graph.params().get(*param).map(|p| p.tensor.to_f32()).unwrap_or_default();
                    decoded = Some((*param, values));
                }
                let values = decoded.as_ref().map_or(&[][..], |(_, v)| v.as_slice());
                let end = offset.saturating_add(e.len).min(values.len());
                let contiguous = e.values.element(e.len.saturating_sub(1)).is_none_or(|(_, i)| i + 1 == end);
                if contiguous {
                    slice_means(values.get(*offset..end).unwrap_or(&[]))
                } else {
                    // A column window of a weight (the input is a concatenation): gather its elements.
                    let picked: Vec<f32> = (0..e.len)
                        .filter_map(|k| e.values.element(k).and_then(|(_, i)| values.get(i).copied()))
                        .collect();
                    slice_means(&picked)
                }
            }
            EdgeValues::Ones => (1.0, 1.0),
        };
        // The rows the block touches: a split half, one group of a grouped conv, one segment of a
        // concatenation draw as their own band, not over the whole node block.
        let (src_rows, dst_rows) = match &e.values {
            EdgeValues::Dense { out, inp, .. } => (*inp, *out),
            EdgeValues::PerTarget { .. } => (1, e.len),
            EdgeValues::Ones => (e.len, e.len),
        };
        let rows = |extent: &super::BlockExtent, offset: usize, n: usize, len: usize| {
            if n >= len || len == 0 {
                return [extent.x, extent.y0, extent.y1];
            }
            let y0 = extent.y0 + offset as f32 * extent.spacing;
            [extent.x, y0, y0 + n.saturating_sub(1) as f32 * extent.spacing]
        };
        let pairs = (src_rows as f64) * (dst_rows as f64);
        let density = if pairs > 0.0 { (e.len as f64 / pairs).min(1.0) as f32 } else { 0.0 };
        out.push(BlockQuad {
            edge_block: i,
            src: rows(s, e.src_offset, src_rows, sb.len),
            dst: rows(d, e.dst_offset, dst_rows, db.len),
            mean_weight: mean,
            mean_abs_weight: mean_abs,
            density,
            edges: e.len,
        });
    }
    out
}

fn slice_means(values: &[f32]) -> (f32, f32) {
    let (mut sum, mut sum_abs, mut n) = (0.0f64, 0.0f64, 0usize);
    for &v in values.iter().filter(|v| v.is_finite()) {
        sum += f64::from(v);
        sum_abs += f64::from(v.abs());
        n += 1;
    }
    if n == 0 { (0.0, 0.0) } else { ((sum / n as f64) as f32, (sum_abs / n as f64) as f32) }
}

/// Every neuron-level edge in stream order, or `None` when the graph has more than `cap` edges
/// (or more nodes than `u32` can index). `should_stop` is polled every 64k edges (cancellation).
pub fn explicit_edges(
    graph: &ParamGraph,
    cap: usize,
    mut should_stop: impl FnMut(f32) -> bool,
) -> Option<Vec<EdgeSegment>> {
    let total = graph.num_edges();
    if total > cap || graph.num_nodes() > u32::MAX as usize {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    for (k, e) in graph.edges().enumerate() {
        if k % 65_536 == 0 && should_stop(k as f32 / total.max(1) as f32) {
            return None;
        }
        out.push(EdgeSegment { src: e.src as u32, dst: e.dst as u32, weight: e.features[0] });
    }
    Some(out)
}

/// Per edge block, the `q`-quantile of |weight| over its edges (1 where a block has no finite
/// weight): the colour scale of the "per layer" view, where each tensor is shown relative to its
/// own typical magnitude (a SIREN's first layer is ~30x larger than the rest).
pub fn block_scales(graph: &ParamGraph, edges: &[EdgeSegment], q: f64) -> Vec<f32> {
    let mut weights = Vec::new();
    graph
        .edge_blocks()
        .iter()
        .map(|b| {
            let end = b.first_edge.saturating_add(b.len).min(edges.len());
            weights.clear();
            weights.extend(edges.get(b.first_edge..end).unwrap_or(&[]).iter().map(|e| e.weight));
            super::abs_quantile([weights.as_slice()], q, 100_000).filter(|s| *s > 0.0).unwrap_or(1.0)
        })
        .collect()
}
