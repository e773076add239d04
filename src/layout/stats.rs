//! Weight statistics shown beside the graph: count, mean, standard deviation, extremes, and a
//! histogram. Accumulated in f64 so a 22M-value layer keeps its digits.

/// Summary of a set of weights. Non-finite values are counted apart and left out of the moments.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct WeightStats {
    pub count: usize,
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    pub min: f32,
    pub max: f32,
    pub non_finite: usize,
}

/// Running sums for [`WeightStats`] over several slices (a layer's weight and bias).
#[derive(Clone, Debug, Default)]
pub struct StatsAccumulator {
    count: usize,
    sum: f64,
    sum_sq: f64,
    min: f32,
    max: f32,
    non_finite: usize,
}

impl StatsAccumulator {
    pub fn push_slice(&mut self, values: &[f32]) {
        for &v in values {
            if !v.is_finite() {
                self.non_finite += 1;
                continue;
            }
            if self.count == 0 {
                self.min = v;
                self.max = v;
            } else {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
            let x = f64::from(v);
            self.sum += x;
            self.sum_sq += x * x;
            self.count += 1;
        }
    }

    /// `None` when no finite value was pushed.
    pub fn finish(&self) -> Option<WeightStats> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        Some(WeightStats {
            count: self.count,
            mean,
            std: var.sqrt(),
            min: self.min,
            max: self.max,
            non_finite: self.non_finite,
        })
    }
}

impl WeightStats {
    pub fn of(values: &[f32]) -> Option<Self> {
        let mut acc = StatsAccumulator::default();
        acc.push_slice(values);
        acc.finish()
    }
}

/// Equal-width bins over `[min, max]`; the last bin includes `max`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Histogram {
    pub min: f32,
    pub max: f32,
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Histogram of the finite values of several slices over `[min, max]` (from their stats).
    pub fn of_slices<'a>(slices: impl IntoIterator<Item = &'a [f32]>, min: f32, max: f32, bins: usize) -> Self {
        let bins = bins.max(1);
        let mut counts = vec![0u64; bins];
        let width = f64::from(max) - f64::from(min);
        for v in slices.into_iter().flatten().copied().filter(|v| v.is_finite()) {
            let t = if width > 0.0 { (f64::from(v) - f64::from(min)) / width } else { 0.5 };
            let b = ((t * bins as f64) as usize).min(bins - 1);
            if let Some(c) = counts.get_mut(b) {
                *c += 1;
            }
        }
        Self { min, max, counts }
    }

    /// Centre of bin `i`.
    pub fn bin_center(&self, i: usize) -> f64 {
        f64::from(self.min) + (i as f64 + 0.5) * self.bin_width()
    }

    pub fn bin_width(&self) -> f64 {
        (f64::from(self.max) - f64::from(self.min)) / self.counts.len().max(1) as f64
    }
}

/// The `q`-quantile (0..=1) of |value| over several slices, estimated from at most `max_samples`
/// evenly strided values (exact when there are fewer). Used as a robust colour-scale limit: one
/// outlier weight should not wash every other edge out. `None` when there is no finite value.
pub fn abs_quantile<'a>(
    slices: impl IntoIterator<Item = &'a [f32]> + Clone,
    q: f64,
    max_samples: usize,
) -> Option<f32> {
    let total: usize = slices.clone().into_iter().map(<[f32]>::len).sum();
    let stride = total.div_ceil(max_samples.max(1)).max(1);
    let mut sample = Vec::with_capacity(total.min(max_samples.max(1)) + 1);
    let mut k = 0usize;
    for s in slices {
        // Continue the stride across slice boundaries.
        let mut i = (stride - k % stride) % stride;
        while let Some(&v) = s.get(i) {
            if v.is_finite() {
                sample.push(v.abs());
            }
            i += stride;
        }
        k += s.len();
    }
    if sample.is_empty() {
        return None;
    }
    let rank = ((sample.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    let (_, v, _) = sample.select_nth_unstable_by(rank, f32::total_cmp);
    Some(*v)
}
