//! [`ParamGraph`] -> 2-D positions for drawing, plus the summaries a viewer needs to draw big graphs
//! at overview zoom and to answer "what is under the cursor".
//!
//! Owns: the layered layout ([`compute`]), crossing reduction ([`crossing`]), level-of-detail
//! summaries ([`block_quads`], [`explicit_edges`]), hit testing ([`SpatialGrid`]), and the
//! weight summaries shown beside the graph ([`WeightStats`], [`Histogram`], [`matrix_view`]).
//! Must not import: `ui` or any egui/wgpu type — the app turns these plain arrays into GPU buffers.
//!
//! # Coordinates
//! World units: one unit is the vertical distance between neighbouring neurons of an uncompressed
//! column; `y` grows downwards (as on screen). Column `c` (the `c`-th distinct layer index) sits at
//! `x = c * column_spacing`; each column's neuron blocks are stacked top to bottom (a gap of
//! [`BLOCK_GAP`] between blocks) and centred on `y = 0`. Columns taller than
//! [`LayoutOptions::max_column_height`] are compressed (a 30,522-row embedding table still fits).
//! Parameter nodes (bias, gamma, beta) sit beside their column, left of it and above its top, so
//! their fan of edges stays readable; neuron blocks that feed another block of the same column
//! (shortcut projections) are shifted left so their residual edges are not vertical.

mod crossing;
mod grid;
mod lod;
mod matrix;
mod stats;

pub use grid::SpatialGrid;
pub use lod::{BlockQuad, EdgeSegment, block_quads, block_quads_unvalued, block_scales, explicit_edges};
pub use matrix::{MatrixView, matrix_view};
pub use stats::{Histogram, StatsAccumulator, WeightStats, abs_quantile};

use crate::graph::{NodeRole, ParamGraph};

/// Vertical gap between two neuron blocks of one column, in node spacings.
pub const BLOCK_GAP: f32 = 2.0;

/// Knobs of [`compute`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayoutOptions {
    /// Barycentric sweeps (down + up) over hidden neurons; 0 keeps file order.
    pub crossing_sweeps: usize,
    /// Crossing reduction runs only on graphs with at most this many edges (it streams them all).
    pub crossing_max_edges: usize,
    /// Columns taller than this (world units) are compressed to it.
    pub max_column_height: f32,
}

impl Default for LayoutOptions {
    fn default() -> Self {
        Self { crossing_sweeps: 3, crossing_max_edges: 100_000, max_column_height: 1024.0 }
    }
}

/// Where one node block was placed: its column position and vertical extent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockExtent {
    pub x: f32,
    /// Top and bottom `y` of the block (equal for a single node).
    pub y0: f32,
    pub y1: f32,
    /// Distance between neighbouring nodes of the block (1 unless the column was compressed).
    pub spacing: f32,
    pub column: usize,
}

/// One column of the layout: a distinct layer index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Column {
    pub layer_index: i64,
    pub x: f32,
}

/// Axis-aligned bounds of every node position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub min: [f32; 2],
    pub max: [f32; 2],
}

impl Bounds {
    pub fn size(&self) -> [f32; 2] {
        [self.max[0] - self.min[0], self.max[1] - self.min[1]]
    }

    pub fn center(&self) -> [f32; 2] {
        [(self.min[0] + self.max[0]) * 0.5, (self.min[1] + self.max[1]) * 0.5]
    }
}

/// Node positions of a parameter graph (index = node id) and where each node block went.
#[derive(Clone, Debug)]
pub struct GraphLayout {
    pub positions: Vec<[f32; 2]>,
    /// One per node block of the graph, same order.
    pub blocks: Vec<BlockExtent>,
    pub columns: Vec<Column>,
    pub column_spacing: f32,
    pub bounds: Bounds,
    /// Whether crossing reduction ran (small graphs only).
    pub crossings_reduced: bool,
}

impl GraphLayout {
    /// Index of the node block that contains node `id` (node blocks are contiguous and sorted).
    pub fn block_of_node(graph: &ParamGraph, id: usize) -> Option<usize> {
        let blocks = graph.node_blocks();
        let i = blocks.partition_point(|b| b.start + b.len <= id);
        blocks.get(i).filter(|b| b.range().contains(&id)).map(|_| i)
    }
}

