//! glibc malloc settings for training on the CPU.
//!
//! A GMN step allocates and frees tensors of ~20 MB (`[E * B, h]` floats) dozens of times. Above
//! glibc's default mmap threshold each one is a fresh `mmap` + page faults + `munmap`; keeping
//! them in the heap (mmap threshold at its 32 MiB maximum, no trimming) measured ~+30% training
//! throughput on burn-flex (DESIGN.md). Process-wide and idempotent; a no-op off glibc.

/// Applies the settings once per process.
pub fn tune_for_training() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // glibc <malloc.h>: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3.
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            unsafe extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            // SAFETY: mallopt only changes allocator tuning parameters; both values are in the
            // ranges glibc accepts (the mmap threshold maximum is 32 MiB on 64-bit).
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
                mallopt(M_TRIM_THRESHOLD, i32::MAX);
            }
        });
    }
}
