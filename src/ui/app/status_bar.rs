//! The bottom bar: rendering device, running jobs (spinner, stage, progress, cancel), and a
//! one-line summary of the active model.

use egui::RichText;

use crate::jobs::JobSummary;
use crate::ui::app::commands::Command;
use crate::ui::widgets::PanelContext;

/// "GPU: <adapter>" or "CPU (software: llvmpipe)" for Mesa's software rasterisers.
pub fn device_label(info: Option<&egui_wgpu::wgpu::AdapterInfo>) -> String {
    let Some(info) = info else { return "No GPU renderer".into() };
    let name = info.name.to_lowercase();
    if name.contains("llvmpipe")
        || name.contains("lavapipe")
        || name.contains("softpipe")
        || info.device_type == egui_wgpu::wgpu::DeviceType::Cpu
    {
        let short = if name.contains("llvmpipe") { "llvmpipe" } else { info.name.as_str() };
        format!("CPU (software: {short})")
    } else {
        format!("GPU: {}", info.name)
    }
}

pub fn ui(ui: &mut egui::Ui, cx: &mut PanelContext<'_>, device: &str) {
    let jobs: Vec<JobSummary> = cx.jobs.summaries();
    let (model, commands) = (cx.model, &mut *cx.commands);
    ui.horizontal_centered(|ui| {
        ui.label(RichText::new(device).small());
        for job in &jobs {
            ui.separator();
            ui.spinner();
            ui.label(RichText::new(&job.name).small().strong());
            ui.label(RichText::new(&job.stage).small().weak());
            if let Some(f) = job.fraction {
                ui.add(egui::ProgressBar::new(f.clamp(0.0, 1.0)).desired_width(90.0).desired_height(10.0));
            }
            let cancel = egui::Button::new(RichText::new("×")).small().frame(false);
            if !job.cancelling && ui.add(cancel).on_hover_text("Cancel").clicked() {
                commands.send(Command::CancelJob(job.id));
            }
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if let Some(m) = model {
                let summary = format!(
                    "{} · {} tensors · {} values",
                    m.format.name(),
                    thousands(m.num_tensors as u64),
                    thousands(m.num_values as u64)
                );
                ui.label(RichText::new(summary).small().weak()).on_hover_text(format!(
                    "{}\nopened in {:.2} s",
                    m.store.path.display(),
                    m.load_secs
                ));
            }
        });
    });
}

pub use crate::text::thousands;
