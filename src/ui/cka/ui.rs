//! The CKA explorer's layout: controls, heatmap and details; the study host (picker, summary
//! charts, a running study's progress); the "Open study results" window.

use std::path::PathBuf;

use super::CkaExplorer;
use crate::jobs::Registry;
use crate::ui::app::commands::{Command, CommandQueue};
use crate::ui::cka::data::{self as cka_data};
use crate::ui::widgets::PanelContext;
use crate::ui::widgets::heatmap::{HeatmapInput, value_text};

impl CkaExplorer {
    pub fn ui(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let (commands, jobs) = (&mut *cx.commands, cx.jobs);
        self.open_study_ui(ui.ctx(), commands, jobs);
        #[cfg(feature = "burn")]
        if let Some(form) = &mut self.run_form
            && !form.ui(ui.ctx(), commands, jobs)
        {
            self.run_form = None;
        }
        #[cfg(feature = "burn")]
        if self.study.is_some() {
            self.study_ui(ui, commands);
            return;
        }
        #[cfg(feature = "burn")]
        if self.study_run.is_some() {
            egui::Panel::top("cka_study_run").show(ui, |ui| self.study_run_ui(ui, commands));
            egui::CentralPanel::default().show(ui, |ui| {
                ui.centered_and_justified(|ui| {
                    ui.label(egui::RichText::new("The first matrices appear once two runs are trained.").weak());
                });
            });
            return;
        }
        egui::Panel::top("cka_controls").show(ui, |ui| self.controls_ui(ui, commands));
        egui::Panel::right("cka_details")
            .resizable(true)
            .default_size(300.0)
            .size_range(220.0..=520.0)
            .show(ui, |ui| self.details_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| self.heatmap_ui(ui));
    }

