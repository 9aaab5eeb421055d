/* libFuzzer harness: lisa_model_load_llama2c_memory (llama2.c checkpoints, the
   legacy format and version 1, "ak42") and lisa_model_load_llama2c_v1_memory.

   Every input is loaded through a counting allocator. A failure must return a
   real error code (never LISA_ERR_IO: the size is checked before any read, so
   a read from memory cannot fail), with a message that names the input, and
   leave nothing allocated. A success must match the file exactly: the config
   is the header's and resolves unchanged, the size is what the header implies,
   every tensor holds the bytes at its place in llama2.c's tensor-major order
   (worked out here independently of lisa.h), and the model's byte count is what
   the allocator saw and frees to zero. Then every allocation of the load is
   made to fail in turn (each must give LISA_ERR_NOMEM cleanly), and the input
   is loaded again with the default allocator, no name and no error struct.

   Inputs that start with the version-1 magic (uint32 0x616b3432, "ak42") are
   checked against the version-1 layout instead, decoded here from llama2.c's
   export.py (version1_export): a 256-byte header (magic, int32 version 1, 7
   int32 params with a positive vocab_size, uint8 shared-classifier flag, zero
   padding), no RoPE tables, and the tensors in the order attention norms, MLP
   norms, final norm, embedding, wq, wk, wv, wo, w1, w2, w3 (each for every
   layer), then the head unless shared. Every input also goes through
   lisa_model_load_llama2c_v1_memory: without the magic it must fail with
   LISA_ERR_FORMAT; with it, it must give what the generic loader gave.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#define L2C_HEADER 28
#define V1_HEADER 256
#define V1_MAGIC 0x616b3432u

static int is_v1(const uint8_t *data, size_t size) {
    return size >= 4 && (uint32_t)fuzz_le32(data) == V1_MAGIC;
}

/* The file's layout, worked out from the header alone (valid headers only), in
   64 bits whatever size_t is, so that a size_t overflow in lisa.h shows. */
typedef struct l2c_shape {
    int32_t h[7];
    uint64_t D, H, L, V, kv, rope, sizes[9], layer, n_params, file_size, header;
    int tied, v1;
} l2c_shape;

/* Legacy: 7 int32 at 0, vocab_size negative for an own head, RoPE tables
   after the final norm. Version 1: magic, version, 7 int32 at 8, the shared
   flag at byte 36, 256 bytes of header, no RoPE tables. */
static void l2c_shape_of(l2c_shape *s, const uint8_t *data, int v1) {
    int i;
    s->v1 = v1;
    s->header = v1 ? V1_HEADER : L2C_HEADER;
    for (i = 0; i < 7; i++) s->h[i] = fuzz_le32(data + (v1 ? 8 : 0) + 4 * i);
    s->D = (uint64_t)s->h[0];
    s->H = (uint64_t)s->h[1];
    s->L = (uint64_t)s->h[2];
    if (v1) {
        s->tied = data[36] == 1;
        s->V = (uint64_t)(int64_t)s->h[5];
        s->rope = 0;
    } else {
        s->tied = s->h[5] > 0;
        s->V = (uint64_t)(s->h[5] < 0 ? -(int64_t)s->h[5] : (int64_t)s->h[5]);
        s->rope = 2 * (uint64_t)s->h[6] * (s->D / (uint64_t)s->h[3] / 2);
    }
    s->kv = s->D / (uint64_t)s->h[3] * (uint64_t)s->h[4];
    /* attn_norm wq wk wv wo mlp_norm w1 w2 w3 */
    s->sizes[0] = s->D;
    s->sizes[1] = s->D * s->D;
    s->sizes[2] = s->kv * s->D;
    s->sizes[3] = s->kv * s->D;
    s->sizes[4] = s->D * s->D;
    s->sizes[5] = s->D;
    s->sizes[6] = s->H * s->D;
    s->sizes[7] = s->D * s->H;
    s->sizes[8] = s->H * s->D;
    s->layer = 0;
    for (i = 0; i < 9; i++) s->layer += s->sizes[i];
    s->n_params = s->V * s->D + s->L * s->layer + s->D + (s->tied ? 0 : s->V * s->D);
    s->file_size = s->header + (s->n_params + s->rope) * 4;
}

/* Where (in floats after the header) the file holds tensor `kind` (0..8:
   attn_norm wq wk wv wo mlp_norm w1 w2 w3) of layer l. */
