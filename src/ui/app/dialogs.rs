//! Small windows: "Open path…" (the fallback when no native file dialog is available), About,
//! and the keyboard-shortcut list.

use egui::{Align2, RichText};

use crate::ui::app::commands::{Command, CommandQueue, shortcuts};
use crate::ui::widgets::PanelContext;

#[derive(Default)]
pub struct CkaOpenForm {
    pub a: String,
    pub b: String,
    pub results: String,
}

#[derive(Default)]
pub struct Dialogs {
    pub open_path: Option<String>,
    /// "Open activations for CKA": paths A and B, or a results JSON.
    pub cka_open: Option<CkaOpenForm>,
    pub about: bool,
    pub shortcuts: bool,
}

impl Dialogs {
    pub fn ui(&mut self, ctx: &egui::Context, cx: &mut PanelContext<'_>) {
        let commands = &mut *cx.commands;
        let Self { open_path, cka_open, about, shortcuts: show_shortcuts } = self;
        cka_open_ui(ctx, cka_open, commands);
        if let Some(text) = open_path {
            let mut open = true;
            let mut submit = false;
            egui::Window::new("Open path")
                .open(&mut open)
                .collapsible(false)
                .resizable(false)
                .anchor(Align2::CENTER_TOP, [0.0, 80.0])
                .show(ctx, |ui| {
                    ui.label("Model file (safetensors, .pt/.pth/.bin, .onnx, .npy, .npz):");
                    let edit = ui.add(
                        egui::TextEdit::singleline(text).hint_text("/path/to/model.safetensors").desired_width(420.0),
                    );
                    if !edit.has_focus() && text.is_empty() {
                        edit.request_focus();
                    }
                    submit |= edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    ui.add_space(6.0);
                    ui.horizontal(|ui| {
                        submit |= ui.add_enabled(!text.trim().is_empty(), egui::Button::new("Open")).clicked();
                    });
                });
            if submit && !text.trim().is_empty() {
                commands.send(Command::OpenFiles(vec![text.trim().into()]));
                open = false;
            }
            if !open {
                *open_path = None;
            }
        }
        egui::Window::new("About gmnscope")
            .open(about)
            .collapsible(false)
            .resizable(false)
            .anchor(Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                ui.heading(format!("gmnscope {}", env!("CARGO_PKG_VERSION")));
                ui.label("A workbench for weight-space learning: parameter graphs of neural networks,");
                ui.label("graph metanetworks and CKA similarity between layers.");
                ui.add_space(6.0);
                ui.label(RichText::new("Every action has a headless CLI twin: gmnscope --help").weak());
            });
        egui::Window::new("Keyboard shortcuts")
            .open(show_shortcuts)
            .collapsible(false)
            .resizable(false)
            .anchor(Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                egui::Grid::new("shortcut_grid").num_columns(2).spacing([24.0, 6.0]).striped(true).show(ui, |ui| {
                    let rows = [
                        (ctx.format_shortcut(&shortcuts::OPEN), "Open a model file"),
                        (ctx.format_shortcut(&shortcuts::CLOSE), "Close the active model"),
                        (ctx.format_shortcut(&shortcuts::SEARCH), "Search layers and tensors"),
                        (ctx.format_shortcut(&shortcuts::FIT), "Fit the graph in view"),
                        (ctx.format_shortcut(&shortcuts::QUIT), "Quit"),
                        ("Drag".into(), "Pan the graph"),
                        ("Scroll / pinch".into(), "Zoom around the cursor"),
                        ("Click".into(), "Select the layer under the cursor"),
                    ];
                    for (keys, what) in rows {
                        ui.label(RichText::new(keys).monospace().strong());
                        ui.label(what);
                        ui.end_row();
                    }
                });
            });
    }
}

fn cka_open_ui(ctx: &egui::Context, form: &mut Option<CkaOpenForm>, commands: &mut CommandQueue) {
    let Some(f) = form else { return };
    let mut open = true;
    let mut done = false;
    egui::Window::new("Open activations for CKA")
        .open(&mut open)
        .collapsible(false)
        .resizable(false)
        .anchor(Align2::CENTER_TOP, [0.0, 80.0])
        .show(ctx, |ui| {
            ui.label("Activation files (.npz or .safetensors; one tensor per layer, first dimension = examples):");
            egui::Grid::new("cka_open_grid").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
                ui.label("A (rows)");
                ui.add(egui::TextEdit::singleline(&mut f.a).hint_text("/path/to/a.npz").desired_width(420.0));
                ui.end_row();
                ui.label("B (columns)");
                ui.add(egui::TextEdit::singleline(&mut f.b).hint_text("/path/to/b.npz").desired_width(420.0));
                ui.end_row();
            });
            let ready = !f.a.trim().is_empty() && !f.b.trim().is_empty();
            if ui.add_enabled(ready, egui::Button::new("Compare")).clicked() {
                commands.send(Command::OpenCka { a: f.a.trim().into(), b: f.b.trim().into() });
                done = true;
            }
            ui.separator();
            ui.label("…or a results file written by `gmnscope cka --json`:");
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut f.results).hint_text("/path/to/results.json").desired_width(360.0),
                );
                if ui.add_enabled(!f.results.trim().is_empty(), egui::Button::new("Open")).clicked() {
                    commands.send(Command::OpenCkaResults(f.results.trim().into()));
                    done = true;
                }
            });
        });
    if !open || done {
        *form = None;
    }
}
