/* libFuzzer harness: lisa_sft_load_memory (instruction data) with the
   byte-level tokenizer.

   The input's first byte gives seq = 1 + byte % 64, the second's low bit
   pack; the rest is the text. Every input is loaded through a counting
   allocator and compared with rows built here from lisa.h's documentation,
   independently of its code: the text is LMFlow when it parses (with
   lisa_json_parse, which fuzz_json.c checks) as an object with an
   "instances" member, or a "type" member and neither "prompt" nor
   "messages" (then "type" must be exactly
   "text2text", "instances" an array of objects with string "input" and
   "output"), else JSON Lines (each line that is not blank an object with
   string "prompt" and "response"). Each example is the ids BOS (256), the
   prompt's bytes, the response's bytes, EOS (257), fed as inputs x[0..n-2]
   and targets x[1..n-1], a target that is a prompt byte (or BOS) being
   LISA_IGNORE. Padding: one example per row; longer than seq + 1 ids: cut
   (n_truncated); a prompt of seq + 1 ids or more: skipped (n_skipped); the
   rest of a row input EOS, target LISA_IGNORE. Packing: examples back to back
   across rows, the last row's tail input 0, target LISA_IGNORE. No example
   at all is LISA_ERR_FORMAT. lisa.h must give exactly these rows and counts
   (and fail exactly when the reference fails). Also, directly on the rows:
   ids in [0, 258), a counted target in padding mode equals the next input
   of its row (in packing mode too, except EOS before the next example's
   BOS), n_counted is the number of counted targets, lisa_sft_batch copies
   the right rows, the byte count is what the allocator saw and frees to
   zero. A failure must be LISA_ERR_FORMAT or LISA_ERR_NOMEM with a message
   that names the input and leave nothing allocated. Then allocations are made
   to fail in turn (each must give LISA_ERR_NOMEM cleanly; past 96
   allocations a spread of 96 of them), and the input is loaded again with
   the default allocator, no name and no error struct.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#define BOS 256
#define EOS 257

typedef struct ref_rows {
    int *inputs, *targets;
    size_t n_pos, cap; /* positions written (rows * seq in padding mode) */
    size_t n_examples, n_truncated, n_skipped, n_counted;
    int seq, pack;
} ref_rows;

static void ref_put(ref_rows *r, int input, int target) {
    if (r->n_pos == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->inputs = (int *)realloc(r->inputs, r->cap * sizeof(int));
        r->targets = (int *)realloc(r->targets, r->cap * sizeof(int));
        FUZZ_CHECK(r->inputs && r->targets, "out of memory in the harness");
    }
    r->inputs[r->n_pos] = input;
    r->targets[r->n_pos] = target;
    if (target != LISA_IGNORE) r->n_counted++;
    r->n_pos++;
}

static int ref_tok(const char *p, size_t pl, const char *q, size_t ql, size_t i) {
    if (i == 0) return BOS;
    if (i <= pl) return (unsigned char)p[i - 1];
    if (i <= pl + ql) return (unsigned char)q[i - 1 - pl];
    return EOS;
}

static void ref_example(ref_rows *r, const char *p, size_t pl, const char *q, size_t ql) {
    size_t n_prompt = 1 + pl, whole = n_prompt + ql + 1, cap = (size_t)r->seq + 1, n, i;
    if (!r->pack && n_prompt >= cap) {
        r->n_skipped++;
        return;
    }
    r->n_examples++;
    if (!r->pack && whole > cap) r->n_truncated++;
    n = !r->pack && whole > cap ? cap : whole;
    for (i = 0; i + 1 < n; i++)
        ref_put(r, ref_tok(p, pl, q, ql, i), i + 1 < n_prompt ? LISA_IGNORE : ref_tok(p, pl, q, ql, i + 1));
    if (!r->pack)
        while (r->n_pos % (size_t)r->seq != 0) ref_put(r, EOS, LISA_IGNORE);
}

static int str_is(const char *s, size_t len, const char *want) { return s && len == strlen(want) && memcmp(s, want, len) == 0; }

/* The string member key of object node (the last such member), or NULL. */
static const char *member(const lisa_json *j, int node, const char *key, size_t *len) {
    return lisa_json_string(j, lisa_json_get(j, node, key), len);
}

