/* Speed and memory of lisa_cuda.h's trainer on one GPU: full fine-tuning or
   LISA on a LLaMA shape with random weights (initialised on the device, so a
   7B model needs no host copy) and random tokens.

   Reports ms per step, tokens/s, model-FLOPs utilisation (MFU), and device
   memory three ways against the planner's prediction (lisa_cuda_plan_memory):
   the peak of every cudaMalloc and cudaFree of the trainer, counted by
   bench/lisa_cuda_obj.cu apart from the trainer; the trainer's own tally
   (lisa_cuda_trainer_peak_bytes); and the device's view (cudaMemGetInfo
   through lisa_cuda_device_query, sampled after creation and every step: on
   a card it adds the CUDA context's growth, cuBLAS's own memory and allocation
   granularity; under tests/cuda_emu.h it is the emulator's own count).
   bench/bench_gpu.sh runs the whole set in one command.

   Build (from the repository root; sm_90 for H100/H200, sm_80 for A100):
     nvcc -std=c++17 -O3 -I. -gencode arch=compute_90,code=sm_90 -c bench/lisa_cuda_obj.cu -o build/lisa_cuda_obj.o
     gcc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -I. -o build/bench_cuda bench/bench_cuda.c \
         build/lisa_cuda_obj.o -L/usr/local/cuda/lib64 -lcublas -lcudart -lstdc++ -lm

   Options (defaults in brackets):
     --shape tiny|1b|7b   tiny: dim 256, hidden 768, 4 layers, 8 heads, 4 kv heads;
                          1b: dim 2048, hidden 5632, 22 layers, 32 heads, 4 kv heads;
                          7b: dim 4096, hidden 11008, 32 layers, 32 heads (LLaMA-2-7B);
                          all vocab 32000, untied head [tiny]
     --mode full|lisa     [lisa]
     --gamma N --interval K   LISA layers trained at a time, steps between draws [2, 20]
     --batch B --seq T    [1, 1024]
     --warmup N --steps N untimed, then timed steps [3, 10]
     --dtype bf16|fp32    [bf16]
     --ckpt 0|1           gradient checkpointing [1]
     --fit                find the longest seq (a multiple of 128) whose planned peak
                          fits in --fit-gib GiB [24], then run it
     --plan-only          print the planner's bytes (and --fit's choice) and stop: no GPU needed
     --peak-tflops X      the card's dense bf16 peak, for cards not in the table below
     --device N           CUDA device [0]
     --label S            copied into the JSON line
     --json               one JSON line on stdout (the readable report goes to stderr)

   FLOP convention (bench_hf.py writes the same formula): model FLOPs per token
   of a full step = 3 x forward, forward = 2 x the parameters of every linear
   layer (the head included, the embedding lookup not) + per layer 2 x 2 x dim
   x seq / 2 for causal attention (scores and weighted sum, each query meeting
   seq / 2 keys on average). Backward is counted as twice the forward (input
   and weight gradients); recomputation under checkpointing is not counted.
   "mfu" always uses the full-step count, so it is the effective rate of a LISA
   or full step alike; "mfu_done" uses what the mode actually computes (LISA
   skips frozen layers' weight gradients). Bytes are exact; GiB = 2^30 bytes. */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "lisa_cuda.h"
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GIB ((double)(1u << 30))
#define MAX_TIMED 4096
#define FIT_MAX_SEQ (1 << 18)

/* Defined in bench/lisa_cuda_obj.cu: cudaDeviceSynchronize, and the device
   bytes it counts (held now, the most held since the last restart). */
int bench_cuda_synchronize(void);
size_t bench_cuda_bytes(void);
size_t bench_cuda_peak_bytes(void);
void bench_cuda_restart_peak(void);

typedef struct options {
    const char *shape, *label;
    int full, gamma, interval, batch, seq, warmup, steps, ckpt, fit, plan_only, json, device;
    lisa_dtype dtype;
    double peak_tflops, fit_gib;
} options;

