//! The CKA explorer's per-frame logic: takes its jobs' results (and the minibatch job's partial
//! matrices), and restarts the computation when the settings change.

use std::sync::Arc;

use super::CkaExplorer;
use crate::jobs::{JobError, Registry};
use crate::ui::cka::data::{self as cka_data};
use crate::ui::widgets::toasts::Toasts;

impl CkaExplorer {
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
    pub(super) fn poll_study_run(&mut self, jobs: &Registry, toasts: &mut Toasts) {
        let Some(run) = &mut self.study_run else { return };
        let out = run.out.clone();
        let (update, done) = run.poll();
        if let Some(data) = update {
            match &mut self.study {
                Some(view) => view.update(data),
                None => self.study = Some(crate::ui::study::view::StudyView::new(data)),
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
    pub(super) fn poll_study(&mut self, toasts: &mut Toasts) {
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
                let view = crate::ui::study::view::StudyView::new(data);
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

    pub(super) fn start_compute(&mut self, jobs: &Registry, toasts: &mut Toasts) {
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
}
