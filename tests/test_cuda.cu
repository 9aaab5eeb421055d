/* The GPU trainer against the CPU engine (lisa.h), which is its oracle.

   Host-only checks (the planner) run everywhere. With a CUDA device: every
   kernel on random data against the CPU op (output buffers poisoned with NaN
   bytes first, so an element left unwritten fails), then training runs, full
   and LISA, against lisa_trainer_step, and the device memory count against
   lisa_cuda_plan_memory; with reserve_slots, steps that call neither
   cudaMalloc nor cudaFree (each call of lisa_cuda.h is counted) and train
   bitwise as without it. Without a device the GPU checks are skipped and not
   counted. Built with -DLISA_CUDA_EMULATE against tests/cuda_emu.h
   (tests/cuda_emu.sh), every check runs on the CPU, plus out-of-memory checks
   that only the emulator can arrange; the summary is then named after the
   thread order, test_cuda_emu_<order>.

   Tolerances: errors are measured as max |gpu - cpu| / max |cpu| over a
   buffer. fp32 kernels: 1e-5 (only the summation order differs). bf16
   kernels: 2e-2 (bf16 keeps 8 bits of mantissa, a relative rounding of 2^-9
   per stored value, and an op stores a few). Training: the limits and the
   differences measured on the emulator are listed at training_limits (fp32
   losses to 1e-6 relative on the tiny models, 1e-5 at head size 128); every
   block that never trained must keep its initial weights bit for bit. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
/* Small chunks so that the tiny model's head runs in several of them. */
#define LISA_CUDA_CE_CHUNK_FLOATS 1024
#ifndef LISA_CUDA_EMULATE
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#endif
/* Every cudaMalloc and cudaFree of lisa_cuda.h (and none of this file's own)
   is counted here, apart from the trainer's tally, so that a test can see
   whether a step called either. */
static long trainer_mallocs, trainer_frees;
static cudaError_t counted_malloc(void **p, size_t bytes) {
    trainer_mallocs++;
    return cudaMalloc(p, bytes);
}
static cudaError_t counted_free(void *p) {
    trainer_frees++;
    return cudaFree(p);
}
#define cudaMalloc counted_malloc
#define cudaFree counted_free
#define LISA_CUDA_IMPLEMENTATION
#include "lisa_cuda.h"
#undef cudaMalloc
#undef cudaFree
#include "test.h"
#include <unistd.h> /* getpid: a state file per process */

#define GIB (1024.0 * 1024.0 * 1024.0)

/* ------------------------------------------------------------------------- */
/* Planner (host only)                                                        */
/* ------------------------------------------------------------------------- */

static lisa_config llama7b(void) {
    lisa_config c;
    memset(&c, 0, sizeof c);
    c.dim = 4096;
    c.hidden_dim = 11008;
    c.n_layers = 32;
    c.n_heads = 32;
    c.vocab_size = 32000;
    c.max_seq_len = 4096;
    return c;
}

static size_t plan_sum(const lisa_memory_plan *p) {
    return p->weights + p->gradients + p->optimizer + p->activations + p->scratch + p->tables;
}

static void test_planner(void) {
    lisa_config c = llama7b();
    lisa_train_config tc = lisa_train_config_default();
    lisa_memory_plan lisa, full, f32, kept;
    lisa_error err;
    tc.batch = 1;
    tc.seq = 1024;
    tc.checkpointing = 1;
    tc.mode = LISA_MODE_LISA;
    tc.lisa_layers = 2;
    CHECK(lisa_cuda_plan_memory(&c, &tc, LISA_DTYPE_BF16, &lisa, &err) == LISA_OK, "7B plan: %s", err.message);
    printf("test_cuda: 7B LISA gamma 2, batch 1 x 1024, bf16, checkpointing: %.2f GiB (weights %.2f, gradients "
           "%.2f, optimizer %.2f, activations %.2f, scratch %.2f, tables %.4f)\n",
           lisa.peak / GIB, lisa.weights / GIB, lisa.gradients / GIB, lisa.optimizer / GIB, lisa.activations / GIB,
           lisa.scratch / GIB, lisa.tables / GIB);
    CHECK(lisa.peak < (size_t)(24.0 * GIB), "7B LISA plan %.2f GiB fits in 24 GiB", lisa.peak / GIB);
    CHECK(lisa.peak == plan_sum(&lisa), "categories add up to the peak");
    CHECK(lisa.params == 6738415616u, "7B parameters %zu", lisa.params);
    CHECK(lisa.trained_params == 2u * 32000 * 4096 + 4096 + 2u * 202383360u, "trained: embed, head, norm, 2 layers");
    CHECK(lisa.activations + lisa.scratch < (size_t)(1.5 * GIB), "activations and scratch %.2f GiB under 1.5 GiB",
          (lisa.activations + lisa.scratch) / GIB);
    tc.mode = LISA_MODE_FULL;
    CHECK(lisa_cuda_plan_memory(&c, &tc, LISA_DTYPE_BF16, &full, &err) == LISA_OK, "7B full plan");
    CHECK(full.peak == plan_sum(&full), "full: categories add up");
    CHECK(lisa.peak < full.peak && lisa.optimizer < full.optimizer, "LISA %.1f GiB under full %.1f GiB",
          lisa.peak / GIB, full.peak / GIB);
    tc.mode = LISA_MODE_LISA;
    CHECK(lisa_cuda_plan_memory(&c, &tc, LISA_DTYPE_F32, &f32, &err) == LISA_OK && f32.peak > lisa.peak,
          "LISA in fp32 needs more than in bf16");
    tc.keep_state = 1;
    CHECK(lisa_cuda_plan_memory(&c, &tc, LISA_DTYPE_BF16, &kept, &err) == LISA_OK &&
              kept.optimizer == full.optimizer && kept.gradients == lisa.gradients,
          "keep_state: every layer's moments, gradients of the active ones only");
    tc.keep_state = 0;
    c.dim = 8192;
    c.n_heads = 32; /* head size 256 */
    CHECK(lisa_cuda_plan_memory(&c, &tc, LISA_DTYPE_BF16, &kept, &err) == LISA_ERR_INVALID,
          "head size over 128 is refused");
}

/* ------------------------------------------------------------------------- */
/* Device helpers                                                             */
/* ------------------------------------------------------------------------- */

static lisa_rng rng;

static float *random_floats(size_t n, float scale) {
    float *x = (float *)malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = scale * (2.0f * lisa_rng_uniform(&rng) - 1.0f);
    return x;
}

static float *zeros(size_t n) { return (float *)calloc(n, sizeof(float)); }

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        fprintf(stderr, "cudaMalloc %zu failed\n", bytes);
        exit(1);
    }
    cudaMemset(p, 0xff, bytes); /* NaN in fp32 and bf16 */
    return p;
}

/* Device copies of host floats, as fp32 or bf16 (E). */
template <typename E> static E *dev_upload(const float *h, size_t n);
template <> float *dev_upload<float>(const float *h, size_t n) {
    float *d = (float *)dev_alloc(n * sizeof(float));
    cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice);
    return d;
}
template <> lisa__bf16 *dev_upload<lisa__bf16>(const float *h, size_t n) {
    uint16_t *b = (uint16_t *)malloc(n * sizeof(uint16_t));
    lisa__bf16 *d = (lisa__bf16 *)dev_alloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) b[i] = lisa_f32_to_bf16(h[i]);
    cudaMemcpy(d, b, n * sizeof(uint16_t), cudaMemcpyHostToDevice);
    free(b);
    return d;
}

/* Host values of a device buffer (malloc'ed). */
static float *dev_download(const float *d, size_t n) {
    float *h = (float *)malloc(n * sizeof(float));
    cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return h;
}
static float *dev_download(const lisa__bf16 *d, size_t n) {
    uint16_t *b = (uint16_t *)malloc(n * sizeof(uint16_t));
    float *h = (float *)malloc(n * sizeof(float));
    cudaMemcpy(b, d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n; i++) h[i] = lisa_bf16_to_f32(b[i]);
    free(b);
    return h;
}

/* The values as E holds them: bf16 inputs are rounded before the CPU sees them. */
template <typename E> static void round_as(float *x, size_t n) {
    if (sizeof(E) == 2)
        for (size_t i = 0; i < n; i++) x[i] = lisa_bf16_to_f32(lisa_f32_to_bf16(x[i]));
}

/* max |a - b| / max |b|; NaN anywhere gives infinity. */
static double rel_err(const float *a, const float *b, size_t n) {
    double worst = 0.0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d == d)) return INFINITY;
        if (d > worst) worst = d;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return worst / scale;
}

/* Compares device buffer d (n of E) with host ref; frees the download. */
template <typename E> static double dev_err(const E *d, const float *ref, size_t n) {
    float *h = dev_download(d, n);
    double e = rel_err(h, ref, n);
    free(h);
    return e;
}

template <typename E> static double tol(void) { return sizeof(E) == 4 ? 1e-5 : 2e-2; }
template <typename E> static const char *name(void) { return sizeof(E) == 4 ? "fp32" : "bf16"; }

static int cuda_ok(cudaError_t e) {
    cudaError_t s = cudaDeviceSynchronize();
    return e == cudaSuccess && s == cudaSuccess;
}

