//! Streaming minibatch CKA (Nguyen, Raghu & Kornblith, ICLR 2021): batches of paired activations
//! arrive one at a time; each contributes its unbiased HSIC values, and the estimate
//! `mean_b HSIC1(K_b, L_b) / sqrt(mean_b HSIC1(K_b, K_b) mean_b HSIC1(L_b, L_b))` can be read after
//! any batch. This is what lets heatmaps update live during training.
//!
//! Every batch weighs the same (the paper's mean over batches), whatever its size. The estimator
//! is always the unbiased one: averages of the biased HSIC would converge to a value that depends
//! on the batch size.

use super::hsic::HsicTerms;
use super::{ActivationsView, Error, Estimator, Matrix, Options, Result, Side, hsic_terms};

/// Accumulates minibatch HSIC terms for a fixed pair of layer lists.
#[derive(Clone, Debug)]
pub struct MinibatchCka {
    options: Options,
    widths_a: Vec<usize>,
    widths_b: Vec<usize>,
    sums: Option<HsicTerms>,
    batches: usize,
    examples: usize,
}

impl MinibatchCka {
    /// `options.estimator` is ignored (always unbiased); kernel, precision and budget apply per batch.
    pub fn new(options: Options) -> Self {
        let options = Options { estimator: Estimator::Unbiased, ..options };
        Self { options, widths_a: Vec::new(), widths_b: Vec::new(), sums: None, batches: 0, examples: 0 }
    }

    /// Adds one batch: the same examples through every layer of A and of B (each batch needs at
    /// least 4 examples). The first batch fixes the layer lists; later batches must match them.
    /// A rejected batch leaves the estimate unchanged.
    pub fn push(&mut self, a: &[ActivationsView<'_>], b: &[ActivationsView<'_>]) -> Result<()> {
        let widths = |l: &[ActivationsView<'_>]| l.iter().map(|v| v.p()).collect::<Vec<_>>();
        let (wa, wb) = (widths(a), widths(b));
        if self.sums.is_some() {
            for (side, expected, got) in [(Side::A, &self.widths_a, &wa), (Side::B, &self.widths_b, &wb)] {
                if expected != got {
                    return Err(Error::BatchLayersChanged { side, expected: expected.clone(), got: got.clone() });
                }
            }
        }
        let terms = hsic_terms(a, b, &self.options)?;
        match &mut self.sums {
            Some(sums) => sums.add(&terms),
            None => {
                self.sums = Some(terms);
                (self.widths_a, self.widths_b) = (wa, wb);
            }
        }
        self.batches += 1;
        self.examples += a.first().map_or(0, |v| v.n());
        Ok(())
    }

    /// The current estimate (rows = A's layers). The mean over batches cancels in the ratio, so
    /// the sums are used directly.
    pub fn estimate(&self) -> Result<Matrix> {
        self.sums.as_ref().map(HsicTerms::to_matrix).ok_or(Error::NoBatches)
    }

    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Examples seen over all batches.
    pub fn examples(&self) -> usize {
        self.examples
    }

    /// Forgets every batch (the layer lists may change afterwards).
    pub fn reset(&mut self) {
        *self = Self::new(self.options.clone());
    }
}
