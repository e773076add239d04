//! The first block's edge LayerNorm and the edge MLP's per-edge linear, at the level of edge
//! classes instead of edges: three `[E, h] x [h, h]` GEMMs per graph (of 36) that are not needed.
//!
//! Why it works: the first block's edge input is the encoder output
//! `e_m = s_m ww + F_c` (`s_m` = the edge's scaled weight, `F_c` = the weight-independent term of
//! its class `c`: same layer, type and kernel position, `Plan::edge_class`). Centred, it is
//! `s_m u + v_c` with `u = ww - mean(ww)`, `v_c = F_c - mean(F_c)`, so
//! - its variance is `s^2 |u|^2/h + 2 s u.v_c/h + |v_c|^2/h`: O(1) per edge;
//! - `LN(e_m) W = r_m (s_m a + b_c) + beta W` with `a = (gamma u) W`, `b_c = (gamma v_c) W`
//!   (`r_m` = 1 / std): O(h) per edge instead of a GEMM row;
//! - the backward pass needs the gradient of `e_m` only through sums over edges with per-edge
//!   scalar weights (the weight encoder's `ww` gets `sum_m s_m de_m`, the class constants get
//!   `sum_{m in c} de_m`), and the LayerNorm backward of such sums reduces to per-class sums of
//!   `r_m dz_m` and a few scalars per class: O(h) per edge again, plus `classes` products with W.
//!
//! `tests/gmn_fused.rs` checks the result against burn's autodiff like the rest of the engine.

use super::kernels::LN_EPS;
use super::kernels::{dot, matmul};
use super::params::Layout;
use super::plan::Plan;

/// Per-step constants of the class-level first block (they depend on the parameters only).
pub struct Block0 {
    classes: usize,
    u: Vec<f32>,
    /// `[classes, h]`: `v_c`.
    v: Vec<f32>,
    /// `|u|^2 / h`, and per class `u.v_c / h`, `|v_c|^2 / h`.
    uu: f32,
    uv: Vec<f32>,
    vv: Vec<f32>,
    a: Vec<f32>,
    /// `[classes, h]`: `b_c`.
    b: Vec<f32>,
    /// `beta W`.
    beta_w: Vec<f32>,
    /// `gamma W`.
    q: Vec<f32>,
    /// `gamma * u`, and `[classes, h]` rows `gamma * v_c`.
    gu: Vec<f32>,
    gv: Vec<f32>,
}

impl Block0 {
    /// From the parameters `p` and the edge constants `fixed_edges` (`[E, h]`).
    pub fn new(p: &[f32], layout: &Layout, plan: &Plan, fixed_edges: &[f32]) -> Option<Self> {
        let o = layout.blocks.first()?;
        let h = layout.h;
        let inv_h = 1.0 / h as f32;
        let (gamma, beta, w) =
            (&p[o.edge_gamma..o.edge_gamma + h], &p[o.edge_beta..o.edge_beta + h], &p[o.edge_self_w..]);
        let ww = &p[layout.edge_weight_w..layout.edge_weight_w + h];
        let ww_mean = ww.iter().sum::<f32>() * inv_h;
        let u: Vec<f32> = ww.iter().map(|x| x - ww_mean).collect();
        let classes = plan.class_rep.len();
        let mut v = vec![0.0f32; classes * h];
        for (row, &e) in v.chunks_exact_mut(h).zip(&plan.class_rep) {
            let f = &fixed_edges[e as usize * h..(e as usize + 1) * h];
            let mean = f.iter().sum::<f32>() * inv_h;
            row.iter_mut().zip(f).for_each(|(r, x)| *r = x - mean);
        }
        let uu = dot(&u, &u) * inv_h;
        let uv = v.chunks_exact(h).map(|vc| dot(&u, vc) * inv_h).collect();
        let vv = v.chunks_exact(h).map(|vc| dot(vc, vc) * inv_h).collect();
        let gu: Vec<f32> = u.iter().zip(gamma).map(|(a, b)| a * b).collect();
        let gv: Vec<f32> = v.chunks_exact(h).flat_map(|vc| vc.iter().zip(gamma).map(|(a, b)| a * b)).collect();
        let mut a = vec![0.0f32; h];
        matmul(&mut a, 1, h, h, &gu, false, w, false, false);
        let mut b = vec![0.0f32; classes * h];
        matmul(&mut b, classes, h, h, &gv, false, w, false, false);
        let mut beta_w = vec![0.0f32; h];
        matmul(&mut beta_w, 1, h, h, beta, false, w, false, false);
        let mut q = vec![0.0f32; h];
        matmul(&mut q, 1, h, h, gamma, false, w, false, false);
        Some(Self { classes, u, v, uu, uv, vv, a, b, beta_w, q, gu, gv })
    }

    /// Forward: `pre[m] = LN(e_m) W_es` (without the bias) and `rstd[m]`, for the scaled edge
    /// weights `s`.
    #[inline(always)]
    pub fn forward(&self, plan: &Plan, h: usize, s: &[f32], pre: &mut [f32], rstd: &mut [f32]) {
        for (m, row) in pre.chunks_exact_mut(h).enumerate() {
            let (c, sw) = (plan.edge_class[m] as usize, s[m]);
            let var = sw * sw * self.uu + 2.0 * sw * self.uv[c] + self.vv[c];
            let r = 1.0 / (var.max(0.0) + LN_EPS).sqrt();
            rstd[m] = r;
            let bc = &self.b[c * h..(c + 1) * h];
            let (rs, a, bw) = (r * sw, &self.a[..h], &self.beta_w[..h]);
            for j in 0..h {
                row[j] = rs * a[j] + r * bc[j] + bw[j];
            }
        }
    }
}

