#!/usr/bin/env python3
"""Writes tests/fixtures/pretok.jsonl: how Hugging Face tokenizers splits a corpus
of hard texts under each pre-tokenizer that lisa.h's scanners implement.

Run from the repository root (deterministic; needs the tokenizers package):
    /work/venv/bin/python tools/make_pretok_fixtures.py

The first line is {"patterns": {"<scanner>": [regex, ...], ...}}: the exact
regex texts used below. Then each line: {"text": T, "<scanner>": [end, ...], ...}, one list per scanner
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
QWEN35 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}|"
          r" ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
UPPER, LOWER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
GPT4O = (r"[^\r\n\p{L}\p{N}]?" + UPPER + "*" + LOWER + "+" + CONTRACTIONS + "?|" +
         r"[^\r\n\p{L}\p{N}]?" + UPPER + "+" + LOWER + "*" + CONTRACTIONS + "?|" +
         r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
TEKKEN = (r"[^\r\n\p{L}\p{N}]?" + UPPER + "*" + LOWER + "+|" +
          r"[^\r\n\p{L}\p{N}]?" + UPPER + "+" + LOWER + "*|" +
          r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# DeepSeek V3's three splits; its tokenizer.json holds CR and LF themselves in the third.
NUMBERS3 = r"\p{N}{1,3}"
CJK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
DEEPSEEK3 = ("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
             " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+")
DEEPSEEK3_ESCAPED = DEEPSEEK3.replace("\r", "\\r").replace("\n", "\\n")
# llama.cpp's "default" and "falcon" sequences add these.
NUMBER_RUNS = r"\p{N}+"
PUNCT_RUNS = r"[\p{P}\$\+<=>\^~\|]+"
DIGITS3 = r"[0-9][0-9][0-9]"


def split(pattern):
    return pre_tokenizers.Split(Regex(pattern), behavior="isolated")


# The regex of each scanner that has one, spelled as tokenizer.json holds it.
PATTERNS = {"gpt2": [GPT2], "llama3": [LLAMA3], "qwen2": [QWEN2], "qwen35": [QWEN35], "gpt4o": [GPT4O],
            "tekken": [TEKKEN], "numbers3": [NUMBERS3], "cjk": [CJK], "deepseek3": [DEEPSEEK3, DEEPSEEK3_ESCAPED],
            "number-runs": [NUMBER_RUNS], "punct-runs": [PUNCT_RUNS], "digits3": [DIGITS3]}

SCANNERS = [
    ("gpt2", split(GPT2)),
    ("llama3", split(LLAMA3)),
    ("qwen2", split(QWEN2)),
    ("digits", pre_tokenizers.Digits(individual_digits=True)),
    ("digit-runs", pre_tokenizers.Digits(individual_digits=False)),
    ("qwen35", split(QWEN35)),
    ("gpt4o", split(GPT4O)),
    ("tekken", split(TEKKEN)),
    ("numbers3", split(NUMBERS3)),
    ("cjk", split(CJK)),
    ("deepseek3", split(DEEPSEEK3)),
    ("number-runs", split(NUMBER_RUNS)),
    ("punct-runs", split(PUNCT_RUNS)),
    ("digits3", split(DIGITS3)),
]
SAME_AS = {"deepseek3": split(DEEPSEEK3_ESCAPED)}   # other spellings that must split alike
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
    "HelloWorld camelCase XMLHttpRequest ABCdef iPhone McDonald's", "SHOUTING'S LOUD'LL", "ǅungla ǈubljana",
    "中A A中 中a a中 ー", "\u0301A", "\u0301a", "\u0301\u0301", "a\u0301B\u0301c", "ʰa Aʰ ʰ", "Ǆa",
    "漢字とひらがなとカタカナ、混ぜる。", "ｶﾀｶﾅ ㍿ 〜〜", "丂龥龦", "#include <x>", "_var -x @me $HOME", "1abc 12ab",
    "path/to/file\n", "a/\n/\nb", "end!/\r\n", "1234567 12345678", "007 0.5 ３４５６", "x1y22z333w4444",
    "+=<>^~| $$ ++", "¡¿…‰", "a\u2009b", "\u0085x\u0085", "%d%s", "'S 'Ll 'ſT", "ab'cd'ef", "AB'CD",
    "\u3040\u309f\u30a0\u30ff|\u4dff\u4e00\u9fa5\u9fa6\u303f\u3100", "1 2 3", "\x01a\x01\x02", "٣x ٣ x٣",
    "\u200d\u200d!", "9\u200d9", " 1 ", "\t1\n", "a1b2c3",
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
             "中", "文", "ك", "ع", "क", "ि", "ก", "ั", "α", "Ж", "Word", "aB", "ǅ", "ʰ", "ひ", "カ", "ー", "龦",
             "/", "|", "^", "123456", "%",
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
    lines = [json.dumps({"patterns": PATTERNS}, ensure_ascii=False, separators=(",", ":"))]
    for text in texts:
        row = {"text": text}
        for name, pre in SCANNERS:
            row[name], offsets = ends(pre, text)
            if name == "gpt2" and [o for _, o in BYTE_LEVEL.pre_tokenize_str(text)] != offsets:
                sys.exit("ByteLevel splits %r unlike the GPT-2 regex" % text)
            if name in SAME_AS and ends(SAME_AS[name], text)[1] != offsets:
                sys.exit("the spellings of %s split %r differently" % (name, text))
        lines.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    path = os.path.join(root, "tests", "fixtures", "pretok.jsonl")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d texts, tokenizers %s" % (path, len(lines) - 1, tokenizers.__version__))


if __name__ == "__main__":
    main()
