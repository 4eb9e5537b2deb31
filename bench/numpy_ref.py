#!/usr/bin/env python3
"""Reference timings for bench/src/main.rs: numpy sgemm and elementwise ops.

Usage: numpy_ref.py gemm N REPS | numpy_ref.py elementwise N REPS
Prints one JSON object with the sorted per-repetition times in seconds. Thread count comes from
the environment (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS), set by the caller.
"""
import json
import sys
import time

import numpy as np


def timeit(fn, reps):
    # warm-up: at least 3 calls and 0.3 s, as the Rust side
    t0, calls = time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - t0 < 0.3:
        fn()
        calls += 1
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)


def main():
    kind, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(0)
    if kind == "gemm":
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        times = timeit(lambda: a @ b, reps)
    elif kind == "elementwise":
        a = rng.standard_normal(n, dtype=np.float32)
        b = rng.standard_normal(n, dtype=np.float32)
        times = {
            "add": timeit(lambda: a + b, reps),
            "mul": timeit(lambda: a * b, reps),
            "exp": timeit(lambda: np.exp(a), reps),
            "relu": timeit(lambda: np.maximum(a, 0), reps),
        }
    else:
        raise SystemExit(f"unknown benchmark {kind}")
    print(json.dumps({"times": times, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
