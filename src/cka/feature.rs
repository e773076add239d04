//! Feature-space cross products: `||Xc_i^T Yc_j||_F^2` for many layer pairs at once, with bounded
//! memory.
//!
//! Layers are concatenated column-wise into groups (up to a width that keeps a group pair's
//! product block inside the memory budget), so one large GEMM replaces many small ones: for two
//! 10-layer lists of width 512 the whole 5120 x 5120 cross matrix is a single product. Examples are
//! streamed in row chunks (`X^T Y = sum over chunks of X_c^T Y_c`), so memory never depends on n
//! beyond the chunk. With A = B only the upper triangle of group pairs is computed, and within a
//! diagonal group only the upper triangle of column segments (a layer's `X^T X` costs ~half).

use std::ops::Range;

use super::ActivationsView;
use super::centre::Centring;
use super::gemm::{Cols, Real, at_b};

/// Column segments of a layer in symmetric blocks: small enough that skipping the lower
/// triangle saves work, large enough to keep the GEMM efficient.
const SEGMENT_WIDTH: usize = 256;
/// Smallest row chunk worth a GEMM call.
const MIN_CHUNK_ROWS: usize = 64;

/// A layer ready for products: its data and its centring.
#[derive(Clone, Copy)]
pub(crate) struct Layer<'a> {
    pub view: ActivationsView<'a>,
    pub centring: &'a Centring,
}

/// Which layer pairs to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pairs {
    /// Every (i in A, j in B).
    All,
    /// A against itself: pairs i <= j, mirrored.
    Symmetric,
    /// A against itself, only i == j (the self terms `||Xc_i^T Xc_i||^2`).
    SelfOnly,
}

