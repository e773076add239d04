//! Shared, cheaply clonable byte buffers: a memory-mapped file or an owned vector.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::{Error, Result};

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// A whole buffer (a mapped file or bytes a reader had to decode).
#[derive(Clone)]
pub struct Blob(Arc<Storage>);

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.0 {
            Storage::Mapped(_) => "mapped",
            Storage::Owned(_) => "owned",
        };
        write!(f, "Blob({kind}, {} bytes)", self.len())
    }
}

impl Blob {
    /// Maps a file read-only. Empty files get an empty owned buffer (mmap of length 0 fails).
    pub fn map_file(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::new(path, format!("cannot open: {e}")))?;
        let meta = file.metadata().map_err(|e| Error::new(path, format!("cannot stat: {e}")))?;
        if meta.is_dir() {
            return Err(Error::new(path, "is a directory, not a model file"));
        }
        if meta.len() == 0 {
            return Err(Error::new(path, "file is empty"));
        }
        // SAFETY: the map is read-only; a file truncated by another process while mapped can
        // SIGBUS, which is the accepted trade-off of every mmap-based model loader.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::new(path, format!("cannot map: {e}")))?;
        Ok(Self(Arc::new(Storage::Mapped(map))))
    }

    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self(Arc::new(Storage::Owned(bytes)))
    }

    pub fn as_slice(&self) -> &[u8] {
        match &*self.0 {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A view of `range`, or `None` when it does not lie inside the buffer.
    pub fn view(&self, range: Range<usize>) -> Option<ByteView> {
        (range.start <= range.end && range.end <= self.len()).then(|| ByteView { blob: self.clone(), range })
    }

    /// The whole buffer as a view.
    pub fn whole(&self) -> ByteView {
        ByteView { blob: self.clone(), range: 0..self.len() }
    }
}

/// A checked byte range inside a [`Blob`].
#[derive(Clone, Debug)]
pub struct ByteView {
    blob: Blob,
    range: Range<usize>,
}

impl ByteView {
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Blob::from_vec(bytes).whole()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.blob.as_slice()[self.range.clone()]
    }

    pub fn len(&self) -> usize {
        self.range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
}
