//! Background jobs, the one job system of the CLI and the app: a named worker thread, typed
//! progress over a bounded channel, one cancel token, one `Cancelled` error.
//!
//! Owns: [`spawn`] / [`spawn_with`] / [`Registry::spawn`], [`JobHandle`], [`Reporter`],
//! [`JobEvent`], [`CancelToken`] and [`Cancelled`] (`cancel.rs`), [`JobError`], and the app's
//! [`Registry`] of running jobs (`registry.rs`: the status bar's list, cancel-by-id, the waker).
//! It knows nothing about what a job computes, and must not import burn, `ui` or a numeric module.
//!
//! A job is a closure run on its own named thread (`std::thread::Builder`). It reports through a
//! [`Reporter`]: `Started` is sent for it, then any number of `Progress(P)` events, typed per job
//! (training batches and epochs, partial CKA matrices, study run pairs), and exactly one final
//! `Finished(Result<T, JobError>)`, also when the job panics. The channel is bounded:
//! [`Reporter::progress_lossy`] drops an event when the receiver lags (per-batch progress),
//! [`Reporter::progress`] and `Finished` wait for room. What the job is doing now (a stage line and
//! a fraction, [`Reporter::stage`]) is not an event but shared state the status bar reads.
//!
//! Every report calls the job's waker, if it has one (the app's [`Registry`] sets it to
//! `ctx.request_repaint()`), so the UI repaints when a job has news instead of polling.
//!
//! Cancellation is a [`CancelToken`] the job checks between steps; library loops take a
//! `&CancelToken` (child tokens for nested work) and stop with [`Cancelled`], which a job ends with
//! as `Finished(Err(JobError::Cancelled))`. Dropping a [`JobHandle`] cancels its job.

mod cancel;
mod registry;
#[cfg(test)]
mod tests;

pub use cancel::{CancelToken, Cancelled};
pub use registry::{JobSummary, Registry, Stage, Status, Waker};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread::JoinHandle;

/// Room in a job's event channel; lossy progress beyond it is dropped, other events wait.
pub const EVENT_CAPACITY: usize = 256;

/// Events a UI reads per [`JobHandle::poll`], so a chatty worker cannot hold up a frame.
const POLL_BUDGET: usize = 512;

/// Identifies a job (the status bar, cancel-by-id); unique in the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl JobId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// How a job ended when it did not succeed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum JobError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
    #[error("the job panicked: {0}")]
    Panicked(String),
}

impl JobError {
    /// A failure with its whole cause chain on one line (`{:#}`).
    pub fn failed(err: impl std::fmt::Display) -> Self {
        JobError::Failed(format!("{err:#}"))
    }

    /// `Cancelled` when `err` is (or was caused by) a [`Cancelled`], otherwise a failure with
    /// `err`'s cause chain on one line.
    pub fn from_error(err: &(dyn std::error::Error + 'static)) -> Self {
        if Cancelled::is_in(err) {
            return JobError::Cancelled;
        }
        let mut text = err.to_string();
        let mut next = err.source();
        while let Some(e) = next {
            text.push_str(": ");
            text.push_str(&e.to_string());
            next = e.source();
        }
        JobError::Failed(text)
    }

    /// Prefixes a failure's text (`"{context}: {text}"`); cancellation and panics stay as they are.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        match self {
            JobError::Failed(text) => JobError::Failed(format!("{context}: {text}")),
            other => other,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        matches!(self, JobError::Cancelled)
    }
}

impl From<Cancelled> for JobError {
    fn from(_: Cancelled) -> Self {
        JobError::Cancelled
    }
}

/// A failure described in words (library code that reports errors as text); never cancellation.
impl From<String> for JobError {
    fn from(text: String) -> Self {
        JobError::Failed(text)
    }
}

impl From<anyhow::Error> for JobError {
    fn from(err: anyhow::Error) -> Self {
        if Cancelled::is_in(err.as_ref()) { JobError::Cancelled } else { JobError::failed(err) }
    }
}

