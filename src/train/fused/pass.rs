//! One graph's forward and backward pass through the whole GMN, written out by hand.
//!
//! The algebra is `models::block`'s factored EdgeMPNN (and `models::gmn`'s encoders, readout and
//! head) for ONE network: node rows `[N, h]`, edge rows `[E, h]`. The forward pass keeps what
//! the backward pass needs in a per-thread [`Workspace`] that is reused for every graph, so a
//! step allocates nothing and one graph's working set stays in cache.
//!
//! Gradients of the parameters add into `Workspace::grad` (the flat layout of
//! `params::Layout`), except the encoders' constant parts: their gradients with respect to the
//! per-node and per-edge constants (`x0`, `fixed_edges`) add into `dx0` / `dfixed` and are turned
//! into parameter gradients once per step (`super::encoders`).

use super::block0::{Block0, Block0Grads, Block0Scratch};
use super::kernels::{
    add_bias_gathers, add_column_sums, add_row, copy_add_row, gather_scale_sum, layer_norm, layer_norm_backward,
    layer_norm_backward_from_input, layer_norm_stats, matmul, mul_assign, scale_sum_scatter2, scatter_add, silu,
    silu_backward, silu_with_derivative,
};
use super::params::{BlockOffsets, Layout};
use super::plan::Plan;
use super::pna::PnaCache;
use crate::models::probe::ProbeActivation;
use crate::models::{Readout, WeightLift};

/// What one block's backward pass reads from its forward pass.
struct BlockCache {
    xhat: Vec<f32>,
    x_rstd: Vec<f32>,
    xn: Vec<f32>,
    e_mean: Vec<f32>,
    e_rstd: Vec<f32>,
    en: Vec<f32>,
    /// SiLU outputs and derivatives (`d* = silu'(a*)`) of the three MLPs' hidden layers.
    z1: Vec<f32>,
    d1: Vec<f32>,
    d2: Vec<f32>,
    mean: Vec<f32>,
    agg: Vec<f32>,
    z3: Vec<f32>,
    d3: Vec<f32>,
    /// PNA's aggregates (`None` for the EdgeMPNN's mean).
    pna: Option<PnaCache>,
}

impl BlockCache {
    fn new(n: usize, m: usize, h: usize, pna: bool) -> Self {
        let (nh, mh) = (vec![0.0; n * h], vec![0.0; m * h]);
        Self {
            pna: pna.then(|| PnaCache::new(n, m, h)),
            xhat: nh.clone(),
            x_rstd: vec![0.0; n],
            xn: nh.clone(),
            e_mean: vec![0.0; m],
            e_rstd: vec![0.0; m],
            en: mh.clone(),
            z1: mh.clone(),
            d1: mh.clone(),
            d2: mh,
            mean: nh.clone(),
            agg: nh.clone(),
            z3: nh.clone(),
            d3: nh,
        }
    }
}

/// Per-step values every graph shares: the parameters and the encoders' constant parts.
pub struct Shared<'a> {
    pub params: &'a [f32],
    /// `[N, h]`: the node encoder's output (the same for every network of the topology).
    pub x0: &'a [f32],
    /// `[E, h]`: the edge encoder's output without the weight term.
    pub fixed_edges: &'a [f32],
    /// The first block's class-level edge LayerNorm and linear (`None` without blocks).
    pub block0: Option<&'a Block0>,
}

/// What a graph is trained towards.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    Class(usize),
    /// A standardised value.
    Value(f32),
}

