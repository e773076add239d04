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
/// Only the primary backends (Vulkan, Metal, DX12: what burn's wgpu device runs on) are asked.
/// Probing the GL backend goes through EGL, whose Wayland platform prints "XDG_RUNTIME_DIR is
/// invalid or not set" twice on headless machines, noise on every successful `--device auto`.
#[cfg(feature = "gui")]
pub fn hardware_gpu() -> Option<String> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(desc);
    let adapters = block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters.iter().map(|a| a.get_info()).find(|info| info.device_type != wgpu::DeviceType::Cpu).map(|info| info.name)
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
