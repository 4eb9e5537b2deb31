#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*: one small,
valid file of each kind (the fuzzers mutate from there), using only the standard library.
Run from the repository root: python3 fuzz/seeds.py"""
import gzip
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, raw bytes)."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def f64(*v):
    return struct.pack("<%dd" % len(v), *v)


# weights: a tiny GPT's embeddings and one block's layer norm, with the metadata gpt sample reads
gpt = {"n_layer": 1, "n_head": 1, "n_embd": 2, "block_size": 2, "vocab_size": 3}
put("safetensors", "gpt", safetensors({
    "transformer.wte.weight": ("F32", [3, 2], f32(*range(6))),
    "transformer.wpe.weight": ("F32", [2, 2], f32(1, 2, 3, 4)),
    "transformer.h.0.ln_1.weight": ("F32", [2], f32(1, 1)),
    "ids": ("I64", [2], struct.pack("<2q", 7, -1)),
    "half": ("F16", [2], struct.pack("<2H", 0x3C00, 0x8001)),
}, {"config": json.dumps(gpt), "vocab": json.dumps("ab\n")}))
put("safetensors", "classifier", safetensors({"classifier.weight": ("F64", [2, 1], f64(0.5, -0.5))},
    {"ferrograd.classes": '["neg","pos"]', "ferrograd.pooling": "mean",
     "ferrograd.max_len": "16", "ferrograd.mode": "lora",
     "ferrograd.lora_rank": "2", "ferrograd.lora_alpha": "4", "ferrograd.lora_targets": "query,value"}))

# a checkpoint: the metadata of a real `ferrograd train` checkpoint (MLP, 3 steps), tiny tensors
meta = {"format": "ferrograd-checkpoint-2", "workload": "mnist",
        "settings": [{"flag": "--model", "value": "mlp", "may_change": False},
                     {"flag": "--epochs", "value": "1", "may_change": True}],
        "epoch": 0, "batch": 3, "step": 3, "last_eval_step": 3,
        "schedule": {"schedule": "Constant", "base_lrs": [0.1], "last_epoch": 0, "best": None,
                     "bad_epochs": 0, "cooldown_left": 0},
        "rng_streams": {"dropout": [1, 2, 3, 4]}, "data": {"epoch": 0, "order": [2, 0, 1]},
        "task": None,
        "history": [{"kind": "epoch", "epoch": 1, "step": 3,
                     "values": {"loss": 2.28, "lr": 0.1, "test_acc": 0.29}}],
        "best": {"metric": "test_acc", "value": 0.29, "step": 3, "epoch": 0},
        "evals_since_best": 0}
put("checkpoint", "mlp", safetensors({
    "model.fc1.weight": ("F32", [2, 2], f32(0.1, 0.2, 0.3, 0.4)),
    "model.fc1.bias": ("F32", [2], f32(0, 0)),
    "optim.0.0.momentum_buffer": ("F32", [4], f32(0, 0, 0, 0)),
    "optim.0.0.step": ("F64", [], f64(3)),
    "optim.0.lr": ("F64", [], f64(0.1)),
    "optim.0.weight_decay": ("F64", [], f64(0)),
    "best.fc1.bias": ("F32", [2], f32(0, 0)),
}, {"ferrograd.checkpoint": json.dumps(meta)}))

# IDX: images [2, 2, 3] and labels [2], raw and gzip
images = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 2, 3) + bytes(range(12))
labels = bytes([0, 0, 8, 1]) + struct.pack(">I", 2) + bytes([7, 2])
put("idx", "images", images)
put("idx", "labels", labels)
put("idx", "images.gz", gzip.compress(images, mtime=0))

# a corpus
put("corpus", "text", "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    "All:\nSpeak, speak. \u00e9\u4e2d\n".encode())

# labelled sets: the first byte picks the format (even: JSON lines, odd: CSV)
put("labelled", "jsonl", b"\x00" + b'{"text": "good film", "title": "a", "label": "pos"}\n'
    b'{"text": "bad film", "title": "b", "label": "neg"}\n{"text": "ok", "title": "c", "label": "pos"}\n')
put("labelled", "jsonl-numbers", b"\x02" + b'{"text": "x", "title": "", "label": 1}\n'
    b'{"text": "y", "title": "", "label": 0}\n')
put("labelled", "csv", b"\x01" + b'text,title,label\n"good, really",a,pos\nbad,b,neg\n')

# a tokenizer.json: WordPiece as BERT's, with the special tokens the classifier expects
vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b",
                                      "##b", "1", "##2", "\u00e9"])}
tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [
    {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
     "normalized": False, "special": True} for t, i in list(vocab.items())[:5]],
    "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                   "strip_accents": None, "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                  {"Sequence": {"id": "A", "type_id": 0}},
                                  {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                       "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                {"Sequence": {"id": "B", "type_id": 1}}],
                       "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                          "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": vocab}}
put("tokenizer", "wordpiece", json.dumps(tok).encode())


def png(width, height, color_type, rows):
    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


put("png", "grey", png(4, 3, 0, [bytes([0, 80, 160, 255])] * 3))
put("png", "rgba", png(2, 2, 6, [bytes([255, 0, 0, 255, 0, 255, 0, 128])] * 2))


def wav(channels, rate, bits, fmt, frames):
    """A RIFF/WAVE file: fmt 1 (PCM) or 3 (float), frames as raw little-endian bytes."""
    block = channels * bits // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    data = b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt_chunk) + 8 + len(frames)) + b"WAVE"
    data += b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    return data + b"data" + struct.pack("<I", len(frames)) + frames


put("wav", "pcm16-mono", wav(1, 8000, 16, 1, struct.pack("<4h", 0, 16384, -16384, 32767)))
put("wav", "pcm8-stereo", wav(2, 8000, 8, 1, bytes([128, 192, 64, 255])))
put("wav", "pcm24", wav(1, 16000, 24, 1, b"\x00\x00\x40\x00\x00\xc0"))
put("wav", "float32", wav(1, 22050, 32, 3, struct.pack("<2f", 0.25, -0.5)))

# interactions: the first byte picks u.data / u.item naming (even) or CSV (odd)
put("interactions", "udata", b"\x00" + b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250950\n")
put("interactions", "recbole", b"\x00" + b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t4\t10\n1\t3\t5\t11\n")
put("interactions", "csv", b"\x01" + b"userId,movieId,rating,timestamp\n1,2,3.5,10\n2,2,0.5,11\n")
put("interactions", "uitem", b"\x00" + b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n")
put("interactions", "movies", b"\x01" + b"movieId,title,genres\n1,\"Toy Story, The (1995)\",Animation|Comedy\n")
