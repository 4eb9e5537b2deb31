#!/usr/bin/env python3
"""PyTorch side of `ferrograd-bench train`: one workload per call, on MNIST held in memory.

Usage: torch_ref.py WORKLOAD THREADS DATA_DIR
WORKLOAD: mlp_train_64 | mlp_train_128 | lenet_train_64 | mlp_infer | lenet_infer | e2e
          | bert_fwd_16x128 | bert_fwdbwd_16x128 | gpt_train_32x128
          | lstm_train_32x100 | lstm_fwd_32x100 | gru_train_32x100 | gru_fwd_32x100
Prints one JSON line: {"seconds": ..., "images_per_s": ..., "peak_rss_mb": ...}. Training
workloads time one epoch (60,000 images, SGD momentum 0.9, shuffled) after a warm-up of 20 steps;
inference workloads time the 10,000 test images in batches of 1000 (the fastest of INFER_PASSES
passes, as on the ferrograd side). `e2e` is the tutorial-style script, timed by the caller as a whole process.
The lstm/gru workloads are nn.LSTM / nn.GRU (input 40, hidden 128, 2 layers, batch 32, 100 steps,
time-major): `train` is forward, the mean of the outputs, backward and an Adam step; `fwd` is the
forward under no_grad; median of 10 steps after 3 warm-up steps. The bert workloads are all-MiniLM-L6-v2's dimensions (a plain PyTorch BERT written out below, with
the attention of Hugging Face's default, F.scaled_dot_product_attention): inference forward under
no_grad, and training forward + backward through a 2-class head, each followed by an untimed AdamW
step so the peak RSS is that of full fine-tuning; median of 5 steps after a warm-up.
"""
import gzip
import json
import resource
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

INFER_PASSES = 10


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.reshape(x.shape[0], -1))))


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class BertLayer(nn.Module):
    def __init__(self, h=384, heads=12, ffn=1536, p=0.1):
        super().__init__()
        self.heads, self.p = heads, p
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attn_out, self.ln1 = nn.Linear(h, h), nn.LayerNorm(h, eps=1e-12)
        self.inter, self.out, self.ln2 = nn.Linear(h, ffn), nn.Linear(ffn, h), nn.LayerNorm(h, eps=1e-12)
        self.drop = nn.Dropout(p)

    def forward(self, x, mask):
        b, t, c = x.shape
        split = lambda y: y.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        a = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)),
                                           attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        x = self.ln1(x + self.drop(self.attn_out(a.transpose(1, 2).reshape(b, t, c))))
        return self.ln2(x + self.drop(self.out(F.gelu(self.inter(x)))))


class Bert(nn.Module):
    def __init__(self, vocab=30522, h=384, layers=6, classes=2):
        super().__init__()
        self.word, self.pos, self.types = nn.Embedding(vocab, h), nn.Embedding(512, h), nn.Embedding(2, h)
        self.ln, self.drop = nn.LayerNorm(h, eps=1e-12), nn.Dropout(0.1)
        self.layers = nn.ModuleList(BertLayer() for _ in range(layers))
        self.head = nn.Linear(h, classes)

    def pooled(self, ids, mask):
        t = ids.shape[1]
        x = self.drop(self.ln(self.word(ids) + self.pos(torch.arange(t)) + self.types(torch.zeros_like(ids))))
        add = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(mask == 0, torch.finfo(x.dtype).min)[:, None, None, :]
        for l in self.layers:
            x = l(x, add)
        m = mask.unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)


def bert_workload(work):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (16, 128), generator=g)
    mask = torch.ones(16, 128, dtype=torch.int64)
    model = Bert()
    times = []
    if work == "bert_fwd_16x128":
        model.eval()
        with torch.no_grad():
            for i in range(6):
                t = time.perf_counter()
                model.pooled(ids, mask)
                if i:
                    times.append(time.perf_counter() - t)
    else:
        model.train()
        y = torch.arange(16) % 2
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
        for i in range(6):
            opt.zero_grad()
            t = time.perf_counter()
            loss = F.cross_entropy(model.head(F.dropout(model.pooled(ids, mask), 0.1)), y)
            loss.backward()
            if i:
                times.append(time.perf_counter() - t)
            opt.step()
    return sorted(times)[len(times) // 2]


class GptBlock(nn.Module):
    def __init__(self, c=128, heads=4):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.c_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        split = lambda y: y.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(split(q), split(k), split(v), is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class Gpt(nn.Module):
    """nanoGPT's model (the same layers as crates/models/src/gpt.rs), LM head tied to wte."""

    def __init__(self, vocab=65, block=128, c=128, layers=4):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(block, c)
        self.h = nn.ModuleList(GptBlock(c) for _ in range(layers))
        self.ln_f = nn.LayerNorm(c)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()


def gpt_workload():
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 65, (100_000,), generator=g)
    model = Gpt()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    times = []
    for i in range(6):
        ix = torch.randint(0, len(data) - 129, (32,), generator=g)
        x = torch.stack([data[j:j + 128] for j in ix])
        y = torch.stack([data[j + 1:j + 129] for j in ix])
        t = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x).view(-1, 65), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def load(data, prefix):
    img = np.frombuffer(gzip.open(f"{data}/{prefix}-images-idx3-ubyte.gz").read()[16:], dtype=np.uint8)
    lab = np.frombuffer(gzip.open(f"{data}/{prefix}-labels-idx1-ubyte.gz").read()[8:], dtype=np.uint8)
    x = torch.tensor(img.reshape(-1, 1, 28, 28) / 255.0, dtype=torch.float32)
    return x, torch.tensor(lab, dtype=torch.int64)


