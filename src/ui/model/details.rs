//! The right panel: details of the selected layer — description, tensors, weight statistics, a
//! histogram of its weights (egui_plot) and one parameter tensor as a heatmap texture (conv
//! kernels flattened to `out x in*k*k`). Heatmaps are computed by a background job
//! ([`heatmap_job`]) and cached per (model, tensor, theme). Linear and conv layers also show their
//! spectrum (singular values, stable rank, WeightWatcher's alpha: `compare::spectra`), computed by
//! a job when the layer is first shown.

use std::collections::HashMap;
use std::sync::Arc;

use egui::RichText;
use egui_plot::{Bar, BarChart, Line, Plot, PlotPoints};

use crate::checkpoint::TensorStore;
use crate::compare::spectra::{self, SPECTRUM_WORK, Spectrum};
use crate::jobs::{JobError, JobHandle, Reporter};
use crate::layout::{MatrixView, matrix_view};
use crate::text::{shown, shown_message};
use crate::ui::app::commands::{Command, CommandQueue};
use crate::ui::app::status_bar::thousands;
use crate::ui::model::loader::{LayerSummary, LoadedModel};
use crate::ui::widgets::PanelContext;
use crate::ui::widgets::colormap::Diverging;

/// Largest heatmap side in cells (bigger matrices are pooled, see `layout::matrix_view`).
const HEATMAP_SIDE: usize = 512;

/// Cache key: model id, tensor name, dark theme.
pub type HeatmapKey = (u64, String, bool);

/// What a heatmap job produces.
pub struct HeatmapImage {
    pub image: egui::ColorImage,
    pub view: MatrixView,
}

pub enum HeatmapEntry {
    Pending(JobHandle<HeatmapImage>),
    Ready { texture: egui::TextureHandle, view: MatrixView },
    Failed(String),
}

#[derive(Default)]
pub struct HeatmapCache {
    pub entries: HashMap<HeatmapKey, HeatmapEntry>,
}

impl HeatmapCache {
    /// Moves finished jobs into textures; returns errors for toasts.
    pub fn poll(&mut self, ctx: &egui::Context) -> Vec<String> {
        let mut errors = Vec::new();
        for (key, entry) in &mut self.entries {
            let HeatmapEntry::Pending(job) = entry else { continue };
            match job.poll() {
                None => {}
                Some(Ok(done)) => {
                    let texture =
                        ctx.load_texture(format!("heatmap {}", key.1), done.image, egui::TextureOptions::NEAREST);
                    *entry = HeatmapEntry::Ready { texture, view: done.view };
                }
                Some(Err(e)) => {
                    errors.push(format!("heatmap of {}: {e}", key.1));
                    *entry = HeatmapEntry::Failed(e.to_string());
                }
            }
        }
        errors
    }

    /// Drops everything of a closed model.
    pub fn forget_model(&mut self, model_id: u64) {
        self.entries.retain(|k, _| k.0 != model_id);
    }

    pub fn running(&self) -> impl Iterator<Item = &JobHandle<HeatmapImage>> {
        self.entries.values().filter_map(|e| if let HeatmapEntry::Pending(j) = e { Some(j) } else { None })
    }
}

/// The job body: decode one tensor, pool it to at most `HEATMAP_SIDE`², colour it.
pub fn heatmap_job(
    store: Arc<TensorStore>,
    tensor: String,
    dark: bool,
) -> impl FnOnce(&Reporter<HeatmapImage>) -> Result<HeatmapImage, JobError> + Send + 'static {
    move |reporter| {
        let t = store.get(&tensor).ok_or_else(|| JobError::Failed(format!("no tensor named '{tensor}'")))?;
        reporter.stage("decoding", None);
        let values = t.to_f32();
        reporter.check()?;
        let view =
            matrix_view(&t.shape, &values, HEATMAP_SIDE).ok_or_else(|| JobError::Failed("tensor is empty".into()))?;
        let map = Diverging::for_theme(dark);
        let scale = if view.max_abs > 0.0 { 1.0 / view.max_abs } else { 1.0 };
        let pixels = view.values.iter().map(|&v| map.map(v * scale)).collect();
        let image = egui::ColorImage::new([view.cols, view.rows], pixels);
        Ok(HeatmapImage { image, view })
    }
}

