/* test_ops.c - checks every tensor op of lisa.h, the optimizer, clipping,
   schedules and the random number generator.

   For each op:
     - the forward against a naive double-precision reference written here;
     - the backward against central finite differences of the double-precision
       scalar objective L = sum_i r_i * out_i (r random, accumulated in double)
       taken over the float forward, for EVERY input element, on several small
       shapes with odd sizes;
     - that backward ADDS into gradient buffers that already hold values;
     - that a NULL weight-gradient is accepted and leaves dx bit-identical.

   Finite differences. For element x_j the step is h = h_rel * max_i |x_i|; the
   perturbed values x_j +- h are rounded to float and the difference quotient
   divides by the step actually taken, (L(x+) - L(x-)) / (x+ - x-).
   The analytic gradient g and the numerical one d must satisfy
       |g - d| <= atol * max(1, max_j |g_j|) + rtol * |d|
   with per-op tolerances (see FD_* below). The float forward limits how well
   d is known: each output carries a relative rounding error of ~6e-8, which
   divided by 2h (h ~ 1e-3) leaves ~1e-4 of noise, growing with the size of
   the gradients (hence atol scaled by the largest one); linear ops have no
   truncation error, so they take a larger step and tighter tolerances.

   Other references: forwards within ~1e-5 (each check states its own), AdamW
   within 1e-5 relative of the double-precision torch formula, clipping and
   schedules within 1e-5 / 1e-6 relative. TEST_OPS_VERBOSE=1 prints the worst
   error of every finite-difference check; the largest errors per op are
   always printed at the end.

   Build: gcc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -I. -Itests
          tests/test_ops.c -o /tmp/to -lm     (also compiles as C++) */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Finite-difference steps (relative to the largest |x| of the buffer) and
   tolerances (|analytic - numeric| <= atol * max(1, max|g|) + rtol * |numeric|).
   Linear ops (embedding, linear, rope, residual): the objective is linear in
   each input, so a large step has no truncation error and 1e-4 holds easily.
   Nonlinear ops (rmsnorm, attention, swiglu, cross-entropy): step 1e-3,
   truncation error O(h^2) ~ 1e-6, rounding noise up to ~2e-4; tolerance 1e-3
   for rmsnorm and attention, 3e-4 for swiglu and cross-entropy. */
#define FD_LIN_H 1e-2
#define FD_LIN_ATOL 1e-4
#define FD_LIN_RTOL 1e-4
#define FD_NL_H 1e-3
#define FD_NL_ATOL 1e-3
#define FD_NL_RTOL 1e-3
/* Elementwise and per-row nonlinear ops (swiglu, cross-entropy): each input
   reaches few outputs, so the noise is smaller and 3e-4 holds. */
#define FD_ELT_ATOL 3e-4
#define FD_ELT_RTOL 3e-4

/* ------------------------------------------------------------------------- */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------- */

/* Test's own splitmix64, independent of lisa_rng. */
static uint64_t trng_state = 0x9a3c5e7f12345678ull;

