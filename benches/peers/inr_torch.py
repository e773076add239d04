#!/usr/bin/env python3
"""PyTorch peer of gmnscope's INR fitter (benches/inr_fit.rs): the same SIREN recipe as ONE
batched model, as a user who knows PyTorch would write it.

B SIRENs 2-32-32-1 (omega_0 = 30 in both sine layers, linear output + 0.5) are three batched
weight tensors trained together with torch.bmm; each INR's loss is its own mean squared error
over the 28 x 28 pixels and the batch loss is their sum (so each INR gets the gradient it would
get alone); torch.optim.Adam (lr from the command line, PyTorch defaults otherwise) for a fixed
number of steps. Initial weights, images and coordinates are the ones the Rust bench wrote
(safetensors), so both fitters start from the same point.

Prints one JSON line: {"seconds": best wall time over repeats, "psnr": mean final PSNR (dB),
"torch": version, "threads": n}.

Usage: inr_torch.py DATA.safetensors STEPS LR [repeats]
"""
import json
import sys
import time

import torch
from safetensors.torch import load_file


def fit(data, steps, lr):
    w1 = data["w1"].clone().requires_grad_(True)  # [B, 32, 2]  (out, in), as PyTorch stores Linear
    b1 = data["b1"].clone().requires_grad_(True)  # [B, 32]
    w2 = data["w2"].clone().requires_grad_(True)  # [B, 32, 32]
    b2 = data["b2"].clone().requires_grad_(True)
    w3 = data["w3"].clone().requires_grad_(True)  # [B, 1, 32]
    b3 = data["b3"].clone().requires_grad_(True)  # [B, 1]
    coords = data["coords"]  # [P, 2]
    target = data["images"]  # [B, P]
    b = target.shape[0]
    x = coords.unsqueeze(0).expand(b, -1, -1)  # [B, P, 2]
    params = [w1, b1, w2, b2, w3, b3]
    opt = torch.optim.Adam(params, lr=lr)

    def forward():
        h = torch.sin(30.0 * (torch.bmm(x, w1.transpose(1, 2)) + b1.unsqueeze(1)))
        h = torch.sin(30.0 * (torch.bmm(h, w2.transpose(1, 2)) + b2.unsqueeze(1)))
        return (torch.bmm(h, w3.transpose(1, 2)) + b3.unsqueeze(1)).squeeze(-1) + 0.5

    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = ((forward() - target) ** 2).mean(dim=1).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = ((forward() - target) ** 2).mean(dim=1).clamp_min(1e-12)
        return float((10.0 * torch.log10(1.0 / mse)).mean())


def main():
    data = load_file(sys.argv[1])
    steps, lr = int(sys.argv[2]), float(sys.argv[3])
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    best, psnr = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        psnr = fit(data, steps, lr)
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"seconds": best, "psnr": psnr, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
