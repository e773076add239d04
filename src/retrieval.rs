//! Nearest networks by GMN embedding: embed every network of a zoo once with a trained GMN
//! (cached next to the run), then rank the zoo by Euclidean distance to a query's embedding.
//! `gmnscope retrieve` is the CLI twin.
//!
//! The embedding is the vector the GMN's head reads (`GmnOutput::embedding`), computed exactly as
//! [`crate::inference::run`] computes it for one file, so a zoo member queried as a file is at
//! distance ~0 from itself, and (the GMN being permutation invariant) so is any permuted copy.
//!
//! Cache: `RUN/embeddings/<zoo>-<key>.safetensors`, one `[networks, width]` f32 tensor with the
//! network ids, the zoo directory and the cache key in the metadata. The key hashes the zoo's
//! index file (size and modification time), the checkpoint used and the run's `run.json`, so a
//! refitted zoo or a newer checkpoint is embedded again, never served stale.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::prelude::Device;

use crate::data::zoo::{EntrySource, Target, Zoo};
use crate::models::{Gmn, GmnBatch};
use crate::train::{GraphSet, RunInfo};

/// Every network of a zoo embedded by one GMN.
#[derive(Clone, Debug, PartialEq)]
pub struct ZooEmbedding {
    pub zoo: PathBuf,
    pub ids: Vec<String>,
    /// Each network's file (`None` for rows of one big file, as in the Small CNN Zoo).
    pub files: Vec<Option<PathBuf>>,
    /// Class or regression target of each network.
    pub targets: Vec<f32>,
    pub width: usize,
    /// Row-major `[ids.len(), width]`.
    pub values: Vec<f32>,
}

impl ZooEmbedding {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.width..(i + 1) * self.width]
    }
}

/// One retrieved network.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Hit {
    pub rank: usize,
    pub index: usize,
    pub id: String,
    pub file: Option<PathBuf>,
    pub target: f32,
    pub distance: f32,
}

/// The `k` networks of `zoo` nearest to `query` (Euclidean), nearest first; ties keep zoo order.
pub fn nearest(zoo: &ZooEmbedding, query: &[f32], k: usize) -> Result<Vec<Hit>, String> {
    if query.len() != zoo.width {
        return Err(format!(
            "the query's embedding has {} values, the zoo's {} (embedded by another GMN?)",
            query.len(),
            zoo.width
        ));
    }
    let mut order: Vec<(f32, usize)> = (0..zoo.len())
        .map(|i| {
            let d2: f64 = zoo.row(i).iter().zip(query).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
            (d2.sqrt() as f32, i)
        })
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    Ok(order
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(rank, (distance, i))| Hit {
            rank: rank + 1,
            index: i,
            id: zoo.ids[i].clone(),
            file: zoo.files[i].clone(),
            target: zoo.targets[i],
            distance,
        })
        .collect())
}

/// Networks per forward pass when embedding a zoo.
const BATCH: usize = 64;

