//! INR fitting against its strongest peer: gmnscope's fused CPU fitter (`inr::fit_batch_fused`)
//! and the same SIREN recipe as one batched PyTorch model (`benches/peers/inr_torch.py`: bmm,
//! Adam, the summed per-INR loss), in the same run, from the same initial weights and images,
//! for a fixed number of steps (no early stop, so both do the same work). Prints both times, the
//! ratio and both mean PSNRs (the fits must be equally good for the time to mean anything).
//!
//! `cargo bench --bench inr_fit` (256 MNIST INRs x 200 steps; `INR_FIT_COUNT=2000` for the
//! larger case). Images: the first N of `../shared/data/mnist` when present, else the
//! procedural digits. Without python3 + torch only the Rust side runs.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use gmnscope::checkpoint::writer::{OwnedTensor, write_safetensors};
use gmnscope::data::siren;
use gmnscope::inr::{FitConfig, Recipe, fit_batch_fused, init};

const STEPS: usize = 200;
const SIDE: usize = 28;

fn images(count: usize) -> (Vec<Vec<f32>>, String) {
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    let set = gmnscope::data::ImageSet::open_dir_first(&mnist, Some(count))
        .ok()
        .filter(|s| s.len() >= count)
        .map(|s| (s, "MNIST"))
        .unwrap_or_else(|| (gmnscope::data::procedural::generate(count, 0), "procedural digits"));
    let images = (0..count).map(|i| set.0.image(i).unwrap().iter().map(|&p| p as f32 / 255.0).collect()).collect();
    (images, set.1.to_string())
}

/// The peer's input: the same initial weights (DWSNets recipe, per image index), images, grid.
fn write_peer_data(path: &Path, images: &[Vec<f32>], config: &FitConfig) {
    let b = images.len();
    let h = config.hidden;
    let mut stacks: [Vec<f32>; 6] = Default::default();
    for i in 0..b {
        let layers = init::siren(&[2, h, h, 1], config.omega_0, config.recipe, config.seed, i);
        for (l, layer) in layers.iter().enumerate() {
            stacks[2 * l].extend_from_slice(&layer.weight);
            stacks[2 * l + 1].extend_from_slice(&layer.bias);
        }
    }
    let shapes = [vec![b, h, 2], vec![b, h], vec![b, h, h], vec![b, h], vec![b, 1, h], vec![b, 1]];
    let mut tensors: Vec<OwnedTensor> = ["w1", "b1", "w2", "b2", "w3", "b3"]
        .iter()
        .zip(shapes)
        .zip(&stacks)
        .map(|((name, shape), values)| OwnedTensor::f32(*name, shape, values))
        .collect();
    let coords: Vec<f32> = siren::grid(SIDE).into_iter().flatten().collect();
    tensors.push(OwnedTensor::f32("coords", vec![SIDE * SIDE, 2], &coords));
    let flat: Vec<f32> = images.iter().flatten().copied().collect();
    tensors.push(OwnedTensor::f32("images", vec![b, SIDE * SIDE], &flat));
    write_safetensors(path, &tensors).expect("write the peer's data");
}

fn main() {
    let count: usize = std::env::var("INR_FIT_COUNT").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let (images, source) = images(count);
    let config = FitConfig { steps: STEPS, target_psnr: None, recipe: Recipe::Dwsnets, ..FitConfig::default() };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "INR fitting: {count} SIRENs 2-32-32-1 ({source}), {STEPS} Adam steps, lr {}, {threads} threads",
        config.lr
    );

    let indices: Vec<usize> = (0..count).collect();
    let never = gmnscope::jobs::CancelToken::new();
    let mut best = f64::INFINITY;
    let mut psnr = 0.0;
    for _ in 0..2 {
        let start = Instant::now();
        let fitted = fit_batch_fused(&images, &indices, SIDE, &config, &never, &mut |_| {}).expect("fit");
        best = best.min(start.elapsed().as_secs_f64());
        psnr = fitted.iter().map(|f| f.psnr as f64).sum::<f64>() / fitted.len().max(1) as f64;
    }
    println!("  gmnscope fused CPU fitter: {best:.2} s (best of 2), mean PSNR {psnr:.2} dB");

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("inr_peer.safetensors");
    write_peer_data(&data, &images, &config);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/inr_torch.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&data)
        .arg(STEPS.to_string())
        .arg(config.lr.to_string())
        .arg("2")
        .env("OMP_NUM_THREADS", threads.to_string())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let line = String::from_utf8_lossy(&out.stdout);
            let json: serde_json::Value = serde_json::from_str(line.trim()).expect("peer JSON");
            let (seconds, peer_psnr) =
                (json["seconds"].as_f64().unwrap_or(f64::NAN), json["psnr"].as_f64().unwrap_or(f64::NAN));
            println!(
                "  PyTorch {} batched (bmm + Adam, {} threads): {seconds:.2} s (best of 2), mean PSNR {peer_psnr:.2} dB",
                json["torch"].as_str().unwrap_or("?"),
                json["threads"]
            );
            println!("  speed-up over PyTorch: {:.2}x (PSNR difference {:+.3} dB)", seconds / best, psnr - peer_psnr);
        }
        Ok(out) => {
            println!("  PyTorch peer skipped: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""))
        }
        Err(e) => println!("  PyTorch peer skipped: cannot run python3: {e}"),
    }
}
