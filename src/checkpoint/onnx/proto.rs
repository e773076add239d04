//! A minimal protobuf wire-format decoder: enough to walk ONNX messages without generated code.
//!
//! Owns: varints (with overflow checks), the four wire types ONNX uses (varint, 64-bit,
//! length-delimited, 32-bit) and bounds checks. [`Fields`] iterates over the fields of one message
//! without recursing; callers decide which length-delimited fields are sub-messages, so nesting
//! depth is fixed by the schema code that uses it, never by the input. Ranges are absolute offsets
//! into the buffer the decoding started from, so payloads can become zero-copy views.

use std::fmt;
use std::ops::Range;

/// A malformed message, with the byte offset where decoding stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed protobuf at byte {}: {}", self.offset, self.message)
    }
}

pub type DecodeResult<T> = Result<T, DecodeError>;

fn error<T>(offset: usize, message: impl Into<String>) -> DecodeResult<T> {
    Err(DecodeError { offset, message: message.into() })
}

/// The payload of one field, by wire type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Varint(u64),
    Fixed64(u64),
    /// Length-delimited: bytes, strings, sub-messages and packed repeated scalars.
    Bytes(Range<usize>),
    Fixed32(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub number: u32,
    pub value: Value,
    /// Offset of the field's tag (for error messages).
    pub offset: usize,
}

impl Field {
    fn wrong_type<T>(&self, expected: &str) -> DecodeResult<T> {
        error(self.offset, format!("field {} should be {expected}", self.number))
    }

    pub fn varint(&self) -> DecodeResult<u64> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => self.wrong_type("a varint"),
        }
    }

    pub fn bytes(&self) -> DecodeResult<Range<usize>> {
        match &self.value {
            Value::Bytes(range) => Ok(range.clone()),
            _ => self.wrong_type("length-delimited"),
        }
    }

    pub fn string(&self, buf: &[u8]) -> DecodeResult<String> {
        let range = self.bytes()?;
        let bytes = buf
            .get(range.clone())
            .ok_or(DecodeError { offset: range.start, message: "string lies outside the buffer".into() })?;
        String::from_utf8(bytes.to_vec()).or_else(|_| error(range.start, format!("field {} is not UTF-8", self.number)))
    }
}

/// Reads a base-128 varint at `*pos` (not beyond `end`), advancing `pos`.
pub fn read_varint(buf: &[u8], pos: &mut usize, end: usize) -> DecodeResult<u64> {
    let start = *pos;
    let mut value = 0u64;
    for i in 0..10 {
        if *pos >= end {
            return error(start, "varint runs past the end of its message");
        }
        let Some(&byte) = buf.get(*pos) else {
            return error(start, "varint runs past the end of the buffer");
        };
        *pos += 1;
        // The 10th byte may only carry the 64th bit.
        if i == 9 && byte > 1 {
            return error(start, "varint overflows 64 bits");
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    error(start, "varint longer than 10 bytes")
}

/// The fields of one message occupying `buf[range]`, in order. Stops after the first error.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Fields<'a> {
    /// Iterates over `buf[range]`; a range outside `buf` yields an error on first use.
    pub fn new(buf: &'a [u8], range: Range<usize>) -> Self {
        Self { buf, pos: range.start, end: range.end }
    }

    fn next_field(&mut self) -> DecodeResult<Field> {
        if self.end > self.buf.len() || self.pos > self.end {
            return error(self.pos, "message range lies outside the buffer");
        }
        let offset = self.pos;
        let tag = read_varint(self.buf, &mut self.pos, self.end)?;
        let number = u32::try_from(tag >> 3).ok().filter(|n| (1..1 << 29).contains(n));
        let Some(number) = number else {
            return error(offset, format!("invalid field number {}", tag >> 3));
        };
        let value = match tag & 7 {
            0 => Value::Varint(read_varint(self.buf, &mut self.pos, self.end)?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take::<8>(offset)?)),
            2 => {
                let len = read_varint(self.buf, &mut self.pos, self.end)?;
                let end =
                    usize::try_from(len).ok().and_then(|len| self.pos.checked_add(len)).filter(|&e| e <= self.end);
                let Some(end) = end else {
                    return error(offset, format!("field {number}: length {len} runs past the end of its message"));
                };
                let range = self.pos..end;
                self.pos = end;
                Value::Bytes(range)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take::<4>(offset)?)),
            3 | 4 => return error(offset, format!("field {number}: protobuf groups are not supported")),
            other => return error(offset, format!("field {number}: invalid wire type {other}")),
        };
        Ok(Field { number, value, offset })
    }

    fn take<const N: usize>(&mut self, offset: usize) -> DecodeResult<[u8; N]> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.end);
        let bytes = end.and_then(|e| self.buf.get(self.pos..e)).and_then(|b| <[u8; N]>::try_from(b).ok());
        let Some(bytes) = bytes else {
            return error(offset, format!("{N}-byte field runs past the end of its message"));
        };
        self.pos += N;
        Ok(bytes)
    }
}

