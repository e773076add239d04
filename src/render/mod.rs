//! Headless rendering of figures to PNG files (for the CLI and reports; the GUI draws its own).
//!
//! Owns: an RGB [`canvas::Canvas`] with anti-aliased text (ab_glyph, the Ubuntu Light font egui
//! ships), perceptual colour maps ([`colormap`]) and the labelled CKA [`heatmap`].
//! Must not import: `ui`, `cka` (a heatmap takes plain numbers and labels).

pub mod canvas;
pub mod colormap;
pub mod heatmap;

pub use heatmap::{Heatmap, MAX_HEATMAP_LAYERS, check_heatmap_size, write_png};

/// Why a figure could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("heatmap has {rows} rows and {cols} columns but {row_labels} row labels and {col_labels} column labels")]
    Shape { rows: usize, cols: usize, row_labels: usize, col_labels: usize },
    #[error("invalid colour range {lo}..{hi}")]
    Range { lo: f64, hi: f64 },
    #[error("image of {width} x {height} pixels is too large")]
    TooLarge { width: usize, height: usize },
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
}
