/* Allocation failure. An allocator that fails after N successful allocations,
   for N = 0, 1, 2, ... until everything succeeds:
     - lisa_model_init + lisa_acts_init + lisa_trainer_init + one lisa_trainer_step
     - loading a llama2.c file (from a path and from memory)
     - loading a token file (from a path and from memory)
   Each failure must be LISA_ERR_NOMEM, and after freeing what succeeded no byte
   may stay allocated. The byte counters the objects report must equal what the
   allocator saw. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    long n_ok;             /* successful allocations so far */
    long n_refused;
    size_t bad_frees, size_mismatch;
} counter;

static counter g_cnt;
static lisa_allocator g_alloc;

static void *cnt_alloc(void *user, size_t size) {
    counter *c = (counter *)user;
    void *p;
    if (c->fail_after >= 0 && c->n_ok >= c->fail_after) {
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
    int inputs[2 * 8], targets[2 * 8], i, done = 0;
    size_t before;

    for (i = 0; i < 16; i++) {
        inputs[i] = (i * 5 + 3) % c.vocab_size;
        targets[i] = (i * 7 + 1) % c.vocab_size;
    }
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
/* Loading files                                                              */
/* ------------------------------------------------------------------------- */

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

static void test_load_model(const char *path, int from_memory, const char *label) {
    long N;
    int done = 0;
    size_t size = 0;
    unsigned char *data = from_memory ? read_all(path, &size) : NULL;
    CHECK(!from_memory || data, "%s: read the file", label);
    for (N = 0; N < MAX_N && !done; N++) {
        lisa_model m;
        lisa_error err;
        lisa_result r;
        cnt_reset(N);
        memset(&m, 0, sizeof m);
        memset(&err, 0, sizeof err);
        r = from_memory ? lisa_model_load_llama2c_memory(&m, data, size, "mem.bin", &g_alloc, &err)
                        : lisa_model_load_llama2c(&m, path, &g_alloc, &err);
        if (r != LISA_OK) {
            CHECK(r == LISA_ERR_NOMEM && err.code == r, "%s: failing after %ld: %d (%s)", label, N,
                  (int)r, err.message);
            CHECK(g_cnt.live == 0, "%s: failed load leaves nothing (N %ld, live %zu)", label, N,
                  g_cnt.live);
        } else {
            CHECK(m.bytes == g_cnt.live, "%s: model.bytes %zu equals the allocator's %zu", label,
                  m.bytes, g_cnt.live);
            done = 1;
        }
        lisa_model_free(&m);
        CHECK_CLEAN(label, N);
    }
    CHECK(done, "%s: succeeds with enough allocations", label);
    printf("  %s: succeeded after %ld allocations\n", label, N - 1);
    free(data);
}

static void test_load_tokens(const char *path, int from_memory, const char *label) {
    long N;
    int done = 0;
    size_t size = 0;
    unsigned char *data = from_memory ? read_all(path, &size) : NULL;
    CHECK(!from_memory || data, "%s: read the file", label);
    for (N = 0; N < MAX_N && !done; N++) {
        lisa_tokens d;
        lisa_error err;
        lisa_result r;
        cnt_reset(N);
        memset(&d, 0, sizeof d);
        memset(&err, 0, sizeof err);
        r = from_memory ? lisa_tokens_load_memory(&d, data, size, "mem.tok", &g_alloc, &err)
                        : lisa_tokens_load(&d, path, &g_alloc, &err);
        if (r != LISA_OK) {
            CHECK(r == LISA_ERR_NOMEM && err.code == r, "%s: failing after %ld: %d (%s)", label, N,
                  (int)r, err.message);
            CHECK(g_cnt.live == 0, "%s: failed load leaves nothing (N %ld, live %zu)", label, N,
                  g_cnt.live);
        } else {
            CHECK(d.bytes == g_cnt.live, "%s: tokens.bytes %zu equals the allocator's %zu", label,
                  d.bytes, g_cnt.live);
            CHECK(d.n == 1000, "%s: %zu tokens", label, d.n);
            done = 1;
        }
        lisa_tokens_free(&d);
        CHECK_CLEAN(label, N);
    }
    CHECK(done, "%s: succeeds with enough allocations", label);
    printf("  %s: succeeded after %ld allocations\n", label, N - 1);
    free(data);
}

int main(void) {
    char model_path[256], model_path2[256], tok_path[256], tok_path2[256];
    lisa_config c;
    lisa_model m;
    lisa_error err;
    lisa_result r;
    int ids[1000], i;

    test_training(1, 0);
    test_training(0, 0);
    test_training(1, 1);
    test_training(0, 1);

    snprintf(model_path, sizeof model_path, "/tmp/lisa_test_alloc_%ld_tied.bin", (long)getpid());
    snprintf(model_path2, sizeof model_path2, "/tmp/lisa_test_alloc_%ld_untied.bin", (long)getpid());
    snprintf(tok_path, sizeof tok_path, "/tmp/lisa_test_alloc_%ld_16.tok", (long)getpid());
    snprintf(tok_path2, sizeof tok_path2, "/tmp/lisa_test_alloc_%ld_32.tok", (long)getpid());

    /* files written with the default allocator */
    c = small_config(1);
    memset(&m, 0, sizeof m);
    r = lisa_model_init(&m, &c, NULL, &err);
    CHECK(r == LISA_OK, "init for the file: %s", err.message);
    if (r == LISA_OK) {
        lisa_model_init_random(&m, 3);
        r = lisa_model_save_llama2c(&m, model_path, &err);
        CHECK(r == LISA_OK, "save tied model: %s", err.message);
        lisa_model_free(&m);
    }
    c = small_config(0);
    memset(&m, 0, sizeof m);
    r = lisa_model_init(&m, &c, NULL, &err);
    if (r == LISA_OK) {
        lisa_model_init_random(&m, 4);
        r = lisa_model_save_llama2c(&m, model_path2, &err);
        CHECK(r == LISA_OK, "save untied model: %s", err.message);
        lisa_model_free(&m);
    }
    for (i = 0; i < 1000; i++) ids[i] = (i * 31) % 500;
    r = lisa_tokens_save(ids, 1000, tok_path, &err);
    CHECK(r == LISA_OK, "save uint16 tokens: %s", err.message);
    ids[10] = 100000;
    r = lisa_tokens_save(ids, 1000, tok_path2, &err);
    CHECK(r == LISA_OK, "save uint32 tokens: %s", err.message);

    test_load_model(model_path, 0, "load tied llama2.c");
    test_load_model(model_path2, 0, "load untied llama2.c");
    test_load_model(model_path, 1, "load tied llama2.c from memory");
    test_load_model(model_path2, 1, "load untied llama2.c from memory");
    test_load_tokens(tok_path, 0, "load uint16 tokens");
    test_load_tokens(tok_path2, 0, "load uint32 tokens");
    test_load_tokens(tok_path, 1, "load uint16 tokens from memory");
    test_load_tokens(tok_path2, 1, "load uint32 tokens from memory");

    unlink(model_path);
    unlink(model_path2);
    unlink(tok_path);
    unlink(tok_path2);
    free(g_cnt.recs);
    return test_report("alloc");
}
