//! The Small CNN Zoo (Unterthiner et al. 2020): a directory with
//! - `weights.npy`: `[networks, 4970]` float matrix, one flattened network per row (memory-mapped;
//!   the real files are several GB);
//! - `layout.csv`: which columns hold which variable: `varname,start_idx,end_idx,shape` (plus
//!   pandas' unnamed index column and `size`), e.g. `sequential/conv2d/kernel:0,0,144,"(3, 3, 1, 16)"`;
//! - `metrics.csv.gz` (or `metrics.csv`): one row per network, in the same order, with
//!   `test_accuracy` (the regression target), `modeldir` (the training run) and hyperparameters.
//!
//! The architecture is 3 x Conv2D(16, 3x3, stride 2) + global average pooling + Dense(10), Keras
//! kernel order `(kh, kw, in, out)`. [`Matrix::network`] cuts a row into tensors named and shaped
//! as in `layout.csv`, so `arch::recover` sees Keras `kernel`/`bias` leaves.
//!
//! Split: by training run, so that the checkpoints of one run (epochs 0..86 are separate rows)
//! never straddle train and test: `split::by_key(modeldir)` (80/10/10 in expectation), or by row
//! when there is no `modeldir` column. Rows whose accuracy is not a finite number are skipped.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{EntrySource, Target, Zoo, ZooEntry, ZooKind};
use crate::checkpoint::{self, ByteView, DType, Format, TensorInfo, TensorStore};
use crate::data::csv;
use crate::data::split;
use crate::data::{Error, Result};

/// One variable of the flattened network.
#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    pub name: String,
    pub start: usize,
    pub end: usize,
    pub shape: Vec<usize>,
}

/// The memory-mapped weight matrix and its column layout.
#[derive(Debug)]
pub struct Matrix {
    path: PathBuf,
    store: TensorStore,
    rows: usize,
    cols: usize,
    dtype: DType,
    pub layout: Vec<Variable>,
}

impl Matrix {
    fn open(dir: &Path) -> Result<Matrix> {
        let path = dir.join("weights.npy");
        let store = checkpoint::open(&path)?;
        let t = store.tensors().first().ok_or_else(|| Error::new(&path, "holds no array"))?;
        let [rows, cols] = t.shape[..] else {
            return Err(Error::new(&path, format!("shape {:?}; expected [networks, parameters]", t.shape)));
        };
        if !t.dtype.is_float() {
            return Err(Error::new(&path, format!("dtype {} is not floating point", t.dtype.name())));
        }
        let dtype = t.dtype;
        let layout = read_layout(&dir.join("layout.csv"), cols)?;
        Ok(Matrix { path, store, rows, cols, dtype, layout })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Network `row` as a tensor store (one tensor per layout variable, the matrix's dtype).
    pub fn network(&self, row: usize) -> Result<TensorStore> {
        if row >= self.rows {
            return Err(Error::new(&self.path, format!("row {row} out of range ({} rows)", self.rows)));
        }
        let size = self.dtype.size();
        let bytes = self.store.tensors().first().map(|t| t.bytes()).unwrap_or_default();
        let row_start = row * self.cols * size;
        let tensors = self
            .layout
            .iter()
            .map(|v| {
                let range = row_start + v.start * size..row_start + v.end * size;
                let data = bytes
                    .get(range)
                    .map(|b| ByteView::from_vec(b.to_vec()))
                    .unwrap_or_else(|| ByteView::from_vec(Vec::new()));
                TensorInfo { name: v.name.clone(), dtype: self.dtype, shape: v.shape.clone(), data }
            })
            .collect();
        Ok(TensorStore::new(self.path.clone(), Format::Npy, tensors)?)
    }
}

/// Parses `layout.csv` and checks every variable against the matrix width.
fn read_layout(path: &Path, cols: usize) -> Result<Vec<Variable>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read", e))?;
    let table = csv::parse(&text).map_err(|m| Error::new(path, m))?;
    let col = |names: &[&str]| {
        table.column(names).ok_or_else(|| Error::new(path, format!("no '{}' column", names.join("' / '"))))
    };
    let (name_c, start_c, end_c, shape_c) =
        (col(&["varname", "name"])?, col(&["start_idx", "start"])?, col(&["end_idx", "end"])?, col(&["shape"])?);
    let mut vars = Vec::new();
    for (k, row) in table.rows.iter().enumerate() {
        let fail = |m: String| Error::new(path, format!("row {}: {m}", k + 1));
        let num =
            |c: usize| row[c].trim().parse::<usize>().map_err(|_| fail(format!("'{}' is not a column index", row[c])));
        let (start, end) = (num(start_c)?, num(end_c)?);
        let shape =
            parse_shape(&row[shape_c]).ok_or_else(|| fail(format!("'{}' is not a shape tuple", row[shape_c])))?;
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if start > end || end > cols || numel != Some(end - start) {
            return Err(fail(format!(
                "columns {start}..{end} do not hold shape {shape:?} inside a matrix of {cols} columns"
            )));
        }
        vars.push(Variable { name: row[name_c].trim().to_string(), start, end, shape });
    }
    if vars.is_empty() {
        return Err(Error::new(path, "lists no variables"));
    }
    Ok(vars)
}

/// `(3, 3, 1, 16)`, `[16]`, `(16,)` -> dims.
fn parse_shape(text: &str) -> Option<Vec<usize>> {
    let inner = text.trim().trim_start_matches(['(', '[']).trim_end_matches([')', ']']);
    inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
}

/// Reads `metrics.csv.gz` (or `metrics.csv`) into text, decompressing within deflate's ratio.
fn read_metrics_text(dir: &Path) -> Result<(PathBuf, String)> {
    let gz = dir.join("metrics.csv.gz");
    if gz.is_file() {
        let file = std::fs::File::open(&gz).map_err(|e| Error::io(&gz, "cannot open", e))?;
        let limit = file.metadata().map_err(|e| Error::io(&gz, "cannot stat", e))?.len().saturating_mul(1100);
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))
            .take(limit)
            .read_to_string(&mut text)
            .map_err(|e| Error::io(&gz, "cannot decompress (corrupt gzip or not UTF-8)", e))?;
        return Ok((gz, text));
    }
    let plain = dir.join("metrics.csv");
    let text =
        std::fs::read_to_string(&plain).map_err(|e| Error::io(&plain, "cannot read (no metrics.csv.gz either)", e))?;
    Ok((plain, text))
}

