//! Streaming `.npz` writer: arrays go into a zip of uncompressed `.npy` entries, as `np.savez`
//! writes them, readable by `numpy.load` and by [`crate::checkpoint::open`].
//!
//! Owns: the zip container (local headers, central directory, zip64 records when an entry or the
//! archive outgrows 4 GiB) and atomic replacement of the target file. Arrays can be streamed: the
//! shape is known up front, so every size in a local header is final when it is written and only
//! the CRC is patched in afterwards (the file is seekable; no data descriptors needed).
//!
//! Everything is written to a temporary file next to the target and renamed into place by
//! [`NpzWriter::finish`]; dropping the writer earlier (an error, a cancelled export) deletes the
//! temporary file, so an interrupted export never leaves a half-written `.npz` behind.
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
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint::DType;
use crate::checkpoint::numpy::npy;

const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIRECTORY_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_END_SIGNATURE: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// Sizes and offsets at or above this go into zip64 records (the 32-bit field then holds it).
const ZIP32_LIMIT: u64 = 0xFFFF_FFFF;
/// 1980-01-01 00:00, the earliest DOS date: entries carry a fixed time so output is reproducible.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;
/// Offset of the CRC-32 field inside a local file header.
const LOCAL_HEADER_CRC_OFFSET: u64 = 14;
/// Bit 11 of the general-purpose flags: the file name is UTF-8.
const FLAG_UTF8: u16 = 1 << 11;

/// What the central directory needs to know about one finished entry.
struct Entry {
    file_name: Vec<u8>,
    crc: u32,
    size: u64,
    header_offset: u64,
    zip64_sizes: bool,
}

