#!/usr/bin/env python3
"""Generates lisa.h's Unicode class tables (the block between
/* BEGIN GENERATED: tools/make_unicode.py */ and /* END GENERATED */).

Run from the repository root:
    /work/venv/bin/pip install unicodedata2==16.0.0
    /work/venv/bin/python tools/make_unicode.py [--no-check]

The pre-tokenizer scanners must split text exactly as Hugging Face tokenizers'
regexes do. Those run on Oniguruma, whose \\p{L}, \\p{N}, \\p{M} and friends
follow Unicode 16.0.0 in tokenizers 0.23 (checked code point by code point),
while Python 3.11's own unicodedata is Unicode 14.0.0. So the general
categories come from unicodedata2 16.0.0 (the same database, newer version);
the script refuses any other version rather than silently drift.

White_Space is the 25 code points of Unicode's PropList.txt (unchanged since
Unicode 6.1); it is exactly what \\s matches in tokenizers' regexes (checked
over every code point with the Split pre-tokenizer).

The Digits pre-tokenizer is not a regex: it asks Rust's char::is_numeric, which
in tokenizers 0.23's build follows Unicode 17.0.0, where 13 more code points are
numbers (RUST_NUMERIC_EXTRA below); LISA__UC_NUMERIC is that set.

With tokenizers installed, every class is checked against it over all code
points before anything is written.

Output: the class bits, a 256-entry table for Latin-1 (the fast path), and for
code points above it the sorted runs of equal class as start << 11 | bits.
"""
import os
import sys

try:
    import unicodedata2 as ud
except ImportError:
    sys.exit("tools/make_unicode.py needs unicodedata2==16.0.0 (pip install unicodedata2==16.0.0)")

UNICODE_VERSION = "16.0.0"
if ud.unidata_version != UNICODE_VERSION:
    sys.exit("unicodedata2 has Unicode %s; %s is required" % (ud.unidata_version, UNICODE_VERSION))

WHITE_SPACE = set([0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680] +
                  list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000])

# Nd and Nl in Unicode 17.0.0, unassigned in 16.0.0 (Tolong Siki digits, three
# Tangut-block numerals).
RUST_NUMERIC_EXTRA = set(list(range(0x11DE0, 0x11DEA)) + [0x16FF4, 0x16FF5, 0x16FF6])
SHIFT = 11  # bits of class below each run's start

# name, bit, meaning (the C macros are LISA__UC_<name>)
BITS = [
    ("LETTER", 0x01, "\\p{L}"),
    ("NUMBER", 0x02, "\\p{N}"),
    ("MARK", 0x04, "\\p{M}"),
    ("SPACE", 0x08, "\\s: White_Space"),
    ("PUNCT", 0x10, "\\p{P}"),
    ("SYMBOL", 0x20, "\\p{S}"),
    ("UPPER", 0x40, "\\p{Lu} or \\p{Lt}"),
    ("LOWER", 0x80, "\\p{Ll}"),
    ("NUMERIC", 0x100, "Rust's char::is_numeric: the Digits pre-tokenizer's numbers"),
]
BIT = dict((name, bit) for name, bit, _ in BITS)


def class_bits(cp):
    cat = "Cs" if 0xD800 <= cp <= 0xDFFF else ud.category(chr(cp))
    bits = 0
    for major, name in (("L", "LETTER"), ("N", "NUMBER"), ("M", "MARK"), ("P", "PUNCT"), ("S", "SYMBOL")):
        if cat[0] == major:
            bits |= BIT[name]
    if cat in ("Lu", "Lt"):
        bits |= BIT["UPPER"]
    if cat == "Ll":
        bits |= BIT["LOWER"]
    if cp in WHITE_SPACE:
        bits |= BIT["SPACE"]
    if cat[0] == "N" or cp in RUST_NUMERIC_EXTRA:
        bits |= BIT["NUMERIC"]
    return bits


def check_against_tokenizers():
    """Each class equals what tokenizers matches, over every code point."""
    try:
        from tokenizers import Regex, pre_tokenizers
    except ImportError:
        print("tokenizers is not installed: classes not checked against it")
        return
    cps = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    text = "".join(chr(cp) for cp in cps)

    def matched(regex):
        split = pre_tokenizers.Split(Regex("(?:%s)+" % regex), behavior="removed")
        rest = set()
        for piece, _ in split.pre_tokenize_str(text):
            rest.update(map(ord, piece))
        return set(cps) - rest

    for name, regex in (("LETTER", r"\p{L}"), ("NUMBER", r"\p{N}"), ("MARK", r"\p{M}"), ("SPACE", r"\s"),
                        ("PUNCT", r"\p{P}"), ("SYMBOL", r"\p{S}"), ("UPPER", r"[\p{Lu}\p{Lt}]"),
                        ("LOWER", r"\p{Ll}")):
        ours = set(cp for cp in cps if class_bits(cp) & BIT[name])
        if ours != matched(regex):
            sys.exit("%s differs from tokenizers' %s" % (name, regex))
    # Digits isolates each numeric character; "a" between them keeps the rest apart.
    others = [cp for cp in cps if cp != ord("a")]
    pieces = pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str("a".join(map(chr, others)))
    numeric = set(ord(p) for p, _ in pieces if len(p) == 1 and p != "a")
    if numeric != set(cp for cp in others if class_bits(cp) & BIT["NUMERIC"]):
        sys.exit("NUMERIC differs from tokenizers' Digits")
    print("classes equal tokenizers' over all code points")


def wrap(items, per_line, indent="    "):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append(indent + ", ".join(items[i:i + per_line]) + ",")
    lines[-1] = lines[-1][:-1]
    return lines


def generate():
    latin1 = [class_bits(cp) for cp in range(256)]
    runs, prev = [], None
    for cp in range(256, 0x110000):
        bits = class_bits(cp)
        if bits != prev:
            runs.append((cp, bits))
            prev = bits
    out = ["/* BEGIN GENERATED: tools/make_unicode.py */",
           "/* Unicode %s general categories and White_Space (what tokenizers' regexes match). */" % UNICODE_VERSION]
    for name, bit, meaning in BITS:
        out.append("#define LISA__UC_%-7s 0x%03Xu  /* %s */" % (name, bit, meaning))
    out.append("#define LISA__UC_VERSION \"%s\"" % UNICODE_VERSION)
    out.append("static const unsigned short lisa__uc_latin1[256] = {")
    out += wrap([str(b) for b in latin1], 16)
    out.append("};")
    out.append("/* From U+0100 on: runs of one class, start << %d | bits, sorted by start;" % SHIFT)
    out.append("   a run ends where the next begins, the last at U+10FFFF. */")
    out.append("#define LISA__UC_SHIFT %d" % SHIFT)
    out.append("#define LISA__UC_N_RUNS %d" % len(runs))
    out.append("static const uint32_t lisa__uc_runs[LISA__UC_N_RUNS] = {")
    out += wrap(["0x%X" % (cp << SHIFT | bits) for cp, bits in runs], 10)
    out.append("};")
    out.append("/* END GENERATED */")
    return "\n".join(out) + "\n"


def main():
    if "--no-check" not in sys.argv:
        check_against_tokenizers()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "lisa.h")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    begin = text.index("/* BEGIN GENERATED: tools/make_unicode.py */")
    end = text.index("/* END GENERATED */", begin) + len("/* END GENERATED */\n")
    new = text[:begin] + generate() + text[end:]
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    print("lisa.h: Unicode %s tables written" % UNICODE_VERSION)


if __name__ == "__main__":
    main()
