//! Modules -> primitive layers (Linear, Conv, Norm, Embedding, Attention) from leaf names and shapes.
//!
//! Every tensor ends up in exactly one primitive or in the unrecognised list. Shapes are checked
//! before a tensor is accepted (a Linear bias must have `out` elements, q/k/v must agree, ...);
//! a tensor that fails a check is reported, never trusted.

use super::modules::{self, Module, Modules};
use super::{Cell, EmbeddingTable, KernelLayout, LayerKind, MatrixLayout, NormKind, Projection, Qkv};
use crate::checkpoint::{TensorInfo, TensorStore};

/// A recognised layer before it is wired into the network.
#[derive(Clone, Debug)]
pub(super) struct Prim {
    /// Module path of the layer.
    pub name: String,
    pub kind: LayerKind,
    /// Store indices of every tensor the layer owns.
    pub tensors: Vec<usize>,
    /// Smallest store index among `tensors`: the layer's position in the file.
    pub order: usize,
    /// A norm whose kind came from no name or statistic: the structure pass picks Batch after a
    /// conv and Layer otherwise.
    pub norm_kind_guessed: bool,
    /// One layer of a torch `nn.LSTM`/`nn.GRU`/`nn.RNN`: (layer number, reverse direction).
    pub recurrent_layer: Option<(usize, bool)>,
}

/// Primitive layers in file order and the store indices nobody claimed.
#[derive(Debug, Default)]
pub(super) struct Prims {
    pub layers: Vec<Prim>,
    pub unrecognized: Vec<usize>,
}

/// Leaf names of norm running statistics (PyTorch and Keras).
const NORM_BUFFERS: [&str; 5] =
    ["running_mean", "running_var", "num_batches_tracked", "moving_mean", "moving_variance"];

/// Recognises the primitives of every module.
pub(super) fn recognize(store: &TensorStore, modules: &Modules) -> Prims {
    let mut claimed = vec![false; store.len()];
    let mut layers = Vec::new();
    // Attention first: it spans several modules (q, k, v, out) that would otherwise be Linears.
    for m in &modules.list {
        if let Some(prim) = attention(store, modules, m, &claimed) {
            claim(&mut claimed, &prim.tensors);
            layers.push(prim);
        }
    }
    for m in &modules.list {
        for prim in module_layers(store, modules, m, &claimed) {
            claim(&mut claimed, &prim.tensors);
            layers.push(prim);
        }
    }
    layers.sort_by_key(|p| p.order);
    let unrecognized = (0..store.len()).filter(|&i| !claimed.get(i).copied().unwrap_or(true)).collect();
    Prims { layers, unrecognized }
}

fn claim(claimed: &mut [bool], tensors: &[usize]) {
    for &t in tensors {
        if let Some(c) = claimed.get_mut(t) {
            *c = true;
        }
    }
}

fn prim(name: &str, kind: LayerKind, tensors: Vec<usize>) -> Prim {
    let order = tensors.iter().copied().min().unwrap_or(usize::MAX);
    Prim { name: name.to_string(), kind, tensors, order, norm_kind_guessed: false, recurrent_layer: None }
}

/// A float tensor (parameters must be floating point; integer tensors are buffers or ids).
fn float(store: &TensorStore, index: usize) -> Option<&TensorInfo> {
    store.tensors().get(index).filter(|t| t.dtype.is_float() && t.shape.iter().all(|&d| d > 0))
}

/// The unclaimed float tensor under `leaf` of `m`.
fn leaf<'s>(store: &'s TensorStore, m: &Module, leaf: &str, claimed: &[bool]) -> Option<(usize, &'s TensorInfo)> {
    let i = m.leaf(leaf)?;
    if claimed.get(i).copied().unwrap_or(true) {
        return None;
    }
    float(store, i).map(|t| (i, t))
}

/// A 1-D tensor of exactly `len` elements under `leaf_name`.
fn vector(store: &TensorStore, m: &Module, leaf_name: &str, len: usize, claimed: &[bool]) -> Option<usize> {
    leaf(store, m, leaf_name, claimed).filter(|(_, t)| t.shape == [len]).map(|(i, _)| i)
}

/// A linear-shaped module: `weight [out, in]` with an optional `bias [out]`.
struct Lin {
    weight: usize,
    bias: Option<usize>,
    out: usize,
    inp: usize,
}

