//! Zeroed working buffers for packed row chunks and product blocks.
//!
//! Why not just `vec![0.0; len]`: the linear-CKA buffers are hundreds of MB, written once per
//! call, and on Linux a fresh allocation is faulted in 4 KiB page by page. On this project's
//! reference machine (a VM) that costs ~2 us per page, ~0.1 s per 200 MB buffer — as long as
//! packing the data itself. Large buffers are therefore anonymous memory maps with transparent
//! huge pages requested (`MADV_HUGEPAGE`; the kernel's default policy is often "madvise"), which
//! measured 0.15 s -> 0.05 s for packing one 10,000 x 5,120 f32 chunk. Anything that fails
//! (another OS, no memory map) falls back to a `Vec`.

use std::ops::{Deref, DerefMut};

use super::gemm::Real;

/// Buffers at least this large (bytes) are memory maps; smaller ones are `Vec`s.
const MAP_MIN_BYTES: usize = 4 << 20;

/// A zero-filled `[T]` of fixed length.
pub(crate) enum Scratch<T> {
    Vec(Vec<T>),
    #[cfg(target_os = "linux")]
    Map {
        map: memmap2::MmapMut,
        len: usize,
    },
}

impl<T: Real> Scratch<T> {
    pub fn zeroed(len: usize) -> Self {
        #[cfg(target_os = "linux")]
        if let Some(bytes) = len.checked_mul(size_of::<T>()).filter(|&b| b >= MAP_MIN_BYTES)
            && let Ok(map) = memmap2::MmapOptions::new().len(bytes).map_anon()
        {
            // Only a hint: without huge pages the map is an ordinary zeroed allocation.
            let _ = map.advise(memmap2::Advice::HugePage);
            return Scratch::Map { map, len };
        }
        Scratch::Vec(vec![T::default(); len])
    }
}

impl<T: Real> Deref for Scratch<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Scratch::Vec(v) => v,
            #[cfg(target_os = "linux")]
            // SAFETY: the map is page-aligned (so aligned for T), `len * size_of::<T>()` bytes
            // long, readable and zero-filled at creation. `Real` is implemented only for f32 and
            // f64, for which every bit pattern (and all-zero = 0.0) is a valid value.
            Scratch::Map { map, len } => unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<T>(), *len) },
        }
    }
}

impl<T: Real> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Scratch::Vec(v) => v,
            #[cfg(target_os = "linux")]
            // SAFETY: as in `deref`; the unique borrow of the map makes the slice unique.
            Scratch::Map { map, len } => unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<T>(), *len) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_are_zeroed_and_writable() {
        for len in [0, 3, MAP_MIN_BYTES / 4 + 5] {
            let mut s = Scratch::<f32>::zeroed(len);
            assert_eq!(s.len(), len);
            assert!(s.iter().all(|&v| v == 0.0));
            if let Some(last) = s.last_mut() {
                *last = 2.5;
                assert_eq!(s[len - 1], 2.5);
            }
        }
        let d = Scratch::<f64>::zeroed(MAP_MIN_BYTES / 8 * 3);
        assert!(d.iter().all(|&v| v == 0.0));
        #[cfg(target_os = "linux")]
        assert!(matches!(d, Scratch::Map { .. }));
    }
}
