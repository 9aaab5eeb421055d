/* Reference test: lisa.h against an independent float64 PyTorch LLaMA.

   The fixtures in tests/fixtures/ come from tools/make_fixtures.py (see its
   header for the format and how to regenerate them). For each fixture this
   program loads the config and parameters into a lisa_model and checks:

     forward   logits and loss, with checkpointing off and on, also with
               activations allocated larger than the batch;
     backward  every parameter's gradient (all blocks active), bitwise equality
               between checkpointing off and on, gradient accumulation (ADD);
     frozen    with one block's gradient pointer NULL, every other block's
               gradient is bitwise the same as in the all-blocks run; with
               only the embedding active its gradient is bitwise the full-run
               one (the activation gradient reaches the bottom);
     trainer   10 lisa_trainer_step calls on the fixture's batch: the loss,
               learning rate and gradient norm of each step, and the
               parameters after the last step.

   TOLERANCES (float32 C against float64 reference values stored as float32):
     logits, loss      max |err| <= 3e-6 * max(1, max |ref|)
     gradients         per tensor: max |err| <= 1e-5 * max |ref of that tensor|
     step losses       |err| <= 3e-6 * |ref|  (each of the 10 steps)
     step lr           |err| <= 1e-6 * |ref| + 1e-12
     step grad norm    |err| <= 3e-6 * |ref|
     final params      per tensor, after 10 steps:
                       |p - ref|_2 <= 2e-4 * |ref - init|_2 (the update as a
                       whole), and max |err| <= 1e-5 + 0.01 * (sum of the 10
                       learning rates) -- AdamW's m/sqrt(v) turns tiny gradient
                       differences into O(lr) step differences for elements
                       whose gradient is near zero, so single elements get a
                       looser bound
   These sit about 10x above what a float32 PyTorch run of the same math
   (make_fixtures.py --fp32-report) and lisa.h itself reach; the achieved
   errors are printed.

   Usage: test_reference [fixture_dir]   (default tests/fixtures, run from the
   repository root) */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"
#include "fixture.h"

#include <string.h>

#define TOL_LOGITS 3e-6
#define TOL_GRAD 1e-5
#define TOL_LOSSES 3e-6
#define TOL_LR 1e-6
#define TOL_NORM 3e-6
#define TOL_FINAL_ABS 1e-5
#define TOL_FINAL_LR 0.01
#define TOL_UPDATE 2e-4
#define N_STEPS 10

static const char *FIXTURES[] = {
    "gqa_tied_cosine",
    "mha_untied_constant",
    "odd_mqa_linear",
    "gqa_tied_onelayer",
};

/* Worst errors over all fixtures, for the summary. */
static double worst_logits, worst_loss, worst_grad, worst_losses, worst_final, worst_update;

static double max_abs(const float *x, size_t n) {
    double m = 0;
    size_t i;
    for (i = 0; i < n; i++)
        if (fabs((double)x[i]) > m) m = fabs((double)x[i]);
    return m;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d) return INFINITY; /* NaN */
        if (d > m) m = d;
    }
    return m;
}

static const fixture_entry *need(const fixture *f, const char *fx, const char *name, int dtype,
                                 size_t n) {
    const fixture_entry *e = fixture_find(f, name);
    CHECK(e != NULL, "%s: fixture entry '%s' present", fx, name);
    if (!e) return NULL;
    CHECK(e->dtype == dtype, "%s: fixture entry '%s' has dtype %d", fx, name, dtype);
    CHECK(n == 0 || e->n == n, "%s: fixture entry '%s' has %lu elements (expected %lu)", fx, name,
          (unsigned long)e->n, (unsigned long)n);
    if (e->dtype != dtype || (n != 0 && e->n != n)) return NULL;
    return e;
}

/* Everything one fixture provides, checked for presence and sizes. */
typedef struct ref_case {
    const char *name;
    fixture f;
    lisa_config config;
    int B, T;
    const float *train;     /* 10 values */
    const int *inputs, *targets;
    const float *logits, *losses, *lrs, *grad_norms;
    float loss;
} ref_case;