/* ------------------------------------------------------------------------- */
/* Kernels against the CPU ops                                                */
/* ------------------------------------------------------------------------- */

template <typename E> static void test_embedding(void) {
    int n = 37, dim = 24, vocab = 11, tokens[37];
    float *table = random_floats((size_t)vocab * dim, 1.0f), *dout = random_floats((size_t)n * dim, 1.0f);
    float *out = zeros((size_t)n * dim), *dtable = random_floats((size_t)vocab * dim, 1.0f);
    for (int i = 0; i < n; i++) tokens[i] = (int)(lisa_rng_uniform(&rng) * vocab) % vocab;
    round_as<E>(table, (size_t)vocab * dim);
    int *dtok = (int *)dev_alloc(sizeof tokens);
    cudaMemcpy(dtok, tokens, sizeof tokens, cudaMemcpyHostToDevice);
    E *dtab = dev_upload<E>(table, (size_t)vocab * dim), *dout_dev = (E *)dev_alloc((size_t)n * dim * sizeof(E));
    float *dgrad = dev_upload<float>(dtable, (size_t)vocab * dim), *dgo = dev_upload<float>(dout, (size_t)n * dim);
    lisa_embedding_forward(out, tokens, table, n, dim);
    lisa_embedding_backward(dtable, dout, tokens, n, dim);
    CHECK(cuda_ok(lisa__cuda_embedding_forward<E>(dout_dev, dtok, dtab, n, dim)), "embedding forward runs");
    CHECK(dev_err(dout_dev, out, (size_t)n * dim) == 0.0, "embedding forward (%s) copies rows", name<E>());
    CHECK(cuda_ok(lisa__cuda_embedding_backward(dgrad, dgo, dtok, n, dim)), "embedding backward runs");
    CHECK(dev_err(dgrad, dtable, (size_t)vocab * dim) <= 1e-6, "embedding backward adds repeated tokens");
    cudaFree(dtok); cudaFree(dtab); cudaFree(dout_dev); cudaFree(dgrad); cudaFree(dgo);
    free(table); free(dout); free(out); free(dtable);
}

template <typename E> static void test_rmsnorm(void) {
    int n = 13, dim = 300;
    size_t N = (size_t)n * dim;
    float *x = random_floats(N, 2.0f), *w = random_floats(dim, 1.0f), *g = random_floats(N, 1.0f);
    float *out = zeros(N), *rstd = zeros(n), *dx = random_floats(N, 1.0f), *dw = random_floats(dim, 1.0f);
    round_as<E>(x, N);
    round_as<E>(w, dim);
    E *dxin = dev_upload<E>(x, N), *dwt = dev_upload<E>(w, dim), *dout = (E *)dev_alloc(N * sizeof(E));
    float *drstd = (float *)dev_alloc(n * sizeof(float)), *dg = dev_upload<float>(g, N);
    float *ddx = dev_upload<float>(dx, N), *ddw = dev_upload<float>(dw, dim);
    lisa_rmsnorm_forward(out, rstd, x, w, n, dim, 1e-5f);
    lisa_rmsnorm_backward(dx, dw, g, x, w, rstd, n, dim);
    CHECK(cuda_ok(lisa__cuda_rmsnorm_forward<E>(dout, drstd, dxin, dwt, n, dim, 1e-5f)), "rmsnorm forward runs");
    CHECK(dev_err(dout, out, N) <= tol<E>(), "rmsnorm forward (%s)", name<E>());
    CHECK(dev_err(drstd, rstd, n) <= 1e-5, "rmsnorm rstd (%s)", name<E>());
    CHECK(cuda_ok(lisa__cuda_rmsnorm_backward<E>(ddx, ddw, dg, dxin, dwt, drstd, n, dim)), "rmsnorm backward runs");
    CHECK(dev_err(ddx, dx, N) <= tol<E>(), "rmsnorm backward dx (%s)", name<E>());
    CHECK(dev_err(ddw, dw, dim) <= tol<E>(), "rmsnorm backward dw (%s)", name<E>());
    cudaFree(dxin); cudaFree(dwt); cudaFree(dout); cudaFree(drstd); cudaFree(dg); cudaFree(ddx); cudaFree(ddw);
    free(x); free(w); free(g); free(out); free(rstd); free(dx); free(dw);
}

template <typename E> static void test_rope(void) {
    int B = 2, T = 7, nh = 3, hd = 8;
    size_t N = (size_t)B * T * nh * hd;
    float *x = random_floats(N, 1.0f), *out = zeros(N), *back = zeros(N);
    float *table = (float *)malloc((size_t)T * hd * sizeof(float));
    round_as<E>(x, N);
    lisa__cuda_rope_table(table, T, hd, 10000.0f);
    float *dtable = dev_upload<float>(table, (size_t)T * hd);
    E *dx = dev_upload<E>(x, N);
    lisa_rope_forward(out, x, B, T, nh, hd, 0, 10000.0f);
    lisa_rope_backward(back, x, B, T, nh, hd, 0, 10000.0f);
    CHECK(cuda_ok(lisa__cuda_rope<E>(dx, dtable, B, T, nh, hd, 1.0f)), "rope forward runs");
    CHECK(dev_err(dx, out, N) <= tol<E>(), "rope forward (%s): interleaved pairs", name<E>());
    cudaFree(dx);
    dx = dev_upload<E>(x, N);
    CHECK(cuda_ok(lisa__cuda_rope<E>(dx, dtable, B, T, nh, hd, -1.0f)), "rope backward runs");
    CHECK(dev_err(dx, back, N) <= tol<E>(), "rope backward (%s)", name<E>());
    cudaFree(dx); cudaFree(dtable);
    free(x); free(out); free(back); free(table);
}

template <typename E> static void test_attention(int B, int T, int nh, int nkv, int hd) {
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd, nl = (size_t)B * nh * T;
    float *q = random_floats(nq, 1.0f), *k = random_floats(nk, 1.0f), *v = random_floats(nk, 1.0f);
    float *dout = random_floats(nq, 1.0f), *out = zeros(nq), *lse = zeros(nl);
    float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
    round_as<E>(q, nq); round_as<E>(k, nk); round_as<E>(v, nk); round_as<E>(dout, nq);
    lisa_attention_forward(out, lse, q, k, v, B, T, nh, nkv, hd);
    round_as<E>(out, nq); /* backward reads the stored output */
    lisa_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, B, T, nh, nkv, hd);
    E *Dq = dev_upload<E>(q, nq), *Dk = dev_upload<E>(k, nk), *Dv = dev_upload<E>(v, nk);
    E *Dout = (E *)dev_alloc(nq * sizeof(E)), *Ddo = dev_upload<E>(dout, nq);
    E *Ddq = (E *)dev_alloc(nq * sizeof(E)), *Ddk = (E *)dev_alloc(nk * sizeof(E)), *Ddv = (E *)dev_alloc(nk * sizeof(E));
    float *Dlse = (float *)dev_alloc(nl * sizeof(float));
    CHECK(cuda_ok(lisa__cuda_attention_forward<E>(Dout, Dlse, Dq, Dk, Dv, B, T, nh, nkv, hd)), "attention forward runs");
    CHECK(dev_err(Dout, out, nq) <= tol<E>(), "attention forward (%s) B%d T%d heads %d/%d hd %d", name<E>(), B, T, nh,
          nkv, hd);
    CHECK(dev_err(Dlse, lse, nl) <= tol<E>(), "attention lse (%s) hd %d", name<E>(), hd);
    cudaFree(Dout);
    Dout = dev_upload<E>(out, nq);
    CHECK(cuda_ok(lisa__cuda_attention_backward<E>(Ddq, Ddk, Ddv, Ddo, Dout, Dlse, Dq, Dk, Dv, B, T, nh, nkv, hd)),
          "attention backward runs");
    CHECK(dev_err(Ddq, dq, nq) <= 2 * tol<E>(), "attention dq (%s) hd %d", name<E>(), hd);
    CHECK(dev_err(Ddk, dk, nk) <= 2 * tol<E>(), "attention dk (%s) hd %d", name<E>(), hd);
    CHECK(dev_err(Ddv, dv, nk) <= 2 * tol<E>(), "attention dv (%s) hd %d", name<E>(), hd);
    cudaFree(Dq); cudaFree(Dk); cudaFree(Dv); cudaFree(Dout); cudaFree(Ddo); cudaFree(Ddq); cudaFree(Ddk);
    cudaFree(Ddv); cudaFree(Dlse);
    free(q); free(k); free(v); free(dout); free(out); free(lse); free(dq); free(dk); free(dv);
}

