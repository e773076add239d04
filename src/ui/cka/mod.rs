//! The CKA explorer tab: a layer-by-layer CKA heatmap of two activation sets (the built-in demo
//! pair until files are opened), estimator controls (kernel, sigma, debiased, minibatch), a
//! details side panel for the clicked cell, and PNG/CSV export. With a seed study open
//! (`gmnscope study` output, feature `burn`) it becomes the study view: a picker over every
//! run-pair matrix and a summary column with the seed-comparison, cross-family and agreement
//! charts (see [`crate::ui::study_view`]).
//!
//! Loading, computing and exporting run as jobs; [`CkaExplorer::logic`] (called from `App::logic`)
//! polls them and restarts the computation when the settings change. With a minibatch size the
//! job reports each intermediate estimate as its progress, so the heatmap fills in live.
//!
//! Two live sources (feature `burn`): [`CkaSource::Training`] shows the GMN tab's newest training
//! CKA matrix (each block at the latest checkpoint vs at initialisation; the app hands it over
//! every frame through [`CkaExplorer::follow_training`]); and "Run study…" runs a seed study in
//! the background (`study_run`), whose matrices fill the study view as they are computed before
//! the finished directory is opened like any other study.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::jobs::{JobError, JobHandle, Registry};
use crate::ui::cka_data::{self, CkaResult, CkaSettings, LayerPair};
use crate::ui::commands::{Command, CommandQueue};
use crate::ui::heatmap::{HeatmapInput, HeatmapView, value_text};
use crate::ui::toasts::Toasts;

/// True when `path` is a seed-study directory (or its results.json): `gmnscope DIR`, a dropped
/// folder and File › Open then open the study view instead of a model. Only stats the path.
pub fn is_study_path(path: &Path) -> bool {
    #[cfg(feature = "burn")]
    return crate::study::reader::study_dir_of(path).is_some();
    #[cfg(not(feature = "burn"))]
    {
        let _ = path;
        false
    }
}

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
    /// The live CKA of the GMN training run in `run_dir` (GMN tab), newest checkpoint vs
    /// initialisation, updated after every epoch.
    Training {
        run_dir: PathBuf,
    },
}

/// The training run the explorer shows, and the matrix version on show.
struct TrainingFollow {
    run_dir: PathBuf,
    version: u64,
    title: Option<String>,
}

#[derive(Default)]
pub struct CkaExplorer {
    /// What the controls show; compared with `computed_for` to decide when to recompute.
    pub settings: CkaSettings,
    computed_for: Option<CkaSettings>,
    pair: Option<Arc<LayerPair>>,
    load_job: Option<JobHandle<LayerPair>>,
    results_job: Option<JobHandle<CkaResult>>,
    /// Reports each minibatch estimate as progress.
    compute_job: Option<JobHandle<CkaResult, CkaResult>>,
    result: Option<CkaResult>,
    version: u64,
    pub heatmap: HeatmapView,
    selected: Option<(usize, usize)>,
    hovered: Option<(usize, usize)>,
    started: bool,
    minibatch_text: String,
    export_stem: String,
    /// PNG/CSV writes in flight (each reports the path it wrote).
    export_jobs: Vec<JobHandle<PathBuf>>,
    /// The "Open study results" window's path field, while it is shown.
    study_form: Option<String>,
    /// A native folder dialog for that window.
    browse_job: Option<JobHandle<Option<PathBuf>>>,
    #[cfg(feature = "burn")]
    study_job: Option<JobHandle<crate::study::reader::StudyData>>,
    #[cfg(feature = "burn")]
    study: Option<crate::ui::study_view::StudyView>,
    /// The last source opened (`None`: a study, or nothing yet).
    source: Option<CkaSource>,
    /// Set while the training source is shown.
    training: Option<TrainingFollow>,
    /// The run directory whose live matrices were last switched to automatically.
    auto_followed: Option<PathBuf>,
    /// The "Run study…" window, while it is shown.
    #[cfg(feature = "burn")]
    run_form: Option<crate::ui::study_run::RunStudyForm>,
    /// A study running in the background; its partial results are in `study`.
    #[cfg(feature = "burn")]
    study_run: Option<crate::ui::study_run::StudyRun>,
}

