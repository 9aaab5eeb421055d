/* Data parallelism through lisa_comm, in one process: two threads, each a
   worker with its own model and trainer on half of every batch, sum through a
   barrier-based reduction; one trainer on the whole batch is the reference.
   The two workers' losses match the reference's, their weights match each
   other bitwise, and the bytes they sum are the trained blocks' gradients. */
#define _POSIX_C_SOURCE 200112L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <pthread.h>
#include <string.h>

#define STEPS 10
#define BATCH 4 /* the global batch: two workers of 2 rows */
#define SEQ 16

typedef struct setup {
    const char *name;
    lisa_config c;
    int lisa;
} setup;

/* The fake network: each worker posts its buffer, both add the two buffers in
   rank order (so both get the same floats), then write the sum back. */
typedef struct fake_net {
    pthread_barrier_t barrier;
    float *posted[2];
    size_t posted_n[2];
    int mismatched;  /* a call where the workers' sizes differed */
} fake_net;

typedef struct worker {
    fake_net *net;
    int rank;
    lisa_comm comm;
    const setup *s;
    const int *inputs, *targets;  /* (STEPS, BATCH, SEQ) */
    float losses[STEPS];
    size_t bytes[STEPS];
    int active_layers[STEPS][8], n_active[STEPS];
    float *params;
    size_t n_params;
    int ok;
} worker;

static void fake_sum(float *buf, size_t n, void *user) {
    worker *w = (worker *)user;
    fake_net *net = w->net;
    float *sum = (float *)malloc((n ? n : 1) * sizeof(float));
    size_t i;
    net->posted[w->rank] = buf;
    net->posted_n[w->rank] = n;
    pthread_barrier_wait(&net->barrier);
    if (net->posted_n[0] != net->posted_n[1]) net->mismatched = 1;
    for (i = 0; i < n && !net->mismatched; i++) sum[i] = net->posted[0][i] + net->posted[1][i];
    pthread_barrier_wait(&net->barrier); /* both have read both buffers */
    if (!net->mismatched) memcpy(buf, sum, n * sizeof(float));
    pthread_barrier_wait(&net->barrier); /* nobody posts the next buffer before both wrote */
    free(sum);
}

static lisa_train_config config_of(const setup *s, int batch) {
    lisa_train_config tc = lisa_train_config_default();
    tc.batch = batch;
    tc.seq = SEQ;
    tc.schedule.lr = 3e-3f;
    tc.weight_decay = 0.1f;
    tc.grad_clip = 0.5f; /* clips: the norm must be the global batch's */
    if (s->lisa) {
        tc.mode = LISA_MODE_LISA;
        tc.lisa_layers = 2;
        tc.lisa_interval = 3;
        tc.lisa_seed = 11;
    }
    return tc;
}

/* Trains STEPS steps on rows [row0, row0 + batch) of every step's batch. */
static int train(const setup *s, const lisa_comm *comm, int row0, int batch, const int *inputs,
                 const int *targets, float *losses, size_t *bytes, int (*active)[8], int *n_active,
                 float **params, size_t *n_params) {
    lisa_model m;
    lisa_trainer t;
    lisa_train_config tc = config_of(s, batch);
    int i;
    tc.comm = comm;
    if (lisa_model_init(&m, &s->c, NULL, NULL) != LISA_OK) return 0;
    lisa_model_init_random(&m, 5);
    if (lisa_trainer_init(&t, &m, &tc, NULL, NULL) != LISA_OK) {
        lisa_model_free(&m);
        return 0;
    }
    for (i = 0; i < STEPS; i++) {
        lisa_step_info info;
        size_t at = ((size_t)i * BATCH + (size_t)row0) * SEQ;
        if (lisa_trainer_step(&t, inputs + at, targets + at, &info) != LISA_OK) break;
        losses[i] = info.loss;
        bytes[i] = info.allreduce_bytes;
        n_active[i] = t.n_active;
        memcpy(active[i], t.active_layers, (size_t)t.n_active * sizeof(int));
    }
    *n_params = m.layout.n_params;
    *params = (float *)malloc(*n_params * sizeof(float));
    memcpy(*params, m.params, *n_params * sizeof(float));
    lisa_trainer_free(&t);
    lisa_model_free(&m);
    return i == STEPS;
}

