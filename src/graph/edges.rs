//! Explicit edges on request: streaming them block by block (decoding one tensor at a time) and
//! the exact inverse, edge values -> parameter tensors.

use super::{DenseOrder, EdgeBlock, EdgeValues, Error, NamedTensor, ParamGraph};

/// One explicit edge: node ids and `[weight, layer_index, edge_type, p0, p1, p2]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Edge {
    pub src: usize,
    pub dst: usize,
    pub features: [f32; 6],
}

/// Streams the explicit edges in block order. Holds at most two decoded tensors (q/k/v blocks
/// alternate between a fused weight and its bias).
pub struct EdgeStream<'g> {
    graph: &'g ParamGraph,
    block: usize,
    k: usize,
    cache: Vec<(usize, Vec<f32>)>,
}

impl Iterator for EdgeStream<'_> {
    type Item = Edge;

    fn next(&mut self) -> Option<Edge> {
        loop {
            let block = self.graph.edge_blocks.get(self.block)?;
            if self.k >= block.len {
                self.block += 1;
                self.k = 0;
                continue;
            }
            let k = self.k;
            self.k += 1;
            let value = match block.values.element(k) {
                Some((param, index)) => self.decoded(param).get(index).copied().unwrap_or(f32::NAN),
                None => 1.0,
            };
            return Some(self.graph.edge_at(block, k, value));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let done = self.graph.edge_blocks.get(self.block).map_or(self.graph.num_edges, |b| b.first_edge + self.k);
        let left = self.graph.num_edges.saturating_sub(done);
        (left, Some(left))
    }
}

impl EdgeStream<'_> {
    fn decoded(&mut self, param: usize) -> &[f32] {
        let pos = match self.cache.iter().position(|(p, _)| *p == param) {
            Some(pos) => pos,
            None => {
                let values = self.graph.params.get(param).map(|p| p.tensor.to_f32()).unwrap_or_default();
                if self.cache.len() >= 2 {
                    self.cache.remove(0);
                }
                self.cache.push((param, values));
                self.cache.len() - 1
            }
        };
        self.cache.get(pos).map_or(&[], |(_, v)| v.as_slice())
    }
}

/// Row-major coordinates of flat index `k` inside `kernel` (at most three dims), -1 padded.
fn kernel_coords(kernel: &[usize], mut k: usize) -> [f32; 3] {
    let mut p = [-1.0f32; 3];
    for (axis, &size) in kernel.iter().enumerate().rev() {
        if let Some(slot) = p.get_mut(axis)
            && size > 0
        {
            *slot = (k % size) as f32;
            k /= size;
        }
    }
    p
}

impl EdgeValues {
    /// The parameter tensor and element that edge `k` of a block carries (`None` for residual
    /// edges). Blocks over a column window of a weight (an input that is a concatenation) skip
    /// the other columns, so their elements are not contiguous.
    pub fn element(&self, k: usize) -> Option<(usize, usize)> {
        match self {
            EdgeValues::Dense { param, offset, out, inp, kernel, order, col, cols } => {
                let kn: usize = kernel.iter().product::<usize>().max(1);
                let (out, inp) = ((*out).max(1), (*inp).max(1));
                let index = match order {
                    DenseOrder::OutInKernel => {
                        let (o, i, p) = (k / (kn * inp), k / kn % inp, k % kn);
                        (o * cols + col + i) * kn + p
                    }
                    DenseOrder::KernelInOut => {
                        let (o, i, p) = (k % out, k / out % inp, k / (out * inp));
                        (p * cols + col + i) * out + o
                    }
                    DenseOrder::InOutKernel => {
                        let (o, i, p) = (k / kn % out, k / (kn * out), k % kn);
                        ((col + i) * out + o) * kn + p
                    }
                };
                Some((*param, offset + index))
            }
            EdgeValues::PerTarget { param, offset } => Some((*param, offset + k)),
            EdgeValues::Ones => None,
        }
    }

    /// True when edge `k` carries element `offset + k` (no column window).
    fn contiguous(&self) -> bool {
        match self {
            EdgeValues::Dense { inp, col, cols, .. } => *col == 0 && cols == inp,
            _ => true,
        }
    }
}