/// What a job sends; `T` is the value a successful job ends with, `P` its own progress type.
#[derive(Debug)]
pub enum JobEvent<T, P = ()> {
    Started {
        id: u64,
        name: String,
    },
    /// Job-specific progress (e.g. `train::TrainProgress`, a partial CKA matrix, a study pair).
    Progress(P),
    /// The last event of every job.
    Finished(Result<T, JobError>),
}

/// The job's side: typed progress, its stage line, its cancel token and its waker.
pub struct Reporter<T, P = ()> {
    tx: SyncSender<JobEvent<T, P>>,
    status: Arc<Status>,
    waker: Option<Waker>,
}

impl<T, P> Clone for Reporter<T, P> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), status: self.status.clone(), waker: self.waker.clone() }
    }
}

impl<T, P> Reporter<T, P> {
    /// A reporter not attached to a job thread (running a job body inline: tests, measuring a
    /// job's own allocations), cancelled through `cancel`; returns the receiving end too.
    pub fn detached(cancel: CancelToken) -> (Self, Receiver<JobEvent<T, P>>) {
        let (tx, rx) = sync_channel(EVENT_CAPACITY);
        let status = Arc::new(Status::new(JobId::next(), "inline".into(), cancel));
        (Self { tx, status, waker: None }, rx)
    }

    pub fn cancel_token(&self) -> &CancelToken {
        &self.status.cancel
    }

    /// True once the job was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.status.cancel.is_cancelled()
    }

    /// `Err(Cancelled)` once the job was asked to stop, for `?` between steps.
    pub fn check(&self) -> Result<(), Cancelled> {
        self.status.cancel.check()
    }

    /// What the job is doing now, with its fraction done when known (the status bar's line).
    pub fn stage(&self, text: impl Into<String>, fraction: Option<f32>) {
        self.status.set_stage(Stage { text: text.into(), fraction });
        self.wake();
    }

    /// Progress that matters (an epoch's metrics, a matrix): waits for room in the channel.
    pub fn progress(&self, progress: P) {
        self.tx.send(JobEvent::Progress(progress)).ok();
        self.wake();
    }

    /// Disposable progress (a batch): dropped when the channel is full or nobody listens.
    pub fn progress_lossy(&self, progress: P) {
        match self.tx.try_send(JobEvent::Progress(progress)) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
        self.wake();
    }

    fn finish(&self, result: Result<T, JobError>) {
        self.tx.send(JobEvent::Finished(result)).ok();
        self.wake();
    }

    fn wake(&self) {
        if let Some(waker) = &self.waker {
            waker();
        }
    }
}

/// A running job: its id, its events, its stage and its cancel token. Dropping it cancels the job.
pub struct JobHandle<T, P = ()> {
    pub id: JobId,
    pub name: String,
    pub events: Receiver<JobEvent<T, P>>,
    pub cancel: CancelToken,
    status: Arc<Status>,
    thread: Option<JoinHandle<()>>,
}

