//! Column centring, done once per layer and applied while copying rows into the product buffers.
//!
//! Means are accumulated in f64 and subtracted in f64 before a value is rounded to the compute
//! type, so large offsets (activations with mean 1e3 and spread 1e-2) lose nothing to f32. Each
//! layer also gets a power-of-two scale that brings its largest centred value into [1, 2): f32
//! products can then neither overflow nor underflow, and because the scale is a power of two,
//! applying it is exact. f64 inputs keep their range: a layer at 1e300 or 1e-300 is scaled to
//! about 1 before anything is squared, and HSIC terms stay in these scaled units (CKA's ratio
//! cancels the scales; [`super::hsic::HsicTerms`] records them for minibatch sums).
//!
//! A layer is *constant* when no column varies by more than a few units in the last place of its
//! own values: the test is relative to the layer's scale, so 1e-300-scale activations are data,
//! and a column of one value whose f64 mean rounds differently is still constant. A constant
//! layer gets scale 0 (every packed value 0, so its CKA is undefined).

use super::gemm::Real;
use super::matrix::Slice;
use super::{ActivationsView, Error, Result, Side};

/// An element type activations arrive in.
trait Elem: Copy {
    /// Relative spacing of the type's values: spreads within a few of these are rounding.
    const EPS: f64;
    fn wide(self) -> f64;
}

impl Elem for f32 {
    const EPS: f64 = f32::EPSILON as f64;
    fn wide(self) -> f64 {
        self as f64
    }
}

impl Elem for f64 {
    const EPS: f64 = f64::EPSILON;
    fn wide(self) -> f64 {
        self
    }
}

/// Column spreads up to this many units of the type's epsilon (relative to the column's
/// magnitude) count as constant.
const CONSTANT_ULPS: f64 = 4.0;

/// Per-layer facts computed in one pass over the data.
#[derive(Clone, Debug)]
pub(crate) struct Centring {
    pub means: Vec<f64>,
    /// `2^exponent` (0 for a constant layer); values are packed as `x * scale - mean * scale`.
    pub scale: f64,
    /// log2 of a non-zero scale (0 for a constant layer).
    pub exponent: i32,
}

