/* The engine sums every value in an order fixed by the sizes alone, so any
   thread count gives bitwise identical gradients and training runs: 1, 2, 3
   and 4 threads (more than the machine may have: oversubscribed is fine), on
   shapes whose sizes are not multiples of the kernels' tiles, full and LISA,
   with and without checkpointing. Every loop runs threaded, however small
   (by default small loops stay on one thread, which would leave them untested). */
#define LISA_PARALLEL_MIN_WORK 1.0
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>

#define STEPS 5
#define MAX_THREADS 4

typedef struct shape {
    const char *name;
    lisa_config c;
    int batch, seq;
} shape;

typedef struct run_result {
    float losses[STEPS];
    float *params;
    float *grads;
} run_result;

/* Odd sizes so that tiles and blocks have ragged edges. The first: 70 rows x
   3 batches cross the 64-row cache blocks. The second: no size a multiple of
   4 but the layer count, head size 10, three query heads per key head, a
   tied head. */
static shape shape_of(int i) {
    shape s;
    memset(&s, 0, sizeof s);
    if (i == 0) {
        s.name = "dim 40, hidden 100, vocab 300, 4/2 heads, 3 x 70 tokens";
        s.c.dim = 40; s.c.hidden_dim = 100; s.c.n_layers = 3; s.c.n_heads = 4; s.c.n_kv_heads = 2;
        s.c.vocab_size = 300; s.c.max_seq_len = 70; s.c.tied_head = 0;
        s.batch = 3;
        s.seq = 70;
    } else {
        s.name = "dim 30, hidden 53, vocab 97, 3/1 heads, tied, 2 x 29 tokens";
        s.c.dim = 30; s.c.hidden_dim = 53; s.c.n_layers = 4; s.c.n_heads = 3; s.c.n_kv_heads = 1;
        s.c.vocab_size = 97; s.c.max_seq_len = 29; s.c.tied_head = 1;
        s.batch = 2;
        s.seq = 29;
    }
    return s;
}

static void batch_of(const shape *s, int *in, int *tg) {
    lisa_rng rng;
    int i, n = s->batch * s->seq;
    lisa_rng_seed(&rng, 9);
    for (i = 0; i < n; i++) {
        in[i] = (int)(lisa_rng_next(&rng) % (uint64_t)s->c.vocab_size);
        tg[i] = i % 11 == 0 ? LISA_IGNORE : (int)(lisa_rng_next(&rng) % (uint64_t)s->c.vocab_size);
    }
}

/* The gradients of one forward/backward into out->grads. */
static void gradients(const lisa_model *m, const shape *s, int checkpointing, const int *in, const int *tg,
                      run_result *out) {
    lisa_acts a;
    int b, nb = lisa_n_blocks(&m->config);
    float **g = (float **)calloc((size_t)nb, sizeof *g);
    size_t off = 0;
    lisa_acts_init(&a, &m->config, s->batch, s->seq, checkpointing, NULL, NULL);
    out->grads = (float *)calloc(m->layout.n_params, sizeof(float));
    for (b = 0; b < nb; b++) {
        g[b] = lisa_block_size(&m->config, b) ? out->grads + off : NULL;
        off += lisa_block_size(&m->config, b);
    }
    lisa_model_forward(m, &a, in, tg, s->batch, s->seq);
    lisa_model_backward(m, &a, g);
    lisa_acts_free(&a);
    free(g);
}

/* STEPS training steps; LISA trains 2 layers, switching every 2 steps. */
static void train(lisa_model *m, const shape *s, int lisa, int checkpointing, const int *in, const int *tg,
                  run_result *out) {
    lisa_train_config tc = lisa_train_config_default();
    lisa_trainer t;
    int i;
    tc.batch = s->batch;
    tc.seq = s->seq;
    tc.checkpointing = checkpointing;
    tc.grad_clip = 0.5f;
    tc.weight_decay = 0.1f;
    tc.schedule.lr = 1e-3f;
    if (lisa) {
        tc.mode = LISA_MODE_LISA;
        tc.lisa_layers = 2;
        tc.lisa_interval = 2;
        tc.lisa_seed = 3;
    }
    lisa_trainer_init(&t, m, &tc, NULL, NULL);
    for (i = 0; i < STEPS; i++) {
        lisa_step_info info;
        lisa_trainer_step(&t, in, tg, &info);
        out->losses[i] = info.loss;
    }
    lisa_trainer_free(&t);
    out->params = (float *)malloc(m->layout.n_params * sizeof(float));
    memcpy(out->params, m->params, m->layout.n_params * sizeof(float));
}

static void run(int threads, const shape *s, int lisa, int checkpointing, run_result *out) {
    lisa_model m;
    int in[3 * 70], tg[3 * 70];
    int team = 0;
    omp_set_num_threads(threads);
#pragma omp parallel
    {
#pragma omp master
        team = omp_get_num_threads();
    }
    CHECK(team == threads, "a parallel loop runs on %d threads (got %d)", threads, team);
    lisa_model_init(&m, &s->c, NULL, NULL);
    lisa_model_init_random(&m, 5);
    batch_of(s, in, tg);
    gradients(&m, s, checkpointing, in, tg, out);
    train(&m, s, lisa, checkpointing, in, tg, out);
    lisa_model_free(&m);
}

/* Every thread count against one thread, for one shape, mode and checkpointing. */
static void compare_threads(const shape *s, int lisa, int ck) {
    run_result r[MAX_THREADS];
    lisa_config c = s->c;
    const char *mode = lisa ? "LISA" : "full";
    size_t n;
    int k;
    lisa_config_resolve(&c, NULL);
    n = lisa_layout_of(&c).n_params;
    for (k = 0; k < MAX_THREADS; k++) run(k + 1, s, lisa, ck, &r[k]);
    for (k = 1; k < MAX_THREADS; k++) {
        CHECK(memcmp(r[0].grads, r[k].grads, n * sizeof(float)) == 0,
              "%s, %s, checkpointing %d: gradients with 1 and %d threads are bitwise equal", s->name, mode, ck, k + 1);
        CHECK(memcmp(r[0].losses, r[k].losses, sizeof r[0].losses) == 0,
              "%s, %s, checkpointing %d: training losses with 1 and %d threads are bitwise equal", s->name, mode, ck,
              k + 1);
        CHECK(memcmp(r[0].params, r[k].params, n * sizeof(float)) == 0,
              "%s, %s, checkpointing %d: trained weights with 1 and %d threads are bitwise equal", s->name, mode, ck,
              k + 1);
    }
    CHECK(r[0].losses[STEPS - 1] < r[0].losses[0], "%s, %s, checkpointing %d: training lowers the loss (%g -> %g)",
          s->name, mode, ck, r[0].losses[0], r[0].losses[STEPS - 1]);
    for (k = 0; k < MAX_THREADS; k++) {
        free(r[k].grads);
        free(r[k].params);
    }
}

#endif /* _OPENMP */

int main(void) {
#ifdef _OPENMP
    int i, lisa, ck;
    for (i = 0; i < 2; i++) {
        shape s = shape_of(i);
        for (lisa = 0; lisa <= 1; lisa++)
            for (ck = 0; ck <= 1; ck++) compare_threads(&s, lisa, ck);
    }
#else
    printf("threads: built without OpenMP, nothing to compare (not counted as passing)\n");
#endif
    return test_report("threads");
}
