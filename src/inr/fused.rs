//! The CPU fitter: the same recipe as [`super::batch`] (same initial weights, per-INR MSE, Adam,
//! early stop on the weights that reached the target), with the SIREN's forward pass, backward
//! pass and Adam update written out by hand and fused per INR.
//!
//! Why it exists: on burn-flex a SIREN step is dominated by element-wise work (a `sin`, a `cos`
//! and several temporaries of `[B, 784, 32]` floats per layer, on one thread) and costs about
//! 1.7 ms per INR. Here one INR's whole step runs in a few cache-resident buffers, `sin`/`cos`
//! come from one vectorisable polynomial, and INRs are spread over the cores: 5x faster on the
//! 2-core dev machine (10,000 MNIST INRs in 27 min while other jobs ran). burn's fitter stays
//! for GPUs (`wgpu`) and as the reference this one is tested against (`tests/inr_fit.rs`).
//!
//! Layout per INR (one flat `Vec<f32>` of 1,185 values for 2-32-32-1, in this order):
//! `W1 [2][h]`, `b1 [h]`, `W2 [h][h]`, `b2 [h]`, `w3 [h]`, `b3 [1]`, with `W[i][o]` the weight
//! from input `i` to output `o` (the transpose of PyTorch's `[out][in]`), so every inner loop
//! runs over `h` contiguous outputs.

use super::batch::{BETA1, BETA2, FitProgress, FittedInr, psnr_of};
use super::{Error, FitConfig, init};
use crate::data::siren::{self, Dense};

/// Adam's epsilon (PyTorch's default, as `batch::EPSILON`), in f32 for the update loop.
const EPSILON: f32 = 1e-8;

/// Offsets of the parameter blocks inside one INR's flat vector.
#[derive(Clone, Copy, Debug)]
struct Layout {
    h: usize,
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
    w3: usize,
    b3: usize,
    len: usize,
}

impl Layout {
    fn new(h: usize) -> Self {
        let w1 = 0;
        let b1 = w1 + 2 * h;
        let w2 = b1 + h;
        let b2 = w2 + h * h;
        let w3 = b2 + h;
        let b3 = w3 + h;
        Self { h, w1, b1, w2, b2, w3, b3, len: b3 + 1 }
    }

    /// PyTorch-layout layers -> one flat vector in this layout.
    fn pack(&self, layers: &[Dense]) -> Vec<f32> {
        let h = self.h;
        let mut p = vec![0.0; self.len];
        for o in 0..h {
            for i in 0..2 {
                p[self.w1 + i * h + o] = layers[0].weight[o * 2 + i];
            }
            for i in 0..h {
                p[self.w2 + i * h + o] = layers[1].weight[o * h + i];
            }
            p[self.w3 + o] = layers[2].weight[o];
        }
        p[self.b1..self.b1 + h].copy_from_slice(&layers[0].bias);
        p[self.b2..self.b2 + h].copy_from_slice(&layers[1].bias);
        p[self.b3] = layers[2].bias[0];
        p
    }

    /// One flat vector -> PyTorch-layout layers.
    fn unpack(&self, p: &[f32]) -> Vec<Dense> {
        let h = self.h;
        let transpose = |base: usize, inputs: usize| -> Vec<f32> {
            (0..h * inputs).map(|k| p[base + (k % inputs) * h + k / inputs]).collect()
        };
        vec![
            Dense { weight: transpose(self.w1, 2), bias: p[self.b1..self.b1 + h].to_vec(), inputs: 2, outputs: h },
            Dense { weight: transpose(self.w2, h), bias: p[self.b2..self.b2 + h].to_vec(), inputs: h, outputs: h },
            Dense { weight: p[self.w3..self.w3 + h].to_vec(), bias: vec![p[self.b3]], inputs: h, outputs: 1 },
        ]
    }
}

/// One INR being fitted: parameters and Adam moments.
struct InrState {
    original: usize,
    params: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    target: Vec<f32>,
}

/// Per-thread work buffers, `[pixels][h]` each.
struct Scratch {
    s1: Vec<f32>,
    c1: Vec<f32>,
    s2: Vec<f32>,
    c2: Vec<f32>,
    g2: Vec<f32>,
    g1: Vec<f32>,
    residual: Vec<f32>,
    grad: Vec<f32>,
    /// `W2` transposed, `[out][in]`.
    w2t: Vec<f32>,
}

