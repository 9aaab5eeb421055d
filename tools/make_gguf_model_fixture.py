#!/usr/bin/env python3
"""Tiny llama GGUF models written as llama.cpp's convert_hf_to_gguf.py writes
a LlamaForCausalLM, and the logits transformers computes after loading the
GGUF back (AutoModelForCausalLM.from_pretrained(dir, gguf_file=...), which
dequantizes with gguf-py and undoes the q/k permutation itself): the oracle
for tests/test_gguf_model.c.

Run from the repository root (needs torch, transformers and gguf-py):
    /work/venv/bin/python tools/make_gguf_model_fixture.py

Writes (deterministic: fixed seeds; about 400 KB in all):
    tests/fixtures/gguf_model/tiny_f16.gguf     untied head, GQA (4 heads, 2 kv heads, head size 12),
                                                2 layers, vocabulary 300; matrices F16, norms F32
                                                (convert_hf_to_gguf.py --outtype f16)
    tests/fixtures/gguf_model/tiny_f16.bin      its inputs, logits and config (LSFX, tests/fixture.h)
    tests/fixtures/gguf_model/tied_f32.gguf     tied embeddings (no output.weight), 2 layers, all F32
    tests/fixtures/gguf_model/tied_f32.bin      the same for it
    tests/fixtures/gguf_model/smollm2_logits.bin   with --smollm2 PATH (SmolLM2-135M-Instruct.Q4_1.gguf):
                                                transformers' logits for one 20-token text on that file,
                                                the first 512 vocabulary entries of each position
    tests/fuzz/corpus/gguf_model/*.gguf         fuzz seeds: the same layout at a few KB (dim 8, 1 layer,
                                                2 heads, 1 kv head, vocabulary 16), untied F32 and tied F16,
                                                no tokenizer

What follows llama.cpp (vendor/llama.cpp/conversion/llama.py and
convert_hf_to_gguf.py in llama-cpp-python 0.3.36): the llama.* keys, the
tensor names, LlamaModel.permute on q_proj (n_head) and k_proj (n_head_kv),
the tensor order (the checkpoint's), F16 for 2-D tensors only with --outtype f16.
"""
import os
import sys
import tempfile

import numpy as np
import torch
import gguf
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_hf_fixture import write_lsfx  # noqa: E402  (the LSFX layout tests/fixture.h reads)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf_model")
B, T = 3, 9


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute (a fact about the layout, restated)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def byte_level_vocab(size):
    """A gpt2-style vocabulary: the 256 byte symbols, then merges of pairs of them."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    sym = {b: chr(c) for b, c in zip(bs, cs)}
    tokens = [sym[b] for b in range(256)]
    merges = []
    letters = "etaoinshrdlu"
    for a in letters:
        for b in letters:
            if len(tokens) == size:
                break
            merges.append(a + " " + b)
            tokens.append(a + b)
    return tokens, merges


# GGML types (gguf-py's GGMLQuantizationType): F32 0, F16 1; general.file_type 0 (ALL_F32), 1 (MOSTLY_F16)
HF_TO_GGUF_LAYER = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    assert parts[0] == "model" and parts[1] == "layers" and parts[-1] == "weight", hf
    return "blk.%s.%s.weight" % (parts[2], HF_TO_GGUF_LAYER[".".join(parts[3:-1])])


def rope_theta(cfg):
    """transformers 5 keeps it in rope_parameters, 4 as rope_theta."""
    params = getattr(cfg, "rope_parameters", None)
    return params["rope_theta"] if params else cfg.rope_theta


def write_gguf(path, model, cfg, f16, tokenizer=True):
    w = gguf.GGUFWriter(path, "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("Tiny Llama fixture")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(rope_theta(cfg))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(1 if f16 else 0)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    if tokenizer:
        tokens, merges = byte_level_vocab(cfg.vocab_size)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types([gguf.TokenType.NORMAL] * len(tokens))
        w.add_token_merges(merges)
        w.add_bos_token_id(0)
        w.add_eos_token_id(1)
    for name, t in model.state_dict().items():
        if cfg.tie_word_embeddings and name == "lm_head.weight":
            continue
        data = t.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            data = permute(data, cfg.num_attention_heads, cfg.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            data = permute(data, cfg.num_attention_heads, cfg.num_key_value_heads)
        if f16 and data.ndim == 2:
            data = data.astype(np.float16)
        w.add_tensor(gguf_name(name), np.ascontiguousarray(data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make(stem, seed, layers, tied, f16, theta, eps):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=300, hidden_size=48, intermediate_size=80, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=eps, rope_parameters={"rope_type": "default", "rope_theta": theta},
                      tie_word_embeddings=tied, hidden_act="silu")
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():   # norms away from 1, so a misplaced norm shows
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.mul_(8.0)
    path = os.path.join(OUT, stem + ".gguf")
    write_gguf(path, model, cfg, f16)
    # the reference: what transformers makes of the GGUF file
    ref = AutoModelForCausalLM.from_pretrained(OUT, gguf_file=stem + ".gguf", dtype=torch.float32).eval()
    rc = ref.config
    assert rc.tie_word_embeddings == tied and rc.num_key_value_heads == 2, rc
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    with torch.no_grad():
        logits = ref(input_ids=ids).logits.float()
        own = model(input_ids=ids).logits.float()
    print("%s: transformers' GGUF model vs the original: max diff %.3g" % (stem, (logits - own).abs().max()))
    config = torch.tensor([rc.hidden_size, rc.intermediate_size, rc.num_hidden_layers, rc.num_attention_heads,
                           rc.num_key_value_heads, rc.vocab_size, rc.max_position_embeddings,
                           int(bool(rc.tie_word_embeddings))], dtype=torch.int32)
    floats = torch.tensor([rc.rms_norm_eps, rope_theta(rc)],
                          dtype=torch.float32)
    write_lsfx(os.path.join(OUT, stem + ".bin"),
               [("ids", ids), ("logits", logits), ("config", config), ("eps_theta", floats)])


def make_seed(stem, seed, tied, f16):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=12, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16,
                      rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                      tie_word_embeddings=tied, hidden_act="silu")
    model = LlamaForCausalLM(cfg).eval()
    out = os.path.join(ROOT, "tests", "fuzz", "corpus", "gguf_model")
    os.makedirs(out, exist_ok=True)
    write_gguf(os.path.join(out, stem + ".gguf"), model, cfg, f16, tokenizer=False)


SMOL_IDS = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712,
            8182, 2]


def make_smollm2(path):
    ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path),
                                               dtype=torch.float32).eval()
    ids = torch.tensor([SMOL_IDS])
    with torch.no_grad():
        logits = ref(input_ids=ids).logits.float()[0, :, :512].contiguous()
    write_lsfx(os.path.join(OUT, "smollm2_logits.bin"), [("ids", ids), ("logits", logits)])


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--smollm2":
        return make_smollm2(sys.argv[2])
    make_seed("untied_f32", 5, False, False)
    make_seed("tied_f16", 6, True, True)
    os.makedirs(OUT, exist_ok=True)
    make("tiny_f16", 11, 2, False, True, 10000.0, 1e-5)
    make("tied_f32", 23, 2, True, False, 500000.0, 1e-6)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("%d bytes in %s" % (total, OUT))


if __name__ == "__main__":
    sys.exit(main())
