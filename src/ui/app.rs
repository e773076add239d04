//! The eframe app: owns the runtime state (open models, jobs, caches, panels) and the persisted
//! [`AppState`]. `logic` drains job channels, input shortcuts and the command queue; `ui` only
//! lays the panels out, and the panels only send [`Command`]s.

use std::path::PathBuf;

use crate::layout::{Histogram, WeightStats};
use crate::ui::automation::{Automation, Outcome};
use crate::ui::cka_explorer::{CkaExplorer, CkaSource};
use crate::ui::commands::{Command, CommandQueue, Tab, shortcuts};
use crate::ui::details::{DetailsPanel, HeatmapCache, HeatmapEntry, heatmap_job};
use crate::ui::dialogs::Dialogs;
use crate::ui::graph_view::GraphView;
use crate::ui::graph_view::renderer::GraphRenderer;
use crate::ui::jobs::{self, CANCELLED, JobHandle, Waker};
use crate::ui::layer_tree::LayerTree;
use crate::ui::loader::{self, LoadedModel, ModelSource};
use crate::ui::state::{AppState, ThemeChoice};
use crate::ui::status_bar::{self, JobSummary};
use crate::ui::toasts::Toasts;
use crate::ui::{menu, status_bar::device_label};

/// How the app starts: files to open (none: the embedded demo models) and scripted-run options.
#[derive(Clone, Debug, Default)]
pub struct StartupOptions {
    pub files: Vec<PathBuf>,
    pub screenshot: Option<PathBuf>,
    pub quit_after_frames: Option<u64>,
    pub outcome: Outcome,
    /// Overrides the saved theme (scripted runs, screenshots of both themes).
    pub theme: Option<ThemeChoice>,
    /// The tab shown first (`--tab`); the model view when `None`.
    pub tab: Option<Tab>,
    /// A trained GMN run to load, run on the active model and show as the overlay (`--gmn`).
    #[cfg(feature = "burn")]
    pub gmn: Option<PathBuf>,
}

/// An open model and its view state.
pub struct OpenModel {
    pub model: LoadedModel,
    /// Request order: tabs are sorted by it, whatever order the jobs finish in.
    seq: u64,
    pub selected_layer: Option<usize>,
}

struct OpenJob {
    seq: u64,
    handle: JobHandle<LoadedModel>,
}

/// Sampled statistics of one layer of a model too large to read at open (`stats_deferred`).
struct StatsJob {
    model_id: u64,
    layer: usize,
    handle: JobHandle<(Option<WeightStats>, Option<Histogram>)>,
}

pub struct App {
    state: AppState,
    tab: Tab,
    models: Vec<OpenModel>,
    active: Option<usize>,
    /// The request whose model becomes active when it arrives.
    activate_seq: Option<u64>,
    next_seq: u64,
    open_jobs: Vec<OpenJob>,
    stats_jobs: Vec<StatsJob>,
    dialog_job: Option<JobHandle<Option<Vec<PathBuf>>>>,
    heatmaps: HeatmapCache,
    commands: CommandQueue,
    toasts: Toasts,
    layer_tree: LayerTree,
    graph_view: GraphView,
    details: DetailsPanel,
    cka: CkaExplorer,
    #[cfg(feature = "burn")]
    gmn: crate::ui::gmn_panel::GmnPanel,
    /// `--gmn`: load, run and overlay a trained GMN once the models are open.
    #[cfg(feature = "burn")]
    startup_gmn: Option<crate::ui::startup_gmn::StartupGmn>,
    dialogs: Dialogs,
    automation: Automation,
    device: String,
    gpu: bool,
    applied_theme: Option<ThemeChoice>,
    waker: Waker,
}

