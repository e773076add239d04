#!/usr/bin/env python3
"""Weakly connected components, DAG check and nodes on no edge of a `gmnscope graph` export:
    gmnscope graph --out g.npz MODEL && python3 scripts/check_graph_export.py g.npz
How the real-file numbers in the README were measured (needs numpy only)."""
import sys
import numpy as np

z = np.load(sys.argv[1])
n = z["node_features"].shape[0]
src, dst = z["edge_index"]
parent = np.arange(n)
def find(x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root
for a, b in zip(src.tolist(), dst.tolist()):
    ra, rb = find(a), find(b)
    if ra != rb:
        parent[ra] = rb
roots = {find(i) for i in range(n)}
# Kahn's algorithm over unique edges.
pairs = np.unique(np.stack([src, dst], 1), axis=0)
indeg = np.bincount(pairs[:, 1], minlength=n)
order = np.argsort(pairs[:, 0], kind="stable")
ps = pairs[order]
starts = np.searchsorted(ps[:, 0], np.arange(n + 1))
stack = [i for i in range(n) if indeg[i] == 0]
seen = 0
while stack:
    v = stack.pop()
    seen += 1
    for w in ps[starts[v]:starts[v + 1], 1]:
        indeg[w] -= 1
        if indeg[w] == 0:
            stack.append(w)
touched = np.zeros(n, bool); touched[src] = True; touched[dst] = True
print(f"{sys.argv[1]}: {n} nodes, {len(src)} edges, components {len(roots)}, DAG {seen == n}, nodes on no edge {int((~touched).sum())}")
