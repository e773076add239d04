//! Data the metanetworks learn from: image sets and zoos of networks.
//!
//! Owns:
//! - [`idx`]: MNIST-style IDX files -> [`ImageSet`] (28x28 u8 images + labels), and the
//!   deterministic train/val/test split of an image set ([`split`]);
//! - [`procedural`]: a 10-class 28x28 digit set drawn from vector strokes, needing no files (the
//!   embedded default);
//! - [`zoo`]: zoos of networks on disk (our INR zoo format, DWSNets MNIST/FMNIST INRs, NFN SIREN
//!   sets, the Small CNN Zoo) behind one API: [`Zoo::open`], [`Zoo::load`] -> `TensorStore`,
//!   [`Zoo::split`];
//! - [`siren`]: evaluating a SIREN INR on its pixel grid in plain Rust (PSNR, previews, checks).
//!
//! Fitting INRs (burn) lives in `crate::inr`; this module has no burn and no UI.
//! Must not import: `ui`, `inr`, `train`.
//!
//! Inputs are untrusted files: sizes are checked before allocating, and every failure is an
//! [`Error`] naming the file and the problem. Nothing here panics on bad input.

pub(crate) mod csv;
pub mod idx;
pub mod procedural;
pub mod siren;
pub mod split;
pub mod zoo;

pub use idx::ImageSet;
pub use split::Split;
pub use zoo::{Target, Zoo, ZooEntry, ZooKind};

use std::path::{Path, PathBuf};

/// What went wrong reading or writing data; always names the file (or directory).
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct Error {
    pub path: PathBuf,
    pub message: String,
}

impl Error {
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        Self { path: path.to_path_buf(), message: message.into() }
    }

    /// An I/O error on `path`, with what we were doing (`"cannot read"`, `"cannot create"`).
    pub fn io(path: &Path, doing: &str, err: std::io::Error) -> Self {
        Self::new(path, format!("{doing}: {err}"))
    }
}

impl From<crate::checkpoint::Error> for Error {
    fn from(e: crate::checkpoint::Error) -> Self {
        Self { path: e.path, message: e.message }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