impl Scratch {
    fn new(pixels: usize, layout: &Layout) -> Self {
        let n = pixels * layout.h;
        Self {
            s1: vec![0.0; n],
            c1: vec![0.0; n],
            s2: vec![0.0; n],
            c2: vec![0.0; n],
            g2: vec![0.0; n],
            g1: vec![0.0; n],
            residual: vec![0.0; pixels],
            grad: vec![0.0; layout.len],
            w2t: vec![0.0; layout.h * layout.h],
        }
    }
}

/// What one step of one INR reports back.
#[derive(Clone, Copy)]
struct StepOutcome {
    /// MSE of the parameters before this step's update.
    mse: f32,
    finished: bool,
}

/// Fits one SIREN 2-h-h-1 per image; the same contract as [`super::fit_batch`], on the CPU.
pub fn fit_batch_fused(
    images: &[Vec<f32>],
    image_indices: &[usize],
    side: usize,
    config: &FitConfig,
    cancel: &crate::jobs::CancelToken,
    progress: &mut dyn FnMut(&FitProgress),
) -> Result<Vec<FittedInr>, Error> {
    let n = images.len();
    let pixels = side * side;
    if !super::batch::check_batch(images, image_indices, side)? {
        return Ok(Vec::new());
    }
    let h = config.hidden;
    let layout = Layout::new(h);
    let widths = [2, h, h, 1];
    let coords: Vec<[f32; 2]> = siren::grid(side);
    let mut active: Vec<InrState> = image_indices
        .iter()
        .zip(images)
        .enumerate()
        .map(|(original, (&index, image))| {
            let layers = init::siren(
                &widths,
                config.omega_0,
                config.recipe,
                config.seed,
                super::batch::init_index(config, index),
            );
            InrState {
                original,
                params: layout.pack(&layers),
                m: vec![0.0; layout.len],
                v: vec![0.0; layout.len],
                target: image.clone(),
            }
        })
        .collect();
    let mut results: Vec<Option<FittedInr>> = vec![None; n];
    let mut initial_psnr = vec![0.0f32; n];
    let target_mse = config.target_psnr.map(|db| 10f64.powf(-db / 10.0));
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 64);
    let mut scratch: Vec<Scratch> = (0..threads).map(|_| Scratch::new(pixels, &layout)).collect();

    for step in 0..=config.steps {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let t = (step + 1) as i32;
        let adam = Adam {
            step_size: (config.lr / (1.0 - BETA1.powi(t))) as f32,
            v_correction: (1.0 / (1.0 - BETA2.powi(t))) as f32,
        };
        let is_last = step == config.steps;
        let step_of = |state: &mut InrState, scratch: &mut Scratch| {
            let mse = forward_backward(&layout, &coords, config, state, scratch);
            let finished = is_last || !mse.is_finite() || target_mse.is_some_and(|t| (mse as f64) <= t);
            if !finished {
                adam.update(state, &scratch.grad);
            }
            StepOutcome { mse, finished }
        };
        let outcomes = run_parallel(&mut active, &mut scratch, &step_of);

        if let Some(bad) = outcomes.iter().find(|o| !o.mse.is_finite()) {
            return Err(Error::Invalid(format!("the loss became {} at step {step}", bad.mse)));
        }
        if step == 0 {
            for (state, o) in active.iter().zip(&outcomes) {
                initial_psnr[state.original] = psnr_of(o.mse);
            }
        }
        let loss = outcomes.iter().map(|o| o.mse as f64).sum::<f64>() / active.len() as f64;
        let mut kept = Vec::with_capacity(active.len());
        for (state, o) in active.into_iter().zip(&outcomes) {
            if o.finished {
                results[state.original] = Some(FittedInr {
                    layers: layout.unpack(&state.params),
                    psnr: psnr_of(o.mse),
                    steps: step,
                    initial_psnr: initial_psnr[state.original],
                });
            } else {
                kept.push(state);
            }
        }
        active = kept;
        if active.is_empty() {
            progress(&FitProgress { step, loss, active: 0, done: n });
            break;
        }
        progress(&FitProgress { step: step + 1, loss, active: active.len(), done: n - active.len() });
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::Invalid("an INR finished without weights (internal error)".into())))
        .collect()
}

