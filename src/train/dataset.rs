//! A zoo in memory as GMN input: every network's weight column, its target and split, and one
//! shared topology when all networks have the same architecture (the common case; batches then
//! reuse one device topology).

use std::path::Path;
use std::sync::Arc;

use crate::data::{Split, Target, Zoo};
use crate::models::{GraphInput, Topology};

/// What the GMN predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Task {
    Classification { classes: usize },
    Regression,
}

impl Task {
    pub fn outputs(self) -> usize {
        match self {
            Task::Classification { classes } => classes,
            Task::Regression => 1,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub id: String,
    pub input: GraphInput,
    pub target: Target,
    pub split: Split,
}

/// Networks ready for training.
#[derive(Clone, Debug)]
pub struct GraphSet {
    pub samples: Vec<Sample>,
    pub task: Task,
    /// The topology every sample shares, when they all do.
    pub shared: Option<Arc<Topology>>,
    /// How the networks map coordinates to pixels, for INR zoos (enables probe features).
    pub inr: Option<crate::data::siren::InrSpec>,
}

impl GraphSet {
    /// Builds the set; the task follows the targets (all classes, or all values).
    pub fn new(mut samples: Vec<Sample>, num_classes: Option<usize>) -> Result<Self, String> {
        if samples.is_empty() {
            return Err("the zoo has no networks".into());
        }
        let classes = samples.iter().filter_map(|s| if let Target::Class(c) = s.target { Some(c) } else { None });
        let max_class = classes.clone().max();
        let n_class = classes.count();
        let task = match (n_class, max_class) {
            (n, Some(max)) if n == samples.len() => {
                let classes = num_classes.unwrap_or(0).max(max as usize + 1);
                if classes < 2 {
                    return Err("classification needs at least two classes".into());
                }
                Task::Classification { classes }
            }
            (0, _) => Task::Regression,
            _ => return Err("the zoo mixes class labels and regression targets".into()),
        };
        if let Some(s) = samples.iter().find(|s| matches!(s.target, Target::Value(v) if !v.is_finite())) {
            return Err(format!("network '{}' has a non-finite target", s.id));
        }
        // Share one topology object between all equal topologies.
        let first = samples[0].input.topology.clone();
        let mut all_shared = true;
        for s in &mut samples {
            if Arc::ptr_eq(&s.input.topology, &first) || *s.input.topology == *first {
                s.input.topology = first.clone();
            } else {
                all_shared = false;
            }
        }
        Ok(Self { samples, task, shared: all_shared.then_some(first), inr: None })
    }

    /// Opens a zoo and converts every network (arch recovery + parameter graph); `progress(i, n)`
    /// is called as networks are converted.
    pub fn from_zoo(dir: &Path, undirected: bool, mut progress: impl FnMut(usize, usize)) -> anyhow::Result<Self> {
        let zoo = Zoo::open(dir)?;
        let n = zoo.entries.len();
        let mut samples = Vec::with_capacity(n);
        let mut shared: Option<Arc<Topology>> = None;
        for (i, entry) in zoo.entries.iter().enumerate() {
            let store = zoo.load(i)?;
            let (topology, weights) = graph_input(&store, undirected)
                .map_err(|e| anyhow::anyhow!("{}: network '{}': {e}", dir.display(), entry.id))?;
            // Keep one Arc per distinct topology in a row (zoos are usually homogeneous).
            let topology = match &shared {
                Some(t) if **t == topology => t.clone(),
                _ => {
                    let t = Arc::new(topology);
                    shared = Some(t.clone());
                    t
                }
            };
            samples.push(Sample {
                id: entry.id.clone(),
                input: GraphInput { topology, weights },
                target: entry.target,
                split: entry.split,
            });
            progress(i + 1, n);
        }
        let mut set = Self::new(samples, zoo.num_classes).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        set.inr = zoo.inr;
        Ok(set)
    }

    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.samples.len()).filter(|&i| self.samples[i].split == split).collect()
    }

