//! Background jobs: a named worker thread, typed events over a bounded channel, cancellation.
//!
//! Owns: [`spawn`], [`JobHandle`], [`JobEvent`], [`CancelToken`], [`EventSender`], [`JobError`].
//! Used by the CLI (`train`) and the GUI alike; it knows nothing about what a job computes, and it
//! must not import burn, `ui` or any numeric module.
//!
//! A job is a closure run on its own named thread (`std::thread::Builder`). It reports through an
//! [`EventSender`]: `Started` is sent for it, then any number of `Progress` / `Metrics` /
//! `CheckpointSaved` events, and exactly one final `Finished(Result<T, JobError>)`, also when the
//! job panics. The channel is bounded: frequent, disposable events (`Progress`) are dropped when
//! the receiver lags; events that matter (`Metrics`, `CheckpointSaved`, `Finished`) wait for room.
//!
//! Cancellation is a shared flag ([`CancelToken`]) the job checks between steps (once per batch
//! for training); a cancelled job ends with `Finished(Err(JobError::Cancelled))`. Dropping the
//! receiver does not stop a job by itself: call [`JobHandle::cancel`] (dropping a `JobHandle`
//! cancels its job).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

/// Room in a job's event channel; progress events beyond it are dropped, others wait.
pub const EVENT_CAPACITY: usize = 256;

/// A shared cancellation flag: cheap to clone, checked by the job between steps.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the job to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// `Err(JobError::Cancelled)` once cancelled, for `?` in job loops.
    pub fn check(&self) -> Result<(), JobError> {
        if self.is_cancelled() { Err(JobError::Cancelled) } else { Ok(()) }
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
}

/// Where a job is: `done` of `total` units (steps), with a short description of the last one.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    /// Optional scalars of the last unit (e.g. `loss`, `accuracy` of the last batch).
    pub values: Vec<(String, f64)>,
    pub message: String,
}

/// A set of named metrics at one point of the job (e.g. the end of an epoch).
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

/// What a job reports; `T` is the value a successful job ends with.
#[derive(Debug)]
pub enum JobEvent<T> {
    Started {
        id: u64,
        name: String,
    },
    Progress(Progress),
    Metrics(Metrics),
    /// A checkpoint is complete on disk (written to a temp file, then renamed into place).
    CheckpointSaved {
        path: PathBuf,
        step: u64,
    },
    /// The last event of every job.
    Finished(Result<T, JobError>),
}

/// The job's end of the channel, with the cancellation flag.
pub struct EventSender<T> {
    tx: SyncSender<JobEvent<T>>,
    cancel: CancelToken,
}

impl<T> Clone for EventSender<T> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), cancel: self.cancel.clone() }
    }
}

impl<T> EventSender<T> {
    /// A sender not attached to a job thread (for running a job body inline, e.g. in tests);
    /// returns the receiving end too.
    pub fn detached(cancel: CancelToken) -> (Self, Receiver<JobEvent<T>>) {
        let (tx, rx) = sync_channel(EVENT_CAPACITY);
        (Self { tx, cancel }, rx)
    }

    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// `Err(Cancelled)` once the job was asked to stop.
    pub fn check_cancelled(&self) -> Result<(), JobError> {
        self.cancel.check()
    }