/// Writes a `.npz` archive; see the module docs.
pub struct NpzWriter {
    out: BufWriter<File>,
    temp_path: PathBuf,
    final_path: PathBuf,
    entries: Vec<Entry>,
    names: HashSet<String>,
    /// Bytes written so far (the offset of the next local header).
    offset: u64,
    /// An array begun with `begin_array` whose `ArrayWriter::finish` has not run.
    open_array: Option<String>,
    always_zip64: bool,
    finished: bool,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl NpzWriter {
    /// Starts an archive that will be moved to `path` by [`finish`](Self::finish).
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let final_path = path.as_ref().to_path_buf();
        final_path.file_name().ok_or_else(|| invalid(format!("{}: not a file path", final_path.display())))?;
        // Temps of killed exports of the same file go first (a big export leaves GBs).
        crate::temp_files::remove_stale(&final_path);
        let temp_path = crate::temp_files::temp_path_for(&final_path);
        let file = File::create(&temp_path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: cannot create: {e}", temp_path.display())))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, file),
            temp_path,
            final_path,
            entries: Vec::new(),
            names: HashSet::new(),
            offset: 0,
            open_array: None,
            always_zip64: false,
            finished: false,
        })
    }

    /// Writes zip64 records for every entry, as numpy itself does, even when sizes would fit in
    /// 32 bits (otherwise zip64 is used only where needed).
    pub fn always_zip64(mut self, always: bool) -> Self {
        self.always_zip64 = always;
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
        let file_name = format!("{name}.npy").into_bytes();
        let name_len =
            u16::try_from(file_name.len()).map_err(|_| invalid(format!("array name '{name}' is too long")))?;
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| invalid(format!("shape {shape:?} of '{name}' overflows")))?;
        let header = npy::encode_header(descr, shape);
        let size = elements
            .checked_mul(dtype.size() as u64)
            .and_then(|data| data.checked_add(header.len() as u64))
            .ok_or_else(|| invalid(format!("shape {shape:?} of '{name}' overflows")))?;

        let zip64_sizes = self.always_zip64 || size >= ZIP32_LIMIT;
        let flags = if name.is_ascii() { 0 } else { FLAG_UTF8 };
        let mut local = Vec::with_capacity(30 + file_name.len() + 20);
        put_u32(&mut local, LOCAL_HEADER_SIGNATURE);
        put_u16(&mut local, if zip64_sizes { 45 } else { 20 }); // version needed to extract
        put_u16(&mut local, flags);
        put_u16(&mut local, 0); // stored
        put_u16(&mut local, DOS_TIME);
        put_u16(&mut local, DOS_DATE);
        put_u32(&mut local, 0); // CRC-32, patched by ArrayWriter::finish
        let size32 = if zip64_sizes { ZIP32_LIMIT as u32 } else { size as u32 };
        put_u32(&mut local, size32); // compressed
        put_u32(&mut local, size32); // uncompressed
        put_u16(&mut local, name_len);
        put_u16(&mut local, if zip64_sizes { 20 } else { 0 });
        local.extend_from_slice(&file_name);
        if zip64_sizes {
            put_u16(&mut local, ZIP64_EXTRA_ID);
            put_u16(&mut local, 16);
            put_u64(&mut local, size); // uncompressed
            put_u64(&mut local, size); // compressed
        }

        let header_offset = self.offset;
        // Marked open before writing: a failed write leaves the writer refusing further use
        // rather than producing an archive with a torn entry.
        self.open_array = Some(name.to_string());
        self.names.insert(name.to_string());
        self.write_raw(&local)?;
        let mut array = ArrayWriter {
            npz: self,
            dtype,
            remaining: elements,
            crc: flate2::Crc::new(),
            entry: Entry { file_name, crc: 0, size, header_offset, zip64_sizes },
        };
        array.write_through(&header)?;
        Ok(array)
    }

    /// Writes the central directory and moves the archive into place.
    pub fn finish(mut self) -> io::Result<()> {
        self.check_usable()?;
        let directory_offset = self.offset;
        let mut directory = Vec::new();
        for entry in &self.entries {
            write_central_header(&mut directory, entry, self.always_zip64);
        }
        let directory_size = directory.len() as u64;
        let count = self.entries.len() as u64;
        let zip64_end =
            self.always_zip64 || count >= 0xFFFF || directory_offset >= ZIP32_LIMIT || directory_size >= ZIP32_LIMIT;
        if zip64_end {
            let record_offset = directory_offset + directory_size;
            put_u32(&mut directory, ZIP64_END_SIGNATURE);
            put_u64(&mut directory, 44); // size of the rest of this record
            put_u16(&mut directory, 45); // version made by
            put_u16(&mut directory, 45); // version needed
            put_u32(&mut directory, 0); // this disk
            put_u32(&mut directory, 0); // disk where the directory starts
            put_u64(&mut directory, count);
            put_u64(&mut directory, count);
            put_u64(&mut directory, directory_size);
            put_u64(&mut directory, directory_offset);
            put_u32(&mut directory, ZIP64_LOCATOR_SIGNATURE);
            put_u32(&mut directory, 0); // disk holding the zip64 end record
            put_u64(&mut directory, record_offset);
            put_u32(&mut directory, 1); // total disks
        }
        put_u32(&mut directory, END_OF_CENTRAL_DIRECTORY_SIGNATURE);
        put_u16(&mut directory, 0);
        put_u16(&mut directory, 0);
        let count16 = if zip64_end { 0xFFFF } else { count as u16 };
        put_u16(&mut directory, count16);
        put_u16(&mut directory, count16);
        put_u32(&mut directory, if zip64_end { ZIP32_LIMIT as u32 } else { directory_size as u32 });
        put_u32(&mut directory, if zip64_end { ZIP32_LIMIT as u32 } else { directory_offset as u32 });
        put_u16(&mut directory, 0); // comment length
        self.write_raw(&directory)?;

        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        std::fs::rename(&self.temp_path, &self.final_path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot move the archive to {}: {e}", self.final_path.display()))
        })?;
        self.finished = true;
        Ok(())
    }

    fn check_usable(&self) -> io::Result<()> {
        match &self.open_array {
            Some(name) => Err(invalid(format!("array '{name}' was begun but never finished"))),
            None => Ok(()),
        }
    }

    fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

