//! The menu bar: File, View, Help. Every item only sends a [`Command`].

use crate::ui::app::commands::{Command, CommandQueue, shortcuts};
use crate::ui::app::state::{AppState, ColourScale, EdgeMode, ThemeChoice};
use crate::ui::widgets::PanelContext;

pub fn ui(ui: &mut egui::Ui, cx: &mut PanelContext<'_>, state: &mut AppState) {
    let (has_model, commands) = (cx.model.is_some(), &mut *cx.commands);
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| file_menu(ui, state, has_model, commands));
        ui.menu_button("View", |ui| view_menu(ui, state, commands));
        ui.menu_button("Help", |ui| {
            if ui.button("Keyboard shortcuts").clicked() {
                commands.send(Command::ShowShortcuts);
            }
            if ui.button("About gmnscope").clicked() {
                commands.send(Command::ShowAbout);
            }
        });
    });
}

fn item(ui: &mut egui::Ui, text: &str, shortcut: &egui::KeyboardShortcut) -> egui::Response {
    let shortcut = ui.ctx().format_shortcut(shortcut);
    ui.add(egui::Button::new(text).shortcut_text(shortcut))
}

fn file_menu(ui: &mut egui::Ui, state: &AppState, has_model: bool, commands: &mut CommandQueue) {
    if item(ui, "Open…", &shortcuts::OPEN).clicked() {
        commands.send(Command::ShowOpenDialog);
    }
    if ui.button("Open path…").clicked() {
        commands.send(Command::ShowOpenPathDialog);
    }
    ui.menu_button("Open recent", |ui| {
        if state.recent_files.is_empty() {
            ui.label(egui::RichText::new("No recent files").weak());
        }
        for path in &state.recent_files {
            if ui.button(path.display().to_string()).clicked() {
                commands.send(Command::OpenFiles(vec![path.clone()]));
            }
        }
        if !state.recent_files.is_empty() {
            ui.separator();
            if ui.button("Clear recent").clicked() {
                commands.send(Command::ClearRecent);
            }
        }
    });
    ui.menu_button("Open demo model", |ui| {
        for name in crate::demo::MODELS {
            if ui.button(name).clicked() {
                commands.send(Command::OpenDemo(name.to_string()));
            }
        }
    });
    ui.separator();
    if ui.button("Open activations for CKA…").clicked() {
        commands.send(Command::ShowCkaOpenDialog);
    }
    if ui.button("Open study results…").on_hover_text("A directory written by `gmnscope study`").clicked() {
        commands.send(Command::ShowStudyOpenDialog);
    }
    if ui.button("Run study…").on_hover_text("Run a seed study; its CKA matrices appear as they are computed").clicked()
    {
        commands.send(Command::ShowRunStudyDialog);
    }
    ui.separator();
    let close = egui::Button::new("Close model").shortcut_text(ui.ctx().format_shortcut(&shortcuts::CLOSE));
    if ui.add_enabled(has_model, close).clicked() {
        commands.send(Command::CloseActiveModel);
    }
    ui.separator();
    if item(ui, "Quit", &shortcuts::QUIT).clicked() {
        commands.send(Command::Quit);
    }
}

fn view_menu(ui: &mut egui::Ui, state: &mut AppState, commands: &mut CommandQueue) {
    ui.label(egui::RichText::new("Theme").weak());
    for (theme, label) in [(ThemeChoice::Dark, "Dark"), (ThemeChoice::Light, "Light")] {
        if ui.radio(state.theme == theme, label).clicked() {
            commands.send(Command::SetTheme(theme));
        }
    }
    ui.separator();
    ui.checkbox(&mut state.show_layer_tree, "Layer tree");
    ui.checkbox(&mut state.show_details, "Layer details");
    ui.checkbox(&mut state.show_legend, "Legend");
    ui.checkbox(&mut state.show_captions, "Layer captions");
    ui.separator();
    ui.label(egui::RichText::new("Edges").weak());
    for mode in EdgeMode::ALL {
        if ui.radio(state.edge_mode == mode, mode.label()).clicked() {
            commands.send(Command::SetEdgeMode(mode));
        }
    }
    ui.label(egui::RichText::new("Edge colours").weak());
    for scale in ColourScale::ALL {
        if ui.radio(state.colour_scale == scale, scale.label()).clicked() {
            commands.send(Command::SetColourScale(scale));
        }
    }
    ui.separator();
    if item(ui, "Fit graph", &shortcuts::FIT).clicked() {
        commands.send(Command::FitView);
    }
    if item(ui, "Search layers", &shortcuts::SEARCH).clicked() {
        commands.send(Command::FocusSearch);
    }
    if ui.button("Reset layout").clicked() {
        commands.send(Command::ResetLayout);
    }
}
