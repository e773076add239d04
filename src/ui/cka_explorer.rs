//! The CKA explorer tab: a layer-by-layer CKA heatmap of two activation sets (the built-in demo
//! pair until files are opened), estimator controls (kernel, sigma, debiased, minibatch), a
//! details side panel for the clicked cell, and PNG/CSV export.
//!
//! Loading and computing run as jobs; [`CkaExplorer::logic`] (called from `App::logic`) polls them
//! and restarts the computation when the settings change. With a minibatch size the job publishes
//! each intermediate estimate, which `logic` picks up, so the heatmap fills in live.

use std::path::PathBuf;
use std::sync::Arc;

use crate::ui::cka_data::{self, CkaResult, CkaSettings, LayerPair, LiveSlot};
use crate::ui::commands::{Command, CommandQueue};
use crate::ui::heatmap::{HeatmapInput, HeatmapView, value_text};
use crate::ui::jobs::{self, CANCELLED, JobHandle, Waker};
use crate::ui::status_bar::JobSummary;
use crate::ui::toasts::Toasts;

/// Where the explorer's data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum CkaSource {
    Demo,
    Files {
        a: PathBuf,
        b: PathBuf,
    },
    /// A matrix written by `gmnscope cka --json` (no activations: settings are fixed).
    Results(PathBuf),
}

#[derive(Default)]
pub struct CkaExplorer {
    /// What the controls show; compared with `computed_for` to decide when to recompute.
    pub settings: CkaSettings,
    computed_for: Option<CkaSettings>,
    pair: Option<Arc<LayerPair>>,
    load_job: Option<JobHandle<LayerPair>>,
    results_job: Option<JobHandle<CkaResult>>,
    compute_job: Option<JobHandle<CkaResult>>,
    live: LiveSlot,
    result: Option<CkaResult>,
    version: u64,
    pub heatmap: HeatmapView,
    selected: Option<(usize, usize)>,
    hovered: Option<(usize, usize)>,
    started: bool,
    minibatch_text: String,
    export_stem: String,
}

impl CkaExplorer {
    /// Starts the demo the first time the tab is shown.
    pub fn ensure_started(&mut self, waker: &Waker, toasts: &mut Toasts) {
        if !self.started {
            self.started = true;
            self.open(CkaSource::Demo, waker, toasts);
        }
    }

    pub fn open(&mut self, source: CkaSource, waker: &Waker, toasts: &mut Toasts) {
        self.started = true;
        self.cancel_all();
        self.selected = None;
        let spawned = match source {
            CkaSource::Demo => {
                jobs::spawn("CKA demo activations", waker.clone(), |_| Ok(cka_data::demo_pair(cka_data::DEMO_EXAMPLES)))
                    .map(|j| self.load_job = Some(j))
            }
            CkaSource::Files { a, b } => jobs::spawn("CKA load activations", waker.clone(), move |r| {
                r.progress("reading activation files", None);
                cka_data::load_pair(&a, &b)
            })
            .map(|j| self.load_job = Some(j)),
            CkaSource::Results(path) => {
                jobs::spawn("CKA open results", waker.clone(), move |_| cka_data::load_results_json(&path))
                    .map(|j| self.results_job = Some(j))
            }
        };
        if let Err(e) = spawned {
            toasts.error(format!("cannot start a worker thread: {e}"));
        }
    }

    fn cancel_all(&mut self) {
        for job in [&self.compute_job].into_iter().flatten() {
            job.cancel();
        }
        self.load_job.iter().for_each(JobHandle::cancel);
        self.results_job.iter().for_each(JobHandle::cancel);
        self.compute_job = None;
        self.load_job = None;
        self.results_job = None;
    }

    pub fn is_busy(&self) -> bool {
        self.load_job.is_some() || self.results_job.is_some() || self.compute_job.is_some() || self.needs_compute()
    }

    /// The current matrix, if any (tests read it).
    pub fn result(&self) -> Option<&CkaResult> {
        self.result.as_ref()
    }

    fn needs_compute(&self) -> bool {
        self.pair.is_some() && self.computed_for.as_ref() != Some(&self.settings)
    }

    pub fn cancel(&mut self, id: jobs::JobId) {
        self.load_job.iter().filter(|j| j.id == id).for_each(JobHandle::cancel);
        self.compute_job.iter().filter(|j| j.id == id).for_each(JobHandle::cancel);
        self.results_job.iter().filter(|j| j.id == id).for_each(JobHandle::cancel);
    }

    pub fn job_summaries(&self, out: &mut Vec<JobSummary>) {
        out.extend(self.load_job.iter().map(JobSummary::of));
        out.extend(self.compute_job.iter().map(JobSummary::of));
        out.extend(self.results_job.iter().map(JobSummary::of));
    }

