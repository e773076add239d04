//! The fused CPU training engine: the GMN's forward and backward passes written out by hand for
//! networks that share one topology (every zoo of one architecture), parallel over the graphs of
//! a batch.
//!
//! Why it exists: on burn-flex the same step spends most of its time outside the GEMMs
//! (element-wise ops on one thread, a scalar `exp` per SiLU element, serial scatters, one
//! autodiff graph per worker) and ran at 0.67x the PyTorch peer (`benches/gmn_train.rs`). Here
//! each worker thread runs whole graphs, one at a time, through cache-sized buffers: GEMMs from
//! the `gemm` crate, LayerNorm / SiLU / gathers / scatters as vectorised loops (AVX2 + FMA when
//! the CPU has them), nothing allocated per step.
//!
//! It is an engine, not a second model: it reads the burn [`Gmn`]'s parameters
//! ([`params::read`]) and returns burn gradients keyed by the same parameter ids
//! ([`params::to_gradients`]). Clipping, AdamW, checkpoints and resume are the trainer's, as
//! for the burn engine. `tests/gmn_fused.rs` checks outputs and gradients against burn's
//! autodiff on the same model.
//!
//! Deterministic: a given worker count splits a batch the same way every run and the workers'
//! sums are added in worker order.
//!
//! Modules: [`params`] (flat layout, burn bridge), [`plan`] (host topology), [`encoders`]
//! (per-step constants), [`pass`] (one graph forward + backward), [`kernels`] (GEMM, LayerNorm,
//! SiLU, gathers), [`pna`] (PNA's aggregation and its backward pass).

pub mod block0;
pub mod encoders;
pub mod kernels;
pub mod params;
pub mod pass;
pub mod plan;
pub mod pna;

use burn::optim::GradientsParams;
use burn::tensor::Device;

use self::params::Layout;
use self::pass::{Goal, Shared, Workspace};
use self::plan::Plan;
use super::dataset::GraphSet;
use super::step::StepStats;
use crate::data::Target;
use crate::models::{Gmn, Readout};

/// The engine for one model shape and one zoo topology; keeps its worker buffers between steps.
pub struct FusedEngine {
    layout: Layout,
    plan: Plan,
    workspaces: Vec<Workspace>,
}

impl FusedEngine {
    /// An engine for `model` on `data`, or why the fused engine cannot run them (the trainer
    /// then uses burn).
    pub fn new(model: &Gmn, data: &GraphSet) -> Result<Self, String> {
        let topo = data
            .shared
            .as_ref()
            .ok_or("the fused CPU engine needs networks of one architecture (a shared topology)")?;
        let config = model.config();
        if config.readout == Readout::Edges && !config.reads_outputs() {
            return Err("the fused CPU engine does not support an edges-only readout without a node readout".into());
        }
        let plan = Plan::new(topo, config)?;
        if let Some(s) = data.samples.iter().find(|s| s.input.weights.len() != plan.num_weights) {
            return Err(format!(
                "network '{}' has {} weights, the shared topology {}",
                s.id,
                s.input.weights.len(),
                plan.num_weights
            ));
        }
        let layout = Layout::of(model);
        Ok(Self { layout, plan, workspaces: Vec::new() })
    }

    /// Gradients of the batch-mean loss over `indices` (as burn gradients of `model`'s
    /// parameters, on `device`) and the batch's loss and accuracy counts.
    #[allow(clippy::too_many_arguments)]
    pub fn gradients(
        &mut self,
        model: &Gmn,
        data: &GraphSet,
        indices: &[usize],
        target_mean: f32,
        target_std: f32,
        workers: usize,
        device: &Device,
    ) -> Result<(GradientsParams, StepStats), String> {
        let (grad, stats) = self.flat_gradients(model, data, indices, target_mean, target_std, workers)?;
        Ok((params::to_gradients(model, &self.layout, &grad, device), stats))
    }

