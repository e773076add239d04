//! GMN input: a parameter graph split into its **topology** (node features, edge endpoints and
//! every edge feature but the weight, shared by all networks of one architecture) and its
//! **weight column** (one value per edge, the only thing that differs between the networks of a
//! zoo).
//!
//! On the device a batch is laid out node-major: node features `[N, B, h]` and edge features
//! `[E, B, h]` for `B` copies of one topology. Gathers and scatters then move rows of `B * h`
//! contiguous floats with `E` indices built once per zoo (not `B * E` indices built per batch),
//! and the graph-level mean of a shared topology is a plain mean over dimension 0.
//!
//! Networks of different architectures go in one batch as one disjoint union (`B = 1`, several
//! segments): [`BatchTopology::new`] with several topologies; the readout then averages per
//! segment.

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::graph::ParamGraph;

/// The weight-independent part of a parameter graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// `[layer_index, neuron_order, node_type]` per node.
    pub node_features: Vec<[i64; 3]>,
    pub src: Vec<u32>,
    pub dst: Vec<u32>,
    /// `[layer_index, edge_type, p0, p1, p2]` per edge.
    pub edge_features: Vec<[f32; 5]>,
    /// For each edge, the position of its value in the graph's weight column (an undirected
    /// topology lists every edge twice, reading the same value).
    pub weight_index: Vec<u32>,
    /// Length of the weight column (the parameter graph's edge count).
    pub num_weights: usize,
}

/// One network as GMN input: a (usually shared) topology and its weight column.
#[derive(Clone, Debug)]
pub struct GraphInput {
    pub topology: Arc<Topology>,
    pub weights: Vec<f32>,
}

/// Largest graph the GMN input accepts (indices are `u32`, tensors are built in memory).
pub const MAX_EDGES: usize = 50_000_000;

impl Topology {
    /// Splits `graph` into topology and weight column. `undirected` adds every edge reversed.
    pub fn from_graph(graph: &ParamGraph, undirected: bool) -> Result<(Topology, Vec<f32>), String> {
        let num_edges = graph.num_edges();
        if num_edges > MAX_EDGES || graph.num_nodes() > MAX_EDGES {
            return Err(format!(
                "the parameter graph has {} nodes and {num_edges} edges; the GMN takes at most {MAX_EDGES}",
                graph.num_nodes()
            ));
        }
        let copies = if undirected { 2 } else { 1 };
        let mut topo = Topology {
            node_features: graph.node_features(),
            src: Vec::with_capacity(num_edges * copies),
            dst: Vec::with_capacity(num_edges * copies),
            edge_features: Vec::with_capacity(num_edges * copies),
            weight_index: Vec::with_capacity(num_edges * copies),
            num_weights: num_edges,
        };
        let mut weights = Vec::with_capacity(num_edges);
        for (k, e) in graph.edges().enumerate() {
            let f = e.features;
            topo.src.push(e.src as u32);
            topo.dst.push(e.dst as u32);
            topo.edge_features.push([f[1], f[2], f[3], f[4], f[5]]);
            topo.weight_index.push(k as u32);
            weights.push(f[0]);
        }
        topo.num_weights = weights.len();
        if undirected {
            for k in 0..topo.num_weights {
                topo.src.push(topo.dst[k]);
                topo.dst.push(topo.src[k]);
                // The reversed copy's type is offset, so a GMN may tag the direction
                // (`GmnConfig::direction_tag`) or map it back to the forward type.
                let mut f = topo.edge_features[k];
                f[1] += super::config::REVERSED as f32;
                topo.edge_features.push(f);
                topo.weight_index.push(k as u32);
            }
        }
        Ok((topo, weights))
    }

    pub fn num_nodes(&self) -> usize {
        self.node_features.len()
    }

    /// Whether the topology lists reversed copies of its edges (`from_graph(.., true)`).
    pub fn is_undirected(&self) -> bool {
        self.edge_features.iter().any(|f| f[1] as i64 >= super::config::REVERSED)
    }

