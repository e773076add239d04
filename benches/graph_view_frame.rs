//! Per-frame CPU time of the graph view against the number of edges (issue 6: it must not grow
//! with the edge count; measured at 10k, 100k, 1M and 10M edges).
//!
//! For each size a synthetic MLP (four square `Linear` layers, so edges ~ 4 w^2) is written as
//! safetensors and opened by the app's own open-model job (`ui::model::loader::load`: graph, layout,
//! level-of-detail bands, hit grid, explicit edges under the cap, GPU instance arrays): that is the
//! one-time setup. Then one frame is what the UI thread does for the model view's graph panel:
//! `GraphView::ui` inside `egui::Context::run_ui` (camera update, level-of-detail choice, hover hit
//! test, paint-callback construction, legend and overlays) plus egui's tessellation of the frame.
//! Between frames the pointer moves (hover), pinch-zoom events zoom in 25x and back out around the
//! pointer, and a drag pans back and forth, so every frame exercises the camera and the hit test
//! at overview and at neuron-level zoom. The GPU side (one uniform write, instanced draws) is not
//! timed here: it does not depend on the CPU per frame.
//!
//! Printed: setup time and the median / 95th-percentile frame time per size, and the ratio of the
//! 10M median to the 10k median (goal: about 1). The sizes are timed in interleaved rounds and the
//! round with the lowest median counts, so a busy machine slows all sizes alike instead of
//! whichever ran during the disturbance. Criterion then times the same frame loop per size.
//!
//! Run: `cargo bench --bench graph_view_frame` (`GMNSCOPE_BENCH_QUICK=1` skips the 10M graph;
//! `GMNSCOPE_BENCH_SIZES=10k,1M` picks sizes).

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use egui::{Event, Modifiers, PointerButton, Pos2, RawInput, Rect, pos2, vec2};
use gmnscope::checkpoint::writer::{OwnedTensor, write_safetensors};
use gmnscope::jobs;
use gmnscope::rng::SplitMix64;
use gmnscope::ui::app::commands::CommandQueue;
use gmnscope::ui::app::state::AppState;
use gmnscope::ui::model::graph_view::{GraphView, ViewInputs};
use gmnscope::ui::model::loader::{self, LoadedModel, ModelSource};

const LAYERS: usize = 4;
const SCREEN: [f32; 2] = [1280.0, 800.0];
/// Frames of the pan / zoom / hover cycle (see `input_for`).
const CYCLE: u64 = 32;
/// Frames per size and round, and rounds.
const TIMED_FRAMES: usize = 400;
const ROUNDS: usize = 7;

/// Writes an MLP with `LAYERS` square layers of width `w` (`fc<i>.weight` [w, w], `fc<i>.bias`).
fn write_mlp(path: &Path, w: usize) {
    let mut rng = SplitMix64::new(w as u64);
    let mut tensors = Vec::new();
    for l in 0..LAYERS {
        let scale = (1.0 / w as f32).sqrt();
        let weight: Vec<f32> = (0..w * w).map(|_| rng.normal() * scale).collect();
        let bias: Vec<f32> = (0..w).map(|_| rng.normal() * 0.1).collect();
        tensors.push(OwnedTensor::f32(format!("fc{}.weight", l + 1), vec![w, w], &weight));
        tensors.push(OwnedTensor::f32(format!("fc{}.bias", l + 1), vec![w], &bias));
    }
    write_safetensors(path, &tensors).expect("write the MLP");
}