/// One worker thread's buffers and gradient sums.
pub struct Workspace {
    blocks: Vec<BlockCache>,
    /// Edge states `e_0 .. e_L`.
    edges: Vec<Vec<f32>>,
    x: Vec<f32>,
    weights: Vec<f32>,
    raw_weights: Vec<f32>,
    /// `[E, lift_width]` lifted weights (Fourier lift only), and one lifted bias.
    lifted: Vec<f32>,
    lift_row: Vec<f32>,
    probe_act: Vec<f32>,
    probe_z: Vec<f32>,
    ps: Vec<f32>,
    pd: Vec<f32>,
    qs: Vec<f32>,
    pre: Vec<f32>,
    z2: Vec<f32>,
    fn_hat: Vec<f32>,
    fn_rstd: Vec<f32>,
    fn_out: Vec<f32>,
    fe_hat: Vec<f32>,
    fe_rstd: Vec<f32>,
    fe_out: Vec<f32>,
    embedding: Vec<f32>,
    hid: Vec<f32>,
    zh: Vec<f32>,
    /// The last graph's output row (logits or the value).
    pub out: Vec<f32>,
    // Backward buffers.
    dx: Vec<f32>,
    de: Vec<f32>,
    dxn: Vec<f32>,
    den: Vec<f32>,
    dz: Vec<f32>,
    da2: Vec<f32>,
    dps: Vec<f32>,
    dpd: Vec<f32>,
    dqs: Vec<f32>,
    dmean: Vec<f32>,
    dagg: Vec<f32>,
    /// `[N, 8h]` with PNA (empty otherwise): the gradient of the aggregates.
    daggin: Vec<f32>,
    da3: Vec<f32>,
    ln_scratch: Vec<f32>,
    demb: Vec<f32>,
    dhid: Vec<f32>,
    dout: Vec<f32>,
    /// Sums over this worker's graphs.
    pub grad: Vec<f32>,
    pub dx0: Vec<f32>,
    /// `[classes, h]`: gradient sums of the edge classes' constants (`Plan::edge_class`).
    pub dfixed: Vec<f32>,
    b0: Block0Scratch,
    pub loss_sum: f64,
    pub correct: usize,
}

impl Workspace {
    pub fn new(plan: &Plan, layout: &Layout) -> Self {
        let (n, m, h) = (plan.n, plan.m, layout.h);
        let k = layout.probe_points;
        let nh = vec![0.0; n * h];
        let mh = vec![0.0; m * h];
        Self {
            blocks: (0..layout.blocks.len()).map(|_| BlockCache::new(n, m, h, layout.agg_width > 1)).collect(),
            edges: (0..=layout.blocks.len()).map(|_| mh.clone()).collect(),
            x: nh.clone(),
            weights: vec![0.0; m],
            raw_weights: vec![0.0; m],
            lifted: if layout.lift_width > 1 { vec![0.0; m * layout.lift_width] } else { Vec::new() },
            lift_row: vec![0.0; layout.lift_width],
            probe_act: vec![0.0; n * k],
            probe_z: vec![0.0; n * k],
            ps: nh.clone(),
            pd: nh.clone(),
            qs: nh.clone(),
            pre: mh.clone(),
            z2: mh.clone(),
            fn_hat: nh.clone(),
            fn_rstd: vec![0.0; n],
            fn_out: nh.clone(),
            fe_hat: mh.clone(),
            fe_rstd: vec![0.0; m],
            fe_out: mh.clone(),
            embedding: vec![0.0; layout.embedding],
            hid: vec![0.0; h],
            zh: vec![0.0; h],
            out: vec![0.0; layout.outputs],
            dx: nh.clone(),
            de: mh.clone(),
            dxn: nh.clone(),
            den: mh.clone(),
            dz: mh.clone(),
            da2: mh.clone(),
            dps: nh.clone(),
            dpd: nh.clone(),
            dqs: nh.clone(),
            dmean: nh.clone(),
            dagg: nh.clone(),
            daggin: if layout.agg_width > 1 { vec![0.0; n * layout.agg_width * h] } else { Vec::new() },
            da3: nh.clone(),
            ln_scratch: vec![0.0; 2 * h],
            demb: vec![0.0; layout.embedding],
            dhid: vec![0.0; h],
            dout: vec![0.0; layout.outputs],
            grad: vec![0.0; layout.len],
            dx0: nh,
            dfixed: vec![0.0; plan.class_rep.len() * h],
            b0: Block0Scratch::new(plan, h),
            loss_sum: 0.0,
            correct: 0,
        }
    }

    /// Clears the sums before a step.
    pub fn reset(&mut self) {
        self.grad.fill(0.0);
        self.dx0.fill(0.0);
        self.dfixed.fill(0.0);
        self.loss_sum = 0.0;
        self.correct = 0;
    }
}

