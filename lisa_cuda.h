/* lisa_cuda.h: the lisa.h trainer on NVIDIA GPUs (compute capability 8.0 and
   newer: A100, RTX 3090, RTX 4090, H100), CUDA Toolkit only (cudart, cuBLAS).

   Use: in exactly one .cu file compiled by nvcc,

       #define LISA_CUDA_IMPLEMENTATION
       #include "lisa_cuda.h"

   and link with -lcublas -lcudart. lisa.h's own implementation
   (LISA_IMPLEMENTATION) must be compiled once somewhere in the program, in a C
   file or in the same .cu file. The declarations below are plain C: a C
   program includes this header without CUDA headers and calls the GPU trainer
   through them, with the same configs, model files, batch layout and result
   codes as the CPU trainer. lisa.h never includes a CUDA header.

   A C program that only plans GPU memory defines LISA_CUDA_PLANNER_IMPLEMENTATION
   instead: that compiles lisa_cuda_plan_memory alone, in plain C, without CUDA.

   OPTIONS (define before the implementation)
     LISA_CUDA_CE_CHUNK_FLOATS  logits held at once by the fused cross-entropy
                                (default 8M floats: 32 MB; rows = this / vocab)
     LISA_CUDA_WORKSPACE_BYTES  the cuBLAS workspace (default 32 MiB)

   LIMITS: head size (dim / n_heads) at most 128; batch x n_heads at most 65535.
   Device memory is counted exactly except what the CUDA runtime and the
   cuBLAS handle keep for themselves.

   Tests: make cuda && make test-cuda (or sh tests/cuda.sh build).

   API:

   - lisa_cuda_device_count / lisa_cuda_device_query: what GPUs there are.
   - lisa_cuda_config: dtype (bf16 weights and activations with fp32
     accumulation and fp32 master weights and moments for active blocks, or
     fp32 throughout for checking against the CPU), device index.
   - lisa_cuda_trainer_*: the trainer, mirroring lisa_trainer_* of lisa.h. It
     is lisa.h's trainer core (lisa_trainer_core_init: the block lifecycle,
     the sampler, the step sequence, AdamW's scalars, reserve_slots) with
     device operations, so both trainers decide everything the same way.
   - Data parallelism: the train config's comm (lisa_comm) works as on the
     CPU, through the same core; its sum gets the device's gradient buffers
     (fp32 in both dtypes; sum_host gets the count and loss), so ncclAllReduce
     can fill it. A sum must be done with the buffer when it returns.
   - lisa_cuda_trainer_to_cpu / lisa_cuda_trainer_from_cpu: its state as a
     CPU trainer and back, so that lisa.h's state files save and resume GPU
     runs exactly (on either device).
   - lisa_cuda_plan_memory: device bytes by category, computed by the same
     functions the device allocations use, so it equals the counted bytes. */
#ifndef LISA_CUDA_H
#define LISA_CUDA_H

#include "lisa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices usable by this process; 0 when there is no GPU or
   no driver (never an error). */
LISADEF int lisa_cuda_device_count(void);

typedef struct lisa_cuda_device {
    int index;
    char name[128];
    int major, minor;          /* compute capability */
    int multiprocessors;
    size_t total_bytes;        /* device memory */
    size_t free_bytes;         /* free now (cudaMemGetInfo) */
} lisa_cuda_device;

/* LISA_ERR_DEVICE (with the CUDA message) when the device cannot be queried. */
LISADEF lisa_result lisa_cuda_device_query(int index, lisa_cuda_device *d, lisa_error *err);

typedef struct lisa_cuda_config {
    lisa_dtype dtype;          /* LISA_DTYPE_BF16 or LISA_DTYPE_F32 */
    int device;                /* CUDA device index */
} lisa_cuda_config;

/* bf16 on device 0. */
LISADEF lisa_cuda_config lisa_cuda_config_default(void);

/* Everything the trainer holds on the device; device memory only. */
typedef struct lisa_cuda_trainer lisa_cuda_trainer;

/* Creates a trainer on the device for a model of config mc. With m non-NULL
   its weights are copied to the device (m must have config mc and is not
   kept); with m NULL the weights are initialised on the device with the same
   distribution as lisa_model_init_random() (not the same numbers) from
   init_seed, so that a 7B model needs no host copy. tc is lisa.h's training
   config: batch, seq, schedule, AdamW, clipping, checkpointing and LISA
   (mode, gamma, K, order, probs, seed, freeze flags, keep_state,
   reserve_slots) with the CPU trainer's meaning; the same seed gives the
   same active layers. With reserve_slots no step calls cudaMalloc or cudaFree. */
LISADEF lisa_result lisa_cuda_trainer_create(lisa_cuda_trainer **t, const lisa_config *mc,
                                             const lisa_model *m, uint64_t init_seed,
                                             const lisa_train_config *tc,
                                             const lisa_cuda_config *cc, lisa_error *err);

/* One optimizer step on host arrays inputs and targets (batch x seq, targets
   may be LISA_IGNORE), exactly as lisa_trainer_step(). info->loss is the
   loss before the update. LISA_ERR_DEVICE on a CUDA failure; the message is
   in lisa_cuda_trainer_message(). */
LISADEF lisa_result lisa_cuda_trainer_step(lisa_cuda_trainer *t, const int *inputs,
                                           const int *targets, lisa_step_info *info);

/* Mean loss of a forward pass only (no update), B <= batch, T <= seq. */
LISADEF lisa_result lisa_cuda_trainer_eval(lisa_cuda_trainer *t, const int *inputs,
                                           const int *targets, int B, int T, float *loss);

/* As lisa_trainer_set_active_layers(). */
LISADEF lisa_result lisa_cuda_trainer_set_active_layers(lisa_cuda_trainer *t, const int *layers,
                                                        int n);
/* Writes the active decoder layers (sorted) and returns how many. */
LISADEF int lisa_cuda_trainer_active_layers(const lisa_cuda_trainer *t, int *layers);

/* Copies the current weights into m (which must be a lisa_model_init()ed
   model of the same config): fp32 master weights of active blocks, the bf16
   weights of the others widened to fp32. */
LISADEF lisa_result lisa_cuda_trainer_get_model(const lisa_cuda_trainer *t, lisa_model *m,
                                                lisa_error *err);

/* Stop and resume exactly, through lisa.h's state files. to_cpu creates the
   host model m (the current weights, as lisa_cuda_trainer_get_model() gives
   them) and a CPU trainer cpu of the same train config holding the GPU
   trainer's state: active layers, every block's AdamW moments and step (kept
   ones too, with keep_state), the sampler, the step count; so that
   lisa_trainer_save_state(cpu, ...) writes the GPU run's state. It needs the
   host memory of that CPU trainer. On failure both are left freed; otherwise
   call lisa_trainer_free() then lisa_model_free(). */
LISADEF lisa_result lisa_cuda_trainer_to_cpu(const lisa_cuda_trainer *t, lisa_trainer *cpu, lisa_model *m,
                                             lisa_error *err);
/* The reverse: a GPU trainer that continues exactly where cpu stands (after
   lisa_trainer_load_state(), or a CPU run), in either dtype: the next steps
   give the losses and weights the uninterrupted run would have given. bf16
   weights are rounded from cpu's model; fp32 master weights of the active
   blocks are taken as they are, so a state written by to_cpu in bf16 resumes
   bitwise. cpu is not changed and not kept. Call lisa_cuda_trainer_free(). */
LISADEF lisa_result lisa_cuda_trainer_from_cpu(lisa_cuda_trainer **t, const lisa_trainer *cpu,
                                               const lisa_cuda_config *cc, lisa_error *err);

/* Device bytes the trainer holds now, and the most it held at once; every
   cudaMalloc is counted (cuBLAS workspace included). */
LISADEF size_t lisa_cuda_trainer_bytes(const lisa_cuda_trainer *t);
LISADEF size_t lisa_cuda_trainer_peak_bytes(const lisa_cuda_trainer *t);
/* Optimizer steps taken. */
LISADEF int lisa_cuda_trainer_steps(const lisa_cuda_trainer *t);
/* The message of the last failure ("" after success). */
LISADEF const char *lisa_cuda_trainer_message(const lisa_cuda_trainer *t);
LISADEF void lisa_cuda_trainer_free(lisa_cuda_trainer *t);

/* Device bytes of a trainer, by category (plan->peak is what
   lisa_cuda_trainer_peak_bytes() reaches over a run without keep_state;
   with keep_state, once every layer has been sampled), without a GPU. Needs
   a head size (dim / n_heads) of at most 128, as the trainer does. */
LISADEF lisa_result lisa_cuda_plan_memory(const lisa_config *c, const lisa_train_config *tc,
                                          lisa_dtype dtype, lisa_memory_plan *plan,
                                          lisa_error *err);

#ifdef __cplusplus
}
#endif

#endif /* LISA_CUDA_H */

/* ========================================================================= */
/*                              IMPLEMENTATION                                */
/* ========================================================================= */

/* The planner (plain C, no CUDA: LISA_CUDA_PLANNER_IMPLEMENTATION compiles
   just this part, so a C program without nvcc can plan the GPU trainer) */
#if defined(LISA_CUDA_IMPLEMENTATION) || defined(LISA_CUDA_PLANNER_IMPLEMENTATION)
#ifndef LISA_CUDA_PLANNER_INCLUDED
#define LISA_CUDA_PLANNER_INCLUDED

/* Where the device bytes go (lisa_cuda_plan_memory and the trainer both use
   lisa__cuda_layout_of and lisa__cuda_weight_bytes below, and lisa.h's
   trainer core sizes and allocates the block state that lisa_plan_block_state
   counts, so the plan is the counted peak). E is the element type: bf16 (2
   bytes) or fp32 (4). With reserve_slots the layers' share is allocated at
   creation and reused at every switch.

   weights      the whole model in E, one allocation (n_params x E); with bf16,
                plus an fp32 master copy of each trained block (allocated when
                the block becomes active, released when it leaves; the bf16
                copy is refreshed from it after every update). With fp32 the
                weights are their own master.
   gradients    fp32, trained blocks only (allocated at activation).
   optimizer    fp32 AdamW m and v, one allocation per block with state
                (trained blocks; with keep_state every layer once sampled).
   activations  one allocation: token ids (2 x B*T int), each layer's input
                and the last output ((n_layers + 1) x B*T x dim E), the saved
                values of one layer set per layer (just one with
                checkpointing, refilled by the recompute): xn1 q att x_mid xn2
                (B*T x dim E each), k v (B*T x kv E), h1 h3 hg (B*T x hidden E),
                rstd1 rstd2 (B*T fp32), lse (B x heads x T fp32); the final
                norm's rstd (fp32) and output (E), row losses (fp32).
   scratch      one allocation: the residual-stream gradient (B*T x dim fp32)
                and its E copy that feeds the matmuls, the normed-input
                gradient (fp32), one region shared by the attention gradients
                (datt dq dk dv) and the MLP gradients (dh1 dh3 dhg) in E; the
                cross-entropy chunk: fp32 logits of ce_rows rows and their
                gradient in E (the same buffer with fp32); the cuBLAS
                workspace (handed to cublasSetWorkspace).
   tables       the RoPE cos/sin table (seq x head_dim/2 x 2 fp32) and the
                per-block partial sums of the gradient norm (doubles).

   Every sub-buffer starts on a 256-byte boundary. The cross-entropy never
   holds more than ce_rows x vocab logits: each chunk of rows gets its logits
   from cuBLAS, then loss and gradient in place, then its two backward
   products, before the next chunk. Attention keeps only a tile of scores,
   in registers, and stores each row's log-sum-exp. */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LISA_CUDA_CE_CHUNK_FLOATS
#define LISA_CUDA_CE_CHUNK_FLOATS (8u << 20)   /* logits held at once: 32 MB */
#endif
#ifndef LISA_CUDA_WORKSPACE_BYTES
#define LISA_CUDA_WORKSPACE_BYTES (32u << 20)  /* cuBLAS workspace */
#endif
#define LISA_CUDA_MAX_HEAD_DIM 128              /* attention tiles are sized for it */
#define LISA__CUDA_ALIGN 256
#define LISA__CUDA_THREADS 256
#define LISA__CUDA_NORM_BLOCKS 256              /* partial sums per gradient buffer */

static size_t lisa__cuda_elem_bytes(lisa_dtype d) { return d == LISA_DTYPE_BF16 ? 2 : 4; }

/* ------------------------------------------------------------------------- */
/* Sizes: the one place device sizes are computed                             */
/* ------------------------------------------------------------------------- */

typedef struct lisa__cuda_layout {
    size_t elem;             /* bytes of a weight or activation element */
    int ce_rows;             /* rows of logits held at once */
    /* activations, byte offsets into one allocation */
    size_t inputs, targets, layer_in, sets, set_stride, n_sets, final_rstd, final_xn, row_loss;
    size_t acts_total;
    /* byte offsets inside one layer set */
    size_t rstd1, xn1, q, k, v, lse, att, x_mid, rstd2, xn2, h1, h3, hg;
    /* scratch, byte offsets into one allocation */
    size_t dres, dres_e, dxn, shared, logits, dlogits, workspace, scratch_total;
    /* tables */
    size_t rope, partials, tables_total;
} lisa__cuda_layout;

/* Reserves bytes at *at (aligned) and returns where they start. */
static size_t lisa__cuda_carve(size_t *at, size_t bytes) {
    size_t start = (*at + LISA__CUDA_ALIGN - 1) / LISA__CUDA_ALIGN * LISA__CUDA_ALIGN;
    *at = start + bytes;
    return start;
}

