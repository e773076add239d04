//! The training loop as a job: epochs of shuffled batches, AdamW with linear warm-up and global
//! gradient clipping, evaluation and a checkpoint at the end of every epoch, typed events for
//! the CLI and the GUI, cancellation between batches, resume from the run directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};

use super::checkpoint::{self, RUN_FORMAT, RunInfo, TrainState};
use super::config::{Schedule, TrainConfig};
use super::dataset::{GraphSet, Task};
use super::fused::FusedEngine;
use super::metrics::{MetricsLog, kendall_tau};
use super::progress::{BatchProgress, Metrics, TrainProgress};
use super::step::{self, StepInput, Targets, to_vec};
use crate::data::{Split, Target};
use crate::jobs::{self, JobError, JobHandle, Reporter};
use crate::models::probe::{ProbeActivation, ProbeConfig};
use crate::models::{BatchTopology, Gmn};
use crate::rng::SplitMix64;

/// What to train, on what, and where.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub config: TrainConfig,
    pub data: Arc<GraphSet>,
    pub run_dir: PathBuf,
    /// Continue from `run_dir`'s latest checkpoint (model, optimizer state, position).
    pub resume: bool,
    /// The zoo the data came from (recorded in `run.json`).
    pub zoo: Option<PathBuf>,
}

/// How a finished run went.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    pub device: String,
    pub steps: u64,
    pub epochs: usize,
    /// The last epoch's metrics.
    pub last: Option<Metrics>,
    pub best_val: Option<f64>,
    pub best_epoch: Option<usize>,
    pub test_at_best_val: Option<f64>,
}

/// The reporter of a training job.
pub type TrainReporter = Reporter<TrainOutcome, TrainProgress>;

/// Starts training on a named worker thread (unlisted; the app starts [`run`] in its registry).
pub fn spawn(request: TrainRequest) -> std::io::Result<JobHandle<TrainOutcome, TrainProgress>> {
    jobs::spawn("train", move |events| run(&request, events))
}

/// [`spawn`] cancelled with `cancel` (a child of the caller's token for nested work).
pub fn spawn_with(
    request: TrainRequest,
    cancel: jobs::CancelToken,
) -> std::io::Result<JobHandle<TrainOutcome, TrainProgress>> {
    jobs::spawn_with("train", cancel, move |events| run(&request, events))
}

/// The job body (also callable inline, e.g. from tests with [`Reporter::detached`]).
pub fn run(request: &TrainRequest, events: &TrainReporter) -> Result<TrainOutcome, JobError> {
    request.config.validate().map_err(JobError::Failed)?;
    super::alloc::tune_for_training();
    let mut trainer = Trainer::start(request)?;
    trainer.train(events)
}

struct Trainer<'a> {
    request: &'a TrainRequest,
    info: RunInfo,
    device: Device,
    device_name: String,
    autodiff: Device,
    model: Gmn,
    optim: ModuleOptimizer,
    state: TrainState,
    train_topology: Option<Arc<BatchTopology>>,
    eval_topology: Option<Arc<BatchTopology>>,
    train_indices: Vec<usize>,
    /// The training data as the GMN takes it (`GraphSet::for_gmn`).
    data: Arc<GraphSet>,
    log: MetricsLog,
    /// The fused CPU engine, when the device is the CPU and the engine supports the model and
    /// zoo (otherwise burn computes the steps).
    fused: Option<FusedEngine>,
    /// Where the augmentation edits a network (`config.augment`).
    augment: Option<super::augment::AugmentPlan>,
}

