//! The central panel: the parameter graph, drawn by the WGSL pipelines in [`renderer`] through an
//! egui paint callback, with pan (drag), zoom (scroll / pinch, around the cursor), fit (F), level
//! of detail, hover tooltips (CPU hit testing: a spatial grid for nodes, the edge blocks under the
//! cursor for edges), click-to-select, a selection outline and a legend. Nodes are coloured by
//! type, or by GMN activation when the GMN tab has run its GMN on this model ([`overlay`]).
//!
//! Per frame the CPU work is O(1) in the number of edges: a camera update, one uniform write and,
//! when hovering, a bounded hit test. Instance buffers are uploaded once per graph; the overlay
//! rewrites the node buffer when it changes.

pub mod captions;
mod hover;
pub mod overlay;
pub mod renderer;

use std::collections::HashMap;
use std::sync::Arc;

use egui::{Color32, Pos2, Rect, RichText, Sense, Stroke, Vec2, vec2};

use crate::layout::GraphLayout;
use crate::ui::app::commands::{Command, CommandQueue};
use crate::ui::app::state::{AppState, ColourScale, EdgeMode};
use crate::ui::app::status_bar::thousands;
use crate::ui::model::loader::{EXPLICIT_EDGE_CAP, GraphData, LoadedModel};
use crate::ui::widgets::colormap::{self, Diverging};
use hover::{Hover, edge_block_of, highlight, hit_test, tooltip};
use overlay::NodeOverlay;
use renderer::{EdgeDraw, GraphPaintCallback, ViewUniforms};

/// Graphs with at most this many edges show neuron edges at any zoom in `Auto` mode.
const AUTO_NEURON_EDGES: usize = 200_000;
/// Bigger graphs switch to neuron edges once neighbouring neurons are this far apart (points).
const ZOOMED_IN_POINTS: f32 = 3.0;
/// Edge hover tests at most this many candidate edges per frame.
const EDGE_HIT_BUDGET: usize = 50_000;

/// Where the view looks: world point at the centre and points per world unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    pub center: [f32; 2],
    pub zoom: f32,
    /// Until the user pans or zooms, the view keeps fitting the graph as the panel resizes.
    pub auto_fit: bool,
}

impl Camera {
    fn fit(layout: &GraphLayout, rect: Rect) -> Self {
        let [w, h] = layout.bounds.size();
        let margin = 36.0;
        let zoom_x = (rect.width() - 2.0 * margin).max(10.0) / w.max(1e-3);
        let zoom_y = (rect.height() - 2.0 * margin).max(10.0) / h.max(1e-3);
        Self { center: layout.bounds.center(), zoom: zoom_x.min(zoom_y).clamp(1e-4, 400.0), auto_fit: true }
    }

    pub(crate) fn to_screen(self, rect: Rect, p: [f32; 2]) -> Pos2 {
        rect.center() + vec2(p[0] - self.center[0], p[1] - self.center[1]) * self.zoom
    }

    fn to_world(self, rect: Rect, p: Pos2) -> [f32; 2] {
        let d = (p - rect.center()) / self.zoom;
        [self.center[0] + d.x, self.center[1] + d.y]
    }
}

/// What the view draws besides the model: the app's state around it.
pub struct ViewInputs<'a> {
    pub selected_layer: Option<usize>,
    pub state: &'a AppState,
    /// Whether the wgpu renderer is available.
    pub gpu: bool,
    /// The GMN tab's overlay (for whichever model it was computed on).
    pub overlay: Option<&'a Arc<NodeOverlay>>,
    /// The layer tree's search text: matching layers are highlighted on the graph.
    pub search: &'a str,
}

#[derive(Default)]
pub struct GraphView {
    cameras: HashMap<u64, Camera>,
    fit_requested: bool,
    /// The node overlay handed to the renderer in the last frame (read by tests).
    drawn_overlay: Option<Arc<NodeOverlay>>,
    /// Captions, group labels and search matches painted in the last frame (read by tests).
    drawn_labels: captions::Drawn,
}

impl GraphView {
    pub fn request_fit(&mut self) {
        self.fit_requested = true;
    }

    /// The GMN activation overlay the renderer was given in the last frame, if any.
    pub fn drawn_overlay(&self) -> Option<&Arc<NodeOverlay>> {
        self.drawn_overlay.as_ref()
    }

    /// The captions, group labels and search matches painted in the last frame.
    pub fn drawn_labels(&self) -> &captions::Drawn {
        &self.drawn_labels
    }

    /// Forgets the camera of a closed model.
    pub fn forget_model(&mut self, model_id: u64) {
        self.cameras.remove(&model_id);
    }