static size_t lisa__cuda_kv_dim(const lisa_config *c) {
    return (size_t)c->dim / (size_t)c->n_heads * (size_t)c->n_kv_heads;
}

static lisa__cuda_layout lisa__cuda_layout_of(const lisa_config *c, int B, int T, int checkpointing,
                                              lisa_dtype dtype) {
    lisa__cuda_layout y;
    size_t BT = (size_t)B * T, D = (size_t)c->dim, H = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    size_t kv = lisa__cuda_kv_dim(c), e = lisa__cuda_elem_bytes(dtype), at, rows, attn, mlp;
    memset(&y, 0, sizeof y);
    y.elem = e;
    rows = LISA_CUDA_CE_CHUNK_FLOATS / V;
    rows = rows < 1 ? 1 : rows > BT ? BT : rows;
    y.ce_rows = (int)rows;

    at = 0;
    y.rstd1 = lisa__cuda_carve(&at, BT * 4);
    y.xn1 = lisa__cuda_carve(&at, BT * D * e);
    y.q = lisa__cuda_carve(&at, BT * D * e);
    y.k = lisa__cuda_carve(&at, BT * kv * e);
    y.v = lisa__cuda_carve(&at, BT * kv * e);
    y.lse = lisa__cuda_carve(&at, (size_t)B * c->n_heads * T * 4);
    y.att = lisa__cuda_carve(&at, BT * D * e);
    y.x_mid = lisa__cuda_carve(&at, BT * D * e);
    y.rstd2 = lisa__cuda_carve(&at, BT * 4);
    y.xn2 = lisa__cuda_carve(&at, BT * D * e);
    y.h1 = lisa__cuda_carve(&at, BT * H * e);
    y.h3 = lisa__cuda_carve(&at, BT * H * e);
    y.hg = lisa__cuda_carve(&at, BT * H * e);
    y.set_stride = lisa__cuda_carve(&at, 0);

    at = 0;
    y.n_sets = checkpointing ? 1 : (size_t)c->n_layers;
    y.inputs = lisa__cuda_carve(&at, BT * sizeof(int));
    y.targets = lisa__cuda_carve(&at, BT * sizeof(int));
    y.layer_in = lisa__cuda_carve(&at, ((size_t)c->n_layers + 1) * BT * D * e);
    y.sets = lisa__cuda_carve(&at, y.n_sets * y.set_stride);
    y.final_rstd = lisa__cuda_carve(&at, BT * 4);
    y.final_xn = lisa__cuda_carve(&at, BT * D * e);
    y.row_loss = lisa__cuda_carve(&at, BT * 4);
    y.acts_total = lisa__cuda_carve(&at, 0);

    at = 0;
    attn = BT * (2 * D + 2 * kv);
    mlp = 3 * BT * H;
    y.dres = lisa__cuda_carve(&at, BT * D * 4);
    y.dres_e = lisa__cuda_carve(&at, BT * D * e);
    y.dxn = lisa__cuda_carve(&at, BT * D * 4);
    y.shared = lisa__cuda_carve(&at, (attn > mlp ? attn : mlp) * e);
    y.logits = lisa__cuda_carve(&at, rows * V * 4);
    /* fp32: the gradient overwrites the logits in place */
    y.dlogits = e == 4 ? y.logits : lisa__cuda_carve(&at, rows * V * e);
    y.workspace = lisa__cuda_carve(&at, LISA_CUDA_WORKSPACE_BYTES);
    y.scratch_total = lisa__cuda_carve(&at, 0);

    at = 0;
    y.rope = lisa__cuda_carve(&at, (size_t)T * (D / (size_t)c->n_heads / 2) * 2 * sizeof(float));
    y.partials = lisa__cuda_carve(&at, (size_t)lisa_n_blocks(c) * LISA__CUDA_NORM_BLOCKS * sizeof(double));
    y.tables_total = lisa__cuda_carve(&at, 0);
    return y;
}

static size_t lisa__cuda_weight_bytes(const lisa_config *c, lisa_dtype d) {
    return lisa_layout_of(c).n_params * lisa__cuda_elem_bytes(d);
}

/* Resolves and checks both configs with lisa.h's rules (LISA defaults
   included), then the device's own limits. */
static lisa_result lisa__cuda_check_configs(lisa_config *c, lisa_train_config *tc, lisa_dtype dtype,
                                            lisa_error *err) {
    lisa_result r;
    if ((r = lisa_config_resolve(c, err)) != LISA_OK) return r;
    if ((r = lisa_train_config_resolve(tc, c, err)) != LISA_OK) return r;
    if (tc->mode == LISA_MODE_LORA) {
        lisa_error_set(err, LISA_ERR_INVALID, "%s", "LoRA mode runs on lisa.h's CPU trainer only, not on the GPU");
        return LISA_ERR_INVALID;
    }
    if (tc->mode == LISA_MODE_FULL) tc->lisa_probs = NULL;
    if (dtype != LISA_DTYPE_F32 && dtype != LISA_DTYPE_BF16) {
        lisa_error_set(err, LISA_ERR_INVALID, "unknown dtype %d", (int)dtype);
        return LISA_ERR_INVALID;
    }
    if ((long long)tc->batch * c->n_heads > 65535) { /* attention's grid rows */
        lisa_error_set(err, LISA_ERR_INVALID, "batch %d x %d heads: the GPU trainer handles up to 65535",
                       tc->batch, c->n_heads);
        return LISA_ERR_INVALID;
    }
    if (c->dim / c->n_heads > LISA_CUDA_MAX_HEAD_DIM) {
        lisa_error_set(err, LISA_ERR_INVALID, "head size %d: the GPU trainer handles up to %d",
                       c->dim / c->n_heads, LISA_CUDA_MAX_HEAD_DIM);
        return LISA_ERR_INVALID;
    }
    return LISA_OK;
}

LISADEF lisa_result lisa_cuda_plan_memory(const lisa_config *c, const lisa_train_config *tc,
                                          lisa_dtype dtype, lisa_memory_plan *plan, lisa_error *err) {
    lisa_config rc = *c;
    lisa_train_config rt = *tc;
    lisa__cuda_layout y;
    lisa_result r;
    memset(plan, 0, sizeof *plan);
    if ((r = lisa__cuda_check_configs(&rc, &rt, dtype, err)) != LISA_OK) return r;
    lisa_plan_block_state(&rc, &rt, plan);
    /* bf16: each trained block's fp32 master copy, its working copy in the trainer core */
    plan->weights = lisa__cuda_weight_bytes(&rc, dtype) + (dtype == LISA_DTYPE_BF16 ? plan->trained_params * sizeof(float) : 0);
    y = lisa__cuda_layout_of(&rc, rt.batch, rt.seq, rt.checkpointing, dtype);
    plan->activations = y.acts_total;
    plan->scratch = y.scratch_total;
    plan->tables = y.tables_total;
    plan->peak = lisa_plan_total(plan);
    lisa_error_clear(err);
    return LISA_OK;
}

#endif /* LISA_CUDA_PLANNER_INCLUDED */
#endif /* LISA_CUDA_IMPLEMENTATION || LISA_CUDA_PLANNER_IMPLEMENTATION */

/* ========================================================================= */
/* The device trainer (nvcc, or the CPU emulator of the tests)               */
/* ========================================================================= */

#ifdef LISA_CUDA_IMPLEMENTATION
#ifndef LISA_CUDA_IMPLEMENTATION_INCLUDED
#define LISA_CUDA_IMPLEMENTATION_INCLUDED

/* LISA_CUDA_EMULATE: the includer provides CUDA (tests/cuda_emu.h runs the
   kernels on the CPU), and every launch goes through LISA__CUDA_LAUNCH. A
   kernel name with commas (template arguments) is put in parentheses. */