static uint64_t l2c_layer_off(const l2c_shape *s, int kind, uint64_t l) {
    /* version 1: the norms first, then the matrices in this order */
    static const int v1_matrix_rank[9] = {-1, 0, 1, 2, 3, -1, 4, 5, 6};
    uint64_t off = 0;
    int k;
    if (!s->v1) {
        off = s->V * s->D;
        for (k = 0; k < kind; k++) off += s->L * s->sizes[k];
        return off + l * s->sizes[kind];
    }
    if (kind == 0) return l * s->D;
    if (kind == 5) return s->L * s->D + l * s->D;
    off = 2 * s->L * s->D + s->D + s->V * s->D; /* norms, final norm, embedding */
    for (k = 0; k < 9; k++)
        if (v1_matrix_rank[k] >= 0 && v1_matrix_rank[k] < v1_matrix_rank[kind]) off += s->L * s->sizes[k];
    return off + l * s->sizes[kind];
}

static uint64_t l2c_embed_off(const l2c_shape *s) {
    return s->v1 ? 2 * s->L * s->D + s->D : 0;
}

static uint64_t l2c_final_norm_off(const l2c_shape *s) {
    return s->v1 ? 2 * s->L * s->D : s->V * s->D + s->L * s->layer;
}

static uint64_t l2c_head_off(const l2c_shape *s) {
    /* legacy: after the final norm and the RoPE tables; v1: after everything */
    return s->v1 ? s->n_params - s->V * s->D : s->V * s->D + s->L * s->layer + s->D + s->rope;
}

static void check_model(const lisa_model *m, const uint8_t *data, size_t size) {
    l2c_shape s;
    lisa_config rc;
    lisa_error e;
    const lisa_config *c = &m->config;
    uint64_t covered = 0, n;
    int t, nt, v1 = is_v1(data, size);

    FUZZ_CHECK(size >= (v1 ? V1_HEADER : L2C_HEADER), "loaded from %lu bytes", (unsigned long)size);
    if (v1) {
        FUZZ_CHECK(fuzz_le32(data + 4) == 1, "accepted version %d", fuzz_le32(data + 4));
        FUZZ_CHECK(data[36] <= 1, "accepted shared-classifier flag %d", data[36]);
        FUZZ_CHECK(fuzz_le32(data + 28) > 0, "accepted vocab_size %d", fuzz_le32(data + 28));
    }
    l2c_shape_of(&s, data, v1);
    FUZZ_CHECK(c->dim == s.h[0] && c->hidden_dim == s.h[1] && c->n_layers == s.h[2] && c->n_heads == s.h[3] &&
                   c->n_kv_heads == s.h[4] && (size_t)c->vocab_size == s.V && c->max_seq_len == s.h[6] &&
                   c->tied_head == s.tied,
               "config differs from the header");
    FUZZ_CHECK(c->norm_eps == 1e-5f && c->rope_theta == 10000.0f, "norm_eps %g rope_theta %g: not the defaults",
               (double)c->norm_eps, (double)c->rope_theta);
    rc = *c;
    FUZZ_CHECK(lisa_config_resolve(&rc, &e) == LISA_OK, "the loaded config does not resolve: %s", e.message);
    FUZZ_CHECK(memcmp(&rc, c, sizeof rc) == 0, "resolving the loaded config changes it");
    FUZZ_CHECK((uint64_t)size == s.file_size, "accepted %lu bytes, the header implies %.0f", (unsigned long)size,
               (double)s.file_size);
    FUZZ_CHECK(m->layout.n_params == s.n_params, "n_params %lu, expected %lu", (unsigned long)m->layout.n_params,
               (unsigned long)s.n_params);
    FUZZ_CHECK(m->bytes == s.n_params * sizeof(float) + s.L * sizeof(lisa_layer_weights),
               "model says %lu bytes", (unsigned long)m->bytes);
    FUZZ_CHECK(m->bytes == fuzz_cnt.live_bytes, "model says %lu bytes, the allocator holds %lu",
               (unsigned long)m->bytes, (unsigned long)fuzz_cnt.live_bytes);
    FUZZ_CHECK(m->embed == m->params, "embed is not at the start");
    FUZZ_CHECK(m->final_norm == m->params + s.V * s.D + s.L * s.layer, "final_norm misplaced");
    FUZZ_CHECK(m->head == (s.tied ? m->embed : m->params + s.n_params - s.V * s.D), "head misplaced");

    nt = lisa_model_n_tensors(m);
    FUZZ_CHECK((size_t)nt == 2 + 9 * s.L + (s.tied ? 0 : 1), "%d tensors", nt);
    for (t = 0; t < nt; t++) {
        lisa_param p = lisa_model_tensor(m, t);
        uint64_t file_off, want;
        n = lisa_tensor_numel(&p.tensor);
        if (t == 0) {
            file_off = l2c_embed_off(&s);
            want = s.V * s.D;
        } else if ((size_t)t <= 9 * s.L) {
            size_t l = (size_t)(t - 1) / 9, k = (size_t)(t - 1) % 9;
            file_off = l2c_layer_off(&s, (int)k, l);
            want = s.sizes[k];
            if (k == 1) FUZZ_CHECK(m->layers[l].wq == p.tensor.data, "layers[%lu].wq misplaced", (unsigned long)l);
            if (k == 8) FUZZ_CHECK(m->layers[l].w3 == p.tensor.data, "layers[%lu].w3 misplaced", (unsigned long)l);
        } else if ((size_t)t == 9 * s.L + 1) {
            file_off = l2c_final_norm_off(&s);
            want = s.D;
        } else {
            file_off = l2c_head_off(&s);
            want = s.V * s.D;
        }
        FUZZ_CHECK(n == want, "tensor %s has %lu floats, expected %lu", p.name, (unsigned long)n,
                   (unsigned long)want);
        FUZZ_CHECK(p.offset == covered, "tensor %s at %lu, expected %lu (blocks must be contiguous)", p.name,
                   (unsigned long)p.offset, (unsigned long)covered);
        FUZZ_CHECK(p.tensor.data == m->params + p.offset, "tensor %s view misplaced", p.name);
        FUZZ_CHECK(s.header + (file_off + n) * 4 <= size, "tensor %s beyond the file", p.name);
        if (fuzz_little_endian())
            FUZZ_CHECK(memcmp(p.tensor.data, data + s.header + file_off * 4, n * 4) == 0,
                       "tensor %s does not hold the file's bytes at float %lu", p.name, (unsigned long)file_off);
        covered += n;
    }
    FUZZ_CHECK(covered == s.n_params, "tensors cover %lu of %lu floats", (unsigned long)covered,
               (unsigned long)s.n_params);
}

