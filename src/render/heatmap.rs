//! A labelled heatmap (CKA matrices): title, row/column layer names, optional value annotations,
//! undefined cells in grey, and a colour bar with ticks. Viridis colours.

use std::path::Path;

use super::Error;
use super::canvas::{Align, Canvas, INK, Rgb, TextStyle, WHITE};
use super::colormap::{luminance, viridis};

const MARGIN: f32 = 24.0;
const TITLE_SIZE: f32 = 22.0;
const AXIS_TITLE_SIZE: f32 = 16.0;
const LABEL_SIZE: f32 = 15.0;
const TICK_SIZE: f32 = 14.0;
const UNDEFINED: Rgb = [215, 215, 215];
/// Side of the whole grid we aim for; cells stay between the two limits below.
const GRID_TARGET: f32 = 640.0;
const MIN_CELL: f32 = 14.0;
const MAX_CELL: f32 = 80.0;
/// Cells at least this large get their value written in them.
const ANNOTATE_MIN_CELL: f32 = 42.0;

/// Most layers a heatmap side can show: cells are at least [`MIN_CELL`] pixels and a canvas
/// side at most 16,384, less room for labels.
pub const MAX_HEATMAP_LAYERS: usize = 1000;

/// Refuses, before a matrix is computed, a heatmap that could not be drawn.
pub fn check_heatmap_size(rows: usize, cols: usize) -> Result<(), String> {
    if rows.max(cols) > MAX_HEATMAP_LAYERS {
        return Err(format!(
            "a {rows} x {cols} heatmap has more than {MAX_HEATMAP_LAYERS} layers on a side ({MIN_CELL} pixels each)"
        ));
    }
    Ok(())
}

/// What to draw. `values[i][j]` is row i, column j; `None` is an undefined entry.
#[derive(Clone, Debug)]
pub struct Heatmap<'a> {
    pub title: &'a str,
    /// Axis titles, e.g. the two files compared.
    pub row_title: &'a str,
    pub col_title: &'a str,
    pub row_labels: &'a [String],
    pub col_labels: &'a [String],
    pub values: &'a [Vec<Option<f64>>],
    /// Values mapped to the ends of the colour map (others are clamped).
    pub range: (f64, f64),
}

