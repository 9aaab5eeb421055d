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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "lisa: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

/* ---- option parsing ------------------------------------------------------ */

typedef struct args {
    int argc, i;
    char **argv;
} args;

static const char *arg_value(args *a, const char *flag) {
    if (a->i + 1 >= a->argc) die("%s needs a value", flag);
    return a->argv[++a->i];
}

static long arg_long(args *a, const char *flag, long lo, long hi) {
    const char *s = arg_value(a, flag);
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi) die("bad value for %s", flag);
    return v;
}

static float arg_float(args *a, const char *flag) {
    const char *s = arg_value(a, flag);
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || !isfinite(v)) die("bad value for %s", flag);
    return (float)v;
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

/* A model file (llama2.c .bin) or a Hugging Face directory. */
static void load_model_or_die(lisa_model *m, const char *path) {
    lisa_error err;
    if (lisa_model_load(m, path, NULL, &err) != LISA_OK) die("%s", err.message);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A path ending in .bin gets a llama2.c checkpoint; any other path is a
   Hugging Face directory (config.json + model.safetensors), made if missing. */
static void save_model_or_die(const lisa_model *m, const char *path, lisa_file_dtype dtype) {
    lisa_error err;
    lisa_result r;
    if (ends_with(path, ".bin")) {
        if (dtype != LISA_FILE_F32) die("%s: llama2.c checkpoints hold fp32 only", path);
        r = lisa_model_save_llama2c(m, path, &err);
    } else {
        mkdir(path, 0777); /* an existing directory is fine; other failures show in the save */
        r = lisa_model_save_hf(m, path, dtype, &err);
    }
    if (r != LISA_OK) die("%s", err.message);
    fprintf(stderr, "wrote %s\n", path);
}

static lisa_file_dtype parse_file_dtype(const char *s) {
    if (!strcmp(s, "f32") || !strcmp(s, "fp32")) return LISA_FILE_F32;
    if (!strcmp(s, "f16") || !strcmp(s, "fp16")) return LISA_FILE_F16;
    if (!strcmp(s, "bf16")) return LISA_FILE_BF16;
    die("dtype must be f32, f16 or bf16, not '%s'", s);
    return LISA_FILE_F32;
}

/* "bytes" is the built-in byte-level tokenizer; anything else a llama2.c tokenizer.bin. */
static void load_tokenizer_or_die(lisa_tokenizer *t, const char *spec) {
    lisa_error err;
    if (!strcmp(spec, "bytes")) lisa_tokenizer_init_bytes(t);
    else if (lisa_tokenizer_load_llama2c(t, spec, 0, NULL, &err) != LISA_OK) die("%s", err.message);
}

/* Training or evaluation data: an llm.c token file, or instruction data in
   JSON Lines / LMFlow text2text (.jsonl, .json) encoded with a tokenizer. */
typedef struct data_source {
    int is_sft;
    lisa_tokens tokens;
    lisa_sft_data sft;
} data_source;

static void load_data_or_die(data_source *d, const char *path, const char *tokenizer, int vocab, int seq, int pack) {
    lisa_error err;
    memset(d, 0, sizeof *d);
    d->is_sft = ends_with(path, ".jsonl") || ends_with(path, ".json");
    if (d->is_sft) {
        lisa_tokenizer tok;
        if (!tokenizer) die("%s: instruction data needs --tokenizer (a tokenizer.bin, or bytes)", path);
        load_tokenizer_or_die(&tok, tokenizer);
        if (tok.vocab_size > vocab)
            die("%s: the tokenizer's vocabulary is larger than the model's", tokenizer);
        if (lisa_sft_load(&d->sft, path, &tok, seq, pack, NULL, &err) != LISA_OK) die("%s", err.message);
        fprintf(stderr, "%s: %lu examples in %lu rows (%lu truncated, %lu skipped), %lu response tokens\n", path,
                (unsigned long)d->sft.n_examples, (unsigned long)d->sft.n_rows, (unsigned long)d->sft.n_truncated,
                (unsigned long)d->sft.n_skipped, (unsigned long)d->sft.n_counted);
        lisa_tokenizer_free(&tok);
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

static const char *train_help =
    "usage: lisa train (--model IN | --init SPEC | --resume STATE) --data TRAIN --out OUT [options]\n"
    "\n"
    "  --model IN            start from a llama2.c checkpoint (.bin, legacy or version 1) or a\n"
    "                        Hugging Face LLaMA directory (config.json + safetensors)\n"
    "  --init SPEC           start from random weights of this shape, e.g.\n"
    "                        dim=288,hidden=768,layers=6,heads=6,kv_heads=6,vocab=32000,seq=256,tied=1\n"
    "                        (hidden default: 8/3 dim rounded up to 32; kv_heads default: heads;\n"
    "                        seq default 256; tied default 1; also norm_eps=, rope_theta=),\n"
    "                        or a named shape: stories15m tinyllama-1b llama2-7b llama2-13b llama2-70b\n"
    "  --data TRAIN          llm.c token file (uint16 or uint32), or instruction data (.jsonl:\n"
    "                        {\"prompt\": ..., \"response\": ...} per line; .json: LMFlow text2text),\n"
    "                        whose loss covers the responses only\n"
    "  --tokenizer T         for instruction data: a llama2.c tokenizer.bin, or bytes (built in:\n"
    "                        ids 0-255 bytes, 256 BOS, 257 EOS)\n"
    "  --pack                instruction data: pack examples back to back instead of one per row\n"
    "  --out OUT             where to write the trained model at the end: OUT.bin is a llama2.c\n"
    "                        checkpoint, any other path a Hugging Face directory\n"
    "  --out-dtype D         f32, f16 or bf16 for a Hugging Face directory (default f32)\n"
    "  --val FILE            validation data (same kinds as --data): its loss is reported and logged\n"
    "  --eval-every N        ... every N steps and after the last (default: 10 times per run)\n"
    "  --plot FILE.svg       draw the training loss (and validation loss) against the step, with\n"
    "                        LISA's switches marked, as an SVG file\n"
    "  --steps N             optimizer steps (default 100)\n"
    "  --batch B             sequences per step (default 4)\n"
    "  --seq T               tokens per sequence (default: 64, at most the model's seq)\n"
    "  --lr X                peak learning rate (default 3e-4)\n"
    "  --min-lr X            final learning rate of cosine and linear schedules (default 0)\n"
    "  --warmup N            linear warmup steps (default 0)\n"
    "  --schedule S          constant | cosine | linear (default constant)\n"
    "  --schedule-steps N    length of the schedule (default: --steps); a run may stop before its end\n"
    "                        and --resume later\n"
    "  --weight-decay X      AdamW decoupled weight decay, not applied to norms (default 0)\n"
    "  --beta1 X             (default 0.9)\n"
    "  --beta2 X             (default 0.999)\n"
    "  --eps X               (default 1e-8)\n"
    "  --grad-clip X         clip the global gradient norm to X; 0 is off (default 0)\n"
    "  --checkpointing       keep only layer inputs and recompute in backward (less memory)\n"
    "  --seed S              seed of --init's random weights (default 1)\n"
    "  --threads N           OpenMP threads (default: OpenMP's own default)\n"
    "  --log FILE.jsonl      one JSON object per step: step, loss, lr, grad_norm, tokens_per_s, ms,\n"
    "                        active_layers (sorted, counting from 0)\n"
    "  --save-state PATH     write the full training state (model, AdamW moments, LISA layers and\n"
    "                        sampler, step, data position) at the end, atomically\n"
    "  --save-every N        ... and every N steps\n"
    "  --resume PATH         continue from a state file up to --steps (the total, counting the steps\n"
    "                        already done); the model and settings come from the file, and the run\n"
    "                        continues bitwise as if it had not stopped\n"
    "\n";

/* (Two strings: C99 compilers need to support literals up to 4095 bytes only.) */
static const char *train_help_lisa =
    "LISA (layerwise importance sampling: embedding, final norm and head always train; of the\n"
    "decoder layers only G sampled ones do, resampled every K steps):\n"
    "  --mode M              full | lisa (default full)\n"
    "  --lisa-layers G       layers trained at a time (default 2)\n"
    "  --lisa-interval K     steps between resamplings (default 20)\n"
    "  --lisa-order O        random | cyclic (default random; cyclic hands out layers 0, 1, ... in turn)\n"
    "  --lisa-probs P,...    one sampling weight per layer (default uniform); sampled without replacement\n"
    "  --lisa-seed S         seed of the layer sampler (default 0)\n"
    "  --lisa-keep-state     keep the AdamW moments of layers that leave (costs their memory;\n"
    "                        by default a leaving layer frees them and restarts from zero when resampled)\n"
    "  --freeze-embed        never train the embedding (with a tied head: the shared matrix)\n"
    "  --freeze-head         never train the head (with a tied head: the shared matrix)\n"
    "  --freeze-norm         never train the final norm\n"
    "\n"
    "Batch i reads B rows of T tokens from offset i*B*T of the token file, targets shifted by\n"
    "one, wrapping at the end of the file.\n";

#ifdef LISA_WITH_CUDA
static const char *train_help_gpu =
    "\n"
    "GPU (build/lisa-cuda trains on the GPU by default):\n"
    "  --dtype D             bf16 (default: bf16 weights and activations, fp32 master weights,\n"
    "                        gradients and moments for trained blocks) or fp32 (for checking)\n"
    "  --device D            gpu (default) or cpu (this library's CPU trainer)\n"
    "  --gpu N               which CUDA device (default 0)\n"
    "  --save-state and --resume work here too, with the same state files: a state saved on one\n"
    "  device resumes on the other, and a run resumed in the dtype it was saved in continues\n"
    "  bitwise. --resume takes --dtype, --device and --gpu.\n";
#endif

/* Parses --dtype bf16|fp32. */
static lisa_dtype parse_dtype(const char *d) {
    if (!strcmp(d, "fp32")) return LISA_DTYPE_F32;
    if (!strcmp(d, "bf16")) return LISA_DTYPE_BF16;
    die("--dtype must be fp32 or bf16, not '%s'", d);
    return LISA_DTYPE_F32;
}

typedef struct train_opts {
    const char *model, *init, *data, *out, *log, *save_state, *resume, *tokenizer, *val, *plot;
    int steps, threads, save_every, pack, eval_every;
    lisa_file_dtype out_dtype;
    int settings_given;    /* a flag that a resumed run takes from its state file */
    unsigned long long seed;
    lisa_train_config tc;
    float probs[4096];
    int n_probs;
    int gpu;               /* build/lisa-cuda: train on the GPU (the default there) */
    int gpu_index;         /* ... this CUDA device */
    lisa_dtype gpu_dtype;  /* ... in bf16 (default) or fp32 */
} train_opts;

/* Parses "0.1,0.2,..." into out; returns the count. */
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
    return n;
}

/* The LISA and freezing options, shared by train and plan. Returns 1 if argv[a->i] was one. */
static int parse_lisa_option(train_opts *o, args *a) {
    const char *f = a->argv[a->i];
    if (!strcmp(f, "--mode")) {
        const char *s = arg_value(a, f);
        if (!strcmp(s, "full")) o->tc.mode = LISA_MODE_FULL;
        else if (!strcmp(s, "lisa")) o->tc.mode = LISA_MODE_LISA;
        else die("--mode must be full or lisa, not '%s'", s);
    } else if (!strcmp(f, "--lisa-layers")) o->tc.lisa_layers = (int)arg_long(a, f, 1, 1 << 12);
    else if (!strcmp(f, "--lisa-interval")) o->tc.lisa_interval = (int)arg_long(a, f, 1, 1L << 30);
    else if (!strcmp(f, "--lisa-order")) {
        const char *s = arg_value(a, f);
        if (!strcmp(s, "random")) o->tc.lisa_order = LISA_ORDER_RANDOM;
        else if (!strcmp(s, "cyclic")) o->tc.lisa_order = LISA_ORDER_CYCLIC;
        else die("--lisa-order must be random or cyclic, not '%s'", s);
    } else if (!strcmp(f, "--lisa-probs")) {
        o->n_probs = parse_floats(arg_value(a, f), o->probs, 4096);
        o->tc.lisa_probs = o->probs;
    } else if (!strcmp(f, "--lisa-seed")) o->tc.lisa_seed = (uint64_t)arg_long(a, f, 0, 0x7fffffffL);
    else if (!strcmp(f, "--lisa-keep-state")) o->tc.keep_state = 1;
    else if (!strcmp(f, "--freeze-embed")) o->tc.freeze_embed = 1;
    else if (!strcmp(f, "--freeze-head")) o->tc.freeze_head = 1;
    else if (!strcmp(f, "--freeze-norm")) o->tc.freeze_final_norm = 1;
    else return 0;
    return 1;
}

/* --lisa-probs must give one weight per layer. */
static void check_probs(const train_opts *o, const lisa_config *c) {
    if (o->tc.lisa_probs && o->n_probs != c->n_layers) {
        fprintf(stderr, "lisa: --lisa-probs gives %d weights; the model has %d layers\n", o->n_probs, c->n_layers);
        exit(2);
    }
}

static void parse_train(train_opts *o, int argc, char **argv) {
    args a;
    memset(o, 0, sizeof *o);
#ifdef LISA_WITH_CUDA
    o->gpu = 1;
    o->gpu_dtype = LISA_DTYPE_BF16;
#endif
    o->steps = 100;
    o->seed = 1;
    o->tc = lisa_train_config_default();
    o->tc.seq = 0; /* 0: 64, capped by the model */
    a.argc = argc;
    a.argv = argv;
    for (a.i = 0; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        int is_setting = strcmp(f, "--data") && strcmp(f, "--out") && strcmp(f, "--log") && strcmp(f, "--steps") &&
                         strcmp(f, "--threads") && strcmp(f, "--save-state") && strcmp(f, "--save-every") &&
                         strcmp(f, "--resume") && strcmp(f, "--tokenizer") && strcmp(f, "--pack") &&
                         strcmp(f, "--out-dtype") && strcmp(f, "--val") && strcmp(f, "--eval-every") &&
                         strcmp(f, "--plot") && strcmp(f, "--dtype") && strcmp(f, "--device") &&
                         strcmp(f, "--gpu");
        o->settings_given |= is_setting;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(train_help, stdout);
            fputs(train_help_lisa, stdout);
#ifdef LISA_WITH_CUDA
            fputs(train_help_gpu, stdout);
#endif
            exit(0);
        }
#ifdef LISA_WITH_CUDA
        else if (!strcmp(f, "--dtype")) o->gpu_dtype = parse_dtype(arg_value(&a, f));
        else if (!strcmp(f, "--gpu")) o->gpu_index = (int)arg_long(&a, f, 0, 1023);
        else if (!strcmp(f, "--device")) {
            const char *d = arg_value(&a, f);
            if (strcmp(d, "gpu") && strcmp(d, "cpu")) die("--device must be gpu or cpu, not '%s'", d);
            o->gpu = !strcmp(d, "gpu");
        }
#else
        else if (!strcmp(f, "--dtype") || !strcmp(f, "--device") || !strcmp(f, "--gpu"))
            die("train %s: this program trains on the CPU in fp32; build/lisa-cuda (make cuda) trains on a GPU", f);
#endif
        else if (!strcmp(f, "--save-state")) o->save_state = arg_value(&a, f);
        else if (!strcmp(f, "--save-every")) o->save_every = (int)arg_long(&a, f, 1, 1L << 30);
        else if (!strcmp(f, "--resume")) o->resume = arg_value(&a, f);
        else if (!strcmp(f, "--tokenizer")) o->tokenizer = arg_value(&a, f);
        else if (!strcmp(f, "--pack")) o->pack = 1;
        else if (!strcmp(f, "--val")) o->val = arg_value(&a, f);
        else if (!strcmp(f, "--eval-every")) o->eval_every = (int)arg_long(&a, f, 1, 1L << 30);
        else if (!strcmp(f, "--plot")) o->plot = arg_value(&a, f);
        else if (!strcmp(f, "--out-dtype")) o->out_dtype = parse_file_dtype(arg_value(&a, f));
        else if (!strcmp(f, "--model")) o->model = arg_value(&a, f);
        else if (!strcmp(f, "--init")) o->init = arg_value(&a, f);
        else if (!strcmp(f, "--data")) o->data = arg_value(&a, f);
        else if (!strcmp(f, "--out")) o->out = arg_value(&a, f);
        else if (!strcmp(f, "--log")) o->log = arg_value(&a, f);
        else if (!strcmp(f, "--steps")) o->steps = (int)arg_long(&a, f, 0, 1L << 30);
        else if (!strcmp(f, "--batch")) o->tc.batch = (int)arg_long(&a, f, 1, 1 << 20);
        else if (!strcmp(f, "--seq")) o->tc.seq = (int)arg_long(&a, f, 1, 1 << 24);
        else if (!strcmp(f, "--lr")) o->tc.schedule.lr = arg_float(&a, f);
        else if (!strcmp(f, "--min-lr")) o->tc.schedule.min_lr = arg_float(&a, f);
        else if (!strcmp(f, "--warmup")) o->tc.schedule.warmup = (int)arg_long(&a, f, 0, 1L << 30);
        else if (!strcmp(f, "--schedule-steps")) o->tc.schedule.total_steps = (int)arg_long(&a, f, 1, 1L << 30);
        else if (!strcmp(f, "--schedule")) {
            const char *s = arg_value(&a, f);
            if (!strcmp(s, "constant")) o->tc.schedule.kind = LISA_SCHEDULE_CONSTANT;
            else if (!strcmp(s, "cosine")) o->tc.schedule.kind = LISA_SCHEDULE_COSINE;
            else if (!strcmp(s, "linear")) o->tc.schedule.kind = LISA_SCHEDULE_LINEAR;
            else die("--schedule must be constant, cosine or linear, not '%s'", s);
        } else if (!strcmp(f, "--weight-decay")) o->tc.weight_decay = arg_float(&a, f);
        else if (!strcmp(f, "--beta1")) o->tc.beta1 = arg_float(&a, f);
        else if (!strcmp(f, "--beta2")) o->tc.beta2 = arg_float(&a, f);
        else if (!strcmp(f, "--eps")) o->tc.eps = arg_float(&a, f);
        else if (!strcmp(f, "--grad-clip")) o->tc.grad_clip = arg_float(&a, f);
        else if (!strcmp(f, "--checkpointing")) o->tc.checkpointing = 1;
        else if (!strcmp(f, "--seed")) o->seed = (unsigned long long)arg_long(&a, f, 0, 0x7fffffffL);
        else if (!strcmp(f, "--threads")) o->threads = (int)arg_long(&a, f, 1, 4096);
        else if (!parse_lisa_option(o, &a)) die("train: unknown option '%s' (see lisa train --help)", f);
    }
    if (o->resume && o->settings_given)
        die("%s", "train --resume takes its model and settings from the state file; only --data, --tokenizer, "
                  "--pack, --out, --out-dtype, --log, --val, --eval-every, --plot, --steps, --threads, --save-state, "
                  "--save-every and (build/lisa-cuda) --dtype, --device and --gpu may be given");
    if (!o->resume && !o->model == !o->init) die("%s", "train: give exactly one of --model, --init and --resume");
    if (!o->data) die("%s", "train: --data is required");
    if (!o->out) die("%s", "train: --out is required");
    if (o->tc.schedule.total_steps == 0) o->tc.schedule.total_steps = o->steps;
}

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
#define RUNNER_GPU_BUILD 1
#else
#define RUNNER_ON_GPU(r) 0
#define RUNNER_GPU_BUILD 0
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
    /* the data position is the next batch index, which is the step count */
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
    if (!tty && !s->switched && s->step != steps && s->step % LISA__MAX(1, steps / 20) != 0) return;
    fprintf(stderr, "%sstep %d/%d  loss %.4f  lr %.2e  %.0f tok/s  %.0fs left  layers %s%s", tty ? "\r" : "",
            s->step, steps, s->loss, s->lr, tok_s, left, layers_text(t, layers, sizeof layers, 0),
            tty ? "   " : "\n");
    if (tty && s->step == steps) fputc('\n', stderr);
}

