//! The work budget of one pickle: how much memory and work a pickle of `n` bytes may cost.
//!
//! A pickle is a program, and a few bytes of it can ask for a lot: `]` (one byte) builds an empty
//! list (~100 bytes of memory), `2` (DUP) grows the stack by a value, a memoized 1 MB key can be
//! repeated at every level of a nested dict. Without a budget a 100 KB compressed pickle aborts the
//! process with "memory allocation failed". So the unpickler and the state-dict walker estimate
//! what they keep (arena objects, container items, string bytes, memo entries, the stack's
//! high-water mark, tensor names) and refuse the file once the estimate passes
//! [`memory_limit`]; element copies and hashed key bytes draw on [`work_limit`]. Both grow
//! linearly with the pickle's length, with a floor so small pickles never come near them.
//!
//! The pickles torch wrote for our fixtures cost 16 to 23 estimated bytes per pickle byte (torch
//! memoizes nearly every object, and a memo entry is ~36 bytes for a 1- or 2-byte opcode); the
//! limit leaves about three times that, and a unit test keeps them under half of it. Cheap
//! opcodes that allocate (`]`, `)`, `}`: ~100 bytes each) pass it; DUP (24 bytes) does not, so
//! an uncompressed pickle's memory stays within this multiple, and a deflated pickle is held to
//! [`super::zipfile::PICKLE_RATIO`] first.

/// Estimated bytes of memory a pickle may cost per byte of its stream.
pub const MEMORY_PER_BYTE: usize = 64;
/// Memory every pickle may use whatever its length.
pub const MEMORY_FLOOR: usize = 64 << 20;
/// Element copies and hashed key bytes a pickle may cost per byte of its stream.
pub const WORK_PER_BYTE: usize = 8;
/// Work every pickle may do whatever its length.
pub const WORK_FLOOR: usize = 16 << 20;

/// The memory estimate a pickle of `len` bytes may reach.
pub fn memory_limit(len: usize) -> usize {
    len.saturating_mul(MEMORY_PER_BYTE).saturating_add(MEMORY_FLOOR)
}

/// The copies and hashing a pickle of `len` bytes may cost.
pub fn work_limit(len: usize) -> usize {
    len.saturating_mul(WORK_PER_BYTE).saturating_add(WORK_FLOOR)
}

/// How the limit is stated in errors: "N bytes (64 per byte of this M-byte pickle + 64 MiB)".
pub fn describe_memory(len: usize) -> String {
    format!(
        "{} bytes ({MEMORY_PER_BYTE} per byte of this {}-byte pickle + {} MiB)",
        crate::text::thousands(memory_limit(len) as u64),
        crate::text::thousands(len as u64),
        MEMORY_FLOOR >> 20
    )
}

/// A countdown of estimated bytes; `spend` fails once it would go below zero.
#[derive(Debug)]
pub struct Meter {
    left: usize,
}

impl Meter {
    pub fn new(limit: usize) -> Self {
        Self { left: limit }
    }

    /// Takes `amount` from what is left; `false` (and nothing taken) when it does not fit.
    #[must_use]
    pub fn spend(&mut self, amount: usize) -> bool {
        match self.left.checked_sub(amount) {
            Some(left) => {
                self.left = left;
                true
            }
            None => false,
        }
    }

    /// What is left.
    #[cfg(test)]
    pub fn left(&self) -> usize {
        self.left
    }
}
