/* Gradient checkpointing test: recomputing each layer in backward must give
   BITWISE the same results as keeping every layer's activations.

   On random models (lisa_model_init_random, untied and tied heads, GQA) with
   random tokens and some ignored targets:
     - forward loss and logits are bitwise equal with checkpointing off and on;
     - every block's gradient is bitwise equal (memcmp);
     - with only some blocks active (others NULL) the active ones still match;
     - 10 lisa_trainer_step calls give bitwise equal losses, gradient norms and
       final parameters.
   Also the planner: lisa_acts_size() agrees with what lisa_acts_init()
   allocates, and for the llama2.c 15M shape (dim 288, hidden 768, 6 layers,
   6 heads, vocab 32000, B 4, T 256) the activation bytes of both modes are
   printed and the checkpointed ones must be smaller. And the layout: on odd
   batch shapes, what lisa_acts_init() allocates is exactly what
   lisa_acts_size() counts, and every buffer lies inside it without overlap. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "regions.h"
#include "test.h"

#include <string.h>

#define N_STEPS 10

typedef struct ck_case {
    const char *name;
    lisa_config config;
    int B, T;
    uint64_t seed;
} ck_case;

static void random_batch(lisa_rng *r, int *inputs, int *targets, int n, int vocab) {
    int i;
    for (i = 0; i < n; i++) {
        inputs[i] = (int)(lisa_rng_next(r) % (uint64_t)vocab);
        targets[i] = (int)(lisa_rng_next(r) % (uint64_t)vocab);
        if (lisa_rng_next(r) % 7 == 0) targets[i] = LISA_IGNORE;
    }
}

static float **alloc_grads(const lisa_config *c, const int *active) {
    int nb = lisa_n_blocks(c), b;
    float **g = (float **)calloc((size_t)nb, sizeof(float *));
    for (b = 0; b < nb; b++) {
        size_t n = lisa_block_size(c, b);
        if (n > 0 && (!active || active[b])) g[b] = (float *)calloc(n, sizeof(float));
    }
    return g;
}

static void free_grads(const lisa_config *c, float **g) {
    int b, nb = lisa_n_blocks(c);
    for (b = 0; b < nb; b++) free(g[b]);
    free(g);
}

static void check_planner(const ck_case *k, const lisa_acts *a, int ckpt) {
    size_t act = 0, scratch = 0;
    lisa_acts_size(&a->config, k->B, k->T, ckpt, &act, &scratch);
    CHECK(a->activation_bytes == act,
          "%s: acts (ckpt %d) activation_bytes %lu equals lisa_acts_size's %lu", k->name, ckpt,
          (unsigned long)a->activation_bytes, (unsigned long)act);
    CHECK(a->scratch_bytes == scratch,
          "%s: acts (ckpt %d) scratch_bytes %lu equals lisa_acts_size's %lu", k->name, ckpt,
          (unsigned long)a->scratch_bytes, (unsigned long)scratch);
    CHECK(a->bytes == a->activation_bytes + a->scratch_bytes,
          "%s: acts (ckpt %d) bytes %lu = activation %lu + scratch %lu", k->name, ckpt,
          (unsigned long)a->bytes, (unsigned long)a->activation_bytes,
          (unsigned long)a->scratch_bytes);
}

static void check_gradients(const ck_case *k) {
    lisa_model m;
    lisa_acts a0, a1;
    lisa_error err;
    int n = k->B * k->T, nb, b, round;
    int *inputs = (int *)malloc(sizeof(int) * (size_t)n);
    int *targets = (int *)malloc(sizeof(int) * (size_t)n);
    lisa_rng r;
    lisa_result res;

    res = lisa_model_init(&m, &k->config, NULL, &err);
    CHECK(res == LISA_OK, "%s: lisa_model_init succeeds", k->name);
    if (res != LISA_OK) {
        free(inputs);
        free(targets);
        return;
    }
    lisa_model_init_random(&m, k->seed);
    lisa_rng_seed(&r, k->seed + 17);
    random_batch(&r, inputs, targets, n, m.config.vocab_size);
    nb = lisa_n_blocks(&m.config);

    res = lisa_acts_init(&a0, &m.config, k->B, k->T, 0, NULL, &err);
    CHECK(res == LISA_OK, "%s: lisa_acts_init(ckpt 0) succeeds", k->name);
    if (res != LISA_OK) goto out_model;
    res = lisa_acts_init(&a1, &m.config, k->B, k->T, 1, NULL, &err);
    CHECK(res == LISA_OK, "%s: lisa_acts_init(ckpt 1) succeeds", k->name);
    if (res != LISA_OK) {
        lisa_acts_free(&a0);
        goto out_model;
    }
    check_planner(k, &a0, 0);
    check_planner(k, &a1, 1);
    if (m.config.n_layers >= 2)
        CHECK(a1.activation_bytes < a0.activation_bytes,
              "%s: checkpointing keeps fewer activation bytes (%lu vs %lu)", k->name,
              (unsigned long)a1.activation_bytes, (unsigned long)a0.activation_bytes);

    /* round 0: all blocks; round 1: the embedding, one layer and the head
       (or the final norm when tied) only */
    for (round = 0; round < 2; round++) {
        int *active = (int *)calloc((size_t)nb, sizeof(int));
        float **g0, **g1;
        float l0, l1;
        size_t nl = (size_t)n * (size_t)m.config.vocab_size;
        int last = m.config.tied_head ? lisa_block_final_norm(&m.config)
                                      : lisa_block_head(&m.config);
        for (b = 0; b < nb; b++)
            active[b] = round == 0 || b == LISA_BLOCK_EMBED ||
                        b == LISA_BLOCK_LAYER(m.config.n_layers - 1) || b == last;
        g0 = alloc_grads(&m.config, active);
        g1 = alloc_grads(&m.config, active);
        l0 = lisa_model_forward(&m, &a0, inputs, targets, k->B, k->T);
        l1 = lisa_model_forward(&m, &a1, inputs, targets, k->B, k->T);
        CHECK(memcmp(&l0, &l1, sizeof(float)) == 0,
              "%s: loss bitwise equal with and without checkpointing (%.9g vs %.9g)", k->name, l0,
              l1);
        CHECK(test_close(l0, log((double)m.config.vocab_size), 0.5, 0),
              "%s: loss of a small random init %.4f is near log(vocab) %.4f (+-0.5)", k->name, l0,
              log((double)m.config.vocab_size));
        CHECK(memcmp(a0.logits, a1.logits, nl * sizeof(float)) == 0,
              "%s: logits bitwise equal with and without checkpointing", k->name);
        lisa_model_backward(&m, &a0, g0);
        lisa_model_backward(&m, &a1, g1);
        for (b = 0; b < nb; b++) {
            size_t sz = lisa_block_size(&m.config, b);
            int ok;
            if (!g0[b]) continue;
            ok = memcmp(g0[b], g1[b], sz * sizeof(float)) == 0;
            CHECK(ok,
                  "%s: %s: block %d gradient bitwise equal with and without checkpointing",
                  k->name, round == 0 ? "all blocks" : "some blocks frozen", b);
            if (round == 0) {
                size_t i;
                int nonzero = 0;
                for (i = 0; i < sz; i++) nonzero |= g0[b][i] != 0;
                CHECK(nonzero, "%s: block %d gradient is not all zero", k->name, b);
            }
        }
        free_grads(&m.config, g0);
        free_grads(&m.config, g1);
        free(active);
    }
    lisa_acts_free(&a0);
    lisa_acts_free(&a1);
