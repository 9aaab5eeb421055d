/* gradcheck.c - check backward passes against finite differences.

   Build and run, from the repository root:
       cc -O2 -I. -o gradcheck examples/gradcheck.c -lm
       ./gradcheck

   Every op in lisa.h has a forward and a backward function. To test a
   backward, pick a scalar objective L = sum_i r_i * out_i with fixed random
   r_i: then dL/dout = r, backward turns r into the gradient of every input,
   and each entry can be checked on its own by nudging that input both ways:
       dL/dx_j ~ (L(x_j + h) - L(x_j - h)) / 2h        (central difference)
   The forward runs in float, so L is summed in double and h is not too small:
   the difference of two nearly equal L's would be mostly rounding noise.
   The error reported is max_j |analytic_j - numeric_j| / max_j |analytic_j|:
   relative to the gradient's scale, since entries near 0 have no meaningful
   relative error of their own. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define TOLERANCE 1e-3

/* Sizes of the problem: small and odd so that no loop divides evenly. */
enum { N = 3, DIM = 6, OUT = 5, B = 2, T = 5, HEADS = 4, KV_HEADS = 2, HD = 4 };
#define QN (B * T * HEADS * HD)
#define KN (B * T * KV_HEADS * HD)

/* Everything the objectives read: inputs, weights, the random r's. */
typedef struct problem {
    float x[N * DIM], norm_w[DIM], lin_w[OUT * DIM], r_norm[N * DIM], r_lin[N * OUT];
    float q[QN], k[KN], v[KN], r_attn[QN];
} problem;

static double dot(const float *a, const float *b, int n) {
    double s = 0;
    int i;
    for (i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double rmsnorm_objective(const problem *p) {
    float out[N * DIM], rstd[N];
    lisa_rmsnorm_forward(out, rstd, p->x, p->norm_w, N, DIM, 1e-5f);
    return dot(out, p->r_norm, N * DIM);
}

static double linear_objective(const problem *p) {
    float out[N * OUT];
    lisa_linear_forward(out, p->x, p->lin_w, N, DIM, OUT);
    return dot(out, p->r_lin, N * OUT);
}

/* Causal grouped-query attention: 4 query heads share 2 key/value heads. */
static double attention_objective(const problem *p) {
    float out[QN], lse[B * HEADS * T];
    lisa_attention_forward(out, lse, p->q, p->k, p->v, B, T, HEADS, KV_HEADS, HD);
    return dot(out, p->r_attn, QN);
}

/* Compares grad (the analytic gradient of objective with respect to x[0..n))
   with central differences, prints the error and returns it. */
static double check(const char *name, problem *p, double (*objective)(const problem *),
                    float *x, const float *grad, int n) {
    double max_err = 0, max_grad = 0;
    int j;
    for (j = 0; j < n; j++) {
        float saved = x[j];
        float h = 1e-2f * (fabsf(saved) > 1 ? fabsf(saved) : 1);
        double plus, minus, numeric;
        x[j] = saved + h;
        plus = objective(p);
        x[j] = saved - h;
        minus = objective(p);
        x[j] = saved;
        /* (saved + h) - (saved - h) is what was really stepped, after rounding */
        numeric = (plus - minus) / ((double)(saved + h) - (double)(saved - h));
        if (fabs(numeric - grad[j]) > max_err) max_err = fabs(numeric - grad[j]);
        if (fabs(grad[j]) > max_grad) max_grad = fabs(grad[j]);
    }
    max_err /= max_grad > 0 ? max_grad : 1;
    printf("  %-22s %3d entries   max relative error %.2e%s\n", name, n, max_err,
           max_err <= TOLERANCE ? "" : "  <-- too large");
    return max_err;
}

static void fill(lisa_rng *rng, float *a, int n) {
    int i;
    for (i = 0; i < n; i++) a[i] = lisa_rng_normal(rng);
}

int main(void) {
    static problem p;   /* static: zeroed, and off the stack */
    float rstd[N], out[QN], lse[B * HEADS * T];
    float dx[N * DIM], dnorm_w[DIM], dlin_w[OUT * DIM], dq[QN], dk[KN], dv[KN];
    double worst = 0, e;
    lisa_rng rng;
    int i;

    lisa_rng_seed(&rng, 2024);
    fill(&rng, p.x, N * DIM);
    for (i = 0; i < DIM; i++) p.norm_w[i] = 1 + 0.3f * lisa_rng_normal(&rng);
    fill(&rng, p.lin_w, OUT * DIM);
    fill(&rng, p.r_norm, N * DIM);
    fill(&rng, p.r_lin, N * OUT);
    fill(&rng, p.q, QN);
    fill(&rng, p.k, KN);
    fill(&rng, p.v, KN);
    fill(&rng, p.r_attn, QN);
    printf("gradients of L = sum(r * out), analytic vs central differences:\n");

    /* Backward functions ADD into their gradient buffers: zero them first.
       The incoming gradient dL/dout is r. */
    memset(dx, 0, sizeof dx);
    memset(dnorm_w, 0, sizeof dnorm_w);
    lisa_rmsnorm_forward(out, rstd, p.x, p.norm_w, N, DIM, 1e-5f);  /* rstd for backward */
    lisa_rmsnorm_backward(dx, dnorm_w, p.r_norm, p.x, p.norm_w, rstd, N, DIM);
    e = check("rmsnorm d/dx", &p, rmsnorm_objective, p.x, dx, N * DIM);
    worst = e > worst ? e : worst;
    e = check("rmsnorm d/dweight", &p, rmsnorm_objective, p.norm_w, dnorm_w, DIM);
    worst = e > worst ? e : worst;

    memset(dx, 0, sizeof dx);
    memset(dlin_w, 0, sizeof dlin_w);
    lisa_linear_backward(dx, dlin_w, p.r_lin, p.x, p.lin_w, N, DIM, OUT);
    e = check("linear d/dx", &p, linear_objective, p.x, dx, N * DIM);
    worst = e > worst ? e : worst;
    e = check("linear d/dweight", &p, linear_objective, p.lin_w, dlin_w, OUT * DIM);
    worst = e > worst ? e : worst;

    memset(dq, 0, sizeof dq);
    memset(dk, 0, sizeof dk);
    memset(dv, 0, sizeof dv);
    lisa_attention_forward(out, lse, p.q, p.k, p.v, B, T, HEADS, KV_HEADS, HD);
    lisa_attention_backward(dq, dk, dv, p.r_attn, out, lse, p.q, p.k, p.v, B, T, HEADS, KV_HEADS, HD);
    e = check("attention d/dq", &p, attention_objective, p.q, dq, QN);
    worst = e > worst ? e : worst;
    e = check("attention d/dk", &p, attention_objective, p.k, dk, KN);
    worst = e > worst ? e : worst;
    e = check("attention d/dv", &p, attention_objective, p.v, dv, KN);
    worst = e > worst ? e : worst;

    if (worst <= TOLERANCE) {
        printf("ok: largest relative error %.2e (tolerance %.0e)\n", worst, TOLERANCE);
        return 0;
    }
    printf("FAILED: largest relative error %.2e exceeds %.0e\n", worst, TOLERANCE);
    return 1;
}