    /// `1 / std` of the weights per edge layer index over the training split: puts the tiny
    /// hidden-layer weights of a SIREN and its larger first-layer weights on one scale.
    pub fn weight_scales(&self) -> Vec<f32> {
        let mut sums: Vec<(f64, f64, u64)> = Vec::new();
        for s in self.samples.iter().filter(|s| s.split == Split::Train) {
            let topo = &s.input.topology;
            for (k, f) in topo.edge_features.iter().enumerate() {
                let Some(&w) = topo.weight_index.get(k).and_then(|&w| s.input.weights.get(w as usize)) else {
                    continue;
                };
                let l = f[0].max(0.0) as usize;
                if l >= 4096 || !w.is_finite() {
                    continue;
                }
                if sums.len() <= l {
                    sums.resize(l + 1, (0.0, 0.0, 0));
                }
                let slot = &mut sums[l];
                slot.0 += w as f64;
                slot.1 += (w as f64) * (w as f64);
                slot.2 += 1;
            }
        }
        sums.iter()
            .map(|&(s, s2, n)| {
                if n < 2 {
                    return 1.0;
                }
                let mean = s / n as f64;
                let var = (s2 / n as f64 - mean * mean).max(0.0);
                let std = var.sqrt();
                if std > 1e-12 && std.is_finite() { (1.0 / std) as f32 } else { 1.0 }
            })
            .collect()
    }

    /// Mean and standard deviation of the weight input per edge class (layer index, edge type)
    /// over the training split: weights and biases of each layer standardised separately (the
    /// tiny hidden weights of a SIREN, its larger first layer and its biases each land at unit
    /// scale). Reversed copies of undirected edges are not counted twice. Classes with fewer
    /// than two finite values or no spread are left out (their edges keep the raw value).
    pub fn edge_norm(&self) -> Vec<crate::models::config::EdgeNorm> {
        use std::collections::BTreeMap;
        let mut sums: BTreeMap<(i64, i64), (f64, f64, u64)> = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.split == Split::Train) {
            let topo = &s.input.topology;
            for (k, f) in topo.edge_features.iter().enumerate() {
                let (layer, edge_type) = (f[0] as i64, f[1] as i64);
                if edge_type >= crate::models::config::REVERSED {
                    continue;
                }
                let Some(&w) = topo.weight_index.get(k).and_then(|&w| s.input.weights.get(w as usize)) else {
                    continue;
                };
                if !w.is_finite() {
                    continue;
                }
                let slot = sums.entry((layer, edge_type)).or_insert((0.0, 0.0, 0));
                slot.0 += w as f64;
                slot.1 += (w as f64) * (w as f64);
                slot.2 += 1;
            }
        }
        sums.into_iter()
            .filter_map(|((layer, edge_type), (s, s2, n))| {
                if n < 2 {
                    return None;
                }
                let mean = s / n as f64;
                let std = (s2 / n as f64 - mean * mean).max(0.0).sqrt();
                (std > 1e-12 && std.is_finite() && std < 1e30).then_some(crate::models::config::EdgeNorm {
                    layer,
                    edge_type,
                    mean: mean as f32,
                    std: std as f32,
                })
            })
            .collect()
    }

    /// Mean and standard deviation of the regression targets on the training split.
    pub fn target_stats(&self) -> (f32, f32) {
        let values: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.split == Split::Train)
            .filter_map(|s| if let Target::Value(v) = s.target { Some(v as f64) } else { None })
            .collect();
        if values.len() < 2 {
            return (0.0, 1.0);
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64;
        let std = var.sqrt();
        (mean as f32, if std > 1e-12 { std as f32 } else { 1.0 })
    }
}

/// Refuses a network with a weight that is not a finite f32 (NaN, infinity, or an f64 beyond f32
/// range), naming the tensor and the entry: a GMN would otherwise answer with a class for a
/// network it never saw (NaN probabilities, argmax picks a class).
pub fn check_finite(store: &crate::checkpoint::TensorStore) -> Result<(), String> {
    for t in store.tensors().iter().filter(|t| t.dtype.is_float()) {
        if let Some((k, v)) = t.to_f32().iter().enumerate().find(|(_, v)| !v.is_finite()) {
            let why = if t.to_f64().get(k).is_some_and(|x| x.is_finite()) { "beyond f32 range" } else { "not finite" };
            return Err(format!(
                "tensor '{}' has a weight that is {why} ({v} at flat index {k}); the GMN needs finite weights",
                crate::text::shown(&t.name)
            ));
        }
    }
    Ok(())
}

/// Architecture recovery + parameter graph + split into topology and weight column.
pub fn graph_input(store: &crate::checkpoint::TensorStore, undirected: bool) -> Result<(Topology, Vec<f32>), String> {
    let arch = crate::arch::recover(store);
    let graph = crate::graph::build(&arch, store).map_err(|e| e.to_string())?;
    if graph.num_edges() == 0 {
        return Err("no parameters the parameter graph can encode".into());
    }
    Topology::from_graph(&graph, undirected)
}
