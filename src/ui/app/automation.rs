//! Scripted runs of the real window: `--quit-after-frames N` and `--screenshot OUT.png`. Frames
//! are counted from the moment the workspace is ready (no open jobs, at least one model shown, the
//! `--gmn` start-up sequence ended) or after a start-up timeout, so a screenshot shows a loaded
//! model (and its GMN overlay) rather than a spinner.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames rendered before the screenshot when `--quit-after-frames` is not given.
const DEFAULT_SCREENSHOT_FRAMES: u64 = 10;
/// Start counting anyway after this long (a file that never loads must not hang the run).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The outcome of a scripted run, read by `cli::gui::run` after the window closed.
pub type Outcome = Arc<Mutex<Option<String>>>;

pub struct Automation {
    screenshot: Option<PathBuf>,
    quit_after_frames: Option<u64>,
    frames: u64,
    started: Instant,
    pending: Option<Receiver<Arc<egui::ColorImage>>>,
    closing: bool,
    outcome: Outcome,
}

impl Automation {
    pub fn new(screenshot: Option<PathBuf>, quit_after_frames: Option<u64>, outcome: Outcome) -> Self {
        Self {
            screenshot,
            quit_after_frames,
            frames: 0,
            started: Instant::now(),
            pending: None,
            closing: false,
            outcome,
        }
    }

    pub fn is_active(&self) -> bool {
        self.screenshot.is_some() || self.quit_after_frames.is_some()
    }

    /// Scripted runs ignore the pointer: under `xvfb-run` it rests mid-screen, over the graph, and
    /// the hover tooltip it raises there does not belong in a screenshot.
    pub fn filter_input(&self, raw: &mut egui::RawInput) {
        if self.is_active() {
            raw.events.retain(|e| !matches!(e, egui::Event::PointerMoved(_) | egui::Event::MouseMoved(_)));
        }
    }

    /// Called once per rendered frame (from `App::ui`).
    pub fn on_frame(&mut self, ctx: &egui::Context, workspace_ready: bool) {
        if !self.is_active() || self.closing {
            return;
        }
        ctx.request_repaint(); // keep frames coming while we count
        if workspace_ready || self.started.elapsed() > READY_TIMEOUT {
            self.frames += 1;
        }
        let target = self.quit_after_frames.unwrap_or(DEFAULT_SCREENSHOT_FRAMES);
        if let Some(rx) = &self.pending {
            match rx.try_recv() {
                Ok(image) => {
                    let path = self.screenshot.clone().unwrap_or_default();
                    if let Err(e) = write_png(&path, &image) {
                        self.fail(format!("{}: cannot write screenshot: {e}", path.display()));
                    }
                    self.close(ctx);
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    self.fail("the screenshot was never delivered".into());
                    self.close(ctx);
                }
            }
            return;
        }
        if self.frames >= target {
            if self.screenshot.is_some() {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                ctx.request_screenshot(move |image| {
                    tx.try_send(image).ok();
                });
                self.pending = Some(rx);
            } else {
                self.close(ctx);
            }
        }
    }

    fn fail(&self, message: String) {
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = Some(message);
        }
    }

    fn close(&mut self, ctx: &egui::Context) {
        self.closing = true;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }
}

/// Encodes RGBA8 as PNG into a temp file next to `path`, then renames it into place.
pub fn write_png(path: &std::path::Path, image: &egui::ColorImage) -> std::io::Result<()> {
    let [w, h] = image.size;
    let (w32, h32) = (u32::try_from(w), u32::try_from(h));
    let (Ok(w32), Ok(h32)) = (w32, h32) else {
        return Err(std::io::Error::other("screenshot too large"));
    };
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_srgba_unmultiplied()).collect();
    crate::atomic_write::write_atomically(path, |file| {
        let mut encoder = png::Encoder::new(file, w32, h32);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer.write_image_data(&rgba).map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    })
}
