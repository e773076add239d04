//! Evaluation metrics (accuracy, MSE, Kendall's tau) and the `metrics.jsonl` log.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Fraction of rows whose arg-max equals the label.
pub fn accuracy(logits: &[f32], classes: usize, labels: &[usize]) -> f64 {
    if labels.is_empty() || classes == 0 {
        return 0.0;
    }
    let correct = labels
        .iter()
        .enumerate()
        .filter(|(i, label)| logits.get(i * classes..(i + 1) * classes).is_some_and(|row| argmax(row) == **label))
        .count();
    correct as f64 / labels.len() as f64
}

/// Index of the largest value (the first one on ties; NaN never wins).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

pub fn mse(pred: &[f32], target: &[f32]) -> f64 {
    if pred.is_empty() {
        return 0.0;
    }
    pred.iter().zip(target).map(|(p, t)| ((p - t) as f64).powi(2)).sum::<f64>() / pred.len() as f64
}

/// Kendall's tau-b rank correlation (ties handled), O(n^2): validation sets are small.
pub fn kendall_tau(x: &[f32], y: &[f32]) -> f64 {
    let n = x.len().min(y.len());
    let (mut concordant, mut discordant, mut ties_x, mut ties_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = (x[i] - x[j]).signum() as i64 * ((x[i] != x[j]) as i64);
            let dy = (y[i] - y[j]).signum() as i64 * ((y[i] != y[j]) as i64);
            match (dx, dy) {
                (0, 0) => {}
                (0, _) => ties_x += 1,
                (_, 0) => ties_y += 1,
                _ if dx == dy => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let n1 = (concordant + discordant + ties_x) as f64;
    let n2 = (concordant + discordant + ties_y) as f64;
    if n1 == 0.0 || n2 == 0.0 {
        return 0.0;
    }
    (concordant - discordant) as f64 / (n1 * n2).sqrt()
}

/// Appends one JSON object per line to `RUN/metrics.jsonl`.
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    pub fn new(run_dir: &Path) -> Self {
        Self { path: run_dir.join("metrics.jsonl") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, record: &serde_json::Value) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        line.push('\n');
        f.write_all(line.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kendall_tau_reference_values() {
        // scipy.stats.kendalltau([1,2,3,4,5],[3,1,2,5,4]) = 0.4 ; with ties below: tau-b 4 / sqrt(5 * 5) = 0.8
        assert!((kendall_tau(&[1., 2., 3., 4., 5.], &[3., 1., 2., 5., 4.]) - 0.4).abs() < 1e-12);
        assert!((kendall_tau(&[1., 2., 2., 3.], &[1., 2., 3., 3.]) - 0.8).abs() < 1e-12);
        assert_eq!(kendall_tau(&[1., 2., 3.], &[3., 2., 1.]), -1.0);
    }

    #[test]
    fn accuracy_counts_argmax_hits() {
        let logits = [0.1, 0.9, 0.8, 0.2, 0.3, 0.3];
        assert_eq!(accuracy(&logits, 2, &[1, 0, 1]), 2.0 / 3.0);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
    }
}