template <typename E> static void test_elementwise(void) {
    size_t n = 1000;
    float *a = random_floats(n, 4.0f), *b = random_floats(n, 1.0f), *g = random_floats(n, 1.0f);
    float *out = zeros(n), *da = zeros(n), *db = zeros(n), *sum = zeros(n);
    round_as<E>(a, n); round_as<E>(b, n); round_as<E>(g, n);
    E *A = dev_upload<E>(a, n), *Bd = dev_upload<E>(b, n), *G = dev_upload<E>(g, n);
    E *O = (E *)dev_alloc(n * sizeof(E)), *DA = (E *)dev_alloc(n * sizeof(E)), *DB = (E *)dev_alloc(n * sizeof(E));
    lisa_swiglu_forward(out, a, b, n);
    lisa_swiglu_backward(da, db, g, a, b, n);
    lisa_residual_forward(sum, a, b, n);
    CHECK(cuda_ok(lisa__cuda_swiglu_forward<E>(O, A, Bd, n)), "swiglu forward runs");
    CHECK(dev_err(O, out, n) <= tol<E>(), "swiglu forward (%s)", name<E>());
    CHECK(cuda_ok(lisa__cuda_swiglu_backward<E>(DA, DB, G, A, Bd, n)), "swiglu backward runs");
    CHECK(dev_err(DA, da, n) <= tol<E>() && dev_err(DB, db, n) <= tol<E>(), "swiglu backward (%s)", name<E>());
    CHECK(cuda_ok(lisa__cuda_residual<E>(O, A, Bd, n)), "residual runs");
    CHECK(dev_err(O, sum, n) <= tol<E>(), "residual (%s)", name<E>());
    cudaFree(A); cudaFree(Bd); cudaFree(G); cudaFree(O); cudaFree(DA); cudaFree(DB);
    free(a); free(b); free(g); free(out); free(da); free(db); free(sum);
}

template <typename E> static void test_cross_entropy(void) {
    int n = 9, V = 300, targets[9];
    size_t N = (size_t)n * V;
    float *logits = random_floats(N, 5.0f), *losses = zeros(n), *dlogits = zeros(N), dloss = 0.25f;
    for (int i = 0; i < n; i++) targets[i] = i % 3 == 1 ? LISA_IGNORE : (int)(lisa_rng_uniform(&rng) * V) % V;
    lisa_cross_entropy_forward(losses, logits, targets, n, V, NULL);
    lisa_cross_entropy_backward(dlogits, logits, targets, n, V, dloss);
    int *Dt = (int *)dev_alloc(sizeof targets);
    cudaMemcpy(Dt, targets, sizeof targets, cudaMemcpyHostToDevice);
    float *Dl = dev_upload<float>(logits, N), *Dloss = (float *)dev_alloc(n * sizeof(float));
    E *Dd = sizeof(E) == 4 ? (E *)(void *)Dl : (E *)dev_alloc(N * sizeof(E)); /* fp32: in place */
    CHECK(cuda_ok(lisa__cuda_cross_entropy<E>(Dloss, (E *)NULL, Dl, Dt, n, V, dloss)), "cross-entropy (loss only) runs");
    CHECK(dev_err(Dloss, losses, n) <= 1e-5, "cross-entropy row losses, ignored rows 0");
    CHECK(cuda_ok(lisa__cuda_cross_entropy<E>(Dloss, Dd, Dl, Dt, n, V, dloss)), "cross-entropy with gradient runs");
    CHECK(dev_err(Dloss, losses, n) <= 1e-5, "cross-entropy row losses with the gradient (%s)", name<E>());
    CHECK(dev_err(Dd, dlogits, N) <= tol<E>(), "cross-entropy gradient (%s)%s", name<E>(),
          sizeof(E) == 4 ? ", in place" : "");
    if (sizeof(E) == 2) cudaFree(Dd);
    cudaFree(Dt); cudaFree(Dl); cudaFree(Dloss);
    free(logits); free(losses); free(dlogits);
}

template <typename E> static void test_linear(cublasHandle_t h) {
    int n = 19, in = 40, out = 24;
    float *x = random_floats((size_t)n * in, 1.0f), *w = random_floats((size_t)out * in, 1.0f);
    float *g = random_floats((size_t)n * out, 1.0f), *y = zeros((size_t)n * out);
    float *dx = zeros((size_t)n * in), *dw = random_floats((size_t)out * in, 1.0f);
    round_as<E>(x, (size_t)n * in); round_as<E>(w, (size_t)out * in); round_as<E>(g, (size_t)n * out);
    E *X = dev_upload<E>(x, (size_t)n * in), *W = dev_upload<E>(w, (size_t)out * in), *G = dev_upload<E>(g, (size_t)n * out);
    float *Y = (float *)dev_alloc((size_t)n * out * 4), *DX = (float *)dev_alloc((size_t)n * in * 4);
    float *DW = dev_upload<float>(dw, (size_t)out * in);
    lisa_linear_forward(y, x, w, n, in, out);
    lisa_linear_backward(dx, dw, g, x, w, n, in, out);
    CHECK(lisa__cuda_linear_forward<E>(h, Y, CUDA_R_32F, X, W, n, in, out) == CUBLAS_STATUS_SUCCESS && cuda_ok(cudaSuccess),
          "linear forward runs");
    CHECK(dev_err(Y, y, (size_t)n * out) <= 1e-5, "linear forward (%s inputs, fp32 out)", name<E>());
    CHECK(lisa__cuda_linear_backward_dx<E>(h, DX, CUDA_R_32F, 0.0f, G, W, n, in, out) == CUBLAS_STATUS_SUCCESS &&
              lisa__cuda_linear_backward_dw<E>(h, DW, G, X, n, in, out) == CUBLAS_STATUS_SUCCESS && cuda_ok(cudaSuccess),
          "linear backward runs");
    CHECK(dev_err(DX, dx, (size_t)n * in) <= 1e-5, "linear backward dx (%s)", name<E>());
    CHECK(dev_err(DW, dw, (size_t)out * in) <= 1e-5, "linear backward dw accumulates (%s)", name<E>());
    cudaFree(X); cudaFree(W); cudaFree(G); cudaFree(Y); cudaFree(DX); cudaFree(DW);
    free(x); free(w); free(g); free(y); free(dx); free(dw);
}

template <typename E> static void test_adamw(void) {
    size_t n = 1000;
    float *p = random_floats(n, 1.0f), *g = random_floats(n, 1e-2f), *m = random_floats(n, 1e-2f);
    float *v = random_floats(n, 1e-4f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    float *P = dev_upload<float>(p, n), *Gd = dev_upload<float>(g, n), *M = dev_upload<float>(m, n);
    float *Vd = dev_upload<float>(v, n);
    E *copy = sizeof(E) == 2 ? (E *)dev_alloc(n * sizeof(E)) : (E *)NULL;
    lisa_adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3);
    CHECK(cuda_ok(lisa__cuda_adamw_update<E>(P, copy, Gd, M, Vd, n,
                                             lisa_adamw_scalars_at(1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3))),
          "adamw runs");
    CHECK(dev_err(P, p, n) <= 1e-6 && dev_err(M, m, n) <= 1e-6 && dev_err(Vd, v, n) <= 1e-6,
          "adamw (%s master) as lisa_adamw_update", name<E>());
    if (copy) CHECK(dev_err(copy, p, n) <= 1e-2, "adamw refreshes the bf16 copy");
    cudaFree(P); cudaFree(Gd); cudaFree(M); cudaFree(Vd);
    if (copy) cudaFree(copy);
    free(p); free(g); free(m); free(v);
}

static void test_norm(void) {
    size_t n = 100003;
    float *x = random_floats(n, 1.0f);
    double cpu = 0.0, gpu = 0.0, part_h[LISA__CUDA_NORM_BLOCKS];
    float *X = dev_upload<float>(x, n);
    double *parts = (double *)dev_alloc(LISA__CUDA_NORM_BLOCKS * sizeof(double));
    for (size_t i = 0; i < n; i++) cpu += (double)x[i] * x[i];
    CHECK(cuda_ok(lisa__cuda_sum_squares(parts, X, n)), "sum of squares runs");
    cudaMemcpy(part_h, parts, sizeof part_h, cudaMemcpyDeviceToHost);
    for (int i = 0; i < LISA__CUDA_NORM_BLOCKS; i++) gpu += part_h[i];
    CHECK(fabs(gpu - cpu) <= 1e-10 * cpu, "sum of squares %g vs %g", gpu, cpu);
    CHECK(cuda_ok(lisa__cuda_scale(X, n, 0.5f)), "scale runs");
    for (size_t i = 0; i < n; i++) x[i] *= 0.5f;
    CHECK(dev_err(X, x, n) == 0.0, "scale");
    cudaFree(X); cudaFree(parts);
    free(x);
}

template <typename E> static void test_kernels(cublasHandle_t h) {
    test_embedding<E>();
    test_rmsnorm<E>();
    test_rope<E>();
    test_attention<E>(2, 45, 4, 2, 16);
    test_attention<E>(1, 70, 2, 1, 128);
    test_attention<E>(1, 33, 3, 3, 6);
    test_elementwise<E>();
    test_cross_entropy<E>();
    test_linear<E>(h);
    test_adamw<E>();
}

/* ------------------------------------------------------------------------- */
/* Training against lisa_trainer_step                                         */
/* ------------------------------------------------------------------------- */

static lisa_config tiny_config(int tied) {
    lisa_config c;
    memset(&c, 0, sizeof c);
    c.dim = 32;
    c.hidden_dim = 48;
    c.n_layers = 4;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 64;
    c.max_seq_len = 32;
    c.tied_head = tied;
    return c;
}