#ifdef LISA_CUDA_EMULATE
#define LISA__CUDA_LAUNCH(kernel, grid, block, ...) \
    lisa_emu_launch(#kernel, grid, block, [=] { kernel(__VA_ARGS__); })
#else
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#define LISA__CUDA_LAUNCH(kernel, grid, block, ...) kernel<<<grid, block>>>(__VA_ARGS__)
#endif
/* ------------------------------------------------------------------------- */
/* Element types                                                              */
/* ------------------------------------------------------------------------- */

typedef __nv_bfloat16 lisa__bf16;

static __device__ __forceinline__ float lisa__ld(float x) { return x; }
static __device__ __forceinline__ float lisa__ld(lisa__bf16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ void lisa__st(float *p, float x) { *p = x; }
static __device__ __forceinline__ void lisa__st(lisa__bf16 *p, float x) { *p = __float2bfloat16(x); }

template <typename E> static cudaDataType lisa__cuda_type(void);
template <> cudaDataType lisa__cuda_type<float>(void) { return CUDA_R_32F; }
template <> cudaDataType lisa__cuda_type<lisa__bf16>(void) { return CUDA_R_16BF; }

/* ------------------------------------------------------------------------- */
/* Kernels                                                                    */
/* ------------------------------------------------------------------------- */

static unsigned lisa__cuda_grid(size_t n) {
    size_t blocks = (n + LISA__CUDA_THREADS - 1) / LISA__CUDA_THREADS;
    if (blocks < 1) blocks = 1;
    if (blocks > 65535u * 16u) blocks = 65535u * 16u; /* the loops stride over the rest */
    return (unsigned)blocks;
}

#define LISA__CUDA_FOR(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

static __device__ __forceinline__ float lisa__warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
static __device__ __forceinline__ double lisa__warp_sum_d(double x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
static __device__ __forceinline__ float lisa__warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

/* Sum over the block (blockDim a multiple of 32); every thread gets it. */
static __device__ float lisa__block_sum(float x) {
    __shared__ float part[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = lisa__warp_sum(x);
    __syncthreads(); /* part may still be read by a previous call */
    if (lane == 0) part[w] = x;
    __syncthreads();
    x = lane < nw ? part[lane] : 0.0f;
    return lisa__warp_sum(x);
}

static __device__ float lisa__block_max(float x) {
    __shared__ float part[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = lisa__warp_max(x);
    __syncthreads();
    if (lane == 0) part[w] = x;
    __syncthreads();
    x = lane < nw ? part[lane] : -INFINITY;
    return lisa__warp_max(x);
}

/* --- embedding ------------------------------------------------------------- */

template <typename E>
__global__ void lisa__embedding_forward_kernel(E *out, const int *tokens, const E *table, int n, int dim) {
    LISA__CUDA_FOR(i, (size_t)n * dim) {
        size_t row = i / (size_t)dim, col = i % (size_t)dim;
        out[i] = table[(size_t)tokens[row] * dim + col];
    }
}

/* One thread per column, rows in order: repeated tokens add up without
   atomics, in the CPU's order. */
__global__ void lisa__embedding_backward_kernel(float *dtable, const float *dout, const int *tokens, int n,
                                                int dim) {
    size_t col = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= (size_t)dim) return;
    for (int i = 0; i < n; i++) dtable[(size_t)tokens[i] * dim + col] += dout[(size_t)i * dim + col];
}

template <typename E>
static cudaError_t lisa__cuda_embedding_forward(E *out, const int *tokens, const E *table, int n, int dim) {
    LISA__CUDA_LAUNCH(lisa__embedding_forward_kernel<E>, lisa__cuda_grid((size_t)n * dim), LISA__CUDA_THREADS, out,
                      tokens, table, n, dim);
    return cudaGetLastError();
}

static cudaError_t lisa__cuda_embedding_backward(float *dtable, const float *dout, const int *tokens, int n,
                                                 int dim) {
    LISA__CUDA_LAUNCH(lisa__embedding_backward_kernel, (unsigned)((dim + LISA__CUDA_THREADS - 1) / LISA__CUDA_THREADS),
                      LISA__CUDA_THREADS, dtable, dout, tokens, n, dim);
    return cudaGetLastError();
}

/* --- RMSNorm -------------------------------------------------------------- */

template <typename E>
__global__ void lisa__rmsnorm_forward_kernel(E *out, float *rstd, const E *x, const E *w, int dim, float eps) {
    const E *xr = x + (size_t)blockIdx.x * dim;
    E *orow = out + (size_t)blockIdx.x * dim;
    float ss = 0.0f, r;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) {
        float a = lisa__ld(xr[j]);
        ss += a * a;
    }
    ss = lisa__block_sum(ss);
    r = rsqrtf(ss / (float)dim + eps);
    for (int j = threadIdx.x; j < dim; j += blockDim.x) lisa__st(orow + j, lisa__ld(xr[j]) * r * lisa__ld(w[j]));
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
}

/* dx_j += r w_j g_j - x_j r^3 / dim * sum_k g_k w_k x_k */
template <typename E>
__global__ void lisa__rmsnorm_backward_dx_kernel(float *dx, const float *dout, const E *x, const E *w,
                                                 const float *rstd, int dim) {
    size_t row = (size_t)blockIdx.x * dim;
    float r = rstd[blockIdx.x], dot = 0.0f, c;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) dot += dout[row + j] * lisa__ld(w[j]) * lisa__ld(x[row + j]);
    dot = lisa__block_sum(dot);
    c = dot * r * r * r / (float)dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
        dx[row + j] += r * lisa__ld(w[j]) * dout[row + j] - lisa__ld(x[row + j]) * c;
}

/* dw_j += sum_i g_ij x_ij r_i: one thread per column, rows in order. */
template <typename E>
__global__ void lisa__rmsnorm_backward_dw_kernel(float *dw, const float *dout, const E *x, const float *rstd, int n,
                                                 int dim) {
    size_t col = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    float acc = 0.0f;
    if (col >= (size_t)dim) return;
    for (int i = 0; i < n; i++) acc += dout[(size_t)i * dim + col] * lisa__ld(x[(size_t)i * dim + col]) * rstd[i];
    dw[col] += acc;
}

template <typename E>
static cudaError_t lisa__cuda_rmsnorm_forward(E *out, float *rstd, const E *x, const E *w, int n, int dim,
                                              float eps) {
    LISA__CUDA_LAUNCH(lisa__rmsnorm_forward_kernel<E>, (unsigned)n, LISA__CUDA_THREADS, out, rstd, x, w, dim, eps);
    return cudaGetLastError();
}

/* dx (n, dim) += ..., dw (dim) += ... when non-NULL; dout is fp32. */
template <typename E>
static cudaError_t lisa__cuda_rmsnorm_backward(float *dx, float *dw, const float *dout, const E *x, const E *w,
                                               const float *rstd, int n, int dim) {
    cudaError_t e;
    LISA__CUDA_LAUNCH(lisa__rmsnorm_backward_dx_kernel<E>, (unsigned)n, LISA__CUDA_THREADS, dx, dout, x, w, rstd, dim);
    if ((e = cudaGetLastError()) != cudaSuccess || !dw) return e;
    LISA__CUDA_LAUNCH(lisa__rmsnorm_backward_dw_kernel<E>,
                      (unsigned)((dim + LISA__CUDA_THREADS - 1) / LISA__CUDA_THREADS), LISA__CUDA_THREADS, dw, dout,
                      x, rstd, n, dim);
    return cudaGetLastError();
}

/* --- RoPE ----------------------------------------------------------------- */

/* cos and sin of (t * theta^(-2i/head_dim)) for t < T, i < head_dim / 2, in
   double as lisa.h computes them, then rounded to float. */
static void lisa__cuda_rope_table(float *table, int T, int head_dim, float theta) {
    int half = head_dim / 2, t, i;
    for (t = 0; t < T; t++)
        for (i = 0; i < half; i++) {
            double freq = pow((double)theta, -2.0 * i / head_dim), angle = (double)t * freq;
            table[((size_t)t * half + i) * 2] = (float)cos(angle);
            table[((size_t)t * half + i) * 2 + 1] = (float)sin(angle);
        }
}

/* Turns each interleaved pair of x (B, T, n_heads, head_dim) in place by the
   table's angle (sign 1: forward) or back (sign -1: the gradient). */
template <typename E>
__global__ void lisa__rope_kernel(E *x, const float *table, int B, int T, int n_heads, int head_dim, float sign) {
    size_t half = (size_t)head_dim / 2, pairs = (size_t)B * T * n_heads * half;
    LISA__CUDA_FOR(p, pairs) {
        size_t i = p % half, rest = p / half, bt = rest / (size_t)n_heads, t = bt % (size_t)T;
        size_t at = rest * (size_t)head_dim + 2 * i;
        float c = table[(t * half + i) * 2], s = sign * table[(t * half + i) * 2 + 1];
        float a0 = lisa__ld(x[at]), a1 = lisa__ld(x[at + 1]);
        lisa__st(x + at, a0 * c - a1 * s);
        lisa__st(x + at + 1, a0 * s + a1 * c);
    }
}

template <typename E>
static cudaError_t lisa__cuda_rope(E *x, const float *table, int B, int T, int n_heads, int head_dim, float sign) {
    LISA__CUDA_LAUNCH(lisa__rope_kernel<E>, lisa__cuda_grid((size_t)B * T * n_heads * (head_dim / 2)),
                      LISA__CUDA_THREADS, x, table, B, T, n_heads, head_dim, sign);
    return cudaGetLastError();
}

/* --- elementwise: SwiGLU, residual, conversions, fills ---------------------- */

template <typename E>
__global__ void lisa__swiglu_forward_kernel(E *out, const E *gate, const E *up, size_t n) {
    LISA__CUDA_FOR(i, n) {
        float a = lisa__ld(gate[i]);
        lisa__st(out + i, a / (1.0f + expf(-a)) * lisa__ld(up[i]));
    }
}

/* Writes (not adds) dgate and dup. */
template <typename E>
__global__ void lisa__swiglu_backward_kernel(E *dgate, E *dup, const E *dout, const E *gate, const E *up, size_t n) {
    LISA__CUDA_FOR(i, n) {
        float a = lisa__ld(gate[i]), g = lisa__ld(dout[i]), sig = 1.0f / (1.0f + expf(-a));
        lisa__st(dgate + i, g * lisa__ld(up[i]) * sig * (1.0f + a * (1.0f - sig)));
        lisa__st(dup + i, g * a * sig);
    }
}

template <typename E>
__global__ void lisa__residual_kernel(E *out, const E *a, const E *b, size_t n) {
    LISA__CUDA_FOR(i, n) lisa__st(out + i, lisa__ld(a[i]) + lisa__ld(b[i]));
}

template <typename D, typename S>
__global__ void lisa__convert_kernel(D *dst, const S *src, size_t n) {
    LISA__CUDA_FOR(i, n) lisa__st(dst + i, lisa__ld(src[i]));
}

/* A counter-based normal draw per element (Box-Muller on two hashed uniforms). */
static __device__ __forceinline__ uint64_t lisa__mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

template <typename E>
__global__ void lisa__fill_kernel(E *w, size_t n, uint64_t seed, uint64_t first, float std) {
    LISA__CUDA_FOR(i, n) {
        float v = 1.0f;
        if (std != 0.0f) {
            uint64_t h = lisa__mix64(seed + 0x9e3779b97f4a7c15ull * (first + i + 1));
            float u1 = ((float)(h >> 40) + 1.0f) * (1.0f / 16777217.0f); /* (0, 1] */
            float u2 = (float)((h >> 16) & 0xffffffu) * (1.0f / 16777216.0f);
            v = std * sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
        }
        lisa__st(w + i, v);
    }
}

template <typename E>
static cudaError_t lisa__cuda_swiglu_forward(E *out, const E *gate, const E *up, size_t n) {
    LISA__CUDA_LAUNCH(lisa__swiglu_forward_kernel<E>, lisa__cuda_grid(n), LISA__CUDA_THREADS, out, gate, up, n);
    return cudaGetLastError();
}
template <typename E>
static cudaError_t lisa__cuda_swiglu_backward(E *dgate, E *dup, const E *dout, const E *gate, const E *up, size_t n) {
    LISA__CUDA_LAUNCH(lisa__swiglu_backward_kernel<E>, lisa__cuda_grid(n), LISA__CUDA_THREADS, dgate, dup, dout, gate,
                      up, n);
    return cudaGetLastError();
}
template <typename E>
static cudaError_t lisa__cuda_residual(E *out, const E *a, const E *b, size_t n) {
    LISA__CUDA_LAUNCH(lisa__residual_kernel<E>, lisa__cuda_grid(n), LISA__CUDA_THREADS, out, a, b, n);
    return cudaGetLastError();
}
template <typename D, typename S>
static cudaError_t lisa__cuda_convert(D *dst, const S *src, size_t n) {
    LISA__CUDA_LAUNCH((lisa__convert_kernel<D, S>), lisa__cuda_grid(n), LISA__CUDA_THREADS, dst, src, n);
    return cudaGetLastError();
}
template <typename E>
static cudaError_t lisa__cuda_fill(E *w, size_t n, uint64_t seed, uint64_t first, float std) {
    LISA__CUDA_LAUNCH(lisa__fill_kernel<E>, lisa__cuda_grid(n), LISA__CUDA_THREADS, w, n, seed, first, std);
    return cudaGetLastError();
}

/* --- attention ------------------------------------------------------------ */

/* Flash-style causal attention with grouped-query heads. q (B, T, n_heads,
   hd), k and v (B, T, n_kv_heads, hd). A block takes a tile of query rows of
   one head, one warp per row at a time, and walks the key tiles up to the
   diagonal: lane j scores key j of the tile, the tile's scores live in
   registers only, and the softmax runs online (rescaling when the row's
   maximum grows). Lane l owns output dims l, l + 32, ... Each row's
   log-sum-exp is kept for backward, which recomputes the probabilities. */
#define LISA__ATT_KEYS 32        /* keys per tile: one per lane */
#define LISA__ATT_FWD_ROWS 16    /* query rows per block (forward) */
#define LISA__ATT_BWD_ROWS 8     /* query rows per block (dq) */
#define LISA__ATT_DKV_KEYS 16    /* keys per block (dk, dv) */
#define LISA__ATT_WARPS 4
#define LISA__ATT_DIMS (LISA_CUDA_MAX_HEAD_DIM / 32) /* output dims per lane */

static __device__ __forceinline__ float lisa__dot_smem(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

/* Loads n_keys rows of keys and values from j0 into padded float tiles. */
template <typename E>
static __device__ void lisa__att_load_kv(float (*ks)[LISA_CUDA_MAX_HEAD_DIM + 1],
                                         float (*vs)[LISA_CUDA_MAX_HEAD_DIM + 1], const E *k, const E *v,
                                         size_t base, size_t kv_row, int j0, int n_keys, int T, int hd) {
    for (int idx = threadIdx.x; idx < n_keys * hd; idx += blockDim.x) {
        int r = idx / hd, d = idx % hd, j = j0 + r;
        size_t at = base + (size_t)j * kv_row + d;
        ks[r][d] = j < T ? lisa__ld(k[at]) : 0.0f;
        vs[r][d] = j < T ? lisa__ld(v[at]) : 0.0f;
    }
}

template <typename E>
__global__ void __launch_bounds__(LISA__ATT_WARPS * 32)
lisa__attention_forward_kernel(E *out, float *lse, const E *q, const E *k, const E *v, int T, int n_heads,
                               int n_kv_heads, int hd, float scale) {
    __shared__ float qs[LISA__ATT_FWD_ROWS][LISA_CUDA_MAX_HEAD_DIM];
    __shared__ float ks[LISA__ATT_KEYS][LISA_CUDA_MAX_HEAD_DIM + 1];
    __shared__ float vs[LISA__ATT_KEYS][LISA_CUDA_MAX_HEAD_DIM + 1];
    const int rows_per_warp = LISA__ATT_FWD_ROWS / LISA__ATT_WARPS;
    int b = blockIdx.y / n_heads, h = blockIdx.y % n_heads, kvh = h / (n_heads / n_kv_heads);
    int row0 = blockIdx.x * LISA__ATT_FWD_ROWS, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int last = min(row0 + LISA__ATT_FWD_ROWS, T) - 1;
    size_t q_row = (size_t)n_heads * hd, kv_row = (size_t)n_kv_heads * hd;
    size_t q_base = (size_t)b * T * q_row + (size_t)h * hd, kv_base = (size_t)b * T * kv_row + (size_t)kvh * hd;
    float m[rows_per_warp], l[rows_per_warp], acc[rows_per_warp][LISA__ATT_DIMS];
    for (int rr = 0; rr < rows_per_warp; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
        for (int dd = 0; dd < LISA__ATT_DIMS; dd++) acc[rr][dd] = 0.0f;
    }
    for (int idx = threadIdx.x; idx < LISA__ATT_FWD_ROWS * hd; idx += blockDim.x) {
        int r = idx / hd, d = idx % hd, i = row0 + r;
        qs[r][d] = i < T ? lisa__ld(q[q_base + (size_t)i * q_row + d]) : 0.0f;
    }
    for (int j0 = 0; j0 <= last; j0 += LISA__ATT_KEYS) {
        __syncthreads(); /* the previous tile is done with */
        lisa__att_load_kv<E>(ks, vs, k, v, kv_base, kv_row, j0, LISA__ATT_KEYS, T, hd);
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < rows_per_warp; rr++) {
            int r = warp * rows_per_warp + rr, i = row0 + r, j = j0 + lane;
            float s, tile_max, new_m, rescale, p;
            if (i >= T || j0 > i) continue; /* the same for the whole warp */
            s = j <= i ? lisa__dot_smem(qs[r], ks[lane], hd) * scale : -INFINITY;
            tile_max = lisa__warp_max(s);
            new_m = fmaxf(m[rr], tile_max);
            rescale = expf(m[rr] - new_m);
            p = j <= i ? expf(s - new_m) : 0.0f;
            l[rr] = l[rr] * rescale + lisa__warp_sum(p);
            for (int dd = 0; dd < LISA__ATT_DIMS; dd++) acc[rr][dd] *= rescale;
            for (int jj = 0; jj < LISA__ATT_KEYS; jj++) {
                float pj = __shfl_sync(0xffffffffu, p, jj);
                for (int dd = 0; dd < LISA__ATT_DIMS; dd++) {
                    int d = lane + 32 * dd;
                    if (d < hd) acc[rr][dd] += pj * vs[jj][d];
                }
            }
            m[rr] = new_m;
        }
    }
    for (int rr = 0; rr < rows_per_warp; rr++) {
        int i = row0 + warp * rows_per_warp + rr;
        if (i >= T) continue;
        for (int dd = 0; dd < LISA__ATT_DIMS; dd++) {
            int d = lane + 32 * dd;
            if (d < hd) lisa__st(out + q_base + (size_t)i * q_row + d, acc[rr][dd] / l[rr]);
        }
        if (lane == 0) lse[((size_t)b * n_heads + h) * T + i] = m[rr] + logf(l[rr]);
    }
}

/* dq of a tile of query rows: dq_i = sum_j ds_ij k_j with
   ds_ij = p_ij (do_i . v_j - do_i . out_i) * scale, p_ij from the saved lse. */
template <typename E>
__global__ void __launch_bounds__(LISA__ATT_WARPS * 32)
lisa__attention_dq_kernel(E *dq, const E *dout, const E *out, const float *lse, const E *q, const E *k,
                          const E *v, int T, int n_heads, int n_kv_heads, int hd, float scale) {
    __shared__ float qs[LISA__ATT_BWD_ROWS][LISA_CUDA_MAX_HEAD_DIM];
    __shared__ float dos[LISA__ATT_BWD_ROWS][LISA_CUDA_MAX_HEAD_DIM];
    __shared__ float ks[LISA__ATT_KEYS][LISA_CUDA_MAX_HEAD_DIM + 1];
    __shared__ float vs[LISA__ATT_KEYS][LISA_CUDA_MAX_HEAD_DIM + 1];
    const int rows_per_warp = LISA__ATT_BWD_ROWS / LISA__ATT_WARPS;
    int b = blockIdx.y / n_heads, h = blockIdx.y % n_heads, kvh = h / (n_heads / n_kv_heads);
    int row0 = blockIdx.x * LISA__ATT_BWD_ROWS, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int last = min(row0 + LISA__ATT_BWD_ROWS, T) - 1;
    size_t q_row = (size_t)n_heads * hd, kv_row = (size_t)n_kv_heads * hd;
    size_t q_base = (size_t)b * T * q_row + (size_t)h * hd, kv_base = (size_t)b * T * kv_row + (size_t)kvh * hd;
    float D[rows_per_warp], row_lse[rows_per_warp], acc[rows_per_warp][LISA__ATT_DIMS];
    for (int idx = threadIdx.x; idx < LISA__ATT_BWD_ROWS * hd; idx += blockDim.x) {
        int r = idx / hd, d = idx % hd, i = row0 + r;
        qs[r][d] = i < T ? lisa__ld(q[q_base + (size_t)i * q_row + d]) : 0.0f;
        dos[r][d] = i < T ? lisa__ld(dout[q_base + (size_t)i * q_row + d]) : 0.0f;
    }
    __syncthreads();
    for (int rr = 0; rr < rows_per_warp; rr++) {
        int r = warp * rows_per_warp + rr, i = row0 + r;
        float part = 0.0f;
        for (int d = lane; d < hd; d += 32)
            part += dos[r][d] * (i < T ? lisa__ld(out[q_base + (size_t)i * q_row + d]) : 0.0f);
        D[rr] = lisa__warp_sum(part);
        row_lse[rr] = i < T ? lse[((size_t)b * n_heads + h) * T + i] : 0.0f;
        for (int dd = 0; dd < LISA__ATT_DIMS; dd++) acc[rr][dd] = 0.0f;
    }
    for (int j0 = 0; j0 <= last; j0 += LISA__ATT_KEYS) {
        __syncthreads();
        lisa__att_load_kv<E>(ks, vs, k, v, kv_base, kv_row, j0, LISA__ATT_KEYS, T, hd);
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < rows_per_warp; rr++) {
            int r = warp * rows_per_warp + rr, i = row0 + r, j = j0 + lane;
            float p = 0.0f, ds = 0.0f;
            if (i >= T || j0 > i) continue;
            if (j <= i) {
                p = expf(lisa__dot_smem(qs[r], ks[lane], hd) * scale - row_lse[rr]);
                ds = p * (lisa__dot_smem(dos[r], vs[lane], hd) - D[rr]) * scale;
            }
            for (int jj = 0; jj < LISA__ATT_KEYS; jj++) {
                float dsj = __shfl_sync(0xffffffffu, ds, jj);
                for (int dd = 0; dd < LISA__ATT_DIMS; dd++) {
                    int d = lane + 32 * dd;
                    if (d < hd) acc[rr][dd] += dsj * ks[jj][d];
                }
            }
        }
    }
    for (int rr = 0; rr < rows_per_warp; rr++) {
        int i = row0 + warp * rows_per_warp + rr;
        if (i >= T) continue;
        for (int dd = 0; dd < LISA__ATT_DIMS; dd++) {
            int d = lane + 32 * dd;
            if (d < hd) lisa__st(dq + q_base + (size_t)i * q_row + d, acc[rr][dd]);
        }
    }
}

/* dk and dv of a tile of keys of one kv head: one warp walks every query
   row at or below the tile, for each query head of the group, and adds
   p_ij do_i into dv_j and ds_ij q_i into dk_j. One warp per block, so the
   sums need no atomics and come out the same every run. Lanes l and l + 16
   share key l of the tile, each taking half of the dot products' dims. */
template <typename E>
__global__ void __launch_bounds__(32)
lisa__attention_dkv_kernel(E *dk, E *dv, const E *dout, const E *out, const float *lse, const E *q, const E *k,
                           const E *v, int T, int n_heads, int n_kv_heads, int hd, float scale) {
    __shared__ float ks[LISA__ATT_DKV_KEYS][LISA_CUDA_MAX_HEAD_DIM + 1];
    __shared__ float vs[LISA__ATT_DKV_KEYS][LISA_CUDA_MAX_HEAD_DIM + 1];
    __shared__ float dks[LISA__ATT_DKV_KEYS][LISA_CUDA_MAX_HEAD_DIM];
    __shared__ float dvs[LISA__ATT_DKV_KEYS][LISA_CUDA_MAX_HEAD_DIM];
    __shared__ float qrow[LISA_CUDA_MAX_HEAD_DIM], dorow[LISA_CUDA_MAX_HEAD_DIM];
    int group = n_heads / n_kv_heads, b = blockIdx.y / n_kv_heads, kvh = blockIdx.y % n_kv_heads;
    int j0 = blockIdx.x * LISA__ATT_DKV_KEYS, lane = threadIdx.x, key = lane & 15, half = lane >> 4;
    size_t q_row = (size_t)n_heads * hd, kv_row = (size_t)n_kv_heads * hd;
    size_t kv_base = (size_t)b * T * kv_row + (size_t)kvh * hd;
    lisa__att_load_kv<E>(ks, vs, k, v, kv_base, kv_row, j0, LISA__ATT_DKV_KEYS, T, hd);
    for (int idx = lane; idx < LISA__ATT_DKV_KEYS * LISA_CUDA_MAX_HEAD_DIM; idx += 32) {
        dks[idx / LISA_CUDA_MAX_HEAD_DIM][idx % LISA_CUDA_MAX_HEAD_DIM] = 0.0f;
        dvs[idx / LISA_CUDA_MAX_HEAD_DIM][idx % LISA_CUDA_MAX_HEAD_DIM] = 0.0f;
    }
    __syncwarp();
    for (int g = 0; g < group; g++) {
        int h = kvh * group + g;
        size_t q_base = (size_t)b * T * q_row + (size_t)h * hd;
        for (int i = j0; i < T; i++) {
            float part = 0.0f, s = 0.0f, dp = 0.0f, D, row_lse, p = 0.0f, ds = 0.0f;
            int j = j0 + key;
            __syncwarp(); /* the previous row is done with */
            for (int d = lane; d < hd; d += 32) {
                qrow[d] = lisa__ld(q[q_base + (size_t)i * q_row + d]);
                dorow[d] = lisa__ld(dout[q_base + (size_t)i * q_row + d]);
                part += dorow[d] * lisa__ld(out[q_base + (size_t)i * q_row + d]);
            }
            D = lisa__warp_sum(part);
            row_lse = lse[((size_t)b * n_heads + h) * T + i];
            __syncwarp();
            for (int d = half; d < hd; d += 2) {
                s += qrow[d] * ks[key][d];
                dp += dorow[d] * vs[key][d];
            }
            s += __shfl_xor_sync(0xffffffffu, s, 16);
            dp += __shfl_xor_sync(0xffffffffu, dp, 16);
            if (j <= i && j < T) {
                p = expf(s * scale - row_lse);
                ds = p * (dp - D) * scale;
            }
            for (int jj = 0; jj < LISA__ATT_DKV_KEYS; jj++) {
                float pj = __shfl_sync(0xffffffffu, p, jj), dsj = __shfl_sync(0xffffffffu, ds, jj);
                for (int d = lane; d < hd; d += 32) {
                    dvs[jj][d] += pj * dorow[d];
                    dks[jj][d] += dsj * qrow[d];
                }
            }
        }
    }
    __syncwarp();
    for (int idx = lane; idx < LISA__ATT_DKV_KEYS * hd; idx += 32) {
        int r = idx / hd, d = idx % hd, j = j0 + r;
        if (j >= T) continue;
        lisa__st(dk + kv_base + (size_t)j * kv_row + d, dks[r][d]);
        lisa__st(dv + kv_base + (size_t)j * kv_row + d, dvs[r][d]);
    }
}

template <typename E>
static cudaError_t lisa__cuda_attention_forward(E *out, float *lse, const E *q, const E *k, const E *v, int B, int T,
                                                int n_heads, int n_kv_heads, int hd) {
    dim3 grid((unsigned)((T + LISA__ATT_FWD_ROWS - 1) / LISA__ATT_FWD_ROWS), (unsigned)(B * n_heads));
    LISA__CUDA_LAUNCH(lisa__attention_forward_kernel<E>, grid, LISA__ATT_WARPS * 32, out, lse, q, k, v, T, n_heads,
                      n_kv_heads, hd, 1.0f / sqrtf((float)hd));
    return cudaGetLastError();
}

/* Writes (not adds) dq, dk, dv. */
template <typename E>
static cudaError_t lisa__cuda_attention_backward(E *dq, E *dk, E *dv, const E *dout, const E *out, const float *lse,
                                                 const E *q, const E *k, const E *v, int B, int T, int n_heads,
                                                 int n_kv_heads, int hd) {
    float scale = 1.0f / sqrtf((float)hd);
    dim3 qgrid((unsigned)((T + LISA__ATT_BWD_ROWS - 1) / LISA__ATT_BWD_ROWS), (unsigned)(B * n_heads));
    dim3 kgrid((unsigned)((T + LISA__ATT_DKV_KEYS - 1) / LISA__ATT_DKV_KEYS), (unsigned)(B * n_kv_heads));
    cudaError_t e;
    LISA__CUDA_LAUNCH(lisa__attention_dq_kernel<E>, qgrid, LISA__ATT_WARPS * 32, dq, dout, out, lse, q, k, v, T,
                      n_heads, n_kv_heads, hd, scale);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    LISA__CUDA_LAUNCH(lisa__attention_dkv_kernel<E>, kgrid, 32, dk, dv, dout, out, lse, q, k, v, T, n_heads,
                      n_kv_heads, hd, scale);
    return cudaGetLastError();
}

/* --- cross-entropy over a chunk of rows ------------------------------------- */

/* One block per row of fp32 logits: the row's loss (0 when ignored) and,
   when dlogits is non-NULL, dloss * (softmax - onehot) written over it (0 for
   ignored rows). dlogits may be the logits themselves (fp32): each element is
   read and then written by the same thread, after the row's sums. */
template <typename E>
__global__ void lisa__cross_entropy_kernel(float *row_loss, E *dlogits, const float *logits, const int *targets,
                                           int vocab, float dloss) {
    const float *row = logits + (size_t)blockIdx.x * vocab;
    E *drow = dlogits ? dlogits + (size_t)blockIdx.x * vocab : NULL;
    int target = targets[blockIdx.x];
    float mx = -INFINITY, sum = 0.0f, lse;
    if (target < 0) {
        if (threadIdx.x == 0) row_loss[blockIdx.x] = 0.0f;
        if (drow)
            for (int j = threadIdx.x; j < vocab; j += blockDim.x) lisa__st(drow + j, 0.0f);
        return;
    }
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = lisa__block_max(mx);
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(row[j] - mx);
    sum = lisa__block_sum(sum);
    lse = mx + logf(sum);
    if (threadIdx.x == 0) row_loss[blockIdx.x] = lse - row[target];
    __syncthreads(); /* row[target] is read before anyone overwrites it */
    if (drow)
        for (int j = threadIdx.x; j < vocab; j += blockDim.x)
            lisa__st(drow + j, dloss * (expf(row[j] - lse) - (j == target ? 1.0f : 0.0f)));
}

template <typename E>
static cudaError_t lisa__cuda_cross_entropy(float *row_loss, E *dlogits, const float *logits, const int *targets,
                                            int rows, int vocab, float dloss) {
    LISA__CUDA_LAUNCH(lisa__cross_entropy_kernel<E>, (unsigned)rows, LISA__CUDA_THREADS, row_loss, dlogits, logits,
                      targets, vocab, dloss);
    return cudaGetLastError();
}

/* --- AdamW, gradient norm ---------------------------------------------------- */

/* p (fp32 master) steps; copy (may be NULL) receives p in E. */
template <typename E>
__global__ void lisa__adamw_kernel(float *p, E *copy, const float *g, float *m, float *v, size_t n,
                                   lisa_adamw_scalars a) {
    LISA__CUDA_FOR(i, n) {
        float gi = g[i], pi = p[i] * a.decay, mi = m[i], vi;
        mi += a.one_minus_b1 * (gi - mi);
        vi = v[i] * a.beta2 + a.one_minus_b2 * gi * gi;
        pi -= a.step_size * (mi / (sqrtf(vi) / a.bc2_sqrt + a.eps));
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
        if (copy) lisa__st(copy + i, pi);
    }
}

template <typename E>
static cudaError_t lisa__cuda_adamw_update(float *p, E *copy, const float *g, float *m, float *v, size_t n,
                                           lisa_adamw_scalars a) {
    LISA__CUDA_LAUNCH(lisa__adamw_kernel<E>, lisa__cuda_grid(n), LISA__CUDA_THREADS, p, copy, g, m, v, n, a);
    return cudaGetLastError();
}

/* partials[block] = sum of squares (in double) of this block's share of x;
   a fixed grid, so the sum depends on n alone. */
__global__ void lisa__sum_squares_kernel(double *partials, const float *x, size_t n) {
    __shared__ double part[LISA__CUDA_THREADS / 32];
    double acc = 0.0;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    LISA__CUDA_FOR(i, n) acc += (double)x[i] * x[i];
    acc = lisa__warp_sum_d(acc);
    if (lane == 0) part[w] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int i = 0; i < (int)(blockDim.x >> 5); i++) total += part[i];
        partials[blockIdx.x] = total;
    }
}

