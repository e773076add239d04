//! Reading a finished study back (the app's study view; scripts): `results.json` parsed into
//! [`Results`] and checked for internal consistency, the per-run-pair CKA matrices from the CSVs
//! it lists, and the derived series the study view draws (seed-comparison curves by layer depth,
//! cross-family bars, the accuracy table). Every error names the file and the problem.
//!
//! A study directory is recognised by its `results.json` ([`study_dir_of`]). Only matrix files
//! named like the study writes them (`cka/<family>-s<seed>_vs_<family>-s<seed>.csv`) are read, so
//! a hand-edited `files.matrices` list cannot point the reader at arbitrary paths. A missing or
//! malformed matrix CSV does not fail the whole study: it is skipped and reported in
//! [`StudyData::problems`] (the summaries come from `results.json` alone).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};

use super::analysis::{FAMILIES, Stats};
use super::{FORMAT, Results, VERSION};

/// The file that marks a study directory.
pub const RESULTS_FILE: &str = "results.json";
/// Study files are small (KBs); anything bigger than this is not one of ours.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// One trained model of the study: `gmn-s0` is family `gmn`, seed 0.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId {
    pub family: String,
    pub seed: u64,
}

impl RunId {
    pub fn new(family: &str, seed: u64) -> Self {
        Self { family: family.to_string(), seed }
    }

    /// The label used in file names (`gmn-s0`).
    pub fn label(&self) -> String {
        format!("{}-s{}", self.family, self.seed)
    }

    /// Parses a label written by [`RunId::label`].
    pub fn parse(label: &str) -> Option<Self> {
        let (family, seed) = label.rsplit_once("-s")?;
        let valid_family = !family.is_empty() && family.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        valid_family.then_some(())?;
        Some(Self { family: family.to_string(), seed: seed.parse().ok()? })
    }
}

/// A CKA matrix between two runs: rows = layers of `a`, columns = layers of `b`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPairMatrix {
    /// The path relative to the study directory, as listed in `results.json`.
    pub file: String,
    pub a: RunId,
    pub b: RunId,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// `rows x cols`; `None` = undefined (a constant layer).
    pub values: Vec<Vec<Option<f64>>>,
}

impl RunPairMatrix {
    /// The same matrix with rows and columns swapped (runs `b` x `a`).
    pub fn transposed(&self) -> Self {
        let values = (0..self.cols.len())
            .map(|j| self.values.iter().map(|row| row.get(j).copied().flatten()).collect())
            .collect();
        Self {
            file: self.file.clone(),
            a: self.b.clone(),
            b: self.a.clone(),
            rows: self.cols.clone(),
            cols: self.rows.clone(),
            values,
        }
    }
}

/// A study directory read back.
#[derive(Clone, Debug)]
pub struct StudyData {
    pub dir: PathBuf,
    pub results: Results,
    /// Every run-pair matrix that could be read, in the order `results.json` lists them.
    pub matrices: Vec<RunPairMatrix>,
    /// Files listed in `results.json` that could not be read (each message names the file).
    pub problems: Vec<String>,
}

/// The study directory `path` denotes: a directory holding `results.json`, or that file itself.
/// Only looks at the file system's directory entries (cheap enough for the UI thread).
pub fn study_dir_of(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        return path.join(RESULTS_FILE).is_file().then(|| path.to_path_buf());
    }
    let named = path.file_name().is_some_and(|n| n == RESULTS_FILE);
    (named && path.is_file()).then(|| path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}

/// Reads `path` whole, refusing files larger than any study file.
fn read_small(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        bail!("{}: {} bytes is too large for a study file", path.display(), meta.len());
    }
    std::fs::read_to_string(path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))
}

/// Parses and checks a `results.json` (format `gmnscope-study`, version 1).
pub fn read_results(path: &Path) -> anyhow::Result<Results> {
    let text = read_small(path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: not valid JSON: {e}", path.display()))?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT {
        bail!("{}: not a gmnscope study results file (format '{format}', expected '{FORMAT}')", path.display());
    }
    let version = value.get("version").and_then(|v| v.as_u64());
    if version != Some(u64::from(VERSION)) {
        bail!("{}: study results version {version:?}; this build reads version {VERSION}", path.display());
    }
    let results: Results =
        serde_json::from_value(value).map_err(|e| anyhow!("{}: malformed study results: {e}", path.display()))?;
    check_results(&results).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(results)
}

