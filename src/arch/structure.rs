//! Primitive layers -> wired [`Architecture`]: blocks, chains, residuals and heads.
//!
//! Rules (in the order they apply):
//! - Embedding tables that are siblings with one width (`embeddings.{word,position,token_type}_embeddings`)
//!   merge into one embedding layer: BERT sums them.
//! - **ResNet blocks**: a module `P` (ending in a number or named `*block*`/`res*`) with `P.conv1`
//!   and `P.conv2`. The main path (`conv1, bn1, conv2, bn2[, conv3, bn3]`) chains from the block
//!   input; a `P.downsample.*` / `P.shortcut.*` projection also reads the block input, its neurons
//!   sit beside the main path's last conv (`parallel_to`), and a residual adds the shortcut (or the
//!   block input itself) to the main path's output.
//! - **Transformer blocks**: the module around an attention layer (`encoder.layer.3`, `blocks.0`,
//!   `layers.2`). Sublayers: attention, then the remaining Linears as the feed-forward in file
//!   order, each followed by a residual. Norms go before each sublayer when the block stores its
//!   first norm before the attention (pre-LN), after each residual otherwise (post-LN).
//! - **BERT heads**: layers after `pooler` named `*predictions*`/`lm_head` read the sequence output
//!   (the pooler's input); `*seq_relationship*`/`classifier` read the pooler output.
//! - **Recurrent directions**: the reverse direction of a bidirectional layer reads what the
//!   forward one read; a `Concat` of both is what the next layer reads.
//! - **Everything else chains**: a layer reads the previous layer's output when the widths agree
//!   (or fit: a flattened conv map, a grouped conv); otherwise the nearest earlier group with its
//!   width (sibling heads); otherwise a fresh input group, and a note records the break.

use std::collections::HashSet;

use super::modules;
use super::primitives::{Prim, Prims};
use super::{Architecture, Input, KernelLayout, Layer, LayerKind, NormKind};
use crate::checkpoint::TensorStore;

/// Wires the primitives into an architecture.
pub(super) fn assemble(store: &TensorStore, prims: Prims) -> Architecture {
    let name_of = |i: usize| store.tensors().get(i).map(|t| t.name.clone()).unwrap_or_default();
    let layers = merge_embeddings(prims.layers);
    let blocks = find_blocks(&layers);
    let mut b = Builder {
        arch: Architecture::default(),
        tip: None,
        seq_output: None,
        pooler: None,
        in_transformer: false,
        store,
    };
    let mut done = vec![false; layers.len()];
    for i in 0..layers.len() {
        if done.get(i).copied().unwrap_or(true) {
            continue;
        }
        match blocks.iter().find(|blk| blk.members.contains(&i)) {
            Some(blk) => {
                let members: Vec<&Prim> = blk.members.iter().filter_map(|&m| layers.get(m)).collect();
                match blk.kind {
                    BlockKind::ResNet => b.resnet_block(&blk.prefix, &members),
                    BlockKind::Transformer => {
                        b.in_transformer = true;
                        b.transformer_block(&blk.prefix, &members);
                        b.in_transformer = false;
                    }
                }
                for &m in &blk.members {
                    if let Some(d) = done.get_mut(m) {
                        *d = true;
                    }
                }
            }
            None => {
                if let Some(p) = layers.get(i) {
                    b.single(p);
                }
                done[i] = true;
            }
        }
    }
    let mut unrecognized: Vec<String> = prims.unrecognized.into_iter().map(name_of).collect();
    unrecognized.append(&mut b.arch.unrecognized);
    if !b.arch.reasons.is_empty() {
        let position: std::collections::HashMap<&str, usize> =
            store.tensors().iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
        unrecognized.sort_by_key(|n| position.get(n.as_str()).copied().unwrap_or(usize::MAX));
    }
    b.arch.unrecognized = unrecognized;
    b.arch
}

/// Merges sibling embedding tables of one width into one layer (they are summed).
fn merge_embeddings(prims: Vec<Prim>) -> Vec<Prim> {
    let mut out: Vec<Prim> = Vec::with_capacity(prims.len());
    for p in prims {
        if let (Some(last), LayerKind::Embedding { dim, tables }) = (out.last_mut(), &p.kind) {
            // A merged layer is already named after the shared parent.
            let last_parent = if last.tensors.len() > 1 { last.name.as_str() } else { modules::parent(&last.name) };
            let same_parent = last_parent == modules::parent(&p.name);
            if let LayerKind::Embedding { dim: last_dim, tables: last_tables } = &mut last.kind
                && *last_dim == *dim
                && same_parent
                && !modules::parent(&p.name).is_empty()
            {
                last_tables.extend(tables.iter().cloned());
                last.tensors.extend(&p.tensors);
                last.name = modules::parent(&p.name).to_string();
                continue;
            }
        }
        out.push(p);
    }
    out
}

