/* libFuzzer harness: lisa_tokenizer_load_llama2c_memory (llama2.c tokenizer.bin),
   then lisa_tokenizer_encode, lisa_tokenizer_decode, lisa_tokenizer_piece and
   lisa_tokenizer_find on what loaded.

   An input is a small frame around a tokenizer.bin and a text:
     int32 vocab_size   passed to the loader as is (0: count the tokens)
     uint8 flags        bit 0: encode with EOS; bit 1: encode without BOS
     uint8 text_len     the text is the last min(text_len, left) bytes
     tokenizer.bin      everything in between

   The tokenizer is decoded here independently of lisa.h (int32
   max_token_length in 1..2^20, then per token float32 score, int32 length in
   0..max_token_length, that many bytes; with vocab_size > 0 exactly that many
   tokens and nothing after them, else tokens to the end; at least 3 tokens),
   and the load must succeed exactly when that decoding does (or give
   LISA_ERR_NOMEM, or LISA_ERR_INVALID for a vocab_size outside 0..2^24). A
   failure must name the input and leave nothing allocated. A success must
   match the file: the count, max_token_length, BOS 1 and EOS 2, every piece's
   bytes (NUL-terminated) and score bits, lisa_tokenizer_find of every piece
   giving the lowest id with that piece, the space id, lisa_tokenizer_piece
   (byte pieces "<0xXX>" become the byte), the byte count equal to what the
   allocator saw.

   Then the text is encoded and the ids compared with a reference written here
   after run.c's encoder (rescan every adjacent pair after each merge, best
   score > -1e10 wins, the leftmost on a tie), with the differences lisa.h
   documents (the text is len bytes, NUL included; no dummy prefix without a
   " " piece; the lowest id for a piece held by several). The ids must be in
   range, the size query and a too-small output must agree, encoding with
   every allocation refused must give LISA_ERR_NOMEM cleanly, and decoding
   must give the concatenated pieces. decode(encode(text)) must be the text
   (with BOS) or " " + text (without) when the vocabulary makes that a
   promise: a " " piece, the byte pieces <0x00>..<0xFF> at ids 3..258, no
   other piece holding "<0x", a non-empty BOS piece that no other piece starts
   with, and a text in which "<0x" and the BOS and EOS pieces do not occur.

   Then the tokenizer is freed (to zero), every allocation of the load is made
   to fail in turn (each must give LISA_ERR_NOMEM cleanly), and the input is
   loaded again with the default allocator, no name and no error struct.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#define TOK_FRAME 6
#define TOK_MAX_PIECE (1 << 20)
#define TOK_MAX_VOCAB (1 << 24)
#define REF_MAX_TOKENS 16384 /* an input of 64 KB holds at most 8192 */
#define REF_MAX_TEXT 255

/* The tokenizer.bin as decoded here. */
typedef struct ref_vocab {
    int ok;                     /* the file is valid for the vocab_size given */
    int n, max_len;
    const uint8_t *piece[REF_MAX_TOKENS];
    int len[REF_MAX_TOKENS];
    uint32_t score_bits[REF_MAX_TOKENS];
    int sorted[REF_MAX_TOKENS]; /* ids by (bytes, id) */
    int longest;
} ref_vocab;

static ref_vocab g_v;

static void ref_parse(ref_vocab *v, const uint8_t *p, size_t size, int vocab) {
    size_t pos = 4;
    v->ok = 0;
    v->n = 0;
    v->longest = 0;
    if (vocab < 0 || vocab > TOK_MAX_VOCAB || size < 4) return;
    v->max_len = fuzz_le32(p);
    if (v->max_len <= 0 || v->max_len > TOK_MAX_PIECE) return;
    for (;;) {
        int32_t n;
        if (vocab > 0 && v->n == vocab) break;
        if (pos == size) {
            if (vocab > 0) return;
            break;
        }
        if (size - pos < 8 || v->n == REF_MAX_TOKENS) return;
        n = fuzz_le32(p + pos + 4);
        if (n < 0 || n > v->max_len || (size_t)n > size - pos - 8) return;
        v->score_bits[v->n] = (uint32_t)fuzz_le32(p + pos);
        v->len[v->n] = n;
        v->piece[v->n] = p + pos + 8;
        if (n > v->longest) v->longest = n;
        v->n++;
        pos += 8 + (size_t)n;
    }
    v->ok = pos == size && v->n >= 3;
}

