//! CKA of a GMN against its own past while it trains: "how far has each layer moved?".
//!
//! Owns the numbers behind the app's live training CKA: a fixed probe set of the zoo's graphs
//! ([`probe_set`]), the GMN's block representations at initialisation ([`initial`]) and at a
//! saved checkpoint ([`at_checkpoint`]) — both through [`gmn_runs::representations`], the study's
//! GMN layer representation (mean hidden-node features per EdgeMPNN block) — and the block x block
//! linear CKA between two such sets ([`block_cka`]). Rows of the matrix are the blocks at the
//! checkpoint, columns the same blocks at initialisation: the diagonal is 1 for a block that has
//! not moved (up to an isotropic scaling and rotation) and drops as training changes it.
//!
//! Initialisation is rebuilt, not stored: `Gmn::new` is a pure function of the run's `GmnConfig`
//! (its seed included), which `run.json` holds from the start of a run. That is the state a fresh
//! run starts from; for a resumed run it is the state the run's first session started from.
//! Must not import: `ui`.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use burn::tensor::Device;

use super::files::ActivationSet;
use super::{analysis, gmn_runs};
use crate::cka::{Matrix, Options, cka_matrix};
use crate::data::Split;
use crate::models::Gmn;
use crate::train::GraphSet;
use crate::train::checkpoint::{self, RunInfo, TrainState};

/// Probe graphs used by the live training CKA (enough for a stable estimate, fast on a CPU).
pub const PROBE_GRAPHS: usize = 256;

/// Fewest validation graphs worth probing on; smaller validation splits fall back to training.
const MIN_VAL_GRAPHS: usize = 8;

/// The probe set: the first `max` graphs of the validation split, or of the training split when
/// the validation split has fewer than 8 graphs (tiny demo zoos), or of the whole zoo as a last
/// resort. Zoo order, so the same zoo always gives the same probe set.
pub fn probe_set(data: &GraphSet, max: usize) -> Vec<usize> {
    let mut probe = data.indices(Split::Val);
    if probe.len() < MIN_VAL_GRAPHS {
        probe = data.indices(Split::Train);
    }
    if probe.is_empty() {
        probe = (0..data.samples.len()).collect();
    }
    probe.truncate(max);
    probe
}

/// The run's model description (`RUN/run.json`).
pub fn run_info(run_dir: &Path) -> anyhow::Result<RunInfo> {
    Ok(checkpoint::read_run_info(run_dir)?)
}

/// Block representations of the run's GMN at initialisation (rebuilt from `run.json`).
pub fn initial(info: &RunInfo, data: &GraphSet, probe: &[usize], device: &Device) -> anyhow::Result<ActivationSet> {
    let model = Gmn::new(&info.gmn, device).map_err(|e| anyhow!("cannot rebuild the initial GMN: {e}"))?;
    gmn_runs::representations(&model, data, probe, device)
}

/// Block representations of the GMN saved in checkpoint directory `dir`, and the training
/// position the checkpoint was taken at.
pub fn at_checkpoint(
    dir: &Path,
    info: &RunInfo,
    data: &GraphSet,
    probe: &[usize],
    device: &Device,
) -> anyhow::Result<(TrainState, ActivationSet)> {
    let state = checkpoint::load_state(dir)?;
    let model = checkpoint::load_model(dir, &info.gmn, device)?;
    let acts = gmn_runs::representations(&model, data, probe, device)
        .with_context(|| format!("{}: GMN representations", dir.display()))?;
    Ok((state, acts))
}

/// Linear CKA (biased HSIC) between every block of `rows` and every block of `cols`, which must
/// hold the same probe samples. `None` entries: a block constant over the probe set.
pub fn block_cka(rows: &ActivationSet, cols: &ActivationSet) -> anyhow::Result<Matrix> {
    if rows.n() != cols.n() {
        return Err(anyhow!("{} probe samples on one side, {} on the other", rows.n(), cols.n()));
    }
    cka_matrix(&analysis::views(rows)?, &analysis::views(cols)?, &Options::linear()).map_err(|e| anyhow!("CKA: {e}"))
}