enum BlockKind {
    ResNet,
    Transformer,
}

struct Block {
    prefix: String,
    kind: BlockKind,
    /// Indices into the primitive list, in file order.
    members: Vec<usize>,
}

/// Attention module names stripped to find the transformer block around them.
const ATTENTION_WORDS: [&str; 7] =
    ["self", "attention", "attn", "self_attn", "self_attention", "mha", "multihead_attn"];
const SHORTCUT_WORDS: [&str; 2] = ["downsample", "shortcut"];

fn find_blocks(prims: &[Prim]) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut taken: HashSet<usize> = HashSet::new();
    let mut add = |prefix: String, kind: BlockKind, blocks: &mut Vec<Block>| {
        if blocks.iter().any(|b| b.prefix == prefix) {
            return;
        }
        let members: Vec<usize> = (0..prims.len())
            .filter(|&i| !taken.contains(&i) && prims.get(i).is_some_and(|p| modules::is_under(&p.name, &prefix)))
            .collect();
        taken.extend(&members);
        blocks.push(Block { prefix, kind, members });
    };
    for p in prims {
        if matches!(p.kind, LayerKind::Attention { .. }) {
            let mut prefix = p.name.as_str();
            while ATTENTION_WORDS.contains(&modules::last(prefix)) && !prefix.is_empty() {
                prefix = modules::parent(prefix);
            }
            if prefix != p.name && !prefix.is_empty() {
                add(prefix.to_string(), BlockKind::Transformer, &mut blocks);
            }
        }
    }
    let is_conv = |name: &str| prims.iter().any(|p| p.name == name && matches!(p.kind, LayerKind::Conv { .. }));
    for p in prims {
        let prefix = modules::parent(&p.name);
        let last = modules::last(prefix).to_ascii_lowercase();
        let block_like = last.chars().all(|c| c.is_ascii_digit()) || last.contains("block") || last.starts_with("res");
        if !prefix.is_empty()
            && block_like
            && is_conv(&modules::join(prefix, "conv1"))
            && is_conv(&modules::join(prefix, "conv2"))
        {
            add(prefix.to_string(), BlockKind::ResNet, &mut blocks);
        }
    }
    if let Some(block) = root_block(prims, &taken, is_conv) {
        blocks.push(block);
    }
    blocks
}

/// A residual block saved on its own (`torch.save(BasicBlock(1, 2).state_dict())`): `conv1`,
/// `conv2` (+ norms, `conv3`) and a `shortcut.*` / `downsample.*` projection at the top level.
/// The projection is what makes it a block: top-level `conv1`/`conv2` alone are just a CNN.
/// Only the block's own modules join it, so a head saved beside it stays outside.
fn root_block(prims: &[Prim], taken: &HashSet<usize>, is_conv: impl Fn(&str) -> bool) -> Option<Block> {
    const MAIN: [&str; 6] = ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3"];
    let is_shortcut = |name: &str| SHORTCUT_WORDS.iter().any(|w| modules::is_under(name, w));
    let has_projection = prims.iter().any(|p| is_shortcut(&p.name) && matches!(p.kind, LayerKind::Conv { .. }));
    if !(is_conv("conv1") && is_conv("conv2") && has_projection) {
        return None;
    }
    let members: Vec<usize> = (0..prims.len())
        .filter(|i| !taken.contains(i))
        .filter(|&i| prims.get(i).is_some_and(|p| MAIN.contains(&p.name.as_str()) || is_shortcut(&p.name)))
        .collect();
    Some(Block { prefix: String::new(), kind: BlockKind::ResNet, members })
}

struct Builder<'s> {
    arch: Architecture,
    /// Output of the most recent main-path layer (`None` before the first layer).
    tip: Option<Input>,
    /// BERT: the sequence output (what the pooler reads) and the pooler output.
    seq_output: Option<Input>,
    pooler: Option<Input>,
    /// Inside a transformer block an unnamed norm is a LayerNorm even after a conv (ViT patch embedding).
    in_transformer: bool,
    store: &'s TensorStore,
}