static lisa_train_config tiny_train(lisa_mode mode, int checkpointing) {
    lisa_train_config tc = lisa_train_config_default();
    tc.batch = 2;
    tc.seq = 16;
    tc.schedule.lr = 3e-3f;
    tc.schedule.warmup = 2;
    tc.weight_decay = 0.1f;
    tc.grad_clip = 1.0f;
    tc.checkpointing = checkpointing;
    tc.mode = mode;
    tc.lisa_layers = 2;
    tc.lisa_interval = 5;
    tc.lisa_seed = 7;
    return tc;
}

static void tiny_batch(int step, int n, int vocab, int *inputs, int *targets) {
    lisa_rng r;
    lisa_rng_seed(&r, 1000 + (uint64_t)(step % 3)); /* a few batches, repeated: the loss falls */
    for (int i = 0; i < n; i++) {
        inputs[i] = (int)(lisa_rng_next(&r) % (uint64_t)vocab);
        targets[i] = i % 7 == 3 ? LISA_IGNORE : (int)(lisa_rng_next(&r) % (uint64_t)vocab);
    }
}

static double max_weight_err(const lisa_model *a, const lisa_model *b) {
    return rel_err(a->params, b->params, a->layout.n_params);
}

/* |a - b| / |b| over all weights (2-norms): where max_weight_err shows the
   worst weight, this shows how far the weights as a whole went apart. */
static double rms_weight_err(const lisa_model *a, const lisa_model *b) {
    double d2 = 0.0, b2 = 1e-60;
    for (size_t i = 0; i < a->layout.n_params; i++) {
        double d = (double)a->params[i] - b->params[i];
        d2 += d * d;
        b2 += (double)b->params[i] * b->params[i];
    }
    return d2 == d2 ? sqrt(d2 / b2) : INFINITY;
}

/* Whether block b trained at some step: a layer when it was ever active; the
   embedding, final norm and head unless frozen (a tied head's matrix is the
   embedding block, frozen by either flag). Written out here, not asked of the
   library, so that a trainer that updates a frozen block is caught. */
static int block_trained(const lisa_config *c, const lisa_train_config *tc, const int *layer_trained, int b) {
    if (b >= LISA_BLOCK_LAYER(0) && b < LISA_BLOCK_LAYER(c->n_layers)) return layer_trained[b - LISA_BLOCK_LAYER(0)];
    if (b == LISA_BLOCK_EMBED) return !tc->freeze_embed && !(c->tied_head && tc->freeze_head);
    if (b == lisa_block_final_norm(c)) return !tc->freeze_final_norm;
    return !c->tied_head && !tc->freeze_head;
}

/* Blocks of got that never trained and differ from init in any bit; the count
   of never-trained blocks into *frozen. */
static int frozen_blocks_changed(const lisa_model *got, const float *init, const lisa_train_config *tc,
                                 const int *layer_trained, int *frozen) {
    const lisa_config *c = &got->config;
    int changed = 0;
    *frozen = 0;
    for (int b = 0; b < lisa_n_blocks(c); b++) {
        size_t off = lisa_block_offset(c, b), n = lisa_block_size(c, b);
        if (n == 0 || block_trained(c, tc, layer_trained, b)) continue;
        ++*frozen;
        changed += memcmp(got->params + off, init + off, n * sizeof(float)) != 0;
    }
    return changed;
}

/* How far the GPU trainer may stray from the CPU trainer: relative
   differences in the step losses, the gradient norms, the worst weight (of
   the largest) and all weights together (2-norms) after training. Measured on
   the emulated GPU (each run below prints its own), the largest of the runs:
   fp32 tiny models: losses 1.1e-7 (one rounding of a float near 4), gradient
   norms 1.6e-7, weights 2.5e-5 worst and 1.8e-6 together (AdamW's sign-like
   update turns round-off in near-zero gradients into whole steps).
   fp32 head size 128 (sums 4-8 times longer): 3.2e-6, 7.3e-6, 2.4e-4, 1.1e-5.
   bf16 tiny: 2.6e-4, 1.3e-2, 1.3e-2, 1.0e-2; head size 128: 3.0e-3, 1.9e-3,
   1.2e-2, 9.3e-3 (bf16 keeps 8 bits: 2^-9 relative per stored value).
   A GPU sums in other orders and rounds expf its own way, so the limits sit
   a few times above these. */
typedef struct limits {
    double loss, grad_norm, weights, weights_all;
} limits;

static limits training_limits(const lisa_config *c, lisa_dtype dtype) {
    static const limits f32 = {1e-6, 1e-6, 1e-4, 1e-5}, f32_wide = {1e-5, 2e-5, 1e-3, 5e-5};
    static const limits bf16 = {1e-3, 4e-2, 4e-2, 3e-2}, bf16_wide = {1e-2, 4e-2, 4e-2, 3e-2};
    int wide = c->dim > 64; /* the head-size-128 model; the others have dim 32 */
    if (dtype == LISA_DTYPE_F32) return wide ? f32_wide : f32;
    return wide ? bf16_wide : bf16;
}

/* steps of the CPU trainer and the GPU trainer side by side. */
static void test_training(const char *what, lisa_config c, lisa_train_config tc, lisa_dtype dtype, int steps) {
    lisa_model m, got;
    lisa_trainer cpu;
    lisa_cuda_trainer *gpu = NULL;
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_memory_plan plan;
    lisa_error err;
    int inputs[64], targets[64], layers[8], layer_trained[8] = {0}, same_layers = 1, ok_steps = 1, steady = 1;
    int frozen = 0, changed;
    limits lim = training_limits(&c, dtype);
    double worst_loss = 0.0, worst_norm = 0.0, worst_weight, all_weights;
    float first = 0.0f, last = 0.0f, *init;
    size_t bytes0 = 0;
    cc.dtype = dtype;
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 42);
    if (dtype == LISA_DTYPE_BF16) /* the CPU starts from the weights the GPU holds */
        for (size_t i = 0; i < m.layout.n_params; i++) m.params[i] = lisa_bf16_to_f32(lisa_f32_to_bf16(m.params[i]));
    init = (float *)malloc(m.layout.n_params * sizeof(float));
    memcpy(init, m.params, m.layout.n_params * sizeof(float));
    CHECK(lisa_cuda_trainer_create(&gpu, &c, &m, 0, &tc, &cc, &err) == LISA_OK, "%s: create: %s", what, err.message);
    if (!gpu) {
        lisa_model_free(&m);
        free(init);
        return;
    }
    CHECK(lisa_trainer_init(&cpu, &m, &tc, NULL, NULL) == LISA_OK, "%s: CPU trainer", what);
    CHECK(lisa_cuda_plan_memory(&c, &tc, dtype, &plan, &err) == LISA_OK, "%s: plan", what);
    for (int s = 0; s < steps; s++) {
        lisa_step_info ci, gi;
        int n_active;
        tiny_batch(s, tc.batch * tc.seq, c.vocab_size, inputs, targets);
        if (lisa_cuda_trainer_step(gpu, inputs, targets, &gi) != LISA_OK) {
            ok_steps = 0;
            fprintf(stderr, "%s step %d: %s\n", what, s, lisa_cuda_trainer_message(gpu));
            break;
        }
        lisa_trainer_step(&cpu, inputs, targets, &ci);
        if (s == 0) {
            first = gi.loss;
            bytes0 = lisa_cuda_trainer_bytes(gpu);
        }
        last = gi.loss;
        if (fabs(gi.loss - ci.loss) / fabs(ci.loss) > worst_loss) worst_loss = fabs(gi.loss - ci.loss) / fabs(ci.loss);
        if (!(gi.loss == gi.loss)) worst_loss = INFINITY;
        if (gi.switched != ci.switched || gi.step != ci.step || gi.lr != ci.lr) same_layers = 0;
        n_active = lisa_cuda_trainer_active_layers(gpu, layers);
        if (n_active != cpu.n_active || memcmp(layers, cpu.active_layers, (size_t)cpu.n_active * sizeof(int)) != 0)
            same_layers = 0;
        for (int i = 0; i < n_active; i++) layer_trained[layers[i]] = 1;
        if (!tc.keep_state && lisa_cuda_trainer_bytes(gpu) != bytes0) steady = 0;
        if (fabs(gi.grad_norm - ci.grad_norm) > worst_norm * ci.grad_norm)
            worst_norm = fabs(gi.grad_norm - ci.grad_norm) / ci.grad_norm;
        if (!(gi.grad_norm == gi.grad_norm)) worst_norm = INFINITY;
    }
    CHECK(ok_steps, "%s: %d steps run", what, steps);
    CHECK(worst_loss <= lim.loss, "%s: losses within %g of the CPU trainer's (worst %g)", what, lim.loss, worst_loss);
    CHECK(worst_norm <= lim.grad_norm, "%s: gradient norms within %g of the CPU trainer's (worst %g)", what,
          lim.grad_norm, worst_norm);
    CHECK(same_layers, "%s: the same active layers, switches, steps and learning rates as the CPU trainer", what);
    CHECK(last < first, "%s: the loss falls (%g -> %g)", what, first, last);
    CHECK(lisa_cuda_trainer_steps(gpu) == steps, "%s: step count", what);
    if (!tc.keep_state) {
        CHECK(lisa_cuda_trainer_peak_bytes(gpu) == plan.peak, "%s: counted peak %zu == planned %zu", what,
              lisa_cuda_trainer_peak_bytes(gpu), plan.peak);
        CHECK(steady, "%s: switches release what they take: device bytes stay %zu", what, bytes0);
    }
    lisa_model_init(&got, &c, NULL, NULL);
    CHECK(lisa_cuda_trainer_get_model(gpu, &got, &err) == LISA_OK, "%s: get_model", what);
    changed = frozen_blocks_changed(&got, init, &tc, layer_trained, &frozen);
    if (frozen > 0)
        CHECK(changed == 0, "%s: the %d blocks that never trained keep their initial weights bit for bit (%d changed)",
              what, frozen, changed);
    worst_weight = max_weight_err(&got, &m);
    all_weights = rms_weight_err(&got, &m);
    printf("test_cuda: %s: relative differences from the CPU trainer: losses %.2g, gradient norms %.2g, weights "
           "%.2g worst, %.2g together; %d frozen blocks\n", what, worst_loss, worst_norm, worst_weight, all_weights,
           frozen);
    CHECK(worst_weight <= lim.weights && all_weights <= lim.weights_all,
          "%s: weights after training within %g (worst) and %g (together) of the CPU's (%g, %g)", what, lim.weights,
          lim.weights_all, worst_weight, all_weights);
    lisa_model_free(&got);
    lisa_cuda_trainer_free(gpu);
    lisa_trainer_free(&cpu);
    lisa_model_free(&m);
    free(init);
}

