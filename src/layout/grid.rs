//! Hit testing: a uniform grid over node positions, so "which node is under the cursor" costs a
//! few cells instead of a scan over every node.

use super::Bounds;

/// Node ids bucketed by grid cell (compressed rows: `items[cell_start[c]..cell_start[c + 1]]`).
#[derive(Clone, Debug)]
pub struct SpatialGrid {
    origin: [f32; 2],
    cell: f32,
    dims: [usize; 2],
    cell_start: Vec<u32>,
    items: Vec<u32>,
}

impl SpatialGrid {
    /// Builds the grid with about two nodes per cell (and at least `min_cell` world units per cell).
    pub fn new(positions: &[[f32; 2]], bounds: Bounds, min_cell: f32) -> Self {
        let [w, h] = bounds.size();
        let n = positions.len().max(1) as f32;
        let cell = ((w.max(1.0) * h.max(1.0) * 2.0 / n).sqrt()).max(min_cell).max(1e-3);
        let dims = [((w / cell) as usize + 1).min(4096), ((h / cell) as usize + 1).min(4096)];
        let mut grid = Self { origin: bounds.min, cell, dims, cell_start: Vec::new(), items: Vec::new() };
        let cells = dims[0] * dims[1];
        let mut counts = vec![0u32; cells + 1];
        let keys: Vec<Option<usize>> = positions.iter().map(|p| grid.cell_index(*p)).collect();
        for c in keys.iter().flatten() {
            counts[c + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut fill = counts.clone();
        let mut items = vec![0u32; positions.len()];
        for (id, c) in keys.iter().enumerate() {
            if let Some(c) = c
                && let Some(slot) = fill.get_mut(*c)
            {
                if let Some(item) = items.get_mut(*slot as usize) {
                    *item = id as u32;
                }
                *slot += 1;
            }
        }
        grid.cell_start = counts;
        grid.items = items;
        grid
    }

    fn cell_coords(&self, p: [f32; 2]) -> Option<[usize; 2]> {
        let gx = (p[0] - self.origin[0]) / self.cell;
        let gy = (p[1] - self.origin[1]) / self.cell;
        if !(gx.is_finite() && gy.is_finite()) || gx < 0.0 || gy < 0.0 {
            return None;
        }
        let (gx, gy) = (gx as usize, gy as usize);
        (gx < self.dims[0] && gy < self.dims[1]).then_some([gx, gy])
    }

    fn cell_index(&self, p: [f32; 2]) -> Option<usize> {
        self.cell_coords(p).map(|[x, y]| y * self.dims[0] + x)
    }

    /// The node nearest to `p` within `radius` world units, if any.
    pub fn nearest(&self, positions: &[[f32; 2]], p: [f32; 2], radius: f32) -> Option<usize> {
        if !(radius.is_finite() && radius > 0.0) {
            return None;
        }
        let lo = [(p[0] - radius - self.origin[0]) / self.cell, (p[1] - radius - self.origin[1]) / self.cell];
        let hi = [(p[0] + radius - self.origin[0]) / self.cell, (p[1] + radius - self.origin[1]) / self.cell];
        let clamp = |v: f32, dim: usize| (v.max(0.0) as usize).min(dim.saturating_sub(1));
        if hi[0] < 0.0 || hi[1] < 0.0 || !lo[0].is_finite() || !lo[1].is_finite() {
            return None;
        }
        let (x0, x1) = (clamp(lo[0], self.dims[0]), clamp(hi[0], self.dims[0]));
        let (y0, y1) = (clamp(lo[1], self.dims[1]), clamp(hi[1], self.dims[1]));
        // A huge radius would visit every cell; that is still bounded by the grid size (<= 4096^2).
        let mut best: Option<(f32, usize)> = None;
        for gy in y0..=y1 {
            for gx in x0..=x1 {
                let c = gy * self.dims[0] + gx;
                let (Some(&a), Some(&b)) = (self.cell_start.get(c), self.cell_start.get(c + 1)) else { continue };
                for &id in self.items.get(a as usize..b as usize).unwrap_or(&[]) {
                    let Some(q) = positions.get(id as usize) else { continue };
                    let d2 = (q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2);
                    if d2 <= radius * radius && best.is_none_or(|(bd, _)| d2 < bd) {
                        best = Some((d2, id as usize));
                    }
                }
            }
        }
        best.map(|(_, id)| id)
    }
}