static int load_case(ref_case *rc, const char *dir, const char *name) {
    char path[1024];
    const fixture_entry *cfg, *cfgf, *e;
    const int *ci;
    memset(rc, 0, sizeof *rc);
    rc->name = name;
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    if (fixture_load(&rc->f, path) != 0) {
        CHECK(0, "%s: fixture file %s loads (regenerate with tools/make_fixtures.py)", name, path);
        return -1;
    }
    cfg = need(&rc->f, name, "config", FIXTURE_I32, 10);
    cfgf = need(&rc->f, name, "config_f", FIXTURE_F32, 2);
    e = need(&rc->f, name, "train", FIXTURE_F32, 10);
    if (!cfg || !cfgf || !e) return -1;
    rc->train = e->f32;
    ci = cfg->i32;
    rc->config.dim = ci[0];
    rc->config.hidden_dim = ci[1];
    rc->config.n_layers = ci[2];
    rc->config.n_heads = ci[3];
    rc->config.n_kv_heads = ci[4];
    rc->config.vocab_size = ci[5];
    rc->config.max_seq_len = ci[6];
    rc->config.tied_head = ci[7];
    rc->B = ci[8];
    rc->T = ci[9];
    rc->config.norm_eps = cfgf->f32[0];
    rc->config.rope_theta = cfgf->f32[1];
    {
        size_t bt = (size_t)rc->B * (size_t)rc->T;
        const fixture_entry *in = need(&rc->f, name, "inputs", FIXTURE_I32, bt);
        const fixture_entry *tg = need(&rc->f, name, "targets", FIXTURE_I32, bt);
        const fixture_entry *lg = need(&rc->f, name, "logits", FIXTURE_F32,
                                       bt * (size_t)rc->config.vocab_size);
        const fixture_entry *ls = need(&rc->f, name, "loss", FIXTURE_F32, 1);
        const fixture_entry *lss = need(&rc->f, name, "losses", FIXTURE_F32, N_STEPS);
        const fixture_entry *lrs = need(&rc->f, name, "lrs", FIXTURE_F32, N_STEPS);
        const fixture_entry *gn = need(&rc->f, name, "grad_norms", FIXTURE_F32, N_STEPS);
        if (!in || !tg || !lg || !ls || !lss || !lrs || !gn) return -1;
        rc->inputs = in->i32;
        rc->targets = tg->i32;
        rc->logits = lg->f32;
        rc->loss = ls->f32[0];
        rc->losses = lss->f32;
        rc->lrs = lrs->f32;
        rc->grad_norms = gn->f32;
    }
    return 0;
}

/* Initialises m from the fixture's config and copies in "<prefix><name>" tensors. */
static int load_model(lisa_model *m, ref_case *rc, const char *prefix) {
    lisa_error err;
    int i, n, n_prefixed = 0;
    size_t plen = strlen(prefix);
    lisa_result r = lisa_model_init(m, &rc->config, NULL, &err);
    CHECK(r == LISA_OK, "%s: lisa_model_init succeeds (%s)", rc->name,
          r == LISA_OK ? "ok" : err.message);
    if (r != LISA_OK) return -1;
    n = lisa_model_n_tensors(m);
    for (i = 0; i < n; i++) {
        lisa_param p = lisa_model_tensor(m, i);
        char key[160];
        const fixture_entry *e;
        size_t numel = lisa_tensor_numel(&p.tensor);
        int d, shape_ok;
        snprintf(key, sizeof key, "%s%s", prefix, p.name);
        e = fixture_find(&rc->f, key);
        CHECK(e != NULL, "%s: lisa tensor '%s' has a fixture entry '%s'", rc->name, p.name, key);
        if (!e) return -1;
        shape_ok = e->dtype == FIXTURE_F32 && e->ndim == p.tensor.ndim && e->n == numel;
        for (d = 0; shape_ok && d < e->ndim; d++) shape_ok = e->shape[d] == p.tensor.shape[d];
        CHECK(shape_ok, "%s: tensor '%s' shape matches the fixture's (PyTorch (out, in) layout)",
              rc->name, p.name);
        if (!shape_ok) return -1;
        memcpy(p.tensor.data, e->f32, numel * sizeof(float));
    }
    for (i = 0; i < rc->f.count; i++)
        if (strncmp(rc->f.entries[i].name, prefix, plen) == 0) n_prefixed++;
    CHECK(n_prefixed == n, "%s: fixture has %d '%s*' tensors, model has %d", rc->name,
          n_prefixed, prefix, n);
    return 0;
}