static double eval_loss(const lisa_model *m, const data_source *data, int B, int T, long n);

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
    h->max_switches = gamma > 0 ? capacity / LISA__MAX(1, interval) + 2 : 0;
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
        y0 = LISA__MIN(y0, h->loss[i]);
        y1 = LISA__MAX(y1, h->loss[i]);
    }
    for (i = 0; i < h->n_val; i++) {
        y0 = LISA__MIN(y0, h->val_loss[i]);
        y1 = LISA__MAX(y1, h->val_loss[i]);
    }
    if (y1 - y0 < 1e-6) y1 = y0 + 1.0;
    x0 = h->steps[0];
    x1 = LISA__MAX(h->steps[h->n - 1], x0 + 1);
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

/* Mean loss over n batches of data, weighted by counted targets: on the CPU
   from the model, on the GPU from the trainer's own weights. */
static double runner_eval_loss(runner *r, const data_source *data, long n) {
#ifdef LISA_WITH_CUDA
    if (RUNNER_ON_GPU(r)) {
        int B = r->config.batch, T = r->config.seq, *inputs = (int *)malloc(2 * (size_t)B * T * sizeof(int));
        double sum = 0.0;
        long counted = 0, i;
        size_t j;
        if (!inputs) die("%s", "out of memory");
        for (i = 0; i < n; i++) {
            float loss;
            long rows = 0;
            data_batch(data, i, B, T, inputs, inputs + (size_t)B * T);
            for (j = 0; j < (size_t)B * T; j++) rows += inputs[(size_t)B * T + j] != LISA_IGNORE;
            if (lisa_cuda_trainer_eval(r->gpu, inputs, inputs + (size_t)B * T, B, T, &loss) != LISA_OK)
                die("GPU: %s", lisa_cuda_trainer_message(r->gpu));
            sum += (double)loss * rows;
            counted += rows;
        }
        free(inputs);
        return counted ? sum / counted : 0.0;
    }
#endif
    return eval_loss(r->model, data, r->config.batch, r->config.seq, n);
}