/// Forward pass of the network with weight column `column`; with a goal, also the loss and the
/// backward pass (gradients scaled by `scale`, the graph's share of the batch mean).
#[inline(always)]
pub fn run_graph(
    ws: &mut Workspace,
    shared: &Shared<'_>,
    plan: &Plan,
    layout: &Layout,
    column: &[f32],
    goal: Option<Goal>,
    scale: f32,
) {
    forward(ws, shared, plan, layout, column);
    if let Some(goal) = goal {
        loss_gradient(ws, goal, scale);
        backward(ws, shared, plan, layout);
    }
}

#[inline(always)]
fn forward(ws: &mut Workspace, shared: &Shared<'_>, plan: &Plan, layout: &Layout, column: &[f32]) {
    let p = shared.params;
    let (n, m, h) = (plan.n, plan.m, layout.h);
    // Edge encoder: only the weight term depends on the network.
    for e in 0..m {
        let raw = column[plan.weight_index[e] as usize];
        ws.raw_weights[e] = raw;
        ws.weights[e] = raw * plan.edge_scale[e] + plan.edge_shift[e];
    }
    let lw = layout.lift_width;
    if lw == 1 {
        let ww = &p[layout.edge_weight_w..layout.edge_weight_w + h];
        let e0 = &mut ws.edges[0];
        for e in 0..m {
            let w = ws.weights[e];
            let fixed = &shared.fixed_edges[e * h..(e + 1) * h];
            let row = &mut e0[e * h..(e + 1) * h];
            for j in 0..h {
                row[j] = w * ww[j] + fixed[j];
            }
        }
    } else {
        // Fourier lift: e_0 = lift(s) W + fixed, one [E, 2k] x [2k, h] product.
        for (e, row) in ws.lifted.chunks_exact_mut(lw).enumerate() {
            WeightLift::features(&plan.omega, ws.weights[e], row);
        }
        let e0 = &mut ws.edges[0];
        e0.copy_from_slice(shared.fixed_edges);
        matmul(e0, m, h, lw, &ws.lifted, false, &p[layout.edge_weight_w..], false, true);
    }
    ws.x.copy_from_slice(shared.x0);
    if let Some(probe) = &plan.probe {
        probe_activations(ws, probe);
        let k = layout.probe_points;
        matmul(&mut ws.x, n, h, k, &ws.probe_act, false, &p[layout.probe_w..], false, true);
        add_row(&mut ws.x, h, &p[layout.probe_b..layout.probe_b + h]);
    }
    if let Some(bias_nodes) = &plan.bias_nodes {
        let matrix = &p[layout.bias_row..layout.bias_row + lw * h];
        for &(v, e) in bias_nodes {
            WeightLift::features(&plan.omega, ws.weights[e as usize], &mut ws.lift_row);
            let x = &mut ws.x[v as usize * h..(v as usize + 1) * h];
            for (value, row) in ws.lift_row.iter().zip(matrix.chunks_exact(h)) {
                x.iter_mut().zip(row).for_each(|(x, r)| *x += value * r);
            }
        }
    }
    for (l, o) in layout.blocks.iter().enumerate() {
        let (before, after) = ws.edges.split_at_mut(l + 1);
        block_forward(
            &mut ws.blocks[l],
            o,
            p,
            plan,
            h,
            &mut ws.x,
            &before[l],
            &mut after[0],
            &mut ws.ps,
            &mut ws.pd,
            &mut ws.qs,
            &mut ws.pre,
            &mut ws.z2,
            shared.block0.filter(|_| l == 0).map(|b| (b, ws.weights.as_slice())),
        );
    }
    // Readout: means of the final LayerNorms, plus the output neurons' mean when read.
    let e_last = &ws.edges[layout.blocks.len()];
    let mut at = 0;
    let nodes_read = layout.readout != Readout::Edges || plan.output_nodes.is_some();
    if nodes_read {
        layer_norm(
            &ws.x,
            h,
            &p[layout.final_node_gamma..],
            &p[layout.final_node_beta..],
            &mut ws.fn_hat,
            &mut ws.fn_rstd,
            &mut ws.fn_out,
        );
    }
    if layout.readout != Readout::Edges {
        mean_rows(&ws.fn_out, h, &mut ws.embedding[at..at + h]);
        at += h;
    }
    if layout.readout != Readout::Nodes {
        layer_norm(
            e_last,
            h,
            &p[layout.final_edge_gamma..],
            &p[layout.final_edge_beta..],
            &mut ws.fe_hat,
            &mut ws.fe_rstd,
            &mut ws.fe_out,
        );
        mean_rows(&ws.fe_out, h, &mut ws.embedding[at..at + h]);
        at += h;
    }
    if let Some(outputs) = &plan.output_nodes {
        let out = &mut ws.embedding[at..at + h];
        out.fill(0.0);
        for &v in outputs {
            for (o, x) in out.iter_mut().zip(&ws.fn_out[v as usize * h..(v as usize + 1) * h]) {
                *o += x;
            }
        }
        let inv = if outputs.is_empty() { 0.0 } else { 1.0 / outputs.len() as f32 };
        out.iter_mut().for_each(|o| *o *= inv);
    }
    // Head: Linear -> SiLU -> Linear.
    let w = layout.embedding;
    matmul(&mut ws.hid, 1, h, w, &ws.embedding, false, &p[layout.head_hidden_w..], false, false);
    add_row(&mut ws.hid, h, &p[layout.head_hidden_b..layout.head_hidden_b + h]);
    silu(&ws.hid, &mut ws.zh);
    let c = layout.outputs;
    matmul(&mut ws.out, 1, c, h, &ws.zh, false, &p[layout.head_out_w..], false, false);
    add_row(&mut ws.out, c, &p[layout.head_out_b..layout.head_out_b + c]);
}