static void check_param_table(const lisa_model *m, const ref_case *rc) {
    int i, n = lisa_model_n_tensors(m), expect_n;
    size_t prev_end = 0;
    expect_n = 1 + 9 * rc->config.n_layers + 1 + (rc->config.tied_head ? 0 : 1);
    CHECK(n == expect_n, "%s: %d named tensors (expected %d)", rc->name, n, expect_n);
    for (i = 0; i < n; i++) {
        lisa_param p = lisa_model_tensor(m, i);
        size_t len = strlen(p.name);
        int is_norm = len >= 4 && strcmp(p.name + len - 4, "norm") == 0;
        size_t boff = lisa_block_offset(&m->config, p.block);
        size_t numel = lisa_tensor_numel(&p.tensor);
        CHECK(p.decay == !is_norm, "%s: tensor '%s' decay flag %d (expected %d)", rc->name,
              p.name, p.decay, !is_norm);
        CHECK(p.tensor.data == m->params + p.offset, "%s: tensor '%s' view at its offset",
              rc->name, p.name);
        CHECK(p.offset >= boff && p.offset + numel <= boff + lisa_block_size(&m->config, p.block),
              "%s: tensor '%s' lies inside its block %d", rc->name, p.name, p.block);
        CHECK(p.offset == prev_end, "%s: tensor '%s' follows the previous one (layer-major buffer)",
              rc->name, p.name);
        prev_end = p.offset + numel;
    }
    CHECK(prev_end == m->layout.n_params, "%s: tensors cover the whole buffer", rc->name);
}

/* Forward with a given activation allocation; checks logits and loss. */
static void check_forward(const lisa_model *m, ref_case *rc, int ckpt, int extra_b, int extra_t) {
    lisa_acts a;
    lisa_error err;
    lisa_result r;
    float loss;
    size_t nl = (size_t)rc->B * (size_t)rc->T * (size_t)rc->config.vocab_size;
    double scale = max_abs(rc->logits, nl), e_logits, e_loss;
    int i, counted = 0;
    if (scale < 1) scale = 1;
    r = lisa_acts_init(&a, &m->config, rc->B + extra_b, rc->T + extra_t, ckpt, NULL, &err);
    CHECK(r == LISA_OK, "%s: lisa_acts_init(ckpt %d) succeeds", rc->name, ckpt);
    if (r != LISA_OK) return;
    loss = lisa_model_forward(m, &a, rc->inputs, rc->targets, rc->B, rc->T);
    e_logits = max_abs_diff(a.logits, rc->logits, nl);
    e_loss = fabs((double)loss - (double)rc->loss);
    for (i = 0; i < rc->B * rc->T; i++) counted += rc->targets[i] != LISA_IGNORE;
    CHECK(e_logits <= TOL_LOGITS * scale,
          "%s: logits (ckpt %d, acts %dx%d for batch %dx%d) max|err| %.3g <= 3e-6 * max(1, max|ref| %.3g)",
          rc->name, ckpt, rc->B + extra_b, rc->T + extra_t, rc->B, rc->T, e_logits, scale);
    CHECK(e_loss <= TOL_LOGITS * (fabs(rc->loss) > 1 ? fabs(rc->loss) : 1),
          "%s: loss (ckpt %d) %.8f vs ref %.8f, |err| %.3g <= 3e-6 * max(1, |ref|)", rc->name, ckpt,
          loss, rc->loss, e_loss);
    CHECK(a.loss == loss, "%s: acts.loss equals the returned loss", rc->name);
    CHECK(a.n_counted == counted, "%s: n_counted %d (expected %d targets != -1)", rc->name,
          a.n_counted, counted);
    if (extra_b == 0 && extra_t == 0) {
        if (e_logits > worst_logits) worst_logits = e_logits;
        if (e_loss > worst_loss) worst_loss = e_loss;
        printf("  %s ckpt %d: logits max|err| %.3g (max|ref| %.3g), loss |err| %.3g\n", rc->name,
               ckpt, e_logits, scale, e_loss);
    }
    lisa_acts_free(&a);
}

