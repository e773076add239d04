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
//! The right-hand side is [`TrainedGmn`] (`gmn_run`): load a trained run (or the one just
//! trained, "Use this GMN"), run it on the open model, and feed the graph view's overlay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::inr::{FitConfig, ZooFitConfig, ZooFitEvent};
use crate::jobs::{JobError, JobHandle, Registry, Reporter};
use crate::train::{DeviceChoice, GraphSet, TrainConfig, TrainOutcome, TrainProgress, TrainRequest};
use crate::ui::commands::{Command, CommandQueue};
use crate::ui::gmn_run::TrainedGmn;
use crate::ui::live_cka::LiveTrainingCka;
use crate::ui::toasts::Toasts;

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
        Self { hidden: 32, layers: 3, epochs: 10, batch_size: 16, lr: 3e-3, seed: 0, device: DeviceChoice::Cpu }
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
            warmup_steps: 0,
            log_every: 0,
            ..TrainConfig::default()
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

    pub fn cancel(&mut self) {
        self.fit_job.iter().for_each(JobHandle::cancel);
        self.load_job.iter().for_each(JobHandle::cancel);
        self.train_job.iter().for_each(JobHandle::cancel);
        self.live_cka.stop();
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

    fn fail(&mut self, e: JobError, toasts: &mut Toasts) {
        if e.is_cancelled() {
            self.status = RunStatus::Cancelled;
        } else {
            let text = e.to_string();
            toasts.error(text.clone());
            self.status = RunStatus::Failed(text);
        }
    }

    fn spawn_training(&mut self, data: Arc<GraphSet>, jobs: &Registry, toasts: &mut Toasts) {
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

    fn drain_training(&mut self, toasts: &mut Toasts) {
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

    fn eta(&self) -> Option<Duration> {
        let started = self.started?;
        if self.done_steps == 0 || self.total_steps <= self.done_steps {
            return None;
        }
        let per_step = started.elapsed().as_secs_f64() / self.done_steps as f64;
        Some(Duration::from_secs_f64(per_step * (self.total_steps - self.done_steps) as f64))
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        egui::Panel::left("gmn_settings")
            .resizable(true)
            .default_size(320.0)
            .size_range(260.0..=480.0)
            .show(ui, |ui| self.settings_ui(ui, commands));
        egui::Panel::right("gmn_trained")
            .resizable(true)
            .default_size(330.0)
            .size_range(260.0..=520.0)
            .show(ui, |ui| egui::ScrollArea::vertical().show(ui, |ui| self.trained.ui(ui, commands)));
        egui::CentralPanel::default().show(ui, |ui| self.run_ui(ui, commands));
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        let busy = self.training_busy();
        ui.add_space(6.0);
        ui.heading("Zoo");
        ui.add_enabled_ui(!busy, |ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.zoo_path).hint_text("/path/to/zoo").desired_width(f32::INFINITY),
            );
            ui.horizontal(|ui| {
                let label = ui.label("Demo:");
                ui.add(egui::DragValue::new(&mut self.demo_count).range(8..=2000).suffix(" INRs"))
                    .labelled_by(label.id);
                ui.add(egui::DragValue::new(&mut self.demo_steps).range(1..=2000).suffix(" steps"));
            });
            if ui.button("Fit a small demo zoo").on_hover_text("SIREN INRs of procedural digits").clicked() {
                commands.send(Command::FitDemoZoo);
            }
        });
        ui.add_space(10.0);
        ui.heading("Model and training");
        ui.add_enabled_ui(!busy, |ui| {
            egui::Grid::new("gmn_form").num_columns(2).spacing([12.0, 6.0]).show(ui, |ui| {
                let f = &mut self.form;
                let label = ui.label("Hidden width");
                ui.add(egui::DragValue::new(&mut f.hidden).range(4..=512)).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Message-passing layers");
                ui.add(egui::DragValue::new(&mut f.layers).range(1..=12)).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Epochs");
                ui.add(egui::DragValue::new(&mut f.epochs).range(1..=1000)).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Batch size");
                ui.add(egui::DragValue::new(&mut f.batch_size).range(1..=1024)).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Learning rate");
                ui.add(egui::DragValue::new(&mut f.lr).range(1e-6..=1.0).speed(1e-4).max_decimals(5))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Seed");
                ui.add(egui::DragValue::new(&mut f.seed)).labelled_by(label.id);
                ui.end_row();
                ui.label("Device");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut f.device, DeviceChoice::Cpu, "CPU").on_hover_text(
                        "The fused CPU engine: hand-written forward and backward passes, the fastest on CPU",
                    );
                    ui.selectable_value(&mut f.device, DeviceChoice::Flex, "CPU (burn)")
                        .on_hover_text("burn-flex autodiff: the reference implementation");
                    ui.selectable_value(&mut f.device, DeviceChoice::Wgpu, "GPU (wgpu)");
                    ui.selectable_value(&mut f.device, DeviceChoice::Auto, "Auto");
                });
                ui.end_row();
                let label = ui.label("Run directory");
                ui.add(egui::TextEdit::singleline(&mut self.run_dir).desired_width(180.0)).labelled_by(label.id);
                ui.end_row();
            });
        });
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            if ui.add_enabled(!busy, egui::Button::new("Train")).clicked() {
                commands.send(Command::StartTraining);
            }
            if ui.add_enabled(busy, egui::Button::new("Cancel")).clicked() {
                commands.send(Command::CancelTraining);
            }
        });
        ui.checkbox(&mut self.live_cka.enabled, "Live CKA").on_hover_text(
            "After every epoch: CKA of each GMN block with its state at initialisation, on up to 256 zoo \
             graphs (shown in the CKA tab)",
        );
        if let Some(e) = &self.live_cka.error {
            ui.colored_label(ui.visuals().error_fg_color, crate::text::shown_message(e).to_string());
        }
    }

    fn run_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        ui.horizontal(|ui| {
            ui.heading("Training");
            if let (RunStatus::Finished(_), Some(dir)) = (&self.status, &self.finished_run)
                && ui.button("Use this GMN").on_hover_text("Load the trained GMN to run it on the open model").clicked()
            {
                commands.send(Command::LoadGmn(dir.clone()));
            }
            if let Some(latest) = self.live_cka.latest()
                && ui.button("Show live CKA").on_hover_text(latest.title.clone()).clicked()
            {
                commands.send(Command::ShowTrainingCka);
            }
            let (text, weak) = match &self.status {
                RunStatus::Idle => ("idle".to_string(), true),
                RunStatus::FittingZoo => ("fitting the demo zoo".into(), false),
                RunStatus::LoadingZoo => ("reading the zoo".into(), false),
                RunStatus::Training => (self.message.clone(), false),
                RunStatus::Finished(s) => (format!("finished: {s}"), false),
                RunStatus::Cancelled => ("cancelled".into(), false),
                RunStatus::Failed(e) => (format!("failed: {e}"), false),
            };
            let text = egui::RichText::new(text);
            ui.label(if weak { text.weak() } else { text });
        });
        let job_fraction =
            self.fit_job.as_ref().map(|j| j.stage().fraction).or(self.load_job.as_ref().map(|j| j.stage().fraction));
        let fraction = match job_fraction {
            Some(f) => f.unwrap_or(0.0),
            _ if self.total_steps > 0 => self.done_steps as f32 / self.total_steps as f32,
            _ => 0.0,
        };
        let mut bar = egui::ProgressBar::new(fraction).show_percentage();
        if let Some(eta) = self.eta().filter(|_| self.train_job.is_some()) {
            bar = bar.text(format!(
                "{:.0}% · step {}/{} · ETA {}s",
                fraction * 100.0,
                self.done_steps,
                self.total_steps,
                eta.as_secs()
            ));
        }
        ui.add(bar);
        ui.add_space(6.0);
        let height = (ui.available_height() - 12.0) / 2.0;
        Plot::new("gmn_loss").height(height.max(120.0)).legend(Legend::default()).x_axis_label("step").show(
            ui,
            |plot| {
                plot.line(Line::new("training loss", PlotPoints::from(self.curves.loss.clone())));
            },
        );
        Plot::new("gmn_accuracy")
            .height(height.max(120.0))
            .legend(Legend::default())
            .x_axis_label("step")
            .include_y(0.0)
            .include_y(1.0)
            .show(ui, |plot| {
                plot.line(Line::new("batch accuracy", PlotPoints::from(self.curves.accuracy.clone())));
                plot.line(Line::new("validation accuracy", PlotPoints::from(self.curves.val_accuracy.clone())));
            });
    }
}
