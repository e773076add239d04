//! The app's per-frame logic: takes finished jobs' results, starts the model tab's jobs (open,
//! statistics, heatmaps, the file dialog) and runs the panels' own `logic`.

use std::path::PathBuf;

use super::{App, OpenJob, OpenModel, StatsJob};
use crate::jobs::JobError;
use crate::ui::app::commands::{Command, Tab};
use crate::ui::model::details::{HeatmapEntry, heatmap_job};
use crate::ui::model::loader::{self, LoadedModel, ModelSource};

impl App {
    /// Once per frame before the layout: jobs, input, commands, the panels' own jobs.
    pub(super) fn frame_logic(&mut self, ctx: &egui::Context) {
        if self.applied_theme != Some(self.state.theme) {
            ctx.set_theme(self.state.theme.to_egui());
            self.applied_theme = Some(self.state.theme);
        }
        self.poll_jobs(ctx);
        self.handle_input(ctx);
        self.apply_commands(ctx);
        if self.tab == Tab::Cka {
            self.cka.ensure_started(&self.jobs, &mut self.toasts);
        }
        self.cka.logic(&self.jobs, &mut self.toasts);
        #[cfg(feature = "burn")]
        self.gmn.logic(&self.jobs, &mut self.toasts);
        #[cfg(feature = "burn")]
        self.cka.follow_training(self.gmn.live_cka.latest());
        // After the commands and the GMN jobs: what it sent last frame has taken effect.
        #[cfg(feature = "burn")]
        if let Some(s) = &mut self.startup_gmn {
            s.advance(!self.open_jobs.is_empty(), &self.gmn.trained, &mut self.commands);
        }
        // No polling: every job wakes the UI when it reports or ends (the registry's waker), and
        // spinners ask for their own frames while they are drawn.
    }

    pub(super) fn open(&mut self, source: ModelSource) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = format!("open {}", source.title());
        match self.jobs.spawn(name, move |r| loader::load(source, r)) {
            Ok(handle) => {
                self.open_jobs.push(OpenJob { seq, handle });
                self.activate_seq = Some(seq);
            }
            Err(e) => self.toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    pub(super) fn poll_jobs(&mut self, ctx: &egui::Context) {
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
                Err(JobError::Cancelled) => self.toasts.info("Opening cancelled"),
                Err(e) => self.toasts.error(e.to_string()),
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
                Err(JobError::Cancelled) => {}
                Err(e) => self.toasts.error(e.to_string()),
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

    pub(super) fn add_model(&mut self, seq: u64, model: LoadedModel) {
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

    /// The native dialog blocks its caller, so it runs on a worker; `None` (no portal, or the
    /// user cancelled) points the user to "Open path…".
    pub(super) fn show_file_dialog(&mut self) {
        if self.dialog_job.is_some() {
            return;
        }
        let pick = |_: &crate::jobs::Reporter<Option<Vec<PathBuf>>>| {
            Ok(rfd::FileDialog::new()
                .set_title("Open model")
                .add_filter("Model files", &["safetensors", "pt", "pth", "bin", "ckpt", "onnx", "npy", "npz", "json"])
                .add_filter("All files", &["*"])
                .pick_files())
        };
        match self.jobs.spawn("file dialog", pick) {
            Ok(job) => self.dialog_job = Some(job),
            Err(_) => self.dialogs.open_path = Some(String::new()),
        }
    }

    /// For a model whose statistics were deferred at open: samples the selected layer's weights in
    /// the background (once per layer).
    pub(super) fn start_layer_stats(&mut self) {
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
        let job = move |r: &crate::jobs::Reporter<_>| {
            r.stage("sampling weights", None);
            Ok(loader::layer_stats(&store, &names))
        };
        match self.jobs.spawn(format!("statistics {}", crate::text::shown(&layer.name)), job) {
            Ok(handle) => self.stats_jobs.push(StatsJob { model_id: id, layer: index, handle }),
            Err(e) => self.toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    pub(super) fn start_heatmap(&mut self, ctx: &egui::Context, tensor: String) {
        let Some(m) = self.active_model() else { return };
        let dark = ctx.global_style().visuals.dark_mode;
        let key = (m.model.id, tensor.clone(), dark);
        if self.heatmaps.entries.contains_key(&key) {
            return;
        }
        let job = heatmap_job(m.model.store.clone(), tensor.clone(), dark);
        match self.jobs.spawn(format!("heatmap {tensor}"), job) {
            Ok(handle) => {
                self.heatmaps.entries.insert(key, HeatmapEntry::Pending(handle));
            }
            Err(e) => self.toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    pub(super) fn close_active(&mut self) {
        let Some(i) = self.active else { return };
        if i >= self.models.len() {
            return;
        }
        let closed = self.models.remove(i);
        self.heatmaps.forget_model(closed.model.id);
        self.graph_view.forget_model(closed.model.id);
        self.active = if self.models.is_empty() { None } else { Some(i.min(self.models.len() - 1)) };
    }
}