static void test_eval_and_manual(void) {
    lisa_config c = tiny_config(0);
    lisa_train_config tc = tiny_train(LISA_MODE_MANUAL, 1);
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_model m;
    lisa_acts acts;
    lisa_trainer cpu;
    lisa_cuda_trainer *gpu = NULL;
    lisa_error err;
    int inputs[32], targets[32], pick[2] = {3, 1}, layers[4], ok = 1;
    float loss = 0.0f, cpu_loss;
    double worst = 0.0;
    cc.dtype = LISA_DTYPE_F32;
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 5);
    if (lisa_cuda_trainer_create(&gpu, &c, &m, 0, &tc, &cc, &err) != LISA_OK) {
        CHECK(0, "manual: create: %s", err.message);
        lisa_model_free(&m);
        return;
    }
    tiny_batch(0, 32, c.vocab_size, inputs, targets);
    lisa_acts_init(&acts, &c, 1, 10, 0, NULL, NULL);
    cpu_loss = lisa_model_forward(&m, &acts, inputs, targets, 1, 10);
    CHECK(lisa_cuda_trainer_eval(gpu, inputs, targets, 1, 10, &loss) == LISA_OK, "eval runs");
    CHECK(fabs(loss - cpu_loss) <= 1e-6 * fabs(cpu_loss), "eval loss %g vs CPU forward %g, to 1e-6 (1.1e-7 measured)",
          loss, cpu_loss);
    lisa_acts_free(&acts);
    inputs[0] = c.vocab_size;
    CHECK(lisa_cuda_trainer_step(gpu, inputs, targets, NULL) == LISA_ERR_INVALID, "a token outside the vocab is refused");
    inputs[0] = 0;
    lisa_trainer_init(&cpu, &m, &tc, NULL, NULL);
    CHECK(lisa_cuda_trainer_set_active_layers(gpu, pick, 2) == LISA_OK && lisa_trainer_set_active_layers(&cpu, pick, 2) == LISA_OK,
          "manual: set layers");
    CHECK(lisa_cuda_trainer_active_layers(gpu, layers) == 2 && layers[0] == 1 && layers[1] == 3, "manual: sorted layers");
    for (int s = 0; s < 4; s++) {
        lisa_step_info ci, gi;
        tiny_batch(s, 32, c.vocab_size, inputs, targets);
        if (lisa_cuda_trainer_step(gpu, inputs, targets, &gi) != LISA_OK) {
            ok = 0;
            break;
        }
        lisa_trainer_step(&cpu, inputs, targets, &ci);
        if (fabs(gi.loss - ci.loss) / ci.loss > worst) worst = fabs(gi.loss - ci.loss) / ci.loss;
    }
    CHECK(ok && worst <= 1e-6, "manual mode: 4 steps match the CPU to 1e-6 (worst %g; 0 measured)", worst);
    lisa_trainer_free(&cpu);
    lisa_cuda_trainer_free(gpu);
    lisa_model_free(&m);
}

static void test_keep_state_and_random_init(void) {
    lisa_config c = tiny_config(0);
    lisa_train_config tc = tiny_train(LISA_MODE_LISA, 0);
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_cuda_trainer *gpu = NULL;
    lisa_memory_plan plan;
    lisa_step_info info;
    lisa_error err;
    int inputs[32], targets[32], ok = 1;
    size_t before;
    tc.keep_state = 1;
    tc.lisa_interval = 1;
    tc.lisa_layers = 1;
    if (lisa_cuda_trainer_create(&gpu, &c, NULL, 3, &tc, &cc, &err) != LISA_OK) {
        CHECK(0, "random init: create: %s", err.message);
        return;
    }
    tiny_batch(0, 32, c.vocab_size, inputs, targets);
    ok = lisa_cuda_trainer_step(gpu, inputs, targets, &info) == LISA_OK;
    CHECK(ok && fabs(info.loss - logf((float)c.vocab_size)) < 0.5f, "random init on the device: loss %g near ln(vocab)",
          info.loss);
    before = lisa_cuda_trainer_bytes(gpu);
    for (int s = 1; s < 30 && ok; s++) ok = lisa_cuda_trainer_step(gpu, inputs, targets, &info) == LISA_OK;
    lisa_cuda_plan_memory(&c, &tc, LISA_DTYPE_BF16, &plan, &err);
    CHECK(ok && lisa_cuda_trainer_bytes(gpu) > before, "keep_state: sampled layers keep their moments");
    CHECK(lisa_cuda_trainer_peak_bytes(gpu) <= plan.peak, "keep_state: the plan bounds the peak");
    lisa_cuda_trainer_free(gpu);
}

/* ------------------------------------------------------------------------- */
/* Stop and resume through lisa.h's state files                               */
/* ------------------------------------------------------------------------- */

static char state_path[64];

/* Steps from..to-1 of the tiny batches; losses into loss[step]. */
static int gpu_steps(lisa_cuda_trainer *gpu, const lisa_config *c, const lisa_train_config *tc, int from, int to,
                     float *loss) {
    int inputs[64], targets[64];
    for (int s = from; s < to; s++) {
        lisa_step_info info;
        tiny_batch(s, tc->batch * tc->seq, c->vocab_size, inputs, targets);
        if (lisa_cuda_trainer_step(gpu, inputs, targets, &info) != LISA_OK) return 0;
        loss[s] = info.loss;
    }
    return 1;
}

static void cpu_steps(lisa_trainer *cpu, int from, int to, float *loss) {
    int inputs[64], targets[64];
    for (int s = from; s < to; s++) {
        lisa_step_info info;
        tiny_batch(s, cpu->config.batch * cpu->config.seq, cpu->model->config.vocab_size, inputs, targets);
        lisa_trainer_step(cpu, inputs, targets, &info);
        loss[s] = info.loss;
    }
}

/* gpu's state written to a state file as a CPU trainer's (gpu is freed). */
static int gpu_save(lisa_cuda_trainer *gpu) {
    lisa_trainer cpu;
    lisa_model m;
    lisa_error err;
    int ok = lisa_cuda_trainer_to_cpu(gpu, &cpu, &m, &err) == LISA_OK;
    lisa_cuda_trainer_free(gpu);
    if (!ok) {
        fprintf(stderr, "to_cpu: %s\n", err.message);
        return 0;
    }
    ok = lisa_trainer_save_state(&cpu, state_path, (uint64_t)cpu.step, &err) == LISA_OK;
    lisa_trainer_free(&cpu);
    lisa_model_free(&m);
    return ok;
}

/* A GPU trainer of dtype from the state file; NULL on failure. */
static lisa_cuda_trainer *gpu_load(lisa_dtype dtype) {
    lisa_trainer cpu;
    lisa_model m;
    lisa_error err;
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_cuda_trainer *gpu = NULL;
    cc.dtype = dtype;
    if (lisa_trainer_load_state(&cpu, &m, state_path, NULL, NULL, &err) != LISA_OK) {
        fprintf(stderr, "load: %s\n", err.message);
        return NULL;
    }
    if (lisa_cuda_trainer_from_cpu(&gpu, &cpu, &cc, &err) != LISA_OK) fprintf(stderr, "from_cpu: %s\n", err.message);
    lisa_trainer_free(&cpu);
    lisa_model_free(&m);
    return gpu;
}

