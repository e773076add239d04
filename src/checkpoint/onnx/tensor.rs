//! TensorProto -> [`TensorInfo`]: data types, shapes and the four places a payload can live.
//!
//! Owns: choosing the payload (`raw_data`, the typed `*_data` fields, or external data) and
//! producing little-endian bytes. `raw_data`, a single packed `float_data`/`double_data` run and
//! external data are zero-copy views; varint-encoded integers (and anything split into several
//! pieces) are decoded into owned buffers that never outgrow the data actually present.

use super::external::ExternalFiles;
use super::model::{DATA_LOCATION_EXTERNAL, Piece, TensorProto};
use super::proto::packed_varints;
use crate::checkpoint::{Blob, ByteView, DType, TensorInfo};

/// `TensorProto.DataType` -> [`DType`]; `Err` names the unsupported ONNX type.
fn convert_data_type(data_type: i32) -> Result<DType, String> {
    Ok(match data_type {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        16 => DType::BF16,
        other => {
            let name = match other {
                0 => "UNDEFINED",
                8 => "STRING",
                14 => "COMPLEX64",
                15 => "COMPLEX128",
                17..=20 | 24 => "FLOAT8",
                21 | 22 | 25 | 26 => "sub-byte integer (INT4/UINT4/INT2/UINT2)",
                23 | 27 | 28 => "sub-byte float (FLOAT4/FLOAT6)",
                _ => "unknown",
            };
            return Err(format!("data type {other} ({name}) is not supported"));
        }
    })
}

/// Builds the tensor for one weight (an initializer or a `Constant` value). `model` is the whole
/// model file; sizes are checked against the bytes present before anything is copied.
pub fn to_tensor_info(t: TensorProto, model: &Blob, external: &mut ExternalFiles) -> Result<TensorInfo, String> {
    let dtype = convert_data_type(t.data_type)?;
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<Vec<_>, _>>()?;
    let byte_len = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} is too large (byte size overflows)"))?;

    let data = if t.data_location == DATA_LOCATION_EXTERNAL {
        external.view(&t.external_data, byte_len)?
    } else if let Some(raw) = t.raw_data.clone() {
        model.view(raw).ok_or("raw_data lies outside the file")?
    } else {
        typed_data(&t, dtype, model)?
    };
    if data.len() != byte_len {
        return Err(format!("holds {} bytes of data but {} {shape:?} needs {byte_len}", data.len(), dtype.name()));
    }
    Ok(TensorInfo { name: t.name, dtype, shape, data })
}

/// The payload from the `*_data` field that `dtype` uses in onnx.proto.
fn typed_data(t: &TensorProto, dtype: DType, model: &Blob) -> Result<ByteView, String> {
    let bytes = model.as_slice();
    match dtype {
        DType::F32 => fixed_width(&t.float_data, 4, model),
        DType::F64 => fixed_width(&t.double_data, 8, model),
        DType::I64 => varints_to_bytes(&t.int64_data, 8, bytes),
        DType::U32 | DType::U64 => varints_to_bytes(&t.uint64_data, dtype.size(), bytes),
        // int32_data carries every type of 32 bits or less (f16/bf16 as their bit patterns).
        _ => varints_to_bytes(&t.int32_data, dtype.size(), bytes),
    }
}

/// float_data / double_data: packed runs are already little-endian bytes.
fn fixed_width(pieces: &[Piece], width: usize, model: &Blob) -> Result<ByteView, String> {
    if let [Piece::Packed(range)] = pieces {
        if !range.len().is_multiple_of(width) {
            return Err(format!("packed data length {} is not a multiple of {width}", range.len()));
        }
        return model.view(range.clone()).ok_or_else(|| "packed data lies outside the file".to_string());
    }
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Packed(range) => {
                let chunk = model.as_slice().get(range.clone()).ok_or("packed data lies outside the file")?;
                if !chunk.len().is_multiple_of(width) {
                    return Err(format!("packed data length {} is not a multiple of {width}", chunk.len()));
                }
                out.extend_from_slice(chunk);
            }
            Piece::Single(bits) => out.extend_from_slice(&bits.to_le_bytes()[..width]),
        }
    }
    Ok(ByteView::from_vec(out))
}

/// Varint fields: each value keeps its low `width` bytes (two's complement truncation gives the
/// right bits for every signed and unsigned type narrower than the wire's 64 bits).
fn varints_to_bytes(pieces: &[Piece], width: usize, bytes: &[u8]) -> Result<ByteView, String> {
    let mut out = Vec::new();
    let mut push = |v: u64| out.extend_from_slice(&v.to_le_bytes()[..width]);
    for piece in pieces {
        match piece {
            Piece::Packed(range) => {
                for value in packed_varints(bytes, range.clone()) {
                    push(value.map_err(|e| e.to_string())?);
                }
            }
            Piece::Single(v) => push(*v),
        }
    }
    Ok(ByteView::from_vec(out))
}