__global__ void lisa__scale_kernel(float *x, size_t n, float s) {
    LISA__CUDA_FOR(i, n) x[i] *= s;
}

static cudaError_t lisa__cuda_sum_squares(double *partials, const float *x, size_t n) {
    LISA__CUDA_LAUNCH(lisa__sum_squares_kernel, LISA__CUDA_NORM_BLOCKS, LISA__CUDA_THREADS, partials, x, n);
    return cudaGetLastError();
}

static cudaError_t lisa__cuda_scale(float *x, size_t n, float s) {
    LISA__CUDA_LAUNCH(lisa__scale_kernel, lisa__cuda_grid(n), LISA__CUDA_THREADS, x, n, s);
    return cudaGetLastError();
}

/* --- matrix products (cuBLAS, fp32 accumulation) ------------------------------

   Row-major X (rows, cols) is column-major X^T with leading dimension cols,
   so each product below is written for cuBLAS on the transposes. */

static cublasStatus_t lisa__cuda_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                      int k, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
                                      int ldb, float beta, void *C, cudaDataType ct, int ldc) {
    float alpha = 1.0f;
    return cublasGemmEx(h, ta, tb, m, n, k, &alpha, A, at, lda, B, bt, ldb, &beta, C, ct, ldc, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
}

/* out (n, out_dim) = x (n, in_dim) @ w^T, w (out_dim, in_dim); out is E or fp32 (out_type). */
template <typename E>
static cublasStatus_t lisa__cuda_linear_forward(cublasHandle_t h, void *out, cudaDataType out_type, const E *x,
                                                const E *w, int n, int in_dim, int out_dim) {
    cudaDataType t = lisa__cuda_type<E>();
    return lisa__cuda_gemm(h, CUBLAS_OP_T, CUBLAS_OP_N, out_dim, n, in_dim, w, t, in_dim, x, t, in_dim, 0.0f, out,
                           out_type, out_dim);
}

/* dx (n, in_dim) = beta * dx + dout (n, out_dim) @ w; dx is E or fp32 (dx_type). */
template <typename E>
static cublasStatus_t lisa__cuda_linear_backward_dx(cublasHandle_t h, void *dx, cudaDataType dx_type, float beta,
                                                    const E *dout, const E *w, int n, int in_dim, int out_dim) {
    cudaDataType t = lisa__cuda_type<E>();
    return lisa__cuda_gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, in_dim, n, out_dim, w, t, in_dim, dout, t, out_dim, beta, dx,
                           dx_type, in_dim);
}

