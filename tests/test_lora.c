/* LoRA mode of the trainer: the plan equals the counted bytes; the base
   weights stay as they were while the adapters train; the first step's loss
   is the base model's (B starts at zero); checkpointing and the thread count
   change no bit; a run stopped and resumed from a state file is bitwise the
   run that never stopped; merging gives the attached adapters' logits; the
   adapter gradient matches finite differences of the loss. The comparison
   against peft itself is in test_reference. */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

#define B 2
#define T 8
#define STEPS 9

static lisa_config small_config(int tied) {
    lisa_config c;
    memset(&c, 0, sizeof c);
    c.dim = 16; c.hidden_dim = 24; c.n_layers = 3; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 29; c.max_seq_len = T; c.tied_head = tied;
    return c;
}

static void batch_of(int s, int *in, int *tg) {
    int i;
    for (i = 0; i < B * T; i++) {
        in[i] = (s * 7 + i * 3) % 29;
        tg[i] = i % 5 == 4 ? LISA_IGNORE : (s * 5 + i * 11 + 1) % 29;
    }
}

static lisa_train_config lora_config(int ckpt, int rank, unsigned targets, int flags) {
    lisa_train_config tc = lisa_train_config_default();
    tc.batch = B;
    tc.seq = T;
    tc.mode = LISA_MODE_LORA;
    tc.checkpointing = ckpt;
    tc.schedule.kind = LISA_SCHEDULE_COSINE;
    tc.schedule.lr = 1e-2f;
    tc.schedule.min_lr = 1e-3f;
    tc.schedule.warmup = 2;
    tc.schedule.total_steps = STEPS;
    tc.weight_decay = 0.1f;
    tc.grad_clip = 0.5f;
    tc.lisa_seed = 7;
    tc.lora.rank = rank;
    tc.lora.targets = targets;
    tc.lora.train_embed = flags & 1;
    tc.lora.train_head = (flags >> 1) & 1;
    tc.lora.train_norms = (flags >> 2) & 1;
    return tc;
}

static void make_model(lisa_model *m, int tied) {
    lisa_config c = small_config(tied);
    lisa_error err;
    if (lisa_model_init(m, &c, NULL, &err) != LISA_OK) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    lisa_model_init_random(m, 3);
}

/* Runs steps [from, to) of a trainer, recording the losses. */
static void run(lisa_trainer *t, int from, int to, float *losses) {
    int in[B * T], tg[B * T], s;
    lisa_step_info info;
    for (s = from; s < to; s++) {
        batch_of(s, in, tg);
        if (lisa_trainer_step(t, in, tg, &info) != LISA_OK) {
            CHECK(0, "step %d failed", s);
            return;
        }
        losses[s] = info.loss;
    }
}

static void test_plan(void) {
    static const int flags[4] = {0, 1, 6, 7};
    int tied, ckpt, f, rank;
    for (tied = 0; tied < 2; tied++)
        for (ckpt = 0; ckpt < 2; ckpt++)
            for (f = 0; f < 4; f++)
                for (rank = 1; rank <= 4; rank += 3) {
                    lisa_model m;
                    lisa_trainer t;
                    lisa_memory_plan plan;
                    lisa_error err;
                    lisa_train_config tc = lora_config(ckpt, rank, f == 2 ? 0x55u : 0u, flags[f]);
                    float losses[STEPS];
                    make_model(&m, tied);
                    CHECK(lisa_plan_memory(&m.config, &tc, LISA_DTYPE_F32, &plan, &err) == LISA_OK, "plan: %s",
                          err.message);
                    CHECK(lisa_trainer_init(&t, &m, &tc, NULL, &err) == LISA_OK, "init: %s", err.message);
                    run(&t, 0, 3, losses);
                    CHECK(t.peak_bytes == plan.peak && lisa_trainer_total_bytes(&t) == plan.peak,
                          "tied %d ckpt %d flags %d rank %d: counted %.0f (peak %.0f), planned %.0f", tied, ckpt,
                          flags[f], rank, (double)lisa_trainer_total_bytes(&t), (double)t.peak_bytes,
                          (double)plan.peak);
                    lisa_trainer_free(&t);
                    CHECK(m.lora == NULL, "the trainer detaches its adapters when freed");
                    lisa_model_free(&m);
                }
}

