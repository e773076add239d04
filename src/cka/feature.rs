//! Feature-space inner products of linear kernels, `<K_i, L_j> = ||Xc_i^T Yc_j||_F^2`, for every
//! layer pair of two lists and for each layer with itself, with bounded memory.
//!
//! Layers are concatenated column-wise into groups (up to a width that keeps a group pair's
//! product block inside the memory budget), so one large GEMM replaces many small ones: for two
//! 10-layer lists of width 512 the whole 5120 x 5120 cross matrix is a single product. Examples are
//! streamed in row chunks (`X^T Y = sum over chunks of X_c^T Y_c`), so memory never depends on n
//! beyond the chunk.
//!
//! Each chunk of a group is centred and packed once and feeds every product of the pass: the
//! cross product and, on the first pass over a group, its layers' self products `Xc_i^T Xc_i`.
//! Self products are symmetric, so only their upper triangles are computed ([`at_a_upper`]: half
//! a GEMM's work), and so is the diagonal group of a list compared with itself.

use std::ops::Range;

use super::ActivationsView;
use super::centre::Centring;
use super::gemm::{Backend, Cols, Real, at_a_upper, at_b};
use super::scratch::Scratch;

/// Smallest row chunk worth a GEMM call.
const MIN_CHUNK_ROWS: usize = 64;
/// Below this many packed values per chunk, packing stays on the calling thread.
const PARALLEL_PACK_MIN: usize = 1 << 18;

/// A layer ready for products: its data and its centring.
#[derive(Clone, Copy)]
pub(crate) struct Layer<'a> {
    pub view: ActivationsView<'a>,
    pub centring: &'a Centring,
}

/// `<K_i, L_j>` for every pair (row-major, `a.len() x b.len()`) and `<K_i, K_i>`, `<L_j, L_j>`
/// for each layer, in the layers' scaled units (each layer's centred data times its
/// [`Centring::scale`], which CKA's ratio cancels).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Inner {
    pub cross: Vec<f64>,
    pub self_a: Vec<f64>,
    pub self_b: Vec<f64>,
}