impl ParamGraph {
    /// Streams every explicit edge (parameters and residuals), block by block.
    pub fn edges(&self) -> EdgeStream<'_> {
        EdgeStream { graph: self, block: 0, k: 0, cache: Vec::new() }
    }

    /// Calls `f(src, dst, features)` for every explicit edge, in stream order.
    pub fn for_each_edge(&self, mut f: impl FnMut(usize, usize, [f32; 6])) {
        for e in self.edges() {
            f(e.src, e.dst, e.features);
        }
    }

    /// The explicit edge list (`[src, dst]` and features). Allocates per edge: for zoo-sized
    /// networks and export; stream large graphs with [`Self::edges`] instead.
    pub fn explicit_edges(&self) -> (Vec<[usize; 2]>, Vec<[f32; 6]>) {
        let mut index = Vec::with_capacity(self.num_edges);
        let mut features = Vec::with_capacity(self.num_edges);
        for e in self.edges() {
            index.push([e.src, e.dst]);
            features.push(e.features);
        }
        (index, features)
    }

    /// Edge `k` of `block` carrying `value`.
    fn edge_at(&self, block: &EdgeBlock, k: usize, value: f32) -> Edge {
        let start = |b: usize| self.node_blocks.get(b).map_or(0, |n| n.start);
        let (src0, dst0) = (start(block.src) + block.src_offset, start(block.dst) + block.dst_offset);
        let (i, o, p) = match &block.values {
            EdgeValues::Dense { out, inp, kernel, order, .. } => {
                let kn: usize = kernel.iter().product::<usize>().max(1);
                let (out, inp) = ((*out).max(1), (*inp).max(1));
                match order {
                    DenseOrder::OutInKernel => (k / kn % inp, k / (kn * inp), kernel_coords(kernel, k % kn)),
                    DenseOrder::KernelInOut => (k / out % inp, k % out, kernel_coords(kernel, k / (out * inp))),
                    DenseOrder::InOutKernel => (k / (kn * out), k / kn % out, kernel_coords(kernel, k % kn)),
                }
            }
            EdgeValues::PerTarget { .. } => (0, k, [-1.0; 3]),
            EdgeValues::Ones => (k, k, [-1.0; 3]),
        };
        let features = [value, block.layer_index as f32, block.edge_type as i64 as f32, p[0], p[1], p[2]];
        Edge { src: src0 + i, dst: dst0 + o, features }
    }

    /// Exact inverse of the construction: rebuilds every parameter tensor (in parameter order,
    /// see [`Self::params`]) from the weight column of the explicit edges, in stream order.
    /// Residual edges carry no parameter and are skipped.
    pub fn to_weights(&self, values: &[f32]) -> Result<Vec<NamedTensor>, Error> {
        if values.len() != self.num_edges {
            return Err(Error::Inversion(format!(
                "{} edge values for a graph of {} edges",
                values.len(),
                self.num_edges
            )));
        }
        let mut out: Vec<NamedTensor> =
            self.params.iter().map(|p| (p.name.clone(), p.shape.clone(), vec![0.0; p.num_elements()])).collect();
        let out_of_range =
            |b: &EdgeBlock| Error::Inversion(format!("edge block at edge {} is out of range", b.first_edge));
        for b in &self.edge_blocks {
            let (EdgeValues::Dense { param, offset, .. } | EdgeValues::PerTarget { param, offset }) = &b.values else {
                continue;
            };
            let src = values.get(b.first_edge..b.first_edge + b.len).ok_or_else(|| out_of_range(b))?;
            let data = &mut out.get_mut(*param).ok_or_else(|| out_of_range(b))?.2;
            if b.values.contiguous() {
                let end = offset.checked_add(b.len).unwrap_or(usize::MAX);
                data.get_mut(*offset..end).ok_or_else(|| out_of_range(b))?.copy_from_slice(src);
                continue;
            }
            for (k, &v) in src.iter().enumerate() {
                let (_, index) = b.values.element(k).ok_or_else(|| out_of_range(b))?;
                *data.get_mut(index).ok_or_else(|| out_of_range(b))? = v;
            }
        }
        Ok(out)
    }

    /// [`Self::to_weights`] from full edge feature rows (column 0 is the weight).
    pub fn to_weights_from_features(&self, features: &[[f32; 6]]) -> Result<Vec<NamedTensor>, Error> {
        let values: Vec<f32> = features.iter().map(|f| f[0]).collect();
        self.to_weights(&values)
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_coords;

    #[test]
    fn kernel_coordinates_are_row_major() {
        assert_eq!(kernel_coords(&[3, 3], 5), [1.0, 2.0, -1.0]);
        assert_eq!(kernel_coords(&[2, 3, 4], 23), [1.0, 2.0, 3.0]);
        assert_eq!(kernel_coords(&[5], 4), [4.0, -1.0, -1.0]);
        assert_eq!(kernel_coords(&[], 0), [-1.0, -1.0, -1.0]);
    }
}
