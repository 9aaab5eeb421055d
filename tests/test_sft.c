/* Instruction data (JSON Lines and LMFlow text2text): exact rows, loss masks,
   BOS/EOS placement, padding, packing, truncation, skipping, errors. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <string.h>

#define I LISA_IGNORE
#define BOS LISA_BYTES_BOS
#define EOS LISA_BYTES_EOS

static int rows_equal(const lisa_sft_data *d, size_t row, const int *in, const int *tg) {
    return memcmp(d->inputs + row * d->seq, in, (size_t)d->seq * sizeof(int)) == 0 &&
           memcmp(d->targets + row * d->seq, tg, (size_t)d->seq * sizeof(int)) == 0;
}

static void test_padding(const lisa_tokenizer *tok) {
    const char *text = "{\"prompt\": \"ab\", \"response\": \"c\"}\n"
                       "\n"
                       "{\"response\": \"yz\", \"prompt\": \"x\"}\n";
    const int in0[6] = {BOS, 'a', 'b', 'c', EOS, EOS}, tg0[6] = {I, I, 'c', EOS, I, I};
    const int in1[6] = {BOS, 'x', 'y', 'z', EOS, EOS}, tg1[6] = {I, 'y', 'z', EOS, I, I};
    lisa_sft_data d;
    lisa_error err;
    int bi[12], bt[12];
    CHECK(lisa_sft_load_memory(&d, text, strlen(text), "pad.jsonl", tok, 6, 0, NULL, &err) == LISA_OK,
          "load: %s", err.message);
    CHECK(d.n_rows == 2 && d.n_examples == 2 && d.n_truncated == 0 && d.n_skipped == 0, "two rows, two examples");
    CHECK(rows_equal(&d, 0, in0, tg0), "row 0: BOS prompt response EOS, loss on the response and EOS only");
    CHECK(rows_equal(&d, 1, in1, tg1), "row 1: keys in any order");
    CHECK(d.n_counted == 5, "5 counted targets, got %lu", (unsigned long)d.n_counted);
    lisa_sft_batch(&d, 1, 2, 6, bi, bt); /* rows 2, 3 wrap to 0, 1 */
    CHECK(memcmp(bi, in0, sizeof in0) == 0 && memcmp(bt + 6, tg1, sizeof tg1) == 0, "batches wrap around");
    lisa_sft_batch(&d, 0, 1, 4, bi, bt);
    CHECK(memcmp(bi, in0, 4 * sizeof(int)) == 0 && memcmp(bt, tg0, 4 * sizeof(int)) == 0, "a shorter seq takes a row's start");
    lisa_sft_free(&d);
}

static void test_lmflow_equals_jsonl(const lisa_tokenizer *tok) {
    const char *lm = "{\"type\": \"text2text\", \"instances\": [{\"input\": \"ab\", \"output\": \"c\"},"
                     " {\"input\": \"x\", \"output\": \"yz\"}]}";
    const char *jl = "{\"prompt\": \"ab\", \"response\": \"c\"}\n{\"prompt\": \"x\", \"response\": \"yz\"}";
    lisa_sft_data a, b;
    lisa_error err;
    CHECK(lisa_sft_load_memory(&a, lm, strlen(lm), "lm.json", tok, 6, 0, NULL, &err) == LISA_OK, "lmflow: %s", err.message);
    CHECK(lisa_sft_load_memory(&b, jl, strlen(jl), "b.jsonl", tok, 6, 0, NULL, &err) == LISA_OK, "jsonl: %s", err.message);
    CHECK(a.n_rows == b.n_rows && memcmp(a.inputs, b.inputs, 2 * a.n_rows * 6 * sizeof(int)) == 0,
          "LMFlow text2text gives the same rows as JSON Lines");
    lisa_sft_free(&a);
    lisa_sft_free(&b);
}

/* One line of JSON Lines is also one JSON document: an example that carries a "type" of its own is still an
   example, not an LMFlow document. */
static void test_one_line_with_type(const lisa_tokenizer *tok) {
    const char *typed = "{\"prompt\": \"ab\", \"response\": \"c\", \"type\": \"qa\"}";
    const char *plain = "{\"prompt\": \"ab\", \"response\": \"c\"}";
    lisa_sft_data a, b;
    lisa_error err;
    CHECK(lisa_sft_load_memory(&a, typed, strlen(typed), "typed.jsonl", tok, 6, 0, NULL, &err) == LISA_OK,
          "one line with \"type\": %s", err.message);
    CHECK(lisa_sft_load_memory(&b, plain, strlen(plain), "plain.jsonl", tok, 6, 0, NULL, &err) == LISA_OK, "plain: %s",
          err.message);
    CHECK(a.n_rows == 1 && b.n_rows == 1 && memcmp(a.inputs, b.inputs, 6 * sizeof(int)) == 0 &&
              memcmp(a.targets, b.targets, 6 * sizeof(int)) == 0,
          "the extra \"type\" member changes nothing");
    lisa_sft_free(&a);
    lisa_sft_free(&b);
}

