//! The left panel: the recovered layers of the active model, searchable by layer or tensor name,
//! each with its kind, tensor shapes, parameter count and weight statistics, then the tensors no
//! layer claimed ("unrecognized").

use egui::{RichText, collapsing_header::CollapsingState};

use crate::text::{shown, shown_message};
use crate::ui::app::commands::{Command, CommandQueue};
use crate::ui::app::status_bar::thousands;
use crate::ui::model::loader::{LayerSummary, LoadedModel, TensorSummary};
use crate::ui::widgets::PanelContext;

#[derive(Default)]
pub struct LayerTree {
    pub search: String,
}

impl LayerTree {
    /// Id of the search field (Ctrl+F focuses it).
    pub fn search_id() -> egui::Id {
        egui::Id::unique("gmnscope_layer_search")
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let Some(model) = cx.model else { return };
        let (selected, commands) = (cx.selected_layer, &mut *cx.commands);
        let Self { search } = self;
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.heading("Layers");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.label(RichText::new(format!("{} layers", model.layers.len())).weak())
                    .on_hover_text(format!("{} parameters", thousands(model_parameters(model) as u64)));
            });
        });
        ui.add(
            egui::TextEdit::singleline(search)
                .id(Self::search_id())
                .hint_text("Search layers and tensors (Ctrl+F)")
                .desired_width(f32::INFINITY),
        );
        let needle = search.trim().to_lowercase();
        let shown: Vec<usize> = (0..model.layers.len()).filter(|&i| matches(&model.layers[i], &needle)).collect();
        if !needle.is_empty() {
            ui.label(RichText::new(format!("{} of {} layers match", shown.len(), model.layers.len())).small().weak());
        }
        ui.add_space(2.0);
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            // Small models open every row: shapes and statistics at a glance.
            let open_rows = model.layers.len() <= 6;
            let open_groups = model.layers.len() <= 40;
            for group in group_layers(&model.layers, &shown) {
                let Some(prefix) = group.prefix else {
                    for i in group.members {
                        let layer = &model.layers[i];
                        let row = Row { model_id: model.id, index: i, layer, label: &layer.name, open: open_rows };
                        layer_row(ui, row, selected == Some(i), commands);
                    }
                    continue;
                };
                let header = RichText::new(format!("{prefix}  ({})", group.members.len())).monospace();
                egui::CollapsingHeader::new(header)
                    .id_salt(("layer_group", model.id, prefix))
                    .default_open(open_groups)
                    .open(if needle.is_empty() { None } else { Some(true) })
                    .show(ui, |ui| {
                        for i in group.members {
                            let layer = &model.layers[i];
                            let short = layer.name.get(prefix.len() + 1..).unwrap_or(&layer.name);
                            let row = Row { model_id: model.id, index: i, layer, label: short, open: open_rows };
                            layer_row(ui, row, selected == Some(i), commands);
                        }
                    });
            }
            let unrecognized: Vec<&TensorSummary> = model
                .unrecognized
                .iter()
                .filter(|t| needle.is_empty() || t.name.to_lowercase().contains(&needle))
                .collect();
            if !unrecognized.is_empty() {
                ui.add_space(6.0);
                egui::CollapsingHeader::new(
                    RichText::new(format!("Unrecognized tensors ({})", unrecognized.len())).strong(),
                )
                .id_salt(("unrecognized", model.id))
                .default_open(true)
                .show(ui, |ui| {
                    for t in unrecognized {
                        tensor_line(ui, t);
                    }
                });
            }
            if !model.notes.is_empty() {
                ui.add_space(6.0);
                egui::CollapsingHeader::new(RichText::new(format!("Notes ({})", model.notes.len())).strong())
                    .id_salt(("notes", model.id))
                    .show(ui, |ui| {
                        for note in &model.notes {
                            ui.add(egui::Label::new(RichText::new(note).small()).wrap());
                        }
                    });
            }
        });
    }
}

/// Consecutive layers of one block (same [`block_prefix`]) shown under one collapsible header.
struct Group<'a> {
    prefix: Option<&'a str>,
    members: Vec<usize>,
}

/// The block a layer belongs to, as the graph's outlines group it (one rule for both):
/// `encoder.layer.0.attention.self` -> `encoder.layer.0`, `layer2.0.downsample.0` -> `layer2.0`,
/// `seq.0` -> none (the index is the layer itself), `/model.2/cv1/conv/Conv` -> `/model.2`.
fn block_prefix(name: &str) -> Option<&str> {
    crate::ui::model::graph_view::captions::group_prefix(name)
}

