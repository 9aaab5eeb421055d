/* Full fine-tuning against LISA: step time and memory of lisa_trainer_step.

   For each shape, eight trainers are timed one after another on the same
   model: full fine-tuning and LISA with gamma = 1, 2 and 4 trained decoder
   layers, each without and with gradient checkpointing. A step is the whole
   lisa_trainer_step: forward, backward, gradient norm and AdamW. The LISA
   interval is set so large that no resampling happens inside the timed
   steps; a switch (lisa_trainer_set_active_layers to other layers) is timed
   on its own afterwards, with the step that follows it.

   Shapes:  ref   dim 288, hidden 768, 6 layers, 6 heads, 6 kv heads, vocab 32000 (llama2.c 15M),
                  batch 4 x seq 256
            deep  dim 512, hidden 1376, 16 layers, 8 heads, 8 kv heads, vocab 32000 (67M),
                  batch 4 x seq 256
            smol  dim 576, hidden 1536, 30 layers, 9 heads, 3 kv heads, vocab 49152 (SmolLM2-135M),
                  batch 1 x seq 512
            all tied head; --shapes both is ref and deep, all is the three.
   --quick times full fine-tuning and LISA gamma = 2 only, without checkpointing.

   Each shape also gets a prediction from a multiply-add count: forward (every
   linear layer, the head and attention's two score products) + input
   gradients (every layer, since the embedding trains, and attention's
   backward) + weight gradients of the trained blocks only (the head always)
   + with checkpointing, the recomputed layer forwards. LISA's predicted ratio
   is its count over full fine-tuning's at the same checkpointing.

   Page faults: the minor faults (getrusage) over the timed steps, per step;
   a trainer that allocates all its buffers once has none in the steady state.

   Memory is measured by a counting allocator (bench/bench.h) that the model
   and each trainer allocate through: the most bytes held at once from the
   trainer's creation to its last step, against lisa_plan_memory's peak and the
   trainer's own tally (peak_bytes).

   Build and run:  make build/bench_lisa && build/bench_lisa
   Options:        bench_lisa [--steps N] [--shapes ref|deep|smol|both|all] [--threads N] [--quick]
   MB are 10^6 bytes. */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_STEPS 64
#define N_MODES 4

static const int mode_gamma[N_MODES] = {0, 1, 2, 4}; /* 0: full fine-tuning */

typedef struct shape {
    const char *name;
    lisa_config c;
    int B, T;
} shape;

typedef struct result {
    double step_s;            /* median seconds per step */
    double spread;            /* (slowest - fastest) / median of the timed steps */
    double switch_s;          /* LISA: lisa_trainer_set_active_layers to other layers */
    double after_switch_s;    /* LISA: the step right after that switch */
    double faults;            /* minor page faults per timed step */
    double pred_macs;         /* multiply-adds per step, predicted */
    size_t measured_peak;     /* the counting allocator's high-water mark: model and trainer */
    size_t peak_bytes;        /* trainer's own high-water mark */
    long leaked;              /* bytes the trainer left behind when freed */
    lisa_memory_plan plan;
} result;

/* Multiply-adds per token, by part. */
typedef struct flops {
    double layer_linear;      /* one layer's linear layers, forward */
    double layer_w2;          /* of which the down projection (not recomputed) */
    double layer_attn_fwd;    /* one layer's attention scores and weighted sum */
    double layer_attn_bwd;    /* one layer's attention backward */
    double head;              /* the output head, forward */
    int n_layers;
} flops;

static flops count_flops(const lisa_config *c, int T) {
    flops f;
    double D = c->dim, H = c->hidden_dim, V = c->vocab_size, hd = (double)c->dim / c->n_heads;
    double kv = hd * c->n_kv_heads;
    /* Causal attention: query i meets i + 1 keys, so T (T + 1) / 2 pairs per
       sequence and head; forward does a dot and an axpy of head_dim per pair,
       backward two dots and three axpys (lisa_attention_backward). */
    double pairs_per_token = (T + 1) / 2.0 * c->n_heads;
    f.layer_linear = D * D + 2 * D * kv + D * D + 3 * D * H;
    f.layer_w2 = D * H;
    f.layer_attn_fwd = 2 * hd * pairs_per_token;
    f.layer_attn_bwd = 5 * hd * pairs_per_token;
    f.head = D * V;
    f.n_layers = c->n_layers;
    return f;
}

/* Multiply-adds per token of one step whose weight gradients cover `active`
   decoder layers (and the head, always). */