/* Gradient buffers, one per block (NULL where the block is frozen or empty). */
typedef struct grads {
    int n;
    float **g;
    size_t *size;
} grads;

/* active: NULL for all blocks, else an array of n_blocks flags */
static grads grads_alloc(const lisa_config *c, const int *active) {
    grads gr;
    int b;
    gr.n = lisa_n_blocks(c);
    gr.g = (float **)calloc((size_t)gr.n, sizeof(float *));
    gr.size = (size_t *)calloc((size_t)gr.n, sizeof(size_t));
    for (b = 0; b < gr.n; b++) {
        gr.size[b] = lisa_block_size(c, b);
        if ((!active || active[b]) && gr.size[b] > 0)
            gr.g[b] = (float *)calloc(gr.size[b], sizeof(float));
    }
    return gr;
}

static void grads_free(grads *gr) {
    int b;
    for (b = 0; b < gr->n; b++) free(gr->g[b]);
    free(gr->g);
    free(gr->size);
}

/* forward + backward into gr; returns 0 on success */
static int run_backward(const lisa_model *m, const ref_case *rc, int ckpt, grads *gr) {
    lisa_acts a;
    lisa_error err;
    if (lisa_acts_init(&a, &m->config, rc->B, rc->T, ckpt, NULL, &err) != LISA_OK) {
        CHECK(0, "%s: lisa_acts_init(ckpt %d) succeeds: %s", rc->name, ckpt, err.message);
        return -1;
    }
    lisa_model_forward(m, &a, rc->inputs, rc->targets, rc->B, rc->T);
    lisa_model_backward(m, &a, gr->g);
    lisa_acts_free(&a);
    return 0;
}

static double check_grads(const lisa_model *m, ref_case *rc, const grads *gr, int ckpt) {
    int i, n = lisa_model_n_tensors(m);
    double worst_rel = 0;
    for (i = 0; i < n; i++) {
        lisa_param p = lisa_model_tensor(m, i);
        char key[160];
        const fixture_entry *e;
        size_t numel = lisa_tensor_numel(&p.tensor);
        size_t off = p.offset - lisa_block_offset(&m->config, p.block);
        double scale, err;
        snprintf(key, sizeof key, "grad.%s", p.name);
        e = need(&rc->f, rc->name, key, FIXTURE_F32, numel);
        if (!e) continue;
        CHECK(gr->g[p.block] != NULL, "%s: block %d has a gradient buffer", rc->name, p.block);
        if (!gr->g[p.block]) continue;
        scale = max_abs(e->f32, numel);
        err = max_abs_diff(gr->g[p.block] + off, e->f32, numel);
        CHECK(scale > 0, "%s: reference gradient of %s is not all zero", rc->name, p.name);
        CHECK(err <= TOL_GRAD * scale,
              "%s: grad %s (ckpt %d) max|err| %.3g <= 1e-5 * max|ref| %.3g (rel %.3g)", rc->name,
              p.name, ckpt, err, scale, err / scale);
        if (scale > 0 && err / scale > worst_rel) worst_rel = err / scale;
    }
    return worst_rel;
}

