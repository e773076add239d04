//! From activation sets to the study's numbers: CKA matrices for every pair of runs, the
//! per-family and per-family-pair summaries, accuracies and the prediction agreement table.

use std::collections::BTreeMap;

use anyhow::anyhow;
use serde::{Deserialize, Serialize};

use super::files::ActivationSet;
use crate::cka::{ActivationsView, Matrix, Options, cka_matrix};

/// The three model families, in report order.
pub const FAMILIES: [&str; 3] = ["gmn", "mlp", "cnn"];

/// One trained model: its family, seed and probe-set activations.
pub struct Run {
    pub family: &'static str,
    pub seed: u64,
    pub acts: ActivationSet,
}

/// Layer names per family (`results.json`'s `layers`), from the first run of each family.
pub fn family_layers(runs: &[Run]) -> BTreeMap<String, Vec<String>> {
    let mut layers = BTreeMap::new();
    for r in runs {
        layers.entry(r.family.to_string()).or_insert_with(|| r.acts.names.clone());
    }
    layers
}

impl Run {
    pub fn label(&self) -> String {
        format!("{}-s{}", self.family, self.seed)
    }
}

/// A CKA matrix between run `a` (rows) and run `b` (columns).
pub struct PairMatrix {
    pub a: usize,
    pub b: usize,
    pub matrix: Matrix,
}

/// Every within-family pair (different seeds) and every cross-family pair.
pub fn all_pairs(runs: &[Run], options: &Options) -> anyhow::Result<Vec<PairMatrix>> {
    let mut out = Vec::new();
    for a in 0..runs.len() {
        for b in a + 1..runs.len() {
            let va = views(&runs[a].acts)?;
            let vb = views(&runs[b].acts)?;
            let matrix = cka_matrix(&va, &vb, options)
                .map_err(|e| anyhow!("CKA {} vs {}: {e}", runs[a].label(), runs[b].label()))?;
            out.push(PairMatrix { a, b, matrix });
        }
    }
    Ok(out)
}

/// The pairs the last run of `runs` forms with every earlier run: `(a, last)` for `a < last`, in
/// `a` order. Calling it after each new run yields every pair [`all_pairs`] does, as soon as both
/// runs exist (the study streams them to the app); [`sort_pairs`] restores `all_pairs`' order.
pub fn pairs_with_last(runs: &[Run], options: &Options) -> anyhow::Result<Vec<PairMatrix>> {
    let Some(last) = runs.len().checked_sub(1) else { return Ok(Vec::new()) };
    let vb = views(&runs[last].acts)?;
    let mut out = Vec::with_capacity(last);
    for a in 0..last {
        let va = views(&runs[a].acts)?;
        let matrix = cka_matrix(&va, &vb, options)
            .map_err(|e| anyhow!("CKA {} vs {}: {e}", runs[a].label(), runs[last].label()))?;
        out.push(PairMatrix { a, b: last, matrix });
    }
    Ok(out)
}

/// Puts pairs gathered incrementally into [`all_pairs`]' order (by first run, then second), the
/// order `results.json` lists matrix files in and the summaries add values in.
pub fn sort_pairs(pairs: &mut [PairMatrix]) {
    pairs.sort_by_key(|p| (p.a, p.b));
}

/// Every layer of `acts` as a CKA input.
pub fn views(acts: &ActivationSet) -> anyhow::Result<Vec<ActivationsView<'_>>> {
    let n = acts.n();
    acts.layers
        .iter()
        .map(|(p, data)| ActivationsView::new(n, *p, data).map_err(|e| anyhow!("activations: {e}")))
        .collect()
}

/// Mean, spread and range of a set of CKA values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

impl Stats {
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Stats { mean, std: var.sqrt(), min, max, count: values.len() })
    }
}

/// Same-layer cross-seed CKA of one family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilySummary {
    pub layers: Vec<String>,
    /// Per layer: CKA(layer l of seed i, layer l of seed j) over seed pairs i < j.
    pub per_layer: Vec<Option<Stats>>,
    /// Over all layers and seed pairs.
    pub overall: Option<Stats>,
}

/// Cross-family CKA of one family pair: over every layer pair of every seed pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilyPairSummary {
    pub mean: Option<f64>,
    pub max: Option<f64>,
    /// The mean matrix over seed pairs (rows: first family's layers).
    pub mean_matrix: Vec<Vec<Option<f64>>>,
    pub row_layers: Vec<String>,
    pub col_layers: Vec<String>,
}

pub fn family_summary(runs: &[Run], pairs: &[PairMatrix], family: &str) -> Option<FamilySummary> {
    let first = runs.iter().find(|r| r.family == family)?;
    let layers = first.acts.names.clone();
    let mut per_layer: Vec<Vec<f64>> = vec![Vec::new(); layers.len()];
    for p in pairs.iter().filter(|p| runs[p.a].family == family && runs[p.b].family == family) {
        for (l, values) in per_layer.iter_mut().enumerate() {
            if let Some(v) = p.matrix.get(l, l) {
                values.push(v);
            }
        }
    }
    let all: Vec<f64> = per_layer.iter().flatten().copied().collect();
    Some(FamilySummary {
        layers,
        per_layer: per_layer.iter().map(|v| Stats::of(v)).collect(),
        overall: Stats::of(&all),
    })
}