static double step_macs(const flops *f, int active, int checkpointing) {
    int L = f->n_layers;
    double fwd = L * (f->layer_linear + f->layer_attn_fwd) + f->head;
    double bwd_input = L * (f->layer_linear + f->layer_attn_bwd) + f->head;
    double bwd_weight = active * f->layer_linear + f->head;
    double recompute = checkpointing ? L * (f->layer_linear - f->layer_w2 + f->layer_attn_fwd) : 0.0;
    return fwd + bwd_input + bwd_weight + recompute;
}

static void print_machine(void) {
    char line[512], model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    int threads = 1;
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "model name", 10)) {
                char *colon = strchr(line, ':'), *end;
                if (colon) {
                    colon++;
                    while (*colon == ' ' || *colon == '\t') colon++;
                    end = colon + strlen(colon);
                    while (end > colon && (end[-1] == '\n' || end[-1] == ' ')) *--end = 0;
                    strncpy(model, colon, sizeof model - 1);
                    model[sizeof model - 1] = 0;
                }
                break;
            }
        }
        fclose(f);
    }
#ifdef _OPENMP
    threads = omp_get_max_threads();
    printf("machine: %s, %d OpenMP threads\n", model, threads);
#else
    printf("machine: %s, %d thread (built without OpenMP)\n", model, threads);
#endif
}

/* Times one trainer: warm-up, median of steps, then (LISA) one switch. */
static long minor_faults(void) {
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) ? 0 : u.ru_minflt;
}

static int run_one(lisa_model *m, bench_counter *mem, const shape *s, int gamma, int checkpointing, int steps,
                   const int *in, const int *tg, result *res) {
    lisa_allocator alloc = bench_counting_allocator(mem);
    size_t before = mem->now;
    lisa_train_config tc = lisa_train_config_default();
    lisa_trainer t;
    lisa_error err;
    lisa_step_info info;
    double times[MAX_STEPS];
    long faults0;
    int i, n = steps < MAX_STEPS ? steps : MAX_STEPS;
    tc.batch = s->B;
    tc.seq = s->T;
    tc.schedule.lr = 1e-5f;
    tc.checkpointing = checkpointing;
    tc.mode = gamma ? LISA_MODE_LISA : LISA_MODE_FULL;
    tc.lisa_layers = gamma ? gamma : 2;
    tc.lisa_interval = 1 << 30; /* the first step draws; none of the timed ones does */
    tc.lisa_seed = 1;
    memset(res, 0, sizeof *res);
    bench_counter_restart_peak(mem);
    if (lisa_plan_memory(&m->config, &tc, LISA_DTYPE_F32, &res->plan, &err) != LISA_OK ||
        lisa_trainer_init(&t, m, &tc, &alloc, &err) != LISA_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 0;
    }
    if (lisa_trainer_step(&t, in, tg, &info) != LISA_OK) { /* warm-up; LISA draws here */
        fprintf(stderr, "warm-up step failed\n");
        lisa_trainer_free(&t);
        return 0;
    }
    faults0 = minor_faults();
    for (i = 0; i < n; i++) {
        double t0 = now_seconds();
        lisa_trainer_step(&t, in, tg, &info);
        times[i] = now_seconds() - t0;
        if (info.switched) fprintf(stderr, "note: a LISA switch happened inside the timed steps\n");
    }
    res->faults = (double)(minor_faults() - faults0) / n;
    res->step_s = median(times, n); /* sorts times */
    res->spread = (times[n - 1] - times[0]) / res->step_s;
    if (gamma) {
        /* Other layers: each active one shifted by gamma, a bijection, so no repeats;
           it moves every layer when 2 gamma <= n_layers, some of them otherwise. */
        int next[64], L = m->config.n_layers, k;
        double t0;
        for (k = 0; k < t.n_active && k < 64; k++) next[k] = (t.active_layers[k] + gamma) % L;
        t0 = now_seconds();
        if (lisa_trainer_set_active_layers(&t, next, t.n_active) != LISA_OK) {
            fprintf(stderr, "switch failed\n");
            lisa_trainer_free(&t);
            return 0;
        }
        res->switch_s = now_seconds() - t0;
        t0 = now_seconds();
        lisa_trainer_step(&t, in, tg, &info);
        res->after_switch_s = now_seconds() - t0;
    }
    res->peak_bytes = t.peak_bytes;
    res->measured_peak = mem->peak;
    if (res->measured_peak != res->plan.peak || res->peak_bytes != res->plan.peak)
        fprintf(stderr, "note: %s gamma %d ckpt %d: measured peak %zu bytes, trainer's tally %zu, plan %zu\n",
                s->name, gamma, checkpointing, res->measured_peak, res->peak_bytes, res->plan.peak);
    lisa_trainer_free(&t);
    res->leaked = (long)(mem->now - before);
    return 1;
}

