"""Encoding speed of the Hugging Face `tokenizers` library on one thread, on
the same text as bench/bench_tokenizer.c (each string of
tests/fixtures/tokenizers/corpus.jsonl as one chunk, then train.txt as one
chunk, repeated to about 8 MB), one encode() call per chunk, without special
tokens, so that the two programs' MB/s, run on one machine, give a ratio.

    /work/venv/bin/python bench/bench_tokenizer.py [TOKENIZER] [MB]

TOKENIZER is a tokenizer.json or a directory holding one (default
tests/fixtures/tokenizers/smollm2). The token count should equal the C
program's (same ids, checked by tests/test_bpe.c on the fixtures).
"""
import os

# One thread: set before tokenizers starts its thread pool.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import json
import platform
import sys
import time

from tokenizers import Tokenizer

FIXTURES = "tests/fixtures/tokenizers/"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def unit():
    texts = []
    with open(FIXTURES + "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                s = json.loads(line)
                if s:
                    texts.append(s)
    with open(FIXTURES + "train.txt", "rb") as f:
        texts.append(f.read().decode("utf-8"))
    return texts


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else FIXTURES + "smollm2"
    mb = float(sys.argv[2]) if len(sys.argv) > 2 else 8.0
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    u = unit()
    unit_bytes = sum(len(s.encode("utf-8")) for s in u)
    reps = int((mb * 1e6 + unit_bytes - 1) // unit_bytes)
    chunks = u * reps
    total = unit_bytes * reps

    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        tok = Tokenizer.from_file(path)
        loads.append(time.perf_counter() - t0)
    loads.sort()

    tok.encode(chunks[0], add_special_tokens=False)  # warm up
    t0 = time.perf_counter()
    n_tokens = 0
    all_ids = []
    for s in chunks:
        ids = tok.encode(s, add_special_tokens=False).ids
        n_tokens += len(ids)
        all_ids.append(ids)
    t_enc = time.perf_counter() - t0

    t0 = time.perf_counter()
    for ids in all_ids:
        tok.decode(ids, skip_special_tokens=False)
    t_dec = time.perf_counter() - t0

    print(f"tokenizers: {path}")
    print(f"cpu: {cpu_model()}, 1 thread (RAYON_NUM_THREADS=1, no encode_batch)")
    print(f"text: {total / 1e6:.2f} MB in {len(chunks)} chunks, {n_tokens} tokens")
    print(f"load:    {loads[1] * 1e3:8.1f} ms (median of 3)")
    print(f"encode:  {total / 1e6 / t_enc:8.2f} MB/s  {n_tokens / t_enc:10.0f} tokens/s")
    print(f"decode:  {total / 1e6 / t_dec:8.2f} MB/s")


if __name__ == "__main__":
    main()
