/* Generation: a KV-cache step computes the same bits as the last row of a full
   forward over the prefix, so greedy generation is exactly the model's greedy
   continuation, also past the attention's block and key-chunk sizes;
   sampling follows softmax(logits / temperature) and top-p. The cache
   allocates exactly what its layout counts, and its buffers lie inside the
   allocations without overlap. Attention's blocks and generation's one row
   share their sums, and so does the path attention and the matrix kernel
   take when their scratch memory is refused. */
#include <stdlib.h>
#include <string.h>

/* The library's own scratch (LISA_MALLOC: packing buffers, attention tiles),
   refused while refuse_scratch is set. */
static int refuse_scratch;
static void *scratch_malloc(size_t n) { return refuse_scratch ? NULL : malloc(n); }
#define LISA_MALLOC(n) scratch_malloc(n)
#define LISA_FREE(p) free(p)

#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "regions.h"
#include "test.h"

static void test_steps_match_full_forward(int tied, int kv_heads) {
    lisa_config c;
    lisa_model m;
    lisa_acts a;
    lisa_kv_cache kc;
    int tokens[40], prompt[5] = {3, 1, 4, 1, 5}, n = 5, t, all_logits_equal = 1, greedy_equal = 1;
    memset(&c, 0, sizeof c);
    c.dim = 48; c.hidden_dim = 80; c.n_layers = 3; c.n_heads = 6; c.n_kv_heads = kv_heads;
    c.vocab_size = 37; c.max_seq_len = 40; c.tied_head = tied; c.rope_theta = 500.0f;
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 11);
    { /* larger weights than the default init, so the logits are far from uniform */
        size_t i;
        for (i = 0; i < m.layout.n_params; i++) m.params[i] *= 8.0f;
    }
    lisa_acts_init(&a, &m.config, 1, 40, 0, NULL, NULL);
    CHECK(lisa_kv_cache_init(&kc, &m.config, 0, NULL, NULL) == LISA_OK && kc.max_len == 40, "a cache of max_seq_len");
    memcpy(tokens, prompt, sizeof prompt);
    for (t = 0; t < n - 1; t++) lisa_model_step(&m, &kc, tokens[t]);
    /* each step: the cached logits against a full forward over the whole prefix */
    while (n < 40) {
        const float *step = lisa_model_step(&m, &kc, tokens[n - 1]);
        int best = 0, j;
        lisa_model_forward(&m, &a, tokens, NULL, 1, n);
        if (memcmp(step, a.logits + (size_t)(n - 1) * c.vocab_size, (size_t)c.vocab_size * sizeof(float)) != 0)
            all_logits_equal = 0;
        for (j = 1; j < c.vocab_size; j++)
            if (a.logits[(size_t)(n - 1) * c.vocab_size + j] > a.logits[(size_t)(n - 1) * c.vocab_size + best]) best = j;
        if (lisa_sample_logits(step, c.vocab_size, 0.0f, 1.0f, NULL, NULL) != best) greedy_equal = 0;
        tokens[n++] = best;
    }
    CHECK(all_logits_equal, "KV-cache logits equal the full forward's bitwise (tied %d, kv heads %d)", tied, kv_heads);
    CHECK(greedy_equal, "greedy picks agree (tied %d, kv heads %d)", tied, kv_heads);
    { /* lisa_generate from the prompt reproduces the same greedy continuation */
        int out[41], got;
        lisa_rng rng;
        lisa_rng_seed(&rng, 1);
        got = lisa_generate(&m, &kc, prompt, 5, out, 100, 0.0f, 1.0f, -1, &rng);
        /* 35 tokens fill the 40 positions; the 36th is predicted from all 40 and not fed */
        CHECK(got == 36 && memcmp(out, tokens + 5, 35 * sizeof(int)) == 0,
              "lisa_generate is the greedy continuation and stops when the cache is full (got %d)", got);
    }
    lisa_kv_cache_free(&kc);
    CHECK(kc.bytes == 0, "the cache frees what it allocated");
    lisa_acts_free(&a);
    lisa_model_free(&m);
}

/* Top-p sampling from 5 logits at temperature T: over many draws, the
   tokens of the nucleus (the most likely ones whose probabilities first add up
   to top_p; expect_n of them) come out with their renormalised probabilities
   (chi-square), every one of them appears, and no other token ever does. */
