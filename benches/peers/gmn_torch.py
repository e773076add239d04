#!/usr/bin/env python3
"""PyTorch peer of gmnscope's GMN training step (benches/gmn_train.rs).

The same model as `train`'s (src/models; the EdgeMPNN block, or with `--model pna` PNA's
aggregation: mean, std, max and min, each also times the amplification scaler; factored algebra,
node-major layout):
messages both ways (every edge also reversed, reversed edges with their own type rows), weights
standardised per edge class (`scale * w + shift`), node encoder sin(Linear(1,h)(layer)) +
sin(Linear(1,h)(order)) + type table + the neuron's own standardised bias times a learned row;
edge encoder Linear(1,h)(standardised weight) + sin(Linear(1,h)(layer)) + type table +
Linear(3,h)(position); L blocks with pre-LayerNorm, SiLU and residuals, whose edge-MLP first
linear is split into per-node terms gathered to the edges and whose message-MLP last linear runs
after the mean; final LayerNorms, readout of the mean over nodes, over edges and over the output
neurons, MLP head, cross-entropy, AdamW (lr 1e-3, wd 5e-4) with global gradient clipping at 10.
Every index and constant (edge type rows, standardisation, bias edges, output mask) is computed by
gmnscope's own code and read from the data file.

Reads the graphs the Rust bench wrote (safetensors), trains `--warmup` + `--steps` steps on
batches of `--batch` graphs, prints one JSON line: {"graphs_per_s": ..., "step_s": ...}.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import load_file


class Dense(nn.Module):
    def __init__(self, d_in, d_out, bias=True):
        super().__init__()
        bound = 1.0 / max(d_in, 1) ** 0.5
        self.weight = nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(d_out).uniform_(-bound, bound)) if bias else None

    def forward(self, x):
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y


def projection(d_in, d_out, fan_in):
    bound = 1.0 / fan_in ** 0.5
    return nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))


def pna_aggregates(t, z, mean, n, b, h):
    """PNA's aggregates of the messages z [E, B*h] at every node as neural-graphs computes them:
    [mean, std, max, min] and the same four times the amplification scaler log(d+1)/delta, per
    copy laid out [N, B, 8, h]; zero at nodes without incoming edges. PyTorch's scatter_reduce
    (amax/amin) is the strongest built-in for max and min, gradients included."""
    dst = t["dst"]
    bh = b * h
    second = torch.zeros(n, bh, dtype=z.dtype).index_add_(0, dst, z * z) * t["inv_in_degree"]
    has_in = t["has_in_rows"]
    std = ((second - mean * mean).clamp_min(0.0) + 1e-5).sqrt() * has_in
    index = dst.reshape(-1, 1).expand(-1, bh)
    mx = torch.zeros(n, bh, dtype=z.dtype).scatter_reduce(0, index, z, "amax", include_self=False) * has_in
    mn = torch.zeros(n, bh, dtype=z.dtype).scatter_reduce(0, index, z, "amin", include_self=False) * has_in
    s = t["amplification"]
    parts = [mean, std, mx, mn, mean * s, std * s, mx * s, mn * s]
    return torch.stack([p.reshape(n * b, h) for p in parts], dim=1).reshape(n * b, 8 * h)


class Block(nn.Module):
    def __init__(self, h, pna=False):
        super().__init__()
        self.pna = pna
        self.node_norm = nn.LayerNorm(h)
        self.edge_norm = nn.LayerNorm(h)
        self.edge_src = projection(h, h, 3 * h)
        self.edge_dst = projection(h, h, 3 * h)
        self.edge_self = Dense(h, h)
        self.edge_out = Dense(h, h)
        self.msg_src = projection(h, h, 2 * h)
        self.msg_edge = Dense(h, h)
        self.msg_out = Dense(8 * h if pna else h, h)
        self.node_self = Dense(h, h)
        self.node_agg = projection(h, h, 2 * h)
        self.node_out = Dense(h, h)

    def forward(self, t, x, e):
        n, b, h = x.shape
        m = t["src"].shape[0]
        xn = self.node_norm(x).reshape(n * b, h)
        en = self.edge_norm(e).reshape(m * b, h)

        def to_edges(w, index):
            return (xn @ w).reshape(n, b * h).index_select(0, index).reshape(m * b, h)

        z = F.silu(to_edges(self.edge_src, t["src"]) + to_edges(self.edge_dst, t["dst"]) + self.edge_self(en))
        e = e + self.edge_out(z).reshape(m, b, h)
        z = F.silu(to_edges(self.msg_src, t["src"]) + self.msg_edge(e.reshape(m * b, h)))
        z = z.reshape(m, b * h)
        s = torch.zeros(n, b * h, dtype=z.dtype).index_add_(0, t["dst"], z)
        mean = s * t["inv_in_degree"]
        aggregates = pna_aggregates(t, z, mean, n, b, h) if self.pna else mean.reshape(n * b, h)
        agg = (aggregates @ self.msg_out.weight).reshape(n, b, h) + self.msg_out.bias.reshape(1, 1, h) * t["has_in"]
        z = F.silu(self.node_self(xn) + agg.reshape(n * b, h) @ self.node_agg)
        x = x + self.node_out(z).reshape(n, b, h)
        return x, e


class Gmn(nn.Module):
    def __init__(self, h, layers, outputs, edge_types, node_types=17, pna=False):
        super().__init__()
        self.h = h
        self.node_layer = Dense(1, h)
        self.node_order = Dense(1, h)
        self.node_types = nn.Parameter(torch.randn(node_types, h))
        self.edge_weight = Dense(1, h)
        self.edge_layer = Dense(1, h, bias=False)
        self.edge_types = nn.Parameter(torch.randn(edge_types, h))
        self.edge_position = Dense(3, h, bias=False)
        self.blocks = nn.ModuleList([Block(h, pna) for _ in range(layers)])
        self.final_node_norm = nn.LayerNorm(h)
        self.final_edge_norm = nn.LayerNorm(h)
        self.bias_row = projection(1, h, 1)
        self.head_hidden = Dense(3 * h, h)
        self.head_out = Dense(h, outputs)

    def forward(self, t, weights):
        # weights: [E, B, 1], already gathered to the (both-ways) edges
        h = self.h
        m, b, _ = weights.shape
        standardised = weights * t["edge_scale"].reshape(m, 1, 1) + t["edge_shift"].reshape(m, 1, 1)
        x0 = (torch.sin(self.node_layer(t["node_layer"])) + torch.sin(self.node_order(t["node_order"]))
              + self.node_types.index_select(0, t["node_type"]))
        x = x0.reshape(-1, 1, h).repeat(1, b, 1)
        x = x + (standardised.index_select(0, t["bias_edge"]) * t["has_bias"]) * self.bias_row.reshape(1, 1, h)
        fixed = (torch.sin(self.edge_layer(t["edge_layer"])) + self.edge_types.index_select(0, t["edge_type"])
                 + self.edge_position(t["edge_position"]) + self.edge_weight.bias)
        e = standardised * self.edge_weight.weight.reshape(1, 1, h) + fixed.reshape(m, 1, h)
        for block in self.blocks:
            x, e = block(t, x, e)
        xn = self.final_node_norm(x)
        outputs = (xn * t["is_output"]).sum(0) * t["inv_outputs"]
        emb = torch.cat([xn.mean(0), self.final_edge_norm(e).mean(0), outputs], dim=1)
        return self.head_out(F.silu(self.head_hidden(emb)))


def amplification(in_degree):
    """log(d + 1) / delta, delta the mean of log(d + 1) over nodes with incoming edges (0 without)."""
    logs = torch.log(in_degree + 1.0)
    has = in_degree > 0
    delta = logs[has].mean() if has.any() else torch.tensor(1.0)
    return torch.where(has, logs / delta, torch.zeros_like(logs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", choices=["edge-mpnn", "pna"], default="edge-mpnn")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    d = load_file(args.data)
    src, dst = torch.from_numpy(d["src"]).long(), torch.from_numpy(d["dst"]).long()
    nodes = torch.from_numpy(d["node_features"]).long()  # [N, 3]
    edges = torch.from_numpy(d["edge_features"]).float()  # [E, 5]
    all_weights = torch.from_numpy(d["weights"]).float()  # [G, E]
    labels = torch.from_numpy(d["labels"]).long()
    scales = torch.from_numpy(d["edge_scale"]).float().reshape(-1, 1)
    shifts = torch.from_numpy(d["edge_shift"]).float().reshape(-1, 1)
    weight_index = torch.from_numpy(d["weight_index"]).long()
    is_output = torch.from_numpy(d["is_output"]).float()
    n = nodes.shape[0]
    in_degree = torch.zeros(n).index_add_(0, dst, torch.ones(dst.shape[0]))
    t = {
        "src": src,
        "dst": dst,
        "node_layer": nodes[:, 0:1].float(),
        "node_order": nodes[:, 1:2].float(),
        "node_type": nodes[:, 2].clamp(0, 16),
        "edge_layer": edges[:, 0:1],
        "edge_type": torch.from_numpy(d["edge_type_row"]).long(),
        "edge_position": edges[:, 2:5].contiguous(),
        "edge_scale": scales,
        "edge_shift": shifts,
        "bias_edge": torch.from_numpy(d["bias_edge"]).long(),
        "has_bias": torch.from_numpy(d["has_bias"]).float().reshape(n, 1, 1),
        "is_output": is_output.reshape(n, 1, 1),
        "inv_outputs": 1.0 / is_output.sum().clamp(min=1),
        "inv_in_degree": torch.where(in_degree > 0, 1.0 / in_degree.clamp(min=1), torch.zeros(n)).reshape(n, 1),
        "has_in": (in_degree > 0).float().reshape(n, 1, 1),
        "has_in_rows": (in_degree > 0).float().reshape(n, 1),
        "amplification": amplification(in_degree).reshape(n, 1),
    }
    classes = int(labels.max().item()) + 1
    type_rows = int(d["type_rows"][0])
    model = Gmn(args.hidden, args.layers, max(classes, 2), type_rows, pna=args.model == "pna")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    g = all_weights.shape[0]

    def step(i):
        idx = torch.arange(i * args.batch, (i + 1) * args.batch) % g
        w = all_weights[idx].index_select(1, weight_index).t().contiguous().unsqueeze(-1)  # [E, B, 1]
        loss = F.cross_entropy(model(t, w), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        return loss.item()

    for i in range(args.warmup):
        step(i)
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        step(args.warmup + i)
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({"graphs_per_s": args.batch / median, "step_s": median, "threads": args.threads,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
