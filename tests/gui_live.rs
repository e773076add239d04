//! Live CKA in the app (issue 6, item 4), driven headlessly with egui_kittest (lavapipe where
//! there is no GPU): a GMN trained in the GMN tab shows, after its epochs, the block CKA against
//! initialisation in the CKA tab (values equal to the core's on the same checkpoint); "Run study"
//! fills the study view with matrices while the study still runs, then opens the finished
//! directory; and the study's structured events deliver every matrix and the final summaries.
#![cfg(feature = "burn")]

use std::path::Path;
use std::time::Duration;

use burn::tensor::Device;
use egui_kittest::kittest::Queryable as _;
use gmnscope::study::reader::{self, RunPairMatrix};
use gmnscope::study::training_cka;
use gmnscope::study::{self, StudyConfig, StudyEvent};
use gmnscope::train::GraphSet;
use gmnscope::ui::app::commands::{Command, Tab};
use gmnscope::ui::app::state::ThemeChoice;
use gmnscope::ui::gmn::RunStatus;

use crate::gui_support::{harness, settle};

/// The tiny study of `tests/study.rs`, with fewer INR steps.
fn tiny_live_study() -> String {
    crate::study::tiny_study("tiny-live", 10)
}

#[test]
fn live_training_cka_follows_the_gmn_tab_into_the_cka_tab() {
    let run_dir = tempfile::tempdir().expect("temp dir");
    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);
    {
        let gmn = h.state_mut().gmn_mut();
        gmn.demo_count = 16;
        gmn.demo_steps = 10;
        gmn.form.hidden = 8;
        gmn.form.layers = 2;
        gmn.form.batch_size = 4;
        gmn.form.epochs = 3;
        gmn.run_dir = run_dir.path().display().to_string();
        assert!(gmn.live_cka.enabled, "Live CKA is on by default");
    }
    h.state_mut().send(Command::FitDemoZoo);
    settle(&mut h);
    h.state_mut().send(Command::StartTraining);
    // Step until training and the live computations are over, recording what the explorer shows
    // (it follows the run by itself: the CKA tab still shows nothing of the user's).
    let mut titles: Vec<String> = Vec::new();
    for frame in 0.. {
        h.step();
        if let Some(t) = h.state().cka().training_title()
            && titles.last().is_none_or(|l| l != t)
        {
            titles.push(t.to_string());
        }
        if !h.state().is_busy() {
            break;
        }
        assert!(frame < 20_000, "training did not finish: {:?}", h.state().gmn().status);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(h.state().gmn().status, RunStatus::Finished(_)), "{:?}", h.state().gmn().status);
    assert!(h.state().gmn().live_cka.error.is_none(), "{:?}", h.state().gmn().live_cka.error);
    let last = "GMN training: epoch 3 vs initialisation";
    assert_eq!(titles.last().map(String::as_str), Some(last), "titles shown: {titles:?}");
    assert!(titles.iter().all(|t| t.starts_with("GMN training: epoch ")), "{titles:?}");

    // The panel's button shows it in the CKA tab, with the title as the heading.
    h.state_mut().send(Command::ShowTab(Tab::Gmn));
    settle(&mut h);
    h.get_by_label("Show live CKA").click();
    settle(&mut h);
    assert_eq!(h.state().tab(), Tab::Cka);
    assert_eq!(h.state().cka().training_title(), Some(last));
    h.get_by_label(last);
    let shown = h.state().cka().result().expect("the live matrix is shown").clone();
    assert_eq!(shown.rows, ["block1", "block2"]);
    assert_eq!(shown.cols, shown.rows);

    // The same numbers from the core, on the run's final checkpoint and the same probe set.
    let zoo = h.state().gmn().zoo_path.clone();
    let data = GraphSet::from_zoo(Path::new(&zoo), false, |_, _| {}).expect("zoo reads");
    let probe = training_cka::probe_set(&data, training_cka::PROBE_GRAPHS);
    assert_eq!(shown.n, probe.len());
    let device = Device::flex();
    let info = training_cka::run_info(run_dir.path()).expect("run.json");
    let reference = training_cka::initial(&info, &data, &probe, &device).expect("initial");
    let checkpoint = gmnscope::train::checkpoint::latest(run_dir.path()).expect("latest").expect("a checkpoint");
    let (state, acts) = training_cka::at_checkpoint(&checkpoint, &info, &data, &probe, &device).expect("checkpoint");
    assert_eq!(training_cka::position_label(&state), "epoch 3");
    let expected = training_cka::block_cka(&acts, &reference).expect("CKA");
    assert_eq!(shown.matrix, expected, "the app shows the core's matrix");
    // Three epochs of training moved the blocks: not every diagonal entry is still 1.
    let diagonal: Vec<f64> = (0..2).filter_map(|i| expected.get(i, i)).collect();
    assert_eq!(diagonal.len(), 2);
    assert!(diagonal.iter().all(|d| (0.0..=1.0 + 1e-9).contains(d)), "{diagonal:?}");
    assert!(diagonal.iter().any(|d| *d < 1.0 - 1e-6), "the GMN did not move: {diagonal:?}");
}

