//! What the CKA explorer computes on and shows, and the jobs that produce it: activation files
//! (one tensor per layer, first dimension = examples) read through `checkpoint::open`, the
//! built-in demo pair, the matrix computation (whole-set or streaming minibatch, which reports
//! every intermediate estimate as the job's progress), results files written by `gmnscope cka --json`,
//! and CSV export. The CKA numerics are the core's (`cka::cka_matrix`, `cka::MinibatchCka`); the
//! panel never calls them itself.

use std::path::{Path, PathBuf};

use crate::cka::{self, Activations, ActivationsView, Estimator, Kernel, Matrix, MinibatchCka, Options};
use crate::jobs::{JobError, Reporter};

/// One network's layers: names in file order and their `examples x features` activations.
#[derive(Clone, Debug)]
pub struct LayerSet {
    /// File path or "demo: ..." (axis titles).
    pub source: String,
    pub names: Vec<String>,
    pub acts: Vec<Activations>,
}

impl LayerSet {
    pub fn n(&self) -> usize {
        self.acts.first().map_or(0, |a| a.n)
    }

    pub fn views(&self) -> Vec<ActivationsView<'_>> {
        self.acts.iter().map(Activations::view).collect()
    }
}

/// The two sides compared: A = matrix rows, B = columns.
#[derive(Clone, Debug)]
pub struct LayerPair {
    pub a: LayerSet,
    pub b: LayerSet,
}

/// The estimator settings the panel edits (checked by [`CkaSettings::options`] before a job).
#[derive(Clone, Debug, PartialEq)]
pub struct CkaSettings {
    pub rbf: bool,
    pub sigma_frac: f64,
    pub debiased: bool,
    /// Stream consecutive batches of this many examples through [`MinibatchCka`].
    pub minibatch: Option<usize>,
}

impl Default for CkaSettings {
    fn default() -> Self {
        Self { rbf: false, sigma_frac: Kernel::DEFAULT_SIGMA_FRAC, debiased: false, minibatch: None }
    }
}

impl CkaSettings {
    pub fn kernel(&self) -> Kernel {
        if self.rbf { Kernel::Rbf { sigma_frac: self.sigma_frac } } else { Kernel::Linear }
    }

    /// Minibatch CKA always uses the unbiased estimator (see `cka::MinibatchCka`).
    pub fn estimator(&self) -> Estimator {
        if self.debiased || self.minibatch.is_some() { Estimator::Unbiased } else { Estimator::Biased }
    }

    pub fn estimator_label(&self) -> String {
        match self.minibatch {
            Some(m) => format!("minibatch unbiased (batches of {m})"),
            None => self.estimator().name().to_string(),
        }
    }

    /// Valid core options for `n` examples, or why not.
    pub fn options(&self, n: usize) -> Result<Options, String> {
        if self.rbf && !(self.sigma_frac.is_finite() && self.sigma_frac > 0.0) {
            return Err(format!("RBF sigma fraction must be positive, got {}", self.sigma_frac));
        }
        if let Some(m) = self.minibatch {
            if m < 4 {
                return Err(format!("minibatch of {m}: batches need at least 4 examples"));
            }
            if m > n {
                return Err(format!("minibatch of {m}: only {n} examples"));
            }
        }
        Ok(Options { kernel: self.kernel(), estimator: self.estimator(), ..Options::default() })
    }
}

/// A computed (or loaded) matrix with everything the details panel states about it.
#[derive(Clone, Debug)]
pub struct CkaResult {
    pub matrix: Matrix,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub row_title: String,
    pub col_title: String,
    pub n: usize,
    pub kernel: String,
    pub estimator: String,
    /// Minibatch progress: (batches pushed, batches in all).
    pub batches: Option<(usize, usize)>,
}

/// The newest live CKA matrix of a GMN training run (computed by the GMN tab, shown by the
/// explorer's `CkaSource::Training`); `version` grows with every new matrix of the app's session.
#[derive(Clone, Debug)]
pub struct TrainingCka {
    pub run_dir: PathBuf,
    /// E.g. "GMN training: epoch 3 vs initialisation".
    pub title: String,
    pub result: CkaResult,
    pub version: u64,
}

