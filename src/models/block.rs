//! One EdgeMPNN block (papers.md §3) in factored form.
//!
//! Textbook form, per edge `u -> v` and node `v` (pre-LayerNorm, SiLU, residual):
//! ```text
//! e'  = e + MLP_e([LN x_u, LN x_v, LN e])
//! agg = mean over u -> v of MLP_m([LN x_u, e'])
//! x'  = x + MLP_n([LN x_v, agg])
//! ```
//! Factored form (the same function, less per-edge work):
//! - the first linear of `MLP_e` on a concatenation is a sum of three products:
//!   `A_s x_u + A_d x_v + A_e e`. `A_s x` and `A_d x` are computed once per **node** and then
//!   gathered to the edges; only `A_e e` is a per-edge GEMM. Same for `MLP_m`'s `B_s x_u`.
//! - `MLP_m`'s last linear commutes with the mean: `mean(W z + c) = W mean(z) + c` for nodes
//!   with incoming edges (0 for the others), so it runs per node, after the scatter.
//!
//! Per-edge GEMMs drop from seven `h x h` products to three (`A_e`, `MLP_e`'s second linear,
//! `B_e`). Layout is node-major: `x: [N, B, h]`, `e: [E, B, h]`; gathers and the scatter move
//! rows of `B * h` floats with the topology's `E` indices.

use burn::module::{Module, Param};
use burn::nn::LayerNorm;
use burn::tensor::activation::silu;
use burn::tensor::{Device, IndexingUpdateOp, Tensor};

use super::config::Aggregation;
use super::init::{Dense, layer_norm, projection};
use super::topology::BatchTopology;
use crate::rng::SplitMix64;

#[derive(Module, Debug)]
pub struct EdgeMpnnBlock {
    node_norm: LayerNorm,
    edge_norm: LayerNorm,
    // MLP_e = Linear(3h, h) -> SiLU -> Linear(h, h), first linear split by input.
    edge_src: Param<Tensor<2>>,
    edge_dst: Param<Tensor<2>>,
    edge_self: Dense,
    edge_out: Dense,
    // MLP_m = Linear(2h, h) -> SiLU -> Linear(h, h), first linear split, last moved after the mean.
    msg_src: Param<Tensor<2>>,
    msg_edge: Dense,
    msg_out: Dense,
    // MLP_n = Linear(2h, h) -> SiLU -> Linear(h, h), first linear split.
    node_self: Dense,
    node_agg: Param<Tensor<2>>,
    node_out: Dense,
    #[module(skip)]
    aggregation: Aggregation,
}

impl EdgeMpnnBlock {
    /// `msg_out` reads `aggregation.width()` aggregates (`h` each).
    pub fn new(rng: &mut SplitMix64, h: usize, aggregation: Aggregation, device: &Device) -> Self {
        Self {
            node_norm: layer_norm(h, device),
            edge_norm: layer_norm(h, device),
            edge_src: projection(rng, h, h, 3 * h, device),
            edge_dst: projection(rng, h, h, 3 * h, device),
            edge_self: Dense::new(rng, h, h, true, device),
            edge_out: Dense::new(rng, h, h, true, device),
            msg_src: projection(rng, h, h, 2 * h, device),
            msg_edge: Dense::new(rng, h, h, true, device),
            msg_out: Dense::new(rng, aggregation.width() * h, h, true, device),
            node_self: Dense::new(rng, h, h, true, device),
            node_agg: projection(rng, h, h, 2 * h, device),
            node_out: Dense::new(rng, h, h, true, device),
            aggregation,
        }
    }

