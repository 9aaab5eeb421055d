/* Allocation failure. An allocator that fails after N successful allocations,
   for N = 0, 1, 2, ... until everything succeeds:
     - lisa_model_init + lisa_acts_init + lisa_trainer_init + one lisa_trainer_step
     - every loader, from a path and from memory where it has both: llama2.c
       checkpoints (versions 0 and 1), token files, llama2.c tokenizers (and
       encoding with one), JSON, safetensors, Hugging Face directories (one
       file, shards), their config alone, training state files, instruction
       data (with the byte and a llama2.c tokenizer), GGUF metadata,
       GGUF tokenizers (gpt2 and llama, from a file and from parsed metadata,
       and encoding with one), a Hugging Face tokenizer.json (SmolLM2's, with
       its tokenizer_config.json)
     - lisa_kv_cache_init
   Each failure must be LISA_ERR_NOMEM, and after freeing what succeeded no byte
   may stay allocated. The byte counters the objects report must equal what the
   allocator saw. Then LISA switches: many steps, every allocation they make
   refused in turn, once (the step fails, takes no step, and the same step then
   succeeds; the run goes on to the end) and for good (the trainer can still
   be freed); no byte may stay allocated. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct alloc_rec {
    void *ptr;
    size_t size;
} alloc_rec;

typedef struct counter {
    alloc_rec *recs;
    size_t n, cap;
    size_t live;
    long fail_after;       /* successful allocations allowed; < 0: no limit */
    int once;              /* 1: refuse only the first allocation past the limit */
    long n_ok;             /* successful allocations so far */
    long n_refused;
    size_t bad_frees, size_mismatch;
} counter;

static counter g_cnt;
static lisa_allocator g_alloc;

static void *cnt_alloc(void *user, size_t size) {
    counter *c = (counter *)user;
    void *p;
    if (c->fail_after >= 0 && c->n_ok >= c->fail_after && !(c->once && c->n_refused)) {
        c->n_refused++;
        return NULL;
    }
    p = malloc(size ? size : 1);
    if (!p) return NULL;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        alloc_rec *r = (alloc_rec *)realloc(c->recs, cap * sizeof *r);
        if (!r) {
            free(p);
            return NULL;
        }
        c->recs = r;
        c->cap = cap;
    }
    c->recs[c->n].ptr = p;
    c->recs[c->n].size = size;
    c->n++;
    c->live += size;
    c->n_ok++;
    return p;
}

static void cnt_free(void *user, void *ptr, size_t size) {
    counter *c = (counter *)user;
    size_t i;
    if (!ptr) return;
    for (i = c->n; i-- > 0;) {
        if (c->recs[i].ptr == ptr) {
            if (c->recs[i].size != size) c->size_mismatch++;
            c->live -= c->recs[i].size;
            c->recs[i] = c->recs[c->n - 1];
            c->n--;
            free(ptr);
            return;
        }
    }
    c->bad_frees++;
}

static void cnt_reset(long fail_after) {
    free(g_cnt.recs);
    memset(&g_cnt, 0, sizeof g_cnt);
    g_cnt.fail_after = fail_after;
    g_alloc.alloc = cnt_alloc;
    g_alloc.free = cnt_free;
    g_alloc.user = &g_cnt;
}

static int clean(void) {
    return g_cnt.live == 0 && g_cnt.n == 0 && g_cnt.bad_frees == 0 && g_cnt.size_mismatch == 0;
}

#define CHECK_CLEAN(what, N)                                                                  \
    CHECK(clean(), "%s (fail after %ld): clean after freeing (live %zu bytes in %zu blocks, "  \
          "bad frees %zu, size mismatches %zu)",                                              \
          what, (long)(N), g_cnt.live, g_cnt.n, g_cnt.bad_frees, g_cnt.size_mismatch)

#define MAX_N 100000

/* ------------------------------------------------------------------------- */
/* Model + activations + trainer + one step                                   */
/* ------------------------------------------------------------------------- */

static lisa_config small_config(int tied) {
    lisa_config c;
    memset(&c, 0, sizeof c);
    c.dim = 16;
    c.hidden_dim = 40;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 37;
    c.max_seq_len = 16;
    c.tied_head = tied;
    return c;
}

/* A batch of 2 x 8 tokens below vocab. */
static void fill_batch(int *inputs, int *targets, int vocab) {
    int i;
    for (i = 0; i < 16; i++) {
        inputs[i] = (i * 5 + 3) % vocab;
        targets[i] = (i * 7 + 1) % vocab;
    }
}

/* LISA on batches of 2 x 8, switching every 2 steps. */
static lisa_train_config lisa_config_of(int lisa_layers, int keep_state) {
    lisa_train_config tc = lisa_train_config_default();
    tc.batch = 2;
    tc.seq = 8;
    tc.mode = LISA_MODE_LISA;
    tc.lisa_layers = lisa_layers;
    tc.lisa_interval = 2;
    tc.keep_state = keep_state;
    tc.schedule.lr = 1e-3f;
    return tc;
}

/* One attempt with the allocator failing after N successes. Returns 1 when
   every stage succeeded. */
