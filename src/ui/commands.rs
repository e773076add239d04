//! Commands: what panels ask the app to do. Panels read state and push commands; `App::logic`
//! applies them once per frame, so no panel mutates another panel's state mid-frame.

use std::path::PathBuf;

use crate::ui::jobs::JobId;
use crate::ui::state::{ColourScale, EdgeMode, ThemeChoice};

/// The app's views. Only the model view exists today; the GMN panel and the CKA explorer become
/// new variants (each a panel file) and a tab in the top bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    #[default]
    Model,
}

impl Tab {
    pub const ALL: [Tab; 1] = [Tab::Model];

    pub fn label(self) -> &'static str {
        match self {
            Tab::Model => "Model",
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
