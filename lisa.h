/* lisa.h - v0.1 - fine-tune LLaMA-family models with LISA, in one C header.

   LISA (Layerwise Importance Sampled AdamW) always trains the embedding and the
   output head and, of the n decoder layers, trains only a few sampled ones at a
   time. This header holds everything the CPU needs for it: tensor ops with
   forward and backward passes, a LLaMA transformer (RMSNorm, RoPE, grouped-query
   attention, SwiGLU), gradient checkpointing, AdamW with clipping and schedules,
   the LISA layer sampler and a trainer whose gradients and optimizer state
   exist only for the blocks that train, a memory planner, exact-resume
   training states, and files: Hugging Face LLaMA directories (safetensors,
   with a small JSON reader), GGUF llama models and metadata, llama2.c
   checkpoints, llm.c token files; tokenizers as real models ship them
   (Hugging Face tokenizer.json BPE, GGUF vocabularies, llama2.c
   tokenizer.bin), with hand-written pre-tokenizer scanners, Unicode tables
   and NFC; chat templates; and instruction data (JSON Lines, LMFlow
   text2text and conversations).

   QUICK EXAMPLE (see README.md for more)
     lisa_model m;  lisa_trainer t;
     lisa_config c = {0};           // dim, hidden_dim, n_layers, n_heads, vocab_size, max_seq_len...
     lisa_train_config tc = lisa_train_config_default();
     tc.mode = LISA_MODE_LISA;      // 2 layers at a time, resampled every 20 steps
     lisa_model_init(&m, &c, NULL, NULL);  lisa_model_init_random(&m, 1);
     lisa_trainer_init(&t, &m, &tc, NULL, NULL);
     lisa_trainer_step(&t, inputs, targets, NULL);   // batch x seq token ids each

   EMBEDDED EXAMPLE (LISA_NO_STDIO; one arena whose free does nothing)
     lisa_allocator arena = {bump_alloc, bump_free_nothing, &my_arena};
     lisa_memory_plan plan;
     tc.mode = LISA_MODE_LISA;
     tc.reserve_slots = 1;          // layer memory is taken once, at init, and reused at every switch
     lisa_plan_memory(&c, &tc, LISA_DTYPE_F32, &plan, NULL);  // plan.peak: the arena's size, plus
                                                             // its alignment padding per allocation
     lisa_model_init(&m, &c, &arena, NULL);
     lisa_trainer_init(&t, &m, &tc, &arena, NULL);  // holds plan.peak; no step allocates or frees

   USAGE
     In exactly one C or C++ file:
         #define LISA_IMPLEMENTATION
         #include "lisa.h"
     Everywhere else, include it without the define.

     Build a program:  cc -O2 -o prog prog.c -lm        (add -fopenmp for threads)

   OPTIONS (define before including the implementation)
     LISA_STATIC        make every function static (private to one file)
     LISA_NO_STDIO      leave out everything that touches files (embedded targets)
     LISA_MALLOC(n)     allocator used when no lisa_allocator is given (default malloc)
     LISA_FREE(p)       its matching free (default free)
     LISA_ASSERT(x)     check for programmer errors (default assert)
     LISA_PARALLEL_MIN_WORK   smallest loop (in multiply-adds or elements) that
                        OpenMP threads are started for (default 65536)
     LISA_NO_VECTOR_EXTENSIONS  plain C loops instead of AVX-512 / AVX2+FMA
                        intrinsics and GCC/clang vector types in the inner
                        kernels (the same sums in the same order, slower)

   CONVENTIONS
     - Fallible functions return a lisa_result; lisa_result_string() names it, and
       a lisa_error (optional, may be NULL) receives a message naming the file and
       the problem. The library never exits and never prints.
     - Every object that allocates says how to free it, and counts its bytes.
     - Op functions take outputs first, then inputs, then sizes. Backward
       functions ADD into their gradient outputs. A NULL weight-gradient output
       means "not wanted": that work is skipped.
     - Parameters live in one buffer, layer-major: embedding | layer 0 | ... |
       layer n-1 | final norm | head. Each of these is a "block"; the trainer and
       backward pass can turn weight gradients on and off per block.

   LICENSE: MIT or public domain, your choice; see the end of this file.
*/
#ifndef LISA_H
#define LISA_H

#include <stddef.h>
#include <stdint.h>

#ifdef LISA_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define LISADEF static __attribute__((unused))
#else
#define LISADEF static
#endif
#else
#define LISADEF extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Basics: results, errors, allocation, random numbers                        */
/* ------------------------------------------------------------------------- */

typedef enum lisa_result {
    LISA_OK = 0,
    LISA_ERR_NOMEM,       /* an allocation failed; nothing was leaked */
    LISA_ERR_INVALID,     /* an argument or config value is out of range */
    LISA_ERR_IO,          /* a file could not be opened, read or written */
    LISA_ERR_FORMAT,      /* a file's contents are malformed, truncated or inconsistent */
    LISA_ERR_DEVICE       /* a GPU call failed or no GPU is there (lisa_cuda.h only) */
} lisa_result;

LISADEF const char *lisa_result_string(lisa_result r);

/* Filled by fallible functions when non-NULL: the code and a readable message,
   e.g. "model.bin: truncated: expected 1234 bytes of weights, file has 1000". */
typedef struct lisa_error {
    lisa_result code;
    char message[256];
} lisa_error;

/* Fills err (when non-NULL) with code and a printf-style message, and returns
   code; lisa_error_clear() marks success. Every error of the library is set
   through these, lisa_cuda.h's included. */
LISADEF lisa_result lisa_error_set(lisa_error *err, lisa_result code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
LISADEF void lisa_error_clear(lisa_error *err);

/* Optional allocator hooks. A zeroed struct (or a NULL pointer) means
   LISA_MALLOC / LISA_FREE. free receives the size that was allocated, so an
   arena or a counting allocator needs no header of its own. */
typedef struct lisa_allocator {
    void *(*alloc)(void *user, size_t size);
    void (*free)(void *user, void *ptr, size_t size);
    void *user;
} lisa_allocator;

/* splitmix64: small, seedable, one per object, no global state. */
typedef struct lisa_rng {
    uint64_t state;
} lisa_rng;

LISADEF void lisa_rng_seed(lisa_rng *r, uint64_t seed);
LISADEF uint64_t lisa_rng_next(lisa_rng *r);
LISADEF float lisa_rng_uniform(lisa_rng *r);         /* [0, 1) */
LISADEF float lisa_rng_normal(lisa_rng *r);          /* mean 0, std 1 */

/* ------------------------------------------------------------------------- */
/* Tensors and ops                                                            */
/* ------------------------------------------------------------------------- */

#define LISA_MAX_DIMS 4
#define LISA_IGNORE (-1)     /* target value that carries no loss */

/* A view: the data belongs to someone else (usually the model's buffer). */
typedef struct lisa_tensor {
    float *data;
    int ndim;
    int shape[LISA_MAX_DIMS];
} lisa_tensor;

LISADEF size_t lisa_tensor_numel(const lisa_tensor *t);

/* Embedding lookup. out (n, dim) = table[tokens[i]]; table (vocab, dim). */
LISADEF void lisa_embedding_forward(float *out, const int *tokens, const float *table, int n, int dim);
LISADEF void lisa_embedding_backward(float *dtable, const float *dout, const int *tokens, int n, int dim);

/* RMSNorm. out (n, dim) = x / sqrt(mean(x^2) + eps) * w; rstd (n) is saved for backward. */
LISADEF void lisa_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w,
                                  int n, int dim, float eps);
LISADEF void lisa_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                                   const float *w, const float *rstd, int n, int dim);

/* Linear without bias. out (n, out_dim) = x (n, in_dim) @ w^T, w (out_dim, in_dim),
   the PyTorch layout. dx or dw may be NULL to skip that product. */
LISADEF void lisa_linear_forward(float *out, const float *x, const float *w,
                                 int n, int in_dim, int out_dim);
LISADEF void lisa_linear_backward(float *dx, float *dw, const float *dout, const float *x,
                                  const float *w, int n, int in_dim, int out_dim);

/* LoRA linear (Hu et al., 2021, as peft computes it): out (n, out_dim) =
   x W^T + scale (x A^T) B^T, with A (rank, in_dim), B (out_dim, rank) and
   scale = alpha / rank. xa (n, rank) receives scale * x A^T, which backward
   needs. Backward adds into dx, dw, da, db; any of them may be NULL to skip
   its product (a frozen base weight: dw NULL). du is (n, rank) scratch. */
LISADEF void lisa_lora_linear_forward(float *out, float *xa, const float *x, const float *w, const float *a,
                                      const float *b, float scale, int n, int in_dim, int out_dim, int rank);
LISADEF void lisa_lora_linear_backward(float *dx, float *dw, float *da, float *db, float *du, const float *dout,
                                       const float *x, const float *xa, const float *w, const float *a,
                                       const float *b, float scale, int n, int in_dim, int out_dim, int rank);

/* Rotary position embedding on x (B, T, n_heads, head_dim), interleaved pairs:
   (x[2i], x[2i+1]) at position pos0 + t turns by angle (pos0 + t) * theta^(-2i/head_dim).
   out may equal x. Backward turns the gradient back: dx += R^T dout. */
LISADEF void lisa_rope_forward(float *out, const float *x, int B, int T, int n_heads,
                               int head_dim, int pos0, float theta);
LISADEF void lisa_rope_backward(float *dx, const float *dout, int B, int T, int n_heads,
                                int head_dim, int pos0, float theta);

/* Causal attention with grouped-query heads (n_kv_heads divides n_heads).
   q (B, T, n_heads, hd), k and v (B, T, n_kv_heads, hd), out (B, T, n_heads, hd).
   lse (B, n_heads, T) keeps each row's log-sum-exp of scaled scores, so backward
   recomputes the probabilities instead of storing B x n_heads x T x T of them.
   Only the causal triangle is computed. */
LISADEF void lisa_attention_forward(float *out, float *lse, const float *q, const float *k,
                                    const float *v, int B, int T, int n_heads, int n_kv_heads,
                                    int head_dim);
LISADEF void lisa_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                     const float *out, const float *lse, const float *q,
                                     const float *k, const float *v, int B, int T, int n_heads,
                                     int n_kv_heads, int head_dim);

/* SwiGLU gate: out (n) = silu(gate) * up. The MLP is w2(silu(w1 x) * w3 x). */
LISADEF void lisa_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
LISADEF void lisa_swiglu_backward(float *dgate, float *dup, const float *dout,
                                  const float *gate, const float *up, size_t n);

/* Residual add: out (n) = a + b. */
LISADEF void lisa_residual_forward(float *out, const float *a, const float *b, size_t n);
LISADEF void lisa_residual_backward(float *da, float *db, const float *dout, size_t n);

/* Softmax cross-entropy over logits (n, vocab). targets equal to LISA_IGNORE (-1)
   add nothing. losses (n, may be NULL) gets each row's loss (0 where ignored).
   Returns the mean over counted rows (0 when none); *n_counted (may be NULL)
   gets their number. Backward adds dloss * d(row loss)/d(logits) per counted
   row: pass dloss = 1 / n_counted for the gradient of the mean. */
LISADEF float lisa_cross_entropy_forward(float *losses, const float *logits, const int *targets,
                                         int n, int vocab, int *n_counted);
LISADEF void lisa_cross_entropy_backward(float *dlogits, const float *logits, const int *targets,
                                         int n, int vocab, float dloss);

/* ------------------------------------------------------------------------- */
/* The LLaMA model                                                            */
/* ------------------------------------------------------------------------- */

typedef struct lisa_config {
    int dim;            /* model width */
    int hidden_dim;     /* SwiGLU width */
    int n_layers;
    int n_heads;
    int n_kv_heads;     /* 0: n_heads; must divide n_heads */
    int vocab_size;
    int max_seq_len;
    float norm_eps;     /* 0: 1e-5 */
    float rope_theta;   /* 0: 10000 */
    int tied_head;      /* 1: the output head is the embedding matrix; 0: its own matrix */
} lisa_config;

/* Fills in the defaults above and checks every field: sizes positive, heads
   dividing dim and kv heads dividing heads, an even head size, and a parameter
   count that fits in memory arithmetic. */
LISADEF lisa_result lisa_config_resolve(lisa_config *c, lisa_error *err);

/* Blocks: 0 embedding, 1 + i decoder layer i, n_layers + 1 final norm,
   n_layers + 2 head (0 floats when tied: the head is then the embedding, and
   the embedding's block carries both uses). */
#define LISA_BLOCK_EMBED 0
#define LISA_BLOCK_LAYER(i) (1 + (i))
LISADEF int lisa_n_blocks(const lisa_config *c);
LISADEF int lisa_block_final_norm(const lisa_config *c);
LISADEF int lisa_block_head(const lisa_config *c);

/* Where each tensor of a layer sits inside the layer's block (in floats). */
typedef struct lisa_layer_layout {
    size_t attn_norm, wq, wk, wv, wo, mlp_norm, w1, w2, w3, size;
} lisa_layer_layout;

/* The one place parameter sizes are computed; the model, planner and files use it. */
typedef struct lisa_layout {
    lisa_layer_layout layer;
    size_t embed, final_norm, head;        /* block sizes in floats (head 0 when tied) */
    size_t n_params;                       /* total floats */
} lisa_layout;

LISADEF lisa_layout lisa_layout_of(const lisa_config *c);   /* c must be resolved */
LISADEF size_t lisa_block_offset(const lisa_config *c, int block);
LISADEF size_t lisa_block_size(const lisa_config *c, int block);

/* Pointers into the parameter buffer for one decoder layer. */
typedef struct lisa_layer_weights {
    float *attn_norm;   /* (dim) */
    float *wq;          /* (n_heads * head_dim, dim) */
    float *wk;          /* (n_kv_heads * head_dim, dim) */
    float *wv;          /* (n_kv_heads * head_dim, dim) */
    float *wo;          /* (dim, n_heads * head_dim) */
    float *mlp_norm;    /* (dim) */
    float *w1;          /* (hidden_dim, dim) gate */
    float *w2;          /* (dim, hidden_dim) down */
    float *w3;          /* (hidden_dim, dim) up */
} lisa_layer_weights;

typedef struct lisa_model {
    lisa_config config;            /* resolved */
    lisa_layout layout;
    float *params;                 /* (layout.n_params), layer-major */
    float *embed;                  /* (vocab, dim) */
    lisa_layer_weights *layers;    /* (n_layers) */
    float *final_norm;             /* (dim) */
    float *head;                   /* (vocab, dim); equals embed when tied */
    lisa_allocator allocator;
    size_t bytes;                  /* bytes this model allocated */
    struct lisa_lora *lora;        /* LoRA adapters that forward and backward apply on top of the
                                      weights (NULL: none); the LoRA trainer sets it for its
                                      lifetime. lisa_model_step() (generation) ignores it:
                                      lisa_lora_merge() first */
} lisa_model;

/* Allocates a model with zeroed parameters. Call lisa_model_free(). */
LISADEF lisa_result lisa_model_init(lisa_model *m, const lisa_config *c,
                                    const lisa_allocator *a, lisa_error *err);
/* Norm weights 1, matrices normal(0, 0.02), residual output projections
   (wo, w2) scaled by 1/sqrt(2 n_layers). Same seed, same weights. */
LISADEF void lisa_model_init_random(lisa_model *m, uint64_t seed);
LISADEF void lisa_model_free(lisa_model *m);

/* The named tensors, in block order: "embed", "layers.<i>.<name>" with names
   attn_norm wq wk wv wo mlp_norm w1 w2 w3, "final_norm", "head" (absent when tied). */
typedef struct lisa_param {
    char name[32];
    lisa_tensor tensor;  /* view into the model's buffer */
    size_t offset;       /* in floats, from the start of the buffer */
    int block;
    int decay;           /* 1: weight decay applies (matrices, embedding); 0: norm weights */
} lisa_param;

LISADEF int lisa_model_n_tensors(const lisa_model *m);
LISADEF lisa_param lisa_model_tensor(const lisa_model *m, int index);

/* Activations and scratch for one batch shape. Without checkpointing every
   layer keeps what its backward needs; with it only each layer's input is kept
   and backward reruns one layer at a time into a single layer's scratch. */
typedef struct lisa_acts {
    int B, T, checkpointing;
    lisa_config config;
    /* saved across the forward pass */
    int *inputs, *targets;         /* (B*T) copies of the batch */
    float *layer_in;               /* (n_layers + 1, B*T, dim): inputs of each layer, then the last output */
    float *saved;                  /* per-layer saved activations (n_layers or 1 sets) */
    size_t saved_stride;           /* floats per layer set in saved */
    float *final_rstd;             /* (B*T) */
    float *final_xn;               /* (B*T, dim) */
    float *logits;                 /* (B*T, vocab); backward overwrites it with dlogits */
    float *row_loss;               /* (B*T) each position's loss */
    float *row_lse;                /* (B*T) each position's log-sum-exp of logits */
    float *rope;                   /* (T, head_dim) each position's RoPE cosines, then sines */
    /* backward scratch */
    float *grad_scratch;
    int n_counted;                 /* rows with a target in the last forward */
    float loss;                    /* mean loss of the last forward */
    int T_used, B_used;            /* batch shape of the last forward */
    int held_layer;                /* checkpointing: the layer whose values the one set holds */
    float *buffer;
    size_t n_floats;
    lisa_allocator allocator;
    size_t bytes;                  /* bytes allocated: activations + scratch */
    size_t activation_bytes;       /* of which kept across forward -> backward */
    size_t scratch_bytes;          /* of which backward/recompute scratch */
} lisa_acts;

/* Sizes without allocating (the planner); both in bytes. */
LISADEF void lisa_acts_size(const lisa_config *c, int B, int T, int checkpointing,
                            size_t *activation_bytes, size_t *scratch_bytes);
/* Allocates activations for batches up to (B, T). Call lisa_acts_free(). */
LISADEF lisa_result lisa_acts_init(lisa_acts *a, const lisa_config *c, int B, int T,
                                   int checkpointing, const lisa_allocator *al, lisa_error *err);
LISADEF void lisa_acts_free(lisa_acts *a);

/* Forward over inputs (B, T) with targets (B, T; NULL for none, entries may be
   LISA_IGNORE). Returns the mean loss over counted targets (0 with none); the
   logits (B*T, vocab) are in a->logits until the next backward. B <= a->B, T <= a->T. */
LISADEF float lisa_model_forward(const lisa_model *m, lisa_acts *a, const int *inputs,
                                 const int *targets, int B, int T);

/* Backward of the last forward's mean loss. block_grads has lisa_n_blocks()
   entries; entry b is NULL (block frozen: its weight-gradient products are
   skipped and it needs no memory) or points at lisa_block_size() floats that
   this call ADDS the block's gradient into. Activation gradients flow down
   through frozen layers to every block below that wants a gradient (all the
   way when the embedding trains); below the lowest such block there is
   nothing left to compute, so backward stops there. Overwrites a->logits.
   With adapters attached (m->lora), n_layers entries follow: layer i's
   adapter gradient (lisa_train_n_blocks()'s adapter blocks) or NULL. */
LISADEF void lisa_model_backward(const lisa_model *m, lisa_acts *a, float *const *block_grads);
/* The same for loss_scale times the sum of the counted rows' losses:
   lisa_model_backward() is loss_scale = 1 / (rows counted), the mean; a
   caller that averages over more than this batch (a token count across
   workers) passes its own. */
LISADEF void lisa_model_backward_scaled(const lisa_model *m, lisa_acts *a, float *const *block_grads,
                                        float loss_scale);

/* ------------------------------------------------------------------------- */
/* Generation                                                                 */
/* ------------------------------------------------------------------------- */

/* Keys and values of every position fed so far, so that each new token costs
   one forward step over one position, with attention linear in the context.
   A step computes the same bits as the last row of lisa_model_forward() over
   the whole prefix: the same kernels, in the same order. */
typedef struct lisa_kv_cache {
    lisa_config config;
    int max_len;           /* positions it holds: at most config.max_seq_len */
    int len;               /* positions fed so far */
    float *k, *v;          /* (n_layers, max_len, n_kv_heads * head_dim) */
    float *work;           /* one position's activations, the logits, and sampling scratch */
    float *logits;         /* (vocab) of the last step */
    lisa_allocator allocator;
    size_t bytes;
} lisa_kv_cache;

/* Room for max_len positions (0: the model's max_seq_len). Call lisa_kv_cache_free(). */
LISADEF lisa_result lisa_kv_cache_init(lisa_kv_cache *c, const lisa_config *config, int max_len,
                                       const lisa_allocator *a, lisa_error *err);
LISADEF void lisa_kv_cache_free(lisa_kv_cache *c);
/* Forgets every position: the next token is position 0 again. */
LISADEF void lisa_kv_cache_reset(lisa_kv_cache *c);

/* Feeds token at position c->len (which must be below c->max_len) and returns
   the logits (vocab) for the token after it; they stay valid until the next step. */
LISADEF const float *lisa_model_step(const lisa_model *m, lisa_kv_cache *c, int token);

/* Draws a token from logits: temperature 0 takes the first largest logit
   (greedy); otherwise softmax(logits / temperature), restricted when top_p < 1
   to the most likely tokens whose probabilities add up to top_p (nucleus
   sampling). work holds 2 * vocab floats and may be NULL when top_p >= 1. */
LISADEF int lisa_sample_logits(const float *logits, int vocab, float temperature, float top_p,
                               lisa_rng *rng, float *work);

/* Feeds the prompt (n_prompt >= 1 tokens) from position 0, then samples up to
   max_new tokens, stopping after stop_token (-1: none) or when the cache is
   full. out receives the new tokens; returns how many. */
LISADEF int lisa_generate(const lisa_model *m, lisa_kv_cache *c, const int *prompt, int n_prompt,
                          int *out, int max_new, float temperature, float top_p, int stop_token,
                          lisa_rng *rng);

/* ------------------------------------------------------------------------- */
/* Optimizer, clipping, schedules                                             */
/* ------------------------------------------------------------------------- */

/* One AdamW step with torch.optim.AdamW semantics on n floats: p -= lr*wd*p,
   moments updated, bias-corrected with step (counting from 1), eps after the
   square root. */
LISADEF void lisa_adamw_update(float *p, const float *g, float *m, float *v, size_t n,
                               float lr, float beta1, float beta2, float eps,
                               float weight_decay, int step);

/* lisa_adamw_update() in two parts, for trainers that run the loop elsewhere
   (lisa_cuda.h): the step's scalars, computed in double as PyTorch computes
   them in Python floats and rounded once, and the loop over n floats. */
typedef struct lisa_adamw_scalars {
    float decay;                       /* 1 - lr * weight_decay */
    float one_minus_b1, beta2, one_minus_b2;
    float step_size;                   /* lr / (1 - beta1^step) */
    float bc2_sqrt;                    /* sqrt(1 - beta2^step) */
    float eps;
} lisa_adamw_scalars;

LISADEF lisa_adamw_scalars lisa_adamw_scalars_at(float lr, float beta1, float beta2, float eps,
                                                 float weight_decay, int step);
LISADEF void lisa_adamw_apply(float *p, const float *g, float *m, float *v, size_t n,
                              const lisa_adamw_scalars *a);

/* Global L2 norm over n_bufs gradient buffers (NULL entries are skipped); when
   max_norm > 0 and the norm exceeds it, scales them by max_norm / (norm + 1e-6),
   as torch.nn.utils.clip_grad_norm_. Returns the norm before clipping. */
LISADEF float lisa_clip_grad_norm(float *const *grads, const size_t *sizes, int n_bufs,
                                  float max_norm);

typedef enum lisa_schedule_kind {
    LISA_SCHEDULE_CONSTANT = 0,  /* lr after warmup */
    LISA_SCHEDULE_COSINE,        /* linear warmup, then cosine from lr down to min_lr at total_steps */
    LISA_SCHEDULE_LINEAR         /* linear warmup, then linear from lr down to min_lr at total_steps */
} lisa_schedule_kind;

typedef struct lisa_schedule {
    lisa_schedule_kind kind;
    float lr;
    float min_lr;
    int warmup;         /* steps of linear warmup: lr * (step + 1) / warmup */
    int total_steps;
} lisa_schedule;

/* Learning rate at step (counting from 0). */
LISADEF float lisa_schedule_lr(const lisa_schedule *s, int step);

/* ------------------------------------------------------------------------- */
/* Trainer                                                                    */
/* ------------------------------------------------------------------------- */

typedef enum lisa_mode {
    LISA_MODE_FULL = 0,    /* every block trains */
    LISA_MODE_LISA,        /* gamma sampled layers train, resampled every K steps */
    LISA_MODE_MANUAL,      /* the caller picks the layers: lisa_trainer_set_active_layers() */
    LISA_MODE_LORA         /* the decoder layers are frozen and LoRA adapters train (lisa_lora_config) */
} lisa_mode;

/* --- LoRA adapters (Hu et al., 2021) with peft's semantics -----------------

   Each targeted projection W (out, in) of every decoder layer gets A (rank,
   in) and B (out, rank) and computes x W^T + (alpha / rank) (x A^T) B^T. A
   starts Kaiming-uniform with a = sqrt(5) (uniform in +-1/sqrt(in)), B at
   zero, so training starts from the base model. Dropout is 0. */
enum {
    LISA_LORA_Q = 0, LISA_LORA_K, LISA_LORA_V, LISA_LORA_O, /* attention: wq wk wv wo */
    LISA_LORA_GATE, LISA_LORA_UP, LISA_LORA_DOWN,           /* MLP: w1 w3 w2 */
    LISA_LORA_N_TARGETS
};
#define LISA_LORA_ALL 0x7fu

typedef struct lisa_lora_config {
    int rank;           /* 0: 8 */
    float alpha;        /* 0: 16; the adapters' scale is alpha / rank */
    unsigned targets;   /* bit LISA_LORA_Q ... LISA_LORA_DOWN set: that projection gets an adapter; 0: all */
    int train_embed;    /* LoRA mode: 1 also trains the embedding (with a tied head: the shared matrix) */
    int train_head;     /* LoRA mode: 1 also trains the head (with a tied head: the shared matrix) */
    int train_norms;    /* LoRA mode: 1 also trains every RMSNorm weight (layers' and final) */
} lisa_lora_config;

/* Adapters of every decoder layer, one buffer, layer-major; inside a layer
   A then B of each chosen target, in target order. With a batch shape
   (B, T > 0) it also holds what backward needs of the adapters' products. */
typedef struct lisa_lora {
    lisa_lora_config config;            /* resolved */
    float scale;                        /* alpha / rank */
    int n_layers, n_targets;            /* n_targets: how many are chosen */
    int head_dim;                       /* the model's, for q and k's row order in files */
    int in_dim[LISA_LORA_N_TARGETS], out_dim[LISA_LORA_N_TARGETS];
    size_t a_off[LISA_LORA_N_TARGETS], b_off[LISA_LORA_N_TARGETS]; /* floats in a layer's part */
    int slot[LISA_LORA_N_TARGETS];      /* the chosen target's place among the chosen, else -1 */
    size_t layer_size;                  /* floats of one layer's adapters */
    float *params;                      /* (n_layers, layer_size) */
    int B, T, checkpointing;            /* the activations' batch shape (0: none) */
    float *saved;                       /* (sets, n_targets, B*T, rank): scale x A^T of each product */
    float *du;                          /* (B*T, rank) backward scratch */
    lisa_allocator allocator;
    size_t bytes;                       /* all of it */
    size_t param_bytes, activation_bytes, scratch_bytes;
} lisa_lora;

/* peft's module name of a target: "q_proj", "k_proj", "v_proj", "o_proj",
   "gate_proj", "up_proj", "down_proj". */
LISADEF const char *lisa_lora_target_name(int target);
/* Fills in the defaults above and checks them (LISA_ERR_INVALID names the bad one). */
LISADEF lisa_result lisa_lora_config_resolve(lisa_lora_config *lc, const lisa_config *c, lisa_error *err);
/* Bytes lisa_lora_init() allocates, without allocating (the planner): the
   adapters' weights, the products kept for backward, the backward scratch.
   c resolved, lc resolved. */
LISADEF void lisa_lora_size(const lisa_config *c, const lisa_lora_config *lc, int B, int T, int checkpointing,
                            size_t *param_bytes, size_t *activation_bytes, size_t *scratch_bytes);
/* Allocates adapters for a model of config c, A and B zero; B or T 0: no
   activations (merging, writing, loading only). Call lisa_lora_free(). */
LISADEF lisa_result lisa_lora_init(lisa_lora *l, const lisa_config *c, const lisa_lora_config *lc, int B, int T,
                                   int checkpointing, const lisa_allocator *a, lisa_error *err);
/* peft's initialisation: A Kaiming-uniform (a = sqrt(5)) from the seed, B zero. */
LISADEF void lisa_lora_init_random(lisa_lora *l, uint64_t seed);
/* A (rank, in) and B (out, rank) of one layer's target, or NULL when not chosen. */
LISADEF float *lisa_lora_a(const lisa_lora *l, int layer, int target);
LISADEF float *lisa_lora_b(const lisa_lora *l, int layer, int target);
/* W += scale B A for every adapter: the model then computes what it computed
   with the adapters attached (m->lora is not changed). */
LISADEF void lisa_lora_merge(lisa_model *m, const lisa_lora *l);
LISADEF void lisa_lora_free(lisa_lora *l);

/* peft's adapter format (PeftModel.from_pretrained reads it): a directory with
   adapter_config.json (r, lora_alpha, target_modules, peft_type "LORA", ...)
   and adapter_model.safetensors holding, for every layer N and target X,
   base_model.model.model.layers.N.self_attn.X.lora_A.weight (rank, in) and
   ...lora_B.weight (out, rank) ("mlp." for gate, up, down), q and k's B rows
   in transformers' rotate-half order. Configs this header cannot follow are
   refused by name: use_dora, use_rslora, fan_in_fan_out, a bias other than
   "none", layer or rank patterns, targets other than the seven projections.
   lora_dropout is accepted and not applied (training here has no dropout). */
LISADEF lisa_result lisa_lora_config_from_peft(lisa_lora_config *lc, const char *json, size_t len, const char *name,
                                               const lisa_allocator *a, lisa_error *err);
/* Fills l (lisa_lora_init()ed with the file's config, for a model of config
   c) from an adapter_model.safetensors in memory: every tensor present once,
   with its shape, and nothing else. */
LISADEF lisa_result lisa_lora_load_peft_weights_memory(lisa_lora *l, const void *data, size_t size, const char *name,
                                                       lisa_error *err);
#ifndef LISA_NO_STDIO
/* Reads dir's adapter_config.json into lc (train flags 0). */
LISADEF lisa_result lisa_lora_read_peft_config(const char *dir, lisa_lora_config *lc, const lisa_allocator *a,
                                               lisa_error *err);
/* Loads dir's adapter_model.safetensors into l (as the _memory version). */
LISADEF lisa_result lisa_lora_load_peft(lisa_lora *l, const char *dir, lisa_error *err);
/* Writes both files into the existing directory dir, each atomically, fp32;
   base_model (may be NULL) becomes base_model_name_or_path. */
LISADEF lisa_result lisa_lora_save_peft(const lisa_lora *l, const char *dir, const char *base_model, lisa_error *err);
#endif

typedef enum lisa_layer_order {
    LISA_ORDER_RANDOM = 0, /* gamma distinct layers, uniformly or by lisa_probs weights */
    LISA_ORDER_CYCLIC      /* layers 0, 1, ... in turn, gamma at a time, wrapping around */
} lisa_layer_order;

/* Data parallelism through a reduction hook: world_size workers (processes,
   threads or GPUs) each run a trainer with the same settings and seed on their
   own rows of the global batch, and every step they sum, in place and in the
   same order, the global count of rows with a target (before the forward, so
   that backward scales by one over it), every block's gradient that exists
   (frozen blocks have none and send nothing), then the loss. Gradients are
   then those of the global batch's mean, identical on every worker when the
   sum gives every worker the same floats, so the norm, the clipping and the
   update are too, and the weights stay bitwise the same. The library never
   talks to a network: the caller fills sum with MPI_Allreduce, ncclAllReduce
   or anything else. A worker whose step fails leaves the others waiting in
   sum: the caller stops them (MPI_Abort). In manual mode every worker must
   make the same lisa_trainer_set_active_layers() calls. */
typedef struct lisa_comm {
    int rank, world_size;   /* 0 <= rank < world_size; world_size 0 or 1: one worker, no calls */
    /* Sums buf (n floats) across the workers in place. buf is the trainer's
       memory: a device trainer's (lisa_cuda.h) is device memory. NULL: one worker. */
    void (*sum)(float *buf, size_t n, void *user);
    /* The same on host memory, for the counts and the loss; NULL: sum. */
    void (*sum_host)(float *buf, size_t n, void *user);
    /* Optional, for the caller (the trainer never calls it): root's buf to every worker. */
    void (*broadcast)(float *buf, size_t n, int root, void *user);
    void *user;
} lisa_comm;

typedef struct lisa_train_config {
    int batch, seq;          /* this worker's rows (see comm) */
    lisa_schedule schedule;  /* runs on the global step, across LISA switches */
    float beta1, beta2, eps, weight_decay;
    float grad_clip;         /* 0: off */
    int checkpointing;
    /* LISA (Pan et al., 2024, arXiv 2403.17919, Algorithm 1) */
    lisa_mode mode;
    int lisa_layers;         /* gamma: decoder layers trained at a time (0: 2) */
    int lisa_interval;       /* K: steps between resamplings (0: 20) */
    lisa_layer_order lisa_order;
    const float *lisa_probs; /* n_layers sampling weights, copied at init; NULL: uniform */
    uint64_t lisa_seed;      /* the sampler's own RNG */
    int freeze_embed;        /* 1: the embedding never trains (with a tied head: the shared matrix) */
    int freeze_final_norm;
    int freeze_head;         /* 1: the head never trains (with a tied head: the shared matrix) */
    int keep_state;          /* 1: layers that leave keep their AdamW moments and step, as the
                                reference implementation does, at the memory cost of every
                                sampled layer's moments; 0: they release them */
    lisa_lora_config lora;   /* LoRA mode's adapters; A is drawn from lisa_seed */
    int reserve_slots;       /* 1 (LISA and manual modes): memory for lisa_layers layers (gradient
                                and moments; with keep_state, moments for every layer) is
                                allocated once at init, the plan's peak, and reused at every
                                switch: no step allocates or frees, so a bump arena does not
                                grow. Manual mode then trains at most lisa_layers layers at once.
                                Results are bitwise those without it. Not stored in state files
                                (a resumed trainer has 0). 0: layers allocate when they enter */
    const lisa_comm *comm;   /* borrowed; NULL: one worker. Not stored in state files: set
                                t->config.comm after lisa_trainer_load_state() */
} lisa_train_config;

/* Defaults: batch 4, seq 64, constant lr 3e-4, betas 0.9 / 0.999, eps 1e-8,
   weight decay 0, no clipping, no checkpointing, full mode; LISA gamma 2,
   K 20, random order, uniform, seed 0. */
LISADEF lisa_train_config lisa_train_config_default(void);

/* Fills in the LISA defaults (gamma 0: 2, K 0: 20) and checks every setting
   against the resolved model config mc: batch and seq, optimizer ranges,
   schedule, mode, gamma, K, order and sampling weights. The trainers and
   planners call it; LISA_ERR_INVALID names the first bad setting. */
LISADEF lisa_result lisa_train_config_resolve(lisa_train_config *tc, const lisa_config *mc, lisa_error *err);
/* Does non-layer block b (embedding, final norm, head) train in every step
   under tc's freeze flags? 0 for an empty block (a tied head). */
LISADEF int lisa_fixed_block_trains(const lisa_config *c, const lisa_train_config *tc, int b);

/* The layer sampler on its own: draws gamma distinct layers of n_layers. */
typedef struct lisa_sampler {
    int n_layers, gamma;
    lisa_layer_order order;
    const float *probs;      /* (n_layers) weights or NULL; borrowed */
    int next;                /* cyclic order: the next layer to hand out */
    lisa_rng rng;
} lisa_sampler;

/* Needs 1 <= gamma <= n_layers and, with probs (ignored in cyclic order), at
   least gamma positive finite weights; lisa_trainer_init() checks these. */
LISADEF void lisa_sampler_init(lisa_sampler *s, int n_layers, int gamma, lisa_layer_order order,
                               const float *probs, uint64_t seed);
/* Writes gamma distinct layer indices, sorted ascending. Weighted draws take
   one layer at a time with probability proportional to its weight among the
   layers not yet taken (sampling without replacement). */
LISADEF void lisa_sampler_draw(lisa_sampler *s, int *layers);

/* Per-block training state: gradient and AdamW moments, allocated only while
   the block trains (moments also while it is frozen, with keep_state). In a
   device trainer (lisa_cuda.h) the pointers are device memory. */
typedef struct lisa_block_state {
    float *grad;             /* NULL while frozen */
    float *m, *v;            /* NULL when the block has no optimizer state */
    int step;                /* AdamW bias-correction step of this block's moments */
    int active;
    float *copy;             /* a device trainer's working copy while active (lisa_cuda.h bf16:
                                the fp32 master weights); NULL on the CPU */
} lisa_block_state;

typedef struct lisa_trainer lisa_trainer;
typedef struct lisa_trainer_ops lisa_trainer_ops;

struct lisa_trainer {
    lisa_model *model;
    lisa_train_config config;    /* resolved; lisa_probs points at the trainer's copy */
    lisa_acts acts;
    lisa_sampler sampler;
    /* tables, one allocation: */
    lisa_block_state *blocks;    /* (n_blocks) */
    float **grad_ptrs;           /* (n_blocks) what backward receives */
    size_t *block_sizes;         /* (n_blocks) floats in each block */
    int *active_layers;          /* (n_layers) sorted; the first n_active are valid */
    float *probs;                /* (n_layers) copy of lisa_probs, or NULL */
    int n_active;
    int step;                    /* optimizer steps taken */
    lisa_allocator allocator;
    size_t bytes;                /* tables, gradients and optimizer state (a device core: its
                                    host tables only; lisa_cuda_trainer_bytes counts the device) */
    size_t peak_bytes;           /* most this trainer, its activations and model held at once
                                    (CPU trainer) */
    /* the trainer core (see below): */
    const lisa_trainer_ops *ops; /* the device's work; this header's CPU trainer has its own */
    void *device;                /* the device trainer that owns this core, for its ops */
    float **slots;               /* reserve_slots: the free layer buffers, three stacks (gradients,
                                    device copies, moments); NULL without reserve_slots */
    int slot_count[3];           /* each stack's size */
    int slot_free[3];            /* how many of each are free now */
    lisa_lora lora;              /* LoRA mode: the adapters, attached to the model (model->lora)
                                    while the trainer lives; their blocks follow the model's:
                                    block lisa_n_blocks() + i is decoder layer i's adapters
                                    (with train_norms: then that layer's two norm weights) */
};

typedef struct lisa_step_info {
    int step;          /* counting from 1 */
    float loss;        /* before the update */
    float lr;
    float grad_norm;   /* before clipping */
    int switched;      /* 1: LISA mode resampled the layers before this step (the draw may
                          repeat the previous set); 0 otherwise, manual mode included */
    size_t allreduce_bytes; /* bytes this worker summed across workers (config.comm); 0 alone */
} lisa_step_info;

/* Sets up training of m. Full mode: every block trains. LISA mode: the
   first step draws the active layers. Call lisa_trainer_free(). */
LISADEF lisa_result lisa_trainer_init(lisa_trainer *t, lisa_model *m, const lisa_train_config *c,
                                      const lisa_allocator *a, lisa_error *err);
/* One optimizer step on inputs and targets (batch x seq). In LISA mode, a
   step s (counting from 0) with s % K == 0 first draws new layers. Returns
   LISA_ERR_NOMEM (and takes no step) if a newly active layer's memory cannot
   be had (a device trainer's error before the update likewise); called
   again, it retries that step with the same drawn layers, so a run that
   recovers equals one that never failed. LISA_ERR_INVALID after
   2^30 steps. */
LISADEF lisa_result lisa_trainer_step(lisa_trainer *t, const int *inputs, const int *targets,
                                      lisa_step_info *info);
/* Makes exactly these decoder layers the trained ones (any order, no
   repeats): leaving layers give up their gradient and (without keep_state)
   their moments; entering layers start from zero moments and step 0.
   LISA_ERR_INVALID (nothing changed) for a bad list; LISA_ERR_NOMEM when an
   entering layer's memory cannot be had (with reserve_slots: more layers
   than lisa_layers), and then only the layers that got memory train. */
LISADEF lisa_result lisa_trainer_set_active_layers(lisa_trainer *t, const int *layers, int n);
LISADEF void lisa_trainer_free(lisa_trainer *t);
/* Bytes held by the trainer, its activations and its model together. */
LISADEF size_t lisa_trainer_total_bytes(const lisa_trainer *t);
/* Blocks the trainer keeps state for: lisa_n_blocks(), plus n_layers adapter
   blocks in LoRA mode. tc resolved. */
LISADEF int lisa_train_n_blocks(const lisa_config *c, const lisa_train_config *tc);

/* --- the trainer core, shared by device trainers ---------------------------

   Everything a trainer decides, whichever device holds its numbers: the block
   lifecycle (a block's gradient, moments and device copy come when it starts
   training and go when it stops, or stay in reserved slots), the sampler
   driving it, the step sequence with the schedule, clipping and AdamW's
   scalars, where backward may stop, and the plan's arithmetic. This header's
   trainer is this core with CPU operations; lisa_cuda.h's is the same core
   with device operations. A device trainer keeps a lisa_trainer as its core:
   lisa_trainer_core_init(), its own device setup, lisa_trainer_core_start();
   then lisa_trainer_step(), lisa_trainer_set_active_layers() and
   lisa_trainer_free() work on it as on a CPU trainer, calling these ops. */

/* A block as the trainer sees it: what it is, where it sits in the parameter
   buffer, and its tensors. Every loop over blocks goes through this, so that a
   new kind of block (adapters) is added in one place. */
#define LISA_MAX_BLOCK_TENSORS 9
typedef enum lisa_block_kind {
    LISA_BLOCK_KIND_EMBED = 0,
    LISA_BLOCK_KIND_LAYER,
    LISA_BLOCK_KIND_FINAL_NORM,
    LISA_BLOCK_KIND_HEAD
} lisa_block_kind;

typedef struct lisa_block_tensor {
    const char *name;        /* "embed", "final_norm", "head", or a layer's "wq"... (lisa_model_tensor's) */
    size_t offset, size;     /* floats, from the block's start */
    int rows, cols;          /* shape (rows, cols); cols 0: a vector of rows */
    int decay;               /* 1: AdamW's weight decay applies (matrices); 0: norm weights */
    float init_std;          /* the std lisa_model_init_random() draws it with; 0: set to 1 */
} lisa_block_tensor;

typedef struct lisa_block_desc {
    lisa_block_kind kind;
    int layer;               /* the decoder layer (LISA_BLOCK_KIND_LAYER), else -1 */
    size_t offset, size;     /* floats in the parameter buffer (size 0: a tied head) */
    int n_tensors;           /* 0 for an empty block */
    lisa_block_tensor tensors[LISA_MAX_BLOCK_TENSORS];
} lisa_block_desc;

/* Block b (0 <= b < lisa_n_blocks(c)) of a resolved config. */
LISADEF lisa_block_desc lisa_block_describe(const lisa_config *c, int b);

/* The device-specific work of a trainer. Every function gets the core; a
   device trainer finds itself in t->device. Sizes are in floats, memory is
   the device's. Results other than LISA_OK stop the step and are returned. */
struct lisa_trainer_ops {
    /* Block memory: gradients, moments, copies. alloc returns NULL when out of memory. */
    void *(*alloc)(lisa_trainer *t, size_t bytes);
    void (*free)(lisa_trainer *t, void *p, size_t bytes);
    lisa_result (*zero)(lisa_trainer *t, float *p, size_t n);
    /* Floats of working copy per float of an active block (0: none), and what
       fills t->blocks[b].copy when block b starts training (NULL: nothing). */
    size_t copy_floats;
    lisa_result (*fill_copy)(lisa_trainer *t, int b);
    /* One step, in this order. load_batch (NULL: nothing) takes the host
       arrays before anything changes; forward_backward returns the batch's
       mean loss and adds loss_scale times the gradient of the summed loss
       into t->grad_ptrs; sum_squares totals the squares of every gradient in
       t->grad_ptrs; scale_grads multiplies them; update runs AdamW on n
       floats at offset (in the block) of block b; end_step (NULL: nothing)
       finishes the step. */
    lisa_result (*load_batch)(lisa_trainer *t, const int *inputs, const int *targets);
    lisa_result (*forward_backward)(lisa_trainer *t, const int *inputs, const int *targets, float loss_scale,
                                    float *loss);
    lisa_result (*sum_squares)(lisa_trainer *t, double *total);
    lisa_result (*scale_grads)(lisa_trainer *t, float coef);
    lisa_result (*update)(lisa_trainer *t, int b, size_t offset, size_t n, const lisa_adamw_scalars *a);
    lisa_result (*end_step)(lisa_trainer *t);
};

/* Resolves c against m's config and sets up the core's tables and sampler;
   no block memory yet. m is kept: the core reads its config only (a device
   trainer may pass a model with NULL params). ops NULL: the CPU's. On failure
   nothing is held. Undo with lisa_trainer_free(). */
LISADEF lisa_result lisa_trainer_core_init(lisa_trainer *t, lisa_model *m, const lisa_train_config *c,
                                           const lisa_trainer_ops *ops, void *device,
                                           const lisa_allocator *a, lisa_error *err);
/* After the device's own setup: the reserved slots, the blocks that train
   from the start (and in full mode every layer). On failure the caller calls
   lisa_trainer_free(). */
LISADEF lisa_result lisa_trainer_core_start(lisa_trainer *t, lisa_error *err);
/* Gives frozen block b zeroed moments at step 0, for a state loader to fill
   with kept ones; from a reserved slot when there is one. Only under
   keep_state (LISA_ERR_INVALID otherwise: without it a frozen block holds no
   moments); a block that has moments keeps them. */
LISADEF lisa_result lisa_trainer_block_keep_moments(lisa_trainer *t, int b);
/* The lowest decoder layer backward must run through for these block
   gradients (NULL: not wanted): -1 when the embedding wants one (every layer,
   then the embedding), n_layers when nothing below the final norm does. */
LISADEF int lisa_backward_lowest_layer(const lisa_config *c, float *const *block_grads);
/* The mean of row_loss over the rows with a target (targets[i] >= 0), added
   in row order in double (0 with none): lisa_model_forward()'s loss, for a
   device trainer that computes the rows' losses. */
LISADEF float lisa_mean_loss(const float *row_loss, const int *targets, int n);

/* ------------------------------------------------------------------------- */
/* Training state: stop and resume exactly                                    */
/* ------------------------------------------------------------------------- */

/* A state file holds the model, the training settings, every block's AdamW
   moments and step, the active layers, the sampler's RNG and position, the
   step count and a caller's data position, with a checksum. Resuming from it
   continues bitwise as if the run had never stopped, also in the middle of a
   LISA interval. Format "LSST" version 1, little-endian; the layout is described
   in the implementation, above lisa__state_header. */

#ifndef LISA_NO_STDIO
/* Writes atomically (temporary file, then rename): an interrupted save leaves
   the previous file intact. data_position is stored for the caller (the
   program stores its next batch index). */
LISADEF lisa_result lisa_trainer_save_state(const lisa_trainer *t, const char *path,
                                            uint64_t data_position, lisa_error *err);
/* Creates the model m and the trainer t from a state file; the settings are
   the file's (a lisa_train_config cannot be changed by resuming). On failure
   both are left freed. Call lisa_trainer_free() then lisa_model_free(). */
LISADEF lisa_result lisa_trainer_load_state(lisa_trainer *t, lisa_model *m, const char *path,
                                            const lisa_allocator *a, uint64_t *data_position,
                                            lisa_error *err);
#endif
LISADEF lisa_result lisa_trainer_load_state_memory(lisa_trainer *t, lisa_model *m, const void *data,
                                                   size_t size, const char *name,
                                                   const lisa_allocator *a, uint64_t *data_position,
                                                   lisa_error *err);

/* ------------------------------------------------------------------------- */
/* Memory planner                                                             */
/* ------------------------------------------------------------------------- */

typedef enum lisa_dtype {
    LISA_DTYPE_F32 = 0,  /* everything fp32: this header's trainer, and lisa_cuda.h's checking mode */
    LISA_DTYPE_BF16      /* lisa_cuda.h: bf16 weights and activations; trained blocks add fp32
                            master weights, fp32 gradients and fp32 moments */
} lisa_dtype;

/* Bytes by category, computed by the same functions the allocations use. */
typedef struct lisa_memory_plan {
    size_t weights;          /* the model's parameters (+ GPU bf16: fp32 master copies of active blocks) */
    size_t gradients;        /* active blocks only */
    size_t optimizer;        /* AdamW moments: active blocks (keep_state: every layer, once sampled) */
    size_t activations;      /* kept from forward to backward */
    size_t scratch;          /* backward scratch */
    size_t tables;           /* small bookkeeping */
    size_t peak;             /* all of the above */
    size_t params, trained_params;  /* counts, not bytes: total and trained at once */
} lisa_memory_plan;

/* The CPU trainer's memory: its counted bytes (lisa_trainer_total_bytes)
   reach plan->peak exactly. dtype must be LISA_DTYPE_F32; the GPU trainer's
   plan, bf16 or fp32, is lisa_cuda_plan_memory() in lisa_cuda.h (whose
   planner part compiles without CUDA: LISA_CUDA_PLANNER_IMPLEMENTATION). */
LISADEF lisa_result lisa_plan_memory(const lisa_config *c, const lisa_train_config *tc,
                                     lisa_dtype dtype, lisa_memory_plan *plan, lisa_error *err);

/* The part of a plan that is the same on every device, for resolved configs:
   params and trained_params, gradients (fp32, the blocks that train at once)
   and optimizer (fp32 m and v of the blocks that hold them at the peak).
   Device planners add the rest and sum with lisa_plan_total(). */
LISADEF void lisa_plan_block_state(const lisa_config *c, const lisa_train_config *tc, lisa_memory_plan *plan);
/* weights + gradients + optimizer + activations + scratch + tables. */
LISADEF size_t lisa_plan_total(const lisa_memory_plan *plan);

/* ------------------------------------------------------------------------- */
/* Files: llama2.c checkpoints, llm.c token files                            */
/* ------------------------------------------------------------------------- */

/* Token data held in memory. Call lisa_tokens_free(). */
typedef struct lisa_tokens {
    int *ids;
    size_t n;
    lisa_allocator allocator;
    size_t bytes;
} lisa_tokens;

/* The batch at index i (B rows of T): inputs start at token (i*B*T) mod n,
   targets are the same span shifted by one; reading wraps at the end. */
LISADEF void lisa_tokens_batch(const lisa_tokens *d, long long index, int B, int T,
                               int *inputs, int *targets);
/* Every id in [0, vocab)? Otherwise LISA_ERR_FORMAT naming `name` and the first bad id. */
LISADEF lisa_result lisa_tokens_check_vocab(const lisa_tokens *d, int vocab, const char *name,
                                            lisa_error *err);
LISADEF void lisa_tokens_free(lisa_tokens *d);

/* Loaders that read from memory (for embedded use and fuzzing); `name` labels errors. */
LISADEF lisa_result lisa_model_load_llama2c_memory(lisa_model *m, const void *data, size_t size,
                                                   const char *name, const lisa_allocator *a,
                                                   lisa_error *err);
LISADEF lisa_result lisa_tokens_load_memory(lisa_tokens *d, const void *data, size_t size,
                                            const char *name, const lisa_allocator *a,
                                            lisa_error *err);

/* llama2.c version-1 checkpoint ("ak42") from memory: a 256-byte header
   (uint32 magic 0x616b3432, int32 version 1, int32 dim, hidden_dim, n_layers,
   n_heads, n_kv_heads, vocab_size, max_seq_len, uint8 shared classifier, zero
   padding; unlike the legacy format, a negative vocab_size is an error), then
   fp32 tensors in export.py's order: every layer's attention norm, every
   layer's MLP norm, the final norm, the embedding, then wq, wk, wv, wo, w1,
   w2, w3 each for every layer, then the head unless shared. No norm_eps or
   rope_theta in the file: the defaults apply. Call lisa_model_free(). */
LISADEF lisa_result lisa_model_load_llama2c_v1_memory(lisa_model *m, const void *data, size_t size,
                                                      const char *name, const lisa_allocator *a,
                                                      lisa_error *err);

#ifndef LISA_NO_STDIO
/* llama2.c legacy checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads,
   n_kv_heads, vocab_size, negative when a separate head follows, seq_len), then
   fp32 tensors in run.c's order including the two RoPE tables. The format has
   no norm_eps or rope_theta: the defaults apply. Also reads version-1 files
   (magic "ak42"; see lisa_model_load_llama2c_v1). Call lisa_model_free(). */
LISADEF lisa_result lisa_model_load_llama2c(lisa_model *m, const char *path,
                                            const lisa_allocator *a, lisa_error *err);
/* Writes atomically: a temporary file next to path, flushed, then renamed. */
LISADEF lisa_result lisa_model_save_llama2c(const lisa_model *m, const char *path, lisa_error *err);
/* lisa_model_load_llama2c_v1_memory() on a file. */
LISADEF lisa_result lisa_model_load_llama2c_v1(lisa_model *m, const char *path,
                                               const lisa_allocator *a, lisa_error *err);
/* Writes a version-1 checkpoint (shared classifier flag = tied_head). Atomic. */
LISADEF lisa_result lisa_model_save_llama2c_v1(const lisa_model *m, const char *path, lisa_error *err);

/* llm.c token file: 256 int32 header (magic 20240520 version 1: uint16 tokens;
   magic 20240801 version 7: uint32 tokens; count in header[2]), then the tokens. */
LISADEF lisa_result lisa_tokens_load(lisa_tokens *d, const char *path, const lisa_allocator *a,
                                     lisa_error *err);
/* Writes uint16 (version 1) when every id fits, else uint32 (version 7). Atomic. */
LISADEF lisa_result lisa_tokens_save(const int *ids, size_t n, const char *path, lisa_error *err);
#endif

/* ------------------------------------------------------------------------- */
/* Tokenizers: llama2.c tokenizer.bin, Hugging Face BPE, a byte-level one     */
/* ------------------------------------------------------------------------- */

/* Three kinds behind one type:

   LISA_TOKENIZER_BYTES (lisa_tokenizer_init_bytes; no file, no allocation):
     ids 0..255 are the bytes themselves, 256 is BOS, 257 is EOS, vocabulary
     258. Every byte string encodes and decodes exactly; BOS and EOS decode to
     nothing. For teaching, the demo, and models trained from scratch.

   LISA_TOKENIZER_LLAMA2C (lisa_tokenizer_load_llama2c): llama2.c's
     tokenizer.bin, a SentencePiece BPE vocabulary with scores, encoded as
     run.c does: an optional BOS (id 1); a dummy-prefix " " piece when the text
     is not empty; each UTF-8 character (a lead byte and up to 3 continuation
     bytes) as its piece, or else each of its bytes as the byte piece byte + 3
     (the "<0xXX>" tokens); then, while some adjacent pair's concatenation
     (BOS included, as in run.c) is a piece with score > -1e10, the pair whose
     piece scores highest merges (the leftmost such pair on a tie); an
     optional EOS (id 2). A priority queue
     over a linked list of symbols gives the same ids as run.c's rescanning
     loop in O(n log n). Differences from run.c: the text is len bytes, so a
     NUL byte is text, not the end (it becomes the piece "<0x00>"); without a
     " " piece there is no dummy prefix (run.c would emit id -1); when a
     string is the piece of several ids, the lowest id is used.

   LISA_TOKENIZER_BPE (lisa_tokenizer_load_hf, and GGUF vocabularies): a
     Hugging Face tokenizer.json BPE model, encoded as the `tokenizers`
     library does, so ids equal transformers' tokenizer(text).input_ids:
     added tokens are matched as whole strings first (leftmost, longest;
     lstrip, rstrip, single_word, normalized honoured), the rest is
     normalized (Prepend, Replace, NFC), pre-tokenized (ByteLevel, Split with a
     known regex, Digits, Metaspace, a Sequence of them), and each piece is
     merged pair by pair, by the pair's place in the merges list (or, for
     GGUF SentencePiece vocabularies, by the merged piece's score), with
     byte fallback to "<0xXX>" pieces or the unknown token; BOS/EOS as the
     post-processor (TemplateProcessing) or tokenizer_config.json says.
     Pieces are the text bytes a token stands for (the byte-level alphabet
     undone, U+2581 as a space where the decoder makes it one), so decode
     equals transformers' decode(ids) (special tokens included, no clean-up)
     for valid UTF-8, and is raw bytes otherwise. A character with no piece,
     no byte fallback and no unknown token is dropped, as in `tokenizers`. */
typedef enum lisa_tokenizer_kind {
    LISA_TOKENIZER_BYTES = 0,
    LISA_TOKENIZER_LLAMA2C,
    LISA_TOKENIZER_BPE
} lisa_tokenizer_kind;

#define LISA_BYTES_BOS 256
#define LISA_BYTES_EOS 257
#define LISA_BYTES_VOCAB 258

/* Read-only after loading, so threads may share one for encoding and decoding. */
typedef struct lisa_tokenizer {
    lisa_tokenizer_kind kind;
    int vocab_size;
    int bos_id, eos_id;        /* bytes: 256, 257; llama2.c: 1, 2 */
    int max_token_length;      /* longest piece in bytes allowed by the file (bytes: 1) */
    int space_id;              /* the " " piece used as dummy prefix; -1: none (bytes: always) */
    int add_bos, add_eos;      /* what the configuration adds: bytes, llama2.c 1, 0; BPE as the
                                  file says (pass them to lisa_tokenizer_encode) */
    int unk_id, pad_id;        /* -1 when none (llama2.c: unk 0) */
    const char *chat_template; /* the model's Jinja chat template as shipped, or NULL */
    size_t chat_template_len;
    /* llama2.c and BPE (NULL for bytes), all inside one allocation: */
    const float *scores;       /* (vocab_size) merge scores (BPE: NULL unless ranked by score) */
    const size_t *offsets;     /* (vocab_size + 1): piece i is text + offsets[i], of
                                  offsets[i + 1] - offsets[i] - 1 bytes, NUL-terminated */
    const char *text;
    const int32_t *table;      /* hash table of ids by piece, -1 empty; hash_mask + 1 slots */
    size_t hash_mask;
    const struct lisa__bpe_model *bpe;  /* BPE: the encoder's private tables */
    void *buffer;
    size_t buffer_size;
    lisa_allocator allocator;
    size_t bytes;              /* bytes this tokenizer allocated */
} lisa_tokenizer;

/* The byte-level tokenizer. Needs no lisa_tokenizer_free() (calling it is harmless). */
LISADEF void lisa_tokenizer_init_bytes(lisa_tokenizer *t);

/* llama2.c tokenizer.bin from memory: int32 max_token_length, then per token
   float32 score, int32 length, that many bytes. vocab_size > 0: exactly that
   many tokens must be there and nothing after them; 0: tokens are read to the
   end of the data and counted. At least 3 tokens (unk, BOS, EOS). `name`
   labels errors. Call lisa_tokenizer_free(). */
LISADEF lisa_result lisa_tokenizer_load_llama2c_memory(lisa_tokenizer *t, const void *data, size_t size,
                                                       int vocab_size, const char *name,
                                                       const lisa_allocator *a, lisa_error *err);

/* Encodes len bytes of text (bos, eos: 1 to add BOS / EOS). Writes the ids to
   ids (max_ids entries) and their number to *n_ids. ids == NULL asks for the
   number only; max_ids >= len + 3 is always enough for the bytes and
   llama2.c kinds, and for BPE unless a normalizer lengthens the text (a
   Replace of " " by U+2581, a Prepend) and byte fallback spells the
   added bytes out: ask first there. Too small a max_ids gives
   LISA_ERR_INVALID with *n_ids set to the number needed. Working memory
   (about 32 bytes per text byte, llama2.c kind) comes from the tokenizer's
   allocator and is freed before returning. A byte with no piece and no byte
   token (a vocabulary under 259) is LISA_ERR_INVALID. */
LISADEF lisa_result lisa_tokenizer_encode(const lisa_tokenizer *t, const char *text, size_t len,
                                          int bos, int eos, int *ids, size_t max_ids, size_t *n_ids,
                                          lisa_error *err);
/* lisa_tokenizer_encode(), and where each token came from: offsets[i] (when
   offsets is not NULL; max_ids entries, like ids) is the byte offset in text
   where token i's bytes start. Tokens that stand for no text of their own
   (BOS, a dummy-prefix space) get the offset of the text they precede, EOS
   gets len. Through a normalizer, a token starts at the first byte of the
   text it came from (NFC: a composed character at its base; a mark moved
   ahead by canonical ordering where the first mark it passed stood).
   Offsets grow from token to token, but for BPE's unknown token: a run of
   unknown characters followed by a character that byte fallback spells out
   gives that character's byte tokens first, then the unknown token, as
   `tokenizers` does. Callers map spans of text to tokens with it (a chat's
   assistant turns) after encoding the whole text once. */
LISADEF lisa_result lisa_tokenizer_encode_offsets(const lisa_tokenizer *t, const char *text, size_t len,
                                                  int bos, int eos, int *ids, size_t *offsets, size_t max_ids,
                                                  size_t *n_ids, lisa_error *err);

/* The bytes one token stands for, as run.c's decode: "<0xXX>" pieces give
   that raw byte, and after BOS (prev_id == bos_id) a leading space is
   dropped. *len (may be NULL) gets the byte count (pieces may hold NULs; the
   result is NUL-terminated too). NULL for an id outside the vocabulary.
   Byte-level: BOS and EOS give "". The pointer lives as long as t. */
LISADEF const char *lisa_tokenizer_piece(const lisa_tokenizer *t, int prev_id, int id, size_t *len);

/* Decodes n ids into out: each token's piece (lisa_tokenizer_piece with the
   previous id, -1 for the first), BOS and EOS ids contributing nothing, then
   a NUL. *len gets the byte count without the NUL; out == NULL asks for it
   only; cap < *len + 1 is LISA_ERR_INVALID, as is an id outside the
   vocabulary. decode(encode(text, bos = 1)) gives text back (without BOS the
   dummy-prefix space stays in front). */
LISADEF lisa_result lisa_tokenizer_decode(const lisa_tokenizer *t, const int *ids, size_t n,
                                          char *out, size_t cap, size_t *len, lisa_error *err);

/* The id whose piece is exactly these len bytes (lowest if several), or -1.
   BPE: special and added tokens are found by their text ("<|im_end|>"). */
LISADEF int lisa_tokenizer_find(const lisa_tokenizer *t, const char *piece, size_t len);

/* Streaming decode, for generation: feed ids one at a time; each call gives
   the text that is complete so far, never half a UTF-8 character (up to 3
   bytes of an unfinished one are held back until the next piece completes
   it or shows it invalid, then written as they are). The concatenation of
   all outputs and lisa_tokenizer_stream_flush()'s equals
   lisa_tokenizer_decode() of the same ids. Start with
   lisa_tokenizer_stream_init(); the state is the caller's (one per stream),
   the tokenizer is only read. */
typedef struct lisa_tokenizer_stream {
    int prev_id;               /* the last id fed, -1 at the start */
    int n_carry;               /* bytes held back */
    unsigned char carry[4];
} lisa_tokenizer_stream;
LISADEF void lisa_tokenizer_stream_init(lisa_tokenizer_stream *s);
/* Decodes id into out (cap bytes; the piece's length + 4 is always enough;
   NUL-terminated), *len its bytes. An id outside the vocabulary or too small
   a cap is LISA_ERR_INVALID and changes nothing. */
LISADEF lisa_result lisa_tokenizer_stream_next(const lisa_tokenizer *t, lisa_tokenizer_stream *s, int id,
                                               char *out, size_t cap, size_t *len, lisa_error *err);
/* Writes the held-back bytes (an unfinished character at the end; at most
   3) to out (cap >= 4, NUL-terminated) and returns their number. */
LISADEF size_t lisa_tokenizer_stream_flush(lisa_tokenizer_stream *s, char *out, size_t cap);

/* A Hugging Face tokenizer.json (model type BPE) from memory; config_json is
   tokenizer_config.json's text or NULL: its add_bos_token / add_eos_token
   override the post-processor as transformers does, its bos_token,
   eos_token, pad_token, unk_token name those ids, its chat_template becomes
   t->chat_template. Any component outside the supported set (another model
   type, an unknown normalizer, pre-tokenizer, decoder or post-processor, a
   regex that is not one of the known patterns, dropout, subword prefixes)
   is an error naming it, as is an id at or above the number of vocabulary
   entries and added tokens the file holds (ids may leave gaps, but no more
   than the file has entries). `name` labels errors. Call lisa_tokenizer_free(). */
LISADEF lisa_result lisa_tokenizer_load_hf_memory(lisa_tokenizer *t, const char *json, size_t len,
                                                  const char *config_json, size_t config_len, const char *name,
                                                  const lisa_allocator *a, lisa_error *err);

LISADEF void lisa_tokenizer_free(lisa_tokenizer *t);

#ifndef LISA_NO_STDIO
/* lisa_tokenizer_load_llama2c_memory() on a file (tokenizer.bin). */
LISADEF lisa_result lisa_tokenizer_load_llama2c(lisa_tokenizer *t, const char *path, int vocab_size,
                                                const lisa_allocator *a, lisa_error *err);
/* A tokenizer.json file, or a directory holding tokenizer.json and
   optionally tokenizer_config.json and chat_template.jinja (the template
   when the config has none). Call lisa_tokenizer_free(). */
LISADEF lisa_result lisa_tokenizer_load_hf(lisa_tokenizer *t, const char *path, const lisa_allocator *a,
                                           lisa_error *err);
/* Any tokenizer, told apart by its path and first bytes: "bytes" is
   lisa_tokenizer_init_bytes(); a directory holding tokenizer.json, or a file
   that is JSON (after an optional UTF-8 BOM and white space, '{' and then a
   '"' or '}'), is lisa_tokenizer_load_hf(); a file starting "GGUF" is
   lisa_tokenizer_load_gguf(); anything else a llama2.c tokenizer.bin with
   vocab_size tokens (0: as many as the file holds). Errors name the path and
   what was expected. Call lisa_tokenizer_free(). */
LISADEF lisa_result lisa_tokenizer_load(lisa_tokenizer *t, const char *path, int vocab_size,
                                        const lisa_allocator *a, lisa_error *err);
#endif

/* ------------------------------------------------------------------------- */
/* JSON: a small reader for config files, safetensors headers, JSON Lines    */
/* ------------------------------------------------------------------------- */

typedef enum lisa_json_type {
    LISA_JSON_NONE = 0,   /* no such node: an index of -1 or out of range */
    LISA_JSON_NULL,
    LISA_JSON_FALSE,
    LISA_JSON_TRUE,
    LISA_JSON_NUMBER,
    LISA_JSON_STRING,
    LISA_JSON_ARRAY,
    LISA_JSON_OBJECT
} lisa_json_type;

/* One value. Nodes are stored in document order: a container's members follow
   it, and `end` skips its whole subtree. */
typedef struct lisa_json_node {
    lisa_json_type type;
    int parent;            /* -1 for the root */
    int end;               /* one past the last node of this value's subtree */
    int count;             /* array elements or object members */
    size_t key, key_len;   /* an object member's key: offset into strings, bytes */
    size_t str, str_len;   /* a string's decoded value, the same way */
    double number;
} lisa_json_node;

/* A parsed document. Call lisa_json_free(). */
typedef struct lisa_json {
    lisa_json_node *nodes; /* (n_nodes); node 0 is the root */
    int n_nodes;
    char *strings;         /* decoded UTF-8 keys and strings, each followed by a NUL */
    size_t strings_size;
    int32_t *index;        /* hash of the members of large objects by (object, key), -1 empty */
    size_t index_slots;    /* a power of two, or 0 */
    lisa_allocator allocator;
    size_t bytes;          /* bytes allocated: O(text), at most about 30 per byte of it */
} lisa_json;

#define LISA_JSON_MAX_DEPTH 64

/* Parses RFC 8259 JSON: exactly one value, surrounded by optional whitespace
   (and an optional UTF-8 byte order mark). Strings must be valid UTF-8; escapes,
   \uXXXX surrogate pairs included, are decoded to UTF-8. Nesting deeper than
   LISA_JSON_MAX_DEPTH, numbers beyond double range, lone surrogates, control
   characters in strings, and anything after the value are errors, reported as
   "name: line L column C: problem" (columns count bytes). Numbers are correctly
   rounded when they have at most 19 significant digits and a decimal exponent
   within 22 of them; otherwise to within a few units in the last place. Reads
   only text[0..len). Call lisa_json_free(), also after a failure. */
LISADEF lisa_result lisa_json_parse(lisa_json *j, const char *text, size_t len, const char *name,
                                    const lisa_allocator *a, lisa_error *err);
LISADEF void lisa_json_free(lisa_json *j);

/* Accessors. Every one accepts node -1 (and returns "nothing" for it), so
   lookups chain: lisa_json_get(j, lisa_json_get(j, root, "a"), "b"). */
LISADEF int lisa_json_root(const lisa_json *j);                       /* 0, or -1 when empty */
LISADEF lisa_json_type lisa_json_type_of(const lisa_json *j, int node);
/* The member named key of an object (the last one when a key repeats), or -1.
   Objects of LISA_JSON_INDEX_MIN members or more are looked up in a hash
   built at parse time, so a 50k-entry vocabulary costs O(1) per key. */
#define LISA_JSON_INDEX_MIN 16
LISADEF int lisa_json_get(const lisa_json *j, int object, const char *key);
LISADEF int lisa_json_length(const lisa_json *j, int node);           /* elements or members; 0 otherwise */
LISADEF int lisa_json_at(const lisa_json *j, int node, int index);    /* element or member index, or -1 */
LISADEF int lisa_json_first(const lisa_json *j, int node);            /* first element or member, or -1 */
LISADEF int lisa_json_next(const lisa_json *j, int node);             /* next sibling, or -1 */
LISADEF double lisa_json_number(const lisa_json *j, int node);        /* 0 when not a number */
/* A string's NUL-terminated UTF-8 value (which may hold NULs of its own: len
   tells), or NULL when node is not a string. len may be NULL. */
LISADEF const char *lisa_json_string(const lisa_json *j, int node, size_t *len);
/* The key of an object member, or NULL when node is not one. len may be NULL. */
LISADEF const char *lisa_json_key(const lisa_json *j, int node, size_t *len);

/* ------------------------------------------------------------------------- */
/* Hugging Face checkpoints: safetensors + config.json                       */
/* ------------------------------------------------------------------------- */

/* Element types of tensors in files. */
typedef enum lisa_file_dtype {
    LISA_FILE_F32 = 0,
    LISA_FILE_F16,        /* IEEE half */
    LISA_FILE_BF16        /* bfloat16 */
} lisa_file_dtype;

/* Conversions. To 16 bits rounds to nearest, ties to even; NaN stays NaN and
   values beyond the range become infinity. F16 subnormals are exact both ways. */
LISADEF float lisa_f16_to_f32(uint16_t h);
LISADEF uint16_t lisa_f32_to_f16(float f);
LISADEF float lisa_bf16_to_f32(uint16_t h);
LISADEF uint16_t lisa_f32_to_bf16(float f);

#define LISA_SAFETENSORS_MAX_DIMS 8
#define LISA_SAFETENSORS_MAX_HEADER 100000000   /* bytes, as the reference implementation */

typedef struct lisa_safetensors_tensor {
    const char *name;                         /* NUL-terminated, held by the header */
    lisa_file_dtype dtype;
    int ndim;
    uint64_t shape[LISA_SAFETENSORS_MAX_DIMS];
    size_t begin, end;                        /* byte range within the data section */
} lisa_safetensors_tensor;

/* A parsed safetensors header. Call lisa_safetensors_free(). */
typedef struct lisa_safetensors {
    lisa_json header;                  /* the header's JSON */
    int metadata;                      /* its "__metadata__" node, or -1 */
    lisa_safetensors_tensor *tensors;  /* (n_tensors), sorted by begin */
    int n_tensors;
    size_t data_offset;                /* where the data section starts: 8 + header length */
    size_t data_size;                  /* its bytes */
    const unsigned char *data;         /* the data section (memory parsing only), else NULL */
    lisa_allocator allocator;
    size_t bytes;                      /* bytes held, the header's included */
} lisa_safetensors;

/* Parses and checks a whole safetensors file held in memory (8-byte little-
   endian header length N, N bytes of JSON, the data): N within the file and
   the limit, a JSON object of tensors each with a dtype (F32, F16, BF16), a
   shape of non-negative integers and data_offsets [begin, end] whose length
   is the shape's bytes, tensors tiling the data section with no gap or overlap
   and no bytes left over, "__metadata__" an object of strings. `name` labels
   errors. Does not copy data. Call lisa_safetensors_free(), also after a failure. */
LISADEF lisa_result lisa_safetensors_parse_memory(lisa_safetensors *st, const void *data, size_t size,
                                                  const char *name, const lisa_allocator *a,
                                                  lisa_error *err);
LISADEF void lisa_safetensors_free(lisa_safetensors *st);

/* A model from a config.json text and one safetensors file, both in memory
   (embedded use, fuzzing); `name` labels errors. See lisa_model_load_hf().
   Call lisa_model_free(). */
LISADEF lisa_result lisa_model_load_hf_memory(lisa_model *m, const char *config_json, size_t config_len,
                                              const void *safetensors, size_t safetensors_size,
                                              const char *name, const lisa_allocator *a,
                                              lisa_error *err);
/* A GGUF model held in memory (the whole file; embedded use, fuzzing); `name`
   labels errors. See lisa_model_load_gguf(). Call lisa_model_free(). */
LISADEF lisa_result lisa_model_load_gguf_memory(lisa_model *m, const void *data, size_t size, const char *name,
                                                const lisa_allocator *a, lisa_error *err);

#ifndef LISA_NO_STDIO
/* A Hugging Face LlamaForCausalLM directory: config.json and model.safetensors,
   or (when there is no model.safetensors) the shards that
   model.safetensors.index.json's weight_map names. F16 and BF16 weights become
   fp32. config.json: hidden_size, intermediate_size, num_hidden_layers,
   num_attention_heads, vocab_size (required); num_key_value_heads (default:
   the heads), max_position_embeddings (2048), rms_norm_eps (1e-6), rope_theta
   (10000), tie_word_embeddings (false). Settings this engine does not compute
   are errors naming the field: rope_scaling other than null, attention_bias or
   mlp_bias true, hidden_act other than silu, model_type other than llama,
   architectures other than LlamaForCausalLM, head_dim other than
   hidden_size / num_attention_heads. Every tensor must be there with its shape;
   any other tensor is an error, except rotary_emb.inv_freq buffers and, with
   tied embeddings, lm_head.weight (both skipped). q_proj and k_proj rows are
   reordered from transformers' rotate-half RoPE layout to this header's
   interleaved pairs, so the logits are LlamaForCausalLM's. Call lisa_model_free(). */
LISADEF lisa_result lisa_model_load_hf(lisa_model *m, const char *dir, const lisa_allocator *a,
                                       lisa_error *err);
/* Writes config.json and model.safetensors (tensors as dtype, rounded to
   nearest even) into the existing directory dir, each file atomically;
   transformers' from_pretrained() reads them. With LISA_FILE_F32, loading
   gives back the same bits. lisa_model_save_hf_sharded() with
   LISA_HF_SHARD_DEFAULT (5 GB, transformers' default). */
LISADEF lisa_result lisa_model_save_hf(const lisa_model *m, const char *dir, lisa_file_dtype dtype,
                                       lisa_error *err);
#define LISA_HF_SHARD_DEFAULT 5000000000ull
/* lisa_model_save_hf() in shards of at most max_shard_bytes of tensor data,
   as transformers' save_pretrained(max_shard_size=) splits: tensors whole, in
   lisa_model_tensor() order, a new shard when the next tensor would pass the
   size (a larger tensor gets a shard of its own). One shard is
   model.safetensors; more are model-00001-of-0000N.safetensors ... with
   model.safetensors.index.json ({"metadata": {"total_size"}, "weight_map"}),
   written after the shards, then config.json. Only once all are in place do
   the files of an earlier save of another layout go: model.safetensors, or
   the index and the shards it names. A failed save keeps every file it had
   not finished. Errors: LISA_ERR_INVALID (dtype, a size of 0, more than
   99999 shards), LISA_ERR_NOMEM, LISA_ERR_IO naming the file. */
LISADEF lisa_result lisa_model_save_hf_sharded(const lisa_model *m, const char *dir, lisa_file_dtype dtype,
                                               uint64_t max_shard_bytes, lisa_error *err);
/* A llama.cpp GGUF model (general.architecture "llama", as
   convert_hf_to_gguf.py writes LlamaForCausalLM): the hyperparameters from
   llama.embedding_length, feed_forward_length, block_count,
   attention.head_count, attention.head_count_kv (default: the heads),
   context_length, attention.layer_norm_rms_epsilon, rope.freq_base (10000);
   rope.dimension_count, attention.key_length and value_length (when present)
   must be the head size; the vocabulary is token_embd.weight's rows (as are
   llama.vocab_size and the count of tokenizer.ggml.tokens, when present); no
   output.weight means tied embeddings.
   Any other llama.* key is an error naming it (rope.scaling.type may be
   "none", expert counts 0). Tensors token_embd, blk.N.{attn_norm, attn_q,
   attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down},
   output_norm, output (all ".weight"), each with its ggml dims ({in, out}
   for an [out, in] matrix) and a type lisa_ggml_dequantize() reads; a
   missing or extra tensor is an error naming it. Tensors are read one at a
   time, in whole blocks, into the fp32 weights; GGUF q/k rows are already in
   this header's interleaved RoPE order. Call lisa_model_free(). */
LISADEF lisa_result lisa_model_load_gguf(lisa_model *m, const char *path, const lisa_allocator *a,
                                         lisa_error *err);
/* Writes m as a llama.cpp GGUF file (version 3, alignment 32), atomically
   ("<path>.tmp" renamed into place; a failed save keeps the old file), as
   gguf-py's GGUFWriter writes what convert_hf_to_gguf.py gives it:
   general.architecture "llama", general.type, general.name (carry's, else
   "model" and "lisa"), carry's other general.* keys, the llama.*
   hyperparameters (uint32; rope.freq_base and
   attention.layer_norm_rms_epsilon float32), general.file_type (0 ALL_F32,
   1 MOSTLY_F16, 32 MOSTLY_BF16, 7 MOSTLY_Q8_0), general.quantization_version
   2, then carry's tokenizer.* keys. Tensors token_embd, blk.N.{attn_norm,
   attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down,
   ffn_norm}, output_norm, output (absent when tied), ggml dims {in, out},
   q/k rows as they are (GGUF's order is this header's). Matrices in ggml
   type `type`: F32 (0), F16 (1), BF16 (30) or Q8_0 (8), converted by
   lisa_ggml_quantize(); a Q8_0 matrix whose rows are not whole blocks of 32
   is F16 (convert's fallback); norms are F32. carry (may be NULL) is
   metadata to keep, e.g. the source GGUF's or lisa_gguf_tokenizer_from_hf()'s:
   its general.* and tokenizer.* keys are copied with their types and values,
   except the ones written here (architecture, type and name taken from it,
   file_type, quantization_version, alignment); other keys are not.
   Errors: LISA_ERR_INVALID for another type (naming it) or a carried
   tokenizer.ggml.tokens that is not vocab_size strings, LISA_ERR_IO.
   Tensor data is converted and written in small chunks.
   lisa_model_load_gguf() reads the file back, bit for bit with F32. */
struct lisa_gguf;
LISADEF lisa_result lisa_model_save_gguf(const lisa_model *m, const char *path, uint32_t type,
                                         const struct lisa_gguf *carry, lisa_error *err);
/* Every kind of model: a directory holding config.json is read with
   lisa_model_load_hf(), a path ending in ".gguf" or a file starting with
   "GGUF" with lisa_model_load_gguf(), anything else as a llama2.c
   checkpoint. Call lisa_model_free(). */
LISADEF lisa_result lisa_model_load(lisa_model *m, const char *path, const lisa_allocator *a,
                                    lisa_error *err);
/* The config of a model file or directory (as lisa_model_load() tells them
   apart), reading only its header, GGUF metadata or config.json: what the planner needs.
   A llama2.c header is checked as lisa_model_load() checks it, the file's
   size against it included. */
LISADEF lisa_result lisa_model_read_config(const char *path, lisa_config *c, const lisa_allocator *a,
                                           lisa_error *err);
#endif

/* ------------------------------------------------------------------------- */
/* GGUF: metadata                                                             */
/* ------------------------------------------------------------------------- */

/* A GGUF file (ggml's format, versions 2 and 3, little-endian): "GGUF", a
   uint32 version, uint64 tensor and key counts, the key/value metadata, the
   tensor infos (name, dimensions, ggml type, offset), padding to the
   alignment, then the tensor data. This reader takes the metadata and the
   tensor infos; the tensor data is left where it is. */

/* Value types of the metadata, numbered as in the file. */
typedef enum lisa_gguf_type {
    LISA_GGUF_UINT8 = 0,
    LISA_GGUF_INT8,
    LISA_GGUF_UINT16,
    LISA_GGUF_INT16,
    LISA_GGUF_UINT32,
    LISA_GGUF_INT32,
    LISA_GGUF_FLOAT32,
    LISA_GGUF_BOOL,       /* one byte, 0 or 1 */
    LISA_GGUF_STRING,     /* uint64 length, then the bytes (not NUL-terminated; may hold NULs) */
    LISA_GGUF_ARRAY,      /* uint32 element type, uint64 count, the elements */
    LISA_GGUF_UINT64,
    LISA_GGUF_INT64,
    LISA_GGUF_FLOAT64
} lisa_gguf_type;

#define LISA_GGUF_MAX_DIMS 4            /* ggml's limit */
#define LISA_GGUF_MAX_DEPTH 8           /* arrays of arrays nested deeper are refused */
#define LISA_GGUF_MAX_KEY 65535         /* bytes in a key or a tensor name */
#define LISA_GGUF_DEFAULT_ALIGNMENT 32
#ifndef LISA_GGUF_MAX_METADATA
#define LISA_GGUF_MAX_METADATA (256u << 20)   /* bytes lisa_gguf_read_metadata() will read */
#endif

typedef struct lisa_gguf_kv {
    const char *key;           /* NUL-terminated copy; no control bytes (below 0x20, 0x7f) */
    size_t key_len;
    lisa_gguf_type type;
    lisa_gguf_type elem_type;  /* arrays: the element type; otherwise type */
    uint64_t count;            /* arrays: elements; otherwise 1 */
    size_t value;              /* where the value is in the buffer: a number's bytes, a string's
                                  bytes (after its length), an array's first element */
    size_t value_size;         /* its bytes (an array: all of its elements) */
    const size_t *strings;     /* arrays of strings: where element k's length field is, else NULL */
} lisa_gguf_kv;

typedef struct lisa_gguf_tensor {
    const char *name;          /* NUL-terminated copy */
    size_t name_len;
    int n_dims;                /* 0 .. LISA_GGUF_MAX_DIMS */
    uint64_t dims[LISA_GGUF_MAX_DIMS];  /* ggml order: dims[0] varies fastest; unused ones are 1 */
    uint64_t n_elements;       /* their product, at most INT64_MAX */
    uint32_t type;             /* ggml type number (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0, 30 BF16, ...) */
    uint64_t offset;           /* from data_offset; a multiple of the alignment */
    uint64_t size;             /* bytes, when lisa_ggml_type_size() knows the type; else 0 */
} lisa_gguf_tensor;

/* A parsed GGUF header. Call lisa_gguf_free(). */
typedef struct lisa_gguf {
    uint32_t version;          /* 2 or 3 */
    lisa_gguf_kv *kv;          /* (n_kv), in file order; keys are unique */
    int n_kv;
    lisa_gguf_tensor *tensors; /* (n_tensors), in file order; names are unique */
    int n_tensors;
    uint32_t alignment;        /* general.alignment (a power of two), or 32 */
    size_t header_size;        /* bytes up to the end of the tensor infos */
    uint64_t data_offset;      /* where the tensor data starts: header_size rounded up to alignment */
    uint64_t file_size;        /* lisa_gguf_read_metadata(): the file's bytes; from memory: size */
    const unsigned char *buffer;  /* the header's bytes: the caller's data, or read from the file */
    size_t buffer_size;
    const char *name;          /* labels errors (a copy) */
    lisa_allocator allocator;
    size_t bytes;              /* bytes held: tables, names and (from a file) the buffer */
    void *block;               /* private: tables and names, one allocation */
    size_t block_size;
    int32_t *kv_index, *tensor_index;   /* private: hash tables of keys and names */
    size_t index_size;
    unsigned char *owned;      /* private: the buffer read from a file */
} lisa_gguf;

/* Parses a GGUF header from memory. data holds the file's first size bytes:
   the whole file or a prefix of it holding at least the metadata and tensor
   infos (tensors are not checked against the end of the file). Every length
   and count is checked against the bytes present before use; keys must be
   unique, non-empty, at most LISA_GGUF_MAX_KEY bytes and free of control
   bytes; bools 0 or 1; arrays nested at most LISA_GGUF_MAX_DEPTH deep;
   general.alignment a uint32 power of two; tensor names unique (as keys), at
   most LISA_GGUF_MAX_DIMS dimensions whose product fits in int64, offsets
   multiples of the alignment, tensors of known types a whole number of blocks
   per row and in file order without overlap. Big-endian files and versions
   other than 2 and 3 are refused. g points into data (which must outlive
   it). `name` labels errors: "name: problem (key K, at byte N)". Call
   lisa_gguf_free(), also after a failure. */
LISADEF lisa_result lisa_gguf_parse_memory(lisa_gguf *g, const void *data, size_t size, const char *name,
                                           const lisa_allocator *a, lisa_error *err);
#ifndef LISA_NO_STDIO
/* The same from a file, reading only its header: chunks that grow until the
   tensor infos are complete (at most LISA_GGUF_MAX_METADATA bytes, about twice
   the header's size), never the tensor data. Tensors of known types must lie
   within the file. Call lisa_gguf_free(), also after a failure. */
LISADEF lisa_result lisa_gguf_read_metadata(lisa_gguf *g, const char *path, const lisa_allocator *a,
                                            lisa_error *err);
#endif
LISADEF void lisa_gguf_free(lisa_gguf *g);

/* The index of key (a NUL-terminated string) in g->kv, or -1. O(1). */
LISADEF int lisa_gguf_find(const lisa_gguf *g, const char *key);
/* The index of a tensor by name in g->tensors, or -1. O(1). */
LISADEF int lisa_gguf_find_tensor(const lisa_gguf *g, const char *name);

/* Typed access to the value of key i (an index from lisa_gguf_find). Each
   checks the type and fails with LISA_ERR_FORMAT naming the file, the key and
   the types (LISA_ERR_INVALID for an index out of range, e.g. -1):
     get_int     any integer type (uint64 values above INT64_MAX are out of range)
     get_float   float32 or float64
     get_bool    bool (*v 0 or 1)
     get_string  string: *s points into the buffer, *len bytes, not NUL-terminated
     array       array: its element type and count */
LISADEF lisa_result lisa_gguf_get_int(const lisa_gguf *g, int i, int64_t *v, lisa_error *err);
LISADEF lisa_result lisa_gguf_get_float(const lisa_gguf *g, int i, double *v, lisa_error *err);
LISADEF lisa_result lisa_gguf_get_bool(const lisa_gguf *g, int i, int *v, lisa_error *err);
LISADEF lisa_result lisa_gguf_get_string(const lisa_gguf *g, int i, const char **s, size_t *len, lisa_error *err);
LISADEF lisa_result lisa_gguf_array(const lisa_gguf *g, int i, lisa_gguf_type *elem_type, uint64_t *count,
                                    lisa_error *err);
/* Element k of array i, O(1), the element type checked as above; k out of
   range is LISA_ERR_INVALID. */
LISADEF lisa_result lisa_gguf_array_int(const lisa_gguf *g, int i, uint64_t k, int64_t *v, lisa_error *err);
LISADEF lisa_result lisa_gguf_array_float(const lisa_gguf *g, int i, uint64_t k, double *v, lisa_error *err);
LISADEF lisa_result lisa_gguf_array_bool(const lisa_gguf *g, int i, uint64_t k, int *v, lisa_error *err);
LISADEF lisa_result lisa_gguf_array_string(const lisa_gguf *g, int i, uint64_t k, const char **s, size_t *len,
                                           lisa_error *err);
LISADEF const char *lisa_gguf_type_name(lisa_gguf_type t);   /* "uint8", ..., "array"; "?" otherwise */

/* Tensor types: the name of a ggml type number ("F32", "Q4_1", ...; NULL when
   unknown) and its block: elements per block and bytes per block (1 and 4
   for F32; 32 and 20 for Q4_1). Returns 0 for a type this header does not
   know the layout of. */
LISADEF const char *lisa_ggml_type_name(uint32_t type);
LISADEF int lisa_ggml_type_size(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
/* n elements (a whole number of blocks) of ggml type `type` at src into
   fp32 dst, bit for bit as gguf-py's gguf.quants.dequantize: F32, F16, BF16,
   Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Returns 1, or
   0 (dst untouched) for another type or an n that is not whole blocks. */
LISADEF int lisa_ggml_dequantize(uint32_t type, const void *src, float *dst, uint64_t n);
/* The other way, as gguf-py's gguf.quants.quantize, for the types a model
   is written in: F32, F16, BF16, Q8_0. Returns 1, or 0 (dst untouched). */
LISADEF int lisa_ggml_quantize(uint32_t type, const float *src, void *dst, uint64_t n);

/* The tokenizer a GGUF file carries in its metadata (the tokenizer.ggml.*
   keys), with llama.cpp's semantics (src/llama-vocab.cpp), so ids equal
   llama_tokenize(text, add_special = add_bos/add_eos, parse_special = true):
   model "gpt2" is byte-level BPE ranked by the merges' order, its
   pre-tokenizer chosen by tokenizer.ggml.pre (ignore_merges for the Llama 3
   family, GLM-4 and Tekken, as llama.cpp); model "llama" is SentencePiece BPE
   ranked by the merged piece's score, with byte fallback to <0xXX> tokens and,
   with add_space_prefix (the default), a space in front of every stretch of
   text between whole-string tokens. Tokens of type unknown, control (both
   special) and user-defined are matched as whole strings in the raw text
   (leftmost-longest; llama.cpp takes the longest first over the whole text,
   the same unless two of them overlap) and decode as their text. BOS/EOS/unknown/padding ids, add_bos/add_eos and the
   chat template come from their keys, with llama.cpp's defaults where absent.
   Every type, count, length and id is checked (a key out of range is an
   error, where llama.cpp warns); an unsupported model or pre name is an error
   naming it. g may be freed afterwards. Call lisa_tokenizer_free(), also
   after a failure. */
LISADEF lisa_result lisa_tokenizer_load_gguf_metadata(lisa_tokenizer *t, const lisa_gguf *g,
                                                      const lisa_allocator *a, lisa_error *err);
#ifndef LISA_NO_STDIO
/* The same from a GGUF file, reading only its metadata. */
LISADEF lisa_result lisa_tokenizer_load_gguf(lisa_tokenizer *t, const char *path, const lisa_allocator *a,
                                             lisa_error *err);
/* The tokenizer.* metadata convert_hf_to_gguf.py writes for a Hugging Face
   byte-level BPE tokenizer (path: a directory holding tokenizer.json,
   optionally tokenizer_config.json and chat_template.jinja, or a
   tokenizer.json file), as a metadata-only GGUF parsed into g, e.g. the
   carry of lisa_model_save_gguf(): tokenizer.ggml.model "gpt2";
   tokenizer.ggml.pre, the name llama.cpp splits as the pre-tokenizer does
   ("gpt-2" for ByteLevel's regex, "smollm" for Digits then ByteLevel,
   "llama-bpe", "qwen2", ...); tokens by id (an id the file leaves out
   "[PADn]"), token_type (int32: 1 normal, 3 control for special added
   tokens and those convert takes for control ones, 4 user-defined for the
   other added tokens), merges ("left right", a space within a part as
   U+0120), bos/eos/unknown/padding_token_id (uint32) where the file or
   tokenizer_config.json names them, add_bos_token (bool, always),
   add_eos_token (only when true), add_space_prefix false and
   tokenizer.chat_template. Errors (LISA_ERR_FORMAT naming the file and the
   part): what lisa_tokenizer_load_hf() refuses, and what a gpt2 GGUF cannot
   say: another model (SentencePiece-style byte_fallback or Metaspace
   vocabularies), ByteLevel's add_prefix_space, a normalizer other than NFC
   (which convert drops too), a pre-tokenizer no name stands for. g owns its
   buffer: call lisa_gguf_free(), also after a failure. */
LISADEF lisa_result lisa_gguf_tokenizer_from_hf(lisa_gguf *g, const char *path, const lisa_allocator *a,
                                                lisa_error *err);
/* Writes the tokenizer a GGUF file carries (its tokenizer.* metadata) as a
   Hugging Face tokenizer, dir/tokenizer.json and dir/tokenizer_config.json,
   each atomically, into the existing directory dir; transformers'
   AutoTokenizer and lisa_tokenizer_load_hf() read them and give the ids
   lisa_tokenizer_load_gguf_metadata() gives. Model "gpt2": byte-level BPE
   with the GGUF's merges, its pre-tokenizer as Split / Digits stages before
   ByteLevel. Model "llama": BPE with byte fallback, merges made from the
   scores (every split of a token into two tokens, ranked by the merged
   token's score), U+2581 for spaces with add_space_prefix's Prepend.
   Control and unknown tokens become special added tokens, user-defined ones
   added tokens. The config holds BOS/EOS/unknown/padding token strings,
   add_bos_token / add_eos_token, the chat template and <arch>.context_length
   as model_max_length when the GGUF has them. Errors: another model
   (LISA_ERR_INVALID, naming it); metadata the GGUF tokenizer loader refuses;
   (two tokens of one text among them); a string that is not valid UTF-8
   or holds a NUL byte, which a tokenizer.json cannot carry (LISA_ERR_FORMAT,
   naming the key and index); LISA_ERR_IO naming the file. Allocates only
   while it runs (g's allocator). */
LISADEF lisa_result lisa_gguf_save_hf_tokenizer(const lisa_gguf *g, const char *dir, lisa_error *err);
#endif

/* ------------------------------------------------------------------------- */
/* Instruction data: prompt/response pairs with loss on the response only     */
/* ------------------------------------------------------------------------- */

/* Two layouts are read:
     JSON Lines, one object per non-empty line: {"prompt": "...", "response": "..."}
     LMFlow text2text: {"type": "text2text", "instances": [{"input": "...", "output": "..."}, ...]}
   Each example becomes the token sequence
     BOS, prompt tokens, response tokens, EOS
   (prompt and response encoded separately, as LMFlow does), trained on as
   inputs x[0..n-2] and targets x[1..n-1] where every target that is a prompt
   token is LISA_IGNORE: the loss covers the response and its EOS only.
   Padding (pack = 0, the default): one example per row of seq positions; the
   rest of the row holds input EOS and target LISA_IGNORE. A sequence longer
   than seq + 1 tokens is cut at the end (n_truncated counts them); one whose
   prompt alone fills the row has nothing left to learn and is skipped
   (n_skipped).
   Packing (pack = 1): whole examples follow each other across rows with no
   gap, an example running on into the next row; attention is not masked
   between examples, so an example may see the tail of the one before it. */
typedef struct lisa_sft_data {
    int *inputs;           /* (n_rows, seq) */
    int *targets;          /* (n_rows, seq), LISA_IGNORE where no loss */
    size_t n_rows;
    int seq;
    size_t n_examples, n_truncated, n_skipped;
    size_t n_counted;      /* targets that carry loss */
    lisa_allocator allocator;
    size_t bytes;
} lisa_sft_data;

/* Reads instruction data from text (either layout) with tokenizer tok.
   `name` labels errors, with the line of JSON Lines input. Call lisa_sft_free(). */
LISADEF lisa_result lisa_sft_load_memory(lisa_sft_data *d, const char *text, size_t len, const char *name,
                                         const lisa_tokenizer *tok, int seq, int pack,
                                         const lisa_allocator *a, lisa_error *err);
/* Each example's prompt and response text, as stored (UTF-8, may hold NULs). */
typedef lisa_result (*lisa_sft_example_fn)(void *user, const char *prompt, size_t prompt_len,
                                           const char *response, size_t response_len, lisa_error *err);
LISADEF lisa_result lisa_sft_for_each(const char *text, size_t len, const char *name, const lisa_allocator *a,
                                      lisa_sft_example_fn fn, void *user, lisa_error *err);
/* Batch `index`: rows index*B .. index*B + B - 1, wrapping, each of seq <= d->seq
   positions (a row's first seq). */
LISADEF void lisa_sft_batch(const lisa_sft_data *d, long long index, int B, int seq, int *inputs,
                            int *targets);
LISADEF void lisa_sft_free(lisa_sft_data *d);
#ifndef LISA_NO_STDIO
LISADEF lisa_result lisa_sft_load(lisa_sft_data *d, const char *path, const lisa_tokenizer *tok, int seq,
                                  int pack, const lisa_allocator *a, lisa_error *err);
#endif

/* ------------------------------------------------------------------------- */
/* Chat: conversations and templates                                          */
/* ------------------------------------------------------------------------- */

/* A conversation is an array of messages. A chat template turns it into the
   one text a chat model was trained on, and says which bytes of that text
   carry loss: each assistant message's content and the end-of-turn marker
   after it (the text between them included, e.g. Llama 2's " " before
   "</s>"), nothing else.

   Built-in templates (lisa_chat_template_find; the models whose real Jinja
   templates each one stands for are in lisa_chat_template_recognize's table):
     chatml    "<|im_start|>ROLE\nCONTENT<|im_end|>\n" per message; generation
               prompt "<|im_start|>assistant\n"; end of turn "<|im_end|>".
               As chatml, no default system message; as smollm2, qwen2,
               qwen2.5 the model's default system message when the
               conversation does not start with one.
     llama2    Llama 2 chat: BOS "[INST] " USER " [/INST]" per user message,
               a first system message as "<<SYS>>\nSYSTEM\n<</SYS>>\n\n" in
               front of the first user message's content, " " ASSISTANT " "
               EOS per answer (user and assistant contents stripped of white
               space); no generation prompt; end of turn EOS ("</s>").
     llama3    Llama 3 Instruct: BOS once, then "<|start_header_id|>ROLE
               <|end_header_id|>\n\n" CONTENT "<|eot_id|>" per message
               (content stripped); generation prompt the assistant header.
               As llama3.1 (Llama 3.1 and 3.3 Instruct), a system message
               always comes first, its text led by "Cutting Knowledge Date:
               December 2023\nToday Date: 26 Jul 2024\n\n".
     zephyr    Zephyr / TinyLlama chat: "<|ROLE|>\n" CONTENT EOS "\n" per
               message; generation prompt "<|assistant|>\n".
     mistral   Mistral Instruct v0.2 / Mixtral: BOS, "[INST] " USER " [/INST]"
               per user message, ASSISTANT EOS per answer (mistral-v0.1:
               ASSISTANT EOS " "); no system messages; no generation prompt.
     plain     This header's prompt/response convention: BOS, then every
               message's content back to back with nothing between them, each
               assistant message followed by EOS. No roles are written; loss
               on each assistant content and its EOS. One user message and one
               answer give BOS PROMPT RESPONSE EOS.
   Where the model's template refuses a conversation, so does the render:
   llama2 and mistral need user and assistant messages to alternate starting
   with a user message (after llama2's optional first system message);
   mistral has no system role; a system message other than the first is an
   error for llama2 (its template would drop it, or refuse the conversation
   for roles that do not alternate). llama3 and llama3.1 render a later
   system message as a message of its own, in its place, as their templates
   do (llama3.1's date lines lead only the first system message). Rendered
   text equals transformers' apply_chat_template(
   messages, tokenize=False, add_generation_prompt=...) for each template's
   real Jinja text (tests/test_chat.c checks it on tools/make_chat_fixtures.py's
   renderings). "Stripped" is Python's str.strip(): Unicode white space. */
typedef enum lisa_chat_role {
    LISA_CHAT_SYSTEM = 0,
    LISA_CHAT_USER,
    LISA_CHAT_ASSISTANT
} lisa_chat_role;

typedef struct lisa_chat_message {
    lisa_chat_role role;
    const char *content;   /* UTF-8, content_len bytes (need not be NUL-terminated) */
    size_t content_len;
} lisa_chat_message;

typedef enum lisa_chat_style {
    LISA_CHAT_PLAIN = 0,
    LISA_CHAT_CHATML,
    LISA_CHAT_LLAMA2,
    LISA_CHAT_LLAMA3,
    LISA_CHAT_ZEPHYR,
    LISA_CHAT_MISTRAL
} lisa_chat_style;

/* A template: how to render, and the texts that go with a model. The library's
   templates are constant; copy one to change its default system message. */
typedef struct lisa_chat_template {
    const char *name;            /* "chatml", "smollm2", ... */
    lisa_chat_style style;
    const char *default_system;  /* rendered as the system message when the conversation has none; NULL: none */
    const char *system_prefix;   /* llama3 style: a system message is always rendered, this text leading it; NULL: none */
    const char *bos, *eos;       /* the texts of the template's bos_token and eos_token ("" when unused) */
    const char *end_of_turn;     /* the text that ends an assistant turn: "<|im_end|>", "<|eot_id|>", eos */
    int space_after_eos;         /* mistral-v0.1: " " after each answer's EOS */
    const char *jinja;           /* the real Jinja template this one stands for; NULL for plain */
} lisa_chat_template;

/* The template called name (a built-in: chatml, llama2, llama3, zephyr,
   mistral, plain; or a model's variant: smollm2, qwen2, qwen2.5, llama3.1,
   mistral-v0.1), or NULL. TinyLlama Chat's template is zephyr. */
LISADEF const lisa_chat_template *lisa_chat_template_find(const char *name);
/* "chatml, llama2, llama3, zephyr, mistral, plain": the built-ins, for messages. */
LISADEF const char *lisa_chat_template_names(void);

/* The template a model's own Jinja chat template text stands for
   (tokenizer_config.json's chat_template, chat_template.jinja, or GGUF
   tokenizer.chat_template): the text, after turning "\r\n" into "\n" and
   dropping white space at both ends, must be exactly one of the known
   models' templates, each of which renders as its lisa_chat_template does
   (with that model's default system message). There is no Jinja
   interpreter: anything else is LISA_ERR_FORMAT naming `name` and the
   built-in templates to choose from instead. */
LISADEF lisa_result lisa_chat_template_recognize(const lisa_chat_template **out, const char *jinja, size_t len,
                                                 const char *name, lisa_error *err);

/* A byte range [begin, end) of a rendered text. */
typedef struct lisa_chat_span {
    size_t begin, end;
} lisa_chat_span;

/* A rendered conversation. Call lisa_chat_text_free(). */
typedef struct lisa_chat_text {
    char *text;              /* (len + 1), NUL-terminated */
    size_t len;
    lisa_chat_span *loss;    /* (n_loss), in order: what carries loss */
    int n_loss;
    lisa_chat_span *bos;     /* (n_bos): where the bos_token text was written */
    int n_bos;
    lisa_chat_span *eos;     /* (n_eos): where the eos_token text was written */
    int n_eos;
    lisa_allocator allocator;
    size_t bytes;
} lisa_chat_text;

/* Renders n messages with template t; add_generation_prompt appends what
   opens an assistant turn (where the template has it). bos, eos: the
   texts of bos_token and eos_token, NULL for the template's own (t->bos,
   t->eos). An empty conversation, a conversation the template refuses (see
   above), or a role outside lisa_chat_role is LISA_ERR_INVALID. */
LISADEF lisa_result lisa_chat_render(lisa_chat_text *out, const lisa_chat_template *t, const lisa_chat_message *m,
                                     int n, int add_generation_prompt, const char *bos, const char *eos,
                                     const lisa_allocator *a, lisa_error *err);
LISADEF void lisa_chat_text_free(lisa_chat_text *c);

/* A conversation's tokens. Call lisa_chat_tokens_free(). */
typedef struct lisa_chat_tokens {
    int *ids;                /* (n) */
    unsigned char *loss;     /* (n): 1 for a token that carries loss (as a target) */
    size_t n;
    lisa_allocator allocator;
    size_t bytes;
} lisa_chat_tokens;

/* Renders the conversation once and encodes the whole text once with
   lisa_tokenizer_encode_offsets (no BOS or EOS added: the template writes
   them); a token carries loss when any of its bytes lies in a loss span (a
   token that merges the space before an answer with its first word does).
   Tokenizers whose special tokens are plain text (bytes, llama2.c): the
   text is encoded in pieces between the places where the template wrote
   bos_token and eos_token, which become the tokenizer's bos_id and eos_id
   (a llama2.c vocabulary's "<s>" is not a piece of text); every other marker
   ("<|im_end|>", "[INST]") is encoded as text, byte by byte with the bytes
   tokenizer. Each piece gets llama2.c's dummy-prefix space, as
   SentencePiece gives text after a special token. Other tokenizers match
   special tokens in the text themselves, so bos_token and eos_token are
   their BOS and EOS pieces (t->bos, t->eos where they have none). */
LISADEF lisa_result lisa_chat_encode(lisa_chat_tokens *out, const lisa_chat_template *t, const lisa_tokenizer *tok,
                                     const lisa_chat_message *m, int n, int add_generation_prompt,
                                     const lisa_allocator *a, lisa_error *err);
LISADEF void lisa_chat_tokens_free(lisa_chat_tokens *c);

/* The token that ends an assistant turn, where generation stops: the id of
   t->end_of_turn (the tokenizer's eos_id where that is the template's EOS),
   or -1 when the tokenizer has no such single token (chatml with the bytes
   tokenizer). For `generate --chat`: lisa_chat_encode() of one user message
   with add_generation_prompt 1 gives the prompt's ids (with the template's
   default system message), then generate until this id. */
LISADEF int lisa_chat_end_of_turn_id(const lisa_chat_template *t, const lisa_tokenizer *tok);

/* --- instruction data as conversations ------------------------------------

   Besides lisa_sft_load_memory()'s two layouts, conversations:
     JSON Lines: {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
                 (a line with "prompt" is a prompt/response pair, "messages" or not)
     LMFlow:     {"type": "conversation", "instances": [{"system": "...", "messages": [...]}, ...]}
   LMFlow's "system" (a string, may be empty: then no system message) becomes
   the first message; "conversation_id" is ignored; "tools" must be absent,
   null or empty (tool use is not supported), as must any role other than
   system, user and assistant (LMFlow's "function" and "observation" too).
   Every message needs a string "content"; a conversation needs a message
   from the assistant. Errors name the file, the line (JSON Lines) or the
   instance (LMFlow), the message and the problem. */

/* Each example as a conversation: a prompt/response pair as one user message
   and one answer. */
typedef lisa_result (*lisa_sft_chat_fn)(void *user, const lisa_chat_message *m, int n, lisa_error *err);
LISADEF lisa_result lisa_sft_for_each_chat(const char *text, size_t len, const char *name, const lisa_allocator *a,
                                           lisa_sft_chat_fn fn, void *user, lisa_error *err);
/* lisa_sft_load_memory() with a chat template: every example (a prompt/
   response pair as a one-turn conversation) encoded by lisa_chat_encode(),
   trained on where it carries loss, then padded, packed, cut or skipped as
   lisa_sft_load_memory() says. tmpl NULL: lisa_sft_load_memory() itself,
   and conversations are an error that asks for a chat template. */
LISADEF lisa_result lisa_sft_load_chat_memory(lisa_sft_data *d, const char *text, size_t len, const char *name,
                                              const lisa_tokenizer *tok, const lisa_chat_template *tmpl, int seq,
                                              int pack, const lisa_allocator *a, lisa_error *err);
#ifndef LISA_NO_STDIO
LISADEF lisa_result lisa_sft_load_chat(lisa_sft_data *d, const char *path, const lisa_tokenizer *tok,
                                       const lisa_chat_template *tmpl, int seq, int pack, const lisa_allocator *a,
                                       lisa_error *err);
#endif

#ifdef __cplusplus
}
#endif
#endif /* LISA_H */

/* ========================================================================= */
/*                              IMPLEMENTATION                                */
/* ========================================================================= */
#ifdef LISA_IMPLEMENTATION
#ifndef LISA_IMPLEMENTATION_INCLUDED
#define LISA_IMPLEMENTATION_INCLUDED

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>   /* vsnprintf; FILE only without LISA_NO_STDIO */
#include <stdlib.h>
#include <string.h>

#ifndef LISA_MALLOC
#define LISA_MALLOC(n) malloc(n)
#define LISA_FREE(p) free(p)
#endif
#ifndef LISA_ASSERT
#include <assert.h>
#define LISA_ASSERT(x) assert(x)
#endif

/* Pragmas that do nothing without OpenMP. */
#ifdef _OPENMP
#define LISA__PRAGMA(x) _Pragma(#x)
#else
#define LISA__PRAGMA(x)
#endif
/* Threads only for loops with enough work (multiply-adds or elements) to pay
   for starting them: small models run faster on one, and a busy machine does
   not stall every tiny loop on a descheduled thread. */
#ifndef LISA_PARALLEL_MIN_WORK
#define LISA_PARALLEL_MIN_WORK 65536.0
#endif
#define LISA__PARALLEL_FOR_IF(work) LISA__PRAGMA(omp parallel for schedule(static) if ((work) >= LISA_PARALLEL_MIN_WORK))

/* Pointers that do not overlap what else the function reads or writes. */
#if defined(__GNUC__) || defined(__clang__)
#define LISA__RESTRICT __restrict__
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 199901L
#define LISA__RESTRICT restrict
#else
#define LISA__RESTRICT
#endif

#define LISA__MIN(a, b) ((a) < (b) ? (a) : (b))
#define LISA__MAX(a, b) ((a) > (b) ? (a) : (b))

/* ------------------------------------------------------------------------- */
/* Basics                                                                     */
/* ------------------------------------------------------------------------- */

LISADEF const char *lisa_result_string(lisa_result r) {
    switch (r) {
    case LISA_OK: return "ok";
    case LISA_ERR_NOMEM: return "out of memory";
    case LISA_ERR_INVALID: return "invalid argument";
    case LISA_ERR_IO: return "input/output error";
    case LISA_ERR_FORMAT: return "malformed file";
    case LISA_ERR_DEVICE: return "GPU error";
    }
    return "unknown result";
}

LISADEF lisa_result lisa_error_set(lisa_error *err, lisa_result code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

LISADEF void lisa_error_clear(lisa_error *err) {
    if (err) {
        err->code = LISA_OK;
        err->message[0] = 0;
    }
}

/* The library's own short names for them. */
#define lisa__fail lisa_error_set
#define lisa__ok lisa_error_clear

/* Every allocation goes through here, so each object can count its bytes. */
static void *lisa__alloc(const lisa_allocator *a, size_t size, size_t *counter) {
    void *p;
    if (size == 0) return NULL;
    p = a->alloc ? a->alloc(a->user, size) : LISA_MALLOC(size);
    if (p) *counter += size;
    return p;
}

static void lisa__free(const lisa_allocator *a, void *p, size_t size, size_t *counter) {
    if (!p) return;
    if (a->free) a->free(a->user, p, size);
    else LISA_FREE(p);
    *counter -= size;
}

static lisa_allocator lisa__allocator_or_default(const lisa_allocator *a) {
    lisa_allocator d;
    if (a && a->alloc && a->free) return *a;
    memset(&d, 0, sizeof d);
    return d;
}

LISADEF void lisa_rng_seed(lisa_rng *r, uint64_t seed) { r->state = seed; }

LISADEF uint64_t lisa_rng_next(lisa_rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

LISADEF float lisa_rng_uniform(lisa_rng *r) {
    return (float)(lisa_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

LISADEF float lisa_rng_normal(lisa_rng *r) {
    /* Box-Muller; 1 - u keeps the logarithm finite. */
    double u1 = 1.0 - (double)(lisa_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    double u2 = (double)(lisa_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

LISADEF size_t lisa_tensor_numel(const lisa_tensor *t) {
    size_t n = 1;
    int i;
    for (i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

/* ------------------------------------------------------------------------- */
/* Ops                                                                        */
/* ------------------------------------------------------------------------- */

LISADEF void lisa_embedding_forward(float *out, const int *tokens, const float *table, int n, int dim) {
    int i;
    LISA__PARALLEL_FOR_IF((double)n * dim)
    for (i = 0; i < n; i++)
        memcpy(out + (size_t)i * dim, table + (size_t)tokens[i] * dim, (size_t)dim * sizeof(float));
}

LISADEF void lisa_embedding_backward(float *dtable, const float *dout, const int *tokens, int n, int dim) {
    int i, j;
    /* Serial: two positions may hold the same token. */
    for (i = 0; i < n; i++) {
        float *d = dtable + (size_t)tokens[i] * dim;
        const float *g = dout + (size_t)i * dim;
        for (j = 0; j < dim; j++) d[j] += g[j];
    }
}

LISADEF void lisa_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w,
                                  int n, int dim, float eps) {
    int i;
    LISA__PARALLEL_FOR_IF((double)n * dim)
    for (i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        float *oi = out + (size_t)i * dim;
        double ss = 0.0;
        float r;
        int j;
        for (j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
        r = (float)(1.0 / sqrt(ss / dim + eps));
        for (j = 0; j < dim; j++) oi[j] = xi[j] * r * w[j];
        rstd[i] = r;
    }
}

LISADEF void lisa_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                                   const float *w, const float *rstd, int n, int dim) {
    int i, j;
    /* dx_j = r w_j g_j - x_j r^3 / dim * sum_k g_k w_k x_k */
    LISA__PARALLEL_FOR_IF((double)n * dim)
    for (i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim, *gi = dout + (size_t)i * dim;
        float *dxi = dx + (size_t)i * dim;
        float r = rstd[i], c;
        double dot = 0.0;
        int k;
        for (k = 0; k < dim; k++) dot += (double)gi[k] * w[k] * xi[k];
        c = (float)(dot * r * r * r / dim);
        for (k = 0; k < dim; k++) dxi[k] += r * w[k] * gi[k] - xi[k] * c;
    }
    if (dw) {
        /* Rows in order, so the sum is the same for any thread count. */
        for (i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * dim, *gi = dout + (size_t)i * dim;
            float r = rstd[i];
            for (j = 0; j < dim; j++) dw[j] += gi[j] * xi[j] * r;
        }
    }
}

/* --- matrix products ------------------------------------------------------

   All three products of a linear layer (forward, input gradient, weight
   gradient) run through one driver, lisa__gemm: C (M, N) = or += A (M, K) B (K, N),
   A and B read through strides (a transposed operand needs no copy of its
   own; packing reorders it anyway). It follows
   the BLIS layout (five loops around a microkernel):
     threads   each takes a range of C's rows or of its columns;
     jc        NC columns at a time;
     pc        KC values of k at a time: B's KC x NC panel is packed into
               NR-wide strips (it stays in L2/L3);
     ic        MC rows at a time: A's MC x KC block is packed into MR-tall
               strips (it stays in L2);
     jr, ir    the microkernel keeps an MR x NR tile of C in registers while k
               runs through one strip of each (the B strip stays in L1).
   Each element of C is one chain of multiply-adds, k ascending, starting from
   C's old value (or zero); a k-slice stores its partial sum in C and the next
   one continues from it. Tiles, blocks and threads only decide who computes
   an element, never the order of its sum: results are bitwise the same for
   any thread count or row count (generation's one-row products give the full
   forward's bits), which gradient checkpointing relies on too.

   The microkernel is chosen from the target: AVX-512 (12 x 32, 24 of the 32
   zmm registers hold the tile), AVX2 with FMA (6 x 16, 12 of 16 ymm), else
   portable C (4 x 16; GCC/clang vector types unless LISA_NO_VECTOR_EXTENSIONS). */

/* a b + c, fused where the target fuses it (as the matrix kernel does). */
#ifdef __FP_FAST_FMAF
#define LISA__FMAF(a, b, c) fmaf(a, b, c)
#else
#define LISA__FMAF(a, b, c) ((a) * (b) + (c))
#endif

#if !defined(LISA_NO_VECTOR_EXTENSIONS) && defined(__AVX512F__)
#define LISA__GEMM_AVX512
#elif !defined(LISA_NO_VECTOR_EXTENSIONS) && defined(__AVX2__) && defined(__FMA__)
#define LISA__GEMM_AVX2
#endif

#if defined(LISA__GEMM_AVX512) || defined(LISA__GEMM_AVX2)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(LISA__GEMM_AVX512)
#define LISA__MR 12 /* rows of a register tile */
#define LISA__NR 32 /* columns of a register tile */
#elif defined(LISA__GEMM_AVX2)
#define LISA__MR 6
#define LISA__NR 16
#else
#define LISA__MR 4
#define LISA__NR 16
#endif
#ifndef LISA__KC
#define LISA__KC 256  /* k-slice: a B strip is KC x NR floats (32 KB with AVX-512), for L1 */
#endif
#ifndef LISA__MC
#define LISA__MC (16 * LISA__MR) /* rows of a packed A block (192 KB with AVX-512), for L2 */
#endif
#ifndef LISA__NC
#define LISA__NC (32 * LISA__NR) /* columns of a packed B panel */
#endif

/* tile (MR x NR, rows ldc apart) = (load_c ? tile : 0) + ap (K x MR) times
   bp (K x NR), both packed k-major. */
#if defined(LISA__GEMM_AVX512)
#define LISA__ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define LISA__DECLARE(i) __m512 c##i##a, c##i##b;
#define LISA__LOAD(i) c##i##a = _mm512_loadu_ps(c + (size_t)(i) * ldc); c##i##b = _mm512_loadu_ps(c + (size_t)(i) * ldc + 16);
#define LISA__ZERO(i) c##i##a = _mm512_setzero_ps(); c##i##b = c##i##a;
#define LISA__FMA(i) { __m512 av = _mm512_set1_ps(ap[i]); \
    c##i##a = _mm512_fmadd_ps(av, b0, c##i##a); c##i##b = _mm512_fmadd_ps(av, b1, c##i##b); }
#define LISA__STORE(i) _mm512_storeu_ps(c + (size_t)(i) * ldc, c##i##a); _mm512_storeu_ps(c + (size_t)(i) * ldc + 16, c##i##b);
static void lisa__micro(int K, const float *ap, const float *bp, float *c, size_t ldc, int load_c) {
    LISA__ROWS(LISA__DECLARE)
    int k;
    if (load_c) {
        LISA__ROWS(LISA__LOAD)
    } else {
        LISA__ROWS(LISA__ZERO)
    }
    for (k = 0; k < K; k++, ap += LISA__MR, bp += LISA__NR) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
        LISA__ROWS(LISA__FMA)
    }
    LISA__ROWS(LISA__STORE)
}
#elif defined(LISA__GEMM_AVX2)
#define LISA__ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define LISA__DECLARE(i) __m256 c##i##a, c##i##b;
#define LISA__LOAD(i) c##i##a = _mm256_loadu_ps(c + (size_t)(i) * ldc); c##i##b = _mm256_loadu_ps(c + (size_t)(i) * ldc + 8);
#define LISA__ZERO(i) c##i##a = _mm256_setzero_ps(); c##i##b = c##i##a;
#define LISA__FMA(i) { __m256 av = _mm256_broadcast_ss(ap + (i)); \
    c##i##a = _mm256_fmadd_ps(av, b0, c##i##a); c##i##b = _mm256_fmadd_ps(av, b1, c##i##b); }
#define LISA__STORE(i) _mm256_storeu_ps(c + (size_t)(i) * ldc, c##i##a); _mm256_storeu_ps(c + (size_t)(i) * ldc + 8, c##i##b);
static void lisa__micro(int K, const float *ap, const float *bp, float *c, size_t ldc, int load_c) {
    LISA__ROWS(LISA__DECLARE)
    int k;
    if (load_c) {
        LISA__ROWS(LISA__LOAD)
    } else {
        LISA__ROWS(LISA__ZERO)
    }
    for (k = 0; k < K; k++, ap += LISA__MR, bp += LISA__NR) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
        LISA__ROWS(LISA__FMA)
    }
    LISA__ROWS(LISA__STORE)
}
#elif (defined(__GNUC__) || defined(__clang__)) && !defined(LISA_NO_VECTOR_EXTENSIONS)
/* GCC and clang keep these four accumulators in SIMD registers; a plain
   array of them would live on the stack. Same arithmetic as the loops below. */
typedef float lisa__vec __attribute__((vector_size(LISA__NR * sizeof(float))));
static void lisa__micro(int K, const float *ap, const float *bp, float *c, size_t ldc, int load_c) {
    lisa__vec acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0}, bk;
    int k;
    if (load_c) {
        memcpy(&acc0, c, sizeof acc0);
        memcpy(&acc1, c + ldc, sizeof acc1);
        memcpy(&acc2, c + 2 * ldc, sizeof acc2);
        memcpy(&acc3, c + 3 * ldc, sizeof acc3);
    }
    for (k = 0; k < K; k++, ap += LISA__MR, bp += LISA__NR) {
        memcpy(&bk, bp, sizeof bk);
        acc0 += ap[0] * bk;
        acc1 += ap[1] * bk;
        acc2 += ap[2] * bk;
        acc3 += ap[3] * bk;
    }
    memcpy(c, &acc0, sizeof acc0);
    memcpy(c + ldc, &acc1, sizeof acc1);
    memcpy(c + 2 * ldc, &acc2, sizeof acc2);
    memcpy(c + 3 * ldc, &acc3, sizeof acc3);
}
#else
static void lisa__micro(int K, const float *ap, const float *bp, float *c, size_t ldc, int load_c) {
    float acc[LISA__MR][LISA__NR];
    int r, j, k;
    for (r = 0; r < LISA__MR; r++)
        for (j = 0; j < LISA__NR; j++) acc[r][j] = load_c ? c[(size_t)r * ldc + j] : 0.0f;
    for (k = 0; k < K; k++, ap += LISA__MR, bp += LISA__NR)
        for (r = 0; r < LISA__MR; r++)
            for (j = 0; j < LISA__NR; j++) acc[r][j] += ap[r] * bp[j];
    for (r = 0; r < LISA__MR; r++)
        for (j = 0; j < LISA__NR; j++) c[(size_t)r * ldc + j] = acc[r][j];
}
#endif

/* A tile at C's edge (mr < MR rows or nr < NR columns): the same microkernel
   on a copy, so its elements get the same arithmetic as any other. */
static void lisa__tile(float *c, size_t ldc, int mr, int nr, int K, const float *ap, const float *bp, int load_c) {
    float t[LISA__MR * LISA__NR];
    int r, j;
    if (mr == LISA__MR && nr == LISA__NR) {
        lisa__micro(K, ap, bp, c, ldc, load_c);
        return;
    }
    if (load_c)
        for (r = 0; r < mr; r++)
            for (j = 0; j < nr; j++) t[r * LISA__NR + j] = c[(size_t)r * ldc + j];
    lisa__micro(K, ap, bp, t, LISA__NR, load_c);
    for (r = 0; r < mr; r++)
        for (j = 0; j < nr; j++) c[(size_t)r * ldc + j] = t[r * LISA__NR + j];
}

#if defined(LISA__GEMM_AVX512) || defined(LISA__GEMM_AVX2)
/* r[k] (lane j) = r[j] (lane k) for j, k < 8: an 8 x 8 block transposed in
   registers. */
static void lisa__transpose8_regs(__m256 *r) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* dst[k * ldd + j] = src[j * lds + k] for j, k < 8 (forward's weights are
   packed this way: k runs along their rows). */
static void lisa__transpose8(float *dst, size_t ldd, const float *src, size_t lds) {
    __m256 r[8];
    int i;
    for (i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (size_t)i * lds);
    lisa__transpose8_regs(r);
    for (i = 0; i < 8; i++) _mm256_storeu_ps(dst + (size_t)i * ldd, r[i]);
}

/* The same for j < rest (4..7) rows of src: each of the eight rows of dst
   gets rest floats. Every row but the last is stored 8 wide, the floats past
   rest landing where the next row (or the caller's later pass) writes after;
   the last is stored rest wide, so nothing past dst's block is touched. */
static void lisa__transpose8_rest(float *dst, size_t ldd, const float *src, size_t lds, int rest) {
    static const int lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    __m256 r[8];
    int i;
    for (i = 0; i < 8; i++) r[i] = i < rest ? _mm256_loadu_ps(src + (size_t)i * lds) : _mm256_setzero_ps();
    lisa__transpose8_regs(r);
    for (i = 0; i < 7; i++) _mm256_storeu_ps(dst + (size_t)i * ldd, r[i]);
    _mm256_maskstore_ps(dst + 7 * ldd, _mm256_loadu_si256((const __m256i *)(lanes + 8 - rest)), r[7]);
}
#endif

/* dst[k * width + j] = src[j * lds + k] for j < width, k < kc. */
static void lisa__pack_transposed(float *dst, int width, const float *src, size_t lds, int kc) {
    int j, k, j_blocked = 0, k_blocked = 0;
#if defined(LISA__GEMM_AVX512) || defined(LISA__GEMM_AVX2)
    j_blocked = width / 8 * 8;
    k_blocked = kc / 8 * 8;
    if (width - j_blocked >= 4) { /* AVX2's 6-wide strips, AVX-512's last 4 of 12: first, as they spill */
        for (k = 0; k < k_blocked; k += 8)
            lisa__transpose8_rest(dst + (size_t)k * width + j_blocked, (size_t)width,
                                  src + (size_t)j_blocked * lds + k, lds, width - j_blocked);
    }
    for (k = 0; k < k_blocked; k += 8)
        for (j = 0; j < j_blocked; j += 8)
            lisa__transpose8(dst + (size_t)k * width + j, (size_t)width, src + (size_t)j * lds + k, lds);
    if (width - j_blocked >= 4) j_blocked = width;
#endif
    for (j = 0; j < width; j++) /* what the 8 x 8 blocks left */
        for (k = j < j_blocked ? k_blocked : 0; k < kc; k++) dst[(size_t)k * width + j] = src[(size_t)j * lds + k];
}

/* A's rows 0..mc-1, k 0..kc-1 (A(r, k) = a[r * ars + k * aks]) into MR-tall
   strips, each kc x MR k-major; rows past mc are zero. */
static void lisa__pack_a(float *dst, const float *a, size_t ars, size_t aks, int mc, int kc) {
    int i, r, k;
    for (i = 0; i < mc; i += LISA__MR, dst += (size_t)kc * LISA__MR) {
        const float *src = a + (size_t)i * ars;
        int mr = LISA__MIN(LISA__MR, mc - i);
        if (mr == LISA__MR && ars == 1)
            for (k = 0; k < kc; k++) memcpy(dst + (size_t)k * LISA__MR, src + (size_t)k * aks, LISA__MR * sizeof(float));
        else if (mr == LISA__MR && aks == 1)
            lisa__pack_transposed(dst, LISA__MR, src, ars, kc);
        else
            for (k = 0; k < kc; k++)
                for (r = 0; r < LISA__MR; r++)
                    dst[(size_t)k * LISA__MR + r] = r < mr ? src[(size_t)r * ars + (size_t)k * aks] : 0.0f;
    }
}

/* B's k 0..kc-1, columns 0..nc-1 (B(k, j) = b[k * bks + j * bjs]) into
   NR-wide strips, each kc x NR k-major; columns past nc are zero. */
static void lisa__pack_b(float *dst, const float *b, size_t bks, size_t bjs, int kc, int nc) {
    int j, jj, k;
    for (j = 0; j < nc; j += LISA__NR, dst += (size_t)kc * LISA__NR) {
        const float *src = b + (size_t)j * bjs;
        int nr = LISA__MIN(LISA__NR, nc - j);
        if (nr == LISA__NR && bjs == 1)
            for (k = 0; k < kc; k++) memcpy(dst + (size_t)k * LISA__NR, src + (size_t)k * bks, LISA__NR * sizeof(float));
        else if (nr == LISA__NR && bks == 1)
            lisa__pack_transposed(dst, LISA__NR, src, bjs, kc);
        else
            for (k = 0; k < kc; k++)
                for (jj = 0; jj < LISA__NR; jj++)
                    dst[(size_t)k * LISA__NR + jj] = jj < nr ? src[(size_t)jj * bjs + (size_t)k * bks] : 0.0f;
    }
}

/* t (NR) += a (K, a[k * aks]) times bp (K x NR, packed k-major): row 0 of
   lisa__micro's tile, with the same multiply-add per element and k. */
#if defined(LISA__GEMM_AVX512)
static void lisa__micro_row(float *t, const float *a, size_t aks, const float *bp, int K) {
    __m512 c0 = _mm512_loadu_ps(t), c1 = _mm512_loadu_ps(t + 16);
    int k;
    for (k = 0; k < K; k++, bp += LISA__NR) {
        __m512 av = _mm512_set1_ps(a[(size_t)k * aks]);
        c0 = _mm512_fmadd_ps(av, _mm512_loadu_ps(bp), c0);
        c1 = _mm512_fmadd_ps(av, _mm512_loadu_ps(bp + 16), c1);
    }
    _mm512_storeu_ps(t, c0);
    _mm512_storeu_ps(t + 16, c1);
}
#elif defined(LISA__GEMM_AVX2)
static void lisa__micro_row(float *t, const float *a, size_t aks, const float *bp, int K) {
    __m256 c0 = _mm256_loadu_ps(t), c1 = _mm256_loadu_ps(t + 8);
    int k;
    for (k = 0; k < K; k++, bp += LISA__NR) {
        __m256 av = _mm256_broadcast_ss(a + (size_t)k * aks);
        c0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp), c0);
        c1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp + 8), c1);
    }
    _mm256_storeu_ps(t, c0);
    _mm256_storeu_ps(t + 8, c1);
}
#elif (defined(__GNUC__) || defined(__clang__)) && !defined(LISA_NO_VECTOR_EXTENSIONS)
static void lisa__micro_row(float *t, const float *a, size_t aks, const float *bp, int K) {
    lisa__vec acc, bk;
    int k;
    memcpy(&acc, t, sizeof acc);
    for (k = 0; k < K; k++, bp += LISA__NR) {
        memcpy(&bk, bp, sizeof bk);
        acc += a[(size_t)k * aks] * bk;
    }
    memcpy(t, &acc, sizeof acc);
}
#else
static void lisa__micro_row(float *t, const float *a, size_t aks, const float *bp, int K) {
    int j, k;
    for (k = 0; k < K; k++, bp += LISA__NR)
        for (j = 0; j < LISA__NR; j++) t[j] += a[(size_t)k * aks] * bp[j];
}
#endif

typedef struct lisa__gemm_args {
    float *c;
    size_t ldc, ars, aks, bks, bjs;
    const float *a, *b;
    int M, N, K, accumulate;
} lisa__gemm_args;

/* C's rows i0..i1-1, columns j0..j1-1, with packing buffers for mc x KC of A
   and KC x nc of B. */
static void lisa__gemm_part(const lisa__gemm_args *g, int i0, int i1, int j0, int j1, float *apack, int mc_max,
                            float *bpack, int nc_max) {
    int jc, pc, ic, jr, ir;
    for (jc = j0; jc < j1; jc += nc_max) {
        int nc = LISA__MIN(nc_max, j1 - jc);
        for (pc = 0; pc < g->K; pc += LISA__KC) {
            int kc = LISA__MIN(LISA__KC, g->K - pc), load_c = g->accumulate || pc > 0;
            lisa__pack_b(bpack, g->b + (size_t)pc * g->bks + (size_t)jc * g->bjs, g->bks, g->bjs, kc, nc);
            for (ic = i0; ic < i1; ic += mc_max) {
                int mc = LISA__MIN(mc_max, i1 - ic);
                lisa__pack_a(apack, g->a + (size_t)ic * g->ars + (size_t)pc * g->aks, g->ars, g->aks, mc, kc);
                for (jr = 0; jr < nc; jr += LISA__NR)
                    for (ir = 0; ir < mc; ir += LISA__MR)
                        lisa__tile(g->c + (size_t)(ic + ir) * g->ldc + jc + jr, g->ldc, LISA__MIN(LISA__MR, mc - ir),
                                   LISA__MIN(LISA__NR, nc - jr), kc, apack + (size_t)ir * kc,
                                   bpack + (size_t)jr * kc, load_c);
            }
        }
    }
}

#if defined(LISA__GEMM_AVX512) || defined(LISA__GEMM_AVX2)
/* t (NR) += a (K, a[k * aks]) times B's NR columns held as rows, B(k, j) =
   w[j * lds + k] (forward's weights): the sums lisa__micro_row gives the
   packed strip, one multiply-add per element and k in k's order, but each 8 x
   8 block is transposed in registers instead of through a packing buffer, so
   the weights stream from memory straight into the multiply-adds
   (generation's matrix-vector products are bound by that stream). 256-bit
   lanes compute what the 512-bit ones would: each lane's fused multiply-add
   is exact before its one rounding. */
static void lisa__micro_row_rows(float *t, const float *a, size_t aks, const float *w, size_t lds, int K) {
    __m256 acc[LISA__NR / 8], r[8];
    int g, i, k, k8 = K / 8 * 8;
    for (g = 0; g < LISA__NR / 8; g++) acc[g] = _mm256_loadu_ps(t + 8 * g);
    for (k = 0; k < k8; k += 8) {
        __m256 av[8];
        for (i = 0; i < 8; i++) av[i] = _mm256_broadcast_ss(a + (size_t)(k + i) * aks);
        for (g = 0; g < LISA__NR / 8; g++) {
            const float *src = w + (size_t)(8 * g) * lds + k;
            for (i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (size_t)i * lds);
            lisa__transpose8_regs(r);
            for (i = 0; i < 8; i++) acc[g] = _mm256_fmadd_ps(av[i], r[i], acc[g]);
        }
    }
    for (g = 0; g < LISA__NR / 8; g++) _mm256_storeu_ps(t + 8 * g, acc[g]);
    for (; k < K; k++) /* past the last whole block: the same fused multiply-add (FMA is there), lane by lane */
        for (i = 0; i < LISA__NR; i++) t[i] = fmaf(a[(size_t)k * aks], w[(size_t)i * lds + k], t[i]);
}
#endif

/* C's only row (M == 1: generation's matrix-vector products), columns
   j0..j1-1: the sums lisa__gemm_part gives row 0, without packing A or
   multiplying the MR - 1 rows of zeros a packed one-row A would have. A whole
   strip of B held as rows goes through lisa__micro_row_rows; any other is
   packed a k-slice at a time into a buffer that stays in L1, so B streams
   from memory once. */
static void lisa__gemm_row(const lisa__gemm_args *g, int j0, int j1) {
    float bpack[LISA__KC * LISA__NR], t[LISA__NR];
    int jc, pc, jj;
    for (jc = j0; jc < j1; jc += LISA__NR) {
        int nr = LISA__MIN(LISA__NR, j1 - jc);
        float *c = g->c + jc;
        for (jj = 0; jj < LISA__NR; jj++) t[jj] = g->accumulate && jj < nr ? c[jj] : 0.0f;
#if defined(LISA__GEMM_AVX512) || defined(LISA__GEMM_AVX2)
        if (nr == LISA__NR && g->bks == 1)
            lisa__micro_row_rows(t, g->a, g->aks, g->b + (size_t)jc * g->bjs, g->bjs, g->K);
        else /* the packed k-slices below */
#endif
        for (pc = 0; pc < g->K; pc += LISA__KC) {
            int kc = LISA__MIN(LISA__KC, g->K - pc);
            lisa__pack_b(bpack, g->b + (size_t)pc * g->bks + (size_t)jc * g->bjs, g->bks, g->bjs, kc, nr);
            lisa__micro_row(t, g->a + (size_t)pc * g->aks, g->aks, bpack, kc);
        }
        for (jj = 0; jj < nr; jj++) c[jj] = t[jj];
    }
}

/* Packing buffers' size in floats, always the largest a product can use,
   (MC + NC) x KC, plus room to align them to 64 bytes: the same size every
   call lets malloc hand back the block it was just given instead of mapping
   (and page-faulting) fresh memory for each size; pages a small product never
   touches cost nothing. */
#define LISA__GEMM_PACK_FLOATS ((size_t)(LISA__MC + LISA__NC) * LISA__KC + 16)

/* C's rows i0..i1-1, columns j0..j1-1 on the calling thread, packing into
   pack (LISA__GEMM_PACK_FLOATS floats) or, where that is NULL, one-tile
   buffers on the stack, which do the same sums. */
static void lisa__gemm_block(const lisa__gemm_args *g, int i0, int i1, int j0, int j1, float *pack) {
    int mc, nc;
    if (i0 >= i1 || j0 >= j1) return;
    if (g->M == 1) {
        lisa__gemm_row(g, j0, j1);
        return;
    }
    mc = LISA__MIN(LISA__MC, (i1 - i0 + LISA__MR - 1) / LISA__MR * LISA__MR);
    nc = LISA__MIN(LISA__NC, (j1 - j0 + LISA__NR - 1) / LISA__NR * LISA__NR);
    if (pack) {
        float *apack = (float *)(((uintptr_t)pack + 63) & ~(uintptr_t)63);
        lisa__gemm_part(g, i0, i1, j0, j1, apack, mc, apack + (size_t)mc * LISA__KC, nc);
    } else {
        float apack[LISA__MR * LISA__KC], bpack[LISA__NR * LISA__KC];
        lisa__gemm_part(g, i0, i1, j0, j1, apack, LISA__MR, bpack, LISA__NR);
    }
}

/* One thread's share, part of n_parts: a range of rows when C has at least as
   many rows as columns, else of columns, so that the smaller operand is the
   one every thread packs. */
static void lisa__gemm_share(const lisa__gemm_args *g, int part, int n_parts) {
    int split_rows = g->M >= g->N, i0 = 0, i1 = g->M, j0 = 0, j1 = g->N;
    float *pack;
    if (split_rows) {
        int tiles = (g->M + LISA__MR - 1) / LISA__MR, per = (tiles + n_parts - 1) / n_parts;
        i0 = LISA__MIN(g->M, part * per * LISA__MR);
        i1 = LISA__MIN(g->M, (part + 1) * per * LISA__MR);
    } else {
        int tiles = (g->N + LISA__NR - 1) / LISA__NR, per = (tiles + n_parts - 1) / n_parts;
        j0 = LISA__MIN(g->N, part * per * LISA__NR);
        j1 = LISA__MIN(g->N, (part + 1) * per * LISA__NR);
    }
    if (i0 >= i1 || j0 >= j1) return;
    pack = g->M == 1 ? NULL : (float *)LISA_MALLOC(LISA__GEMM_PACK_FLOATS * sizeof(float));
    lisa__gemm_block(g, i0, i1, j0, j1, pack);
    if (pack) LISA_FREE(pack);
}

/* The same product as lisa__gemm, all of it on the calling thread, packing
   into pack as lisa__gemm_block does: for tasks that already run in parallel
   (attention's blocks). K > 0. */
static void lisa__gemm_serial(float *pack, float *c, size_t ldc, int M, int N, int K, const float *a, size_t ars,
                              size_t aks, const float *b, size_t bks, size_t bjs, int accumulate) {
    lisa__gemm_args g;
    g.c = c; g.ldc = ldc; g.a = a; g.ars = ars; g.aks = aks; g.b = b; g.bks = bks; g.bjs = bjs;
    g.M = M; g.N = N; g.K = K; g.accumulate = accumulate;
    lisa__gemm_block(&g, 0, M, 0, N, pack);
}

/* C (M, N, rows ldc apart) = A @ B, or += when accumulate is set, with
   A(r, k) = a[r * ars + k * aks] and B(k, j) = b[k * bks + j * bjs]. */
static void lisa__gemm(float *c, size_t ldc, int M, int N, int K, const float *a, size_t ars, size_t aks,
                       const float *b, size_t bks, size_t bjs, int accumulate) {
    lisa__gemm_args g;
    int r;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (r = 0; r < M; r++) memset(c + (size_t)r * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    g.c = c; g.ldc = ldc; g.a = a; g.ars = ars; g.aks = aks; g.b = b; g.bks = bks; g.bjs = bjs;
    g.M = M; g.N = N; g.K = K; g.accumulate = accumulate;
#ifdef _OPENMP
    if ((double)M * N * K >= LISA_PARALLEL_MIN_WORK) {
        LISA__PRAGMA(omp parallel)
        lisa__gemm_share(&g, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#endif
    lisa__gemm_share(&g, 0, 1);
}

LISADEF void lisa_linear_forward(float *out, const float *x, const float *w,
                                 int n, int in_dim, int out_dim) {
    /* out (n, out) = x (n, in) @ w^T: B(k, j) = w[j * in + k] */
    lisa__gemm(out, (size_t)out_dim, n, out_dim, in_dim, x, (size_t)in_dim, 1, w, 1, (size_t)in_dim, 0);
}

LISADEF void lisa_linear_backward(float *dx, float *dw, const float *dout, const float *x,
                                  const float *w, int n, int in_dim, int out_dim) {
    /* dx (n, in) += dout (n, out) @ w (out, in) */
    if (dx) lisa__gemm(dx, (size_t)in_dim, n, in_dim, out_dim, dout, (size_t)out_dim, 1, w, (size_t)in_dim, 1, 1);
    /* dw (out, in) += dout^T (out, n) @ x (n, in) */
    if (dw) lisa__gemm(dw, (size_t)in_dim, out_dim, in_dim, n, dout, 1, (size_t)out_dim, x, (size_t)in_dim, 1, 1);
}

LISADEF void lisa_lora_linear_forward(float *out, float *xa, const float *x, const float *w, const float *a,
                                      const float *b, float scale, int n, int in_dim, int out_dim, int rank) {
    size_t i, nr = (size_t)n * rank;
    lisa_linear_forward(out, x, w, n, in_dim, out_dim);
    lisa_linear_forward(xa, x, a, n, in_dim, rank);          /* (n, rank) */
    for (i = 0; i < nr; i++) xa[i] *= scale;
    /* out (n, out) += xa (n, rank) @ b^T: B(k, j) = b[j * rank + k] */
    lisa__gemm(out, (size_t)out_dim, n, out_dim, rank, xa, (size_t)rank, 1, b, 1, (size_t)rank, 1);
}

LISADEF void lisa_lora_linear_backward(float *dx, float *dw, float *da, float *db, float *du, const float *dout,
                                       const float *x, const float *xa, const float *w, const float *a,
                                       const float *b, float scale, int n, int in_dim, int out_dim, int rank) {
    size_t i, nr = (size_t)n * rank;
    lisa_linear_backward(dx, dw, dout, x, w, n, in_dim, out_dim);
    if (!dx && !da && !db) return;
    /* the adapter path out += xa B^T: db += dout^T xa, d(xa) = dout B */
    memset(du, 0, nr * sizeof(float));
    lisa_linear_backward(du, db, dout, xa, b, n, rank, out_dim);
    if (!dx && !da) return;
    /* xa = scale x A^T */
    for (i = 0; i < nr; i++) du[i] *= scale;
    lisa_linear_backward(dx, da, du, x, a, n, in_dim, rank);
}

/* ------------------------------------------------------------------------- */
/* exp over arrays                                                            */
/* ------------------------------------------------------------------------- */

/* exp(x) with every result within 1 ulp of the exact value (test_ops sweeps
   it). x is clamped to [-104, 88.8] first: below, exp rounds to 0 (-inf
   too); above, it exceeds FLT_MAX and gives inf. NaN stays NaN. Every
   element, in a vector body or a tail, goes through the same operations (a
   tail runs the same vector code on padded lanes), so its bits depend on its
   value alone: not on n, the alignment or how a range is split among
   threads.

   With AVX2 (and AVX-512) it runs in float, 8 lanes: k = round(8 x / ln 2),
   r = x - k ln2/8 in [-ln2/16, ln2/16] (ln2/8 in two parts, the first short
   enough that k times it, and x minus that, are exact, so r is rounded once,
   to within 2^-29), exp(r) - 1 = t by its Taylor polynomial of degree 4
   (relative error below 2e-9), then 2^(k/8) = 2^e 2^(j/8), j = k mod 8, from
   a table of 2^(j/8) held as a float and its remainder: T + (T t + T_lo)
   rounds once where it matters, so the worst error over every float is 0.61
   ulp (0.77 for subnormal results), about 0.14% of results differing from
   expf's bits. 2^e is applied as two exact powers of two, so only the last
   multiplication rounds a subnormal result. The portable path evaluates the
   Taylor polynomial of degree 11 of exp(x - k ln 2) in double and rounds once
   to float: expf's bits nearly always. */
#define LISA__EXP_LO -104.0f
#define LISA__EXP_HI 88.8f
#define LISA__EXP_W 8 /* floats the vector code takes at a time */

#if defined(LISA__GEMM_AVX512) || defined(LISA__GEMM_AVX2)
/* 2^(j/8) for j = 0..7 rounded to float, and what the rounding left */
static const float lisa__exp_table_hi[8] = {1.0f,         1.090507746f, 1.189207077f, 1.296839595f,
                                            1.414213538f, 1.542210817f, 1.681792855f, 1.834008098f};
static const float lisa__exp_table_lo[8] = {0.0f,          -1.307753994e-08f, 3.797635273e-08f, -4.018999533e-08f,
                                            2.420323497e-08f, 8.070904833e-09f, -2.475532668e-08f, -1.123927795e-08f};

/* 2^e for integral e in [-126, 127], built in the exponent bits */
static __m256 lisa__exp_pow2(__m256i e) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
}

/* exp(sign * x[i] - sub) of 8 floats at x into dst. */
static void lisa__exp8(float *dst, const float *x, __m256 sign, __m256 sub) {
    __m256 v = _mm256_sub_ps(_mm256_mul_ps(sign, _mm256_loadu_ps(x)), sub), k, r, t, hi, y;
    __m256i ki, j, e, e1;
    /* max/min return their second operand when one is NaN: NaN passes through */
    v = _mm256_min_ps(_mm256_set1_ps(LISA__EXP_HI), _mm256_max_ps(_mm256_set1_ps(LISA__EXP_LO), v));
    k = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(11.5415603f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.086639404296875f), v); /* ln2/8's leading 13 bits: exact */
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(3.993273118e-06f), r);
    t = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 24.0f), r, _mm256_set1_ps(1.0f / 6.0f));
    t = _mm256_fmadd_ps(t, r, _mm256_set1_ps(0.5f));
    t = _mm256_fmadd_ps(_mm256_mul_ps(r, r), t, r);
    ki = _mm256_cvtps_epi32(k);
    j = _mm256_and_si256(ki, _mm256_set1_epi32(7));
    hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(lisa__exp_table_hi), j);
    y = _mm256_add_ps(hi, _mm256_fmadd_ps(hi, t, _mm256_permutevar8x32_ps(_mm256_loadu_ps(lisa__exp_table_lo), j)));
    e = _mm256_srai_epi32(ki, 3); /* floor(k / 8), in [-150, 128] */
    e1 = _mm256_srai_epi32(e, 1);
    y = _mm256_mul_ps(y, lisa__exp_pow2(e1));
    _mm256_storeu_ps(dst, _mm256_mul_ps(y, lisa__exp_pow2(_mm256_sub_epi32(e, e1))));
}

/* dst[i] = exp(sign * x[i] - sub), sign 1 or -1 (so the product is exact);
   dst may equal x. */
static void lisa__exp_sub(float *dst, const float *x, float sign, float sub, size_t n) {
    __m256 vs = _mm256_set1_ps(sign), vb = _mm256_set1_ps(sub);
    size_t i;
    for (i = 0; i + LISA__EXP_W <= n; i += LISA__EXP_W) lisa__exp8(dst + i, x + i, vs, vb);
    if (i < n) {
        float pad[LISA__EXP_W] = {0};
        memcpy(pad, x + i, (n - i) * sizeof(float));
        lisa__exp8(pad, pad, vs, vb);
        memcpy(dst + i, pad, (n - i) * sizeof(float));
    }
}
#else
static float lisa__exp1(float x) {
    static const double ln2_hi = 6.93147180369123816490e-01; /* ln 2's leading 32 bits: k times it is exact */
    static const double ln2_lo = 1.90821492927058770002e-10;
    static const double inv_fact[11] = {1.0,          1.0,           0.5,            1.0 / 6.0,
                                        1.0 / 24.0,   1.0 / 120.0,   1.0 / 720.0,    1.0 / 5040.0,
                                        1.0 / 40320.0, 1.0 / 362880.0, 1.0 / 3628800.0}; /* 1 / i! */
    double k, r, p, s;
    uint64_t bits;
    int i;
    if (x != x) return x;
    x = x < LISA__EXP_LO ? LISA__EXP_LO : x > LISA__EXP_HI ? LISA__EXP_HI : x;
    k = rint((double)x * 1.4426950408889634);
    r = (double)x - k * ln2_hi;
    r = r - k * ln2_lo;
    for (p = 1.0 / 39916800.0, i = 10; i >= 0; i--) p = p * r + inv_fact[i];
    bits = (uint64_t)((int)k + 1023) << 52;
    memcpy(&s, &bits, sizeof s);
    return (float)(p * s);
}

/* dst[i] = exp(sign * x[i] - sub), sign 1 or -1 (so the product is exact);
   dst may equal x. */
static void lisa__exp_sub(float *dst, const float *x, float sign, float sub, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) dst[i] = lisa__exp1(sign * x[i] - sub);
}
#endif

/* Elements the exp loops below take at a time into a stack buffer (a
   multiple of every lane count used on it). */
#define LISA__EXP_CHUNK 1024

/* Pairs whose angles one pass computes at a time, on the stack. */
#define LISA__ROPE_CHUNK 128

/* r0 = a0 c - a1 s, r1 = a0 s + a1 c. Where the target has a fused
   multiply-add, the products with a0 are the fused ones, as the compiler
   contracts the plain expressions when it vectorizes across pairs; the
   vectorized and scalar parts of a loop then agree to the bit. */
#ifdef __FP_FAST_FMAF
#define LISA__ROPE_R0(a0, a1, c, s) fmaf(a0, c, -((a1) * (s)))
#define LISA__ROPE_R1(a0, a1, c, s) fmaf(a0, s, (a1) * (c))
#else
#define LISA__ROPE_R0(a0, a1, c, s) ((a0) * (c) - (a1) * (s))
#define LISA__ROPE_R1(a0, a1, c, s) ((a0) * (s) + (a1) * (c))
#endif

/* Pairs i0..i0+n-1 of each head of one position's row (n_heads heads) turned
   by the angles whose cosines and sines are c, s. */
static void lisa__rope_row(float *dst, const float *src, int n_heads, int head_dim, int i0, int n, const float *c,
                           const float *s, int accumulate) {
    int h, i;
    for (h = 0; h < n_heads; h++) {
        size_t base = (size_t)h * head_dim + 2 * (size_t)i0;
        for (i = 0; i < n; i++) {
            size_t at = base + 2 * (size_t)i;
            float a0 = src[at], a1 = src[at + 1];
            float r0 = LISA__ROPE_R0(a0, a1, c[i], s[i]), r1 = LISA__ROPE_R1(a0, a1, c[i], s[i]);
            if (accumulate) {
                dst[at] += r0;
                dst[at + 1] += r1;
            } else {
                dst[at] = r0;
                dst[at + 1] = r1;
            }
        }
    }
}

/* The frequencies of pairs i0..i0+n-1. */
static void lisa__rope_freqs(double *freq, int i0, int n, int head_dim, float theta) {
    int i;
    for (i = 0; i < n; i++) freq[i] = pow((double)theta, -2.0 * (i0 + i) / head_dim);
}

/* The angles' cosines and sines of positions pos0..pos0+T-1: row t holds the
   head_dim / 2 cosines, then the sines. One forward fills it and every
   layer's forward, recompute and backward read it, with the values the
   turn below would compute. */
static void lisa__rope_table(float *table, int T, int head_dim, int pos0, float theta) {
    int i0, half = head_dim / 2;
    for (i0 = 0; i0 < half; i0 += LISA__ROPE_CHUNK) {
        double freq[LISA__ROPE_CHUNK];
        int n = LISA__MIN(LISA__ROPE_CHUNK, half - i0), t;
        lisa__rope_freqs(freq, i0, n, head_dim, theta);
        LISA__PARALLEL_FOR_IF((double)T * n * 64) /* a cos and a sin: tens of flops each */
        for (t = 0; t < T; t++) {
            float *row = table + (size_t)t * head_dim;
            int k;
            for (k = 0; k < n; k++) {
                double angle = (double)(pos0 + t) * freq[k];
                row[i0 + k] = (float)cos(angle);
                row[half + i0 + k] = (float)sin(angle);
            }
        }
    }
}

/* Turns each interleaved pair by +angle (sign 1) or -angle (sign -1), adding
   into dst when accumulate is set; dst may equal src when it is not. A second
   tensor (dst2, src2 with n_heads2 heads; NULL for none) at the same
   positions is turned by the same angles, so that the queries' and keys'
   cosines and sines are computed once for both: each position's once, and
   each frequency once per call. table, when not NULL, holds them already
   (lisa__rope_table of these positions). */
static void lisa__rope_turn(float *dst, const float *src, float *dst2, const float *src2, int B, int T, int n_heads,
                            int n_heads2, int head_dim, int pos0, float theta, float sign, int accumulate,
                            const float *table) {
    int i0, half = head_dim / 2;
    if (!dst2) n_heads2 = 0;
    for (i0 = 0; i0 < half; i0 += LISA__ROPE_CHUNK) {
        double freq[LISA__ROPE_CHUNK];
        int n = LISA__MIN(LISA__ROPE_CHUNK, half - i0), t;
        if (!table) lisa__rope_freqs(freq, i0, n, head_dim, theta);
        LISA__PARALLEL_FOR_IF((double)B * T * (n_heads + n_heads2) * 2 * n)
        for (t = 0; t < T; t++) {
            float c[LISA__ROPE_CHUNK], s[LISA__ROPE_CHUNK];
            const float *row = table ? table + (size_t)t * head_dim : NULL;
            int b, k;
            for (k = 0; k < n; k++) {
                if (row) {
                    c[k] = row[i0 + k];
                    s[k] = sign * row[half + i0 + k];
                } else {
                    double angle = (double)(pos0 + t) * freq[k];
                    c[k] = (float)cos(angle);
                    s[k] = sign * (float)sin(angle);
                }
            }
            for (b = 0; b < B; b++) {
                size_t row = (size_t)b * T + t;
                lisa__rope_row(dst + row * n_heads * head_dim, src + row * n_heads * head_dim, n_heads, head_dim, i0,
                               n, c, s, accumulate);
                if (n_heads2)
                    lisa__rope_row(dst2 + row * n_heads2 * head_dim, src2 + row * n_heads2 * head_dim, n_heads2,
                                   head_dim, i0, n, c, s, accumulate);
            }
        }
    }
}

static void lisa__rope_apply(float *dst, const float *src, int B, int T, int n_heads, int head_dim,
                             int pos0, float theta, float sign, int accumulate) {
    lisa__rope_turn(dst, src, NULL, NULL, B, T, n_heads, 0, head_dim, pos0, theta, sign, accumulate, NULL);
}

LISADEF void lisa_rope_forward(float *out, const float *x, int B, int T, int n_heads,
                               int head_dim, int pos0, float theta) {
    lisa__rope_apply(out, x, B, T, n_heads, head_dim, pos0, theta, 1.0f, 0);
}

LISADEF void lisa_rope_backward(float *dx, const float *dout, int B, int T, int n_heads,
                                int head_dim, int pos0, float theta) {
    lisa__rope_apply(dx, dout, B, T, n_heads, head_dim, pos0, theta, -1.0f, 1);
}

/* Sum with eight partial sums, so that it is not one long chain of dependent
   additions; the order is fixed by n alone. */
static float lisa__sum(const float *a, int n) {
    float p[8] = {0}, s;
    int i, l;
    for (i = 0; i + 8 <= n; i += 8)
        for (l = 0; l < 8; l++) p[l] += a[i + l];
    s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    for (; i < n; i++) s += a[i];
    return s;
}

/* Causal attention in blocks, every product through the matrix kernel.

   A head's scores are computed a block of query rows against a chunk of
   LISA__KC keys at a time (S = Q K^T, then P V), so the products run at the
   matrix kernel's rate instead of one dot product per (query, key) pair.
   Key chunks start at fixed positions (0, KC, 2 KC, ...) whatever the block,
   each row keeps its own running max and sum, and the kernel gives every
   row of a product the bits a one-row product gives it; so a row's result
   depends on the row alone, and generation (one row, lisa_model_step) gets
   the full forward's bits. Backward runs in two passes that share no sums:
   one task per block of keys gathers dk and dv over all later query rows (the
   query heads of a kv head in order), then one task per block of query rows
   gathers dq; each output element is one multiply-add chain in a fixed
   order, so the thread count does not change a bit. Recomputing the scores
   in both passes costs two products more than one pass would, and needs no
   sums shared between threads.

   Each thread works in one buffer of LISA__ATTENTION_FLOATS floats (packing
   for the kernel, then two score tiles); without memory it falls back to
   blocks of one row or key and one-tile packing on the stack, the same
   sums. */
#define LISA__ATTENTION_ROWS 96 /* query rows of a block: whole register tiles (MR 12, 6 or 4) */
#define LISA__ATTENTION_KEYS (3 * LISA__NR) /* keys of a backward key block */
/* Query rows a backward key block takes at a time: whole register tiles
   (a multiple of MR, as ROWS and KEYS are, so no product has a ragged edge
   but at the sequence's end) in one k-slice. */
#define LISA__ATTENTION_SPAN (LISA__KC / LISA__MR * LISA__MR)
#define LISA__ATTENTION_TILE ((size_t)LISA__KC * LISA__MAX(LISA__ATTENTION_ROWS, LISA__ATTENTION_KEYS))
#define LISA__ATTENTION_FLOATS (LISA__GEMM_PACK_FLOATS + 2 * LISA__ATTENTION_TILE)

/* Where a thread's attention tiles live: pack is NULL and the tiles hold one
   row (LISA__KC floats each) when there was no memory for a buffer. */
typedef struct lisa__attention_work {
    float *pack, *s, *ds;
    int rows, keys; /* block sizes these tiles hold */
    float s1[LISA__KC], ds1[LISA__KC];
} lisa__attention_work;

static void lisa__attention_work_init(lisa__attention_work *w) {
    w->pack = (float *)LISA_MALLOC(LISA__ATTENTION_FLOATS * sizeof(float));
    if (w->pack) {
        w->s = w->pack + LISA__GEMM_PACK_FLOATS;
        w->ds = w->s + LISA__ATTENTION_TILE;
        w->rows = LISA__ATTENTION_ROWS;
        w->keys = LISA__ATTENTION_KEYS;
    } else {
        w->s = w->s1;
        w->ds = w->ds1;
        w->rows = w->keys = 1;
    }
}

static void lisa__attention_work_free(lisa__attention_work *w) {
    if (w->pack) LISA_FREE(w->pack);
}

/* The shapes of one (batch, head) slice: rows q_row floats apart for q, out,
   dout and dq, kv_row for k, v, dk and dv. */
typedef struct lisa__attention_dims {
    size_t q_row, kv_row;
    int T, head_dim;
    float scale;
} lisa__attention_dims;

static lisa__attention_dims lisa__attention_dims_of(int T, int n_heads, int n_kv_heads, int head_dim) {
    lisa__attention_dims d;
    d.q_row = (size_t)n_heads * head_dim;
    d.kv_row = (size_t)n_kv_heads * head_dim;
    d.T = T;
    d.head_dim = head_dim;
    d.scale = 1.0f / sqrtf((float)head_dim);
    return d;
}

/* Query rows i0..i0+R-1 of one head (q, out from row i0; k, v from key 0):
   out = softmax(q k^T * scale) v over keys 0..i, lse[r] each row's
   log-sum-exp. s: R x KC floats; pack as lisa__gemm_serial. */
static void lisa__attention_rows(float *out, float *lse, const float *q, const float *k, const float *v,
                                 const lisa__attention_dims *d, int i0, int R, float *s, float *pack) {
    float m[LISA__ATTENTION_ROWS], l[LISA__ATTENTION_ROWS];
    int r, j, c0, hd = d->head_dim, n_keys = i0 + R;
    for (r = 0; r < R; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    for (c0 = 0; c0 < n_keys; c0 += LISA__KC) {
        int nc = LISA__MIN(LISA__KC, n_keys - c0);
        lisa__gemm_serial(pack, s, LISA__KC, R, nc, hd, q, d->q_row, 1, k + (size_t)c0 * d->kv_row, 1, d->kv_row, 0);
        for (r = 0; r < R; r++) {
            float *sr = s + (size_t)r * LISA__KC, mc = m[r];
            int valid = LISA__MAX(0, LISA__MIN(nc, i0 + r + 1 - c0)); /* keys 0..i of row i */
            for (j = 0; j < valid; j++) {
                sr[j] *= d->scale;
                mc = LISA__MAX(mc, sr[j]);
            }
            if (c0 > 0 && mc > m[r]) { /* what earlier chunks summed, at the new max */
                float rescale = expf(m[r] - mc), *o = out + (size_t)r * d->q_row;
                for (j = 0; j < hd; j++) o[j] *= rescale;
                l[r] *= rescale;
            }
            m[r] = mc;
            lisa__exp_sub(sr, sr, 1.0f, mc, (size_t)valid);
            for (j = valid; j < nc; j++) sr[j] = 0.0f;
            l[r] += lisa__sum(sr, valid);
        }
        lisa__gemm_serial(pack, out, d->q_row, R, hd, nc, s, LISA__KC, 1, v + (size_t)c0 * d->kv_row, d->kv_row, 1,
                          c0 > 0);
    }
    for (r = 0; r < R; r++) {
        float *o = out + (size_t)r * d->q_row;
        for (j = 0; j < hd; j++) o[j] /= l[r];
        lse[r] = m[r] + logf(l[r]);
    }
}

LISADEF void lisa_attention_forward(float *out, float *lse, const float *q, const float *k,
                                    const float *v, int B, int T, int n_heads, int n_kv_heads,
                                    int head_dim) {
    lisa__attention_dims d = lisa__attention_dims_of(T, n_heads, n_kv_heads, head_dim);
    int group = n_heads / n_kv_heads, blocks = (T + LISA__ATTENTION_ROWS - 1) / LISA__ATTENTION_ROWS;
    int tasks = B * n_heads * blocks;
    LISA__PRAGMA(omp parallel if ((double)B * n_heads * T * T * head_dim >= LISA_PARALLEL_MIN_WORK))
    {
        lisa__attention_work w;
        int task;
        lisa__attention_work_init(&w);
        /* the longest blocks (the last rows) first, so threads end together */
        LISA__PRAGMA(omp for schedule(dynamic, 1))
        for (task = 0; task < tasks; task++) {
            int bh = task % (B * n_heads), blk = blocks - 1 - task / (B * n_heads);
            int b = bh / n_heads, h = bh % n_heads, i, i_end;
            size_t q_at = (size_t)b * T * d.q_row + (size_t)h * head_dim;
            size_t kv_at = (size_t)b * T * d.kv_row + (size_t)(h / group) * head_dim;
            i_end = LISA__MIN(T, (blk + 1) * LISA__ATTENTION_ROWS);
            for (i = blk * LISA__ATTENTION_ROWS; i < i_end; i += w.rows) {
                int R = LISA__MIN(w.rows, i_end - i);
                lisa__attention_rows(out + q_at + (size_t)i * d.q_row, lse + ((size_t)b * n_heads + h) * T + i,
                                     q + q_at + (size_t)i * d.q_row, k + kv_at, v + kv_at, &d, i, R, w.s, w.pack);
            }
        }
        lisa__attention_work_free(&w);
    }
}

/* A score tile's probabilities and their gradients: rows (query i0 + r,
   row r of s and dp, ld floats apart) by columns (key j0 + c): s holds q.k
   on entry and p on return, dp holds dout.v on entry and
   ds = p (dp - D) scale on return, D[r] = dout.out of row r; pairs past the
   diagonal are 0. */
static void lisa__attention_grad_tile(float *s, float *dp, size_t ld, int rows, int cols, int i0, int j0,
                                      const float *lse, const float *D, const lisa__attention_dims *d) {
    int r, c;
    for (r = 0; r < rows; r++) {
        float *sr = s + (size_t)r * ld, *dr = dp + (size_t)r * ld, row_lse = lse[r], Dr = D[r];
        int valid = LISA__MAX(0, LISA__MIN(cols, i0 + r - j0 + 1));
        for (c = 0; c < valid; c++) sr[c] *= d->scale;
        lisa__exp_sub(sr, sr, 1.0f, row_lse, (size_t)valid);
        for (c = 0; c < valid; c++) dr[c] = sr[c] * (dr[c] - Dr) * d->scale;
        for (; c < cols; c++) sr[c] = dr[c] = 0.0f;
    }
}

/* D = dout.out for rows 0..n-1 of one head, into D (n floats), or where
   the backward pass already has them all (all, indexed by row), a pointer
   to those. Each is one multiply-add chain in the order the matrix kernel
   sums dout.v: ds = p (dout.v - D) cancels where it should, and a row whose
   only key is its own (out = v) gets ds = 0 exactly, as in exact arithmetic. */
static const float *lisa__attention_D(float *D, const float *all, const float *dout, const float *out, int n,
                                      const lisa__attention_dims *d) {
    int r, i;
    if (all) return all;
    for (r = 0; r < n; r++) {
        const float *a = dout + (size_t)r * d->q_row, *b = out + (size_t)r * d->q_row;
        float acc = 0.0f;
        for (i = 0; i < d->head_dim; i++) acc = LISA__FMAF(a[i], b[i], acc);
        D[r] = acc;
    }
    return D;
}

/* dk, dv rows j0..j0+C-1 (from row j0) += one query head's share: every
   query row i >= j0 (q, dout, out, lse and D_all, which may be NULL, from
   row 0), SPAN rows at a time. */
static void lisa__attention_dkv(float *dk, float *dv, const float *dout, const float *out, const float *D_all,
                                const float *lse, const float *q, const float *k, const float *v,
                                const lisa__attention_dims *d, int j0, int C, const lisa__attention_work *w) {
    float D[LISA__ATTENTION_SPAN];
    size_t ld = (size_t)w->keys;
    int i0, hd = d->head_dim;
    for (i0 = j0; i0 < d->T; i0 += LISA__ATTENTION_SPAN) {
        int rows = LISA__MIN(LISA__ATTENTION_SPAN, d->T - i0);
        const float *qi = q + (size_t)i0 * d->q_row, *doi = dout + (size_t)i0 * d->q_row;
        const float *Di = lisa__attention_D(D, D_all ? D_all + i0 : NULL, doi, out + (size_t)i0 * d->q_row, rows, d);
        lisa__gemm_serial(w->pack, w->s, ld, rows, C, hd, qi, d->q_row, 1, k, 1, d->kv_row, 0);
        lisa__gemm_serial(w->pack, w->ds, ld, rows, C, hd, doi, d->q_row, 1, v, 1, d->kv_row, 0);
        lisa__attention_grad_tile(w->s, w->ds, ld, rows, C, i0, j0, lse + i0, Di, d);
        /* dv += p^T dout, dk += ds^T q */
        lisa__gemm_serial(w->pack, dv, d->kv_row, C, hd, rows, w->s, 1, ld, doi, d->q_row, 1, 1);
        lisa__gemm_serial(w->pack, dk, d->kv_row, C, hd, rows, w->ds, 1, ld, qi, d->q_row, 1, 1);
    }
}

/* dq rows i0..i0+R-1 (q, dout, out, dq from row i0, lse and D_all, which
   may be NULL, from its entry; k, v from key 0) += their gradient over keys
   0..i, KC keys at a time. */
static void lisa__attention_dq(float *dq, const float *dout, const float *out, const float *D_all,
                               const float *lse, const float *q, const float *k, const float *v,
                               const lisa__attention_dims *d, int i0, int R, const lisa__attention_work *w) {
    float D[LISA__ATTENTION_ROWS];
    const float *Di = lisa__attention_D(D, D_all, dout, out, R, d);
    int c0, hd = d->head_dim, n_keys = i0 + R;
    for (c0 = 0; c0 < n_keys; c0 += LISA__KC) {
        int nc = LISA__MIN(LISA__KC, n_keys - c0);
        const float *kc = k + (size_t)c0 * d->kv_row;
        lisa__gemm_serial(w->pack, w->s, LISA__KC, R, nc, hd, q, d->q_row, 1, kc, 1, d->kv_row, 0);
        lisa__gemm_serial(w->pack, w->ds, LISA__KC, R, nc, hd, dout, d->q_row, 1, v + (size_t)c0 * d->kv_row, 1,
                          d->kv_row, 0);
        lisa__attention_grad_tile(w->s, w->ds, LISA__KC, R, nc, i0, c0, lse, Di, d);
        lisa__gemm_serial(w->pack, dq, d->q_row, R, hd, nc, w->ds, LISA__KC, 1, kc, d->kv_row, 1, 1);
    }
}

LISADEF void lisa_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                     const float *out, const float *lse, const float *q,
                                     const float *k, const float *v, int B, int T, int n_heads,
                                     int n_kv_heads, int head_dim) {
    lisa__attention_dims d = lisa__attention_dims_of(T, n_heads, n_kv_heads, head_dim);
    int group = n_heads / n_kv_heads;
    int key_blocks = (T + LISA__ATTENTION_KEYS - 1) / LISA__ATTENTION_KEYS;
    int row_blocks = (T + LISA__ATTENTION_ROWS - 1) / LISA__ATTENTION_ROWS;
    int kv_tasks = B * n_kv_heads * key_blocks, q_tasks = B * n_heads * row_blocks;
    /* every row's D once, laid out as lse; without memory each task takes its own */
    float *D_all = (float *)LISA_MALLOC((size_t)B * n_heads * T * sizeof(float));
    LISA__PRAGMA(omp parallel if ((double)B * n_heads * T * T * head_dim >= LISA_PARALLEL_MIN_WORK))
    {
        lisa__attention_work w;
        int task;
        lisa__attention_work_init(&w);
        if (D_all) {
            LISA__PRAGMA(omp for schedule(static))
            for (task = 0; task < B * n_heads; task++) {
                size_t q_at = (size_t)(task / n_heads) * T * d.q_row + (size_t)(task % n_heads) * head_dim;
                lisa__attention_D(D_all + (size_t)task * T, NULL, dout + q_at, out + q_at, T, &d);
            }
        }
        /* dk, dv: one task per (batch, kv head, key block), the first keys
           (the most query rows) first */
        LISA__PRAGMA(omp for schedule(dynamic, 1))
        for (task = 0; task < kv_tasks; task++) {
            int bk = task % (B * n_kv_heads), blk = task / (B * n_kv_heads), b = bk / n_kv_heads;
            int kvh = bk % n_kv_heads, j, j_end = LISA__MIN(T, (blk + 1) * LISA__ATTENTION_KEYS), g;
            size_t kv_at = (size_t)b * T * d.kv_row + (size_t)kvh * head_dim;
            for (j = blk * LISA__ATTENTION_KEYS; j < j_end; j += w.keys) {
                int C = LISA__MIN(w.keys, j_end - j);
                size_t at = kv_at + (size_t)j * d.kv_row;
                for (g = 0; g < group; g++) {
                    int h = kvh * group + g;
                    size_t q_at = (size_t)b * T * d.q_row + (size_t)h * head_dim, l_at = ((size_t)b * n_heads + h) * T;
                    lisa__attention_dkv(dk + at, dv + at, dout + q_at, out + q_at, D_all ? D_all + l_at : NULL,
                                        lse + l_at, q + q_at, k + at, v + at, &d, j, C, &w);
                }
            }
        }
        /* dq: one task per (batch, head, block of rows), the last rows first */
        LISA__PRAGMA(omp for schedule(dynamic, 1))
        for (task = 0; task < q_tasks; task++) {
            int bh = task % (B * n_heads), blk = row_blocks - 1 - task / (B * n_heads);
            int b = bh / n_heads, h = bh % n_heads, i, i_end = LISA__MIN(T, (blk + 1) * LISA__ATTENTION_ROWS);
            size_t q_at = (size_t)b * T * d.q_row + (size_t)h * head_dim;
            size_t kv_at = (size_t)b * T * d.kv_row + (size_t)(h / group) * head_dim;
            for (i = blk * LISA__ATTENTION_ROWS; i < i_end; i += w.rows) {
                size_t at = q_at + (size_t)i * d.q_row, l_at = ((size_t)b * n_heads + h) * T + i;
                lisa__attention_dq(dq + at, dout + at, out + at, D_all ? D_all + l_at : NULL, lse + l_at, q + at,
                                   k + kv_at, v + kv_at, &d, i, LISA__MIN(w.rows, i_end - i), &w);
            }
        }
        lisa__attention_work_free(&w);
    }
    if (D_all) LISA_FREE(D_all);
}

/* silu(a) = a sigmoid(a) = a / (1 + exp(-a)); exp(-a) a chunk at a time. */
LISADEF void lisa_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    long long c, chunks = (long long)((n + LISA__EXP_CHUNK - 1) / LISA__EXP_CHUNK);
    LISA__PARALLEL_FOR_IF((double)n)
    for (c = 0; c < chunks; c++) {
        float e[LISA__EXP_CHUNK];
        size_t i0 = (size_t)c * LISA__EXP_CHUNK, len = LISA__MIN(n - i0, (size_t)LISA__EXP_CHUNK), i;
        lisa__exp_sub(e, gate + i0, -1.0f, 0.0f, len);
        for (i = 0; i < len; i++) out[i0 + i] = gate[i0 + i] / (1.0f + e[i]) * up[i0 + i];
    }
}

LISADEF void lisa_swiglu_backward(float *dgate, float *dup, const float *dout,
                                  const float *gate, const float *up, size_t n) {
    long long c, chunks = (long long)((n + LISA__EXP_CHUNK - 1) / LISA__EXP_CHUNK);
    LISA__PARALLEL_FOR_IF((double)n)
    for (c = 0; c < chunks; c++) {
        float e[LISA__EXP_CHUNK];
        size_t i0 = (size_t)c * LISA__EXP_CHUNK, len = LISA__MIN(n - i0, (size_t)LISA__EXP_CHUNK), i;
        lisa__exp_sub(e, gate + i0, -1.0f, 0.0f, len);
        for (i = 0; i < len; i++) {
            size_t j = i0 + i;
            float a = gate[j], sig = 1.0f / (1.0f + e[i]), silu = a * sig;
            dgate[j] += dout[j] * up[j] * sig * (1.0f + a * (1.0f - sig));
            dup[j] += dout[j] * silu;
        }
    }
}

LISADEF void lisa_residual_forward(float *out, const float *a, const float *b, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) out[i] = a[i] + b[i];
}

LISADEF void lisa_residual_backward(float *da, float *db, const float *dout, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

/* Lanes of the row reductions below: element i goes to lane i % LISA__ROW_LANES,
   each lane adds in index order, and the lanes combine in a fixed tree, so
   the result depends on n alone. */
#define LISA__ROW_LANES 16

static float lisa__row_max(const float *x, int n) {
    float lane[LISA__ROW_LANES], m;
    int i, l;
    for (l = 0; l < LISA__ROW_LANES; l++) lane[l] = -INFINITY;
    for (i = 0; i + LISA__ROW_LANES <= n; i += LISA__ROW_LANES)
        for (l = 0; l < LISA__ROW_LANES; l++) lane[l] = lane[l] > x[i + l] ? lane[l] : x[i + l];
    for (l = 0; i + l < n; l++) lane[l] = lane[l] > x[i + l] ? lane[l] : x[i + l];
    for (m = lane[0], l = 1; l < LISA__ROW_LANES; l++) m = LISA__MAX(m, lane[l]);
    return m;
}

/* The lanes' sums combined pairwise: (0+1)+(2+3), ... */
static double lisa__lanes_total(double *lane) {
    int w, l;
    for (w = LISA__ROW_LANES / 2; w >= 1; w /= 2)
        for (l = 0; l < w; l++) lane[l] = lane[2 * l] + lane[2 * l + 1];
    return lane[0];
}

/* log(sum exp(x)): the max, then exp(x - max) a chunk at a time summed in
   double lanes. */
static float lisa__logsumexp(const float *x, int n) {
    float m = lisa__row_max(x, n), e[LISA__EXP_CHUNK];
    double lane[LISA__ROW_LANES] = {0};
    int i0;
    for (i0 = 0; i0 < n; i0 += LISA__EXP_CHUNK) {
        int len = LISA__MIN(n - i0, LISA__EXP_CHUNK), i, l;
        lisa__exp_sub(e, x + i0, 1.0f, m, (size_t)len);
        for (i = 0; i + LISA__ROW_LANES <= len; i += LISA__ROW_LANES)
            for (l = 0; l < LISA__ROW_LANES; l++) lane[l] += e[i + l];
        for (l = 0; i + l < len; l++) lane[l] += e[i + l];
    }
    return m + (float)log(lisa__lanes_total(lane));
}

/* Each row's log-sum-exp and loss (0 where ignored), rows in parallel. */
static void lisa__cross_entropy_rows(float *losses, float *lses, const float *logits,
                                     const int *targets, int n, int vocab) {
    int i;
    LISA__PARALLEL_FOR_IF((double)n * vocab)
    for (i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * vocab;
        float lse = targets[i] < 0 ? 0.0f : lisa__logsumexp(row, vocab);
        losses[i] = targets[i] < 0 ? 0.0f : lse - row[targets[i]];
        if (lses) lses[i] = lse;
    }
}

/* Mean of the counted rows' losses, added in row order. */
static float lisa__mean_counted(const float *losses, const int *targets, int n, int *n_counted) {
    double sum = 0.0;
    int counted = 0, i;
    for (i = 0; i < n; i++)
        if (targets[i] >= 0) {
            sum += losses[i];
            counted++;
        }
    if (n_counted) *n_counted = counted;
    return counted ? (float)(sum / counted) : 0.0f;
}

LISADEF float lisa_cross_entropy_forward(float *losses, const float *logits, const int *targets,
                                         int n, int vocab, int *n_counted) {
    float one;
    int i, counted = 0;
    double sum = 0.0;
    if (losses) {
        lisa__cross_entropy_rows(losses, NULL, logits, targets, n, vocab);
        return lisa__mean_counted(losses, targets, n, n_counted);
    }
    for (i = 0; i < n; i++) { /* no row buffer: one row at a time */
        lisa__cross_entropy_rows(&one, NULL, logits + (size_t)i * vocab, targets + i, 1, vocab);
        if (targets[i] >= 0) {
            sum += one;
            counted++;
        }
    }
    if (n_counted) *n_counted = counted;
    return counted ? (float)(sum / counted) : 0.0f;
}

/* dst = (accumulate ? dst : 0) + dloss * (softmax(row) - onehot(target)),
   given the row's log-sum-exp. dst may equal row when accumulate is 0. */
static void lisa__cross_entropy_grad_row(float *dst, const float *row, float lse, int target,
                                         int vocab, float dloss, int accumulate) {
    float p[LISA__EXP_CHUNK];
    int j0;
    if (target < 0) {
        if (!accumulate) memset(dst, 0, (size_t)vocab * sizeof(float));
        return;
    }
    for (j0 = 0; j0 < vocab; j0 += LISA__EXP_CHUNK) {
        int len = LISA__MIN(vocab - j0, LISA__EXP_CHUNK), j;
        lisa__exp_sub(p, row + j0, 1.0f, lse, (size_t)len);
        if (target >= j0 && target < j0 + len) p[target - j0] -= 1.0f;
        if (accumulate)
            for (j = 0; j < len; j++) dst[j0 + j] += dloss * p[j];
        else
            for (j = 0; j < len; j++) dst[j0 + j] = dloss * p[j];
    }
}

LISADEF void lisa_cross_entropy_backward(float *dlogits, const float *logits, const int *targets,
                                         int n, int vocab, float dloss) {
    int i;
    LISA__PARALLEL_FOR_IF((double)n * vocab)
    for (i = 0; i < n; i++)
    {
        const float *row = logits + (size_t)i * vocab;
        if (targets[i] >= 0)
            lisa__cross_entropy_grad_row(dlogits + (size_t)i * vocab, row, lisa__logsumexp(row, vocab),
                                         targets[i], vocab, dloss, 1);
    }
}

/* ------------------------------------------------------------------------- */
/* Config, layout, blocks                                                     */
/* ------------------------------------------------------------------------- */

/* Upper bounds that keep every size product within 64 bits and flag garbage
   headers before anything is allocated. */
#define LISA__MAX_DIM (1 << 20)
#define LISA__MAX_LAYERS (1 << 12)
#define LISA__MAX_VOCAB (1 << 24)
#define LISA__MAX_SEQ (1 << 24)
#define LISA__MAX_PARAMS ((double)(1ull << 40))
#define LISA__MAX_STEPS (1 << 30) /* keeps every step counter far from int overflow */

/* Checks c and fills in defaults; `name` (may be NULL) prefixes messages. */
static lisa_result lisa__config_check(lisa_config *c, const char *name, lisa_error *err) {
    const char *p = name ? name : "config", *sep = ": ";
    double kv_dim, n_params;
    if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
    if (c->norm_eps == 0.0f) c->norm_eps = 1e-5f;
    if (c->rope_theta == 0.0f) c->rope_theta = 10000.0f;
    if (c->dim <= 0 || c->dim > LISA__MAX_DIM)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%sdim %d is out of range (1..%d)", p, sep, c->dim, LISA__MAX_DIM);
    if (c->hidden_dim <= 0 || c->hidden_dim > 4 * LISA__MAX_DIM)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%shidden_dim %d is out of range (1..%d)", p, sep, c->hidden_dim, 4 * LISA__MAX_DIM);
    if (c->n_layers <= 0 || c->n_layers > LISA__MAX_LAYERS)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%sn_layers %d is out of range (1..%d)", p, sep, c->n_layers, LISA__MAX_LAYERS);
    if (c->n_heads <= 0 || c->dim % c->n_heads != 0)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%sn_heads %d does not divide dim %d", p, sep, c->n_heads, c->dim);
    if ((c->dim / c->n_heads) % 2 != 0)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%shead size %d (dim / n_heads) must be even for RoPE", p, sep, c->dim / c->n_heads);
    if (c->n_kv_heads <= 0 || c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%sn_kv_heads %d does not divide n_heads %d", p, sep, c->n_kv_heads, c->n_heads);
    if (c->vocab_size <= 0 || c->vocab_size > LISA__MAX_VOCAB)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%svocab_size %d is out of range (1..%d)", p, sep, c->vocab_size, LISA__MAX_VOCAB);
    if (c->max_seq_len <= 0 || c->max_seq_len > LISA__MAX_SEQ)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%smax_seq_len %d is out of range (1..%d)", p, sep, c->max_seq_len, LISA__MAX_SEQ);
    if (!(c->norm_eps > 0.0f) || !(c->rope_theta > 0.0f))
        return lisa__fail(err, LISA_ERR_INVALID, "%s%snorm_eps and rope_theta must be positive", p, sep);
    if (c->tied_head != 0 && c->tied_head != 1)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%stied_head must be 0 or 1", p, sep);
    kv_dim = (double)c->dim / c->n_heads * c->n_kv_heads;
    n_params = (double)c->vocab_size * c->dim * (c->tied_head ? 1 : 2) + c->dim +
               (double)c->n_layers * (2.0 * c->dim + 2.0 * c->dim * c->dim + 2.0 * kv_dim * c->dim +
                                      3.0 * c->dim * c->hidden_dim);
    if (n_params > LISA__MAX_PARAMS || n_params * sizeof(float) > (double)SIZE_MAX / 2)
        return lisa__fail(err, LISA_ERR_INVALID, "%s%s%.0f parameters is too many", p, sep, n_params);
    return LISA_OK;
}

LISADEF lisa_result lisa_config_resolve(lisa_config *c, lisa_error *err) {
    lisa_result r = lisa__config_check(c, NULL, err);
    if (r == LISA_OK) lisa__ok(err);
    return r;
}

LISADEF int lisa_n_blocks(const lisa_config *c) { return c->n_layers + 3; }
LISADEF int lisa_block_final_norm(const lisa_config *c) { return c->n_layers + 1; }
LISADEF int lisa_block_head(const lisa_config *c) { return c->n_layers + 2; }

LISADEF lisa_layout lisa_layout_of(const lisa_config *c) {
    lisa_layout L;
    size_t D = (size_t)c->dim, H = (size_t)c->hidden_dim;
    size_t kv = D / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    lisa_layer_layout *y = &L.layer;
    y->attn_norm = 0;
    y->wq = y->attn_norm + D;
    y->wk = y->wq + D * D;
    y->wv = y->wk + kv * D;
    y->wo = y->wv + kv * D;
    y->mlp_norm = y->wo + D * D;
    y->w1 = y->mlp_norm + D;
    y->w2 = y->w1 + H * D;
    y->w3 = y->w2 + D * H;
    y->size = y->w3 + H * D;
    L.embed = (size_t)c->vocab_size * D;
    L.final_norm = D;
    L.head = c->tied_head ? 0 : (size_t)c->vocab_size * D;
    L.n_params = L.embed + (size_t)c->n_layers * y->size + L.final_norm + L.head;
    return L;
}

LISADEF size_t lisa_block_size(const lisa_config *c, int block) {
    lisa_layout L = lisa_layout_of(c);
    LISA_ASSERT(block >= 0 && block < lisa_n_blocks(c));
    if (block == LISA_BLOCK_EMBED) return L.embed;
    if (block == lisa_block_final_norm(c)) return L.final_norm;
    if (block == lisa_block_head(c)) return L.head;
    return L.layer.size;
}

LISADEF size_t lisa_block_offset(const lisa_config *c, int block) {
    lisa_layout L = lisa_layout_of(c);
    LISA_ASSERT(block >= 0 && block < lisa_n_blocks(c));
    if (block == LISA_BLOCK_EMBED) return 0;
    if (block == lisa_block_final_norm(c)) return L.embed + (size_t)c->n_layers * L.layer.size;
    if (block == lisa_block_head(c)) return L.embed + (size_t)c->n_layers * L.layer.size + L.final_norm;
    return L.embed + (size_t)(block - 1) * L.layer.size;
}

/* ------------------------------------------------------------------------- */
/* Model                                                                      */
/* ------------------------------------------------------------------------- */

static void lisa__model_point(lisa_model *m) {
    const lisa_config *c = &m->config;
    int l;
    m->embed = m->params;
    for (l = 0; l < c->n_layers; l++) {
        float *base = m->params + lisa_block_offset(c, LISA_BLOCK_LAYER(l));
        const lisa_layer_layout *y = &m->layout.layer;
        lisa_layer_weights *w = &m->layers[l];
        w->attn_norm = base + y->attn_norm;
        w->wq = base + y->wq;
        w->wk = base + y->wk;
        w->wv = base + y->wv;
        w->wo = base + y->wo;
        w->mlp_norm = base + y->mlp_norm;
        w->w1 = base + y->w1;
        w->w2 = base + y->w2;
        w->w3 = base + y->w3;
    }
    m->final_norm = m->params + lisa_block_offset(c, lisa_block_final_norm(c));
    m->head = c->tied_head ? m->embed : m->params + lisa_block_offset(c, lisa_block_head(c));
}

/* The model's two allocations in bytes: the parameters and the table of layer
   pointers. Sized only here: lisa_model_init() allocates them, lisa_model_free()
   returns them, and the planner takes their sum from lisa__model_total_bytes(). */
typedef struct lisa__model_sizes {
    size_t params, layers;
} lisa__model_sizes;

static lisa__model_sizes lisa__model_sizes_of(const lisa_layout *L, int n_layers) {
    lisa__model_sizes s;
    s.params = L->n_params * sizeof(float);
    s.layers = (size_t)n_layers * sizeof(lisa_layer_weights);
    return s;
}

static size_t lisa__model_total_bytes(const lisa_config *c) {
    lisa_layout L = lisa_layout_of(c);
    lisa__model_sizes s = lisa__model_sizes_of(&L, c->n_layers);
    return s.params + s.layers;
}

static lisa_result lisa__model_alloc(lisa_model *m, const lisa_config *resolved,
                                     const lisa_allocator *a, const char *name, lisa_error *err) {
    lisa__model_sizes s;
    memset(m, 0, sizeof *m);
    m->config = *resolved;
    m->layout = lisa_layout_of(resolved);
    m->allocator = lisa__allocator_or_default(a);
    s = lisa__model_sizes_of(&m->layout, resolved->n_layers);
    m->params = (float *)lisa__alloc(&m->allocator, s.params, &m->bytes);
    m->layers = (lisa_layer_weights *)lisa__alloc(&m->allocator, s.layers, &m->bytes);
    if (!m->params || !m->layers) {
        lisa_model_free(m);
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %.0f parameters",
                          name ? name : "model", (double)lisa_layout_of(resolved).n_params);
    }
    memset(m->params, 0, s.params);
    lisa__model_point(m);
    return LISA_OK;
}

LISADEF lisa_result lisa_model_init(lisa_model *m, const lisa_config *c,
                                    const lisa_allocator *a, lisa_error *err) {
    lisa_config rc = *c;
    lisa_result r;
    memset(m, 0, sizeof *m);
    r = lisa__config_check(&rc, NULL, err);
    if (r != LISA_OK) return r;
    r = lisa__model_alloc(m, &rc, a, NULL, err);
    if (r == LISA_OK) lisa__ok(err);
    return r;
}

LISADEF void lisa_model_free(lisa_model *m) {
    lisa__model_sizes s = lisa__model_sizes_of(&m->layout, m->config.n_layers);
    lisa__free(&m->allocator, m->params, s.params, &m->bytes);
    lisa__free(&m->allocator, m->layers, s.layers, &m->bytes);
    m->params = NULL;
    m->layers = NULL;
    m->embed = m->head = m->final_norm = NULL;
}

LISADEF int lisa_model_n_tensors(const lisa_model *m) {
    return 2 + 9 * m->config.n_layers + (m->config.tied_head ? 0 : 1);
}

/* The index-th tensor of the block descriptions, in block order. */
LISADEF lisa_param lisa_model_tensor(const lisa_model *m, int index) {
    const lisa_config *c = &m->config;
    lisa_param p;
    lisa_block_desc d;
    const lisa_block_tensor *x;
    int b = 0, i = index;
    memset(&p, 0, sizeof p);
    LISA_ASSERT(index >= 0 && index < lisa_model_n_tensors(m));
    for (d = lisa_block_describe(c, 0); i >= d.n_tensors; d = lisa_block_describe(c, ++b)) i -= d.n_tensors;
    x = &d.tensors[i];
    if (d.kind == LISA_BLOCK_KIND_LAYER) snprintf(p.name, sizeof p.name, "layers.%d.%s", d.layer, x->name);
    else strcpy(p.name, x->name);
    p.block = b;
    p.offset = d.offset + x->offset;
    p.decay = x->decay;
    p.tensor.ndim = x->cols ? 2 : 1;
    p.tensor.shape[0] = x->rows;
    p.tensor.shape[1] = x->cols;
    p.tensor.data = m->params + p.offset;
    return p;
}

/* Each tensor's std comes from the block descriptions, in block order. */
LISADEF void lisa_model_init_random(lisa_model *m, uint64_t seed) {
    const lisa_config *c = &m->config;
    lisa_rng rng;
    int b, i;
    lisa_rng_seed(&rng, seed);
    for (b = 0; b < lisa_n_blocks(c); b++) {
        lisa_block_desc d = lisa_block_describe(c, b);
        for (i = 0; i < d.n_tensors; i++) {
            float *p = m->params + d.offset + d.tensors[i].offset, std = d.tensors[i].init_std;
            size_t j;
            for (j = 0; j < d.tensors[i].size; j++) p[j] = std != 0.0f ? std * lisa_rng_normal(&rng) : 1.0f;
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Activations                                                                */
/* ------------------------------------------------------------------------- */

/* Takes n floats at offset *at (in floats) of a buffer: every buffer below is
   laid out by a run of these steps, once to count (base NULL, the size queries)
   and once to place (base the allocation), so sizes and positions cannot drift. */
static float *lisa__carve(float *base, size_t *at, size_t n) {
    size_t start = *at;
    *at += n;
    return base ? base + start : NULL;
}

/* Floats per position of the keys (and of the values): n_kv_heads * head_dim. */
static size_t lisa__kv_dim(const lisa_config *c) {
    return (size_t)c->dim / (size_t)c->n_heads * (size_t)c->n_kv_heads;
}

/* One layer's saved activations. */
typedef struct lisa__layer_acts {
    float *rstd1, *xn1, *q, *k, *v, *lse, *att, *x_mid, *rstd2, *xn2, *h1, *h3, *hg;
} lisa__layer_acts;

/* Lays out one layer's set for batches up to (B, T) at base; returns its floats. */
static size_t lisa__layer_set_carve(lisa__layer_acts *s, float *base, const lisa_config *c, size_t B,
                                    size_t T) {
    size_t BT = B * T, D = (size_t)c->dim, H = (size_t)c->hidden_dim, kv = lisa__kv_dim(c), at = 0;
    s->rstd1 = lisa__carve(base, &at, BT);
    s->xn1 = lisa__carve(base, &at, BT * D);
    s->q = lisa__carve(base, &at, BT * D);
    s->k = lisa__carve(base, &at, BT * kv);
    s->v = lisa__carve(base, &at, BT * kv);
    s->lse = lisa__carve(base, &at, B * (size_t)c->n_heads * T);
    s->att = lisa__carve(base, &at, BT * D);
    s->x_mid = lisa__carve(base, &at, BT * D);
    s->rstd2 = lisa__carve(base, &at, BT);
    s->xn2 = lisa__carve(base, &at, BT * D);
    s->h1 = lisa__carve(base, &at, BT * H);
    s->h3 = lisa__carve(base, &at, BT * H);
    s->hg = lisa__carve(base, &at, BT * H);
    return at;
}

static lisa__layer_acts lisa__layer_set(const lisa_acts *a, int layer) {
    lisa__layer_acts s;
    float *base = a->saved + (a->checkpointing ? 0 : (size_t)layer * a->saved_stride);
    lisa__layer_set_carve(&s, base, &a->config, (size_t)a->B, (size_t)a->T);
    return s;
}

/* Backward scratch for BT rows: the residual gradient, a normed-input gradient, and one
   region shared by the attention gradients (datt dq dk dv) and the MLP gradients
   (dh1 dh3 dhg), which are never live at the same time. */
typedef struct lisa__grad_scratch {
    float *dres, *dxn;                 /* (BT, dim) */
    float *datt, *dq, *dk, *dv;        /* attention: (BT, dim) twice, (BT, kv_dim) twice */
    float *dh1, *dh3, *dhg;            /* MLP, over the attention's: (BT, hidden_dim) each */
} lisa__grad_scratch;

/* Lays out the scratch for BT rows at base; returns its floats. Backward lays it
   out for the rows it runs on, inside the room counted for the largest batch. */
static size_t lisa__grad_scratch_carve(lisa__grad_scratch *g, float *base, const lisa_config *c, size_t BT) {
    size_t D = (size_t)c->dim, H = (size_t)c->hidden_dim, kv = lisa__kv_dim(c), at = 0, shared, attn_end;
    g->dres = lisa__carve(base, &at, BT * D);
    g->dxn = lisa__carve(base, &at, BT * D);
    shared = at;
    g->datt = lisa__carve(base, &at, BT * D);
    g->dq = lisa__carve(base, &at, BT * D);
    g->dk = lisa__carve(base, &at, BT * kv);
    g->dv = lisa__carve(base, &at, BT * kv);
    attn_end = at;
    at = shared;
    g->dh1 = lisa__carve(base, &at, BT * H);
    g->dh3 = lisa__carve(base, &at, BT * H);
    g->dhg = lisa__carve(base, &at, BT * H);
    return LISA__MAX(at, attn_end);
}

/* a's backward scratch laid out for the BT rows of the last forward. */
static lisa__grad_scratch lisa__grad_scratch_for(const lisa_acts *a, size_t BT) {
    lisa__grad_scratch g;
    lisa__grad_scratch_carve(&g, a->grad_scratch, &a->config, BT);
    return g;
}

/* Elements of an activations object: floats kept from forward to backward,
   floats of backward scratch (after them in the same buffer), and ints. */
typedef struct lisa__acts_count {
    size_t kept, scratch, ints;
} lisa__acts_count;

/* The one place activations are sized and placed: lays out a's buffers for its
   config, B, T and checkpointing at floats and ints (NULL: counting only). */
static lisa__acts_count lisa__acts_carve(lisa_acts *a, float *floats, int *ints) {
    const lisa_config *c = &a->config;
    size_t BT = (size_t)a->B * a->T, D = (size_t)c->dim, at = 0;
    size_t sets = a->checkpointing ? 1 : (size_t)c->n_layers;
    lisa__layer_acts set;
    lisa__grad_scratch g;
    lisa__acts_count n;
    n.ints = 2 * BT; /* the batch's inputs, then its targets */
    a->inputs = ints;
    a->targets = ints ? ints + BT : NULL;
    a->saved_stride = lisa__layer_set_carve(&set, NULL, c, (size_t)a->B, (size_t)a->T);
    a->layer_in = lisa__carve(floats, &at, ((size_t)c->n_layers + 1) * BT * D);
    a->saved = lisa__carve(floats, &at, sets * a->saved_stride);
    a->final_rstd = lisa__carve(floats, &at, BT);
    a->final_xn = lisa__carve(floats, &at, BT * D);
    a->logits = lisa__carve(floats, &at, BT * (size_t)c->vocab_size);
    a->row_loss = lisa__carve(floats, &at, BT);
    a->row_lse = lisa__carve(floats, &at, BT);
    a->rope = lisa__carve(floats, &at, (size_t)a->T * (D / (size_t)c->n_heads));
    n.kept = at;
    a->grad_scratch = lisa__carve(floats, &at, lisa__grad_scratch_carve(&g, NULL, c, BT));
    n.scratch = at - n.kept;
    return n;
}

static lisa__acts_count lisa__acts_count_of(const lisa_config *c, int B, int T, int checkpointing) {
    lisa_acts a;
    memset(&a, 0, sizeof a);
    a.config = *c;
    a.B = B;
    a.T = T;
    a.checkpointing = checkpointing ? 1 : 0;
    return lisa__acts_carve(&a, NULL, NULL);
}

LISADEF void lisa_acts_size(const lisa_config *c, int B, int T, int checkpointing,
                            size_t *activation_bytes, size_t *scratch_bytes) {
    lisa__acts_count n = lisa__acts_count_of(c, B, T, checkpointing);
    if (activation_bytes) *activation_bytes = n.kept * sizeof(float) + n.ints * sizeof(int);
    if (scratch_bytes) *scratch_bytes = n.scratch * sizeof(float);
}

LISADEF lisa_result lisa_acts_init(lisa_acts *a, const lisa_config *c, int B, int T,
                                   int checkpointing, const lisa_allocator *al, lisa_error *err) {
    lisa_config rc = *c;
    lisa_result r;
    lisa__acts_count n;
    memset(a, 0, sizeof *a);
    r = lisa__config_check(&rc, NULL, err);
    if (r != LISA_OK) return r;
    if (B <= 0 || T <= 0 || T > rc.max_seq_len)
        return lisa__fail(err, LISA_ERR_INVALID, "batch %d x seq %d: need batch >= 1 and 1 <= seq <= max_seq_len %d",
                          B, T, rc.max_seq_len);
    a->config = rc;
    a->B = B;
    a->T = T;
    a->checkpointing = checkpointing ? 1 : 0;
    a->allocator = lisa__allocator_or_default(al);
    lisa_acts_size(&rc, B, T, a->checkpointing, &a->activation_bytes, &a->scratch_bytes);
    n = lisa__acts_count_of(&rc, B, T, a->checkpointing);
    a->n_floats = n.kept + n.scratch;
    a->buffer = (float *)lisa__alloc(&a->allocator, a->n_floats * sizeof(float), &a->bytes);
    a->inputs = (int *)lisa__alloc(&a->allocator, n.ints * sizeof(int), &a->bytes);
    if (!a->buffer || !a->inputs) {
        lisa_acts_free(a);
        return lisa__fail(err, LISA_ERR_NOMEM, "out of memory for %.0f bytes of activations",
                          (double)(a->activation_bytes + a->scratch_bytes));
    }
    lisa__acts_carve(a, a->buffer, a->inputs);
    lisa__ok(err);
    return LISA_OK;
}

LISADEF void lisa_acts_free(lisa_acts *a) {
    if (a->buffer || a->inputs) { /* only then is a->config resolved */
        lisa__acts_count n = lisa__acts_count_of(&a->config, a->B, a->T, a->checkpointing);
        lisa__free(&a->allocator, a->buffer, (n.kept + n.scratch) * sizeof(float), &a->bytes);
        lisa__free(&a->allocator, a->inputs, n.ints * sizeof(int), &a->bytes);
    }
    a->buffer = NULL;
    a->inputs = a->targets = NULL;
}

/* ------------------------------------------------------------------------- */
/* LoRA adapters                                                              */
/* ------------------------------------------------------------------------- */

LISADEF const char *lisa_lora_target_name(int target) {
    static const char *const names[LISA_LORA_N_TARGETS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                           "gate_proj", "up_proj", "down_proj"};
    return target >= 0 && target < LISA_LORA_N_TARGETS ? names[target] : "?";
}

#define LISA__LORA_MAX_RANK 4096

LISADEF lisa_result lisa_lora_config_resolve(lisa_lora_config *lc, const lisa_config *c, lisa_error *err) {
    (void)c;
    if (lc->rank == 0) lc->rank = 8;
    if (lc->alpha == 0.0f) lc->alpha = 16.0f;
    if (lc->targets == 0) lc->targets = LISA_LORA_ALL;
    if (lc->rank < 1 || lc->rank > LISA__LORA_MAX_RANK)
        return lisa__fail(err, LISA_ERR_INVALID, "LoRA rank %d: need 1 to %d", lc->rank, LISA__LORA_MAX_RANK);
    if (!(lc->alpha > 0.0f && lc->alpha <= 1e6f))
        return lisa__fail(err, LISA_ERR_INVALID, "LoRA alpha %g: need a finite value > 0", (double)lc->alpha);
    if (lc->targets & ~LISA_LORA_ALL)
        return lisa__fail(err, LISA_ERR_INVALID, "LoRA targets 0x%x: only the seven projections (bits 0..6) exist",
                          lc->targets);
    if ((unsigned)lc->train_embed > 1 || (unsigned)lc->train_head > 1 || (unsigned)lc->train_norms > 1)
        return lisa__fail(err, LISA_ERR_INVALID, "%s", "LoRA train_embed, train_head and train_norms: need 0 or 1");
    return LISA_OK;
}

/* The one place adapter sizes and offsets are computed: fills l's shape
   fields for config c (both resolved). */
static void lisa__lora_layout(lisa_lora *l, const lisa_config *c, const lisa_lora_config *lc) {
    int D = c->dim, H = c->hidden_dim, kv = c->dim / c->n_heads * c->n_kv_heads, t;
    const int in[LISA_LORA_N_TARGETS] = {D, D, D, D, D, D, H};
    const int out[LISA_LORA_N_TARGETS] = {D, kv, kv, D, H, H, D};
    size_t at = 0, R = (size_t)lc->rank;
    l->config = *lc;
    l->scale = lc->alpha / (float)lc->rank;
    l->n_layers = c->n_layers;
    l->head_dim = c->dim / c->n_heads;
    l->n_targets = 0;
    for (t = 0; t < LISA_LORA_N_TARGETS; t++) {
        l->in_dim[t] = in[t];
        l->out_dim[t] = out[t];
        l->slot[t] = -1;
        l->a_off[t] = l->b_off[t] = 0;
        if (!(lc->targets >> t & 1u)) continue;
        l->slot[t] = l->n_targets++;
        l->a_off[t] = at;
        at += R * (size_t)in[t];
        l->b_off[t] = at;
        at += (size_t)out[t] * R;
    }
    l->layer_size = at;
}

/* Floats of each kind: weights, kept products (one set per layer, or one
   with checkpointing, as the activations), backward scratch. */
static void lisa__lora_counts(const lisa_lora *l, int B, int T, int checkpointing, size_t *params, size_t *kept,
                              size_t *scratch) {
    size_t BT = B > 0 && T > 0 ? (size_t)B * (size_t)T : 0, sets = checkpointing ? 1 : (size_t)l->n_layers;
    *params = (size_t)l->n_layers * l->layer_size;
    *kept = sets * (size_t)l->n_targets * BT * (size_t)l->config.rank;
    *scratch = BT * (size_t)l->config.rank;
}

LISADEF void lisa_lora_size(const lisa_config *c, const lisa_lora_config *lc, int B, int T, int checkpointing,
                            size_t *param_bytes, size_t *activation_bytes, size_t *scratch_bytes) {
    lisa_lora l;
    size_t p, k, s;
    lisa__lora_layout(&l, c, lc);
    lisa__lora_counts(&l, B, T, checkpointing, &p, &k, &s);
    if (param_bytes) *param_bytes = p * sizeof(float);
    if (activation_bytes) *activation_bytes = k * sizeof(float);
    if (scratch_bytes) *scratch_bytes = s * sizeof(float);
}

LISADEF lisa_result lisa_lora_init(lisa_lora *l, const lisa_config *c, const lisa_lora_config *lc, int B, int T,
                                   int checkpointing, const lisa_allocator *a, lisa_error *err) {
    lisa_lora_config rl = *lc;
    lisa_result r;
    size_t p, k, s;
    memset(l, 0, sizeof *l);
    if ((r = lisa_lora_config_resolve(&rl, c, err)) != LISA_OK) return r;
    lisa__lora_layout(l, c, &rl);
    l->B = B > 0 && T > 0 ? B : 0;
    l->T = B > 0 && T > 0 ? T : 0;
    l->checkpointing = checkpointing ? 1 : 0;
    l->allocator = lisa__allocator_or_default(a);
    lisa__lora_counts(l, l->B, l->T, l->checkpointing, &p, &k, &s);
    l->param_bytes = p * sizeof(float);
    l->activation_bytes = k * sizeof(float);
    l->scratch_bytes = s * sizeof(float);
    l->params = (float *)lisa__alloc(&l->allocator, l->param_bytes, &l->bytes);
    if (k + s) l->saved = (float *)lisa__alloc(&l->allocator, (k + s) * sizeof(float), &l->bytes);
    if (!l->params || (k + s && !l->saved)) {
        lisa_lora_free(l);
        return lisa__fail(err, LISA_ERR_NOMEM, "out of memory for %.0f bytes of LoRA adapters",
                          (double)((p + k + s) * sizeof(float)));
    }
    memset(l->params, 0, l->param_bytes);
    if (l->saved) {
        memset(l->saved, 0, (k + s) * sizeof(float));
        l->du = l->saved + k;
    }
    return LISA_OK;
}

LISADEF void lisa_lora_free(lisa_lora *l) {
    size_t p, k, s;
    if (!l->params && !l->saved) return;
    lisa__lora_counts(l, l->B, l->T, l->checkpointing, &p, &k, &s);
    lisa__free(&l->allocator, l->params, p * sizeof(float), &l->bytes);
    if (l->saved) lisa__free(&l->allocator, l->saved, (k + s) * sizeof(float), &l->bytes);
    l->params = l->saved = l->du = NULL;
}

LISADEF float *lisa_lora_a(const lisa_lora *l, int layer, int target) {
    if (target < 0 || target >= LISA_LORA_N_TARGETS || l->slot[target] < 0) return NULL;
    return l->params + (size_t)layer * l->layer_size + l->a_off[target];
}

LISADEF float *lisa_lora_b(const lisa_lora *l, int layer, int target) {
    if (target < 0 || target >= LISA_LORA_N_TARGETS || l->slot[target] < 0) return NULL;
    return l->params + (size_t)layer * l->layer_size + l->b_off[target];
}

LISADEF void lisa_lora_init_random(lisa_lora *l, uint64_t seed) {
    lisa_rng rng;
    int layer, t;
    size_t i;
    lisa_rng_seed(&rng, seed);
    for (layer = 0; layer < l->n_layers; layer++)
        for (t = 0; t < LISA_LORA_N_TARGETS; t++) {
            float *a = lisa_lora_a(l, layer, t), *b = lisa_lora_b(l, layer, t);
            /* kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in) */
            float bound = 1.0f / sqrtf((float)l->in_dim[t]);
            if (!a) continue;
            for (i = 0; i < (size_t)l->config.rank * l->in_dim[t]; i++)
                a[i] = (2.0f * lisa_rng_uniform(&rng) - 1.0f) * bound;
            memset(b, 0, (size_t)l->out_dim[t] * l->config.rank * sizeof(float));
        }
}

/* The base weight of target t in layer weights w. */
static float *lisa__lora_base(const lisa_layer_weights *w, int t) {
    float *const p[LISA_LORA_N_TARGETS] = {w->wq, w->wk, w->wv, w->wo, w->w1, w->w3, w->w2};
    return p[t];
}

LISADEF void lisa_lora_merge(lisa_model *m, const lisa_lora *l) {
    int layer, t, R = l->config.rank;
    LISA_ASSERT(l->n_layers == m->config.n_layers);
    for (layer = 0; layer < l->n_layers; layer++)
        for (t = 0; t < LISA_LORA_N_TARGETS; t++) {
            const float *a = lisa_lora_a(l, layer, t), *b = lisa_lora_b(l, layer, t);
            float *w = lisa__lora_base(&m->layers[layer], t);
            int o, i, k, in = l->in_dim[t];
            if (!a) continue;
            /* as peft merges: W + (B @ A) * scale */
            for (o = 0; o < l->out_dim[t]; o++)
                for (i = 0; i < in; i++) {
                    float d = 0.0f;
                    for (k = 0; k < R; k++) d += b[(size_t)o * R + k] * a[(size_t)k * in + i];
                    w[(size_t)o * in + i] += d * l->scale;
                }
        }
}

/* The kept product (scale x A^T) of target t in layer l's set. */
static float *lisa__lora_saved(const lisa_lora *l, const lisa_acts *a, int layer, int t) {
    size_t set = a->checkpointing ? 0 : (size_t)layer;
    return l->saved + (set * (size_t)l->n_targets + (size_t)l->slot[t]) * (size_t)l->B * l->T * l->config.rank;
}

/* A projection of layer l: plain, or with its adapter when m has one for it. */
static void lisa__proj_forward(const lisa_model *m, const lisa_acts *a, int layer, int t, float *out, const float *x,
                               const float *w, int n, int in_dim, int out_dim) {
    const lisa_lora *l = m->lora;
    if (!l || l->slot[t] < 0) {
        lisa_linear_forward(out, x, w, n, in_dim, out_dim);
        return;
    }
    LISA_ASSERT(l->saved && (size_t)n <= (size_t)l->B * l->T && (a->checkpointing || !l->checkpointing));
    lisa_lora_linear_forward(out, lisa__lora_saved(l, a, layer, t), x, w, lisa_lora_a(l, layer, t),
                             lisa_lora_b(l, layer, t), l->scale, n, in_dim, out_dim, l->config.rank);
}

/* Only the kept product of target t, as lisa_lora_linear_forward() computes it. */
static void lisa__lora_keep(const lisa_model *m, const lisa_acts *a, int layer, int t, const float *x, int n) {
    const lisa_lora *l = m->lora;
    float *xa = lisa__lora_saved(l, a, layer, t);
    size_t i, nr = (size_t)n * l->config.rank;
    lisa_linear_forward(xa, x, lisa_lora_a(l, layer, t), n, l->in_dim[t], l->config.rank);
    for (i = 0; i < nr; i++) xa[i] *= l->scale;
}

/* Its backward; ga is layer l's adapter gradient or NULL. */
static void lisa__proj_backward(const lisa_model *m, const lisa_acts *a, int layer, int t, float *dx, float *dw,
                                float *ga, const float *dout, const float *x, const float *w, int n, int in_dim,
                                int out_dim) {
    const lisa_lora *l = m->lora;
    if (!l || l->slot[t] < 0) {
        lisa_linear_backward(dx, dw, dout, x, w, n, in_dim, out_dim);
        return;
    }
    lisa_lora_linear_backward(dx, dw, ga ? ga + l->a_off[t] : NULL, ga ? ga + l->b_off[t] : NULL, l->du, dout, x,
                              lisa__lora_saved(l, a, layer, t), w, lisa_lora_a(l, layer, t), lisa_lora_b(l, layer, t),
                              l->scale, n, in_dim, out_dim, l->config.rank);
}

/* Where a layer's norm gradient goes: its block's gradient, else (train_norms)
   after the adapters in the adapter gradient; which 0 attn_norm, 1 mlp_norm. */
static float *lisa__norm_grad(const lisa_model *m, float *g, float *ga, int which) {
    if (g) return g + (which ? m->layout.layer.mlp_norm : m->layout.layer.attn_norm);
    if (ga && m->lora->config.train_norms) return ga + m->lora->layer_size + (size_t)which * m->config.dim;
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* Forward and backward                                                       */
/* ------------------------------------------------------------------------- */

/* Runs decoder layer l on a->layer_in[l] into its saved set. When out is
   non-NULL the layer output (x_mid + w2(hg)) goes there; a recompute for
   backward passes NULL, since only the saved values are needed. */
static void lisa__layer_forward(const lisa_model *m, lisa_acts *a, int l, int B, int T, float *out) {
    const lisa_config *c = &m->config;
    const lisa_layer_weights *w = &m->layers[l];
    int BT = B * T, D = c->dim, H = c->hidden_dim, hd = c->dim / c->n_heads;
    int kv = hd * c->n_kv_heads;
    const float *x = a->layer_in + (size_t)l * a->B * a->T * D;
    lisa__layer_acts s = lisa__layer_set(a, l);
    a->held_layer = l;
    lisa_rmsnorm_forward(s.xn1, s.rstd1, x, w->attn_norm, BT, D, c->norm_eps);
    lisa__proj_forward(m, a, l, LISA_LORA_Q, s.q, s.xn1, w->wq, BT, D, D);
    lisa__proj_forward(m, a, l, LISA_LORA_K, s.k, s.xn1, w->wk, BT, D, kv);
    lisa__proj_forward(m, a, l, LISA_LORA_V, s.v, s.xn1, w->wv, BT, D, kv);
    lisa__rope_turn(s.q, s.q, s.k, s.k, B, T, c->n_heads, c->n_kv_heads, hd, 0, c->rope_theta, 1.0f, 0, a->rope);
    lisa_attention_forward(s.att, s.lse, s.q, s.k, s.v, B, T, c->n_heads, c->n_kv_heads, hd);
    lisa__proj_forward(m, a, l, LISA_LORA_O, s.x_mid, s.att, w->wo, BT, D, D);
    lisa_residual_forward(s.x_mid, s.x_mid, x, (size_t)BT * D);
    lisa_rmsnorm_forward(s.xn2, s.rstd2, s.x_mid, w->mlp_norm, BT, D, c->norm_eps);
    lisa__proj_forward(m, a, l, LISA_LORA_GATE, s.h1, s.xn2, w->w1, BT, D, H);
    lisa__proj_forward(m, a, l, LISA_LORA_UP, s.h3, s.xn2, w->w3, BT, D, H);
    lisa_swiglu_forward(s.hg, s.h1, s.h3, (size_t)BT * H);
    if (!out && m->lora && m->lora->slot[LISA_LORA_DOWN] >= 0)
        lisa__lora_keep(m, a, l, LISA_LORA_DOWN, s.hg, BT); /* a recompute needs the down adapter's product */
    if (out) {
        lisa__proj_forward(m, a, l, LISA_LORA_DOWN, out, s.hg, w->w2, BT, H, D);
        lisa_residual_forward(out, out, s.x_mid, (size_t)BT * D);
    }
}

LISADEF float lisa_model_forward(const lisa_model *m, lisa_acts *a, const int *inputs,
                                 const int *targets, int B, int T) {
    const lisa_config *c = &m->config;
    size_t BT = (size_t)B * T, D = (size_t)c->dim, stride = (size_t)a->B * a->T * D;
    int l, i;
    LISA_ASSERT(B >= 1 && B <= a->B && T >= 1 && T <= a->T);
    LISA_ASSERT(a->config.dim == c->dim && a->config.n_layers == c->n_layers &&
                a->config.vocab_size == c->vocab_size && a->config.hidden_dim == c->hidden_dim);
    a->B_used = B;
    a->T_used = T;
    for (i = 0; i < (int)BT; i++) {
        LISA_ASSERT(inputs[i] >= 0 && inputs[i] < c->vocab_size);
        a->inputs[i] = inputs[i];
        a->targets[i] = targets ? targets[i] : LISA_IGNORE;
        LISA_ASSERT(a->targets[i] < c->vocab_size);
    }
    lisa_embedding_forward(a->layer_in, a->inputs, m->embed, (int)BT, c->dim);
    lisa__rope_table(a->rope, T, c->dim / c->n_heads, 0, c->rope_theta);
    for (l = 0; l < c->n_layers; l++)
        lisa__layer_forward(m, a, l, B, T, a->layer_in + (size_t)(l + 1) * stride);
    lisa_rmsnorm_forward(a->final_xn, a->final_rstd, a->layer_in + (size_t)c->n_layers * stride,
                         m->final_norm, (int)BT, c->dim, c->norm_eps);
    lisa_linear_forward(a->logits, a->final_xn, m->head, (int)BT, c->dim, c->vocab_size);
    lisa__cross_entropy_rows(a->row_loss, a->row_lse, a->logits, a->targets, (int)BT, c->vocab_size);
    a->loss = lisa__mean_counted(a->row_loss, a->targets, (int)BT, &a->n_counted);
    (void)D;
    return a->loss;
}

/* Pointer into a block's gradient for one tensor of a layer, or NULL. */
static float *lisa__grad_at(float *block_grad, size_t offset) {
    return block_grad ? block_grad + offset : NULL;
}

/* Backward through decoder layer l, with the scratch laid out for B * T rows.
   d->dres holds d(loss)/d(layer output) on entry and d(loss)/d(layer input) on
   return. g is the layer's block gradient or NULL (frozen: no weight-gradient
   products). */
static void lisa__layer_backward(const lisa_model *m, lisa_acts *a, int l, int B, int T,
                                 const lisa__grad_scratch *d, float *g, float *ga) {
    const lisa_config *c = &m->config;
    const lisa_layer_weights *w = &m->layers[l];
    const lisa_layer_layout *y = &m->layout.layer;
    int BT = B * T, D = c->dim, H = c->hidden_dim, hd = c->dim / c->n_heads;
    int kv = hd * c->n_kv_heads;
    size_t BTmax = (size_t)a->B * a->T;
    const float *x = a->layer_in + (size_t)l * BTmax * D;
    lisa__layer_acts s = lisa__layer_set(a, l);
    float *dres = d->dres, *dxn = d->dxn, *dh1 = d->dh1, *dh3 = d->dh3, *dhg = d->dhg;
    float *datt = d->datt, *dq = d->dq, *dk = d->dk, *dv = d->dv;

    /* MLP: out = x_mid + w2(silu(w1 xn2) * w3 xn2), xn2 = rmsnorm(x_mid) */
    memset(dh1, 0, (size_t)BT * H * sizeof(float));
    memset(dh3, 0, (size_t)BT * H * sizeof(float));
    memset(dhg, 0, (size_t)BT * H * sizeof(float));
    memset(dxn, 0, (size_t)BT * D * sizeof(float));
    lisa__proj_backward(m, a, l, LISA_LORA_DOWN, dhg, lisa__grad_at(g, y->w2), ga, dres, s.hg, w->w2, BT, H, D);
    lisa_swiglu_backward(dh1, dh3, dhg, s.h1, s.h3, (size_t)BT * H);
    lisa__proj_backward(m, a, l, LISA_LORA_GATE, dxn, lisa__grad_at(g, y->w1), ga, dh1, s.xn2, w->w1, BT, D, H);
    lisa__proj_backward(m, a, l, LISA_LORA_UP, dxn, lisa__grad_at(g, y->w3), ga, dh3, s.xn2, w->w3, BT, D, H);
    lisa_rmsnorm_backward(dres, lisa__norm_grad(m, g, ga, 1), dxn, s.x_mid, w->mlp_norm, s.rstd2, BT, D);

    /* Attention: x_mid = x + wo(attn(rope(wq xn1), rope(wk xn1), wv xn1)) */
    memset(datt, 0, (size_t)BT * D * sizeof(float));
    memset(dq, 0, (size_t)BT * D * sizeof(float));
    memset(dk, 0, (size_t)BT * kv * sizeof(float));
    memset(dv, 0, (size_t)BT * kv * sizeof(float));
    memset(dxn, 0, (size_t)BT * D * sizeof(float));
    lisa__proj_backward(m, a, l, LISA_LORA_O, datt, lisa__grad_at(g, y->wo), ga, dres, s.att, w->wo, BT, D, D);
    lisa_attention_backward(dq, dk, dv, datt, s.att, s.lse, s.q, s.k, s.v, B, T, c->n_heads,
                            c->n_kv_heads, hd);
    lisa__rope_turn(dq, dq, dk, dk, B, T, c->n_heads, c->n_kv_heads, hd, 0, c->rope_theta, -1.0f, 0, a->rope);
    lisa__proj_backward(m, a, l, LISA_LORA_Q, dxn, lisa__grad_at(g, y->wq), ga, dq, s.xn1, w->wq, BT, D, D);
    lisa__proj_backward(m, a, l, LISA_LORA_K, dxn, lisa__grad_at(g, y->wk), ga, dk, s.xn1, w->wk, BT, D, kv);
    lisa__proj_backward(m, a, l, LISA_LORA_V, dxn, lisa__grad_at(g, y->wv), ga, dv, s.xn1, w->wv, BT, D, kv);
    lisa_rmsnorm_backward(dres, lisa__norm_grad(m, g, ga, 0), dxn, x, w->attn_norm, s.rstd1, BT, D);
}

/* The loss scale of a mean over n_counted rows. */
static float lisa__mean_loss_scale(int n_counted) { return n_counted ? 1.0f / (float)n_counted : 0.0f; }

/* Gradients flow down only as far as some block below still wants them. */
LISADEF int lisa_backward_lowest_layer(const lisa_config *c, float *const *block_grads) {
    int l;
    if (block_grads[LISA_BLOCK_EMBED]) return -1;
    for (l = 0; l < c->n_layers; l++)
        if (block_grads[LISA_BLOCK_LAYER(l)]) return l;
    return c->n_layers;
}

LISADEF void lisa_model_backward(const lisa_model *m, lisa_acts *a, float *const *block_grads) {
    lisa_model_backward_scaled(m, a, block_grads, lisa__mean_loss_scale(a->n_counted));
}

LISADEF void lisa_model_backward_scaled(const lisa_model *m, lisa_acts *a, float *const *block_grads,
                                        float dloss) {
    const lisa_config *c = &m->config;
    int B = a->B_used, T = a->T_used, BT = B * T, D = c->dim, V = c->vocab_size, l, lowest, i;
    size_t BTmax = (size_t)a->B * a->T;
    lisa__grad_scratch scratch = lisa__grad_scratch_for(a, (size_t)BT);
    float *dres = scratch.dres, *dxn = scratch.dxn;
    float *g_embed = block_grads[LISA_BLOCK_EMBED];
    float *g_head = c->tied_head ? g_embed : block_grads[lisa_block_head(c)];

    /* Head: the logits buffer becomes d(loss)/d(logits) in place. */
    LISA__PARALLEL_FOR_IF((double)BT * V)
    for (i = 0; i < BT; i++) {
        float *row = a->logits + (size_t)i * V;
        lisa__cross_entropy_grad_row(row, row, a->row_lse[i], a->targets[i], V, dloss, 0);
    }
    memset(dxn, 0, (size_t)BT * D * sizeof(float));
    lisa_linear_backward(dxn, g_head, a->logits, a->final_xn, m->head, BT, D, V);
    memset(dres, 0, (size_t)BT * D * sizeof(float));
    lisa_rmsnorm_backward(dres, block_grads[lisa_block_final_norm(c)], dxn,
                          a->layer_in + (size_t)c->n_layers * BTmax * D, m->final_norm,
                          a->final_rstd, BT, D);

    lowest = lisa_backward_lowest_layer(c, block_grads);
    for (l = 0; m->lora && l < lowest; l++) /* adapter gradients, after the model's blocks */
        if (block_grads[lisa_n_blocks(c) + l]) lowest = l;
    for (l = c->n_layers - 1; l >= 0 && l >= lowest; l--) {
        if (a->checkpointing && a->held_layer != l) lisa__layer_forward(m, a, l, B, T, NULL);
        lisa__layer_backward(m, a, l, B, T, &scratch, block_grads[LISA_BLOCK_LAYER(l)],
                             m->lora ? block_grads[lisa_n_blocks(c) + l] : NULL);
    }
    if (g_embed) lisa_embedding_backward(g_embed, dres, a->inputs, BT, D);
}

/* ------------------------------------------------------------------------- */
/* Generation                                                                 */
/* ------------------------------------------------------------------------- */

/* The work area of a step: one position's activations, the logits, and the
   sampling scratch that lisa_generate() hands to lisa_sample_logits(). */
typedef struct lisa__step_work {
    float *x, *xn, *q, *att, *x_mid;   /* (dim) each */
    float *h1, *h3, *hg;               /* (hidden_dim) each */
    float *logits;                     /* (vocab) */
    float *sample;                     /* (2 * vocab) */
} lisa__step_work;

/* Lays out the work area at base (NULL: counting only); returns its floats. */
static size_t lisa__step_work_carve(lisa__step_work *w, float *base, const lisa_config *c) {
    size_t D = (size_t)c->dim, H = (size_t)c->hidden_dim, V = (size_t)c->vocab_size, at = 0;
    w->x = lisa__carve(base, &at, D);
    w->xn = lisa__carve(base, &at, D);
    w->q = lisa__carve(base, &at, D);
    w->att = lisa__carve(base, &at, D);
    w->x_mid = lisa__carve(base, &at, D);
    w->h1 = lisa__carve(base, &at, H);
    w->h3 = lisa__carve(base, &at, H);
    w->hg = lisa__carve(base, &at, H);
    w->logits = lisa__carve(base, &at, V);
    w->sample = lisa__carve(base, &at, 2 * V);
    return at;
}

static lisa__step_work lisa__step_work_of(const lisa_kv_cache *c) {
    lisa__step_work w;
    lisa__step_work_carve(&w, c->work, &c->config);
    return w;
}

/* Floats of a cache's two allocations: the keys and values, and the work area. */
typedef struct lisa__kv_count {
    size_t kv, work;
} lisa__kv_count;

/* The one place a cache is sized and placed: lays out c's buffers for its
   config and max_len at kv and work (NULL: counting only). */
static lisa__kv_count lisa__kv_cache_carve(lisa_kv_cache *c, float *kv, float *work) {
    size_t per_tensor = (size_t)c->config.n_layers * (size_t)c->max_len * lisa__kv_dim(&c->config);
    lisa__step_work w;
    lisa__kv_count n;
    n.kv = 0;
    c->k = lisa__carve(kv, &n.kv, per_tensor);
    c->v = lisa__carve(kv, &n.kv, per_tensor);
    n.work = lisa__step_work_carve(&w, work, &c->config);
    c->work = work;
    c->logits = w.logits;
    return n;
}

static lisa__kv_count lisa__kv_cache_count_of(const lisa_config *config, int max_len) {
    lisa_kv_cache c;
    memset(&c, 0, sizeof c);
    c.config = *config;
    c.max_len = max_len;
    return lisa__kv_cache_carve(&c, NULL, NULL);
}

LISADEF lisa_result lisa_kv_cache_init(lisa_kv_cache *c, const lisa_config *config, int max_len,
                                       const lisa_allocator *a, lisa_error *err) {
    lisa_config rc = *config;
    lisa_result r;
    lisa__kv_count n;
    float *kv, *work;
    memset(c, 0, sizeof *c);
    if ((r = lisa__config_check(&rc, NULL, err)) != LISA_OK) return r;
    if (max_len == 0) max_len = rc.max_seq_len;
    if (max_len < 1 || max_len > rc.max_seq_len)
        return lisa__fail(err, LISA_ERR_INVALID, "KV cache of %d positions: need 1 to max_seq_len %d", max_len,
                          rc.max_seq_len);
    c->config = rc;
    c->max_len = max_len;
    c->allocator = lisa__allocator_or_default(a);
    n = lisa__kv_cache_count_of(&rc, max_len);
    kv = (float *)lisa__alloc(&c->allocator, n.kv * sizeof(float), &c->bytes);
    work = (float *)lisa__alloc(&c->allocator, n.work * sizeof(float), &c->bytes);
    c->k = kv;
    c->work = work;
    if (!kv || !work) {
        lisa_kv_cache_free(c);
        return lisa__fail(err, LISA_ERR_NOMEM, "out of memory for a KV cache of %d positions", max_len);
    }
    lisa__kv_cache_carve(c, kv, work);
    lisa__ok(err);
    return LISA_OK;
}

LISADEF void lisa_kv_cache_free(lisa_kv_cache *c) {
    if (c->k || c->work) { /* only then is c->config resolved */
        lisa__kv_count n = lisa__kv_cache_count_of(&c->config, c->max_len);
        lisa__free(&c->allocator, c->k, n.kv * sizeof(float), &c->bytes);
        lisa__free(&c->allocator, c->work, n.work * sizeof(float), &c->bytes);
    }
    c->k = c->v = c->work = c->logits = NULL;
}

LISADEF void lisa_kv_cache_reset(lisa_kv_cache *c) { c->len = 0; }

LISADEF const float *lisa_model_step(const lisa_model *m, lisa_kv_cache *c, int token) {
    const lisa_config *cf = &m->config;
    int D = cf->dim, H = cf->hidden_dim, hd = D / cf->n_heads, group = cf->n_heads / cf->n_kv_heads;
    int pos = c->len, l, h, kv = hd * cf->n_kv_heads;
    float rstd;
    lisa__attention_dims ad = lisa__attention_dims_of(pos + 1, cf->n_heads, cf->n_kv_heads, hd);
    lisa__step_work work = lisa__step_work_of(c);
    float *x = work.x, *xn = work.xn, *q = work.q, *att = work.att, *x_mid = work.x_mid;
    float *h1 = work.h1, *h3 = work.h3, *hg = work.hg;
    LISA_ASSERT(pos < c->max_len && token >= 0 && token < cf->vocab_size && c->config.dim == D);
    lisa_embedding_forward(x, &token, m->embed, 1, D);
    for (l = 0; l < cf->n_layers; l++) {
        const lisa_layer_weights *w = &m->layers[l];
        float *kl = c->k + (size_t)l * c->max_len * kv, *vl = c->v + (size_t)l * c->max_len * kv;
        lisa_rmsnorm_forward(xn, &rstd, x, w->attn_norm, 1, D, cf->norm_eps);
        lisa_linear_forward(q, xn, w->wq, 1, D, D);
        lisa_linear_forward(kl + (size_t)pos * kv, xn, w->wk, 1, D, kv);
        lisa_linear_forward(vl + (size_t)pos * kv, xn, w->wv, 1, D, kv);
        lisa_rope_forward(q, q, 1, 1, cf->n_heads, hd, pos, cf->rope_theta);
        lisa_rope_forward(kl + (size_t)pos * kv, kl + (size_t)pos * kv, 1, 1, cf->n_kv_heads, hd, pos, cf->rope_theta);
        for (h = 0; h < cf->n_heads; h++) { /* the forward's blocks, one row: the same bits */
            float row_lse, s[LISA__KC];
            lisa__attention_rows(att + (size_t)h * hd, &row_lse, q + (size_t)h * hd, kl + (size_t)(h / group) * hd,
                                 vl + (size_t)(h / group) * hd, &ad, pos, 1, s, NULL);
        }
        lisa_linear_forward(x_mid, att, w->wo, 1, D, D);
        lisa_residual_forward(x_mid, x_mid, x, (size_t)D);
        lisa_rmsnorm_forward(xn, &rstd, x_mid, w->mlp_norm, 1, D, cf->norm_eps);
        lisa_linear_forward(h1, xn, w->w1, 1, D, H);
        lisa_linear_forward(h3, xn, w->w3, 1, D, H);
        lisa_swiglu_forward(hg, h1, h3, (size_t)H);
        lisa_linear_forward(x, hg, w->w2, 1, H, D);
        lisa_residual_forward(x, x, x_mid, (size_t)D);
    }
    lisa_rmsnorm_forward(xn, &rstd, x, m->final_norm, 1, D, cf->norm_eps);
    lisa_linear_forward(c->logits, xn, m->head, 1, D, cf->vocab_size);
    c->len++;
    return c->logits;
}

static void lisa__swap_pairs(float *p, int i, int j) {
    float t0 = p[2 * i], t1 = p[2 * i + 1];
    p[2 * i] = p[2 * j];
    p[2 * i + 1] = p[2 * j + 1];
    p[2 * j] = t0;
    p[2 * j + 1] = t1;
}

/* Restores the min-heap of (probability, id) pairs p[0..n) below root. */
static void lisa__sift_down(float *p, int root, int n) {
    int child;
    for (; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && p[2 * (child + 1)] < p[2 * child]) child++;
        if (p[2 * root] <= p[2 * child]) return;
        lisa__swap_pairs(p, root, child);
    }
}

/* Sorts (probability, id) pairs by probability, largest first: heap sort,
   O(n log n) with no recursion and no extra memory. */
static void lisa__sort_probs(float *p, int n) {
    int i;
    for (i = n / 2 - 1; i >= 0; i--) lisa__sift_down(p, i, n);
    for (i = n - 1; i > 0; i--) { /* the smallest goes to the back */
        lisa__swap_pairs(p, 0, i);
        lisa__sift_down(p, 0, i);
    }
}

LISADEF int lisa_sample_logits(const float *logits, int vocab, float temperature, float top_p,
                               lisa_rng *rng, float *work) {
    float m = logits[0], u;
    double sum = 0.0, acc = 0.0, kept = 0.0;
    int i, best = 0, n;
    for (i = 1; i < vocab; i++)
        if (logits[i] > m) {
            m = logits[i];
            best = i;
        }
    if (temperature <= 0.0f) return best;
    u = lisa_rng_uniform(rng);
    if (top_p >= 1.0f || !work) {
        for (i = 0; i < vocab; i++) sum += exp((double)(logits[i] - m) / temperature);
        for (i = 0; i < vocab; i++) {
            acc += exp((double)(logits[i] - m) / temperature) / sum;
            if (u < acc) return i;
        }
        return best; /* rounding left u above the total */
    }
    /* nucleus: (probability, id) pairs sorted by probability, largest first */
    for (i = 0; i < vocab; i++) sum += exp((double)(logits[i] - m) / temperature);
    for (i = 0; i < vocab; i++) {
        work[2 * i] = (float)(exp((double)(logits[i] - m) / temperature) / sum);
        work[2 * i + 1] = (float)i;
    }
    lisa__sort_probs(work, vocab);
    for (n = 0; n < vocab && kept < top_p; n++) kept += work[2 * n];
    for (i = 0; i < n; i++) {
        acc += work[2 * i] / kept;
        if (u < acc) return (int)work[2 * i + 1];
    }
    return (int)work[1];
}

LISADEF int lisa_generate(const lisa_model *m, lisa_kv_cache *c, const int *prompt, int n_prompt,
                          int *out, int max_new, float temperature, float top_p, int stop_token,
                          lisa_rng *rng) {
    const float *logits = NULL;
    float *work = lisa__step_work_of(c).sample;
    int i, n = 0;
    lisa_kv_cache_reset(c);
    for (i = 0; i < n_prompt && c->len < c->max_len; i++) logits = lisa_model_step(m, c, prompt[i]);
    while (logits && n < max_new) {
        int next = lisa_sample_logits(logits, m->config.vocab_size, temperature, top_p, rng, work);
        out[n++] = next;
        if (next == stop_token || c->len >= c->max_len) break;
        logits = lisa_model_step(m, c, next);
    }
    return n;
}

/* ------------------------------------------------------------------------- */
/* Optimizer, clipping, schedules                                             */
/* ------------------------------------------------------------------------- */

LISADEF lisa_adamw_scalars lisa_adamw_scalars_at(float lr, float beta1, float beta2, float eps,
                                                 float weight_decay, int step) {
    lisa_adamw_scalars a;
    double bc1 = 1.0 - pow((double)beta1, step), bc2 = 1.0 - pow((double)beta2, step);
    a.step_size = (float)(lr / bc1);
    a.bc2_sqrt = (float)sqrt(bc2);
    a.decay = (float)(1.0 - (double)lr * weight_decay);
    a.one_minus_b1 = (float)(1.0 - beta1);
    a.one_minus_b2 = (float)(1.0 - beta2);
    a.beta2 = beta2;
    a.eps = eps;
    return a;
}

/* One AdamW step of elements i0..i1-1. The update spelled out with fused
   multiply-adds where the target has them: m + (g - m)(1 - b1), v b2 +
   (1 - b2) g g and p - step m / (...) fused, the products the compiler fuses
   in the plain expressions, so that the vector loop (whose square root the
   compiler would not vectorize itself, as sqrtf may set errno) and the
   scalar one give the same bits. */
static void lisa__adamw_range(float *p, const float *g, float *m, float *v, size_t i0, size_t i1,
                              const lisa_adamw_scalars *a) {
    float decay = a->decay, one_minus_b1 = a->one_minus_b1, beta2 = a->beta2, one_minus_b2 = a->one_minus_b2;
    float step_size = a->step_size, bc2_sqrt = a->bc2_sqrt, eps = a->eps;
    size_t i = i0;
#if defined(LISA__GEMM_AVX512)
    __m512 vdecay = _mm512_set1_ps(decay), vb1 = _mm512_set1_ps(one_minus_b1), vbeta2 = _mm512_set1_ps(beta2);
    __m512 vb2 = _mm512_set1_ps(one_minus_b2), vstep = _mm512_set1_ps(step_size), vbc2 = _mm512_set1_ps(bc2_sqrt);
    __m512 veps = _mm512_set1_ps(eps);
    for (; i + 16 <= i1; i += 16) {
        __m512 gi = _mm512_loadu_ps(g + i), mi = _mm512_loadu_ps(m + i), vi = _mm512_loadu_ps(v + i);
        __m512 pi = _mm512_mul_ps(_mm512_loadu_ps(p + i), vdecay), den;
        mi = _mm512_fmadd_ps(_mm512_sub_ps(gi, mi), vb1, mi);
        vi = _mm512_fmadd_ps(vi, vbeta2, _mm512_mul_ps(_mm512_mul_ps(vb2, gi), gi));
        den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), vbc2), veps);
        pi = _mm512_fnmadd_ps(_mm512_div_ps(mi, den), vstep, pi);
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        _mm512_storeu_ps(p + i, pi);
    }
#elif defined(LISA__GEMM_AVX2)
    __m256 vdecay = _mm256_set1_ps(decay), vb1 = _mm256_set1_ps(one_minus_b1), vbeta2 = _mm256_set1_ps(beta2);
    __m256 vb2 = _mm256_set1_ps(one_minus_b2), vstep = _mm256_set1_ps(step_size), vbc2 = _mm256_set1_ps(bc2_sqrt);
    __m256 veps = _mm256_set1_ps(eps);
    for (; i + 8 <= i1; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i), mi = _mm256_loadu_ps(m + i), vi = _mm256_loadu_ps(v + i);
        __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), vdecay), den;
        mi = _mm256_fmadd_ps(_mm256_sub_ps(gi, mi), vb1, mi);
        vi = _mm256_fmadd_ps(vi, vbeta2, _mm256_mul_ps(_mm256_mul_ps(vb2, gi), gi));
        den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), vbc2), veps);
        pi = _mm256_fnmadd_ps(_mm256_div_ps(mi, den), vstep, pi);
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(p + i, pi);
    }
#endif
    for (; i < i1; i++) {
        float gi = g[i], pi = p[i] * decay;
        m[i] = LISA__FMAF(gi - m[i], one_minus_b1, m[i]);
        v[i] = LISA__FMAF(v[i], beta2, one_minus_b2 * gi * gi);
        p[i] = LISA__FMAF(-(m[i] / (sqrtf(v[i]) / bc2_sqrt + eps)), step_size, pi);
    }
}

/* Elements in fixed chunks, so threads split the work in whole vectors. */
#define LISA__ADAMW_CHUNK 16384

LISADEF void lisa_adamw_apply(float *p, const float *g, float *m, float *v, size_t n,
                              const lisa_adamw_scalars *a) {
    long long c, chunks = (long long)((n + LISA__ADAMW_CHUNK - 1) / LISA__ADAMW_CHUNK);
    LISA__PARALLEL_FOR_IF((double)n)
    for (c = 0; c < chunks; c++) {
        size_t i0 = (size_t)c * LISA__ADAMW_CHUNK;
        lisa__adamw_range(p, g, m, v, i0, LISA__MIN(n, i0 + LISA__ADAMW_CHUNK), a);
    }
}

LISADEF void lisa_adamw_update(float *p, const float *g, float *m, float *v, size_t n,
                               float lr, float beta1, float beta2, float eps,
                               float weight_decay, int step) {
    lisa_adamw_scalars a = lisa_adamw_scalars_at(lr, beta1, beta2, eps, weight_decay, step);
    lisa_adamw_apply(p, g, m, v, n, &a);
}

#define LISA__NORM_SEGMENTS 64

/* Sum of squares of x[0..n) in double lanes (element i in lane i % 16, the
   lanes combined in a fixed tree): independent chains that vectorize, in an
   order fixed by n alone. */
static double lisa__sum_squares_range(const float *x, size_t n) {
    double lane[LISA__ROW_LANES] = {0};
    size_t i;
    int l;
    for (i = 0; i + LISA__ROW_LANES <= n; i += LISA__ROW_LANES)
        for (l = 0; l < LISA__ROW_LANES; l++) lane[l] += (double)x[i + l] * x[i + l];
    for (l = 0; i + l < n; l++) lane[l] += (double)x[i + l] * x[i + l];
    return lisa__lanes_total(lane);
}

/* Sum of squares in double over fixed segments, added in order: the same
   result for any thread count. */
static double lisa__sum_squares(const float *x, size_t n) {
    double part[LISA__NORM_SEGMENTS], total = 0.0;
    int s;
    LISA__PARALLEL_FOR_IF((double)n)
    for (s = 0; s < LISA__NORM_SEGMENTS; s++) {
        size_t begin = n / LISA__NORM_SEGMENTS * s, end = s == LISA__NORM_SEGMENTS - 1 ? n : begin + n / LISA__NORM_SEGMENTS;
        part[s] = lisa__sum_squares_range(x + begin, end - begin);
    }
    for (s = 0; s < LISA__NORM_SEGMENTS; s++) total += part[s];
    return total;
}

static double lisa__sum_squares_all(float *const *grads, const size_t *sizes, int n_bufs) {
    double total = 0.0;
    int b;
    for (b = 0; b < n_bufs; b++)
        if (grads[b]) total += lisa__sum_squares(grads[b], sizes[b]);
    return total;
}

static void lisa__scale_all(float *const *grads, const size_t *sizes, int n_bufs, float coef) {
    int b;
    for (b = 0; b < n_bufs; b++) {
        long long i;
        float *g = grads[b];
        if (!g) continue;
        LISA__PARALLEL_FOR_IF((double)sizes[b])
        for (i = 0; i < (long long)sizes[b]; i++) g[i] *= coef;
    }
}

/* The factor clipping scales by: 1 when the norm is within max_norm (or clipping is off). */
static float lisa__clip_coef(float norm, float max_norm) {
    return max_norm > 0.0f && norm > max_norm ? max_norm / (norm + 1e-6f) : 1.0f;
}

LISADEF float lisa_clip_grad_norm(float *const *grads, const size_t *sizes, int n_bufs,
                                  float max_norm) {
    float norm = (float)sqrt(lisa__sum_squares_all(grads, sizes, n_bufs));
    float coef = lisa__clip_coef(norm, max_norm);
    if (coef != 1.0f) lisa__scale_all(grads, sizes, n_bufs, coef);
    return norm;
}

LISADEF float lisa_schedule_lr(const lisa_schedule *s, int step) {
    double progress;
    if (step < s->warmup) return (float)((double)s->lr * (step + 1) / s->warmup);
    if (s->kind == LISA_SCHEDULE_CONSTANT) return s->lr;
    progress = (double)(step - s->warmup) / LISA__MAX(1, s->total_steps - s->warmup);
    progress = LISA__MIN(1.0, LISA__MAX(0.0, progress));
    if (s->kind == LISA_SCHEDULE_COSINE)
        return (float)(s->min_lr + 0.5 * ((double)s->lr - s->min_lr) * (1.0 + cos(3.141592653589793 * progress)));
    return (float)(s->lr - ((double)s->lr - s->min_lr) * progress);
}

/* ------------------------------------------------------------------------- */
/* Trainer                                                                    */
/* ------------------------------------------------------------------------- */

LISADEF lisa_train_config lisa_train_config_default(void) {
    lisa_train_config c;
    memset(&c, 0, sizeof c);
    c.batch = 4;
    c.seq = 64;
    c.schedule.kind = LISA_SCHEDULE_CONSTANT;
    c.schedule.lr = 3e-4f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.mode = LISA_MODE_FULL;
    c.lisa_layers = 2;
    c.lisa_interval = 20;
    c.lisa_order = LISA_ORDER_RANDOM;
    return c;
}

/* --- the layer sampler ---------------------------------------------------- */

LISADEF void lisa_sampler_init(lisa_sampler *s, int n_layers, int gamma, lisa_layer_order order,
                               const float *probs, uint64_t seed) {
    LISA_ASSERT(n_layers >= 1 && gamma >= 1 && gamma <= n_layers);
    s->n_layers = n_layers;
    s->gamma = gamma;
    s->order = order;
    s->probs = probs;
    s->next = 0;
    lisa_rng_seed(&s->rng, seed);
}

static void lisa__sort_ints(int *x, int n) {
    int i, j;
    for (i = 1; i < n; i++)
        for (j = i; j > 0 && x[j - 1] > x[j]; j--) {
            int t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
}

static int lisa__contains(const int *x, int n, int v) {
    int i;
    for (i = 0; i < n; i++)
        if (x[i] == v) return 1;
    return 0;
}

/* One layer, by weight among those not in taken[0..n_taken). */
static int lisa__draw_weighted(lisa_sampler *s, const int *taken, int n_taken) {
    double total = 0.0, u;
    int l, last = -1;
    for (l = 0; l < s->n_layers; l++)
        if (!lisa__contains(taken, n_taken, l)) total += s->probs[l];
    u = (double)(lisa_rng_next(&s->rng) >> 11) * (1.0 / 9007199254740992.0) * total;
    for (l = 0; l < s->n_layers; l++) {
        if (lisa__contains(taken, n_taken, l) || s->probs[l] <= 0.0f) continue;
        last = l;
        if (u < s->probs[l]) return l;
        u -= s->probs[l];
    }
    return last; /* u landed on the far edge through rounding */
}

LISADEF void lisa_sampler_draw(lisa_sampler *s, int *layers) {
    int i;
    for (i = 0; i < s->gamma; i++) {
        int l;
        if (s->order == LISA_ORDER_CYCLIC) {
            l = s->next;
            s->next = (s->next + 1) % s->n_layers;
        } else if (s->probs) {
            l = lisa__draw_weighted(s, layers, i);
        } else {
            do /* rejection keeps it table-free; gamma is at most n_layers */
                l = (int)((double)(lisa_rng_next(&s->rng) >> 11) * (1.0 / 9007199254740992.0) * s->n_layers);
            while (lisa__contains(layers, i, l));
        }
        layers[i] = l;
    }
    lisa__sort_ints(layers, s->gamma);
}

/* --- configuration and sizes ---------------------------------------------- */

/* Fills in defaults and checks c against the model config mc. */
LISADEF lisa_result lisa_train_config_resolve(lisa_train_config *c, const lisa_config *mc, lisa_error *err) {
    int l, positive = 0;
    if (c->lisa_layers == 0) c->lisa_layers = 2;
    if (c->lisa_interval == 0) c->lisa_interval = 20;
    if (c->batch <= 0 || c->seq <= 0 || c->seq > mc->max_seq_len)
        return lisa__fail(err, LISA_ERR_INVALID, "batch %d x seq %d: need batch >= 1 and 1 <= seq <= max_seq_len %d",
                          c->batch, c->seq, mc->max_seq_len);
    /* An over-estimate of the activation bytes, in double: it must not wrap a size_t. */
    if ((double)c->batch * c->seq *
            (((double)mc->n_layers + 2.0) * (12.0 * mc->dim + 3.0 * mc->hidden_dim + mc->n_heads + 4.0) + mc->vocab_size) *
            sizeof(float) > (double)SIZE_MAX / 4)
        return lisa__fail(err, LISA_ERR_INVALID, "batch %d x seq %d: too large for this machine", c->batch, c->seq);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f && c->beta2 >= 0.0f && c->beta2 < 1.0f && c->eps >= 0.0f &&
          c->schedule.lr >= 0.0f && c->schedule.lr <= FLT_MAX && c->schedule.min_lr >= 0.0f &&
          c->schedule.min_lr <= FLT_MAX && c->weight_decay >= 0.0f && c->grad_clip >= 0.0f &&
          c->schedule.warmup >= 0 && c->schedule.warmup <= LISA__MAX_STEPS && c->schedule.total_steps >= 0 &&
          c->schedule.total_steps <= LISA__MAX_STEPS))
        return lisa__fail(err, LISA_ERR_INVALID, "optimizer settings out of range (betas in [0,1), eps, lr, min lr, "
                                                 "weight decay and clipping not negative, warmup and total steps "
                                                 "in 0..2^30)");
    if (c->schedule.kind != LISA_SCHEDULE_CONSTANT && c->schedule.kind != LISA_SCHEDULE_COSINE &&
        c->schedule.kind != LISA_SCHEDULE_LINEAR)
        return lisa__fail(err, LISA_ERR_INVALID, "unknown schedule kind %d", (int)c->schedule.kind);
    if (c->mode != LISA_MODE_FULL && c->mode != LISA_MODE_LISA && c->mode != LISA_MODE_MANUAL &&
        c->mode != LISA_MODE_LORA)
        return lisa__fail(err, LISA_ERR_INVALID, "unknown training mode %d", (int)c->mode);
    if (c->reserve_slots != 0 && c->reserve_slots != 1)
        return lisa__fail(err, LISA_ERR_INVALID, "reserve_slots %d: need 0 or 1", c->reserve_slots);
    if (c->comm && c->comm->world_size > 1 && (c->comm->rank < 0 || c->comm->rank >= c->comm->world_size))
        return lisa__fail(err, LISA_ERR_INVALID, "comm: rank %d of %d workers: need 0 <= rank < world_size",
                          c->comm->rank, c->comm->world_size);
    if (c->mode == LISA_MODE_LORA) return lisa_lora_config_resolve(&c->lora, mc, err);
    if (c->mode == LISA_MODE_FULL) return LISA_OK;
    if (c->lisa_layers < 1 || c->lisa_layers > mc->n_layers)
        return lisa__fail(err, LISA_ERR_INVALID, "LISA layers %d: need 1 to n_layers (%d)", c->lisa_layers, mc->n_layers);
    if (c->lisa_interval < 1)
        return lisa__fail(err, LISA_ERR_INVALID, "LISA interval %d: need at least 1 step", c->lisa_interval);
    if (c->lisa_order != LISA_ORDER_RANDOM && c->lisa_order != LISA_ORDER_CYCLIC)
        return lisa__fail(err, LISA_ERR_INVALID, "unknown LISA order %d", (int)c->lisa_order);
    if (c->lisa_probs) {
        for (l = 0; l < mc->n_layers; l++) {
            float p = c->lisa_probs[l];
            if (!(p >= 0.0f && p <= FLT_MAX))
                return lisa__fail(err, LISA_ERR_INVALID, "LISA probability of layer %d is %g: need a finite value >= 0", l, p);
            positive += p > 0.0f;
        }
        if (positive < c->lisa_layers)
            return lisa__fail(err, LISA_ERR_INVALID, "LISA probabilities: %d layers have weight > 0, fewer than the %d to draw",
                              positive, c->lisa_layers);
    }
    return LISA_OK;
}


LISADEF lisa_block_desc lisa_block_describe(const lisa_config *c, int b) {
    lisa_layout L = lisa_layout_of(c);
    const lisa_layer_layout *y = &L.layer;
    size_t D = (size_t)c->dim, H = (size_t)c->hidden_dim, kv = D / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    float out_std = 0.02f * (1.0f / sqrtf(2.0f * (float)c->n_layers)); /* residual outputs wo, w2 */
    lisa_block_desc d;
    int i;
    LISA_ASSERT(b >= 0 && b < lisa_n_blocks(c));
    memset(&d, 0, sizeof d);
    d.layer = -1;
    d.offset = lisa_block_offset(c, b);
    d.size = lisa_block_size(c, b);
    if (b >= LISA_BLOCK_LAYER(0) && b <= LISA_BLOCK_LAYER(c->n_layers - 1)) {
        static const char *const names[9] = {"attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w1", "w2", "w3"};
        const size_t offs[9] = {y->attn_norm, y->wq, y->wk, y->wv, y->wo, y->mlp_norm, y->w1, y->w2, y->w3};
        const size_t rows[9] = {D, D, kv, kv, D, D, H, D, H}, cols[9] = {0, D, D, D, D, 0, D, H, D};
        const float stds[9] = {0.0f, 0.02f, 0.02f, 0.02f, out_std, 0.0f, 0.02f, out_std, 0.02f};
        d.kind = LISA_BLOCK_KIND_LAYER;
        d.layer = b - LISA_BLOCK_LAYER(0);
        d.n_tensors = 9;
        for (i = 0; i < 9; i++) {
            d.tensors[i].name = names[i];
            d.tensors[i].offset = offs[i];
            d.tensors[i].size = rows[i] * (cols[i] ? cols[i] : 1);
            d.tensors[i].rows = (int)rows[i];
            d.tensors[i].cols = (int)cols[i];
            d.tensors[i].init_std = stds[i];
            d.tensors[i].decay = stds[i] != 0.0f;
        }
        return d;
    }
    d.kind = b == LISA_BLOCK_EMBED ? LISA_BLOCK_KIND_EMBED
           : b == lisa_block_final_norm(c) ? LISA_BLOCK_KIND_FINAL_NORM : LISA_BLOCK_KIND_HEAD;
    d.n_tensors = d.size ? 1 : 0;
    d.tensors[0].name = d.kind == LISA_BLOCK_KIND_EMBED ? "embed" : d.kind == LISA_BLOCK_KIND_HEAD ? "head" : "final_norm";
    d.tensors[0].size = d.size;
    d.tensors[0].decay = d.kind != LISA_BLOCK_KIND_FINAL_NORM;
    d.tensors[0].rows = d.tensors[0].decay ? c->vocab_size : c->dim;
    d.tensors[0].cols = d.tensors[0].decay ? c->dim : 0;
    d.tensors[0].init_std = d.tensors[0].decay ? 0.02f : 0.0f;
    return d;
}

static int lisa__is_layer_block(const lisa_config *c, int b) {
    return lisa_block_describe(c, b).kind == LISA_BLOCK_KIND_LAYER;
}

/* With a tied head the embedding block holds the shared matrix, which trains
   only if neither of its uses is frozen. */
LISADEF int lisa_fixed_block_trains(const lisa_config *c, const lisa_train_config *tc, int b) {
    lisa_block_kind kind = lisa_block_describe(c, b).kind;
    if (lisa_block_size(c, b) == 0) return 0;
    if (tc->mode == LISA_MODE_LORA) { /* frozen unless asked; a tied matrix trains when either use asks */
        if (kind == LISA_BLOCK_KIND_EMBED) return tc->lora.train_embed || (c->tied_head && tc->lora.train_head);
        if (kind == LISA_BLOCK_KIND_FINAL_NORM) return tc->lora.train_norms;
        return tc->lora.train_head;
    }
    if (kind == LISA_BLOCK_KIND_EMBED) return !tc->freeze_embed && !(c->tied_head && tc->freeze_head);
    if (kind == LISA_BLOCK_KIND_FINAL_NORM) return !tc->freeze_final_norm;
    return !tc->freeze_head;
}

/* --- tables and reserved slots -------------------------------------------- */

/* LISA and manual modes pick layers (and may weight them); full and LoRA do not. */
static int lisa__uses_sampler(const lisa_train_config *tc) {
    return tc->mode == LISA_MODE_LISA || tc->mode == LISA_MODE_MANUAL;
}

LISADEF int lisa_train_n_blocks(const lisa_config *c, const lisa_train_config *tc) {
    return lisa_n_blocks(c) + (tc->mode == LISA_MODE_LORA ? c->n_layers : 0);
}

/* Floats of one adapter block: the layer's adapters, then (train_norms) its two norm weights. */
static size_t lisa__lora_block_floats(const lisa_config *c, const lisa_lora_config *lc) {
    lisa_lora l;
    lisa__lora_layout(&l, c, lc);
    return l.layer_size + (lc->train_norms ? 2 * (size_t)c->dim : 0);
}

/* The three kinds of layer buffer a reserved slot holds. */
enum { LISA__SLOT_GRAD = 0, LISA__SLOT_COPY = 1, LISA__SLOT_MOMENTS = 2 };

/* Slots reserved per kind: lisa_layers gradients (and device copies), and
   moments for lisa_layers layers or, with keep_state, for every layer. None
   in full mode, where every layer trains from init to the end. */
static void lisa__slot_counts(const lisa_config *c, const lisa_train_config *tc, int copies, int *counts) {
    int on = tc->reserve_slots && (tc->mode == LISA_MODE_LISA || tc->mode == LISA_MODE_MANUAL);
    counts[LISA__SLOT_GRAD] = on ? tc->lisa_layers : 0;
    counts[LISA__SLOT_COPY] = on && copies ? tc->lisa_layers : 0;
    counts[LISA__SLOT_MOMENTS] = on ? (tc->keep_state ? c->n_layers : tc->lisa_layers) : 0;
}

/* Takes bytes at *at for one table and returns where it lands in base (NULL
   when only counting). */
static void *lisa__table_part(unsigned char *base, size_t *at, size_t bytes) {
    void *p = base ? base + *at : NULL;
    *at += bytes;
    return p;
}

/* The trainer's tables, one allocation: blocks | grad_ptrs | block_sizes |
   slots (reserve_slots) | active_layers (2 x n_layers: current and next) |
   probs (when given). The one place they are sized: with base NULL it only
   counts (the planner), otherwise it also points t's tables into base. */
static size_t lisa__trainer_tables(lisa_trainer *t, unsigned char *base, const lisa_config *c,
                                   const lisa_train_config *tc, int copies) {
    size_t at = 0, nb = (size_t)lisa_train_n_blocks(c, tc), L = (size_t)c->n_layers;
    int counts[3], k;
    void *blocks, *grad_ptrs, *sizes, *slots, *active, *probs;
    lisa__slot_counts(c, tc, copies, counts);
    blocks = lisa__table_part(base, &at, nb * sizeof(lisa_block_state));
    grad_ptrs = lisa__table_part(base, &at, nb * sizeof(float *));
    sizes = lisa__table_part(base, &at, nb * sizeof(size_t));
    slots = lisa__table_part(base, &at, (size_t)(counts[0] + counts[1] + counts[2]) * sizeof(float *));
    active = lisa__table_part(base, &at, 2 * L * sizeof(int));
    probs = lisa__table_part(base, &at, lisa__uses_sampler(tc) && tc->lisa_probs ? L * sizeof(float) : 0);
    if (t) {
        t->blocks = (lisa_block_state *)blocks;
        t->grad_ptrs = (float **)grad_ptrs;
        t->block_sizes = (size_t *)sizes;
        t->slots = counts[0] + counts[1] + counts[2] ? (float **)slots : NULL;
        t->active_layers = (int *)active;
        t->probs = lisa__uses_sampler(tc) && tc->lisa_probs ? (float *)probs : NULL;
        for (k = 0; k < 3; k++) t->slot_count[k] = counts[k];
    }
    return at;
}

static size_t lisa__slot_floats(const lisa_trainer *t, int kind, size_t n) {
    return kind == LISA__SLOT_GRAD ? n : kind == LISA__SLOT_COPY ? n * t->ops->copy_floats : 2 * n;
}

/* The free slots of one kind, a stack. */
static float **lisa__slot_stack(lisa_trainer *t, int kind) {
    int k, first = 0;
    for (k = 0; k < kind; k++) first += t->slot_count[k];
    return t->slots + first;
}

/* A buffer of one kind for block b: a reserved slot for a layer when the
   trainer reserves them (NULL when none is free: nothing is allocated after
   init), otherwise the device's allocation. */
static float *lisa__slot_take(lisa_trainer *t, int b, int kind) {
    if (t->slots && lisa__is_layer_block(&t->model->config, b))
        return t->slot_free[kind] > 0 ? lisa__slot_stack(t, kind)[--t->slot_free[kind]] : NULL;
    return (float *)t->ops->alloc(t, lisa__slot_floats(t, kind, t->block_sizes[b]) * sizeof(float));
}

static void lisa__slot_give(lisa_trainer *t, int b, int kind, float *p) {
    if (!p) return;
    if (t->slots && lisa__is_layer_block(&t->model->config, b))
        lisa__slot_stack(t, kind)[t->slot_free[kind]++] = p;
    else
        t->ops->free(t, p, lisa__slot_floats(t, kind, t->block_sizes[b]) * sizeof(float));
}

/* Allocates every reserved slot, sized for a decoder layer. */
static lisa_result lisa__slots_fill(lisa_trainer *t) {
    size_t n = lisa_layout_of(&t->model->config).layer.size;
    int kind;
    for (kind = 0; kind < 3; kind++)
        while (t->slot_free[kind] < t->slot_count[kind]) {
            void *p = t->ops->alloc(t, lisa__slot_floats(t, kind, n) * sizeof(float));
            if (!p) return LISA_ERR_NOMEM;
            lisa__slot_stack(t, kind)[t->slot_free[kind]++] = (float *)p;
        }
    return LISA_OK;
}

static void lisa__slots_release(lisa_trainer *t) {
    size_t n = lisa_layout_of(&t->model->config).layer.size;
    int kind;
    for (kind = 0; t->slots && kind < 3; kind++)
        while (t->slot_free[kind] > 0)
            t->ops->free(t, lisa__slot_stack(t, kind)[--t->slot_free[kind]], lisa__slot_floats(t, kind, n) * sizeof(float));
}

/* --- block state ---------------------------------------------------------- */

/* Block b trains from now on: a gradient, the device's copy, and zero moments
   at step 0 unless it kept its moments (keep_state). Undoes itself on failure. */
static lisa_result lisa__block_activate(lisa_trainer *t, int b) {
    lisa_block_state *s = &t->blocks[b];
    size_t n = t->block_sizes[b];
    int fresh = s->m == NULL, copies = t->ops->copy_floats > 0;
    float *grad, *copy = NULL, *m = s->m;
    lisa_result r = LISA_OK;
    if (s->active || n == 0) return LISA_OK;
    grad = lisa__slot_take(t, b, LISA__SLOT_GRAD);
    if (copies) copy = lisa__slot_take(t, b, LISA__SLOT_COPY);
    if (fresh) m = lisa__slot_take(t, b, LISA__SLOT_MOMENTS);
    if (!grad || (copies && !copy) || !m) r = LISA_ERR_NOMEM;
    s->copy = copy;
    if (r == LISA_OK && copies && t->ops->fill_copy) r = t->ops->fill_copy(t, b);
    if (r == LISA_OK && fresh) r = t->ops->zero(t, m, 2 * n);
    if (r != LISA_OK) {
        lisa__slot_give(t, b, LISA__SLOT_GRAD, grad);
        lisa__slot_give(t, b, LISA__SLOT_COPY, copy);
        if (fresh) lisa__slot_give(t, b, LISA__SLOT_MOMENTS, m);
        s->copy = NULL;
        return r;
    }
    if (fresh) {
        s->m = m;
        s->v = m + n;
        s->step = 0;
    }
    s->grad = grad;
    s->active = 1;
    t->grad_ptrs[b] = grad;
    return LISA_OK;
}

/* Block b stops training: its gradient and copy go, its moments too unless kept. */
static void lisa__block_deactivate(lisa_trainer *t, int b, int keep_moments) {
    lisa_block_state *s = &t->blocks[b];
    lisa__slot_give(t, b, LISA__SLOT_GRAD, s->grad);
    lisa__slot_give(t, b, LISA__SLOT_COPY, s->copy);
    s->grad = s->copy = NULL;
    s->active = 0;
    t->grad_ptrs[b] = NULL;
    if (!keep_moments) {
        lisa__slot_give(t, b, LISA__SLOT_MOMENTS, s->m);
        s->m = s->v = NULL;
        s->step = 0;
    }
}

LISADEF lisa_result lisa_trainer_block_keep_moments(lisa_trainer *t, int b) {
    lisa_block_state *s = &t->blocks[b];
    float *m;
    lisa_result r;
    if (s->m || t->block_sizes[b] == 0) return LISA_OK;
    if (!t->config.keep_state) return LISA_ERR_INVALID;
    if (!(m = lisa__slot_take(t, b, LISA__SLOT_MOMENTS))) return LISA_ERR_NOMEM;
    if ((r = t->ops->zero(t, m, 2 * t->block_sizes[b])) != LISA_OK) {
        lisa__slot_give(t, b, LISA__SLOT_MOMENTS, m);
        return r;
    }
    s->step = 0;
    s->m = m;
    s->v = m + t->block_sizes[b];
    return LISA_OK;
}

static void lisa__note_peak(lisa_trainer *t) {
    size_t total = lisa_trainer_total_bytes(t);
    if (total > t->peak_bytes) t->peak_bytes = total;
}

LISADEF void lisa_trainer_free(lisa_trainer *t) {
    int b, nb;
    if (!t->model) return;
    nb = lisa_train_n_blocks(&t->model->config, &t->config);
    if (t->blocks)
        for (b = 0; b < nb; b++) lisa__block_deactivate(t, b, 0);
    lisa__slots_release(t);
    if (t->model->lora == &t->lora) t->model->lora = NULL;
    lisa_lora_free(&t->lora);
    lisa__free(&t->allocator, t->blocks,
               lisa__trainer_tables(NULL, NULL, &t->model->config, &t->config, t->ops->copy_floats > 0), &t->bytes);
    lisa_acts_free(&t->acts);
    t->blocks = NULL;
    t->grad_ptrs = NULL;
    t->block_sizes = NULL;
    t->active_layers = NULL;
    t->probs = NULL;
    t->slots = NULL;
    t->model = NULL;
}

LISADEF lisa_result lisa_trainer_set_active_layers(lisa_trainer *t, const int *layers, int n) {
    int L = t->model->config.n_layers, *next = t->active_layers + L, i, l;
    lisa_result r = LISA_OK;
    if (n < 0 || n > L) return LISA_ERR_INVALID;
    for (i = 0; i < n; i++)
        if (layers[i] < 0 || layers[i] >= L || lisa__contains(layers, i, layers[i])) return LISA_ERR_INVALID;
    if (next != layers) memmove(next, layers, (size_t)n * sizeof(int));
    lisa__sort_ints(next, n);
    /* Release leaving layers before taking new ones, so a switch never holds
       both. The blocks, not the list, say which layers are active: after a
       switch that ran out of memory, the list is rebuilt from them. */
    for (l = 0; l < L; l++)
        if (t->blocks[LISA_BLOCK_LAYER(l)].active && !lisa__contains(next, n, l))
            lisa__block_deactivate(t, LISA_BLOCK_LAYER(l), t->config.keep_state);
    for (i = 0; i < n && r == LISA_OK; i++) r = lisa__block_activate(t, LISA_BLOCK_LAYER(next[i]));
    t->n_active = 0;
    for (l = 0; l < L; l++)
        if (t->blocks[LISA_BLOCK_LAYER(l)].active) t->active_layers[t->n_active++] = l;
    lisa__note_peak(t);
    return r;
}

/* --- the CPU's operations ------------------------------------------------- */

static void *lisa__cpu_alloc(lisa_trainer *t, size_t bytes) { return lisa__alloc(&t->allocator, bytes, &t->bytes); }
static void lisa__cpu_free(lisa_trainer *t, void *p, size_t bytes) { lisa__free(&t->allocator, p, bytes, &t->bytes); }

static lisa_result lisa__cpu_zero(lisa_trainer *t, float *p, size_t n) {
    (void)t;
    memset(p, 0, n * sizeof(float));
    return LISA_OK;
}

static lisa_result lisa__cpu_forward_backward(lisa_trainer *t, const int *inputs, const int *targets,
                                              float loss_scale, float *loss) {
    *loss = lisa_model_forward(t->model, &t->acts, inputs, targets, t->config.batch, t->config.seq);
    lisa_model_backward_scaled(t->model, &t->acts, t->grad_ptrs, loss_scale);
    return LISA_OK;
}

static lisa_result lisa__cpu_sum_squares(lisa_trainer *t, double *total) {
    *total = lisa__sum_squares_all(t->grad_ptrs, t->block_sizes, lisa_train_n_blocks(&t->model->config, &t->config));
    return LISA_OK;
}

static lisa_result lisa__cpu_scale_grads(lisa_trainer *t, float coef) {
    lisa__scale_all(t->grad_ptrs, t->block_sizes, lisa_train_n_blocks(&t->model->config, &t->config), coef);
    return LISA_OK;
}

/* Where the parameters at offset (floats) of block b live: the model's
   buffer, or for an adapter block the adapters and then the layer's norms. */
static float *lisa__block_params(lisa_trainer *t, int b, size_t offset) {
    const lisa_config *c = &t->model->config;
    int nb = lisa_n_blocks(c), l = b - nb;
    if (b < nb) return t->model->params + lisa_block_offset(c, b) + offset;
    if (offset < t->lora.layer_size) return t->lora.params + (size_t)l * t->lora.layer_size + offset;
    offset -= t->lora.layer_size;
    return offset < (size_t)c->dim ? t->model->layers[l].attn_norm + offset
                                   : t->model->layers[l].mlp_norm + (offset - (size_t)c->dim);
}

static lisa_result lisa__cpu_update(lisa_trainer *t, int b, size_t offset, size_t n, const lisa_adamw_scalars *a) {
    lisa_block_state *s = &t->blocks[b];
    float *p = lisa__block_params(t, b, offset);
    lisa_adamw_apply(p, s->grad + offset, s->m + offset, s->v + offset, n, a);
    return LISA_OK;
}

static const lisa_trainer_ops lisa__cpu_ops = {
    lisa__cpu_alloc, lisa__cpu_free, lisa__cpu_zero, 0, NULL, NULL, lisa__cpu_forward_backward,
    lisa__cpu_sum_squares, lisa__cpu_scale_grads, lisa__cpu_update, NULL};

/* --- init and step --------------------------------------------------------- */

LISADEF lisa_result lisa_trainer_core_init(lisa_trainer *t, lisa_model *m, const lisa_train_config *c,
                                           const lisa_trainer_ops *ops, void *device,
                                           const lisa_allocator *a, lisa_error *err) {
    const lisa_config *mc = &m->config;
    int b, nb = lisa_n_blocks(mc), L = mc->n_layers;
    size_t bytes;
    lisa_result r;
    unsigned char *p;
    memset(t, 0, sizeof *t);
    t->config = *c;
    r = lisa_train_config_resolve(&t->config, mc, err);
    if (r != LISA_OK) return r;
    if (t->config.mode == LISA_MODE_LORA && ops)
        return lisa__fail(err, LISA_ERR_INVALID, "%s", "LoRA mode runs on this header's CPU trainer only");
    if (!lisa__uses_sampler(&t->config)) t->config.lisa_probs = NULL;
    t->ops = ops ? ops : &lisa__cpu_ops;
    t->device = device;
    t->allocator = lisa__allocator_or_default(a);
    bytes = lisa__trainer_tables(NULL, NULL, mc, &t->config, t->ops->copy_floats > 0);
    p = (unsigned char *)lisa__alloc(&t->allocator, bytes, &t->bytes);
    if (!p) return lisa__fail(err, LISA_ERR_NOMEM, "out of memory for the trainer's tables");
    memset(p, 0, bytes);
    lisa__trainer_tables(t, p, mc, &t->config, t->ops->copy_floats > 0);
    t->model = m;
    if (t->probs) {
        memcpy(t->probs, t->config.lisa_probs, (size_t)L * sizeof(float));
        t->config.lisa_probs = t->probs;
    }
    for (b = 0; b < nb; b++) t->block_sizes[b] = lisa_block_size(mc, b);
    for (b = nb; b < lisa_train_n_blocks(mc, &t->config); b++)
        t->block_sizes[b] = lisa__lora_block_floats(mc, &t->config.lora);
    if (lisa__uses_sampler(&t->config))
        lisa_sampler_init(&t->sampler, L, t->config.lisa_layers, t->config.lisa_order, t->probs, t->config.lisa_seed);
    return LISA_OK;
}

LISADEF lisa_result lisa_trainer_core_start(lisa_trainer *t, lisa_error *err) {
    const lisa_config *mc = &t->model->config;
    int b, l, nb = lisa_n_blocks(mc), L = mc->n_layers;
    lisa_result r = lisa__slots_fill(t);
    for (b = 0; b < nb && r == LISA_OK; b++)
        if (!lisa__is_layer_block(mc, b) && lisa_fixed_block_trains(mc, &t->config, b)) r = lisa__block_activate(t, b);
    if (r == LISA_OK && t->config.mode == LISA_MODE_FULL) {
        for (l = 0; l < L; l++) t->active_layers[L + l] = l;
        r = lisa_trainer_set_active_layers(t, t->active_layers + L, L);
    }
    for (b = nb; b < lisa_train_n_blocks(mc, &t->config) && r == LISA_OK; b++) r = lisa__block_activate(t, b);
    lisa__note_peak(t);
    if (r != LISA_OK) return lisa__fail(err, r, "%s", r == LISA_ERR_NOMEM ? "out of memory for gradients and optimizer state"
                                                                       : "device error setting up gradients and optimizer state");
    return LISA_OK;
}

LISADEF lisa_result lisa_trainer_init(lisa_trainer *t, lisa_model *m, const lisa_train_config *c,
                                      const lisa_allocator *a, lisa_error *err) {
    lisa_result r = lisa_trainer_core_init(t, m, c, NULL, NULL, a, err);
    if (r == LISA_OK)
        r = lisa_acts_init(&t->acts, &m->config, t->config.batch, t->config.seq, t->config.checkpointing,
                           &t->allocator, err);
    if (r == LISA_OK && t->config.mode == LISA_MODE_LORA) {
        if (m->lora) r = lisa__fail(err, LISA_ERR_INVALID, "%s", "the model already has adapters attached");
        else r = lisa_lora_init(&t->lora, &m->config, &t->config.lora, t->config.batch, t->config.seq,
                                t->config.checkpointing, &t->allocator, err);
        if (r == LISA_OK) {
            lisa_lora_init_random(&t->lora, t->config.lisa_seed);
            m->lora = &t->lora;
        }
    }
    if (r == LISA_OK) r = lisa_trainer_core_start(t, err);
    if (r != LISA_OK) {
        lisa_trainer_free(t);
        return r;
    }
    lisa__ok(err);
    return LISA_OK;
}

/* AdamW on one adapter block: each A and B with weight decay, then the norms
   (train_norms) without, as in the model's blocks. */
static lisa_result lisa__lora_block_update(lisa_trainer *t, int b, float lr) {
    const lisa_train_config *c = &t->config;
    const lisa_lora *l = &t->lora;
    lisa_block_state *s = &t->blocks[b];
    lisa_adamw_scalars dec, flat;
    lisa_result r = LISA_OK;
    int k;
    s->step++;
    dec = lisa_adamw_scalars_at(lr, c->beta1, c->beta2, c->eps, c->weight_decay, s->step);
    flat = lisa_adamw_scalars_at(lr, c->beta1, c->beta2, c->eps, 0.0f, s->step);
    for (k = 0; k < LISA_LORA_N_TARGETS && r == LISA_OK; k++) {
        size_t R = (size_t)l->config.rank;
        if (l->slot[k] < 0) continue;
        r = t->ops->update(t, b, l->a_off[k], R * (size_t)l->in_dim[k], &dec);
        if (r == LISA_OK) r = t->ops->update(t, b, l->b_off[k], (size_t)l->out_dim[k] * R, &dec);
    }
    for (k = 0; k < 2 && r == LISA_OK && l->config.train_norms; k++)
        r = t->ops->update(t, b, l->layer_size + (size_t)k * t->model->config.dim, (size_t)t->model->config.dim, &flat);
    return r;
}

/* AdamW on every tensor of block b; norms get no weight decay. */
static lisa_result lisa__block_update(lisa_trainer *t, int b, float lr) {
    const lisa_train_config *c = &t->config;
    lisa_block_desc d;
    if (b >= lisa_n_blocks(&t->model->config)) return lisa__lora_block_update(t, b, lr);
    d = lisa_block_describe(&t->model->config, b);
    lisa_block_state *s = &t->blocks[b];
    lisa_result r = LISA_OK;
    int i;
    s->step++;
    for (i = 0; i < d.n_tensors && r == LISA_OK; i++) {
        const lisa_block_tensor *x = &d.tensors[i];
        lisa_adamw_scalars a = lisa_adamw_scalars_at(lr, c->beta1, c->beta2, c->eps,
                                                     x->decay ? c->weight_decay : 0.0f, s->step);
        r = t->ops->update(t, b, x->offset, x->size, &a);
    }
    return r;
}

LISADEF float lisa_mean_loss(const float *row_loss, const int *targets, int n) {
    return lisa__mean_counted(row_loss, targets, n, NULL);
}

static int lisa__count_targets(const int *targets, int n) {
    int i, counted = 0;
    for (i = 0; targets && i < n; i++) counted += targets[i] >= 0;
    return counted;
}

/* --- data parallelism (lisa_comm) ------------------------------------------ */

static const lisa_comm *lisa__comm_of(const lisa_trainer *t) {
    const lisa_comm *c = t->config.comm;
    return c && c->sum && c->world_size > 1 ? c : NULL;
}

static void lisa__comm_sum_host(const lisa_comm *c, float *buf, size_t n, size_t *bytes) {
    (c->sum_host ? c->sum_host : c->sum)(buf, n, c->user);
    *bytes += n * sizeof(float);
}

/* The global count of rows with a target, as two floats (the low 12 bits and
   the rest) so that each sum stays exact (below 2^24) up to 4096 workers and
   2^36 rows. */
static double lisa__comm_count(const lisa_comm *c, int local, size_t *bytes) {
    float v[2];
    v[0] = (float)(local & 4095);
    v[1] = (float)(local >> 12);
    lisa__comm_sum_host(c, v, 2, bytes);
    return (double)v[0] + 4096.0 * (double)v[1];
}

/* Every gradient the trainer holds, block by block in block order (the same on
   every worker: they hold the same active blocks). */
static void lisa__comm_reduce_grads(lisa_trainer *t, const lisa_comm *c, size_t *bytes) {
    int b, nb = lisa_train_n_blocks(&t->model->config, &t->config);
    for (b = 0; b < nb; b++)
        if (t->grad_ptrs[b] && t->block_sizes[b]) {
            c->sum(t->grad_ptrs[b], t->block_sizes[b], c->user);
            *bytes += t->block_sizes[b] * sizeof(float);
        }
}

/* One over the global count: lisa__mean_loss_scale()'s float division, which
   one worker with the whole batch takes, while the count fits an int. */
static float lisa__comm_loss_scale(double global) {
    return global < 2147483647.0 ? lisa__mean_loss_scale((int)global) : (float)(1.0 / global);
}

/* The global mean loss from this worker's mean over its local rows. */
static float lisa__comm_loss(const lisa_comm *c, float local_mean, int local, double global, size_t *bytes) {
    float sum = (float)((double)local_mean * (double)local);
    lisa__comm_sum_host(c, &sum, 1, bytes);
    return global > 0.0 ? (float)((double)sum / global) : 0.0f;
}

LISADEF lisa_result lisa_trainer_step(lisa_trainer *t, const int *inputs, const int *targets,
                                      lisa_step_info *info) {
    const lisa_trainer_ops *ops = t->ops;
    const lisa_config *mc = &t->model->config;
    int b, nb = lisa_train_n_blocks(mc, &t->config), switched = 0, BT = t->config.batch * t->config.seq;
    float loss = 0.0f, norm = 0.0f, lr, coef;
    double total = 0.0;
    lisa_sampler before;
    lisa_result r = LISA_OK;
    const lisa_comm *comm = lisa__comm_of(t);
    int counted = lisa__count_targets(targets, BT);
    double global = counted;
    size_t comm_bytes = 0;
    if (t->step >= LISA__MAX_STEPS) return LISA_ERR_INVALID; /* step counters stay far from overflow */
    if (ops->load_batch && (r = ops->load_batch(t, inputs, targets)) != LISA_OK) return r;
    before = t->sampler;
    if (t->config.mode == LISA_MODE_LISA && t->step % t->config.lisa_interval == 0) {
        int *next = t->active_layers + mc->n_layers;
        lisa_sampler_draw(&t->sampler, next);
        switched = 1;
        r = lisa_trainer_set_active_layers(t, next, t->config.lisa_layers);
    }
    for (b = 0; b < nb && r == LISA_OK; b++)
        if (t->grad_ptrs[b]) r = ops->zero(t, t->grad_ptrs[b], t->block_sizes[b]);
    if (r == LISA_OK && comm) global = lisa__comm_count(comm, counted, &comm_bytes);
    if (r == LISA_OK)
        r = ops->forward_backward(t, inputs, targets, lisa__comm_loss_scale(global), &loss);
    if (r == LISA_OK && comm) {
        lisa__comm_reduce_grads(t, comm, &comm_bytes);
        loss = lisa__comm_loss(comm, loss, counted, global, &comm_bytes);
    }
    if (r == LISA_OK) r = ops->sum_squares(t, &total);
    if (r == LISA_OK) {
        norm = (float)sqrt(total);
        coef = lisa__clip_coef(norm, t->config.grad_clip);
        if (coef != 1.0f) r = ops->scale_grads(t, coef);
    }
    if (r != LISA_OK) {
        /* Nothing is updated yet: a retry draws the same layers (a switch to
           the set already in place does nothing), as if nothing had failed. */
        t->sampler = before;
        return r;
    }
    lr = lisa_schedule_lr(&t->config.schedule, t->step);
    for (b = 0; b < nb; b++)
        if (t->blocks[b].active && (r = lisa__block_update(t, b, lr)) != LISA_OK) return r;
    if (ops->end_step && (r = ops->end_step(t)) != LISA_OK) return r;
    t->step++;
    if (info) {
        info->step = t->step;
        info->loss = loss;
        info->lr = lr;
        info->grad_norm = norm;
        info->switched = switched;
        info->allreduce_bytes = comm_bytes;
    }
    return LISA_OK;
}

LISADEF size_t lisa_trainer_total_bytes(const lisa_trainer *t) {
    return t->bytes + t->acts.bytes + t->model->bytes + t->lora.bytes;
}

/* ------------------------------------------------------------------------- */
/* Memory planner                                                             */
/* ------------------------------------------------------------------------- */

LISADEF void lisa_plan_block_state(const lisa_config *c, const lisa_train_config *tc, lisa_memory_plan *plan) {
    lisa_layout L = lisa_layout_of(c);
    size_t fixed = 0, layers_trained, layers_with_state;
    int b;
    for (b = 0; b < lisa_n_blocks(c); b++)
        if (!lisa__is_layer_block(c, b) && lisa_fixed_block_trains(c, tc, b)) fixed += lisa_block_size(c, b);
    layers_trained = tc->mode == LISA_MODE_FULL ? (size_t)c->n_layers : (size_t)tc->lisa_layers;
    /* keep_state: every layer sampled so far keeps its moments; over a run, all of them. */
    layers_with_state = tc->keep_state ? (size_t)c->n_layers : layers_trained;
    plan->params = L.n_params;
    if (tc->mode == LISA_MODE_LORA) { /* no layer block trains; every adapter block does */
        lisa_lora l;
        lisa__lora_layout(&l, c, &tc->lora);
        layers_trained = layers_with_state = 0;
        plan->params += (size_t)c->n_layers * l.layer_size;
        fixed += (size_t)c->n_layers * lisa__lora_block_floats(c, &tc->lora);
    }
    plan->trained_params = fixed + layers_trained * L.layer.size;
    plan->gradients = plan->trained_params * sizeof(float);
    plan->optimizer = (fixed + layers_with_state * L.layer.size) * 2 * sizeof(float);
}

LISADEF size_t lisa_plan_total(const lisa_memory_plan *plan) {
    return plan->weights + plan->gradients + plan->optimizer + plan->activations + plan->scratch + plan->tables;
}

LISADEF lisa_result lisa_plan_memory(const lisa_config *c, const lisa_train_config *tc,
                                     lisa_dtype dtype, lisa_memory_plan *plan, lisa_error *err) {
    lisa_config rc = *c;
    lisa_train_config rt = *tc;
    lisa_result r;
    memset(plan, 0, sizeof *plan);
    if ((r = lisa__config_check(&rc, NULL, err)) != LISA_OK) return r;
    if ((r = lisa_train_config_resolve(&rt, &rc, err)) != LISA_OK) return r;
    if (dtype == LISA_DTYPE_BF16)
        return lisa__fail(err, LISA_ERR_INVALID, "%s", "the CPU trainer is fp32 only; lisa_cuda_plan_memory "
                          "(lisa_cuda.h) plans the GPU trainer in bf16");
    if (dtype != LISA_DTYPE_F32) return lisa__fail(err, LISA_ERR_INVALID, "unknown dtype %d", (int)dtype);
    if (!lisa__uses_sampler(&rt)) rt.lisa_probs = NULL;
    lisa_plan_block_state(&rc, &rt, plan);
    lisa_acts_size(&rc, rt.batch, rt.seq, rt.checkpointing, &plan->activations, &plan->scratch);
    plan->tables = lisa__trainer_tables(NULL, NULL, &rc, &rt, 0);
    plan->weights = lisa__model_total_bytes(&rc);
    if (rt.mode == LISA_MODE_LORA) { /* the adapters' weights and what their products keep */
        size_t w, k, s;
        lisa_lora_size(&rc, &rt.lora, rt.batch, rt.seq, rt.checkpointing, &w, &k, &s);
        plan->weights += w;
        plan->activations += k;
        plan->scratch += s;
    }
    plan->peak = lisa_plan_total(plan);
    lisa__ok(err);
    return LISA_OK;
}

/* ------------------------------------------------------------------------- */
/* JSON                                                                       */
/* ------------------------------------------------------------------------- */

/* FNV-1a, resumable so a concatenation hashes without being built (JSON
   keys here, tokenizer pieces and pairs of them later). */
static uint32_t lisa__fnv1a(uint32_t h, const unsigned char *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}
#define LISA__FNV_SEED 2166136261u

/* Two passes over the text with the same code: the first checks it and counts
   nodes and string bytes, the second (j set) fills exactly sized arrays. */
typedef struct lisa__jp {
    const unsigned char *s;
    size_t len, pos;
    const char *name;
    lisa_error *err;
    lisa_json *j;          /* NULL in the counting pass */
    int n_nodes;
    size_t n_str;
    int depth;
} lisa__jp;

static lisa_result lisa__jp_fail_at(lisa__jp *p, size_t at, const char *what) {
    size_t i, line = 1, col = 1;
    for (i = 0; i < at && i < p->len; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return lisa__fail(p->err, LISA_ERR_FORMAT, "%s: line %lu column %lu: %s", p->name,
                      (unsigned long)line, (unsigned long)col, what);
}

static lisa_result lisa__jp_fail(lisa__jp *p, const char *what) { return lisa__jp_fail_at(p, p->pos, what); }

static void lisa__jp_ws(lisa__jp *p) {
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static void lisa__jp_put(lisa__jp *p, unsigned char c) {
    if (p->j) p->j->strings[p->n_str] = (char)c;
    p->n_str++;
}

static int lisa__jp_hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

/* The one UTF-8 decoder and encoder (in the Text section below): the length
   of the valid sequence at s (n > 0 bytes available) with its code point, or 0;
   the bytes of code point cp (<= U+10FFFF, not a surrogate) in out[4]. */
static int lisa__utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
static int lisa__utf8_encode(uint32_t cp, unsigned char *out);

/* Parses the string whose opening quote is at p->pos; its decoded bytes go to
   *off, *n (offset into strings, length). */
static lisa_result lisa__jp_string(lisa__jp *p, size_t *off, size_t *n) {
    size_t start = p->pos;
    p->pos++;
    *off = p->n_str;
    for (;;) {
        unsigned c;
        unsigned char bytes[4];
        int k, l;
        if (p->pos >= p->len) return lisa__jp_fail_at(p, start, "unterminated string");
        c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return lisa__jp_fail(p, "control character in a string (it must be escaped)");
        if (c == '\\') {
            unsigned cp;
            if (p->pos + 1 >= p->len) return lisa__jp_fail_at(p, start, "unterminated string");
            c = p->s[p->pos + 1];
            switch (c) {
            case '"': case '\\': case '/': lisa__jp_put(p, (unsigned char)c); p->pos += 2; continue;
            case 'b': lisa__jp_put(p, '\b'); p->pos += 2; continue;
            case 'f': lisa__jp_put(p, '\f'); p->pos += 2; continue;
            case 'n': lisa__jp_put(p, '\n'); p->pos += 2; continue;
            case 'r': lisa__jp_put(p, '\r'); p->pos += 2; continue;
            case 't': lisa__jp_put(p, '\t'); p->pos += 2; continue;
            case 'u': break;
            default: return lisa__jp_fail(p, "invalid escape in a string");
            }
            if (p->len - p->pos < 6 || !lisa__jp_hex4(p->s + p->pos + 2, &cp))
                return lisa__jp_fail(p, "invalid \\u escape: four hex digits expected");
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return lisa__jp_fail(p, "invalid \\u escape: unpaired low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->len - p->pos < 12 || p->s[p->pos + 6] != '\\' || p->s[p->pos + 7] != 'u' ||
                    !lisa__jp_hex4(p->s + p->pos + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return lisa__jp_fail(p, "invalid \\u escape: high surrogate without a low surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->pos += 6;
            }
            p->pos += 6;
            l = lisa__utf8_encode((uint32_t)cp, bytes);
            for (k = 0; k < l; k++) lisa__jp_put(p, bytes[k]);
        } else {
            uint32_t ch;
            l = lisa__utf8_decode(p->s + p->pos, p->len - p->pos, &ch);
            if (l == 0) return lisa__jp_fail(p, "invalid UTF-8 in a string");
            for (k = 0; k < l; k++) lisa__jp_put(p, p->s[p->pos + k]);
            p->pos += (size_t)l;
        }
    }
    *n = p->n_str - *off;
    lisa__jp_put(p, 0);
    return LISA_OK;
}

/* Scans a JSON number at s (n bytes available). Returns the bytes it takes
   and the value in *out, or 0 with *problem set. */
static size_t lisa__json_number_scan(const unsigned char *s, size_t n, double *out, const char **problem) {
    static const double p10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    uint64_t mant = 0;
    int n_sig = 0, neg = 0;
    long exp10 = 0, e = 0;
    double v;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i < n && s[i] == '0') {
        i++;
        if (i < n && s[i] >= '0' && s[i] <= '9') {
            *problem = "invalid number: leading zeros are not allowed";
            return 0;
        }
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (n_sig < 19) {
                mant = mant * 10 + (uint64_t)(s[i] - '0');
                n_sig++;
            } else {
                exp10++;
            }
        }
    } else {
        *problem = "invalid number";
        return 0;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (!(i < n && s[i] >= '0' && s[i] <= '9')) {
            *problem = "invalid number: digits expected after '.'";
            return 0;
        }
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (n_sig < 19) {
                mant = mant * 10 + (uint64_t)(s[i] - '0');
                if (mant > 0) n_sig++;
                exp10--;
            }
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        if (!(i < n && s[i] >= '0' && s[i] <= '9')) {
            *problem = "invalid number: digits expected in the exponent";
            return 0;
        }
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 100000) e = e * 10 + (s[i] - '0');
        if (eneg) e = -e;
    }
    exp10 += e;
    if (mant == 0) {
        v = 0.0;
    } else if (mant <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        /* Both operands exact: one correctly rounded operation. */
        v = exp10 >= 0 ? (double)mant * p10[exp10] : (double)mant / p10[-exp10];
    } else if (exp10 < -300) {
        v = exp10 < -400 ? 0.0 : (double)mant * pow(10.0, (double)(exp10 + 300)) * 1e-300;
    } else {
        v = exp10 > 400 ? HUGE_VAL : (double)mant * pow(10.0, (double)exp10);
    }
    if (v > DBL_MAX) {
        *problem = "number out of range";
        return 0;
    }
    *out = neg ? -v : v;
    return i;
}

static lisa_result lisa__jp_value(lisa__jp *p, int parent, size_t key, size_t key_len) {
    lisa_json_node *node = NULL;
    lisa_result r;
    int idx, count = 0;
    unsigned c;
    lisa__jp_ws(p);
    if (p->pos >= p->len) return lisa__jp_fail(p, "unexpected end of input: a value was expected");
    if (p->n_nodes == 0x7fffffff) return lisa__jp_fail(p, "too many values");
    idx = p->n_nodes++;
    if (p->j) {
        node = &p->j->nodes[idx];
        memset(node, 0, sizeof *node);
        node->parent = parent;
        node->key = key;
        node->key_len = key_len;
    }
    c = p->s[p->pos];
    if (c == '{' || c == '[') {
        unsigned close = c == '{' ? '}' : ']';
        if (++p->depth > LISA_JSON_MAX_DEPTH) {
            char msg[64];
            snprintf(msg, sizeof msg, "nesting deeper than %d levels", LISA_JSON_MAX_DEPTH);
            return lisa__jp_fail(p, msg);
        }
        if (node) node->type = c == '{' ? LISA_JSON_OBJECT : LISA_JSON_ARRAY;
        p->pos++;
        lisa__jp_ws(p);
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
        } else {
            for (;;) {
                size_t koff = 0, klen = 0;
                if (c == '{') {
                    lisa__jp_ws(p);
                    if (p->pos >= p->len) return lisa__jp_fail(p, "unterminated object");
                    if (p->s[p->pos] != '"') return lisa__jp_fail(p, "expected a string key");
                    r = lisa__jp_string(p, &koff, &klen);
                    if (r != LISA_OK) return r;
                    lisa__jp_ws(p);
                    if (p->pos >= p->len || p->s[p->pos] != ':')
                        return lisa__jp_fail(p, "expected ':' after an object key");
                    p->pos++;
                }
                r = lisa__jp_value(p, idx, koff, klen);
                if (r != LISA_OK) return r;
                count++;
                lisa__jp_ws(p);
                if (p->pos >= p->len)
                    return lisa__jp_fail(p, c == '{' ? "unterminated object" : "unterminated array");
                if (p->s[p->pos] == ',') {
                    p->pos++;
                    continue;
                }
                if (p->s[p->pos] == close) {
                    p->pos++;
                    break;
                }
                return lisa__jp_fail(p, c == '{' ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array");
            }
        }
        p->depth--;
        if (p->j) {
            node = &p->j->nodes[idx];
            node->count = count;
        }
    } else if (c == '"') {
        size_t off, n;
        r = lisa__jp_string(p, &off, &n);
        if (r != LISA_OK) return r;
        if (node) {
            node->type = LISA_JSON_STRING;
            node->str = off;
            node->str_len = n;
        }
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        const char *problem = NULL;
        double v = 0.0;
        size_t used = lisa__json_number_scan(p->s + p->pos, p->len - p->pos, &v, &problem);
        if (used == 0) return lisa__jp_fail(p, problem);
        p->pos += used;
        if (node) {
            node->type = LISA_JSON_NUMBER;
            node->number = v;
        }
    } else {
        static const char *const words[3] = {"null", "false", "true"};
        static const lisa_json_type types[3] = {LISA_JSON_NULL, LISA_JSON_FALSE, LISA_JSON_TRUE};
        int w, found = -1;
        for (w = 0; w < 3; w++) {
            size_t wl = strlen(words[w]);
            if (p->len - p->pos >= wl && memcmp(p->s + p->pos, words[w], wl) == 0) found = w;
        }
        if (found < 0) {
            char msg[64];
            if (c >= 0x21 && c < 0x7F) snprintf(msg, sizeof msg, "unexpected character '%c'", (char)c);
            else snprintf(msg, sizeof msg, "unexpected byte 0x%02X", c);
            return lisa__jp_fail(p, msg);
        }
        p->pos += strlen(words[found]);
        if (node) node->type = types[found];
    }
    if (p->j) p->j->nodes[idx].end = p->n_nodes;
    return LISA_OK;
}

static lisa_result lisa__jp_run(lisa__jp *p) {
    lisa_result r;
    p->pos = 0;
    p->n_nodes = 0;
    p->n_str = 0;
    p->depth = 0;
    if (p->len >= 3 && p->s[0] == 0xEF && p->s[1] == 0xBB && p->s[2] == 0xBF) p->pos = 3;
    r = lisa__jp_value(p, -1, 0, 0);
    if (r != LISA_OK) return r;
    lisa__jp_ws(p);
    if (p->pos < p->len) return lisa__jp_fail(p, "unexpected data after the JSON value");
    return LISA_OK;
}

static size_t lisa__json_slot(const lisa_json *j, int object, const char *key, size_t len) {
    uint32_t h = lisa__fnv1a(LISA__FNV_SEED ^ ((uint32_t)object * 0x9E3779B1u), (const unsigned char *)key, len);
    return (size_t)h & (j->index_slots - 1);
}

/* The slot of object's member named key in the index: the member, or an empty slot. */
static size_t lisa__json_find_slot(const lisa_json *j, int object, const char *key, size_t len) {
    size_t slot = lisa__json_slot(j, object, key, len);
    for (;; slot = (slot + 1) & (j->index_slots - 1)) {
        int c = j->index[slot];
        const lisa_json_node *n;
        if (c < 0) return slot;
        n = &j->nodes[c];
        if (n->parent == object && n->key_len == len && memcmp(j->strings + n->key, key, len) == 0) return slot;
    }
}

/* The members of every object with at least LISA_JSON_INDEX_MIN of them in
   one hash; a repeated key's slot ends with the last member. 0: out of memory. */
static int lisa__json_build_index(lisa_json *j) {
    size_t members = 0, slots = 16, i;
    int o;
    for (o = 0; o < j->n_nodes; o++)
        if (j->nodes[o].type == LISA_JSON_OBJECT && j->nodes[o].count >= LISA_JSON_INDEX_MIN) members += (size_t)j->nodes[o].count;
    if (members == 0) return 1;
    while (slots < 2 * members) slots *= 2;
    j->index = (int32_t *)lisa__alloc(&j->allocator, slots * sizeof(int32_t), &j->bytes);
    if (!j->index) return 0;
    j->index_slots = slots;
    for (i = 0; i < slots; i++) j->index[i] = -1;
    for (o = 0; o < j->n_nodes; o++) {
        int c;
        if (j->nodes[o].type != LISA_JSON_OBJECT || j->nodes[o].count < LISA_JSON_INDEX_MIN) continue;
        for (c = o + 1; c >= 0; c = lisa_json_next(j, c)) {
            const lisa_json_node *n = &j->nodes[c];
            j->index[lisa__json_find_slot(j, o, j->strings + n->key, n->key_len)] = c;
        }
    }
    return 1;
}

LISADEF lisa_result lisa_json_parse(lisa_json *j, const char *text, size_t len, const char *name,
                                    const lisa_allocator *a, lisa_error *err) {
    lisa__jp p;
    lisa_result r;
    memset(j, 0, sizeof *j);
    j->allocator = lisa__allocator_or_default(a);
    memset(&p, 0, sizeof p);
    p.s = (const unsigned char *)text;
    p.len = text ? len : 0;
    p.name = name ? name : "<json>";
    p.err = err;
    r = lisa__jp_run(&p);
    if (r != LISA_OK) return r;
    j->nodes = (lisa_json_node *)lisa__alloc(&j->allocator, (size_t)p.n_nodes * sizeof(lisa_json_node), &j->bytes);
    j->strings = (char *)lisa__alloc(&j->allocator, p.n_str + 1, &j->bytes);
    j->n_nodes = p.n_nodes; /* the sizes lisa_json_free() gives back */
    j->strings_size = p.n_str + 1;
    if (!j->nodes || !j->strings) {
        lisa_json_free(j);
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %d JSON values", p.name, p.n_nodes);
    }
    j->strings[p.n_str] = 0;
    p.j = j;
    r = lisa__jp_run(&p);
    LISA_ASSERT(r == LISA_OK && p.n_nodes == j->n_nodes);
    if (!lisa__json_build_index(j)) {
        lisa_json_free(j);
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for the index of %d JSON values", p.name, p.n_nodes);
    }
    lisa__ok(err);
    return r;
}

LISADEF void lisa_json_free(lisa_json *j) {
    lisa__free(&j->allocator, j->nodes, (size_t)j->n_nodes * sizeof(lisa_json_node), &j->bytes);
    lisa__free(&j->allocator, j->strings, j->strings_size, &j->bytes);
    lisa__free(&j->allocator, j->index, j->index_slots * sizeof(int32_t), &j->bytes);
    j->nodes = NULL;
    j->strings = NULL;
    j->index = NULL;
    j->index_slots = 0;
    j->n_nodes = 0;
    j->strings_size = 0;
}

static const lisa_json_node *lisa__json_node(const lisa_json *j, int i) {
    return j && i >= 0 && i < j->n_nodes ? &j->nodes[i] : NULL;
}

LISADEF int lisa_json_root(const lisa_json *j) { return j && j->n_nodes > 0 ? 0 : -1; }

LISADEF lisa_json_type lisa_json_type_of(const lisa_json *j, int node) {
    const lisa_json_node *n = lisa__json_node(j, node);
    return n ? n->type : LISA_JSON_NONE;
}

LISADEF int lisa_json_length(const lisa_json *j, int node) {
    const lisa_json_node *n = lisa__json_node(j, node);
    return n && (n->type == LISA_JSON_ARRAY || n->type == LISA_JSON_OBJECT) ? n->count : 0;
}

LISADEF int lisa_json_first(const lisa_json *j, int node) {
    return lisa_json_length(j, node) > 0 ? node + 1 : -1;
}

LISADEF int lisa_json_next(const lisa_json *j, int node) {
    const lisa_json_node *n = lisa__json_node(j, node), *parent;
    if (!n || !(parent = lisa__json_node(j, n->parent))) return -1;
    return n->end < parent->end ? n->end : -1;
}

LISADEF int lisa_json_at(const lisa_json *j, int node, int index) {
    int c = lisa_json_first(j, node), i;
    if (index < 0) return -1;
    for (i = 0; i < index && c >= 0; i++) c = lisa_json_next(j, c);
    return c;
}

LISADEF int lisa_json_get(const lisa_json *j, int object, const char *key) {
    size_t klen = strlen(key);
    int c, found = -1;
    if (lisa_json_type_of(j, object) != LISA_JSON_OBJECT) return -1;
    if (j->index && j->nodes[object].count >= LISA_JSON_INDEX_MIN)
        return j->index[lisa__json_find_slot(j, object, key, klen)];
    for (c = lisa_json_first(j, object); c >= 0; c = lisa_json_next(j, c)) {
        const lisa_json_node *n = &j->nodes[c];
        if (n->key_len == klen && memcmp(j->strings + n->key, key, klen) == 0) found = c;
    }
    return found;
}

LISADEF double lisa_json_number(const lisa_json *j, int node) {
    const lisa_json_node *n = lisa__json_node(j, node);
    return n && n->type == LISA_JSON_NUMBER ? n->number : 0.0;
}

LISADEF const char *lisa_json_string(const lisa_json *j, int node, size_t *len) {
    const lisa_json_node *n = lisa__json_node(j, node);
    if (!n || n->type != LISA_JSON_STRING) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = n->str_len;
    return j->strings + n->str;
}

LISADEF const char *lisa_json_key(const lisa_json *j, int node, size_t *len) {
    const lisa_json_node *n = lisa__json_node(j, node);
    if (!n || lisa_json_type_of(j, n->parent) != LISA_JSON_OBJECT) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = n->key_len;
    return j->strings + n->key;
}

/* Is the string (or, with key set, the member key) at node exactly lit? A
   decoded string may hold NULs, which strcmp would stop at. */
static int lisa__json_is(const lisa_json *j, int node, int key, const char *lit) {
    size_t len;
    const char *s = key ? lisa_json_key(j, node, &len) : lisa_json_string(j, node, &len);
    return s && len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* A key or string that a C string can stand for: no NUL inside. */
static int lisa__json_plain(const lisa_json *j, int node, int key) {
    size_t len;
    const char *s = key ? lisa_json_key(j, node, &len) : lisa_json_string(j, node, &len);
    return s && strlen(s) == len;
}

/* A number that is a whole value in [0, max]? */
static int lisa__json_uint(const lisa_json *j, int node, double max, double *out) {
    double v;
    if (lisa_json_type_of(j, node) != LISA_JSON_NUMBER) return 0;
    v = lisa_json_number(j, node);
    if (!(v >= 0.0 && v <= max) || v != floor(v)) return 0;
    *out = v;
    return 1;
}

/* ------------------------------------------------------------------------- */
/* Files                                                                      */
/* ------------------------------------------------------------------------- */

/* A 64-bit checksum of a byte stream fed in pieces of any size: the result
   depends on the bytes alone, read as little-endian 8-byte words. */
typedef struct lisa__hash {
    uint64_t h;
    unsigned char tail[8];
    int n_tail;
} lisa__hash;

static uint64_t lisa__hash_mix(uint64_t h, uint64_t w) {
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static uint64_t lisa__le64(const unsigned char *b) {
    uint64_t w = 0;
    int i;
    for (i = 7; i >= 0; i--) w = w << 8 | b[i];
    return w;
}

static void lisa__hash_bytes(lisa__hash *s, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    while (n > 0 && s->n_tail > 0 && s->n_tail < 8) {
        s->tail[s->n_tail++] = *p++;
        n--;
        if (s->n_tail == 8) {
            s->h = lisa__hash_mix(s->h, lisa__le64(s->tail));
            s->n_tail = 0;
        }
    }
    for (; n >= 8; p += 8, n -= 8) s->h = lisa__hash_mix(s->h, lisa__le64(p));
    while (n > 0 && s->n_tail < 8) {
        s->tail[s->n_tail++] = *p++;
        n--;
    }
}

/* A byte source: memory, or a FILE whose size is known up front. Everything
   read is also fed to a checksum. */
typedef struct lisa__reader {
    const unsigned char *mem;
    size_t size, pos;
    lisa__hash hash;
#ifndef LISA_NO_STDIO
    FILE *file;
#endif
} lisa__reader;

static int lisa__read(lisa__reader *r, void *dst, size_t n) {
    if (n > r->size - r->pos) return 0;
#ifndef LISA_NO_STDIO
    if (r->file) {
        if (fread(dst, 1, n, r->file) != n) return 0;
    } else
#endif
        memcpy(dst, r->mem + r->pos, n);
    r->pos += n;
    lisa__hash_bytes(&r->hash, dst, n);
    return 1;
}

static int lisa__skip(lisa__reader *r, size_t n) {
    if (n > r->size - r->pos) return 0;
#ifndef LISA_NO_STDIO
    if (r->file) {
        /* Seek in steps a long can hold. */
        size_t left = n;
        while (left > 0) {
            long step = (long)LISA__MIN(left, (size_t)1 << 30);
            if (fseek(r->file, step, SEEK_CUR) != 0) return 0;
            left -= (size_t)step;
        }
    }
#endif
    r->pos += n;
    return 1;
}

static int32_t lisa__le32(const unsigned char *b) {
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

static void lisa__put_le32(unsigned char *b, int32_t v) {
    uint32_t u = (uint32_t)v;
    b[0] = (unsigned char)u;
    b[1] = (unsigned char)(u >> 8);
    b[2] = (unsigned char)(u >> 16);
    b[3] = (unsigned char)(u >> 24);
}

static int lisa__little_endian(void) {
    const uint32_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* Reads n little-endian floats into dst. */
static int lisa__read_f32(lisa__reader *r, float *dst, size_t n) {
    size_t i;
    if (!lisa__read(r, dst, n * sizeof(float))) return 0;
    if (!lisa__little_endian()) {
        for (i = 0; i < n; i++) {
            unsigned char *b = (unsigned char *)(dst + i), t0 = b[0], t1 = b[1];
            b[0] = b[3]; b[1] = b[2]; b[2] = t1; b[3] = t0;
        }
    }
    return 1;
}

/* A config read from file `name`: checked and defaulted, a bad one a format
   error whose message names the file (then `part`, when not NULL). */
static lisa_result lisa__config_check_file(lisa_config *c, const char *name, const char *part, lisa_error *err) {
    char context[300];
    if (part) snprintf(context, sizeof context, "%s: %s", name, part);
    else snprintf(context, sizeof context, "%s", name);
    if (lisa__config_check(c, context, err) == LISA_OK) return LISA_OK;
    if (err) err->code = LISA_ERR_FORMAT;
    return LISA_ERR_FORMAT;
}

static lisa__reader lisa__memory_reader(const void *data, size_t size) {
    lisa__reader r;
    memset(&r, 0, sizeof r);
    r.mem = (const unsigned char *)data;
    r.size = data ? size : 0;
    return r;
}

/* --- llama2.c checkpoints --------------------------------------------------

   Two kinds, told apart by their first four bytes. The legacy one (run.c): 7
   int32, then the tensors tensor-major (every layer's wq, then every layer's
   wk, ...) with run.c's RoPE tables after the final norm. Version 1
   (export.py's version1_export): a 256-byte header led by a magic number, and
   another tensor order without RoPE tables. One decoder reads both headers and
   one function gives both tensor orders, in terms of lisa_model_tensor(), to
   the reader and the writer alike. */

#define LISA__L2C_HEADER 28
#define LISA__V1_MAGIC 0x616b3432u   /* "ak42" read as a little-endian uint32 */
#define LISA__V1_HEADER 256
#define LISA__V1_SHARED_FLAG 36      /* the shared-classifier byte's offset */
#define LISA__L2C_ROPE (-2)          /* the legacy RoPE tables' place in the tensor order */

/* A checked header: the model's settings and the file's kind and size. */
typedef struct lisa__l2c_header {
    lisa_config config;      /* resolved */
    int version;             /* 0: legacy, 1: version 1 */
    size_t header_bytes;     /* LISA__L2C_HEADER or LISA__V1_HEADER */
    size_t file_bytes;       /* what the header implies: the file's exact size */
} lisa__l2c_header;

static size_t lisa__l2c_rope_floats(const lisa_config *c, int version) {
    return version ? 0 : 2 * (size_t)c->max_seq_len * (size_t)(c->dim / c->n_heads / 2);
}

/* The k-th tensor of a file of this version, as a lisa_model_tensor() index
   (layer l's kind w is 1 + 9 l + w); LISA__L2C_ROPE for the legacy RoPE
   tables; -1 past the last. */
static int lisa__l2c_file_tensor(const lisa_config *c, int version, int k) {
    static const int v1_matrices[7] = {1, 2, 3, 4, 6, 7, 8}; /* wq wk wv wo w1 w2 w3 */
    int L = c->n_layers, final_norm = 9 * L + 1, head = c->tied_head ? -1 : 9 * L + 2;
    if (!version) { /* embedding, the nine kinds each for every layer, final norm, RoPE, head */
        if (k == 0) return 0;
        if (--k < 9 * L) return 1 + 9 * (k % L) + k / L;
        k -= 9 * L;
        return k == 0 ? final_norm : k == 1 ? LISA__L2C_ROPE : k == 2 ? head : -1;
    }
    /* attention norms, MLP norms, final norm, embedding, the matrices, head */
    if (k < 2 * L) return 1 + 9 * (k % L) + (k < L ? 0 : 5);
    k -= 2 * L;
    if (k < 2) return k == 0 ? final_norm : 0;
    k -= 2;
    if (k < 7 * L) return 1 + 9 * (k % L) + v1_matrices[k / L];
    return k == 7 * L ? head : -1;
}

/* The 7 int32 both kinds share: dim, hidden_dim, n_layers, n_heads,
   n_kv_heads, vocab_size, max_seq_len. The legacy kind marks a separate head
   by a negative vocab_size; version 1 by its shared-classifier byte, so there
   a negative vocab_size is an error. */
static lisa_result lisa__l2c_decode_config(lisa_config *c, const unsigned char *hb, int version, const char *name,
                                           lisa_error *err) {
    int32_t v[7];
    int i;
    for (i = 0; i < 7; i++) v[i] = lisa__le32(hb + (version ? 8 : 0) + 4 * i);
    memset(c, 0, sizeof *c);
    c->dim = v[0];
    c->hidden_dim = v[1];
    c->n_layers = v[2];
    c->n_heads = v[3];
    c->n_kv_heads = v[4];
    c->max_seq_len = v[6];
    if (version) {
        if (v[5] < 0)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: vocab_size %ld is negative (a version-1 file marks a separate head with its shared-classifier flag)",
                              name, (long)v[5]);
        c->vocab_size = v[5];
        c->tied_head = hb[LISA__V1_SHARED_FLAG];
    } else {
        c->tied_head = v[5] > 0;
        c->vocab_size = v[5] == INT32_MIN ? 0 : (v[5] < 0 ? -v[5] : v[5]);
    }
    if (c->n_kv_heads == 0) /* the file must say it: 0 is not "default" here */
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: n_kv_heads is 0", name);
    return lisa__config_check_file(c, name, "bad header", err);
}

/* Reads and checks the header at r's start, and r's size against it. With
   v1_only the file must be version 1; otherwise either kind. */
static lisa_result lisa__l2c_read_header(lisa__reader *r, int v1_only, lisa__l2c_header *h, const char *name,
                                         lisa_error *err) {
    unsigned char hb[LISA__V1_HEADER];
    uint32_t magic = 0;
    double n_floats;
    lisa_result res;
    memset(h, 0, sizeof *h);
    if (r->size >= 4) {
        if (!lisa__read(r, hb, 4)) goto read_failed;
        magic = (uint32_t)lisa__le32(hb);
    }
    h->version = magic == LISA__V1_MAGIC || v1_only;
    h->header_bytes = h->version ? LISA__V1_HEADER : LISA__L2C_HEADER;
    if (v1_only && r->size >= 4 && magic != LISA__V1_MAGIC)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: magic 0x%08lx is not a llama2.c version-1 checkpoint (\"ak42\", 0x%08lx)",
                          name, (unsigned long)magic, (unsigned long)LISA__V1_MAGIC);
    if (r->size < h->header_bytes)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated header: the file has %lu bytes, a %s header needs %d",
                          name, (unsigned long)r->size, h->version ? "version-1" : "llama2.c", (int)h->header_bytes);
    if (!lisa__read(r, hb + 4, h->header_bytes - 4)) goto read_failed;
    if (h->version && lisa__le32(hb + 4) != 1)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: version %ld is not supported (only 1, fp32; 2 is int8-quantized)",
                          name, (long)lisa__le32(hb + 4));
    if (h->version && hb[LISA__V1_SHARED_FLAG] > 1)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: shared_classifier flag %d is not 0 or 1", name,
                          hb[LISA__V1_SHARED_FLAG]);
    res = lisa__l2c_decode_config(&h->config, hb, h->version, name, err);
    if (res != LISA_OK) return res;
    /* In double first: with a 32-bit size_t the RoPE tables alone can wrap. */
    n_floats = (double)lisa_layout_of(&h->config).n_params +
               (h->version ? 0.0 : (double)h->config.max_seq_len * (h->config.dim / h->config.n_heads));
    if ((double)h->header_bytes + n_floats * sizeof(float) > (double)SIZE_MAX / 2)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: the file would be too large for this machine", name);
    h->file_bytes = h->header_bytes +
                    (lisa_layout_of(&h->config).n_params + lisa__l2c_rope_floats(&h->config, h->version)) * sizeof(float);
    if (r->size < h->file_bytes)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated: the header implies %.0f bytes, the file has %.0f",
                          name, (double)h->file_bytes, (double)r->size);
    if (r->size > h->file_bytes)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: %.0f bytes of trailing data: the header implies %.0f bytes, the file has %.0f",
                          name, (double)(r->size - h->file_bytes), (double)h->file_bytes, (double)r->size);
    return LISA_OK;
read_failed:
    return lisa__fail(err, LISA_ERR_IO, "%s: read failed at byte %.0f", name, (double)r->pos);
}

static lisa_result lisa__l2c_read(lisa_model *m, lisa__reader *r, int v1_only, const char *name,
                                  const lisa_allocator *a, lisa_error *err) {
    lisa__l2c_header h;
    lisa_result res;
    int k, t, ok = 1;
    memset(m, 0, sizeof *m);
    res = lisa__l2c_read_header(r, v1_only, &h, name, err);
    if (res == LISA_OK) res = lisa__model_alloc(m, &h.config, a, name, err);
    if (res != LISA_OK) return res;
    for (k = 0; ok && (t = lisa__l2c_file_tensor(&h.config, h.version, k)) != -1; k++) {
        if (t == LISA__L2C_ROPE) {
            ok = lisa__skip(r, lisa__l2c_rope_floats(&h.config, h.version) * sizeof(float));
        } else {
            lisa_param p = lisa_model_tensor(m, t);
            ok = lisa__read_f32(r, p.tensor.data, lisa_tensor_numel(&p.tensor));
        }
    }
    if (!ok) {
        lisa_model_free(m);
        return lisa__fail(err, LISA_ERR_IO, "%s: read failed at byte %.0f", name, (double)r->pos);
    }
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_model_load_llama2c_memory(lisa_model *m, const void *data, size_t size,
                                                   const char *name, const lisa_allocator *a,
                                                   lisa_error *err) {
    lisa__reader r = lisa__memory_reader(data, size);
    return lisa__l2c_read(m, &r, 0, name ? name : "<memory>", a, err);
}

LISADEF lisa_result lisa_model_load_llama2c_v1_memory(lisa_model *m, const void *data, size_t size,
                                                      const char *name, const lisa_allocator *a,
                                                      lisa_error *err) {
    lisa__reader r = lisa__memory_reader(data, size);
    return lisa__l2c_read(m, &r, 1, name ? name : "<memory>", a, err);
}

/* --- llm.c token files ---------------------------------------------------- */

#define LISA__TOK_HEADER_INTS 256
#define LISA__TOK_MAGIC_U16 20240520
#define LISA__TOK_MAGIC_U32 20240801

static lisa_result lisa__tokens_read(lisa_tokens *d, lisa__reader *r, const char *name,
                                     const lisa_allocator *a, lisa_error *err) {
    unsigned char hb[4 * LISA__TOK_HEADER_INTS];
    int32_t magic, version, count;
    size_t width, i, data_bytes;
    unsigned char *raw;
    memset(d, 0, sizeof *d);
    if (!lisa__read(r, hb, sizeof hb))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated header: the file has %lu bytes, a token file header needs %d",
                          name, (unsigned long)r->size, 4 * LISA__TOK_HEADER_INTS);
    magic = lisa__le32(hb);
    version = lisa__le32(hb + 4);
    count = lisa__le32(hb + 8);
    if (magic == LISA__TOK_MAGIC_U16 && version == 1) width = 2;
    else if (magic == LISA__TOK_MAGIC_U32 && version == 7) width = 4;
    else if (magic == LISA__TOK_MAGIC_U16 || magic == LISA__TOK_MAGIC_U32)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: magic %d with unsupported version %d", name, magic, version);
    else
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: magic %d is not an llm.c token file (%d or %d)",
                          name, magic, LISA__TOK_MAGIC_U16, LISA__TOK_MAGIC_U32);
    if (count < 2)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: token count %d (at least 2 are needed for one input and target)",
                          name, count);
    if ((size_t)count > SIZE_MAX / sizeof(int)) /* only possible with a 32-bit size_t */
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: %d tokens are too many for this machine", name, count);
    data_bytes = (size_t)count * width;
    if (r->size - r->pos < data_bytes)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated: the header says %d tokens (%.0f bytes), the file holds %.0f bytes after the header",
                          name, count, (double)data_bytes, (double)(r->size - r->pos));
    if (r->size - r->pos > data_bytes)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: %.0f bytes of trailing data after the %d tokens the header says",
                          name, (double)(r->size - r->pos - data_bytes), count);
    d->allocator = lisa__allocator_or_default(a);
    d->n = (size_t)count;
    d->ids = (int *)lisa__alloc(&d->allocator, d->n * sizeof(int), &d->bytes);
    if (!d->ids) {
        d->n = 0;
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %d tokens", name, count);
    }
    /* Widen in place from the back: raw tokens are read into the end of ids. */
    raw = (unsigned char *)d->ids + d->n * sizeof(int) - data_bytes;
    if (!lisa__read(r, raw, data_bytes)) {
        lisa_tokens_free(d);
        return lisa__fail(err, LISA_ERR_IO, "%s: read failed at byte %.0f", name, (double)r->pos);
    }
    for (i = 0; i < d->n; i++) {
        const unsigned char *b = raw + i * width;
        uint32_t v = width == 2 ? (uint32_t)b[0] | (uint32_t)b[1] << 8 : (uint32_t)lisa__le32(b);
        if (v > 0x7fffffffu) {
            lisa_tokens_free(d);
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: token %lu has id %lu, beyond any vocabulary",
                              name, (unsigned long)i, (unsigned long)v);
        }
        d->ids[i] = (int)v;
    }
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_tokens_load_memory(lisa_tokens *d, const void *data, size_t size,
                                            const char *name, const lisa_allocator *a,
                                            lisa_error *err) {
    lisa__reader r = lisa__memory_reader(data, size);
    return lisa__tokens_read(d, &r, name ? name : "<memory>", a, err);
}

LISADEF void lisa_tokens_free(lisa_tokens *d) {
    lisa__free(&d->allocator, d->ids, d->n * sizeof(int), &d->bytes);
    d->ids = NULL;
    d->n = 0;
}

LISADEF lisa_result lisa_tokens_check_vocab(const lisa_tokens *d, int vocab, const char *name,
                                            lisa_error *err) {
    size_t i;
    for (i = 0; i < d->n; i++)
        if (d->ids[i] < 0 || d->ids[i] >= vocab)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: token %lu has id %d, outside the model's vocabulary of %d",
                              name ? name : "tokens", (unsigned long)i, d->ids[i], vocab);
    lisa__ok(err);
    return LISA_OK;
}

LISADEF void lisa_tokens_batch(const lisa_tokens *d, long long index, int B, int T,
                               int *inputs, int *targets) {
    size_t span = (size_t)B * T, start = (size_t)((unsigned long long)index * span % d->n), i;
    for (i = 0; i < span; i++) {
        inputs[i] = d->ids[(start + i) % d->n];
        targets[i] = d->ids[(start + i + 1) % d->n];
    }
}

/* --- stdio: reading and atomic writing ------------------------------------ */
#ifndef LISA_NO_STDIO

static lisa_result lisa__open_reader(lisa__reader *r, const char *path, lisa_error *err) {
    long size;
    memset(r, 0, sizeof *r);
    r->file = fopen(path, "rb");
    if (!r->file) return lisa__fail(err, LISA_ERR_IO, "%s: cannot open for reading", path);
    if (fseek(r->file, 0, SEEK_END) != 0 || (size = ftell(r->file)) < 0 || fseek(r->file, 0, SEEK_SET) != 0) {
        fclose(r->file);
        r->file = NULL;
        return lisa__fail(err, LISA_ERR_IO, "%s: cannot determine the file size", path);
    }
    r->size = (size_t)size;
    /* fopen succeeds on a directory on some systems; a first read tells. */
    if (fgetc(r->file) == EOF && ferror(r->file)) {
        fclose(r->file);
        r->file = NULL;
        return lisa__fail(err, LISA_ERR_IO, "%s: cannot read (is it a directory?)", path);
    }
    rewind(r->file);
    return LISA_OK;
}

/* A whole file in memory, NUL-terminated; *size its bytes. Files over
   max_size are a format error: loaders cap what they will read whole. */
static lisa_result lisa__read_text(const char *path, const lisa_allocator *al, size_t max_size, char **text,
                                   size_t *size, size_t *counter, lisa_error *err) {
    lisa__reader r;
    lisa_result res = lisa__open_reader(&r, path, err);
    *text = NULL;
    *size = 0;
    if (res != LISA_OK) return res;
    if (r.size > max_size || r.size == SIZE_MAX) {
        fclose(r.file);
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: %.0f bytes is more than this loader reads (%.0f)", path,
                          (double)r.size, (double)max_size);
    }
    *text = (char *)lisa__alloc(al, r.size + 1, counter);
    if (!*text) {
        fclose(r.file);
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %.0f bytes", path, (double)r.size);
    }
    if (!lisa__read(&r, *text, r.size)) {
        fclose(r.file);
        lisa__free(al, *text, r.size + 1, counter);
        *text = NULL;
        return lisa__fail(err, LISA_ERR_IO, "%s: read failed", path);
    }
    (*text)[r.size] = 0;
    fclose(r.file);
    *size = r.size;
    return LISA_OK;
}

static lisa_result lisa__l2c_load(lisa_model *m, const char *path, int v1_only, const lisa_allocator *a,
                                  lisa_error *err) {
    lisa__reader r;
    lisa_result res = lisa__open_reader(&r, path, err);
    if (res != LISA_OK) {
        memset(m, 0, sizeof *m);
        return res;
    }
    res = lisa__l2c_read(m, &r, v1_only, path, a, err);
    fclose(r.file);
    return res;
}

LISADEF lisa_result lisa_model_load_llama2c(lisa_model *m, const char *path,
                                            const lisa_allocator *a, lisa_error *err) {
    return lisa__l2c_load(m, path, 0, a, err);
}

LISADEF lisa_result lisa_model_load_llama2c_v1(lisa_model *m, const char *path,
                                               const lisa_allocator *a, lisa_error *err) {
    return lisa__l2c_load(m, path, 1, a, err);
}

LISADEF lisa_result lisa_tokens_load(lisa_tokens *d, const char *path, const lisa_allocator *a,
                                     lisa_error *err) {
    lisa__reader r;
    lisa_result res = lisa__open_reader(&r, path, err);
    if (res != LISA_OK) {
        memset(d, 0, sizeof *d);
        return res;
    }
    res = lisa__tokens_read(d, &r, path, a, err);
    fclose(r.file);
    return res;
}

/* An atomic writer: everything goes to "<path>.tmp", which replaces path only
   once it is complete, so a failed or interrupted save keeps the old file. */
typedef struct lisa__writer {
    FILE *file;
    const char *path;
    char tmp[4096];
    int failed;
    lisa__hash hash;     /* of everything written so far */
} lisa__writer;

static lisa_result lisa__writer_open(lisa__writer *w, const char *path, lisa_error *err) {
    memset(w, 0, sizeof *w);
    w->path = path;
    if (strlen(path) + 5 > sizeof w->tmp) return lisa__fail(err, LISA_ERR_IO, "%s: path too long", path);
    strcpy(w->tmp, path);
    strcat(w->tmp, ".tmp");
    w->file = fopen(w->tmp, "wb");
    if (!w->file) return lisa__fail(err, LISA_ERR_IO, "%s: cannot open %s for writing", path, w->tmp);
    return LISA_OK;
}

static void lisa__write(lisa__writer *w, const void *data, size_t n) {
    if (!w->failed && n && fwrite(data, 1, n, w->file) != n) w->failed = 1;
    lisa__hash_bytes(&w->hash, data, n);
}

static void lisa__write_f32(lisa__writer *w, const float *x, size_t n) {
    unsigned char buf[4096];
    size_t i, k;
    if (lisa__little_endian()) {
        lisa__write(w, x, n * sizeof(float));
        return;
    }
    for (i = 0; i < n; i += sizeof buf / 4) {
        size_t chunk = LISA__MIN(n - i, sizeof buf / 4);
        for (k = 0; k < chunk; k++) {
            uint32_t u;
            memcpy(&u, x + i + k, 4);
            lisa__put_le32(buf + 4 * k, (int32_t)u);
        }
        lisa__write(w, buf, chunk * 4);
    }
}

static lisa_result lisa__writer_close(lisa__writer *w, lisa_error *err) {
    int failed = w->failed || fflush(w->file) != 0 || ferror(w->file);
    if (fclose(w->file) != 0) failed = 1;
    w->file = NULL;
    if (failed) {
        remove(w->tmp);
        return lisa__fail(err, LISA_ERR_IO, "%s: write failed (disk full?); the previous file is unchanged", w->path);
    }
#ifdef _WIN32
    remove(w->path);
#endif
    if (rename(w->tmp, w->path) != 0) {
        remove(w->tmp);
        return lisa__fail(err, LISA_ERR_IO, "%s: cannot rename %s into place", w->path, w->tmp);
    }
    lisa__ok(err);
    return LISA_OK;
}

/* The header of c's model as a file of this version; returns its bytes. */
static size_t lisa__l2c_encode_header(unsigned char hb[LISA__V1_HEADER], const lisa_config *c, int version) {
    const int32_t v[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                          version || c->tied_head ? c->vocab_size : -c->vocab_size, c->max_seq_len};
    int i;
    memset(hb, 0, LISA__V1_HEADER);
    if (version) {
        lisa__put_le32(hb, (int32_t)LISA__V1_MAGIC);
        lisa__put_le32(hb + 4, 1);
        hb[LISA__V1_SHARED_FLAG] = (unsigned char)(c->tied_head ? 1 : 0);
    }
    for (i = 0; i < 7; i++) lisa__put_le32(hb + (version ? 8 : 0) + 4 * i, v[i]);
    return version ? LISA__V1_HEADER : LISA__L2C_HEADER;
}

/* The RoPE tables run.c expects: cos, then sin, of pos * theta^(-2i/hs). */
static void lisa__l2c_write_rope(lisa__writer *w, const lisa_config *c) {
    int hs = c->dim / c->n_heads, i, pos;
    for (i = 0; i < 2; i++)
        for (pos = 0; pos < c->max_seq_len; pos++) {
            float row[512];
            int j, k;
            for (j = 0; j < hs / 2; j += 512) {
                int n = LISA__MIN(512, hs / 2 - j);
                for (k = 0; k < n; k++) {
                    double angle = pos * pow((double)c->rope_theta, -2.0 * (j + k) / hs);
                    row[k] = (float)(i == 0 ? cos(angle) : sin(angle));
                }
                lisa__write_f32(w, row, (size_t)n);
            }
        }
}

static lisa_result lisa__l2c_save(const lisa_model *m, const char *path, int version, lisa_error *err) {
    unsigned char hb[LISA__V1_HEADER];
    lisa__writer w;
    int k, t;
    lisa_result res = lisa__writer_open(&w, path, err);
    if (res != LISA_OK) return res;
    lisa__write(&w, hb, lisa__l2c_encode_header(hb, &m->config, version));
    for (k = 0; (t = lisa__l2c_file_tensor(&m->config, version, k)) != -1; k++) {
        if (t == LISA__L2C_ROPE) {
            lisa__l2c_write_rope(&w, &m->config);
        } else {
            lisa_param p = lisa_model_tensor(m, t);
            lisa__write_f32(&w, p.tensor.data, lisa_tensor_numel(&p.tensor));
        }
    }
    return lisa__writer_close(&w, err);
}

LISADEF lisa_result lisa_model_save_llama2c(const lisa_model *m, const char *path, lisa_error *err) {
    return lisa__l2c_save(m, path, 0, err);
}

LISADEF lisa_result lisa_model_save_llama2c_v1(const lisa_model *m, const char *path, lisa_error *err) {
    return lisa__l2c_save(m, path, 1, err);
}

LISADEF lisa_result lisa_tokens_save(const int *ids, size_t n, const char *path, lisa_error *err) {
    unsigned char hb[4 * LISA__TOK_HEADER_INTS], buf[4096];
    int wide = 0;
    size_t i, k, width;
    lisa__writer w;
    lisa_result res;
    if (n < 2 || n > 0x7fffffff)
        return lisa__fail(err, LISA_ERR_INVALID, "%s: %lu tokens: a token file holds 2 to 2^31-1", path, (unsigned long)n);
    for (i = 0; i < n; i++) {
        if (ids[i] < 0) return lisa__fail(err, LISA_ERR_INVALID, "%s: token %lu has negative id %d", path, (unsigned long)i, ids[i]);
        if (ids[i] > 0xffff) wide = 1;
    }
    memset(hb, 0, sizeof hb);
    lisa__put_le32(hb, wide ? LISA__TOK_MAGIC_U32 : LISA__TOK_MAGIC_U16);
    lisa__put_le32(hb + 4, wide ? 7 : 1);
    lisa__put_le32(hb + 8, (int32_t)n);
    width = wide ? 4 : 2;
    res = lisa__writer_open(&w, path, err);
    if (res != LISA_OK) return res;
    lisa__write(&w, hb, sizeof hb);
    for (i = 0; i < n; i += sizeof buf / width) {
        size_t chunk = LISA__MIN(n - i, sizeof buf / width);
        for (k = 0; k < chunk; k++) {
            uint32_t v = (uint32_t)ids[i + k];
            if (wide) lisa__put_le32(buf + 4 * k, (int32_t)v);
            else {
                buf[2 * k] = (unsigned char)v;
                buf[2 * k + 1] = (unsigned char)(v >> 8);
            }
        }
        lisa__write(&w, buf, chunk * width);
    }
    return lisa__writer_close(&w, err);
}

#endif /* LISA_NO_STDIO */

/* ------------------------------------------------------------------------- */
/* Training state files                                                       */
/* ------------------------------------------------------------------------- */

/* Layout, little-endian:
     "LSST", uint32 version 1, uint32 LISA__STATE_INTS, uint32 LISA__STATE_FLOATS
     int32 fields, float32 fields, uint64 fields   (lisa__state_code's order)
     int32 active layers (n_active of them), float32 layer weights (n_layers, when given)
     float32 parameters (the model's buffer, layer-major)
     LoRA mode only: int32 rank, targets, train_embed, train_head, train_norms,
                float32 alpha, float32 adapters (lisa_lora's buffer, layer-major)
     per block (lisa_train_n_blocks of them): int32 flags (1 trains, 2 has moments), int32 AdamW step, then
                moments m and v (block size floats each) when it has them
     uint64 checksum of every byte before it */

#define LISA__STATE_VERSION 1
#define LISA__STATE_INTS 26
#define LISA__STATE_FLOATS 9
#define LISA__STATE_U64S 3
#define LISA__STATE_PRELUDE 16 /* "LSST", the version, the two counts */
#define LISA__STATE_HEADER (LISA__STATE_PRELUDE + 4 * LISA__STATE_INTS + 4 * LISA__STATE_FLOATS + 8 * LISA__STATE_U64S)

/* The header's fields, named as the model and the trainer hold them. */
typedef struct lisa__state_header {
    lisa_config model;           /* the model's settings */
    lisa_train_config train;     /* the trainer's; lisa_probs is not in the header */
    int has_weights;             /* 1: n_layers float32 sampling weights follow the active layers */
    int step;                    /* optimizer steps taken */
    int sampler_next;            /* the cyclic sampler's next layer */
    int n_active;                /* decoder layers training now, listed after the header */
    uint64_t sampler_rng;        /* the sampler's RNG state */
    uint64_t data_position;      /* the caller's, kept for it */
} lisa__state_header;

/* One pass over the header's fields in file order moves them either way:
   to bytes (decode 0, for writing) or from bytes (decode 1, for reading). */
typedef struct lisa__state_codec {
    unsigned char *at;
    int decode;
} lisa__state_codec;

static void lisa__codec_u32(lisa__state_codec *k, uint32_t *x) {
    if (k->decode) *x = (uint32_t)lisa__le32(k->at);
    else lisa__put_le32(k->at, (int32_t)*x);
    k->at += 4;
}

static void lisa__codec_int(lisa__state_codec *k, int *x) {
    uint32_t u = (uint32_t)*x;
    lisa__codec_u32(k, &u);
    *x = (int)(int32_t)u;
}

static void lisa__codec_float(lisa__state_codec *k, float *x) {
    uint32_t u;
    memcpy(&u, x, 4);
    lisa__codec_u32(k, &u);
    memcpy(x, &u, 4);
}

static void lisa__codec_u64(lisa__state_codec *k, uint64_t *x) {
    uint32_t lo = (uint32_t)*x, hi = (uint32_t)(*x >> 32);
    lisa__codec_u32(k, &lo);
    lisa__codec_u32(k, &hi);
    *x = (uint64_t)hi << 32 | lo;
}

/* The first 16 bytes of every state file this code writes and reads. */
static void lisa__state_prelude(unsigned char p[LISA__STATE_PRELUDE]) {
    memcpy(p, "LSST", 4);
    lisa__put_le32(p + 4, LISA__STATE_VERSION);
    lisa__put_le32(p + 8, LISA__STATE_INTS);
    lisa__put_le32(p + 12, LISA__STATE_FLOATS);
}

/* h to bytes (decode 0, the prelude included) or bytes to h (decode 1; the
   prelude was checked by the reader, and h's other members are zeroed). */
static void lisa__state_code(lisa__state_header *h, unsigned char bytes[LISA__STATE_HEADER], int decode) {
    lisa_config *c = &h->model;
    lisa_train_config *tc = &h->train;
    int kind = (int)tc->schedule.kind, mode = (int)tc->mode, order = (int)tc->lisa_order, i;
    int *const ints[LISA__STATE_INTS] = {
        &c->dim, &c->hidden_dim, &c->n_layers, &c->n_heads, &c->n_kv_heads, &c->vocab_size, &c->max_seq_len,
        &c->tied_head, &tc->batch, &tc->seq, &kind, &tc->schedule.warmup, &tc->schedule.total_steps,
        &tc->checkpointing, &mode, &tc->lisa_layers, &tc->lisa_interval, &order, &h->has_weights,
        &tc->freeze_embed, &tc->freeze_final_norm, &tc->freeze_head, &tc->keep_state, &h->step,
        &h->sampler_next, &h->n_active};
    float *const floats[LISA__STATE_FLOATS] = {&c->norm_eps, &c->rope_theta, &tc->schedule.lr, &tc->schedule.min_lr,
                                               &tc->beta1, &tc->beta2, &tc->eps, &tc->weight_decay, &tc->grad_clip};
    uint64_t *const u64s[LISA__STATE_U64S] = {&tc->lisa_seed, &h->sampler_rng, &h->data_position};
    lisa__state_codec k;
    if (decode) {
        memset(h, 0, sizeof *h);
        kind = mode = order = 0;
    } else {
        lisa__state_prelude(bytes);
    }
    k.at = bytes + LISA__STATE_PRELUDE;
    k.decode = decode;
    for (i = 0; i < LISA__STATE_INTS; i++) lisa__codec_int(&k, ints[i]);
    for (i = 0; i < LISA__STATE_FLOATS; i++) lisa__codec_float(&k, floats[i]);
    for (i = 0; i < LISA__STATE_U64S; i++) lisa__codec_u64(&k, u64s[i]);
    tc->schedule.kind = (lisa_schedule_kind)kind;
    tc->mode = (lisa_mode)mode;
    tc->lisa_order = (lisa_layer_order)order;
}

static int lisa__read_i32s(lisa__reader *r, int32_t *x, size_t n) {
    unsigned char b[4];
    size_t i;
    for (i = 0; i < n; i++) {
        if (!lisa__read(r, b, 4)) return 0;
        x[i] = lisa__le32(b);
    }
    return 1;
}

static int lisa__read_u64(lisa__reader *r, uint64_t *x) {
    unsigned char b[8];
    if (!lisa__read(r, b, 8)) return 0;
    *x = lisa__le64(b);
    return 1;
}

static uint64_t lisa__hash_value(const lisa__hash *s) {
    uint64_t h = s->h;
    int i;
    for (i = 0; i < s->n_tail; i++) h = lisa__hash_mix(h, 0x100u | s->tail[i]);
    return lisa__hash_mix(h, (uint64_t)s->n_tail);
}

/* Reads the per-block optimizer state into an initialised trainer. */
static lisa_result lisa__state_read_blocks(lisa_trainer *t, lisa__reader *r, const char *name, lisa_error *err) {
    int b, nb = lisa_train_n_blocks(&t->model->config, &t->config);
    for (b = 0; b < nb; b++) {
        lisa_block_state *s = &t->blocks[b];
        size_t n = t->block_sizes[b];
        int32_t fs[2];
        int trains, has_moments;
        if (!lisa__read_i32s(r, fs, 2)) goto truncated;
        trains = fs[0] & 1;
        has_moments = (fs[0] & 2) != 0;
        if ((fs[0] & ~3) || trains != s->active || (trains && !has_moments) ||
            (has_moments && !s->active && !t->config.keep_state) || (has_moments && n == 0) || fs[1] < 0 ||
            fs[1] > LISA__MAX_STEPS || (!has_moments && fs[1] != 0))
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: block %d: state flags %d do not fit the settings", name, b, fs[0]);
        if (!has_moments) continue;
        if (r->size - r->pos < 2 * n * sizeof(float)) goto truncated;
        if (lisa_trainer_block_keep_moments(t, b) != LISA_OK)
            return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for block %d's moments", name, b);
        if (!lisa__read_f32(r, s->m, 2 * n)) goto truncated;
        s->step = fs[1];
    }
    return LISA_OK;
truncated:
    return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated at byte %.0f (block state)", name, (double)r->pos);
}

/* Puts "name: " before err's message, keeping its code. */
static lisa_result lisa__error_in(lisa_error *err, lisa_result code, const char *name) {
    char why[sizeof err->message];
    if (!err) return code;
    memcpy(why, err->message, sizeof why);
    return lisa__fail(err, code, "%s: %s", name, why);
}

/* Turns a settings error into a format error that names the file. */
static lisa_result lisa__state_bad_settings(lisa_error *err, const char *name) {
    char where[300];
    snprintf(where, sizeof where, "%s: bad state header", name);
    return lisa__error_in(err, LISA_ERR_FORMAT, where);
}

/* The header's checks: the settings as the trainer would check them, resolved
   (a bad one a format error naming the file), the progress fields in range. */
static lisa_result lisa__state_check(lisa__state_header *h, const char *name, lisa_error *err) {
    const lisa_config *c = &h->model;
    int full = h->train.mode == LISA_MODE_FULL, lora = h->train.mode == LISA_MODE_LORA;
    if (lisa__config_check_file(&h->model, name, "bad state header", err) != LISA_OK) return LISA_ERR_FORMAT;
    if (lisa_train_config_resolve(&h->train, c, err) != LISA_OK) return lisa__state_bad_settings(err, name);
    if (h->step < 0 || h->step > LISA__MAX_STEPS || h->sampler_next < 0 || h->sampler_next >= c->n_layers ||
        h->n_active < 0 || h->n_active > c->n_layers || (full && h->n_active != c->n_layers) ||
        (unsigned)h->has_weights > 1 || (full && h->has_weights) || (lora && (h->n_active || h->has_weights)))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad state header: step, sampler or active-layer count out of range", name);
    return LISA_OK;
}

/* Reads and checks the header, then the active layers and the sampling
   weights that follow it (into active and weights, n_layers at most each). */
static lisa_result lisa__state_read_header(lisa__reader *r, lisa__state_header *h, int32_t *active, float *weights,
                                           const char *name, lisa_error *err) {
    unsigned char bytes[LISA__STATE_HEADER], want[LISA__STATE_PRELUDE];
    lisa_result res;
    int i;
    memset(h, 0, sizeof *h);
    lisa__state_prelude(want);
    if (!lisa__read(r, bytes, LISA__STATE_PRELUDE))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated header: %.0f bytes", name, (double)r->size);
    if (memcmp(bytes, want, 4) != 0)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: not a lisa training state (magic is not LSST)", name);
    if (memcmp(bytes + 4, want + 4, LISA__STATE_PRELUDE - 4) != 0)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: unsupported state version %d", name, (int)lisa__le32(bytes + 4));
    if (!lisa__read(r, bytes + LISA__STATE_PRELUDE, LISA__STATE_HEADER - LISA__STATE_PRELUDE))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated header: %.0f bytes, a state header needs %d", name,
                          (double)r->size, LISA__STATE_HEADER);
    lisa__state_code(h, bytes, 1);
    if ((res = lisa__state_check(h, name, err)) != LISA_OK) return res;
    if (!lisa__read_i32s(r, active, (size_t)h->n_active)) goto truncated;
    for (i = 0; i < h->n_active; i++) /* ascending, in range; in full mode every layer */
        if (active[i] < 0 || active[i] >= h->model.n_layers || (i > 0 && active[i] <= active[i - 1]) ||
            (h->train.mode == LISA_MODE_FULL && active[i] != i))
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad state: the active layers are not distinct, ascending layer indices", name);
    if (h->has_weights) {
        if (!lisa__read_f32(r, weights, (size_t)h->model.n_layers)) goto truncated;
        h->train.lisa_probs = weights;
        if (lisa_train_config_resolve(&h->train, &h->model, err) != LISA_OK) return lisa__state_bad_settings(err, name);
    }
    return LISA_OK;
truncated:
    return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated at byte %.0f", name, (double)r->pos);
}

/* LoRA mode's settings after the parameters, checked, and that the adapters
   they imply are present (read once the trainer holds their buffer). */
static lisa_result lisa__state_read_lora(lisa__reader *r, lisa__state_header *h, const char *name, lisa_error *err) {
    lisa_lora_config *lc = &h->train.lora;
    int32_t v[5];
    lisa_lora l;
    if (!lisa__read_i32s(r, v, 5) || !lisa__read_f32(r, &lc->alpha, 1))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated at byte %.0f (LoRA settings)", name, (double)r->pos);
    lc->rank = v[0];
    lc->targets = (unsigned)v[1];
    lc->train_embed = v[2];
    lc->train_head = v[3];
    lc->train_norms = v[4];
    if (v[0] == 0 || v[1] == 0 || lisa_train_config_resolve(&h->train, &h->model, err) != LISA_OK)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad LoRA settings in the state (rank %d, alpha %g, targets 0x%x)",
                          name, (int)v[0], (double)lc->alpha, (unsigned)v[1]);
    lisa__lora_layout(&l, &h->model, lc);
    if ((r->size - r->pos) / sizeof(float) < (size_t)h->model.n_layers * l.layer_size)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated: the LoRA settings imply %.0f adapter floats, the file "
                          "holds fewer", name, (double)h->model.n_layers * (double)l.layer_size);
    return LISA_OK;
}

static lisa_result lisa__state_read(lisa_trainer *t, lisa_model *m, lisa__reader *r, const char *name,
                                    const lisa_allocator *a, uint64_t *data_position, lisa_error *err) {
    lisa__state_header h;
    int32_t active[LISA__MAX_LAYERS];
    float probs[LISA__MAX_LAYERS];
    uint64_t stored_sum, sum;
    size_t floats_left;
    lisa_result res;
    memset(m, 0, sizeof *m);
    memset(t, 0, sizeof *t);
    if ((res = lisa__state_read_header(r, &h, active, probs, name, err)) != LISA_OK) return res;
    /* Every count is checked against the bytes present before it is allocated. */
    floats_left = (r->size - r->pos) / sizeof(float);
    if (floats_left < lisa_layout_of(&h.model).n_params)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated: the header implies %.0f parameters, the file holds fewer",
                          name, (double)lisa_layout_of(&h.model).n_params);
    res = lisa__model_alloc(m, &h.model, a, name, err);
    if (res != LISA_OK) return res;
    if (!lisa__read_f32(r, m->params, m->layout.n_params)) goto truncated_free;
    if (h.train.mode == LISA_MODE_LORA && (res = lisa__state_read_lora(r, &h, name, err)) != LISA_OK) {
        lisa_model_free(m);
        return res;
    }
    res = lisa_trainer_init(t, m, &h.train, a, err);
    if (res != LISA_OK) {
        lisa_model_free(m);
        return lisa__error_in(err, res, name);
    }
    if (h.train.mode == LISA_MODE_LORA && !lisa__read_f32(r, t->lora.params, (size_t)h.model.n_layers * t->lora.layer_size))
        goto truncated_free;
    if (lisa__uses_sampler(&h.train) && (res = lisa_trainer_set_active_layers(t, active, h.n_active)) != LISA_OK) {
        res = lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for the active layers", name);
        goto fail;
    }
    if ((res = lisa__state_read_blocks(t, r, name, err)) != LISA_OK) goto fail;
    t->step = h.step;
    t->sampler.next = h.sampler_next;
    t->sampler.rng.state = h.sampler_rng;
    sum = lisa__hash_value(&r->hash);
    if (!lisa__read_u64(r, &stored_sum)) goto truncated_free;
    if (stored_sum != sum) {
        res = lisa__fail(err, LISA_ERR_FORMAT, "%s: checksum mismatch: the file is corrupt", name);
        goto fail;
    }
    if (r->pos != r->size) {
        res = lisa__fail(err, LISA_ERR_FORMAT, "%s: %.0f bytes of trailing data", name, (double)(r->size - r->pos));
        goto fail;
    }
    lisa__note_peak(t);
    if (data_position) *data_position = h.data_position;
    lisa__ok(err);
    return LISA_OK;
truncated_free:
    res = lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated at byte %.0f", name, (double)r->pos);
fail:
    lisa_trainer_free(t);
    lisa_model_free(m);
    return res;
}

LISADEF lisa_result lisa_trainer_load_state_memory(lisa_trainer *t, lisa_model *m, const void *data,
                                                   size_t size, const char *name,
                                                   const lisa_allocator *a, uint64_t *data_position,
                                                   lisa_error *err) {
    lisa__reader r = lisa__memory_reader(data, size);
    return lisa__state_read(t, m, &r, name ? name : "<memory>", a, data_position, err);
}

#ifndef LISA_NO_STDIO
LISADEF lisa_result lisa_trainer_load_state(lisa_trainer *t, lisa_model *m, const char *path,
                                            const lisa_allocator *a, uint64_t *data_position,
                                            lisa_error *err) {
    lisa__reader r;
    lisa_result res = lisa__open_reader(&r, path, err);
    if (res != LISA_OK) {
        memset(m, 0, sizeof *m);
        memset(t, 0, sizeof *t);
        return res;
    }
    res = lisa__state_read(t, m, &r, path, a, data_position, err);
    fclose(r.file);
    return res;
}

/* The header of t's state. */
static void lisa__state_header_of(lisa__state_header *h, const lisa_trainer *t, uint64_t data_position) {
    memset(h, 0, sizeof *h);
    h->model = t->model->config;
    h->train = t->config;
    h->has_weights = t->config.lisa_probs != NULL;
    h->step = t->step;
    h->sampler_next = t->sampler.next;
    h->n_active = t->n_active;
    h->sampler_rng = t->sampler.rng.state;
    h->data_position = data_position;
}

static void lisa__write_i32(lisa__writer *w, int32_t v) {
    unsigned char b[4];
    lisa__put_le32(b, v);
    lisa__write(w, b, 4);
}

static void lisa__write_u64(lisa__writer *w, uint64_t v) {
    unsigned char b[8];
    int i;
    for (i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    lisa__write(w, b, 8);
}

LISADEF lisa_result lisa_trainer_save_state(const lisa_trainer *t, const char *path,
                                            uint64_t data_position, lisa_error *err) {
    const lisa_model *m = t->model;
    lisa__state_header h;
    unsigned char bytes[LISA__STATE_HEADER];
    lisa__writer w;
    lisa_result res;
    int i, b, nb = lisa_train_n_blocks(&m->config, &t->config);
    lisa__state_header_of(&h, t, data_position);
    lisa__state_code(&h, bytes, 0);
    res = lisa__writer_open(&w, path, err);
    if (res != LISA_OK) return res;
    lisa__write(&w, bytes, sizeof bytes);
    for (i = 0; i < t->n_active; i++) lisa__write_i32(&w, t->active_layers[i]);
    if (t->config.lisa_probs) lisa__write_f32(&w, t->config.lisa_probs, (size_t)m->config.n_layers);
    lisa__write_f32(&w, m->params, m->layout.n_params);
    if (t->config.mode == LISA_MODE_LORA) {
        const lisa_lora_config *lc = &t->config.lora;
        lisa__write_i32(&w, lc->rank);
        lisa__write_i32(&w, (int32_t)lc->targets);
        lisa__write_i32(&w, lc->train_embed);
        lisa__write_i32(&w, lc->train_head);
        lisa__write_i32(&w, lc->train_norms);
        lisa__write_f32(&w, &lc->alpha, 1);
        lisa__write_f32(&w, t->lora.params, (size_t)m->config.n_layers * t->lora.layer_size);
    }
    for (b = 0; b < nb; b++) {
        const lisa_block_state *s = &t->blocks[b];
        lisa__write_i32(&w, (s->active ? 1 : 0) | (s->m ? 2 : 0));
        lisa__write_i32(&w, s->step);
        if (s->m) lisa__write_f32(&w, s->m, 2 * t->block_sizes[b]);
    }
    lisa__write_u64(&w, lisa__hash_value(&w.hash));
    return lisa__writer_close(&w, err);
}
#endif

/* ------------------------------------------------------------------------- */
/* Text: UTF-8, Unicode classes, pre-tokenizer scanners                       */
/* ------------------------------------------------------------------------- */

/* Pre-tokenizer scanners: hand-written equivalents of the regexes that Hugging
   Face tokenizer.json files split text with (Split with behavior Isolated, and
   ByteLevel with use_regex), and of the Digits pre-tokenizer. They split exactly
   as tokenizers 0.23 does: leftmost alternative first, backtracking where the
   regex would, characters as code points, what no alternative matches a piece
   of its own, classes from Unicode 16.0.0 (the version of tokenizers' Oniguruma;
   Digits asks Rust's char::is_numeric, a newer table: both from
   tools/make_unicode.py). Bytes that are not valid UTF-8 count as one character
   each, of no class. Each scanner (lisa__pretok_name) and the regex it stands
   for, as tokenizer.json holds it:
     gpt2         's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
                  GPT-2; also what ByteLevel with use_regex true splits by
     llama3       (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+   Llama 3, 3.1, 3.2
     qwen2        the same with \p{N} for \p{N}{1,3}: Qwen2, Qwen2.5, Qwen3
     qwen35       qwen2's with [\p{L}\p{M}]+ for \p{L}+ and [^\s\p{L}\p{M}\p{N}]: Qwen3.5
     gpt4o        [^\r\n\p{L}\p{N}]?U*L+C?|[^\r\n\p{L}\p{N}]?U+L*C?|\p{N}{1,3}|
                   ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+   with
                  U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], L = [\p{Ll}\p{Lm}\p{Lo}\p{M}],
                  C = (?i:'s|'t|'re|'ve|'m|'ll|'d): GPT-4o (o200k), Llama 4
     tekken       gpt4o's without the C? and with \p{N}: Mistral's Tekken
     numbers3     \p{N}{1,3}                                   }
     cjk          [U+4E00-U+9FA5 U+3040-U+309F U+30A0-U+30FF]+  } DeepSeek V3, R1, in this order
                  (the characters themselves in the pattern)
     deepseek3    [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
                   ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+   (CR and LF as themselves)
     number-runs  \p{N}+
     punct-runs   [\p{P}\$\+<=>\^~\|]+
     digits3      [0-9][0-9][0-9]
     digits       the Digits pre-tokenizer, individual_digits true: each number alone
     digit-runs   Digits with individual_digits false: runs of numbers
   GGUF tokenizer.ggml.pre names, as llama.cpp splits for each (lisa__pretok_from_gguf):
     gpt2:                 gpt-2, phi-2, mpt, olmo, jais, exaone4, roberta-bpe, modern-bert,
                           trillion, granite-docling, gigachat, mellum, a.x-4.0, jina-es,
                           jina-de, jina-v1-en, jina-v2-es, jina-v2-de, jina-v2-code
     digits, gpt2:         smollm, starcoder, refact, command-r, codeshell, exaone,
                           minerva-7b, mellum2
     llama3:               llama3, llama-v3, llama-bpe, falcon3, falcon-h1, pixtral, dbrx,
                           smaug-bpe, chatglm-bpe, glm4, glm5, midm-2.0, lfm2, jina-v5-nano
     qwen2:                qwen2, deepseek-r1-qwen, stablelm2, hunyuan, megrez, solar-open,
                           kormo, f2llmv2
     qwen35:               qwen35
     gpt4o:                gpt-4o, llama4, minimax-m2, kanana2, talkie
     tekken:               tekken
     numbers3, cjk, deepseek3:  deepseek-v3, hunyuan-dense, joyai-llm, hy_v4
     punct-runs, gpt2, digits3:  falcon
     punct-runs, gpt2, number-runs, digits3:  default (llama.cpp's fallback)
   Any other name or pattern is unknown (0). */

/* BEGIN GENERATED: tools/make_unicode.py */
/* Unicode 16.0.0 general categories and White_Space (what tokenizers' regexes match). */
#define LISA__UC_LETTER  0x001u  /* \p{L} */
#define LISA__UC_NUMBER  0x002u  /* \p{N} */
#define LISA__UC_MARK    0x004u  /* \p{M} */
#define LISA__UC_SPACE   0x008u  /* \s: White_Space */
#define LISA__UC_PUNCT   0x010u  /* \p{P} */
#define LISA__UC_SYMBOL  0x020u  /* \p{S} */
#define LISA__UC_UPPER   0x040u  /* \p{Lu} or \p{Lt} */
#define LISA__UC_LOWER   0x080u  /* \p{Ll} */
#define LISA__UC_NUMERIC 0x100u  /* Rust's char::is_numeric: the Digits pre-tokenizer's numbers */
#define LISA__UC_VERSION "16.0.0"
static const unsigned short lisa__uc_latin1[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    8, 16, 16, 16, 32, 16, 16, 16, 16, 16, 16, 32, 16, 16, 16, 16,
    258, 258, 258, 258, 258, 258, 258, 258, 258, 258, 16, 16, 32, 32, 32, 16,
    16, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65,
    65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 16, 16, 16, 32, 16,
    32, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129,
    129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 16, 32, 16, 32, 0,
    0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    8, 16, 32, 32, 32, 32, 32, 16, 32, 32, 1, 16, 32, 0, 32, 32,
    32, 32, 258, 258, 32, 129, 16, 16, 32, 258, 1, 16, 258, 258, 258, 16,
    65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65,
    65, 65, 65, 65, 65, 65, 65, 32, 65, 65, 65, 65, 65, 65, 65, 129,
    129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129, 129,
    129, 129, 129, 129, 129, 129, 129, 32, 129, 129, 129, 129, 129, 129, 129, 129
};
/* From U+0100 on: runs of one class, start << 11 | bits, sorted by start;
   a run ends where the next begins, the last at U+10FFFF. */
#define LISA__UC_SHIFT 11
#define LISA__UC_N_RUNS 3487
static const uint32_t lisa__uc_runs[LISA__UC_N_RUNS] = {
    0x80041, 0x80881, 0x81041, 0x81881, 0x82041, 0x82881, 0x83041, 0x83881, 0x84041, 0x84881,
    0x85041, 0x85881, 0x86041, 0x86881, 0x87041, 0x87881, 0x88041, 0x88881, 0x89041, 0x89881,
    0x8A041, 0x8A881, 0x8B041, 0x8B881, 0x8C041, 0x8C881, 0x8D041, 0x8D881, 0x8E041, 0x8E881,
    0x8F041, 0x8F881, 0x90041, 0x90881, 0x91041, 0x91881, 0x92041, 0x92881, 0x93041, 0x93881,
    0x94041, 0x94881, 0x95041, 0x95881, 0x96041, 0x96881, 0x97041, 0x97881, 0x98041, 0x98881,
    0x99041, 0x99881, 0x9A041, 0x9A881, 0x9B041, 0x9B881, 0x9C841, 0x9D081, 0x9D841, 0x9E081,
    0x9E841, 0x9F081, 0x9F841, 0xA0081, 0xA0841, 0xA1081, 0xA1841, 0xA2081, 0xA2841, 0xA3081,
    0xA3841, 0xA4081, 0xA5041, 0xA5881, 0xA6041, 0xA6881, 0xA7041, 0xA7881, 0xA8041, 0xA8881,
    0xA9041, 0xA9881, 0xAA041, 0xAA881, 0xAB041, 0xAB881, 0xAC041, 0xAC881, 0xAD041, 0xAD881,
    0xAE041, 0xAE881, 0xAF041, 0xAF881, 0xB0041, 0xB0881, 0xB1041, 0xB1881, 0xB2041, 0xB2881,
    0xB3041, 0xB3881, 0xB4041, 0xB4881, 0xB5041, 0xB5881, 0xB6041, 0xB6881, 0xB7041, 0xB7881,
    0xB8041, 0xB8881, 0xB9041, 0xB9881, 0xBA041, 0xBA881, 0xBB041, 0xBB881, 0xBC041, 0xBD081,
    0xBD841, 0xBE081, 0xBE841, 0xBF081, 0xC0841, 0xC1881, 0xC2041, 0xC2881, 0xC3041, 0xC4081,
    0xC4841, 0xC6081, 0xC7041, 0xC9081, 0xC9841, 0xCA881, 0xCB041, 0xCC881, 0xCE041, 0xCF081,
    0xCF841, 0xD0881, 0xD1041, 0xD1881, 0xD2041, 0xD2881, 0xD3041, 0xD4081, 0xD4841, 0xD5081,
    0xD6041, 0xD6881, 0xD7041, 0xD8081, 0xD8841, 0xDA081, 0xDA841, 0xDB081, 0xDB841, 0xDC881,
    0xDD801, 0xDE041, 0xDE881, 0xE0001, 0xE2041, 0xE3081, 0xE3841, 0xE4881, 0xE5041, 0xE6081,
    0xE6841, 0xE7081, 0xE7841, 0xE8081, 0xE8841, 0xE9081, 0xE9841, 0xEA081, 0xEA841, 0xEB081,
    0xEB841, 0xEC081, 0xEC841, 0xED081, 0xED841, 0xEE081, 0xEF041, 0xEF881, 0xF0041, 0xF0881,
    0xF1041, 0xF1881, 0xF2041, 0xF2881, 0xF3041, 0xF3881, 0xF4041, 0xF4881, 0xF5041, 0xF5881,
    0xF6041, 0xF6881, 0xF7041, 0xF7881, 0xF8841, 0xF9881, 0xFA041, 0xFA881, 0xFB041, 0xFC881,
    0xFD041, 0xFD881, 0xFE041, 0xFE881, 0xFF041, 0xFF881, 0x100041, 0x100881, 0x101041, 0x101881,
    0x102041, 0x102881, 0x103041, 0x103881, 0x104041, 0x104881, 0x105041, 0x105881, 0x106041, 0x106881,
    0x107041, 0x107881, 0x108041, 0x108881, 0x109041, 0x109881, 0x10A041, 0x10A881, 0x10B041, 0x10B881,
    0x10C041, 0x10C881, 0x10D041, 0x10D881, 0x10E041, 0x10E881, 0x10F041, 0x10F881, 0x110041, 0x110881,
    0x111041, 0x111881, 0x112041, 0x112881, 0x113041, 0x113881, 0x114041, 0x114881, 0x115041, 0x115881,
    0x116041, 0x116881, 0x117041, 0x117881, 0x118041, 0x118881, 0x119041, 0x119881, 0x11D041, 0x11E081,
    0x11E841, 0x11F881, 0x120841, 0x121081, 0x121841, 0x123881, 0x124041, 0x124881, 0x125041, 0x125881,
    0x126041, 0x126881, 0x127041, 0x127881, 0x14A001, 0x14A881, 0x158001, 0x161020, 0x163001, 0x169020,
    0x170001, 0x172820, 0x176001, 0x176820, 0x177001, 0x177820, 0x180004, 0x1B8041, 0x1B8881, 0x1B9041,
    0x1B9881, 0x1BA001, 0x1BA820, 0x1BB041, 0x1BB881, 0x1BC000, 0x1BD001, 0x1BD881, 0x1BF010, 0x1BF841,
    0x1C0000, 0x1C2020, 0x1C3041, 0x1C3810, 0x1C4041, 0x1C5800, 0x1C6041, 0x1C6800, 0x1C7041, 0x1C8081,
    0x1C8841, 0x1D1000, 0x1D1841, 0x1D6081, 0x1E7841, 0x1E8081, 0x1E9041, 0x1EA881, 0x1EC041, 0x1EC881,
    0x1ED041, 0x1ED881, 0x1EE041, 0x1EE881, 0x1EF041, 0x1EF881, 0x1F0041, 0x1F0881, 0x1F1041, 0x1F1881,
    0x1F2041, 0x1F2881, 0x1F3041, 0x1F3881, 0x1F4041, 0x1F4881, 0x1F5041, 0x1F5881, 0x1F6041, 0x1F6881,
    0x1F7041, 0x1F7881, 0x1FA041, 0x1FA881, 0x1FB020, 0x1FB841, 0x1FC081, 0x1FC841, 0x1FD881, 0x1FE841,
    0x218081, 0x230041, 0x230881, 0x231041, 0x231881, 0x232041, 0x232881, 0x233041, 0x233881, 0x234041,
    0x234881, 0x235041, 0x235881, 0x236041, 0x236881, 0x237041, 0x237881, 0x238041, 0x238881, 0x239041,
    0x239881, 0x23A041, 0x23A881, 0x23B041, 0x23B881, 0x23C041, 0x23C881, 0x23D041, 0x23D881, 0x23E041,
    0x23E881, 0x23F041, 0x23F881, 0x240041, 0x240881, 0x241020, 0x241804, 0x245041, 0x245881, 0x246041,
    0x246881, 0x247041, 0x247881, 0x248041, 0x248881, 0x249041, 0x249881, 0x24A041, 0x24A881, 0x24B041,
    0x24B881, 0x24C041, 0x24C881, 0x24D041, 0x24D881, 0x24E041, 0x24E881, 0x24F041, 0x24F881, 0x250041,
    0x250881, 0x251041, 0x251881, 0x252041, 0x252881, 0x253041, 0x253881, 0x254041, 0x254881, 0x255041,
    0x255881, 0x256041, 0x256881, 0x257041, 0x257881, 0x258041, 0x258881, 0x259041, 0x259881, 0x25A041,
    0x25A881, 0x25B041, 0x25B881, 0x25C041, 0x25C881, 0x25D041, 0x25D881, 0x25E041, 0x25E881, 0x25F041,
    0x25F881, 0x260041, 0x261081, 0x261841, 0x262081, 0x262841, 0x263081, 0x263841, 0x264081, 0x264841,
    0x265081, 0x265841, 0x266081, 0x266841, 0x267081, 0x268041, 0x268881, 0x269041, 0x269881, 0x26A041,
    0x26A881, 0x26B041, 0x26B881, 0x26C041, 0x26C881, 0x26D041, 0x26D881, 0x26E041, 0x26E881, 0x26F041,
    0x26F881, 0x270041, 0x270881, 0x271041, 0x271881, 0x272041, 0x272881, 0x273041, 0x273881, 0x274041,
    0x274881, 0x275041, 0x275881, 0x276041, 0x276881, 0x277041, 0x277881, 0x278041, 0x278881, 0x279041,
    0x279881, 0x27A041, 0x27A881, 0x27B041, 0x27B881, 0x27C041, 0x27C881, 0x27D041, 0x27D881, 0x27E041,
    0x27E881, 0x27F041, 0x27F881, 0x280041, 0x280881, 0x281041, 0x281881, 0x282041, 0x282881, 0x283041,
    0x283881, 0x284041, 0x284881, 0x285041, 0x285881, 0x286041, 0x286881, 0x287041, 0x287881, 0x288041,
    0x288881, 0x289041, 0x289881, 0x28A041, 0x28A881, 0x28B041, 0x28B881, 0x28C041, 0x28C881, 0x28D041,
    0x28D881, 0x28E041, 0x28E881, 0x28F041, 0x28F881, 0x290041, 0x290881, 0x291041, 0x291881, 0x292041,
    0x292881, 0x293041, 0x293881, 0x294041, 0x294881, 0x295041, 0x295881, 0x296041, 0x296881, 0x297041,
    0x297881, 0x298000, 0x298841, 0x2AB800, 0x2AC801, 0x2AD010, 0x2B0081, 0x2C4810, 0x2C5800, 0x2C6820,
    0x2C8000, 0x2C8804, 0x2DF010, 0x2DF804, 0x2E0010, 0x2E0804, 0x2E1810, 0x2E2004, 0x2E3010, 0x2E3804,
    0x2E4000, 0x2E8001, 0x2F5800, 0x2F7801, 0x2F9810, 0x2FA800, 0x303020, 0x304810, 0x305820, 0x306010,
    0x307020, 0x308004, 0x30D810, 0x30E000, 0x30E810, 0x310001, 0x325804, 0x330102, 0x335010, 0x337001,
    0x338004, 0x338801, 0x36A010, 0x36A801, 0x36B004, 0x36E800, 0x36F020, 0x36F804, 0x372801, 0x373804,
    0x374820, 0x375004, 0x377001, 0x378102, 0x37D001, 0x37E820, 0x37F801, 0x380010, 0x387000, 0x388001,
    0x388804, 0x389001, 0x398004, 0x3A5800, 0x3A6801, 0x3D3004, 0x3D8801, 0x3D9000, 0x3E0102, 0x3E5001,
    0x3F5804, 0x3FA001, 0x3FB020, 0x3FB810, 0x3FD001, 0x3FD800, 0x3FE804, 0x3FF020, 0x400001, 0x40B004,
    0x40D001, 0x40D804, 0x412001, 0x412804, 0x414001, 0x414804, 0x417000, 0x418010, 0x41F800, 0x420001,
    0x42C804, 0x42E000, 0x42F010, 0x42F800, 0x430001, 0x435800, 0x438001, 0x444020, 0x444801, 0x447800,
    0x44B804, 0x450001, 0x465004, 0x471000, 0x471804, 0x482001, 0x49D004, 0x49E801, 0x49F004, 0x4A8001,
    0x4A8804, 0x4AC001, 0x4B1004, 0x4B2010, 0x4B3102, 0x4B8010, 0x4B8801, 0x4C0804, 0x4C2000, 0x4C2801,
    0x4C6800, 0x4C7801, 0x4C8800, 0x4C9801, 0x4D4800, 0x4D5001, 0x4D8800, 0x4D9001, 0x4D9800, 0x4DB001,
    0x4DD000, 0x4DE004, 0x4DE801, 0x4DF004, 0x4E2800, 0x4E3804, 0x4E4800, 0x4E5804, 0x4E7001, 0x4E7800,
    0x4EB804, 0x4EC000, 0x4EE001, 0x4EF000, 0x4EF801, 0x4F1004, 0x4F2000, 0x4F3102, 0x4F8001, 0x4F9020,
    0x4FA102, 0x4FD020, 0x4FE001, 0x4FE810, 0x4FF004, 0x4FF800, 0x500804, 0x502000, 0x502801, 0x505800,
    0x507801, 0x508800, 0x509801, 0x514800, 0x515001, 0x518800, 0x519001, 0x51A000, 0x51A801, 0x51B800,
    0x51C001, 0x51D000, 0x51E004, 0x51E800, 0x51F004, 0x521800, 0x523804, 0x524800, 0x525804, 0x527000,
    0x528804, 0x529000, 0x52C801, 0x52E800, 0x52F001, 0x52F800, 0x533102, 0x538004, 0x539001, 0x53A804,
    0x53B010, 0x53B800, 0x540804, 0x542000, 0x542801, 0x547000, 0x547801, 0x549000, 0x549801, 0x554800,
    0x555001, 0x558800, 0x559001, 0x55A000, 0x55A801, 0x55D000, 0x55E004, 0x55E801, 0x55F004, 0x563000,
    0x563804, 0x565000, 0x565804, 0x567000, 0x568001, 0x568800, 0x570001, 0x571004, 0x572000, 0x573102,
    0x578010, 0x578820, 0x579000, 0x57C801, 0x57D004, 0x580000, 0x580804, 0x582000, 0x582801, 0x586800,
    0x587801, 0x588800, 0x589801, 0x594800, 0x595001, 0x598800, 0x599001, 0x59A000, 0x59A801, 0x59D000,
    0x59E004, 0x59E801, 0x59F004, 0x5A2800, 0x5A3804, 0x5A4800, 0x5A5804, 0x5A7000, 0x5AA804, 0x5AC000,
    0x5AE001, 0x5AF000, 0x5AF801, 0x5B1004, 0x5B2000, 0x5B3102, 0x5B8020, 0x5B8801, 0x5B9102, 0x5BC000,
    0x5C1004, 0x5C1801, 0x5C2000, 0x5C2801, 0x5C5800, 0x5C7001, 0x5C8800, 0x5C9001, 0x5CB000, 0x5CC801,
    0x5CD800, 0x5CE001, 0x5CE800, 0x5CF001, 0x5D0000, 0x5D1801, 0x5D2800, 0x5D4001, 0x5D5800, 0x5D7001,
    0x5DD000, 0x5DF004, 0x5E1800, 0x5E3004, 0x5E4800, 0x5E5004, 0x5E7000, 0x5E8001, 0x5E8800, 0x5EB804,
    0x5EC000, 0x5F3102, 0x5F9820, 0x5FD800, 0x600004, 0x602801, 0x606800, 0x607001, 0x608800, 0x609001,
    0x614800, 0x615001, 0x61D000, 0x61E004, 0x61E801, 0x61F004, 0x622800, 0x623004, 0x624800, 0x625004,
    0x627000, 0x62A804, 0x62B800, 0x62C001, 0x62D800, 0x62E801, 0x62F000, 0x630001, 0x631004, 0x632000,
    0x633102, 0x638000, 0x63B810, 0x63C102, 0x63F820, 0x640001, 0x640804, 0x642010, 0x642801, 0x646800,
    0x647001, 0x648800, 0x649001, 0x654800, 0x655001, 0x65A000, 0x65A801, 0x65D000, 0x65E004, 0x65E801,
    0x65F004, 0x662800, 0x663004, 0x664800, 0x665004, 0x667000, 0x66A804, 0x66B800, 0x66E801, 0x66F800,
    0x670001, 0x671004, 0x672000, 0x673102, 0x678000, 0x678801, 0x679804, 0x67A000, 0x680004, 0x682001,
    0x686800, 0x687001, 0x688800, 0x689001, 0x69D804, 0x69E801, 0x69F004, 0x6A2800, 0x6A3004, 0x6A4800,
    0x6A5004, 0x6A7001, 0x6A7820, 0x6A8000, 0x6AA001, 0x6AB804, 0x6AC102, 0x6AF801, 0x6B1004, 0x6B2000,
    0x6B3102, 0x6BC820, 0x6BD001, 0x6C0000, 0x6C0804, 0x6C2000, 0x6C2801, 0x6CB800, 0x6CD001, 0x6D9000,
    0x6D9801, 0x6DE000, 0x6DE801, 0x6DF000, 0x6E0001, 0x6E3800, 0x6E5004, 0x6E5800, 0x6E7804, 0x6EA800,
    0x6EB004, 0x6EB800, 0x6EC004, 0x6F0000, 0x6F3102, 0x6F8000, 0x6F9004, 0x6FA010, 0x6FA800, 0x700801,
    0x718804, 0x719001, 0x71A004, 0x71D800, 0x71F820, 0x720001, 0x723804, 0x727810, 0x728102, 0x72D010,
    0x72E000, 0x740801, 0x741800, 0x742001, 0x742800, 0x743001, 0x745800, 0x746001, 0x752000, 0x752801,
    0x753000, 0x753801, 0x758804, 0x759001, 0x75A004, 0x75E801, 0x75F000, 0x760001, 0x762800, 0x763001,
    0x763800, 0x764004, 0x767800, 0x768102, 0x76D000, 0x76E001, 0x770000, 0x780001, 0x780820, 0x782010,
    0x789820, 0x78A010, 0x78A820, 0x78C004, 0x78D020, 0x790102, 0x79A020, 0x79A804, 0x79B020, 0x79B804,
    0x79C020, 0x79C804, 0x79D010, 0x79F004, 0x7A0001, 0x7A4000, 0x7A4801, 0x7B6800, 0x7B8804, 0x7C2810,
    0x7C3004, 0x7C4001, 0x7C6804, 0x7CC000, 0x7CC804, 0x7DE800, 0x7DF020, 0x7E3004, 0x7E3820, 0x7E6800,
    0x7E7020, 0x7E8010, 0x7EA820, 0x7EC810, 0x7ED800, 0x800001, 0x815804, 0x81F801, 0x820102, 0x825010,
    0x828001, 0x82B004, 0x82D001, 0x82F004, 0x830801, 0x831004, 0x832801, 0x833804, 0x837001, 0x838804,
    0x83A801, 0x841004, 0x847001, 0x847804, 0x848102, 0x84D004, 0x84F020, 0x850041, 0x863000, 0x863841,
    0x864000, 0x866841, 0x867000, 0x868081, 0x87D810, 0x87E001, 0x87E881, 0x880001, 0x924800, 0x925001,
    0x927000, 0x928001, 0x92B800, 0x92C001, 0x92C800, 0x92D001, 0x92F000, 0x930001, 0x944800, 0x945001,
    0x947000, 0x948001, 0x958800, 0x959001, 0x95B000, 0x95C001, 0x95F800, 0x960001, 0x960800, 0x961001,
    0x963000, 0x964001, 0x96B800, 0x96C001, 0x988800, 0x989001, 0x98B000, 0x98C001, 0x9AD800, 0x9AE804,
    0x9B0010, 0x9B4902, 0x9BE800, 0x9C0001, 0x9C8020, 0x9CD000, 0x9D0041, 0x9FB000, 0x9FC081, 0x9FF000,
    0xA00010, 0xA00801, 0xB36820, 0xB37010, 0xB37801, 0xB40008, 0xB40801, 0xB4D810, 0xB4E800, 0xB50001,
    0xB75810, 0xB77102, 0xB78801, 0xB7C800, 0xB80001, 0xB89004, 0xB8B000, 0xB8F801, 0xB99004, 0xB9A810,
    0xB9B800, 0xBA0001, 0xBA9004, 0xBAA000, 0xBB0001, 0xBB6800, 0xBB7001, 0xBB8800, 0xBB9004, 0xBBA000,
    0xBC0001, 0xBDA004, 0xBEA010, 0xBEB801, 0xBEC010, 0xBED820, 0xBEE001, 0xBEE804, 0xBEF000, 0xBF0102,
    0xBF5000, 0xBF8102, 0xBFD000, 0xC00010, 0xC05804, 0xC07000, 0xC07804, 0xC08102, 0xC0D000, 0xC10001,
    0xC3C800, 0xC40001, 0xC42804, 0xC43801, 0xC54804, 0xC55001, 0xC55800, 0xC58001, 0xC7B000, 0xC80001,
    0xC8F800, 0xC90004, 0xC96000, 0xC98004, 0xC9E000, 0xCA0020, 0xCA0800, 0xCA2010, 0xCA3102, 0xCA8001,
    0xCB7000, 0xCB8001, 0xCBA800, 0xCC0001, 0xCD6000, 0xCD8001, 0xCE5000, 0xCE8102, 0xCED800, 0xCEF020,
    0xD00001, 0xD0B804, 0xD0E000, 0xD0F010, 0xD10001, 0xD2A804, 0xD2F800, 0xD30004, 0xD3E800, 0xD3F804,
    0xD40102, 0xD45000, 0xD48102, 0xD4D000, 0xD50010, 0xD53801, 0xD54010, 0xD57000, 0xD58004, 0xD67800,
    0xD80004, 0xD82801, 0xD9A004, 0xDA2801, 0xDA6800, 0xDA7010, 0xDA8102, 0xDAD010, 0xDB0820, 0xDB5804,
    0xDBA020, 0xDBE810, 0xDC0004, 0xDC1801, 0xDD0804, 0xDD7001, 0xDD8102, 0xDDD001, 0xDF3004, 0xDFA000,
    0xDFE010, 0xE00001, 0xE12004, 0xE1C000, 0xE1D810, 0xE20102, 0xE25000, 0xE26801, 0xE28102, 0xE2D001,
    0xE3F010, 0xE40081, 0xE44841, 0xE45081, 0xE45800, 0xE48041, 0xE5D800, 0xE5E841, 0xE60010, 0xE64000,
    0xE68004, 0xE69810, 0xE6A004, 0xE74801, 0xE76804, 0xE77001, 0xE7A004, 0xE7A801, 0xE7B804, 0xE7D001,
    0xE7D800, 0xE80081, 0xE96001, 0xEB5881, 0xEBC001, 0xEBC881, 0xECD801, 0xEE0004, 0xF00041, 0xF00881,
    0xF01041, 0xF01881, 0xF02041, 0xF02881, 0xF03041, 0xF03881, 0xF04041, 0xF04881, 0xF05041, 0xF05881,
    0xF06041, 0xF06881, 0xF07041, 0xF07881, 0xF08041, 0xF08881, 0xF09041, 0xF09881, 0xF0A041, 0xF0A881,
    0xF0B041, 0xF0B881, 0xF0C041, 0xF0C881, 0xF0D041, 0xF0D881, 0xF0E041, 0xF0E881, 0xF0F041, 0xF0F881,
    0xF10041, 0xF10881, 0xF11041, 0xF11881, 0xF12041, 0xF12881, 0xF13041, 0xF13881, 0xF14041, 0xF14881,
    0xF15041, 0xF15881, 0xF16041, 0xF16881, 0xF17041, 0xF17881, 0xF18041, 0xF18881, 0xF19041, 0xF19881,
    0xF1A041, 0xF1A881, 0xF1B041, 0xF1B881, 0xF1C041, 0xF1C881, 0xF1D041, 0xF1D881, 0xF1E041, 0xF1E881,
    0xF1F041, 0xF1F881, 0xF20041, 0xF20881, 0xF21041, 0xF21881, 0xF22041, 0xF22881, 0xF23041, 0xF23881,
    0xF24041, 0xF24881, 0xF25041, 0xF25881, 0xF26041, 0xF26881, 0xF27041, 0xF27881, 0xF28041, 0xF28881,
    0xF29041, 0xF29881, 0xF2A041, 0xF2A881, 0xF2B041, 0xF2B881, 0xF2C041, 0xF2C881, 0xF2D041, 0xF2D881,
    0xF2E041, 0xF2E881, 0xF2F041, 0xF2F881, 0xF30041, 0xF30881, 0xF31041, 0xF31881, 0xF32041, 0xF32881,
    0xF33041, 0xF33881, 0xF34041, 0xF34881, 0xF35041, 0xF35881, 0xF36041, 0xF36881, 0xF37041, 0xF37881,
    0xF38041, 0xF38881, 0xF39041, 0xF39881, 0xF3A041, 0xF3A881, 0xF3B041, 0xF3B881, 0xF3C041, 0xF3C881,
    0xF3D041, 0xF3D881, 0xF3E041, 0xF3E881, 0xF3F041, 0xF3F881, 0xF40041, 0xF40881, 0xF41041, 0xF41881,
    0xF42041, 0xF42881, 0xF43041, 0xF43881, 0xF44041, 0xF44881, 0xF45041, 0xF45881, 0xF46041, 0xF46881,
    0xF47041, 0xF47881, 0xF48041, 0xF48881, 0xF49041, 0xF49881, 0xF4A041, 0xF4A881, 0xF4F041, 0xF4F881,
    0xF50041, 0xF50881, 0xF51041, 0xF51881, 0xF52041, 0xF52881, 0xF53041, 0xF53881, 0xF54041, 0xF54881,
    0xF55041, 0xF55881, 0xF56041, 0xF56881, 0xF57041, 0xF57881, 0xF58041, 0xF58881, 0xF59041, 0xF59881,
    0xF5A041, 0xF5A881, 0xF5B041, 0xF5B881, 0xF5C041, 0xF5C881, 0xF5D041, 0xF5D881, 0xF5E041, 0xF5E881,
    0xF5F041, 0xF5F881, 0xF60041, 0xF60881, 0xF61041, 0xF61881, 0xF62041, 0xF62881, 0xF63041, 0xF63881,
    0xF64041, 0xF64881, 0xF65041, 0xF65881, 0xF66041, 0xF66881, 0xF67041, 0xF67881, 0xF68041, 0xF68881,
    0xF69041, 0xF69881, 0xF6A041, 0xF6A881, 0xF6B041, 0xF6B881, 0xF6C041, 0xF6C881, 0xF6D041, 0xF6D881,
    0xF6E041, 0xF6E881, 0xF6F041, 0xF6F881, 0xF70041, 0xF70881, 0xF71041, 0xF71881, 0xF72041, 0xF72881,
    0xF73041, 0xF73881, 0xF74041, 0xF74881, 0xF75041, 0xF75881, 0xF76041, 0xF76881, 0xF77041, 0xF77881,
    0xF78041, 0xF78881, 0xF79041, 0xF79881, 0xF7A041, 0xF7A881, 0xF7B041, 0xF7B881, 0xF7C041, 0xF7C881,
    0xF7D041, 0xF7D881, 0xF7E041, 0xF7E881, 0xF7F041, 0xF7F881, 0xF84041, 0xF88081, 0xF8B000, 0xF8C041,
    0xF8F000, 0xF90081, 0xF94041, 0xF98081, 0xF9C041, 0xFA0081, 0xFA3000, 0xFA4041, 0xFA7000, 0xFA8081,
    0xFAC000, 0xFAC841, 0xFAD000, 0xFAD841, 0xFAE000, 0xFAE841, 0xFAF000, 0xFAF841, 0xFB0081, 0xFB4041,
    0xFB8081, 0xFBF000, 0xFC0081, 0xFC4041, 0xFC8081, 0xFCC041, 0xFD0081, 0xFD4041, 0xFD8081, 0xFDA800,
    0xFDB081, 0xFDC041, 0xFDE820, 0xFDF081, 0xFDF820, 0xFE1081, 0xFE2800, 0xFE3081, 0xFE4041, 0xFE6820,
    0xFE8081, 0xFEA000, 0xFEB081, 0xFEC041, 0xFEE000, 0xFEE820, 0xFF0081, 0xFF4041, 0xFF6820, 0xFF8000,
    0xFF9081, 0xFFA800, 0xFFB081, 0xFFC041, 0xFFE820, 0xFFF800, 0x1000008, 0x1005800, 0x1008010, 0x1014008,
    0x1015000, 0x1017808, 0x1018010, 0x1022020, 0x1022810, 0x1029020, 0x1029810, 0x102F808, 0x1030000, 0x1038102,
    0x1038801, 0x1039000, 0x103A102, 0x103D020, 0x103E810, 0x103F801, 0x1040102, 0x1045020, 0x1046810, 0x1047800,
    0x1048001, 0x104E800, 0x1050020, 0x1060800, 0x1068004, 0x1078800, 0x1080020, 0x1081041, 0x1081820, 0x1083841,
    0x1084020, 0x1085081, 0x1085841, 0x1087081, 0x1088041, 0x1089881, 0x108A020, 0x108A841, 0x108B020, 0x108C841,
    0x108F020, 0x1092041, 0x1092820, 0x1093041, 0x1093820, 0x1094041, 0x1094820, 0x1095041, 0x1097020, 0x1097881,
    0x1098041, 0x109A081, 0x109A801, 0x109C881, 0x109D020, 0x109E081, 0x109F041, 0x10A0020, 0x10A2841, 0x10A3081,
    0x10A5020, 0x10A7081, 0x10A7820, 0x10A8102, 0x10C1841, 0x10C2081, 0x10C2902, 0x10C5020, 0x10C6000, 0x10C8020,
    0x1184010, 0x1186020, 0x1194810, 0x1195820, 0x1215000, 0x1220020, 0x1225800, 0x1230102, 0x124E020, 0x1275102,
    0x1280020, 0x13B4010, 0x13BB102, 0x13CA020, 0x13E2810, 0x13E3820, 0x13F3010, 0x13F8020, 0x14C1810, 0x14CC820,
    0x14EC010, 0x14EE020, 0x14FE010, 0x14FF020, 0x15BA000, 0x15BB020, 0x15CB000, 0x15CB820, 0x1600041, 0x1618081,
    0x1630041, 0x1630881, 0x1631041, 0x1632881, 0x1633841, 0x1634081, 0x1634841, 0x1635081, 0x1635841, 0x1636081,
    0x1636841, 0x1638881, 0x1639041, 0x1639881, 0x163A841, 0x163B081, 0x163E001, 0x163F041, 0x1640881, 0x1641041,
    0x1641881, 0x1642041, 0x1642881, 0x1643041, 0x1643881, 0x1644041, 0x1644881, 0x1645041, 0x1645881, 0x1646041,
    0x1646881, 0x1647041, 0x1647881, 0x1648041, 0x1648881, 0x1649041, 0x1649881, 0x164A041, 0x164A881, 0x164B041,
    0x164B881, 0x164C041, 0x164C881, 0x164D041, 0x164D881, 0x164E041, 0x164E881, 0x164F041, 0x164F881, 0x1650041,
    0x1650881, 0x1651041, 0x1651881, 0x1652041, 0x1652881, 0x1653041, 0x1653881, 0x1654041, 0x1654881, 0x1655041,
    0x1655881, 0x1656041, 0x1656881, 0x1657041, 0x1657881, 0x1658041, 0x1658881, 0x1659041, 0x1659881, 0x165A041,
    0x165A881, 0x165B041, 0x165B881, 0x165C041, 0x165C881, 0x165D041, 0x165D881, 0x165E041, 0x165E881, 0x165F041,
    0x165F881, 0x1660041, 0x1660881, 0x1661041, 0x1661881, 0x1662041, 0x1662881, 0x1663041, 0x1663881, 0x1664041,
    0x1664881, 0x1665041, 0x1665881, 0x1666041, 0x1666881, 0x1667041, 0x1667881, 0x1668041, 0x1668881, 0x1669041,
    0x1669881, 0x166A041, 0x166A881, 0x166B041, 0x166B881, 0x166C041, 0x166C881, 0x166D041, 0x166D881, 0x166E041,
    0x166E881, 0x166F041, 0x166F881, 0x1670041, 0x1670881, 0x1671041, 0x1671881, 0x1672820, 0x1675841, 0x1676081,
    0x1676841, 0x1677081, 0x1677804, 0x1679041, 0x1679881, 0x167A000, 0x167C810, 0x167E902, 0x167F010, 0x1680081,
    0x1693000, 0x1693881, 0x1694000, 0x1696881, 0x1697000, 0x1698001, 0x16B4000, 0x16B7801, 0x16B8010, 0x16B8800,
    0x16BF804, 0x16C0001, 0x16CB800, 0x16D0001, 0x16D3800, 0x16D4001, 0x16D7800, 0x16D8001, 0x16DB800, 0x16DC001,
    0x16DF800, 0x16E0001, 0x16E3800, 0x16E4001, 0x16E7800, 0x16E8001, 0x16EB800, 0x16EC001, 0x16EF800, 0x16F0004,
    0x1700010, 0x1717801, 0x1718010, 0x1728020, 0x1729010, 0x172F000, 0x1740020, 0x174D000, 0x174D820, 0x177A000,
    0x1780020, 0x17EB000, 0x17F8020, 0x1800008, 0x1800810, 0x1802020, 0x1802801, 0x1803902, 0x1804010, 0x1809020,
    0x180A010, 0x1810020, 0x1810902, 0x1815004, 0x1818010, 0x1818801, 0x181B020, 0x181C102, 0x181D801, 0x181E810,
    0x181F020, 0x1820000, 0x1820801, 0x184B800, 0x184C804, 0x184D820, 0x184E801, 0x1850010, 0x1850801, 0x187D810,
    0x187E001, 0x1880000, 0x1882801, 0x1898000, 0x1898801, 0x18C7800, 0x18C8020, 0x18C9102, 0x18CB020, 0x18D0001,
    0x18E0020, 0x18F3000, 0x18F7820, 0x18F8001, 0x1900020, 0x190F800, 0x1910102, 0x1915020, 0x1924102, 0x1928020,
    0x1928902, 0x1930020, 0x1940102, 0x1945020, 0x1958902, 0x1960020, 0x1A00001, 0x26E0020, 0x2700001, 0x5246800,
    0x5248020, 0x5263800, 0x5268001, 0x527F010, 0x5280001, 0x5306810, 0x5308001, 0x5310102, 0x5315001, 0x5316000,
    0x5320041, 0x5320881, 0x5321041, 0x5321881, 0x5322041, 0x5322881, 0x5323041, 0x5323881, 0x5324041, 0x5324881,
    0x5325041, 0x5325881, 0x5326041, 0x5326881, 0x5327041, 0x5327881, 0x5328041, 0x5328881, 0x5329041, 0x5329881,
    0x532A041, 0x532A881, 0x532B041, 0x532B881, 0x532C041, 0x532C881, 0x532D041, 0x532D881, 0x532E041, 0x532E881,
    0x532F041, 0x532F881, 0x5330041, 0x5330881, 0x5331041, 0x5331881, 0x5332041, 0x5332881, 0x5333041, 0x5333881,
    0x5334041, 0x5334881, 0x5335041, 0x5335881, 0x5336041, 0x5336881, 0x5337001, 0x5337804, 0x5339810, 0x533A004,
    0x533F010, 0x533F801, 0x5340041, 0x5340881, 0x5341041, 0x5341881, 0x5342041, 0x5342881, 0x5343041, 0x5343881,
    0x5344041, 0x5344881, 0x5345041, 0x5345881, 0x5346041, 0x5346881, 0x5347041, 0x5347881, 0x5348041, 0x5348881,
    0x5349041, 0x5349881, 0x534A041, 0x534A881, 0x534B041, 0x534B881, 0x534C041, 0x534C881, 0x534D041, 0x534D881,
    0x534E001, 0x534F004, 0x5350001, 0x5373102, 0x5378004, 0x5379010, 0x537C000, 0x5380020, 0x538B801, 0x5390020,
    0x5391041, 0x5391881, 0x5392041, 0x5392881, 0x5393041, 0x5393881, 0x5394041, 0x5394881, 0x5395041, 0x5395881,
    0x5396041, 0x5396881, 0x5397041, 0x5397881, 0x5399041, 0x5399881, 0x539A041, 0x539A881, 0x539B041, 0x539B881,
    0x539C041, 0x539C881, 0x539D041, 0x539D881, 0x539E041, 0x539E881, 0x539F041, 0x539F881, 0x53A0041, 0x53A0881,
    0x53A1041, 0x53A1881, 0x53A2041, 0x53A2881, 0x53A3041, 0x53A3881, 0x53A4041, 0x53A4881, 0x53A5041, 0x53A5881,
    0x53A6041, 0x53A6881, 0x53A7041, 0x53A7881, 0x53A8041, 0x53A8881, 0x53A9041, 0x53A9881, 0x53AA041, 0x53AA881,
    0x53AB041, 0x53AB881, 0x53AC041, 0x53AC881, 0x53AD041, 0x53AD881, 0x53AE041, 0x53AE881, 0x53AF041, 0x53AF881,
    0x53B0041, 0x53B0881, 0x53B1041, 0x53B1881, 0x53B2041, 0x53B2881, 0x53B3041, 0x53B3881, 0x53B4041, 0x53B4881,
    0x53B5041, 0x53B5881, 0x53B6041, 0x53B6881, 0x53B7041, 0x53B7881, 0x53B8001, 0x53B8881, 0x53BC841, 0x53BD081,
    0x53BD841, 0x53BE081, 0x53BE841, 0x53BF881, 0x53C0041, 0x53C0881, 0x53C1041, 0x53C1881, 0x53C2041, 0x53C2881,
    0x53C3041, 0x53C3881, 0x53C4001, 0x53C4820, 0x53C5841, 0x53C6081, 0x53C6841, 0x53C7081, 0x53C7801, 0x53C8041,
    0x53C8881, 0x53C9041, 0x53C9881, 0x53CB041, 0x53CB881, 0x53CC041, 0x53CC881, 0x53CD041, 0x53CD881, 0x53CE041,
    0x53CE881, 0x53CF041, 0x53CF881, 0x53D0041, 0x53D0881, 0x53D1041, 0x53D1881, 0x53D2041, 0x53D2881, 0x53D3041,
    0x53D3881, 0x53D4041, 0x53D4881, 0x53D5041, 0x53D7881, 0x53D8041, 0x53DA881, 0x53DB041, 0x53DB881, 0x53DC041,
    0x53DC881, 0x53DD041, 0x53DD881, 0x53DE041, 0x53DE881, 0x53DF041, 0x53DF881, 0x53E0041, 0x53E0881, 0x53E1041,
    0x53E1881, 0x53E2041, 0x53E4081, 0x53E4841, 0x53E5081, 0x53E5841, 0x53E6881, 0x53E7000, 0x53E8041, 0x53E8881,
    0x53E9000, 0x53E9881, 0x53EA000, 0x53EA881, 0x53EB041, 0x53EB881, 0x53EC041, 0x53EC881, 0x53ED041, 0x53ED881,
    0x53EE041, 0x53EE800, 0x53F9001, 0x53FA841, 0x53FB081, 0x53FB801, 0x53FD081, 0x53FD801, 0x5401004, 0x5401801,
    0x5403004, 0x5403801, 0x5405804, 0x5406001, 0x5411804, 0x5414020, 0x5416004, 0x5416800, 0x5418102, 0x541B020,
    0x541D000, 0x5420001, 0x543A010, 0x543C000, 0x5440004, 0x5441001, 0x545A004, 0x5463000, 0x5467010, 0x5468102,
    0x546D000, 0x5470004, 0x5479001, 0x547C010, 0x547D801, 0x547E010, 0x547E801, 0x547F804, 0x5480102, 0x5485001,
    0x5493004, 0x5497010, 0x5498001, 0x54A3804, 0x54AA000, 0x54AF810, 0x54B0001, 0x54BE800, 0x54C0004, 0x54C2001,
    0x54D9804, 0x54E0810, 0x54E7000, 0x54E7801, 0x54E8102, 0x54ED000, 0x54EF010, 0x54F0001, 0x54F2804, 0x54F3001,
    0x54F8102, 0x54FD001, 0x54FF800, 0x5500001, 0x5514804, 0x551B800, 0x5520001, 0x5521804, 0x5522001, 0x5526004,
    0x5527000, 0x5528102, 0x552D000, 0x552E010, 0x5530001, 0x553B820, 0x553D001, 0x553D804, 0x553F001, 0x5558004,
    0x5558801, 0x5559004, 0x555A801, 0x555B804, 0x555C801, 0x555F004, 0x5560001, 0x5560804, 0x5561001, 0x5561800,
    0x556D801, 0x556F010, 0x5570001, 0x5575804, 0x5578010, 0x5579001, 0x557A804, 0x557B800, 0x5580801, 0x5583800,
    0x5584801, 0x5587800, 0x5588801, 0x558B800, 0x5590001, 0x5593800, 0x5594001, 0x5597800, 0x5598081, 0x55AD820,
    0x55AE001, 0x55B0081, 0x55B4801, 0x55B5020, 0x55B6000, 0x55B8081, 0x55E0001, 0x55F1804, 0x55F5810, 0x55F6004,
    0x55F7000, 0x55F8102, 0x55FD000, 0x5600001, 0x6BD2000, 0x6BD8001, 0x6BE3800, 0x6BE5801, 0x6BFE000, 0x7C80001,
    0x7D37000, 0x7D38001, 0x7D6D000, 0x7D80081, 0x7D83800, 0x7D89881, 0x7D8C000, 0x7D8E801, 0x7D8F004, 0x7D8F801,
    0x7D94820, 0x7D95001, 0x7D9B800, 0x7D9C001, 0x7D9E800, 0x7D9F001, 0x7D9F800, 0x7DA0001, 0x7DA1000, 0x7DA1801,
    0x7DA2800, 0x7DA3001, 0x7DD9020, 0x7DE1800, 0x7DE9801, 0x7E9F010, 0x7EA0020, 0x7EA8001, 0x7EC8000, 0x7EC9001,
    0x7EE4000, 0x7EE7820, 0x7EE8000, 0x7EF8001, 0x7EFE020, 0x7F00004, 0x7F08010, 0x7F0D000, 0x7F10004, 0x7F18010,
    0x7F29800, 0x7F2A010, 0x7F31020, 0x7F31810, 0x7F32020, 0x7F33800, 0x7F34010, 0x7F34820, 0x7F35010, 0x7F36000,
    0x7F38001, 0x7F3A800, 0x7F3B001, 0x7F7E800, 0x7F80810, 0x7F82020, 0x7F82810, 0x7F85820, 0x7F86010, 0x7F88102,
    0x7F8D010, 0x7F8E020, 0x7F8F810, 0x7F90841, 0x7F9D810, 0x7F9F020, 0x7F9F810, 0x7FA0020, 0x7FA0881, 0x7FAD810,
    0x7FAE020, 0x7FAE810, 0x7FAF020, 0x7FAF810, 0x7FB3001, 0x7FDF800, 0x7FE1001, 0x7FE4000, 0x7FE5001, 0x7FE8000,
    0x7FE9001, 0x7FEC000, 0x7FED001, 0x7FEE800, 0x7FF0020, 0x7FF3800, 0x7FF4020, 0x7FF7800, 0x7FFE020, 0x7FFF000,
    0x8000001, 0x8006000, 0x8006801, 0x8013800, 0x8014001, 0x801D800, 0x801E001, 0x801F000, 0x801F801, 0x8027000,
    0x8028001, 0x802F000, 0x8040001, 0x807D800, 0x8080010, 0x8081800, 0x8083902, 0x809A000, 0x809B820, 0x80A0102,
    0x80BC820, 0x80C5102, 0x80C6020, 0x80C7800, 0x80C8020, 0x80CE800, 0x80D0020, 0x80D0800, 0x80E8020, 0x80FE804,
    0x80FF000, 0x8140001, 0x814E800, 0x8150001, 0x8168800, 0x8170004, 0x8170902, 0x817E000, 0x8180001, 0x8190102,
    0x8192000, 0x8196801, 0x81A0902, 0x81A1001, 0x81A5102, 0x81A5800, 0x81A8001, 0x81BB004, 0x81BD800, 0x81C0001,
    0x81CF000, 0x81CF810, 0x81D0001, 0x81E2000, 0x81E4001, 0x81E8010, 0x81E8902, 0x81EB000, 0x8200041, 0x8214081,
    0x8228001, 0x824F000, 0x8250102, 0x8255000, 0x8258041, 0x826A000, 0x826C081, 0x827E000, 0x8280001, 0x8294000,
    0x8298001, 0x82B2000, 0x82B7810, 0x82B8041, 0x82BD800, 0x82BE041, 0x82C5800, 0x82C6041, 0x82C9800, 0x82CA041,
    0x82CB000, 0x82CB881, 0x82D1000, 0x82D1881, 0x82D9000, 0x82D9881, 0x82DD000, 0x82DD881, 0x82DE800, 0x82E0001,
    0x82FA000, 0x8300001, 0x839B800, 0x83A0001, 0x83AB000, 0x83B0001, 0x83B4000, 0x83C0001, 0x83C3000, 0x83C3801,
    0x83D8800, 0x83D9001, 0x83DD800, 0x8400001, 0x8403000, 0x8404001, 0x8404800, 0x8405001, 0x841B000, 0x841B801,
    0x841C800, 0x841E001, 0x841E800, 0x841F801, 0x842B000, 0x842B810, 0x842C102, 0x8430001, 0x843B820, 0x843C902,
    0x8440001, 0x844F800, 0x8453902, 0x8458000, 0x8470001, 0x8479800, 0x847A001, 0x847B000, 0x847D902, 0x8480001,
    0x848B102, 0x848E000, 0x848F810, 0x8490001, 0x849D000, 0x849F810, 0x84A0000, 0x84C0001, 0x84DC000, 0x84DE102,
    0x84DF001, 0x84E0102, 0x84E8000, 0x84E9102, 0x8500001, 0x8500804, 0x8502000, 0x8502804, 0x8503800, 0x8506004,
    0x8508001, 0x850A000, 0x850A801, 0x850C000, 0x850C801, 0x851B000, 0x851C004, 0x851D800, 0x851F804, 0x8520102,
    0x8524800, 0x8528010, 0x852C800, 0x8530001, 0x853E902, 0x853F810, 0x8540001, 0x854E902, 0x8550000, 0x8560001,
    0x8564020, 0x8564801, 0x8572804, 0x8573800, 0x8575902, 0x8578010, 0x857B800, 0x8580001, 0x859B000, 0x859C810,
    0x85A0001, 0x85AB000, 0x85AC102, 0x85B0001, 0x85B9800, 0x85BC102, 0x85C0001, 0x85C9000, 0x85CC810, 0x85CE800,
    0x85D4902, 0x85D8000, 0x8600001, 0x8624800, 0x8640041, 0x8659800, 0x8660081, 0x8679800, 0x867D102, 0x8680001,
    0x8692004, 0x8694000, 0x8698102, 0x869D000, 0x86A0102, 0x86A5001, 0x86A8041, 0x86B3000, 0x86B4804, 0x86B7010,
    0x86B7801, 0x86B8081, 0x86C3000, 0x86C7020, 0x86C8000, 0x8730102, 0x873F800, 0x8740001, 0x8755000, 0x8755804,
    0x8756810, 0x8757000, 0x8758001, 0x8759000, 0x8761001, 0x8762800, 0x877E004, 0x8780001, 0x878E902, 0x8793801,
    0x8794000, 0x8798001, 0x87A3004, 0x87A8902, 0x87AA810, 0x87AD000, 0x87B8001, 0x87C1004, 0x87C3010, 0x87C5000,
    0x87D8001, 0x87E2902, 0x87E6000, 0x87F0001, 0x87FB800, 0x8800004, 0x8801801, 0x881C004, 0x8823810, 0x8827000,
    0x8829102, 0x8838004, 0x8838801, 0x8839804, 0x883A801, 0x883B000, 0x883F804, 0x8841801, 0x8858004, 0x885D810,
    0x885E800, 0x885F010, 0x8861004, 0x8861800, 0x8868001, 0x8874800, 0x8878102, 0x887D000, 0x8880004, 0x8881801,
    0x8893804, 0x889A800, 0x889B102, 0x88A0010, 0x88A2001, 0x88A2804, 0x88A3801, 0x88A4000, 0x88A8001, 0x88B9804,
    0x88BA010, 0x88BB001, 0x88BB800, 0x88C0004, 0x88C1801, 0x88D9804, 0x88E0801, 0x88E2810, 0x88E4804, 0x88E6810,
    0x88E7004, 0x88E8102, 0x88ED001, 0x88ED810, 0x88EE001, 0x88EE810, 0x88F0000, 0x88F0902, 0x88FA800, 0x8900001,
    0x8909000, 0x8909801, 0x8916004, 0x891C010, 0x891F004, 0x891F801, 0x8920804, 0x8921000, 0x8940001, 0x8943800,
    0x8944001, 0x8944800, 0x8945001, 0x8947000, 0x8947801, 0x894F000, 0x894F801, 0x8954810, 0x8955000, 0x8958001,
    0x896F804, 0x8975800, 0x8978102, 0x897D000, 0x8980004, 0x8982000, 0x8982801, 0x8986800, 0x8987801, 0x8988800,
    0x8989801, 0x8994800, 0x8995001, 0x8998800, 0x8999001, 0x899A000, 0x899A801, 0x899D000, 0x899D804, 0x899E801,
    0x899F004, 0x89A2800, 0x89A3804, 0x89A4800, 0x89A5804, 0x89A7000, 0x89A8001, 0x89A8800, 0x89AB804, 0x89AC000,
    0x89AE801, 0x89B1004, 0x89B2000, 0x89B3004, 0x89B6800, 0x89B8004, 0x89BA800, 0x89C0001, 0x89C5000, 0x89C5801,
    0x89C6000, 0x89C7001, 0x89C7800, 0x89C8001, 0x89DB000, 0x89DB801, 0x89DC004, 0x89E0800, 0x89E1004, 0x89E1800,
    0x89E2804, 0x89E3000, 0x89E3804, 0x89E5800, 0x89E6004, 0x89E8801, 0x89E9004, 0x89E9801, 0x89EA010, 0x89EB000,
    0x89EB810, 0x89EC800, 0x89F0804, 0x89F1800, 0x8A00001, 0x8A1A804, 0x8A23801, 0x8A25810, 0x8A28102, 0x8A2D010,
    0x8A2E000, 0x8A2E810, 0x8A2F004, 0x8A2F801, 0x8A31000, 0x8A40001, 0x8A58004, 0x8A62001, 0x8A63010, 0x8A63801,
    0x8A64000, 0x8A68102, 0x8A6D000, 0x8AC0001, 0x8AD7804, 0x8ADB000, 0x8ADC004, 0x8AE0810, 0x8AEC001, 0x8AEE004,
    0x8AEF000, 0x8B00001, 0x8B18004, 0x8B20810, 0x8B22001, 0x8B22800, 0x8B28102, 0x8B2D000, 0x8B30010, 0x8B36800,
    0x8B40001, 0x8B55804, 0x8B5C001, 0x8B5C810, 0x8B5D000, 0x8B60102, 0x8B65000, 0x8B68102, 0x8B72000, 0x8B80001,
    0x8B8D800, 0x8B8E804, 0x8B96000, 0x8B98102, 0x8B9E010, 0x8B9F820, 0x8BA0001, 0x8BA3800, 0x8C00001, 0x8C16004,
    0x8C1D810, 0x8C1E000, 0x8C50041, 0x8C60081, 0x8C70102, 0x8C79800, 0x8C7F801, 0x8C83800, 0x8C84801, 0x8C85000,
    0x8C86001, 0x8C8A000, 0x8C8A801, 0x8C8B800, 0x8C8C001, 0x8C98004, 0x8C9B000, 0x8C9B804, 0x8C9C800, 0x8C9D804,
    0x8C9F801, 0x8CA0004, 0x8CA0801, 0x8CA1004, 0x8CA2010, 0x8CA3800, 0x8CA8102, 0x8CAD000, 0x8CD0001, 0x8CD4000,
    0x8CD5001, 0x8CE8804, 0x8CEC000, 0x8CED004, 0x8CF0801, 0x8CF1010, 0x8CF1801, 0x8CF2004, 0x8CF2800, 0x8D00001,
    0x8D00804, 0x8D05801, 0x8D19804, 0x8D1D001, 0x8D1D804, 0x8D1F810, 0x8D23804, 0x8D24000, 0x8D28001, 0x8D28804,
    0x8D2E001, 0x8D45004, 0x8D4D010, 0x8D4E801, 0x8D4F010, 0x8D51800, 0x8D58001, 0x8D7C800, 0x8D80010, 0x8D85000,
    0x8DE0001, 0x8DF0810, 0x8DF1000, 0x8DF8102, 0x8DFD000, 0x8E00001, 0x8E04800, 0x8E05001, 0x8E17804, 0x8E1B800,
    0x8E1C004, 0x8E20001, 0x8E20810, 0x8E23000, 0x8E28102, 0x8E36800, 0x8E38010, 0x8E39001, 0x8E48000, 0x8E49004,
    0x8E54000, 0x8E54804, 0x8E5B800, 0x8E80001, 0x8E83800, 0x8E84001, 0x8E85000, 0x8E85801, 0x8E98804, 0x8E9B800,
    0x8E9D004, 0x8E9D800, 0x8E9E004, 0x8E9F000, 0x8E9F804, 0x8EA3001, 0x8EA3804, 0x8EA4000, 0x8EA8102, 0x8EAD000,
    0x8EB0001, 0x8EB3000, 0x8EB3801, 0x8EB4800, 0x8EB5001, 0x8EC5004, 0x8EC7800, 0x8EC8004, 0x8EC9000, 0x8EC9804,
    0x8ECC001, 0x8ECC800, 0x8ED0102, 0x8ED5000, 0x8EF0100, 0x8EF5000, 0x8F70001, 0x8F79804, 0x8F7B810, 0x8F7C800,
    0x8F80004, 0x8F81001, 0x8F81804, 0x8F82001, 0x8F88800, 0x8F89001, 0x8F9A004, 0x8F9D800, 0x8F9F004, 0x8FA1810,
    0x8FA8102, 0x8FAD004, 0x8FAD800, 0x8FD8001, 0x8FD8800, 0x8FE0102, 0x8FEA820, 0x8FF9000, 0x8FFF810, 0x9000001,
    0x91CD000, 0x9200102, 0x9237800, 0x9238010, 0x923A800, 0x9240001, 0x92A2000, 0x97C8001, 0x97F8810, 0x97F9800,
    0x9800001, 0x9A18000, 0x9A20004, 0x9A20801, 0x9A23804, 0x9A2B000, 0x9A30001, 0xA1FD800, 0xA200001, 0xA323800,
    0xB080001, 0xB08F004, 0xB098102, 0xB09D000, 0xB400001, 0xB51C800, 0xB520001, 0xB52F800, 0xB530102, 0xB535000,
    0xB537010, 0xB538001, 0xB55F800, 0xB560102, 0xB565000, 0xB568001, 0xB577000, 0xB578004, 0xB57A810, 0xB57B000,
    0xB580001, 0xB598004, 0xB59B810, 0xB59E020, 0xB5A0001, 0xB5A2010, 0xB5A2820, 0xB5A3000, 0xB5A8102, 0xB5AD000,
    0xB5AD902, 0xB5B1000, 0xB5B1801, 0xB5BC000, 0xB5BE801, 0xB5C8000, 0xB6A0001, 0xB6B6810, 0xB6B8102, 0xB6BD000,
    0xB720041, 0xB730081, 0xB740102, 0xB74B810, 0xB74D800, 0xB780001, 0xB7A5800, 0xB7A7804, 0xB7A8001, 0xB7A8804,
    0xB7C4000, 0xB7C7804, 0xB7C9801, 0xB7D0000, 0xB7F0001, 0xB7F1010, 0xB7F1801, 0xB7F2004, 0xB7F2800, 0xB7F8004,
    0xB7F9000, 0xB7FA100, 0xB7FB800, 0xB800001, 0xC3FC000, 0xC400001, 0xC66B000, 0xC67F801, 0xC684800, 0xD7F8001,
    0xD7FA000, 0xD7FA801, 0xD7FE000, 0xD7FE801, 0xD7FF800, 0xD800001, 0xD891800, 0xD899001, 0xD899800, 0xD8A8001,
    0xD8A9800, 0xD8AA801, 0xD8AB000, 0xD8B2001, 0xD8B4000, 0xD8B8001, 0xD97E000, 0xDE00001, 0xDE35800, 0xDE38001,
    0xDE3E800, 0xDE40001, 0xDE44800, 0xDE48001, 0xDE4D000, 0xDE4E020, 0xDE4E804, 0xDE4F810, 0xDE50000, 0xE600020,
    0xE678102, 0xE67D000, 0xE680020, 0xE75A000, 0xE780004, 0xE797000, 0xE798004, 0xE7A3800, 0xE7A8020, 0xE7E2000,
    0xE800020, 0xE87B000, 0xE880020, 0xE893800, 0xE894820, 0xE8B2804, 0xE8B5020, 0xE8B6804, 0xE8B9800, 0xE8BD804,
    0xE8C1820, 0xE8C2804, 0xE8C6020, 0xE8D5004, 0xE8D7020, 0xE8F5800, 0xE900020, 0xE921004, 0xE922820, 0xE923000,
    0xE960102, 0xE96A000, 0xE970102, 0xE97A000, 0xE980020, 0xE9AB800, 0xE9B0102, 0xE9BC800, 0xEA00041, 0xEA0D081,
    0xEA1A041, 0xEA27081, 0xEA2A800, 0xEA2B081, 0xEA34041, 0xEA41081, 0xEA4E041, 0xEA4E800, 0xEA4F041, 0xEA50000,
    0xEA51041, 0xEA51800, 0xEA52841, 0xEA53800, 0xEA54841, 0xEA56800, 0xEA57041, 0xEA5B081, 0xEA5D000, 0xEA5D881,
    0xEA5E000, 0xEA5E881, 0xEA62000, 0xEA62881, 0xEA68041, 0xEA75081, 0xEA82041, 0xEA83000, 0xEA83841, 0xEA85800,
    0xEA86841, 0xEA8A800, 0xEA8B041, 0xEA8E800, 0xEA8F081, 0xEA9C041, 0xEA9D000, 0xEA9D841, 0xEA9F800, 0xEAA0041,
    0xEAA2800, 0xEAA3041, 0xEAA3800, 0xEAA5041, 0xEAA8800, 0xEAA9081, 0xEAB6041, 0xEAC3081, 0xEAD0041, 0xEADD081,
    0xEAEA041, 0xEAF7081, 0xEB04041, 0xEB11081, 0xEB1E041, 0xEB2B081, 0xEB38041, 0xEB45081, 0xEB53000, 0xEB54041,
    0xEB60820, 0xEB61081, 0xEB6D820, 0xEB6E081, 0xEB71041, 0xEB7D820, 0xEB7E081, 0xEB8A820, 0xEB8B081, 0xEB8E041,
    0xEB9A820, 0xEB9B081, 0xEBA7820, 0xEBA8081, 0xEBAB041, 0xEBB7820, 0xEBB8081, 0xEBC4820, 0xEBC5081, 0xEBC8041,
    0xEBD4820, 0xEBD5081, 0xEBE1820, 0xEBE2081, 0xEBE5041, 0xEBE5881, 0xEBE6000, 0xEBE7102, 0xEC00020, 0xED00004,
    0xED1B820, 0xED1D804, 0xED36820, 0xED3A804, 0xED3B020, 0xED42004, 0xED42820, 0xED43810, 0xED46000, 0xED4D804,
    0xED50000, 0xED50804, 0xED58000, 0xEF80081, 0xEF85001, 0xEF85881, 0xEF8F800, 0xEF92881, 0xEF95800, 0xF000004,
    0xF003800, 0xF004004, 0xF00C800, 0xF00D804, 0xF011000, 0xF011804, 0xF012800, 0xF013004, 0xF015800, 0xF018001,
    0xF037000, 0xF047804, 0xF048000, 0xF080001, 0xF096800, 0xF098004, 0xF09B801, 0xF09F000, 0xF0A0102, 0xF0A5000,
    0xF0A7001, 0xF0A7820, 0xF0A8000, 0xF148001, 0xF157004, 0xF157800, 0xF160001, 0xF176004, 0xF178102, 0xF17D000,
    0xF17F820, 0xF180000, 0xF268001, 0xF276004, 0xF278102, 0xF27D000, 0xF2E8001, 0xF2F7004, 0xF2F8001, 0xF2F8902,
    0xF2FD800, 0xF2FF810, 0xF300000, 0xF3F0001, 0xF3F3800, 0xF3F4001, 0xF3F6000, 0xF3F6801, 0xF3F7800, 0xF3F8001,
    0xF3FF800, 0xF400001, 0xF462800, 0xF463902, 0xF468004, 0xF46B800, 0xF480041, 0xF491081, 0xF4A2004, 0xF4A5801,
    0xF4A6000, 0xF4A8102, 0xF4AD000, 0xF4AF010, 0xF4B0000, 0xF638902, 0xF656020, 0xF656902, 0xF658020, 0xF658902,
    0xF65A800, 0xF680902, 0xF697020, 0xF697902, 0xF69F000, 0xF700001, 0xF702000, 0xF702801, 0xF710000, 0xF710801,
    0xF711800, 0xF712001, 0xF712800, 0xF713801, 0xF714000, 0xF714801, 0xF719800, 0xF71A001, 0xF71C000, 0xF71C801,
    0xF71D000, 0xF71D801, 0xF71E000, 0xF721001, 0xF721800, 0xF723801, 0xF724000, 0xF724801, 0xF725000, 0xF725801,
    0xF726000, 0xF726801, 0xF728000, 0xF728801, 0xF729800, 0xF72A001, 0xF72A800, 0xF72B801, 0xF72C000, 0xF72C801,
    0xF72D000, 0xF72D801, 0xF72E000, 0xF72E801, 0xF72F000, 0xF72F801, 0xF730000, 0xF730801, 0xF731800, 0xF732001,
    0xF732800, 0xF733801, 0xF735800, 0xF736001, 0xF739800, 0xF73A001, 0xF73C000, 0xF73C801, 0xF73E800, 0xF73F001,
    0xF73F800, 0xF740001, 0xF745000, 0xF745801, 0xF74E000, 0xF750801, 0xF752000, 0xF752801, 0xF755000, 0xF755801,
    0xF75E000, 0xF778020, 0xF779000, 0xF800020, 0xF816000, 0xF818020, 0xF84A000, 0xF850020, 0xF857800, 0xF858820,
    0xF860000, 0xF860820, 0xF868000, 0xF868820, 0xF87B000, 0xF880102, 0xF886820, 0xF8D7000, 0xF8F3020, 0xF901800,
    0xF908020, 0xF91E000, 0xF920020, 0xF924800, 0xF928020, 0xF929000, 0xF930020, 0xF933000, 0xF980020, 0xFB6C000,
    0xFB6E020, 0xFB76800, 0xFB78020, 0xFB7E800, 0xFB80020, 0xFBBB800, 0xFBBD820, 0xFBED000, 0xFBF0020, 0xFBF6000,
    0xFBF8020, 0xFBF8800, 0xFC00020, 0xFC06000, 0xFC08020, 0xFC24000, 0xFC28020, 0xFC2D000, 0xFC30020, 0xFC44000,
    0xFC48020, 0xFC57000, 0xFC58020, 0xFC5E000, 0xFC60020, 0xFC61000, 0xFC80020, 0xFD2A000, 0xFD30020, 0xFD37000,
    0xFD38020, 0xFD3E800, 0xFD40020, 0xFD45000, 0xFD47820, 0xFD63800, 0xFD67020, 0xFD6E800, 0xFD6F820, 0xFD75000,
    0xFD78020, 0xFD7C800, 0xFD80020, 0xFDC9800, 0xFDCA020, 0xFDF8102, 0xFDFD000, 0x10000001, 0x15370000, 0x15380001,
    0x15B9D000, 0x15BA0001, 0x15C0F000, 0x15C10001, 0x16751000, 0x16758001, 0x175F0800, 0x175F8001, 0x1772F000, 0x17C00001,
    0x17D0F000, 0x18000001, 0x189A5800, 0x189A8001, 0x191D8000, 0x70080004, 0x700F8000
};
/* END GENERATED */

#if defined(__GNUC__) || defined(__clang__)
#define LISA__MAYBE_UNUSED __attribute__((unused))
#else
#define LISA__MAYBE_UNUSED
#endif

/* The one UTF-8 decoder: the length (1..4) of the valid sequence at s (n > 0
   bytes available) with its code point in *cp, or 0 when s does not start one
   (overlong, surrogate, beyond U+10FFFF, truncated, a stray continuation). */
static int lisa__utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    uint32_t v;
    int len, i;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;        /* overlong */
        if (c == 0xED) hi = 0x9F;        /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;        /* overlong */
        if (c == 0xF4) hi = 0x8F;        /* beyond U+10FFFF */
    } else {
        return 0;                        /* a continuation byte, C0, C1 or F5..FF */
    }
    if ((size_t)len > n || s[1] < lo || s[1] > hi) return 0;
    v = v << 6 | (s[1] & 0x3Fu);
    for (i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
        v = v << 6 | (s[i] & 0x3Fu);
    }
    *cp = v;
    return len;
}

/* The bytes of code point cp (<= U+10FFFF, not a surrogate) in out[4]; returns 1..4. */
static int lisa__utf8_encode(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The LISA__UC_ bits of a code point: Latin-1 by table, the rest by binary
   search of the runs (0 beyond U+10FFFF). */
static unsigned lisa__uc_class(uint32_t cp) {
    size_t lo = 0, hi = LISA__UC_N_RUNS;   /* the run holding cp is in [lo, hi) */
    uint32_t key = cp << LISA__UC_SHIFT | ((1u << LISA__UC_SHIFT) - 1);
    if (cp < 256) return lisa__uc_latin1[cp];
    if (cp > 0x10FFFF) return 0;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (lisa__uc_runs[mid] <= key) lo = mid;
        else hi = mid;
    }
    return lisa__uc_runs[lo] & ((1u << LISA__UC_SHIFT) - 1);
}

typedef enum lisa__pretok_kind {
    LISA__PRETOK_NONE = 0,
    LISA__PRETOK_GPT2,          /* GPT-2's regex; ByteLevel with use_regex */
    LISA__PRETOK_LLAMA3,        /* Llama 3's: numbers in threes */
    LISA__PRETOK_QWEN2,         /* Llama 3's with single numbers */
    LISA__PRETOK_DIGITS_EACH,   /* Digits, individual_digits true */
    LISA__PRETOK_DIGITS_RUNS,   /* Digits, individual_digits false */
    LISA__PRETOK_QWEN35,        /* Qwen2's with marks inside words */
    LISA__PRETOK_GPT4O,         /* words split at case changes, contractions kept, numbers in threes */
    LISA__PRETOK_TEKKEN,        /* the same without contractions, single numbers */
    LISA__PRETOK_NUMBERS3,      /* \p{N}{1,3} */
    LISA__PRETOK_CJK,           /* CJK ideographs U+4E00..U+9FA5, hiragana, katakana */
    LISA__PRETOK_DEEPSEEK3,     /* DeepSeek V3's third split */
    LISA__PRETOK_NUMBER_RUNS,   /* \p{N}+ */
    LISA__PRETOK_PUNCT_RUNS,    /* [\p{P}\$\+<=>\^~\|]+ */
    LISA__PRETOK_DIGITS3,       /* [0-9][0-9][0-9] */
    LISA__PRETOK_N_KINDS
} lisa__pretok_kind;

/* The character at s[pos] (pos < n): its length, its class bits in *cls. A byte
   that does not start valid UTF-8 is one character of no class. */
static size_t lisa__pretok_char(const unsigned char *s, size_t n, size_t pos, unsigned *cls) {
    uint32_t cp;
    int len;
    if (s[pos] < 0x80) {
        *cls = lisa__uc_latin1[s[pos]];
        return 1;
    }
    len = lisa__utf8_decode(s + pos, n - pos, &cp);
    if (len == 0) {
        *cls = 0;
        return 1;
    }
    *cls = lisa__uc_class(cp);
    return (size_t)len;
}

/* The class of the character at pos, or 0 at the end of the text. */
static unsigned lisa__pretok_class_at(const unsigned char *s, size_t n, size_t pos) {
    unsigned cls = 0;
    if (pos < n) lisa__pretok_char(s, n, pos, &cls);
    return cls;
}

/* Whether a character of class cls is in the set: with `in`, it has a bit of
   mask; without, it has none of them (a negated class like [^\s\p{L}\p{N}]). */
#define LISA__PRETOK_IN(cls, mask, in) ((((cls) & (mask)) != 0) == (in))
#define LISA__PRETOK_OTHER (LISA__UC_SPACE | LISA__UC_LETTER | LISA__UC_NUMBER)  /* [^\s\p{L}\p{N}] */
#define LISA__PRETOK_ANY ((size_t)-1)

/* The end of the longest run, at most max characters, from pos on of the set
   (mask, in). */
static size_t lisa__pretok_run(const unsigned char *s, size_t n, size_t pos, unsigned mask, int in,
                               size_t max) {
    size_t count = 0;
    while (pos < n && count < max) {
        unsigned cls;
        size_t len = lisa__pretok_char(s, n, pos, &cls);
        if (!LISA__PRETOK_IN(cls, mask, in)) break;
        pos += len;
        count++;
    }
    return pos;
}

static int lisa__pretok_is_line(unsigned char c) { return c == '\r' || c == '\n'; }

/* The end of the run of bytes from pos on that are \r, \n or (with slash) '/'. */
static size_t lisa__pretok_line_ends(const unsigned char *s, size_t n, size_t pos, int slash) {
    while (pos < n && (lisa__pretok_is_line(s[pos]) || (slash && s[pos] == '/'))) pos++;
    return pos;
}

/* The length of the contraction 's 't 're 've 'm 'll 'd at s[pos], or 0. With
   fold, as (?i:...) matches them: any case, and U+017F (long s) for s. */
static size_t lisa__pretok_contraction(const unsigned char *s, size_t n, size_t pos, int fold) {
    static const char *const forms[7] = {"s", "t", "re", "ve", "m", "ll", "d"};
    size_t avail, i;
    int k;
    if (pos >= n || s[pos] != '\'' || pos + 1 == n) return 0;
    avail = n - pos - 1;
    s += pos + 1;
    for (k = 0; k < 7; k++) {
        const char *f = forms[k];
        if (fold && f[0] == 's' && avail >= 2 && s[0] == 0xC5 && s[1] == 0xBF) return 3;
        for (i = 0; f[i] && i < avail; i++) {
            unsigned c = s[i];
            if (fold && c >= 'A' && c <= 'Z') c += 'a' - 'A';
            if (c != (unsigned char)f[i]) break;
        }
        if (!f[i]) return 1 + i;
    }
    return 0;
}

/* \s+(?!\S)|\s+ at pos, a space: the whole run of spaces when the text ends
   after it or it is one character, else the run less its last character (which
   goes with what follows). */
static size_t lisa__pretok_spaces(const unsigned char *s, size_t n, size_t pos) {
    size_t end = pos, last = pos;
    while (end < n) {
        unsigned cls;
        size_t len = lisa__pretok_char(s, n, end, &cls);
        if (!(cls & LISA__UC_SPACE)) break;
        last = end;
        end += len;
    }
    return end == n || last == pos ? end : last;
}

/* \s*[\r\n]+|\s+(?!\S)|\s+ at pos, a space: through the run's last \r or \n when
   it has one (\s* backtracks to it), else as lisa__pretok_spaces. */
static size_t lisa__pretok_spaces_lines(const unsigned char *s, size_t n, size_t pos) {
    size_t end = pos, line_end = 0;
    while (end < n) {
        unsigned cls;
        size_t len = lisa__pretok_char(s, n, end, &cls);
        if (!(cls & LISA__UC_SPACE)) break;
        if (lisa__pretok_is_line(s[end])) line_end = end + 1;
        end += len;
    }
    return line_end ? line_end : lisa__pretok_spaces(s, n, pos);
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t lisa__pretok_gpt2(const unsigned char *s, size_t n, size_t pos) {
    size_t len = lisa__pretok_contraction(s, n, pos, 0), at = pos;
    unsigned cls;
    if (len) return pos + len;
    if (s[pos] == ' ' && pos + 1 < n) at = pos + 1;   /* " ?" takes the space if what follows matches */
    cls = lisa__pretok_class_at(s, n, at);
    if (cls & LISA__UC_LETTER) return lisa__pretok_run(s, n, at, LISA__UC_LETTER, 1, LISA__PRETOK_ANY);
    if (cls & LISA__UC_NUMBER) return lisa__pretok_run(s, n, at, LISA__UC_NUMBER, 1, LISA__PRETOK_ANY);
    if (!(cls & LISA__UC_SPACE)) return lisa__pretok_run(s, n, at, LISA__PRETOK_OTHER, 0, LISA__PRETOK_ANY);
    return lisa__pretok_spaces(s, n, pos);
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?W+|\p{N}{1,max}|
    ?[^\s\p{N}W]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
   with W = \p{L} (Llama 3, Qwen2) or [\p{L}\p{M}] (Qwen3.5): word is its mask. */
static size_t lisa__pretok_llama3(const unsigned char *s, size_t n, size_t pos, size_t max_digits, unsigned word) {
    size_t len = lisa__pretok_contraction(s, n, pos, 1), next, at;
    unsigned cls, cls_next, other = LISA__PRETOK_OTHER | word;
    if (len) return pos + len;
    next = pos + lisa__pretok_char(s, n, pos, &cls);
    cls_next = lisa__pretok_class_at(s, n, next);
    if (cls & word) return lisa__pretok_run(s, n, pos, word, 1, LISA__PRETOK_ANY);
    if (!(cls & (LISA__UC_LETTER | LISA__UC_NUMBER)) && !lisa__pretok_is_line(s[pos]) && (cls_next & word))
        return lisa__pretok_run(s, n, next, word, 1, LISA__PRETOK_ANY);
    if (cls & LISA__UC_NUMBER) return lisa__pretok_run(s, n, pos, LISA__UC_NUMBER, 1, max_digits);
    at = s[pos] == ' ' && next < n && LISA__PRETOK_IN(cls_next, other, 0) ? next : pos;
    if (LISA__PRETOK_IN(lisa__pretok_class_at(s, n, at), other, 0))
        return lisa__pretok_line_ends(s, n, lisa__pretok_run(s, n, at, other, 0, LISA__PRETOK_ANY), 0);
    return lisa__pretok_spaces_lines(s, n, pos);
}

/* Cased words: U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], L = [\p{Ll}\p{Lm}\p{Lo}\p{M}];
   Lm, Lo and marks ("caseless") are in both. */
static int lisa__pretok_in_upper(unsigned cls) {
    return (cls & LISA__UC_MARK) || ((cls & LISA__UC_LETTER) && !(cls & LISA__UC_LOWER));
}

static int lisa__pretok_in_lower(unsigned cls) {
    return (cls & LISA__UC_MARK) || ((cls & LISA__UC_LETTER) && !(cls & LISA__UC_UPPER));
}

/* The end of the run of L characters from pos on. */
static size_t lisa__pretok_lower_run(const unsigned char *s, size_t n, size_t pos) {
    while (pos < n) {
        unsigned cls;
        size_t len = lisa__pretok_char(s, n, pos, &cls);
        if (!lisa__pretok_in_lower(cls)) break;
        pos += len;
    }
    return pos;
}

/* U*L+ (upper_first 0) or U+L* (1) from pos: the end, or 0 when it does not
   match. U* first takes the whole U run; when no L follows, it gives back up to
   the run's last caseless character, which L+ then takes. */
static size_t lisa__pretok_cased(const unsigned char *s, size_t n, size_t pos, int upper_first) {
    size_t at = pos, caseless_end = 0;
    while (at < n) {
        unsigned cls;
        size_t len = lisa__pretok_char(s, n, at, &cls);
        if (!lisa__pretok_in_upper(cls)) break;
        at += len;
        if (lisa__pretok_in_lower(cls)) caseless_end = at;
    }
    if (upper_first) return at > pos ? lisa__pretok_lower_run(s, n, at) : 0;
    if (lisa__pretok_in_lower(lisa__pretok_class_at(s, n, at))) return lisa__pretok_lower_run(s, n, at);
    return caseless_end;
}

/* [^\r\n\p{L}\p{N}]?U*L+C?|[^\r\n\p{L}\p{N}]?U+L*C? at pos, C the contractions
   when they count: the end, or 0. Each alternative tries the prefix first. */
static size_t lisa__pretok_cased_word(const unsigned char *s, size_t n, size_t pos, int contractions) {
    unsigned cls;
    size_t next = pos + lisa__pretok_char(s, n, pos, &cls), end = 0;
    int prefix = !(cls & (LISA__UC_LETTER | LISA__UC_NUMBER)) && !lisa__pretok_is_line(s[pos]) && next < n;
    int upper_first;
    for (upper_first = 0; upper_first < 2 && !end; upper_first++) {
        if (prefix) end = lisa__pretok_cased(s, n, next, upper_first);
        if (!end) end = lisa__pretok_cased(s, n, pos, upper_first);
    }
    if (end && contractions) end += lisa__pretok_contraction(s, n, end, 1);
    return end;
}

/* GPT-4o's (o200k) and Tekken's: cased words (with contractions for GPT-4o),
   \p{N}{1,max}, ?[^\s\p{L}\p{N}]+[\r\n/]*, then Llama 3's spaces. */
static size_t lisa__pretok_gpt4o(const unsigned char *s, size_t n, size_t pos, size_t max_digits, int contractions) {
    size_t end = lisa__pretok_cased_word(s, n, pos, contractions), next, at;
    unsigned cls;
    if (end) return end;
    next = pos + lisa__pretok_char(s, n, pos, &cls);
    if (cls & LISA__UC_NUMBER) return lisa__pretok_run(s, n, pos, LISA__UC_NUMBER, 1, max_digits);
    at = s[pos] == ' ' && next < n && LISA__PRETOK_IN(lisa__pretok_class_at(s, n, next), LISA__PRETOK_OTHER, 0)
             ? next : pos;
    if (LISA__PRETOK_IN(lisa__pretok_class_at(s, n, at), LISA__PRETOK_OTHER, 0))
        return lisa__pretok_line_ends(s, n, lisa__pretok_run(s, n, at, LISA__PRETOK_OTHER, 0, LISA__PRETOK_ANY), 1);
    return lisa__pretok_spaces_lines(s, n, pos);
}

static int lisa__pretok_ascii_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* DeepSeek V3's [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|
   [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
   at pos: the end, or 0 where nothing matches (a number or a control character
   before no letter). */
static size_t lisa__pretok_deepseek3_match(const unsigned char *s, size_t n, size_t pos) {
    const unsigned word = LISA__UC_LETTER | LISA__UC_MARK, punct = LISA__UC_PUNCT | LISA__UC_SYMBOL;
    unsigned char c = s[pos];
    unsigned cls, cls_next;
    size_t next, at;
    if (c > ' ' && c < 0x7F && !lisa__pretok_ascii_letter(c) && !(c >= '0' && c <= '9') && pos + 1 < n &&
        lisa__pretok_ascii_letter(s[pos + 1])) {
        for (at = pos + 1; at < n && lisa__pretok_ascii_letter(s[at]); at++) {}
        return at;
    }
    next = pos + lisa__pretok_char(s, n, pos, &cls);
    cls_next = lisa__pretok_class_at(s, n, next);
    if (cls & word) return lisa__pretok_run(s, n, pos, word, 1, LISA__PRETOK_ANY);
    if (!(cls & (LISA__UC_LETTER | punct)) && !lisa__pretok_is_line(c) && (cls_next & word))
        return lisa__pretok_run(s, n, next, word, 1, LISA__PRETOK_ANY);
    at = c == ' ' && (cls_next & punct) ? next : pos;
    if (lisa__pretok_class_at(s, n, at) & punct)
        return lisa__pretok_line_ends(s, n, lisa__pretok_run(s, n, at, punct, 1, LISA__PRETOK_ANY), 0);
    if (cls & LISA__UC_SPACE) return lisa__pretok_spaces_lines(s, n, pos);
    return 0;
}

/* What no alternative matches is a piece too, up to where a match starts. */
static size_t lisa__pretok_deepseek3(const unsigned char *s, size_t n, size_t pos) {
    size_t end = lisa__pretok_deepseek3_match(s, n, pos);
    unsigned cls;
    if (end) return end;
    for (end = pos + lisa__pretok_char(s, n, pos, &cls); end < n && !lisa__pretok_deepseek3_match(s, n, end);)
        end += lisa__pretok_char(s, n, end, &cls);
    return end;
}

/* Whether the character at pos (its length in *len) is in the one set that
   kind splits by: numbers for Digits and \p{N}, CJK, or punctuation. */
static int lisa__pretok_member(int kind, const unsigned char *s, size_t n, size_t pos, size_t *len) {
    uint32_t cp;
    unsigned cls;
    int l = lisa__utf8_decode(s + pos, n - pos, &cp);
    *len = l ? (size_t)l : 1;
    if (l == 0) return 0;
    cls = lisa__uc_class(cp);
    switch (kind) {
    case LISA__PRETOK_DIGITS_EACH: case LISA__PRETOK_DIGITS_RUNS: return (cls & LISA__UC_NUMERIC) != 0;
    case LISA__PRETOK_NUMBERS3: case LISA__PRETOK_NUMBER_RUNS: return (cls & LISA__UC_NUMBER) != 0;
    case LISA__PRETOK_CJK: return (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x3040 && cp <= 0x30FF);
    default: return (cls & LISA__UC_PUNCT) || cp == '$' || cp == '+' || cp == '<' || cp == '=' || cp == '>' ||
                    cp == '^' || cp == '~' || cp == '|';
    }
}

/* Runs of the set, at most max characters each, and runs of the rest. */
static size_t lisa__pretok_set_runs(int kind, const unsigned char *s, size_t n, size_t pos, size_t max) {
    size_t len, count = 1;
    int in = lisa__pretok_member(kind, s, n, pos, &len);
    for (pos += len; pos < n && (!in || count < max); pos += len, count++)
        if (lisa__pretok_member(kind, s, n, pos, &len) != in) break;
    return pos;
}

static int lisa__pretok_three_digits(const unsigned char *s, size_t n, size_t pos) {
    return n - pos >= 3 && s[pos] >= '0' && s[pos] <= '9' && s[pos + 1] >= '0' && s[pos + 1] <= '9' &&
           s[pos + 2] >= '0' && s[pos + 2] <= '9';
}

/* [0-9][0-9][0-9], and what lies between matches (a match starts at an ASCII
   byte, so stepping bytes stays on character boundaries). */
static size_t lisa__pretok_digits3(const unsigned char *s, size_t n, size_t pos) {
    size_t end = pos + 1;
    if (lisa__pretok_three_digits(s, n, pos)) return pos + 3;
    while (end < n && !lisa__pretok_three_digits(s, n, end)) end++;
    return end;
}

static LISA__MAYBE_UNUSED size_t lisa__pretok_next(int kind, const unsigned char *s, size_t n, size_t pos) {
    switch (kind) {
    case LISA__PRETOK_GPT2: return lisa__pretok_gpt2(s, n, pos);
    case LISA__PRETOK_LLAMA3: return lisa__pretok_llama3(s, n, pos, 3, LISA__UC_LETTER);
    case LISA__PRETOK_QWEN2: return lisa__pretok_llama3(s, n, pos, 1, LISA__UC_LETTER);
    case LISA__PRETOK_QWEN35: return lisa__pretok_llama3(s, n, pos, 1, LISA__UC_LETTER | LISA__UC_MARK);
    case LISA__PRETOK_GPT4O: return lisa__pretok_gpt4o(s, n, pos, 3, 1);
    case LISA__PRETOK_TEKKEN: return lisa__pretok_gpt4o(s, n, pos, 1, 0);
    case LISA__PRETOK_DEEPSEEK3: return lisa__pretok_deepseek3(s, n, pos);
    case LISA__PRETOK_DIGITS_EACH: return lisa__pretok_set_runs(kind, s, n, pos, 1);
    case LISA__PRETOK_NUMBERS3: return lisa__pretok_set_runs(kind, s, n, pos, 3);
    case LISA__PRETOK_DIGITS_RUNS: case LISA__PRETOK_CJK: case LISA__PRETOK_NUMBER_RUNS: case LISA__PRETOK_PUNCT_RUNS:
        return lisa__pretok_set_runs(kind, s, n, pos, LISA__PRETOK_ANY);
    case LISA__PRETOK_DIGITS3: return lisa__pretok_digits3(s, n, pos);
    default: return n;   /* no scanner: the rest is one piece */
    }
}

static LISA__MAYBE_UNUSED const char *lisa__pretok_name(int kind) {
    static const char *const names[LISA__PRETOK_N_KINDS] = {
        "none", "gpt2", "llama3", "qwen2", "digits", "digit-runs", "qwen35", "gpt4o", "tekken",
        "numbers3", "cjk", "deepseek3", "number-runs", "punct-runs", "digits3"};
    return kind > 0 && kind < LISA__PRETOK_N_KINDS ? names[kind] : "none";
}

/* The regex texts as tokenizer.json holds them once JSON-decoded (DeepSeek V3's
   has CR and LF characters themselves where the others have \r \n escapes). */
#define LISA__RE_CONTRACTIONS "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
#define LISA__RE_SPACES "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define LISA__RE_UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define LISA__RE_LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define LISA__RE_PREFIX "[^\\r\\n\\p{L}\\p{N}]?"
#define LISA__RE_DEEPSEEK3(CR, LF) \
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^" CR LF "\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|" \
    " ?[\\p{P}\\p{S}]+[" CR LF "]*|\\s*[" CR LF "]+|\\s+(?!\\S)|\\s+"

/* The known patterns by scanner (DeepSeek V3's twice: raw and escaped line breaks). */
static const struct {
    int kind;
    const char *text;
} lisa__pretok_patterns[] = {
    {LISA__PRETOK_GPT2, "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
    {LISA__PRETOK_LLAMA3, LISA__RE_CONTRACTIONS "|" LISA__RE_PREFIX "\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                          LISA__RE_SPACES},
    {LISA__PRETOK_QWEN2, LISA__RE_CONTRACTIONS "|" LISA__RE_PREFIX "\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                         LISA__RE_SPACES},
    {LISA__PRETOK_QWEN35, LISA__RE_CONTRACTIONS "|" LISA__RE_PREFIX "[\\p{L}\\p{M}]+|\\p{N}|"
                          " ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|" LISA__RE_SPACES},
    {LISA__PRETOK_GPT4O, LISA__RE_PREFIX LISA__RE_UPPER "*" LISA__RE_LOWER "+" LISA__RE_CONTRACTIONS "?|"
                         LISA__RE_PREFIX LISA__RE_UPPER "+" LISA__RE_LOWER "*" LISA__RE_CONTRACTIONS "?|"
                         "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|" LISA__RE_SPACES},
    {LISA__PRETOK_TEKKEN, LISA__RE_PREFIX LISA__RE_UPPER "*" LISA__RE_LOWER "+|" LISA__RE_PREFIX LISA__RE_UPPER "+"
                          LISA__RE_LOWER "*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|" LISA__RE_SPACES},
    {LISA__PRETOK_NUMBERS3, "\\p{N}{1,3}"},
    {LISA__PRETOK_CJK, "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+"},
    {LISA__PRETOK_DEEPSEEK3, LISA__RE_DEEPSEEK3("\r", "\n")},
    {LISA__PRETOK_DEEPSEEK3, LISA__RE_DEEPSEEK3("\\r", "\\n")},
    {LISA__PRETOK_NUMBER_RUNS, "\\p{N}+"},
    {LISA__PRETOK_PUNCT_RUNS, "[\\p{P}\\$\\+<=>\\^~\\|]+"},
    {LISA__PRETOK_DIGITS3, "[0-9][0-9][0-9]"},
};

static LISA__MAYBE_UNUSED int lisa__pretok_from_pattern(const char *pattern, size_t len) {
    size_t k;
    for (k = 0; k < sizeof lisa__pretok_patterns / sizeof lisa__pretok_patterns[0]; k++)
        if (strlen(lisa__pretok_patterns[k].text) == len && memcmp(lisa__pretok_patterns[k].text, pattern, len) == 0)
            return lisa__pretok_patterns[k].kind;
    return 0;
}

/* The regex tokenizer.json spells scanner kind with (the first known), or NULL
   for the Digits kinds and those without one. */
static LISA__MAYBE_UNUSED const char *lisa__pretok_pattern(int kind) {
    size_t k;
    for (k = 0; k < sizeof lisa__pretok_patterns / sizeof lisa__pretok_patterns[0]; k++)
        if (lisa__pretok_patterns[k].kind == kind) return lisa__pretok_patterns[k].text;
    return NULL;
}

/* What llama.cpp (src/llama-vocab.cpp) splits by for each name: its regexes in
   order, here as scanners. */
static LISA__MAYBE_UNUSED int lisa__pretok_from_gguf(const char *name, size_t len, int kinds[4]) {
    static const char *const gpt2[] = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es",
                                       "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "jina-v1-en",
                                       "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "trillion",
                                       "granite-docling", "exaone4", NULL};
    static const char *const digits_gpt2[] = {"smollm", "starcoder", "refact", "command-r", "codeshell",
                                              "exaone", "minerva-7b", "mellum2", NULL};
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1",
                                         "pixtral", "midm-2.0", "lfm2", "jina-v5-nano", "dbrx",
                                         "smaug-bpe", "chatglm-bpe", "glm4", "glm5", NULL};
    static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2",
                                        "hunyuan", "solar-open", "megrez", NULL};
    static const char *const qwen35[] = {"qwen35", NULL};
    static const char *const gpt4o[] = {"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2", NULL};
    static const char *const tekken[] = {"tekken", NULL};
    static const char *const deepseek3[] = {"deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4", NULL};
    static const char *const falcon[] = {"falcon", NULL};
    static const char *const fallback[] = {"default", NULL};
    static const struct {
        const char *const *names;
        int n_kinds, kinds[4];
    } groups[] = {
        {gpt2, 1, {LISA__PRETOK_GPT2, 0, 0, 0}},
        {digits_gpt2, 2, {LISA__PRETOK_DIGITS_EACH, LISA__PRETOK_GPT2, 0, 0}},
        {llama3, 1, {LISA__PRETOK_LLAMA3, 0, 0, 0}},
        {qwen2, 1, {LISA__PRETOK_QWEN2, 0, 0, 0}},
        {qwen35, 1, {LISA__PRETOK_QWEN35, 0, 0, 0}},
        {gpt4o, 1, {LISA__PRETOK_GPT4O, 0, 0, 0}},
        {tekken, 1, {LISA__PRETOK_TEKKEN, 0, 0, 0}},
        {deepseek3, 3, {LISA__PRETOK_NUMBERS3, LISA__PRETOK_CJK, LISA__PRETOK_DEEPSEEK3, 0}},
        {falcon, 3, {LISA__PRETOK_PUNCT_RUNS, LISA__PRETOK_GPT2, LISA__PRETOK_DIGITS3, 0}},
        {fallback, 4, {LISA__PRETOK_PUNCT_RUNS, LISA__PRETOK_GPT2, LISA__PRETOK_NUMBER_RUNS, LISA__PRETOK_DIGITS3}},
    };
    size_t g;
    int i, k;
    for (g = 0; g < sizeof groups / sizeof groups[0]; g++)
        for (i = 0; groups[g].names[i]; i++)
            if (strlen(groups[g].names[i]) == len && memcmp(groups[g].names[i], name, len) == 0) {
                for (k = 0; k < 4; k++) kinds[k] = groups[g].kinds[k];
                return groups[g].n_kinds;
            }
    return 0;
}

/* ---- Unicode normalization: NFC ---------------------------------------- */

/* BEGIN GENERATED: tools/make_nfc.py */
/* Unicode 16.0.0 canonical decompositions, combining classes and compositions
   (UAX #15), from unicodedata2 16.0.0; Hangul syllables are algorithmic. */
#define LISA__NFC_VERSION "16.0.0"
/* From here on every code point is a starter that NFC keeps as it is. */
#define LISA__NFC_LIMIT 0x2FA1E
/* Bit b of word w: code points (32 w + b) * 128 on, 128 of them, hold one that is
   not a plain starter (combining class 0, NFC_Quick_Check Yes). */
#define LISA__NFC_BLOCK_SHIFT 7
static const uint32_t lisa__nfc_blocks[48] = {
    0xFFFFFAC0, 0xCBF6C04F, 0xE200047, 0x3, 0x0, 0x0, 0x0, 0x0,
    0x0, 0x0, 0xAF3000, 0x0, 0x0, 0x0, 0x0, 0x107C0000,
    0xE4300068, 0x4D3D7BFF, 0x0, 0x0, 0x0, 0x0, 0x84600004, 0x0,
    0x0, 0x0, 0x0, 0x2000000, 0x0, 0x1C, 0x60A27, 0x0,
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x1F0000
};
/* Runs of one canonical combining class, start << 8 | class, sorted; the last
   run ends at LISA__NFC_LIMIT. */
#define LISA__NFC_N_CCC 589
static const uint32_t lisa__nfc_ccc[LISA__NFC_N_CCC] = {
    0x300E6, 0x315E8, 0x316DC, 0x31AE8, 0x31BD8, 0x31CDC, 0x321CA, 0x323DC, 0x327CA, 0x329DC,
    0x33401, 0x339DC, 0x33DE6, 0x345F0, 0x346E6, 0x347DC, 0x34AE6, 0x34DDC, 0x34F00, 0x350E6,
    0x353DC, 0x357E6, 0x358E8, 0x359DC, 0x35BE6, 0x35CE9, 0x35DEA, 0x35FE9, 0x360EA, 0x362E9,
    0x363E6, 0x37000, 0x483E6, 0x48800, 0x591DC, 0x592E6, 0x596DC, 0x597E6, 0x59ADE, 0x59BDC,
    0x59CE6, 0x5A2DC, 0x5A8E6, 0x5AADC, 0x5ABE6, 0x5ADDE, 0x5AEE4, 0x5AFE6, 0x5B00A, 0x5B10B,
    0x5B20C, 0x5B30D, 0x5B40E, 0x5B50F, 0x5B610, 0x5B711, 0x5B812, 0x5B913, 0x5BB14, 0x5BC15,
    0x5BD16, 0x5BE00, 0x5BF17, 0x5C000, 0x5C118, 0x5C219, 0x5C300, 0x5C4E6, 0x5C5DC, 0x5C600,
    0x5C712, 0x5C800, 0x610E6, 0x6181E, 0x6191F, 0x61A20, 0x61B00, 0x64B1B, 0x64C1C, 0x64D1D,
    0x64E1E, 0x64F1F, 0x65020, 0x65121, 0x65222, 0x653E6, 0x655DC, 0x657E6, 0x65CDC, 0x65DE6,
    0x65FDC, 0x66000, 0x67023, 0x67100, 0x6D6E6, 0x6DD00, 0x6DFE6, 0x6E3DC, 0x6E4E6, 0x6E500,
    0x6E7E6, 0x6E900, 0x6EADC, 0x6EBE6, 0x6EDDC, 0x6EE00, 0x71124, 0x71200, 0x730E6, 0x731DC,
    0x732E6, 0x734DC, 0x735E6, 0x737DC, 0x73AE6, 0x73BDC, 0x73DE6, 0x73EDC, 0x73FE6, 0x742DC,
    0x743E6, 0x744DC, 0x745E6, 0x746DC, 0x747E6, 0x748DC, 0x749E6, 0x74B00, 0x7EBE6, 0x7F2DC,
    0x7F3E6, 0x7F400, 0x7FDDC, 0x7FE00, 0x816E6, 0x81A00, 0x81BE6, 0x82400, 0x825E6, 0x82800,
    0x829E6, 0x82E00, 0x859DC, 0x85C00, 0x897E6, 0x899DC, 0x89CE6, 0x8A000, 0x8CAE6, 0x8CFDC,
    0x8D4E6, 0x8E200, 0x8E3DC, 0x8E4E6, 0x8E6DC, 0x8E7E6, 0x8E9DC, 0x8EAE6, 0x8EDDC, 0x8F01B,
    0x8F11C, 0x8F21D, 0x8F3E6, 0x8F6DC, 0x8F7E6, 0x8F9DC, 0x8FBE6, 0x90000, 0x93C07, 0x93D00,
    0x94D09, 0x94E00, 0x951E6, 0x952DC, 0x953E6, 0x95500, 0x9BC07, 0x9BD00, 0x9CD09, 0x9CE00,
    0x9FEE6, 0x9FF00, 0xA3C07, 0xA3D00, 0xA4D09, 0xA4E00, 0xABC07, 0xABD00, 0xACD09, 0xACE00,
    0xB3C07, 0xB3D00, 0xB4D09, 0xB4E00, 0xBCD09, 0xBCE00, 0xC3C07, 0xC3D00, 0xC4D09, 0xC4E00,
    0xC5554, 0xC565B, 0xC5700, 0xCBC07, 0xCBD00, 0xCCD09, 0xCCE00, 0xD3B09, 0xD3D00, 0xD4D09,
    0xD4E00, 0xDCA09, 0xDCB00, 0xE3867, 0xE3A09, 0xE3B00, 0xE486B, 0xE4C00, 0xEB876, 0xEBA09,
    0xEBB00, 0xEC87A, 0xECC00, 0xF18DC, 0xF1A00, 0xF35DC, 0xF3600, 0xF37DC, 0xF3800, 0xF39D8,
    0xF3A00, 0xF7181, 0xF7282, 0xF7300, 0xF7484, 0xF7500, 0xF7A82, 0xF7E00, 0xF8082, 0xF8100,
    0xF82E6, 0xF8409, 0xF8500, 0xF86E6, 0xF8800, 0xFC6DC, 0xFC700, 0x103707, 0x103800, 0x103909,
    0x103B00, 0x108DDC, 0x108E00, 0x135DE6, 0x136000, 0x171409, 0x171600, 0x173409, 0x173500, 0x17D209,
    0x17D300, 0x17DDE6, 0x17DE00, 0x18A9E4, 0x18AA00, 0x1939DE, 0x193AE6, 0x193BDC, 0x193C00, 0x1A17E6,
    0x1A18DC, 0x1A1900, 0x1A6009, 0x1A6100, 0x1A75E6, 0x1A7D00, 0x1A7FDC, 0x1A8000, 0x1AB0E6, 0x1AB5DC,
    0x1ABBE6, 0x1ABDDC, 0x1ABE00, 0x1ABFDC, 0x1AC1E6, 0x1AC3DC, 0x1AC5E6, 0x1ACADC, 0x1ACBE6, 0x1ACF00,
    0x1B3407, 0x1B3500, 0x1B4409, 0x1B4500, 0x1B6BE6, 0x1B6CDC, 0x1B6DE6, 0x1B7400, 0x1BAA09, 0x1BAC00,
    0x1BE607, 0x1BE700, 0x1BF209, 0x1BF400, 0x1C3707, 0x1C3800, 0x1CD0E6, 0x1CD300, 0x1CD401, 0x1CD5DC,
    0x1CDAE6, 0x1CDCDC, 0x1CE0E6, 0x1CE100, 0x1CE201, 0x1CE900, 0x1CEDDC, 0x1CEE00, 0x1CF4E6, 0x1CF500,
    0x1CF8E6, 0x1CFA00, 0x1DC0E6, 0x1DC2DC, 0x1DC3E6, 0x1DCADC, 0x1DCBE6, 0x1DCDEA, 0x1DCED6, 0x1DCFDC,
    0x1DD0CA, 0x1DD1E6, 0x1DF6E8, 0x1DF7E4, 0x1DF9DC, 0x1DFADA, 0x1DFBE6, 0x1DFCE9, 0x1DFDDC, 0x1DFEE6,
    0x1DFFDC, 0x1E0000, 0x20D0E6, 0x20D201, 0x20D4E6, 0x20D801, 0x20DBE6, 0x20DD00, 0x20E1E6, 0x20E200,
    0x20E501, 0x20E7E6, 0x20E8DC, 0x20E9E6, 0x20EA01, 0x20ECDC, 0x20F0E6, 0x20F100, 0x2CEFE6, 0x2CF200,
    0x2D7F09, 0x2D8000, 0x2DE0E6, 0x2E0000, 0x302ADA, 0x302BE4, 0x302CE8, 0x302DDE, 0x302EE0, 0x303000,
    0x309908, 0x309B00, 0xA66FE6, 0xA67000, 0xA674E6, 0xA67E00, 0xA69EE6, 0xA6A000, 0xA6F0E6, 0xA6F200,
    0xA80609, 0xA80700, 0xA82C09, 0xA82D00, 0xA8C409, 0xA8C500, 0xA8E0E6, 0xA8F200, 0xA92BDC, 0xA92E00,
    0xA95309, 0xA95400, 0xA9B307, 0xA9B400, 0xA9C009, 0xA9C100, 0xAAB0E6, 0xAAB100, 0xAAB2E6, 0xAAB4DC,
    0xAAB500, 0xAAB7E6, 0xAAB900, 0xAABEE6, 0xAAC000, 0xAAC1E6, 0xAAC200, 0xAAF609, 0xAAF700, 0xABED09,
    0xABEE00, 0xFB1E1A, 0xFB1F00, 0xFE20E6, 0xFE27DC, 0xFE2EE6, 0xFE3000, 0x101FDDC, 0x101FE00, 0x102E0DC,
    0x102E100, 0x10376E6, 0x1037B00, 0x10A0DDC, 0x10A0E00, 0x10A0FE6, 0x10A1000, 0x10A38E6, 0x10A3901, 0x10A3ADC,
    0x10A3B00, 0x10A3F09, 0x10A4000, 0x10AE5E6, 0x10AE6DC, 0x10AE700, 0x10D24E6, 0x10D2800, 0x10D69E6, 0x10D6E00,
    0x10EABE6, 0x10EAD00, 0x10EFDDC, 0x10F0000, 0x10F46DC, 0x10F48E6, 0x10F4BDC, 0x10F4CE6, 0x10F4DDC, 0x10F5100,
    0x10F82E6, 0x10F83DC, 0x10F84E6, 0x10F85DC, 0x10F8600, 0x1104609, 0x1104700, 0x1107009, 0x1107100, 0x1107F09,
    0x1108000, 0x110B909, 0x110BA07, 0x110BB00, 0x11100E6, 0x1110300, 0x1113309, 0x1113500, 0x1117307, 0x1117400,
    0x111C009, 0x111C100, 0x111CA07, 0x111CB00, 0x1123509, 0x1123607, 0x1123700, 0x112E907, 0x112EA09, 0x112EB00,
    0x1133B07, 0x1133D00, 0x1134D09, 0x1134E00, 0x11366E6, 0x1136D00, 0x11370E6, 0x1137500, 0x113CE09, 0x113D100,
    0x1144209, 0x1144300, 0x1144607, 0x1144700, 0x1145EE6, 0x1145F00, 0x114C209, 0x114C307, 0x114C400, 0x115BF09,
    0x115C007, 0x115C100, 0x1163F09, 0x1164000, 0x116B609, 0x116B707, 0x116B800, 0x1172B09, 0x1172C00, 0x1183909,
    0x1183A07, 0x1183B00, 0x1193D09, 0x1193F00, 0x1194307, 0x1194400, 0x119E009, 0x119E100, 0x11A3409, 0x11A3500,
    0x11A4709, 0x11A4800, 0x11A9909, 0x11A9A00, 0x11C3F09, 0x11C4000, 0x11D4207, 0x11D4300, 0x11D4409, 0x11D4600,
    0x11D9709, 0x11D9800, 0x11F4109, 0x11F4300, 0x1612F09, 0x1613000, 0x16AF001, 0x16AF500, 0x16B30E6, 0x16B3700,
    0x16FF006, 0x16FF200, 0x1BC9E01, 0x1BC9F00, 0x1D165D8, 0x1D16701, 0x1D16A00, 0x1D16DE2, 0x1D16ED8, 0x1D17300,
    0x1D17BDC, 0x1D18300, 0x1D185E6, 0x1D18ADC, 0x1D18C00, 0x1D1AAE6, 0x1D1AE00, 0x1D242E6, 0x1D24500, 0x1E000E6,
    0x1E00700, 0x1E008E6, 0x1E01900, 0x1E01BE6, 0x1E02200, 0x1E023E6, 0x1E02500, 0x1E026E6, 0x1E02B00, 0x1E08FE6,
    0x1E09000, 0x1E130E6, 0x1E13700, 0x1E2AEE6, 0x1E2AF00, 0x1E2ECE6, 0x1E2F000, 0x1E4ECE8, 0x1E4EEDC, 0x1E4EFE6,
    0x1E4F000, 0x1E5EEE6, 0x1E5EFDC, 0x1E5F000, 0x1E8D0DC, 0x1E8D700, 0x1E944E6, 0x1E94A07, 0x1E94B00
};
/* Runs of consecutive code points with a canonical decomposition: start << 12 |
   the index of its first one in lisa__nfc_dmap; the last entry ends the last run. */
#define LISA__NFC_N_DRUNS 242
static const uint32_t lisa__nfc_druns[LISA__NFC_N_DRUNS] = {
    0xC0000, 0xC7006, 0xD100F, 0xD9015, 0xE001A, 0xE7020, 0xF1029, 0xF902F, 0xFF034, 0x112045,
    0x128059, 0x134062, 0x139066, 0x14306C, 0x14C072, 0x154078, 0x16808A, 0x1A00A1, 0x1AF0A3, 0x1CD0A5,
    0x1DE0B5, 0x1E60BB, 0x1F40C6, 0x1F80C8, 0x21E0EC, 0x2260EE, 0x3400FC, 0x3430FE, 0x374100, 0x37E101,
    0x385102, 0x38C108, 0x38E109, 0x3AA10C, 0x3CA113, 0x3D3118, 0x40011A, 0x40311C, 0x40711D, 0x40C11E,
    0x419121, 0x439122, 0x450123, 0x453125, 0x457126, 0x45C127, 0x47612A, 0x4C112C, 0x4D012E, 0x4D6132,
    0x4DA134, 0x4E213A, 0x4EA140, 0x4F814C, 0x62214E, 0x6C0153, 0x6C2154, 0x6D3155, 0x929156, 0x931157,
    0x934158, 0x958159, 0x9CB161, 0x9DC163, 0x9DF165, 0xA33166, 0xA36167, 0xA59168, 0xA5E16B, 0xB4816C,
    0xB4B16D, 0xB5C16F, 0xB94171, 0xBCA172, 0xC48175, 0xCC0176, 0xCC7177, 0xCCA179, 0xD4A17B, 0xDDA17E,
    0xDDC17F, 0xF43182, 0xF4D183, 0xF52184, 0xF57185, 0xF5C186, 0xF69187, 0xF73188, 0xF75189, 0xF7818B,
    0xF8118C, 0xF9318D, 0xF9D18E, 0xFA218F, 0xFA7190, 0xFAC191, 0xFB9192, 0x1026193, 0x1B06194, 0x1B08195,
    0x1B0A196, 0x1B0C197, 0x1B0E198, 0x1B12199, 0x1B3B19A, 0x1B3D19B, 0x1B4019C, 0x1B4319E, 0x1E0019F, 0x1E9B239,
    0x1EA023A, 0x1F00294, 0x1F182AA, 0x1F202B0, 0x1F482D6, 0x1F502DC, 0x1F592E4, 0x1F5B2E5, 0x1F5D2E6, 0x1F5F2E7,
    0x1F80306, 0x1FB633B, 0x1FBE342, 0x1FC1343, 0x1FC6347, 0x1FD6355, 0x1FDD35B, 0x1FF236E, 0x1FF6371, 0x2000379,
    0x212637B, 0x212A37C, 0x219A37E, 0x21AE380, 0x21CD381, 0x2204384, 0x2209385, 0x220C386, 0x2224387, 0x2226388,
    0x2241389, 0x224438A, 0x224738B, 0x224938C, 0x226038D, 0x226238E, 0x226D38F, 0x2274394, 0x2278396, 0x2280398,
    0x228439A, 0x228839C, 0x22AC39E, 0x22E03A2, 0x22EA3A6, 0x23293AA, 0x2ADC3AC, 0x304C3AD, 0x304E3AE, 0x30503AF,
    0x30523B0, 0x30543B1, 0x30563B2, 0x30583B3, 0x305A3B4, 0x305C3B5, 0x305E3B6, 0x30603B7, 0x30623B8, 0x30653B9,
    0x30673BA, 0x30693BB, 0x30703BC, 0x30733BE, 0x30763C0, 0x30793C2, 0x307C3C4, 0x30943C6, 0x309E3C7, 0x30AC3C8,
    0x30AE3C9, 0x30B03CA, 0x30B23CB, 0x30B43CC, 0x30B63CD, 0x30B83CE, 0x30BA3CF, 0x30BC3D0, 0x30BE3D1, 0x30C03D2,
    0x30C23D3, 0x30C53D4, 0x30C73D5, 0x30C93D6, 0x30D03D7, 0x30D33D9, 0x30D63DB, 0x30D93DD, 0x30DC3DF, 0x30F43E1,
    0x30F73E2, 0x30FE3E6, 0xF9003E7, 0xFA104F5, 0xFA124F6, 0xFA154F7, 0xFA20501, 0xFA22502, 0xFA25503, 0xFA2A505,
    0xFA70549, 0xFB1D5B3, 0xFB1F5B4, 0xFB2A5B5, 0xFB385C2, 0xFB3E5C7, 0xFB405C8, 0xFB435CA, 0xFB465CC, 0x105C95D5,
    0x105E45D6, 0x1109A5D7, 0x1109C5D8, 0x110AB5D9, 0x1112E5DA, 0x1134B5DC, 0x113835DE, 0x113855DF, 0x1138E5E0, 0x113915E1,
    0x113C55E2, 0x113C75E3, 0x114BB5E5, 0x114BE5E7, 0x115BA5E8, 0x119385EA, 0x161215EB, 0x16D685F3, 0x1D15E5F6, 0x1D1BB5FD,
    0x2F800603, 0x2FA1E821
};
/* Each decomposition: the first code point | (the second's index in
   lisa__nfc_second + 1) << 18 (0: a singleton) | 1 << 25 when the pair is
   excluded from composition. */
#define LISA__NFC_N_DECOMP 2081
static const uint32_t lisa__nfc_dmap[LISA__NFC_N_DECOMP] = {
    0x40041, 0x80041, 0xC0041, 0x100041, 0x200041, 0x280041, 0x580043, 0x40045, 0x80045, 0xC0045,
    0x200045, 0x40049, 0x80049, 0xC0049, 0x200049, 0x10004E, 0x4004F, 0x8004F, 0xC004F, 0x10004F,
    0x20004F, 0x40055, 0x80055, 0xC0055, 0x200055, 0x80059, 0x40061, 0x80061, 0xC0061, 0x100061,
    0x200061, 0x280061, 0x580063, 0x40065, 0x80065, 0xC0065, 0x200065, 0x40069, 0x80069, 0xC0069,
    0x200069, 0x10006E, 0x4006F, 0x8006F, 0xC006F, 0x10006F, 0x20006F, 0x40075, 0x80075, 0xC0075,
    0x200075, 0x80079, 0x200079, 0x140041, 0x140061, 0x180041, 0x180061, 0x5C0041, 0x5C0061, 0x80043,
    0x80063, 0xC0043, 0xC0063, 0x1C0043, 0x1C0063, 0x300043, 0x300063, 0x300044, 0x300064, 0x140045,
    0x140065, 0x180045, 0x180065, 0x1C0045, 0x1C0065, 0x5C0045, 0x5C0065, 0x300045, 0x300065, 0xC0047,
    0xC0067, 0x180047, 0x180067, 0x1C0047, 0x1C0067, 0x580047, 0x580067, 0xC0048, 0xC0068, 0x100049,
    0x100069, 0x140049, 0x140069, 0x180049, 0x180069, 0x5C0049, 0x5C0069, 0x1C0049, 0xC004A, 0xC006A,
    0x58004B, 0x58006B, 0x8004C, 0x8006C, 0x58004C, 0x58006C, 0x30004C, 0x30006C, 0x8004E, 0x8006E,
    0x58004E, 0x58006E, 0x30004E, 0x30006E, 0x14004F, 0x14006F, 0x18004F, 0x18006F, 0x2C004F, 0x2C006F,
    0x80052, 0x80072, 0x580052, 0x580072, 0x300052, 0x300072, 0x80053, 0x80073, 0xC0053, 0xC0073,
    0x580053, 0x580073, 0x300053, 0x300073, 0x580054, 0x580074, 0x300054, 0x300074, 0x100055, 0x100075,
    0x140055, 0x140075, 0x180055, 0x180075, 0x280055, 0x280075, 0x2C0055, 0x2C0075, 0x5C0055, 0x5C0075,
    0xC0057, 0xC0077, 0xC0059, 0xC0079, 0x200059, 0x8005A, 0x8007A, 0x1C005A, 0x1C007A, 0x30005A,
    0x30007A, 0x44004F, 0x44006F, 0x440055, 0x440075, 0x300041, 0x300061, 0x300049, 0x300069, 0x30004F,
    0x30006F, 0x300055, 0x300075, 0x1400DC, 0x1400FC, 0x800DC, 0x800FC, 0x3000DC, 0x3000FC, 0x400DC,
    0x400FC, 0x1400C4, 0x1400E4, 0x140226, 0x140227, 0x1400C6, 0x1400E6, 0x300047, 0x300067, 0x30004B,
    0x30006B, 0x5C004F, 0x5C006F, 0x1401EA, 0x1401EB, 0x3001B7, 0x300292, 0x30006A, 0x80047, 0x80067,
    0x4004E, 0x4006E, 0x800C5, 0x800E5, 0x800C6, 0x800E6, 0x800D8, 0x800F8, 0x340041, 0x340061,
    0x380041, 0x380061, 0x340045, 0x340065, 0x380045, 0x380065, 0x340049, 0x340069, 0x380049, 0x380069,
    0x34004F, 0x34006F, 0x38004F, 0x38006F, 0x340052, 0x340072, 0x380052, 0x380072, 0x340055, 0x340075,
    0x380055, 0x380075, 0x540053, 0x540073, 0x540054, 0x540074, 0x300048, 0x300068, 0x1C0041, 0x1C0061,
    0x580045, 0x580065, 0x1400D6, 0x1400F6, 0x1400D5, 0x1400F5, 0x1C004F, 0x1C006F, 0x14022E, 0x14022F,
    0x140059, 0x140079, 0x300, 0x301, 0x313, 0x2080308, 0x2B9, 0x3B, 0x800A8, 0x80391,
    0xB7, 0x80395, 0x80397, 0x80399, 0x8039F, 0x803A5, 0x803A9, 0x803CA, 0x200399, 0x2003A5,
    0x803B1, 0x803B5, 0x803B7, 0x803B9, 0x803CB, 0x2003B9, 0x2003C5, 0x803BF, 0x803C5, 0x803C9,
    0x803D2, 0x2003D2, 0x40415, 0x200415, 0x80413, 0x200406, 0x8041A, 0x40418, 0x180423, 0x180418,
    0x180438, 0x40435, 0x200435, 0x80433, 0x200456, 0x8043A, 0x40438, 0x180443, 0x340474, 0x340475,
    0x180416, 0x180436, 0x180410, 0x180430, 0x200410, 0x200430, 0x180415, 0x180435, 0x2004D8, 0x2004D9,
    0x200416, 0x200436, 0x200417, 0x200437, 0x140418, 0x140438, 0x200418, 0x200438, 0x20041E, 0x20043E,
    0x2004E8, 0x2004E9, 0x20042D, 0x20044D, 0x140423, 0x140443, 0x200423, 0x200443, 0x2C0423, 0x2C0443,
    0x200427, 0x200447, 0x20042B, 0x20044B, 0x9C0627, 0xA00627, 0xA00648, 0xA40627, 0xA0064A, 0xA006D5,
    0xA006C1, 0xA006D2, 0xA80928, 0xA80930, 0xA80933, 0x2A80915, 0x2A80916, 0x2A80917, 0x2A8091C, 0x2A80921,
    0x2A80922, 0x2A8092B, 0x2A8092F, 0xB009C7, 0xB409C7, 0x2AC09A1, 0x2AC09A2, 0x2AC09AF, 0x2B80A32, 0x2B80A38,
    0x2B80A16, 0x2B80A17, 0x2B80A1C, 0x2B80A2B, 0xC40B47, 0xC00B47, 0xC80B47, 0x2BC0B21, 0x2BC0B22, 0xD00B92,
    0xCC0BC6, 0xCC0BC7, 0xD00BC6, 0xD40C46, 0xDC0CBF, 0xDC0CC6, 0xE00CC6, 0xD80CC6, 0xDC0CCA, 0xE40D46,
    0xE40D47, 0xE80D46, 0xEC0DD9, 0xF00DD9, 0xEC0DDC, 0xF40DD9, 0x3080F42, 0x3080F4C, 0x3080F51, 0x3080F56,
    0x3080F5B, 0x3040F40, 0x2F80F71, 0x2FC0F71, 0x3000FB2, 0x3000FB3, 0x3000F71, 0x3080F92, 0x3080F9C, 0x3080FA1,
    0x3080FA6, 0x3080FAB, 0x3040F90, 0x10C1025, 0x1101B05, 0x1101B07, 0x1101B09, 0x1101B0B, 0x1101B0D, 0x1101B11,
    0x1101B3A, 0x1101B3C, 0x1101B3E, 0x1101B3F, 0x1101B42, 0x500041, 0x500061, 0x1C0042, 0x1C0062, 0x480042,
    0x480062, 0x6C0042, 0x6C0062, 0x800C7, 0x800E7, 0x1C0044, 0x1C0064, 0x480044, 0x480064, 0x6C0044,
    0x6C0064, 0x580044, 0x580064, 0x600044, 0x600064, 0x40112, 0x40113, 0x80112, 0x80113, 0x600045,
    0x600065, 0x680045, 0x680065, 0x180228, 0x180229, 0x1C0046, 0x1C0066, 0x140047, 0x140067, 0x1C0048,
    0x1C0068, 0x480048, 0x480068, 0x200048, 0x200068, 0x580048, 0x580068, 0x640048, 0x640068, 0x680049,
    0x680069, 0x800CF, 0x800EF, 0x8004B, 0x8006B, 0x48004B, 0x48006B, 0x6C004B, 0x6C006B, 0x48004C,
    0x48006C, 0x141E36, 0x141E37, 0x6C004C, 0x6C006C, 0x60004C, 0x60006C, 0x8004D, 0x8006D, 0x1C004D,
    0x1C006D, 0x48004D, 0x48006D, 0x1C004E, 0x1C006E, 0x48004E, 0x48006E, 0x6C004E, 0x6C006E, 0x60004E,
    0x60006E, 0x800D5, 0x800F5, 0x2000D5, 0x2000F5, 0x4014C, 0x4014D, 0x8014C, 0x8014D, 0x80050,
    0x80070, 0x1C0050, 0x1C0070, 0x1C0052, 0x1C0072, 0x480052, 0x480072, 0x141E5A, 0x141E5B, 0x6C0052,
    0x6C0072, 0x1C0053, 0x1C0073, 0x480053, 0x480073, 0x1C015A, 0x1C015B, 0x1C0160, 0x1C0161, 0x1C1E62,
    0x1C1E63, 0x1C0054, 0x1C0074, 0x480054, 0x480074, 0x6C0054, 0x6C0074, 0x600054, 0x600074, 0x4C0055,
    0x4C0075, 0x680055, 0x680075, 0x600055, 0x600075, 0x80168, 0x80169, 0x20016A, 0x20016B, 0x100056,
    0x100076, 0x480056, 0x480076, 0x40057, 0x40077, 0x80057, 0x80077, 0x200057, 0x200077, 0x1C0057,
    0x1C0077, 0x480057, 0x480077, 0x1C0058, 0x1C0078, 0x200058, 0x200078, 0x1C0059, 0x1C0079, 0xC005A,
    0xC007A, 0x48005A, 0x48007A, 0x6C005A, 0x6C007A, 0x6C0068, 0x200074, 0x280077, 0x280079, 0x1C017F,
    0x480041, 0x480061, 0x240041, 0x240061, 0x800C2, 0x800E2, 0x400C2, 0x400E2, 0x2400C2, 0x2400E2,
    0x1000C2, 0x1000E2, 0xC1EA0, 0xC1EA1, 0x80102, 0x80103, 0x40102, 0x40103, 0x240102, 0x240103,
    0x100102, 0x100103, 0x181EA0, 0x181EA1, 0x480045, 0x480065, 0x240045, 0x240065, 0x100045, 0x100065,
    0x800CA, 0x800EA, 0x400CA, 0x400EA, 0x2400CA, 0x2400EA, 0x1000CA, 0x1000EA, 0xC1EB8, 0xC1EB9,
    0x240049, 0x240069, 0x480049, 0x480069, 0x48004F, 0x48006F, 0x24004F, 0x24006F, 0x800D4, 0x800F4,
    0x400D4, 0x400F4, 0x2400D4, 0x2400F4, 0x1000D4, 0x1000F4, 0xC1ECC, 0xC1ECD, 0x801A0, 0x801A1,
    0x401A0, 0x401A1, 0x2401A0, 0x2401A1, 0x1001A0, 0x1001A1, 0x4801A0, 0x4801A1, 0x480055, 0x480075,
    0x240055, 0x240075, 0x801AF, 0x801B0, 0x401AF, 0x401B0, 0x2401AF, 0x2401B0, 0x1001AF, 0x1001B0,
    0x4801AF, 0x4801B0, 0x40059, 0x40079, 0x480059, 0x480079, 0x240059, 0x240079, 0x100059, 0x100079,
    0x3C03B1, 0x4003B1, 0x41F00, 0x41F01, 0x81F00, 0x81F01, 0x741F00, 0x741F01, 0x3C0391, 0x400391,
    0x41F08, 0x41F09, 0x81F08, 0x81F09, 0x741F08, 0x741F09, 0x3C03B5, 0x4003B5, 0x41F10, 0x41F11,
    0x81F10, 0x81F11, 0x3C0395, 0x400395, 0x41F18, 0x41F19, 0x81F18, 0x81F19, 0x3C03B7, 0x4003B7,
    0x41F20, 0x41F21, 0x81F20, 0x81F21, 0x741F20, 0x741F21, 0x3C0397, 0x400397, 0x41F28, 0x41F29,
    0x81F28, 0x81F29, 0x741F28, 0x741F29, 0x3C03B9, 0x4003B9, 0x41F30, 0x41F31, 0x81F30, 0x81F31,
    0x741F30, 0x741F31, 0x3C0399, 0x400399, 0x41F38, 0x41F39, 0x81F38, 0x81F39, 0x741F38, 0x741F39,
    0x3C03BF, 0x4003BF, 0x41F40, 0x41F41, 0x81F40, 0x81F41, 0x3C039F, 0x40039F, 0x41F48, 0x41F49,
    0x81F48, 0x81F49, 0x3C03C5, 0x4003C5, 0x41F50, 0x41F51, 0x81F50, 0x81F51, 0x741F50, 0x741F51,
    0x4003A5, 0x41F59, 0x81F59, 0x741F59, 0x3C03C9, 0x4003C9, 0x41F60, 0x41F61, 0x81F60, 0x81F61,
    0x741F60, 0x741F61, 0x3C03A9, 0x4003A9, 0x41F68, 0x41F69, 0x81F68, 0x81F69, 0x741F68, 0x741F69,
    0x403B1, 0x3AC, 0x403B5, 0x3AD, 0x403B7, 0x3AE, 0x403B9, 0x3AF, 0x403BF, 0x3CC,
    0x403C5, 0x3CD, 0x403C9, 0x3CE, 0x781F00, 0x781F01, 0x781F02, 0x781F03, 0x781F04, 0x781F05,
    0x781F06, 0x781F07, 0x781F08, 0x781F09, 0x781F0A, 0x781F0B, 0x781F0C, 0x781F0D, 0x781F0E, 0x781F0F,
    0x781F20, 0x781F21, 0x781F22, 0x781F23, 0x781F24, 0x781F25, 0x781F26, 0x781F27, 0x781F28, 0x781F29,
    0x781F2A, 0x781F2B, 0x781F2C, 0x781F2D, 0x781F2E, 0x781F2F, 0x781F60, 0x781F61, 0x781F62, 0x781F63,
    0x781F64, 0x781F65, 0x781F66, 0x781F67, 0x781F68, 0x781F69, 0x781F6A, 0x781F6B, 0x781F6C, 0x781F6D,
    0x781F6E, 0x781F6F, 0x1803B1, 0x1403B1, 0x781F70, 0x7803B1, 0x7803AC, 0x7403B1, 0x781FB6, 0x180391,
    0x140391, 0x40391, 0x386, 0x780391, 0x3B9, 0x7400A8, 0x781F74, 0x7803B7, 0x7803AE, 0x7403B7,
    0x781FC6, 0x40395, 0x388, 0x40397, 0x389, 0x780397, 0x41FBF, 0x81FBF, 0x741FBF, 0x1803B9,
    0x1403B9, 0x403CA, 0x390, 0x7403B9, 0x7403CA, 0x180399, 0x140399, 0x40399, 0x38A, 0x41FFE,
    0x81FFE, 0x741FFE, 0x1803C5, 0x1403C5, 0x403CB, 0x3B0, 0x3C03C1, 0x4003C1, 0x7403C5, 0x7403CB,
    0x1803A5, 0x1403A5, 0x403A5, 0x38E, 0x4003A1, 0x400A8, 0x385, 0x60, 0x781F7C, 0x7803C9,
    0x7803CE, 0x7403C9, 0x781FF6, 0x4039F, 0x38C, 0x403A9, 0x38F, 0x7803A9, 0xB4, 0x2002,
    0x2003, 0x3A9, 0x4B, 0xC5, 0x702190, 0x702192, 0x702194, 0x7021D0, 0x7021D4, 0x7021D2,
    0x702203, 0x702208, 0x70220B, 0x702223, 0x702225, 0x70223C, 0x702243, 0x702245, 0x702248, 0x70003D,
    0x702261, 0x70224D, 0x70003C, 0x70003E, 0x702264, 0x702265, 0x702272, 0x702273, 0x702276, 0x702277,
    0x70227A, 0x70227B, 0x702282, 0x702283, 0x702286, 0x702287, 0x7022A2, 0x7022A8, 0x7022A9, 0x7022AB,
    0x70227C, 0x70227D, 0x702291, 0x702292, 0x7022B2, 0x7022B3, 0x7022B4, 0x7022B5, 0x3008, 0x3009,
    0x2702ADD, 0x114304B, 0x114304D, 0x114304F, 0x1143051, 0x1143053, 0x1143055, 0x1143057, 0x1143059, 0x114305B,
    0x114305D, 0x114305F, 0x1143061, 0x1143064, 0x1143066, 0x1143068, 0x114306F, 0x118306F, 0x1143072, 0x1183072,
    0x1143075, 0x1183075, 0x1143078, 0x1183078, 0x114307B, 0x118307B, 0x1143046, 0x114309D, 0x11430AB, 0x11430AD,
    0x11430AF, 0x11430B1, 0x11430B3, 0x11430B5, 0x11430B7, 0x11430B9, 0x11430BB, 0x11430BD, 0x11430BF, 0x11430C1,
    0x11430C4, 0x11430C6, 0x11430C8, 0x11430CF, 0x11830CF, 0x11430D2, 0x11830D2, 0x11430D5, 0x11830D5, 0x11430D8,
    0x11830D8, 0x11430DB, 0x11830DB, 0x11430A6, 0x11430EF, 0x11430F0, 0x11430F1, 0x11430F2, 0x11430FD, 0x8C48,
    0x66F4, 0x8ECA, 0x8CC8, 0x6ED1, 0x4E32, 0x53E5, 0x9F9C, 0x9F9C, 0x5951, 0x91D1,
    0x5587, 0x5948, 0x61F6, 0x7669, 0x7F85, 0x863F, 0x87BA, 0x88F8, 0x908F, 0x6A02,
    0x6D1B, 0x70D9, 0x73DE, 0x843D, 0x916A, 0x99F1, 0x4E82, 0x5375, 0x6B04, 0x721B,
    0x862D, 0x9E1E, 0x5D50, 0x6FEB, 0x85CD, 0x8964, 0x62C9, 0x81D8, 0x881F, 0x5ECA,
    0x6717, 0x6D6A, 0x72FC, 0x90CE, 0x4F86, 0x51B7, 0x52DE, 0x64C4, 0x6AD3, 0x7210,
    0x76E7, 0x8001, 0x8606, 0x865C, 0x8DEF, 0x9732, 0x9B6F, 0x9DFA, 0x788C, 0x797F,
    0x7DA0, 0x83C9, 0x9304, 0x9E7F, 0x8AD6, 0x58DF, 0x5F04, 0x7C60, 0x807E, 0x7262,
    0x78CA, 0x8CC2, 0x96F7, 0x58D8, 0x5C62, 0x6A13, 0x6DDA, 0x6F0F, 0x7D2F, 0x7E37,
    0x964B, 0x52D2, 0x808B, 0x51DC, 0x51CC, 0x7A1C, 0x7DBE, 0x83F1, 0x9675, 0x8B80,
    0x62CF, 0x6A02, 0x8AFE, 0x4E39, 0x5BE7, 0x6012, 0x7387, 0x7570, 0x5317, 0x78FB,
    0x4FBF, 0x5FA9, 0x4E0D, 0x6CCC, 0x6578, 0x7D22, 0x53C3, 0x585E, 0x7701, 0x8449,
    0x8AAA, 0x6BBA, 0x8FB0, 0x6C88, 0x62FE, 0x82E5, 0x63A0, 0x7565, 0x4EAE, 0x5169,
    0x51C9, 0x6881, 0x7CE7, 0x826F, 0x8AD2, 0x91CF, 0x52F5, 0x5442, 0x5973, 0x5EEC,
    0x65C5, 0x6FFE, 0x792A, 0x95AD, 0x9A6A, 0x9E97, 0x9ECE, 0x529B, 0x66C6, 0x6B77,
    0x8F62, 0x5E74, 0x6190, 0x6200, 0x649A, 0x6F23, 0x7149, 0x7489, 0x79CA, 0x7DF4,
    0x806F, 0x8F26, 0x84EE, 0x9023, 0x934A, 0x5217, 0x52A3, 0x54BD, 0x70C8, 0x88C2,
    0x8AAA, 0x5EC9, 0x5FF5, 0x637B, 0x6BAE, 0x7C3E, 0x7375, 0x4EE4, 0x56F9, 0x5BE7,
    0x5DBA, 0x601C, 0x73B2, 0x7469, 0x7F9A, 0x8046, 0x9234, 0x96F6, 0x9748, 0x9818,
    0x4F8B, 0x79AE, 0x91B4, 0x96B8, 0x60E1, 0x4E86, 0x50DA, 0x5BEE, 0x5C3F, 0x6599,
    0x6A02, 0x71CE, 0x7642, 0x84FC, 0x907C, 0x9F8D, 0x6688, 0x962E, 0x5289, 0x677B,
    0x67F3, 0x6D41, 0x6E9C, 0x7409, 0x7559, 0x786B, 0x7D10, 0x985E, 0x516D, 0x622E,
    0x9678, 0x502B, 0x5D19, 0x6DEA, 0x8F2A, 0x5F8B, 0x6144, 0x6817, 0x7387, 0x9686,
    0x5229, 0x540F, 0x5C65, 0x6613, 0x674E, 0x68A8, 0x6CE5, 0x7406, 0x75E2, 0x7F79,
    0x88CF, 0x88E1, 0x91CC, 0x96E2, 0x533F, 0x6EBA, 0x541D, 0x71D0, 0x7498, 0x85FA,
    0x96A3, 0x9C57, 0x9E9F, 0x6797, 0x6DCB, 0x81E8, 0x7ACB, 0x7B20, 0x7C92, 0x72C0,
    0x7099, 0x8B58, 0x4EC0, 0x8336, 0x523A, 0x5207, 0x5EA6, 0x62D3, 0x7CD6, 0x5B85,
    0x6D1E, 0x66B4, 0x8F3B, 0x884C, 0x964D, 0x898B, 0x5ED3, 0x5140, 0x55C0, 0x585A,
    0x6674, 0x51DE, 0x732A, 0x76CA, 0x793C, 0x795E, 0x7965, 0x798F, 0x9756, 0x7CBE,
    0x7FBD, 0x8612, 0x8AF8, 0x9038, 0x90FD, 0x98EF, 0x98FC, 0x9928, 0x9DB4, 0x90DE,
    0x96B7, 0x4FAE, 0x50E7, 0x514D, 0x52C9, 0x52E4, 0x5351, 0x559D, 0x5606, 0x5668,
    0x5840, 0x58A8, 0x5C64, 0x5C6E, 0x6094, 0x6168, 0x618E, 0x61F2, 0x654F, 0x65E2,
    0x6691, 0x6885, 0x6D77, 0x6E1A, 0x6F22, 0x716E, 0x722B, 0x7422, 0x7891, 0x793E,
    0x7949, 0x7948, 0x7950, 0x7956, 0x795D, 0x798D, 0x798E, 0x7A40, 0x7A81, 0x7BC0,
    0x7DF4, 0x7E09, 0x7E41, 0x7F72, 0x8005, 0x81ED, 0x8279, 0x8279, 0x8457, 0x8910,
    0x8996, 0x8B01, 0x8B39, 0x8CD3, 0x8D08, 0x8FB6, 0x9038, 0x96E3, 0x97FF, 0x983B,
    0x6075, 0x242EE, 0x8218, 0x4E26, 0x51B5, 0x5168, 0x4F80, 0x5145, 0x5180, 0x52C7,
    0x52FA, 0x559D, 0x5555, 0x5599, 0x55E2, 0x585A, 0x58B3, 0x5944, 0x5954, 0x5A62,
    0x5B28, 0x5ED2, 0x5ED9, 0x5F69, 0x5FAD, 0x60D8, 0x614E, 0x6108, 0x618E, 0x6160,
    0x61F2, 0x6234, 0x63C4, 0x641C, 0x6452, 0x6556, 0x6674, 0x6717, 0x671B, 0x6756,
    0x6B79, 0x6BBA, 0x6D41, 0x6EDB, 0x6ECB, 0x6F22, 0x701E, 0x716E, 0x77A7, 0x7235,
    0x72AF, 0x732A, 0x7471, 0x7506, 0x753B, 0x761D, 0x761F, 0x76CA, 0x76DB, 0x76F4,
    0x774A, 0x7740, 0x78CC, 0x7AB1, 0x7BC0, 0x7C7B, 0x7D5B, 0x7DF4, 0x7F3E, 0x8005,
    0x8352, 0x83EF, 0x8779, 0x8941, 0x8986, 0x8996, 0x8ABF, 0x8AF8, 0x8ACB, 0x8B01,
    0x8AFE, 0x8AED, 0x8B39, 0x8B8A, 0x8D08, 0x8F38, 0x9072, 0x9199, 0x9276, 0x967C,
    0x96E3, 0x9756, 0x97DB, 0x97FF, 0x980B, 0x983B, 0x9B12, 0x9F9C, 0x2284A, 0x22844,
    0x233D5, 0x3B9D, 0x4018, 0x4039, 0x25249, 0x25CD0, 0x27ED3, 0x9F43, 0x9F8E, 0x27C05D9,
    0x28005F2, 0x29405E9, 0x29805E9, 0x294FB49, 0x298FB49, 0x28005D0, 0x28405D0, 0x28C05D0, 0x28C05D1, 0x28C05D2,
    0x28C05D3, 0x28C05D4, 0x28C05D5, 0x28C05D6, 0x28C05D8, 0x28C05D9, 0x28C05DA, 0x28C05DB, 0x28C05DC, 0x28C05DE,
    0x28C05E0, 0x28C05E1, 0x28C05E3, 0x28C05E4, 0x28C05E6, 0x28C05E7, 0x28C05E8, 0x28C05E9, 0x28C05EA, 0x28805D5,
    0x29005D1, 0x29005DB, 0x29005E4, 0x1D05D2, 0x1D05DA, 0x11D1099, 0x11D109B, 0x11D10A5, 0x1211131, 0x1211132,
    0x1251347, 0x1291347, 0x1391382, 0x1311384, 0x135138B, 0x1391390, 0x13513C2, 0x12D13C2, 0x13913C2, 0x14114B9,
    0x13D14B9, 0x14514B9, 0x14915B8, 0x14915B9, 0x14D1935, 0x151611E, 0x15D611E, 0x155611E, 0x1556129, 0x159611E,
    0x1556121, 0x1556122, 0x1596121, 0x1616D67, 0x1616D63, 0x1616D69, 0x365D157, 0x365D158, 0x369D15F, 0x36DD15F,
    0x371D15F, 0x375D15F, 0x379D15F, 0x365D1B9, 0x365D1BA, 0x369D1BB, 0x369D1BC, 0x36DD1BB, 0x36DD1BC, 0x4E3D,
    0x4E38, 0x4E41, 0x20122, 0x4F60, 0x4FAE, 0x4FBB, 0x5002, 0x507A, 0x5099, 0x50E7,
    0x50CF, 0x349E, 0x2063A, 0x514D, 0x5154, 0x5164, 0x5177, 0x2051C, 0x34B9, 0x5167,
    0x518D, 0x2054B, 0x5197, 0x51A4, 0x4ECC, 0x51AC, 0x51B5, 0x291DF, 0x51F5, 0x5203,
    0x34DF, 0x523B, 0x5246, 0x5272, 0x5277, 0x3515, 0x52C7, 0x52C9, 0x52E4, 0x52FA,
    0x5305, 0x5306, 0x5317, 0x5349, 0x5351, 0x535A, 0x5373, 0x537D, 0x537F, 0x537F,
    0x537F, 0x20A2C, 0x7070, 0x53CA, 0x53DF, 0x20B63, 0x53EB, 0x53F1, 0x5406, 0x549E,
    0x5438, 0x5448, 0x5468, 0x54A2, 0x54F6, 0x5510, 0x5553, 0x5563, 0x5584, 0x5584,
    0x5599, 0x55AB, 0x55B3, 0x55C2, 0x5716, 0x5606, 0x5717, 0x5651, 0x5674, 0x5207,
    0x58EE, 0x57CE, 0x57F4, 0x580D, 0x578B, 0x5832, 0x5831, 0x58AC, 0x214E4, 0x58F2,
    0x58F7, 0x5906, 0x591A, 0x5922, 0x5962, 0x216A8, 0x216EA, 0x59EC, 0x5A1B, 0x5A27,
    0x59D8, 0x5A66, 0x36EE, 0x36FC, 0x5B08, 0x5B3E, 0x5B3E, 0x219C8, 0x5BC3, 0x5BD8,
    0x5BE7, 0x5BF3, 0x21B18, 0x5BFF, 0x5C06, 0x5F53, 0x5C22, 0x3781, 0x5C60, 0x5C6E,
    0x5CC0, 0x5C8D, 0x21DE4, 0x5D43, 0x21DE6, 0x5D6E, 0x5D6B, 0x5D7C, 0x5DE1, 0x5DE2,
    0x382F, 0x5DFD, 0x5E28, 0x5E3D, 0x5E69, 0x3862, 0x22183, 0x387C, 0x5EB0, 0x5EB3,
    0x5EB6, 0x5ECA, 0x2A392, 0x5EFE, 0x22331, 0x22331, 0x8201, 0x5F22, 0x5F22, 0x38C7,
    0x232B8, 0x261DA, 0x5F62, 0x5F6B, 0x38E3, 0x5F9A, 0x5FCD, 0x5FD7, 0x5FF9, 0x6081,
    0x393A, 0x391C, 0x6094, 0x226D4, 0x60C7, 0x6148, 0x614C, 0x614E, 0x614C, 0x617A,
    0x618E, 0x61B2, 0x61A4, 0x61AF, 0x61DE, 0x61F2, 0x61F6, 0x6210, 0x621B, 0x625D,
    0x62B1, 0x62D4, 0x6350, 0x22B0C, 0x633D, 0x62FC, 0x6368, 0x6383, 0x63E4, 0x22BF1,
    0x6422, 0x63C5, 0x63A9, 0x3A2E, 0x6469, 0x647E, 0x649D, 0x6477, 0x3A6C, 0x654F,
    0x656C, 0x2300A, 0x65E3, 0x66F8, 0x6649, 0x3B19, 0x6691, 0x3B08, 0x3AE4, 0x5192,
    0x5195, 0x6700, 0x669C, 0x80AD, 0x43D9, 0x6717, 0x671B, 0x6721, 0x675E, 0x6753,
    0x233C3, 0x3B49, 0x67FA, 0x6785, 0x6852, 0x6885, 0x2346D, 0x688E, 0x681F, 0x6914,
    0x3B9D, 0x6942, 0x69A3, 0x69EA, 0x6AA8, 0x236A3, 0x6ADB, 0x3C18, 0x6B21, 0x238A7,
    0x6B54, 0x3C4E, 0x6B72, 0x6B9F, 0x6BBA, 0x6BBB, 0x23A8D, 0x21D0B, 0x23AFA, 0x6C4E,
    0x23CBC, 0x6CBF, 0x6CCD, 0x6C67, 0x6D16, 0x6D3E, 0x6D77, 0x6D41, 0x6D69, 0x6D78,
    0x6D85, 0x23D1E, 0x6D34, 0x6E2F, 0x6E6E, 0x3D33, 0x6ECB, 0x6EC7, 0x23ED1, 0x6DF9,
    0x6F6E, 0x23F5E, 0x23F8E, 0x6FC6, 0x7039, 0x701E, 0x701B, 0x3D96, 0x704A, 0x707D,
    0x7077, 0x70AD, 0x20525, 0x7145, 0x24263, 0x719C, 0x243AB, 0x7228, 0x7235, 0x7250,
    0x24608, 0x7280, 0x7295, 0x24735, 0x24814, 0x737A, 0x738B, 0x3EAC, 0x73A5, 0x3EB8,
    0x3EB8, 0x7447, 0x745C, 0x7471, 0x7485, 0x74CA, 0x3F1B, 0x7524, 0x24C36, 0x753E,
    0x24C92, 0x7570, 0x2219F, 0x7610, 0x24FA1, 0x24FB8, 0x25044, 0x3FFC, 0x4008, 0x76F4,
    0x250F3, 0x250F2, 0x25119, 0x25133, 0x771E, 0x771F, 0x771F, 0x774A, 0x4039, 0x778B,
    0x4046, 0x4096, 0x2541D, 0x784E, 0x788C, 0x78CC, 0x40E3, 0x25626, 0x7956, 0x2569A,
    0x256C5, 0x798F, 0x79EB, 0x412F, 0x7A40, 0x7A4A, 0x7A4F, 0x2597C, 0x25AA7, 0x25AA7,
    0x7AEE, 0x4202, 0x25BAB, 0x7BC6, 0x7BC9, 0x4227, 0x25C80, 0x7CD2, 0x42A0, 0x7CE8,
    0x7CE3, 0x7D00, 0x25F86, 0x7D63, 0x4301, 0x7DC7, 0x7E02, 0x7E45, 0x4334, 0x26228,
    0x26247, 0x4359, 0x262D9, 0x7F7A, 0x2633E, 0x7F95, 0x7FFA, 0x8005, 0x264DA, 0x26523,
    0x8060, 0x265A8, 0x8070, 0x2335F, 0x43D5, 0x80B2, 0x8103, 0x440B, 0x813E, 0x5AB5,
    0x267A7, 0x267B5, 0x23393, 0x2339C, 0x8201, 0x8204, 0x8F9E, 0x446B, 0x8291, 0x828B,
    0x829D, 0x52B3, 0x82B1, 0x82B3, 0x82BD, 0x82E6, 0x26B3C, 0x82E5, 0x831D, 0x8363,
    0x83AD, 0x8323, 0x83BD, 0x83E7, 0x8457, 0x8353, 0x83CA, 0x83CC, 0x83DC, 0x26C36,
    0x26D6B, 0x26CD5, 0x452B, 0x84F1, 0x84F3, 0x8516, 0x273CA, 0x8564, 0x26F2C, 0x455D,
    0x4561, 0x26FB1, 0x270D2, 0x456B, 0x8650, 0x865C, 0x8667, 0x8669, 0x86A9, 0x8688,
    0x870E, 0x86E2, 0x8779, 0x8728, 0x876B, 0x8786, 0x45D7, 0x87E1, 0x8801, 0x45F9,
    0x8860, 0x8863, 0x27667, 0x88D7, 0x88DE, 0x4635, 0x88FA, 0x34BB, 0x278AE, 0x27966,
    0x46BE, 0x46C7, 0x8AA0, 0x8AED, 0x8B8A, 0x8C55, 0x27CA8, 0x8CAB, 0x8CC1, 0x8D1B,
    0x8D77, 0x27F2F, 0x20804, 0x8DCB, 0x8DBC, 0x8DF0, 0x208DE, 0x8ED4, 0x8F38, 0x285D2,
    0x285ED, 0x9094, 0x90F1, 0x9111, 0x2872E, 0x911B, 0x9238, 0x92D7, 0x92D8, 0x927C,
    0x93F9, 0x9415, 0x28BFA, 0x958B, 0x4995, 0x95B7, 0x28D77, 0x49E6, 0x96C3, 0x5DB2,
    0x9723, 0x29145, 0x2921A, 0x4A6E, 0x4A76, 0x97E0, 0x2940A, 0x4AB2, 0x29496, 0x980B,
    0x980B, 0x9829, 0x295B6, 0x98E2, 0x4B33, 0x9929, 0x99A7, 0x99C2, 0x99FE, 0x4BCE,
    0x29B30, 0x9B12, 0x9C40, 0x9CFD, 0x4CCE, 0x4CED, 0x9D67, 0x2A0CE, 0x4CF8, 0x2A105,
    0x2A20E, 0x2A291, 0x9EBB, 0x4D56, 0x9EF9, 0x9EFE, 0x9F05, 0x9F0F, 0x9F16, 0x9F3B,
    0x2A600
};
static const uint32_t lisa__nfc_second[94] = {
    0x300, 0x301, 0x302, 0x303, 0x304, 0x306, 0x307, 0x308, 0x309, 0x30A,
    0x30B, 0x30C, 0x30F, 0x311, 0x313, 0x314, 0x31B, 0x323, 0x324, 0x325,
    0x326, 0x327, 0x328, 0x32D, 0x32E, 0x330, 0x331, 0x338, 0x342, 0x345,
    0x5B4, 0x5B7, 0x5B8, 0x5B9, 0x5BC, 0x5BF, 0x5C1, 0x5C2, 0x653, 0x654,
    0x655, 0x93C, 0x9BC, 0x9BE, 0x9D7, 0xA3C, 0xB3C, 0xB3E, 0xB56, 0xB57,
    0xBBE, 0xBD7, 0xC56, 0xCC2, 0xCD5, 0xCD6, 0xD3E, 0xD57, 0xDCA, 0xDCF,
    0xDDF, 0xF72, 0xF74, 0xF80, 0xFB5, 0xFB7, 0x102E, 0x1B35, 0x3099, 0x309A,
    0x110BA, 0x11127, 0x1133E, 0x11357, 0x113B8, 0x113BB, 0x113C2, 0x113C9, 0x114B0, 0x114BA,
    0x114BD, 0x115AF, 0x11930, 0x1611E, 0x1611F, 0x16120, 0x16129, 0x16D67, 0x1D165, 0x1D16E,
    0x1D16F, 0x1D170, 0x1D171, 0x1D172
};
/* The decompositions that compose back, as indices into lisa__nfc_dmap, sorted
   by (second, first). */
#define LISA__NFC_N_COMP 961
static const unsigned short lisa__nfc_comp[LISA__NFC_N_COMP] = {
    0, 7, 11, 200, 16, 21, 543, 652, 26, 33, 37, 201, 42, 47, 544, 653,
    875, 576, 602, 620, 179, 577, 603, 621, 180, 586, 587, 435, 436, 495, 496, 630,
    631, 644, 645, 831, 841, 843, 857, 883, 872, 885, 760, 762, 764, 766, 768, 770,
    772, 851, 864, 282, 287, 291, 296, 662, 663, 670, 671, 678, 679, 684, 685, 690,
    691, 698, 699, 706, 707, 714, 715, 722, 723, 728, 729, 734, 735, 741, 746, 747,
    754, 755, 846, 859, 1, 59, 8, 198, 12, 463, 102, 477, 108, 17, 499, 120,
    126, 22, 545, 25, 155, 27, 60, 34, 199, 38, 464, 103, 478, 109, 43, 500,
    121, 127, 48, 546, 51, 156, 258, 574, 202, 204, 423, 600, 461, 618, 491, 206,
    175, 575, 203, 205, 424, 601, 462, 619, 492, 207, 176, 584, 585, 437, 438, 497,
    498, 535, 536, 628, 629, 642, 643, 259, 261, 262, 263, 264, 265, 266, 270, 271,
    272, 273, 277, 278, 279, 267, 274, 280, 284, 286, 293, 295, 664, 665, 672, 673,
    680, 681, 686, 687, 692, 693, 700, 701, 708, 709, 716, 717, 724, 725, 730, 731,
    736, 737, 742, 748, 749, 756, 757, 847, 860, 2, 61, 9, 79, 87, 13, 98,
    18, 128, 23, 150, 152, 559, 28, 62, 35, 80, 88, 39, 99, 44, 129, 49,
    151, 153, 560, 582, 583, 608, 609, 626, 627, 3, 598, 89, 15, 19, 138, 539,
    658, 29, 599, 90, 41, 45, 139, 540, 659, 580, 606, 624, 581, 607, 625, 590,
    591, 634, 635, 648, 649, 53, 69, 447, 91, 114, 140, 250, 54, 70, 448, 92,
    115, 141, 251, 181, 185, 244, 242, 173, 182, 186, 245, 243, 174, 193, 194, 183,
    184, 248, 249, 830, 856, 871, 823, 850, 863, 314, 324, 315, 325, 471, 472, 507,
    508, 55, 71, 81, 93, 116, 142, 56, 72, 82, 94, 117, 143, 443, 444, 829,
    855, 870, 822, 849, 862, 302, 306, 300, 289, 288, 303, 307, 301, 290, 297, 592,
    593, 238, 417, 63, 425, 73, 445, 83, 449, 97, 479, 483, 246, 501, 503, 511,
    521, 549, 553, 557, 157, 239, 418, 64, 426, 74, 446, 84, 450, 480, 484, 247,
    502, 504, 512, 522, 550, 554, 558, 158, 515, 516, 517, 518, 569, 519, 520, 1493,
    1494, 4, 10, 453, 14, 20, 24, 547, 555, 154, 30, 36, 454, 40, 46, 566,
    50, 548, 556, 52, 493, 494, 537, 538, 268, 269, 275, 276, 281, 285, 304, 283,
    310, 312, 316, 318, 326, 330, 332, 322, 305, 292, 311, 313, 317, 319, 327, 331,
    333, 323, 294, 308, 309, 320, 321, 572, 596, 610, 616, 640, 656, 573, 597, 611,
    617, 641, 657, 578, 604, 622, 579, 605, 623, 588, 589, 632, 633, 646, 647, 5,
    144, 31, 145, 567, 568, 118, 146, 119, 147, 328, 329, 165, 65, 67, 77, 187,
    236, 167, 189, 106, 112, 169, 124, 132, 136, 171, 159, 166, 66, 68, 78, 188,
    237, 168, 197, 190, 107, 113, 170, 125, 133, 137, 172, 160, 177, 178, 195, 196,
    208, 212, 216, 220, 224, 228, 209, 213, 217, 221, 225, 229, 298, 299, 210, 214,
    218, 222, 226, 230, 211, 215, 219, 223, 227, 231, 668, 682, 696, 712, 726, 752,
    660, 676, 688, 704, 720, 866, 732, 744, 669, 683, 697, 713, 727, 874, 740, 753,
    661, 677, 689, 705, 721, 867, 733, 745, 161, 163, 162, 164, 570, 419, 427, 594,
    451, 612, 465, 469, 481, 485, 614, 505, 513, 523, 638, 541, 551, 654, 561, 571,
    420, 428, 595, 452, 613, 466, 470, 482, 486, 615, 506, 514, 524, 639, 542, 552,
    655, 562, 636, 637, 650, 651, 529, 530, 415, 416, 232, 234, 233, 235, 6, 431,
    240, 85, 455, 100, 104, 110, 122, 130, 134, 32, 432, 241, 86, 456, 101, 105,
    111, 123, 131, 135, 57, 75, 95, 191, 148, 58, 76, 96, 192, 149, 433, 439,
    475, 489, 527, 533, 434, 440, 476, 490, 528, 534, 457, 458, 441, 459, 531, 442,
    460, 532, 421, 429, 467, 473, 487, 509, 525, 563, 422, 430, 565, 468, 474, 488,
    510, 526, 564, 912, 909, 913, 894, 895, 896, 897, 899, 898, 900, 901, 902, 903,
    904, 905, 906, 907, 908, 911, 910, 914, 915, 916, 917, 918, 919, 920, 921, 930,
    931, 922, 923, 924, 925, 932, 933, 926, 927, 928, 929, 934, 935, 936, 937, 835,
    827, 839, 853, 868, 881, 854, 869, 666, 667, 674, 675, 694, 695, 702, 703, 710,
    711, 718, 719, 738, 739, 743, 750, 751, 758, 759, 848, 861, 833, 845, 887, 826,
    838, 825, 837, 879, 880, 774, 775, 776, 777, 778, 779, 780, 781, 782, 783, 784,
    785, 786, 787, 788, 789, 790, 791, 792, 793, 794, 795, 796, 797, 798, 799, 800,
    801, 802, 803, 804, 805, 806, 807, 808, 809, 810, 811, 812, 813, 814, 815, 816,
    817, 818, 819, 820, 821, 824, 836, 878, 828, 840, 882, 334, 335, 336, 338, 340,
    341, 339, 337, 342, 343, 344, 353, 354, 365, 364, 366, 370, 371, 369, 372, 373,
    377, 374, 375, 378, 376, 379, 380, 381, 382, 384, 383, 385, 403, 404, 405, 406,
    407, 408, 409, 410, 411, 412, 413, 414, 966, 941, 942, 943, 944, 945, 946, 947,
    948, 949, 950, 951, 952, 953, 954, 955, 956, 958, 960, 962, 964, 967, 993, 968,
    969, 970, 971, 972, 973, 974, 975, 976, 977, 978, 979, 980, 981, 982, 983, 985,
    987, 989, 991, 994, 995, 996, 997, 998, 957, 959, 961, 963, 965, 984, 986, 988,
    990, 992, 1495, 1496, 1497, 1498, 1499, 1500, 1501, 1507, 1503, 1504, 1506, 1502, 1505, 1508,
    1510, 1509, 1511, 1512, 1513, 1514, 1515, 1517, 1520, 1521, 1518, 1519, 1522, 1516, 1524, 1523,
    1525
};
/* END GENERATED */

/* NFC (UAX #15): canonical decomposition, canonical ordering, canonical
   composition. The text goes in chunks, each from a plain starter (combining
   class 0, NFC_Quick_Check Yes: nothing before it can reorder past it or
   compose with it) up to the next; a chunk that passes the quick check is
   copied, the others are decomposed into lisa__nfc_char work, ordered,
   composed and written back. Bytes that are not valid UTF-8 are kept as
   they are and end a chunk: nothing composes across them. */

typedef struct lisa__nfc_char {
    uint32_t cp, ccc;
    size_t at;                 /* the input byte the character came from */
} lisa__nfc_char;

/* lisa__nfc_char work that lisa__nfc needs for n input bytes: a chunk
   decomposes to at most 3 code points per 2 bytes (tools/make_nfc.py checks),
   and ordering takes as many again. */
#define LISA__NFC_WORK(n) (2 * ((n) + (n) / 2 + 1))
/* NFC's output is at most 3 times its input's bytes (UAX #15's bound for
   UTF-8; tools/make_nfc.py checks it per character). */
#define LISA__NFC_GROWTH 3

#define LISA__HANGUL_S 0xAC00u
#define LISA__HANGUL_L 0x1100u
#define LISA__HANGUL_V 0x1161u
#define LISA__HANGUL_T 0x11A7u  /* one before the first trailing consonant */
#define LISA__HANGUL_NL 19u
#define LISA__HANGUL_NV 21u
#define LISA__HANGUL_NT 28u
#define LISA__HANGUL_NS (LISA__HANGUL_NL * LISA__HANGUL_NV * LISA__HANGUL_NT)

/* Whether cp is a plain starter by the block bitmap alone (1), or needs a look (0). */
static int lisa__nfc_plain_block(uint32_t cp) {
    uint32_t b;
    if (cp < 0x300 || cp >= LISA__NFC_LIMIT) return 1;
    b = cp >> LISA__NFC_BLOCK_SHIFT;
    return !(lisa__nfc_blocks[b >> 5] >> (b & 31) & 1u);
}

static unsigned lisa__nfc_ccc_of(uint32_t cp) {
    size_t lo = 0, hi = LISA__NFC_N_CCC;   /* the run holding cp is in [lo, hi), if any */
    if (lisa__nfc_plain_block(cp) || cp < (lisa__nfc_ccc[0] >> 8)) return 0;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((lisa__nfc_ccc[mid] >> 8) <= cp) lo = mid;
        else hi = mid;
    }
    return lisa__nfc_ccc[lo] & 0xFFu;
}

/* The table entry of cp's canonical decomposition (lisa__nfc_dmap), or -1.
   Hangul syllables are not in it. */
static long lisa__nfc_decomp_entry(uint32_t cp) {
    size_t lo = 0, hi = LISA__NFC_N_DRUNS - 1;   /* the run holding cp is in [lo, hi) */
    uint32_t start, first, end;
    if (cp < (lisa__nfc_druns[0] >> 12) || cp >= LISA__NFC_LIMIT) return -1;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((lisa__nfc_druns[mid] >> 12) <= cp) lo = mid;
        else hi = mid;
    }
    start = lisa__nfc_druns[lo] >> 12;
    first = lisa__nfc_druns[lo] & 0xFFFu;
    end = lisa__nfc_druns[lo + 1] & 0xFFFu;
    return cp - start < end - first ? (long)(first + (cp - start)) : -1;
}

/* cp's canonical decomposition, one level: its code points in d[0..1], their
   number (0: none); *excluded: a pair that does not compose back. */
static int lisa__nfc_decomp1(uint32_t cp, uint32_t d[2], int *excluded) {
    long k;
    uint32_t v, second;
    *excluded = 0;
    if (cp - LISA__HANGUL_S < LISA__HANGUL_NS) {
        uint32_t s = cp - LISA__HANGUL_S, t = s % LISA__HANGUL_NT;
        if (t) {
            d[0] = cp - t;     /* LVT: the LV syllable, then T */
            d[1] = LISA__HANGUL_T + t;
        } else {
            d[0] = LISA__HANGUL_L + s / (LISA__HANGUL_NV * LISA__HANGUL_NT);
            d[1] = LISA__HANGUL_V + s % (LISA__HANGUL_NV * LISA__HANGUL_NT) / LISA__HANGUL_NT;
        }
        return 2;
    }
    if ((k = lisa__nfc_decomp_entry(cp)) < 0) return 0;
    v = lisa__nfc_dmap[k];
    d[0] = v & 0x3FFFFu;
    second = v >> 18 & 0x7Fu;
    if (!second) return 1;
    d[1] = lisa__nfc_second[second - 1];
    *excluded = (int)(v >> 25 & 1u);
    return 2;
}

/* The primary composite of a then b, or 0. */
static uint32_t lisa__nfc_compose(uint32_t a, uint32_t b) {
    size_t lo = 0, hi = LISA__NFC_N_COMP;
    if (a - LISA__HANGUL_L < LISA__HANGUL_NL && b - LISA__HANGUL_V < LISA__HANGUL_NV)
        return LISA__HANGUL_S + ((a - LISA__HANGUL_L) * LISA__HANGUL_NV + (b - LISA__HANGUL_V)) * LISA__HANGUL_NT;
    if (a - LISA__HANGUL_S < LISA__HANGUL_NS && (a - LISA__HANGUL_S) % LISA__HANGUL_NT == 0 &&
        b - LISA__HANGUL_T - 1 < LISA__HANGUL_NT - 1)
        return a + (b - LISA__HANGUL_T);
    while (lo < hi) {   /* the first entry with (second, first) >= (b, a) */
        size_t mid = lo + (hi - lo) / 2;
        uint32_t v = lisa__nfc_dmap[lisa__nfc_comp[mid]], s = lisa__nfc_second[(v >> 18 & 0x7Fu) - 1];
        if (s < b || (s == b && (v & 0x3FFFFu) < a)) lo = mid + 1;
        else hi = mid;
    }
    if (lo < LISA__NFC_N_COMP) {
        uint32_t k = lisa__nfc_comp[lo], v = lisa__nfc_dmap[k];
        if ((v & 0x3FFFFu) == a && lisa__nfc_second[(v >> 18 & 0x7Fu) - 1] == b) {
            size_t r = 0, top = LISA__NFC_N_DRUNS - 1;   /* entry k's run: the last starting at or before k */
            while (top - r > 1) {
                size_t mid = r + (top - r) / 2;
                if ((lisa__nfc_druns[mid] & 0xFFFu) <= k) r = mid;
                else top = mid;
            }
            return (lisa__nfc_druns[r] >> 12) + (k - (lisa__nfc_druns[r] & 0xFFFu));
        }
    }
    return 0;
}

/* Whether cp is the second of a pair that composes (NFC_Quick_Check Maybe,
   Hangul vowels and trailing consonants aside). */
static int lisa__nfc_is_second(uint32_t cp) {
    size_t lo = 0, hi = LISA__NFC_N_COMP;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lisa__nfc_second[(lisa__nfc_dmap[lisa__nfc_comp[mid]] >> 18 & 0x7Fu) - 1] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < LISA__NFC_N_COMP && lisa__nfc_second[(lisa__nfc_dmap[lisa__nfc_comp[lo]] >> 18 & 0x7Fu) - 1] == cp;
}

/* Whether cp's NFC_Quick_Check is other than Yes: No (a singleton or an
   excluded pair) or Maybe (it may compose with what comes before). */
static int lisa__nfc_qc_not_yes(uint32_t cp) {
    uint32_t d[2];
    int excluded;
    if (cp - LISA__HANGUL_V < LISA__HANGUL_NV || cp - LISA__HANGUL_T - 1 < LISA__HANGUL_NT - 1) return 1;
    if (lisa__nfc_decomp1(cp, d, &excluded) == 1 || excluded) return 1;
    return lisa__nfc_is_second(cp);
}

/* Whether cp is a plain starter (1), and its combining class in *ccc; *not_yes:
   its NFC_Quick_Check is No or Maybe. */
static int lisa__nfc_plain(uint32_t cp, unsigned *ccc, int *not_yes) {
    *ccc = 0;
    *not_yes = 0;
    if (lisa__nfc_plain_block(cp)) return 1;
    *ccc = lisa__nfc_ccc_of(cp);
    *not_yes = lisa__nfc_qc_not_yes(cp);
    return *ccc == 0 && !*not_yes;
}

/* The end of the chunk that starts at byte i (< n) of s: its first character,
   then every one up to the next plain starter or invalid byte (an invalid
   byte at i is a chunk alone). *quick: the chunk passes the quick check
   (every character Quick_Check Yes, the combining classes in order), so NFC
   keeps it as it is. */
static size_t lisa__nfc_chunk(const unsigned char *s, size_t n, size_t i, int *quick) {
    unsigned last = 0, ccc;
    int first = 1, not_yes;
    *quick = 1;
    while (i < n) {
        uint32_t cp;
        int len = lisa__utf8_decode(s + i, n - i, &cp), plain;
        if (len == 0) return first ? i + 1 : i;
        plain = lisa__nfc_plain(cp, &ccc, &not_yes);
        if (plain && !first) break;
        if (not_yes || (ccc && ccc < last)) *quick = 0;
        last = ccc;
        first = 0;
        i += (size_t)len;
    }
    return i;
}

/* cp's full canonical decomposition appended to w, each at byte at; returns
   how many (at most 4: the deepest decomposition is 3 levels). */
static size_t lisa__nfc_decompose(uint32_t cp, size_t at, lisa__nfc_char *w) {
    uint32_t stack[8], d[2];
    int top = 0, excluded, k;
    size_t m = 0;
    stack[top++] = cp;
    while (top > 0) {
        uint32_t c = stack[--top];
        k = lisa__nfc_decomp1(c, d, &excluded);
        if (k == 0) {
            w[m].cp = c;
            w[m].ccc = lisa__nfc_ccc_of(c);
            w[m].at = at;
            m++;
            continue;
        }
        if (k == 2) stack[top++] = d[1];
        stack[top++] = d[0];
    }
    return m;
}

/* Canonical ordering: each run of non-starters w[0..m) stably sorted by class
   (a merge sort with tmp[m], so that a long run of marks costs m log m). */
static void lisa__nfc_order_run(lisa__nfc_char *w, size_t m, lisa__nfc_char *tmp) {
    size_t width, i;
    for (width = 1; width < m; width *= 2) {
        for (i = 0; i < m; i += 2 * width) {
            size_t mid = i + width < m ? i + width : m, end = i + 2 * width < m ? i + 2 * width : m;
            size_t a = i, b = mid, o = i;
            while (a < mid && b < end) tmp[o++] = w[b].ccc < w[a].ccc ? w[b++] : w[a++];
            while (a < mid) tmp[o++] = w[a++];
            while (b < end) tmp[o++] = w[b++];
        }
        memcpy(w, tmp, m * sizeof *w);
    }
}

static void lisa__nfc_order(lisa__nfc_char *w, size_t m, lisa__nfc_char *tmp) {
    size_t i = 0;
    while (i < m) {
        size_t j = i;
        while (j < m && w[j].ccc != 0) j++;
        if (j - i > 1) lisa__nfc_order_run(w + i, j - i, tmp);
        i = j + 1;
    }
}

/* Canonical composition of w[0..m) in place; returns the characters left. A
   composite stands where its starter stood. */
static size_t lisa__nfc_compose_all(lisa__nfc_char *w, size_t m) {
    size_t k, o = 0, starter = 0;
    int have_starter = 0;
    unsigned last = 0;   /* the class of the last character kept after the starter (0: none) */
    for (k = 0; k < m; k++) {
        lisa__nfc_char c = w[k];
        if (have_starter && (last == 0 || last < c.ccc)) {
            uint32_t composite = lisa__nfc_compose(w[starter].cp, c.cp);
            if (composite) {
                w[starter].cp = composite;
                continue;
            }
        }
        if (c.ccc == 0) {
            starter = o;
            have_starter = 1;
        }
        last = c.ccc;
        w[o++] = c;
    }
    return o;
}

/* A chunk s[0..n) (at byte base of the text) in NFC written to out, the input
   byte of each output byte's character (base-relative to the text) in from;
   returns the bytes written. Characters keep their order of origin in from:
   one that ordering moved ahead of others stands where the first of them
   stood, so offsets never go back. */
static size_t lisa__nfc_chunk_normalize(const unsigned char *s, size_t n, size_t base, unsigned char *out,
                                        size_t *from, lisa__nfc_char *work) {
    size_t i = 0, m = 0, o = 0, k;
    while (i < n) {
        uint32_t cp;
        int len = lisa__utf8_decode(s + i, n - i, &cp);   /* valid: lisa__nfc_chunk saw to it */
        m += lisa__nfc_decompose(cp, base + i, work + m);
        i += (size_t)len;
    }
    lisa__nfc_order(work, m, work + m);
    m = lisa__nfc_compose_all(work, m);
    for (k = m; k-- > 1;)
        if (work[k].at < work[k - 1].at) work[k - 1].at = work[k].at;
    for (k = 0; k < m; k++) {
        int len = lisa__utf8_encode(work[k].cp, out + o), b;
        if (from)
            for (b = 0; b < len; b++) from[o + (size_t)b] = work[k].at;
        o += (size_t)len;
    }
    return o;
}

/* Whether s[0..n) is NFC as it is by the quick check (1; 0: perhaps not):
   ASCII and other plain starters cost a byte test or a bit test each. */
static int lisa__nfc_quick(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int quick;
        if (s[i] < 0x80 && (i + 1 == n || s[i + 1] < 0x80)) {
            i++;
            continue;
        }
        i = lisa__nfc_chunk(s, n, i, &quick);
        if (!quick) return 0;
    }
    return 1;
}

/* s[0..n) in NFC written to out (room for LISA__NFC_GROWTH * n bytes),
   using work (LISA__NFC_WORK(n) characters); from (room as out, or
   NULL) gets for each output byte the input byte its character came from
   (non-decreasing). Returns the bytes written. Bytes that are not valid
   UTF-8 are copied as they are and nothing composes or reorders across them. */
static size_t lisa__nfc(const unsigned char *s, size_t n, unsigned char *out, size_t *from, lisa__nfc_char *work) {
    size_t i = 0, o = 0, kept = 0, k;   /* s[kept..i) passed the quick check, not yet copied */
    while (i <= n) {
        size_t start = i, end;
        int quick = 1;
        if (i < n && s[i] < 0x80 && (i + 1 == n || s[i + 1] < 0x80)) {
            i++;
            continue;
        }
        end = i < n ? lisa__nfc_chunk(s, n, i, &quick) : n;
        if (quick && i < n) {
            i = end;
            continue;
        }
        memcpy(out + o, s + kept, start - kept);
        if (from)
            for (k = kept; k < start; k++) from[o + k - kept] = k;
        o += start - kept;
        if (i == n) break;
        o += lisa__nfc_chunk_normalize(s + start, end - start, start, out + o, from ? from + o : NULL, work);
        i = kept = end;
    }
    return o;
}

/* ------------------------------------------------------------------------- */
/* Tokenizers                                                                 */
/* ------------------------------------------------------------------------- */

#define LISA__TOK_MAX_PIECE (1 << 20)   /* a max_token_length beyond this is garbage */
#define LISA__TOK_NO_MERGE (-1e10f)     /* run.c's starting best score: pairs must beat it */

/* Byte b and a NUL at 2b: what a byte token decodes to. */
static const unsigned char lisa__byte_pieces[512] = {
#define LISA__BZ(b) (b), 0
#define LISA__BZ4(b) LISA__BZ(b), LISA__BZ((b) + 1), LISA__BZ((b) + 2), LISA__BZ((b) + 3)
#define LISA__BZ16(b) LISA__BZ4(b), LISA__BZ4((b) + 4), LISA__BZ4((b) + 8), LISA__BZ4((b) + 12)
#define LISA__BZ64(b) LISA__BZ16(b), LISA__BZ16((b) + 16), LISA__BZ16((b) + 32), LISA__BZ16((b) + 48)
    LISA__BZ64(0), LISA__BZ64(64), LISA__BZ64(128), LISA__BZ64(192)
#undef LISA__BZ
#undef LISA__BZ4
#undef LISA__BZ16
#undef LISA__BZ64
};

LISADEF void lisa_tokenizer_init_bytes(lisa_tokenizer *t) {
    memset(t, 0, sizeof *t);
    t->kind = LISA_TOKENIZER_BYTES;
    t->vocab_size = LISA_BYTES_VOCAB;
    t->bos_id = LISA_BYTES_BOS;
    t->eos_id = LISA_BYTES_EOS;
    t->max_token_length = 1;
    t->space_id = -1;  /* no dummy prefix */
    t->add_bos = 1;
    t->unk_id = t->pad_id = -1;
}

LISADEF void lisa_tokenizer_free(lisa_tokenizer *t) {
    lisa__free(&t->allocator, t->buffer, t->buffer_size, &t->bytes);
    t->buffer = NULL;
    t->buffer_size = 0;
    t->scores = NULL;
    t->offsets = NULL;
    t->text = NULL;
    t->table = NULL;
    t->bpe = NULL;
    t->chat_template = NULL;
    t->chat_template_len = 0;
}

static size_t lisa__tok_piece_len(const lisa_tokenizer *t, int id) {
    return t->offsets[id + 1] - t->offsets[id] - 1;
}

/* The lowest id whose piece is a followed by b, or -1. */
static int lisa__tok_find2(const lisa_tokenizer *t, const char *a, size_t na, const char *b, size_t nb) {
    uint32_t h;
    size_t slot;
    if (t->kind == LISA_TOKENIZER_BYTES || na + nb > (size_t)t->max_token_length) return -1;
    h = lisa__fnv1a(lisa__fnv1a(LISA__FNV_SEED, (const unsigned char *)a, na), (const unsigned char *)b, nb);
    for (slot = h & t->hash_mask;; slot = (slot + 1) & t->hash_mask) {
        int id = t->table[slot];
        const char *p;
        if (id < 0) return -1;
        p = t->text + t->offsets[id];
        if (lisa__tok_piece_len(t, id) == na + nb && memcmp(p, a, na) == 0 && memcmp(p + na, b, nb) == 0)
            return id;
    }
}

LISADEF int lisa_tokenizer_find(const lisa_tokenizer *t, const char *piece, size_t len) {
    if (t->kind == LISA_TOKENIZER_BYTES) return len == 1 ? (int)(unsigned char)piece[0] : -1;
    return lisa__tok_find2(t, piece, len, "", 0);
}

/* Parses a whole tokenizer.bin held in memory: a first pass checks every
   length and counts, a second fills one allocation. */
static lisa_result lisa__tok_parse(lisa_tokenizer *t, const unsigned char *p, size_t size, int vocab,
                                   const char *name, const lisa_allocator *a, lisa_error *err) {
    size_t pos = 4, text_bytes = 0, slots = 16, need, i;
    int32_t max_len;
    int count = 0, id;
    unsigned char *buf;
    size_t *offsets;
    char *text;
    float *scores;
    int32_t *table;
    memset(t, 0, sizeof *t);
    t->allocator = lisa__allocator_or_default(a);
    if (vocab < 0 || vocab > LISA__MAX_VOCAB)
        return lisa__fail(err, LISA_ERR_INVALID, "%s: vocab_size %d is out of range (0 to count, or 1..%d)",
                          name, vocab, LISA__MAX_VOCAB);
    if (size < 4)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated header: the file has %lu bytes, a tokenizer needs 4 for max_token_length",
                          name, (unsigned long)size);
    max_len = (int32_t)(uint32_t)lisa__le32(p);
    if (max_len <= 0 || max_len > LISA__TOK_MAX_PIECE)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: bad header: max_token_length %ld is out of range (1..%d)",
                          name, (long)max_len, LISA__TOK_MAX_PIECE);
    for (;;) {
        int32_t n;
        if (vocab > 0 && count == vocab) break;
        if (pos == size) {
            if (vocab > 0)
                return lisa__fail(err, LISA_ERR_FORMAT, "%s: holds %d tokens, vocab_size %d was expected",
                                  name, count, vocab);
            break;
        }
        if (count == LISA__MAX_VOCAB)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: more than %d tokens", name, LISA__MAX_VOCAB);
        if (size - pos < 8)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated: token %d at byte %lu needs 8 bytes of score and length, %lu are left",
                              name, count, (unsigned long)pos, (unsigned long)(size - pos));
        n = (int32_t)(uint32_t)lisa__le32(p + pos + 4);
        if (n < 0)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: token %d has negative length %ld", name, count, (long)n);
        if (n > max_len)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: token %d has length %ld, more than max_token_length %ld",
                              name, count, (long)n, (long)max_len);
        if ((size_t)n > size - pos - 8)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated: token %d has length %ld, %lu bytes are left",
                              name, count, (long)n, (unsigned long)(size - pos - 8));
        pos += 8 + (size_t)n;
        text_bytes += (size_t)n + 1;
        count++;
    }
    if (pos < size)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: %lu bytes of trailing data after %d tokens",
                          name, (unsigned long)(size - pos), count);
    if (count < 3)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: holds %d tokens; at least 3 are needed (unk, BOS = 1, EOS = 2)",
                          name, count);
    while (slots < 2 * (size_t)count) slots *= 2;
    /* size_t-aligned parts first, then 4-byte ones, then the text. */
    need = ((size_t)count + 1) * sizeof(size_t) + (size_t)count * sizeof(float) + slots * sizeof(int32_t) + text_bytes;
    buf = (unsigned char *)lisa__alloc(&t->allocator, need, &t->bytes);
    if (!buf) return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %d tokens (%lu bytes)",
                                name, count, (unsigned long)need);
    offsets = (size_t *)(void *)buf;
    scores = (float *)(void *)(buf + ((size_t)count + 1) * sizeof(size_t));
    table = (int32_t *)(void *)(scores + count);
    text = (char *)(table + slots);
    pos = 4;
    offsets[0] = 0;
    for (id = 0; id < count; id++) {
        uint32_t bits = (uint32_t)lisa__le32(p + pos);
        size_t n = (size_t)(uint32_t)lisa__le32(p + pos + 4);
        memcpy(&scores[id], &bits, sizeof bits);
        memcpy(text + offsets[id], p + pos + 8, n);
        text[offsets[id] + n] = 0;
        offsets[id + 1] = offsets[id] + n + 1;
        pos += 8 + n;
    }
    t->kind = LISA_TOKENIZER_LLAMA2C;
    t->vocab_size = count;
    t->bos_id = 1;
    t->eos_id = 2;
    t->add_bos = 1;
    t->unk_id = 0;
    t->pad_id = -1;
    t->max_token_length = (int)max_len;
    t->scores = scores;
    t->offsets = offsets;
    t->text = text;
    t->table = table;
    t->hash_mask = slots - 1;
    t->buffer = buf;
    t->buffer_size = need;
    for (i = 0; i < slots; i++) table[i] = -1;
    /* Ascending ids, and a string already present is not added again: a
       lookup finds the lowest id with that piece. */
    for (id = 0; id < count; id++) {
        const char *s = text + offsets[id];
        size_t n = lisa__tok_piece_len(t, id), slot;
        if (lisa__tok_find2(t, s, n, "", 0) >= 0) continue;
        slot = lisa__fnv1a(LISA__FNV_SEED, (const unsigned char *)s, n) & t->hash_mask;
        while (table[slot] >= 0) slot = (slot + 1) & t->hash_mask;
        table[slot] = id;
    }
    t->space_id = lisa_tokenizer_find(t, " ", 1);
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_tokenizer_load_llama2c_memory(lisa_tokenizer *t, const void *data, size_t size,
                                                       int vocab_size, const char *name,
                                                       const lisa_allocator *a, lisa_error *err) {
    return lisa__tok_parse(t, (const unsigned char *)data, data ? size : 0, vocab_size,
                           name ? name : "<memory>", a, err);
}

static int lisa__tok_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ---- BPE: the builder every BPE loader goes through ---------------------- */

/* A BPE loader (tokenizer.json, GGUF metadata) describes a vocabulary to a
   builder and lets it make the tokenizer:
     lisa__bpe_builder b;
     lisa__bpe_builder_init(&b, name, allocator);  name labels every error
     b.set... = ...;                                the settings (any time before finish)
     lisa__bpe_builder_token(&b, id, ...)           every token, any order
     lisa__bpe_builder_merge(&b, left, right)       the merges, best first (rank order)
     lisa__bpe_builder_chat_template(&b, ...)       optional
     lisa__bpe_builder_finish(&b, t, err)           checks everything, fills t
     lisa__bpe_builder_free(&b)                     always, also after finish or a failure
   Strings are copied, so the loader's own buffers may go right after each
   call. Token strings are as the file spells them: model-vocabulary tokens
   in the model's alphabet (GPT-2's byte-to-unicode characters when
   set.byte_level, U+2581 for spaces in SentencePiece vocabularies), added
   tokens (LISA__BPE_ADDED) as the raw text they match. An id may be given
   twice, once as a vocabulary entry and once as an added token, with the
   same string; the flags then combine. Merge strings are model-vocabulary
   spellings. Everything the tokenizer keeps is in one allocation from the
   builder's allocator, owned by t (lisa_tokenizer_free()). */

#define LISA__BPE_MAX_STEPS 8    /* normalizer steps, pre-tokenizer stages, decoder steps */
#define LISA__BPE_MAX_STR 16     /* bytes of a step's strings (replacements, prefixes) */

/* Token flags. A call without LISA__BPE_ADDED gives a model-vocabulary entry. */
#define LISA__BPE_SPECIAL 1u      /* a special token (transformers' skip_special_tokens) */
#define LISA__BPE_ADDED 2u        /* matched as a whole string before any splitting */
#define LISA__BPE_LSTRIP 4u       /* ... taking the whitespace before it */
#define LISA__BPE_RSTRIP 8u       /* ... and after it */
#define LISA__BPE_SINGLE_WORD 16u /* ... only with no word character either side */
#define LISA__BPE_NORMALIZED 32u  /* ... in the normalized text, its string normalized too */

/* Merge order: the pair's place in the merges list (tokenizer.json, GGUF
   gpt2), or the merged piece's score, higher first (GGUF llama, llama2.c's rule). */
enum { LISA__BPE_BY_RANK = 0, LISA__BPE_BY_SCORE = 1 };

/* Normalizer steps, pre-tokenizer stages and decoder steps, each a list
   applied in order. */
enum {
    LISA__BPE_N_PREPEND = 1,   /* a: prepended to a non-empty text */
    LISA__BPE_N_REPLACE,       /* every a becomes b (b at most one character) */
    LISA__BPE_N_NFC,           /* Unicode NFC (lisa__nfc) */
    LISA__BPE_P_SCAN,          /* kind: a pre-tokenizer scanner (lisa__pretok_next) splits */
    LISA__BPE_P_BYTELEVEL,     /* flag: add_prefix_space; kind: a scanner (use_regex) or 0;
                                  must be the last stage */
    LISA__BPE_P_METASPACE,     /* spaces become a; kind: prepend a 0 never, 1 always,
                                  2 first (only at the text's start); flag: split before each a */
    LISA__BPE_D_BYTELEVEL,     /* GPT-2's alphabet back to bytes (a token with other
                                  characters stays as it is); joins the tokens */
    LISA__BPE_D_REPLACE,       /* every a becomes b */
    LISA__BPE_D_BYTEFALLBACK,  /* a token "<0xXX>" is that byte */
    LISA__BPE_D_FUSE,          /* joins the tokens */
    LISA__BPE_D_STRIP,         /* up to kind leading and flag trailing characters a go;
                                  after the tokens are joined only leading ones (flag 0) */
    LISA__BPE_D_METASPACE      /* a becomes a space, except in the first token, where it
                                  goes (kind 1) or also becomes a space (kind 0) */
};

typedef struct lisa__bpe_step {
    int op;
    int kind, flag;            /* as the op says */
    char a[LISA__BPE_MAX_STR], b[LISA__BPE_MAX_STR];
    int na, nb;                /* bytes of a and b */
} lisa__bpe_step;

typedef struct lisa__bpe_settings {
    int byte_level;            /* vocabulary in GPT-2's alphabet: words start as single bytes */
    int rank;                  /* LISA__BPE_BY_RANK or LISA__BPE_BY_SCORE */
    int byte_fallback;         /* a character not in the vocabulary becomes its "<0xXX>" tokens */
    int ignore_merges;         /* a word that is a token is that token */
    int fuse_unk;              /* consecutive unknown characters give one unk */
    int added_verbatim;        /* added tokens decode as their text, not through the
                                  decoder steps (llama.cpp's token_to_piece) */
    int unk_id, bos_id, eos_id, pad_id;  /* -1: none (init sets them so) */
    int add_bos, add_eos;      /* what encoding as configured adds */
    lisa__bpe_step norm[LISA__BPE_MAX_STEPS], pretok[LISA__BPE_MAX_STEPS], dec[LISA__BPE_MAX_STEPS];
    int n_norm, n_pretok, n_dec;
} lisa__bpe_settings;

typedef struct lisa__bpe_btoken {
    size_t str, len;           /* into the builder's pool */
    float score;
    unsigned flags;
    int given;                 /* bit 0: as a vocabulary entry, bit 1: as an added token */
} lisa__bpe_btoken;

typedef struct lisa__bpe_bmerge {
    size_t str[2], len[2];     /* left and right in the builder's pool */
} lisa__bpe_bmerge;

typedef struct lisa__bpe_builder {
    lisa__bpe_settings set;
    const char *name;
    lisa_allocator allocator;
    size_t bytes;              /* the builder's own allocations */
    lisa__bpe_btoken *tokens;  /* (cap_tokens) by id */
    int n_tokens, cap_tokens;  /* n_tokens: highest id given + 1 */
    char *pool;                /* token and merge strings */
    size_t n_pool, cap_pool;
    lisa__bpe_bmerge *merges;  /* (cap_merges) in rank order */
    size_t cap_merges;
    int n_merges;
    size_t chat, chat_len;     /* the chat template in the pool; chat_len 0: none */
} lisa__bpe_builder;

static void lisa__bpe_builder_init(lisa__bpe_builder *b, const char *name, const lisa_allocator *a);
static lisa_result lisa__bpe_builder_token(lisa__bpe_builder *b, int id, const char *s, size_t len,
                                           float score, unsigned flags, lisa_error *err);
static lisa_result lisa__bpe_builder_merge(lisa__bpe_builder *b, const char *left, size_t left_len,
                                           const char *right, size_t right_len, lisa_error *err);
static lisa_result lisa__bpe_builder_chat_template(lisa__bpe_builder *b, const char *s, size_t len,
                                                   lisa_error *err);
static lisa_result lisa__bpe_builder_finish(lisa__bpe_builder *b, lisa_tokenizer *t, lisa_error *err);
static void lisa__bpe_builder_free(lisa__bpe_builder *b);

static void lisa__bpe_builder_init(lisa__bpe_builder *b, const char *name, const lisa_allocator *a) {
    memset(b, 0, sizeof *b);
    b->name = name ? name : "<tokenizer>";
    b->allocator = lisa__allocator_or_default(a);
    b->set.unk_id = b->set.bos_id = b->set.eos_id = b->set.pad_id = -1;
}

static void lisa__bpe_builder_free(lisa__bpe_builder *b) {
    lisa__free(&b->allocator, b->tokens, (size_t)b->cap_tokens * sizeof *b->tokens, &b->bytes);
    lisa__free(&b->allocator, b->pool, b->cap_pool, &b->bytes);
    lisa__free(&b->allocator, b->merges, b->cap_merges * sizeof *b->merges, &b->bytes);
    b->tokens = NULL;
    b->pool = NULL;
    b->merges = NULL;
    b->n_tokens = b->cap_tokens = b->n_merges = 0;
    b->cap_merges = 0;
    b->n_pool = b->cap_pool = 0;
}

/* Grows *p (cap elements of size elem, the first used kept) to hold need. */
static int lisa__bpe_grow(const lisa_allocator *a, void **p, size_t *cap, size_t elem, size_t need, size_t *bytes) {
    size_t c = *cap ? *cap : 16;
    void *q;
    if (need <= *cap) return 1;
    while (c < need) {
        if (c > ((size_t)-1 / 2) / elem) return 0;
        c *= 2;
    }
    q = lisa__alloc(a, c * elem, bytes);
    if (!q) return 0;
    if (*p) memcpy(q, *p, *cap * elem);
    lisa__free(a, *p, *cap * elem, bytes);
    *p = q;
    *cap = c;
    return 1;
}

/* Copies s into the pool; its offset in *off. */
static lisa_result lisa__bpe_builder_keep(lisa__bpe_builder *b, const char *s, size_t len, size_t *off, lisa_error *err) {
    if (len > (size_t)-1 / 4 || !lisa__bpe_grow(&b->allocator, (void **)&b->pool, &b->cap_pool, 1, b->n_pool + len + 1, &b->bytes))
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %lu bytes of token text", b->name,
                          (unsigned long)(b->n_pool + len + 1));
    if (len) memcpy(b->pool + b->n_pool, s, len);
    b->pool[b->n_pool + len] = 0;
    *off = b->n_pool;
    b->n_pool += len + 1;
    return LISA_OK;
}

static lisa_result lisa__bpe_builder_token(lisa__bpe_builder *b, int id, const char *s, size_t len,
                                           float score, unsigned flags, lisa_error *err) {
    lisa__bpe_btoken *k;
    int bit = flags & LISA__BPE_ADDED ? 2 : 1;
    if (id < 0 || id >= LISA__MAX_VOCAB)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: token id %ld is out of range (0..%d)", b->name, (long)id,
                          LISA__MAX_VOCAB - 1);
    if (len > LISA__TOK_MAX_PIECE || (len > 0 && !s))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: token %d is %lu bytes long, more than %d", b->name, id,
                          (unsigned long)len, LISA__TOK_MAX_PIECE);
    if (len == 0)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: token %d is the empty string", b->name, id);
    if (id >= b->n_tokens) {
        size_t cap = (size_t)b->cap_tokens;
        int i;
        if (!lisa__bpe_grow(&b->allocator, (void **)&b->tokens, &cap, sizeof *b->tokens, (size_t)id + 1, &b->bytes))
            return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %d tokens", b->name, id + 1);
        b->cap_tokens = (int)cap;
        for (i = b->n_tokens; i <= id; i++) memset(&b->tokens[i], 0, sizeof b->tokens[i]);
        b->n_tokens = id + 1;
    }
    k = &b->tokens[id];
    if (k->given) {
        if (k->given & bit)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: token id %d is given twice (\"%.40s\" and \"%.*s\")", b->name,
                              id, b->pool + k->str, (int)(len < 40 ? len : 40), s);
        if (k->len != len || memcmp(b->pool + k->str, s, len) != 0)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: id %d is the vocabulary's \"%.40s\" and the added token \"%.*s\"",
                              b->name, id, b->pool + k->str, (int)(len < 40 ? len : 40), s);
        k->flags |= flags;
        k->given |= bit;
        if (bit == 1) k->score = score;
        return LISA_OK;
    }
    {
        lisa_result r = lisa__bpe_builder_keep(b, s, len, &k->str, err);
        if (r != LISA_OK) return r;
    }
    k->len = len;
    k->score = score;
    k->flags = flags;
    k->given = bit;
    return LISA_OK;
}

static lisa_result lisa__bpe_builder_merge(lisa__bpe_builder *b, const char *left, size_t left_len,
                                           const char *right, size_t right_len, lisa_error *err) {
    lisa__bpe_bmerge *m;
    lisa_result r;
    if (b->n_merges >= 4 * LISA__MAX_VOCAB)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: more than %d merges", b->name, 4 * LISA__MAX_VOCAB);
    if (left_len == 0 || right_len == 0 || left_len > LISA__TOK_MAX_PIECE || right_len > LISA__TOK_MAX_PIECE)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: merge %d has a part of %lu bytes", b->name, b->n_merges,
                          (unsigned long)(left_len == 0 || left_len > LISA__TOK_MAX_PIECE ? left_len : right_len));
    if (!lisa__bpe_grow(&b->allocator, (void **)&b->merges, &b->cap_merges, sizeof *b->merges,
                        (size_t)b->n_merges + 1, &b->bytes))
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %d merges", b->name, b->n_merges + 1);
    m = &b->merges[b->n_merges];
    if ((r = lisa__bpe_builder_keep(b, left, left_len, &m->str[0], err)) != LISA_OK) return r;
    if ((r = lisa__bpe_builder_keep(b, right, right_len, &m->str[1], err)) != LISA_OK) return r;
    m->len[0] = left_len;
    m->len[1] = right_len;
    b->n_merges++;
    return LISA_OK;
}

static lisa_result lisa__bpe_builder_chat_template(lisa__bpe_builder *b, const char *s, size_t len,
                                                   lisa_error *err) {
    lisa_result r;
    if (!s) return LISA_OK;
    if ((r = lisa__bpe_builder_keep(b, s, len, &b->chat, err)) != LISA_OK) return r;
    b->chat_len = len;
    return LISA_OK;
}

/* ---- BPE: the tables a finished tokenizer keeps ------------------------- */

typedef struct lisa__bpe_pair {
    int32_t left, right;       /* left -1: an empty slot */
    int32_t rank, merged;
} lisa__bpe_pair;

#define LISA__BPE_HOLE 64u     /* flags: an id no token was given for */

typedef struct lisa__bpe_model {
    lisa__bpe_settings set;
    /* The vocabulary as the merges see it: key i is keys + key_off[i], up to
       key_off[i + 1] (no NUL); empty for ids the model cannot produce. */
    const size_t *key_off;
    const char *keys;
    const int32_t *key_table;  /* hash of ids by key, -1 empty */
    size_t key_mask;
    const lisa__bpe_pair *pairs;  /* BY_RANK: hash of merges by (left, right) */
    size_t pair_mask;
    /* The piece of a token decoded first (the decoder's leading-space rule),
       like offsets/text in the tokenizer. */
    const size_t *first_off;
    const char *first_text;
    const unsigned char *flags;   /* (vocab) LISA__BPE_* */
    /* Added tokens by their first byte, longest first: added[added_start[c]
       .. added_start[c + 1]) start with byte c; match i is match_text +
       match_off[i] (the content, normalized for LISA__BPE_NORMALIZED). */
    const int32_t *added;
    const size_t *match_off;
    const char *match_text;
    int32_t added_start[257];
    int n_added, has_raw_added, has_norm_added;
    int32_t byte_id[256];      /* byte-level: the token of each byte (-1: none) */
    int32_t fallback_id[256];  /* the "<0xXX>" token of each byte (-1: none) */
} lisa__bpe_model;

/* GPT-2's byte-to-unicode alphabet: the printable bytes stand for
   themselves, the 68 others (0-32, 127-160, 173) for U+0100 on. */
static int lisa__bytelevel_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return (int)cp;
    if (cp >= 256 && cp < 256 + 33) return (int)(cp - 256);
    if (cp >= 256 + 33 && cp < 256 + 67) return (int)(cp - 256 - 33 + 127);
    if (cp == 256 + 67) return 173;
    return -1;
}

/* A byte-level spelling's bytes written to out (as many as its characters),
   or -1 when some character is outside the alphabet. */
static long lisa__bytelevel_unmap(const char *s, size_t n, unsigned char *out) {
    size_t i = 0;
    long k = 0;
    while (i < n) {
        uint32_t cp;
        int l = lisa__utf8_decode((const unsigned char *)s + i, n - i, &cp), b;
        if (l == 0 || (b = lisa__bytelevel_byte(cp)) < 0) return -1;
        if (out) out[k] = (unsigned char)b;
        k++;
        i += (size_t)l;
    }
    return k;
}

/* A growing byte buffer for building strings at load time. */
typedef struct lisa__bpe_sink {
    char *p;
    size_t n, cap;
    int failed;
    const lisa_allocator *a;
    size_t *bytes;
} lisa__bpe_sink;

/* Appends n bytes of s (NULL: room for them, unset). */
static void lisa__bpe_put(lisa__bpe_sink *k, const void *s, size_t n) {
    if (k->failed) return;
    if (!lisa__bpe_grow(k->a, (void **)&k->p, &k->cap, 1, k->n + n + 1, k->bytes)) {
        k->failed = 1;
        return;
    }
    if (n && s) memcpy(k->p + k->n, s, n);
    k->n += n;
}

static void lisa__bpe_sink_free(lisa__bpe_sink *k) {
    lisa__free(k->a, k->p, k->cap, k->bytes);
    k->p = NULL;
    k->n = k->cap = 0;
}

/* s with every a replaced by b, appended to k (a not empty). */
static void lisa__bpe_put_replaced(lisa__bpe_sink *k, const char *s, size_t n, const char *a, size_t na,
                                   const char *b, size_t nb) {
    size_t i = 0, from = 0;
    while (na > 0 && i + na <= n) {
        if (memcmp(s + i, a, na) == 0) {
            lisa__bpe_put(k, s + from, i - from);
            lisa__bpe_put(k, b, nb);
            i += na;
            from = i;
        } else {
            i++;
        }
    }
    lisa__bpe_put(k, s + from, n - from);
}

static int lisa__bpe_is_byte_token(const char *p, size_t n) {
    return n == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>' && lisa__tok_hex(p[3]) >= 0 &&
           lisa__tok_hex(p[4]) >= 0;
}

/* What the decoder makes of one token (first: it is the first one decoded),
   appended to out; uses tmp. The steps after the tokens are joined act on
   the first token only (a leading strip). Without a decoder tokens are
   joined with spaces, as `tokenizers` does. */
static void lisa__bpe_decode_token(const lisa__bpe_settings *set, const char *s, size_t n, int first,
                                   lisa__bpe_sink *out, lisa__bpe_sink *tmp) {
    int i, joined = 0;
    size_t start = out->n;
    if (set->n_dec == 0 && !first) lisa__bpe_put(out, " ", 1);
    lisa__bpe_put(out, s, n);
    for (i = 0; i < set->n_dec && !out->failed; i++) {
        const lisa__bpe_step *d = &set->dec[i];
        char *p = out->p + start;
        size_t len = out->n - start;
        tmp->n = 0;
        switch (d->op) {
        case LISA__BPE_D_BYTELEVEL: {
            long k = lisa__bytelevel_unmap(p, len, (unsigned char *)p);
            if (k >= 0) out->n = start + (size_t)k;
            joined = 1;
            break;
        }
        case LISA__BPE_D_REPLACE:
            lisa__bpe_put_replaced(tmp, p, len, d->a, (size_t)d->na, d->b, (size_t)d->nb);
            out->n = start;
            lisa__bpe_put(out, tmp->p, tmp->n);
            break;
        case LISA__BPE_D_BYTEFALLBACK:
            if (lisa__bpe_is_byte_token(p, len)) {
                p[0] = (char)(lisa__tok_hex(p[3]) * 16 + lisa__tok_hex(p[4]));
                out->n = start + 1;
            }
            break;
        case LISA__BPE_D_FUSE:
            joined = 1;
            break;
        case LISA__BPE_D_STRIP: {
            int k;
            size_t cut = 0, end = len;
            if (joined && !first) break;
            for (k = 0; k < d->kind && cut + (size_t)d->na <= end && memcmp(p + cut, d->a, (size_t)d->na) == 0; k++)
                cut += (size_t)d->na;
            for (k = 0; !joined && k < d->flag && end >= cut + (size_t)d->na &&
                        memcmp(p + end - (size_t)d->na, d->a, (size_t)d->na) == 0; k++)
                end -= (size_t)d->na;
            memmove(p, p + cut, end - cut);
            out->n = start + end - cut;
            break;
        }
        case LISA__BPE_D_METASPACE:
            lisa__bpe_put_replaced(tmp, p, len, d->a, (size_t)d->na, " ", first && d->kind ? 0 : 1);
            out->n = start;
            lisa__bpe_put(out, tmp->p, tmp->n);
            break;
        default:
            break;
        }
        if (tmp->failed) out->failed = 1;
    }
}

/* Open-addressing hash slots for n entries: a power of two, at least 2n. */
static size_t lisa__bpe_slots(size_t n) {
    size_t s = 16;
    while (s < 2 * n) s *= 2;
    return s;
}

/* The id whose key (the model's spelling) is a then b, or -1. */
static int lisa__bpe_key_find2(const lisa__bpe_model *m, const char *a, size_t na, const char *b, size_t nb) {
    uint32_t h = lisa__fnv1a(lisa__fnv1a(LISA__FNV_SEED, (const unsigned char *)a, na), (const unsigned char *)b, nb);
    size_t slot;
    for (slot = h & m->key_mask;; slot = (slot + 1) & m->key_mask) {
        int id = m->key_table[slot];
        const char *p;
        if (id < 0) return -1;
        p = m->keys + m->key_off[id];
        if (m->key_off[id + 1] - m->key_off[id] == na + nb && memcmp(p, a, na) == 0 && memcmp(p + na, b, nb) == 0)
            return id;
    }
}

static size_t lisa__bpe_pair_slot(int32_t left, int32_t right, size_t mask) {
    uint32_t h = ((uint32_t)left * 0x9E3779B1u) ^ ((uint32_t)right * 0x85EBCA77u);
    return (size_t)(h ^ (h >> 15)) & mask;
}

static const lisa__bpe_pair *lisa__bpe_pair_find(const lisa__bpe_model *m, int32_t left, int32_t right) {
    size_t slot;
    if (!m->pairs) return NULL;
    for (slot = lisa__bpe_pair_slot(left, right, m->pair_mask);; slot = (slot + 1) & m->pair_mask) {
        const lisa__bpe_pair *p = &m->pairs[slot];
        if (p->left < 0) return NULL;
        if (p->left == left && p->right == right) return p;
    }
}

/* Checks the settings against a vocabulary of n ids. */
static lisa_result lisa__bpe_check_settings(const lisa__bpe_builder *b, lisa_error *err) {
    const lisa__bpe_settings *s = &b->set;
    const int ids[4] = {s->unk_id, s->bos_id, s->eos_id, s->pad_id};
    static const char *const id_names[4] = {"unknown", "BOS", "EOS", "padding"};
    int i, joined = 0;
    for (i = 0; i < 4; i++)
        if (ids[i] < -1 || ids[i] >= b->n_tokens || (ids[i] >= 0 && !b->tokens[ids[i]].given))
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: the %s token id %d is not in the vocabulary of %d", b->name,
                              id_names[i], ids[i], b->n_tokens);
    if ((s->add_bos && s->bos_id < 0) || (s->add_eos && s->eos_id < 0))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: %s is to be added but there is no %s token", b->name,
                          s->add_bos && s->bos_id < 0 ? "BOS" : "EOS", s->add_bos && s->bos_id < 0 ? "BOS" : "EOS");
    if (s->rank != LISA__BPE_BY_RANK && s->rank != LISA__BPE_BY_SCORE)
        return lisa__fail(err, LISA_ERR_INVALID, "%s: unknown merge ranking %d", b->name, s->rank);
    if (s->rank == LISA__BPE_BY_SCORE && b->n_merges > 0)
        return lisa__fail(err, LISA_ERR_INVALID, "%s: merges are ranked by score, yet %d merges are given", b->name,
                          b->n_merges);
    if (s->n_norm < 0 || s->n_norm > LISA__BPE_MAX_STEPS || s->n_pretok < 0 || s->n_pretok > LISA__BPE_MAX_STEPS ||
        s->n_dec < 0 || s->n_dec > LISA__BPE_MAX_STEPS)
        return lisa__fail(err, LISA_ERR_INVALID, "%s: more than %d normalizer, pre-tokenizer or decoder steps", b->name,
                          LISA__BPE_MAX_STEPS);
    for (i = 0; i < s->n_norm + s->n_pretok + s->n_dec; i++) {
        const lisa__bpe_step *st = i < s->n_norm ? &s->norm[i]
                                 : i < s->n_norm + s->n_pretok ? &s->pretok[i - s->n_norm]
                                 : &s->dec[i - s->n_norm - s->n_pretok];
        int list = i < s->n_norm ? 0 : i < s->n_norm + s->n_pretok ? 1 : 2;
        int lo = list == 0 ? LISA__BPE_N_PREPEND : list == 1 ? LISA__BPE_P_SCAN : LISA__BPE_D_BYTELEVEL;
        int hi = list == 0 ? LISA__BPE_N_NFC : list == 1 ? LISA__BPE_P_METASPACE : LISA__BPE_D_METASPACE;
        int needs_a = st->op != LISA__BPE_N_NFC && st->op != LISA__BPE_P_SCAN && st->op != LISA__BPE_P_BYTELEVEL &&
                      st->op != LISA__BPE_D_BYTELEVEL && st->op != LISA__BPE_D_BYTEFALLBACK && st->op != LISA__BPE_D_FUSE;
        uint32_t cp;
        if (st->op < lo || st->op > hi)
            return lisa__fail(err, LISA_ERR_INVALID, "%s: step %d of list %d has op %d", b->name, i, list, st->op);
        if (st->na < 0 || st->na > LISA__BPE_MAX_STR || st->nb < 0 || st->nb > LISA__BPE_MAX_STR || (needs_a && st->na == 0))
            return lisa__fail(err, LISA_ERR_INVALID, "%s: step %d of list %d has strings of %d and %d bytes", b->name, i,
                              list, st->na, st->nb);
        if (st->op == LISA__BPE_N_REPLACE && st->nb > 0 &&
            lisa__utf8_decode((const unsigned char *)st->b, (size_t)st->nb, &cp) != st->nb)
            return lisa__fail(err, LISA_ERR_INVALID, "%s: a normalizer replacement \"%.*s\" longer than one character is not supported",
                              b->name, st->nb, st->b);
        if (st->op == LISA__BPE_P_BYTELEVEL && i != s->n_norm + s->n_pretok - 1)
            return lisa__fail(err, LISA_ERR_INVALID, "%s: the ByteLevel pre-tokenizer must be the last one", b->name);
        if (list == 2) {
            if (joined && st->op != LISA__BPE_D_STRIP)
                return lisa__fail(err, LISA_ERR_INVALID, "%s: decoder step %d comes after the tokens are joined; only Strip may",
                                  b->name, i - s->n_norm - s->n_pretok);
            if (joined && st->flag != 0)
                return lisa__fail(err, LISA_ERR_INVALID, "%s: a Strip decoder that takes trailing characters of the joined text is not supported",
                                  b->name);
            if (st->op == LISA__BPE_D_BYTELEVEL || st->op == LISA__BPE_D_FUSE) joined = 1;
        }
    }
    return LISA_OK;
}

/* Added tokens' match strings (i is off[i] .. off[i + 1] of text, ids ascending)
   sorted by first byte, then longest first, then id: a merge sort of ids (n) using tmp (n). */
static int lisa__bpe_added_before(const size_t *off, const char *text, int32_t a, int32_t b) {
    const unsigned char *pa = (const unsigned char *)text + off[a], *pb = (const unsigned char *)text + off[b];
    size_t la = off[a + 1] - off[a], lb = off[b + 1] - off[b];
    if (pa[0] != pb[0]) return pa[0] < pb[0];
    if (la != lb) return la > lb;
    return a < b;
}

static void lisa__bpe_sort_added(int32_t *ids, int32_t *tmp, size_t n, const size_t *off, const char *text) {
    size_t width, i;
    for (width = 1; width < n; width *= 2) {
        for (i = 0; i < n; i += 2 * width) {
            size_t mid = i + width < n ? i + width : n, end = i + 2 * width < n ? i + 2 * width : n, a = i, c = mid, o = i;
            while (a < mid && c < end) tmp[o++] = lisa__bpe_added_before(off, text, ids[c], ids[a]) ? ids[c++] : ids[a++];
            while (a < mid) tmp[o++] = ids[a++];
            while (c < end) tmp[o++] = ids[c++];
        }
        memcpy(ids, tmp, n * sizeof *ids);
    }
}

/* NFC of s[0..n) appended to k. */
static void lisa__bpe_put_nfc(lisa__bpe_sink *k, const char *s, size_t n) {
    size_t bytes = LISA__NFC_WORK(n) * sizeof(lisa__nfc_char), at = k->n;
    lisa__nfc_char *work;
    if (k->failed) return;
    if (n > (size_t)-1 / 64 || !(work = (lisa__nfc_char *)lisa__alloc(k->a, bytes, k->bytes))) {
        k->failed = 1;
        return;
    }
    lisa__bpe_put(k, NULL, LISA__NFC_GROWTH * n);
    if (!k->failed) k->n = at + lisa__nfc((const unsigned char *)s, n, (unsigned char *)k->p + at, NULL, work);
    lisa__free(k->a, work, bytes, k->bytes);
}

/* The normalizer applied to one string (an added token's content), appended to out. */
static void lisa__bpe_normalize_string(const lisa__bpe_settings *set, const char *s, size_t n, lisa__bpe_sink *out,
                                       lisa__bpe_sink *tmp) {
    int i;
    size_t start = out->n;
    lisa__bpe_put(out, s, n);
    for (i = 0; i < set->n_norm && !out->failed; i++) {
        const lisa__bpe_step *st = &set->norm[i];
        tmp->n = 0;
        if (st->op == LISA__BPE_N_PREPEND) {
            if (out->n == start) continue;
            lisa__bpe_put(tmp, st->a, (size_t)st->na);
            lisa__bpe_put(tmp, out->p + start, out->n - start);
        } else if (st->op == LISA__BPE_N_NFC) {
            if (lisa__nfc_quick((const unsigned char *)out->p + start, out->n - start)) continue;
            lisa__bpe_put_nfc(tmp, out->p + start, out->n - start);
        } else {
            lisa__bpe_put_replaced(tmp, out->p + start, out->n - start, st->a, (size_t)st->na, st->b, (size_t)st->nb);
        }
        out->n = start;
        lisa__bpe_put(out, tmp->p, tmp->n);
        if (tmp->failed) out->failed = 1;
    }
}

/* The layout of the tokenizer's one allocation: a pass with base NULL
   measures, a pass with the buffer places. */
typedef struct lisa__bpe_layout {
    unsigned char *base;
    size_t used;
} lisa__bpe_layout;

static void *lisa__bpe_place(lisa__bpe_layout *l, size_t size) {
    size_t at = (l->used + 7) & ~(size_t)7;
    l->used = at + size;
    return l->base ? l->base + at : NULL;
}

static lisa_result lisa__bpe_builder_finish(lisa__bpe_builder *b, lisa_tokenizer *t, lisa_error *err) {
    const lisa__bpe_settings *set = &b->set;
    const lisa_allocator *al = &b->allocator;
    lisa__bpe_sink pieces, firsts, keys, matches, tmp;
    lisa__bpe_layout lay;
    lisa__bpe_model *m = NULL;
    size_t *poff = NULL, *foff = NULL, *koff = NULL, *moff = NULL, temp_size, fslots, kslots, pslots = 0, i, longest = 0;
    int32_t *order = NULL, *sort_tmp = NULL, *match_id = NULL;
    int n = b->n_tokens, n_added = 0, pass, id;
    lisa_result res = LISA_OK;
    unsigned char *buf = NULL;
    memset(t, 0, sizeof *t);
    t->allocator = b->allocator;
    if ((res = lisa__bpe_check_settings(b, err)) != LISA_OK) return res;
    if (n == 0) return lisa__fail(err, LISA_ERR_FORMAT, "%s: the vocabulary is empty", b->name);
    for (id = 0; id < n; id++)
        if (b->tokens[id].flags & LISA__BPE_ADDED) n_added++;
    memset(&pieces, 0, sizeof pieces);
    pieces.a = al;
    pieces.bytes = &b->bytes;
    firsts = keys = matches = tmp = pieces;
    temp_size = 3 * ((size_t)n + 1) * sizeof(size_t) + ((size_t)n_added + 1) * sizeof(size_t) +
                3 * ((size_t)n_added + 1) * sizeof(int32_t);
    poff = (size_t *)lisa__alloc(al, temp_size, &b->bytes);
    if (!poff) return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %d tokens", b->name, n);
    foff = poff + n + 1;
    koff = foff + n + 1;
    moff = koff + n + 1;
    order = (int32_t *)(void *)(moff + n_added + 1);
    sort_tmp = order + n_added + 1;
    match_id = sort_tmp + n_added + 1;
    /* Every id's piece (and first piece), key and, for added tokens, match string. */
    n_added = 0;
    for (id = 0; id < n; id++) {
        const lisa__bpe_btoken *k = &b->tokens[id];
        const char *s = b->pool + k->str;
        poff[id] = pieces.n;
        foff[id] = firsts.n;
        koff[id] = keys.n;
        if (k->given & 1) {
            if (!set->byte_level) {
                lisa__bpe_put(&keys, s, k->len);
            } else if (lisa__bytelevel_unmap(s, k->len, NULL) >= 0) {
                lisa__bpe_put(&keys, s, k->len); /* room, then unmapped in place */
                if (!keys.failed) keys.n = koff[id] + (size_t)lisa__bytelevel_unmap(s, k->len, (unsigned char *)keys.p + koff[id]);
            }
        }
        if (k->flags & LISA__BPE_ADDED) {
            moff[n_added] = matches.n;
            match_id[n_added] = id;
            if (k->flags & LISA__BPE_NORMALIZED) lisa__bpe_normalize_string(set, s, k->len, &matches, &tmp);
            else lisa__bpe_put(&matches, s, k->len);
            /* (a sink that ran out of memory is reported after the loop) */
            if (matches.n == moff[n_added] && !matches.failed && !tmp.failed) {
                res = lisa__fail(err, LISA_ERR_FORMAT, "%s: added token %d is empty once normalized", b->name, id);
                goto done;
            }
            order[n_added] = n_added;
            n_added++;
        }
        /* An added token normalized on the way in decodes from its normalized
           form, as `tokenizers` does. */
        if (k->given) {
            const char *d = s;
            size_t dn = k->len;
            if ((k->flags & LISA__BPE_ADDED) && (k->flags & LISA__BPE_NORMALIZED) && !matches.failed) {
                d = matches.p + moff[n_added - 1];
                dn = matches.n - moff[n_added - 1];
            }
            if ((k->flags & LISA__BPE_ADDED) && set->added_verbatim) {
                lisa__bpe_put(&pieces, d, dn);
                lisa__bpe_put(&firsts, d, dn);
            } else {
                lisa__bpe_decode_token(set, d, dn, 0, &pieces, &tmp);
                lisa__bpe_decode_token(set, d, dn, 1, &firsts, &tmp);
            }
        }
        lisa__bpe_put(&pieces, "", 1);
        lisa__bpe_put(&firsts, "", 1);
        if (k->len > longest) longest = k->len;
        if (pieces.n - poff[id] > longest) longest = pieces.n - poff[id];
    }
    poff[n] = pieces.n;
    foff[n] = firsts.n;
    koff[n] = keys.n;
    moff[n_added] = matches.n;
    if (pieces.failed || firsts.failed || keys.failed || matches.failed || tmp.failed) {
        res = lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for the token texts", b->name);
        goto done;
    }
    lisa__bpe_sort_added(order, sort_tmp, (size_t)n_added, moff, matches.p);
    fslots = lisa__bpe_slots((size_t)n);
    kslots = fslots;
    if (b->n_merges > 0) pslots = lisa__bpe_slots((size_t)b->n_merges);
    /* One allocation: measure, then place. */
    for (pass = 0; pass < 2; pass++) {
        size_t *offsets, *first_off, *key_off, *match_off;
        char *text, *first_text, *ktext, *mtext, *chat;
        int32_t *table, *key_table, *added;
        lisa__bpe_pair *pairs;
        unsigned char *flags;
        float *scores;
        lay.base = buf;
        lay.used = 0;
        m = (lisa__bpe_model *)lisa__bpe_place(&lay, sizeof *m);
        offsets = (size_t *)lisa__bpe_place(&lay, ((size_t)n + 1) * sizeof(size_t));
        first_off = (size_t *)lisa__bpe_place(&lay, ((size_t)n + 1) * sizeof(size_t));
        key_off = (size_t *)lisa__bpe_place(&lay, ((size_t)n + 1) * sizeof(size_t));
        match_off = (size_t *)lisa__bpe_place(&lay, ((size_t)n_added + 1) * sizeof(size_t));
        pairs = (lisa__bpe_pair *)lisa__bpe_place(&lay, pslots * sizeof(lisa__bpe_pair));
        scores = (float *)lisa__bpe_place(&lay, set->rank == LISA__BPE_BY_SCORE ? (size_t)n * sizeof(float) : 0);
        table = (int32_t *)lisa__bpe_place(&lay, fslots * sizeof(int32_t));
        key_table = (int32_t *)lisa__bpe_place(&lay, kslots * sizeof(int32_t));
        added = (int32_t *)lisa__bpe_place(&lay, (size_t)n_added * sizeof(int32_t));
        flags = (unsigned char *)lisa__bpe_place(&lay, (size_t)n);
        text = (char *)lisa__bpe_place(&lay, pieces.n);
        first_text = (char *)lisa__bpe_place(&lay, firsts.n);
        ktext = (char *)lisa__bpe_place(&lay, keys.n);
        mtext = (char *)lisa__bpe_place(&lay, matches.n);
        chat = (char *)lisa__bpe_place(&lay, b->chat_len ? b->chat_len + 1 : 0);
        if (pass == 0) {
            buf = (unsigned char *)lisa__alloc(al, lay.used, &t->bytes);
            if (!buf) {
                res = lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for a tokenizer of %d tokens (%lu bytes)",
                                 b->name, n, (unsigned long)lay.used);
                goto done;
            }
            t->buffer = buf;
            t->buffer_size = lay.used;
            continue;
        }
        memset(m, 0, sizeof *m);
        m->set = *set;
        memcpy(offsets, poff, ((size_t)n + 1) * sizeof(size_t));
        memcpy(first_off, foff, ((size_t)n + 1) * sizeof(size_t));
        memcpy(key_off, koff, ((size_t)n + 1) * sizeof(size_t));
        memcpy(text, pieces.p, pieces.n);
        memcpy(first_text, firsts.p, firsts.n);
        if (keys.n) memcpy(ktext, keys.p, keys.n);
        if (b->chat_len) {
            memcpy(chat, b->pool + b->chat, b->chat_len);
            chat[b->chat_len] = 0;
            t->chat_template = chat;
            t->chat_template_len = b->chat_len;
        }
        /* Added tokens in match order. */
        match_off[0] = 0;
        for (i = 0; i < (size_t)n_added; i++) {
            int32_t j = order[i];
            size_t len = moff[j + 1] - moff[j];
            added[i] = match_id[j];
            memcpy(mtext + match_off[i], matches.p + moff[j], len);
            match_off[i + 1] = match_off[i] + len;
        }
        for (i = 0; i < 257; i++) m->added_start[i] = n_added;
        for (i = (size_t)n_added; i-- > 0;) m->added_start[(unsigned char)mtext[match_off[i]]] = (int32_t)i;
        for (i = 256; i-- > 0;)
            if (m->added_start[i] > m->added_start[i + 1]) m->added_start[i] = m->added_start[i + 1];
        for (id = 0; id < n; id++) {
            const lisa__bpe_btoken *k = &b->tokens[id];
            flags[id] = (unsigned char)((k->flags & 63u) | (k->given ? 0u : LISA__BPE_HOLE));
            if (scores) scores[id] = k->score;
            if ((k->flags & LISA__BPE_ADDED) && (k->flags & LISA__BPE_NORMALIZED)) m->has_norm_added = 1;
            else if (k->flags & LISA__BPE_ADDED) m->has_raw_added = 1;
        }
        m->key_off = key_off;
        m->keys = ktext;
        m->key_table = key_table;
        m->key_mask = kslots - 1;
        m->first_off = first_off;
        m->first_text = first_text;
        m->flags = flags;
        m->added = added;
        m->match_off = match_off;
        m->match_text = mtext;
        m->n_added = n_added;
        t->kind = LISA_TOKENIZER_BPE;
        t->vocab_size = n;
        t->offsets = offsets;
        t->text = text;
        t->table = table;
        t->hash_mask = fslots - 1;
        t->scores = scores;
        t->bpe = m;
        for (i = 0; i < fslots; i++) table[i] = key_table[i] = -1;
        /* The find table: pieces, the lowest id of a repeated one. */
        for (id = 0; id < n; id++) {
            size_t len = offsets[id + 1] - offsets[id] - 1, slot;
            if (len == 0 || lisa__tok_find2(t, text + offsets[id], len, "", 0) >= 0) continue;
            slot = lisa__fnv1a(LISA__FNV_SEED, (const unsigned char *)text + offsets[id], len) & t->hash_mask;
            while (table[slot] >= 0) slot = (slot + 1) & t->hash_mask;
            table[slot] = id;
        }
        /* The key table: a key given twice is an error, as the model's vocabulary is a map. */
        for (id = 0; id < n; id++) {
            size_t len = key_off[id + 1] - key_off[id], slot;
            int other;
            if (len == 0) continue;
            if ((other = lisa__bpe_key_find2(m, ktext + key_off[id], len, "", 0)) >= 0) {
                res = lisa__fail(err, LISA_ERR_FORMAT, "%s: token \"%.40s\" is both id %d and id %d", b->name,
                                 b->pool + b->tokens[id].str, other, id);
                goto done;
            }
            slot = lisa__fnv1a(LISA__FNV_SEED, (const unsigned char *)ktext + key_off[id], len) & m->key_mask;
            while (key_table[slot] >= 0) slot = (slot + 1) & m->key_mask;
            key_table[slot] = id;
        }
        for (i = 0; i < 256; i++) {
            char hex[8];
            unsigned char byte = (unsigned char)i;
            m->byte_id[i] = set->byte_level ? lisa__bpe_key_find2(m, (const char *)&byte, 1, "", 0) : -1;
            snprintf(hex, sizeof hex, "<0x%02X>", (unsigned)i);
            m->fallback_id[i] = lisa__bpe_key_find2(m, hex, 6, "", 0);
        }
        /* The merges: (left id, right id) -> rank and merged id; a later repeat wins, as in a map. */
        if (pslots) {
            m->pairs = pairs;
            m->pair_mask = pslots - 1;
            for (i = 0; i < pslots; i++) pairs[i].left = -1;
        }
        for (i = 0; i < (size_t)b->n_merges; i++) {
            const lisa__bpe_bmerge *mg = &b->merges[i];
            int32_t ids[3];
            int side;
            unsigned char *kb = (unsigned char *)tmp.p;
            size_t kl[2] = {0, 0}, slot;
            tmp.n = 0;
            lisa__bpe_put(&tmp, NULL, mg->len[0] + mg->len[1]);
            if (tmp.failed) {
                res = lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for the merges", b->name);
                goto done;
            }
            kb = (unsigned char *)tmp.p;
            for (side = 0; side < 2; side++) {
                const char *ps = b->pool + mg->str[side];
                long k = set->byte_level ? lisa__bytelevel_unmap(ps, mg->len[side], kb + kl[0]) : (long)mg->len[side];
                if (!set->byte_level) memcpy(kb + kl[0], ps, mg->len[side]);
                ids[side] = k < 0 ? -1 : lisa__bpe_key_find2(m, (const char *)kb + kl[0], (size_t)k, "", 0);
                if (ids[side] < 0) {
                    res = lisa__fail(err, LISA_ERR_FORMAT, "%s: merge %lu (\"%.40s\" \"%.40s\") names \"%.40s\", which is not in the vocabulary",
                                     b->name, (unsigned long)i, b->pool + mg->str[0], b->pool + mg->str[1], ps);
                    goto done;
                }
                kl[side] = (size_t)k;
                if (side == 0) kl[0] = (size_t)k;
            }
            ids[2] = lisa__bpe_key_find2(m, (const char *)kb, kl[0] + kl[1], "", 0);
            if (ids[2] < 0) {
                res = lisa__fail(err, LISA_ERR_FORMAT, "%s: merge %lu (\"%.40s\" \"%.40s\") makes a token that is not in the vocabulary",
                                 b->name, (unsigned long)i, b->pool + mg->str[0], b->pool + mg->str[1]);
                goto done;
            }
            for (slot = lisa__bpe_pair_slot(ids[0], ids[1], m->pair_mask); pairs[slot].left >= 0 &&
                 !(pairs[slot].left == ids[0] && pairs[slot].right == ids[1]); slot = (slot + 1) & m->pair_mask) {
            }
            pairs[slot].left = ids[0];
            pairs[slot].right = ids[1];
            pairs[slot].rank = (int32_t)i;
            pairs[slot].merged = ids[2];
        }
    }
    t->bos_id = set->bos_id;
    t->eos_id = set->eos_id;
    t->unk_id = set->unk_id;
    t->pad_id = set->pad_id;
    t->add_bos = set->add_bos;
    t->add_eos = set->add_eos;
    t->space_id = -1;
    t->max_token_length = longest > (size_t)LISA__TOK_MAX_PIECE ? LISA__TOK_MAX_PIECE : (int)longest;
done:
    if (res != LISA_OK) {
        lisa_tokenizer_free(t);
        memset(t, 0, sizeof *t);
    }
    lisa__free(al, poff, temp_size, &b->bytes);
    lisa__bpe_sink_free(&pieces);
    lisa__bpe_sink_free(&firsts);
    lisa__bpe_sink_free(&keys);
    lisa__bpe_sink_free(&matches);
    lisa__bpe_sink_free(&tmp);
    if (res == LISA_OK) lisa__ok(err);
    return res;
}

/* ---- BPE: Hugging Face tokenizer.json ---------------------------------- */

typedef struct lisa__hft {
    lisa__bpe_builder *b;
    const lisa_json *j;
    const char *name;
    lisa_error *err;
    int bos_id, eos_id;        /* from the post-processor, -1: none */
    int has_template;          /* a post-processor that adds tokens was read */
    long max_id;               /* the highest id the file may use: its vocabulary and added
                                  tokens counted, so that an id sizes no more than the file */
} lisa__hft;

static const char *lisa__hft_str(const lisa_json *j, int obj, const char *key, size_t *len) {
    return lisa_json_string(j, lisa_json_get(j, obj, key), len);
}

/* A boolean member (absent or null: dflt), or -1 when it is something else. */
static int lisa__hft_bool(const lisa_json *j, int obj, const char *key, int dflt) {
    lisa_json_type ty = lisa_json_type_of(j, lisa_json_get(j, obj, key));
    if (ty == LISA_JSON_NONE || ty == LISA_JSON_NULL) return dflt;
    if (ty == LISA_JSON_TRUE) return 1;
    if (ty == LISA_JSON_FALSE) return 0;
    return -1;
}

/* A member that must be a boolean: *out gets it. */
static lisa_result lisa__hft_flag(lisa__hft *h, int obj, const char *what, const char *key, int dflt, int *out) {
    *out = lisa__hft_bool(h->j, obj, key, dflt);
    if (*out < 0) return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: %s.%s is not true or false", h->name, what, key);
    return LISA_OK;
}

/* A member that must be a whole number in lo..hi. */
static lisa_result lisa__hft_int(lisa__hft *h, int node, const char *what, long lo, long hi, long *out) {
    double v = lisa_json_number(h->j, node);
    if (lisa_json_type_of(h->j, node) != LISA_JSON_NUMBER || v != floor(v) || v < (double)lo || v > (double)hi)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: %s is not a whole number in %ld..%ld", h->name, what, lo, hi);
    *out = (long)v;
    return LISA_OK;
}

/* A step string (a, b) from a JSON string; at most LISA__BPE_MAX_STR bytes. */
static lisa_result lisa__hft_step_str(lisa__hft *h, const char *s, size_t n, const char *what, char *out, int *nout) {
    if (!s) return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: %s is missing or not a string", h->name, what);
    if (n > LISA__BPE_MAX_STR)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: %s \"%.40s\" is longer than %d bytes", h->name, what, s,
                          LISA__BPE_MAX_STR);
    memcpy(out, s, n);
    *nout = (int)n;
    return LISA_OK;
}

/* A Replace's {"String": s} pattern (a regex pattern is not supported). */
static const char *lisa__hft_pattern(lisa__hft *h, int node, const char *what, int *regex, size_t *len) {
    int p = lisa_json_get(h->j, node, "pattern");
    const char *s = lisa__hft_str(h->j, p, "String", len);
    *regex = 0;
    if (!s && (s = lisa__hft_str(h->j, p, "Regex", len)) != NULL) *regex = 1;
    if (!s) lisa__fail(h->err, LISA_ERR_FORMAT, "%s: %s has no pattern {\"String\": ...} or {\"Regex\": ...}", h->name, what);
    return s;
}

static lisa__bpe_step *lisa__hft_add_step(lisa__hft *h, lisa__bpe_step *list, int *n, const char *what) {
    lisa__bpe_step *st;
    if (*n >= LISA__BPE_MAX_STEPS) {
        lisa__fail(h->err, LISA_ERR_FORMAT, "%s: more than %d %s steps", h->name, LISA__BPE_MAX_STEPS, what);
        return NULL;
    }
    st = &list[(*n)++];
    memset(st, 0, sizeof *st);
    return st;
}

/* The node's "type" string, or an error naming the component. */
static const char *lisa__hft_type(lisa__hft *h, int node, const char *what) {
    const char *ty = lisa__hft_str(h->j, node, "type", NULL);
    if (!ty) lisa__fail(h->err, LISA_ERR_FORMAT, "%s: the %s is not an object with a \"type\" string", h->name, what);
    return ty;
}

static lisa_result lisa__hft_unsupported(lisa__hft *h, const char *what, const char *ty) {
    return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: %s \"%.60s\" is not supported", h->name, what, ty);
}

/* A component of one stage (normalizer, pre-tokenizer, decoder, post-processor). */
typedef lisa_result (*lisa__hft_stage_fn)(lisa__hft *h, int node, int depth);

/* A stage's Sequence: each element of its `members` array read by fn, one level deeper. */
static lisa_result lisa__hft_sequence(lisa__hft *h, int node, int depth, const char *stage, const char *members,
                                      lisa__hft_stage_fn fn) {
    int c, list = lisa_json_get(h->j, node, members);
    lisa_result r;
    if (lisa_json_type_of(h->j, list) != LISA_JSON_ARRAY)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: %s Sequence has no \"%s\" array", h->name, stage, members);
    for (c = lisa_json_first(h->j, list); c >= 0; c = lisa_json_next(h->j, c))
        if ((r = fn(h, c, depth + 1)) != LISA_OK) return r;
    return LISA_OK;
}

static lisa_result lisa__hft_normalizer(lisa__hft *h, int node, int depth) {
    lisa__bpe_settings *set = &h->b->set;
    const char *ty;
    lisa__bpe_step *st;
    size_t n;
    const char *s;
    int regex;
    lisa_result r;
    if (lisa_json_type_of(h->j, node) == LISA_JSON_NULL || node < 0) return LISA_OK;
    if (!(ty = lisa__hft_type(h, node, "normalizer"))) return LISA_ERR_FORMAT;
    if (strcmp(ty, "Sequence") == 0 && depth < 4)
        return lisa__hft_sequence(h, node, depth, "normalizer", "normalizers", lisa__hft_normalizer);
    if (strcmp(ty, "Prepend") == 0) {
        if (!(st = lisa__hft_add_step(h, set->norm, &set->n_norm, "normalizer"))) return LISA_ERR_FORMAT;
        st->op = LISA__BPE_N_PREPEND;
        s = lisa__hft_str(h->j, node, "prepend", &n);
        if (n == 0 && s) return LISA_OK;
        return lisa__hft_step_str(h, s, n, "normalizer Prepend's prepend", st->a, &st->na);
    }
    if (strcmp(ty, "Replace") == 0) {
        if (!(s = lisa__hft_pattern(h, node, "normalizer Replace", &regex, &n))) return LISA_ERR_FORMAT;
        if (regex) return lisa__hft_unsupported(h, "normalizer Replace with a regex", s);
        if (!(st = lisa__hft_add_step(h, set->norm, &set->n_norm, "normalizer"))) return LISA_ERR_FORMAT;
        st->op = LISA__BPE_N_REPLACE;
        if ((r = lisa__hft_step_str(h, s, n, "normalizer Replace's pattern", st->a, &st->na)) != LISA_OK) return r;
        if (n == 0) return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: normalizer Replace has an empty pattern", h->name);
        s = lisa__hft_str(h->j, node, "content", &n);
        return lisa__hft_step_str(h, s, n, "normalizer Replace's content", st->b, &st->nb);
    }
    if (strcmp(ty, "NFC") == 0) {
        if (!(st = lisa__hft_add_step(h, set->norm, &set->n_norm, "normalizer"))) return LISA_ERR_FORMAT;
        st->op = LISA__BPE_N_NFC;
        return LISA_OK;
    }
    if (strcmp(ty, "NFD") == 0 || strcmp(ty, "NFKC") == 0 || strcmp(ty, "NFKD") == 0)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: normalizer \"%s\" is not supported (of the Unicode normalizers only NFC is)",
                          h->name, ty);
    return lisa__hft_unsupported(h, "normalizer", ty);
}

/* GPT-2's pre-tokenizer regex, which ByteLevel's use_regex means. */
static const char lisa__gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static lisa_result lisa__hft_pretok(lisa__hft *h, int node, int depth) {
    lisa__bpe_settings *set = &h->b->set;
    const char *ty, *s;
    lisa__bpe_step *st;
    size_t n;
    int v;
    lisa_result r;
    if (lisa_json_type_of(h->j, node) == LISA_JSON_NULL || node < 0) return LISA_OK;
    if (!(ty = lisa__hft_type(h, node, "pre_tokenizer"))) return LISA_ERR_FORMAT;
    if (strcmp(ty, "Sequence") == 0 && depth < 4)
        return lisa__hft_sequence(h, node, depth, "pre_tokenizer", "pretokenizers", lisa__hft_pretok);
    if (set->n_pretok > 0 && set->pretok[set->n_pretok - 1].op == LISA__BPE_P_BYTELEVEL)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: pre_tokenizer \"%.40s\" after ByteLevel is not supported", h->name, ty);
    if (!(st = lisa__hft_add_step(h, set->pretok, &set->n_pretok, "pre_tokenizer"))) return LISA_ERR_FORMAT;
    if (strcmp(ty, "ByteLevel") == 0) {
        st->op = LISA__BPE_P_BYTELEVEL;
        set->byte_level = 1;
        if ((r = lisa__hft_flag(h, node, "pre_tokenizer ByteLevel", "add_prefix_space", 1, &st->flag)) != LISA_OK ||
            (r = lisa__hft_flag(h, node, "pre_tokenizer ByteLevel", "use_regex", 1, &v)) != LISA_OK)
            return r;
        if (v && !(st->kind = lisa__pretok_from_pattern(lisa__gpt2_pattern, sizeof lisa__gpt2_pattern - 1)))
            return lisa__hft_unsupported(h, "pre_tokenizer ByteLevel's regex", lisa__gpt2_pattern);
        return LISA_OK;
    }
    if (strcmp(ty, "Split") == 0) {
        int regex;
        if (!(s = lisa__hft_pattern(h, node, "pre_tokenizer Split", &regex, &n))) return LISA_ERR_FORMAT;
        if (!regex) return lisa__hft_unsupported(h, "pre_tokenizer Split on a string", s);
        st->op = LISA__BPE_P_SCAN;
        if (!(st->kind = lisa__pretok_from_pattern(s, n))) return lisa__hft_unsupported(h, "pre_tokenizer Split regex", s);
        if (!(s = lisa__hft_str(h->j, node, "behavior", NULL)) || strcmp(s, "Isolated") != 0)
            return lisa__hft_unsupported(h, "pre_tokenizer Split behavior", s ? s : "(none)");
        if ((r = lisa__hft_flag(h, node, "pre_tokenizer Split", "invert", 0, &v)) != LISA_OK) return r;
        if (v) return lisa__hft_unsupported(h, "pre_tokenizer Split with invert", "true");
        return LISA_OK;
    }
    if (strcmp(ty, "Digits") == 0) {
        st->op = LISA__BPE_P_SCAN;
        if ((r = lisa__hft_flag(h, node, "pre_tokenizer Digits", "individual_digits", 0, &v)) != LISA_OK) return r;
        st->kind = v ? LISA__PRETOK_DIGITS_EACH : LISA__PRETOK_DIGITS_RUNS;
        return LISA_OK;
    }
    if (strcmp(ty, "Metaspace") == 0) {
        int aps;
        uint32_t cp;
        st->op = LISA__BPE_P_METASPACE;
        s = lisa__hft_str(h->j, node, "replacement", &n);
        if ((r = lisa__hft_step_str(h, s, n, "pre_tokenizer Metaspace's replacement", st->a, &st->na)) != LISA_OK) return r;
        if (n == 0 || lisa__utf8_decode((const unsigned char *)s, n, &cp) != (int)n)
            return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: pre_tokenizer Metaspace's replacement is not one character", h->name);
        if ((r = lisa__hft_flag(h, node, "pre_tokenizer Metaspace", "split", 1, &st->flag)) != LISA_OK ||
            (r = lisa__hft_flag(h, node, "pre_tokenizer Metaspace", "add_prefix_space", 1, &aps)) != LISA_OK)
            return r;
        s = lisa__hft_str(h->j, node, "prepend_scheme", NULL);
        st->kind = !s || strcmp(s, "always") == 0 ? 1 : strcmp(s, "first") == 0 ? 2 : strcmp(s, "never") == 0 ? 0 : -1;
        if (st->kind < 0) return lisa__hft_unsupported(h, "pre_tokenizer Metaspace prepend_scheme", s);
        if (!aps) st->kind = 0;
        return LISA_OK;
    }
    return lisa__hft_unsupported(h, "pre_tokenizer", ty);
}

static lisa_result lisa__hft_decoder(lisa__hft *h, int node, int depth) {
    lisa__bpe_settings *set = &h->b->set;
    const char *ty, *s;
    lisa__bpe_step *st;
    size_t n;
    lisa_result r;
    if (lisa_json_type_of(h->j, node) == LISA_JSON_NULL || node < 0) return LISA_OK;
    if (!(ty = lisa__hft_type(h, node, "decoder"))) return LISA_ERR_FORMAT;
    if (strcmp(ty, "Sequence") == 0 && depth < 4)
        return lisa__hft_sequence(h, node, depth, "decoder", "decoders", lisa__hft_decoder);
    if (!(st = lisa__hft_add_step(h, set->dec, &set->n_dec, "decoder"))) return LISA_ERR_FORMAT;
    if (strcmp(ty, "ByteLevel") == 0) {
        st->op = LISA__BPE_D_BYTELEVEL;
        return LISA_OK;
    }
    if (strcmp(ty, "ByteFallback") == 0) {
        st->op = LISA__BPE_D_BYTEFALLBACK;
        return LISA_OK;
    }
    if (strcmp(ty, "Fuse") == 0) {
        st->op = LISA__BPE_D_FUSE;
        return LISA_OK;
    }
    if (strcmp(ty, "Replace") == 0) {
        int regex;
        st->op = LISA__BPE_D_REPLACE;
        if (!(s = lisa__hft_pattern(h, node, "decoder Replace", &regex, &n))) return LISA_ERR_FORMAT;
        if (regex) return lisa__hft_unsupported(h, "decoder Replace with a regex", s);
        if ((r = lisa__hft_step_str(h, s, n, "decoder Replace's pattern", st->a, &st->na)) != LISA_OK) return r;
        s = lisa__hft_str(h->j, node, "content", &n);
        return lisa__hft_step_str(h, s, n, "decoder Replace's content", st->b, &st->nb);
    }
    if (strcmp(ty, "Strip") == 0) {
        long v;
        st->op = LISA__BPE_D_STRIP;
        s = lisa__hft_str(h->j, node, "content", &n);
        if ((r = lisa__hft_step_str(h, s, n, "decoder Strip's content", st->a, &st->na)) != LISA_OK) return r;
        if ((r = lisa__hft_int(h, lisa_json_get(h->j, node, "start"), "decoder Strip's start", 0, 1 << 20, &v)) != LISA_OK)
            return r;
        st->kind = (int)v;
        if ((r = lisa__hft_int(h, lisa_json_get(h->j, node, "stop"), "decoder Strip's stop", 0, 1 << 20, &v)) != LISA_OK)
            return r;
        st->flag = (int)v;
        return LISA_OK;
    }
    if (strcmp(ty, "Metaspace") == 0) {
        int aps;
        st->op = LISA__BPE_D_METASPACE;
        s = lisa__hft_str(h->j, node, "replacement", &n);
        if ((r = lisa__hft_step_str(h, s, n, "decoder Metaspace's replacement", st->a, &st->na)) != LISA_OK) return r;
        if ((r = lisa__hft_flag(h, node, "decoder Metaspace", "add_prefix_space", 1, &aps)) != LISA_OK) return r;
        s = lisa__hft_str(h->j, node, "prepend_scheme", NULL);
        if (s && strcmp(s, "always") != 0 && strcmp(s, "first") != 0 && strcmp(s, "never") != 0)
            return lisa__hft_unsupported(h, "decoder Metaspace prepend_scheme", s);
        st->kind = aps && !(s && strcmp(s, "never") == 0);
        return LISA_OK;
    }
    return lisa__hft_unsupported(h, "decoder", ty);
}

/* The id of a TemplateProcessing special token: its one id. */
static lisa_result lisa__hft_template_id(lisa__hft *h, int special_tokens, const char *name, int *id) {
    int ids = lisa_json_get(h->j, lisa_json_get(h->j, special_tokens, name), "ids");
    long v;
    lisa_result r;
    if (lisa_json_type_of(h->j, ids) != LISA_JSON_ARRAY || lisa_json_length(h->j, ids) != 1)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: post_processor special token \"%.40s\" is not one id", h->name, name);
    if ((r = lisa__hft_int(h, lisa_json_first(h->j, ids), "a post_processor special token id", 0, LISA__MAX_VOCAB - 1, &v)) != LISA_OK)
        return r;
    *id = (int)v;
    return LISA_OK;
}

static lisa_result lisa__hft_post(lisa__hft *h, int node, int depth) {
    const char *ty;
    lisa_result r;
    if (lisa_json_type_of(h->j, node) == LISA_JSON_NULL || node < 0) return LISA_OK;
    if (!(ty = lisa__hft_type(h, node, "post_processor"))) return LISA_ERR_FORMAT;
    if (strcmp(ty, "Sequence") == 0 && depth < 4)
        return lisa__hft_sequence(h, node, depth, "post_processor", "processors", lisa__hft_post);
    if (strcmp(ty, "ByteLevel") == 0) return LISA_OK;  /* only offsets: no ids */
    if (strcmp(ty, "TemplateProcessing") == 0) {
        int single = lisa_json_get(h->j, node, "single"), specials = lisa_json_get(h->j, node, "special_tokens"), c;
        int seen_a = 0;
        if (h->has_template)
            return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: more than one TemplateProcessing post_processor", h->name);
        h->has_template = 1;
        if (lisa_json_type_of(h->j, single) != LISA_JSON_ARRAY)
            return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: post_processor TemplateProcessing has no \"single\" array", h->name);
        for (c = lisa_json_first(h->j, single); c >= 0; c = lisa_json_next(h->j, c)) {
            int sp = lisa_json_get(h->j, c, "SpecialToken"), seq = lisa_json_get(h->j, c, "Sequence");
            const char *tok = lisa__hft_str(h->j, sp, "id", NULL), *a = lisa__hft_str(h->j, seq, "id", NULL);
            int *slot = seen_a ? &h->eos_id : &h->bos_id;
            if (a && strcmp(a, "A") == 0 && !seen_a) {
                seen_a = 1;
                continue;
            }
            if (!tok || *slot >= 0)
                return lisa__fail(h->err, LISA_ERR_FORMAT,
                                  "%s: post_processor TemplateProcessing's single template is not [special] $A [special]", h->name);
            if ((r = lisa__hft_template_id(h, specials, tok, slot)) != LISA_OK) return r;
        }
        if (!seen_a)
            return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: post_processor TemplateProcessing's single template has no $A", h->name);
        return LISA_OK;
    }
    return lisa__hft_unsupported(h, "post_processor", ty);
}

/* The model: vocabulary, merges and options. */
static lisa_result lisa__hft_model(lisa__hft *h, int model) {
    lisa__bpe_builder *b = h->b;
    const lisa_json *j = h->j;
    const char *ty = lisa__hft_str(j, model, "type", NULL), *s;
    int vocab = lisa_json_get(j, model, "vocab"), merges = lisa_json_get(j, model, "merges"), c, rank = 0;
    lisa_json_type dt = lisa_json_type_of(j, lisa_json_get(j, model, "dropout"));
    static const char *const affixes[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    lisa_result r;
    size_t n;
    int i;
    if (lisa_json_type_of(j, model) != LISA_JSON_OBJECT)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: no \"model\" object", h->name);
    if (!ty) return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: model has no \"type\" (only BPE is supported)", h->name);
    if (strcmp(ty, "BPE") != 0) return lisa__hft_unsupported(h, "model type", ty);
    if (!(dt == LISA_JSON_NONE || dt == LISA_JSON_NULL ||
          (dt == LISA_JSON_NUMBER && lisa_json_number(j, lisa_json_get(j, model, "dropout")) == 0.0)))
        return lisa__hft_unsupported(h, "model option", "dropout");
    for (i = 0; i < 2; i++) {
        int node = lisa_json_get(j, model, affixes[i]);
        if (lisa_json_type_of(j, node) != LISA_JSON_NONE && lisa_json_type_of(j, node) != LISA_JSON_NULL &&
            !(lisa_json_string(j, node, &n) && n == 0))
            return lisa__hft_unsupported(h, "model option", affixes[i]);
    }
    if ((r = lisa__hft_flag(h, model, "model", "fuse_unk", 0, &b->set.fuse_unk)) != LISA_OK ||
        (r = lisa__hft_flag(h, model, "model", "byte_fallback", 0, &b->set.byte_fallback)) != LISA_OK ||
        (r = lisa__hft_flag(h, model, "model", "ignore_merges", 0, &b->set.ignore_merges)) != LISA_OK)
        return r;
    if (lisa_json_type_of(j, vocab) != LISA_JSON_OBJECT)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: model.vocab is not an object", h->name);
    if (lisa_json_length(j, vocab) > LISA__MAX_VOCAB)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: model.vocab has %d tokens, more than %d", h->name,
                          lisa_json_length(j, vocab), LISA__MAX_VOCAB);
    for (c = lisa_json_first(j, vocab); c >= 0; c = lisa_json_next(j, c)) {
        long id;
        const char *key = lisa_json_key(j, c, &n);
        if ((r = lisa__hft_int(h, c, "a model.vocab id", 0, h->max_id, &id)) != LISA_OK) return r;
        if ((r = lisa__bpe_builder_token(b, (int)id, key, n, 0.0f, 0, h->err)) != LISA_OK) return r;
    }
    if (lisa_json_type_of(j, merges) != LISA_JSON_ARRAY && lisa_json_type_of(j, merges) != LISA_JSON_NONE &&
        lisa_json_type_of(j, merges) != LISA_JSON_NULL)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: model.merges is not an array", h->name);
    for (c = lisa_json_first(j, merges); c >= 0; c = lisa_json_next(j, c), rank++) {
        const char *left = NULL, *right = NULL, *sp;
        size_t nl = 0, nr = 0;
        if ((s = lisa_json_string(j, c, &n)) != NULL) {
            if (n >= 8 && memcmp(s, "#version", 8) == 0) {
                rank--;
                continue;
            }
            sp = (const char *)memchr(s, ' ', n);
            if (sp && !memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s))) {
                left = s;
                nl = (size_t)(sp - s);
                right = sp + 1;
                nr = n - nl - 1;
            }
        } else if (lisa_json_length(j, c) == 2 && lisa_json_type_of(j, c) == LISA_JSON_ARRAY) {
            left = lisa_json_string(j, lisa_json_first(j, c), &nl);
            right = lisa_json_string(j, lisa_json_next(j, lisa_json_first(j, c)), &nr);
        }
        if (!left || !right || nl == 0 || nr == 0)
            return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: model.merges[%d] is not two tokens (\"a b\" or [\"a\", \"b\"])",
                              h->name, rank);
        if ((r = lisa__bpe_builder_merge(b, left, nl, right, nr, h->err)) != LISA_OK) return r;
    }
    return LISA_OK;
}

static lisa_result lisa__hft_added(lisa__hft *h, int list) {
    const lisa_json *j = h->j;
    int c, k = 0;
    lisa_result r;
    if (list < 0 || lisa_json_type_of(j, list) == LISA_JSON_NULL) return LISA_OK;
    if (lisa_json_type_of(j, list) != LISA_JSON_ARRAY)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: added_tokens is not an array", h->name);
    for (c = lisa_json_first(j, list); c >= 0; c = lisa_json_next(j, c), k++) {
        static const char *const names[5] = {"special", "single_word", "lstrip", "rstrip", "normalized"};
        static const unsigned bits[5] = {LISA__BPE_SPECIAL, LISA__BPE_SINGLE_WORD, LISA__BPE_LSTRIP, LISA__BPE_RSTRIP,
                                         LISA__BPE_NORMALIZED};
        unsigned flags = LISA__BPE_ADDED;
        size_t n;
        const char *content = lisa__hft_str(j, c, "content", &n);
        long id;
        int i, v, special = lisa__hft_bool(j, c, "special", 0);
        if (!content) return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: added_tokens[%d] has no \"content\" string", h->name, k);
        if ((r = lisa__hft_int(h, lisa_json_get(j, c, "id"), "an added token's id", 0, h->max_id, &id)) != LISA_OK)
            return r;
        for (i = 0; i < 5; i++) {
            if ((r = lisa__hft_flag(h, c, "added_tokens[]", names[i], i == 4 ? special != 1 : 0, &v)) != LISA_OK) return r;
            if (v) flags |= bits[i];
        }
        if ((r = lisa__bpe_builder_token(h->b, (int)id, content, n, 0.0f, flags, h->err)) != LISA_OK) return r;
    }
    return LISA_OK;
}

/* The id of a token named by text (an added token's content first, then the
   vocabulary, as `tokenizers` looks it up), or -1. */
static int lisa__hft_token_id(const lisa__bpe_builder *b, const char *s, size_t n) {
    int id, found = -1;
    if (!s) return -1;
    for (id = 0; id < b->n_tokens; id++) {
        const lisa__bpe_btoken *k = &b->tokens[id];
        if (k->given && k->len == n && memcmp(b->pool + k->str, s, n) == 0) {
            if (k->given & 2) return id;
            if (found < 0) found = id;
        }
    }
    return found;
}

/* A tokenizer_config.json token entry: a string or {"content": ...}. */
static const char *lisa__hft_config_token(const lisa_json *j, int root, const char *key, size_t *n) {
    int node = lisa_json_get(j, root, key);
    const char *s = lisa_json_string(j, node, n);
    return s ? s : lisa__hft_str(j, node, "content", n);
}

static lisa_result lisa__hft_config(lisa__hft *h, const lisa_json *cfg, int post_null) {
    lisa__bpe_builder *b = h->b;
    int root = lisa_json_root(cfg), ab, ae, tmpl;
    size_t n;
    const char *s;
    int bos = -1, eos = -1;
    lisa_result r;
    if (lisa_json_type_of(cfg, root) != LISA_JSON_OBJECT)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: tokenizer_config.json is not an object", h->name);
    if ((s = lisa__hft_config_token(cfg, root, "bos_token", &n)) != NULL) bos = lisa__hft_token_id(b, s, n);
    if ((s = lisa__hft_config_token(cfg, root, "eos_token", &n)) != NULL) eos = lisa__hft_token_id(b, s, n);
    if ((s = lisa__hft_config_token(cfg, root, "pad_token", &n)) != NULL) b->set.pad_id = lisa__hft_token_id(b, s, n);
    if (b->set.unk_id < 0 && (s = lisa__hft_config_token(cfg, root, "unk_token", &n)) != NULL)
        b->set.unk_id = lisa__hft_token_id(b, s, n);
    ab = lisa__hft_bool(cfg, root, "add_bos_token", -2);
    ae = lisa__hft_bool(cfg, root, "add_eos_token", -2);
    if (ab == -1 || ae == -1)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: tokenizer_config.json's add_bos_token / add_eos_token is not true or false",
                          h->name);
    /* transformers rebuilds the template from these when either is given or
       the file has no post-processor */
    if (ab != -2 || ae != -2 || post_null) {
        b->set.add_bos = ab == 1 && bos >= 0;
        b->set.add_eos = ae == 1 && eos >= 0;
        h->bos_id = b->set.add_bos ? bos : -1;
        h->eos_id = b->set.add_eos ? eos : -1;
    }
    if (h->bos_id < 0) h->bos_id = bos;
    if (h->eos_id < 0) h->eos_id = eos;
    tmpl = lisa_json_get(cfg, root, "chat_template");
    if ((s = lisa_json_string(cfg, tmpl, &n)) == NULL && lisa_json_type_of(cfg, tmpl) == LISA_JSON_ARRAY) {
        int c;
        for (c = lisa_json_first(cfg, tmpl); c >= 0; c = lisa_json_next(cfg, c))
            if (lisa__json_is(cfg, lisa_json_get(cfg, c, "name"), 0, "default"))
                s = lisa__hft_str(cfg, c, "template", &n);
    }
    if (s && (r = lisa__bpe_builder_chat_template(b, s, n, h->err)) != LISA_OK) return r;
    return LISA_OK;
}

static lisa_result lisa__hft_load(lisa__bpe_builder *b, const lisa_json *j, const lisa_json *cfg, const char *name,
                                  lisa_error *err) {
    lisa__hft h;
    int root = lisa_json_root(j), post = lisa_json_get(j, root, "post_processor"), i;
    static const char *const unsupported[2] = {"truncation", "padding"};
    lisa_result r;
    size_t n;
    const char *s;
    memset(&h, 0, sizeof h);
    h.b = b;
    h.j = j;
    h.name = name;
    h.err = err;
    h.bos_id = h.eos_id = -1;
    if (lisa_json_type_of(j, root) != LISA_JSON_OBJECT)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: not a JSON object", name);
    h.max_id = (long)lisa_json_length(j, lisa_json_get(j, lisa_json_get(j, root, "model"), "vocab")) +
               lisa_json_length(j, lisa_json_get(j, root, "added_tokens")) - 1;
    if (h.max_id > LISA__MAX_VOCAB - 1) h.max_id = LISA__MAX_VOCAB - 1;
    for (i = 0; i < 2; i++) {
        lisa_json_type ty = lisa_json_type_of(j, lisa_json_get(j, root, unsupported[i]));
        if (ty != LISA_JSON_NONE && ty != LISA_JSON_NULL) return lisa__hft_unsupported(&h, "setting", unsupported[i]);
    }
    if ((r = lisa__hft_model(&h, lisa_json_get(j, root, "model"))) != LISA_OK ||
        (r = lisa__hft_added(&h, lisa_json_get(j, root, "added_tokens"))) != LISA_OK ||
        (r = lisa__hft_normalizer(&h, lisa_json_get(j, root, "normalizer"), 0)) != LISA_OK ||
        (r = lisa__hft_pretok(&h, lisa_json_get(j, root, "pre_tokenizer"), 0)) != LISA_OK ||
        (r = lisa__hft_decoder(&h, lisa_json_get(j, root, "decoder"), 0)) != LISA_OK ||
        (r = lisa__hft_post(&h, post, 0)) != LISA_OK)
        return r;
    if ((s = lisa__hft_str(j, lisa_json_get(j, root, "model"), "unk_token", &n)) != NULL &&
        (b->set.unk_id = lisa__hft_token_id(b, s, n)) < 0)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: model.unk_token \"%.40s\" is not in the vocabulary", name, s);
    b->set.add_bos = h.bos_id >= 0;
    b->set.add_eos = h.eos_id >= 0;
    if (cfg && (r = lisa__hft_config(&h, cfg, post < 0 || lisa_json_type_of(j, post) == LISA_JSON_NULL)) != LISA_OK)
        return r;
    if (h.bos_id >= b->n_tokens || h.eos_id >= b->n_tokens)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: the post_processor adds id %d, outside the vocabulary of %d", name,
                          h.bos_id >= b->n_tokens ? h.bos_id : h.eos_id, b->n_tokens);
    b->set.bos_id = h.bos_id;
    b->set.eos_id = h.eos_id;
    b->set.rank = LISA__BPE_BY_RANK;
    return LISA_OK;
}

/* tokenizer.json text, tokenizer_config.json text (or NULL) and a chat
   template for when the config has none (or NULL) into t. */
static lisa_result lisa__tokenizer_load_hf(lisa_tokenizer *t, const char *json, size_t len, const char *config_json,
                                           size_t config_len, const char *chat, size_t chat_len, const char *name,
                                           const lisa_allocator *a, lisa_error *err) {
    lisa_json j, cfg;
    lisa__bpe_builder b;
    lisa_result r;
    char cname[512];
    memset(t, 0, sizeof *t);
    name = name ? name : "<tokenizer.json>";
    memset(&cfg, 0, sizeof cfg);
    if ((r = lisa_json_parse(&j, json, json ? len : 0, name, a, err)) != LISA_OK) {
        lisa_json_free(&j);
        return r;
    }
    snprintf(cname, sizeof cname, "%s (tokenizer_config.json)", name);
    if (config_json && (r = lisa_json_parse(&cfg, config_json, config_len, cname, a, err)) != LISA_OK) {
        lisa_json_free(&cfg);
        lisa_json_free(&j);
        return r;
    }
    lisa__bpe_builder_init(&b, name, a);
    r = lisa__hft_load(&b, &j, config_json ? &cfg : NULL, name, err);
    if (r == LISA_OK && chat && b.chat_len == 0) r = lisa__bpe_builder_chat_template(&b, chat, chat_len, err);
    if (r == LISA_OK) r = lisa__bpe_builder_finish(&b, t, err);
    lisa__bpe_builder_free(&b);
    lisa_json_free(&cfg);
    lisa_json_free(&j);
    return r;
}

LISADEF lisa_result lisa_tokenizer_load_hf_memory(lisa_tokenizer *t, const char *json, size_t len,
                                                  const char *config_json, size_t config_len, const char *name,
                                                  const lisa_allocator *a, lisa_error *err) {
    return lisa__tokenizer_load_hf(t, json, len, config_json, config_len, NULL, 0, name, a, err);
}

/* Merge state: symbols in a doubly linked list, and a binary heap of the
   symbols whose pair with their right neighbour has a piece, best first:
   higher score, then the leftmost (a symbol's index grows left to right and
   merging keeps the left symbol). Exactly one heap entry per such pair, so
   the top is always the pair run.c's full rescan would choose. Entries carry
   their key so that sifting stays within the heap array. The same heap
   serves a BPE tokenizer's merges list: there a pair's key is minus its
   rank, so the earliest merge goes first, leftmost on a tie, as
   `tokenizers` merges. */
typedef struct lisa__bpe_entry {
    double key;                /* higher merges first: a score, or minus a merge's rank */
    int sym;
} lisa__bpe_entry;

typedef struct lisa__bpe {
    const lisa_tokenizer *t;
    int *id, *prev, *next, *merged, *hpos;  /* hpos -1: not in the heap */
    int *start;                             /* byte offset of each symbol's text */
    lisa__bpe_entry *heap;
    int n_heap;
} lisa__bpe;

static int lisa__bpe_before(lisa__bpe_entry a, lisa__bpe_entry b) {
    return a.key > b.key || (a.key == b.key && a.sym < b.sym);
}

static void lisa__bpe_sift(lisa__bpe *s, int i) {
    lisa__bpe_entry e = s->heap[i];
    while (i > 0 && lisa__bpe_before(e, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        s->hpos[s->heap[i].sym] = i;
        i = (i - 1) / 2;
    }
    for (;;) {
        int l = 2 * i + 1, best = l;
        if (l >= s->n_heap) break;
        if (l + 1 < s->n_heap && lisa__bpe_before(s->heap[l + 1], s->heap[l])) best = l + 1;
        if (!lisa__bpe_before(s->heap[best], e)) break;
        s->heap[i] = s->heap[best];
        s->hpos[s->heap[i].sym] = i;
        i = best;
    }
    s->heap[i] = e;
    s->hpos[e.sym] = i;
}

static void lisa__bpe_remove(lisa__bpe *s, int sym) {
    int i = s->hpos[sym];
    if (i < 0) return;
    s->hpos[sym] = -1;
    s->n_heap--;
    if (i == s->n_heap) return;
    s->heap[i] = s->heap[s->n_heap];
    lisa__bpe_sift(s, i);
}

/* Whether tokens a and b merge: into *id, with heap key *key. */
static int lisa__bpe_pair_merges(const lisa_tokenizer *t, int a, int b, int *id, double *key) {
    if (t->kind == LISA_TOKENIZER_BPE) {
        const lisa__bpe_model *m = t->bpe;
        if (m->set.rank == LISA__BPE_BY_RANK) {
            const lisa__bpe_pair *p = lisa__bpe_pair_find(m, a, b);
            if (!p) return 0;
            *id = p->merged;
            *key = -(double)p->rank;
            return 1;
        }
        *id = lisa__bpe_key_find2(m, m->keys + m->key_off[a], m->key_off[a + 1] - m->key_off[a],
                                  m->keys + m->key_off[b], m->key_off[b + 1] - m->key_off[b]);
        if (*id < 0) return 0;
        *key = t->scores[*id];
        return 1;
    }
    *id = lisa__tok_find2(t, t->text + t->offsets[a], lisa__tok_piece_len(t, a),
                          t->text + t->offsets[b], lisa__tok_piece_len(t, b));
    if (*id < 0 || !(t->scores[*id] > LISA__TOK_NO_MERGE)) return 0;
    *key = t->scores[*id];
    return 1;
}

/* Recomputes the pair (sym, next[sym]) and puts it in, moves or takes it out of the heap. */
static void lisa__bpe_update(lisa__bpe *s, int sym) {
    int r = s->next[sym], id = -1, i;
    double key = 0.0;
    if (r < 0 || !lisa__bpe_pair_merges(s->t, s->id[sym], s->id[r], &id, &key)) {
        lisa__bpe_remove(s, sym);
        return;
    }
    s->merged[sym] = id;
    i = s->hpos[sym];
    if (i < 0) i = s->n_heap++;
    s->heap[i].key = key;
    s->heap[i].sym = sym;
    lisa__bpe_sift(s, i);
}

/* Merges the best pair until none is left. */
static void lisa__bpe_merge_all(lisa__bpe *s) {
    while (s->n_heap > 0) {
        int left = s->heap[0].sym, right = s->next[left];
        s->id[left] = s->merged[left];
        lisa__bpe_remove(s, right);
        s->next[left] = s->next[right];
        if (s->next[right] >= 0) s->prev[s->next[right]] = left;
        lisa__bpe_update(s, left);
        if (s->prev[left] >= 0) lisa__bpe_update(s, s->prev[left]);
    }
}

static lisa_result lisa__encode_llama2c(const lisa_tokenizer *t, const unsigned char *text, size_t len,
                                        int bos, int eos, int *ids, size_t *offsets, size_t max_ids,
                                        size_t *n_ids, lisa_error *err) {
    lisa__bpe s;
    lisa_allocator al = t->allocator;
    size_t cap = len + 2, bytes = 0, scratch, i, n_out;
    int n = 0, k, first = -1;
    void *mem;
    *n_ids = 0;
    if (len > (size_t)INT32_MAX - 8)
        return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: a text of %.0f bytes is too long to encode at once", (double)len);
    scratch = cap * (6 * sizeof(int) + sizeof(lisa__bpe_entry));
    mem = lisa__alloc(&al, scratch, &bytes);
    if (!mem) return lisa__fail(err, LISA_ERR_NOMEM, "tokenizer: out of memory for %lu bytes of encoding scratch",
                                (unsigned long)scratch);
    memset(&s, 0, sizeof s);
    s.t = t;
    s.heap = (lisa__bpe_entry *)mem;
    s.id = (int *)(void *)(s.heap + cap);
    s.prev = s.id + cap;
    s.next = s.prev + cap;
    s.merged = s.next + cap;
    s.hpos = s.merged + cap;
    s.start = s.hpos + cap;
    /* BOS takes part in merging, as in run.c (no real vocabulary has a
       piece that starts with BOS's, so in practice it stays alone). */
    if (bos) s.start[n] = 0, s.id[n++] = t->bos_id;
    if (len > 0 && t->space_id >= 0) s.start[n] = 0, s.id[n++] = t->space_id;
    for (i = 0; i < len;) {
        size_t j = i + 1;
        int id;
        while (j < len && (text[j] & 0xC0) == 0x80 && j - i < 4) j++;
        id = lisa__tok_find2(t, (const char *)text + i, j - i, "", 0);
        if (id >= 0) {
            s.start[n] = (int)i;
            s.id[n++] = id;
        } else {
            for (; i < j; i++) {
                if ((int)text[i] + 3 >= t->vocab_size) {
                    lisa__free(&al, mem, scratch, &bytes);
                    return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: byte 0x%02X at offset %lu has no piece, and a vocabulary of %d has no byte token for it",
                                      text[i], (unsigned long)i, t->vocab_size);
                }
                s.start[n] = (int)i;
                s.id[n++] = (int)text[i] + 3;
            }
        }
        i = j;
    }
    for (k = 0; k < n; k++) {
        s.prev[k] = k - 1;
        s.next[k] = k + 1 < n ? k + 1 : -1;
        s.hpos[k] = -1;
    }
    for (k = 0; k < n; k++) lisa__bpe_update(&s, k);
    lisa__bpe_merge_all(&s);
    if (n > 0) first = 0;  /* symbol 0 is never merged away: it is always a left */
    n_out = eos ? 1 : 0;
    for (k = first; k >= 0; k = s.next[k]) n_out++;
    *n_ids = n_out;
    if (ids) {
        size_t o = 0;
        if (max_ids < n_out) {
            lisa__free(&al, mem, scratch, &bytes);
            return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: the output holds %lu ids, the text needs %lu",
                              (unsigned long)max_ids, (unsigned long)n_out);
        }
        for (k = first; k >= 0; k = s.next[k]) {
            if (offsets) offsets[o] = (size_t)s.start[k];
            ids[o++] = s.id[k];
        }
        if (eos) {
            if (offsets) offsets[o] = len;
            ids[o++] = t->eos_id;
        }
    }
    lisa__free(&al, mem, scratch, &bytes);
    lisa__ok(err);
    return LISA_OK;
}

/* ---- BPE: encoding ---------------------------------------------------- */

/* A stretch of working text: byte i is s[i] and stands at byte o[i] of the
   original text (o NULL: at base + i). */
typedef struct lisa__bpe_span {
    const unsigned char *s;
    const size_t *o;
    size_t base, n;
} lisa__bpe_span;

static size_t lisa__bpe_at(const lisa__bpe_span *sp, size_t i) { return sp->o ? sp->o[i] : sp->base + i; }

static lisa__bpe_span lisa__bpe_sub(const lisa__bpe_span *sp, size_t from, size_t to) {
    lisa__bpe_span r;
    r.s = sp->s + from;
    r.o = sp->o ? sp->o + from : NULL;
    r.base = sp->base + from;
    r.n = to - from;
    return r;
}

/* Working text with its offsets, grown as needed (its old content is not kept). */
typedef struct lisa__bpe_buf {
    unsigned char *s;
    size_t *o;
    size_t cap, n;
} lisa__bpe_buf;

/* One encoding call's state: everything mutable is here, none in the tokenizer. */
typedef struct lisa__bpe_enc {
    const lisa_tokenizer *t;
    const lisa__bpe_model *m;
    lisa_allocator al;
    size_t bytes;
    int *ids;
    size_t *offsets, max_ids, n_out;
    lisa__bpe_buf norm[2], stage[LISA__BPE_MAX_STEPS];
    lisa__nfc_char *nfc_work;  /* (nfc_cap) lisa__nfc's work */
    size_t nfc_cap;
    lisa__bpe sym;
    void *sym_mem;
    size_t sym_cap;
    int nomem;
} lisa__bpe_enc;

static int lisa__bpe_reserve(lisa__bpe_enc *e, lisa__bpe_buf *b, size_t need) {
    if (need <= b->cap) return 1;
    lisa__free(&e->al, b->s, b->cap, &e->bytes);
    lisa__free(&e->al, b->o, b->cap * sizeof(size_t), &e->bytes);
    b->cap = need < 64 ? 64 : need + need / 2;
    b->s = (unsigned char *)lisa__alloc(&e->al, b->cap, &e->bytes);
    b->o = (size_t *)lisa__alloc(&e->al, b->cap * sizeof(size_t), &e->bytes);
    if (!b->s || !b->o) {
        lisa__free(&e->al, b->s, b->cap, &e->bytes);
        lisa__free(&e->al, b->o, b->cap * sizeof(size_t), &e->bytes);
        b->s = NULL;
        b->o = NULL;
        b->cap = 0;
        e->nomem = 1;
        return 0;
    }
    return 1;
}

static void lisa__bpe_buf_free(lisa__bpe_enc *e, lisa__bpe_buf *b) {
    lisa__free(&e->al, b->s, b->cap, &e->bytes);
    lisa__free(&e->al, b->o, b->cap * sizeof(size_t), &e->bytes);
    b->s = NULL;
    b->o = NULL;
    b->cap = 0;
}

static void lisa__bpe_push(lisa__bpe_buf *b, const void *s, size_t n, size_t at) {
    size_t i;
    memcpy(b->s + b->n, s, n);
    for (i = 0; i < n; i++) b->o[b->n + i] = at;
    b->n += n;
}

static lisa__bpe_span lisa__bpe_buf_span(const lisa__bpe_buf *b) {
    lisa__bpe_span r;
    r.s = b->s;
    r.o = b->o;
    r.base = 0;
    r.n = b->n;
    return r;
}

/* sp with every a replaced by b (each b byte at its a's offset), prefix p
   (np bytes) in front at the first byte's offset, written to buf. */
static int lisa__bpe_rewrite(lisa__bpe_enc *e, lisa__bpe_buf *buf, const lisa__bpe_span *sp, const char *p, size_t np,
                             const char *a, size_t na, const char *b, size_t nb) {
    size_t i = 0, grow = nb > na ? nb - na : 0, count = 0;
    if (na > 0 && grow > 0)
        for (i = 0; i + na <= sp->n; i++)
            if (memcmp(sp->s + i, a, na) == 0) count++, i += na - 1;
    if (!lisa__bpe_reserve(e, buf, sp->n + np + count * grow + 1)) return 0;
    buf->n = 0;
    if (np) lisa__bpe_push(buf, p, np, lisa__bpe_at(sp, 0));
    for (i = 0; i < sp->n;) {
        if (na > 0 && i + na <= sp->n && memcmp(sp->s + i, a, na) == 0) {
            lisa__bpe_push(buf, b, nb, lisa__bpe_at(sp, i));
            i += na;
        } else {
            buf->s[buf->n] = sp->s[i];
            buf->o[buf->n++] = lisa__bpe_at(sp, i);
            i++;
        }
    }
    return 1;
}

/* sp in NFC written to buf, each byte at the offset of the input byte its
   character came from (lisa__nfc: a composite at its starter). */
static int lisa__bpe_nfc(lisa__bpe_enc *e, lisa__bpe_buf *buf, const lisa__bpe_span *sp) {
    size_t need, i;
    if (sp->n > (size_t)-1 / 64) {   /* the buffers' sizes would overflow */
        e->nomem = 1;
        return 0;
    }
    need = LISA__NFC_WORK(sp->n);
    if (need > e->nfc_cap) {
        lisa__free(&e->al, e->nfc_work, e->nfc_cap * sizeof *e->nfc_work, &e->bytes);
        e->nfc_cap = 0;
        e->nfc_work = (lisa__nfc_char *)lisa__alloc(&e->al, need * sizeof *e->nfc_work, &e->bytes);
        if (!e->nfc_work) {
            e->nomem = 1;
            return 0;
        }
        e->nfc_cap = need;
    }
    if (!lisa__bpe_reserve(e, buf, LISA__NFC_GROWTH * sp->n + 1)) return 0;
    buf->n = lisa__nfc(sp->s, sp->n, buf->s, buf->o, e->nfc_work);
    for (i = 0; i < buf->n; i++) buf->o[i] = lisa__bpe_at(sp, buf->o[i]);
    return 1;
}

static void lisa__bpe_emit(lisa__bpe_enc *e, int id, size_t at) {
    if (e->ids && e->n_out < e->max_ids) {
        e->ids[e->n_out] = id;
        if (e->offsets) e->offsets[e->n_out] = at;
    }
    e->n_out++;
}

/* The length of the character at s (n > 0): invalid bytes count one each. */
static size_t lisa__bpe_char_len(const unsigned char *s, size_t n) {
    uint32_t cp;
    int l = lisa__utf8_decode(s, n, &cp);
    return l > 0 ? (size_t)l : 1;
}

static int lisa__bpe_sym_reserve(lisa__bpe_enc *e, size_t n) {
    size_t per = 6 * sizeof(int) + sizeof(lisa__bpe_entry), cap;
    if (n <= e->sym_cap) return 1;
    lisa__free(&e->al, e->sym_mem, e->sym_cap * per, &e->bytes);
    cap = n < 64 ? 64 : n + n / 2;
    e->sym_mem = lisa__alloc(&e->al, cap * per, &e->bytes);
    if (!e->sym_mem) {
        e->sym_cap = 0;
        e->nomem = 1;
        return 0;
    }
    e->sym_cap = cap;
    e->sym.heap = (lisa__bpe_entry *)e->sym_mem;
    e->sym.id = (int *)(void *)(e->sym.heap + cap);
    e->sym.prev = e->sym.id + cap;
    e->sym.next = e->sym.prev + cap;
    e->sym.merged = e->sym.next + cap;
    e->sym.hpos = e->sym.merged + cap;
    e->sym.start = e->sym.hpos + cap;
    return 1;
}

/* The model on one pre-tokenized word: its characters' tokens (byte
   fallback, unknown token), then the merges. */
static void lisa__bpe_word(lisa__bpe_enc *e, const lisa__bpe_span *w) {
    const lisa__bpe_model *m = e->m;
    const lisa__bpe_settings *set = &m->set;
    lisa__bpe *s = &e->sym;
    size_t i, l;
    int n = 0, k, unk = 0;
    size_t unk_at = 0;
    if (w->n == 0) return;
    if (set->ignore_merges) {
        int id = lisa__bpe_key_find2(m, (const char *)w->s, w->n, "", 0);
        if (id >= 0) {
            lisa__bpe_emit(e, id, lisa__bpe_at(w, 0));
            return;
        }
    }
    if (!lisa__bpe_sym_reserve(e, w->n + 1)) return;
    for (i = 0; i < w->n; i += l) {
        int id;
        l = set->byte_level ? 1 : lisa__bpe_char_len(w->s + i, w->n - i);
        id = set->byte_level ? m->byte_id[w->s[i]] : lisa__bpe_key_find2(m, (const char *)w->s + i, l, "", 0);
        if (id >= 0) {
            if (unk) s->start[n] = (int)unk_at, s->id[n++] = set->unk_id, unk = 0;
            s->start[n] = (int)lisa__bpe_at(w, i);
            s->id[n++] = id;
            continue;
        }
        if (set->byte_fallback) {
            size_t j;
            for (j = 0; j < l && m->fallback_id[w->s[i + j]] >= 0; j++) {
            }
            if (j == l) {
                /* as `tokenizers` does: a pending unknown token comes after these */
                for (j = 0; j < l; j++) {
                    s->start[n] = (int)lisa__bpe_at(w, i + j);
                    s->id[n++] = m->fallback_id[w->s[i + j]];
                }
                continue;
            }
        }
        if (set->unk_id < 0) continue; /* dropped, as `tokenizers` does without an unknown token */
        if (unk && !set->fuse_unk) s->start[n] = (int)unk_at, s->id[n++] = set->unk_id, unk = 0;
        if (!unk) unk = 1, unk_at = lisa__bpe_at(w, i);
    }
    if (unk) s->start[n] = (int)unk_at, s->id[n++] = set->unk_id;
    s->t = e->t;
    s->n_heap = 0;
    for (k = 0; k < n; k++) {
        s->prev[k] = k - 1;
        s->next[k] = k + 1 < n ? k + 1 : -1;
        s->hpos[k] = -1;
    }
    for (k = 0; k < n; k++) lisa__bpe_update(s, k);
    lisa__bpe_merge_all(s);
    for (k = n > 0 ? 0 : -1; k >= 0; k = s->next[k]) lisa__bpe_emit(e, s->id[k], (size_t)s->start[k]);
}

static void lisa__bpe_stage(lisa__bpe_enc *e, int k, const lisa__bpe_span *sp);

/* Calls the next stage on each piece scanner kind splits sp into. */
static void lisa__bpe_scan(lisa__bpe_enc *e, int k, int kind, const lisa__bpe_span *sp) {
    size_t pos = 0;
    while (pos < sp->n && !e->nomem) {
        size_t end = lisa__pretok_next(kind, sp->s, sp->n, pos);
        lisa__bpe_span sub;
        if (end <= pos || end > sp->n) end = sp->n; /* never loop */
        sub = lisa__bpe_sub(sp, pos, end);
        lisa__bpe_stage(e, k + 1, &sub);
        pos = end;
    }
}

/* Pre-tokenizer stage k on sp, then the later stages, then the model. */
static void lisa__bpe_stage(lisa__bpe_enc *e, int k, const lisa__bpe_span *sp) {
    const lisa__bpe_step *st;
    lisa__bpe_span w;
    if (sp->n == 0 || e->nomem) return;
    if (k == e->m->set.n_pretok) {
        lisa__bpe_word(e, sp);
        return;
    }
    st = &e->m->set.pretok[k];
    switch (st->op) {
    case LISA__BPE_P_SCAN:
        lisa__bpe_scan(e, k, st->kind, sp);
        return;
    case LISA__BPE_P_BYTELEVEL:
        w = *sp;
        if (st->flag && sp->s[0] != ' ') {
            if (!lisa__bpe_rewrite(e, &e->stage[k], sp, " ", 1, NULL, 0, NULL, 0)) return;
            w = lisa__bpe_buf_span(&e->stage[k]);
        }
        if (st->kind) lisa__bpe_scan(e, k, st->kind, &w);
        else lisa__bpe_stage(e, k + 1, &w);
        return;
    case LISA__BPE_P_METASPACE: {
        size_t na = (size_t)st->na, pos, from = 0;
        int starts = sp->s[0] == ' ' || (sp->n >= na && memcmp(sp->s, st->a, na) == 0);
        int prepend = !starts && (st->kind == 1 || (st->kind == 2 && lisa__bpe_at(sp, 0) == 0));
        if (!lisa__bpe_rewrite(e, &e->stage[k], sp, prepend ? st->a : NULL, prepend ? na : 0, " ", 1, st->a, na)) return;
        w = lisa__bpe_buf_span(&e->stage[k]);
        if (!st->flag) {
            lisa__bpe_stage(e, k + 1, &w);
            return;
        }
        /* split before each replacement (merged with the next piece) */
        for (pos = 1; pos + na <= w.n; pos++) {
            if (memcmp(w.s + pos, st->a, na) == 0) {
                lisa__bpe_span sub = lisa__bpe_sub(&w, from, pos);
                lisa__bpe_stage(e, k + 1, &sub);
                from = pos;
                pos += na - 1;
            }
        }
        {
            lisa__bpe_span sub = lisa__bpe_sub(&w, from, w.n);
            lisa__bpe_stage(e, k + 1, &sub);
        }
        return;
    }
    default:
        return;
    }
}

static int lisa__bpe_is_word_char(uint32_t cp) {
    return cp == '_' || (lisa__uc_class(cp) & (LISA__UC_LETTER | LISA__UC_NUMBER | LISA__UC_MARK)) != 0;
}

/* The start of the character that ends at byte i of s (i > 0). */
static size_t lisa__bpe_char_before(const unsigned char *s, size_t i) {
    size_t j = i - 1;
    while (j > 0 && i - j < 4 && (s[j] & 0xC0) == 0x80) j--;
    return lisa__bpe_char_len(s + j, i - j) == i - j ? j : i - 1;
}

/* The code point at byte i of s (invalid bytes: none of the classes). */
static uint32_t lisa__bpe_cp_at(const unsigned char *s, size_t n, size_t i) {
    uint32_t cp;
    return lisa__utf8_decode(s + i, n - i, &cp) > 0 ? cp : 0xFFFFFFFFu;
}

static void lisa__bpe_plain(lisa__bpe_enc *e, const lisa__bpe_span *sp, int normalized);

/* Splits sp at the added tokens of one pass (normalized: those matched in
   the normalized text) as `tokenizers` does: leftmost-longest matches, a
   single_word one skipped when a word character touches it, lstrip /
   rstrip taking the whitespace beside it; the text between goes on. */
static void lisa__bpe_split_added(lisa__bpe_enc *e, const lisa__bpe_span *sp, int normalized) {
    const lisa__bpe_model *m = e->m;
    const unsigned char *s = sp->s;
    size_t pos = 0, done = 0, n = sp->n;
    while (pos < n && !e->nomem) {
        int32_t a;
        int id = -1;
        size_t start = pos, stop = pos;
        unsigned f;
        for (a = m->added_start[s[pos]]; a < m->added_start[s[pos] + 1]; a++) {
            int tid = m->added[a];
            size_t len = m->match_off[a + 1] - m->match_off[a];
            if (!(m->flags[tid] & LISA__BPE_NORMALIZED) != !normalized) continue;
            if (len <= n - pos && memcmp(s + pos, m->match_text + m->match_off[a], len) == 0) {
                id = tid;
                stop = pos + len;
                break;
            }
        }
        if (id < 0) {
            pos++;
            continue;
        }
        f = m->flags[id];
        if ((f & LISA__BPE_SINGLE_WORD) &&
            ((start > 0 && lisa__bpe_is_word_char(lisa__bpe_cp_at(s, n, lisa__bpe_char_before(s, start)))) ||
             (stop < n && lisa__bpe_is_word_char(lisa__bpe_cp_at(s, n, stop))))) {
            pos = stop;
            continue;
        }
        pos = stop;
        if (f & LISA__BPE_LSTRIP) {
            while (start > done) {
                size_t j = lisa__bpe_char_before(s, start);
                if (!(lisa__uc_class(lisa__bpe_cp_at(s, n, j)) & LISA__UC_SPACE)) break;
                start = j;
            }
        }
        if (f & LISA__BPE_RSTRIP)
            while (stop < n && (lisa__uc_class(lisa__bpe_cp_at(s, n, stop)) & LISA__UC_SPACE))
                stop += lisa__bpe_char_len(s + stop, n - stop);
        if (start < done) start = done;
        if (done < start) {
            lisa__bpe_span sub = lisa__bpe_sub(sp, done, start);
            lisa__bpe_plain(e, &sub, normalized);
        }
        lisa__bpe_emit(e, id, lisa__bpe_at(sp, start));
        done = pos = stop;
    }
    if (done < n) {
        lisa__bpe_span sub = lisa__bpe_sub(sp, done, n);
        lisa__bpe_plain(e, &sub, normalized);
    }
}

/* Text outside the added tokens: normalized (once), split at the
   normalized added tokens, then pre-tokenized. */
static void lisa__bpe_plain(lisa__bpe_enc *e, const lisa__bpe_span *sp, int normalized) {
    const lisa__bpe_settings *set = &e->m->set;
    lisa__bpe_span cur = *sp;
    int i, which = 0;
    if (normalized || sp->n == 0) {
        lisa__bpe_stage(e, 0, sp);
        return;
    }
    for (i = 0; i < set->n_norm; i++) {
        const lisa__bpe_step *st = &set->norm[i];
        int ok;
        if (st->op == LISA__BPE_N_PREPEND) {
            if (cur.n == 0) continue;
            ok = lisa__bpe_rewrite(e, &e->norm[which], &cur, st->a, (size_t)st->na, NULL, 0, NULL, 0);
        } else if (st->op == LISA__BPE_N_NFC) {
            if (lisa__nfc_quick(cur.s, cur.n)) continue;   /* most text: no copy */
            ok = lisa__bpe_nfc(e, &e->norm[which], &cur);
        } else {
            ok = lisa__bpe_rewrite(e, &e->norm[which], &cur, NULL, 0, st->a, (size_t)st->na, st->b, (size_t)st->nb);
        }
        if (!ok) return;
        cur = lisa__bpe_buf_span(&e->norm[which]);
        which ^= 1;
    }
    if (e->m->has_norm_added) lisa__bpe_split_added(e, &cur, 1);
    else lisa__bpe_stage(e, 0, &cur);
}

static lisa_result lisa__encode_bpe(const lisa_tokenizer *t, const unsigned char *text, size_t len, int bos, int eos,
                                    int *ids, size_t *offsets, size_t max_ids, size_t *n_ids, lisa_error *err) {
    lisa__bpe_enc e;
    lisa__bpe_span whole;
    int i;
    *n_ids = 0;
    if (len > (size_t)INT32_MAX - 8)
        return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: a text of %.0f bytes is too long to encode at once", (double)len);
    if ((bos && t->bos_id < 0) || (eos && t->eos_id < 0))
        return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: %s is asked for, and this tokenizer has no %s token",
                          bos && t->bos_id < 0 ? "BOS" : "EOS", bos && t->bos_id < 0 ? "BOS" : "EOS");
    memset(&e, 0, sizeof e);
    e.t = t;
    e.m = t->bpe;
    e.al = t->allocator;
    e.ids = ids;
    e.offsets = offsets;
    e.max_ids = max_ids;
    whole.s = text;
    whole.o = NULL;
    whole.base = 0;
    whole.n = len;
    if (bos) lisa__bpe_emit(&e, t->bos_id, 0);
    if (e.m->has_raw_added) lisa__bpe_split_added(&e, &whole, 0);
    else lisa__bpe_plain(&e, &whole, 0);
    if (eos) lisa__bpe_emit(&e, t->eos_id, len);
    lisa__bpe_buf_free(&e, &e.norm[0]);
    lisa__bpe_buf_free(&e, &e.norm[1]);
    lisa__free(&e.al, e.nfc_work, e.nfc_cap * sizeof *e.nfc_work, &e.bytes);
    for (i = 0; i < LISA__BPE_MAX_STEPS; i++) lisa__bpe_buf_free(&e, &e.stage[i]);
    lisa__free(&e.al, e.sym_mem, e.sym_cap * (6 * sizeof(int) + sizeof(lisa__bpe_entry)), &e.bytes);
    if (e.nomem) return lisa__fail(err, LISA_ERR_NOMEM, "tokenizer: out of memory for encoding scratch");
    *n_ids = e.n_out;
    if (ids && e.n_out > max_ids)
        return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: the output holds %lu ids, the text needs %lu",
                          (unsigned long)max_ids, (unsigned long)e.n_out);
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_tokenizer_encode(const lisa_tokenizer *t, const char *text, size_t len,
                                          int bos, int eos, int *ids, size_t max_ids, size_t *n_ids,
                                          lisa_error *err) {
    return lisa_tokenizer_encode_offsets(t, text, len, bos, eos, ids, NULL, max_ids, n_ids, err);
}

LISADEF lisa_result lisa_tokenizer_encode_offsets(const lisa_tokenizer *t, const char *text, size_t len,
                                                  int bos, int eos, int *ids, size_t *offsets, size_t max_ids,
                                                  size_t *n_ids, lisa_error *err) {
    size_t n_out, i, o = 0, dummy;
    if (!n_ids) n_ids = &dummy;
    *n_ids = 0;
    if (!text && len > 0) return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: NULL text of length %lu", (unsigned long)len);
    if (t->kind == LISA_TOKENIZER_LLAMA2C)
        return lisa__encode_llama2c(t, (const unsigned char *)text, len, bos, eos, ids, offsets, max_ids, n_ids, err);
    if (t->kind == LISA_TOKENIZER_BPE)
        return lisa__encode_bpe(t, (const unsigned char *)text, len, bos, eos, ids, offsets, max_ids, n_ids, err);
    if (len > (size_t)-1 - 2)
        return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: text too long");
    n_out = len + (bos ? 1 : 0) + (eos ? 1 : 0);
    *n_ids = n_out;
    if (ids) {
        if (max_ids < n_out)
            return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: the output holds %lu ids, the text needs %lu",
                              (unsigned long)max_ids, (unsigned long)n_out);
        if (bos) {
            if (offsets) offsets[o] = 0;
            ids[o++] = LISA_BYTES_BOS;
        }
        for (i = 0; i < len; i++) {
            if (offsets) offsets[o] = i;
            ids[o++] = (unsigned char)text[i];
        }
        if (eos) {
            if (offsets) offsets[o] = len;
            ids[o++] = LISA_BYTES_EOS;
        }
    }
    lisa__ok(err);
    return LISA_OK;
}

LISADEF const char *lisa_tokenizer_piece(const lisa_tokenizer *t, int prev_id, int id, size_t *len) {
    const char *p;
    size_t n;
    if (len) *len = 0;
    if (id < 0 || id >= t->vocab_size) return NULL;
    if (t->kind == LISA_TOKENIZER_BYTES) {
        if (id >= 256) return (const char *)lisa__byte_pieces + 1;  /* a NUL: "" */
        if (len) *len = 1;
        return (const char *)lisa__byte_pieces + 2 * id;
    }
    if (t->kind == LISA_TOKENIZER_BPE) {
        const lisa__bpe_model *m = t->bpe;
        if (m->flags[id] & LISA__BPE_HOLE) return NULL;
        if (prev_id >= 0) {
            p = t->text + t->offsets[id];
            n = lisa__tok_piece_len(t, id);
        } else {
            p = m->first_text + m->first_off[id];
            n = m->first_off[id + 1] - m->first_off[id] - 1;
        }
        if (len) *len = n;
        return p;
    }
    p = t->text + t->offsets[id];
    n = lisa__tok_piece_len(t, id);
    if (prev_id == t->bos_id && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    if (n == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>' &&
        lisa__tok_hex(p[3]) >= 0 && lisa__tok_hex(p[4]) >= 0) {
        int b = lisa__tok_hex(p[3]) * 16 + lisa__tok_hex(p[4]);
        p = (const char *)lisa__byte_pieces + 2 * b;
        n = 1;
    }
    if (len) *len = n;
    return p;
}

LISADEF lisa_result lisa_tokenizer_decode(const lisa_tokenizer *t, const int *ids, size_t n,
                                          char *out, size_t cap, size_t *len, lisa_error *err) {
    size_t i, total = 0, dummy;
    int pass;
    if (!len) len = &dummy;
    *len = 0;
    /* Pass 0 measures and checks, pass 1 writes. */
    for (pass = 0; pass < 2; pass++) {
        size_t o = 0;
        if (pass == 1) {
            *len = total;
            if (!out) break;
            if (cap < total + 1)
                return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: the output holds %lu bytes, the text needs %lu and a NUL",
                                  (unsigned long)cap, (unsigned long)total);
        }
        for (i = 0; i < n; i++) {
            size_t k;
            const char *p;
            if (t->kind != LISA_TOKENIZER_BPE && (ids[i] == t->bos_id || ids[i] == t->eos_id)) continue;
            p = lisa_tokenizer_piece(t, i > 0 ? ids[i - 1] : -1, ids[i], &k);
            if (!p)
                return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: id %d at position %lu is outside the vocabulary of %d",
                                  ids[i], (unsigned long)i, t->vocab_size);
            if (pass == 0) total += k;
            else memcpy(out + o, p, k);
            o += k;
        }
        if (pass == 1) out[o] = 0;
    }
    lisa__ok(err);
    return LISA_OK;
}

LISADEF void lisa_tokenizer_stream_init(lisa_tokenizer_stream *s) {
    memset(s, 0, sizeof *s);
    s->prev_id = -1;
}

/* Whether s[0..n) (n of 1..3) can still become a valid UTF-8 character:
   some continuation makes the decoder accept it (each second-byte range
   holds one of 0x80, 0x90, 0xA0). */
static int lisa__utf8_unfinished(const unsigned char *s, size_t n) {
    static const unsigned char fill[3] = {0x80, 0x90, 0xA0};
    unsigned char c[4];
    int f;
    uint32_t cp;
    for (f = 0; f < 3; f++) {
        size_t i, want;
        memcpy(c, s, n);
        for (i = n; i < 4; i++) c[i] = fill[f];
        for (want = n + 1; want <= 4; want++)
            if (lisa__utf8_decode(c, want, &cp) == (int)want) return 1;
    }
    return 0;
}

LISADEF lisa_result lisa_tokenizer_stream_next(const lisa_tokenizer *t, lisa_tokenizer_stream *s, int id,
                                               char *out, size_t cap, size_t *len, lisa_error *err) {
    size_t k = 0, total, held = 0, i, dummy;
    const char *p;
    unsigned char tail[4];
    if (!len) len = &dummy;
    *len = 0;
    if (t->kind != LISA_TOKENIZER_BPE && (id == t->bos_id || id == t->eos_id) && id >= 0) {
        p = "";
    } else if (!(p = lisa_tokenizer_piece(t, s->prev_id, id, &k))) {
        return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: id %d is outside the vocabulary of %d", id, t->vocab_size);
    }
    total = (size_t)s->n_carry + k;
    /* Hold back the end when it is the start of a character still to come. */
    for (i = 1; i <= 3 && i <= total; i++) {
        size_t j;
        unsigned char c;
        for (j = 0; j < i; j++) {
            size_t at = total - i + j;
            tail[j] = at < (size_t)s->n_carry ? s->carry[at] : (unsigned char)p[at - (size_t)s->n_carry];
        }
        c = tail[0];
        if ((c & 0xC0) == 0x80) continue;
        if (c >= 0xC0 && lisa__utf8_unfinished(tail, i)) held = i;
        break;
    }
    if (!out || cap < total - held + 1)
        return lisa__fail(err, LISA_ERR_INVALID, "tokenizer: the output holds %lu bytes, the text needs %lu and a NUL",
                          (unsigned long)cap, (unsigned long)(total - held));
    for (i = 0; i < total; i++) {
        unsigned char c = i < (size_t)s->n_carry ? s->carry[i] : (unsigned char)p[i - (size_t)s->n_carry];
        if (i < total - held) out[i] = (char)c;
        else tail[i - (total - held)] = c;
    }
    out[total - held] = 0;
    memcpy(s->carry, tail, held);
    s->n_carry = (int)held;
    s->prev_id = id;
    *len = total - held;
    lisa__ok(err);
    return LISA_OK;
}

LISADEF size_t lisa_tokenizer_stream_flush(lisa_tokenizer_stream *s, char *out, size_t cap) {
    size_t n = (size_t)s->n_carry;
    if (!out || cap < n + 1) return 0;
    memcpy(out, s->carry, n);
    out[n] = 0;
    s->n_carry = 0;
    return n;
}

#ifndef LISA_NO_STDIO

LISADEF lisa_result lisa_tokenizer_load_llama2c(lisa_tokenizer *t, const char *path, int vocab_size,
                                                const lisa_allocator *a, lisa_error *err) {
    lisa_allocator al = lisa__allocator_or_default(a);
    size_t bytes = 0, size;
    char *data;
    /* Tokenizer files are small (about 0.5 MB for 32000 pieces): read whole. */
    lisa_result res = lisa__read_text(path, &al, SIZE_MAX - 1, &data, &size, &bytes, err);
    memset(t, 0, sizeof *t);
    if (res != LISA_OK) return res;
    res = lisa__tok_parse(t, (const unsigned char *)data, size, vocab_size, path, a, err);
    lisa__free(&al, data, size + 1, &bytes);
    return res;
}

static lisa_result lisa__path_join(char *out, size_t size, const char *dir, const char *file, lisa_error *err);
static int lisa__file_exists(const char *path);

#define LISA__HF_TOKENIZER_MAX ((size_t)1 << 28)   /* 256 MB: larger than any real tokenizer.json */

/* A file beside tokenizer.json (in dir), read whole when it is there. */
static lisa_result lisa__hf_tok_side_file(const char *dir, const char *file, const lisa_allocator *al, char **text,
                                          size_t *size, size_t *bytes, lisa_error *err) {
    char path[4096];
    *text = NULL;
    *size = 0;
    if (lisa__path_join(path, sizeof path, dir, file, NULL) != LISA_OK || !lisa__file_exists(path)) return LISA_OK;
    return lisa__read_text(path, al, LISA__HF_TOKENIZER_MAX, text, size, bytes, err);
}

LISADEF lisa_result lisa_tokenizer_load_hf(lisa_tokenizer *t, const char *path, const lisa_allocator *a,
                                           lisa_error *err) {
    lisa_allocator al = lisa__allocator_or_default(a);
    char file[4096], dir[4096];
    const char *json_path = path, *slash;
    char *json = NULL, *cfg = NULL, *chat = NULL;
    size_t bytes = 0, n_json = 0, n_cfg = 0, n_chat = 0;
    lisa_result res;
    memset(t, 0, sizeof *t);
    if (lisa__path_join(file, sizeof file, path, "tokenizer.json", NULL) == LISA_OK && lisa__file_exists(file)) {
        json_path = file;
        snprintf(dir, sizeof dir, "%s", path);
    } else {
        /* a tokenizer.json file: its directory may hold the rest */
        slash = strrchr(path, '/');
        if (slash && (size_t)(slash - path) < sizeof dir) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        else snprintf(dir, sizeof dir, ".");
    }
    res = lisa__read_text(json_path, &al, LISA__HF_TOKENIZER_MAX, &json, &n_json, &bytes, err);
    if (res == LISA_OK) res = lisa__hf_tok_side_file(dir, "tokenizer_config.json", &al, &cfg, &n_cfg, &bytes, err);
    if (res == LISA_OK) res = lisa__hf_tok_side_file(dir, "chat_template.jinja", &al, &chat, &n_chat, &bytes, err);
    if (res == LISA_OK)
        res = lisa__tokenizer_load_hf(t, json, n_json, cfg, n_cfg, chat, n_chat, json_path, a, err);
    if (json) lisa__free(&al, json, n_json + 1, &bytes);
    if (cfg) lisa__free(&al, cfg, n_cfg + 1, &bytes);
    if (chat) lisa__free(&al, chat, n_chat + 1, &bytes);
    return res;
}

#define LISA__TOKENIZER_KINDS \
    "a tokenizer.json file, a Hugging Face directory holding one, a GGUF file, a llama2.c tokenizer.bin, or bytes"

typedef enum lisa__tokenizer_file {
    LISA__TOKFILE_DIRECTORY,
    LISA__TOKFILE_GGUF,
    LISA__TOKFILE_JSON,
    LISA__TOKFILE_OTHER
} lisa__tokenizer_file;

/* The first byte from c on (c included) that is not JSON white space. */
static int lisa__skip_json_space(FILE *f, int c) {
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = fgetc(f);
    return c;
}

/* What kind of tokenizer file path is, from its first bytes. */
static lisa_result lisa__tokenizer_sniff(const char *path, lisa__tokenizer_file *kind, lisa_error *err) {
    unsigned char head[4];
    size_t n;
    int c;
    FILE *f = fopen(path, "rb");
    if (!f) return lisa__fail(err, LISA_ERR_IO, "%s: cannot open for reading (expected %s)", path, LISA__TOKENIZER_KINDS);
    n = fread(head, 1, sizeof head, f);
    if (n == 0 && ferror(f)) {
        *kind = LISA__TOKFILE_DIRECTORY; /* fopen succeeds on a directory on some systems; reading fails */
    } else if (n == 4 && memcmp(head, "GGUF", 4) == 0) {
        *kind = LISA__TOKFILE_GGUF;
    } else {
        rewind(f);
        c = fgetc(f);
        if (c == 0xEF && fgetc(f) == 0xBB && fgetc(f) == 0xBF) c = fgetc(f);
        c = lisa__skip_json_space(f, c);
        /* '{' then a key or '}': a tokenizer.bin whose max_token_length is 123 starts with '{' and a 0 byte */
        *kind = c == '{' && ((c = lisa__skip_json_space(f, fgetc(f))) == '"' || c == '}') ? LISA__TOKFILE_JSON
                                                                                        : LISA__TOKFILE_OTHER;
    }
    fclose(f);
    return LISA_OK;
}

LISADEF lisa_result lisa_tokenizer_load(lisa_tokenizer *t, const char *path, int vocab_size,
                                        const lisa_allocator *a, lisa_error *err) {
    char file[4096], msg[sizeof err->message];
    lisa__tokenizer_file kind = LISA__TOKFILE_OTHER;
    lisa_result res;
    size_t n, skip;
    memset(t, 0, sizeof *t);
    if (strcmp(path, "bytes") == 0) {
        lisa_tokenizer_init_bytes(t);
        lisa__ok(err);
        return LISA_OK;
    }
    if (lisa__path_join(file, sizeof file, path, "tokenizer.json", NULL) == LISA_OK && lisa__file_exists(file))
        return lisa_tokenizer_load_hf(t, path, a, err);
    if ((res = lisa__tokenizer_sniff(path, &kind, err)) != LISA_OK) return res;
    switch (kind) {
    case LISA__TOKFILE_DIRECTORY:
        return lisa__fail(err, LISA_ERR_IO, "%s: a directory without tokenizer.json (expected %s)", path,
                          LISA__TOKENIZER_KINDS);
    case LISA__TOKFILE_GGUF: return lisa_tokenizer_load_gguf(t, path, a, err);
    case LISA__TOKFILE_JSON: return lisa_tokenizer_load_hf(t, path, a, err);
    case LISA__TOKFILE_OTHER: break;
    }
    res = lisa_tokenizer_load_llama2c(t, path, vocab_size, a, err);
    if (res != LISA_ERR_FORMAT || !err) return res;
    /* Not JSON, not GGUF, and not a good tokenizer.bin either: say all three. */
    n = strlen(path);
    skip = strncmp(err->message, path, n) == 0 && strncmp(err->message + n, ": ", 2) == 0 ? n + 2 : 0;
    snprintf(msg, sizeof msg, "%s", err->message + skip);
    return lisa__fail(err, res, "%s: not JSON, not GGUF, and as a llama2.c tokenizer.bin: %s (expected %s)", path,
                      msg, LISA__TOKENIZER_KINDS);
}

#endif /* LISA_NO_STDIO */

/* ------------------------------------------------------------------------- */
/* Half-precision conversions                                                 */
/* ------------------------------------------------------------------------- */

static float lisa__f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t lisa__f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

LISADEF float lisa_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0x1F) return lisa__f32_from_bits(sign | 0x7F800000u | (man << 13));  /* inf, nan */
    if (exp != 0) return lisa__f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0) return lisa__f32_from_bits(sign);
    /* Subnormal: man * 2^-24, normalised. */
    exp = 113;
    while (!(man & 0x400)) {
        man <<= 1;
        exp--;
    }
    return lisa__f32_from_bits(sign | (exp << 23) | ((man & 0x3FF) << 13));
}

LISADEF uint16_t lisa_f32_to_f16(float f) {
    uint32_t u = lisa__f32_bits(f), sign = (u >> 16) & 0x8000, a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00 | ((a >> 13) & 0x3FF));   /* quiet nan */
    if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00);   /* rounds past 65504: inf */
    if (a >= 0x38800000u) {                                    /* normal half */
        uint32_t r = a - 0x38000000u;
        r += 0xFFF + ((r >> 13) & 1);
        return (uint16_t)(sign | (r >> 13));
    }
    if (a <= 0x33000000u) return (uint16_t)sign;               /* at most half the smallest subnormal */
    {
        uint32_t e = a >> 23, m = (a & 0x7FFFFF) | 0x800000;
        int shift = (int)(126 - e);                            /* value / 2^-24 = m >> shift */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
}

LISADEF float lisa_bf16_to_f32(uint16_t h) { return lisa__f32_from_bits((uint32_t)h << 16); }

LISADEF uint16_t lisa_f32_to_bf16(float f) {
    uint32_t u = lisa__f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet nan */
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

static size_t lisa__file_dtype_size(lisa_file_dtype d) { return d == LISA_FILE_F32 ? 4 : 2; }


/* n little-endian elements of dtype d at src into dst. */
static void lisa__convert_to_f32(float *dst, const unsigned char *src, size_t n, lisa_file_dtype d) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (d == LISA_FILE_F32) {
            dst[i] = lisa__f32_from_bits((uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                                         (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24);
        } else {
            uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            dst[i] = d == LISA_FILE_F16 ? lisa_f16_to_f32(h) : lisa_bf16_to_f32(h);
        }
    }
}


/* ------------------------------------------------------------------------- */
/* safetensors                                                                */
/* ------------------------------------------------------------------------- */

LISADEF void lisa_safetensors_free(lisa_safetensors *st) {
    st->bytes -= st->header.bytes;
    lisa_json_free(&st->header);
    lisa__free(&st->allocator, st->tensors, (size_t)st->n_tensors * sizeof(lisa_safetensors_tensor), &st->bytes);
    st->tensors = NULL;
    st->n_tensors = 0;
}

static int lisa__st_cmp(const void *a, const void *b) {
    const lisa_safetensors_tensor *x = (const lisa_safetensors_tensor *)a, *y = (const lisa_safetensors_tensor *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parses the header text (n bytes) of a safetensors file of file_size bytes,
   whose data section starts at 8 + n. */
static lisa_result lisa__st_parse(lisa_safetensors *st, const char *text, size_t n, size_t file_size,
                                  const char *name, const lisa_allocator *a, lisa_error *err) {
    const lisa_json *j = &st->header;
    char context[300];
    lisa_result r;
    int root, c, n_t = 0, i;
    size_t expected = 0;
    memset(st, 0, sizeof *st);
    st->metadata = -1;
    st->allocator = lisa__allocator_or_default(a);
    st->data_offset = 8 + n;
    st->data_size = file_size - st->data_offset;
    snprintf(context, sizeof context, "%s: header", name);
    r = lisa_json_parse(&st->header, text, n, context, a, err);
    st->bytes = st->header.bytes;
    if (r != LISA_OK) return r;
    root = lisa_json_root(j);
    if (lisa_json_type_of(j, root) != LISA_JSON_OBJECT)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: the header is not a JSON object", name);
    for (c = lisa_json_first(j, root); c >= 0; c = lisa_json_next(j, c))
        if (!lisa__json_is(j, c, 1, "__metadata__")) n_t++;
    st->tensors = (lisa_safetensors_tensor *)lisa__alloc(
        &st->allocator, (size_t)n_t * sizeof(lisa_safetensors_tensor), &st->bytes);
    if (!st->tensors && n_t > 0)
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for the tensor table", name);
    st->n_tensors = n_t;
    if (n_t > 0) memset(st->tensors, 0, (size_t)n_t * sizeof(lisa_safetensors_tensor));
    n_t = 0;
    for (c = lisa_json_first(j, root); c >= 0; c = lisa_json_next(j, c)) {
        lisa_safetensors_tensor *t;
        const char *key = lisa_json_key(j, c, NULL), *dt;
        int dtype_node, shape_node, off_node, d;
        double b, e, bytes = 1.0, v;
        if (lisa__json_is(j, c, 1, "__metadata__")) {
            int m;
            if (lisa_json_type_of(j, c) != LISA_JSON_OBJECT)
                return lisa__fail(err, LISA_ERR_FORMAT, "%s: __metadata__ is not an object", name);
            for (m = lisa_json_first(j, c); m >= 0; m = lisa_json_next(j, m))
                if (lisa_json_type_of(j, m) != LISA_JSON_STRING)
                    return lisa__fail(err, LISA_ERR_FORMAT, "%s: __metadata__ entry \"%.100s\" is not a string",
                                      name, lisa_json_key(j, m, NULL));
            st->metadata = c;
            continue;
        }
        if (lisa_json_type_of(j, c) != LISA_JSON_OBJECT)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: an object with dtype, shape and data_offsets expected",
                              name, key);
        if (!lisa__json_plain(j, c, 1))
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: the name holds a NUL character", name, key);
        t = &st->tensors[n_t];
        t->name = key;
        dtype_node = lisa_json_get(j, c, "dtype");
        shape_node = lisa_json_get(j, c, "shape");
        off_node = lisa_json_get(j, c, "data_offsets");
        dt = lisa_json_string(j, dtype_node, NULL);
        if (!dt) return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: no dtype string", name, key);
        if (lisa__json_is(j, dtype_node, 0, "F32")) t->dtype = LISA_FILE_F32;
        else if (lisa__json_is(j, dtype_node, 0, "F16")) t->dtype = LISA_FILE_F16;
        else if (lisa__json_is(j, dtype_node, 0, "BF16")) t->dtype = LISA_FILE_BF16;
        else return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: dtype \"%.20s\" is not supported (F32, F16 or BF16)",
                               name, key, dt);
        if (lisa_json_type_of(j, shape_node) != LISA_JSON_ARRAY)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: no shape array", name, key);
        t->ndim = lisa_json_length(j, shape_node);
        if (t->ndim > LISA_SAFETENSORS_MAX_DIMS)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: %d dimensions (at most %d)",
                              name, key, t->ndim, LISA_SAFETENSORS_MAX_DIMS);
        for (d = 0; d < t->ndim; d++) {
            if (!lisa__json_uint(j, lisa_json_at(j, shape_node, d), 9007199254740992.0, &v))
                return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: shape must hold non-negative integers",
                                  name, key);
            t->shape[d] = (uint64_t)v;
            bytes *= v;
        }
        bytes *= (double)lisa__file_dtype_size(t->dtype);
        if (lisa_json_type_of(j, off_node) != LISA_JSON_ARRAY || lisa_json_length(j, off_node) != 2 ||
            !lisa__json_uint(j, lisa_json_at(j, off_node, 0), 9007199254740992.0, &b) ||
            !lisa__json_uint(j, lisa_json_at(j, off_node, 1), 9007199254740992.0, &e))
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: data_offsets must be two non-negative integers",
                              name, key);
        if (b > e || e > (double)st->data_size)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: data_offsets [%.0f, %.0f] lie outside the %.0f bytes of data",
                              name, key, b, e, (double)st->data_size);
        if (e - b != bytes)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s: data_offsets [%.0f, %.0f] hold %.0f bytes, its dtype and shape need %.0f",
                              name, key, b, e, e - b, bytes);
        t->begin = (size_t)b;
        t->end = (size_t)e;
        n_t++;
    }
    if (n_t > 0) qsort(st->tensors, (size_t)n_t, sizeof *st->tensors, lisa__st_cmp);
    for (i = 0; i < n_t; i++) {
        const lisa_safetensors_tensor *t = &st->tensors[i];
        if (t->begin < expected)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s overlaps tensor %.100s", name, t->name,
                              st->tensors[i - 1].name);
        if (t->begin > expected)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: %.0f unused bytes before tensor %.100s", name,
                              (double)(t->begin - expected), t->name);
        expected = t->end;
    }
    if (expected != st->data_size)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: the tensors cover %.0f bytes, the data section has %.0f",
                          name, (double)expected, (double)st->data_size);
    lisa__ok(err);
    return LISA_OK;
}

/* Reads the 8-byte length and the header through r (at its start) and parses them. */
static lisa_result lisa__st_read_header(lisa_safetensors *st, lisa__reader *r, const char *name,
                                        const lisa_allocator *a, lisa_error *err) {
    unsigned char lb[8];
    uint64_t n = 0;
    const char *text;
    char *owned = NULL;
    size_t text_bytes = 0;
    lisa_allocator al = lisa__allocator_or_default(a);
    lisa_result res;
    int i;
    memset(st, 0, sizeof *st);
    st->metadata = -1;
    st->allocator = al;
    if (!lisa__read(r, lb, 8))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: truncated: the file has %.0f bytes, a safetensors file needs at least 8",
                          name, (double)r->size);
    for (i = 7; i >= 0; i--) n = n << 8 | lb[i];
    if (n > (uint64_t)(r->size - 8))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: header length %.0f exceeds the %.0f bytes after it",
                          name, (double)n, (double)(r->size - 8));
    if (n > LISA_SAFETENSORS_MAX_HEADER)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: header length %.0f is over the limit of %d bytes",
                          name, (double)n, LISA_SAFETENSORS_MAX_HEADER);
    if (n == 0) return lisa__fail(err, LISA_ERR_FORMAT, "%s: header length 0", name);
    if (r->mem) {
        text = (const char *)(r->mem + 8);   /* read in place */
        r->pos += (size_t)n;
    } else {
        text = owned = (char *)lisa__alloc(&al, (size_t)n, &text_bytes);
        if (!owned) return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for a %.0f-byte header", name, (double)n);
        if (!lisa__read(r, owned, (size_t)n)) {
            lisa__free(&al, owned, (size_t)n, &text_bytes);
            return lisa__fail(err, LISA_ERR_IO, "%s: read failed at byte %.0f", name, (double)r->pos);
        }
    }
    res = lisa__st_parse(st, text, (size_t)n, r->size, name, a, err);
    lisa__free(&al, owned, (size_t)n, &text_bytes);
    return res;
}

LISADEF lisa_result lisa_safetensors_parse_memory(lisa_safetensors *st, const void *data, size_t size,
                                                  const char *name, const lisa_allocator *a,
                                                  lisa_error *err) {
    lisa__reader r = lisa__memory_reader(data, size);
    lisa_result res = lisa__st_read_header(st, &r, name ? name : "<memory>", a, err);
    if (res == LISA_OK) st->data = r.mem + st->data_offset;
    return res;
}

/* ------------------------------------------------------------------------- */
/* GGUF: metadata                                                             */
/* ------------------------------------------------------------------------- */

#define LISA__GGUF_N_TYPES 13
#define LISA__GGUF_I64_MAX 0x7FFFFFFFFFFFFFFFull
#define LISA__GGUF_MAX_ENTRIES 0x3FFFFFFF   /* keys or tensors: an int index with room for the hash table */
#define LISA__GGUF_FIRST_CHUNK ((size_t)1 << 16)

/* The block layout of each ggml tensor type: elements and bytes per block.
   A model loader dequantizes per type; this table only sizes tensors. */
typedef struct lisa__ggml_type_info {
    uint32_t type;
    const char *name;
    uint32_t block, bytes;
} lisa__ggml_type_info;

static const lisa__ggml_type_info lisa__ggml_types[] = {
    {0, "F32", 1, 4},          {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},       {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 40},
    {10, "Q2_K", 256, 84},     {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},    {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98},  {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},         {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},        {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
    {40, "NVFP4", 64, 36},     {41, "Q1_0", 128, 18}};

static const lisa__ggml_type_info *lisa__ggml_type(uint32_t type) {
    size_t i;
    for (i = 0; i < sizeof lisa__ggml_types / sizeof lisa__ggml_types[0]; i++)
        if (lisa__ggml_types[i].type == type) return &lisa__ggml_types[i];
    return NULL;
}

LISADEF const char *lisa_ggml_type_name(uint32_t type) {
    const lisa__ggml_type_info *t = lisa__ggml_type(type);
    return t ? t->name : NULL;
}

LISADEF int lisa_ggml_type_size(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) {
    const lisa__ggml_type_info *t = lisa__ggml_type(type);
    if (block_elems) *block_elems = t ? t->block : 0;
    if (block_bytes) *block_bytes = t ? t->bytes : 0;
    return t != NULL;
}

LISADEF const char *lisa_gguf_type_name(lisa_gguf_type t) {
    static const char *const names[LISA__GGUF_N_TYPES] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                                          "int32", "float32", "bool",  "string", "array",
                                                          "uint64", "int64", "float64"};
    return (unsigned)t < LISA__GGUF_N_TYPES ? names[t] : "?";
}

/* Bytes of one value of a fixed-size type; 0 for strings and arrays. */
static size_t lisa__gguf_fixed_size(uint32_t t) {
    static const unsigned char sizes[LISA__GGUF_N_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < LISA__GGUF_N_TYPES ? sizes[t] : 0;
}

/* One pass over a header. The first (fill 0) checks everything that needs no
   table and counts what the tables need; the second (fill 1) fills them and
   finds repeated keys and names. */
typedef struct lisa__gguf_walk {
    const unsigned char *p;
    size_t n, pos;           /* bytes present at p; where the walk is */
    uint64_t total;          /* bytes of the file: n from memory */
    uint64_t need;           /* set when the file has more than n bytes and the walk needs this many */
    const char *name;
    lisa_error *err;
    char where[160];         /* "key K", "tensor T" or "key #i" for messages */
    uint64_t elem;           /* with in_array: the array element being read */
    int in_array;
    int fill;
    lisa_gguf *g;
    uint32_t alignment;
    uint64_t prev_end;       /* where the previous tensor's data ends */
    uint64_t n_strings;      /* elements of string arrays, for their offset tables */
    uint64_t text;           /* bytes of keys and tensor names, NULs included */
    size_t *strings;         /* fill: the next free offset entry */
    char *pool;              /* fill: the next free byte for a name */
} lisa__gguf_walk;

/* "name: <message> (key K, at byte N)": the walk's place added to a message. */
static lisa_result lisa__gguf_bad(lisa__gguf_walk *w, size_t at, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static lisa_result lisa__gguf_bad(lisa__gguf_walk *w, size_t at, const char *fmt, ...) {
    char msg[200], elem[40] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->in_array) snprintf(elem, sizeof elem, ", element %.0f", (double)w->elem);
    return lisa__fail(w->err, LISA_ERR_FORMAT, "%s: %s (%s%s, at byte %.0f)", w->name, msg, w->where, elem,
                      (double)at);
}

/* Whether `bytes` more bytes are present. When not, but the file has them,
   w->need says how many to read (no error); past the file's end, an error
   naming what ran out. */
static int lisa__gguf_has(lisa__gguf_walk *w, uint64_t bytes, const char *what) {
    if (bytes <= (uint64_t)(w->n - w->pos)) return 1;
    if (bytes <= w->total - w->pos) w->need = (uint64_t)w->pos + bytes;
    else lisa__gguf_bad(w, w->pos, "truncated: %s needs %.0f bytes, %.0f are left", what, (double)bytes,
                        (double)(w->total - w->pos));
    return 0;
}

static uint32_t lisa__gguf_take32(lisa__gguf_walk *w) {
    uint32_t v = (uint32_t)lisa__le32(w->p + w->pos);
    w->pos += 4;
    return v;
}

static uint64_t lisa__gguf_take64(lisa__gguf_walk *w) {
    uint64_t v = lisa__le64(w->p + w->pos);
    w->pos += 8;
    return v;
}

/* A string: its length, checked against the file, and where its bytes are. */
static int lisa__gguf_string(lisa__gguf_walk *w, uint64_t *len, size_t *at) {
    if (!lisa__gguf_has(w, 8, "a string's length")) return 0;
    *len = lisa__gguf_take64(w);
    if (!lisa__gguf_has(w, *len, "a string")) return 0;
    *at = w->pos;
    w->pos += (size_t)*len;
    return 1;
}

/* A key or a tensor name: 1 to LISA_GGUF_MAX_KEY bytes, none of them a
   control byte, so that it prints in messages and compares as a C string. */
static lisa_result lisa__gguf_name(lisa__gguf_walk *w, const char *what, size_t *len, size_t *at) {
    size_t start = w->pos, i;
    uint64_t n;
    if (!lisa__gguf_has(w, 8, "a name's length")) return LISA_ERR_FORMAT;
    n = lisa__gguf_take64(w);
    if (n == 0) return lisa__gguf_bad(w, start, "an empty %s", what);
    if (n > LISA_GGUF_MAX_KEY)
        return lisa__gguf_bad(w, start, "a %s of %.0f bytes (at most %d)", what, (double)n, LISA_GGUF_MAX_KEY);
    if (!lisa__gguf_has(w, n, what)) return LISA_ERR_FORMAT;
    for (i = 0; i < (size_t)n; i++) {
        unsigned char c = w->p[w->pos + i];
        if (c < 0x20 || c == 0x7F) return lisa__gguf_bad(w, w->pos + i, "the %s holds the control byte 0x%02x", what, c);
    }
    *len = (size_t)n;
    *at = w->pos;
    w->pos += (size_t)n;
    w->text += n + 1;
    return LISA_OK;
}

/* Copies a name into the pool, NUL-terminated. */
static const char *lisa__gguf_copy_name(lisa__gguf_walk *w, size_t at, size_t len) {
    char *s = w->pool;
    memcpy(s, w->p + at, len);
    s[len] = 0;
    w->pool += len + 1;
    return s;
}

/* An array (after its value type): element type, count, elements. kv is the
   key's entry at the top level, else NULL. */
static lisa_result lisa__gguf_array_value(lisa__gguf_walk *w, int depth, lisa_gguf_kv *kv) {
    size_t start = w->pos, esize;
    uint32_t et;
    uint64_t count, k, min;
    lisa_result r;
    if (depth >= LISA_GGUF_MAX_DEPTH)
        return lisa__gguf_bad(w, start, "arrays nested more than %d deep", LISA_GGUF_MAX_DEPTH);
    if (!lisa__gguf_has(w, 12, "an array's element type and count")) return LISA_ERR_FORMAT;
    et = lisa__gguf_take32(w);
    count = lisa__gguf_take64(w);
    if (et >= LISA__GGUF_N_TYPES) return lisa__gguf_bad(w, start, "unknown array element type %u", (unsigned)et);
    esize = lisa__gguf_fixed_size(et);
    min = esize ? esize : et == LISA_GGUF_STRING ? 8 : 12;
    if (count > (w->total - w->pos) / min)
        return lisa__gguf_bad(w, start, "truncated: an array of %.0f %s elements needs at least %.0f bytes, %.0f are left",
                              (double)count, lisa_gguf_type_name((lisa_gguf_type)et), (double)count * (double)min,
                              (double)(w->total - w->pos));
    if (kv) {
        kv->elem_type = (lisa_gguf_type)et;
        kv->count = count;
        kv->value = w->pos;
    }
    if (esize) {
        if (!lisa__gguf_has(w, count * esize, "the array's elements")) return LISA_ERR_FORMAT;
        if (et == LISA_GGUF_BOOL && !w->fill)
            for (k = 0; k < count; k++)
                if (w->p[w->pos + (size_t)k] > 1) {
                    w->in_array = 1;
                    w->elem = k;
                    return lisa__gguf_bad(w, w->pos + (size_t)k, "bool value %u (0 or 1 expected)",
                                          (unsigned)w->p[w->pos + (size_t)k]);
                }
        w->pos += (size_t)(count * esize);
    } else {
        if (kv && et == LISA_GGUF_STRING) {
            if (w->fill) kv->strings = w->strings;
            else w->n_strings += count;
        }
        for (k = 0; k < count; k++) {
            uint64_t len;
            size_t at;
            w->in_array = 1;
            w->elem = k;
            if (et == LISA_GGUF_STRING) {
                if (kv && w->fill) *w->strings++ = w->pos;
                if (!lisa__gguf_string(w, &len, &at)) return LISA_ERR_FORMAT;
            } else if ((r = lisa__gguf_array_value(w, depth + 1, NULL)) != LISA_OK) {
                return r;
            }
        }
        w->in_array = 0;
    }
    if (kv) kv->value_size = w->pos - kv->value;
    return LISA_OK;
}

/* A value of type `type` (already checked to be a known one). */
static lisa_result lisa__gguf_value(lisa__gguf_walk *w, uint32_t type, int depth, lisa_gguf_kv *kv) {
    size_t size = lisa__gguf_fixed_size(type), at;
    uint64_t len;
    if (type == LISA_GGUF_ARRAY) return lisa__gguf_array_value(w, depth, kv);
    if (type == LISA_GGUF_STRING) {
        if (!lisa__gguf_string(w, &len, &at)) return LISA_ERR_FORMAT;
        kv->value = at;
        kv->value_size = (size_t)len;
        return LISA_OK;
    }
    if (!lisa__gguf_has(w, size, "the value")) return LISA_ERR_FORMAT;
    if (type == LISA_GGUF_BOOL && w->p[w->pos] > 1)
        return lisa__gguf_bad(w, w->pos, "bool value %u (0 or 1 expected)", (unsigned)w->p[w->pos]);
    kv->value = w->pos;
    kv->value_size = size;
    w->pos += size;
    return LISA_OK;
}

static uint32_t lisa__gguf_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;   /* FNV-1a */
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The slot of a name in the key table (tensors 0) or the tensor table: where
   it is, or the empty slot where it would go. The tables are never full. */
static size_t lisa__gguf_slot(const lisa_gguf *g, int tensors, const char *s, size_t n) {
    const int32_t *table = tensors ? g->tensor_index : g->kv_index;
    size_t mask = g->index_size - 1, h = lisa__gguf_hash(s, n) & mask;
    for (;; h = (h + 1) & mask) {
        int32_t e = table[h];
        const char *x;
        size_t len;
        if (e < 0) return h;
        x = tensors ? g->tensors[e].name : g->kv[e].key;
        len = tensors ? g->tensors[e].name_len : g->kv[e].key_len;
        if (len == n && memcmp(x, s, n) == 0) return h;
    }
}

/* Adds entry e under its name; 0 when the name is already there. */
static int lisa__gguf_insert(lisa_gguf *g, int tensors, int e, const char *s, size_t n) {
    int32_t *table = tensors ? g->tensor_index : g->kv_index;
    size_t h = lisa__gguf_slot(g, tensors, s, n);
    if (table[h] >= 0) return 0;
    table[h] = e;
    return 1;
}

/* Key/value pair i. */
static lisa_result lisa__gguf_kv_walk(lisa__gguf_walk *w, int i) {
    lisa_gguf_kv scratch, *kv = w->fill ? &w->g->kv[i] : &scratch;
    size_t start = w->pos, len, at;
    uint32_t type;
    lisa_result r;
    memset(kv, 0, sizeof *kv);
    snprintf(w->where, sizeof w->where, "key #%d", i);
    if ((r = lisa__gguf_name(w, "key", &len, &at)) != LISA_OK) return r;
    snprintf(w->where, sizeof w->where, "key %.*s", (int)LISA__MIN(len, 100), (const char *)w->p + at);
    if (w->fill) {
        kv->key = lisa__gguf_copy_name(w, at, len);
        kv->key_len = len;
        if (!lisa__gguf_insert(w->g, 0, i, kv->key, len)) return lisa__gguf_bad(w, start, "the key appears twice");
    }
    if (!lisa__gguf_has(w, 4, "the value type")) return LISA_ERR_FORMAT;
    type = lisa__gguf_take32(w);
    if (type >= LISA__GGUF_N_TYPES) return lisa__gguf_bad(w, w->pos - 4, "unknown value type %u", (unsigned)type);
    kv->type = kv->elem_type = (lisa_gguf_type)type;
    kv->count = 1;
    if ((r = lisa__gguf_value(w, type, 0, kv)) != LISA_OK) return r;
    if (len == 17 && memcmp(w->p + at, "general.alignment", 17) == 0) {
        uint32_t v;
        if (type != LISA_GGUF_UINT32)
            return lisa__gguf_bad(w, start, "general.alignment is a %s, a uint32 expected",
                                  lisa_gguf_type_name((lisa_gguf_type)type));
        v = (uint32_t)lisa__le32(w->p + kv->value);
        if (v == 0 || (v & (v - 1)) != 0)
            return lisa__gguf_bad(w, kv->value, "general.alignment %u is not a power of two", (unsigned)v);
        w->alignment = v;
    }
    return LISA_OK;
}

/* Tensor info j: name, dimensions, ggml type, offset. */
static lisa_result lisa__gguf_tensor_walk(lisa__gguf_walk *w, int j) {
    lisa_gguf_tensor scratch, *t = w->fill ? &w->g->tensors[j] : &scratch;
    const lisa__ggml_type_info *info;
    size_t start = w->pos, len, at, dims_at;
    uint32_t nd, d;
    lisa_result r;
    memset(t, 0, sizeof *t);
    snprintf(w->where, sizeof w->where, "tensor #%d", j);
    if ((r = lisa__gguf_name(w, "tensor name", &len, &at)) != LISA_OK) return r;
    snprintf(w->where, sizeof w->where, "tensor %.*s", (int)LISA__MIN(len, 100), (const char *)w->p + at);
    if (w->fill) {
        t->name = lisa__gguf_copy_name(w, at, len);
        t->name_len = len;
        if (!lisa__gguf_insert(w->g, 1, j, t->name, len)) return lisa__gguf_bad(w, start, "the tensor name appears twice");
    }
    if (!lisa__gguf_has(w, 4, "the dimension count")) return LISA_ERR_FORMAT;
    nd = lisa__gguf_take32(w);
    if (nd > LISA_GGUF_MAX_DIMS)
        return lisa__gguf_bad(w, w->pos - 4, "%u dimensions (at most %d)", (unsigned)nd, LISA_GGUF_MAX_DIMS);
    if (!lisa__gguf_has(w, 8 * (uint64_t)nd + 12, "the dimensions, type and offset")) return LISA_ERR_FORMAT;
    dims_at = w->pos;
    t->n_dims = (int)nd;
    t->n_elements = 1;
    for (d = 0; d < LISA_GGUF_MAX_DIMS; d++) {
        uint64_t v = d < nd ? lisa__gguf_take64(w) : 1;
        if (v > LISA__GGUF_I64_MAX)
            return lisa__gguf_bad(w, dims_at + 8 * d, "dimension %u is %.0f, more than int64 holds", (unsigned)d, (double)v);
        if (v != 0 && t->n_elements > LISA__GGUF_I64_MAX / v)
            return lisa__gguf_bad(w, dims_at, "the dimensions' product overflows int64");
        t->dims[d] = v;
        t->n_elements *= v;
    }
    t->type = lisa__gguf_take32(w);
    t->offset = lisa__gguf_take64(w);
    info = lisa__ggml_type(t->type);
    if (info) {
        if (t->dims[0] % info->block != 0)
            return lisa__gguf_bad(w, dims_at, "rows of %.0f elements are not whole %s blocks of %u", (double)t->dims[0],
                                  info->name, (unsigned)info->block);
        if (t->n_elements / info->block > LISA__GGUF_I64_MAX / info->bytes)
            return lisa__gguf_bad(w, dims_at, "the tensor's size overflows int64");
        t->size = t->n_elements / info->block * info->bytes;
    }
    if (t->offset % w->alignment != 0)
        return lisa__gguf_bad(w, w->pos - 8, "data offset %.0f is not a multiple of the alignment %u", (double)t->offset,
                              (unsigned)w->alignment);
    if (t->offset > LISA__GGUF_I64_MAX - t->size)
        return lisa__gguf_bad(w, w->pos - 8, "data offset %.0f is past what int64 holds", (double)t->offset);
    if (t->offset < w->prev_end)
        return lisa__gguf_bad(w, w->pos - 8, "data offset %.0f overlaps the tensor before, which ends at %.0f",
                              (double)t->offset, (double)w->prev_end);
    w->prev_end = t->offset + t->size;
    return LISA_OK;
}

/* The whole header: magic, version, counts, key/value pairs, tensor infos. */
static lisa_result lisa__gguf_walk_all(lisa__gguf_walk *w, uint32_t *version, uint64_t *n_tensors, uint64_t *n_kv) {
    uint32_t v;
    uint64_t i;
    lisa_result r;
    w->pos = 0;
    w->alignment = LISA_GGUF_DEFAULT_ALIGNMENT;
    w->prev_end = 0;
    w->in_array = 0;
    snprintf(w->where, sizeof w->where, "header");
    if (!lisa__gguf_has(w, 8, "the magic and version")) return LISA_ERR_FORMAT;
    if (memcmp(w->p, "GGUF", 4) != 0)
        return lisa__gguf_bad(w, 0, "not a GGUF file: it starts with %02x %02x %02x %02x, not \"GGUF\"", w->p[0], w->p[1],
                              w->p[2], w->p[3]);
    w->pos = 4;
    v = lisa__gguf_take32(w);
    if (v != 0 && (v & 0xFFFF) == 0)
        return lisa__gguf_bad(w, 4, "a big-endian GGUF file (version bytes %02x %02x %02x %02x): only little-endian files are read",
                              w->p[4], w->p[5], w->p[6], w->p[7]);
    if (v == 1)
        return lisa__gguf_bad(w, 4, "GGUF version 1 (32-bit counts and lengths) is not supported, versions 2 and 3 are");
    if (v != 2 && v != 3) return lisa__gguf_bad(w, 4, "GGUF version %u is not supported, versions 2 and 3 are", (unsigned)v);
    *version = v;
    if (!lisa__gguf_has(w, 16, "the tensor and key counts")) return LISA_ERR_FORMAT;
    *n_tensors = lisa__gguf_take64(w);
    *n_kv = lisa__gguf_take64(w);
    /* Each pair takes at least 14 bytes, each tensor info 25. */
    if (*n_kv > (w->total - w->pos) / 14 || *n_tensors > (w->total - w->pos) / 25)
        return lisa__gguf_bad(w, 8, "truncated: %.0f keys and %.0f tensors cannot fit in the %.0f bytes left", (double)*n_kv,
                              (double)*n_tensors, (double)(w->total - w->pos));
    if (*n_kv > LISA__GGUF_MAX_ENTRIES || *n_tensors > LISA__GGUF_MAX_ENTRIES)
        return lisa__gguf_bad(w, 8, "%.0f keys and %.0f tensors: more than this reader takes (%d each)", (double)*n_kv,
                              (double)*n_tensors, LISA__GGUF_MAX_ENTRIES);
    for (i = 0; i < *n_kv; i++)
        if ((r = lisa__gguf_kv_walk(w, (int)i)) != LISA_OK) return r;
    for (i = 0; i < *n_tensors; i++)
        if ((r = lisa__gguf_tensor_walk(w, (int)i)) != LISA_OK) return r;
    return LISA_OK;
}

/* Rounds n up to a multiple of 16, adding it to *sum; 0 on overflow. */
static int lisa__gguf_add_part(uint64_t *sum, uint64_t n) {
    n = (n + 15) & ~(uint64_t)15;
    if (n > (uint64_t)SIZE_MAX - *sum) return 0;
    *sum += n;
    return 1;
}

/* Parses the header held in the first n bytes (of a total-byte file) into g.
   With w->need set on failure, more of the file must be read first. */
static lisa_result lisa__gguf_parse(lisa_gguf *g, lisa__gguf_walk *w, const lisa_allocator *al) {
    uint64_t n_t, n_kv, sum = 0, kv_b, t_b, s_b, idx_b, index_size = 2;
    size_t name_len = strlen(w->name), k;
    uint32_t version;
    unsigned char *b;
    lisa_result r = lisa__gguf_walk_all(w, &version, &n_t, &n_kv);
    if (r != LISA_OK) return r;
    while (index_size < 2 * (n_kv > n_t ? n_kv : n_t) + 1) index_size *= 2;
    kv_b = n_kv * sizeof(lisa_gguf_kv);
    t_b = n_t * sizeof(lisa_gguf_tensor);
    s_b = w->n_strings * sizeof(size_t);
    idx_b = index_size * sizeof(int32_t);
    if (!lisa__gguf_add_part(&sum, kv_b) || !lisa__gguf_add_part(&sum, t_b) || !lisa__gguf_add_part(&sum, s_b) ||
        !lisa__gguf_add_part(&sum, idx_b) || !lisa__gguf_add_part(&sum, idx_b) ||
        !lisa__gguf_add_part(&sum, w->text + name_len + 1))
        return lisa__fail(w->err, LISA_ERR_NOMEM, "%s: the header's tables are larger than memory can hold", w->name);
    g->block = b = (unsigned char *)lisa__alloc(al, (size_t)sum, &g->bytes);
    if (!b) return lisa__fail(w->err, LISA_ERR_NOMEM, "%s: out of memory for the header's tables (%.0f bytes)", w->name, (double)sum);
    g->block_size = (size_t)sum;
    g->kv = (lisa_gguf_kv *)b;
    b += (kv_b + 15) & ~(uint64_t)15;
    g->tensors = (lisa_gguf_tensor *)b;
    b += (t_b + 15) & ~(uint64_t)15;
    w->strings = (size_t *)b;
    b += (s_b + 15) & ~(uint64_t)15;
    g->kv_index = (int32_t *)b;
    b += (idx_b + 15) & ~(uint64_t)15;
    g->tensor_index = (int32_t *)b;
    b += (idx_b + 15) & ~(uint64_t)15;
    w->pool = (char *)b;
    g->index_size = (size_t)index_size;
    for (k = 0; k < g->index_size; k++) g->kv_index[k] = g->tensor_index[k] = -1;
    memcpy(w->pool, w->name, name_len + 1);
    g->name = w->pool;
    w->pool += name_len + 1;
    w->fill = 1;
    w->g = g;
    g->n_kv = (int)n_kv;
    g->n_tensors = (int)n_t;
    r = lisa__gguf_walk_all(w, &version, &n_t, &n_kv);   /* the same bytes: only repeats can fail */
    if (r != LISA_OK) return r;
    g->version = version;
    g->alignment = w->alignment;
    g->header_size = w->pos;
    g->data_offset = ((uint64_t)w->pos + w->alignment - 1) / w->alignment * w->alignment;
    g->buffer = w->p;
    g->buffer_size = w->n;
    g->file_size = w->total;
    return LISA_OK;
}

LISADEF void lisa_gguf_free(lisa_gguf *g) {
    lisa_allocator al = g->allocator;
    size_t bytes = g->bytes;
    lisa__free(&al, g->block, g->block_size, &bytes);
    lisa__free(&al, g->owned, g->buffer_size, &bytes);
    memset(g, 0, sizeof *g);
    g->allocator = al;
    g->bytes = bytes;
}

/* Starts g and a walk over n bytes of a total-byte file. */
static void lisa__gguf_begin(lisa_gguf *g, lisa__gguf_walk *w, const void *data, size_t n, uint64_t total,
                             const char *name, const lisa_allocator *a, lisa_error *err) {
    memset(g, 0, sizeof *g);
    g->allocator = lisa__allocator_or_default(a);
    memset(w, 0, sizeof *w);
    w->p = (const unsigned char *)data;
    w->n = data ? n : 0;
    w->total = data ? total : 0;
    w->name = name;
    w->err = err;
}

LISADEF lisa_result lisa_gguf_parse_memory(lisa_gguf *g, const void *data, size_t size, const char *name,
                                           const lisa_allocator *a, lisa_error *err) {
    lisa__gguf_walk w;
    lisa_result r;
    lisa__gguf_begin(g, &w, data, size, size, name ? name : "<memory>", a, err);
    r = lisa__gguf_parse(g, &w, &g->allocator);
    if (r != LISA_OK) {
        lisa_gguf_free(g);
        return r;
    }
    lisa__ok(err);
    return LISA_OK;
}

#ifndef LISA_NO_STDIO
/* Tensors of known types must end within the file. */
static lisa_result lisa__gguf_check_extent(const lisa_gguf *g, lisa_error *err) {
    int j;
    for (j = 0; j < g->n_tensors; j++) {
        const lisa_gguf_tensor *t = &g->tensors[j];
        if (t->offset + t->size > g->file_size || g->data_offset > g->file_size - t->offset - t->size)
            return lisa__fail(err, LISA_ERR_FORMAT,
                              "%s: truncated: tensor %.100s's %.0f bytes at byte %.0f run past the end of the %.0f-byte file",
                              g->name, t->name, (double)t->size, (double)(g->data_offset + t->offset), (double)g->file_size);
    }
    return LISA_OK;
}

/* Grows buf, holding the file's first *have bytes, to its first want bytes. */
static lisa_result lisa__gguf_read_more(lisa__reader *r, const lisa_allocator *al, unsigned char **buf, size_t *have,
                                        size_t want, size_t *counter, const char *path, lisa_error *err) {
    size_t old = *have;
    unsigned char *nb = (unsigned char *)lisa__alloc(al, want, counter);
    if (!nb) return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %.0f bytes of header", path, (double)want);
    if (old > 0) memcpy(nb, *buf, old);
    lisa__free(al, *buf, old, counter);
    *buf = nb;
    *have = want;
    if (!lisa__read(r, nb + old, want - old))
        return lisa__fail(err, LISA_ERR_IO, "%s: read failed at byte %.0f", path, (double)r->pos);
    return LISA_OK;
}

LISADEF lisa_result lisa_gguf_read_metadata(lisa_gguf *g, const char *path, const lisa_allocator *a,
                                            lisa_error *err) {
    lisa_allocator al = lisa__allocator_or_default(a);
    lisa__reader r;
    lisa__gguf_walk w;
    unsigned char *buf = NULL;
    size_t have = 0, want, counter = 0, limit;
    lisa_result res = lisa__open_reader(&r, path, err);
    memset(g, 0, sizeof *g);
    g->allocator = al;
    if (res != LISA_OK) return res;
    limit = LISA__MIN(r.size, (size_t)LISA_GGUF_MAX_METADATA);
    want = LISA__MIN(limit, LISA__GGUF_FIRST_CHUNK);
    for (;;) {
        if (want > have && (res = lisa__gguf_read_more(&r, &al, &buf, &have, want, &counter, path, err)) != LISA_OK)
            break;
        lisa__gguf_begin(g, &w, buf, have, r.size, path, &al, err);
        res = lisa__gguf_parse(g, &w, &g->allocator);
        if (res == LISA_OK || w.need == 0) break;
        if (w.need > limit) {
            res = lisa__fail(err, LISA_ERR_FORMAT, "%s: the header needs more than %.0f bytes, the most this reader reads",
                             path, (double)LISA_GGUF_MAX_METADATA);
            break;
        }
        want = LISA__MIN(limit, (size_t)w.need > 2 * have ? (size_t)w.need : 2 * have);
    }
    fclose(r.file);
    if (res == LISA_OK) res = lisa__gguf_check_extent(g, err);
    if (res != LISA_OK) {
        lisa_gguf_free(g);
        lisa__free(&al, buf, have, &counter);
        return res;
    }
    g->owned = buf;
    g->bytes += counter;
    lisa__ok(err);
    return LISA_OK;
}
#endif

LISADEF int lisa_gguf_find(const lisa_gguf *g, const char *key) {
    size_t n = strlen(key);
    if (g->index_size == 0) return -1;
    return g->kv_index[lisa__gguf_slot(g, 0, key, n)];
}

LISADEF int lisa_gguf_find_tensor(const lisa_gguf *g, const char *name) {
    size_t n = strlen(name);
    if (g->index_size == 0) return -1;
    return g->tensor_index[lisa__gguf_slot(g, 1, name, n)];
}

/* Entry i, or NULL with an error. */
static const lisa_gguf_kv *lisa__gguf_entry(const lisa_gguf *g, int i, lisa_error *err) {
    if (i >= 0 && i < g->n_kv) return &g->kv[i];
    lisa__fail(err, LISA_ERR_INVALID, "%s: no key #%d (%d keys)", g->name ? g->name : "GGUF", i, g->n_kv);
    return NULL;
}

/* A type error naming the key: "file: key K is a string, an integer expected". */
static lisa_result lisa__gguf_wrong(const lisa_gguf *g, const lisa_gguf_kv *kv, int element, const char *expected,
                                    lisa_error *err) {
    if (kv->type == LISA_GGUF_ARRAY && element)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: key %.100s is an array of %s, of %s expected", g->name, kv->key,
                          lisa_gguf_type_name(kv->elem_type), expected);
    return lisa__fail(err, LISA_ERR_FORMAT, "%s: key %.100s is a%s %s, %s expected", g->name, kv->key,
                      kv->type == LISA_GGUF_INT8 || kv->type == LISA_GGUF_INT16 || kv->type == LISA_GGUF_INT32 ||
                              kv->type == LISA_GGUF_INT64 || kv->type == LISA_GGUF_ARRAY
                          ? "n" : "",
                      lisa_gguf_type_name(kv->type), expected);
}

/* The integer of type t at b: 1, or 0 when t is not an integer type, or -1
   for a uint64 above INT64_MAX. */
static int lisa__gguf_int_at(const unsigned char *b, lisa_gguf_type t, int64_t *v) {
    uint64_t u;
    switch (t) {
    case LISA_GGUF_UINT8: *v = b[0]; return 1;
    case LISA_GGUF_INT8: *v = (int64_t)b[0] - (b[0] >= 0x80 ? 0x100 : 0); return 1;
    case LISA_GGUF_UINT16: *v = (int64_t)(b[0] | b[1] << 8); return 1;
    case LISA_GGUF_INT16: *v = (int64_t)(b[0] | b[1] << 8) - (b[1] >= 0x80 ? 0x10000 : 0); return 1;
    case LISA_GGUF_UINT32: *v = (int64_t)(uint32_t)lisa__le32(b); return 1;
    case LISA_GGUF_INT32: *v = (int64_t)lisa__le32(b); return 1;
    case LISA_GGUF_UINT64:
        u = lisa__le64(b);
        if (u > LISA__GGUF_I64_MAX) return -1;
        *v = (int64_t)u;
        return 1;
    case LISA_GGUF_INT64:
        u = lisa__le64(b);
        *v = u > LISA__GGUF_I64_MAX ? -(int64_t)(~u) - 1 : (int64_t)u;
        return 1;
    default: return 0;
    }
}

/* The float of type t at b: 1, or 0 when t is not float32 or float64. */
static int lisa__gguf_float_at(const unsigned char *b, lisa_gguf_type t, double *v) {
    if (t == LISA_GGUF_FLOAT32) {
        *v = (double)lisa__f32_from_bits((uint32_t)lisa__le32(b));
        return 1;
    }
    if (t == LISA_GGUF_FLOAT64) {
        uint64_t u = lisa__le64(b);
        memcpy(v, &u, sizeof *v);
        return 1;
    }
    return 0;
}

static lisa_result lisa__gguf_int_result(const lisa_gguf *g, const lisa_gguf_kv *kv, int element, int got, lisa_error *err) {
    if (got == 0) return lisa__gguf_wrong(g, kv, element, "an integer", err);
    if (got < 0) return lisa__fail(err, LISA_ERR_FORMAT, "%s: key %.100s: a uint64 value above INT64_MAX", g->name, kv->key);
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_gguf_get_int(const lisa_gguf *g, int i, int64_t *v, lisa_error *err) {
    const lisa_gguf_kv *kv = lisa__gguf_entry(g, i, err);
    if (!kv) return LISA_ERR_INVALID;
    return lisa__gguf_int_result(g, kv, 0, lisa__gguf_int_at(g->buffer + kv->value, kv->type, v), err);
}

LISADEF lisa_result lisa_gguf_get_float(const lisa_gguf *g, int i, double *v, lisa_error *err) {
    const lisa_gguf_kv *kv = lisa__gguf_entry(g, i, err);
    if (!kv) return LISA_ERR_INVALID;
    if (!lisa__gguf_float_at(g->buffer + kv->value, kv->type, v)) return lisa__gguf_wrong(g, kv, 0, "a float", err);
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_gguf_get_bool(const lisa_gguf *g, int i, int *v, lisa_error *err) {
    const lisa_gguf_kv *kv = lisa__gguf_entry(g, i, err);
    if (!kv) return LISA_ERR_INVALID;
    if (kv->type != LISA_GGUF_BOOL) return lisa__gguf_wrong(g, kv, 0, "a bool", err);
    *v = g->buffer[kv->value];
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_gguf_get_string(const lisa_gguf *g, int i, const char **s, size_t *len, lisa_error *err) {
    const lisa_gguf_kv *kv = lisa__gguf_entry(g, i, err);
    if (!kv) return LISA_ERR_INVALID;
    if (kv->type != LISA_GGUF_STRING) return lisa__gguf_wrong(g, kv, 0, "a string", err);
    *s = (const char *)g->buffer + kv->value;
    if (len) *len = kv->value_size;
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_gguf_array(const lisa_gguf *g, int i, lisa_gguf_type *elem_type, uint64_t *count,
                                    lisa_error *err) {
    const lisa_gguf_kv *kv = lisa__gguf_entry(g, i, err);
    if (!kv) return LISA_ERR_INVALID;
    if (kv->type != LISA_GGUF_ARRAY) return lisa__gguf_wrong(g, kv, 0, "an array", err);
    if (elem_type) *elem_type = kv->elem_type;
    if (count) *count = kv->count;
    lisa__ok(err);
    return LISA_OK;
}

/* Array i's entry in *out when it has an element k. */
static lisa_result lisa__gguf_element(const lisa_gguf *g, int i, uint64_t k, const lisa_gguf_kv **out, lisa_error *err) {
    const lisa_gguf_kv *kv = lisa__gguf_entry(g, i, err);
    if (!kv) return LISA_ERR_INVALID;
    if (kv->type != LISA_GGUF_ARRAY) return lisa__gguf_wrong(g, kv, 0, "an array", err);
    if (k >= kv->count)
        return lisa__fail(err, LISA_ERR_INVALID, "%s: key %.100s: no element %.0f (%.0f elements)", g->name, kv->key,
                          (double)k, (double)kv->count);
    *out = kv;
    return LISA_OK;
}

/* Where fixed-size element k of kv is. */
static const unsigned char *lisa__gguf_fixed_at(const lisa_gguf *g, const lisa_gguf_kv *kv, uint64_t k) {
    return g->buffer + kv->value + (size_t)k * lisa__gguf_fixed_size(kv->elem_type);
}

LISADEF lisa_result lisa_gguf_array_int(const lisa_gguf *g, int i, uint64_t k, int64_t *v, lisa_error *err) {
    const lisa_gguf_kv *kv = NULL;
    lisa_result r = lisa__gguf_element(g, i, k, &kv, err);
    if (r != LISA_OK) return r;
    return lisa__gguf_int_result(g, kv, 1, lisa__gguf_int_at(lisa__gguf_fixed_at(g, kv, k), kv->elem_type, v), err);
}

LISADEF lisa_result lisa_gguf_array_float(const lisa_gguf *g, int i, uint64_t k, double *v, lisa_error *err) {
    const lisa_gguf_kv *kv = NULL;
    lisa_result r = lisa__gguf_element(g, i, k, &kv, err);
    if (r != LISA_OK) return r;
    if (!lisa__gguf_float_at(lisa__gguf_fixed_at(g, kv, k), kv->elem_type, v))
        return lisa__gguf_wrong(g, kv, 1, "floats", err);
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_gguf_array_bool(const lisa_gguf *g, int i, uint64_t k, int *v, lisa_error *err) {
    const lisa_gguf_kv *kv = NULL;
    lisa_result r = lisa__gguf_element(g, i, k, &kv, err);
    if (r != LISA_OK) return r;
    if (kv->elem_type != LISA_GGUF_BOOL) return lisa__gguf_wrong(g, kv, 1, "bools", err);
    *v = *lisa__gguf_fixed_at(g, kv, k);
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_gguf_array_string(const lisa_gguf *g, int i, uint64_t k, const char **s, size_t *len,
                                           lisa_error *err) {
    const lisa_gguf_kv *kv = NULL;
    lisa_result r = lisa__gguf_element(g, i, k, &kv, err);
    size_t at;
    if (r != LISA_OK) return r;
    if (kv->elem_type != LISA_GGUF_STRING) return lisa__gguf_wrong(g, kv, 1, "strings", err);
    at = kv->strings[k];
    *s = (const char *)g->buffer + at + 8;
    if (len) *len = (size_t)lisa__le64(g->buffer + at);
    lisa__ok(err);
    return LISA_OK;
}

/* Tensor data: ggml's block layouts (ggml-common.h), decoded as gguf-py's
   gguf/quants.py decodes them, in float32 and in its order of operations:
   d * q per element, then + m or - m where the type has a minimum. Fusing a
   multiply and an add (-ffp-contract=fast) cannot change a value here: an
   f16 scale has 11 significant bits and the integers it is multiplied by
   (sub-block scale, quant) at most 11 more, so every product is exact in
   float32 (no underflow either: the smallest f16 is 2^-24) and the add's
   rounding is the only one, fused or not. Bit for bit, then, except that a
   NaN's payload may differ where a NaN or infinite scale meets another. */

static uint16_t lisa__ggml_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static float lisa__ggml_f16(const unsigned char *p) { return lisa_f16_to_f32(lisa__ggml_u16(p)); }

static void lisa__ggml_put_u16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

/* Each dequantizer turns nb blocks at b into nb * (elements per block)
   floats at y. */
typedef void (*lisa__ggml_dequant_fn)(const unsigned char *b, float *y, uint64_t nb);

static void lisa__dequant_f32(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    for (i = 0; i < nb; i++, b += 4)
        y[i] = lisa__f32_from_bits((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                   (uint32_t)b[3] << 24);
}

static void lisa__dequant_f16(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    for (i = 0; i < nb; i++, b += 2) y[i] = lisa__ggml_f16(b);
}

static void lisa__dequant_bf16(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    for (i = 0; i < nb; i++, b += 2) y[i] = lisa_bf16_to_f32(lisa__ggml_u16(b));
}

/* Q8_0 (34 bytes): f16 d, 32 int8 quants; y = q * d. */
static void lisa__dequant_q8_0(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int l;
    for (i = 0; i < nb; i++, b += 34, y += 32) {
        float d = lisa__ggml_f16(b);
        for (l = 0; l < 32; l++) y[l] = (float)(int8_t)b[2 + l] * d;
    }
}

/* Q4_0 (18 bytes): f16 d, 16 bytes of nibbles; element l is byte l's low
   nibble, element 16 + l its high one; y = d * (q - 8). */
static void lisa__dequant_q4_0(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int l;
    for (i = 0; i < nb; i++, b += 18, y += 32) {
        float d = lisa__ggml_f16(b);
        const unsigned char *qs = b + 2;
        for (l = 0; l < 16; l++) {
            y[l] = d * (float)((qs[l] & 0x0F) - 8);
            y[l + 16] = d * (float)((qs[l] >> 4) - 8);
        }
    }
}

/* Q4_1 (20 bytes): f16 d, f16 m, nibbles as Q4_0; y = d * q + m. */
static void lisa__dequant_q4_1(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int l;
    for (i = 0; i < nb; i++, b += 20, y += 32) {
        float d = lisa__ggml_f16(b), m = lisa__ggml_f16(b + 2);
        const unsigned char *qs = b + 4;
        for (l = 0; l < 16; l++) {
            y[l] = d * (float)(qs[l] & 0x0F) + m;
            y[l + 16] = d * (float)(qs[l] >> 4) + m;
        }
    }
}

/* The 5-bit quants of Q5_0 and Q5_1: nibbles as Q4_0, and bit e of the
   little-endian 32-bit qh on top of element e. */
static void lisa__ggml_q5_quants(const unsigned char *qh4, const unsigned char *qs, int q[32]) {
    uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 | (uint32_t)qh4[2] << 16 | (uint32_t)qh4[3] << 24;
    int l;
    for (l = 0; l < 16; l++) {
        q[l] = (qs[l] & 0x0F) | (int)((qh >> l) & 1) << 4;
        q[l + 16] = (qs[l] >> 4) | (int)((qh >> (l + 16)) & 1) << 4;
    }
}

/* Q5_0 (22 bytes): f16 d, qh, nibbles; y = d * (q - 16). */
static void lisa__dequant_q5_0(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int l, q[32];
    for (i = 0; i < nb; i++, b += 22, y += 32) {
        float d = lisa__ggml_f16(b);
        lisa__ggml_q5_quants(b + 2, b + 6, q);
        for (l = 0; l < 32; l++) y[l] = d * (float)(q[l] - 16);
    }
}

/* Q5_1 (24 bytes): f16 d, f16 m, qh, nibbles; y = d * q + m. */
static void lisa__dequant_q5_1(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int l, q[32];
    for (i = 0; i < nb; i++, b += 24, y += 32) {
        float d = lisa__ggml_f16(b), m = lisa__ggml_f16(b + 2);
        lisa__ggml_q5_quants(b + 4, b + 8, q);
        for (l = 0; l < 32; l++) y[l] = d * (float)q[l] + m;
    }
}

/* The K types: 256 elements in 16 sub-blocks of 16 (Q2_K, Q3_K, Q6_K) or
   8 of 32 (Q4_K, Q5_K), each with its own integer scale (and minimum) that
   multiplies the block's f16 d (and dmin) first: dl = d * sc, ml = dmin * m,
   y = dl * q - ml. */

/* Q2_K (84 bytes): 16 scale bytes (low nibble sc, high nibble m), 64 bytes
   of 2-bit quants, f16 d, f16 dmin. Element 128 h + 32 j + l is bits 2j of
   byte 32 h + l. */
static void lisa__dequant_q2_k(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int h, j, l;
    for (i = 0; i < nb; i++, b += 84, y += 256) {
        const unsigned char *sc = b, *qs = b + 16;
        float d = lisa__ggml_f16(b + 80), dmin = lisa__ggml_f16(b + 82);
        for (h = 0; h < 2; h++)
            for (j = 0; j < 4; j++) {
                int s = 8 * h + 2 * j;   /* sub-block of element 128 h + 32 j */
                float dl0 = d * (float)(sc[s] & 0x0F), ml0 = dmin * (float)(sc[s] >> 4);
                float dl1 = d * (float)(sc[s + 1] & 0x0F), ml1 = dmin * (float)(sc[s + 1] >> 4);
                float *o = y + 128 * h + 32 * j;
                const unsigned char *q = qs + 32 * h;
                for (l = 0; l < 16; l++) o[l] = dl0 * (float)((q[l] >> (2 * j)) & 3) - ml0;
                for (l = 16; l < 32; l++) o[l] = dl1 * (float)((q[l] >> (2 * j)) & 3) - ml1;
            }
    }
}

/* Q3_K (110 bytes): 32 bytes hmask, 64 bytes of 2-bit quants (placed as
   Q2_K's), 12 bytes of 6-bit scales, f16 d. Bit k of hmask byte l belongs
   to element 32 k + l; when it is clear the quant is 4 lower. Scale i: low
   nibble of byte i (i < 8) or high nibble of byte i - 8, and bits 2 (i / 4)
   of byte 8 + i % 4 above them, minus 32. */
static void lisa__dequant_q3_k(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int s, j, l;
    for (i = 0; i < nb; i++, b += 110, y += 256) {
        const unsigned char *hm = b, *qs = b + 32, *sc = b + 96;
        float d = lisa__ggml_f16(b + 108), dl[16];
        for (s = 0; s < 16; s++) {
            int lo = s < 8 ? sc[s] & 0x0F : sc[s - 8] >> 4, hi = (sc[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
            dl[s] = d * (float)((lo | hi << 4) - 32);
        }
        for (j = 0; j < 8; j++) {   /* elements 32 j .. 32 j + 31: hmask bit j */
            const unsigned char *q = qs + 32 * (j >> 2);
            int shift = 2 * (j & 3);
            float *o = y + 32 * j;
            for (l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 3) - ((hm[l] >> j) & 1 ? 0 : 4);
                o[l] = dl[2 * j + (l >> 4)] * (float)v;
            }
        }
    }
}

/* The 6-bit scales and minimums of Q4_K and Q5_K's 8 sub-blocks, packed in
   12 bytes: sub-block j < 4 has the low 6 bits of bytes j (scale) and
   j + 4 (minimum); j >= 4 has byte j + 4's nibbles (low: scale, high:
   minimum) under the top 2 bits of bytes j - 4 and j. */
static void lisa__ggml_k4_scales(const unsigned char *p, float d, float dmin, float dl[8], float ml[8]) {
    int j;
    for (j = 0; j < 8; j++) {
        int sc = j < 4 ? p[j] & 0x3F : (p[j + 4] & 0x0F) | (p[j - 4] >> 6) << 4;
        int m = j < 4 ? p[j + 4] & 0x3F : (p[j + 4] >> 4) | (p[j] >> 6) << 4;
        dl[j] = d * (float)sc;
        ml[j] = dmin * (float)m;
    }
}

/* Q4_K (144 bytes): f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles:
   sub-block 2 c is the low nibbles of bytes 32 c .. 32 c + 31, 2 c + 1 the
   high ones. */
static void lisa__dequant_q4_k(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int c, l;
    float dl[8], ml[8];
    for (i = 0; i < nb; i++, b += 144, y += 256) {
        const unsigned char *qs = b + 16;
        lisa__ggml_k4_scales(b + 4, lisa__ggml_f16(b), lisa__ggml_f16(b + 2), dl, ml);
        for (c = 0; c < 4; c++, qs += 32) {
            float *o = y + 64 * c, d0 = dl[2 * c], m0 = ml[2 * c], d1 = dl[2 * c + 1], m1 = ml[2 * c + 1];
            for (l = 0; l < 32; l++) {
                o[l] = d0 * (float)(qs[l] & 0x0F) - m0;
                o[l + 32] = d1 * (float)(qs[l] >> 4) - m1;
            }
        }
    }
}

/* Q5_K (176 bytes): as Q4_K with 32 bytes qh after the scales: bit s of qh
   byte l is the fifth bit of sub-block s's element l. */
static void lisa__dequant_q5_k(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int c, l;
    float dl[8], ml[8];
    for (i = 0; i < nb; i++, b += 176, y += 256) {
        const unsigned char *qh = b + 16, *qs = b + 48;
        lisa__ggml_k4_scales(b + 4, lisa__ggml_f16(b), lisa__ggml_f16(b + 2), dl, ml);
        for (c = 0; c < 4; c++, qs += 32) {
            float *o = y + 64 * c, d0 = dl[2 * c], m0 = ml[2 * c], d1 = dl[2 * c + 1], m1 = ml[2 * c + 1];
            for (l = 0; l < 32; l++) {
                int q0 = (qs[l] & 0x0F) | ((qh[l] >> (2 * c)) & 1) << 4;
                int q1 = (qs[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4;
                o[l] = d0 * (float)q0 - m0;
                o[l + 32] = d1 * (float)q1 - m1;
            }
        }
    }
}

/* Q6_K (210 bytes): 128 bytes ql, 64 bytes qh, 16 int8 scales, f16 d. In
   each half h (128 elements), element 64 k + m has the nibble k of ql byte
   64 h + m, and element 32 j + l the bits 2j of qh byte 32 h + l above it;
   the quant is that minus 32, its scale d * scales[element / 16]. */
static void lisa__dequant_q6_k(const unsigned char *b, float *y, uint64_t nb) {
    uint64_t i;
    int h, s, l;
    for (i = 0; i < nb; i++, b += 210, y += 256) {
        float d = lisa__ggml_f16(b + 208), dl[16];
        for (s = 0; s < 16; s++) dl[s] = d * (float)(int8_t)b[192 + s];
        for (h = 0; h < 2; h++) {
            const unsigned char *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            float *o = y + 128 * h;
            const float *dh = dl + 8 * h;
            for (l = 0; l < 32; l++) {
                int q0 = (ql[l] & 0x0F) | (qh[l] & 3) << 4;
                int q1 = (ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4;
                int q2 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
                int q3 = (ql[l + 32] >> 4) | (qh[l] >> 6) << 4;
                o[l] = dh[l >> 4] * (float)(q0 - 32);
                o[l + 32] = dh[2 + (l >> 4)] * (float)(q1 - 32);
                o[l + 64] = dh[4 + (l >> 4)] * (float)(q2 - 32);
                o[l + 96] = dh[6 + (l >> 4)] * (float)(q3 - 32);
            }
        }
    }
}

static lisa__ggml_dequant_fn lisa__ggml_dequantizer(uint32_t type) {
    switch (type) {
    case 0: return lisa__dequant_f32;
    case 1: return lisa__dequant_f16;
    case 2: return lisa__dequant_q4_0;
    case 3: return lisa__dequant_q4_1;
    case 6: return lisa__dequant_q5_0;
    case 7: return lisa__dequant_q5_1;
    case 8: return lisa__dequant_q8_0;
    case 10: return lisa__dequant_q2_k;
    case 11: return lisa__dequant_q3_k;
    case 12: return lisa__dequant_q4_k;
    case 13: return lisa__dequant_q5_k;
    case 14: return lisa__dequant_q6_k;
    case 30: return lisa__dequant_bf16;
    default: return NULL;
    }
}

LISADEF int lisa_ggml_dequantize(uint32_t type, const void *src, float *dst, uint64_t n) {
    lisa__ggml_dequant_fn fn = lisa__ggml_dequantizer(type);
    uint32_t block;
    if (!fn || !lisa_ggml_type_size(type, &block, NULL) || n % block != 0) return 0;
    fn((const unsigned char *)src, dst, n / block);
    return 1;
}

/* numpy's float32 to float16 (what gguf-py's astype(np.float16) does): as
   lisa_f32_to_f16, except that a NaN keeps its top 10 payload bits as they
   are (1 when they are all 0) instead of becoming quiet. */
static uint16_t lisa__ggml_f16_numpy(float f) {
    uint32_t u = lisa__f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
        uint32_t payload = (u >> 13) & 0x3FF;
        return (uint16_t)((u >> 16 & 0x8000) | 0x7C00 | (payload ? payload : 1));
    }
    return lisa_f32_to_f16(f);
}

/* The low byte of a float truncated to an integer, as numpy's float32 to
   int8 cast does on x86-64 (through a 32- or 64-bit integer): 0 for NaN,
   infinities, and magnitudes of 2^31 or more, whose low byte is 0 anyway. */
static int8_t lisa__ggml_to_int8(float x) {
    uint32_t u;
    if (!(fabsf(x) < 2147483648.0f)) return 0;
    u = (uint32_t)(int32_t)x & 0xFF;
    return (int8_t)(u < 128 ? (int)u : (int)u - 256);
}

/* Q8_0 as gguf-py: d = max |x| / 127 and q = round(x * (1 / d)), rounded
   half away from zero (its np_roundf, not np.round's half to even); an
   all-zero block gets d = 0 and quants 0. A NaN makes the block's d NaN and
   its quants 0, as numpy. */
static void lisa__quant_q8_0(const float *x, unsigned char *b) {
    float amax = 0, d, id;
    int l;
    for (l = 0; l < 32; l++) {
        float a = fabsf(x[l]);
        if (a != a) {
            amax = a;
            break;
        }
        if (a > amax) amax = a;
    }
    d = amax / 127;
    id = d == 0 ? 0 : 1 / d;
    lisa__ggml_put_u16(b, lisa__ggml_f16_numpy(d));
    for (l = 0; l < 32; l++) {
        float v = x[l] * id;
        b[2 + l] = (unsigned char)lisa__ggml_to_int8(v == v ? roundf(v) : v);
    }
}

LISADEF int lisa_ggml_quantize(uint32_t type, const float *src, void *dst, uint64_t n) {
    unsigned char *b = (unsigned char *)dst;
    uint64_t i;
    switch (type) {
    case 0: /* F32 */
        for (i = 0; i < n; i++, b += 4) {
            uint32_t u = lisa__f32_bits(src[i]);
            lisa__ggml_put_u16(b, (uint16_t)u);
            lisa__ggml_put_u16(b + 2, (uint16_t)(u >> 16));
        }
        return 1;
    case 1: /* F16 */
        for (i = 0; i < n; i++) lisa__ggml_put_u16(b + 2 * i, lisa__ggml_f16_numpy(src[i]));
        return 1;
    case 30: /* BF16: gguf-py rounds and quiets NaNs as lisa_f32_to_bf16 */
        for (i = 0; i < n; i++) lisa__ggml_put_u16(b + 2 * i, lisa_f32_to_bf16(src[i]));
        return 1;
    case 8: /* Q8_0 */
        if (n % 32 != 0) return 0;
        for (i = 0; i < n / 32; i++) lisa__quant_q8_0(src + 32 * i, b + 34 * i);
        return 1;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------- */
/* GGUF: the tokenizer in the metadata                                        */
/* ------------------------------------------------------------------------- */

/* The tokenizer.ggml.* keys as llama.cpp reads them (src/llama-vocab.cpp,
   llama_vocab::impl::load), described to the BPE builder:
     model          "gpt2": byte-level BPE, merges ranked by their order, split
                    by the scanners of `pre`; "llama": SentencePiece BPE, the
                    merged piece's score decides, byte fallback, spaces as U+2581
     tokens         the vocabulary by id; token_type 2 (unknown) and 3 (control)
                    are also matched as whole strings and are special, 4
                    (user-defined) is matched as a whole string too
     scores         (llama) merge scores, float32 or int32; 0 without them
     merges         (gpt2) "left right" strings, best first
     bos/eos/unknown/padding_token_id, add_bos_token, add_eos_token,
     add_space_prefix (llama), chat_template
   Defaults where a key is absent are llama.cpp's: "llama" BOS 1, EOS 2,
   unknown 0, add_bos and add_space_prefix on; "gpt2" BOS and EOS 11 (none
   for chatglm-bpe, glm4, glm5), add_bos only for the Llama 3 and Tekken
   families, pre "default", ignore_merges where llama.cpp sets it. Unlike
   llama.cpp, which warns and keeps a default, a key out of range is an
   error. Decoding is llama.cpp's token_to_piece: whole-string tokens give
   their text as stored (set.added_verbatim), byte tokens their byte, others
   their GPT-2 alphabet undone or U+2581 as a space, with add_space_prefix one
   leading space of the first token dropped. Not taken over: per-model token
   attributes llama.cpp sets by name (lstrip of <mask>, rstrip for Phi-3),
   unused (5) and undefined (0) tokens decoding to nothing, and the first
   piece's leading space dropped when the first token is a whole-string one. */

#define LISA__GGT_TYPE_MAX 6    /* 0 undefined, 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte */

typedef struct lisa__ggt {
    const lisa_gguf *g;
    lisa__bpe_builder *b;
    lisa_error *err;
    const char *name;
    int spm;                    /* model "llama" */
    int n_tokens;
} lisa__ggt;

static int lisa__ggt_in(const char *s, size_t n, const char *const *names) {
    for (; *names; names++)
        if (strlen(*names) == n && memcmp(*names, s, n) == 0) return 1;
    return 0;
}

/* An optional string key: *s NULL when absent. */
static lisa_result lisa__ggt_string(lisa__ggt *h, const char *key, const char **s, size_t *n) {
    int i = lisa_gguf_find(h->g, key);
    *s = NULL;
    *n = 0;
    return i < 0 ? LISA_OK : lisa_gguf_get_string(h->g, i, s, n, h->err);
}

/* An optional bool key: *v kept when absent. */
static lisa_result lisa__ggt_bool(lisa__ggt *h, const char *key, int *v) {
    int i = lisa_gguf_find(h->g, key);
    return i < 0 ? LISA_OK : lisa_gguf_get_bool(h->g, i, v, h->err);
}

/* An optional token id key: *id kept when absent; it must name a token. */
static lisa_result lisa__ggt_id(lisa__ggt *h, const char *key, int *id) {
    int i = lisa_gguf_find(h->g, key);
    int64_t v = -1;
    lisa_result r;
    if (i < 0) return LISA_OK;
    if ((r = lisa_gguf_get_int(h->g, i, &v, h->err)) != LISA_OK) return r;
    if (v < 0 || v >= h->n_tokens)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key %s is %.0f, not a token id (the vocabulary has %d tokens)",
                          h->name, key, (double)v, h->n_tokens);
    *id = (int)v;
    return LISA_OK;
}

/* An optional per-token array: its index (-1 when absent), with one element per token. */
static lisa_result lisa__ggt_per_token(lisa__ggt *h, const char *key, int *index) {
    lisa_gguf_type et;
    uint64_t n = 0;
    lisa_result r;
    *index = lisa_gguf_find(h->g, key);
    if (*index < 0) return LISA_OK;
    if ((r = lisa_gguf_array(h->g, *index, &et, &n, h->err)) != LISA_OK) return r;
    if (n != (uint64_t)h->n_tokens)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key %s has %.0f elements, tokenizer.ggml.tokens %d", h->name, key,
                          (double)n, h->n_tokens);
    return LISA_OK;
}

/* tokenizer.ggml.model: "gpt2" or "llama". */
static lisa_result lisa__ggt_model(lisa__ggt *h) {
    const char *s;
    size_t n;
    lisa_result r;
    if ((r = lisa__ggt_string(h, "tokenizer.ggml.model", &s, &n)) != LISA_OK) return r;
    if (!s) return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: no key tokenizer.ggml.model: the file has no tokenizer", h->name);
    if (n == 4 && memcmp(s, "gpt2", 4) == 0) h->spm = 0;
    else if (n == 5 && memcmp(s, "llama", 5) == 0) h->spm = 1;
    else
        return lisa__fail(h->err, LISA_ERR_FORMAT,
                          "%s: key tokenizer.ggml.model is \"%.*s\": only \"gpt2\" (byte-level BPE) and \"llama\" (SentencePiece BPE) are supported",
                          h->name, (int)(n < 60 ? n : 60), s);
    return LISA_OK;
}

/* The vocabulary: tokens, token types, scores. */
static lisa_result lisa__ggt_tokens(lisa__ggt *h) {
    const lisa_gguf *g = h->g;
    int tokens = lisa_gguf_find(g, "tokenizer.ggml.tokens"), types, scores, i;
    lisa_gguf_type et = LISA_GGUF_STRING, score_type = LISA_GGUF_FLOAT32;
    uint64_t n = 0;
    lisa_result r;
    if (tokens < 0) return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: no key tokenizer.ggml.tokens", h->name);
    if ((r = lisa_gguf_array(g, tokens, &et, &n, h->err)) != LISA_OK) return r;
    if (et != LISA_GGUF_STRING)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key tokenizer.ggml.tokens is an array of %s, of strings expected",
                          h->name, lisa_gguf_type_name(et));
    if (n == 0 || n > (uint64_t)LISA__MAX_VOCAB)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key tokenizer.ggml.tokens has %.0f tokens (1..%d allowed)", h->name,
                          (double)n, LISA__MAX_VOCAB);
    h->n_tokens = (int)n;
    if ((r = lisa__ggt_per_token(h, "tokenizer.ggml.token_type", &types)) != LISA_OK ||
        (r = lisa__ggt_per_token(h, "tokenizer.ggml.scores", &scores)) != LISA_OK)
        return r;
    if (scores >= 0) lisa_gguf_array(g, scores, &score_type, NULL, NULL);
    for (i = 0; i < h->n_tokens; i++) {
        const char *s;
        char empty[32];
        size_t len;
        int64_t type = 1, iscore;
        double score = 0.0;
        unsigned flags;
        if ((r = lisa_gguf_array_string(g, tokens, (uint64_t)i, &s, &len, h->err)) != LISA_OK) return r;
        if (types >= 0 && (r = lisa_gguf_array_int(g, types, (uint64_t)i, &type, h->err)) != LISA_OK) return r;
        if (type < 0 || type > LISA__GGT_TYPE_MAX)
            return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key tokenizer.ggml.token_type: token %d has type %.0f (0..%d)",
                              h->name, i, (double)type, LISA__GGT_TYPE_MAX);
        if (scores >= 0 && score_type == LISA_GGUF_INT32) {
            if ((r = lisa_gguf_array_int(g, scores, (uint64_t)i, &iscore, h->err)) != LISA_OK) return r;
            score = (double)iscore;
        } else if (scores >= 0 && (r = lisa_gguf_array_float(g, scores, (uint64_t)i, &score, h->err)) != LISA_OK) {
            return r;
        }
        if (score != score)
            return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key tokenizer.ggml.scores: token %d's score is NaN", h->name, i);
        if (len == 0) { /* llama.cpp's stand-in for an empty token */
            snprintf(empty, sizeof empty, "[EMPTY_%d]", i);
            s = empty;
            len = strlen(empty);
        }
        if ((r = lisa__bpe_builder_token(h->b, i, s, len, (float)score, 0, h->err)) != LISA_OK) return r;
        flags = type == 2 || type == 3 ? LISA__BPE_ADDED | LISA__BPE_SPECIAL : type == 4 ? LISA__BPE_ADDED : 0;
        if (flags && (r = lisa__bpe_builder_token(h->b, i, s, len, (float)score, flags, h->err)) != LISA_OK) return r;
    }
    return LISA_OK;
}

/* tokenizer.ggml.merges (gpt2): "left right", split at the first space
   after the first byte, as llama.cpp does. */
static lisa_result lisa__ggt_merges(lisa__ggt *h) {
    const lisa_gguf *g = h->g;
    int merges = lisa_gguf_find(g, "tokenizer.ggml.merges");
    lisa_gguf_type et = LISA_GGUF_STRING;
    uint64_t n = 0, k;
    lisa_result r;
    if (merges < 0) return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: no key tokenizer.ggml.merges (model gpt2 needs them)", h->name);
    if ((r = lisa_gguf_array(g, merges, &et, &n, h->err)) != LISA_OK) return r;
    if (et != LISA_GGUF_STRING)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key tokenizer.ggml.merges is an array of %s, of strings expected",
                          h->name, lisa_gguf_type_name(et));
    if (n > 4 * (uint64_t)LISA__MAX_VOCAB)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key tokenizer.ggml.merges has %.0f merges (at most %d)", h->name,
                          (double)n, 4 * LISA__MAX_VOCAB);
    for (k = 0; k < n; k++) {
        const char *s, *sp;
        size_t len;
        if ((r = lisa_gguf_array_string(g, merges, k, &s, &len, h->err)) != LISA_OK) return r;
        sp = len > 1 ? (const char *)memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp + 1 == s + len)
            return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key tokenizer.ggml.merges: merge %.0f \"%.*s\" is not \"left right\"",
                              h->name, (double)k, (int)(len < 60 ? len : 60), s);
        if ((r = lisa__bpe_builder_merge(h->b, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp - s) - 1, h->err)) != LISA_OK)
            return r;
    }
    return LISA_OK;
}

static lisa__bpe_step *lisa__ggt_step(lisa__bpe_step *list, int *n, int op) {
    lisa__bpe_step *st = &list[(*n)++];  /* at most 6 steps of 8: the callers below */
    memset(st, 0, sizeof *st);
    st->op = op;
    return st;
}

/* gpt2: the pre-tokenizer named by tokenizer.ggml.pre, then bytes to GPT-2's
   alphabet; llama.cpp's per-name settings. */
static lisa_result lisa__ggt_gpt2(lisa__ggt *h, int *add_bos, int *bos) {
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                         "midm-2.0", "lfm2", "jina-v5-nano", NULL};
    static const char *const ignore_merges[] = {"glm4", "glm5", "tekken", NULL};
    static const char *const no_bos[] = {"chatglm-bpe", "glm4", "glm5", NULL};
    lisa__bpe_settings *set = &h->b->set;
    const char *pre;
    size_t n;
    int kinds[4], n_kinds, k;
    lisa_result r;
    if ((r = lisa__ggt_string(h, "tokenizer.ggml.pre", &pre, &n)) != LISA_OK) return r;
    if (!pre || n == 0) { /* llama.cpp's fallback, with a warning there */
        pre = "default";
        n = 7;
    }
    if ((n_kinds = lisa__pretok_from_gguf(pre, n, kinds)) <= 0)
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key tokenizer.ggml.pre is \"%.*s\", a pre-tokenizer this library does not know",
                          h->name, (int)(n < 60 ? n : 60), pre);
    for (k = 0; k < n_kinds; k++) lisa__ggt_step(set->pretok, &set->n_pretok, LISA__BPE_P_SCAN)->kind = kinds[k];
    lisa__ggt_step(set->pretok, &set->n_pretok, LISA__BPE_P_BYTELEVEL);
    lisa__ggt_step(set->dec, &set->n_dec, LISA__BPE_D_BYTELEVEL);
    set->byte_level = 1;
    set->rank = LISA__BPE_BY_RANK;
    set->added_verbatim = 1;
    set->ignore_merges = lisa__ggt_in(pre, n, llama3) || lisa__ggt_in(pre, n, ignore_merges);
    *add_bos = lisa__ggt_in(pre, n, llama3) || (n == 6 && memcmp(pre, "tekken", 6) == 0);
    /* llama.cpp's default BOS and EOS for gpt2 are id 11, when there is one */
    *bos = (lisa__ggt_in(pre, n, no_bos) || h->n_tokens <= 11) ? -1 : 11;
    if (h->n_tokens > 11) set->eos_id = 11;
    return lisa__ggt_merges(h);
}

/* llama: SentencePiece's whitespace as U+2581, with a space in front of each
   stretch of text between the whole-string tokens when add_space_prefix (as
   llama.cpp's SPM tokenizer, which always starts a stretch with one); the
   merged piece's score decides; byte fallback; decoded back the same way. */
static lisa_result lisa__ggt_llama(lisa__ggt *h) {
    lisa__bpe_settings *set = &h->b->set;
    lisa__bpe_step *st;
    int space_prefix = 1;
    lisa_result r;
    if ((r = lisa__ggt_bool(h, "tokenizer.ggml.add_space_prefix", &space_prefix)) != LISA_OK) return r;
    if (space_prefix) {
        st = lisa__ggt_step(set->norm, &set->n_norm, LISA__BPE_N_PREPEND);
        memcpy(st->a, "\xE2\x96\x81", 3);
        st->na = 3;
    }
    st = lisa__ggt_step(set->norm, &set->n_norm, LISA__BPE_N_REPLACE);
    st->a[0] = ' ';
    st->na = 1;
    memcpy(st->b, "\xE2\x96\x81", 3);
    st->nb = 3;
    st = lisa__ggt_step(set->dec, &set->n_dec, LISA__BPE_D_REPLACE);
    memcpy(st->a, "\xE2\x96\x81", 3);
    st->na = 3;
    st->b[0] = ' ';
    st->nb = 1;
    lisa__ggt_step(set->dec, &set->n_dec, LISA__BPE_D_BYTEFALLBACK);
    lisa__ggt_step(set->dec, &set->n_dec, LISA__BPE_D_FUSE);
    if (space_prefix) {
        st = lisa__ggt_step(set->dec, &set->n_dec, LISA__BPE_D_STRIP);
        st->a[0] = ' ';
        st->na = 1;
        st->kind = 1;
    }
    set->rank = LISA__BPE_BY_SCORE;
    set->byte_fallback = 1;
    set->added_verbatim = 1;
    if (h->n_tokens > 1) set->bos_id = 1;
    if (h->n_tokens > 2) set->eos_id = 2;
    set->unk_id = 0;
    return LISA_OK;
}

static lisa_result lisa__ggt_load(lisa__ggt *h) {
    lisa__bpe_settings *set = &h->b->set;
    int add_bos = 1, add_eos = 0, bos = -1;
    const char *chat;
    size_t chat_len;
    lisa_result r;
    if ((r = lisa__ggt_model(h)) != LISA_OK || (r = lisa__ggt_tokens(h)) != LISA_OK) return r;
    if (h->spm) {
        if ((r = lisa__ggt_llama(h)) != LISA_OK) return r;
        bos = set->bos_id;
    } else if ((r = lisa__ggt_gpt2(h, &add_bos, &bos)) != LISA_OK) {
        return r;
    }
    set->bos_id = bos;
    if ((r = lisa__ggt_id(h, "tokenizer.ggml.bos_token_id", &set->bos_id)) != LISA_OK ||
        (r = lisa__ggt_id(h, "tokenizer.ggml.eos_token_id", &set->eos_id)) != LISA_OK ||
        (r = lisa__ggt_id(h, "tokenizer.ggml.unknown_token_id", &set->unk_id)) != LISA_OK ||
        (r = lisa__ggt_id(h, "tokenizer.ggml.padding_token_id", &set->pad_id)) != LISA_OK ||
        (r = lisa__ggt_bool(h, "tokenizer.ggml.add_bos_token", &add_bos)) != LISA_OK ||
        (r = lisa__ggt_bool(h, "tokenizer.ggml.add_eos_token", &add_eos)) != LISA_OK)
        return r;
    if ((add_bos && set->bos_id < 0) || (add_eos && set->eos_id < 0))
        return lisa__fail(h->err, LISA_ERR_FORMAT, "%s: key tokenizer.ggml.add_%s_token is true, and there is no %s token",
                          h->name, add_bos && set->bos_id < 0 ? "bos" : "eos", add_bos && set->bos_id < 0 ? "BOS" : "EOS");
    set->add_bos = add_bos;
    set->add_eos = add_eos;
    if ((r = lisa__ggt_string(h, "tokenizer.chat_template", &chat, &chat_len)) != LISA_OK) return r;
    if (chat && (r = lisa__bpe_builder_chat_template(h->b, chat, chat_len, h->err)) != LISA_OK) return r;
    return LISA_OK;
}

LISADEF lisa_result lisa_tokenizer_load_gguf_metadata(lisa_tokenizer *t, const lisa_gguf *g,
                                                      const lisa_allocator *a, lisa_error *err) {
    lisa__bpe_builder b;
    lisa__ggt h;
    lisa_result r;
    memset(t, 0, sizeof *t);
    memset(&h, 0, sizeof h);
    h.g = g;
    h.b = &b;
    h.err = err;
    h.name = g->name ? g->name : "<gguf>";
    lisa__bpe_builder_init(&b, h.name, a);
    r = lisa__ggt_load(&h);
    if (r == LISA_OK) r = lisa__bpe_builder_finish(&b, t, err);
    lisa__bpe_builder_free(&b);
    return r;
}

#ifndef LISA_NO_STDIO
LISADEF lisa_result lisa_tokenizer_load_gguf(lisa_tokenizer *t, const char *path, const lisa_allocator *a,
                                             lisa_error *err) {
    lisa_gguf g;
    lisa_result r = lisa_gguf_read_metadata(&g, path, a, err);
    memset(t, 0, sizeof *t);
    if (r == LISA_OK) r = lisa_tokenizer_load_gguf_metadata(t, &g, a, err);
    lisa_gguf_free(&g);
    return r;
}
#endif

/* ------------------------------------------------------------------------- */
/* Hugging Face LLaMA: names, config.json, loading, saving                    */
/* ------------------------------------------------------------------------- */

#define LISA__HF_SKIP (-2)

/* The tensor name map: one source format's names for the lisa_model_tensor()
   indices, the order of its q/k rows and how its element types become fp32.
   Element types are ggml type numbers (lisa__file_dtype_ggml() for
   safetensors dtypes), read in whole blocks of lisa_ggml_type_size(). */
typedef struct lisa__format {
    const char *embed, *layer_prefix, *norm, *head;
    const char *layer[9];       /* within "<layer_prefix>N.", lisa_model_tensor() order */
    const char *skip_suffix;    /* names ending so carry nothing this model needs; NULL: none */
    int rotate_half;            /* q/k rows rotate halves of each head (x[j], x[j + hd/2]),
                                   permuted to this header's interleaved pairs (x[2j], x[2j+1]) */
    int (*to_f32)(uint32_t type, const void *src, float *dst, uint64_t n);   /* 0: type not read */
} lisa__format;

static uint32_t lisa__file_dtype_ggml(lisa_file_dtype d) {
    return d == LISA_FILE_F32 ? 0 : d == LISA_FILE_F16 ? 1 : 30;   /* ggml's F32, F16, BF16 */
}

/* safetensors' three dtypes, by their ggml numbers. */
static int lisa__file_to_f32(uint32_t type, const void *src, float *dst, uint64_t n) {
    lisa_file_dtype d = type == 0 ? LISA_FILE_F32 : type == 1 ? LISA_FILE_F16 : LISA_FILE_BF16;
    if (type != 0 && type != 1 && type != 30) return 0;
    lisa__convert_to_f32(dst, (const unsigned char *)src, (size_t)n, d);
    return 1;
}

/* transformers' LlamaForCausalLM. */
static const lisa__format lisa__format_hf = {
    "model.embed_tokens.weight", "model.layers.", "model.norm.weight", "lm_head.weight",
    {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
     "self_attn.o_proj.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.down_proj.weight",
     "mlp.up_proj.weight"},
    ".rotary_emb.inv_freq", 1, lisa__file_to_f32};

/* llama.cpp's GGUF llama (src/llama-arch.cpp's LLM_ARCH_LLAMA names).
   convert_hf_to_gguf.py's LlamaModel.permute undoes transformers' q/k
   permutation, so GGUF rows are Meta's original interleaved pairs, which
   llama.cpp rotates as adjacent pairs (LLAMA_ROPE_TYPE_NORM): this header's
   order, nothing to permute. */
static const lisa__format lisa__format_gguf = {
    "token_embd.weight", "blk.", "output_norm.weight", "output.weight",
    {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
     "ffn_norm.weight", "ffn_gate.weight", "ffn_down.weight", "ffn_up.weight"},
    NULL, 0, lisa_ggml_dequantize};

/* Format f's name of tensor index (lisa_model_tensor() order). */
static void lisa__tensor_name(const lisa__format *f, const lisa_config *c, int index, char *buf, size_t size) {
    if (index == 0) snprintf(buf, size, "%s", f->embed);
    else if (index <= 9 * c->n_layers)
        snprintf(buf, size, "%s%d.%s", f->layer_prefix, (index - 1) / 9, f->layer[(index - 1) % 9]);
    else if (index == 9 * c->n_layers + 1) snprintf(buf, size, "%s", f->norm);
    else snprintf(buf, size, "%s", f->head);
}

/* Which tensor a name of format f is: its lisa_model_tensor() index,
   LISA__HF_SKIP for one that carries nothing this model needs, or -1. */
static int lisa__tensor_index(const lisa__format *f, const lisa_config *c, const char *name) {
    size_t len = strlen(name), pl = strlen(f->layer_prefix);
    const char *s;
    long l = 0;
    int w;
    if (f->skip_suffix && len >= strlen(f->skip_suffix) && strcmp(name + len - strlen(f->skip_suffix), f->skip_suffix) == 0)
        return LISA__HF_SKIP;
    if (strcmp(name, f->embed) == 0) return 0;
    if (strcmp(name, f->norm) == 0) return 9 * c->n_layers + 1;
    if (strcmp(name, f->head) == 0) return c->tied_head ? LISA__HF_SKIP : 9 * c->n_layers + 2;
    if (strncmp(name, f->layer_prefix, pl) != 0) return -1;
    s = name + pl;
    if (!(*s >= '0' && *s <= '9') || (s[0] == '0' && s[1] != '.')) return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        l = l * 10 + (*s - '0');
        if (l >= c->n_layers) return -1;
    }
    if (*s++ != '.') return -1;
    for (w = 0; w < 9; w++)
        if (strcmp(s, f->layer[w]) == 0) return 1 + 9 * (int)l + w;
    return -1;
}

/* q_proj and k_proj in rotate-half order: row r of the file's matrix is row
   lisa__hf_rope_row(r) here. */
static size_t lisa__hf_rope_row(size_t r, size_t hd) {
    size_t h = r / hd, j = r % hd, half = hd / 2;
    return h * hd + (j < half ? 2 * j : 2 * (j - half) + 1);
}

static int lisa__hf_is_rope(const lisa_config *c, int index) {
    int w = (index - 1) % 9;
    return index >= 1 && index <= 9 * c->n_layers && (w == 1 || w == 2);
}

/* The head size when format f's rows of tensor index need lisa__hf_rope_row(), else 0. */
static size_t lisa__rope_permute(const lisa__format *f, const lisa_config *c, int index) {
    return f->rotate_half && lisa__hf_is_rope(c, index) ? (size_t)(c->dim / c->n_heads) : 0;
}

static lisa_result lisa__hf_cfg_fail(lisa_error *err, const char *name, const char *field, const char *what) {
    return lisa__fail(err, LISA_ERR_FORMAT, "%s: %s %s", name, field, what);
}

/* An integer field: absent or null gives def (or an error when def < 0). */
static lisa_result lisa__hf_cfg_int(const lisa_json *j, const char *field, int def, int *out,
                                    const char *name, lisa_error *err) {
    int node = lisa_json_get(j, lisa_json_root(j), field);
    double v;
    lisa_json_type t = lisa_json_type_of(j, node);
    if (t == LISA_JSON_NONE || t == LISA_JSON_NULL) {
        if (def < 0) return lisa__hf_cfg_fail(err, name, field, "is missing");
        *out = def;
        return LISA_OK;
    }
    if (!lisa__json_uint(j, node, 2147483647.0, &v) || v < 1)
        return lisa__hf_cfg_fail(err, name, field, "must be a positive integer");
    *out = (int)v;
    return LISA_OK;
}

static lisa_result lisa__hf_cfg_float(const lisa_json *j, const char *field, float def, float *out,
                                      const char *name, lisa_error *err) {
    int node = lisa_json_get(j, lisa_json_root(j), field);
    double v = lisa_json_number(j, node);
    lisa_json_type t = lisa_json_type_of(j, node);
    if (t == LISA_JSON_NONE || t == LISA_JSON_NULL) {
        *out = def;
        return LISA_OK;
    }
    if (t != LISA_JSON_NUMBER || !(v > 0.0 && v <= FLT_MAX) || !((float)v > 0.0f))
        return lisa__hf_cfg_fail(err, name, field, "must be a positive number within float range");
    *out = (float)v;
    return LISA_OK;
}

/* A boolean field; absent or null is false. */
static lisa_result lisa__hf_cfg_bool(const lisa_json *j, const char *field, int *out, const char *name,
                                     lisa_error *err) {
    lisa_json_type t = lisa_json_type_of(j, lisa_json_get(j, lisa_json_root(j), field));
    if (t != LISA_JSON_NONE && t != LISA_JSON_NULL && t != LISA_JSON_TRUE && t != LISA_JSON_FALSE)
        return lisa__hf_cfg_fail(err, name, field, "must be true or false");
    *out = t == LISA_JSON_TRUE;
    return LISA_OK;
}

/* A string field that, when present and not null, must equal want. */
static lisa_result lisa__hf_cfg_want(const lisa_json *j, const char *field, const char *want,
                                     const char *name, lisa_error *err) {
    int node = lisa_json_get(j, lisa_json_root(j), field);
    const char *s = lisa_json_string(j, node, NULL);
    lisa_json_type t = lisa_json_type_of(j, node);
    if (t == LISA_JSON_NONE || t == LISA_JSON_NULL || lisa__json_is(j, node, 0, want)) return LISA_OK;
    if (!s) return lisa__fail(err, LISA_ERR_FORMAT, "%s: %s must be a string", name, field);
    return lisa__fail(err, LISA_ERR_FORMAT, "%s: %s \"%.40s\" is not supported (only \"%s\")", name, field, s, want);
}

/* config.json text into a resolved lisa_config. */
static lisa_result lisa__hf_config(lisa_config *c, const char *text, size_t len, const char *name,
                                   const lisa_allocator *a, lisa_error *err) {
    lisa_json j;
    lisa_result r;
    int root, node, flag = 0, head_dim = 0, k;
    memset(c, 0, sizeof *c);
    r = lisa_json_parse(&j, text, len, name, a, err);
    if (r != LISA_OK) {
        lisa_json_free(&j);
        return r;
    }
    root = lisa_json_root(&j);
    if (lisa_json_type_of(&j, root) != LISA_JSON_OBJECT) {
        r = lisa__fail(err, LISA_ERR_FORMAT, "%s: not a JSON object", name);
        goto done;
    }
    if ((r = lisa__hf_cfg_want(&j, "model_type", "llama", name, err)) != LISA_OK) goto done;
    if ((r = lisa__hf_cfg_want(&j, "hidden_act", "silu", name, err)) != LISA_OK) goto done;
    node = lisa_json_get(&j, root, "architectures");
    if (lisa_json_type_of(&j, node) == LISA_JSON_ARRAY) {
        for (k = lisa_json_first(&j, node); k >= 0; k = lisa_json_next(&j, k)) {
            const char *s = lisa_json_string(&j, k, NULL);
            if (!lisa__json_is(&j, k, 0, "LlamaForCausalLM")) {
                r = lisa__fail(err, LISA_ERR_FORMAT, "%s: architectures entry \"%.40s\" is not supported (only \"LlamaForCausalLM\")",
                               name, s ? s : "?");
                goto done;
            }
        }
    } else if (lisa_json_type_of(&j, node) != LISA_JSON_NONE && lisa_json_type_of(&j, node) != LISA_JSON_NULL) {
        r = lisa__fail(err, LISA_ERR_FORMAT, "%s: architectures must be an array", name);
        goto done;
    }
    node = lisa_json_get(&j, root, "rope_scaling");
    if (lisa_json_type_of(&j, node) != LISA_JSON_NONE && lisa_json_type_of(&j, node) != LISA_JSON_NULL) {
        int type_node = lisa_json_get(&j, node, "rope_type");
        const char *type;
        if (type_node < 0) type_node = lisa_json_get(&j, node, "type");
        type = lisa_json_string(&j, type_node, NULL);
        if (!lisa__json_is(&j, type_node, 0, "default")) {
            r = lisa__fail(err, LISA_ERR_FORMAT, "%s: rope_scaling (type \"%.40s\") is not supported: only null",
                           name, type ? type : "?");
            goto done;
        }
    }
    if ((r = lisa__hf_cfg_bool(&j, "attention_bias", &flag, name, err)) != LISA_OK) goto done;
    if (flag) {
        r = lisa__fail(err, LISA_ERR_FORMAT, "%s: attention_bias true is not supported", name);
        goto done;
    }
    if ((r = lisa__hf_cfg_bool(&j, "mlp_bias", &flag, name, err)) != LISA_OK) goto done;
    if (flag) {
        r = lisa__fail(err, LISA_ERR_FORMAT, "%s: mlp_bias true is not supported", name);
        goto done;
    }
    if ((r = lisa__hf_cfg_int(&j, "hidden_size", -1, &c->dim, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_int(&j, "intermediate_size", -1, &c->hidden_dim, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_int(&j, "num_hidden_layers", -1, &c->n_layers, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_int(&j, "num_attention_heads", -1, &c->n_heads, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_int(&j, "num_key_value_heads", c->n_heads, &c->n_kv_heads, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_int(&j, "vocab_size", -1, &c->vocab_size, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_int(&j, "max_position_embeddings", 2048, &c->max_seq_len, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_int(&j, "head_dim", 0, &head_dim, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_float(&j, "rms_norm_eps", 1e-6f, &c->norm_eps, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_float(&j, "rope_theta", 10000.0f, &c->rope_theta, name, err)) != LISA_OK ||
        (r = lisa__hf_cfg_bool(&j, "tie_word_embeddings", &c->tied_head, name, err)) != LISA_OK)
        goto done;
    node = lisa_json_get(&j, root, "rope_parameters"); /* transformers 5 keeps rope_theta and the type here */
    if (lisa_json_type_of(&j, node) == LISA_JSON_OBJECT) {
        int type_node = lisa_json_get(&j, node, "rope_type"), theta = lisa_json_get(&j, node, "rope_theta");
        double v = lisa_json_number(&j, theta);
        if (type_node >= 0 && !lisa__json_is(&j, type_node, 0, "default")) {
            const char *type = lisa_json_string(&j, type_node, NULL);
            r = lisa__fail(err, LISA_ERR_FORMAT, "%s: rope_parameters (type \"%.40s\") is not supported: only default",
                           name, type ? type : "?");
            goto done;
        }
        if (theta >= 0 && lisa_json_get(&j, root, "rope_theta") < 0) {
            if (lisa_json_type_of(&j, theta) != LISA_JSON_NUMBER || !(v > 0.0 && v <= FLT_MAX) || !((float)v > 0.0f)) {
                r = lisa__hf_cfg_fail(err, name, "rope_parameters.rope_theta", "must be a positive number within float range");
                goto done;
            }
            c->rope_theta = (float)v;
        }
    }
    if (head_dim != 0 && (c->dim % c->n_heads != 0 || head_dim != c->dim / c->n_heads)) {
        r = lisa__fail(err, LISA_ERR_FORMAT, "%s: head_dim %d is not supported: it must be hidden_size / num_attention_heads",
                       name, head_dim);
        goto done;
    }
    r = lisa__config_check_file(c, name, NULL, err);
done:
    lisa_json_free(&j);
    return r;
}

/* The one tensor reader: rows x cols elements of element type `type` (ggml
   numbering; cols a whole number of its blocks) from r, at the tensor's data,
   into dst, converted by format f, rows permuted when rope_hd is not 0. Reads
   whole blocks through a small buffer, so no more than one chunk is held. */
static int lisa__read_tensor(lisa__reader *r, const lisa__format *f, uint32_t type, float *dst, size_t rows,
                             size_t cols, size_t rope_hd) {
    unsigned char buf[4096];
    uint32_t be = 0, bb = 0;
    size_t per, row, k;
    if (!lisa_ggml_type_size(type, &be, &bb) || bb > sizeof buf || cols % be != 0) return 0;
    per = sizeof buf / bb;   /* blocks per chunk */
    for (row = 0; row < rows; row++) {
        float *d = dst + (rope_hd ? lisa__hf_rope_row(row, rope_hd) : row) * cols;
        for (k = 0; k < cols / be; k += per) {
            size_t n = LISA__MIN(per, cols / be - k);
            if (!lisa__read(r, buf, n * bb) || !f->to_f32(type, buf, d + k * be, (uint64_t)(n * be))) return 0;
        }
    }
    return 1;
}

/* Checks one shard's tensors against the model and reads them. seen[i] is the
   shard (plus 1) tensor i came from; want_shard (NULL: no index) the shard the
   index puts each tensor in. */
static lisa_result lisa__hf_shard(lisa_model *m, const lisa_safetensors *st, lisa__reader *r, const char *name,
                                  int shard, int *seen, const int *want_shard, const char *const *shard_names,
                                  lisa_error *err) {
    const lisa_config *c = &m->config;
    int i;
    for (i = 0; i < st->n_tensors; i++) {
        const lisa_safetensors_tensor *t = &st->tensors[i];
        int idx = lisa__tensor_index(&lisa__format_hf, c, t->name), d, ok;
        lisa_param p;
        if (idx == LISA__HF_SKIP) continue;
        if (idx < 0)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: unexpected tensor %.100s (not part of a %d-layer LlamaForCausalLM)",
                              name, t->name, c->n_layers);
        if (seen[idx])
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s appears twice", name, t->name);
        if (want_shard && want_shard[idx] != shard)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: holds tensor %.100s, which the index puts in %.100s",
                              name, t->name, shard_names[want_shard[idx]]);
        seen[idx] = shard + 1;
        p = lisa_model_tensor(m, idx);
        ok = t->ndim == p.tensor.ndim;
        for (d = 0; ok && d < t->ndim; d++) ok = t->shape[d] == (uint64_t)p.tensor.shape[d];
        if (!ok) {
            char got[128], want[64];
            size_t at = 0;
            got[0] = 0;
            for (d = 0; d < t->ndim && at < sizeof got - 24; d++)
                at += (size_t)snprintf(got + at, sizeof got - at, "%s%.0f", d ? ", " : "", (double)t->shape[d]);
            if (p.tensor.ndim == 1) snprintf(want, sizeof want, "%d", p.tensor.shape[0]);
            else snprintf(want, sizeof want, "%d, %d", p.tensor.shape[0], p.tensor.shape[1]);
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s has shape [%s], the config needs [%s]",
                              name, t->name, got, want);
        }
    }
    /* Sorted by offset and tiling the data: one forward pass reads them all. */
    for (i = 0; i < st->n_tensors; i++) {
        const lisa_safetensors_tensor *t = &st->tensors[i];
        int idx = lisa__tensor_index(&lisa__format_hf, c, t->name);
        lisa_param p;
        int ok;
        if (idx < 0) {
            ok = lisa__skip(r, t->end - t->begin);
        } else {
            p = lisa_model_tensor(m, idx);
            ok = lisa__read_tensor(r, &lisa__format_hf, lisa__file_dtype_ggml(t->dtype), p.tensor.data,
                                   (size_t)p.tensor.shape[0], p.tensor.ndim == 2 ? (size_t)p.tensor.shape[1] : 1,
                                   lisa__rope_permute(&lisa__format_hf, c, idx));
        }
        if (!ok) return lisa__fail(err, LISA_ERR_IO, "%s: read failed at byte %.0f", name, (double)r->pos);
    }
    return LISA_OK;
}

static lisa_result lisa__check_all(const lisa__format *f, const lisa_model *m, const int *seen, const char *name,
                                   lisa_error *err) {
    int i, n = lisa_model_n_tensors(m);
    for (i = 0; i < n; i++)
        if (!seen[i]) {
            char tn[96];
            lisa__tensor_name(f, &m->config, i, tn, sizeof tn);
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: missing tensor %s", name, tn);
        }
    return LISA_OK;
}

LISADEF lisa_result lisa_model_load_hf_memory(lisa_model *m, const char *config_json, size_t config_len,
                                              const void *safetensors, size_t safetensors_size,
                                              const char *name, const lisa_allocator *a,
                                              lisa_error *err) {
    char cname[300], sname[300];
    lisa_config c;
    lisa_safetensors st;
    lisa__reader r;
    lisa_result res;
    int *seen = NULL;
    size_t seen_bytes = 0;
    lisa_allocator al = lisa__allocator_or_default(a);
    memset(m, 0, sizeof *m);
    if (!name) name = "<memory>";
    snprintf(cname, sizeof cname, "%s/config.json", name);
    snprintf(sname, sizeof sname, "%s/model.safetensors", name);
    res = lisa__hf_config(&c, config_json, config_json ? config_len : 0, cname, a, err);
    if (res != LISA_OK) return res;
    r = lisa__memory_reader(safetensors, safetensors_size);
    res = lisa__st_read_header(&st, &r, sname, a, err);
    if (res == LISA_OK) res = lisa__model_alloc(m, &c, a, name, err);
    if (res == LISA_OK) {
        seen = (int *)lisa__alloc(&al, (size_t)lisa_model_n_tensors(m) * sizeof(int), &seen_bytes);
        if (!seen) res = lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory", name);
    }
    if (res == LISA_OK) {
        memset(seen, 0, (size_t)lisa_model_n_tensors(m) * sizeof(int));
        res = lisa__hf_shard(m, &st, &r, sname, 0, seen, NULL, NULL, err);
    }
    if (res == LISA_OK) res = lisa__check_all(&lisa__format_hf, m, seen, sname, err);
    if (seen) lisa__free(&al, seen, (size_t)lisa_model_n_tensors(m) * sizeof(int), &seen_bytes);
    lisa_safetensors_free(&st);
    if (res != LISA_OK) {
        lisa_model_free(m);
        return res;
    }
    lisa__ok(err);
    return LISA_OK;
}

/* --- GGUF llama models ---------------------------------------------------- */

/* The llama.* keys this engine computes (as llama.cpp's converter writes them
   for LlamaForCausalLM); any other llama.* key is a setting it does not. */
static const char *const lisa__gguf_llama_keys[] = {
    "llama.context_length", "llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
    "llama.attention.head_count", "llama.attention.head_count_kv", "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.freq_base", "llama.rope.dimension_count", "llama.vocab_size", "llama.attention.key_length",
    "llama.attention.value_length", "llama.rope.scaling.type", "llama.expert_count", "llama.expert_used_count"};

/* An integer key: absent gives def (or an error when def < 0); else 0 .. INT_MAX,
   and positive unless zero_ok. */
static lisa_result lisa__gguf_cfg_int(const lisa_gguf *g, const char *key, int def, int zero_ok, int *out,
                                      lisa_error *err) {
    int i = lisa_gguf_find(g, key);
    int64_t v;
    lisa_result r;
    if (i < 0) {
        if (def < 0) return lisa__fail(err, LISA_ERR_FORMAT, "%s: key %s is missing", g->name, key);
        *out = def;
        return LISA_OK;
    }
    if ((r = lisa_gguf_get_int(g, i, &v, err)) != LISA_OK) return r;
    if (v < (zero_ok ? 0 : 1) || v > 2147483647)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: key %s is %.0f, a %s integer expected", g->name, key, (double)v,
                          zero_ok ? "non-negative" : "positive");
    *out = (int)v;
    return LISA_OK;
}

static lisa_result lisa__gguf_cfg_float(const lisa_gguf *g, const char *key, int required, float *out,
                                        lisa_error *err) {
    int i = lisa_gguf_find(g, key);
    double v;
    lisa_result r;
    if (i < 0) return required ? lisa__fail(err, LISA_ERR_FORMAT, "%s: key %s is missing", g->name, key) : LISA_OK;
    if ((r = lisa_gguf_get_float(g, i, &v, err)) != LISA_OK) return r;
    if (!(v > 0.0 && v <= FLT_MAX) || !((float)v > 0.0f))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: key %s must be a positive number within float range", g->name, key);
    *out = (float)v;
    return LISA_OK;
}

/* A key that, when present, must hold want (0: absent, 0 or want). */
static lisa_result lisa__gguf_cfg_equal(const lisa_gguf *g, const char *key, int want, const char *what,
                                        lisa_error *err) {
    int v = want;
    lisa_result r = lisa__gguf_cfg_int(g, key, want, 1, &v, err);
    if (r != LISA_OK) return r;
    if (v != want && !(want == 0 && v == 0))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: key %s is %d, which is not supported (%s %d)", g->name, key, v, what,
                          want);
    return LISA_OK;
}

/* general.architecture "llama", no llama.* key this engine does not compute. */
static lisa_result lisa__gguf_check_keys(const lisa_gguf *g, lisa_error *err) {
    int i = lisa_gguf_find(g, "general.architecture"), k;
    const char *s;
    size_t len;
    lisa_result r;
    if (i < 0) return lisa__fail(err, LISA_ERR_FORMAT, "%s: key general.architecture is missing", g->name);
    if ((r = lisa_gguf_get_string(g, i, &s, &len, err)) != LISA_OK) return r;
    if (len != 5 || memcmp(s, "llama", 5) != 0)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: general.architecture \"%.*s\" is not supported (only \"llama\")",
                          g->name, (int)LISA__MIN(len, (size_t)40), s);
    for (i = 0; i < g->n_kv; i++) {
        const char *key = g->kv[i].key;
        if (strncmp(key, "llama.", 6) != 0) continue;
        for (k = 0; k < (int)(sizeof lisa__gguf_llama_keys / sizeof *lisa__gguf_llama_keys); k++)
            if (strcmp(key, lisa__gguf_llama_keys[k]) == 0) break;
        if (k == (int)(sizeof lisa__gguf_llama_keys / sizeof *lisa__gguf_llama_keys))
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: key %.100s is not supported", g->name, key);
    }
    i = lisa_gguf_find(g, "llama.rope.scaling.type");
    if (i >= 0) {
        if ((r = lisa_gguf_get_string(g, i, &s, &len, err)) != LISA_OK) return r;
        if (len != 4 || memcmp(s, "none", 4) != 0)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: key llama.rope.scaling.type \"%.*s\" is not supported (only \"none\")",
                              g->name, (int)LISA__MIN(len, (size_t)40), s);
    }
    if ((r = lisa__gguf_cfg_equal(g, "llama.expert_count", 0, "mixture of experts; only", err)) != LISA_OK ||
        (r = lisa__gguf_cfg_equal(g, "llama.expert_used_count", 0, "mixture of experts; only", err)) != LISA_OK)
        return r;
    return LISA_OK;
}

/* The llama.* hyperparameters into a resolved config; the vocabulary from
   token_embd.weight, tied embeddings when there is no output.weight. */
static lisa_result lisa__gguf_config(const lisa_gguf *g, lisa_config *c, lisa_error *err) {
    const lisa__format *f = &lisa__format_gguf;
    int te = lisa_gguf_find_tensor(g, f->embed), vocab = 0, hd, i;
    lisa_result r;
    memset(c, 0, sizeof *c);
    c->rope_theta = 10000.0f;   /* llama.cpp's default */
    if ((r = lisa__gguf_check_keys(g, err)) != LISA_OK) return r;
    if ((r = lisa__gguf_cfg_int(g, "llama.embedding_length", -1, 0, &c->dim, err)) != LISA_OK ||
        (r = lisa__gguf_cfg_int(g, "llama.feed_forward_length", -1, 0, &c->hidden_dim, err)) != LISA_OK ||
        (r = lisa__gguf_cfg_int(g, "llama.block_count", -1, 0, &c->n_layers, err)) != LISA_OK ||
        (r = lisa__gguf_cfg_int(g, "llama.attention.head_count", -1, 0, &c->n_heads, err)) != LISA_OK ||
        (r = lisa__gguf_cfg_int(g, "llama.attention.head_count_kv", c->n_heads, 0, &c->n_kv_heads, err)) != LISA_OK ||
        (r = lisa__gguf_cfg_int(g, "llama.context_length", -1, 0, &c->max_seq_len, err)) != LISA_OK ||
        (r = lisa__gguf_cfg_float(g, "llama.attention.layer_norm_rms_epsilon", 1, &c->norm_eps, err)) != LISA_OK ||
        (r = lisa__gguf_cfg_float(g, "llama.rope.freq_base", 0, &c->rope_theta, err)) != LISA_OK)
        return r;
    if (c->dim % c->n_heads != 0)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: llama.embedding_length %d is not a multiple of llama.attention.head_count %d",
                          g->name, c->dim, c->n_heads);
    hd = c->dim / c->n_heads;
    if ((r = lisa__gguf_cfg_equal(g, "llama.rope.dimension_count", hd, "RoPE on the whole head: the head size", err)) != LISA_OK ||
        (r = lisa__gguf_cfg_equal(g, "llama.attention.key_length", hd, "only the head size", err)) != LISA_OK ||
        (r = lisa__gguf_cfg_equal(g, "llama.attention.value_length", hd, "only the head size", err)) != LISA_OK)
        return r;
    if (te < 0) return lisa__fail(err, LISA_ERR_FORMAT, "%s: missing tensor %s", g->name, f->embed);
    if (g->tensors[te].n_dims != 2 || g->tensors[te].dims[1] > 2147483647 || g->tensors[te].dims[1] < 1)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %s must have 2 dimensions {embedding_length, vocabulary}",
                          g->name, f->embed);
    vocab = (int)g->tensors[te].dims[1];
    c->vocab_size = vocab;
    if ((r = lisa__gguf_cfg_equal(g, "llama.vocab_size", vocab, "the rows of token_embd.weight:", err)) != LISA_OK)
        return r;
    if ((i = lisa_gguf_find(g, "tokenizer.ggml.tokens")) >= 0) {   /* llama.cpp checks the same */
        lisa_gguf_type et;
        uint64_t n = 0;
        if ((r = lisa_gguf_array(g, i, &et, &n, err)) != LISA_OK) return r;
        if (n != (uint64_t)vocab)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %.0f tokens, token_embd.weight %d rows",
                              g->name, (double)n, vocab);
    }
    c->tied_head = lisa_gguf_find_tensor(g, f->head) < 0;
    return lisa__config_check_file(c, g->name, NULL, err);
}

/* lisa_ggml_dequantize() reads this type: one zero block converts. */
static int lisa__gguf_type_readable(uint32_t type) {
    static const unsigned char zeros[512] = {0};
    float out[256];
    uint32_t be = 0, bb = 0;
    return lisa_ggml_type_size(type, &be, &bb) && be <= 256 && bb <= sizeof zeros &&
           lisa_ggml_dequantize(type, zeros, out, be);
}

/* The shape lisa_model_tensor(index) has in a model of config c: rows, then cols when nd is 2. */
static void lisa__model_tensor_shape(const lisa_config *c, int index, int shape[2], int *nd) {
    lisa_block_desc d;
    int b = 0, i = index;
    for (d = lisa_block_describe(c, 0); i >= d.n_tensors; d = lisa_block_describe(c, ++b)) i -= d.n_tensors;
    shape[0] = d.tensors[i].rows;
    shape[1] = d.tensors[i].cols;
    *nd = d.tensors[i].cols ? 2 : 1;
}

/* Every tensor's name, ggml dims, type and bytes against the model config c. */
static lisa_result lisa__gguf_check_tensors(const lisa_gguf *g, const lisa_config *c, lisa_error *err) {
    const lisa__format *f = &lisa__format_gguf;
    uint64_t data_size = g->file_size > g->data_offset ? g->file_size - g->data_offset : 0;
    int i, d, found = 0, n_want = 9 * c->n_layers + 2 + !c->tied_head;
    for (i = 0; i < g->n_tensors; i++) {
        const lisa_gguf_tensor *t = &g->tensors[i];
        int idx = lisa__tensor_index(f, c, t->name), ok, shape[2], nd = 2;
        if (idx < 0)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: unexpected tensor %.100s (not part of a %d-layer llama model)",
                              g->name, t->name, c->n_layers);
        lisa__model_tensor_shape(c, idx, shape, &nd);
        /* ggml dims[0] varies fastest: a row-major [out, in] matrix is {in, out} */
        ok = t->n_dims == nd;
        for (d = 0; ok && d < nd; d++) ok = t->dims[d] == (uint64_t)shape[nd - 1 - d];
        if (!ok) {
            char got[128], want[64];
            size_t at = 0;
            got[0] = 0;
            for (d = 0; d < t->n_dims; d++)
                at += (size_t)snprintf(got + at, sizeof got - at, "%s%.0f", d ? ", " : "", (double)t->dims[d]);
            if (nd == 1) snprintf(want, sizeof want, "%d", shape[0]);
            else snprintf(want, sizeof want, "%d, %d", shape[1], shape[0]);
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s has ggml dims {%s}, the config needs {%s}",
                              g->name, t->name, got, want);
        }
        if (t->offset > data_size || t->size > data_size - t->offset)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s (bytes %.0f to %.0f of the data) lies beyond the %.0f bytes of data",
                              g->name, t->name, (double)t->offset, (double)t->offset + (double)t->size, (double)data_size);
        found++;
    }
    for (i = 0; found != n_want && i < n_want; i++) {
        char name[96];
        lisa__tensor_name(f, c, i, name, sizeof name);
        if (lisa_gguf_find_tensor(g, name) < 0)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: missing tensor %s", g->name, name);
    }
    /* the layout is right; now whether every tensor can be converted */
    for (i = 0; i < g->n_tensors; i++) {
        const lisa_gguf_tensor *t = &g->tensors[i];
        const char *tn = lisa_ggml_type_name(t->type);
        if (!lisa__gguf_type_readable(t->type))
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %.100s has type %s (%u), which lisa_ggml_dequantize does not read",
                              g->name, t->name, tn ? tn : "unknown", (unsigned)t->type);
    }
    return LISA_OK;
}

/* A checked header g and r at the file's start: the model, tensor by tensor
   in file order (the gaps between them are alignment padding, skipped). */
static lisa_result lisa__gguf_load(lisa_model *m, const lisa_gguf *g, lisa__reader *r, const lisa_allocator *a,
                                   lisa_error *err) {
    const lisa__format *f = &lisa__format_gguf;
    lisa_config c;
    lisa_result res;
    int i;
    memset(m, 0, sizeof *m);
    if ((res = lisa__gguf_config(g, &c, err)) != LISA_OK) return res;
    if ((res = lisa__gguf_check_tensors(g, &c, err)) != LISA_OK) return res;
    if ((res = lisa__model_alloc(m, &c, a, g->name, err)) != LISA_OK) return res;
    for (i = 0; i < g->n_tensors; i++) {
        const lisa_gguf_tensor *t = &g->tensors[i];
        int idx = lisa__tensor_index(f, &c, t->name);
        lisa_param p = lisa_model_tensor(m, idx);
        uint64_t at = g->data_offset + t->offset;
        int ok = at >= r->pos && at <= r->size && lisa__skip(r, (size_t)(at - r->pos)) &&
                 lisa__read_tensor(r, f, t->type, p.tensor.data, (size_t)p.tensor.shape[0],
                                   p.tensor.ndim == 2 ? (size_t)p.tensor.shape[1] : 1, lisa__rope_permute(f, &c, idx));
        if (!ok) {
            lisa_model_free(m);
            return lisa__fail(err, LISA_ERR_IO, "%s: tensor %.100s: read failed at byte %.0f", g->name, t->name,
                              (double)r->pos);
        }
    }
    lisa__ok(err);
    return LISA_OK;
}

LISADEF lisa_result lisa_model_load_gguf_memory(lisa_model *m, const void *data, size_t size, const char *name,
                                                const lisa_allocator *a, lisa_error *err) {
    lisa_gguf g;
    lisa__reader r = lisa__memory_reader(data, size);
    lisa_result res = lisa_gguf_parse_memory(&g, data, size, name ? name : "<memory>", a, err);
    memset(m, 0, sizeof *m);
    if (res == LISA_OK) res = lisa__gguf_load(m, &g, &r, a, err);
    lisa_gguf_free(&g);
    return res;
}

#ifndef LISA_NO_STDIO

static lisa_result lisa__path_join(char *out, size_t size, const char *dir, const char *file, lisa_error *err) {
    size_t dl = strlen(dir);
    const char *sep = dl > 0 && (dir[dl - 1] == '/' || dir[dl - 1] == '\\') ? "" : "/";
    if (dl + strlen(file) + 2 > size) return lisa__fail(err, LISA_ERR_IO, "%s: path too long", dir);
    memcpy(out, dir, dl);
    memcpy(out + dl, sep, strlen(sep));
    memcpy(out + dl + strlen(sep), file, strlen(file) + 1);
    return LISA_OK;
}

static int lisa__file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* config.json at path into a resolved lisa_config. */
static lisa_result lisa__hf_config_file(lisa_config *c, const char *path, const lisa_allocator *a, lisa_error *err) {
    lisa_allocator al = lisa__allocator_or_default(a);
    size_t counter = 0, size;
    char *text;
    lisa_result res = lisa__read_text(path, &al, LISA_SAFETENSORS_MAX_HEADER, &text, &size, &counter, err);
    memset(c, 0, sizeof *c);
    if (res != LISA_OK) return res;
    res = lisa__hf_config(c, text, size, path, a, err);
    lisa__free(&al, text, size + 1, &counter);
    return res;
}

/* One shard file: header, checks, data. */
static lisa_result lisa__hf_load_file(lisa_model *m, const char *path, const lisa_allocator *a, int shard,
                                      int *seen, const int *want_shard, const char *const *shard_names,
                                      lisa_error *err) {
    lisa__reader r;
    lisa_safetensors st;
    lisa_result res = lisa__open_reader(&r, path, err);
    if (res != LISA_OK) return res;
    res = lisa__st_read_header(&st, &r, path, a, err);
    if (res == LISA_OK) res = lisa__hf_shard(m, &st, &r, path, shard, seen, want_shard, shard_names, err);
    lisa_safetensors_free(&st);
    fclose(r.file);
    return res;
}

/* The shards model.safetensors.index.json names, and where each tensor is. */
static lisa_result lisa__hf_load_sharded(lisa_model *m, const char *dir, const char *index_path,
                                         const lisa_allocator *a, int *seen, lisa_error *err) {
    lisa_allocator al = lisa__allocator_or_default(a);
    const lisa_config *c = &m->config;
    char *text = NULL, path[4096];
    size_t text_size = 0, counter = 0;
    int n_t = lisa_model_n_tensors(m), map, e, i, n_shards = 0, max_shards = 0;
    int *want = NULL;
    const char **names = NULL;
    lisa_json j;
    lisa_result res;
    memset(&j, 0, sizeof j);
    res = lisa__read_text(index_path, &al, LISA_SAFETENSORS_MAX_HEADER, &text, &text_size, &counter, err);
    if (res != LISA_OK) return res;
    res = lisa_json_parse(&j, text, text_size, index_path, a, err);
    lisa__free(&al, text, text_size + 1, &counter);
    if (res != LISA_OK) goto done;
    map = lisa_json_get(&j, lisa_json_root(&j), "weight_map");
    if (lisa_json_type_of(&j, map) != LISA_JSON_OBJECT) {
        res = lisa__fail(err, LISA_ERR_FORMAT, "%s: no weight_map object", index_path);
        goto done;
    }
    max_shards = lisa_json_length(&j, map);
    want = (int *)lisa__alloc(&al, (size_t)n_t * sizeof(int), &counter);
    names = (const char **)lisa__alloc(&al, (size_t)(max_shards + 1) * sizeof(char *), &counter);
    if (!want || !names) {
        res = lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    for (i = 0; i < n_t; i++) want[i] = -1;
    for (e = lisa_json_first(&j, map); e >= 0; e = lisa_json_next(&j, e)) {
        const char *tname = lisa_json_key(&j, e, NULL), *file;
        size_t flen;
        int idx = lisa__tensor_index(&lisa__format_hf, c, tname), s;
        file = lisa_json_string(&j, e, &flen);
        if (!lisa__json_plain(&j, e, 1)) {
            res = lisa__fail(err, LISA_ERR_FORMAT, "%s: weight_map: a tensor name holds a NUL character", index_path);
            goto done;
        }
        if (!file || flen == 0 || strlen(file) != flen || strchr(file, '/') || strchr(file, '\\') ||
            strcmp(file, ".") == 0 || strcmp(file, "..") == 0) {
            res = lisa__fail(err, LISA_ERR_FORMAT, "%s: weight_map entry %.100s: a file name in this directory expected",
                             index_path, tname);
            goto done;
        }
        if (idx == -1) {
            res = lisa__fail(err, LISA_ERR_FORMAT, "%s: unexpected tensor %.100s (not part of a %d-layer LlamaForCausalLM)",
                             index_path, tname, c->n_layers);
            goto done;
        }
        for (s = 0; s < n_shards && strcmp(names[s], file) != 0; s++) {
        }
        if (s == n_shards) names[n_shards++] = file;
        if (idx >= 0) want[idx] = s;
    }
    for (i = 0; i < n_t; i++)
        if (want[i] < 0) {
            char tn[96];
            lisa__tensor_name(&lisa__format_hf, c, i, tn, sizeof tn);
            res = lisa__fail(err, LISA_ERR_FORMAT, "%s: missing tensor %s", index_path, tn);
            goto done;
        }
    for (i = 0; i < n_shards && res == LISA_OK; i++) {
        if (lisa__path_join(path, sizeof path, dir, names[i], NULL) != LISA_OK)
            res = lisa__fail(err, LISA_ERR_FORMAT, "%s: shard file name \"%.60s...\" is too long", index_path, names[i]);
        else
            res = lisa__hf_load_file(m, path, a, i, seen, want, (const char *const *)names, err);
    }
    if (res == LISA_OK) {
        for (i = 0; i < n_t; i++)
            if (!seen[i]) {
                char tn[96];
                lisa__tensor_name(&lisa__format_hf, c, i, tn, sizeof tn);
                res = lisa__fail(err, LISA_ERR_FORMAT, "%s: tensor %s is not in %s, where the index puts it",
                                 index_path, tn, names[want[i]]);
                break;
            }
    }
done:
    lisa__free(&al, want, (size_t)n_t * sizeof(int), &counter);
    lisa__free(&al, (void *)names, (size_t)(max_shards + 1) * sizeof(char *), &counter);
    lisa_json_free(&j);
    return res;
}

LISADEF lisa_result lisa_model_load_hf(lisa_model *m, const char *dir, const lisa_allocator *a,
                                       lisa_error *err) {
    lisa_allocator al = lisa__allocator_or_default(a);
    char path[4096];
    size_t counter = 0;
    int *seen = NULL, n_t;
    lisa_config c;
    lisa_result res;
    memset(m, 0, sizeof *m);
    res = lisa__path_join(path, sizeof path, dir, "config.json", err);
    if (res == LISA_OK) res = lisa__hf_config_file(&c, path, a, err);
    if (res != LISA_OK) return res;
    res = lisa__model_alloc(m, &c, a, dir, err);
    if (res != LISA_OK) return res;
    n_t = lisa_model_n_tensors(m);
    seen = (int *)lisa__alloc(&al, (size_t)n_t * sizeof(int), &counter);
    if (!seen) {
        lisa_model_free(m);
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory", dir);
    }
    memset(seen, 0, (size_t)n_t * sizeof(int));
    res = lisa__path_join(path, sizeof path, dir, "model.safetensors", err);
    if (res == LISA_OK) {
        if (lisa__file_exists(path)) {
            res = lisa__hf_load_file(m, path, a, 0, seen, NULL, NULL, err);
            if (res == LISA_OK) res = lisa__check_all(&lisa__format_hf, m, seen, path, err);
        } else {
            res = lisa__path_join(path, sizeof path, dir, "model.safetensors.index.json", err);
            if (res == LISA_OK && !lisa__file_exists(path))
                res = lisa__fail(err, LISA_ERR_IO, "%s: neither model.safetensors nor model.safetensors.index.json can be opened", dir);
            if (res == LISA_OK) res = lisa__hf_load_sharded(m, dir, path, a, seen, err);
        }
    }
    lisa__free(&al, seen, (size_t)n_t * sizeof(int), &counter);
    if (res != LISA_OK) {
        lisa_model_free(m);
        return res;
    }
    lisa__ok(err);
    return LISA_OK;
}

static const char *lisa__file_dtype_name(lisa_file_dtype d) {
    return d == LISA_FILE_F32 ? "F32" : d == LISA_FILE_F16 ? "F16" : "BF16";
}

static void lisa__convert_from_f32(unsigned char *dst, const float *src, size_t n, lisa_file_dtype d) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (d == LISA_FILE_F32) {
            uint32_t u = lisa__f32_bits(src[i]);
            dst[4 * i] = (unsigned char)u;
            dst[4 * i + 1] = (unsigned char)(u >> 8);
            dst[4 * i + 2] = (unsigned char)(u >> 16);
            dst[4 * i + 3] = (unsigned char)(u >> 24);
        } else {
            uint16_t h = d == LISA_FILE_F16 ? lisa_f32_to_f16(src[i]) : lisa_f32_to_bf16(src[i]);
            dst[2 * i] = (unsigned char)h;
            dst[2 * i + 1] = (unsigned char)(h >> 8);
        }
    }
}

/* A positive finite float as JSON that reads back as the same float: whole
   numbers as Python writes them ("500000.0"), others in the shortest %g form. */
static void lisa__format_float(char *out, size_t size, float v) {
    int prec;
    if (v == floorf(v) && v < 1e15f) {
        snprintf(out, size, "%.1f", (double)v);
        if (strchr(out, ',')) *strchr(out, ',') = '.';
        return;
    }
    for (prec = 1; prec <= 9; prec++) {
        const char *problem = NULL;
        double back = 0.0;
        char *comma;
        snprintf(out, size, "%.*g", prec, (double)v);
        while ((comma = strchr(out, ',')) != NULL) *comma = '.';   /* a locale's decimal comma */
        if (lisa__json_number_scan((const unsigned char *)out, strlen(out), &back, &problem) == strlen(out) &&
            (float)back == v)
            return;
    }
}

/* The bytes tensor i takes in a file of dtype d. */
static uint64_t lisa__hf_tensor_bytes(const lisa_model *m, int i, lisa_file_dtype d) {
    lisa_param p = lisa_model_tensor(m, i);
    return (uint64_t)lisa_tensor_numel(&p.tensor) * lisa__file_dtype_size(d);
}

/* The end of the shard that starts at tensor first: tensors whole, in order,
   a new shard when the next would pass max bytes (one larger than max alone). */
static int lisa__hf_shard_end(const lisa_model *m, int first, lisa_file_dtype d, uint64_t max) {
    int n_t = lisa_model_n_tensors(m), i = first;
    uint64_t bytes = 0;
    while (i < n_t && (i == first || bytes + lisa__hf_tensor_bytes(m, i, d) <= max)) bytes += lisa__hf_tensor_bytes(m, i++, d);
    return i;
}

static void lisa__hf_shard_name(char *out, size_t size, int shard, int n_shards) {
    if (n_shards == 1) snprintf(out, size, "model.safetensors");
    else snprintf(out, size, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

/* Tensors [first, last) of m as one safetensors file at path; header is
   scratch of cap bytes (enough for every tensor's entry). */
static lisa_result lisa__hf_write_shard(const lisa_model *m, const char *path, lisa_file_dtype dtype, int first,
                                        int last, char *header, size_t cap, lisa_error *err) {
    const lisa_config *c = &m->config;
    size_t es = lisa__file_dtype_size(dtype), at = 0, pad;
    uint64_t offset = 0;
    unsigned char lb[8], buf[4096];
    lisa__writer w;
    lisa_result res;
    int i;
    /* The safetensors header: names, shapes, offsets; padded to 8 bytes with spaces. */
    at += (size_t)snprintf(header + at, cap - at, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (i = first; i < last; i++) {
        lisa_param p = lisa_model_tensor(m, i);
        uint64_t bytes = lisa__hf_tensor_bytes(m, i, dtype);
        char name[96], shape[48];
        lisa__tensor_name(&lisa__format_hf, c, i, name, sizeof name);
        if (p.tensor.ndim == 1) snprintf(shape, sizeof shape, "%d", p.tensor.shape[0]);
        else snprintf(shape, sizeof shape, "%d,%d", p.tensor.shape[0], p.tensor.shape[1]);
        at += (size_t)snprintf(header + at, cap - at, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%.0f,%.0f]}",
                               name, lisa__file_dtype_name(dtype), shape, (double)offset, (double)(offset + bytes));
        offset += bytes;
    }
    at += (size_t)snprintf(header + at, cap - at, "}");
    pad = (8 - at % 8) % 8;
    for (i = 0; i < (int)pad; i++) header[at++] = ' ';
    for (i = 0; i < 8; i++) lb[i] = (unsigned char)((uint64_t)at >> (8 * i));
    if ((res = lisa__writer_open(&w, path, err)) != LISA_OK) return res;
    lisa__write(&w, lb, 8);
    lisa__write(&w, header, at);
    for (i = first; i < last; i++) {
        lisa_param p = lisa_model_tensor(m, i);
        size_t rows = (size_t)p.tensor.shape[0], cols = p.tensor.ndim == 2 ? (size_t)p.tensor.shape[1] : 1;
        size_t per = sizeof buf / 4, row, k;
        size_t rope_hd = lisa__rope_permute(&lisa__format_hf, c, i);
        for (row = 0; row < rows; row++) {
            const float *src = p.tensor.data + (rope_hd ? lisa__hf_rope_row(row, rope_hd) : row) * cols;
            for (k = 0; k < cols; k += per) {
                size_t n = LISA__MIN(per, cols - k);
                lisa__convert_from_f32(buf, src + k, n, dtype);
                lisa__write(&w, buf, n * es);
            }
        }
    }
    return lisa__writer_close(&w, err);
}

/* model.safetensors.index.json: the total tensor bytes and each tensor's shard. */
static lisa_result lisa__hf_write_index(const lisa_model *m, const char *dir, lisa_file_dtype dtype, uint64_t max,
                                        int n_shards, lisa_error *err) {
    char path[4096], line[256], name[96], file[64];
    uint64_t total = 0;
    int n_t = lisa_model_n_tensors(m), i, shard = 0, end = lisa__hf_shard_end(m, 0, dtype, max);
    lisa__writer w;
    lisa_result res = lisa__path_join(path, sizeof path, dir, "model.safetensors.index.json", err);
    if (res == LISA_OK) res = lisa__writer_open(&w, path, err);
    if (res != LISA_OK) return res;
    for (i = 0; i < n_t; i++) total += lisa__hf_tensor_bytes(m, i, dtype);
    snprintf(line, sizeof line, "{\n  \"metadata\": {\n    \"total_size\": %.0f\n  },\n  \"weight_map\": {", (double)total);
    lisa__write(&w, line, strlen(line));
    for (i = 0; i < n_t; i++) {
        if (i == end) {
            shard++;
            end = lisa__hf_shard_end(m, i, dtype, max);
        }
        lisa__tensor_name(&lisa__format_hf, &m->config, i, name, sizeof name);
        lisa__hf_shard_name(file, sizeof file, shard, n_shards);
        snprintf(line, sizeof line, "%s\n    \"%s\": \"%s\"", i ? "," : "", name, file);
        lisa__write(&w, line, strlen(line));
    }
    lisa__write(&w, "\n  }\n}\n", 7);
    return lisa__writer_close(&w, err);
}

/* The shard counts an earlier save's index names (model-K-of-N.safetensors
   files; up to 8 different N), so that its files can go once the new ones
   are in place. An unreadable index names none. */
static int lisa__hf_old_shards(const char *dir, const lisa_allocator *al, int totals[8]) {
    char path[4096], *text = NULL;
    size_t size = 0, counter = 0;
    lisa_json j;
    int n = 0, c, k;
    if (lisa__path_join(path, sizeof path, dir, "model.safetensors.index.json", NULL) != LISA_OK || !lisa__file_exists(path) ||
        lisa__read_text(path, al, LISA_SAFETENSORS_MAX_HEADER, &text, &size, &counter, NULL) != LISA_OK)
        return 0;
    if (lisa_json_parse(&j, text, size, path, al, NULL) == LISA_OK) {
        for (c = lisa_json_first(&j, lisa_json_get(&j, lisa_json_root(&j), "weight_map")); c >= 0; c = lisa_json_next(&j, c)) {
            size_t len;
            const char *s = lisa_json_string(&j, c, &len);
            char name[64];
            int total;
            if (!s || len != 32 || memcmp(s, "model-", 6) != 0) continue;
            total = atoi(s + 15);
            lisa__hf_shard_name(name, sizeof name, 0, total);
            if (total < 2 || memcmp(name + 11, s + 11, 21) != 0) continue;   /* "-of-N.safetensors" as written here */
            for (k = 0; k < n && totals[k] != total; k++) {
            }
            if (k == n && n < 8) totals[n++] = total;
        }
    }
    lisa_json_free(&j);
    lisa__free(al, text, size + 1, &counter);
    return n;
}

/* After a save of n_shards: the other layout's files go (model.safetensors,
   or the index), and the shards of earlier counts. */
static void lisa__hf_remove_stale(const char *dir, int n_shards, const int *old_totals, int n_old) {
    char path[4096], name[64];
    int i, k;
    if (lisa__path_join(path, sizeof path, dir, n_shards == 1 ? "model.safetensors.index.json" : "model.safetensors", NULL) == LISA_OK)
        remove(path);
    for (i = 0; i < n_old; i++) {
        if (old_totals[i] == n_shards) continue;
        for (k = 0; k < old_totals[i]; k++) {
            lisa__hf_shard_name(name, sizeof name, k, old_totals[i]);
            if (lisa__path_join(path, sizeof path, dir, name, NULL) == LISA_OK) remove(path);
        }
    }
}

LISADEF lisa_result lisa_model_save_hf(const lisa_model *m, const char *dir, lisa_file_dtype dtype,
                                       lisa_error *err) {
    return lisa_model_save_hf_sharded(m, dir, dtype, LISA_HF_SHARD_DEFAULT, err);
}

LISADEF lisa_result lisa_model_save_hf_sharded(const lisa_model *m, const char *dir, lisa_file_dtype dtype,
                                               uint64_t max_shard_bytes, lisa_error *err) {
    static const char *const torch_names[3] = {"float32", "float16", "bfloat16"};
    const lisa_config *c = &m->config;
    lisa_allocator al = lisa__allocator_or_default(&m->allocator);
    int n_t = lisa_model_n_tensors(m), n_shards = 0, first, shard, old_totals[8], n_old;
    size_t cap, counter = 0;
    char path[4096], eps[32], theta[32], *header, config[2048], file[64];
    lisa__writer w;
    lisa_result res = LISA_OK;
    if (dtype != LISA_FILE_F32 && dtype != LISA_FILE_F16 && dtype != LISA_FILE_BF16)
        return lisa__fail(err, LISA_ERR_INVALID, "%s: unknown file dtype %d", dir, (int)dtype);
    if (max_shard_bytes == 0) return lisa__fail(err, LISA_ERR_INVALID, "%s: a shard size of 0 bytes", dir);
    for (first = 0; first < n_t; first = lisa__hf_shard_end(m, first, dtype, max_shard_bytes)) n_shards++;
    if (n_shards > 99999)
        return lisa__fail(err, LISA_ERR_INVALID, "%s: %d shards of at most %.0f bytes; at most 99999", dir, n_shards,
                          (double)max_shard_bytes);
    cap = 64 + (size_t)n_t * 256;
    header = (char *)lisa__alloc(&al, cap, &counter);
    if (!header) return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory", dir);
    n_old = lisa__hf_old_shards(dir, &al, old_totals);
    for (first = 0, shard = 0; first < n_t && res == LISA_OK; shard++) {
        int end = lisa__hf_shard_end(m, first, dtype, max_shard_bytes);
        lisa__hf_shard_name(file, sizeof file, shard, n_shards);
        res = lisa__path_join(path, sizeof path, dir, file, err);
        if (res == LISA_OK) res = lisa__hf_write_shard(m, path, dtype, first, end, header, cap, err);
        first = end;
    }
    lisa__free(&al, header, cap, &counter);
    if (res == LISA_OK && n_shards > 1) res = lisa__hf_write_index(m, dir, dtype, max_shard_bytes, n_shards, err);
    if (res != LISA_OK) return res;
    lisa__format_float(eps, sizeof eps, c->norm_eps);
    lisa__format_float(theta, sizeof theta, c->rope_theta);
    snprintf(config, sizeof config,
             "{\n"
             "  \"architectures\": [\"LlamaForCausalLM\"],\n"
             "  \"model_type\": \"llama\",\n"
             "  \"hidden_size\": %d,\n"
             "  \"intermediate_size\": %d,\n"
             "  \"num_hidden_layers\": %d,\n"
             "  \"num_attention_heads\": %d,\n"
             "  \"num_key_value_heads\": %d,\n"
             "  \"vocab_size\": %d,\n"
             "  \"max_position_embeddings\": %d,\n"
             "  \"rms_norm_eps\": %s,\n"
             "  \"rope_theta\": %s,\n"
             "  \"rope_scaling\": null,\n"
             "  \"tie_word_embeddings\": %s,\n"
             "  \"hidden_act\": \"silu\",\n"
             "  \"attention_bias\": false,\n"
             "  \"mlp_bias\": false,\n"
             "  \"torch_dtype\": \"%s\"\n"
             "}\n",
             c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->max_seq_len,
             eps, theta, c->tied_head ? "true" : "false", torch_names[dtype]);
    res = lisa__path_join(path, sizeof path, dir, "config.json", err);
    if (res == LISA_OK) res = lisa__writer_open(&w, path, err);
    if (res != LISA_OK) return res;
    lisa__write(&w, config, strlen(config));
    if ((res = lisa__writer_close(&w, err)) != LISA_OK) return res;
    lisa__hf_remove_stale(dir, n_shards, old_totals, n_old);
    return LISA_OK;
}

#endif /* LISA_NO_STDIO: the adapter readers below work from memory too */

/* ---- LoRA adapters in peft's format -------------------------------------- */

#define LISA__PEFT_MAX_CONFIG 1000000
#define LISA__PEFT_PREFIX "base_model.model.model.layers."

static const char *lisa__peft_module(int t) {
    static const char *const mods[LISA_LORA_N_TARGETS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                                          "mlp.down_proj"};
    return mods[t];
}

/* A config key that must be absent, null, false or empty for this header to
   compute what peft computes. */
static int lisa__peft_unset(const lisa_json *j, const char *key) {
    int node = lisa_json_get(j, lisa_json_root(j), key);
    lisa_json_type t = lisa_json_type_of(j, node);
    return t == LISA_JSON_NONE || t == LISA_JSON_NULL || t == LISA_JSON_FALSE ||
           ((t == LISA_JSON_OBJECT || t == LISA_JSON_ARRAY) && lisa_json_length(j, node) == 0);
}

LISADEF lisa_result lisa_lora_config_from_peft(lisa_lora_config *lc, const char *json, size_t len, const char *name,
                                               const lisa_allocator *a, lisa_error *err) {
    static const char *const refused[] = {"use_dora", "use_rslora", "fan_in_fan_out", "rank_pattern", "alpha_pattern",
                                          "layers_to_transform", "modules_to_save", "lora_bias", "layer_replication",
                                          "trainable_token_indices", "target_parameters", "exclude_modules"};
    lisa_json j;
    lisa_result r;
    int root, node, k, t;
    size_t n;
    const char *str;
    double v;
    memset(lc, 0, sizeof *lc);
    if (!name) name = "adapter_config.json";
    if ((r = lisa_json_parse(&j, json, len, name, a, err)) != LISA_OK) goto done;
    root = lisa_json_root(&j);
    r = LISA_ERR_FORMAT;
    if (lisa_json_type_of(&j, root) != LISA_JSON_OBJECT) {
        lisa__fail(err, r, "%s: not a JSON object", name);
        goto done;
    }
    str = lisa_json_string(&j, lisa_json_get(&j, root, "peft_type"), &n);
    if (lisa_json_type_of(&j, lisa_json_get(&j, root, "peft_type")) != LISA_JSON_NONE && (!str || strcmp(str, "LORA"))) {
        lisa__fail(err, r, "%s: peft_type is not \"LORA\"", name);
        goto done;
    }
    node = lisa_json_get(&j, root, "r");
    if (!lisa__json_uint(&j, node, LISA__LORA_MAX_RANK, &v) || v < 1) {
        lisa__fail(err, r, "%s: r must be an integer from 1 to %d", name, LISA__LORA_MAX_RANK);
        goto done;
    }
    lc->rank = (int)v;
    node = lisa_json_get(&j, root, "lora_alpha");
    v = lisa_json_number(&j, node);
    if (lisa_json_type_of(&j, node) != LISA_JSON_NUMBER || !(v > 0.0 && v <= 1e6)) {
        lisa__fail(err, r, "%s: lora_alpha must be a number > 0", name);
        goto done;
    }
    lc->alpha = (float)v;
    for (k = 0; k < (int)(sizeof refused / sizeof refused[0]); k++)
        if (!lisa__peft_unset(&j, refused[k])) {
            lisa__fail(err, r, "%s: %s is set; this loader supports plain LoRA only", name, refused[k]);
            goto done;
        }
    str = lisa_json_string(&j, lisa_json_get(&j, root, "bias"), &n);
    if (lisa_json_type_of(&j, lisa_json_get(&j, root, "bias")) != LISA_JSON_NONE && (!str || strcmp(str, "none"))) {
        lisa__fail(err, r, "%s: bias must be \"none\" (adapters without bias terms)", name);
        goto done;
    }
    node = lisa_json_get(&j, root, "target_modules");
    if (lisa_json_type_of(&j, node) != LISA_JSON_ARRAY || lisa_json_length(&j, node) == 0) {
        lisa__fail(err, r, "%s: target_modules must be a non-empty list of projection names", name);
        goto done;
    }
    for (k = lisa_json_first(&j, node); k >= 0; k = lisa_json_next(&j, k)) {
        str = lisa_json_string(&j, k, &n);
        for (t = 0; str && t < LISA_LORA_N_TARGETS; t++)
            if (strlen(lisa_lora_target_name(t)) == n && memcmp(str, lisa_lora_target_name(t), n) == 0) break;
        if (!str || t == LISA_LORA_N_TARGETS) {
            lisa__fail(err, r, "%s: target_modules holds %s%.60s%s; only q_proj, k_proj, v_proj, o_proj, gate_proj, "
                       "up_proj and down_proj are known", name, str ? "\"" : "", str ? str : "a non-string",
                       str ? "\"" : "");
            goto done;
        }
        lc->targets |= 1u << t;
    }
    r = LISA_OK;
    lisa__ok(err);
done:
    lisa_json_free(&j);
    return r;
}

/* Which adapter tensor a peft name is: layer, target, and 0 for A, 1 for B; 0 if none. */
static int lisa__peft_name(const char *name, int n_layers, int *layer, int *target, int *which) {
    size_t pl = strlen(LISA__PEFT_PREFIX), ml;
    const char *s = name;
    long l = 0;
    int t;
    if (strncmp(s, LISA__PEFT_PREFIX, pl) != 0) return 0;
    s += pl;
    if (!(*s >= '0' && *s <= '9') || (s[0] == '0' && s[1] != '.')) return 0;
    for (; *s >= '0' && *s <= '9'; s++)
        if ((l = l * 10 + (*s - '0')) >= n_layers) return 0;
    if (*s++ != '.') return 0;
    for (t = 0; t < LISA_LORA_N_TARGETS; t++) {
        ml = strlen(lisa__peft_module(t));
        if (strncmp(s, lisa__peft_module(t), ml) != 0) continue;
        if (strcmp(s + ml, ".lora_A.weight") == 0) *which = 0;
        else if (strcmp(s + ml, ".lora_B.weight") == 0) *which = 1;
        else return 0;
        *layer = (int)l;
        *target = t;
        return 1;
    }
    return 0;
}

LISADEF lisa_result lisa_lora_load_peft_weights_memory(lisa_lora *l, const void *data, size_t size, const char *name,
                                                       lisa_error *err) {
    lisa_safetensors st;
    lisa_result r;
    unsigned char *seen;
    size_t n_seen = (size_t)l->n_layers * LISA_LORA_N_TARGETS * 2, counter = 0, hd;
    int i, layer = 0, t = 0, which = 0, R = l->config.rank;
    if (!name) name = "adapter_model.safetensors";
    if ((r = lisa_safetensors_parse_memory(&st, data, size, name, &l->allocator, err)) != LISA_OK) {
        lisa_safetensors_free(&st);
        return r;
    }
    seen = (unsigned char *)lisa__alloc(&l->allocator, n_seen, &counter);
    if (!seen) {
        lisa_safetensors_free(&st);
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory", name);
    }
    memset(seen, 0, n_seen);
    r = LISA_ERR_FORMAT;
    for (i = 0; i < st.n_tensors; i++) {
        const lisa_safetensors_tensor *x = &st.tensors[i];
        uint64_t rows, cols;
        size_t k;
        if (!lisa__peft_name(x->name, l->n_layers, &layer, &t, &which)) {
            lisa__fail(err, r, "%s: unexpected tensor %.100s (not a LoRA A or B of a %d-layer LLaMA)", name, x->name,
                       l->n_layers);
            goto done;
        }
        if (l->slot[t] < 0) {
            lisa__fail(err, r, "%s: tensor %.100s is for %s, which the adapter config does not target", name, x->name,
                       lisa_lora_target_name(t));
            goto done;
        }
        k = ((size_t)layer * LISA_LORA_N_TARGETS + (size_t)t) * 2 + (size_t)which;
        if (seen[k]++) {
            lisa__fail(err, r, "%s: tensor %.100s appears twice", name, x->name);
            goto done;
        }
        rows = which ? (uint64_t)l->out_dim[t] : (uint64_t)R;
        cols = which ? (uint64_t)R : (uint64_t)l->in_dim[t];
        if (x->ndim != 2 || x->shape[0] != rows || x->shape[1] != cols) {
            lisa__fail(err, r, "%s: tensor %.100s has %d dimensions%s, r %d and this model need [%.0f, %.0f]", name,
                       x->name, x->ndim, x->ndim == 2 ? " of another size" : "", R, (double)rows, (double)cols);
            goto done;
        }
    }
    for (layer = 0; layer < l->n_layers; layer++)
        for (t = 0; t < LISA_LORA_N_TARGETS; t++)
            for (which = 0; which < 2 && l->slot[t] >= 0; which++)
                if (!seen[((size_t)layer * LISA_LORA_N_TARGETS + (size_t)t) * 2 + (size_t)which]) {
                    lisa__fail(err, r, "%s: tensor %s%d.%s.lora_%c.weight is missing", name, LISA__PEFT_PREFIX, layer,
                               lisa__peft_module(t), which ? 'B' : 'A');
                    goto done;
                }
    for (i = 0; i < st.n_tensors; i++) {
        const lisa_safetensors_tensor *x = &st.tensors[i];
        lisa__reader rd = lisa__memory_reader(st.data + x->begin, x->end - x->begin);
        lisa__peft_name(x->name, l->n_layers, &layer, &t, &which);
        /* B's rows are q/k output features: rotate-half order in the file */
        hd = which && (t == LISA_LORA_Q || t == LISA_LORA_K) ? (size_t)l->head_dim : 0;
        if (!lisa__read_tensor(&rd, &lisa__format_hf, lisa__file_dtype_ggml(x->dtype),
                               which ? lisa_lora_b(l, layer, t) : lisa_lora_a(l, layer, t), (size_t)x->shape[0],
                               (size_t)x->shape[1], hd)) {
            lisa__fail(err, r, "%s: tensor %.100s cannot be read", name, x->name);
            goto done;
        }
    }
    r = LISA_OK;
    lisa__ok(err);
done:
    lisa__free(&l->allocator, seen, n_seen, &counter);
    lisa_safetensors_free(&st);
    return r;
}

#ifndef LISA_NO_STDIO
static int lisa__json_write_string(lisa__writer *w, const char *s, size_t n);

LISADEF lisa_result lisa_lora_read_peft_config(const char *dir, lisa_lora_config *lc, const lisa_allocator *a,
                                               lisa_error *err) {
    char path[4096], *text = NULL;
    size_t size = 0, counter = 0;
    lisa_allocator al = lisa__allocator_or_default(a);
    lisa_result r = lisa__path_join(path, sizeof path, dir, "adapter_config.json", err);
    memset(lc, 0, sizeof *lc);
    if (r == LISA_OK) r = lisa__read_text(path, &al, LISA__PEFT_MAX_CONFIG, &text, &size, &counter, err);
    if (r == LISA_OK) r = lisa_lora_config_from_peft(lc, text, size, path, &al, err);
    if (text) lisa__free(&al, text, size + 1, &counter);
    return r;
}

LISADEF lisa_result lisa_lora_load_peft(lisa_lora *l, const char *dir, lisa_error *err) {
    char path[4096], *data = NULL;
    size_t size = 0, counter = 0;
    lisa_result r = lisa__path_join(path, sizeof path, dir, "adapter_model.safetensors", err);
    if (r == LISA_OK) r = lisa__read_text(path, &l->allocator, SIZE_MAX - 1, &data, &size, &counter, err);
    if (r == LISA_OK) r = lisa_lora_load_peft_weights_memory(l, data, size, path, err);
    if (data) lisa__free(&l->allocator, data, size + 1, &counter);
    return r;
}

/* Row r of the file's B as stored here: rotate-half order for q and k. */
static const float *lisa__peft_b_row(const lisa_lora *l, int layer, int t, size_t r) {
    size_t hd = t == LISA_LORA_Q || t == LISA_LORA_K ? (size_t)l->head_dim : 0;
    return lisa_lora_b(l, layer, t) + (hd ? lisa__hf_rope_row(r, hd) : r) * (size_t)l->config.rank;
}

static lisa_result lisa__peft_write_weights(const lisa_lora *l, const char *path, lisa_error *err) {
    size_t cap = 128 + (size_t)l->n_layers * LISA_LORA_N_TARGETS * 2 * 200, at = 0, counter = 0, pad, R;
    uint64_t offset = 0;
    unsigned char lb[8];
    char *header;
    lisa__writer w;
    lisa_result res;
    int layer, t, which, i;
    lisa_allocator al = l->allocator;
    R = (size_t)l->config.rank;
    header = (char *)lisa__alloc(&al, cap, &counter);
    if (!header) return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory", path);
    at += (size_t)snprintf(header + at, cap - at, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (layer = 0; layer < l->n_layers; layer++)
        for (t = 0; t < LISA_LORA_N_TARGETS; t++)
            for (which = 0; which < 2 && l->slot[t] >= 0; which++) {
                size_t rows = which ? (size_t)l->out_dim[t] : R, cols = which ? R : (size_t)l->in_dim[t];
                at += (size_t)snprintf(header + at, cap - at,
                                       ",\"%s%d.%s.lora_%c.weight\":{\"dtype\":\"F32\",\"shape\":[%lu,%lu],"
                                       "\"data_offsets\":[%.0f,%.0f]}",
                                       LISA__PEFT_PREFIX, layer, lisa__peft_module(t), which ? 'B' : 'A',
                                       (unsigned long)rows, (unsigned long)cols, (double)offset,
                                       (double)(offset + rows * cols * 4));
                offset += rows * cols * 4;
            }
    at += (size_t)snprintf(header + at, cap - at, "}");
    pad = (8 - at % 8) % 8;
    for (i = 0; i < (int)pad; i++) header[at++] = ' ';
    for (i = 0; i < 8; i++) lb[i] = (unsigned char)((uint64_t)at >> (8 * i));
    if ((res = lisa__writer_open(&w, path, err)) == LISA_OK) {
        lisa__write(&w, lb, 8);
        lisa__write(&w, header, at);
        for (layer = 0; layer < l->n_layers; layer++)
            for (t = 0; t < LISA_LORA_N_TARGETS; t++) {
                size_t r;
                if (l->slot[t] < 0) continue;
                lisa__write_f32(&w, lisa_lora_a(l, layer, t), R * (size_t)l->in_dim[t]);
                for (r = 0; r < (size_t)l->out_dim[t]; r++) lisa__write_f32(&w, lisa__peft_b_row(l, layer, t, r), R);
            }
        res = lisa__writer_close(&w, err);
    }
    lisa__free(&al, header, cap, &counter);
    return res;
}

LISADEF lisa_result lisa_lora_save_peft(const lisa_lora *l, const char *dir, const char *base_model, lisa_error *err) {
    char path[4096], alpha[32], line[160];
    lisa__writer w;
    lisa_result res;
    int t, first = 1;
    if ((res = lisa__path_join(path, sizeof path, dir, "adapter_model.safetensors", err)) != LISA_OK) return res;
    if ((res = lisa__peft_write_weights(l, path, err)) != LISA_OK) return res;
    if ((res = lisa__path_join(path, sizeof path, dir, "adapter_config.json", err)) != LISA_OK) return res;
    if ((res = lisa__writer_open(&w, path, err)) != LISA_OK) return res;
    lisa__format_float(alpha, sizeof alpha, l->config.alpha);
    lisa__write(&w, "{\n  \"base_model_name_or_path\": ", strlen("{\n  \"base_model_name_or_path\": "));
    if (!base_model || !lisa__json_write_string(&w, base_model, strlen(base_model))) lisa__write(&w, "null", 4);
    snprintf(line, sizeof line,
             ",\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"r\": %d,\n  \"lora_alpha\": %s,\n",
             l->config.rank, alpha);
    lisa__write(&w, line, strlen(line));
    {
        static const char fixed[] = "  \"lora_dropout\": 0.0,\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n"
                                    "  \"inference_mode\": true,\n  \"use_rslora\": false,\n  \"use_dora\": false,\n"
                                    "  \"target_modules\": [";
        lisa__write(&w, fixed, sizeof fixed - 1);
    }
    for (t = 0; t < LISA_LORA_N_TARGETS; t++) {
        if (l->slot[t] < 0) continue;
        snprintf(line, sizeof line, "%s\"%s\"", first ? "" : ", ", lisa_lora_target_name(t));
        lisa__write(&w, line, strlen(line));
        first = 0;
    }
    lisa__write(&w, "]\n}\n", 4);
    return lisa__writer_close(&w, err);
}
#endif

#ifndef LISA_NO_STDIO

/* ---- JSON out ------------------------------------------------------------ */

/* Writes s (n bytes) as a JSON string: quotes, backslashes and control
   bytes escaped, everything else as it is. Returns 0, writing nothing, when
   s is not valid UTF-8 (JSON text must be). */
static int lisa__json_write_string(lisa__writer *w, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i, run = 0;
    uint32_t cp;
    int k;
    for (i = 0; i < n; i += (size_t)k)
        if ((k = lisa__utf8_decode(u + i, n - i, &cp)) == 0) return 0;
    lisa__write(w, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = u[i];
        char esc[8];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7F) continue;
        lisa__write(w, s + run, i - run);
        if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n') snprintf(esc, sizeof esc, "\\n");
        else if (c == '\r') snprintf(esc, sizeof esc, "\\r");
        else if (c == '\t') snprintf(esc, sizeof esc, "\\t");
        else snprintf(esc, sizeof esc, "\\u%04x", (unsigned)c);
        lisa__write(w, esc, strlen(esc));
        run = i + 1;
    }
    lisa__write(w, s + run, n - run);
    lisa__write(w, "\"", 1);
    return 1;
}

/* A failed save's temporary file goes, the old file stays. */
static void lisa__writer_abort(lisa__writer *w) {
    if (w->file) fclose(w->file);
    w->file = NULL;
    remove(w->tmp);
}

/* ---- A GGUF tokenizer as tokenizer.json ---------------------------------- */

typedef struct lisa__hftw_merge {
    int merged, left, right, split;
    float score, left_score, right_score;
} lisa__hftw_merge;

typedef struct lisa__hftw {
    const lisa_gguf *g;
    const lisa_tokenizer *t;    /* the GGUF's tokenizer as loaded: special ids, settings */
    const lisa__bpe_settings *set;
    lisa__writer w;
    lisa_allocator al;
    size_t counter;
    int spm, n_tokens, tokens, types, scores;   /* key indices, -1: absent */
    int32_t *table;             /* ids by token text (the first of equal texts), -1 empty */
    size_t mask;
    lisa__hftw_merge *merges;   /* llama: made from the scores */
    size_t n_merges;
    const char *bad_key;        /* the first string not UTF-8 or holding a NUL: its key and index */
    long bad_index;
    char empty[2][32];
} lisa__hftw;

static void lisa__hftw_lit(lisa__hftw *h, const char *s) { lisa__write(&h->w, s, strlen(s)); }

/* s as a JSON string; one that is not UTF-8 or holds a NUL byte (which
   tokenizer.json readers take as the end of a token's name) is marked bad. */
static void lisa__hftw_str(lisa__hftw *h, const char *s, size_t n, const char *key, long index) {
    if (!memchr(s, 0, n) && lisa__json_write_string(&h->w, s, n)) return;
    if (!h->bad_key) {
        h->bad_key = key;
        h->bad_index = index;
    }
    lisa__write(&h->w, "\"\"", 2);
}

/* Token id's text as the GGUF loader reads it (llama.cpp's "[EMPTY_<id>]" for
   an empty one); slot 0 or 1 holds such a stand-in, so two can be held. */
static const char *lisa__hftw_text(lisa__hftw *h, int id, size_t *n, int slot) {
    const char *s = "";
    size_t len = 0;
    lisa_gguf_array_string(h->g, h->tokens, (uint64_t)id, &s, &len, NULL);
    if (len == 0) {
        snprintf(h->empty[slot], sizeof h->empty[slot], "[EMPTY_%d]", id);
        s = h->empty[slot];
        len = strlen(s);
    }
    *n = len;
    return s;
}

static void lisa__hftw_token(lisa__hftw *h, int id) {
    size_t n;
    const char *s = lisa__hftw_text(h, id, &n, 0);
    lisa__hftw_str(h, s, n, "tokenizer.ggml.tokens", id);
}

static int lisa__hftw_type(const lisa__hftw *h, int id) {
    int64_t v = 1;
    if (h->types >= 0) lisa_gguf_array_int(h->g, h->types, (uint64_t)id, &v, NULL);
    return (int)v;
}

static float lisa__hftw_score(const lisa__hftw *h, int id) {
    double v = 0.0;
    int64_t iv;
    lisa_gguf_type et = LISA_GGUF_FLOAT32;
    if (h->scores < 0) return 0.0f;
    lisa_gguf_array(h->g, h->scores, &et, NULL, NULL);
    if (et == LISA_GGUF_INT32 && lisa_gguf_array_int(h->g, h->scores, (uint64_t)id, &iv, NULL) == LISA_OK) return (float)iv;
    lisa_gguf_array_float(h->g, h->scores, (uint64_t)id, &v, NULL);
    return (float)v;
}

static size_t lisa__hftw_hash(const char *s, size_t n) {
    uint64_t x = 1469598103934665603ull;   /* FNV-1a */
    size_t i;
    for (i = 0; i < n; i++) x = (x ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)(x ^ (x >> 29));
}

/* The id of the first token whose text is s, or -1. */
static int lisa__hftw_find(lisa__hftw *h, const char *s, size_t n) {
    size_t i = lisa__hftw_hash(s, n) & h->mask;
    for (; h->table[i] >= 0; i = (i + 1) & h->mask) {
        size_t len;
        const char *t = lisa__hftw_text(h, h->table[i], &len, 1);
        if (len == n && memcmp(t, s, n) == 0) return h->table[i];
    }
    return -1;
}

static lisa_result lisa__hftw_index(lisa__hftw *h, lisa_error *err) {
    size_t slots = 16;
    int id;
    while (slots < 2 * (size_t)h->n_tokens) slots *= 2;
    h->table = (int32_t *)lisa__alloc(&h->al, slots * sizeof(int32_t), &h->counter);
    if (!h->table) return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory", h->g->name);
    memset(h->table, 0xFF, slots * sizeof(int32_t));
    h->mask = slots - 1;
    for (id = 0; id < h->n_tokens; id++) {
        size_t n, i;
        const char *s = lisa__hftw_text(h, id, &n, 0);
        if (lisa__hftw_find(h, s, n) >= 0) continue;
        for (i = lisa__hftw_hash(s, n) & h->mask; h->table[i] >= 0; i = (i + 1) & h->mask) {
        }
        h->table[i] = id;
    }
    return LISA_OK;
}

/* The order transformers' GGUF reader gives merges made from scores: by the
   merged token's score, then the vocabulary's order, then the halves' scores. */
static int lisa__hftw_merge_cmp(const void *pa, const void *pb) {
    const lisa__hftw_merge *a = (const lisa__hftw_merge *)pa, *b = (const lisa__hftw_merge *)pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->merged != b->merged) return a->merged < b->merged ? -1 : 1;
    if (a->left_score != b->left_score) return a->left_score > b->left_score ? -1 : 1;
    if (a->right_score != b->right_score) return a->right_score > b->right_score ? -1 : 1;
    return a->split < b->split ? -1 : a->split > b->split;
}

/* llama: every split of a token, at a character boundary, into two tokens is
   a merge (first pass counts, second fills). */
static lisa_result lisa__hftw_spm_merges(lisa__hftw *h, lisa_error *err) {
    int pass, id;
    for (pass = 0; pass < 2; pass++) {
        size_t count = 0;
        for (id = 0; id < h->n_tokens; id++) {
            size_t n, at;
            const char *s = lisa__hftw_text(h, id, &n, 0);
            uint32_t cp;
            int k;
            if (lisa__hftw_find(h, s, n) != id) continue;   /* a repeated text: its first id is the token */
            for (at = 0; at < n; at += (size_t)k) {
                int left, right;
                if ((k = lisa__utf8_decode((const unsigned char *)s + at, n - at, &cp)) == 0) k = 1;
                if (at == 0) continue;
                if ((left = lisa__hftw_find(h, s, at)) < 0 || (right = lisa__hftw_find(h, s + at, n - at)) < 0) continue;
                if (pass == 1) {
                    lisa__hftw_merge *m = &h->merges[count];
                    m->merged = id;
                    m->left = left;
                    m->right = right;
                    m->split = (int)at;
                    m->score = lisa__hftw_score(h, id);
                    m->left_score = lisa__hftw_score(h, left);
                    m->right_score = lisa__hftw_score(h, right);
                }
                count++;
            }
        }
        if (pass == 0) {
            h->n_merges = count;
            if (count == 0) return LISA_OK;
            h->merges = (lisa__hftw_merge *)lisa__alloc(&h->al, count * sizeof *h->merges, &h->counter);
            if (!h->merges) return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory", h->g->name);
        }
    }
    qsort(h->merges, h->n_merges, sizeof *h->merges, lisa__hftw_merge_cmp);
    return LISA_OK;
}

static void lisa__hftw_vocab(lisa__hftw *h) {
    int id, first = 1;
    char num[32];
    lisa__hftw_lit(h, "{");
    for (id = 0; id < h->n_tokens; id++) {
        size_t n;
        const char *s = lisa__hftw_text(h, id, &n, 0);
        if (lisa__hftw_find(h, s, n) != id) continue;   /* JSON keys are unique: the first id keeps the text */
        lisa__hftw_lit(h, first ? "\n" : ",\n");
        first = 0;
        lisa__hftw_token(h, id);
        snprintf(num, sizeof num, ":%d", id);
        lisa__hftw_lit(h, num);
    }
    lisa__hftw_lit(h, "}");
}

static void lisa__hftw_merges(lisa__hftw *h) {
    size_t k;
    lisa__hftw_lit(h, "[");
    if (h->spm) {
        for (k = 0; k < h->n_merges; k++) {
            lisa__hftw_lit(h, k ? ",\n[" : "\n[");
            lisa__hftw_token(h, h->merges[k].left);
            lisa__hftw_lit(h, ",");
            lisa__hftw_token(h, h->merges[k].right);
            lisa__hftw_lit(h, "]");
        }
    } else {
        int merges = lisa_gguf_find(h->g, "tokenizer.ggml.merges");
        uint64_t n = 0, i;
        lisa_gguf_array(h->g, merges, NULL, &n, NULL);
        for (i = 0; i < n; i++) {   /* split as the loader split them: it checked each */
            const char *s = "", *sp;
            size_t len = 0;
            lisa_gguf_array_string(h->g, merges, i, &s, &len, NULL);
            sp = (const char *)memchr(s + 1, ' ', len - 1);
            lisa__hftw_lit(h, i ? ",\n[" : "\n[");
            lisa__hftw_str(h, s, (size_t)(sp - s), "tokenizer.ggml.merges", (long)i);
            lisa__hftw_lit(h, ",");
            lisa__hftw_str(h, sp + 1, len - (size_t)(sp - s) - 1, "tokenizer.ggml.merges", (long)i);
            lisa__hftw_lit(h, "]");
        }
    }
    lisa__hftw_lit(h, "]");
}

/* Unknown and control tokens are special added tokens, user-defined ones
   plain added tokens: all matched in the raw text, as llama.cpp does. */
static void lisa__hftw_added(lisa__hftw *h) {
    int id, first = 1;
    char num[32];
    lisa__hftw_lit(h, "[");
    for (id = 0; id < h->n_tokens; id++) {
        int type = lisa__hftw_type(h, id);
        if (type != 2 && type != 3 && type != 4) continue;
        snprintf(num, sizeof num, "%s\n{\"id\":%d,\"content\":", first ? "" : ",", id);
        first = 0;
        lisa__hftw_lit(h, num);
        lisa__hftw_token(h, id);
        lisa__hftw_lit(h, ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":");
        lisa__hftw_lit(h, type == 4 ? "false}" : "true}");
    }
    lisa__hftw_lit(h, "]");
}

/* gpt2: the GGUF pre's scanners as Split and Digits stages, then ByteLevel,
   whose own regex is GPT-2's when that is the last scanner. */
static void lisa__hftw_pretok(lisa__hftw *h) {
    const lisa__bpe_settings *set = h->set;
    int n = set->n_pretok - 1, k, regex;   /* the last stage is ByteLevel */
    regex = n >= 1 && set->pretok[n - 1].kind == LISA__PRETOK_GPT2;
    if (regex) n--;
    if (n > 0) lisa__hftw_lit(h, "{\"type\":\"Sequence\",\"pretokenizers\":[");
    for (k = 0; k < n; k++) {
        int kind = set->pretok[k].kind;
        if (kind == LISA__PRETOK_DIGITS_EACH || kind == LISA__PRETOK_DIGITS_RUNS) {
            lisa__hftw_lit(h, kind == LISA__PRETOK_DIGITS_EACH ? "{\"type\":\"Digits\",\"individual_digits\":true},"
                                                                : "{\"type\":\"Digits\",\"individual_digits\":false},");
            continue;
        }
        lisa__hftw_lit(h, "{\"type\":\"Split\",\"pattern\":{\"Regex\":");
        lisa__hftw_str(h, lisa__pretok_pattern(kind), strlen(lisa__pretok_pattern(kind)), "tokenizer.ggml.pre", 0);
        lisa__hftw_lit(h, "},\"behavior\":\"Isolated\",\"invert\":false},");
    }
    lisa__hftw_lit(h, "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":");
    lisa__hftw_lit(h, regex ? "true}" : "false}");
    if (n > 0) lisa__hftw_lit(h, "]}");
}

static void lisa__hftw_special(lisa__hftw *h, int id, int type_id) {
    char num[32];
    lisa__hftw_lit(h, "{\"SpecialToken\":{\"id\":");
    lisa__hftw_token(h, id);
    snprintf(num, sizeof num, ",\"type_id\":%d}}", type_id);
    lisa__hftw_lit(h, num);
}

static void lisa__hftw_special_entry(lisa__hftw *h, int id) {
    char num[32];
    lisa__hftw_token(h, id);
    lisa__hftw_lit(h, ":{\"id\":");
    lisa__hftw_token(h, id);
    snprintf(num, sizeof num, ",\"ids\":[%d],\"tokens\":[", id);
    lisa__hftw_lit(h, num);
    lisa__hftw_token(h, id);
    lisa__hftw_lit(h, "]}");
}

/* BOS / EOS as a TemplateProcessing post-processor when they are added. */
static void lisa__hftw_post(lisa__hftw *h) {
    const lisa_tokenizer *t = h->t;
    int bos = t->add_bos ? t->bos_id : -1, eos = t->add_eos ? t->eos_id : -1, seq;
    if (bos < 0 && eos < 0) {
        lisa__hftw_lit(h, h->spm ? "null" : "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true}");
        return;
    }
    lisa__hftw_lit(h, "{\"type\":\"TemplateProcessing\",\"single\":[");
    if (bos >= 0) lisa__hftw_special(h, bos, 0), lisa__hftw_lit(h, ",");
    lisa__hftw_lit(h, "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}");
    if (eos >= 0) lisa__hftw_lit(h, ","), lisa__hftw_special(h, eos, 0);
    lisa__hftw_lit(h, "],\"pair\":[");
    for (seq = 0; seq < 2; seq++) {
        if (seq) lisa__hftw_lit(h, ",");
        if (bos >= 0) lisa__hftw_special(h, bos, seq), lisa__hftw_lit(h, ",");
        lisa__hftw_lit(h, seq ? "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}" : "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}");
        if (eos >= 0) lisa__hftw_lit(h, ","), lisa__hftw_special(h, eos, seq);
    }
    lisa__hftw_lit(h, "],\"special_tokens\":{");
    if (bos >= 0) lisa__hftw_special_entry(h, bos);
    if (eos >= 0 && eos != bos) {
        if (bos >= 0) lisa__hftw_lit(h, ",");
        lisa__hftw_special_entry(h, eos);
    }
    lisa__hftw_lit(h, "}}");
}

static void lisa__hftw_tokenizer_json(lisa__hftw *h) {
    const lisa__bpe_settings *set = h->set;
    int prepend = set->n_norm > 0 && set->norm[0].op == LISA__BPE_N_PREPEND;
    lisa__hftw_lit(h, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\n\"added_tokens\":");
    lisa__hftw_added(h);
    lisa__hftw_lit(h, ",\n\"normalizer\":");
    if (!h->spm) lisa__hftw_lit(h, "null");
    else {
        lisa__hftw_lit(h, "{\"type\":\"Sequence\",\"normalizers\":[");
        if (prepend) lisa__hftw_lit(h, "{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},");
        lisa__hftw_lit(h, "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]}");
    }
    lisa__hftw_lit(h, ",\n\"pre_tokenizer\":");
    if (h->spm) lisa__hftw_lit(h, "null");
    else lisa__hftw_pretok(h);
    lisa__hftw_lit(h, ",\n\"post_processor\":");
    lisa__hftw_post(h);
    lisa__hftw_lit(h, ",\n\"decoder\":");
    if (!h->spm) lisa__hftw_lit(h, "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}");
    else {
        lisa__hftw_lit(h, "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},"
                          "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}");
        if (prepend) lisa__hftw_lit(h, ",{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}");
        lisa__hftw_lit(h, "]}");
    }
    lisa__hftw_lit(h, ",\n\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":");
    if (h->t->unk_id >= 0) lisa__hftw_token(h, h->t->unk_id);
    else lisa__hftw_lit(h, "null");
    lisa__hftw_lit(h, ",\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":");
    lisa__hftw_lit(h, set->fuse_unk ? "true" : "false");
    lisa__hftw_lit(h, ",\"byte_fallback\":");
    lisa__hftw_lit(h, set->byte_fallback ? "true" : "false");
    lisa__hftw_lit(h, ",\"ignore_merges\":");
    lisa__hftw_lit(h, set->ignore_merges ? "true" : "false");
    lisa__hftw_lit(h, ",\n\"vocab\":");
    lisa__hftw_vocab(h);
    lisa__hftw_lit(h, ",\n\"merges\":");
    lisa__hftw_merges(h);
    lisa__hftw_lit(h, "}}\n");
}

static void lisa__hftw_config_token(lisa__hftw *h, const char *key, int id) {
    lisa__hftw_lit(h, ",\n  \"");
    lisa__hftw_lit(h, key);
    lisa__hftw_lit(h, "\": ");
    if (id >= 0) lisa__hftw_token(h, id);
    else lisa__hftw_lit(h, "null");
}

static void lisa__hftw_config_json(lisa__hftw *h) {
    const lisa_tokenizer *t = h->t;
    const char *arch = NULL;
    size_t arch_len = 0;
    int64_t ctx = 0;
    char line[160];
    snprintf(line, sizeof line, "{\n  \"add_bos_token\": %s,\n  \"add_eos_token\": %s", t->add_bos ? "true" : "false",
             t->add_eos ? "true" : "false");
    lisa__hftw_lit(h, line);
    lisa__hftw_config_token(h, "bos_token", t->bos_id);
    lisa__hftw_config_token(h, "eos_token", t->eos_id);
    lisa__hftw_config_token(h, "unk_token", t->unk_id);
    lisa__hftw_config_token(h, "pad_token", t->pad_id);
    if (t->chat_template) {
        lisa__hftw_lit(h, ",\n  \"chat_template\": ");
        lisa__hftw_str(h, t->chat_template, t->chat_template_len, "tokenizer.chat_template", 0);
    }
    lisa__hftw_lit(h, ",\n  \"clean_up_tokenization_spaces\": false");
    if (lisa_gguf_get_string(h->g, lisa_gguf_find(h->g, "general.architecture"), &arch, &arch_len, NULL) == LISA_OK &&
        arch_len < 64) {
        char key[96];
        snprintf(key, sizeof key, "%.*s.context_length", (int)arch_len, arch);
        if (lisa_gguf_get_int(h->g, lisa_gguf_find(h->g, key), &ctx, NULL) == LISA_OK && ctx > 0) {
            snprintf(line, sizeof line, ",\n  \"model_max_length\": %.0f", (double)ctx);
            lisa__hftw_lit(h, line);
        }
    }
    lisa__hftw_lit(h, ",\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\"\n}\n");
}

/* One file of the pair: written whole, or not at all when a string is not UTF-8. */
static lisa_result lisa__hftw_file(lisa__hftw *h, const char *dir, const char *file, void (*body)(lisa__hftw *),
                                   lisa_error *err) {
    char path[4096];
    lisa_result r = lisa__path_join(path, sizeof path, dir, file, err);
    if (r == LISA_OK) r = lisa__writer_open(&h->w, path, err);
    if (r != LISA_OK) return r;
    body(h);
    if (h->bad_key) {
        lisa__writer_abort(&h->w);
        return lisa__fail(err, LISA_ERR_FORMAT,
                          "%s: key %s, element %ld, is not valid UTF-8 or holds a NUL byte, which %s cannot hold",
                          h->g->name, h->bad_key, h->bad_index, file);
    }
    return lisa__writer_close(&h->w, err);
}

LISADEF lisa_result lisa_gguf_save_hf_tokenizer(const lisa_gguf *g, const char *dir, lisa_error *err) {
    lisa__hftw h;
    lisa_tokenizer t;
    const char *model = NULL;
    size_t model_len = 0;
    lisa_result r;
    memset(&h, 0, sizeof h);
    if (lisa_gguf_find(g, "tokenizer.ggml.model") >= 0 &&
        lisa_gguf_get_string(g, lisa_gguf_find(g, "tokenizer.ggml.model"), &model, &model_len, err) == LISA_OK &&
        !(model_len == 4 && memcmp(model, "gpt2", 4) == 0) && !(model_len == 5 && memcmp(model, "llama", 5) == 0))
        return lisa__fail(err, LISA_ERR_INVALID,
                          "%s: tokenizer.ggml.model \"%.*s\" cannot be written as tokenizer.json (only \"gpt2\" and \"llama\")",
                          g->name, (int)(model_len < 60 ? model_len : 60), model);
    /* the loader checks every key; what it made decides the settings written */
    if ((r = lisa_tokenizer_load_gguf_metadata(&t, g, &g->allocator, err)) != LISA_OK) {
        lisa_tokenizer_free(&t);
        return r;
    }
    h.g = g;
    h.t = &t;
    h.set = &t.bpe->set;
    h.spm = h.set->rank == LISA__BPE_BY_SCORE;
    h.al = lisa__allocator_or_default(&g->allocator);
    h.n_tokens = t.vocab_size;
    h.tokens = lisa_gguf_find(g, "tokenizer.ggml.tokens");
    h.types = lisa_gguf_find(g, "tokenizer.ggml.token_type");
    h.scores = lisa_gguf_find(g, "tokenizer.ggml.scores");
    r = lisa__hftw_index(&h, err);
    if (r == LISA_OK && h.spm) r = lisa__hftw_spm_merges(&h, err);
    if (r == LISA_OK) r = lisa__hftw_file(&h, dir, "tokenizer.json", lisa__hftw_tokenizer_json, err);
    if (r == LISA_OK) r = lisa__hftw_file(&h, dir, "tokenizer_config.json", lisa__hftw_config_json, err);
    lisa__free(&h.al, h.table, (h.mask + 1) * sizeof(int32_t), &h.counter);
    lisa__free(&h.al, h.merges, h.n_merges * sizeof *h.merges, &h.counter);
    lisa_tokenizer_free(&t);
    return r;
}

LISADEF lisa_result lisa_model_load_gguf(lisa_model *m, const char *path, const lisa_allocator *a,
                                         lisa_error *err) {
    lisa_gguf g;
    lisa__reader r;
    lisa_result res = lisa_gguf_read_metadata(&g, path, a, err);
    memset(m, 0, sizeof *m);
    if (res == LISA_OK) res = lisa__open_reader(&r, path, err);
    if (res == LISA_OK) {
        res = lisa__gguf_load(m, &g, &r, a, err);
        fclose(r.file);
    }
    lisa_gguf_free(&g);
    return res;
}

/* --- GGUF llama models: writing ------------------------------------------- */

/* Where a GGUF file's bytes go: a lisa__writer, or memory (buf NULL: only
   counting, so a caller can size the buffer with a first pass). */
typedef struct lisa__gguf_out {
    lisa__writer *w;
    unsigned char *buf;
    uint64_t size;             /* bytes so far */
} lisa__gguf_out;

static void lisa__gguf_put(lisa__gguf_out *o, const void *p, size_t n) {
    if (o->w) lisa__write(o->w, p, n);
    else if (o->buf && n) memcpy(o->buf + o->size, p, n);
    o->size += n;
}

static void lisa__gguf_put_u32(lisa__gguf_out *o, uint32_t v) {
    unsigned char b[4];
    lisa__put_le32(b, (int32_t)v);
    lisa__gguf_put(o, b, 4);
}

static void lisa__gguf_put_u64(lisa__gguf_out *o, uint64_t v) {
    unsigned char b[8];
    int i;
    for (i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    lisa__gguf_put(o, b, 8);
}

static void lisa__gguf_put_str(lisa__gguf_out *o, const char *s, size_t len) {
    lisa__gguf_put_u64(o, (uint64_t)len);
    lisa__gguf_put(o, s, len);
}

static void lisa__gguf_put_key(lisa__gguf_out *o, const char *key, lisa_gguf_type type) {
    lisa__gguf_put_str(o, key, strlen(key));
    lisa__gguf_put_u32(o, (uint32_t)type);
}

static void lisa__gguf_kv_u32(lisa__gguf_out *o, const char *key, uint32_t v) {
    lisa__gguf_put_key(o, key, LISA_GGUF_UINT32);
    lisa__gguf_put_u32(o, v);
}

static void lisa__gguf_kv_f32(lisa__gguf_out *o, const char *key, float v) {
    lisa__gguf_put_key(o, key, LISA_GGUF_FLOAT32);
    lisa__gguf_put_u32(o, lisa__f32_bits(v));
}

static void lisa__gguf_kv_str(lisa__gguf_out *o, const char *key, const char *v) {
    lisa__gguf_put_key(o, key, LISA_GGUF_STRING);
    lisa__gguf_put_str(o, v, strlen(v));
}

/* Key/value pair i of g as it is there: the value's bytes straight from g's
   buffer (an array's elements, strings' inline lengths and nested arrays
   included, follow its element type and count). */
static void lisa__gguf_kv_copy(lisa__gguf_out *o, const lisa_gguf *g, int i) {
    const lisa_gguf_kv *kv = &g->kv[i];
    lisa__gguf_put_str(o, kv->key, kv->key_len);
    lisa__gguf_put_u32(o, (uint32_t)kv->type);
    if (kv->type == LISA_GGUF_STRING) lisa__gguf_put_u64(o, (uint64_t)kv->value_size);
    if (kv->type == LISA_GGUF_ARRAY) {
        lisa__gguf_put_u32(o, (uint32_t)kv->elem_type);
        lisa__gguf_put_u64(o, kv->count);
    }
    lisa__gguf_put(o, g->buffer + kv->value, kv->value_size);
}

/* The general.* keys the model writer sets itself; carry's copies are not written. */
static int lisa__gguf_writer_sets(const char *key) {
    static const char *const own[] = {"general.architecture", "general.type",         "general.name",
                                      "general.file_type",    "general.quantization_version", "general.alignment"};
    size_t k;
    for (k = 0; k < sizeof own / sizeof *own; k++)
        if (strcmp(key, own[k]) == 0) return 1;
    return 0;
}

/* Key `key` from carry when it has it, else the string def. */
static void lisa__gguf_kv_carried_or(lisa__gguf_out *o, const lisa_gguf *carry, const char *key, const char *def) {
    int i = carry ? lisa_gguf_find(carry, key) : -1;
    if (i >= 0) lisa__gguf_kv_copy(o, carry, i);
    else lisa__gguf_kv_str(o, key, def);
}

/* carry's keys under prefix (general. or tokenizer.), in its order, less
   the writer's own; with o NULL only counts them. */
static int lisa__gguf_kv_carry(lisa__gguf_out *o, const lisa_gguf *carry, const char *prefix) {
    int i, n = 0;
    for (i = 0; carry && i < carry->n_kv; i++) {
        const char *key = carry->kv[i].key;
        if (strncmp(key, prefix, strlen(prefix)) != 0 || lisa__gguf_writer_sets(key)) continue;
        if (o) lisa__gguf_kv_copy(o, carry, i);
        n++;
    }
    return n;
}

/* The tensors in the order they are written, as lisa_model_tensor() indices:
   token_embd, each layer's attn_norm, attn_q, attn_k, attn_v, attn_output,
   ffn_gate, ffn_up, ffn_down, ffn_norm, then output_norm and (untied) output;
   -1 past the last. */
static int lisa__gguf_write_order(const lisa_config *c, int k) {
    static const unsigned char in_layer[9] = {0, 1, 2, 3, 4, 6, 8, 7, 5};
    int n_layer = 9 * c->n_layers;
    if (k == 0) return 0;
    if (k <= n_layer) return 1 + 9 * ((k - 1) / 9) + in_layer[(k - 1) % 9];
    if (k == n_layer + 1) return n_layer + 1;
    if (k == n_layer + 2 && !c->tied_head) return n_layer + 2;
    return -1;
}

/* The ggml type tensor p is written in: norms F32; a Q8_0 matrix whose rows
   are not whole blocks of 32 F16, as gguf-py's quantize refuses it and
   convert_hf_to_gguf.py falls back to F16. */
static uint32_t lisa__gguf_tensor_type(const lisa_param *p, uint32_t type) {
    if (p->tensor.ndim == 1) return 0;
    if (type == 8 && p->tensor.shape[1] % 32 != 0) return 1;
    return type;
}

static uint64_t lisa__gguf_tensor_bytes(const lisa_param *p, uint32_t type) {
    uint32_t be = 1, bb = 4;
    lisa_ggml_type_size(type, &be, &bb);
    return (uint64_t)lisa_tensor_numel(&p->tensor) / be * bb;
}

static uint64_t lisa__gguf_pad(uint64_t n) {
    return (LISA_GGUF_DEFAULT_ALIGNMENT - n % LISA_GGUF_DEFAULT_ALIGNMENT) % LISA_GGUF_DEFAULT_ALIGNMENT;
}

static void lisa__gguf_put_zeros(lisa__gguf_out *o, uint64_t n) {
    static const unsigned char zeros[LISA_GGUF_DEFAULT_ALIGNMENT] = {0};
    lisa__gguf_put(o, zeros, (size_t)n);
}

/* The metadata: general.* (carry's among them), llama.*, then carry's tokenizer.*;
   in convert_hf_to_gguf.py's order. */
static void lisa__gguf_put_metadata(lisa__gguf_out *o, const lisa_config *c, uint32_t file_type,
                                    const lisa_gguf *carry) {
    lisa__gguf_kv_str(o, "general.architecture", "llama");
    lisa__gguf_kv_carried_or(o, carry, "general.type", "model");
    lisa__gguf_kv_carried_or(o, carry, "general.name", "lisa");
    lisa__gguf_kv_carry(o, carry, "general.");
    lisa__gguf_kv_u32(o, "llama.block_count", (uint32_t)c->n_layers);
    lisa__gguf_kv_u32(o, "llama.context_length", (uint32_t)c->max_seq_len);
    lisa__gguf_kv_u32(o, "llama.embedding_length", (uint32_t)c->dim);
    lisa__gguf_kv_u32(o, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    lisa__gguf_kv_u32(o, "llama.attention.head_count", (uint32_t)c->n_heads);
    lisa__gguf_kv_u32(o, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    lisa__gguf_kv_f32(o, "llama.rope.freq_base", c->rope_theta);
    lisa__gguf_kv_f32(o, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    lisa__gguf_kv_u32(o, "general.file_type", file_type);
    lisa__gguf_kv_u32(o, "llama.vocab_size", (uint32_t)c->vocab_size);
    lisa__gguf_kv_u32(o, "llama.rope.dimension_count", (uint32_t)(c->dim / c->n_heads));
    lisa__gguf_kv_u32(o, "general.quantization_version", 2);   /* gguf-py's GGML_QUANT_VERSION */
    lisa__gguf_kv_carry(o, carry, "tokenizer.");
}

#define LISA__GGUF_OWN_KEYS 15   /* what lisa__gguf_put_metadata() writes besides carry's general.* and tokenizer.* */

/* The tensor infos: name, dims ({in, out} for an [out, in] matrix), type, offset. */
static void lisa__gguf_put_tensor_infos(lisa__gguf_out *o, const lisa_model *m, uint32_t type) {
    uint64_t offset = 0;
    int k, idx;
    for (k = 0; (idx = lisa__gguf_write_order(&m->config, k)) >= 0; k++) {
        lisa_param p = lisa_model_tensor(m, idx);
        uint32_t t = lisa__gguf_tensor_type(&p, type);
        uint64_t bytes = lisa__gguf_tensor_bytes(&p, t);
        char name[96];
        lisa__tensor_name(&lisa__format_gguf, &m->config, idx, name, sizeof name);
        lisa__gguf_put_str(o, name, strlen(name));
        lisa__gguf_put_u32(o, (uint32_t)p.tensor.ndim);
        if (p.tensor.ndim == 2) lisa__gguf_put_u64(o, (uint64_t)p.tensor.shape[1]);
        lisa__gguf_put_u64(o, (uint64_t)p.tensor.shape[0]);
        lisa__gguf_put_u32(o, t);
        lisa__gguf_put_u64(o, offset);
        offset += bytes + lisa__gguf_pad(bytes);
    }
}

/* Each tensor converted 1024 elements at a time (whole Q8_0 blocks, as rows
   are), each padded to the alignment. */
static void lisa__gguf_put_tensor_data(lisa__gguf_out *o, const lisa_model *m, uint32_t type) {
    unsigned char buf[4096];
    int k, idx;
    for (k = 0; (idx = lisa__gguf_write_order(&m->config, k)) >= 0; k++) {
        lisa_param p = lisa_model_tensor(m, idx);
        uint32_t t = lisa__gguf_tensor_type(&p, type), be = 1, bb = 4;
        size_t n = lisa_tensor_numel(&p.tensor), i;
        lisa_ggml_type_size(t, &be, &bb);
        for (i = 0; i < n; i += 1024) {
            size_t chunk = LISA__MIN(n - i, (size_t)1024);
            lisa_ggml_quantize(t, p.tensor.data + i, buf, (uint64_t)chunk);
            lisa__gguf_put(o, buf, chunk / be * bb);
        }
        lisa__gguf_put_zeros(o, lisa__gguf_pad(lisa__gguf_tensor_bytes(&p, t)));
    }
}

/* general.file_type (llama.cpp's LlamaFileType) of a ggml type this writer
   writes matrices in; 0 for another type. */
static int lisa__gguf_file_type(uint32_t type, uint32_t *file_type) {
    switch (type) {
    case 0: *file_type = 0; return 1;    /* ALL_F32 */
    case 1: *file_type = 1; return 1;    /* MOSTLY_F16 */
    case 8: *file_type = 7; return 1;    /* MOSTLY_Q8_0 */
    case 30: *file_type = 32; return 1;  /* MOSTLY_BF16 */
    default: return 0;
    }
}

/* carry's vocabulary, when it has one, must be the model's: the file would not load otherwise. */
static lisa_result lisa__gguf_check_carry(const lisa_model *m, const lisa_gguf *carry, const char *path,
                                          lisa_error *err) {
    int i = carry ? lisa_gguf_find(carry, "tokenizer.ggml.tokens") : -1;
    if (i >= 0 && (carry->kv[i].type != LISA_GGUF_ARRAY || carry->kv[i].count != (uint64_t)m->config.vocab_size))
        return lisa__fail(err, LISA_ERR_INVALID,
                          "%s: the tokenizer.ggml.tokens to carry (%s, %.0f of them) are not the model's %d tokens", path,
                          lisa_gguf_type_name(carry->kv[i].type), (double)carry->kv[i].count, m->config.vocab_size);
    return LISA_OK;
}

LISADEF lisa_result lisa_model_save_gguf(const lisa_model *m, const char *path, uint32_t type,
                                         const struct lisa_gguf *carry, lisa_error *err) {
    lisa__writer w;
    lisa__gguf_out o;
    uint32_t file_type = 0;
    int n_tensors = 9 * m->config.n_layers + 2 + !m->config.tied_head;
    lisa_result res;
    if (!lisa__gguf_file_type(type, &file_type)) {
        const char *tn = lisa_ggml_type_name(type);
        return lisa__fail(err, LISA_ERR_INVALID, "%s: ggml type %s (%u) is not one a model is written in (F32, F16, BF16, Q8_0)",
                          path, tn ? tn : "unknown", (unsigned)type);
    }
    if ((res = lisa__gguf_check_carry(m, carry, path, err)) != LISA_OK) return res;
    if ((res = lisa__writer_open(&w, path, err)) != LISA_OK) return res;
    memset(&o, 0, sizeof o);
    o.w = &w;
    lisa__gguf_put(&o, "GGUF", 4);
    lisa__gguf_put_u32(&o, 3);
    lisa__gguf_put_u64(&o, (uint64_t)n_tensors);
    lisa__gguf_put_u64(&o, (uint64_t)(LISA__GGUF_OWN_KEYS + lisa__gguf_kv_carry(NULL, carry, "general.") +
                                      lisa__gguf_kv_carry(NULL, carry, "tokenizer.")));
    lisa__gguf_put_metadata(&o, &m->config, file_type, carry);
    lisa__gguf_put_tensor_infos(&o, m, type);
    lisa__gguf_put_zeros(&o, lisa__gguf_pad(o.size));
    lisa__gguf_put_tensor_data(&o, m, type);
    return lisa__writer_close(&w, err);
}

/* --- GGUF tokenizer metadata from a Hugging Face tokenizer ---------------- */

/* convert_hf_to_gguf.py's does_token_look_special: added tokens it makes
   control tokens although tokenizer.json does not mark them special. */
static int lisa__gguf_looks_special(const char *s, size_t n) {
    static const char *const exact[4] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    static const char fw_open[] = "<\xEF\xBD\x9C", fw_close[] = "\xEF\xBD\x9C>";   /* "<｜", "｜>" */
    int k;
    for (k = 0; k < 4; k++)
        if (n == strlen(exact[k]) && memcmp(s, exact[k], n) == 0) return 1;
    return (n >= 2 && memcmp(s, "<|", 2) == 0 && memcmp(s + n - 2, "|>", 2) == 0) ||
           (n >= 4 && memcmp(s, fw_open, 4) == 0 && memcmp(s + n - 4, fw_close, 4) == 0) ||
           (n >= 7 && memcmp(s, "<unused", 7) == 0 && s[n - 1] == '>');
}

/* The tokenizer.ggml.pre name llama.cpp splits as these pre-tokenizer stages
   do (lisa__pretok_from_gguf() read backwards, by the names
   convert_hf_to_gguf.py gives), or NULL. */
static const char *lisa__gguf_pre_name(const lisa__bpe_settings *set) {
    static const char *const names[] = {"gpt-2", "smollm", "llama-bpe", "qwen2",  "qwen35",
                                        "gpt-4o", "tekken", "deepseek-v3", "falcon", "default"};
    int kinds[LISA__BPE_MAX_STEPS + 1], n = 0, i, k;
    for (i = 0; i < set->n_pretok; i++) {
        const lisa__bpe_step *st = &set->pretok[i];
        if (st->op == LISA__BPE_P_SCAN || (st->op == LISA__BPE_P_BYTELEVEL && st->kind)) kinds[n++] = st->kind;
        else if (st->op != LISA__BPE_P_BYTELEVEL) return NULL;
    }
    for (k = 0; k < (int)(sizeof names / sizeof *names); k++) {
        int want[4], m = lisa__pretok_from_gguf(names[k], strlen(names[k]), want);
        for (i = 0; i < m && i < n && want[i] == kinds[i]; i++) {}
        if (m == n && i == n) return names[k];
    }
    return NULL;
}

/* What GGUF's gpt2 model cannot say about a tokenizer: an error naming it. */
static lisa_result lisa__gguf_gpt2_check(const lisa__bpe_builder *b, const char **pre, lisa_error *err) {
    const lisa__bpe_settings *set = &b->set;
    int i, scanners[LISA__BPE_MAX_STEPS], n = 0;
    char list[160];
    size_t at = 0;
    if (!set->byte_level || set->byte_fallback || set->n_pretok == 0 ||
        set->pretok[set->n_pretok - 1].op != LISA__BPE_P_BYTELEVEL)
        return lisa__fail(err, LISA_ERR_FORMAT,
                          "%s: not a byte-level BPE tokenizer (%s): only those (tokenizer.ggml.model gpt2) are "
                          "written as GGUF metadata; SentencePiece-style vocabularies are not supported",
                          b->name, set->byte_fallback ? "byte_fallback" : "no ByteLevel pre-tokenizer last");
    if (set->pretok[set->n_pretok - 1].flag)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: pre_tokenizer ByteLevel with add_prefix_space true has no GGUF gpt2 equivalent",
                          b->name);
    for (i = 0; i < set->n_norm; i++)   /* llama.cpp normalizes nothing; convert drops an NFC step too */
        if (set->norm[i].op != LISA__BPE_N_NFC)
            return lisa__fail(err, LISA_ERR_FORMAT, "%s: a normalizer other than NFC has no GGUF gpt2 equivalent", b->name);
    if ((*pre = lisa__gguf_pre_name(set)) != NULL) return LISA_OK;
    for (i = 0; i < set->n_pretok; i++)
        if (set->pretok[i].op == LISA__BPE_P_SCAN || set->pretok[i].kind) scanners[n++] = set->pretok[i].kind;
    list[0] = 0;
    for (i = 0; i < n && at < sizeof list - 20; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", lisa__pretok_name(scanners[i]));
    return lisa__fail(err, LISA_ERR_FORMAT, "%s: no tokenizer.ggml.pre name splits as its pre-tokenizer does (%s)", b->name,
                      n ? list : "no regex");
}

static void lisa__gguf_array_head(lisa__gguf_out *o, const char *key, lisa_gguf_type elem, uint64_t count) {
    lisa__gguf_put_key(o, key, LISA_GGUF_ARRAY);
    lisa__gguf_put_u32(o, (uint32_t)elem);
    lisa__gguf_put_u64(o, count);
}

static void lisa__gguf_kv_bool(lisa__gguf_out *o, const char *key, int v) {
    unsigned char c = (unsigned char)(v != 0);
    lisa__gguf_put_key(o, key, LISA_GGUF_BOOL);
    lisa__gguf_put(o, &c, 1);
}

/* A merge part, a space in it as U+0120 (gguf-py's spelling of merges with spaces). */
static size_t lisa__gguf_merge_part(lisa__gguf_out *o, const char *s, size_t n) {
    size_t i, len = 0;
    for (i = 0; i < n; i++) {
        if (s[i] == ' ' && o) lisa__gguf_put(o, "\xC4\xA0", 2);
        else if (o) lisa__gguf_put(o, s + i, 1);
        len += s[i] == ' ' ? 2 : 1;
    }
    return len;
}

/* The builder's vocabulary as convert_hf_to_gguf.py writes a gpt2 tokenizer
   (a metadata-only GGUF, version 3). */
static void lisa__gguf_put_gpt2(lisa__gguf_out *o, const lisa__bpe_builder *b, const char *pre) {
    const lisa__bpe_settings *set = &b->set;
    const int ids[4] = {set->bos_id, set->eos_id, set->unk_id, set->pad_id};
    static const char *const id_keys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    uint64_t n_kv = 6 + (b->n_merges > 0) + (set->add_eos != 0) + (b->chat_len > 0);
    int i, k;
    for (k = 0; k < 4; k++) n_kv += ids[k] >= 0;
    lisa__gguf_put(o, "GGUF", 4);
    lisa__gguf_put_u32(o, 3);
    lisa__gguf_put_u64(o, 0);
    lisa__gguf_put_u64(o, n_kv);
    lisa__gguf_kv_str(o, "tokenizer.ggml.model", "gpt2");
    lisa__gguf_kv_str(o, "tokenizer.ggml.pre", pre);
    lisa__gguf_array_head(o, "tokenizer.ggml.tokens", LISA_GGUF_STRING, (uint64_t)b->n_tokens);
    for (i = 0; i < b->n_tokens; i++) {
        char pad[32];
        if (b->tokens[i].given) {
            lisa__gguf_put_str(o, b->pool + b->tokens[i].str, b->tokens[i].len);
        } else {   /* an id the file leaves out: convert's filler */
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            lisa__gguf_put_str(o, pad, strlen(pad));
        }
    }
    lisa__gguf_array_head(o, "tokenizer.ggml.token_type", LISA_GGUF_INT32, (uint64_t)b->n_tokens);
    for (i = 0; i < b->n_tokens; i++) {
        const lisa__bpe_btoken *t = &b->tokens[i];
        uint32_t type = 1;   /* normal */
        if (!t->given) type = 4;
        else if (t->flags & LISA__BPE_ADDED)
            type = (t->flags & LISA__BPE_SPECIAL) || lisa__gguf_looks_special(b->pool + t->str, t->len) ? 3 : 4;
        lisa__gguf_put_u32(o, type);   /* 3 control, 4 user-defined */
    }
    if (b->n_merges > 0) {
        lisa__gguf_array_head(o, "tokenizer.ggml.merges", LISA_GGUF_STRING, (uint64_t)b->n_merges);
        for (i = 0; i < b->n_merges; i++) {
            const lisa__bpe_bmerge *mg = &b->merges[i];
            size_t len = lisa__gguf_merge_part(NULL, b->pool + mg->str[0], mg->len[0]) + 1 +
                         lisa__gguf_merge_part(NULL, b->pool + mg->str[1], mg->len[1]);
            lisa__gguf_put_u64(o, (uint64_t)len);
            lisa__gguf_merge_part(o, b->pool + mg->str[0], mg->len[0]);
            lisa__gguf_put(o, " ", 1);
            lisa__gguf_merge_part(o, b->pool + mg->str[1], mg->len[1]);
        }
    }
    for (k = 0; k < 4; k++)
        if (ids[k] >= 0) lisa__gguf_kv_u32(o, id_keys[k], (uint32_t)ids[k]);
    lisa__gguf_kv_bool(o, "tokenizer.ggml.add_bos_token", set->add_bos);
    if (set->add_eos) lisa__gguf_kv_bool(o, "tokenizer.ggml.add_eos_token", 1);
    lisa__gguf_kv_bool(o, "tokenizer.ggml.add_space_prefix", 0);
    if (b->chat_len > 0) {
        lisa__gguf_put_key(o, "tokenizer.chat_template", LISA_GGUF_STRING);
        lisa__gguf_put_str(o, b->pool + b->chat, b->chat_len);
    }
}

/* tokenizer.json (and tokenizer_config.json, chat template) texts into g. */
static lisa_result lisa__gguf_from_hf_texts(lisa_gguf *g, const char *json, size_t n_json, const char *cfg_text,
                                            size_t n_cfg, const char *chat, size_t n_chat, const char *name,
                                            const lisa_allocator *al, lisa_error *err) {
    lisa_json j, cfg;
    lisa__bpe_builder b;
    lisa__gguf_out o;
    const char *pre = NULL;
    unsigned char *buf = NULL;
    size_t bytes = 0, size = 0;
    lisa_result r;
    char cname[512];
    memset(&cfg, 0, sizeof cfg);
    lisa__bpe_builder_init(&b, name, al);
    snprintf(cname, sizeof cname, "%.400s (tokenizer_config.json)", name);
    r = lisa_json_parse(&j, json, n_json, name, al, err);
    if (r == LISA_OK && cfg_text) r = lisa_json_parse(&cfg, cfg_text, n_cfg, cname, al, err);
    if (r == LISA_OK) r = lisa__hft_load(&b, &j, cfg_text ? &cfg : NULL, name, err);
    if (r == LISA_OK && chat && b.chat_len == 0) r = lisa__bpe_builder_chat_template(&b, chat, n_chat, err);
    if (r == LISA_OK) r = lisa__gguf_gpt2_check(&b, &pre, err);
    if (r == LISA_OK) {   /* first count the bytes, then write them */
        memset(&o, 0, sizeof o);
        lisa__gguf_put_gpt2(&o, &b, pre);
        size = (size_t)o.size;
        if (!(buf = (unsigned char *)lisa__alloc(al, size, &bytes)))
            r = lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %.0f bytes of metadata", name, (double)size);
    }
    if (r == LISA_OK) {
        memset(&o, 0, sizeof o);
        o.buf = buf;
        lisa__gguf_put_gpt2(&o, &b, pre);
        r = lisa_gguf_parse_memory(g, buf, size, name, al, err);
    }
    if (r == LISA_OK) {
        g->owned = buf;   /* lisa_gguf_free() frees it */
        g->bytes += bytes;
    } else if (buf) {
        lisa__free(al, buf, size, &bytes);
    }
    lisa__bpe_builder_free(&b);
    lisa_json_free(&cfg);
    lisa_json_free(&j);
    return r;
}

LISADEF lisa_result lisa_gguf_tokenizer_from_hf(lisa_gguf *g, const char *path, const lisa_allocator *a,
                                                lisa_error *err) {
    lisa_allocator al = lisa__allocator_or_default(a);
    char file[4096], dir[4096];
    const char *json_path = path, *slash;
    char *json = NULL, *cfg = NULL, *chat = NULL;
    size_t bytes = 0, n_json = 0, n_cfg = 0, n_chat = 0;
    lisa_result res;
    memset(g, 0, sizeof *g);
    g->allocator = al;
    if (lisa__path_join(file, sizeof file, path, "tokenizer.json", NULL) == LISA_OK && lisa__file_exists(file)) {
        json_path = file;
        snprintf(dir, sizeof dir, "%s", path);
    } else {   /* a tokenizer.json file: its directory may hold the rest */
        slash = strrchr(path, '/');
        if (slash && (size_t)(slash - path) < sizeof dir) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        else snprintf(dir, sizeof dir, ".");
    }
    res = lisa__read_text(json_path, &al, LISA__HF_TOKENIZER_MAX, &json, &n_json, &bytes, err);
    if (res == LISA_OK) res = lisa__hf_tok_side_file(dir, "tokenizer_config.json", &al, &cfg, &n_cfg, &bytes, err);
    if (res == LISA_OK) res = lisa__hf_tok_side_file(dir, "chat_template.jinja", &al, &chat, &n_chat, &bytes, err);
    if (res == LISA_OK) res = lisa__gguf_from_hf_texts(g, json, n_json, cfg, n_cfg, chat, n_chat, json_path, &al, err);
    if (json) lisa__free(&al, json, n_json + 1, &bytes);
    if (cfg) lisa__free(&al, cfg, n_cfg + 1, &bytes);
    if (chat) lisa__free(&al, chat, n_chat + 1, &bytes);
    if (res != LISA_OK) {
        lisa_gguf_free(g);
        return res;
    }
    lisa__ok(err);
    return LISA_OK;
}

/* The one place that decides what a model path is. */
typedef enum lisa__model_kind { LISA__MODEL_LLAMA2C, LISA__MODEL_HF, LISA__MODEL_GGUF } lisa__model_kind;

static lisa__model_kind lisa__model_kind_of(const char *path) {
    char cfg[4096], magic[4] = {0};
    size_t len = strlen(path);
    FILE *f;
    if (lisa__path_join(cfg, sizeof cfg, path, "config.json", NULL) == LISA_OK && lisa__file_exists(cfg))
        return LISA__MODEL_HF;
    if (len >= 5 && strcmp(path + len - 5, ".gguf") == 0) return LISA__MODEL_GGUF;
    f = fopen(path, "rb");
    if (f) {
        size_t got = fread(magic, 1, 4, f);
        fclose(f);
        if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return LISA__MODEL_GGUF;
    }
    return LISA__MODEL_LLAMA2C;
}

LISADEF lisa_result lisa_model_load(lisa_model *m, const char *path, const lisa_allocator *a,
                                    lisa_error *err) {
    switch (lisa__model_kind_of(path)) {
    case LISA__MODEL_HF: return lisa_model_load_hf(m, path, a, err);
    case LISA__MODEL_GGUF: return lisa_model_load_gguf(m, path, a, err);
    default: return lisa_model_load_llama2c(m, path, a, err);
    }
}

LISADEF lisa_result lisa_model_read_config(const char *path, lisa_config *c, const lisa_allocator *a,
                                           lisa_error *err) {
    char cfg[4096];
    lisa__l2c_header h;
    lisa__reader r;
    lisa_gguf g;
    lisa_result res;
    memset(c, 0, sizeof *c);
    switch (lisa__model_kind_of(path)) {
    case LISA__MODEL_HF:
        res = lisa__path_join(cfg, sizeof cfg, path, "config.json", err);
        return res == LISA_OK ? lisa__hf_config_file(c, cfg, a, err) : res;
    case LISA__MODEL_GGUF:
        res = lisa_gguf_read_metadata(&g, path, a, err);
        if (res == LISA_OK) res = lisa__gguf_config(&g, c, err);
        lisa_gguf_free(&g);
        if (res == LISA_OK) lisa__ok(err);
        return res;
    default: break;
    }
    /* llama2.c: the header of either kind, checked against the file's size */
    if ((res = lisa__open_reader(&r, path, err)) != LISA_OK) return res;
    res = lisa__l2c_read_header(&r, 0, &h, path, err);
    fclose(r.file);
    if (res != LISA_OK) return res;
    *c = h.config;
    lisa__ok(err);
    return LISA_OK;
}

#endif /* LISA_NO_STDIO */
/* ------------------------------------------------------------------------- */
/* Instruction data                                                           */
/* ------------------------------------------------------------------------- */

/* Every example's tokens, each text encoded once, kept until the rows are
   laid out: example i is tokens ends[i - 1] .. ends[i] - 1 (from 0 for i = 0). */
typedef struct lisa__sft_store {
    int *ids;
    unsigned char *loss;   /* 1: the token carries loss as a target */
    size_t n, cap;
    size_t *ends;
    size_t n_ex, cap_ex;
    lisa_allocator allocator;
    size_t bytes;
} lisa__sft_store;

static void lisa__sft_store_free(lisa__sft_store *s) {
    lisa__free(&s->allocator, s->ids, s->cap * sizeof(int), &s->bytes);
    lisa__free(&s->allocator, s->loss, s->cap, &s->bytes);
    lisa__free(&s->allocator, s->ends, s->cap_ex * sizeof(size_t), &s->bytes);
    s->ids = NULL;
    s->loss = NULL;
    s->ends = NULL;
    s->n = s->cap = s->n_ex = s->cap_ex = 0;
}

/* Room for `more` tokens after the n there are; 0 when out of memory. */
static int lisa__sft_reserve(lisa__sft_store *s, size_t more) {
    size_t cap;
    int *ids;
    unsigned char *loss;
    if (more > SIZE_MAX / 8 / sizeof(int) - s->n) return 0;
    if (s->n + more <= s->cap) return 1;
    cap = LISA__MAX(LISA__MAX(2 * s->cap, s->n + more), (size_t)1024);
    ids = (int *)lisa__alloc(&s->allocator, cap * sizeof(int), &s->bytes);
    loss = (unsigned char *)lisa__alloc(&s->allocator, cap, &s->bytes);
    if (!ids || !loss) {
        lisa__free(&s->allocator, ids, cap * sizeof(int), &s->bytes);
        lisa__free(&s->allocator, loss, cap, &s->bytes);
        return 0;
    }
    if (s->n) {
        memcpy(ids, s->ids, s->n * sizeof(int));
        memcpy(loss, s->loss, s->n);
    }
    lisa__free(&s->allocator, s->ids, s->cap * sizeof(int), &s->bytes);
    lisa__free(&s->allocator, s->loss, s->cap, &s->bytes);
    s->ids = ids;
    s->loss = loss;
    s->cap = cap;
    return 1;
}

/* Closes the example made of the tokens added since the last one. */
static int lisa__sft_end_example(lisa__sft_store *s) {
    if (s->n_ex == s->cap_ex) {
        size_t cap = LISA__MAX(2 * s->cap_ex, (size_t)64);
        size_t *ends = (size_t *)lisa__alloc(&s->allocator, cap * sizeof(size_t), &s->bytes);
        if (!ends) return 0;
        if (s->n_ex) memcpy(ends, s->ends, s->n_ex * sizeof(size_t));
        lisa__free(&s->allocator, s->ends, s->cap_ex * sizeof(size_t), &s->bytes);
        s->ends = ends;
        s->cap_ex = cap;
    }
    s->ends[s->n_ex++] = s->n;
    return 1;
}

/* Encodes text onto the store's tokens, each marked with `loss`. */
static lisa_result lisa__sft_encode(lisa__sft_store *s, const lisa_tokenizer *tok, const char *text, size_t len,
                                    int bos, int eos, int loss, lisa_error *err) {
    size_t got = 0;
    lisa_result r = lisa_tokenizer_encode(tok, text, len, bos, eos, s->ids + s->n, s->cap - s->n, &got, err);
    if (r == LISA_ERR_INVALID && got > s->cap - s->n) {
        /* more than len + 3 ids (a BPE normalizer that lengthens the text,
           with byte fallback): the tokenizer said how many */
        if (!lisa__sft_reserve(s, got))
            return lisa__fail(err, LISA_ERR_NOMEM, "tokenizer: out of memory for %lu ids", (unsigned long)got);
        r = lisa_tokenizer_encode(tok, text, len, bos, eos, s->ids + s->n, s->cap - s->n, &got, err);
    }
    if (r != LISA_OK) return r;
    memset(s->loss + s->n, loss, got);
    s->n += got;
    return LISA_OK;
}

/* A prompt/response pair without a chat template: BOS, the prompt, the
   response, EOS, the prompt and the response encoded separately. */
static lisa_result lisa__sft_add_pair(lisa__sft_store *s, const lisa_tokenizer *tok, const char *prompt,
                                      size_t prompt_len, const char *response, size_t response_len,
                                      const char *name, lisa_error *err) {
    lisa_result r;
    if (prompt_len > SIZE_MAX / 4 || response_len > SIZE_MAX / 4 || !lisa__sft_reserve(s, prompt_len + response_len + 6))
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory encoding an example", name);
    if ((r = lisa__sft_encode(s, tok, prompt, prompt_len, 1, 0, 0, err)) != LISA_OK ||
        (r = lisa__sft_encode(s, tok, response, response_len, 0, 1, 1, err)) != LISA_OK)
        return r;
    if (!lisa__sft_end_example(s)) return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory encoding an example", name);
    return LISA_OK;
}

/* Where rows are written: counting only (d->inputs NULL) or for real. */
typedef struct lisa__sft_writer {
    lisa_sft_data *d;
    int pack;
    size_t row, col;       /* next free position */
} lisa__sft_writer;

static void lisa__sft_put(lisa__sft_writer *w, int input, int target) {
    lisa_sft_data *d = w->d;
    if (d->inputs) {
        d->inputs[w->row * d->seq + w->col] = input;
        d->targets[w->row * d->seq + w->col] = target;
    }
    if (target >= 0) d->n_counted++;
    if (++w->col == (size_t)d->seq) {
        w->col = 0;
        w->row++;
    }
}

/* Lays one example's n tokens into rows: inputs ids[0..n-2], targets
   ids[1..n-1] where they carry loss. */
static void lisa__sft_place(lisa__sft_writer *w, const int *ids, const unsigned char *loss, size_t n, int eos_id) {
    lisa_sft_data *d = w->d;
    size_t cap = (size_t)d->seq + 1, first = 0, m, i;
    while (first < n && !loss[first]) first++;
    if (first == n || (!w->pack && first >= cap)) { /* no target left to learn */
        d->n_skipped++;
        return;
    }
    d->n_examples++;
    if (!w->pack && n > cap) d->n_truncated++;
    m = w->pack ? n : LISA__MIN(n, cap);
    if (!w->pack && w->col != 0) { /* padding: every example starts a row */
        w->col = 0;
        w->row++;
    }
    for (i = 0; i + 1 < m; i++) lisa__sft_put(w, ids[i], loss[i + 1] ? ids[i + 1] : LISA_IGNORE);
    if (!w->pack)
        while (w->col != 0) lisa__sft_put(w, eos_id, LISA_IGNORE);
}

/* Lays out every stored example: counts the rows (d->inputs NULL) or fills them. */
static void lisa__sft_layout(lisa_sft_data *d, const lisa__sft_store *s, int pack, int eos_id) {
    lisa__sft_writer w;
    size_t k, begin = 0;
    memset(&w, 0, sizeof w);
    w.d = d;
    w.pack = pack;
    d->n_examples = d->n_truncated = d->n_skipped = d->n_counted = 0;
    for (k = 0; k < s->n_ex; k++) {
        lisa__sft_place(&w, s->ids + begin, s->loss + begin, s->ends[k] - begin, eos_id);
        begin = s->ends[k];
    }
    d->n_rows = w.row + (w.col ? 1 : 0);
}

/* "name: line L" (JSON Lines) or "name: instance K" (LMFlow), for messages. */
static void lisa__sft_where(char *where, size_t size, const char *name, long line) {
    if (line > 0) snprintf(where, size, "%s: line %ld", name, line);
    else snprintf(where, size, "%s: instance %ld", name, -line);
}

/* The string member `key` of object `node`, or an error naming where. */
static lisa_result lisa__sft_field(const lisa_json *j, int node, const char *key, const char *name, long line,
                                   const char **s, size_t *len, lisa_error *err) {
    char where[300];
    *s = lisa_json_string(j, lisa_json_get(j, node, key), len);
    if (*s) return LISA_OK;
    lisa__sft_where(where, sizeof where, name, line);
    return lisa__fail(err, LISA_ERR_FORMAT, "%s: expected a string \"%s\"", where, key);
}

/* What the reader hands examples to: pairs to `pair`, conversations to
   `chat`; with no `pair`, pairs go to `chat` as one-turn conversations; with
   no `chat`, a conversation is an error asking for a chat template. */
typedef struct lisa__sft_reader {
    const char *name;
    const lisa_allocator *a;
    lisa_sft_example_fn pair;
    lisa_sft_chat_fn chat;
    void *user;
} lisa__sft_reader;

/* The chat callback; its failure is said to be at `where` (a template
   refusing the conversation is a format error of the data). */
static lisa_result lisa__sft_chat_call(const lisa__sft_reader *rd, long line, const lisa_chat_message *m, int n,
                                       lisa_error *err) {
    char where[300], msg[sizeof err->message];
    lisa_result r = rd->chat(rd->user, m, n, err);
    if (r == LISA_OK) return r;
    if (r == LISA_ERR_INVALID) r = LISA_ERR_FORMAT;
    if (!err) return r;
    lisa__sft_where(where, sizeof where, rd->name, line);
    snprintf(msg, sizeof msg, "%s", err->message);
    return lisa__fail(err, r, "%s: %s", where, msg);
}

static lisa_result lisa__sft_pair(const lisa__sft_reader *rd, long line, const char *p, size_t pl, const char *q,
                                  size_t ql, lisa_error *err) {
    lisa_chat_message m[2];
    if (rd->pair) return rd->pair(rd->user, p, pl, q, ql, err);
    m[0].role = LISA_CHAT_USER;
    m[0].content = p;
    m[0].content_len = pl;
    m[1].role = LISA_CHAT_ASSISTANT;
    m[1].content = q;
    m[1].content_len = ql;
    return lisa__sft_chat_call(rd, line, m, 2, err);
}

/* One message object of a conversation into *m. */
static lisa_result lisa__sft_message(const lisa_json *j, int e, int k, const char *where, lisa_chat_message *m,
                                     lisa_error *err) {
    size_t role_len;
    const char *role = lisa_json_string(j, lisa_json_get(j, e, "role"), &role_len);
    int calls = lisa_json_get(j, e, "tool_calls");
    if (lisa_json_type_of(j, e) != LISA_JSON_OBJECT)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: message %d: expected an object {\"role\": ..., \"content\": ...}", where, k);
    if (!role) return lisa__fail(err, LISA_ERR_FORMAT, "%s: message %d: expected a string \"role\"", where, k);
    if (lisa__json_is(j, lisa_json_get(j, e, "role"), 0, "system")) m->role = LISA_CHAT_SYSTEM;
    else if (lisa__json_is(j, lisa_json_get(j, e, "role"), 0, "user")) m->role = LISA_CHAT_USER;
    else if (lisa__json_is(j, lisa_json_get(j, e, "role"), 0, "assistant")) m->role = LISA_CHAT_ASSISTANT;
    else
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: message %d: role \"%.40s\" is not supported (system, user, assistant)",
                          where, k, role);
    if (calls >= 0 && lisa_json_type_of(j, calls) != LISA_JSON_NULL &&
        !(lisa_json_type_of(j, calls) == LISA_JSON_ARRAY && lisa_json_length(j, calls) == 0))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: message %d: tool calls are not supported", where, k);
    m->content = lisa_json_string(j, lisa_json_get(j, e, "content"), &m->content_len);
    if (!m->content) return lisa__fail(err, LISA_ERR_FORMAT, "%s: message %d: expected a string \"content\"", where, k);
    return LISA_OK;
}

/* A conversation: the "messages" array of object `node`, after `system` (a
   string node, or -1) when that is not empty, handed to the chat callback. */
static lisa_result lisa__sft_conversation(const lisa__sft_reader *rd, const lisa_json *j, int node, int system,
                                          long line, lisa_error *err) {
    int msgs = lisa_json_get(j, node, "messages"), count = lisa_json_length(j, msgs), n = 0, k, answers = 0;
    size_t bytes = 0, size;
    lisa_chat_message *m;
    lisa_result r = LISA_OK;
    char where[300];
    lisa_allocator al = lisa__allocator_or_default(rd->a);
    lisa__sft_where(where, sizeof where, rd->name, line);
    if (!rd->chat)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: a conversation: conversations need a chat template "
                          "(--chat-template NAME: %s)", where, lisa_chat_template_names());
    if (lisa_json_type_of(j, msgs) != LISA_JSON_ARRAY)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: expected \"messages\": an array of messages", where);
    size = ((size_t)count + 1) * sizeof *m;
    if (!(m = (lisa_chat_message *)lisa__alloc(&al, size, &bytes)))
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory reading a conversation", where);
    if (system >= 0) {
        m[0].role = LISA_CHAT_SYSTEM;
        m[0].content = lisa_json_string(j, system, &m[0].content_len);
        if (m[0].content_len > 0) n = 1;
    }
    for (k = 0; k < count && r == LISA_OK; k++, n++) {
        r = lisa__sft_message(j, lisa_json_at(j, msgs, k), k, where, &m[n], err);
        answers += m[n].role == LISA_CHAT_ASSISTANT;
    }
    if (r == LISA_OK && answers == 0)
        r = lisa__fail(err, LISA_ERR_FORMAT, "%s: no assistant message: nothing to learn from", where);
    if (r == LISA_OK) r = lisa__sft_chat_call(rd, line, m, n, err);
    lisa__free(&al, m, size, &bytes);
    return r;
}

/* An LMFlow conversation instance: "system", "tools" and "messages". */
static lisa_result lisa__sft_lmflow_conversation(const lisa__sft_reader *rd, const lisa_json *j, int e, int k,
                                                 lisa_error *err) {
    int system = lisa_json_get(j, e, "system"), tools = lisa_json_get(j, e, "tools");
    lisa_json_type st = lisa_json_type_of(j, system), tt = lisa_json_type_of(j, tools);
    char where[300];
    lisa__sft_where(where, sizeof where, rd->name, -k);
    if (lisa_json_type_of(j, e) != LISA_JSON_OBJECT)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: expected an object {\"system\": ..., \"messages\": [...]}", where);
    if (st != LISA_JSON_NONE && st != LISA_JSON_NULL && st != LISA_JSON_STRING)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: expected \"system\" to be a string", where);
    if (tt != LISA_JSON_NONE && tt != LISA_JSON_NULL && !(tt == LISA_JSON_ARRAY && lisa_json_length(j, tools) == 0))
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: \"tools\" are not supported (tool use)", where);
    return lisa__sft_conversation(rd, j, e, st == LISA_JSON_STRING ? system : -1, -k, err);
}

/* An LMFlow document: text2text pairs or conversations. */
static lisa_result lisa__sft_lmflow(const lisa__sft_reader *rd, const lisa_json *j, lisa_error *err) {
    int root = lisa_json_root(j), inst = lisa_json_get(j, root, "instances"), type = lisa_json_get(j, root, "type"), k;
    int chat = lisa__json_is(j, type, 0, "conversation");
    lisa_result r = LISA_OK;
    if ((!chat && !lisa__json_is(j, type, 0, "text2text")) || lisa_json_type_of(j, inst) != LISA_JSON_ARRAY)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: expected an LMFlow dataset {\"type\": \"text2text\" or "
                          "\"conversation\", \"instances\": [...]}", rd->name);
    for (k = 0; k < lisa_json_length(j, inst) && r == LISA_OK; k++) {
        int e = lisa_json_at(j, inst, k);
        const char *in, *out;
        size_t in_len, out_len;
        if (chat) {
            r = lisa__sft_lmflow_conversation(rd, j, e, k, err);
        } else if ((r = lisa__sft_field(j, e, "input", rd->name, -k, &in, &in_len, err)) == LISA_OK &&
                   (r = lisa__sft_field(j, e, "output", rd->name, -k, &out, &out_len, err)) == LISA_OK) {
            r = lisa__sft_pair(rd, -k, in, in_len, out, out_len, err);
        }
    }
    return r;
}

/* One JSON Lines object: a pair, or a conversation when it has "messages"
   and no "prompt". */
static lisa_result lisa__sft_line(const lisa__sft_reader *rd, const lisa_json *j, long line, lisa_error *err) {
    int root = lisa_json_root(j);
    const char *p, *q;
    size_t p_len, q_len;
    lisa_result r;
    if (lisa_json_get(j, root, "messages") >= 0 && lisa_json_get(j, root, "prompt") < 0)
        return lisa__sft_conversation(rd, j, root, -1, line, err);
    if ((r = lisa__sft_field(j, root, "prompt", rd->name, line, &p, &p_len, err)) != LISA_OK ||
        (r = lisa__sft_field(j, root, "response", rd->name, line, &q, &q_len, err)) != LISA_OK)
        return r;
    return lisa__sft_pair(rd, line, p, p_len, q, q_len, err);
}

/* Reads every example of instruction data in any layout, in order, stopping
   at the first error (a callback's or the format's). */
static lisa_result lisa__sft_read(const lisa__sft_reader *rd, const char *text, size_t len, lisa_error *err) {
    const char *name = rd->name;
    lisa_json j;
    lisa_result r;
    size_t at;
    long line;
    /* A single JSON document (LMFlow) when the whole text parses as one object with "instances", or with
       "type" and neither "prompt" nor "messages": a one-line JSON Lines file may carry its own "type". */
    r = lisa_json_parse(&j, text, len, name, rd->a, NULL);
    if (r == LISA_ERR_NOMEM) {
        lisa_json_free(&j);
        return lisa__fail(err, r, "%s: out of memory parsing JSON", name);
    }
    r = LISA_OK;
    if (lisa_json_root(&j) >= 0) {
        int root = lisa_json_root(&j);
        int example = lisa_json_get(&j, root, "prompt") >= 0 || lisa_json_get(&j, root, "messages") >= 0;
        if (lisa_json_get(&j, root, "instances") >= 0 || (lisa_json_get(&j, root, "type") >= 0 && !example)) {
            r = lisa__sft_lmflow(rd, &j, err);
            lisa_json_free(&j);
            return r;
        }
        lisa_json_free(&j);
    }
    /* JSON Lines */
    for (at = 0, line = 1; at < len && r == LISA_OK; line++) {
        const char *nl = (const char *)memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, k;
        int blank = 1;
        for (k = at; k < end; k++)
            if (text[k] != ' ' && text[k] != '\t' && text[k] != '\r') blank = 0;
        if (!blank) {
            char where[300];
            snprintf(where, sizeof where, "%s: line %ld", name, line);
            if ((r = lisa_json_parse(&j, text + at, end - at, where, rd->a, err)) == LISA_OK)
                r = lisa__sft_line(rd, &j, line, err);
            lisa_json_free(&j);
        }
        at = end + 1;
    }
    return r;
}

/* Calls fn for every prompt/response example of instruction data in either
   layout, in order, stopping at the first error (fn's or the format's). */
LISADEF lisa_result lisa_sft_for_each(const char *text, size_t len, const char *name, const lisa_allocator *a,
                                      lisa_sft_example_fn fn, void *user, lisa_error *err) {
    lisa__sft_reader rd;
    memset(&rd, 0, sizeof rd);
    rd.name = name ? name : "<memory>";
    rd.a = a;
    rd.pair = fn;
    rd.user = user;
    return lisa__sft_read(&rd, text, len, err);
}

LISADEF lisa_result lisa_sft_for_each_chat(const char *text, size_t len, const char *name, const lisa_allocator *a,
                                           lisa_sft_chat_fn fn, void *user, lisa_error *err) {
    lisa__sft_reader rd;
    memset(&rd, 0, sizeof rd);
    rd.name = name ? name : "<memory>";
    rd.a = a;
    rd.chat = fn;
    rd.user = user;
    return lisa__sft_read(&rd, text, len, err);
}

/* What the loader's callbacks encode into. */
typedef struct lisa__sft_encoder {
    lisa__sft_store store;
    const lisa_tokenizer *tok;
    const lisa_chat_template *tmpl;
    const char *name;
} lisa__sft_encoder;

static lisa_result lisa__sft_encode_pair(void *user, const char *prompt, size_t prompt_len, const char *response,
                                         size_t response_len, lisa_error *err) {
    lisa__sft_encoder *e = (lisa__sft_encoder *)user;
    return lisa__sft_add_pair(&e->store, e->tok, prompt, prompt_len, response, response_len, e->name, err);
}

static lisa_result lisa__sft_encode_chat(void *user, const lisa_chat_message *m, int n, lisa_error *err) {
    lisa__sft_encoder *e = (lisa__sft_encoder *)user;
    lisa__sft_store *s = &e->store;
    lisa_chat_tokens ct;
    lisa_result r = lisa_chat_encode(&ct, e->tmpl, e->tok, m, n, 0, &s->allocator, err);
    if (r != LISA_OK) return r;
    if (lisa__sft_reserve(s, ct.n)) {
        memcpy(s->ids + s->n, ct.ids, ct.n * sizeof(int));
        memcpy(s->loss + s->n, ct.loss, ct.n);
        s->n += ct.n;
        if (!lisa__sft_end_example(s)) r = LISA_ERR_NOMEM;
    } else {
        r = LISA_ERR_NOMEM;
    }
    lisa_chat_tokens_free(&ct);
    return r ? lisa__fail(err, r, "out of memory encoding a conversation") : LISA_OK;
}

LISADEF lisa_result lisa_sft_load_chat_memory(lisa_sft_data *d, const char *text, size_t len, const char *name,
                                              const lisa_tokenizer *tok, const lisa_chat_template *tmpl, int seq,
                                              int pack, const lisa_allocator *a, lisa_error *err) {
    lisa__sft_reader rd;
    lisa__sft_encoder enc;
    size_t rows, i;
    lisa_result r;
    memset(d, 0, sizeof *d);
    if (!name) name = "<memory>";
    if (seq < 1 || seq > LISA__MAX_SEQ) return lisa__fail(err, LISA_ERR_INVALID, "%s: seq %d out of range", name, seq);
    d->allocator = lisa__allocator_or_default(a);
    d->seq = seq;
    memset(&enc, 0, sizeof enc);
    enc.store.allocator = d->allocator;
    enc.tok = tok;
    enc.tmpl = tmpl;
    enc.name = name;
    memset(&rd, 0, sizeof rd);
    rd.name = name;
    rd.a = &d->allocator;
    rd.user = &enc;
    if (tmpl) rd.chat = lisa__sft_encode_chat;
    else rd.pair = lisa__sft_encode_pair;
    r = lisa__sft_read(&rd, text, len, err); /* encodes every example once */
    if (r == LISA_OK) lisa__sft_layout(d, &enc.store, pack, tok->eos_id); /* counts the rows */
    if (r == LISA_OK && d->n_examples == 0)
        r = lisa__fail(err, LISA_ERR_FORMAT, "%s: no usable examples (%lu skipped: prompt fills seq %d)", name,
                       (unsigned long)d->n_skipped, seq);
    rows = d->n_rows;
    d->n_rows = 0;
    if (r == LISA_OK && rows > SIZE_MAX / 2 / sizeof(int) / (size_t)seq)
        r = lisa__fail(err, LISA_ERR_NOMEM, "%s: too much data", name);
    if (r == LISA_OK && !(d->inputs = (int *)lisa__alloc(&d->allocator, 2 * rows * (size_t)seq * sizeof(int), &d->bytes)))
        r = lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory for %lu rows", name, (unsigned long)rows);
    if (r == LISA_OK) {
        d->targets = d->inputs + rows * (size_t)seq;
        memset(d->inputs, 0, rows * (size_t)seq * sizeof(int));
        for (i = 0; i < rows * (size_t)seq; i++) d->targets[i] = LISA_IGNORE; /* a packed last row's tail */
        lisa__sft_layout(d, &enc.store, pack, tok->eos_id);                  /* fills them */
        lisa__ok(err);
    }
    lisa__sft_store_free(&enc.store);
    return r;
}

LISADEF lisa_result lisa_sft_load_memory(lisa_sft_data *d, const char *text, size_t len, const char *name,
                                         const lisa_tokenizer *tok, int seq, int pack,
                                         const lisa_allocator *a, lisa_error *err) {
    return lisa_sft_load_chat_memory(d, text, len, name, tok, NULL, seq, pack, a, err);
}

LISADEF void lisa_sft_batch(const lisa_sft_data *d, long long index, int B, int seq, int *inputs,
                            int *targets) {
    int b;
    LISA_ASSERT(seq >= 1 && seq <= d->seq && d->n_rows > 0);
    for (b = 0; b < B; b++) {
        size_t row = (size_t)(((unsigned long long)index * (unsigned long long)B + (unsigned long long)b) % d->n_rows);
        memcpy(inputs + (size_t)b * seq, d->inputs + row * d->seq, (size_t)seq * sizeof(int));
        memcpy(targets + (size_t)b * seq, d->targets + row * d->seq, (size_t)seq * sizeof(int));
    }
}

LISADEF void lisa_sft_free(lisa_sft_data *d) {
    lisa__free(&d->allocator, d->inputs, 2 * d->n_rows * (size_t)d->seq * sizeof(int), &d->bytes);
    d->inputs = d->targets = NULL;
    d->n_rows = 0;
}

#ifndef LISA_NO_STDIO
LISADEF lisa_result lisa_sft_load_chat(lisa_sft_data *d, const char *path, const lisa_tokenizer *tok,
                                       const lisa_chat_template *tmpl, int seq, int pack, const lisa_allocator *a,
                                       lisa_error *err) {
    lisa_allocator al = lisa__allocator_or_default(a);
    size_t counter = 0, size;
    char *text;
    lisa_result res;
    memset(d, 0, sizeof *d);
    if ((res = lisa__read_text(path, &al, SIZE_MAX - 1, &text, &size, &counter, err)) != LISA_OK) return res;
    res = lisa_sft_load_chat_memory(d, text, size, path, tok, tmpl, seq, pack, a, err);
    lisa__free(&al, text, size + 1, &counter);
    return res;
}

LISADEF lisa_result lisa_sft_load(lisa_sft_data *d, const char *path, const lisa_tokenizer *tok, int seq,
                                  int pack, const lisa_allocator *a, lisa_error *err) {
    return lisa_sft_load_chat(d, path, tok, NULL, seq, pack, a, err);
}
#endif

/* ------------------------------------------------------------------------- */
/* Chat: conversations and templates                                          */
/* ------------------------------------------------------------------------- */

/* The real Jinja templates, as the models ship them (white space at both ends
   dropped), in pieces: C99 promises string literals of 4095 bytes only. */
static const char *const lisa__jinja_chatml[] = {
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' ",
    "+ '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}",
    "{% endif %}",
    NULL};
static const char *const lisa__jinja_smollm2[] = {
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}",
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' ",
    "}}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}",
    "{% endif %}",
    NULL};
static const char *const lisa__jinja_qwen2[] = {
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}",
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}",
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}",
    "{% endif %}",
    NULL};
static const char *const lisa__jinja_qwen25[] = {
    "{%- if tools %}\n",
    "    {{- '<|im_start|>system\\n' }}\n",
    "    {%- if messages[0]['role'] == 'system' %}\n",
    "        {{- messages[0]['content'] }}\n",
    "    {%- else %}\n",
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}",
    "\n",
    "    {%- endif %}\n",
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou ",
    "are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}",
    "\n",
    "    {%- for tool in tools %}\n",
    "        {{- \"\\n\" }}\n",
    "        {{- tool | tojson }}\n",
    "    {%- endfor %}\n",
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments ",
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": ",
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n",
    "{%- else %}\n",
    "    {%- if messages[0]['role'] == 'system' %}\n",
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}",
    "\n",
    "    {%- else %}\n",
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' ",
    "}}\n",
    "    {%- endif %}\n",
    "{%- endif %}\n",
    "{%- for message in messages %}\n",
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role ",
    "== \"assistant\" and not message.tool_calls) %}\n",
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}",
    "\n",
    "    {%- elif message.role == \"assistant\" %}\n",
    "        {{- '<|im_start|>' + message.role }}\n",
    "        {%- if message.content %}\n",
    "            {{- '\\n' + message.content }}\n",
    "        {%- endif %}\n",
    "        {%- for tool_call in message.tool_calls %}\n",
    "            {%- if tool_call.function is defined %}\n",
    "                {%- set tool_call = tool_call.function %}\n",
    "            {%- endif %}\n",
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n",
    "            {{- tool_call.name }}\n",
    "            {{- '\", \"arguments\": ' }}\n",
    "            {{- tool_call.arguments | tojson }}\n",
    "            {{- '}\\n</tool_call>' }}\n",
    "        {%- endfor %}\n",
    "        {{- '<|im_end|>\\n' }}\n",
    "    {%- elif message.role == \"tool\" %}\n",
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}",
    "\n",
    "            {{- '<|im_start|>user' }}\n",
    "        {%- endif %}\n",
    "        {{- '\\n<tool_response>\\n' }}\n",
    "        {{- message.content }}\n",
    "        {{- '\\n</tool_response>' }}\n",
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}",
    "\n",
    "            {{- '<|im_end|>\\n' }}\n",
    "        {%- endif %}\n",
    "    {%- endif %}\n",
    "{%- endfor %}\n",
    "{%- if add_generation_prompt %}\n",
    "    {{- '<|im_start|>assistant\\n' }}\n",
    "{%- endif %}",
    NULL};
static const char *const lisa__jinja_llama2[] = {
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}",
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}",
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}",
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles ",
    "must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message ",
    "!= false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] ",
    "%}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}",
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' ",
    "%}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
    NULL};
static const char *const lisa__jinja_llama3[] = {
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' ",
    "+ message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}",
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}",
    "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' ",
    "}}{% endif %}",
    NULL};
static const char *const lisa__jinja_llama31[] = {
    "{{- bos_token }}\n",
    "{%- if custom_tools is defined %}\n",
    "    {%- set tools = custom_tools %}\n",
    "{%- endif %}\n",
    "{%- if not tools_in_user_message is defined %}\n",
    "    {%- set tools_in_user_message = true %}\n",
    "{%- endif %}\n",
    "{%- if not date_string is defined %}\n",
    "    {%- set date_string = \"26 Jul 2024\" %}\n",
    "{%- endif %}\n",
    "{%- if not tools is defined %}\n",
    "    {%- set tools = none %}\n",
    "{%- endif %}\n",
    "\n{#- This block extracts the system message, so we can slot it into the right place. #}",
    "\n",
    "{%- if messages[0]['role'] == 'system' %}\n",
    "    {%- set system_message = messages[0]['content']|trim %}\n",
    "    {%- set messages = messages[1:] %}\n",
    "{%- else %}\n",
    "    {%- set system_message = \"\" %}\n",
    "{%- endif %}\n",
    "\n{#- System message + builtin tools #}\n",
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n",
    "{%- if builtin_tools is defined or tools is not none %}\n",
    "    {{- \"Environment: ipython\\n\" }}\n",
    "{%- endif %}\n",
    "{%- if builtin_tools is defined %}\n",
    "    {{- \"Tools: \" + builtin_tools | reject('equalto', 'code_interpreter') | join(\", \") + \"\\n\\n\"}}",
    "\n",
    "{%- endif %}\n",
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n",
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n",
    "{%- if tools is not none and not tools_in_user_message %}\n",
    "    {{- \"You have access to the following functions. To call a function, please respond with JSON ",
    "for a function call.\" }}\n",
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument ",
    "name and its value}.' }}\n",
    "    {{- \"Do not use variables.\\n\\n\" }}\n",
    "    {%- for t in tools %}\n",
    "        {{- t | tojson(indent=4) }}\n",
    "        {{- \"\\n\\n\" }}\n",
    "    {%- endfor %}\n",
    "{%- endif %}\n",
    "{{- system_message }}\n",
    "{{- \"<|eot_id|>\" }}\n",
    "\n{#- Custom tools are passed in a user message with some extra guidance #}",
    "\n",
    "{%- if tools_in_user_message and not tools is none %}\n",
    "    {#- Extract the first user message so we can plug it in here #}\n",
    "    {%- if messages | length != 0 %}\n",
    "        {%- set first_user_message = messages[0]['content']|trim %}\n",
    "        {%- set messages = messages[1:] %}\n",
    "    {%- else %}\n",
    "        {{- raise_exception(\"Cannot put tools in the first user message when there's no first user ",
    "message!\") }}\n",
    "{%- endif %}\n",
    "    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n",
    "    {{- \"Given the following functions, please respond with a JSON for a function call \" }}",
    "\n",
    "    {{- \"with its proper arguments that best answers the given prompt.\\n\\n\" }}",
    "\n",
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument ",
    "name and its value}.' }}\n",
    "    {{- \"Do not use variables.\\n\\n\" }}\n",
    "    {%- for t in tools %}\n",
    "        {{- t | tojson(indent=4) }}\n",
    "        {{- \"\\n\\n\" }}\n",
    "    {%- endfor %}\n",
    "    {{- first_user_message + \"<|eot_id|>\"}}\n",
    "{%- endif %}\n",
    "\n{%- for message in messages %}\n",
    "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) ",
    "%}\n",
    "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] ",
    "| trim + '<|eot_id|>' }}\n",
    "    {%- elif 'tool_calls' in message %}\n",
    "        {%- if not message.tool_calls|length == 1 %}\n",
    "            {{- raise_exception(\"This model only supports single tool-calls at once!\") }}",
    "\n",
    "        {%- endif %}\n",
    "        {%- set tool_call = message.tool_calls[0].function %}\n",
    "        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}",
    "\n",
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}",
    "\n",
    "            {{- \"<|python_tag|>\" + tool_call.name + \".call(\" }}\n",
    "            {%- for arg_name, arg_val in tool_call.arguments | items %}",
    "\n",
    "                {{- arg_name + '=\"' + arg_val + '\"' }}\n",
    "                {%- if not loop.last %}\n",
    "                    {{- \", \" }}\n",
    "                {%- endif %}\n",
    "                {%- endfor %}\n",
    "            {{- \")\" }}\n",
    "        {%- else  %}\n",
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}",
    "\n",
    "            {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n",
    "            {{- '\"parameters\": ' }}\n",
    "            {{- tool_call.arguments | tojson }}\n",
    "            {{- \"}\" }}\n",
    "        {%- endif %}\n",
    "        {%- if builtin_tools is defined %}\n",
    "            {#- This means we're in ipython mode #}\n",
    "            {{- \"<|eom_id|>\" }}\n",
    "        {%- else %}\n",
    "            {{- \"<|eot_id|>\" }}\n",
    "        {%- endif %}\n",
    "    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}",
    "\n",
    "        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n",
    "        {%- if message.content is mapping or message.content is iterable %}",
    "\n",
    "            {{- message.content | tojson }}\n",
    "        {%- else %}\n",
    "            {{- message.content }}\n",
    "        {%- endif %}\n",
    "        {{- \"<|eot_id|>\" }}\n",
    "    {%- endif %}\n",
    "{%- endfor %}\n",
    "{%- if add_generation_prompt %}\n",
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n",
    "{%- endif %}",
    NULL};
static const char *const lisa__jinja_zephyr[] = {
    "{% for message in messages %}\n",
    "{% if message['role'] == 'user' %}\n",
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n",
    "{% elif message['role'] == 'system' %}\n",
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n",
    "{% elif message['role'] == 'assistant' %}\n",
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n",
    "{% endif %}\n",
    "{% if loop.last and add_generation_prompt %}\n",
    "{{ '<|assistant|>' }}\n",
    "{% endif %}\n",
    "{% endfor %}",
    NULL};
static const char *const lisa__jinja_mistral[] = {
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % ",
    "2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') ",
    "}}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}",
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}",
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}",
    "{% endif %}{% endfor %}",
    NULL};
static const char *const lisa__jinja_mistral01[] = {
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % ",
    "2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') ",
    "}}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}",
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}",
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}",
    "{% endif %}{% endfor %}",
    NULL};

/* The table: built-ins first (lisa_chat_template_names lists them), then the
   models' variants. Several models may share one text (TinyLlama's is
   Zephyr's). */
typedef struct lisa__chat_known {
    lisa_chat_template t;
    const char *const *jinja;  /* pieces, NULL-terminated; NULL for plain */
    int builtin;
} lisa__chat_known;

#define LISA__QWEN25_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
#define LISA__LLAMA31_PREFIX "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"

static const lisa__chat_known lisa__chat_table[] = {
    {{"chatml", LISA_CHAT_CHATML, NULL, NULL, "", "", "<|im_end|>", 0, NULL}, lisa__jinja_chatml, 1},
    {{"llama2", LISA_CHAT_LLAMA2, NULL, NULL, "<s>", "</s>", NULL, 0, NULL}, lisa__jinja_llama2, 1},
    {{"llama3", LISA_CHAT_LLAMA3, NULL, NULL, "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>", 0, NULL},
     lisa__jinja_llama3, 1},
    {{"zephyr", LISA_CHAT_ZEPHYR, NULL, NULL, "<s>", "</s>", NULL, 0, NULL}, lisa__jinja_zephyr, 1},
    {{"mistral", LISA_CHAT_MISTRAL, NULL, NULL, "<s>", "</s>", NULL, 0, NULL}, lisa__jinja_mistral, 1},
    {{"plain", LISA_CHAT_PLAIN, NULL, NULL, "", "", NULL, 0, NULL}, NULL, 1},
    {{"smollm2", LISA_CHAT_CHATML, "You are a helpful AI assistant named SmolLM, trained by Hugging Face", NULL, "", "",
      "<|im_end|>", 0, NULL}, lisa__jinja_smollm2, 0},
    {{"qwen2", LISA_CHAT_CHATML, "You are a helpful assistant.", NULL, "", "", "<|im_end|>", 0, NULL},
     lisa__jinja_qwen2, 0},
    {{"qwen2.5", LISA_CHAT_CHATML, LISA__QWEN25_SYSTEM, NULL, "", "", "<|im_end|>", 0, NULL}, lisa__jinja_qwen25, 0},
    {{"llama3.1", LISA_CHAT_LLAMA3, NULL, LISA__LLAMA31_PREFIX, "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>", 0,
      NULL}, lisa__jinja_llama31, 0},
    {{"mistral-v0.1", LISA_CHAT_MISTRAL, NULL, NULL, "<s>", "</s>", NULL, 1, NULL}, lisa__jinja_mistral01, 0}};

#define LISA__CHAT_N_KNOWN ((int)(sizeof lisa__chat_table / sizeof lisa__chat_table[0]))

LISADEF const lisa_chat_template *lisa_chat_template_find(const char *name) {
    int i;
    for (i = 0; name && i < LISA__CHAT_N_KNOWN; i++)
        if (strcmp(name, lisa__chat_table[i].t.name) == 0) return &lisa__chat_table[i].t;
    return NULL;
}

LISADEF const char *lisa_chat_template_names(void) { return "chatml, llama2, llama3, zephyr, mistral, plain"; }

/* Is text (len bytes, "\r\n" read as "\n") exactly the concatenated pieces? */
static int lisa__chat_jinja_equal(const char *text, size_t len, const char *const *pieces) {
    size_t at = 0;
    for (; *pieces; pieces++) {
        const char *p = *pieces;
        for (; *p; p++, at++) {
            if (at < len && text[at] == '\r' && at + 1 < len && text[at + 1] == '\n') at++;
            if (at >= len || text[at] != *p) return 0;
        }
    }
    return at == len;
}

static int lisa__chat_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

LISADEF lisa_result lisa_chat_template_recognize(const lisa_chat_template **out, const char *jinja, size_t len,
                                                 const char *name, lisa_error *err) {
    int i;
    *out = NULL;
    if (!name) name = "<memory>";
    if (!jinja) len = 0;
    while (len > 0 && lisa__chat_ascii_space(jinja[0])) {
        jinja++;
        len--;
    }
    while (len > 0 && lisa__chat_ascii_space(jinja[len - 1])) len--;
    for (i = 0; i < LISA__CHAT_N_KNOWN; i++)
        if (lisa__chat_table[i].jinja && lisa__chat_jinja_equal(jinja, len, lisa__chat_table[i].jinja)) {
            *out = &lisa__chat_table[i].t;
            lisa__ok(err);
            return LISA_OK;
        }
    if (len == 0)
        return lisa__fail(err, LISA_ERR_FORMAT, "%s: no chat template: choose one of %s", name, lisa_chat_template_names());
    return lisa__fail(err, LISA_ERR_FORMAT, "%s: the chat template (%lu bytes, \"%.40s...\") is not one this library "
                      "knows (there is no Jinja interpreter): choose one of %s", name, (unsigned long)len, jinja,
                      lisa_chat_template_names());
}

/* --- rendering ------------------------------------------------------------ */

/* The length of the Unicode white space character (Python's str.isspace)
   that starts at s (n bytes), or 0. */
static size_t lisa__chat_space_at(const unsigned char *s, size_t n) {
    if (n >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x20))) return 1;
    if (n >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (n >= 3 && s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3;
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 && (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
        return s[2] >= 0x80 ? 3 : 0;
    if (n >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3;
    if (n >= 3 && s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3;
    return 0;
}

/* The same for the character that ends at s + n. */
static size_t lisa__chat_space_before(const unsigned char *s, size_t n) {
    size_t k;
    for (k = 1; k <= 3 && k <= n; k++)
        if (lisa__chat_space_at(s + n - k, k) == k) return k;
    return 0;
}

/* The rendered text being written: room was counted beforehand. */
typedef struct lisa__chat_out {
    lisa_chat_text *c;
    size_t cap, cap_spans;
    const char *bos, *eos;
    size_t loss_begin;
} lisa__chat_out;

static void lisa__chat_put(lisa__chat_out *o, const char *s, size_t n) {
    LISA_ASSERT(o->c->len + n <= o->cap);
    if (n) memcpy(o->c->text + o->c->len, s, n);
    o->c->len += n;
}

static void lisa__chat_puts(lisa__chat_out *o, const char *s) { lisa__chat_put(o, s, strlen(s)); }

static void lisa__chat_span(lisa__chat_out *o, lisa_chat_span *spans, int *n, size_t begin) {
    LISA_ASSERT((size_t)*n < o->cap_spans);
    spans[*n].begin = begin;
    spans[*n].end = o->c->len;
    (*n)++;
}

static void lisa__chat_put_bos(lisa__chat_out *o) {
    size_t at = o->c->len;
    lisa__chat_puts(o, o->bos);
    lisa__chat_span(o, o->c->bos, &o->c->n_bos, at);
}

static void lisa__chat_put_eos(lisa__chat_out *o) {
    size_t at = o->c->len;
    lisa__chat_puts(o, o->eos);
    lisa__chat_span(o, o->c->eos, &o->c->n_eos, at);
}

/* Strips white space from both ends of what was written since `from`. */
static void lisa__chat_strip_from(lisa__chat_out *o, size_t from) {
    unsigned char *t = (unsigned char *)o->c->text;
    size_t k, lead = 0;
    while (o->c->len > from && (k = lisa__chat_space_before(t + from, o->c->len - from)) > 0) o->c->len -= k;
    while (from + lead < o->c->len && (k = lisa__chat_space_at(t + from + lead, o->c->len - from - lead)) > 0) lead += k;
    if (lead) {
        memmove(t + from, t + from + lead, o->c->len - from - lead);
        o->c->len -= lead;
    }
}

static void lisa__chat_put_stripped(lisa__chat_out *o, const char *s, size_t n) {
    size_t from = o->c->len;
    lisa__chat_put(o, s, n);
    lisa__chat_strip_from(o, from);
}

static void lisa__chat_loss_begin(lisa__chat_out *o) { o->loss_begin = o->c->len; }
static void lisa__chat_loss_end(lisa__chat_out *o) { lisa__chat_span(o, o->c->loss, &o->c->n_loss, o->loss_begin); }

static const char *lisa__chat_role_name(lisa_chat_role r) {
    return r == LISA_CHAT_SYSTEM ? "system" : r == LISA_CHAT_USER ? "user" : "assistant";
}

/* An assistant turn's end: the end-of-turn marker (EOS when the template has none of its own). */
static void lisa__chat_end_turn(lisa__chat_out *o, const lisa_chat_template *t) {
    if (t->end_of_turn) lisa__chat_puts(o, t->end_of_turn);
    else lisa__chat_put_eos(o);
    lisa__chat_loss_end(o);
}

static void lisa__chat_render_chatml(lisa__chat_out *o, const lisa_chat_template *t, const lisa_chat_message *m,
                                     int n, int gen) {
    int i;
    if (t->default_system && m[0].role != LISA_CHAT_SYSTEM) {
        lisa__chat_puts(o, "<|im_start|>system\n");
        lisa__chat_puts(o, t->default_system);
        lisa__chat_puts(o, "<|im_end|>\n");
    }
    for (i = 0; i < n; i++) {
        lisa__chat_puts(o, "<|im_start|>");
        lisa__chat_puts(o, lisa__chat_role_name(m[i].role));
        lisa__chat_puts(o, "\n");
        lisa__chat_loss_begin(o);
        lisa__chat_put(o, m[i].content, m[i].content_len);
        if (m[i].role == LISA_CHAT_ASSISTANT) lisa__chat_end_turn(o, t);
        else lisa__chat_puts(o, "<|im_end|>");
        lisa__chat_puts(o, "\n");
    }
    if (gen) lisa__chat_puts(o, "<|im_start|>assistant\n");
}

static void lisa__chat_llama3_header(lisa__chat_out *o, const char *role) {
    lisa__chat_puts(o, "<|start_header_id|>");
    lisa__chat_puts(o, role);
    lisa__chat_puts(o, "<|end_header_id|>\n\n");
}

static void lisa__chat_render_llama3(lisa__chat_out *o, const lisa_chat_template *t, const lisa_chat_message *m,
                                     int n, int gen) {
    int i = 0, has_system = m[0].role == LISA_CHAT_SYSTEM;
    lisa__chat_put_bos(o);
    if (t->system_prefix || (t->default_system && !has_system)) { /* a system turn of the template's own */
        lisa__chat_llama3_header(o, "system");
        if (t->system_prefix) lisa__chat_puts(o, t->system_prefix);
        if (has_system) lisa__chat_put_stripped(o, m[0].content, m[0].content_len);
        else if (t->default_system) lisa__chat_puts(o, t->default_system);
        lisa__chat_puts(o, "<|eot_id|>");
        i = has_system;
    }
    for (; i < n; i++) {
        lisa__chat_llama3_header(o, lisa__chat_role_name(m[i].role));
        lisa__chat_loss_begin(o);
        lisa__chat_put_stripped(o, m[i].content, m[i].content_len);
        if (m[i].role == LISA_CHAT_ASSISTANT) lisa__chat_end_turn(o, t);
        else lisa__chat_puts(o, "<|eot_id|>");
    }
    if (gen) lisa__chat_llama3_header(o, "assistant");
}

static void lisa__chat_render_zephyr(lisa__chat_out *o, const lisa_chat_template *t, const lisa_chat_message *m,
                                     int n, int gen) {
    int i;
    for (i = 0; i < n; i++) {
        lisa__chat_puts(o, "<|");
        lisa__chat_puts(o, lisa__chat_role_name(m[i].role));
        lisa__chat_puts(o, "|>\n");
        lisa__chat_loss_begin(o);
        lisa__chat_put(o, m[i].content, m[i].content_len);
        if (m[i].role == LISA_CHAT_ASSISTANT) lisa__chat_end_turn(o, t);
        else lisa__chat_put_eos(o);
        lisa__chat_puts(o, "\n");
    }
    if (gen) lisa__chat_puts(o, "<|assistant|>\n");
}

/* Llama 2 and Mistral: user and assistant alternate, starting with the user. */
static void lisa__chat_render_inst(lisa__chat_out *o, const lisa_chat_template *t, const lisa_chat_message *m, int n) {
    int i = 0, k, llama2 = t->style == LISA_CHAT_LLAMA2;
    const lisa_chat_message *sys = NULL;
    if (llama2 && m[0].role == LISA_CHAT_SYSTEM) sys = &m[i++];
    if (!llama2) lisa__chat_put_bos(o); /* mistral: once; llama2: before each [INST] */
    for (k = 0; i < n; i++, k++) {
        if (m[i].role == LISA_CHAT_USER) {
            size_t from;
            if (llama2) lisa__chat_put_bos(o);
            lisa__chat_puts(o, "[INST] ");
            from = o->c->len;
            if (k == 0 && sys) {
                lisa__chat_puts(o, "<<SYS>>\n");
                lisa__chat_put(o, sys->content, sys->content_len);
                lisa__chat_puts(o, "\n<</SYS>>\n\n");
            }
            lisa__chat_put(o, m[i].content, m[i].content_len);
            if (llama2) lisa__chat_strip_from(o, from);
            lisa__chat_puts(o, " [/INST]");
        } else if (llama2) {
            lisa__chat_puts(o, " ");
            lisa__chat_loss_begin(o);
            lisa__chat_put_stripped(o, m[i].content, m[i].content_len);
            lisa__chat_puts(o, " ");
            lisa__chat_end_turn(o, t);
        } else {
            lisa__chat_loss_begin(o);
            lisa__chat_put(o, m[i].content, m[i].content_len);
            lisa__chat_end_turn(o, t);
            if (t->space_after_eos) lisa__chat_puts(o, " ");
        }
    }
}

static void lisa__chat_render_plain(lisa__chat_out *o, const lisa_chat_template *t, const lisa_chat_message *m, int n) {
    int i;
    lisa__chat_put_bos(o);
    for (i = 0; i < n; i++) {
        lisa__chat_loss_begin(o);
        lisa__chat_put(o, m[i].content, m[i].content_len);
        if (m[i].role == LISA_CHAT_ASSISTANT) lisa__chat_end_turn(o, t);
    }
}

/* The conversations a template refuses (as its Jinja text would, or where it would lose a message). */
static lisa_result lisa__chat_check(const lisa_chat_template *t, const lisa_chat_message *m, int n, lisa_error *err) {
    int i, first = 0;
    if (n < 1) return lisa__fail(err, LISA_ERR_INVALID, "%s: an empty conversation", t->name);
    for (i = 0; i < n; i++)
        if ((int)m[i].role < 0 || m[i].role > LISA_CHAT_ASSISTANT || (!m[i].content && m[i].content_len))
            return lisa__fail(err, LISA_ERR_INVALID, "%s: message %d: no such role, or no content", t->name, i);
    if (t->style != LISA_CHAT_LLAMA2 && t->style != LISA_CHAT_MISTRAL) return LISA_OK;
    if (t->style == LISA_CHAT_LLAMA2 && m[0].role == LISA_CHAT_SYSTEM) first = 1;
    for (i = first; i < n; i++) {
        if (m[i].role == LISA_CHAT_SYSTEM)
            return lisa__fail(err, LISA_ERR_INVALID, "%s: message %d: a system message %s", t->name, i,
                              t->style == LISA_CHAT_MISTRAL ? "(this template has none)" : "other than the first");
        if ((m[i].role == LISA_CHAT_USER) != ((i - first) % 2 == 0))
            return lisa__fail(err, LISA_ERR_INVALID, "%s: message %d: user and assistant messages must alternate, "
                              "starting with the user", t->name, i);
    }
    return LISA_OK;
}

/* Bytes of text a rendering can take beyond the contents: room is counted
   once, generously, so writing never checks. */
#define LISA__CHAT_OVERHEAD 96

static size_t lisa__chat_strlen(const char *s) { return s ? strlen(s) : 0; }

LISADEF lisa_result lisa_chat_render(lisa_chat_text *out, const lisa_chat_template *t, const lisa_chat_message *m,
                                     int n, int add_generation_prompt, const char *bos, const char *eos,
                                     const lisa_allocator *a, lisa_error *err) {
    lisa__chat_out o;
    size_t per, cap, spans, size, i;
    unsigned char *block;
    lisa_result r;
    memset(out, 0, sizeof *out);
    out->allocator = lisa__allocator_or_default(a);
    if ((r = lisa__chat_check(t, m, n, err)) != LISA_OK) return r;
    memset(&o, 0, sizeof o);
    o.c = out;
    o.bos = bos ? bos : t->bos;
    o.eos = eos ? eos : t->eos;
    per = LISA__CHAT_OVERHEAD + strlen(o.bos) + strlen(o.eos) + lisa__chat_strlen(t->end_of_turn);
    if (per > SIZE_MAX / 4 / ((size_t)n + 2)) return lisa__fail(err, LISA_ERR_NOMEM, "%s: conversation too long", t->name);
    cap = per * ((size_t)n + 2) + lisa__chat_strlen(t->default_system) + lisa__chat_strlen(t->system_prefix);
    for (i = 0; i < (size_t)n; i++) {
        if (m[i].content_len > SIZE_MAX / 4 - cap)
            return lisa__fail(err, LISA_ERR_NOMEM, "%s: conversation too long", t->name);
        cap += m[i].content_len;
    }
    o.cap = cap;
    o.cap_spans = (size_t)n + 2;
    spans = o.cap_spans * sizeof(lisa_chat_span);
    size = 3 * spans + cap + 1;
    if (!(block = (unsigned char *)lisa__alloc(&out->allocator, size, &out->bytes)))
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory rendering a conversation", t->name);
    out->loss = (lisa_chat_span *)block;
    out->bos = (lisa_chat_span *)(block + spans);
    out->eos = (lisa_chat_span *)(block + 2 * spans);
    out->text = (char *)(block + 3 * spans);
    switch (t->style) {
    case LISA_CHAT_CHATML: lisa__chat_render_chatml(&o, t, m, n, add_generation_prompt); break;
    case LISA_CHAT_LLAMA3: lisa__chat_render_llama3(&o, t, m, n, add_generation_prompt); break;
    case LISA_CHAT_ZEPHYR: lisa__chat_render_zephyr(&o, t, m, n, add_generation_prompt); break;
    case LISA_CHAT_LLAMA2:
    case LISA_CHAT_MISTRAL: lisa__chat_render_inst(&o, t, m, n); break;
    default: lisa__chat_render_plain(&o, t, m, n); break;
    }
    out->text[out->len] = 0;
    lisa__ok(err);
    return LISA_OK;
}

LISADEF void lisa_chat_text_free(lisa_chat_text *c) {
    lisa__free(&c->allocator, c->loss, c->bytes, &c->bytes); /* one block, the spans first */
    c->text = NULL;
    c->loss = c->bos = c->eos = NULL;
    c->len = 0;
    c->n_loss = c->n_bos = c->n_eos = 0;
}

/* --- encoding ------------------------------------------------------------- */

/* Tokenizers that match no special-token text of their own. */
static int lisa__chat_segmented(const lisa_tokenizer *tok) {
    return tok->kind == LISA_TOKENIZER_BYTES || tok->kind == LISA_TOKENIZER_LLAMA2C;
}

/* Encodes text[begin, end) after the *n tokens there are, offsets into text. */
static lisa_result lisa__chat_encode_range(const lisa_tokenizer *tok, const char *text, size_t begin, size_t end,
                                           int *ids, size_t *offsets, size_t cap, size_t *n, lisa_error *err) {
    size_t got = 0, k;
    lisa_result r = lisa_tokenizer_encode_offsets(tok, text + begin, end - begin, 0, 0, ids + *n, offsets + *n,
                                                  cap - *n, &got, err);
    if (r != LISA_OK) return r;
    for (k = *n; k < *n + got; k++) offsets[k] += begin;
    *n += got;
    return LISA_OK;
}

/* The pieces between where bos_token and eos_token were written, and those
   as the tokenizer's bos_id and eos_id; eos_at[k] gets the k-th EOS's token. */
static lisa_result lisa__chat_encode_segments(const lisa_tokenizer *tok, const lisa_chat_text *c, int *ids,
                                              size_t *offsets, size_t cap, size_t *n, size_t *eos_at,
                                              lisa_error *err) {
    int ib = 0, ie = 0;
    size_t at = 0;
    lisa_result r;
    while (ib < c->n_bos || ie < c->n_eos) {
        int is_bos = ie >= c->n_eos || (ib < c->n_bos && c->bos[ib].begin <= c->eos[ie].begin);
        const lisa_chat_span *s = is_bos ? &c->bos[ib++] : &c->eos[ie++];
        if ((r = lisa__chat_encode_range(tok, c->text, at, s->begin, ids, offsets, cap, n, err)) != LISA_OK) return r;
        if (!is_bos) eos_at[ie - 1] = *n;
        ids[*n] = is_bos ? tok->bos_id : tok->eos_id;
        offsets[(*n)++] = s->begin;
        at = s->end;
    }
    return lisa__chat_encode_range(tok, c->text, at, c->len, ids, offsets, cap, n, err);
}

/* loss[i] = 1 for each token with a byte in a loss span (a token of no
   bytes: when it stands at a place inside one). */
static void lisa__chat_mark_loss(const lisa_chat_text *c, const size_t *offsets, size_t n, unsigned char *loss) {
    size_t i;
    int j = 0;
    for (i = 0; i < n; i++) {
        size_t b = offsets[i], e = i + 1 < n ? offsets[i + 1] : c->len;
        while (j < c->n_loss && c->loss[j].end <= b) j++;
        loss[i] = j < c->n_loss && (e > b ? c->loss[j].begin < e : c->loss[j].begin <= b);
    }
}

/* An EOS id that ends a loss span carries loss, also when its text is ""
   (plain with the bytes tokenizer) and so covers no byte of the span. */
static void lisa__chat_mark_eos(const lisa_chat_text *c, const size_t *eos_at, unsigned char *loss) {
    int j = 0, k;
    for (k = 0; k < c->n_eos; k++) {
        while (j < c->n_loss && c->loss[j].end < c->eos[k].end) j++;
        if (j < c->n_loss && c->loss[j].end == c->eos[k].end) loss[eos_at[k]] = 1;
    }
}

/* The text a tokenizer's special token stands for, or fallback. */
static const char *lisa__chat_special_text(const lisa_tokenizer *tok, int id, const char *fallback) {
    size_t len = 0;
    const char *p = id >= 0 ? lisa_tokenizer_piece(tok, -1, id, &len) : NULL;
    return p && len > 0 && strlen(p) == len ? p : fallback;
}

LISADEF lisa_result lisa_chat_encode(lisa_chat_tokens *out, const lisa_chat_template *t, const lisa_tokenizer *tok,
                                     const lisa_chat_message *m, int n, int add_generation_prompt,
                                     const lisa_allocator *a, lisa_error *err) {
    int segmented = lisa__chat_segmented(tok);
    const char *bos = segmented ? t->bos : lisa__chat_special_text(tok, tok->bos_id, t->bos);
    const char *eos = segmented ? t->eos : lisa__chat_special_text(tok, tok->eos_id, t->eos);
    lisa_chat_text c;
    size_t cap, offsets_bytes = 0, counter = 0;
    size_t *offsets = NULL, *eos_at = NULL;
    lisa_result r;
    memset(out, 0, sizeof *out);
    out->allocator = lisa__allocator_or_default(a);
    if ((r = lisa_chat_render(&c, t, m, n, add_generation_prompt, bos, eos, &out->allocator, err)) != LISA_OK) return r;
    cap = c.len + 4 * ((size_t)c.n_bos + (size_t)c.n_eos + 1); /* a piece of k bytes: at most k + 3 tokens */
    if (tok->kind == LISA_TOKENIZER_BPE) {
        /* except where a normalizer lengthens the text (U+2581 for " ") and byte
           fallback spells it out: then the tokenizer says how many */
        size_t need = 0;
        if ((r = lisa_tokenizer_encode(tok, c.text, c.len, 0, 0, NULL, 0, &need, err)) != LISA_OK) {
            lisa_chat_text_free(&c);
            return r;
        }
        if (need > cap) cap = need;
    }
    if (cap > SIZE_MAX / (sizeof(int) + 1 + sizeof(size_t))) {
        lisa_chat_text_free(&c);
        return lisa__fail(err, LISA_ERR_NOMEM, "%s: conversation too long", t->name);
    }
    offsets_bytes = (cap + (size_t)c.n_eos + 1) * sizeof(size_t); /* the offsets, then eos_at */
    out->ids = (int *)lisa__alloc(&out->allocator, cap * (sizeof(int) + 1), &out->bytes);
    offsets = (size_t *)lisa__alloc(&out->allocator, offsets_bytes, &counter);
    if (!out->ids || !offsets) {
        r = lisa__fail(err, LISA_ERR_NOMEM, "%s: out of memory encoding a conversation", t->name);
    } else {
        out->loss = (unsigned char *)(out->ids + cap);
        eos_at = offsets + cap;
        r = segmented ? lisa__chat_encode_segments(tok, &c, out->ids, offsets, cap, &out->n, eos_at, err)
                      : lisa__chat_encode_range(tok, c.text, 0, c.len, out->ids, offsets, cap, &out->n, err);
    }
    if (r == LISA_OK) lisa__chat_mark_loss(&c, offsets, out->n, out->loss);
    if (r == LISA_OK && segmented) lisa__chat_mark_eos(&c, eos_at, out->loss);
    lisa__free(&out->allocator, offsets, offsets_bytes, &counter);
    lisa_chat_text_free(&c);
    if (r != LISA_OK) lisa_chat_tokens_free(out);
    else lisa__ok(err);
    return r;
}

LISADEF void lisa_chat_tokens_free(lisa_chat_tokens *c) {
    lisa__free(&c->allocator, c->ids, c->bytes, &c->bytes); /* ids and loss: one block */
    c->ids = NULL;
    c->loss = NULL;
    c->n = 0;
}

LISADEF int lisa_chat_end_of_turn_id(const lisa_chat_template *t, const lisa_tokenizer *tok) {
    if (!t->end_of_turn) return tok->eos_id;
    if (lisa__chat_segmented(tok)) return -1; /* the marker is text there */
    return lisa_tokenizer_find(tok, t->end_of_turn, strlen(t->end_of_turn));
}

#endif /* LISA_IMPLEMENTATION_INCLUDED */
#endif /* LISA_IMPLEMENTATION */

/*
lisa.h is available under two licenses; choose whichever you prefer.

------------------------------------------------------------------------------
ALTERNATIVE A - MIT License

Copyright (c) 2026 the lisa.h authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.

------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)

This is free and unencumbered software released into the public domain.

Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.

In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication for the benefit of the public at large and to
the detriment of our heirs and successors. We intend this dedication to be an
overt act of relinquishment in perpetuity of all present and future rights to
this software under copyright law.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
*/
