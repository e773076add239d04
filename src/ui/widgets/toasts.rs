//! Notifications in the bottom-right corner: errors stay until dismissed (or 20 s), infos fade
//! after a few seconds. Every error the app meets ends up here instead of a panic or a log line
//! nobody reads.

use egui::{Align2, Color32, RichText};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

struct Toast {
    level: Level,
    text: String,
    /// `egui` time (seconds) when it was first shown; set on the first frame it is drawn.
    shown_at: Option<f64>,
}

#[derive(Default)]
pub struct Toasts {
    toasts: Vec<Toast>,
}

impl Toasts {
    pub fn info(&mut self, text: impl Into<String>) {
        self.push(Level::Info, text.into());
    }

    pub fn error(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::warn!("{text}");
        self.push(Level::Error, text);
    }

    fn push(&mut self, level: Level, text: String) {
        // Messages carry file and layer names: escaped and cut like the CLI's (`text::shown_message`).
        let text = crate::text::shown_message(&text).to_string();
        self.toasts.push(Toast { level, text, shown_at: None });
        if self.toasts.len() > 6 {
            self.toasts.remove(0);
        }
    }

    /// Texts of the current notifications (for tests and the status bar).
    pub fn texts(&self) -> impl Iterator<Item = (Level, &str)> {
        self.toasts.iter().map(|t| (t.level, t.text.as_str()))
    }

    pub fn ui(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|i| i.time);
        self.toasts.retain(|t| {
            let lifetime = if t.level == Level::Error { 20.0 } else { 5.0 };
            t.shown_at.is_none_or(|at| now - at < lifetime)
        });
        if self.toasts.is_empty() {
            return;
        }
        ctx.request_repaint_after(std::time::Duration::from_millis(250));
        let mut dismiss = None;
        egui::Area::new(egui::Id::unique("gmnscope_toasts"))
            .anchor(Align2::RIGHT_BOTTOM, [-12.0, -36.0])
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                ui.set_max_width(420.0);
                for (i, toast) in self.toasts.iter_mut().enumerate() {
                    toast.shown_at.get_or_insert(now);
                    let (accent, icon) = match toast.level {
                        Level::Info => (ui.visuals().selection.bg_fill, "Info"),
                        Level::Error => (Color32::from_rgb(220, 70, 60), "Error"),
                    };
                    egui::Frame::popup(ui.style()).stroke(egui::Stroke::new(1.0, accent)).show(ui, |ui| {
                        ui.horizontal(|ui| {
                            ui.label(RichText::new(icon).color(accent).strong());
                            ui.add(egui::Label::new(&toast.text).wrap());
                            if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                                dismiss = Some(i);
                            }
                        });
                    });
                    ui.add_space(4.0);
                }
            });
        if let Some(i) = dismiss {
            self.toasts.remove(i);
        }
    }
}
