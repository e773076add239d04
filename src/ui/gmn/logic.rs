//! The GMN tab's jobs: the demo zoo fit, reading the zoo, training; their progress and results.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::{Curves, GmnPanel, RunStatus};
use crate::inr::{FitConfig, ZooFitConfig, ZooFitEvent};
use crate::jobs::{JobError, Registry, Reporter};
use crate::train::{GraphSet, TrainProgress, TrainRequest};
use crate::ui::widgets::toasts::Toasts;

impl GmnPanel {
    /// Fits `demo_count` SIREN INRs of procedural digits into a temporary zoo directory.
    pub fn fit_demo_zoo(&mut self, jobs: &Registry, toasts: &mut Toasts, then_train: bool) {
        if self.training_busy() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("gmnscope-demo-zoo-{}-{}", std::process::id(), self.demo_count));
        let config = ZooFitConfig {
            fit: FitConfig { steps: self.demo_steps.max(1), target_psnr: None, ..FitConfig::default() },
            count: self.demo_count,
            batch: self.demo_count.clamp(1, 64),
            split_seed: 0,
        };
        let work = move |r: &Reporter<PathBuf>| {
            let images = crate::data::procedural::generate(config.count, 0);
            let device = burn::tensor::Device::flex();
            let mut on_event = |e: &ZooFitEvent| {
                if let ZooFitEvent::Step { zoo_done, count, batch_size, progress, max_steps } = e {
                    let frac = (*zoo_done as f32
                        + *batch_size as f32 * progress.step as f32 / (*max_steps).max(1) as f32)
                        / (*count).max(1) as f32;
                    r.stage(format!("fitting INRs {zoo_done}/{count}"), Some(frac.min(1.0)));
                }
            };
            crate::inr::fit_zoo(&images, &dir, &config, &device, r.cancel_token(), &mut on_event).map_err(
                |e| match e {
                    crate::inr::Error::Cancelled => JobError::Cancelled,
                    other => JobError::failed(other),
                },
            )?;
            Ok(dir)
        };
        match jobs.spawn("fit demo zoo", work) {
            Ok(job) => {
                self.fit_job = Some(job);
                self.status = RunStatus::FittingZoo;
                self.train_after_fit = then_train;
            }
            Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    /// Reads the zoo (a job); training starts when it is loaded.
    pub fn start(&mut self, jobs: &Registry, toasts: &mut Toasts) {
        if self.training_busy() {
            return;
        }
        if let Err(e) = self.form.config() {
            toasts.error(format!("training settings: {e}"));
            return;
        }
        let zoo = PathBuf::from(self.zoo_path.trim());
        if zoo.as_os_str().is_empty() {
            toasts.error("Choose a zoo directory, or fit the demo zoo first");
            return;
        }
        let work = move |r: &Reporter<Arc<GraphSet>>| {
            let set = GraphSet::from_zoo(&zoo, false, |done, total| {
                r.stage(format!("reading zoo {done}/{total}"), Some(done as f32 / total.max(1) as f32));
            })
            .map_err(JobError::failed)?;
            Ok(Arc::new(set))
        };
        match jobs.spawn("read zoo", work) {
            Ok(job) => {
                self.load_job = Some(job);
                self.status = RunStatus::LoadingZoo;
            }
            Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    /// Polls the three jobs (bounded work per frame).
    pub fn logic(&mut self, jobs: &Registry, toasts: &mut Toasts) {
        if let Some(job) = &mut self.fit_job
            && let Some(done) = job.poll()
        {
            self.fit_job = None;
            match done {
                Ok(dir) => {
                    self.zoo_path = dir.display().to_string();
                    self.status = RunStatus::Idle;
                    toasts.info(format!("Demo zoo of {} INRs ready", self.demo_count));
                    if std::mem::take(&mut self.train_after_fit) {
                        self.start(jobs, toasts);
                    }
                }
                Err(e) => self.fail(e, toasts),
            }
        }
        if let Some(job) = &mut self.load_job
            && let Some(done) = job.poll()
        {
            self.load_job = None;
            match done {
                Ok(data) => self.spawn_training(data, jobs, toasts),
                Err(e) => self.fail(e, toasts),
            }
        }
        self.drain_training(toasts);
        self.live_cka.logic(jobs);
        self.trained.logic(jobs, toasts);
    }

    pub(super) fn fail(&mut self, e: JobError, toasts: &mut Toasts) {
        if e.is_cancelled() {
            self.status = RunStatus::Cancelled;
        } else {
            let text = e.to_string();
            toasts.error(text.clone());
            self.status = RunStatus::Failed(text);
        }
    }

    pub(super) fn spawn_training(&mut self, data: Arc<GraphSet>, jobs: &Registry, toasts: &mut Toasts) {
        let config = match self.form.config() {
            Ok(c) => c,
            Err(e) => return self.fail(JobError::Failed(format!("training settings: {e}")), toasts),
        };
        let zoo = Some(PathBuf::from(self.zoo_path.trim()));
        let run_dir = PathBuf::from(self.run_dir.trim());
        let request = TrainRequest { config, data: data.clone(), run_dir: run_dir.clone(), resume: false, zoo };
        match jobs.spawn("train GMN", move |r| crate::train::run(&request, r)) {
            Ok(job) => {
                self.live_cka.follow(run_dir, data);
                self.train_job = Some(job);
                self.curves = Curves::default();
                self.done_steps = 0;
                self.total_steps = 0;
                self.message = "starting".into();
                self.started = Some(Instant::now());
                self.status = RunStatus::Training;
            }
            Err(e) => self.fail(JobError::Failed(format!("cannot start the training thread: {e}")), toasts),
        }
    }

    pub(super) fn drain_training(&mut self, toasts: &mut Toasts) {
        let Some(job) = &mut self.train_job else { return };
        let finished = job.poll_with(|progress| match progress {
            TrainProgress::Batch(b) => {
                self.done_steps = b.step;
                self.total_steps = b.total_steps;
                self.message = b.position();
                let step = b.step as f64;
                self.curves.loss.push([step, b.loss]);
                if let Some(accuracy) = b.accuracy {
                    self.curves.accuracy.push([step, accuracy]);
                }
            }
            TrainProgress::Epoch(m) => {
                if let Some(v) = m.get("val_accuracy") {
                    self.curves.val_accuracy.push([m.step as f64, v]);
                }
            }
            TrainProgress::CheckpointSaved { path, .. } => self.live_cka.on_checkpoint(path),
        });
        let Some(result) = finished else { return };
        self.train_job = None;
        match result {
            Ok(outcome) => {
                self.finished_run = Some(outcome.run_dir.clone());
                let best = outcome.best_val.map_or(String::new(), |v| format!(", best validation {v:.3}"));
                self.status = RunStatus::Finished(format!(
                    "{} steps on {}{best}; saved in {}",
                    outcome.steps,
                    outcome.device,
                    outcome.run_dir.display()
                ));
            }
            Err(JobError::Cancelled) => {
                // The checkpoint saved on cancel is not worth a matrix.
                self.live_cka.stop();
                self.status = RunStatus::Cancelled;
            }
            Err(e) => {
                self.live_cka.stop();
                self.fail(e, toasts);
            }
        }
    }
}
