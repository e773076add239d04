//! The study's CSV tables and PNG figures: one CSV per CKA matrix, a heatmap of the mean matrix
//! of every family pair, and the seed-comparison plot (same-layer cross-seed CKA per family,
//! mean with a min-max whisker and a ±1 std box). Every file is written atomically.

use std::path::Path;

use anyhow::anyhow;

use super::analysis::{FamilySummary, Stats};
use super::files::write_bytes;
use crate::cka::Matrix;
use crate::render::Heatmap;
use crate::render::canvas::{Align, Canvas, INK, Rgb, TextStyle};

/// A CKA matrix as CSV (the one dialect of `cka::csv`).
pub fn matrix_csv(rows: &[String], cols: &[String], values: &[Vec<Option<f64>>]) -> String {
    crate::cka::csv::to_string(rows, cols, |i, j| values.get(i).and_then(|r| r.get(j)).copied().flatten())
}

pub fn write_matrix_csv(path: &Path, rows: &[String], cols: &[String], matrix: &Matrix) -> anyhow::Result<()> {
    write_bytes(path, matrix_csv(rows, cols, &matrix.to_rows()).as_bytes())
}

pub fn write_heatmap(
    path: &Path,
    title: &str,
    rows: (&str, &[String]),
    cols: (&str, &[String]),
    values: &[Vec<Option<f64>>],
) -> anyhow::Result<()> {
    let heatmap = Heatmap {
        title,
        row_title: rows.0,
        col_title: cols.0,
        row_labels: rows.1,
        col_labels: cols.1,
        values,
        range: (0.0, 1.0),
    };
    let png = heatmap.to_png().map_err(|e| anyhow!("{}: {e}", path.display()))?;
    write_bytes(path, &png)
}

const FAMILY_COLOURS: [Rgb; 3] = [[214, 96, 77], [67, 147, 195], [90, 174, 97]];

/// The colour a family has in every study figure (and in the app's study view); grey for a family
/// outside `analysis::FAMILIES`.
pub fn family_colour(family: &str) -> Rgb {
    super::analysis::FAMILIES
        .iter()
        .position(|f| *f == family)
        .and_then(|i| FAMILY_COLOURS.get(i).copied())
        .unwrap_or([128, 128, 128])
}

/// Same-layer cross-seed CKA per family: a group of bars per family (one per layer, left to
/// right = input to output), bar = mean, box = ±1 std, whisker = min..max.
pub fn write_seed_plot(path: &Path, title: &str, families: &[(&str, &FamilySummary)]) -> anyhow::Result<()> {
    let bars: usize = families.iter().map(|(_, s)| s.layers.len()).sum();
    let (bar_w, gap, left, right, top, bottom) = (34i64, 40i64, 80i64, 30i64, 70i64, 110i64);
    let plot_w = bars as i64 * bar_w + (families.len().max(1) as i64 + 1) * gap;
    let plot_h = 360i64;
    let (w, h) = ((left + plot_w + right) as usize, (top + plot_h + bottom) as usize);
    let mut c = Canvas::new(w, h).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    c.text(title, w as f32 / 2.0, 24.0, TextStyle::new(20.0, INK, Align::Centre, Align::Centre));
    let y_of = |v: f64| top + plot_h - (v.clamp(0.0, 1.0) * plot_h as f64).round() as i64;
    // Axes and grid.
    for k in 0..=5 {
        let v = k as f64 / 5.0;
        let y = y_of(v);
        c.fill_rect(left, y, plot_w, 1, [225, 225, 225]);
        c.text(&format!("{v:.1}"), (left - 8) as f32, y as f32, TextStyle::new(13.0, INK, Align::End, Align::Centre));
    }
    c.fill_rect(left, top, 1, plot_h + 1, INK);
    c.fill_rect(left, top + plot_h, plot_w, 1, INK);
    c.text_vertical(
        "same-layer CKA across seeds",
        22.0,
        (top + plot_h / 2) as f32,
        TextStyle::new(14.0, INK, Align::Centre, Align::Centre),
    );
    let mut x = left + gap;
    for (fi, (family, summary)) in families.iter().enumerate() {
        let colour = FAMILY_COLOURS[fi % FAMILY_COLOURS.len()];
        let group_start = x;
        for (name, stats) in summary.layers.iter().zip(&summary.per_layer) {
            if let Some(Stats { mean, std, min, max, .. }) = stats {
                let y = y_of(*mean);
                c.fill_rect(x + 4, y, bar_w - 8, top + plot_h - y, colour);
                let (y_hi, y_lo) = (y_of(mean + std), y_of(mean - std));
                c.stroke_rect(x + 8, y_hi, bar_w - 16, (y_lo - y_hi).max(1), INK);
                let xm = x + bar_w / 2;
                let (y_max, y_min) = (y_of(*max), y_of(*min));
                c.fill_rect(xm, y_max, 1, (y_min - y_max).max(1), INK);
                c.fill_rect(xm - 5, y_max, 11, 1, INK);
                c.fill_rect(xm - 5, y_min, 11, 1, INK);
            }
            c.text_vertical(
                name,
                (x + bar_w / 2) as f32,
                (top + plot_h + 8) as f32,
                TextStyle::new(12.0, INK, Align::End, Align::Centre),
            );
            x += bar_w;
        }
        let label = match &summary.overall {
            Some(s) => format!("{} (mean {:.2})", family.to_uppercase(), s.mean),
            None => family.to_uppercase(),
        };
        c.text(
            &label,
            ((group_start + x) / 2) as f32,
            (top + plot_h + bottom - 18) as f32,
            TextStyle::new(15.0, colour, Align::Centre, Align::Centre),
        );
        x += gap;
    }
    let png = c.to_png().map_err(|e| anyhow!("{}: {e}", path.display()))?;
    write_bytes(path, &png)
}