    /// Draws `model`; the overlay (the GMN tab's, for whichever model it was computed on) colours
    /// the nodes when it belongs to this model and is switched on.
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &LoadedModel, inputs: ViewInputs<'_>, commands: &mut CommandQueue) {
        let ViewInputs { selected_layer, state, gpu, overlay, search } = inputs;
        self.drawn_overlay = None;
        self.drawn_labels = captions::Drawn::default();
        let overlay = overlay.filter(|o| o.model_id == model.id);
        let data = match &model.graph {
            Ok(data) => data,
            Err(e) => {
                ui.centered_and_justified(|ui| {
                    ui.colored_label(ui.visuals().warn_fg_color, format!("No parameter graph: {e}"));
                });
                return;
            }
        };
        let draw = toolbar(ui, data, state);
        let rect = ui.available_rect_before_wrap();
        let response = ui.allocate_rect(rect, Sense::click_and_drag());
        let fit = std::mem::take(&mut self.fit_requested);
        let camera = self.cameras.entry(model.id).or_insert_with(|| Camera::fit(&data.layout, rect));
        if fit || camera.auto_fit {
            *camera = Camera::fit(&data.layout, rect);
        }
        navigate(ui, &response, rect, camera);
        let camera = *camera;
        let edge_draw = draw.resolve(data, camera.zoom);

        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, background(ui));
        let shown_overlay = overlay.filter(|o| o.settings.enabled).cloned();
        if gpu {
            let dark = ui.visuals().dark_mode;
            let uniforms = uniforms(ui, rect, camera, data, state, dark);
            self.drawn_overlay = shown_overlay.clone();
            painter.add(egui_wgpu::Callback::new_paint_callback(
                rect,
                GraphPaintCallback {
                    geometry: data.geometry.clone(),
                    uniforms,
                    edges: edge_draw,
                    overlay: shown_overlay.clone(),
                },
            ));
        } else {
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "The graph needs the wgpu renderer, which is not available here.",
                egui::FontId::proportional(14.0),
                ui.visuals().weak_text_color(),
            );
        }
        if let Some(layer) = selected_layer {
            outline_layer(&painter, ui, rect, camera, data, layer);
        }
        if state.show_captions {
            let (drawn, clicked) =
                captions::paint(ui, rect, camera, &data.layout, &data.annotations, &model.layers, search);
            self.drawn_labels = drawn;
            if clicked.is_some() {
                commands.send(Command::SelectLayer(clicked));
            }
        }

        let hover = response.hover_pos().and_then(|p| hit_test(data, rect, camera, p, edge_draw));
        if let Some(h) = hover {
            highlight(&painter, ui, rect, camera, data, h);
            response.clone().on_hover_ui_at_pointer(|ui| tooltip(ui, model, data, h));
        }
        if response.clicked() {
            let layer = match hover {
                Some(Hover::Node(id)) => GraphLayout::block_of_node(&data.graph, id)
                    .and_then(|b| data.graph.node_blocks().get(b))
                    .map(|b| b.layer),
                Some(Hover::Edge(k)) => edge_block_of(data, k).map(|b| b.layer),
                None => None,
            };
            if layer.is_some() {
                commands.send(Command::SelectLayer(layer));
            }
        }
        if state.show_legend {
            legend(ui, rect, data, edge_draw, state.colour_scale, shown_overlay.as_deref());
        }
        controls(ui, rect, state, commands);
        if let Some(o) = overlay {
            overlay::controls_ui(ui, rect, o, commands);
        }
    }
}

/// What the toolbar asks for; resolved against the graph and zoom each frame.
struct DrawRequest {
    mode: EdgeMode,
}

impl DrawRequest {
    fn resolve(&self, data: &GraphData, zoom: f32) -> EdgeDraw {
        let explicit = !data.geometry.edges.is_empty();
        match self.mode {
            EdgeMode::Blocks => EdgeDraw::Blocks,
            EdgeMode::Neurons if explicit => EdgeDraw::Neurons,
            EdgeMode::Neurons => EdgeDraw::Blocks,
            EdgeMode::Auto => {
                let small = data.graph.num_edges() <= AUTO_NEURON_EDGES;
                if explicit && (small || zoom >= ZOOMED_IN_POINTS) { EdgeDraw::Neurons } else { EdgeDraw::Blocks }
            }
        }
    }
}