fn linear_module(store: &TensorStore, m: &Module, claimed: &[bool]) -> Option<Lin> {
    let (weight, t) = leaf(store, m, "weight", claimed)?;
    let [out, inp] = t.shape[..] else { return None };
    let bias = vector(store, m, "bias", out, claimed);
    Some(Lin { weight, bias, out, inp })
}

fn projection(store: &TensorStore, lin: &Lin) -> Projection {
    let name = |i: usize| store.tensors().get(i).map(|t| t.name.clone()).unwrap_or_default();
    Projection { weight: name(lin.weight), bias: lin.bias.map(name) }
}

fn lin_tensors(lins: &[&Lin]) -> Vec<usize> {
    lins.iter().flat_map(|l| std::iter::once(l.weight).chain(l.bias)).collect()
}

/// Recognises attention rooted at module `m`:
/// - fused `in_proj_weight [3a, d]` (+ `in_proj_bias [3a]`) with `m.out_proj`;
/// - timm `m` = `*.qkv` (`[3a, d]`) with sibling `proj`;
/// - separate `query/key/value` (HF: output in `../output.dense`) or `q_proj/k_proj/v_proj`.
fn attention(store: &TensorStore, modules: &Modules, m: &Module, claimed: &[bool]) -> Option<Prim> {
    let name_of = |i: usize| store.tensors().get(i).map(|t| t.name.clone()).unwrap_or_default();
    // Fused nn.MultiheadAttention.
    if let Some((w, t)) = leaf(store, m, "in_proj_weight", claimed) {
        let [rows, d] = t.shape[..] else { return None };
        if rows % 3 != 0 {
            return None;
        }
        let a = rows / 3;
        let bias = vector(store, m, "in_proj_bias", rows, claimed);
        let out = linear_module(store, modules.get(&modules::join(&m.path, "out_proj"))?, claimed)?;
        if out.inp != a {
            return None;
        }
        let mut tensors = vec![w];
        tensors.extend(bias);
        tensors.extend(lin_tensors(&[&out]));
        let kind = LayerKind::Attention {
            embed_dim: d,
            attn_dim: a,
            out_dim: out.out,
            qkv: Qkv::Fused(Projection { weight: name_of(w), bias: bias.map(name_of) }),
            out: projection(store, &out),
        };
        return Some(prim(&m.path, kind, tensors));
    }
    let base = modules::parent(&m.path);
    match modules::last(&m.path) {
        // timm ViT: attn.qkv + attn.proj.
        "qkv" => {
            let qkv = linear_module(store, m, claimed)?;
            let out = linear_module(store, modules.get(&modules::join(base, "proj"))?, claimed)?;
            if qkv.out % 3 != 0 || out.inp != qkv.out / 3 {
                return None;
            }
            let kind = LayerKind::Attention {
                embed_dim: qkv.inp,
                attn_dim: qkv.out / 3,
                out_dim: out.out,
                qkv: Qkv::Fused(projection(store, &qkv)),
                out: projection(store, &out),
            };
            Some(prim(base, kind, lin_tensors(&[&qkv, &out])))
        }
        q_name @ ("query" | "q_proj" | "q_lin") => {
            let (k_name, v_name) = match q_name {
                "query" => ("key", "value"),
                "q_proj" => ("k_proj", "v_proj"),
                _ => ("k_lin", "v_lin"),
            };
            let sibling = |child: &str| modules.get(&modules::join(base, child));
            let q = linear_module(store, m, claimed)?;
            let k = linear_module(store, sibling(k_name)?, claimed)?;
            let v = linear_module(store, sibling(v_name)?, claimed)?;
            if (k.out, k.inp) != (q.out, q.inp) || (v.out, v.inp) != (q.out, q.inp) {
                return None;
            }
            // HF BERT keeps the output projection in `attention.output.dense`, beside `attention.self`.
            let hf_out = modules::join(&modules::join(modules::parent(base), "output"), "dense");
            let out_module = ["out_proj", "o_proj", "out_lin", "dense"]
                .iter()
                .find_map(|c| sibling(c))
                .or_else(|| (modules::last(base) == "self").then(|| modules.get(&hf_out)).flatten())?;
            let out = linear_module(store, out_module, claimed)?;
            if out.inp != q.out {
                return None;
            }
            let kind = LayerKind::Attention {
                embed_dim: q.inp,
                attn_dim: q.out,
                out_dim: out.out,
                qkv: Qkv::Separate { q: projection(store, &q), k: projection(store, &k), v: projection(store, &v) },
                out: projection(store, &out),
            };
            Some(prim(base, kind, lin_tensors(&[&q, &k, &v, &out])))
        }
        _ => None,
    }
}

