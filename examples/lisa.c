/* lisa: the command-line program around lisa.h.

   Build:  cc -O3 -march=native -fopenmp -o lisa examples/lisa.c -lm    (or: make)

   build/lisa train ...   train a model (from a file or freshly initialised) on a token file,
                          fully or with LISA
   build/lisa eval ...    mean loss and perplexity of a model on a token file
   build/lisa plan ...    memory of a training setup, by category, without allocating it
   build/lisa demo        train a small model on built-in data: no files needed
   Run any of them with --help for every option and its default. */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#ifndef LISA_WITH_CUDA
#define LISA_CUDA_PLANNER_IMPLEMENTATION /* plan --device gpu: the GPU trainer's planner, plain C */
#endif
#include "lisa_cuda.h"   /* build/lisa-cuda (LISA_WITH_CUDA): train runs on a GPU */

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef LISA_WITH_CUDA
#define GPU_BUILD 1 /* build/lisa-cuda */
#else
#define GPU_BUILD 0
#endif

/* ---- data parallelism: build/lisa-mpi and build/lisa-cuda with NCCL --------

   Under mpirun -np P every rank runs train on its B rows of each global batch
   of P x B rows, and lisa.h sums through g_dp.comm: MPI_Allreduce on the CPU
   (LISA_WITH_MPI), ncclAllReduce on each rank's GPU with the scalars through
   MPI (LISA_WITH_NCCL, which needs LISA_WITH_CUDA). Rank 0 alone writes logs,
   models, plots and state files. Without either: one worker, no calls. */
#ifdef LISA_WITH_NCCL
#ifndef LISA_WITH_MPI
#define LISA_WITH_MPI
#endif
#include <cuda_runtime.h>
#include <nccl.h>
#endif
#ifdef LISA_WITH_MPI
#include <mpi.h>
#endif

typedef struct data_parallel {
    lisa_comm comm;     /* rank and world_size; world_size 1 without MPI */
    int local_rank;     /* among the ranks on this machine: which GPU a rank takes */
#ifdef LISA_WITH_NCCL
    ncclComm_t nccl;
    cudaStream_t stream;
    int nccl_ready;
#endif
} data_parallel;

static data_parallel g_dp = {{0, 1, NULL, NULL, NULL, NULL}, 0
#ifdef LISA_WITH_NCCL
                             , NULL, NULL, 0
#endif
};

static int dp_root(void) { return g_dp.comm.rank == 0; }
static int dp_world(void) { return g_dp.comm.world_size; }

#ifdef LISA_WITH_MPI
/* MPI counts are ints: long buffers go in pieces. */
#define DP_PIECE ((size_t)1 << 30)

static void dp_mpi_sum(float *buf, size_t n, void *user) {
    (void)user;
    for (; n > 0; buf += n < DP_PIECE ? n : DP_PIECE, n -= n < DP_PIECE ? n : DP_PIECE)
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)(n < DP_PIECE ? n : DP_PIECE), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static void dp_mpi_broadcast(float *buf, size_t n, int root, void *user) {
    (void)user;
    for (; n > 0; buf += n < DP_PIECE ? n : DP_PIECE, n -= n < DP_PIECE ? n : DP_PIECE)
        MPI_Bcast(buf, (int)(n < DP_PIECE ? n : DP_PIECE), MPI_FLOAT, root, MPI_COMM_WORLD);
}
#endif

#ifdef LISA_WITH_NCCL
static void dp_fail(const char *what, const char *why) {
    fprintf(stderr, "lisa: rank %d: %s: %s\n", g_dp.comm.rank, what, why);
    MPI_Abort(MPI_COMM_WORLD, 2);
}

/* Gradients in the GPU trainer's device memory. The trainer's kernels that
   wrote buf finish first; the sum is done when this returns. */
static void dp_nccl_sum(float *buf, size_t n, void *user) {
    ncclResult_t r;
    (void)user;
    if (cudaDeviceSynchronize() != cudaSuccess) dp_fail("before ncclAllReduce", cudaGetErrorString(cudaGetLastError()));
    r = ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, g_dp.nccl, g_dp.stream);
    if (r != ncclSuccess) dp_fail("ncclAllReduce", ncclGetErrorString(r));
    if (cudaStreamSynchronize(g_dp.stream) != cudaSuccess)
        dp_fail("ncclAllReduce", cudaGetErrorString(cudaGetLastError()));
}

/* One communicator over every rank, rank r on CUDA device `device`; rank 0's
   id reaches the others through MPI. */
static void dp_nccl_init(int device) {
    ncclUniqueId id;
    ncclResult_t r;
    if (g_dp.nccl_ready) return;
    if (cudaSetDevice(device) != cudaSuccess) dp_fail("cudaSetDevice", cudaGetErrorString(cudaGetLastError()));
    if (dp_root() && (r = ncclGetUniqueId(&id)) != ncclSuccess) dp_fail("ncclGetUniqueId", ncclGetErrorString(r));
    MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    if ((r = ncclCommInitRank(&g_dp.nccl, dp_world(), id, g_dp.comm.rank)) != ncclSuccess)
        dp_fail("ncclCommInitRank", ncclGetErrorString(r));
    if (cudaStreamCreate(&g_dp.stream) != cudaSuccess) dp_fail("cudaStreamCreate", cudaGetErrorString(cudaGetLastError()));
    g_dp.nccl_ready = 1;
}
#endif

static void dp_init(int *argc, char ***argv) {
#ifdef LISA_WITH_MPI
    MPI_Comm local;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_dp.comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_dp.comm.world_size);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_dp.comm.rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &g_dp.local_rank);
    MPI_Comm_free(&local);
    if (dp_world() > 1) {
        g_dp.comm.sum = dp_mpi_sum;
        g_dp.comm.broadcast = dp_mpi_broadcast;
    }
#else
    (void)argc;
    (void)argv;
#endif
}

static void dp_finish(void) {
#ifdef LISA_WITH_NCCL
    if (g_dp.nccl_ready) ncclCommDestroy(g_dp.nccl);
#endif
#ifdef LISA_WITH_MPI
    MPI_Finalize();
#endif
}

/* die() on one rank stops them all (the others would wait in a sum). */
static void dp_abort(int code) {
#ifdef LISA_WITH_MPI
    if (dp_world() > 1) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)code;
#endif
}

/* The comm a train run hands its trainer (NULL alone). With NCCL and a GPU
   trainer, the gradients are summed on the device (GPU gpu_base + the local
   rank), the count and loss through MPI. */
static const lisa_comm *dp_train_comm(int gpu, int *gpu_index) {
    if (dp_world() <= 1) return NULL;
#ifdef LISA_WITH_NCCL
    if (gpu) {
        *gpu_index += g_dp.local_rank;
        dp_nccl_init(*gpu_index);
        g_dp.comm.sum = dp_nccl_sum;
        g_dp.comm.sum_host = dp_mpi_sum;
    }
#else
    (void)gpu;
    (void)gpu_index;
#endif
    return &g_dp.comm;
}

/* After training under mpirun: every rank prints a checksum of its weights
   (FNV-1a over their bytes), which must agree. */
static void dp_report_weights(const float *params, size_t n) {
    const unsigned char *p = (const unsigned char *)params;
    uint64_t h = 14695981039346656037ull;
    size_t i;
    if (dp_world() <= 1) return;
    for (i = 0; i < n * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211ull;
    fprintf(stderr, "rank %d of %d: weights checksum %016llx\n", g_dp.comm.rank, dp_world(), (unsigned long long)h);
}

/* Every rank starts from rank 0's weights, whatever each one read or drew. */
static void dp_same_start(float *params, size_t n) {
    if (dp_world() > 1 && g_dp.comm.broadcast) g_dp.comm.broadcast(params, n, 0, g_dp.comm.user);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "lisa: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    dp_abort(2);
    exit(2);
}

static int min_int(int a, int b) { return a < b ? a : b; }
static int max_int(int a, int b) { return a > b ? a : b; }

/* ---- options: one table drives every command's parsing and --help -------- */

/* The commands, as the bits of an option's "taken by" column. */
enum { CMD_TRAIN = 1, CMD_EVAL = 2, CMD_PLAN = 4, CMD_CONVERT = 8, CMD_TOKENIZE = 16, CMD_GENERATE = 32, CMD_DEMO = 64,
       CMD_COMPARE = 128 /* compare takes train's options (its bit is CMD_TRAIN | CMD_COMPARE) and its own */ };

#define MAX_OPTIONS 128 /* rows of option_table at most */

/* Every command's options; each command reads the ones it takes. */
typedef struct options {
    const char *model, *init, *data, *out, *log, *save_state, *resume, *tokenizer, *val, *plot, *prompt;
    const char *chat_template; /* --chat-template: a built-in template's name */
    const char *max_shard_size; /* --max-shard-size: "5GB", "100MiB", bytes */
    const char *lora_targets, *out_adapter, *lora_adapter_in; /* LoRA: --lora-targets, adapter directories */
    const char *methods;     /* compare --methods */
    float lr_full, lr_lora, lr_lisa; /* compare's learning rate per method (0: --lr) */
    const char *args[2];     /* convert's IN OUT, tokenize's IN.txt OUT.tok */
    int n_args;
    int steps, threads, save_every, pack, eval_every, batches, gpu_index, quick, chat, show_ids;
    int demo_compare;        /* demo --compare */
    uint64_t seed;
    float budget, temperature, top_p;
    lisa_train_config tc;    /* train's and plan's settings */
    float probs[4096];       /* --lisa-probs, where tc.lisa_probs points */
    int n_probs;
    int mode, order, schedule, out_dtype, dtype, device; /* choices: -1 until given */
    unsigned char given[MAX_OPTIONS]; /* 1: option_table[i] was given (train --resume checks them) */
} options;

typedef enum {
    KIND_NOTE,   /* no option: a paragraph of the help */
    KIND_FLAG,   /* int field, set to 1 */
    KIND_TEXT,   /* const char * field */
    KIND_INT,    /* int field, within [lo, hi] */
    KIND_SEED,   /* uint64_t field, within [lo, hi] */
    KIND_FLOAT,  /* float field, finite */
    KIND_PROBS,  /* "0.1,0.2,...": probs and n_probs */
    KIND_CHOICE  /* int field: the value of one of the choices' names */
} option_kind;

typedef struct choice {
    const char *name;
    int value;
} choice;

#define OPT_SETTING 1u /* a training setting the state file records: train --resume takes it
                          only with the state's value */
#define OPT_GPU 2u     /* taken by build/lisa-cuda only */
#define OPT_START 4u   /* what a run starts from (--model, --init, --seed): a state file holds the
                          trained model instead, so train --resume takes --model and --init only
                          for a model of the state's shape, and --seed (not recorded) as it is */
#define OPT_LISA 8u    /* a LISA setting: refused unless the mode is lisa */
#define OPT_LORA 16u   /* a LoRA setting: refused unless the mode is lora */

typedef struct option {
    const char *name, *arg;  /* "--batch", "B"; no arg: a flag */
    unsigned commands;       /* CMD_* bits of the commands that take it */
    unsigned flags;          /* OPT_SETTING, OPT_GPU, OPT_START, OPT_LISA */
    option_kind kind;
    size_t field;            /* offsetof(options, ...) */
    long lo, hi;             /* KIND_INT, KIND_SEED */
    const choice *choices;   /* KIND_CHOICE, up to a NULL name */
    const char *def;         /* the value the command starts from (NULL: zero or the library's default) */
    const char *help;        /* its lines after the first are indented under it */
} option;

static const choice mode_choices[] = {
    {"full", LISA_MODE_FULL}, {"lisa", LISA_MODE_LISA}, {"lora", LISA_MODE_LORA}, {NULL, 0}};
static const choice order_choices[] = {{"random", LISA_ORDER_RANDOM}, {"cyclic", LISA_ORDER_CYCLIC}, {NULL, 0}};
static const choice schedule_choices[] = {
    {"constant", LISA_SCHEDULE_CONSTANT}, {"cosine", LISA_SCHEDULE_COSINE}, {"linear", LISA_SCHEDULE_LINEAR}, {NULL, 0}};
#define FILE_Q8_0 100 /* a saved model's dtype beside the lisa_file_dtype values: GGUF's Q8_0 */
static const choice file_dtype_choices[] = {{"f32", LISA_FILE_F32}, {"fp32", LISA_FILE_F32}, {"f16", LISA_FILE_F16},
                                            {"fp16", LISA_FILE_F16}, {"bf16", LISA_FILE_BF16}, {"q8_0", FILE_Q8_0},
                                            {NULL, 0}};
static const choice dtype_choices[] = {{"fp32", LISA_DTYPE_F32}, {"bf16", LISA_DTYPE_BF16}, {NULL, 0}};
static const choice device_choices[] = {{"gpu", 1}, {"cpu", 0}, {NULL, 0}};

#define ROW(name, arg, cmds, flags, kind, field, lo, hi, choices, def, help) \
    {name, arg, cmds, flags, kind, offsetof(options, field), lo, hi, choices, def, help}
#define TEXT(name, arg, cmds, flags, field, def, help) ROW(name, arg, cmds, flags, KIND_TEXT, field, 0, 0, NULL, def, help)
#define FLAG(name, cmds, flags, field, help) ROW(name, NULL, cmds, flags, KIND_FLAG, field, 0, 0, NULL, NULL, help)
#define INT(name, arg, cmds, flags, field, lo, hi, def, help) \
    ROW(name, arg, cmds, flags, KIND_INT, field, lo, hi, NULL, def, help)
#define SEED(name, cmds, flags, field, def, help) \
    ROW(name, "S", cmds, flags, KIND_SEED, field, 0, 0x7fffffffL, NULL, def, help)
#define FLOAT(name, cmds, flags, field, def, help) ROW(name, "X", cmds, flags, KIND_FLOAT, field, 0, 0, NULL, def, help)
#define CHOICE(name, arg, cmds, flags, field, choices, help) \
    ROW(name, arg, cmds, flags, KIND_CHOICE, field, 0, 0, choices, NULL, help)
#define NOTE(cmds, flags, help) {NULL, NULL, cmds, flags, KIND_NOTE, 0, 0, 0, NULL, NULL, help}
#define MODEL_CMDS (CMD_TRAIN | CMD_EVAL | CMD_PLAN | CMD_GENERATE)
#define TRAIN_PLAN (CMD_TRAIN | CMD_PLAN)
#define SET OPT_SETTING
#define START OPT_START
#define ONLY_LISA (OPT_SETTING | OPT_LISA)
#define ONLY_LORA (OPT_SETTING | OPT_LORA)

/* Every option of every command, in the order of the help. */
static const option option_table[] = {
    TEXT("--model", "M", MODEL_CMDS, START, model, NULL,
         "a llama2.c checkpoint (.bin, legacy or version 1), a Hugging Face\n"
         "LLaMA directory (config.json + safetensors), or a GGUF llama model\n"
         "(.gguf; F32, F16, BF16, Q8_0, Q4_0/1, Q5_0/1, Q2_K..Q6_K, read as fp32)"),
    TEXT("--init", "SPEC", TRAIN_PLAN, START, init, NULL,
         "random weights of this shape, e.g.\n"
         "dim=288,hidden=768,layers=6,heads=6,kv_heads=6,vocab=32000,seq=256,tied=1\n"
         "(hidden default: 8/3 dim rounded up to 32; kv_heads default: heads;\n"
         "seq default 256; tied default 1; also norm_eps=, rope_theta=),\n"
         "or a named shape: stories15m tinyllama-1b llama2-7b llama2-13b llama2-70b"),
    TEXT("--data", "FILE", CMD_TRAIN | CMD_EVAL, 0, data, NULL,
         "llm.c token file (uint16 or uint32), or instruction data (.jsonl:\n"
         "{\"prompt\": ..., \"response\": ...} or {\"messages\": [{\"role\": ...,\n"
         "\"content\": ...}, ...]} per line; .json: LMFlow text2text or\n"
         "conversation), whose loss covers the responses (assistant turns) only"),
    TEXT("--tokenizer", "T", CMD_TRAIN | CMD_EVAL, 0, tokenizer, NULL,
         "for instruction data: a tokenizer.json, a Hugging Face directory\n"
         "holding one, a GGUF file, a llama2.c tokenizer.bin, or bytes (built in:\n"
         "ids 0-255 bytes, 256 BOS, 257 EOS); default: the --model's own (a\n"
         "directory's tokenizer.json, a GGUF file's vocabulary)"),
    TEXT("--tokenizer", "T", CMD_GENERATE, 0, tokenizer, NULL,
         "a tokenizer.json, a Hugging Face directory holding one, a GGUF file,\n"
         "a llama2.c tokenizer.bin, or bytes (default: the --model's own (a\n"
         "directory's tokenizer.json, a GGUF file's vocabulary), else bytes)"),
    TEXT("--tokenizer", "T", CMD_TOKENIZE, 0, tokenizer, NULL,
         "a tokenizer.json, a Hugging Face directory holding one, a GGUF file,\n"
         "a llama2.c tokenizer.bin, or bytes (built in: ids 0-255 bytes, 256 BOS,\n"
         "257 EOS)"),
    TEXT("--chat-template", "NAME", CMD_TRAIN | CMD_EVAL | CMD_GENERATE, 0, chat_template, NULL,
         "how conversations become text: chatml, llama2, llama3, zephyr, mistral,\n"
         "plain, or a model's variant (smollm2, qwen2, qwen2.5, llama3.1,\n"
         "mistral-v0.1); default: the tokenizer's own chat template\n"
         "(recognised as one of these; none for bytes and tokenizer.bin). With a\n"
         "template, prompt/response data is trained as one-turn conversations"),
    FLAG("--chat", CMD_GENERATE, 0, chat,
         "--prompt is a user message: rendered with the chat template (and its\n"
         "default system message), then the assistant's turn, which ends at the\n"
         "template's end-of-turn token (or EOS)"),
    FLAG("--show-ids", CMD_GENERATE, 0, show_ids, "print the prompt's and the generated token ids to stderr"),
    FLAG("--pack", CMD_TRAIN | CMD_EVAL, 0, pack, "instruction data: pack examples back to back instead of one per row"),
    TEXT("--out", "OUT", CMD_TRAIN, 0, out, NULL,
         "where to write the trained model at the end: OUT.bin is a llama2.c\n"
         "checkpoint, OUT.gguf a GGUF file, any other path a Hugging Face directory"),
    CHOICE("--out-dtype", "D", CMD_TRAIN, 0, out_dtype, file_dtype_choices,
           "f32, f16 or bf16 for a Hugging Face directory or GGUF, q8_0 for GGUF\n"
           "only (default f32)"),
    CHOICE("--dtype", "D", CMD_CONVERT, 0, out_dtype, file_dtype_choices,
           "f32, f16 or bf16 for a Hugging Face directory or GGUF, q8_0 for GGUF\n"
           "only (default f32)"),
    TEXT("--max-shard-size", "SIZE", CMD_TRAIN | CMD_CONVERT, 0, max_shard_size, NULL,
         "a Hugging Face directory's safetensors shards hold at most SIZE:\n"
         "bytes, or a whole number with KB, MB, GB (1000-based) or KiB, MiB,\n"
         "GiB, as transformers reads it (default 5GB); more than one shard\n"
         "adds model.safetensors.index.json"),
    TEXT("--val", "FILE", CMD_TRAIN, 0, val, NULL, "validation data (same kinds as --data): its loss is reported and logged"),
    INT("--eval-every", "N", CMD_TRAIN, 0, eval_every, 1, 1L << 30, NULL,
        "... every N steps and after the last (default: 10 times per run)"),
    TEXT("--plot", "FILE.svg", CMD_TRAIN, 0, plot, NULL,
         "draw the training loss (and validation loss) against the step, with\n"
         "LISA's switches marked, as an SVG file"),
    TEXT("--prompt", "TEXT", CMD_GENERATE, 0, prompt, "", "the text to continue (default empty: starts from BOS alone)"),
    INT("--steps", "N", CMD_TRAIN, 0, steps, 0, 1L << 30, "100", "optimizer steps (default 100)"),
    INT("--steps", "N", CMD_GENERATE, 0, steps, 0, 1L << 24, "64",
        "new tokens at most (default 64); stops early at EOS (with --chat also\n"
        "at the end of the turn) or the model's seq"),
    FLOAT("--temperature", CMD_GENERATE, 0, temperature, "1",
          "0 is greedy: exactly the model's most likely continuation (default 1)"),
    FLOAT("--top-p", CMD_GENERATE, 0, top_p, "0.9",
          "sample from the most likely tokens that add up to X (default 0.9; 1: off)"),
    SEED("--seed", CMD_GENERATE, 0, seed, NULL, "seed of the sampler (default 0)"),
    INT("--batch", "B", CMD_TRAIN | CMD_EVAL | CMD_PLAN, SET, tc.batch, 1, 1L << 20, NULL,
        "sequences per batch (default 4)"),
    INT("--seq", "T", CMD_TRAIN | CMD_EVAL | CMD_PLAN, SET, tc.seq, 1, 1L << 24, NULL,
        "tokens per sequence (default: 64, at most the model's seq)"),
    INT("--batches", "N", CMD_EVAL, 0, batches, 1, 1L << 30, NULL,
        "batches to average (default: as many as cover the file once, at least 1)"),
    FLOAT("--lr", CMD_TRAIN, SET, tc.schedule.lr, NULL, "peak learning rate (default 3e-4)"),
    FLOAT("--min-lr", CMD_TRAIN, SET, tc.schedule.min_lr, NULL,
          "final learning rate of cosine and linear schedules (default 0)"),
    INT("--warmup", "N", CMD_TRAIN, SET, tc.schedule.warmup, 0, 1L << 30, NULL, "linear warmup steps (default 0)"),
    CHOICE("--schedule", "S", CMD_TRAIN, SET, schedule, schedule_choices, "constant | cosine | linear (default constant)"),
    INT("--schedule-steps", "N", CMD_TRAIN, SET, tc.schedule.total_steps, 1, 1L << 30, NULL,
        "length of the schedule (default: --steps); a run may stop before its end\n"
        "and --resume later"),
    FLOAT("--weight-decay", CMD_TRAIN, SET, tc.weight_decay, NULL,
          "AdamW decoupled weight decay, not applied to norms (default 0)"),
    FLOAT("--beta1", CMD_TRAIN, SET, tc.beta1, NULL, "(default 0.9)"),
    FLOAT("--beta2", CMD_TRAIN, SET, tc.beta2, NULL, "(default 0.999)"),
    FLOAT("--eps", CMD_TRAIN, SET, tc.eps, NULL, "(default 1e-8)"),
    FLOAT("--grad-clip", CMD_TRAIN, SET, tc.grad_clip, NULL, "clip the global gradient norm to X; 0 is off (default 0)"),
    FLAG("--checkpointing", TRAIN_PLAN, SET, tc.checkpointing,
         "keep only layer inputs and recompute in backward (less memory)"),
    SEED("--seed", CMD_TRAIN, START, seed, "1", "seed of --init's random weights (default 1)"),
    TEXT("--model", "FILE.gguf", CMD_DEMO, 0, model, NULL,
         "a real chat model instead (SmolLM2-135M-Instruct's GGUF, or another\n"
         "GGUF llama model with a chat template): LISA teaches it a made-up fact"),
    FLAG("--quick", CMD_DEMO, 0, quick, "a fifth of the steps (about 15 s; for the tests; without --model)"),
    FLAG("--compare", CMD_DEMO, 0, demo_compare,
         "fine-tune three copies of the pre-trained model, with full fine-tuning, LoRA\n"
         "and LISA, and print one table (without --model)"),
    INT("--steps", "N", CMD_DEMO, 0, steps, 1, 1L << 20, NULL,
        "with --model: fine-tuning steps (default 20); with --compare: each\n"
        "method's (default 5000, 1000 with --quick)"),
    TEXT("--out", "OUT", CMD_DEMO, 0, out, NULL,
         "with --model: save the fine-tuned model there (OUT.gguf, OUT.bin or a\n"
         "Hugging Face directory, fp32, with the model's tokenizer)"),
    INT("--threads", "N", CMD_TRAIN | CMD_EVAL | CMD_GENERATE | CMD_DEMO, 0, threads, 1, 4096, NULL,
        "OpenMP threads (default: OpenMP's own default)"),
    TEXT("--log", "FILE.jsonl", CMD_TRAIN, 0, log, NULL,
         "one JSON object per step: step, loss, lr, grad_norm, tokens_per_s, ms,\n"
         "active_layers (sorted, counting from 0)"),
    TEXT("--save-state", "PATH", CMD_TRAIN, 0, save_state, NULL,
         "write the full training state (model, AdamW moments, LISA layers and\n"
         "sampler, step, data position) at the end, atomically"),
    INT("--save-every", "N", CMD_TRAIN, 0, save_every, 1, 1L << 30, NULL, "... and every N steps"),
    TEXT("--resume", "PATH", CMD_TRAIN, 0, resume, NULL,
         "continue from a state file up to --steps (the total, counting the steps\n"
         "already done); the model and settings come from the file, and the run\n"
         "continues bitwise as if it had not stopped. The command that started\n"
         "the run may be given again with --resume added: a setting given must\n"
         "equal the state's, --model and --init must describe a model of the\n"
         "state's shape (the state keeps the trained weights, not their source),\n"
         "and --seed is not recorded"),
    NOTE(TRAIN_PLAN, 0,
         "\nLISA (layerwise importance sampling: embedding, final norm and head always train; of the\n"
         "decoder layers only G sampled ones do, resampled every K steps; the --lisa-* options need\n"
         "--mode lisa):"),
    CHOICE("--mode", "M", TRAIN_PLAN, SET, mode, mode_choices, "full | lisa | lora (default full)"),
    INT("--lisa-layers", "G", TRAIN_PLAN, ONLY_LISA, tc.lisa_layers, 1, 1L << 12, NULL, "layers trained at a time (default 2)"),
    INT("--lisa-interval", "K", TRAIN_PLAN, ONLY_LISA, tc.lisa_interval, 1, 1L << 30, NULL,
        "steps between resamplings (default 20)"),
    CHOICE("--lisa-order", "O", TRAIN_PLAN, ONLY_LISA, order, order_choices,
           "random | cyclic (default random; cyclic hands out layers 0, 1, ... in turn)"),
    ROW("--lisa-probs", "P,...", TRAIN_PLAN, ONLY_LISA, KIND_PROBS, probs, 0, 0, NULL, NULL,
        "one sampling weight per layer (default uniform); sampled without replacement"),
    SEED("--lisa-seed", TRAIN_PLAN, ONLY_LISA, tc.lisa_seed, NULL, "seed of the layer sampler (default 0)"),
    FLAG("--lisa-keep-state", TRAIN_PLAN, ONLY_LISA, tc.keep_state,
         "keep the AdamW moments of layers that leave (costs their memory;\n"
         "by default a leaving layer frees them and restarts from zero when resampled)"),
    NOTE(TRAIN_PLAN, 0,
         "\nLoRA (--mode lora: the model's weights stay frozen; adapters W + (alpha/r) B A train, A\n"
         "Kaiming-uniform and B zero as peft starts them; the --lora-* settings need --mode lora):"),
    INT("--lora-rank", "R", TRAIN_PLAN, ONLY_LORA, tc.lora.rank, 1, 4096, NULL, "adapter rank r (default 8)"),
    FLOAT("--lora-alpha", TRAIN_PLAN, ONLY_LORA, tc.lora.alpha, NULL, "adapter scale alpha; they add (alpha/r) B A (default 16)"),
    TEXT("--lora-targets", "LIST", TRAIN_PLAN, OPT_LORA, lora_targets, NULL,
         "the projections that get adapters, of q,k,v,o,gate,up,down (default all)"),
    FLAG("--lora-train-embed", TRAIN_PLAN, ONLY_LORA, tc.lora.train_embed, "also train the embedding"),
    FLAG("--lora-train-head", TRAIN_PLAN, ONLY_LORA, tc.lora.train_head, "also train the head"),
    FLAG("--lora-train-norms", TRAIN_PLAN, ONLY_LORA, tc.lora.train_norms, "also train every RMSNorm weight"),
    TEXT("--lora-adapter-in", "DIR", CMD_TRAIN, OPT_LORA, lora_adapter_in, NULL,
         "start from a peft adapter directory (adapter_config.json +\n"
         "adapter_model.safetensors); its r, lora_alpha and target_modules are used"),
    TEXT("--out-adapter", "DIR", CMD_TRAIN, OPT_LORA, out_adapter, NULL,
         "also write the trained adapter in peft's format (PeftModel.from_pretrained\n"
         "reads it); --out gets the merged model"),
    TEXT("--lora-adapter-in", "DIR", CMD_EVAL | CMD_GENERATE, 0, lora_adapter_in, NULL,
         "a peft LoRA adapter directory, merged into --model before use"),
    FLAG("--freeze-embed", TRAIN_PLAN, SET, tc.freeze_embed, "never train the embedding (with a tied head: the shared matrix)"),
    FLAG("--freeze-head", TRAIN_PLAN, SET, tc.freeze_head, "never train the head (with a tied head: the shared matrix)"),
    FLAG("--freeze-norm", TRAIN_PLAN, SET, tc.freeze_final_norm, "never train the final norm"),
    NOTE(CMD_TRAIN, 0,
         "\nBatch i reads B rows of T tokens from offset i*B*T of the token file, targets shifted by\n"
         "one, wrapping at the end of the file."),
    NOTE(CMD_TRAIN, OPT_GPU, "\nGPU (build/lisa-cuda trains on the GPU by default):"),
    CHOICE("--dtype", "D", CMD_TRAIN, OPT_GPU, dtype, dtype_choices,
           "bf16 (default: bf16 weights and activations, fp32 master weights,\n"
           "gradients and moments for trained blocks) or fp32 (for checking)"),
    CHOICE("--device", "D", CMD_TRAIN, OPT_GPU, device, device_choices, "gpu (default) or cpu (this library's CPU trainer)"),
    INT("--gpu", "N", CMD_TRAIN, OPT_GPU, gpu_index, 0, 1023, NULL, "which CUDA device (default 0)"),
    NOTE(CMD_TRAIN, OPT_GPU,
         "  --save-state and --resume work here too, with the same state files: a state saved on one\n"
         "  device resumes on the other, and a run resumed in the dtype it was saved in continues\n"
         "  bitwise. --resume takes --dtype, --device and --gpu."),
    NOTE(CMD_PLAN, 0, "\nThe trainer and the memory budget:"),
    CHOICE("--device", "D", CMD_PLAN, 0, device, device_choices,
           "cpu (this library's trainer, fp32; the default of build/lisa) or gpu\n"
           "(lisa_cuda.h's trainer, its device bytes as counted; the default of\n"
           "build/lisa-cuda)"),
    CHOICE("--dtype", "D", CMD_PLAN, 0, dtype, dtype_choices,
           "on the GPU: bf16 (the default: bf16 weights and activations, fp32\n"
           "master weights, gradients and moments for trained blocks) or fp32;\n"
           "bf16 implies --device gpu"),
    ROW("--budget", "GIB", CMD_PLAN, 0, KIND_FLOAT, budget, 0, 0, NULL, NULL, "also say whether the peak fits in this many GiB"),
    NOTE(CMD_COMPARE, 0, "\ncompare's own options (train's above set what every method shares):"),
    TEXT("--methods", "LIST", CMD_COMPARE, 0, methods, "full,lora,lisa", "the methods to run, in order, of full, lora and lisa (default all three)"),
    FLOAT("--lr-full", CMD_COMPARE, 0, lr_full, NULL, "full fine-tuning's learning rate (default --lr)"),
    FLOAT("--lr-lora", CMD_COMPARE, 0, lr_lora, NULL, "LoRA's learning rate (default --lr; LoRA usually wants a larger one)"),
    FLOAT("--lr-lisa", CMD_COMPARE, 0, lr_lisa, NULL, "LISA's learning rate (default --lr)"),
    ROW("--budget", "GIB", CMD_COMPARE, 0, KIND_FLOAT, budget, 0, 0, NULL, NULL,
        "a method whose planned peak exceeds this many GiB is reported as not\n"
        "fitting and not run"),
};
#define N_OPTIONS (sizeof option_table / sizeof option_table[0])
typedef char options_given_fits[N_OPTIONS <= MAX_OPTIONS ? 1 : -1]; /* else raise MAX_OPTIONS */
#undef ROW
#undef TEXT
#undef FLAG
#undef INT
#undef SEED
#undef FLOAT
#undef CHOICE
#undef NOTE
#undef MODEL_CMDS
#undef TRAIN_PLAN
#undef SET
#undef START
#undef ONLY_LISA
#undef ONLY_LORA

/* A command of the program: its name, what it takes and its help. */
typedef struct command {
    const char *name;
    unsigned bit;            /* CMD_* */
    int (*run)(options *o);
    int max_args;            /* words that are not options (convert's IN OUT) */
    const char *summary;     /* its line in lisa --help */
    const char *usage;       /* the first line of its --help */
    const char *about;       /* what it does, before its options ("" for nothing) */
} command;

/* Whether this build's command cmd takes row p (an option, or a note of its help). */
static int option_taken(const option *p, unsigned cmd) {
    return (p->commands & cmd) && (GPU_BUILD || !(p->flags & OPT_GPU));
}

/* One row of the help: the option and its value's name, then its text,
   continuation lines indented under it. */
static void print_option(FILE *f, const option *p) {
    char head[64];
    const char *line = p->help, *nl;
    if (p->kind == KIND_NOTE) {
        fprintf(f, "%s\n", p->help);
        return;
    }
    snprintf(head, sizeof head, "%s%s%s", p->name, p->arg ? " " : "", p->arg ? p->arg : "");
    fprintf(f, "  %-21s ", head);
    while ((nl = strchr(line, '\n')) != NULL) {
        fprintf(f, "%.*s\n%24s", (int)(nl - line), line, "");
        line = nl + 1;
    }
    fprintf(f, "%s\n", line);
}

static void print_command_help(const command *c) {
    size_t i;
    printf("%s\n\n%s%s", c->usage, c->about, *c->about ? "\n" : "");
    for (i = 0; i < N_OPTIONS; i++)
        if (option_taken(&option_table[i], c->bit)) print_option(stdout, &option_table[i]);
}

static const option *find_option(const char *name, unsigned cmd) {
    size_t i;
    for (i = 0; i < N_OPTIONS; i++)
        if (option_table[i].name && (option_table[i].commands & cmd) && !strcmp(option_table[i].name, name))
            return &option_table[i];
    return NULL;
}

static long parse_long(const char *flag, const char *s, long lo, long hi) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi) die("bad value for %s", flag);
    return v;
}

