//! `gmnscope cka A B`: the layer-by-layer CKA matrix between two activation files.
//!
//! A and B are safetensors or .npz files with one tensor per layer, first dimension = examples
//! (further dimensions are flattened), layers in file order. Rows of the result are A's layers,
//! columns B's. Output: a table (default) or JSON on stdout, optionally a CSV file and a PNG heatmap.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use gmnscope::cka::{self, Activations, ActivationsView, Estimator, Kernel, Matrix, MinibatchCka, Options};
use gmnscope::render::{Heatmap, write_png};

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelArg {
    Linear,
    Rbf,
}

/// One file's layers.
struct Layers {
    path: PathBuf,
    names: Vec<String>,
    acts: Vec<Activations>,
}

impl Layers {
    fn views(&self) -> Vec<ActivationsView<'_>> {
        self.acts.iter().map(Activations::view).collect()
    }

    fn n(&self) -> usize {
        self.acts[0].n
    }
}

pub fn run(args: &CkaArgs) -> anyhow::Result<()> {
    let a = load_layers(&args.a)?;
    let b = load_layers(&args.b)?;
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
    let options = Options { kernel, estimator, ..Options::default() };
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
    let report =
        Report { a: &a, b: &b, matrix: &matrix, kernel, estimator: estimator_name, batches, minibatch: args.minibatch };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &args.csv {
        gmnscope::checkpoint::writer::write_atomically(path, |w| std::io::Write::write_all(w, report.csv().as_bytes()))
            .with_context(|| format!("{}: cannot write CSV", path.display()))?;
    }
    if let Some(path) = &args.png {
        report.png(path)?;
    }
    Ok(())
}

/// Reads every tensor of a file as an `examples x features` matrix.
fn load_layers(path: &Path) -> anyhow::Result<Layers> {
    let store = gmnscope::checkpoint::open(path)?;
    if store.is_empty() {
        bail!("{}: no tensors (expected one activation tensor per layer)", path.display());
    }
    let mut names = Vec::with_capacity(store.len());
    let mut acts: Vec<Activations> = Vec::with_capacity(store.len());
    for t in store.tensors() {
        let Some((&n, rest)) = t.shape.split_first() else {
            bail!("{}: tensor '{}' is a scalar; expected (examples, features...)", path.display(), t.name);
        };
        let p = rest.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let Some(p) = p else { bail!("{}: tensor '{}' has an impossible shape {:?}", path.display(), t.name, t.shape) };
        if let (Some(first), Some(first_name)) = (acts.first(), names.first())
            && first.n != n
        {
            bail!(
                "{}: layer '{}' has {n} examples but layer '{first_name}' has {}; every layer must see the same examples",
                path.display(),
                t.name,
                first.n
            );
        }
        let act =
            Activations::new(n, p, t.to_f32()).with_context(|| format!("{}: tensor '{}'", path.display(), t.name))?;
        names.push(t.name.clone());
        acts.push(act);
    }
    Ok(Layers { path: path.to_path_buf(), names, acts })
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
        (l.path.display().to_string(), l.names.get(i).cloned().unwrap_or_default())
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
    estimator: &'a str,
    batches: Option<usize>,
    minibatch: Option<usize>,
}

impl Report<'_> {
    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "a": self.a.path.display().to_string(),
            "b": self.b.path.display().to_string(),
            "rows": self.a.names,
            "cols": self.b.names,
            "matrix": self.matrix.to_rows(),
            "n": self.a.n(),
            "kernel": self.kernel.name(),
            "estimator": self.estimator,
        });
        if let Kernel::Rbf { sigma_frac } = self.kernel {
            v["sigma_frac"] = sigma_frac.into();
        }
        if let (Some(m), Some(batches)) = (self.minibatch, self.batches) {
            v["minibatch"] = m.into();
            v["batches"] = batches.into();
        }
        v
    }

    fn title(&self) -> String {
        let kernel = match self.kernel {
            Kernel::Linear => "linear".to_string(),
            Kernel::Rbf { sigma_frac } => format!("RBF (σ = {sigma_frac} × median distance)"),
        };
        let how = match (self.minibatch, self.batches) {
            (Some(m), Some(k)) => format!("minibatch, {k} batches of {m}"),
            _ => format!("{} HSIC", self.estimator),
        };
        format!("CKA, {kernel} kernel, {how}, n = {}", self.a.n())
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title());
        let _ = writeln!(out, "rows: {}\ncols: {}\n", self.a.path.display(), self.b.path.display());
        let name_w = self.a.names.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(5);
        let col_w = self.b.names.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(7);
        let _ = write!(out, "{:name_w$}", "");
        for c in &self.b.names {
            let _ = write!(out, "  {c:>col_w$}");
        }
        out.push('\n');
        for (i, r) in self.a.names.iter().enumerate() {
            let _ = write!(out, "{r:name_w$}");
            for j in 0..self.matrix.cols() {
                let cell = self.matrix.get(i, j).map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"));
                let _ = write!(out, "  {cell:>col_w$}");
            }
            out.push('\n');
        }
        out
    }

    fn csv(&self) -> String {
        let mut out = String::from("layer");
        for c in &self.b.names {
            out.push(',');
            out.push_str(&csv_field(c));
        }
        out.push('\n');
        for (i, r) in self.a.names.iter().enumerate() {
            out.push_str(&csv_field(r));
            for j in 0..self.matrix.cols() {
                out.push(',');
                if let Some(v) = self.matrix.get(i, j) {
                    let _ = write!(out, "{v}");
                }
            }
            out.push('\n');
        }
        out
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

/// Quotes a CSV field when it holds a comma, quote or newline.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