    /// This topology with messages in the directions a GMN wants: reversed copies added
    /// (`undirected`) or dropped. Borrowed when it already is so. Lets a zoo loaded once serve
    /// GMNs of either kind (training, the study, live CKA, inference).
    pub fn with_direction(&self, undirected: bool) -> std::borrow::Cow<'_, Topology> {
        use std::borrow::Cow;
        if self.is_undirected() == undirected {
            return Cow::Borrowed(self);
        }
        let forward: Vec<usize> =
            (0..self.num_edges()).filter(|&k| (self.edge_features[k][1] as i64) < super::config::REVERSED).collect();
        let mut t = Topology {
            node_features: self.node_features.clone(),
            src: forward.iter().map(|&k| self.src[k]).collect(),
            dst: forward.iter().map(|&k| self.dst[k]).collect(),
            edge_features: forward.iter().map(|&k| self.edge_features[k]).collect(),
            weight_index: forward.iter().map(|&k| self.weight_index[k]).collect(),
            num_weights: self.num_weights,
        };
        if undirected {
            for k in 0..forward.len() {
                t.src.push(t.dst[k]);
                t.dst.push(t.src[k]);
                let mut f = t.edge_features[k];
                f[1] += super::config::REVERSED as f32;
                t.edge_features.push(f);
                t.weight_index.push(t.weight_index[k]);
            }
        }
        Cow::Owned(t)
    }

    pub fn num_edges(&self) -> usize {
        self.src.len()
    }
}

/// A topology (or a disjoint union of several) on the device, with everything the GMN derives
/// from it. Built once per zoo for a shared topology and reused by every batch.
#[derive(Clone, Debug)]
pub struct BatchTopology {
    pub num_nodes: usize,
    pub num_edges: usize,
    /// Number of graphs in the union (1 for a shared topology).
    pub segments: usize,
    pub src: Tensor<1, Int>,
    pub dst: Tensor<1, Int>,
    /// `[N, 1]` layer index and neuron order (-1 for unordered nodes), as floats.
    pub node_layer: Tensor<2>,
    pub node_order: Tensor<2>,
    pub node_type: Tensor<1, Int>,
    /// `[E, 1]`, `[E]`, `[E, 3]`.
    pub edge_layer: Tensor<2>,
    pub edge_type: Tensor<1, Int>,
    pub edge_position: Tensor<2>,
    /// `[E, 1]` each: the encoder sees `edge_scale * w + edge_shift` (see
    /// `GmnConfig::edge_affine`: per-class standardisation, or the older per-layer scales).
    pub edge_scale: Tensor<2>,
    pub edge_shift: Tensor<2>,
    /// `[N, 1]`: 1 / in-degree (0 for nodes without incoming edges).
    pub inv_in_degree: Tensor<2>,
    /// `[N, 1, 1]` and `[N, 1]`: 1 where a node has incoming edges.
    pub has_in: Tensor<3>,
    pub has_in_rows: Tensor<2>,
    /// Per node, the edge that carries its bias (from a bias node, forward direction) and 1 where
    /// there is one (`GmnConfig::bias_features`); nodes without read edge 0 masked to 0.
    pub bias_edge: Tensor<1, Int>,
    pub has_bias: Tensor<3>,
    /// `[N, 1]`: PNA's amplification scaler `log(d + 1) / delta` (`d` the in-degree, `delta`
    /// the mean of `log(d + 1)` over the nodes with incoming edges; 0 without any).
    pub amplification: Tensor<2>,
    /// Segment of every node / edge (only for unions of several graphs).
    pub node_segment: Option<Tensor<1, Int>>,
    pub edge_segment: Option<Tensor<1, Int>>,
    /// `[S, 1]`: 1 / nodes and 1 / edges per segment.
    pub inv_segment_nodes: Tensor<2>,
    pub inv_segment_edges: Tensor<2>,
    /// First node id of every segment, and the segment's node count (host side).
    pub node_ranges: Vec<std::ops::Range<usize>>,
    /// Per segment: which weight column (graph) each edge reads, and at which position.
    weight_gather: Vec<u32>,
    total_weights: usize,
    /// What probe features need (used only when the GMN has them switched on).
    pub probe: super::probe::ProbeGraph,
}