    /// As [`Self::gradients`], with the gradient as one flat vector in [`params::Layout`] order.
    pub fn flat_gradients(
        &mut self,
        model: &Gmn,
        data: &GraphSet,
        indices: &[usize],
        target_mean: f32,
        target_std: f32,
        workers: usize,
    ) -> Result<(Vec<f32>, StepStats), String> {
        if indices.is_empty() {
            return Err("empty batch".into());
        }
        let goals = indices
            .iter()
            .map(|&i| match data.samples.get(i).map(|s| s.target) {
                Some(Target::Class(c)) => Ok(Goal::Class(c as usize)),
                Some(Target::Value(v)) => Ok(Goal::Value((v - target_mean) / target_std)),
                None => Err(format!("sample index {i} out of range")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let params = params::read(model, &self.layout)?;
        let _ = self.run(&params, data, indices, Some(&goals), workers)?;
        let (first, rest) = self.workspaces.split_first().ok_or("no worker ran")?;
        let mut grad = first.grad.clone();
        let mut dx0 = first.dx0.clone();
        let mut dfixed = first.dfixed.clone();
        let mut stats =
            StepStats { loss_sum: first.loss_sum, correct: first.correct, count: indices.len(), grad_norm: 0.0 };
        for ws in rest.iter().take(self.active(indices.len(), workers) - 1) {
            grad.iter_mut().zip(&ws.grad).for_each(|(a, b)| *a += b);
            dx0.iter_mut().zip(&ws.dx0).for_each(|(a, b)| *a += b);
            dfixed.iter_mut().zip(&ws.dfixed).for_each(|(a, b)| *a += b);
            stats.loss_sum += ws.loss_sum;
            stats.correct += ws.correct;
        }
        encoders::backward(&params, &self.layout, &self.plan, &dx0, &dfixed, &mut grad);
        Ok((grad, stats))
    }

    /// The model's outputs for `indices`: `[G, outputs]` row-major (logits, or standardised
    /// values for regression).
    pub fn outputs(
        &mut self,
        model: &Gmn,
        data: &GraphSet,
        indices: &[usize],
        workers: usize,
    ) -> Result<Vec<f32>, String> {
        if indices.iter().any(|&i| i >= data.samples.len()) {
            return Err("sample index out of range".into());
        }
        let params = params::read(model, &self.layout)?;
        self.run(&params, data, indices, None, workers)
    }

    /// Number of workers that get a chunk of `total` graphs.
    fn active(&self, total: usize, workers: usize) -> usize {
        let workers = workers.clamp(1, total.max(1));
        total.div_ceil(total.div_ceil(workers))
    }

    /// Runs every graph of `indices` (forward, and backward when `goals` are given), one
    /// contiguous chunk per worker; returns the outputs in order.
    fn run(
        &mut self,
        params: &[f32],
        data: &GraphSet,
        indices: &[usize],
        goals: Option<&[Goal]>,
        workers: usize,
    ) -> Result<Vec<f32>, String> {
        let total = indices.len();
        let workers = workers.clamp(1, total.max(1));
        let chunk = total.div_ceil(workers).max(1);
        let active = self.active(total, workers);
        while self.workspaces.len() < active {
            self.workspaces.push(Workspace::new(&self.plan, &self.layout));
        }
        let (x0, fixed_edges) = encoders::constants(params, &self.layout, &self.plan);
        // The class-level first block needs the linear lift's rank-1 weight term.
        let block0 = if self.layout.lift_width == 1 {
            block0::Block0::new(params, &self.layout, &self.plan, &fixed_edges)
        } else {
            None
        };
        let shared = Shared { params, x0: &x0, fixed_edges: &fixed_edges, block0: block0.as_ref() };
        let (plan, layout) = (&self.plan, &self.layout);
        let outputs = layout.outputs;
        let scale = 1.0 / total as f32;
        let work = |ws: &mut Workspace, part: &[usize], first: usize| -> Vec<f32> {
            ws.reset();
            let mut out = Vec::with_capacity(part.len() * outputs);
            for (k, &i) in part.iter().enumerate() {
                let goal = goals.map(|g| g[first + k]);
                run_graph(ws, &shared, plan, layout, &data.samples[i].input.weights, goal, scale);
                out.extend_from_slice(&ws.out);
            }
            out
        };
        let parts: Vec<&[usize]> = indices.chunks(chunk).collect();
        let results: Vec<Vec<f32>> = if parts.len() == 1 {
            vec![work(&mut self.workspaces[0], indices, 0)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = self
                    .workspaces
                    .iter_mut()
                    .zip(&parts)
                    .enumerate()
                    .map(|(w, (ws, part))| {
                        let work = &work;
                        std::thread::Builder::new()
                            .name(format!("gmnscope-fused-{w}"))
                            .spawn_scoped(scope, move || work(ws, part, w * chunk))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| match h {
                        Ok(h) => h.join().map_err(|_| "a fused training worker panicked".to_string()),
                        Err(e) => Err(format!("cannot start a fused training worker: {e}")),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?
        };
        Ok(results.concat())
    }
}

/// One graph through [`pass::run_graph`], compiled with AVX2 + FMA when the CPU has them.
fn run_graph(
    ws: &mut Workspace,
    shared: &Shared<'_>,
    plan: &Plan,
    layout: &Layout,
    column: &[f32],
    goal: Option<Goal>,
    scale: f32,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for (checked above).
        unsafe { run_graph_avx2(ws, shared, plan, layout, column, goal, scale) };
        return;
    }
    pass::run_graph(ws, shared, plan, layout, column, goal, scale);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_graph_avx2(
    ws: &mut Workspace,
    shared: &Shared<'_>,
    plan: &Plan,
    layout: &Layout,
    column: &[f32],
    goal: Option<Goal>,
    scale: f32,
) {
    pass::run_graph(ws, shared, plan, layout, column, goal, scale);
}