static int bytes_cmp(const uint8_t *a, int na, const uint8_t *b, int nb) {
    int c = memcmp(a, b, (size_t)(na < nb ? na : nb));
    if (c) return c;
    return na < nb ? -1 : na > nb;
}

static int sorted_cmp(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    int c = bytes_cmp(g_v.piece[a], g_v.len[a], g_v.piece[b], g_v.len[b]);
    return c ? c : (a > b) - (a < b);
}

/* The lowest id whose piece is s (n bytes), or -1. */
static int ref_find(const ref_vocab *v, const uint8_t *s, int n) {
    int lo = 0, hi = v->n; /* first sorted entry >= s */
    if (n > v->longest) return -1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, id = v->sorted[mid];
        if (bytes_cmp(v->piece[id], v->len[id], s, n) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < v->n && bytes_cmp(v->piece[v->sorted[lo]], v->len[v->sorted[lo]], s, n) == 0) return v->sorted[lo];
    return -1;
}

static float score_of(const ref_vocab *v, int id) {
    float f;
    memcpy(&f, &v->score_bits[id], 4);
    return f;
}

/* run.c's encoder (see the top). Returns 0 when a byte has no piece and no
   byte token, else the number of ids written (at most len + 3). */
static int ref_encode(const ref_vocab *v, const uint8_t *text, int len, int bos, int eos, int *out,
                      int *n_out) {
    static uint8_t cat[2 * 65536 + 8];
    int ids[REF_MAX_TEXT + 3], n = 0, i, space = ref_find(v, (const uint8_t *)" ", 1);
    if (bos) ids[n++] = 1;
    if (len > 0 && space >= 0) ids[n++] = space;
    for (i = 0; i < len;) {
        int j = i + 1, id;
        while (j < len && (text[j] & 0xC0) == 0x80 && j - i < 4) j++;
        id = ref_find(v, text + i, j - i);
        if (id >= 0) {
            ids[n++] = id;
        } else {
            for (; i < j; i++) {
                if (text[i] + 3 >= v->n) return 0;
                ids[n++] = text[i] + 3;
            }
        }
        i = j;
    }
    for (;;) {
        float best = -1e10f;
        int best_id = -1, best_at = -1;
        for (i = 0; i + 1 < n; i++) {
            int a = ids[i], b = ids[i + 1], id;
            if (v->len[a] + v->len[b] > v->longest) continue;
            memcpy(cat, v->piece[a], (size_t)v->len[a]);
            memcpy(cat + v->len[a], v->piece[b], (size_t)v->len[b]);
            id = ref_find(v, cat, v->len[a] + v->len[b]);
            if (id >= 0 && score_of(v, id) > best) {
                best = score_of(v, id);
                best_id = id;
                best_at = i;
            }
        }
        if (best_at < 0) break;
        ids[best_at] = best_id;
        memmove(ids + best_at + 1, ids + best_at + 2, (size_t)(n - best_at - 2) * sizeof(int));
        n--;
    }
    if (eos) ids[n++] = 2;
    memcpy(out, ids, (size_t)n * sizeof(int));
    *n_out = n;
    return 1;
}

