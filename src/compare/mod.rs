//! Comparing networks (issue 17): per-layer spectra, neuron alignment and checkpoint diffs.
//! Plain numbers over a [`crate::checkpoint::TensorStore`] and its [`crate::arch::Architecture`];
//! no UI. The CLI twins are `gmnscope inspect --spectra`, `align` and `diff`.
//!
//! - [`spectra`]: singular values, stable rank, WeightWatcher's power-law alpha ([`eig`]: symmetric
//!   eigenvalues);
//! - [`groups`]: the permutation groups of an architecture (hidden units, conv channels, residual
//!   streams) and the tensor axes each indexes;
//! - [`align`]: weight matching (Git Re-Basin) over those groups, one linear assignment
//!   ([`assignment`], the `lapjv` crate) per group, iterated to a fixed point;
//! - [`diff`]: per-layer relative change and cosine, optionally after alignment;
//! - [`matching`]: whether two files hold one architecture (else the first layer that differs).

pub mod align;
pub mod assignment;
pub mod diff;
pub mod eig;
pub mod groups;
pub mod matching;
pub mod spectra;
