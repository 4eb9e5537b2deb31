#!/usr/bin/env python3
"""The PyTorch reference for `ferrograd recommend train --model neumf`: NeuMF (He et al. 2017) of
the same sizes (GMF dim d; MLP embeddings 2d, layers 4d -> 2d -> d with ReLU; one linear layer
over both towers), trained on the same samples and evaluated on the same candidates: the
leave-last-out split, each epoch's 4 negatives per positive and its shuffle, and the 99
evaluation negatives per user are drawn exactly as ferrograd draws them, by the same generator
(xoshiro256++ seeded through splitmix64, Lemire's bounded integers, Fisher-Yates) written out
below. Embeddings N(0, 0.01); layers PyTorch's default init; SparseAdam on the embeddings
(sparse=True) and Adam on the layers, lr 1e-3, batch 256, BCE with logits.

    python bench/neumf_torch.py [DATA] [--dim 64] [--epochs 20] [--seed 0] [--threads 2]
                                [--save-init FILE]

prints one line per epoch and `HR@10 x, NDCG@10 y`. `--save-init FILE` also writes the initial
weights (safetensors, ferrograd's names: the MLP's second layer is `mlp.1`, PyTorch's
`mlp.2`), so `ferrograd recommend train --model neumf --init FILE --seed S` starts from the
same weights and the two runs differ only in their arithmetic.
"""
import argparse
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn

M = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return state, z ^ (z >> 31)


class Rng:
    """ferrograd_tensor::Rng, the same stream for the same seed."""

    def __init__(self, seed):
        st, self.s = seed & M, []
        for _ in range(4):
            st, z = splitmix64(st)
            self.s.append(z)

    def next_u64(self):
        s = self.s
        result = (((s[0] + s[3]) & M) << 23 | ((s[0] + s[3]) & M) >> 41) & M
        result = (result + s[0]) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = ((s[3] << 45) | (s[3] >> 19)) & M
        return result

    def below(self, n):
        threshold = ((1 << 64) - n) % n
        while True:
            m = self.next_u64() * n
            if (m & M) >= threshold:
                return m >> 64

    def shuffle(self, v):
        for i in range(len(v) - 1, 0, -1):
            j = self.below(i + 1)
            v[i], v[j] = v[j], v[i]


def stream(seed, epoch, purpose):
    """ferrograd_train::tasks::recommend's per-epoch stream."""
    return Rng(seed ^ (((epoch + 1) * 0x9E3779B97F4A7C15) & M) ^ ((purpose * 0xD1B54A32D192ED03) & M))


def sample_unseen(rng, seen, items):
    while True:
        j = rng.below(items)
        if j not in seen:
            return j


class NeuMF(nn.Module):
    def __init__(self, users, items, d):
        super().__init__()
        self.user_factors = nn.Embedding(users, d, sparse=True)
        self.item_factors = nn.Embedding(items, d, sparse=True)
        self.mlp_user = nn.Embedding(users, 2 * d, sparse=True)
        self.mlp_item = nn.Embedding(items, 2 * d, sparse=True)
        for e in (self.user_factors, self.item_factors, self.mlp_user, self.mlp_item):
            nn.init.normal_(e.weight, 0, 0.01)
        self.mlp = nn.Sequential(nn.Linear(4 * d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d), nn.ReLU())
        self.predict = nn.Linear(2 * d, 1)

    def forward(self, u, i):
        gmf = self.user_factors(u) * self.item_factors(i)
        h = self.mlp(torch.cat([self.mlp_user(u), self.mlp_item(i)], 1))
        return self.predict(torch.cat([gmf, h], 1)).squeeze(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "movielens-100k", "ml-100k.inter"))
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-init")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    d = np.loadtxt(a.data, skiprows=1)
    _, users = np.unique(d[:, 0].astype(np.int64), return_inverse=True)
    _, items = np.unique(d[:, 1].astype(np.int64), return_inverse=True)
    ts = d[:, 3].astype(np.int64)
    nu, ni = int(users.max()) + 1, int(items.max()) + 1
    # leave-last-out: each user's latest row (ties: the last listed) is the test row
    last = {}
    for k in range(len(users)):
        u = users[k]
        if u not in last or ts[k] >= ts[last[u]]:
            last[u] = k
    test = sorted(last.values())
    is_test = np.zeros(len(users), bool)
    is_test[test] = True
    train = [k for k in range(len(users)) if not is_test[k]]
    seen_all = [set() for _ in range(nu)]
    for k in range(len(users)):
        seen_all[users[k]].add(int(items[k]))
    seen_train = [set() for _ in range(nu)]
    for k in train:
        seen_train[users[k]].add(int(items[k]))
    # the evaluation candidates, as ferrograd's Candidates::sample
    rng = Rng(a.seed)
    cands = []
    for k in test:
        u, negs = users[k], []
        while len(negs) < 99:
            j = sample_unseen(rng, seen_all[u], ni)
            if j not in negs:
                negs.append(j)
        cands.append((int(u), int(items[k]), negs))

    model = NeuMF(nu, ni, a.dim)
    if a.save_init:
        from safetensors.torch import save_file
        save_file({k.replace("mlp.2.", "mlp.1."): v.detach().contiguous() for k, v in model.state_dict().items()}, a.save_init)
    emb = [model.user_factors.weight, model.item_factors.weight, model.mlp_user.weight, model.mlp_item.weight]
    dense = [p for n, p in model.named_parameters() if not any(p is e for e in emb)]
    opts = [torch.optim.SparseAdam(emb, lr=1e-3), torch.optim.Adam(dense, lr=1e-3)]
    lossf = nn.BCEWithLogitsLoss()

    def evaluate():
        model.eval()
        hr = ndcg = 0.0
        with torch.no_grad():
            for u, pos, negs in cands:
                it = torch.tensor([pos] + negs)
                s = torch.sigmoid(model(torch.full((100,), u), it)).numpy()
                rank = int((s[1:] >= s[0]).sum())
                if rank < 10:
                    hr += 1
                    ndcg += 1 / math.log2(rank + 2)
        model.train()
        return hr / len(cands), ndcg / len(cands)

    positives = [(int(users[k]), int(items[k])) for k in train]
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        rng = stream(a.seed, epoch, 2)
        samples = []
        for u, i in positives:
            samples.append((u, i, 1))
            for _ in range(4):
                samples.append((u, sample_unseen(rng, seen_train[u], ni), 0))
        rng.shuffle(samples)
        t1 = time.perf_counter()
        arr = torch.tensor(samples)
        total = 0.0
        for s in range(0, len(arr), 256):
            b = arr[s:s + 256]
            loss = lossf(model(b[:, 0], b[:, 1]), b[:, 2].float())
            for o in opts:
                o.zero_grad()
            loss.backward()
            for o in opts:
                o.step()
            total += loss.item() * len(b)
        t2 = time.perf_counter()
        hr, ndcg = evaluate()
        print(f"Epoch [{epoch + 1}/{a.epochs}] loss {total / len(arr):.4f}, HR@10 {hr:.4f}, NDCG@10 {ndcg:.4f}, "
              f"sampling {t1 - t0:.1f} s, training {t2 - t1:.1f} s", flush=True)
    print(f"HR@10 {hr:.4f}, NDCG@10 {ndcg:.4f}")


if __name__ == "__main__":
    main()
