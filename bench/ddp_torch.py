#!/usr/bin/env python3
"""PyTorch DistributedDataParallel side of bench/ddp_compare.py: one epoch of MNIST, data-parallel.

Usage: torchrun --nproc-per-node N ddp_torch.py MODEL BATCH_PER_RANK DATA_DIR
MODEL: mlp | lenet5 (the models of torch_ref.py, the same as ferrograd's). Backend gloo, one thread
per rank, the training images in memory; each rank takes its DistributedSampler shard of a seeded
permutation (padded to a multiple of the world), SGD momentum 0.9 (lr 0.1 for the MLP, 0.01 for
LeNet-5), DDP's default buckets. Times the whole first epoch on rank 0, from a barrier after the
DDP wrapper is built (which broadcasts rank 0's weights) to the last step, as the ferrograd
side's epoch time does. Rank 0 prints one JSON line: {"seconds": ..., "images_per_s": ...}.
Run alone (without torchrun) it is a world of one.
"""
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import MLP, LeNet5, load  # noqa: E402


def main():
    model_name, batch, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(1)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if "MASTER_ADDR" not in os.environ:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29511")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    x, y = load(data, "train")
    torch.manual_seed(0)
    net, lr = (MLP(), 0.1) if model_name == "mlp" else (LeNet5(), 0.01)
    model = DDP(net)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    total = -(-len(perm) // world) * world
    perm = torch.cat([perm, perm[: total - len(perm)]])[rank::world]
    dist.barrier()
    t = time.perf_counter()
    for i in range(0, len(perm), batch):
        idx = perm[i:i + batch]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    dist.barrier()
    s = time.perf_counter() - t
    if rank == 0:
        print(json.dumps({"seconds": s, "images_per_s": len(x) / s, "world": world}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