def train_epoch(model, x, y, batch, lr, steps=None):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n = 0
    for i in range(0, len(x), batch):
        idx = perm[i:i + batch]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += 1
        if steps is not None and n >= steps:
            break


def recurrent_workload(work):
    kind, mode, _ = work.split("_")
    cls = nn.LSTM if kind == "lstm" else nn.GRU
    model = cls(40, 128, num_layers=2)
    x = torch.randn(100, 32, 40)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(13):
        t = time.perf_counter()
        if mode == "train":
            opt.zero_grad()
            out, _ = model(x)
            out.mean().backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)
        if i >= 3:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def recommend_workload(work):
    """bench/src/recommend.rs's workloads: biased MF, dim 64, on MovieLens-100k."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "movielens-100k", "ml-100k.inter")
    d = np.loadtxt(path, skiprows=1)
    _, u = np.unique(d[:, 0].astype(np.int64), return_inverse=True)
    _, i = np.unique(d[:, 1].astype(np.int64), return_inverse=True)
    U, I, R = torch.tensor(u), torch.tensor(i), torch.tensor(d[:, 2], dtype=torch.float32)
    nu, ni, dim = int(u.max()) + 1, int(i.max()) + 1, 64
    P, Q = nn.Embedding(nu, dim, sparse=True), nn.Embedding(ni, dim, sparse=True)
    bu, bi = nn.Embedding(nu, 1, sparse=True), nn.Embedding(ni, 1, sparse=True)
    for e in (P, Q):
        nn.init.normal_(e.weight, 0, 0.1)
    for e in (bu, bi):
        nn.init.zeros_(e.weight)
    mu = float(R.mean())
    times = []
    if work == "mf_epoch_256":
        opt = torch.optim.SparseAdam([P.weight, Q.weight, bu.weight, bi.weight], lr=3e-3)
        g = torch.Generator().manual_seed(0)
        for epoch in range(4):
            order = torch.randperm(len(R), generator=g)
            t = time.perf_counter()
            for s in range(0, len(R), 256):
                b = order[s:s + 256]
                uu, ii = U[b], I[b]
                pu, qi = P(uu), Q(ii)
                bb, cc = bu(uu).squeeze(-1), bi(ii).squeeze(-1)
                err = mu + bb + cc + (pu * qi).sum(-1) - R[b]
                loss = ((err * err).sum() + 0.1 * ((pu * pu).sum() + (qi * qi).sum())
                        + 0.01 * ((bb * bb).sum() + (cc * cc).sum())) / len(b)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch > 0:
                times.append(time.perf_counter() - t)
        return float(np.median(times)), len(R)
    with torch.no_grad():
        for k in range(12):
            t = time.perf_counter()
            (P.weight @ Q.weight.T + bu.weight + bi.weight.T + mu).clamp_(1, 5)
            if k >= 2:
                times.append(time.perf_counter() - t)
    return float(np.median(times)), nu * ni


def main():
    work, threads, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    if work.startswith("mf_"):
        out["seconds"], n = recommend_workload(work)
        out["ratings_per_s" if work == "mf_epoch_256" else "scores_per_s"] = n / out["seconds"]
    elif work.startswith("lstm_") or work.startswith("gru_"):
        out["seconds"] = recurrent_workload(work)
        out["sequences_per_s"] = 32 / out["seconds"]
    elif work.endswith("_train_64") or work.endswith("_train_128"):
        batch = int(work.rsplit("_", 1)[1])
        model = MLP() if work.startswith("mlp") else LeNet5()
        lr = 0.1 if work.startswith("mlp") else 0.01
        x, y = load(data, "train")
        train_epoch(model, x, y, batch, lr, steps=20)
        t = time.perf_counter()
        train_epoch(model, x, y, batch, lr)
        out["seconds"] = time.perf_counter() - t
        out["images_per_s"] = len(x) / out["seconds"]
    elif work.endswith("_infer"):
        model = MLP() if work.startswith("mlp") else LeNet5()
        model.eval()
        x, _ = load(data, "t10k")
        best = 1e9
        with torch.no_grad():
            for _ in range(INFER_PASSES):
                t = time.perf_counter()
                for i in range(0, len(x), 1000):
                    model(x[i:i + 1000])
                best = min(best, time.perf_counter() - t)
        out["seconds"] = best
        out["images_per_s"] = len(x) / best
    elif work.startswith("bert_"):
        out["seconds"] = bert_workload(work)
    elif work == "gpt_train_32x128":
        out["seconds"] = gpt_workload()
        out["tokens_per_s"] = 4096 / out["seconds"]
    elif work == "e2e":
        # the tutorial's workflow: read the .gz files, train the MLP one epoch, report accuracy
        x, y = load(data, "train")
        xt, yt = load(data, "t10k")
        model = MLP()
        train_epoch(model, x, y, 64, 0.1)
        with torch.no_grad():
            correct = int((model(xt).argmax(1) == yt).sum())
        print(f"Test Accuracy of the model on the 10000 test images: {correct / 100:.2f}% ({correct}/10000)",
              file=sys.stderr)
    else:
        raise SystemExit(f"unknown workload {work}")
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