/// Lays `graph` out in layers: x = column of the node's layer index, y = neuron order.
pub fn compute(graph: &ParamGraph, options: &LayoutOptions) -> GraphLayout {
    let blocks = graph.node_blocks();
    // Columns: distinct layer indices, in increasing order.
    let mut layer_indices: Vec<i64> = blocks.iter().map(|b| b.layer_index).collect();
    layer_indices.sort_unstable();
    layer_indices.dedup();
    let column_of = |layer_index: i64| layer_indices.binary_search(&layer_index).unwrap_or(0);

    // Raw stack height of each column (neuron blocks only), before compression.
    let mut raw_height = vec![0.0f32; layer_indices.len()];
    let mut stacked = vec![0usize; layer_indices.len()];
    for b in blocks.iter().filter(|b| b.role != NodeRole::Parameter) {
        let c = column_of(b.layer_index);
        if stacked[c] > 0 {
            raw_height[c] += BLOCK_GAP;
        }
        raw_height[c] += b.len.saturating_sub(1) as f32;
        stacked[c] += 1;
    }
    let max_height = options.max_column_height.max(1.0);
    let squeeze: Vec<f32> = raw_height.iter().map(|&h| if h > max_height { max_height / h } else { 1.0 }).collect();
    let tallest = raw_height.iter().zip(&squeeze).map(|(h, s)| h * s).fold(1.0f32, f32::max);
    // Aim for a landscape aspect of about 1.6 : 1, but never crowd columns closer than 8 units.
    let gaps = layer_indices.len().saturating_sub(1).max(1) as f32;
    let column_spacing = (tallest * 1.6 / gaps).clamp(8.0, (tallest * 0.75).max(8.0));
    let columns: Vec<Column> = layer_indices
        .iter()
        .enumerate()
        .map(|(c, &layer_index)| Column { layer_index, x: c as f32 * column_spacing })
        .collect();

    // Blocks that feed another block of their own column (shortcut projections) move left.
    let mut side_shift = vec![false; blocks.len()];
    for e in graph.edge_blocks() {
        if let (Some(s), Some(d)) = (blocks.get(e.src), blocks.get(e.dst))
            && s.role != NodeRole::Parameter
            && s.layer_index == d.layer_index
        {
            side_shift[e.src] = true;
        }
    }

    let mut positions = vec![[0.0f32; 2]; graph.num_nodes()];
    let mut extents = Vec::with_capacity(blocks.len());
    let mut cursor: Vec<f32> = raw_height.iter().zip(&squeeze).map(|(h, s)| -h * s * 0.5).collect();
    let tops = cursor.clone();
    let mut params_in_column = vec![0usize; layer_indices.len()];
    for (bi, b) in blocks.iter().enumerate() {
        let c = column_of(b.layer_index);
        let col_x = columns[c].x;
        let extent = if b.role == NodeRole::Parameter {
            // Beside the column: left of it, stacked upwards from just above its top.
            let k = params_in_column[c];
            params_in_column[c] += 1;
            let y = tops[c] - 2.0 - 1.5 * k as f32;
            let x = col_x - 0.4 * column_spacing;
            BlockExtent { x, y0: y, y1: y, spacing: 1.0, column: c }
        } else {
            let spacing = squeeze[c];
            if cursor[c] > tops[c] {
                cursor[c] += BLOCK_GAP * spacing;
            }
            let y0 = cursor[c];
            let y1 = y0 + b.len.saturating_sub(1) as f32 * spacing;
            cursor[c] = y1;
            let x = if side_shift[bi] { col_x - 0.3 * column_spacing } else { col_x };
            BlockExtent { x, y0, y1, spacing, column: c }
        };
        for (k, id) in b.range().enumerate() {
            if let Some(p) = positions.get_mut(id) {
                *p = [extent.x, extent.y0 + k as f32 * extent.spacing];
            }
        }
        extents.push(extent);
    }

    let crossings_reduced = options.crossing_sweeps > 0 && graph.num_edges() <= options.crossing_max_edges;
    if crossings_reduced {
        crossing::reduce(graph, &extents, &mut positions, options.crossing_sweeps);
    }
    let bounds = bounds_of(&positions);
    GraphLayout { positions, blocks: extents, columns, column_spacing, bounds, crossings_reduced }
}

fn bounds_of(positions: &[[f32; 2]]) -> Bounds {
    if positions.is_empty() {
        return Bounds { min: [0.0, 0.0], max: [1.0, 1.0] };
    }
    let mut min = [f32::INFINITY; 2];
    let mut max = [f32::NEG_INFINITY; 2];
    for p in positions {
        for a in 0..2 {
            min[a] = min[a].min(p[a]);
            max[a] = max[a].max(p[a]);
        }
    }
    Bounds { min, max }
}

#[cfg(test)]
mod tests;
