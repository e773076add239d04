//! The seed study (issue 5; Yeom & Lee, papers.md §4): do graph metanetworks, MLPs and CNNs learn
//! similar representations across random seeds and across families?
//!
//! Owns the whole pipeline behind `gmnscope study --config STUDY.toml --out DIR`:
//! 1. images (procedural digits or an IDX directory) -> a SIREN INR zoo (`crate::inr::fit_zoo`);
//! 2. per seed: a GMN trained on the zoo (`crate::train`), an MLP and a CNN trained with Adam on
//!    the same training images ([`baselines`], models in `crate::models::image`);
//! 3. a fixed probe set — the zoo's test split (at most `probe` samples, in zoo order), each
//!    sample an image and its INR — on which every model's per-layer representation is recorded:
//!    GMN = mean hidden-node features after each EdgeMPNN block ([`gmn_runs`]); MLP/CNN = the
//!    flattened activation after each layer;
//! 4. CKA (linear by default; `debiased` or `rbf` via `[cka] kernel`) between every pair of runs,
//!    summaries, accuracies and the agreement table ([`analysis`]); CSVs and PNGs ([`figures`]).
//!
//! Resume: every finished piece is a file under `DIR` written atomically (temp + rename), and a
//! rerun reuses it: the zoo (`zoo/`, resumed batch by batch), each GMN run (`runs/gmn-s<seed>/`,
//! finished when `study-done` exists, otherwise resumed from its latest checkpoint), each
//! baseline's weights (`runs/<family>-s<seed>/model.bpk`) and each activation set
//! (`acts/<family>-s<seed>.safetensors`, see [`files`]). `DIR/config.json` records the config; a
//! rerun with a different config is refused (results would mix recipes). Interrupting (Ctrl-C)
//! at any point therefore loses at most the piece in progress.
//!
//! # `results.json` schema (format `gmnscope-study`, version 1)
//! ```text
//! {
//!   "format": "gmnscope-study", "version": 1, "name": "<config name>",
//!   "cka_estimator": "linear" | "debiased" | "rbf",
//!   "seeds": [0, 1, 2],
//!   "probe": { "split": "test", "samples": N, "labels": [u8; N] },
//!   "accuracy": { "gmn": { "<seed>": acc, ... }, "mlp": {...}, "cnn": {...} },   // on the probe set
//!   "layers": { "gmn": ["block1", ...], "mlp": ["fc1", ..., "logits"], "cnn": ["conv1", ..., "logits"] },
//!   "cka": {
//!     "families": { "<family>": { "layers": [...],
//!                    "per_layer": [ {mean, std, min, max, count} | null, ... ],   // same layer, seed pairs
//!                    "overall": {mean, std, min, max, count} | null } },
//!     "pairs": { "<fa>-<fb>": { "mean": x | null, "max": x | null,             // over all layer pairs
//!                               "mean_matrix": [[x | null]], "row_layers": [...], "col_layers": [...] } }
//!              // keys: gmn-mlp, gmn-cnn, mlp-cnn (cross-family) and gmn-gmn, mlp-mlp, cnn-cnn (within)
//!   },
//!   "agreement": { "rule": "...", "gmn_only", "mlp_only", "cnn_only", "all", "none",
//!                  "two_families", "total", "gmn_only_samples": [probe index, ...] },
//!   "files": { "matrices": ["cka/<run>_vs_<run>.csv", ...], "figures": ["figures/*.png", ...] }
//! }
//! ```
//! CKA values of the biased estimators lie in [0, 1]; `null` marks an undefined entry (a constant
//! layer). [`reader`] reads a study directory back (the app's study view). Must not import: `ui`.

pub mod analysis;
pub mod baselines;
pub mod config;
pub mod figures;
pub mod files;
pub mod gmn_runs;
pub mod reader;
pub mod training_cka;

pub use config::StudyConfig;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::data::zoo::native::ZooIndex;
use crate::data::{ImageSet, Split, procedural};
use crate::inr::{FitConfig, ZooFitConfig, ZooFitEvent};
use crate::jobs::{CancelToken, Cancelled};
use crate::models::image::{ImageCnn, ImageMlp};
use crate::train::GraphSet;
use analysis::{Agreement, FAMILIES, FamilyPairSummary, FamilySummary, PairMatrix, Run};
use baselines::{ImageBatch, TrainSettings};
use files::{ActivationSet, write_bytes};
use reader::{RunId, RunPairMatrix};

pub const FORMAT: &str = "gmnscope-study";
pub const VERSION: u32 = 1;