#[test]
fn run_study_fills_the_study_view_while_it_runs_then_opens_the_results() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, tiny_live_study()).expect("config written");
    let out = dir.path().join("study");
    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Run study…").click();
    h.run_steps(5);
    assert_eq!(h.state().tab(), Tab::Cka);
    h.get_by_label_contains("Built-in demo study"); // the "Run study" window
    h.state_mut().send(Command::RunStudy { config: Some(config), out: out.clone() });
    let (mut partial_seen, mut max_partial) = (false, 0);
    for frame in 0.. {
        h.step();
        let cka = h.state().cka();
        if let (Some(_), Some(view)) = (cka.study_run(), cka.study()) {
            // Matrices are on show while the study still runs (not all of them yet).
            let n = view.data.matrices.len();
            partial_seen |= cka.result().is_some() && (1..15).contains(&n);
            max_partial = max_partial.max(n);
        }
        if frame % 50 == 0 && cka.study_run().is_some() {
            h.get_by_label_contains("Running study");
        }
        if !h.state().is_busy() {
            break;
        }
        assert!(frame < 60_000, "the study did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    settle(&mut h);
    let errors: Vec<_> = h
        .state()
        .toasts()
        .texts()
        .filter(|t| t.0 == gmnscope::ui::widgets::toasts::Level::Error)
        .map(|t| t.1)
        .collect();
    assert!(errors.is_empty(), "error toasts: {errors:?}");
    assert!(partial_seen, "no matrix was shown while the study ran");
    let view = h.state().cka().study().expect("the finished study is open");
    assert!(h.state().cka().study_run().is_none());
    // 3 within-family + 12 cross-family run pairs; the live view had seen matrices arrive.
    assert_eq!(view.data.matrices.len(), 15);
    assert!(max_partial >= 1);
    assert_eq!(view.data.dir, out);
    assert!(view.data.problems.is_empty(), "{:?}", view.data.problems);
    h.get_by_label_contains("Study 'tiny-live'");
}

/// The structured events: one `RunFinished` per run in order, every run-pair matrix of the final
/// results exactly once (as soon as its second run exists), and the last partial summaries equal
/// the final ones.
#[test]
fn study_events_deliver_every_matrix_and_the_final_summaries() {
    let config = StudyConfig::parse(&tiny_live_study(), Path::new("tiny.toml")).expect("config parses");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("study");
    let mut runs_done = Vec::new();
    let mut delivered: Vec<(usize, RunPairMatrix)> = Vec::new();
    let mut last_partial = None;
    let mut lines = 0;
    let cancel = gmnscope::jobs::CancelToken::new();
    let results = study::run_with_events(&config, &out, &cancel, &mut |event| match event {
        StudyEvent::Message(_) => lines += 1,
        StudyEvent::RunFinished { run, done, total, accuracy } => {
            assert_eq!(total, 6);
            assert!((0.0..=1.0).contains(&accuracy));
            runs_done.push((run.label(), done));
        }
        StudyEvent::Pair { matrix, partial } => {
            delivered.push((runs_done.len(), matrix));
            last_partial = Some(partial);
        }
    })
    .expect("the study runs");
    assert!(lines > 6);
    let labels: Vec<&str> = runs_done.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["gmn-s0", "gmn-s1", "mlp-s0", "mlp-s1", "cnn-s0", "cnn-s1"]);
    assert!(runs_done.iter().enumerate().all(|(i, (_, done))| *done == i + 1));
    let data = reader::open(&out, &gmnscope::jobs::CancelToken::new()).expect("results read back");
    assert_eq!(delivered.len(), data.matrices.len());
    for m in &data.matrices {
        let hits: Vec<&(usize, RunPairMatrix)> = delivered.iter().filter(|(_, d)| d.file == m.file).collect();
        assert_eq!(hits.len(), 1, "{} delivered once", m.file);
        let (when, d) = hits[0];
        assert_eq!((&d.a, &d.b, &d.rows, &d.cols), (&m.a, &m.b, &m.rows, &m.cols));
        assert_eq!(d.values, m.values, "{}: the delivered matrix is the file's", m.file);
        // Delivered right after its second run finished.
        let second = labels.iter().position(|l| *l == m.b.label()).expect("run") + 1;
        assert_eq!(*when, second, "{} arrived after run {when}, its second run is run {second}", m.file);
    }
    let partial = last_partial.expect("pairs were delivered");
    let json = |v: serde_json::Result<serde_json::Value>| v.expect("serialisable");
    assert_eq!(json(serde_json::to_value(&partial.cka)), json(serde_json::to_value(&results.cka)));
    assert_eq!(json(serde_json::to_value(&partial.accuracy)), json(serde_json::to_value(&results.accuracy)));
    assert_eq!(json(serde_json::to_value(&partial.agreement)), json(serde_json::to_value(&results.agreement)));
}
