//! Element types of stored tensors and their conversion to f32/f64.

/// Element type of a stored tensor (bytes are little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U64 => "u64",
            DType::U32 => "u32",
            DType::U16 => "u16",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }

    /// Converts little-endian bytes of this dtype to f64 (a trailing partial element is ignored).
    pub fn to_f64(self, bytes: &[u8]) -> Vec<f64> {
        fn conv<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
            bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunk of N bytes"))).collect()
        }
        match self {
            DType::F64 => conv(bytes, f64::from_le_bytes),
            DType::F32 => conv(bytes, |b| f32::from_le_bytes(b) as f64),
            DType::F16 => conv(bytes, |b| half::f16::from_le_bytes(b).to_f64()),
            DType::BF16 => conv(bytes, |b| half::bf16::from_le_bytes(b).to_f64()),
            DType::I64 => conv(bytes, |b| i64::from_le_bytes(b) as f64),
            DType::I32 => conv(bytes, |b| i32::from_le_bytes(b) as f64),
            DType::I16 => conv(bytes, |b| i16::from_le_bytes(b) as f64),
            DType::I8 => conv(bytes, |b: [u8; 1]| b[0] as i8 as f64),
            DType::U64 => conv(bytes, |b| u64::from_le_bytes(b) as f64),
            DType::U32 => conv(bytes, |b| u32::from_le_bytes(b) as f64),
            DType::U16 => conv(bytes, |b| u16::from_le_bytes(b) as f64),
            DType::U8 | DType::Bool => conv(bytes, |b: [u8; 1]| b[0] as f64),
        }
    }

    /// Converts little-endian bytes of this dtype to f32; f32 input is a plain copy.
    pub fn to_f32(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            DType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => other.to_f64(bytes).into_iter().map(|v| v as f32).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_match_reference_values() {
        let f16 = half::f16::from_f32(1.5).to_le_bytes();
        assert_eq!(DType::F16.to_f32(&f16), vec![1.5]);
        let bf = half::bf16::from_f32(-2.0).to_le_bytes();
        assert_eq!(DType::BF16.to_f64(&bf), vec![-2.0]);
        assert_eq!(DType::I8.to_f32(&[0xff]), vec![-1.0]);
        assert_eq!(DType::I64.to_f64(&(-7i64).to_le_bytes()), vec![-7.0]);
        assert_eq!(DType::F32.to_f32(&[0, 0, 0x80, 0x3f, 1]), vec![1.0], "partial trailing element ignored");
    }
}
