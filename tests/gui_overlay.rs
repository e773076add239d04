//! The GMN tab's trained-GMN section and the graph view's activation overlay, driven headlessly
//! with egui_kittest on wgpu: a GMN run written with the library API loads, runs on the open
//! demo SIREN in a job, shows its prediction (the CLI's computation on the same file), and colours
//! the drawn graph's nodes with exactly the reference node features (layer, PCA / norm / channel);
//! switching the layer or colouring changes what the renderer is given. Bad run directories,
//! models that do not fit and "no model open" end as error toasts, never panics. `--gmn RUN`
//! (`StartupOptions::gmn`) does all of that at start-up, in the app and in the real binary.
#![cfg(feature = "burn")]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use burn::tensor::Device;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use gmnscope::analysis::node_colouring::{self, ColourRange, NodeFeatures};
use gmnscope::models::{Gmn, GmnBatch, GmnConfig};
use gmnscope::train::checkpoint::{self, RUN_FORMAT};
use gmnscope::train::{RunInfo, Task, TrainConfig, TrainState};
use gmnscope::ui::app::commands::{Command, Tab};
use gmnscope::ui::app::state::ThemeChoice;
use gmnscope::ui::gmn::trained::Prediction;
use gmnscope::ui::model::graph_view::overlay::{NodeOverlay, OverlayMode, OverlaySettings};
use gmnscope::ui::widgets::toasts::Level;
use gmnscope::ui::{App, StartupOptions};

const CLASSES: usize = 10;
const GMN_LAYERS: usize = 2;
const HIDDEN: usize = 8;

fn harness() -> Harness<'static, App> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .wgpu()
        .build_eframe(|cc| App::new(cc, StartupOptions { theme: Some(ThemeChoice::Dark), ..StartupOptions::default() }))
}

/// Steps frames until no job runs, then a few more to lay out.
fn settle(h: &mut Harness<'static, App>) {
    for _ in 0..3000 {
        h.step();
        if !h.state().is_busy() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!h.state().is_busy(), "jobs did not finish");
    h.run_steps(4);
}

/// A classification run for SIRENs with three weight layers (the demo SIREN 2-32-32-1), written
/// the way the trainer writes one: run.json plus a checkpoint behind `latest`.
fn write_run(dir: &Path) {
    let gmn = GmnConfig {
        hidden: HIDDEN,
        layers: GMN_LAYERS,
        outputs: CLASSES,
        weight_scales: vec![4.0, 20.0, 20.0],
        seed: 11,
        ..GmnConfig::default()
    };
    let model = Gmn::new(&gmn, &Device::flex()).expect("a valid GMN");
    let state = TrainState::default();
    checkpoint::save(dir, &model, None, &state).expect("checkpoint written");
    let info = RunInfo {
        format: RUN_FORMAT.into(),
        gmn,
        task: Task::Classification { classes: CLASSES },
        train: TrainConfig::default(),
        target_mean: 0.0,
        target_std: 1.0,
        zoo: None,
    };
    checkpoint::write_run_info(dir, &info).expect("run.json written");
}

/// What `gmnscope infer` computes for the demo SIREN: probabilities and every layer's node
/// features (`[N * h]`, node-major).
fn reference(run: &Path) -> (Vec<f32>, Vec<Vec<f32>>) {
    let device = Device::flex();
    let (info, model) = gmnscope::train::load_run(run, &device).expect("run loads");
    let store = gmnscope::demo::open("siren").expect("demo opens");
    let (topology, weights) = gmnscope::train::dataset::graph_input(&store, info.gmn.undirected).expect("input");
    let batch_topology = model.topology(&[&topology], &device).expect("topology");
    let batch = GmnBatch::shared(Arc::new(batch_topology), &[weights.as_slice()], &device).expect("batch");
    let out = model.forward_states(&batch, true);
    let probabilities = gmnscope::analysis::softmax(&gmnscope::train::step::to_vec(out.output));
    let states = out.node_states.into_iter().map(gmnscope::train::step::to_vec).collect();
    (probabilities, states)
}

fn drawn(h: &Harness<'static, App>) -> Arc<NodeOverlay> {
    h.state().graph_view().drawn_overlay().cloned().expect("the renderer was given an overlay")
}

fn set_overlay(h: &mut Harness<'static, App>, settings: OverlaySettings) -> Arc<NodeOverlay> {
    h.state_mut().send(Command::SetNodeOverlay(settings));
    h.run_steps(3);
    drawn(h)
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-5, "node {i}: {g} vs {w}");
    }
}