fn toolbar(ui: &mut egui::Ui, data: &GraphData, state: &AppState) -> DrawRequest {
    let frame = egui::Frame::new().inner_margin(egui::Margin::symmetric(10, 6)).fill(ui.visuals().panel_fill);
    frame.show(ui, |ui| ui.horizontal(|ui| {
        let g = &data.graph;
        ui.label(RichText::new(format!("{} nodes", thousands(g.num_nodes() as u64))).strong());
        ui.label(RichText::new("·").weak());
        ui.label(RichText::new(format!("{} edges", thousands(g.num_edges() as u64))).strong());
        ui.label(RichText::new("·").weak());
        ui.label(RichText::new(format!("{} parameters", thousands(g.num_parameters() as u64))).weak());
        if data.edges.is_none() {
            ui.label(RichText::new(format!("· over {} edges: layer bands only", thousands(EXPLICIT_EDGE_CAP as u64))).small().color(ui.visuals().warn_fg_color))
                .on_hover_text("Neuron-level edges are kept implicit for graphs this large; each band is one weight tensor (alpha = density, colour = mean weight).");
        }
    }));
    DrawRequest { mode: state.edge_mode }
}

/// Top-right overlay on the graph: edge level, colour scale, fit.
fn controls(ui: &egui::Ui, rect: Rect, state: &AppState, commands: &mut CommandQueue) {
    egui::Area::new(egui::Id::unique("graph_controls"))
        .fixed_pos(rect.right_top() + vec2(-10.0, 10.0))
        .pivot(egui::Align2::RIGHT_TOP)
        .order(egui::Order::Middle)
        .show(ui.ctx(), |ui| {
            egui::Frame::popup(ui.style()).inner_margin(6.0).show(ui, |ui| {
                ui.horizontal(|ui| {
                    let label = ui.label(RichText::new("Colours").weak());
                    let mut scale = state.colour_scale;
                    let combo = egui::ComboBox::from_id_salt("colour_scale")
                        .selected_text(scale.label())
                        .width(120.0)
                        .show_ui(ui, |ui| {
                            for s in ColourScale::ALL {
                                ui.selectable_value(&mut scale, s, s.label());
                            }
                        });
                    combo.response.labelled_by(label.id);
                    if scale != state.colour_scale {
                        commands.send(Command::SetColourScale(scale));
                    }
                    ui.add_space(6.0);
                    let label = ui.label(RichText::new("Edges").weak());
                    let mut mode = state.edge_mode;
                    let combo = egui::ComboBox::from_id_salt("edge_mode")
                        .selected_text(mode.label())
                        .width(110.0)
                        .show_ui(ui, |ui| {
                            for m in EdgeMode::ALL {
                                ui.selectable_value(&mut mode, m, m.label());
                            }
                        });
                    combo.response.labelled_by(label.id);
                    if mode != state.edge_mode {
                        commands.send(Command::SetEdgeMode(mode));
                    }
                    ui.add_space(6.0);
                    if ui.button("Fit").on_hover_text("Fit the graph in view (F)").clicked() {
                        commands.send(Command::FitView);
                    }
                });
            });
        });
}

fn navigate(ui: &egui::Ui, response: &egui::Response, rect: Rect, camera: &mut Camera) {
    if response.dragged() && response.drag_delta() != Vec2::ZERO {
        camera.auto_fit = false;
        let d = response.drag_delta() / camera.zoom;
        camera.center[0] -= d.x;
        camera.center[1] -= d.y;
    }
    if let Some(pointer) = response.hover_pos() {
        let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
        let factor = pinch * (scroll * 0.0025).exp();
        if (factor - 1.0).abs() > 1e-4 {
            // Keep the world point under the cursor where it is.
            camera.auto_fit = false;
            let anchor = camera.to_world(rect, pointer);
            camera.zoom = (camera.zoom * factor).clamp(1e-4, 2000.0);
            let d = (pointer - rect.center()) / camera.zoom;
            camera.center = [anchor[0] - d.x, anchor[1] - d.y];
        }
    }
}

fn background(ui: &egui::Ui) -> Color32 {
    if ui.visuals().dark_mode { Color32::from_rgb(20, 22, 26) } else { Color32::from_rgb(250, 250, 252) }
}