static uint64_t trng_next(void) {
    uint64_t z = (trng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double trng_uniform(void) { /* [0, 1) */
    return (double)(trng_next() >> 11) * (1.0 / 9007199254740992.0);
}

static double trng_sym(void) { /* [-1, 1) */
    return 2.0 * trng_uniform() - 1.0;
}

static int trng_int(int n) {
    return (int)(trng_next() % (uint64_t)n);
}

static float *falloc(size_t n) {
    float *p = (float *)calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static float *fdup(const float *x, size_t n) {
    float *p = falloc(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

static void fill_sym(float *x, size_t n, double scale) {
    size_t i;
    for (i = 0; i < n; i++) x[i] = (float)(scale * trng_sym());
}

static double dot_d(const float *r, const float *x, size_t n) {
    double s = 0;
    size_t i;
    for (i = 0; i < n; i++) s += (double)r[i] * (double)x[i];
    return s;
}

static int all_finite(const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (!(x[i] == x[i]) || isinf(x[i])) return 0;
    return 1;
}

/* Statistics: the largest errors seen, by name, printed at the end. */
typedef struct stat_entry {
    const char *name;
    double max_err;    /* largest |analytic - reference| */
    double max_ratio;  /* largest error / tolerance */
} stat_entry;

static stat_entry stats[64];
static int n_stats;

static void stat_add(const char *name, double err, double ratio) {
    int i;
    for (i = 0; i < n_stats; i++)
        if (strcmp(stats[i].name, name) == 0) break;
    if (i == n_stats) {
        if (n_stats == 64) return;
        stats[i].name = name;
        stats[i].max_err = 0;
        stats[i].max_ratio = 0;
        n_stats++;
    }
    if (err > stats[i].max_err) stats[i].max_err = err;
    if (ratio > stats[i].max_ratio) stats[i].max_ratio = ratio;
}

/* Compare a float array with a double reference: one CHECK on the worst element. */
static void check_close_arr(const char *stat, const char *what, const float *got,
                            const double *ref, size_t n, double atol, double rtol) {
    size_t i, worst_i = 0;
    double worst = -1, max_err = 0;
    int finite = 1;
    for (i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        double ratio = err / (atol + rtol * fabs(ref[i]));
        if (!isfinite(got[i]) || !isfinite(ref[i])) {
            finite = 0;
            ratio = 1e30;
            err = 1e30;
        }
        if (err > max_err) max_err = err;
        if (ratio > worst) {
            worst = ratio;
            worst_i = i;
        }
    }
    if (n == 0) return;
    stat_add(stat, max_err, worst);
    CHECK(finite && worst <= 1.0, "%s: element %lu is %.9g, reference %.9g (atol %g rtol %g)",
          what, (unsigned long)worst_i, (double)got[worst_i], ref[worst_i], atol, rtol);
}

/* got == expected bit for bit (same float values, NaN excluded). */
static int same_floats(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* Backward accumulates: after = before + fresh (fresh: gradient into zeros). */
static void check_accumulates(const char *what, const float *after, const float *before,
                              const float *fresh, size_t n) {
    size_t i, worst_i = 0;
    double worst = 0, fmax = 0;
    /* Adding term by term into the buffer rounds at the scale of the partial
       sums, so the tolerance is relative to the buffer's largest gradient. */
    for (i = 0; i < n; i++)
        if (fabs((double)fresh[i]) > fmax) fmax = fabs((double)fresh[i]);
    for (i = 0; i < n; i++) {
        double want = (double)before[i] + (double)fresh[i];
        double tol = 1e-6 * fabs((double)before[i]) + 1e-5 * fmax + 1e-12;
        double ratio = fabs((double)after[i] - want) / tol;
        if (!(ratio <= worst)) {
            worst = ratio;
            worst_i = i;
        }
    }
    stat_add("accumulate", 0, worst);
    CHECK(worst <= 1.0,
          "%s: backward must add into the buffer: element %lu is %.9g, want %.9g + %.9g",
          what, (unsigned long)worst_i, (double)after[worst_i], (double)before[worst_i],
          (double)fresh[worst_i]);
}

/* Central finite differences of f with respect to every element of x,
   against the analytic gradient g. One CHECK per buffer, on the worst element. */
typedef double (*objective_fn)(void *ctx);

static void fd_check(const char *stat, const char *what, objective_fn f, void *ctx, float *x,
                     size_t n, const float *g, double h_rel, double atol, double rtol) {
    size_t i, worst_i = 0;
    double scale = 0, gscale = 1, h, worst = -1, worst_num = 0, max_err = 0;
    for (i = 0; i < n; i++)
        if (fabs((double)x[i]) > scale) scale = fabs((double)x[i]);
    if (scale == 0) scale = 1;
    h = h_rel * scale;
    /* The rounding noise of the difference quotient is ~6e-8 |out| / h_rel
       relative to the gradient's own scale, whatever the input's scale; so the
       absolute tolerance scales with the largest gradient when that exceeds 1. */
    for (i = 0; i < n; i++)
        if (fabs((double)g[i]) > gscale) gscale = fabs((double)g[i]);
    atol *= gscale;
    for (i = 0; i < n; i++) {
        float x0 = x[i];
        float xp = (float)((double)x0 + h);
        float xm = (float)((double)x0 - h);
        double lp, lm, num, err, ratio;
        x[i] = xp;
        lp = f(ctx);
        x[i] = xm;
        lm = f(ctx);
        x[i] = x0;
        num = (lp - lm) / ((double)xp - (double)xm);
        err = fabs((double)g[i] - num);
        ratio = err / (atol + rtol * fabs(num));
        /* A NaN or infinite gradient or difference quotient is the worst error
           (a NaN ratio would compare false and pass unnoticed). */
        if (!isfinite(g[i]) || !isfinite(num)) err = ratio = 1e30;
        if (err > max_err) max_err = err;
        if (ratio > worst) {
            worst = ratio;
            worst_i = i;
            worst_num = num;
        }
    }
    f(ctx); /* leave the forward's buffers as at x */
    if (n == 0) return;
    stat_add(stat, max_err, worst);
    if (getenv("TEST_OPS_VERBOSE"))
        printf("  %-60s max err %.3g, worst err/tol %.3g\n", what, max_err, worst);
    CHECK(worst <= 1.0, "%s: d/dx[%lu] analytic %.9g vs finite difference %.9g (atol %g rtol %g)",
          what, (unsigned long)worst_i, (double)g[worst_i], worst_num, atol, rtol);
}

/* ------------------------------------------------------------------------- */
/* Embedding                                                                  */
/* ------------------------------------------------------------------------- */

typedef struct emb_ctx {
    float *out, *table;
    const float *r;
    const int *tokens;
    int n, dim;
} emb_ctx;

static double emb_obj(void *p) {
    emb_ctx *c = (emb_ctx *)p;
    lisa_embedding_forward(c->out, c->tokens, c->table, c->n, c->dim);
    return dot_d(c->r, c->out, (size_t)c->n * c->dim);
}

static void test_embedding_shape(int n, int dim, int vocab) {
    char what[128];
    size_t nt = (size_t)vocab * dim, no = (size_t)n * dim;
    int *tokens = (int *)malloc(sizeof(int) * (size_t)n);
    float *table = falloc(nt), *out = falloc(no), *r = falloc(no);
    float *g = falloc(nt), *acc = falloc(nt), *before;
    double *ref = (double *)malloc(sizeof(double) * (no + nt));
    emb_ctx c;
    int i, j;
    fill_sym(table, nt, 1.0);
    fill_sym(r, no, 1.0);
    for (i = 0; i < n; i++) tokens[i] = trng_int(vocab);
    if (n > 1) tokens[n - 1] = tokens[0]; /* a repeated token: its gradients add */
    c.out = out;
    c.table = table;
    c.r = r;
    c.tokens = tokens;
    c.n = n;
    c.dim = dim;

    sprintf(what, "embedding forward n=%d dim=%d vocab=%d", n, dim, vocab);
    lisa_embedding_forward(out, tokens, table, n, dim);
    for (i = 0; i < n; i++)
        for (j = 0; j < dim; j++) ref[(size_t)i * dim + j] = table[(size_t)tokens[i] * dim + j];
    check_close_arr("embedding forward", what, out, ref, no, 0, 0);

    /* exact reference backward: scatter-add */
    for (i = 0; i < (int)nt; i++) ref[i] = 0;
    for (i = 0; i < n; i++)
        for (j = 0; j < dim; j++) ref[(size_t)tokens[i] * dim + j] += r[(size_t)i * dim + j];
    lisa_embedding_backward(g, r, tokens, n, dim);
    sprintf(what, "embedding backward n=%d dim=%d vocab=%d vs scatter-add", n, dim, vocab);
    check_close_arr("embedding backward ref", what, g, ref, nt, 1e-6, 1e-6);

    sprintf(what, "embedding d table n=%d dim=%d vocab=%d", n, dim, vocab);
    fd_check("embedding fd", what, emb_obj, &c, table, nt, g, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);

    fill_sym(acc, nt, 1.0);
    before = fdup(acc, nt);
    lisa_embedding_backward(acc, r, tokens, n, dim);
    check_accumulates(what, acc, before, g, nt);

    free(tokens);
    free(table);
    free(out);
    free(r);
    free(g);
    free(acc);
    free(before);
    free(ref);
}

static void test_embedding(void) {
    test_embedding_shape(1, 5, 3);
    test_embedding_shape(9, 7, 4);
    test_embedding_shape(6, 8, 11);
}

/* ------------------------------------------------------------------------- */
/* RMSNorm                                                                    */
/* ------------------------------------------------------------------------- */

typedef struct rms_ctx {
    float *out, *rstd, *x, *w;
    const float *r;
    int n, dim;
    float eps;
} rms_ctx;

static double rms_obj(void *p) {
    rms_ctx *c = (rms_ctx *)p;
    lisa_rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->n, c->dim, c->eps);
    return dot_d(c->r, c->out, (size_t)c->n * c->dim);
}

static void test_rmsnorm_shape(int n, int dim, double xscale, float eps) {
    char what[160];
    size_t nx = (size_t)n * dim;
    float *x = falloc(nx), *w = falloc((size_t)dim), *out = falloc(nx), *rstd = falloc((size_t)n);
    float *r = falloc(nx), *dx = falloc(nx), *dw = falloc((size_t)dim);
    float *dx2 = falloc(nx), *acc_x, *acc_w, *bx, *bw;
    double *ref = (double *)malloc(sizeof(double) * nx), *ref_rstd = (double *)malloc(sizeof(double) * (size_t)n);
    rms_ctx c;
    int i, j;
    fill_sym(x, nx, xscale);
    for (j = 0; j < dim; j++) w[j] = (float)(1.0 + 0.5 * trng_sym());
    fill_sym(r, nx, 1.0);
    c.out = out;
    c.rstd = rstd;
    c.x = x;
    c.w = w;
    c.r = r;
    c.n = n;
    c.dim = dim;
    c.eps = eps;

    lisa_rmsnorm_forward(out, rstd, x, w, n, dim, eps);
    for (i = 0; i < n; i++) {
        double ms = 0, rs;
        for (j = 0; j < dim; j++) ms += (double)x[(size_t)i * dim + j] * x[(size_t)i * dim + j];
        rs = 1.0 / sqrt(ms / dim + (double)eps);
        ref_rstd[i] = rs;
        for (j = 0; j < dim; j++) ref[(size_t)i * dim + j] = x[(size_t)i * dim + j] * rs * w[j];
    }
    sprintf(what, "rmsnorm forward n=%d dim=%d xscale=%g", n, dim, xscale);
    check_close_arr("rmsnorm forward", what, out, ref, nx, 1e-6, 1e-5);
    sprintf(what, "rmsnorm rstd n=%d dim=%d xscale=%g", n, dim, xscale);
    check_close_arr("rmsnorm forward", what, rstd, ref_rstd, (size_t)n, 0, 1e-5);

    lisa_rmsnorm_backward(dx, dw, r, x, w, rstd, n, dim);
    {
        /* analytic in double: dx_j = rs w_j g_j - x_j rs^3 / dim * sum_k g_k w_k x_k,
           dw_j = sum_rows g_j x_j rs */
        double *rdx = (double *)malloc(sizeof(double) * nx), *rdw = (double *)malloc(sizeof(double) * (size_t)dim);
        for (j = 0; j < dim; j++) rdw[j] = 0;
        for (i = 0; i < n; i++) {
            double rs = ref_rstd[i], dd = 0;
            const float *xi = x + (size_t)i * dim, *gi = r + (size_t)i * dim;
            for (j = 0; j < dim; j++) dd += (double)gi[j] * w[j] * xi[j];
            for (j = 0; j < dim; j++) {
                rdx[(size_t)i * dim + j] = rs * w[j] * gi[j] - xi[j] * rs * rs * rs / dim * dd;
                rdw[j] += (double)gi[j] * xi[j] * rs;
            }
        }
        sprintf(what, "rmsnorm dx n=%d dim=%d xscale=%g vs double reference backward", n, dim, xscale);
        check_close_arr("rmsnorm backward ref", what, dx, rdx, nx, 1e-5 / xscale, 1e-4);
        sprintf(what, "rmsnorm dw n=%d dim=%d xscale=%g vs double reference backward", n, dim, xscale);
        check_close_arr("rmsnorm backward ref", what, dw, rdw, (size_t)dim, 1e-5, 1e-4);
        free(rdx);
        free(rdw);
    }
    sprintf(what, "rmsnorm d x n=%d dim=%d xscale=%g", n, dim, xscale);
    fd_check("rmsnorm fd", what, rms_obj, &c, x, nx, dx, FD_NL_H, FD_NL_ATOL, FD_NL_RTOL);
    sprintf(what, "rmsnorm d w n=%d dim=%d xscale=%g", n, dim, xscale);
    fd_check("rmsnorm fd", what, rms_obj, &c, w, (size_t)dim, dw, FD_NL_H, FD_NL_ATOL, FD_NL_RTOL);

    /* NULL dw: accepted, dx unchanged bit for bit */
    lisa_rmsnorm_backward(dx2, NULL, r, x, w, rstd, n, dim);
    sprintf(what, "rmsnorm n=%d dim=%d: dx with dw NULL equals dx with dw", n, dim);
    CHECK(same_floats(dx2, dx, nx), "%s", what);

    /* accumulation */
    acc_x = falloc(nx);
    acc_w = falloc((size_t)dim);
    fill_sym(acc_x, nx, 1.0);
    fill_sym(acc_w, (size_t)dim, 1.0);
    bx = fdup(acc_x, nx);
    bw = fdup(acc_w, (size_t)dim);
    lisa_rmsnorm_backward(acc_x, acc_w, r, x, w, rstd, n, dim);
    sprintf(what, "rmsnorm dx n=%d dim=%d", n, dim);
    check_accumulates(what, acc_x, bx, dx, nx);
    sprintf(what, "rmsnorm dw n=%d dim=%d", n, dim);
    check_accumulates(what, acc_w, bw, dw, (size_t)dim);

    free(x);
    free(w);
    free(out);
    free(rstd);
    free(r);
    free(dx);
    free(dw);
    free(dx2);
    free(acc_x);
    free(acc_w);
    free(bx);
    free(bw);
    free(ref);
    free(ref_rstd);
}

static void test_rmsnorm(void) {
    test_rmsnorm_shape(1, 5, 1.0, 1e-5f);
    test_rmsnorm_shape(3, 7, 1.0, 1e-5f);
    test_rmsnorm_shape(4, 16, 3.0, 1e-5f);
    test_rmsnorm_shape(2, 6, 0.1, 1e-2f); /* eps comparable to mean(x^2) */
}

/* ------------------------------------------------------------------------- */
/* Linear                                                                     */
/* ------------------------------------------------------------------------- */

typedef struct lin_ctx {
    float *out, *x, *w;
    const float *r;
    int n, in_dim, out_dim;
} lin_ctx;

static double lin_obj(void *p) {
    lin_ctx *c = (lin_ctx *)p;
    lisa_linear_forward(c->out, c->x, c->w, c->n, c->in_dim, c->out_dim);
    return dot_d(c->r, c->out, (size_t)c->n * c->out_dim);
}

static void test_linear_shape(int n, int in_dim, int out_dim) {
    char what[160];
    size_t nx = (size_t)n * in_dim, nw = (size_t)out_dim * in_dim, no = (size_t)n * out_dim;
    float *x = falloc(nx), *w = falloc(nw), *out = falloc(no), *r = falloc(no);
    float *dx = falloc(nx), *dw = falloc(nw), *dx2 = falloc(nx), *dw2 = falloc(nw);
    float *acc_x = falloc(nx), *acc_w = falloc(nw), *bx, *bw;
    double *ref = (double *)malloc(sizeof(double) * no);
    double max_ratio = 0;
    lin_ctx c;
    int i, j, k;
    fill_sym(x, nx, 1.0);
    fill_sym(w, nw, 0.5);
    fill_sym(r, no, 1.0);
    c.out = out;
    c.x = x;
    c.w = w;
    c.r = r;
    c.n = n;
    c.in_dim = in_dim;
    c.out_dim = out_dim;

    lisa_linear_forward(out, x, w, n, in_dim, out_dim);
    for (i = 0; i < n; i++)
        for (j = 0; j < out_dim; j++) {
            double s = 0, sa = 0, err;
            for (k = 0; k < in_dim; k++) {
                s += (double)x[(size_t)i * in_dim + k] * w[(size_t)j * in_dim + k];
                sa += fabs((double)x[(size_t)i * in_dim + k] * w[(size_t)j * in_dim + k]);
            }
            ref[(size_t)i * out_dim + j] = s;
            /* fp32 dot product: error bounded by ~ in_dim * 6e-8 * sum |x w| */
            err = fabs(out[(size_t)i * out_dim + j] - s);
            if (err / (1e-6 * sa + 1e-7) > max_ratio) max_ratio = err / (1e-6 * sa + 1e-7);
        }
    sprintf(what, "linear forward n=%d in=%d out=%d", n, in_dim, out_dim);
    check_close_arr("linear forward", what, out, ref, no, 1e-5, 1e-5);
    CHECK(max_ratio <= 1.0, "%s: error %.3g x (1e-6 sum|x w|)", what, max_ratio);

    lisa_linear_backward(dx, dw, r, x, w, n, in_dim, out_dim);
    {
        /* analytic in double: dx = dout @ w, dw = dout^T @ x */
        double *rdx = (double *)malloc(sizeof(double) * nx), *rdw = (double *)malloc(sizeof(double) * nw);
        for (i = 0; i < (int)nx; i++) rdx[i] = 0;
        for (i = 0; i < (int)nw; i++) rdw[i] = 0;
        for (i = 0; i < n; i++)
            for (j = 0; j < out_dim; j++)
                for (k = 0; k < in_dim; k++) {
                    double g = r[(size_t)i * out_dim + j];
                    rdx[(size_t)i * in_dim + k] += g * w[(size_t)j * in_dim + k];
                    rdw[(size_t)j * in_dim + k] += g * x[(size_t)i * in_dim + k];
                }
        sprintf(what, "linear dx n=%d in=%d out=%d vs double reference backward", n, in_dim, out_dim);
        check_close_arr("linear backward ref", what, dx, rdx, nx, 1e-5, 1e-5);
        sprintf(what, "linear dw n=%d in=%d out=%d vs double reference backward", n, in_dim, out_dim);
        check_close_arr("linear backward ref", what, dw, rdw, nw, 1e-5, 1e-5);
        free(rdx);
        free(rdw);
    }
    sprintf(what, "linear d x n=%d in=%d out=%d", n, in_dim, out_dim);
    fd_check("linear fd", what, lin_obj, &c, x, nx, dx, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);
    sprintf(what, "linear d w n=%d in=%d out=%d", n, in_dim, out_dim);
    fd_check("linear fd", what, lin_obj, &c, w, nw, dw, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);

    /* NULL dw / NULL dx */
    lisa_linear_backward(dx2, NULL, r, x, w, n, in_dim, out_dim);
    CHECK(same_floats(dx2, dx, nx), "linear n=%d in=%d out=%d: dx with dw NULL equals dx with dw",
          n, in_dim, out_dim);
    lisa_linear_backward(NULL, dw2, r, x, w, n, in_dim, out_dim);
    CHECK(same_floats(dw2, dw, nw), "linear n=%d in=%d out=%d: dw with dx NULL equals dw with dx",
          n, in_dim, out_dim);

    fill_sym(acc_x, nx, 1.0);
    fill_sym(acc_w, nw, 1.0);
    bx = fdup(acc_x, nx);
    bw = fdup(acc_w, nw);
    lisa_linear_backward(acc_x, acc_w, r, x, w, n, in_dim, out_dim);
    sprintf(what, "linear dx n=%d in=%d out=%d", n, in_dim, out_dim);
    check_accumulates(what, acc_x, bx, dx, nx);
    sprintf(what, "linear dw n=%d in=%d out=%d", n, in_dim, out_dim);
    check_accumulates(what, acc_w, bw, dw, nw);

    free(x);
    free(w);
    free(out);
    free(r);
    free(dx);
    free(dw);
    free(dx2);
    free(dw2);
    free(acc_x);
    free(acc_w);
    free(bx);
    free(bw);
    free(ref);
}

/* Each row of an n-row product equals the same row computed alone (the
   one-row path generation uses), to the bit: forward, input gradient and
   weight gradient, fresh and accumulating. */
static void test_linear_rows(int n, int in_dim, int out_dim) {
    size_t nx = (size_t)n * in_dim, nw = (size_t)out_dim * in_dim, no = (size_t)n * out_dim;
    float *x = falloc(nx), *w = falloc(nw), *r = falloc(no), *out = falloc(no), *dx = falloc(nx);
    float *dw = falloc(nw), *one = falloc(out_dim > in_dim ? out_dim : in_dim), *col = falloc(n);
    float *dw1 = falloc(in_dim);
    int i, j, out_same = 1, dx_same = 1, dw_same = 1;
    fill_sym(x, nx, 1.0);
    fill_sym(w, nw, 0.5);
    fill_sym(r, no, 1.0);
    fill_sym(dx, nx, 1.0);
    fill_sym(dw, nw, 1.0);
    lisa_linear_forward(out, x, w, n, in_dim, out_dim);
    for (i = 0; i < n; i++) {
        lisa_linear_forward(one, x + (size_t)i * in_dim, w, 1, in_dim, out_dim);
        out_same &= same_floats(one, out + (size_t)i * out_dim, (size_t)out_dim);
    }
    {
        float *dx0 = fdup(dx, nx), *dw0 = fdup(dw, nw);
        lisa_linear_backward(dx, dw, r, x, w, n, in_dim, out_dim);
        for (i = 0; i < n; i++) { /* dx's row i alone: dout's row i */
            memcpy(one, dx0 + (size_t)i * in_dim, (size_t)in_dim * sizeof(float));
            lisa_linear_backward(one, NULL, r + (size_t)i * out_dim, x, w, 1, in_dim, out_dim);
            dx_same &= same_floats(one, dx + (size_t)i * in_dim, (size_t)in_dim);
        }
        for (j = 0; j < out_dim; j++) { /* dw's row j alone: an output of one feature */
            for (i = 0; i < n; i++) col[i] = r[(size_t)i * out_dim + j];
            memcpy(dw1, dw0 + (size_t)j * in_dim, (size_t)in_dim * sizeof(float));
            lisa_linear_backward(NULL, dw1, col, x, w + (size_t)j * in_dim, n, in_dim, 1);
            dw_same &= same_floats(dw1, dw + (size_t)j * in_dim, (size_t)in_dim);
        }
        free(dx0);
        free(dw0);
    }
    CHECK(out_same, "linear forward n=%d in=%d out=%d: each row equals the one-row product bitwise", n, in_dim, out_dim);
    CHECK(dx_same, "linear dx n=%d in=%d out=%d: each row equals the one-row product bitwise", n, in_dim, out_dim);
    CHECK(dw_same, "linear dw n=%d in=%d out=%d: each row equals the one-row product bitwise", n, in_dim, out_dim);
    free(x);
    free(w);
    free(r);
    free(out);
    free(dx);
    free(dw);
    free(one);
    free(col);
    free(dw1);
}

/* ------------------------------------------------------------------------- */
/* LoRA linear                                                                */
/* ------------------------------------------------------------------------- */

typedef struct lora_ctx {
    float *out, *xa, *x, *w, *a, *b;
    const float *r;
    float scale;
    int n, in_dim, out_dim, rank;
} lora_ctx;

static double lora_obj(void *p) {
    lora_ctx *c = (lora_ctx *)p;
    lisa_lora_linear_forward(c->out, c->xa, c->x, c->w, c->a, c->b, c->scale, c->n, c->in_dim, c->out_dim,
                             c->rank);
    return dot_d(c->r, c->out, (size_t)c->n * c->out_dim);
}

/* Forward against x W^T + scale (x A^T) B^T in double; backward against finite
   differences in x, W, A and B; NULL gradients skip their products and leave
   the others bit-identical; backward adds into what the buffers hold. */
static void test_lora_shape(int n, int in_dim, int out_dim, int rank, float scale) {
    char what[160];
    size_t nx = (size_t)n * in_dim, nw = (size_t)out_dim * in_dim, no = (size_t)n * out_dim;
    size_t na = (size_t)rank * in_dim, nb = (size_t)out_dim * rank, nr = (size_t)n * rank;
    float *x = falloc(nx), *w = falloc(nw), *a = falloc(na), *b = falloc(nb), *out = falloc(no);
    float *r = falloc(no), *xa = falloc(nr), *du = falloc(nr);
    float *dx = falloc(nx), *dw = falloc(nw), *da = falloc(na), *db = falloc(nb);
    float *dx2 = falloc(nx), *da2 = falloc(na), *db2 = falloc(nb), *bx, *bb;
    double *ref = (double *)malloc(sizeof(double) * no);
    lora_ctx c;
    int i, j, k, q;
    fill_sym(x, nx, 1.0);
    fill_sym(w, nw, 0.5);
    fill_sym(a, na, 0.5);
    fill_sym(b, nb, 0.5);
    fill_sym(r, no, 1.0);
    c.out = out; c.xa = xa; c.x = x; c.w = w; c.a = a; c.b = b; c.r = r; c.scale = scale;
    c.n = n; c.in_dim = in_dim; c.out_dim = out_dim; c.rank = rank;
    lora_obj(&c);
    for (i = 0; i < n; i++)
        for (j = 0; j < out_dim; j++) {
            double s = 0;
            for (k = 0; k < in_dim; k++) s += (double)x[(size_t)i * in_dim + k] * w[(size_t)j * in_dim + k];
            for (q = 0; q < rank; q++) {
                double u = 0;
                for (k = 0; k < in_dim; k++) u += (double)x[(size_t)i * in_dim + k] * a[(size_t)q * in_dim + k];
                s += scale * u * b[(size_t)j * rank + q];
            }
            ref[(size_t)i * out_dim + j] = s;
        }
    sprintf(what, "lora forward n=%d in=%d out=%d rank=%d", n, in_dim, out_dim, rank);
    check_close_arr("lora forward", what, out, ref, no, 1e-5, 1e-5);

    lisa_lora_linear_backward(dx, dw, da, db, du, r, x, xa, w, a, b, scale, n, in_dim, out_dim, rank);
    sprintf(what, "lora d x n=%d in=%d out=%d rank=%d", n, in_dim, out_dim, rank);
    fd_check("lora fd", what, lora_obj, &c, x, nx, dx, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);
    sprintf(what, "lora d W n=%d in=%d out=%d rank=%d", n, in_dim, out_dim, rank);
    fd_check("lora fd", what, lora_obj, &c, w, nw, dw, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);
    sprintf(what, "lora d A n=%d in=%d out=%d rank=%d", n, in_dim, out_dim, rank);
    fd_check("lora fd", what, lora_obj, &c, a, na, da, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);
    sprintf(what, "lora d B n=%d in=%d out=%d rank=%d", n, in_dim, out_dim, rank);
    fd_check("lora fd", what, lora_obj, &c, b, nb, db, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);

    /* frozen W: the adapters' and the input's gradients are unchanged */
    lisa_lora_linear_backward(dx2, NULL, da2, db2, du, r, x, xa, w, a, b, scale, n, in_dim, out_dim, rank);
    CHECK(same_floats(dx2, dx, nx) && same_floats(da2, da, na) && same_floats(db2, db, nb),
          "lora n=%d in=%d out=%d rank=%d: dx, dA, dB with dW NULL equal those with dW", n, in_dim, out_dim, rank);
    memset(dx2, 0, nx * sizeof(float));
    lisa_lora_linear_backward(dx2, NULL, NULL, NULL, du, r, x, xa, w, a, b, scale, n, in_dim, out_dim, rank);
    CHECK(same_floats(dx2, dx, nx), "lora n=%d in=%d out=%d rank=%d: dx alone equals dx with every gradient",
          n, in_dim, out_dim, rank);

    bx = fdup(dx, nx);
    bb = fdup(db, nb);
    lisa_lora_linear_backward(dx, NULL, NULL, db, du, r, x, xa, w, a, b, scale, n, in_dim, out_dim, rank);
    sprintf(what, "lora dx n=%d in=%d out=%d rank=%d", n, in_dim, out_dim, rank);
    check_accumulates(what, dx, bx, dx2, nx);
    sprintf(what, "lora dB n=%d in=%d out=%d rank=%d", n, in_dim, out_dim, rank);
    check_accumulates(what, db, bb, db2, nb);

    free(x); free(w); free(a); free(b); free(out); free(r); free(xa); free(du);
    free(dx); free(dw); free(da); free(db); free(dx2); free(da2); free(db2); free(bx); free(bb);
    free(ref);
}

static void test_lora(void) {
    test_lora_shape(1, 5, 3, 1, 2.0f);
    test_lora_shape(7, 9, 6, 3, 0.5f);
    test_lora_shape(4, 16, 12, 8, 2.0f);
}

static void test_linear(void) {
    test_linear_shape(1, 5, 3);
    test_linear_shape(9, 7, 5);
    test_linear_shape(4, 16, 12);
    test_linear_shape(3, 1, 1);
    test_linear_shape(2, 33, 17); /* past any 4/8/16-wide vector loop */
    test_linear_shape(67, 19, 66); /* past 64-row and 64-column cache blocks */
    test_linear_rows(5, 37, 45);
    test_linear_rows(13, 300, 70); /* past a k-slice */
    test_linear_rows(3, 40, 1100); /* past a column panel; columns split among threads */
}

/* ------------------------------------------------------------------------- */
/* RoPE                                                                       */
/* ------------------------------------------------------------------------- */

typedef struct rope_ctx {
    float *out, *x;
    const float *r;
    int B, T, H, hd, pos0;
    float theta;
} rope_ctx;

static double rope_obj(void *p) {
    rope_ctx *c = (rope_ctx *)p;
    lisa_rope_forward(c->out, c->x, c->B, c->T, c->H, c->hd, c->pos0, c->theta);
    return dot_d(c->r, c->out, (size_t)c->B * c->T * c->H * c->hd);
}

static void test_rope_shape(int B, int T, int H, int hd, int pos0, float theta) {
    char what[160];
    size_t nx = (size_t)B * T * H * hd;
    float *x = falloc(nx), *out = falloc(nx), *r = falloc(nx), *dx = falloc(nx);
    float *inplace, *acc, *before;
    double *ref = (double *)malloc(sizeof(double) * nx);
    rope_ctx c;
    int b, t, h, i;
    fill_sym(x, nx, 1.0);
    fill_sym(r, nx, 1.0);
    c.out = out;
    c.x = x;
    c.r = r;
    c.B = B;
    c.T = T;
    c.H = H;
    c.hd = hd;
    c.pos0 = pos0;
    c.theta = theta;

    lisa_rope_forward(out, x, B, T, H, hd, pos0, theta);
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++)
            for (h = 0; h < H; h++)
                for (i = 0; i < hd / 2; i++) {
                    size_t o = (((size_t)b * T + t) * H + h) * hd + 2 * (size_t)i;
                    double ang = (double)(pos0 + t) * pow((double)theta, -2.0 * i / hd);
                    double x0 = x[o], x1 = x[o + 1];
                    ref[o] = x0 * cos(ang) - x1 * sin(ang);
                    ref[o + 1] = x0 * sin(ang) + x1 * cos(ang);
                }
    sprintf(what, "rope forward B=%d T=%d H=%d hd=%d pos0=%d theta=%g", B, T, H, hd, pos0, theta);
    /* a float angle (pos * freq) is off by ~6e-8 * pos radians */
    check_close_arr("rope forward", what, out, ref, nx, 2e-6 + 2e-7 * (pos0 + T), 1e-6);

    inplace = fdup(x, nx);
    lisa_rope_forward(inplace, inplace, B, T, H, hd, pos0, theta);
    sprintf(what, "rope forward in place (out == x) B=%d T=%d H=%d hd=%d pos0=%d", B, T, H, hd, pos0);
    check_close_arr("rope forward", what, inplace, ref, nx, 2e-6 + 2e-7 * (pos0 + T), 1e-6);
    CHECK(same_floats(inplace, out, nx), "%s: same result as out-of-place", what);

    lisa_rope_backward(dx, r, B, T, H, hd, pos0, theta);
    sprintf(what, "rope d x B=%d T=%d H=%d hd=%d pos0=%d theta=%g", B, T, H, hd, pos0, theta);
    fd_check("rope fd", what, rope_obj, &c, x, nx, dx, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);

    acc = falloc(nx);
    fill_sym(acc, nx, 1.0);
    before = fdup(acc, nx);
    lisa_rope_backward(acc, r, B, T, H, hd, pos0, theta);
    check_accumulates(what, acc, before, dx, nx);

    free(x);
    free(out);
    free(r);
    free(dx);
    free(inplace);
    free(acc);
    free(before);
    free(ref);
}

/* Turning by a precomputed table (as the model's layers do) gives the bits
   of the turn that computes the angles itself, forward and back; head_dim
   260 spans two chunks of pairs. */
static void test_rope_table(int B, int T, int n_heads, int head_dim, int pos0, float theta) {
    size_t n = (size_t)B * T * n_heads * head_dim;
    float *x = falloc(n), *a = falloc(n), *b = falloc(n), *table = falloc((size_t)T * head_dim);
    int sign, same = 1;
    fill_sym(x, n, 2.0);
    lisa__rope_table(table, T, head_dim, pos0, theta);
    for (sign = -1; sign <= 1; sign += 2) {
        memcpy(a, x, n * sizeof(float));
        memcpy(b, x, n * sizeof(float));
        lisa__rope_turn(a, a, NULL, NULL, B, T, n_heads, 0, head_dim, pos0, theta, (float)sign, 0, NULL);
        lisa__rope_turn(b, b, NULL, NULL, B, T, n_heads, 0, head_dim, pos0, theta, (float)sign, 0, table);
        same &= memcmp(a, b, n * sizeof(float)) == 0;
    }
    CHECK(same, "rope B %d T %d heads %d head_dim %d pos0 %d: the table's turn equals the computed one bitwise", B,
          T, n_heads, head_dim, pos0);
    free(x);
    free(a);
    free(b);
    free(table);
}

static void test_rope(void) {
    test_rope_table(2, 9, 3, 8, 0, 10000.0f);
    test_rope_table(1, 5, 2, 260, 11, 500000.0f);
    test_rope_shape(1, 1, 1, 2, 0, 10000.0f);
    test_rope_shape(2, 5, 3, 4, 7, 10000.0f);
    test_rope_shape(1, 9, 2, 6, 0, 10000.0f);
    test_rope_shape(2, 3, 2, 8, 100, 500000.0f);
    test_rope_shape(1, 7, 4, 10, 13, 100.0f);
}

/* ------------------------------------------------------------------------- */
/* Attention                                                                  */
/* ------------------------------------------------------------------------- */

typedef struct attn_ctx {
    float *out, *lse, *q, *k, *v;
    const float *r;
    int B, T, H, KV, hd;
} attn_ctx;

static double attn_obj(void *p) {
    attn_ctx *c = (attn_ctx *)p;
    lisa_attention_forward(c->out, c->lse, c->q, c->k, c->v, c->B, c->T, c->H, c->KV, c->hd);
    return dot_d(c->r, c->out, (size_t)c->B * c->T * c->H * c->hd);
}

/* Full-matrix reference: scores (T x T) with -inf above the diagonal, softmax,
   then @ v. Query head h reads kv head h / (H / KV) (LLaMA's repeat_kv). */
static void attn_reference(double *out, double *lse, const float *q, const float *k,
                           const float *v, int B, int T, int H, int KV, int hd) {
    double *s = (double *)malloc(sizeof(double) * (size_t)T * T);
    int b, h, i, j, d, rep = H / KV;
    double scale = 1.0 / sqrt((double)hd);
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++) {
            int kh = h / rep;
            for (i = 0; i < T; i++)
                for (j = 0; j < T; j++) {
                    const float *qi = q + (((size_t)b * T + i) * H + h) * hd;
                    const float *kj = k + (((size_t)b * T + j) * KV + kh) * hd;
                    double dd = 0;
                    for (d = 0; d < hd; d++) dd += (double)qi[d] * kj[d];
                    s[(size_t)i * T + j] = j <= i ? dd * scale : -INFINITY;
                }
            for (i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0, l;
                double *o = out + (((size_t)b * T + i) * H + h) * hd;
                for (j = 0; j < T; j++)
                    if (s[(size_t)i * T + j] > mx) mx = s[(size_t)i * T + j];
                for (j = 0; j < T; j++) sum += exp(s[(size_t)i * T + j] - mx);
                l = mx + log(sum);
                lse[((size_t)b * H + h) * T + i] = l;
                for (d = 0; d < hd; d++) o[d] = 0;
                for (j = 0; j < T; j++) {
                    double pr = exp(s[(size_t)i * T + j] - l);
                    const float *vj = v + (((size_t)b * T + j) * KV + kh) * hd;
                    for (d = 0; d < hd; d++) o[d] += pr * vj[d];
                }
            }
        }
    free(s);
}

/* Reference backward in double: dv_j += p_ij dout_i; ds_ij = p_ij (dout_i . v_j
   - dout_i . out_i) / sqrt(hd); dq_i += ds_ij k_j; dk_j += ds_ij q_i. */
static void attn_reference_backward(double *dq, double *dk, double *dv, const float *dout,
                                    const float *q, const float *k, const float *v, int B, int T,
                                    int H, int KV, int hd) {
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd, n;
    double *out = (double *)malloc(sizeof(double) * nq);
    double *lse = (double *)malloc(sizeof(double) * (size_t)B * H * T);
    double scale = 1.0 / sqrt((double)hd);
    int b, h, i, j, d, rep = H / KV;
    attn_reference(out, lse, q, k, v, B, T, H, KV, hd);
    for (n = 0; n < nq; n++) dq[n] = 0;
    for (n = 0; n < nk; n++) dk[n] = dv[n] = 0;
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            for (i = 0; i < T; i++) {
                size_t oq = (((size_t)b * T + i) * H + h) * hd;
                double D = 0;
                for (d = 0; d < hd; d++) D += (double)dout[oq + d] * out[oq + d];
                for (j = 0; j <= i; j++) {
                    size_t ok = (((size_t)b * T + j) * KV + h / rep) * hd;
                    double sc = 0, dp = 0, pr, ds;
                    for (d = 0; d < hd; d++) {
                        sc += (double)q[oq + d] * k[ok + d];
                        dp += (double)dout[oq + d] * v[ok + d];
                    }
                    pr = exp(sc * scale - lse[((size_t)b * H + h) * T + i]);
                    ds = pr * (dp - D) * scale;
                    for (d = 0; d < hd; d++) {
                        dv[ok + d] += pr * dout[oq + d];
                        dq[oq + d] += ds * k[ok + d];
                        dk[ok + d] += ds * q[oq + d];
                    }
                }
            }
    free(out);
    free(lse);
}

/* Forward (out, lse) and backward (dq, dk, dv, which start at zero) of
   q, k, v with output gradient r, checked against the double references: the
   analytic gradient in double, a tighter check than finite differences. */
static void attention_vs_reference(float *out, float *lse, float *dq, float *dk, float *dv, const float *q,
                                   const float *k, const float *v, const float *r, int B, int T, int H, int KV,
                                   int hd) {
    char what[160], shape[96];
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd, nl = (size_t)B * H * T;
    double *ref = (double *)malloc(sizeof(double) * nq), *ref_lse = (double *)malloc(sizeof(double) * nl);
    double *rdq = (double *)malloc(sizeof(double) * nq), *rdk = (double *)malloc(sizeof(double) * nk);
    double *rdv = (double *)malloc(sizeof(double) * nk);
    sprintf(shape, "B=%d T=%d H=%d KV=%d hd=%d", B, T, H, KV, hd);
    lisa_attention_forward(out, lse, q, k, v, B, T, H, KV, hd);
    attn_reference(ref, ref_lse, q, k, v, B, T, H, KV, hd);
    sprintf(what, "attention forward out %s", shape);
    check_close_arr("attention forward", what, out, ref, nq, 1e-5, 1e-5);
    sprintf(what, "attention forward lse %s", shape);
    check_close_arr("attention forward", what, lse, ref_lse, nl, 1e-5, 1e-5);
    lisa_attention_backward(dq, dk, dv, r, out, lse, q, k, v, B, T, H, KV, hd);
    attn_reference_backward(rdq, rdk, rdv, r, q, k, v, B, T, H, KV, hd);
    sprintf(what, "attention dq %s vs double reference backward", shape);
    check_close_arr("attention backward ref", what, dq, rdq, nq, 1e-5, 1e-4);
    sprintf(what, "attention dk %s vs double reference backward", shape);
    check_close_arr("attention backward ref", what, dk, rdk, nk, 1e-5, 1e-4);
    sprintf(what, "attention dv %s vs double reference backward", shape);
    check_close_arr("attention backward ref", what, dv, rdv, nk, 1e-5, 1e-4);
    free(ref);
    free(ref_lse);
    free(rdq);
    free(rdk);
    free(rdv);
}

static void test_attention_shape(int B, int T, int H, int KV, int hd, double qk_scale) {
    char what[160], shape[96];
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd, nl = (size_t)B * H * T;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *out = falloc(nq), *lse = falloc(nl);
    float *r = falloc(nq), *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk);
    float *aq = falloc(nq), *ak = falloc(nk), *av = falloc(nk), *bq, *bk, *bv;
    attn_ctx c;
    fill_sym(q, nq, qk_scale);
    fill_sym(k, nk, qk_scale);
    fill_sym(v, nk, 1.0);
    fill_sym(r, nq, 1.0);
    c.out = out;
    c.lse = lse;
    c.q = q;
    c.k = k;
    c.v = v;
    c.r = r;
    c.B = B;
    c.T = T;
    c.H = H;
    c.KV = KV;
    c.hd = hd;
    sprintf(shape, "B=%d T=%d H=%d KV=%d hd=%d", B, T, H, KV, hd);
    attention_vs_reference(out, lse, dq, dk, dv, q, k, v, r, B, T, H, KV, hd);
    sprintf(what, "attention d q %s", shape);
    fd_check("attention fd", what, attn_obj, &c, q, nq, dq, FD_NL_H, FD_NL_ATOL, FD_NL_RTOL);
    sprintf(what, "attention d k %s", shape);
    fd_check("attention fd", what, attn_obj, &c, k, nk, dk, FD_NL_H, FD_NL_ATOL, FD_NL_RTOL);
    sprintf(what, "attention d v %s", shape);
    fd_check("attention fd", what, attn_obj, &c, v, nk, dv, FD_NL_H, FD_NL_ATOL, FD_NL_RTOL);

    fill_sym(aq, nq, 1.0);
    fill_sym(ak, nk, 1.0);
    fill_sym(av, nk, 1.0);
    bq = fdup(aq, nq);
    bk = fdup(ak, nk);
    bv = fdup(av, nk);
    lisa_attention_backward(aq, ak, av, r, out, lse, q, k, v, B, T, H, KV, hd);
    sprintf(what, "attention dq %s", shape);
    check_accumulates(what, aq, bq, dq, nq);
    sprintf(what, "attention dk %s", shape);
    check_accumulates(what, ak, bk, dk, nk);
    sprintf(what, "attention dv %s", shape);
    check_accumulates(what, av, bv, dv, nk);

    free(q);
    free(k);
    free(v);
    free(out);
    free(lse);
    free(r);
    free(dq);
    free(dk);
    free(dv);
    free(aq);
    free(ak);
    free(av);
    free(bq);
    free(bk);
    free(bv);
}

/* A sequence longer than one key chunk (LISA__KC = 256) and several blocks
   of query rows and keys: forward and backward against the double
   references (finite differences would take too long here). */
static void test_attention_long(int B, int T, int H, int KV, int hd) {
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd, nl = (size_t)B * H * T;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *out = falloc(nq), *lse = falloc(nl);
    float *r = falloc(nq), *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk);
    fill_sym(q, nq, 2.0);
    fill_sym(k, nk, 2.0);
    fill_sym(v, nk, 1.0);
    fill_sym(r, nq, 1.0);
    attention_vs_reference(out, lse, dq, dk, dv, q, k, v, r, B, T, H, KV, hd);
    free(q);
    free(k);
    free(v);
    free(out);
    free(lse);
    free(r);
    free(dq);
    free(dk);
    free(dv);
}

/* Row i of a causal attention must not depend on k, v at t > i; and a gradient
   flowing only into rows <= i must give zero dk, dv at t > i and zero dq at t > i. */
static void test_attention_causal(int B, int T, int H, int KV, int hd) {
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd, nl = (size_t)B * H * T;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *k2 = falloc(nk), *v2 = falloc(nk);
    float *out = falloc(nq), *lse = falloc(nl), *out2 = falloc(nq), *lse2 = falloc(nl);
    float *dout = falloc(nq), *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk);
    int cuts[3], ci, b, t, h;
    cuts[0] = 0;
    cuts[1] = T / 2;
    cuts[2] = T - 2;
    fill_sym(q, nq, 1.0);
    fill_sym(k, nk, 1.0);
    fill_sym(v, nk, 1.0);
    lisa_attention_forward(out, lse, q, k, v, B, T, H, KV, hd);
    for (ci = 0; ci < 3; ci++) {
        int cut = cuts[ci], same = 1, later_changed = 0, grads_zero = 1;
        memcpy(k2, k, nk * sizeof(float));
        memcpy(v2, v, nk * sizeof(float));
        for (b = 0; b < B; b++)
            for (t = cut + 1; t < T; t++) {
                size_t o = ((size_t)b * T + t) * KV * hd;
                fill_sym(k2 + o, (size_t)KV * hd, 50.0);
                fill_sym(v2 + o, (size_t)KV * hd, 50.0);
            }
        lisa_attention_forward(out2, lse2, q, k2, v2, B, T, H, KV, hd);
        for (b = 0; b < B; b++)
            for (t = 0; t < T; t++) {
                size_t o = ((size_t)b * T + t) * H * hd;
                int eq = memcmp(out + o, out2 + o, sizeof(float) * H * hd) == 0;
                for (h = 0; h < H; h++)
                    if (lse[((size_t)b * H + h) * T + t] != lse2[((size_t)b * H + h) * T + t]) eq = 0;
                if (t <= cut && !eq) same = 0;
                if (t > cut && !eq) later_changed = 1;
            }
        CHECK(same, "attention B=%d T=%d H=%d KV=%d: rows <= %d changed when k, v after them changed",
              B, T, H, KV, cut);
        CHECK(later_changed, "attention B=%d T=%d H=%d KV=%d: rows > %d should change (test sanity)",
              B, T, H, KV, cut);

        /* backward with dout only on rows <= cut */
        memset(dout, 0, nq * sizeof(float));
        memset(dq, 0, nq * sizeof(float));
        memset(dk, 0, nk * sizeof(float));
        memset(dv, 0, nk * sizeof(float));
        for (b = 0; b < B; b++)
            fill_sym(dout + (size_t)b * T * H * hd, (size_t)(cut + 1) * H * hd, 1.0);
        lisa_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, B, T, H, KV, hd);
        for (b = 0; b < B; b++)
            for (t = cut + 1; t < T; t++) {
                size_t oq = ((size_t)b * T + t) * H * hd, ok = ((size_t)b * T + t) * KV * hd;
                size_t d;
                for (d = 0; d < (size_t)H * hd; d++)
                    if (dq[oq + d] != 0) grads_zero = 0;
                for (d = 0; d < (size_t)KV * hd; d++)
                    if (dk[ok + d] != 0 || dv[ok + d] != 0) grads_zero = 0;
            }
        CHECK(grads_zero && all_finite(dq, nq) && all_finite(dk, nk) && all_finite(dv, nk),
              "attention B=%d T=%d H=%d KV=%d: gradient from rows <= %d reaches t > %d", B, T, H, KV,
              cut, cut);
    }
    free(q);
    free(k);
    free(v);
    free(k2);
    free(v2);
    free(out);
    free(lse);
    free(out2);
    free(lse2);
    free(dout);
    free(dq);
    free(dk);
    free(dv);
}

