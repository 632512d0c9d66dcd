"""bench_tokenizer.py: titles/s of Hugging Face's fast BertTokenizer (the Rust tokenizers library) on the
2,507 dataset titles, padded to 256 with truncation and returning PyTorch tensors as in the tutorial, single
thread, timed in process CPU time like os.clock in the Lua peer (the machine is shared). Also times the Rust
library alone and the slow (Python) tokenizer, for context. Prints "result: tokenizer.hf <titles/s>" and
"result: tokenizer.hf_rust_only <titles/s>" for bench/run.sh."""
import os

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
import csv  # noqa: E402
import time  # noqa: E402

from transformers.models.bert.tokenization_bert import BertTokenizer, load_vocab  # noqa: E402
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def first(*paths):
    return next((p for p in paths if os.path.exists(p)), paths[-1])


CSV = first(os.path.join(ROOT, "data/title_conference.csv"), os.path.join(ROOT, "../shared/data/title_conference.csv"))
VOCAB = first(os.path.join(ROOT, "data/vocab.txt"), os.path.join(ROOT, "../shared/data/bert-base-uncased-vocab.txt"))
with open(CSV, newline="", encoding="utf-8") as f:
    titles = [r["Title"] for r in csv.DictReader(f)]
kw = dict(add_special_tokens=True, return_attention_mask=True, padding="max_length", max_length=256,
          truncation=True, return_tensors="pt")


def best_time(fn, min_reps, min_s):
    fn()  # warm-up
    best, reps, t_all = float("inf"), 0, time.process_time()
    while reps < min_reps or time.process_time() - t_all < min_s:
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
        reps += 1
    return best, reps


fast = BertTokenizer(vocab=load_vocab(VOCAB), do_lower_case=True)
best, reps = best_time(lambda: fast(titles, **kw), 5, 2.0)
print(f"hf fast BertTokenizer (tokenizers, 1 thread): {len(titles)} titles, padded to 256, best of {reps} runs: "
      f"{best * 1e3:.2f} ms")
# the Rust library alone (padding/truncation in Rust, no Python lists or tensors): the lower bound of HF
rust = fast.backend_tokenizer.__class__.from_str(fast.backend_tokenizer.to_str())
rust.enable_truncation(max_length=256)
rust.enable_padding(length=256, pad_id=fast.pad_token_id, pad_token=fast.pad_token)
rbest, rreps = best_time(lambda: rust.encode_batch(titles), 5, 2.0)
print(f"tokenizers encode_batch alone (Rust, 1 thread, padded to 256, no tensors): best of {rreps} runs: "
      f"{rbest * 1e3:.2f} ms")
slow = BertTokenizerLegacy(VOCAB, do_lower_case=True)
sbest, sreps = best_time(lambda: slow(titles, **kw), 1, 0.0)
print(f"hf slow BertTokenizerLegacy (Python): best of {sreps} runs: {sbest * 1e3:.1f} ms "
      f"({len(titles) / sbest:.0f} titles/s)")
print(f"result: tokenizer.hf {len(titles) / best:.0f} titles/s")
print(f"result: tokenizer.hf_rust_only {len(titles) / rbest:.0f} titles/s")