/// The reporter of a CKA matrix job: its progress is the latest (partial) matrix.
pub type CkaReporter = Reporter<CkaResult, CkaResult>;

/// Reads every tensor of an activation file as an `examples x features` matrix
/// (`activations::load`: f64 tensors stay f64).
pub fn load_layers(path: &Path) -> Result<LayerSet, String> {
    let file = crate::activations::load(path)?;
    Ok(LayerSet { source: path.display().to_string(), names: file.names, acts: file.acts })
}

/// Both files of a comparison; they must hold the same number of examples.
pub fn load_pair(a: &Path, b: &Path) -> Result<LayerPair, String> {
    let (a, b) = (load_layers(a)?, load_layers(b)?);
    let entries = (a.acts.len() as u64).checked_mul(b.acts.len() as u64);
    let max = crate::limits::CKA_ENTRIES.default;
    crate::limits::CKA_ENTRIES
        .check(entries, max)
        .map_err(|e| format!("{} vs {}: {e} (gmnscope cka)", a.source, b.source))?;
    if a.n() != b.n() {
        return Err(format!(
            "{}: {} examples, but {} has {}; CKA compares activations of the same examples",
            b.source,
            b.n(),
            a.source,
            a.n()
        ));
    }
    Ok(LayerPair { a, b })
}

/// Computes the matrix for `pair`. With a minibatch size, batches stream through
/// [`MinibatchCka`] and every intermediate estimate is reported as progress, so the heatmap
/// fills in.
pub fn compute(pair: &LayerPair, settings: &CkaSettings, r: &CkaReporter) -> Result<CkaResult, JobError> {
    let n = pair.a.n();
    let options = settings.options(n).map_err(JobError::Failed)?;
    let (va, vb) = (pair.a.views(), pair.b.views());
    let result = |matrix: Matrix, batches| CkaResult {
        matrix,
        rows: pair.a.names.clone(),
        cols: pair.b.names.clone(),
        row_title: pair.a.source.clone(),
        col_title: pair.b.source.clone(),
        n,
        kernel: kernel_label(settings.kernel()),
        estimator: settings.estimator_label(),
        batches,
    };
    let Some(m) = settings.minibatch else {
        r.stage("computing CKA matrix", None);
        let matrix = cka::cka_matrix(&va, &vb, &options).map_err(|e| JobError::Failed(describe(e, pair)))?;
        return Ok(result(matrix, None));
    };
    let total = n / m;
    let mut acc = MinibatchCka::new(options);
    for k in 0..total {
        r.check()?;
        let (ba, bb) = (batch(&va, k * m, m)?, batch(&vb, k * m, m)?);
        acc.push(&ba, &bb).map_err(|e| JobError::Failed(describe(e, pair)))?;
        // Undefined entries are fine mid-stream (a batch can be degenerate); publish what there is.
        // A newer estimate supersedes one the UI has not taken yet, so these may be dropped.
        if let Ok(matrix) = acc.estimate() {
            r.progress_lossy(result(matrix, Some((k + 1, total))));
        }
        r.stage(format!("minibatch {}/{total}", k + 1), Some((k + 1) as f32 / total as f32));
    }
    let matrix = acc.estimate().map_err(|e| JobError::Failed(describe(e, pair)))?;
    Ok(result(matrix, Some((total, total))))
}

/// Examples `start..start + m` of every layer.
fn batch<'a>(views: &[ActivationsView<'a>], start: usize, m: usize) -> Result<Vec<ActivationsView<'a>>, JobError> {
    views.iter().map(|v| v.rows(start, start + m).map_err(JobError::failed)).collect()
}

pub fn kernel_label(kernel: Kernel) -> String {
    match kernel {
        Kernel::Linear => "linear".into(),
        Kernel::Rbf { sigma_frac } => format!("RBF (σ = {sigma_frac} × median distance)"),
    }
}