#[test]
fn gmn_runs_on_the_open_model_and_its_activations_colour_the_graph() {
    let run = tempfile::tempdir().expect("temp dir");
    write_run(run.path());
    let (probabilities, states) = reference(run.path());
    assert_eq!(states.len(), GMN_LAYERS + 1);

    let mut h = harness();
    settle(&mut h);
    h.state_mut().send(Command::LoadGmn(run.path().to_path_buf()));
    settle(&mut h);
    assert_eq!(h.state().tab(), Tab::Gmn);
    assert!(h.state().gmn().trained.loaded.is_some(), "loaded: {:?}", h.state().gmn().trained.error);
    // The config is shown: run directory, task, classes.
    h.get_by_label(&run.path().display().to_string());
    h.get_by_label("classification");

    h.get_by_label("Run on open model").click();
    h.run_steps(2);
    settle(&mut h);
    let trained = &h.state().gmn().trained;
    let inference = trained.inference.as_ref().unwrap_or_else(|| panic!("no result: {:?}", trained.error));
    assert_eq!(inference.model_title, "demo: siren");
    let Prediction::Class { class, probabilities: shown } = &inference.prediction else { panic!("a class") };
    assert_close(shown, &probabilities);
    let expected_class = gmnscope::train::metrics::argmax(&probabilities);
    assert_eq!(*class, expected_class);
    h.get_by_label(&format!("Prediction: class {expected_class} (p = {:.3})", probabilities[expected_class]));

    if let Ok(dir) = std::env::var("GMNSCOPE_GUI_SHOTS") {
        let image = h.render().expect("render");
        image.save(Path::new(&dir).join("gmn_prediction.png")).expect("save");
    }

    // The overlay: last GMN layer, PCA, on the model view.
    h.get_by_label("Show the activation overlay on the graph").click();
    h.run_steps(3);
    assert_eq!(h.state().tab(), Tab::Model);
    h.get_by_label("GMN node activation");
    h.get_by_label("Colour nodes by GMN activation");
    let first = drawn(&h);
    let nodes = h.state().active_model().and_then(|m| m.model.graph.as_ref().ok()).expect("graph").graph.num_nodes();
    assert_eq!(first.values.len(), nodes, "one value per drawn node");
    assert_eq!((first.settings.layer, first.settings.mode), (GMN_LAYERS, OverlayMode::Pca));
    let reference_values = |layer: usize, mode: OverlayMode, channel: usize| {
        let f = NodeFeatures::new(&states[layer], nodes, HIDDEN).expect("features");
        let (raw, signed) = match mode {
            OverlayMode::Pca => (node_colouring::first_principal_component(f).scores, true),
            OverlayMode::Norm => (node_colouring::l2_norms(f), false),
            OverlayMode::Channel => (node_colouring::channel(f, channel).expect("channel"), true),
        };
        node_colouring::normalise_all(&raw, ColourRange::robust(&raw, signed))
    };
    assert_close(&first.values, &reference_values(GMN_LAYERS, OverlayMode::Pca, 0));
    assert!(h.query_all_by_label(&format!("{:+.3}", first.range.hi)).next().is_some(), "the legend states the range");

    // Switching layer and colouring changes what the renderer draws, to the reference values.
    let geometry = h.state().active_model().and_then(|m| m.model.graph.as_ref().ok()).expect("graph").geometry.clone();
    let colours = |o: &NodeOverlay| geometry.node_instances(Some(&o.values));
    let encoder = set_overlay(&mut h, OverlaySettings { layer: 0, ..first.settings });
    assert_ne!(encoder.key, first.key);
    assert_close(&encoder.values, &reference_values(0, OverlayMode::Pca, 0));
    assert_ne!(colours(&encoder), colours(&first), "another layer, other node colours");
    let norm = set_overlay(&mut h, OverlaySettings { mode: OverlayMode::Norm, ..encoder.settings });
    assert_close(&norm.values, &reference_values(0, OverlayMode::Norm, 0));
    assert!(norm.values.iter().all(|t| (0.0..=1.0).contains(t)) && !norm.range.signed);
    let channel =
        set_overlay(&mut h, OverlaySettings { layer: 1, mode: OverlayMode::Channel, channel: 3, ..norm.settings });
    assert_close(&channel.values, &reference_values(1, OverlayMode::Channel, 3));
    assert_ne!(colours(&channel), colours(&norm));

    // Off: the renderer gets no overlay and the type legend returns.
    h.get_by_label("Colour nodes by GMN activation").click();
    h.run_steps(3);
    assert!(h.state().graph_view().drawn_overlay().is_none());
    assert!(h.query_by_label("GMN node activation").is_none());
    set_overlay(&mut h, OverlaySettings { enabled: true, ..first.settings });
    assert!(h.state().toasts().texts().all(|(level, _)| level != Level::Error));
    h.snapshot("model_view_gmn_overlay");
    if let Ok(dir) = std::env::var("GMNSCOPE_GUI_SHOTS") {
        let image = h.render().expect("render");
        image.save(Path::new(&dir).join("gmn_overlay.png")).expect("save");
    }
}