/* Scores up to ~100: the softmax must not overflow; forward and backward
   against the double reference (float scores of size 100 carry ~1e-5 error). */
static void test_attention_large_scores(int B, int T, int H, int KV, int hd, double qk_scale) {
    char what[160];
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd, nl = (size_t)B * H * T;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *out = falloc(nq), *lse = falloc(nl);
    float *dout = falloc(nq), *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk);
    double *ref = (double *)malloc(sizeof(double) * nq), *ref_lse = (double *)malloc(sizeof(double) * nl);
    double *rdq = (double *)malloc(sizeof(double) * nq), *rdk = (double *)malloc(sizeof(double) * nk);
    double *rdv = (double *)malloc(sizeof(double) * nk);
    fill_sym(q, nq, qk_scale);
    fill_sym(k, nk, qk_scale);
    fill_sym(v, nk, 1.0);
    fill_sym(dout, nq, 1.0);
    lisa_attention_forward(out, lse, q, k, v, B, T, H, KV, hd);
    attn_reference(ref, ref_lse, q, k, v, B, T, H, KV, hd);
    sprintf(what, "attention large scores (q, k ~ %g) forward out", qk_scale);
    check_close_arr("attention large scores", what, out, ref, nq, 1e-4, 1e-4);
    sprintf(what, "attention large scores (q, k ~ %g) forward lse", qk_scale);
    check_close_arr("attention large scores", what, lse, ref_lse, nl, 1e-4, 1e-5);
    lisa_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, B, T, H, KV, hd);
    attn_reference_backward(rdq, rdk, rdv, dout, q, k, v, B, T, H, KV, hd);
    sprintf(what, "attention large scores (q, k ~ %g) dq", qk_scale);
    check_close_arr("attention large scores", what, dq, rdq, nq, 1e-3, 1e-3);
    sprintf(what, "attention large scores (q, k ~ %g) dk", qk_scale);
    check_close_arr("attention large scores", what, dk, rdk, nk, 1e-3, 1e-3);
    sprintf(what, "attention large scores (q, k ~ %g) dv", qk_scale);
    check_close_arr("attention large scores", what, dv, rdv, nk, 1e-4, 1e-4);
    free(q);
    free(k);
    free(v);
    free(out);
    free(lse);
    free(dout);
    free(dq);
    free(dk);
    free(dv);
    free(ref);
    free(ref_lse);
    free(rdq);
    free(rdk);
    free(rdv);
}

