//! The linear assignment problem, dense: `lapjv` (Jonker-Volgenant shortest augmenting paths,
//! O(n^3)) on a cost matrix scaled into [-1, 1], so magnitudes anywhere in f64's range solve the
//! same way.

/// The permutation `p` maximising `sum_i profit[i * n + p[i]]`. `profit` must be finite (callers
/// check their inputs); a solver failure falls back to the identity, which is never worse than
/// leaving the units where they are.
pub fn maximise(profit: &[f64], n: usize) -> Vec<usize> {
    assert_eq!(profit.len(), n * n, "profit must be n x n");
    let identity: Vec<usize> = (0..n).collect();
    if n < 2 {
        return identity;
    }
    let scale = profit.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 || !scale.is_finite() {
        return identity;
    }
    let costs: Vec<f64> = profit.iter().map(|v| -v / scale).collect();
    let Ok(matrix) = lapjv::Matrix::from_shape_vec((n, n), costs) else { return identity };
    match lapjv::lapjv(&matrix) {
        Ok((row_to_col, _)) if is_permutation(&row_to_col, n) => row_to_col,
        _ => identity,
    }
}

fn is_permutation(p: &[usize], n: usize) -> bool {
    let mut seen = vec![false; n];
    p.len() == n && p.iter().all(|&j| j < n && !std::mem::replace(&mut seen[j], true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn total(profit: &[f64], n: usize, p: &[usize]) -> f64 {
        (0..n).map(|i| profit[i * n + p[i]]).sum()
    }

    fn best_by_brute_force(profit: &[f64], n: usize) -> f64 {
        fn rec(profit: &[f64], n: usize, row: usize, used: &mut Vec<bool>, acc: f64, best: &mut f64) {
            if row == n {
                *best = best.max(acc);
                return;
            }
            for j in 0..n {
                if !used[j] {
                    used[j] = true;
                    rec(profit, n, row + 1, used, acc + profit[row * n + j], best);
                    used[j] = false;
                }
            }
        }
        let mut best = f64::NEG_INFINITY;
        rec(profit, n, 0, &mut vec![false; n], 0.0, &mut best);
        best
    }

    #[test]
    fn matches_brute_force_on_random_and_degenerate_matrices() {
        let mut rng = SplitMix64::new(11);
        for n in 1..=7usize {
            for case in 0..30 {
                let profit: Vec<f64> = (0..n * n)
                    .map(|_| match case % 4 {
                        0 => f64::from(rng.normal()),
                        1 => rng.below(3) as f64, // many ties
                        2 => 0.0,
                        _ => f64::from(rng.normal()) * 1e300,
                    })
                    .collect();
                let p = maximise(&profit, n);
                assert!(is_permutation(&p, n));
                let best = best_by_brute_force(&profit, n);
                let got = total(&profit, n, &p);
                assert!((got - best).abs() <= 1e-9 * best.abs().max(1.0), "n={n} case={case}: {got} vs {best}");
            }
        }
    }
}
