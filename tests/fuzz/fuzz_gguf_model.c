/* libFuzzer harness: lisa_model_load_gguf_memory (llama models from GGUF).

   Every input is loaded through a counting allocator. A failure must be a
   clean error (a known code, a message naming the input, nothing left
   allocated, no model). A success must agree with what the metadata API
   (lisa_gguf_parse_memory and the typed getters, a separate reading of the
   same bytes) says: general.architecture "llama"; dim, hidden size, layers,
   heads, kv heads (default: heads), context length and epsilon from their
   llama.* keys, theta from llama.rope.freq_base (default 10000); the
   vocabulary token_embd.weight's second ggml dimension; tied exactly when
   there is no output.weight; every tensor's ggml dims the model tensor's
   shape reversed, and its data within the input; the model's byte count what
   the allocator saw. Then each allocation of a successful load is made to
   fail in turn: LISA_ERR_NOMEM and nothing left. Inputs are also loaded with
   the default allocator, no name and no error struct.

   A model that loads is written back as F32 GGUF with the input's metadata as
   carry (lisa_model_save_gguf, to a temporary file): that succeeds, or is
   LISA_ERR_INVALID for a carried tokenizer.ggml.tokens that is not the
   model's vocabulary; what it wrote loads again to the same config and the
   same weights bit for bit, with every carried general.* and tokenizer.*
   key there, of the same type and value bytes.

   Build and run: tests/fuzz/run.sh. Seeds: tests/fuzz/corpus/gguf_model/
   (tools/make_gguf_model_fixture.py writes them). */
#define _XOPEN_SOURCE 700 /* mkstemp */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */
#include <unistd.h> /* close */

static const char *const layer_names[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                           "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"};

static int64_t key_int(const lisa_gguf *g, const char *key, int64_t def) {
    int64_t v = def;
    int i = lisa_gguf_find(g, key);
    if (i >= 0) FUZZ_CHECK(lisa_gguf_get_int(g, i, &v, NULL) == LISA_OK, "key %s is an integer", key);
    return v;
}

static double key_float(const lisa_gguf *g, const char *key, double def) {
    double v = def;
    int i = lisa_gguf_find(g, key);
    if (i >= 0) FUZZ_CHECK(lisa_gguf_get_float(g, i, &v, NULL) == LISA_OK, "key %s is a float", key);
    return v;
}

/* A tensor by name: there, its dims rows x cols reversed (cols 0: a vector), data within size. */
static void check_tensor(const lisa_gguf *g, const char *name, long rows, long cols, size_t size) {
    int i = lisa_gguf_find_tensor(g, name);
    const lisa_gguf_tensor *t;
    FUZZ_CHECK(i >= 0, "tensor %s is there", name);
    t = &g->tensors[i];
    if (cols) FUZZ_CHECK(t->n_dims == 2 && t->dims[0] == (uint64_t)cols && t->dims[1] == (uint64_t)rows,
                         "tensor %s has dims {%ld, %ld}", name, cols, rows);
    else FUZZ_CHECK(t->n_dims == 1 && t->dims[0] == (uint64_t)rows, "tensor %s has dims {%ld}", name, rows);
    FUZZ_CHECK(t->size > 0 && g->data_offset + t->offset + t->size <= size, "tensor %s lies within the input", name);
}

static void check_model(const lisa_model *m, const uint8_t *data, size_t size) {
    const lisa_config *c = &m->config;
    lisa_gguf g;
    const char *arch;
    size_t len;
    long kv = c->dim / c->n_heads * c->n_kv_heads, n_want, l, w;
    char name[64];
    FUZZ_CHECK(lisa_gguf_parse_memory(&g, data, size, "in", NULL, NULL) == LISA_OK, "the metadata parses");
    FUZZ_CHECK(lisa_gguf_get_string(&g, lisa_gguf_find(&g, "general.architecture"), &arch, &len, NULL) == LISA_OK &&
                   len == 5 && memcmp(arch, "llama", 5) == 0,
               "general.architecture is llama");
    FUZZ_CHECK(key_int(&g, "llama.embedding_length", -1) == c->dim, "dim");
    FUZZ_CHECK(key_int(&g, "llama.feed_forward_length", -1) == c->hidden_dim, "hidden_dim");
    FUZZ_CHECK(key_int(&g, "llama.block_count", -1) == c->n_layers, "n_layers");
    FUZZ_CHECK(key_int(&g, "llama.attention.head_count", -1) == c->n_heads, "n_heads");
    FUZZ_CHECK(key_int(&g, "llama.attention.head_count_kv", c->n_heads) == c->n_kv_heads, "n_kv_heads");
    FUZZ_CHECK(key_int(&g, "llama.context_length", -1) == c->max_seq_len, "max_seq_len");
    FUZZ_CHECK((float)key_float(&g, "llama.attention.layer_norm_rms_epsilon", -1) == c->norm_eps, "norm_eps");
    FUZZ_CHECK((float)key_float(&g, "llama.rope.freq_base", 10000.0) == c->rope_theta, "rope_theta");
    FUZZ_CHECK(c->tied_head == (lisa_gguf_find_tensor(&g, "output.weight") < 0), "tied exactly without output.weight");
    check_tensor(&g, "token_embd.weight", c->vocab_size, c->dim, size);
    check_tensor(&g, "output_norm.weight", c->dim, 0, size);
    if (!c->tied_head) check_tensor(&g, "output.weight", c->vocab_size, c->dim, size);
    for (l = 0; l < c->n_layers; l++)
        for (w = 0; w < 9; w++) {
            static const int rows_of[9] = {0, 0, 1, 1, 0, 0, 2, 0, 2}, cols_of[9] = {-1, 0, 0, 0, 0, -1, 0, 2, 0};
            long v[3];
            v[0] = c->dim, v[1] = kv, v[2] = c->hidden_dim;
            snprintf(name, sizeof name, "blk.%ld.%s.weight", l, layer_names[w]);
            check_tensor(&g, name, v[rows_of[w]], cols_of[w] < 0 ? 0 : v[cols_of[w]], size);
        }
    n_want = 9L * c->n_layers + 2 + !c->tied_head;
    FUZZ_CHECK(g.n_tensors == n_want, "%d tensors, %ld expected", g.n_tensors, n_want);
    lisa_gguf_free(&g);
}

