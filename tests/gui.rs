//! The desktop app, driven headlessly with egui_kittest on wgpu (lavapipe where there is no GPU):
//! the model view shows the demo model's graph counts, its layer tree, a working search, and a
//! snapshot image; and the real binary, under `xvfb-run`, renders its default workspace, writes a
//! screenshot and exits cleanly.

use std::time::Duration;

use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use gmnscope::ui::app::commands::Command;
use gmnscope::ui::app::state::ThemeChoice;
use gmnscope::ui::app::status_bar::thousands;

use crate::gui_support::{harness, settle};

fn siren_reference() -> (gmnscope::arch::Architecture, gmnscope::graph::ParamGraph) {
    let store = gmnscope::demo::open("siren").expect("demo opens");
    let arch = gmnscope::arch::recover(&store);
    let graph = gmnscope::graph::build(&arch, &store).expect("graph builds");
    (arch, graph)
}

#[test]
fn model_view_shows_the_demo_graph_counts_and_its_layers() {
    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);
    let titles: Vec<String> = h.state().models().map(|m| m.title()).collect();
    assert_eq!(titles, ["demo: siren", "demo: resnet", "demo: transformer"], "tabs in request order");
    let (arch, graph) = siren_reference();
    // The toolbar of the graph view states the graph's size (first demo model is active).
    h.get_by_label(&format!("{} nodes", thousands(graph.num_nodes() as u64)));
    h.get_by_label(&format!("{} edges", thousands(graph.num_edges() as u64)));
    h.get_by_label(&format!("{} parameters", thousands(graph.num_parameters() as u64)));
    // The layer tree lists every recovered layer.
    assert!(!arch.layers.is_empty());
    for layer in &arch.layers {
        h.get_by_label(&layer.name);
    }
    assert!(h.state().toasts().texts().next().is_none(), "no error toasts on the demo workspace");
}

#[test]
fn layer_search_filters_the_tree() {
    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);
    let (arch, _) = siren_reference();
    let kept = &arch.layers[1].name;
    h.get_by_role(Role::TextInput).focus();
    h.run_steps(2);
    h.get_by_role(Role::TextInput).type_text(kept);
    h.run_steps(3);
    h.get_by_label(kept);
    for other in arch.layers.iter().filter(|l| &l.name != kept && !l.name.contains(kept.as_str())) {
        assert!(h.query_by_label(&other.name).is_none(), "{} is filtered out", other.name);
    }
    h.get_by_label_contains("layers match");
}

#[test]
fn selecting_a_layer_shows_details_and_the_snapshot_matches() {
    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);
    h.state_mut().send(Command::SelectLayer(Some(1)));
    settle(&mut h);
    h.get_by_label("Weight histogram");
    let selected = h.state().active_model().and_then(|m| m.selected_layer);
    assert_eq!(selected, Some(1));
    h.snapshot("model_view");
}

#[test]
fn light_theme_snapshot() {
    let mut h = harness(ThemeChoice::Light);
    settle(&mut h);
    h.state_mut().send(Command::SelectModel(1));
    h.state_mut().send(Command::SelectLayer(Some(0)));
    settle(&mut h);
    h.snapshot("model_view_light_resnet");
}

#[test]
fn transformer_snapshot_with_an_attention_layer_selected() {
    let store = gmnscope::demo::open("transformer").expect("demo opens");
    let arch = gmnscope::arch::recover(&store);
    let attention = arch.layers.iter().position(|l| l.kind.name() == "attention").expect("an attention layer");
    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);
    h.state_mut().send(Command::SelectModel(2));
    h.state_mut().send(Command::SelectLayer(Some(attention)));
    settle(&mut h);
    assert_eq!(h.state().active_model().map(|m| m.model.title()), Some("demo: transformer".to_string()));
    h.snapshot("model_view_transformer");
}