static void test_attention(void) {
    test_attention_shape(1, 1, 1, 1, 2, 1.0);   /* T 1: out = v */
    test_attention_shape(1, 5, 2, 2, 4, 1.0);   /* plain multi-head */
    test_attention_shape(2, 9, 6, 2, 4, 1.5);   /* GQA 6/2, B 2, T 9 */
    test_attention_shape(1, 7, 6, 3, 6, 1.5);   /* GQA 6/3 */
    test_attention_shape(2, 5, 4, 1, 8, 1.5);   /* GQA 4/1 (multi-query) */
    test_attention_shape(1, 16, 2, 1, 2, 2.0);  /* longer T, sharper softmax */
    test_attention_large_scores(2, 7, 4, 2, 4, 8.0);
    test_attention_large_scores(1, 9, 3, 1, 8, 6.0);
    test_attention_long(2, 300, 6, 2, 16); /* 300 > one key chunk, ragged blocks */
    test_attention_long(1, 530, 3, 3, 8);
    test_attention_causal(2, 9, 6, 2, 4);
    test_attention_causal(1, 7, 4, 1, 6);
}

/* ------------------------------------------------------------------------- */
/* exp over arrays                                                            */
/* ------------------------------------------------------------------------- */

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* |got - ref| in units of the float spacing at ref (2^-149 below FLT_MIN). */
static double ulp_error(float got, double ref) {
    int e;
    double ulp;
    if (ref < FLT_MIN) ulp = ldexp(1.0, -149);
    else {
        frexp(ref, &e);
        ulp = ldexp(1.0, e - 24);
    }
    return fabs((double)got - ref) / ulp;
}

