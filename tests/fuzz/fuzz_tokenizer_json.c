/* libFuzzer harness: lisa_tokenizer_load_hf_memory (a Hugging Face
   tokenizer.json with an optional tokenizer_config.json), then encoding,
   decoding and streaming decoding with what loaded.

   The input is split at its first NUL byte: before it the tokenizer.json
   text; after it (up to a second NUL or the end) the tokenizer_config.json
   text. An input without a NUL has no config (NULL). The last 64 bytes of the
   input (or all of it, when shorter) are a text to encode, besides a few
   fixed ones (several scripts, digits, white space, special-token spellings).

   What must hold, from lisa.h's documentation: a failure is a known result
   code whose message names the input (the config's errors too) and leaves
   nothing allocated, and a failed load leaves a tokenizer that
   lisa_tokenizer_free() accepts. A success has a vocabulary of at least one
   token, BOS, EOS, unknown and padding ids that are -1 or in range, a byte
   count equal to what the allocator holds, every id's piece readable and
   lisa_tokenizer_find of a non-empty piece giving an id with those bytes.
   Each text, encoded with and without BOS/EOS as configured, gives ids in
   range, the same number from the size query as from the real call (and too
   small an output is LISA_ERR_INVALID with the number needed), offsets in
   order within the text, and with every further allocation refused either
   the same ids or LISA_ERR_NOMEM. Decoding succeeds, and streaming the same
   ids one at a time gives exactly the decoded bytes. Then the tokenizer is
   freed to nothing, each allocation of the load is made to fail in turn
   (each LISA_ERR_NOMEM, cleanly; for a load of more than 48 allocations, 48
   of them spread evenly), and the input is loaded again with the
   default allocator, no name and no error struct, to the same result.

   Build and run: tests/fuzz/run.sh. Seeds: tools/make_fuzz_tokenizer_json_seeds.py
   writes tests/fuzz/corpus/tokenizer_json/ from the tokenizer fixtures. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#define TAIL 64
#define MAX_IDS 4096 /* a text of at most 255 bytes never needs this many */
#define REPLAY 48

static const char *const TEXTS[] = {
    "Hello world! The quick brown fox, 12345 times.",
    "  leading and trailing  \n\t\n",
    "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x99\x82 \xce\x9a\xce\xb1\xce\xbb\xce\xb7",
    "<s>[INST] hi [/INST]</s><|im_start|>user\nx<|im_end|><|endoftext|><|begin_of_text|>",
    "def f(x):\n    return x**2  # 3.14159\r\n",
    "\xe2\x96\x81\xc4\xa0 \xc4\x8a<0x41>\xff\xfe",
};
#define N_TEXTS ((int)(sizeof TEXTS / sizeof TEXTS[0]))

static int ids_a[MAX_IDS], ids_b[MAX_IDS];
static size_t offs[MAX_IDS];
static char dec[MAX_IDS * 64 + 64], streamed[MAX_IDS * 64 + 64];

static void check_ids_in_range(const lisa_tokenizer *t, const int *ids, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < t->vocab_size, "id %d at %lu outside the vocabulary of %d", ids[i],
                   (unsigned long)i, t->vocab_size);
}

/* Decode and streaming decode of ids agree. */
static void check_decode(const lisa_tokenizer *t, const int *ids, size_t n) {
    lisa_tokenizer_stream s;
    lisa_error err;
    size_t len, used = 0, k, i;
    char piece[LISA__TOK_MAX_PIECE < 4096 ? LISA__TOK_MAX_PIECE : 4096];
    lisa_result r = lisa_tokenizer_decode(t, ids, n, NULL, 0, &len, &err);
    FUZZ_CHECK(r == LISA_OK, "decode size query: %s", err.message);
    FUZZ_CHECK(len < sizeof dec, "decode of %lu ids gives %lu bytes", (unsigned long)n, (unsigned long)len);
    r = lisa_tokenizer_decode(t, ids, n, dec, sizeof dec, &k, &err);
    FUZZ_CHECK(r == LISA_OK && k == len && dec[len] == 0, "decode: %s", err.message);
    lisa_tokenizer_stream_init(&s);
    for (i = 0; i < n; i++) {
        size_t plen = 0;
        const char *p = lisa_tokenizer_piece(t, -1, ids[i], &plen);
        char *out = piece;
        size_t cap = sizeof piece;
        FUZZ_CHECK(p != NULL, "encoding gave id %d, which has no piece", ids[i]);
        if (plen + 4 > cap) out = streamed + used, cap = sizeof streamed - used; /* long pieces: straight in */
        r = lisa_tokenizer_stream_next(t, &s, ids[i], out, cap, &k, &err);
        FUZZ_CHECK(r == LISA_OK, "stream_next of id %d: %s", ids[i], err.message);
        FUZZ_CHECK(used + k <= len, "streaming gives more bytes than decode");
        if (out == piece) memcpy(streamed + used, piece, k);
        used += k;
    }
    k = lisa_tokenizer_stream_flush(&s, piece, sizeof piece);
    FUZZ_CHECK(k <= 3 && used + k == len, "streaming gives %lu bytes, decode %lu", (unsigned long)(used + k),
               (unsigned long)len);
    memcpy(streamed + used, piece, k);
    FUZZ_CHECK(memcmp(streamed, dec, len) == 0, "streaming gives other bytes than decode");
}