impl App {
    pub fn new(cc: &eframe::CreationContext<'_>, options: StartupOptions) -> Self {
        let mut state: AppState = cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
        if let Some(theme) = options.theme {
            state.theme = theme;
        }
        style(&cc.egui_ctx);
        let (device, gpu) = match &cc.wgpu_render_state {
            Some(rs) => {
                GraphRenderer::install(rs);
                (device_label(Some(&rs.adapter.get_info())), true)
            }
            None => (device_label(None), false),
        };
        let mut app = Self {
            state,
            tab: Tab::Model,
            models: Vec::new(),
            active: None,
            activate_seq: None,
            next_seq: 0,
            open_jobs: Vec::new(),
            stats_jobs: Vec::new(),
            dialog_job: None,
            heatmaps: HeatmapCache::default(),
            commands: CommandQueue::default(),
            toasts: Toasts::default(),
            layer_tree: LayerTree::default(),
            graph_view: GraphView::default(),
            details: DetailsPanel::default(),
            cka: CkaExplorer::default(),
            #[cfg(feature = "burn")]
            gmn: Default::default(),
            #[cfg(feature = "burn")]
            startup_gmn: options.gmn.map(|run| crate::ui::startup_gmn::StartupGmn::new(run, options.tab)),
            dialogs: Dialogs::default(),
            automation: Automation::new(options.screenshot, options.quit_after_frames, options.outcome),
            device,
            gpu,
            applied_theme: None,
            waker: jobs::egui_waker(&cc.egui_ctx),
        };
        if options.files.is_empty() {
            for name in crate::demo::MODELS {
                app.open(ModelSource::Demo(name.to_string()));
            }
            // Show the first demo model, whichever job finishes first.
            app.activate_seq = Some(0);
        } else {
            app.commands.send(Command::OpenFiles(options.files));
        }
        if let Some(tab) = options.tab {
            app.commands.send(Command::ShowTab(tab));
        }
        app
    }

    /// Queues a command, as a panel would (tests drive the app this way).
    pub fn send(&mut self, command: Command) {
        self.commands.send(command);
    }

    /// True while any job runs or a command waits.
    pub fn is_busy(&self) -> bool {
        !self.open_jobs.is_empty()
            || !self.stats_jobs.is_empty()
            || self.heatmaps.running().next().is_some()
            || self.details.spectrum_running()
            || self.cka.is_busy()
            || self.gmn_busy()
            || !self.startup_finished()
            || !self.commands.is_empty()
    }

    /// False while the `--gmn` start-up sequence runs (scripted screenshots wait for it).
    pub fn startup_finished(&self) -> bool {
        #[cfg(feature = "burn")]
        return self.startup_gmn.as_ref().is_none_or(|s| s.finished());
        #[cfg(not(feature = "burn"))]
        true
    }

    pub fn models(&self) -> impl Iterator<Item = &LoadedModel> {
        self.models.iter().map(|m| &m.model)
    }

