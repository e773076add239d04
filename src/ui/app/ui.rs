//! The app's layout: menu, tab bar, status bar, the tab's panels, dialogs and toasts.

use super::{App, OpenModel};
use crate::jobs::Registry;
use crate::ui::app::commands::{Command, CommandQueue, Tab};
use crate::ui::app::{menu, status_bar};
use crate::ui::widgets::PanelContext;

impl App {
    /// Lays the panels out; they only read state and send commands.
    pub(super) fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        let Self { models, active, state, commands, jobs, .. } = self;
        let mut cx = panel_context(models, *active, commands, jobs);
        egui::Panel::top("menu_bar").show(ui, |ui| menu::ui(ui, &mut cx, state));
        egui::Panel::top("tabs").show(ui, |ui| self.tabs_ui(ui));
        let Self { models, active, state, commands, jobs, device, layer_tree, details, heatmaps, cka, .. } = self;
        let mut cx = panel_context(models, *active, commands, jobs);
        egui::Panel::bottom("status_bar").exact_size(26.0).show(ui, |ui| status_bar::ui(ui, &mut cx, device));
        match self.tab {
            Tab::Model => {
                if cx.model.is_some() {
                    if state.show_layer_tree {
                        egui::Panel::left("layer_tree")
                            .resizable(true)
                            .default_size(340.0)
                            .size_range(200.0..=640.0)
                            .show(ui, |ui| layer_tree.ui(ui, &mut cx));
                    }
                    if state.show_details {
                        egui::Panel::right("details")
                            .resizable(true)
                            .default_size(340.0)
                            .size_range(240.0..=720.0)
                            .show(ui, |ui| details.ui(ui, &mut cx, heatmaps));
                    }
                }
                let frame = egui::Frame::central_panel(&ctx.global_style()).inner_margin(egui::Margin::ZERO);
                egui::CentralPanel::default().frame(frame).show(ui, |ui| self.central_ui(ui));
            }
            Tab::Cka => cka.ui(ui, &mut cx),
            #[cfg(feature = "burn")]
            Tab::Gmn => self.gmn.ui(ui, &mut cx),
            #[cfg(not(feature = "burn"))]
            Tab::Gmn => {
                egui::CentralPanel::default()
                    .show(ui, |ui| ui.label("This build has no training support (feature `burn`)."));
            }
        }
        let Self { models, active, commands, jobs, dialogs, .. } = self;
        dialogs.ui(&ctx, &mut panel_context(models, *active, commands, jobs));
        drop_overlay(&ctx);
        self.toasts.ui(&ctx);
        if !self.commands.is_empty() {
            ctx.request_repaint();
        }
        let ready =
            self.open_jobs.is_empty() && (!self.models.is_empty() || self.cka.has_study()) && self.startup_finished();
        self.automation.on_frame(&ctx, ready);
    }

    fn tabs_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            for tab in Tab::ALL {
                ui.selectable_value(&mut self.tab, tab, egui::RichText::new(tab.label()).strong());
            }
            if self.tab != Tab::Model {
                return;
            }
            ui.separator();
            for (i, m) in self.models.iter().enumerate() {
                let title = m.model.title();
                let response = ui.selectable_label(self.active == Some(i), title);
                if response.clicked() {
                    self.commands.send(Command::SelectModel(i));
                }
            }
            if !self.open_jobs.is_empty() {
                ui.spinner();
            }
        });
    }

    fn central_ui(&mut self, ui: &mut egui::Ui) {
        let overlay = self.node_overlay();
        let Self { models, active, graph_view, state, gpu, commands, open_jobs, layer_tree, .. } = self;
        match active.and_then(|i| models.get(i)) {
            Some(m) => {
                let view = crate::ui::model::graph_view::ViewInputs {
                    selected_layer: m.selected_layer,
                    state,
                    gpu: *gpu,
                    overlay: overlay.as_ref(),
                    search: &layer_tree.search,
                };
                graph_view.ui(ui, &m.model, view, commands)
            }
            None if !open_jobs.is_empty() => {
                ui.centered_and_justified(|ui| {
                    ui.horizontal_centered(|ui| {
                        ui.spinner();
                        ui.label("Opening…");
                    });
                });
            }
            None => {
                ui.vertical_centered(|ui| {
                    ui.add_space(ui.available_height() * 0.35);
                    ui.heading("No model open");
                    ui.label(
                        egui::RichText::new("Open a model file (Ctrl+O), drop one here, or pick a demo model.").weak(),
                    );
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        for name in crate::demo::MODELS {
                            if ui.button(format!("demo: {name}")).clicked() {
                                commands.send(Command::OpenDemo(name.to_string()));
                            }
                        }
                    });
                });
            }
        }
    }
}

/// A calmer, slightly roomier look than egui's defaults, in both themes.
pub(super) fn style(ctx: &egui::Context) {
    ctx.all_styles_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 5.0);
        style.spacing.button_padding = egui::vec2(7.0, 3.0);
        style.spacing.interact_size.y = 22.0;
        style.visuals.widgets.noninteractive.corner_radius = 4.0.into();
        style.visuals.window_corner_radius = 8.0.into();
    });
}

/// Dims the window and says what will happen while files are dragged over it.
fn drop_overlay(ctx: &egui::Context) {
    let hovering = ctx.input(|i| !i.raw.hovered_files.is_empty());
    if !hovering {
        return;
    }
    let rect = ctx.content_rect();
    let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop_overlay")));
    painter.rect_filled(rect, 0.0, egui::Color32::from_black_alpha(160));
    painter.text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        "Drop model files (or a study directory) to open them",
        egui::FontId::proportional(22.0),
        egui::Color32::WHITE,
    );
}

/// The context the panels read this frame: the active model and its selection, the command
/// queue, the job registry.
fn panel_context<'a>(
    models: &'a [OpenModel],
    active: Option<usize>,
    commands: &'a mut CommandQueue,
    jobs: &'a Registry,
) -> PanelContext<'a> {
    let open = active.and_then(|i| models.get(i));
    PanelContext { commands, jobs, model: open.map(|m| &m.model), selected_layer: open.and_then(|m| m.selected_layer) }
}