pub fn open(dir: &Path) -> Result<Zoo> {
    let matrix = Matrix::open(dir)?;
    let (metrics_path, text) = read_metrics_text(dir)?;
    let mut header: Option<(usize, Option<usize>, usize)> = None;
    let mut entries = Vec::new();
    let mut row = 0usize;
    let mut skipped = 0usize;
    csv::for_each_record(&text, |line, fields| {
        let Some((acc_c, run_c, width)) = header else {
            let find = |names: &[&str]| names.iter().find_map(|n| fields.iter().position(|f| f.trim() == *n));
            let acc = find(&["test_accuracy", "test_acc", "test/acc"]).ok_or("no 'test_accuracy' column")?;
            header = Some((acc, find(&["modeldir"]), fields.len()));
            return Ok(());
        };
        if fields.len() != width {
            return Err(format!("line {line} has {} fields, the header has {width}", fields.len()));
        }
        let accuracy: f32 = fields[acc_c].trim().parse().unwrap_or(f32::NAN);
        if accuracy.is_finite() {
            let key = run_c.map_or_else(|| format!("row{row}"), |c| fields[c].clone());
            entries.push(ZooEntry {
                id: format!("row{row}"),
                target: Target::Value(accuracy),
                split: split::by_key(&key, 0),
                source: EntrySource::Row(row),
                psnr: None,
            });
        } else {
            skipped += 1;
        }
        row += 1;
        Ok(())
    })
    .map_err(|m| Error::new(&metrics_path, m))?;
    if header.is_none() {
        return Err(Error::new(&metrics_path, "the file is empty (no header row)"));
    }
    if row != matrix.rows() {
        return Err(Error::new(
            &metrics_path,
            format!("has {row} rows but weights.npy has {} networks; they must match row for row", matrix.rows()),
        ));
    }
    let mut zoo = Zoo::new(ZooKind::SmallCnnZoo, dir, entries, None, None);
    if skipped > 0 {
        zoo.notes.push(format!("skipped {skipped} rows without a finite test accuracy"));
    }
    zoo.cnn = Some(matrix);
    Ok(zoo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("(3, 3, 1, 16)"), Some(vec![3, 3, 1, 16]));
        assert_eq!(parse_shape("(16,)"), Some(vec![16]));
        assert_eq!(parse_shape("[16, 10]"), Some(vec![16, 10]));
        assert_eq!(parse_shape("(a, 2)"), None);
    }
}
