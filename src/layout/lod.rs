//! Level of detail: what to draw instead of (or as well as) every neuron-level edge.
//!
//! - [`block_quads`]: one quad per edge block, from the source block's extent to the target
//!   block's, with the block's mean weight and its density (edges per possible neuron pair). Cost
//!   O(parameters) once (bounded per block: large blocks are sampled), O(blocks) to draw: this is
//!   the overview of a 22M-parameter model and of a 7B one.
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

/// Edge blocks with more weights than this summarise evenly spread runs of [`SAMPLE_RUN`] values
/// instead of every value, so the overview of a 7B-parameter model reads megabytes of its files,
/// not all 13 GB (issue 12). Smaller blocks (every block of a 22M-parameter model) are exact.
const MEAN_SAMPLE: usize = 1 << 16;
/// Contiguous values per sampled run (a page or two of a mapped file).
const SAMPLE_RUN: usize = 1024;

/// One band per edge block, with value summaries decoded one block at a time.
pub fn block_quads(graph: &ParamGraph, layout: &GraphLayout) -> Vec<BlockQuad> {
    quads(graph, layout, true)
}

/// [`block_quads`] without reading a weight: every band's means are 0 (the colour map's centre).
/// For models whose weights must not be touched when they open (a 7B model's sampled runs alone
/// would map hundreds of megabytes of pages).
pub fn block_quads_unvalued(graph: &ParamGraph, layout: &GraphLayout) -> Vec<BlockQuad> {
    quads(graph, layout, false)
}

fn quads(graph: &ParamGraph, layout: &GraphLayout, read_values: bool) -> Vec<BlockQuad> {
    let mut out = Vec::with_capacity(graph.edge_blocks().len());
    for (i, e) in graph.edge_blocks().iter().enumerate() {
        let (Some(s), Some(d)) = (layout.blocks.get(e.src), layout.blocks.get(e.dst)) else { continue };
        let (Some(sb), Some(db)) = (graph.node_blocks().get(e.src), graph.node_blocks().get(e.dst)) else {
            continue;
        };
        let (mean, mean_abs) = match &e.values {
            _ if !read_values => (0.0, 0.0),
            EdgeValues::Dense { param, offset, .. } | EdgeValues::PerTarget { param, offset } => {
                match graph.params().get(*param) {
                    None => (0.0, 0.0),
                    Some(p) => {
                        let end = offset.saturating_add(e.len);
                        let contiguous = e.values.element(e.len.saturating_sub(1)).is_none_or(|(_, i)| i + 1 == end);
                        if contiguous {
                            block_means(&p.tensor, *offset, e.len)
                        } else {
                            // A column window of a weight (the input is a concatenation): its
                            // elements, evenly sampled above MEAN_SAMPLE.
                            let step = e.len.div_ceil(MEAN_SAMPLE).max(1);
                            let picked: Vec<f32> = (0..e.len)
                                .step_by(step)
                                .filter_map(|k| e.values.element(k).and_then(|(_, i)| element_value(&p.tensor, i)))
                                .collect();
                            slice_means(&picked)
                        }
                    }
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

/// Mean and mean absolute value of `len` values of `tensor` from element `offset` (sampled above
/// [`MEAN_SAMPLE`]); only the bytes summarised are decoded.
fn block_means(tensor: &crate::checkpoint::TensorInfo, offset: usize, len: usize) -> (f32, f32) {
    let decode = |start: usize, n: usize| decode_range(tensor, start, n);
    let len = len.min(tensor.num_elements().saturating_sub(offset));
    if len <= MEAN_SAMPLE {
        return slice_means(&decode(offset, len));
    }
    let runs = MEAN_SAMPLE / SAMPLE_RUN;
    let mut values = Vec::with_capacity(MEAN_SAMPLE);
    for k in 0..runs {
        values.extend(decode(offset + k * (len - SAMPLE_RUN) / (runs - 1), SAMPLE_RUN));
    }
    slice_means(&values)
}

/// Elements `start..start + n` of `tensor` as f32, decoding only their bytes (empty when the
/// range lies outside the tensor's data).
fn decode_range(tensor: &crate::checkpoint::TensorInfo, start: usize, n: usize) -> Vec<f32> {
    let size = tensor.dtype.size();
    let range = start.checked_mul(size).zip(start.checked_add(n).and_then(|end| end.checked_mul(size)));
    range.and_then(|(a, b)| tensor.bytes().get(a..b)).map(|b| tensor.dtype.to_f32(b)).unwrap_or_default()
}

/// Element `index` of `tensor`, decoding only its bytes.
fn element_value(tensor: &crate::checkpoint::TensorInfo, index: usize) -> Option<f32> {
    decode_range(tensor, index, 1).first().copied()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{ByteView, DType, TensorInfo};

    fn tensor(values: &[f32]) -> TensorInfo {
        let data = ByteView::from_vec(values.iter().flat_map(|v| v.to_le_bytes()).collect());
        TensorInfo { name: "w".into(), dtype: DType::F32, shape: vec![values.len()], data }
    }

    #[test]
    fn block_means_are_exact_for_small_blocks_and_sampled_for_large_ones() {
        let small: Vec<f32> = (0..1000).map(|i| i as f32 - 600.0).collect();
        assert_eq!(block_means(&tensor(&small), 100, 500), (-250.5, 250.5), "values -500..-1");
        assert_eq!(block_means(&tensor(&small), 990, 500), (394.5, 394.5), "cut at the tensor's end: 390..399");

        let n = 3 * MEAN_SAMPLE + 12_345;
        let ramp: Vec<f32> = (0..n).map(|i| 2.0 * i as f32 / n as f32 - 0.5).collect();
        let (mean, mean_abs) = block_means(&tensor(&ramp), 0, n);
        // Exact: mean 0.5, mean |x| = (0.5^2 + 1.5^2) / 4 = 0.625. The sample spans the range evenly.
        assert!((mean - 0.5).abs() < 1e-2 && (mean_abs - 0.625).abs() < 1e-2, "{mean} {mean_abs}");
        let (mean, _) = block_means(&tensor(&ramp), n / 2, n - n / 2);
        assert!((mean - 1.0).abs() < 1e-2, "an offset block samples its own range: {mean}");
    }
}
