//! The shared topology of a zoo as the fused engine reads it: host-side index lists and the
//! per-node / per-edge constants the encoders and the aggregation need (the host twin of
//! `models::BatchTopology` for one topology).

use crate::models::config::NODE_TYPES;
use crate::models::probe::{ProbeActivation, ProbeConfig, ProbePlan};
use crate::models::{GmnConfig, Topology};

/// Probe propagation for one topology, with its fixed starting activations.
pub struct ProbeSetup {
    pub config: ProbeConfig,
    pub plan: ProbePlan,
    /// `[N * K]`: probe coordinates at the inputs, 1 at biases.
    pub fixed: Vec<f32>,
    /// `ProbePlan::layer_groups`: forward edges and target nodes per layer, input to output.
    pub layer_groups: Vec<(Vec<u32>, Vec<u32>)>,
}

pub struct Plan {
    pub n: usize,
    pub m: usize,
    pub src: Vec<u32>,
    pub dst: Vec<u32>,
    /// 1 / in-degree (0 for nodes without incoming edges), and whether a node has any.
    pub inv_in_degree: Vec<f32>,
    pub has_in: Vec<bool>,
    /// PNA's amplification scaler per node (`models::topology::amplification_scaler`).
    pub amplification: Vec<f32>,
    pub node_layer: Vec<f32>,
    pub node_order: Vec<f32>,
    pub node_type: Vec<usize>,
    pub edge_layer: Vec<f32>,
    pub edge_type: Vec<usize>,
    pub edge_position: Vec<[f32; 3]>,
    /// The encoder's weight input is `edge_scale * w + edge_shift` (`GmnConfig::edge_affine`).
    pub edge_scale: Vec<f32>,
    pub edge_shift: Vec<f32>,
    /// Position of every edge's value in a network's weight column.
    pub weight_index: Vec<u32>,
    pub num_weights: usize,
    pub probe: Option<ProbeSetup>,
    /// The output neurons, when the GMN reads their mean state out (`GmnConfig::reads_outputs`).
    pub output_nodes: Option<Vec<u32>>,
    /// `(node, edge)` for every neuron and the edge carrying its bias, when the GMN takes biases
    /// as node features (`GmnConfig::bias_features`).
    pub bias_nodes: Option<Vec<(u32, u32)>>,
    /// Edges with equal (layer, type, kernel position) get the same weight-independent encoder
    /// term; their class, and one edge of every class (see `encoders`, `pass::block0`).
    pub edge_class: Vec<u32>,
    pub class_rep: Vec<u32>,
    /// The weight lift's angular frequencies (`WeightLift::angular_frequencies`; empty: linear).
    pub omega: Vec<f32>,
}

impl Plan {
    /// The plan of `topo` for a GMN configured as `config`.
    pub fn new(topo: &Topology, config: &GmnConfig) -> Result<Self, String> {
        let topo = topo.with_direction(config.undirected);
        let topo = topo.as_ref();
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
                Some(ProbeSetup { config: probe_config, layer_groups: plan.layer_groups(), plan, fixed })
            }
        };
        let output_nodes = config.reads_outputs().then(|| {
            let plan = ProbePlan::new(&[topo]);
            (0..n as u32).filter(|&v| plan.is_output[v as usize]).collect()
        });
        let bias_nodes = config.bias_features.then(|| {
            crate::models::topology::bias_edges(&[topo])
                .iter()
                .enumerate()
                .filter_map(|(v, e)| e.map(|e| (v as u32, e)))
                .collect()
        });
        let affine: Vec<(f32, f32)> =
            topo.edge_features.iter().map(|f| config.edge_affine(f[0] as i64, f[1] as i64)).collect();
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
            amplification: crate::models::topology::amplification_scaler(&in_degree),
            node_layer: topo.node_features.iter().map(|f| f[0] as f32).collect(),
            node_order: topo.node_features.iter().map(|f| f[1] as f32).collect(),
            node_type: topo.node_features.iter().map(|f| f[2].clamp(0, NODE_TYPES as i64 - 1) as usize).collect(),
            edge_layer: topo.edge_features.iter().map(|f| f[0]).collect(),
            edge_type: topo.edge_features.iter().map(|f| config.edge_type_row(f[1] as i64)).collect(),
            edge_position: topo.edge_features.iter().map(|f| [f[2], f[3], f[4]]).collect(),
            edge_scale: affine.iter().map(|a| a.0).collect(),
            edge_shift: affine.iter().map(|a| a.1).collect(),
            weight_index: topo.weight_index.clone(),
            num_weights: topo.num_weights,
            probe,
            output_nodes,
            bias_nodes,
            omega: config.weight_lift.angular_frequencies(config.seed),
        })
    }
}