out_model:
    lisa_model_free(&m);
    free(inputs);
    free(targets);
}

static void check_training(const ck_case *k) {
    lisa_model m[2];
    lisa_trainer t[2];
    lisa_train_config tc = lisa_train_config_default();
    lisa_error err;
    int n = k->B * k->T, s, i, ok = 1;
    int *inputs = (int *)malloc(sizeof(int) * (size_t)n);
    int *targets = (int *)malloc(sizeof(int) * (size_t)n);
    lisa_rng r;
    tc.batch = k->B;
    tc.seq = k->T;
    tc.schedule.kind = LISA_SCHEDULE_COSINE;
    tc.schedule.lr = 1e-2f;
    tc.schedule.min_lr = 1e-3f;
    tc.schedule.warmup = 2;
    tc.schedule.total_steps = N_STEPS;
    tc.weight_decay = 0.1f;
    tc.grad_clip = 1.0f;
    for (i = 0; i < 2; i++) {
        lisa_result res = lisa_model_init(&m[i], &k->config, NULL, &err);
        CHECK(res == LISA_OK, "%s: lisa_model_init succeeds", k->name);
        if (res != LISA_OK) {
            if (i == 1) lisa_model_free(&m[0]);
            free(inputs);
            free(targets);
            return;
        }
        lisa_model_init_random(&m[i], k->seed);
    }
    CHECK(memcmp(m[0].params, m[1].params, m[0].layout.n_params * sizeof(float)) == 0,
          "%s: lisa_model_init_random: same seed, same weights", k->name);
    for (i = 0; i < 2; i++) {
        lisa_result res;
        tc.checkpointing = i;
        res = lisa_trainer_init(&t[i], &m[i], &tc, NULL, &err);
        CHECK(res == LISA_OK, "%s: lisa_trainer_init(ckpt %d) succeeds", k->name, i);
        if (res != LISA_OK) {
            if (i == 1) lisa_trainer_free(&t[0]);
            lisa_model_free(&m[0]);
            lisa_model_free(&m[1]);
            free(inputs);
            free(targets);
            return;
        }
    }
    lisa_rng_seed(&r, k->seed + 99);
    for (s = 0; s < N_STEPS; s++) {
        lisa_step_info info[2];
        random_batch(&r, inputs, targets, n, k->config.vocab_size);
        for (i = 0; i < 2; i++) {
            lisa_result res = lisa_trainer_step(&t[i], inputs, targets, &info[i]);
            CHECK(res == LISA_OK, "%s: lisa_trainer_step (ckpt %d) step %d succeeds", k->name, i,
                  s + 1);
        }
        CHECK(memcmp(&info[0].loss, &info[1].loss, sizeof(float)) == 0,
              "%s: step %d loss bitwise equal with and without checkpointing (%.9g vs %.9g)",
              k->name, s + 1, info[0].loss, info[1].loss);
        CHECK(memcmp(&info[0].grad_norm, &info[1].grad_norm, sizeof(float)) == 0,
              "%s: step %d grad norm bitwise equal with and without checkpointing (%.9g vs %.9g)",
              k->name, s + 1, info[0].grad_norm, info[1].grad_norm);
        if (s == 0) printf("  %s: step 1 loss %.6f grad norm %.6f\n", k->name, info[0].loss,
                           info[0].grad_norm);
        if (s == N_STEPS - 1)
            printf("  %s: step %d loss %.6f grad norm %.6f\n", k->name, s + 1, info[0].loss,
                   info[0].grad_norm);
    }
    ok = memcmp(m[0].params, m[1].params, m[0].layout.n_params * sizeof(float)) == 0;
    CHECK(ok, "%s: parameters after %d steps bitwise equal with and without checkpointing",
          k->name, N_STEPS);
    for (i = 0; i < 2; i++) {
        lisa_trainer_free(&t[i]);
        lisa_model_free(&m[i]);
    }
    free(inputs);
    free(targets);
}