impl Drop for NpzWriter {
    fn drop(&mut self) {
        if !self.finished {
            std::fs::remove_file(&self.temp_path).ok();
        }
    }
}

fn descr_or_error(dtype: DType) -> io::Result<&'static str> {
    npy::descr_for(dtype).ok_or_else(|| invalid(format!("numpy has no {} dtype; convert to f32 first", dtype.name())))
}

fn write_central_header(out: &mut Vec<u8>, entry: &Entry, always_zip64: bool) {
    let zip64_offset = always_zip64 || entry.header_offset >= ZIP32_LIMIT;
    let mut extra = Vec::new();
    if entry.zip64_sizes || zip64_offset {
        // Only the fields whose 32-bit slot holds 0xFFFFFFFF appear, in this order.
        put_u16(&mut extra, ZIP64_EXTRA_ID);
        put_u16(&mut extra, 8 * (2 * u16::from(entry.zip64_sizes) + u16::from(zip64_offset)));
        if entry.zip64_sizes {
            put_u64(&mut extra, entry.size);
            put_u64(&mut extra, entry.size);
        }
        if zip64_offset {
            put_u64(&mut extra, entry.header_offset);
        }
    }
    let version = if extra.is_empty() { 20 } else { 45 };
    let utf8 = std::str::from_utf8(&entry.file_name).is_ok_and(|n| !n.is_ascii());
    let size32 = if entry.zip64_sizes { ZIP32_LIMIT as u32 } else { entry.size as u32 };
    put_u32(out, CENTRAL_HEADER_SIGNATURE);
    put_u16(out, version); // version made by (MS-DOS host, like numpy on Windows)
    put_u16(out, version); // version needed
    put_u16(out, if utf8 { FLAG_UTF8 } else { 0 });
    put_u16(out, 0); // stored
    put_u16(out, DOS_TIME);
    put_u16(out, DOS_DATE);
    put_u32(out, entry.crc);
    put_u32(out, size32);
    put_u32(out, size32);
    put_u16(out, entry.file_name.len() as u16); // checked in begin_array
    put_u16(out, extra.len() as u16);
    put_u16(out, 0); // comment length
    put_u16(out, 0); // disk number
    put_u16(out, 0); // internal attributes
    put_u32(out, 0); // external attributes
    put_u32(out, if zip64_offset { ZIP32_LIMIT as u32 } else { entry.header_offset as u32 });
    out.extend_from_slice(&entry.file_name);
    out.extend_from_slice(&extra);
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Streams the elements of one array into its entry; see [`NpzWriter::begin_array`].
pub struct ArrayWriter<'a> {
    npz: &'a mut NpzWriter,
    dtype: DType,
    /// Elements still expected.
    remaining: u64,
    crc: flate2::Crc,
    entry: Entry,
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
        self.write_through(bytes)
    }

    /// Completes the entry: checks the element count and patches the CRC into its local header.
    pub fn finish(mut self) -> io::Result<()> {
        if self.remaining != 0 {
            return Err(invalid(format!(
                "array '{}' is missing {} elements",
                String::from_utf8_lossy(&self.entry.file_name),
                self.remaining
            )));
        }
        self.entry.crc = self.crc.sum();
        let out = &mut self.npz.out;
        out.seek(SeekFrom::Start(self.entry.header_offset + LOCAL_HEADER_CRC_OFFSET))?;
        out.write_all(&self.entry.crc.to_le_bytes())?;
        out.seek(SeekFrom::Start(self.npz.offset))?;
        self.npz.entries.push(self.entry);
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
            self.write_through(&buffer)?;
        }
        Ok(())
    }

    /// Counts `elements` against what the shape allows, before anything is written.
    fn reserve(&mut self, elements: u64) -> io::Result<()> {
        if elements > self.remaining {
            return Err(invalid(format!(
                "array '{}' is full: {elements} more elements would exceed its shape",
                String::from_utf8_lossy(&self.entry.file_name)
            )));
        }
        self.remaining -= elements;
        Ok(())
    }

    fn write_through(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.npz.write_raw(bytes)
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