/// Where training was when a checkpoint was taken, as people count: "epoch 3" once epoch 3 is
/// complete, "epoch 3, batch 5" for a checkpoint taken inside epoch 3.
pub fn position_label(state: &TrainState) -> String {
    if state.batch_in_epoch == 0 {
        format!("epoch {}", state.epoch)
    } else {
        format!("epoch {}, batch {}", state.epoch + 1, state.batch_in_epoch)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::checkpoint::writer::{OwnedTensor, to_safetensors_bytes};
    use crate::checkpoint::{Blob, open_blob};
    use crate::data::Target;
    use crate::models::GraphInput;
    use crate::rng::SplitMix64;
    use crate::train::checkpoint::RUN_FORMAT;
    use crate::train::{Sample, TrainConfig};

    /// `n` random 2-8-8-1 SIRENs as a zoo (splits cycle train x6, val, test).
    fn zoo(n: usize) -> GraphSet {
        let widths = [2usize, 8, 8, 1];
        let mut rng = SplitMix64::new(5);
        let samples = (0..n)
            .map(|i| {
                let mut tensors = Vec::new();
                for (l, w) in widths.windows(2).enumerate() {
                    let weight: Vec<f32> = (0..w[0] * w[1]).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    let bias: Vec<f32> = (0..w[1]).map(|_| rng.uniform(-0.5, 0.5)).collect();
                    tensors.push(OwnedTensor::f32(format!("seq.{l}.weight"), vec![w[1], w[0]], &weight));
                    tensors.push(OwnedTensor::f32(format!("seq.{l}.bias"), vec![w[1]], &bias));
                }
                let blob = Blob::from_vec(to_safetensors_bytes(&tensors));
                let store = open_blob(Path::new("siren.safetensors"), blob).unwrap();
                let (topology, weights) = crate::train::dataset::graph_input(&store, false).unwrap();
                let split = match i % 8 {
                    6 => Split::Val,
                    7 => Split::Test,
                    _ => Split::Train,
                };
                Sample {
                    id: format!("inr{i}"),
                    input: GraphInput { topology: Arc::new(topology), weights },
                    target: Target::Class((i % 2) as u8),
                    split,
                }
            })
            .collect();
        GraphSet::new(samples, Some(2)).unwrap()
    }

    fn run_info(data: &GraphSet, seed: u64) -> RunInfo {
        // Without bias node features: with them, every block's mean hidden state at
        // initialisation is dominated by one number per network (its mean standardised bias),
        // so two seeds' untrained blocks have CKA ~0.9996 and "another seed" would not look moved.
        let train = TrainConfig { hidden: 8, layers: 3, seed, bias_features: false, ..TrainConfig::default() };
        let mut gmn = train.gmn(2);
        gmn.edge_norm = data.edge_norm();
        RunInfo { format: RUN_FORMAT.into(), gmn, task: data.task, train, target_mean: 0.0, target_std: 1.0, zoo: None }
    }

    fn state(epoch: usize, batch_in_epoch: usize) -> TrainState {
        TrainState {
            step: 7,
            epoch,
            batch_in_epoch,
            best_val: None,
            best_epoch: None,
            test_at_best_val: None,
            epoch_so_far: Default::default(),
        }
    }

    #[test]
    fn probe_set_prefers_a_big_enough_validation_split() {
        let big = zoo(80); // 10 validation graphs
        let probe = probe_set(&big, 256);
        assert_eq!(probe.len(), 10);
        assert!(probe.iter().all(|&i| big.samples[i].split == Split::Val));
        assert_eq!(probe_set(&big, 4), probe[..4].to_vec());
        let small = zoo(24); // 3 validation graphs: the training split instead
        let probe = probe_set(&small, 256);
        assert_eq!(probe.len(), 18);
        assert!(probe.iter().all(|&i| small.samples[i].split == Split::Train));
    }

    /// An untrained checkpoint read back from disk is the initialisation: every block's CKA with
    /// itself at initialisation is 1, and the matrix is symmetric (same model on both sides). A
    /// GMN of another seed has moved: its diagonal is below 1.
    #[test]
    fn untrained_checkpoint_matches_initialisation_and_another_seed_does_not() {
        let data = zoo(40);
        let probe = probe_set(&data, 256);
        let device = Device::flex();
        let info = run_info(&data, 3);
        let dir = tempfile::tempdir().unwrap();
        checkpoint::write_run_info(dir.path(), &info).unwrap();
        let model = Gmn::new(&info.gmn, &device).unwrap();
        let saved = checkpoint::save(dir.path(), &model, None, &state(1, 0)).unwrap();

        let reference = initial(&run_info_from(dir.path()), &data, &probe, &device).unwrap();
        let (position, current) = at_checkpoint(&saved, &info, &data, &probe, &device).unwrap();
        assert_eq!(position_label(&position), "epoch 1");
        assert_eq!(current.names, ["block1", "block2", "block3"]);
        assert_eq!(current.n(), probe.len());
        let m = block_cka(&current, &reference).unwrap();
        assert_eq!((m.rows(), m.cols()), (3, 3));
        for i in 0..3 {
            let d = m.get(i, i).expect("defined");
            assert!((d - 1.0).abs() < 1e-6, "block {i}: CKA with itself {d}");
            for j in 0..3 {
                let (a, b) = (m.get(i, j).unwrap(), m.get(j, i).unwrap());
                assert!((a - b).abs() < 1e-9, "not symmetric at ({i}, {j}): {a} vs {b}");
                assert!((-1e-9..=1.0 + 1e-9).contains(&a));
            }
        }

        let other =
            gmn_runs::representations(&Gmn::new(&run_info(&data, 4).gmn, &device).unwrap(), &data, &probe, &device)
                .unwrap();
        let moved = block_cka(&other, &reference).unwrap();
        let diagonal: Vec<f64> = (0..3).map(|i| moved.get(i, i).unwrap()).collect();
        assert!(diagonal.iter().all(|&d| d < 0.999), "another seed looks unmoved: {diagonal:?}");
        // Different probe sizes are refused rather than compared.
        let fewer = gmn_runs::representations(&model, &data, &probe[..5], &device).unwrap();
        assert!(block_cka(&fewer, &reference).is_err());
    }

    fn run_info_from(dir: &Path) -> RunInfo {
        super::run_info(dir).unwrap()
    }

    #[test]
    fn position_labels_count_epochs_from_one() {
        assert_eq!(position_label(&state(2, 0)), "epoch 2");
        assert_eq!(position_label(&state(2, 5)), "epoch 3, batch 5");
    }
}
