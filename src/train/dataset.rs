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
    /// Every weight column is sign-canonicalised (`models::canonical`).
    pub canonical_signs: bool,
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
        Ok(Self { samples, task, shared: all_shared.then_some(first), inr: None, canonical_signs: false })
    }

    /// Opens a zoo and converts every network (arch recovery + parameter graph); `progress(i, n)`
    /// is called as networks are converted. A network with a NaN or infinite weight is refused
    /// here, naming it (training on it would only end in a NaN loss later).
    pub fn from_zoo(
        dir: &Path,
        undirected: bool,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self, crate::data::Error> {
        use crate::data::Error;
        let zoo = Zoo::open(dir)?;
        let n = zoo.entries.len();
        let mut samples = Vec::with_capacity(n);
        let mut shared: Option<Arc<Topology>> = None;
        for (i, entry) in zoo.entries.iter().enumerate() {
            let store = zoo.load(i)?;
            let network = |e: String| Error::new(dir, format!("network '{}': {e}", crate::text::shown(&entry.id)));
            check_finite(&store).map_err(network)?;
            let (topology, weights) = graph_input(&store, undirected).map_err(network)?;
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
        let mut set = Self::new(samples, zoo.num_classes).map_err(|e| Error::new(dir, e))?;
        set.inr = zoo.inr;
        Ok(set)
    }

    /// This set as a GMN with `canonical_signs` takes it: the same set, or a copy whose weight
    /// columns are sign-canonicalised (statistics, batches and probes then all see one
    /// representative per sign-flip class). Refuses to undo a canonicalisation.
    pub fn for_gmn(self: &Arc<Self>, canonical_signs: bool) -> Result<Arc<Self>, String> {
        match (canonical_signs, self.canonical_signs) {
            (false, true) => Err("the zoo was loaded sign-canonicalised, but the GMN takes raw weights".into()),
            (true, false) => {
                let mut set = (**self).clone();
                // One plan per distinct topology in a row (zoos usually share one).
                let mut plan: Option<(Arc<Topology>, crate::models::canonical::SignPlan)> = None;
                for s in &mut set.samples {
                    if plan.as_ref().is_none_or(|(t, _)| !Arc::ptr_eq(t, &s.input.topology)) {
                        let new = crate::models::canonical::SignPlan::new(&s.input.topology);
                        plan = Some((s.input.topology.clone(), new));
                    }
                    if let Some((_, p)) = &plan {
                        p.apply(&mut s.input.weights);
                    }
                }
                set.canonical_signs = true;
                Ok(Arc::new(set))
            }
            _ => Ok(self.clone()),
        }
    }

    /// This set's metadata with no samples (to rebuild a set from changed copies of them).
    pub fn clone_without_samples(&self) -> GraphSet {
        GraphSet {
            samples: Vec::new(),
            task: self.task,
            shared: self.shared.clone(),
            inr: self.inr,
            canonical_signs: self.canonical_signs,
        }
    }

    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.samples.len()).filter(|&i| self.samples[i].split == split).collect()
    }

    /// `1 / std` of the weights per edge layer index over the training split: puts the tiny
    /// hidden-layer weights of a SIREN and its larger first-layer weights on one scale.
    pub fn weight_scales(&self) -> Vec<f32> {
        let moments = self.training_moments(|f| {
            let l = f[0].max(0.0) as usize;
            (l < 4096).then_some(l)
        });
        let layers = moments.keys().next_back().map_or(0, |&l| l + 1);
        (0..layers)
            .map(|l| match moments.get(&l).and_then(Moments::mean_std) {
                Some((_, std)) => (1.0 / std) as f32,
                None => 1.0,
            })
            .collect()
    }

    /// Mean and standard deviation of the weight input per edge class (layer index, edge type)
    /// over the training split: weights and biases of each layer standardised separately (the
    /// tiny hidden weights of a SIREN, its larger first layer and its biases each land at unit
    /// scale). Reversed copies of undirected edges are not counted twice. Classes with fewer
    /// than two finite values or no spread are left out (their edges keep the raw value).
    pub fn edge_norm(&self) -> Vec<crate::models::config::EdgeNorm> {
        let moments = self.training_moments(|f| {
            let (layer, edge_type) = (f[0] as i64, f[1] as i64);
            (edge_type < crate::models::config::REVERSED).then_some((layer, edge_type))
        });
        moments
            .into_iter()
            .filter_map(|((layer, edge_type), m)| {
                let (mean, std) = m.mean_std()?;
                Some(crate::models::config::EdgeNorm { layer, edge_type, mean: mean as f32, std: std as f32 })
            })
            .collect()
    }

    /// Sums of the finite training-split weights grouped by `key(edge features)` (edges whose
    /// key is `None` are skipped).
    fn training_moments<K: Ord>(&self, key: impl Fn(&[f32; 5]) -> Option<K>) -> std::collections::BTreeMap<K, Moments> {
        let mut sums = std::collections::BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.split == Split::Train) {
            let topo = &s.input.topology;
            for (k, f) in topo.edge_features.iter().enumerate() {
                let Some(&w) = topo.weight_index.get(k).and_then(|&w| s.input.weights.get(w as usize)) else {
                    continue;
                };
                if let Some(group) = key(f).filter(|_| w.is_finite()) {
                    let m: &mut Moments = sums.entry(group).or_default();
                    m.sum += w as f64;
                    m.sum_sq += (w as f64) * (w as f64);
                    m.count += 1;
                }
            }
        }
        sums
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

/// Running sums of a group of weights.
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    sum: f64,
    sum_sq: f64,
    count: u64,
}

impl Moments {
    /// Mean and (population) standard deviation, when there are two values and a usable spread.
    fn mean_std(&self) -> Option<(f64, f64)> {
        if self.count < 2 {
            return None;
        }
        let mean = self.sum / self.count as f64;
        let std = (self.sum_sq / self.count as f64 - mean * mean).max(0.0).sqrt();
        (std > 1e-12 && std.is_finite() && std < 1e30).then_some((mean, std))
    }
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