impl<'a> Trainer<'a> {
    fn start(request: &'a TrainRequest) -> Result<Self, JobError> {
        let config = &request.config;
        // The set as this GMN takes it (sign-canonicalised copies when asked); everything below,
        // statistics included, reads this one.
        let data_arc = request.data.for_gmn(config.canonical_signs).map_err(JobError::Failed)?;
        let data = data_arc.as_ref();
        let run_dir = &request.run_dir;
        let train_indices = data.indices(Split::Train);
        if train_indices.is_empty() {
            return Err(JobError::Failed("the zoo has no networks in its training split".into()));
        }
        let augment = if config.augment {
            let topology = data.shared.as_ref().filter(|_| data.inr.is_some()).ok_or_else(|| {
                JobError::Failed(
                    "--augment needs a zoo of INRs of one architecture (it moves their input coordinates)".into(),
                )
            })?;
            Some(
                super::augment::AugmentPlan::new(topology, data.canonical_signs)
                    .map_err(|e| JobError::Failed(format!("--augment: {e}")))?,
            )
        } else {
            None
        };
        std::fs::create_dir_all(run_dir)
            .map_err(|e| JobError::Failed(format!("{}: cannot create the run directory: {e}", run_dir.display())))?;
        let (device, mut device_name, want_fused) = super::device::resolve(config.device);
        let autodiff = device.clone().autodiff();

        let (target_mean, target_std) = match data.task {
            Task::Regression => data.target_stats(),
            Task::Classification { .. } => (0.0, 1.0),
        };
        let mut gmn = config.gmn(data.task.outputs());
        if config.standardize {
            gmn.edge_norm = data.edge_norm();
        } else {
            gmn.weight_scales = data.weight_scales();
        }
        // Probe features for INR zoos: the SIREN's own activation defines them.
        gmn.probe = data.inr.as_ref().filter(|_| config.probe_points > 0).map(|spec| ProbeConfig {
            points: config.probe_points,
            activation: ProbeActivation::Sine { omega_0: spec.omega_0, output_offset: spec.output_offset },
        });
        let fresh = RunInfo {
            format: RUN_FORMAT.into(),
            gmn,
            task: data.task,
            train: config.clone(),
            target_mean,
            target_std,
            zoo: request.zoo.clone(),
        };
        let optim = AdamWConfig::new().with_weight_decay(config.weight_decay as f32).init();
        let latest = checkpoint::latest(run_dir).map_err(JobError::failed)?;
        let (info, model, optim, state) = match (request.resume, latest) {
            (true, Some(dir)) => {
                let info = checkpoint::read_run_info(run_dir).map_err(JobError::failed)?;
                if info.task != fresh.task || info.gmn.hidden != fresh.gmn.hidden || info.gmn.layers != fresh.gmn.layers
                {
                    return Err(JobError::Failed(format!(
                        "{}: the run was trained with a different model or task ({:?}, hidden {}, layers {}); \
                         resume with the same settings or start a new run directory",
                        run_dir.display(),
                        info.task,
                        info.gmn.hidden,
                        info.gmn.layers
                    )));
                }
                let model = checkpoint::load_model(&dir, &info.gmn, &autodiff).map_err(JobError::failed)?;
                let optim = checkpoint::load_optimizer(&dir, optim).map_err(JobError::failed)?;
                let state = checkpoint::load_state(&dir).map_err(JobError::failed)?;
                // Keep the stored model shape; take the (possibly longer) schedule from the request.
                let info = RunInfo { train: config.clone(), ..info };
                (info, model, optim, state)
            }
            (false, Some(_)) => {
                return Err(JobError::Failed(format!(
                    "{} already holds a training run; pass --resume to continue it or choose another directory",
                    run_dir.display()
                )));
            }
            (_, None) => {
                let model = Gmn::new(&fresh.gmn, &autodiff).map_err(JobError::Failed)?;
                let state = TrainState::default();
                (fresh, model, optim, state)
            }
        };
        checkpoint::write_run_info(run_dir, &info).map_err(JobError::failed)?;
        // Records logged after the checkpoint we continue from (a kill, a full disk) would be
        // logged again: the log is cut back to that checkpoint (to nothing for a fresh start).
        MetricsLog::new(run_dir).truncate_to(state.step, state.epoch).map_err(JobError::Failed)?;

        let (train_topology, eval_topology) = match &data.shared {
            Some(topo) => {
                let on = |d: &Device| {
                    BatchTopology::new(&[topo.as_ref()], &info.gmn, d).map(Arc::new).map_err(JobError::Failed)
                };
                (Some(on(&autodiff)?), Some(on(&device)?))
            }
            None => (None, None),
        };
        let fused = match want_fused.then(|| FusedEngine::new(&model, data)) {
            Some(Ok(engine)) => Some(engine),
            Some(Err(why)) => {
                device_name = format!("flex (the fused CPU engine does not apply: {why})");
                None
            }
            None => None,
        };
        Ok(Self {
            request,
            info,
            device,
            device_name,
            autodiff,
            model,
            optim,
            state,
            train_topology,
            eval_topology,
            train_indices,
            data: data_arc.clone(),
            log: MetricsLog::new(run_dir),
            fused,
            augment,
        })
    }

    fn batches_per_epoch(&self) -> usize {
        self.train_indices.len().div_ceil(self.request.config.batch_size)
    }

    fn total_steps(&self) -> u64 {
        (self.batches_per_epoch() * self.request.config.epochs) as u64
    }