/* Bitwise the same weights, moments, steps, layers, sampler and step count. */
static int same_state(const lisa_trainer *a, const lisa_trainer *b) {
    const lisa_model *ma = a->model, *mb = b->model;
    if (memcmp(ma->params, mb->params, ma->layout.n_params * sizeof(float)) || a->step != b->step ||
        a->n_active != b->n_active || memcmp(a->active_layers, b->active_layers, (size_t)a->n_active * sizeof(int)) ||
        a->sampler.rng.state != b->sampler.rng.state || a->sampler.next != b->sampler.next)
        return 0;
    for (int i = 0; i < lisa_n_blocks(&ma->config); i++) {
        const lisa_block_state *x = &a->blocks[i], *y = &b->blocks[i];
        if (x->active != y->active || x->step != y->step || !x->m != !y->m ||
            (x->m && memcmp(x->m, y->m, 2 * a->block_sizes[i] * sizeof(float))))
            return 0;
    }
    return 1;
}

static int same_gpu_state(const lisa_cuda_trainer *a, const lisa_cuda_trainer *b) {
    lisa_trainer ca, cb;
    lisa_model ma, mb;
    int same;
    if (lisa_cuda_trainer_to_cpu(a, &ca, &ma, NULL) != LISA_OK) return 0;
    if (lisa_cuda_trainer_to_cpu(b, &cb, &mb, NULL) != LISA_OK) {
        lisa_trainer_free(&ca);
        lisa_model_free(&ma);
        return 0;
    }
    same = same_state(&ca, &cb);
    lisa_trainer_free(&ca);
    lisa_trainer_free(&cb);
    lisa_model_free(&ma);
    lisa_model_free(&mb);
    return same;
}

/* GPU: steps straight == stop steps, to_cpu, save, load, from_cpu, the rest:
   the same losses and state, bit for bit. */
static void test_resume(const char *what, lisa_config c, lisa_train_config tc, lisa_dtype dtype, int steps, int stop) {
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_cuda_trainer *straight = NULL, *part = NULL;
    lisa_model m;
    lisa_error err;
    float a[32], b[32];
    int ok;
    cc.dtype = dtype;
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 42);
    ok = lisa_cuda_trainer_create(&straight, &c, &m, 0, &tc, &cc, &err) == LISA_OK &&
         lisa_cuda_trainer_create(&part, &c, &m, 0, &tc, &cc, &err) == LISA_OK;
    lisa_model_free(&m);
    ok = ok && gpu_steps(straight, &c, &tc, 0, steps, a) && gpu_steps(part, &c, &tc, 0, stop, b);
    if (ok) {
        ok = gpu_save(part);
        part = ok ? gpu_load(dtype) : NULL;
    }
    ok = ok && part && gpu_steps(part, &c, &tc, stop, steps, b);
    CHECK(ok, "%s: %d steps, and %d + %d through a state file, run", what, steps, stop, steps - stop);
    if (ok) {
        CHECK(!memcmp(a, b, (size_t)steps * sizeof(float)), "%s: the resumed run's losses are the straight run's, "
              "bit for bit (last %.9g vs %.9g)", what, b[steps - 1], a[steps - 1]);
        CHECK(same_gpu_state(straight, part), "%s: the same weights, moments, layers and sampler, bit for bit", what);
    }
    lisa_cuda_trainer_free(straight);
    lisa_cuda_trainer_free(part);
}

/* fp32 state across devices: a GPU run continued by the CPU trainer, and a
   CPU run continued on the GPU, follow the straight run of the other device
   (only the arithmetic differs: the first step closely, then as training
   runs apart). */
static void test_resume_across(void) {
    lisa_config c = tiny_config(0);
    lisa_train_config tc = tiny_train(LISA_MODE_LISA, 0);
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_cuda_trainer *gpu = NULL, *part = NULL;
    lisa_trainer cpu, resumed; /* part: the GPU run that stops */
    lisa_model m, rm;
    lisa_error err;
    float g[12], x[12], straight[12];
    int steps = 12, stop = 7, ok;
    double first = 0.0, worst = 0.0;
    cc.dtype = LISA_DTYPE_F32;
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 42);
    ok = lisa_cuda_trainer_create(&gpu, &c, &m, 0, &tc, &cc, &err) == LISA_OK &&
         lisa_cuda_trainer_create(&part, &c, &m, 0, &tc, &cc, &err) == LISA_OK;
    ok = ok && gpu_steps(gpu, &c, &tc, 0, steps, g) && gpu_steps(part, &c, &tc, 0, stop, x);
    if (ok) ok = gpu_save(part);
    else lisa_cuda_trainer_free(part);
    ok = ok && lisa_trainer_load_state(&resumed, &rm, state_path, NULL, NULL, &err) == LISA_OK;
    CHECK(ok, "across devices: the GPU run's state loads on the CPU");
    if (ok) {
        cpu_steps(&resumed, stop, steps, x);
        first = fabs(x[stop] - g[stop]) / g[stop];
        for (int s = stop; s < steps; s++) worst = fmax(worst, fabs(x[s] - g[s]) / g[s]);
        CHECK(first <= 1e-6 && worst <= 1e-6, "GPU (fp32) state continued on the CPU: losses within %g of the GPU's "
              "(first %g, worst %g; 0 and 6.6e-8 measured)", 1e-6, first, worst);
        lisa_trainer_free(&resumed);
        lisa_model_free(&rm);
    }
    lisa_cuda_trainer_free(gpu);
    /* The CPU trainer runs stop steps on m, its state resumes on the GPU. */
    lisa_trainer_init(&cpu, &m, &tc, NULL, NULL);
    cpu_steps(&cpu, 0, stop, straight);
    ok = lisa_trainer_save_state(&cpu, state_path, (uint64_t)stop, &err) == LISA_OK;
    cpu_steps(&cpu, stop, steps, straight);
    lisa_trainer_free(&cpu);
    lisa_model_free(&m);
    gpu = ok ? gpu_load(LISA_DTYPE_F32) : NULL;
    ok = gpu && gpu_steps(gpu, &c, &tc, stop, steps, g);
    CHECK(ok, "across devices: the CPU run's state resumes on the GPU");
    if (ok) {
        first = fabs(g[stop] - straight[stop]) / straight[stop];
        worst = 0.0;
        for (int s = stop; s < steps; s++) worst = fmax(worst, fabs(g[s] - straight[s]) / straight[s]);
        CHECK(first <= 1e-6 && worst <= 1e-6, "CPU state continued on the GPU (fp32): losses within %g of the CPU's "
              "(first %g, worst %g; 0 and 6.6e-8 measured)", 1e-6, first, worst);
    }
    lisa_cuda_trainer_free(gpu);
}

static void test_resume_all(void) {
    lisa_train_config kept = tiny_train(LISA_MODE_LISA, 1);
    kept.keep_state = 1;
    kept.lisa_interval = 2;
    kept.lisa_layers = 1;
    snprintf(state_path, sizeof state_path, "/tmp/lisa_test_cuda_%ld.lsst", (long)getpid());
    test_resume("resume fp32 full", tiny_config(0), tiny_train(LISA_MODE_FULL, 0), LISA_DTYPE_F32, 8, 3);
    test_resume("resume fp32 LISA mid-interval", tiny_config(0), tiny_train(LISA_MODE_LISA, 0), LISA_DTYPE_F32, 12, 7);
    test_resume("resume fp32 LISA at a switch, tied", tiny_config(1), tiny_train(LISA_MODE_LISA, 1), LISA_DTYPE_F32,
                12, 5);
    test_resume("resume bf16 full", tiny_config(0), tiny_train(LISA_MODE_FULL, 0), LISA_DTYPE_BF16, 8, 3);
    test_resume("resume bf16 LISA mid-interval checkpointed", tiny_config(0), tiny_train(LISA_MODE_LISA, 1),
                LISA_DTYPE_BF16, 12, 7);
    test_resume("resume bf16 LISA keep_state", tiny_config(0), kept, LISA_DTYPE_BF16, 12, 7);
    test_resume("resume fp32 LISA keep_state at a switch, tied", tiny_config(1), kept, LISA_DTYPE_F32, 12, 6);
    test_resume_across();
    remove(state_path);
}

/* Head size 128 (the attention tiles' limit) and a sequence over one key tile. */
static lisa_config wide_head_config(void) {
    lisa_config c = tiny_config(0);
    c.dim = 256;
    c.hidden_dim = 96;
    c.n_layers = 2;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.max_seq_len = 64;
    return c;
}

static lisa_train_config wide_head_train(void) {
    lisa_train_config tc = tiny_train(LISA_MODE_LISA, 1);
    tc.batch = 1;
    tc.seq = 40;
    tc.lisa_layers = 1;
    tc.lisa_interval = 3;
    return tc;
}

/* ------------------------------------------------------------------------- */
/* reserve_slots: nothing allocated or freed after creation                   */
/* ------------------------------------------------------------------------- */

#define RESERVE_STEPS 7

/* What a LISA run shows, step by step, for comparing two runs bitwise. */
typedef struct gpu_record {
    float loss[RESERVE_STEPS], norm[RESERVE_STEPS];
    int layers[RESERVE_STEPS][8], n_active[RESERVE_STEPS], switched[RESERVE_STEPS];
    int steps_ok;
    long mallocs, frees; /* lisa_cuda.h's cudaMalloc and cudaFree calls during the steps */
    int at_plan;         /* the device bytes were the plan's peak after creation and every step */
    float *params;       /* the final weights (malloc'ed); NULL if they could not be read */
    size_t n_params;
} gpu_record;

