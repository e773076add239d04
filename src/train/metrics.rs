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

    /// Keeps only the records of training up to a checkpoint at `step` with `epochs_done`
    /// finished epochs: step records up to `step`, epoch records of finished epochs; a partial
    /// last line (a write cut by a kill) goes too. Rewritten atomically, so a kill during the
    /// rewrite leaves the old log. Nothing to do when there is no log or nothing to drop.
    pub fn truncate_to(&self, step: u64, epochs_done: usize) -> Result<(), String> {
        let text = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: cannot read: {e}", self.path.display())),
        };
        let keep = |line: &[u8]| -> bool {
            let Ok(record) = serde_json::from_slice::<serde_json::Value>(line) else { return false };
            let within_step = record["step"].as_u64().is_some_and(|s| s <= step);
            let epoch_done =
                record["kind"] != "epoch" || record["epoch"].as_u64().is_some_and(|e| e <= epochs_done as u64);
            within_step && epoch_done
        };
        // Only complete lines (ending in a newline) count.
        let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').filter(|l| l.ends_with(b"\n")).collect();
        // Records are appended in order, so what is kept is a prefix: it ends at the first record
        // past the checkpoint, or at the first whose step goes backwards (records of an earlier
        // interrupted resume appended after later ones).
        let mut last_step = 0u64;
        let kept: Vec<&[u8]> = lines
            .iter()
            .copied()
            .take_while(|l| {
                let line = &l[..l.len() - 1];
                let step = serde_json::from_slice::<serde_json::Value>(line).ok().and_then(|r| r["step"].as_u64());
                let in_order = step.is_some_and(|s| s >= last_step);
                last_step = step.unwrap_or(last_step);
                in_order && keep(line)
            })
            .collect();
        if kept.len() == lines.len() && lines.iter().map(|l| l.len()).sum::<usize>() == text.len() {
            return Ok(());
        }
        crate::atomic_write::write_atomically(&self.path, |w| kept.iter().try_for_each(|l| w.write_all(l)))
            .map_err(|e| format!("{}: cannot rewrite: {e}", self.path.display()))
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
    fn truncation_keeps_records_up_to_the_checkpoint_and_drops_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = MetricsLog::new(dir.path());
        let records = [
            serde_json::json!({"kind": "step", "step": 1, "epoch": 1}),
            serde_json::json!({"kind": "step", "step": 2, "epoch": 1}),
            serde_json::json!({"kind": "epoch", "step": 2, "epoch": 1}),
            serde_json::json!({"kind": "step", "step": 3, "epoch": 2}),
            serde_json::json!({"kind": "step", "step": 4, "epoch": 2}),
        ];
        let write_all = || {
            std::fs::remove_file(log.path()).ok();
            records.iter().for_each(|r| log.append(r).unwrap());
            let mut f = std::fs::OpenOptions::new().append(true).open(log.path()).unwrap();
            f.write_all(b"{\"kind\": \"st").unwrap();
        };
        let steps = || -> Vec<(String, u64)> {
            std::fs::read_to_string(log.path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .map(|r| (r["kind"].as_str().unwrap().to_string(), r["step"].as_u64().unwrap()))
                .collect()
        };
        // Checkpoint at step 3 (epoch 1 finished): steps 1-3 and epoch 1 stay.
        write_all();
        log.truncate_to(3, 1).unwrap();
        let kinds = steps();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert_eq!(kinds.last().unwrap(), &("step".to_string(), 3));
        // Checkpoint at step 2 taken before the epoch ended: its epoch record goes.
        write_all();
        log.truncate_to(2, 0).unwrap();
        assert_eq!(steps(), vec![("step".to_string(), 1), ("step".to_string(), 2)]);
        // A fresh start empties the log; a missing log is fine.
        log.truncate_to(0, 0).unwrap();
        assert!(steps().is_empty());
        std::fs::remove_file(log.path()).unwrap();
        log.truncate_to(0, 0).unwrap();
    }

    #[test]
    fn accuracy_counts_argmax_hits() {
        let logits = [0.1, 0.9, 0.8, 0.2, 0.3, 0.3];
        assert_eq!(accuracy(&logits, 2, &[1, 0, 1]), 2.0 / 3.0);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
    }
}
