//! What the app does with the panels' [`Command`]s and keyboard shortcuts, once per frame.

use std::path::PathBuf;

use super::App;
use crate::ui::app::commands::{Command, Tab, shortcuts};
use crate::ui::cka::CkaSource;
use crate::ui::model::layer_tree::LayerTree;
use crate::ui::model::loader::ModelSource;

impl App {
    pub(super) fn handle_input(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        if !dropped.is_empty() {
            self.commands.send(Command::OpenFiles(dropped));
        }
        let typing = ctx.egui_wants_keyboard_input();
        ctx.input_mut(|i| {
            if i.consume_shortcut(&shortcuts::OPEN) {
                self.commands.send(Command::ShowOpenDialog);
            }
            if i.consume_shortcut(&shortcuts::CLOSE) {
                self.commands.send(Command::CloseActiveModel);
            }
            if i.consume_shortcut(&shortcuts::SEARCH) {
                self.commands.send(Command::FocusSearch);
            }
            if i.consume_shortcut(&shortcuts::QUIT) {
                self.commands.send(Command::Quit);
            }
            if !typing && i.consume_shortcut(&shortcuts::FIT) {
                self.commands.send(Command::FitView);
            }
        });
    }

    pub(super) fn apply_commands(&mut self, ctx: &egui::Context) {
        for command in self.commands.take() {
            match command {
                Command::OpenFiles(paths) => {
                    for path in paths {
                        if crate::ui::cka::is_study_path(&path) {
                            self.tab = Tab::Cka;
                            self.cka.open_study(path, &self.jobs, &mut self.toasts);
                        } else if let Some(name) = path.to_str().and_then(|p| p.strip_prefix("demo:")) {
                            // As the CLI's subcommands take them: `demo:NAME`.
                            self.open(ModelSource::Demo(name.to_string()));
                        } else {
                            self.open(ModelSource::File(path));
                        }
                    }
                }
                Command::OpenDemo(name) => self.open(ModelSource::Demo(name)),
                Command::ShowOpenDialog => self.show_file_dialog(),
                Command::ShowOpenPathDialog => self.dialogs.open_path = Some(String::new()),
                Command::SelectModel(i) => {
                    if i < self.models.len() {
                        self.active = Some(i);
                    }
                }
                Command::CloseActiveModel => self.close_active(),
                Command::SelectLayer(layer) => {
                    if let Some(m) = self.active.and_then(|i| self.models.get_mut(i)) {
                        m.selected_layer = layer.filter(|&l| l < m.model.layers.len());
                        if m.selected_layer.is_some() {
                            self.state.show_details = true;
                        }
                    }
                    self.start_layer_stats();
                }
                Command::ShowTensor(tensor) => self.start_heatmap(ctx, tensor),
                Command::FitView => self.graph_view.request_fit(),
                Command::FocusSearch => {
                    self.state.show_layer_tree = true;
                    ctx.memory_mut(|m| m.request_focus(LayerTree::search_id()));
                }
                Command::SetTheme(theme) => self.state.theme = theme,
                Command::SetEdgeMode(mode) => self.state.edge_mode = mode,
                Command::SetColourScale(scale) => self.state.colour_scale = scale,
                Command::ResetLayout => {
                    self.state.reset_layout();
                    ctx.memory_mut(|m| m.reset_areas());
                    self.graph_view.request_fit();
                }
                Command::ShowAbout => self.dialogs.about = true,
                Command::ShowShortcuts => self.dialogs.shortcuts = true,
                Command::CancelJob(id) => {
                    self.jobs.cancel(id);
                }
                #[cfg(feature = "burn")]
                Command::FitDemoZoo => {
                    self.tab = Tab::Gmn;
                    self.gmn.fit_demo_zoo(&self.jobs, &mut self.toasts, false);
                }
                #[cfg(feature = "burn")]
                Command::StartTraining => {
                    self.tab = Tab::Gmn;
                    self.gmn.start(&self.jobs, &mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::CancelTraining => self.gmn.cancel(),
                #[cfg(feature = "burn")]
                Command::ShowLoadGmnDialog => {
                    self.tab = Tab::Gmn;
                    self.gmn.trained.show_dialog(&self.jobs, &mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::LoadGmn(dir) => {
                    self.tab = Tab::Gmn;
                    self.gmn.trained.load(dir, &self.jobs, &mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::RunGmnOnModel => {
                    let model = self.active.and_then(|i| self.models.get(i)).map(|m| &m.model);
                    self.gmn.trained.run_on(model, &self.jobs, &mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::SetNodeOverlay(settings) => self.gmn.trained.set_overlay(settings),
                #[cfg(not(feature = "burn"))]
                Command::ShowLoadGmnDialog
                | Command::LoadGmn(_)
                | Command::RunGmnOnModel
                | Command::SetNodeOverlay(_) => {
                    self.toasts.error("This build has no GMN support (feature `burn`)");
                }
                #[cfg(not(feature = "burn"))]
                Command::FitDemoZoo | Command::StartTraining | Command::CancelTraining => {
                    self.toasts.error("This build has no training support (feature `burn`)");
                }
                Command::ShowTab(tab) => self.tab = tab,
                Command::ShowCkaOpenDialog => self.dialogs.cka_open = Some(Default::default()),
                Command::OpenCka { a, b } => {
                    self.tab = Tab::Cka;
                    self.cka.open(CkaSource::Files { a, b }, &self.jobs, &mut self.toasts);
                }
                Command::OpenCkaResults(path) => {
                    self.tab = Tab::Cka;
                    self.cka.open(CkaSource::Results(path), &self.jobs, &mut self.toasts);
                }
                Command::OpenCkaDemo => {
                    self.tab = Tab::Cka;
                    self.cka.open(CkaSource::Demo, &self.jobs, &mut self.toasts);
                }
                Command::ExportCka { path, png } => self.cka.export(&path, png, &self.jobs, &mut self.toasts),
                Command::ShowStudyOpenDialog => {
                    self.tab = Tab::Cka;
                    self.cka.show_open_study();
                }
                Command::OpenStudy(path) => {
                    self.tab = Tab::Cka;
                    self.cka.open_study(path, &self.jobs, &mut self.toasts);
                }
                Command::ShowRunStudyDialog => {
                    self.tab = Tab::Cka;
                    self.cka.show_run_study(&mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::RunStudy { config, out } => {
                    self.tab = Tab::Cka;
                    self.cka.run_study(config, out, &self.jobs, &mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::ShowTrainingCka => match self.gmn.live_cka.run_dir() {
                    Some(run_dir) => {
                        self.tab = Tab::Cka;
                        let source = CkaSource::Training { run_dir: run_dir.clone() };
                        self.cka.open(source, &self.jobs, &mut self.toasts);
                    }
                    None => self.toasts.info("No training run yet: train a GMN in the GMN tab first"),
                },
                #[cfg(not(feature = "burn"))]
                Command::RunStudy { .. } | Command::ShowTrainingCka => {
                    self.toasts.error("This build has no training support (feature `burn`)");
                }
                Command::ClearRecent => self.state.recent_files.clear(),
                Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            }
        }
    }
}