/// The one-time setup: the app's open-model job, run to completion.
fn open(path: &Path) -> LoadedModel {
    let source = ModelSource::File(path.to_path_buf());
    let mut job = jobs::spawn("bench open", move |r| loader::load(source, r)).expect("spawn");
    loop {
        if let Some(done) = job.poll() {
            return done.expect("the model opens");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The input of frame `k`: the pointer on a small circle around the view's centre (hover);
/// frames 0-7 zoom in (x1.5 each), 8-15 zoom out; 16-23 drag right, 24-31 drag back.
fn input_for(k: u64) -> RawInput {
    let phase = k % CYCLE;
    let t = k as f32 * 0.37;
    let centre = pos2(SCREEN[0] * 0.5, SCREEN[1] * 0.55);
    let mut pointer = centre + vec2(t.cos(), t.sin()) * 60.0;
    let mut events = Vec::new();
    match phase {
        0..=7 => events.push(Event::Zoom(1.5)),
        8..=15 => events.push(Event::Zoom(1.0 / 1.5)),
        _ => {
            let step = phase - 16;
            let x = if step < 8 { step as f32 } else { (16 - step) as f32 };
            pointer = centre + vec2(x * 25.0, 0.0);
            if step == 0 {
                events.push(Event::PointerButton {
                    pos: pointer,
                    button: PointerButton::Primary,
                    pressed: true,
                    modifiers: Modifiers::NONE,
                });
            }
        }
    }
    events.insert(0, Event::PointerMoved(pointer));
    if phase == CYCLE - 1 {
        events.push(Event::PointerButton {
            pos: pointer,
            button: PointerButton::Primary,
            pressed: false,
            modifiers: Modifiers::NONE,
        });
    }
    RawInput {
        screen_rect: Some(Rect::from_min_size(Pos2::ZERO, SCREEN.into())),
        time: Some(k as f64 / 60.0),
        predicted_dt: 1.0 / 60.0,
        events,
        ..RawInput::default()
    }
}

/// Everything one frame of the graph panel needs.
struct Frame {
    ctx: egui::Context,
    view: GraphView,
    model: LoadedModel,
    state: AppState,
    commands: CommandQueue,
    k: u64,
}

impl Frame {
    fn new(model: LoadedModel) -> Self {
        let mut f = Self {
            ctx: egui::Context::default(),
            view: GraphView::default(),
            model,
            state: AppState::default(),
            commands: CommandQueue::default(),
            k: 0,
        };
        for _ in 0..2 * CYCLE {
            f.run(); // fonts, layout caches, the first fit
        }
        f
    }

    /// One frame: the UI pass and its tessellation.
    fn run(&mut self) {
        let input = input_for(self.k);
        self.k += 1;
        let Self { ctx, view, model, state, commands, .. } = self;
        let output = ctx.run_ui(input, |ui| {
            egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| {
                let inputs = ViewInputs { selected_layer: Some(1), state, gpu: true, overlay: None, search: "" };
                view.ui(ui, model, inputs, commands);
            });
        });
        commands.take();
        let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
        std::hint::black_box(primitives);
    }
}

struct Row {
    label: String,
    edges: usize,
    setup: Duration,
    median_us: f64,
    p95_us: f64,
}

/// Median and 95th percentile (µs) of `TIMED_FRAMES` frames.
fn measure(frame: &mut Frame) -> (f64, f64) {
    let mut times: Vec<f64> = (0..TIMED_FRAMES)
        .map(|_| {
            let t = Instant::now();
            frame.run();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 95 / 100])
}

fn main() {
    let quick = std::env::var("GMNSCOPE_BENCH_QUICK").is_ok_and(|v| v == "1");
    // Widths giving ~1e4, 1e5, 1e6 and 1e7 edges (4 w^2 weights + 4 w biases).
    let sizes: &[(&str, usize)] = if quick {
        &[("10k", 50), ("100k", 158), ("1M", 500)]
    } else {
        &[("10k", 50), ("100k", 158), ("1M", 500), ("10M", 1581)]
    };
    // `GMNSCOPE_BENCH_SIZES=1M,10M` runs only those sizes.
    let only: Option<Vec<String>> =
        std::env::var("GMNSCOPE_BENCH_SIZES").ok().map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let sizes: Vec<(&str, usize)> =
        sizes.iter().copied().filter(|(l, _)| only.as_ref().is_none_or(|o| o.iter().any(|x| x == l))).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut criterion = Criterion::default().configure_from_args().measurement_time(Duration::from_secs(4));
    let mut frames = Vec::new();
    for (label, w) in sizes {
        let path = dir.path().join(format!("mlp-{label}.safetensors"));
        write_mlp(&path, w);
        let started = Instant::now();
        let model = open(&path);
        let setup = started.elapsed();
        let edges = model.graph.as_ref().map(|g| g.graph.num_edges()).expect("a parameter graph");
        std::fs::remove_file(&path).ok();
        eprintln!("{label}: {edges} edges, setup {:.2} s", setup.as_secs_f64());
        frames.push((
            Row { label: label.to_string(), edges, setup, median_us: f64::INFINITY, p95_us: 0.0 },
            Frame::new(model),
        ));
    }
    for _ in 0..ROUNDS {
        for (row, frame) in &mut frames {
            let (median_us, p95_us) = measure(frame);
            if median_us < row.median_us {
                (row.median_us, row.p95_us) = (median_us, p95_us);
            }
        }
    }
    for (row, frame) in &mut frames {
        criterion.bench_function(&format!("graph_view_frame/{}", row.label), |b| b.iter(|| frame.run()));
    }
    let rows: Vec<Row> = frames.into_iter().map(|(row, _)| row).collect();
    println!();
    println!("graph view, CPU time per frame (UI pass + tessellation; pan/zoom/hover every frame)");
    println!("| graph | edges | setup (open job) | median frame | p95 frame |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| MLP {} | {} | {:.2} s | {:.1} µs | {:.1} µs |",
            r.label,
            r.edges,
            r.setup.as_secs_f64(),
            r.median_us,
            r.p95_us
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        println!(
            "ratio of medians, {} / {} edges: {:.2} (goal: about 1, i.e. no growth with the edge count)",
            last.edges,
            first.edges,
            last.median_us / first.median_us
        );
    }
    criterion.final_summary();
}