/// All inner products between the layers of `a` and `b`; `b = None` means `b` is `a` (each pair
/// is then computed once and mirrored).
pub(crate) fn feature_inner<T: Real>(
    a: &[Layer<'_>],
    b: Option<&[Layer<'_>]>,
    n: usize,
    memory_budget: usize,
    backend: Backend,
) -> Inner {
    let ctx = Pass { n, memory_budget, backend };
    // Half the budget for a group pair's product block, the rest for the row chunks.
    let max_group_width = ((memory_budget / 2 / size_of::<T>()) as f64).sqrt() as usize;
    match b {
        None => symmetric::<T>(&ctx, a, max_group_width),
        Some(b) => general::<T>(&ctx, a, b, max_group_width),
    }
}

/// A against B: one pass per group pair; self products ride along with each group's first pass.
fn general<T: Real>(ctx: &Pass, a: &[Layer<'_>], b: &[Layer<'_>], max_group_width: usize) -> Inner {
    let (groups_a, groups_b) = (groups(a, max_group_width), groups(b, max_group_width));
    let mut inner =
        Inner { cross: vec![0.0; a.len() * b.len()], self_a: vec![0.0; a.len()], self_b: vec![0.0; b.len()] };
    let elem = size_of::<T>();
    for (ga, group_a) in groups_a.iter().enumerate() {
        for (gb, group_b) in groups_b.iter().enumerate() {
            let (wa, wb) = (group_a.width, group_b.width);
            let mut ops = vec![Op { product: Product::Cross, offset: 0, ld: wa }];
            let mut len = wa * wb;
            // Self products need one p x p block per layer; they share the pass only while that
            // leaves at least half of the remaining budget to the row chunks.
            let (self_a, self_b) = (gb == 0, ga == 0);
            let self_len = if self_a { group_a.self_len() } else { 0 } + if self_b { group_b.self_len() } else { 0 };
            let fuse = self_len.saturating_mul(elem) <= ctx.memory_budget.saturating_sub(len * elem) / 2;
            let (mut ops_a, mut ops_b) = (Vec::new(), Vec::new());
            if fuse && self_a {
                ops_a = self_ops(group_a, Source::A, &mut len);
                ops.extend(ops_a.iter().cloned());
            }
            if fuse && self_b {
                ops_b = self_ops(group_b, Source::B, &mut len);
                ops.extend(ops_b.iter().cloned());
            }
            let out = ctx.run::<T>(group_a, Some(group_b), &ops, len);
            for (i, ra) in group_a.columns() {
                for (j, rb) in group_b.columns() {
                    let sq = block_sum_of_squares(&out, 0, wa, &ra, &rb);
                    inner.cross[i * b.len() + j] = sq;
                }
            }
            reduce_self(&out, group_a, &ops_a, &mut inner.self_a);
            reduce_self(&out, group_b, &ops_b, &mut inner.self_b);
            if !fuse && self_a {
                self_pass::<T>(ctx, group_a, &mut inner.self_a);
            }
            if !fuse && self_b {
                self_pass::<T>(ctx, group_b, &mut inner.self_b);
            }
        }
    }
    inner
}

/// A against itself: the upper triangle of group pairs; a diagonal group is one symmetric product.
fn symmetric<T: Real>(ctx: &Pass, a: &[Layer<'_>], max_group_width: usize) -> Inner {
    let groups = groups(a, max_group_width);
    let la = a.len();
    let mut cross = vec![0.0; la * la];
    for (ga, group_a) in groups.iter().enumerate() {
        for group_b in &groups[ga..] {
            let diagonal = group_b.first == group_a.first;
            let wa = group_a.width;
            let out = if diagonal {
                let ops = [Op { product: Product::Upper(Source::A, 0..wa), offset: 0, ld: wa }];
                ctx.run::<T>(group_a, None, &ops, wa * wa)
            } else {
                let ops = [Op { product: Product::Cross, offset: 0, ld: wa }];
                ctx.run::<T>(group_a, Some(group_b), &ops, wa * group_b.width)
            };
            for (i, ra) in group_a.columns() {
                for (j, rb) in group_b.columns() {
                    let sq = match diagonal {
                        true if j < i => continue,
                        true if j == i => upper_sum_of_squares(&out, ra.start + ra.start * wa, wa, ra.len()),
                        _ => block_sum_of_squares(&out, 0, wa, &ra, &rb),
                    };
                    cross[i * la + j] = sq;
                }
            }
        }
    }
    for i in 0..la {
        for j in 0..i {
            cross[i * la + j] = cross[j * la + i];
        }
    }
    let diag: Vec<f64> = (0..la).map(|i| cross[i * la + i]).collect();
    Inner { cross, self_a: diag.clone(), self_b: diag }
}

/// The self products of a group on their own pass (when they did not fit beside a cross product).
fn self_pass<T: Real>(ctx: &Pass, group: &Group<'_, '_>, out_self: &mut [f64]) {
    let mut len = 0;
    let ops = self_ops(group, Source::A, &mut len);
    let out = ctx.run::<T>(group, None, &ops, len);
    reduce_self(&out, group, &ops, out_self);
}

/// One upper-triangle product per layer of `group`, laid out from `*len` on (which is advanced).
fn self_ops(group: &Group<'_, '_>, source: Source, len: &mut usize) -> Vec<Op> {
    group
        .columns()
        .map(|(_, cols)| {
            let p = cols.len();
            let op = Op { product: Product::Upper(source, cols), offset: *len, ld: p };
            *len += p * p;
            op
        })
        .collect()
}

/// `<K_i, K_i>` of each layer of `group` from its [`self_ops`] products (none: nothing to do).
fn reduce_self<T: Real>(out: &[T], group: &Group<'_, '_>, ops: &[Op], out_self: &mut [f64]) {
    for (op, (i, cols)) in ops.iter().zip(group.columns()) {
        let sq = upper_sum_of_squares(out, op.offset, op.ld, cols.len());
        out_self[i] = sq;
    }
}

/// Consecutive layers packed side by side into one buffer.
struct Group<'l, 'a> {
    layers: &'l [Layer<'a>],
    /// Index of `layers[0]` in its list.
    first: usize,
    width: usize,
}

impl Group<'_, '_> {
    /// Each layer's index in its list and its columns in the group buffer.
    fn columns(&self) -> impl Iterator<Item = (usize, Range<usize>)> + '_ {
        self.layers.iter().enumerate().scan(0, move |offset, (k, layer)| {
            let start = *offset;
            *offset += layer.view.p();
            Some((self.first + k, start..*offset))
        })
    }

    /// Elements of the layers' self products.
    fn self_len(&self) -> usize {
        self.layers.iter().map(|l| l.view.p() * l.view.p()).sum()
    }

    /// Rows `start..end` of every layer, centred and scaled, side by side into `buf` (row stride
    /// `width`). Large chunks are split by rows over the available cores.
    fn pack<T: Real>(&self, start: usize, end: usize, buf: &mut [T]) {
        let (rows, w) = (end - start, self.width);
        if rows == 0 || w == 0 {
            return;
        }
        let threads = if rows * w < PARALLEL_PACK_MIN {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |t| t.get()).min(rows)
        };
        let per_thread = rows.div_ceil(threads);
        let pack_rows = |r0: usize, part: &mut [T]| {
            let r1 = (r0 + per_thread).min(end);
            for (i, cols) in self.columns() {
                let layer = &self.layers[i - self.first];
                layer.centring.pack(&layer.view, r0, r1, part, w, cols.start);
            }
        };
        std::thread::scope(|s| {
            let mut parts = buf[..rows * w].chunks_mut(per_thread * w).enumerate();
            let own = parts.next();
            for (t, part) in parts {
                s.spawn(move || pack_rows(start + t * per_thread, part));
            }
            if let Some((_, part)) = own {
                pack_rows(start, part);
            }
        });
    }
}