static void *worker_main(void *arg) {
    worker *w = (worker *)arg;
    w->ok = train(w->s, &w->comm, w->rank * (BATCH / 2), BATCH / 2, w->inputs, w->targets, w->losses, w->bytes,
                  w->active_layers, w->n_active, &w->params, &w->n_params);
    return NULL;
}

/* Random tokens; row 0 ignores most of its targets, row 3 none, so the
   workers count different numbers of rows and a per-worker mean would differ
   from the global one. */
static void data_of(const lisa_config *c, int *in, int *tg) {
    lisa_rng rng;
    int i, n = STEPS * BATCH * SEQ;
    lisa_rng_seed(&rng, 21);
    for (i = 0; i < n; i++) {
        int row = (i / SEQ) % BATCH, pos = i % SEQ;
        int ignored = row == 0 ? pos % 4 != 0 : row == 3 ? 0 : pos % 5 == 2;
        in[i] = (int)(lisa_rng_next(&rng) % (uint64_t)c->vocab_size);
        tg[i] = ignored ? LISA_IGNORE : (int)(lisa_rng_next(&rng) % (uint64_t)c->vocab_size);
    }
}

/* Floats of one decoder layer and of the embedding, written out from the
   shapes (not from the library's size functions). */
static size_t layer_floats(const lisa_config *c) {
    size_t d = (size_t)c->dim, kv = d / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    return 2 * d + 2 * d * d + 2 * d * kv + 3 * d * (size_t)c->hidden_dim;
}

static void check_setup(const setup *s) {
    static int in[STEPS * BATCH * SEQ], tg[STEPS * BATCH * SEQ];
    float ref_losses[STEPS];
    size_t ref_bytes[STEPS], ref_n = 0, emb, fixed, full;
    int ref_active[STEPS][8], ref_n_active[STEPS];
    float *ref_params = NULL;
    fake_net net;
    worker w[2];
    pthread_t th[2];
    int i, k, ok;
    double worst = 0.0;
    data_of(&s->c, in, tg);
    ok = train(s, NULL, 0, BATCH, in, tg, ref_losses, ref_bytes, ref_active, ref_n_active, &ref_params, &ref_n);
    CHECK(ok, "%s: the one-worker reference trains %d steps", s->name, STEPS);
    memset(&net, 0, sizeof net);
    pthread_barrier_init(&net.barrier, NULL, 2);
    for (k = 0; k < 2; k++) {
        memset(&w[k], 0, sizeof w[k]);
        w[k].net = &net;
        w[k].rank = k;
        w[k].s = s;
        w[k].inputs = in;
        w[k].targets = tg;
        w[k].comm.rank = k;
        w[k].comm.world_size = 2;
        w[k].comm.sum = fake_sum;
        w[k].comm.user = &w[k];
        pthread_create(&th[k], NULL, worker_main, &w[k]);
    }
    for (k = 0; k < 2; k++) pthread_join(th[k], NULL);
    pthread_barrier_destroy(&net.barrier);
    CHECK(w[0].ok && w[1].ok, "%s: both workers train %d steps", s->name, STEPS);
    CHECK(!net.mismatched, "%s: the workers sum buffers of the same sizes in the same order", s->name);
    for (i = 0; i < STEPS; i++) {
        double rel = fabs((double)w[0].losses[i] - ref_losses[i]) / fabs((double)ref_losses[i]);
        if (rel > worst) worst = rel;
    }
    CHECK(worst <= 1e-5, "%s: two workers' losses are the whole batch's within 1e-5 relative over %d steps (worst %.2e)",
          s->name, STEPS, worst);
    CHECK(memcmp(w[0].losses, w[1].losses, sizeof w[0].losses) == 0, "%s: both workers report the same losses",
          s->name);
    CHECK(w[0].n_params == ref_n && w[1].n_params == ref_n &&
              memcmp(w[0].params, w[1].params, ref_n * sizeof(float)) == 0,
          "%s: the two workers' weights are bitwise equal after %d steps", s->name, STEPS);
    for (i = 0, ok = 1; i < STEPS; i++)
        ok &= w[0].n_active[i] == ref_n_active[i] && w[1].n_active[i] == ref_n_active[i] &&
              memcmp(w[0].active_layers[i], ref_active[i], (size_t)ref_n_active[i] * sizeof(int)) == 0 &&
              memcmp(w[1].active_layers[i], ref_active[i], (size_t)ref_n_active[i] * sizeof(int)) == 0;
    CHECK(ok, "%s: every worker trains the reference's layers at every step", s->name);
    /* The bytes: the trained blocks' gradients (a tied head shares the
       embedding's), plus 3 floats (the count as two, the loss). */
    emb = (size_t)s->c.vocab_size * (size_t)s->c.dim;
    fixed = emb + (size_t)s->c.dim + (s->c.tied_head ? 0 : emb);
    full = (fixed + (size_t)s->c.n_layers * layer_floats(&s->c) + 3) * sizeof(float);
    for (i = 0, ok = 1; i < STEPS; i++) {
        size_t want = s->lisa ? (fixed + 2 * layer_floats(&s->c) + 3) * sizeof(float) : full;
        ok &= w[0].bytes[i] == want && w[1].bytes[i] == want && ref_bytes[i] == 0;
    }
    CHECK(ok, "%s: each step sums %zu bytes per worker (one worker alone: 0); got %zu", s->name,
          s->lisa ? (fixed + 2 * layer_floats(&s->c) + 3) * sizeof(float) : full, w[0].bytes[0]);
    if (s->lisa)
        CHECK(w[0].bytes[0] < full, "%s: LISA sends %zu bytes a step, fewer than full fine-tuning's %zu",
              s->name, w[0].bytes[0], full);
    free(ref_params);
    free(w[0].params);
    free(w[1].params);
}