pub fn family_pair_summary(runs: &[Run], pairs: &[PairMatrix], fa: &str, fb: &str) -> Option<FamilyPairSummary> {
    let ra = runs.iter().find(|r| r.family == fa)?;
    let rb = runs.iter().find(|r| r.family == fb)?;
    let (rows, cols) = (ra.acts.layers.len(), rb.acts.layers.len());
    let mut sums = vec![vec![(0.0f64, 0usize); cols]; rows];
    let mut all = Vec::new();
    for p in pairs {
        // Orient every matrix as (fa rows, fb columns); within-family pairs only when fa == fb.
        let (x, y) = (runs[p.a].family, runs[p.b].family);
        let transpose = if x == fa && y == fb {
            false
        } else if x == fb && y == fa {
            true
        } else {
            continue;
        };
        for (i, row) in sums.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                let v = if transpose { p.matrix.get(j, i) } else { p.matrix.get(i, j) };
                if let Some(v) = v {
                    cell.0 += v;
                    cell.1 += 1;
                    all.push(v);
                }
            }
        }
    }
    let stats = Stats::of(&all);
    Some(FamilyPairSummary {
        mean: stats.as_ref().map(|s| s.mean),
        max: stats.as_ref().map(|s| s.max),
        mean_matrix: sums.iter().map(|r| r.iter().map(|&(s, n)| (n > 0).then(|| s / n as f64)).collect()).collect(),
        row_layers: ra.acts.names.clone(),
        col_layers: rb.acts.names.clone(),
    })
}

/// Test accuracy of every run, keyed family -> seed.
pub fn accuracies(runs: &[Run], labels: &[u8]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for r in runs {
        let correct = r.acts.predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
        let acc = correct as f64 / labels.len().max(1) as f64;
        out.entry(r.family.to_string()).or_default().insert(r.seed.to_string(), acc);
    }
    out
}

/// Which families classify each probe sample correctly. A family counts as correct on a sample
/// when a strict majority of its seeds is (so one lucky seed does not make a sample "GMN-only").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub rule: String,
    pub gmn_only: usize,
    pub mlp_only: usize,
    pub cnn_only: usize,
    pub all: usize,
    pub none: usize,
    /// Samples correct by exactly two families.
    pub two_families: usize,
    pub total: usize,
    /// Probe indices of the GMN-only-correct samples.
    pub gmn_only_samples: Vec<usize>,
}

pub fn agreement(runs: &[Run], labels: &[u8]) -> Agreement {
    let correct_by = |family: &str, i: usize| -> bool {
        let seeds: Vec<&Run> = runs.iter().filter(|r| r.family == family).collect();
        let votes = seeds.iter().filter(|r| r.acts.predictions.get(i) == labels.get(i)).count();
        votes * 2 > seeds.len()
    };
    let mut a = Agreement {
        rule: "a family is correct on a sample when a strict majority of its seeds is".into(),
        gmn_only: 0,
        mlp_only: 0,
        cnn_only: 0,
        all: 0,
        none: 0,
        two_families: 0,
        total: labels.len(),
        gmn_only_samples: Vec::new(),
    };
    for i in 0..labels.len() {
        let (g, m, c) = (correct_by("gmn", i), correct_by("mlp", i), correct_by("cnn", i));
        match (g, m, c) {
            (true, true, true) => a.all += 1,
            (false, false, false) => a.none += 1,
            (true, false, false) => {
                a.gmn_only += 1;
                a.gmn_only_samples.push(i);
            }
            (false, true, false) => a.mlp_only += 1,
            (false, false, true) => a.cnn_only += 1,
            _ => a.two_families += 1,
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Two seeds of each family, random activations with family-specific layer widths.
    fn runs() -> Vec<Run> {
        let n = 20;
        let mut rng = SplitMix64::new(9);
        let mut runs = Vec::new();
        for (family, widths) in [("gmn", vec![4, 3]), ("mlp", vec![5, 2, 3]), ("cnn", vec![6, 3])] {
            for seed in [0u64, 1] {
                let layers = widths.iter().map(|&p| (p, (0..n * p).map(|_| rng.normal()).collect())).collect();
                let names = (0..widths.len()).map(|l| format!("l{l}")).collect();
                runs.push(Run { family, seed, acts: ActivationSet { names, layers, predictions: vec![0; n] } });
            }
        }
        runs
    }

    /// The study computes each run's pairs when the run is added; gathered and sorted, they are
    /// exactly `all_pairs`: same runs, same order, bit-identical matrices, so results.json (whose
    /// summaries add values in pair order) cannot change.
    #[test]
    fn incremental_pairs_equal_all_pairs() {
        let runs = runs();
        let options = Options::linear();
        let expected = all_pairs(&runs, &options).unwrap();
        assert_eq!(expected.len(), runs.len() * (runs.len() - 1) / 2);
        let mut gathered = Vec::new();
        for k in 1..=runs.len() {
            let new = pairs_with_last(&runs[..k], &options).unwrap();
            assert_eq!(new.len(), k - 1, "run {k} pairs with every earlier run");
            assert!(new.iter().all(|p| p.b == k - 1 && p.a < p.b));
            gathered.extend(new);
        }
        sort_pairs(&mut gathered);
        for (g, e) in gathered.iter().zip(&expected) {
            assert_eq!((g.a, g.b), (e.a, e.b));
            assert_eq!(g.matrix, e.matrix, "pair ({}, {})", e.a, e.b);
        }
        assert_eq!(gathered.len(), expected.len());
        let summary = |pairs: &[PairMatrix]| {
            (family_summary(&runs, pairs, "mlp"), family_pair_summary(&runs, pairs, "gmn", "cnn"))
        };
        assert_eq!(summary(&gathered), summary(&expected));
        assert!(pairs_with_last(&[], &options).unwrap().is_empty());
    }
}
