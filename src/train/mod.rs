//! Training graph metanetworks (feature `burn`).
//!
//! Owns: the training job ([`trainer::spawn`] / [`trainer::run`]), the validated settings
//! ([`TrainConfig`]), the in-memory zoo ([`GraphSet`]), metrics and `metrics.jsonl`, the run
//! directory and its checkpoints ([`checkpoint`]), device choice ([`device`]).
//! Must not import: `ui`. Events go through `jobs`, never straight to a UI.
//!
//! Brief overview:
//! - [`dataset`]: zoo -> weight columns + one shared topology (or several).
//! - [`augment`]: weight-space augmentations of INR zoos (rotation, translation, weight dropout).
//! - [`step`]: batch, loss, data-parallel gradients (one model copy per worker thread), global
//!   gradient-norm clipping.
//! - [`trainer`]: epochs, AdamW (decoupled weight decay) with linear warm-up, evaluation, events,
//!   cancellation, checkpoints, resume, NaN detection.
//! - [`progress`]: the job's typed events (batch progress, epoch metrics, checkpoints).
//! - [`checkpoint`]: `RUN/` layout; temp directory + rename, then the `latest` pointer.
//!
//! Resume restores the model, the AdamW moments (burnpack keeps parameter ids, which key the
//! optimizer state) and the position (epoch, batch); a run resumed mid-epoch reports that
//! epoch's training loss over the batches since the resume only.

pub mod alloc;
pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod device;
pub mod fused;
pub mod metrics;
pub mod progress;
pub mod step;
pub mod trainer;

pub use checkpoint::{RunInfo, TrainState};
pub use config::{DeviceChoice, Schedule, TrainConfig};
pub use dataset::{GraphSet, Sample, Task};
pub use progress::{BatchProgress, Metrics, TrainProgress};
pub use trainer::{TrainOutcome, TrainReporter, TrainRequest, Which, load_run, load_run_at, run, spawn, spawn_with};