/// A layer's spectrum: computing, done (`None`: the layer has no weight matrix), or refused.
enum SpectrumEntry {
    Pending(JobHandle<Option<Spectrum>>),
    Ready(Option<Spectrum>),
    Failed(String),
}

/// The job body: the spectrum of the layer named `layer` (over [`SPECTRUM_WORK`]: refused).
fn spectrum_job(store: &TensorStore, layer: &str) -> Result<Option<Spectrum>, String> {
    let arch = crate::arch::recover(store);
    let Some(l) = arch.layers.iter().find(|l| l.name == layer) else { return Ok(None) };
    spectra::layer_spectrum(&l.kind, store, SPECTRUM_WORK.default).transpose().map_err(|e| e.to_string())
}

/// Which tensor of each layer the panel shows (per model and layer); defaults to the first parameter.
#[derive(Default)]
pub struct DetailsPanel {
    chosen_tensor: HashMap<(u64, usize), String>,
    spectra: HashMap<(u64, usize), SpectrumEntry>,
}

impl DetailsPanel {
    /// True while a spectrum job runs (the app is busy until it lands).
    pub fn spectrum_running(&self) -> bool {
        self.spectra.values().any(|e| matches!(e, SpectrumEntry::Pending(_)))
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>, heatmaps: &HeatmapCache) {
        let Some(model) = cx.model else { return };
        let (selected, commands) = (cx.selected_layer, &mut *cx.commands);
        let Some((index, layer)) = selected.and_then(|i| model.layers.get(i).map(|l| (i, l))) else {
            ui.add_space(8.0);
            ui.heading("Layer details");
            ui.add_space(4.0);
            ui.label(RichText::new("Select a layer in the tree or click a node in the graph.").weak());
            return;
        };
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            ui.add_space(4.0);
            ui.heading(RichText::new(shown(&layer.name).to_string()).monospace());
            ui.label(RichText::new(shown_message(&layer.description).to_string()).weak());
            ui.add_space(6.0);
            stats_grid(ui, layer);
            if model.stats_deferred && layer.parameters > 0 {
                let note = if layer.stats.is_some() {
                    "statistics from a sample of the weights (large model)"
                } else {
                    "sampling the weights for statistics…"
                };
                ui.horizontal(|ui| {
                    if layer.stats.is_none() {
                        ui.spinner();
                    }
                    ui.label(RichText::new(note).small().weak());
                });
            }
            ui.add_space(8.0);
            histogram(ui, model.id, index, layer);
            ui.add_space(8.0);
            self.spectrum(ui, cx.jobs, model, index, layer);
            self.heatmap(ui, model, index, layer, heatmaps, commands);
        });
    }

    /// Singular values (log scale), stable rank and alpha of a Linear or conv layer.
    fn spectrum(
        &mut self,
        ui: &mut egui::Ui,
        jobs: &crate::jobs::Registry,
        model: &LoadedModel,
        index: usize,
        layer: &LayerSummary,
    ) {
        if !(layer.kind == "linear" || layer.kind.starts_with("conv")) {
            return;
        }
        let entry = self.spectra.entry((model.id, index)).or_insert_with(|| {
            let (store, name) = (model.store.clone(), layer.name.clone());
            let job = jobs.spawn(format!("spectrum of {name}"), move |reporter: &Reporter<Option<Spectrum>>| {
                reporter.stage("computing the spectrum", None);
                spectrum_job(&store, &name).map_err(JobError::Failed)
            });
            job.map_or_else(|e| SpectrumEntry::Failed(e.to_string()), SpectrumEntry::Pending)
        });
        if let SpectrumEntry::Pending(job) = entry {
            match job.poll() {
                None => {}
                Some(Ok(s)) => *entry = SpectrumEntry::Ready(s),
                Some(Err(e)) => *entry = SpectrumEntry::Failed(e.to_string()),
            }
        }
        match entry {
            SpectrumEntry::Pending(_) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(RichText::new("computing the spectrum…").weak());
                });
            }
            SpectrumEntry::Failed(e) => {
                ui.strong("Spectrum");
                ui.label(RichText::new(shown_message(e).to_string()).small().weak());
            }
            SpectrumEntry::Ready(None) => return,
            SpectrumEntry::Ready(Some(s)) => {
                ui.strong("Spectrum");
                let alpha = s.power_law.as_ref().map_or("no power-law fit".to_string(), |p| {
                    format!("alpha {:.3} (KS {:.3}, tail {} of {})", p.alpha, p.ks_distance, p.tail, p.eigenvalues)
                });
                ui.label(RichText::new(format!("stable rank {:.3} · {alpha}", s.stable_rank)).monospace());
                let points: PlotPoints = s
                    .singular_values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(i, v)| [i as f64, v.log10()])
                    .collect();
                Plot::new(("singular_values", model.id, index))
                    .height(110.0)
                    .allow_drag(false)
                    .allow_zoom(false)
                    .allow_scroll(false)
                    .y_axis_label("log10 σ")
                    .y_axis_min_width(28.0)
                    .show(ui, |plot| plot.line(Line::new("singular values", points)));
            }
        }
        ui.add_space(8.0);
    }

    fn heatmap(
        &mut self,
        ui: &mut egui::Ui,
        model: &LoadedModel,
        index: usize,
        layer: &LayerSummary,
        heatmaps: &HeatmapCache,
        commands: &mut CommandQueue,
    ) {
        let params: Vec<&str> = layer.tensors.iter().filter(|t| t.is_parameter).map(|t| t.name.as_str()).collect();
        let Some(&first) = params.first() else { return };
        let chosen = self.chosen_tensor.entry((model.id, index)).or_insert_with(|| first.to_string());
        ui.horizontal(|ui| {
            let heading = ui.strong("Weight matrix");
            let prefix = &common_prefix(layer);
            if params.len() > 2 {
                let combo = egui::ComboBox::from_id_salt(("heatmap_tensor", model.id, index))
                    .selected_text(RichText::new(relative_name(prefix, chosen)).monospace())
                    .show_ui(ui, |ui| {
                        for p in &params {
                            ui.selectable_value(chosen, p.to_string(), relative_name(prefix, p));
                        }
                    });
                combo.response.labelled_by(heading.id);
            } else {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    // Right to left: list the tensors reversed so they read in order.
                    for p in params.iter().rev() {
                        ui.selectable_value(chosen, p.to_string(), RichText::new(relative_name(prefix, p)).monospace());
                    }
                });
            }
        });
        let dark = ui.visuals().dark_mode;
        let key = (model.id, chosen.clone(), dark);
        match heatmaps.entries.get(&key) {
            None => {
                commands.send(Command::ShowTensor(chosen.clone()));
                ui.spinner();
            }
            Some(HeatmapEntry::Pending(_)) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(RichText::new("computing heatmap…").weak());
                });
            }
            Some(HeatmapEntry::Failed(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, shown_message(e).to_string());
            }
            Some(HeatmapEntry::Ready { texture, view }) => heatmap_image(ui, texture, view),
        }
    }
}

