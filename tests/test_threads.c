/* The engine sums every value in an order fixed by the sizes alone, so one
   thread and two give bitwise identical gradients and training runs. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct run_result {
    float losses[5];
    float *params;
    float *grads;
} run_result;

static void run(int threads, int checkpointing, run_result *out) {
    lisa_config c;
    lisa_model m;
    lisa_train_config tc = lisa_train_config_default();
    lisa_trainer t;
    lisa_acts a;
    lisa_rng rng;
    int in[3 * 70], tg[3 * 70], i, b, nb;
    float **g;
    size_t off = 0;
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    memset(&c, 0, sizeof c);
    /* Odd sizes so that tiles and blocks have ragged edges; 70 rows x 3
       batches cross the 64-row cache blocks. */
    c.dim = 40; c.hidden_dim = 100; c.n_layers = 3; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 300; c.max_seq_len = 70; c.tied_head = 0;
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 5);
    lisa_rng_seed(&rng, 9);
    for (i = 0; i < 3 * 70; i++) {
        in[i] = (int)(lisa_rng_next(&rng) % 300);
        tg[i] = i % 11 == 0 ? LISA_IGNORE : (int)(lisa_rng_next(&rng) % 300);
    }
    /* gradients of one forward/backward */
    lisa_acts_init(&a, &m.config, 3, 70, checkpointing, NULL, NULL);
    nb = lisa_n_blocks(&m.config);
    g = (float **)calloc((size_t)nb, sizeof *g);
    out->grads = (float *)calloc(m.layout.n_params, sizeof(float));
    for (b = 0; b < nb; b++) {
        g[b] = lisa_block_size(&m.config, b) ? out->grads + off : NULL;
        off += lisa_block_size(&m.config, b);
    }
    lisa_model_forward(&m, &a, in, tg, 3, 70);
    lisa_model_backward(&m, &a, g);
    lisa_acts_free(&a);
    free(g);
    /* five training steps */
    tc.batch = 3;
    tc.seq = 70;
    tc.checkpointing = checkpointing;
    tc.grad_clip = 0.5f;
    tc.weight_decay = 0.1f;
    tc.schedule.lr = 1e-3f;
    lisa_trainer_init(&t, &m, &tc, NULL, NULL);
    for (i = 0; i < 5; i++) {
        lisa_step_info s;
        lisa_trainer_step(&t, in, tg, &s);
        out->losses[i] = s.loss;
    }
    lisa_trainer_free(&t);
    out->params = (float *)malloc(m.layout.n_params * sizeof(float));
    memcpy(out->params, m.params, m.layout.n_params * sizeof(float));
    lisa_model_free(&m);
}

int main(void) {
#ifdef _OPENMP
    size_t n;
    int ck;
    {
        lisa_config c;
        memset(&c, 0, sizeof c);
        c.dim = 40; c.hidden_dim = 100; c.n_layers = 3; c.n_heads = 4; c.n_kv_heads = 2;
        c.vocab_size = 300; c.max_seq_len = 70; c.tied_head = 0;
        lisa_config_resolve(&c, NULL);
        n = lisa_layout_of(&c).n_params;
    }
    for (ck = 0; ck <= 1; ck++) {
        run_result one, two;
        run(1, ck, &one);
        run(2, ck, &two);
        CHECK(memcmp(one.grads, two.grads, n * sizeof(float)) == 0,
              "gradients with 1 and 2 threads differ (checkpointing %d)", ck);
        CHECK(memcmp(one.losses, two.losses, sizeof one.losses) == 0,
              "training losses with 1 and 2 threads differ (checkpointing %d)", ck);
        CHECK(memcmp(one.params, two.params, n * sizeof(float)) == 0,
              "trained weights with 1 and 2 threads differ (checkpointing %d)", ck);
        CHECK(one.losses[4] < one.losses[0], "training lowers the loss (%g -> %g)", one.losses[0], one.losses[4]);
        free(one.grads); free(one.params); free(two.grads); free(two.params);
    }
#else
    printf("threads: built without OpenMP, nothing to compare (not counted as passing)\n");
#endif
    return test_report("threads");
}