static void report_15m(void) {
    lisa_config c;
    lisa_error err;
    size_t act[2], scratch[2];
    int ckpt;
    lisa_result res;
    memset(&c, 0, sizeof c);
    c.dim = 288;
    c.hidden_dim = 768;
    c.n_layers = 6;
    c.n_heads = 6;
    c.n_kv_heads = 6;
    c.vocab_size = 32000;
    c.max_seq_len = 256;
    c.tied_head = 1;
    res = lisa_config_resolve(&c, &err);
    CHECK(res == LISA_OK, "15M config resolves");
    if (res != LISA_OK) return;
    for (ckpt = 0; ckpt <= 1; ckpt++) {
        lisa_acts_size(&c, 4, 256, ckpt, &act[ckpt], &scratch[ckpt]);
        printf("  llama2.c 15M, B 4, T 256, checkpointing %d: activations %lu bytes (%.1f MiB), "
               "scratch %lu bytes (%.1f MiB), total %.1f MiB\n",
               ckpt, (unsigned long)act[ckpt], act[ckpt] / 1048576.0,
               (unsigned long)scratch[ckpt], scratch[ckpt] / 1048576.0,
               (act[ckpt] + scratch[ckpt]) / 1048576.0);
    }
    CHECK(act[1] < act[0], "15M: checkpointed activation bytes %lu < %lu without",
          (unsigned long)act[1], (unsigned long)act[0]);
    CHECK(act[1] + scratch[1] < act[0] + scratch[0],
          "15M: checkpointed activations + scratch %lu < %lu without",
          (unsigned long)(act[1] + scratch[1]), (unsigned long)(act[0] + scratch[0]));
}