impl CkaExplorer {
    /// Starts the demo the first time the tab is shown.
    pub fn ensure_started(&mut self, jobs: &Registry, toasts: &mut Toasts) {
        if !self.started {
            self.started = true;
            self.open(CkaSource::Demo, jobs, toasts);
        }
    }

    pub fn open(&mut self, source: CkaSource, jobs: &Registry, toasts: &mut Toasts) {
        self.started = true;
        self.cancel_all();
        self.stop_study_run(toasts);
        self.selected = None;
        self.source = Some(source.clone());
        self.training = None;
        let spawned = match source {
            CkaSource::Demo => jobs
                .spawn("CKA demo activations", |_| Ok(cka_data::demo_pair(cka_data::DEMO_EXAMPLES)))
                .map(|j| self.load_job = Some(j)),
            CkaSource::Files { a, b } => jobs
                .spawn("CKA load activations", move |r| {
                    r.stage("reading activation files", None);
                    cka_data::load_pair(&a, &b).map_err(JobError::Failed)
                })
                .map(|j| self.load_job = Some(j)),
            CkaSource::Results(path) => jobs
                .spawn("CKA open results", move |_| cka_data::load_results_json(&path).map_err(JobError::Failed))
                .map(|j| self.results_job = Some(j)),
            CkaSource::Training { run_dir } => {
                // No job: the GMN tab computes, `follow_training` hands the matrices over.
                self.clear_study();
                self.pair = None;
                self.computed_for = None;
                self.result = None;
                self.training = Some(TrainingFollow { run_dir, version: 0, title: None });
                Ok(())
            }
        };
        if let Err(e) = spawned {
            toasts.error(format!("cannot start a worker thread: {e}"));
        }
    }

    /// Opens a seed study (its directory or its `results.json`) in a background job.
    pub fn open_study(&mut self, path: PathBuf, jobs: &Registry, toasts: &mut Toasts) {
        self.started = true;
        self.study_form = None;
        self.stop_study_run(toasts);
        self.source = None;
        self.training = None;
        #[cfg(feature = "burn")]
        {
            self.cancel_all();
            let job = jobs.spawn("open study", move |r| {
                r.stage(format!("reading {}", path.display()), None);
                Ok(crate::study::reader::open(&path, r.cancel_token())?)
            });
            match job {
                Ok(job) => self.study_job = Some(job),
                Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
            }
        }
        #[cfg(not(feature = "burn"))]
        {
            let _ = (path, jobs);
            toasts.error("This build has no seed-study support (feature `burn`)");
        }
    }

    /// Shows the "Open study results" window.
    pub fn show_open_study(&mut self) {
        self.study_form.get_or_insert_with(String::new);
    }

    /// Shows the "Run study…" window.
    pub fn show_run_study(&mut self, toasts: &mut Toasts) {
        #[cfg(feature = "burn")]
        {
            let _ = toasts;
            self.run_form.get_or_insert_with(Default::default);
        }
        #[cfg(not(feature = "burn"))]
        toasts.error("This build has no seed-study support (feature `burn`)");
    }