/* Frozen base, first loss equals the base model's, checkpointing bitwise. */
static void test_frozen_and_checkpointing(void) {
    lisa_model m, m2, base;
    lisa_trainer t, t2;
    lisa_error err;
    lisa_train_config tc = lora_config(0, 4, 0, 0), tc2 = lora_config(1, 4, 0, 0);
    float l1[STEPS], l2[STEPS], base_loss;
    int in[B * T], tg[B * T];
    lisa_acts acts;
    make_model(&m, 0);
    make_model(&m2, 0);
    make_model(&base, 0);
    lisa_acts_init(&acts, &base.config, B, T, 0, NULL, &err);
    batch_of(0, in, tg);
    base_loss = lisa_model_forward(&base, &acts, in, tg, B, T);
    CHECK(lisa_trainer_init(&t, &m, &tc, NULL, &err) == LISA_OK, "init: %s", err.message);
    CHECK(lisa_trainer_init(&t2, &m2, &tc2, NULL, &err) == LISA_OK, "init: %s", err.message);
    run(&t, 0, STEPS, l1);
    run(&t2, 0, STEPS, l2);
    CHECK(l1[0] == base_loss, "first LoRA loss %.9g equals the base model's %.9g (B starts at zero)", l1[0],
          base_loss);
    CHECK(memcmp(l1, l2, sizeof l1) == 0, "checkpointing changes no loss bit");
    CHECK(memcmp(t.lora.params, t2.lora.params, t.lora.param_bytes) == 0,
          "checkpointing changes no adapter bit");
    CHECK(memcmp(m.params, base.params, m.layout.n_params * sizeof(float)) == 0,
          "the base weights, embedding, norms and head are untouched by LoRA training");
    {
        /* one batch over and over: the adapters alone must fit it better */
        lisa_model m3;
        lisa_trainer t3;
        lisa_step_info info;
        float first = 0;
        int s;
        make_model(&m3, 0);
        CHECK(lisa_trainer_init(&t3, &m3, &tc, NULL, &err) == LISA_OK, "init: %s", err.message);
        for (s = 0; s < STEPS; s++) {
            lisa_trainer_step(&t3, in, tg, &info);
            if (s == 0) first = info.loss;
        }
        CHECK(info.loss < first - 0.05f, "LoRA training on one batch lowers its loss: %.6g -> %.6g", first, info.loss);
        lisa_trainer_free(&t3);
        lisa_model_free(&m3);
    }
    {
        /* merged weights give the attached adapters' forward */
        float with, merged;
        size_t i, V = (size_t)m.config.vocab_size, worst_i = 0;
        double worst = 0;
        float *logits = (float *)malloc(B * T * V * sizeof(float));
        lisa_acts a2;
        lisa_acts_init(&a2, &m.config, B, T, 0, NULL, &err);
        batch_of(1, in, tg);
        with = lisa_model_forward(&m, &t.acts, in, tg, B, T);
        memcpy(logits, t.acts.logits, B * T * V * sizeof(float));
        m.lora = NULL;
        lisa_lora_merge(&m, &t.lora);
        merged = lisa_model_forward(&m, &a2, in, tg, B, T);
        for (i = 0; i < B * T * V; i++)
            if (fabs((double)logits[i] - a2.logits[i]) > worst) {
                worst = fabs((double)logits[i] - a2.logits[i]);
                worst_i = i;
            }
        CHECK(worst < 1e-5 && fabs(with - merged) < 1e-5, "merged logits (worst diff %.3g at %lu), loss %.9g vs %.9g",
              worst, (unsigned long)worst_i, with, merged);
        m.lora = &t.lora;
        free(logits);
        lisa_acts_free(&a2);
    }
    lisa_acts_free(&acts);
    lisa_trainer_free(&t);
    lisa_trainer_free(&t2);
    lisa_model_free(&m);
    lisa_model_free(&m2);
    lisa_model_free(&base);
}

