#!/usr/bin/env python3
"""Loads weights written by `ferrograd train --save W` into the tutorial's PyTorch MLP with a strict
load_state_dict and reports the test accuracy PyTorch computes with them (it should equal
`ferrograd eval --model mlp --weights W`).

Usage: python scripts/torch_load_check.py W.safetensors [data/mnist]   (needs torch, safetensors, numpy)
"""
import gzip
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 500)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x.reshape(x.shape[0], -1))))


def main():
    weights = sys.argv[1]
    data = sys.argv[2] if len(sys.argv) > 2 else "data/mnist"
    model = MLP()
    print(model.load_state_dict(load_file(weights), strict=True))
    images = gzip.open(f"{data}/t10k-images-idx3-ubyte.gz").read()[16:]
    labels = np.frombuffer(gzip.open(f"{data}/t10k-labels-idx1-ubyte.gz").read()[8:], dtype=np.uint8)
    x = torch.tensor(np.frombuffer(images, dtype=np.uint8).reshape(-1, 784) / 255.0, dtype=torch.float32)
    with torch.no_grad():
        correct = int((model(x).argmax(1).numpy() == labels).sum())
    print(f"PyTorch, ferrograd's weights: {100 * correct / len(labels):.2f}% ({correct}/{len(labels)})")


if __name__ == "__main__":
    main()