static int train_attempt(long N, int tied, int ckpt, const char *label) {
    lisa_config c = small_config(tied);
    lisa_model m;
    lisa_acts acts;
    lisa_trainer t;
    lisa_train_config tc;
    lisa_error err;
    lisa_result r;
    lisa_step_info info;
    int inputs[2 * 8], targets[2 * 8], done = 0;
    size_t before;

    fill_batch(inputs, targets, c.vocab_size);
    cnt_reset(N);
    memset(&m, 0, sizeof m);
    memset(&acts, 0, sizeof acts);
    memset(&t, 0, sizeof t);
    memset(&err, 0, sizeof err);

    r = lisa_model_init(&m, &c, &g_alloc, &err);
    if (r != LISA_OK) {
        CHECK(r == LISA_ERR_NOMEM && err.code == r, "%s: model_init failing after %ld: %d (%s)",
              label, N, (int)r, err.message);
        CHECK(g_cnt.live == 0, "%s: failed model_init leaves nothing (N %ld, live %zu)", label, N,
              g_cnt.live);
        lisa_model_free(&m); /* a failed init leaves a struct that is safe to free */
        CHECK_CLEAN(label, N);
        return 0;
    }
    CHECK(m.bytes == g_cnt.live, "%s: model.bytes %zu equals the allocator's %zu", label, m.bytes,
          g_cnt.live);
    lisa_model_init_random(&m, 42);

    before = g_cnt.live;
    r = lisa_acts_init(&acts, &m.config, 2, 8, ckpt, &g_alloc, &err);
    if (r != LISA_OK) {
        CHECK(r == LISA_ERR_NOMEM && err.code == r, "%s: acts_init failing after %ld: %d (%s)", label,
              N, (int)r, err.message);
        CHECK(g_cnt.live == before, "%s: failed acts_init leaves nothing (N %ld, %zu extra bytes)",
              label, N, g_cnt.live - before);
        lisa_acts_free(&acts);
        lisa_model_free(&m);
        CHECK_CLEAN(label, N);
        return 0;
    }
    CHECK(acts.bytes == g_cnt.live - before, "%s: acts.bytes %zu equals the allocator's %zu", label,
          acts.bytes, g_cnt.live - before);
    {
        size_t ab = 0, sb = 0;
        lisa_acts_size(&m.config, 2, 8, ckpt, &ab, &sb);
        CHECK(ab == acts.activation_bytes && sb == acts.scratch_bytes,
              "%s: lisa_acts_size (%zu, %zu) agrees with acts (%zu, %zu)", label, ab, sb,
              acts.activation_bytes, acts.scratch_bytes);
        CHECK(acts.activation_bytes + acts.scratch_bytes <= acts.bytes,
              "%s: activation %zu + scratch %zu bytes within acts.bytes %zu", label,
              acts.activation_bytes, acts.scratch_bytes, acts.bytes);
    }
    /* forward and backward with the standalone activations allocate nothing */
    {
        long ok_before = g_cnt.n_ok, refused_before = g_cnt.n_refused;
        float *grads[16];
        float loss;
        memset(grads, 0, sizeof grads); /* every block frozen: no gradient memory */
        loss = lisa_model_forward(&m, &acts, inputs, targets, 2, 8);
        lisa_model_backward(&m, &acts, grads);
        CHECK(loss > 0 && loss < 100, "%s: forward loss %g", label, (double)loss);
        CHECK(g_cnt.n_ok == ok_before && g_cnt.n_refused == refused_before,
              "%s: forward/backward allocate nothing (%ld allocations)", label,
              g_cnt.n_ok - ok_before + g_cnt.n_refused - refused_before);
    }

    before = g_cnt.live;
    tc = lisa_train_config_default();
    tc.batch = 2;
    tc.seq = 8;
    tc.checkpointing = ckpt;
    tc.grad_clip = 1.0f;
    tc.weight_decay = 0.1f;
    tc.schedule.kind = LISA_SCHEDULE_COSINE;
    tc.schedule.lr = 1e-3f;
    tc.schedule.min_lr = 1e-4f;
    tc.schedule.warmup = 2;
    tc.schedule.total_steps = 10;
    r = lisa_trainer_init(&t, &m, &tc, &g_alloc, &err);
    if (r != LISA_OK) {
        CHECK(r == LISA_ERR_NOMEM && err.code == r, "%s: trainer_init failing after %ld: %d (%s)",
              label, N, (int)r, err.message);
        CHECK(g_cnt.live == before, "%s: failed trainer_init leaves nothing (N %ld, %zu extra bytes)",
              label, N, g_cnt.live - before);
        lisa_trainer_free(&t);
        lisa_acts_free(&acts);
        lisa_model_free(&m);
        CHECK_CLEAN(label, N);
        return 0;
    }
    CHECK(t.bytes + t.acts.bytes == g_cnt.live - before,
          "%s: trainer.bytes %zu + its acts.bytes %zu equal the allocator's %zu", label, t.bytes,
          t.acts.bytes, g_cnt.live - before);
    CHECK(lisa_trainer_total_bytes(&t) == g_cnt.live - acts.bytes,
          "%s: lisa_trainer_total_bytes %zu equals the allocator's %zu (less the standalone acts)",
          label, lisa_trainer_total_bytes(&t), g_cnt.live - acts.bytes);

    memset(&info, 0, sizeof info);
    r = lisa_trainer_step(&t, inputs, targets, &info);
    if (r != LISA_OK) {
        CHECK(r == LISA_ERR_NOMEM, "%s: trainer_step failing after %ld: %d", label, N, (int)r);
    } else {
        CHECK(info.step == 1 && info.loss > 0 && info.loss < 100, "%s: step %d loss %g", label,
              info.step, (double)info.loss);
        CHECK(test_close(info.lr, 1e-3 * 1 / 2, 1e-9, 1e-5), "%s: warmup lr at step 0 is %g",
              label, (double)info.lr);
        CHECK(lisa_trainer_total_bytes(&t) == g_cnt.live - acts.bytes,
              "%s: after a step lisa_trainer_total_bytes %zu equals the allocator's %zu", label,
              lisa_trainer_total_bytes(&t), g_cnt.live - acts.bytes);
        CHECK(m.bytes + t.bytes + t.acts.bytes == lisa_trainer_total_bytes(&t),
              "%s: total bytes = model + trainer + acts", label);
        done = 1;
    }
    lisa_trainer_free(&t);
    lisa_acts_free(&acts);
    lisa_model_free(&m);
    CHECK_CLEAN(label, N);
    return done;
}