/* Steps r from its current step up to o->steps, batch i = step i, saving
   state every o->save_every steps when asked. */
static void train_loop(runner *r, const data_source *data, const data_source *val, const train_opts *o,
                       FILE *log, history *hist) {
    const lisa_train_config *tc = &r->config;
    int first = runner_step_count(r), step = first;
    int eval_every = o->eval_every ? o->eval_every : LISA__MAX(1, (o->steps - first) / 10);
    int *inputs, *targets;
    size_t span = (size_t)tc->batch * tc->seq;
    double start = now_seconds();
    inputs = (int *)malloc(2 * span * sizeof(int));
    if (!inputs) die("%s", "out of memory");
    targets = inputs + span;
    if (tc->mode == LISA_MODE_LISA)
        fprintf(stderr, "training steps %d to %d with LISA: %d of %d layers at a time, resampled every %d steps\n",
                first + 1, o->steps, tc->lisa_layers, r->model->config.n_layers, tc->lisa_interval);
    else
        fprintf(stderr, "training steps %d to %d, all layers\n", first + 1, o->steps);
    if (RUNNER_ON_GPU(r))
        fprintf(stderr, "batch %d x seq %d on the GPU, %.1f MB of device memory held\n", tc->batch, tc->seq,
                runner_bytes(r, 0) / 1e6);
    else
        fprintf(stderr, "batch %d x seq %d, %d thread(s), %.1f MB held\n", tc->batch, tc->seq, thread_count(),
                runner_bytes(r, 0) / 1e6);
    while (step < o->steps) {
        lisa_step_info s;
        double t0 = now_seconds(), ms;
        char layers[4096], val_text[64] = "";
        data_batch(data, step, tc->batch, tc->seq, inputs, targets);
        runner_step(r, inputs, targets, &s);
        step = s.step;
        ms = (now_seconds() - t0) * 1e3;
        if (hist) {
            hist->steps[hist->n] = s.step;
            hist->loss[hist->n++] = s.loss;
            if (s.switched) history_add_switch(hist, r, s.step);
        }
        if (val && (s.step % eval_every == 0 || step == o->steps)) {
            double v = runner_eval_loss(r, val, data_batches(val, tc->batch, tc->seq));
            snprintf(val_text, sizeof val_text, ",\"val_loss\":%.6f", v);
            fprintf(stderr, "%sstep %d: validation loss %.4f\n", isatty(2) ? "\n" : "", s.step, v);
            if (hist) {
                hist->val_steps[hist->n_val] = s.step;
                hist->val_loss[hist->n_val++] = (float)v;
            }
        }
        if (log)
            fprintf(log, "{\"step\":%d,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,\"tokens_per_s\":%.1f,\"ms\":%.3f,\"active_layers\":%s%s}\n",
                    s.step, s.loss, s.lr, s.grad_norm, span / (ms / 1e3), ms, layers_text(r, layers, sizeof layers, 1), val_text);
        progress(r, &s, o->steps, span / (ms / 1e3), (now_seconds() - start) / (s.step - first));
        if (o->save_state && ((o->save_every && step % o->save_every == 0) || step == o->steps))
            runner_save_state(r, o->save_state, step);
    }
    fprintf(stderr, "peak memory %.1f MB%s\n", runner_bytes(r, 1) / 1e6, RUNNER_ON_GPU(r) ? " of the GPU's" : "");
    free(inputs);
}

