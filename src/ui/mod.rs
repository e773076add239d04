//! The desktop app (feature `gui`): eframe/egui panels over the core library. Holds no numerics:
//! it renders state and sends commands; the work runs in background jobs that call the core.
//!
//! Brief overview:
//! - [`app::App`]: owns runtime state (open models, jobs, caches) and the persisted
//!   [`state::AppState`]; `logic` drains jobs and applies [`commands::Command`]s, `ui` lays out.
//! - One panel per file: [`menu`], [`layer_tree`], [`graph_view`] (custom WGSL through an
//!   egui-wgpu paint callback, see [`graph_view::renderer`]), [`details`], [`status_bar`],
//!   [`toasts`], [`dialogs`].
//! - Jobs are `crate::jobs`: the app owns a `jobs::Registry` (the status bar's list, cancel-by-id,
//!   the repaint waker); each panel keeps its jobs' typed handles. [`loader`] is the open-model job.
//! - [`cka_explorer`]: the CKA tab ([`heatmap`] draws the matrix, [`cka_data`] loads and computes;
//!   `study_view`, feature `burn`: a `gmnscope study` directory's matrices and summary charts).
//! - `gmn_panel` (feature `burn`): the GMN training tab with live curves and cancel; `gmn_run`
//!   loads a trained GMN, runs it on the open model and feeds the graph view's activation overlay;
//!   `live_cka` computes each epoch's block CKA against initialisation for the CKA explorer.
//! - `study_run` (feature `burn`): "Run study…", a seed study as a job whose matrices stream
//!   into the study view.
//! - [`automation`]: `--screenshot` / `--quit-after-frames` for scripted runs; `startup_gmn`
//!   (feature `burn`): `--gmn RUN` loads a GMN, runs it and shows its overlay at start-up.
//!
//! Extension points for the views to come: add a [`commands::Tab`] variant and its panel file;
//! long computations become a `jobs::Registry::spawn` closure whose result the panel takes in `logic`.

pub mod app;
pub mod automation;
pub mod cka_data;
pub mod cka_explorer;
pub mod colormap;
pub mod commands;
pub mod details;
pub mod dialogs;
#[cfg(feature = "burn")]
pub mod gmn_panel;
#[cfg(feature = "burn")]
pub mod gmn_run;
pub mod graph_view;
pub mod heatmap;
pub mod layer_tree;
#[cfg(feature = "burn")]
pub mod live_cka;
pub mod loader;
pub mod menu;
#[cfg(feature = "burn")]
pub mod startup_gmn;
pub mod state;
pub mod status_bar;
#[cfg(feature = "burn")]
pub mod study_run;
#[cfg(feature = "burn")]
pub mod study_view;
pub mod toasts;

pub use app::{App, StartupOptions};
