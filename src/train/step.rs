//! One optimisation step's arithmetic: batching, the loss, data-parallel gradients, global-norm
//! clipping. No I/O, no events (that is `trainer`'s job).
//!
//! Data parallelism: the batch is cut into one contiguous chunk per worker; each worker runs its
//! chunk on its own copy of the model (`model.valid().train()`: same parameter ids, its own
//! autodiff graph, so backward passes run concurrently) and returns its gradients, scaled by its
//! share of the batch. The main thread sums them in worker order, so a given worker count gives
//! the same bits every run.

use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::dataset::{GraphSet, Task};
use crate::data::Target;
use crate::models::{BatchTopology, Gmn, GmnBatch, GraphInput};

/// What one step measured (sums over the batch, so chunks add up).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepStats {
    pub loss_sum: f64,
    pub correct: usize,
    pub count: usize,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

impl StepStats {
    pub fn loss(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.loss_sum / self.count as f64 }
    }
}

/// Builds the GMN batch for `indices` of `data`: the shared device topology when there is one,
/// otherwise a disjoint union.
pub fn make_batch(
    model: &Gmn,
    data: &GraphSet,
    shared: Option<&Arc<BatchTopology>>,
    indices: &[usize],
    device: &Device,
) -> Result<GmnBatch, String> {
    let samples: Vec<&GraphInput> = indices
        .iter()
        .map(|&i| data.samples.get(i).map(|s| &s.input).ok_or("sample index out of range"))
        .collect::<Result<_, _>>()?;
    match shared {
        Some(topology) => {
            let columns: Vec<&[f32]> = samples.iter().map(|s| s.weights.as_slice()).collect();
            GmnBatch::shared(topology.clone(), &columns, device)
        }
        None => GmnBatch::mixed(&samples, model.config(), device),
    }
}

/// The targets of a batch as the loss wants them.
pub enum Targets {
    Classes(Vec<usize>),
    /// Standardised values.
    Values(Vec<f32>),
}

impl Targets {
    pub fn of(data: &GraphSet, indices: &[usize], target_mean: f32, target_std: f32) -> Targets {
        match data.task {
            Task::Classification { .. } => Targets::Classes(
                indices
                    .iter()
                    .map(|&i| match data.samples[i].target {
                        Target::Class(c) => c as usize,
                        Target::Value(_) => 0,
                    })
                    .collect(),
            ),
            Task::Regression => Targets::Values(
                indices
                    .iter()
                    .map(|&i| match data.samples[i].target {
                        Target::Value(v) => (v - target_mean) / target_std,
                        Target::Class(c) => c as f32,
                    })
                    .collect(),
            ),
        }
    }
}

/// Mean loss of `output: [G, C]` (cross-entropy, or MSE on standardised values).
pub fn loss(output: Tensor<2>, targets: &Targets) -> Tensor<1> {
    let device = output.device();
    match targets {
        Targets::Classes(labels) => {
            let g = labels.len();
            let labels: Vec<i64> = labels.iter().map(|&c| c as i64).collect();
            let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [g, 1]), &device);
            log_softmax(output, 1).gather(1, labels).mean().neg()
        }
        Targets::Values(values) => {
            let g = values.len();
            let values = Tensor::<2>::from_data(TensorData::new(values.clone(), [g, 1]), &device);
            (output - values).square().mean()
        }
    }
}

/// Number of rows of `output` whose arg-max is the label.
pub fn count_correct(output: &[f32], targets: &Targets) -> usize {
    match targets {
        Targets::Classes(labels) if !labels.is_empty() => {
            let classes = output.len() / labels.len();
            (super::metrics::accuracy(output, classes, labels) * labels.len() as f64).round() as usize
        }
        _ => 0,
    }
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap_or_default()
}

/// Everything a worker needs besides its model copy.
pub struct StepInput<'a> {
    pub data: &'a GraphSet,
    pub shared: Option<&'a Arc<BatchTopology>>,
    pub target_mean: f32,
    pub target_std: f32,
    pub device: &'a Device,
}

/// Gradients of the batch-mean loss over `indices`, computed by `workers` threads.
pub fn gradients(
    model: &Gmn,
    input: &StepInput<'_>,
    indices: &[usize],
    workers: usize,
) -> Result<(GradientsParams, StepStats), String> {
    let total = indices.len();
    if total == 0 {
        return Err("empty batch".into());
    }
    let workers = workers.clamp(1, total);
    let chunk = total.div_ceil(workers);
    let chunks: Vec<&[usize]> = indices.chunks(chunk).collect();
    let results: Vec<Result<(GradientsParams, StepStats), String>> = if chunks.len() == 1 {
        vec![chunk_gradients(model.valid().train(), input, indices, total)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .enumerate()
                .map(|(w, part)| {
                    let copy = model.valid().train();
                    std::thread::Builder::new()
                        .name(format!("gmnscope-train-worker-{w}"))
                        .spawn_scoped(scope, move || chunk_gradients(copy, input, part, total))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|_| Err("a training worker panicked".into())),
                    Err(e) => Err(format!("cannot start a training worker: {e}")),
                })
                .collect()
        })
    };
    let mut accumulator = GradientsAccumulator::<Gmn>::new();
    let mut stats = StepStats::default();
    for result in results {
        let (grads, s) = result?;
        accumulator.accumulate(model, grads);
        stats.loss_sum += s.loss_sum;
        stats.correct += s.correct;
        stats.count += s.count;
    }
    Ok((accumulator.grads(), stats))
}

fn chunk_gradients(
    model: Gmn,
    input: &StepInput<'_>,
    part: &[usize],
    total: usize,
) -> Result<(GradientsParams, StepStats), String> {
    let batch = make_batch(&model, input.data, input.shared, part, input.device)?;
    let targets = Targets::of(input.data, part, input.target_mean, input.target_std);
    let output = model.forward(&batch).output;
    let correct = count_correct(&to_vec(output.clone().detach()), &targets);
    let loss = loss(output, &targets);
    let share = part.len() as f64 / total as f64;
    let grads = loss.clone().mul_scalar(share).backward();
    let loss_value = to_vec(loss).first().copied().unwrap_or(f32::NAN) as f64;
    let grads = GradientsParams::from_grads(grads, &model);
    Ok((grads, StepStats { loss_sum: loss_value * part.len() as f64, correct, count: part.len(), grad_norm: 0.0 }))
}

/// Scales all gradients so their global L2 norm is at most `max_norm` (like PyTorch's
/// `clip_grad_norm_`; burn's own clipping is per parameter). Returns the norm before clipping.
pub fn clip_global_norm(model: &Gmn, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let mut norm = SquaredNorm { grads, total: None };
    model.visit(&mut norm);
    let norm = norm.total.map_or(0.0, |t| to_vec(t).first().copied().unwrap_or(f32::NAN) as f64).sqrt();
    if max_norm > 0.0 && norm.is_finite() && norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        model.visit(&mut Scale { grads, scale });
    }
    norm
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.square().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    scale: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.scale));
        }
    }
}
