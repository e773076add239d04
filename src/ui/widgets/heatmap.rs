//! An interactive labelled heatmap of a CKA matrix: the cells are one egui texture (viridis,
//! nearest filtering, rebuilt only when the matrix changes), row labels on the left, rotated
//! column labels below, axis titles, a colour bar with ticks, a hover highlight with a tooltip
//! (value and both layer names) and click-to-select.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Vec2, pos2, vec2};

use crate::cka::Matrix;
use crate::render::colormap::{luminance, viridis};

const MAX_CELL: f32 = 72.0;
const ANNOTATE_MIN_CELL: f32 = 38.0;
const BAR_WIDTH: f32 = 16.0;
const LABEL_FONT: f32 = 13.0;

/// What to draw (borrowed from the explorer's current result).
pub struct HeatmapInput<'a> {
    pub matrix: &'a Matrix,
    pub rows: &'a [String],
    pub cols: &'a [String],
    pub row_title: &'a str,
    pub col_title: &'a str,
    pub range: (f64, f64),
    /// Changes whenever the matrix does (the texture is rebuilt then).
    pub version: u64,
    pub selected: Option<(usize, usize)>,
}

#[derive(Default)]
pub struct HeatmapOutput {
    pub hovered: Option<(usize, usize)>,
    pub clicked: Option<(usize, usize)>,
}

/// The widget's state: the cell texture and where the grid was last drawn (tests hover cells).
#[derive(Default)]
pub struct HeatmapView {
    texture: Option<(egui::TextureHandle, u64)>,
    grid: Option<(Rect, usize, usize)>,
}

impl HeatmapView {
    /// Screen centre of cell (row, col) as last drawn.
    pub fn cell_center(&self, row: usize, col: usize) -> Option<Pos2> {
        let (rect, rows, cols) = self.grid?;
        (row < rows && col < cols).then(|| {
            let cell = vec2(rect.width() / cols as f32, rect.height() / rows as f32);
            rect.min + vec2((col as f32 + 0.5) * cell.x, (row as f32 + 0.5) * cell.y)
        })
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, input: &HeatmapInput<'_>) -> HeatmapOutput {
        let (rows, cols) = (input.matrix.rows(), input.matrix.cols());
        let mut out = HeatmapOutput::default();
        if rows == 0 || cols == 0 || input.rows.len() != rows || input.cols.len() != cols {
            ui.label("Empty matrix");
            return out;
        }
        let texture = self.texture(ui.ctx(), input);
        let text = ui.visuals().text_color();
        let weak = ui.visuals().weak_text_color();
        let font = FontId::proportional(LABEL_FONT);
        let width_of = |s: &str| ui.fonts_mut(|f| f.layout_no_wrap(s.to_string(), font.clone(), text).size().x);
        let row_w =
            input.rows.iter().map(|s| width_of(&crate::text::shown(s).to_string())).fold(0.0, f32::max).min(220.0);
        let col_h =
            input.cols.iter().map(|s| width_of(&crate::text::shown(s).to_string())).fold(0.0, f32::max).min(220.0);
        let avail = ui.available_rect_before_wrap();
        let (left, bottom, right, top) = (row_w + 34.0, col_h + 36.0, BAR_WIDTH + 70.0, 12.0);
        let cell = ((avail.width() - left - right) / cols as f32)
            .min((avail.height() - top - bottom) / rows as f32)
            .clamp(4.0, MAX_CELL);
        let grid = Rect::from_min_size(avail.min + vec2(left, top), vec2(cell * cols as f32, cell * rows as f32));
        let total = Rect::from_min_max(avail.min, pos2(grid.max.x + right, grid.max.y + bottom));
        ui.allocate_rect(total, Sense::hover());
        let response = ui.interact(grid, ui.scope_id().with("cka_grid"), Sense::click());
        self.grid = Some((grid, rows, cols));
        let painter = ui.painter_at(total.expand(2.0));
        let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
        painter.image(texture, grid, uv, Color32::WHITE);
        let at = |p: Pos2| {
            let (c, r) = (((p.x - grid.min.x) / cell) as usize, ((p.y - grid.min.y) / cell) as usize);
            (grid.contains(p) && r < rows && c < cols).then_some((r, c))
        };
        out.hovered = response.hover_pos().and_then(at);
        if response.clicked() {
            out.clicked = response.interact_pointer_pos().and_then(at);
        }
        let cell_rect = |(r, c): (usize, usize)| {
            Rect::from_min_size(grid.min + vec2(c as f32 * cell, r as f32 * cell), Vec2::splat(cell))
        };
        if cell >= ANNOTATE_MIN_CELL {
            for r in 0..rows {
                for c in 0..cols {
                    let Some(v) = input.matrix.get(r, c) else { continue };
                    let bg = viridis(unit(v, input.range));
                    let ink = if luminance(bg) > 0.45 { Color32::BLACK } else { Color32::WHITE };
                    let size = (cell * 0.26).min(13.0);
                    painter.text(
                        cell_rect((r, c)).center(),
                        Align2::CENTER_CENTER,
                        format!("{v:.2}"),
                        FontId::proportional(size),
                        ink,
                    );
                }
            }
        }
        // Labels, emphasised on the hovered row/column.
        let strong = |on: bool| if on { text } else { weak };
        for (r, name) in input.rows.iter().enumerate() {
            let on = out.hovered.is_some_and(|h| h.0 == r) || input.selected.is_some_and(|s| s.0 == r);
            let y = grid.min.y + (r as f32 + 0.5) * cell;
            painter.text(
                pos2(grid.min.x - 6.0, y),
                Align2::RIGHT_CENTER,
                crate::text::shown(name).to_string(),
                font.clone(),
                strong(on),
            );
        }
        for (c, name) in input.cols.iter().enumerate() {
            let on = out.hovered.is_some_and(|h| h.1 == c) || input.selected.is_some_and(|s| s.1 == c);
            let galley =
                ui.fonts_mut(|f| f.layout_no_wrap(crate::text::shown(name).to_string(), font.clone(), strong(on)));
            let x = grid.min.x + (c as f32 + 0.5) * cell - galley.size().y / 2.0;
            let pos = pos2(x, grid.max.y + 6.0 + galley.size().x);
            painter.add(egui::epaint::TextShape::new(pos, galley, strong(on)).with_angle(-std::f32::consts::FRAC_PI_2));
        }
        let title_font = FontId::proportional(12.0);
        painter.text(
            pos2(grid.center().x, grid.max.y + col_h + 14.0),
            Align2::CENTER_TOP,
            input.col_title,
            title_font.clone(),
            weak,
        );
        let galley = ui.fonts_mut(|f| f.layout_no_wrap(input.row_title.to_string(), title_font, weak));
        let pos = pos2(avail.min.x + 2.0, grid.center().y + galley.size().x / 2.0);
        painter.add(egui::epaint::TextShape::new(pos, galley, weak).with_angle(-std::f32::consts::FRAC_PI_2));
        colour_bar(
            &painter,
            Rect::from_min_size(pos2(grid.max.x + 16.0, grid.min.y), vec2(BAR_WIDTH, grid.height())),
            input.range,
            text,
        );
        // Selection and hover outlines on top of the cells.
        let outline = if ui.visuals().dark_mode { Color32::WHITE } else { Color32::BLACK };
        if let Some(sel) = input.selected {
            painter.rect_stroke(cell_rect(sel), 0.0, Stroke::new(2.5, outline), egui::StrokeKind::Inside);
        }
        if let Some(h) = out.hovered {
            painter.rect_stroke(
                cell_rect(h),
                0.0,
                Stroke::new(1.5, outline.gamma_multiply(0.8)),
                egui::StrokeKind::Inside,
            );
            let (r, c) = h;
            response.on_hover_ui_at_pointer(|ui| {
                ui.label(egui::RichText::new(value_text(input.matrix.get(r, c))).strong().monospace());
                ui.label(format!("row: {}", crate::text::shown(&input.rows[r])));
                ui.label(format!("col: {}", crate::text::shown(&input.cols[c])));
            });
        }
        out
    }