/// `[N, K]` probe activations of the network whose raw weights are in `ws.raw_weights`.
#[inline(always)]
fn probe_activations(ws: &mut Workspace, probe: &super::plan::ProbeSetup) {
    let k = probe.config.points;
    let ProbeActivation::Sine { omega_0, output_offset } = probe.config.activation;
    let pp = &probe.plan;
    ws.probe_act.copy_from_slice(&probe.fixed);
    // Layer by layer, input to output: each edge is visited once (a layer's sources are final
    // when its turn comes), so the cost is O(edges x K), not O(layers x edges x K).
    for (positions, nodes) in &probe.layer_groups {
        for &v in nodes {
            ws.probe_z[v as usize * k..(v as usize + 1) * k].fill(0.0);
        }
        for &p in positions {
            let p = p as usize;
            let w = ws.raw_weights[pp.edges[p] as usize];
            let (s, d) = (pp.src[p] as usize, pp.dst[p] as usize);
            for j in 0..k {
                ws.probe_z[d * k + j] += ws.probe_act[s * k + j] * w;
            }
        }
        for &v in nodes {
            let v = v as usize;
            let (fixed, z, act) = (
                &probe.fixed[v * k..(v + 1) * k],
                &ws.probe_z[v * k..(v + 1) * k],
                &mut ws.probe_act[v * k..(v + 1) * k],
            );
            if pp.is_hidden[v] {
                for j in 0..k {
                    act[j] = fixed[j] + (omega_0 * z[j]).sin();
                }
            } else if pp.is_output[v] {
                for j in 0..k {
                    act[j] = fixed[j] + z[j] + output_offset;
                }
            }
        }
    }
}

