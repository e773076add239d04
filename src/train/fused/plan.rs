//! The shared topology of a zoo as the fused engine reads it: host-side index lists and the
//! per-node / per-edge constants the encoders and the aggregation need (the host twin of
//! `models::BatchTopology` for one topology).

use crate::models::config::{EDGE_TYPES, NODE_TYPES};
use crate::models::probe::{ProbeActivation, ProbeConfig, ProbePlan};
use crate::models::{GmnConfig, Topology};

/// Probe propagation for one topology, with its fixed starting activations.
pub struct ProbeSetup {
    pub config: ProbeConfig,
    pub plan: ProbePlan,
    /// `[N * K]`: probe coordinates at the inputs, 1 at biases.
    pub fixed: Vec<f32>,
    /// Output neurons (for the output-mean readout).
    pub outputs: Vec<u32>,
}

pub struct Plan {
    pub n: usize,
    pub m: usize,
    pub src: Vec<u32>,
    pub dst: Vec<u32>,
    /// 1 / in-degree (0 for nodes without incoming edges), and whether a node has any.
    pub inv_in_degree: Vec<f32>,
    pub has_in: Vec<bool>,
    pub node_layer: Vec<f32>,
    pub node_order: Vec<f32>,
    pub node_type: Vec<usize>,
    pub edge_layer: Vec<f32>,
    pub edge_type: Vec<usize>,
    pub edge_position: Vec<[f32; 3]>,
    pub edge_scale: Vec<f32>,
    /// Position of every edge's value in a network's weight column.
    pub weight_index: Vec<u32>,
    pub num_weights: usize,
    pub probe: Option<ProbeSetup>,
    /// Edges with equal (layer, type, kernel position) get the same weight-independent encoder
    /// term; their class, and one edge of every class (see `encoders`, `pass::block0`).
    pub edge_class: Vec<u32>,
    pub class_rep: Vec<u32>,
}

impl Plan {
    /// The plan of `topo` for a GMN configured as `config`.
    pub fn new(topo: &Topology, config: &GmnConfig) -> Result<Self, String> {
        let (n, m) = (topo.num_nodes(), topo.num_edges());
        if topo.dst.len() != m || topo.edge_features.len() != m || topo.weight_index.len() != m {
            return Err("the topology's edge lists have different lengths".into());
        }
        let mut in_degree = vec![0u32; n];
        for k in 0..m {
            let (a, b, w) = (topo.src[k] as usize, topo.dst[k] as usize, topo.weight_index[k] as usize);
            if a >= n || b >= n || w >= topo.num_weights {
                return Err(format!("edge {k} points outside the graph"));
            }
            in_degree[b] += 1;
        }
        let probe = match config.probe {
            None => None,
            Some(probe_config) => {
                let plan = ProbePlan::new(&[topo]);
                if let Some(why) = &plan.unsupported {
                    return Err(format!("this GMN uses probe features: {why}"));
                }
                let ProbeActivation::Sine { .. } = probe_config.activation;
                let fixed = plan.fixed(&probe_config);
                let outputs = (0..n as u32).filter(|&v| plan.is_output[v as usize]).collect();
                Some(ProbeSetup { config: probe_config, plan, fixed, outputs })
            }
        };
        let mut classes: std::collections::HashMap<[u32; 5], u32> = std::collections::HashMap::new();
        let (mut edge_class, mut class_rep) = (Vec::with_capacity(m), Vec::new());
        for (k, f) in topo.edge_features.iter().enumerate() {
            let key = [f[0].to_bits(), f[1].to_bits(), f[2].to_bits(), f[3].to_bits(), f[4].to_bits()];
            let next = class_rep.len() as u32;
            let c = *classes.entry(key).or_insert(next);
            if c == next {
                class_rep.push(k as u32);
            }
            edge_class.push(c);
        }
        Ok(Self {
            n,
            m,
            edge_class,
            class_rep,
            src: topo.src.clone(),
            dst: topo.dst.clone(),
            inv_in_degree: in_degree.iter().map(|&d| if d > 0 { 1.0 / d as f32 } else { 0.0 }).collect(),
            has_in: in_degree.iter().map(|&d| d > 0).collect(),
            node_layer: topo.node_features.iter().map(|f| f[0] as f32).collect(),
            node_order: topo.node_features.iter().map(|f| f[1] as f32).collect(),
            node_type: topo.node_features.iter().map(|f| f[2].clamp(0, NODE_TYPES as i64 - 1) as usize).collect(),
            edge_layer: topo.edge_features.iter().map(|f| f[0]).collect(),
            edge_type: topo
                .edge_features
                .iter()
                .map(|f| (f[1] as i64).clamp(0, EDGE_TYPES as i64 - 1) as usize)
                .collect(),
            edge_position: topo.edge_features.iter().map(|f| [f[2], f[3], f[4]]).collect(),
            edge_scale: topo.edge_features.iter().map(|f| config.weight_scale(f[0] as i64)).collect(),
            weight_index: topo.weight_index.clone(),
            num_weights: topo.num_weights,
            probe,
        })
    }
}
