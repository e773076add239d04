//! One GMN layer's node features -> one value per node, for colouring the parameter graph: a
//! single channel, the per-node L2 norm, or the score on the first principal component of that
//! layer's features (computed over the nodes). Then the value range and the normalisation to the
//! colour map's `[-1, 1]` (signed values, diverging map) or `[0, 1]` (norms, sequential half);
//! [`ColourRange::robust`] spans the central 95% so a few outlying nodes cannot wash out the rest.
//!
//! The PCA is exact for the widths GMNs use: the `h x h` covariance (accumulated in f64) is
//! diagonalised by cyclic Jacobi rotations; very wide layers (more than [`JACOBI_MAX_CHANNELS`]
//! channels) use power iteration instead. An eigenvector's sign is arbitrary, so it is fixed:
//! the loading with the largest magnitude is made positive (the first one on ties). Constant
//! features have no principal direction: loadings and scores are then all zero, never NaN.

/// Node features of one layer: `nodes` rows of `channels` values, row-major (node `i` is
/// `values[i * channels..(i + 1) * channels]`).
#[derive(Clone, Copy, Debug)]
pub struct NodeFeatures<'a> {
    values: &'a [f32],
    nodes: usize,
    channels: usize,
}

impl<'a> NodeFeatures<'a> {
    pub fn new(values: &'a [f32], nodes: usize, channels: usize) -> Result<Self, String> {
        if channels == 0 {
            return Err("node features need at least one channel".into());
        }
        match nodes.checked_mul(channels) {
            Some(len) if len == values.len() => Ok(Self { values, nodes, channels }),
            _ => Err(format!("{} values are not {nodes} nodes x {channels} channels", values.len())),
        }
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    fn rows(&self) -> std::slice::ChunksExact<'a, f32> {
        self.values.chunks_exact(self.channels)
    }
}

/// What a node's colour shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Colouring {
    /// The value of one feature channel.
    Channel(usize),
    /// The L2 norm of the node's feature vector.
    Norm,
    /// The score on the layer's first principal component.
    Pca,
}

impl Colouring {
    /// True when values can be negative (a diverging colour map centred on zero).
    pub fn is_signed(self) -> bool {
        !matches!(self, Colouring::Norm)
    }
}

/// Channel `c` of every node.
pub fn channel(features: NodeFeatures<'_>, c: usize) -> Result<Vec<f32>, String> {
    if c >= features.channels {
        return Err(format!("channel {c} does not exist (the layer has {} channels)", features.channels));
    }
    Ok(features.rows().map(|row| row[c]).collect())
}

/// The L2 norm of every node's feature vector (accumulated in f64).
pub fn l2_norms(features: NodeFeatures<'_>) -> Vec<f32> {
    features.rows().map(|row| row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt() as f32).collect()
}

/// The first principal component of a layer's node features.
#[derive(Clone, Debug, PartialEq)]
pub struct PrincipalComponent {
    /// Unit direction in feature space (`channels` values), sign fixed as the module says; all
    /// zero for constant features.
    pub loadings: Vec<f32>,
    /// Every node's centred features projected on `loadings`.
    pub scores: Vec<f32>,
    /// Variance along the component (sample variance, `n - 1` denominator).
    pub variance: f64,
    /// Share of the total variance it explains, in `[0, 1]` (0 for constant features).
    pub explained: f64,
}

/// Layers wider than this use power iteration instead of Jacobi rotations (O(h^3) per sweep).
pub const JACOBI_MAX_CHANNELS: usize = 256;

/// PCA over the nodes: centre every channel, take the top eigenvector of the covariance.
pub fn first_principal_component(features: NodeFeatures<'_>) -> PrincipalComponent {
    let method = if features.channels <= JACOBI_MAX_CHANNELS { Method::Jacobi } else { Method::Power };
    principal_component_with(features, method)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    Jacobi,
    Power,
}

