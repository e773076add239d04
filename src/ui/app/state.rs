//! What the app remembers between runs (eframe persistence, under `eframe::APP_KEY`): recent
//! files, theme, panel visibility and graph-view preferences. `#[serde(default)]` everywhere, so an
//! older or partial saved state still loads. No tensors, GPU resources or thread handles here:
//! those live in `App` and are rebuilt on start.

use std::path::PathBuf;

/// Light or dark look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ThemeChoice {
    Light,
    #[default]
    Dark,
}

impl ThemeChoice {
    pub fn is_dark(self) -> bool {
        self == ThemeChoice::Dark
    }

    pub fn to_egui(self) -> egui::Theme {
        match self {
            ThemeChoice::Light => egui::Theme::Light,
            ThemeChoice::Dark => egui::Theme::Dark,
        }
    }
}

/// Which edges the graph view draws.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EdgeMode {
    /// Neuron edges when the graph is small or the view is zoomed in, layer bands otherwise.
    #[default]
    Auto,
    /// Always neuron edges (when the graph has them: see the explicit-edge cap).
    Neurons,
    /// Always one band per edge block.
    Blocks,
}

impl EdgeMode {
    pub const ALL: [EdgeMode; 3] = [EdgeMode::Auto, EdgeMode::Neurons, EdgeMode::Blocks];

    pub fn label(self) -> &'static str {
        match self {
            EdgeMode::Auto => "Auto",
            EdgeMode::Neurons => "Neuron edges",
            EdgeMode::Blocks => "Layer bands",
        }
    }
}

/// How weights map to colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ColourScale {
    /// Each weight tensor relative to its own 98th percentile of |w|: shows every layer's structure.
    #[default]
    PerLayer,
    /// One scale for the whole model (98th percentile of all |w|): compares magnitudes across layers.
    Global,
}

impl ColourScale {
    pub const ALL: [ColourScale; 2] = [ColourScale::PerLayer, ColourScale::Global];

    pub fn label(self) -> &'static str {
        match self {
            ColourScale::PerLayer => "Per-layer scale",
            ColourScale::Global => "Global scale",
        }
    }
}

/// The persisted state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AppState {
    /// Most recent first, at most [`AppState::MAX_RECENT`].
    pub recent_files: Vec<PathBuf>,
    pub theme: ThemeChoice,
    pub show_layer_tree: bool,
    pub show_details: bool,
    pub show_legend: bool,
    /// Layer captions and group outlines on the graph.
    pub show_captions: bool,
    pub edge_mode: EdgeMode,
    pub colour_scale: ColourScale,
    /// Edge opacity multiplier, 0..1.
    pub edge_opacity: f32,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            recent_files: Vec::new(),
            theme: ThemeChoice::Dark,
            show_layer_tree: true,
            show_details: true,
            show_legend: true,
            show_captions: true,
            edge_mode: EdgeMode::Auto,
            colour_scale: ColourScale::PerLayer,
            edge_opacity: 0.85,
        }
    }
}

impl AppState {
    pub const MAX_RECENT: usize = 10;

    /// Moves `path` to the front of the recent list.
    pub fn remember(&mut self, path: PathBuf) {
        self.recent_files.retain(|p| p != &path);
        self.recent_files.insert(0, path);
        self.recent_files.truncate(Self::MAX_RECENT);
    }

    /// Restores the panel layout and view preferences; keeps recent files and theme.
    pub fn reset_layout(&mut self) {
        let defaults = Self::default();
        *self = Self { recent_files: std::mem::take(&mut self.recent_files), theme: self.theme, ..defaults };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_saved_state_fills_in_defaults() {
        let state: AppState = serde_json::from_str(r#"{"theme":"Light","unknown_field":1}"#).unwrap();
        assert_eq!(state.theme, ThemeChoice::Light);
        assert!(state.show_layer_tree);
        let round: AppState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(round, state);
    }

    #[test]
    fn recent_files_are_deduplicated_and_capped() {
        let mut state = AppState::default();
        for i in 0..15 {
            state.remember(format!("/m/{i}.pt").into());
        }
        state.remember("/m/12.pt".into());
        assert_eq!(state.recent_files.len(), AppState::MAX_RECENT);
        assert_eq!(state.recent_files[0], PathBuf::from("/m/12.pt"));
        assert_eq!(state.recent_files.iter().filter(|p| p.ends_with("12.pt")).count(), 1);
    }
}