/* Builds the expected rows; returns 1 when the text is valid data with an example. */
static int ref_load(ref_rows *r, const char *text, size_t len) {
    lisa_json j;
    size_t at;
    int ok = 1;
    if (lisa_json_parse(&j, text, len, "ref", NULL, NULL) == LISA_OK) {
        int root = lisa_json_root(&j), inst = lisa_json_get(&j, root, "instances"), k;
        size_t tl;
        const char *type = member(&j, root, "type", &tl);
        int example = lisa_json_get(&j, root, "prompt") >= 0 || lisa_json_get(&j, root, "messages") >= 0;
        if (inst >= 0 || (lisa_json_get(&j, root, "type") >= 0 && !example)) {
            if (!str_is(type, tl, "text2text") || lisa_json_type_of(&j, inst) != LISA_JSON_ARRAY) ok = 0;
            for (k = 0; ok && k < lisa_json_length(&j, inst); k++) {
                int e = lisa_json_at(&j, inst, k);
                size_t il, ol;
                const char *in = member(&j, e, "input", &il), *out = member(&j, e, "output", &ol);
                if (!in || !out) ok = 0;
                else ref_example(r, in, il, out, ol);
            }
            lisa_json_free(&j);
            return ok && r->n_examples > 0;
        }
    }
    lisa_json_free(&j);
    for (at = 0; at < len && ok;) {
        size_t end = at, k;
        int blank = 1;
        while (end < len && text[end] != '\n') end++;
        for (k = at; k < end; k++)
            if (text[k] != ' ' && text[k] != '\t' && text[k] != '\r') blank = 0;
        if (!blank) {
            if (lisa_json_parse(&j, text + at, end - at, "ref", NULL, NULL) != LISA_OK) {
                ok = 0;
            } else {
                size_t pl, ql;
                const char *p = member(&j, lisa_json_root(&j), "prompt", &pl);
                const char *q = member(&j, lisa_json_root(&j), "response", &ql);
                if (!p || !q) ok = 0;
                else ref_example(r, p, pl, q, ql);
            }
            lisa_json_free(&j);
        }
        at = end + 1;
    }
    return ok && r->n_examples > 0;
}

static void check_rows(const lisa_sft_data *d, const ref_rows *ref, const uint8_t *data) {
    size_t rows, i, n = d->n_rows * (size_t)d->seq, counted = 0;
    int seq = d->seq, b, ins[3 * 64], tgs[3 * 64], s2;
    long long index;
    rows = (ref->n_pos + (size_t)seq - 1) / (size_t)seq;
    FUZZ_CHECK(d->seq == ref->seq, "seq %d, asked for %d", d->seq, ref->seq);
    FUZZ_CHECK(d->n_rows == rows && rows > 0, "%lu rows, expected %lu", (unsigned long)d->n_rows, (unsigned long)rows);
    FUZZ_CHECK(d->n_examples == ref->n_examples && d->n_truncated == ref->n_truncated &&
                   d->n_skipped == ref->n_skipped && d->n_counted == ref->n_counted,
               "examples %lu truncated %lu skipped %lu counted %lu, expected %lu %lu %lu %lu",
               (unsigned long)d->n_examples, (unsigned long)d->n_truncated, (unsigned long)d->n_skipped,
               (unsigned long)d->n_counted, (unsigned long)ref->n_examples, (unsigned long)ref->n_truncated,
               (unsigned long)ref->n_skipped, (unsigned long)ref->n_counted);
    FUZZ_CHECK(d->inputs != NULL && d->targets != NULL, "no rows");
    FUZZ_CHECK(d->bytes == 2 * n * sizeof(int) && d->bytes == fuzz_cnt.live_bytes,
               "data says %lu bytes for %lu rows, the allocator holds %lu", (unsigned long)d->bytes,
               (unsigned long)d->n_rows, (unsigned long)fuzz_cnt.live_bytes);
    for (i = 0; i < n; i++) {
        int x = d->inputs[i], t = d->targets[i];
        int want_x = i < ref->n_pos ? ref->inputs[i] : 0, want_t = i < ref->n_pos ? ref->targets[i] : LISA_IGNORE;
        FUZZ_CHECK(x >= 0 && x < LISA_BYTES_VOCAB, "input %lu is %d", (unsigned long)i, x);
        FUZZ_CHECK(t == LISA_IGNORE || (t >= 0 && t < LISA_BYTES_VOCAB), "target %lu is %d", (unsigned long)i, t);
        FUZZ_CHECK(x == want_x && t == want_t, "row %lu position %lu: input %d target %d, expected %d %d",
                   (unsigned long)(i / (size_t)seq), (unsigned long)(i % (size_t)seq), x, t, want_x, want_t);
        if (t != LISA_IGNORE) {
            counted++;
            if ((i + 1) % (size_t)seq != 0) {
                if (!ref->pack)
                    FUZZ_CHECK(t == d->inputs[i + 1], "padding: target %lu is %d, the next input %d",
                               (unsigned long)i, t, d->inputs[i + 1]);
                else
                    FUZZ_CHECK(t == d->inputs[i + 1] || (t == EOS && (d->inputs[i + 1] == BOS || i + 1 >= ref->n_pos)),
                               "packing: target %lu is %d, the next input %d", (unsigned long)i, t, d->inputs[i + 1]);
            }
        }
    }
    FUZZ_CHECK(counted == d->n_counted, "%lu targets counted, n_counted %lu", (unsigned long)counted,
               (unsigned long)d->n_counted);
    /* lisa_sft_batch: 3 rows of a prefix of seq positions */
    index = (long long)data[0] * 7 + data[1];
    s2 = 1 + (int)(data[0] * 13u % (unsigned)seq);
    lisa_sft_batch(d, index, 3, s2, ins, tgs);
    for (b = 0; b < 3; b++) {
        size_t row = (size_t)(((unsigned long long)index * 3 + (unsigned long long)b) % d->n_rows);
        FUZZ_CHECK(memcmp(ins + b * s2, d->inputs + row * (size_t)seq, (size_t)s2 * sizeof(int)) == 0 &&
                       memcmp(tgs + b * s2, d->targets + row * (size_t)seq, (size_t)s2 * sizeof(int)) == 0,
                   "lisa_sft_batch row %d", b);
    }
}