/* Every 61st float from 0 up to +-limit (sign 1 or -1) against double exp and
   expf: the worst ulp errors, normal and subnormal results apart, and how
   many differ from expf's bits. The exp is correctly rounded but within
   ~1e-14 of a rounding boundary, so 1 ulp bounds it. */
static void exp_sweep(float sign, float limit, double *worst, double *worst_sub, double *worst_vs_expf,
                      long *n_values, long *n_differ) {
    enum { CHUNK = 4096, STRIDE = 61 };
    static float x[CHUNK], y[CHUNK];
    uint32_t u = 0, end = float_bits(limit), sign_bit = sign < 0 ? 0x80000000u : 0u;
    while (u <= end) {
        int n = 0, i;
        for (; n < CHUNK && u <= end; u += STRIDE) x[n++] = bits_float(u | sign_bit);
        lisa__exp_sub(y, x, 1.0f, 0.0f, (size_t)n);
        for (i = 0; i < n; i++) {
            double ref = exp((double)x[i]), err = ulp_error(y[i], ref), e2 = ulp_error(y[i], (double)expf(x[i]));
            if (ref < FLT_MIN) *worst_sub = err > *worst_sub ? err : *worst_sub;
            else *worst = err > *worst ? err : *worst;
            if (e2 > *worst_vs_expf) *worst_vs_expf = e2;
            *n_differ += float_bits(y[i]) != float_bits(expf(x[i]));
            ++*n_values;
            if (!(err <= 1.0)) {
                CHECK(0, "exp(%.9g) = %.9g, double exp %.17g: %.3g ulp", x[i], y[i], ref, err);
                return;
            }
        }
    }
}

/* Edge values: zero, the ends of the clamp, overflow, -inf, NaN. */
static void test_exp_edges(void) {
    static const float xs[] = {0.0f, -0.0f, -87.3365447f, -100.0f, -103.9f, -104.0f, -105.0f, -1000.0f,
                               -FLT_MAX, 88.7228317f, 88.72284f, 88.8f, 89.0f, 1000.0f, FLT_MAX};
    enum { N = sizeof(xs) / sizeof(xs[0]) };
    float y[N + 2], x[N + 2];
    int i;
    memcpy(x, xs, sizeof xs);
    x[N] = -INFINITY;
    x[N + 1] = INFINITY;
    lisa__exp_sub(y, x, 1.0f, 0.0f, N + 2);
    CHECK(y[0] == 1.0f && y[1] == 1.0f, "exp(+-0) = %.9g, %.9g", y[0], y[1]);
    for (i = 2; i < N + 2; i++) {
        double ref = exp((double)x[i]);
        if (ref > FLT_MAX)
            CHECK(y[i] == INFINITY, "exp(%.9g) = %.9g: overflow gives inf", x[i], y[i]);
        else
            CHECK(ulp_error(y[i], ref) <= 1.0, "exp(%.9g) = %.9g, double exp %.9g", x[i], y[i], ref);
    }
    CHECK(y[N] == 0.0f, "exp(-inf) = %.9g", y[N]);
    CHECK(y[5] == 0.0f && y[7] == 0.0f && y[8] == 0.0f, "exp of large negatives is 0");
    x[0] = NAN;
    lisa__exp_sub(y, x, 1.0f, 0.0f, 1);
    CHECK(y[0] != y[0], "exp(NaN) = %.9g: stays NaN", y[0]);
}

/* An element's bits do not depend on n, its offset, the split of the range,
   sign or where sub is applied. */
