//! Barycentric crossing reduction (Sugiyama's layer-by-layer sweep): hidden neurons of a block are
//! reordered by the |weight|-weighted mean height of their neighbours in the previous column (down
//! sweep) or the next column (up sweep). Input neurons and final outputs keep their order — it
//! means something — and only the order inside a block changes, never the block's slots.

use super::BlockExtent;
use crate::graph::{NodeRole, ParamGraph};

/// Neighbour lists in compressed form: `targets[start[n]..start[n + 1]]` with their weights.
struct Adjacency {
    start: Vec<usize>,
    targets: Vec<(u32, f32)>,
}

impl Adjacency {
    fn build(num_nodes: usize, edges: &[(u32, u32, f32)], key: impl Fn(&(u32, u32, f32)) -> (u32, u32)) -> Self {
        let mut start = vec![0usize; num_nodes + 1];
        for e in edges {
            let (from, _) = key(e);
            if let Some(s) = start.get_mut(from as usize + 1) {
                *s += 1;
            }
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut fill = start.clone();
        let mut targets = vec![(0u32, 0.0f32); edges.len()];
        for e in edges {
            let (from, to) = key(e);
            if let Some(slot) = fill.get_mut(from as usize)
                && let Some(t) = targets.get_mut(*slot)
            {
                *t = (to, e.2);
                *slot += 1;
            }
        }
        Self { start, targets }
    }

    fn neighbours(&self, node: usize) -> &[(u32, f32)] {
        match (self.start.get(node), self.start.get(node + 1)) {
            (Some(&a), Some(&b)) => self.targets.get(a..b).unwrap_or(&[]),
            _ => &[],
        }
    }
}

pub(super) fn reduce(graph: &ParamGraph, extents: &[BlockExtent], positions: &mut [[f32; 2]], sweeps: usize) {
    let blocks = graph.node_blocks();
    let n = graph.num_nodes();
    if n > u32::MAX as usize {
        return;
    }
    // Node id -> (block, column) for the edge filter.
    let mut column_of_node = vec![usize::MAX; n];
    for (b, e) in blocks.iter().zip(extents) {
        if b.role != NodeRole::Parameter {
            for id in b.range() {
                if let Some(c) = column_of_node.get_mut(id) {
                    *c = e.column;
                }
            }
        }
    }
    // Edges between neurons of different columns (parameter nodes have fixed places).
    let mut edges = Vec::new();
    for e in graph.edges() {
        let (cs, cd) = match (column_of_node.get(e.src), column_of_node.get(e.dst)) {
            (Some(&a), Some(&b)) => (a, b),
            _ => continue,
        };
        if cs != usize::MAX && cd != usize::MAX && cs != cd {
            let w = e.features[0].abs();
            let w = if w.is_finite() { w + 1e-6 } else { 1e-6 };
            edges.push((e.src as u32, e.dst as u32, w));
        }
    }
    let incoming = Adjacency::build(n, &edges, |e| (e.1, e.0));
    let outgoing = Adjacency::build(n, &edges, |e| (e.0, e.1));

    // Permutable blocks, grouped by column.
    let num_columns = extents.iter().map(|e| e.column + 1).max().unwrap_or(0);
    let mut by_column: Vec<Vec<usize>> = vec![Vec::new(); num_columns];
    for (i, (b, e)) in blocks.iter().zip(extents).enumerate() {
        let permutable = matches!(b.role, NodeRole::Neurons | NodeRole::Attention) && !b.ordered && b.len > 1;
        if permutable && let Some(col) = by_column.get_mut(e.column) {
            col.push(i);
        }
    }

    let mut keyed: Vec<(f32, f32, usize)> = Vec::new();
    let mut slots: Vec<f32> = Vec::new();
    for _ in 0..sweeps {
        for down in [true, false] {
            let order: Vec<usize> = if down { (0..num_columns).collect() } else { (0..num_columns).rev().collect() };
            let adjacency = if down { &incoming } else { &outgoing };
            for c in order {
                for &bi in &by_column[c] {
                    let Some(block) = blocks.get(bi) else { continue };
                    keyed.clear();
                    slots.clear();
                    for id in block.range() {
                        let here = positions.get(id).map_or(0.0, |p| p[1]);
                        slots.push(here);
                        let (mut sum, mut weight) = (0.0f64, 0.0f64);
                        for &(other, w) in adjacency.neighbours(id) {
                            if let Some(p) = positions.get(other as usize) {
                                sum += f64::from(p[1]) * f64::from(w);
                                weight += f64::from(w);
                            }
                        }
                        let key = if weight > 0.0 { (sum / weight) as f32 } else { here };
                        keyed.push((key, here, id));
                    }
                    // Ties keep the current order, so sweeps converge instead of flipping.
                    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                    slots.sort_by(f32::total_cmp);
                    for (&(_, _, id), &y) in keyed.iter().zip(&slots) {
                        if let Some(p) = positions.get_mut(id) {
                            p[1] = y;
                        }
                    }
                }
            }
        }
    }
}
