//! No subcommand: the desktop app. `gmnscope` opens the embedded demo models, `gmnscope FILE...`
//! opens files (`demo:NAME` is an embedded demo model). `--tab model|gmn|cka` picks the first
//! tab; `--gmn RUN` loads a trained GMN run, runs it on the active model once the models are open
//! and colours the graph by its node activations (last GMN layer, PCA). A path that is not a
//! directory is a command-line error; a directory that is not a usable run, or a model the GMN
//! does not fit, is an error toast in the app (a scripted run still takes its screenshot).
//! Scripted runs (CI smoke tests, README screenshots):
//! - `--screenshot OUT.png`: once the workspace has loaded (and the `--gmn` sequence ended),
//!   render a few frames (10, or `--quit-after-frames N`), save the window as PNG (written to a
//!   temp file, then renamed) and exit;
//! - `--quit-after-frames N`: exit after N frames of the loaded workspace.
//!
//! `GMNSCOPE_THEME=light|dark` overrides the saved theme (for screenshots of both). Scripted runs
//! use a throw-away settings directory, so they neither read nor change the user's saved layout.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gmnscope::ui::app::commands::Tab;
use gmnscope::ui::app::state::ThemeChoice;
use gmnscope::ui::{App, StartupOptions};

pub fn run(
    files: &[PathBuf],
    screenshot: Option<&Path>,
    quit_after_frames: Option<u64>,
    tab: Option<&str>,
    gmn: Option<&Path>,
) -> anyhow::Result<()> {
    #[cfg(feature = "burn")]
    let gmn = gmn.map(run_dir).transpose()?;
    #[cfg(not(feature = "burn"))]
    if let Some(run) = gmn {
        anyhow::bail!("--gmn {}: this gmnscope was built without GMN support (feature `burn`)", run.display());
    }
    let tab = match tab {
        None => None,
        Some(name) => Some(
            Tab::ALL
                .into_iter()
                .find(|t| t.cli_name() == name)
                .ok_or_else(|| anyhow::anyhow!("unknown tab '{name}' (expected model, gmn or cka)"))?,
        ),
    };
    let outcome = Arc::new(Mutex::new(None));
    let theme = match std::env::var("GMNSCOPE_THEME").ok().as_deref() {
        Some("light") => Some(ThemeChoice::Light),
        Some("dark") => Some(ThemeChoice::Dark),
        _ => None,
    };
    let startup = StartupOptions {
        files: files.to_vec(),
        screenshot: screenshot.map(Path::to_path_buf),
        quit_after_frames,
        outcome: outcome.clone(),
        theme,
        tab,
        #[cfg(feature = "burn")]
        gmn,
    };
    let scripted = startup.screenshot.is_some() || startup.quit_after_frames.is_some();
    let scratch = std::env::temp_dir().join(format!("gmnscope-scripted-{}", std::process::id()));
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("gmnscope")
            .with_inner_size([1400.0, 860.0])
            .with_min_inner_size([640.0, 400.0])
            .with_drag_and_drop(true),
        // A scripted run must not read or overwrite the user's saved layout.
        persist_window: !scripted,
        persistence_path: scripted.then(|| scratch.clone()),
        ..Default::default()
    };
    let result = eframe::run_native("gmnscope", options, Box::new(move |cc| Ok(Box::new(App::new(cc, startup)))))
        .map_err(|e| anyhow::anyhow!("cannot start the window: {e}"));
    if scripted {
        std::fs::remove_dir_all(&scratch).ok();
    }
    result?;
    match outcome.lock().ok().and_then(|mut o| o.take()) {
        Some(error) => anyhow::bail!(error),
        None => Ok(()),
    }
}

/// `--gmn RUN` must name a directory; whether it holds a usable run the app's load job decides
/// (and reports as a toast, as the GMN tab's "Load" does).
#[cfg(feature = "burn")]
fn run_dir(path: &Path) -> anyhow::Result<PathBuf> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(path.to_path_buf()),
        Ok(_) => anyhow::bail!("--gmn {}: not a directory (expected a training run directory)", path.display()),
        Err(e) => anyhow::bail!("--gmn {}: {e}", path.display()),
    }
}