/* The adapter gradient of one step against central differences of the loss. */
static void test_gradient(void) {
    lisa_model m;
    lisa_trainer t;
    lisa_error err;
    lisa_train_config tc = lora_config(1, 2, 0, 4);
    int in[B * T], tg[B * T], nb, l, k, worst_k = -1;
    float *g;
    double worst = 0;
    make_model(&m, 1);
    CHECK(lisa_trainer_init(&t, &m, &tc, NULL, &err) == LISA_OK, "init: %s", err.message);
    lisa_lora_init_random(&t.lora, 11);
    for (k = 0; k < (int)(t.lora.n_layers * t.lora.layer_size); k++) /* B nonzero too */
        if (t.lora.params[k] == 0.0f) t.lora.params[k] = 0.05f * (float)((k * 37) % 11 - 5);
    nb = lisa_n_blocks(&m.config);
    batch_of(0, in, tg);
    for (k = 0; k < nb + m.config.n_layers; k++)
        if (t.grad_ptrs[k]) memset(t.grad_ptrs[k], 0, t.block_sizes[k] * sizeof(float));
    lisa_model_forward(&m, &t.acts, in, tg, B, T);
    lisa_model_backward(&m, &t.acts, t.grad_ptrs);
    CHECK(t.grad_ptrs[LISA_BLOCK_LAYER(0)] == NULL && t.grad_ptrs[LISA_BLOCK_EMBED] == NULL,
          "LoRA mode: the layers and the embedding get no gradient");
    for (l = 0; l < m.config.n_layers; l++) {
        g = t.grad_ptrs[nb + l];
        for (k = 0; k < (int)t.block_sizes[nb + l]; k += 7) {
            float *p = k < (int)t.lora.layer_size ? t.lora.params + (size_t)l * t.lora.layer_size + k
                     : k < (int)t.lora.layer_size + m.config.dim ? m.layers[l].attn_norm + (k - (int)t.lora.layer_size)
                     : m.layers[l].mlp_norm + (k - (int)t.lora.layer_size - m.config.dim);
            float x0 = *p, h = 2e-3f; /* the loss is float: noise ~1e-7 / h; truncation ~h^2 */
            double lp, lm, num, e;
            *p = x0 + h;
            lp = lisa_model_forward(&m, &t.acts, in, tg, B, T);
            *p = x0 - h;
            lm = lisa_model_forward(&m, &t.acts, in, tg, B, T);
            *p = x0;
            num = (lp - lm) / (2.0 * h);
            e = fabs(num - g[k]) / (5e-4 + 1e-2 * fabs(num));
            if (getenv("LORA_VERBOSE")) printf("l %d k %d num %.6g g %.6g\n", l, k, num, (double)g[k]);
            if (e > worst) {
                worst = e;
                worst_k = l * 100000 + k;
            }
        }
    }
    CHECK(worst <= 1.0, "adapter gradient vs finite differences: worst err/tol %.3g at layer %d float %d", worst,
          worst_k / 100000, worst_k % 100000);
    lisa_trainer_free(&t);
    lisa_model_free(&m);
}