#ifdef LISA_CUDA_EMULATE
/* From now on every cudaMalloc fails (1) or none does (0); only the emulator can. */
static void refuse_device_memory(int refuse) { lisa_emu_fail_malloc_after(refuse ? 0 : -1); }
static size_t device_bytes_held(void) { return lisa_emu_device_bytes(); }
static const char *refusing = " while every cudaMalloc after creation fails";
#else
static void refuse_device_memory(int refuse) { (void)refuse; }
static size_t device_bytes_held(void) { return 0; }
static const char *refusing = "";
#endif

/* The trainer's tally, and on the emulator its own count of device memory
   (above base, what was held before creation), are both the planned peak. */
static int bytes_at_plan(const lisa_cuda_trainer *gpu, size_t peak, size_t base) {
#ifdef LISA_CUDA_EMULATE
    if (device_bytes_held() - base != peak) return 0;
#endif
    (void)base;
    return lisa_cuda_trainer_bytes(gpu) == peak;
}

/* RESERVE_STEPS steps of a trainer created with tc (reserve_slots as given)
   into r. With reserve_slots the emulator refuses every cudaMalloc after
   creation, so a step that needed one fails. */
static void record_run(const lisa_config *c, lisa_train_config tc, lisa_dtype dtype, int reserve, gpu_record *r) {
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_cuda_trainer *gpu = NULL;
    lisa_memory_plan plan;
    lisa_model got;
    lisa_error err;
    int inputs[64], targets[64], s;
    long mallocs, frees;
    size_t base = device_bytes_held();
    memset(r, 0, sizeof *r);
    cc.dtype = dtype;
    tc.reserve_slots = reserve;
    if (lisa_cuda_plan_memory(c, &tc, dtype, &plan, &err) != LISA_OK ||
        lisa_cuda_trainer_create(&gpu, c, NULL, 9, &tc, &cc, &err) != LISA_OK) {
        fprintf(stderr, "reserve_slots %d: %s\n", reserve, err.message);
        return;
    }
    r->at_plan = bytes_at_plan(gpu, plan.peak, base);
    mallocs = trainer_mallocs;
    frees = trainer_frees;
    refuse_device_memory(reserve);
    for (s = 0; s < RESERVE_STEPS; s++) {
        lisa_step_info info;
        tiny_batch(s, tc.batch * tc.seq, c->vocab_size, inputs, targets);
        if (lisa_cuda_trainer_step(gpu, inputs, targets, &info) != LISA_OK) {
            fprintf(stderr, "reserve_slots %d, step %d: %s\n", reserve, s, lisa_cuda_trainer_message(gpu));
            break;
        }
        r->loss[s] = info.loss;
        r->norm[s] = info.grad_norm;
        r->switched[s] = info.switched;
        r->n_active[s] = lisa_cuda_trainer_active_layers(gpu, r->layers[s]);
        r->at_plan = r->at_plan && bytes_at_plan(gpu, plan.peak, base);
    }
    refuse_device_memory(0);
    r->steps_ok = s == RESERVE_STEPS;
    r->mallocs = trainer_mallocs - mallocs;
    r->frees = trainer_frees - frees;
    lisa_model_init(&got, c, NULL, NULL);
    if (lisa_cuda_trainer_get_model(gpu, &got, &err) == LISA_OK) {
        r->n_params = got.layout.n_params;
        r->params = (float *)malloc(r->n_params * sizeof(float));
        memcpy(r->params, got.params, r->n_params * sizeof(float));
    }
    lisa_model_free(&got);
    lisa_cuda_trainer_free(gpu);
}

/* The same LISA run without and with reserve_slots: with it no step or switch
   calls cudaMalloc or cudaFree (on the emulator, every step succeeds while
   each cudaMalloc is refused), the device holds the planned peak from
   creation to the end, and losses, gradient norms, active layers and final
   weights are bitwise those without it. */
static void test_reserve(const char *what, lisa_config c, lisa_train_config tc, lisa_dtype dtype) {
    static gpu_record plain, reserved;
    int switches = 0;
    record_run(&c, tc, dtype, 0, &plain);
    record_run(&c, tc, dtype, 1, &reserved);
    for (int s = 1; s < RESERVE_STEPS; s++) switches += plain.switched[s];
    printf("test_cuda: %s: %d switches in %d steps; cudaMalloc and cudaFree calls in the steps: %ld and %ld "
           "without reserve_slots, %ld and %ld with it\n", what, switches, RESERVE_STEPS, plain.mallocs, plain.frees,
           reserved.mallocs, reserved.frees);
    CHECK(plain.steps_ok && switches >= 3 && plain.mallocs > 0 && plain.frees > 0,
          "%s: without reserve_slots, %d switches call cudaMalloc %ld and cudaFree %ld times (test setup)", what,
          switches, plain.mallocs, plain.frees);
    CHECK(reserved.steps_ok, "%s: with reserve_slots, %d steps run%s", what, RESERVE_STEPS, refusing);
    CHECK(reserved.mallocs == 0 && reserved.frees == 0,
          "%s: with reserve_slots, no step calls cudaMalloc (%ld calls) or cudaFree (%ld)", what, reserved.mallocs,
          reserved.frees);
    CHECK(reserved.at_plan, "%s: with reserve_slots, the device holds the planned peak from creation to the end", what);
    CHECK(!memcmp(plain.loss, reserved.loss, sizeof plain.loss) && !memcmp(plain.norm, reserved.norm, sizeof plain.norm),
          "%s: losses and gradient norms bitwise those without reserve_slots", what);
    CHECK(!memcmp(plain.layers, reserved.layers, sizeof plain.layers) &&
              !memcmp(plain.n_active, reserved.n_active, sizeof plain.n_active) &&
              !memcmp(plain.switched, reserved.switched, sizeof plain.switched),
          "%s: the same active layers at every step as without reserve_slots", what);
    CHECK(plain.params && reserved.params && plain.n_params == reserved.n_params &&
              !memcmp(plain.params, reserved.params, plain.n_params * sizeof(float)),
          "%s: final weights bitwise those without reserve_slots", what);
    free(plain.params);
    free(reserved.params);
}

static void test_reserve_all(void) {
    lisa_train_config tc = tiny_train(LISA_MODE_LISA, 0);
    tc.batch = 1;
    tc.seq = 8;
    tc.lisa_interval = 2;
    tc.lisa_layers = 1;
    test_reserve("reserve_slots fp32 LISA", tiny_config(0), tc, LISA_DTYPE_F32);
    tc.lisa_layers = 2;
    tc.checkpointing = 1;
    test_reserve("reserve_slots bf16 LISA checkpointed", tiny_config(0), tc, LISA_DTYPE_BF16);
    tc.lisa_layers = 1;
    tc.checkpointing = 0;
    tc.keep_state = 1;
    test_reserve("reserve_slots bf16 LISA keep_state, tied", tiny_config(1), tc, LISA_DTYPE_BF16);
}

#ifdef LISA_CUDA_EMULATE
/* Out of device memory at every allocation of creation, and during layer
   switches: the result says so, nothing leaks, and the active layers are the
   ones that hold state. Only the emulator can make cudaMalloc fail. */
static void test_out_of_memory(void) {
    lisa_config c = tiny_config(0);
    lisa_train_config tc = tiny_train(LISA_MODE_MANUAL, 1);
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_cuda_trainer *gpu = NULL;
    lisa_error err;
    size_t base = lisa_emu_device_bytes(), none, two, one;
    int k, refused = 0, leaked = 0, both[2] = {0, 3}, next[2] = {1, 3}, single = 1, layers[4];
    lisa_result r;
    for (k = 0;; k++) {
        lisa_emu_fail_malloc_after(k);
        r = lisa_cuda_trainer_create(&gpu, &c, NULL, 1, &tc, &cc, &err);
        lisa_emu_fail_malloc_after(-1);
        if (r == LISA_OK) break;
        refused += r == LISA_ERR_NOMEM && gpu == NULL && strstr(err.message, "out of memory") != NULL;
        leaked += lisa_emu_device_bytes() != base;
    }
    CHECK(k > 0 && refused == k && leaked == 0, "out of memory at each of %d allocations of creation: LISA_ERR_NOMEM "
          "(%d times), nothing leaked (%d leaks)", k, refused, leaked);
    none = lisa_cuda_trainer_bytes(gpu);
    CHECK(lisa_cuda_trainer_set_active_layers(gpu, both, 2) == LISA_OK, "manual: layers 0 and 3");
    two = lisa_cuda_trainer_bytes(gpu);
    lisa_emu_fail_malloc_after(0);
    r = lisa_cuda_trainer_set_active_layers(gpu, next, 2);
    lisa_emu_fail_malloc_after(-1);
    CHECK(r == LISA_ERR_NOMEM, "a switch that runs out of memory fails with LISA_ERR_NOMEM (%d)", (int)r);
    CHECK(lisa_cuda_trainer_active_layers(gpu, layers) == 1 && layers[0] == 3 &&
              lisa_cuda_trainer_bytes(gpu) - none == (two - none) / 2,
          "after the failed switch, layer 3 (kept) is listed as the one active layer");
    CHECK(lisa_cuda_trainer_set_active_layers(gpu, &single, 1) == LISA_OK, "manual: layer 1 alone");
    one = lisa_cuda_trainer_bytes(gpu);
    CHECK(one - none == (two - none) / 2, "one active layer holds half of what two hold (%zu vs %zu)", one - none,
          two - none);
    lisa_cuda_trainer_free(gpu);
    CHECK(lisa_emu_device_bytes() == base, "free returns every device byte");
}
#endif