static void test_training(int tied, int ckpt) {
    char label[64];
    long N;
    int done = 0;
    snprintf(label, sizeof label, "train tied %d ckpt %d", tied, ckpt);
    for (N = 0; N < MAX_N && !done; N++) done = train_attempt(N, tied, ckpt, label);
    CHECK(done, "%s: succeeds with enough allocations", label);
    printf("  %s: succeeded after %ld allocations\n", label, N - 1);
}

/* ------------------------------------------------------------------------- */
/* Every loader: one attempt per N                                            */
/* ------------------------------------------------------------------------- */

/* One call under test, with g_alloc refusing after N allocations: on success
   it checks the object's byte count and frees it; on failure it frees only
   what the call's documentation says to free after a failure. */
typedef lisa_result (*attempt_fn)(const void *ctx, const char *label, lisa_error *err);

/* fn with N = 0, 1, 2, ... allowed allocations until it succeeds: each failure
   LISA_ERR_NOMEM with err.code set, nothing allocated after any attempt. */
static void fail_every_allocation(const char *label, attempt_fn fn, const void *ctx) {
    long N;
    int done = 0;
    for (N = 0; N < MAX_N && !done; N++) {
        lisa_error err;
        lisa_result r;
        cnt_reset(N);
        memset(&err, 0, sizeof err);
        r = fn(ctx, label, &err);
        if (r == LISA_OK) done = 1;
        else
            CHECK(r == LISA_ERR_NOMEM && err.code == r, "%s: failing after %ld: %d (%s)", label, N, (int)r,
                  err.message);
        CHECK_CLEAN(label, N);
    }
    CHECK(done, "%s: succeeds with enough allocations", label);
    printf("  %s: succeeded after %ld allocations\n", label, N - 1);
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;
    *size = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) *size = (size_t)n;
    return b;
}

/* A file's path and, for the memory loaders, its bytes. */
typedef struct file_ctx {
    const char *path;
    const unsigned char *data;
    size_t size;
    const char *path2;              /* a second file: the safetensors of a config.json */
    const unsigned char *data2;
    size_t size2;
} file_ctx;

static lisa_result model_loaded(lisa_model *m, lisa_result r, const char *label) {
    if (r != LISA_OK) return r;
    CHECK(m->bytes == g_cnt.live, "%s: model.bytes %zu equals the allocator's %zu", label, m->bytes, g_cnt.live);
    lisa_model_free(m);
    return r;
}

static lisa_result load_l2c(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_model m;
    return model_loaded(&m, lisa_model_load_llama2c(&m, f->path, &g_alloc, err), label);
}

static lisa_result load_l2c_memory(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_model m;
    return model_loaded(&m, lisa_model_load_llama2c_memory(&m, f->data, f->size, "mem.bin", &g_alloc, err), label);
}

static lisa_result load_v1(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_model m;
    return model_loaded(&m, lisa_model_load_llama2c_v1(&m, f->path, &g_alloc, err), label);
}

static lisa_result load_v1_memory(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_model m;
    return model_loaded(&m, lisa_model_load_llama2c_v1_memory(&m, f->data, f->size, "mem.bin", &g_alloc, err), label);
}

static lisa_result load_hf(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_model m;
    return model_loaded(&m, lisa_model_load(&m, f->path, &g_alloc, err), label);
}

static lisa_result load_hf_memory(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_model m;
    return model_loaded(&m, lisa_model_load_hf_memory(&m, (const char *)f->data, f->size, f->data2, f->size2,
                                                      "mem", &g_alloc, err), label);
}

static lisa_result read_config(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_config c;
    (void)label;
    return lisa_model_read_config(f->path, &c, &g_alloc, err);
}

static lisa_result load_tokens_common(lisa_tokens *d, lisa_result r, const char *label) {
    if (r != LISA_OK) return r;
    CHECK(d->bytes == g_cnt.live, "%s: tokens.bytes %zu equals the allocator's %zu", label, d->bytes, g_cnt.live);
    CHECK(d->n == 1000, "%s: %zu tokens", label, d->n);
    lisa_tokens_free(d);
    return r;
}