static void test_resume(void) {
    static const int flags[2] = {0, 7};
    char path[64];
    int f, stop = 4;
    snprintf(path, sizeof path, "/tmp/test_lora_%d.state", (int)getpid());
    for (f = 0; f < 2; f++) {
        lisa_model m, m2;
        lisa_trainer t, t2;
        lisa_error err;
        lisa_train_config tc = lora_config(f, 3, f ? 0x3fu : 0u, flags[f]);
        float la[STEPS], lb[STEPS];
        uint64_t pos = 0;
        make_model(&m, f);
        CHECK(lisa_trainer_init(&t, &m, &tc, NULL, &err) == LISA_OK, "init: %s", err.message);
        run(&t, 0, stop, la);
        CHECK(lisa_trainer_save_state(&t, path, 123, &err) == LISA_OK, "save: %s", err.message);
        run(&t, stop, STEPS, la);
        CHECK(lisa_trainer_load_state(&t2, &m2, path, NULL, &pos, &err) == LISA_OK, "load: %s", err.message);
        CHECK(pos == 123 && t2.config.mode == LISA_MODE_LORA && t2.config.lora.rank == 3 &&
                  t2.config.lora.train_norms == (flags[f] >> 2 & 1),
              "the state keeps the LoRA settings and the data position");
        memcpy(lb, la, sizeof lb);
        run(&t2, stop, STEPS, lb);
        CHECK(memcmp(la, lb, sizeof la) == 0, "flags %d: resumed losses equal the uninterrupted run's bitwise",
              flags[f]);
        CHECK(memcmp(t.lora.params, t2.lora.params, t.lora.param_bytes) == 0 &&
                  memcmp(m.params, m2.params, m.layout.n_params * sizeof(float)) == 0,
              "flags %d: resumed adapters and weights equal the uninterrupted run's bitwise", flags[f]);
        lisa_trainer_free(&t);
        lisa_trainer_free(&t2);
        lisa_model_free(&m);
        lisa_model_free(&m2);
    }
    remove(path);
}

static void test_settings(void) {
    lisa_model m;
    lisa_trainer t;
    lisa_error err;
    lisa_train_config tc = lora_config(0, 0, 0, 0);
    make_model(&m, 0);
    CHECK(lisa_trainer_init(&t, &m, &tc, NULL, &err) == LISA_OK, "init: %s", err.message);
    CHECK(t.config.lora.rank == 8 && t.config.lora.alpha == 16.0f && t.config.lora.targets == LISA_LORA_ALL &&
              t.lora.scale == 2.0f,
          "defaults: rank 8, alpha 16, all seven targets");
    lisa_trainer_free(&t);
    tc.lora.rank = -1;
    CHECK(lisa_trainer_init(&t, &m, &tc, NULL, &err) == LISA_ERR_INVALID && strstr(err.message, "rank"),
          "a bad rank is refused by name: %s", err.message);
    tc.lora.rank = 4;
    tc.lora.targets = 0x80;
    CHECK(lisa_trainer_init(&t, &m, &tc, NULL, &err) == LISA_ERR_INVALID && strstr(err.message, "targets"),
          "bad targets are refused by name: %s", err.message);
    lisa_model_free(&m);
}

/* The largest |a - b| over n floats, relative to the largest |b|. */
static double rel_max_diff(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
        if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
    }
    return m > 0 ? d / m : d;
}

/* peft's own training (tools/make_lora_fixture.py): the same 8 AdamW steps
   from its saved adapter, with random nonzero A and B, on its saved base. */
