//! The GMN activation overlay on the graph view: what it shows ([`OverlaySettings`]: GMN layer,
//! colouring), the per-node values handed to the renderer ([`NodeOverlay`]), its controls and
//! its part of the legend.
//!
//! A `NodeOverlay` arrives finished: the GMN tab runs the GMN in a job and turns one layer's node
//! features into colour-map positions with `analysis::node_colouring`; this file only draws. The
//! renderer rewrites the node instance buffer when the overlay's `key` changes.

use std::sync::atomic::{AtomicU64, Ordering};

use egui::{RichText, Sense, pos2, vec2};

use crate::analysis::node_colouring::ColourRange;
use crate::ui::app::commands::{Command, CommandQueue};
use crate::ui::widgets::colormap::Diverging;

/// How nodes are coloured by their GMN features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverlayMode {
    /// One feature channel (see [`OverlaySettings::channel`]).
    Channel,
    /// The L2 norm of the node's feature vector.
    Norm,
    /// The score on the layer's first principal component.
    #[default]
    Pca,
}

impl OverlayMode {
    pub const ALL: [OverlayMode; 3] = [OverlayMode::Pca, OverlayMode::Norm, OverlayMode::Channel];

    pub fn label(self) -> &'static str {
        match self {
            OverlayMode::Channel => "One channel",
            OverlayMode::Norm => "L2 norm",
            OverlayMode::Pca => "PCA (1st component)",
        }
    }
}

/// What the overlay shows. `layer` 0 is the encoder output, `l` the output of GMN block `l`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlaySettings {
    pub enabled: bool,
    pub layer: usize,
    pub mode: OverlayMode,
    pub channel: usize,
}

impl Default for OverlaySettings {
    fn default() -> Self {
        Self { enabled: true, layer: usize::MAX, mode: OverlayMode::default(), channel: 0 }
    }
}

/// One layer's node colouring for one open model, ready to draw.
#[derive(Clone, Debug)]
pub struct NodeOverlay {
    /// New for every overlay built: the renderer rewrites the node buffer when it changes.
    pub key: u64,
    /// The open model (`LoadedModel::id`) whose nodes these are.
    pub model_id: u64,
    /// The settings as applied (`layer` and `channel` clamped to what exists).
    pub settings: OverlaySettings,
    /// GMN layers with node features (encoder + blocks) and channels per layer.
    pub layers: usize,
    pub channels: usize,
    /// Per node, in node-id order: position on the colour map (`[-1, 1]` signed, `[0, 1]` for
    /// norms), NaN where there is no value.
    pub values: Vec<f32>,
    /// The raw values the colour bar spans.
    pub range: ColourRange,
    /// What is shown, e.g. "layer 2 of 3 · PCA 1 (48% of variance)".
    pub title: String,
}

impl NodeOverlay {
    /// A fresh key (process-wide, never reused).
    pub fn next_key() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Name of GMN layer `layer` out of `layers` (encoder + blocks).
    pub fn layer_name(layer: usize, layers: usize) -> String {
        if layer == 0 { "encoder".into() } else { format!("layer {layer} of {}", layers.saturating_sub(1)) }
    }
}

/// Box under the graph's top-right controls: overlay on/off, GMN layer slider, colouring, channel.
pub fn controls_ui(ui: &egui::Ui, rect: egui::Rect, overlay: &NodeOverlay, commands: &mut CommandQueue) {
    egui::Area::new(egui::Id::unique("gmn_overlay_controls"))
        .fixed_pos(rect.right_top() + vec2(-10.0, 54.0))
        .pivot(egui::Align2::RIGHT_TOP)
        .order(egui::Order::Middle)
        .show(ui.ctx(), |ui| {
            egui::Frame::popup(ui.style()).inner_margin(6.0).show(ui, |ui| {
                let mut s = overlay.settings;
                ui.checkbox(&mut s.enabled, "Colour nodes by GMN activation");
                ui.add_enabled_ui(s.enabled, |ui| {
                    let last = overlay.layers.saturating_sub(1);
                    ui.horizontal(|ui| {
                        let label = ui.label(RichText::new("GMN layer").weak());
                        let layers = overlay.layers;
                        ui.add(
                            egui::Slider::new(&mut s.layer, 0..=last)
                                .custom_formatter(move |v, _| NodeOverlay::layer_name(v as usize, layers)),
                        )
                        .labelled_by(label.id);
                    });
                    ui.horizontal(|ui| {
                        let label = ui.label(RichText::new("Colour by").weak());
                        egui::ComboBox::from_id_salt("overlay_mode")
                            .selected_text(s.mode.label())
                            .width(150.0)
                            .show_ui(ui, |ui| {
                                for m in OverlayMode::ALL {
                                    ui.selectable_value(&mut s.mode, m, m.label());
                                }
                            })
                            .response
                            .labelled_by(label.id);
                        if s.mode == OverlayMode::Channel {
                            let max = overlay.channels.saturating_sub(1);
                            ui.add(egui::DragValue::new(&mut s.channel).range(0..=max).prefix("channel "));
                        }
                    });
                });
                if s != overlay.settings {
                    commands.send(Command::SetNodeOverlay(s));
                }
            });
        });
}

/// The overlay's part of the legend: what is shown and a colour bar with its value range.
pub fn legend_ui(ui: &mut egui::Ui, overlay: &NodeOverlay, map: Diverging, width: f32) {
    ui.label(RichText::new("GMN node activation").small().strong());
    ui.label(RichText::new(&overlay.title).small().weak());
    // The shader's mapping: signed values span the whole map, norms its upper half.
    let signed = overlay.range.signed;
    colour_bar(ui, map, width, |t| if signed { 2.0 * t - 1.0 } else { t });
    ui.horizontal(|ui| {
        ui.set_width(width);
        ui.label(RichText::new(format!("{:+.3}", overlay.range.lo)).small().monospace());
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            ui.label(RichText::new(format!("{:+.3}", overlay.range.hi)).small().monospace());
        });
    });
    let r = overlay.range;
    if r.clips() {
        let note = format!("values [{:+.3}, {:+.3}]; colours span the central 95%", r.min, r.max);
        ui.label(RichText::new(note).small().weak());
    }
}

/// A horizontal colour bar `width` wide: position `t` in [0, 1] shows `map.map(value(t))`.
pub fn colour_bar(ui: &mut egui::Ui, map: Diverging, width: f32, value: impl Fn(f32) -> f32) {
    let (bar, _) = ui.allocate_exact_size(vec2(width, 10.0), Sense::hover());
    let mut mesh = egui::Mesh::default();
    let steps = 32;
    for s in 0..=steps {
        let t = s as f32 / steps as f32;
        let x = bar.left() + t * bar.width();
        let c = map.map(value(t));
        mesh.colored_vertex(pos2(x, bar.top()), c);
        mesh.colored_vertex(pos2(x, bar.bottom()), c);
        if s > 0 {
            let i = (2 * s) as u32;
            mesh.add_triangle(i - 2, i - 1, i);
            mesh.add_triangle(i - 1, i, i + 1);
        }
    }
    ui.painter().add(egui::Shape::mesh(mesh));
}