/* One layer's saved set, with the shapes the forward pass gives them. */
static int layer_set_regions(rg_region *g, const lisa__layer_acts *s, const lisa_config *c, size_t B,
                             size_t T) {
    static const char *const names[13] = {"rstd1", "xn1", "q", "k", "v", "lse", "att",
                                          "x_mid", "rstd2", "xn2", "h1", "h3", "hg"};
    size_t BT = B * T, D = (size_t)c->dim, H = (size_t)c->hidden_dim, f = sizeof(float);
    size_t kv = D / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    const void *p[13];
    size_t n[13];
    p[0] = s->rstd1; n[0] = BT * f;
    p[1] = s->xn1; n[1] = BT * D * f;
    p[2] = s->q; n[2] = BT * D * f;
    p[3] = s->k; n[3] = BT * kv * f;
    p[4] = s->v; n[4] = BT * kv * f;
    p[5] = s->lse; n[5] = B * (size_t)c->n_heads * T * f;
    p[6] = s->att; n[6] = BT * D * f;
    p[7] = s->x_mid; n[7] = BT * D * f;
    p[8] = s->rstd2; n[8] = BT * f;
    p[9] = s->xn2; n[9] = BT * D * f;
    p[10] = s->h1; n[10] = BT * H * f;
    p[11] = s->h3; n[11] = BT * H * f;
    p[12] = s->hg; n[12] = BT * H * f;
    return rg_regions(g, names, p, n, 13);
}

/* Backward's scratch laid out for `rows` rows, inside the scratch counted for
   the largest batch: the attention gradients never overlap each other, nor the
   MLP gradients each other (the two groups share one region by design). */
static void check_grad_scratch(const char *label, const lisa_acts *a, size_t rows, size_t scratch_bytes) {
    static const char *const attn_names[6] = {"dres", "dxn", "datt", "dq", "dk", "dv"};
    static const char *const mlp_names[5] = {"dres", "dxn", "dh1", "dh3", "dhg"};
    const lisa_config *c = &a->config;
    size_t D = (size_t)c->dim, H = (size_t)c->hidden_dim, f = sizeof(float);
    size_t kv = D / (size_t)c->n_heads * (size_t)c->n_kv_heads, BT = (size_t)a->B * a->T;
    size_t attn = rows * (2 * D + 2 * kv), mlp = 3 * rows * H;
    lisa__grad_scratch s = lisa__grad_scratch_for(a, rows);
    const void *attn_p[6], *mlp_p[5];
    size_t attn_n[6], mlp_n[5];
    rg_block block;
    rg_region g[6];
    char lab[160];
    block.p = (const char *)a->grad_scratch;
    block.size = scratch_bytes;
    attn_p[0] = mlp_p[0] = s.dres; attn_n[0] = mlp_n[0] = rows * D * f;
    attn_p[1] = mlp_p[1] = s.dxn; attn_n[1] = mlp_n[1] = rows * D * f;
    attn_p[2] = s.datt; attn_n[2] = rows * D * f;
    attn_p[3] = s.dq; attn_n[3] = rows * D * f;
    attn_p[4] = s.dk; attn_n[4] = rows * kv * f;
    attn_p[5] = s.dv; attn_n[5] = rows * kv * f;
    mlp_p[2] = s.dh1; mlp_n[2] = rows * H * f;
    mlp_p[3] = s.dh3; mlp_n[3] = rows * H * f;
    mlp_p[4] = s.dhg; mlp_n[4] = rows * H * f;
    snprintf(lab, sizeof lab, "%s, scratch for %lu rows, attention", label, (unsigned long)rows);
    rg_check(lab, &block, 1, g, rg_regions(g, attn_names, attn_p, attn_n, 6), rows == BT && attn >= mlp);
    snprintf(lab, sizeof lab, "%s, scratch for %lu rows, MLP", label, (unsigned long)rows);
    rg_check(lab, &block, 1, g, rg_regions(g, mlp_names, mlp_p, mlp_n, 5), rows == BT && mlp >= attn);
}