fn group_layers<'a>(layers: &'a [LayerSummary], shown: &[usize]) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for &i in shown {
        let prefix = layers.get(i).and_then(|l| block_prefix(&l.name));
        match groups.last_mut() {
            Some(g) if prefix.is_some() && g.prefix == prefix => g.members.push(i),
            _ => groups.push(Group { prefix, members: vec![i] }),
        }
    }
    // A "group" of one is just a row.
    for g in &mut groups {
        if g.members.len() < 2 {
            g.prefix = None;
        }
    }
    groups
}

fn model_parameters(model: &LoadedModel) -> usize {
    model.layers.iter().map(|l| l.parameters).sum()
}

/// Case-insensitive match on the layer name, its kind, or any of its tensor names.
fn matches(layer: &LayerSummary, needle: &str) -> bool {
    needle.is_empty()
        || layer.name.to_lowercase().contains(needle)
        || layer.kind.contains(needle)
        || layer.tensors.iter().any(|t| t.name.to_lowercase().contains(needle))
}

/// One layer's row in the tree: which layer, the label shown (its name without the group's
/// prefix), and whether it starts expanded.
struct Row<'a> {
    model_id: u64,
    index: usize,
    layer: &'a LayerSummary,
    label: &'a str,
    open: bool,
}

fn layer_row(ui: &mut egui::Ui, row: Row<'_>, selected: bool, commands: &mut CommandQueue) {
    let Row { model_id, index, layer, label, open: default_open } = row;
    let id = ui.make_persistent_id(("layer", model_id, index));
    CollapsingState::load_with_default_open(ui.ctx(), id, default_open)
        .show_header(ui, |ui| {
            // Leave room for the kind and count on the right; long names are truncated.
            let name_width = (ui.available_width() - 112.0).max(60.0);
            let label =
                egui::Button::selectable(selected, RichText::new(shown(label).to_string()).monospace()).truncate();
            let response = ui.scope(|ui| {
                ui.set_max_width(name_width);
                ui.add(label)
            });
            let hover = format!("{}\n{}", shown(&layer.name), shown_message(&layer.description));
            if response.inner.on_hover_text(hover).clicked() {
                commands.send(Command::SelectLayer(if selected { None } else { Some(index) }));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.label(RichText::new(thousands(layer.parameters as u64)).small().weak());
                ui.label(RichText::new(&layer.kind).small().color(kind_colour(ui, &layer.kind)));
            });
        })
        .body(|ui| {
            ui.label(RichText::new(shown_message(&layer.description).to_string()).small());
            for t in &layer.tensors {
                tensor_line(ui, t);
            }
            if let Some(s) = layer.stats {
                let text = format!("mean {:+.4}  std {:.4}\nmin  {:+.4}  max {:+.4}", s.mean, s.std, s.min, s.max);
                ui.label(small_mono(text).weak());
            }
        });
}

fn tensor_line(ui: &mut egui::Ui, t: &TensorSummary) {
    let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
    let text = format!("{}  [{}]  {}", shown(&t.name), shape.join("×"), t.dtype);
    let rich = small_mono(text);
    ui.label(if t.is_parameter { rich } else { rich.weak() }).on_hover_text(if t.is_parameter {
        "parameter"
    } else {
        "buffer (not a graph parameter)"
    });
}

fn small_mono(text: impl Into<String>) -> RichText {
    RichText::new(text).size(11.0).family(egui::FontFamily::Monospace)
}

fn kind_colour(ui: &egui::Ui, kind: &str) -> egui::Color32 {
    let dark = ui.visuals().dark_mode;
    let (d, l) = match kind {
        k if k.starts_with("conv") => ((90, 200, 220), (20, 120, 140)),
        k if k.ends_with("norm") => ((190, 150, 240), (110, 60, 170)),
        "attention" => ((110, 210, 150), (30, 130, 70)),
        "embedding" => ((240, 190, 90), (160, 110, 10)),
        "residual" => ((170, 170, 170), (100, 100, 100)),
        _ => ((130, 170, 240), (40, 80, 170)),
    };
    let (r, g, b) = if dark { d } else { l };
    egui::Color32::from_rgb(r, g, b)
}

#[cfg(test)]
mod tests {
    use super::block_prefix;

    #[test]
    fn block_prefixes() {
        assert_eq!(block_prefix("encoder.layer.0.attention.self"), Some("encoder.layer.0"));
        assert_eq!(block_prefix("layer2.0.downsample.0"), Some("layer2.0"));
        assert_eq!(block_prefix("layer1.0.conv1"), Some("layer1.0"));
        assert_eq!(block_prefix("seq.0"), None);
        assert_eq!(block_prefix("embeddings.LayerNorm"), None);
        assert_eq!(block_prefix("fc"), None);
        assert_eq!(block_prefix("/model.2/cv1/conv/Conv"), Some("/model.2"));
    }
}
