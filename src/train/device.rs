//! Choosing the burn device: wgpu on a hardware GPU adapter, otherwise the CPU (burn-flex
//! tensors; the trainer runs its steps on the fused engine there when it applies).
//!
//! A software adapter (Mesa lavapipe, `DeviceType::Cpu`) runs wgpu but silently returns wrong
//! numbers for long loops (DESIGN.md), so `Auto` treats it as "no GPU". `--device wgpu` still
//! forces wgpu on any adapter.

use burn::tensor::{Device, DeviceKind};

use super::config::DeviceChoice;

/// The resolved device and a short name for logs (`flex`, `cpu`, `wgpu (NVIDIA ...)`), and
/// whether the fused CPU engine should run the steps.
pub fn resolve(choice: DeviceChoice) -> (Device, String, bool) {
    match choice {
        DeviceChoice::Flex => (Device::flex(), "flex".into(), false),
        DeviceChoice::Cpu => (Device::flex(), "cpu".into(), true),
        DeviceChoice::Wgpu => (Device::wgpu(DeviceKind::DefaultDevice), "wgpu".into(), false),
        DeviceChoice::Auto => match hardware_gpu() {
            Some(name) => (Device::wgpu(DeviceKind::DefaultDevice), format!("wgpu ({name})"), false),
            None => (Device::flex(), "cpu".into(), true),
        },
    }
}

/// The name of the first hardware (non-CPU) GPU adapter, if any.
///
/// Graphics drivers print to stderr while wgpu enumerates adapters: on a headless machine Mesa's
/// Wayland code says "XDG_RUNTIME_DIR is invalid or not set in the environment" twice, noise on
/// every successful `--device auto`. The probe's stderr is therefore held back and only lines
/// other than that known one are passed on.
///
/// Probed once per process (the answer does not change, and fd 2 is redirected only once).
#[cfg(feature = "gui")]
pub fn hardware_gpu() -> Option<String> {
    static FOUND: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FOUND.get_or_init(probe_hardware_gpu).clone()
}

#[cfg(feature = "gui")]
fn probe_hardware_gpu() -> Option<String> {
    filtered_stderr(|| {
        let instance = wgpu::Instance::default();
        let adapters = block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        adapters
            .iter()
            .map(|a| a.get_info())
            .find(|info| info.device_type != wgpu::DeviceType::Cpu)
            .map(|info| info.name)
    })
}

/// Lines driver code prints while probing that say nothing about the outcome.
const HARMLESS_PROBE_LINES: [&str; 1] = ["XDG_RUNTIME_DIR is invalid or not set in the environment"];

/// Runs `f` with file descriptor 2 pointed at an anonymous temp file, then restores it and
/// writes back whatever `f` printed except [`HARMLESS_PROBE_LINES`]. Process-wide: called once,
/// before the trainer reports anything.
#[cfg(all(feature = "gui", unix))]
fn filtered_stderr<T>(f: impl FnOnce() -> T) -> T {
    use std::io::{Read as _, Seek as _, Write as _};
    use std::os::fd::AsRawFd as _;

    /// Puts the saved descriptor back even if `f` panics.
    struct Restore(i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: `self.0` is the descriptor duplicated from 2 below; dup2 and close on it.
            unsafe {
                libc::dup2(self.0, 2);
                libc::close(self.0);
            }
        }
    }
    let Ok(mut capture) = tempfile_in_tmp() else { return f() };
    // SAFETY: duplicating fd 2 has no preconditions; a failure is checked.
    let saved = unsafe { libc::dup(2) };
    if saved < 0 {
        return f();
    }
    let _ = std::io::stderr().flush();
    // SAFETY: both descriptors are open; fd 2 now writes to the capture file.
    if unsafe { libc::dup2(capture.as_raw_fd(), 2) } < 0 {
        // SAFETY: `saved` was returned by dup above.
        unsafe { libc::close(saved) };
        return f();
    }
    let restore = Restore(saved);
    let out = f();
    let _ = std::io::stderr().flush();
    drop(restore);
    let mut text = String::new();
    if capture.rewind().is_ok() && capture.read_to_string(&mut text).is_ok() {
        let kept: Vec<&str> = text.lines().filter(|l| !HARMLESS_PROBE_LINES.iter().any(|h| l.contains(h))).collect();
        if !kept.is_empty() {
            let _ = writeln!(std::io::stderr(), "{}", kept.join("\n"));
        }
    }
    out
}

#[cfg(all(feature = "gui", not(unix)))]
fn filtered_stderr<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// An unnamed file in the temp directory (removed from the directory at once).
#[cfg(all(feature = "gui", unix))]
fn tempfile_in_tmp() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!(".gmnscope-probe-{}", std::process::id()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Without the `gui` feature we cannot ask wgpu for its adapters: stay on Flex.
#[cfg(not(feature = "gui"))]
pub fn hardware_gpu() -> Option<String> {
    None
}

/// Drives a future that needs no reactor (wgpu's adapter enumeration on native) to completion.
#[cfg(feature = "gui")]
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}
