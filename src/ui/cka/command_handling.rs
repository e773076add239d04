//! The CKA explorer's entry points for the app's commands: open a source or a study, run a
//! study, export the matrix, follow the GMN tab's training CKA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CkaExplorer, CkaSource, TrainingFollow};
use crate::jobs::{JobError, Registry};
use crate::ui::cka::data::{self as cka_data};
use crate::ui::widgets::toasts::Toasts;

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
        match crate::ui::study::run::StudyRun::start(config, out, jobs) {
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

    /// Cancels a running study (another source replaces it); what it finished stays on disk.
    pub(super) fn stop_study_run(&mut self, toasts: &mut Toasts) {
        #[cfg(feature = "burn")]
        if let Some(run) = self.study_run.take() {
            run.job.cancel();
            toasts.info(format!("Study cancelled; run it into {} again to resume", run.out.display()));
        }
        #[cfg(not(feature = "burn"))]
        let _ = toasts;
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
}