static void check_encode(const lisa_tokenizer *t, const char *text, size_t len, int bos, int eos) {
    lisa_error err;
    size_t n, n2, i, last;
    lisa_result r = lisa_tokenizer_encode(t, text, len, bos, eos, NULL, 0, &n, &err);
    if (r == LISA_ERR_INVALID && ((bos && t->bos_id < 0) || (eos && t->eos_id < 0))) return;
    if (r == LISA_ERR_NOMEM) return; /* a large text under the allocator's cap */
    FUZZ_CHECK(r == LISA_OK, "encode size query: %s", err.message);
    FUZZ_CHECK(n <= MAX_IDS, "%lu bytes give %lu ids", (unsigned long)len, (unsigned long)n);
    r = lisa_tokenizer_encode_offsets(t, text, len, bos, eos, ids_a, offs, MAX_IDS, &n2, &err);
    FUZZ_CHECK(r == LISA_OK && n2 == n, "encode gives %lu ids, the size query %lu: %s", (unsigned long)n2,
               (unsigned long)n, err.message);
    check_ids_in_range(t, ids_a, n);
    /* In order, but for the unknown token: `tokenizers` (and so lisa.h) puts a
       pending one after the byte-fallback tokens of the next character. */
    for (i = 0, last = 0; i < n; i++) {
        FUZZ_CHECK(offs[i] <= len && (ids_a[i] == t->unk_id || offs[i] >= last),
                   "offset %lu of token %lu (id %d; text %lu bytes)", (unsigned long)offs[i], (unsigned long)i, ids_a[i],
                   (unsigned long)len);
        if (ids_a[i] != t->unk_id) last = offs[i];
    }
    if (n > 0) {
        r = lisa_tokenizer_encode(t, text, len, bos, eos, ids_b, n - 1, &n2, &err);
        FUZZ_CHECK(r == LISA_ERR_INVALID && n2 == n, "too small an output: %s, %lu needed", lisa_result_string(r),
                   (unsigned long)n2);
    }
    /* No more allocations: the same ids or NOMEM, nothing kept. */
    fuzz_cnt.fail_after = fuzz_cnt.n_ok;
    r = lisa_tokenizer_encode(t, text, len, bos, eos, ids_b, MAX_IDS, &n2, &err);
    FUZZ_CHECK(r == LISA_ERR_NOMEM || (r == LISA_OK && n2 == n && memcmp(ids_a, ids_b, n * sizeof(int)) == 0),
               "encode with allocations refused: %s", lisa_result_string(r));
    fuzz_cnt.fail_after = -1;
    check_decode(t, ids_a, n);
}

