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
   Options:        bench_gemm [--threads N] [--reps N]
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

int main(int argc, char **argv) {
    int threads = 2, reps = 7, i, p;
    size_t n_shapes = sizeof shapes / sizeof shapes[0], k;
    lisa_rng rng;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--threads N] [--reps N]\n", argv[0]);
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
    for (k = 0; k < n_shapes; k++) {
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
    return 0;
}