impl<T, P> JobHandle<T, P> {
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_cancelling(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The job's last reported stage.
    pub fn stage(&self) -> Stage {
        self.status.stage()
    }

    /// Whether the worker thread has exited (its `Finished` event is then in the channel).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Non-blocking (a UI frame): hands pending progress to `on_progress` and returns the result
    /// once the job is done. Reads a bounded number of events per call.
    pub fn poll_with(&mut self, mut on_progress: impl FnMut(P)) -> Option<Result<T, JobError>> {
        for _ in 0..POLL_BUDGET {
            match self.events.try_recv() {
                Ok(JobEvent::Started { .. }) => {}
                Ok(JobEvent::Progress(p)) => on_progress(p),
                Ok(JobEvent::Finished(result)) => {
                    self.join();
                    return Some(result);
                }
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => {
                    return Some(Err(JobError::Panicked(format!("{}: the worker stopped unexpectedly", self.name))));
                }
            }
        }
        None
    }

    /// [`Self::poll_with`] for jobs whose progress nobody reads.
    pub fn poll(&mut self) -> Option<Result<T, JobError>> {
        self.poll_with(|_| {})
    }

    /// Blocks until the job ends, calling `on_event` for every event but the last, and returns
    /// the job's result.
    pub fn wait(mut self, mut on_event: impl FnMut(&JobEvent<T, P>)) -> Result<T, JobError> {
        let result = loop {
            match self.events.recv() {
                Ok(JobEvent::Finished(result)) => break result,
                Ok(event) => on_event(&event),
                // The thread always sends `Finished`; a closed channel means it could not.
                Err(_) => break Err(JobError::Panicked("the job ended without reporting".into())),
            }
        };
        self.join();
        result
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

impl<T, P> Drop for JobHandle<T, P> {
    fn drop(&mut self) {
        // Nobody will read the events any more: let the job stop at its next check.
        if self.thread.is_some() {
            self.cancel.cancel();
        }
    }
}

/// Starts `job` on a new thread named `gmnscope-job-<name>`, unlisted and without a waker (the
/// CLI, jobs inside jobs). Its return value (or a panic) becomes the `Finished` event.
pub fn spawn<T, P, F>(name: &str, job: F) -> std::io::Result<JobHandle<T, P>>
where
    T: Send + 'static,
    P: Send + 'static,
    F: FnOnce(&Reporter<T, P>) -> Result<T, JobError> + Send + 'static,
{
    start(name, CancelToken::new(), None, job)
}

/// [`spawn`] with a given cancel token, e.g. a child of the caller's (nested work).
pub fn spawn_with<T, P, F>(name: &str, cancel: CancelToken, job: F) -> std::io::Result<JobHandle<T, P>>
where
    T: Send + 'static,
    P: Send + 'static,
    F: FnOnce(&Reporter<T, P>) -> Result<T, JobError> + Send + 'static,
{
    start(name, cancel, None, job)
}

impl Registry {
    /// Starts `job` listed in this registry, waking its waker whenever it reports.
    pub fn spawn<T, P, F>(&self, name: impl Into<String>, job: F) -> std::io::Result<JobHandle<T, P>>
    where
        T: Send + 'static,
        P: Send + 'static,
        F: FnOnce(&Reporter<T, P>) -> Result<T, JobError> + Send + 'static,
    {
        start(&name.into(), CancelToken::new(), Some(self), job)
    }
}

fn start<T, P, F>(
    name: &str,
    cancel: CancelToken,
    registry: Option<&Registry>,
    job: F,
) -> std::io::Result<JobHandle<T, P>>
where
    T: Send + 'static,
    P: Send + 'static,
    F: FnOnce(&Reporter<T, P>) -> Result<T, JobError> + Send + 'static,
{
    let id = JobId::next();
    let status = Arc::new(Status::new(id, name.to_string(), cancel.clone()));
    let (tx, events) = sync_channel(EVENT_CAPACITY);
    let reporter = Reporter { tx, status: status.clone(), waker: registry.and_then(|r| r.waker().cloned()) };
    reporter.tx.send(JobEvent::Started { id: id.0, name: name.to_string() }).ok();
    let thread_name = format!("gmnscope-job-{}", name.split_whitespace().next().unwrap_or("job"));
    let thread = std::thread::Builder::new().name(thread_name).spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&reporter)));
        let result = result.unwrap_or_else(|panic| Err(JobError::Panicked(panic_message(panic.as_ref()))));
        reporter.finish(result);
    })?;
    if let Some(registry) = registry {
        registry.add(&status);
    }
    Ok(JobHandle { id, name: name.to_string(), events, cancel, status, thread: Some(thread) })
}

/// Runs a job body on the calling thread (tests, measuring a job's own allocations): progress
/// goes nowhere and the job is never cancelled.
pub fn run_here<T, P>(job: impl FnOnce(&Reporter<T, P>) -> Result<T, JobError>) -> Result<T, JobError> {
    let (reporter, events) = Reporter::detached(CancelToken::new());
    // No reader: waiting progress must fail at once instead of filling the channel.
    drop(events);
    job(&reporter)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}