impl Builder<'_> {
    fn note(&mut self, note: String) {
        if !self.arch.notes.contains(&note) {
            self.arch.notes.push(note);
        }
    }

    /// The kind of the layer that created the neurons `input` refers to (through norms/residuals).
    fn source_kind(&self, input: Input) -> Option<&LayerKind> {
        let mut input = input;
        for _ in 0..=self.arch.layers.len() {
            match input {
                Input::Fresh => return None,
                Input::InputOf(i) => input = self.arch.layers.get(i)?.input,
                Input::Layer(i) => {
                    let layer = self.arch.layers.get(i)?;
                    if layer.kind.creates_neurons() {
                        return Some(&layer.kind);
                    }
                    input = layer.input;
                }
            }
        }
        None
    }

    /// `kind` adapted to read `have` neurons from `wanted`, if it can: unchanged when the widths
    /// agree; a Linear after a flattened conv map (`in = have * positions`) reads the channels
    /// with one parallel edge per position; a conv whose weight holds `in / groups` channels per
    /// output reads `have` channels in groups.
    fn fit(&self, kind: &LayerKind, wanted: Input, exact_only: bool) -> Option<LayerKind> {
        let need = kind.in_width()?;
        let have = self.arch.width_of(wanted)?;
        if have == need {
            return Some(kind.clone());
        }
        if exact_only || have == 0 {
            return None;
        }
        let from_conv = matches!(self.source_kind(wanted), Some(LayerKind::Conv { .. }));
        match kind {
            LayerKind::Linear { in_features, positions: 1, .. } if from_conv && in_features % have == 0 => {
                let mut k = kind.clone();
                if let LayerKind::Linear { positions, .. } = &mut k {
                    *positions = in_features / have;
                }
                Some(k)
            }
            LayerKind::Conv { in_channels, out_channels, groups: 1, layout: KernelLayout::OutInKernel, .. }
                if have > *in_channels && have % in_channels == 0 && out_channels % (have / in_channels) == 0 =>
            {
                let mut k = kind.clone();
                if let LayerKind::Conv { in_channels, groups, .. } = &mut k {
                    *groups = have / *in_channels;
                    *in_channels = have;
                }
                Some(k)
            }
            _ => None,
        }
    }

    /// Where `p` reads from and the layer it becomes. `wanted` first (as is, then flattened or
    /// grouped); else the nearest earlier group on the path back with exactly its width (sibling
    /// heads such as MTCNN's `dense5_1`/`dense5_2` read the same neurons); else a fresh input
    /// group, noted as a chain break.
    fn connect(&mut self, p: &Prim, wanted: Option<Input>) -> (Input, LayerKind) {
        let (Some(need), Some(wanted)) = (p.kind.in_width(), wanted) else { return (Input::Fresh, p.kind.clone()) };
        if let Some(kind) = self.fit(&p.kind, wanted, false) {
            match &kind {
                LayerKind::Linear { positions, in_features, .. } if *positions > 1 => self.note(format!(
                    "{}: reads a flattened conv map ({in_features} = {} channels x {positions} positions): one \
                     parallel edge per position, channel-major (torch) order assumed",
                    crate::text::shown(&p.name),
                    in_features / positions
                )),
                LayerKind::Conv { groups, .. } if *groups > 1 => self.note(format!(
                    "{}: a grouped convolution ({groups} groups), inferred from the widths",
                    crate::text::shown(&p.name)
                )),
                _ => {}
            }
            return (wanted, kind);
        }
        let mut back = wanted;
        for _ in 0..self.arch.layers.len().min(64) {
            let next = match back {
                Input::Layer(i) => self.arch.layers.get(i).map(|l| l.input),
                Input::InputOf(i) => self.arch.layers.get(i).map(|l| l.input),
                Input::Fresh => None,
            };
            let Some(next) = next.filter(|n| *n != Input::Fresh) else { break };
            // A layer's input, or (for a fresh one) the group it created: `InputOf`.
            back = next;
            if let Some(kind) = self.fit(&p.kind, back, true) {
                self.note(format!(
                    "{}: reads an earlier group of {need} neurons (a sibling head of the layer before it)",
                    crate::text::shown(&p.name)
                ));
                return (back, kind);
            }
        }
        if let Some(back) = self.fresh_input_with_width(wanted, need)
            && let Some(kind) = self.fit(&p.kind, back, true)
        {
            self.note(format!(
                "{}: reads an earlier group of {need} neurons (a sibling head of the layer before it)",
                crate::text::shown(&p.name)
            ));
            return (back, kind);
        }
        let have = self.arch.width_of(wanted).unwrap_or(0);
        self.note(format!(
            "{}: expects {need} inputs but the previous layer outputs {have}; it starts a new input group",
            crate::text::shown(&p.name)
        ));
        (Input::Fresh, p.kind.clone())
    }

    /// The network input behind `wanted` when it has `width` neurons (the first layer's fresh group).
    fn fresh_input_with_width(&self, wanted: Input, width: usize) -> Option<Input> {
        let mut input = wanted;
        for _ in 0..=self.arch.layers.len() {
            let i = match input {
                Input::Layer(i) | Input::InputOf(i) => i,
                Input::Fresh => return None,
            };
            let layer = self.arch.layers.get(i)?;
            if layer.input == Input::Fresh {
                let candidate = Input::InputOf(i);
                return (self.arch.width_of(candidate) == Some(width)).then_some(candidate);
            }
            input = layer.input;
        }
        None
    }

    /// Appends a layer and returns its index.
    fn push(&mut self, p: &Prim, kind: LayerKind, input: Input, parallel_to: Option<usize>) -> usize {
        let mut kind = kind;
        if p.norm_kind_guessed
            && !self.in_transformer
            && let LayerKind::Norm { kind: norm, .. } = &mut kind
            && matches!(self.source_kind(input), Some(LayerKind::Conv { .. }))
        {
            *norm = NormKind::Batch;
        }
        let tensors = p.tensors.iter().filter_map(|&i| self.store.tensors().get(i).map(|t| t.name.clone())).collect();
        self.arch.layers.push(Layer { name: p.name.clone(), kind, tensors, input, parallel_to });
        self.arch.layers.len() - 1
    }

    /// Connects and appends `p` after `wanted`; returns the new layer's output.
    fn chain(&mut self, p: &Prim, wanted: Option<Input>, parallel_to: Option<usize>) -> Input {
        // One slope shared by every channel (`nn.PReLU()` default): an edge per parameter cannot
        // reach every channel, so it stays out of the graph (listed with the reason).
        if let (LayerKind::PerChannel { features: 1, .. }, Some(w)) = (&p.kind, wanted)
            && self.arch.width_of(w).is_some_and(|have| have != 1)
        {
            for &t in &p.tensors {
                if let Some(info) = self.store.tensors().get(t) {
                    self.arch.unrecognized.push(info.name.clone());
                    self.arch.reasons.push(super::Reason {
                        tensor: info.name.clone(),
                        reason: "one value shared by all channels: an edge per parameter cannot reach each channel"
                            .into(),
                        non_weight: false,
                    });
                }
            }
            return w;
        }
        let (input, kind) = self.connect(p, wanted);
        let parallel_to = parallel_to.filter(|_| kind.creates_neurons());
        Input::Layer(self.push(p, kind, input, parallel_to))
    }

    /// The neurons a block reads: what its first layer reads (a fresh group is named by that layer).
    fn block_input(&self, first_layer: usize) -> Input {
        match self.arch.layers.get(first_layer).map(|l| l.input) {
            Some(Input::Fresh) | None => Input::InputOf(first_layer),
            Some(input) => input,
        }
    }

    /// Adds a residual from `from` into the neurons of `target`; returns the block output.
    fn residual(&mut self, prefix: &str, target: Input, from: Input, block_input: Input) -> Input {
        let (Some(have), Some(need)) = (self.arch.width_of(from), self.arch.width_of(target)) else { return target };
        if have != need {
            self.note(format!(
                "{}: residual skipped ({have} block inputs vs {need} outputs and no shortcut)",
                crate::text::shown(prefix)
            ));
            return target;
        }
        let Input::Layer(_) = target else { return target };
        let kind = LayerKind::Residual { from, block_input, features: need };
        let name = modules::join(prefix, "residual");
        self.arch.layers.push(Layer { name, kind, tensors: Vec::new(), input: target, parallel_to: None });
        Input::Layer(self.arch.layers.len() - 1)
    }

    fn single(&mut self, p: &Prim) {
        let lower = p.name.to_ascii_lowercase();
        let tip_name = match self.tip {
            Some(Input::Layer(i)) => self.arch.layers.get(i).map(|l| l.name.clone()).unwrap_or_default(),
            _ => String::new(),
        };
        let mut wanted = self.tip;
        if lower.contains("pooler") {
            self.seq_output = self.tip;
        } else if let Some(root) = seq_head_root(&p.name)
            && self.seq_output.is_some()
            && !modules::is_under(&tip_name, root)
        {
            wanted = self.seq_output;
        } else if (lower.contains("seq_relationship") || lower.contains("classifier")) && self.pooler.is_some() {
            wanted = self.pooler;
        }
        // The reverse direction of a bidirectional recurrent layer reads what the forward one read;
        // the next layer reads both directions' hidden nodes (torch concatenates them).
        if let Some((_, true)) = p.recurrent_layer
            && let Some(forward) = self.arch.layers.len().checked_sub(1)
            && let Some(fwd) = self.arch.layers.get(forward)
            && matches!(fwd.kind, LayerKind::Recurrent { .. })
        {
            let read = if fwd.input == Input::Fresh { Input::InputOf(forward) } else { fwd.input };
            let reverse = self.chain(p, Some(read), None);
            let name = modules::join(modules::parent(&p.name), "directions");
            self.tip = Some(Input::Layer(self.arch.join_directions(name, forward, reverse)));
            return;
        }
        let out = self.chain(p, wanted, None);
        if lower.contains("pooler") {
            self.pooler = Some(out);
        }
        self.tip = Some(out);
    }

    fn resnet_block(&mut self, prefix: &str, members: &[&Prim]) {
        let is_shortcut =
            |p: &Prim| SHORTCUT_WORDS.iter().any(|w| modules::is_under(&p.name, &modules::join(prefix, w)));
        let main: Vec<&Prim> = members.iter().copied().filter(|p| !is_shortcut(p)).collect();
        let shortcut: Vec<&Prim> = members.iter().copied().filter(|p| is_shortcut(p)).collect();
        let Some((first, rest)) = main.split_first() else { return };
        let mut out = self.chain(first, self.tip, None);
        let first_index = self.arch.layers.len() - 1;
        let block_in = self.block_input(first_index);
        let mut last_creating = first_index;
        for p in rest {
            out = self.chain(p, Some(out), None);
            if p.kind.creates_neurons() {
                last_creating = self.arch.layers.len() - 1;
            }
        }
        let mut skip = block_in;
        for p in &shortcut {
            skip = self.chain(p, Some(skip), Some(last_creating));
        }
        self.tip = Some(self.residual(prefix, out, skip, block_in));
    }

    fn transformer_block(&mut self, prefix: &str, members: &[&Prim]) {
        let Some(attn) = members.iter().copied().find(|p| matches!(p.kind, LayerKind::Attention { .. })) else {
            return;
        };
        let norms: Vec<&Prim> = members.iter().copied().filter(|p| matches!(p.kind, LayerKind::Norm { .. })).collect();
        let ffn: Vec<&Prim> = members
            .iter()
            .copied()
            .filter(|p| !matches!(p.kind, LayerKind::Norm { .. } | LayerKind::Attention { .. }))
            .collect();
        let pre_ln = norms.first().is_some_and(|n| n.order < attn.order);
        // One note per placement, naming the first block it applies to.
        let placement =
            if pre_ln { "pre-LN (norm before each sublayer)" } else { "post-LN (norm after each residual)" };
        if !self.arch.notes.iter().any(|n| n.contains(placement)) {
            self.note(format!(
                "transformer blocks such as {}: {placement} assumed from the order of the stored norms",
                crate::text::shown(prefix)
            ));
        }
        let mut norms = norms.into_iter();
        let mut x = self.tip;
        if pre_ln && let Some(n) = norms.next() {
            x = Some(self.chain(n, x, None));
        }
        let out = self.chain(attn, x, None);
        let attn_index = self.arch.layers.len() - 1;
        let block_in = self.block_input(attn_index);
        let mut y = self.residual(prefix, out, block_in, block_in);
        if !pre_ln && let Some(n) = norms.next() {
            y = self.chain(n, Some(y), None);
        }
        if let Some((first, rest)) = ffn.split_first() {
            let ffn_in = y;
            let mut h = y;
            if pre_ln && let Some(n) = norms.next() {
                h = self.chain(n, Some(h), None);
            }
            h = self.chain(first, Some(h), None);
            for p in rest {
                h = self.chain(p, Some(h), None);
            }
            y = self.residual(prefix, h, ffn_in, ffn_in);
        }
        for n in norms {
            y = self.chain(n, Some(y), None);
        }
        self.tip = Some(y);
    }
}

/// `cls.predictions.transform.dense` -> `cls.predictions`: the root of a masked-LM head.
fn seq_head_root(name: &str) -> Option<&str> {
    if let Some(i) = name.find("predictions") {
        return Some(&name[..i + "predictions".len()]);
    }
    name.starts_with("lm_head").then_some("lm_head")
}