/// Internal consistency, so the views can trust lengths and every number is finite.
fn check_results(r: &Results) -> Result<(), String> {
    if r.probe.labels.len() != r.probe.samples {
        return Err(format!("probe lists {} labels for {} samples", r.probe.labels.len(), r.probe.samples));
    }
    for (family, s) in &r.cka.families {
        if s.per_layer.len() != s.layers.len() {
            return Err(format!(
                "family '{family}': {} per-layer entries for {} layers",
                s.per_layer.len(),
                s.layers.len()
            ));
        }
        for stats in s.per_layer.iter().chain([&s.overall]).flatten() {
            check_stats(stats).map_err(|e| format!("family '{family}': {e}"))?;
        }
    }
    for (key, p) in &r.cka.pairs {
        let fine = p.mean_matrix.len() == p.row_layers.len()
            && p.mean_matrix.iter().all(|row| row.len() == p.col_layers.len());
        if !fine {
            return Err(format!("pair '{key}': mean_matrix is not {} x {}", p.row_layers.len(), p.col_layers.len()));
        }
        let values = p.mean_matrix.iter().flatten().flatten().chain(p.mean.iter()).chain(p.max.iter());
        if let Some(bad) = values.copied().find(|v| !v.is_finite()) {
            return Err(format!("pair '{key}': non-finite CKA value {bad}"));
        }
    }
    for (family, seeds) in &r.accuracy {
        if let Some((seed, acc)) = seeds.iter().find(|(_, a)| !(0.0..=1.0).contains(*a)) {
            return Err(format!("accuracy of {family} seed {seed} is {acc}, outside [0, 1]"));
        }
    }
    let a = &r.agreement;
    let sum = [a.gmn_only, a.mlp_only, a.cnn_only, a.all, a.none, a.two_families]
        .iter()
        .try_fold(0usize, |acc, &x| acc.checked_add(x));
    if sum != Some(a.total) {
        return Err(format!("agreement counts do not add up to its total {}", a.total));
    }
    Ok(())
}

fn check_stats(s: &Stats) -> Result<(), String> {
    let all_finite = [s.mean, s.std, s.min, s.max].iter().all(|v| v.is_finite());
    if !all_finite || s.min > s.max || s.count == 0 {
        return Err(format!("invalid statistics {s:?}"));
    }
    Ok(())
}

/// The two runs of a matrix file written by the study (`cka/<run>_vs_<run>.csv`); `None` for
/// other names (the mean matrices `cka/mean_<fa>-<fb>.csv`, anything unexpected).
pub fn parse_pair_file(rel: &str) -> Option<(RunId, RunId)> {
    let name = rel.strip_prefix("cka/")?.strip_suffix(".csv")?;
    let (a, b) = name.split_once("_vs_")?;
    Some((RunId::parse(a)?, RunId::parse(b)?))
}