    /// Linear warm-up (capped at a tenth of the run so short runs still train), then the
    /// configured schedule.
    fn learning_rate(&self) -> f64 {
        let config = &self.request.config;
        schedule_rate(config.lr, config.schedule, config.warmup_steps, self.state.step, self.total_steps())
    }

    /// The training order of epoch `epoch`: a seeded shuffle of the training split.
    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order = self.train_indices.clone();
        let mut rng =
            SplitMix64::new(self.request.config.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        order
    }

    fn train(&mut self, events: &TrainReporter) -> Result<TrainOutcome, JobError> {
        let config = self.request.config.clone();
        let data = self.data.clone();
        let run_dir = self.request.run_dir.clone();
        let total_steps = self.total_steps();
        let per_epoch = self.batches_per_epoch();
        let mut last = None;
        while self.state.epoch < config.epochs {
            let epoch = self.state.epoch;
            let order = self.epoch_order(epoch);
            // A run resumed mid-epoch continues the sums of the batches done before the checkpoint.
            let sums = self.state.epoch_so_far;
            let mut epoch_stats =
                step::StepStats { loss_sum: sums.loss_sum, correct: sums.correct, count: sums.count, grad_norm: 0.0 };
            for (b, chunk) in order.chunks(config.batch_size).enumerate().skip(self.state.batch_in_epoch) {
                if events.is_cancelled() {
                    self.save(events)?;
                    return Err(JobError::Cancelled);
                }
                let lr = self.learning_rate();
                // With augmentation the step sees transformed copies of the batch's networks,
                // drawn from a stream keyed by the step (a resumed run draws the same ones).
                let augmented = self.augment.as_ref().map(|plan| {
                    let mut rng =
                        SplitMix64::new(config.seed ^ (self.state.step + 1).wrapping_mul(0xA24B_AED4_963E_E407));
                    augmented_batch(data.as_ref(), chunk, plan, &mut rng)
                });
                let all: Vec<usize>;
                let (data, chunk): (&GraphSet, &[usize]) = match &augmented {
                    Some(set) => {
                        all = (0..set.samples.len()).collect();
                        (set, &all)
                    }
                    None => (data.as_ref(), chunk),
                };
                let input = StepInput {
                    data,
                    shared: self.train_topology.as_ref(),
                    target_mean: self.info.target_mean,
                    target_std: self.info.target_std,
                    device: &self.autodiff,
                };
                let workers = config.worker_count(chunk.len());
                let (mut grads, stats) = match &mut self.fused {
                    Some(engine) => engine.gradients(
                        &self.model,
                        data,
                        chunk,
                        self.info.target_mean,
                        self.info.target_std,
                        workers,
                        &self.device,
                    ),
                    None => step::gradients(&self.model, &input, chunk, workers),
                }
                .map_err(JobError::Failed)?;
                let grad_norm = step::clip_global_norm(&self.model, &mut grads, config.grad_clip);
                let loss = stats.loss();
                if !loss.is_finite() || !grad_norm.is_finite() {
                    return Err(JobError::Failed(format!(
                        "training diverged: the loss is {loss} (gradient norm {grad_norm}) at step {} of epoch {}; \
                         stopped without saving. The last good checkpoint in {} is kept. Check the zoo for \
                         non-finite weights or lower the learning rate (now {})",
                        self.state.step + 1,
                        epoch + 1,
                        run_dir.display(),
                        config.lr
                    )));
                }
                self.model = self.optim.step(lr, self.model.clone(), grads);
                self.state.step += 1;
                self.state.batch_in_epoch = b + 1;
                epoch_stats.loss_sum += stats.loss_sum;
                epoch_stats.correct += stats.correct;
                epoch_stats.count += stats.count;
                self.state.epoch_so_far = checkpoint::EpochSums {
                    loss_sum: epoch_stats.loss_sum,
                    correct: epoch_stats.correct,
                    count: epoch_stats.count,
                };
                let batch = BatchProgress {
                    step: self.state.step,
                    total_steps,
                    epoch: epoch + 1,
                    epochs: config.epochs,
                    batch: b + 1,
                    batches: per_epoch,
                    loss,
                    lr,
                    grad_norm,
                    accuracy: matches!(data.task, Task::Classification { .. })
                        .then(|| stats.correct as f64 / stats.count.max(1) as f64),
                };
                if config.log_every > 0 && self.state.step.is_multiple_of(config.log_every) {
                    let mut record = serde_json::json!({"kind": "step", "step": self.state.step, "epoch": epoch + 1});
                    for (k, v) in &batch.values() {
                        record[k] = serde_json::json!(v);
                    }
                    self.log
                        .append(&record)
                        .map_err(|e| JobError::Failed(format!("{}: {e}", self.log.path().display())))?;
                }
                events.stage(batch.position(), Some(batch.step as f32 / total_steps.max(1) as f32));
                events.progress_lossy(TrainProgress::Batch(batch));
                if config.checkpoint_every > 0 && self.state.step.is_multiple_of(config.checkpoint_every) {
                    self.save(events)?;
                }
            }
            let metrics = self.end_epoch(epoch, &epoch_stats)?;
            events.progress(TrainProgress::Epoch(metrics.clone()));
            last = Some(metrics);
            self.save(events)?;
        }
        Ok(TrainOutcome {
            run_dir,
            device: self.device_name.clone(),
            steps: self.state.step,
            epochs: self.state.epoch,
            last,
            best_val: self.state.best_val,
            best_epoch: self.state.best_epoch,
            test_at_best_val: self.state.test_at_best_val,
        })
    }