impl Iterator for Fields<'_> {
    type Item = DecodeResult<Field>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos == self.end {
            return None;
        }
        let field = self.next_field();
        if field.is_err() {
            self.pos = self.end; // stop: the rest of the message cannot be framed
        }
        Some(field)
    }
}

/// Varints packed back to back in `buf[range]` (a packed repeated int field).
pub fn packed_varints(buf: &[u8], range: Range<usize>) -> impl Iterator<Item = DecodeResult<u64>> + '_ {
    let mut pos = range.start;
    let end = range.end;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= end {
            return None;
        }
        let value = read_varint(buf, &mut pos, end);
        failed = value.is_err();
        Some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn fields(buf: &[u8]) -> DecodeResult<Vec<Field>> {
        Fields::new(buf, 0..buf.len()).collect()
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, i64::MAX as u64, u64::MAX] {
            let bytes = varint(v);
            let mut pos = 0;
            assert_eq!(read_varint(&bytes, &mut pos, bytes.len()), Ok(v));
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn decodes_all_wire_types() {
        let mut buf = vec![0x08, 0x96, 0x01]; // field 1 varint 150
        buf.extend([0x11]); // field 2 fixed64
        buf.extend(1.5f64.to_le_bytes());
        buf.extend([0x1a, 3, b'a', b'b', b'c']); // field 3 bytes
        buf.extend([0x25]); // field 4 fixed32
        buf.extend(2.5f32.to_le_bytes());
        let f = fields(&buf).expect("valid");
        assert_eq!(f[0].value, Value::Varint(150));
        assert_eq!(f[1].value, Value::Fixed64(1.5f64.to_bits()));
        assert_eq!(f[2].value, Value::Bytes(14..17));
        assert_eq!(f[2].string(&buf), Ok("abc".into()));
        assert_eq!(f[3].value, Value::Fixed32(2.5f32.to_bits()));
        assert!(f[0].bytes().is_err(), "wire type mismatch is an error");
    }

    #[test]
    fn malformed_input_is_an_error() {
        let overflow = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(fields(&overflow).expect_err("overflow").message.contains("overflows"));
        let eleven = [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert!(fields(&eleven).is_err());
        assert!(fields(&[0x08, 0x80]).is_err(), "truncated varint");
        assert!(fields(&[0x1a, 0x05, b'a']).expect_err("long").message.contains("length 5"));
        let huge_len = [0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(fields(&huge_len).is_err(), "length near u64::MAX must not overflow");
        assert!(fields(&[0x11, 1, 2, 3]).is_err(), "truncated fixed64");
        assert!(fields(&[0x25, 1]).is_err(), "truncated fixed32");
        assert!(fields(&[0x0b]).is_err(), "group start");
        assert!(fields(&[0x0e]).is_err(), "wire type 6");
        assert!(fields(&[0x00]).is_err(), "field number 0");
        assert!(Fields::new(&[1, 2], 0..5).next().is_some_and(|f| f.is_err()), "range past buffer");
        // Packed varints with a truncated last element.
        let bad = [0x01, 0x80];
        let values: Vec<_> = packed_varints(&bad, 0..2).collect();
        assert_eq!(values.len(), 2);
        assert!(values[1].is_err());
    }
}