/// Reads a matrix CSV (the one dialect of `cka::csv`).
pub fn read_matrix_csv(path: &Path) -> anyhow::Result<crate::cka::csv::MatrixTable> {
    let text = read_small(path)?;
    crate::cka::csv::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Reads a study: `path` is the directory or its `results.json`. `cancel` is checked between files
/// (returns a [`crate::jobs::Cancelled`] error).
pub fn open(path: &Path, cancel: &crate::jobs::CancelToken) -> anyhow::Result<StudyData> {
    let dir = study_dir_of(path).ok_or_else(|| {
        let file = if path.is_dir() { path.join(RESULTS_FILE) } else { path.to_path_buf() };
        anyhow!("{}: no study results here (a study directory holds {RESULTS_FILE})", file.display())
    })?;
    let results = read_results(&dir.join(RESULTS_FILE))?;
    let mut matrices = Vec::new();
    let mut problems = Vec::new();
    for rel in &results.files.matrices {
        cancel.check()?;
        let Some((a, b)) = parse_pair_file(rel) else { continue };
        let file = dir.join(rel);
        match read_pair(&file, rel, a, b, &results) {
            Ok(m) => matrices.push(m),
            Err(e) => problems.push(e.to_string()),
        }
    }
    Ok(StudyData { dir, results, matrices, problems })
}

fn read_pair(file: &Path, rel: &str, a: RunId, b: RunId, results: &Results) -> anyhow::Result<RunPairMatrix> {
    let (rows, cols, values) = read_matrix_csv(file)?;
    // The layer names must be the runs' layers as results.json lists them.
    for (run, names, what) in [(&a, &rows, "rows"), (&b, &cols, "columns")] {
        if let Some(expected) = results.layers.get(&run.family)
            && expected != names
        {
            bail!("{}: {what} {names:?} are not the {} layers {expected:?}", file.display(), run.family);
        }
    }
    Ok(RunPairMatrix { file: rel.to_string(), a, b, rows, cols, values })
}

/// Families in report order: gmn, mlp, cnn first, then any others alphabetically.
pub fn family_order<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let set: BTreeSet<&String> = names.into_iter().collect();
    let rank = |f: &str| FAMILIES.iter().position(|k| *k == f).unwrap_or(FAMILIES.len());
    let mut out: Vec<String> = set.into_iter().cloned().collect();
    out.sort_by(|x, y| rank(x).cmp(&rank(y)).then_with(|| x.cmp(y)));
    out
}

impl StudyData {
    /// Every (row family, column family) with a mean matrix or run-pair matrices: within-family
    /// pairs first (seed comparisons), then cross-family pairs, each in report order.
    pub fn family_pairs(&self) -> Vec<(String, String)> {
        let mut set: BTreeSet<(String, String)> = BTreeSet::new();
        for key in self.results.cka.pairs.keys() {
            if let Some((a, b)) = key.split_once('-') {
                set.insert((a.to_string(), b.to_string()));
            }
        }
        for m in &self.matrices {
            let (a, b) = (m.a.family.clone(), m.b.family.clone());
            if !set.contains(&(b.clone(), a.clone())) {
                set.insert((a, b));
            }
        }
        let families: Vec<String> = set.iter().flat_map(|(a, b)| [a, b]).cloned().collect::<Vec<_>>();
        let order = family_order(families.iter());
        let rank = |f: &String| order.iter().position(|o| o == f).unwrap_or(usize::MAX);
        let mut out: Vec<(String, String)> = set.into_iter().collect();
        out.sort_by_key(|(a, b)| (a != b, rank(a), rank(b)));
        out
    }

