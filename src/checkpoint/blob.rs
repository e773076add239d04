//! Shared, cheaply clonable byte buffers: a memory-mapped file, an owned vector, or a deflated
//! range of another buffer that is inflated the first time its bytes are read.
//!
//! The deflated kind keeps commands that never look at values (`inspect`, the model view's
//! structure) from inflating storages: a 3 MB compressed entry may hold a 3 GB tensor.

use std::io::Read as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::{Error, Result};

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
    Deflated(Deflated),
}

/// A raw-deflate range of `source` declared to inflate to `size` bytes with checksum `crc32`.
struct Deflated {
    source: Blob,
    range: Range<usize>,
    size: usize,
    crc32: u32,
    /// File and entry, for the log line when the data turns out corrupt.
    origin: (PathBuf, String),
    bytes: OnceLock<Vec<u8>>,
}

impl Deflated {
    /// The inflated bytes. A stream that does not inflate to exactly `size` bytes with the
    /// declared checksum reads as zeros, with an error logged naming the file and entry: a byte
    /// view cannot fail, and the header (checked at open) promised this size.
    fn bytes(&self) -> &[u8] {
        self.bytes.get_or_init(|| match self.inflate() {
            Ok(bytes) => bytes,
            Err(message) => {
                let (path, entry) = &self.origin;
                tracing::error!(
                    "{}: zip entry '{}' {message}; its {} bytes read as zeros",
                    path.display(),
                    crate::text::shown(entry),
                    self.size
                );
                vec![0; self.size]
            }
        })
    }

    fn inflate(&self) -> Result<Vec<u8>, String> {
        let compressed = self.source.as_slice().get(self.range.clone()).ok_or("lies outside the file")?;
        let mut out = Vec::new();
        out.try_reserve_exact(self.size).map_err(|_| format!("cannot allocate {} bytes to inflate it", self.size))?;
        flate2::read::DeflateDecoder::new(compressed)
            .take(self.size as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("does not inflate ({e})"))?;
        if out.len() != self.size {
            return Err(format!("inflates to {} bytes, not the declared {}", out.len(), self.size));
        }
        let mut crc = flate2::Crc::new();
        crc.update(&out);
        if crc.sum() != self.crc32 {
            return Err("fails its CRC-32 check".into());
        }
        Ok(out)
    }
}

/// A whole buffer (a mapped file or bytes a reader had to decode).
#[derive(Clone)]
pub struct Blob(Arc<Storage>);

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.0 {
            Storage::Mapped(_) => "mapped",
            Storage::Owned(_) => "owned",
            Storage::Deflated(d) if d.bytes.get().is_some() => "inflated",
            Storage::Deflated(_) => "deflated",
        };
        write!(f, "Blob({kind}, {} bytes)", self.len())
    }
}

impl Blob {
    /// Maps a file read-only. Empty files get an empty owned buffer (mmap of length 0 fails).
    /// Only regular files are read: opening a FIFO blocks until something writes to it, and a
    /// device has no size, so both are refused from a `stat` before the file is opened (and
    /// checked again on the opened file).
    pub fn map_file(path: &Path) -> Result<Self> {
        let before = std::fs::metadata(path).map_err(|e| Error::new(path, format!("cannot open: {e}")))?;
        check_regular(path, &before)?;
        let file = std::fs::File::open(path).map_err(|e| Error::new(path, format!("cannot open: {e}")))?;
        let meta = file.metadata().map_err(|e| Error::new(path, format!("cannot stat: {e}")))?;
        check_regular(path, &meta)?;
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

    /// A buffer of `size` bytes that are the raw-deflate stream `range` of `source`, inflated (and
    /// checked against `crc32`) the first time they are read. `origin` (file, zip entry) names the
    /// data if it turns out corrupt.
    pub fn deflated(source: Blob, range: Range<usize>, size: usize, crc32: u32, origin: (PathBuf, String)) -> Self {
        Self(Arc::new(Storage::Deflated(Deflated { source, range, size, crc32, origin, bytes: OnceLock::new() })))
    }

    /// The bytes (inflating a deflated buffer on first use).
    pub fn as_slice(&self) -> &[u8] {
        match &*self.0 {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
            Storage::Deflated(d) => d.bytes(),
        }
    }

    /// The length, without inflating anything.
    pub fn len(&self) -> usize {
        match &*self.0 {
            Storage::Mapped(m) => m.len(),
            Storage::Owned(v) => v.len(),
            Storage::Deflated(d) => d.size,
        }
    }

    /// Whether the bytes are not in memory yet (a deflated buffer nobody has read).
    pub fn is_deferred(&self) -> bool {
        matches!(&*self.0, Storage::Deflated(d) if d.bytes.get().is_none())
    }

    /// Whether `self` and `other` are the same buffer.
    pub fn same_buffer(&self, other: &Blob) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
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

/// Refuses directories, FIFOs, sockets and devices.
fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    if meta.is_dir() {
        return Err(Error::new(path, "is a directory, not a model file"));
    }
    if !meta.is_file() {
        return Err(Error::new(path, "is not a regular file (a FIFO, socket or device?); refusing to read it"));
    }
    Ok(())
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

    /// Whether the bytes are still compressed (nothing has read them yet).
    pub fn is_deferred(&self) -> bool {
        self.blob.is_deferred()
    }

    /// Whether this view lies in `blob` (a zero-copy view rather than a copy).
    pub fn is_in(&self, blob: &Blob) -> bool {
        self.blob.same_buffer(blob)
    }
}
