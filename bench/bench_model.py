#!/usr/bin/env python3
"""bench_model.py: the PyTorch / transformers peer of bench_model.lua: the same model
(all-MiniLM-L6-v2 with a 5-label head), the same shapes, one thread: forward (eval) of 32 titles
padded to 24 tokens, and a training step (zero_grad, forward, backward) of 3 titles of 20 tokens."""
import os, time
import torch
from transformers import BertForSequenceClassification
from transformers.utils import logging

logging.set_verbosity_error()
torch.set_num_threads(1)
d = os.environ.get("BERTLAB_MODEL", "models/all-MiniLM-L6-v2")
model = BertForSequenceClassification.from_pretrained(d, num_labels=5)
g = torch.Generator().manual_seed(7)


def batch(B, T, lo):
    ids = torch.randint(1000, 29000, (B, T), generator=g)
    n = torch.randint(lo, T + 1, (B,), generator=g)
    n[0] = T
    mask = (torch.arange(T)[None, :] < n[:, None]).long()
    ids = ids * mask
    ids[:, 0] = 101
    return ids, mask, torch.arange(B) % 5


def timeit(reps, f):
    f()
    t0 = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t0) / reps


ids, mask, labels = batch(32, 24, 10)
model.eval()
with torch.no_grad():
    fwd = timeit(5, lambda: model(input_ids=ids, attention_mask=mask))
ids3, mask3, labels3 = batch(3, 20, 12)
model.train()


def step():
    model.zero_grad()
    model(input_ids=ids3, attention_mask=mask3, labels=labels3).loss.backward()


st = timeit(40, step)
print("torch %s, 1 thread: forward B=32 T=24 %.1f ms, train step B=3 T=20 %.1f ms" % (torch.__version__, fwd * 1000, st * 1000))
print("result: model_forward_B32_T24.torch %.3f batches/s" % (1 / fwd))
print("result: model_train_step_B3_T20.torch %.3f steps/s" % (1 / st))
