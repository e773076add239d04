//! The eframe app: owns the runtime state (open models, the job registry, caches, panels) and the
//! persisted [`AppState`]. Split as rerun splits its app: this file holds the state and its
//! accessors; `logic.rs` takes job results and starts the model tab's jobs, `command_handling.rs`
//! applies shortcuts and the command queue, `ui.rs` lays the panels out (the panels only send
//! [`Command`]s).

pub mod automation;
mod command_handling;
pub mod commands;
pub mod dialogs;
mod logic;
pub mod menu;
pub mod state;
pub mod status_bar;
mod ui;

use std::path::PathBuf;
use std::sync::Arc;

use crate::jobs::{JobHandle, Registry};
use crate::layout::{Histogram, WeightStats};
use crate::ui::app::automation::{Automation, Outcome};
use crate::ui::app::commands::{Command, CommandQueue, Tab};
use crate::ui::app::dialogs::Dialogs;
use crate::ui::app::state::{AppState, ThemeChoice};
use crate::ui::app::status_bar::device_label;
use crate::ui::cka::CkaExplorer;
use crate::ui::model::details::{DetailsPanel, HeatmapCache};
use crate::ui::model::graph_view::GraphView;
use crate::ui::model::graph_view::renderer::GraphRenderer;
use crate::ui::model::layer_tree::LayerTree;
use crate::ui::model::loader::{LoadedModel, ModelSource};
use crate::ui::widgets::toasts::Toasts;

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
    gmn: crate::ui::gmn::GmnPanel,
    /// `--gmn`: load, run and overlay a trained GMN once the models are open.
    #[cfg(feature = "burn")]
    startup_gmn: Option<crate::ui::gmn::startup::StartupGmn>,
    dialogs: Dialogs,
    automation: Automation,
    device: String,
    gpu: bool,
    applied_theme: Option<ThemeChoice>,
    /// Every job the app started: the status bar's list, cancel-by-id, the repaint waker.
    jobs: Registry,
}

impl App {
    pub fn new(cc: &eframe::CreationContext<'_>, options: StartupOptions) -> Self {
        let mut state: AppState = cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
        if let Some(theme) = options.theme {
            state.theme = theme;
        }
        ui::style(&cc.egui_ctx);
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
            startup_gmn: options.gmn.map(|run| crate::ui::gmn::startup::StartupGmn::new(run, options.tab)),
            dialogs: Dialogs::default(),
            automation: Automation::new(options.screenshot, options.quit_after_frames, options.outcome),
            device,
            gpu,
            applied_theme: None,
            jobs: Registry::new(Some(repaint_waker(&cc.egui_ctx))),
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
    pub fn gmn(&self) -> &crate::ui::gmn::GmnPanel {
        &self.gmn
    }

    /// The GMN panel's settings, for scripted runs and tests (as the form would edit them).
    #[cfg(feature = "burn")]
    pub fn gmn_mut(&mut self) -> &mut crate::ui::gmn::GmnPanel {
        &mut self.gmn
    }

    /// The graph view (tests read the node overlay it drew).
    pub fn graph_view(&self) -> &GraphView {
        &self.graph_view
    }

    /// The GMN activation overlay of the active model, when the GMN tab has one.
    fn node_overlay(&self) -> Option<std::sync::Arc<crate::ui::model::graph_view::overlay::NodeOverlay>> {
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
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.frame_logic(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame_ui(ui);
    }

    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw_input: &mut egui::RawInput) {
        self.automation.filter_input(raw_input);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }
}

/// A waker that asks egui for a repaint soon (batches a burst of job reports into one frame).
fn repaint_waker(ctx: &egui::Context) -> crate::jobs::Waker {
    let ctx = ctx.clone();
    Arc::new(move || ctx.request_repaint_after(std::time::Duration::from_millis(10)))
}
