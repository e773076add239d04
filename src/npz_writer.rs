//! Streaming `.npz` writer: arrays go into a zip of `.npy` entries, as `np.savez` (stored) or
//! `np.savez_compressed` (deflated, [`NpzWriter::compressed`]) writes them, readable by
//! `numpy.load` and by [`crate::checkpoint::open`].
//!
//! Owns: the `.npy` entries (header, element-count and dtype checks, streaming in bounded chunks).
//! The zip container (headers, CRCs, zip64 records when an entry or the archive outgrows 4 GiB)
//! is the `zip` crate's [`zip::ZipWriter`]; the file goes through [`crate::atomic_write`], so it
//! appears only when [`NpzWriter::finish`] succeeds and dropping the writer earlier (an error, a
//! cancelled export) leaves nothing half-written behind.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use gmnscope::checkpoint::DType;
//! use gmnscope::npz_writer::NpzWriter;
//! let mut npz = NpzWriter::create("graph.npz")?;
//! npz.add_array_i64("edge_index", &[2, 3], &[0, 1, 2, 1, 2, 3])?;
//! let mut features = npz.begin_array("x", DType::F32, &[1_000_000, 4])?;
//! for _ in 0..1_000 {
//!     features.write_f32s(&[0.0; 4_000])?;
//! }
//! features.finish()?;
//! npz.finish()
//! # }
//! ```

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::Path;

use zip::ZipWriter;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime};

use crate::atomic_write::AtomicFile;
use crate::checkpoint::DType;
use crate::checkpoint::numpy::npy;

/// Entries at or above this size need zip64 records (the crate must be told before writing).
const ZIP32_LIMIT: u64 = 0xFFFF_FFFF;

/// Writes a `.npz` archive; see the module docs.
pub struct NpzWriter {
    zip: ZipWriter<AtomicFile>,
    names: HashSet<String>,
    /// An array begun with `begin_array` whose `ArrayWriter::finish` has not run.
    open_array: Option<String>,
    always_zip64: bool,
    compression: CompressionMethod,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn zip_error(e: zip::result::ZipError) -> io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl NpzWriter {
    /// Starts an archive that will be moved to `path` by [`finish`](Self::finish).
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = AtomicFile::create(path)?;
        Ok(Self {
            zip: ZipWriter::new(file),
            names: HashSet::new(),
            open_array: None,
            always_zip64: false,
            compression: CompressionMethod::Stored,
        })
    }

    /// Writes zip64 records for every entry, as numpy itself does, even when sizes would fit in
    /// 32 bits (otherwise zip64 is used only where needed).
    pub fn always_zip64(mut self, always: bool) -> Self {
        self.always_zip64 = always;
        self
    }

    /// Deflates every entry, as `np.savez_compressed` does: smaller files (graph exports of
    /// big models shrink by about a third), slower to write and to read.
    pub fn compressed(mut self, compressed: bool) -> Self {
        self.compression = if compressed { CompressionMethod::Deflated } else { CompressionMethod::Stored };
        self
    }
    /// Adds a whole f32 array.
    pub fn add_array_f32(&mut self, name: &str, shape: &[usize], values: &[f32]) -> io::Result<()> {
        let mut array = self.begin_array(name, DType::F32, shape)?;
        array.write_f32s(values)?;
        array.finish()
    }

    /// Adds a whole f64 array.
    pub fn add_array_f64(&mut self, name: &str, shape: &[usize], values: &[f64]) -> io::Result<()> {
        let mut array = self.begin_array(name, DType::F64, shape)?;
        array.write_f64s(values)?;
        array.finish()
    }

    /// Adds a whole i64 array.
    pub fn add_array_i64(&mut self, name: &str, shape: &[usize], values: &[i64]) -> io::Result<()> {
        let mut array = self.begin_array(name, DType::I64, shape)?;
        array.write_i64s(values)?;
        array.finish()
    }

    /// Adds an array of any numpy-representable dtype from its little-endian bytes.
    pub fn add_array_le_bytes(&mut self, name: &str, dtype: DType, shape: &[usize], bytes: &[u8]) -> io::Result<()> {
        let mut array = self.begin_array(name, dtype, shape)?;
        array.write_le_bytes(bytes)?;
        array.finish()
    }

