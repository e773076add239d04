//! The trained-GMN section's layout: the run's settings, Run, the prediction chart and the overlay
//! controls.

use std::path::PathBuf;

use egui::RichText;
use egui_plot::{Bar, BarChart, Plot};

use super::{Inference, LoadedGmn, Prediction, TrainedGmn};
use crate::train::Task;
use crate::ui::app::commands::{Command, CommandQueue, Tab};
use crate::ui::model::graph_view::overlay::OverlaySettings;

impl TrainedGmn {
    /// The section's contents (the GMN tab's right-hand panel).
    pub fn ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        ui.add_space(6.0);
        ui.heading("Trained GMN");
        ui.add(egui::TextEdit::singleline(&mut self.path).hint_text("/path/to/run").desired_width(f32::INFINITY));
        ui.horizontal(|ui| {
            let idle = self.load_job.is_none() && self.dialog_job.is_none();
            if ui
                .add_enabled(idle, egui::Button::new("Load trained GMN…"))
                .on_hover_text("Choose a run directory")
                .clicked()
            {
                commands.send(Command::ShowLoadGmnDialog);
            }
            let typed = !self.path.trim().is_empty();
            if ui
                .add_enabled(idle && typed, egui::Button::new("Load"))
                .on_hover_text("Load the directory typed above")
                .clicked()
            {
                commands.send(Command::LoadGmn(PathBuf::from(self.path.trim())));
            }
            if !idle {
                ui.spinner();
            }
        });
        if let Some(gmn) = &self.loaded {
            ui.add_space(4.0);
            config_grid(ui, gmn);
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                let can_run = self.infer_job.is_none();
                if ui.add_enabled(can_run, egui::Button::new("Run on open model")).clicked() {
                    commands.send(Command::RunGmnOnModel);
                }
                if let Some(job) = &self.infer_job {
                    ui.spinner();
                    ui.label(RichText::new(job.stage().text).weak());
                }
            });
        }
        if let Some(e) = &self.error {
            ui.add_space(4.0);
            ui.colored_label(ui.visuals().error_fg_color, crate::text::shown_message(e).to_string());
        }
        if let Some(inf) = &self.inference {
            ui.add_space(8.0);
            prediction_ui(ui, inf);
            ui.add_space(6.0);
            if ui.button("Show the activation overlay on the graph").clicked() {
                if !self.settings.enabled {
                    commands.send(Command::SetNodeOverlay(OverlaySettings { enabled: true, ..self.settings }));
                }
                commands.send(Command::ShowTab(Tab::Model));
            }
        }
    }
}

fn config_grid(ui: &mut egui::Ui, gmn: &LoadedGmn) {
    let c = &gmn.info.gmn;
    let (task, classes) = match gmn.info.task {
        Task::Classification { classes } => ("classification", classes.to_string()),
        Task::Regression => ("regression", "–".to_string()),
    };
    egui::Grid::new("trained_gmn_config").num_columns(2).spacing([12.0, 4.0]).show(ui, |ui| {
        let rows = [
            ("Run directory", gmn.run_dir.display().to_string()),
            ("Checkpoint", gmn.checkpoint.clone()),
            ("Hidden width", c.hidden.to_string()),
            ("GMN layers", c.layers.to_string()),
            ("Task", task.to_string()),
            ("Classes", classes),
            ("Readout", format!("{:?}", c.readout).to_lowercase()),
            ("Graph", if c.undirected { "undirected" } else { "directed" }.to_string()),
            ("Weight layers", c.trained_weight_layers().to_string()),
            (
                "Aggregation",
                if c.aggregation == crate::models::Aggregation::Pna { "PNA" } else { "mean (EdgeMPNN)" }.to_string(),
            ),
            (
                "Inputs",
                match c.probe {
                    Some(p) => format!("weights + {} probe points", p.points),
                    None => "weights only".to_string(),
                },
            ),
        ];
        for (k, v) in rows {
            ui.label(RichText::new(k).weak());
            ui.add(egui::Label::new(v).wrap());
            ui.end_row();
        }
    });
}

fn prediction_ui(ui: &mut egui::Ui, inf: &Inference) {
    ui.label(RichText::new(format!("On {} ({} nodes) in {:.2} s", inf.model_title, inf.nodes, inf.secs)).weak());
    match &inf.prediction {
        Prediction::Value(v) => {
            ui.label(RichText::new(format!("Prediction: {v:.4}")).strong());
        }
        Prediction::Class { class, probabilities } => {
            let p = probabilities.get(*class).copied().unwrap_or(f32::NAN);
            ui.label(RichText::new(format!("Prediction: class {class} (p = {p:.3})")).strong());
            let accent = ui.visuals().selection.bg_fill;
            let muted = ui.visuals().widgets.inactive.bg_fill;
            let bars = probabilities
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    Bar::new(i as f64, f64::from(p)).width(0.7).name(format!("class {i}")).fill(if i == *class {
                        accent
                    } else {
                        muted
                    })
                })
                .collect();
            Plot::new("gmn_probabilities")
                .height(140.0)
                .include_x(-0.5)
                .include_x(probabilities.len() as f64 - 0.5)
                .include_y(0.0)
                .include_y(1.0)
                .x_axis_label("class")
                .y_axis_label("probability")
                .allow_drag(false)
                .allow_zoom(false)
                .allow_scroll(false)
                .show(ui, |plot| plot.bar_chart(BarChart::new("probability", bars)));
        }
    }
}