/* lisa_acts_init() allocates exactly what lisa_acts_size() counts; each buffer
   the header documents, with its documented shape, lies inside the allocations
   without overlapping another, and together they leave no byte over. Inside,
   each layer's saved set and the backward scratch are checked the same way,
   through the private layout that forward and backward use. */
static void check_acts_layout(const char *name, const lisa_config *config, int B, int T, int ckpt) {
    rg_alloc r;
    lisa_allocator al = rg_allocator(&r);
    lisa_acts a;
    const lisa_config *c;
    char label[128];
    size_t act = 0, scratch = 0, BT = (size_t)B * T, D, H, V, kv, L, sets, set_floats, scratch_floats;
    size_t f = sizeof(float), i;
    snprintf(label, sizeof label, "%s, B %d T %d checkpointing %d", name, B, T, ckpt);
    CHECK(lisa_acts_init(&a, config, B, T, ckpt, &al, NULL) == LISA_OK, "%s: acts allocate", label);
    if (!a.buffer) return;
    c = &a.config;
    D = (size_t)c->dim;
    H = (size_t)c->hidden_dim;
    V = (size_t)c->vocab_size;
    L = (size_t)c->n_layers;
    kv = D / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    sets = ckpt ? 1 : L;
    /* rstd1 rstd2; xn1 q att x_mid xn2; k v; lse; h1 h3 hg */
    set_floats = 2 * BT + 5 * BT * D + 2 * BT * kv + (size_t)B * c->n_heads * T + 3 * BT * H;
    scratch_floats = 2 * BT * D + LISA__MAX(BT * (2 * D + 2 * kv), 3 * BT * H);
    lisa_acts_size(c, B, T, ckpt, &act, &scratch);
    CHECK(r.live == act + scratch && a.bytes == r.live,
          "%s: allocated %lu bytes = lisa_acts_size's %lu + %lu = acts.bytes %lu", label,
          (unsigned long)r.live, (unsigned long)act, (unsigned long)scratch, (unsigned long)a.bytes);
    CHECK(a.saved_stride == set_floats && scratch == scratch_floats * f,
          "%s: a layer set holds %lu floats (%lu documented), the scratch %lu bytes (%lu)", label,
          (unsigned long)a.saved_stride, (unsigned long)set_floats, (unsigned long)scratch,
          (unsigned long)(scratch_floats * f));
    {
        rg_region g[11];
        const void *p[11];
        size_t n[11];
        const char *names[11] = {"inputs", "targets", "layer_in", "saved", "final_rstd", "final_xn",
                                 "logits", "row_loss", "row_lse", "rope",
                                 "grad_scratch"};
        p[0] = a.inputs; n[0] = BT * sizeof(int);
        p[1] = a.targets; n[1] = BT * sizeof(int);
        p[2] = a.layer_in; n[2] = (L + 1) * BT * D * f;
        p[3] = a.saved; n[3] = sets * set_floats * f;
        p[4] = a.final_rstd; n[4] = BT * f;
        p[5] = a.final_xn; n[5] = BT * D * f;
        p[6] = a.logits; n[6] = BT * V * f;
        p[7] = a.row_loss; n[7] = BT * f;
        p[8] = a.row_lse; n[8] = BT * f;
        p[9] = a.rope; n[9] = (size_t)T * (D / (size_t)c->n_heads) * f; /* (T, head_dim) */
        p[10] = a.grad_scratch; n[10] = scratch_floats * f;
        rg_check(label, r.blocks, r.n, g, rg_regions(g, names, p, n, 11), 1);
    }
    { /* the layer sets tile `saved`; with checkpointing every layer uses the one set */
        rg_region *g = (rg_region *)malloc(13 * L * sizeof *g);
        rg_block block;
        lisa__layer_acts s0 = lisa__layer_set(&a, 0), last = lisa__layer_set(&a, (int)L - 1);
        int k = 0;
        block.p = (const char *)a.saved;
        block.size = sets * set_floats * f;
        for (i = 0; i < sets; i++) {
            lisa__layer_acts s = lisa__layer_set(&a, (int)i);
            k += layer_set_regions(g + k, &s, c, (size_t)B, (size_t)T);
        }
        rg_check(label, &block, 1, g, k, 1);
        CHECK(!ckpt || (last.rstd1 == s0.rstd1 && last.hg == s0.hg), "%s: the last layer shares the one set",
              label);
        free(g);
    }
    check_grad_scratch(label, &a, BT, scratch);
    check_grad_scratch(label, &a, 1, scratch);
    check_grad_scratch(label, &a, (BT + 1) / 2, scratch);
    lisa_acts_free(&a);
    rg_check_freed(label, &r, a.bytes);
}