static void test_packing(const lisa_tokenizer *tok) {
    const char *text = "{\"prompt\": \"ab\", \"response\": \"c\"}\n{\"prompt\": \"x\", \"response\": \"yz\"}\n";
    /* sequences: [BOS a b c EOS] -> 4 positions, [BOS x y z EOS] -> 4 positions */
    const int in0[3] = {BOS, 'a', 'b'}, tg0[3] = {I, I, 'c'};
    const int in1[3] = {'c', BOS, 'x'}, tg1[3] = {EOS, I, 'y'};
    const int in2[3] = {'y', 'z', 0}, tg2[3] = {'z', EOS, I};
    lisa_sft_data d;
    lisa_error err;
    CHECK(lisa_sft_load_memory(&d, text, strlen(text), "pack.jsonl", tok, 3, 1, NULL, &err) == LISA_OK,
          "load packed: %s", err.message);
    CHECK(d.n_rows == 3, "8 positions pack into 3 rows of 3, got %lu", (unsigned long)d.n_rows);
    CHECK(d.n_rows == 3 && rows_equal(&d, 0, in0, tg0) && rows_equal(&d, 1, in1, tg1) && rows_equal(&d, 2, in2, tg2),
          "packed rows run on across row boundaries; the tail carries no loss");
    lisa_sft_free(&d);
}

static void test_truncate_and_skip(const lisa_tokenizer *tok) {
    const char *text = "{\"prompt\": \"ab\", \"response\": \"cdefgh\"}\n"   /* 10 tokens > seq 4 + 1 */
                       "{\"prompt\": \"abcd\", \"response\": \"e\"}\n";    /* prompt 5 tokens fills seq 4 */
    const int in0[4] = {BOS, 'a', 'b', 'c'}, tg0[4] = {I, I, 'c', 'd'};
    lisa_sft_data d;
    lisa_error err;
    CHECK(lisa_sft_load_memory(&d, text, strlen(text), "cut.jsonl", tok, 4, 0, NULL, &err) == LISA_OK, "load: %s",
          err.message);
    CHECK(d.n_examples == 1 && d.n_truncated == 1 && d.n_skipped == 1, "one truncated, one skipped");
    CHECK(d.n_rows == 1 && rows_equal(&d, 0, in0, tg0), "truncation keeps the start of the sequence");
    lisa_sft_free(&d);
}

static void expect_error(const lisa_tokenizer *tok, const char *text, const char *want) {
    lisa_sft_data d;
    lisa_error err;
    lisa_result r = lisa_sft_load_memory(&d, text, strlen(text), "bad.jsonl", tok, 8, 0, NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "bad.jsonl") && strstr(err.message, want),
          "'%s' fails with '%s' (got %d: %s)", text, want, (int)r, r ? err.message : "ok");
    if (r == LISA_OK) lisa_sft_free(&d);
}

static void test_errors(const lisa_tokenizer *tok) {
    expect_error(tok, "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\"}\n", "line 2: expected a string \"response\"");
    expect_error(tok, "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\", \"response\": 3}\n", "line 2");
    expect_error(tok, "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\", \n", "line 2");
    expect_error(tok, "{\"type\": \"text_only\", \"instances\": []}", "text2text");
    expect_error(tok, "{\"type\": \"text2text\", \"instances\": [{\"input\": \"a\"}]}", "instance 0");
    expect_error(tok, "", "no usable examples");
    expect_error(tok, "{\"prompt\": \"abcdefghij\", \"response\": \"b\"}", "no usable examples");
}

/* Every allocation failing in turn is a clean LISA_ERR_NOMEM with nothing left. */
typedef struct failing {
    long long live;
    int left;
} failing;

static void *f_alloc(void *u, size_t n) {
    failing *f = (failing *)u;
    void *p;
    if (f->left-- <= 0) return NULL;
    p = malloc(n);
    if (p) f->live += (long long)n;
    return p;
}

static void f_free(void *u, void *p, size_t n) {
    ((failing *)u)->live -= (long long)n;
    free(p);
}

static void test_allocation_failures(const lisa_tokenizer *tok) {
    const char *text = "{\"type\": \"text2text\", \"instances\": [{\"input\": \"ab\", \"output\": \"c\"}]}";
    int k, clean = 1, succeeded = 0;
    for (k = 0; k < 200 && !succeeded; k++) {
        failing f = {0, 0};
        lisa_allocator a;
        lisa_sft_data d;
        lisa_result r;
        f.left = k;
        a.alloc = f_alloc;
        a.free = f_free;
        a.user = &f;
        r = lisa_sft_load_memory(&d, text, strlen(text), "a.json", tok, 6, 0, &a, NULL);
        if (r == LISA_OK) {
            succeeded = 1;
            CHECK(d.bytes == (size_t)f.live, "the data counts its bytes (%lu vs %lld)", (unsigned long)d.bytes, f.live);
            lisa_sft_free(&d);
        } else if (r != LISA_ERR_NOMEM) {
            clean = 0;
        }
        if (f.live != 0) clean = 0;
    }
    CHECK(succeeded && clean, "every allocation failure is LISA_ERR_NOMEM and leaks nothing");
}

int main(void) {
    lisa_tokenizer tok;
    lisa_tokenizer_init_bytes(&tok);
    test_padding(&tok);
    test_lmflow_equals_jsonl(&tok);
    test_one_line_with_type(&tok);
    test_packing(&tok);
    test_truncate_and_skip(&tok);
    test_errors(&tok);
    test_allocation_failures(&tok);
    lisa_tokenizer_free(&tok);
    return test_report("sft");
}