impl BatchTopology {
    /// The disjoint union of `parts` (one part for a shared topology), encoded for a GMN
    /// configured as `config` (weight standardisation, edge type rows).
    pub fn new(parts: &[&Topology], config: &super::GmnConfig, device: &Device) -> Result<Self, String> {
        if parts.is_empty() {
            return Err("a batch needs at least one graph".into());
        }
        let directed: Vec<std::borrow::Cow<'_, Topology>> =
            parts.iter().map(|t| t.with_direction(config.undirected)).collect();
        let parts: Vec<&Topology> = directed.iter().map(|t| t.as_ref()).collect();
        let parts = parts.as_slice();
        let num_nodes: usize = parts.iter().map(|t| t.num_nodes()).sum();
        let num_edges: usize = parts.iter().map(|t| t.num_edges()).sum();
        if num_nodes > MAX_EDGES || num_edges > MAX_EDGES {
            return Err(format!("batch of {num_nodes} nodes and {num_edges} edges is too large"));
        }
        let mut src = Vec::with_capacity(num_edges);
        let mut dst = Vec::with_capacity(num_edges);
        let (mut node_layer, mut node_order, mut node_type) = (Vec::new(), Vec::new(), Vec::new());
        let (mut edge_layer, mut edge_type, mut edge_position, mut edge_scale, mut edge_shift) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut node_segment, mut edge_segment) = (Vec::new(), Vec::new());
        let (mut inv_nodes, mut inv_edges) = (Vec::new(), Vec::new());
        let mut in_degree = vec![0u32; num_nodes];
        let mut node_ranges = Vec::with_capacity(parts.len());
        let mut weight_gather = Vec::with_capacity(num_edges);
        let (mut node_base, mut weight_base) = (0usize, 0usize);
        for (s, t) in parts.iter().enumerate() {
            let n = t.num_nodes();
            for f in &t.node_features {
                node_layer.push(f[0] as f32);
                node_order.push(f[1] as f32);
                node_type.push(f[2].clamp(0, super::config::NODE_TYPES as i64 - 1));
                node_segment.push(s as i64);
            }
            for k in 0..t.num_edges() {
                let (a, b) = (t.src[k] as usize, t.dst[k] as usize);
                let w = t.weight_index[k] as usize;
                if a >= n || b >= n || w >= t.num_weights {
                    return Err(format!("edge {k} of graph {s} points outside the graph"));
                }
                src.push((node_base + a) as i64);
                dst.push((node_base + b) as i64);
                in_degree[node_base + b] += 1;
                let f = t.edge_features[k];
                edge_layer.push(f[0]);
                edge_type.push(config.edge_type_row(f[1] as i64) as i64);
                edge_position.extend_from_slice(&f[2..5]);
                let (scale, shift) = config.edge_affine(f[0] as i64, f[1] as i64);
                edge_scale.push(scale);
                edge_shift.push(shift);
                edge_segment.push(s as i64);
                weight_gather.push((weight_base + w) as u32);
            }
            inv_nodes.push(1.0 / n.max(1) as f32);
            inv_edges.push(1.0 / t.num_edges().max(1) as f32);
            node_ranges.push(node_base..node_base + n);
            node_base += n;
            weight_base += t.num_weights;
        }
        let inv_in_degree: Vec<f32> = in_degree.iter().map(|&d| if d > 0 { 1.0 / d as f32 } else { 0.0 }).collect();
        let has_in: Vec<f32> = in_degree.iter().map(|&d| if d > 0 { 1.0 } else { 0.0 }).collect();
        let amplification = amplification_scaler(&in_degree);
        let bias_edge_host = bias_edges(parts);
        let has_bias: Vec<f32> = bias_edge_host.iter().map(|e| if e.is_some() { 1.0 } else { 0.0 }).collect();
        let bias_edge: Vec<i64> = bias_edge_host.iter().map(|e| e.unwrap_or(0) as i64).collect();
        let segments = parts.len();
        let int1 = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        let col = |v: Vec<f32>| {
            let n = v.len();
            Tensor::<2>::from_data(TensorData::new(v, [n, 1]), device)
        };
        Ok(Self {
            num_nodes,
            num_edges,
            segments,
            src: int1(src),
            dst: int1(dst),
            node_layer: col(node_layer),
            node_order: col(node_order),
            node_type: int1(node_type),
            edge_layer: col(edge_layer),
            edge_type: int1(edge_type),
            edge_position: Tensor::from_data(TensorData::new(edge_position, [num_edges, 3]), device),
            edge_scale: col(edge_scale),
            edge_shift: col(edge_shift),
            inv_in_degree: col(inv_in_degree),
            has_in: Tensor::from_data(TensorData::new(has_in.clone(), [num_nodes, 1, 1]), device),
            has_in_rows: col(has_in),
            amplification: col(amplification),
            bias_edge: int1(bias_edge),
            has_bias: Tensor::from_data(TensorData::new(has_bias, [num_nodes, 1, 1]), device),
            node_segment: (segments > 1).then(|| int1(node_segment)),
            edge_segment: (segments > 1).then(|| int1(edge_segment)),
            inv_segment_nodes: col(inv_nodes),
            inv_segment_edges: col(inv_edges),
            node_ranges,
            weight_gather,
            total_weights: weight_base,
            probe: super::probe::ProbeGraph::new(parts, device),
        })
    }

    /// The `[E, B, 1]` weight tensor for `B` copies of a shared topology: `columns[b]` is the
    /// weight column of copy `b`.
    pub fn shared_weights(&self, columns: &[&[f32]], device: &Device) -> Result<Tensor<3>, String> {
        let copies = columns.len();
        if copies == 0 {
            return Err("a batch needs at least one graph".into());
        }
        if let Some((b, c)) = columns.iter().enumerate().find(|(_, c)| c.len() != self.total_weights) {
            return Err(format!(
                "graph {b} of the batch has {} weights, the shared topology {}",
                c.len(),
                self.total_weights
            ));
        }
        let mut values = Vec::with_capacity(self.num_edges * copies);
        for &w in &self.weight_gather {
            for column in columns {
                values.push(column[w as usize]);
            }
        }
        Ok(Tensor::from_data(TensorData::new(values, [self.num_edges, copies, 1]), device))
    }

    /// The `[E, 1, 1]` weight tensor of a union: `columns[s]` belongs to segment `s`, in order.
    pub fn union_weights(&self, columns: &[&[f32]], device: &Device) -> Result<Tensor<3>, String> {
        let all: Vec<f32> = columns.iter().flat_map(|c| c.iter().copied()).collect();
        if all.len() != self.total_weights {
            return Err(format!("the batch has {} weights, its topologies {}", all.len(), self.total_weights));
        }
        let values: Vec<f32> = self.weight_gather.iter().map(|&w| all[w as usize]).collect();
        Ok(Tensor::from_data(TensorData::new(values, [self.num_edges, 1, 1]), device))
    }
}