#[inline(always)]
fn mean_rows(x: &[f32], h: usize, out: &mut [f32]) {
    out.fill(0.0);
    let rows = x.len() / h;
    add_column_sums(out, h, x);
    let inv = 1.0 / rows.max(1) as f32;
    out.iter_mut().for_each(|o| *o *= inv);
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block_forward(
    c: &mut BlockCache,
    o: &BlockOffsets,
    p: &[f32],
    plan: &Plan,
    h: usize,
    x: &mut [f32],
    e: &[f32],
    e_next: &mut [f32],
    ps: &mut [f32],
    pd: &mut [f32],
    qs: &mut [f32],
    pre: &mut [f32],
    z2: &mut [f32],
    first: Option<(&Block0, &[f32])>,
) {
    let (n, m) = (plan.n, plan.m);
    layer_norm(x, h, &p[o.node_gamma..], &p[o.node_beta..], &mut c.xhat, &mut c.x_rstd, &mut c.xn);
    // Node terms of the edge and message MLPs' first linears, computed per node.
    matmul(ps, n, h, h, &c.xn, false, &p[o.edge_src..], false, false);
    matmul(pd, n, h, h, &c.xn, false, &p[o.edge_dst..], false, false);
    matmul(qs, n, h, h, &c.xn, false, &p[o.msg_src..], false, false);
    // Edge update: e' = e + W_out silu(A_s x_u + A_d x_v + A_e LN(e) + b).
    match first {
        Some((block0, weights)) => block0.forward(plan, h, weights, pre, &mut c.e_rstd),
        None => {
            layer_norm_stats(e, h, &p[o.edge_gamma..], &p[o.edge_beta..], &mut c.e_mean, &mut c.e_rstd, &mut c.en);
            matmul(pre, m, h, h, &c.en, false, &p[o.edge_self_w..], false, false);
        }
    }
    add_bias_gathers(pre, h, &p[o.edge_self_b..], ps, &plan.src, Some((pd, &plan.dst)));
    silu_with_derivative(pre, &mut c.z1, &mut c.d1);
    copy_add_row(e_next, e, h, &p[o.edge_out_b..o.edge_out_b + h]);
    matmul(e_next, m, h, h, &c.z1, false, &p[o.edge_out_w..], false, true);
    // Messages from the updated edges, averaged per target node, then the moved linear.
    matmul(pre, m, h, h, e_next, false, &p[o.msg_edge_w..], false, false);
    add_bias_gathers(pre, h, &p[o.msg_edge_b..], qs, &plan.src, None);
    silu_with_derivative(pre, z2, &mut c.d2);
    if let Some(pna) = &mut c.pna {
        pna.z.copy_from_slice(z2);
        pna.forward(plan, h);
        matmul(&mut c.agg, n, h, 8 * h, &pna.aggin, false, &p[o.msg_out_w..], false, false);
    } else {
        c.mean.fill(0.0);
        scatter_add(&mut c.mean, h, z2, &plan.dst);
        for (v, row) in c.mean.chunks_exact_mut(h).enumerate() {
            let s = plan.inv_in_degree[v];
            row.iter_mut().for_each(|r| *r *= s);
        }
        matmul(&mut c.agg, n, h, h, &c.mean, false, &p[o.msg_out_w..], false, false);
    }
    let b_mo = &p[o.msg_out_b..o.msg_out_b + h];
    for (v, row) in c.agg.chunks_exact_mut(h).enumerate() {
        if plan.has_in[v] {
            row.iter_mut().zip(b_mo).for_each(|(r, b)| *r += b);
        }
    }
    // Node update: x' = x + W_out silu(W_s LN(x) + b + C agg).
    let a3 = &mut pre[..n * h];
    matmul(a3, n, h, h, &c.xn, false, &p[o.node_self_w..], false, false);
    matmul(a3, n, h, h, &c.agg, false, &p[o.node_agg..], false, true);
    add_row(a3, h, &p[o.node_self_b..o.node_self_b + h]);
    silu_with_derivative(a3, &mut c.z3, &mut c.d3);
    matmul(x, n, h, h, &c.z3, false, &p[o.node_out_w..], false, true);
    add_row(x, h, &p[o.node_out_b..o.node_out_b + h]);
}

/// The loss of the current output against `goal`, and its gradient (times `scale`) in `dout`.
#[inline(always)]
fn loss_gradient(ws: &mut Workspace, goal: Goal, scale: f32) {
    match goal {
        Goal::Class(label) => {
            let max = ws.out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = ws.out.iter().map(|&v| ((v - max) as f64).exp()).sum();
            let log_z = max as f64 + sum.ln();
            let target = ws.out.get(label).copied().unwrap_or(f32::NAN) as f64;
            ws.loss_sum += log_z - target;
            if crate::train::metrics::argmax(&ws.out) == label {
                ws.correct += 1;
            }
            for (c, (d, &v)) in ws.dout.iter_mut().zip(&ws.out).enumerate() {
                let p = ((v as f64) - log_z).exp() as f32;
                *d = scale * (p - if c == label { 1.0 } else { 0.0 });
            }
        }
        Goal::Value(t) => {
            let diff = ws.out.first().copied().unwrap_or(f32::NAN) - t;
            ws.loss_sum += (diff * diff) as f64;
            ws.dout.fill(0.0);
            if let Some(d) = ws.dout.first_mut() {
                *d = scale * 2.0 * diff;
            }
        }
    }
}

#[inline(always)]
fn backward(ws: &mut Workspace, shared: &Shared<'_>, plan: &Plan, layout: &Layout) {
    let p = shared.params;
    let (n, m, h) = (plan.n, plan.m, layout.h);
    let (w, c) = (layout.embedding, layout.outputs);
    let g = &mut ws.grad;
    // Head.
    matmul(&mut g[layout.head_out_w..], h, c, 1, &ws.zh, true, &ws.dout, false, true);
    add_column_sums(&mut g[layout.head_out_b..layout.head_out_b + c], c, &ws.dout);
    matmul(&mut ws.dhid, 1, h, c, &ws.dout, false, &p[layout.head_out_w..], true, false);
    silu_backward(&ws.hid, &mut ws.dhid);
    matmul(&mut g[layout.head_hidden_w..], w, h, 1, &ws.embedding, true, &ws.dhid, false, true);
    add_column_sums(&mut g[layout.head_hidden_b..layout.head_hidden_b + h], h, &ws.dhid);
    matmul(&mut ws.demb, 1, w, h, &ws.dhid, false, &p[layout.head_hidden_w..], true, false);
    // Readout: gradients of the final LayerNorms' outputs (in dxn / den), then the norms.
    let probe = plan.probe.as_ref();
    let mut at = 0;
    ws.dxn.fill(0.0);
    if layout.readout != Readout::Edges {
        fill_rows(&mut ws.dxn, &ws.demb[at..at + h], 1.0 / n.max(1) as f32);
        at += h;
    }
    ws.de.fill(0.0);
    if layout.readout != Readout::Nodes {
        fill_rows(&mut ws.den, &ws.demb[at..at + h], 1.0 / m.max(1) as f32);
        at += h;
        let (dgamma, dbeta) = split_two(g, layout.final_edge_gamma, layout.final_edge_beta, h);
        layer_norm_backward(
            &ws.den,
            &ws.fe_hat,
            &ws.fe_rstd,
            h,
            &p[layout.final_edge_gamma..layout.final_edge_gamma + h],
            dgamma,
            dbeta,
            &mut ws.de,
            &mut ws.ln_scratch,
        );
    }
    if let Some(outputs) = &plan.output_nodes
        && !outputs.is_empty()
    {
        let inv = 1.0 / outputs.len() as f32;
        for &v in outputs {
            let row = &mut ws.dxn[v as usize * h..(v as usize + 1) * h];
            row.iter_mut().zip(&ws.demb[at..at + h]).for_each(|(r, d)| *r += d * inv);
        }
    }
    ws.dx.fill(0.0);
    if layout.readout != Readout::Edges || plan.output_nodes.is_some() {
        let (dgamma, dbeta) = split_two(g, layout.final_node_gamma, layout.final_node_beta, h);
        layer_norm_backward(
            &ws.dxn,
            &ws.fn_hat,
            &ws.fn_rstd,
            h,
            &p[layout.final_node_gamma..layout.final_node_gamma + h],
            dgamma,
            dbeta,
            &mut ws.dx,
            &mut ws.ln_scratch,
        );
    }
    for l in (0..layout.blocks.len()).rev() {
        block_backward(ws, l, p, plan, layout, shared.block0.filter(|_| l == 0));
    }
    // Encoders: probe projection, the weight term, and the constant parts (summed per step).
    let g = &mut ws.grad;
    if let Some(probe) = probe {
        let k = probe.config.points;
        matmul(&mut g[layout.probe_w..], k, h, n, &ws.probe_act, true, &ws.dx, false, true);
        add_column_sums(&mut g[layout.probe_b..layout.probe_b + h], h, &ws.dx);
    }
    let lw = layout.lift_width;
    if let Some(bias_nodes) = &plan.bias_nodes {
        let matrix = &mut g[layout.bias_row..layout.bias_row + lw * h];
        for &(v, e) in bias_nodes {
            WeightLift::features(&plan.omega, ws.weights[e as usize], &mut ws.lift_row);
            let dx = &ws.dx[v as usize * h..(v as usize + 1) * h];
            for (value, row) in ws.lift_row.iter().zip(matrix.chunks_exact_mut(h)) {
                row.iter_mut().zip(dx).for_each(|(r, d)| *r += value * d);
            }
        }
    }
    for (acc, d) in ws.dx0.iter_mut().zip(&ws.dx) {
        *acc += d;
    }
    // With blocks, the first block's class-level backward pass already did this.
    if shared.block0.is_none() {
        if lw == 1 {
            let dww = &mut g[layout.edge_weight_w..layout.edge_weight_w + h];
            for (e, row) in ws.de.chunks_exact(h).enumerate() {
                let w = ws.weights[e];
                dww.iter_mut().zip(row).for_each(|(a, d)| *a += w * d);
            }
        } else {
            matmul(&mut g[layout.edge_weight_w..], lw, h, m, &ws.lifted, true, &ws.de, false, true);
        }
        for (e, row) in ws.de.chunks_exact(h).enumerate() {
            let c = plan.edge_class[e] as usize;
            ws.dfixed[c * h..(c + 1) * h].iter_mut().zip(row).for_each(|(a, d)| *a += d);
        }
    }
}

/// Every `row.len()`-wide row of `dst` set to `row * scale` (the gradient of a mean over rows).
#[inline(always)]
fn fill_rows(dst: &mut [f32], row: &[f32], scale: f32) {
    for out in dst.chunks_exact_mut(row.len()) {
        out.iter_mut().zip(row).for_each(|(o, d)| *o = d * scale);
    }
}

/// Two disjoint `h`-long gradient slices (gamma and beta of one LayerNorm, `a < b`).
#[inline(always)]
fn split_two(g: &mut [f32], a: usize, b: usize, h: usize) -> (&mut [f32], &mut [f32]) {
    let (lo, hi) = g.split_at_mut(b);
    (&mut lo[a..a + h], &mut hi[..h])
}

/// Block `l` backward: `ws.dx` / `ws.de` hold the gradients of its outputs on entry and of its
/// inputs on exit.
#[inline(always)]
fn block_backward(ws: &mut Workspace, l: usize, p: &[f32], plan: &Plan, layout: &Layout, first: Option<&Block0>) {
    let (n, m, h) = (plan.n, plan.m, layout.h);
    let o = &layout.blocks[l];
    let c = &ws.blocks[l];
    let e_next = &ws.edges[l + 1];
    let g = &mut ws.grad;
    // x' = x + z3 W_no + b_no
    matmul(&mut g[o.node_out_w..], h, h, n, &c.z3, true, &ws.dx, false, true);
    add_column_sums(&mut g[o.node_out_b..o.node_out_b + h], h, &ws.dx);
    matmul(&mut ws.da3, n, h, h, &ws.dx, false, &p[o.node_out_w..], true, false);
    mul_assign(&mut ws.da3, &c.d3);
    // a3 = xn W_ns + b_ns + agg C
    matmul(&mut g[o.node_self_w..], h, h, n, &c.xn, true, &ws.da3, false, true);
    add_column_sums(&mut g[o.node_self_b..o.node_self_b + h], h, &ws.da3);
    matmul(&mut ws.dxn, n, h, h, &ws.da3, false, &p[o.node_self_w..], true, false);
    matmul(&mut g[o.node_agg..], h, h, n, &c.agg, true, &ws.da3, false, true);
    matmul(&mut ws.dagg, n, h, h, &ws.da3, false, &p[o.node_agg..], true, false);
    // agg = mean W_mo + has_in b_mo (PNA: aggregates W_mo + has_in b_mo)
    for (v, row) in ws.dagg.chunks_exact(h).enumerate() {
        if plan.has_in[v] {
            g[o.msg_out_b..o.msg_out_b + h].iter_mut().zip(row).for_each(|(a, d)| *a += d);
        }
    }
    if let Some(pna) = &c.pna {
        matmul(&mut g[o.msg_out_w..], 8 * h, h, n, &pna.aggin, true, &ws.dagg, false, true);
        matmul(&mut ws.daggin, n, 8 * h, h, &ws.dagg, false, &p[o.msg_out_w..], true, false);
        pna.backward(plan, h, &ws.daggin, &c.d2, &mut ws.da2, &mut g[o.msg_edge_b..]);
    } else {
        matmul(&mut g[o.msg_out_w..], h, h, n, &c.mean, true, &ws.dagg, false, true);
        matmul(&mut ws.dmean, n, h, h, &ws.dagg, false, &p[o.msg_out_w..], true, false);
        for (v, row) in ws.dmean.chunks_exact_mut(h).enumerate() {
            let s = plan.inv_in_degree[v];
            row.iter_mut().for_each(|r| *r *= s);
        }
        // mean = scatter(dst, silu(a2)) / deg; a2 = e' W_me + b_me + qs[src]
        gather_scale_sum(&mut ws.da2, h, &ws.dmean, &plan.dst, &c.d2, &mut g[o.msg_edge_b..]);
    }
    matmul(&mut g[o.msg_edge_w..], h, h, m, e_next, true, &ws.da2, false, true);
    matmul(&mut ws.de, m, h, h, &ws.da2, false, &p[o.msg_edge_w..], true, true);
    ws.dqs.fill(0.0);
    scatter_add(&mut ws.dqs, h, &ws.da2, &plan.src);
    matmul(&mut g[o.msg_src..], h, h, n, &c.xn, true, &ws.dqs, false, true);
    matmul(&mut ws.dxn, n, h, h, &ws.dqs, false, &p[o.msg_src..], true, true);
    // e' = e + z1 W_eo + b_eo (ws.de is now the whole gradient of e')
    matmul(&mut g[o.edge_out_w..], h, h, m, &c.z1, true, &ws.de, false, true);
    add_column_sums(&mut g[o.edge_out_b..o.edge_out_b + h], h, &ws.de);
    matmul(&mut ws.dz, m, h, h, &ws.de, false, &p[o.edge_out_w..], true, false);
    // a1 = en W_es + b_es + ps[src] + pd[dst]
    ws.dps.fill(0.0);
    ws.dpd.fill(0.0);
    scale_sum_scatter2(&mut ws.dz, h, &c.d1, &mut g[o.edge_self_b..], &mut ws.dps, &plan.src, &mut ws.dpd, &plan.dst);
    matmul(&mut g[o.edge_src..], h, h, n, &c.xn, true, &ws.dps, false, true);
    matmul(&mut g[o.edge_dst..], h, h, n, &c.xn, true, &ws.dpd, false, true);
    matmul(&mut ws.dxn, n, h, h, &ws.dps, false, &p[o.edge_src..], true, true);
    matmul(&mut ws.dxn, n, h, h, &ws.dpd, false, &p[o.edge_dst..], true, true);
    match first {
        Some(block0) => {
            // The first block: W_es, its LayerNorm, `ww` and the class constants at class level
            // (ws.de then stays the residual path's gradient only; nothing downstream reads it).
            let (lo, hi) = g.split_at_mut(o.edge_self_w);
            let (w_grad, _) = hi.split_at_mut(h * h);
            let (ww_part, rest) = lo.split_at_mut(o.edge_gamma);
            let (gamma_grad, beta_rest) = rest.split_at_mut(h);
            let grads = Block0Grads {
                w: w_grad,
                gamma: gamma_grad,
                beta: &mut beta_rest[o.edge_beta - o.edge_gamma - h..],
                ww: &mut ww_part[layout.edge_weight_w..layout.edge_weight_w + h],
                classes: &mut ws.dfixed,
            };
            block0.backward(p, layout, plan, &ws.weights, &c.e_rstd, &ws.dz, &ws.de, &mut ws.b0, grads);
        }
        None => {
            matmul(&mut g[o.edge_self_w..], h, h, m, &c.en, true, &ws.dz, false, true);
            matmul(&mut ws.den, m, h, h, &ws.dz, false, &p[o.edge_self_w..], true, false);
            // The edge pre-LayerNorm; the residual gradient is already in de.
            let (dgamma, dbeta) = split_two(g, o.edge_gamma, o.edge_beta, h);
            let e = &ws.edges[l];
            layer_norm_backward_from_input(
                &ws.den,
                e,
                &c.e_mean,
                &c.e_rstd,
                h,
                &p[o.edge_gamma..o.edge_gamma + h],
                dgamma,
                dbeta,
                &mut ws.de,
                &mut ws.ln_scratch,
            );
        }
    }
    let (dgamma, dbeta) = split_two(g, o.node_gamma, o.node_beta, h);
    layer_norm_backward(
        &ws.dxn,
        &c.xhat,
        &c.x_rstd,
        h,
        &p[o.node_gamma..o.node_gamma + h],
        dgamma,
        dbeta,
        &mut ws.dx,
        &mut ws.ln_scratch,
    );
}