static const char *mode_name(int gamma, char *buf, size_t size) {
    if (!gamma) return "full";
    snprintf(buf, size, "LISA gamma=%d", gamma);
    return buf;
}

static int run_shape(const shape *s, int steps, int quick) {
    bench_counter mem = {0, 0, 0};
    lisa_allocator alloc = bench_counting_allocator(&mem);
    lisa_model m;
    lisa_error err;
    lisa_rng rng;
    result res[2][N_MODES];
    flops f;
    int *in, *tg, i, ck, g, BT = s->B * s->T, rows = 0, plan_equal = 0, tally_equal = 0;
    long leaked = 0;
    char buf[32];
    const lisa_config *c;
    if (lisa_model_init(&m, &s->c, &alloc, &err) != LISA_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 0;
    }
    c = &m.config;
    lisa_model_init_random(&m, 1);
    in = (int *)malloc(2 * (size_t)BT * sizeof(int));
    if (!in) {
        lisa_model_free(&m);
        return 0;
    }
    tg = in + BT;
    lisa_rng_seed(&rng, 7);
    for (i = 0; i < BT; i++) {
        in[i] = (int)(lisa_rng_next(&rng) % (uint64_t)c->vocab_size);
        tg[i] = (int)(lisa_rng_next(&rng) % (uint64_t)c->vocab_size);
    }
    f = count_flops(c, s->T);

    printf("\n## %s: dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d, %s head, batch %d x seq %d, "
           "%.1fM params (embedding %.1fM, one layer %.2fM), %d timed steps\n\n",
           s->name, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
           c->tied_head ? "tied" : "untied", s->B, s->T, m.layout.n_params / 1e6, m.layout.embed / 1e6,
           m.layout.layer.size / 1e6, steps);
    printf("Forward multiply-adds per token: %.2fM in decoder layers' linears (%.2fM each), %.2fM in attention "
           "scores (%.2fM each), %.2fM in the head (%.0f%% of the forward).\n",
           c->n_layers * f.layer_linear / 1e6, f.layer_linear / 1e6, c->n_layers * f.layer_attn_fwd / 1e6,
           f.layer_attn_fwd / 1e6, f.head / 1e6,
           100.0 * f.head / (c->n_layers * (f.layer_linear + f.layer_attn_fwd) + f.head));
    printf("Predicted step cost vs full (forward + all input gradients + weight gradients of trained blocks "
           "[+ recompute]):\n");
    for (ck = 0; ck <= 1; ck++) {
        double full = step_macs(&f, c->n_layers, ck);
        printf("  checkpointing %-3s: full %.1f GFLOP/step", ck ? "yes" : "no", 2 * full * BT / 1e9);
        for (g = 1; g < N_MODES; g++)
            if (mode_gamma[g] <= c->n_layers)
                printf(", gamma=%d %.3f", mode_gamma[g], step_macs(&f, mode_gamma[g], ck) / full);
        printf(" (no layer at all: %.3f)\n", step_macs(&f, 0, ck) / full);
    }
    fflush(stdout);

    for (ck = 0; ck <= 1; ck++)
        for (g = 0; g < N_MODES; g++) {
            memset(&res[ck][g], 0, sizeof res[ck][g]);
            if (mode_gamma[g] > c->n_layers || (quick && (ck || (mode_gamma[g] != 0 && mode_gamma[g] != 2)))) continue;
            fprintf(stderr, "%s: %s, checkpointing %s ...\n", s->name, mode_name(mode_gamma[g], buf, sizeof buf),
                    ck ? "yes" : "no");
            if (!run_one(&m, &mem, s, mode_gamma[g], ck, steps, in, tg, &res[ck][g])) {
                free(in);
                lisa_model_free(&m);
                return 0;
            }
            res[ck][g].pred_macs = step_macs(&f, mode_gamma[g] ? mode_gamma[g] : c->n_layers, ck) * BT;
        }

    printf("\n| mode | checkpointing | ms/step | spread | tokens/s | GFLOP/s | vs full | predicted | page faults/step "
           "| measured peak MB | plan peak MB | weights MB | grad+optimizer MB | activations MB | scratch MB | switch ms "
           "| step after switch ms |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (ck = 0; ck <= 1; ck++)
        for (g = 0; g < N_MODES; g++) {
            const result *r = &res[ck][g], *full = &res[ck][0];
            const lisa_memory_plan *p = &r->plan;
            if (mode_gamma[g] > c->n_layers || r->step_s == 0.0) continue;
            printf("| %s | %s | %.1f | %.0f%% | %.0f | %.1f | %.3f | %.3f | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |",
                   mode_name(mode_gamma[g], buf, sizeof buf), ck ? "yes" : "no", r->step_s * 1e3, 100 * r->spread,
                   BT / r->step_s,
                   2 * r->pred_macs / r->step_s / 1e9, r->step_s / full->step_s, r->pred_macs / full->pred_macs,
                   r->faults,
                   r->measured_peak / 1e6, p->peak / 1e6, p->weights / 1e6, (p->gradients + p->optimizer) / 1e6,
                   p->activations / 1e6, p->scratch / 1e6);
            rows++;
            plan_equal += r->measured_peak == p->peak;
            tally_equal += r->peak_bytes == r->measured_peak;
            leaked += r->leaked;
            if (mode_gamma[g])
                printf(" %.2f | %.1f |\n", r->switch_s * 1e3, r->after_switch_s * 1e3);
            else
                printf(" - | - |\n");
        }
    printf("\nms/step: median of the timed steps after one warm-up step; spread: (slowest - fastest) / median, "
           "large when something else shares the CPU. GFLOP/s: the predicted count over the "
           "measured time. vs full: step time over full fine-tuning's at the same checkpointing; predicted: the "
           "same ratio of multiply-add counts. page faults/step: minor page faults (getrusage) over the timed "
           "steps, per step: memory the step touches for the first time. measured peak MB: the most bytes the model and the trainer "
           "(activations, gradients, moments, tables) held at once, counted by the allocator they were given; the "
           "plan columns are lisa_plan_memory's (tables, under 1 KB, not shown). switch ms: "
           "lisa_trainer_set_active_layers to the active layers shifted by gamma (mod n_layers): frees the leaving "
           "layers' gradients and moments, allocates and zeroes the entering layers' moments; step after switch: "
           "the next lisa_trainer_step, which also zeroes the new gradients.\n");
    printf("Measured peaks equal the plan's to the byte in %d of %d rows, and the trainer's own tally (peak_bytes) "
           "equals the measured peak in %d of %d; freed trainers left %ld bytes behind, and %ld frees named another "
           "size than allocated.\n", plan_equal, rows, tally_equal, rows, leaked, mem.mismatched_frees);
    fflush(stdout);
    free(in);
    lisa_model_free(&m);
    return 1;
}

int main(int argc, char **argv) {
    shape shapes[3];
    const char *which = "both";
    int steps = 3, threads = 0, quick = 0, i, ok = 1;
    memset(shapes, 0, sizeof shapes);
    shapes[0].name = "ref";
    shapes[0].c.dim = 288; shapes[0].c.hidden_dim = 768; shapes[0].c.n_layers = 6;
    shapes[0].c.n_heads = 6; shapes[0].c.n_kv_heads = 6;
    shapes[1].name = "deep";
    shapes[1].c.dim = 512; shapes[1].c.hidden_dim = 1376; shapes[1].c.n_layers = 16;
    shapes[1].c.n_heads = 8; shapes[1].c.n_kv_heads = 8;
    shapes[2].name = "smol";
    shapes[2].c.dim = 576; shapes[2].c.hidden_dim = 1536; shapes[2].c.n_layers = 30;
    shapes[2].c.n_heads = 9; shapes[2].c.n_kv_heads = 3;
    for (i = 0; i < 3; i++) {
        shapes[i].c.vocab_size = 32000;
        shapes[i].c.max_seq_len = 256;
        shapes[i].c.tied_head = 1;
        shapes[i].B = 4;
        shapes[i].T = 256;
    }
    shapes[2].c.vocab_size = 49152;
    shapes[2].c.max_seq_len = 512;
    shapes[2].B = 1;
    shapes[2].T = 512;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) which = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            steps = 0;
            break;
        }
    }
    if (steps < 1 || steps > MAX_STEPS || threads < 0 ||
        (strcmp(which, "ref") && strcmp(which, "deep") && strcmp(which, "smol") && strcmp(which, "both") &&
         strcmp(which, "all"))) {
        fprintf(stderr, "usage: %s [--steps N (1-%d, default 3)] [--shapes ref|deep|smol|both|all] [--threads N] [--quick]\n",
                argv[0], MAX_STEPS);
        return 2;
    }
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#else
    if (threads > 1) fprintf(stderr, "note: built without OpenMP; --threads %d ignored\n", threads);
#endif
    printf("# lisa.h: full fine-tuning vs LISA, step time and memory\n\n");
    print_machine();
    for (i = 0; i < 3 && ok; i++)
        if (!strcmp(which, "all") || (!strcmp(which, "both") && i < 2) || !strcmp(which, shapes[i].name))
            ok = run_shape(&shapes[i], steps, quick);
    return ok ? 0 : 1;
}
