//! Fitting an image set into a zoo directory (`data::zoo::native` format).
//!
//! Which images: the first `count` of a permutation of the set seeded by `split_seed`; each keeps
//! the split the set assigns it (`ImageSet::splits(split_seed)`, stratified 80/10/10), so a zoo of
//! any size has the documented proportions. INR `i` of the zoo is `inr_<i>.safetensors`.
//!
//! Resume: an existing `index.json` is read first; entries already in it are skipped, provided
//! the zoo was made with the same settings (image source, seeds, steps, lr, omega_0), otherwise
//! the run refuses rather than mixing recipes. Each batch writes its INR files (atomically), then
//! rewrites the index (atomically), so a cancelled or killed run loses at most one batch.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;

use super::{Error, FitConfig, FitEngine, FitProgress, fit_batch, fit_batch_fused};
use crate::checkpoint::writer::write_safetensors;
use crate::data::siren;
use crate::data::split;
use crate::data::zoo::native::{self, IndexEntry, ZooIndex};
use crate::data::{self, ImageSet};

/// What to fit.
#[derive(Clone, Debug, PartialEq)]
pub struct ZooFitConfig {
    pub fit: FitConfig,
    /// Number of INRs in the finished zoo (at most the number of images).
    pub count: usize,
    /// INRs per batched model.
    pub batch: usize,
    /// Seed of the image order and the train/val/test split.
    pub split_seed: u64,
}

impl Default for ZooFitConfig {
    fn default() -> Self {
        Self { fit: FitConfig::default(), count: 1000, batch: 256, split_seed: 0 }
    }
}

/// Progress of a zoo fit.
#[derive(Clone, Debug, PartialEq)]
pub enum ZooFitEvent {
    /// `already` INRs were found in an existing index and are skipped.
    Resumed { already: usize },
    /// One optimisation step of the current batch.
    Step { zoo_done: usize, count: usize, batch_size: usize, progress: FitProgress, max_steps: usize },
    /// A batch was fitted and written.
    BatchWritten { zoo_done: usize, count: usize, batch_mean_psnr: f32, seconds: f64 },
}

/// What a finished (or resumed-and-finished) fit produced.
#[derive(Clone, Debug, PartialEq)]
pub struct ZooFitSummary {
    /// INRs fitted by this run.
    pub fitted: usize,
    /// INRs already present (resume).
    pub skipped: usize,
    pub total: usize,
    /// Over the whole zoo.
    pub median_psnr: f32,
    pub mean_psnr: f32,
    /// Wall time of this run's fitting and its rate.
    pub seconds: f64,
    pub inrs_per_second: f64,
}