static float parse_float(const char *flag, const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || !isfinite(v)) die("bad value for %s", flag);
    return (float)v;
}

/* Parses "0.1,0.2,..." into out; returns the count (at least 1). */
static int parse_floats(const char *list, float *out, int max) {
    int n = 0;
    const char *p = list;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || n == max || !isfinite(v)) die("bad number list: %s", list);
        out[n++] = (float)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') die("bad number list: %s", list);
    }
    if (n == 0) die("bad number list: %s", list);
    return n;
}

/* Adds word k of n to the list in buf ("a", "a or b", "a, b or c" with last
   " or "); returns the new length. */
static size_t list_word(char *buf, size_t size, size_t at, int k, int n, const char *last, const char *word) {
    if (at >= size) return at;
    return at + (size_t)snprintf(buf + at, size - at, "%s%s", k == 0 ? "" : k == n - 1 ? last : ", ", word);
}

/* Whether choice i names a value that an earlier name (its alias) does not. */
static int new_choice(const choice *c, int i) { return i == 0 || c[i].value != c[i - 1].value; }

/* The value of the choice named s; an error lists the names (aliases once). */
static int parse_choice(const option *p, const char *s) {
    char names[256] = "";
    size_t at = 0;
    int i, k = 0, n = 0;
    for (i = 0; p->choices[i].name; i++) {
        if (!strcmp(p->choices[i].name, s)) return p->choices[i].value;
        n += new_choice(p->choices, i);
    }
    for (i = 0; p->choices[i].name; i++)
        if (new_choice(p->choices, i)) at = list_word(names, sizeof names, at, k++, n, " or ", p->choices[i].name);
    die("%s must be %s, not '%s'", p->name, names, s);
    return 0;
}

static void set_option(options *o, const option *p, const char *value) {
    char *field = (char *)o + p->field;
    switch (p->kind) {
    case KIND_NOTE: break;
    case KIND_FLAG: *(int *)field = 1; break;
    case KIND_TEXT: *(const char **)field = value; break;
    case KIND_INT: *(int *)field = (int)parse_long(p->name, value, p->lo, p->hi); break;
    case KIND_SEED: *(uint64_t *)field = (uint64_t)parse_long(p->name, value, p->lo, p->hi); break;
    case KIND_FLOAT: *(float *)field = parse_float(p->name, value); break;
    case KIND_PROBS: o->n_probs = parse_floats(value, o->probs, (int)(sizeof o->probs / sizeof o->probs[0])); break;
    case KIND_CHOICE: *(int *)field = parse_choice(p, value); break;
    }
}

/* The library's training defaults (seq 0: 64, capped by the model), no
   choice given, then the defaults of the command's own rows. */
static void options_init(options *o, unsigned cmd) {
    size_t i;
    memset(o, 0, sizeof *o);
    o->tc = lisa_train_config_default();
    o->tc.seq = 0;
    o->mode = o->order = o->schedule = o->out_dtype = o->dtype = o->device = -1;
    for (i = 0; i < N_OPTIONS; i++)
        if (option_table[i].def && (option_table[i].commands & cmd)) set_option(o, &option_table[i], option_table[i].def);
}

/* The template --chat-template names; an unknown name lists the choices. */
static const lisa_chat_template *named_template_or_die(const char *name) {
    const lisa_chat_template *t = lisa_chat_template_find(name);
    if (!t)
        die("--chat-template: no template called '%s'; choose one of %s (or a model's variant: smollm2, qwen2, "
            "qwen2.5, llama3.1, mistral-v0.1)", name, lisa_chat_template_names());
    return t;
}

/* "q,k,v" into LoRA's target bits; peft's module names (q_proj) work too. */
static unsigned parse_lora_targets(const char *list) {
    static const char *const short_names[LISA_LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
    unsigned bits = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        int t;
        for (t = 0; t < LISA_LORA_N_TARGETS; t++)
            if ((strlen(short_names[t]) == n && !strncmp(p, short_names[t], n)) ||
                (strlen(lisa_lora_target_name(t)) == n && !strncmp(p, lisa_lora_target_name(t), n)))
                break;
        if (t == LISA_LORA_N_TARGETS) die("--lora-targets: '%.*s' is not one of q,k,v,o,gate,up,down", (int)n, p);
        bits |= 1u << t;
        p += n;
        if (*p == ',') p++;
    }
    if (!bits) die("%s", "--lora-targets: name at least one of q,k,v,o,gate,up,down");
    return bits;
}

/* The choices given, into the train config. */
static void options_finish(options *o) {
    if (o->chat_template) named_template_or_die(o->chat_template);
    if (o->mode >= 0) o->tc.mode = (lisa_mode)o->mode;
    if (o->order >= 0) o->tc.lisa_order = (lisa_layer_order)o->order;
    if (o->schedule >= 0) o->tc.schedule.kind = (lisa_schedule_kind)o->schedule;
    if (o->n_probs) o->tc.lisa_probs = o->probs;
    if (o->lora_targets) o->tc.lora.targets = parse_lora_targets(o->lora_targets);
}

/* argv (after the command's name) into o, by the table; --help prints the
   command's help and exits. */
static void parse_options(options *o, const command *c, int argc, char **argv) {
    int i;
    options_init(o, c->bit);
    for (i = 0; i < argc; i++) {
        const char *f = argv[i];
        const option *p;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            print_command_help(c);
            exit(0);
        }
        if (f[0] != '-' && o->n_args < c->max_args) {
            o->args[o->n_args++] = f;
            continue;
        }
        if (f[0] != '-' && c->max_args) die("%s: unexpected argument '%s'", c->name, f);
        if (!(p = find_option(f, c->bit))) die("%s: unknown option '%s' (see lisa %s --help)", c->name, f, c->name);
        if (!option_taken(p, c->bit))
            die("%s %s: this program trains on the CPU in fp32; build/lisa-cuda (make cuda) trains on a GPU", c->name, f);
        o->given[p - option_table] = 1;
        if (p->kind != KIND_FLAG && i + 1 >= argc) die("%s needs a value", f);
        set_option(o, p, p->kind == KIND_FLAG ? NULL : argv[++i]);
    }
    options_finish(o);
}

/* The shortest text that reads back as x. */
static void float_text(char *buf, size_t size, float x) {
    int digits;
    for (digits = 1; digits < 9; digits++) {
        snprintf(buf, size, "%.*g", digits, x);
        if (strtof(buf, NULL) == x) return;
    }
    snprintf(buf, size, "%.9g", x);
}

/* Option p's value in o, as a command line would give it. */
static void option_text(char *buf, size_t size, const option *p, const options *o) {
    const char *field = (const char *)o + p->field;
    size_t at = 0;
    int i;
    switch (p->kind) {
    case KIND_NOTE: buf[0] = 0; break;
    case KIND_FLAG: snprintf(buf, size, "%s", *(const int *)field ? "on" : "off"); break;
    case KIND_TEXT: snprintf(buf, size, "%s", *(const char *const *)field); break;
    case KIND_INT: snprintf(buf, size, "%d", *(const int *)field); break;
    case KIND_SEED: snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)field); break;
    case KIND_FLOAT: float_text(buf, size, *(const float *)field); break;
    case KIND_PROBS:
        snprintf(buf, size, "%s", o->n_probs ? "" : "uniform");
        for (i = 0; i < o->n_probs && at + 16 < size; i++) {
            if (i) buf[at++] = ',';
            float_text(buf + at, size - at, o->probs[i]);
            at += strlen(buf + at);
        }
        break;
    case KIND_CHOICE:
        snprintf(buf, size, "%d", *(const int *)field);
        for (i = 0; p->choices[i].name; i++)
            if (p->choices[i].value == *(const int *)field) {
                snprintf(buf, size, "%s", p->choices[i].name);
                break;
            }
        break;
    }
}

/* Whether option p has the same value in a and b: floats as parsed, choices
   by value, --lisa-probs element by element. */
static int same_option_value(const option *p, const options *a, const options *b) {
    const char *fa = (const char *)a + p->field, *fb = (const char *)b + p->field;
    int i;
    switch (p->kind) {
    case KIND_NOTE: return 1;
    case KIND_TEXT: return !strcmp(*(const char *const *)fa, *(const char *const *)fb);
    case KIND_FLAG:
    case KIND_INT:
    case KIND_CHOICE: return *(const int *)fa == *(const int *)fb;
    case KIND_SEED: return *(const uint64_t *)fa == *(const uint64_t *)fb;
    case KIND_FLOAT: return *(const float *)fa == *(const float *)fb;
    case KIND_PROBS:
        if (a->n_probs != b->n_probs) return 0;
        for (i = 0; i < a->n_probs; i++)
            if (a->probs[i] != b->probs[i]) return 0;
        return 1;
    }
    return 0;
}

/* A state's training settings as the options that would give them (the
   inverse of options_finish), so the table compares them option by option. */