fn principal_component_with(features: NodeFeatures<'_>, method: Method) -> PrincipalComponent {
    let (n, h) = (features.nodes, features.channels);
    let mut mean = vec![0.0f64; h];
    for row in features.rows() {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    // Upper triangle of the scatter matrix, then mirrored.
    let mut cov = vec![0.0f64; h * h];
    let mut centred = vec![0.0f64; h];
    let mut largest = 0.0f64;
    for row in features.rows() {
        for ((c, &v), m) in centred.iter_mut().zip(row).zip(&mean) {
            *c = f64::from(v) - m;
            largest = largest.max(f64::from(v).abs());
        }
        for i in 0..h {
            let ci = centred[i];
            for j in i..h {
                cov[i * h + j] += ci * centred[j];
            }
        }
    }
    let denominator = n.saturating_sub(1).max(1) as f64;
    for i in 0..h {
        for j in i..h {
            let v = cov[i * h + j] / denominator;
            cov[i * h + j] = v;
            cov[j * h + i] = v;
        }
    }
    let trace: f64 = (0..h).map(|i| cov[i * h + i]).sum();
    // Centring identical values in floating point leaves residues of order eps * |x|; anything
    // that small is a constant layer, not a direction.
    let noise = (1e-10 * largest).powi(2) * h as f64;
    let flat = || PrincipalComponent { loadings: vec![0.0; h], scores: vec![0.0; n], variance: 0.0, explained: 0.0 };
    if n < 2 || !trace.is_finite() || trace <= noise {
        return flat();
    }
    let (variance, mut direction) = match method {
        Method::Jacobi => jacobi_top_eigenpair(cov, h),
        Method::Power => power_top_eigenpair(&cov, h),
    };
    if !variance.is_finite() || variance <= noise {
        return flat();
    }
    fix_sign(&mut direction);
    let scores = features
        .rows()
        .map(|row| row.iter().zip(&mean).zip(&direction).map(|((&v, m), d)| (f64::from(v) - m) * d).sum::<f64>() as f32)
        .collect();
    PrincipalComponent {
        loadings: direction.iter().map(|&d| d as f32).collect(),
        scores,
        variance,
        explained: (variance / trace).clamp(0.0, 1.0),
    }
}

/// Makes the entry with the largest magnitude positive (the first one on ties).
fn fix_sign(v: &mut [f64]) {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if x.abs() > v[best].abs() {
            best = i;
        }
    }
    if v.get(best).is_some_and(|&x| x < 0.0) {
        v.iter_mut().for_each(|x| *x = -*x);
    }
}