static void test_exp_bits(void) {
    enum { N = 1000 };
    float x[N], xneg[N], xsub[N], all[N], part[N], neg[N], sub[N];
    int i, start, same = 1, same_neg = 1, same_sub = 1;
    for (i = 0; i < N; i++) {
        x[i] = (float)(40.0 * trng_sym());
        xneg[i] = -x[i];
        xsub[i] = x[i] - 3.25f;
    }
    lisa__exp_sub(all, x, 1.0f, 0.0f, N);
    for (start = 0; start < N;) { /* odd pieces: 1, 2, ..., every tail length */
        int len = 1 + start % 37;
        if (len > N - start) len = N - start;
        lisa__exp_sub(part + start, x + start, 1.0f, 0.0f, (size_t)len);
        start += len;
    }
    lisa__exp_sub(neg, xneg, -1.0f, 0.0f, N);
    lisa__exp_sub(sub, x, 1.0f, 3.25f, N);
    lisa__exp_sub(xsub, xsub, 1.0f, 0.0f, N); /* in place */
    for (i = 0; i < N; i++) {
        same &= float_bits(all[i]) == float_bits(part[i]);
        same_neg &= float_bits(all[i]) == float_bits(neg[i]);
        same_sub &= float_bits(sub[i]) == float_bits(xsub[i]);
    }
    CHECK(same, "exp: each element's bits are the same in pieces of every length as in one call");
    CHECK(same_neg, "exp: sign -1 on -x gives the bits of x");
    CHECK(same_sub, "exp: sub applied inside gives the bits of x - sub computed before");
}

static void test_exp(void) {
    double worst = 0, worst_sub = 0, vs_expf = 0;
    long n_values = 0, n_differ = 0;
    exp_sweep(1.0f, 88.72f, &worst, &worst_sub, &vs_expf, &n_values, &n_differ);
    exp_sweep(-1.0f, 104.0f, &worst, &worst_sub, &vs_expf, &n_values, &n_differ);
    stat_add("exp (ulp, normal)", worst, worst);
    stat_add("exp (ulp, subnormal)", worst_sub, worst_sub);
    stat_add("exp (ulp vs expf)", vs_expf, vs_expf / 2.0);
    printf("exp: %ld of %ld swept values differ from expf's bits; worst %.4f ulp (normal), %.4f (subnormal)\n",
           n_differ, n_values, worst, worst_sub);
    CHECK(worst <= 1.0 && worst_sub <= 1.0, "exp: worst %.3g ulp (normal results), %.3g (subnormal)", worst,
          worst_sub);
    test_exp_edges();
    test_exp_bits();
}

/* ------------------------------------------------------------------------- */
/* SwiGLU                                                                     */
/* ------------------------------------------------------------------------- */

typedef struct swiglu_ctx {
    float *out, *gate, *up;
    const float *r;
    size_t n;
} swiglu_ctx;

static double swiglu_obj(void *p) {
    swiglu_ctx *c = (swiglu_ctx *)p;
    lisa_swiglu_forward(c->out, c->gate, c->up, c->n);
    return dot_d(c->r, c->out, c->n);
}