/// Consecutive layers whose widths add up to at most `max_width` (at least one layer each).
fn groups<'l, 'a>(layers: &'l [Layer<'a>], max_width: usize) -> Vec<Group<'l, 'a>> {
    let mut groups = Vec::new();
    let (mut start, mut width) = (0, 0);
    for (i, layer) in layers.iter().enumerate() {
        let p = layer.view.p();
        if i > start && width + p > max_width {
            groups.push(Group { layers: &layers[start..i], first: start, width });
            (start, width) = (i, 0);
        }
        width += p;
    }
    if start < layers.len() {
        groups.push(Group { layers: &layers[start..], first: start, width });
    }
    groups
}

/// Which packed buffer a product reads.
#[derive(Clone, Copy, Debug)]
enum Source {
    A,
    B,
}

#[derive(Clone, Debug)]
enum Product {
    /// `A^T B` of the two whole group buffers.
    Cross,
    /// The upper triangle of `X^T X` for these columns of one buffer.
    Upper(Source, Range<usize>),
}

/// A product and where it accumulates: column-major at `offset`, leading dimension `ld`.
#[derive(Clone, Debug)]
struct Op {
    product: Product,
    offset: usize,
    ld: usize,
}

/// What every pass shares.
struct Pass {
    n: usize,
    memory_budget: usize,
    backend: Backend,
}