#[test]
fn bad_runs_unfit_models_and_no_model_are_error_toasts() {
    let errors = |h: &Harness<'static, App>| -> Vec<String> {
        h.state().toasts().texts().filter(|(l, _)| *l == Level::Error).map(|(_, t)| t.to_string()).collect()
    };
    let mut h = harness();
    settle(&mut h);
    // Nothing loaded yet.
    h.state_mut().send(Command::RunGmnOnModel);
    h.run_steps(2);
    assert!(errors(&h).iter().any(|e| e.contains("Load a trained GMN first")), "{:?}", errors(&h));

    // A directory that is not a run, and one with a broken run.json.
    let empty = tempfile::tempdir().expect("temp dir");
    h.state_mut().send(Command::LoadGmn(empty.path().to_path_buf()));
    settle(&mut h);
    assert!(h.state().gmn().trained.loaded.is_none());
    let e = errors(&h);
    assert!(e.iter().any(|t| t.contains("run.json") && t.contains("is this a training run directory")), "{e:?}");
    let shown = h.state().gmn().trained.error.clone().unwrap_or_default();
    assert!(shown.contains("is this a training run directory"), "the panel shows it too: {shown}");
    std::fs::write(empty.path().join("run.json"), b"{\"format\": 3").expect("write");
    h.state_mut().send(Command::LoadGmn(empty.path().to_path_buf()));
    settle(&mut h);
    assert!(errors(&h).iter().any(|t| t.contains("not a run description")), "{:?}", errors(&h));
    assert!(h.state().gmn().trained.loaded.is_none());

    // A SIREN GMN on the demo ResNet: refused, with the reason.
    let run = tempfile::tempdir().expect("temp dir");
    write_run(run.path());
    h.state_mut().send(Command::LoadGmn(run.path().to_path_buf()));
    settle(&mut h);
    assert!(h.state().gmn().trained.loaded.is_some());
    h.state_mut().send(Command::SelectModel(1));
    h.state_mut().send(Command::RunGmnOnModel);
    h.run_steps(2);
    settle(&mut h);
    let e = errors(&h);
    assert!(
        e.iter().any(|t| t.starts_with("demo: resnet")
            && t.contains("this GMN was trained on INRs")
            && t.contains("this file has conv layers and BatchNorm")),
        "{e:?}"
    );
    assert!(h.state().gmn().trained.inference.is_none());

    // No model open.
    for _ in 0..3 {
        h.state_mut().send(Command::CloseActiveModel);
    }
    h.run_steps(2);
    assert!(h.state().active_model().is_none());
    h.state_mut().send(Command::RunGmnOnModel);
    h.run_steps(2);
    assert!(errors(&h).iter().any(|t| t.starts_with("No model is open")), "{:?}", errors(&h));
}

fn harness_with(options: StartupOptions) -> Harness<'static, App> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .wgpu()
        .build_eframe(move |cc| App::new(cc, StartupOptions { theme: Some(ThemeChoice::Dark), ..options }))
}

/// `--gmn RUN demo:siren`: once the model is open the app loads the run, runs it on the model and
/// shows the overlay (last GMN layer, PCA, the reference values) on the Model tab, with no clicks.
#[test]
fn startup_gmn_loads_runs_and_overlays_the_active_model() {
    let run = tempfile::tempdir().expect("temp dir");
    write_run(run.path());
    let (_, states) = reference(run.path());
    let mut h = harness_with(StartupOptions {
        files: vec!["demo:siren".into()],
        gmn: Some(run.path().to_path_buf()),
        ..StartupOptions::default()
    });
    settle(&mut h);
    assert!(h.state().startup_finished());
    let titles: Vec<String> = h.state().models().map(|m| m.title()).collect();
    assert_eq!(titles, ["demo: siren"], "`demo:NAME` opens the embedded model");
    assert_eq!(h.state().tab(), Tab::Model, "back on the model view");
    let errors: Vec<_> = h.state().toasts().texts().filter(|(l, _)| *l == Level::Error).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let overlay = drawn(&h);
    assert!(overlay.settings.enabled);
    assert_eq!((overlay.settings.layer, overlay.settings.mode), (GMN_LAYERS, OverlayMode::Pca));
    let nodes = h.state().active_model().and_then(|m| m.model.graph.as_ref().ok()).expect("graph").graph.num_nodes();
    let f = NodeFeatures::new(&states[GMN_LAYERS], nodes, HIDDEN).expect("features");
    let raw = node_colouring::first_principal_component(f).scores;
    assert_close(&overlay.values, &node_colouring::normalise_all(&raw, ColourRange::robust(&raw, true)));
    h.get_by_label("GMN node activation");
}