static void test_peft_reference(void) {
    const char *base_dir = "tests/fixtures/lora_tiny", *start = "tests/fixtures/lora_tiny_adapter";
    fixture f;
    const fixture_entry *in, *tg, *losses, *ev_in, *ev_logits, *set;
    lisa_model m;
    lisa_trainer t;
    lisa_lora want, back;
    lisa_error err;
    lisa_train_config tc = lisa_train_config_default();
    lisa_acts acts;
    char dir[64];
    int s, k, TT;
    double worst = 0;
    if (fixture_load(&f, "tests/fixtures/lora_tiny.bin") != 0) {
        CHECK(0, "tests/fixtures/lora_tiny.bin is missing");
        return;
    }
    in = fixture_find(&f, "inputs");
    tg = fixture_find(&f, "targets");
    losses = fixture_find(&f, "losses");
    ev_in = fixture_find(&f, "eval_inputs");
    ev_logits = fixture_find(&f, "eval_logits");
    set = fixture_find(&f, "settings");
    if (!in || !tg || !losses || !ev_in || !ev_logits || !set) {
        CHECK(0, "lora_tiny.bin lacks an entry");
        fixture_free(&f);
        return;
    }
    TT = in->shape[1] * in->shape[2];
    CHECK(lisa_model_load_hf(&m, base_dir, NULL, &err) == LISA_OK, "base: %s", err.message);
    CHECK(lisa_lora_read_peft_config(start, &tc.lora, NULL, &err) == LISA_OK, "adapter config: %s", err.message);
    CHECK(tc.lora.rank == (int)set->f32[0] && tc.lora.alpha == set->f32[1] && tc.lora.targets == LISA_LORA_ALL,
          "peft's config: r %d alpha %g targets 0x%x", tc.lora.rank, (double)tc.lora.alpha, tc.lora.targets);
    tc.mode = LISA_MODE_LORA;
    tc.batch = in->shape[1];
    tc.seq = in->shape[2];
    tc.schedule.lr = set->f32[2];
    tc.beta1 = set->f32[3];
    tc.beta2 = set->f32[4];
    tc.eps = set->f32[5];
    tc.weight_decay = set->f32[6];
    tc.grad_clip = set->f32[7];
    CHECK(lisa_trainer_init(&t, &m, &tc, NULL, &err) == LISA_OK, "init: %s", err.message);
    CHECK(lisa_lora_load_peft(&t.lora, start, &err) == LISA_OK, "adapter: %s", err.message);
    for (s = 0; s < in->shape[0]; s++) {
        lisa_step_info info;
        double rel;
        lisa_trainer_step(&t, in->i32 + (size_t)s * TT, tg->i32 + (size_t)s * TT, &info);
        rel = fabs((double)info.loss - losses->f32[s]) / fabs((double)losses->f32[s]);
        if (rel > worst) worst = rel;
        CHECK(rel <= 1e-5, "step %d: loss %.9g, peft %.9g (relative %.3g)", s + 1, info.loss, losses->f32[s], rel);
    }
    printf("LoRA vs peft: 8 AdamW steps, worst relative loss difference %.3g\n", worst);
    /* the trained adapters against peft's, read back through the loader */
    CHECK(lisa_lora_init(&want, &m.config, &t.config.lora, 0, 0, 0, NULL, &err) == LISA_OK, "%s", err.message);
    CHECK(lisa_lora_load_peft(&want, "tests/fixtures/lora_tiny_trained", &err) == LISA_OK, "trained: %s", err.message);
    worst = rel_max_diff(t.lora.params, want.params, (size_t)want.n_layers * want.layer_size);
    CHECK(worst < 1e-4, "trained adapters vs peft's: largest difference %.3g of the largest value", worst);
    /* written in peft's format and read back: the same bits */
    snprintf(dir, sizeof dir, "/tmp/test_lora_adapter_%d", (int)getpid());
    mkdir(dir, 0755);
    CHECK(lisa_lora_save_peft(&t.lora, dir, base_dir, &err) == LISA_OK, "save: %s", err.message);
    {
        lisa_lora_config lc;
        char path[128];
        CHECK(lisa_lora_read_peft_config(dir, &lc, NULL, &err) == LISA_OK && lc.rank == t.lora.config.rank &&
                  lc.alpha == t.lora.config.alpha && lc.targets == t.lora.config.targets,
              "written config reads back: %s", err.message);
        CHECK(lisa_lora_init(&back, &m.config, &lc, 0, 0, 0, NULL, &err) == LISA_OK, "%s", err.message);
        CHECK(lisa_lora_load_peft(&back, dir, &err) == LISA_OK, "written adapter reads back: %s", err.message);
        CHECK(memcmp(back.params, t.lora.params, back.param_bytes) == 0, "written adapter reads back bitwise");
        lisa_lora_free(&back);
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        remove(path);
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        remove(path);
        rmdir(dir);
    }
    /* merged: peft's merged model's logits */
    m.lora = NULL;
    lisa_lora_merge(&m, &t.lora);
    lisa_acts_init(&acts, &m.config, ev_in->shape[0], ev_in->shape[1], 0, NULL, &err);
    lisa_model_forward(&m, &acts, ev_in->i32, NULL, ev_in->shape[0], ev_in->shape[1]);
    worst = rel_max_diff(acts.logits, ev_logits->f32, ev_logits->n);
    CHECK(worst < 1e-4, "merged logits vs peft's merged model: largest difference %.3g of the largest logit", worst);
    printf("LoRA vs peft: merged logits, largest difference %.3g of the largest logit\n", worst);
    for (k = 0; k < 1; k++) lisa_acts_free(&acts);
    m.lora = &t.lora;
    lisa_lora_free(&want);
    lisa_trainer_free(&t);
    lisa_model_free(&m);
    fixture_free(&f);
}