    /// [`begin_array`](Self::begin_array) for f32 data.
    pub fn begin_array_f32(&mut self, name: &str, shape: &[usize]) -> io::Result<ArrayWriter<'_>> {
        self.begin_array(name, DType::F32, shape)
    }

    /// [`begin_array`](Self::begin_array) for f64 data.
    pub fn begin_array_f64(&mut self, name: &str, shape: &[usize]) -> io::Result<ArrayWriter<'_>> {
        self.begin_array(name, DType::F64, shape)
    }

    /// [`begin_array`](Self::begin_array) for i64 data.
    pub fn begin_array_i64(&mut self, name: &str, shape: &[usize]) -> io::Result<ArrayWriter<'_>> {
        self.begin_array(name, DType::I64, shape)
    }

    /// Starts streaming array `name`; exactly `shape.product()` elements must then be written
    /// before [`ArrayWriter::finish`]. bf16 is refused (numpy has no such dtype).
    pub fn begin_array(&mut self, name: &str, dtype: DType, shape: &[usize]) -> io::Result<ArrayWriter<'_>> {
        self.check_usable()?;
        let descr = descr_or_error(dtype)?;
        if name.is_empty() || name.contains('\0') {
            return Err(invalid(format!("array name {name:?} is empty or contains NUL")));
        }
        if self.names.contains(name) {
            return Err(invalid(format!("array '{name}' was already written")));
        }
        if name.len() + ".npy".len() > usize::from(u16::MAX) {
            return Err(invalid(format!("array name '{name}' is too long")));
        }
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| invalid(format!("shape {shape:?} of '{name}' overflows")))?;
        let header = npy::encode_header(descr, shape);
        let size = elements
            .checked_mul(dtype.size() as u64)
            .and_then(|data| data.checked_add(header.len() as u64))
            .ok_or_else(|| invalid(format!("shape {shape:?} of '{name}' overflows")))?;

        let options = SimpleFileOptions::default()
            .compression_method(self.compression)
            .last_modified_time(DateTime::default()) // 1980-01-01: reproducible output
            .large_file(self.always_zip64 || size >= ZIP32_LIMIT);
        // Marked open before writing: a failed write leaves the writer refusing further use
        // rather than producing an archive with a torn entry.
        self.open_array = Some(name.to_string());
        self.names.insert(name.to_string());
        self.zip.start_file(format!("{name}.npy"), options).map_err(zip_error)?;
        let array = ArrayWriter { npz: self, dtype, remaining: elements, name: name.to_string() };
        array.npz.zip.write_all(&header)?;
        Ok(array)
    }

    /// Writes the central directory and moves the archive into place.
    pub fn finish(self) -> io::Result<()> {
        self.check_usable()?;
        let file = self.zip.finish().map_err(zip_error)?;
        file.commit()
    }

    fn check_usable(&self) -> io::Result<()> {
        match &self.open_array {
            Some(name) => Err(invalid(format!("array '{name}' was begun but never finished"))),
            None => Ok(()),
        }
    }
}

fn descr_or_error(dtype: DType) -> io::Result<&'static str> {
    npy::descr_for(dtype).ok_or_else(|| invalid(format!("numpy has no {} dtype; convert to f32 first", dtype.name())))
}

/// Streams the elements of one array into its entry; see [`NpzWriter::begin_array`].
pub struct ArrayWriter<'a> {
    npz: &'a mut NpzWriter,
    dtype: DType,
    /// Elements still expected.
    remaining: u64,
    name: String,
}

