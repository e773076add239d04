//! Cancellation: one [`CancelToken`] type for every job and every library loop that can stop
//! early, and one [`Cancelled`] error that says so by its type.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared cancellation flag: cheap to clone (one `Arc`), checked by the work between steps.
///
/// [`CancelToken::child`] makes a token for nested work (a study's training runs, a job started
/// by a job): cancelling the parent cancels every child, cancelling a child leaves the parent
/// running. A token never becomes un-cancelled.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<Node>);

#[derive(Debug, Default)]
struct Node {
    flag: AtomicBool,
    parent: Option<CancelToken>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token that is cancelled with `self` (or on its own).
    pub fn child(&self) -> Self {
        Self(Arc::new(Node { flag: AtomicBool::new(false), parent: Some(self.clone()) }))
    }

    /// Asks the work to stop at its next check.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::Release);
    }

    /// True once this token or any of its parents was cancelled.
    pub fn is_cancelled(&self) -> bool {
        // Parent chains are a few links long (a job, the job it started).
        let mut node = &self.0;
        loop {
            if node.flag.load(Ordering::Acquire) {
                return true;
            }
            match &node.parent {
                Some(parent) => node = &parent.0,
                None => return false,
            }
        }
    }

    /// `Err(Cancelled)` once cancelled, for `?` between steps.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() { Err(Cancelled) } else { Ok(()) }
    }
}

/// The error of work stopped through its [`CancelToken`]. Callers recognise it by type
/// ([`Cancelled::is_in`] for an error chain), never by its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

impl Cancelled {
    /// True when `err` or one of its sources is a [`Cancelled`] (e.g. inside an `anyhow` context).
    pub fn is_in(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(err);
        while let Some(e) = next {
            if e.is::<Cancelled>() {
                return true;
            }
            next = e.source();
        }
        false
    }
}