/// The longest module path (whole `.`-separated components) shared by all of a layer's tensors:
/// `encoder.layer.0.attention` for an attention layer whose q/k/v live under `.self` and whose
/// output projection lives under `.output.dense`.
fn common_prefix(layer: &LayerSummary) -> String {
    let mut parts: Option<Vec<&str>> = None;
    for t in &layer.tensors {
        let mut these: Vec<&str> = t.name.split('.').collect();
        these.pop(); // the leaf (`weight`, `bias`, ...) never counts as a module
        parts = Some(match parts {
            None => these,
            Some(p) => p.iter().zip(&these).take_while(|(a, b)| a == b).map(|(a, _)| *a).collect(),
        });
    }
    parts.unwrap_or_default().join(".")
}

/// `layer.name` + `.` stripped from a tensor name (`encoder.layer.0.attention.self.query.weight`
/// -> `query.weight`); the full name if it does not start with the layer's.
fn relative_name<'a>(layer: &str, tensor: &'a str) -> &'a str {
    tensor.strip_prefix(layer).and_then(|rest| rest.strip_prefix('.')).filter(|r| !r.is_empty()).unwrap_or(tensor)
}

fn stats_grid(ui: &mut egui::Ui, layer: &LayerSummary) {
    let prefix = common_prefix(layer);
    egui::Grid::new(("layer_stats", &layer.name)).num_columns(2).spacing([16.0, 3.0]).show(ui, |ui| {
        ui.label(RichText::new("parameters").weak());
        ui.label(thousands(layer.parameters as u64));
        ui.end_row();
        for t in &layer.tensors {
            let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
            ui.label(RichText::new(shown(relative_name(&prefix, &t.name)).to_string()).weak());
            let text = RichText::new(format!("[{}] {}", shape.join("×"), t.dtype)).monospace();
            ui.label(if t.is_parameter { text } else { text.weak() });
            ui.end_row();
        }
        if let Some(s) = layer.stats {
            for (name, value) in [
                ("mean", format!("{:+.5}", s.mean)),
                ("std", format!("{:.5}", s.std)),
                ("min", format!("{:+.5}", s.min)),
                ("max", format!("{:+.5}", s.max)),
            ] {
                ui.label(RichText::new(name).weak());
                ui.label(RichText::new(value).monospace());
                ui.end_row();
            }
            if s.non_finite > 0 {
                ui.label(RichText::new("non-finite").weak());
                ui.colored_label(ui.visuals().warn_fg_color, s.non_finite.to_string());
                ui.end_row();
            }
        }
    });
}

