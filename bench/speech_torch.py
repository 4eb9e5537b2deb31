#!/usr/bin/env python3
"""The PyTorch reference for `ferrograd speech`: the same features, models and training.

Features (librosa 0.11, which tests/fixtures/gen_librosa_features.py matches ferrograd's to
1e-9): 8 kHz, n_fft = win = 200 (25 ms, Hann), hop 80 (10 ms), centred, 40 Slaney mel bands
0-4000 Hz, power_to_db (ref 1, amin 1e-10, top_db 80), each band normalised over the clip
(population deviation). FEATURES=mfcc (environment) gives ferrograd's `--features mfcc`
instead: 13 MFCCs (librosa.feature.mfcc on the decibel spectrum above, orthonormal DCT-II),
their deltas (width 9, 3 for clips under 9 frames) and the deltas of the deltas, each of the
39 normalised over the clip; SCHEDULER=cosine anneals the training's lr to 0 over the epochs
(CosineAnnealingLR stepped each epoch), as ferrograd's `--scheduler cosine`. The inputs:
clips cut around their middle or zero-padded to a fixed
number of frames, as ferrograd's SpeechSet (LSTM/GRU: the longest clip's frame count, at most
301; CNN: 64), with each clip's length.

Models: `lstm`/`gru`: nn.LSTM/nn.GRU(40, 128, 2, batch_first) over a packed sequence, the
outputs averaged over the clip's own frames, Linear(128, 10). `cnn`: three Conv2d 3x3 (16, 32,
64, padding 1) each followed by 2x2 max pooling and ReLU over [1, 40, 64], Linear(64*5*8, 10).
Adam 1e-3, batch 32, shuffled, 30 epochs; the test accuracy after the last epoch.

Usage:
  speech_torch.py DIR official MODEL [EPOCHS]
  speech_torch.py DIR speaker:NAME MODEL [EPOCHS] [--adapt SHOTS ADAPT_EPOCHS LR]
SEED (environment, default 0) seeds the initial weights and the data order. With --adapt, the model trained without NAME is then fine-tuned on NAME's takes 0..SHOTS-1
(Adam LR, batch 10) and tested on NAME's other takes before and after. Prints one JSON line.
"""
import glob
import json
import os
import sys
import time

import librosa
import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
FEATURES = os.environ.get("FEATURES", "logmel")
SCHEDULER = os.environ.get("SCHEDULER", "none")
DIM = 39 if FEATURES == "mfcc" else 40


def features(path):
    y, sr = librosa.load(path, sr=8000)
    s = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=200, hop_length=80, win_length=200,
                                       window="hann", center=True, pad_mode="constant",
                                       power=2.0, n_mels=40, fmin=0, fmax=4000, htk=False)
    db = librosa.power_to_db(s, ref=1.0, amin=1e-10, top_db=80.0)  # [40, frames]
    if FEATURES == "mfcc":
        c = librosa.feature.mfcc(S=db, n_mfcc=13, dct_type=2, norm="ortho")
        width = 9 if c.shape[1] >= 9 else 3
        if c.shape[1] >= width:
            d1 = librosa.feature.delta(c, width=width, order=1)
            d2 = librosa.feature.delta(d1, width=width, order=1)
        else:
            d1 = d2 = np.zeros_like(c)
        db = np.concatenate([c, d1, d2])
    db = db.T  # [frames, dim]
    mu, sd = db.mean(0), db.std(0)
    sd[sd == 0] = 1.0
    return ((db - mu) / sd).astype(np.float32)


def load(d):
    out = []
    for p in sorted(glob.glob(os.path.join(d, "*.wav"))):
        digit, speaker, take = os.path.basename(p)[:-4].split("_")
        out.append((features(p), int(digit), speaker, int(take)))
    return out


def tensors(clips, frames):
    x = np.zeros((len(clips), frames, DIM), np.float32)
    lengths = []
    for i, (f, *_rest) in enumerate(clips):
        skip = max(len(f) - frames, 0) // 2
        f = f[skip:skip + frames]
        x[i, :len(f)] = f
        lengths.append(max(len(f), 1))
    y = np.array([c[1] for c in clips])
    return torch.tensor(x), torch.tensor(lengths), torch.tensor(y)


class Rnn(nn.Module):
    def __init__(self, kind):
        super().__init__()
        cls = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = cls(DIM, 128, 2, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.fc(out.sum(1) / lengths.unsqueeze(1).float())


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * (DIM // 8) * 8, 10)

    def forward(self, x, lengths):
        h = x.transpose(1, 2).unsqueeze(1)
        for c in (self.conv1, self.conv2, self.conv3):
            h = torch.relu(torch.max_pool2d(c(h), 2))
        return self.fc(h.flatten(1))


def accuracy(model, data):
    model.eval()
    x, l, y = data
    with torch.no_grad():
        correct = int((model(x, l).argmax(1) == y).sum())
    model.train()
    return correct, len(y)


def fit(model, data, epochs, lr, batch, seed, cosine=False):
    x, l, y = data
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs) if cosine else None
    g = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss_fn(model(x[idx], l[idx]), y[idx]).backward()
            opt.step()
        if sched is not None:
            sched.step()


def main():
    d, split, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    epochs = int(sys.argv[4]) if len(sys.argv) > 4 and not sys.argv[4].startswith("--") else 30
    seed = int(os.environ.get("SEED", "0"))
    torch.manual_seed(seed)
    clips = load(d)
    longest = max(len(c[0]) for c in clips)
    frames = 64 if kind == "cnn" else min(longest, 301)
    if split == "official":
        test_of = lambda c: c[3] < 5
    else:
        name = split.split(":", 1)[1]
        test_of = lambda c: c[2] == name
    train = [c for c in clips if not test_of(c)]
    test = [c for c in clips if test_of(c)]
    model = Rnn(kind) if kind in ("lstm", "gru") else Cnn()
    t = time.perf_counter()
    fit(model, tensors(train, frames), epochs, 1e-3, 32, seed, SCHEDULER == "cosine")
    out = {"split": split, "model": kind, "features": FEATURES, "scheduler": SCHEDULER, "epochs": epochs, "frames": frames, "seed": seed,
           "train_seconds": time.perf_counter() - t}
    correct, total = accuracy(model, tensors(test, frames))
    out["test_acc"] = correct / total
    out["test_correct"], out["test_total"] = correct, total
    if "--adapt" in sys.argv:
        i = sys.argv.index("--adapt")
        shots, a_epochs, lr = int(sys.argv[i + 1]), int(sys.argv[i + 2]), float(sys.argv[i + 3])
        few = [c for c in test if c[3] < shots]
        rest = [c for c in test if c[3] >= shots]
        before = accuracy(model, tensors(rest, frames))
        fit(model, tensors(few, frames), a_epochs, lr, 10, seed + 1)
        after = accuracy(model, tensors(rest, frames))
        out["before"] = before[0] / before[1]
        out["after"] = after[0] / after[1]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
