//! The desktop app, driven headlessly with egui_kittest on wgpu (lavapipe where there is no GPU):
//! the model view shows the demo model's graph counts, its layer tree, a working search, and a
//! snapshot image; and the real binary, under `xvfb-run`, renders its default workspace, writes a
//! screenshot and exits cleanly.

use std::time::Duration;

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use gmnscope::ui::commands::Command;
use gmnscope::ui::state::ThemeChoice;
use gmnscope::ui::status_bar::thousands;
use gmnscope::ui::{App, StartupOptions};

fn harness(theme: ThemeChoice) -> Harness<'static, App> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .wgpu()
        .build_eframe(move |cc| App::new(cc, StartupOptions { theme: Some(theme), ..StartupOptions::default() }))
}

/// Steps frames until no job runs (models opened, heatmaps computed), then a few more to lay out.
fn settle(harness: &mut Harness<'static, App>) {
    for _ in 0..3000 {
        harness.step();
        if !harness.state().is_busy() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!harness.state().is_busy(), "jobs did not finish");
    harness.run_steps(4);
}

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