static int is_hex(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_val(uint8_t c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* What a token decodes to (run.c's decode): "<0xXX>" gives the byte, and
   after BOS a leading space goes. Sets *p and returns the length. */
static int ref_piece(const ref_vocab *v, int prev, int id, const uint8_t **out) {
    static uint8_t bytes[256];
    const uint8_t *p = v->piece[id];
    int n = v->len[id], i;
    if (prev == 1 && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    if (n == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && is_hex(p[3]) && is_hex(p[4]) && p[5] == '>') {
        for (i = 0; i < 256; i++) bytes[i] = (uint8_t)i;
        *out = bytes + hex_val(p[3]) * 16 + hex_val(p[4]);
        return 1;
    }
    *out = p;
    return n;
}

static int contains(const uint8_t *s, int n, const uint8_t *sub, int k) {
    int i;
    if (k == 0) return 1;
    for (i = 0; i + k <= n; i++)
        if (memcmp(s + i, sub, (size_t)k) == 0) return 1;
    return 0;
}

/* Does the vocabulary promise decode(encode(text)) == text? See the top. */
static int roundtrip_promised(const ref_vocab *v, const uint8_t *text, int len) {
    static uint8_t spaced[REF_MAX_TEXT + 1];
    static const uint8_t lt0x[3] = {'<', '0', 'x'};
    int id;
    char want[8];
    if (v->n < 259 || ref_find(v, (const uint8_t *)" ", 1) < 0) return 0;
    for (id = 0; id < v->n; id++) {
        if (id >= 3 && id < 259) {
            snprintf(want, sizeof want, "<0x%02X>", id - 3);
            if (v->len[id] != 6 || memcmp(v->piece[id], want, 6) != 0) return 0;
        } else if (contains(v->piece[id], v->len[id], lt0x, 3)) {
            return 0;
        }
        if (id != 1 && v->len[id] >= v->len[1] && memcmp(v->piece[id], v->piece[1], (size_t)v->len[1]) == 0)
            return 0;
    }
    if (v->len[1] == 0) return 0;
    spaced[0] = ' ';
    memcpy(spaced + 1, text, (size_t)len);
    if (contains(spaced, len + 1, lt0x, 3) || contains(spaced, len + 1, v->piece[1], v->len[1]) ||
        (v->len[2] > 0 && contains(spaced, len + 1, v->piece[2], v->len[2])))
        return 0;
    return 1;
}

static void check_tokenizer(const lisa_tokenizer *t, const ref_vocab *v) {
    int id, space;
    FUZZ_CHECK(t->kind == LISA_TOKENIZER_LLAMA2C, "kind %d", (int)t->kind);
    FUZZ_CHECK(t->vocab_size == v->n, "vocab_size %d, the file holds %d tokens", t->vocab_size, v->n);
    FUZZ_CHECK(t->max_token_length == v->max_len, "max_token_length %d, the file says %d", t->max_token_length,
               v->max_len);
    FUZZ_CHECK(t->bos_id == 1 && t->eos_id == 2, "BOS %d EOS %d", t->bos_id, t->eos_id);
    FUZZ_CHECK(t->bytes == fuzz_cnt.live_bytes && t->bytes == t->buffer_size,
               "tokenizer says %lu bytes (buffer %lu), the allocator holds %lu", (unsigned long)t->bytes,
               (unsigned long)t->buffer_size, (unsigned long)fuzz_cnt.live_bytes);
    FUZZ_CHECK(t->offsets[0] == 0, "offsets[0] is %lu", (unsigned long)t->offsets[0]);
    for (id = 0; id < v->n; id++) {
        const char *p = t->text + t->offsets[id];
        size_t n = t->offsets[id + 1] - t->offsets[id] - 1, k;
        uint32_t bits;
        int found, lowest, m;
        const uint8_t *dec;
        const char *q;
        FUZZ_CHECK(n == (size_t)v->len[id] && n <= (size_t)t->max_token_length,
                   "piece %d has %lu bytes, the file says %d", id, (unsigned long)n, v->len[id]);
        FUZZ_CHECK(memcmp(p, v->piece[id], n) == 0 && p[n] == 0, "piece %d differs from the file's", id);
        memcpy(&bits, &t->scores[id], 4);
        FUZZ_CHECK(bits == v->score_bits[id], "score %d: bits %08lx, the file has %08lx", id, (unsigned long)bits,
                   (unsigned long)v->score_bits[id]);
        found = lisa_tokenizer_find(t, p, n);
        lowest = ref_find(v, v->piece[id], v->len[id]);
        FUZZ_CHECK(found == lowest && found >= 0 && found <= id, "find(piece %d) gives %d, the lowest id is %d", id,
                   found, lowest);
        /* lisa_tokenizer_piece: as the file's piece, or the byte of "<0xXX>" */
        q = lisa_tokenizer_piece(t, -1, id, &k);
        FUZZ_CHECK(q != NULL && q[k] == 0, "piece(%d) is NULL or not terminated", id);
        m = ref_piece(v, -1, id, &dec);
        FUZZ_CHECK(k == (size_t)m && memcmp(q, dec, k) == 0, "piece(%d) decodes wrongly", id);
        q = lisa_tokenizer_piece(t, 1, id, &k);
        m = ref_piece(v, 1, id, &dec);
        FUZZ_CHECK(q != NULL && k == (size_t)m && memcmp(q, dec, k) == 0, "piece(%d) after BOS decodes wrongly", id);
    }
    space = ref_find(v, (const uint8_t *)" ", 1);
    FUZZ_CHECK(t->space_id == space, "space_id %d, the lowest \" \" is %d", t->space_id, space);
    FUZZ_CHECK(lisa_tokenizer_piece(t, -1, -1, NULL) == NULL && lisa_tokenizer_piece(t, -1, v->n, NULL) == NULL,
               "piece() of an id outside the vocabulary");
}

/* Encode and decode the text; see the top. */
static void check_coding(const lisa_tokenizer *t, const ref_vocab *v, const uint8_t *text, int len, int bos,
                         int eos) {
    static int ids[REF_MAX_TEXT + 3], want[REF_MAX_TEXT + 3];
    static uint8_t spaced[REF_MAX_TEXT + 1];
    char *out, *expect;
    lisa_error err;
    lisa_result r;
    size_t n_ids = 7777, n2 = 7777, out_len = 7777, len2 = 7777, e_len = 0, i;
    int n_want = 0, i_int, can = ref_encode(v, text, len, bos, eos, want, &n_want);
    long live;
    memset(&err, 'x', sizeof err);
    r = lisa_tokenizer_encode(t, (const char *)text, (size_t)len, bos, eos, ids, (size_t)len + 3, &n_ids, &err);
    if (!can) {
        FUZZ_CHECK(r == LISA_ERR_INVALID && err.code == r && memchr(err.message, 0, sizeof err.message) &&
                       err.message[0],
                   "a byte without a piece or byte token: result %s", lisa_result_string(r));
        FUZZ_CHECK(fuzz_cnt.live_blocks == 1 && fuzz_cnt.live_bytes == t->bytes, "a refused encode leaked");
        return;
    }
    FUZZ_CHECK(r == LISA_OK && err.code == LISA_OK && err.message[0] == 0, "encode: %s \"%.*s\"",
               lisa_result_string(r), (int)sizeof err.message, err.message);
    FUZZ_CHECK(n_ids == (size_t)n_want, "encode gives %lu ids, run.c %d", (unsigned long)n_ids, n_want);
    for (i = 0; i < n_ids; i++) {
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < t->vocab_size, "id %d at %lu out of range", ids[i], (unsigned long)i);
        FUZZ_CHECK(ids[i] == want[i], "id %lu is %d, run.c gives %d", (unsigned long)i, ids[i], want[i]);
    }
    /* the size query, and an output one short */
    r = lisa_tokenizer_encode(t, (const char *)text, (size_t)len, bos, eos, NULL, 0, &n2, NULL);
    FUZZ_CHECK(r == LISA_OK && n2 == n_ids, "size query: %s, %lu ids", lisa_result_string(r), (unsigned long)n2);
    if (n_ids > 0) {
        r = lisa_tokenizer_encode(t, (const char *)text, (size_t)len, bos, eos, ids, n_ids - 1, &n2, &err);
        FUZZ_CHECK(r == LISA_ERR_INVALID && n2 == n_ids && err.code == r, "output one short: %s, %lu",
                   lisa_result_string(r), (unsigned long)n2);
    }
    /* no memory for the scratch */
    live = fuzz_cnt.live_blocks;
    fuzz_cnt.fail_after = fuzz_cnt.n_ok;
    r = lisa_tokenizer_encode(t, (const char *)text, (size_t)len, bos, eos, ids, (size_t)len + 3, &n2, &err);
    FUZZ_CHECK(r == LISA_ERR_NOMEM && err.code == r && fuzz_cnt.live_blocks == live,
               "encode without memory: %s, %ld blocks live", lisa_result_string(r), fuzz_cnt.live_blocks);
    fuzz_cnt.fail_after = -1;
    r = lisa_tokenizer_encode(t, (const char *)text, (size_t)len, bos, eos, ids, (size_t)len + 3, &n_ids, NULL);
    FUZZ_CHECK(r == LISA_OK, "encode again: %s", lisa_result_string(r));

    /* decode: the pieces, BOS and EOS contributing nothing (a byte piece's
       id may hold a long piece in a vocabulary without real byte pieces) */
    for (i_int = 0; i_int < (int)n_ids; i_int++) {
        const uint8_t *p;
        if (ids[i_int] == 1 || ids[i_int] == 2) continue;
        e_len += (size_t)ref_piece(v, i_int > 0 ? ids[i_int - 1] : -1, ids[i_int], &p);
    }
    out = (char *)malloc(e_len + 1);
    expect = (char *)malloc(e_len + 1);
    FUZZ_CHECK(out && expect, "out of memory");
    e_len = 0;
    for (i_int = 0; i_int < (int)n_ids; i_int++) {
        const uint8_t *p;
        int n;
        if (ids[i_int] == 1 || ids[i_int] == 2) continue;
        n = ref_piece(v, i_int > 0 ? ids[i_int - 1] : -1, ids[i_int], &p);
        memcpy(expect + e_len, p, (size_t)n);
        e_len += (size_t)n;
    }
    r = lisa_tokenizer_decode(t, ids, n_ids, NULL, 0, &len2, NULL);
    FUZZ_CHECK(r == LISA_OK && len2 == e_len, "decode size query: %s, %lu bytes, expected %lu",
               lisa_result_string(r), (unsigned long)len2, (unsigned long)e_len);
    memset(out, 'y', e_len + 1);
    r = lisa_tokenizer_decode(t, ids, n_ids, out, e_len + 1, &out_len, &err);
    FUZZ_CHECK(r == LISA_OK && out_len == e_len && out[e_len] == 0 && memcmp(out, expect, e_len) == 0,
               "decode: %s, %lu bytes, expected %lu", lisa_result_string(r), (unsigned long)out_len,
               (unsigned long)e_len);
    r = lisa_tokenizer_decode(t, ids, n_ids, out, e_len, &out_len, &err);
    FUZZ_CHECK(r == LISA_ERR_INVALID && err.code == r, "decode into %lu bytes: %s", (unsigned long)e_len,
               lisa_result_string(r));
    if (roundtrip_promised(v, text, len)) {
        spaced[0] = ' ';
        memcpy(spaced + 1, text, (size_t)len);
        if (bos || len == 0)
            FUZZ_CHECK(e_len == (size_t)len && memcmp(out, text, (size_t)len) == 0,
                       "decode(encode(text)) is not the text (%lu bytes, text %d)", (unsigned long)e_len, len);
        else
            FUZZ_CHECK(e_len == (size_t)len + 1 && memcmp(out, spaced, (size_t)len + 1) == 0,
                       "decode(encode(text)) without BOS is not \" \" + text");
    }
    /* an id outside the vocabulary */
    ids[0] = t->vocab_size;
    r = lisa_tokenizer_decode(t, ids, 1, out, e_len + 1, &out_len, &err);
    FUZZ_CHECK(r == LISA_ERR_INVALID && err.code == r, "decode of id %d: %s", t->vocab_size, lisa_result_string(r));
    free(out);
    free(expect);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.tokenizer";
    lisa_allocator a = fuzz_allocator();
    lisa_tokenizer t;
    lisa_error err;
    lisa_result r, r2;
    const uint8_t *tok, *text;
    size_t tok_size;
    int vocab, flags, text_len, i;
    long k, n_allocs;

    if (size < TOK_FRAME) return 0;
    vocab = fuzz_le32(data);
    flags = data[4];
    text_len = data[5];
    if ((size_t)text_len > size - TOK_FRAME) text_len = (int)(size - TOK_FRAME);
    tok = data + TOK_FRAME;
    tok_size = size - TOK_FRAME - (size_t)text_len;
    text = data + size - text_len;
    ref_parse(&g_v, tok, tok_size, vocab);
    if (g_v.ok) {
        for (i = 0; i < g_v.n; i++) g_v.sorted[i] = i;
        qsort(g_v.sorted, (size_t)g_v.n, sizeof(int), sorted_cmp);
    }

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err); /* no terminator: the loader must write one */
    r = lisa_tokenizer_load_llama2c_memory(&t, tok, tok_size, vocab, name, &a, &err);
    if (r != LISA_OK) {
        fuzz_check_failure(r, &err, name);
        if (vocab < 0 || vocab > TOK_MAX_VOCAB)
            FUZZ_CHECK(r == LISA_ERR_INVALID, "vocab_size %d: result %s", vocab, lisa_result_string(r));
        else
            FUZZ_CHECK(r == LISA_ERR_NOMEM || (r == LISA_ERR_FORMAT && !g_v.ok), "result %s (the file is %s): \"%s\"",
                       lisa_result_string(r), g_v.ok ? "valid" : "invalid", err.message);
        FUZZ_CHECK(t.buffer == NULL && t.bytes == 0, "failed load left a tokenizer behind");
        lisa_tokenizer_free(&t); /* harmless on a failed load */
        fuzz_check_nothing_live("after freeing a failed load");
    } else {
        FUZZ_CHECK(g_v.ok, "loaded a file that is not valid for vocab_size %d", vocab);
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with error \"%.*s\"",
                   (int)sizeof err.message, err.message);
        check_tokenizer(&t, &g_v);
        n_allocs = fuzz_cnt.n_ok;
        check_coding(&t, &g_v, text, text_len, !(flags & 2), flags & 1);
        lisa_tokenizer_free(&t);
        FUZZ_CHECK(t.bytes == 0 && t.buffer == NULL, "tokenizer not cleared by free");
        fuzz_check_nothing_live("after lisa_tokenizer_free");
        lisa_tokenizer_free(&t); /* twice is harmless */
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = lisa_tokenizer_load_llama2c_memory(&t, tok, tok_size, vocab, name, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s", k, lisa_result_string(r2));
            fuzz_check_failure(r2, &err, name);
        }
    }
    r2 = lisa_tokenizer_load_llama2c_memory(&t, tok, tok_size, vocab, NULL, NULL, NULL);
    /* (Only the counting allocator refuses big blocks: its NOMEM may be OK here.) */
    FUZZ_CHECK(r2 == r || (r == LISA_ERR_NOMEM && r2 == LISA_OK), "result %s without allocator/error, %s with",
               lisa_result_string(r2), lisa_result_string(r));
    if (r2 == LISA_OK) lisa_tokenizer_free(&t);
    fuzz_alloc_reset(-1);
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: frames around small tokenizers, valid and near misses. */

typedef struct seed_buf {
    uint8_t b[16384];
    size_t n;
} seed_buf;

static void put32(seed_buf *s, int32_t v) {
    uint32_t u = (uint32_t)v;
    s->b[s->n++] = (uint8_t)u;
    s->b[s->n++] = (uint8_t)(u >> 8);
    s->b[s->n++] = (uint8_t)(u >> 16);
    s->b[s->n++] = (uint8_t)(u >> 24);
}

static void put_token(seed_buf *s, float score, const char *piece, int len) {
    uint32_t bits;
    memcpy(&bits, &score, 4);
    put32(s, (int32_t)bits);
    put32(s, len);
    memcpy(s->b + s->n, piece, (size_t)len);
    s->n += (size_t)len;
}

static void put_str(seed_buf *s, float score, const char *piece) {
    put_token(s, score, piece, (int)strlen(piece));
}

/* The frame: vocab_size, flags, text length; the tokenizer follows. */
static void begin(seed_buf *s, int vocab, int flags, const char *text) {
    s->n = 0;
    put32(s, vocab);
    s->b[s->n++] = (uint8_t)flags;
    s->b[s->n++] = (uint8_t)strlen(text);
}

static void end(seed_buf *s, const char *text) {
    memcpy(s->b + s->n, text, strlen(text));
    s->n += strlen(text);
}

/* unk, BOS, EOS, the 256 byte pieces, " ", letters and a few merges (tied
   pairs as in "aaa", a NaN score and one at -1e10 that never merge, a duplicate). */
static int full_vocab(seed_buf *s) {
    static const char *const merges[] = {" t", "th", "he", " th", "the", " the", "in", "ing", "é", " é",
                                         "日本", "ab", "bc", "ca", "  ", "aa"};
    char buf[8];
    int i, n = 0;
    float nan = 0.0f;
    nan = nan / nan;
    put32(s, 16); /* max_token_length */
    put_str(s, 0.0f, "<unk>"); n++;
    put_str(s, 0.0f, "\n<s>\n"); n++;
    put_str(s, 0.0f, "\n</s>\n"); n++;
    for (i = 0; i < 256; i++, n++) {
        snprintf(buf, sizeof buf, "<0x%02X>", i);
        put_str(s, 0.0f, buf);
    }
    put_str(s, -1.0f, " "); n++;
    for (i = 'a'; i <= 'z'; i++, n++) {
        buf[0] = (char)i;
        buf[1] = 0;
        put_str(s, -2.0f - (float)i, buf);
    }
    for (i = 0; i < (int)(sizeof merges / sizeof merges[0]); i++, n++) put_str(s, (float)(i % 5), merges[i]);
    put_str(s, nan, "xy"); n++;
    put_str(s, -1e10f, "yz"); n++;
    put_str(s, 3.0f, "the"); n++; /* a duplicate: the lower id wins */
    return n;
}

/* run.c's tiny stories vocabulary in miniature, without byte pieces. */
static int small_vocab(seed_buf *s) {
    put32(s, 5);
    put_str(s, 0.0f, "<unk>");
    put_str(s, 0.0f, "<s>");
    put_str(s, 0.0f, "</s>");
    put_str(s, -1.0f, " ");
    put_str(s, -2.0f, "a");
    put_str(s, -3.0f, "b");
    put_str(s, 1.0f, "ab");
    put_str(s, 2.0f, " ab");
    put_token(s, 0.5f, "a\0b", 3);
    return 9;
}

static int write_checked(const char *dir, const char *file, const seed_buf *s, int valid) {
    lisa_tokenizer t;
    int vocab = fuzz_le32(s->b);
    size_t text_len = s->b[5];
    lisa_result r = lisa_tokenizer_load_llama2c_memory(&t, s->b + TOK_FRAME, s->n - TOK_FRAME - text_len, vocab,
                                                       file, NULL, NULL);
    if ((r == LISA_OK) != valid) {
        fprintf(stderr, "%s: expected %s, got %s\n", file, valid ? "a valid tokenizer" : "an error",
                lisa_result_string(r));
        return 1;
    }
    if (r == LISA_OK) lisa_tokenizer_free(&t);
    LLVMFuzzerTestOneInput(s->b, s->n);
    return fuzz_write_seed(dir, file, s->b, s->n);
}

int main(int argc, char **argv) {
    static seed_buf s;
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/tokenizer";
    const char *text;
    int bad = 0, n;
    if (!fuzz_little_endian()) {
        fprintf(stderr, "seeds are written on little-endian hosts only\n");
        return 1;
    }
    /* valid, with byte pieces: round trips are checked */
    text = "the thing in the bcab aaa, \xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 xyz\x01\xff\x80";
    begin(&s, 0, 0, text);
    full_vocab(&s);
    end(&s, text);
    bad |= write_checked(dir, "full_count.bin", &s, 1);
    begin(&s, 0, 3, text); /* EOS, no BOS */
    n = full_vocab(&s);
    end(&s, text);
    s.b[0] = (uint8_t)n;
    s.b[1] = (uint8_t)(n >> 8);
    bad |= write_checked(dir, "full_vocab_given_eos_no_bos.bin", &s, 1);
    text = "";
    begin(&s, 0, 1, text);
    full_vocab(&s);
    end(&s, text);
    bad |= write_checked(dir, "full_empty_text.bin", &s, 1);
    /* valid, no byte pieces: only bytes with a piece encode */
    text = "ab ab a\0b";
    begin(&s, 0, 0, text);
    s.b[5] = 9;
    small_vocab(&s);
    memcpy(s.b + s.n, text, 9);
    s.n += 9;
    bad |= write_checked(dir, "small_count.bin", &s, 1);
    text = "abc"; /* 'c' has no piece and no byte token */
    begin(&s, 9, 0, text);
    small_vocab(&s);
    end(&s, text);
    bad |= write_checked(dir, "small_no_byte_token.bin", &s, 1);
    text = "aaa";
    begin(&s, 3, 0, text); /* exactly 3 tokens, no " " */
    put32(&s, 5);
    put_str(&s, 0.0f, "");
    put_str(&s, 0.0f, "a");
    put_str(&s, 0.0f, "aa");
    end(&s, text);
    bad |= write_checked(dir, "three_tokens.bin", &s, 1);
    /* near misses */
    text = "ab";
    begin(&s, 8, 0, text); /* one token left over */
    small_vocab(&s);
    end(&s, text);
    bad |= write_checked(dir, "vocab_short_by_1.bin", &s, 0);
    begin(&s, 10, 0, text);
    small_vocab(&s);
    end(&s, text);
    bad |= write_checked(dir, "vocab_over_by_1.bin", &s, 0);
    begin(&s, -1, 0, text);
    small_vocab(&s);
    end(&s, text);
    bad |= write_checked(dir, "vocab_negative.bin", &s, 0);
    begin(&s, 0, 0, text);
    small_vocab(&s);
    s.n -= 1;
    end(&s, text);
    bad |= write_checked(dir, "truncated_by_1.bin", &s, 0);
    begin(&s, 0, 0, text);
    put32(&s, 2);
    put_str(&s, 0.0f, "a");
    put_str(&s, 0.0f, "abc");
    put_str(&s, 0.0f, "b");
    end(&s, text);
    bad |= write_checked(dir, "piece_over_max.bin", &s, 0);
    begin(&s, 0, 0, text);
    put32(&s, 2);
    put_str(&s, 0.0f, "a");
    put_str(&s, 0.0f, "b");
    end(&s, text);
    bad |= write_checked(dir, "two_tokens.bin", &s, 0);
    begin(&s, 0, 0, text);
    put32(&s, 0);
    put_str(&s, 0.0f, "a");
    put_str(&s, 0.0f, "b");
    put_str(&s, 0.0f, "c");
    end(&s, text);
    bad |= write_checked(dir, "max_len_0.bin", &s, 0);
    begin(&s, 0, 0, text);
    put32(&s, 4);
    put_str(&s, 0.0f, "a");
    put_str(&s, 0.0f, "b");
    put_str(&s, 0.0f, "c");
    put32(&s, 0); /* a score and no length */
    end(&s, text);
    bad |= write_checked(dir, "trailing_score.bin", &s, 0);
    begin(&s, 0, 0, text);
    put32(&s, 4);
    put_str(&s, 0.0f, "a");
    put32(&s, 0);
    put32(&s, -1);
    put_str(&s, 0.0f, "c");
    end(&s, text);
    bad |= write_checked(dir, "negative_length.bin", &s, 0);
    begin(&s, 0, 0, "");
    s.b[s.n++] = 1;
    bad |= write_checked(dir, "header_short.bin", &s, 0);
    return bad;
}
#endif