static void check_acts_layouts(const ck_case *cases, size_t n_cases) {
    static const int shapes[4][2] = {{3, 7}, {1, 5}, {5, 1}, {2, 3}};
    lisa_config attn_heavy; /* attention gradients outgrow the MLP's */
    size_t i;
    int s, ckpt;
    memset(&attn_heavy, 0, sizeof attn_heavy);
    attn_heavy.dim = 32;
    attn_heavy.hidden_dim = 8;
    attn_heavy.n_layers = 2;
    attn_heavy.n_heads = 4;
    attn_heavy.vocab_size = 11;
    attn_heavy.max_seq_len = 9;
    for (ckpt = 0; ckpt <= 1; ckpt++) {
        for (i = 0; i < n_cases; i++)
            for (s = 0; s < 4; s++)
                if (shapes[s][1] <= cases[i].config.max_seq_len)
                    check_acts_layout(cases[i].name, &cases[i].config, shapes[s][0], shapes[s][1], ckpt);
        check_acts_layout("attention-heavy", &attn_heavy, 3, 9, ckpt);
        check_acts_layout("attention-heavy", &attn_heavy, 1, 1, ckpt);
    }
}

int main(void) {
    ck_case cases[3];
    size_t i;
    memset(cases, 0, sizeof cases);
    cases[0].name = "untied gqa";
    cases[0].config.dim = 48;
    cases[0].config.hidden_dim = 80;
    cases[0].config.n_layers = 3;
    cases[0].config.n_heads = 6;
    cases[0].config.n_kv_heads = 2;
    cases[0].config.vocab_size = 97;
    cases[0].config.max_seq_len = 32;
    cases[0].config.tied_head = 0;
    cases[0].B = 3;
    cases[0].T = 13;
    cases[0].seed = 12345;

    cases[1].name = "tied mha";
    cases[1].config.dim = 32;
    cases[1].config.hidden_dim = 64;
    cases[1].config.n_layers = 4;
    cases[1].config.n_heads = 4;
    cases[1].config.vocab_size = 50;
    cases[1].config.max_seq_len = 16;
    cases[1].config.tied_head = 1;
    cases[1].B = 2;
    cases[1].T = 16;
    cases[1].seed = 777;

    cases[2].name = "one layer";
    cases[2].config.dim = 16;
    cases[2].config.hidden_dim = 24;
    cases[2].config.n_layers = 1;
    cases[2].config.n_heads = 2;
    cases[2].config.n_kv_heads = 1;
    cases[2].config.vocab_size = 19;
    cases[2].config.max_seq_len = 8;
    cases[2].config.tied_head = 0;
    cases[2].B = 1;
    cases[2].T = 8;
    cases[2].seed = 4242;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        printf("%s\n", cases[i].name);
        check_gradients(&cases[i]);
        check_training(&cases[i]);
    }
    report_15m();
    check_acts_layouts(cases, sizeof cases / sizeof cases[0]);
    return test_report("checkpoint");
}