/// Per-thread buffers of the class-level backward pass.
pub struct Block0Scratch {
    d_class: Vec<f32>,
    wd_class: Vec<f32>,
    d_sw: Vec<f32>,
    d_sum: Vec<f32>,
    wd: Vec<f32>,
    mu1: Vec<f32>,
    mu2: Vec<f32>,
    mu2_sw: Vec<f32>,
}

impl Block0Scratch {
    pub fn new(plan: &Plan, h: usize) -> Self {
        let c = plan.class_rep.len();
        Self {
            d_class: vec![0.0; c * h],
            wd_class: vec![0.0; c * h],
            d_sw: vec![0.0; h],
            d_sum: vec![0.0; h],
            wd: vec![0.0; h],
            mu1: vec![0.0; c],
            mu2: vec![0.0; c],
            mu2_sw: vec![0.0; c],
        }
    }
}

/// Where the class-level backward pass writes.
pub struct Block0Grads<'a> {
    /// `[h, h]`: the per-edge linear `W_es`.
    pub w: &'a mut [f32],
    pub gamma: &'a mut [f32],
    pub beta: &'a mut [f32],
    /// The weight encoder's row `ww`.
    pub ww: &'a mut [f32],
    /// `[classes, h]`: the class constants.
    pub classes: &'a mut [f32],
}

impl Block0 {
    /// Backward: `dz` is the gradient of `pre` (`[E, h]`), `de` the gradient of `e` through the
    /// residual path, `rstd` the forward's. Adds the gradients of `W_es`, the LayerNorm, `ww`
    /// and the class constants.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // several arrays indexed in step: clearer than a zip of five
    pub fn backward(
        &self,
        p: &[f32],
        layout: &Layout,
        plan: &Plan,
        s: &[f32],
        rstd: &[f32],
        dz: &[f32],
        de: &[f32],
        t: &mut Block0Scratch,
        g: Block0Grads<'_>,
    ) {
        let h = layout.h;
        let inv_h = 1.0 / h as f32;
        let w = &p[layout.blocks[0].edge_self_w..];
        let gamma = &p[layout.blocks[0].edge_gamma..layout.blocks[0].edge_gamma + h];
        let beta = &p[layout.blocks[0].edge_beta..layout.blocks[0].edge_beta + h];
        t.d_class.fill(0.0);
        t.d_sw.fill(0.0);
        t.d_sum.fill(0.0);
        t.mu1.fill(0.0);
        t.mu2.fill(0.0);
        t.mu2_sw.fill(0.0);
        let (mut mu1_sw, mut mu2_sw2) = (0.0f32, 0.0f32);
        for (m, (d, res)) in dz.chunks_exact(h).zip(de.chunks_exact(h)).enumerate() {
            let (c, sw, r) = (plan.edge_class[m] as usize, s[m], rstd[m]);
            let mu1 = dot(d, &self.q) * inv_h;
            let mu2 = r * (sw * dot(d, &self.a) + dot(d, &self.b[c * h..(c + 1) * h])) * inv_h;
            let (dc, dsw, dsum) = (&mut t.d_class[c * h..(c + 1) * h], &mut t.d_sw[..h], &mut t.d_sum[..h]);
            // The residual path's gradient of e_m goes straight to `ww` and the class constants.
            let (ww, cl) = (&mut g.ww[..h], &mut g.classes[c * h..(c + 1) * h]);
            for j in 0..h {
                dc[j] += r * d[j];
                dsw[j] += sw * r * d[j];
                dsum[j] += d[j];
                ww[j] += sw * res[j];
                cl[j] += res[j];
            }
            t.mu1[c] += r * mu1;
            t.mu2[c] += r * r * mu2;
            t.mu2_sw[c] += r * r * mu2 * sw;
            mu1_sw += sw * r * mu1;
            mu2_sw2 += sw * sw * r * r * mu2;
        }
        let k = self.classes;
        // W_es: en_m = r_m (s_m gamma u + gamma v_c) + beta.
        matmul(g.w, h, h, 1, &self.gu, true, &t.d_sw, false, true);
        matmul(g.w, h, h, k, &self.gv, true, &t.d_class, false, true);
        matmul(g.w, h, h, 1, beta, true, &t.d_sum, false, true);
        // W applied to the summed gradients: (W d)_i = sum_j W_ij d_j.
        matmul(&mut t.wd_class, k, h, h, &t.d_class, false, w, true, false);
        matmul(&mut t.wd, 1, h, h, &t.d_sum, false, w, true, false);
        g.beta[..h].iter_mut().zip(&t.wd).for_each(|(a, b)| *a += b);
        for (c, wdc) in t.wd_class.chunks_exact(h).enumerate() {
            let vc = &self.v[c * h..(c + 1) * h];
            let cl = &mut g.classes[c * h..(c + 1) * h];
            for j in 0..h {
                g.gamma[j] += vc[j] * wdc[j];
                cl[j] += gamma[j] * wdc[j] - t.mu1[c] - self.u[j] * t.mu2_sw[c] - vc[j] * t.mu2[c];
            }
        }
        matmul(&mut t.wd, 1, h, h, &t.d_sw, false, w, true, false);
        for j in 0..h {
            g.gamma[j] += self.u[j] * t.wd[j];
            g.ww[j] += gamma[j] * t.wd[j] - mu1_sw - self.u[j] * mu2_sw2;
        }
        for (c, vc) in self.v.chunks_exact(h).enumerate() {
            let coef = t.mu2_sw[c];
            g.ww[..h].iter_mut().zip(vc).for_each(|(a, v)| *a -= v * coef);
        }
    }
}
