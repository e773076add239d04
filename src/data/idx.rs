//! IDX files (the MNIST / Fashion-MNIST container) -> [`ImageSet`].
//!
//! Format: a big-endian u32 magic `0x0000_08NN` (`08` = unsigned bytes, `NN` = number of
//! dimensions: 3 for images, 1 for labels, so the magics are 2051 and 2049), then `NN` big-endian
//! u32 dimensions, then the bytes in C order. Files may be gzip-compressed (`.gz`, recognised by
//! their magic bytes, not their name).
//!
//! Sizes are checked before any allocation: a raw file must be exactly header + product of the
//! dimensions long; a gzip stream is read through a limit of exactly that many bytes (so a lying
//! header cannot make us allocate more than the data really holds) and must end there.
//!
//! A caller that needs only the first `k` examples ([`ImageSet::open_dir_first`]) reads just
//! those: the file must hold them completely, and what follows is not checked. This is what
//! lets a study use the first 10,000 images of a file whose tail is damaged (the shared
//! Fashion-MNIST copy claims 70,002 images and holds 70,000).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::split::{self, Split};
use super::{Error, Result};

/// Images and labels: `images` holds `len() * rows * cols` bytes, image after image, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
    /// Where the images came from (`mnist:/path/to/dir`, `procedural:seed=0`), for zoo metadata.
    pub source: String,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i` (row-major), or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let size = self.rows * self.cols;
        self.images.get(i.checked_mul(size)?..i.checked_add(1)?.checked_mul(size)?)
    }

    /// Number of classes: one more than the largest label (0 for an empty set).
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m as usize + 1)
    }

    /// The split of every image: stratified 80/10/10 per class, deterministic by seed
    /// (see [`split::stratified`]).
    pub fn splits(&self, seed: u64) -> Vec<Split> {
        split::stratified(&self.labels, seed)
    }

    /// Reads an image file and a label file and checks that they describe the same examples.
    pub fn open(images: &Path, labels: &Path) -> Result<ImageSet> {
        Self::open_first(images, labels, None)
    }

    /// Like [`ImageSet::open`], but reads only the first `limit` examples when given.
    pub fn open_first(images: &Path, labels: &Path, limit: Option<usize>) -> Result<ImageSet> {
        let (n, rows, cols, pixels) = read_images_first(images, limit)?;
        let label_bytes = read_idx(labels, 1, limit)?.1;
        if label_bytes.len() != n {
            return Err(Error::new(
                labels,
                format!("holds {} labels but {} holds {n} images", label_bytes.len(), images.display()),
            ));
        }
        let source = images.parent().map_or_else(|| images.display().to_string(), |p| p.display().to_string());
        Ok(ImageSet { images: pixels, labels: label_bytes, rows, cols, source: format!("idx:{source}") })
    }

    /// Opens the IDX pair in `dir`: `images-idx3-ubyte` + `labels-idx1-ubyte` (each optionally
    /// `.gz`), or the classic `train-images-idx3-ubyte` + `train-labels-idx1-ubyte`, to which the
    /// classic `t10k-*` test files are appended when present (70,000 MNIST images). A `.` instead
    /// of the `-` before `idx` is accepted too.
    pub fn open_dir(dir: &Path) -> Result<ImageSet> {
        Self::open_dir_first(dir, None)
    }

    /// Like [`ImageSet::open_dir`], but reads only the first `limit` examples when given (of the
    /// training files first, then of the test files).
    pub fn open_dir_first(dir: &Path, limit: Option<usize>) -> Result<ImageSet> {
        if !dir.is_dir() {
            return Err(Error::new(dir, "not a directory (expected a folder with IDX image and label files)"));
        }
        if let (Some(images), Some(labels)) = (find(dir, "images", 3), find(dir, "labels", 1)) {
            return ImageSet::open_first(&images, &labels, limit);
        }
        let (Some(images), Some(labels)) = (find(dir, "train-images", 3), find(dir, "train-labels", 1)) else {
            return Err(Error::new(
                dir,
                "no IDX files found (looked for images-idx3-ubyte[.gz] + labels-idx1-ubyte[.gz] and \
                 train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz])",
            ));
        };
        let mut set = ImageSet::open_first(&images, &labels, limit)?;
        let rest = limit.map(|k| k.saturating_sub(set.len()));
        if rest == Some(0) {
            return Ok(set);
        }
        if let (Some(images), Some(labels)) = (find(dir, "t10k-images", 3), find(dir, "t10k-labels", 1)) {
            let test = ImageSet::open_first(&images, &labels, rest)?;
            if (test.rows, test.cols) != (set.rows, set.cols) {
                return Err(Error::new(&images, "test images have another size than the training images"));
            }
            set.images.extend_from_slice(&test.images);
            set.labels.extend_from_slice(&test.labels);
        }
        Ok(set)
    }
}

/// `dir/<stem>-idx<dims>-ubyte[.gz]` (or with `.` before `idx`), if it exists.
fn find(dir: &Path, stem: &str, dims: usize) -> Option<PathBuf> {
    ["-", "."]
        .iter()
        .flat_map(|sep| ["", ".gz"].map(|gz| dir.join(format!("{stem}{sep}idx{dims}-ubyte{gz}"))))
        .find(|p| p.is_file())
}

/// Reads an IDX image file: (count, rows, cols, pixels).
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    read_images_first(path, None)
}

/// Reads the first `limit` images (all when `None`): (count read, rows, cols, pixels).
pub fn read_images_first(path: &Path, limit: Option<usize>) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (dims, data) = read_idx(path, 3, limit)?;
    let [n, rows, cols] = dims[..] else { unreachable!("read_idx returns the requested number of dims") };
    if rows == 0 || cols == 0 {
        return Err(Error::new(path, format!("images of {rows}x{cols} pixels")));
    }
    Ok((n, rows, cols, data))
}

/// Reads an IDX label file.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    Ok(read_idx(path, 1, None)?.1)
}

/// Largest ratio of decompressed to compressed size deflate can reach (about 1032:1).
const MAX_DEFLATE_RATIO: u64 = 1100;

/// Reads an unsigned-byte IDX file with `ndims` dimensions: (dims, data). With `limit`, only the
/// first `limit` entries of the first dimension are read (and returned in `dims[0]`).
fn read_idx(path: &Path, ndims: usize, limit: Option<usize>) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, "cannot stat", e))?.len();
    let mut reader = std::io::BufReader::new(file);
    let mut magic2 = [0u8; 2];
    let gz = {
        use std::io::BufRead as _;
        let head = reader.fill_buf().map_err(|e| Error::io(path, "cannot read", e))?;
        magic2.copy_from_slice(head.get(..2).unwrap_or(&[0, 0]));
        magic2 == [0x1f, 0x8b]
    };
    let mut stream: Box<dyn Read> =
        if gz { Box::new(flate2::read::MultiGzDecoder::new(reader)) } else { Box::new(reader) };
    let read_err = |e: std::io::Error| {
        let what = if gz { "cannot decompress (corrupt or truncated gzip?)" } else { "cannot read" };
        Error::io(path, what, e)
    };

    // The magic first, so a file of the other kind is named as such even when it is short.
    let mut header = vec![0u8; 4 + 4 * ndims];
    read_exact_or(&mut stream, &mut header[..4], path, "file ends inside the IDX header")
        .map_err(|e| e.or_io(read_err))?;
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let expected_magic = 0x0800 | ndims as u32;
    if magic != expected_magic {
        let kind = if ndims == 3 { "an image file (2051)" } else { "a label file (2049)" };
        let hint = match magic {
            0x0803 => " (this is an image file)",
            0x0801 => " (this is a label file)",
            m if m >> 8 == 0x08 => " (unsigned bytes, but another number of dimensions)",
            m if m & 0xFFFF_0000 == 0 && m >> 8 != 0x08 => " (not unsigned bytes: only ubyte IDX files are supported)",
            _ => " (not an IDX file)",
        };
        return Err(Error::new(path, format!("IDX magic is {magic} but {kind} was expected{hint}")));
    }
    read_exact_or(&mut stream, &mut header[4..], path, "file ends inside the IDX header")
        .map_err(|e| e.or_io(read_err))?;
    let mut dims: Vec<usize> =
        header[4..].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let partial = limit.is_some_and(|k| k < dims[0]);
    if let Some(k) = limit.filter(|_| partial) {
        dims[0] = k;
    }
    let size = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&s| s <= u32::MAX as u64 * 64)
        .ok_or_else(|| Error::new(path, format!("IDX dimensions {dims:?} are implausibly large")))?;
    let header_len = header.len() as u64;
    if gz {
        if size > file_len.saturating_mul(MAX_DEFLATE_RATIO) {
            return Err(Error::new(
                path,
                format!("IDX header claims {size} bytes of data, more than a {file_len}-byte gzip file can hold"),
            ));
        }
    } else if (partial && file_len < header_len + size) || (!partial && file_len != header_len + size) {
        return Err(Error::new(
            path,
            format!(
                "IDX header {dims:?} needs {} bytes but the file has {file_len} (truncated or not this format)",
                header_len + size
            ),
        ));
    }
    // Grow with the data actually read, never allocate `size` up front from the header alone.
    let mut data = Vec::new();
    (&mut stream).take(size).read_to_end(&mut data).map_err(read_err)?;
    if data.len() as u64 != size {
        return Err(Error::new(
            path,
            format!(
                "IDX header {dims:?} needs {size} bytes of data but the file holds only {} ({} complete entries; \
                 ask for at most that many, e.g. a smaller --count, to use them)",
                data.len(),
                data.len() / (size as usize / dims[0].max(1)).max(1)
            ),
        ));
    }
    if gz && !partial {
        let mut extra = [0u8; 1];
        if stream.read(&mut extra).map_err(read_err)? != 0 {
            return Err(Error::new(
                path,
                format!("data continues past the {size} bytes the IDX header {dims:?} describes"),
            ));
        }
    }
    Ok((dims, data))
}

enum ReadFail {
    Short(Error),
    Io(std::io::Error),
}

impl ReadFail {
    fn or_io(self, f: impl FnOnce(std::io::Error) -> Error) -> Error {
        match self {
            ReadFail::Short(e) => e,
            ReadFail::Io(e) => f(e),
        }
    }
}

fn read_exact_or(r: &mut dyn Read, buf: &mut [u8], path: &Path, short: &str) -> Result<(), ReadFail> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Err(ReadFail::Short(Error::new(path, short))),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadFail::Io(e)),
        }
    }
    Ok(())
}

/// Encodes an unsigned-byte IDX file (used by tests and to export procedural sets).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&(0x0800u32 | dims.len() as u32).to_be_bytes());
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn raw_and_gzip_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| i as u8).collect();
        write(dir.path(), "images-idx3-ubyte.gz", &gzip(&encode(&[3, 4, 5], &pixels)));
        write(dir.path(), "labels-idx1-ubyte", &encode(&[3], &[7, 0, 2]));
        let set = ImageSet::open_dir(dir.path()).unwrap();
        assert_eq!((set.len(), set.rows, set.cols), (3, 4, 5));
        assert_eq!(set.images, pixels);
        assert_eq!(set.labels, vec![7, 0, 2]);
        assert_eq!(set.image(1).unwrap(), &pixels[20..40]);
        assert!(set.image(3).is_none());
        assert_eq!(set.num_classes(), 8);
    }

    #[test]
    fn classic_names_concatenate_train_and_test() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train-images-idx3-ubyte", &encode(&[2, 1, 1], &[1, 2]));
        write(dir.path(), "train-labels-idx1-ubyte", &encode(&[2], &[0, 1]));
        write(dir.path(), "t10k-images.idx3-ubyte", &encode(&[1, 1, 1], &[3]));
        write(dir.path(), "t10k-labels.idx1-ubyte", &encode(&[1], &[2]));
        let set = ImageSet::open_dir(dir.path()).unwrap();
        assert_eq!(set.images, vec![1, 2, 3]);
        assert_eq!(set.labels, vec![0, 1, 2]);
    }

    #[test]
    fn bad_headers_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("labels-as-images", encode(&[2], &[0, 1]), "magic is 2049"),
            ("truncated", encode(&[2, 2, 2], &[0; 7]), "needs 24 bytes but the file has 23"),
            ("too-long", encode(&[1, 2, 2], &[0; 5]), "needs 20 bytes but the file has 21"),
            ("short-header", vec![0, 0, 8, 3, 0, 0], "ends inside the IDX header"),
            (
                "float-idx",
                {
                    let mut v = encode(&[1, 1, 1], &[0, 0, 0, 0]);
                    v[2] = 0x0D;
                    v
                },
                "only ubyte",
            ),
            ("huge", encode(&[u32::MAX as usize, u32::MAX as usize, 1000], &[]), "implausibly large"),
        ];
        for (name, bytes, expect) in cases {
            let p = write(dir.path(), name, &bytes);
            let err = read_images(&p).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
        }
        // A gzip stream whose header claims more than it holds.
        let p = write(dir.path(), "short.gz", &gzip(&encode(&[10, 28, 28], &[0; 100])));
        let err = read_images(&p).unwrap_err().to_string();
        assert!(err.contains("holds only 100"), "{err}");
        // A corrupt gzip stream.
        let mut bad = gzip(&encode(&[1, 2, 2], &[1, 2, 3, 4]));
        let mid = bad.len() / 2;
        bad.truncate(mid);
        let p = write(dir.path(), "cut.gz", &bad);
        assert!(read_images(&p).is_err());
    }

    #[test]
    fn mismatched_counts_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "images-idx3-ubyte", &encode(&[2, 1, 1], &[1, 2]));
        write(dir.path(), "labels-idx1-ubyte", &encode(&[3], &[0, 1, 2]));
        let err = ImageSet::open_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("3 labels") && err.contains("2 images"), "{err}");
    }

    #[test]
    fn a_prefix_of_a_file_with_a_damaged_tail_can_be_read() {
        // The header claims 5 images of 2x2 but only 3 complete ones follow (and half of one):
        // like the shared Fashion-MNIST copy, whose header claims 70,002 images for 70,000.
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..14).collect();
        let mut images = encode(&[3, 2, 2], &pixels[..12]);
        images[4..8].copy_from_slice(&5u32.to_be_bytes());
        images.extend_from_slice(&pixels[12..]);
        write(dir.path(), "images-idx3-ubyte.gz", &gzip(&images));
        write(dir.path(), "labels-idx1-ubyte", &encode(&[5], &[4, 3, 2, 1, 0]));

        let whole = ImageSet::open_dir(dir.path()).unwrap_err().to_string();
        assert!(whole.contains("images-idx3-ubyte.gz") && whole.contains("3 complete entries"), "{whole}");

        let first = ImageSet::open_dir_first(dir.path(), Some(3)).unwrap();
        assert_eq!((first.len(), first.images.as_slice()), (3, &pixels[..12]));
        assert_eq!(first.labels, vec![4, 3, 2]);
        assert!(ImageSet::open_dir_first(dir.path(), Some(4)).is_err(), "the 4th image is incomplete");

        // A limit beyond the header's count reads everything, checked as strictly as without one.
        let raw = write(dir.path(), "raw", &encode(&[2, 1, 1], &[9, 8]));
        assert_eq!(read_images_first(&raw, Some(10)).unwrap().3, vec![9, 8]);
        let mut long = encode(&[2, 1, 1], &[9, 8]);
        long.push(7);
        let long = write(dir.path(), "long", &long);
        assert_eq!(read_images_first(&long, Some(1)).unwrap().3, vec![9], "a raw prefix ignores the tail");
        assert!(read_images_first(&long, Some(2)).is_err());
    }

    #[test]
    fn a_limit_spans_the_classic_train_and_test_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train-images-idx3-ubyte", &encode(&[2, 1, 1], &[1, 2]));
        write(dir.path(), "train-labels-idx1-ubyte", &encode(&[2], &[0, 1]));
        write(dir.path(), "t10k-images-idx3-ubyte", &encode(&[2, 1, 1], &[3, 4]));
        write(dir.path(), "t10k-labels-idx1-ubyte", &encode(&[2], &[2, 3]));
        assert_eq!(ImageSet::open_dir_first(dir.path(), Some(1)).unwrap().images, vec![1]);
        assert_eq!(ImageSet::open_dir_first(dir.path(), Some(3)).unwrap().labels, vec![0, 1, 2]);
    }
}