/// Largest eigenvalue and its unit eigenvector of the symmetric `h x h` matrix `a` (row-major),
/// by cyclic Jacobi rotations until the off-diagonal mass is negligible.
fn jacobi_top_eigenpair(mut a: Vec<f64>, h: usize) -> (f64, Vec<f64>) {
    let mut v = vec![0.0f64; h * h];
    (0..h).for_each(|i| v[i * h + i] = 1.0);
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..60 {
        let off: f64 = (0..h).map(|i| (0..h).filter(|&j| j != i).map(|j| a[i * h + j].powi(2)).sum::<f64>()).sum();
        // Relative off-diagonal mass 1e-22 (norm 1e-11): far below f32 output precision, and
        // reachable in double precision for any width (a tighter bound may never be met).
        if off <= 1e-22 * total {
            break;
        }
        for p in 0..h {
            for q in p + 1..h {
                let apq = a[p * h + q];
                if apq == 0.0 {
                    continue;
                }
                // Rotation angle that zeroes a[p][q]: t = tan(phi), the smaller root.
                let theta = (a[q * h + q] - a[p * h + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- J^T A J: rows p, q then columns p, q.
                for k in 0..h {
                    let (akp, akq) = (a[k * h + p], a[k * h + q]);
                    a[k * h + p] = c * akp - s * akq;
                    a[k * h + q] = s * akp + c * akq;
                }
                for k in 0..h {
                    let (apk, aqk) = (a[p * h + k], a[q * h + k]);
                    a[p * h + k] = c * apk - s * aqk;
                    a[q * h + k] = s * apk + c * aqk;
                }
                for k in 0..h {
                    let (vkp, vkq) = (v[k * h + p], v[k * h + q]);
                    v[k * h + p] = c * vkp - s * vkq;
                    v[k * h + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let top = (0..h).fold(0, |best, i| if a[i * h + i] > a[best * h + best] { i } else { best });
    (a[top * h + top], (0..h).map(|k| v[k * h + top]).collect())
}

/// Largest eigenvalue and eigenvector of the symmetric positive semi-definite `cov` by power
/// iteration, started from the column with the largest diagonal entry (never orthogonal to the
/// top eigenvector of a non-zero PSD matrix, unlike a fixed start vector).
fn power_top_eigenpair(cov: &[f64], h: usize) -> (f64, Vec<f64>) {
    let start = (0..h).fold(0, |best, i| if cov[i * h + i] > cov[best * h + best] { i } else { best });
    let mut v: Vec<f64> = (0..h).map(|k| cov[k * h + start]).collect();
    normalise_vec(&mut v);
    let mut next = vec![0.0f64; h];
    for _ in 0..20_000 {
        for (i, out) in next.iter_mut().enumerate() {
            *out = cov[i * h..(i + 1) * h].iter().zip(&v).map(|(a, b)| a * b).sum();
        }
        normalise_vec(&mut next);
        let change: f64 = next.iter().zip(&v).map(|(a, b)| (a - b).powi(2)).sum();
        std::mem::swap(&mut v, &mut next);
        if change < 1e-26 {
            break;
        }
    }
    let lambda = (0..h).map(|i| v[i] * cov[i * h..(i + 1) * h].iter().zip(&v).map(|(a, b)| a * b).sum::<f64>()).sum();
    (lambda, v)
}

fn normalise_vec(v: &mut [f64]) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The per-node values of `colouring` (for [`Colouring::Pca`], the component scores).
pub fn node_values(features: NodeFeatures<'_>, colouring: Colouring) -> Result<Vec<f32>, String> {
    match colouring {
        Colouring::Channel(c) => channel(features, c),
        Colouring::Norm => Ok(l2_norms(features)),
        Colouring::Pca => Ok(first_principal_component(features).scores),
    }
}

/// The share of nodes inside the colour range of [`ColourRange::robust`]: the few nodes beyond
/// it (typically inputs, outputs and bias nodes, whose features stand apart) saturate instead of
/// squeezing every other node into the middle of the map.
pub const ROBUST_QUANTILE: f64 = 0.95;

/// The value range a colour bar spans.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColourRange {
    pub lo: f32,
    pub hi: f32,
    /// Signed: `[-m, m]`, zero at the centre of a diverging map. Unsigned: `[lo, hi]`, mapped to
    /// `[0, 1]`.
    pub signed: bool,
    /// The smallest and largest finite value (the range may clip them).
    pub min: f32,
    pub max: f32,
}

impl ColourRange {
    /// The full range of the finite entries of `values` (`[0, 0]` when there are none): signed,
    /// `m` is the largest |value|.
    pub fn of(values: &[f32], signed: bool) -> Self {
        Self::quantile_range(values, signed, 1.0)
    }

    /// The range holding the central [`ROBUST_QUANTILE`] `q` of the values: signed, `m` is the
    /// `q` quantile of |value|; unsigned, the quantiles `(1 - q) / 2` and `(1 + q) / 2` (linear
    /// interpolation between order statistics, NumPy's default).
    pub fn robust(values: &[f32], signed: bool) -> Self {
        Self::quantile_range(values, signed, ROBUST_QUANTILE)
    }

    fn quantile_range(values: &[f32], signed: bool, q: f64) -> Self {
        let mut finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let (min, max) = finite.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        if finite.is_empty() {
            return Self { lo: 0.0, hi: 0.0, signed, min: 0.0, max: 0.0 };
        }
        if signed {
            finite.iter_mut().for_each(|v| *v = v.abs());
            finite.sort_unstable_by(f32::total_cmp);
            let m = quantile(&finite, q);
            Self { lo: -m, hi: m, signed, min, max }
        } else {
            finite.sort_unstable_by(f32::total_cmp);
            let tail = (1.0 - q) / 2.0;
            Self { lo: quantile(&finite, tail), hi: quantile(&finite, 1.0 - tail), signed, min, max }
        }
    }

    /// True when some values lie outside `[lo, hi]` (the legend says so).
    pub fn clips(&self) -> bool {
        self.min < self.lo || self.max > self.hi
    }

    /// `v` on the colour map's scale: `[-1, 1]` when signed, `[0, 1]` otherwise. A zero-width
    /// range maps everything to the centre (signed) or the low end; non-finite values stay NaN
    /// (the caller draws them as "no value").
    pub fn normalise(&self, v: f32) -> f32 {
        if !v.is_finite() {
            return f32::NAN;
        }
        let width = self.hi - self.lo;
        if self.signed {
            if self.hi > 0.0 { (v / self.hi).clamp(-1.0, 1.0) } else { 0.0 }
        } else if width > 0.0 {
            ((v - self.lo) / width).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Quantile `q` of sorted, non-empty `sorted` with linear interpolation.
fn quantile(sorted: &[f32], q: f64) -> f32 {
    let last = sorted.len().saturating_sub(1);
    let at = q.clamp(0.0, 1.0) * last as f64;
    let (i, frac) = (at.floor() as usize, at - at.floor());
    let (a, b) = (sorted.get(i).copied().unwrap_or(0.0), sorted.get((i + 1).min(last)).copied().unwrap_or(0.0));
    (f64::from(a) + frac * (f64::from(b) - f64::from(a))) as f32
}

/// Values and their range, normalised for a colour map in one step.
pub fn normalise_all(values: &[f32], range: ColourRange) -> Vec<f32> {
    values.iter().map(|&v| range.normalise(v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made 6 x 3 matrix; references below from NumPy (float64):
    /// `Xc = X - X.mean(0); C = Xc.T @ Xc / 5; w, V = np.linalg.eigh(C); v = V[:, -1]` with the
    /// sign flipped so the largest |entry| is positive, `scores = Xc @ v`, `w[-1] / w.sum()`.
    const X: [f32; 18] =
        [1.0, 2.0, -0.5, 0.5, -1.0, 2.0, 3.0, 0.0, 1.0, -2.0, 1.5, 0.0, 0.0, -0.5, -1.5, 1.5, 2.5, 0.5];
    const LOADINGS: [f64; 3] = [0.8630616745, -0.2897561673, 0.4137220196];
    const SCORES: [f64; 6] = [-0.3847994989, 1.0872432145, 2.541419214, -2.6222454291, -0.9371927749, 0.3155752743];
    const TOP_EIGENVALUE: f64 = 3.128613845;
    const EXPLAINED: f64 = 0.4952950678071538;
    const NORMS: [f64; 6] = [2.2912878475, 2.2912878475, 3.1622776602, 2.5, 1.5811388301, 2.9580398915];

    fn features(values: &[f32], channels: usize) -> NodeFeatures<'_> {
        NodeFeatures::new(values, values.len() / channels, channels).unwrap()
    }

    fn close(got: &[f32], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < tol, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn pca_matches_numpy_on_a_hand_made_matrix() {
        let pc = first_principal_component(features(&X, 3));
        close(&pc.loadings, &LOADINGS, 1e-6);
        close(&pc.scores, &SCORES, 1e-5);
        assert!((pc.variance - TOP_EIGENVALUE).abs() < 1e-8);
        assert!((pc.explained - EXPLAINED).abs() < 1e-9);
        let power = principal_component_with(features(&X, 3), Method::Power);
        close(&power.loadings, &LOADINGS, 1e-6);
        assert!((power.variance - TOP_EIGENVALUE).abs() < 1e-8);
    }

    #[test]
    fn pca_sign_is_fixed_by_the_largest_loading() {
        // Negating the data keeps the covariance, so the same direction must come back (an
        // unfixed sign would flip freely); the scores flip with the data.
        let negated: Vec<f32> = X.iter().map(|v| -v).collect();
        let a = first_principal_component(features(&X, 3));
        let b = first_principal_component(features(&negated, 3));
        close(&b.loadings, &a.loadings.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), 1e-9);
        close(&b.scores, &a.scores.iter().map(|&v| -f64::from(v)).collect::<Vec<_>>(), 1e-6);
        // A direction whose largest entry is negative gets flipped.
        let mut v = vec![0.3, -0.9, 0.1];
        fix_sign(&mut v);
        assert_eq!(v, [-0.3, 0.9, -0.1]);
    }

    #[test]
    fn jacobi_and_power_iteration_agree_on_a_random_wide_layer() {
        let mut rng = crate::rng::SplitMix64::new(7);
        let (n, h) = (60, 12);
        // Correlated channels: one strong shared direction plus noise.
        let mut values = Vec::with_capacity(n * h);
        for _ in 0..n {
            let z = rng.uniform(-2.0, 2.0);
            for c in 0..h {
                values.push(z * (c as f32 + 1.0) / h as f32 + 0.1 * rng.uniform(-1.0, 1.0));
            }
        }
        let f = features(&values, h);
        let j = principal_component_with(f, Method::Jacobi);
        let p = principal_component_with(f, Method::Power);
        close(&p.loadings, &j.loadings.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), 1e-5);
        close(&p.scores, &j.scores.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), 1e-4);
        assert!((p.variance - j.variance).abs() < 1e-9 * j.variance.max(1.0));
        let norm: f32 = j.loadings.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-6, "unit loadings");
        assert!(j.explained > 0.9, "one dominant direction: {}", j.explained);
    }

    #[test]
    fn constant_features_give_zeros_not_nan() {
        let values = [0.1f32, -3.0, 7.5].repeat(9);
        let pc = first_principal_component(features(&values, 3));
        assert_eq!(pc.loadings, [0.0; 3]);
        assert_eq!(pc.scores, [0.0; 9]);
        assert_eq!((pc.variance, pc.explained), (0.0, 0.0));
        // One node: no variance either.
        let one = first_principal_component(features(&[1.0, 2.0], 2));
        assert_eq!(one.scores, [0.0]);
        // A range of zeros normalises to the centre, without dividing by zero.
        let range = ColourRange::of(&pc.scores, true);
        assert_eq!(normalise_all(&pc.scores, range), [0.0; 9]);
        let flat = ColourRange::of(&[2.0, 2.0], false);
        assert_eq!(normalise_all(&[2.0, 2.0], flat), [0.0, 0.0]);
    }

    #[test]
    fn channels_and_norms_read_the_right_entries() {
        let f = features(&X, 3);
        assert_eq!(channel(f, 1).unwrap(), [2.0, -1.0, 0.0, 1.5, -0.5, 2.5]);
        assert!(channel(f, 3).is_err());
        close(&l2_norms(f), &NORMS, 1e-6);
        assert_eq!(node_values(f, Colouring::Norm).unwrap(), l2_norms(f));
        assert!(NodeFeatures::new(&X, 5, 3).is_err(), "length must be nodes x channels");
        assert!(NodeFeatures::new(&X, usize::MAX, 3).is_err(), "overflowing sizes are refused");
        assert!(NodeFeatures::new(&[], 0, 0).is_err());
    }

    #[test]
    fn robust_ranges_match_numpy_quantiles_and_clip_outliers() {
        // NumPy: np.quantile(np.abs(v), 0.95) = 7.3, np.quantile(v, [0.025, 0.975]) = [-3.4375, 8.425].
        let v = [-0.5f32, 2.0, 1.0, -4.0, 0.25, 3.0, -1.5, 0.0, 10.0, -0.75, f32::NAN];
        let signed = ColourRange::robust(&v, true);
        assert!((signed.hi - 7.3).abs() < 1e-5 && signed.lo == -signed.hi, "{signed:?}");
        assert_eq!((signed.min, signed.max), (-4.0, 10.0));
        assert!(signed.clips());
        assert_eq!(signed.normalise(10.0), 1.0, "outliers saturate");
        let unsigned = ColourRange::robust(&v, false);
        assert!((unsigned.lo + 3.4375).abs() < 1e-5 && (unsigned.hi - 8.425).abs() < 1e-5, "{unsigned:?}");
        assert_eq!(ColourRange::robust(&[], true), ColourRange::of(&[], true));
        // One value: the quantiles are that value.
        let one = ColourRange::robust(&[3.0], false);
        assert_eq!((one.lo, one.hi), (3.0, 3.0));
    }

    #[test]
    fn ranges_and_normalisation() {
        let signed = ColourRange::of(&[-0.5, 2.0, f32::NAN, 1.0], true);
        assert_eq!((signed.lo, signed.hi), (-2.0, 2.0));
        assert_eq!(normalise_all(&[-0.5, 2.0, -2.0, 0.0], signed), [-0.25, 1.0, -1.0, 0.0]);
        assert!(signed.normalise(f32::NAN).is_nan());
        let unsigned = ColourRange::of(&[1.0, 3.0, f32::INFINITY, 2.0], false);
        assert_eq!((unsigned.lo, unsigned.hi), (1.0, 3.0));
        assert_eq!(normalise_all(&[1.0, 3.0, 2.0, 5.0], unsigned), [0.0, 1.0, 0.5, 1.0]);
        assert_eq!(
            ColourRange::of(&[f32::NAN], false),
            ColourRange { lo: 0.0, hi: 0.0, signed: false, min: 0.0, max: 0.0 }
        );
        assert!(!signed.clips() && !unsigned.clips());
        assert!(Colouring::Pca.is_signed() && Colouring::Channel(0).is_signed() && !Colouring::Norm.is_signed());
    }
}