impl Pass {
    /// Streams the examples through the products `ops` (output `len` elements): each row chunk
    /// of group `a` (and `b`) is packed once and every product accumulates over the chunks.
    fn run<T: Real>(&self, a: &Group<'_, '_>, b: Option<&Group<'_, '_>>, ops: &[Op], len: usize) -> Scratch<T> {
        let elem = size_of::<T>();
        let (wa, wb) = (a.width, b.map_or(0, |g| g.width));
        let mut out = Scratch::zeroed(len);
        if wa == 0 || (b.is_some() && wb == 0) {
            return out;
        }
        let left = self.memory_budget.saturating_sub(len * elem);
        let chunk_rows = (left / (elem * (wa + wb))).max(MIN_CHUNK_ROWS).min(self.n);
        let mut buf_a = Scratch::zeroed(chunk_rows * wa);
        let mut buf_b = Scratch::zeroed(chunk_rows * wb);
        let mut start = 0;
        while start < self.n {
            let end = (start + chunk_rows).min(self.n);
            let rows = end - start;
            a.pack(start, end, &mut buf_a);
            if let Some(b) = b {
                b.pack(start, end, &mut buf_b);
            }
            for op in ops {
                match &op.product {
                    Product::Cross => {
                        let (x, y) = (columns_of(&buf_a, rows, wa, 0..wa), columns_of(&buf_b, rows, wb, 0..wb));
                        at_b(self.backend, x, y, &mut out, op.offset, op.ld, start > 0);
                    }
                    Product::Upper(source, range) => {
                        let x = match source {
                            Source::A => columns_of(&buf_a, rows, wa, range.clone()),
                            Source::B => columns_of(&buf_b, rows, wb, range.clone()),
                        };
                        at_a_upper(self.backend, x, &mut out, op.offset, op.ld, start > 0);
                    }
                }
            }
            start = end;
        }
        out
    }
}

/// Columns `range` of the first `rows` rows of a packed buffer with row stride `stride`.
fn columns_of<T>(buf: &[T], rows: usize, stride: usize, range: Range<usize>) -> Cols<'_, T> {
    Cols { data: buf, rows, stride, col0: range.start, width: range.len() }
}

/// Sum of squares (f64) of a block of a column-major product (leading dimension `ld`).
fn block_sum_of_squares<T: Real>(out: &[T], offset: usize, ld: usize, rows: &Range<usize>, cols: &Range<usize>) -> f64 {
    cols.clone().map(|c| sum_of_squares(&out[offset + c * ld + rows.start..][..rows.len()])).sum()
}

/// Sum of squares of a symmetric `p x p` block held as its upper triangle (column-major at
/// `offset`): off-diagonal entries count twice.
fn upper_sum_of_squares<T: Real>(out: &[T], offset: usize, ld: usize, p: usize) -> f64 {
    (0..p)
        .map(|c| {
            let column = &out[offset + c * ld..][..=c];
            let diag = column[c].to_f64();
            2.0 * sum_of_squares(&column[..c]) + diag * diag
        })
        .sum()
}