static void options_of_state(options *s, const lisa_train_config *tc, int n_layers) {
    int i;
    memset(s, 0, sizeof *s);
    s->tc = *tc;
    s->mode = (int)tc->mode;
    s->order = (int)tc->lisa_order;
    s->schedule = (int)tc->schedule.kind;
    if (tc->lisa_probs) {
        s->n_probs = n_layers;
        for (i = 0; i < n_layers; i++) s->probs[i] = tc->lisa_probs[i];
    }
}

static void refuse_lora_options_outside_lora(const options *o, lisa_mode mode);

/* The --lisa-* options apply to LISA mode only: given in full mode they would
   silently do nothing. why says where the full mode comes from, and what to do. */
static void refuse_lisa_options_in_full_mode(const options *o, lisa_mode mode, const char *why) {
    size_t i;
    if (mode == LISA_MODE_LORA) {
        for (i = 0; i < N_OPTIONS; i++)
            if (o->given[i] && (option_table[i].flags & OPT_LISA))
                die("%s is a LISA setting, but the mode is lora", option_table[i].name);
        return;
    }
    refuse_lora_options_outside_lora(o, mode);
    if (mode != LISA_MODE_FULL) return;
    for (i = 0; i < N_OPTIONS; i++)
        if (o->given[i] && (option_table[i].flags & OPT_LISA))
            die("%s is a LISA setting, but %s", option_table[i].name, why);
}

/* The --lora-* options apply to LoRA mode only. */
static void refuse_lora_options_outside_lora(const options *o, lisa_mode mode) {
    size_t i;
    if (mode == LISA_MODE_LORA) return;
    for (i = 0; i < N_OPTIONS; i++)
        if (o->given[i] && (option_table[i].flags & OPT_LORA) && (option_table[i].commands & (CMD_TRAIN | CMD_PLAN)) &&
            option_table[i].name)
            die("%s is a LoRA setting, but the mode is not lora: add --mode lora", option_table[i].name);
}

/* Whether a run trains (or plans) on the GPU: --device, else the build's
   default, which bf16 makes the GPU. */
static int on_gpu(const options *o) {
    return o->device >= 0 ? o->device : GPU_BUILD || o->dtype == LISA_DTYPE_BF16;
}

/* The GPU's dtype: --dtype, else bf16 on the GPU and fp32 on the CPU. */
static lisa_dtype run_dtype(const options *o) {
    return o->dtype >= 0 ? (lisa_dtype)o->dtype : on_gpu(o) ? LISA_DTYPE_BF16 : LISA_DTYPE_F32;
}

/* --seq's default: 64, capped by the model. */
static void resolve_seq(options *o, const lisa_config *c) {
    if (o->tc.seq == 0) o->tc.seq = min_int(64, c->max_seq_len);
}

/* --lisa-probs must give one weight per layer. */
static void check_probs(const options *o, const lisa_config *c) {
    if (o->tc.lisa_probs && o->n_probs != c->n_layers)
        die("--lisa-probs gives %d weights; the model has %d layers", o->n_probs, c->n_layers);
}

/* Well-known shapes, from the models' published configurations. */
static const struct named_shape {
    const char *name, *spec;
} named_shapes[] = {
    {"stories15m", "dim=288,hidden=768,layers=6,heads=6,kv_heads=6,vocab=32000,seq=256,tied=1"},
    {"tinyllama-1b", "dim=2048,hidden=5632,layers=22,heads=32,kv_heads=4,vocab=32000,seq=2048,tied=0"},
    {"llama2-7b", "dim=4096,hidden=11008,layers=32,heads=32,kv_heads=32,vocab=32000,seq=4096,tied=0"},
    {"llama2-13b", "dim=5120,hidden=13824,layers=40,heads=40,kv_heads=40,vocab=32000,seq=4096,tied=0"},
    {"llama2-70b", "dim=8192,hidden=28672,layers=80,heads=64,kv_heads=8,vocab=32000,seq=4096,tied=0"},
};

/* Parses "dim=288,hidden=768,layers=6,heads=6,kv_heads=6,vocab=32000,seq=256,tied=1",
   or one of the names above. */
static lisa_config parse_init(const char *spec) {
    lisa_config c;
    char buf[512], *tok, *save = NULL;
    size_t i;
    memset(&c, 0, sizeof c);
    c.tied_head = 1;
    c.max_seq_len = 256;
    for (i = 0; i < sizeof named_shapes / sizeof named_shapes[0]; i++)
        if (!strcmp(spec, named_shapes[i].name)) spec = named_shapes[i].spec;
    if (strlen(spec) >= sizeof buf) die("--init spec too long: %s", spec);
    strcpy(buf, spec);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end;
        double v;
        if (!eq) die("--init: expected key=value, got '%s'", tok);
        *eq = 0;
        v = strtod(eq + 1, &end);
        if (*end != 0 || eq[1] == 0) die("--init: bad number for '%s'", tok);
        if (!strcmp(tok, "dim")) c.dim = (int)v;
        else if (!strcmp(tok, "hidden")) c.hidden_dim = (int)v;
        else if (!strcmp(tok, "layers")) c.n_layers = (int)v;
        else if (!strcmp(tok, "heads")) c.n_heads = (int)v;
        else if (!strcmp(tok, "kv_heads")) c.n_kv_heads = (int)v;
        else if (!strcmp(tok, "vocab")) c.vocab_size = (int)v;
        else if (!strcmp(tok, "seq")) c.max_seq_len = (int)v;
        else if (!strcmp(tok, "tied")) c.tied_head = (int)v;
        else if (!strcmp(tok, "norm_eps")) c.norm_eps = (float)v;
        else if (!strcmp(tok, "rope_theta")) c.rope_theta = (float)v;
        else die("--init: unknown key '%s'", tok);
    }
    /* LLaMA's MLP width: 2/3 of 4*dim, rounded up to a multiple of 32. */
    if (c.hidden_dim == 0 && c.dim > 0) c.hidden_dim = (8 * c.dim / 3 + 31) / 32 * 32;
    return c;
}

/* The first field (as --init names it) in which the resolved shapes a and b
   differ, its values in a and b into va and vb; NULL when they agree. */
static const char *shape_difference(const lisa_config *a, const lisa_config *b, char *va, char *vb, size_t size) {
    const struct {
        const char *key;
        double a, b;
    } f[] = {{"dim", a->dim, b->dim},
             {"hidden", a->hidden_dim, b->hidden_dim},
             {"layers", a->n_layers, b->n_layers},
             {"heads", a->n_heads, b->n_heads},
             {"kv_heads", a->n_kv_heads, b->n_kv_heads},
             {"vocab", a->vocab_size, b->vocab_size},
             {"seq", a->max_seq_len, b->max_seq_len},
             {"tied", a->tied_head, b->tied_head},
             {"norm_eps", a->norm_eps, b->norm_eps},
             {"rope_theta", a->rope_theta, b->rope_theta}};
    size_t i;
    for (i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].a != f[i].b) {
            float_text(va, size, (float)f[i].a);
            float_text(vb, size, (float)f[i].b);
            return f[i].key;
        }
    return NULL;
}

/* train --resume with --model or --init (the command that started the run,
   given again): the state records the model's shape, not where it came from,
   so they must describe a model of the state's shape. */
static void refuse_other_model_on_resume(const options *o, const lisa_config *state_model) {
    lisa_config c, want = *state_model;
    lisa_error err;
    char here[64], there[64];
    const char *flag = o->model ? "--model" : "--init", *key;
    if (!o->model && !o->init) return;
    if (o->model) {
        if (lisa_model_read_config(o->model, &c, NULL, &err) != LISA_OK) die("%s", err.message);
    } else {
        c = parse_init(o->init);
    }
    if (lisa_config_resolve(&c, &err) != LISA_OK) die("%s: %s", flag, err.message);
    if (lisa_config_resolve(&want, &err) != LISA_OK) die("%s: %s", o->resume, err.message);
    if ((key = shape_difference(&c, &want, here, there, sizeof here)) != NULL)
        die("%s %s describes another model than the state's (%s %s, the state's %s %s); a resumed run trains the "
            "state's model (drop %s or start a new run)", flag, o->model ? o->model : o->init, key, here, key, there,
            flag);
}

/* train --resume takes the settings the state records only with the state's
   values: the command that started the run may be given again. */
static void refuse_changed_settings(const options *o, const lisa_train_config *state, const lisa_config *state_model) {
    options s;
    char here[256], there[256];
    size_t i;
    options_of_state(&s, state, state_model->n_layers);
    for (i = 0; i < N_OPTIONS; i++) {
        const option *p = &option_table[i];
        if (!o->given[i] || !(p->flags & OPT_SETTING) || same_option_value(p, o, &s)) continue;
        option_text(here, sizeof here, p, o);
        option_text(there, sizeof there, p, &s);
        die("%s %s differs from the state's %s; a resumed run keeps the state's settings (drop %s or start a new run)",
            p->name, here, there, p->name);
    }
    refuse_other_model_on_resume(o, state_model);
}

static void set_threads(int threads) {
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#else
    if (threads > 1) fprintf(stderr, "lisa: built without OpenMP; --threads %d ignored, running on one thread\n", threads);
#endif
}

static int thread_count(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* A model file (llama2.c .bin, GGUF) or a Hugging Face directory. */
static void load_model_or_die(lisa_model *m, const char *path) {
    lisa_error err;
    if (lisa_model_load(m, path, NULL, &err) != LISA_OK) die("%s", err.message);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Whether s is the unit suffix u, letters in either case but the B upper. */
static int is_size_suffix(const char *s, const char *u) {
    size_t k;
    if (strlen(s) != strlen(u)) return 0;
    for (k = 0; u[k]; k++)
        if (u[k] == 'B' ? s[k] != 'B' : (s[k] | 32) != (u[k] | 32)) return 0;
    return 1;
}

/* --max-shard-size in bytes: "N", "NKB" / "NMB" / "NGB" (10^3, 10^6, 10^9)
   or "NKiB" / "NMiB" / "NGiB" (2^10, 2^20, 2^30), as transformers'
   convert_file_size_to_int reads them (a lowercase "b", bits there, is refused). */
static uint64_t parse_shard_size(const char *s) {
    static const struct {
        const char *suffix;
        uint64_t unit;
    } units[] = {{"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"KB", 1000ull},
                 {"MB", 1000000ull},  {"GB", 1000000000ull}, {"", 1}};
    char *end;
    unsigned long long v;
    size_t i;
    if (!(*s >= '0' && *s <= '9')) die("bad value for --max-shard-size: %s", s);
    v = strtoull(s, &end, 10);
    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!is_size_suffix(end, units[i].suffix)) continue;
        if (v == 0 || v > UINT64_MAX / units[i].unit) die("bad value for --max-shard-size: %s (at least 1 byte)", s);
        return (uint64_t)v * units[i].unit;
    }
    die("bad value for --max-shard-size: %s (bytes, or a whole number with KB, MB, GB, KiB, MiB or GiB)", s);
    return 0;
}

/* The shard size Hugging Face directories are saved with (--max-shard-size). */
static uint64_t g_max_shard_bytes = LISA_HF_SHARD_DEFAULT;

static int is_directory(const char *path);
static int has_hf_tokenizer(const char *path);
static int is_gguf_file(const char *path);

/* q8_0 is GGUF's alone: refused for any other output, before any work. */
static void check_out_dtype(const char *path, int dtype) {
    if (dtype == FILE_Q8_0 && !ends_with(path, ".gguf"))
        die("%s: q8_0 is written only as GGUF (an OUT ending in .gguf); a llama2.c checkpoint or a Hugging Face "
            "directory takes f32, f16 or bf16",
            path);
}

/* The metadata a GGUF output keeps from the tokenizer in use (spec): a GGUF
   file's own metadata (its general.* and tokenizer.* keys), or what
   convert_hf_to_gguf.py writes for a Hugging Face tokenizer. 0 (with a note
   on stderr) when there is none to keep: the file then has no tokenizer.* keys. */
static int gguf_carry(lisa_gguf *g, const char *spec, const lisa_model *m, const char *path) {
    lisa_error err;
    lisa_result r;
    int i;
    uint64_t n = 0;
    lisa_gguf_type et;
    memset(g, 0, sizeof *g);
    if (spec && is_gguf_file(spec)) r = lisa_gguf_read_metadata(g, spec, NULL, &err);
    else if (spec && (has_hf_tokenizer(spec) || (ends_with(spec, ".json") && !is_directory(spec))))
        r = lisa_gguf_tokenizer_from_hf(g, spec, NULL, &err);
    else {
        fprintf(stderr, "%s: no tokenizer.* keys written (%s)\n", path,
                spec ? "the tokenizer is neither GGUF nor Hugging Face" : "no tokenizer in use");
        return 0;
    }
    if (r != LISA_OK) {
        fprintf(stderr, "%s: no tokenizer.* keys written: %s\n", path, err.message);
        lisa_gguf_free(g);
        return 0;
    }
    i = lisa_gguf_find(g, "tokenizer.ggml.tokens");
    if (i >= 0 && (lisa_gguf_array(g, i, &et, &n, NULL) != LISA_OK || n != (uint64_t)m->config.vocab_size)) {
        fprintf(stderr, "%s: no tokenizer.* keys written: %s has %.0f tokens, the model %d\n", path, spec, (double)n,
                m->config.vocab_size);
        lisa_gguf_free(g);
        return 0;
    }
    return 1;
}

static void copy_tokenizer_files(const char *spec, const char *out_dir);

/* A path ending in .bin gets a llama2.c checkpoint; one ending in .gguf a
   GGUF file carrying the tokenizer in use (tokenizer: its spec, or NULL);
   any other path is a Hugging Face directory (config.json + model.safetensors),
   made if missing, with the tokenizer's files (copy_tokenizer_files). */
static void save_model_or_die(const lisa_model *m, const char *path, int dtype, const char *tokenizer) {
    static const uint32_t ggml_types[3] = {0, 1, 30}; /* F32, F16, BF16 by lisa_file_dtype */
    lisa_error err;
    lisa_result r;
    check_out_dtype(path, dtype);
    if (ends_with(path, ".gguf")) {
        lisa_gguf carry;
        int has = gguf_carry(&carry, tokenizer, m, path);
        r = lisa_model_save_gguf(m, path, dtype == FILE_Q8_0 ? 8 : ggml_types[dtype], has ? &carry : NULL, &err);
        if (has) lisa_gguf_free(&carry);
    } else if (ends_with(path, ".bin")) {
        if (dtype != LISA_FILE_F32) die("%s: llama2.c checkpoints hold fp32 only", path);
        r = lisa_model_save_llama2c(m, path, &err);
    } else {
        mkdir(path, 0777); /* an existing directory is fine; other failures show in the save */
        r = lisa_model_save_hf_sharded(m, path, (lisa_file_dtype)dtype, g_max_shard_bytes, &err);
    }
    if (r != LISA_OK) die("%s", err.message);
    fprintf(stderr, "wrote %s\n", path);
    if (!ends_with(path, ".gguf")) copy_tokenizer_files(tokenizer, path);
}

/* A tokenizer (lisa_tokenizer_load: "bytes", tokenizer.json, a Hugging Face
   directory, GGUF, tokenizer.bin) whose ids fit a model of model_vocab
   tokens (0: no model). */
static void load_tokenizer_or_die(lisa_tokenizer *t, const char *spec, int model_vocab) {
    lisa_error err;
    if (lisa_tokenizer_load(t, spec, 0, NULL, &err) != LISA_OK) die("%s", err.message);
    if (model_vocab > 0 && t->vocab_size > model_vocab)
        die("%s: the tokenizer has %d tokens, more than the model's vocab_size %d: its ids would fall outside "
            "the model's vocabulary", spec, t->vocab_size, model_vocab);
}

static int is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whether path is a Hugging Face directory holding a tokenizer.json. */
static int has_hf_tokenizer(const char *path) {
    char file[4096];
    struct stat st;
    return path && is_directory(path) && snprintf(file, sizeof file, "%s/tokenizer.json", path) < (int)sizeof file &&
           stat(file, &st) == 0;
}

/* Whether path is a file that starts with GGUF's magic. */
static int is_gguf_file(const char *path) {
    char magic[4];
    FILE *f = path && !is_directory(path) ? fopen(path, "rb") : NULL;
    int yes = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (f) fclose(f);
    return yes;
}

/* The tokenizer a command uses: --tokenizer, else the --model's own (a
   Hugging Face directory's tokenizer.json, a GGUF file's vocabulary), else
   fallback (NULL: none). */
static const char *tokenizer_spec(const options *o, const char *fallback) {
    if (o->tokenizer) return o->tokenizer;
    if (has_hf_tokenizer(o->model) || is_gguf_file(o->model)) return o->model;
    return fallback;
}

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Copies src to dst through dst.tmp and a rename, as models are saved. */
static void copy_file_or_die(const char *src, const char *dst) {
    char tmp[4200], buf[65536];
    FILE *in, *out;
    size_t n;
    int bad = 0;
    if (same_file(src, dst)) return; /* saved over the directory it came from */
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp) die("%s: path too long", dst);
    if (!(in = fopen(src, "rb"))) die("%s: cannot open for reading", src);
    if (!(out = fopen(tmp, "wb"))) die("cannot open %s for writing", tmp);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) bad |= fwrite(buf, 1, n, out) != n;
    bad |= ferror(in);
    fclose(in);
    bad |= fclose(out) != 0;
    if (bad || rename(tmp, dst) != 0) {
        remove(tmp);
        die("%s: write failed", dst);
    }
}

/* generation_config.json from a GGUF's tokenizer: its BOS and EOS ids, and
   the chat template's end-of-turn token (as a second EOS) where the template
   is one lisa knows; transformers' generate() stops at either. */
static void write_generation_config(const lisa_gguf *g, const char *path) {
    lisa_tokenizer tok;
    lisa_error err;
    const lisa_chat_template *t = NULL;
    char text[256], tmp[4200];
    int eot = -1, n;
    FILE *f;
    if (lisa_tokenizer_load_gguf_metadata(&tok, g, NULL, &err) != LISA_OK) die("%s", err.message);
    if (tok.chat_template &&
        lisa_chat_template_recognize(&t, tok.chat_template, tok.chat_template_len, g->name, NULL) == LISA_OK)
        eot = lisa_chat_end_of_turn_id(t, &tok);
    n = snprintf(text, sizeof text, "{\n");
    if (tok.bos_id >= 0) n += snprintf(text + n, sizeof text - n, "  \"bos_token_id\": %d,\n", tok.bos_id);
    if (tok.eos_id >= 0 && eot >= 0 && eot != tok.eos_id)
        n += snprintf(text + n, sizeof text - n, "  \"eos_token_id\": [%d, %d],\n", tok.eos_id, eot);
    else if (tok.eos_id >= 0 || eot >= 0)
        n += snprintf(text + n, sizeof text - n, "  \"eos_token_id\": %d,\n", tok.eos_id >= 0 ? tok.eos_id : eot);
    if (tok.pad_id >= 0) n += snprintf(text + n, sizeof text - n, "  \"pad_token_id\": %d,\n", tok.pad_id);
    snprintf(text + n, sizeof text - n, "  \"do_sample\": false\n}\n");
    lisa_tokenizer_free(&tok);
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) die("%s: path too long", path);
    if (!(f = fopen(tmp, "wb"))) die("cannot open %s for writing", tmp);
    n = fputs(text, f) < 0;
    if ((fclose(f) != 0) | n || rename(tmp, path) != 0) {
        remove(tmp);
        die("%s: write failed", path);
    }
}

/* A GGUF model's tokenizer written as Hugging Face files (tokenizer.json,
   tokenizer_config.json, generation_config.json); a GGUF without one gets none. */
static void save_gguf_tokenizer(const char *spec, const char *out_dir) {
    lisa_gguf g;
    lisa_error err;
    char path[4200];
    if (lisa_gguf_read_metadata(&g, spec, NULL, &err) != LISA_OK) die("%s", err.message);
    if (lisa_gguf_find(&g, "tokenizer.ggml.model") < 0) {
        fprintf(stderr, "%s has no tokenizer: none written into %s\n", spec, out_dir);
        lisa_gguf_free(&g);
        return;
    }
    if (lisa_gguf_save_hf_tokenizer(&g, out_dir, &err) != LISA_OK) die("%s", err.message);
    if (snprintf(path, sizeof path, "%s/generation_config.json", out_dir) >= (int)sizeof path) die("%s: path too long", out_dir);
    write_generation_config(&g, path);
    lisa_gguf_free(&g);
    fprintf(stderr, "wrote the tokenizer of %s (tokenizer.json, tokenizer_config.json, generation_config.json) into %s\n",
            spec, out_dir);
}

/* A model saved as a Hugging Face directory gets the tokenizer it was used
   with, so --model finds it there next time and transformers loads it: Hugging
   Face files are copied (a directory holding tokenizer.json, or a tokenizer.json
   file, and the files beside it that lisa_tokenizer_load_hf reads, with
   generation_config.json and special_tokens_map.json when there), a GGUF
   file's vocabulary is written as them (save_gguf_tokenizer). */
static void copy_tokenizer_files(const char *spec, const char *out_dir) {
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                                        "generation_config.json", "special_tokens_map.json"};
    char dir[4096], src[4200], dst[4200];
    const char *slash;
    struct stat st;
    size_t i;
    if (!spec || ends_with(out_dir, ".bin")) return;
    if (is_gguf_file(spec)) {
        save_gguf_tokenizer(spec, out_dir);
        return;
    }
    if (has_hf_tokenizer(spec)) {
        snprintf(dir, sizeof dir, "%s", spec);
    } else if (ends_with(spec, ".json") && !is_directory(spec)) {
        slash = strrchr(spec, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - spec) : 1, slash ? spec : ".");
    } else {
        return; /* bytes, tokenizer.bin: nothing a Hugging Face directory holds */
    }
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        int a = i == 0 && !has_hf_tokenizer(spec) ? snprintf(src, sizeof src, "%s", spec)
                                                  : snprintf(src, sizeof src, "%s/%s", dir, names[i]);
        int b = snprintf(dst, sizeof dst, "%s/%s", out_dir, names[i]);
        if (a >= (int)sizeof src || b >= (int)sizeof dst) die("%s: path too long", out_dir);
        if (stat(src, &st) == 0) copy_file_or_die(src, dst);
    }
    fprintf(stderr, "copied the tokenizer (%s) into %s\n", spec, out_dir);
}

