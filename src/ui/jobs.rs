//! Background jobs: a named worker thread, typed events over a bounded channel, a cancel flag.
//!
//! The UI thread never waits on a job: it drains [`JobHandle::poll`] once per frame (in
//! `App::logic`), and the worker wakes it with a repaint request whenever it sends something.
//! Progress events are dropped when the channel is full (the next one supersedes them); the final
//! event always gets through.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

/// Identifies a job for the status bar and for cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobId(pub u64);

impl JobId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a worker reports.
#[derive(Debug)]
pub enum JobEvent<T> {
    Progress { stage: String, fraction: Option<f32> },
    Done(Result<T, String>),
}

/// Wakes the UI when a job has news (an `egui::Context::request_repaint_after` in the app, a no-op
/// in tests without a UI).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// The worker's side: sends progress and checks for cancellation.
pub struct Reporter<T> {
    events: SyncSender<JobEvent<T>>,
    cancel: Arc<AtomicBool>,
    waker: Waker,
}

impl<T> Reporter<T> {
    /// Reports progress; never blocks (a full channel drops this update).
    pub fn progress(&self, stage: impl Into<String>, fraction: Option<f32>) {
        match self.events.try_send(JobEvent::Progress { stage: stage.into(), fraction }) {
            Ok(()) | Err(TrySendError::Full(_)) => (self.waker)(),
            Err(TrySendError::Disconnected(_)) => self.cancel.store(true, Ordering::Relaxed),
        }
    }

    /// True once the UI asked the job to stop (or went away).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The cancel flag itself, for core loops that take an `&AtomicBool` (e.g. `inr::fit_zoo`).
    pub fn cancel_flag(&self) -> &AtomicBool {
        &self.cancel
    }

    /// `Err("cancelled")` once cancelled, for `?` between steps.
    pub fn check(&self) -> Result<(), String> {
        if self.is_cancelled() { Err(CANCELLED.to_string()) } else { Ok(()) }
    }
}

/// The error text of a cancelled job (the UI shows no error toast for it).
pub const CANCELLED: &str = "cancelled";

/// Where the UI keeps a running job.
pub struct JobHandle<T> {
    pub id: JobId,
    pub name: String,
    pub stage: String,
    pub fraction: Option<f32>,
    events: Receiver<JobEvent<T>>,
    cancel: Arc<AtomicBool>,
}

impl<T> JobHandle<T> {
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelling(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Applies pending progress events; returns the result once the job is done. Reads at most a
    /// bounded number of events so a chatty worker cannot hold up a frame.
    pub fn poll(&mut self) -> Option<Result<T, String>> {
        for _ in 0..256 {
            match self.events.try_recv() {
                Ok(JobEvent::Progress { stage, fraction }) => {
                    self.stage = stage;
                    self.fraction = fraction;
                }
                Ok(JobEvent::Done(result)) => return Some(result),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => {
                    return Some(Err(format!("{}: worker stopped unexpectedly", self.name)));
                }
            }
        }
        None
    }
}

/// Starts `work` on a named thread. The closure's result (or a panic, turned into an error)
/// arrives as the final event.
pub fn spawn<T: Send + 'static>(
    name: impl Into<String>,
    waker: Waker,
    work: impl FnOnce(&Reporter<T>) -> Result<T, String> + Send + 'static,
) -> std::io::Result<JobHandle<T>> {
    let name = name.into();
    let (tx, rx) = std::sync::mpsc::sync_channel(64);
    let cancel = Arc::new(AtomicBool::new(false));
    let reporter = Reporter { events: tx, cancel: cancel.clone(), waker };
    let thread_name = format!("gmnscope-job-{}", name.split_whitespace().next().unwrap_or("job"));
    std::thread::Builder::new().name(thread_name).spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&reporter)))
            .unwrap_or_else(|panic| Err(format!("internal error: {}", panic_message(&panic))));
        // The final event waits for room (the UI drains every frame); if the UI is gone, fine.
        reporter.events.send(JobEvent::Done(result)).ok();
        (reporter.waker)();
    })?;
    Ok(JobHandle { id: JobId::next(), name, stage: "starting".into(), fraction: None, events: rx, cancel })
}

/// Runs a job body on the calling thread (tests, and measuring a job's own allocations): progress
/// goes nowhere and the job is never cancelled.
pub fn run_here<T>(work: impl FnOnce(&Reporter<T>) -> Result<T, String>) -> Result<T, String> {
    let (tx, _rx) = std::sync::mpsc::sync_channel(1);
    let reporter = Reporter { events: tx, cancel: Arc::new(AtomicBool::new(false)), waker: Arc::new(|| {}) };
    work(&reporter)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "worker panicked".into())
}

/// A waker that asks egui for a repaint soon (batches bursts of events into one frame).
pub fn egui_waker(ctx: &egui::Context) -> Waker {
    let ctx = ctx.clone();
    Arc::new(move || ctx.request_repaint_after(Duration::from_millis(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait<T>(job: &mut JobHandle<T>) -> Result<T, String> {
        for _ in 0..2000 {
            if let Some(r) = job.poll() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("job did not finish");
    }

    #[test]
    fn progress_then_result_arrive_in_order() {
        let mut job = spawn("test", Arc::new(|| {}), |r: &Reporter<u32>| {
            r.progress("half", Some(0.5));
            Ok(7)
        })
        .unwrap();
        assert_eq!(wait(&mut job), Ok(7));
        assert_eq!(job.stage, "half");
    }

    #[test]
    fn cancellation_is_seen_by_the_worker_and_panics_become_errors() {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let mut job = spawn("cancel", Arc::new(|| {}), move |r: &Reporter<()>| {
            go_rx.recv().ok();
            r.check()
        })
        .unwrap();
        job.cancel();
        go_tx.send(()).unwrap();
        assert_eq!(wait(&mut job), Err(CANCELLED.to_string()));
        let mut bad = spawn("panic", Arc::new(|| {}), |_: &Reporter<()>| panic!("boom")).unwrap();
        assert!(wait(&mut bad).unwrap_err().contains("boom"));
    }
}