/// The real binary in a real (virtual) X window: default workspace, screenshot, clean exit.
#[test]
fn binary_writes_a_screenshot_under_xvfb() {
    let xvfb = std::process::Command::new("xvfb-run").arg("--help").output();
    if xvfb.is_err() {
        eprintln!("skipped: xvfb-run is not installed (scripts/setup.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("shot.png");
    let status = std::process::Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1600x1000x24"])
        .arg(env!("CARGO_BIN_EXE_gmnscope"))
        .arg("--screenshot")
        .arg(&out)
        .args(["--quit-after-frames", "5"])
        .env("GMNSCOPE_THEME", "dark")
        .status()
        .expect("xvfb-run starts");
    assert!(status.success(), "gmnscope exited with {status}");
    let bytes = std::fs::read(&out).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().expect("valid PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("valid PNG data");
    assert!(info.width >= 640 && info.height >= 400, "window-sized: {}x{}", info.width, info.height);
    // Non-trivial: many distinct colours (text, graph, panels), not a blank window.
    let mut colours: Vec<u32> = pixels.chunks_exact(4).map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]])).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 200, "only {} distinct colours", colours.len());
}

/// The CKA explorer computes the demo matrix in a job and draws it; the hovered cell's readout
/// equals `cka::cka_matrix` on the same activations, and a click selects the cell for details.
#[test]
fn cka_explorer_hover_matches_the_reference_matrix() {
    use gmnscope::cka;
    use gmnscope::ui::app::commands::Tab;
    use gmnscope::ui::cka::data::{DEMO_EXAMPLES, demo_pair};

    let mut h = harness(ThemeChoice::Dark);
    h.state_mut().send(Command::ShowTab(Tab::Cka));
    settle(&mut h);
    let pair = demo_pair(DEMO_EXAMPLES);
    let reference = cka::cka_matrix(&pair.a.views(), &pair.b.views(), &cka::Options::linear()).expect("reference");
    let shown = h.state().cka().result().expect("a matrix is shown");
    assert_eq!((shown.matrix.rows(), shown.matrix.cols()), (reference.rows(), reference.cols()));
    assert_eq!(shown.rows, pair.a.names);
    let (r, c) = (3, 2);
    let pos = h.state().cka().heatmap.cell_center(r, c).expect("the heatmap was drawn");
    h.hover_at(pos);
    h.run_steps(3);
    let prefix = format!("{} × {}: CKA = ", pair.a.names[r], pair.b.names[c]);
    let node = h.get_by_label_contains(&prefix);
    let readout = node.accesskit_node().label().or_else(|| node.value()).expect("a label");
    let shown_value: f64 = readout.trim_start_matches(&prefix).trim().parse().expect("a number");
    let expected = reference.get(r, c).expect("defined");
    assert!((shown_value - expected).abs() <= 1e-6, "hover shows {shown_value}, reference {expected}");
    // Click selects the cell: the details panel states n, kernel and estimator.
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::default(),
        });
        h.step();
    }
    h.run_steps(3);
    h.get_by_label("Selected cell");
    h.get_by_label(&DEMO_EXAMPLES.to_string());
    h.get_by_label(&format!("{expected:.6}"));
    h.snapshot("cka_explorer");
}

/// Minibatch mode recomputes in a job and converges to the streamed estimate; light theme snapshot.
#[test]
fn cka_explorer_minibatch_and_light_snapshot() {
    use gmnscope::cka;
    use gmnscope::ui::app::commands::Tab;
    use gmnscope::ui::cka::data::{DEMO_EXAMPLES, demo_pair};

    let mut h = harness(ThemeChoice::Light);
    h.state_mut().send(Command::ShowTab(Tab::Cka));
    settle(&mut h);
    h.get_by_label("Minibatch").click();
    h.run_steps(2);
    settle(&mut h);
    let shown = h.state().cka().result().expect("a matrix");
    let m = h.state().cka().settings.minibatch.expect("minibatch on");
    assert_eq!(shown.batches, Some((DEMO_EXAMPLES / m, DEMO_EXAMPLES / m)));
    let pair = demo_pair(DEMO_EXAMPLES);
    let mut acc = cka::MinibatchCka::new(cka::Options::linear());
    let (va, vb) = (pair.a.views(), pair.b.views());
    for k in 0..DEMO_EXAMPLES / m {
        let a: Vec<_> = va.iter().map(|v| v.rows(k * m, (k + 1) * m).unwrap()).collect();
        let b: Vec<_> = vb.iter().map(|v| v.rows(k * m, (k + 1) * m).unwrap()).collect();
        acc.push(&a, &b).unwrap();
    }
    let expected = acc.estimate().unwrap();
    for i in 0..expected.rows() {
        for j in 0..expected.cols() {
            let (s, e) = (shown.matrix.get(i, j), expected.get(i, j));
            assert!(s.zip(e).is_some_and(|(s, e)| (s - e).abs() < 1e-9) || (s.is_none() && e.is_none()));
        }
    }
    h.snapshot("cka_explorer_light_minibatch");
}

