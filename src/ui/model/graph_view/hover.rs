//! What the pointer is over in the graph view: CPU hit testing (the spatial grid for nodes, the
//! edge blocks under the cursor for edges), the hovered item's highlight and its tooltip.

use egui::{Pos2, Rect, RichText, Stroke};

use super::renderer::EdgeDraw;
use super::{Camera, EDGE_HIT_BUDGET};
use crate::graph::{EdgeType, NodeBlock, NodeType};
use crate::layout::GraphLayout;
use crate::ui::model::loader::{GraphData, LoadedModel};

/// What the pointer is over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Hover {
    Node(usize),
    /// Index into the explicit edge list (= position in the edge stream).
    Edge(usize),
}

pub(super) fn hit_test(data: &GraphData, rect: Rect, camera: Camera, pointer: Pos2, edges: EdgeDraw) -> Option<Hover> {
    let world = camera.to_world(rect, pointer);
    let radius = (0.36f32).max(6.0 / camera.zoom);
    if let Some(id) = data.grid.nearest(&data.layout.positions, world, radius) {
        return Some(Hover::Node(id));
    }
    if edges != EdgeDraw::Neurons {
        return None;
    }
    let list = data.edges.as_ref()?;
    // Candidates: edge blocks whose x-span contains the pointer, within a per-frame budget.
    let mut candidates = Vec::new();
    let mut total = 0usize;
    for b in data.graph.edge_blocks() {
        let (Some(s), Some(d)) = (data.layout.blocks.get(b.src), data.layout.blocks.get(b.dst)) else { continue };
        let (x0, x1) = (s.x.min(d.x), s.x.max(d.x));
        if world[0] >= x0 && world[0] <= x1 && x1 > x0 {
            total += b.len;
            candidates.push(b.first_edge..b.first_edge + b.len);
        }
    }
    if total > EDGE_HIT_BUDGET {
        return None;
    }
    let at = |id: u32| data.layout.positions.get(id as usize).map(|p| camera.to_screen(rect, *p));
    let mut best: Option<(f32, usize)> = None;
    for k in candidates.into_iter().flatten() {
        let Some(e) = list.get(k) else { continue };
        let (Some(a), Some(b)) = (at(e.src), at(e.dst)) else { continue };
        let d = distance_to_segment(pointer, a, b);
        if d <= 4.0 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| Hover::Edge(k))
}

fn distance_to_segment(p: Pos2, a: Pos2, b: Pos2) -> f32 {
    let ab = b - a;
    let t = if ab.length_sq() > 0.0 { ((p - a).dot(ab) / ab.length_sq()).clamp(0.0, 1.0) } else { 0.0 };
    p.distance(a + ab * t)
}

pub(super) fn edge_block_of(data: &GraphData, k: usize) -> Option<&crate::graph::EdgeBlock> {
    let blocks = data.graph.edge_blocks();
    let i = blocks.partition_point(|b| b.first_edge + b.len <= k);
    blocks.get(i)
}

pub(super) fn highlight(
    painter: &egui::Painter,
    ui: &egui::Ui,
    rect: Rect,
    camera: Camera,
    data: &GraphData,
    hover: Hover,
) {
    let colour = ui.visuals().strong_text_color();
    match hover {
        Hover::Node(id) => {
            if let Some(p) = data.layout.positions.get(id) {
                let r = (0.36 * camera.zoom).clamp(1.5, 9.0) + 3.0;
                painter.circle_stroke(camera.to_screen(rect, *p), r, Stroke::new(1.5, colour));
            }
        }
        Hover::Edge(k) => {
            let Some(e) = data.edges.as_ref().and_then(|l| l.get(k)) else { return };
            let (Some(a), Some(b)) =
                (data.layout.positions.get(e.src as usize), data.layout.positions.get(e.dst as usize))
            else {
                return;
            };
            painter.line_segment([camera.to_screen(rect, *a), camera.to_screen(rect, *b)], Stroke::new(2.5, colour));
        }
    }
}

fn node_type_name(t: NodeType) -> &'static str {
    match t {
        NodeType::Neuron => "neuron",
        NodeType::Bias => "bias",
        NodeType::Channel => "channel",
        NodeType::ChannelBias => "channel bias",
        NodeType::BnGamma => "batch-norm gamma",
        NodeType::BnBeta => "batch-norm beta",
        NodeType::LnGamma => "layer-norm gamma",
        NodeType::LnBeta => "layer-norm beta",
        NodeType::GnGamma => "group-norm gamma",
        NodeType::GnBeta => "group-norm beta",
        NodeType::InGamma => "instance-norm gamma",
        NodeType::InBeta => "instance-norm beta",
        NodeType::AttentionNeuron => "attention neuron",
        NodeType::AttentionBias => "attention bias",
        NodeType::ChannelParam => "per-channel parameter",
    }
}

fn edge_type_name(t: EdgeType) -> &'static str {
    match t {
        EdgeType::LinWeight => "linear weight",
        EdgeType::LinBias => "linear bias",
        EdgeType::ConvWeight => "conv weight",
        EdgeType::ConvBias => "conv bias",
        EdgeType::Residual => "residual",
        EdgeType::BnGamma => "batch-norm gamma",
        EdgeType::BnBeta => "batch-norm beta",
        EdgeType::LnGamma => "layer-norm gamma",
        EdgeType::LnBeta => "layer-norm beta",
        EdgeType::GnGamma => "group-norm gamma",
        EdgeType::GnBeta => "group-norm beta",
        EdgeType::InGamma => "instance-norm gamma",
        EdgeType::InBeta => "instance-norm beta",
        EdgeType::ChannelParam => "per-channel parameter",
    }
}

fn node_label(data: &GraphData, id: usize) -> Option<(&NodeBlock, usize)> {
    let b = GraphLayout::block_of_node(&data.graph, id)?;
    let block = data.graph.node_blocks().get(b)?;
    Some((block, id - block.start))
}

pub(super) fn tooltip(ui: &mut egui::Ui, model: &LoadedModel, data: &GraphData, hover: Hover) {
    let layer_name = |layer: usize| model.layers.get(layer).map_or("?", |l| l.name.as_str());
    match hover {
        Hover::Node(id) => {
            let Some((block, index)) = node_label(data, id) else { return };
            ui.strong(format!("{} #{index}", node_type_name(block.node_type)));
            egui::Grid::new("node_tooltip").num_columns(2).show(ui, |ui| {
                for (k, v) in [
                    ("layer", layer_name(block.layer).to_string()),
                    ("block", block.label.clone()),
                    ("layer index", block.layer_index.to_string()),
                    ("node id", id.to_string()),
                ] {
                    ui.label(RichText::new(k).weak());
                    ui.label(v);
                    ui.end_row();
                }
            });
        }
        Hover::Edge(k) => {
            let (Some(e), Some(block)) = (data.edges.as_ref().and_then(|l| l.get(k)), edge_block_of(data, k)) else {
                return;
            };
            ui.strong(format!("weight {:+.6}", e.weight));
            let end = |id: u32| {
                node_label(data, id as usize).map_or_else(|| id.to_string(), |(b, i)| format!("{} #{i}", b.label))
            };
            egui::Grid::new("edge_tooltip").num_columns(2).show(ui, |ui| {
                for (k, v) in [
                    ("type", edge_type_name(block.edge_type).to_string()),
                    ("layer", layer_name(block.layer).to_string()),
                    ("from", end(e.src)),
                    ("to", end(e.dst)),
                ] {
                    ui.label(RichText::new(k).weak());
                    ui.label(v);
                    ui.end_row();
                }
            });
        }
    }
}