    /// Disposable progress: dropped when the channel is full or nobody listens.
    pub fn progress(&self, progress: Progress) {
        match self.tx.try_send(JobEvent::Progress(progress)) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Metrics wait for room in the channel (a listener that went away is ignored).
    pub fn metrics(&self, metrics: Metrics) {
        self.tx.send(JobEvent::Metrics(metrics)).ok();
    }

    pub fn checkpoint_saved(&self, path: PathBuf, step: u64) {
        self.tx.send(JobEvent::CheckpointSaved { path, step }).ok();
    }

    fn finish(&self, result: Result<T, JobError>) {
        self.tx.send(JobEvent::Finished(result)).ok();
    }
}

/// A running job: its id, its events and its cancellation flag.
pub struct JobHandle<T> {
    pub id: u64,
    pub name: String,
    pub events: Receiver<JobEvent<T>>,
    pub cancel: CancelToken,
    thread: Option<JoinHandle<()>>,
}

impl<T> JobHandle<T> {
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether the worker thread has exited (its `Finished` event is then in the channel).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Blocks until the job ends, calling `on_event` for every event but the last, and returns
    /// the job's result.
    pub fn wait(mut self, mut on_event: impl FnMut(&JobEvent<T>)) -> Result<T, JobError> {
        let result = loop {
            match self.events.recv() {
                Ok(JobEvent::Finished(result)) => break result,
                Ok(event) => on_event(&event),
                // The thread always sends `Finished`; a closed channel means it could not.
                Err(_) => break Err(JobError::Panicked("the job ended without reporting".into())),
            }
        };
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
        result
    }
}

impl<T> Drop for JobHandle<T> {
    fn drop(&mut self) {
        // Nobody will read the events any more: let the job stop at its next check.
        if self.thread.is_some() {
            self.cancel.cancel();
        }
    }
}

static NEXT_JOB_ID: AtomicU64 = AtomicU64::new(1);

/// Starts `job` on a new thread named `gmnscope-job-<name>`. The job reports through the
/// [`EventSender`] it receives; its return value (or a panic) becomes the `Finished` event.
pub fn spawn<T, F>(name: &str, job: F) -> std::io::Result<JobHandle<T>>
where
    T: Send + 'static,
    F: FnOnce(&EventSender<T>) -> Result<T, JobError> + Send + 'static,
{
    let id = NEXT_JOB_ID.fetch_add(1, Ordering::Relaxed);
    let cancel = CancelToken::new();
    let (sender, events) = EventSender::detached(cancel.clone());
    sender.tx.send(JobEvent::Started { id, name: name.to_string() }).ok();
    let thread = std::thread::Builder::new().name(format!("gmnscope-job-{name}")).spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&sender)));
        let result = result.unwrap_or_else(|panic| Err(JobError::Panicked(panic_message(panic.as_ref()))));
        sender.finish(result);
    })?;
    Ok(JobHandle { id, name: name.to_string(), events, cancel, thread: Some(thread) })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_arrive_in_order_and_finish_carries_the_result() {
        let handle = spawn("count", |tx: &EventSender<u32>| {
            for i in 0..3 {
                tx.metrics(Metrics {
                    scope: "epoch".into(),
                    index: i,
                    step: i * 10,
                    values: vec![("loss".into(), 1.0)],
                });
            }
            tx.checkpoint_saved(PathBuf::from("/tmp/x"), 30);
            Ok(42)
        })
        .unwrap();
        let first = handle.events.recv().unwrap();
        assert!(matches!(first, JobEvent::Started { ref name, .. } if name == "count"));
        let mut seen = Vec::new();
        let result = handle.wait(|e| match e {
            JobEvent::Metrics(m) => seen.push(m.index),
            JobEvent::CheckpointSaved { step, .. } => seen.push(1000 + step),
            _ => {}
        });
        assert_eq!(result, Ok(42));
        assert_eq!(seen, vec![0, 1, 2, 1030]);
    }

    #[test]
    fn cancellation_is_seen_between_steps() {
        let handle = spawn("spin", |tx: &EventSender<()>| {
            for _ in 0..10_000 {
                tx.check_cancelled()?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(JobError::Failed("was never cancelled".into()))
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        handle.cancel();
        assert_eq!(handle.wait(|_| {}), Err(JobError::Cancelled));
    }

    #[test]
    fn a_panicking_job_still_finishes() {
        let handle = spawn("boom", |_tx: &EventSender<()>| -> Result<(), JobError> { panic!("bad input") }).unwrap();
        assert_eq!(handle.wait(|_| {}), Err(JobError::Panicked("bad input".into())));
    }

    #[test]
    fn progress_never_blocks_a_job_whose_listener_lags() {
        let loop_done = Arc::new(AtomicBool::new(false));
        let flag = loop_done.clone();
        let handle = spawn("chatty", move |tx: &EventSender<usize>| {
            for i in 0..(EVENT_CAPACITY * 4) {
                tx.progress(Progress { done: i as u64, total: 0, values: Vec::new(), message: String::new() });
            }
            flag.store(true, Ordering::Release);
            Ok(7)
        })
        .unwrap();
        // Read nothing until the loop is over: progress must not have waited for the full channel.
        let start = std::time::Instant::now();
        while !loop_done.load(Ordering::Acquire) {
            assert!(start.elapsed() < Duration::from_secs(10), "progress blocked the job");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(handle.wait(|_| {}), Ok(7));
    }
}