static void check_failure(lisa_result r, const lisa_error *err, const char *name, lisa_sft_data *d) {
    FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "result %s: \"%s\"", lisa_result_string(r), err->message);
    fuzz_check_failure(r, err, name);
    FUZZ_CHECK(d->inputs == NULL && d->targets == NULL, "failed load left rows behind");
    lisa_sft_free(d); /* harmless */
    fuzz_check_nothing_live("after freeing a failed load");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.jsonl";
    lisa_allocator a = fuzz_allocator();
    lisa_tokenizer tok;
    lisa_sft_data d;
    lisa_error err;
    lisa_result r, r2;
    ref_rows ref;
    const char *text = (const char *)data + 2;
    size_t len;
    int seq, pack, valid;
    long k, n_allocs, step;

    if (size < 2) return 0;
    seq = 1 + data[0] % 64;
    pack = data[1] & 1;
    len = size - 2;
    lisa_tokenizer_init_bytes(&tok);
    memset(&ref, 0, sizeof ref);
    ref.seq = seq;
    ref.pack = pack;
    valid = ref_load(&ref, text, len);

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err);
    r = lisa_sft_load_memory(&d, text, len, name, &tok, seq, pack, &a, &err);
    if (r != LISA_OK) {
        FUZZ_CHECK(!valid, "rejected valid data: \"%s\"", err.message);
        check_failure(r, &err, name, &d);
    } else {
        FUZZ_CHECK(valid, "accepted invalid data (%lu examples)", (unsigned long)d.n_examples);
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with an error message");
        check_rows(&d, &ref, data);
        n_allocs = fuzz_cnt.n_ok;
        lisa_sft_free(&d);
        FUZZ_CHECK(d.bytes == 0 && d.inputs == NULL && d.n_rows == 0, "not cleared by lisa_sft_free");
        fuzz_check_nothing_live("after lisa_sft_free");
        step = n_allocs > 96 ? n_allocs / 96 + 1 : 1;
        for (k = 0; k < n_allocs; k += k < 32 || k >= n_allocs - 32 ? 1 : step) {
            fuzz_alloc_reset(k);
            r2 = lisa_sft_load_memory(&d, text, len, name, &tok, seq, pack, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld of %ld refused: result %s", k, n_allocs,
                       lisa_result_string(r2));
            check_failure(r2, &err, name, &d);
        }
    }
    free(ref.inputs);
    free(ref.targets);
    fuzz_alloc_reset(-1);
    r2 = lisa_sft_load_memory(&d, text, len, NULL, &tok, seq, pack, NULL, NULL);
    FUZZ_CHECK(r2 == r, "result %s without allocator/error, %s with", lisa_result_string(r2), lisa_result_string(r));
    if (r2 == LISA_OK) lisa_sft_free(&d);
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: JSON Lines and LMFlow documents at a few seq/pack settings, and near misses. */