    /// Polls jobs, takes live minibatch estimates, and (re)starts the computation when needed.
    pub fn logic(&mut self, waker: &Waker, toasts: &mut Toasts) {
        let report = |e: String, toasts: &mut Toasts| {
            if e != CANCELLED {
                toasts.error(e);
            }
        };
        if let Some(job) = &mut self.load_job
            && let Some(done) = job.poll()
        {
            self.load_job = None;
            match done {
                Ok(pair) => {
                    self.pair = Some(Arc::new(pair));
                    self.computed_for = None;
                    self.result = None;
                }
                Err(e) => report(e, toasts),
            }
        }
        if let Some(job) = &mut self.results_job
            && let Some(done) = job.poll()
        {
            self.results_job = None;
            match done {
                Ok(result) => {
                    self.pair = None;
                    self.computed_for = None;
                    self.set_result(result);
                }
                Err(e) => report(e, toasts),
            }
        }
        if let Some(job) = &mut self.compute_job {
            let done = job.poll();
            let live = self.live.lock().ok().and_then(|mut s| s.take());
            if let Some(result) = live {
                self.set_result(result);
            }
            if let Some(done) = done {
                self.compute_job = None;
                match done {
                    Ok(result) => self.set_result(result),
                    Err(e) => report(e, toasts),
                }
            }
        }
        if self.needs_compute() && self.compute_job.is_none() {
            self.start_compute(waker, toasts);
        }
    }

    fn set_result(&mut self, result: CkaResult) {
        let same_shape = self.result.as_ref().is_some_and(|r| r.rows == result.rows && r.cols == result.cols);
        if !same_shape {
            self.selected = None;
        }
        self.result = Some(result);
        self.version += 1;
    }

