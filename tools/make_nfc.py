#!/usr/bin/env python3
"""Generates lisa.h's Unicode normalization (NFC) tables, the block between
/* BEGIN GENERATED: tools/make_nfc.py */ and /* END GENERATED */, and the
test fixture tests/fixtures/nfc.txt.

Run from the repository root:
    /work/venv/bin/pip install unicodedata2==16.0.0
    /work/venv/bin/python tools/make_nfc.py

The data is Unicode 16.0.0 (UAX #15), read from unicodedata2 16.0.0: the
canonical decompositions (each one or two code points, applied recursively),
the canonical combining classes, and which two-code-point decompositions are
primary composites. Unicode's Full_Composition_Exclusion is not exposed by
unicodedata2; a two-code-point decomposition is excluded exactly when its
character does not survive NFC on its own (NFC_Quick_Check=No), which is what
the script asks. Hangul syllables are algorithmic (Unicode 3.12) and are not
in the tables.

Tables (all sorted, searched by binary search):
  lisa__nfc_blocks  a bit per 128 code points below LISA__NFC_LIMIT: set where
                    the block holds a code point that is not a plain starter
                    (canonical combining class 0 and NFC_Quick_Check=Yes)
  lisa__nfc_ccc     runs of equal combining class: start << 8 | class
  lisa__nfc_druns   runs of consecutive code points with a decomposition:
                    start << 12 | index of the run's first entry in lisa__nfc_dmap
  lisa__nfc_dmap    first code point | second's index + 1 << 18 (0: a singleton)
                    | 1 << 25 when the pair does not compose back (excluded)
  lisa__nfc_second  the distinct second code points of the pairs
  lisa__nfc_comp    the entries of pairs that compose, by (second, first)

The fixture, one case a line, "input<TAB>expected", both UTF-8 bytes in hex,
expected = unicodedata2.normalize("NFC", input): every code point with a
canonical decomposition or a nonzero combining class alone, then
combinations (bases with marks in shuffled orders, Hangul jamo sequences,
exclusions, singletons, blocked compositions, starters that compose after a
mark) and real-language text. tests/fixtures/nfc_tokens.jsonl: texts that NFC
changes with the ids tokenizers gives them with the qwen2-split tokenizer
(an NFC normalizer and an added token "caf\u00e9" with normalized true).
"""
import json
import os
import random
import sys

try:
    import unicodedata2 as ud
except ImportError:
    sys.exit("tools/make_nfc.py needs unicodedata2==16.0.0 (pip install unicodedata2==16.0.0)")

UNICODE_VERSION = "16.0.0"
if ud.unidata_version != UNICODE_VERSION:
    sys.exit("unicodedata2 has Unicode %s; %s is required" % (ud.unidata_version, UNICODE_VERSION))

S_BASE, L_BASE, V_BASE, T_BASE = 0xAC00, 0x1100, 0x1161, 0x11A7
L_COUNT, V_COUNT, T_COUNT = 19, 21, 28
S_COUNT = L_COUNT * V_COUNT * T_COUNT
BLOCK = 128


