/* Speed of the three matrix products of a linear layer, in GFLOP/s, at the
   shapes of two models: SmolLM2-135M (n = 512 rows: batch 1 x seq 512) and a
   67M model (n = 1024 rows: batch 4 x seq 256). For each layer (in -> out):
     fwd  out (n, out) = x (n, in) @ w^T          lisa_linear_forward
     dx   dx (n, in) += dout (n, out) @ w          lisa_linear_backward, dw NULL
     dw   dw (out, in) += dout^T (out, n) @ x      lisa_linear_backward, dx NULL
   each 2 * n * in * out flops. With OpenBLAS (built with -DBENCH_OPENBLAS, as
   make bench-gemm does when it finds it), cblas_sgemm on the same products
   side by side, and lisa's share of its speed.

   Build and run:  make bench-gemm
   or:             cc -O3 -march=native -ffp-contract=fast -fopenmp -I. -o bench_gemm bench/bench_gemm.c -lm
                   (add -DBENCH_OPENBLAS ... -lopenblas for the OpenBLAS columns)
   Options:        bench_gemm [--threads N] [--reps N] [--attention]
                   (--attention: only the attention table)
   Then causal attention at SmolLM2-135M's heads (9 of 64, 3 kv heads),
   batch 1, T 512 and 2048: lisa_attention_forward counted as 4 T^2 hd / 2
   flops per head (the causal half of q k^T and P v), lisa_attention_backward
   as 2.5 times that.
   OpenBLAS runs with as many threads as lisa (openblas_set_num_threads). */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef BENCH_OPENBLAS
#include <cblas.h>
#endif

typedef struct gemm_shape {
    const char *model, *layer;
    int n, in, out;
} gemm_shape;

static const gemm_shape shapes[] = {
    {"SmolLM2-135M", "q, o (576->576)", 512, 576, 576},
    {"SmolLM2-135M", "k, v (576->192)", 512, 576, 192},
    {"SmolLM2-135M", "gate, up (576->1536)", 512, 576, 1536},
    {"SmolLM2-135M", "down (1536->576)", 512, 1536, 576},
    {"SmolLM2-135M", "head (576->49152)", 512, 576, 49152},
    {"67M", "q, k, v, o (512->512)", 1024, 512, 512},
    {"67M", "gate, up (512->1376)", 1024, 512, 1376},
    {"67M", "down (1376->512)", 1024, 1376, 512},
    {"67M", "head (512->32000)", 1024, 512, 32000},
};

enum { FWD, DX, DW };
static const char *const product_names[] = {"fwd", "dx", "dw"};

static void run_lisa(int p, const gemm_shape *s, float *x, float *w, float *out, float *dout, float *dx, float *dw) {
    if (p == FWD) lisa_linear_forward(out, x, w, s->n, s->in, s->out);
    else if (p == DX) lisa_linear_backward(dx, NULL, dout, x, w, s->n, s->in, s->out);
    else lisa_linear_backward(NULL, dw, dout, x, w, s->n, s->in, s->out);
}

#ifdef BENCH_OPENBLAS
static void run_blas(int p, const gemm_shape *s, float *x, float *w, float *out, float *dout, float *dx, float *dw) {
    if (p == FWD)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->n, s->out, s->in, 1.0f, x, s->in, w, s->in, 0.0f,
                    out, s->out);
    else if (p == DX)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->n, s->in, s->out, 1.0f, dout, s->out, w, s->in,
                    1.0f, dx, s->in);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->out, s->in, s->n, 1.0f, dout, s->out, x, s->in,
                    1.0f, dw, s->in);
}
#endif

/* Both libraries keep their worker threads spinning for a while after a call
   (OpenBLAS for about 0.1 s), which would take a core from the other's next
   runs: a pause lets them go to sleep first. */
static void settle(void) {
    struct timespec pause = {0, 300000000L};
    nanosleep(&pause, NULL);
}

typedef void (*product_fn)(int, const gemm_shape *, float *, float *, float *, float *, float *, float *);

/* GFLOP/s of the fastest of reps timed runs after one warm-up (on a shared
   machine, the run least disturbed by other programs), and of their median. */
static void gflops(product_fn f, int p, const gemm_shape *s, float *x, float *w, float *out, float *dout,
                   float *dx, float *dw, int reps, double *fastest, double *typical) {
    double t[64], flops = 2.0 * s->n * s->in * s->out, best;
    int i, n = reps < 64 ? reps : 64;
    settle();
    f(p, s, x, w, out, dout, dx, dw);
    for (i = 0; i < n; i++) {
        double t0 = now_seconds();
        f(p, s, x, w, out, dout, dx, dw);
        t[i] = now_seconds() - t0;
    }
    best = t[0];
    for (i = 1; i < n; i++) best = t[i] < best ? t[i] : best;
    *fastest = flops / best / 1e9;
    *typical = flops / median(t, n) / 1e9;
}

static void fill(float *p, size_t n, lisa_rng *rng) {
    size_t i;
    for (i = 0; i < n; i++) p[i] = (float)((int)(lisa_rng_next(rng) % 2001) - 1000) * 1e-3f;
}

typedef struct attention_shape {
    int T, n_heads, n_kv_heads, head_dim;
} attention_shape;

static const attention_shape attention_shapes[] = {{512, 9, 3, 64}, {2048, 9, 3, 64}};

typedef struct attention_buffers {
    float *q, *k, *v, *out, *lse, *dq, *dk, *dv, *dout;
} attention_buffers;

