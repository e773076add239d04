//! Commands: what panels ask the app to do. Panels read state and push commands; `App::logic`
//! applies them once per frame, so no panel mutates another panel's state mid-frame.

use std::path::PathBuf;

use crate::jobs::JobId;
use crate::ui::app::state::{ColourScale, EdgeMode, ThemeChoice};
use crate::ui::model::graph_view::overlay::OverlaySettings;

/// The app's views, one tab each in the top bar (each a panel file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    #[default]
    Model,
    Gmn,
    Cka,
}

impl Tab {
    pub const ALL: [Tab; 3] = [Tab::Model, Tab::Gmn, Tab::Cka];

    /// The name `--tab` takes.
    pub fn cli_name(self) -> &'static str {
        match self {
            Tab::Model => "model",
            Tab::Gmn => "gmn",
            Tab::Cka => "cka",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Tab::Model => "Model",
            Tab::Gmn => "GMN training",
            Tab::Cka => "CKA explorer",
        }
    }
}

/// Every action a panel can request.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Open model files (each in a background job).
    OpenFiles(Vec<PathBuf>),
    /// Open one of the embedded demo models.
    OpenDemo(String),
    /// Show the native file dialog (falls back to the path dialog when none is available).
    ShowOpenDialog,
    /// Show the "Open path..." text-field dialog.
    ShowOpenPathDialog,
    /// Make the open model at this index the active one.
    SelectModel(usize),
    /// Close the active model.
    CloseActiveModel,
    /// Select a layer of the active model (`None` clears the selection).
    SelectLayer(Option<usize>),
    /// Show this parameter tensor of the selected layer as a heatmap.
    ShowTensor(String),
    FitView,
    FocusSearch,
    SetTheme(ThemeChoice),
    SetEdgeMode(EdgeMode),
    SetColourScale(ColourScale),
    ResetLayout,
    ShowAbout,
    ShowShortcuts,
    CancelJob(JobId),
    ShowTab(Tab),
    /// Show the window asking for two activation files (or a results file) for the CKA explorer.
    ShowCkaOpenDialog,
    /// Compare two activation files (A = rows, B = columns) in the CKA explorer.
    OpenCka {
        a: PathBuf,
        b: PathBuf,
    },
    /// Show a matrix written by `gmnscope cka --json`.
    OpenCkaResults(PathBuf),
    /// Back to the built-in demo activations.
    OpenCkaDemo,
    /// Show the window asking for a seed-study directory.
    ShowStudyOpenDialog,
    /// Open a seed study (`gmnscope study` output: the directory or its results.json) in the CKA
    /// explorer's study view.
    OpenStudy(PathBuf),
    /// Show the GMN tab's live training CKA (each block vs initialisation) in the CKA explorer.
    ShowTrainingCka,
    /// Show the "Run study…" window.
    ShowRunStudyDialog,
    /// Run a seed study in the background into `out` (`config`: a study TOML; `None`: the
    /// built-in demo study), showing its matrices in the study view as they are computed.
    RunStudy {
        config: Option<PathBuf>,
        out: PathBuf,
    },
    /// Write the CKA explorer's matrix as PNG (`png`) or CSV.
    ExportCka {
        path: PathBuf,
        png: bool,
    },
    /// Fit the small demo zoo of INRs (GMN tab).
    FitDemoZoo,
    /// Train a GMN on the GMN tab's zoo with its settings.
    StartTraining,
    /// Cancel the GMN tab's running fit / load / training job.
    CancelTraining,
    /// Pick a trained GMN run directory with the native dialog (GMN tab; its path field is the
    /// fallback when there is no dialog).
    ShowLoadGmnDialog,
    /// Load a trained GMN from a run directory (a job).
    LoadGmn(PathBuf),
    /// Run the loaded GMN on the active model (a job); its node features become the overlay.
    RunGmnOnModel,
    /// Change the graph view's GMN activation overlay.
    SetNodeOverlay(OverlaySettings),
    ClearRecent,
    Quit,
}

/// The queue panels push to during a frame.
#[derive(Default)]
pub struct CommandQueue {
    pending: Vec<Command>,
}

impl CommandQueue {
    pub fn send(&mut self, command: Command) {
        self.pending.push(command);
    }

    pub fn take(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.pending)
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Keyboard shortcuts (shown in menus and the shortcuts window).
pub mod shortcuts {
    use egui::{Key, KeyboardShortcut, Modifiers};

    pub const OPEN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
    pub const CLOSE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::W);
    pub const SEARCH: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::F);
    pub const QUIT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Q);
    pub const FIT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::F);
}