/// `sum v^2` in f64, over four independent partial sums (which the compiler can vectorise).
fn sum_of_squares<T: Real>(values: &[T]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = values.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|v| v.to_f64().powi(2)).sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v.to_f64() * v.to_f64();
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cka::Side;

    /// Centred data of each layer (f64) and `||Xc_i^T Yc_j||_F^2` by definition.
    fn naive(x: &ActivationsView<'_>, y: &ActivationsView<'_>) -> f64 {
        let centred = |v: &ActivationsView<'_>| -> Vec<f64> {
            let (n, p) = (v.n(), v.p());
            let crate::cka::matrix::Slice::F32(d) = v.data() else { panic!("f32 test data") };
            let mean: Vec<f64> = (0..p).map(|c| (0..n).map(|r| d[r * p + c] as f64).sum::<f64>() / n as f64).collect();
            (0..n * p).map(|k| d[k] as f64 - mean[k % p]).collect()
        };
        let (cx, cy) = (centred(x), centred(y));
        let (n, p, q) = (x.n(), x.p(), y.p());
        let mut total = 0.0;
        for i in 0..p {
            for j in 0..q {
                let v: f64 = (0..n).map(|r| cx[r * p + i] * cy[r * q + j]).sum();
                total += v * v;
            }
        }
        total
    }

    fn layers_of(n: usize, widths: &[usize], seed: u64) -> Vec<Vec<f32>> {
        widths
            .iter()
            .enumerate()
            .map(|(l, &p)| {
                (0..n * p)
                    .map(|k| {
                        let t = (k as u64).wrapping_mul(2654435761).wrapping_add(seed * 97 + l as u64 * 13);
                        // Offsets and spreads differing by layer exercise centring and scaling.
                        (l as f32 + 1.0) * 3.0 + ((t % 1000) as f32 / 250.0 - 2.0) * (1.0 + l as f32)
                    })
                    .collect()
            })
            .collect()
    }

    fn check(a_widths: &[usize], b_widths: Option<&[usize]>, n: usize, budget: usize) {
        let da = layers_of(n, a_widths, 1);
        let db = b_widths.map(|w| layers_of(n, w, 2)).unwrap_or_default();
        fn views<'d>(d: &'d [Vec<f32>], w: &[usize], n: usize) -> Vec<ActivationsView<'d>> {
            d.iter().zip(w).map(|(d, &p)| ActivationsView::new(n, p, d).unwrap()).collect()
        }
        let va = views(&da, a_widths, n);
        let vb = b_widths.map(|w| views(&db, w, n)).unwrap_or_else(|| va.clone());
        let centre = |v: &[ActivationsView<'_>]| -> Vec<Centring> {
            v.iter().enumerate().map(|(i, v)| Centring::of(v, Side::A, i).unwrap()).collect()
        };
        let (ca, cb) = (centre(&va), centre(&vb));
        let la: Vec<Layer<'_>> = va.iter().zip(&ca).map(|(&view, centring)| Layer { view, centring }).collect();
        let lb: Vec<Layer<'_>> = vb.iter().zip(&cb).map(|(&view, centring)| Layer { view, centring }).collect();
        let close = |got: f64, want: f64, what: &str| {
            assert!((got - want).abs() <= 1e-10 * want.abs(), "{what}: {got} vs {want}");
        };
        for backend in Backend::available() {
            let got = feature_inner::<f64>(&la, b_widths.map(|_| &lb[..]), n, budget, backend);
            // Results are in scaled units: <K_i, L_j> times (s_i s_j)^2.
            let unscale = |x: &Centring, y: &Centring| (x.scale * y.scale).powi(2);
            for (i, x) in va.iter().enumerate() {
                close(got.self_a[i] / unscale(&ca[i], &ca[i]), naive(x, x), &format!("{backend:?} self A {i}"));
                for (j, y) in vb.iter().enumerate() {
                    let g = got.cross[i * vb.len() + j] / unscale(&ca[i], &cb[j]);
                    close(g, naive(x, y), &format!("{backend:?} cross ({i}, {j})"));
                }
            }
            for (j, y) in vb.iter().enumerate() {
                close(got.self_b[j] / unscale(&cb[j], &cb[j]), naive(y, y), &format!("{backend:?} self B {j}"));
            }
            // f32 products agree to f32 accuracy.
            let got32 = feature_inner::<f32>(&la, b_widths.map(|_| &lb[..]), n, budget, backend);
            for (g, w) in got32.cross.iter().zip(&got.cross) {
                assert!((g - w).abs() <= 1e-5 * w.abs(), "{backend:?} f32: {g} vs {w}");
            }
        }
    }

    #[test]
    fn general_pairs_match_the_definition_in_one_pass() {
        // One group per side, every self product fused into the cross pass; 300 columns take
        // the gemm crate's recursive upper-triangle split.
        check(&[3, 300, 17], Some(&[5, 260]), 90, 1 << 30);
    }

    #[test]
    fn general_pairs_match_the_definition_when_streamed_and_grouped() {
        // 64 KiB: several groups, many row chunks, self products fused where they fit and on
        // their own pass where they do not.
        check(&[3, 40, 17, 60], Some(&[5, 80, 2]), 300, 64 << 10);
        check(&[70], Some(&[60]), 200, 64 << 10);
    }

    #[test]
    fn symmetric_pairs_match_the_definition() {
        check(&[3, 300, 17], None, 90, 1 << 30);
        check(&[3, 40, 17, 60, 8], None, 300, 64 << 10);
    }
}