/* Sets up r to train m with o's settings: on the GPU with --dtype in build/lisa-cuda. */
static void runner_init(runner *r, lisa_model *m, const train_opts *o) {
    lisa_error err;
    memset(r, 0, sizeof *r);
    r->model = m;
#ifdef LISA_WITH_CUDA
    if (o->gpu) {
        lisa_cuda_config cc = lisa_cuda_config_default();
        cc.dtype = o->gpu_dtype;
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
static void runner_resume_on_gpu(runner *r, const train_opts *o) {
#ifdef LISA_WITH_CUDA
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_error err;
    if (!o->gpu) return;
    cc.dtype = o->gpu_dtype;
    cc.device = o->gpu_index;
    if (lisa_cuda_trainer_from_cpu(&r->gpu, &r->cpu, &cc, &err) != LISA_OK) die("%s", err.message);
    lisa_trainer_free(&r->cpu);
#else
    (void)r;
    (void)o;
#endif
}

static int cmd_train(int argc, char **argv) {
    train_opts o;
    lisa_model m;
    runner r;
    data_source data, val;
    history hist;
    lisa_error err;
    FILE *log = NULL;
    parse_train(&o, argc, argv);
    set_threads(o.threads);
    if (o.resume) {
        uint64_t position;
        memset(&r, 0, sizeof r);
        if (lisa_trainer_load_state(&r.cpu, &m, o.resume, NULL, &position, &err) != LISA_OK) die("%s", err.message);
        if (position != (uint64_t)r.cpu.step) die("%s: the data position does not match the step count", o.resume);
        r.model = &m;
        r.config = r.cpu.config;
        fprintf(stderr, "resuming %s at step %d\n", o.resume, r.cpu.step);
        runner_resume_on_gpu(&r, &o);
    } else {
        if (o.model) load_model_or_die(&m, o.model);
        else {
            lisa_config c = parse_init(o.init);
            if (lisa_model_init(&m, &c, NULL, &err) != LISA_OK) die("--init: %s", err.message);
            lisa_model_init_random(&m, o.seed);
        }
        if (o.tc.seq == 0) o.tc.seq = LISA__MIN(64, m.config.max_seq_len);
        check_probs(&o, &m.config);
        runner_init(&r, &m, &o);
    }
    load_data_or_die(&data, o.data, o.tokenizer, m.config.vocab_size, r.config.seq, o.pack);
    if (o.val) load_data_or_die(&val, o.val, o.tokenizer, m.config.vocab_size, r.config.seq, o.pack);
    if (o.log && !(log = fopen(o.log, "w"))) die("cannot open %s for writing", o.log);
    history_init(&hist, LISA__MAX(0, o.steps - runner_step_count(&r)),
                 r.config.mode == LISA_MODE_LISA ? r.config.lisa_layers : 0, r.config.lisa_interval);
    train_loop(&r, &data, o.val ? &val : NULL, &o, log, &hist);
    if (log) fclose(log);
    if (o.plot) {
        write_plot(o.plot, &hist, r.config.mode == LISA_MODE_LISA ? "lisa train: LISA" : "lisa train: all layers");
        fprintf(stderr, "wrote %s\n", o.plot);
    }
    history_free(&hist);
    if (o.val) data_free(&val);
    runner_sync_model(&r);
    runner_free(&r);
    save_model_or_die(&m, o.out, o.out_dtype);
    data_free(&data);
    lisa_model_free(&m);
    return 0;
}

/* ---- eval ---------------------------------------------------------------- */

static const char *eval_help =
    "usage: lisa eval --model M --data X [options]\n"
    "\n"
    "Prints the mean loss over the batches and its perplexity, exp(loss); on instruction data\n"
    "also the exact-match accuracy: the share of prompts whose greedy continuation (up to EOS)\n"
    "equals the response, ignoring surrounding whitespace.\n"
    "  --model M         llama2.c checkpoint (.bin) or Hugging Face directory\n"
    "  --data X          llm.c token file, or instruction data (.jsonl, .json: loss on responses)\n"
    "  --tokenizer T     for instruction data: a tokenizer.bin, or bytes\n"
    "  --pack            instruction data packed back to back\n"
    "  --batch B         sequences per batch (default 4)\n"
    "  --seq T           tokens per sequence (default: 64, at most the model's seq)\n"
    "  --batches N       batches to average (default: as many as cover the file once, at least 1)\n"
    "  --threads N       OpenMP threads (default: OpenMP's own default)\n";

/* Mean loss over n batches of the token file, weighted by counted targets. */
static double eval_loss(const lisa_model *m, const data_source *data, int B, int T, long n) {
    lisa_acts a;
    lisa_error err;
    int *inputs = (int *)malloc(2 * (size_t)B * T * sizeof(int)), *targets;
    double sum = 0.0;
    long counted = 0, i;
    if (!inputs) die("%s", "out of memory");
    targets = inputs + (size_t)B * T;
    if (lisa_acts_init(&a, &m->config, B, T, 0, NULL, &err) != LISA_OK) die("%s", err.message);
    for (i = 0; i < n; i++) {
        float loss;
        data_batch(data, i, B, T, inputs, targets);
        loss = lisa_model_forward(m, &a, inputs, targets, B, T);
        sum += (double)loss * a.n_counted;
        counted += a.n_counted;
    }
    lisa_acts_free(&a);
    free(inputs);
    return counted ? sum / counted : 0.0;
}

static char *read_file_or_die(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    long n;
    char *text;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) die("%s: cannot read", path);
    text = (char *)malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) die("%s: cannot read", path);
    fclose(f);
    text[n] = 0;
    *size = (size_t)n;
    return text;
}