impl Heatmap<'_> {
    fn check(&self) -> Result<(usize, usize), Error> {
        let rows = self.values.len();
        let cols = self.values.first().map_or(0, Vec::len);
        if rows == 0
            || cols == 0
            || self.values.iter().any(|r| r.len() != cols)
            || self.row_labels.len() != rows
            || self.col_labels.len() != cols
        {
            return Err(Error::Shape {
                rows,
                cols,
                row_labels: self.row_labels.len(),
                col_labels: self.col_labels.len(),
            });
        }
        let (lo, hi) = self.range;
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return Err(Error::Range { lo, hi });
        }
        Ok((rows, cols))
    }

    fn colour(&self, v: f64) -> Rgb {
        let (lo, hi) = self.range;
        viridis((v - lo) / (hi - lo))
    }

    /// Lays out and draws the figure.
    pub fn render(&self) -> Result<Canvas, Error> {
        let (rows, cols) = self.check()?;
        // A scratch canvas only measures text.
        let measure = Canvas::new(1, 1)?;
        let text_w = |s: &str, size| measure.text_size(s, size).0;
        let cell = (GRID_TARGET / rows.max(cols) as f32).clamp(MIN_CELL, MAX_CELL).floor();
        let label_h = measure.text_size("Ag", LABEL_SIZE).1;
        let axis_h = measure.text_size("Ag", AXIS_TITLE_SIZE).1;
        let row_label_w = self.row_labels.iter().map(|l| text_w(l, LABEL_SIZE)).fold(0.0, f32::max);
        let col_label_w = self.col_labels.iter().map(|l| text_w(l, LABEL_SIZE)).fold(0.0, f32::max);
        // Column labels run horizontally when they fit in a cell, else vertically.
        let vertical_cols = col_label_w > cell - 4.0;
        let col_label_band = if vertical_cols { col_label_w } else { label_h };
        let ticks = self.ticks();
        let tick_w = ticks.iter().map(|(_, s)| text_w(s, TICK_SIZE)).fold(0.0, f32::max);

        let grid_x = (MARGIN + axis_h + 10.0 + row_label_w + 8.0).round();
        let grid_y = (MARGIN + measure.text_size("Ag", TITLE_SIZE).1 + 16.0).round();
        let (grid_w, grid_h) = (cell * cols as f32, cell * rows as f32);
        let bar_h = grid_h.max(160.0);
        let bar_x = grid_x + grid_w + 28.0;
        let width = (bar_x + 18.0 + 8.0 + tick_w + MARGIN).max(text_w(self.title, TITLE_SIZE) + 2.0 * MARGIN);
        let height = grid_y + bar_h.max(grid_h + 8.0 + col_label_band + 10.0 + axis_h) + MARGIN;
        let mut canvas = Canvas::new(width.ceil() as usize, height.ceil() as usize)?;

        canvas.text(self.title, width / 2.0, MARGIN, TextStyle::new(TITLE_SIZE, INK, Align::Centre, Align::Start));
        self.draw_cells(&mut canvas, grid_x, grid_y, cell);
        for (i, label) in self.row_labels.iter().enumerate() {
            let y = grid_y + (i as f32 + 0.5) * cell;
            canvas.text(label, grid_x - 8.0, y, TextStyle::new(LABEL_SIZE, INK, Align::End, Align::Centre));
        }
        for (j, label) in self.col_labels.iter().enumerate() {
            let x = grid_x + (j as f32 + 0.5) * cell;
            if vertical_cols {
                canvas.text_vertical(
                    label,
                    x,
                    grid_y + grid_h + 8.0,
                    TextStyle::new(LABEL_SIZE, INK, Align::End, Align::Centre),
                );
            } else {
                canvas.text(
                    label,
                    x,
                    grid_y + grid_h + 6.0,
                    TextStyle::new(LABEL_SIZE, INK, Align::Centre, Align::Start),
                );
            }
        }
        let col_title_y = grid_y + grid_h + 8.0 + col_label_band + 10.0;
        canvas.text(
            self.col_title,
            grid_x + grid_w / 2.0,
            col_title_y,
            TextStyle::new(AXIS_TITLE_SIZE, INK, Align::Centre, Align::Start),
        );
        canvas.text_vertical(
            self.row_title,
            MARGIN,
            grid_y + grid_h / 2.0,
            TextStyle::new(AXIS_TITLE_SIZE, INK, Align::Centre, Align::Start),
        );
        self.draw_colour_bar(&mut canvas, bar_x, grid_y, bar_h, &ticks);
        Ok(canvas)
    }

    fn draw_cells(&self, canvas: &mut Canvas, x0: f32, y0: f32, cell: f32) {
        let annotate = cell >= ANNOTATE_MIN_CELL;
        let value_size = (cell * 0.28).clamp(11.0, 17.0);
        for (i, row) in self.values.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let (x, y) = ((x0 + j as f32 * cell) as i64, (y0 + i as f32 * cell) as i64);
                let fill = v.map_or(UNDEFINED, |v| self.colour(v));
                // One-pixel white gaps separate the cells.
                canvas.fill_rect(x, y, cell as i64 - 1, cell as i64 - 1, fill);
                if annotate {
                    let text = v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}"));
                    let ink = if luminance(fill) > 0.35 { INK } else { WHITE };
                    let (cx, cy) = (x as f32 + cell / 2.0, y as f32 + cell / 2.0);
                    canvas.text(&text, cx, cy, TextStyle::new(value_size, ink, Align::Centre, Align::Centre));
                }
            }
        }
    }

    /// Five evenly spaced ticks over the range, labelled with as few decimals as tell them apart.
    fn ticks(&self) -> Vec<(f64, String)> {
        let (lo, hi) = self.range;
        let step = (hi - lo) / 4.0;
        let decimals = (-(step.log10().floor()) as i32).clamp(0, 6) as usize + 1;
        (0..=4).map(|k| lo + step * k as f64).map(|v| (v, format!("{v:.decimals$}"))).collect()
    }

    fn draw_colour_bar(&self, canvas: &mut Canvas, x: f32, y: f32, h: f32, ticks: &[(f64, String)]) {
        let (lo, hi) = self.range;
        let (xi, yi, hi_px) = (x as i64, y as i64, h as i64);
        for k in 0..hi_px {
            let t = 1.0 - k as f64 / (hi_px - 1).max(1) as f64;
            canvas.fill_rect(xi, yi + k, 18, 1, viridis(t));
        }
        canvas.stroke_rect(xi - 1, yi - 1, 20, hi_px + 2, INK);
        for (v, label) in ticks {
            let ty = y + ((hi - v) / (hi - lo)) as f32 * (h - 1.0);
            canvas.fill_rect(xi + 18, ty.round() as i64, 5, 1, INK);
            canvas.text(label, x + 27.0, ty, TextStyle::new(TICK_SIZE, INK, Align::Start, Align::Centre));
        }
    }

    pub fn to_png(&self) -> Result<Vec<u8>, Error> {
        self.render()?.to_png()
    }
}

