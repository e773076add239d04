//! `gmnscope cka A B`: the layer-by-layer CKA matrix between two activation files.
//!
//! A and B are safetensors or .npz files with one tensor per layer, first dimension = examples
//! (further dimensions are flattened), layers in file order. Rows of the result are A's layers,
//! columns B's. Output: a table (default) or JSON on stdout, optionally a CSV file and a PNG heatmap.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use gmnscope::activations::{self, LayerFile};
use gmnscope::cka::{self, ActivationsView, Estimator, Kernel, Matrix, MinibatchCka, Options};
use gmnscope::limits::CKA_ENTRIES;
use gmnscope::render::{Heatmap, write_png};
use gmnscope::text::shown;

#[derive(clap::Args)]
pub struct CkaArgs {
    /// Activations of the first network (matrix rows): safetensors or .npz, one tensor per layer.
    pub a: PathBuf,
    /// Activations of the second network (matrix columns), for the same examples in the same order.
    pub b: PathBuf,
    /// Kernel applied to each layer's examples.
    #[arg(long, value_enum, default_value_t = KernelArg::Linear)]
    pub kernel: KernelArg,
    /// RBF bandwidth as a fraction of the median pairwise distance.
    #[arg(long, value_name = "T", default_value_t = Kernel::DEFAULT_SIGMA_FRAC)]
    pub sigma_frac: f64,
    /// RBF bandwidth's median: with-diagonal (the whole distance matrix, zeros included, as
    /// Kornblith et al.'s reference code) or off-diagonal (distinct pairs only).
    #[arg(long, value_enum, default_value_t = MedianArg::WithDiagonal)]
    pub rbf_median: MedianArg,
    /// Use the unbiased HSIC estimator (debiased CKA; needs at least 4 examples).
    #[arg(long)]
    pub debiased: bool,
    /// Minibatch CKA over consecutive batches of M examples (always the unbiased estimator; an
    /// incomplete last batch is left out).
    #[arg(long, value_name = "M")]
    pub minibatch: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the matrix as CSV (header row and column = layer names).
    #[arg(long, value_name = "OUT")]
    pub csv: Option<PathBuf>,
    /// Also write a labelled heatmap as PNG.
    #[arg(long, value_name = "OUT")]
    pub png: Option<PathBuf>,
    /// Largest CKA matrix computed (layers of A x layers of B); larger comparisons are refused
    /// before anything of that size is allocated.
    #[arg(long, value_name = "N", default_value_t = CKA_ENTRIES.default)]
    pub max_cka_entries: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MedianArg {
    WithDiagonal,
    OffDiagonal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelArg {
    Linear,
    Rbf,
}

type Layers = LayerFile;

pub fn run(args: &CkaArgs) -> anyhow::Result<()> {
    let a = activations::load(&args.a).map_err(anyhow::Error::msg)?;
    let b = activations::load(&args.b).map_err(anyhow::Error::msg)?;
    activations::check_matrix_size(&a, &b, args.max_cka_entries).map_err(anyhow::Error::msg)?;
    for file in [&a, &b] {
        if !file.skipped.is_empty() {
            let names: Vec<String> = file.skipped.iter().map(|n| gmnscope::text::shown_string(n)).collect();
            eprintln!(
                "note: {}: an activation set; compared its {} named layers, not {} (not a layer representation)",
                file.path.display(),
                file.names.len(),
                names.join(", ")
            );
        }
    }
    if args.png.is_some() {
        gmnscope::render::check_heatmap_size(a.acts.len(), b.acts.len())
            .map_err(|e| anyhow::anyhow!("--png: {e}; leave out --png or compare fewer layers"))?;
    }
    if a.n() != b.n() {
        bail!(
            "{}: {} examples, but {} has {}; CKA compares activations of the same examples",
            b.path.display(),
            b.n(),
            a.path.display(),
            a.n()
        );
    }
    let kernel = match args.kernel {
        KernelArg::Linear => Kernel::Linear,
        KernelArg::Rbf => Kernel::Rbf { sigma_frac: args.sigma_frac },
    };
    let estimator = if args.debiased || args.minibatch.is_some() { Estimator::Unbiased } else { Estimator::Biased };
    let rbf_median = match args.rbf_median {
        MedianArg::WithDiagonal => cka::RbfMedian::WithDiagonal,
        MedianArg::OffDiagonal => cka::RbfMedian::OffDiagonal,
    };
    let options = Options { kernel, estimator, rbf_median, ..Options::default() };
    let (matrix, batches) = match args.minibatch {
        None => (cka::cka_matrix(&a.views(), &b.views(), &options).map_err(|e| describe(e, &a, &b))?, None),
        Some(m) => minibatch(&a, &b, &options, m)?,
    };
    let estimator_name = match args.minibatch {
        Some(_) => "minibatch-unbiased",
        None => estimator.name(),
    };
    if matrix.undefined_count() > 0 {
        eprintln!(
            "warning: {} of {} entries are undefined (a layer is constant over the examples{})",
            matrix.undefined_count(),
            matrix.rows() * matrix.cols(),
            if estimator == Estimator::Unbiased { " or its unbiased self-HSIC is not positive" } else { "" }
        );
    }
    let report = Report {
        a: &a,
        b: &b,
        matrix: &matrix,
        kernel,
        rbf_median,
        estimator: estimator_name,
        batches,
        minibatch: args.minibatch,
    };
    {
        // Streamed: output memory does not grow with the matrix.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        if args.json { report.write_json(&mut out) } else { report.write_table(&mut out) }
            .and_then(|()| std::io::Write::flush(&mut out))
            .context("cannot write to stdout")?;
    }
    if let Some(path) = &args.csv {
        gmnscope::atomic_write::write_atomically(path, |w| report.write_csv(w))
            .with_context(|| format!("{}: cannot write CSV", path.display()))?;
    }
    if let Some(path) = &args.png {
        report.png(path)?;
    }
    Ok(())
}

/// Streams consecutive batches of `m` examples through [`MinibatchCka`].
fn minibatch(a: &Layers, b: &Layers, options: &Options, m: usize) -> anyhow::Result<(Matrix, Option<usize>)> {
    if m < 4 {
        bail!("--minibatch {m}: batches need at least 4 examples for the unbiased estimator");
    }
    let n = a.n();
    if n < m {
        bail!("--minibatch {m}: the files have only {n} examples");
    }
    let mut acc = MinibatchCka::new(options.clone());
    let (va, vb) = (a.views(), b.views());
    for start in (0..=n - m).step_by(m) {
        let (ba, bb) =
            (rows(&va, start, m).map_err(|e| describe(e, a, b))?, rows(&vb, start, m).map_err(|e| describe(e, a, b))?);
        acc.push(&ba, &bb).map_err(|e| describe(e, a, b))?;
    }
    if !n.is_multiple_of(m) {
        eprintln!("note: the last {} of {n} examples do not fill a batch of {m} and are left out", n % m);
    }
    Ok((acc.estimate().map_err(|e| describe(e, a, b))?, Some(acc.batches())))
}

/// Examples `start..start + m` of every layer.
fn rows<'a>(views: &[ActivationsView<'a>], start: usize, m: usize) -> Result<Vec<ActivationsView<'a>>, cka::Error> {
    views.iter().map(|v| v.rows(start, start + m)).collect()
}