/* The file written models go to, made once per process and removed at exit. */
static char written[64];

static void remove_written(void) { remove(written); }

static const char *written_path(void) {
    if (!written[0]) {
        int fd;
        snprintf(written, sizeof written, "%s", "/tmp/lisa-fuzz-gguf-model.XXXXXX");
        fd = mkstemp(written);
        FUZZ_CHECK(fd >= 0, "cannot make a temporary file");
        close(fd);
        atexit(remove_written);
    }
    return written;
}

/* Whether key i of g was carried into h as it was. */
static int carried(const lisa_gguf *g, int i, const lisa_gguf *h) {
    const lisa_gguf_kv *a = &g->kv[i], *b;
    int j = lisa_gguf_find(h, a->key);
    if (j < 0) return 0;
    b = &h->kv[j];
    return a->type == b->type && a->elem_type == b->elem_type && a->count == b->count && a->value_size == b->value_size &&
           memcmp(g->buffer + a->value, h->buffer + b->value, a->value_size) == 0;
}

/* m (loaded from data) written with data's metadata and read back (see the top). */
static void check_written(const lisa_model *m, const uint8_t *data, size_t size) {
    static const char *const own[] = {"general.architecture", "general.file_type", "general.quantization_version",
                                      "general.alignment"};
    lisa_gguf g, h;
    lisa_model back;
    lisa_error err;
    lisa_result r;
    int i, k;
    FUZZ_CHECK(lisa_gguf_parse_memory(&g, data, size, "fuzz.gguf", NULL, NULL) == LISA_OK, "the metadata parses");
    r = lisa_model_save_gguf(m, written_path(), 0, &g, &err);
    if (r != LISA_OK) {
        FUZZ_CHECK(r == LISA_ERR_INVALID && strstr(err.message, "tokenizer.ggml.tokens"), "writing: %s", err.message);
        lisa_gguf_free(&g);
        return;
    }
    r = lisa_model_load_gguf(&back, written_path(), NULL, &err);
    FUZZ_CHECK(r == LISA_OK, "the written model does not load: %s", err.message);
    FUZZ_CHECK(memcmp(&back.config, &m->config, sizeof m->config) == 0, "the written model's config differs");
    FUZZ_CHECK(back.layout.n_params == m->layout.n_params &&
                   memcmp(back.params, m->params, m->layout.n_params * sizeof(float)) == 0,
               "the written model's weights differ");
    lisa_model_free(&back);
    FUZZ_CHECK(lisa_gguf_read_metadata(&h, written_path(), NULL, &err) == LISA_OK, "written metadata: %s", err.message);
    for (i = 0; i < g.n_kv; i++) {
        int mine = 0;
        if (strncmp(g.kv[i].key, "general.", 8) != 0 && strncmp(g.kv[i].key, "tokenizer.", 10) != 0) continue;
        for (k = 0; k < (int)(sizeof own / sizeof own[0]); k++) mine |= strcmp(g.kv[i].key, own[k]) == 0;
        if (!mine) FUZZ_CHECK(carried(&g, i, &h), "key %s was not carried as it was", g.kv[i].key);
    }
    lisa_gguf_free(&h);
    lisa_gguf_free(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lisa_allocator a = fuzz_allocator();
    lisa_model m;
    lisa_error err;
    lisa_result r;
    long n_ok, k;
    fuzz_alloc_reset(-1);
    r = lisa_model_load_gguf_memory(&m, data, size, "fuzz.gguf", &a, &err);
    if (r != LISA_OK) {
        fuzz_check_failure(r, &err, "fuzz.gguf");
        FUZZ_CHECK(m.params == NULL, "no model after a failure");
        fuzz_check_nothing_live("after a failed load");
    } else {
        FUZZ_CHECK(m.bytes == fuzz_cnt.live_bytes, "the model counts %lu bytes, the allocator %lu",
                   (unsigned long)m.bytes, (unsigned long)fuzz_cnt.live_bytes);
        check_model(&m, data, size);
        check_written(&m, data, size);
        lisa_model_free(&m);
        fuzz_check_nothing_live("after lisa_model_free");
        n_ok = fuzz_cnt.n_ok;
        for (k = 0; k < n_ok; k++) {
            fuzz_alloc_reset(k);
            r = lisa_model_load_gguf_memory(&m, data, size, "fuzz.gguf", &a, &err);
            FUZZ_CHECK(r == LISA_ERR_NOMEM, "allocation %ld refused: result %d (%s)", k, (int)r, err.message);
            fuzz_check_nothing_live("after a refused allocation");
        }
        fuzz_alloc_reset(-1);
    }
    r = lisa_model_load_gguf_memory(&m, data, size, NULL, NULL, NULL);
    if (r == LISA_OK) lisa_model_free(&m);
    return 0;
}