static double sigmoid_d(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

/* The matrix kernel's transposed packing (dst[k * width + j] = src[j * lds
   + k]) for every strip width the kernels use (4, 6, 12, 16, 32) and others,
   and lengths with and without a ragged end: every element right and
   nothing written past the strip. */
static void test_pack_transposed(void) {
    static const int widths[] = {1, 4, 5, 6, 7, 8, 11, 12, 13, 16, 32};
    int wi, kc, bad = 0, spilled = 0;
    for (wi = 0; wi < (int)(sizeof widths / sizeof widths[0]); wi++)
        for (kc = 1; kc <= 41; kc += 4) {
            int width = widths[wi], j, k;
            size_t lds = (size_t)kc + 3, n = (size_t)kc * width;
            float *src = falloc((size_t)width * lds), *dst = falloc(n + 16);
            for (j = 0; j < width * (int)lds; j++) src[j] = (float)j;
            for (j = 0; j < (int)n + 16; j++) dst[j] = -1.0f;
            lisa__pack_transposed(dst, width, src, lds, kc);
            for (k = 0; k < kc; k++)
                for (j = 0; j < width; j++) bad += dst[(size_t)k * width + j] != src[(size_t)j * lds + k];
            for (j = 0; j < 16; j++) spilled += dst[n + j] != -1.0f;
            free(src);
            free(dst);
        }
    CHECK(bad == 0 && spilled == 0, "transposed packing: %d wrong elements, %d floats written past the strip", bad,
          spilled);
}

static void test_swiglu_shape(size_t n, double gscale) {
    char what[128];
    float *gate = falloc(n), *up = falloc(n), *out = falloc(n), *r = falloc(n);
    float *dg = falloc(n), *du = falloc(n), *ag = falloc(n), *au = falloc(n), *bg, *bu;
    double *ref = (double *)malloc(sizeof(double) * n);
    swiglu_ctx c;
    size_t i;
    fill_sym(gate, n, gscale);
    fill_sym(up, n, 1.0);
    fill_sym(r, n, 1.0);
    c.out = out;
    c.gate = gate;
    c.up = up;
    c.r = r;
    c.n = n;

    lisa_swiglu_forward(out, gate, up, n);
    for (i = 0; i < n; i++) ref[i] = gate[i] * sigmoid_d(gate[i]) * up[i];
    sprintf(what, "swiglu forward n=%lu", (unsigned long)n);
    check_close_arr("swiglu forward", what, out, ref, n, 1e-6, 1e-5);

    lisa_swiglu_backward(dg, du, r, gate, up, n);
    {
        /* analytic in double: d gate = dout up sig (1 + g (1 - sig)), d up = dout silu(g) */
        double *rdg = (double *)malloc(sizeof(double) * n), *rdu = (double *)malloc(sizeof(double) * n);
        for (i = 0; i < n; i++) {
            double sg = sigmoid_d(gate[i]);
            rdg[i] = (double)r[i] * up[i] * sg * (1.0 + gate[i] * (1.0 - sg));
            rdu[i] = (double)r[i] * gate[i] * sg;
        }
        sprintf(what, "swiglu dgate n=%lu vs double reference backward", (unsigned long)n);
        check_close_arr("swiglu backward ref", what, dg, rdg, n, 1e-6, 1e-5);
        sprintf(what, "swiglu dup n=%lu vs double reference backward", (unsigned long)n);
        check_close_arr("swiglu backward ref", what, du, rdu, n, 1e-6, 1e-5);
        free(rdg);
        free(rdu);
    }
    sprintf(what, "swiglu d gate n=%lu", (unsigned long)n);
    fd_check("swiglu fd", what, swiglu_obj, &c, gate, n, dg, FD_NL_H, FD_ELT_ATOL, FD_ELT_RTOL);
    sprintf(what, "swiglu d up n=%lu", (unsigned long)n);
    fd_check("swiglu fd", what, swiglu_obj, &c, up, n, du, FD_NL_H, FD_ELT_ATOL, FD_ELT_RTOL);

    fill_sym(ag, n, 1.0);
    fill_sym(au, n, 1.0);
    bg = fdup(ag, n);
    bu = fdup(au, n);
    lisa_swiglu_backward(ag, au, r, gate, up, n);
    sprintf(what, "swiglu dgate n=%lu", (unsigned long)n);
    check_accumulates(what, ag, bg, dg, n);
    sprintf(what, "swiglu dup n=%lu", (unsigned long)n);
    check_accumulates(what, au, bu, du, n);

    free(gate);
    free(up);
    free(out);
    free(r);
    free(dg);
    free(du);
    free(ag);
    free(au);
    free(bg);
    free(bu);
    free(ref);
}

/* Large |gate|: no inf or NaN, values and derivatives as in double. */
static void test_swiglu_extremes(void) {
    static const float gs[] = {-1000.0f, -100.0f, -30.0f, -10.0f, -1.0f, 0.0f, 1.0f, 10.0f, 30.0f, 100.0f, 1000.0f};
    enum { N = sizeof(gs) / sizeof(gs[0]) };
    float gate[N], up[N], out[N], dout[N], dg[N], du[N];
    double ref[N], ref_dg[N], ref_du[N];
    int i;
    for (i = 0; i < N; i++) {
        double s = sigmoid_d(gs[i]);
        gate[i] = gs[i];
        up[i] = 0.5f + 0.25f * (float)i;
        dout[i] = 1.0f - 0.125f * (float)i;
        dg[i] = du[i] = 0;
        ref[i] = gs[i] * s * up[i];
        ref_du[i] = dout[i] * gs[i] * s;
        ref_dg[i] = dout[i] * up[i] * s * (1.0 + gs[i] * (1.0 - s));
    }
    lisa_swiglu_forward(out, gate, up, N);
    lisa_swiglu_backward(dg, du, dout, gate, up, N);
    check_close_arr("swiglu extremes", "swiglu forward, large |gate|", out, ref, N, 1e-30, 1e-5);
    check_close_arr("swiglu extremes", "swiglu d gate, large |gate|", dg, ref_dg, N, 1e-30, 1e-5);
    check_close_arr("swiglu extremes", "swiglu d up, large |gate|", du, ref_du, N, 1e-30, 1e-5);
}

static void test_swiglu(void) {
    test_swiglu_shape(1, 2.0);
    test_swiglu_shape(7, 3.0);
    test_swiglu_shape(33, 5.0);
    test_swiglu_extremes();
}

/* ------------------------------------------------------------------------- */
/* Residual                                                                   */
/* ------------------------------------------------------------------------- */

typedef struct res_ctx {
    float *out, *a, *b;
    const float *r;
    size_t n;
} res_ctx;

static double res_obj(void *p) {
    res_ctx *c = (res_ctx *)p;
    lisa_residual_forward(c->out, c->a, c->b, c->n);
    return dot_d(c->r, c->out, c->n);
}

static void test_residual_shape(size_t n) {
    char what[128];
    float *a = falloc(n), *b = falloc(n), *out = falloc(n), *r = falloc(n);
    float *da = falloc(n), *db = falloc(n), *aa = falloc(n), *ab = falloc(n), *ba, *bb;
    double *ref = (double *)malloc(sizeof(double) * n);
    res_ctx c;
    size_t i;
    fill_sym(a, n, 1.0);
    fill_sym(b, n, 2.0);
    fill_sym(r, n, 1.0);
    c.out = out;
    c.a = a;
    c.b = b;
    c.r = r;
    c.n = n;
    lisa_residual_forward(out, a, b, n);
    for (i = 0; i < n; i++) ref[i] = (float)(a[i] + b[i]); /* float sum: exact match */
    sprintf(what, "residual forward n=%lu", (unsigned long)n);
    check_close_arr("residual forward", what, out, ref, n, 0, 0);

    lisa_residual_backward(da, db, r, n);
    sprintf(what, "residual d a n=%lu", (unsigned long)n);
    fd_check("residual fd", what, res_obj, &c, a, n, da, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);
    sprintf(what, "residual d b n=%lu", (unsigned long)n);
    fd_check("residual fd", what, res_obj, &c, b, n, db, FD_LIN_H, FD_LIN_ATOL, FD_LIN_RTOL);
    CHECK(same_floats(da, r, n) && same_floats(db, r, n), "residual backward into zeros gives dout exactly");

    fill_sym(aa, n, 1.0);
    fill_sym(ab, n, 1.0);
    ba = fdup(aa, n);
    bb = fdup(ab, n);
    lisa_residual_backward(aa, ab, r, n);
    sprintf(what, "residual da n=%lu", (unsigned long)n);
    check_accumulates(what, aa, ba, da, n);
    sprintf(what, "residual db n=%lu", (unsigned long)n);
    check_accumulates(what, ab, bb, db, n);

    free(a);
    free(b);
    free(out);
    free(r);
    free(da);
    free(db);
    free(aa);
    free(ab);
    free(ba);
    free(bb);
    free(ref);
}

static void test_residual(void) {
    test_residual_shape(1);
    test_residual_shape(7);
    test_residual_shape(37);
}

/* ------------------------------------------------------------------------- */
/* Cross-entropy                                                              */
/* ------------------------------------------------------------------------- */

typedef struct ce_ctx {
    float *losses, *logits;
    const int *targets;
    int n, vocab;
    double scale;
} ce_ctx;

/* L = scale * sum of row losses (0 for ignored rows). */
static double ce_obj(void *p) {
    ce_ctx *c = (ce_ctx *)p;
    double s = 0;
    int i;
    lisa_cross_entropy_forward(c->losses, c->logits, c->targets, c->n, c->vocab, NULL);
    for (i = 0; i < c->n; i++) s += c->losses[i];
    return c->scale * s;
}

/* Reference: row loss = logsumexp(logits) - logits[target]; gradient
   dloss * (softmax - onehot) per counted row. */
static int ce_reference(double *losses, double *dlogits, const float *logits, const int *targets,
                        int n, int vocab, double dloss) {
    int i, j, counted = 0;
    for (i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * vocab;
        double mx = -INFINITY, sum = 0, lse;
        if (targets[i] == LISA_IGNORE) {
            losses[i] = 0;
            for (j = 0; j < vocab; j++) dlogits[(size_t)i * vocab + j] = 0;
            continue;
        }
        counted++;
        for (j = 0; j < vocab; j++)
            if (row[j] > mx) mx = row[j];
        for (j = 0; j < vocab; j++) sum += exp(row[j] - mx);
        lse = mx + log(sum);
        losses[i] = lse - row[targets[i]];
        for (j = 0; j < vocab; j++)
            dlogits[(size_t)i * vocab + j] = dloss * (exp(row[j] - lse) - (j == targets[i] ? 1.0 : 0.0));
    }
    return counted;
}

static void test_ce_shape(int n, int vocab, const int *targets, double lscale) {
    char what[160];
    size_t nl = (size_t)n * vocab;
    float *logits = falloc(nl), *losses = falloc((size_t)n), *g = falloc(nl), *acc = falloc(nl), *before;
    double *ref_loss = (double *)malloc(sizeof(double) * (size_t)n), *ref_g = (double *)malloc(sizeof(double) * nl);
    double mean_ref = 0, dloss;
    int i, counted, n_counted = -7, ignored_untouched = 1;
    float mean, mean2;
    ce_ctx c;
    fill_sym(logits, nl, lscale);
    for (i = 0; i < n; i++) losses[i] = 123.0f; /* must be overwritten, also for ignored rows */
    counted = ce_reference(ref_loss, ref_g, logits, targets, n, vocab, 1.0);
    for (i = 0; i < n; i++) mean_ref += ref_loss[i];
    mean_ref = counted ? mean_ref / counted : 0;

    mean = lisa_cross_entropy_forward(losses, logits, targets, n, vocab, &n_counted);
    sprintf(what, "cross-entropy n=%d vocab=%d row losses", n, vocab);
    check_close_arr("cross-entropy forward", what, losses, ref_loss, (size_t)n, 1e-6, 1e-5);
    CHECK(n_counted == counted, "cross-entropy n=%d vocab=%d: n_counted %d, want %d", n, vocab,
          n_counted, counted);
    CHECK(test_close(mean, mean_ref, 1e-6, 1e-5), "cross-entropy n=%d vocab=%d: mean %.9g, want %.9g",
          n, vocab, (double)mean, mean_ref);
    mean2 = lisa_cross_entropy_forward(NULL, logits, targets, n, vocab, NULL);
    CHECK(mean2 == mean, "cross-entropy n=%d vocab=%d: losses and n_counted may be NULL (%.9g vs %.9g)",
          n, vocab, (double)mean2, (double)mean);

    /* gradient of the mean: dloss = 1 / n_counted */
    dloss = counted ? 1.0 / counted : 1.0;
    counted = ce_reference(ref_loss, ref_g, logits, targets, n, vocab, (float)dloss);
    lisa_cross_entropy_backward(g, logits, targets, n, vocab, (float)dloss);
    sprintf(what, "cross-entropy n=%d vocab=%d backward vs softmax - onehot", n, vocab);
    check_close_arr("cross-entropy backward ref", what, g, ref_g, nl, 1e-6, 1e-5);
    c.losses = losses;
    c.logits = logits;
    c.targets = targets;
    c.n = n;
    c.vocab = vocab;
    c.scale = (float)dloss;
    sprintf(what, "cross-entropy d logits n=%d vocab=%d", n, vocab);
    fd_check("cross-entropy fd", what, ce_obj, &c, logits, nl, g, FD_NL_H, FD_ELT_ATOL, FD_ELT_RTOL);

    fill_sym(acc, nl, 1.0);
    before = fdup(acc, nl);
    lisa_cross_entropy_backward(acc, logits, targets, n, vocab, (float)dloss);
    check_accumulates(what, acc, before, g, nl);
    for (i = 0; i < n; i++)
        if (targets[i] == LISA_IGNORE &&
            !same_floats(acc + (size_t)i * vocab, before + (size_t)i * vocab, (size_t)vocab))
            ignored_untouched = 0;
    CHECK(ignored_untouched, "cross-entropy n=%d vocab=%d: ignored rows must get no gradient", n, vocab);

    free(logits);
    free(losses);
    free(g);
    free(acc);
    free(before);
    free(ref_loss);
    free(ref_g);
}

static void test_ce_all_ignored(void) {
    int targets[4] = {LISA_IGNORE, LISA_IGNORE, LISA_IGNORE, LISA_IGNORE};
    float logits[4 * 5], losses[4], g[4 * 5], before[4 * 5];
    int i, n_counted = -7;
    float mean;
    fill_sym(logits, 20, 2.0);
    fill_sym(g, 20, 1.0);
    memcpy(before, g, sizeof(g));
    for (i = 0; i < 4; i++) losses[i] = 5.0f;
    mean = lisa_cross_entropy_forward(losses, logits, targets, 4, 5, &n_counted);
    CHECK(mean == 0.0f, "cross-entropy all ignored: mean %g, want 0", (double)mean);
    CHECK(n_counted == 0, "cross-entropy all ignored: n_counted %d, want 0", n_counted);
    CHECK(losses[0] == 0 && losses[1] == 0 && losses[2] == 0 && losses[3] == 0,
          "cross-entropy all ignored: row losses must be 0");
    lisa_cross_entropy_backward(g, logits, targets, 4, 5, 1.0f);
    CHECK(same_floats(g, before, 20), "cross-entropy all ignored: backward must add nothing");
}

static void test_ce_large_logits(void) {
    enum { N = 3, V = 6 };
    float logits[N * V], losses[N], g[N * V];
    int targets[N] = {2, 1, 5};
    double ref_loss[N], ref_g[N * V];
    int i, n_counted = 0;
    float mean;
    double mean_ref;
    /* row 0: all near 1000; row 1: 1000 and -1000, target at -1000; row 2: near -1000 */
    for (i = 0; i < V; i++) {
        logits[i] = 1000.0f + 0.5f * (float)i;
        logits[V + i] = (i % 2) ? -1000.0f : 1000.0f;
        logits[2 * V + i] = -1000.0f - 0.25f * (float)i;
    }
    for (i = 0; i < N * V; i++) g[i] = 0;
    ce_reference(ref_loss, ref_g, logits, targets, N, V, 1.0);
    mean_ref = (ref_loss[0] + ref_loss[1] + ref_loss[2]) / 3.0;
    mean = lisa_cross_entropy_forward(losses, logits, targets, N, V, &n_counted);
    /* float resolution at 1000 is 6e-5: absolute tolerance 2e-4 */
    check_close_arr("cross-entropy large", "cross-entropy logits ~ +-1000: row losses", losses, ref_loss,
                    N, 2e-4, 1e-6);
    CHECK(n_counted == 3 && test_close(mean, mean_ref, 2e-4, 1e-6),
          "cross-entropy logits ~ +-1000: mean %.9g want %.9g, n_counted %d", (double)mean, mean_ref,
          n_counted);
    lisa_cross_entropy_backward(g, logits, targets, N, V, 1.0f);
    /* exp(logit - lse) with a float lse near 1000 (half an ulp is 3e-5) puts up
       to 3e-5 relative error into each probability: rtol 1e-4 */
    check_close_arr("cross-entropy large", "cross-entropy logits ~ +-1000: gradient", g, ref_g, N * V,
                    1e-6, 1e-4);
}

static void test_cross_entropy(void) {
    int t1[1] = {3};
    int t6[6] = {0, LISA_IGNORE, 4, 2, LISA_IGNORE, 6};
    int t9[9] = {LISA_IGNORE, 1, 10, 0, 5, LISA_IGNORE, 3, 3, LISA_IGNORE};
    int t4[4] = {4, 0, 1, 2};
    test_ce_shape(1, 5, t1, 2.0);
    test_ce_shape(6, 7, t6, 3.0);
    test_ce_shape(9, 11, t9, 4.0);
    test_ce_shape(4, 5, t4, 1.0);
    test_ce_all_ignored();
    test_ce_large_logits();
}

/* ------------------------------------------------------------------------- */
/* AdamW                                                                      */
/* ------------------------------------------------------------------------- */

static void test_adamw_run(const char *label, size_t n, float lr, float b1, float b2, float eps,
                           float wd, int first_step, int random_moments) {
    char what[160];
    float *p = falloc(n), *g = falloc(n), *m = falloc(n), *v = falloc(n);
    double *pd = (double *)malloc(sizeof(double) * n), *md = (double *)malloc(sizeof(double) * n);
    double *vd = (double *)malloc(sizeof(double) * n);
    size_t i;
    int s;
    fill_sym(p, n, 1.0);
    for (i = 0; i < n; i++) {
        if (random_moments) {
            m[i] = (float)(0.1 * trng_sym());
            v[i] = (float)(0.01 * trng_uniform());
        }
        pd[i] = p[i];
        md[i] = m[i];
        vd[i] = v[i];
    }
    for (s = first_step; s < first_step + 3; s++) {
        double bc1 = 1.0 - pow((double)b1, s), bc2 = 1.0 - pow((double)b2, s);
        fill_sym(g, n, 1.0);
        g[0] = 0.0f;                        /* zero gradient */
        if (n > 1) g[1] = 1e-10f;           /* tiny: eps dominates */
        if (n > 2) g[2] = 50.0f;            /* large */
        if (n > 3) g[3] = -3e-9f;
        for (i = 0; i < n; i++) {
            double gi = g[i];
            pd[i] *= 1.0 - (double)lr * wd;
            md[i] = md[i] + (1.0 - b1) * (gi - md[i]);
            vd[i] = (double)b2 * vd[i] + (1.0 - b2) * gi * gi;
            pd[i] -= (double)lr / bc1 * md[i] / (sqrt(vd[i]) / sqrt(bc2) + (double)eps);
        }
        lisa_adamw_update(p, g, m, v, n, lr, b1, b2, eps, wd, s);
        sprintf(what, "adamw %s step %d: p", label, s);
        check_close_arr("adamw", what, p, pd, n, 1e-6, 1e-5);
        sprintf(what, "adamw %s step %d: m", label, s);
        check_close_arr("adamw", what, m, md, n, 1e-30, 1e-5);
        sprintf(what, "adamw %s step %d: v", label, s);
        check_close_arr("adamw", what, v, vd, n, 1e-37, 1e-5);
    }
    free(p);
    free(g);
    free(m);
    free(v);
    free(pd);
    free(md);
    free(vd);
}

static void test_adamw(void) {
    test_adamw_run("lr 1e-2 wd 0.1", 9, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 1, 0);
    test_adamw_run("lr 3e-3 betas 0.8/0.95 eps 1e-6 wd 0", 17, 3e-3f, 0.8f, 0.95f, 1e-6f, 0.0f, 1, 0);
    test_adamw_run("from step 10, moments set", 5, 1e-3f, 0.9f, 0.99f, 1e-8f, 0.01f, 10, 1);
}

/* ------------------------------------------------------------------------- */
/* Gradient clipping                                                          */
/* ------------------------------------------------------------------------- */

static void test_clip(void) {
    float b0[5], b2[7], b3[3], zero[4] = {0, 0, 0, 0};
    float s0[5], s2[7], s3[3];
    float *bufs[4];
    size_t sizes[4] = {5, 4, 7, 3};
    double norm_ref = 0, scale;
    float norm, max_norm;
    int i, ok;
    fill_sym(b0, 5, 1.0);
    fill_sym(b2, 7, 2.0);
    fill_sym(b3, 3, 0.5);
    for (i = 0; i < 5; i++) norm_ref += (double)b0[i] * b0[i];
    for (i = 0; i < 7; i++) norm_ref += (double)b2[i] * b2[i];
    for (i = 0; i < 3; i++) norm_ref += (double)b3[i] * b3[i];
    norm_ref = sqrt(norm_ref);
    memcpy(s0, b0, sizeof(b0));
    memcpy(s2, b2, sizeof(b2));
    memcpy(s3, b3, sizeof(b3));
    bufs[0] = b0;
    bufs[1] = NULL; /* skipped, though its size is 4 */
    bufs[2] = b2;
    bufs[3] = b3;

    /* max_norm 0: off; returns the norm; untouched */
    norm = lisa_clip_grad_norm(bufs, sizes, 4, 0.0f);
    stat_add("clip norm", fabs(norm - norm_ref), fabs(norm - norm_ref) / (1e-6 * norm_ref));
    CHECK(test_close(norm, norm_ref, 0, 1e-6), "clip: norm %.9g, want %.9g", (double)norm, norm_ref);
    CHECK(same_floats(b0, s0, 5) && same_floats(b2, s2, 7) && same_floats(b3, s3, 3),
          "clip: max_norm 0 must leave the gradients untouched");

    /* under the max: untouched */
    norm = lisa_clip_grad_norm(bufs, sizes, 4, (float)(norm_ref * 1.5));
    CHECK(test_close(norm, norm_ref, 0, 1e-6), "clip (under max): norm %.9g, want %.9g", (double)norm,
          norm_ref);
    CHECK(same_floats(b0, s0, 5) && same_floats(b2, s2, 7) && same_floats(b3, s3, 3),
          "clip: norm under max_norm must leave the gradients untouched");

    /* over the max: scaled by max / (norm + 1e-6) */
    max_norm = (float)(norm_ref * 0.25);
    scale = (double)max_norm / (norm_ref + 1e-6);
    norm = lisa_clip_grad_norm(bufs, sizes, 4, max_norm);
    CHECK(test_close(norm, norm_ref, 0, 1e-6), "clip (over max): returns norm before clipping %.9g, want %.9g",
          (double)norm, norm_ref);
    ok = 1;
    for (i = 0; i < 5; i++) ok &= test_close(b0[i], s0[i] * scale, 1e-9, 1e-6);
    for (i = 0; i < 7; i++) ok &= test_close(b2[i], s2[i] * scale, 1e-9, 1e-6);
    for (i = 0; i < 3; i++) ok &= test_close(b3[i], s3[i] * scale, 1e-9, 1e-6);
    CHECK(ok, "clip: gradients scaled by max_norm / (norm + 1e-6) = %.9g", scale);
    norm = lisa_clip_grad_norm(bufs, sizes, 4, 0.0f);
    CHECK(test_close(norm, max_norm, 0, 1e-5), "clip: norm after clipping %.9g, want ~%.9g",
          (double)norm, (double)max_norm);

    /* all zero: norm 0, no NaN */
    bufs[0] = zero;
    sizes[0] = 4;
    norm = lisa_clip_grad_norm(bufs, sizes, 1, 1.0f);
    CHECK(norm == 0.0f && zero[0] == 0 && zero[3] == 0, "clip: zero gradients give norm 0, untouched");
    norm = lisa_clip_grad_norm(bufs, sizes, 0, 1.0f);
    CHECK(norm == 0.0f, "clip: no buffers give norm 0");

    /* a large buffer: the norm stays accurate (1e-5) and clipping brings it to 1 */
    {
        size_t big = 10000;
        float *gb = falloc(big);
        double nr = 0;
        size_t j;
        int ok2 = 1;
        fill_sym(gb, big, 1.0);
        for (j = 0; j < big; j++) nr += (double)gb[j] * gb[j];
        nr = sqrt(nr);
        bufs[0] = gb;
        sizes[0] = big;
        norm = lisa_clip_grad_norm(bufs, sizes, 1, 1.0f);
        stat_add("clip norm", fabs(norm - nr), fabs(norm - nr) / (1e-5 * nr));
        CHECK(test_close(norm, nr, 0, 1e-5), "clip: norm over 10000 floats %.9g, want %.9g",
              (double)norm, nr);
        for (j = 0; j < big; j++) ok2 &= all_finite(gb + j, 1);
        nr = 0;
        for (j = 0; j < big; j++) nr += (double)gb[j] * gb[j];
        CHECK(ok2 && test_close(sqrt(nr), 1.0, 0, 1e-5), "clip: norm after clipping %.9g, want ~1",
              sqrt(nr));
        free(gb);
    }
}

/* ------------------------------------------------------------------------- */
/* Schedules                                                                  */
/* ------------------------------------------------------------------------- */

static double schedule_ref(const lisa_schedule *s, int step) {
    double lr = s->lr, mn = s->min_lr, p;
    int span;
    if (step < s->warmup) return lr * (step + 1) / s->warmup;
    if (s->kind == LISA_SCHEDULE_CONSTANT) return lr;
    span = s->total_steps - s->warmup;
    if (span < 1) span = 1;
    p = (double)(step - s->warmup) / span;
    if (p < 0) p = 0;
    if (p > 1) p = 1;
    if (s->kind == LISA_SCHEDULE_COSINE) return mn + 0.5 * (lr - mn) * (1.0 + cos(M_PI * p));
    return lr - (lr - mn) * p;
}

static void check_schedule(lisa_schedule_kind kind, float lr, float mn, int warmup, int total,
                           const int *steps, int n_steps) {
    static const char *names[3] = {"constant", "cosine", "linear"};
    lisa_schedule s;
    int i;
    s.kind = kind;
    s.lr = lr;
    s.min_lr = mn;
    s.warmup = warmup;
    s.total_steps = total;
    for (i = 0; i < n_steps; i++) {
        double want = schedule_ref(&s, steps[i]);
        float got = lisa_schedule_lr(&s, steps[i]);
        stat_add("schedule", fabs(got - want), fabs(got - want) / (1e-5 * fabs(want) + 1e-12));
        CHECK(test_close(got, want, 1e-12, 1e-5),
              "schedule %s lr %g min %g warmup %d total %d: step %d gives %.9g, want %.9g",
              names[kind], (double)lr, (double)mn, warmup, total, steps[i], (double)got, want);
    }
}

static void test_schedule(void) {
    static const int st[] = {0, 1, 5, 9, 10, 11, 30, 54, 55, 98, 99, 100, 150};
    static const int st0[] = {0, 1, 12, 25, 48, 49, 50, 60};
    static const int st5[] = {0, 3, 4, 5, 6, 7};
    int nst = (int)(sizeof(st) / sizeof(st[0]));
    int nst0 = (int)(sizeof(st0) / sizeof(st0[0]));
    int nst5 = (int)(sizeof(st5) / sizeof(st5[0]));
    int k;
    for (k = 0; k < 3; k++) {
        lisa_schedule_kind kind = (lisa_schedule_kind)k;
        check_schedule(kind, 1e-3f, 1e-5f, 10, 100, st, nst);  /* warmup 10 of 100 */
        check_schedule(kind, 3e-4f, 0.0f, 0, 50, st0, nst0);   /* no warmup */
        check_schedule(kind, 1e-2f, 1e-3f, 5, 5, st5, nst5);   /* total == warmup */
        check_schedule(kind, 2e-3f, 2e-4f, 1, 8, st0, nst0);   /* warmup 1 */
    }
    {
        /* spot values written out */
        lisa_schedule s;
        s.kind = LISA_SCHEDULE_COSINE;
        s.lr = 1.0f;
        s.min_lr = 0.0f;
        s.warmup = 4;
        s.total_steps = 8;
        CHECK(test_close(lisa_schedule_lr(&s, 0), 0.25, 0, 1e-6), "cosine step 0 = lr/warmup");
        CHECK(test_close(lisa_schedule_lr(&s, 3), 1.0, 0, 1e-6), "cosine last warmup step = lr");
        CHECK(test_close(lisa_schedule_lr(&s, 4), 1.0, 0, 1e-6), "cosine first step after warmup = lr");
        CHECK(test_close(lisa_schedule_lr(&s, 6), 0.5, 0, 1e-6), "cosine midway = (lr+min)/2");
        CHECK(test_close(lisa_schedule_lr(&s, 8), 0.0, 1e-7, 0), "cosine at total = min");
        s.kind = LISA_SCHEDULE_LINEAR;
        CHECK(test_close(lisa_schedule_lr(&s, 7), 0.25, 0, 1e-6), "linear step 7 of 8 = 0.25");
    }
}

/* ------------------------------------------------------------------------- */
/* Random numbers                                                             */
/* ------------------------------------------------------------------------- */

static void test_rng(void) {
    lisa_rng a, b, c;
    int i, same = 1, differs = 0, in_range = 1, finite = 1;
    const int N = 100000;
    double su = 0, su2 = 0, sn = 0, sn2 = 0, within1 = 0, mean, var;
    lisa_rng_seed(&a, 42);
    lisa_rng_seed(&b, 42);
    lisa_rng_seed(&c, 43);
    for (i = 0; i < 1000; i++) {
        uint64_t x = lisa_rng_next(&a), y = lisa_rng_next(&b), z = lisa_rng_next(&c);
        if (x != y) same = 0;
        if (x != z) differs = 1;
    }
    CHECK(same, "rng: same seed, same sequence");
    CHECK(differs, "rng: different seeds, different sequences");
    for (i = 0; i < 100; i++) {
        float x = lisa_rng_uniform(&a), y = lisa_rng_uniform(&b);
        float nx = lisa_rng_normal(&a), ny = lisa_rng_normal(&b);
        if (x != y || nx != ny) same = 0;
    }
    CHECK(same, "rng: same seed, same uniform and normal draws");

    lisa_rng_seed(&a, 7);
    for (i = 0; i < N; i++) {
        float u = lisa_rng_uniform(&a);
        if (!(u >= 0.0f && u < 1.0f)) in_range = 0;
        su += u;
        su2 += (double)u * u;
    }
    mean = su / N;
    var = su2 / N - mean * mean;
    CHECK(in_range, "rng: uniform in [0, 1)");
    /* std of the mean of 1e5 uniforms is 9e-4; of the variance ~2.7e-4 */
    CHECK(fabs(mean - 0.5) < 0.005, "rng: uniform mean %.5f, want 0.5", mean);
    CHECK(fabs(var - 1.0 / 12) < 0.002, "rng: uniform variance %.5f, want %.5f", var, 1.0 / 12);

    for (i = 0; i < N; i++) {
        float z = lisa_rng_normal(&a);
        if (!(z == z) || isinf(z)) {
            finite = 0;
            continue;
        }
        sn += z;
        sn2 += (double)z * z;
        if (fabs(z) < 1.0) within1 += 1;
    }
    mean = sn / N;
    var = sn2 / N - mean * mean;
    CHECK(finite, "rng: normal draws finite");
    /* std of the mean 3.2e-3, of the std ~2.2e-3 */
    CHECK(fabs(mean) < 0.015, "rng: normal mean %.5f, want 0", mean);
    CHECK(fabs(sqrt(var) - 1.0) < 0.015, "rng: normal std %.5f, want 1", sqrt(var));
    CHECK(fabs(within1 / N - 0.682689) < 0.01, "rng: normal P(|z| < 1) %.5f, want 0.6827", within1 / N);
}

static void test_tensor_numel(void) {
    lisa_tensor t;
    t.data = NULL;
    t.ndim = 3;
    t.shape[0] = 2;
    t.shape[1] = 3;
    t.shape[2] = 5;
    t.shape[3] = 0;
    CHECK(lisa_tensor_numel(&t) == 30, "tensor numel of (2, 3, 5) is 30");
}

int main(void) {
    test_pack_transposed();
    int i;
    test_embedding();
    test_rmsnorm();
    test_linear();
    test_lora();
    test_rope();
    test_attention();
    test_exp();
    test_swiglu();
    test_residual();
    test_cross_entropy();
    test_adamw();
    test_clip();
    test_schedule();
    test_rng();
    test_tensor_numel();
    printf("largest errors (error vs reference; ratio = error / tolerance):\n");
    for (i = 0; i < n_stats; i++)
        printf("  %-28s max err %.3g  max err/tol %.3g\n", stats[i].name, stats[i].max_err,
               stats[i].max_ratio);
    return test_report("ops");
}