static int same_bits(const float *a, const float *b, size_t n) {
    if (!a || !b) return a == b;
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void check_backward(const lisa_model *m, ref_case *rc) {
    const lisa_config *c = &m->config;
    int nb = lisa_n_blocks(c), b, f;
    grads full0, full1, twice;
    int *active = (int *)calloc((size_t)nb, sizeof(int));
    double rel0, rel1;

    full0 = grads_alloc(c, NULL);
    full1 = grads_alloc(c, NULL);
    if (run_backward(m, rc, 0, &full0) == 0 && run_backward(m, rc, 1, &full1) == 0) {
        rel0 = check_grads(m, rc, &full0, 0);
        rel1 = check_grads(m, rc, &full1, 1);
        if (rel0 > worst_grad) worst_grad = rel0;
        if (rel1 > worst_grad) worst_grad = rel1;
        printf("  %s: worst grad max|err| / max|ref| per tensor: ckpt0 %.3g, ckpt1 %.3g\n",
               rc->name, rel0, rel1);
        for (b = 0; b < nb; b++)
            CHECK(same_bits(full0.g[b], full1.g[b], full0.size[b]),
                  "%s: block %d gradient bitwise equal with and without checkpointing", rc->name,
                  b);
    }

    /* backward ADDS: a second forward+backward into the same buffers doubles them */
    twice = grads_alloc(c, NULL);
    if (run_backward(m, rc, 0, &twice) == 0 && run_backward(m, rc, 0, &twice) == 0) {
        for (b = 0; b < nb; b++) {
            size_t k;
            double worst = 0, scale = full0.g[b] ? max_abs(full0.g[b], full0.size[b]) : 0;
            if (!twice.g[b]) continue;
            for (k = 0; k < twice.size[b]; k++) {
                double d = fabs((double)twice.g[b][k] - 2.0 * (double)full0.g[b][k]);
                if (d > worst) worst = d;
            }
            CHECK(worst <= 1e-6 * scale,
                  "%s: block %d: two backward calls accumulate to twice the gradient "
                  "(max|err| %.3g <= 1e-6 * max|g| %.3g)",
                  rc->name, b, worst, scale);
        }
    }
    grads_free(&twice);

    /* one block frozen at a time: the others are bitwise unchanged */
    for (f = 0; f < nb; f++) {
        grads part;
        if (full0.size[f] == 0) continue;
        for (b = 0; b < nb; b++) active[b] = b != f;
        part = grads_alloc(c, active);
        if (run_backward(m, rc, 0, &part) == 0) {
            int ok = 1;
            for (b = 0; b < nb; b++)
                if (b != f && !same_bits(part.g[b], full0.g[b], full0.size[b])) ok = 0;
            CHECK(ok, "%s: with block %d frozen (NULL), every other block's gradient is bitwise "
                      "the all-blocks one",
                  rc->name, f);
        }
        grads_free(&part);
    }

    /* only the embedding active (ckpt 0 and 1): the activation gradient still
       travels down through every layer to it */
    for (b = 0; b < nb; b++) active[b] = b == LISA_BLOCK_EMBED;
    for (f = 0; f <= 1; f++) {
        grads part = grads_alloc(c, active);
        if (run_backward(m, rc, f, &part) == 0) {
            CHECK(same_bits(part.g[LISA_BLOCK_EMBED], full0.g[LISA_BLOCK_EMBED],
                            full0.size[LISA_BLOCK_EMBED]),
                  "%s: embedding gradient with only the embedding active (ckpt %d) is bitwise "
                  "the all-blocks one",
                  rc->name, f);
        }
        grads_free(&part);
    }

    /* only one middle layer active */
    for (b = 0; b < nb; b++) active[b] = b == LISA_BLOCK_LAYER(c->n_layers / 2);
    {
        grads part = grads_alloc(c, active);
        int lb = LISA_BLOCK_LAYER(c->n_layers / 2);
        if (run_backward(m, rc, 1, &part) == 0)
            CHECK(same_bits(part.g[lb], full0.g[lb], full0.size[lb]),
                  "%s: layer %d gradient with only that layer active (ckpt 1) is bitwise the "
                  "all-blocks one",
                  rc->name, c->n_layers / 2);
        grads_free(&part);
    }

    grads_free(&full0);
    grads_free(&full1);
    free(active);
}

static void check_trainer(ref_case *rc, int ckpt) {
    lisa_model m;
    lisa_trainer t;
    lisa_train_config tc = lisa_train_config_default();
    lisa_error err;
    lisa_result r;
    double lr_sum = 0, worst_loss_rel = 0, worst_fin = 0, worst_upd = 0, worst_norm_rel = 0;
    int s, i, n;
    if (load_model(&m, rc, "param.") != 0) return;
    tc.batch = rc->B;
    tc.seq = rc->T;
    tc.schedule.lr = rc->train[0];
    tc.schedule.min_lr = rc->train[1];
    tc.schedule.warmup = (int)rc->train[2];
    tc.schedule.total_steps = (int)rc->train[3];
    tc.schedule.kind = (lisa_schedule_kind)(int)rc->train[4];
    tc.beta1 = rc->train[5];
    tc.beta2 = rc->train[6];
    tc.eps = rc->train[7];
    tc.weight_decay = rc->train[8];
    tc.grad_clip = rc->train[9];
    tc.checkpointing = ckpt;
    r = lisa_trainer_init(&t, &m, &tc, NULL, &err);
    CHECK(r == LISA_OK, "%s: lisa_trainer_init succeeds (%s)", rc->name,
          r == LISA_OK ? "ok" : err.message);
    if (r != LISA_OK) {
        lisa_model_free(&m);
        return;
    }
    for (s = 0; s < N_STEPS; s++) {
        lisa_step_info info;
        double le, rel;
        memset(&info, 0, sizeof info);
        r = lisa_trainer_step(&t, rc->inputs, rc->targets, &info);
        CHECK(r == LISA_OK, "%s: lisa_trainer_step %d succeeds", rc->name, s + 1);
        CHECK(info.step == s + 1, "%s: step info counts from 1 (got %d, expected %d)", rc->name,
              info.step, s + 1);
        le = fabs((double)info.loss - (double)rc->losses[s]);
        rel = le / fabs((double)rc->losses[s]);
        if (rel > worst_loss_rel) worst_loss_rel = rel;
        CHECK(le <= TOL_LOSSES * fabs((double)rc->losses[s]),
              "%s: ckpt %d step %d loss %.8f vs ref %.8f (rel err %.3g <= 3e-6)", rc->name, ckpt,
              s + 1, info.loss, rc->losses[s], rel);
        CHECK(test_close(info.lr, rc->lrs[s], 1e-12, TOL_LR),
              "%s: step %d lr %.9g vs schedule ref %.9g (rel 1e-6)", rc->name, s + 1, info.lr,
              rc->lrs[s]);
        CHECK(test_close(info.grad_norm, rc->grad_norms[s], 0, TOL_NORM),
              "%s: ckpt %d step %d grad norm %.8g vs ref %.8g (rel 3e-6)", rc->name, ckpt, s + 1,
              info.grad_norm, rc->grad_norms[s]);
        lr_sum += rc->lrs[s];
        rel = fabs((double)info.grad_norm - (double)rc->grad_norms[s]) / (double)rc->grad_norms[s];
        if (rel > worst_norm_rel) worst_norm_rel = rel;
    }
    CHECK(t.step == N_STEPS, "%s: trainer counted %d steps", rc->name, t.step);
    n = lisa_model_n_tensors(&m);
    for (i = 0; i < n; i++) {
        lisa_param p = lisa_model_tensor(&m, i);
        char key[160];
        size_t numel = lisa_tensor_numel(&p.tensor);
        char ikey[160];
        const fixture_entry *e, *init;
        double err, tol = TOL_FINAL_ABS + TOL_FINAL_LR * lr_sum;
        snprintf(key, sizeof key, "final.%s", p.name);
        e = need(&rc->f, rc->name, key, FIXTURE_F32, numel);
        if (!e) continue;
        snprintf(ikey, sizeof ikey, "param.%s", p.name);
        init = need(&rc->f, rc->name, ikey, FIXTURE_F32, numel);
        if (!init) continue;
        err = max_abs_diff(p.tensor.data, e->f32, numel);
        if (err > worst_fin) worst_fin = err;
        CHECK(err <= tol,
              "%s: ckpt %d: %s after %d steps max|err| %.3g <= 1e-5 + 0.01 * sum(lr) = %.3g",
              rc->name, ckpt, p.name, N_STEPS, err, tol);
        {
            double num = 0, den = 0;
            size_t k;
            for (k = 0; k < numel; k++) {
                double d = (double)p.tensor.data[k] - (double)e->f32[k];
                double u = (double)e->f32[k] - (double)init->f32[k];
                num += d * d;
                den += u * u;
            }
            num = sqrt(num);
            den = sqrt(den);
            if (den > 0 && num / den > worst_upd) worst_upd = num / den;
            CHECK(num <= TOL_UPDATE * den + 1e-7,
                  "%s: ckpt %d: %s after %d steps: |p - ref|_2 %.3g <= 2e-4 * |ref - init|_2 %.3g",
                  rc->name, ckpt, p.name, N_STEPS, num, den);
        }
    }
    printf("  %s trainer ckpt %d: losses worst rel err %.3g, grad norms worst rel err %.3g, "
           "final params max|err| %.3g (sum lr %.3g), worst update rel err (L2) %.3g\n",
           rc->name, ckpt, worst_loss_rel, worst_norm_rel, worst_fin, lr_sum, worst_upd);
    if (worst_upd > worst_update) worst_update = worst_upd;
    if (worst_loss_rel > worst_losses) worst_losses = worst_loss_rel;
    if (worst_fin > worst_final) worst_final = worst_fin;
    lisa_trainer_free(&t);
    lisa_model_free(&m);
}

static void check_schedule(ref_case *rc) {
    lisa_schedule sc;
    int s;
    sc.lr = rc->train[0];
    sc.min_lr = rc->train[1];
    sc.warmup = (int)rc->train[2];
    sc.total_steps = (int)rc->train[3];
    sc.kind = (lisa_schedule_kind)(int)rc->train[4];
    for (s = 0; s < N_STEPS; s++) {
        float lr = lisa_schedule_lr(&sc, s);
        CHECK(test_close(lr, rc->lrs[s], 1e-12, TOL_LR),
              "%s: lisa_schedule_lr(step %d) %.9g vs ref %.9g (rel 1e-6)", rc->name, s, lr,
              rc->lrs[s]);
    }
}

static void run_fixture(const char *dir, const char *name) {
    ref_case rc;
    lisa_model m;
    printf("%s\n", name);
    if (load_case(&rc, dir, name) != 0) {
        fixture_free(&rc.f);
        return;
    }
    if (load_model(&m, &rc, "param.") == 0) {
        check_param_table(&m, &rc);
        check_forward(&m, &rc, 0, 0, 0);
        check_forward(&m, &rc, 1, 0, 0);
        /* activations allocated for a larger batch than the one run */
        {
            int extra_t = rc.config.max_seq_len - rc.T < 2 ? rc.config.max_seq_len - rc.T : 2;
            check_forward(&m, &rc, 0, 1, extra_t);
            check_forward(&m, &rc, 1, 1, extra_t);
        }
        check_backward(&m, &rc);
        lisa_model_free(&m);
    }
    check_schedule(&rc);
    check_trainer(&rc, 0);
    check_trainer(&rc, 1);
    fixture_free(&rc.f);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
    size_t i;
    for (i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) run_fixture(dir, FIXTURES[i]);
    printf("worst over fixtures: logits %.3g, loss %.3g, grad rel %.3g, step losses rel %.3g, "
           "final params %.3g, update rel %.3g\n",
           worst_logits, worst_loss, worst_grad, worst_losses, worst_final, worst_update);
    return test_report("reference");
}