    /// The seed pairs with a matrix for families (`fa` rows, `fb` columns), oriented that way.
    pub fn seed_pairs(&self, fa: &str, fb: &str) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self
            .matrices
            .iter()
            .filter_map(|m| {
                if m.a.family == fa && m.b.family == fb {
                    Some((m.a.seed, m.b.seed))
                } else if m.a.family == fb && m.b.family == fa {
                    Some((m.b.seed, m.a.seed))
                } else {
                    None
                }
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The matrix of runs `a` (rows) x `b` (columns), transposing a stored `b` x `a` file.
    pub fn matrix(&self, a: &RunId, b: &RunId) -> Option<RunPairMatrix> {
        self.matrices.iter().find_map(|m| {
            if &m.a == a && &m.b == b {
                Some(m.clone())
            } else if &m.a == b && &m.b == a {
                Some(m.transposed())
            } else {
                None
            }
        })
    }
}

/// Depth of layer `index` of `count`, normalised to 0 (first) .. 1 (last); 0 for a single layer.
pub fn layer_depth(index: usize, count: usize) -> f64 {
    if count <= 1 { 0.0 } else { index as f64 / (count - 1) as f64 }
}

/// One point of a seed-comparison curve: a layer and its same-layer cross-seed CKA statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedPoint {
    pub index: usize,
    pub depth: f64,
    pub layer: String,
    pub stats: Stats,
}

/// Same-layer cross-seed CKA of one family against layer depth (layers without a defined value
/// are left out).
#[derive(Clone, Debug, PartialEq)]
pub struct SeedCurve {
    pub family: String,
    pub points: Vec<SeedPoint>,
    pub overall: Option<Stats>,
}

/// The seed-comparison curves of every family, in report order.
pub fn seed_curves(results: &Results) -> Vec<SeedCurve> {
    family_order(results.cka.families.keys())
        .into_iter()
        .filter_map(|family| {
            let s = results.cka.families.get(&family)?;
            let count = s.layers.len();
            let points = s
                .layers
                .iter()
                .zip(&s.per_layer)
                .enumerate()
                .filter_map(|(index, (layer, stats))| {
                    let stats = stats.clone()?;
                    Some(SeedPoint { index, depth: layer_depth(index, count), layer: layer.clone(), stats })
                })
                .collect();
            Some(SeedCurve { family, points, overall: s.overall.clone() })
        })
        .collect()
}

/// Mean and maximum CKA between two different families (over all layer pairs and seed pairs).
#[derive(Clone, Debug, PartialEq)]
pub struct CrossFamily {
    pub a: String,
    pub b: String,
    pub mean: Option<f64>,
    pub max: Option<f64>,
}

/// Every cross-family pair summary, in report order.
pub fn cross_family(results: &Results) -> Vec<CrossFamily> {
    let order = family_order(results.cka.families.keys().chain(results.accuracy.keys()));
    let rank = |f: &str| order.iter().position(|o| o == f).unwrap_or(usize::MAX);
    let mut out: Vec<CrossFamily> = results
        .cka
        .pairs
        .iter()
        .filter_map(|(key, p)| {
            let (a, b) = key.split_once('-')?;
            (a != b).then(|| CrossFamily { a: a.to_string(), b: b.to_string(), mean: p.mean, max: p.max })
        })
        .collect();
    out.sort_by_key(|c| (rank(&c.a), rank(&c.b)));
    out
}

/// One family's probe accuracy per seed (in `results.seeds` order) and the mean over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct AccuracyRow {
    pub family: String,
    pub per_seed: Vec<(u64, Option<f64>)>,
    pub mean: Option<f64>,
}

pub fn accuracy_table(results: &Results) -> Vec<AccuracyRow> {
    family_order(results.accuracy.keys())
        .into_iter()
        .map(|family| {
            let by_seed = results.accuracy.get(&family);
            let per_seed: Vec<(u64, Option<f64>)> =
                results.seeds.iter().map(|s| (*s, by_seed.and_then(|m| m.get(&s.to_string()).copied()))).collect();
            let known: Vec<f64> = per_seed.iter().filter_map(|(_, a)| *a).collect();
            let mean = (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64);
            AccuracyRow { family, per_seed, mean }
        })
        .collect()
}