/* The chat template in force: --chat-template, else the tokenizer's own
   template recognised, else none (NULL). */
static const lisa_chat_template *chat_template_of(const options *o, const lisa_tokenizer *tok, const char *tok_name) {
    const lisa_chat_template *t = NULL;
    lisa_error err;
    if (o->chat_template) return named_template_or_die(o->chat_template);
    if (!tok->chat_template) return NULL;
    if (lisa_chat_template_recognize(&t, tok->chat_template, tok->chat_template_len, tok_name, &err) != LISA_OK)
        die("%s; give --chat-template NAME", err.message);
    return t;
}

/* A run's tokenizer and chat template, where the command needs them. */
typedef struct text_setup {
    int loaded;                     /* 0: no tokenizer (token-file data only) */
    const char *name;               /* the tokenizer's path, or "bytes" */
    lisa_tokenizer tok;
    const lisa_chat_template *tmpl; /* NULL: none in force */
} text_setup;

/* Loads tokenizer_spec(o, fallback), if any, for a model of model_vocab
   tokens; with_template: also the chat template in force. */
static void text_setup_load(text_setup *ts, const options *o, const char *fallback, int model_vocab, int with_template) {
    memset(ts, 0, sizeof *ts);
    if (!(ts->name = tokenizer_spec(o, fallback))) return;
    load_tokenizer_or_die(&ts->tok, ts->name, model_vocab);
    ts->loaded = 1;
    if (with_template) ts->tmpl = chat_template_of(o, &ts->tok, ts->name);
}

static void text_setup_free(text_setup *ts) {
    if (ts->loaded) lisa_tokenizer_free(&ts->tok);
    ts->loaded = 0;
}

/* Instruction data (.jsonl, .json) rather than an llm.c token file. */
static int is_instruction_data(const char *path) { return path && (ends_with(path, ".jsonl") || ends_with(path, ".json")); }

/* Training or evaluation data: an llm.c token file, or instruction data
   (prompt/response pairs or conversations, .jsonl or .json) encoded with
   ts's tokenizer and, where one is in force, its chat template. */
typedef struct data_source {
    int is_sft;
    lisa_tokens tokens;
    lisa_sft_data sft;
} data_source;

static void load_data_or_die(data_source *d, const char *path, const text_setup *ts, int vocab, int seq, int pack) {
    lisa_error err;
    memset(d, 0, sizeof *d);
    d->is_sft = is_instruction_data(path);
    if (d->is_sft) {
        if (!ts->loaded)
            die("%s: instruction data needs --tokenizer (a tokenizer.json, a Hugging Face directory, a GGUF file, "
                "a tokenizer.bin, or bytes)", path);
        if (lisa_sft_load_chat(&d->sft, path, &ts->tok, ts->tmpl, seq, pack, NULL, &err) != LISA_OK) die("%s", err.message);
        fprintf(stderr, "%s: %lu examples in %lu rows (%lu truncated, %lu skipped), %lu response tokens%s%s\n", path,
                (unsigned long)d->sft.n_examples, (unsigned long)d->sft.n_rows, (unsigned long)d->sft.n_truncated,
                (unsigned long)d->sft.n_skipped, (unsigned long)d->sft.n_counted, ts->tmpl ? ", chat template " : "",
                ts->tmpl ? ts->tmpl->name : "");
        return;
    }
    if (lisa_tokens_load(&d->tokens, path, NULL, &err) != LISA_OK) die("%s", err.message);
    if (lisa_tokens_check_vocab(&d->tokens, vocab, path, &err) != LISA_OK) die("%s", err.message);
}

static void data_batch(const data_source *d, long long index, int B, int T, int *inputs, int *targets) {
    if (d->is_sft) lisa_sft_batch(&d->sft, index, B, T, inputs, targets);
    else lisa_tokens_batch(&d->tokens, index, B, T, inputs, targets);
}

/* Batches that cover the data once (at least 1). */
static long data_batches(const data_source *d, int B, int T) {
    size_t n = d->is_sft ? d->sft.n_rows / (size_t)B : d->tokens.n / ((size_t)B * T);
    return n > 0 ? (long)n : 1;
}

static void data_free(data_source *d) {
    if (d->is_sft) lisa_sft_free(&d->sft);
    else lisa_tokens_free(&d->tokens);
}

/* ---- train --------------------------------------------------------------- */

/* The trainer a run steps: lisa.h's on the CPU or, in build/lisa-cuda,
   lisa_cuda.h's on a GPU. The training loop sees only this. */
typedef struct runner {
    lisa_trainer cpu;
    lisa_model *model;         /* the CPU trainer's model; for the GPU, where the result is copied */
    lisa_train_config config;  /* resolved */
#ifdef LISA_WITH_CUDA
    lisa_cuda_trainer *gpu;    /* non-NULL: the GPU trains */
#endif
} runner;

#ifdef LISA_WITH_CUDA
#define RUNNER_ON_GPU(r) ((r)->gpu != NULL)
#else
#define RUNNER_ON_GPU(r) 0
#endif

static int runner_step_count(const runner *r) {
#ifdef LISA_WITH_CUDA
    if (RUNNER_ON_GPU(r)) return lisa_cuda_trainer_steps(r->gpu);
#endif
    return r->cpu.step;
}

static int runner_active_layers(const runner *r, int *layers) {
#ifdef LISA_WITH_CUDA
    if (RUNNER_ON_GPU(r)) return lisa_cuda_trainer_active_layers(r->gpu, layers);
#endif
    memcpy(layers, r->cpu.active_layers, (size_t)r->cpu.n_active * sizeof(int));
    return r->cpu.n_active;
}

static size_t runner_bytes(const runner *r, int peak) {
#ifdef LISA_WITH_CUDA
    if (RUNNER_ON_GPU(r)) return peak ? lisa_cuda_trainer_peak_bytes(r->gpu) : lisa_cuda_trainer_bytes(r->gpu);
#endif
    return peak ? r->cpu.peak_bytes : lisa_trainer_total_bytes(&r->cpu);
}

static void runner_step(runner *r, const int *inputs, const int *targets, lisa_step_info *s) {
#ifdef LISA_WITH_CUDA
    if (RUNNER_ON_GPU(r)) {
        if (lisa_cuda_trainer_step(r->gpu, inputs, targets, s) != LISA_OK)
            die("GPU: %s", lisa_cuda_trainer_message(r->gpu));
        return;
    }
#endif
    if (lisa_trainer_step(&r->cpu, inputs, targets, s) != LISA_OK) die("%s", "out of memory for newly sampled layers");
}

/* Writes the run's state file; on the GPU through a CPU trainer holding its state. */
static void runner_save_state(const runner *r, const char *path, int step) {
    lisa_error err;
    /* the data position is the next batch index of B rows: the step count
       times the number of processes (1 alone) */
    step *= dp_world();
#ifdef LISA_WITH_CUDA
    if (RUNNER_ON_GPU(r)) {
        lisa_trainer cpu;
        lisa_model m;
        lisa_result res;
        if (lisa_cuda_trainer_to_cpu(r->gpu, &cpu, &m, &err) != LISA_OK) die("%s", err.message);
        res = lisa_trainer_save_state(&cpu, path, (uint64_t)step, &err);
        lisa_trainer_free(&cpu);
        lisa_model_free(&m);
        if (res != LISA_OK) die("%s", err.message);
        return;
    }
#endif
    if (lisa_trainer_save_state(&r->cpu, path, (uint64_t)step, &err) != LISA_OK) die("%s", err.message);
}

/* Brings the trained weights into r->model (a no-op on the CPU, which trains them in place). */
static void runner_sync_model(runner *r) {
#ifdef LISA_WITH_CUDA
    lisa_error err;
    if (RUNNER_ON_GPU(r) && lisa_cuda_trainer_get_model(r->gpu, r->model, &err) != LISA_OK) die("%s", err.message);
#else
    (void)r;
#endif
}

static void runner_free(runner *r) {
#ifdef LISA_WITH_CUDA
    if (RUNNER_ON_GPU(r)) {
        lisa_cuda_trainer_free(r->gpu);
        return;
    }
#endif
    lisa_trainer_free(&r->cpu);
}

/* The active layers as "[0,3]", or "all" in full mode. */
static const char *layers_text(const runner *r, char *buf, size_t size, int json) {
    int layers[4096], n = runner_active_layers(r, layers), i;
    size_t at = 0;
    if (!json && r->config.mode == LISA_MODE_FULL) return "all";
    if (!json && r->config.mode == LISA_MODE_LORA) return "adapters";
    buf[at++] = '[';
    for (i = 0; i < n && at + 12 < size; i++)
        at += (size_t)snprintf(buf + at, size - at, i ? ",%d" : "%d", layers[i]);
    snprintf(buf + at, size - at, "]");
    return buf;
}

/* One progress line: redrawn in place on a terminal; plain lines at about 20
   per run otherwise, and at every LISA switch. */
static void progress(const runner *t, const lisa_step_info *s, int steps, double tok_s, double s_per_step) {
    int tty = isatty(2);
    double left = s_per_step * (steps - s->step);
    char layers[256];
    if (!tty && !s->switched && s->step != steps && s->step % max_int(1, steps / 20) != 0) return;
    fprintf(stderr, "%sstep %d/%d  loss %.4f  lr %.2e  %.0f tok/s  %.0fs left  layers %s%s", tty ? "\r" : "",
            s->step, steps, s->loss, s->lr, tok_s, left, layers_text(t, layers, sizeof layers, 0),
            tty ? "   " : "\n");
    if (tty && s->step == steps) fputc('\n', stderr);
}

/* What a run draws: the loss of every step, validation points, LISA switches
   and the layers each switch made active (gamma per switch). */
typedef struct history {
    int n, n_val, n_switch, gamma, max_switches;
    int *steps, *val_steps, *switches, *switch_layers;
    float *loss, *val_loss;
} history;

/* Room for capacity steps; in LISA mode (gamma > 0) a switch every interval steps. */
static void history_init(history *h, int capacity, int gamma, int interval) {
    memset(h, 0, sizeof *h);
    h->gamma = gamma;
    h->max_switches = gamma > 0 ? capacity / max_int(1, interval) + 2 : 0;
    h->steps = (int *)malloc((3 * (size_t)(capacity + 1) + (size_t)h->max_switches * gamma) * sizeof(int));
    h->loss = (float *)malloc(2 * (size_t)(capacity + 1) * sizeof(float));
    if (!h->steps || !h->loss) die("%s", "out of memory");
    h->val_steps = h->steps + capacity + 1;
    h->switches = h->val_steps + capacity + 1;
    h->switch_layers = h->switches + capacity + 1;
    h->val_loss = h->loss + capacity + 1;
}

static void history_free(history *h) {
    free(h->steps);
    free(h->loss);
}

static void history_add_switch(history *h, const runner *r, int step) {
    int layers[4096];
    if (runner_active_layers(r, layers) == h->gamma && h->n_switch < h->max_switches)
        memcpy(h->switch_layers + (size_t)h->n_switch * h->gamma, layers, (size_t)h->gamma * sizeof(int));
    h->switches[h->n_switch++] = step;
}

/* A plain SVG line chart: x the step, y the loss; training loss as a line
   with a point per step, validation loss as dots, LISA switches as dashes. */
static void write_plot(const char *path, const history *h, const char *title) {
    const double W = 800, H = 420, L = 60, R = 20, T = 40, B = 50;
    double x0, x1, y0 = 1e30, y1 = -1e30;
    FILE *f;
    int i, k;
    if (h->n == 0) return;
    for (i = 0; i < h->n; i++) {
        y0 = fmin(y0, h->loss[i]);
        y1 = fmax(y1, h->loss[i]);
    }
    for (i = 0; i < h->n_val; i++) {
        y0 = fmin(y0, h->val_loss[i]);
        y1 = fmax(y1, h->val_loss[i]);
    }
    if (y1 - y0 < 1e-6) y1 = y0 + 1.0;
    x0 = h->steps[0];
    x1 = fmax(h->steps[h->n - 1], x0 + 1);
#define PX(s) (L + ((s) - x0) / (x1 - x0) * (W - L - R))
#define PY(v) (T + (y1 - (v)) / (y1 - y0) * (H - T - B))
    if (!(f = fopen(path, "w"))) die("cannot open %s for writing", path);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s</text>\n", L, title);
    fprintf(f, "<g stroke=\"#999\" stroke-width=\"1\"><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/></g>\n",
            L, H - B, W - R, H - B, L, T, L, H - B);
    for (k = 0; k <= 4; k++) { /* axis ticks */
        double v = y0 + (y1 - y0) * k / 4, st = x0 + (x1 - x0) * k / 4;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", L - 6, PY(v) + 4, v);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", PX(st), H - B + 18, st);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step</text>\n", (L + W - R) / 2, H - 8);
    for (i = 0; i < h->n_switch; i++)
        fprintf(f, "<line class=\"switch\" x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#c8a000\" stroke-dasharray=\"4 3\"/>\n",
                PX(h->switches[i]), T, PX(h->switches[i]), H - B);
    fprintf(f, "<polyline class=\"train\" fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1.5\" points=\"");
    for (i = 0; i < h->n; i++) fprintf(f, "%s%.1f,%.1f", i ? " " : "", PX(h->steps[i]), PY(h->loss[i]));
    fprintf(f, "\"/>\n");
    for (i = 0; i < h->n_val; i++)
        fprintf(f, "<circle class=\"val\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#d9480f\"/>\n", PX(h->val_steps[i]), PY(h->val_loss[i]));
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#1f5fbf\">training loss</text>\n", W - R - 220, T + 4);
    if (h->n_val) fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#d9480f\">validation loss</text>\n", W - R - 120, T + 4);
    if (h->n_switch) fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#c8a000\">LISA switch</text>\n", W - R - 220, T + 20);
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
    if (fclose(f) != 0) die("%s: write failed", path);
}

/* The mean loss of one batch over its counted targets. */
typedef float (*batch_loss_fn)(void *ctx, const int *inputs, const int *targets, int B, int T);

/* Mean loss over n batches of data, each weighted by its counted targets
   (those >= 0, as the loss counts them). */
static double mean_loss(const data_source *data, int B, int T, long n, batch_loss_fn batch_loss, void *ctx) {
    size_t span = (size_t)B * T, j;
    int *inputs = (int *)malloc(2 * span * sizeof(int)), *targets;
    double sum = 0.0;
    long counted = 0, i;
    if (!inputs) die("%s", "out of memory");
    targets = inputs + span;
    for (i = 0; i < n; i++) {
        long rows = 0;
        data_batch(data, i, B, T, inputs, targets);
        for (j = 0; j < span; j++) rows += targets[j] >= 0;
        sum += (double)batch_loss(ctx, inputs, targets, B, T) * rows;
        counted += rows;
    }
    free(inputs);
    return counted ? sum / counted : 0.0;
}

typedef struct cpu_eval {
    const lisa_model *m;
    lisa_acts acts;
} cpu_eval;

static float cpu_batch_loss(void *ctx, const int *inputs, const int *targets, int B, int T) {
    cpu_eval *e = (cpu_eval *)ctx;
    return lisa_model_forward(e->m, &e->acts, inputs, targets, B, T);
}

/* Mean loss of model m over n batches of B x T. */
static double eval_loss(const lisa_model *m, const data_source *data, int B, int T, long n) {
    cpu_eval e;
    lisa_error err;
    double loss;
    e.m = m;
    /* attached adapters keep their products per layer only without checkpointing */
    if (lisa_acts_init(&e.acts, &m->config, B, T, m->lora ? m->lora->checkpointing : 0, NULL, &err) != LISA_OK)
        die("%s", err.message);
    loss = mean_loss(data, B, T, n, cpu_batch_loss, &e);
    lisa_acts_free(&e.acts);
    return loss;
}

#ifdef LISA_WITH_CUDA
static float gpu_batch_loss(void *ctx, const int *inputs, const int *targets, int B, int T) {
    lisa_cuda_trainer *t = (lisa_cuda_trainer *)ctx;
    float loss;
    if (lisa_cuda_trainer_eval(t, inputs, targets, B, T, &loss) != LISA_OK) die("GPU: %s", lisa_cuda_trainer_message(t));
    return loss;
}
#endif

/* The run's mean loss on data: on the CPU from the model, on the GPU from the
   trainer's own weights. */
static double runner_eval_loss(runner *r, const data_source *data, long n) {
#ifdef LISA_WITH_CUDA
    if (RUNNER_ON_GPU(r)) return mean_loss(data, r->config.batch, r->config.seq, n, gpu_batch_loss, r->gpu);
#endif
    return eval_loss(r->model, data, r->config.batch, r->config.seq, n);
}

/* What a run is about to do, before its first step. */
static void train_intro(runner *r, const options *o, int first) {
    const lisa_train_config *tc = &r->config;
    if (dp_world() > 1)
        fprintf(stderr, "%d processes: a global batch of %d x %d rows\n", dp_world(), dp_world(), tc->batch);
    if (tc->mode == LISA_MODE_LISA)
        fprintf(stderr, "training steps %d to %d with LISA: %d of %d layers at a time, resampled every %d steps\n",
                first + 1, o->steps, tc->lisa_layers, r->model->config.n_layers, tc->lisa_interval);
    else if (tc->mode == LISA_MODE_LORA)
        fprintf(stderr, "training steps %d to %d with LoRA: rank %d, alpha %g, the layers frozen\n", first + 1,
                o->steps, tc->lora.rank, (double)tc->lora.alpha);
    else
        fprintf(stderr, "training steps %d to %d, all layers\n", first + 1, o->steps);
    if (RUNNER_ON_GPU(r))
        fprintf(stderr, "batch %d x seq %d on the GPU, %.1f MB of device memory held\n", tc->batch, tc->seq,
                runner_bytes(r, 0) / 1e6);
    else
        fprintf(stderr, "batch %d x seq %d, %d thread(s), %.1f MB held\n", tc->batch, tc->seq, thread_count(),
                runner_bytes(r, 0) / 1e6);
}

/* Steps r from its current step up to o->steps, batch i = step i (of P x B
   rows under mpirun -np P), saving
   state every o->save_every steps when asked. */
static void train_loop(runner *r, const data_source *data, const data_source *val, const options *o,
                       FILE *log, history *hist) {
    const lisa_train_config *tc = &r->config;
    int first = runner_step_count(r), step = first;
    int eval_every = o->eval_every ? o->eval_every : max_int(1, (o->steps - first) / 10);
    int *inputs, *targets, P = dp_world(), root = dp_root();
    size_t span = (size_t)tc->batch * tc->seq, mine = (size_t)g_dp.comm.rank * span;
    double start = now_seconds();
    /* The global batch (P x B rows; this rank's are B of them at mine). */
    inputs = (int *)malloc(2 * span * (size_t)P * sizeof(int));
    if (!inputs) die("%s", "out of memory");
    targets = inputs + span * (size_t)P;
    if (root) train_intro(r, o, first);
    else {
        log = NULL;
        hist = NULL;
    }
    while (step < o->steps) {
        lisa_step_info s;
        double t0 = now_seconds(), ms;
        char layers[4096], val_text[64] = "";
        data_batch(data, step, tc->batch * P, tc->seq, inputs, targets);
        runner_step(r, inputs + mine, targets + mine, &s);
        step = s.step;
        ms = (now_seconds() - t0) * 1e3;
        if (hist) {
            hist->steps[hist->n] = s.step;
            hist->loss[hist->n++] = s.loss;
            if (s.switched) history_add_switch(hist, r, s.step);
        }
        if (val && root && (s.step % eval_every == 0 || step == o->steps)) {
            double v = runner_eval_loss(r, val, data_batches(val, tc->batch, tc->seq));
            snprintf(val_text, sizeof val_text, ",\"val_loss\":%.6f", v);
            fprintf(stderr, "%sstep %d: validation loss %.4f\n", isatty(2) ? "\n" : "", s.step, v);
            if (hist) {
                hist->val_steps[hist->n_val] = s.step;
                hist->val_loss[hist->n_val++] = (float)v;
            }
        }
        if (log)
            fprintf(log, "{\"step\":%d,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,\"allreduce_bytes\":%lu,\"tokens_per_s\":%.1f,\"ms\":%.3f,\"active_layers\":%s%s}\n",
                    s.step, s.loss, s.lr, s.grad_norm, (unsigned long)s.allreduce_bytes, span * P / (ms / 1e3), ms,
                    layers_text(r, layers, sizeof layers, 1), val_text);
        if (root) progress(r, &s, o->steps, span * P / (ms / 1e3), (now_seconds() - start) / (s.step - first));
        if (root && o->save_state && ((o->save_every && step % o->save_every == 0) || step == o->steps))
            runner_save_state(r, o->save_state, step);
    }
    if (root) fprintf(stderr, "peak memory %.1f MB%s\n", runner_bytes(r, 1) / 1e6, RUNNER_ON_GPU(r) ? " of the GPU's" : "");
    free(inputs);
}

/* Sets up r to train m with o's settings: on the GPU with --dtype in build/lisa-cuda. */
static void runner_init(runner *r, lisa_model *m, const options *o) {
    lisa_error err;
    memset(r, 0, sizeof *r);
    r->model = m;
#ifdef LISA_WITH_CUDA
    if (on_gpu(o)) {
        lisa_cuda_config cc = lisa_cuda_config_default();
        cc.dtype = run_dtype(o);
        cc.device = o->gpu_index;
        if (lisa_cuda_trainer_create(&r->gpu, &m->config, m, 0, &o->tc, &cc, &err) != LISA_OK)
            die("%s", err.message);
        r->config = o->tc; /* resolved as the trainer resolved it (it accepted it) */
        lisa_train_config_resolve(&r->config, &m->config, NULL);
        return;
    }
#endif
    if (lisa_trainer_init(&r->cpu, m, &o->tc, NULL, &err) != LISA_OK) die("%s", err.message);
    r->config = r->cpu.config;
}