/* world_size 1 (or no sum): no call, no byte, the same numbers bitwise. */
static int never_called;
static void counting_sum(float *buf, size_t n, void *user) {
    (void)buf;
    (void)n;
    (void)user;
    never_called = 0;
}

static void check_one_worker(const setup *s) {
    static int in[STEPS * BATCH * SEQ], tg[STEPS * BATCH * SEQ];
    float l0[STEPS], l1[STEPS], *p0 = NULL, *p1 = NULL;
    size_t b0[STEPS], b1[STEPS], n0 = 0, n1 = 0;
    int a0[STEPS][8], a1[STEPS][8], na0[STEPS], na1[STEPS], i, zero = 1;
    lisa_comm one;
    memset(&one, 0, sizeof one);
    one.world_size = 1;
    one.sum = counting_sum;
    never_called = 1;
    data_of(&s->c, in, tg);
    train(s, NULL, 0, BATCH, in, tg, l0, b0, a0, na0, &p0, &n0);
    train(s, &one, 0, BATCH, in, tg, l1, b1, a1, na1, &p1, &n1);
    for (i = 0; i < STEPS; i++) zero &= b1[i] == 0;
    CHECK(never_called && zero, "%s: world_size 1 never calls sum and counts no bytes", s->name);
    CHECK(n0 == n1 && memcmp(l0, l1, sizeof l0) == 0 && memcmp(p0, p1, n0 * sizeof(float)) == 0,
          "%s: world_size 1 trains bitwise as without a comm", s->name);
    free(p0);
    free(p1);
}

/* A rank outside 0..world_size-1 is refused by name at init. */
static void check_bad_rank(const setup *s) {
    lisa_model m;
    lisa_trainer t;
    lisa_train_config tc = config_of(s, 2);
    lisa_comm comm;
    lisa_error err;
    memset(&comm, 0, sizeof comm);
    comm.world_size = 2;
    comm.rank = 2;
    comm.sum = counting_sum;
    tc.comm = &comm;
    lisa_model_init(&m, &s->c, NULL, NULL);
    CHECK(lisa_trainer_init(&t, &m, &tc, NULL, &err) == LISA_ERR_INVALID && strstr(err.message, "rank 2 of 2"),
          "rank 2 of 2 workers is refused at init (%s)", err.message);
    lisa_model_free(&m);
}

int main(void) {
    setup s[3];
    int i;
    memset(s, 0, sizeof s);
    for (i = 0; i < 3; i++) {
        lisa_config *c = &s[i].c;
        c->dim = 32; c->hidden_dim = 72; c->n_layers = 4; c->n_heads = 4; c->n_kv_heads = 2;
        c->vocab_size = 61; c->max_seq_len = SEQ;
    }
    s[0].name = "full, untied head";
    s[1].name = "LISA, untied head";
    s[1].lisa = 1;
    s[2].name = "LISA, tied head";
    s[2].lisa = 1;
    s[2].c.tied_head = 1;
    for (i = 0; i < 3; i++) check_setup(&s[i]);
    check_one_worker(&s[1]);
    check_bad_rank(&s[0]);
    return test_report("comm");
}
