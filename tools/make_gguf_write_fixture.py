#!/usr/bin/env python3
"""GGUF files that gguf-py's GGUFWriter writes from one tiny llama model's
weights, one per tensor type lisa_model_save_gguf() writes: the oracle for
its bytes in tests/test_gguf_model.c.

Run from the repository root (needs numpy and gguf-py):
    /work/venv/bin/python tools/make_gguf_write_fixture.py

Writes (deterministic: a fixed seed; about 250 KB in all) into
tests/fixtures/gguf_write/:
    weights.bin       the model: config (dim, hidden, layers, heads, kv heads, vocab,
                      context, tied), eps_theta, and every tensor under its GGUF name
                      as a row-major [out, in] float32 matrix (LSFX, tests/fixture.h)
    model_f32.gguf    matrices F32 (general.file_type 0, ALL_F32)
    model_f16.gguf    F16 (1, MOSTLY_F16)
    model_bf16.gguf   BF16 (32, MOSTLY_BF16)
    model_q8_0.gguf   Q8_0 (7, MOSTLY_Q8_0); ffn_down's rows (48 elements) are not whole
                      blocks of 32, so gguf.quants.quantize raises QuantError and it is
                      written F16, as convert_hf_to_gguf.py falls back

The model is untied (output.weight present) with GQA (4 heads, 2 kv heads):
dim 32, hidden 48, 2 layers, vocabulary 40, context 64. Norms are F32 in every
file. Each file carries general.* and tokenizer.* keys of many types (string,
string array, uint32 and float32 arrays, int32 array, bool, uint32). Keys and
tensors come in the order lisa_model_save_gguf() writes them, which is
convert_hf_to_gguf.py's for the keys (architecture, type, name, the other
general.* keys, the llama.* hyperparameters with general.file_type among them,
quantization_version, the tokenizer); so a save with the file's own metadata
as carry must give back these files byte for byte.
"""
import os
import struct
import sys

import numpy as np
import gguf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf_write")

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, CTX = 32, 48, 2, 4, 2, 40, 64
EPS, THETA = 1e-5, 10000.0

# ggml type and general.file_type (gguf-py's GGMLQuantizationType, LlamaFileType)
TYPES = [("f32", gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
         ("f16", gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
         ("bf16", gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
         ("q8_0", gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0)]

LAYER_TENSORS = [("attn_norm", None, None), ("attn_q", DIM, DIM), ("attn_k", DIM * KV_HEADS // HEADS, DIM),
                 ("attn_v", DIM * KV_HEADS // HEADS, DIM), ("attn_output", DIM, DIM), ("ffn_gate", HIDDEN, DIM),
                 ("ffn_up", HIDDEN, DIM), ("ffn_down", DIM, HIDDEN), ("ffn_norm", None, None)]


def weights():
    """name -> float32 array ([out, in] matrices, [dim] norms), in the file's order."""
    rng = np.random.default_rng(7)
    w = {}

    def matrix(rows, cols):
        return (rng.standard_normal((rows, cols)) * 0.5).astype(np.float32)

    def norm():
        return (1.0 + 0.3 * rng.standard_normal(DIM)).astype(np.float32)

    w["token_embd.weight"] = matrix(VOCAB, DIM)
    w["token_embd.weight"][3, :] = 0.0            # a Q8_0 block of zeros: d = 0
    w["token_embd.weight"][5, 0] = 70000.0        # beyond F16's range: infinity in F16
    for layer in range(LAYERS):
        for name, rows, cols in LAYER_TENSORS:
            w["blk.%d.%s.weight" % (layer, name)] = norm() if rows is None else matrix(rows, cols)
    w["output_norm.weight"] = norm()
    w["output.weight"] = matrix(VOCAB, DIM)
    return w


def write_lsfx(path, entries):
    """entries: (name, numpy array) pairs; float32 or int32."""
    with open(path, "wb") as f:
        f.write(b"LSFX" + struct.pack("<i", len(entries)))
        for name, a in entries:
            is_int = a.dtype.kind == "i"
            nb = name.encode()
            f.write(struct.pack("<i", len(nb)) + nb + struct.pack("<ii", 1 if is_int else 0, a.ndim))
            f.write(struct.pack("<%di" % a.ndim, *a.shape))
            f.write(np.ascontiguousarray(a).astype("<i4" if is_int else "<f4").tobytes())


def carried_general(w):
    w.add_string("general.license", "apache-2.0")
    w.add_array("general.languages", ["en", "fr"])
    w.add_key_value("general.fixture_u32s", [7, 4000000000], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32)
    w.add_key_value("general.fixture_f32s", [0.5, -1.25e-3], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.FLOAT32)
    w.add_bool("general.fixture_flag", True)


def carried_tokenizer(w):
    tokens = ["<unk>", "<s>", "</s>"] + ["tok%d" % i for i in range(VOCAB - 4)] + ["<|im_end|>"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL] * 3 + [gguf.TokenType.NORMAL] * (VOCAB - 4) +
                      [gguf.TokenType.CONTROL])
    w.add_token_merges(["t o", "to k"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")


def write(path, tensors, qtype, ftype):
    w = gguf.GGUFWriter(path, "llama")   # general.architecture first
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("Tiny write fixture")
    carried_general(w)
    w.add_block_count(LAYERS)
    w.add_context_length(CTX)
    w.add_embedding_length(DIM)
    w.add_feed_forward_length(HIDDEN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(THETA)
    w.add_layer_norm_rms_eps(EPS)
    w.add_file_type(ftype)
    w.add_vocab_size(VOCAB)
    w.add_rope_dimension_count(DIM // HEADS)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    carried_tokenizer(w)
    for name, data in tensors.items():
        t = gguf.GGMLQuantizationType.F32 if data.ndim == 1 else qtype
        try:
            q = gguf.quants.quantize(data, t)
        except gguf.QuantError:
            t = gguf.GGMLQuantizationType.F16   # convert_hf_to_gguf.py's fallback
            q = gguf.quants.quantize(data, t)
        w.add_tensor(name, q, raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors = weights()
    config = np.array([DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, CTX, 0], dtype=np.int32)
    write_lsfx(os.path.join(OUT, "weights.bin"),
               [("config", config), ("eps_theta", np.array([EPS, THETA], dtype=np.float32))] + list(tensors.items()))
    for stem, qtype, ftype in TYPES:
        write(os.path.join(OUT, "model_%s.gguf" % stem), tensors, qtype, ftype)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("%d bytes in %s" % (total, OUT))


if __name__ == "__main__":
    sys.exit(main())
