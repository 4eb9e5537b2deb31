#!/usr/bin/env python3
"""Times two builds of the `ferrograd` command on the same jobs, alternating them round by round
(fresh processes), and prints each job's median time of both and the ratio new / old (below 1:
the new build is faster). For checking that a change costs nothing measurable:

    python3 scripts/compare_binaries.py OLD_BINARY NEW_BINARY [--rounds 5] [--threads 2]

Run from the repository root (the jobs read the bundled data)."""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time

JOBS = {
    "mlp train, 1 epoch": ["train", "--epochs", "1"],
    "lenet5 train, 10000 images": ["train", "--model", "lenet5", "--epochs", "1",
                                   "--train-subset", "10000"],
    "gpt train, 60 iterations": ["gpt", "train", "--max-iters", "60", "--eval-interval", "60",
                                 "--eval-iters", "2"],
}


def run(binary, args, threads, out):
    t = time.perf_counter()
    p = subprocess.run([binary, *args, "--threads", str(threads),
                        "--out" if args[0] == "gpt" else "--save", out],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"{binary} {' '.join(args)} failed: {p.stderr.strip()}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = f"{d}/w.safetensors"
        for name, args in JOBS.items():
            times = {"old": [], "new": []}
            for r in range(a.rounds):
                order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
                for side in order:
                    times[side].append(run(getattr(a, side), args, a.threads, out))
            old, new = statistics.median(times["old"]), statistics.median(times["new"])
            print(f"{name}: old {old:.2f} s, new {new:.2f} s, ratio {new / old:.3f} "
                  f"(median of {a.rounds}, {a.threads} threads)")


if __name__ == "__main__":
    main()
