//! The desktop app (feature `gui`): eframe/egui panels over the core library, one folder per tab.
//! Holds no numerics: it renders state and sends commands; the work runs in `crate::jobs` jobs
//! that call the core.
//!
//! - [`app`]: the shell. [`app::App`] owns runtime state (open models, the job registry, panels)
//!   and the persisted [`app::state::AppState`]; split as `mod` (state), `logic` (jobs, once per
//!   frame), `command_handling` ([`app::commands::Command`]s and shortcuts) and `ui` (layout).
//!   Also the menu, status bar, dialogs and `--screenshot` automation.
//! - [`model`]: the model tab: the open-model job ([`model::loader`]), layer tree, details panel,
//!   and the graph view (custom WGSL through an egui-wgpu paint callback,
//!   [`model::graph_view::renderer`]).
//! - `gmn` (feature `burn`): the GMN training tab (live curves, cancel), the trained GMN and its
//!   activation overlay (`gmn::trained`), the live training CKA (`gmn::live_cka`) and `--gmn RUN`
//!   at start-up (`gmn::startup`).
//! - [`cka`]: the CKA explorer tab (data and jobs in [`cka::data`]); it hosts the study view.
//! - [`study`]: a seed study's view (`study::view`, feature `burn`) and "Run study…"
//!   (`study::run`).
//! - [`widgets`]: pieces several tabs draw with: the heatmap, colour maps, toasts, the
//!   [`widgets::PanelContext`] every panel reads.
//!
//! Jobs: the app owns a `jobs::Registry` (the status bar's list, cancel-by-id, the repaint waker);
//! each panel keeps its jobs' typed handles and takes their results in its `logic`.
//!
//! Extension points: a new tab is a [`app::commands::Tab`] variant and a folder here; a long
//! computation is a `jobs::Registry::spawn` closure whose result its panel takes in `logic`.

pub mod app;
pub mod cka;
#[cfg(feature = "burn")]
pub mod gmn;
pub mod model;
pub mod study;
pub mod widgets;

pub use app::{App, StartupOptions};
