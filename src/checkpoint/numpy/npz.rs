//! `.npz` archives: a zip of `.npy` entries (`np.savez` stores them, `np.savez_compressed`
//! deflates them).
//!
//! Owns: walking the zip directory (the `zip` crate parses it, zip64 included) and turning each
//! entry into a tensor. Stored entries are sliced zero-copy out of the mapped archive (their CRC is
//! not checked, which would mean reading every byte up front). Of a deflated entry only the header
//! is inflated at open (at most [`MAX_HEADER`] bytes); its payload is a [`Blob::deflated`] buffer,
//! inflated and CRC-checked when the values are first read, never beyond the declared size.

use std::io::{Cursor, Read};
use std::path::Path;

use zip::{CompressionMethod, ZipArchive};

use super::npy;
use crate::checkpoint::{Blob, Error, Format, Result, TensorStore};
use crate::text::shown;

/// Deflate cannot expand data by more than ~1032:1; a declared size beyond this ratio is a lie.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Most bytes inflated at open to read a deflated array's `.npy` header (numpy writes < 1 KB).
const MAX_HEADER: u64 = 1 << 20;

pub fn read(path: &Path, blob: Blob) -> Result<TensorStore> {
    let mut archive = ZipArchive::new(Cursor::new(blob.as_slice()))
        .map_err(|e| Error::new(path, format!("invalid .npz (zip) archive: {e}")))?;
    crate::checkpoint::zip_names::check_unique(&archive, blob.as_slice()).map_err(|e| Error::new(path, e))?;
    let mut tensors = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| Error::new(path, format!("zip entry {index}: {e}")))?;
        let entry_name = entry.name().to_string();
        if entry.is_dir() {
            continue;
        }
        let fail = |msg: String| Error::new(path, format!("entry '{}': {msg}", shown(&entry_name)));
        let Some(name) = entry_name.strip_suffix(".npy") else {
            return Err(fail("not a .npy array (an .npz holds only .npy entries)".into()));
        };
        let name = name.to_string();
        if entry.encrypted() {
            return Err(fail("encrypted entries are not supported".into()));
        }
        let (compression, size, compressed_size) = (entry.compression(), entry.size(), entry.compressed_size());
        let (data_start, crc32) = (entry.data_start(), entry.crc32());
        drop(entry);

        let tensor = match compression {
            CompressionMethod::Stored => {
                if size != compressed_size {
                    return Err(fail(format!("stored entry declares {size} bytes but occupies {compressed_size}")));
                }
                let range = usize::try_from(data_start)
                    .ok()
                    .zip(usize::try_from(size).ok())
                    .and_then(|(start, len)| Some(start..start.checked_add(len)?))
                    .filter(|r| r.end <= blob.len())
                    .ok_or_else(|| fail(format!("data ({size} bytes at offset {data_start}) lies outside the file")))?;
                npy::read_array(name, &blob, range)
            }
            CompressionMethod::Deflated => {
                let header = inflate_header(&mut archive, index, size, compressed_size).map_err(&fail)?;
                let compressed = usize::try_from(data_start)
                    .ok()
                    .zip(usize::try_from(compressed_size).ok())
                    .and_then(|(start, len)| Some(start..start.checked_add(len)?))
                    .filter(|r| r.end <= blob.len())
                    .ok_or_else(|| fail(format!("compressed data at offset {data_start} lies outside the file")))?;
                let len = usize::try_from(size).map_err(|_| fail(format!("declared size {size} does not fit")))?;
                let lazy =
                    Blob::deflated(blob.clone(), compressed, len, crc32, (path.to_path_buf(), entry_name.clone()));
                npy::array_after_header(name, header, &lazy, 0..len)
            }
            other => return Err(fail(format!("compression method {other:?} is not supported"))),
        };
        tensors.push(tensor.map_err(fail)?);
    }
    TensorStore::new(path, Format::Npz, tensors)
}