    /// The study view: picker and export on top, the summary column on the right, the heatmap of
    /// the picked matrix in the middle with the clicked cell's details under it.
    #[cfg(feature = "burn")]
    pub(super) fn study_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        egui::Panel::top("cka_study_controls").show(ui, |ui| {
            if self.study_run.is_some() {
                self.study_run_ui(ui, commands);
                ui.separator();
            }
            ui.add_space(4.0);
            if let Some(view) = &self.study {
                ui.label(egui::RichText::new(view.caption()).weak()).on_hover_text(view.data.dir.display().to_string());
            }
            ui.horizontal_wrapped(|ui| {
                let changed = self.study.as_mut().is_some_and(|v| v.picker_ui(ui));
                if changed && let Some(result) = self.study.as_ref().and_then(|v| v.shown()) {
                    self.set_result(result);
                }
                ui.separator();
                self.source_buttons(ui, commands);
                ui.separator();
                self.export_ui(ui, commands);
            });
            ui.add_space(2.0);
        });
        egui::Panel::right("cka_study_summary").resizable(true).default_size(470.0).size_range(320.0..=900.0).show(
            ui,
            |ui| {
                if let Some(view) = &self.study {
                    view.summary_ui(ui);
                }
            },
        );
        egui::Panel::bottom("cka_study_cell").show(ui, |ui| self.selected_cell_line(ui));
        egui::CentralPanel::default().show(ui, |ui| self.heatmap_ui(ui));
    }

    /// A running study: where it writes, its stage and progress, and Cancel.
    #[cfg(feature = "burn")]
    pub(super) fn study_run_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        let Some(run) = &self.study_run else { return };
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.strong("Running study");
            ui.label(egui::RichText::new(run.out.display().to_string()).weak());
            let cancelling = run.job.is_cancelling();
            if ui.add_enabled(!cancelling, egui::Button::new("Cancel study")).clicked() {
                commands.send(Command::CancelJob(run.job.id));
            }
            if cancelling {
                ui.label("cancelling…");
            }
        });
        let matrices = run.matrix_count();
        let stage = run.job.stage();
        let text = format!("{} · {matrices} matrices so far", stage.text);
        ui.add(egui::ProgressBar::new(stage.fraction.unwrap_or(0.0)).text(text));
        ui.add_space(2.0);
    }

    /// One line with the clicked cell's value and what it was computed from.
    #[cfg(feature = "burn")]
    pub(super) fn selected_cell_line(&self, ui: &mut egui::Ui) {
        ui.add_space(3.0);
        let text = match (&self.result, self.selected) {
            (Some(r), Some((i, j))) => format!(
                "Selected: {} ({}) × {} ({}): {} · n = {} · {} kernel · {}",
                r.rows.get(i).map_or("?", String::as_str),
                r.row_title,
                r.cols.get(j).map_or("?", String::as_str),
                r.col_title,
                r.matrix.get(i, j).map_or("undefined".into(), |v| format!("{v:.6}")),
                r.n,
                r.kernel,
                r.estimator
            ),
            _ => "Click a cell for its details.".to_string(),
        };
        ui.label(egui::RichText::new(text).small());
        ui.add_space(1.0);
    }

    /// "Open study results" window: a path (directory or results.json) and a folder dialog.
    pub(super) fn open_study_ui(&mut self, ctx: &egui::Context, commands: &mut CommandQueue, jobs: &Registry) {
        let Some(text) = &mut self.study_form else { return };
        let (mut open, mut submit, mut browse) = (true, false, false);
        egui::Window::new("Open study results")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_TOP, [0.0, 80.0])
            .show(ctx, |ui| {
                ui.label("A study directory written by `gmnscope study --out DIR` (or its results.json):");
                let edit = ui.add(egui::TextEdit::singleline(text).hint_text("/path/to/study").desired_width(420.0));
                submit |= edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                ui.add_space(6.0);
                ui.horizontal(|ui| {
                    submit |= ui.add_enabled(!text.trim().is_empty(), egui::Button::new("Open")).clicked();
                    browse |= ui.add_enabled(self.browse_job.is_none(), egui::Button::new("Browse…")).clicked();
                });
            });
        let path = text.trim().to_string();
        if submit && !path.is_empty() {
            commands.send(Command::OpenStudy(PathBuf::from(path)));
            open = false;
        }
        if browse {
            let pick = |_: &crate::jobs::Reporter<Option<PathBuf>>| {
                Ok(rfd::FileDialog::new().set_title("Open study results").pick_folder())
            };
            // Without a worker thread there is no dialog; the path field still works.
            self.browse_job = jobs.spawn("folder dialog", pick).ok();
        }
        if !open {
            self.study_form = None;
        }
    }

    /// Buttons that change what the explorer shows.
    pub(super) fn source_buttons(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        if ui.button("Open activations…").clicked() {
            commands.send(Command::ShowCkaOpenDialog);
        }
        if ui.button("Open study…").on_hover_text("Results of `gmnscope study`").clicked() {
            commands.send(Command::ShowStudyOpenDialog);
        }
        if ui
            .button("Run study…")
            .on_hover_text("Run a seed study here; matrices appear as they are computed")
            .clicked()
        {
            commands.send(Command::ShowRunStudyDialog);
        }
        if ui.button("Demo").on_hover_text("Two random-feature MLPs on procedural digits").clicked() {
            commands.send(Command::OpenCkaDemo);
        }
    }

    /// Export path field and the PNG / CSV buttons.
    pub(super) fn export_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        if self.export_stem.is_empty() {
            self.export_stem = cka_data::default_export_stem().display().to_string();
        }
        ui.add(egui::TextEdit::singleline(&mut self.export_stem).desired_width(140.0))
            .on_hover_text("Export path without extension");
        let has = self.result.is_some();
        if ui.add_enabled(has, egui::Button::new("Export PNG")).clicked() {
            commands.send(Command::ExportCka { path: PathBuf::from(format!("{}.png", self.export_stem)), png: true });
        }
        if ui.add_enabled(has, egui::Button::new("Export CSV")).clicked() {
            commands.send(Command::ExportCka { path: PathBuf::from(format!("{}.csv", self.export_stem)), png: false });
        }
        if !self.export_jobs.is_empty() || self.compute_job.is_some() || self.load_job.is_some() || self.study_loading()
        {
            ui.spinner();
        }
    }

    pub(super) fn controls_ui(&mut self, ui: &mut egui::Ui, commands: &mut CommandQueue) {
        let editable = self.pair.is_some();
        ui.add_space(4.0);
        ui.horizontal_wrapped(|ui| {
            ui.add_enabled_ui(editable, |ui| {
                ui.label("Kernel");
                ui.selectable_value(&mut self.settings.rbf, false, "Linear");
                ui.selectable_value(&mut self.settings.rbf, true, "RBF");
                if self.settings.rbf {
                    let label = ui.label("σ ×");
                    ui.add(egui::DragValue::new(&mut self.settings.sigma_frac).range(0.05..=4.0).speed(0.01))
                        .labelled_by(label.id)
                        .on_hover_text("RBF bandwidth as a fraction of the median pairwise distance");
                }
                ui.separator();
                ui.add_enabled(
                    self.settings.minibatch.is_none(),
                    egui::Checkbox::new(&mut self.settings.debiased, "Debiased"),
                )
                .on_hover_text("Unbiased HSIC estimator (minibatch CKA always uses it)");
                ui.separator();
                let mut on = self.settings.minibatch.is_some();
                if ui.checkbox(&mut on, "Minibatch").changed() {
                    self.settings.minibatch = on.then(|| self.minibatch_text.parse().unwrap_or(64));
                    self.minibatch_text = self.settings.minibatch.map(|m| m.to_string()).unwrap_or_default();
                }
                if let Some(m) = &mut self.settings.minibatch {
                    ui.add(egui::DragValue::new(m).range(4..=100_000).suffix(" examples"));
                }
            });
            ui.separator();
            self.source_buttons(ui, commands);
            ui.separator();
            self.export_ui(ui, commands);
        });
        ui.add_space(2.0);
    }

    pub(super) fn heatmap_ui(&mut self, ui: &mut egui::Ui) {
        if self.result.is_none() && self.training.is_some() {
            ui.centered_and_justified(|ui| {
                ui.label(egui::RichText::new("Live training CKA: waiting for the first epoch's checkpoint…").weak());
            });
            return;
        }
        let Some(result) = &self.result else {
            if self.has_study() && !self.study_loading() {
                ui.label(egui::RichText::new("This study has no readable CKA matrix for this pick.").weak());
                return;
            }
            let busy = if self.study_loading() { "Reading the study…" } else { "Computing CKA…" };
            ui.centered_and_justified(|ui| {
                ui.horizontal_centered(|ui| {
                    ui.spinner();
                    ui.label(busy);
                });
            });
            return;
        };
        ui.horizontal(|ui| {
            ui.heading(self.training_title().unwrap_or("Layer CKA"));
            let mut caption = format!("{} kernel · {} · n = {}", result.kernel, result.estimator, result.n);
            if let Some((done, total)) = result.batches {
                caption.push_str(&format!(" · batch {done}/{total}"));
            }
            ui.label(egui::RichText::new(caption).weak());
        });
        // A one-line readout of the hovered cell (the tooltip says the same at the pointer).
        let readout = match self.hovered {
            Some((r, c)) => format!(
                "{} × {}: {}",
                result.rows.get(r).map_or("", String::as_str),
                result.cols.get(c).map_or("", String::as_str),
                value_text(result.matrix.get(r, c))
            ),
            None => "Hover a cell to read its value; click to select it.".into(),
        };
        ui.label(egui::RichText::new(readout).monospace());
        ui.add_space(4.0);
        let input = HeatmapInput {
            matrix: &result.matrix,
            rows: &result.rows,
            cols: &result.cols,
            row_title: &result.row_title,
            col_title: &result.col_title,
            range: cka_data::colour_range(&result.matrix),
            version: self.version,
            selected: self.selected,
        };
        let out = self.heatmap.ui(ui, &input);
        self.hovered = out.hovered;
        if out.clicked.is_some() {
            self.selected = out.clicked;
        }
    }

    pub(super) fn details_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(6.0);
        ui.heading("Details");
        ui.add_space(4.0);
        let Some(result) = &self.result else {
            ui.label(egui::RichText::new("No matrix yet").weak());
            return;
        };
        let grid = |ui: &mut egui::Ui, rows: Vec<(&str, String)>| {
            egui::Grid::new(ui.next_auto_id()).num_columns(2).spacing([12.0, 4.0]).striped(true).show(ui, |ui| {
                for (k, v) in rows {
                    ui.label(egui::RichText::new(k).weak());
                    ui.label(v);
                    ui.end_row();
                }
            });
        };
        match self.selected {
            Some((r, c)) => {
                ui.label(egui::RichText::new("Selected cell").strong());
                grid(
                    ui,
                    vec![
                        ("row (A)", result.rows.get(r).cloned().unwrap_or_default()),
                        ("column (B)", result.cols.get(c).cloned().unwrap_or_default()),
                        ("value", result.matrix.get(r, c).map_or("undefined".into(), |v| format!("{v:.6}"))),
                        ("n", result.n.to_string()),
                        ("kernel", result.kernel.clone()),
                        ("estimator", result.estimator.clone()),
                    ],
                );
            }
            None => {
                ui.label(egui::RichText::new("Click a cell for its details.").weak());
            }
        }
        ui.add_space(10.0);
        ui.label(egui::RichText::new("Matrix").strong());
        let range = result.matrix.value_range().map_or("—".into(), |(lo, hi)| format!("{lo:.3} … {hi:.3}"));
        grid(
            ui,
            vec![
                ("A (rows)", result.row_title.clone()),
                ("B (columns)", result.col_title.clone()),
                ("size", format!("{} × {}", result.matrix.rows(), result.matrix.cols())),
                ("values", range),
                ("undefined", result.matrix.undefined_count().to_string()),
            ],
        );
        if self.training.is_some() {
            ui.add_space(6.0);
            ui.label(
                egui::RichText::new(
                    "Live: the GMN's blocks at the newest checkpoint (rows) vs at initialisation (columns), \
                     updated after every epoch. Settings are fixed.",
                )
                .weak(),
            );
        } else if self.pair.is_none() {
            ui.add_space(6.0);
            ui.label(egui::RichText::new("Loaded from a results file: settings are fixed.").weak());
        }
    }
}