/* lisa_comm on device buffers: a mirror, as if a second worker held the same
   rows, doubles every buffer it is handed (gradients through host copies of
   the device memory, the count and loss on the host). The global count is
   then twice this worker's, so each gradient comes back exactly (powers of
   two) as a trainer without a comm makes it: the weights must agree bitwise. */
static int mirror_calls;
static size_t mirror_floats;
static void mirror_device_sum(float *buf, size_t n, void *user) {
    float *h = (float *)malloc(n * sizeof(float));
    (void)user;
    mirror_calls++;
    mirror_floats += n;
    cudaMemcpy(h, buf, n * sizeof(float), cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n; i++) h[i] *= 2.0f;
    cudaMemcpy(buf, h, n * sizeof(float), cudaMemcpyHostToDevice);
    free(h);
}
static void mirror_host_sum(float *buf, size_t n, void *user) {
    (void)user;
    for (size_t i = 0; i < n; i++) buf[i] *= 2.0f;
}

static void test_comm_hook(lisa_dtype dtype, const char *what) {
    lisa_config c = tiny_config(0);
    lisa_train_config tc = tiny_train(LISA_MODE_LISA, 0), tm;
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_cuda_trainer *alone = NULL, *mirrored = NULL;
    lisa_model m, a, b;
    lisa_error err;
    lisa_comm comm;
    int inputs[64], targets[64], ok = 1, bytes_ok = 1;
    double worst = 0.0;
    size_t layer = lisa_block_size(&c, LISA_BLOCK_LAYER(0)), fixed = 2 * (size_t)c.vocab_size * c.dim + c.dim;
    memset(&comm, 0, sizeof comm);
    comm.world_size = 2;
    comm.sum = mirror_device_sum;
    comm.sum_host = mirror_host_sum;
    tm = tc;
    tm.comm = &comm;
    cc.dtype = dtype;
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 42);
    if (lisa_cuda_trainer_create(&alone, &c, &m, 0, &tc, &cc, &err) != LISA_OK ||
        lisa_cuda_trainer_create(&mirrored, &c, &m, 0, &tm, &cc, &err) != LISA_OK) {
        CHECK(0, "%s: create: %s", what, err.message);
        ok = 0;
    }
    mirror_calls = 0;
    mirror_floats = 0;
    for (int s = 0; s < 8 && ok; s++) {
        lisa_step_info x, y;
        tiny_batch(s, tc.batch * tc.seq, c.vocab_size, inputs, targets);
        ok = lisa_cuda_trainer_step(alone, inputs, targets, &x) == LISA_OK &&
             lisa_cuda_trainer_step(mirrored, inputs, targets, &y) == LISA_OK;
        if (ok && fabs(x.loss - y.loss) > worst * fabs(x.loss)) worst = fabs(x.loss - y.loss) / fabs(x.loss);
        if (ok) bytes_ok &= x.allreduce_bytes == 0 && y.allreduce_bytes == (fixed + 2 * layer + 3) * sizeof(float);
    }
    CHECK(ok, "%s: 8 steps with and without the comm", what);
    CHECK(bytes_ok && mirror_floats == 8 * (fixed + 2 * layer), "%s: each step sums the 3 trained fixed blocks' and 2 "
          "layers' gradients on the device (%zu floats in %d calls)", what, mirror_floats, mirror_calls);
    CHECK(worst <= 1e-6, "%s: the mirrored losses are the lone trainer's within 1e-6 (%g)", what, worst);
    lisa_model_init(&a, &c, NULL, NULL);
    lisa_model_init(&b, &c, NULL, NULL);
    if (ok) {
        CHECK(lisa_cuda_trainer_get_model(alone, &a, &err) == LISA_OK &&
                  lisa_cuda_trainer_get_model(mirrored, &b, &err) == LISA_OK &&
                  memcmp(a.params, b.params, a.layout.n_params * sizeof(float)) == 0,
              "%s: the mirrored trainer's weights are the lone trainer's bitwise", what);
    }
    lisa_model_free(&a);
    lisa_model_free(&b);
    if (alone) lisa_cuda_trainer_free(alone);
    if (mirrored) lisa_cuda_trainer_free(mirrored);
    lisa_model_free(&m);
}

static void test_gpu(void) {
    cublasHandle_t h;
    lisa_cuda_device d;
    lisa_error err;
    CHECK(lisa_cuda_device_query(0, &d, &err) == LISA_OK, "device query: %s", err.message);
    printf("test_cuda: %s, compute capability %d.%d, %.1f GiB\n", d.name, d.major, d.minor, d.total_bytes / GIB);
    CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS && cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH) == CUBLAS_STATUS_SUCCESS,
          "cuBLAS starts");
    test_kernels<float>(h);
    test_kernels<lisa__bf16>(h);
    test_norm();
    cublasDestroy(h);
    test_training("fp32 full", tiny_config(0), tiny_train(LISA_MODE_FULL, 0), LISA_DTYPE_F32, 12);
    test_training("fp32 full checkpointed", tiny_config(0), tiny_train(LISA_MODE_FULL, 1), LISA_DTYPE_F32, 10);
    test_training("fp32 LISA", tiny_config(0), tiny_train(LISA_MODE_LISA, 0), LISA_DTYPE_F32, 12);
    test_training("fp32 LISA tied checkpointed", tiny_config(1), tiny_train(LISA_MODE_LISA, 1), LISA_DTYPE_F32, 12);
    {
        lisa_train_config tc = tiny_train(LISA_MODE_LISA, 1);
        tc.freeze_embed = 1;
        tc.freeze_final_norm = 1;
        test_training("fp32 LISA frozen embedding and norm", tiny_config(0), tc, LISA_DTYPE_F32, 11);
    }
    {
        /* One layer trains for the whole run, under weight decay: the other
           layers (and the frozen head) must come out bit for bit as they went in. */
        lisa_train_config tc = tiny_train(LISA_MODE_LISA, 0);
        tc.lisa_layers = 1;
        tc.lisa_interval = 100;
        tc.freeze_head = 1;
        CHECK(tc.weight_decay > 0.0f, "the frozen-layer runs use weight decay");
        test_training("fp32 LISA one layer, weight decay, frozen head", tiny_config(0), tc, LISA_DTYPE_F32, 8);
        test_training("bf16 LISA one layer, weight decay, frozen head", tiny_config(0), tc, LISA_DTYPE_BF16, 8);
        tc.freeze_head = 0;
        tc.freeze_embed = 1;
        tc.freeze_final_norm = 1;
        tc.checkpointing = 1;
        test_training("bf16 LISA one layer checkpointed, weight decay, frozen embedding and norm", tiny_config(0), tc,
                      LISA_DTYPE_BF16, 8);
    }
    test_training("bf16 full", tiny_config(0), tiny_train(LISA_MODE_FULL, 0), LISA_DTYPE_BF16, 10);
    test_training("bf16 LISA checkpointed", tiny_config(0), tiny_train(LISA_MODE_LISA, 1), LISA_DTYPE_BF16, 12);
    test_training("bf16 LISA tied", tiny_config(1), tiny_train(LISA_MODE_LISA, 0), LISA_DTYPE_BF16, 10);
    test_training("fp32 LISA head size 128", wide_head_config(), wide_head_train(), LISA_DTYPE_F32, 8);
    test_training("bf16 LISA head size 128", wide_head_config(), wide_head_train(), LISA_DTYPE_BF16, 8);
#ifdef LISA_CUDA_EMULATE
    test_out_of_memory();
#endif
    test_comm_hook(LISA_DTYPE_F32, "fp32 LISA, comm on device buffers");
    test_comm_hook(LISA_DTYPE_BF16, "bf16 LISA, comm on device buffers");
    test_eval_and_manual();
    test_keep_state_and_random_init();
    test_reserve_all();
    test_resume_all();
}

int main(void) {
    lisa_rng_seed(&rng, 1);
    test_planner();
    if (lisa_cuda_device_count() == 0)
        printf("test_cuda: GPU checks skipped: no CUDA device\n");
    else
        test_gpu();
#ifdef LISA_CUDA_EMULATE
    {
        /* One summary name per thread order, so the test runner adds each. */
        char name[64];
        snprintf(name, sizeof name, "test_cuda_emu_%s", lisa_emu_order_name());
        printf("test_cuda: emulated on the CPU, threads in %s order; fiber stacks used at most %zu bytes\n",
               lisa_emu_order_name(), lisa_emu_stack_peak());
        return test_report(name);
    }
#else
    return test_report("test_cuda");
#endif
}
