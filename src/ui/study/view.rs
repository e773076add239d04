//! The CKA explorer's study view (feature `burn`): a finished seed study (`gmnscope study`) read
//! back by [`crate::study::reader`]. It owns the matrix picker (family pair, then seed pair or the
//! mean over seed pairs) whose pick the explorer draws with its heatmap widget, and the summary
//! column: the seed-comparison plot (same-layer cross-seed CKA against layer depth, per family:
//! mean line and min-max band), the cross-family CKA bars, the prediction-agreement bars and the
//! accuracy table. Every number comes from the study files or the core reader; nothing is
//! computed here. A study still running (`super::run`) is shown the same way from its partial
//! results, [`StudyView::update`]d as matrices arrive.
//!
//! Over ~450 lines on purpose: the picker and the three summary plots share the view's state
//! and one read of the study; split further they would pass that state around for no gain.

use std::sync::Arc;

use egui::{Color32, RichText};
use egui_plot::{
    AxisHints, Bar, BarChart, ColorConflictHandling, Corner, FilledArea, GridMark, Legend, Line, Plot, PlotPoint,
    PlotPoints, Points, Text,
};

use crate::cka::Matrix;
use crate::study::figures::family_colour;
use crate::study::reader::{self, AccuracyRow, CrossFamily, RunId, SeedCurve, StudyData};
use crate::ui::cka::data::CkaResult;

/// Row layer names, column layer names and the values (`None` where undefined).
type LabelledMatrix = (Vec<String>, Vec<String>, Vec<Vec<Option<f64>>>);

/// Which matrix the heatmap shows: rows of family `rows`, columns of family `cols`, and either one
/// seed pair or (`None`) the mean over seed pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StudyPick {
    pub rows: String,
    pub cols: String,
    pub seeds: Option<(u64, u64)>,
}

pub struct StudyView {
    pub data: Arc<StudyData>,
    pick: StudyPick,
    curves: Vec<SeedCurve>,
    cross: Vec<CrossFamily>,
    accuracy: Vec<AccuracyRow>,
}

const PLOT_HEIGHT: f32 = 190.0;
const BAR_HEIGHT: f32 = 150.0;

impl StudyView {
    /// The view of a loaded study, showing the first family pair's first seed pair.
    pub fn new(data: StudyData) -> Self {
        let data = Arc::new(data);
        let pick = match data.family_pairs().into_iter().next() {
            Some((rows, cols)) => {
                let seeds = data.seed_pairs(&rows, &cols).first().copied();
                StudyPick { rows, cols, seeds }
            }
            None => StudyPick { rows: String::new(), cols: String::new(), seeds: None },
        };
        Self {
            curves: reader::seed_curves(&data.results),
            cross: reader::cross_family(&data.results),
            accuracy: reader::accuracy_table(&data.results),
            data,
            pick,
        }
    }

    /// Replaces the data (newer partial results of a running study), keeping the pick when the
    /// new data has that matrix too.
    pub fn update(&mut self, data: StudyData) {
        let pick = self.pick.clone();
        *self = Self::new(data);
        self.set_pick(pick);
    }

    pub fn pick(&self) -> &StudyPick {
        &self.pick
    }

    /// The seed-comparison curves as plotted (tests compare them with `results.json`).
    pub fn curves(&self) -> &[SeedCurve] {
        &self.curves
    }

    /// Shows another matrix; false (and no change) when the study has no such matrix.
    pub fn set_pick(&mut self, pick: StudyPick) -> bool {
        let exists = match pick.seeds {
            Some(s) => self.data.seed_pairs(&pick.rows, &pick.cols).contains(&s),
            None => self.mean_matrix(&pick.rows, &pick.cols).is_some(),
        };
        if exists {
            self.pick = pick;
        }
        exists
    }

    /// The mean matrix over seed pairs of (rows, cols), transposing a stored (cols, rows) summary.
    fn mean_matrix(&self, rows: &str, cols: &str) -> Option<LabelledMatrix> {
        let pairs = &self.data.results.cka.pairs;
        if let Some(p) = pairs.get(&format!("{rows}-{cols}")) {
            return Some((p.row_layers.clone(), p.col_layers.clone(), p.mean_matrix.clone()));
        }
        let p = pairs.get(&format!("{cols}-{rows}"))?;
        let t = (0..p.col_layers.len())
            .map(|j| p.mean_matrix.iter().map(|r| r.get(j).copied().flatten()).collect())
            .collect();
        Some((p.col_layers.clone(), p.row_layers.clone(), t))
    }

