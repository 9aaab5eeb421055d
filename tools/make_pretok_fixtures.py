#!/usr/bin/env python3
"""Writes tests/fixtures/pretok.jsonl: how Hugging Face tokenizers splits a corpus
of hard texts under each pre-tokenizer that lisa.h's scanners implement.

Run from the repository root (deterministic; needs the tokenizers package):
    /work/venv/bin/python tools/make_pretok_fixtures.py

Each line: {"text": T, "<scanner>": [end, ...], ...}, one list per scanner
(named as lisa__pretok_name names them) of the byte offsets in T's UTF-8 where
each piece ends. The reference is tokenizers itself:
Split(Regex(pattern), behavior="isolated") for the regexes, Digits for the
digit scanners. ByteLevel(use_regex=True) is checked to split as the GPT-2
regex does.
"""
import json
import os
import random
import sys

import tokenizers
from tokenizers import Regex, pre_tokenizers

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

SCANNERS = [
    ("gpt2", pre_tokenizers.Split(Regex(GPT2), behavior="isolated")),
    ("llama3", pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated")),
    ("qwen2", pre_tokenizers.Split(Regex(QWEN2), behavior="isolated")),
    ("digits", pre_tokenizers.Digits(individual_digits=True)),
    ("digit-runs", pre_tokenizers.Digits(individual_digits=False)),
]
BYTE_LEVEL = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)

WHITE_SPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
               "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

HAND = [
    "", "a", " ", "  ", "\n", "'", "'s", "Hello world", "Hello  world", "Hello   world ",
    "trailing spaces   ", "   leading", "tab\tseparated\t\tvalues", "line\nbreak", "win\r\nline\r\n\r\nend",
    "mixed \r\n \n\t\n  x", "a\n\n\nb", "  \n  \n  ", "x \n", "x\n ", " \r", "\r\n", "\n\r\n\r",
    "I'm you're he's she'd we'll they've it't", "I'M YOU'RE HE'S SHE'D WE'LL THEY'VE", "I'Ll 'rE 'Ve 'Sx",
    "don't'", "''s", "'''", "' s", " 's", "x's", "'ſ 'ſa", "'ſt", "rock'n'roll", "O'Neil's",
    "12345678901234567890", "3.14159 and 2,718", "$1,000,000.00", "+44 20 7946 0958", "v1.2.3-beta",
    "١٢٣٤٥٦٧٨٩٠ ٣", "１２３４５ ６", "²³¹ ¼½¾ Ⅻ ⅷ", "𑷠𑷡 𖿴𖿵", "x²+y³", "0x1F 0b101", "1e-10",
    "Hello!!! What??? ...", "end.\n", "punct!!\n\n", "wow?!\r\n\r\nnext", "(a+b)*c", "a--b__c", "..\n..",
    "func(x) { return x * 2; }\n", "if (a && b) {\n    c();\n}\n", "#include <stdio.h>\nint main(void)",
    "    indented code\n        more", "\tdef f():\n\t\treturn 1\n", "x = [1, 2, 3]  # comment",
    "café naïve résumé", "cafe\u0301 nai\u0308ve", "\u0301\u0301a", "a\u0300\u0301\u0302", " \u0301", "x \u0300y",
    "Ελληνικά κείμενα", "Русский текст, да!", "中文文本，标点。", "日本語のテキストです", "한국어 텍스트",
    "العربية نص", "עברית טקסט", "हिन्दी पाठ है", "ภาษาไทยข้อความ", "ქართული", "Ǆemal ǅ ǆ", "İstanbul ıı",
    "ß ẞ straße", "😀 😀😀 👍🏽", "👨\u200d👩\u200d👧\u200d👦 family", "❤\ufe0f ✌\ufe0e", "🏳\ufe0f\u200d🌈",
    "a\u200bb\u200cc\u200dd", "\ufeffBOM", "\u00ad soft", "\x00nul\x01ctl\x7f", "e\u0301\u0327",
    "<|im_start|>user\nHi<|im_end|>", "<s>[INST] hi [/INST]", "multiple     spaces     here",
    "a \u00a0b\u00a0 c", "x\u3000y\u3000\u3000z", "p\u2028q\u2029r", "n\u0085l", "v\x0bf\x0c", "\u1680ogham",
    "dots\u2026more", "«quotes» “curly” ‘single’", "em—dash – en", "¿Qué? ¡Sí!", "a/b\\c|d",
]
HAND += ["x" + ws + "y" for ws in WHITE_SPACE]
HAND += [ws + ws + "a" for ws in WHITE_SPACE]
HAND += [ws + "1" + ws for ws in WHITE_SPACE]
HAND += ["." + ws + "\n" for ws in WHITE_SPACE]

ALPHABET = ([" ", " ", " ", "  ", "\t", "\n", "\r", "\r\n", "\n\n", "\u00a0", "\u3000", "\u2028", "\x0b", "\x85",
             "'", "'s", "'S", "'ll", "'LL", "'Re", "'ve", "'d", "'M", "'T", "'ſ", "'x",
             ".", ",", "!", "?", "…", "\"", "-", "_", "$", "+", "<", ">", "(", ")", "#", "/",
             "a", "b", "Z", "é", "e\u0301", "\u0300", "ß", "ǅ", "ſ", "the", "The", "HELLO",
             "0", "1", "9", "42", "2024", "٣", "５", "²", "Ⅻ", "𑷠",
             "中", "文", "ك", "ع", "क", "ि", "ก", "ั", "α", "Ж",
             "😀", "👍", "\U0001F3FD", "\u200d", "\ufe0f", "\u200b", "\ufeff", "\x00", "\x7f"])


def random_texts(count, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 24))) for _ in range(count)]


def ends(pre, text):
    pieces = pre.pre_tokenize_str(text)
    if "".join(p for p, _ in pieces) != text:
        sys.exit("pieces do not cover %r" % text)
    out, at = [], 0
    for piece, _ in pieces:
        at += len(piece.encode("utf-8"))
        out.append(at)
    return out, [o for _, o in pieces]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    texts = HAND + random_texts(300, 12)
    lines = []
    for text in texts:
        row = {"text": text}
        for name, pre in SCANNERS:
            row[name], offsets = ends(pre, text)
            if name == "gpt2" and [o for _, o in BYTE_LEVEL.pre_tokenize_str(text)] != offsets:
                sys.exit("ByteLevel splits %r unlike the GPT-2 regex" % text)
        lines.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    path = os.path.join(root, "tests", "fixtures", "pretok.jsonl")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d texts, tokenizers %s" % (path, len(lines), tokenizers.__version__))


if __name__ == "__main__":
    main()
