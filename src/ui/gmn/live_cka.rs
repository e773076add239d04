//! Live training CKA (feature `burn`): follows the GMN tab's training run and, after every saved
//! checkpoint, computes in a job how far each GMN block has moved: the block x block linear CKA
//! between the GMN at that checkpoint (rows) and at initialisation (columns) on a fixed probe set
//! of up to 256 zoo graphs. The numerics are the core's (`study::training_cka`); this file only
//! schedules them and keeps the latest matrix for the CKA explorer (`CkaSource::Training`).
//!
//! Scheduling: checkpoints arrive once per epoch. One job runs at a time; a checkpoint that
//! arrives meanwhile waits as `pending`, and a newer one replaces it (only the newest is worth
//! computing). The initial representations are computed by the first job and reused. Turning
//! the feature off, cancelling the training or starting another run cancels the job and drops
//! what waits.

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::Device;

use crate::jobs::{JobError, JobHandle, Registry, Reporter};
use crate::study::files::ActivationSet;
use crate::study::training_cka::{self, PROBE_GRAPHS};
use crate::train::{GraphSet, RunInfo};
use crate::ui::cka::data::{CkaResult, TrainingCka};

/// The GMN at initialisation, as the columns of every matrix of a run.
struct Reference {
    info: RunInfo,
    acts: ActivationSet,
}

/// The training run being followed.
struct Followed {
    run_dir: PathBuf,
    data: Arc<GraphSet>,
    probe: Arc<Vec<usize>>,
    reference: Option<Arc<Reference>>,
}

/// What a job hands back: the reference (computed by the first job) and the new matrix.
struct Computed {
    reference: Arc<Reference>,
    title: String,
    result: CkaResult,
}

pub struct LiveTrainingCka {
    /// The panel's "Live CKA" toggle.
    pub enabled: bool,
    followed: Option<Followed>,
    job: Option<JobHandle<Computed>>,
    /// The newest checkpoint not computed yet.
    pending: Option<PathBuf>,
    latest: Option<Arc<TrainingCka>>,
    version: u64,
    /// Why the last computation failed (shown in the GMN tab; the training goes on regardless).
    pub error: Option<String>,
}

impl Default for LiveTrainingCka {
    fn default() -> Self {
        Self { enabled: true, followed: None, job: None, pending: None, latest: None, version: 0, error: None }
    }
}

impl LiveTrainingCka {
    /// A new training run in `run_dir` on `data` starts: forget the previous run entirely.
    pub fn follow(&mut self, run_dir: PathBuf, data: Arc<GraphSet>) {
        self.stop();
        let probe = Arc::new(training_cka::probe_set(&data, PROBE_GRAPHS));
        self.followed = Some(Followed { run_dir, data, probe, reference: None });
        self.latest = None;
        self.error = None;
    }

    /// The trainer saved a checkpoint: compute it next (replacing any older one that waits).
    pub fn on_checkpoint(&mut self, dir: PathBuf) {
        if self.enabled && self.followed.is_some() {
            self.pending = Some(dir);
        }
    }

    /// Cancels the running computation and drops what waits (the shown matrix stays).
    pub fn stop(&mut self) {
        self.job.iter().for_each(JobHandle::cancel);
        self.job = None;
        self.pending = None;
    }

    /// The run directory of the followed run.
    pub fn run_dir(&self) -> Option<&PathBuf> {
        self.followed.as_ref().map(|f| &f.run_dir)
    }

    /// The newest matrix, if any.
    pub fn latest(&self) -> Option<&Arc<TrainingCka>> {
        self.latest.as_ref()
    }

    pub fn is_busy(&self) -> bool {
        self.job.is_some() || self.pending.is_some()
    }