/// For every node of the union of `parts`, the (union) index of the forward edge from a bias
/// node into it, if any. A bias node carries the layer index of the neurons it feeds.
pub fn bias_edges(parts: &[&Topology]) -> Vec<Option<u32>> {
    use super::probe::BIAS;
    let mut out = Vec::new();
    let mut edge_base = 0usize;
    for t in parts {
        let node_base = out.len();
        out.resize(node_base + t.num_nodes(), None);
        for k in 0..t.num_edges() {
            let (a, b) = (t.src[k] as usize, t.dst[k] as usize);
            let forward = (t.edge_features[k][1] as i64) < super::config::REVERSED;
            if forward && t.node_features[a][2] == BIAS && out[node_base + b].is_none() {
                out[node_base + b] = Some((edge_base + k) as u32);
            }
        }
        edge_base += t.num_edges();
    }
    out
}

/// PNA's amplification scaler per node: `log(d + 1) / delta`, `delta` the mean of `log(d + 1)`
/// over the nodes with incoming edges (so the scaler averages 1), 0 for nodes without.
pub fn amplification_scaler(in_degree: &[u32]) -> Vec<f32> {
    let logs: Vec<f64> = in_degree.iter().filter(|&&d| d > 0).map(|&d| (d as f64 + 1.0).ln()).collect();
    let delta = if logs.is_empty() { 1.0 } else { logs.iter().sum::<f64>() / logs.len() as f64 };
    in_degree.iter().map(|&d| if d > 0 { ((d as f64 + 1.0).ln() / delta) as f32 } else { 0.0 }).collect()
}

/// A batch ready for the GMN: a device topology and `[E, B, 1]` weights. Graph `g` of the
/// output is copy `g % B` of segment `g / B`.
#[derive(Clone, Debug)]
pub struct GmnBatch {
    pub topology: Arc<BatchTopology>,
    pub weights: Tensor<3>,
}

impl GmnBatch {
    /// Copies per segment (`B`).
    pub fn copies(&self) -> usize {
        self.weights.dims()[1]
    }

    /// Number of graphs (`S * B`).
    pub fn num_graphs(&self) -> usize {
        self.topology.segments * self.copies()
    }

    /// `B` networks sharing `topology`.
    pub fn shared(topology: Arc<BatchTopology>, columns: &[&[f32]], device: &Device) -> Result<Self, String> {
        let weights = topology.shared_weights(columns, device)?;
        Ok(Self { topology, weights })
    }

    /// Networks of any architectures, as one disjoint union, for a GMN configured as `config`.
    pub fn mixed(graphs: &[&GraphInput], config: &super::GmnConfig, device: &Device) -> Result<Self, String> {
        let parts: Vec<&Topology> = graphs.iter().map(|g| g.topology.as_ref()).collect();
        let topology = BatchTopology::new(&parts, config, device)?;
        let columns: Vec<&[f32]> = graphs.iter().map(|g| g.weights.as_slice()).collect();
        let weights = topology.union_weights(&columns, device)?;
        Ok(Self { topology: Arc::new(topology), weights })
    }
}