    /// The picked matrix as the explorer's heatmap input.
    pub fn shown(&self) -> Option<CkaResult> {
        let StudyPick { rows: fa, cols: fb, seeds } = &self.pick;
        let (rows, cols, values, row_title, col_title, estimator) = match seeds {
            Some((sa, sb)) => {
                let m = self.data.matrix(&RunId::new(fa, *sa), &RunId::new(fb, *sb))?;
                let title = |f: &str, s: u64| format!("{} seed {s}", f.to_uppercase());
                (
                    m.rows,
                    m.cols,
                    m.values,
                    title(fa, *sa),
                    title(fb, *sb),
                    format!("{} · {}", estimator(&self.data), m.file),
                )
            }
            None => {
                let (rows, cols, values) = self.mean_matrix(fa, fb)?;
                let title = |f: &str| format!("{} (mean over seed pairs)", f.to_uppercase());
                (rows, cols, values, title(fa), title(fb), format!("{}, mean over seed pairs", estimator(&self.data)))
            }
        };
        let results = &self.data.results;
        Some(CkaResult {
            matrix: Matrix::from_rows(&values),
            rows,
            cols,
            row_title,
            col_title,
            n: results.probe.samples,
            kernel: kernel_label(&results.cka_estimator).to_string(),
            estimator,
            batches: None,
        })
    }

    /// The family-pair and seed-pair pickers; true when the pick changed.
    pub fn picker_ui(&mut self, ui: &mut egui::Ui) -> bool {
        let before = self.pick.clone();
        let mut pick = self.pick.clone();
        let label = ui.label("Families");
        let pair_text = |a: &str, b: &str| {
            let what = if a == b { " (across seeds)" } else { "" };
            format!("{} × {}{what}", a.to_uppercase(), b.to_uppercase())
        };
        egui::ComboBox::from_id_salt("study_family_pair")
            .selected_text(pair_text(&pick.rows, &pick.cols))
            .width(190.0)
            .show_ui(ui, |ui| {
                for (a, b) in self.data.family_pairs() {
                    let on = pick.rows == a && pick.cols == b;
                    if ui.selectable_label(on, pair_text(&a, &b)).clicked() && !on {
                        let seeds = self.data.seed_pairs(&a, &b).first().copied();
                        pick = StudyPick { rows: a, cols: b, seeds };
                    }
                }
            })
            .response
            .labelled_by(label.id);
        let label = ui.label("Seeds");
        let seed_text = |s: Option<(u64, u64)>| match s {
            Some((a, b)) => format!("seed {a} × seed {b}"),
            None => "mean over seed pairs".to_string(),
        };
        egui::ComboBox::from_id_salt("study_seed_pair")
            .selected_text(seed_text(pick.seeds))
            .width(170.0)
            .height(420.0)
            .show_ui(ui, |ui| {
                if self.mean_matrix(&pick.rows, &pick.cols).is_some() {
                    ui.selectable_value(&mut pick.seeds, None, seed_text(None));
                }
                for s in self.data.seed_pairs(&pick.rows, &pick.cols) {
                    ui.selectable_value(&mut pick.seeds, Some(s), seed_text(Some(s)));
                }
            })
            .response
            .labelled_by(label.id);
        pick != before && self.set_pick(pick)
    }

    /// One line saying what the study is (the directory by name; its full path is on hover).
    pub fn caption(&self) -> String {
        let r = &self.data.results;
        format!(
            "Study '{}' · {} seeds · {} CKA · {} probe samples · {}",
            r.name,
            r.seeds.len(),
            r.cka_estimator,
            r.probe.samples,
            self.data
                .dir
                .file_name()
                .map_or_else(|| self.data.dir.display().to_string(), |n| n.to_string_lossy().into())
        )
    }

