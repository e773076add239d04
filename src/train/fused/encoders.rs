//! The encoders' weight-independent parts (`models::encoders`), computed once per step for the
//! shared topology, and their parameter gradients from the per-step sums of the gradients of
//! those parts.
//!
//! Nodes: `x0 = sin(layer w_l + b_l) + sin(order w_o + b_o) + types[type]`.
//! Edges: `fixed = sin(layer w_el) + types[type] + position W_pos + b_w` (the weight term
//! `scale * weight * w_w` is added per network in `pass`).

use super::params::Layout;
use super::plan::Plan;

/// `(x0 [N, h], fixed_edges [E, h])` for the parameters `p`.
pub fn constants(p: &[f32], layout: &Layout, plan: &Plan) -> (Vec<f32>, Vec<f32>) {
    let h = layout.h;
    let mut x0 = vec![0.0f32; plan.n * h];
    for (v, row) in x0.chunks_exact_mut(h).enumerate() {
        let (layer, order) = (plan.node_layer[v], plan.node_order[v]);
        let types = &p[layout.node_types + plan.node_type[v] * h..][..h];
        for j in 0..h {
            row[j] = (layer * p[layout.node_layer_w + j] + p[layout.node_layer_b + j]).sin()
                + (order * p[layout.node_order_w + j] + p[layout.node_order_b + j]).sin()
                + types[j];
        }
    }
    let mut fixed = vec![0.0f32; plan.m * h];
    for (e, row) in fixed.chunks_exact_mut(h).enumerate() {
        let layer = plan.edge_layer[e];
        let pos = plan.edge_position[e];
        let types = &p[layout.edge_types + plan.edge_type[e] * h..][..h];
        for j in 0..h {
            let position: f32 = (0..3).map(|q| pos[q] * p[layout.edge_position + q * h + j]).sum();
            row[j] = (layer * p[layout.edge_layer_w + j]).sin() + types[j] + position + p[layout.edge_weight_b + j];
        }
    }
    (x0, fixed)
}

/// Adds to `grad` the encoder parameters' gradients, given the gradients `dx0` of `x0` and the
/// per-class sums `dfixed` (`[classes, h]`, see `Plan::edge_class`) of the gradients of the edge
/// constants, summed over the batch. The edge constants depend only on an edge's class, so their
/// parameters' gradients are sums over classes.
pub fn backward(p: &[f32], layout: &Layout, plan: &Plan, dx0: &[f32], dfixed: &[f32], grad: &mut [f32]) {
    let h = layout.h;
    for (v, d) in dx0.chunks_exact(h).enumerate() {
        let (layer, order) = (plan.node_layer[v], plan.node_order[v]);
        for j in 0..h {
            let cl = (layer * p[layout.node_layer_w + j] + p[layout.node_layer_b + j]).cos() * d[j];
            grad[layout.node_layer_w + j] += cl * layer;
            grad[layout.node_layer_b + j] += cl;
            let co = (order * p[layout.node_order_w + j] + p[layout.node_order_b + j]).cos() * d[j];
            grad[layout.node_order_w + j] += co * order;
            grad[layout.node_order_b + j] += co;
            grad[layout.node_types + plan.node_type[v] * h + j] += d[j];
        }
    }
    for (&e, d) in plan.class_rep.iter().zip(dfixed.chunks_exact(h)) {
        let e = e as usize;
        let layer = plan.edge_layer[e];
        let pos = plan.edge_position[e];
        for j in 0..h {
            grad[layout.edge_layer_w + j] += (layer * p[layout.edge_layer_w + j]).cos() * layer * d[j];
            grad[layout.edge_types + plan.edge_type[e] * h + j] += d[j];
            for q in 0..3 {
                grad[layout.edge_position + q * h + j] += pos[q] * d[j];
            }
            grad[layout.edge_weight_b + j] += d[j];
        }
    }
}