/* dw (out_dim, in_dim, fp32) += dout^T (out_dim, n) @ x (n, in_dim). */
template <typename E>
static cublasStatus_t lisa__cuda_linear_backward_dw(cublasHandle_t h, float *dw, const E *dout, const E *x, int n,
                                                    int in_dim, int out_dim) {
    cudaDataType t = lisa__cuda_type<E>();
    return lisa__cuda_gemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in_dim, out_dim, n, x, t, in_dim, dout, t, out_dim, 1.0f, dw,
                           CUDA_R_32F, in_dim);
}

/* ------------------------------------------------------------------------- */
/* Trainer                                                                    */
/* ------------------------------------------------------------------------- */

/* The trainer is lisa.h's trainer core (blocks, active layers, sampler, the
   step sequence and AdamW's scalars) with device operations: the block
   pointers of core are device memory, and each block's copy is, with bf16,
   its fp32 master weights while it trains. */
struct lisa_cuda_trainer {
    lisa_config c;                 /* resolved */
    lisa_cuda_config cc;
    lisa_layout L;
    lisa__cuda_layout y;
    lisa_model shape;              /* c and L only, no parameters: the model the core reads */
    lisa_trainer core;             /* config resolved; lisa_probs points at the core's copy */
    cublasHandle_t blas;
    int has_blas;
    void *weights;                 /* (n_params) E, layer-major as on the CPU */
    unsigned char *acts, *scratch, *tables;
    float *host_loss;              /* (B*T) row losses copied back */
    double *host_partials;         /* (n_blocks x LISA__CUDA_NORM_BLOCKS) */
    int *host_tokens;              /* (2 x B*T) */
    int held_layer;
    size_t bytes, peak_bytes;
    char message[256];
};

/* AdamW's m and v of a block of n floats, one allocation. */
static size_t lisa__cuda_moment_bytes(size_t n) { return 2 * n * sizeof(float); }

/* Both clear the runtime's last error: a failed call (cudaMalloc out of
   memory, an invalid argument) stays recorded until read, and the next
   launch's cudaGetLastError() would report it again. Sticky errors stay. */
static lisa_result lisa__cuda_fail(lisa_cuda_trainer *t, cudaError_t e, const char *what) {
    (void)cudaGetLastError();
    snprintf(t->message, sizeof t->message, "%s: %s", what, cudaGetErrorString(e));
    return e == cudaErrorMemoryAllocation ? LISA_ERR_NOMEM : LISA_ERR_DEVICE;
}

static lisa_result lisa__cuda_blas_fail(lisa_cuda_trainer *t, cublasStatus_t s, const char *what) {
    (void)cudaGetLastError();
    snprintf(t->message, sizeof t->message, "%s: cuBLAS status %d", what, (int)s);
    return s == CUBLAS_STATUS_ALLOC_FAILED ? LISA_ERR_NOMEM : LISA_ERR_DEVICE;
}

