use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::*;

/// Polls as a UI frame would until the job ends.
fn settle<T, P>(job: &mut JobHandle<T, P>, mut on_progress: impl FnMut(P)) -> Result<T, JobError> {
    loop {
        if let Some(result) = job.poll_with(&mut on_progress) {
            return result;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Epoch(u64),
    Saved(u64),
}

#[test]
fn events_arrive_in_order_and_finish_carries_the_result() {
    let handle = spawn("count", |tx: &Reporter<u32, Step>| {
        for i in 0..3 {
            tx.progress(Step::Epoch(i));
        }
        tx.progress(Step::Saved(30));
        Ok(42)
    })
    .unwrap();
    let first = handle.events.recv().unwrap();
    assert!(matches!(first, JobEvent::Started { ref name, .. } if name == "count"));
    let mut seen = Vec::new();
    let result = handle.wait(|e| match e {
        JobEvent::Progress(Step::Epoch(i)) => seen.push(*i),
        JobEvent::Progress(Step::Saved(step)) => seen.push(1000 + step),
        _ => {}
    });
    assert_eq!(result, Ok(42));
    assert_eq!(seen, vec![0, 1, 2, 1030]);
}

#[test]
fn cancellation_is_seen_between_steps() {
    let handle = spawn("spin", |tx: &Reporter<()>| {
        for _ in 0..10_000 {
            tx.check()?;
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
    let handle = spawn("boom", |_tx: &Reporter<()>| -> Result<(), JobError> { panic!("bad input") }).unwrap();
    assert_eq!(handle.wait(|_| {}), Err(JobError::Panicked("bad input".into())));
}

#[test]
fn lossy_progress_never_blocks_a_job_whose_listener_lags() {
    let loop_done = Arc::new(AtomicBool::new(false));
    let flag = loop_done.clone();
    let handle = spawn("chatty", move |tx: &Reporter<usize, usize>| {
        for i in 0..(EVENT_CAPACITY * 4) {
            tx.progress_lossy(i);
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

#[test]
fn polling_applies_the_stage_and_hands_progress_over() {
    let mut job = spawn("test", |r: &Reporter<u32, &'static str>| {
        r.stage("half", Some(0.5));
        r.progress("a matrix");
        Ok(7)
    })
    .unwrap();
    let mut got = Vec::new();
    assert_eq!(settle(&mut job, |p| got.push(p)), Ok(7));
    assert_eq!(got, vec!["a matrix"]);
    assert_eq!(job.stage(), Stage { text: "half".into(), fraction: Some(0.5) });
}

#[test]
fn a_cancelled_job_is_cancelled_by_type_and_panics_become_errors() {
    let (go_tx, go_rx) = mpsc::sync_channel::<()>(1);
    let mut job = spawn("cancel", move |r: &Reporter<()>| {
        go_rx.recv().ok();
        Ok(r.check()?)
    })
    .unwrap();
    job.cancel();
    assert!(job.is_cancelling());
    go_tx.send(()).unwrap();
    assert_eq!(settle(&mut job, |_| {}), Err(JobError::Cancelled));
    let mut bad = spawn("panic", |_: &Reporter<()>| panic!("boom")).unwrap();
    assert!(settle(&mut bad, |_| {}).unwrap_err().to_string().contains("boom"));
}

#[test]
fn an_error_whose_text_is_cancelled_is_a_failure() {
    // Only the type says "cancelled": a real error with that text is reported as one.
    let mut job = spawn("liar", |_: &Reporter<()>| Err(anyhow::anyhow!("cancelled").into())).unwrap();
    assert_eq!(settle(&mut job, |_| {}), Err(JobError::Failed("cancelled".into())));
    let wrapped: JobError = anyhow::Error::new(Cancelled).context("reading study.toml").into();
    assert_eq!(wrapped, JobError::Cancelled, "a Cancelled inside a context is still cancellation");
    let io = std::io::Error::other("disk full");
    assert_eq!(JobError::from_error(&io), JobError::Failed("disk full".into()));
}

#[test]
fn child_tokens_follow_their_parent_but_not_the_other_way() {
    let parent = CancelToken::new();
    let (a, b) = (parent.child(), parent.child());
    let grandchild = a.child();
    a.cancel();
    assert!(a.is_cancelled() && grandchild.is_cancelled());
    assert!(!parent.is_cancelled() && !b.is_cancelled(), "a child's cancel stays in its subtree");
    parent.cancel();
    assert!(b.is_cancelled());
    assert_eq!(b.check(), Err(Cancelled));
    // A job started with a child token stops when the parent is cancelled.
    let outer = CancelToken::new();
    let job = spawn_with("nested", outer.child(), |r: &Reporter<()>| {
        loop {
            r.check()?;
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .unwrap();
    outer.cancel();
    assert_eq!(job.wait(|_| {}), Err(JobError::Cancelled));
}

#[test]
fn the_registry_lists_running_jobs_cancels_by_id_and_wakes_on_reports() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let registry = Registry::new(Some(Arc::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    })));
    let (go_tx, go_rx) = mpsc::sync_channel::<()>(1);
    let mut job = registry
        .spawn("wait for it", move |r: &Reporter<(), u8>| {
            r.stage("waiting", Some(0.25));
            go_rx.recv().ok();
            loop {
                r.check()?;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    let mut other = registry.spawn("quick", |_: &Reporter<u8>| Ok(1)).unwrap();
    assert_eq!(settle(&mut other, |_| {}), Ok(1));
    drop(other);
    let listed = registry.summaries();
    assert_eq!(listed.len(), 1, "a finished job whose handle is gone is not listed: {listed:?}");
    assert_eq!(listed[0].id, job.id);
    assert!(registry.cancel(job.id));
    assert!(!registry.cancel(JobId(u64::MAX)));
    go_tx.send(()).unwrap();
    assert_eq!(settle(&mut job, |_| {}), Err(JobError::Cancelled));
    assert!(registry.summaries()[0].cancelling);
    // The stage, the quick job's finish and this one's finish each woke the UI.
    assert!(wakes.load(Ordering::Relaxed) >= 3);
    drop(job);
    assert!(registry.is_empty());
}

#[test]
fn run_here_never_blocks_on_progress_nobody_reads() {
    let result = run_here(|r: &Reporter<usize, usize>| {
        for i in 0..(EVENT_CAPACITY * 2) {
            r.progress(i);
        }
        Ok(3)
    });
    assert_eq!(result, Ok(3));
}