typedef struct flop_count {
    double full;  /* model FLOPs per token of a full step */
    double done;  /* FLOPs per token this mode computes */
} flop_count;

typedef struct result {
    const char *status;        /* "ok", or what went wrong */
    char error[512];
    lisa_cuda_device dev;
    lisa_memory_plan plan;
    flop_count flops;
    double peak_tflops;        /* 0: unknown card */
    double ms_mean, ms_median, tokens_per_s;
    size_t peak_bytes;         /* most device bytes held at once, counted by bench/lisa_cuda_obj.cu */
    size_t trainer_peak_bytes; /* lisa_cuda_trainer_peak_bytes: the trainer's own tally */
    long device_left;          /* counted bytes still held after lisa_cuda_trainer_free */
    size_t used_baseline;      /* total - free before the trainer exists (CUDA context included) */
    size_t used_created;       /* right after creation */
    size_t used_max;           /* most seen after any step */
    int resamples;             /* steps with info.switched */
    int layer_changes;         /* steps whose active layers differ from the step before */
    float loss_first, loss_last;
    int fit_seq;               /* --fit: the seq chosen */
} result;

static void usage_exit(const char *what) {
    fprintf(stderr, "bench_cuda: %s (see the options at the top of bench/bench_cuda.c)\n", what);
    exit(2);
}

static int int_value(const char *flag, const char *s, int lo, int hi) {
    char *end;
    long v = strtol(s, &end, 10);
    char msg[160];
    if (*s == 0 || *end != 0 || v < lo || v > hi) {
        snprintf(msg, sizeof msg, "%s %s: need an integer in %d..%d", flag, s, lo, hi);
        usage_exit(msg);
    }
    return (int)v;
}

static double double_value(const char *flag, const char *s) {
    char *end;
    double v = strtod(s, &end);
    char msg[160];
    if (*s == 0 || *end != 0 || !(v > 0)) {
        snprintf(msg, sizeof msg, "%s %s: need a positive number", flag, s);
        usage_exit(msg);
    }
    return v;
}

static options parse_options(int argc, char **argv) {
    options o;
    int i;
    memset(&o, 0, sizeof o);
    o.shape = "tiny";
    o.label = "";
    o.gamma = 2;
    o.interval = 20;
    o.batch = 1;
    o.seq = 1024;
    o.warmup = 3;
    o.steps = 10;
    o.ckpt = 1;
    o.dtype = LISA_DTYPE_BF16;
    o.fit_gib = 24;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--fit")) { o.fit = 1; continue; }
        if (!strcmp(a, "--json")) { o.json = 1; continue; }
        if (!strcmp(a, "--plan-only")) { o.plan_only = 1; continue; }
        if (!v) usage_exit("an option is missing its value or is unknown");
        i++;
        if (!strcmp(a, "--shape")) o.shape = v;
        else if (!strcmp(a, "--label")) o.label = v;
        else if (!strcmp(a, "--mode")) {
            if (strcmp(v, "full") && strcmp(v, "lisa")) usage_exit("--mode: full or lisa");
            o.full = !strcmp(v, "full");
        } else if (!strcmp(a, "--dtype")) {
            if (strcmp(v, "bf16") && strcmp(v, "fp32")) usage_exit("--dtype: bf16 or fp32");
            o.dtype = strcmp(v, "bf16") ? LISA_DTYPE_F32 : LISA_DTYPE_BF16;
        } else if (!strcmp(a, "--gamma")) o.gamma = int_value(a, v, 1, 4096);
        else if (!strcmp(a, "--interval")) o.interval = int_value(a, v, 1, 1 << 30);
        else if (!strcmp(a, "--batch")) o.batch = int_value(a, v, 1, 1 << 16);
        else if (!strcmp(a, "--seq")) o.seq = int_value(a, v, 1, FIT_MAX_SEQ);
        else if (!strcmp(a, "--warmup")) o.warmup = int_value(a, v, 0, 1 << 20);
        else if (!strcmp(a, "--steps")) o.steps = int_value(a, v, 1, MAX_TIMED);
        else if (!strcmp(a, "--ckpt")) o.ckpt = int_value(a, v, 0, 1);
        else if (!strcmp(a, "--device")) o.device = int_value(a, v, 0, 1023);
        else if (!strcmp(a, "--peak-tflops")) o.peak_tflops = double_value(a, v);
        else if (!strcmp(a, "--fit-gib")) o.fit_gib = double_value(a, v);
        else usage_exit("unknown option");
    }
    return o;
}