/* (variadic: template arguments hold commas) */
#define LISA__CU(t, ...)                                                                  \
    do {                                                                                  \
        cudaError_t lisa__e = (__VA_ARGS__);                                              \
        if (lisa__e != cudaSuccess) return lisa__cuda_fail(t, lisa__e, #__VA_ARGS__);     \
    } while (0)
#define LISA__BLAS(t, ...)                                                                \
    do {                                                                                  \
        cublasStatus_t lisa__s = (__VA_ARGS__);                                           \
        if (lisa__s != CUBLAS_STATUS_SUCCESS) return lisa__cuda_blas_fail(t, lisa__s, #__VA_ARGS__); \
    } while (0)

/* The current device belongs to the host thread: every public function that
   touches the device makes the trainer's current first, so that trainers on
   two GPUs, or a trainer called from another thread, run where their memory
   and cuBLAS handle are. */
static lisa_result lisa__cuda_use(lisa_cuda_trainer *t) {
    LISA__CU(t, cudaSetDevice(t->cc.device));
    return LISA_OK;
}

/* Every device allocation of the trainer goes through these two, so that
   lisa_cuda_trainer_bytes() is exact. */
static cudaError_t lisa__cuda_malloc(lisa_cuda_trainer *t, void **p, size_t bytes) {
    cudaError_t e;
    *p = NULL;
    if (bytes == 0) return cudaSuccess;
    e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* out of memory is an answer here, not a lasting error */
        *p = NULL;
        return e;
    }
    t->bytes += bytes;
    if (t->bytes > t->peak_bytes) t->peak_bytes = t->bytes;
    return cudaSuccess;
}

static void lisa__cuda_free(lisa_cuda_trainer *t, void *p, size_t bytes) {
    if (!p) return;
    cudaFree(p);
    t->bytes -= bytes;
}

/* --- the model's tensors on the device ---------------------------------------- */

template <typename E> static E *lisa__cuda_weights(const lisa_cuda_trainer *t) { return (E *)t->weights; }

template <typename E> static E *lisa__cuda_block_weights(const lisa_cuda_trainer *t, int b) {
    return lisa__cuda_weights<E>(t) + lisa_block_describe(&t->c, b).offset;
}

template <typename E> struct lisa__cuda_layer_w {
    const E *attn_norm, *wq, *wk, *wv, *wo, *mlp_norm, *w1, *w2, *w3;
};

template <typename E> static lisa__cuda_layer_w<E> lisa__cuda_layer(const lisa_cuda_trainer *t, int l) {
    const E *p = lisa__cuda_block_weights<E>(t, LISA_BLOCK_LAYER(l));
    const lisa_layer_layout *y = &t->L.layer;
    lisa__cuda_layer_w<E> w;
    w.attn_norm = p + y->attn_norm;
    w.wq = p + y->wq;
    w.wk = p + y->wk;
    w.wv = p + y->wv;
    w.wo = p + y->wo;
    w.mlp_norm = p + y->mlp_norm;
    w.w1 = p + y->w1;
    w.w2 = p + y->w2;
    w.w3 = p + y->w3;
    return w;
}

/* One layer's saved values (the one set with checkpointing). */
template <typename E> struct lisa__cuda_set {
    float *rstd1, *lse, *rstd2;
    E *xn1, *q, *k, *v, *att, *x_mid, *xn2, *h1, *h3, *hg;
};

template <typename E> static lisa__cuda_set<E> lisa__cuda_layer_set(const lisa_cuda_trainer *t, int l) {
    const lisa__cuda_layout *y = &t->y;
    unsigned char *p = t->acts + y->sets + (t->core.config.checkpointing ? 0 : (size_t)l * y->set_stride);
    lisa__cuda_set<E> s;
    s.rstd1 = (float *)(p + y->rstd1);
    s.lse = (float *)(p + y->lse);
    s.rstd2 = (float *)(p + y->rstd2);
    s.xn1 = (E *)(p + y->xn1);
    s.q = (E *)(p + y->q);
    s.k = (E *)(p + y->k);
    s.v = (E *)(p + y->v);
    s.att = (E *)(p + y->att);
    s.x_mid = (E *)(p + y->x_mid);
    s.xn2 = (E *)(p + y->xn2);
    s.h1 = (E *)(p + y->h1);
    s.h3 = (E *)(p + y->h3);
    s.hg = (E *)(p + y->hg);
    return s;
}

template <typename E> static E *lisa__cuda_layer_in(const lisa_cuda_trainer *t, int l) {
    size_t BT = (size_t)t->core.config.batch * t->core.config.seq;
    return (E *)(t->acts + t->y.layer_in) + (size_t)l * BT * t->c.dim;
}

static const float *lisa__cuda_rope_table_of(const lisa_cuda_trainer *t) { return (const float *)(t->tables + t->y.rope); }
static int *lisa__cuda_inputs(const lisa_cuda_trainer *t) { return (int *)(t->acts + t->y.inputs); }
static int *lisa__cuda_targets(const lisa_cuda_trainer *t) { return (int *)(t->acts + t->y.targets); }

static float *lisa__cuda_grad_at(float *block_grad, size_t offset) { return block_grad ? block_grad + offset : NULL; }

/* --- forward ------------------------------------------------------------------- */

/* Decoder layer l on its input into its saved set; out (may be NULL: a
   recompute for backward) gets the layer output. */
template <typename E> static lisa_result lisa__cuda_layer_forward(lisa_cuda_trainer *t, int l, int B, int T, E *out) {
    const lisa_config *c = &t->c;
    lisa__cuda_layer_w<E> w = lisa__cuda_layer<E>(t, l);
    lisa__cuda_set<E> s = lisa__cuda_layer_set<E>(t, l);
    int BT = B * T, D = c->dim, H = c->hidden_dim, hd = c->dim / c->n_heads, kv = hd * c->n_kv_heads;
    const E *x = lisa__cuda_layer_in<E>(t, l);
    cudaDataType et = lisa__cuda_type<E>();
    t->held_layer = l;
    LISA__CU(t, lisa__cuda_rmsnorm_forward<E>(s.xn1, s.rstd1, x, w.attn_norm, BT, D, c->norm_eps));
    LISA__BLAS(t, lisa__cuda_linear_forward<E>(t->blas, s.q, et, s.xn1, w.wq, BT, D, D));
    LISA__BLAS(t, lisa__cuda_linear_forward<E>(t->blas, s.k, et, s.xn1, w.wk, BT, D, kv));
    LISA__BLAS(t, lisa__cuda_linear_forward<E>(t->blas, s.v, et, s.xn1, w.wv, BT, D, kv));
    LISA__CU(t, lisa__cuda_rope<E>(s.q, lisa__cuda_rope_table_of(t), B, T, c->n_heads, hd, 1.0f));
    LISA__CU(t, lisa__cuda_rope<E>(s.k, lisa__cuda_rope_table_of(t), B, T, c->n_kv_heads, hd, 1.0f));
    LISA__CU(t, lisa__cuda_attention_forward<E>(s.att, s.lse, s.q, s.k, s.v, B, T, c->n_heads, c->n_kv_heads, hd));
    LISA__BLAS(t, lisa__cuda_linear_forward<E>(t->blas, s.x_mid, et, s.att, w.wo, BT, D, D));
    LISA__CU(t, lisa__cuda_residual<E>(s.x_mid, s.x_mid, x, (size_t)BT * D));
    LISA__CU(t, lisa__cuda_rmsnorm_forward<E>(s.xn2, s.rstd2, s.x_mid, w.mlp_norm, BT, D, c->norm_eps));
    LISA__BLAS(t, lisa__cuda_linear_forward<E>(t->blas, s.h1, et, s.xn2, w.w1, BT, D, H));
    LISA__BLAS(t, lisa__cuda_linear_forward<E>(t->blas, s.h3, et, s.xn2, w.w3, BT, D, H));
    LISA__CU(t, lisa__cuda_swiglu_forward<E>(s.hg, s.h1, s.h3, (size_t)BT * H));
    if (out) {
        LISA__BLAS(t, lisa__cuda_linear_forward<E>(t->blas, out, et, s.hg, w.w2, BT, H, D));
        LISA__CU(t, lisa__cuda_residual<E>(out, out, s.x_mid, (size_t)BT * D));
    }
    return LISA_OK;
}

/* Embedding, every layer, final norm. */
template <typename E> static lisa_result lisa__cuda_forward_layers(lisa_cuda_trainer *t, int B, int T) {
    const lisa_config *c = &t->c;
    int BT = B * T, l;
    lisa_result r;
    LISA__CU(t, lisa__cuda_embedding_forward<E>(lisa__cuda_layer_in<E>(t, 0), lisa__cuda_inputs(t),
                                                lisa__cuda_block_weights<E>(t, LISA_BLOCK_EMBED), BT, c->dim));
    for (l = 0; l < c->n_layers; l++)
        if ((r = lisa__cuda_layer_forward<E>(t, l, B, T, lisa__cuda_layer_in<E>(t, l + 1))) != LISA_OK) return r;
    LISA__CU(t, lisa__cuda_rmsnorm_forward<E>((E *)(t->acts + t->y.final_xn), (float *)(t->acts + t->y.final_rstd),
                                              lisa__cuda_layer_in<E>(t, c->n_layers),
                                              lisa__cuda_block_weights<E>(t, lisa_block_final_norm(c)), BT, c->dim,
                                              c->norm_eps));
    return LISA_OK;
}

/* The head and the loss, a chunk of rows at a time: logits (fp32) from
   cuBLAS, row losses, and with train set the gradient of the mean loss
   (dloss per row) in place, then d(final_xn) into the scratch dxn and the
   head's gradient (g_head, may be NULL). Row losses go to host_loss. */
template <typename E> static lisa_result lisa__cuda_head(lisa_cuda_trainer *t, int BT, int train, float dloss,
                                                      float *g_head) {
    const lisa_config *c = &t->c;
    const lisa__cuda_layout *y = &t->y;
    int D = c->dim, V = c->vocab_size, r0;
    const E *head = lisa__cuda_block_weights<E>(t, c->tied_head ? LISA_BLOCK_EMBED : lisa_block_head(c));
    const E *xn = (const E *)(t->acts + y->final_xn);
    float *logits = (float *)(t->scratch + y->logits), *row_loss = (float *)(t->acts + y->row_loss);
    float *dxn = (float *)(t->scratch + y->dxn);
    E *dlogits = (E *)(t->scratch + y->dlogits);
    cudaDataType et = lisa__cuda_type<E>();
    for (r0 = 0; r0 < BT; r0 += y->ce_rows) {
        int rows = BT - r0 < y->ce_rows ? BT - r0 : y->ce_rows;
        const E *x = xn + (size_t)r0 * D;
        LISA__BLAS(t, lisa__cuda_linear_forward<E>(t->blas, logits, CUDA_R_32F, x, head, rows, D, V));
        LISA__CU(t, lisa__cuda_cross_entropy<E>(row_loss + r0, train ? dlogits : (E *)NULL, logits,
                                                lisa__cuda_targets(t) + r0, rows, V, dloss));
        if (!train) continue;
        LISA__BLAS(t, lisa__cuda_linear_backward_dx<E>(t->blas, dxn + (size_t)r0 * D, CUDA_R_32F, 0.0f, dlogits, head,
                                                       rows, D, V));
        if (g_head) LISA__BLAS(t, lisa__cuda_linear_backward_dw<E>(t->blas, g_head, dlogits, x, rows, D, V));
        (void)et;
    }
    LISA__CU(t, cudaMemcpy(t->host_loss, row_loss, (size_t)BT * sizeof(float), cudaMemcpyDeviceToHost));
    return LISA_OK;
}

/* --- backward ------------------------------------------------------------------- */

/* Backward through layer l: dres (fp32) holds d(loss)/d(layer output) on
   entry and d(loss)/d(layer input) on return; g is the layer's gradient or NULL. */
template <typename E> static lisa_result lisa__cuda_layer_backward(lisa_cuda_trainer *t, int l, int B, int T, float *g) {
    const lisa_config *c = &t->c;
    const lisa_layer_layout *ly = &t->L.layer;
    const lisa__cuda_layout *y = &t->y;
    lisa__cuda_layer_w<E> w = lisa__cuda_layer<E>(t, l);
    lisa__cuda_set<E> s = lisa__cuda_layer_set<E>(t, l);
    int BT = B * T, D = c->dim, H = c->hidden_dim, hd = c->dim / c->n_heads, kv = hd * c->n_kv_heads;
    const E *x = lisa__cuda_layer_in<E>(t, l);
    float *dres = (float *)(t->scratch + y->dres), *dxn = (float *)(t->scratch + y->dxn);
    E *dres_e = (E *)(t->scratch + y->dres_e), *shared = (E *)(t->scratch + y->shared);
    E *dh1 = shared, *dh3 = dh1 + (size_t)BT * H, *dhg = dh3 + (size_t)BT * H;
    E *datt = shared, *dq = datt + (size_t)BT * D, *dk = dq + (size_t)BT * D, *dv = dk + (size_t)BT * kv;
    cudaDataType et = lisa__cuda_type<E>();
    cublasHandle_t h = t->blas;

    /* MLP: out = x_mid + w2(silu(w1 xn2) * w3 xn2), xn2 = rmsnorm(x_mid) */
    LISA__CU(t, lisa__cuda_convert<E, float>(dres_e, dres, (size_t)BT * D));
    LISA__BLAS(t, lisa__cuda_linear_backward_dx<E>(h, dhg, et, 0.0f, dres_e, w.w2, BT, H, D));
    if (g) LISA__BLAS(t, lisa__cuda_linear_backward_dw<E>(h, g + ly->w2, dres_e, s.hg, BT, H, D));
    LISA__CU(t, lisa__cuda_swiglu_backward<E>(dh1, dh3, dhg, s.h1, s.h3, (size_t)BT * H));
    LISA__BLAS(t, lisa__cuda_linear_backward_dx<E>(h, dxn, CUDA_R_32F, 0.0f, dh1, w.w1, BT, D, H));
    LISA__BLAS(t, lisa__cuda_linear_backward_dx<E>(h, dxn, CUDA_R_32F, 1.0f, dh3, w.w3, BT, D, H));
    if (g) {
        LISA__BLAS(t, lisa__cuda_linear_backward_dw<E>(h, g + ly->w1, dh1, s.xn2, BT, D, H));
        LISA__BLAS(t, lisa__cuda_linear_backward_dw<E>(h, g + ly->w3, dh3, s.xn2, BT, D, H));
    }
    LISA__CU(t, lisa__cuda_rmsnorm_backward<E>(dres, lisa__cuda_grad_at(g, ly->mlp_norm), dxn, s.x_mid, w.mlp_norm,
                                               s.rstd2, BT, D));

    /* Attention: x_mid = x + wo(attn(rope(wq xn1), rope(wk xn1), wv xn1)) */
    LISA__CU(t, lisa__cuda_convert<E, float>(dres_e, dres, (size_t)BT * D));
    LISA__BLAS(t, lisa__cuda_linear_backward_dx<E>(h, datt, et, 0.0f, dres_e, w.wo, BT, D, D));
    if (g) LISA__BLAS(t, lisa__cuda_linear_backward_dw<E>(h, g + ly->wo, dres_e, s.att, BT, D, D));
    LISA__CU(t, lisa__cuda_attention_backward<E>(dq, dk, dv, datt, s.att, s.lse, s.q, s.k, s.v, B, T, c->n_heads,
                                                 c->n_kv_heads, hd));
    LISA__CU(t, lisa__cuda_rope<E>(dq, lisa__cuda_rope_table_of(t), B, T, c->n_heads, hd, -1.0f));
    LISA__CU(t, lisa__cuda_rope<E>(dk, lisa__cuda_rope_table_of(t), B, T, c->n_kv_heads, hd, -1.0f));
    LISA__BLAS(t, lisa__cuda_linear_backward_dx<E>(h, dxn, CUDA_R_32F, 0.0f, dq, w.wq, BT, D, D));
    LISA__BLAS(t, lisa__cuda_linear_backward_dx<E>(h, dxn, CUDA_R_32F, 1.0f, dk, w.wk, BT, D, kv));
    LISA__BLAS(t, lisa__cuda_linear_backward_dx<E>(h, dxn, CUDA_R_32F, 1.0f, dv, w.wv, BT, D, kv));
    if (g) {
        LISA__BLAS(t, lisa__cuda_linear_backward_dw<E>(h, g + ly->wq, dq, s.xn1, BT, D, D));
        LISA__BLAS(t, lisa__cuda_linear_backward_dw<E>(h, g + ly->wk, dk, s.xn1, BT, D, kv));
        LISA__BLAS(t, lisa__cuda_linear_backward_dw<E>(h, g + ly->wv, dv, s.xn1, BT, D, kv));
    }
    LISA__CU(t, lisa__cuda_rmsnorm_backward<E>(dres, lisa__cuda_grad_at(g, ly->attn_norm), dxn, x, w.attn_norm,
                                               s.rstd1, BT, D));
    return LISA_OK;
}

/* After the head's part (dxn holds d(final_xn)): final norm, the layers down
   to the lowest block that wants a gradient, the embedding. */
template <typename E> static lisa_result lisa__cuda_backward_layers(lisa_cuda_trainer *t, int B, int T) {
    const lisa_config *c = &t->c;
    float *const *grads = t->core.grad_ptrs;
    int BT = B * T, l, lowest = lisa_backward_lowest_layer(c, grads);
    float *dres = (float *)(t->scratch + t->y.dres), *dxn = (float *)(t->scratch + t->y.dxn);
    lisa_result r;
    LISA__CU(t, cudaMemset(dres, 0, (size_t)BT * c->dim * sizeof(float)));
    LISA__CU(t, lisa__cuda_rmsnorm_backward<E>(dres, grads[lisa_block_final_norm(c)], dxn,
                                               lisa__cuda_layer_in<E>(t, c->n_layers),
                                               lisa__cuda_block_weights<E>(t, lisa_block_final_norm(c)),
                                               (const float *)(t->acts + t->y.final_rstd), BT, c->dim));
    for (l = c->n_layers - 1; l >= 0 && l >= lowest; l--) {
        if (t->core.config.checkpointing && t->held_layer != l &&
            (r = lisa__cuda_layer_forward<E>(t, l, B, T, NULL)) != LISA_OK)
            return r;
        if ((r = lisa__cuda_layer_backward<E>(t, l, B, T, grads[LISA_BLOCK_LAYER(l)])) != LISA_OK) return r;
    }
    if (grads[LISA_BLOCK_EMBED])
        LISA__CU(t, lisa__cuda_embedding_backward(grads[LISA_BLOCK_EMBED], dres, lisa__cuda_inputs(t), BT, c->dim));
    return LISA_OK;
}

/* Copies the batch to the device; checks every id. */
static lisa_result lisa__cuda_upload_batch(lisa_cuda_trainer *t, const int *inputs, const int *targets, int BT) {
    int i, V = t->c.vocab_size;
    for (i = 0; i < BT; i++) {
        int tg = targets ? targets[i] : LISA_IGNORE;
        if (inputs[i] < 0 || inputs[i] >= V || tg < LISA_IGNORE || tg >= V) {
            snprintf(t->message, sizeof t->message, "token %d of the batch: input %d or target %d outside vocab %d",
                     i, inputs[i], tg, V);
            return LISA_ERR_INVALID;
        }
        t->host_tokens[i] = inputs[i];
        t->host_tokens[BT + i] = tg;
    }
    LISA__CU(t, cudaMemcpy(lisa__cuda_inputs(t), t->host_tokens, (size_t)BT * sizeof(int), cudaMemcpyHostToDevice));
    LISA__CU(t, cudaMemcpy(lisa__cuda_targets(t), t->host_tokens + BT, (size_t)BT * sizeof(int),
                           cudaMemcpyHostToDevice));
    return LISA_OK;
}

/* --- the trainer core's device operations ------------------------------------------ */

static lisa_cuda_trainer *lisa__cuda_of(lisa_trainer *core) { return (lisa_cuda_trainer *)core->device; }

static void *lisa__cuda_op_alloc(lisa_trainer *core, size_t bytes) {
    lisa_cuda_trainer *t = lisa__cuda_of(core);
    void *p;
    cudaError_t e = lisa__cuda_malloc(t, &p, bytes);
    if (e == cudaSuccess) return p;
    (void)lisa__cuda_fail(t, e, "block memory");
    return NULL;
}

static void lisa__cuda_op_free(lisa_trainer *core, void *p, size_t bytes) { lisa__cuda_free(lisa__cuda_of(core), p, bytes); }

static lisa_result lisa__cuda_op_zero(lisa_trainer *core, float *p, size_t n) {
    LISA__CU(lisa__cuda_of(core), cudaMemset(p, 0, n * sizeof(float)));
    return LISA_OK;
}

/* bf16: a block that starts training gets its fp32 master from its bf16 weights. */
template <typename E> static lisa_result lisa__cuda_op_fill_copy(lisa_trainer *core, int b) {
    lisa_cuda_trainer *t = lisa__cuda_of(core);
    LISA__CU(t, lisa__cuda_convert<float, E>(core->blocks[b].copy, lisa__cuda_block_weights<E>(t, b), core->block_sizes[b]));
    return LISA_OK;
}

static lisa_result lisa__cuda_op_load_batch(lisa_trainer *core, const int *inputs, const int *targets) {
    return lisa__cuda_upload_batch(lisa__cuda_of(core), inputs, targets, core->config.batch * core->config.seq);
}

template <typename E> static lisa_result lisa__cuda_op_forward_backward(lisa_trainer *core, const int *inputs,
                                                                      const int *targets, float loss_scale,
                                                                      float *loss) {
    lisa_cuda_trainer *t = lisa__cuda_of(core);
    const lisa_config *c = &t->c;
    int B = core->config.batch, T = core->config.seq, BT = B * T;
    lisa_result r;
    (void)inputs;
    (void)targets; /* on the device since load_batch */
    if ((r = lisa__cuda_forward_layers<E>(t, B, T)) != LISA_OK) return r;
    r = lisa__cuda_head<E>(t, BT, 1, loss_scale, core->grad_ptrs[c->tied_head ? LISA_BLOCK_EMBED : lisa_block_head(c)]);
    if (r != LISA_OK) return r;
    *loss = lisa_mean_loss(t->host_loss, t->host_tokens + BT, BT);
    return lisa__cuda_backward_layers<E>(t, B, T);
}

/* Partial sums per block on the device, added on the host in a fixed order. */
static lisa_result lisa__cuda_op_sum_squares(lisa_trainer *core, double *total) {
    lisa_cuda_trainer *t = lisa__cuda_of(core);
    int nb = lisa_n_blocks(&t->c), b, i;
    double *partials = (double *)(t->tables + t->y.partials), sum = 0.0;
    for (b = 0; b < nb; b++)
        if (core->grad_ptrs[b])
            LISA__CU(t, lisa__cuda_sum_squares(partials + (size_t)b * LISA__CUDA_NORM_BLOCKS, core->grad_ptrs[b],
                                               core->block_sizes[b]));
    LISA__CU(t, cudaMemcpy(t->host_partials, partials, (size_t)nb * LISA__CUDA_NORM_BLOCKS * sizeof(double),
                           cudaMemcpyDeviceToHost));
    for (b = 0; b < nb; b++)
        if (core->grad_ptrs[b])
            for (i = 0; i < LISA__CUDA_NORM_BLOCKS; i++) sum += t->host_partials[(size_t)b * LISA__CUDA_NORM_BLOCKS + i];
    *total = sum;
    return LISA_OK;
}

static lisa_result lisa__cuda_op_scale_grads(lisa_trainer *core, float coef) {
    int b;
    for (b = 0; b < lisa_n_blocks(&lisa__cuda_of(core)->c); b++)
        if (core->grad_ptrs[b])
            LISA__CU(lisa__cuda_of(core), lisa__cuda_scale(core->grad_ptrs[b], core->block_sizes[b], coef));
    return LISA_OK;
}

/* AdamW on the fp32 master (bf16, then rounded into the weights) or on the
   fp32 weights themselves. */
template <typename E> static lisa_result lisa__cuda_op_update(lisa_trainer *core, int b, size_t offset, size_t n,
                                                            const lisa_adamw_scalars *a) {
    lisa_cuda_trainer *t = lisa__cuda_of(core);
    const lisa_block_state *s = &core->blocks[b];
    int bf16 = sizeof(E) != sizeof(float);
    E *w = lisa__cuda_block_weights<E>(t, b);
    float *p = bf16 ? s->copy : (float *)(void *)w;
    LISA__CU(t, lisa__cuda_adamw_update<E>(p + offset, bf16 ? w + offset : (E *)NULL, s->grad + offset, s->m + offset,
                                           s->v + offset, n, *a));
    return LISA_OK;
}

static lisa_result lisa__cuda_op_end_step(lisa_trainer *core) {
    lisa_cuda_trainer *t = lisa__cuda_of(core);
    LISA__CU(t, cudaDeviceSynchronize());
    t->message[0] = 0;
    return LISA_OK;
}

template <typename E> static const lisa_trainer_ops *lisa__cuda_ops(void) {
    static const lisa_trainer_ops ops = {
        lisa__cuda_op_alloc, lisa__cuda_op_free, lisa__cuda_op_zero, sizeof(E) == sizeof(float) ? 0u : 1u,
        lisa__cuda_op_fill_copy<E>, lisa__cuda_op_load_batch, lisa__cuda_op_forward_backward<E>,
        lisa__cuda_op_sum_squares, lisa__cuda_op_scale_grads, lisa__cuda_op_update<E>, lisa__cuda_op_end_step};
    return &ops;
}

template <typename E> static lisa_result lisa__cuda_eval(lisa_cuda_trainer *t, const int *inputs, const int *targets,
                                                      int B, int T, float *loss) {
    int BT = B * T;
    lisa_result r;
    if (B < 1 || B > t->core.config.batch || T < 1 || T > t->core.config.seq) return LISA_ERR_INVALID;
    if ((r = lisa__cuda_upload_batch(t, inputs, targets, BT)) != LISA_OK) return r;
    if ((r = lisa__cuda_forward_layers<E>(t, B, T)) != LISA_OK) return r;
    if ((r = lisa__cuda_head<E>(t, BT, 0, 0.0f, NULL)) != LISA_OK) return r;
    t->held_layer = -1; /* the set's values are those of a different batch shape now */
    *loss = lisa_mean_loss(t->host_loss, t->host_tokens + BT, BT);
    t->message[0] = 0;
    return LISA_OK;
}

/* --- creation, weights in and out ------------------------------------------------ */

/* The model's weights onto the device: from m (fp32, rounded to nearest even
   for bf16) or drawn on the device from seed. */
template <typename E> static lisa_result lisa__cuda_init_weights(lisa_cuda_trainer *t, const lisa_model *m,
                                                              uint64_t seed) {
    int nb = lisa_n_blocks(&t->c), b, i;
    for (b = 0; b < nb; b++) {
        lisa_block_desc d = lisa_block_describe(&t->c, b);
        size_t count = d.size, base = d.offset, j;
        E *dst = lisa__cuda_block_weights<E>(t, b);
        if (count == 0) continue;
        if (m && sizeof(E) == sizeof(float)) {
            LISA__CU(t, cudaMemcpy(dst, m->params + base, count * sizeof(float), cudaMemcpyHostToDevice));
        } else if (m) {
            uint16_t *h = (uint16_t *)malloc(count * sizeof(uint16_t));
            cudaError_t e;
            if (!h) {
                snprintf(t->message, sizeof t->message, "out of host memory staging %.0f weights", (double)count);
                return LISA_ERR_NOMEM;
            }
            for (j = 0; j < count; j++) h[j] = lisa_f32_to_bf16(m->params[base + j]);
            e = cudaMemcpy(dst, h, count * sizeof(uint16_t), cudaMemcpyHostToDevice);
            free(h);
            LISA__CU(t, e);
        } else {
            for (i = 0; i < d.n_tensors; i++) {
                const lisa_block_tensor *x = &d.tensors[i];
                LISA__CU(t, lisa__cuda_fill<E>(dst + x->offset, x->size, seed, base + x->offset, x->init_std));
            }
        }
    }
    return LISA_OK;
}

/* Device memory, weights and tables; the trainer core's block memory comes after. */
template <typename E> static lisa_result lisa__cuda_setup(lisa_cuda_trainer *t, const lisa_model *m, uint64_t seed) {
    const lisa_config *c = &t->c;
    float *rope;
    lisa_result r;
    void *p;
    LISA__CU(t, lisa__cuda_malloc(t, &p, lisa__cuda_weight_bytes(c, t->cc.dtype)));
    t->weights = p;
    LISA__CU(t, lisa__cuda_malloc(t, &p, t->y.tables_total));
    t->tables = (unsigned char *)p;
    LISA__CU(t, lisa__cuda_malloc(t, &p, t->y.acts_total));
    t->acts = (unsigned char *)p;
    LISA__CU(t, lisa__cuda_malloc(t, &p, t->y.scratch_total));
    t->scratch = (unsigned char *)p;
    LISA__BLAS(t, cublasSetWorkspace(t->blas, t->scratch + t->y.workspace, LISA_CUDA_WORKSPACE_BYTES));
    if ((r = lisa__cuda_init_weights<E>(t, m, seed)) != LISA_OK) return r;
    rope = (float *)malloc(t->y.partials - t->y.rope);
    if (!rope) {
        snprintf(t->message, sizeof t->message, "out of host memory for the RoPE table");
        return LISA_ERR_NOMEM;
    }
    lisa__cuda_rope_table(rope, t->core.config.seq, c->dim / c->n_heads, c->rope_theta);
    {
        cudaError_t e = cudaMemcpy(t->tables + t->y.rope, rope,
                                   (size_t)t->core.config.seq * (c->dim / c->n_heads / 2) * 2 * sizeof(float),
                                   cudaMemcpyHostToDevice);
        free(rope);
        LISA__CU(t, e);
    }
    LISA__CU(t, cudaDeviceSynchronize());
    return LISA_OK;
}

template <typename E> static lisa_result lisa__cuda_get_model(const lisa_cuda_trainer *tc, lisa_model *m) {
    lisa_cuda_trainer *t = (lisa_cuda_trainer *)tc; /* for its message only */
    int nb = lisa_n_blocks(&t->c), b;
    for (b = 0; b < nb; b++) {
        lisa_block_desc d = lisa_block_describe(&t->c, b);
        size_t count = d.size, base = d.offset, j;
        const float *master = t->core.blocks[b].copy;
        if (count == 0) continue;
        if (master || sizeof(E) == sizeof(float)) {
            const void *src = master ? (const void *)master : (const void *)lisa__cuda_block_weights<E>(t, b);
            LISA__CU(t, cudaMemcpy(m->params + base, src, count * sizeof(float), cudaMemcpyDeviceToHost));
        } else {
            uint16_t *h = (uint16_t *)malloc(count * sizeof(uint16_t));
            cudaError_t e;
            if (!h) {
                snprintf(t->message, sizeof t->message, "out of host memory reading %.0f weights", (double)count);
                return LISA_ERR_NOMEM;
            }
            e = cudaMemcpy(h, lisa__cuda_block_weights<E>(t, b), count * sizeof(uint16_t), cudaMemcpyDeviceToHost);
            for (j = 0; e == cudaSuccess && j < count; j++) m->params[base + j] = lisa_bf16_to_f32(h[j]);
            free(h);
            LISA__CU(t, e);
        }
    }
    return LISA_OK;
}

#define LISA__CUDA_DISPATCH(t, fn, ...) \
    ((t)->cc.dtype == LISA_DTYPE_BF16 ? fn<lisa__bf16>(__VA_ARGS__) : fn<float>(__VA_ARGS__))

/* ------------------------------------------------------------------------- */
/* Public functions                                                           */
/* ------------------------------------------------------------------------- */

LISADEF int lisa_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); /* clear it: no GPU is not an error */
        return 0;
    }
    return n;
}

