//! The GMN tab's layout: settings form, run controls, progress bar with ETA, live curves, and the
//! trained GMN's section.

use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::{GmnPanel, RunStatus};
use crate::train::DeviceChoice;
use crate::ui::app::commands::{Command, CommandQueue};
use crate::ui::widgets::PanelContext;

impl GmnPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let commands = &mut *cx.commands;
        egui::Panel::left("gmn_settings")
            .resizable(true)
            .default_size(320.0)
            .size_range(260.0..=480.0)
            .show(ui, |ui| self.settings_ui(ui, commands));
        egui::Panel::right("gmn_trained")
            .resizable(true)
            .default_size(330.0)
            .size_range(260.0..=520.0)
            .show(ui, |ui| egui::ScrollArea::vertical().show(ui, |ui| self.trained.ui(ui, commands)));
        egui::CentralPanel::default().show(ui, |ui| self.run_ui(ui, commands));
    }

    pub(super) fn settings_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        let busy = self.training_busy();
        ui.add_space(6.0);
        ui.heading("Zoo");
        ui.add_enabled_ui(!busy, |ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.zoo_path).hint_text("/path/to/zoo").desired_width(f32::INFINITY),
            );
            ui.horizontal(|ui| {
                let label = ui.label("Demo:");
                ui.add(egui::DragValue::new(&mut self.demo_count).range(8..=2000).suffix(" INRs"))
                    .labelled_by(label.id);
                ui.add(egui::DragValue::new(&mut self.demo_steps).range(1..=2000).suffix(" steps"));
            });
            if ui.button("Fit a small demo zoo").on_hover_text("SIREN INRs of procedural digits").clicked() {
                commands.send(Command::FitDemoZoo);
            }
        });
        ui.add_space(10.0);
        ui.heading("Model and training");
        ui.add_enabled_ui(!busy, |ui| {
            egui::Grid::new("gmn_form").num_columns(2).spacing([12.0, 6.0]).show(ui, |ui| {
                let f = &mut self.form;
                let label = ui.label("Hidden width");
                ui.add(egui::DragValue::new(&mut f.hidden).range(4..=512)).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Message-passing layers");
                ui.add(egui::DragValue::new(&mut f.layers).range(1..=12)).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Epochs");
                ui.add(egui::DragValue::new(&mut f.epochs).range(1..=1000)).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Batch size");
                ui.add(egui::DragValue::new(&mut f.batch_size).range(1..=1024)).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Learning rate");
                ui.add(egui::DragValue::new(&mut f.lr).range(1e-6..=1.0).speed(1e-4).max_decimals(5))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Seed");
                ui.add(egui::DragValue::new(&mut f.seed)).labelled_by(label.id);
                ui.end_row();
                ui.label("Device");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut f.device, DeviceChoice::Cpu, "CPU").on_hover_text(
                        "The fused CPU engine: hand-written forward and backward passes, the fastest on CPU",
                    );
                    ui.selectable_value(&mut f.device, DeviceChoice::Flex, "CPU (burn)")
                        .on_hover_text("burn-flex autodiff: the reference implementation");
                    ui.selectable_value(&mut f.device, DeviceChoice::Wgpu, "GPU (wgpu)");
                    ui.selectable_value(&mut f.device, DeviceChoice::Auto, "Auto");
                });
                ui.end_row();
                let label = ui.label("Run directory");
                ui.add(egui::TextEdit::singleline(&mut self.run_dir).desired_width(180.0)).labelled_by(label.id);
                ui.end_row();
            });
        });
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            if ui.add_enabled(!busy, egui::Button::new("Train")).clicked() {
                commands.send(Command::StartTraining);
            }
            if ui.add_enabled(busy, egui::Button::new("Cancel")).clicked() {
                commands.send(Command::CancelTraining);
            }
        });
        ui.checkbox(&mut self.live_cka.enabled, "Live CKA").on_hover_text(
            "After every epoch: CKA of each GMN block with its state at initialisation, on up to 256 zoo \
             graphs (shown in the CKA tab)",
        );
        if let Some(e) = &self.live_cka.error {
            ui.colored_label(ui.visuals().error_fg_color, crate::text::shown_message(e).to_string());
        }
    }

    pub(super) fn run_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        ui.horizontal(|ui| {
            ui.heading("Training");
            if let (RunStatus::Finished(_), Some(dir)) = (&self.status, &self.finished_run)
                && ui.button("Use this GMN").on_hover_text("Load the trained GMN to run it on the open model").clicked()
            {
                commands.send(Command::LoadGmn(dir.clone()));
            }
            if let Some(latest) = self.live_cka.latest()
                && ui.button("Show live CKA").on_hover_text(latest.title.clone()).clicked()
            {
                commands.send(Command::ShowTrainingCka);
            }
            let (text, weak) = match &self.status {
                RunStatus::Idle => ("idle".to_string(), true),
                RunStatus::FittingZoo => ("fitting the demo zoo".into(), false),
                RunStatus::LoadingZoo => ("reading the zoo".into(), false),
                RunStatus::Training => (self.message.clone(), false),
                RunStatus::Finished(s) => (format!("finished: {s}"), false),
                RunStatus::Cancelled => ("cancelled".into(), false),
                RunStatus::Failed(e) => (format!("failed: {e}"), false),
            };
            let text = egui::RichText::new(text);
            ui.label(if weak { text.weak() } else { text });
        });
        let job_fraction =
            self.fit_job.as_ref().map(|j| j.stage().fraction).or(self.load_job.as_ref().map(|j| j.stage().fraction));
        let fraction = match job_fraction {
            Some(f) => f.unwrap_or(0.0),
            _ if self.total_steps > 0 => self.done_steps as f32 / self.total_steps as f32,
            _ => 0.0,
        };
        let mut bar = egui::ProgressBar::new(fraction).show_percentage();
        if let Some(eta) = self.eta().filter(|_| self.train_job.is_some()) {
            bar = bar.text(format!(
                "{:.0}% · step {}/{} · ETA {}s",
                fraction * 100.0,
                self.done_steps,
                self.total_steps,
                eta.as_secs()
            ));
        }
        ui.add(bar);
        ui.add_space(6.0);
        let height = (ui.available_height() - 12.0) / 2.0;
        Plot::new("gmn_loss").height(height.max(120.0)).legend(Legend::default()).x_axis_label("step").show(
            ui,
            |plot| {
                plot.line(Line::new("training loss", PlotPoints::from(self.curves.loss.clone())));
            },
        );
        Plot::new("gmn_accuracy")
            .height(height.max(120.0))
            .legend(Legend::default())
            .x_axis_label("step")
            .include_y(0.0)
            .include_y(1.0)
            .show(ui, |plot| {
                plot.line(Line::new("batch accuracy", PlotPoints::from(self.curves.accuracy.clone())));
                plot.line(Line::new("validation accuracy", PlotPoints::from(self.curves.val_accuracy.clone())));
            });
    }
}
