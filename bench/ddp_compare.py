#!/usr/bin/env python3
"""Data-parallel training, ferrograd over MPI against PyTorch DDP (gloo), side by side in one run.

Usage: python3 bench/ddp_compare.py --ferrograd target/release/ferrograd --python PY [--rounds 5]
  (the ferrograd binary built with `cargo build --release -p ferrograd-cli --features mpi`; PY a
  Python with torch; mpirun from Open MPI)

Each row is one epoch of MNIST (60,000 images) with SGD momentum 0.9 at 32 images per rank, one
thread per rank, the models of bench/torch_ref.py:
  - ferrograd: `mpirun -n 2 ferrograd train --distributed --model M --batch-size 32 --threads 1`,
    the epoch's time from its metrics (the epoch row's images per second);
  - PyTorch: `torchrun --nproc-per-node 2 bench/ddp_torch.py M 32` (DDP, gloo, DistributedSampler).
The 1-rank rows are one process at 64 images a step and one thread (no mpirun, no torchrun), for
the scaling (1-rank time over 2-rank time, each side its own). Rounds alternate which side goes
first; a row's ratio is the median of the rounds' ratios (ferrograd's time over PyTorch's in the
same round). Writes bench/results-ddp.json with every round's times and ferrograd's report of the
share of a step spent waiting on communication (rank 0's).
"""
import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "data", "mnist")
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1"}


def run(cmd):
    env = dict(os.environ, **MPI_ENV)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def ours(binary, model, ranks):
    with tempfile.TemporaryDirectory() as d:
        m = os.path.join(d, "m.csv")
        args = [binary, "train", "--model", model, "--epochs", "1", "--threads", "1", "--metrics", m,
                "--data-dir", DATA]
        if ranks > 1:
            cmd = ["mpirun", "-n", str(ranks), "--oversubscribe"] + args + ["--distributed", "--batch-size", "32"]
        else:
            cmd = args + ["--batch-size", "64"]
        out = run(cmd)
        with open(m) as f:
            row = [r for r in csv.DictReader(f) if r["kind"] == "epoch"][-1]
        w = re.search(r"of which ([0-9.]+)% waiting", out)
        return 60000 / float(row["samples_per_s"]), (float(w.group(1)) if w else None)


def torch(python, model, ranks):
    script = os.path.join(HERE, "ddp_torch.py")
    if ranks > 1:
        cmd = [python, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), script, model, "32", DATA]
    else:
        cmd = [python, script, model, "64", DATA]
    out = run(cmd)
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    return json.loads(line)["seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferrograd", default=os.path.join(ROOT, "target", "release", "ferrograd"))
    ap.add_argument("--python", default="python3")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    rows = []
    print(f"{'epoch of MNIST, 1 thread a rank':<42} {'ferrograd s':>12} {'PyTorch s':>10} {'ratio':>6} {'waiting':>8}")
    for model in ["mlp", "lenet5"]:
        for ranks in [2, 1]:
            f_s, t_s, ratios, waits = [], [], [], []
            for r in range(a.rounds):
                if r % 2 == 0:
                    f, w = ours(a.ferrograd, model, ranks)
                    t = torch(a.python, model, ranks)
                else:
                    t = torch(a.python, model, ranks)
                    f, w = ours(a.ferrograd, model, ranks)
                f_s.append(f)
                t_s.append(t)
                ratios.append(f / t)
                if w is not None:
                    waits.append(w)
            row = {
                "row": f"{model} {ranks} rank{'s' if ranks > 1 else ''}, batch {32 if ranks > 1 else 64} a step"
                + (" per rank" if ranks > 1 else ""),
                "model": model,
                "ranks": ranks,
                "ferrograd_seconds": f_s,
                "torch_seconds": t_s,
                "ratios": ratios,
                "ratio": statistics.median(ratios),
                "ferrograd_median": statistics.median(f_s),
                "torch_median": statistics.median(t_s),
                "waiting_percent": statistics.median(waits) if waits else None,
            }
            rows.append(row)
            wait = f"{row['waiting_percent']:.1f}%" if waits else ""
            print(f"{row['row']:<42} {row['ferrograd_median']:>12.3f} {row['torch_median']:>10.3f} {row['ratio']:>6.2f} {wait:>8}")
    scaling = {}
    for model in ["mlp", "lenet5"]:
        two = next(r for r in rows if r["model"] == model and r["ranks"] == 2)
        one = next(r for r in rows if r["model"] == model and r["ranks"] == 1)
        scaling[model] = {
            "ferrograd": one["ferrograd_median"] / two["ferrograd_median"],
            "torch": one["torch_median"] / two["torch_median"],
        }
        print(f"scaling {model} (1-rank time / 2-rank time): ferrograd {scaling[model]['ferrograd']:.2f}, "
              f"PyTorch {scaling[model]['torch']:.2f}")
    torch_version = subprocess.run([a.python, "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    mpi_version = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    out = {"rounds": a.rounds, "torch": torch_version, "mpi": mpi_version, "cores": os.cpu_count(),
           "rows": rows, "scaling": scaling}
    path = os.path.join(HERE, "results-ddp.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