    fn texture(&mut self, ctx: &egui::Context, input: &HeatmapInput<'_>) -> egui::TextureId {
        if let Some((t, version)) = &self.texture
            && *version == input.version
        {
            return t.id();
        }
        let (rows, cols) = (input.matrix.rows(), input.matrix.cols());
        let undefined =
            if ctx.global_style().visuals.dark_mode { Color32::from_gray(70) } else { Color32::from_gray(205) };
        let pixels = (0..rows * cols)
            .map(|k| match input.matrix.get(k / cols, k % cols) {
                Some(v) => {
                    let [r, g, b] = viridis(unit(v, input.range));
                    Color32::from_rgb(r, g, b)
                }
                None => undefined,
            })
            .collect();
        let image = egui::ColorImage::new([cols, rows], pixels);
        let handle = ctx.load_texture("cka heatmap", image, egui::TextureOptions::NEAREST);
        let id = handle.id();
        self.texture = Some((handle, input.version));
        id
    }
}

/// The tooltip / readout text of one entry (6 decimals: what the tests compare against).
pub fn value_text(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("CKA = {v:.6}"),
        None => "CKA undefined (constant layer)".into(),
    }
}

fn unit(v: f64, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo { (v - lo) / (hi - lo) } else { 0.5 }
}

/// A vertical viridis bar (high at the top) with about five round-number ticks.
fn colour_bar(painter: &egui::Painter, rect: Rect, range: (f64, f64), ink: Color32) {
    const STEPS: usize = 64;
    let h = rect.height() / STEPS as f32;
    for k in 0..STEPS {
        let t = 1.0 - (k as f64 + 0.5) / STEPS as f64;
        let [r, g, b] = viridis(t);
        let y = rect.min.y + k as f32 * h;
        painter.rect_filled(
            Rect::from_min_size(pos2(rect.min.x, y), vec2(rect.width(), h + 0.5)),
            0.0,
            Color32::from_rgb(r, g, b),
        );
    }
    painter.rect_stroke(rect, 0.0, Stroke::new(1.0, ink.gamma_multiply(0.4)), egui::StrokeKind::Outside);
    let (lo, hi) = range;
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return;
    }
    // A hair under a quarter, so a range of 1.0000001 still gets quarter ticks.
    let step = nice_step((hi - lo) / 4.0 * (1.0 - 1e-6));
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-6 {
        let y = rect.max.y - ((v - lo) / (hi - lo)) as f32 * rect.height();
        painter.line_segment([pos2(rect.max.x, y), pos2(rect.max.x + 4.0, y)], Stroke::new(1.0, ink));
        let label = if v.abs() < step * 1e-6 { "0.00".to_string() } else { format!("{v:.2}") };
        painter.text(pos2(rect.max.x + 7.0, y), Align2::LEFT_CENTER, label, FontId::proportional(12.0), ink);
        v += step;
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nice_steps_are_round() {
        assert_eq!(super::nice_step(0.25), 0.25);
        assert_eq!(super::nice_step(0.3), 0.5);
        assert_eq!(super::nice_step(0.07), 0.1);
    }
}