impl ArrayWriter<'_> {
    pub fn write_f32s(&mut self, values: &[f32]) -> io::Result<()> {
        self.write_typed(DType::F32, values, |v| v.to_le_bytes())
    }

    pub fn write_f64s(&mut self, values: &[f64]) -> io::Result<()> {
        self.write_typed(DType::F64, values, |v| v.to_le_bytes())
    }

    pub fn write_i64s(&mut self, values: &[i64]) -> io::Result<()> {
        self.write_typed(DType::I64, values, |v| v.to_le_bytes())
    }

    /// Little-endian element bytes of the array's dtype (a whole number of elements).
    pub fn write_le_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        let size = self.dtype.size();
        if !bytes.len().is_multiple_of(size) {
            return Err(invalid(format!(
                "{} bytes is not a whole number of {} elements",
                bytes.len(),
                self.dtype.name()
            )));
        }
        self.reserve((bytes.len() / size) as u64)?;
        self.npz.zip.write_all(bytes)
    }

    /// Completes the entry after checking the element count (the zip crate patches the CRC and
    /// sizes into the entry's header when the next entry starts or the archive finishes).
    pub fn finish(self) -> io::Result<()> {
        if self.remaining != 0 {
            return Err(invalid(format!("array '{}.npy' is missing {} elements", self.name, self.remaining)));
        }
        self.npz.open_array = None;
        Ok(())
    }

    fn write_typed<T: Copy, const N: usize>(
        &mut self,
        dtype: DType,
        values: &[T],
        to_le: impl Fn(T) -> [u8; N],
    ) -> io::Result<()> {
        if dtype != self.dtype {
            return Err(invalid(format!("cannot write {} values into a {} array", dtype.name(), self.dtype.name())));
        }
        self.reserve(values.len() as u64)?;
        // Convert in bounded chunks: streaming must not double the memory of a large slice.
        let mut buffer = Vec::with_capacity(N * values.len().min(16_384));
        for chunk in values.chunks(16_384) {
            buffer.clear();
            buffer.extend(chunk.iter().flat_map(|&v| to_le(v)));
            self.npz.zip.write_all(&buffer)?;
        }
        Ok(())
    }

    /// Counts `elements` against what the shape allows, before anything is written.
    fn reserve(&mut self, elements: u64) -> io::Result<()> {
        if elements > self.remaining {
            return Err(invalid(format!(
                "array '{}.npy' is full: {elements} more elements would exceed its shape",
                self.name
            )));
        }
        self.remaining -= elements;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint;

    #[test]
    fn arrays_round_trip_through_the_reader() {
        let dir = tempfile::tempdir().expect("tempdir");
        for zip64 in [false, true] {
            let path = dir.path().join(format!("out{zip64}.npz"));
            let mut npz = NpzWriter::create(&path).expect("create").always_zip64(zip64);
            npz.add_array_f32("weights", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).expect("add");
            npz.add_array_i64("edge_index", &[2, 2], &[0, 1, 1, i64::MIN]).expect("add");
            npz.add_array_le_bytes("mask", DType::Bool, &[3], &[1, 0, 1]).expect("add");
            npz.add_array_f64("scalar", &[], &[2.5]).expect("add");
            let mut streamed = npz.begin_array("ramp", DType::F32, &[100_000]).expect("begin");
            for start in (0..100_000).step_by(30_000) {
                let chunk: Vec<f32> = (start..(start + 30_000).min(100_000)).map(|i| i as f32).collect();
                streamed.write_f32s(&chunk).expect("write");
            }
            streamed.finish().expect("finish array");
            npz.finish().expect("finish");

            let store = checkpoint::open(&path).expect("reads back");
            assert_eq!(store.format, checkpoint::Format::Npz);
            let names: Vec<_> = store.tensors().iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["weights", "edge_index", "mask", "scalar", "ramp"]);
            let w = store.get("weights").expect("weights");
            assert_eq!((w.shape.clone(), w.to_f32()), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]));
            let e = store.get("edge_index").expect("edge_index");
            assert_eq!(e.bytes()[24..32], i64::MIN.to_le_bytes());
            assert_eq!(store.get("mask").map(|t| t.dtype), Some(DType::Bool));
            assert_eq!(store.get("scalar").map(|t| (t.shape.clone(), t.to_f64())), Some((vec![], vec![2.5])));
            let ramp = store.get("ramp").expect("ramp").to_f32();
            assert!(ramp.iter().enumerate().all(|(i, &v)| v == i as f32));
        }
    }

    #[test]
    fn compressed_archives_read_back_and_are_smaller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values: Vec<f32> = (0..50_000).map(|i| (i % 7) as f32).collect();
        let mut sizes = Vec::new();
        for compressed in [false, true] {
            let path = dir.path().join(format!("c{compressed}.npz"));
            let mut npz = NpzWriter::create(&path).expect("create").compressed(compressed);
            npz.add_array_f32("x", &[50_000], &values).expect("add");
            npz.add_array_i64("i", &[2], &[3, -4]).expect("add");
            npz.finish().expect("finish");
            let store = checkpoint::open(&path).expect("reads back");
            assert_eq!(store.get("x").expect("x").to_f32(), values);
            assert_eq!(store.get("i").expect("i").bytes()[8..16], (-4i64).to_le_bytes());
            sizes.push(std::fs::metadata(&path).expect("size").len());
        }
        assert!(sizes[1] * 10 < sizes[0], "deflate shrinks a repetitive array: {sizes:?}");
    }

    #[test]
    fn wrong_element_counts_and_names_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.npz");
        let mut npz = NpzWriter::create(&path).expect("create");
        assert!(npz.add_array_f32("a", &[3], &[1.0, 2.0]).is_err(), "too few");
        // The failed array left the writer unusable: it would otherwise produce a corrupt entry.
        assert!(npz.add_array_f32("b", &[1], &[1.0]).expect_err("poisoned").to_string().contains("never finished"));
        drop(npz);

        let mut npz = NpzWriter::create(&path).expect("create");
        let mut a = npz.begin_array("a", DType::F32, &[2]).expect("begin");
        assert!(a.write_f32s(&[1.0, 2.0, 3.0]).is_err(), "too many is refused before writing");
        assert!(a.write_i64s(&[1, 2]).is_err(), "wrong dtype");
        assert!(a.write_le_bytes(&[0; 3]).is_err(), "partial element");
        a.write_f32s(&[1.0, 2.0]).expect("exact");
        a.finish().expect("finish");
        assert!(npz.add_array_f32("a", &[0], &[]).is_err(), "duplicate name");
        assert!(npz.add_array_f32("", &[0], &[]).is_err(), "empty name");
        assert!(npz.begin_array("bf", DType::BF16, &[1]).is_err(), "numpy has no bf16");
        assert!(npz.begin_array("huge", DType::F64, &[usize::MAX, 4]).is_err(), "overflow");
        npz.finish().expect("finish");
        assert_eq!(checkpoint::open(&path).expect("valid").len(), 1);
    }

    #[test]
    fn an_unfinished_writer_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("partial.npz");
        std::fs::write(&path, b"previous export").expect("write");
        {
            let mut npz = NpzWriter::create(&path).expect("create");
            npz.add_array_f32("a", &[1], &[1.0]).expect("add");
            // Dropped without finish(): an interrupted export.
        }
        assert_eq!(std::fs::read(&path).expect("old file intact"), b"previous export");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(leftovers.len(), 1, "temporary file removed");
    }
}