/* The shapes of the issue: a LLaMA-2-7B, a 1B-class model with grouped-query
   attention (4 kv heads), and a tiny one for a quick check that all runs. */
static lisa_config shape_config(const char *name, int seq) {
    lisa_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 32000;
    c.max_seq_len = seq;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    if (!strcmp(name, "7b")) {
        c.dim = 4096, c.hidden_dim = 11008, c.n_layers = 32, c.n_heads = 32, c.n_kv_heads = 32;
    } else if (!strcmp(name, "1b")) {
        c.dim = 2048, c.hidden_dim = 5632, c.n_layers = 22, c.n_heads = 32, c.n_kv_heads = 4;
    } else if (!strcmp(name, "tiny")) {
        c.dim = 256, c.hidden_dim = 768, c.n_layers = 4, c.n_heads = 8, c.n_kv_heads = 4;
    } else {
        usage_exit("--shape: tiny, 1b or 7b");
    }
    return c;
}

static lisa_train_config train_config(const options *o) {
    lisa_train_config tc = lisa_train_config_default();
    tc.batch = o->batch;
    tc.seq = o->seq;
    tc.schedule.lr = 1e-5f;
    tc.checkpointing = o->ckpt;
    tc.mode = o->full ? LISA_MODE_FULL : LISA_MODE_LISA;
    tc.lisa_layers = o->gamma;
    tc.lisa_interval = o->interval;
    tc.lisa_seed = 1;
    return tc;
}

/* Model FLOPs per token; see the convention at the top of the file. */
static flop_count count_flops(const lisa_config *c, int seq, int trained_layers) {
    double D = c->dim, H = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    double kv_dim = D / c->n_heads * c->n_kv_heads;
    double layer_linear = D * D + 2 * D * kv_dim + D * D + 3 * D * H; /* wq wk wv wo w1 w2 w3 */
    double head = D * V;
    double fwd_linear = 2 * (L * layer_linear + head);
    double fwd_attention = L * 2 * 2 * D * seq / 2;
    flop_count f;
    f.full = 3 * (fwd_linear + fwd_attention);
    /* forward, input gradients through every layer (the embedding trains, so
       they reach the bottom; attention's backward is twice its forward), and
       weight gradients of the trained layers and the head only */
    f.done = (fwd_linear + fwd_attention) + (fwd_linear + 2 * fwd_attention) +
             2 * (trained_layers * layer_linear + head);
    return f;
}

/* Dense bf16 tensor-core peak (fp32 accumulation, no sparsity) by device name;
   the more specific names come first. 0: unknown, pass --peak-tflops. */
static double peak_tflops_of(const char *name) {
    static const struct { const char *key; double tflops; } table[] = {
        {"H200 NVL", 835}, {"H200", 989}, {"H100 NVL", 835}, {"H100 PCIe", 756}, {"H100", 989},
        {"A100", 312}, {"RTX 4090", 165}, {"RTX 3090", 71},
    };
    size_t i;
    for (i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strstr(name, table[i].key)) return table[i].tflops;
    return 0;
}

static int plan_fits(const options *o, int seq, double limit_bytes, lisa_memory_plan *plan) {
    lisa_config c = shape_config(o->shape, seq);
    lisa_train_config tc;
    options so = *o;
    so.seq = seq;
    tc = train_config(&so);
    if (lisa_config_resolve(&c, NULL) != LISA_OK) return 0;
    if (lisa_cuda_plan_memory(&c, &tc, o->dtype, plan, NULL) != LISA_OK) return 0;
    return (double)plan->peak <= limit_bytes;
}