LISADEF lisa_result lisa_cuda_device_query(int index, lisa_cuda_device *d, lisa_error *err) {
    cudaDeviceProp prop;
    cudaError_t e;
    int previous = -1;
    memset(d, 0, sizeof *d);
    if ((e = cudaGetDeviceProperties(&prop, index)) != cudaSuccess ||
        (e = cudaGetDevice(&previous)) != cudaSuccess || (e = cudaSetDevice(index)) != cudaSuccess ||
        (e = cudaMemGetInfo(&d->free_bytes, &d->total_bytes)) != cudaSuccess) {
        if (previous >= 0) (void)cudaSetDevice(previous); /* the caller's device stays current */
        (void)cudaGetLastError();
        lisa_error_set(err, LISA_ERR_DEVICE, "CUDA device %d: %s", index, cudaGetErrorString(e));
        return LISA_ERR_DEVICE;
    }
    (void)cudaSetDevice(previous);
    d->index = index;
    memcpy(d->name, prop.name, sizeof d->name - 1); /* prop.name is NUL-terminated, possibly longer */
    d->name[sizeof d->name - 1] = 0;
    d->major = prop.major;
    d->minor = prop.minor;
    d->multiprocessors = prop.multiProcessorCount;
    if (err) {
        err->code = LISA_OK;
        err->message[0] = 0;
    }
    return LISA_OK;
}

LISADEF lisa_cuda_config lisa_cuda_config_default(void) {
    lisa_cuda_config c;
    memset(&c, 0, sizeof c);
    c.dtype = LISA_DTYPE_BF16;
    c.device = 0;
    return c;
}

/* Host buffers of the device side; fails only for want of host memory. */
static int lisa__cuda_host_buffers(lisa_cuda_trainer *t) {
    size_t BT = (size_t)t->core.config.batch * t->core.config.seq;
    t->host_loss = (float *)calloc(BT, sizeof(float));
    t->host_partials = (double *)calloc((size_t)lisa_n_blocks(&t->c) * LISA__CUDA_NORM_BLOCKS, sizeof(double));
    t->host_tokens = (int *)calloc(2 * BT, sizeof(int));
    return t->host_loss && t->host_partials && t->host_tokens;
}

LISADEF void lisa_cuda_trainer_free(lisa_cuda_trainer *t) {
    if (!t) return;
    (void)cudaSetDevice(t->cc.device);
    lisa_trainer_free(&t->core); /* block memory, through the device operations */
    if (t->has_blas) cublasDestroy(t->blas); /* before its workspace goes */
    lisa__cuda_free(t, t->scratch, t->y.scratch_total);
    lisa__cuda_free(t, t->acts, t->y.acts_total);
    lisa__cuda_free(t, t->tables, t->y.tables_total);
    lisa__cuda_free(t, t->weights, lisa__cuda_weight_bytes(&t->c, t->cc.dtype));
    free(t->host_loss);
    free(t->host_partials);
    free(t->host_tokens);
    free(t);
}