/// Returns `out[i * b.len() + j] = ||Xc_i^T Yc_j||_F^2` in the data's own units (f64). For
/// `Symmetric` and `SelfOnly`, `b` is ignored (A is used for both sides); pairs not requested are 0.
pub(crate) fn cross_frobenius<T: Real>(
    a: &[Layer<'_>],
    b: &[Layer<'_>],
    pairs: Pairs,
    n: usize,
    memory_budget: usize,
) -> Vec<f64> {
    let b = if pairs == Pairs::All { b } else { a };
    let (la, lb) = (a.len(), b.len());
    let mut out = vec![0.0f64; la * lb];
    let elem = std::mem::size_of::<T>();
    // Half the budget for a group pair's product block, the rest for the row chunks.
    let max_group_width = ((memory_budget / 2 / elem) as f64).sqrt() as usize;
    let groups_a = group_layers(a, max_group_width);
    let groups_b = if pairs == Pairs::All { group_layers(b, max_group_width) } else { groups_a.clone() };

    let mut product: Vec<T> = Vec::new();
    let mut buf_a: Vec<T> = Vec::new();
    let mut buf_b: Vec<T> = Vec::new();
    for (ga, group_a) in groups_a.iter().enumerate() {
        for (gb, group_b) in groups_b.iter().enumerate() {
            let diagonal = pairs != Pairs::All && ga == gb;
            if (pairs == Pairs::Symmetric && gb < ga) || (pairs == Pairs::SelfOnly && !diagonal) {
                continue;
            }
            let (wa, wb) = (width(a, group_a), width(b, group_b));
            let tiles = tiles(a, group_a, b, group_b, pairs, diagonal);
            // Off the diagonal one GEMM covers every layer pair of the group pair.
            let products: Vec<(Range<usize>, Range<usize>)> = if diagonal {
                tiles.iter().map(|t| (t.rows.clone(), t.cols.clone())).collect()
            } else {
                vec![(0..wa, 0..wb)]
            };
            if tiles.is_empty() || wa == 0 || wb == 0 {
                continue;
            }
            product.resize(wa * wb, T::default());
            let chunk_width = if diagonal { wa } else { wa + wb };
            let left = memory_budget.saturating_sub(wa * wb * elem);
            let chunk_rows = (left / (elem * chunk_width)).max(MIN_CHUNK_ROWS).min(n);
            buf_a.resize(chunk_rows * wa, T::default());
            if !diagonal {
                buf_b.resize(chunk_rows * wb, T::default());
            }
            let mut start = 0;
            while start < n {
                let end = (start + chunk_rows).min(n);
                pack_group(a, group_a, start, end, &mut buf_a, wa);
                if !diagonal {
                    pack_group(b, group_b, start, end, &mut buf_b, wb);
                }
                let rhs: &[T] = if diagonal { &buf_a } else { &buf_b };
                for (rows, cols) in &products {
                    let lhs =
                        Cols { data: &buf_a[..], rows: end - start, stride: wa, col0: rows.start, width: rows.len() };
                    let rhs = Cols { data: rhs, rows: end - start, stride: wb, col0: cols.start, width: cols.len() };
                    // Column-major product: (i, j) at i + j * wa.
                    let offset = rows.start + cols.start * wa;
                    at_b(lhs, rhs, &mut product, offset, wa, start > 0);
                }
                start = end;
            }
            for tile in &tiles {
                let sq = block_sum_of_squares(&product, wa, &tile.rows, &tile.cols);
                // The product is (s_a Xc)^T (s_b Yc); undo the power-of-two scales exactly.
                let scale = a[tile.layer_a].centring.scale * b[tile.layer_b].centring.scale;
                out[tile.layer_a * lb + tile.layer_b] += tile.weight * sq / (scale * scale);
            }
        }
    }
    if pairs == Pairs::Symmetric {
        for i in 0..la {
            for j in 0..i {
                out[i * lb + j] = out[j * lb + i];
            }
        }
    }
    out
}

/// A product block: rows `rows` of the A group buffer against columns `cols` of the B group
/// buffer, lying wholly inside layer pair (`layer_a`, `layer_b`), counted `weight` times.
struct Tile {
    rows: Range<usize>,
    cols: Range<usize>,
    layer_a: usize,
    layer_b: usize,
    weight: f64,
}

/// Consecutive layers whose widths add up to at most `max_width` (at least one layer each).
fn group_layers(layers: &[Layer<'_>], max_width: usize) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut acc = 0;
    for (i, layer) in layers.iter().enumerate() {
        let p = layer.view.p();
        if i > start && acc + p > max_width {
            groups.push(start..i);
            start = i;
            acc = 0;
        }
        acc += p;
    }
    if start < layers.len() {
        groups.push(start..layers.len());
    }
    groups
}

fn width(layers: &[Layer<'_>], group: &Range<usize>) -> usize {
    layers[group.clone()].iter().map(|l| l.view.p()).sum()
}

/// Column range of each layer of a group inside the group buffer.
fn layer_columns(layers: &[Layer<'_>], group: &Range<usize>) -> Vec<(usize, Range<usize>)> {
    let mut offset = 0;
    group
        .clone()
        .map(|i| {
            let p = layers[i].view.p();
            offset += p;
            (i, offset - p..offset)
        })
        .collect()
}

/// The blocks whose squares are summed for one group pair. Off the diagonal: each layer pair's
/// block. On a symmetric diagonal: the upper triangle of column segments (each also a GEMM).
fn tiles(
    a: &[Layer<'_>],
    group_a: &Range<usize>,
    b: &[Layer<'_>],
    group_b: &Range<usize>,
    pairs: Pairs,
    diagonal: bool,
) -> Vec<Tile> {
    let cols_a = layer_columns(a, group_a);
    if !diagonal {
        let cols_b = layer_columns(b, group_b);
        return cols_a
            .iter()
            .flat_map(|(i, ra)| {
                cols_b.iter().map(move |(j, rb)| Tile {
                    rows: ra.clone(),
                    cols: rb.clone(),
                    layer_a: *i,
                    layer_b: *j,
                    weight: 1.0,
                })
            })
            .collect();
    }
    let segments: Vec<(usize, Range<usize>)> = cols_a
        .iter()
        .flat_map(|(i, r)| {
            let count = r.len().div_ceil(SEGMENT_WIDTH).max(1);
            let step = r.len().div_ceil(count);
            (0..count).map(move |s| (*i, r.start + s * step..(r.start + (s + 1) * step).min(r.end)))
        })
        .filter(|(_, r)| !r.is_empty())
        .collect();
    let mut tiles = Vec::new();
    for (s, (i, rs)) in segments.iter().enumerate() {
        for (j, rt) in &segments[s..] {
            if pairs == Pairs::SelfOnly && i != j {
                continue;
            }
            // A segment pair off the diagonal inside one layer stands for itself and its mirror.
            let weight = if i == j && rs != rt { 2.0 } else { 1.0 };
            tiles.push(Tile { rows: rs.clone(), cols: rt.clone(), layer_a: *i, layer_b: *j, weight });
        }
    }
    tiles
}

fn pack_group<T: Real>(
    layers: &[Layer<'_>],
    group: &Range<usize>,
    start: usize,
    end: usize,
    buf: &mut [T],
    stride: usize,
) {
    for (i, cols) in layer_columns(layers, group) {
        let layer = &layers[i];
        layer.centring.pack(&layer.view, start, end, buf, stride, cols.start);
    }
}

/// Sum of squares (f64) of a block of the column-major product (leading dimension `ld`).
fn block_sum_of_squares<T: Real>(product: &[T], ld: usize, rows: &Range<usize>, cols: &Range<usize>) -> f64 {
    cols.clone()
        .map(|c| product[c * ld + rows.start..c * ld + rows.end].iter().map(|v| v.to_f64().powi(2)).sum::<f64>())
        .sum()
}