/// What `results.json` holds (see the module doc for the schema).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub format: String,
    pub version: u32,
    pub name: String,
    pub cka_estimator: String,
    pub seeds: Vec<u64>,
    pub probe: Probe,
    pub accuracy: BTreeMap<String, BTreeMap<String, f64>>,
    pub layers: BTreeMap<String, Vec<String>>,
    pub cka: CkaResults,
    pub agreement: Agreement,
    pub files: OutputFiles,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Probe {
    pub split: String,
    pub samples: usize,
    pub labels: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CkaResults {
    pub families: BTreeMap<String, FamilySummary>,
    pub pairs: BTreeMap<String, FamilyPairSummary>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OutputFiles {
    pub matrices: Vec<String>,
    pub figures: Vec<String>,
}

/// What a running study reports, in order. The CLI prints the messages; the app also draws the
/// runs and matrices as they arrive.
#[derive(Clone, Debug)]
pub enum StudyEvent {
    /// One line of progress (what `gmnscope study` prints).
    Message(String),
    /// A run's probe activations are ready (trained now or reused): run `done` of `total`.
    RunFinished { run: RunId, accuracy: f64, done: usize, total: usize },
    /// A run-pair CKA matrix, computed as soon as both runs existed (its CSV is written), with
    /// the study's summaries over every run and pair so far: `results.json` as it would read if
    /// the study ended here, without the figures and the summaries that have no value yet.
    Pair { matrix: RunPairMatrix, partial: Box<Results> },
}

/// Runs (or resumes) the study into `out`; `progress` receives one line per event.
pub fn run(config: &StudyConfig, out: &Path, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Results> {
    run_with_events(config, out, &CancelToken::new(), &mut |event| {
        if let StudyEvent::Message(line) = event {
            progress(&line);
        }
    })
}

/// Runs (or resumes) the study into `out`, reporting through `on_event`. Setting `cancel` stops
/// it at the next check (between runs, INR batches and GMN batches) with a [`Cancelled`] error
/// (`Cancelled::is_in` finds it under any context);
/// everything finished so far stays on disk, so a rerun resumes.
pub fn run_with_events(
    config: &StudyConfig,
    out: &Path,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(StudyEvent),
) -> anyhow::Result<Results> {
    let say = |on_event: &mut dyn FnMut(StudyEvent), line: String| on_event(StudyEvent::Message(line));
    let check = || cancel.check().map_err(anyhow::Error::new);
    config.validate().map_err(|e| anyhow!(e))?;
    for sub in ["", "runs", "acts", "cka", "figures"] {
        let dir = out.join(sub);
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    check_config(config, out)?;
    let device = Device::flex();

    // 1. Images and the INR zoo.
    let images = load_images(config)?;
    let zoo_dir = out.join("zoo");
    fit_zoo(config, &images, &zoo_dir, &device, cancel, &mut |l: &str| say(on_event, l.to_string()))?;
    let index = ZooIndex::read(&zoo_dir)?;
    let side = images.rows;
    let pixels_of = |entries: &[usize]| -> (Vec<f32>, Vec<u8>) {
        let mut px = Vec::with_capacity(entries.len() * side * side);
        let mut labels = Vec::with_capacity(entries.len());
        for &e in entries {
            let entry = &index.entries[e];
            let img = images.image(entry.image_index).unwrap_or_default();
            px.extend(img.iter().map(|&v| v as f32 / 255.0));
            px.resize(labels.len() * side * side + side * side, 0.0);
            labels.push(entry.label);
        }
        (px, labels)
    };
    let train_entries: Vec<usize> =
        (0..index.entries.len()).filter(|&i| index.entries[i].split == Split::Train).collect();
    let mut probe_entries: Vec<usize> =
        (0..index.entries.len()).filter(|&i| index.entries[i].split == Split::Test).collect();
    if config.probe > 0 {
        probe_entries.truncate(config.probe);
    }
    if probe_entries.len() < 4 {
        bail!("the probe set has {} test samples; CKA needs at least 4 (use more images)", probe_entries.len());
    }
    let (train_px, train_labels) = pixels_of(&train_entries);
    let (probe_px, probe_labels) = pixels_of(&probe_entries);
    let train_images = ImageBatch { pixels: &train_px, labels: &train_labels, side };
    let probe_images = ImageBatch { pixels: &probe_px, labels: &probe_labels, side };
    say(
        on_event,
        format!(
            "zoo ready: {} INRs ({} train); probe set: {} test samples",
            index.entries.len(),
            train_entries.len(),
            probe_entries.len()
        ),
    );

    // 2-3. Runs and their probe activations; 4. each run's CKA with every earlier run as soon as
    // it exists (so the app can show matrices while later runs train).
    let options = config.cka_options();
    let total_runs = FAMILIES.len() * config.seeds.len();
    let mut graphs: Option<Arc<GraphSet>> = None;
    let mut runs = Vec::new();
    let mut pairs = Vec::new();
    for family in FAMILIES {
        for &seed in &config.seeds {
            check()?;
            let label = format!("{family}-s{seed}");
            let acts_path = out.join("acts").join(format!("{label}.safetensors"));
            let run_dir = out.join("runs").join(&label);
            let acts = if acts_path.is_file() {
                say(on_event, format!("{label}: reusing {}", acts_path.display()));
                ActivationSet::read(&acts_path)?
            } else {
                let mut progress = |l: &str| say(on_event, l.to_string());
                let acts = match family {
                    "gmn" => {
                        let data = match &graphs {
                            Some(g) => g.clone(),
                            None => {
                                progress("converting the zoo to parameter graphs");
                                let g = Arc::new(GraphSet::from_zoo(&zoo_dir, false, |_, _| {})?);
                                if g.samples.len() != index.entries.len() {
                                    bail!("{}: the zoo changed while the study ran", zoo_dir.display());
                                }
                                graphs = Some(g.clone());
                                g
                            }
                        };
                        progress(&format!("{label}: training the GMN"));
                        let tc = gmn_runs::train_config(&config.gmn, seed);
                        let mut p = |line: &str| progress(&format!("{label}: {line}"));
                        gmn_runs::train(&data, tc, &run_dir, &zoo_dir, cancel, &mut p)?;
                        gmn_runs::activations(&data, &probe_entries, &run_dir, &device)?
                    }
                    "mlp" => {
                        let build = |d: &Device| ImageMlp::new(seed, side * side, &config.mlp.hidden, 10, d);
                        let s = TrainSettings {
                            epochs: config.mlp.epochs,
                            batch_size: config.mlp.batch_size,
                            lr: config.mlp.lr,
                            seed,
                        };
                        let (train, probe) = (&train_images, &probe_images);
                        baseline_run(&label, &run_dir, build, &s, train, probe, &device, &mut progress)?
                    }
                    _ => {
                        let c = &config.cnn;
                        let build = |d: &Device| ImageCnn::new(seed, side, &c.channels, c.hidden, 10, d);
                        let s = TrainSettings { epochs: c.epochs, batch_size: c.batch_size, lr: c.lr, seed };
                        let (train, probe) = (&train_images, &probe_images);
                        baseline_run(&label, &run_dir, build, &s, train, probe, &device, &mut progress)?
                    }
                };
                acts.write(&acts_path)?;
                acts
            };
            if acts.n() != probe_entries.len() {
                bail!("{}: holds {} samples, the probe set has {}", acts_path.display(), acts.n(), probe_entries.len());
            }
            let correct = acts.predictions.iter().zip(&probe_labels).filter(|(p, l)| p == l).count();
            let accuracy = correct as f64 / probe_labels.len() as f64;
            say(on_event, format!("{label}: probe accuracy {accuracy:.3}"));
            runs.push(Run { family, seed, acts });
            let run = RunId::new(family, seed);
            on_event(StudyEvent::RunFinished { run, accuracy, done: runs.len(), total: total_runs });
            if runs.len() > 1 {
                say(on_event, format!("{label}: CKA with the {} runs before it", runs.len() - 1));
            }
            for p in analysis::pairs_with_last(&runs, &options)? {
                let matrix = write_pair_csv(out, &runs, &p)?;
                pairs.push(p);
                analysis::sort_pairs(&mut pairs);
                let partial = summarise(config, &runs, &pairs, &probe_labels, true).results;
                on_event(StudyEvent::Pair { matrix, partial: Box::new(partial) });
            }
        }
    }

    // 4-5. Summaries, predictions; files.
    say(on_event, "summarising CKA over every pair of runs".to_string());
    let Summary { mut results, pair_order } = summarise(config, &runs, &pairs, &probe_labels, false);
    let files = &mut results.files;
    for (key, s) in pair_order.iter().filter_map(|k| results.cka.pairs.get(k).map(|s| (k, s))) {
        let (fa, fb) = key.split_once('-').unwrap_or((key, key));
        let rel = format!("figures/cka-{key}.png");
        let what = if fa == fb { "across seeds" } else { "across families" };
        figures::write_heatmap(
            &out.join(&rel),
            &format!("{} CKA {key} {what} (mean over seed pairs)", config.cka.kernel),
            (&fa.to_uppercase(), &s.row_layers),
            (&fb.to_uppercase(), &s.col_layers),
            &s.mean_matrix,
        )?;
        files.figures.push(rel);
        let csv_rel = format!("cka/mean_{key}.csv");
        write_bytes(&out.join(&csv_rel), figures::matrix_csv(&s.row_layers, &s.col_layers, &s.mean_matrix).as_bytes())?;
        files.matrices.push(csv_rel);
    }
    let seed_plot = "figures/seed-cka.png".to_string();
    let plotted: Vec<(&str, &FamilySummary)> =
        FAMILIES.iter().filter_map(|f| results.cka.families.get(*f).map(|s| (*f, s))).collect();
    figures::write_seed_plot(
        &out.join(&seed_plot),
        &format!("Same-layer {} CKA across seeds ({} seeds)", config.cka.kernel, config.seeds.len()),
        &plotted,
    )?;
    files.figures.push(seed_plot);

    let gmn_only_png = "figures/gmn-only-correct.png".to_string();
    write_examples(&out.join(&gmn_only_png), &images, &index, &probe_entries, &results.agreement.gmn_only_samples)?;
    results.files.figures.push(gmn_only_png);

    let json = serde_json::to_string_pretty(&results)?;
    write_bytes(&out.join("results.json"), json.as_bytes())?;
    say(on_event, format!("wrote {}", out.join("results.json").display()));
    Ok(results)
}

/// Writes the matrix CSV of run pair `p` (`cka/<run>_vs_<run>.csv`) and returns the matrix read
/// back from it: exactly what the study view shows once the study is finished and reopened.
fn write_pair_csv(out: &Path, runs: &[Run], p: &PairMatrix) -> anyhow::Result<RunPairMatrix> {
    let (a, b) = (&runs[p.a], &runs[p.b]);
    let file = format!("cka/{}_vs_{}.csv", a.label(), b.label());
    let path = out.join(&file);
    figures::write_matrix_csv(&path, &a.acts.names, &b.acts.names, &p.matrix)?;
    let (rows, cols, values) = reader::read_matrix_csv(&path)?;
    Ok(RunPairMatrix { file, a: RunId::new(a.family, a.seed), b: RunId::new(b.family, b.seed), rows, cols, values })
}

/// `results.json` for `runs` and their `pairs` (sorted as `all_pairs` returns them), with the
/// run-pair matrix files listed; and the family-pair keys in report order (gmn-gmn, gmn-mlp, ...),
/// the order the final figures and mean matrices are written in.
struct Summary {
    results: Results,
    pair_order: Vec<String>,
}

/// Builds a [`Summary`]. `partial` (a study still running) leaves out summaries without any value
/// yet (a family with one run so far has no seed pairs).
fn summarise(config: &StudyConfig, runs: &[Run], pairs: &[PairMatrix], labels: &[u8], partial: bool) -> Summary {
    let mut files = OutputFiles::default();
    for p in pairs {
        files.matrices.push(format!("cka/{}_vs_{}.csv", runs[p.a].label(), runs[p.b].label()));
    }
    let mut families = BTreeMap::new();
    for f in FAMILIES {
        if let Some(s) = analysis::family_summary(runs, pairs, f)
            && !(partial && s.overall.is_none())
        {
            families.insert(f.to_string(), s);
        }
    }
    let mut pair_summaries = BTreeMap::new();
    let mut pair_order = Vec::new();
    for (i, fa) in FAMILIES.iter().enumerate() {
        for fb in &FAMILIES[i..] {
            if let Some(s) = analysis::family_pair_summary(runs, pairs, fa, fb)
                && !(partial && s.mean.is_none())
            {
                let key = format!("{fa}-{fb}");
                pair_order.push(key.clone());
                pair_summaries.insert(key, s);
            }
        }
    }
    let results = Results {
        format: FORMAT.into(),
        version: VERSION,
        name: config.name.clone(),
        cka_estimator: config.cka.kernel.clone(),
        seeds: config.seeds.clone(),
        probe: Probe { split: "test".into(), samples: labels.len(), labels: labels.to_vec() },
        accuracy: analysis::accuracies(runs, labels),
        layers: analysis::family_layers(runs),
        cka: CkaResults { families, pairs: pair_summaries },
        agreement: analysis::agreement(runs, labels),
        files,
    };
    Summary { results, pair_order }
}

/// Trains (or loads) one baseline and records its probe activations.
#[allow(clippy::too_many_arguments)]
fn baseline_run<M: baselines::Baseline>(
    label: &str,
    run_dir: &Path,
    build: impl Fn(&Device) -> Result<M, String>,
    settings: &TrainSettings,
    train: &ImageBatch<'_>,
    probe: &ImageBatch<'_>,
    device: &Device,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<ActivationSet> {
    std::fs::create_dir_all(run_dir).with_context(|| format!("{}: cannot create", run_dir.display()))?;
    let model_path = run_dir.join("model.bpk");
    let autodiff = device.clone().autodiff();
    let model = if model_path.is_file() {
        progress(&format!("{label}: reusing {}", model_path.display()));
        baselines::load(build(&autodiff).map_err(|e| anyhow!(e))?, &model_path)?
    } else {
        progress(&format!("{label}: training ({} epochs)", settings.epochs));
        let mut report = |epoch: usize, loss: f64| progress(&format!("{label}: epoch {epoch}: loss {loss:.4}"));
        let model =
            baselines::train(build(&autodiff).map_err(|e| anyhow!(e))?, train, settings, &autodiff, &mut report)?;
        baselines::save(&model, &model_path)?;
        model
    };
    baselines::activations(&model, probe, device)
}

fn load_images(config: &StudyConfig) -> anyhow::Result<ImageSet> {
    match (config.data.source.as_str(), &config.data.dir) {
        ("idx", Some(dir)) => {
            let set = ImageSet::open_dir_first(dir, Some(config.data.count))?;
            if set.len() < config.data.count {
                bail!("{}: holds {} images, the config asks for {}", dir.display(), set.len(), config.data.count);
            }
            Ok(set)
        }
        _ => Ok(procedural::generate(config.data.count, config.data.seed)),
    }
}

fn fit_zoo(
    config: &StudyConfig,
    images: &ImageSet,
    zoo_dir: &Path,
    device: &Device,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let zoo_config = ZooFitConfig {
        fit: FitConfig {
            steps: config.inr.steps,
            lr: config.inr.lr,
            seed: config.data.seed,
            target_psnr: (config.inr.target_psnr > 0.0).then_some(config.inr.target_psnr),
            shared_init: config.inr.shared_init,
            recipe: config.inr.recipe,
            ..FitConfig::default()
        },
        count: config.data.count,
        batch: config.inr.batch,
        split_seed: config.data.seed,
    };
    if let Ok(index) = ZooIndex::read(zoo_dir)
        && index.entries.len() == config.data.count
    {
        progress(&format!("zoo: reusing {} INRs in {}", index.entries.len(), zoo_dir.display()));
        return Ok(());
    }
    progress(&format!("fitting {} SIREN INRs into {}", config.data.count, zoo_dir.display()));
    let mut on_event = |e: &ZooFitEvent| {
        if let ZooFitEvent::BatchWritten { zoo_done, count, batch_mean_psnr, seconds } = e {
            progress(&format!(
                "zoo: {zoo_done}/{count} INRs (batch mean PSNR {batch_mean_psnr:.1} dB, {seconds:.0} s)"
            ));
        }
    };
    crate::inr::fit_zoo(images, zoo_dir, &zoo_config, device, cancel, &mut on_event).map_err(|e| match e {
        crate::inr::Error::Cancelled => anyhow::Error::new(Cancelled),
        e => anyhow!("{}: fitting the INR zoo: {e}", zoo_dir.display()),
    })?;
    Ok(())
}

/// `DIR/config.json` pins the config a study directory was made with.
fn check_config(config: &StudyConfig, out: &Path) -> anyhow::Result<()> {
    let path = out.join("config.json");
    let json = serde_json::to_string_pretty(config)?;
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == json => Ok(()),
        Ok(_) => bail!(
            "{}: this study directory was made with a different config; use another --out (or delete it)",
            path.display()
        ),
        Err(_) => write_bytes(&path, json.as_bytes()),
    }
}

/// A grid of the GMN-only-correct probe images (a grey 1x1 image when there are none).
fn write_examples(
    path: &Path,
    images: &ImageSet,
    index: &ZooIndex,
    probe_entries: &[usize],
    samples: &[usize],
) -> anyhow::Result<()> {
    let picks: Vec<usize> = samples
        .iter()
        .filter_map(|&s| probe_entries.get(s).and_then(|&e| index.entries.get(e)).map(|e| e.image_index))
        .take(64)
        .collect();
    // Written atomically (crate::atomic_write), so a killed study leaves no half-written image.
    procedural::write_grid_png(images, &picks, 8, path).with_context(|| format!("{}: cannot write", path.display()))
}
