//! The GMN tab: pick a zoo directory (or fit a small demo zoo of INRs on the procedural digits),
//! set the model and training settings, train in the background with `train::spawn`, and watch
//! live loss/accuracy curves, a progress bar and an ETA; cancel at any time.
//!
//! Three jobs in sequence, all polled in [`GmnPanel::logic`]: the optional demo fit
//! (`inr::fit_zoo`), reading the zoo into a `GraphSet`, then the training job (`train::run`),
//! whose typed progress (`TrainProgress`: a batch, an epoch's metrics, a checkpoint) is drained
//! here a bounded number of events at a time.
//!
//! Each `CheckpointSaved` event (one per epoch) also feeds [`LiveTrainingCka`] (`live_cka`,
//! "Live CKA", on by default): how far each GMN block has moved since initialisation, shown in
//! the CKA tab.
//!
//! The right-hand side is [`TrainedGmn`] (`trained`): load a trained run (or the one just
//! trained, "Use this GMN"), run it on the open model, and feed the graph view's overlay.
//!
//! Split as the app is: this file holds the state, `logic.rs` the jobs (starting them, taking
//! their progress and results), `ui.rs` the form, curves and progress bar.

pub mod live_cka;
mod logic;
pub mod startup;
pub mod trained;
mod ui;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::jobs::JobHandle;
use crate::train::{DeviceChoice, GraphSet, TrainConfig, TrainOutcome, TrainProgress};
use crate::ui::gmn::live_cka::LiveTrainingCka;
use crate::ui::gmn::trained::TrainedGmn;

/// What the form edits; [`TrainForm::config`] turns it into a validated [`TrainConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainForm {
    pub hidden: usize,
    pub layers: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    pub device: DeviceChoice,
}

impl Default for TrainForm {
    fn default() -> Self {
        let demo = TrainConfig::demo();
        Self {
            hidden: demo.hidden,
            layers: demo.layers,
            epochs: demo.epochs,
            batch_size: demo.batch_size,
            lr: demo.lr,
            seed: demo.seed,
            device: demo.device,
        }
    }
}

impl TrainForm {
    pub fn config(&self) -> Result<TrainConfig, String> {
        let config = TrainConfig {
            hidden: self.hidden,
            layers: self.layers,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            device: self.device,
            ..TrainConfig::demo()
        };
        config.validate()?;
        Ok(config)
    }
}

/// Where the panel's run stands.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    Idle,
    FittingZoo,
    LoadingZoo,
    Training,
    Finished(String),
    Cancelled,
    Failed(String),
}

/// Live curves: (step, value) points, and per-epoch validation accuracy.
#[derive(Default)]
pub struct Curves {
    pub loss: Vec<[f64; 2]>,
    pub accuracy: Vec<[f64; 2]>,
    pub val_accuracy: Vec<[f64; 2]>,
}

pub struct GmnPanel {
    pub zoo_path: String,
    pub run_dir: String,
    pub form: TrainForm,
    /// Demo zoo: how many INRs and optimisation steps each.
    pub demo_count: usize,
    pub demo_steps: usize,
    fit_job: Option<JobHandle<PathBuf>>,
    load_job: Option<JobHandle<Arc<GraphSet>>>,
    train_job: Option<JobHandle<TrainOutcome, TrainProgress>>,
    pub curves: Curves,
    done_steps: u64,
    total_steps: u64,
    message: String,
    started: Option<Instant>,
    pub status: RunStatus,
    /// Start training as soon as the demo zoo is fitted.
    train_after_fit: bool,
    /// The run directory of the last training that finished (offered as "Use this GMN").
    finished_run: Option<PathBuf>,
    /// Load / run a trained GMN and its activation overlay.
    pub trained: TrainedGmn,
    /// Block-by-block CKA against initialisation after every checkpoint of the training run.
    pub live_cka: LiveTrainingCka,
}

impl Default for GmnPanel {
    fn default() -> Self {
        Self {
            zoo_path: String::new(),
            run_dir: std::env::temp_dir().join(format!("gmnscope-run-{}", std::process::id())).display().to_string(),
            form: TrainForm::default(),
            demo_count: 64,
            demo_steps: 60,
            fit_job: None,
            load_job: None,
            train_job: None,
            curves: Curves::default(),
            done_steps: 0,
            total_steps: 0,
            message: String::new(),
            started: None,
            status: RunStatus::Idle,
            train_after_fit: false,
            finished_run: None,
            trained: TrainedGmn::default(),
            live_cka: LiveTrainingCka::default(),
        }
    }
}

impl GmnPanel {
    /// True while any of the tab's jobs runs (training or the trained GMN's).
    pub fn is_busy(&self) -> bool {
        self.training_busy() || self.trained.is_busy() || self.live_cka.is_busy()
    }

    /// True while the demo fit, the zoo read or the training runs (the form is locked).
    pub fn training_busy(&self) -> bool {
        self.fit_job.is_some() || self.load_job.is_some() || self.train_job.is_some()
    }

    pub fn cancel(&mut self) {
        self.fit_job.iter().for_each(JobHandle::cancel);
        self.load_job.iter().for_each(JobHandle::cancel);
        self.train_job.iter().for_each(JobHandle::cancel);
        self.live_cka.stop();
    }

    fn eta(&self) -> Option<Duration> {
        let started = self.started?;
        if self.done_steps == 0 || self.total_steps <= self.done_steps {
            return None;
        }
        let per_step = started.elapsed().as_secs_f64() / self.done_steps as f64;
        Some(Duration::from_secs_f64(per_step * (self.total_steps - self.done_steps) as f64))
    }
}