/// Inflates the start of entry `index` (at most [`MAX_HEADER`] bytes) and parses its `.npy`
/// header, refusing declared sizes that deflate could not produce.
fn inflate_header(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    index: usize,
    size: u64,
    compressed: u64,
) -> Result<npy::Header, String> {
    if size > compressed.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024) {
        return Err(format!("declares {size} bytes from {compressed} compressed bytes, more than deflate can produce"));
    }
    let mut head = Vec::new();
    let reader = archive.by_index(index).map_err(|e| e.to_string())?;
    reader.take(size.min(MAX_HEADER)).read_to_end(&mut head).map_err(|e| format!("cannot inflate: {e}"))?;
    npy::parse_header(&head).map_err(|e| {
        if head.len() as u64 == MAX_HEADER {
            format!("{e} (headers longer than {MAX_HEADER} bytes are refused)")
        } else {
            e
        }
    })
}

/// A zip archive whose entries are all `.npy` files (as `np.savez` writes).
pub fn looks_like_npz(blob: &Blob) -> bool {
    let Ok(archive) = ZipArchive::new(Cursor::new(blob.as_slice())) else {
        return false;
    };
    let mut names = archive.file_names().peekable();
    names.peek().is_some() && names.all(|n| n.ends_with(".npy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
        use std::io::Write as _;
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in entries {
            writer.start_file(*name, options).expect("in-memory zip");
            writer.write_all(bytes).expect("in-memory zip");
        }
        writer.finish().expect("in-memory zip").into_inner()
    }

    fn array_f32(values: &[f32]) -> Vec<u8> {
        let mut out = npy::encode_header("<f4", &[values.len()]);
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    fn read_bytes(bytes: Vec<u8>) -> Result<TensorStore> {
        read(Path::new("t.npz"), Blob::from_vec(bytes))
    }

    #[test]
    fn stored_and_deflated_entries_read_back() {
        let a = array_f32(&[1.0, 2.0]);
        let b = array_f32(&[-3.0]);
        for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
            let bytes = archive(&[("b.npy", &b), ("a.npy", &a)], method);
            assert!(looks_like_npz(&Blob::from_vec(bytes.clone())));
            let blob = Blob::from_vec(bytes);
            let store = read(Path::new("t.npz"), blob.clone()).expect("valid npz");
            let names: Vec<_> = store.tensors().iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["b", "a"], "archive order");
            let zero_copy = blob.as_slice().as_ptr_range().contains(&store.tensors()[0].bytes().as_ptr());
            assert_eq!(zero_copy, method == CompressionMethod::Stored, "stored entries are views of the archive");
            assert_eq!(store.get("a").map(|t| t.to_f32()), Some(vec![1.0, 2.0]));
        }
    }

    #[test]
    fn non_npy_entries_and_corruption_are_errors() {
        let a = array_f32(&[1.0, 2.0]);
        let mixed = archive(&[("a.npy", &a), ("data.pkl", b"x")], CompressionMethod::Stored);
        assert!(!looks_like_npz(&Blob::from_vec(mixed.clone())));
        assert!(read_bytes(mixed).expect_err("pkl entry").to_string().contains("data.pkl"));

        let good = archive(&[("a.npy", &a)], CompressionMethod::Deflated);
        // Every truncation and a flipped byte at every position: errors or (for payload bytes of
        // a stored entry) different values, never a panic.
        for cut in 0..good.len() {
            let _ = read_bytes(good[..cut].to_vec());
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            let _ = read_bytes(bad);
        }
        let stored = archive(&[("a.npy", &a)], CompressionMethod::Stored);
        for i in 0..stored.len() {
            let mut bad = stored.clone();
            bad[i] = bad[i].wrapping_add(0x80);
            let _ = read_bytes(bad);
        }
    }

    #[test]
    fn lying_uncompressed_size_is_refused() {
        let zeros = array_f32(&[0.0; 4096]);
        let mut bytes = archive(&[("z.npy", &zeros)], CompressionMethod::Deflated);
        // Patch the central directory's uncompressed size (offset 24 in its entry) to 4 GiB - 1.
        let cd = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").expect("central directory");
        bytes[cd + 24..cd + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_bytes(bytes).expect_err("lying size").to_string();
        assert!(err.contains("z.npy"), "{err}");
    }
}