/// Names of embedding modules: `word_embeddings`, `embed_tokens`, `wte`, `wpe`, `embedding`, ...
fn is_embedding_name(path: &str) -> bool {
    let last = modules::last(path).to_ascii_lowercase();
    last.contains("embed") || matches!(last.as_str(), "wte" | "wpe" | "tok_emb" | "pos_emb" | "emb")
}

/// Norm kind from a module name, `None` when the name does not say.
fn norm_kind_from_name(path: &str) -> Option<NormKind> {
    let last = modules::last(path).to_ascii_lowercase();
    let starts = |p: &str| {
        last.strip_prefix(p).is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '_' || c == 'f'))
    };
    if last.contains("layernorm") || last.contains("layer_norm") || starts("ln") {
        Some(NormKind::Layer)
    } else if last.contains("batchnorm") || last.contains("batch_norm") || starts("bn") {
        Some(NormKind::Batch)
    } else if last.contains("groupnorm") || last.contains("group_norm") || starts("gn") {
        Some(NormKind::Group)
    } else if last.contains("instancenorm") || last.contains("instance_norm") {
        Some(NormKind::Instance)
    } else {
        None
    }
}

fn looks_like_norm(path: &str) -> bool {
    norm_kind_from_name(path).is_some() || modules::last(path).to_ascii_lowercase().contains("norm")
}

/// The layers of one module's unclaimed leaves (usually zero or one).
fn module_layers(store: &TensorStore, modules: &Modules, m: &Module, claimed: &[bool]) -> Vec<Prim> {
    let weight_leaf = if m.leaf("kernel").is_some() { "kernel" } else { "weight" };
    let keras = weight_leaf == "kernel";
    if let Some((w, t)) = leaf(store, m, weight_leaf, claimed) {
        match t.shape.len() {
            2 => return vec![matrix_layer(store, m, w, t, keras, claimed)],
            3..=5 => return vec![conv_layer(store, m, w, t, keras, claimed)],
            _ => {}
        }
    }
    let recurrent = recurrent_layers(store, m, claimed);
    if !recurrent.is_empty() {
        return recurrent;
    }
    if let Some(p) = per_channel(store, m, claimed) {
        return vec![p];
    }
    if let Some(p) = norm_layer(store, m, claimed) {
        return vec![p];
    }
    decoder_bias(store, modules, m, claimed).into_iter().collect()
}

/// Linear or embedding table from a 2-D weight.
fn matrix_layer(store: &TensorStore, m: &Module, w: usize, t: &TensorInfo, keras: bool, claimed: &[bool]) -> Prim {
    let (rows, cols) = match t.shape[..] {
        [r, c] => (r, c),
        _ => (0, 0),
    };
    if !keras && is_embedding_name(&m.path) && m.leaf("bias").is_none() {
        let table = EmbeddingTable { tensor: t.name.clone(), num: rows, layout: MatrixLayout::InOut };
        return prim(&m.path, LayerKind::Embedding { dim: cols, tables: vec![table] }, vec![w]);
    }
    let (in_features, out_features, layout) =
        if keras { (rows, cols, MatrixLayout::InOut) } else { (cols, rows, MatrixLayout::OutIn) };
    let bias = vector(store, m, "bias", out_features, claimed);
    let name_of = |i: usize| store.tensors().get(i).map(|t| t.name.clone()).unwrap_or_default();
    let kind = LayerKind::Linear {
        in_features,
        out_features,
        weight: t.name.clone(),
        bias: bias.map(name_of),
        layout,
        positions: 1,
    };
    prim(&m.path, kind, std::iter::once(w).chain(bias).collect())
}