typedef lisa_result (*l2c_loader)(lisa_model *, const void *, size_t, const char *, const lisa_allocator *,
                                  lisa_error *);

/* One loader on one input, as described at the top. Returns its result. */
static lisa_result run_loader(l2c_loader load, const char *which, const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.l2c";
    lisa_allocator a = fuzz_allocator();
    lisa_model m;
    lisa_error err;
    lisa_result r, r2;
    long k, n_allocs;

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err); /* no terminator: the loader must write one */
    r = load(&m, data, size, name, &a, &err);
    if (r != LISA_OK) {
        fuzz_check_failure(r, &err, name);
        FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "%s: result %s from memory: \"%s\"", which,
                   lisa_result_string(r), err.message);
        FUZZ_CHECK(m.params == NULL && m.layers == NULL && m.bytes == 0, "%s: failed load left a model behind", which);
        lisa_model_free(&m); /* harmless on a failed load */
        fuzz_check_nothing_live("after freeing a failed load");
    } else {
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "%s: success with error \"%.*s\"", which,
                   (int)sizeof err.message, err.message);
        check_model(&m, data, size);
        n_allocs = fuzz_cnt.n_ok;
        lisa_model_free(&m);
        FUZZ_CHECK(m.bytes == 0, "model says %lu bytes after free", (unsigned long)m.bytes);
        fuzz_check_nothing_live("after lisa_model_free");
        /* Each allocation of the load fails in turn. */
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = load(&m, data, size, name, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "%s: allocation %ld refused: result %s", which, k,
                       lisa_result_string(r2));
            fuzz_check_failure(r2, &err, name);
        }
    }
    /* Default allocator, default name, no error struct: the same outcome. */
    r2 = load(&m, data, size, NULL, NULL, NULL);
    /* (Only the counting allocator refuses big blocks: its NOMEM may be OK here.) */
    FUZZ_CHECK(r2 == r || (r == LISA_ERR_NOMEM && r2 == LISA_OK), "%s: result %s without allocator/error, %s with",
               which, lisa_result_string(r2), lisa_result_string(r));
    if (r2 == LISA_OK) lisa_model_free(&m);
    fuzz_alloc_reset(-1);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lisa_result r, r1;
    /* The generic loader: legacy files, and version 1 by the magic. */
    r = run_loader(lisa_model_load_llama2c_memory, "lisa_model_load_llama2c_memory", data, size);
    /* The version-1 loader: refuses anything without the magic, else agrees. */
    r1 = run_loader(lisa_model_load_llama2c_v1_memory, "lisa_model_load_llama2c_v1_memory", data, size);
    if (is_v1(data, size))
        FUZZ_CHECK(r1 == r, "the v1 loader gives %s, the generic loader %s", lisa_result_string(r1),
                   lisa_result_string(r));
    else
        FUZZ_CHECK(r1 == LISA_ERR_FORMAT, "the v1 loader gives %s for a file without its magic",
                   lisa_result_string(r1));
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: a few small valid models and a few near misses. */