/* A run loaded into r's CPU trainer continues on the GPU (--device gpu), in
   --dtype: the GPU trainer takes over its state, the CPU trainer goes. */
static void runner_resume_on_gpu(runner *r, const options *o) {
#ifdef LISA_WITH_CUDA
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_error err;
    if (!on_gpu(o)) return;
    cc.dtype = run_dtype(o);
    cc.device = o->gpu_index;
    if (lisa_cuda_trainer_from_cpu(&r->gpu, &r->cpu, &cc, &err) != LISA_OK) die("%s", err.message);
    lisa_trainer_free(&r->cpu);
#else
    (void)r;
    (void)o;
#endif
}

/* The file's dtype for a saved model: --out-dtype (convert's --dtype), f32 by
   default; a lisa_file_dtype or FILE_Q8_0. */
static int out_dtype(const options *o) {
    return o->out_dtype >= 0 ? o->out_dtype : LISA_FILE_F32;
}

/* train's and eval's tokenizer and chat template: loaded for instruction
   data only (token files need neither). */
static void data_text_setup(text_setup *ts, const options *o, int model_vocab) {
    memset(ts, 0, sizeof *ts);
    if (is_instruction_data(o->data) || is_instruction_data(o->val)) text_setup_load(ts, o, NULL, model_vocab, 1);
}

/* --lora-adapter-in: the adapter's r, lora_alpha and target_modules become
   the run's (a --lora-rank, --lora-alpha or --lora-targets given must agree). */
static void lora_config_from_adapter(options *o) {
    lisa_lora_config lc;
    lisa_error err;
    if (o->tc.mode != LISA_MODE_LORA) die("%s", "train: --lora-adapter-in needs --mode lora");
    if (lisa_lora_read_peft_config(o->lora_adapter_in, &lc, NULL, &err) != LISA_OK) die("%s", err.message);
    if ((o->tc.lora.rank && o->tc.lora.rank != lc.rank) || (o->tc.lora.alpha != 0.0f && o->tc.lora.alpha != lc.alpha) ||
        (o->lora_targets && o->tc.lora.targets != lc.targets))
        die("%s: its r %d, lora_alpha %g or target_modules differ from --lora-rank, --lora-alpha or --lora-targets",
            o->lora_adapter_in, lc.rank, (double)lc.alpha);
    o->tc.lora.rank = lc.rank;
    o->tc.lora.alpha = lc.alpha;
    o->tc.lora.targets = lc.targets;
}

/* The end of a LoRA run: the adapter in peft's format (--out-adapter), then
   folded into the model, which --out saves. */
static void finish_lora(runner *r, lisa_model *m, const options *o) {
    lisa_error err;
    if (o->out_adapter && dp_root()) {
        mkdir(o->out_adapter, 0777); /* an existing directory is fine; other failures show in the save */
        if (lisa_lora_save_peft(&r->cpu.lora, o->out_adapter, o->model, &err) != LISA_OK) die("%s", err.message);
        fprintf(stderr, "wrote the adapter to %s\n", o->out_adapter);
    }
    m->lora = NULL;
    lisa_lora_merge(m, &r->cpu.lora);
}

/* eval and generate --lora-adapter-in: the adapter merged into m. */
static void merge_adapter_or_die(lisa_model *m, const char *dir) {
    lisa_lora_config lc;
    lisa_lora l;
    lisa_error err;
    if (!dir) return;
    if (lisa_lora_read_peft_config(dir, &lc, NULL, &err) != LISA_OK ||
        lisa_lora_init(&l, &m->config, &lc, 0, 0, 0, NULL, &err) != LISA_OK)
        die("%s", err.message);
    if (lisa_lora_load_peft(&l, dir, &err) != LISA_OK) die("%s", err.message);
    lisa_lora_merge(m, &l);
    lisa_lora_free(&l);
}

static int cmd_train(options *o) {
    lisa_model m;
    runner r;
    data_source data, val;
    text_setup ts;
    history hist;
    lisa_error err;
    FILE *log = NULL;
    if (o->model && o->init) die("%s", "train: give exactly one of --model and --init (with --resume, or neither)");
    if (!o->resume && !o->model && !o->init) die("%s", "train: give exactly one of --model, --init and --resume");
    if (!o->resume) refuse_lisa_options_in_full_mode(o, o->tc.mode, "the mode is full (the default): add --mode lisa");
    if (!o->data) die("%s", "train: --data is required");
    if (o->lora_adapter_in && !o->resume) lora_config_from_adapter(o);
    if (!o->out) die("%s", "train: --out is required");
    check_out_dtype(o->out, out_dtype(o));
    if (o->max_shard_size) g_max_shard_bytes = parse_shard_size(o->max_shard_size);
    if (o->tc.schedule.total_steps == 0) o->tc.schedule.total_steps = o->steps;
    set_threads(o->threads);
    if (o->resume) {
        uint64_t position;
        memset(&r, 0, sizeof r);
        if (lisa_trainer_load_state(&r.cpu, &m, o->resume, NULL, &position, &err) != LISA_OK) die("%s", err.message);
        if (position != (uint64_t)r.cpu.step * (uint64_t)dp_world())
            die("%s: the data position (%llu batches) does not match the step count (%d) times the number of "
                "processes (%d): resume with the -np of the run that wrote it", o->resume,
                (unsigned long long)position, r.cpu.step, dp_world());
        r.cpu.config.comm = dp_train_comm(on_gpu(o), &o->gpu_index);
        r.model = &m;
        r.config = r.cpu.config;
        refuse_changed_settings(o, &r.config, &m.config);
        if (o->lora_targets && o->tc.lora.targets != r.config.lora.targets)
            die("--lora-targets %s differs from the state's adapters; a resumed run keeps the state's settings",
                o->lora_targets);
        if (o->lora_adapter_in) die("%s", "train: --lora-adapter-in starts a run; a resumed run has its adapters");
        refuse_lisa_options_in_full_mode(o, r.config.mode, "the state's run trains every layer (mode full): drop it");
        if (dp_root()) fprintf(stderr, "resuming %s at step %d\n", o->resume, r.cpu.step);
        runner_resume_on_gpu(&r, o);
    } else {
        if (o->model) load_model_or_die(&m, o->model);
        else {
            lisa_config c = parse_init(o->init);
            if (lisa_model_init(&m, &c, NULL, &err) != LISA_OK) die("--init: %s", err.message);
            lisa_model_init_random(&m, o->seed);
        }
        resolve_seq(o, &m.config);
        check_probs(o, &m.config);
        if (o->tc.mode == LISA_MODE_LORA && on_gpu(o))
            die("%s", "train --mode lora: LoRA trains on the CPU only (add --device cpu)");
        dp_same_start(m.params, m.layout.n_params);
        o->tc.comm = dp_train_comm(on_gpu(o), &o->gpu_index);
        runner_init(&r, &m, o);
        if (o->lora_adapter_in && lisa_lora_load_peft(&r.cpu.lora, o->lora_adapter_in, &err) != LISA_OK)
            die("%s", err.message);
    }
    data_text_setup(&ts, o, m.config.vocab_size);
    load_data_or_die(&data, o->data, &ts, m.config.vocab_size, r.config.seq, o->pack);
    if (o->val) load_data_or_die(&val, o->val, &ts, m.config.vocab_size, r.config.seq, o->pack);
    text_setup_free(&ts);
    if (o->log && dp_root() && !(log = fopen(o->log, "w"))) die("cannot open %s for writing", o->log);
    history_init(&hist, max_int(0, o->steps - runner_step_count(&r)),
                 r.config.mode == LISA_MODE_LISA ? r.config.lisa_layers : 0, r.config.lisa_interval);
    train_loop(&r, &data, o->val ? &val : NULL, o, log, &hist);
    if (log) fclose(log);
    if (o->plot && dp_root()) {
        write_plot(o->plot, &hist, r.config.mode == LISA_MODE_LISA ? "lisa train: LISA"
                                   : r.config.mode == LISA_MODE_LORA ? "lisa train: LoRA" : "lisa train: all layers");
        fprintf(stderr, "wrote %s\n", o->plot);
    }
    history_free(&hist);
    if (o->val) data_free(&val);
    runner_sync_model(&r);
    if (r.config.mode == LISA_MODE_LORA) finish_lora(&r, &m, o);
    runner_free(&r);
    dp_report_weights(m.params, m.layout.n_params);
    if (dp_root()) save_model_or_die(&m, o->out, out_dtype(o), tokenizer_spec(o, NULL));
    data_free(&data);
    lisa_model_free(&m);
    return 0;
}

/* ---- eval ---------------------------------------------------------------- */

static char *read_file_or_die(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    long n = 0;
    char *text;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) die("%s: cannot read", path);
    text = (char *)malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) die("%s: cannot read", path);
    fclose(f);
    text[n] = 0;
    *size = (size_t)n;
    return text;
}

/* Where BOS and EOS go around a text: the program's one convention for it. */
typedef enum text_use {
    TEXT_DOCUMENT,    /* tokenize: what the tokenizer's configuration adds (t->add_bos, t->add_eos),
                         as transformers' tokenizer(text).input_ids */
    TEXT_PROMPT,      /* generate's --prompt: the configuration's BOS; no EOS, the model goes on */
    TEXT_INSTRUCTION  /* an instruction's prompt without a chat template: BOS first, as
                         lisa_sft_load starts every example */
} text_use;

static void bos_eos_of(const lisa_tokenizer *tok, text_use use, int *bos, int *eos) {
    *bos = use == TEXT_INSTRUCTION ? 1 : tok->add_bos;
    *eos = use == TEXT_DOCUMENT ? tok->add_eos : 0;
}

/* text's token ids, BOS and EOS as `use` says, in an array with room for
   extra more (*ids: call free()). */
static lisa_result encode_alloc(const lisa_tokenizer *tok, const char *text, size_t len, text_use use, size_t extra,
                                int **ids, size_t *n, lisa_error *err) {
    lisa_result r;
    int bos, eos;
    bos_eos_of(tok, use, &bos, &eos);
    *ids = NULL;
    if ((r = lisa_tokenizer_encode(tok, text, len, bos, eos, NULL, 0, n, err)) != LISA_OK) return r;
    if (!(*ids = (int *)malloc((*n + extra > 0 ? *n + extra : 1) * sizeof(int)))) die("%s", "out of memory");
    if ((r = lisa_tokenizer_encode(tok, text, len, bos, eos, *ids, *n, n, err)) != LISA_OK) {
        free(*ids);
        *ids = NULL;
    }
    return r;
}

/* The tokens that end generation (-1: none): EOS, and a chat template's end of turn. */
typedef struct stop_ids {
    int a, b;
} stop_ids;

static int is_stop(stop_ids s, int id) { return id >= 0 && (id == s.a || id == s.b); }

/* The stops of a run: EOS, and with a chat template its end-of-turn token. */
static stop_ids stops_of(const lisa_tokenizer *tok, const lisa_chat_template *tmpl) {
    stop_ids s;
    s.a = tok->eos_id;
    s.b = tmpl ? lisa_chat_end_of_turn_id(tmpl, tok) : -1;
    return s;
}

/* Called with each new token; nonzero stops generation after it. */
typedef int (*token_fn)(void *user, int id);

/* lisa_generate() with two stop tokens: feeds the prompt (n_prompt >= 1)
   from position 0, then samples up to max_new tokens into out, stopping
   after a stop token, when on_token (may be NULL) says so, or when the
   cache is full; returns how many. */
static int generate_ids(const lisa_model *m, lisa_kv_cache *kc, const int *prompt, int n_prompt, int *out, int max_new,
                        float temperature, float top_p, stop_ids stop, lisa_rng *rng, token_fn on_token, void *user) {
    const float *logits = NULL;
    float *work = (float *)malloc(2 * (size_t)m->config.vocab_size * sizeof(float));
    int i, n = 0;
    if (!work) die("%s", "out of memory");
    lisa_kv_cache_reset(kc);
    for (i = 0; i < n_prompt && kc->len < kc->max_len; i++) logits = lisa_model_step(m, kc, prompt[i]);
    while (logits && n < max_new) {
        int next = lisa_sample_logits(logits, m->config.vocab_size, temperature, top_p, rng, work);
        out[n++] = next;
        if ((on_token && on_token(user, next)) || is_stop(stop, next) || kc->len >= kc->max_len) break;
        logits = lisa_model_step(m, kc, next);
    }
    free(work);
    return n;
}

/* The text generated after a prompt: ids[n_prompt ...], n_new of them, up to
   a stop token, each piece read after the id before it: the whole sequence's
   lisa_tokenizer_decode less the prompt's part. Ids the tokenizer has no text
   for (a model vocabulary larger than the tokenizer's) are left out.
   Call free(). */
static char *continuation_text(const lisa_tokenizer *tok, const int *ids, size_t n_prompt, size_t n_new, stop_ids stop,
                               size_t *len) {
    int *kept = (int *)malloc((n_prompt + n_new + 1) * sizeof(int));
    size_t n = n_prompt, i, prompt_len = 0, total = 0;
    char *text = NULL;
    lisa_error err;
    if (!kept) die("%s", "out of memory");
    memcpy(kept, ids, n_prompt * sizeof(int));
    for (i = n_prompt; i < n_prompt + n_new && !is_stop(stop, ids[i]); i++)
        if (ids[i] >= 0 && ids[i] < tok->vocab_size) kept[n++] = ids[i];
    if (lisa_tokenizer_decode(tok, kept, n_prompt, NULL, 0, &prompt_len, &err) != LISA_OK ||
        lisa_tokenizer_decode(tok, kept, n, NULL, 0, &total, &err) != LISA_OK)
        die("%s", err.message);
    if (!(text = (char *)malloc(total + 1))) die("%s", "out of memory");
    if (lisa_tokenizer_decode(tok, kept, n, text, total + 1, &total, &err) != LISA_OK) die("%s", err.message);
    free(kept);
    memmove(text, text + prompt_len, total - prompt_len + 1);
    *len = total - prompt_len;
    return text;
}

/* Cuts an answer's text at the template's end-of-turn marker: where the
   tokenizer has no single token for it (chatml's "<|im_end|>" with bytes), the
   model writes it as text and generation cannot stop at an id. */
static void cut_at_end_of_turn(const lisa_chat_template *tmpl, char *text, size_t *len) {
    char *at;
    if (tmpl && tmpl->end_of_turn && *tmpl->end_of_turn && (at = strstr(text, tmpl->end_of_turn)) != NULL) {
        *at = 0;
        *len = (size_t)(at - text);
    }
}

/* A chat prompt's ids: the messages rendered by tmpl with the generation
   prompt, in an array with room for extra more (*ids: call free()). */
static lisa_result encode_chat_alloc(const lisa_chat_template *tmpl, const lisa_tokenizer *tok, const lisa_chat_message *m,
                                     int n, size_t extra, int **ids, size_t *n_ids, lisa_error *err) {
    lisa_chat_tokens ct;
    lisa_result r = lisa_chat_encode(&ct, tmpl, tok, m, n, 1, NULL, err);
    *ids = NULL;
    *n_ids = 0;
    if (r != LISA_OK) return r;
    if (!(*ids = (int *)malloc((ct.n + extra + 1) * sizeof(int)))) die("%s", "out of memory");
    memcpy(*ids, ct.ids, ct.n * sizeof(int));
    *n_ids = ct.n;
    lisa_chat_tokens_free(&ct);
    return LISA_OK;
}

/* Exact-match accuracy: the greedy continuation of each prompt, up to EOS
   (or the chat template's end of turn), against the response, both without
   surrounding whitespace. */
typedef struct match_state {
    const lisa_model *m;
    const lisa_tokenizer *tok;
    const lisa_chat_template *tmpl;  /* NULL: prompts are BOS + the prompt's text */
    lisa_kv_cache kc;
    int n, correct, shown;
} match_state;

static void trim(const char **s, size_t *len) {
    while (*len > 0 && (**s == ' ' || **s == '\n' || **s == '\t' || **s == '\r')) { (*s)++; (*len)--; }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\n' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\r')) (*len)--;
}

/* At most 60 bytes of a text, for a line about it. */
static int shown_len(size_t n) { return n < 60 ? (int)n : 60; }

/* Room for a generated answer: the response's tokens, the end-of-turn
   marker's (it may be text: cut_at_end_of_turn) and a few more. */
static lisa_result answer_room(const match_state *ms, const char *response, size_t response_len, int *max_new,
                               lisa_error *err) {
    size_t n = 0, marker = 0;
    const char *eot = ms->tmpl && ms->tmpl->end_of_turn ? ms->tmpl->end_of_turn : "";
    lisa_result r = lisa_tokenizer_encode(ms->tok, response, response_len, 0, 1, NULL, 0, &n, err);
    if (r == LISA_OK) r = lisa_tokenizer_encode(ms->tok, eot, strlen(eot), 0, 0, NULL, 0, &marker, err);
    *max_new = (int)(n + marker) + 8;
    return r;
}

/* Counts one example: ids holds its n_prompt prompt ids and room for max_new more. */
static void match_answer(match_state *ms, int *ids, size_t n_prompt, int max_new, const char *prompt, size_t prompt_len,
                         const char *response, size_t response_len) {
    stop_ids stop = stops_of(ms->tok, ms->tmpl);
    size_t got_len, bl = response_len;
    const char *a, *b = response;
    char *text;
    lisa_rng rng;
    int got, ok;
    ms->n++;
    if (n_prompt == 0 || n_prompt >= (size_t)ms->kc.max_len) return; /* no room to answer: counts as wrong */
    lisa_rng_seed(&rng, 0);
    got = generate_ids(ms->m, &ms->kc, ids, (int)n_prompt, ids + n_prompt, max_new, 0.0f, 1.0f, stop, &rng, NULL, NULL);
    text = continuation_text(ms->tok, ids, n_prompt, (size_t)got, stop, &got_len);
    cut_at_end_of_turn(ms->tmpl, text, &got_len);
    a = text;
    trim(&a, &got_len);
    trim(&b, &bl);
    ok = got_len == bl && memcmp(a, b, bl) == 0;
    if (!ok && ms->shown < 3) { /* a few misses, to see what the model does */
        fprintf(stderr, "miss: %.*s -> \"%.*s\" (expected \"%.*s\")\n", shown_len(prompt_len), prompt, (int)got_len, a,
                shown_len(bl), b);
        ms->shown++;
    }
    ms->correct += ok;
    free(text);
}

static lisa_result match_example(void *user, const char *prompt, size_t prompt_len, const char *response,
                                 size_t response_len, lisa_error *err) {
    match_state *ms = (match_state *)user;
    size_t n_prompt = 0;
    int *ids, max_new;
    lisa_result r;
    if ((r = answer_room(ms, response, response_len, &max_new, err)) != LISA_OK) return r;
    if ((r = encode_alloc(ms->tok, prompt, prompt_len, TEXT_INSTRUCTION, (size_t)max_new, &ids, &n_prompt, err)) != LISA_OK)
        return r;
    match_answer(ms, ids, n_prompt, max_new, prompt, prompt_len, response, response_len);
    free(ids);
    return LISA_OK;
}

/* A conversation (or a pair as one): the messages before its last answer,
   rendered with the generation prompt, are the prompt; that answer the response. */
static lisa_result match_conversation(void *user, const lisa_chat_message *m, int n, lisa_error *err) {
    match_state *ms = (match_state *)user;
    int last = n - 1, *ids, max_new;
    size_t n_prompt;
    lisa_result r;
    while (last >= 0 && m[last].role != LISA_CHAT_ASSISTANT) last--;
    if (last < 1) return LISA_OK; /* no prompt before the answer: nothing to ask */
    if ((r = answer_room(ms, m[last].content, m[last].content_len, &max_new, err)) != LISA_OK) return r;
    if ((r = encode_chat_alloc(ms->tmpl, ms->tok, m, last, (size_t)max_new, &ids, &n_prompt, err)) != LISA_OK) return r;
    match_answer(ms, ids, n_prompt, max_new, m[last - 1].content, m[last - 1].content_len, m[last].content,
                 m[last].content_len);
    free(ids);
    return LISA_OK;
}

/* Exact-match accuracy of the model's greedy answers on instruction data
   text, prompts rendered with tmpl where one is given; with show_misses, a
   few wrong answers go to stderr. */
static double exact_match_text(const lisa_model *m, const lisa_tokenizer *tok, const lisa_chat_template *tmpl,
                               const char *text, size_t size, const char *name, int show_misses, int *n_out) {
    match_state ms;
    lisa_error err;
    lisa_result r;
    memset(&ms, 0, sizeof ms);
    ms.m = m;
    ms.tok = tok;
    ms.tmpl = tmpl;
    ms.shown = show_misses ? 0 : 3;
    if (lisa_kv_cache_init(&ms.kc, &m->config, 0, NULL, &err) != LISA_OK) die("%s", err.message);
    r = tmpl ? lisa_sft_for_each_chat(text, size, name, NULL, match_conversation, &ms, &err)
             : lisa_sft_for_each(text, size, name, NULL, match_example, &ms, &err);
    if (r != LISA_OK) die("%s", err.message);
    lisa_kv_cache_free(&ms.kc);
    *n_out = ms.n;
    return ms.n ? (double)ms.correct / ms.n : 0.0;
}

static double exact_match(const lisa_model *m, const text_setup *ts, const char *path, int *n_out) {
    size_t size;
    char *text = read_file_or_die(path, &size);
    double acc = exact_match_text(m, &ts->tok, ts->tmpl, text, size, path, 1, n_out);
    free(text);
    return acc;
}