/// Runs `f` on every INR, the INRs split into one contiguous chunk per thread; outcomes in order.
fn run_parallel<F>(active: &mut [InrState], scratch: &mut [Scratch], f: &F) -> Vec<StepOutcome>
where
    F: Fn(&mut InrState, &mut Scratch) -> StepOutcome + Sync,
{
    let chunk = active.len().div_ceil(scratch.len()).max(1);
    if active.len() <= chunk {
        let s = &mut scratch[0];
        return active.iter_mut().map(|state| f(state, s)).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = active
            .chunks_mut(chunk)
            .zip(scratch.iter_mut())
            .map(|(states, s)| scope.spawn(move || states.iter_mut().map(|state| f(state, s)).collect::<Vec<_>>()))
            .collect();
        // A worker can only panic on an internal bug; re-raise it on this thread.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Adam with PyTorch's bias correction, for one step number.
#[derive(Clone, Copy)]
struct Adam {
    step_size: f32,
    v_correction: f32,
}

impl Adam {
    fn update(&self, state: &mut InrState, grad: &[f32]) {
        let (b1, b2) = (BETA1 as f32, BETA2 as f32);
        for (((p, m), v), &g) in state.params.iter_mut().zip(&mut state.m).zip(&mut state.v).zip(grad) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= self.step_size * *m / ((*v * self.v_correction).sqrt() + EPSILON);
        }
    }
}

/// One INR: forward pass, its MSE, and the gradient of the MSE into `scratch.grad`.
fn forward_backward(
    layout: &Layout,
    coords: &[[f32; 2]],
    config: &FitConfig,
    state: &InrState,
    s: &mut Scratch,
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features `forward_backward_avx2` is compiled for.
            return unsafe { forward_backward_avx2(layout, coords, config, state, s) };
        }
    }
    forward_backward_generic(layout, coords, config, state, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_backward_avx2(
    layout: &Layout,
    coords: &[[f32; 2]],
    config: &FitConfig,
    state: &InrState,
    s: &mut Scratch,
) -> f32 {
    forward_backward_generic(layout, coords, config, state, s)
}

/// The arithmetic, written so the compiler vectorises every inner loop over `h` outputs.
#[inline(always)]
fn forward_backward_generic(
    layout: &Layout,
    coords: &[[f32; 2]],
    config: &FitConfig,
    state: &InrState,
    s: &mut Scratch,
) -> f32 {
    let h = layout.h;
    let omega = config.omega_0;
    let p = &state.params;
    let (w1a, rest) = p[layout.w1..].split_at(h);
    let w1b = &rest[..h];
    let b1 = &p[layout.b1..layout.b1 + h];
    let w2 = &p[layout.w2..layout.w2 + h * h];
    let b2 = &p[layout.b2..layout.b2 + h];
    let w3 = &p[layout.w3..layout.w3 + h];
    let b3 = p[layout.b3];
    let pixels = coords.len();

    // Forward: s1 = sin(w0 (x W1 + b1)), s2 = sin(w0 (s1 W2 + b2)), y = s2 w3 + b3 + offset.
    // Every inner loop is a zip over h-long slices: no bounds checks, so it vectorises.
    let mut sq = 0f64;
    let rows =
        s.s1.chunks_exact_mut(h)
            .zip(s.c1.chunks_exact_mut(h))
            .zip(s.s2.chunks_exact_mut(h).zip(s.c2.chunks_exact_mut(h)))
            .zip(s.g2.chunks_exact_mut(h));
    for ((((s1, c1), (s2, c2)), z2), (xy, (&target, residual))) in
        rows.zip(coords.iter().zip(state.target.iter().zip(s.residual.iter_mut())))
    {
        for ((((sn, cs), &a), &b), &c) in s1.iter_mut().zip(c1.iter_mut()).zip(w1a).zip(w1b).zip(b1) {
            (*sn, *cs) = sin_cos(omega * (xy[0] * a + xy[1] * b + c));
        }
        // z2 lives in the g2 buffer until the backward pass overwrites it.
        z2.copy_from_slice(b2);
        for (&a, w) in s1.iter().zip(w2.chunks_exact(h)) {
            for (z, &wv) in z2.iter_mut().zip(w) {
                *z += a * wv;
            }
        }
        for ((sn, cs), &z) in s2.iter_mut().zip(c2.iter_mut()).zip(z2.iter()) {
            (*sn, *cs) = sin_cos(omega * z);
        }
        let y = b3 + config.output_offset + s2.iter().zip(w3).map(|(a, b)| a * b).sum::<f32>();
        let r = y - target;
        sq += (r as f64) * (r as f64);
        *residual = r;
    }
    let mse = (sq / pixels as f64) as f32;

    for (k, row) in w2.chunks_exact(h).enumerate() {
        for (o, &w) in row.iter().enumerate() {
            s.w2t[o * h + k] = w;
        }
    }

    // Backward of mean(r^2): dy = 2 r / P.
    let scale = 2.0 / pixels as f32;
    let mut gw1a = vec![0f32; h];
    let mut gw1b = vec![0f32; h];
    let mut gb1 = vec![0f32; h];
    let mut gb2 = vec![0f32; h];
    let mut gw3 = vec![0f32; h];
    let mut gw2 = vec![0f32; h * h];
    let mut gb3 = 0f32;
    let rows =
        s.s1.chunks_exact(h)
            .zip(s.c1.chunks_exact(h))
            .zip(s.s2.chunks_exact(h).zip(s.c2.chunks_exact(h)))
            .zip(s.g2.chunks_exact_mut(h).zip(s.g1.chunks_exact_mut(h)));
    for ((((s1, c1), (s2, c2)), (g2, g1)), (xy, &r)) in rows.zip(coords.iter().zip(s.residual.iter())) {
        let dy = scale * r;
        gb3 += dy;
        // d loss / d z2 = dy w3 w0 cos(w0 z2).
        for ((((g, gw), &a), &w), &c) in g2.iter_mut().zip(gw3.iter_mut()).zip(s2).zip(w3).zip(c2) {
            *gw += dy * a;
            *g = dy * w * omega * c;
        }
        for (gb, &g) in gb2.iter_mut().zip(g2.iter()) {
            *gb += g;
        }
        // dW2[k][o] += s1[k] g2[o].
        for (&a, gw) in s1.iter().zip(gw2.chunks_exact_mut(h)) {
            for (gwv, &g) in gw.iter_mut().zip(g2.iter()) {
                *gwv += a * g;
            }
        }
        // d s1[k] = sum_o W2[k][o] g2[o], as a sum of rows of W2^T so the loop runs over k
        // (a dot product over o is a float reduction the compiler must not vectorise).
        g1.fill(0.0);
        for (&g, wt) in g2.iter().zip(s.w2t.chunks_exact(h)) {
            for (gv, &w) in g1.iter_mut().zip(wt) {
                *gv += g * w;
            }
        }
        // d loss / d z1 = d s1 w0 cos(w0 z1); then W1 and b1.
        for (((((gv, &c), ga), gb), gbias), _) in
            g1.iter_mut().zip(c1).zip(gw1a.iter_mut()).zip(gw1b.iter_mut()).zip(gb1.iter_mut()).zip(0..h)
        {
            *gv *= omega * c;
            *ga += xy[0] * *gv;
            *gb += xy[1] * *gv;
            *gbias += *gv;
        }
    }
    let grad = &mut s.grad;
    grad[layout.w1..layout.w1 + h].copy_from_slice(&gw1a);
    grad[layout.w1 + h..layout.w1 + 2 * h].copy_from_slice(&gw1b);
    grad[layout.b1..layout.b1 + h].copy_from_slice(&gb1);
    grad[layout.w2..layout.w2 + h * h].copy_from_slice(&gw2);
    grad[layout.b2..layout.b2 + h].copy_from_slice(&gb2);
    grad[layout.w3..layout.w3 + h].copy_from_slice(&gw3);
    grad[layout.b3] = gb3;
    mse
}

/// `(sin x, cos x)` to about 1e-7 absolute for the arguments a SIREN produces (|x| up to ~1e4):
/// `x = q pi/2 + r` with `|r| <= pi/4` (Cody-Waite reduction in three parts), then Taylor
/// polynomials of `sin r` and `cos r`, swapped and negated by the quadrant `q`. Branch-free, so
/// loops over it vectorise.
#[inline(always)]
fn sin_cos(x: f32) -> (f32, f32) {
    const TWO_OVER_PI: f32 = std::f32::consts::FRAC_2_PI;
    // pi/2 split so that q * PIO2_A and q * PIO2_B are exact in f32 for |q| < 2^12.
    const PIO2_A: f32 = 1.570_312_5;
    const PIO2_B: f32 = 4.837_513e-4;
    const PIO2_C: f32 = 7.549_79e-8;
    let q = (x * TWO_OVER_PI).round();
    let r = ((x - q * PIO2_A) - q * PIO2_B) - q * PIO2_C;
    let r2 = r * r;
    let sin_r = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362_880.0)))));
    let cos_r =
        1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40_320.0 + r2 * (-1.0 / 3_628_800.0)))));
    let qi = q as i32;
    let swap = (qi & 1) as f32;
    let sin_mag = sin_r + swap * (cos_r - sin_r);
    let cos_mag = cos_r + swap * (sin_r - cos_r);
    let sin_sign = 1.0 - 2.0 * ((qi >> 1) & 1) as f32;
    let cos_sign = 1.0 - 2.0 * (((qi + 1) >> 1) & 1) as f32;
    (sin_sign * sin_mag, cos_sign * cos_mag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_cos_matches_the_standard_library() {
        let mut worst = 0f32;
        let mut x = -3000.0f32;
        while x < 3000.0 {
            let (s, c) = sin_cos(x);
            let (rs, rc) = ((x as f64).sin() as f32, (x as f64).cos() as f32);
            worst = worst.max((s - rs).abs()).max((c - rc).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-6, "worst error {worst}");
        for x in [0.0f32, 1e-6, -1e-6, std::f32::consts::FRAC_PI_4, 1.0, -2.5] {
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 3e-7 && (c - x.cos()).abs() < 3e-7, "{x}: {s} {c}");
        }
    }

    #[test]
    fn layout_round_trips_pytorch_layers() {
        let layers = init::siren(&[2, 8, 8, 1], 30.0, init::Recipe::Siren, 3, 4);
        let layout = Layout::new(8);
        assert_eq!(layout.len, 2 * 8 + 8 + 64 + 8 + 8 + 1);
        assert_eq!(layout.unpack(&layout.pack(&layers)), layers);
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        // f64 central differences of the MSE against the analytic gradient, on a small SIREN.
        let side = 5;
        let layout = Layout::new(6);
        let config = FitConfig { hidden: 6, omega_0: 3.0, ..FitConfig::default() };
        let layers = init::siren(&[2, 6, 6, 1], config.omega_0, init::Recipe::Siren, 1, 2);
        let target: Vec<f32> = (0..side * side).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        let coords = siren::grid(side);
        let state =
            InrState { original: 0, params: layout.pack(&layers), m: vec![], v: vec![], target: target.clone() };
        let mut s = Scratch::new(side * side, &layout);
        forward_backward(&layout, &coords, &config, &state, &mut s);
        let analytic = s.grad.clone();
        let mse_at = |params: &[f32]| -> f64 {
            let l = layout.unpack(params);
            let net = siren::Siren { layers: l };
            let spec = crate::data::siren::InrSpec { omega_0: config.omega_0, output_offset: 0.5, side };
            let out = net.render(&spec);
            out.iter().zip(&target).map(|(o, t)| ((o - t) as f64).powi(2)).sum::<f64>() / target.len() as f64
        };
        for k in (0..layout.len).step_by(7) {
            let eps = 1e-3f32;
            let mut plus = state.params.clone();
            plus[k] += eps;
            let mut minus = state.params.clone();
            minus[k] -= eps;
            let numeric = (mse_at(&plus) - mse_at(&minus)) / (2.0 * eps as f64);
            let a = analytic[k] as f64;
            assert!((numeric - a).abs() <= 2e-3 * numeric.abs().max(a.abs()) + 2e-4, "param {k}: {a} vs {numeric}");
        }
    }
}
