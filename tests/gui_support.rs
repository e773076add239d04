//! What the kittest GUI tests share: a harness on the app and a way to wait for its jobs.

use std::time::Duration;

use egui_kittest::Harness;
use gmnscope::ui::app::state::ThemeChoice;
use gmnscope::ui::{App, StartupOptions};

/// The app on its embedded workspace, 1280 x 800, rendered with wgpu (lavapipe without a GPU).
pub fn harness(theme: ThemeChoice) -> Harness<'static, App> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .wgpu()
        .build_eframe(move |cc| App::new(cc, StartupOptions { theme: Some(theme), ..StartupOptions::default() }))
}

/// Steps frames until no job runs (models opened, heatmaps computed), then a few more to lay out.
pub fn settle(harness: &mut Harness<'static, App>) {
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
