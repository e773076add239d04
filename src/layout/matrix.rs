//! A weight tensor as a 2-D matrix for a heatmap: `[out, in, k...]` is shown as `out` rows by
//! `in * prod(k)` columns (each input channel's kernel laid out row-major), a 1-D tensor as one
//! row. Matrices larger than the requested side are pooled by taking, in each cell, the value of
//! largest magnitude (with its sign): averaging random weights would wash a big matrix out to
//! grey, while max-magnitude pooling keeps outliers and structure visible.

/// A (possibly pooled) matrix: `values[r * cols + c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixView {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f32>,
    /// Size of the full matrix before pooling.
    pub source_rows: usize,
    pub source_cols: usize,
    /// Largest finite |value| (0 if none), for a symmetric colour scale.
    pub max_abs: f32,
}

/// `values` (C order, `shape`) as a matrix of at most `max_side` x `max_side` cells.
/// `None` if `values` does not have `prod(shape)` elements.
pub fn matrix_view(shape: &[usize], values: &[f32], max_side: usize) -> Option<MatrixView> {
    let n: usize = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    if n != values.len() || n == 0 {
        return None;
    }
    let (source_rows, source_cols) = match shape {
        [] => (1, 1),
        [len] => (1, *len),
        [rows, rest @ ..] => (*rows, rest.iter().product()),
    };
    let max_side = max_side.max(1);
    let rows = source_rows.min(max_side);
    let cols = source_cols.min(max_side);
    let mut pooled = vec![0.0f32; rows * cols];
    let mut max_abs = 0.0f32;
    for r in 0..source_rows {
        let pr = r * rows / source_rows;
        let row = values.get(r * source_cols..(r + 1) * source_cols).unwrap_or(&[]);
        for (c, &v) in row.iter().enumerate() {
            if !v.is_finite() {
                continue;
            }
            max_abs = max_abs.max(v.abs());
            let pc = c * cols / source_cols;
            if let Some(cell) = pooled.get_mut(pr * cols + pc)
                && v.abs() > cell.abs()
            {
                *cell = v;
            }
        }
    }
    Some(MatrixView { rows, cols, values: pooled, source_rows, source_cols, max_abs })
}