impl Centring {
    /// Reads the layer once: column means in f64, the scale, and a check that every value is
    /// finite (the first NaN/Inf is reported with its position).
    pub fn of(view: &ActivationsView<'_>, side: Side, layer: usize) -> Result<Self> {
        match view.data() {
            Slice::F32(d) => of_values(d, view.n(), view.p(), side, layer),
            Slice::F64(d) => of_values(d, view.n(), view.p(), side, layer),
        }
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
        match view.data() {
            Slice::F32(d) => self.pack_values(d, view.p(), start, end, dst, dst_stride, col_offset),
            Slice::F64(d) => self.pack_values(d, view.p(), start, end, dst, dst_stride, col_offset),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pack_values<E: Elem, T: Real>(
        &self,
        data: &[E],
        p: usize,
        start: usize,
        end: usize,
        dst: &mut [T],
        dst_stride: usize,
        col_offset: usize,
    ) {
        let s = self.scale;
        for (r, row) in (start..end).enumerate() {
            let out = &mut dst[r * dst_stride + col_offset..][..p];
            for ((o, &x), &m) in out.iter_mut().zip(&data[row * p..][..p]).zip(&self.means) {
                // Scaling before subtracting cannot overflow (values near f64::MAX get s < 1);
                // with s a power of two both products are exact, so this equals (x - m) * s.
                *o = T::from_f64(x.wide() * s - m * s);
            }
        }
    }

    /// Squared norm of each centred, scaled example, for the unbiased estimator.
    pub fn row_sq_norms(&self, view: &ActivationsView<'_>) -> Vec<f64> {
        let mut row = vec![0.0f64; view.p()];
        (0..view.n())
            .map(|r| {
                self.pack(view, r, r + 1, &mut row, view.p(), 0);
                row.iter().map(|v| v * v).sum()
            })
            .collect()
    }
}

fn of_values<E: Elem>(data: &[E], n: usize, p: usize, side: Side, layer: usize) -> Result<Centring> {
    // Each value is divided by n before summing, so f64 sums cannot overflow even for values near
    // f64::MAX; the sums are then the means.
    let inv_n = 1.0 / n.max(1) as f64;
    let mut means = vec![0.0f64; p];
    let mut mins = vec![f64::INFINITY; p];
    let mut maxs = vec![f64::NEG_INFINITY; p];
    // Branch-free so the loop vectorises; non-finite values are found afterwards.
    for row in data.chunks_exact(p.max(1)).take(n) {
        for (((s, lo), hi), &v) in means.iter_mut().zip(&mut mins).zip(&mut maxs).zip(row) {
            let v = v.wide();
            *s += v * inv_n;
            *lo = lo.min(v);
            *hi = hi.max(v);
        }
    }
    // A NaN or infinity makes its column sum non-finite; only then is the layer scanned again.
    if means.iter().any(|s| !s.is_finite()) {
        for (row, values) in data.chunks_exact(p.max(1)).take(n).enumerate() {
            if let Some((col, value)) = values.iter().map(|v| v.wide()).enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::NonFinite { side, layer, row, col, value });
            }
        }
    }
    let mut half_range = 0.0f64;
    let mut constant = true;
    for ((m, &lo), &hi) in means.iter_mut().zip(&mins).zip(&maxs).filter(|_| n > 0) {
        if lo == hi {
            // Exactly one value: centre it exactly (its f64 mean may be an ulp off).
            *m = lo;
            continue;
        }
        // Halves, so that spreads near f64::MAX do not overflow.
        let spread_half = hi * 0.5 - lo * 0.5;
        let magnitude = hi.abs().max(lo.abs());
        if spread_half > 0.5 * CONSTANT_ULPS * E::EPS * magnitude {
            constant = false;
        }
        half_range = half_range.max(hi * 0.5 - *m * 0.5).max(*m * 0.5 - lo * 0.5);
    }
    if constant || half_range <= 0.0 {
        return Ok(Centring { means, scale: 0.0, exponent: 0 });
    }
    // Largest centred value = 2 * half_range; bring it into [1, 2). Subnormal layers stop at
    // 2^1023 (their scaled values are then still far above f32's smallest normal squared).
    let exponent = (-(half_range.log2().floor() + 1.0)).clamp(-1100.0, 1023.0) as i32;
    // exp2, not powi: 2^-1024 is subnormal but exact, where powi(-1024) gives 0.
    Ok(Centring { means, scale: (exponent as f64).exp2(), exponent })
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
        assert!((c.means[0] - mean).abs() <= 1e-12 * mean, "{} vs {mean}", c.means[0]);
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
    fn constant_layer_has_zero_scale_and_zero_centred_values() {
        let data = [3.5f32; 6];
        let view = ActivationsView::new(3, 2, &data).unwrap();
        let c = Centring::of(&view, Side::A, 0).unwrap();
        assert_eq!(c.scale, 0.0);
        assert_eq!(c.row_sq_norms(&view), vec![0.0; 3]);
    }

    #[test]
    fn constant_test_is_relative_to_the_layer_scale() {
        // 1e-300-scale data varies: not constant, and scaled into [1, 2).
        let tiny = [1e-300, -2e-300, 3e-300, 0.5e-300];
        let c = Centring::of(&ActivationsView::new_f64(4, 1, &tiny).unwrap(), Side::A, 0).unwrap();
        assert!(c.scale > 0.0);
        let mut out = [0.0f64; 4];
        c.pack(&ActivationsView::new_f64(4, 1, &tiny).unwrap(), 0, 4, &mut out, 1, 0);
        let largest = out.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!((1.0..2.0).contains(&largest), "{largest}");
        // Values near f64::MAX neither overflow the mean nor the centred values.
        let huge = [1.7e308, -1.7e308, 1.0e308, -0.5e308];
        let view = ActivationsView::new_f64(4, 1, &huge).unwrap();
        let c = Centring::of(&view, Side::A, 0).unwrap();
        c.pack(&view, 0, 4, &mut out, 1, 0);
        assert!(out.iter().all(|v| v.is_finite()) && out.iter().any(|v| v.abs() >= 1.0), "{out:?}");
        // One value whose f64 mean rounds (0.1 is not a binary fraction) is constant, and so is
        // a column that only varies in its last bit; a 1e6 column varying by 1e-3 is not.
        let ulp = f64::from_bits(0.1f64.to_bits() + 1);
        for data in [[0.1; 7], [0.1, ulp, 0.1, ulp, 0.1, 0.1, ulp]] {
            let c = Centring::of(&ActivationsView::new_f64(7, 1, &data).unwrap(), Side::A, 0).unwrap();
            assert_eq!(c.scale, 0.0, "{data:?}");
        }
        let wide = [1e6, 1e6 + 1e-3, 1e6 - 1e-3];
        let c = Centring::of(&ActivationsView::new_f64(3, 1, &wide).unwrap(), Side::A, 0).unwrap();
        assert!(c.scale > 0.0);
    }
}
