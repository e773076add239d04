#!/usr/bin/env bash
# Installs the system packages gmnscope needs on Debian/Ubuntu:
#  - Mesa's software Vulkan (lavapipe) so wgpu finds an adapter without a GPU,
#  - the X11/Wayland/xkb client libraries winit loads at run time,
#  - xvfb for the headless real-window smoke test,
#  - OpenBLAS, which the CKA engine loads at run time for its big matrix products (optional:
#    without it a pure-Rust GEMM is used),
#  - python3 + numpy for the benchmark peers (optional; benches only).
# Safe to run twice. Needs root (or sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  build-essential pkg-config
  mesa-vulkan-drivers libvulkan1 vulkan-tools
  libx11-6 libxcursor1 libxrandr2 libxi6 libx11-xcb1 libxkbcommon0 libxkbcommon-x11-0
  libwayland-client0 libwayland-cursor0 libwayland-egl1 libegl1 libgl1
  xvfb xauth
  libfontconfig1
  libopenblas0-pthread
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "setup.sh: system packages present"