    /// Evaluates validation and test splits, updates the best-validation record, logs the epoch
    /// and moves the position to the next epoch.
    fn end_epoch(&mut self, epoch: usize, train: &step::StepStats) -> Result<Metrics, JobError> {
        let mut values = vec![("train_loss".to_string(), train.loss())];
        let classification = matches!(self.data.task, Task::Classification { .. });
        if classification {
            values.push(("train_accuracy".to_string(), train.correct as f64 / train.count.max(1) as f64));
        }
        let mut split_scores = Vec::new();
        for split in [Split::Val, Split::Test] {
            let Some(eval) = self.evaluate(split)? else { continue };
            values.extend(eval.iter().map(|(k, v)| (format!("{}_{k}", split.name()), *v)));
            let score = if classification { "accuracy" } else { "kendall_tau" };
            split_scores.push((split, eval.iter().find(|(k, _)| k == score).map(|(_, v)| *v)));
        }
        let val = split_scores.iter().find(|(s, _)| *s == Split::Val).and_then(|(_, v)| *v);
        let test = split_scores.iter().find(|(s, _)| *s == Split::Test).and_then(|(_, v)| *v);
        if let Some(val) = val
            && self.state.best_val.is_none_or(|best| val > best)
        {
            self.state.best_val = Some(val);
            self.state.best_epoch = Some(epoch + 1);
            self.state.test_at_best_val = test;
            checkpoint::save_best(&self.request.run_dir, &self.model, &self.state).map_err(JobError::failed)?;
        }
        self.state.epoch = epoch + 1;
        self.state.batch_in_epoch = 0;
        self.state.epoch_so_far = Default::default();
        let metrics = Metrics { scope: "epoch".into(), index: epoch as u64 + 1, step: self.state.step, values };
        let mut record = serde_json::json!({"kind": "epoch", "epoch": epoch + 1, "step": self.state.step});
        for (k, v) in &metrics.values {
            record[k] = serde_json::json!(v);
        }
        self.log.append(&record).map_err(|e| JobError::Failed(format!("{}: {e}", self.log.path().display())))?;
        Ok(metrics)
    }

    /// Loss and accuracy (classification) or MSE and Kendall's tau in target units (regression)
    /// on one split; `None` when the split is empty.
    fn evaluate(&mut self, split: Split) -> Result<Option<Vec<(String, f64)>>, JobError> {
        let data = self.data.as_ref();
        let indices = data.indices(split);
        if indices.is_empty() {
            return Ok(None);
        }
        let model = self.model.valid();
        let (mut loss_sum, mut correct, mut predictions) = (0.0f64, 0usize, Vec::with_capacity(indices.len()));
        for chunk in indices.chunks(self.request.config.batch_size) {
            let targets = Targets::of(data, chunk, self.info.target_mean, self.info.target_std);
            let output = match &mut self.fused {
                Some(engine) => {
                    let workers = self.request.config.worker_count(chunk.len());
                    let values = engine.outputs(&self.model, data, chunk, workers).map_err(JobError::Failed)?;
                    let columns = values.len() / chunk.len().max(1);
                    Tensor::<2>::from_data(TensorData::new(values, [chunk.len(), columns]), &self.device)
                }
                None => {
                    let batch = step::make_batch(&model, data, self.eval_topology.as_ref(), chunk, &self.device)
                        .map_err(JobError::Failed)?;
                    model.forward(&batch).output
                }
            };
            let values = to_vec(output.clone());
            correct += step::count_correct(&values, &targets);
            let loss = to_vec(step::loss(output, &targets)).first().copied().unwrap_or(f32::NAN) as f64;
            loss_sum += loss * chunk.len() as f64;
            predictions.extend(values.iter().map(|v| v * self.info.target_std + self.info.target_mean));
        }
        let n = indices.len() as f64;
        Ok(Some(match data.task {
            Task::Classification { .. } => vec![("loss".into(), loss_sum / n), ("accuracy".into(), correct as f64 / n)],
            Task::Regression => {
                let truth: Vec<f32> = indices
                    .iter()
                    .map(|&i| if let Target::Value(v) = data.samples[i].target { v } else { f32::NAN })
                    .collect();
                vec![
                    ("mse".into(), super::metrics::mse(&predictions, &truth)),
                    ("kendall_tau".into(), kendall_tau(&predictions, &truth)),
                ]
            }
        }))
    }

