#!/usr/bin/env python3
"""Reference fixtures for `build/lisa tokenize` and `build/lisa generate --chat` (tests/test_cli.sh).

HOW TO RUN (from the repository root):

    /work/venv/bin/python tools/make_cli_tokenize_fixtures.py

Needs: transformers (5.x) and the tokenizer directories under tests/fixtures/tokenizers/ (made by
tools/make_tokenizer_fixtures.py). No network. Deterministic: the same script gives the same bytes.

Writes tests/fixtures/cli/:
    <text>.txt              a few texts: several lines, non-ASCII characters, special tokens inside
    <text>.<tokenizer>.tok  transformers' AutoTokenizer.from_pretrained(dir)(text).input_ids (BOS and
                            EOS as each tokenizer's own configuration adds them), as an llm.c token
                            file: 256 little-endian int32 (magic 20240520, version 1, count, zeros),
                            then uint16 ids; magic 20240801, version 7 and uint32 ids when an id
                            does not fit 16 bits (the layout lisa.h's lisa_tokens_save writes)
    chat.<tokenizer>.ids    the ids of apply_chat_template([{"role": "user", "content": CHAT_PROMPT}],
                            add_generation_prompt=True) with each tokenizer's own chat template, one
                            line of space-separated integers: what generate --chat feeds the model
"""
import os
import struct

from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZERS = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
OUT = os.path.join(ROOT, "tests", "fixtures", "cli")

# The tokenizers test_cli.sh tokenizes with: the directory name under tests/fixtures/tokenizers.
NAMES = ["smollm2", "llama3-split", "spm-bpe"]

TEXTS = {
    "lines": "The cat sat on the mat.\nIt was a sunny day,\n\n  and the dog slept\tunder the tree.\n"
             "Numbers: 3.14159, 2026-12-02, 1000000!\n",
    "unicode": "Grüße aus Köln — naïve café, 日本語のテキスト, Ελληνικά, עברית.\n"
               "Emoji: 🙂👍🏽 and a combining e\u0301 in \"cafe\u0301\".\n",
    "special": "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
               "<s>[INST] a question [/INST] an answer</s>\n"
               "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhey<|eot_id|>"
               " <|endoftext|> plain text after\n",
}

CHAT_PROMPT = "What is 2+2?"


def token_file(ids):
    wide = any(i > 0xFFFF for i in ids)
    header = [20240801 if wide else 20240520, 7 if wide else 1, len(ids)] + [0] * 253
    return struct.pack("<256i", *header) + struct.pack("<%d%s" % (len(ids), "I" if wide else "H"), *ids)


def main():
    os.makedirs(OUT, exist_ok=True)
    for text_name, text in TEXTS.items():
        with open(os.path.join(OUT, text_name + ".txt"), "w", encoding="utf-8", newline="") as f:
            f.write(text)
    for name in NAMES:
        tok = AutoTokenizer.from_pretrained(os.path.join(TOKENIZERS, name))
        for text_name, text in TEXTS.items():
            ids = tok(text).input_ids
            with open(os.path.join(OUT, "%s.%s.tok" % (text_name, name)), "wb") as f:
                f.write(token_file(ids))
            print("%s.%s: %d ids" % (text_name, name, len(ids)))
        if tok.chat_template:
            ids = tok.apply_chat_template([{"role": "user", "content": CHAT_PROMPT}], tokenize=True,
                                          add_generation_prompt=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            with open(os.path.join(OUT, "chat.%s.ids" % name), "w") as f:
                f.write(" ".join(str(i) for i in ids) + "\n")
            print("chat.%s: %s" % (name, ids))


if __name__ == "__main__":
    main()