/* Exact-match accuracy: the greedy continuation of each prompt, up to EOS,
   against the response, both without surrounding whitespace. */
typedef struct match_state {
    const lisa_model *m;
    const lisa_tokenizer *tok;
    lisa_kv_cache kc;
    int n, correct, shown;
} match_state;

static void trim(const char **s, size_t *len) {
    while (*len > 0 && (**s == ' ' || **s == '\n' || **s == '\t' || **s == '\r')) { (*s)++; (*len)--; }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\n' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\r')) (*len)--;
}

static lisa_result match_example(void *user, const char *prompt, size_t prompt_len, const char *response,
                                 size_t response_len, lisa_error *err) {
    match_state *ms = (match_state *)user;
    size_t n_prompt = 0, n_response = 0, got_len = 0, i;
    int *ids, got, max_new, ok;
    char text[4096];
    lisa_rng rng;
    lisa_result r;
    if ((r = lisa_tokenizer_encode(ms->tok, prompt, prompt_len, 1, 0, NULL, 0, &n_prompt, err)) != LISA_OK ||
        (r = lisa_tokenizer_encode(ms->tok, response, response_len, 0, 1, NULL, 0, &n_response, err)) != LISA_OK)
        return r;
    ms->n++;
    if (n_prompt >= (size_t)ms->kc.max_len) return LISA_OK; /* no room to answer: counts as wrong */
    max_new = (int)n_response + 8;
    ids = (int *)malloc((n_prompt + (size_t)max_new) * sizeof(int));
    if (!ids) die("%s", "out of memory");
    lisa_tokenizer_encode(ms->tok, prompt, prompt_len, 1, 0, ids, n_prompt, &n_prompt, err);
    lisa_rng_seed(&rng, 0);
    got = lisa_generate(ms->m, &ms->kc, ids, (int)n_prompt, ids + n_prompt, max_new, 0.0f, 1.0f, ms->tok->eos_id, &rng);
    for (i = 0; i < (size_t)got && ids[n_prompt + i] != ms->tok->eos_id; i++) {
        size_t len;
        const char *piece = lisa_tokenizer_piece(ms->tok, ids[n_prompt + i - 1], ids[n_prompt + i], &len);
        if (piece && got_len + len < sizeof text) {
            memcpy(text + got_len, piece, len);
            got_len += len;
        }
    }
    {
        const char *a = text, *b = response;
        size_t al = got_len, bl = response_len;
        trim(&a, &al);
        trim(&b, &bl);
        ok = al == bl && memcmp(a, b, al) == 0;
        if (!ok && ms->shown < 3) { /* a few misses, to see what the model does */
            fprintf(stderr, "miss: %.*s -> \"%.*s\" (expected \"%.*s\")\n", (int)LISA__MIN(prompt_len, 60), prompt, (int)al, a,
                    (int)LISA__MIN(bl, 60), b);
            ms->shown++;
        }
    }
    ms->correct += ok;
    free(ids);
    return LISA_OK;
}

/* Exact-match accuracy of the model's greedy answers on instruction data
   text; with show_misses, a few wrong answers go to stderr. */
static double exact_match_text(const lisa_model *m, const lisa_tokenizer *tok, const char *text, size_t size,
                               const char *name, int show_misses, int *n_out) {
    match_state ms;
    lisa_error err;
    memset(&ms, 0, sizeof ms);
    ms.m = m;
    ms.tok = tok;
    ms.shown = show_misses ? 0 : 3;
    if (lisa_kv_cache_init(&ms.kc, &m->config, 0, NULL, &err) != LISA_OK) die("%s", err.message);
    if (lisa_sft_for_each(text, size, name, NULL, match_example, &ms, &err) != LISA_OK) die("%s", err.message);
    lisa_kv_cache_free(&ms.kc);
    *n_out = ms.n;
    return ms.n ? (double)ms.correct / ms.n : 0.0;
}

static double exact_match(const lisa_model *m, const lisa_tokenizer *tok, const char *path, int *n_out) {
    size_t size;
    char *text = read_file_or_die(path, &size);
    double acc = exact_match_text(m, tok, text, size, path, 1, n_out);
    free(text);
    return acc;
}