fn uniforms(ui: &egui::Ui, rect: Rect, camera: Camera, data: &GraphData, state: &AppState, dark: bool) -> ViewUniforms {
    let ppp = ui.ctx().pixels_per_point();
    let stops = Diverging::for_theme(dark).stops();
    let outline = if dark { [0.08, 0.09, 0.11, 1.0] } else { [1.0, 1.0, 1.0, 1.0] };
    ViewUniforms {
        center: camera.center,
        scale: camera.zoom * ppp,
        srgb_target: 0.0,
        viewport_px: [rect.width() * ppp, rect.height() * ppp],
        node_radius_px: (0.36 * camera.zoom).clamp(1.5, 9.0) * ppp,
        edge_width_px: if camera.zoom > 24.0 { 1.6 } else { 1.0 } * ppp,
        weight_scale: 1.0 / data.weight_scale,
        block_scale: 1.0 / data.block_scale,
        edge_alpha: state.edge_opacity.clamp(0.05, 1.0),
        local_scale: if state.colour_scale == ColourScale::PerLayer { 1.0 } else { 0.0 },
        negative: stops[0],
        zero: stops[1],
        positive: stops[2],
        outline,
    }
}

fn block_rect(rect: Rect, camera: Camera, data: &GraphData, block: usize) -> Option<Rect> {
    let e = data.layout.blocks.get(block)?;
    let a = camera.to_screen(rect, [e.x, e.y0]);
    let b = camera.to_screen(rect, [e.x, e.y1]);
    Some(Rect::from_two_pos(a, b).expand(6.0))
}

fn outline_layer(painter: &egui::Painter, ui: &egui::Ui, rect: Rect, camera: Camera, data: &GraphData, layer: usize) {
    let stroke = Stroke::new(1.5, ui.visuals().selection.stroke.color);
    for (i, b) in data.graph.node_blocks().iter().enumerate() {
        if b.layer == layer
            && let Some(r) = block_rect(rect, camera, data, i)
            && r.intersects(rect)
        {
            painter.rect_stroke(r, 4.0, stroke, egui::StrokeKind::Outside);
        }
    }
}

const LEGEND_WIDTH: f32 = 250.0;

/// Bottom-left overlay: the diverging colour bar with its range, and the node colours in use (or
/// the GMN activation's colour bar when the overlay is on).
fn legend(
    ui: &mut egui::Ui,
    rect: Rect,
    data: &GraphData,
    edges: EdgeDraw,
    colours: ColourScale,
    node_overlay: Option<&NodeOverlay>,
) {
    let dark = ui.visuals().dark_mode;
    let map = Diverging::for_theme(dark);
    let local = colours == ColourScale::PerLayer;
    let (scale, title) = match (edges, local) {
        (EdgeDraw::Blocks, false) => (data.block_scale, "mean weight per band"),
        (EdgeDraw::Blocks, true) => (1.0, "mean w / mean |w| per band"),
        (_, false) => (data.weight_scale, "edge weight"),
        (_, true) => (1.0, "edge weight / p98 |w| of its tensor"),
    };
    let used: Vec<u32> = {
        let mut v: Vec<u32> = data
            .graph
            .node_blocks()
            .iter()
            .map(|b| colormap::node_palette_index(b.node_type, b.role, b.ordered))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let area = egui::Area::new(egui::Id::unique("graph_legend"))
        .fixed_pos(rect.left_bottom() + vec2(10.0, -10.0))
        .pivot(egui::Align2::LEFT_BOTTOM)
        .order(egui::Order::Middle)
        .interactable(false);
    area.show(ui.ctx(), |ui| {
        egui::Frame::popup(ui.style()).inner_margin(8.0).show(ui, |ui| {
            ui.label(RichText::new(title).small().strong());
            overlay::colour_bar(ui, map, LEGEND_WIDTH, |t| 2.0 * t - 1.0);
            ui.horizontal(|ui| {
                ui.set_width(LEGEND_WIDTH);
                ui.label(RichText::new(format!("{:+.3}", -scale)).small().monospace());
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.label(RichText::new(format!("{:+.3}", scale)).small().monospace());
                });
            });
            if edges != EdgeDraw::Blocks && !local {
                ui.label(
                    RichText::new(format!(
                        "range [{:+.3}, {:+.3}], clipped at p98 |w|",
                        data.min_weight, data.max_weight
                    ))
                    .small()
                    .weak(),
                );
            }
            ui.add_space(4.0);
            if let Some(o) = node_overlay {
                overlay::legend_ui(ui, o, map, LEGEND_WIDTH);
                return;
            }
            ui.horizontal_wrapped(|ui| {
                ui.set_max_width(LEGEND_WIDTH);
                for i in used {
                    let (dot, _) = ui.allocate_exact_size(Vec2::splat(10.0), Sense::hover());
                    let colour = colormap::NODE_PALETTE.get(i as usize).copied().unwrap_or(Color32::GRAY);
                    ui.painter().circle_filled(dot.center(), 4.5, colour);
                    let name = colormap::NODE_PALETTE_NAMES.get(i as usize).copied().unwrap_or("?");
                    ui.label(RichText::new(name).small());
                }
            });
        });
    });
}