static lisa_result load_tokens(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_tokens d;
    return load_tokens_common(&d, lisa_tokens_load(&d, f->path, &g_alloc, err), label);
}

static lisa_result load_tokens_memory(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_tokens d;
    return load_tokens_common(&d, lisa_tokens_load_memory(&d, f->data, f->size, "mem.tok", &g_alloc, err), label);
}

/* A tokenizer loaded, then a text encoded with it (its working memory). */
static lisa_result tokenizer_encodes(lisa_tokenizer *t, lisa_result r, const char *label, lisa_error *err) {
    static const char text[] = "ab ba abab\xc3\xa9 ba";
    int ids[64];
    size_t n = 0;
    if (r != LISA_OK) return r;
    CHECK(t->bytes == g_cnt.live, "%s: tokenizer.bytes %zu equals the allocator's %zu", label, t->bytes, g_cnt.live);
    r = lisa_tokenizer_encode(t, text, sizeof text - 1, 1, 1, ids, 64, &n, err);
    CHECK(r != LISA_OK || n > 3, "%s: %zu ids", label, n);
    lisa_tokenizer_free(t);
    return r;
}

static lisa_result load_tokenizer(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_tokenizer t;
    return tokenizer_encodes(&t, lisa_tokenizer_load_llama2c(&t, f->path, 0, &g_alloc, err), label, err);
}

static lisa_result load_tokenizer_memory(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_tokenizer t;
    return tokenizer_encodes(&t, lisa_tokenizer_load_llama2c_memory(&t, f->data, f->size, 0, "mem", &g_alloc, err),
                             label, err);
}

/* A GGUF tokenizer from a file (the metadata and the tokenizer from g_alloc),
   then used. */
static lisa_result load_gguf_tokenizer(const void *p, const char *label, lisa_error *err) {
    lisa_tokenizer t;
    return tokenizer_encodes(&t, lisa_tokenizer_load_gguf(&t, ((const file_ctx *)p)->path, &g_alloc, err), label, err);
}

/* The same from metadata parsed with the default allocator: only
   lisa_tokenizer_load_gguf_metadata's own allocations are refused. */
static lisa_result load_gguf_tokenizer_memory(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_gguf g;
    lisa_tokenizer t;
    lisa_result r = lisa_gguf_parse_memory(&g, f->data, f->size, "tok.gguf", NULL, err);
    CHECK(r == LISA_OK, "%s: the metadata parses: %s", label, err->message);
    if (r == LISA_OK) r = tokenizer_encodes(&t, lisa_tokenizer_load_gguf_metadata(&t, &g, &g_alloc, err), label, err);
    lisa_gguf_free(&g);
    return r;
}

/* A Hugging Face tokenizer.json (with its tokenizer_config.json) from memory,
   then a text encoded with it (its working memory). The tokenizer is freed
   after a failure too: a failed load must leave it freeable. */
static lisa_result load_tokenizer_json_memory(const void *p, const char *label, lisa_error *err) {
    static const char text[] = "Hello, world! caf\xc3\xa9 12345 <|im_end|>";
    const file_ctx *f = (const file_ctx *)p;
    lisa_tokenizer t;
    int ids[64];
    size_t n = 0;
    lisa_result r = lisa_tokenizer_load_hf_memory(&t, (const char *)f->data, f->size, (const char *)f->data2, f->size2,
                                                  "mem/tokenizer.json", &g_alloc, err);
    if (r != LISA_OK) {
        CHECK(t.buffer == NULL && t.bytes == 0, "%s: a failed load holds nothing", label);
        lisa_tokenizer_free(&t);
        return r;
    }
    CHECK(t.bytes == g_cnt.live, "%s: tokenizer.bytes %zu equals the allocator's %zu", label, t.bytes, g_cnt.live);
    r = lisa_tokenizer_encode(&t, text, sizeof text - 1, 0, 0, ids, 64, &n, err);
    CHECK(r != LISA_OK || n > 5, "%s: %zu ids", label, n);
    lisa_tokenizer_free(&t);
    return r;
}

static lisa_result load_tokenizer_json(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_tokenizer t;
    lisa_result r = lisa_tokenizer_load_hf(&t, f->path, &g_alloc, err);
    (void)label;
    if (r == LISA_OK) CHECK(t.bytes == g_cnt.live, "%s: tokenizer.bytes equals the allocator's", label);
    lisa_tokenizer_free(&t);
    return r;
}

/* lisa_json_free() and lisa_safetensors_free() are called after a failure too. */
static lisa_result parse_json(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_json j;
    lisa_result r = lisa_json_parse(&j, (const char *)f->data, f->size, "doc.json", &g_alloc, err);
    if (r == LISA_OK)
        CHECK(j.bytes == g_cnt.live && j.n_nodes > 10, "%s: json.bytes %zu equals the allocator's %zu", label, j.bytes,
              g_cnt.live);
    lisa_json_free(&j);
    return r;
}

static lisa_result parse_safetensors(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_safetensors st;
    lisa_result r = lisa_safetensors_parse_memory(&st, f->data, f->size, "mem.safetensors", &g_alloc, err);
    if (r == LISA_OK)
        CHECK(st.bytes == g_cnt.live && st.n_tensors > 3, "%s: safetensors.bytes %zu equals the allocator's %zu",
              label, st.bytes, g_cnt.live);
    lisa_safetensors_free(&st);
    return r;
}

