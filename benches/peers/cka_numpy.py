#!/usr/bin/env python3
"""NumPy peer for benches/cka.rs: the linear-CKA matrix as a user would write it.

Loads A.npy and B.npy (float32, shape layers x n x p, written by the Rust benchmark from the same
seed), computes the full layer-by-layer linear-CKA matrix with the straightforward per-pair
function below (NumPy's default BLAS), and prints one JSON line: the best wall time over
`repeats` runs and the matrix, which the benchmark compares with its own.

Usage: cka_numpy.py A.npy B.npy [repeats]
"""

import json
import sys
import time

import numpy as np


def linear_cka(X, Y):
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    return np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))


def cka_matrix(A, B):
    return [[float(linear_cka(a, b)) for b in B] for a in A]


def main():
    A = np.load(sys.argv[1])
    B = np.load(sys.argv[2])
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    best = float("inf")
    matrix = None
    for _ in range(repeats):
        start = time.perf_counter()
        matrix = cka_matrix(A, B)
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"seconds": best, "numpy": np.__version__, "matrix": matrix}))


if __name__ == "__main__":
    main()