    /// Polls the job and starts the next one (call once per frame).
    pub fn logic(&mut self, jobs: &Registry) {
        if !self.enabled {
            self.stop();
        }
        if let Some(job) = &mut self.job
            && let Some(done) = job.poll()
        {
            self.job = None;
            match done {
                Ok(computed) => {
                    if let Some(f) = &mut self.followed {
                        f.reference = Some(computed.reference);
                        self.version += 1;
                        self.latest = Some(Arc::new(TrainingCka {
                            run_dir: f.run_dir.clone(),
                            title: computed.title,
                            result: computed.result,
                            version: self.version,
                        }));
                        self.error = None;
                    }
                }
                Err(JobError::Cancelled) => {}
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        if self.job.is_none()
            && let Some(dir) = self.pending.take()
        {
            self.start(dir, jobs);
        }
    }

    fn start(&mut self, checkpoint: PathBuf, jobs: &Registry) {
        let Some(f) = &self.followed else { return };
        let (run_dir, data, probe, reference) =
            (f.run_dir.clone(), f.data.clone(), f.probe.clone(), f.reference.clone());
        let work = move |r: &Reporter<Computed>| {
            compute(&run_dir, &checkpoint, &data, &probe, reference, r)
                .map_err(|e| JobError::from(e).context("live training CKA"))
        };
        match jobs.spawn("live training CKA", work) {
            Ok(job) => self.job = Some(job),
            Err(e) => self.error = Some(format!("cannot start a worker thread: {e}")),
        }
    }
}

/// The job body: the reference (once), the checkpoint's representations, their CKA.
fn compute(
    run_dir: &std::path::Path,
    checkpoint: &std::path::Path,
    data: &GraphSet,
    probe: &[usize],
    reference: Option<Arc<Reference>>,
    r: &Reporter<Computed>,
) -> anyhow::Result<Computed> {
    let device = Device::flex();
    let reference = match reference {
        Some(reference) => reference,
        None => {
            r.stage("representations at initialisation", Some(0.1));
            let info = training_cka::run_info(run_dir)?;
            let acts = training_cka::initial(&info, data, probe, &device)?;
            Arc::new(Reference { info, acts })
        }
    };
    r.check()?;
    r.stage("representations at the checkpoint", Some(0.5));
    // The trainer deletes a checkpoint once it saved the next one: then the newest one is the
    // one to show anyway.
    let at = |dir: &std::path::Path| training_cka::at_checkpoint(dir, &reference.info, data, probe, &device);
    let (state, acts) = match at(checkpoint) {
        Ok(found) => found,
        Err(first) => match crate::train::checkpoint::latest(run_dir).ok().flatten() {
            Some(newest) if newest != checkpoint => at(&newest)?,
            _ => return Err(first),
        },
    };
    r.check()?;
    r.stage("CKA", Some(0.9));
    let matrix = training_cka::block_cka(&acts, &reference.acts)?;
    let label = training_cka::position_label(&state);
    let result = CkaResult {
        matrix,
        rows: acts.names.clone(),
        cols: reference.acts.names.clone(),
        row_title: format!("GMN at {label}"),
        col_title: "GMN at initialisation".into(),
        n: probe.len(),
        kernel: "linear".into(),
        estimator: "biased".into(),
        batches: None,
    };
    Ok(Computed { reference, title: format!("GMN training: {label} vs initialisation"), result })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Split, Target};
    use crate::models::{GraphInput, Topology};
    use crate::train::Sample;

    /// A zoo of empty graphs: enough to follow (nothing here computes on it successfully).
    fn empty_zoo() -> Arc<GraphSet> {
        let topology = Arc::new(Topology {
            node_features: Vec::new(),
            src: Vec::new(),
            dst: Vec::new(),
            edge_features: Vec::new(),
            weight_index: Vec::new(),
            num_weights: 0,
        });
        let samples = (0..4)
            .map(|i| Sample {
                id: format!("n{i}"),
                input: GraphInput { topology: topology.clone(), weights: Vec::new() },
                target: Target::Class((i % 2) as u8),
                split: Split::Train,
            })
            .collect();
        Arc::new(GraphSet::new(samples, Some(2)).unwrap())
    }

    fn settle(live: &mut LiveTrainingCka) {
        let jobs = Registry::default();
        for _ in 0..2000 {
            live.logic(&jobs);
            if !live.is_busy() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!("the live CKA job did not finish");
    }

    #[test]
    fn only_the_newest_checkpoint_waits_and_failures_are_reported_not_fatal() {
        let mut live = LiveTrainingCka::default();
        live.on_checkpoint(PathBuf::from("c0"));
        assert!(live.pending.is_none(), "no run followed: nothing to compute");

        let run = tempfile::tempdir().unwrap();
        live.follow(run.path().to_path_buf(), empty_zoo());
        live.on_checkpoint(PathBuf::from("c1"));
        live.on_checkpoint(PathBuf::from("c2"));
        assert_eq!(live.pending, Some(PathBuf::from("c2")), "a newer checkpoint replaces the waiting one");
        // The run directory has no run.json: the job fails with a message naming it, and nothing
        // is shown.
        settle(&mut live);
        let error = live.error.clone().expect("the failure is reported");
        assert!(error.contains("run.json"), "{error}");
        assert!(live.latest().is_none());

        live.on_checkpoint(PathBuf::from("c3"));
        live.stop();
        assert!(!live.is_busy(), "stop drops what waits");
        live.enabled = false;
        live.on_checkpoint(PathBuf::from("c4"));
        assert!(live.pending.is_none(), "off: checkpoints are ignored");
    }
}