static size_t put32(uint8_t *b, size_t at, int32_t v) {
    uint32_t u = (uint32_t)v;
    b[at] = (uint8_t)u;
    b[at + 1] = (uint8_t)(u >> 8);
    b[at + 2] = (uint8_t)(u >> 16);
    b[at + 3] = (uint8_t)(u >> 24);
    return at + 4;
}

/* Header, then (n_params + rope) floats of small varied values. Returns the size. */
static size_t make_model(uint8_t *buf, size_t cap, int D, int H, int L, int NH, int KV, int V, int S, int tied) {
    l2c_shape s;
    size_t at = 0, i, n;
    at = put32(buf, at, D);
    at = put32(buf, at, H);
    at = put32(buf, at, L);
    at = put32(buf, at, NH);
    at = put32(buf, at, KV);
    at = put32(buf, at, tied ? V : -V);
    at = put32(buf, at, S);
    l2c_shape_of(&s, buf, 0);
    n = (size_t)(s.n_params + s.rope);
    if (s.file_size > cap) {
        fprintf(stderr, "seed too large\n");
        exit(1);
    }
    for (i = 0; i < n; i++) {
        float f = (float)((int)(i * 37 % 101) - 50) / 256.0f;
        memcpy(buf + at, &f, 4); /* the generator runs on little-endian hosts */
        at += 4;
    }
    return at;
}

/* A version-1 file: the 256-byte header, then n_params floats, no two equal
   within a seed (so a tensor read from the wrong place shows). */
static size_t make_model_v1(uint8_t *buf, size_t cap, int D, int H, int L, int NH, int KV, int V, int S, int tied) {
    l2c_shape s;
    size_t at, i, n;
    memset(buf, 0, V1_HEADER);
    put32(buf, 0, (int32_t)V1_MAGIC);
    put32(buf, 4, 1);
    put32(buf, 8, D);
    put32(buf, 12, H);
    put32(buf, 16, L);
    put32(buf, 20, NH);
    put32(buf, 24, KV);
    put32(buf, 28, V);
    put32(buf, 32, S);
    buf[36] = (uint8_t)tied;
    l2c_shape_of(&s, buf, 1);
    n = (size_t)s.n_params;
    if (s.file_size > cap) {
        fprintf(stderr, "seed too large\n");
        exit(1);
    }
    at = V1_HEADER;
    for (i = 0; i < n; i++) {
        float f = (float)((int)i - (int)n / 2) / 512.0f;
        memcpy(buf + at, &f, 4);
        at += 4;
    }
    return at;
}

static int write_checked(const char *dir, const char *file, const uint8_t *data, size_t size, int valid) {
    lisa_model m;
    lisa_result r = lisa_model_load_llama2c_memory(&m, data, size, file, NULL, NULL);
    if ((r == LISA_OK) != valid) {
        fprintf(stderr, "%s: expected %s, got %s\n", file, valid ? "a valid model" : "an error", lisa_result_string(r));
        return 1;
    }
    if (r == LISA_OK) lisa_model_free(&m);
    LLVMFuzzerTestOneInput(data, size);
    return fuzz_write_seed(dir, file, data, size);
}

