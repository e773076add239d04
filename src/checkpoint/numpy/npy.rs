//! One `.npy` array: the header (magic, version, Python-literal dict) and its payload.
//!
//! Owns: descr -> [`DType`] (refusing object and structured dtypes), shape checks against the
//! bytes actually present, and the conversion of big-endian or Fortran-ordered payloads into the
//! little-endian C order [`TensorInfo`] promises. Plain little-endian C-order payloads stay
//! zero-copy views of the blob they came from.

use std::ops::Range;

use super::literal::{self, Literal};
use crate::checkpoint::{Blob, ByteView, DType, TensorInfo};

pub const MAGIC: &[u8] = b"\x93NUMPY";

/// What an NPY header says about the array that follows it.
#[derive(Debug, PartialEq)]
pub struct Header {
    pub dtype: DType,
    /// Multi-byte elements stored big-endian (`>` descr).
    pub big_endian: bool,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Offset of the payload from the start of the `.npy` bytes.
    pub data_offset: usize,
}

impl Header {
    /// Bytes of payload the header announces, `None` on overflow.
    pub fn data_len(&self) -> Option<usize> {
        self.shape.iter().try_fold(self.dtype.size(), |acc, &d| acc.checked_mul(d))
    }
}

/// Parses the header at the start of `bytes` (the whole `.npy` content).
pub fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    if !bytes.starts_with(MAGIC) {
        return Err("not an .npy array (missing \\x93NUMPY magic)".into());
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[major, minor]) => (major, minor),
        _ => return Err("truncated .npy header".into()),
    };
    // Version 1 stores the header length in 2 bytes, versions 2 and 3 in 4 bytes; version 3 only
    // allows UTF-8 in the dict (for structured field names).
    let (len_bytes, utf8) = match major {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    let prefix = 8 + len_bytes;
    let len_field = bytes.get(8..prefix).ok_or("truncated .npy header")?;
    let header_len = len_field.iter().rev().fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let data_offset = prefix.checked_add(header_len).ok_or("header length overflows")?;
    let dict_bytes = bytes
        .get(prefix..data_offset)
        .ok_or_else(|| format!("header length {header_len} runs past the end of the file ({} bytes)", bytes.len()))?;
    if !utf8 && !dict_bytes.is_ascii() {
        return Err(format!("version {major}.{minor} header contains non-ASCII bytes"));
    }
    let text = std::str::from_utf8(dict_bytes).map_err(|_| "header is not UTF-8".to_string())?;
    let dict = literal::parse(text).map_err(|e| format!("malformed header dict: {e}"))?;
    if !matches!(dict, Literal::Dict(_)) {
        return Err("header is not a dict".into());
    }

    let (dtype, big_endian) = match dict.get("descr") {
        Some(Literal::Str(descr)) => parse_descr(descr)?,
        Some(Literal::List(_)) => {
            return Err("structured dtypes (record arrays) are not supported: save each field as its own array".into());
        }
        _ => return Err("header has no valid 'descr'".into()),
    };
    let fortran_order = match dict.get("fortran_order") {
        Some(Literal::Bool(b)) => *b,
        _ => return Err("header has no valid 'fortran_order'".into()),
    };
    let shape = match dict.get("shape") {
        Some(Literal::Tuple(dims)) => dims
            .iter()
            .map(|d| match d {
                Literal::Int(v) => usize::try_from(*v).map_err(|_| format!("negative dimension {v} in shape")),
                _ => Err("shape holds a non-integer".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err("header has no valid 'shape' tuple".into()),
    };
    let header = Header { dtype, big_endian, fortran_order, shape, data_offset };
    if header.data_len().is_none() {
        return Err(format!("shape {:?} is too large (element count overflows)", header.shape));
    }
    Ok(header)
}

/// `'<f4'` -> (F32, little-endian). Object, string, complex, datetime and void dtypes are refused.
pub fn parse_descr(descr: &str) -> Result<(DType, bool), String> {
    let (order, rest) = match descr.as_bytes().first() {
        Some(b'<' | b'>' | b'|' | b'=') => descr.split_at(1),
        _ => ("=", descr),
    };
    let big_endian = match order {
        ">" => true,
        "=" => cfg!(target_endian = "big"),
        _ => false,
    };
    let dtype = match rest {
        "f8" => DType::F64,
        "f4" => DType::F32,
        "f2" => DType::F16,
        "i8" => DType::I64,
        "i4" => DType::I32,
        "i2" => DType::I16,
        "i1" => DType::I8,
        "u8" => DType::U64,
        "u4" => DType::U32,
        "u2" => DType::U16,
        "u1" => DType::U8,
        "b1" => DType::Bool,
        _ => {
            let why = match rest.as_bytes().first() {
                Some(b'O') => "object arrays (pickled Python objects) are not supported",
                Some(b'V') => "structured/void dtypes are not supported",
                Some(b'U' | b'S' | b'a') => "string arrays are not supported",
                Some(b'c') => "complex arrays are not supported",
                Some(b'M' | b'm') => "datetime arrays are not supported",
                _ => "unknown dtype",
            };
            return Err(format!("dtype '{}': {why}", crate::text::shown(descr)));
        }
    };
    Ok((dtype, big_endian && dtype.size() > 1))
}

/// Reads the `.npy` array occupying `range` of `blob` as tensor `name`.
pub fn read_array(name: String, blob: &Blob, range: Range<usize>) -> Result<TensorInfo, String> {
    let bytes = blob.as_slice().get(range.clone()).ok_or("array lies outside the file")?;
    let header = parse_header(bytes)?;
    array_after_header(name, header, blob, range)
}

/// The tensor whose `header` was read from the start of `range` of `blob`. A deflated `blob`
/// stays deflated unless the payload needs converting (big-endian or Fortran order).
pub fn array_after_header(
    name: String,
    header: Header,
    blob: &Blob,
    range: Range<usize>,
) -> Result<TensorInfo, String> {
    let data_len = header.data_len().ok_or("element count overflows")?;
    let available = range.len().saturating_sub(header.data_offset);
    if data_len > available {
        return Err(format!(
            "shape {:?} of {} needs {data_len} bytes but only {available} follow the header (truncated file?)",
            header.shape,
            header.dtype.name()
        ));
    }
    let start = range.start + header.data_offset;
    let raw = blob.view(start..start + data_len).ok_or("array lies outside the file")?;
    let data = if header.big_endian || needs_transpose(&header) {
        ByteView::from_vec(to_little_endian_c_order(raw.as_slice(), &header))
    } else {
        raw
    };
    Ok(TensorInfo { name, dtype: header.dtype, shape: header.shape, data })
}

/// Fortran and C order coincide when at most one axis is longer than 1.
fn needs_transpose(header: &Header) -> bool {
    header.fortran_order && header.shape.iter().filter(|&&d| d > 1).count() > 1
}

/// Copies `raw` (exactly `header.data_len()` bytes) into C order, swapping bytes if big-endian.
fn to_little_endian_c_order(raw: &[u8], header: &Header) -> Vec<u8> {
    let size = header.dtype.size();
    let mut out = Vec::with_capacity(raw.len());
    let mut push = |element: &[u8]| {
        let start = out.len();
        out.extend_from_slice(element);
        if header.big_endian {
            out[start..].reverse();
        }
    };
    if !needs_transpose(header) {
        raw.chunks_exact(size).for_each(push);
        return out;
    }
    // Walk the output in C order with an odometer over the axes, tracking the source element in
    // Fortran order, where axis k has stride prod(shape[..k]).
    let shape = &header.shape;
    let mut fortran_stride = Vec::with_capacity(shape.len());
    let mut stride = 1usize;
    for &d in shape {
        fortran_stride.push(stride);
        stride *= d; // bounded by the element count, which data_len() checked
    }
    let count = stride;
    let mut index = vec![0usize; shape.len()];
    let mut source = 0usize;
    for _ in 0..count {
        push(&raw[source * size..(source + 1) * size]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            source += fortran_stride[axis];
            if index[axis] < shape[axis] {
                break;
            }
            source -= fortran_stride[axis] * shape[axis];
            index[axis] = 0;
        }
    }
    out
}

/// Serialises an NPY version 1.0 header (2.0 if the dict does not fit in 65535 bytes), padded so
/// the payload starts on a 64-byte boundary as numpy does.
pub fn encode_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [single] => format!("({single},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let encode = |len_bytes: usize, version: u8| {
        let unpadded = MAGIC.len() + 2 + len_bytes + dict.len() + 1; // + '\n'
        let padding = (64 - unpadded % 64) % 64;
        let header_len = dict.len() + padding + 1;
        let mut out = Vec::with_capacity(unpadded + padding);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[version, 0]);
        out.extend_from_slice(&(header_len as u32).to_le_bytes()[..len_bytes]);
        out.extend_from_slice(dict.as_bytes());
        out.extend(std::iter::repeat_n(b' ', padding));
        out.push(b'\n');
        out
    };
    let v1 = encode(2, 1);
    if v1.len() - 10 <= u16::MAX as usize { v1 } else { encode(4, 2) }
}

/// The numpy descr for a dtype gmnscope can write; numpy has no bfloat16.
pub fn descr_for(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F64 => "<f8",
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::BF16 => return None,
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I16 => "<i2",
        DType::I8 => "|i1",
        DType::U64 => "<u8",
        DType::U32 => "<u4",
        DType::U16 => "<u2",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(dict: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn read(bytes: Vec<u8>) -> Result<TensorInfo, String> {
        let blob = Blob::from_vec(bytes);
        read_array("a".into(), &blob, 0..blob.len())
    }

    #[test]
    fn header_round_trips_through_encoder() {
        for shape in [vec![], vec![5], vec![2, 3, 4]] {
            let bytes = encode_header("<i2", &shape);
            assert_eq!(bytes.len() % 64, 0);
            let header = parse_header(&bytes).expect("own header parses");
            assert_eq!(
                header,
                Header { dtype: DType::I16, big_endian: false, fortran_order: false, shape, data_offset: bytes.len() }
            );
        }
    }

    #[test]
    fn fortran_and_big_endian_become_c_order_little_endian() {
        // shape (2, 3) stored column-major: C order is [[0,1,2],[3,4,5]] -> Fortran bytes 0,3,1,4,2,5.
        let payload: Vec<u8> = [0u16, 3, 1, 4, 2, 5].iter().flat_map(|v| v.to_be_bytes()).collect();
        let t = read(npy("{'descr': '>u2', 'fortran_order': True, 'shape': (2, 3), }", &payload)).expect("valid");
        assert_eq!(t.to_f64(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(t.shape, vec![2, 3]);
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let mut good = encode_header("<f4", &[2, 3]);
        good.extend([0u8; 24]);
        for i in 0..good.len() {
            for value in [0u8, b'(', b'9', b'-', b'>', 0xff] {
                let mut bad = good.clone();
                bad[i] = value;
                let _ = read(bad);
            }
        }
        for cut in 0..good.len() {
            let _ = read(good[..cut].to_vec());
        }
    }

    #[test]
    fn hostile_headers_are_errors() {
        let cases = [
            (npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }", &[]), "negative"),
            (npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", &[0; 47]), "truncated"),
            (npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", &[]), "overflow"),
            (npy("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", &[]), "object"),
            (npy("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2,), }", &[]), "structured"),
            (npy("{'descr': '<q9', 'fortran_order': False, 'shape': (2,), }", &[]), "unknown dtype"),
            (npy("{'descr': '<f4', 'shape': (2,), }", &[]), "fortran_order"),
            (npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,), }", &[]), "malformed"),
            (npy("[1, 2]", &[]), "not a dict"),
            (b"\x93NUMPY\x09\x00".to_vec(), "version"),
            (b"\x93NUMPY\x01".to_vec(), "truncated"),
            (b"\x93NUMPY\x01\x00\xff\xff{}".to_vec(), "past the end"),
            (b"NUMPY".to_vec(), "magic"),
        ];
        for (bytes, expected) in cases {
            let err = read(bytes).expect_err(expected);
            assert!(err.contains(expected), "error {err:?} should mention {expected:?}");
        }
    }
}