static int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *path = NULL, *tokenizer = NULL;
    int B = 4, T = 0, threads = 0, pack = 0;
    long batches = 0;
    lisa_model m;
    data_source data;
    double loss;
    args a;
    a.argc = argc;
    a.argv = argv;
    for (a.i = 0; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { fputs(eval_help, stdout); exit(0); }
        else if (!strcmp(f, "--model")) model = arg_value(&a, f);
        else if (!strcmp(f, "--data")) path = arg_value(&a, f);
        else if (!strcmp(f, "--batch")) B = (int)arg_long(&a, f, 1, 1 << 20);
        else if (!strcmp(f, "--seq")) T = (int)arg_long(&a, f, 1, 1 << 24);
        else if (!strcmp(f, "--batches")) batches = arg_long(&a, f, 1, 1L << 30);
        else if (!strcmp(f, "--threads")) threads = (int)arg_long(&a, f, 1, 4096);
        else if (!strcmp(f, "--tokenizer")) tokenizer = arg_value(&a, f);
        else if (!strcmp(f, "--pack")) pack = 1;
        else die("eval: unknown option '%s' (see lisa eval --help)", f);
    }
    if (!model || !path) die("%s", "eval: --model and --data are required");
    set_threads(threads);
    load_model_or_die(&m, model);
    if (T == 0) T = LISA__MIN(64, m.config.max_seq_len);
    if (T > m.config.max_seq_len) die("%s", "eval: --seq exceeds the model's maximum sequence length");
    load_data_or_die(&data, path, tokenizer, m.config.vocab_size, T, pack);
    if (batches == 0) batches = data_batches(&data, B, T);
    loss = eval_loss(&m, &data, B, T, batches);
    printf("loss %.6f perplexity %.4f (%ld batches of %d x %d)\n", loss, exp(loss), batches, B, T);
    if (data.is_sft) {
        lisa_tokenizer tok;
        int n;
        double acc;
        load_tokenizer_or_die(&tok, tokenizer);
        acc = exact_match(&m, &tok, path, &n);
        printf("exact match %.1f%% (%d of %d greedy answers)\n", 100.0 * acc, (int)(acc * n + 0.5), n);
        lisa_tokenizer_free(&tok);
    }
    data_free(&data);
    lisa_model_free(&m);
    return 0;
}

/* ---- plan ---------------------------------------------------------------- */

static const char *plan_help =
    "usage: lisa plan (--model M | --init SPEC) [options]\n"
    "\n"
    "Prints the memory a training run needs, by category, next to full fine-tuning, without\n"
    "allocating it. --init takes the same SPEC as train, or a named shape (llama2-7b, ...).\n"
    "Takes train's --batch, --seq, --checkpointing and every LISA option (--mode, --lisa-layers,\n"
    "--lisa-keep-state, --freeze-embed, --freeze-head, --freeze-norm, ...), and:\n"
    "  --device D        cpu (this library's trainer, fp32; the default of build/lisa) or gpu\n"
    "                    (lisa_cuda.h's trainer, its device bytes as counted; the default of\n"
    "                    build/lisa-cuda)\n"
    "  --dtype D         on the GPU: bf16 (the default: bf16 weights and activations, fp32\n"
    "                    master weights, gradients and moments for trained blocks) or fp32;\n"
    "                    bf16 implies --device gpu\n"
    "  --budget GIB      also say whether the peak fits in this many GiB\n";

/* The planner of the trainer that would run: lisa.h's (CPU) or lisa_cuda.h's (GPU). */
static lisa_result plan_for(int gpu, const lisa_config *c, const lisa_train_config *tc, lisa_dtype dtype,
                            lisa_memory_plan *p, lisa_error *err) {
    return gpu ? lisa_cuda_plan_memory(c, tc, dtype, p, err) : lisa_plan_memory(c, tc, dtype, p, err);
}

static void print_plan_row(const char *name, size_t a, size_t b) {
    printf("  %-13s %12.3f GiB %12.3f GiB\n", name, a / 1073741824.0, b / 1073741824.0);
}

static int cmd_plan(int argc, char **argv) {
    train_opts o;
    lisa_config c;
    lisa_train_config full;
    lisa_memory_plan p, pf;
    lisa_dtype dtype = LISA_DTYPE_F32;
    lisa_error err;
    double budget = 0.0;
    const char *device = NULL;
    int dtype_given = 0;
    args a;
    memset(&o, 0, sizeof o);
    o.tc = lisa_train_config_default();
    o.tc.seq = 0;
    a.argc = argc;
    a.argv = argv;
    for (a.i = 0; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(plan_help, stdout);
            exit(0);
        }
        else if (!strcmp(f, "--model")) o.model = arg_value(&a, f);
        else if (!strcmp(f, "--init")) o.init = arg_value(&a, f);
        else if (!strcmp(f, "--batch")) o.tc.batch = (int)arg_long(&a, f, 1, 1 << 20);
        else if (!strcmp(f, "--seq")) o.tc.seq = (int)arg_long(&a, f, 1, 1 << 24);
        else if (!strcmp(f, "--checkpointing")) o.tc.checkpointing = 1;
        else if (!strcmp(f, "--budget")) budget = arg_float(&a, f);
        else if (!strcmp(f, "--dtype")) {
            dtype = parse_dtype(arg_value(&a, f));
            dtype_given = 1;
        }
        else if (!strcmp(f, "--device")) device = arg_value(&a, f);
        else if (!parse_lisa_option(&o, &a)) die("plan: unknown option '%s' (see lisa plan --help)", f);
    }
    if (!o.model == !o.init) die("%s", "plan: give exactly one of --model and --init");
    if (o.model) {
        if (lisa_model_read_config(o.model, &c, NULL, &err) != LISA_OK) die("%s", err.message);    } else {
        c = parse_init(o.init);
    }
    if (lisa_config_resolve(&c, &err) != LISA_OK) die("%s", err.message);
    if (o.tc.seq == 0) o.tc.seq = LISA__MIN(64, c.max_seq_len);
    check_probs(&o, &c);
    if (device && strcmp(device, "gpu") && strcmp(device, "cpu")) die("--device must be gpu or cpu, not '%s'", device);
    o.gpu = device ? !strcmp(device, "gpu") : RUNNER_GPU_BUILD || (dtype_given && dtype == LISA_DTYPE_BF16);
    if (!dtype_given) dtype = o.gpu ? LISA_DTYPE_BF16 : LISA_DTYPE_F32;
    if (!o.gpu && dtype == LISA_DTYPE_BF16) die("%s", "plan: the CPU trainer is fp32 only (bf16 is the GPU's)");
    if (plan_for(o.gpu, &c, &o.tc, dtype, &p, &err) != LISA_OK) die("%s", err.message);
    full = o.tc;
    full.mode = LISA_MODE_FULL;
    full.keep_state = 0;
    plan_for(o.gpu, &c, &full, dtype, &pf, NULL);
    printf("model: dim %d, hidden %d, %d layers, %d heads (%d kv), vocab %d, %s head, %.3fB parameters\n",
           c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.tied_head ? "tied" : "separate",
           p.params / 1e9);
    printf("setup: %s, batch %d x seq %d, %s, %s\n", o.gpu ? "GPU trainer" : "CPU trainer", o.tc.batch, o.tc.seq,
           o.tc.checkpointing ? "gradient checkpointing" : "no checkpointing",
           dtype == LISA_DTYPE_F32 ? "fp32" : "bf16 weights + fp32 master/gradients/moments for trained blocks");
    if (o.tc.mode == LISA_MODE_LISA)
        printf("LISA: %d of %d layers at a time%s\n\n", o.tc.lisa_layers, c.n_layers,
               o.tc.keep_state ? ", keeping every sampled layer's moments" : "");
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
    if (budget > 0.0)
        printf("\n%s in %.1f GiB (peak %.2f GiB)\n", p.peak <= budget * 1073741824.0 ? "fits" : "does NOT fit",
               budget, p.peak / 1073741824.0);
    return 0;
}

/* ---- convert and tokenize ----------------------------------------------- */