    fn save(&self, events: &TrainReporter) -> Result<(), JobError> {
        let dir = checkpoint::save(&self.request.run_dir, &self.model, Some(&self.optim), &self.state)
            .map_err(JobError::failed)?;
        events.progress(TrainProgress::CheckpointSaved { path: dir, step: self.state.step });
        Ok(())
    }
}

/// Reads `run_dir` and rebuilds its latest model on `device` (for `infer` and the GUI).
pub fn load_run(run_dir: &Path, device: &Device) -> Result<(RunInfo, Gmn), checkpoint::Error> {
    load_run_at(run_dir, Which::Latest, device)
}

/// Which of a run's models to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The newest checkpoint.
    Latest,
    /// The model at the best validation score (`RUN/best/`).
    Best,
}

/// Reads `run_dir` and rebuilds the model `which` on `device`.
pub fn load_run_at(run_dir: &Path, which: Which, device: &Device) -> Result<(RunInfo, Gmn), checkpoint::Error> {
    let info = checkpoint::read_run_info(run_dir)?;
    let dir = match which {
        Which::Latest => checkpoint::latest(run_dir)?.ok_or_else(|| checkpoint::Error {
            path: run_dir.to_path_buf(),
            message: "holds no checkpoint yet (RUN/latest is missing)".into(),
        })?,
        Which::Best => checkpoint::best(run_dir).ok_or_else(|| checkpoint::Error {
            path: run_dir.join("best"),
            message: "holds no best-validation model (the run has not finished an epoch with a validation split)"
                .into(),
        })?,
    };
    let model = checkpoint::load_model(&dir, &info.gmn, device)?;
    Ok((info, model))
}

/// The learning rate at `step` (0-based) of a `total`-step run: linear warm-up over
/// `min(warmup, total / 10)` steps, then constant or a cosine decay to zero at the last step.
pub fn schedule_rate(lr: f64, schedule: Schedule, warmup: u64, step: u64, total: u64) -> f64 {
    let warmup = warmup.min(total / 10);
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    match schedule {
        Schedule::Constant => lr,
        Schedule::Cosine => {
            let span = total.saturating_sub(warmup).max(1) as f64;
            let progress = ((step - warmup) as f64 / span).min(1.0);
            lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// Copies of the networks `indices` of `data`, each transformed by `plan` (`train::augment`).
fn augmented_batch(
    data: &GraphSet,
    indices: &[usize],
    plan: &super::augment::AugmentPlan,
    rng: &mut SplitMix64,
) -> GraphSet {
    let samples = indices
        .iter()
        .map(|&i| {
            let mut sample = data.samples[i].clone();
            plan.apply(&super::augment::Augmentation::INR, rng, &mut sample.input.weights);
            sample
        })
        .collect();
    GraphSet { samples, ..data.clone_without_samples() }
}

#[cfg(test)]
mod schedule_tests {
    use super::*;

    #[test]
    fn warm_up_then_constant_or_cosine() {
        // 1000 steps, warm-up capped at 100.
        assert!((schedule_rate(1.0, Schedule::Constant, 500, 0, 1000) - 0.01).abs() < 1e-12);
        assert!((schedule_rate(1.0, Schedule::Constant, 500, 99, 1000) - 1.0).abs() < 1e-12);
        assert_eq!(schedule_rate(1.0, Schedule::Constant, 500, 999, 1000), 1.0);
        assert!((schedule_rate(1.0, Schedule::Cosine, 100, 100, 1000) - 1.0).abs() < 1e-12);
        assert!((schedule_rate(1.0, Schedule::Cosine, 100, 550, 1000) - 0.5).abs() < 1e-12, "half-way");
        assert!(schedule_rate(1.0, Schedule::Cosine, 100, 999, 1000) < 1e-4, "near zero at the end");
        assert_eq!(schedule_rate(2.0, Schedule::Cosine, 0, 0, 1), 2.0);
    }
}