/// Conv1d/2d/3d from a 3/4/5-D weight (`[out, in, k...]`, Keras `[k..., in, out]`).
fn conv_layer(store: &TensorStore, m: &Module, w: usize, t: &TensorInfo, keras: bool, claimed: &[bool]) -> Prim {
    let n = t.shape.len();
    let (in_channels, out_channels, kernel, layout) = if keras {
        (t.shape[n - 2], t.shape[n - 1], t.shape[..n - 2].to_vec(), KernelLayout::KernelInOut)
    } else {
        (t.shape[1], t.shape[0], t.shape[2..].to_vec(), KernelLayout::OutInKernel)
    };
    let bias = vector(store, m, "bias", out_channels, claimed);
    let name_of = |i: usize| store.tensors().get(i).map(|t| t.name.clone()).unwrap_or_default();
    let kind = LayerKind::Conv {
        dims: n - 2,
        in_channels,
        out_channels,
        kernel,
        weight: t.name.clone(),
        bias: bias.map(name_of),
        layout,
        groups: 1,
    };
    prim(&m.path, kind, std::iter::once(w).chain(bias).collect())
}

/// A norm: 1-D `weight`/`gamma` and/or `bias`/`beta` of one length, plus running statistics.
/// A lone 1-D `weight` counts only under a norm-like name; a lone `bias` never does.
fn norm_layer(store: &TensorStore, m: &Module, claimed: &[bool]) -> Option<Prim> {
    let one_d = |name: &str| leaf(store, m, name, claimed).filter(|(_, t)| t.shape.len() == 1);
    let gamma = one_d("weight").or_else(|| one_d("gamma"));
    let features = gamma.map(|(_, t)| t.shape[0])?;
    let beta = ["bias", "beta"].iter().find_map(|b| vector(store, m, b, features, claimed));
    let buffers: Vec<usize> = NORM_BUFFERS
        .iter()
        .filter_map(|b| m.leaf(b))
        .filter(|&i| {
            let t = store.tensors().get(i);
            !claimed.get(i).copied().unwrap_or(true) && t.is_some_and(|t| t.shape == [features] || t.shape.is_empty())
        })
        .collect();
    if beta.is_none() && buffers.is_empty() && !looks_like_norm(&m.path) {
        return None;
    }
    let named = norm_kind_from_name(&m.path);
    // Running statistics only exist for batch norm (and instance norm with track_running_stats).
    let has_stats = !buffers.is_empty();
    let kind = match named {
        Some(NormKind::Instance) => NormKind::Instance,
        _ if has_stats => NormKind::Batch,
        Some(k) => k,
        // Old BERT `gamma/beta` and unnamed affine norms: LayerNorm (the structure pass turns an
        // unnamed one after a conv into BatchNorm).
        None => NormKind::Layer,
    };
    let name_of = |i: usize| store.tensors().get(i).map(|t| t.name.clone()).unwrap_or_default();
    let g = gamma.map(|(i, _)| i);
    let mut tensors: Vec<usize> = g.into_iter().chain(beta).collect();
    tensors.extend(&buffers);
    let kind_of = LayerKind::Norm {
        kind,
        features,
        gamma: g.map(name_of),
        beta: beta.map(name_of),
        buffers: buffers.iter().map(|&i| name_of(i)).collect(),
    };
    let mut p = prim(&m.path, kind_of, tensors);
    p.norm_kind_guessed = named.is_none() && !has_stats && m.leaf("gamma").is_none();
    Some(p)
}

/// HF masked-LM heads keep the decoder bias beside the decoder (`cls.predictions.bias` next to
/// `cls.predictions.decoder.weight`): a bias-only module is claimed by its `decoder` child when
/// that child is a bias-free Linear of matching width. The decoder module itself is recognised
/// later, so this returns a Linear that takes both.
fn decoder_bias(store: &TensorStore, modules: &Modules, m: &Module, claimed: &[bool]) -> Option<Prim> {
    let (b, bias) = leaf(store, m, "bias", claimed)?;
    let decoder = modules.get(&modules::join(&m.path, "decoder"))?;
    if decoder.leaf("bias").is_some() {
        return None;
    }
    let lin = linear_module(store, decoder, claimed)?;
    if bias.shape != [lin.out] {
        return None;
    }
    let name_of = |i: usize| store.tensors().get(i).map(|t| t.name.clone()).unwrap_or_default();
    let kind = LayerKind::Linear {
        in_features: lin.inp,
        out_features: lin.out,
        weight: name_of(lin.weight),
        bias: Some(bias.name.clone()),
        layout: MatrixLayout::OutIn,
        positions: 1,
    };
    let mut p = prim(&decoder.path, kind, vec![lin.weight, b]);
    // The bias is stored first, but the decoder runs where its weight sits (after the transform).
    p.order = lin.weight;
    Some(p)
}

