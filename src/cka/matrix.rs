//! The data types at the edge of the CKA engine: layer activations in, a CKA matrix out.

use super::{Error, Result, Side};

/// Activation values as they came from the file: f32, or f64 where the file holds wider numbers.
/// f64 values are never rounded to f32 before centring and scaling, so values beyond f32's range
/// (1e300) or below it (1e-300) keep their CKA.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn as_slice(&self) -> Slice<'_> {
        match self {
            Values::F32(v) => Slice::F32(v),
            Values::F64(v) => Slice::F64(v),
        }
    }
}

impl From<Vec<f32>> for Values {
    fn from(v: Vec<f32>) -> Self {
        Values::F32(v)
    }
}

impl From<Vec<f64>> for Values {
    fn from(v: Vec<f64>) -> Self {
        Values::F64(v)
    }
}

/// Borrowed [`Values`].
#[derive(Clone, Copy, Debug)]
pub enum Slice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl<'a> Slice<'a> {
    fn range(&self, r: std::ops::Range<usize>) -> Self {
        match self {
            Slice::F32(v) => Slice::F32(&v[r]),
            Slice::F64(v) => Slice::F64(&v[r]),
        }
    }

    fn ptr(&self) -> *const u8 {
        match self {
            Slice::F32(v) => v.as_ptr().cast(),
            Slice::F64(v) => v.as_ptr().cast(),
        }
    }
}

/// One layer's activations: `n` examples (rows) by `p` features (columns), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Activations {
    pub n: usize,
    pub p: usize,
    pub data: Values,
}

impl Activations {
    /// Wraps row-major data (f32 or f64); `data.len()` must be `n * p`.
    pub fn new(n: usize, p: usize, data: impl Into<Values>) -> Result<Self> {
        let data = data.into();
        check_len(n, p, data.len())?;
        Ok(Self { n, p, data })
    }

    pub fn view(&self) -> ActivationsView<'_> {
        ActivationsView { n: self.n, p: self.p, data: self.data.as_slice() }
    }
}

/// A borrowed [`Activations`]: what every estimator takes, so callers can pass slices of a larger
/// buffer (a memory-mapped file, a minibatch) without copying.
#[derive(Clone, Copy, Debug)]
pub struct ActivationsView<'a> {
    n: usize,
    p: usize,
    data: Slice<'a>,
}

impl<'a> ActivationsView<'a> {
    /// Borrows row-major f32 data; `data.len()` must be `n * p`.
    pub fn new(n: usize, p: usize, data: &'a [f32]) -> Result<Self> {
        check_len(n, p, data.len())?;
        Ok(Self { n, p, data: Slice::F32(data) })
    }

    /// Borrows row-major f64 data; `data.len()` must be `n * p`.
    pub fn new_f64(n: usize, p: usize, data: &'a [f64]) -> Result<Self> {
        check_len(n, p, data.len())?;
        Ok(Self { n, p, data: Slice::F64(data) })
    }

    /// Number of examples (rows).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of features (columns).
    pub fn p(&self) -> usize {
        self.p
    }

    /// The row-major values.
    pub fn data(&self) -> Slice<'a> {
        self.data
    }

    /// Whether the values are f64 (the engine then computes in f64 throughout).
    pub fn is_f64(&self) -> bool {
        matches!(self.data, Slice::F64(_))
    }

    /// Rows `start..end` as a view (a minibatch slice of the examples).
    pub fn rows(&self, start: usize, end: usize) -> Result<Self> {
        if start > end || end > self.n {
            return Err(Error::InvalidOption(format!("row range {start}..{end} outside 0..{}", self.n)));
        }
        Ok(Self { n: end - start, p: self.p, data: self.data.range(start * self.p..end * self.p) })
    }

    /// Same buffer and shape: CKA(A, A) can then use symmetry.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.n == other.n
            && self.p == other.p
            && self.is_f64() == other.is_f64()
            && std::ptr::eq(self.data.ptr(), other.data.ptr())
    }
}

fn check_len(n: usize, p: usize, len: usize) -> Result<()> {
    match n.checked_mul(p) {
        Some(expected) if expected == len => Ok(()),
        expected => Err(Error::BadShape { n, p, len, expected }),
    }
}

