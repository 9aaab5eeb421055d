/* libFuzzer harness: lisa_model_load_llama2c_memory (llama2.c checkpoints).

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

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#define L2C_HEADER 28

/* The file's layout, worked out from the header alone (valid headers only), in
   64 bits whatever size_t is, so that a size_t overflow in lisa.h shows. */
typedef struct l2c_shape {
    int32_t h[7];
    uint64_t D, H, L, V, kv, rope, sizes[9], layer, n_params, file_size;
    int tied;
} l2c_shape;

static void l2c_shape_of(l2c_shape *s, const uint8_t *data) {
    int i;
    for (i = 0; i < 7; i++) s->h[i] = fuzz_le32(data + 4 * i);
    s->D = (uint64_t)s->h[0];
    s->H = (uint64_t)s->h[1];
    s->L = (uint64_t)s->h[2];
    s->tied = s->h[5] > 0;
    s->V = (uint64_t)(s->h[5] < 0 ? -(int64_t)s->h[5] : (int64_t)s->h[5]);
    s->kv = s->D / (uint64_t)s->h[3] * (uint64_t)s->h[4];
    s->rope = 2 * (uint64_t)s->h[6] * (s->D / (uint64_t)s->h[3] / 2);
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
    s->file_size = L2C_HEADER + (s->n_params + s->rope) * 4;
}

static void check_model(const lisa_model *m, const uint8_t *data, size_t size) {
    l2c_shape s;
    lisa_config rc;
    lisa_error e;
    const lisa_config *c = &m->config;
    uint64_t covered = 0, k_before[9], i, n;
    int t, nt;

    FUZZ_CHECK(size >= L2C_HEADER, "loaded from %lu bytes", (unsigned long)size);
    l2c_shape_of(&s, data);
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

    /* Where each kind of layer tensor starts in the file, after the embedding. */
    k_before[0] = s.V * s.D;
    for (i = 1; i < 9; i++) k_before[i] = k_before[i - 1] + s.L * s.sizes[i - 1];

    nt = lisa_model_n_tensors(m);
    FUZZ_CHECK((size_t)nt == 2 + 9 * s.L + (s.tied ? 0 : 1), "%d tensors", nt);
    for (t = 0; t < nt; t++) {
        lisa_param p = lisa_model_tensor(m, t);
        uint64_t file_off, want;
        n = lisa_tensor_numel(&p.tensor);
        if (t == 0) {
            file_off = 0;
            want = s.V * s.D;
        } else if ((size_t)t <= 9 * s.L) {
            size_t l = (size_t)(t - 1) / 9, k = (size_t)(t - 1) % 9;
            file_off = k_before[k] + l * s.sizes[k];
            want = s.sizes[k];
            if (k == 1) FUZZ_CHECK(m->layers[l].wq == p.tensor.data, "layers[%lu].wq misplaced", (unsigned long)l);
            if (k == 8) FUZZ_CHECK(m->layers[l].w3 == p.tensor.data, "layers[%lu].w3 misplaced", (unsigned long)l);
        } else if ((size_t)t == 9 * s.L + 1) {
            file_off = s.V * s.D + s.L * s.layer;
            want = s.D;
        } else {
            file_off = s.V * s.D + s.L * s.layer + s.D + s.rope;
            want = s.V * s.D;
        }
        FUZZ_CHECK(n == want, "tensor %s has %lu floats, expected %lu", p.name, (unsigned long)n,
                   (unsigned long)want);
        FUZZ_CHECK(p.offset == covered, "tensor %s at %lu, expected %lu (blocks must be contiguous)", p.name,
                   (unsigned long)p.offset, (unsigned long)covered);
        FUZZ_CHECK(p.tensor.data == m->params + p.offset, "tensor %s view misplaced", p.name);
        FUZZ_CHECK(L2C_HEADER + (file_off + n) * 4 <= size, "tensor %s beyond the file", p.name);
        if (fuzz_little_endian())
            FUZZ_CHECK(memcmp(p.tensor.data, data + L2C_HEADER + file_off * 4, n * 4) == 0,
                       "tensor %s does not hold the file's bytes at float %lu", p.name, (unsigned long)file_off);
        covered += n;
    }
    FUZZ_CHECK(covered == s.n_params, "tensors cover %lu of %lu floats", (unsigned long)covered,
               (unsigned long)s.n_params);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.l2c";
    lisa_allocator a = fuzz_allocator();
    lisa_model m;
    lisa_error err;
    lisa_result r, r2;
    long k, n_allocs;

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err); /* no terminator: the loader must write one */
    r = lisa_model_load_llama2c_memory(&m, data, size, name, &a, &err);
    if (r != LISA_OK) {
        fuzz_check_failure(r, &err, name);
        FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "result %s from memory: \"%s\"",
                   lisa_result_string(r), err.message);
        FUZZ_CHECK(m.params == NULL && m.layers == NULL && m.bytes == 0, "failed load left a model behind");
        lisa_model_free(&m); /* harmless on a failed load */
        fuzz_check_nothing_live("after freeing a failed load");
    } else {
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with error \"%.*s\"",
                   (int)sizeof err.message, err.message);
        check_model(&m, data, size);
        n_allocs = fuzz_cnt.n_ok;
        lisa_model_free(&m);
        FUZZ_CHECK(m.bytes == 0, "model says %lu bytes after free", (unsigned long)m.bytes);
        fuzz_check_nothing_live("after lisa_model_free");
        /* Each allocation of the load fails in turn. */
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = lisa_model_load_llama2c_memory(&m, data, size, name, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s", k, lisa_result_string(r2));
            fuzz_check_failure(r2, &err, name);
        }
    }
    /* Default allocator, default name, no error struct: the same outcome. */
    r2 = lisa_model_load_llama2c_memory(&m, data, size, NULL, NULL, NULL);
    /* (Only the counting allocator refuses big blocks: its NOMEM may be OK here.) */
    FUZZ_CHECK(r2 == r || (r == LISA_ERR_NOMEM && r2 == LISA_OK), "result %s without allocator/error, %s with",
               lisa_result_string(r2), lisa_result_string(r));
    if (r2 == LISA_OK) lisa_model_free(&m);
    fuzz_alloc_reset(-1);
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
    l2c_shape_of(&s, buf);
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
    return bad;
}
#endif
