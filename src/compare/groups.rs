//! Permutation groups of an [`Architecture`]: the sets of hidden units (neurons, conv channels)
//! that can be reordered together without changing the function, and every tensor axis each
//! group indexes.
//!
//! Rules: a Linear or conv creates a group of its outputs; norms (BatchNorm, LayerNorm,
//! InstanceNorm: per-channel affine and statistics) and per-channel vectors act on the group they
//! read; a residual joins the two groups it adds into one (a residual stream is one group, shared
//! by every block that reads or writes it, shortcut projections included). A group is left as it
//! is (fixed) when it is the network's input or output, or when a layer reads it whose internal
//! structure is not modelled here: attention (heads), recurrent cells (gates), embeddings,
//! concatenations, slices, grouped convs, GroupNorm.

use crate::arch::{Architecture, Input, KernelLayout, LayerKind, MatrixLayout, NormKind};
use crate::checkpoint::TensorStore;

/// One permutation group.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Group {
    /// The first layer whose outputs are these units.
    pub name: String,
    pub size: usize,
    /// Why the group keeps its order (`None`: it is permuted).
    pub fixed: Option<String>,
}

/// One axis of a tensor indexed by a group: index `unit * block + q` (`q < block`) along `axis`
/// belongs to unit `unit` (`block > 1`: a Linear reading a flattened conv map, one column per
/// position of each channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    pub axis: usize,
    pub group: usize,
    pub block: usize,
}

/// A tensor of the architecture, by position: `arch.layers[layer].tensors[slot]`, so the same
/// spec applies to two files of one architecture whose tensor names differ.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorAxes {
    pub layer: usize,
    pub slot: usize,
    pub axes: Vec<Axis>,
}

/// The groups of an architecture and the tensor axes they index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Groups {
    pub groups: Vec<Group>,
    /// Only tensors with at least one axis on a permuted group.
    pub tensors: Vec<TensorAxes>,
}

impl Groups {
    /// Indices of the groups that are permuted.
    pub fn permuted(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups.iter().enumerate().filter(|(_, g)| g.fixed.is_none()).map(|(i, _)| i)
    }
}

/// Union-find over provisional groups.
#[derive(Default)]
struct Builder {
    parent: Vec<usize>,
    size: Vec<usize>,
    name: Vec<String>,
    fixed: Vec<Option<String>>,
    consumed: Vec<bool>,
}

impl Builder {
    fn new_group(&mut self, size: usize, name: &str) -> usize {
        self.parent.push(self.parent.len());
        self.size.push(size);
        self.name.push(name.to_string());
        self.fixed.push(None);
        self.consumed.push(false);
        self.parent.len() - 1
    }

    fn find(&mut self, mut g: usize) -> usize {
        while self.parent[g] != g {
            self.parent[g] = self.parent[self.parent[g]];
            g = self.parent[g];
        }
        g
    }

    fn fix(&mut self, g: Option<usize>, why: impl FnOnce() -> String) {
        if let Some(g) = g {
            let r = self.find(g);
            if self.fixed[r].is_none() {
                self.fixed[r] = Some(why());
            }
        }
    }

    fn consume(&mut self, g: Option<usize>) {
        if let Some(g) = g {
            let r = self.find(g);
            self.consumed[r] = true;
        }
    }

    /// Joins two groups (a residual adds them); groups of different sizes cannot be one group.
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        if self.size[ra] != self.size[rb] {
            let why = format!("a residual adds {} units to {}", self.size[rb], self.size[ra]);
            self.fix(Some(ra), || why.clone());
            self.fix(Some(rb), || why);
            return;
        }
        // The earlier group (lower index) stays the root, so a stream is named by its first layer.
        let (root, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[child] = root;
        if self.fixed[root].is_none() {
            self.fixed[root] = self.fixed[child].take();
        }
        self.consumed[root] |= self.consumed[child];
    }
}

/// The group an input refers to; a fresh input is a new fixed group.
fn resolve(
    b: &mut Builder,
    input: Input,
    width: usize,
    name: &str,
    out_group: &[Option<usize>],
    in_group: &[Option<usize>],
) -> Option<usize> {
    match input {
        Input::Fresh => {
            let g = b.new_group(width, name);
            b.fix(Some(g), || "network input".into());
            Some(g)
        }
        Input::Layer(j) => out_group.get(j).copied().flatten(),
        Input::InputOf(j) => in_group.get(j).copied().flatten(),
    }
}

