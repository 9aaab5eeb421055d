/* Forward + backward speed of the CPU engine on the reference shape
   (llama2.c's 15M model: dim 288, hidden 768, 6 layers, 6 heads, vocab 32000,
   batch 4 x seq 256), with and without checkpointing, at 1 and 2 threads.
   Memory: the most bytes the activations (kept ones and backward scratch)
   held at once, measured by a counting allocator (bench/bench.h), against
   lisa_acts_size's plan.

   With --generate N it times generation instead: N tokens, one
   lisa_model_step each (the KV cache's path), after a one-token prompt, and
   prints tokens/s beside the bound memory bandwidth sets: every step reads all
   fp32 weights once (the tied head reads the embedding), so the bound is the
   bandwidth a plain streaming read reaches in this program, on the same
   threads, over the weights' bytes.

   Build and run:  make bench
   or:             cc -O3 -march=native -fopenmp -I. -o bench_engine bench/bench_engine.c -lm
   Options:        bench_engine [--steps N] [--threads "1 2"] [--shape dim,hidden,layers,heads,kv,vocab,B,T]
                                [--generate N]
   SmolLM2-135M's shape: --shape 576,1536,30,9,3,49152,1,512 */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Median seconds of one forward + backward (all blocks' gradients) over steps runs. */
static double time_step(lisa_model *m, lisa_acts *a, float **grads, const int *in, const int *tg,
                        int B, int T, int steps) {
    double best[64];
    int i, n = steps < 64 ? steps : 64;
    lisa_model_forward(m, a, in, tg, B, T); /* warm up */
    lisa_model_backward(m, a, grads);
    for (i = 0; i < n; i++) {
        double t0 = now_seconds();
        lisa_model_forward(m, a, in, tg, B, T);
        lisa_model_backward(m, a, grads);
        best[i] = now_seconds() - t0;
    }
    return median(best, n);
}

/* Bytes per second of the best of a few sums over a buffer far larger than
   the caches, read by the current OpenMP threads. */
static double stream_bandwidth(void) {
    size_t n = (size_t)64 << 20, i; /* 256 MB of floats */
    float *buf = (float *)malloc(n * sizeof(float));
    double best = 0.0, sink = 0.0;
    int pass;
    if (!buf) return 0.0;
    for (i = 0; i < n; i++) buf[i] = (float)(i & 7);
    for (pass = 0; pass < 5; pass++) {
        double t0 = now_seconds(), total = 0.0, s;
        long long j;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : total)
#endif
        for (j = 0; j < (long long)(n / 16); j++) {
            const float *p = buf + (size_t)j * 16;
            float part = 0.0f;
            int l;
            for (l = 0; l < 16; l++) part += p[l];
            total += part;
        }
        s = now_seconds() - t0;
        sink += total;
        if (n * sizeof(float) / s > best) best = n * sizeof(float) / s;
    }
    free(buf);
    if (sink < 0) printf("(%g)\n", sink); /* keeps the sums */
    return best;
}

