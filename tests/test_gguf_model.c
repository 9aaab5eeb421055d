/* llama models from GGUF files (lisa_model_load_gguf and the memory variant).

   - the oracle: two tiny LlamaForCausalLM models written as llama.cpp's
     convert_hf_to_gguf.py writes them (tools/make_gguf_model_fixture.py:
     GQA, untied F16 matrices with F32 norms, tied all-F32) give the logits
     transformers computes after loading the same GGUF files
   - the config read from the llama.* keys, by lisa_model_read_config too, and
     lisa_model_load / lisa_model_read_config telling a GGUF file by its
     ".gguf" name or by its magic
   - malformed files (patched copies of the fixture): another architecture,
     an unsupported key, a missing and an unexpected tensor, a wrong shape, a
     RoPE dimension that is not the head size, an unknown or unreadable tensor
     type, truncated data: each an error naming the file and the problem;
     every truncation of a file fails cleanly
   - allocation failure at every allocation: LISA_ERR_NOMEM, nothing leaked
   - writing (lisa_model_save_gguf): from the weights gguf-py's GGUFWriter
     wrote (tools/make_gguf_write_fixture.py) with its file's metadata as
     carry, lisa's F32, F16, BF16 and Q8_0 files equal gguf-py's byte for
     byte; keys, types and tensor infos through lisa_gguf_read_metadata;
     round trips (tied, GQA, MQA, Q8_0's F16 fallback) bit for bit as
     lisa_ggml_quantize + dequantize; a carry of every kind of value copied,
     the writer's own keys once; other types and a wrong vocabulary refused;
     failed saves keep the old file (tests/save_fail.h)
   - tokenizer metadata from Hugging Face (lisa_gguf_tokenizer_from_hf): the
     SmolLM2 directory (with the Hub's Digits + ByteLevel pre-tokenizer)
     gives every tokenizer.* key of tests/fixtures/tokenizers/gguf/smollm2.gguf
     with its type and value, and encodes the corpus to llama.cpp's ids; the
     small byte-level directories give their GGUFs' vocabularies; a
     SentencePiece-style one is refused; allocation failures are clean

   Reading tensor data goes through lisa_ggml_dequantize(); until it reads
   F32 and F16 the checks that need tensor data are skipped (and say so), and
   the error for the type it does not read is checked instead.

   By hand (not part of make test): LISA_SMOLLM2_GGUF=path/to/SmolLM2-135M-Instruct.Q4_1.gguf
   build/test_gguf_model checks that file's config against gguf-py's reading
   and prints its tensor table; once lisa_ggml_dequantize() reads Q4_1 and
   Q8_0 it loads the model and compares its logits with transformers' on the
   same file (tests/fixtures/gguf_model/smollm2_logits.bin); until then the
   error must name the tensor and its type. Then it saves the model as F32
   with the file's metadata (reloaded: the same logits bit for bit, the same
   token ids for a few texts) and as Q8_0 (reloaded: lisa's quantization). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"
#include "fixture.h"
#include "save_fail.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/gguf_model/"

/* ------------------------------------------------------------------------- */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------- */

/* An allocator that counts live bytes and refuses allocations past a limit. */
typedef struct counter {
    size_t live;
    long fail_after;   /* successful allocations allowed; < 0: no limit */
    long n_ok, n_refused;
} counter;

static void *cnt_alloc(void *user, size_t size) {
    counter *c = (counter *)user;
    void *p;
    if (c->fail_after >= 0 && c->n_ok >= c->fail_after) {
        c->n_refused++;
        return NULL;
    }
    p = malloc(size ? size : 1);
    if (p) {
        c->live += size;
        c->n_ok++;
    }
    return p;
}

static void cnt_free(void *user, void *p, size_t size) {
    counter *c = (counter *)user;
    if (!p) return;
    c->live -= size;
    free(p);
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static int write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, size, f) == size;
    if (f) ok = fclose(f) == 0 && ok;
    return ok;
}

static int has(const char *msg, const char *needle) { return strstr(msg, needle) != NULL; }

/* lisa_ggml_dequantize reads F32 and F16 (checked on known values). */
static int dequantize_ready(void) {
    const unsigned char f32[4] = {0x00, 0x00, 0xc0, 0x3f};   /* 1.5f */
    const unsigned char f16[2] = {0x00, 0xbc};               /* -1.0 */
    float a = 0.0f, b = 0.0f;
    return lisa_ggml_dequantize(0, f32, &a, 1) && a == 1.5f && lisa_ggml_dequantize(1, f16, &b, 1) && b == -1.0f;
}