static void check_nucleus(const float *logits, float T, float top_p, int expect_n, lisa_rng *rng, float *work) {
    enum { V = 5, DRAWS = 40000 };
    double p[V], z = 0.0, kept = 0.0, chi = 0.0;
    int order[V], in_nucleus[V] = {0}, counts[V] = {0}, n = 0, outside = 0, seen = 0, i, j;
    for (i = 0; i < V; i++) z += exp(logits[i] / T);
    for (i = 0; i < V; i++) {
        p[i] = exp(logits[i] / T) / z;
        order[i] = i;
    }
    for (i = 1; i < V; i++) /* by probability, largest first; ties keep index order */
        for (j = i; j > 0 && p[order[j]] > p[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    while (n < V && kept < top_p) {
        in_nucleus[order[n]] = 1;
        kept += p[order[n++]];
    }
    CHECK(n == expect_n, "T %g, top-p %g: the nucleus has %d tokens (the test's own count: %d)", T, top_p, expect_n, n);
    for (i = 0; i < DRAWS; i++) counts[lisa_sample_logits(logits, V, T, top_p, rng, work)]++;
    for (i = 0; i < V; i++) {
        double expect = DRAWS * p[i] / kept;
        if (!in_nucleus[i]) {
            outside += counts[i];
            continue;
        }
        seen += counts[i] > 0;
        chi += (counts[i] - expect) * (counts[i] - expect) / expect;
    }
    CHECK(outside == 0, "T %g, top-p %g: no token outside the nucleus is drawn (%d were)", T, top_p, outside);
    CHECK(seen == n && n > 1, "T %g, top-p %g: each of the %d nucleus tokens is drawn", T, top_p, n);
    /* n - 1 degrees of freedom; 16 is beyond the 0.1% tail for 1 or 2 */
    CHECK(chi < 16.0, "T %g, top-p %g: the nucleus tokens follow their renormalised probabilities (chi-square %.2f, "
          "%d dof)", T, top_p, chi, n - 1);
}

static void test_sampling(void) {
    const float logits[5] = {1.0f, 2.0f, 0.5f, 2.0f, -1.0f};
    float work[10];
    int counts[5] = {0}, i, ok = 1;
    double z = 0.0, chi = 0.0;
    lisa_rng rng, rng2;
    lisa_rng_seed(&rng, 7);
    CHECK(lisa_sample_logits(logits, 5, 0.0f, 1.0f, &rng, NULL) == 1, "greedy takes the first largest logit");
    for (i = 0; i < 5; i++) z += exp(logits[i] / 0.7);
    for (i = 0; i < 50000; i++) counts[lisa_sample_logits(logits, 5, 0.7f, 1.0f, &rng, NULL)]++;
    for (i = 0; i < 5; i++) {
        double expect = 50000.0 * exp(logits[i] / 0.7) / z;
        chi += (counts[i] - expect) * (counts[i] - expect) / expect;
    }
    CHECK(chi < 20.0, "temperature sampling follows softmax(logits / T) (chi-square %.2f, 4 dof)", chi);
    /* top_p 0.5: the two largest (equal, 2.0) tokens reach it; 0.8 needs the
       third; at T = 0.5 the two largest alone reach 0.9 */
    check_nucleus(logits, 1.0f, 0.5f, 2, &rng, work);
    check_nucleus(logits, 1.0f, 0.8f, 3, &rng, work);
    check_nucleus(logits, 0.5f, 0.9f, 2, &rng, work);
    lisa_rng_seed(&rng, 3);
    lisa_rng_seed(&rng2, 3);
    for (i = 0; i < 100; i++)
        if (lisa_sample_logits(logits, 5, 1.0f, 0.9f, &rng, work) != lisa_sample_logits(logits, 5, 1.0f, 0.9f, &rng2, work))
            ok = 0;
    CHECK(ok, "the same seed samples the same tokens");
}

static void test_stop_token(void) {
    lisa_config c;
    lisa_model m;
    lisa_kv_cache kc;
    lisa_rng rng;
    int prompt[1] = {2}, out[16], got;
    memset(&c, 0, sizeof c);
    c.dim = 16; c.hidden_dim = 16; c.n_layers = 1; c.n_heads = 2; c.vocab_size = 5; c.max_seq_len = 16; c.tied_head = 0;
    lisa_model_init(&m, &c, NULL, NULL); /* all-zero weights but the head: token 4 always wins */
    m.final_norm[0] = 1.0f;
    m.embed[2 * 16] = 1.0f;
    m.head[4 * 16] = 1.0f;
    lisa_kv_cache_init(&kc, &m.config, 8, NULL, NULL);
    lisa_rng_seed(&rng, 1);
    got = lisa_generate(&m, &kc, prompt, 1, out, 10, 0.0f, 1.0f, 4, &rng);
    CHECK(got == 1 && out[0] == 4, "generation stops after the stop token (got %d tokens)", got);
    lisa_kv_cache_free(&kc);
    lisa_model_free(&m);
}

/* lisa_kv_cache_init() allocates exactly what the cache's layout counts; the
   keys, the values and each buffer of a step's work area (through the private
   layout the step uses), with their documented shapes, lie inside the
   allocations without overlapping and leave no byte over. */
static void test_cache_layout(int kv_heads, int max_len) {
    static const char *const names[12] = {"k", "v", "x", "xn", "q", "att", "x_mid",
                                          "h1", "h3", "hg", "logits", "sample"};
    lisa_config c;
    lisa_kv_cache kc;
    rg_alloc r;
    lisa_allocator al = rg_allocator(&r);
    lisa__step_work w;
    lisa__kv_count n;
    rg_region g[12];
    const void *p[12];
    size_t bytes[12], D, H, V, per_tensor, f = sizeof(float);
    char label[64];
    memset(&c, 0, sizeof c);
    c.dim = 24; c.hidden_dim = 40; c.n_layers = 3; c.n_heads = 4; c.n_kv_heads = kv_heads;
    c.vocab_size = 29; c.max_seq_len = 13; c.tied_head = 0;
    snprintf(label, sizeof label, "cache of %d positions, %d kv heads", max_len, kv_heads);
    CHECK(lisa_kv_cache_init(&kc, &c, max_len, &al, NULL) == LISA_OK, "%s: allocates", label);
    if (!kc.k) return;
    D = (size_t)c.dim;
    H = (size_t)c.hidden_dim;
    V = (size_t)c.vocab_size;
    /* (n_layers, max_len, n_kv_heads * head_dim); n_kv_heads 0 resolves to n_heads */
    per_tensor = (size_t)c.n_layers * (size_t)kc.max_len * (D / (size_t)c.n_heads * (size_t)kc.config.n_kv_heads);
    n = lisa__kv_cache_count_of(&kc.config, kc.max_len);
    CHECK(r.live == kc.bytes && kc.bytes == (n.kv + n.work) * f,
          "%s: allocated %lu bytes = cache.bytes %lu = counted %lu", label, (unsigned long)r.live,
          (unsigned long)kc.bytes, (unsigned long)((n.kv + n.work) * f));
    w = lisa__step_work_of(&kc);
    CHECK(w.logits == kc.logits && w.x == kc.work, "%s: the step's logits are the cache's, in its work area", label);
    p[0] = kc.k; bytes[0] = per_tensor * f;
    p[1] = kc.v; bytes[1] = per_tensor * f;
    p[2] = w.x; p[3] = w.xn; p[4] = w.q; p[5] = w.att; p[6] = w.x_mid;
    bytes[2] = bytes[3] = bytes[4] = bytes[5] = bytes[6] = D * f;
    p[7] = w.h1; p[8] = w.h3; p[9] = w.hg;
    bytes[7] = bytes[8] = bytes[9] = H * f;
    p[10] = w.logits; bytes[10] = V * f;
    p[11] = w.sample; bytes[11] = 2 * V * f;
    rg_check(label, r.blocks, r.n, g, rg_regions(g, names, p, bytes, 12), 1);
    lisa_kv_cache_free(&kc);
    rg_check_freed(label, &r, kc.bytes);
}

/* A context longer than one key chunk (LISA__KC) and several row blocks:
   the cached step's logits equal the full forward's last row at positions
   on both sides of each boundary. */
static void test_long_context(void) {
    enum { N = 300 };
    static const int checks[] = {1, 2, 95, 96, 97, 191, 192, 255, 256, 257, 288, 300};
    lisa_config c;
    lisa_model m;
    lisa_acts a;
    lisa_kv_cache kc;
    lisa_rng rng;
    int tokens[N], t, k = 0, equal = 1;
    memset(&c, 0, sizeof c);
    c.dim = 32; c.hidden_dim = 48; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 29; c.max_seq_len = N; c.rope_theta = 10000.0f;
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 5);
    lisa_acts_init(&a, &m.config, 1, N, 0, NULL, NULL);
    lisa_kv_cache_init(&kc, &m.config, 0, NULL, NULL);
    lisa_rng_seed(&rng, 3);
    for (t = 0; t < N; t++) tokens[t] = (int)(lisa_rng_next(&rng) % (uint64_t)c.vocab_size);
    for (t = 1; t <= N; t++) {
        const float *step = lisa_model_step(&m, &kc, tokens[t - 1]);
        if (t != checks[k]) continue;
        k++;
        lisa_model_forward(&m, &a, tokens, NULL, 1, t);
        if (memcmp(step, a.logits + (size_t)(t - 1) * c.vocab_size, (size_t)c.vocab_size * sizeof(float)) != 0) {
            equal = 0;
            printf("  position %d: the cached step differs from the full forward\n", t);
        }
    }
    CHECK(equal && k == (int)(sizeof checks / sizeof checks[0]),
          "KV-cache logits equal the full forward's bitwise at %d positions up to %d", k, N);
    lisa_kv_cache_free(&kc);
    lisa_acts_free(&a);
    lisa_model_free(&m);
}

/* Attention forward and backward with every scratch allocation refused (one
   row or key at a time, one-tile packing on the stack) give what they give
   with it, element for element. */
static void test_attention_without_scratch(void) {
    enum { B = 2, T = 300, H = 4, KV = 2, HD = 16 };
    size_t nq = (size_t)B * T * H * HD, nk = (size_t)B * T * KV * HD, nl = (size_t)B * H * T, i;
    float *buf = (float *)calloc(2 * (5 * nq + 6 * nk + 2 * nl), sizeof(float));
    float *q = buf, *k = q + nq, *v = k + nk, *dout = v + nk, *run[2][6];
    lisa_rng rng;
    int r, same = 1;
    lisa_rng_seed(&rng, 8);
    for (i = 0; i < 2 * nq + 2 * nk; i++) buf[i] = 2.0f * lisa_rng_uniform(&rng) - 1.0f;
    for (r = 0; r < 2; r++) { /* out, lse, dq, dk, dv of each run */
        float *p = dout + nq + (size_t)r * (3 * nq + 2 * nk + nl);
        run[r][0] = p;
        run[r][1] = p + nq;
        run[r][2] = run[r][1] + nl;
        run[r][3] = run[r][2] + nq;
        run[r][4] = run[r][3] + nk;
        refuse_scratch = r;
        lisa_attention_forward(run[r][0], run[r][1], q, k, v, B, T, H, KV, HD);
        lisa_attention_backward(run[r][2], run[r][3], run[r][4], dout, run[r][0], run[r][1], q, k, v, B, T, H, KV,
                                HD);
        refuse_scratch = 0;
    }
    for (i = 0; i < nq; i++)
        if (run[0][0][i] != run[1][0][i] || run[0][2][i] != run[1][2][i]) same = 0;
    for (i = 0; i < nk; i++)
        if (run[0][3][i] != run[1][3][i] || run[0][4][i] != run[1][4][i]) same = 0;
    for (i = 0; i < nl; i++)
        if (run[0][1][i] != run[1][1][i]) same = 0;
    CHECK(same, "attention without scratch memory: out, lse, dq, dk, dv equal those with it");
    free(buf);
}

int main(void) {
    test_long_context();
    test_attention_without_scratch();
    test_steps_match_full_forward(0, 2);
    test_steps_match_full_forward(1, 6);
    test_steps_match_full_forward(0, 1);
    test_sampling();
    test_stop_token();
    test_cache_layout(2, 0);
    test_cache_layout(4, 7);
    test_cache_layout(1, 1);
    test_cache_layout(0, 5);
    return test_report("generate");
}
