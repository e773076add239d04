//! The full 10 x 10 linear-CKA matrix (n = 10,000 examples, 512 features per layer) against the
//! peer, NumPy with its default BLAS (`benches/peers/cka_numpy.py`: the per-pair function a user
//! would write), on the same data in the same run. Goal: at most half NumPy's time.
//!
//! The data are generated here from a fixed seed and handed to Python as .npy files in a temp
//! directory. Printed: both times, the ratio, the achieved GFLOP/s and the machine's GEMM peak
//! (one 4096^3 f32 product through the same backend: the system BLAS, or the `gemm` crate with
//! `GMNSCOPE_BLAS=off`). Without python3/NumPy only the Rust side runs.
//!
//! `GMNSCOPE_BENCH_FULL=1` adds the memory check first: n = 50,000 with layers up to 4,096 wide
//! (A = [4096, 1024], B = [2048, 512]), reporting time and peak RSS (VmHWM), goal < 2 GiB.
//!
//! Run: `cargo bench --no-default-features --bench cka`.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::Criterion;
use gmnscope::cka::{Activations, ActivationsView, Options, Precision, cka_matrix};
use gmnscope::rng::SplitMix64;

const N: usize = 10_000;
const WIDTH: usize = 512;
const LAYERS: usize = 10;

/// Seeded activations: a shared latent signal plus layer-specific noise, so CKA values vary.
fn network(seed: u64, n: usize, widths: &[usize]) -> Vec<Activations> {
    let mut rng = SplitMix64::new(seed);
    let latent: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    widths
        .iter()
        .enumerate()
        .map(|(l, &p)| {
            let mix = 0.2 + 0.06 * l as f32;
            let data: Vec<f32> =
                (0..n * p).map(|k| mix * latent[k / p] * ((k % p) as f32 * 0.01).cos() + rng.normal()).collect();
            Activations::new(n, p, data).expect("shape")
        })
        .collect()
}

/// Floating-point operations of a matrix: all cross products (`2 n p_i q_j`) plus each layer's
/// symmetric `X^T X`, of which only the upper triangle is needed (`n p (p + 1)`; BLAS `?syrk`
/// does exactly that, the gemm-crate fallback ~1.5x more for p = 512).
fn matrix_flops(n: usize, a: &[usize], b: &[usize]) -> f64 {
    let (pa, pb): (usize, usize) = (a.iter().sum(), b.iter().sum());
    let self_work = |w: &[usize]| w.iter().map(|&p| (n * p * (p + 1)) as f64).sum::<f64>();
    2.0 * n as f64 * (pa * pb) as f64 + self_work(a) + self_work(b)
}

/// Writes layers as one float32 .npy array of shape (layers, n, p).
fn write_npy(path: &Path, layers: &[Activations]) -> std::io::Result<()> {
    let (n, p) = (layers[0].n, layers[0].p);
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {n}, {p}), }}", layers.len());
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for l in layers {
        let gmnscope::cka::Values::F32(data) = &l.data else { unreachable!("benchmark activations are f32") };
        for v in data {
            f.write_all(&v.to_le_bytes())?;
        }
    }
    f.flush()
}

struct Peer {
    seconds: f64,
    matrix: Vec<Vec<f64>>,
}

fn run_numpy(a: &[Activations], b: &[Activations]) -> Result<Peer, String> {
    let probe = Command::new("python3").args(["-c", "import numpy"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err("python3 with NumPy not found".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (pa, pb) = (dir.path().join("A.npy"), dir.path().join("B.npy"));
    write_npy(&pa, a).map_err(|e| e.to_string())?;
    write_npy(&pb, b).map_err(|e| e.to_string())?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/cka_numpy.py");
    let out = Command::new("python3").arg(script).arg(&pa).arg(&pb).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let seconds = json["seconds"].as_f64().ok_or("no seconds in peer output")?;
    let matrix = serde_json::from_value(json["matrix"].clone()).map_err(|e| e.to_string())?;
    Ok(Peer { seconds, matrix })
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// n = 50,000, widths up to 4,096: bounded working memory (256 MiB budget) on top of the inputs.
fn memory_check() {
    let n = 50_000;
    let (wa, wb) = ([4096, 1024], [2048, 512]);
    let a = network(11, n, &wa);
    let b = network(12, n, &wb);
    let inputs_mib = (wa.iter().chain(&wb).sum::<usize>() * n * 4) as f64 / (1 << 20) as f64;
    let before = peak_rss_mib().unwrap_or(f64::NAN);
    let (va, vb): (Vec<ActivationsView<'_>>, Vec<ActivationsView<'_>>) =
        (a.iter().map(Activations::view).collect(), b.iter().map(Activations::view).collect());
    let options = Options { memory_budget: 256 << 20, ..Options::linear() };
    let start = Instant::now();
    let m = cka_matrix(&va, &vb, &options).expect("cka");
    let secs = start.elapsed().as_secs_f64();
    let after = peak_rss_mib().unwrap_or(f64::NAN);
    println!(
        "memory check: n = {n}, A widths {wa:?}, B widths {wb:?}: {secs:.1} s, {:.1} GFLOP/s; inputs {inputs_mib:.0} MiB, \
         peak RSS {before:.0} MiB before / {after:.0} MiB after (goal < 2048 MiB); CKA[0][0] = {:.4}",
        matrix_flops(n, &wa, &wb) / secs / 1e9,
        m.get(0, 0).unwrap_or(f64::NAN)
    );
}

fn main() {
    if std::env::var("GMNSCOPE_BENCH_FULL").is_ok_and(|v| v == "1") {
        memory_check();
    }
    let widths = [WIDTH; LAYERS];
    let a = network(1, N, &widths);
    let b = network(2, N, &widths);
    let va: Vec<ActivationsView<'_>> = a.iter().map(Activations::view).collect();
    let vb: Vec<ActivationsView<'_>> = b.iter().map(Activations::view).collect();
    let options = Options { precision: Precision::Auto, ..Options::linear() };

    let times = Mutex::new(Vec::new());
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    criterion.bench_function("cka/linear_matrix_10x10_n10000_p512", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(cka_matrix(&va, &vb, &options).expect("cka"));
            }
            let elapsed = start.elapsed();
            times.lock().expect("timing lock").push(elapsed.as_secs_f64() / iters as f64);
            elapsed
        })
    });
    criterion.final_summary();

    let ours = cka_matrix(&va, &vb, &options).expect("cka");
    let best = times.into_inner().expect("timing lock").into_iter().fold(f64::INFINITY, f64::min);
    let flops = matrix_flops(N, &widths, &widths);
    let peak = gmnscope::cka::gemm_peak_gflops(4096);
    println!(
        "gmnscope: {best:.3} s per 10x10 matrix (best sample), {:.1} GFLOP/s ({:.0} GFLOP); products by {}, \
         whose measured peak (4096^3 f32 GEMM) is {peak:.1} GFLOP/s",
        flops / best / 1e9,
        flops / 1e9,
        gmnscope::cka::gemm_backend()
    );
    match run_numpy(&a, &b) {
        Ok(peer) => {
            let diff = peer
                .matrix
                .iter()
                .enumerate()
                .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, v)| (i, j, *v)))
                .map(|(i, j, v)| (ours.get(i, j).unwrap_or(f64::NAN) - v).abs())
                .fold(0.0, f64::max);
            println!(
                "numpy:    {:.3} s per matrix; ratio gmnscope/numpy = {:.3} (goal <= 0.5); max |difference| {diff:.1e}",
                peer.seconds,
                best / peer.seconds
            );
        }
        Err(why) => println!("numpy peer skipped: {why}"),
    }
}