def all_cps():
    return [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def canonical_decomposition(cp):
    d = ud.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def nfc(s):
    return ud.normalize("NFC", s)


def load():
    dec, ccc = {}, {}
    for cp in all_cps():
        if S_BASE <= cp < S_BASE + S_COUNT:
            continue
        d = canonical_decomposition(cp)
        if d:
            assert 1 <= len(d) <= 2, hex(cp)
            dec[cp] = d
        k = ud.combining(chr(cp))
        if k:
            ccc[cp] = k
    excluded = set(cp for cp, d in dec.items() if len(d) == 2 and nfc(chr(cp)) != chr(cp))
    return dec, ccc, excluded


def check_bounds(dec, excluded):
    """The C code sizes its buffers by these: checked, not assumed."""
    def full(cp):
        d = dec.get(cp)
        if d is None:
            return [cp]
        return [x for y in d for x in full(y)]
    for cp in dec:
        n = len(chr(cp).encode("utf-8"))
        f = full(cp)
        assert 2 * len(f) <= 3 * n, "decomposition of U+%04X: more than 3 code points per 2 bytes" % cp
        assert len("".join(map(chr, f)).encode("utf-8")) <= 3 * n, "U+%04X grows more than 3 times" % cp
        assert len(f) <= 4, "U+%04X decomposes to more than 4 code points" % cp
    for cp, d in dec.items():
        if len(d) == 2 and cp not in excluded:
            assert len(chr(cp).encode()) <= len(chr(d[0]).encode()) + len(chr(d[1]).encode())


def wrap(items, per_line, indent="    "):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append(indent + ", ".join(items[i:i + per_line]) + ",")
    lines[-1] = lines[-1][:-1]
    return lines


def generate(dec, ccc, excluded):
    composing = sorted((d[1], d[0], cp) for cp, d in dec.items() if len(d) == 2 and cp not in excluded)
    maybe = set(b for b, _, _ in composing) | set(range(V_BASE, V_BASE + V_COUNT)) | \
        set(range(T_BASE + 1, T_BASE + T_COUNT))
    qc_no = set(cp for cp, d in dec.items() if len(d) == 1 or cp in excluded)
    # every code point Unicode says is NFC_Quick_Check No or Maybe, checked: alone, a No does not survive NFC
    for cp in all_cps():
        if cp in qc_no:
            assert nfc(chr(cp)) != chr(cp), hex(cp)
        else:
            assert nfc(chr(cp)) == chr(cp), hex(cp)
    special = set(ccc) | maybe | qc_no
    limit = max(special) + 1
    n_blocks = (limit + BLOCK - 1) // BLOCK
    words = [0] * ((n_blocks + 31) // 32)
    for cp in special:
        b = cp // BLOCK
        words[b // 32] |= 1 << (b % 32)
    runs, prev = [], 0
    for cp in range(limit + 1):
        k = ccc.get(cp, 0)
        if k != prev:
            runs.append(cp << 8 | k)
            prev = k
    seconds = sorted(set(d[1] for d in dec.values() if len(d) == 2))
    assert len(seconds) < 127
    cps = sorted(dec)
    druns, dmap = [], []
    for i, cp in enumerate(cps):
        if i == 0 or cp != cps[i - 1] + 1:
            druns.append(cp << 12 | i)
        d = dec[cp]
        v = d[0] | (0 if len(d) == 1 else (seconds.index(d[1]) + 1) << 18) | ((1 << 25) if cp in excluded else 0)
        dmap.append(v)
    assert len(cps) < 4096 and max(cps) < 1 << 18 and max(d[0] for d in dec.values()) < 1 << 18
    druns.append(limit << 12 | len(cps))  # the end of the last run
    index = dict((cp, i) for i, cp in enumerate(cps))
    comp = [index[cp] for _, _, cp in composing]

    out = ["/* BEGIN GENERATED: tools/make_nfc.py */",
           "/* Unicode %s canonical decompositions, combining classes and compositions" % UNICODE_VERSION,
           "   (UAX #15), from unicodedata2 %s; Hangul syllables are algorithmic. */" % ud.unidata_version,
           "#define LISA__NFC_VERSION \"%s\"" % UNICODE_VERSION,
           "/* From here on every code point is a starter that NFC keeps as it is. */",
           "#define LISA__NFC_LIMIT 0x%X" % limit,
           "/* Bit b of word w: code points (32 w + b) * %d on, %d of them, hold one that is" % (BLOCK, BLOCK),
           "   not a plain starter (combining class 0, NFC_Quick_Check Yes). */",
           "#define LISA__NFC_BLOCK_SHIFT %d" % (BLOCK.bit_length() - 1),
           "static const uint32_t lisa__nfc_blocks[%d] = {" % len(words)]
    out += wrap(["0x%X" % w for w in words], 8)
    out += ["};",
            "/* Runs of one canonical combining class, start << 8 | class, sorted; the last",
            "   run ends at LISA__NFC_LIMIT. */",
            "#define LISA__NFC_N_CCC %d" % len(runs),
            "static const uint32_t lisa__nfc_ccc[LISA__NFC_N_CCC] = {"]
    out += wrap(["0x%X" % r for r in runs], 10)
    out += ["};",
            "/* Runs of consecutive code points with a canonical decomposition: start << 12 |",
            "   the index of its first one in lisa__nfc_dmap; the last entry ends the last run. */",
            "#define LISA__NFC_N_DRUNS %d" % len(druns),
            "static const uint32_t lisa__nfc_druns[LISA__NFC_N_DRUNS] = {"]
    out += wrap(["0x%X" % r for r in druns], 10)
    out += ["};",
            "/* Each decomposition: the first code point | (the second's index in",
            "   lisa__nfc_second + 1) << 18 (0: a singleton) | 1 << 25 when the pair is",
            "   excluded from composition. */",
            "#define LISA__NFC_N_DECOMP %d" % len(dmap),
            "static const uint32_t lisa__nfc_dmap[LISA__NFC_N_DECOMP] = {"]
    out += wrap(["0x%X" % v for v in dmap], 10)
    out += ["};",
            "static const uint32_t lisa__nfc_second[%d] = {" % len(seconds)]
    out += wrap(["0x%X" % s for s in seconds], 10)
    out += ["};",
            "/* The decompositions that compose back, as indices into lisa__nfc_dmap, sorted",
            "   by (second, first). */",
            "#define LISA__NFC_N_COMP %d" % len(comp),
            "static const unsigned short lisa__nfc_comp[LISA__NFC_N_COMP] = {"]
    out += wrap([str(c) for c in comp], 16)
    out += ["};", "/* END GENERATED */"]
    return "\n".join(out) + "\n"


def fixture_cases(dec, ccc, excluded):
    rng = random.Random(15)
    marks = sorted(ccc)
    common_marks = [m for m in marks if m < 0x370] + [0x0323, 0x0327, 0x0328, 0x031B, 0x0345, 0x05B4, 0x093C,
                                                       0x0650, 0x064E, 0x0651, 0x0E38, 0x3099, 0x309A]
    bases = [ord(c) for c in "aeiouAEIOUnNcCsSyYwWzZgGkKhHrRlLtTdDbBmMpPvVxX"] + [0x391, 0x3B1, 0x3B7, 0x3C9,
                                                                                  0x415, 0x435, 0x438, 0x5D0]
    cases = []
    # every code point with a decomposition or a nonzero class, alone and after a base
    for cp in sorted(set(dec) | set(ccc)):
        cases.append([cp])
    for cp in sorted(ccc):
        cases.append([rng.choice(bases), cp])
    # every pair decomposed, and with a mark between that blocks or does not
    for cp, d in sorted(dec.items()):
        if len(d) == 2:
            cases.append(list(d))
            cases.append([d[0], rng.choice(marks), d[1]])
            cases.append([d[0], d[1], rng.choice(common_marks)])
    # a base and several marks, in shuffled order
    for _ in range(1400):
        seq = [rng.choice(bases + [rng.choice(sorted(dec))])]
        for _ in range(rng.randint(1, 5)):
            seq.append(rng.choice(common_marks if rng.random() < 0.7 else marks))
        tail = seq[1:]
        rng.shuffle(tail)
        seq = seq[:1] + tail
        cases.append(seq)
    # Hangul: L V, L V T, LV T, syllables with stray jamo
    for l in range(L_COUNT):
        for v in range(V_COUNT):
            cases.append([L_BASE + l, V_BASE + v])
    for _ in range(900):
        seq = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.3:
                seq.append(L_BASE + rng.randrange(L_COUNT))
            elif r < 0.55:
                seq.append(V_BASE + rng.randrange(V_COUNT))
            elif r < 0.75:
                seq.append(T_BASE + rng.randrange(T_COUNT))  # includes U+11A7, not a T
            elif r < 0.9:
                seq.append(S_BASE + rng.randrange(S_COUNT))
            else:
                seq.append(rng.choice([0x0300, 0x302E, 0x3099, 0x1100 + 19, 0x1176, 0x11C3]))
        cases.append(seq)
    # exclusions and singletons, and their decompositions, beside marks
    for cp in sorted(excluded) + sorted(c for c, d in dec.items() if len(d) == 1)[:200]:
        cases.append([cp, rng.choice(common_marks)])
        cases.append(list(map(ord, ud.normalize("NFD", chr(cp)))))
    # blocked: two marks of one class, the second would compose
    for cp, d in sorted(dec.items()):
        if len(d) == 2 and cp not in excluded and ccc.get(d[1]):
            same = [m for m in marks if ccc[m] == ccc[d[1]] and m != d[1]]
            if same:
                cases.append([d[0], rng.choice(same), d[1]])
    # starters that compose with a starter (Indic two-part vowels, Hangul), after a mark
    for cp, d in sorted(dec.items()):
        if len(d) == 2 and cp not in excluded and not ccc.get(d[1]):
            cases.append([d[0], d[1]])
            cases.append([d[0], 0x0334, d[1]])
            cases.append([d[0], rng.choice(marks), d[1], rng.choice(marks)])
    # long runs of marks (canonical ordering of many at once)
    for size in (40, 300, 600):
        seq = [rng.choice(bases)] + [rng.choice(marks) for _ in range(size)]
        cases.append(seq)
        cases.append(seq[:1] + sorted(seq[1:], key=lambda m: -ccc[m]))
    texts = [
        "Tiếng Việt có dấu: Nguyễn Thị Minh Khai, phường Bến Nghé, quận 1.",
        "한국어 문장입니다. 안녕하세요, 세계! 깎아지른 듯한 절벽",
        "Ça été très «déjà vu» — naïve façade, Müller, Åström, Ærø, Ǖǖ",
        "नमस्ते दुनिया। क़ ख़ ग़ ज़ ड़ ढ़ फ़ य़ हिन्दी",
        "بِسْمِ ٱللَّٰهِ ٱلرَّحْمَٰنِ ٱلرَّحِيمِ — مُحَمَّدٌ",
        "Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν",
        "ひらがな が ぎ ぐ げ ご パ ピ プ ペ ポ カ゚",
        "Ω Å K ﬀ ǅ Å 〈〉 ñ ẛ̣ ḍ̇ q̣̇",
    ]
    for t in texts:
        for form in ("NFC", "NFD"):
            cases.append(list(map(ord, ud.normalize(form, t))))
        # reversed: marks before their bases, jamo in the wrong order
        cases.append(list(map(ord, ud.normalize("NFD", t)))[::-1])
    return cases


def write_fixture(path, cases):
    seen, lines = set(), []
    for seq in cases:
        s = "".join(map(chr, seq))
        if s in seen:
            continue
        seen.add(s)
        lines.append("%s\t%s" % (s.encode("utf-8").hex(), nfc(s).encode("utf-8").hex()))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


TOKENIZER = os.path.join("tests", "fixtures", "tokenizers", "qwen2-split", "tokenizer.json")


def token_cases():
    """Texts that NFC changes, for the tokenizer with an NFC normalizer."""
    texts = []
    for t in ["caf\u00e9 au lait", "Tiếng Việt có dấu", "한국어 문장입니다", "Ça été très naïve",
              "नमस्ते क़ ख़ ग़", "بِسْمِ ٱللَّٰهِ مُحَمَّدٌ", "Ἐν ἀρχῇ ἦν ὁ λόγος", "が ぎ パ カ゚"]:
        texts.append(ud.normalize("NFD", t))
        texts.append(t)
    texts += ["cafe\u0301", "x cafe\u0301!", "x\u0315\u0301y", "a\u0323\u0301 b", "\u212b \u2126 \u0344",
              "\u1100\u1161\u11a8 \u1100\u1161 \u11a8", "e\u0301\u0301\u0301", "\u0301start",
              "<|im_start|>cafe\u0301<|im_end|>", "o\u0308\u0304 u\u0308\u0301 \u0b47\u0b3e"]
    return texts


def write_token_fixture(root):
    """Ids that tokenizers gives (tokenizers installed; else the file is kept)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("tokenizers is not installed: %s not written" % "tests/fixtures/nfc_tokens.jsonl")
        return
    tok = Tokenizer.from_file(os.path.join(root, TOKENIZER))
    with open(os.path.join(root, "tests", "fixtures", "nfc_tokens.jsonl"), "w") as f:
        for t in token_cases():
            f.write(json.dumps({"text": t, "ids": tok.encode(t, add_special_tokens=False).ids}) + "\n")
    print("tests/fixtures/nfc_tokens.jsonl: %d texts" % len(token_cases()))


def main():
    dec, ccc, excluded = load()
    check_bounds(dec, excluded)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "lisa.h")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    begin = text.index("/* BEGIN GENERATED: tools/make_nfc.py */")
    end = text.index("/* END GENERATED */", begin) + len("/* END GENERATED */\n")
    block = generate(dec, ccc, excluded)
    new = text[:begin] + block + text[end:]
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    print("lisa.h: Unicode %s NFC tables written (%d bytes of source)" % (UNICODE_VERSION, len(block)))
    n = write_fixture(os.path.join(root, "tests", "fixtures", "nfc.txt"), fixture_cases(dec, ccc, excluded))
    print("tests/fixtures/nfc.txt: %d cases" % n)
    write_token_fixture(root)


if __name__ == "__main__":
    main()