    /// Runs a seed study (`config`: a TOML file, `None`: the built-in demo) into `out` in the
    /// background; the study view shows its matrices as they arrive.
    #[cfg(feature = "burn")]
    pub fn run_study(&mut self, config: Option<PathBuf>, out: PathBuf, jobs: &Registry, toasts: &mut Toasts) {
        self.started = true;
        self.run_form = None;
        self.cancel_all();
        self.stop_study_run(toasts);
        match crate::ui::study_run::StudyRun::start(config, out, jobs) {
            Ok(run) => {
                self.source = None;
                self.training = None;
                self.clear_study();
                self.pair = None;
                self.computed_for = None;
                self.result = None;
                self.selected = None;
                self.study_run = Some(run);
            }
            Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    /// The running study, if any (tests read it).
    #[cfg(feature = "burn")]
    pub fn study_run(&self) -> Option<&crate::ui::study_run::StudyRun> {
        self.study_run.as_ref()
    }

    /// Cancels a running study (another source replaces it); what it finished stays on disk.
    fn stop_study_run(&mut self, toasts: &mut Toasts) {
        #[cfg(feature = "burn")]
        if let Some(run) = self.study_run.take() {
            run.job.cancel();
            toasts.info(format!("Study cancelled; run it into {} again to resume", run.out.display()));
        }
        #[cfg(not(feature = "burn"))]
        let _ = toasts;
    }

    /// The title of the live training matrix on show ("GMN training: epoch 3 vs initialisation").
    pub fn training_title(&self) -> Option<&str> {
        self.training.as_ref().and_then(|t| t.title.as_deref())
    }

    /// Takes the GMN tab's newest training CKA (call once per frame). Shown when the training
    /// source is open on that run; a new run's first matrix is switched to automatically when the
    /// explorer shows nothing of the user's (the built-in demo or nothing yet).
    pub fn follow_training(&mut self, latest: Option<&Arc<cka_data::TrainingCka>>) {
        let Some(latest) = latest else { return };
        let idle = matches!(self.source, None | Some(CkaSource::Demo)) && !self.has_study() && !self.study_running();
        if self.training.is_none() && idle && self.auto_followed.as_ref() != Some(&latest.run_dir) {
            self.auto_followed = Some(latest.run_dir.clone());
            self.cancel_all();
            self.started = true;
            self.pair = None;
            self.computed_for = None;
            self.result = None;
            self.selected = None;
            self.source = Some(CkaSource::Training { run_dir: latest.run_dir.clone() });
            self.training = Some(TrainingFollow { run_dir: latest.run_dir.clone(), version: 0, title: None });
        }
        let Some(t) = &mut self.training else { return };
        if t.run_dir != latest.run_dir || t.version == latest.version {
            return;
        }
        t.version = latest.version;
        t.title = Some(latest.title.clone());
        self.set_result(latest.result.clone());
    }

    fn study_running(&self) -> bool {
        #[cfg(feature = "burn")]
        return self.study_run.is_some();
        #[cfg(not(feature = "burn"))]
        false
    }

    /// The study on show, if any (tests read it).
    #[cfg(feature = "burn")]
    pub fn study(&self) -> Option<&crate::ui::study_view::StudyView> {
        self.study.as_ref()
    }

    /// True while a study is shown (the scripted-run screenshot counts it as a ready workspace).
    pub fn has_study(&self) -> bool {
        #[cfg(feature = "burn")]
        return self.study.is_some();
        #[cfg(not(feature = "burn"))]
        false
    }

    fn study_loading(&self) -> bool {
        #[cfg(feature = "burn")]
        return self.study_job.is_some();
        #[cfg(not(feature = "burn"))]
        false
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
        #[cfg(feature = "burn")]
        {
            self.study_job.iter().for_each(JobHandle::cancel);
            self.study_job = None;
        }
    }

    /// Leaves the study view (another source was opened).
    fn clear_study(&mut self) {
        #[cfg(feature = "burn")]
        {
            self.study = None;
        }
    }

    pub fn is_busy(&self) -> bool {
        self.load_job.is_some()
            || self.results_job.is_some()
            || self.compute_job.is_some()
            || self.needs_compute()
            || !self.export_jobs.is_empty()
            || self.browse_job.is_some()
            || self.study_loading()
            || self.study_running()
    }

    /// The current matrix, if any (tests read it).
    pub fn result(&self) -> Option<&CkaResult> {
        self.result.as_ref()
    }

    fn needs_compute(&self) -> bool {
        self.pair.is_some() && self.computed_for.as_ref() != Some(&self.settings)
    }

    /// Polls jobs, takes live minibatch estimates, and (re)starts the computation when needed.
    pub fn logic(&mut self, jobs: &Registry, toasts: &mut Toasts) {
        let report = |e: JobError, toasts: &mut Toasts| {
            if !e.is_cancelled() {
                toasts.error(e.to_string());
            }
        };
        if let Some(job) = &mut self.load_job
            && let Some(done) = job.poll()
        {
            self.load_job = None;
            match done {
                Ok(pair) => {
                    self.clear_study();
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
                    self.clear_study();
                    self.pair = None;
                    self.computed_for = None;
                    self.set_result(result);
                }
                Err(e) => report(e, toasts),
            }
        }
        if let Some(job) = &mut self.compute_job {
            let mut live = None;
            let done = job.poll_with(|estimate| live = Some(estimate));
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
            self.start_compute(jobs, toasts);
        }
        self.export_jobs.retain_mut(|job| match job.poll() {
            None => true,
            Some(Ok(path)) => {
                toasts.info(format!("Wrote {}", path.display()));
                false
            }
            Some(Err(e)) => {
                report(e, toasts);
                false
            }
        });
        if let Some(job) = &mut self.browse_job
            && let Some(done) = job.poll()
        {
            self.browse_job = None;
            match done {
                Ok(Some(dir)) => self.open_study(dir, jobs, toasts),
                Ok(None) => toasts.info("No folder chosen. Type the study directory's path instead."),
                Err(e) => toasts.error(format!("folder dialog: {e}")),
            }
        }
        #[cfg(feature = "burn")]
        self.poll_study(toasts);
        #[cfg(feature = "burn")]
        self.poll_study_run(jobs, toasts);
    }

    /// Shows a running study's newest partial results; opens the directory when it finishes.
    #[cfg(feature = "burn")]
    fn poll_study_run(&mut self, jobs: &Registry, toasts: &mut Toasts) {
        let Some(run) = &mut self.study_run else { return };
        let out = run.out.clone();
        let (update, done) = run.poll();
        if let Some(data) = update {
            match &mut self.study {
                Some(view) => view.update(data),
                None => self.study = Some(crate::ui::study_view::StudyView::new(data)),
            }
            if let Some(result) = self.study.as_ref().and_then(|v| v.shown()) {
                self.set_result(result);
            }
        }
        let Some(done) = done else { return };
        self.study_run = None;
        match done {
            // Read back exactly as if the user opened it (the summaries and figures are final now).
            Ok(dir) => self.open_study(dir, jobs, toasts),
            Err(JobError::Cancelled) => {
                toasts.info(format!("Study cancelled; run it into {} again to resume", out.display()))
            }
            Err(e) => toasts.error(e.to_string()),
        }
    }

    #[cfg(feature = "burn")]
    fn poll_study(&mut self, toasts: &mut Toasts) {
        let Some(job) = &mut self.study_job else { return };
        let Some(done) = job.poll() else { return };
        self.study_job = None;
        match done {
            Ok(data) => {
                // Unreadable matrix files: the study still opens; say which files are missing.
                const SHOWN: usize = 3;
                for p in data.problems.iter().take(SHOWN) {
                    toasts.error(p.clone());
                }
                if data.problems.len() > SHOWN {
                    toasts.error(format!("…and {} more unreadable matrix files", data.problems.len() - SHOWN));
                }
                let view = crate::ui::study_view::StudyView::new(data);
                self.pair = None;
                self.computed_for = None;
                self.result = None;
                self.selected = None;
                if let Some(result) = view.shown() {
                    self.set_result(result);
                }
                self.study = Some(view);
            }
            Err(JobError::Cancelled) => {}
            Err(e) => toasts.error(e.to_string()),
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

    fn start_compute(&mut self, jobs: &Registry, toasts: &mut Toasts) {
        let Some(pair) = self.pair.clone() else { return };
        let settings = self.settings.clone();
        self.computed_for = Some(settings.clone());
        if let Err(e) = settings.options(pair.a.n()) {
            toasts.error(e);
            return;
        }
        match jobs.spawn("CKA matrix", move |r| cka_data::compute(&pair, &settings, r)) {
            Ok(job) => self.compute_job = Some(job),
            Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    /// Writes the shown matrix as PNG or CSV in a background job (rendering the labelled PNG takes
    /// a while for big matrices); a toast reports the result.
    pub fn export(&mut self, path: &Path, png: bool, jobs: &Registry, toasts: &mut Toasts) {
        let Some(result) = self.result.clone() else {
            toasts.error("No CKA matrix to export yet");
            return;
        };
        let path = path.to_path_buf();
        let what = if png { "PNG" } else { "CSV" };
        let job = jobs.spawn(format!("export CKA {what}"), move |r| {
            r.stage(format!("writing {}", path.display()), None);
            if png { cka_data::write_png(&path, &result) } else { cka_data::write_csv(&path, &result) }
                .map_err(JobError::Failed)?;
            Ok(path)
        });
        match job {
            Ok(job) => self.export_jobs.push(job),
            Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue, jobs: &Registry) {
        self.open_study_ui(ui.ctx(), commands, jobs);
        #[cfg(feature = "burn")]
        if let Some(form) = &mut self.run_form
            && !form.ui(ui.ctx(), commands, jobs)
        {
            self.run_form = None;
        }
        #[cfg(feature = "burn")]
        if self.study.is_some() {
            self.study_ui(ui, commands);
            return;
        }
        #[cfg(feature = "burn")]
        if self.study_run.is_some() {
            egui::Panel::top("cka_study_run").show(ui, |ui| self.study_run_ui(ui, commands));
            egui::CentralPanel::default().show(ui, |ui| {
                ui.centered_and_justified(|ui| {
                    ui.label(egui::RichText::new("The first matrices appear once two runs are trained.").weak());
                });
            });
            return;
        }
        egui::Panel::top("cka_controls").show(ui, |ui| self.controls_ui(ui, commands));
        egui::Panel::right("cka_details")
            .resizable(true)
            .default_size(300.0)
            .size_range(220.0..=520.0)
            .show(ui, |ui| self.details_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| self.heatmap_ui(ui));
    }

    /// The study view: picker and export on top, the summary column on the right, the heatmap of
    /// the picked matrix in the middle with the clicked cell's details under it.
    #[cfg(feature = "burn")]
    fn study_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        egui::Panel::top("cka_study_controls").show(ui, |ui| {
            if self.study_run.is_some() {
                self.study_run_ui(ui, commands);
                ui.separator();
            }
            ui.add_space(4.0);
            if let Some(view) = &self.study {
                ui.label(egui::RichText::new(view.caption()).weak()).on_hover_text(view.data.dir.display().to_string());
            }
            ui.horizontal_wrapped(|ui| {
                let changed = self.study.as_mut().is_some_and(|v| v.picker_ui(ui));
                if changed && let Some(result) = self.study.as_ref().and_then(|v| v.shown()) {
                    self.set_result(result);
                }
                ui.separator();
                self.source_buttons(ui, commands);
                ui.separator();
                self.export_ui(ui, commands);
            });
            ui.add_space(2.0);
        });
        egui::Panel::right("cka_study_summary").resizable(true).default_size(470.0).size_range(320.0..=900.0).show(
            ui,
            |ui| {
                if let Some(view) = &self.study {
                    view.summary_ui(ui);
                }
            },
        );
        egui::Panel::bottom("cka_study_cell").show(ui, |ui| self.selected_cell_line(ui));
        egui::CentralPanel::default().show(ui, |ui| self.heatmap_ui(ui));
    }

    /// A running study: where it writes, its stage and progress, and Cancel.
    #[cfg(feature = "burn")]
    fn study_run_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        let Some(run) = &self.study_run else { return };
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.strong("Running study");
            ui.label(egui::RichText::new(run.out.display().to_string()).weak());
            let cancelling = run.job.is_cancelling();
            if ui.add_enabled(!cancelling, egui::Button::new("Cancel study")).clicked() {
                commands.send(Command::CancelJob(run.job.id));
            }
            if cancelling {
                ui.label("cancelling…");
            }
        });
        let matrices = run.matrix_count();
        let stage = run.job.stage();
        let text = format!("{} · {matrices} matrices so far", stage.text);
        ui.add(egui::ProgressBar::new(stage.fraction.unwrap_or(0.0)).text(text));
        ui.add_space(2.0);
    }

    /// One line with the clicked cell's value and what it was computed from.
    #[cfg(feature = "burn")]
    fn selected_cell_line(&self, ui: &mut egui::Ui) {
        ui.add_space(3.0);
        let text = match (&self.result, self.selected) {
            (Some(r), Some((i, j))) => format!(
                "Selected: {} ({}) × {} ({}): {} · n = {} · {} kernel · {}",
                r.rows.get(i).map_or("?", String::as_str),
                r.row_title,
                r.cols.get(j).map_or("?", String::as_str),
                r.col_title,
                r.matrix.get(i, j).map_or("undefined".into(), |v| format!("{v:.6}")),
                r.n,
                r.kernel,
                r.estimator
            ),
            _ => "Click a cell for its details.".to_string(),
        };
        ui.label(egui::RichText::new(text).small());
        ui.add_space(1.0);
    }

    /// "Open study results" window: a path (directory or results.json) and a folder dialog.
    fn open_study_ui(&mut self, ctx: &egui::Context, commands: &mut CommandQueue, jobs: &Registry) {
        let Some(text) = &mut self.study_form else { return };
        let (mut open, mut submit, mut browse) = (true, false, false);
        egui::Window::new("Open study results")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_TOP, [0.0, 80.0])
            .show(ctx, |ui| {
                ui.label("A study directory written by `gmnscope study --out DIR` (or its results.json):");
                let edit = ui.add(egui::TextEdit::singleline(text).hint_text("/path/to/study").desired_width(420.0));
                submit |= edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                ui.add_space(6.0);
                ui.horizontal(|ui| {
                    submit |= ui.add_enabled(!text.trim().is_empty(), egui::Button::new("Open")).clicked();
                    browse |= ui.add_enabled(self.browse_job.is_none(), egui::Button::new("Browse…")).clicked();
                });
            });
        let path = text.trim().to_string();
        if submit && !path.is_empty() {
            commands.send(Command::OpenStudy(PathBuf::from(path)));
            open = false;
        }
        if browse {
            let pick = |_: &crate::jobs::Reporter<Option<PathBuf>>| {
                Ok(rfd::FileDialog::new().set_title("Open study results").pick_folder())
            };
            // Without a worker thread there is no dialog; the path field still works.
            self.browse_job = jobs.spawn("folder dialog", pick).ok();
        }
        if !open {
            self.study_form = None;
        }
    }

    /// Buttons that change what the explorer shows.
    fn source_buttons(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        if ui.button("Open activations…").clicked() {
            commands.send(Command::ShowCkaOpenDialog);
        }
        if ui.button("Open study…").on_hover_text("Results of `gmnscope study`").clicked() {
            commands.send(Command::ShowStudyOpenDialog);
        }
        if ui
            .button("Run study…")
            .on_hover_text("Run a seed study here; matrices appear as they are computed")
            .clicked()
        {
            commands.send(Command::ShowRunStudyDialog);
        }
        if ui.button("Demo").on_hover_text("Two random-feature MLPs on procedural digits").clicked() {
            commands.send(Command::OpenCkaDemo);
        }
    }

    /// Export path field and the PNG / CSV buttons.
    fn export_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        if self.export_stem.is_empty() {
            self.export_stem = cka_data::default_export_stem().display().to_string();
        }
        ui.add(egui::TextEdit::singleline(&mut self.export_stem).desired_width(140.0))
            .on_hover_text("Export path without extension");
        let has = self.result.is_some();
        if ui.add_enabled(has, egui::Button::new("Export PNG")).clicked() {
            commands.send(Command::ExportCka { path: PathBuf::from(format!("{}.png", self.export_stem)), png: true });
        }
        if ui.add_enabled(has, egui::Button::new("Export CSV")).clicked() {
            commands.send(Command::ExportCka { path: PathBuf::from(format!("{}.csv", self.export_stem)), png: false });
        }
        if !self.export_jobs.is_empty() || self.compute_job.is_some() || self.load_job.is_some() || self.study_loading()
        {
            ui.spinner();
        }
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
                    let label = ui.label("σ ×");
                    ui.add(egui::DragValue::new(&mut self.settings.sigma_frac).range(0.05..=4.0).speed(0.01))
                        .labelled_by(label.id)
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
            self.source_buttons(ui, commands);
            ui.separator();
            self.export_ui(ui, commands);
        });
        ui.add_space(2.0);
    }

    fn heatmap_ui(&mut self, ui: &mut egui::Ui) {
        if self.result.is_none() && self.training.is_some() {
            ui.centered_and_justified(|ui| {
                ui.label(egui::RichText::new("Live training CKA: waiting for the first epoch's checkpoint…").weak());
            });
            return;
        }
        let Some(result) = &self.result else {
            if self.has_study() && !self.study_loading() {
                ui.label(egui::RichText::new("This study has no readable CKA matrix for this pick.").weak());
                return;
            }
            let busy = if self.study_loading() { "Reading the study…" } else { "Computing CKA…" };
            ui.centered_and_justified(|ui| {
                ui.horizontal_centered(|ui| {
                    ui.spinner();
                    ui.label(busy);
                });
            });
            return;
        };
        ui.horizontal(|ui| {
            ui.heading(self.training_title().unwrap_or("Layer CKA"));
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
        if self.training.is_some() {
            ui.add_space(6.0);
            ui.label(
                egui::RichText::new(
                    "Live: the GMN's blocks at the newest checkpoint (rows) vs at initialisation (columns), \
                     updated after every epoch. Settings are fixed.",
                )
                .weak(),
            );
        } else if self.pair.is_none() {
            ui.add_space(6.0);
            ui.label(egui::RichText::new("Loaded from a results file: settings are fixed.").weak());
        }
    }
}