    /// The summary column: seed comparison, cross-family bars, agreement, accuracy.
    pub fn summary_ui(&self, ui: &mut egui::Ui) {
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            ui.add_space(6.0);
            ui.heading("Seed comparison");
            ui.label(RichText::new("Same-layer CKA between seeds (mean line, min–max band over seed pairs)").weak());
            self.seed_plot(ui);
            ui.horizontal_wrapped(|ui| {
                for c in &self.curves {
                    let text = match &c.overall {
                        Some(s) => {
                            format!("{}: mean {:.3} ({:.3}–{:.3})", c.family.to_uppercase(), s.mean, s.min, s.max)
                        }
                        None => format!("{}: undefined", c.family.to_uppercase()),
                    };
                    ui.label(RichText::new(text).color(colour(&c.family)).small());
                }
            });
            ui.add_space(10.0);
            ui.heading("Cross-family CKA");
            ui.label(RichText::new("Over every layer pair and seed pair").weak());
            self.cross_family_plot(ui);
            ui.add_space(10.0);
            ui.heading("Prediction agreement");
            ui.label(RichText::new(&self.data.results.agreement.rule).weak().small());
            self.agreement_plot(ui);
            self.agreement_table(ui);
            ui.add_space(10.0);
            ui.heading("Accuracy on the probe set");
            self.accuracy_table(ui);
            ui.add_space(8.0);
        });
    }

    fn seed_plot(&self, ui: &mut egui::Ui) {
        let plot = Plot::new("study_seed_plot")
            .height(PLOT_HEIGHT)
            // Band, line and markers of a family share one legend entry, in the markers' colour.
            .legend(
                Legend::default().position(Corner::LeftBottom).color_conflict_handling(ColorConflictHandling::PickLast),
            )
            .include_x(0.0)
            .include_x(1.0)
            .include_y(0.0)
            .include_y(1.0)
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .x_axis_label("layer depth (0 = first layer, 1 = last)")
            .y_axis_label("CKA");
        let curves = &self.curves;
        let plot = plot.label_formatter(move |pos| {
            let egui_plot::HoverPosition::NearDataPoint { plot_name, position, .. } = pos else { return None };
            let curve = curves.iter().find(|c| c.family.to_uppercase() == *plot_name)?;
            let p = curve
                .points
                .iter()
                .min_by(|a, b| (a.depth - position.x).abs().total_cmp(&(b.depth - position.x).abs()))?;
            Some(format!(
                "{} {}\nmean {:.3} (min {:.3}, max {:.3}, {} pairs)",
                plot_name, p.layer, p.stats.mean, p.stats.min, p.stats.max, p.stats.count
            ))
        });
        plot.show(ui, |plot| {
            for c in curves {
                let name = c.family.to_uppercase();
                let colour = colour(&c.family);
                let xs: Vec<f64> = c.points.iter().map(|p| p.depth).collect();
                let lo: Vec<f64> = c.points.iter().map(|p| p.stats.min).collect();
                let hi: Vec<f64> = c.points.iter().map(|p| p.stats.max).collect();
                plot.add(FilledArea::new(&name, &xs, &lo, &hi).fill_color(colour.gamma_multiply(0.22)));
                let means: Vec<[f64; 2]> = c.points.iter().map(|p| [p.depth, p.stats.mean]).collect();
                plot.line(Line::new(&name, PlotPoints::from(means.clone())).color(colour).width(2.0));
                plot.add(Points::new(&name, PlotPoints::from(means)).color(colour).radius(3.5));
            }
        });
    }

    fn cross_family_plot(&self, ui: &mut egui::Ui) {
        let names: Vec<String> =
            self.cross.iter().map(|c| format!("{}×{}", c.a.to_uppercase(), c.b.to_uppercase())).collect();
        let bars = |value: fn(&CrossFamily) -> Option<f64>, offset: f64, what: &str, colour: Color32| {
            self.cross
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    value(c).map(|v| {
                        Bar::new(i as f64 + offset, v).width(0.36).fill(colour).name(format!("{} {what}", names[i]))
                    })
                })
                .collect::<Vec<Bar>>()
        };
        let (mean_colour, max_colour) = (Color32::from_rgb(229, 160, 60), Color32::from_rgb(150, 150, 160));
        let mean = BarChart::new("mean", bars(|c| c.mean, -0.19, "mean", mean_colour)).color(mean_colour);
        let max = BarChart::new("max", bars(|c| c.max, 0.19, "max", max_colour)).color(max_colour);
        let labels = names.clone();
        Plot::new("study_cross_family")
            .height(BAR_HEIGHT)
            .legend(Legend::default().position(Corner::RightTop))
            .include_y(0.0)
            .include_y(1.05)
            .include_x(-0.6)
            .include_x(self.cross.len() as f64 - 0.4)
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .show_grid([false, true])
            .x_grid_spacer(category_marks)
            .x_axis_formatter(move |mark, _| category_label(&labels, mark.value))
            .y_axis_label("CKA")
            .show(ui, |plot| {
                plot.add(mean);
                plot.add(max);
                for (i, c) in self.cross.iter().enumerate() {
                    if let Some(v) = c.mean {
                        plot.text(
                            Text::new("", PlotPoint::new(i as f64 - 0.19, v), format!("{v:.2}"))
                                .anchor(egui::Align2::CENTER_BOTTOM),
                        );
                    }
                }
            });
    }

    /// Horizontal bars, first category on top (room for the category names on the axis).
    fn agreement_plot(&self, ui: &mut egui::Ui) {
        let bars = reader::agreement_bars(&self.data.results);
        let slot = |i: usize| (bars.len() - 1 - i) as f64;
        let mut labels = vec![String::new(); bars.len()];
        for (i, (name, _)) in bars.iter().enumerate() {
            labels[bars.len() - 1 - i] = name.to_string();
        }
        let chart = BarChart::new(
            "samples",
            bars.iter()
                .enumerate()
                .map(|(i, (name, count))| {
                    Bar::new(slot(i), *count as f64).width(0.7).name(*name).fill(agreement_colour(name))
                })
                .collect(),
        )
        .horizontal();
        let top = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
        Plot::new("study_agreement")
            .height(BAR_HEIGHT + 20.0)
            .include_x(0.0)
            .include_x(top * 1.15)
            .include_y(-0.6)
            .include_y(bars.len() as f64 - 0.4)
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .show_grid([true, false])
            .y_grid_spacer(category_marks)
            // Category names on every row (the default hides labels closer than 20 points).
            .custom_y_axes(vec![
                AxisHints::new_y()
                    .formatter(move |mark, _| category_label(&labels, mark.value))
                    .label_spacing(10.0..=12.0)
                    .min_thickness(84.0),
            ])
            .x_axis_label("probe samples")
            .show(ui, |plot| {
                plot.add(chart);
                for (i, (_, count)) in bars.iter().enumerate() {
                    plot.text(
                        Text::new("", PlotPoint::new(*count as f64 + top * 0.02, slot(i)), count.to_string())
                            .anchor(egui::Align2::LEFT_CENTER),
                    );
                }
            });
    }

    fn agreement_table(&self, ui: &mut egui::Ui) {
        let bars = reader::agreement_bars(&self.data.results);
        let total = self.data.results.agreement.total.max(1) as f64;
        egui::Grid::new("study_agreement_table").num_columns(3).spacing([14.0, 2.0]).striped(true).show(ui, |ui| {
            for (name, count) in bars {
                ui.label(RichText::new(name).color(agreement_colour(name)));
                ui.label(RichText::new(count.to_string()).monospace());
                ui.label(RichText::new(format!("{:.1} %", 100.0 * count as f64 / total)).weak().small());
                ui.end_row();
            }
            ui.label(RichText::new("total").weak());
            ui.label(RichText::new(self.data.results.agreement.total.to_string()).monospace());
            ui.end_row();
        });
    }

    fn accuracy_table(&self, ui: &mut egui::Ui) {
        let seeds = &self.data.results.seeds;
        let percent = |a: Option<f64>| a.map_or("—".to_string(), |a| format!("{:.1} %", 100.0 * a));
        egui::Grid::new("study_accuracy").num_columns(seeds.len() + 2).spacing([14.0, 4.0]).striped(true).show(
            ui,
            |ui| {
                ui.label(RichText::new("family").weak());
                for s in seeds {
                    ui.label(RichText::new(format!("seed {s}")).weak());
                }
                ui.label(RichText::new("mean").weak().strong());
                ui.end_row();
                for row in &self.accuracy {
                    ui.label(RichText::new(row.family.to_uppercase()).color(colour(&row.family)).strong());
                    for (_, acc) in &row.per_seed {
                        ui.label(RichText::new(percent(*acc)).monospace());
                    }
                    ui.label(RichText::new(percent(row.mean)).monospace().strong());
                    ui.end_row();
                }
            },
        );
    }
}