static void check_tokenizer(const lisa_tokenizer *t, const uint8_t *tail, size_t tail_len) {
    int id, i;
    FUZZ_CHECK(t->kind == LISA_TOKENIZER_BPE && t->vocab_size > 0, "kind %d, vocabulary %d", (int)t->kind, t->vocab_size);
    FUZZ_CHECK(t->bos_id >= -1 && t->bos_id < t->vocab_size && t->eos_id >= -1 && t->eos_id < t->vocab_size &&
                   t->unk_id >= -1 && t->unk_id < t->vocab_size && t->pad_id >= -1 && t->pad_id < t->vocab_size,
               "bos %d eos %d unk %d pad %d, vocabulary %d", t->bos_id, t->eos_id, t->unk_id, t->pad_id, t->vocab_size);
    FUZZ_CHECK((t->add_bos == 0 || t->bos_id >= 0) && (t->add_eos == 0 || t->eos_id >= 0), "adds a missing BOS/EOS");
    FUZZ_CHECK(t->bytes == fuzz_cnt.live_bytes, "tokenizer counts %lu bytes, the allocator holds %lu",
               (unsigned long)t->bytes, (unsigned long)fuzz_cnt.live_bytes);
    FUZZ_CHECK(t->chat_template == NULL || t->chat_template[t->chat_template_len] == 0, "chat template not terminated");
    for (id = 0; id < t->vocab_size; id++) {
        size_t n, fn;
        const char *p = lisa_tokenizer_piece(t, 0, id, &n), *fp;
        int found;
        if (!p) continue; /* an id no entry gives */
        FUZZ_CHECK(p[n] == 0, "piece of id %d not terminated", id);
        FUZZ_CHECK(lisa_tokenizer_piece(t, -1, id, NULL) != NULL, "id %d has a piece, but none first", id);
        if (n == 0 || (found = lisa_tokenizer_find(t, p, n)) < 0) continue;
        fp = lisa_tokenizer_piece(t, 0, found, &fn);
        FUZZ_CHECK(found <= id && fp && fn == n && memcmp(fp, p, n) == 0, "find of id %d's piece gives %d", id, found);
    }
    FUZZ_CHECK(lisa_tokenizer_piece(t, -1, t->vocab_size, NULL) == NULL && lisa_tokenizer_piece(t, -1, -1, NULL) == NULL,
               "a piece for an id outside the vocabulary");
    for (i = 0; i <= N_TEXTS; i++) {
        const char *s = i < N_TEXTS ? TEXTS[i] : (const char *)tail;
        size_t n = i < N_TEXTS ? strlen(TEXTS[i]) : tail_len;
        check_encode(t, s, n, 0, 0);
        check_encode(t, s, n, t->add_bos, t->add_eos);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.tokenizer.json";
    lisa_allocator a = fuzz_allocator();
    lisa_tokenizer t;
    lisa_error err;
    lisa_result r, r2;
    const char *json = (const char *)data, *cfg = NULL, *nul;
    size_t json_len = size, cfg_len = 0, tail_len = size < TAIL ? size : TAIL;
    long k, n_allocs;

    if ((nul = (const char *)memchr(data, 0, size)) != NULL) {
        const char *end;
        json_len = (size_t)(nul - json);
        cfg = nul + 1;
        cfg_len = size - json_len - 1;
        if ((end = (const char *)memchr(cfg, 0, cfg_len)) != NULL) cfg_len = (size_t)(end - cfg);
    }

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err); /* no terminator: the loader must write one */
    r = lisa_tokenizer_load_hf_memory(&t, json, json_len, cfg, cfg_len, name, &a, &err);
    n_allocs = fuzz_cnt.n_ok;
    if (r != LISA_OK) {
        fuzz_check_failure(r, &err, name);
        lisa_tokenizer_free(&t); /* harmless on a failed load */
        fuzz_check_nothing_live("after freeing a failed load");
    } else {
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with error \"%.*s\"", (int)sizeof err.message,
                   err.message);
        check_tokenizer(&t, data + size - tail_len, tail_len);
        lisa_tokenizer_free(&t);
        FUZZ_CHECK(t.bytes == 0 && t.buffer == NULL, "tokenizer not cleared by free");
        fuzz_check_nothing_live("after lisa_tokenizer_free");
        lisa_tokenizer_free(&t); /* twice is harmless */
        /* every allocation in turn (a spread of REPLAY of them for a big file) */
        for (k = 0; k < n_allocs; k += n_allocs > REPLAY ? n_allocs / REPLAY : 1) {
            fuzz_alloc_reset(k);
            r2 = lisa_tokenizer_load_hf_memory(&t, json, json_len, cfg, cfg_len, name, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s: %s", k, lisa_result_string(r2), err.message);
            fuzz_check_failure(r2, &err, name);
            lisa_tokenizer_free(&t);
        }
    }
    r2 = lisa_tokenizer_load_hf_memory(&t, json, json_len, cfg, cfg_len, NULL, NULL, NULL);
    /* (Only the counting allocator refuses big blocks: its NOMEM may be OK here.) */
    FUZZ_CHECK(r2 == r || (r == LISA_ERR_NOMEM && r2 == LISA_OK), "result %s without allocator/error, %s with",
               lisa_result_string(r2), lisa_result_string(r));
    if (r2 == LISA_OK) lisa_tokenizer_free(&t);
    fuzz_alloc_reset(-1);
    return 0;
}