/// A CKA error in terms of the layer names the user sees.
fn describe(err: cka::Error, pair: &LayerPair) -> String {
    let name = |side: cka::Side, i: usize| {
        let set = if side == cka::Side::A { &pair.a } else { &pair.b };
        format!("{}: layer '{}'", set.source, crate::text::shown(set.names.get(i).map_or("?", String::as_str)))
    };
    match err {
        cka::Error::NonFinite { side, layer, row, col, value } => {
            format!("{} has a non-finite value ({value}) at example {row}, feature {col}", name(side, layer))
        }
        cka::Error::Undefined { side, layer } => format!("{} is constant over the examples", name(side, layer)),
        other => format!("CKA: {other}"),
    }
}

/// Reads a results file written by `gmnscope cka --json` (rows, cols, matrix with nulls, n, kernel).
pub fn load_results_json(path: &Path) -> Result<CkaResult, String> {
    let err = |msg: &str| format!("{}: {msg}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| err(&e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(&format!("not JSON: {e}")))?;
    let names = |key: &str| -> Result<Vec<String>, String> {
        let list = v.get(key).and_then(|x| x.as_array()).ok_or_else(|| err(&format!("no '{key}' list")))?;
        list.iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(|| err(&format!("'{key}' holds a non-string"))))
            .collect()
    };
    let (rows, cols) = (names("rows")?, names("cols")?);
    let matrix = v.get("matrix").and_then(|m| m.as_array()).ok_or_else(|| err("no 'matrix'"))?;
    if matrix.len() != rows.len() {
        return Err(err(&format!("'matrix' has {} rows for {} row names", matrix.len(), rows.len())));
    }
    let mut values = Vec::with_capacity(rows.len());
    for row in matrix {
        let row = row.as_array().ok_or_else(|| err("a matrix row is not a list"))?;
        if row.len() != cols.len() {
            return Err(err(&format!("a matrix row has {} values for {} column names", row.len(), cols.len())));
        }
        let parsed: Option<Vec<Option<f64>>> =
            row.iter().map(|x| if x.is_null() { Some(None) } else { x.as_f64().map(Some) }).collect();
        values.push(parsed.ok_or_else(|| err("a matrix entry is neither a number nor null"))?);
    }
    if rows.is_empty() || cols.is_empty() {
        return Err(err("empty matrix"));
    }
    let text_of = |key: &str| v.get(key).and_then(|x| x.as_str()).unwrap_or("?").to_string();
    Ok(CkaResult {
        matrix: Matrix::from_rows(&values),
        rows,
        cols,
        row_title: v.get("a").and_then(|x| x.as_str()).unwrap_or("A").to_string(),
        col_title: v.get("b").and_then(|x| x.as_str()).unwrap_or("B").to_string(),
        n: v.get("n").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
        kernel: text_of("kernel"),
        estimator: text_of("estimator"),
        batches: None,
    })
}

/// The matrix as CSV in the one dialect of `cka::csv`.
pub fn to_csv(result: &CkaResult) -> String {
    crate::cka::csv::to_string(&result.rows, &result.cols, |i, j| result.matrix.get(i, j))
}

/// Colour range of a heatmap: [0, 1] widened to take in debiased values outside it.
pub fn colour_range(matrix: &Matrix) -> (f64, f64) {
    let (lo, hi) = matrix.value_range().unwrap_or((0.0, 1.0));
    (lo.min(0.0), hi.max(1.0))
}

pub fn write_csv(path: &Path, result: &CkaResult) -> Result<(), String> {
    let csv = to_csv(result);
    crate::atomic_write::write_atomically(path, |w| std::io::Write::write_all(w, csv.as_bytes()))
        .map_err(|e| format!("{}: cannot write CSV: {e}", path.display()))
}

pub fn write_png(path: &Path, result: &CkaResult) -> Result<(), String> {
    let title = format!("CKA, {} kernel, {}, n = {}", result.kernel, result.estimator, result.n);
    let values = result.matrix.to_rows();
    let heatmap = crate::render::Heatmap {
        title: &title,
        row_title: &result.row_title,
        col_title: &result.col_title,
        row_labels: &result.rows,
        col_labels: &result.cols,
        values: &values,
        range: colour_range(&result.matrix),
    };
    crate::render::write_png(path, &heatmap).map_err(|e| format!("{}: {e}", path.display()))
}

/// Default export location next to the current directory.
pub fn default_export_stem() -> PathBuf {
    PathBuf::from("cka_matrix")
}