/// Turns a CKA error into one line naming the file and layer it concerns.
fn describe(err: cka::Error, a: &Layers, b: &Layers) -> anyhow::Error {
    let layer = |side: cka::Side, i: usize| {
        let l = if side == cka::Side::A { a } else { b };
        (l.path.display().to_string(), l.names.get(i).map(|n| shown(n).to_string()).unwrap_or_default())
    };
    match &err {
        cka::Error::NonFinite { side, layer: i, row, col, value } => {
            let (file, name) = layer(*side, *i);
            anyhow::anyhow!("{file}: layer '{name}' has a non-finite value ({value}) at example {row}, feature {col}")
        }
        cka::Error::Undefined { side, layer: i } => {
            let (file, name) = layer(*side, *i);
            anyhow::anyhow!("{file}: layer '{name}' is constant over the examples; CKA is undefined")
        }
        _ => anyhow::anyhow!("{} vs {}: {err}", a.path.display(), b.path.display()),
    }
}

struct Report<'a> {
    a: &'a Layers,
    b: &'a Layers,
    matrix: &'a Matrix,
    kernel: Kernel,
    rbf_median: cka::RbfMedian,
    estimator: &'a str,
    batches: Option<usize>,
    minibatch: Option<usize>,
}

impl Report<'_> {
    /// The JSON document, written as it goes (one row of the matrix at a time).
    fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let string = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let names = |names: &[String]| names.iter().map(|n| string(n)).collect::<Vec<_>>().join(",");
        write!(
            out,
            "{{\"a\":{},\"b\":{},",
            string(&self.a.path.display().to_string()),
            string(&self.b.path.display().to_string())
        )?;
        write!(out, "\"rows\":[{}],\"cols\":[{}],\"matrix\":[", names(&self.a.names), names(&self.b.names))?;
        for i in 0..self.matrix.rows() {
            out.write_all(if i == 0 { b"[" } else { b",[" })?;
            for j in 0..self.matrix.cols() {
                if j > 0 {
                    out.write_all(b",")?;
                }
                match self.matrix.get(i, j) {
                    Some(v) => write!(out, "{}", serde_json::Value::from(v))?,
                    None => out.write_all(b"null")?,
                }
            }
            out.write_all(b"]")?;
        }
        write!(
            out,
            "],\"n\":{},\"kernel\":{},\"estimator\":{}",
            self.a.n(),
            string(self.kernel.name()),
            string(self.estimator)
        )?;
        if let Kernel::Rbf { sigma_frac } = self.kernel {
            write!(out, ",\"sigma_frac\":{}", serde_json::Value::from(sigma_frac))?;
            write!(out, ",\"rbf_median\":{}", string(self.rbf_median.name()))?;
        }
        if let (Some(m), Some(batches)) = (self.minibatch, self.batches) {
            write!(out, ",\"minibatch\":{m},\"batches\":{batches}")?;
        }
        writeln!(out, "}}")
    }

    fn title(&self) -> String {
        let kernel = match self.kernel {
            Kernel::Linear => "linear".to_string(),
            Kernel::Rbf { sigma_frac } => {
                format!("RBF (σ = {sigma_frac} × median distance, {})", self.rbf_median.name())
            }
        };
        let how = match (self.minibatch, self.batches) {
            (Some(m), Some(k)) => format!("minibatch, {k} batches of {m}"),
            _ => format!("{} HSIC", self.estimator),
        };
        format!("CKA, {kernel} kernel, {how}, n = {}", self.a.n())
    }

    /// The table for a terminal: layer names from the files are escaped and cut.
    fn write_table(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(out, "{}", self.title())?;
        writeln!(out, "rows: {}\ncols: {}\n", self.a.path.display(), self.b.path.display())?;
        let rows: Vec<String> = self.a.names.iter().map(|s| shown(s).to_string()).collect();
        let cols: Vec<String> = self.b.names.iter().map(|s| shown(s).to_string()).collect();
        let name_w = rows.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(5);
        let col_w = cols.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(7);
        write!(out, "{:name_w$}", "")?;
        for c in &cols {
            write!(out, "  {c:>col_w$}")?;
        }
        writeln!(out)?;
        for (i, r) in rows.iter().enumerate() {
            write!(out, "{r:name_w$}")?;
            for j in 0..self.matrix.cols() {
                let cell = self.matrix.get(i, j).map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"));
                write!(out, "  {cell:>col_w$}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    fn write_csv(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        use gmnscope::cka::csv;
        csv::write_header(out, &self.b.names)?;
        for (i, r) in self.a.names.iter().enumerate() {
            csv::write_row(out, r, (0..self.matrix.cols()).map(|j| self.matrix.get(i, j)))?;
        }
        Ok(())
    }

    fn png(&self, path: &Path) -> anyhow::Result<()> {
        let values = self.matrix.to_rows();
        let (lo, hi) = self.matrix.value_range().unwrap_or((0.0, 1.0));
        let file =
            |p: &Path| p.file_name().map_or_else(|| p.display().to_string(), |f| f.to_string_lossy().into_owned());
        let (row_title, col_title) = (format!("A: {}", file(&self.a.path)), format!("B: {}", file(&self.b.path)));
        let title = self.title();
        let heatmap = Heatmap {
            title: &title,
            row_title: &row_title,
            col_title: &col_title,
            row_labels: &self.a.names,
            col_labels: &self.b.names,
            values: &values,
            range: (lo.min(0.0), hi.max(1.0)),
        };
        write_png(path, &heatmap)?;
        Ok(())
    }
}