    /// `x: [N, B, h]`, `e: [E, B, h]` -> updated `(x, e)`.
    pub fn forward(&self, topo: &BatchTopology, x: Tensor<3>, e: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let [n, b, h] = x.dims();
        let m = topo.num_edges;
        let xn = self.node_norm.forward(x.clone()).reshape([n * b, h]);
        let en = self.edge_norm.forward(e.clone()).reshape([m * b, h]);

        // Node terms of the edge and message MLPs, gathered to the edges: [E * B, h] each.
        let to_edges = |w: &Param<Tensor<2>>, index: &burn::tensor::Tensor<1, burn::tensor::Int>| {
            xn.clone().matmul(w.val()).reshape([n, b * h]).select(0, index.clone()).reshape([m * b, h])
        };
        let from_src = to_edges(&self.edge_src, &topo.src);
        let from_dst = to_edges(&self.edge_dst, &topo.dst);
        let z = silu(from_src + from_dst + self.edge_self.forward2(en));
        let e = e + self.edge_out.forward2(z).reshape([m, b, h]);

        // Messages from the updated edges, summed per target node, then the mean's linear.
        let msg_from_src = to_edges(&self.msg_src, &topo.src);
        let z = silu(msg_from_src + self.msg_edge.forward2(e.clone().reshape([m * b, h]))).reshape([m, b * h]);
        let sum = Tensor::<2>::zeros([n, b * h], &z.device()).select_assign(
            0,
            topo.dst.clone(),
            z.clone(),
            IndexingUpdateOp::Add,
        );
        let mean = sum * topo.inv_in_degree.clone();
        let aggregates = match self.aggregation {
            Aggregation::Mean => mean.reshape([n * b, h]),
            Aggregation::Pna => pna_aggregates(topo, z, mean, h).reshape([n * b, 8 * h]),
        };
        let mut agg = aggregates.matmul(self.msg_out.weight.val()).reshape([n, b, h]);
        if let Some(bias) = &self.msg_out.bias {
            agg = agg + bias.val().reshape([1, 1, h]) * topo.has_in.clone();
        }

        let z = silu(self.node_self.forward2(xn) + agg.reshape([n * b, h]).matmul(self.node_agg.val()));
        let x = x + self.node_out.forward2(z).reshape([n, b, h]);
        (x, e)
    }
}

/// PNA's aggregates of the messages `z: [E, B*h]` at every node, `[N, B*8h]` laid out per copy
/// as `[mean, std, max, min, s*mean, s*std, s*max, s*min]` (`s` the amplification scaler);
/// zero for nodes without incoming edges. `mean: [N, B*h]`.
///
/// Max and min are taken without gradient and then re-expressed as the mean of the messages
/// that attain them (burn's scatter-max backward needs unique indices; this form needs only
/// additions and sends the gradient to the attaining messages, shared on ties).
fn pna_aggregates(topo: &BatchTopology, z: Tensor<2>, mean: Tensor<2>, h: usize) -> Tensor<2> {
    let [n, bh] = mean.dims();
    let device = z.device();
    let scatter = |values: Tensor<2>| {
        Tensor::<2>::zeros([n, bh], &device).select_assign(0, topo.dst.clone(), values, IndexingUpdateOp::Add)
    };
    let second = scatter(z.clone() * z.clone()) * topo.inv_in_degree.clone();
    let has_in = topo.has_in_rows.clone();
    let std = ((second - mean.clone() * mean.clone()).clamp_min(0.0) + 1e-5).sqrt() * has_in.clone();
    let extreme = |sign: f32| {
        let signed = z.clone().mul_scalar(sign);
        let best = Tensor::<2>::full([n, bh], f32::NEG_INFINITY, &device)
            .select_assign(0, topo.dst.clone(), signed.clone().detach(), IndexingUpdateOp::Max)
            .clamp_min(-1e30)
            .detach();
        let hit = signed.clone().detach().equal(best.select(0, topo.dst.clone())).float();
        let count = scatter(hit.clone()).clamp_min(1.0);
        (scatter(signed * hit) / count).mul_scalar(sign)
    };
    let (max, min) = (extreme(1.0), extreme(-1.0));
    let s = topo.amplification.clone();
    let (max, min) = (max * has_in.clone(), min * has_in);
    let parts = [
        mean.clone(),
        std.clone(),
        max.clone(),
        min.clone(),
        mean * s.clone(),
        std * s.clone(),
        max * s.clone(),
        min * s,
    ];
    // Per copy: [N, B, 8, h] -> [N, B * 8h].
    let b = bh / h;
    Tensor::stack::<3>(parts.into_iter().map(|p| p.reshape([n * b, h])).collect(), 1).reshape([n, b * 8 * h])
}