/// The kernel as the details panel names it, from `results.json`'s `cka_estimator`.
fn kernel_label(estimator: &str) -> &'static str {
    match estimator {
        "rbf" => "RBF",
        _ => "linear",
    }
}

fn estimator(data: &StudyData) -> &'static str {
    if data.results.cka_estimator == "debiased" { "unbiased" } else { "biased" }
}

fn colour(family: &str) -> Color32 {
    let [r, g, b] = family_colour(family);
    Color32::from_rgb(r, g, b)
}

fn agreement_colour(name: &str) -> Color32 {
    match name {
        "GMN only" => colour("gmn"),
        "MLP only" => colour("mlp"),
        "CNN only" => colour("cnn"),
        "all three" => Color32::from_rgb(120, 120, 200),
        "none" => Color32::from_gray(110),
        _ => Color32::from_rgb(170, 160, 120),
    }
}

/// One x-axis mark per category (integer positions).
fn category_marks(input: egui_plot::GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let (first, last) = (lo.ceil().max(0.0) as i64, hi.floor().min(64.0) as i64);
    (first..=last).map(|i| GridMark { value: i as f64, step_size: 1.0 }).collect()
}

fn category_label(labels: &[String], value: f64) -> String {
    let i = value.round();
    if (value - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    labels.get(i as usize).cloned().unwrap_or_default()
}