/// The permutation groups of `arch` (tensor shapes from `store`).
pub fn groups(arch: &Architecture, store: &TensorStore) -> Groups {
    let mut b = Builder::default();
    let n = arch.layers.len();
    let mut out_group: Vec<Option<usize>> = vec![None; n];
    let mut in_group: Vec<Option<usize>> = vec![None; n];
    // (layer, slot, axes over provisional groups)
    let mut raw: Vec<(usize, usize, Vec<Axis>)> = Vec::new();
    let slot_of = |layer: usize, name: &str| arch.layers[layer].tensors.iter().position(|t| t == name);
    let shape_of = |name: &str| store.get(name).map(|t| t.shape.clone());

    for (i, layer) in arch.layers.iter().enumerate() {
        let width = layer.kind.in_width().unwrap_or(0);
        let input = if matches!(layer.kind, LayerKind::Embedding { .. } | LayerKind::Concat { .. }) {
            None
        } else {
            resolve(&mut b, layer.input, width, &layer.name, &out_group, &in_group)
        };
        in_group[i] = input;
        let kind_name = layer.kind.name();
        let unsupported =
            |b: &mut Builder, g: Option<usize>| b.fix(g, || format!("read by {kind_name} `{}`", layer.name));
        let mut push = |name: &str, axes: Vec<Axis>| {
            if let Some(slot) = slot_of(i, name)
                && !axes.is_empty()
            {
                raw.push((i, slot, axes));
            }
        };
        let axis = |axis: usize, group: usize, block: usize| Axis { axis, group, block };
        out_group[i] = match &layer.kind {
            LayerKind::Linear { in_features, out_features, weight, bias, layout, positions } => {
                let out = b.new_group(*out_features, &layer.name);
                b.consume(input);
                let positions = (*positions).max(1);
                let shape = shape_of(weight);
                let expected = match layout {
                    MatrixLayout::OutIn => vec![*out_features, *in_features],
                    MatrixLayout::InOut => vec![*in_features, *out_features],
                };
                let fits = input.is_some_and(|g| b.size[g] * positions == *in_features);
                if shape.as_deref() != Some(&expected[..]) || !fits {
                    unsupported(&mut b, input);
                    b.fix(Some(out), || format!("`{}`: weight shape not as its layer says", layer.name));
                } else if let Some(g) = input {
                    let (o, i_axis) = match layout {
                        MatrixLayout::OutIn => (0, 1),
                        MatrixLayout::InOut => (1, 0),
                    };
                    push(weight, vec![axis(o, out, 1), axis(i_axis, g, positions)]);
                    if let Some(bias) = bias
                        && shape_of(bias).as_deref() == Some(&[*out_features][..])
                    {
                        push(bias, vec![axis(0, out, 1)]);
                    }
                }
                Some(out)
            }
            LayerKind::Conv { dims, in_channels, out_channels, weight, bias, layout, groups, .. } => {
                let out = b.new_group(*out_channels, &layer.name);
                b.consume(input);
                let shape = shape_of(weight).unwrap_or_default();
                let (o_axis, i_axis) = match layout {
                    KernelLayout::OutInKernel => (0, 1),
                    KernelLayout::KernelInOut => (dims + 1, *dims),
                    KernelLayout::InOutKernel => (1, 0),
                };
                let fits = shape.len() == dims + 2
                    && shape.get(o_axis) == Some(out_channels)
                    && shape.get(i_axis) == Some(in_channels)
                    && input.is_some_and(|g| b.size[g] == *in_channels);
                if *groups != 1 || !fits {
                    let why = if *groups != 1 { "grouped conv" } else { "weight shape not as its layer says" };
                    b.fix(input, || format!("read by {why} `{}`", layer.name));
                    b.fix(Some(out), || format!("output of {why} `{}`", layer.name));
                } else if let Some(g) = input {
                    push(weight, vec![axis(o_axis, out, 1), axis(i_axis, g, 1)]);
                    if let Some(bias) = bias
                        && shape_of(bias).as_deref() == Some(&[*out_channels][..])
                    {
                        push(bias, vec![axis(0, out, 1)]);
                    }
                }
                Some(out)
            }
            LayerKind::Norm { kind, features, gamma, beta, buffers } => {
                if *kind == NormKind::Group {
                    unsupported(&mut b, input);
                } else if let Some(g) = input {
                    for t in gamma.iter().chain(beta).chain(buffers) {
                        if shape_of(t).as_deref() == Some(&[*features][..]) {
                            push(t, vec![axis(0, g, 1)]);
                        }
                    }
                }
                input
            }
            LayerKind::PerChannel { features, weight, .. } => {
                if let Some(g) = input
                    && shape_of(weight).as_deref() == Some(&[*features][..])
                {
                    push(weight, vec![axis(0, g, 1)]);
                }
                input
            }
            LayerKind::Residual { from, features, .. } => {
                let from = resolve(&mut b, *from, *features, &layer.name, &out_group, &in_group);
                match (input, from) {
                    (Some(a), Some(f)) => b.union(a, f),
                    (a, f) => {
                        unsupported(&mut b, a);
                        unsupported(&mut b, f);
                    }
                }
                input
            }
            LayerKind::Concat { parts, .. } => {
                for &p in parts {
                    let g = resolve(&mut b, p, 0, &layer.name, &out_group, &in_group);
                    b.consume(g);
                    unsupported(&mut b, g);
                }
                let out = b.new_group(layer.kind.out_width(), &layer.name);
                b.fix(Some(out), || format!("output of concat `{}`", layer.name));
                Some(out)
            }
            LayerKind::Slice { .. }
            | LayerKind::Embedding { .. }
            | LayerKind::Attention { .. }
            | LayerKind::Recurrent { .. } => {
                b.consume(input);
                unsupported(&mut b, input);
                let out = b.new_group(layer.kind.out_width(), &layer.name);
                b.fix(Some(out), || format!("output of {kind_name} `{}`", layer.name));
                Some(out)
            }
        };
    }

    // Groups no layer reads are the network's outputs.
    for g in 0..b.parent.len() {
        let r = b.find(g);
        if !b.consumed[r] {
            b.fix(Some(r), || "network output".into());
        }
    }
    // Renumber the roots densely, in order of first appearance.
    let mut dense = vec![usize::MAX; b.parent.len()];
    let mut groups = Vec::new();
    for g in 0..b.parent.len() {
        let r = b.find(g);
        if dense[r] == usize::MAX {
            dense[r] = groups.len();
            groups.push(Group { name: b.name[r].clone(), size: b.size[r], fixed: b.fixed[r].clone() });
        }
        dense[g] = dense[r];
    }
    let tensors = raw
        .into_iter()
        .filter_map(|(layer, slot, axes)| {
            let axes: Vec<Axis> = axes
                .into_iter()
                .map(|a| Axis { group: dense[a.group], ..a })
                .filter(|a| groups[a.group].fixed.is_none() && groups[a.group].size > 1)
                .collect();
            (!axes.is_empty()).then_some(TensorAxes { layer, slot, axes })
        })
        .collect();
    Groups { groups, tensors }
}