static int lisa__cuda_same_shape(const lisa_config *a, const lisa_config *b) {
    return a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->vocab_size == b->vocab_size &&
           a->tied_head == b->tied_head;
}

LISADEF lisa_result lisa_cuda_trainer_create(lisa_cuda_trainer **out, const lisa_config *mc, const lisa_model *m,
                                             uint64_t init_seed, const lisa_train_config *tc,
                                             const lisa_cuda_config *cc, lisa_error *err) {
    lisa_config rc = *mc;
    lisa_train_config rt = *tc;
    lisa_cuda_config rcc = cc ? *cc : lisa_cuda_config_default();
    lisa_cuda_trainer *t;
    lisa_result r;
    cudaError_t e;
    int n_devices = lisa_cuda_device_count();
    *out = NULL;
    if ((r = lisa__cuda_check_configs(&rc, &rt, rcc.dtype, err)) != LISA_OK) return r;
    if (m && !lisa__cuda_same_shape(&m->config, &rc)) {
        lisa_error_set(err, LISA_ERR_INVALID, "the model's config differs from the trainer's");
        return LISA_ERR_INVALID;
    }
    if (rcc.device < 0 || rcc.device >= n_devices) {
        if (n_devices == 0)
            lisa_error_set(err, LISA_ERR_DEVICE, "no CUDA device: no GPU, or no driver for it");
        else
            lisa_error_set(err, LISA_ERR_DEVICE, "CUDA device %d: there are only %d (0 to %d)", rcc.device,
                           n_devices, n_devices - 1);
        return LISA_ERR_DEVICE;
    }
    if (cudaSetDevice(rcc.device) != cudaSuccess) {
        lisa_error_set(err, LISA_ERR_DEVICE, "CUDA device %d: %s", rcc.device,
                       cudaGetErrorString(cudaGetLastError()));
        return LISA_ERR_DEVICE;
    }
    t = (lisa_cuda_trainer *)calloc(1, sizeof *t);
    if (!t) {
        lisa_error_set(err, LISA_ERR_NOMEM, "out of host memory for the trainer");
        return LISA_ERR_NOMEM;
    }
    t->c = rc;
    t->cc = rcc;
    t->L = lisa_layout_of(&rc);
    t->y = lisa__cuda_layout_of(&rc, rt.batch, rt.seq, rt.checkpointing, rcc.dtype);
    t->held_layer = -1;
    t->shape.config = rc;
    t->shape.layout = t->L;
    r = lisa_trainer_core_init(&t->core, &t->shape, &rt,
                               rcc.dtype == LISA_DTYPE_BF16 ? lisa__cuda_ops<lisa__bf16>() : lisa__cuda_ops<float>(),
                               t, NULL, err);
    if (r != LISA_OK || !lisa__cuda_host_buffers(t)) {
        lisa_cuda_trainer_free(t);
        if (r == LISA_OK) r = lisa_error_set(err, LISA_ERR_NOMEM, "out of host memory for the trainer's tables");
        return r;
    }
    if (cublasCreate(&t->blas) != CUBLAS_STATUS_SUCCESS) {
        (void)cudaGetLastError(); /* what failed inside it, so that a later trainer does not see it */
        lisa_cuda_trainer_free(t);
        lisa_error_set(err, LISA_ERR_DEVICE, "cuBLAS could not start");
        return LISA_ERR_DEVICE;
    }
    t->has_blas = 1;
    /* fp32 is the checking mode: no TF32 or other shortcuts, so it matches the CPU. */
    if (cublasSetMathMode(t->blas, rcc.dtype == LISA_DTYPE_F32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH) !=
        CUBLAS_STATUS_SUCCESS) {
        lisa_cuda_trainer_free(t);
        lisa_error_set(err, LISA_ERR_DEVICE, "cuBLAS math mode");
        return LISA_ERR_DEVICE;
    }
    r = LISA__CUDA_DISPATCH(t, lisa__cuda_setup, t, m, init_seed);
    if (r == LISA_OK) r = lisa_trainer_core_start(&t->core, NULL);
    if (r == LISA_OK && (e = cudaDeviceSynchronize()) != cudaSuccess) r = lisa__cuda_fail(t, e, "cudaDeviceSynchronize()");
    if (r != LISA_OK) {
        lisa_error_set(err, r, "%s", t->message[0] ? t->message : "out of device memory for gradients and optimizer state");
        lisa_cuda_trainer_free(t);
        return r;
    }
    lisa_error_clear(err);
    *out = t;
    return LISA_OK;
}

LISADEF lisa_result lisa_cuda_trainer_step(lisa_cuda_trainer *t, const int *inputs, const int *targets,
                                           lisa_step_info *info) {
    lisa_result r = lisa__cuda_use(t);
    return r != LISA_OK ? r : lisa_trainer_step(&t->core, inputs, targets, info);
}

LISADEF lisa_result lisa_cuda_trainer_eval(lisa_cuda_trainer *t, const int *inputs, const int *targets, int B, int T,
                                           float *loss) {
    lisa_result r = lisa__cuda_use(t);
    return r != LISA_OK ? r : LISA__CUDA_DISPATCH(t, lisa__cuda_eval, t, inputs, targets, B, T, loss);
}

LISADEF lisa_result lisa_cuda_trainer_set_active_layers(lisa_cuda_trainer *t, const int *layers, int n) {
    lisa_result r = lisa__cuda_use(t);
    if (r != LISA_OK) return r;
    t->message[0] = 0;
    r = lisa_trainer_set_active_layers(&t->core, layers, n);
    if (r == LISA_ERR_NOMEM && !t->message[0]) /* no cudaMalloc failed: the reserved slots ran out */
        snprintf(t->message, sizeof t->message, "reserve_slots holds %d layers; %d were asked for",
                 t->core.config.lisa_layers, n);
    return r;
}

LISADEF int lisa_cuda_trainer_active_layers(const lisa_cuda_trainer *t, int *layers) {
    if (layers) memcpy(layers, t->core.active_layers, (size_t)t->core.n_active * sizeof(int));
    return t->core.n_active;
}

LISADEF lisa_result lisa_cuda_trainer_get_model(const lisa_cuda_trainer *t, lisa_model *m, lisa_error *err) {
    lisa_result r;
    if (!lisa__cuda_same_shape(&m->config, &t->c)) {
        lisa_error_set(err, LISA_ERR_INVALID, "the model's config differs from the trainer's");
        return LISA_ERR_INVALID;
    }
    r = lisa__cuda_use((lisa_cuda_trainer *)t); /* for its message only */
    if (r == LISA_OK) r = LISA__CUDA_DISPATCH(t, lisa__cuda_get_model, t, m);
    if (r != LISA_OK) lisa_error_set(err, r, "%s", t->message);
    else lisa_error_clear(err);
    return r;
}

/* --- state through a CPU trainer ----------------------------------------------- */

/* The CPU trainer's layers as the GPU trainer's, frozen layers that kept
   their moments (keep_state) included. */
static lisa_result lisa__cuda_cpu_layers(const lisa_cuda_trainer *t, lisa_trainer *cpu) {
    int l;
    lisa_result r;
    if (t->core.config.mode == LISA_MODE_FULL) return LISA_OK; /* lisa_trainer_init made every layer active */
    for (l = 0; l < t->c.n_layers; l++) {
        const lisa_block_state *s = &t->core.blocks[LISA_BLOCK_LAYER(l)];
        if (s->m && !s->active && (r = lisa_trainer_block_keep_moments(cpu, LISA_BLOCK_LAYER(l))) != LISA_OK) return r;
    }
    return lisa_trainer_set_active_layers(cpu, t->core.active_layers, t->core.n_active);
}

/* Every block's moments and step, the sampler and the step count into cpu,
   whose blocks are active (and hold moments) as t's. */
static lisa_result lisa__cuda_state_to_cpu(lisa_cuda_trainer *t, lisa_trainer *cpu) {
    int b;
    for (b = 0; b < lisa_n_blocks(&t->c); b++) {
        const lisa_block_state *s = &t->core.blocks[b];
        lisa_block_state *h = &cpu->blocks[b];
        if (!s->m) continue;
        if (!h->m || h->active != s->active) {
            snprintf(t->message, sizeof t->message, "block %d: the CPU trainer's state does not match", b);
            return LISA_ERR_INVALID;
        }
        LISA__CU(t, cudaMemcpy(h->m, s->m, lisa__cuda_moment_bytes(t->core.block_sizes[b]),
                               cudaMemcpyDeviceToHost));
        h->step = s->step;
    }
    cpu->sampler.rng = t->core.sampler.rng;
    cpu->sampler.next = t->core.sampler.next;
    cpu->step = t->core.step;
    return LISA_OK;
}

LISADEF lisa_result lisa_cuda_trainer_to_cpu(const lisa_cuda_trainer *tc, lisa_trainer *cpu, lisa_model *m,
                                             lisa_error *err) {
    lisa_cuda_trainer *t = (lisa_cuda_trainer *)tc; /* for its message only */
    lisa_result r;
    memset(cpu, 0, sizeof *cpu);
    if ((r = lisa_model_init(m, &t->c, NULL, err)) != LISA_OK) return r;
    if ((r = lisa_cuda_trainer_get_model(t, m, err)) != LISA_OK ||
        (r = lisa_trainer_init(cpu, m, &t->core.config, NULL, err)) != LISA_OK) {
        lisa_model_free(m);
        return r;
    }
    if ((r = lisa__cuda_cpu_layers(t, cpu)) != LISA_OK)
        lisa_error_set(err, r, "out of host memory for the CPU trainer's layers");
    else if ((r = lisa__cuda_state_to_cpu(t, cpu)) != LISA_OK)
        lisa_error_set(err, r, "%s", t->message);
    if (r != LISA_OK) {
        lisa_trainer_free(cpu);
        lisa_model_free(m);
        return r;
    }
    t->message[0] = 0;
    lisa_error_clear(err);
    return LISA_OK;
}

/* cpu's moments, steps, sampler and step count into t, whose active layers
   are cpu's; with bf16, the active blocks' fp32 masters from cpu's model
   (t's bf16 weights are these rounded, as after an update). */
static lisa_result lisa__cuda_state_from_cpu(lisa_cuda_trainer *t, const lisa_trainer *cpu) {
    int b;
    for (b = 0; b < lisa_n_blocks(&t->c); b++) {
        lisa_block_state *s = &t->core.blocks[b];
        const lisa_block_state *h = &cpu->blocks[b];
        lisa_block_desc d = lisa_block_describe(&t->c, b);
        size_t n = d.size;
        if (h->active != s->active) {
            snprintf(t->message, sizeof t->message, "block %d: the GPU trainer's state does not match", b);
            return LISA_ERR_INVALID;
        }
        if (s->copy)
            LISA__CU(t, cudaMemcpy(s->copy, cpu->model->params + d.offset, n * sizeof(float),
                                   cudaMemcpyHostToDevice));
        if (!h->m) continue;
        if (lisa_trainer_block_keep_moments(&t->core, b) != LISA_OK) {
            if (!t->message[0]) snprintf(t->message, sizeof t->message, "block %d: no room for its kept moments", b);
            return LISA_ERR_NOMEM;
        }
        LISA__CU(t, cudaMemcpy(s->m, h->m, lisa__cuda_moment_bytes(n), cudaMemcpyHostToDevice));
        s->step = h->step;
    }
    t->core.sampler.rng = cpu->sampler.rng;
    t->core.sampler.next = cpu->sampler.next;
    t->core.step = cpu->step;
    LISA__CU(t, cudaDeviceSynchronize());
    return LISA_OK;
}

LISADEF lisa_result lisa_cuda_trainer_from_cpu(lisa_cuda_trainer **out, const lisa_trainer *cpu,
                                               const lisa_cuda_config *cc, lisa_error *err) {
    lisa_cuda_trainer *t;
    lisa_result r;
    *out = NULL;
    if (!cpu->model) {
        lisa_error_set(err, LISA_ERR_INVALID, "the CPU trainer is not initialised");
        return LISA_ERR_INVALID;
    }
    if ((r = lisa_cuda_trainer_create(&t, &cpu->model->config, cpu->model, 0, &cpu->config, cc, err)) != LISA_OK)
        return r;
    if (t->core.config.mode != LISA_MODE_FULL) r = lisa_cuda_trainer_set_active_layers(t, cpu->active_layers, cpu->n_active);
    if (r == LISA_OK) r = lisa__cuda_state_from_cpu(t, cpu);
    if (r != LISA_OK) {
        lisa_error_set(err, r, "%s", t->message);
        lisa_cuda_trainer_free(t);
        return r;
    }
    t->message[0] = 0;
    *out = t;
    return LISA_OK;
}

LISADEF size_t lisa_cuda_trainer_bytes(const lisa_cuda_trainer *t) { return t->bytes; }
LISADEF size_t lisa_cuda_trainer_peak_bytes(const lisa_cuda_trainer *t) { return t->peak_bytes; }
LISADEF int lisa_cuda_trainer_steps(const lisa_cuda_trainer *t) { return t->core.step; }
LISADEF const char *lisa_cuda_trainer_message(const lisa_cuda_trainer *t) { return t->message; }

#endif /* LISA_CUDA_IMPLEMENTATION_INCLUDED */
#endif /* LISA_CUDA_IMPLEMENTATION */