static void put_u32(unsigned char *p, uint32_t v) {
    int i;
    for (i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A copy of a GGUF file's bytes, and where things are in it. */
typedef struct gfile {
    unsigned char *data;
    size_t size;
} gfile;

static gfile gfile_copy(const unsigned char *data, size_t size) {
    gfile f;
    f.data = (unsigned char *)malloc(size);
    memcpy(f.data, data, size);
    f.size = size;
    return f;
}

/* Where key's value is (the fixture's header parsed by lisa_gguf_parse_memory). */
static size_t value_at(const gfile *f, const char *key, lisa_gguf_type *type) {
    lisa_gguf g;
    size_t at = 0;
    int i;
    if (lisa_gguf_parse_memory(&g, f->data, f->size, "x", NULL, NULL) == LISA_OK &&
        (i = lisa_gguf_find(&g, key)) >= 0) {
        at = g.kv[i].value;
        if (type) *type = g.kv[i].type;
    }
    lisa_gguf_free(&g);
    return at;
}

/* Where a tensor's info is: just after its name (n_dims, dims, type, offset). */
static size_t tensor_info_at(const gfile *f, const char *name) {
    size_t n = strlen(name), i;
    for (i = 8; i + n + 4 <= f->size; i++)
        if (memcmp(f->data + i, name, n) == 0 && f->data[i - 8] == n && f->data[i - 7] == 0) return i + n;
    return 0;
}

static void set_u32_key(gfile *f, const char *key, uint32_t v) {
    lisa_gguf_type t = LISA_GGUF_UINT8;
    size_t at = value_at(f, key, &t);
    CHECK(at > 0 && t == LISA_GGUF_UINT32, "fixture key %s is a uint32", key);
    if (at > 0) put_u32(f->data + at, v);
}

static void set_tensor_type(gfile *f, const char *name, uint32_t type) {
    size_t at = tensor_info_at(f, name);
    uint32_t nd;
    CHECK(at > 0, "fixture tensor %s found", name);
    if (!at) return;
    nd = f->data[at];
    put_u32(f->data + at + 4 + 8 * nd, type);
}

/* Loading f from memory fails with code, the message naming the file and each needle. */
static void expect_fail(const gfile *f, lisa_result code, const char *label, const char *n1, const char *n2) {
    lisa_model m;
    lisa_error err;
    lisa_result r = lisa_model_load_gguf_memory(&m, f->data, f->size, "patched.gguf", NULL, &err);
    CHECK(r == code, "%s: result %d (want %d): %s", label, (int)r, (int)code, err.message);
    CHECK(has(err.message, "patched.gguf") && (!n1 || has(err.message, n1)) && (!n2 || has(err.message, n2)),
          "%s: message names the file, \"%s\" and \"%s\": %s", label, n1 ? n1 : "", n2 ? n2 : "", err.message);
    CHECK(m.params == NULL, "%s: no model is left", label);
    if (r == LISA_OK) lisa_model_free(&m);
}

/* ------------------------------------------------------------------------- */
/* The oracle                                                                 */
/* ------------------------------------------------------------------------- */

typedef struct oracle {
    const char *stem;
    int layers, tied;
} oracle;

static void check_config(const lisa_config *c, const fixture *fx, const char *label) {
    const fixture_entry *cf = fixture_find(fx, "config"), *ft = fixture_find(fx, "eps_theta");
    if (!cf || !ft || cf->n != 8 || ft->n != 2) {
        CHECK(0, "%s: the fixture holds config and eps_theta", label);
        return;
    }
    CHECK(c->dim == cf->i32[0] && c->hidden_dim == cf->i32[1] && c->n_layers == cf->i32[2] &&
              c->n_heads == cf->i32[3] && c->n_kv_heads == cf->i32[4] && c->vocab_size == cf->i32[5] &&
              c->max_seq_len == cf->i32[6] && c->tied_head == cf->i32[7],
          "%s: config %d %d %d %d %d %d %d tied %d, transformers read %d %d %d %d %d %d %d tied %d", label, c->dim,
          c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->max_seq_len, c->tied_head,
          cf->i32[0], cf->i32[1], cf->i32[2], cf->i32[3], cf->i32[4], cf->i32[5], cf->i32[6], cf->i32[7]);
    CHECK(c->norm_eps == ft->f32[0] && c->rope_theta == ft->f32[1], "%s: eps %g theta %g, transformers %g %g",
          label, (double)c->norm_eps, (double)c->rope_theta, (double)ft->f32[0], (double)ft->f32[1]);
}

static void check_logits(const lisa_model *m, const fixture *fx, const char *label) {
    const fixture_entry *ids = fixture_find(fx, "ids"), *ref = fixture_find(fx, "logits");
    lisa_acts acts;
    lisa_error err;
    int B, T, V = m->config.vocab_size;
    size_t i;
    double max_diff = 0.0, max_ref = 0.0;
    if (!ids || !ref || ids->ndim != 2) {
        CHECK(0, "%s: the fixture holds ids and logits", label);
        return;
    }
    B = ids->shape[0];
    T = ids->shape[1];
    CHECK(ref->n == (size_t)B * T * V, "%s: logits are (B, T, vocab)", label);
    if (ref->n != (size_t)B * T * V) return;
    if (lisa_acts_init(&acts, &m->config, B, T, 0, NULL, &err) != LISA_OK) {
        CHECK(0, "%s: acts: %s", label, err.message);
        return;
    }
    lisa_model_forward(m, &acts, ids->i32, NULL, B, T);
    for (i = 0; i < ref->n; i++) {
        double d = fabs((double)acts.logits[i] - ref->f32[i]);
        if (d > max_diff || d != d) max_diff = d != d ? 1e30 : d;
        if (fabs(ref->f32[i]) > max_ref) max_ref = fabs(ref->f32[i]);
    }
    printf("%s: logits max diff %.3g (max |ref| %.3g; bound %.3g)\n", label, max_diff, max_ref,
           1e-5 * (max_ref > 1.0 ? max_ref : 1.0));
    CHECK(max_diff <= 1e-5 * (max_ref > 1.0 ? max_ref : 1.0), "%s: logits within 1e-5 x max(1, max|ref|): %g",
          label, max_diff);
    lisa_acts_free(&acts);
}

static void test_oracle(const oracle *o, int ready) {
    char path[256], bin[256], label[64], plain[256];
    fixture fx;
    lisa_config c;
    lisa_model m;
    lisa_error err;
    lisa_result r;
    counter cnt = {0, -1, 0, 0};
    lisa_allocator al;
    unsigned char *data;
    size_t size = 0;
    al.alloc = cnt_alloc;
    al.free = cnt_free;
    al.user = &cnt;
    snprintf(path, sizeof path, FIX "%s.gguf", o->stem);
    snprintf(bin, sizeof bin, FIX "%s.bin", o->stem);
    snprintf(label, sizeof label, "%s", o->stem);
    if (fixture_load(&fx, bin) != 0) {
        CHECK(0, "%s: fixture %s loads", label, bin);
        return;
    }
    /* the config alone, by the path's name and by the magic */
    r = lisa_model_read_config(path, &c, NULL, &err);
    CHECK(r == LISA_OK, "%s: read_config: %s", label, err.message);
    if (r == LISA_OK) check_config(&c, &fx, label);
    CHECK(c.n_layers == o->layers && c.tied_head == o->tied, "%s: %d layers, tied %d", label, c.n_layers, c.tied_head);
    data = read_file(path, &size);
    snprintf(plain, sizeof plain, "/tmp/lisa_gguf_model_%ld_%s", (long)getpid(), o->stem);
    CHECK(data && write_file(plain, data, size), "%s: copy written", label);
    memset(&c, 0, sizeof c);
    r = lisa_model_read_config(plain, &c, NULL, &err);
    CHECK(r == LISA_OK && c.dim == 48 && c.n_kv_heads == 2, "%s: read_config tells GGUF by its magic: %s", label,
          err.message);

    r = lisa_model_load(&m, path, &al, &err);
    if (!ready) {
        CHECK(r == LISA_ERR_FORMAT && has(err.message, path) && has(err.message, "token_embd.weight") &&
                  has(err.message, o->tied ? "F32" : "F16") && has(err.message, "lisa_ggml_dequantize"),
              "%s: without dequantization, the error names the file, the tensor and its type: %s", label, err.message);
        CHECK(cnt.live == 0, "%s: nothing held after the failure (%zu bytes)", label, cnt.live);
        printf("%s: lisa_ggml_dequantize does not read F32/F16 yet: logits not checked\n", label);
    } else {
        CHECK(r == LISA_OK, "%s: lisa_model_load: %s", label, err.message);
        if (r == LISA_OK) {
            check_config(&m.config, &fx, label);
            CHECK(m.bytes == cnt.live, "%s: the model counts %zu bytes, the allocator %zu", label, m.bytes, cnt.live);
            check_logits(&m, &fx, label);
            lisa_model_free(&m);
        }
        CHECK(cnt.live == 0, "%s: all freed (%zu bytes left)", label, cnt.live);
        /* from memory, and by the magic */
        r = lisa_model_load_gguf_memory(&m, data, size, label, NULL, &err);
        CHECK(r == LISA_OK, "%s: from memory: %s", label, err.message);
        if (r == LISA_OK) {
            check_logits(&m, &fx, label);
            lisa_model_free(&m);
        }
        r = lisa_model_load(&m, plain, NULL, &err);
        CHECK(r == LISA_OK, "%s: lisa_model_load tells GGUF by its magic: %s", label, err.message);
        if (r == LISA_OK) lisa_model_free(&m);
    }
    unlink(plain);
    free(data);
    fixture_free(&fx);
}

/* ------------------------------------------------------------------------- */
/* Malformed files                                                            */
/* ------------------------------------------------------------------------- */

static void test_malformed(int ready) {
    size_t size = 0, at, cut;
    unsigned char *orig = read_file(FIX "tiny_f16.gguf", &size);
    gfile f;
    lisa_gguf g;
    lisa_model m;
    lisa_error err;
    lisa_result r;
    uint64_t data_offset = 0;
    if (!orig) {
        CHECK(0, "fixture tiny_f16.gguf readable");
        return;
    }
    if (lisa_gguf_parse_memory(&g, orig, size, "x", NULL, NULL) == LISA_OK) data_offset = g.data_offset;
    lisa_gguf_free(&g);

    f = gfile_copy(orig, size);   /* another architecture */
    at = value_at(&f, "general.architecture", NULL);
    CHECK(at > 0 && memcmp(f.data + at, "llama", 5) == 0, "fixture architecture llama");
    if (at) memcpy(f.data + at, "qwen2", 5);
    expect_fail(&f, LISA_ERR_FORMAT, "architecture", "general.architecture \"qwen2\"", "not supported");
    free(f.data);

    f = gfile_copy(orig, size);   /* a key this engine does not compute (renamed in place) */
    at = value_at(&f, "llama.vocab_size", NULL);
    if (at) memcpy(f.data + at - 8, "sizX", 4);   /* the key, then its type (4 bytes), precede the value */
    expect_fail(&f, LISA_ERR_FORMAT, "unsupported key", "llama.vocab_sizX", "not supported");
    free(f.data);

    f = gfile_copy(orig, size);   /* one layer more than the tensors: blk.2.* missing */
    set_u32_key(&f, "llama.block_count", 3);
    expect_fail(&f, LISA_ERR_FORMAT, "missing tensor", "missing tensor blk.2.attn_norm.weight", NULL);
    free(f.data);

    f = gfile_copy(orig, size);   /* one layer less: blk.1.* unexpected */
    set_u32_key(&f, "llama.block_count", 1);
    expect_fail(&f, LISA_ERR_FORMAT, "extra tensor", "unexpected tensor blk.1.", NULL);
    free(f.data);

    f = gfile_copy(orig, size);   /* a renamed tensor: unexpected, then missing */
    at = tensor_info_at(&f, "blk.1.ffn_up.weight");
    CHECK(at > 0, "fixture tensor blk.1.ffn_up.weight found");
    if (at) f.data[at - 8] = 'q';   /* "blk.1.ffn_uq.weight" */
    expect_fail(&f, LISA_ERR_FORMAT, "renamed tensor", "unexpected tensor blk.1.ffn_uq.weight", NULL);
    free(f.data);

    f = gfile_copy(orig, size);   /* wrong shape: the config's feed-forward width differs */
    set_u32_key(&f, "llama.feed_forward_length", 88);
    expect_fail(&f, LISA_ERR_FORMAT, "wrong shape", "tensor blk.0.ffn_gate.weight has ggml dims {48, 80}",
                "the config needs {48, 88}");
    free(f.data);

    f = gfile_copy(orig, size);   /* RoPE on part of the head */
    set_u32_key(&f, "llama.rope.dimension_count", 8);
    expect_fail(&f, LISA_ERR_FORMAT, "rope dimension", "llama.rope.dimension_count is 8", "head size 12");
    free(f.data);

    f = gfile_copy(orig, size);   /* vocabulary key against token_embd's rows */
    set_u32_key(&f, "llama.vocab_size", 301);
    expect_fail(&f, LISA_ERR_FORMAT, "vocab size", "llama.vocab_size is 301", "token_embd.weight: 300");
    free(f.data);

    f = gfile_copy(orig, size);   /* the first tensor of a type ggml does not have */
    set_tensor_type(&f, "token_embd.weight", 31);
    expect_fail(&f, LISA_ERR_FORMAT, "unknown type", "tensor token_embd.weight has type unknown (31)", NULL);
    free(f.data);

    if (ready) {   /* a known type lisa_ggml_dequantize does not read, on the last tensor (smaller: no overlap) */
        f = gfile_copy(orig, size);
        set_tensor_type(&f, "output.weight", 24);   /* I8 */
        expect_fail(&f, LISA_ERR_FORMAT, "unreadable type", "tensor output.weight has type I8 (24)",
                    "lisa_ggml_dequantize");
        free(f.data);
    }

    /* truncated data: the last tensor's bytes beyond the end */
    f = gfile_copy(orig, size - 100);
    expect_fail(&f, LISA_ERR_FORMAT, "truncated", "tensor output.weight", "lies beyond");
    free(f.data);
    {   /* from a file, too */
        char path[128];
        snprintf(path, sizeof path, "/tmp/lisa_gguf_model_%ld_cut.gguf", (long)getpid());
        CHECK(write_file(path, orig, size - 100), "truncated copy written");
        r = lisa_model_load(&m, path, NULL, &err);
        CHECK(r == LISA_ERR_FORMAT && has(err.message, path), "truncated file: %s", err.message);
        if (r == LISA_OK) lisa_model_free(&m);
        unlink(path);
    }

    /* every truncation fails cleanly: all of the header, steps through the data */
    for (cut = 0; cut < size; cut += cut < data_offset + 64 ? 1 : 997) {
        r = lisa_model_load_gguf_memory(&m, orig, cut, "cut.gguf", NULL, &err);
        if (r == LISA_OK) lisa_model_free(&m);
        if (r == LISA_OK || !has(err.message, "cut.gguf")) {
            CHECK(0, "truncated at %zu: result %d, %s", cut, (int)r, err.message);
            break;
        }
    }
    CHECK(cut >= size, "every truncation is an error naming the file");
    free(orig);
}

/* ------------------------------------------------------------------------- */
/* Files written here: layouts the fixtures do not have                       */
/* ------------------------------------------------------------------------- */

/* A GGUF writer for the format as ggml's docs/gguf.md describes it (version 3,
   little-endian), independent of lisa.h's reader. */
typedef struct gw {
    unsigned char *buf;
    size_t n, cap;
} gw;

static void gw_bytes(gw *w, const void *p, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = 2 * (w->n + n) + 1024;
        w->buf = (unsigned char *)realloc(w->buf, w->cap);
    }
    memcpy(w->buf + w->n, p, n);
    w->n += n;
}

static void gw_u32(gw *w, uint32_t v) {
    unsigned char b[4];
    put_u32(b, v);
    gw_bytes(w, b, 4);
}

static void gw_u64(gw *w, uint64_t v) {
    gw_u32(w, (uint32_t)v);
    gw_u32(w, (uint32_t)(v >> 32));
}

static void gw_str(gw *w, const char *s) {
    gw_u64(w, strlen(s));
    gw_bytes(w, s, strlen(s));
}

static void gw_kv_u32(gw *w, const char *key, uint32_t v) {
    gw_str(w, key);
    gw_u32(w, 4);
    gw_u32(w, v);
}

static void gw_kv_str(gw *w, const char *key, const char *v) {
    gw_str(w, key);
    gw_u32(w, 8);
    gw_str(w, v);
}

/* llama.cpp's names (src/llama-arch.cpp), in lisa_model_tensor() order. */
static void gguf_name(const lisa_config *c, int idx, char *out, size_t size) {
    static const char *const layer[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                         "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"};
    if (idx == 0) snprintf(out, size, "token_embd.weight");
    else if (idx <= 9 * c->n_layers) snprintf(out, size, "blk.%d.%s.weight", (idx - 1) / 9, layer[(idx - 1) % 9]);
    else if (idx == 9 * c->n_layers + 1) snprintf(out, size, "output_norm.weight");
    else snprintf(out, size, "output.weight");
}

static float pattern(int tensor, size_t i) { return (float)sin(0.37 * (double)i + 1.3 * tensor) * 0.5f; }

/* A model of config c (its tensors in reverse order, alignment 64, keys of
   several integer and float types), plus one extra key (type 8 string when
   extra_str, else uint32 extra_u32) and, with extra_tensor, rope_freqs.weight. */
static unsigned char *build_model(const lisa_config *c, const char *extra_key, const char *extra_str,
                                  uint32_t extra_u32, int extra_tensor, size_t *size) {
    const uint64_t align = 64;
    lisa_model shape_of;
    gw w = {NULL, 0, 0};
    int n_t, k, n_kv = 11 + (extra_key != NULL);
    uint64_t off = 0, *offs;
    char (*names)[64];
    lisa_model_init(&shape_of, c, NULL, NULL);
    n_t = lisa_model_n_tensors(&shape_of);
    offs = (uint64_t *)calloc((size_t)n_t + 1, sizeof *offs);
    names = (char (*)[64])calloc((size_t)n_t + 1, sizeof *names);
    gw_bytes(&w, "GGUF", 4);
    gw_u32(&w, 3);
    gw_u64(&w, (uint64_t)(n_t + extra_tensor));
    gw_u64(&w, (uint64_t)n_kv);
    gw_kv_str(&w, "general.architecture", "llama");
    gw_kv_u32(&w, "general.alignment", (uint32_t)align);
    gw_str(&w, "llama.block_count");   /* uint64 */
    gw_u32(&w, 10);
    gw_u64(&w, (uint64_t)c->n_layers);
    gw_str(&w, "llama.context_length");   /* int32 */
    gw_u32(&w, 5);
    gw_u32(&w, (uint32_t)c->max_seq_len);
    gw_kv_u32(&w, "llama.embedding_length", (uint32_t)c->dim);
    gw_kv_u32(&w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    gw_kv_u32(&w, "llama.attention.head_count", (uint32_t)c->n_heads);
    gw_kv_u32(&w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    gw_str(&w, "llama.attention.layer_norm_rms_epsilon");   /* float64 */
    gw_u32(&w, 12);
    {
        double e = (double)c->norm_eps;
        uint64_t u;
        memcpy(&u, &e, 8);
        gw_u64(&w, u);
    }
    gw_str(&w, "llama.rope.freq_base");   /* float32 */
    gw_u32(&w, 6);
    {
        float t = c->rope_theta;
        uint32_t u;
        memcpy(&u, &t, 4);
        gw_u32(&w, u);
    }
    gw_kv_u32(&w, "llama.rope.dimension_count", (uint32_t)(c->dim / c->n_heads));
    if (extra_key) {
        if (strcmp(extra_key, "tokenizer.ggml.tokens") == 0) {   /* an array of extra_u32 strings */
            uint32_t t;
            gw_str(&w, extra_key);
            gw_u32(&w, 9);
            gw_u32(&w, 8);
            gw_u64(&w, extra_u32);
            for (t = 0; t < extra_u32; t++) gw_str(&w, "t");
        } else if (extra_str) gw_kv_str(&w, extra_key, extra_str);
        else gw_kv_u32(&w, extra_key, extra_u32);
    }
    /* tensor infos, last tensor first; each data start aligned */
    for (k = 0; k < n_t + extra_tensor; k++) {
        int idx = n_t - 1 - k;
        uint64_t bytes;
        if (idx < 0) {
            strcpy(names[n_t], "rope_freqs.weight");
            gw_str(&w, names[n_t]);
            gw_u32(&w, 1);
            gw_u64(&w, (uint64_t)(c->dim / c->n_heads / 2));
            bytes = (uint64_t)(c->dim / c->n_heads / 2) * 4;
        } else {
            lisa_param p = lisa_model_tensor(&shape_of, idx);
            gguf_name(c, idx, names[idx], sizeof names[idx]);
            gw_str(&w, names[idx]);
            gw_u32(&w, (uint32_t)p.tensor.ndim);
            if (p.tensor.ndim == 2) gw_u64(&w, (uint64_t)p.tensor.shape[1]);
            gw_u64(&w, (uint64_t)p.tensor.shape[0]);
            bytes = (uint64_t)lisa_tensor_numel(&p.tensor) * 4;
        }
        gw_u32(&w, 0);   /* F32 */
        gw_u64(&w, off);
        offs[idx < 0 ? n_t : idx] = off;
        off += (bytes + align - 1) / align * align;
    }
    while (w.n % align) gw_bytes(&w, "", 1);
    {
        size_t data_start = w.n;
        unsigned char zero[64] = {0};
        for (k = 0; k < n_t + extra_tensor; k++) {
            int idx = n_t - 1 - k;
            size_t j, n = (size_t)(c->dim / c->n_heads / 2);
            if (idx >= 0) {
                lisa_param p = lisa_model_tensor(&shape_of, idx);
                n = lisa_tensor_numel(&p.tensor);
            }
            while (w.n < data_start + offs[idx < 0 ? n_t : idx]) gw_bytes(&w, zero, 1);
            for (j = 0; j < n; j++) {
                float v = pattern(idx, j);
                uint32_t u;
                memcpy(&u, &v, 4);
                gw_u32(&w, u);
            }
        }
    }
    lisa_model_free(&shape_of);
    free(offs);
    free(names);
    *size = w.n;
    return w.buf;
}

static void test_written(int ready) {
    lisa_config c;
    unsigned char *data;
    size_t size;
    lisa_model m;
    lisa_error err;
    lisa_result r;
    memset(&c, 0, sizeof c);
    c.dim = 16, c.hidden_dim = 1100, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 1, c.vocab_size = 10;
    c.max_seq_len = 32, c.norm_eps = 1e-6f, c.rope_theta = 5000.0f;
    CHECK(lisa_config_resolve(&c, &err) == LISA_OK, "config resolves: %s", err.message);

    /* aligned gaps, reverse order, uint64/int32/float64 keys; ffn_down rows of 1100 floats (two chunks) */
    data = build_model(&c, NULL, NULL, 0, 0, &size);
    r = lisa_model_load_gguf_memory(&m, data, size, "written.gguf", NULL, &err);
    if (!ready) {
        CHECK(r == LISA_ERR_FORMAT && has(err.message, "lisa_ggml_dequantize"), "written: %s", err.message);
    } else {
        CHECK(r == LISA_OK, "written: %s", err.message);
        if (r == LISA_OK) {
            int i, bad = 0, n = lisa_model_n_tensors(&m);
            CHECK(m.config.n_layers == 2 && m.config.max_seq_len == 32 && m.config.norm_eps == 1e-6f &&
                      m.config.rope_theta == 5000.0f && m.config.tied_head == 0 && m.config.vocab_size == 10,
                  "written: config from uint64, int32, float64 and float32 keys");
            for (i = 0; i < n; i++) {
                lisa_param p = lisa_model_tensor(&m, i);
                size_t j;
                for (j = 0; j < lisa_tensor_numel(&p.tensor); j++) bad += p.tensor.data[j] != pattern(i, j);
            }
            CHECK(bad == 0, "written: every weight is the file's (q/k rows unpermuted): %d differ", bad);
            lisa_model_free(&m);
        }
    }
    free(data);

    data = build_model(&c, NULL, NULL, 0, 1, &size);
    r = lisa_model_load_gguf_memory(&m, data, size, "written.gguf", NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && has(err.message, "written.gguf") && has(err.message, "unexpected tensor rope_freqs.weight"),
          "rope_freqs: %s", err.message);
    free(data);

    data = build_model(&c, "llama.rope.scaling.type", "linear", 0, 0, &size);
    r = lisa_model_load_gguf_memory(&m, data, size, "written.gguf", NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && has(err.message, "llama.rope.scaling.type \"linear\" is not supported"),
          "rope scaling: %s", err.message);
    free(data);

    data = build_model(&c, "llama.rope.scaling.type", "none", 0, 0, &size);
    r = lisa_model_load_gguf_memory(&m, data, size, "written.gguf", NULL, &err);
    CHECK(ready ? r == LISA_OK : has(err.message, "lisa_ggml_dequantize"), "rope scaling none is fine: %s",
          err.message);
    if (r == LISA_OK) lisa_model_free(&m);
    free(data);

    data = build_model(&c, "llama.rope.scaling.factor", NULL, 4, 0, &size);
    r = lisa_model_load_gguf_memory(&m, data, size, "written.gguf", NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && has(err.message, "key llama.rope.scaling.factor is not supported"),
          "rope scaling factor: %s", err.message);
    free(data);

    data = build_model(&c, "tokenizer.ggml.tokens", NULL, 11, 0, &size);
    r = lisa_model_load_gguf_memory(&m, data, size, "written.gguf", NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && has(err.message, "tokenizer.ggml.tokens has 11 tokens, token_embd.weight 10 rows"),
          "token count: %s", err.message);
    free(data);

    data = build_model(&c, "tokenizer.ggml.tokens", NULL, 10, 0, &size);
    r = lisa_model_load_gguf_memory(&m, data, size, "written.gguf", NULL, &err);
    CHECK(ready ? r == LISA_OK : has(err.message, "lisa_ggml_dequantize"), "as many tokens as rows: %s", err.message);
    if (r == LISA_OK) lisa_model_free(&m);
    free(data);

    data = build_model(&c, "llama.expert_count", NULL, 8, 0, &size);
    r = lisa_model_load_gguf_memory(&m, data, size, "written.gguf", NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && has(err.message, "llama.expert_count is 8"), "experts: %s", err.message);
    free(data);

    data = build_model(&c, "llama.attention.key_length", NULL, 8, 0, &size);
    r = lisa_model_load_gguf_memory(&m, data, size, "written.gguf", NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && has(err.message, "llama.attention.key_length is 8"), "key length: %s", err.message);
    free(data);
}

/* ------------------------------------------------------------------------- */
/* Allocation failure                                                         */
/* ------------------------------------------------------------------------- */

static void test_alloc_failure(void) {
    const char *paths[2] = {FIX "tiny_f16.gguf", FIX "tied_f32.gguf"};
    int p, mem;
    for (p = 0; p < 2; p++)
        for (mem = 0; mem < 2; mem++) {
            size_t size = 0;
            unsigned char *data = mem ? read_file(paths[p], &size) : NULL;
            lisa_result final = LISA_OK, r;
            lisa_error err;
            long n;
            int bad = 0;
            {   /* the unconstrained result: what every run that is not refused must give */
                counter c = {0, -1, 0, 0};
                lisa_allocator al;
                lisa_model m;
                al.alloc = cnt_alloc;
                al.free = cnt_free;
                al.user = &c;
                final = mem ? lisa_model_load_gguf_memory(&m, data, size, "m.gguf", &al, &err)
                            : lisa_model_load_gguf(&m, paths[p], &al, &err);
                if (final == LISA_OK) lisa_model_free(&m);
            }
            for (n = 0; n < 1000; n++) {
                counter c = {0, -1, 0, 0};
                lisa_allocator al;
                lisa_model m;
                c.fail_after = n;
                al.alloc = cnt_alloc;
                al.free = cnt_free;
                al.user = &c;
                r = mem ? lisa_model_load_gguf_memory(&m, data, size, "m.gguf", &al, &err)
                        : lisa_model_load_gguf(&m, paths[p], &al, &err);
                if (r == LISA_OK) {
                    if (m.bytes != c.live) bad++;
                    lisa_model_free(&m);
                }
                if (c.live != 0) bad++;
                if (c.n_refused == 0) {   /* nothing refused: the end */
                    if (r != final) bad++;
                    break;
                }
                if (r != LISA_ERR_NOMEM) {
                    bad++;
                    fprintf(stderr, "refused after %ld: result %d: %s\n", n, (int)r, err.message);
                }
            }
            CHECK(bad == 0 && n < 1000, "%s (%s): every refused allocation gives NOMEM with nothing leaked (%ld runs)",
                  paths[p], mem ? "memory" : "file", n);
            free(data);
        }
    for (p = 0; p < 2; p++) {   /* the config alone */
        long n;
        int bad = 0;
        for (n = 0; n < 100; n++) {
            counter c = {0, -1, 0, 0};
            lisa_allocator al;
            lisa_config cfg;
            lisa_error err;
            lisa_result r;
            c.fail_after = n;
            al.alloc = cnt_alloc;
            al.free = cnt_free;
            al.user = &c;
            r = lisa_model_read_config(paths[p], &cfg, &al, &err);
            if (c.live != 0) bad++;
            if (c.n_refused == 0) {
                if (r != LISA_OK) bad++;
                break;
            }
            if (r != LISA_ERR_NOMEM) bad++;
        }
        CHECK(bad == 0 && n < 100, "%s: read_config: every refused allocation gives NOMEM, nothing leaked (%ld runs)",
              paths[p], n);
    }
}

/* ------------------------------------------------------------------------- */
/* Writing: lisa_model_save_gguf                                              */
/* ------------------------------------------------------------------------- */

#define WFIX "tests/fixtures/gguf_write/"

static void tmp_path(char *out, size_t size, const char *what) {
    snprintf(out, size, "/tmp/lisa_gguf_write_%ld_%s", (long)getpid(), what);
}

/* The model in weights.bin (tools/make_gguf_write_fixture.py); 0 when it cannot be built. */
static int fixture_model(lisa_model *m) {
    fixture fx;
    const fixture_entry *cf, *ft;
    lisa_config c;
    lisa_error err;
    int i, ok = 1;
    if (fixture_load(&fx, WFIX "weights.bin") != 0) return 0;
    cf = fixture_find(&fx, "config");
    ft = fixture_find(&fx, "eps_theta");
    if (!cf || !ft || cf->n != 8 || ft->n != 2) {
        fixture_free(&fx);
        return 0;
    }
    memset(&c, 0, sizeof c);
    c.dim = cf->i32[0];
    c.hidden_dim = cf->i32[1];
    c.n_layers = cf->i32[2];
    c.n_heads = cf->i32[3];
    c.n_kv_heads = cf->i32[4];
    c.vocab_size = cf->i32[5];
    c.max_seq_len = cf->i32[6];
    c.tied_head = cf->i32[7];
    c.norm_eps = ft->f32[0];
    c.rope_theta = ft->f32[1];
    if (lisa_model_init(m, &c, NULL, &err) != LISA_OK) {
        fixture_free(&fx);
        return 0;
    }
    for (i = 0; ok && i < lisa_model_n_tensors(m); i++) {
        lisa_param p = lisa_model_tensor(m, i);
        char name[96];
        const fixture_entry *e;
        gguf_name(&m->config, i, name, sizeof name);
        e = fixture_find(&fx, name);
        ok = e && e->f32 && e->n == lisa_tensor_numel(&p.tensor);
        if (ok) memcpy(p.tensor.data, e->f32, e->n * sizeof(float));
    }
    fixture_free(&fx);
    if (!ok) lisa_model_free(m);
    return ok;
}

/* lisa_ggml_quantize then lisa_ggml_dequantize: what a weight reads back as in type t. */
static void through_type(uint32_t t, const float *src, float *dst, size_t n) {
    unsigned char *q = (unsigned char *)malloc(n * 4 + 64);
    if (!lisa_ggml_quantize(t, src, q, n) || !lisa_ggml_dequantize(t, q, dst, n)) memset(dst, 0xff, n * sizeof(float));
    free(q);
}

/* The type a matrix of row length cols is written in (norms: F32). */
static uint32_t written_type(uint32_t type, int ndim, int cols) {
    if (ndim == 1) return 0;
    return type == 8 && cols % 32 != 0 ? 1 : type;
}

/* Saves m as type, reloads it, compares every weight with what lisa's own
   conversion makes of it (bit for bit). */
static void round_trip(const lisa_model *m, uint32_t type, const lisa_gguf *carry, const char *label) {
    char path[256];
    lisa_model back;
    lisa_error err;
    lisa_result r;
    int i, bad = -1;
    tmp_path(path, sizeof path, "round.gguf");
    r = lisa_model_save_gguf(m, path, type, carry, &err);
    CHECK(r == LISA_OK, "%s: save: %s", label, err.message);
    if (r != LISA_OK) return;
    r = lisa_model_load_gguf(&back, path, NULL, &err);
    CHECK(r == LISA_OK, "%s: load back: %s", label, err.message);
    unlink(path);
    if (r != LISA_OK) return;
    CHECK(memcmp(&back.config, &m->config, sizeof m->config) == 0, "%s: the config reads back", label);
    for (i = 0; bad < 0 && i < lisa_model_n_tensors(m); i++) {
        lisa_param p = lisa_model_tensor(m, i), q = lisa_model_tensor(&back, i);
        size_t n = lisa_tensor_numel(&p.tensor);
        float *want = (float *)malloc(n * sizeof(float));
        uint32_t t = written_type(type, p.tensor.ndim, p.tensor.ndim == 2 ? p.tensor.shape[1] : 0);
        through_type(t, p.tensor.data, want, n);
        if (n != lisa_tensor_numel(&q.tensor) || memcmp(want, q.tensor.data, n * sizeof(float)) != 0) bad = i;
        free(want);
    }
    CHECK(bad < 0, "%s: every weight reads back as lisa_ggml_quantize + dequantize make it (first bad tensor %d)",
          label, bad);
    lisa_model_free(&back);
}

static unsigned char *file_bytes(const char *path, size_t *size) {
    unsigned char *b = read_file(path, size);
    if (!b) *size = 0;
    return b;
}

/* lisa's file from gguf-py's weights, with gguf-py's file's metadata as carry,
   against gguf-py's file: byte for byte. */
static void test_write_against_gguf_py(const lisa_model *m) {
    static const char *const stems[4] = {"f32", "f16", "bf16", "q8_0"};
    static const uint32_t types[4] = {0, 1, 30, 8};
    int k;
    for (k = 0; k < 4; k++) {
        char ref_path[256], path[256];
        lisa_gguf carry;
        lisa_error err;
        unsigned char *ref, *got;
        size_t ref_n, got_n, at = 0;
        snprintf(ref_path, sizeof ref_path, WFIX "model_%s.gguf", stems[k]);
        tmp_path(path, sizeof path, "vs_gguf_py.gguf");
        if (lisa_gguf_read_metadata(&carry, ref_path, NULL, &err) != LISA_OK) {
            CHECK(0, "gguf-py %s: fixture metadata: %s", stems[k], err.message);
            continue;
        }
        CHECK(lisa_model_save_gguf(m, path, types[k], &carry, &err) == LISA_OK, "gguf-py %s: save: %s", stems[k],
              err.message);
        lisa_gguf_free(&carry);
        ref = file_bytes(ref_path, &ref_n);
        got = file_bytes(path, &got_n);
        while (ref && got && at < ref_n && at < got_n && ref[at] == got[at]) at++;
        CHECK(ref && got && ref_n == got_n && at == ref_n,
              "gguf-py %s: lisa's file is gguf-py's byte for byte (%lu and %lu bytes, first difference at %lu)",
              stems[k], (unsigned long)got_n, (unsigned long)ref_n, (unsigned long)at);
        free(ref);
        free(got);
        unlink(path);
    }
}

/* key's type and, for integers, floats and strings, its value. */
static void expect_key(const lisa_gguf *g, const char *key, lisa_gguf_type type, double num, const char *str) {
    int i = lisa_gguf_find(g, key);
    int64_t iv = 0;
    double fv = 0;
    const char *s = NULL;
    size_t len = 0;
    CHECK(i >= 0 && g->kv[i].type == type, "written: key %s is a %s (%s)", key, lisa_gguf_type_name(type),
          i >= 0 ? lisa_gguf_type_name(g->kv[i].type) : "absent");
    if (i < 0 || g->kv[i].type != type) return;
    if (str) CHECK(lisa_gguf_get_string(g, i, &s, &len, NULL) == LISA_OK && len == strlen(str) && memcmp(s, str, len) == 0,
                   "written: key %s is \"%s\"", key, str);
    else if (type == LISA_GGUF_FLOAT32)
        CHECK(lisa_gguf_get_float(g, i, &fv, NULL) == LISA_OK && (float)fv == (float)num, "written: key %s is %g (%g)", key, num, fv);
    else CHECK(lisa_gguf_get_int(g, i, &iv, NULL) == LISA_OK && (double)iv == num, "written: key %s is %g (%g)", key, num, (double)iv);
}

/* The keys and tensor infos of a save without carry, through lisa_gguf_read_metadata. */
static void test_write_metadata(const lisa_model *m) {
    const lisa_config *c = &m->config;
    char path[256], name[96];
    lisa_gguf g;
    lisa_error err;
    int i, ok = 1;
    tmp_path(path, sizeof path, "keys.gguf");
    CHECK(lisa_model_save_gguf(m, path, 8, NULL, &err) == LISA_OK, "written: save: %s", err.message);
    if (lisa_gguf_read_metadata(&g, path, NULL, &err) != LISA_OK) {
        CHECK(0, "written: read back: %s", err.message);
        return;
    }
    CHECK(g.version == 3 && g.alignment == 32 && g.data_offset % 32 == 0, "written: version 3, alignment 32");
    CHECK(g.n_kv == 15, "written: 15 keys without carry (%d)", g.n_kv);
    expect_key(&g, "general.architecture", LISA_GGUF_STRING, 0, "llama");
    expect_key(&g, "general.type", LISA_GGUF_STRING, 0, "model");
    expect_key(&g, "general.name", LISA_GGUF_STRING, 0, "lisa");
    expect_key(&g, "general.file_type", LISA_GGUF_UINT32, 7, NULL);
    expect_key(&g, "general.quantization_version", LISA_GGUF_UINT32, 2, NULL);
    expect_key(&g, "llama.block_count", LISA_GGUF_UINT32, c->n_layers, NULL);
    expect_key(&g, "llama.context_length", LISA_GGUF_UINT32, c->max_seq_len, NULL);
    expect_key(&g, "llama.embedding_length", LISA_GGUF_UINT32, c->dim, NULL);
    expect_key(&g, "llama.feed_forward_length", LISA_GGUF_UINT32, c->hidden_dim, NULL);
    expect_key(&g, "llama.attention.head_count", LISA_GGUF_UINT32, c->n_heads, NULL);
    expect_key(&g, "llama.attention.head_count_kv", LISA_GGUF_UINT32, c->n_kv_heads, NULL);
    expect_key(&g, "llama.rope.freq_base", LISA_GGUF_FLOAT32, c->rope_theta, NULL);
    expect_key(&g, "llama.attention.layer_norm_rms_epsilon", LISA_GGUF_FLOAT32, c->norm_eps, NULL);
    expect_key(&g, "llama.vocab_size", LISA_GGUF_UINT32, c->vocab_size, NULL);
    expect_key(&g, "llama.rope.dimension_count", LISA_GGUF_UINT32, c->dim / c->n_heads, NULL);
    /* tensors: names, {in, out}, types (ffn_down's rows of 48 are not Q8_0 blocks: F16) */
    CHECK(g.n_tensors == lisa_model_n_tensors(m), "written: %d tensors (%d)", lisa_model_n_tensors(m), g.n_tensors);
    for (i = 0; i < lisa_model_n_tensors(m); i++) {
        lisa_param p = lisa_model_tensor(m, i);
        int j;
        const lisa_gguf_tensor *t;
        gguf_name(c, i, name, sizeof name);
        j = lisa_gguf_find_tensor(&g, name);
        if (j < 0) {
            ok = 0;
            continue;
        }
        t = &g.tensors[j];
        ok &= t->n_dims == p.tensor.ndim && t->offset % 32 == 0;
        ok &= p.tensor.ndim == 1 ? t->dims[0] == (uint64_t)p.tensor.shape[0] && t->type == 0
                                 : t->dims[0] == (uint64_t)p.tensor.shape[1] && t->dims[1] == (uint64_t)p.tensor.shape[0] &&
                                       t->type == written_type(8, 2, p.tensor.shape[1]);
    }
    CHECK(ok, "written: every tensor with its name, ggml dims {in, out} and type");
    CHECK(lisa_gguf_find_tensor(&g, "blk.0.ffn_down.weight") >= 0 &&
              g.tensors[lisa_gguf_find_tensor(&g, "blk.0.ffn_down.weight")].type == 1 &&
              g.tensors[lisa_gguf_find_tensor(&g, "blk.0.attn_q.weight")].type == 8,
          "written: Q8_0 matrices, ffn_down (rows of %d) F16", c->hidden_dim);
    CHECK(strcmp(g.tensors[0].name, "token_embd.weight") == 0 && strcmp(g.tensors[1].name, "blk.0.attn_norm.weight") == 0 &&
              strcmp(g.tensors[9].name, "blk.0.ffn_norm.weight") == 0 &&
              strcmp(g.tensors[g.n_tensors - 1].name, "output.weight") == 0,
          "written: convert_hf_to_gguf.py's tensor order");
    lisa_gguf_free(&g);
    unlink(path);
}

/* A carry made here: general.* and tokenizer.* keys of every kind, keys the
   writer sets (with other values) and keys it does not copy. */
static gw carry_bytes(int vocab) {
    gw w;
    int k;
    memset(&w, 0, sizeof w);
    gw_bytes(&w, "GGUF", 4);
    gw_u32(&w, 3);
    gw_u64(&w, 0);
    gw_u64(&w, 11);
    gw_kv_str(&w, "general.architecture", "llama");
    gw_kv_u32(&w, "general.file_type", 1);
    gw_kv_u32(&w, "general.alignment", 64);
    gw_kv_u32(&w, "llama.block_count", 99);
    gw_kv_str(&w, "general.name", "Carried Name");
    gw_kv_str(&w, "other.key", "not copied");
    gw_str(&w, "general.tags");                 /* array of strings */
    gw_u32(&w, 9);
    gw_u32(&w, 8);
    gw_u64(&w, 2);
    gw_str(&w, "a");
    gw_str(&w, "bc");
    gw_str(&w, "tokenizer.ggml.scores");        /* array of float32 */
    gw_u32(&w, 9);
    gw_u32(&w, 6);
    gw_u64(&w, (uint64_t)vocab);
    for (k = 0; k < vocab; k++) gw_u32(&w, 0x3f800000u + (uint32_t)k);
    gw_str(&w, "tokenizer.ggml.ids");           /* array of uint32 */
    gw_u32(&w, 9);
    gw_u32(&w, 4);
    gw_u64(&w, 3);
    gw_u32(&w, 1);
    gw_u32(&w, 2);
    gw_u32(&w, 4000000000u);
    gw_str(&w, "tokenizer.ggml.add_bos_token"); /* bool */
    gw_u32(&w, 7);
    gw_bytes(&w, "\1", 1);
    gw_str(&w, "tokenizer.ggml.nested");        /* array of arrays of uint8 */
    gw_u32(&w, 9);
    gw_u32(&w, 9);
    gw_u64(&w, 2);
    gw_u32(&w, 0);
    gw_u64(&w, 1);
    gw_bytes(&w, "\x05", 1);
    gw_u32(&w, 0);
    gw_u64(&w, 2);
    gw_bytes(&w, "\x06\x07", 2);
    return w;
}

/* The bytes of key's value in g (after its type), or NULL. */
static const unsigned char *value_bytes(const lisa_gguf *g, const char *key, size_t *n, lisa_gguf_type *type,
                                        lisa_gguf_type *elem, uint64_t *count) {
    int i = lisa_gguf_find(g, key);
    if (i < 0) return NULL;
    *n = g->kv[i].value_size;
    *type = g->kv[i].type;
    *elem = g->kv[i].elem_type;
    *count = g->kv[i].count;
    return g->buffer + g->kv[i].value;
}

static void test_write_carry(const lisa_model *m) {
    static const char *const copied[] = {"general.name", "general.tags", "tokenizer.ggml.scores", "tokenizer.ggml.ids",
                                         "tokenizer.ggml.add_bos_token", "tokenizer.ggml.nested"};
    gw cb = carry_bytes(m->config.vocab_size);
    lisa_gguf carry, g;
    lisa_error err;
    char path[256];
    size_t k;
    int i;
    tmp_path(path, sizeof path, "carry.gguf");
    if (lisa_gguf_parse_memory(&carry, cb.buf, cb.n, "carry", NULL, &err) != LISA_OK) {
        CHECK(0, "carry: the carry parses: %s", err.message);
        free(cb.buf);
        return;
    }
    CHECK(lisa_model_save_gguf(m, path, 30, &carry, &err) == LISA_OK, "carry: save: %s", err.message);
    if (lisa_gguf_read_metadata(&g, path, NULL, &err) != LISA_OK) {
        CHECK(0, "carry: read back: %s", err.message);
    } else {
        for (k = 0; k < sizeof copied / sizeof *copied; k++) {
            size_t n1 = 0, n2 = 0;
            lisa_gguf_type t1 = LISA_GGUF_UINT8, t2 = LISA_GGUF_INT8, e1 = t1, e2 = t2;
            uint64_t c1 = 0, c2 = 1;
            const unsigned char *a = value_bytes(&carry, copied[k], &n1, &t1, &e1, &c1);
            const unsigned char *b = value_bytes(&g, copied[k], &n2, &t2, &e2, &c2);
            CHECK(a && b && n1 == n2 && t1 == t2 && e1 == e2 && c1 == c2 && memcmp(a, b, n1) == 0,
                  "carry: %s is copied with its type and value", copied[k]);
        }
        expect_key(&g, "general.file_type", LISA_GGUF_UINT32, 32, NULL);   /* MOSTLY_BF16, not carry's 1 */
        expect_key(&g, "llama.block_count", LISA_GGUF_UINT32, m->config.n_layers, NULL);
        CHECK(lisa_gguf_find(&g, "general.alignment") < 0 && g.alignment == 32, "carry: no general.alignment (carry's 64)");
        CHECK(lisa_gguf_find(&g, "other.key") < 0, "carry: keys outside general.* and tokenizer.* are not copied");
        CHECK(g.n_kv == 15 + 5, "carry: 15 keys of the writer's and 5 carried ones (%d): none twice", g.n_kv);
        i = lisa_gguf_find(&g, "general.name");
        CHECK(i == 2, "carry: general.name in the writer's place (key %d)", i);
        lisa_gguf_free(&g);
    }
    round_trip(m, 0, &carry, "carry F32");
    lisa_gguf_free(&carry);
    unlink(path);
    free(cb.buf);
    /* a vocabulary that is not the model's would make a file that does not load */
    {
        gw w;
        memset(&w, 0, sizeof w);
        gw_bytes(&w, "GGUF", 4);
        gw_u32(&w, 3);
        gw_u64(&w, 0);
        gw_u64(&w, 1);
        gw_str(&w, "tokenizer.ggml.tokens");
        gw_u32(&w, 9);
        gw_u32(&w, 8);
        gw_u64(&w, 1);
        gw_str(&w, "x");
        if (lisa_gguf_parse_memory(&carry, w.buf, w.n, "one token", NULL, &err) == LISA_OK) {
            lisa_result r = lisa_model_save_gguf(m, path, 0, &carry, &err);
            CHECK(r == LISA_ERR_INVALID && has(err.message, path) && has(err.message, "tokenizer.ggml.tokens"),
                  "carry: a vocabulary of 1 token for %d is refused: %s", m->config.vocab_size, err.message);
            CHECK(access(path, F_OK) != 0, "carry: no file is written");
        } else {
            CHECK(0, "carry: the one-token carry parses: %s", err.message);
        }
        lisa_gguf_free(&carry);
        free(w.buf);
    }
}

static lisa_result save_gguf_q8(const void *m, const char *path, lisa_error *err) {
    return lisa_model_save_gguf((const lisa_model *)m, path, 8, NULL, err);
}

static void test_write_refusals(const lisa_model *m) {
    static const uint32_t types[3] = {2, 14, 99};
    static const char *const names[3] = {"Q4_0", "Q6_K", "unknown"};
    char path[256];
    lisa_error err;
    int k;
    tmp_path(path, sizeof path, "refused.gguf");
    for (k = 0; k < 3; k++) {
        lisa_result r = lisa_model_save_gguf(m, path, types[k], NULL, &err);
        CHECK(r == LISA_ERR_INVALID && has(err.message, path) && has(err.message, names[k]),
              "refused: type %u is LISA_ERR_INVALID naming %s: %s", (unsigned)types[k], names[k], err.message);
        CHECK(access(path, F_OK) != 0, "refused: type %u writes no file", (unsigned)types[k]);
    }
}

static void test_write_failures(const lisa_model *m) {
    save_fail_case fc;
    char work[256];
    memset(&fc, 0, sizeof fc);
    fc.label = "GGUF save";
    fc.save = save_gguf_q8;
    fc.obj = m;
    fc.files[0] = "model.gguf";
    tmp_path(work, sizeof work, "fail");
    mkdir(work, 0700);
    save_fail_check(&fc, work);
    rmdir(work);
}

/* Random models of other layouts: tied, GQA, MQA, a head size whose rows are Q8_0 blocks. */
static void test_write_round_trips(void) {
    static const lisa_config cs[3] = {
        {64, 96, 2, 4, 2, 70, 32, 1e-5f, 10000.0f, 1},   /* tied, GQA */
        {32, 40, 1, 4, 4, 50, 16, 1e-6f, 500000.0f, 0},  /* untied, no GQA; down rows of 40 */
        {48, 64, 3, 6, 1, 33, 24, 1e-5f, 10000.0f, 0}};  /* MQA; rows of 48: Q8_0 falls back to F16 */
    static const uint32_t types[4] = {0, 1, 30, 8};
    int k, t;
    for (k = 0; k < 3; k++) {
        lisa_model m;
        lisa_error err;
        lisa_config c = cs[k];
        char label[64];
        if (lisa_model_init(&m, &c, NULL, &err) != LISA_OK) {
            CHECK(0, "round trip %d: init: %s", k, err.message);
            continue;
        }
        lisa_model_init_random(&m, 100 + (uint64_t)k);
        for (t = 0; t < 4; t++) {
            snprintf(label, sizeof label, "round trip %d (%s, %s)", k, c.tied_head ? "tied" : "untied",
                     lisa_ggml_type_name(types[t]));
            round_trip(&m, types[t], NULL, label);
        }
        lisa_model_free(&m);
    }
}

static void test_write(void) {
    lisa_model m;
    if (!fixture_model(&m)) {
        CHECK(0, "write: the model in " WFIX "weights.bin");
        return;
    }
    test_write_against_gguf_py(&m);
    test_write_metadata(&m);
    test_write_carry(&m);
    round_trip(&m, 0, NULL, "fixture F32");
    round_trip(&m, 8, NULL, "fixture Q8_0");
    test_write_refusals(&m);
    test_write_failures(&m);
    test_write_round_trips();
    lisa_model_free(&m);
}

/* ------------------------------------------------------------------------- */
/* Tokenizer metadata from Hugging Face: lisa_gguf_tokenizer_from_hf          */
/* ------------------------------------------------------------------------- */

#define TOKFIX "tests/fixtures/tokenizers/"

/* Key `key` of a and of b: both absent, or the same type, element type, count and value bytes. */
static int same_kv(const lisa_gguf *a, const lisa_gguf *b, const char *key) {
    int i = lisa_gguf_find(a, key), j = lisa_gguf_find(b, key);
    const lisa_gguf_kv *x, *y;
    if (i < 0 || j < 0) return i < 0 && j < 0;
    x = &a->kv[i];
    y = &b->kv[j];
    return x->type == y->type && x->elem_type == y->elem_type && x->count == y->count &&
           x->value_size == y->value_size && memcmp(a->buffer + x->value, b->buffer + y->value, x->value_size) == 0;
}

/* Every tokenizer.* key of want is in got with its type and value; got has no other key. */
static void same_tokenizer_keys(const lisa_gguf *got, const lisa_gguf *want, const char *skip, const char *label) {
    int i, n_want = 0;
    for (i = 0; i < want->n_kv; i++) {
        const char *key = want->kv[i].key;
        if (strncmp(key, "tokenizer.", 10) != 0) continue;
        n_want++;
        if (skip && strcmp(key, skip) == 0) continue;
        CHECK(same_kv(got, want, key), "%s: %s has the GGUF's type and value", label, key);
    }
    CHECK(got->n_kv == n_want && got->n_tensors == 0, "%s: %d keys, the GGUF's %d tokenizer.* keys", label, got->n_kv,
          n_want);
}

static char *read_text_file(const char *path, size_t *n) {
    unsigned char *b = read_file(path, n);
    if (b) b[*n] = 0;
    return (char *)b;
}

/* tokenizers/smollm2 as the Hub has it: Digits (each digit alone) before
   ByteLevel, which transformers' GGUF reading dropped; in dir. */
static int hub_smollm2(const char *dir) {
    static const char plain[] = "\"pre_tokenizer\":{\"type\":\"ByteLevel\",";
    static const char hub[] = "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\","
                              "\"individual_digits\":true},{\"type\":\"ByteLevel\",";
    static const char *const side[2] = {"tokenizer_config.json", "chat_template.jinja"};
    char path[512], *json, *at, *end;
    size_t n, k;
    int ok;
    FILE *f;
    mkdir(dir, 0700);
    json = read_text_file(TOKFIX "smollm2/tokenizer.json", &n);
    if (!json || !(at = strstr(json, plain)) || !(end = strchr(at + sizeof plain - 1, '}'))) {
        free(json);
        return 0;
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    f = fopen(path, "wb");
    ok = f != NULL;
    if (f) {
        fwrite(json, 1, (size_t)(at - json), f);
        fputs(hub, f);
        fwrite(at + sizeof plain - 1, 1, (size_t)(end + 1 - (at + sizeof plain - 1)), f);
        fputs("]}", f);
        fputs(end + 1, f);
        ok = fclose(f) == 0;
    }
    free(json);
    for (k = 0; ok && k < 2; k++) {
        char src[256];
        unsigned char *b;
        snprintf(src, sizeof src, TOKFIX "smollm2/%s", side[k]);
        snprintf(path, sizeof path, "%s/%s", dir, side[k]);
        b = read_file(src, &n);
        ok = b && write_file(path, b, n);
        free(b);
    }
    return ok;
}

static void remove_hub_smollm2(const char *dir) {
    static const char *const files[3] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"};
    char path[512];
    int k;
    for (k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[k]);
        unlink(path);
    }
    rmdir(dir);
}

/* The corpus encoded through the metadata's tokenizer gives llama.cpp's ids. */
static void encodes_as_llamacpp(const lisa_gguf *g, const char *reference, const char *label) {
    lisa_tokenizer t;
    lisa_error err;
    size_t size, start = 0, i;
    char *text = read_text_file(reference, &size);
    int *want = (int *)malloc(65536 * sizeof(int)), *got = (int *)malloc(65536 * sizeof(int));
    int lines = 0, agree = 0;
    if (lisa_tokenizer_load_gguf_metadata(&t, g, NULL, &err) != LISA_OK) {
        CHECK(0, "%s: the metadata's tokenizer loads: %s", label, err.message);
        free(text), free(want), free(got);
        return;
    }
    for (i = 0; text && i <= size; i++) {
        lisa_json j;
        const char *s;
        size_t n, ng = 0;
        int c, nw = 0, root;
        if (i < size && text[i] != '\n') continue;
        if (i > start && lisa_json_parse(&j, text + start, i - start, reference, NULL, &err) == LISA_OK) {
            root = lisa_json_root(&j);
            s = lisa_json_string(&j, lisa_json_get(&j, root, "text"), &n);
            for (c = lisa_json_first(&j, lisa_json_get(&j, root, "ids")); c >= 0 && nw < 65536; c = lisa_json_next(&j, c))
                want[nw++] = (int)lisa_json_number(&j, c);
            lines++;
            if (s && lisa_tokenizer_encode(&t, s, n, t.add_bos, t.add_eos, got, 65536, &ng, &err) == LISA_OK &&
                ng == (size_t)nw && memcmp(got, want, ng * sizeof(int)) == 0)
                agree++;
            lisa_json_free(&j);
        }
        start = i + 1;
    }
    printf("%s: %d of %d corpus lines encode to llama.cpp's ids\n", label, agree, lines);
    CHECK(lines >= 100 && agree == lines, "%s: every line of %s gives llama.cpp's ids (%d of %d)", label, reference,
          agree, lines);
    lisa_tokenizer_free(&t);
    free(text), free(want), free(got);
}

static void test_from_hf(void) {
    static const struct {
        const char *dir, *gguf, *pre;
    } small[3] = {{"gpt2-bytelevel", "gpt2", "gpt-2"}, {"llama3-split", "llama-bpe", "llama-bpe"},
                  {"qwen2-split", "qwen2", "qwen2"}};
    static const char *const shape[4] = {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                                         "tokenizer.ggml.merges"};
    lisa_gguf got, want;
    lisa_error err;
    char dir[256];
    const char *s;
    size_t len;
    int k, i;
    lisa_result r;
    if (lisa_gguf_read_metadata(&want, TOKFIX "gguf/smollm2.gguf", NULL, &err) != LISA_OK) {
        CHECK(0, "from_hf: smollm2.gguf: %s", err.message);
        return;
    }
    /* the Hub's SmolLM2 tokenizer: every key the GGUF has, pre "smollm" */
    tmp_path(dir, sizeof dir, "hub_smollm2");
    CHECK(hub_smollm2(dir), "from_hf: the Hub's SmolLM2 directory written");
    r = lisa_gguf_tokenizer_from_hf(&got, dir, NULL, &err);
    CHECK(r == LISA_OK, "from_hf: the Hub's SmolLM2: %s", err.message);
    if (r == LISA_OK) {
        same_tokenizer_keys(&got, &want, NULL, "from_hf SmolLM2 (Hub)");
        encodes_as_llamacpp(&got, TOKFIX "gguf/smollm2.gguf.llamacpp.jsonl", "from_hf SmolLM2 (Hub)");
    }
    lisa_gguf_free(&got);
    remove_hub_smollm2(dir);
    /* transformers' writing of it (plain ByteLevel): the same but the pre name, from tokenizer.json itself */
    r = lisa_gguf_tokenizer_from_hf(&got, TOKFIX "smollm2/tokenizer.json", NULL, &err);
    CHECK(r == LISA_OK, "from_hf: smollm2/tokenizer.json: %s", err.message);
    if (r == LISA_OK) {
        same_tokenizer_keys(&got, &want, "tokenizer.ggml.pre", "from_hf smollm2/");
        CHECK(lisa_gguf_get_string(&got, lisa_gguf_find(&got, "tokenizer.ggml.pre"), &s, &len, NULL) == LISA_OK &&
                  len == 5 && memcmp(s, "gpt-2", 5) == 0,
              "from_hf smollm2/: plain ByteLevel is pre \"gpt-2\"");
    }
    lisa_gguf_free(&got);
    lisa_gguf_free(&want);
    /* the small byte-level fixtures: the vocabulary keys of the GGUFs made from them */
    for (k = 0; k < 3; k++) {
        char path[256], label[96];
        snprintf(path, sizeof path, TOKFIX "gguf/%s.gguf", small[k].gguf);
        snprintf(label, sizeof label, "from_hf %s/", small[k].dir);
        if (lisa_gguf_read_metadata(&want, path, NULL, &err) != LISA_OK) {
            CHECK(0, "%s: %s", label, err.message);
            continue;
        }
        snprintf(path, sizeof path, TOKFIX "%s", small[k].dir);
        r = lisa_gguf_tokenizer_from_hf(&got, path, NULL, &err);
        CHECK(r == LISA_OK, "%s: %s", label, err.message);
        for (i = 0; r == LISA_OK && i < 4; i++) CHECK(same_kv(&got, &want, shape[i]), "%s: %s as in %s.gguf", label, shape[i], small[k].gguf);
        lisa_gguf_free(&got);
        lisa_gguf_free(&want);
    }
    /* SentencePiece-style vocabularies are not written */
    r = lisa_gguf_tokenizer_from_hf(&got, TOKFIX "spm-bpe", NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && has(err.message, "spm-bpe") && has(err.message, "byte_fallback"),
          "from_hf: spm-bpe/ is refused, naming byte_fallback: %s", err.message);
    CHECK(got.n_kv == 0 && got.owned == NULL, "from_hf: nothing is held after a failure");
    lisa_gguf_free(&got);
    r = lisa_gguf_tokenizer_from_hf(&got, "/nonexistent/dir", NULL, &err);
    CHECK(r == LISA_ERR_IO && has(err.message, "/nonexistent/dir"), "from_hf: a missing directory: %s", err.message);
    lisa_gguf_free(&got);
}

/* Every allocation refused in turn: LISA_ERR_NOMEM, nothing kept; then all of it freed. */
static void test_from_hf_alloc(void) {
    counter c;
    lisa_allocator a;
    lisa_gguf g;
    lisa_error err;
    long k;
    int nomem_ok = 1, clean = 1, done = 0;
    a.alloc = cnt_alloc;
    a.free = cnt_free;
    a.user = &c;
    for (k = 0; k < 200 && !done; k++) {
        lisa_result r;
        memset(&c, 0, sizeof c);
        c.fail_after = k;
        r = lisa_gguf_tokenizer_from_hf(&g, TOKFIX "gpt2-bytelevel", &a, &err);
        if (r == LISA_OK) {
            done = 1;
            clean &= g.bytes == c.live && g.bytes > 0;
        } else {
            nomem_ok &= r == LISA_ERR_NOMEM;
        }
        lisa_gguf_free(&g);
        clean &= c.live == 0;
    }
    CHECK(done && nomem_ok && clean, "from_hf: every refused allocation is LISA_ERR_NOMEM and leaks nothing (%ld tries)", k);
}

/* ------------------------------------------------------------------------- */
/* SmolLM2 by hand                                                            */
/* ------------------------------------------------------------------------- */

/* lisa_ggml_dequantize reads one block each of F32, Q4_1 and Q8_0 (zeros give zeros). */
static int reads_q4_1_q8_0(void) {
    unsigned char zeros[64] = {0};
    float out[32];
    return lisa_ggml_dequantize(0, zeros, out, 1) && lisa_ggml_dequantize(3, zeros, out, 32) &&
           lisa_ggml_dequantize(8, zeros, out, 32);
}

/* transformers' logits on the same file (the first 512 vocabulary entries). */
static void smollm2_logits(const lisa_model *m) {
    fixture fx;
    const fixture_entry *ids, *ref;
    lisa_acts acts;
    lisa_error err;
    double max_diff = 0.0, max_ref = 0.0;
    int T, t, v, V = m->config.vocab_size;
    if (fixture_load(&fx, FIX "smollm2_logits.bin") != 0) {
        CHECK(0, "SmolLM2: fixture smollm2_logits.bin loads");
        return;
    }
    ids = fixture_find(&fx, "ids");
    ref = fixture_find(&fx, "logits");
    T = ids ? ids->shape[1] : 0;
    if (!ids || !ref || ref->n != (size_t)T * 512 || lisa_acts_init(&acts, &m->config, 1, T, 0, NULL, &err) != LISA_OK) {
        CHECK(0, "SmolLM2: fixture entries and activations");
        fixture_free(&fx);
        return;
    }
    lisa_model_forward(m, &acts, ids->i32, NULL, 1, T);
    for (t = 0; t < T; t++)
        for (v = 0; v < 512; v++) {
            double r = ref->f32[(size_t)t * 512 + v], d = fabs((double)acts.logits[(size_t)t * V + v] - r);
            if (d > max_diff || d != d) max_diff = d != d ? 1e30 : d;
            if (fabs(r) > max_ref) max_ref = fabs(r);
        }
    printf("SmolLM2: logits max diff %.3g (max |ref| %.3g)\n", max_diff, max_ref);
    CHECK(max_diff <= 1e-5 * (max_ref > 1.0 ? max_ref : 1.0), "SmolLM2: logits within 1e-5 x max(1, max|ref|): %g",
          max_diff);
    lisa_acts_free(&acts);
    fixture_free(&fx);
}

/* Every logit of the same ids, bit for bit. */
static int same_logits(const lisa_model *a, const lisa_model *b) {
    static const int ids[8] = {1, 9690, 198, 2683, 359, 253, 5356, 2};
    lisa_acts x, y;
    lisa_error err;
    int same;
    if (lisa_acts_init(&x, &a->config, 1, 8, 0, NULL, &err) != LISA_OK) return 0;
    if (lisa_acts_init(&y, &b->config, 1, 8, 0, NULL, &err) != LISA_OK) {
        lisa_acts_free(&x);
        return 0;
    }
    lisa_model_forward(a, &x, ids, NULL, 1, 8);
    lisa_model_forward(b, &y, ids, NULL, 1, 8);
    same = memcmp(x.logits, y.logits, (size_t)8 * a->config.vocab_size * sizeof(float)) == 0;
    lisa_acts_free(&x);
    lisa_acts_free(&y);
    return same;
}

/* Both tokenizers give the same ids for a few texts. */
static void same_tokens(const char *orig, const char *saved) {
    static const char *const texts[4] = {"Hello, world! How are you today?", "  indented\n\tcode(x) = 42;",
                                         "<|im_start|>user\nWhat is 2+2?<|im_end|>\n", "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac 1234567"};
    lisa_tokenizer a, b;
    lisa_error err;
    int k;
    if (lisa_tokenizer_load_gguf(&a, orig, NULL, &err) != LISA_OK) {
        CHECK(0, "SmolLM2 save: the original's tokenizer: %s", err.message);
        return;
    }
    if (lisa_tokenizer_load_gguf(&b, saved, NULL, &err) != LISA_OK) {
        CHECK(0, "SmolLM2 save: the saved file's tokenizer: %s", err.message);
        lisa_tokenizer_free(&a);
        return;
    }
    for (k = 0; k < 4; k++) {
        int ia[256], ib[256];
        size_t na = 0, nb = 0;
        lisa_result ra = lisa_tokenizer_encode(&a, texts[k], strlen(texts[k]), 1, 0, ia, 256, &na, &err);
        lisa_result rb = lisa_tokenizer_encode(&b, texts[k], strlen(texts[k]), 1, 0, ib, 256, &nb, &err);
        CHECK(ra == LISA_OK && rb == LISA_OK && na == nb && na > 1 && memcmp(ia, ib, na * sizeof(int)) == 0,
              "SmolLM2 save: text %d encodes to the same %lu ids", k, (unsigned long)na);
    }
    lisa_tokenizer_free(&a);
    lisa_tokenizer_free(&b);
}

/* Saved as F32 with its own metadata: the same logits and tokenizer; as Q8_0:
   the weights lisa's quantizer makes. */
static void smollm2_save(const lisa_model *m, const char *path) {
    char out[256];
    lisa_gguf carry;
    lisa_model back;
    lisa_error err;
    int i, bad = -1;
    if (lisa_gguf_read_metadata(&carry, path, NULL, &err) != LISA_OK) {
        CHECK(0, "SmolLM2 save: metadata: %s", err.message);
        return;
    }
    tmp_path(out, sizeof out, "smollm2.gguf");
    CHECK(lisa_model_save_gguf(m, out, 0, &carry, &err) == LISA_OK, "SmolLM2 save: F32: %s", err.message);
    if (lisa_model_load_gguf(&back, out, NULL, &err) == LISA_OK) {
        CHECK(same_logits(m, &back), "SmolLM2 save: F32 reloaded gives the same logits bit for bit");
        lisa_model_free(&back);
    } else {
        CHECK(0, "SmolLM2 save: F32 reloads: %s", err.message);
    }
    same_tokens(path, out);
    CHECK(lisa_model_save_gguf(m, out, 8, &carry, &err) == LISA_OK, "SmolLM2 save: Q8_0: %s", err.message);
    if (lisa_model_load_gguf(&back, out, NULL, &err) == LISA_OK) {
        for (i = 0; bad < 0 && i < lisa_model_n_tensors(m); i++) {
            lisa_param p = lisa_model_tensor(m, i), q = lisa_model_tensor(&back, i);
            size_t n = lisa_tensor_numel(&p.tensor);
            float *want = (float *)malloc(n * sizeof(float));
            through_type(written_type(8, p.tensor.ndim, p.tensor.ndim == 2 ? p.tensor.shape[1] : 0), p.tensor.data,
                         want, n);
            if (memcmp(want, q.tensor.data, n * sizeof(float)) != 0) bad = i;
            free(want);
        }
        CHECK(bad < 0, "SmolLM2 save: Q8_0 weights are lisa_ggml_quantize + dequantize of the F32 ones (bad %d)", bad);
        lisa_model_free(&back);
    } else {
        CHECK(0, "SmolLM2 save: Q8_0 reloads: %s", err.message);
    }
    unlink(out);
    lisa_gguf_free(&carry);
}

static void smollm2(const char *path) {
    lisa_config c;
    lisa_gguf g;
    lisa_model m;
    lisa_error err;
    lisa_result r = lisa_model_read_config(path, &c, NULL, &err);
    int i, counts[64] = {0};
    CHECK(r == LISA_OK, "SmolLM2: read_config: %s", err.message);
    printf("SmolLM2: dim %d hidden %d layers %d heads %d kv heads %d vocab %d max_seq_len %d eps %g theta %g tied %d\n",
           c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len, (double)c.norm_eps,
           (double)c.rope_theta, c.tied_head);
    if (lisa_gguf_read_metadata(&g, path, NULL, &err) == LISA_OK) {
        for (i = 0; i < g.n_tensors; i++)
            if (g.tensors[i].type < 64) counts[g.tensors[i].type]++;
        printf("SmolLM2: %d tensors:", g.n_tensors);
        for (i = 0; i < 64; i++)
            if (counts[i]) printf(" %d %s", counts[i], lisa_ggml_type_name((uint32_t)i));
        printf("\n");
    }
    lisa_gguf_free(&g);
    /* as gguf-py's GGUFReader reads the file's llama.* keys (and no output.weight: tied) */
    CHECK(c.dim == 576 && c.hidden_dim == 1536 && c.n_layers == 30 && c.n_heads == 9 && c.n_kv_heads == 3 &&
              c.vocab_size == 49152 && c.max_seq_len == 8192 && c.norm_eps == 1e-5f && c.rope_theta == 100000.0f &&
              c.tied_head == 1,
          "SmolLM2: the config gguf-py reads");
    r = lisa_model_load_gguf(&m, path, NULL, &err);
    printf("SmolLM2: lisa_model_load_gguf: %s\n", r == LISA_OK ? "loaded" : err.message);
    if (reads_q4_1_q8_0())
        CHECK(r == LISA_OK, "SmolLM2: loads once lisa_ggml_dequantize reads F32, Q4_1 and Q8_0: %s", err.message);
    else
        CHECK(r == LISA_ERR_FORMAT && has(err.message, path) && has(err.message, "has type") &&
                  has(err.message, "lisa_ggml_dequantize"),
              "SmolLM2: the error names the file, a tensor and its type: %s", err.message);
    if (r == LISA_OK) {
        smollm2_logits(&m);
        smollm2_save(&m, path);
        lisa_model_free(&m);
    }
}

int main(void) {
    static const oracle oracles[2] = {{"tiny_f16", 2, 0}, {"tied_f32", 2, 1}};
    const char *smol = getenv("LISA_SMOLLM2_GGUF");
    int ready = dequantize_ready(), i;
    if (!ready) printf("gguf_model: lisa_ggml_dequantize does not read F32/F16 yet: the data checks are skipped\n");
    for (i = 0; i < 2; i++) test_oracle(&oracles[i], ready);
    test_malformed(ready);
    test_written(ready);
    test_alloc_failure();
    test_write();
    test_from_hf();
    test_from_hf_alloc();
    if (smol && *smol) smollm2(smol);
    return test_report("gguf_model");
}