/// The GMN tab fits a micro zoo, starts training in the background and cancels it: frames keep
/// coming quickly while the job runs, live curves fill, and the run ends as cancelled.
#[test]
fn gmn_training_starts_streams_curves_and_cancels() {
    use gmnscope::ui::app::commands::Tab;
    use gmnscope::ui::gmn::RunStatus;

    let run_dir = tempfile::tempdir().expect("temp dir");
    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);
    {
        let gmn = h.state_mut().gmn_mut();
        gmn.demo_count = 16;
        gmn.demo_steps = 10;
        gmn.form.hidden = 8;
        gmn.form.layers = 1;
        gmn.form.batch_size = 4;
        gmn.form.epochs = 500; // long enough that the cancel lands mid-run
        gmn.run_dir = run_dir.path().display().to_string();
    }
    h.state_mut().send(Command::FitDemoZoo);
    settle(&mut h);
    assert_eq!(h.state().tab(), Tab::Gmn);
    assert!(!h.state().gmn().zoo_path.is_empty(), "the demo zoo was fitted: {:?}", h.state().gmn().status);
    h.state_mut().send(Command::StartTraining);
    let mut frames = 0;
    let mut slowest = Duration::ZERO;
    while h.state().gmn().curves.loss.len() < 3 {
        let t = std::time::Instant::now();
        h.step();
        slowest = slowest.max(t.elapsed());
        frames += 1;
        assert!(frames < 6000, "training produced no steps: {:?}", h.state().gmn().status);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(h.state().gmn().status, RunStatus::Training);
    assert!(h.state().is_busy());
    h.get_by_label_contains("train GMN"); // the status bar lists the running job
    assert!(frames >= 2, "frames kept coming while the job ran ({frames})");
    assert!(slowest < Duration::from_secs(2), "a frame took {slowest:?} while training ran");
    h.get_by_label("Cancel").click();
    settle(&mut h);
    assert_eq!(h.state().gmn().status, RunStatus::Cancelled);
    assert!(h.state().gmn().curves.loss.iter().all(|p| p[1].is_finite()));
    h.get_by_label("cancelled");
    if let Ok(dir) = std::env::var("GMNSCOPE_GUI_SHOTS") {
        let image = h.render().expect("render");
        image.save(std::path::Path::new(&dir).join("gmn_panel.png")).expect("save");
    }
}