/// Fits `config.count` INRs of `images` into the zoo directory `out` (created if needed).
pub fn fit_zoo(
    images: &ImageSet,
    out: &Path,
    config: &ZooFitConfig,
    device: &Device,
    cancel: &crate::jobs::CancelToken,
    on_event: &mut dyn FnMut(&ZooFitEvent),
) -> Result<ZooFitSummary, Error> {
    if images.rows != images.cols || images.rows == 0 {
        return Err(Error::Invalid(format!(
            "images are {}x{}; INR fitting needs square images",
            images.rows, images.cols
        )));
    }
    if config.count == 0 || config.count > images.len() {
        return Err(Error::Invalid(format!(
            "--count {} must be between 1 and the {} images",
            config.count,
            images.len()
        )));
    }
    if config.batch == 0 {
        return Err(Error::Invalid("the batch size must be at least 1".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| data::Error::io(out, "cannot create the zoo directory", e))?;

    let fresh = new_index(images, config);
    let mut index = if out.join(native::INDEX_FILE).is_file() {
        let existing = ZooIndex::read(out)?;
        check_compatible(&existing, &fresh).map_err(|m| data::Error::new(&out.join(native::INDEX_FILE), m))?;
        existing
    } else {
        fresh
    };
    let skipped = index.entries.len();
    if skipped > 0 {
        on_event(&ZooFitEvent::Resumed { already: skipped });
    }
    let done: HashSet<String> = index.entries.iter().map(|e| e.file.clone()).collect();
    let order = split::permutation(images.len(), config.split_seed);
    let splits = images.splits(config.split_seed);
    let todo: Vec<(usize, usize)> =
        (0..config.count).map(|i| (i, order[i])).filter(|&(i, _)| !done.contains(&native::inr_file_name(i))).collect();

    let started = Instant::now();
    let mut fitted = 0usize;
    for chunk in todo.chunks(config.batch) {
        let batch_started = Instant::now();
        let image_indices: Vec<usize> = chunk.iter().map(|&(_, img)| img).collect();
        let pixels: Vec<Vec<f32>> =
            image_indices.iter().map(|&img| siren::intensities(images.image(img).unwrap_or_default())).collect();
        let zoo_done = index.entries.len();
        let mut report = |p: &FitProgress| {
            on_event(&ZooFitEvent::Step {
                zoo_done,
                count: config.count,
                batch_size: chunk.len(),
                progress: p.clone(),
                max_steps: config.fit.steps,
            })
        };
        let inrs = match config.fit.engine {
            FitEngine::Cpu => fit_batch_fused(&pixels, &image_indices, images.rows, &config.fit, cancel, &mut report)?,
            FitEngine::Burn => {
                fit_batch(&pixels, &image_indices, images.rows, &config.fit, device, cancel, &mut report)?
            }
        };
        for (&(i, img), inr) in chunk.iter().zip(&inrs) {
            let file = native::inr_file_name(i);
            let path = out.join(&file);
            write_safetensors(&path, &native::inr_tensors(&inr.layers))
                .map_err(|e| data::Error::io(&path, "cannot write", e))?;
            index.entries.push(IndexEntry {
                file,
                label: images.labels.get(img).copied().unwrap_or_default(),
                split: splits.get(img).copied().unwrap_or(split::Split::Train),
                psnr: inr.psnr,
                image_index: img,
            });
        }
        index.write(out)?;
        fitted += inrs.len();
        let batch_mean_psnr = inrs.iter().map(|r| r.psnr).sum::<f32>() / inrs.len().max(1) as f32;
        on_event(&ZooFitEvent::BatchWritten {
            zoo_done: index.entries.len(),
            count: config.count,
            batch_mean_psnr,
            seconds: batch_started.elapsed().as_secs_f64(),
        });
    }
    if todo.is_empty() {
        // Nothing to fit; still make sure the index exists (count was already reached).
        index.write(out)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut psnrs: Vec<f32> = index.entries.iter().map(|e| e.psnr).collect();
    psnrs.sort_by(f32::total_cmp);
    Ok(ZooFitSummary {
        fitted,
        skipped,
        total: index.entries.len(),
        median_psnr: psnrs.get(psnrs.len() / 2).copied().unwrap_or(f32::NAN),
        mean_psnr: psnrs.iter().sum::<f32>() / psnrs.len().max(1) as f32,
        seconds,
        inrs_per_second: if seconds > 0.0 { fitted as f64 / seconds } else { 0.0 },
    })
}

fn new_index(images: &ImageSet, config: &ZooFitConfig) -> ZooIndex {
    let h = config.fit.hidden;
    ZooIndex {
        format: native::FORMAT.into(),
        version: native::VERSION,
        image_source: images.source.clone(),
        num_classes: images.num_classes().max(1),
        architecture: format!("siren 2-{h}-{h}-1"),
        omega_0: config.fit.omega_0,
        output_offset: config.fit.output_offset,
        side: images.rows,
        coordinates: format!(
            "pixel (r, c) -> (linspace(-1,1,{s})[r], linspace(-1,1,{s})[c]) (indexing ij, row-major); \
             image = seq.2(sin(w0*seq.1(sin(w0*seq.0(x))))) + output_offset; target = pixel/255",
            s = images.rows
        ),
        steps: config.fit.steps,
        target_psnr: config.fit.target_psnr,
        lr: config.fit.lr,
        batch: config.batch,
        seed: config.fit.seed,
        shared_init: config.fit.shared_init,
        recipe: config.fit.recipe.name().into(),
        split_seed: config.split_seed,
        entries: Vec::new(),
    }
}

/// Whether an existing index was made with the same recipe (batch size may differ: it does not
/// change any INR).
fn check_compatible(existing: &ZooIndex, fresh: &ZooIndex) -> Result<(), String> {
    let same = existing.image_source == fresh.image_source
        && existing.architecture == fresh.architecture
        && existing.omega_0 == fresh.omega_0
        && existing.output_offset == fresh.output_offset
        && existing.side == fresh.side
        && existing.steps == fresh.steps
        && existing.target_psnr == fresh.target_psnr
        && existing.lr == fresh.lr
        && existing.seed == fresh.seed
        && existing.shared_init == fresh.shared_init
        && existing.recipe == fresh.recipe
        && existing.split_seed == fresh.split_seed;
    if same {
        Ok(())
    } else {
        Err(format!(
            "this zoo was fitted with other settings (images {}, recipe {}, steps {}, lr {}, seed {}, shared init {}, split seed {}); \
             resume with the same settings or choose another --out",
            existing.image_source,
            existing.recipe,
            existing.steps,
            existing.lr,
            existing.seed,
            existing.shared_init,
            existing.split_seed
        ))
    }
}
