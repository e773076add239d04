//! Column centring, done once per layer and applied while copying rows into the product buffers.
//!
//! Means are accumulated in f64 and subtracted in f64 before a value is rounded to the compute
//! type, so large offsets (activations with mean 1e3 and spread 1e-2) lose nothing to f32. Each
//! layer also gets a power-of-two scale that brings its largest centred value into [1, 2): f32
//! products can then neither overflow nor underflow, and because the scale is a power of two,
//! undoing it later (in f64) is exact.

use super::gemm::Real;
use super::{ActivationsView, Error, Result, Side};

/// Per-layer facts computed in one pass over the data.
#[derive(Clone, Debug)]
pub(crate) struct Centring {
    pub means: Vec<f64>,
    /// Power of two; centred values are multiplied by it before rounding to the compute type.
    pub scale: f64,
}

impl Centring {
    /// Reads the layer once: column means in f64, the scale, and a check that every value is
    /// finite (the first NaN/Inf is reported with its position).
    pub fn of(view: &ActivationsView<'_>, side: Side, layer: usize) -> Result<Self> {
        let (n, p) = (view.n(), view.p());
        let mut sums = vec![0.0f64; p];
        let mut mins = vec![f32::INFINITY; p];
        let mut maxs = vec![f32::NEG_INFINITY; p];
        // Branch-free so the loop vectorises; non-finite values are found afterwards.
        for row in 0..n {
            for (((s, lo), hi), &v) in sums.iter_mut().zip(&mut mins).zip(&mut maxs).zip(view.row(row)) {
                *s += v as f64;
                *lo = lo.min(v);
                *hi = hi.max(v);
            }
        }
        // A NaN or infinity makes its column sum non-finite (finite f32 values summed in f64
        // cannot overflow); only then is the layer scanned again for the first one.
        if sums.iter().any(|s| !s.is_finite()) {
            for row in 0..n {
                if let Some((col, &value)) = view.row(row).iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(Error::NonFinite { side, layer, row, col, value });
                }
            }
        }
        let means: Vec<f64> = sums.iter().map(|s| s / n.max(1) as f64).collect();
        let max_abs = (0..p)
            .filter(|_| n > 0)
            .map(|c| (maxs[c] as f64 - means[c]).max(means[c] - mins[c] as f64))
            .fold(0.0f64, f64::max);
        Ok(Self { means, scale: power_of_two_scale(max_abs) })
    }

    /// [`Centring::of`] every layer of one side, the layers spread over the available cores.
    /// The first failing layer's error is returned, as a sequential pass would.
    pub fn of_layers(layers: &[ActivationsView<'_>], side: Side) -> Result<Vec<Self>> {
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(layers.len()).max(1);
        let per_thread = layers.len().div_ceil(threads).max(1);
        let parts: Vec<Vec<Result<Self>>> = std::thread::scope(|s| {
            let handles: Vec<_> = layers
                .chunks(per_thread)
                .enumerate()
                .map(|(t, part)| {
                    s.spawn(move || {
                        part.iter().enumerate().map(|(k, v)| Self::of(v, side, t * per_thread + k)).collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        });
        parts.into_iter().flatten().collect()
    }

    /// Writes rows `start..end` of the layer, centred and scaled, into `dst` at column
    /// `col_offset` of a row-major buffer with row stride `dst_stride`.
    pub fn pack<T: Real>(
        &self,
        view: &ActivationsView<'_>,
        start: usize,
        end: usize,
        dst: &mut [T],
        dst_stride: usize,
        col_offset: usize,
    ) {
        let p = view.p();
        for (r, row) in (start..end).enumerate() {
            let out = &mut dst[r * dst_stride + col_offset..][..p];
            for ((o, &x), &m) in out.iter_mut().zip(view.row(row)).zip(&self.means) {
                *o = T::from_f64((x as f64 - m) * self.scale);
            }
        }
    }

    /// Squared norm of each centred example (unscaled units), for the unbiased estimator.
    pub fn row_sq_norms(&self, view: &ActivationsView<'_>) -> Vec<f64> {
        (0..view.n())
            .map(|row| view.row(row).iter().zip(&self.means).map(|(&x, m)| (x as f64 - m).powi(2)).sum())
            .collect()
    }
}

/// 2^-floor(log2(max_abs)), or 1 for a constant layer.
fn power_of_two_scale(max_abs: f64) -> f64 {
    if max_abs > 0.0 && max_abs.is_finite() { (-max_abs.log2().floor()).exp2() } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_in_f64_and_scales_by_a_power_of_two() {
        // Mean 1000, spread 1e-2: an f32 subtraction after summing in f32 would lose the spread.
        let data = [1000.01f32, 999.99, 1000.02, 999.98];
        let view = ActivationsView::new(4, 1, &data).unwrap();
        let c = Centring::of(&view, Side::A, 0).unwrap();
        let mean = data.iter().map(|&v| v as f64).sum::<f64>() / 4.0;
        assert_eq!(c.means, vec![mean]);
        assert_eq!(c.scale.log2().fract(), 0.0);
        let mut out = vec![0.0f32; 4];
        c.pack(&view, 0, 4, &mut out, 1, 0);
        let largest = out.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((1.0..2.0).contains(&largest), "{largest}");
        assert!(((out[0] as f64) / c.scale - (data[0] as f64 - mean)).abs() < 1e-9);
    }

    #[test]
    fn reports_the_first_non_finite_value() {
        let data = [1.0, 2.0, 3.0, f32::NAN, 5.0, f32::INFINITY];
        let view = ActivationsView::new(3, 2, &data).unwrap();
        let err = Centring::of(&view, Side::B, 4).unwrap_err();
        assert!(matches!(err, Error::NonFinite { side: Side::B, layer: 4, row: 1, col: 1, .. }), "{err}");
    }

    #[test]
    fn constant_layer_has_unit_scale_and_zero_centred_values() {
        let data = [3.5f32; 6];
        let view = ActivationsView::new(3, 2, &data).unwrap();
        let c = Centring::of(&view, Side::A, 0).unwrap();
        assert_eq!(c.scale, 1.0);
        assert_eq!(c.row_sq_norms(&view), vec![0.0; 3]);
    }
}