/* Longest seq, a multiple of 128, whose planned peak fits: doubling from 128
   until one does not fit, then halving the gap. 0 when not even 128 fits. */
static int fit_seq(const options *o, FILE *out) {
    double limit = o->fit_gib * GIB;
    lisa_memory_plan plan;
    int lo = 0, hi = 0, s;
    for (s = 128; s <= FIT_MAX_SEQ; s *= 2) {
        int ok = plan_fits(o, s, limit, &plan);
        fprintf(out, "fit: seq %6d  planned peak %.3f GiB  %s\n", s, plan.peak / GIB, ok ? "fits" : "too big");
        if (!ok) { hi = s; break; }
        lo = s;
    }
    if (lo == 0 || hi == 0) return lo;
    while (hi - lo > 128) {
        int mid = lo + (hi - lo) / 256 * 128;
        int ok = plan_fits(o, mid, limit, &plan);
        fprintf(out, "fit: seq %6d  planned peak %.3f GiB  %s\n", mid, plan.peak / GIB, ok ? "fits" : "too big");
        if (ok) lo = mid; else hi = mid;
    }
    return lo;
}

static void random_tokens(int *inputs, int *targets, int n, int vocab) {
    lisa_rng r;
    int i, prev;
    lisa_rng_seed(&r, 1234);
    prev = (int)(lisa_rng_next(&r) % (uint64_t)vocab);
    for (i = 0; i < n; i++) { /* targets are the inputs shifted by one, as in real data */
        inputs[i] = prev;
        prev = (int)(lisa_rng_next(&r) % (uint64_t)vocab);
        targets[i] = prev;
    }
}

static size_t device_used(int device) {
    lisa_cuda_device d;
    if (lisa_cuda_device_query(device, &d, NULL) != LISA_OK) return 0;
    return d.total_bytes - d.free_bytes;
}

static int same_layers(const int *a, int na, const int *b, int nb) {
    return na == nb && !memcmp(a, b, (size_t)na * sizeof *a);
}

/* Out of device memory shows as LISA_ERR_NOMEM or as a CUDA message. */
static int is_oom(lisa_result code, const char *message) {
    return code == LISA_ERR_NOMEM || strstr(message, "out of memory") != NULL;
}

static int fail(result *r, const char *status, const char *what, const char *message) {
    r->status = status;
    snprintf(r->error, sizeof r->error, "%s: %s", what, message);
    return 0;
}

/* Warm-up and timed steps. Each step ends with a device synchronisation, so
   its time is all of its kernels; the memory sample after it is untimed. */
static int run_steps(lisa_cuda_trainer *t, const options *o, const int *in, const int *tg,
                     result *r) {
    static double ms[MAX_TIMED];
    int layers[2][4096], n_layers[2] = {0, 0}, i, total = o->warmup + o->steps;
    double timed = 0;
    for (i = 0; i < total; i++) {
        lisa_step_info info;
        double t0 = now_seconds(), dt;
        size_t used;
        lisa_result rc = lisa_cuda_trainer_step(t, in, tg, &info);
        if (rc != LISA_OK) {
            const char *m = lisa_cuda_trainer_message(t);
            return fail(r, is_oom(rc, m) ? "oom" : "step_failed", "lisa_cuda_trainer_step", m);
        }
        if (bench_cuda_synchronize() != 0)
            return fail(r, "step_failed", "cudaDeviceSynchronize", "a kernel failed after the step");
        dt = now_seconds() - t0;
        if (i >= o->warmup) {
            ms[i - o->warmup] = dt * 1e3;
            timed += dt;
        }
        if (i == 0) r->loss_first = info.loss;
        r->loss_last = info.loss;
        r->resamples += info.switched;
        n_layers[i & 1] = lisa_cuda_trainer_active_layers(t, layers[i & 1]);
        if (i > 0 && !same_layers(layers[i & 1], n_layers[i & 1], layers[!(i & 1)], n_layers[!(i & 1)]))
            r->layer_changes++;
        used = device_used(o->device);
        if (used > r->used_max) r->used_max = used;
    }
    r->ms_mean = timed * 1e3 / o->steps;
    r->ms_median = median(ms, o->steps);
    r->tokens_per_s = (double)o->batch * o->seq * o->steps / timed;
    return 1;
}