/// The built-in comparison: two small random-feature networks (ReLU MLPs with He-initialised
/// random weights, different seeds and widths) applied to `n` procedural digit images. Layer
/// activations of such networks give the familiar CKA structure (high near the diagonal, the
/// shared input identical) without any file or training. Deterministic.
pub fn demo_pair(n: usize) -> LayerPair {
    let images = crate::data::procedural::generate(n, 7);
    let pixels = images.rows * images.cols;
    let input: Vec<f32> = images.images.iter().map(|&v| f32::from(v) / 255.0).collect();
    let net = |label: &str, seed: u64, widths: &[usize]| {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let mut names = vec!["input".to_string()];
        let mut acts = vec![Activations { n, p: pixels, data: input.clone().into() }];
        let mut x = input.clone();
        let mut fan_in = pixels;
        for (l, &width) in widths.iter().enumerate() {
            let scale = (2.0 / fan_in as f32).sqrt();
            let w: Vec<f32> = (0..width * fan_in).map(|_| rng.normal() * scale).collect();
            let bias: Vec<f32> = (0..width).map(|_| rng.normal() * 0.1).collect();
            let last = l + 1 == widths.len();
            let mut y = vec![0.0f32; n * width];
            for (xi, yi) in x.chunks_exact(fan_in).zip(y.chunks_exact_mut(width)) {
                for ((out, row), b) in yi.iter_mut().zip(w.chunks_exact(fan_in)).zip(&bias) {
                    let s = row.iter().zip(xi).map(|(a, b)| a * b).sum::<f32>() + b;
                    *out = if last { s } else { s.max(0.0) };
                }
            }
            names.push(if last { "logits".to_string() } else { format!("fc{}", l + 1) });
            acts.push(Activations { n, p: width, data: y.clone().into() });
            x = y;
            fan_in = width;
        }
        LayerSet { source: format!("demo: {label}"), names, acts }
    };
    LayerPair {
        a: net("random MLP A (seed 1)", 1, &[192, 128, 96, 64, 32, 10]),
        b: net("random MLP B (seed 2)", 2, &[160, 160, 80, 48, 32, 10]),
    }
}

/// Examples in the built-in demo.
pub const DEMO_EXAMPLES: usize = 600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_round_trip_names_and_undefined_entries() {
        let result = CkaResult {
            matrix: Matrix::from_rows(&[vec![Some(1.0), None], vec![Some(0.25), Some(0.5)]]),
            rows: vec!["a,1".into(), "a2".into()],
            cols: vec!["b1".into(), "b2".into()],
            row_title: "A".into(),
            col_title: "B".into(),
            n: 10,
            kernel: "linear".into(),
            estimator: "biased".into(),
            batches: None,
        };
        assert_eq!(to_csv(&result), "layer,b1,b2\n\"a,1\",1,\na2,0.25,0.5\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let json = serde_json::json!({
            "rows": result.rows, "cols": result.cols, "matrix": result.matrix.to_rows(),
            "n": 10, "kernel": "linear", "estimator": "biased"
        });
        std::fs::write(&path, json.to_string()).unwrap();
        let back = load_results_json(&path).unwrap();
        assert_eq!(back.matrix.to_rows(), result.matrix.to_rows());
        assert_eq!((back.rows, back.cols, back.n), (result.rows, result.cols, 10));
        std::fs::write(&path, r#"{"rows":["x"],"cols":["y"],"matrix":[[1,2]]}"#).unwrap();
        assert!(load_results_json(&path).unwrap_err().contains("2 values for 1 column"));
    }

    #[test]
    fn demo_pair_is_deterministic_and_shares_the_input() {
        let (p, q) = (demo_pair(40), demo_pair(40));
        assert_eq!(p.a.acts, q.a.acts);
        assert_eq!(p.a.names.len(), 7);
        assert_eq!(p.a.acts[0], p.b.acts[0]);
        assert_ne!(p.a.acts[1].data, p.b.acts[1].data);
        let m = cka::cka_matrix(&p.a.views(), &p.b.views(), &Options::linear()).unwrap();
        assert!((m.get(0, 0).unwrap() - 1.0).abs() < 1e-9, "identical inputs have CKA 1");
    }
}