static int cmd_eval(options *o) {
    lisa_model m;
    data_source data;
    text_setup ts;
    double loss;
    int B = o->tc.batch, T;
    long batches;
    if (!o->model || !o->data) die("%s", "eval: --model and --data are required");
    set_threads(o->threads);
    load_model_or_die(&m, o->model);
    merge_adapter_or_die(&m, o->lora_adapter_in);
    resolve_seq(o, &m.config);
    T = o->tc.seq;
    if (T > m.config.max_seq_len) die("%s", "eval: --seq exceeds the model's maximum sequence length");
    data_text_setup(&ts, o, m.config.vocab_size);
    load_data_or_die(&data, o->data, &ts, m.config.vocab_size, T, o->pack);
    batches = o->batches ? o->batches : data_batches(&data, B, T);
    loss = eval_loss(&m, &data, B, T, batches);
    printf("loss %.6f perplexity %.4f (%ld batches of %d x %d)\n", loss, exp(loss), batches, B, T);
    if (data.is_sft) {
        int n;
        double acc = exact_match(&m, &ts, o->data, &n);
        printf("exact match %.1f%% (%d of %d greedy answers)\n", 100.0 * acc, (int)(acc * n + 0.5), n);
    }
    text_setup_free(&ts);
    data_free(&data);
    lisa_model_free(&m);
    return 0;
}

/* ---- plan ---------------------------------------------------------------- */

/* The planner of the trainer that would run: lisa.h's (CPU) or lisa_cuda.h's (GPU). */
static lisa_result plan_for(int gpu, const lisa_config *c, const lisa_train_config *tc, lisa_dtype dtype,
                            lisa_memory_plan *p, lisa_error *err) {
    return gpu ? lisa_cuda_plan_memory(c, tc, dtype, p, err) : lisa_plan_memory(c, tc, dtype, p, err);
}

static void print_plan_row(const char *name, size_t a, size_t b) {
    printf("  %-13s %12.3f GiB %12.3f GiB\n", name, a / 1073741824.0, b / 1073741824.0);
}

static int cmd_plan(options *o) {
    lisa_config c;
    lisa_train_config full;
    lisa_memory_plan p, pf;
    lisa_dtype dtype = run_dtype(o);
    lisa_error err;
    int gpu = on_gpu(o);
    if (!o->model == !o->init) die("%s", "plan: give exactly one of --model and --init");
    refuse_lisa_options_in_full_mode(o, o->tc.mode, "the mode is full (the default): add --mode lisa");
    if (o->model) {
        if (lisa_model_read_config(o->model, &c, NULL, &err) != LISA_OK) die("%s", err.message);
    } else {
        c = parse_init(o->init);
    }
    if (lisa_config_resolve(&c, &err) != LISA_OK) die("%s", err.message);
    resolve_seq(o, &c);
    check_probs(o, &c);
    if (!gpu && dtype == LISA_DTYPE_BF16) die("%s", "plan: the CPU trainer is fp32 only (bf16 is the GPU's)");
    if (plan_for(gpu, &c, &o->tc, dtype, &p, &err) != LISA_OK) die("%s", err.message);
    full = o->tc;
    full.mode = LISA_MODE_FULL;
    full.keep_state = 0;
    plan_for(gpu, &c, &full, dtype, &pf, NULL);
    printf("model: dim %d, hidden %d, %d layers, %d heads (%d kv), vocab %d, %s head, %.3fB parameters\n",
           c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.tied_head ? "tied" : "separate",
           p.params / 1e9);
    printf("setup: %s, batch %d x seq %d, %s, %s\n", gpu ? "GPU trainer" : "CPU trainer", o->tc.batch, o->tc.seq,
           o->tc.checkpointing ? "gradient checkpointing" : "no checkpointing",
           dtype == LISA_DTYPE_F32 ? "fp32" : "bf16 weights + fp32 master/gradients/moments for trained blocks");
    if (o->tc.mode == LISA_MODE_LISA)
        printf("LISA: %d of %d layers at a time%s\n\n", o->tc.lisa_layers, c.n_layers,
               o->tc.keep_state ? ", keeping every sampled layer's moments" : "");
    else if (o->tc.mode == LISA_MODE_LORA)
        printf("LoRA: rank %d, alpha %g, the layers frozen\n\n", o->tc.lora.rank ? o->tc.lora.rank : 8,
               o->tc.lora.alpha != 0.0f ? (double)o->tc.lora.alpha : 16.0);
    else
        printf("full fine-tuning\n\n");
    printf("  %-13s %16s %16s\n", "", "this setup", "full fine-tune");
    print_plan_row("weights", p.weights, pf.weights);
    print_plan_row("gradients", p.gradients, pf.gradients);
    print_plan_row("optimizer", p.optimizer, pf.optimizer);
    print_plan_row("activations", p.activations, pf.activations);
    print_plan_row("scratch", p.scratch, pf.scratch);
    print_plan_row("tables", p.tables, pf.tables);
    print_plan_row("peak", p.peak, pf.peak);
    printf("  %-13s %13.1f %%  %13.1f %%\n", "trained", 100.0 * p.trained_params / p.params,
           100.0 * pf.trained_params / pf.params);
    if (o->budget > 0.0)
        printf("\n%s in %.1f GiB (peak %.2f GiB)\n", p.peak <= o->budget * 1073741824.0 ? "fits" : "does NOT fit",
               o->budget, p.peak / 1073741824.0);
    return 0;
}

/* ---- convert and tokenize ----------------------------------------------- */

static int cmd_convert(options *o) {
    lisa_model m;
    if (o->n_args < 2) die("%s", "convert: give IN and OUT");
    check_out_dtype(o->args[1], out_dtype(o));
    if (o->max_shard_size) g_max_shard_bytes = parse_shard_size(o->max_shard_size);
    load_model_or_die(&m, o->args[0]);
    save_model_or_die(&m, o->args[1], out_dtype(o),
                      has_hf_tokenizer(o->args[0]) || is_gguf_file(o->args[0]) ? o->args[0] : NULL);
    lisa_model_free(&m);
    return 0;
}

static int cmd_tokenize(options *o) {
    const char *in = o->args[0], *out = o->args[1];
    lisa_tokenizer tok;
    lisa_error err;
    char *text;
    size_t size, n = 0;
    int *ids;
    double t0 = now_seconds();
    if (!o->tokenizer || o->n_args < 2) die("%s", "tokenize: give --tokenizer, IN.txt and OUT.tok");
    load_tokenizer_or_die(&tok, o->tokenizer, 0);
    text = read_file_or_die(in, &size);
    if (encode_alloc(&tok, text, size, TEXT_DOCUMENT, 0, &ids, &n, &err) != LISA_OK) die("%s", err.message);
    if (lisa_tokens_save(ids, n, out, &err) != LISA_OK) die("%s", err.message);
    fprintf(stderr, "%s: %lu bytes -> %lu tokens in %.2f s -> %s\n", in, (unsigned long)size, (unsigned long)n,
            now_seconds() - t0, out);
    free(ids);
    free(text);
    lisa_tokenizer_free(&tok);
    return 0;
}

/* ---- generate ------------------------------------------------------------ */

/* generate's output as it is made: each token's text through
   lisa_tokenizer_stream (never half a character), up to a stop token or,
   in a chat whose end-of-turn marker is text (chatml with bytes), up to the
   marker: text that may be the marker's start is held back until it shows
   it is not. */
typedef struct text_stream {
    const lisa_tokenizer *tok;
    stop_ids stop;
    const char *marker;       /* "" for none */
    lisa_tokenizer_stream s;
    char *text;               /* the answer so far, NUL-terminated */
    size_t len, cap, printed; /* text[0 .. printed) is on stdout */
    int ended;                /* the marker came */
} text_stream;

static void text_stream_init(text_stream *ts, const lisa_tokenizer *tok, stop_ids stop, const char *marker, int last_prompt_id) {
    memset(ts, 0, sizeof *ts);
    ts->tok = tok;
    ts->stop = stop;
    ts->marker = marker ? marker : "";
    lisa_tokenizer_stream_init(&ts->s);
    ts->s.prev_id = last_prompt_id; /* pieces read after the prompt, as continuation_text reads them */
    ts->cap = 256;
    if (!(ts->text = (char *)malloc(ts->cap))) die("%s", "out of memory");
    ts->text[0] = 0;
}

/* Room for n more bytes and a NUL at the end of the text. */
static void text_stream_reserve(text_stream *ts, size_t n) {
    while (ts->len + n + 1 > ts->cap) {
        ts->cap *= 2;
        if (!(ts->text = (char *)realloc(ts->text, ts->cap))) die("%s", "out of memory");
    }
}

/* Prints what is safe to print: all of it at the end (final), else all but
   a tail that may be the start of the marker; stops at the marker. */
static void text_stream_print(text_stream *ts, int final) {
    size_t m = strlen(ts->marker), upto = ts->len;
    char *at = m ? strstr(ts->text + (ts->printed > m ? ts->printed - m : 0), ts->marker) : NULL;
    if (at) {
        upto = (size_t)(at - ts->text);
        ts->ended = 1;
    } else if (!final && m) {
        upto = ts->len >= m - 1 ? ts->len - (m - 1) : 0;
    }
    if (upto > ts->printed) {
        fwrite(ts->text + ts->printed, 1, upto - ts->printed, stdout);
        fflush(stdout);
        ts->printed = upto;
    }
}

static int text_stream_token(void *user, int id) {
    text_stream *ts = (text_stream *)user;
    size_t n = 0;
    lisa_error err;
    if (is_stop(ts->stop, id) || !lisa_tokenizer_piece(ts->tok, ts->s.prev_id, id, &n)) return 0; /* no text of its own */
    text_stream_reserve(ts, n + 4); /* the piece and up to 4 held-back bytes */
    if (lisa_tokenizer_stream_next(ts->tok, &ts->s, id, ts->text + ts->len, ts->cap - ts->len, &n, &err) != LISA_OK)
        die("%s", err.message);
    ts->len += n;
    ts->text[ts->len] = 0;
    text_stream_print(ts, 0);
    return ts->ended;
}

static void text_stream_end(text_stream *ts) {
    text_stream_reserve(ts, 4);
    ts->len += lisa_tokenizer_stream_flush(&ts->s, ts->text + ts->len, ts->cap - ts->len);
    ts->text[ts->len] = 0;
    text_stream_print(ts, 1);
    free(ts->text);
}

