//! PNA's aggregation (`models::block::pna_aggregates`) for one graph: the mean, standard
//! deviation, maximum and minimum of the messages at every node, each also times the node's
//! amplification scaler, as one `[N, 8h]` input to the moved message linear; and its backward
//! pass to the messages. Max and min send their gradient to the messages that attain them,
//! shared on ties, as the burn model's form does.

use super::plan::Plan;

/// Aggregates each block keeps for its backward pass.
pub struct PnaCache {
    /// The messages `[E, h]`.
    pub z: Vec<f32>,
    /// `[N, 8h]`: `[mean, std, max, min, s*mean, s*std, s*max, s*min]` per node.
    pub aggin: Vec<f32>,
    /// `[N, h]`: `E[z^2] - mean^2` before the clamp (the std's gradient is zero where it is < 0).
    var: Vec<f32>,
    /// `[N, h]`: how many messages attain the maximum / minimum.
    nmax: Vec<f32>,
    nmin: Vec<f32>,
}

impl PnaCache {
    pub fn new(n: usize, m: usize, h: usize) -> Self {
        Self {
            z: vec![0.0; m * h],
            aggin: vec![0.0; n * 8 * h],
            var: vec![0.0; n * h],
            nmax: vec![0.0; n * h],
            nmin: vec![0.0; n * h],
        }
    }

    /// Fills `aggin` from the messages already in `self.z`.
    pub fn forward(&mut self, plan: &Plan, h: usize) {
        let w = 8 * h;
        // Sums, sums of squares, extremes (in the mean, std, max, min slots).
        for (v, row) in self.aggin.chunks_exact_mut(w).enumerate() {
            row[..2 * h].fill(0.0);
            row[2 * h..3 * h].fill(f32::NEG_INFINITY);
            row[3 * h..4 * h].fill(f32::INFINITY);
            self.nmax[v * h..(v + 1) * h].fill(0.0);
            self.nmin[v * h..(v + 1) * h].fill(0.0);
        }
        for (zr, &v) in self.z.chunks_exact(h).zip(&plan.dst) {
            let row = &mut self.aggin[v as usize * w..][..w];
            for j in 0..h {
                let z = zr[j];
                row[j] += z;
                row[h + j] += z * z;
                row[2 * h + j] = row[2 * h + j].max(z);
                row[3 * h + j] = row[3 * h + j].min(z);
            }
        }
        for (zr, &v) in self.z.chunks_exact(h).zip(&plan.dst) {
            let row = &self.aggin[v as usize * w..][..w];
            for j in 0..h {
                if zr[j] == row[2 * h + j] {
                    self.nmax[v as usize * h + j] += 1.0;
                }
                if zr[j] == row[3 * h + j] {
                    self.nmin[v as usize * h + j] += 1.0;
                }
            }
        }
        for (v, row) in self.aggin.chunks_exact_mut(w).enumerate() {
            let (inv, s) = (plan.inv_in_degree[v], plan.amplification[v]);
            let has_in = plan.has_in[v];
            for j in 0..h {
                let mean = row[j] * inv;
                let var = row[h + j] * inv - mean * mean;
                self.var[v * h + j] = var;
                let std = if has_in { (var.max(0.0) + 1e-5).sqrt() } else { 0.0 };
                row[j] = mean;
                row[h + j] = std;
                if !has_in {
                    row[2 * h + j] = 0.0;
                    row[3 * h + j] = 0.0;
                }
            }
            for q in 0..4 {
                for j in 0..h {
                    row[(4 + q) * h + j] = s * row[q * h + j];
                }
            }
        }
    }

    /// `da2[e] = d loss / d z[e] * silu'(a2[e])` from `daggin` (`[N, 8h]`, the gradient of
    /// `aggin`) and `d2` (SiLU's derivative), with `acc +=` column sums of `da2`.
    pub fn backward(&self, plan: &Plan, h: usize, daggin: &[f32], d2: &[f32], da2: &mut [f32], acc: &mut [f32]) {
        let w = 8 * h;
        let acc = &mut acc[..h];
        for (e, ((out, zr), dr)) in
            da2.chunks_exact_mut(h).zip(self.z.chunks_exact(h)).zip(d2.chunks_exact(h)).enumerate()
        {
            let v = plan.dst[e] as usize;
            let (d, row) = (&daggin[v * w..][..w], &self.aggin[v * w..][..w]);
            let (inv, s) = (plan.inv_in_degree[v], plan.amplification[v]);
            for j in 0..h {
                let z = zr[j];
                let mut g = (d[j] + s * d[4 * h + j]) * inv;
                if self.var[v * h + j] >= 0.0 {
                    g += (d[h + j] + s * d[5 * h + j]) * (z - row[j]) * inv / row[h + j];
                }
                if z == row[2 * h + j] {
                    g += (d[2 * h + j] + s * d[6 * h + j]) / self.nmax[v * h + j];
                }
                if z == row[3 * h + j] {
                    g += (d[3 * h + j] + s * d[7 * h + j]) / self.nmin[v * h + j];
                }
                let val = g * dr[j];
                out[j] = val;
                acc[j] += val;
            }
        }
    }
}
