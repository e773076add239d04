//! What a training job reports (its `jobs::JobEvent::Progress` type): a [`BatchProgress`] after
//! every batch (disposable), an epoch's [`Metrics`] and every saved checkpoint (both kept).

use std::path::PathBuf;

/// A training job's progress events.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainProgress {
    /// After every batch; dropped when the listener lags (the next one supersedes it).
    Batch(BatchProgress),
    /// After every epoch: its metrics, as `metrics.jsonl` records them.
    Epoch(Metrics),
    /// A checkpoint is complete on disk (written to a temp directory, then renamed into place).
    CheckpointSaved { path: PathBuf, step: u64 },
}

/// The last batch: where the run is and the batch's training numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchProgress {
    /// Global steps done and planned.
    pub step: u64,
    pub total_steps: u64,
    /// 1-based epoch of `epochs`, batch of `batches` in it.
    pub epoch: usize,
    pub epochs: usize,
    pub batch: usize,
    pub batches: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    /// The batch's accuracy (classification only).
    pub accuracy: Option<f64>,
}

impl BatchProgress {
    /// "epoch 2/10 batch 3/8".
    pub fn position(&self) -> String {
        format!("epoch {}/{} batch {}/{}", self.epoch, self.epochs, self.batch, self.batches)
    }

    /// The batch's numbers by name, in the order `metrics.jsonl` and the CLI print them.
    pub fn values(&self) -> Vec<(String, f64)> {
        let mut values = vec![
            ("loss".to_string(), self.loss),
            ("lr".to_string(), self.lr),
            ("grad_norm".to_string(), self.grad_norm),
        ];
        if let Some(accuracy) = self.accuracy {
            values.push(("accuracy".to_string(), accuracy));
        }
        values
    }
}

/// A set of named metrics at one point of the run (the end of an epoch). Named, not fields: the
/// evaluated splits and scores depend on the task (accuracy for classes, Kendall's tau for values).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// What the metrics summarise, e.g. `"epoch"`.
    pub scope: String,
    /// Epoch (or another counter) the metrics belong to.
    pub index: u64,
    /// The global step when they were taken.
    pub step: u64,
    pub values: Vec<(String, f64)>,
}

impl Metrics {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}
