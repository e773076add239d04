//! Pieces several tabs draw with, and the context every panel reads.
//!
//! - [`heatmap`]: the zoomable labelled matrix view (CKA matrices, study pairs).
//! - [`colormap`]: diverging and sequential colour maps.
//! - [`toasts`]: transient messages.

pub mod colormap;
pub mod heatmap;
pub mod toasts;

use crate::jobs::Registry;
use crate::ui::app::commands::CommandQueue;
use crate::ui::model::loader::LoadedModel;

/// What a panel reads besides its own state, and where it sends what it wants done: the app
/// builds one per frame and hands it to every panel's `ui`.
pub struct PanelContext<'a> {
    /// Where the panel asks for work (`App::logic` applies the commands once per frame).
    pub commands: &'a mut CommandQueue,
    /// Starts jobs the status bar lists (file dialogs a panel opens itself).
    pub jobs: &'a Registry,
    /// The active model, if one is open, and its selected layer.
    pub model: Option<&'a LoadedModel>,
    pub selected_layer: Option<usize>,
}