/// A per-channel parameter vector that is not a norm: PReLU slopes (`prelu1.weight`, Keras
/// `p_re_lu/alpha`) and layer scale (`ls1.gamma`, `layer_scale`, a block's lone `gamma`).
fn per_channel(store: &TensorStore, m: &Module, claimed: &[bool]) -> Option<Prim> {
    let last = modules::last(&m.path).to_ascii_lowercase();
    let vector = |leaf_name: &str| {
        leaf(store, m, leaf_name, claimed)
            .filter(|(_, t)| t.shape.iter().filter(|&&d| d != 1).count() <= 1 && !t.shape.is_empty())
    };
    let is_scale_name = (last.starts_with("ls") && last[2..].chars().all(|c| c.is_ascii_digit()))
        || last.contains("layer_scale")
        || last.contains("layerscale");
    let (role, found) = if last.contains("prelu") || last.contains("p_re_lu") {
        ("prelu", vector("weight").or_else(|| vector("alpha")))
    } else if is_scale_name {
        ("layer-scale", vector("gamma").or_else(|| vector("weight")).or_else(|| vector("scale")))
    } else if m.leaves.len() == 1 && !looks_like_norm(&m.path) {
        // ConvNeXt keeps its layer scale as a block's only direct leaf, `gamma`.
        ("layer-scale", vector("gamma"))
    } else {
        return None;
    };
    let (i, t) = found?;
    let kind = LayerKind::PerChannel { role: role.into(), features: t.num_elements(), weight: t.name.clone() };
    Some(prim(&m.path, kind, vec![i]))
}

/// Recurrent layers: torch `LSTMCell`/`GRUCell`/`RNNCell` (`weight_ih`, `weight_hh`, `bias_ih`,
/// `bias_hh`) and `nn.LSTM`/`nn.GRU`/`nn.RNN` (the same leaves with `_l{k}` and `_reverse`
/// suffixes, one layer per suffix). The cell comes from the gate count, `rows / hidden`.
fn recurrent_layers(store: &TensorStore, m: &Module, claimed: &[bool]) -> Vec<Prim> {
    let mut out = Vec::new();
    for (leaf_name, _) in &m.leaves {
        let Some(suffix) = leaf_name.strip_prefix("weight_ih") else { continue };
        let Some((wi, ti)) = leaf(store, m, leaf_name, claimed) else { continue };
        let Some((wh, th)) = leaf(store, m, &format!("weight_hh{suffix}"), claimed) else { continue };
        let (&[rows, input_size], &[rows_h, hidden]) = (&ti.shape[..], &th.shape[..]) else { continue };
        let cell =
            (hidden > 0 && rows == rows_h && rows % hidden == 0).then(|| Cell::from_gates(rows / hidden)).flatten();
        let Some(cell) = cell else { continue };
        let bias_ih = vector(store, m, &format!("bias_ih{suffix}"), rows, claimed);
        let bias_hh = vector(store, m, &format!("bias_hh{suffix}"), rows, claimed);
        let name_of = |i: usize| store.tensors().get(i).map(|t| t.name.clone()).unwrap_or_default();
        let kind = LayerKind::Recurrent {
            cell,
            input_size,
            hidden,
            weight_ih: name_of(wi),
            weight_hh: name_of(wh),
            bias_ih: bias_ih.map(name_of),
            bias_hh: bias_hh.map(name_of),
            direction: 0,
            directions: 1,
        };
        let tensors = [Some(wi), Some(wh), bias_ih, bias_hh].into_iter().flatten().collect();
        let reverse = suffix.ends_with("_reverse");
        let number = suffix.trim_start_matches("_l").trim_end_matches("_reverse").parse::<usize>().ok();
        let name = if suffix.is_empty() { m.path.clone() } else { modules::join(&m.path, &suffix[1..]) };
        let mut p = prim(&name, kind, tensors);
        p.recurrent_layer = number.map(|n| (n, reverse));
        out.push(p);
    }
    out
}