    fn start_compute(&mut self, waker: &Waker, toasts: &mut Toasts) {
        let Some(pair) = self.pair.clone() else { return };
        let settings = self.settings.clone();
        self.computed_for = Some(settings.clone());
        if let Err(e) = settings.options(pair.a.n()) {
            toasts.error(e);
            return;
        }
        self.live = LiveSlot::default();
        let live = self.live.clone();
        match jobs::spawn("CKA matrix", waker.clone(), move |r| cka_data::compute(&pair, &settings, &live, r)) {
            Ok(job) => self.compute_job = Some(job),
            Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    /// Writes the current matrix as PNG or CSV (small files: done on the spot, on the UI thread's
    /// command pass, like the CLI would).
    pub fn export(&self, path: &std::path::Path, png: bool, toasts: &mut Toasts) {
        let Some(result) = &self.result else {
            toasts.error("No CKA matrix to export yet");
            return;
        };
        let written = if png { cka_data::write_png(path, result) } else { cka_data::write_csv(path, result) };
        match written {
            Ok(()) => toasts.info(format!("Wrote {}", path.display())),
            Err(e) => toasts.error(e),
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        egui::Panel::top("cka_controls").show(ui, |ui| self.controls_ui(ui, commands));
        egui::Panel::right("cka_details")
            .resizable(true)
            .default_size(300.0)
            .size_range(220.0..=520.0)
            .show(ui, |ui| self.details_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| self.heatmap_ui(ui));
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        let editable = self.pair.is_some();
        ui.add_space(4.0);
        ui.horizontal_wrapped(|ui| {
            ui.add_enabled_ui(editable, |ui| {
                ui.label("Kernel");
                ui.selectable_value(&mut self.settings.rbf, false, "Linear");
                ui.selectable_value(&mut self.settings.rbf, true, "RBF");
                if self.settings.rbf {
                    ui.label("σ ×");
                    ui.add(egui::DragValue::new(&mut self.settings.sigma_frac).range(0.05..=4.0).speed(0.01))
                        .on_hover_text("RBF bandwidth as a fraction of the median pairwise distance");
                }
                ui.separator();
                ui.add_enabled(
                    self.settings.minibatch.is_none(),
                    egui::Checkbox::new(&mut self.settings.debiased, "Debiased"),
                )
                .on_hover_text("Unbiased HSIC estimator (minibatch CKA always uses it)");
                ui.separator();
                let mut on = self.settings.minibatch.is_some();
                if ui.checkbox(&mut on, "Minibatch").changed() {
                    self.settings.minibatch = on.then(|| self.minibatch_text.parse().unwrap_or(64));
                    self.minibatch_text = self.settings.minibatch.map(|m| m.to_string()).unwrap_or_default();
                }
                if let Some(m) = &mut self.settings.minibatch {
                    ui.add(egui::DragValue::new(m).range(4..=100_000).suffix(" examples"));
                }
            });
            ui.separator();
            if ui.button("Open activations…").clicked() {
                commands.send(Command::ShowCkaOpenDialog);
            }
            if ui.button("Demo").on_hover_text("Two random-feature MLPs on procedural digits").clicked() {
                commands.send(Command::OpenCkaDemo);
            }
            ui.separator();
            if self.export_stem.is_empty() {
                self.export_stem = cka_data::default_export_stem().display().to_string();
            }
            ui.add(egui::TextEdit::singleline(&mut self.export_stem).desired_width(140.0))
                .on_hover_text("Export path without extension");
            let has = self.result.is_some();
            if ui.add_enabled(has, egui::Button::new("Export PNG")).clicked() {
                commands
                    .send(Command::ExportCka { path: PathBuf::from(format!("{}.png", self.export_stem)), png: true });
            }
            if ui.add_enabled(has, egui::Button::new("Export CSV")).clicked() {
                commands
                    .send(Command::ExportCka { path: PathBuf::from(format!("{}.csv", self.export_stem)), png: false });
            }
            if self.compute_job.is_some() || self.load_job.is_some() {
                ui.spinner();
            }
        });
        ui.add_space(2.0);
    }

    fn heatmap_ui(&mut self, ui: &mut egui::Ui) {
        let Some(result) = &self.result else {
            ui.centered_and_justified(|ui| {
                ui.horizontal_centered(|ui| {
                    ui.spinner();
                    ui.label("Computing CKA…");
                });
            });
            return;
        };
        ui.horizontal(|ui| {
            ui.heading("Layer CKA");
            let mut caption = format!("{} kernel · {} · n = {}", result.kernel, result.estimator, result.n);
            if let Some((done, total)) = result.batches {
                caption.push_str(&format!(" · batch {done}/{total}"));
            }
            ui.label(egui::RichText::new(caption).weak());
        });
        // A one-line readout of the hovered cell (the tooltip says the same at the pointer).
        let readout = match self.hovered {
            Some((r, c)) => format!(
                "{} × {}: {}",
                result.rows.get(r).map_or("", String::as_str),
                result.cols.get(c).map_or("", String::as_str),
                value_text(result.matrix.get(r, c))
            ),
            None => "Hover a cell to read its value; click to select it.".into(),
        };
        ui.label(egui::RichText::new(readout).monospace());
        ui.add_space(4.0);
        let input = HeatmapInput {
            matrix: &result.matrix,
            rows: &result.rows,
            cols: &result.cols,
            row_title: &result.row_title,
            col_title: &result.col_title,
            range: cka_data::colour_range(&result.matrix),
            version: self.version,
            selected: self.selected,
        };
        let out = self.heatmap.ui(ui, &input);
        self.hovered = out.hovered;
        if out.clicked.is_some() {
            self.selected = out.clicked;
        }
    }

    fn details_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(6.0);
        ui.heading("Details");
        ui.add_space(4.0);
        let Some(result) = &self.result else {
            ui.label(egui::RichText::new("No matrix yet").weak());
            return;
        };
        let grid = |ui: &mut egui::Ui, rows: Vec<(&str, String)>| {
            egui::Grid::new(ui.next_auto_id()).num_columns(2).spacing([12.0, 4.0]).striped(true).show(ui, |ui| {
                for (k, v) in rows {
                    ui.label(egui::RichText::new(k).weak());
                    ui.label(v);
                    ui.end_row();
                }
            });
        };
        match self.selected {
            Some((r, c)) => {
                ui.label(egui::RichText::new("Selected cell").strong());
                grid(
                    ui,
                    vec![
                        ("row (A)", result.rows.get(r).cloned().unwrap_or_default()),
                        ("column (B)", result.cols.get(c).cloned().unwrap_or_default()),
                        ("value", result.matrix.get(r, c).map_or("undefined".into(), |v| format!("{v:.6}"))),
                        ("n", result.n.to_string()),
                        ("kernel", result.kernel.clone()),
                        ("estimator", result.estimator.clone()),
                    ],
                );
            }
            None => {
                ui.label(egui::RichText::new("Click a cell for its details.").weak());
            }
        }
        ui.add_space(10.0);
        ui.label(egui::RichText::new("Matrix").strong());
        let range = result.matrix.value_range().map_or("—".into(), |(lo, hi)| format!("{lo:.3} … {hi:.3}"));
        grid(
            ui,
            vec![
                ("A (rows)", result.row_title.clone()),
                ("B (columns)", result.col_title.clone()),
                ("size", format!("{} × {}", result.matrix.rows(), result.matrix.cols())),
                ("values", range),
                ("undefined", result.matrix.undefined_count().to_string()),
            ],
        );
        if self.pair.is_none() {
            ui.add_space(6.0);
            ui.label(egui::RichText::new("Loaded from a results file: settings are fixed.").weak());
        }
    }
}