/// A directory that is not a run, and a model the GMN does not fit: an error toast each, the
/// sequence ends (nothing stays busy, so a scripted screenshot still happens), no overlay, and
/// the tab asked for with `--tab` is shown.
#[test]
fn startup_gmn_failures_are_toasts_and_end_the_sequence() {
    let errors = |h: &Harness<'static, App>| -> Vec<String> {
        h.state().toasts().texts().filter(|(l, _)| *l == Level::Error).map(|(_, t)| t.to_string()).collect()
    };
    let empty = tempfile::tempdir().expect("temp dir");
    let mut h = harness_with(StartupOptions { gmn: Some(empty.path().to_path_buf()), ..StartupOptions::default() });
    settle(&mut h);
    assert!(h.state().startup_finished());
    let e = errors(&h);
    assert!(e.iter().any(|t| t.contains("is this a training run directory")), "{e:?}");
    assert_eq!(h.state().tab(), Tab::Model);
    assert!(h.state().graph_view().drawn_overlay().is_none());

    let run = tempfile::tempdir().expect("temp dir");
    write_run(run.path());
    let mut h = harness_with(StartupOptions {
        files: vec!["demo:resnet".into()],
        gmn: Some(run.path().to_path_buf()),
        tab: Some(Tab::Gmn),
        ..StartupOptions::default()
    });
    settle(&mut h);
    assert!(h.state().startup_finished());
    assert!(h.state().gmn().trained.loaded.is_some(), "the run itself loads");
    let e = errors(&h);
    assert!(
        e.iter().any(|t| t.starts_with("demo: resnet")
            && t.contains("this GMN was trained on INRs")
            && t.contains("this file has conv layers and BatchNorm")),
        "{e:?}"
    );
    assert!(h.state().gmn().trained.inference.is_none());
    assert_eq!(h.state().tab(), Tab::Gmn, "--tab wins");
}

/// The real binary under `xvfb-run`: `--gmn RUN demo:siren --screenshot OUT.png` waits for the
/// GMN to run, writes a PNG and exits 0.
#[test]
fn binary_with_gmn_writes_a_screenshot_under_xvfb() {
    if std::process::Command::new("xvfb-run").arg("--help").output().is_err() {
        eprintln!("skipped: xvfb-run is not installed (scripts/setup.sh installs it)");
        return;
    }
    let run = tempfile::tempdir().expect("temp dir");
    write_run(run.path());
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("overlay.png");
    let output = std::process::Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1400x860x24"])
        .arg(crate::common::gmnscope_bin())
        .arg("--gmn")
        .arg(run.path())
        .arg("demo:siren")
        .arg("--screenshot")
        .arg(&out)
        .env("GMNSCOPE_THEME", "dark")
        .output()
        .expect("xvfb-run starts");
    assert!(output.status.success(), "exit {}: {}", output.status, String::from_utf8_lossy(&output.stderr));
    let bytes = std::fs::read(&out).expect("screenshot written");
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("valid PNG data");
    assert!(info.width >= 640 && info.height >= 400, "window-sized: {}x{}", info.width, info.height);
}

/// `--gmn` naming no directory is a command-line mistake: one line naming the path, exit 2, no
/// window (so no display is needed) and no screenshot.
#[test]
fn binary_with_a_missing_gmn_run_fails_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (missing, out) = (dir.path().join("no-such-run"), dir.path().join("shot.png"));
    let output = std::process::Command::new(crate::common::gmnscope_bin())
        .arg("--gmn")
        .arg(&missing)
        .arg("--screenshot")
        .arg(&out)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("gmnscope starts");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: --gmn ") && stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(!out.exists(), "no screenshot");
}
