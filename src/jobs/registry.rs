//! The app's list of running jobs: what the status bar shows (name, stage, progress) and where
//! cancel-by-id goes. Results do not pass through here: each job's typed [`super::JobHandle`]
//! stays with the panel that started it.
//!
//! The registry holds weak references to each job's [`Status`], which the job's reporter and
//! handle share: a job is listed while its thread runs or its handle is kept, and disappears
//! without being unregistered.

use std::sync::{Arc, Mutex, Weak};

use super::{CancelToken, JobId};

/// Wakes whoever shows the jobs when one reports (the app sets it to `ctx.request_repaint()`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What a job is doing now: the last stage it reported, with its fraction done when it knows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stage {
    pub text: String,
    pub fraction: Option<f32>,
}

/// A job's state shared by its thread, its handle and the registry.
#[derive(Debug)]
pub struct Status {
    pub id: JobId,
    pub name: String,
    pub cancel: CancelToken,
    stage: Mutex<Stage>,
}

impl Status {
    pub(super) fn new(id: JobId, name: String, cancel: CancelToken) -> Self {
        Self { id, name, cancel, stage: Mutex::new(Stage { text: "starting".into(), fraction: None }) }
    }

    pub fn stage(&self) -> Stage {
        self.stage.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(super) fn set_stage(&self, stage: Stage) {
        if let Ok(mut s) = self.stage.lock() {
            *s = stage;
        }
    }
}

/// A running job as the status bar lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSummary {
    pub id: JobId,
    pub name: String,
    pub stage: String,
    pub fraction: Option<f32>,
    pub cancelling: bool,
}

/// The jobs an app started (cheap to clone; every clone is the same list) and the waker they call.
#[derive(Clone, Default)]
pub struct Registry {
    jobs: Arc<Mutex<Vec<Weak<Status>>>>,
    waker: Option<Waker>,
}

impl Registry {
    /// A registry whose jobs call `waker` whenever they report or finish.
    pub fn new(waker: Option<Waker>) -> Self {
        Self { jobs: Default::default(), waker }
    }

    pub fn waker(&self) -> Option<&Waker> {
        self.waker.as_ref()
    }

    pub(super) fn add(&self, status: &Arc<Status>) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.retain(|w| w.strong_count() > 0);
            jobs.push(Arc::downgrade(status));
        }
    }

    fn live(&self) -> Vec<Arc<Status>> {
        let Ok(mut jobs) = self.jobs.lock() else { return Vec::new() };
        jobs.retain(|w| w.strong_count() > 0);
        jobs.iter().filter_map(Weak::upgrade).collect()
    }

    /// The listed jobs, oldest first.
    pub fn summaries(&self) -> Vec<JobSummary> {
        self.live()
            .iter()
            .map(|s| {
                let stage = s.stage();
                JobSummary {
                    id: s.id,
                    name: s.name.clone(),
                    stage: stage.text,
                    fraction: stage.fraction,
                    cancelling: s.cancel.is_cancelled(),
                }
            })
            .collect()
    }

    /// Asks the job `id` to stop; false when no such job is listed.
    pub fn cancel(&self, id: JobId) -> bool {
        let found = self.live().into_iter().find(|s| s.id == id);
        found.iter().for_each(|s| s.cancel.cancel());
        found.is_some()
    }

    /// True while any listed job exists.
    pub fn is_empty(&self) -> bool {
        self.live().is_empty()
    }
}