static void run_attention(int backward, const attention_shape *s, const attention_buffers *a) {
    if (!backward) lisa_attention_forward(a->out, a->lse, a->q, a->k, a->v, 1, s->T, s->n_heads, s->n_kv_heads, s->head_dim);
    else
        lisa_attention_backward(a->dq, a->dk, a->dv, a->dout, a->out, a->lse, a->q, a->k, a->v, 1, s->T, s->n_heads,
                                s->n_kv_heads, s->head_dim);
}

/* The attention table: fastest (median) GFLOP/s of reps runs after a warm-up. */
static int bench_attention(int reps, lisa_rng *rng) {
    size_t n_shapes = sizeof attention_shapes / sizeof attention_shapes[0], k;
    printf("\n| attention (B 1, 9 heads of 64, 3 kv heads) | T | lisa GFLOP/s |\n|---|---|---|\n");
    for (k = 0; k < n_shapes; k++) {
        const attention_shape *s = &attention_shapes[k];
        size_t nq = (size_t)s->T * s->n_heads * s->head_dim, nkv = (size_t)s->T * s->n_kv_heads * s->head_dim;
        attention_buffers a;
        int backward, i, n = reps < 64 ? reps : 64;
        a.q = (float *)malloc(nq * sizeof(float));
        a.out = (float *)malloc(nq * sizeof(float));
        a.dout = (float *)malloc(nq * sizeof(float));
        a.dq = (float *)calloc(nq, sizeof(float));
        a.k = (float *)malloc(nkv * sizeof(float));
        a.v = (float *)malloc(nkv * sizeof(float));
        a.dk = (float *)calloc(nkv, sizeof(float));
        a.dv = (float *)calloc(nkv, sizeof(float));
        a.lse = (float *)malloc((size_t)s->n_heads * s->T * sizeof(float));
        if (!a.q || !a.out || !a.dout || !a.dq || !a.k || !a.v || !a.dk || !a.dv || !a.lse) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        fill(a.q, nq, rng);
        fill(a.dout, nq, rng);
        fill(a.k, nkv, rng);
        fill(a.v, nkv, rng);
        for (backward = 0; backward <= 1; backward++) {
            double t[64], flops = 4.0 * s->T * s->T * s->head_dim / 2 * s->n_heads * (backward ? 2.5 : 1.0), best;
            settle();
            run_attention(backward, s, &a);
            for (i = 0; i < n; i++) {
                double t0 = now_seconds();
                run_attention(backward, s, &a);
                t[i] = now_seconds() - t0;
            }
            best = t[0];
            for (i = 1; i < n; i++) best = t[i] < best ? t[i] : best;
            printf("| %s | %d | %.1f (%.1f) |\n", backward ? "backward" : "forward", s->T, flops / best / 1e9,
                   flops / median(t, n) / 1e9);
            fflush(stdout);
        }
        free(a.q); free(a.out); free(a.dout); free(a.dq); free(a.k); free(a.v); free(a.dk); free(a.dv); free(a.lse);
    }
    return 0;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 7, i, p, attention_only = 0;
    size_t n_shapes = sizeof shapes / sizeof shapes[0], k;
    lisa_rng rng;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--attention")) attention_only = 1;
        else {
            fprintf(stderr, "usage: %s [--threads N] [--reps N] [--attention]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    threads = 1;
#endif
#ifdef BENCH_OPENBLAS
    openblas_set_num_threads(threads);
    printf("threads %d, GFLOP/s of the fastest of %d runs (of their median); OpenBLAS linked\n", threads, reps);
    printf("| model | layer | product | lisa GFLOP/s | OpenBLAS GFLOP/s | lisa / OpenBLAS (fastest) |\n|---|---|---|---|---|---|\n");
#else
    printf("threads %d, GFLOP/s of the fastest of %d runs (of their median); OpenBLAS not found (make bench-gemm links it when present)\n", threads,
           reps);
    printf("| model | layer | product | lisa GFLOP/s |\n|---|---|---|---|\n");
#endif
    lisa_rng_seed(&rng, 3);
    for (k = 0; k < n_shapes && !attention_only; k++) {
        const gemm_shape *s = &shapes[k];
        size_t nx = (size_t)s->n * s->in, nw = (size_t)s->out * s->in, no = (size_t)s->n * s->out;
        float *x = (float *)malloc(nx * sizeof(float)), *w = (float *)malloc(nw * sizeof(float));
        float *out = (float *)malloc(no * sizeof(float)), *dout = (float *)malloc(no * sizeof(float));
        float *dx = (float *)calloc(nx, sizeof(float)), *dw = (float *)calloc(nw, sizeof(float));
        if (!x || !w || !out || !dout || !dx || !dw) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        fill(x, nx, &rng);
        fill(w, nw, &rng);
        fill(dout, no, &rng);
        for (p = FWD; p <= DW; p++) {
            double g, gm;
#ifdef BENCH_OPENBLAS
            double b, bm;
            gflops(run_lisa, p, s, x, w, out, dout, dx, dw, reps, &g, &gm);
            gflops(run_blas, p, s, x, w, out, dout, dx, dw, reps, &b, &bm);
            printf("| %s | %s | %s | %.1f (%.1f) | %.1f (%.1f) | %.0f%% |\n", s->model, s->layer, product_names[p], g,
                   gm, b, bm, 100.0 * g / b);
#else
            gflops(run_lisa, p, s, x, w, out, dout, dx, dw, reps, &g, &gm);
            printf("| %s | %s | %s | %.1f (%.1f) |\n", s->model, s->layer, product_names[p], g, gm);
#endif
            fflush(stdout);
        }
        free(x);
        free(w);
        free(out);
        free(dout);
        free(dx);
        free(dw);
    }
    return bench_attention(reps, &rng);
}