/// Embeds every network of the zoo in `zoo_dir` with `model`; `progress(done, total)`.
pub fn embed_zoo(
    model: &Gmn,
    info: &RunInfo,
    device: &Device,
    zoo_dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ZooEmbedding, String> {
    let zoo = Zoo::open(zoo_dir).map_err(|e| e.to_string())?;
    let data = GraphSet::from_zoo(zoo_dir, info.gmn.undirected, |_, _| {}).map_err(|e| e.to_string())?;
    let n = data.samples.len();
    let mut values = Vec::new();
    let mut width = 0;
    let mut start = 0;
    while start < n {
        // Runs of networks with one topology go through the GMN together.
        let topology = data.samples[start].input.topology.clone();
        let mut end = start + 1;
        while end < n && end - start < BATCH && data.samples[end].input.topology == topology {
            end += 1;
        }
        let inputs: Vec<std::borrow::Cow<'_, [f32]>> = data.samples[start..end]
            .iter()
            .map(|s| info.gmn.input_weights(&s.input.topology, &s.input.weights))
            .collect();
        let columns: Vec<&[f32]> = inputs.iter().map(|c| c.as_ref()).collect();
        let device_topology = Arc::new(model.topology(&[topology.as_ref()], device)?);
        let batch = GmnBatch::shared(device_topology, &columns, device)?;
        let out = model.forward_states(&batch, false);
        let rows = crate::train::step::to_vec(out.embedding);
        width = rows.len() / (end - start);
        values.extend_from_slice(&rows);
        start = end;
        progress(start, n);
    }
    let files = zoo
        .entries
        .iter()
        .map(|e| match &e.source {
            EntrySource::File(p) => Some(p.clone()),
            EntrySource::Row(_) => None,
        })
        .collect();
    let targets = zoo
        .entries
        .iter()
        .map(|e| match e.target {
            Target::Class(c) => c as f32,
            Target::Value(v) => v,
        })
        .collect();
    let ids = data.samples.iter().map(|s| s.id.clone()).collect();
    Ok(ZooEmbedding { zoo: zoo_dir.to_path_buf(), ids, files, targets, width, values })
}

/// The zoo's embedding by the model in `checkpoint_dir` of the run in `run_dir`, from the cache
/// when it is current, else computed and cached. Returns whether it came from the cache.
pub fn cached_embed_zoo(
    model: &Gmn,
    info: &RunInfo,
    device: &Device,
    run_dir: &Path,
    checkpoint_dir: &Path,
    zoo_dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(ZooEmbedding, bool), String> {
    let key = cache_key(run_dir, checkpoint_dir, zoo_dir);
    let name = zoo_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "zoo".into());
    let path = run_dir.join("embeddings").join(format!("{name}-{key:016x}.safetensors"));
    if let Ok(cached) = read_cache(&path, zoo_dir) {
        return Ok((cached, true));
    }
    let embedding = embed_zoo(model, info, device, zoo_dir, progress)?;
    // A cache that cannot be written (read-only run directory) costs time, not correctness.
    if let Err(e) = write_cache(&path, &embedding) {
        tracing::warn!("{}: cannot cache the zoo embedding: {e}", path.display());
    }
    Ok((embedding, false))
}

/// FNV-1a over what decides the embedding: the zoo's index file, the checkpoint, run.json.
fn cache_key(run_dir: &Path, checkpoint_dir: &Path, zoo_dir: &Path) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    feed(canonical(zoo_dir).to_string_lossy().as_bytes());
    if let Ok(entries) = std::fs::read_dir(zoo_dir) {
        // The index files (and, for zoos without one, the directory listing) with sizes and times.
        let mut stamps: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let m = e.metadata().ok()?;
                let time = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
                Some(format!("{name}:{}:{time}", m.len()))
            })
            .collect();
        stamps.sort();
        feed(stamps.join("\n").as_bytes());
    }
    feed(canonical(checkpoint_dir).to_string_lossy().as_bytes());
    if let Ok(bytes) = std::fs::read(checkpoint_dir.join("model.bpk")) {
        feed(&bytes);
    }
    if let Ok(bytes) = std::fs::read(run_dir.join("run.json")) {
        feed(&bytes);
    }
    h
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheMeta {
    ids: Vec<String>,
    files: Vec<Option<PathBuf>>,
    targets: Vec<f32>,
}

fn write_cache(path: &Path, e: &ZooEmbedding) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|err| err.to_string())?;
    }
    let bytes: Vec<u8> = e.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![e.len(), e.width], &bytes)
        .map_err(|err| err.to_string())?;
    let meta = CacheMeta { ids: e.ids.clone(), files: e.files.clone(), targets: e.targets.clone() };
    let mut metadata = HashMap::new();
    metadata.insert("gmnscope".to_string(), serde_json::to_string(&meta).map_err(|err| err.to_string())?);
    let out = safetensors::serialize([("embedding", view)], Some(metadata)).map_err(|err| err.to_string())?;
    crate::atomic_write::write_atomically(path, |w| std::io::Write::write_all(w, &out)).map_err(|err| err.to_string())
}

fn read_cache(path: &Path, zoo_dir: &Path) -> Result<ZooEmbedding, String> {
    let store = crate::checkpoint::open(path).map_err(|e| e.to_string())?;
    let meta: CacheMeta =
        store.metadata.get("gmnscope").and_then(|m| serde_json::from_str(m).ok()).ok_or("no cache metadata")?;
    let t = store.get("embedding").ok_or("no embedding tensor")?;
    let [rows, width] = t.shape[..] else { return Err("not a matrix".into()) };
    if rows != meta.ids.len() || meta.files.len() != rows || meta.targets.len() != rows {
        return Err("inconsistent cache".into());
    }
    Ok(ZooEmbedding {
        zoo: zoo_dir.to_path_buf(),
        ids: meta.ids,
        files: meta.files,
        targets: meta.targets,
        width,
        values: t.to_f32(),
    })
}