/// Checks that every layer of both sides has the same number of examples and returns it.
pub(crate) fn common_n(a: &[ActivationsView<'_>], b: &[ActivationsView<'_>]) -> Result<usize> {
    let first = a.first().or(b.first()).ok_or(Error::NoLayers)?;
    if a.is_empty() || b.is_empty() {
        return Err(Error::NoLayers);
    }
    let n = first.n;
    for (side, layers) in [(Side::A, a), (Side::B, b)] {
        for (layer, view) in layers.iter().enumerate() {
            if view.n != n {
                return Err(Error::MismatchedExamples { side, layer, n: view.n, expected: n });
            }
        }
    }
    Ok(n)
}

/// A CKA matrix: entry (i, j) compares row layer i (side A) with column layer j (side B).
///
/// An entry is *undefined* when CKA has no value for that pair: a layer that is constant over the
/// examples (zero variance, e.g. a dead ReLU layer) or, for the unbiased estimator, a layer whose
/// self-HSIC estimate is not positive. Undefined entries are `None` from [`Matrix::get`] (null in
/// JSON) rather than a NaN that could leak into later arithmetic.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    /// Row-major; NaN marks an undefined entry (never exposed as a number).
    values: Vec<f64>,
}

impl Matrix {
    pub(crate) fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> Option<f64>) -> Self {
        let mut values = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                values.push(f(i, j).filter(|v| v.is_finite()).unwrap_or(f64::NAN));
            }
        }
        Self { rows, cols, values }
    }

    /// Builds a matrix from nested rows (`None` = undefined); short rows are padded with `None`.
    pub fn from_rows(rows: &[Vec<Option<f64>>]) -> Self {
        let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
        Self::from_fn(rows.len(), cols, |i, j| rows[i].get(j).copied().flatten())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The value at (row, col); `None` if undefined or out of range.
    pub fn get(&self, row: usize, col: usize) -> Option<f64> {
        if row >= self.rows || col >= self.cols {
            return None;
        }
        let v = self.values[row * self.cols + col];
        (!v.is_nan()).then_some(v)
    }

    /// All entries as nested rows (`None` = undefined); serialises to JSON with nulls.
    pub fn to_rows(&self) -> Vec<Vec<Option<f64>>> {
        (0..self.rows).map(|i| (0..self.cols).map(|j| self.get(i, j)).collect()).collect()
    }

    /// Number of undefined entries.
    pub fn undefined_count(&self) -> usize {
        self.values.iter().filter(|v| v.is_nan()).count()
    }

    /// Smallest and largest defined values, if any.
    pub fn value_range(&self) -> Option<(f64, f64)> {
        let mut defined = self.values.iter().copied().filter(|v| !v.is_nan());
        let first = defined.next()?;
        Some(defined.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_checks_shape_and_slices_rows() {
        let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert!(matches!(ActivationsView::new(5, 3, &data), Err(Error::BadShape { expected: Some(15), .. })));
        assert!(matches!(ActivationsView::new(usize::MAX, 3, &data), Err(Error::BadShape { expected: None, .. })));
        let v = ActivationsView::new(4, 3, &data).unwrap();
        let r = v.rows(1, 3).unwrap();
        assert_eq!((r.n(), r.p()), (2, 3));
        assert!(matches!(r.data(), Slice::F32(d) if d[3..6] == [6.0, 7.0, 8.0]));
        assert!(v.rows(3, 5).is_err());
    }

    #[test]
    fn undefined_entries_are_none_not_nan() {
        let m = Matrix::from_fn(2, 2, |i, j| if i == j { Some(1.0) } else { None });
        assert_eq!(m.get(0, 0), Some(1.0));
        assert_eq!(m.get(0, 1), None);
        assert_eq!(m.get(5, 0), None);
        assert_eq!(m.undefined_count(), 2);
        assert_eq!(m.value_range(), Some((1.0, 1.0)));
        assert_eq!(serde_json::to_string(&m.to_rows()).unwrap(), "[[1.0,null],[null,1.0]]");
    }
}
