#!/usr/bin/env python3
"""Tiny Hugging Face LLaMA checkpoints written by transformers itself, and the
logits and loss transformers computes on them: the oracle for tests/test_hf.c.

Run from the repository root (needs torch and transformers; Debian's torch 1.13
works with transformers 4.39):
    /usr/bin/python3 -m venv /tmp/hfvenv --system-site-packages
    /tmp/hfvenv/bin/pip install 'transformers<4.40' 'numpy<2'
    /tmp/hfvenv/bin/python tools/make_hf_fixture.py

Writes (deterministic: fixed seeds; each file well under 100 KB):
    tests/fixtures/hf_tiny/                 untied head, GQA (4 heads, 2 kv heads),
                                            float32, one model.safetensors
    tests/fixtures/hf_tiny_logits.bin       its inputs, logits and loss (LSFX, tests/fixture.h)
    tests/fixtures/hf_tiny_tied/            tied embeddings, bfloat16, sharded
                                            (model.safetensors.index.json + shards)
    tests/fixtures/hf_tiny_tied_logits.bin  the same for it, computed in float32
                                            from the bfloat16 weights

Check that transformers loads a directory written by lisa_model_save_hf() and
gives the fixture's logits:
    /tmp/hfvenv/bin/python tools/make_hf_fixture.py --check DIR tests/fixtures/hf_tiny_logits.bin
"""
import os
import shutil
import struct
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures")
B, T = 2, 12


def write_lsfx(path, entries):
    """entries: list of (name, tensor); float tensors as float32, int as int32."""
    with open(path, "wb") as f:
        f.write(b"LSFX")
        f.write(struct.pack("<i", len(entries)))
        for name, t in entries:
            is_int = not t.is_floating_point()
            t = t.detach().cpu().contiguous().to(torch.int32 if is_int else torch.float32)
            nb = name.encode()
            f.write(struct.pack("<i", len(nb)) + nb)
            f.write(struct.pack("<ii", 1 if is_int else 0, t.dim()))
            f.write(struct.pack("<%di" % t.dim(), *t.shape))
            f.write(t.numpy().astype("<i4" if is_int else "<f4").tobytes())


def read_lsfx(path):
    data = open(path, "rb").read()
    assert data[:4] == b"LSFX"
    (count,) = struct.unpack_from("<i", data, 4)
    pos, out = 8, {}
    for _ in range(count):
        (n,) = struct.unpack_from("<i", data, pos)
        name = data[pos + 4:pos + 4 + n].decode()
        pos += 4 + n
        dtype, ndim = struct.unpack_from("<ii", data, pos)
        pos += 8
        shape = struct.unpack_from("<%di" % ndim, data, pos)
        pos += 4 * ndim
        numel = 1
        for s in shape:
            numel *= s
        fmt = "<%d%s" % (numel, "i" if dtype == 1 else "f")
        vals = struct.unpack_from(fmt, data, pos)
        pos += 4 * numel
        out[name] = torch.tensor(vals, dtype=torch.int64 if dtype == 1 else torch.float32).reshape(shape)
    return out


def logits_and_loss(model, ids):
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    return out.logits.float(), out.loss.float()


def build(name, tied, dtype, shard, seed):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_theta=500.0, tie_word_embeddings=tied,
                      hidden_act="silu", attention_bias=False, rope_scaling=None,
                      attn_implementation="eager")
    model = LlamaForCausalLM(cfg)
    # Weights big enough that every tensor and the RoPE layout show in the logits.
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters()):
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape))
            else:
                p.copy_(0.25 * torch.randn(p.shape))
    out_dir = os.path.join(FIX, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    model = model.to(dtype)
    kw = {"max_shard_size": "20KB"} if shard else {}
    model.save_pretrained(out_dir, safe_serialization=True, **kw)
    # The oracle: transformers loading what it wrote, computing in float32.
    ref = LlamaForCausalLM.from_pretrained(out_dir, torch_dtype=torch.float32,
                                           attn_implementation="eager")
    g = torch.Generator().manual_seed(seed + 100)
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    logits, loss = logits_and_loss(ref, ids)
    write_lsfx(os.path.join(FIX, name + "_logits.bin"),
               [("inputs", ids), ("logits", logits), ("loss", loss.reshape(1))])
    print(name, "loss", float(loss), "files", sorted(os.listdir(out_dir)))


def check(directory, fixture_path):
    fx = read_lsfx(fixture_path)
    model = LlamaForCausalLM.from_pretrained(directory, torch_dtype=torch.float32,
                                             attn_implementation="eager")
    logits, loss = logits_and_loss(model, fx["inputs"])
    err = float((logits - fx["logits"]).abs().max() / fx["logits"].abs().max())
    print("max relative logit difference %.3g, loss %.7f vs %.7f" % (err, float(loss), float(fx["loss"][0])))
    return 0 if err < 1e-5 and abs(float(loss) - float(fx["loss"][0])) < 1e-5 else 1


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    torch.use_deterministic_algorithms(True)
    build("hf_tiny", tied=False, dtype=torch.float32, shard=False, seed=1)
    build("hf_tiny_tied", tied=True, dtype=torch.bfloat16, shard=True, seed=2)


if __name__ == "__main__":
    main()