/// Real files end to end: two .npz activation files open in the explorer (matrix = the core's on
/// the same data), export writes a PNG and a CSV, and the JSON written by `gmnscope cka --json`
/// opens as the same matrix.
#[test]
fn cka_explorer_opens_activation_files_exports_and_reads_cli_results() {
    use gmnscope::cka;
    use gmnscope::ui::cka::data::demo_pair;

    let dir = tempfile::tempdir().expect("temp dir");
    let pair = demo_pair(120);
    let write = |name: &str, set: &gmnscope::ui::cka::data::LayerSet| {
        let path = dir.path().join(name);
        let mut npz = gmnscope::npz_writer::NpzWriter::create(&path).expect("create npz");
        for (layer, act) in set.names.iter().zip(&set.acts) {
            let cka::Values::F32(data) = &act.data else { panic!("demo activations are f32") };
            npz.add_array_f32(layer, &[act.n, act.p], data).expect("write array");
        }
        npz.finish().expect("finish npz");
        path
    };
    let (a, b) = (write("a.npz", &pair.a), write("b.npz", &pair.b));
    let mut h = harness(ThemeChoice::Dark);
    h.state_mut().send(Command::OpenCka { a: a.clone(), b: b.clone() });
    settle(&mut h);
    let reference = cka::cka_matrix(&pair.a.views(), &pair.b.views(), &cka::Options::linear()).expect("reference");
    let shown = h.state().cka().result().expect("matrix from files");
    assert_eq!(shown.rows, pair.a.names);
    assert_eq!(shown.n, 120);
    for i in 0..reference.rows() {
        for j in 0..reference.cols() {
            assert!((shown.matrix.get(i, j).unwrap() - reference.get(i, j).unwrap()).abs() < 1e-9);
        }
    }
    let (png, csv) = (dir.path().join("m.png"), dir.path().join("m.csv"));
    h.state_mut().send(Command::ExportCka { path: png.clone(), png: true });
    h.state_mut().send(Command::ExportCka { path: csv.clone(), png: false });
    settle(&mut h);
    assert!(std::fs::read(&png).expect("PNG written").starts_with(b"\x89PNG\r\n\x1a\n"));
    let text = std::fs::read_to_string(&csv).expect("CSV written");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + reference.rows());
    assert_eq!(lines[0], format!("layer,{}", pair.b.names.join(",")), "the one CKA CSV dialect (cka::csv)");
    let first: f64 = lines[1].split(',').nth(1).expect("a value").parse().expect("a number");
    assert!((first - reference.get(0, 0).unwrap()).abs() < 1e-12);
    // The CLI's JSON output opens as the same matrix.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gmnscope"))
        .args(["cka", "--json", "--debiased"])
        .arg(&a)
        .arg(&b)
        .output()
        .expect("gmnscope cka runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = dir.path().join("results.json");
    std::fs::write(&json, &out.stdout).expect("write results");
    h.state_mut().send(Command::OpenCkaResults(json));
    settle(&mut h);
    let debiased = cka::cka_matrix(&pair.a.views(), &pair.b.views(), &cka::Options::debiased_linear()).expect("ref");
    let shown = h.state().cka().result().expect("matrix from results");
    assert_eq!(shown.estimator, "unbiased");
    for i in 0..debiased.rows() {
        for j in 0..debiased.cols() {
            assert!((shown.matrix.get(i, j).unwrap() - debiased.get(i, j).unwrap()).abs() < 1e-9);
        }
    }
    let errors: Vec<_> =
        h.state().toasts().texts().filter(|t| t.0 == gmnscope::ui::widgets::toasts::Level::Error).collect();
    assert!(errors.is_empty(), "error toasts: {errors:?}");
}

/// Issue 15 item 1: the transformer's graph carries a caption per column (layer name, kind,
/// shape), outlines for its encoder blocks and attention layers, and the layer-tree search
/// highlights the matching layers on the graph with the tensor that matched.
#[test]
fn graph_captions_group_outlines_and_search_highlights() {
    let store = gmnscope::demo::open("transformer").expect("demo opens");
    let arch = gmnscope::arch::recover(&store);
    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);
    h.state_mut().send(Command::SelectModel(2));
    h.run_steps(4);
    let drawn = h.state().graph_view().drawn_labels().clone();
    // Captions: one per column that shows, each naming a recovered layer, and readable widgets
    // (the accessibility tree has them, so screen readers and kittest see the same text).
    assert!(drawn.captions.len() >= 4, "{:?}", drawn.captions);
    for caption in &drawn.captions {
        let named = caption == "input" || arch.layers.iter().any(|l| l.name.ends_with(caption.as_str()));
        assert!(named, "{caption} names no layer");
        let widgets = h.query_all_by_label_contains(&format!("caption {caption}: ")).count();
        assert!(widgets >= 1, "{caption} has no caption widget");
    }
    // The kind and shape line under a caption: the embedding's or a linear layer's weight.
    let shapes =
        h.query_all_by_label_contains("embedding [64×16]").count() + h.query_all_by_label_contains("linear [").count();
    assert!(shapes > 0, "a kind-and-shape caption line");
    assert!(drawn.groups.iter().any(|g| g == "encoder.layer.0"), "{:?}", drawn.groups);

    // Search for a tensor: both attention layers light up, each with its own query weight.
    h.get_by_role(Role::TextInput).focus();
    h.run_steps(2);
    h.get_by_role(Role::TextInput).type_text("query.weight");
    h.run_steps(3);
    let matches = h.state().graph_view().drawn_labels().matches.clone();
    let expected: Vec<(usize, String)> = arch
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind.name() == "attention")
        .map(|(i, l)| {
            (i, l.kind.parameter_tensors().into_iter().find(|t| t.ends_with("query.weight")).unwrap().to_string())
        })
        .collect();
    assert_eq!(expected.len(), 2);
    assert_eq!(matches, expected);
}