/// Renders and writes the heatmap as PNG (temp file + rename: never a half-written image).
pub fn write_png(path: &Path, heatmap: &Heatmap<'_>) -> Result<(), Error> {
    let bytes = heatmap.to_png()?;
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    crate::atomic_write::write_atomically(path, |w| std::io::Write::write_all(w, &bytes)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(prefix: &str, k: usize) -> Vec<String> {
        (0..k).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn cells_take_the_colour_map_and_undefined_is_grey() {
        let values = vec![vec![Some(0.0), Some(1.0)], vec![None, Some(0.5)]];
        let (rl, cl) = (labels("a", 2), labels("b", 2));
        let h = Heatmap {
            title: "t",
            row_title: "A",
            col_title: "B",
            row_labels: &rl,
            col_labels: &cl,
            values: &values,
            range: (0.0, 1.0),
        };
        let canvas = h.render().unwrap();
        // Find the grid by its top-left cell colour, then probe cell corners (no text there).
        let first = viridis(0.0);
        let (gx, gy) = (0..canvas.height())
            .flat_map(|y| (0..canvas.width()).map(move |x| (x, y)))
            .find(|&(x, y)| canvas.pixel(x, y) == Some(first))
            .unwrap();
        let cell = (GRID_TARGET / 2.0).clamp(MIN_CELL, MAX_CELL).floor() as usize;
        assert_eq!(canvas.pixel(gx + cell + 1, gy + 1), Some(viridis(1.0)));
        assert_eq!(canvas.pixel(gx + 1, gy + cell + 1), Some(UNDEFINED));
        assert_eq!(canvas.pixel(gx + cell + 1, gy + cell + 1), Some(viridis(0.5)));
    }

    #[test]
    fn rejects_mismatched_labels_and_bad_ranges() {
        let values = vec![vec![Some(0.5)]];
        let (rl, cl) = (labels("a", 2), labels("b", 1));
        let h = Heatmap {
            title: "t",
            row_title: "",
            col_title: "",
            row_labels: &rl,
            col_labels: &cl,
            values: &values,
            range: (0.0, 1.0),
        };
        assert!(matches!(h.render(), Err(Error::Shape { .. })));
        let rl = labels("a", 1);
        let h = Heatmap { row_labels: &rl, range: (1.0, 1.0), ..h };
        assert!(matches!(h.render(), Err(Error::Range { .. })));
    }
}
