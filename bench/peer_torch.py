#!/usr/bin/env python3
"""peer_torch.py: one row of `make bench` for PyTorch + transformers, in its own process: the same
work as bench/peer_bertlab.lua on the same token ids (zero_grad, forward, backward, clip 1.0,
AdamW; then evaluation forwards under no_grad).
Usage: python peer_torch.py MODEL_DIR IDS_FILE B T THREADS TRAIN_REPS EVAL_REPS
       (T = 0: each batch padded to its longest title; T > 0: padded to T; T < 0: -T real tokens)
       python peer_torch.py --make-random DIR   (a bert-base-sized model with random weights)
BENCH_SYNC=PREFIX: in lockstep with bertlab's peer, as bench/peer_bertlab.lua's (bench.lua's BENCH_PAIRS)."""
import os, sys, time


def peak_rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def make_random(d):
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(0)
    cfg = BertConfig(num_labels=5)  # bert-base: 12 layers, 768 hidden, 12 heads, 3072 intermediate
    BertForSequenceClassification(cfg).save_pretrained(d, safe_serialization=True)


def main():
    if sys.argv[1] == "--make-random":
        return make_random(sys.argv[2])
    d, ids_file = sys.argv[1], sys.argv[2]
    B, T, threads, train_reps, eval_reps = (int(x) for x in sys.argv[3:8])
    import torch
    torch.set_num_threads(threads)
    from transformers import BertForSequenceClassification
    from transformers.utils import logging
    logging.set_verbosity_error()
    titles = [[int(w) for w in line.split()] for line in open(ids_file)]

    def full_row(k, b, n):  # as peer_bertlab.lua: [CLS], titles' words run together, [SEP]
        r, i = [101], (k - 1) * B + b
        while len(r) < n - 1:
            r.extend(titles[i % len(titles)][1:-1][: n - 1 - len(r)])
            i += 1
        return r + [102]

    def make_batch(k):
        if T < 0:
            rows = [full_row(k, b, -T) for b in range(B)]
        else:
            rows = [titles[((k - 1) * B + b) % len(titles)] for b in range(B)]
        width = -T if T < 0 else (T if T else max(len(r) for r in rows))
        ids = torch.zeros(B, width, dtype=torch.long)
        mask = torch.zeros(B, width, dtype=torch.long)
        for b, r in enumerate(rows):
            n = min(len(r), width)
            ids[b, :n] = torch.tensor(r[:n])
            mask[b, :n] = 1
            if n < len(r):
                ids[b, n - 1] = 102
        labels = torch.tensor([((k - 1) * B + b + 1) % 5 for b in range(B)])
        return ids, mask, labels

    model = BertForSequenceClassification.from_pretrained(d, num_labels=5)
    torch.manual_seed(1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, eps=1e-8, weight_decay=0.0)
    nb = max(train_reps, eval_reps)
    batches = [make_batch(k) for k in range(1, nb + 1)]

    def train_step(bt):
        ids, mask, labels = bt
        model.zero_grad()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    def eval_batch(bt):
        ids, mask, _ = bt
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=mask).logits

    def warm_up(n, f):  # one untimed step (first-touch memory, lazy initialisation), on the widest
        # of the first n batches, as peer_bertlab.lua: no timed step meets a longer one
        f(max(batches[:n], key=lambda bt: bt[0].shape[1]))

    def time_reps(reps, f):
        if reps >= 1:
            warm_up(reps, f)
        t0 = time.perf_counter()
        for k in range(reps):
            f(batches[k])
        return reps / (time.perf_counter() - t0)

    sync = os.environ.get("BENCH_SYNC")
    if not sync:
        model.train()
        train_sps = time_reps(train_reps, train_step)
        model.eval()
        eval_bps = time_reps(eval_reps, eval_batch)
        widths = [batches[k][0].shape[1] for k in range(train_reps)]
    else:  # in lockstep with the other peer (bench.lua's BENCH_PAIRS): as peer_bertlab.lua's BENCH_SYNC
        done = open(sync + ".done", "w", buffering=1)
        go = open(sync + ".go", "r")
        done.write("ready\n")
        phase, k, widths = None, 0, []
        total = {"train": [0, 0.0], "eval": [0, 0.0]}
        for line in go:
            line = line.strip()
            if line == "quit":
                break
            cmd, secs = line.split()
            secs = float(secs)
            f = train_step if cmd == "train" else eval_batch
            wrap = max(1, train_reps if cmd == "train" else eval_reps)  # as peer_bertlab.lua
            if cmd != phase:
                phase, k = cmd, 0
                model.train() if cmd == "train" else model.eval()
                warm_up(wrap, f)
            n, t0 = 0, time.perf_counter()
            while True:
                bt = batches[k % wrap]
                f(bt)
                if cmd == "train":
                    widths.append(bt[0].shape[1])
                k, n = k + 1, n + 1
                if time.perf_counter() - t0 >= secs:
                    break
            dt = time.perf_counter() - t0
            total[cmd][0] += n
            total[cmd][1] += dt
            done.write("n=%d dt=%.6g\n" % (n, dt))
        rate = lambda t: t[0] / t[1] if t[1] > 0 else 0.0
        train_sps, eval_bps = rate(total["train"]), rate(total["eval"])
        widths = widths or [0]
    tokens = sum(B * w for w in widths) / len(widths)
    attn = sum(B * w ** 2 for w in widths) / len(widths)
    impl = "torch-%s/transformers-%s/%s" % (torch.__version__, __import__("transformers").__version__,
                                              getattr(model.config, "_attn_implementation", "?"))
    print("peer: train_sps=%.6g eval_bps=%.6g tokens=%.6g attn=%.6g rss_kb=%d impl=%s"
          % (train_sps, eval_bps, tokens, attn, peak_rss_kb(), impl))


if __name__ == "__main__":
    main()