fn histogram(ui: &mut egui::Ui, model_id: u64, index: usize, layer: &LayerSummary) {
    let Some(h) = &layer.histogram else { return };
    ui.strong("Weight histogram");
    let colour = ui.visuals().selection.bg_fill;
    let bars: Vec<Bar> = h
        .counts
        .iter()
        .enumerate()
        .map(|(i, &c)| Bar::new(h.bin_center(i), c as f64).width(h.bin_width().max(1e-12)).fill(colour))
        .collect();
    Plot::new(("weight_histogram", model_id, index))
        .height(140.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .show_y(false)
        .y_axis_min_width(28.0)
        .show(ui, |plot| plot.bar_chart(BarChart::new("weights", bars).color(colour)));
}

fn heatmap_image(ui: &mut egui::Ui, texture: &egui::TextureHandle, view: &MatrixView) {
    let width = ui.available_width().max(32.0);
    let aspect = view.rows as f32 / view.cols.max(1) as f32;
    let size = egui::vec2(width, (width * aspect).clamp(12.0, 480.0));
    let response = ui.add(egui::Image::new((texture.id(), size)).sense(egui::Sense::hover()));
    let pooled = view.rows != view.source_rows || view.cols != view.source_cols;
    ui.label(
        RichText::new(format!(
            "{} × {}{} · colour scale ±{:.4}",
            view.source_rows,
            view.source_cols,
            if pooled { format!(" (shown {} × {}, max-|w| pooled)", view.rows, view.cols) } else { String::new() },
            view.max_abs
        ))
        .small()
        .weak(),
    );
    if let Some(pos) = response.hover_pos() {
        let rect = response.rect;
        let c = (((pos.x - rect.left()) / rect.width()) * view.cols as f32) as usize;
        let r = (((pos.y - rect.top()) / rect.height()) * view.rows as f32) as usize;
        if let Some(v) = view.values.get(r.min(view.rows - 1) * view.cols + c.min(view.cols - 1)) {
            let (sr, sc) = (r * view.source_rows / view.rows.max(1), c * view.source_cols / view.cols.max(1));
            response.on_hover_text_at_pointer(format!("row {sr}, col {sc}: {v:+.5}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::model::loader::TensorSummary;

    fn layer(names: &[&str]) -> LayerSummary {
        LayerSummary {
            name: "x".into(),
            kind: "attention".into(),
            description: String::new(),
            tensors: names
                .iter()
                .map(|n| TensorSummary { name: n.to_string(), shape: vec![1], dtype: "f32", is_parameter: true })
                .collect(),
            parameters: names.len(),
            stats: None,
            histogram: None,
        }
    }

    #[test]
    fn tensor_names_are_shown_relative_to_the_layer_module() {
        let l = layer(&["enc.0.attention.self.query.weight", "enc.0.attention.output.dense.bias"]);
        let prefix = common_prefix(&l);
        assert_eq!(prefix, "enc.0.attention");
        assert_eq!(relative_name(&prefix, "enc.0.attention.self.query.weight"), "self.query.weight");
        assert_eq!(common_prefix(&layer(&["fc.weight", "fc.bias"])), "fc");
        assert_eq!(relative_name("fc", "fc.weight"), "weight");
        assert_eq!(relative_name("", "weight"), "weight");
        assert_eq!(relative_name("fc", "fcx.weight"), "fcx.weight");
    }
}