int main(int argc, char **argv) {
    static uint8_t buf[16384];
    size_t n;
    int bad = 0;
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/llama2c";
    if (!fuzz_little_endian()) {
        fprintf(stderr, "seeds are written on little-endian hosts only\n");
        return 1;
    }
    /* valid: 1-layer dim-8 tied and untied, 2-layer GQA, 1-layer MQA untied */
    n = make_model(buf, sizeof buf, 8, 16, 1, 2, 2, 16, 4, 1);
    bad |= write_checked(dir, "tied_d8_l1.bin", buf, n, 1);
    n = make_model(buf, sizeof buf, 8, 16, 1, 2, 2, 16, 4, 0);
    bad |= write_checked(dir, "untied_d8_l1.bin", buf, n, 1);
    n = make_model(buf, sizeof buf, 8, 12, 2, 4, 2, 10, 3, 1);
    bad |= write_checked(dir, "gqa_tied_d8_l2.bin", buf, n, 1);
    n = make_model(buf, sizeof buf, 4, 8, 1, 2, 1, 5, 2, 0);
    bad |= write_checked(dir, "mqa_untied_d4_l1.bin", buf, n, 1);
    /* near misses */
    n = make_model(buf, sizeof buf, 8, 16, 1, 2, 2, 16, 4, 1);
    bad |= write_checked(dir, "truncated_by_4.bin", buf, n - 4, 0);
    n = make_model(buf, sizeof buf, 8, 16, 1, 2, 2, 16, 4, 0);
    memset(buf + n, 0, 4);
    bad |= write_checked(dir, "trailing_4.bin", buf, n + 4, 0);
    n = make_model(buf, sizeof buf, 8, 16, 1, 2, 2, 16, 4, 1);
    put32(buf, 16, 0);
    bad |= write_checked(dir, "kv_heads_0.bin", buf, n, 0);
    n = make_model(buf, sizeof buf, 6, 8, 1, 2, 2, 4, 2, 1);
    bad |= write_checked(dir, "odd_head_size.bin", buf, n, 0);
    n = make_model(buf, sizeof buf, 4, 8, 1, 2, 1, 5, 2, 0);
    put32(buf, 20, INT32_MIN);
    bad |= write_checked(dir, "vocab_int_min.bin", buf, n, 0);
    bad |= write_checked(dir, "header_only.bin", buf, L2C_HEADER, 0);
    bad |= write_checked(dir, "short_header.bin", buf, 20, 0);

    /* version 1 ("ak42"), valid: tied and untied, 2-layer GQA untied, MQA tied */
    n = make_model_v1(buf, sizeof buf, 8, 16, 1, 2, 2, 16, 4, 1);
    bad |= write_checked(dir, "v1_tied_d8_l1.bin", buf, n, 1);
    n = make_model_v1(buf, sizeof buf, 8, 16, 1, 2, 2, 16, 4, 0);
    bad |= write_checked(dir, "v1_untied_d8_l1.bin", buf, n, 1);
    n = make_model_v1(buf, sizeof buf, 8, 12, 2, 4, 2, 10, 3, 0);
    bad |= write_checked(dir, "v1_gqa_untied_d8_l2.bin", buf, n, 1);
    n = make_model_v1(buf, sizeof buf, 4, 8, 2, 2, 1, 5, 2, 1);
    bad |= write_checked(dir, "v1_mqa_tied_d4_l2.bin", buf, n, 1);
    /* (lisa.h does not look at the padding: export.py writes zeros there) */
    n = make_model_v1(buf, sizeof buf, 4, 8, 1, 2, 1, 5, 2, 0);
    buf[100] = 0x5a;
    bad |= write_checked(dir, "v1_padding_not_zero.bin", buf, n, 1);
    /* version 1, near misses */
    n = make_model_v1(buf, sizeof buf, 8, 16, 1, 2, 2, 16, 4, 1);
    bad |= write_checked(dir, "v1_truncated_by_4.bin", buf, n - 4, 0);
    n = make_model_v1(buf, sizeof buf, 8, 16, 1, 2, 2, 16, 4, 0);
    memset(buf + n, 0, 4);
    bad |= write_checked(dir, "v1_trailing_4.bin", buf, n + 4, 0);
    n = make_model_v1(buf, sizeof buf, 4, 8, 1, 2, 1, 5, 2, 0);
    put32(buf, 4, 2);
    bad |= write_checked(dir, "v1_version_2.bin", buf, n, 0);
    n = make_model_v1(buf, sizeof buf, 4, 8, 1, 2, 1, 5, 2, 0);
    buf[36] = 2;
    bad |= write_checked(dir, "v1_shared_flag_2.bin", buf, n, 0);
    n = make_model_v1(buf, sizeof buf, 4, 8, 1, 2, 1, 5, 2, 0);
    put32(buf, 24, 0);
    bad |= write_checked(dir, "v1_kv_heads_0.bin", buf, n, 0);
    n = make_model_v1(buf, sizeof buf, 4, 8, 1, 2, 1, 5, 2, 0);
    put32(buf, 28, -5); /* the legacy sign convention is not version 1's */
    bad |= write_checked(dir, "v1_vocab_negative.bin", buf, n, 0);
    n = make_model_v1(buf, sizeof buf, 4, 8, 1, 2, 1, 5, 2, 1);
    bad |= write_checked(dir, "v1_header_only.bin", buf, V1_HEADER, 0);
    bad |= write_checked(dir, "v1_short_header.bin", buf, 100, 0);
    bad |= write_checked(dir, "v1_magic_only.bin", buf, 4, 0);
    return bad;
}
#endif