/* Creates the trainer, runs it, frees it. Returns 1 when every step ran. */
static int run(const options *o, const lisa_config *c, result *r) {
    lisa_train_config tc = train_config(o);
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_cuda_trainer *t = NULL;
    lisa_error err;
    size_t n = (size_t)o->batch * o->seq, counted_before;
    int *in, *tg, ok;
    cc.dtype = o->dtype;
    cc.device = o->device;
    if (lisa_cuda_device_query(o->device, &r->dev, &err) != LISA_OK)
        return fail(r, "no_device", "lisa_cuda_device_query", err.message);
    r->used_baseline = r->dev.total_bytes - r->dev.free_bytes;
    if (r->plan.peak > r->dev.free_bytes) {
        char m[160];
        snprintf(m, sizeof m, "planned peak %.2f GiB > %.2f GiB free", r->plan.peak / GIB, r->dev.free_bytes / GIB);
        return fail(r, "oom_predicted", "lisa_cuda_plan_memory", m);
    }
    in = (int *)malloc(n * sizeof *in);
    tg = (int *)malloc(n * sizeof *tg);
    if (!in || !tg) {
        free(in), free(tg);
        return fail(r, "host_oom", "malloc", "no memory for the tokens");
    }
    random_tokens(in, tg, (int)n, c->vocab_size);
    counted_before = bench_cuda_bytes();
    bench_cuda_restart_peak();
    if (lisa_cuda_trainer_create(&t, c, NULL, 1, &tc, &cc, &err) != LISA_OK) {
        ok = fail(r, is_oom(err.code, err.message) ? "oom" : "create_failed", "lisa_cuda_trainer_create",
                  err.message);
    } else {
        r->used_created = r->used_max = device_used(o->device);
        ok = run_steps(t, o, in, tg, r);
        r->trainer_peak_bytes = lisa_cuda_trainer_peak_bytes(t);
        r->peak_bytes = bench_cuda_peak_bytes() - counted_before;
    }
    if (t) lisa_cuda_trainer_free(t);
    r->device_left = (long)(bench_cuda_bytes() - counted_before);
    free(in), free(tg);
    return ok;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* A finite number, or null (JSON has no NaN or infinity). */
static void json_number(FILE *f, const char *key, double v) {
    if (isfinite(v)) fprintf(f, ",\"%s\":%.6g", key, v);
    else fprintf(f, ",\"%s\":null", key);
}

static void json_size(FILE *f, const char *key, size_t v) {
    fprintf(f, ",\"%s\":%zu", key, v);
}

static void print_json(const options *o, const result *r) {
    double peak = r->peak_tflops * 1e12, nan = NAN;
    int ran = !strcmp(r->status, "ok");
    const lisa_memory_plan *p = &r->plan;
    printf("{\"tool\":\"lisa_cuda\",\"label\":");
    json_string(stdout, o->label);
    printf(",\"status\":");
    json_string(stdout, r->status);
    printf(",\"error\":");
    json_string(stdout, r->error);
    printf(",\"device\":");
    json_string(stdout, r->dev.name);
    printf(",\"compute_capability\":\"%d.%d\",\"shape\":\"%s\",\"mode\":\"%s\",\"gamma\":%d,\"interval\":%d",
           r->dev.major, r->dev.minor, o->shape, o->full ? "full" : "lisa", o->full ? 0 : o->gamma, o->interval);
    printf(",\"batch\":%d,\"seq\":%d,\"dtype\":\"%s\",\"ckpt\":%d,\"warmup\":%d,\"steps\":%d,\"fit\":%d",
           o->batch, o->seq, o->dtype == LISA_DTYPE_BF16 ? "bf16" : "fp32", o->ckpt, o->warmup, o->steps, o->fit);
    json_number(stdout, "peak_tflops", r->peak_tflops > 0 ? r->peak_tflops : nan);
    json_number(stdout, "ms_per_step", ran ? r->ms_mean : nan);
    json_number(stdout, "ms_median", ran ? r->ms_median : nan);
    json_number(stdout, "tokens_per_s", ran ? r->tokens_per_s : nan);
    json_number(stdout, "flops_per_token", r->flops.full);
    json_number(stdout, "flops_per_token_done", r->flops.done);
    json_number(stdout, "mfu", ran && peak > 0 ? r->tokens_per_s * r->flops.full / peak : nan);
    json_number(stdout, "mfu_done", ran && peak > 0 ? r->tokens_per_s * r->flops.done / peak : nan);
    json_number(stdout, "loss_first", ran ? r->loss_first : nan);
    json_number(stdout, "loss_last", ran ? r->loss_last : nan);
    printf(",\"resamples\":%d,\"layer_changes\":%d", r->resamples, r->layer_changes);
    json_size(stdout, "params", p->params);
    json_size(stdout, "trained_params", p->trained_params);
    json_size(stdout, "peak_bytes", r->peak_bytes);
    json_size(stdout, "trainer_peak_bytes", r->trainer_peak_bytes);
    json_size(stdout, "plan_peak", p->peak);
    printf(",\"plan_match\":%s", ran && r->peak_bytes == p->peak ? "true" : "false");
    printf(",\"tally_match\":%s", ran && r->trainer_peak_bytes == r->peak_bytes ? "true" : "false");
    printf(",\"device_left\":%ld", r->device_left);
    printf(",\"fits_24gib\":%s", ran && r->peak_bytes <= 24 * GIB ? "true" : "false");
    json_size(stdout, "plan_weights", p->weights);
    json_size(stdout, "plan_gradients", p->gradients);
    json_size(stdout, "plan_optimizer", p->optimizer);
    json_size(stdout, "plan_activations", p->activations);
    json_size(stdout, "plan_scratch", p->scratch);
    json_size(stdout, "plan_tables", p->tables);
    json_size(stdout, "device_total", r->dev.total_bytes);
    json_size(stdout, "device_used_baseline", r->used_baseline);
    json_size(stdout, "device_used_created", r->used_created);
    json_size(stdout, "device_used_max", r->used_max);
    json_size(stdout, "device_delta", r->used_max > r->used_baseline ? r->used_max - r->used_baseline : 0);
    printf("}\n");
}

static void print_report(FILE *f, const options *o, const result *r) {
    const lisa_memory_plan *p = &r->plan;
    double peak = r->peak_tflops * 1e12;
    fprintf(f, "%s: %s %s, batch %d x seq %d, %s, checkpointing %s", r->dev.name[0] ? r->dev.name : "(no device)",
            o->shape, o->full ? "full fine-tuning" : "LISA", o->batch, o->seq,
            o->dtype == LISA_DTYPE_BF16 ? "bf16" : "fp32", o->ckpt ? "on" : "off");
    if (!o->full) fprintf(f, ", gamma %d, K %d", o->gamma, o->interval);
    fprintf(f, "\n  plan: peak %.3f GiB = weights %.3f + gradients %.3f + optimizer %.3f + activations %.3f"
               " + scratch %.3f + tables %.6f\n", p->peak / GIB, p->weights / GIB, p->gradients / GIB,
            p->optimizer / GIB, p->activations / GIB, p->scratch / GIB, p->tables / GIB);
    if (!strcmp(r->status, "plan_only")) {
        fprintf(f, "  planned peak %zu bytes (%s 24 GiB), %zu parameters, %zu trained at once\n", p->peak,
                p->peak <= 24 * GIB ? "within" : "over", p->params, p->trained_params);
        return;
    }
    if (strcmp(r->status, "ok")) {
        fprintf(f, "  FAILED (%s): %s\n", r->status, r->error);
        return;
    }
    fprintf(f, "  %.2f ms/step (median %.2f), %.0f tokens/s, loss %.4f -> %.4f\n", r->ms_mean, r->ms_median,
            r->tokens_per_s, r->loss_first, r->loss_last);
    if (peak > 0)
        fprintf(f, "  MFU %.1f%% of %.0f TFLOPs (full-step FLOPs; %.1f%% counting the FLOPs done)\n",
                100 * r->tokens_per_s * r->flops.full / peak, r->peak_tflops, 100 * r->tokens_per_s * r->flops.done / peak);
    else
        fprintf(f, "  MFU: unknown card, pass --peak-tflops\n");
    fprintf(f, "  counted peak %.3f GiB (every cudaMalloc of the trainer; %s the plan, %zu bytes), %s 24 GiB\n",
            r->peak_bytes / GIB, r->peak_bytes == p->peak ? "equals" : "DIFFERS FROM", r->peak_bytes,
            r->peak_bytes <= 24 * GIB ? "within" : "over");
    fprintf(f, "  the trainer's own tally: %zu bytes (%s the counted peak); %ld counted bytes left after free\n",
            r->trainer_peak_bytes, r->trainer_peak_bytes == r->peak_bytes ? "equals" : "DIFFERS FROM",
            r->device_left);
    fprintf(f, "  device used: %.3f GiB before the trainer, %.3f GiB most after a step (+%.3f GiB, %+.3f GiB "
               "over the plan)\n", r->used_baseline / GIB, r->used_max / GIB,
            ((double)r->used_max - (double)r->used_baseline) / GIB,
            ((double)r->used_max - (double)r->used_baseline - (double)p->peak) / GIB);
    if (!o->full)
        fprintf(f, "  LISA: %d resamplings, %d changes of the active layers over %d steps\n", r->resamples,
                r->layer_changes, o->warmup + o->steps);
    if (!o->full && o->warmup + o->steps <= o->interval)
        fprintf(f, "  note: %d steps do not reach the first switch at step %d\n", o->warmup + o->steps, o->interval);
    if (!isfinite(r->loss_last)) fprintf(f, "  note: the loss is not finite\n");
}

int main(int argc, char **argv) {
    options o = parse_options(argc, argv);
    FILE *out = o.json ? stderr : stdout;
    lisa_config c;
    lisa_train_config tc;
    lisa_error err;
    result r;
    int ok;
    memset(&r, 0, sizeof r);
    r.status = "ok";
    if (o.fit && !(o.seq = r.fit_seq = fit_seq(&o, out))) {
        fail(&r, "plan_failed", "--fit", "not even seq 128 fits (or the planner failed)");
    }
    c = shape_config(o.shape, o.seq);
    tc = train_config(&o);
    if (!strcmp(r.status, "ok") && lisa_config_resolve(&c, &err) != LISA_OK)
        fail(&r, "invalid", "config", err.message);
    if (!strcmp(r.status, "ok") && lisa_cuda_plan_memory(&c, &tc, o.dtype, &r.plan, &err) != LISA_OK)
        fail(&r, "invalid", "lisa_cuda_plan_memory", err.message);
    r.flops = count_flops(&c, o.seq, o.full ? c.n_layers : o.gamma);
    if (o.plan_only && !strcmp(r.status, "ok")) r.status = "plan_only";
    if (!strcmp(r.status, "ok") && lisa_cuda_device_count() < 1)
        fail(&r, "no_device", "lisa_cuda_device_count", "no CUDA device (or no driver)");
    ok = !strcmp(r.status, "plan_only") || (!strcmp(r.status, "ok") && run(&o, &c, &r));
    r.peak_tflops = o.peak_tflops > 0 ? o.peak_tflops : peak_tflops_of(r.dev.name);
    print_report(out, &o, &r);
    if (o.json) print_json(&o, &r);
    return ok ? 0 : 1;
}