/* Tokens per second of lisa_model_step over n_tokens positions, at each thread count. */
static int time_generation(lisa_model *m, int n_tokens, const char *threads) {
    lisa_kv_cache cache;
    lisa_error err;
    char tbuf[64], *tok, *save = NULL;
    double weight_bytes = (double)m->layout.n_params * sizeof(float);
    if (lisa_kv_cache_init(&cache, &m->config, n_tokens + 1, NULL, &err) != LISA_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("generation: %d tokens after a one-token prompt, lisa_model_step each; the bound: fp32 weights "
           "(%.1f MB) read once per token at the streaming-read bandwidth\n", n_tokens, weight_bytes / 1e6);
    printf("| threads | tokens/s | ms/token | stream read GB/s | bound tokens/s | fraction of bound |\n");
    printf("|---|---|---|---|---|---|\n");
    strncpy(tbuf, threads, sizeof tbuf - 1);
    tbuf[sizeof tbuf - 1] = 0;
    for (tok = strtok_r(tbuf, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
        int nt = atoi(tok), i, next = 1;
        double bw, t0, s, rate, bound;
#ifdef _OPENMP
        omp_set_num_threads(nt);
#else
        if (nt != 1) continue;
#endif
        bw = stream_bandwidth();
        lisa_kv_cache_reset(&cache);
        lisa_model_step(m, &cache, next); /* the prompt; also warms up */
        t0 = now_seconds();
        for (i = 0; i < n_tokens; i++) {
            const float *logits = lisa_model_step(m, &cache, next);
            next = lisa_sample_logits(logits, m->config.vocab_size, 0.0f, 1.0f, NULL, NULL);
        }
        s = now_seconds() - t0;
        rate = n_tokens / s;
        bound = bw / weight_bytes;
        printf("| %d | %.1f | %.2f | %.1f | %.1f | %.2f |\n", nt, rate, 1e3 * s / n_tokens, bw / 1e9, bound,
               rate / bound);
        fflush(stdout);
    }
    lisa_kv_cache_free(&cache);
    return 0;
}

int main(int argc, char **argv) {
    lisa_config c;
    lisa_model m;
    lisa_error err;
    int B = 4, T = 256, steps = 5, i, b, nb, ck, generate = 0;
    const char *threads = "1 2";
    char tbuf[64], *tok, *save = NULL;
    int *in, *tg;
    float **grads;
    lisa_rng rng;
    bench_counter mem = {0, 0, 0};
    lisa_allocator alloc = bench_counting_allocator(&mem);
    memset(&c, 0, sizeof c);
    c.dim = 288; c.hidden_dim = 768; c.n_layers = 6; c.n_heads = 6; c.n_kv_heads = 6;
    c.vocab_size = 32000; c.max_seq_len = 256; c.tied_head = 1;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = argv[++i];
        else if (!strcmp(argv[i], "--generate") && i + 1 < argc && (generate = atoi(argv[++i])) > 0) continue;
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc &&
                 sscanf(argv[++i], "%d,%d,%d,%d,%d,%d,%d,%d", &c.dim, &c.hidden_dim, &c.n_layers, &c.n_heads,
                        &c.n_kv_heads, &c.vocab_size, &B, &T) == 8) c.max_seq_len = T;
        else {
            fprintf(stderr, "usage: %s [--steps N] [--threads \"1 2\"] [--shape dim,hidden,layers,heads,kv,vocab,B,T] "
                    "[--generate N]\n", argv[0]);
            return 2;
        }
    }
    if (lisa_model_init(&m, &c, NULL, &err) != LISA_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    lisa_model_init_random(&m, 1);
    if (generate) {
        int r;
        if (generate + 1 > m.config.max_seq_len) {
            fprintf(stderr, "--generate %d: the shape's sequence length %d holds at most %d new tokens\n", generate,
                    m.config.max_seq_len, m.config.max_seq_len - 1);
            lisa_model_free(&m);
            return 2;
        }
        printf("shape: dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d, %.1fM params\n", c.dim,
               c.hidden_dim, c.n_layers, c.n_heads, m.config.n_kv_heads, c.vocab_size, m.layout.n_params / 1e6);
        r = time_generation(&m, generate, threads);
        lisa_model_free(&m);
        return r;
    }
    nb = lisa_n_blocks(&m.config);
    grads = (float **)calloc((size_t)nb, sizeof(float *));
    for (b = 0; b < nb; b++)
        if (lisa_block_size(&m.config, b)) grads[b] = (float *)calloc(lisa_block_size(&m.config, b), sizeof(float));
    in = (int *)malloc(2 * (size_t)B * T * sizeof(int));
    tg = in + (size_t)B * T;
    lisa_rng_seed(&rng, 7);
    for (i = 0; i < B * T; i++) {
        in[i] = (int)(lisa_rng_next(&rng) % (uint64_t)c.vocab_size);
        tg[i] = (int)(lisa_rng_next(&rng) % (uint64_t)c.vocab_size);
    }
    printf("activations MB: kept from forward to backward (lisa_acts_size); measured MB: the most the "
           "activations and backward scratch held at once, counted by their allocator; planned MB: "
           "lisa_acts_size's kept + scratch\n");
    printf("shape: dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d, batch %d x seq %d, %.1fM params\n",
           c.dim, c.hidden_dim, c.n_layers, c.n_heads, m.config.n_kv_heads, c.vocab_size, B, T,
           m.layout.n_params / 1e6);
    printf("| threads | checkpointing | fwd+bwd ms | tokens/s | activations MB | measured MB | planned MB |\n");
    printf("|---|---|---|---|---|---|---|\n");
    strncpy(tbuf, threads, sizeof tbuf - 1);
    tbuf[sizeof tbuf - 1] = 0;
    for (tok = strtok_r(tbuf, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
        int nt = atoi(tok);
#ifdef _OPENMP
        omp_set_num_threads(nt);
#else
        if (nt != 1) continue;
#endif
        for (ck = 0; ck <= 1; ck++) {
            lisa_acts a;
            double s;
            size_t kept, scratch;
            lisa_acts_size(&m.config, B, T, ck, &kept, &scratch);
            bench_counter_restart_peak(&mem);
            if (lisa_acts_init(&a, &m.config, B, T, ck, &alloc, &err) != LISA_OK) {
                fprintf(stderr, "%s\n", err.message);
                return 1;
            }
            s = time_step(&m, &a, grads, in, tg, B, T, steps);
            printf("| %d | %s | %.1f | %.0f | %.1f | %.1f | %.1f |\n", nt, ck ? "yes" : "no", s * 1e3, B * T / s,
                   kept / 1e6, mem.peak / 1e6, (kept + scratch) / 1e6);
            if (mem.peak != kept + scratch)
                printf("note: measured peak %zu bytes, planned %zu\n", mem.peak, kept + scratch);
            fflush(stdout);
            lisa_acts_free(&a);
            if (mem.now != 0 || mem.mismatched_frees)
                printf("note: %zu bytes left after lisa_acts_free, %ld frees named another size\n", mem.now,
                       mem.mismatched_frees);
        }
    }
    for (b = 0; b < nb; b++) free(grads[b]);
    free(grads);
    free(in);
    lisa_model_free(&m);
    return 0;
}