static int write_checked(const char *dir, const char *file, int seq, int pack, const char *text, int valid) {
    static uint8_t buf[8192];
    size_t n = strlen(text);
    lisa_tokenizer tok;
    lisa_sft_data d;
    lisa_result r;
    if (n + 2 > sizeof buf || seq < 1 || seq > 64) {
        fprintf(stderr, "%s: bad seed\n", file);
        return 1;
    }
    buf[0] = (uint8_t)(seq - 1);
    buf[1] = (uint8_t)pack;
    memcpy(buf + 2, text, n);
    lisa_tokenizer_init_bytes(&tok);
    r = lisa_sft_load_memory(&d, text, n, file, &tok, seq, pack, NULL, NULL);
    if (r == LISA_OK) lisa_sft_free(&d);
    if ((r == LISA_OK) != valid) {
        fprintf(stderr, "%s: expected %s, got %s\n", file, valid ? "data" : "an error", lisa_result_string(r));
        return 1;
    }
    LLVMFuzzerTestOneInput(buf, n + 2);
    return fuzz_write_seed(dir, file, buf, n + 2);
}

int main(int argc, char **argv) {
    static const char jsonl[] =
        "{\"prompt\": \"Q: 2+2?\\n\", \"response\": \"A: 4\"}\n"
        "\n"
        "  \t\r\n"
        "{\"response\": \"b\\u00e9\", \"prompt\": \"\"}\r\n"
        "{\"prompt\": \"a long prompt that fills the row\", \"response\": \"x\"}\n"
        "{\"prompt\": \"p\", \"response\": \"a long response that gets cut at the end of the row\", \"extra\": 1}";
    static const char lmflow[] =
        "{\"type\": \"text2text\", \"instances\": [{\"input\": \"Hi\", \"output\": \"Hello!\"},"
        " {\"input\": \"\", \"output\": \"\"}, {\"output\": \"x\", \"input\": \"y\\u0000z\"}]}";
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/sft";
    int bad = 0;
    bad |= write_checked(dir, "jsonl_seq16_pad.bin", 16, 0, jsonl, 1);
    bad |= write_checked(dir, "jsonl_seq7_pack.bin", 7, 1, jsonl, 1);
    bad |= write_checked(dir, "jsonl_seq64_pad.bin", 64, 0, jsonl, 1);
    bad |= write_checked(dir, "lmflow_seq8_pad.bin", 8, 0, lmflow, 1);
    bad |= write_checked(dir, "lmflow_seq1_pack.bin", 1, 1, lmflow, 1);
    bad |= write_checked(dir, "one_line_no_newline.bin", 4, 0, "{\"prompt\":\"a\",\"response\":\"b\"}", 1);
    /* near misses */
    bad |= write_checked(dir, "all_skipped.bin", 2, 0, "{\"prompt\":\"abc\",\"response\":\"d\"}\n", 0);
    bad |= write_checked(dir, "empty.bin", 8, 0, "", 0);
    bad |= write_checked(dir, "missing_response.bin", 8, 0, "{\"prompt\":\"a\"}\n", 0);
    bad |= write_checked(dir, "response_number.bin", 8, 1, "{\"prompt\":\"a\",\"response\":5}\n", 0);
    bad |= write_checked(dir, "bad_second_line.bin", 8, 0, "{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":\n", 0);
    bad |= write_checked(dir, "lmflow_wrong_type.bin", 8, 0,
                         "{\"type\": \"text_only\", \"instances\": [{\"input\": \"a\", \"output\": \"b\"}]}", 0);
    bad |= write_checked(dir, "lmflow_no_instances.bin", 8, 0, "{\"type\": \"text2text\"}", 0);
    bad |= write_checked(dir, "lmflow_instance_not_object.bin", 8, 1,
                         "{\"type\": \"text2text\", \"instances\": [\"a\"]}", 0);
    bad |= write_checked(dir, "lmflow_empty.bin", 8, 1, "{\"type\": \"text2text\", \"instances\": []}", 0);
    return bad;
}
#endif