static const char *convert_help =
    "usage: lisa convert IN OUT [--dtype f32|f16|bf16]\n"
    "\n"
    "Converts a model between formats. IN: a llama2.c checkpoint (.bin, legacy or version 1)\n"
    "or a Hugging Face LLaMA directory. OUT: OUT.bin writes a llama2.c checkpoint (fp32); any\n"
    "other path a Hugging Face directory (config.json + model.safetensors, made if missing) in\n"
    "--dtype (default f32). The q and k projections are converted between the interleaved RoPE\n"
    "layout (llama2.c, this library) and transformers' rotate-half layout.\n";

static int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    lisa_file_dtype dtype = LISA_FILE_F32;
    lisa_model m;
    int i;
    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(convert_help, stdout); exit(0); }
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = parse_file_dtype(argv[++i]);
        else if (argv[i][0] == '-') die("convert: unknown option '%s' (see lisa convert --help)", argv[i]);
        else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else die("convert: unexpected argument '%s'", argv[i]);
    }
    if (!in || !out) die("%s", "convert: give IN and OUT");
    load_model_or_die(&m, in);
    save_model_or_die(&m, out, dtype);
    lisa_model_free(&m);
    return 0;
}

static const char *tokenize_help =
    "usage: lisa tokenize --tokenizer T IN.txt OUT.tok\n"
    "\n"
    "Encodes a text file into an llm.c token file (uint16 when every id fits, else uint32):\n"
    "BOS, then the whole text. T: a llama2.c tokenizer.bin, or bytes (built in: ids 0-255\n"
    "are bytes, 256 BOS, 257 EOS).\n";

static int cmd_tokenize(int argc, char **argv) {
    const char *spec = NULL, *in = NULL, *out = NULL;
    lisa_tokenizer tok;
    lisa_error err;
    FILE *f;
    char *text;
    long size;
    size_t n = 0;
    int *ids, i;
    double t0 = now_seconds();
    for (i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(tokenize_help, stdout); exit(0); }
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) spec = argv[++i];
        else if (argv[i][0] == '-') die("tokenize: unknown option '%s' (see lisa tokenize --help)", argv[i]);
        else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else die("tokenize: unexpected argument '%s'", argv[i]);
    }
    if (!spec || !in || !out) die("%s", "tokenize: give --tokenizer, IN.txt and OUT.tok");
    load_tokenizer_or_die(&tok, spec);
    if (!(f = fopen(in, "rb")) || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        die("%s: cannot read", in);
    text = (char *)malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) die("%s: cannot read", in);
    fclose(f);
    if (lisa_tokenizer_encode(&tok, text, (size_t)size, 1, 0, NULL, 0, &n, &err) != LISA_OK) die("%s", err.message);
    ids = (int *)malloc((n > 0 ? n : 1) * sizeof(int));
    if (!ids) die("%s", "out of memory");
    if (lisa_tokenizer_encode(&tok, text, (size_t)size, 1, 0, ids, n, &n, &err) != LISA_OK) die("%s", err.message);
    if (lisa_tokens_save(ids, n, out, &err) != LISA_OK) die("%s", err.message);
    fprintf(stderr, "%s: %ld bytes -> %lu tokens in %.2f s -> %s\n", in, size, (unsigned long)n, now_seconds() - t0, out);
    free(ids);
    free(text);
    lisa_tokenizer_free(&tok);
    return 0;
}

/* ---- generate ------------------------------------------------------------ */

static const char *generate_help =
    "usage: lisa generate --model M [options]\n"
    "\n"
    "Continues a prompt, one token per step through a KV cache.\n"
    "  --model M          llama2.c checkpoint (.bin) or Hugging Face directory\n"
    "  --tokenizer T      a llama2.c tokenizer.bin, or bytes (default bytes)\n"
    "  --prompt TEXT      the text to continue (default empty: starts from BOS alone)\n"
    "  --steps N          new tokens at most (default 64); stops early at EOS or the model's seq\n"
    "  --temperature X    0 is greedy: exactly the model's most likely continuation (default 1)\n"
    "  --top-p X          sample from the most likely tokens that add up to X (default 0.9; 1: off)\n"
    "  --seed S           seed of the sampler (default 0)\n"
    "  --threads N        OpenMP threads (default: OpenMP's own default)\n";

static int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *spec = "bytes", *prompt = "";
    int steps = 64, threads = 0, *ids, *out, i, got;
    size_t n_ids = 0;
    float temperature = 1.0f, top_p = 0.9f;
    unsigned long long seed = 0;
    lisa_model m;
    lisa_tokenizer tok;
    lisa_kv_cache kc;
    lisa_rng rng;
    lisa_error err;
    double t0;
    args a;
    a.argc = argc;
    a.argv = argv;
    for (a.i = 0; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { fputs(generate_help, stdout); exit(0); }
        else if (!strcmp(f, "--model")) model = arg_value(&a, f);
        else if (!strcmp(f, "--tokenizer")) spec = arg_value(&a, f);
        else if (!strcmp(f, "--prompt")) prompt = arg_value(&a, f);
        else if (!strcmp(f, "--steps")) steps = (int)arg_long(&a, f, 0, 1 << 24);
        else if (!strcmp(f, "--temperature")) temperature = arg_float(&a, f);
        else if (!strcmp(f, "--top-p")) top_p = arg_float(&a, f);
        else if (!strcmp(f, "--seed")) seed = (unsigned long long)arg_long(&a, f, 0, 0x7fffffffL);
        else if (!strcmp(f, "--threads")) threads = (int)arg_long(&a, f, 1, 4096);
        else die("generate: unknown option '%s' (see lisa generate --help)", f);
    }
    if (!model) die("%s", "generate: --model is required");
    if (temperature < 0.0f || top_p <= 0.0f || top_p > 1.0f) die("%s", "generate: need temperature >= 0 and 0 < top-p <= 1");
    set_threads(threads);
    load_model_or_die(&m, model);
    load_tokenizer_or_die(&tok, spec);
    if (tok.vocab_size > m.config.vocab_size) die("%s: the tokenizer's vocabulary is larger than the model's", spec);
    if (lisa_tokenizer_encode(&tok, prompt, strlen(prompt), 1, 0, NULL, 0, &n_ids, &err) != LISA_OK) die("%s", err.message);
    ids = (int *)malloc((n_ids + (size_t)steps + 1) * sizeof(int));
    if (!ids) die("%s", "out of memory");
    out = ids + n_ids;
    if (lisa_tokenizer_encode(&tok, prompt, strlen(prompt), 1, 0, ids, n_ids, &n_ids, &err) != LISA_OK) die("%s", err.message);
    if ((int)n_ids > m.config.max_seq_len) die("%s", "generate: the prompt is longer than the model's seq");
    if (lisa_kv_cache_init(&kc, &m.config, 0, NULL, &err) != LISA_OK) die("%s", err.message);
    lisa_rng_seed(&rng, seed);
    t0 = now_seconds();
    got = lisa_generate(&m, &kc, ids, (int)n_ids, out, steps, temperature, top_p, tok.eos_id, &rng);
    fputs(prompt, stdout);
    for (i = 0; i < got; i++) {
        size_t len;
        const char *piece = lisa_tokenizer_piece(&tok, i ? out[i - 1] : ids[n_ids - 1], out[i], &len);
        if (out[i] == tok.eos_id) break;
        if (piece) fwrite(piece, 1, len, stdout);
    }
    fputc('\n', stdout);
    fprintf(stderr, "%d tokens in %.2f s (%.1f tokens/s)\n", got, now_seconds() - t0, got / LISA__MAX(1e-9, now_seconds() - t0));
    lisa_kv_cache_free(&kc);
    lisa_tokenizer_free(&tok);
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
    sprintf(answer, "%d", LISA__MAX(a, LISA__MAX(b, c)));
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

