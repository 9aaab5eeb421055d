#!/usr/bin/env python3
"""References with llama.cpp's tokenizer semantics for the GGUF tokenizer fixtures, computed with
Hugging Face `tokenizers` (not with lisa.h).

HOW TO RUN (from the repository root, after tools/make_tokenizer_fixtures.py):

    /work/venv/bin/python tools/make_gguf_tokenizer_reference.py

Needs: tokenizers, gguf (gguf-py). No network, no model files. Deterministic.

Writes tests/fixtures/tokenizers/gguf/<name>.gguf.split.jsonl for each GGUF fixture, one line per
corpus text: {"text", "ids", "ids_plain", "decoded"} as in <name>.gguf.expected.jsonl, but with
what llama.cpp (src/llama-vocab.cpp) does where transformers' GGUF reading differs:

  - The text is first split at the whole-string tokens: those of token_type 2 (unknown),
    3 (control) and 4 (user-defined), matched in the raw text, leftmost and longest first
    (llama.cpp's tokenizer_st_partition; transformers matches a normalized user-defined token in
    the normalized text instead, and honours lstrip/rstrip flags the GGUF does not have).
  - Each stretch of text between them is encoded on its own by the tokenizer.json directory the
    GGUF was made from (tools/make_tokenizer_fixtures.py), add_special_tokens=False:
      smollm2       smollm2/ with Digits(individual_digits) before ByteLevel: llama.cpp's
                    "smollm" pre-tokenizer splits each \\p{N} first
      gpt2          gpt2-bytelevel/
      llama-bpe     llama3-split/ (ignore_merges, as llama.cpp sets for llama-bpe)
      qwen2         qwen2-split/ without its NFC normalizer (llama.cpp has none)
      llama-spm(-v2) spm-bpe/, whose Prepend("▁") + Replace(" ", "▁") normalizer runs per stretch:
                    llama.cpp's add_space_prefix puts a space before every stretch
  - ids adds BOS / EOS as tokenizer.ggml.add_bos_token / add_eos_token say.
  - decoded: llama.cpp's token_to_piece joined: a whole-string token is its text as stored; a
    byte token <0xXX> its byte; other tokens their GPT-2 alphabet undone (gpt2) or U+2581 as a
    space (llama); with add_space_prefix one leading space of the first piece goes.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
GGUF_DIR = os.path.join(OUT, "gguf")

FIXTURES = [
    ("smollm2", "smollm2", "digits"),
    ("gpt2", "gpt2-bytelevel", None),
    ("llama-bpe", "llama3-split", None),
    ("qwen2", "qwen2-split", "no-normalizer"),
    ("llama-spm", "spm-bpe", None),
    ("llama-spm-v2", "spm-bpe", None),
]
WHOLE_STRING_TYPES = (2, 3, 4)


def dumps(value):
    text = json.dumps(value, ensure_ascii=False)
    for ch in "\x7f\x85\u2028\u2029":
        text = text.replace(ch, "\\u%04x" % ord(ch))
    return text


def read_gguf(path):
    from gguf import GGUFReader
    r = GGUFReader(path)

    def get(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()
    return {
        "model": get("tokenizer.ggml.model"),
        "tokens": get("tokenizer.ggml.tokens"),
        "types": get("tokenizer.ggml.token_type"),
        "bos": get("tokenizer.ggml.bos_token_id"),
        "eos": get("tokenizer.ggml.eos_token_id"),
        "add_bos": bool(get("tokenizer.ggml.add_bos_token", get("tokenizer.ggml.model") == "llama")),
        "add_eos": bool(get("tokenizer.ggml.add_eos_token", False)),
        "space_prefix": bool(get("tokenizer.ggml.add_space_prefix", get("tokenizer.ggml.model") == "llama")),
    }


def source_tokenizer(source, change):
    from tokenizers import Tokenizer, pre_tokenizers
    tk = Tokenizer.from_file(os.path.join(OUT, source, "tokenizer.json"))
    if change == "digits":
        tk.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    elif change == "no-normalizer":
        tk.normalizer = None
    return tk


def split_whole(text, whole):
    """(segment, id): id None for a stretch of text, else the whole-string token matched."""
    longest = max(len(t) for t in whole)
    out, start, i = [], 0, 0
    while i < len(text):
        hit = None
        for n in range(min(longest, len(text) - i), 0, -1):
            if text[i:i + n] in whole:
                hit = n
                break
        if hit is None:
            i += 1
            continue
        if start < i:
            out.append((text[start:i], None))
        out.append((text[i:i + hit], whole[text[i:i + hit]]))
        i += hit
        start = i
    if start < len(text):
        out.append((text[start:], None))
    return out


def piece_bytes(g, tid, byte_decoder):
    t, ty = g["tokens"][tid], g["types"][tid]
    if ty in WHOLE_STRING_TYPES:
        return t.encode("utf-8")
    if ty == 6:
        return bytes([int(t[3:5], 16)])
    if g["model"] == "llama":
        return t.replace("\u2581", " ").encode("utf-8")
    return bytes(byte_decoder[c] for c in t)


def main():
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    for name, source, change in FIXTURES:
        path = os.path.join(GGUF_DIR, name + ".gguf")
        g = read_gguf(path)
        whole = {t: i for i, t in enumerate(g["tokens"]) if g["types"][i] in WHOLE_STRING_TYPES}
        tk = source_tokenizer(source, change)
        rows = []
        for text in tokenizer_corpus.CORPUS:
            plain = []
            for seg, tid in split_whole(text, whole):
                plain.extend([tid] if tid is not None else tk.encode(seg, add_special_tokens=False).ids)
            ids = ([g["bos"]] if g["add_bos"] else []) + plain + ([g["eos"]] if g["add_eos"] else [])
            pieces = [piece_bytes(g, i, byte_decoder) for i in plain]
            if pieces and g["model"] == "llama" and g["space_prefix"] and pieces[0].startswith(b" "):
                pieces[0] = pieces[0][1:]
            rows.append({"text": text, "ids": ids, "ids_plain": plain,
                         "decoded": b"".join(pieces).decode("utf-8")})
        with open(path + ".split.jsonl", "w", encoding="utf-8", newline="") as f:
            f.write("".join(dumps(r) + "\n" for r in rows))
        with open(path + ".expected.jsonl", encoding="utf-8") as f:
            expected = [json.loads(line) for line in f]
        differ = [k + 1 for k, (a, b) in enumerate(zip(rows, expected))
                  if a["ids"] != b["ids"] or a["ids_plain"] != b["ids_plain"] or a["decoded"] != b["decoded"]]
        print("%s.gguf.split.jsonl: %d lines, %d differ from %s.gguf.expected.jsonl %s"
              % (name, len(rows), len(differ), name, differ))


if __name__ == "__main__":
    main()