/// The agreement categories in chart order, with their counts.
pub fn agreement_bars(results: &Results) -> [(&'static str, usize); 6] {
    let a = &results.agreement;
    [
        ("GMN only", a.gmn_only),
        ("MLP only", a.mlp_only),
        ("CNN only", a.cnn_only),
        ("all three", a.all),
        ("two families", a.two_families),
        ("none", a.none),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::analysis::{self, Run};
    use super::super::files::ActivationSet;
    use super::super::{CkaResults, OutputFiles, Probe};
    use super::*;
    use crate::cka::Options;
    use crate::rng::SplitMix64;

    /// A study of random activations (2 seeds per family) written the way `study::run` writes it.
    fn write_sample(dir: &Path) -> Results {
        let n = 12;
        let mut rng = SplitMix64::new(3);
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        let mut runs = Vec::new();
        for (family, widths) in [("gmn", vec![4, 3]), ("mlp", vec![5, 3]), ("cnn", vec![6, 4, 3])] {
            for seed in [0u64, 1] {
                let layers = widths.iter().map(|&p| (p, (0..n * p).map(|_| rng.normal()).collect())).collect();
                let names = (0..widths.len()).map(|i| format!("{family}{i}")).collect();
                let predictions = (0..n).map(|i| ((i + seed as usize) % 3) as u8).collect();
                runs.push(Run { family, seed, acts: ActivationSet { names, layers, predictions } });
            }
        }
        let pairs = analysis::all_pairs(&runs, &Options::linear()).unwrap();
        let mut files = OutputFiles::default();
        std::fs::create_dir_all(dir.join("cka")).unwrap();
        for p in &pairs {
            let (a, b) = (&runs[p.a], &runs[p.b]);
            let rel = format!("cka/{}_vs_{}.csv", a.label(), b.label());
            super::super::figures::write_matrix_csv(&dir.join(&rel), &a.acts.names, &b.acts.names, &p.matrix).unwrap();
            files.matrices.push(rel);
        }
        let mut families = BTreeMap::new();
        let mut pair_summaries = BTreeMap::new();
        for (i, fa) in FAMILIES.iter().enumerate() {
            families.insert(fa.to_string(), analysis::family_summary(&runs, &pairs, fa).unwrap());
            for fb in &FAMILIES[i..] {
                let s = analysis::family_pair_summary(&runs, &pairs, fa, fb).unwrap();
                pair_summaries.insert(format!("{fa}-{fb}"), s);
            }
        }
        let layers = analysis::family_layers(&runs);
        let results = Results {
            format: FORMAT.into(),
            version: VERSION,
            name: "sample".into(),
            cka_estimator: "linear".into(),
            seeds: vec![0, 1],
            probe: Probe { split: "test".into(), samples: n, labels: labels.clone() },
            accuracy: analysis::accuracies(&runs, &labels),
            layers,
            cka: CkaResults { families, pairs: pair_summaries },
            agreement: analysis::agreement(&runs, &labels),
            files,
        };
        std::fs::write(dir.join(RESULTS_FILE), serde_json::to_string_pretty(&results).unwrap()).unwrap();
        results
    }

    #[test]
    fn a_written_study_reads_back_with_every_pair_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_sample(dir.path());
        let cancel = crate::jobs::CancelToken::new();
        let study = open(&dir.path().join(RESULTS_FILE), &cancel).unwrap();
        assert_eq!(study.dir, dir.path());
        assert!(study.problems.is_empty(), "{:?}", study.problems);
        assert_eq!(study.matrices.len(), 15, "6 runs: 15 pairs");
        // serde_json's float parsing may differ from the written value in the last bit.
        for (family, s) in &written.cka.families {
            let back = &study.results.cka.families[family];
            assert_eq!(back.layers, s.layers);
            for (x, y) in back.per_layer.iter().chain([&back.overall]).zip(s.per_layer.iter().chain([&s.overall])) {
                let (x, y) = (x.as_ref().unwrap(), y.as_ref().unwrap());
                assert!((x.mean - y.mean).abs() < 1e-12 && (x.max - y.max).abs() < 1e-12 && x.count == y.count);
            }
        }
        assert_eq!(study.results.agreement, written.agreement);
        // Pair order: within-family first, then cross-family, report order.
        let pairs: Vec<String> = study.family_pairs().iter().map(|(a, b)| format!("{a}-{b}")).collect();
        assert_eq!(pairs, ["gmn-gmn", "mlp-mlp", "cnn-cnn", "gmn-mlp", "gmn-cnn", "mlp-cnn"]);
        assert_eq!(study.seed_pairs("gmn", "gmn"), [(0, 1)]);
        assert_eq!(study.seed_pairs("cnn", "gmn"), [(0, 0), (0, 1), (1, 0), (1, 1)]);
        // A stored gmn x cnn matrix read as cnn x gmn is its transpose.
        let (g, c) = (RunId::new("gmn", 1), RunId::new("cnn", 0));
        let gc = study.matrix(&g, &c).unwrap();
        let cg = study.matrix(&c, &g).unwrap();
        assert_eq!((gc.rows.len(), gc.cols.len()), (2, 3));
        assert_eq!(cg.rows, gc.cols);
        assert_eq!(cg.values[2][1], gc.values[1][2]);
        // The per-layer statistics equal those recomputed from the CSV matrices (6-decimal CSV).
        let curves = seed_curves(&study.results);
        let cnn = curves.iter().find(|c| c.family == "cnn").unwrap();
        let m = study.matrix(&RunId::new("cnn", 0), &RunId::new("cnn", 1)).unwrap();
        for p in &cnn.points {
            let v = m.values[p.index][p.index].unwrap();
            assert!((p.stats.mean - v).abs() < 1e-6, "{} vs {v}", p.stats.mean);
        }
        assert_eq!(cnn.points.iter().map(|p| p.depth).collect::<Vec<_>>(), [0.0, 0.5, 1.0]);
    }

    #[test]
    fn derived_tables_follow_the_results() {
        let dir = tempfile::tempdir().unwrap();
        let r = write_sample(dir.path());
        let cross = cross_family(&r);
        let keys: Vec<String> = cross.iter().map(|c| format!("{}-{}", c.a, c.b)).collect();
        assert_eq!(keys, ["gmn-mlp", "gmn-cnn", "mlp-cnn"]);
        assert_eq!(cross[0].mean, r.cka.pairs["gmn-mlp"].mean);
        let acc = accuracy_table(&r);
        assert_eq!(acc.iter().map(|a| a.family.as_str()).collect::<Vec<_>>(), ["gmn", "mlp", "cnn"]);
        let gmn = &r.accuracy["gmn"];
        let mean = (gmn["0"] + gmn["1"]) / 2.0;
        assert!((acc[0].mean.unwrap() - mean).abs() < 1e-12);
        let total: usize = agreement_bars(&r).iter().map(|b| b.1).sum();
        assert_eq!(total, r.agreement.total);
    }

    #[test]
    fn bad_files_give_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = crate::jobs::CancelToken::new();
        let missing = open(dir.path(), &cancel).unwrap_err().to_string();
        assert!(missing.contains("results.json") && missing.contains("no study results"), "{missing}");
        write_sample(dir.path());
        let results = dir.path().join(RESULTS_FILE);
        let text = std::fs::read_to_string(&results).unwrap();
        // A broken matrix CSV is skipped and reported; the study still opens.
        let csv = dir.path().join("cka/gmn-s0_vs_gmn-s1.csv");
        std::fs::write(&csv, "layer,gmn0,gmn1\ngmn0,0.5\n").unwrap();
        let study = open(dir.path(), &cancel).unwrap();
        assert_eq!(study.matrices.len(), 14);
        assert!(study.problems[0].contains("gmn-s0_vs_gmn-s1.csv") && study.problems[0].contains("line 2"));
        std::fs::write(&csv, "layer,gmn0,gmn1\ngmn0,0.5,x\ngmn1,1,1\n").unwrap();
        assert!(open(dir.path(), &cancel).unwrap().problems[0].contains("'x' is not a finite number"));
        // results.json: truncated, wrong format, inconsistent.
        let cases = [
            (text[..text.len() / 2].to_string(), "not valid JSON"),
            (r#"{"format":"other","version":1}"#.to_string(), "not a gmnscope study"),
            (text.replace("\"version\": 1", "\"version\": 9"), "version Some(9)"),
            (text.replacen("\"total\": 12", "\"total\": 13", 1), "do not add up"),
            (text.replacen("\"samples\": 12", "\"samples\": \"x\"", 1), "malformed study results"),
        ];
        for (body, expected) in cases {
            std::fs::write(&results, body).unwrap();
            let e = open(dir.path(), &cancel).unwrap_err().to_string();
            assert!(e.contains("results.json") && e.contains(expected), "{e}");
        }
        cancel.cancel();
        std::fs::write(&results, &text).unwrap();
        assert_eq!(open(dir.path(), &cancel).unwrap_err().to_string(), "cancelled");
    }

    #[test]
    fn run_labels_and_file_names_parse() {
        assert_eq!(RunId::parse("gmn-s12"), Some(RunId::new("gmn", 12)));
        assert_eq!(RunId::new("cnn", 3).label(), "cnn-s3");
        assert_eq!(RunId::parse("gmn-sx"), None);
        assert_eq!(RunId::parse("../x-s1"), None);
        assert_eq!(parse_pair_file("cka/gmn-s0_vs_mlp-s2.csv"), Some((RunId::new("gmn", 0), RunId::new("mlp", 2))));
        assert_eq!(parse_pair_file("cka/mean_gmn-mlp.csv"), None);
        assert_eq!(parse_pair_file("../cka/gmn-s0_vs_mlp-s2.csv"), None);
        assert_eq!(layer_depth(0, 1), 0.0);
        assert_eq!(layer_depth(3, 4), 1.0);
    }
}