static double exact_match_text(const lisa_model *m, const lisa_tokenizer *tok, const char *text, size_t size,
                               const char *name, int show_misses, int *n_out);

/* Exact-match accuracy of greedy answers on n held-out questions of each task. */
static void demo_accuracy(const lisa_model *m, int n, double *acc) {
    lisa_tokenizer tok;
    int k, counted;
    lisa_tokenizer_init_bytes(&tok);
    for (k = 0; k < DEMO_N_TASKS; k++) {
        size_t len;
        char *text = demo_jsonl(demo_tasks[k].family, 1, k, n, 100 + (uint64_t)k, &len);
        acc[k] = exact_match_text(m, &tok, text, len, "demo questions", 0, &counted);
        free(text);
    }
}

/* One greedy answer, to show what the model says. */
static void demo_answer(const lisa_model *m, const char *prompt, char *out, size_t size) {
    lisa_tokenizer tok;
    lisa_kv_cache kc;
    lisa_error err;
    lisa_rng rng;
    int ids[64], got, i;
    size_t n, at = 0;
    lisa_tokenizer_init_bytes(&tok);
    if (lisa_kv_cache_init(&kc, &m->config, 0, NULL, &err) != LISA_OK) die("%s", err.message);
    lisa_tokenizer_encode(&tok, prompt, strlen(prompt), 1, 0, ids, 32, &n, NULL);
    lisa_rng_seed(&rng, 0);
    got = lisa_generate(m, &kc, ids, (int)n, ids + n, 16, 0.0f, 1.0f, tok.eos_id, &rng);
    for (i = 0; i < got && ids[n + i] != tok.eos_id && at + 1 < size; i++)
        out[at++] = ids[n + i] < 256 ? (char)ids[n + i] : '?';
    out[at] = 0;
    lisa_kv_cache_free(&kc);
}

typedef struct demo_run {
    double seconds, tokens, first_loss, last_loss;
    size_t peak_bytes;
} demo_run;

/* Mean training loss over steps [from, to) of a history. */
static double history_mean(const history *h, int from, int to) {
    double sum = 0.0;
    int i, n = 0;
    for (i = LISA__MAX(0, from); i < LISA__MIN(to, h->n); i++, n++) sum += h->loss[i];
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

static demo_run demo_train(lisa_model *m, const data_source *data, lisa_mode mode, int steps, history *hist) {
    train_opts o;
    runner r;
    demo_run run;
    double t0;
    int window = LISA__MAX(1, steps / 20);
    memset(&o, 0, sizeof o);
    o.tc = demo_train_config(mode, steps);
    o.steps = steps;
    runner_init(&r, m, &o);
    history_init(hist, steps, mode == LISA_MODE_LISA ? o.tc.lisa_layers : 0, o.tc.lisa_interval);
    t0 = now_seconds();
    train_loop(&r, data, NULL, &o, NULL, hist);
    run.seconds = now_seconds() - t0;
    run.tokens = (double)steps * o.tc.batch * o.tc.seq;
    run.first_loss = history_mean(hist, 0, window);
    run.last_loss = history_mean(hist, steps - window, steps);
    run.peak_bytes = runner_bytes(&r, 1);
    runner_free(&r);
    return run;
}

/* The active layers over a LISA run: one row per layer, one column per
   interval ('#' trained, '.' frozen), and each layer's share of the steps. */
static void demo_print_layers(const history *h, int n_layers, int steps, int interval) {
    int l, i, shown = LISA__MIN(h->n_switch, 60);
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

static const char *demo_help =
    "usage: lisa demo [--quick] [--threads N]\n"
    "\n"
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
    "  --quick      a fifth of the steps (about 15 s; for the tests)\n"
    "  --threads N  OpenMP threads (default: OpenMP's own default)\n";

static int cmd_demo(int argc, char **argv) {
    args a = {argc, 0, argv};
    lisa_config c;
    lisa_model m;
    data_source pre, fine;
    history h_pre, h_fine;
    demo_run r_pre, r_fine;
    double before[DEMO_N_TASKS], after[DEMO_N_TASKS], start = now_seconds();
    int quick = 0, k, pre_steps, fine_steps, n_eval, threads = 0, gained = 1;
    char shown[32];
    lisa_error err;
    for (a.i = 0; a.i < argc; a.i++) {
        if (!strcmp(argv[a.i], "--quick")) quick = 1;
        else if (!strcmp(argv[a.i], "--threads")) threads = (int)arg_long(&a, "--threads", 1, 1024);
        else {
            fputs(demo_help, !strcmp(argv[a.i], "--help") || !strcmp(argv[a.i], "-h") ? stdout : stderr);
            return !strcmp(argv[a.i], "--help") || !strcmp(argv[a.i], "-h") ? 0 : 2;
        }
    }
    set_threads(threads);
    pre_steps = quick ? 500 : 2500;
    fine_steps = quick ? 1000 : 5000;
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
    r_pre = demo_train(&m, &pre, LISA_MODE_FULL, pre_steps, &h_pre);
    printf("   loss %.3f -> %.3f, %.0f tokens/s\n", r_pre.first_loss, r_pre.last_loss, r_pre.tokens / r_pre.seconds);
    demo_accuracy(&m, n_eval, before);
    demo_print_accuracy("after pre-training:", before);
    demo_answer(&m, "sort 4193:", shown, sizeof shown);
    printf("   \"sort 4193:\" -> \"%s\"\n\n", shown);

    printf("2. fine-tuning on the number family with LISA: 2 of 4 layers at a time, %d steps\n", fine_steps);
    r_fine = demo_train(&m, &fine, LISA_MODE_LISA, fine_steps, &h_fine);
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

static const char *main_help =
    "usage: lisa COMMAND [options]   (lisa COMMAND --help for each command's options)\n"
    "\n"
    "  train   train a model on a token file: full fine-tuning or LISA\n"
    "  eval    mean loss and perplexity of a model on a token file\n"
    "  plan    memory of a training setup by category, without allocating it\n"
    "  convert convert a model between llama2.c and Hugging Face formats\n"
    "  tokenize  encode a text file into an llm.c token file\n"
    "  generate  continue a prompt with a model\n"
    "  demo    train a small model on built-in data, no files needed\n";

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(main_help, stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(argv[1], "plan")) return cmd_plan(argc - 2, argv + 2);
    if (!strcmp(argv[1], "convert")) return cmd_convert(argc - 2, argv + 2);
    if (!strcmp(argv[1], "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(argv[1], "generate")) return cmd_generate(argc - 2, argv + 2);
    if (!strcmp(argv[1], "demo")) return cmd_demo(argc - 2, argv + 2);
    fprintf(stderr, "lisa: unknown command '%s'\n%s", argv[1], main_help);
    return 2;
}