/* lisa_gguf_free() is called after a failure too. */
static lisa_result gguf_parsed(lisa_gguf *g, lisa_result r, const char *label) {
    if (r == LISA_OK)
        CHECK(g->bytes == g_cnt.live && g->n_kv > 1, "%s: gguf.bytes %zu equals the allocator's %zu", label, g->bytes,
              g_cnt.live);
    lisa_gguf_free(g);
    return r;
}

static lisa_result read_gguf(const void *p, const char *label, lisa_error *err) {
    lisa_gguf g;
    return gguf_parsed(&g, lisa_gguf_read_metadata(&g, ((const file_ctx *)p)->path, &g_alloc, err), label);
}

static lisa_result parse_gguf(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_gguf g;
    return gguf_parsed(&g, lisa_gguf_parse_memory(&g, f->data, f->size, "mem.gguf", &g_alloc, err), label);
}

static lisa_result state_loaded(lisa_trainer *t, lisa_model *m, lisa_result r, const char *label) {
    if (r != LISA_OK) return r;
    CHECK(lisa_trainer_total_bytes(t) == g_cnt.live, "%s: lisa_trainer_total_bytes %zu equals the allocator's %zu",
          label, lisa_trainer_total_bytes(t), g_cnt.live);
    lisa_trainer_free(t);
    lisa_model_free(m);
    return r;
}

static lisa_result load_state(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_trainer t;
    lisa_model m;
    return state_loaded(&t, &m, lisa_trainer_load_state(&t, &m, f->path, &g_alloc, NULL, err), label);
}

static lisa_result load_state_memory(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_trainer t;
    lisa_model m;
    return state_loaded(&t, &m, lisa_trainer_load_state_memory(&t, &m, f->data, f->size, "mem.lsst", &g_alloc, NULL, err),
                        label);
}

/* Conversations from f's data with the llama2 template and the llama2.c
   tokenizer of f->path2. */