/// The first two principal components of the zoo's embeddings (for a 2-D scatter): `[n][2]`
/// scores and the fraction of variance each explains.
pub fn pca_2d(e: &ZooEmbedding) -> (Vec<[f32; 2]>, [f32; 2]) {
    let (n, w) = (e.len(), e.width);
    if n == 0 || w == 0 {
        return (Vec::new(), [0.0; 2]);
    }
    let mut mean = vec![0.0f64; w];
    for i in 0..n {
        for (m, &v) in mean.iter_mut().zip(e.row(i)) {
            *m += v as f64 / n as f64;
        }
    }
    let centred: Vec<f64> = (0..n).flat_map(|i| e.row(i).iter().zip(&mean).map(|(&v, m)| v as f64 - m)).collect();
    let total: f64 = centred.iter().map(|v| v * v).sum::<f64>().max(f64::MIN_POSITIVE);
    // Power iteration on the covariance (w x w, implicit), twice with deflation.
    let mut components: Vec<Vec<f64>> = Vec::new();
    let mut explained = [0.0f32; 2];
    for (c, slot) in explained.iter_mut().enumerate() {
        let mut v: Vec<f64> = (0..w).map(|j| 1.0 + ((j * 7 + c * 13) % 11) as f64 / 11.0).collect();
        let mut eigen = 0.0;
        for _ in 0..200 {
            let mut next = vec![0.0f64; w];
            for i in 0..n {
                let row = &centred[i * w..(i + 1) * w];
                let s: f64 = row.iter().zip(&v).map(|(a, b)| a * b).sum();
                for (x, r) in next.iter_mut().zip(row) {
                    *x += s * r;
                }
            }
            for prev in &components {
                let d: f64 = next.iter().zip(prev).map(|(a, b)| a * b).sum();
                for (x, p) in next.iter_mut().zip(prev) {
                    *x -= d * p;
                }
            }
            let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            eigen = norm;
            v = next.into_iter().map(|x| x / norm).collect();
        }
        *slot = (eigen / total) as f32;
        components.push(v);
    }
    let scores = (0..n)
        .map(|i| {
            let row = &centred[i * w..(i + 1) * w];
            let s = |c: &Vec<f64>| row.iter().zip(c).map(|(a, b)| a * b).sum::<f64>() as f32;
            [s(&components[0]), s(&components[1])]
        })
        .collect();
    (scores, explained)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoo(rows: &[[f32; 2]]) -> ZooEmbedding {
        ZooEmbedding {
            zoo: PathBuf::from("z"),
            ids: (0..rows.len()).map(|i| format!("n{i}")).collect(),
            files: vec![None; rows.len()],
            targets: (0..rows.len()).map(|i| i as f32).collect(),
            width: 2,
            values: rows.iter().flatten().copied().collect(),
        }
    }

    #[test]
    fn nearest_ranks_by_distance_and_checks_the_width() {
        let z = zoo(&[[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [1.0, 0.0]]);
        let hits = nearest(&z, &[0.9, 0.0], 3).unwrap();
        let got: Vec<(usize, usize)> = hits.iter().map(|h| (h.rank, h.index)).collect();
        assert_eq!(got, [(1, 2), (2, 3), (3, 0)], "ties keep zoo order");
        assert!((hits[0].distance - 0.1).abs() < 1e-6);
        assert!(nearest(&z, &[1.0], 1).unwrap_err().contains("another GMN"));
        assert_eq!(nearest(&z, &[0.0, 0.0], 10).unwrap().len(), 4);
    }

    #[test]
    fn pca_finds_the_main_direction() {
        // Points along (3, 4) / 5 with a little spread across it.
        let rows: Vec<[f32; 2]> = (0..50)
            .map(|i| i as f32 - 25.0)
            .map(|t| [0.6 * t - 0.8 * 0.01 * t.sin(), 0.8 * t + 0.6 * 0.01 * t.sin()])
            .collect();
        let (scores, explained) = pca_2d(&zoo(&rows));
        assert!(explained[0] > 0.999 && explained[1] < 0.001, "{explained:?}");
        let expected: Vec<f32> = (0..50).map(|i| i as f32 - 25.0 + 0.5).collect();
        let sign = scores[0][0].signum() * expected[0].signum();
        for (s, e) in scores.iter().zip(&expected) {
            assert!((s[0] * sign - e).abs() < 0.05, "{s:?} vs {e}");
        }
    }
}