    pub fn active_model(&self) -> Option<&OpenModel> {
        self.active.and_then(|i| self.models.get(i))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn toasts(&self) -> &Toasts {
        &self.toasts
    }

    pub fn tab(&self) -> Tab {
        self.tab
    }

    pub fn cka(&self) -> &CkaExplorer {
        &self.cka
    }

    #[cfg(feature = "burn")]
    pub fn gmn(&self) -> &crate::ui::gmn_panel::GmnPanel {
        &self.gmn
    }

    /// The GMN panel's settings, for scripted runs and tests (as the form would edit them).
    #[cfg(feature = "burn")]
    pub fn gmn_mut(&mut self) -> &mut crate::ui::gmn_panel::GmnPanel {
        &mut self.gmn
    }

    /// The graph view (tests read the node overlay it drew).
    pub fn graph_view(&self) -> &GraphView {
        &self.graph_view
    }

    /// The GMN activation overlay of the active model, when the GMN tab has one.
    fn node_overlay(&self) -> Option<std::sync::Arc<crate::ui::graph_view::overlay::NodeOverlay>> {
        #[cfg(feature = "burn")]
        return self.active_model().and_then(|m| self.gmn.trained.overlay_for(m.model.id)).cloned();
        #[cfg(not(feature = "burn"))]
        None
    }

    fn gmn_busy(&self) -> bool {
        #[cfg(feature = "burn")]
        return self.gmn.is_busy();
        #[cfg(not(feature = "burn"))]
        false
    }

    fn open(&mut self, source: ModelSource) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = format!("open {}", source.title());
        match jobs::spawn(name, self.waker.clone(), move |r| loader::load(source, r)) {
            Ok(handle) => {
                self.open_jobs.push(OpenJob { seq, handle });
                self.activate_seq = Some(seq);
            }
            Err(e) => self.toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    fn poll_jobs(&mut self, ctx: &egui::Context) {
        let mut finished = Vec::new();
        self.open_jobs.retain_mut(|job| match job.handle.poll() {
            Some(result) => {
                finished.push((job.seq, result));
                false
            }
            None => true,
        });
        for (seq, result) in finished {
            match result {
                Ok(model) => self.add_model(seq, model),
                Err(e) if e == CANCELLED => self.toasts.info("Opening cancelled"),
                Err(e) => self.toasts.error(e),
            }
        }
        let mut done = Vec::new();
        self.stats_jobs.retain_mut(|job| match job.handle.poll() {
            Some(result) => {
                done.push((job.model_id, job.layer, result));
                false
            }
            None => true,
        });
        for (model_id, layer, result) in done {
            match result {
                Ok((stats, histogram)) => {
                    let open = self.models.iter_mut().find(|m| m.model.id == model_id);
                    if let Some(l) = open.and_then(|m| m.model.layers.get_mut(layer)) {
                        l.stats = stats;
                        l.histogram = histogram;
                    }
                }
                Err(e) if e == CANCELLED => {}
                Err(e) => self.toasts.error(e),
            }
        }
        if let Some(job) = &mut self.dialog_job
            && let Some(result) = job.poll()
        {
            self.dialog_job = None;
            match result {
                Ok(Some(paths)) => self.commands.send(Command::OpenFiles(paths)),
                Ok(None) => self.toasts.info("No file chosen. Without a file dialog, use File › Open path…"),
                Err(e) => self.toasts.error(format!("file dialog: {e}")),
            }
        }
        for e in self.heatmaps.poll(ctx) {
            self.toasts.error(e);
        }
    }

    fn add_model(&mut self, seq: u64, model: LoadedModel) {
        if let ModelSource::File(path) = &model.source {
            self.state.remember(path.clone());
        }
        if let Err(e) = &model.graph {
            self.toasts.error(e.clone());
        }
        let at = self.models.partition_point(|m| m.seq < seq);
        let active_seq = self.active_model().map(|m| m.seq);
        self.models.insert(at, OpenModel { model, seq, selected_layer: None });
        self.active = if self.activate_seq == Some(seq) {
            Some(at)
        } else {
            active_seq.and_then(|s| self.models.iter().position(|m| m.seq == s)).or(Some(at))
        };
    }

    fn handle_input(&mut self, ctx: &egui::Context) {
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

    fn apply_commands(&mut self, ctx: &egui::Context) {
        for command in self.commands.take() {
            match command {
                Command::OpenFiles(paths) => {
                    for path in paths {
                        if crate::ui::cka_explorer::is_study_path(&path) {
                            self.tab = Tab::Cka;
                            self.cka.open_study(path, &self.waker, &mut self.toasts);
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
                    self.open_jobs.iter().filter(|j| j.handle.id == id).for_each(|j| j.handle.cancel());
                    self.stats_jobs.iter().filter(|j| j.handle.id == id).for_each(|j| j.handle.cancel());
                    self.heatmaps.running().filter(|j| j.id == id).for_each(JobHandle::cancel);
                    self.cka.cancel(id);
                    #[cfg(feature = "burn")]
                    self.gmn.cancel_job(id);
                }
                #[cfg(feature = "burn")]
                Command::FitDemoZoo => {
                    self.tab = Tab::Gmn;
                    self.gmn.fit_demo_zoo(&self.waker, &mut self.toasts, false);
                }
                #[cfg(feature = "burn")]
                Command::StartTraining => {
                    self.tab = Tab::Gmn;
                    self.gmn.start(&self.waker, &mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::CancelTraining => self.gmn.cancel(),
                #[cfg(feature = "burn")]
                Command::ShowLoadGmnDialog => {
                    self.tab = Tab::Gmn;
                    self.gmn.trained.show_dialog(&self.waker, &mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::LoadGmn(dir) => {
                    self.tab = Tab::Gmn;
                    self.gmn.trained.load(dir, &self.waker, &mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::RunGmnOnModel => {
                    let model = self.active.and_then(|i| self.models.get(i)).map(|m| &m.model);
                    self.gmn.trained.run_on(model, &self.waker, &mut self.toasts);
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
                    self.cka.open(CkaSource::Files { a, b }, &self.waker, &mut self.toasts);
                }
                Command::OpenCkaResults(path) => {
                    self.tab = Tab::Cka;
                    self.cka.open(CkaSource::Results(path), &self.waker, &mut self.toasts);
                }
                Command::OpenCkaDemo => {
                    self.tab = Tab::Cka;
                    self.cka.open(CkaSource::Demo, &self.waker, &mut self.toasts);
                }
                Command::ExportCka { path, png } => self.cka.export(&path, png, &self.waker, &mut self.toasts),
                Command::ShowStudyOpenDialog => {
                    self.tab = Tab::Cka;
                    self.cka.show_open_study();
                }
                Command::OpenStudy(path) => {
                    self.tab = Tab::Cka;
                    self.cka.open_study(path, &self.waker, &mut self.toasts);
                }
                Command::ShowRunStudyDialog => {
                    self.tab = Tab::Cka;
                    self.cka.show_run_study(&mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::RunStudy { config, out } => {
                    self.tab = Tab::Cka;
                    self.cka.run_study(config, out, &self.waker, &mut self.toasts);
                }
                #[cfg(feature = "burn")]
                Command::ShowTrainingCka => match self.gmn.live_cka.run_dir() {
                    Some(run_dir) => {
                        self.tab = Tab::Cka;
                        let source = CkaSource::Training { run_dir: run_dir.clone() };
                        self.cka.open(source, &self.waker, &mut self.toasts);
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

    /// The native dialog blocks its caller, so it runs on a worker; `None` (no portal, or the
    /// user cancelled) points the user to "Open path…".
    fn show_file_dialog(&mut self) {
        if self.dialog_job.is_some() {
            return;
        }
        let pick = |_: &jobs::Reporter<Option<Vec<PathBuf>>>| {
            Ok(rfd::FileDialog::new()
                .set_title("Open model")
                .add_filter("Model files", &["safetensors", "pt", "pth", "bin", "ckpt", "onnx", "npy", "npz", "json"])
                .add_filter("All files", &["*"])
                .pick_files())
        };
        match jobs::spawn("file dialog", self.waker.clone(), pick) {
            Ok(job) => self.dialog_job = Some(job),
            Err(_) => self.dialogs.open_path = Some(String::new()),
        }
    }

    /// For a model whose statistics were deferred at open: samples the selected layer's weights in
    /// the background (once per layer).
    fn start_layer_stats(&mut self) {
        let Some(m) = self.active_model() else { return };
        let Some(index) = m.selected_layer else { return };
        let Some(layer) = m.model.layers.get(index) else { return };
        let id = m.model.id;
        if !m.model.stats_deferred
            || layer.stats.is_some()
            || layer.parameters == 0
            || self.stats_jobs.iter().any(|j| j.model_id == id && j.layer == index)
        {
            return;
        }
        let names: Vec<String> = layer.tensors.iter().filter(|t| t.is_parameter).map(|t| t.name.clone()).collect();
        let store = m.model.store.clone();
        let job = move |r: &jobs::Reporter<_>| {
            r.progress("sampling weights", None);
            Ok(loader::layer_stats(&store, &names))
        };
        match jobs::spawn(format!("statistics {}", crate::text::shown(&layer.name)), self.waker.clone(), job) {
            Ok(handle) => self.stats_jobs.push(StatsJob { model_id: id, layer: index, handle }),
            Err(e) => self.toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    fn start_heatmap(&mut self, ctx: &egui::Context, tensor: String) {
        let Some(m) = self.active_model() else { return };
        let dark = ctx.global_style().visuals.dark_mode;
        let key = (m.model.id, tensor.clone(), dark);
        if self.heatmaps.entries.contains_key(&key) {
            return;
        }
        let job = heatmap_job(m.model.store.clone(), tensor.clone(), dark);
        match jobs::spawn(format!("heatmap {tensor}"), self.waker.clone(), job) {
            Ok(handle) => {
                self.heatmaps.entries.insert(key, HeatmapEntry::Pending(handle));
            }
            Err(e) => self.toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    fn close_active(&mut self) {
        let Some(i) = self.active else { return };
        if i >= self.models.len() {
            return;
        }
        let closed = self.models.remove(i);
        self.heatmaps.forget_model(closed.model.id);
        self.graph_view.forget_model(closed.model.id);
        self.active = if self.models.is_empty() { None } else { Some(i.min(self.models.len() - 1)) };
    }

    fn job_summaries(&self) -> Vec<JobSummary> {
        let mut out: Vec<JobSummary> = self.open_jobs.iter().map(|j| JobSummary::of(&j.handle)).collect();
        out.extend(self.stats_jobs.iter().map(|j| JobSummary::of(&j.handle)));
        out.extend(self.heatmaps.running().map(JobSummary::of));
        if let Some(job) = &self.dialog_job {
            out.push(JobSummary::of(job));
        }
        self.cka.job_summaries(&mut out);
        #[cfg(feature = "burn")]
        self.gmn.job_summaries(&mut out);
        out
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
                let view = crate::ui::graph_view::ViewInputs {
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
fn style(ctx: &egui::Context) {
    ctx.all_styles_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 5.0);
        style.spacing.button_padding = egui::vec2(7.0, 3.0);
        style.spacing.interact_size.y = 22.0;
        style.visuals.widgets.noninteractive.corner_radius = 4.0.into();
        style.visuals.window_corner_radius = 8.0.into();
    });
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        if self.applied_theme != Some(self.state.theme) {
            ctx.set_theme(self.state.theme.to_egui());
            self.applied_theme = Some(self.state.theme);
        }
        self.poll_jobs(ctx);
        self.handle_input(ctx);
        self.apply_commands(ctx);
        if self.tab == Tab::Cka {
            self.cka.ensure_started(&self.waker, &mut self.toasts);
        }
        self.cka.logic(&self.waker, &mut self.toasts);
        #[cfg(feature = "burn")]
        self.gmn.logic(&self.waker, &mut self.toasts);
        #[cfg(feature = "burn")]
        self.cka.follow_training(self.gmn.live_cka.latest());
        // After the commands and the GMN jobs: what it sent last frame has taken effect.
        #[cfg(feature = "burn")]
        if let Some(s) = &mut self.startup_gmn {
            s.advance(!self.open_jobs.is_empty(), &self.gmn.trained, &mut self.commands);
        }
        if self.is_busy() {
            // Keep spinners moving; workers also wake us when they report.
            ctx.request_repaint_after(std::time::Duration::from_millis(50));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let has_model = self.active.is_some();
        egui::Panel::top("menu_bar").show(ui, |ui| {
            menu::ui(ui, &mut self.state, has_model, &mut self.commands);
        });
        egui::Panel::top("tabs").show(ui, |ui| self.tabs_ui(ui));
        let jobs = self.job_summaries();
        egui::Panel::bottom("status_bar").exact_size(26.0).show(ui, |ui| {
            let model = self.active.and_then(|i| self.models.get(i)).map(|m| &m.model);
            status_bar::ui(ui, &self.device, &jobs, model, &mut self.commands);
        });
        match self.tab {
            Tab::Model => {
                let Self { models, active, state, layer_tree, details, heatmaps, commands, .. } = self;
                if let Some(m) = active.and_then(|i| models.get(i)) {
                    if state.show_layer_tree {
                        egui::Panel::left("layer_tree")
                            .resizable(true)
                            .default_size(340.0)
                            .size_range(200.0..=640.0)
                            .show(ui, |ui| layer_tree.ui(ui, &m.model, m.selected_layer, commands));
                    }
                    if state.show_details {
                        egui::Panel::right("details")
                            .resizable(true)
                            .default_size(340.0)
                            .size_range(240.0..=720.0)
                            .show(ui, |ui| details.ui(ui, &m.model, m.selected_layer, heatmaps, commands));
                    }
                }
                let frame = egui::Frame::central_panel(&ctx.global_style()).inner_margin(egui::Margin::ZERO);
                egui::CentralPanel::default().frame(frame).show(ui, |ui| self.central_ui(ui));
            }
            Tab::Cka => self.cka.ui(ui, &mut self.commands),
            #[cfg(feature = "burn")]
            Tab::Gmn => self.gmn.ui(ui, &mut self.commands),
            #[cfg(not(feature = "burn"))]
            Tab::Gmn => {
                egui::CentralPanel::default()
                    .show(ui, |ui| ui.label("This build has no training support (feature `burn`)."));
            }
        }
        self.dialogs.ui(&ctx, &mut self.commands);
        drop_overlay(&ctx);
        self.toasts.ui(&ctx);
        if !self.commands.is_empty() {
            ctx.request_repaint();
        }
        let ready =
            self.open_jobs.is_empty() && (!self.models.is_empty() || self.cka.has_study()) && self.startup_finished();
        self.automation.on_frame(&ctx, ready);
    }

    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw_input: &mut egui::RawInput) {
        self.automation.filter_input(raw_input);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }
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