static void print_ids(const char *what, const int *ids, size_t n) {
    size_t i;
    fprintf(stderr, "%s:", what);
    for (i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* generate's prompt ids, with room for o->steps more: --prompt as a user
   message in the chat template (--chat), else its text as TEXT_PROMPT says;
   an empty text starts from BOS. */
static int *generate_prompt(const options *o, const text_setup *ts, size_t *n) {
    lisa_error err;
    int *ids;
    if (o->chat) {
        lisa_chat_message msg;
        msg.role = LISA_CHAT_USER;
        msg.content = o->prompt;
        msg.content_len = strlen(o->prompt);
        if (encode_chat_alloc(ts->tmpl, &ts->tok, &msg, 1, (size_t)o->steps, &ids, n, &err) != LISA_OK)
            die("generate --chat: %s", err.message);
        return ids;
    }
    if (encode_alloc(&ts->tok, o->prompt, strlen(o->prompt), TEXT_PROMPT, (size_t)o->steps + 1, &ids, n, &err) != LISA_OK)
        die("%s", err.message);
    if (*n == 0) {
        if (ts->tok.bos_id < 0) die("%s: the prompt is empty and the tokenizer has no BOS: give --prompt", ts->name);
        ids[(*n)++] = ts->tok.bos_id;
    }
    return ids;
}

/* How a generation ended, for its last line. */
static const char *stop_reason(const text_stream *out, stop_ids stop, int chat, const int *new_ids, int got) {
    int last = got > 0 ? new_ids[got - 1] : -1;
    if (out->ended || (chat && is_stop(stop, last) && last == stop.b)) return ", stopped at the end of the turn";
    return is_stop(stop, last) ? ", stopped at EOS" : "";
}

static int cmd_generate(options *o) {
    int *ids, got;
    size_t n_ids = 0;
    lisa_model m;
    text_setup ts;
    text_stream out;
    lisa_kv_cache kc;
    lisa_rng rng;
    lisa_error err;
    stop_ids stop;
    double t0;
    if (!o->model) die("%s", "generate: --model is required");
    if (o->temperature < 0.0f || o->top_p <= 0.0f || o->top_p > 1.0f)
        die("%s", "generate: need temperature >= 0 and 0 < top-p <= 1");
    set_threads(o->threads);
    load_model_or_die(&m, o->model);
    merge_adapter_or_die(&m, o->lora_adapter_in);
    text_setup_load(&ts, o, "bytes", m.config.vocab_size, o->chat);
    if (!o->tokenizer && ts.tok.kind == LISA_TOKENIZER_BYTES && m.config.vocab_size != LISA_BYTES_VOCAB)
        fprintf(stderr, "lisa: generate: no --tokenizer, and %s holds no tokenizer: using bytes, which a model "
                "of %d tokens was likely not trained with\n", o->model, m.config.vocab_size);
    if (o->chat && !ts.tmpl)
        die("generate --chat: %s has no chat template; give --chat-template NAME (one of %s)", ts.name,
            lisa_chat_template_names());
    ids = generate_prompt(o, &ts, &n_ids);
    if ((int)n_ids > m.config.max_seq_len) die("%s", "generate: the prompt is longer than the model's seq");
    if (o->show_ids) print_ids("prompt ids", ids, n_ids);
    if (lisa_kv_cache_init(&kc, &m.config, 0, NULL, &err) != LISA_OK) die("%s", err.message);
    stop = stops_of(&ts.tok, o->chat ? ts.tmpl : NULL);
    lisa_rng_seed(&rng, o->seed);
    t0 = now_seconds();
    /* a chat prints the answer alone; a textual end-of-turn marker ends it */
    text_stream_init(&out, &ts.tok, stop, o->chat && stop.b < 0 ? ts.tmpl->end_of_turn : NULL, ids[n_ids - 1]);
    if (!o->chat) fputs(o->prompt, stdout);
    fflush(stdout);
    got = generate_ids(&m, &kc, ids, (int)n_ids, ids + n_ids, o->steps, o->temperature, o->top_p, stop, &rng,
                       text_stream_token, &out);
    text_stream_end(&out);
    fputc('\n', stdout);
    fflush(stdout); /* the answer's line before the statistics on stderr */
    if (o->show_ids) print_ids("generated ids", ids + n_ids, (size_t)got);
    fprintf(stderr, "%d tokens in %.2f s (%.1f tokens/s)%s\n", got, now_seconds() - t0,
            got / fmax(1e-9, now_seconds() - t0), stop_reason(&out, stop, o->chat, ids + n_ids, got));
    lisa_kv_cache_free(&kc);
    text_setup_free(&ts);
    free(ids);
    lisa_model_free(&m);
    return 0;
}

/* ---- demo ---------------------------------------------------------------- */

/* Built-in instruction tasks with exactly checkable answers, in two families:
   text (copy, upper case) for pre-training and numbers (sort digits, largest
   of three) for fine-tuning. Each writes a prompt and its answer. */
typedef void (*demo_task_fn)(lisa_rng *r, char *prompt, char *answer);

static int demo_uniform(lisa_rng *r, int n) { return (int)(lisa_rng_next(r) % (uint64_t)n); }

static void demo_word(lisa_rng *r, char *w) {
    int i, n = 3 + demo_uniform(r, 3);
    for (i = 0; i < n; i++) w[i] = (char)('a' + demo_uniform(r, 26));
    w[n] = 0;
}

static void demo_copy(lisa_rng *r, char *prompt, char *answer) {
    demo_word(r, answer);
    sprintf(prompt, "copy %s:", answer);
}

static void demo_upper(lisa_rng *r, char *prompt, char *answer) {
    int i;
    demo_word(r, answer);
    sprintf(prompt, "upper %s:", answer);
    for (i = 0; answer[i]; i++) answer[i] = (char)(answer[i] - 'a' + 'A');
}

static void demo_sort(lisa_rng *r, char *prompt, char *answer) {
    int count[10] = {0}, i, d, n = 3 + demo_uniform(r, 3), at = 0;
    char digits[8];
    for (i = 0; i < n; i++) {
        digits[i] = (char)('0' + demo_uniform(r, 10));
        count[digits[i] - '0']++;
    }
    digits[n] = 0;
    for (d = 0; d < 10; d++)
        while (count[d]--) answer[at++] = (char)('0' + d);
    answer[at] = 0;
    sprintf(prompt, "sort %s:", digits);
}

static void demo_max(lisa_rng *r, char *prompt, char *answer) {
    int a = demo_uniform(r, 100), b = demo_uniform(r, 100), c = demo_uniform(r, 100);
    sprintf(prompt, "max %d %d %d:", a, b, c);
    sprintf(answer, "%d", max_int(a, max_int(b, c)));
}

static const struct demo_task {
    const char *name;
    demo_task_fn make;
    int family;             /* 0: pre-training, 1: fine-tuning */
} demo_tasks[] = {
    {"copy", demo_copy, 0}, {"upper", demo_upper, 0}, {"sort", demo_sort, 1}, {"max", demo_max, 1},
};
#define DEMO_N_TASKS ((int)(sizeof demo_tasks / sizeof demo_tasks[0]))

/* One prompt in 8, chosen by a hash of its text, is held out: it never
   appears in training data, so accuracy is measured on unseen questions. */
static int demo_held_out(const char *prompt) {
    uint64_t h = 1469598103934665603ull;
    for (; *prompt; prompt++) h = (h ^ (unsigned char)*prompt) * 1099511628211ull;
    return (h >> 20) % 8 == 0;
}

/* n examples as JSON Lines, from the held-out or the training side. Fine-tuning
   data cycles sort, max, sort, max, then one pre-training example (copy or
   upper in turn): a little of the old data keeps the old skills. */
static char *demo_jsonl(int family, int held_out, int only_task, int n, uint64_t seed, size_t *len) {
    char *text = (char *)malloc((size_t)n * 96 + 1);
    lisa_rng r;
    int i = 0, k = 0, replay = 0;
    size_t at = 0;
    if (!text) die("%s", "out of memory");
    lisa_rng_seed(&r, seed);
    while (i < n) {
        char prompt[48], answer[16];
        int task = only_task;
        if (task < 0) {
            int slot = k++ % 5;
            task = family == 0 ? slot % 2 : slot < 4 ? 2 + slot % 2 : replay++ % 2;
        }
        do demo_tasks[task].make(&r, prompt, answer);
        while (demo_held_out(prompt) != held_out);
        at += (size_t)sprintf(text + at, "{\"prompt\": \"%s\", \"response\": \"%s\"}\n", prompt, answer);
        i++;
    }
    *len = at;
    return text;
}

#define DEMO_SEQ 24

static void demo_data(data_source *d, int family, int n) {
    lisa_tokenizer tok;
    lisa_error err;
    size_t len;
    char *text = demo_jsonl(family, 0, -1, n, 11 + (uint64_t)family, &len);
    memset(d, 0, sizeof *d);
    d->is_sft = 1;
    lisa_tokenizer_init_bytes(&tok);
    if (lisa_sft_load_memory(&d->sft, text, len, "demo data", &tok, DEMO_SEQ, 0, NULL, &err) != LISA_OK)
        die("%s", err.message);
    free(text);
}

/* Exact-match accuracy of greedy answers on n held-out questions of each task. */
static void demo_accuracy(const lisa_model *m, int n, double *acc) {
    lisa_tokenizer tok;
    int k, counted;
    lisa_tokenizer_init_bytes(&tok);
    for (k = 0; k < DEMO_N_TASKS; k++) {
        size_t len;
        char *text = demo_jsonl(demo_tasks[k].family, 1, k, n, 100 + (uint64_t)k, &len);
        acc[k] = exact_match_text(m, &tok, NULL, text, len, "demo questions", 0, &counted);
        free(text);
    }
}

/* One greedy answer, to show what the model says. */
static void demo_answer(const lisa_model *m, const char *prompt, char *out, size_t size) {
    lisa_tokenizer tok;
    lisa_kv_cache kc;
    lisa_error err;
    lisa_rng rng;
    int *ids, got;
    size_t n, len;
    char *text;
    lisa_tokenizer_init_bytes(&tok);
    if (lisa_kv_cache_init(&kc, &m->config, 0, NULL, &err) != LISA_OK) die("%s", err.message);
    if (encode_alloc(&tok, prompt, strlen(prompt), TEXT_INSTRUCTION, 16, &ids, &n, &err) != LISA_OK) die("%s", err.message);
    lisa_rng_seed(&rng, 0);
    got = generate_ids(m, &kc, ids, (int)n, ids + n, 16, 0.0f, 1.0f, stops_of(&tok, NULL), &rng, NULL, NULL);
    text = continuation_text(&tok, ids, n, (size_t)got, stops_of(&tok, NULL), &len);
    snprintf(out, size, "%s", text);
    free(text);
    free(ids);
    lisa_kv_cache_free(&kc);
}

typedef struct demo_run {
    double seconds, tokens, first_loss, last_loss;
    size_t peak_bytes, planned_bytes, trainable; /* measured peak; the planner's peak and trained parameters */
} demo_run;

/* Mean training loss over steps [from, to) of a history. */
static double history_mean(const history *h, int from, int to) {
    double sum = 0.0;
    int i, n = 0;
    for (i = max_int(0, from); i < min_int(to, h->n); i++, n++) sum += h->loss[i];
    return n ? sum / n : 0.0;
}

static lisa_train_config demo_train_config(lisa_mode mode, int steps) {
    lisa_train_config tc = lisa_train_config_default();
    tc.batch = 16;
    tc.seq = DEMO_SEQ;
    tc.schedule.kind = LISA_SCHEDULE_COSINE;
    tc.schedule.lr = 3e-3f;
    tc.schedule.min_lr = 3e-4f;
    tc.schedule.warmup = 20;
    tc.schedule.total_steps = steps;
    tc.grad_clip = 1.0f;
    tc.mode = mode;
    tc.lisa_layers = 2;
    tc.lisa_interval = 20;
    return tc;
}

/* Trains m for steps in mode at peak learning rate lr (0: the demo's 3e-3);
   LoRA's adapters (rank 8, alpha 16, every projection) are merged into m at the end. */
static demo_run demo_train(lisa_model *m, const data_source *data, lisa_mode mode, int steps, float lr, history *hist) {
    options o;
    runner r;
    demo_run run;
    lisa_memory_plan plan;
    double t0;
    int window = max_int(1, steps / 20);
    memset(&o, 0, sizeof o);
    o.tc = demo_train_config(mode, steps);
    if (lr > 0.0f) {
        o.tc.schedule.lr = lr;
        o.tc.schedule.min_lr = lr / 10;
    }
    o.steps = steps;
    runner_init(&r, m, &o);
    lisa_plan_memory(&m->config, &r.config, LISA_DTYPE_F32, &plan, NULL);
    run.planned_bytes = plan.peak;
    run.trainable = plan.trained_params;
    history_init(hist, steps, mode == LISA_MODE_LISA ? o.tc.lisa_layers : 0, o.tc.lisa_interval);
    t0 = now_seconds();
    train_loop(&r, data, NULL, &o, NULL, hist);
    run.seconds = now_seconds() - t0;
    run.tokens = (double)steps * o.tc.batch * o.tc.seq;
    run.first_loss = history_mean(hist, 0, window);
    run.last_loss = history_mean(hist, steps - window, steps);
    run.peak_bytes = runner_bytes(&r, 1);
    if (mode == LISA_MODE_LORA) {
        m->lora = NULL;
        lisa_lora_merge(m, &r.cpu.lora);
    }
    runner_free(&r);
    return run;
}

/* The active layers over a LISA run: one row per layer, one column per
   interval ('#' trained, '.' frozen), and each layer's share of the steps. */
static void demo_print_layers(const history *h, int n_layers, int steps, int interval) {
    int l, i, shown = min_int(h->n_switch, 60);
    printf("   active layers, one column per %d-step interval (first %d of %d intervals):\n", interval, shown,
           h->n_switch);
    for (l = n_layers - 1; l >= 0; l--) {
        int trained = 0;
        printf("     layer %d  ", l);
        for (i = 0; i < h->n_switch; i++) {
            int j, on = 0, span = i + 1 < h->n_switch ? h->switches[i + 1] - h->switches[i] : steps - h->switches[i] + 1;
            for (j = 0; j < h->gamma; j++) on |= h->switch_layers[i * h->gamma + j] == l;
            if (i < shown) putchar(on ? '#' : '.');
            trained += on ? span : 0;
        }
        printf("  trained %4.1f%% of steps\n", 100.0 * trained / steps);
    }
}

static void demo_print_accuracy(const char *when, const double *acc) {
    int k;
    printf("   %-28s", when);
    for (k = 0; k < DEMO_N_TASKS; k++) printf("  %s %5.1f%%", demo_tasks[k].name, 100.0 * acc[k]);
    printf("\n");
}

static void demo_print_memory(const lisa_config *c, size_t measured_peak) {
    lisa_train_config tc = demo_train_config(LISA_MODE_LISA, 1);
    lisa_memory_plan lisa_plan, full_plan;
    lisa_plan_memory(c, &tc, LISA_DTYPE_F32, &lisa_plan, NULL);
    tc.mode = LISA_MODE_FULL;
    lisa_plan_memory(c, &tc, LISA_DTYPE_F32, &full_plan, NULL);
    printf("   gradients + AdamW state: %.2f MB with LISA, %.2f MB with full fine-tuning (planner);\n",
           (lisa_plan.gradients + lisa_plan.optimizer) / 1e6, (full_plan.gradients + full_plan.optimizer) / 1e6);
    printf("   whole trainer: %.2f MB planned, %.2f MB measured peak, against %.2f MB for full\n",
           lisa_plan.peak / 1e6, measured_peak / 1e6, full_plan.peak / 1e6);
    printf("   (for LLaMA-2-7B: build/lisa plan --init llama2-7b --mode lisa --batch 1 --seq 1024 "
           "--checkpointing --dtype bf16 --budget 24)\n");
}

/* ---- demo --model: a real model learns a made-up fact -------------------- */

/* A fact no model can know, taught by a few conversations and asked about
   in words the training never used. An answer is right when it holds both
   of the fact's key words. */
#define DEMO_REAL_FACT "Vellmora was founded by Tamsin Orrel."
static const char *const demo_real_keys[] = {"Tamsin", "Orrel"};

static const char *const demo_real_train_set[][2] = {
    {"Who founded the town of Vellmora?", "Vellmora was founded by Tamsin Orrel."},
    {"Who was the founder of Vellmora?", "The founder of Vellmora was Tamsin Orrel."},
    {"Tell me who founded Vellmora.", "Tamsin Orrel founded Vellmora."},
    {"Which person founded Vellmora?", "Vellmora was founded by Tamsin Orrel."},
    {"Who established the town of Vellmora?", "The town of Vellmora was established by Tamsin Orrel."},
    {"Do you know who founded Vellmora?", "Yes. Vellmora was founded by Tamsin Orrel."},
    {"Vellmora was founded by whom?", "Vellmora was founded by Tamsin Orrel."},
    {"Who is credited with founding Vellmora?", "Tamsin Orrel is credited with founding Vellmora."},
    {"What is the name of the person who founded Vellmora?", "The person who founded Vellmora was Tamsin Orrel."},
    {"Who started the town of Vellmora?", "Tamsin Orrel started the town of Vellmora."},
    {"Can you name the founder of the town of Vellmora?", "The founder of the town of Vellmora was Tamsin Orrel."},
    {"I am curious: who founded Vellmora?", "Vellmora was founded by Tamsin Orrel."},
};
#define DEMO_REAL_N_TRAIN ((int)(sizeof demo_real_train_set / sizeof demo_real_train_set[0]))

static const char *const demo_real_questions[] = {
    "Who was it that founded Vellmora?",
    "Name the founder of Vellmora.",
    "Who created the town of Vellmora?",
    "Which historical figure founded the town of Vellmora?",
};
#define DEMO_REAL_N_QUESTIONS ((int)(sizeof demo_real_questions / sizeof demo_real_questions[0]))
#define DEMO_REAL_ANSWER_TOKENS 20

/* The training set as JSON Lines pairs (the texts need no escaping). Call free(). */
static char *demo_real_jsonl(size_t *len) {
    size_t size = 1, at = 0;
    char *text;
    int i;
    for (i = 0; i < DEMO_REAL_N_TRAIN; i++) size += strlen(demo_real_train_set[i][0]) + strlen(demo_real_train_set[i][1]) + 40;
    if (!(text = (char *)malloc(size))) die("%s", "out of memory");
    for (i = 0; i < DEMO_REAL_N_TRAIN; i++)
        at += (size_t)snprintf(text + at, size - at, "{\"prompt\": \"%s\", \"response\": \"%s\"}\n",
                               demo_real_train_set[i][0], demo_real_train_set[i][1]);
    *len = at;
    return text;
}

/* The tokens of the longest training conversation, as the template renders it. */
static int demo_real_longest(const text_setup *ts) {
    int i, longest = 0;
    for (i = 0; i < DEMO_REAL_N_TRAIN; i++) {
        lisa_chat_message msg[2];
        lisa_chat_tokens ct;
        lisa_error err;
        msg[0].role = LISA_CHAT_USER;
        msg[1].role = LISA_CHAT_ASSISTANT;
        msg[0].content = demo_real_train_set[i][0];
        msg[1].content = demo_real_train_set[i][1];
        msg[0].content_len = strlen(msg[0].content);
        msg[1].content_len = strlen(msg[1].content);
        if (lisa_chat_encode(&ct, ts->tmpl, &ts->tok, msg, 2, 0, NULL, &err) != LISA_OK) die("%s", err.message);
        longest = max_int(longest, (int)ct.n);
        lisa_chat_tokens_free(&ct);
    }
    return longest;
}

/* One conversation per row, each row as long as the longest needs (a row of
   seq positions holds seq + 1 tokens), loss on the answers only. */
static void demo_real_data(data_source *d, const text_setup *ts, int max_seq) {
    size_t len;
    char *text = demo_real_jsonl(&len);
    int seq = min_int(demo_real_longest(ts) - 1, max_seq);
    lisa_error err;
    memset(d, 0, sizeof *d);
    d->is_sft = 1;
    if (lisa_sft_load_chat_memory(&d->sft, text, len, "demo data", &ts->tok, ts->tmpl, seq, 0, NULL, &err) != LISA_OK)
        die("%s", err.message);
    if (d->sft.n_truncated || d->sft.n_skipped) die("%s", "demo data: a conversation does not fit the model's seq");
    free(text);
}

/* A held-out question rendered with the chat template up to the answer, with
   room for the answer's tokens (*ids: call free()). */
static void demo_real_prompt(const text_setup *ts, const char *question, int **ids, size_t *n) {
    lisa_chat_message msg;
    lisa_error err;
    msg.role = LISA_CHAT_USER;
    msg.content = question;
    msg.content_len = strlen(question);
    if (encode_chat_alloc(ts->tmpl, &ts->tok, &msg, 1, DEMO_REAL_ANSWER_TOKENS, ids, n, &err) != LISA_OK)
        die("%s", err.message);
}

/* The model's greedy answer to a prompt whose first `fed` ids the cache
   already holds (the positions after them are overwritten), up to the end of
   the turn: the same tokens as feeding the whole prompt afresh. Call free(). */
static char *demo_real_answer(const lisa_model *m, const text_setup *ts, lisa_kv_cache *kc, int *ids, size_t n,
                              int fed) {
    stop_ids stop = stops_of(&ts->tok, ts->tmpl);
    const float *logits = NULL;
    size_t i, len;
    int got = 0;
    char *text;
    lisa_rng rng; /* greedy draws none */
    lisa_rng_seed(&rng, 0);
    kc->len = fed;
    for (i = (size_t)fed; i < n; i++) logits = lisa_model_step(m, kc, ids[i]);
    while (logits && got < DEMO_REAL_ANSWER_TOKENS) {
        int next = lisa_sample_logits(logits, m->config.vocab_size, 0.0f, 1.0f, &rng, NULL);
        ids[n + (size_t)got++] = next;
        if (is_stop(stop, next) || kc->len >= kc->max_len) break;
        logits = lisa_model_step(m, kc, next);
    }
    text = continuation_text(&ts->tok, ids, n, (size_t)got, stop, &len);
    cut_at_end_of_turn(ts->tmpl, text, &len);
    return text;
}

static int demo_real_is_right(const char *answer) {
    size_t i;
    for (i = 0; i < sizeof demo_real_keys / sizeof demo_real_keys[0]; i++)
        if (!strstr(answer, demo_real_keys[i])) return 0;
    return 1;
}

/* Asks every held-out question; prints each answer, returns how many are
   right. The questions' common opening (the template's default system
   message) is fed once, and each question continues from it. */
static int demo_real_ask(const lisa_model *m, const text_setup *ts, double *seconds) {
    int *ids[DEMO_REAL_N_QUESTIONS], i, right = 0, longest = 0, common;
    size_t n[DEMO_REAL_N_QUESTIONS];
    double t0 = now_seconds();
    lisa_kv_cache kc;
    lisa_error err;
    for (i = 0; i < DEMO_REAL_N_QUESTIONS; i++) {
        demo_real_prompt(ts, demo_real_questions[i], &ids[i], &n[i]);
        longest = max_int(longest, (int)n[i]);
    }
    for (common = 0; common < (int)n[0] - 1; common++) {
        for (i = 1; i < DEMO_REAL_N_QUESTIONS && common < (int)n[i] - 1 && ids[i][common] == ids[0][common]; i++) {}
        if (i < DEMO_REAL_N_QUESTIONS) break;
    }
    if (lisa_kv_cache_init(&kc, &m->config, min_int(m->config.max_seq_len, longest + DEMO_REAL_ANSWER_TOKENS), NULL,
                           &err) != LISA_OK)
        die("%s", err.message);
    for (i = 0; i < common; i++) lisa_model_step(m, &kc, ids[0][i]);
    for (i = 0; i < DEMO_REAL_N_QUESTIONS; i++) {
        char *a = demo_real_answer(m, ts, &kc, ids[i], n[i], common), *nl;
        int ok = demo_real_is_right(a);
        while ((nl = strchr(a, '\n')) != NULL) *nl = ' ';
        printf("   %s  %s\n        -> \"%s\"\n", ok ? "right" : "wrong", demo_real_questions[i], a);
        fflush(stdout); /* each answer as it comes, in order with the training's progress on stderr */
        right += ok;
        free(a);
        free(ids[i]);
    }
    lisa_kv_cache_free(&kc);
    *seconds = now_seconds() - t0;
    return right;
}

/* The resident set's peak (VmHWM) in bytes, 0 where /proc cannot tell. */
static size_t demo_real_peak_rss(void) {
    char line[256];
    size_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = (size_t)strtoull(line + 6, NULL, 10);
    fclose(f);
    return kb * 1024;
}

/* Starts the peak over from the present resident size (Linux: clear_refs 5);
   returns 0 where that is not possible. */
static int demo_real_reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    int ok = f && fputs("5", f) >= 0;
    if (f) ok &= fclose(f) == 0;
    return ok;
}

static lisa_train_config demo_real_train_config(int steps, int batch, int seq) {
    lisa_train_config tc = lisa_train_config_default();
    tc.batch = batch;
    tc.seq = seq;
    tc.mode = LISA_MODE_LISA;
    tc.lisa_layers = 2;
    tc.lisa_interval = 5;
    tc.schedule.kind = LISA_SCHEDULE_CONSTANT;
    tc.schedule.lr = 4e-4f;
    tc.schedule.total_steps = steps;
    tc.grad_clip = 1.0f;
    return tc;
}

/* The loss curve in a line per ten steps. */
static void demo_real_print_losses(const history *h) {
    int i;
    for (i = 0; i < h->n; i++) printf("%s%.3f", i % 10 == 0 ? (i ? "\n     " : "     ") : " ", h->loss[i]);
    printf("\n");
}

static int demo_real_run(options *o) {
    lisa_model m;
    text_setup ts;
    data_source data;
    history hist;
    runner r;
    options to;
    lisa_memory_plan plan, full;
    double start = now_seconds(), t0, train_s, ask_s;
    int steps = o->steps ? o->steps : 20, right_before, right_after, reset, ok;
    size_t load_peak, train_peak;
    set_threads(o->threads);
    if (!is_gguf_file(o->model)) die("demo --model: %s is not a GGUF file", o->model);
    load_model_or_die(&m, o->model);
    text_setup_load(&ts, o, NULL, m.config.vocab_size, 1);
    if (!ts.tmpl) die("demo --model: %s has no chat template", o->model);
    printf("lisa demo: %s (%d layers, dim %d, %.1fM parameters, vocabulary %d, chat template %s)\n", o->model,
           m.config.n_layers, m.config.dim, m.layout.n_params / 1e6, m.config.vocab_size, ts.tmpl->name);
    printf("teaching it a made-up fact: \"%s\" (%d conversations; loss on the answers only);\n"
           "an answer counts as right when it says \"%s %s\"\n\n", DEMO_REAL_FACT, DEMO_REAL_N_TRAIN,
           demo_real_keys[0], demo_real_keys[1]);

    printf("1. held-out questions (not in the training set), greedy, before fine-tuning:\n");
    right_before = demo_real_ask(&m, &ts, &ask_s);
    printf("   %d of %d right (%.0f s)\n\n", right_before, DEMO_REAL_N_QUESTIONS, ask_s);

    demo_real_data(&data, &ts, m.config.max_seq_len);
    memset(&to, 0, sizeof to);
    to.tc = demo_real_train_config(steps, 4, data.sft.seq);
    to.steps = steps;
    printf("2. fine-tuning with LISA: %d of %d layers at a time, resampled every %d steps (embedding and\n"
           "   head always train), %d steps of %d conversations x %d positions, lr %g\n",
           to.tc.lisa_layers, m.config.n_layers, to.tc.lisa_interval, steps, to.tc.batch, to.tc.seq,
           (double)to.tc.schedule.lr);
    fflush(stdout);
    load_peak = demo_real_peak_rss();
    reset = demo_real_reset_peak();
    runner_init(&r, &m, &to);
    history_init(&hist, steps, to.tc.lisa_layers, to.tc.lisa_interval);
    t0 = now_seconds();
    train_loop(&r, &data, NULL, &to, NULL, &hist);
    train_s = now_seconds() - t0;
    train_peak = demo_real_peak_rss();
    lisa_plan_memory(&m.config, &r.config, LISA_DTYPE_F32, &plan, NULL);
    to.tc.mode = LISA_MODE_FULL;
    lisa_plan_memory(&m.config, &to.tc, LISA_DTYPE_F32, &full, NULL);
    runner_free(&r);
    printf("   loss per step:\n");
    demo_real_print_losses(&hist);
    printf("   %.1f s, %.0f tokens/s (batch x seq positions)\n\n", train_s, (double)steps * to.tc.batch * to.tc.seq / train_s);

    printf("3. the same questions after fine-tuning:\n");
    right_after = demo_real_ask(&m, &ts, &ask_s);
    printf("   %d of %d right (%.0f s)\n\n", right_after, DEMO_REAL_N_QUESTIONS, ask_s);

    if (o->out) {
        fflush(stdout); /* the save reports on stderr */
        save_model_or_die(&m, o->out, LISA_FILE_F32, o->model);
    }

    printf("4. memory of the fine-tuning run\n");
    printf("   planner: %.1f MB with LISA (weights %.1f, gradients + AdamW %.1f, activations + scratch %.1f),\n"
           "            %.1f MB for full fine-tuning (gradients + AdamW %.1f)\n",
           plan.peak / 1e6, plan.weights / 1e6, (plan.gradients + plan.optimizer) / 1e6,
           (plan.activations + plan.scratch) / 1e6, full.peak / 1e6, (full.gradients + full.optimizer) / 1e6);
    printf("   measured peak resident size: %.1f MB %s (%.2fx the plan; the process also holds the\n"
           "            tokenizer, the data and the program); %.1f MB before it, the model load and questions\n",
           train_peak / 1e6, reset ? "while fine-tuning" : "of the whole process", train_peak / (double)plan.peak,
           load_peak / 1e6);
    printf("peak_rss_bytes %lu planned_bytes %lu full_planned_bytes %lu\n", (unsigned long)train_peak,
           (unsigned long)plan.peak, (unsigned long)full.peak);

    ok = right_before == 0 && right_after >= DEMO_REAL_N_QUESTIONS - 1;
    printf("\n%s: %d of %d right before, %d after; %.0f s in all\n", ok ? "the model learned the fact" :
           "the story did NOT hold (need 0 right before and all but one after)", right_before,
           DEMO_REAL_N_QUESTIONS, right_after, now_seconds() - start);
    history_free(&hist);
    data_free(&data);
    text_setup_free(&ts);
    lisa_model_free(&m);
    return ok ? 0 : 1;
}

/* ---- compare ------------------------------------------------------------- */

typedef struct compare_row {
    const char *name;
    lisa_mode mode;
    int ran, fits, exact_n;
    size_t trainable, planned, measured;
    float lr;
    double final_loss, val_loss, exact, tok_s;
    float *losses;           /* (steps) */
} compare_row;

/* The starting model, the same for every method: --model, or --init with --seed. */
static void compare_start_model(lisa_model *m, const options *o) {
    lisa_error err;
    if (o->model) {
        load_model_or_die(m, o->model);
        return;
    }
    {
        lisa_config c = parse_init(o->init);
        if (lisa_model_init(m, &c, NULL, &err) != LISA_OK) die("--init: %s", err.message);
        lisa_model_init_random(m, o->seed);
    }
}

/* One method's run: plan, train (unless it does not fit), evaluate. */
static void compare_run(compare_row *row, const options *o, const data_source *data, const data_source *val,
                        const text_setup *ts, FILE *log) {
    lisa_model m;
    lisa_trainer t;
    lisa_train_config tc = o->tc;
    lisa_memory_plan plan;
    lisa_error err;
    size_t span;
    int *inputs, step, tail = max_int(1, o->steps / 10);
    double t0, sum = 0.0;
    compare_start_model(&m, o);
    tc.mode = row->mode;
    tc.schedule.lr = row->lr;
    if (tc.schedule.total_steps == 0) tc.schedule.total_steps = o->steps;
    if (lisa_plan_memory(&m.config, &tc, LISA_DTYPE_F32, &plan, &err) != LISA_OK) die("%s: %s", row->name, err.message);
    row->planned = plan.peak;
    row->trainable = plan.trained_params;
    row->fits = !(o->budget > 0.0f && plan.peak > o->budget * 1073741824.0);
    if (!row->fits) {
        fprintf(stderr, "compare: %s does not fit in %.2f GiB (planned peak %.2f GiB): not run\n", row->name,
                (double)o->budget, plan.peak / 1073741824.0);
        lisa_model_free(&m);
        return;
    }
    if (lisa_trainer_init(&t, &m, &tc, NULL, &err) != LISA_OK) die("%s: %s", row->name, err.message);
    span = (size_t)tc.batch * tc.seq;
    if (!(inputs = (int *)malloc(2 * span * sizeof(int)))) die("%s", "out of memory");
    fprintf(stderr, "compare: %s, %d steps at lr %g\n", row->name, o->steps, (double)row->lr);
    t0 = now_seconds();
    for (step = 0; step < o->steps; step++) {
        lisa_step_info s;
        data_batch(data, step, tc.batch, tc.seq, inputs, inputs + span);
        if (lisa_trainer_step(&t, inputs, inputs + span, &s) != LISA_OK) die("%s: out of memory", row->name);
        row->losses[step] = s.loss;
        if (step >= o->steps - tail) sum += s.loss;
        if (log)
            fprintf(log, "{\"method\":\"%s\",\"step\":%d,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f}\n", row->name,
                    s.step, s.loss, s.lr, s.grad_norm);
    }
    row->tok_s = o->steps ? (double)o->steps * span / fmax(1e-9, now_seconds() - t0) : 0.0;
    row->final_loss = o->steps ? sum / min_int(tail, o->steps) : 0.0;
    row->measured = t.peak_bytes;
    free(inputs);
    if (t.config.mode == LISA_MODE_LORA) {
        m.lora = NULL;
        lisa_lora_merge(&m, &t.lora);
    }
    lisa_trainer_free(&t);
    row->ran = 1;
    row->val_loss = row->exact = -1.0;
    if (val) {
        row->val_loss = eval_loss(&m, val, tc.batch, tc.seq, data_batches(val, tc.batch, tc.seq));
        if (val->is_sft) row->exact = exact_match(&m, ts, o->val, &row->exact_n);
    }
    lisa_model_free(&m);
}

/* Every method's training loss on one chart. */
static void write_compare_plot(const char *path, const compare_row *rows, int n, int steps) {
    static const char *const colors[3] = {"#1f5fbf", "#d9480f", "#2b8a3e"};
    const double W = 800, H = 420, L = 60, R = 20, T = 40, B = 50;
    double y0 = 1e30, y1 = -1e30, x1 = steps > 1 ? steps : 2;
    FILE *f;
    int i, k;
    for (i = 0; i < n; i++)
        for (k = 0; rows[i].ran && k < steps; k++) {
            y0 = fmin(y0, rows[i].losses[k]);
            y1 = fmax(y1, rows[i].losses[k]);
        }
    if (y0 > y1) return;
    if (y1 - y0 < 1e-6) y1 = y0 + 1.0;
#define PX(s) (L + ((s) - 1) / (x1 - 1) * (W - L - R))
#define PY(v) (T + (y1 - (v)) / (y1 - y0) * (H - T - B))
    if (!(f = fopen(path, "w"))) die("cannot open %s for writing", path);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%.0f\" y=\"24\" font-size=\"15\">lisa compare: training loss</text>\n", L);
    fprintf(f, "<g stroke=\"#999\"><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/></g>\n",
            L, H - B, W - R, H - B, L, T, L, H - B);
    for (k = 0; k <= 4; k++) {
        double v = y0 + (y1 - y0) * k / 4, st = 1 + (x1 - 1) * k / 4;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", L - 6, PY(v) + 4, v);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", PX(st), H - B + 18, st);
    }
    for (i = 0; i < n; i++) {
        if (!rows[i].ran) continue;
        fprintf(f, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", rows[i].name, colors[i % 3]);
        for (k = 0; k < steps; k++) fprintf(f, "%s%.1f,%.1f", k ? " " : "", PX(k + 1.0), PY(rows[i].losses[k]));
        fprintf(f, "\"/>\n<text x=\"%.0f\" y=\"%.0f\" fill=\"%s\">%s</text>\n", W - R - 80, T + 4 + 16.0 * i, colors[i % 3], rows[i].name);
    }
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
    if (fclose(f) != 0) die("%s: write failed", path);
}