static const char chat_text[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"2+2?\"},"
    " {\"role\": \"assistant\", \"content\": \"4\"}]}\n"
    "{\"type\": \"x\", \"prompt\": \"q\", \"response\": \"a\"}\n";

static lisa_result load_chat(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_tokenizer tok;
    lisa_sft_data d;
    lisa_result r = lisa_tokenizer_load_llama2c(&tok, f->path2, 0, &g_alloc, err);
    if (r != LISA_OK) return r;
    r = lisa_sft_load_chat_memory(&d, chat_text, sizeof chat_text - 1, "chat.jsonl", &tok,
                                  lisa_chat_template_find("llama2"), 64, 0, &g_alloc, err);
    if (r == LISA_OK) {
        CHECK(d.bytes + tok.bytes == g_cnt.live && d.n_examples == 2, "%s: sft.bytes %zu equals the allocator's %zu",
              label, d.bytes, g_cnt.live - tok.bytes);
        lisa_sft_free(&d);
    }
    lisa_tokenizer_free(&tok);
    return r;
}

/* Instruction data from f (path: a file; else data) with the byte tokenizer,
   or (path2 set) with the llama2.c tokenizer of path2, loaded here. */
static lisa_result load_sft(const void *p, const char *label, lisa_error *err) {
    const file_ctx *f = (const file_ctx *)p;
    lisa_tokenizer tok;
    lisa_sft_data d;
    lisa_result r;
    if (f->path2) {
        r = lisa_tokenizer_load_llama2c(&tok, f->path2, 0, &g_alloc, err);
        if (r != LISA_OK) return r;
    } else {
        lisa_tokenizer_init_bytes(&tok);
    }
    r = f->path ? lisa_sft_load(&d, f->path, &tok, 16, 0, &g_alloc, err)
                : lisa_sft_load_memory(&d, (const char *)f->data, f->size, "mem.jsonl", &tok, 16, 1, &g_alloc, err);
    if (r == LISA_OK) {
        CHECK(d.bytes + tok.bytes == g_cnt.live && d.n_examples == 3, "%s: sft.bytes %zu equals the allocator's %zu",
              label, d.bytes, g_cnt.live - tok.bytes);
        lisa_sft_free(&d);
    }
    lisa_tokenizer_free(&tok);
    return r;
}

static lisa_result make_kv_cache(const void *p, const char *label, lisa_error *err) {
    lisa_kv_cache c;
    lisa_result r = lisa_kv_cache_init(&c, (const lisa_config *)p, 0, &g_alloc, err);
    if (r != LISA_OK) return r;
    CHECK(c.bytes == g_cnt.live, "%s: kv_cache.bytes %zu equals the allocator's %zu", label, c.bytes, g_cnt.live);
    lisa_kv_cache_free(&c);
    return r;
}

/* ------------------------------------------------------------------------- */
/* LISA switches with allocations refused                                     */
/* ------------------------------------------------------------------------- */

#define SWITCH_STEPS 16

static float *g_switch_ref; /* the weights after the run in which nothing was refused */

/* A LISA run of SWITCH_STEPS steps (a switch every 2) whose allocations after
   trainer_init are refused from the k-th on (k < 0: none): only that one
   (once), or every one after it. Returns the allocations the steps made. */
static long switch_attempt(long k, int once, int keep_state, const char *label) {
    lisa_config c = small_config(0);
    lisa_model m;
    lisa_trainer t;
    lisa_train_config tc = lisa_config_of(2, keep_state);
    lisa_error err;
    int inputs[16], targets[16], s, failures = 0;
    long base;
    c.n_layers = 4;
    fill_batch(inputs, targets, c.vocab_size);
    cnt_reset(-1);
    if (lisa_model_init(&m, &c, &g_alloc, &err) != LISA_OK || lisa_trainer_init(&t, &m, &tc, &g_alloc, &err) != LISA_OK) {
        CHECK(0, "%s: setup: %s", label, err.message);
        return 0;
    }
    lisa_model_init_random(&m, 5);
    base = g_cnt.n_ok;
    if (k >= 0) g_cnt.fail_after = base + k;
    g_cnt.once = once;
    for (s = 0; s < SWITCH_STEPS; s++) {
        lisa_step_info info;
        lisa_result r = lisa_trainer_step(&t, inputs, targets, &info);
        if (r != LISA_OK) {
            failures++;
            CHECK(r == LISA_ERR_NOMEM, "%s (k %ld): a refused allocation in step %d gives %d", label, k, s, (int)r);
            CHECK(t.step == s, "%s (k %ld): the failed step %d is not taken (step count %d)", label, k, s, t.step);
            CHECK(lisa_trainer_total_bytes(&t) == g_cnt.live,
                  "%s (k %ld): after the failure the trainer counts %zu bytes, the allocator %zu", label, k,
                  lisa_trainer_total_bytes(&t), g_cnt.live);
            if (!once) break;
            r = lisa_trainer_step(&t, inputs, targets, &info);
            CHECK(r == LISA_OK, "%s (k %ld): step %d succeeds once memory is there again: %d", label, k, s, (int)r);
        }
        if (r == LISA_OK)
            CHECK(info.loss > 0 && info.loss < 100 && t.n_active == 2, "%s (k %ld): step %d loss %g, %d layers",
                  label, k, s, (double)info.loss, t.n_active);
    }
    CHECK(failures == (k >= 0), "%s (k %ld): %d failed steps", label, k, failures);
    CHECK(!once || k < 0 || t.step == SWITCH_STEPS, "%s (k %ld): the run went on to step %d", label, k, t.step);
    CHECK(lisa_trainer_total_bytes(&t) == g_cnt.live, "%s (k %ld): the trainer counts %zu bytes, the allocator %zu",
          label, k, lisa_trainer_total_bytes(&t), g_cnt.live);
    /* A run that recovered from a refused allocation equals the one that never failed. */
    if (k < 0) {
        free(g_switch_ref);
        g_switch_ref = (float *)malloc(m.layout.n_params * sizeof(float));
        if (g_switch_ref) memcpy(g_switch_ref, m.params, m.layout.n_params * sizeof(float));
    } else if (once) {
        CHECK(g_switch_ref && memcmp(g_switch_ref, m.params, m.layout.n_params * sizeof(float)) == 0,
              "%s (k %ld): the recovered run's weights equal the unfailed run's bit for bit", label, k);
    }
    k = g_cnt.n_ok - base;
    lisa_trainer_free(&t);
    lisa_model_free(&m);
    CHECK_CLEAN(label, k);
    return k;
}

static void test_switches(int keep_state) {
    char label[64];
    long total, k;
    int once;
    snprintf(label, sizeof label, "LISA switches keep_state %d", keep_state);
    total = switch_attempt(-1, 1, keep_state, label);
    CHECK(total >= 8, "%s: the steps allocate (%ld times)", label, total);
    for (once = 0; once < 2; once++)
        for (k = 0; k < total; k++) switch_attempt(k, once, keep_state, label);
    printf("  %s: each of the %ld allocations of %d steps refused, once and for good\n", label, total, SWITCH_STEPS);
}

/* ------------------------------------------------------------------------- */
/* Files for the loaders                                                      */
/* ------------------------------------------------------------------------- */

static void put_i32(FILE *f, int32_t v) { fwrite(&v, 4, 1, f); }

/* A llama2.c tokenizer.bin: unk, BOS, EOS, the 256 byte pieces, then merges. */
static int write_tokenizer(const char *path) {
    static const char *const merges[] = {" ", "a", "b", "ab", "ba", " a", " b", "abab", " ab", " ba"};
    FILE *f = fopen(path, "wb");
    char piece[8];
    int i;
    if (!f) return 0;
    put_i32(f, 8);
    for (i = 0; i < 3 + 256 + 10; i++) {
        float score = i < 259 ? 0.0f : (float)(i - 259);
        const char *p = i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : piece;
        if (i >= 3 && i < 259) snprintf(piece, sizeof piece, "<0x%02X>", i - 3);
        if (i >= 259) p = merges[i - 259];
        fwrite(&score, 4, 1, f);
        put_i32(f, (int32_t)strlen(p));
        fwrite(p, 1, strlen(p), f);
    }
    return fclose(f) == 0;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

static const char sft_text[] =
    "{\"prompt\": \"ab ab\", \"response\": \"ba\"}\n"
    "\n"
    "{\"prompt\": \"b\", \"response\": \"abab ba \\u00e9\"}\n"
    "{\"response\": \"a\", \"prompt\": \"ba ba ba\"}\n";

static const char json_text[] =
    "{\"a\": [1, 2.5e3, -0.25, \"x\\u00e9\\ud83d\\ude00\", {\"b\": null, \"c\": [true, false, []]}],\n"
    " \"long\": \"abcdefghijklmnopqrstuvwxyz abcdefghijklmnopqrstuvwxyz\", \"d\": {\"e\": {\"f\": [[[0]]]}}}";

/* A LISA state with kept moments, after a switch. */
static int write_state(const char *path) {
    lisa_config c = small_config(0);
    lisa_model m;
    lisa_trainer t;
    lisa_train_config tc = lisa_config_of(1, 1);
    int inputs[16], targets[16], i, ok;
    c.n_layers = 3;
    fill_batch(inputs, targets, c.vocab_size);
    if (lisa_model_init(&m, &c, NULL, NULL) != LISA_OK) return 0;
    lisa_model_init_random(&m, 9);
    ok = lisa_trainer_init(&t, &m, &tc, NULL, NULL) == LISA_OK;
    for (i = 0; ok && i < 3; i++) ok = lisa_trainer_step(&t, inputs, targets, NULL) == LISA_OK;
    ok = ok && lisa_trainer_save_state(&t, path, 3, NULL) == LISA_OK;
    lisa_trainer_free(&t);
    lisa_model_free(&m);
    return ok;
}

/* Runs fail_every_allocation on the loader from a path, then (data read from
   the path) on the memory loader. */
static void test_loader(const char *label, const char *path, attempt_fn from_path, attempt_fn from_memory) {
    file_ctx f;
    char mem_label[128];
    unsigned char *data;
    memset(&f, 0, sizeof f);
    f.path = path;
    if (from_path) fail_every_allocation(label, from_path, &f);
    if (!from_memory) return;
    data = read_all(path, &f.size);
    CHECK(data != NULL, "%s: read %s", label, path);
    if (!data) return;
    f.data = data;
    f.path = NULL;
    snprintf(mem_label, sizeof mem_label, "%s from memory", label);
    fail_every_allocation(mem_label, from_memory, &f);
    free(data);
}

int main(void) {
    char model_path[256], model_path2[256], v1_path[256], tok_path[256], tok_path2[256], tokenizer_path[256];
    char state_path[256], sft_path[256], hf_dir[256], path[320];
    const char *hf_fixture = "tests/fixtures/hf_tiny", *hf_sharded = "tests/fixtures/hf_tiny_tied";
    lisa_config c;
    lisa_model m;
    lisa_error err;
    lisa_result r;
    file_ctx f;
    unsigned char *config_json, *safetensors;
    int ids[1000], i;

    test_training(1, 0);
    test_training(0, 0);
    test_training(1, 1);
    test_training(0, 1);
    test_switches(0);
    test_switches(1);
    free(g_switch_ref);

    snprintf(model_path, sizeof model_path, "/tmp/lisa_test_alloc_%ld_tied.bin", (long)getpid());
    snprintf(model_path2, sizeof model_path2, "/tmp/lisa_test_alloc_%ld_untied.bin", (long)getpid());
    snprintf(v1_path, sizeof v1_path, "/tmp/lisa_test_alloc_%ld_v1.bin", (long)getpid());
    snprintf(tok_path, sizeof tok_path, "/tmp/lisa_test_alloc_%ld_16.tok", (long)getpid());
    snprintf(tok_path2, sizeof tok_path2, "/tmp/lisa_test_alloc_%ld_32.tok", (long)getpid());
    snprintf(tokenizer_path, sizeof tokenizer_path, "/tmp/lisa_test_alloc_%ld_tokenizer.bin", (long)getpid());
    snprintf(state_path, sizeof state_path, "/tmp/lisa_test_alloc_%ld.lsst", (long)getpid());
    snprintf(sft_path, sizeof sft_path, "/tmp/lisa_test_alloc_%ld.jsonl", (long)getpid());
    snprintf(hf_dir, sizeof hf_dir, "/tmp/lisa_test_alloc_%ld_hf", (long)getpid());

    /* files written with the default allocator */
    c = small_config(1);
    memset(&m, 0, sizeof m);
    r = lisa_model_init(&m, &c, NULL, &err);
    CHECK(r == LISA_OK, "init for the file: %s", err.message);
    if (r == LISA_OK) {
        lisa_model_init_random(&m, 3);
        r = lisa_model_save_llama2c(&m, model_path, &err);
        CHECK(r == LISA_OK, "save tied model: %s", err.message);
        r = lisa_model_save_llama2c_v1(&m, v1_path, &err);
        CHECK(r == LISA_OK, "save version 1 model: %s", err.message);
        lisa_model_free(&m);
    }
    c = small_config(0);
    memset(&m, 0, sizeof m);
    r = lisa_model_init(&m, &c, NULL, &err);
    if (r == LISA_OK) {
        lisa_model_init_random(&m, 4);
        r = lisa_model_save_llama2c(&m, model_path2, &err);
        CHECK(r == LISA_OK, "save untied model: %s", err.message);
        mkdir(hf_dir, 0700);
        r = lisa_model_save_hf(&m, hf_dir, LISA_FILE_F16, &err);
        CHECK(r == LISA_OK, "save Hugging Face model: %s", err.message);
        lisa_model_free(&m);
    }
    for (i = 0; i < 1000; i++) ids[i] = (i * 31) % 500;
    r = lisa_tokens_save(ids, 1000, tok_path, &err);
    CHECK(r == LISA_OK, "save uint16 tokens: %s", err.message);
    ids[10] = 100000;
    r = lisa_tokens_save(ids, 1000, tok_path2, &err);
    CHECK(r == LISA_OK, "save uint32 tokens: %s", err.message);
    CHECK(write_tokenizer(tokenizer_path), "write %s", tokenizer_path);
    CHECK(write_state(state_path), "write %s", state_path);
    CHECK(write_text(sft_path, sft_text), "write %s", sft_path);

    test_loader("load tied llama2.c", model_path, load_l2c, load_l2c_memory);
    test_loader("load untied llama2.c", model_path2, load_l2c, load_l2c_memory);
    test_loader("load llama2.c version 1", v1_path, load_v1, load_v1_memory);
    test_loader("load uint16 tokens", tok_path, load_tokens, load_tokens_memory);
    test_loader("load uint32 tokens", tok_path2, load_tokens, load_tokens_memory);
    test_loader("load and use a llama2.c tokenizer", tokenizer_path, load_tokenizer, load_tokenizer_memory);
    test_loader("load state", state_path, load_state, load_state_memory);
    test_loader("load a Hugging Face directory (F16)", hf_dir, load_hf, NULL);
    test_loader("load transformers' directory", hf_fixture, load_hf, NULL);
    test_loader("load transformers' sharded directory", hf_sharded, load_hf, NULL);
    test_loader("read a Hugging Face config", hf_fixture, read_config, NULL);
    test_loader("read a llama2.c config", model_path, read_config, NULL);
    test_loader("read GGUF metadata", "tests/fixtures/gguf/all_types.gguf", read_gguf, parse_gguf);
    test_loader("read GGUF metadata and tensor infos", "tests/fixtures/gguf/tensors.gguf", read_gguf, parse_gguf);
    test_loader("load and use a GGUF tokenizer (gpt2)", "tests/fixtures/tokenizers/gguf/gpt2.gguf", load_gguf_tokenizer,
                load_gguf_tokenizer_memory);
    test_loader("load and use a GGUF tokenizer (llama)", "tests/fixtures/tokenizers/gguf/llama-spm.gguf",
                load_gguf_tokenizer, load_gguf_tokenizer_memory);

    memset(&f, 0, sizeof f);
    snprintf(path, sizeof path, "%s/config.json", hf_fixture);
    config_json = read_all(path, &f.size);
    snprintf(path, sizeof path, "%s/model.safetensors", hf_fixture);
    safetensors = read_all(path, &f.size2);
    CHECK(config_json && safetensors, "read %s", hf_fixture);
    if (config_json && safetensors) {
        f.data = config_json;
        f.data2 = safetensors;
        fail_every_allocation("load Hugging Face config.json and safetensors from memory", load_hf_memory, &f);
        f.data = safetensors;
        f.size = f.size2;
        fail_every_allocation("parse safetensors", parse_safetensors, &f);
    }
    free(config_json);
    free(safetensors);
    /* a real tokenizer.json and tokenizer_config.json (SmolLM2's) */
    memset(&f, 0, sizeof f);
    {
        static const char dir[] = "tests/fixtures/tokenizers/smollm2";
        unsigned char *tj, *tc;
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        tj = read_all(path, &f.size);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        tc = read_all(path, &f.size2);
        CHECK(tj && tc, "read %s", dir);
        if (tj && tc) {
            f.data = tj;
            f.data2 = tc;
            fail_every_allocation("load a tokenizer.json and tokenizer_config.json from memory",
                                  load_tokenizer_json_memory, &f);
            memset(&f, 0, sizeof f);
            f.path = dir;
            fail_every_allocation("load a tokenizer.json directory", load_tokenizer_json, &f);
        }
        free(tj);
        free(tc);
    }

    memset(&f, 0, sizeof f);
    f.data = (const unsigned char *)json_text;
    f.size = sizeof json_text - 1;
    fail_every_allocation("parse JSON", parse_json, &f);

    memset(&f, 0, sizeof f);
    f.path = sft_path;
    fail_every_allocation("load instruction data, byte tokenizer", load_sft, &f);
    f.path2 = tokenizer_path;
    fail_every_allocation("load instruction data, llama2.c tokenizer", load_sft, &f);
    f.path = NULL;
    f.data = (const unsigned char *)sft_text;
    f.size = sizeof sft_text - 1;
    fail_every_allocation("load packed instruction data from memory, llama2.c tokenizer", load_sft, &f);
    fail_every_allocation("load conversations with a chat template, llama2.c tokenizer", load_chat, &f);

    c = small_config(0);
    fail_every_allocation("lisa_kv_cache_init", make_kv_cache, &c);

    unlink(model_path);
    unlink(model_path2);
    unlink(v1_path);
    unlink(tok_path);
    unlink(tok_path2);
    unlink(tokenizer_path);
    unlink(state_path);
    unlink(sft_path);
    snprintf(path, sizeof path, "%s/config.json", hf_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", hf_dir);
    unlink(path);
    rmdir(hf_dir);
    free(g_cnt.recs);
    return test_report("alloc");
}
