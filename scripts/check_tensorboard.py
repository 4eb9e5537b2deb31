"""Reads a ferrograd TensorBoard directory with TensorBoard's own reader (EventAccumulator, from
the `tensorboard` package on PyPI) and checks it against the metrics CSV of the same run: every
logged step's loss and learning rate, every epoch's accuracies, same steps, same values (to
float32 precision, as TensorBoard stores scalars).

    python -m venv .venv && .venv/bin/pip install tensorboard==2.21.0
    ferrograd train --train-subset 640 --epochs 2 --tensorboard tb --metrics m.csv
    .venv/bin/python scripts/check_tensorboard.py tb m.csv
"""
import csv
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

logdir, metrics = sys.argv[1], sys.argv[2]
acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
acc.Reload()
tags = acc.Tags()["scalars"]
rows = list(csv.DictReader(open(metrics)))
checked = 0
for kind, key, tag in [
    ("step", "loss", "step/loss"),
    ("step", "lr", "step/lr"),
    ("epoch", "loss", "epoch/loss"),
    ("epoch", "train_acc", "epoch/train_acc"),
    ("epoch", "test_acc", "epoch/test_acc"),
]:
    want = [(int(r["step"]), float(r[key])) for r in rows if r["kind"] == kind]
    assert tag in tags, f"{tag} missing from {sorted(tags)}"
    got = [(e.step, e.value) for e in acc.Scalars(tag)]
    assert [s for s, _ in got] == [s for s, _ in want], f"{tag}: steps {got} vs {want}"
    for (s, g), (_, w) in zip(got, want):
        # the CSV rounds to 6 decimals (lr in full), TensorBoard keeps float32
        assert math.isclose(g, w, rel_tol=1e-5, abs_tol=1e-6), f"{tag} at step {s}: {g} vs {w}"
        checked += 1
print(f"TensorBoard read {len(tags)} scalar tags from {logdir}; {checked} values match {metrics}")