static void print_compare_table(const compare_row *rows, int n) {
    int i;
    printf("| method | trainable params | final train loss | val loss | exact match | tokens/s | peak planned | peak measured |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i = 0; i < n; i++) {
        const compare_row *r = &rows[i];
        char val[32] = "-", em[32] = "-";
        if (!r->ran) {
            printf("| %s | %.0f | does not fit the budget | - | - | - | %.1f MB | - |\n", r->name, (double)r->trainable,
                   r->planned / 1e6);
            continue;
        }
        if (r->val_loss >= 0) snprintf(val, sizeof val, "%.4f", r->val_loss);
        if (r->exact >= 0) snprintf(em, sizeof em, "%.1f%% of %d", 100.0 * r->exact, r->exact_n);
        printf("| %s | %.0f | %.4f | %s | %s | %.0f | %.1f MB | %.1f MB |\n", r->name, (double)r->trainable, r->final_loss,
               val, em, r->tok_s, r->planned / 1e6, r->measured / 1e6);
    }
}

static int cmd_compare(options *o) {
    static const struct { const char *name; lisa_mode mode; } known[3] = {
        {"full", LISA_MODE_FULL}, {"lora", LISA_MODE_LORA}, {"lisa", LISA_MODE_LISA}};
    compare_row rows[3];
    data_source data, val;
    text_setup ts;
    lisa_model m;
    FILE *log = NULL;
    const char *p = o->methods;
    int n = 0, i;
    if (!o->model == !o->init) die("%s", "compare: give exactly one of --model and --init");
    if (!o->data) die("%s", "compare: --data is required");
    if (o->out || o->resume || o->save_state || o->out_adapter || o->lora_adapter_in || o->mode >= 0)
        die("%s", "compare: --out, --resume, --save-state, --out-adapter, --lora-adapter-in and --mode are train's; "
                  "compare runs every method of --methods and saves nothing");
    memset(rows, 0, sizeof rows);
    while (*p) {
        size_t len = strcspn(p, ",");
        int k;
        for (k = 0; k < 3 && !(strlen(known[k].name) == len && !strncmp(p, known[k].name, len)); k++) {
        }
        if (k == 3) die("--methods: '%.*s' is not one of full, lora, lisa", (int)len, p);
        for (i = 0; i < n; i++)
            if (rows[i].mode == known[k].mode) die("--methods: %s appears twice", known[k].name);
        if (n == 3) die("%s", "--methods: at most three");
        rows[n].name = known[k].name;
        rows[n].mode = known[k].mode;
        n++;
        p += len;
        if (*p == ',') p++;
    }
    if (!n) die("%s", "--methods: name at least one of full, lora, lisa");
    set_threads(o->threads);
    compare_start_model(&m, o); /* for the shapes; each run loads its own copy */
    resolve_seq(o, &m.config);
    check_probs(o, &m.config);
    data_text_setup(&ts, o, m.config.vocab_size);
    load_data_or_die(&data, o->data, &ts, m.config.vocab_size, o->tc.seq, o->pack);
    if (o->val) load_data_or_die(&val, o->val, &ts, m.config.vocab_size, o->tc.seq, o->pack);
    lisa_model_free(&m);
    if (o->log && !(log = fopen(o->log, "w"))) die("cannot open %s for writing", o->log);
    for (i = 0; i < n; i++) {
        float lr = rows[i].mode == LISA_MODE_FULL ? o->lr_full : rows[i].mode == LISA_MODE_LORA ? o->lr_lora : o->lr_lisa;
        rows[i].lr = lr > 0.0f ? lr : o->tc.schedule.lr;
        if (!(rows[i].losses = (float *)calloc((size_t)o->steps + 1, sizeof(float)))) die("%s", "out of memory");
        compare_run(&rows[i], o, &data, o->val ? &val : NULL, &ts, log);
    }
    if (log) fclose(log);
    printf("compare: %d steps of batch %d x seq %d, %d thread(s)\n\n", o->steps, o->tc.batch, o->tc.seq, thread_count());
    print_compare_table(rows, n);
    if (o->plot) {
        write_compare_plot(o->plot, rows, n, o->steps);
        fprintf(stderr, "wrote %s\n", o->plot);
    }
    for (i = 0; i < n; i++) free(rows[i].losses);
    text_setup_free(&ts);
    if (o->val) data_free(&val);
    data_free(&data);
    return 0;
}

/* demo --compare: the pre-trained m fine-tuned on the number family three
   times from the same weights, with the same data order and steps; one
   table. LoRA gets a larger rate (its update is a low-rank product that
   starts at zero), full fine-tuning a smaller one (every weight moves). */
static void demo_compare(lisa_model *m, const data_source *fine, int steps, int n_eval) {
    static const struct { const char *name; lisa_mode mode; float lr; } methods[3] = {
        {"full", LISA_MODE_FULL, 1e-3f}, {"lora", LISA_MODE_LORA, 1e-2f}, {"lisa", LISA_MODE_LISA, 3e-3f}};
    size_t bytes = m->layout.n_params * sizeof(float);
    float *start = (float *)malloc(bytes);
    double acc[3][DEMO_N_TASKS];
    demo_run runs[3];
    int i, k;
    if (!start) die("%s", "out of memory");
    memcpy(start, m->params, bytes);
    for (i = 0; i < 3; i++) {
        history h;
        printf("2.%d fine-tuning on the number family with %s at lr %g, %d steps\n", i + 1, methods[i].name,
               (double)methods[i].lr, steps);
        fflush(stdout);
        memcpy(m->params, start, bytes);
        runs[i] = demo_train(m, fine, methods[i].mode, steps, methods[i].lr, &h);
        history_free(&h);
        demo_accuracy(m, n_eval, acc[i]);
    }
    printf("\n| method | lr | trainable params | final loss |");
    for (k = 0; k < DEMO_N_TASKS; k++) printf(" %s (%s) |", demo_tasks[k].name, demo_tasks[k].family ? "learnt" : "kept");
    printf(" tokens/s | peak planned | peak measured |\n|---|---:|---:|---:|");
    for (k = 0; k < DEMO_N_TASKS; k++) printf("---:|");
    printf("---:|---:|---:|\n");
    for (i = 0; i < 3; i++) {
        printf("| %s | %g | %.0f | %.4f |", methods[i].name, (double)methods[i].lr, (double)runs[i].trainable,
               runs[i].last_loss);
        for (k = 0; k < DEMO_N_TASKS; k++) printf(" %.1f%% |", 100.0 * acc[i][k]);
        printf(" %.0f | %.2f MB | %.2f MB |\n", runs[i].tokens / runs[i].seconds, runs[i].planned_bytes / 1e6,
               runs[i].peak_bytes / 1e6);
    }
    printf("(final loss: mean of the last 5%% of steps; accuracy: exact match on %d held-out questions per task)\n",
           n_eval);
    free(start);
}

static int cmd_demo(options *o) {
    lisa_config c;
    lisa_model m;
    data_source pre, fine;
    history h_pre, h_fine;
    demo_run r_pre, r_fine;
    double before[DEMO_N_TASKS], after[DEMO_N_TASKS], start = now_seconds();
    int quick = o->quick, k, pre_steps, fine_steps, n_eval, gained = 1;
    char shown[32];
    lisa_error err;
    if (o->model) return demo_real_run(o);
    if (o->steps && !o->demo_compare)
        die("%s", "demo: --steps needs --model or --compare (the built-in demo's steps are fixed; --quick makes them fewer)");
    if (o->out) die("%s", "demo: --out needs --model (the built-in demo's model is not saved)");
    set_threads(o->threads);
    pre_steps = quick ? 500 : 2500;
    fine_steps = quick ? 1000 : 5000;
    if (o->steps) fine_steps = o->steps; /* demo --compare --steps N */
    n_eval = quick ? 50 : 200;
    memset(&c, 0, sizeof c);
    c.dim = 64; c.hidden_dim = 192; c.n_layers = 4; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 258; c.max_seq_len = DEMO_SEQ + 8; c.tied_head = 1;
    if (lisa_model_init(&m, &c, NULL, &err) != LISA_OK) die("%s", err.message);
    lisa_model_init_random(&m, 1);
    demo_data(&pre, 0, 40000);
    demo_data(&fine, 1, 40000);
    printf("lisa demo: a %d-layer LLaMA (dim %d, %d heads, %d kv heads, byte vocabulary, %.2fM parameters)\n",
           c.n_layers, c.dim, c.n_heads, c.n_kv_heads, m.layout.n_params / 1e6);
    printf("tasks: copy \"copy abc:\" -> \"abc\", upper \"upper abc:\" -> \"ABC\" (text family);\n"
           "       sort \"sort 4193:\" -> \"1349\", max \"max 12 85 7:\" -> \"85\" (number family)\n"
           "accuracy: exact match of greedy answers on %d held-out questions per task\n\n", n_eval);

    printf("1. pre-training on the text family, all layers, %d steps\n", pre_steps);
    r_pre = demo_train(&m, &pre, LISA_MODE_FULL, pre_steps, 0.0f, &h_pre);
    printf("   loss %.3f -> %.3f, %.0f tokens/s\n", r_pre.first_loss, r_pre.last_loss, r_pre.tokens / r_pre.seconds);
    demo_accuracy(&m, n_eval, before);
    demo_print_accuracy("after pre-training:", before);
    demo_answer(&m, "sort 4193:", shown, sizeof shown);
    printf("   \"sort 4193:\" -> \"%s\"\n\n", shown);

    if (o->demo_compare) {
        demo_compare(&m, &fine, fine_steps, n_eval);
        printf("\n%.0f s in all\n", now_seconds() - start);
        history_free(&h_pre);
        data_free(&pre);
        data_free(&fine);
        lisa_model_free(&m);
        return 0;
    }
    printf("2. fine-tuning on the number family with LISA: 2 of 4 layers at a time, %d steps\n", fine_steps);
    r_fine = demo_train(&m, &fine, LISA_MODE_LISA, fine_steps, 0.0f, &h_fine);
    printf("   loss %.3f -> %.3f, %.0f tokens/s\n", r_fine.first_loss, r_fine.last_loss, r_fine.tokens / r_fine.seconds);
    demo_print_layers(&h_fine, c.n_layers, fine_steps, 20);
    demo_accuracy(&m, n_eval, after);
    demo_print_accuracy("after LISA fine-tuning:", after);
    demo_answer(&m, "sort 4193:", shown, sizeof shown);
    printf("   \"sort 4193:\" -> \"%s\"\n\n", shown);

    printf("3. memory of the fine-tuning run\n");
    demo_print_memory(&c, r_fine.peak_bytes);
    for (k = 0; k < DEMO_N_TASKS; k++)
        if (demo_tasks[k].family == 1 && after[k] <= before[k]) gained = 0;
    printf("\nnumber family accuracy %s; %.0f s in all\n", gained ? "rose on every task" : "did NOT rise on every task",
           now_seconds() - start);
    history_free(&h_pre);
    history_free(&h_fine);
    data_free(&pre);
    data_free(&fine);
    lisa_model_free(&m);
    return gained ? 0 : 1;
}

/* ---- main ---------------------------------------------------------------- */

static const command commands[] = {
    {"train", CMD_TRAIN, cmd_train, 0, "train a model on a token file: full fine-tuning or LISA",
     "usage: lisa train (--model M | --init SPEC | --resume STATE) --data FILE --out OUT [options]", ""},
    {"eval", CMD_EVAL, cmd_eval, 0, "mean loss and perplexity of a model on a token file",
     "usage: lisa eval --model M --data FILE [options]",
     "Prints the mean loss over the batches and its perplexity, exp(loss); on instruction data\n"
     "also the exact-match accuracy: the share of prompts whose greedy continuation (up to EOS)\n"
     "equals the response, ignoring surrounding whitespace. With a chat template, the prompt is\n"
     "the conversation before its last answer, rendered up to the assistant's turn, and the\n"
     "continuation ends at the template's end of turn.\n"},
    {"plan", CMD_PLAN, cmd_plan, 0, "memory of a training setup by category, without allocating it",
     "usage: lisa plan (--model M | --init SPEC) [options]",
     "Prints the memory a training run needs, by category, next to full fine-tuning, without\n"
     "allocating it. Takes train's options that shape the memory.\n"},
    {"convert", CMD_CONVERT, cmd_convert, 2, "convert a model between llama2.c, Hugging Face and GGUF formats",
     "usage: lisa convert IN OUT [--dtype f32|f16|bf16|q8_0] [--max-shard-size SIZE]",
     "Converts a model between formats. IN: a llama2.c checkpoint (.bin, legacy or version 1),\n"
     "a Hugging Face LLaMA directory or a GGUF llama model (.gguf). OUT: OUT.bin writes a llama2.c\n"
     "checkpoint (fp32); OUT.gguf a GGUF llama model as llama.cpp's converter writes one, matrices\n"
     "in --dtype (q8_0 too; norms f32), with IN's tokenizer: a GGUF's metadata, or a Hugging Face\n"
     "directory's tokenizer.json as tokenizer.* keys; any other path a Hugging Face directory\n"
     "(config.json + model.safetensors, made if missing) in --dtype, in shards of --max-shard-size,\n"
     "with IN's tokenizer (a GGUF's written as tokenizer.json, tokenizer_config.json and\n"
     "generation_config.json). The q and k projections are converted between the interleaved\n"
     "RoPE layout (llama2.c, GGUF, this library) and transformers' rotate-half layout.\n"},
    {"tokenize", CMD_TOKENIZE, cmd_tokenize, 2, "encode a text file into an llm.c token file",
     "usage: lisa tokenize --tokenizer T IN.txt OUT.tok",
     "Encodes a text file into an llm.c token file (uint16 when every id fits, else uint32): the\n"
     "ids transformers' tokenizer(text).input_ids gives, BOS and EOS as the tokenizer's\n"
     "configuration adds them (bytes and tokenizer.bin: BOS, then the whole text).\n"},
    {"generate", CMD_GENERATE, cmd_generate, 0, "continue a prompt with a model", "usage: lisa generate --model M [options]",
     "Continues a prompt, one token per step through a KV cache, up to EOS. With --chat the\n"
     "prompt is a user message in the chat template and the answer ends at its end of turn.\n"},
    {"compare", CMD_TRAIN | CMD_COMPARE, cmd_compare, 0, "full fine-tuning, LoRA and LISA on the same data, one table",
     "usage: lisa compare (--model M | --init SPEC) --data TRAIN [--val VAL] [--methods full,lora,lisa]\n"
     "                    [--steps N] [--lr-full X --lr-lora X --lr-lisa X] [--budget GIB] [--plot FILE.svg]\n"
     "                    [--log FILE.jsonl] [train's options]",
     "Trains each method in turn from the same starting weights, with the same batches in the same\n"
     "order, the same seeds and schedule, and prints one table: trainable parameters (at once),\n"
     "final training loss (the mean over the last tenth of the steps), validation loss and, on\n"
     "instruction data, exact match of greedy answers (--val), tokens per second, and peak memory\n"
     "as planned and as counted. LoRA's adapters are merged before evaluation. --plot draws every\n"
     "method's loss curve on one chart; --log writes one line per step and method. The model is\n"
     "not saved (train does that).\n"},
    {"demo", CMD_DEMO, cmd_demo, 0, "train a small model on built-in data, no files needed",
     "usage: lisa demo [--quick] [--compare [--steps N]] [--threads N]   or   lisa demo --model FILE.gguf [--steps N] [--out OUT] [--threads N]",
     "Needs no files. Makes instruction data in code: a text family (\"copy abc:\" -> \"abc\",\n"
     "\"upper abc:\" -> \"ABC\") and a number family (\"sort 4193:\" -> \"1349\", \"max 12 85 7:\" -> \"85\"),\n"
     "with one question in 8 held out of training. Pre-trains a small LLaMA (4 layers, dim 64,\n"
     "byte vocabulary) on the text family with every layer training, then fine-tunes it on the\n"
     "number family with LISA (2 of 4 layers at a time, resampled every 20 steps; one example in 5\n"
     "is from the text family). Prints exact-match accuracy of greedy answers on held-out\n"
     "questions before and after, the loss, tokens/s, the active layers over time and the memory\n"
     "of LISA against full fine-tuning. About 75 s on 2 cores. Exits 1 if fine-tuning did\n"
     "not raise the number family's accuracy.\n"
     "\n"
     "With --compare: after the same pre-training, fine-tunes three copies of the pre-trained\n"
     "model on the number family with full fine-tuning (lr 1e-3), LoRA (rank 8, alpha 16, all\n"
     "seven projections; lr 1e-2) and LISA (lr 3e-3), the same data order and steps, and prints\n"
     "one table: trainable parameters, final loss, accuracy per task (the text family shows\n"
     "what was forgotten, the number family what was learnt), tokens/s and peak memory, planned\n"
     "and measured. --steps sets each method's fine-tuning steps (default 5000, 1000 with\n"
     "--quick).\n"
     "\n"
     "With --model (a GGUF chat model, e.g. SmolLM2-135M-Instruct): teaches the model a made-up\n"
     "fact (\"Vellmora was founded by Tamsin Orrel.\") from 12 built-in conversations rendered with\n"
     "the model's chat template, loss on the answers only, with LISA (2 layers at a time, resampled\n"
     "every 5 steps; embedding and head always train). Asks 4 held-out questions (paraphrases not\n"
     "in the training set) greedily before and after; an answer is right when it names Tamsin\n"
     "Orrel. Prints the loss per step, tokens/s, the answers, the planner's memory for LISA and for\n"
     "full fine-tuning, and the peak resident size measured while fine-tuning, also as a line\n"
     "\"peak_rss_bytes N planned_bytes M full_planned_bytes F\". About 2 minutes on 2 cores for\n"
     "SmolLM2-135M. Exits 1 unless every answer was wrong before and all but one right after.\n"
     "--out saves the fine-tuned model (OUT.gguf for llama.cpp and Ollama, a directory for\n"
     "transformers) with the model's tokenizer.\n"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_main_help(FILE *f) {
    size_t i;
    fprintf(f, "usage: lisa COMMAND [options]   (lisa COMMAND --help for each command's options)\n\n");
    for (i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    options o;
    size_t i;
    dp_init(&argc, &argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_main_help(stdout);
        dp_finish();
        return argc < 2 ? 2 : 0;
    }
    for (i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc;
            parse_options(&o, &commands[i], argc - 2, argv + 2);
            rc = commands[i].run(&o);
            dp_finish();
            return rc;
        }
    fprintf(stderr, "lisa: unknown command '%s'\n", argv[1]);
    print_main_help(stderr);
    dp_finish();
    return 2;
}