/* The adapter loader's errors name the file and the problem. */
static void test_peft_errors(void) {
    static const char *const bad[][2] = {
        {"{\"r\": 0, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "r must be"},
        {"{\"r\": 4, \"target_modules\": [\"q_proj\"]}", "lora_alpha"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"lm_head\"]}", "\"lm_head\""},
        {"{\"r\": 4, \"lora_alpha\": 8, \"use_dora\": true, \"target_modules\": [\"q_proj\"]}", "use_dora"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"bias\": \"all\", \"target_modules\": [\"q_proj\"]}", "bias"},
        {"{\"peft_type\": \"IA3\", \"r\": 4}", "peft_type"},
        {"[1]", "not a JSON object"},
        {"{\"r\": 4,", "line 1"}};
    int i;
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        lisa_lora_config lc;
        lisa_error err;
        lisa_result r = lisa_lora_config_from_peft(&lc, bad[i][0], strlen(bad[i][0]), "x/adapter_config.json", NULL, &err);
        CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "x/adapter_config.json") && strstr(err.message, bad[i][1]),
              "config %d refused naming the file and \"%s\": %s", i, bad[i][1], err.message);
    }
    {
        /* weights: a tensor the config does not target, and a missing one */
        lisa_model m;
        lisa_lora l;
        lisa_lora_config lc;
        lisa_error err;
        memset(&lc, 0, sizeof lc);
        lc.rank = 4;
        lc.alpha = 8;
        lc.targets = 1u << LISA_LORA_Q;
        CHECK(lisa_model_load_hf(&m, "tests/fixtures/lora_tiny", NULL, &err) == LISA_OK, "%s", err.message);
        lisa_lora_init(&l, &m.config, &lc, 0, 0, 0, NULL, &err);
        CHECK(lisa_lora_load_peft(&l, "tests/fixtures/lora_tiny_adapter", &err) == LISA_ERR_FORMAT &&
                  strstr(err.message, "adapter_model.safetensors") && strstr(err.message, "does not target"),
              "untargeted tensor refused: %s", err.message);
        lisa_lora_free(&l);
        lc.targets = LISA_LORA_ALL;
        lc.rank = 2;
        lisa_lora_init(&l, &m.config, &lc, 0, 0, 0, NULL, &err);
        CHECK(lisa_lora_load_peft(&l, "tests/fixtures/lora_tiny_adapter", &err) == LISA_ERR_FORMAT &&
                  strstr(err.message, "r 2"),
              "wrong rank refused: %s", err.message);
        lisa_lora_free(&l);
        lisa_model_free(&m);
    }
}

int main(void) {
    test_peft_reference();
    test_peft_errors();
    test_settings();
    test_plan();
    test_frozen_and_checkpointing();
    test_gradient();
    test_resume();
    return test_report("lora");
}
