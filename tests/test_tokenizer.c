/* Tokenizers and llama2.c version-1 checkpoints.

   - a tokenizer.bin written here (unk, BOS, EOS, the 256 byte tokens, single
     characters and random merges with many tied scores, an unmergeable score,
     a NaN score, a duplicated piece), loaded from a file and from memory
   - encoding checked against a naive reference written here: run.c's loop,
     rescanning every pair after each merge, with its own sorted-array lookup,
     on thousands of random strings mixing ASCII, é, 日本語, emoji, stray and
     truncated UTF-8, NUL bytes; BOS taking part in merging as run.c does
   - encode -> decode gives the text back; BOS/EOS; byte fallback; size
     queries; the byte-level tokenizer
   - speed: 1 MB encoded, time printed
   - malformed tokenizer.bin files: code and a message naming the file; every
     truncation and random corruption from memory, under the sanitizers
   - version-1 checkpoints written by hand with a recognisable value in every
     element, checked tensor by tensor through lisa_model_tensor(); save/load
     round trip; malformed headers and sizes */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char g_dir[256];

static void path_in_dir(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_dir, name);
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (n && fwrite(data, 1, n, f) != n) {
        fclose(f);
        return 0;
    }
    return fclose(f) == 0;
}

static uint64_t g_rng = 12345;
static uint32_t rnd(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 16);
}

/* ------------------------------------------------------------------------- */
/* A vocabulary built here, its file bytes, and the naive reference encoder    */
/* ------------------------------------------------------------------------- */

#define MAXV 2048

typedef struct vocab {
    int n;
    char *piece[MAXV];
    int len[MAXV];
    float score[MAXV];
    int max_len;
    int sorted[MAXV];  /* ids sorted by (bytes, id): the reference's own lookup */
} vocab;

static int vocab_add(vocab *v, const char *s, int n, float score) {
    if (v->n >= MAXV) return -1;
    v->piece[v->n] = (char *)malloc((size_t)n + 1);
    memcpy(v->piece[v->n], s, (size_t)n);
    v->piece[v->n][n] = 0;
    v->len[v->n] = n;
    v->score[v->n] = score;
    if (n > v->max_len) v->max_len = n;
    return v->n++;
}

static void vocab_free(vocab *v) {
    int i;
    for (i = 0; i < v->n; i++) free(v->piece[i]);
    v->n = 0;
}

static const vocab *g_sort_vocab;
static int cmp_bytes(const char *a, int na, const char *b, int nb) {
    int c = memcmp(a, b, (size_t)(na < nb ? na : nb));
    if (c) return c;
    return na < nb ? -1 : na > nb;
}
static int cmp_ids(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y, c;
    c = cmp_bytes(g_sort_vocab->piece[a], g_sort_vocab->len[a], g_sort_vocab->piece[b], g_sort_vocab->len[b]);
    return c ? c : (a > b) - (a < b);
}
static void vocab_sort(vocab *v) {
    int i;
    for (i = 0; i < v->n; i++) v->sorted[i] = i;
    g_sort_vocab = v;
    qsort(v->sorted, (size_t)v->n, sizeof(int), cmp_ids);
}

/* Binary search for the first entry equal to s: the lowest id with that piece. */
static int ref_find(const vocab *v, const char *s, int n) {
    int lo = 0, hi = v->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2, id = v->sorted[mid];
        if (cmp_bytes(v->piece[id], v->len[id], s, n) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < v->n && cmp_bytes(v->piece[v->sorted[lo]], v->len[v->sorted[lo]], s, n) == 0) return v->sorted[lo];
    return -1;
}

/* run.c's encode, naively: out must hold len + 3. */
static int ref_encode(const vocab *v, const unsigned char *text, int len, int bos, int eos, int *out) {
    char buf[4096];
    int n = 0, i, sp;
    if (bos) out[n++] = 1;
    if (len > 0 && (sp = ref_find(v, " ", 1)) >= 0) out[n++] = sp;
    for (i = 0; i < len;) {
        int j = i + 1, id;
        while (j < len && (text[j] & 0xC0) == 0x80 && j - i < 4) j++;
        id = ref_find(v, (const char *)text + i, j - i);
        if (id >= 0) out[n++] = id;
        else
            for (; i < j; i++) out[n++] = text[i] + 3;
        i = j;
    }
    for (;;) {
        float best = -1e10f;
        int best_i = -1, best_id = -1;
        for (i = 0; i + 1 < n; i++) {
            int a = out[i], b = out[i + 1], id;
            if (v->len[a] + v->len[b] > (int)sizeof buf) continue;
            memcpy(buf, v->piece[a], (size_t)v->len[a]);
            memcpy(buf + v->len[a], v->piece[b], (size_t)v->len[b]);
            id = ref_find(v, buf, v->len[a] + v->len[b]);
            if (id >= 0 && v->score[id] > best) {
                best = v->score[id];
                best_i = i;
                best_id = id;
            }
        }
        if (best_i < 0) break;
        out[best_i] = best_id;
        memmove(out + best_i + 1, out + best_i + 2, (size_t)(n - best_i - 2) * sizeof(int));
        n--;
    }
    if (eos) out[n++] = 2;
    return n;
}

static void put32(unsigned char *b, uint32_t u) {
    b[0] = (unsigned char)u;
    b[1] = (unsigned char)(u >> 8);
    b[2] = (unsigned char)(u >> 16);
    b[3] = (unsigned char)(u >> 24);
}

/* tokenizer.bin bytes for v; caller frees. */
static unsigned char *vocab_bytes(const vocab *v, int max_len, size_t *size) {
    size_t n = 4, o = 4;
    unsigned char *b;
    int i;
    for (i = 0; i < v->n; i++) n += 8 + (size_t)v->len[i];
    b = (unsigned char *)malloc(n);
    put32(b, (uint32_t)max_len);
    for (i = 0; i < v->n; i++) {
        uint32_t bits;
        memcpy(&bits, &v->score[i], 4);
        put32(b + o, bits);
        put32(b + o + 4, (uint32_t)v->len[i]);
        memcpy(b + o + 8, v->piece[i], (size_t)v->len[i]);
        o += 8 + (size_t)v->len[i];
    }
    *size = n;
    return b;
}

static const char *const g_chars[] = {
    " ", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p",
    "A", "B", "C", "0", "1", "2", ".", ",", "\n", "\xc3\xa9" /* é */, "\xc3\xb1" /* ñ */,
    "\xe6\x97\xa5" /* 日 */, "\xe6\x9c\xac" /* 本 */, "\xf0\x9f\x98\x80" /* 😀 */};
#define N_CHARS ((int)(sizeof g_chars / sizeof g_chars[0]))

/* Special tokens, byte tokens, single characters, then random merges of
   existing (non-byte) pieces with scores drawn from a few values, so ties
   are common. */
static void build_vocab(vocab *v, int n_merges) {
    char buf[64];
    int i, first_char, tries;
    memset(v, 0, sizeof *v);
    vocab_add(v, "<unk>", 5, 0.0f);
    vocab_add(v, "\n<s>\n", 5, 0.0f);
    vocab_add(v, "\n</s>\n", 6, 0.0f);
    for (i = 0; i < 256; i++) {
        snprintf(buf, sizeof buf, "<0x%02X>", i);
        vocab_add(v, buf, 6, 0.0f);
    }
    first_char = v->n;
    for (i = 0; i < N_CHARS; i++) vocab_add(v, g_chars[i], (int)strlen(g_chars[i]), -1000.0f - (float)i);
    for (tries = 0; v->n < first_char + N_CHARS + n_merges && tries < 100000; tries++) {
        int a = first_char + (int)(rnd() % (unsigned)(v->n - first_char));
        int b = first_char + (int)(rnd() % (unsigned)(v->n - first_char));
        int n = v->len[a] + v->len[b], k, dup = 0;
        float score = -(float)(rnd() % 40);
        if (n > 12) continue;
        memcpy(buf, v->piece[a], (size_t)v->len[a]);
        memcpy(buf + v->len[a], v->piece[b], (size_t)v->len[b]);
        for (k = 0; k < v->n; k++)
            if (v->len[k] == n && memcmp(v->piece[k], buf, (size_t)n) == 0) dup = 1;
        if (dup) continue;
        if (rnd() % 50 == 0) score = -3e10f;   /* never merges: run.c needs > -1e10 */
        if (rnd() % 60 == 0) score = rnd() % 2 ? -0.0f : 0.0f;  /* -0.0 ties 0.0 */
        vocab_add(v, buf, n, score);
    }
    /* A NaN score (never merges) and a duplicate of a merged piece with a
       higher score (the lowest id must still win). */
    vocab_add(v, "ab", 2, (float)NAN);
    vocab_add(v, v->piece[first_char + N_CHARS], v->len[first_char + N_CHARS], 100.0f);
    vocab_sort(v);
}

/* Random text: mostly vocabulary characters, some not (q, z, 語, other
   emoji), stray continuation bytes, truncated sequences, over-long runs of
   continuation bytes, 0xFF and NUL. */
static int random_text(unsigned char *out, int max_len) {
    static const char *const extra[] = {"q", "z", "\xe8\xaa\x9e" /* 語 */, "\xf0\x9f\x8e\x89", "\x80",
                                        "\xe6\x97", "\xff", "\xf0\x9f\x98\x80\x80\x80", "\xc3"};
    int n = 0, target = (int)(rnd() % (unsigned)(max_len + 1));
    while (n < target) {
        const char *s;
        int k;
        if (rnd() % 8 == 0) s = extra[rnd() % (sizeof extra / sizeof extra[0])];
        else if (rnd() % 40 == 0) s = "";
        else s = g_chars[rnd() % N_CHARS];
        k = s[0] ? (int)strlen(s) : 1;  /* "" stands for a NUL byte */
        if (n + k > max_len) break;
        memcpy(out + n, s, (size_t)k);
        n += k;
    }
    return n;
}

/* ------------------------------------------------------------------------- */
/* Tests                                                                      */
/* ------------------------------------------------------------------------- */

static int same_ids(const int *a, size_t na, const int *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(int)) == 0);
}

/* lisa_tokenizer_encode_offsets gives the same ids as lisa_tokenizer_encode,
   and each token's offset is where its piece's bytes begin in the text: the
   running length of the pieces before it, less the dummy-prefix space that
   the text does not hold; BOS at 0 and EOS at the end. */
static int offsets_match_pieces(const lisa_tokenizer *t, const char *text, size_t len, int bos, int eos,
                                const int *want, size_t n_want) {
    int *ids = (int *)malloc((len + 3) * sizeof(int));
    size_t *off = (size_t *)malloc((len + 3) * sizeof(size_t)), n = 0, k;
    long pos = (len > 0 && t->space_id >= 0) ? -1 : 0;
    int ok = lisa_tokenizer_encode_offsets(t, text, len, bos, eos, ids, off, len + 3, &n, NULL) == LISA_OK &&
             same_ids(ids, n, want, n_want);
    for (k = 0; ok && k < n; k++) {
        size_t piece_len = 0;
        if (bos && k == 0) {
            ok = off[k] == 0 && ids[k] == t->bos_id;
            continue;
        }
        if (eos && k == n - 1) {
            ok = off[k] == len && ids[k] == t->eos_id;
            continue;
        }
        ok = off[k] == (size_t)(pos < 0 ? 0 : pos);
        lisa_tokenizer_piece(t, -1, ids[k], &piece_len);
        pos += (long)piece_len;
        if (ok && pos > 0 && off[k] < len)
            ok = memcmp(lisa_tokenizer_piece(t, -1, ids[k], NULL) + (off[k] == 0 && pos - (long)piece_len < 0),
                        text + off[k], (size_t)pos - off[k]) == 0;
    }
    free(ids);
    free(off);
    return ok;
}

static void test_encode_against_reference(const lisa_tokenizer *t, const vocab *v, int n_texts, int max_len,
                                          const char *label) {
    unsigned char *text = (unsigned char *)malloc((size_t)max_len + 1);
    int *ref = (int *)malloc(((size_t)max_len + 3) * sizeof(int));
    int *got = (int *)malloc(((size_t)max_len + 3) * sizeof(int));
    char *back = (char *)malloc((size_t)max_len * 8 + 64);
    int i, bad = 0, bad_rt = 0, bad_off = 0, merged = 0;
    for (i = 0; i < n_texts; i++) {
        int len = random_text(text, max_len), bos = (int)(rnd() % 2), eos = (int)(rnd() % 2), nr;
        size_t ng = 0, nq = 0, nb = 0;
        lisa_error e;
        lisa_result r = lisa_tokenizer_encode(t, (const char *)text, (size_t)len, bos, eos, got, (size_t)len + 3, &ng, &e);
        nr = ref_encode(v, text, len, bos, eos, ref);
        if (r != LISA_OK || !same_ids(got, ng, ref, (size_t)nr)) {
            if (bad++ < 3) fprintf(stderr, "%s: text %d (len %d): got %d ids (r %d), reference %d\n",
                                   label, i, len, (int)ng, (int)r, nr);
            continue;
        }
        if ((int)ng < len + bos + eos + (len > 0)) merged++;
        if (!offsets_match_pieces(t, (const char *)text, (size_t)len, bos, eos, got, ng)) bad_off++;
        /* size query gives the same count */
        lisa_tokenizer_encode(t, (const char *)text, (size_t)len, bos, eos, NULL, 0, &nq, NULL);
        if (nq != ng) bad++;
        /* round trip: with BOS the dummy prefix is dropped again */
        if (lisa_tokenizer_decode(t, got, ng, back, (size_t)max_len * 8 + 64, &nb, NULL) != LISA_OK) {
            bad_rt++;
            continue;
        }
        if (bos || len == 0) {
            if (nb != (size_t)len || memcmp(back, text, (size_t)len) != 0 || back[nb] != 0) bad_rt++;
        } else if (nb != (size_t)len + 1 || back[0] != ' ' || memcmp(back + 1, text, (size_t)len) != 0) {
            bad_rt++;
        }
    }
    CHECK(bad == 0, "%s: %d of %d random texts encode differently from the reference", label, bad, n_texts);
    CHECK(bad_rt == 0, "%s: %d of %d random texts do not decode back", label, bad_rt, n_texts);
    CHECK(bad_off == 0, "%s: %d of %d random texts get offsets that do not follow their tokens' pieces", label,
          bad_off, n_texts);
    CHECK(merged > n_texts / 4, "%s: merges happen in only %d of %d texts", label, merged, n_texts);
    free(text);
    free(ref);
    free(got);
    free(back);
}

static void test_llama2c_tokenizer(void) {
    vocab v, v2;
    lisa_tokenizer t, tm, t0, t2;
    lisa_error e;
    unsigned char *bin;
    size_t size, n = 0, len = 0;
    char path[512];
    int ids[64], ref[64], nr, i;
    const char *p;
    lisa_result r;

    build_vocab(&v, 700);
    bin = vocab_bytes(&v, v.max_len, &size);
    path_in_dir(path, sizeof path, "tokenizer.bin");
    CHECK(write_file(path, bin, size), "write %s", path);

    r = lisa_tokenizer_load_llama2c(&t, path, v.n, NULL, &e);
    CHECK(r == LISA_OK, "load with vocab_size: %s", e.message);
    if (r != LISA_OK) {
        free(bin);
        vocab_free(&v);
        return;
    }
    CHECK(t.kind == LISA_TOKENIZER_LLAMA2C && t.vocab_size == v.n && t.bos_id == 1 && t.eos_id == 2,
          "kind %d vocab %d bos %d eos %d", (int)t.kind, t.vocab_size, t.bos_id, t.eos_id);
    CHECK(t.max_token_length == v.max_len, "max_token_length %d, expected %d", t.max_token_length, v.max_len);
    CHECK(t.space_id == 259, "space_id %d", t.space_id);
    CHECK(t.bytes == t.buffer_size && t.bytes > 0, "bytes %lu", (unsigned long)t.bytes);
    CHECK(lisa_tokenizer_load_llama2c(&t0, path, 0, NULL, &e) == LISA_OK && t0.vocab_size == v.n,
          "load counting tokens: %s (%d)", e.message, t0.vocab_size);
    lisa_tokenizer_free(&t0);
    CHECK(lisa_tokenizer_load_llama2c_memory(&tm, bin, size, 0, "mem", NULL, &e) == LISA_OK,
          "load from memory: %s", e.message);

    /* Scores and pieces as written; lookups give the lowest id. */
    {
        int bad = 0;
        for (i = 0; i < v.n; i++) {
            size_t k;
            const char *s = lisa_tokenizer_piece(&t, -1, i, &k);
            int is_byte = i >= 3 && i < 259;
            if (memcmp(&t.scores[i], &v.score[i], 4) != 0) bad++;
            if (is_byte ? (k != 1 || (unsigned char)s[0] != i - 3 || s[1] != 0)
                        : (k != (size_t)v.len[i] || memcmp(s, v.piece[i], k) != 0 || s[k] != 0))
                bad++;
            if (lisa_tokenizer_find(&t, v.piece[i], (size_t)v.len[i]) != ref_find(&v, v.piece[i], v.len[i])) bad++;
        }
        CHECK(bad == 0, "%d mismatches in pieces, scores or lookups", bad);
        CHECK(lisa_tokenizer_find(&t, v.piece[v.n - 1], (size_t)v.len[v.n - 1]) == 259 + N_CHARS,
              "a duplicated piece finds its lowest id");
        CHECK(lisa_tokenizer_find(&t, "qq", 2) == -1 && lisa_tokenizer_find(&t, "", 0) == -1, "absent pieces give -1");
    }

    /* Fixed cases. */
    CHECK(lisa_tokenizer_encode(&t, "", 0, 0, 0, ids, 64, &n, &e) == LISA_OK && n == 0, "empty text: %d ids", (int)n);
    CHECK(lisa_tokenizer_encode(&t, "", 0, 1, 1, ids, 64, &n, &e) == LISA_OK && n == 2 && ids[0] == 1 && ids[1] == 2,
          "empty text with BOS and EOS: no dummy prefix");
    CHECK(lisa_tokenizer_encode(&t, "q", 1, 0, 0, ids, 64, &n, &e) == LISA_OK && n == 2 && ids[0] == 259 &&
              ids[1] == 'q' + 3,
          "byte fallback: \"q\" -> [space, <0x71>], got %d ids [%d %d]", (int)n, ids[0], ids[1]);
    CHECK(lisa_tokenizer_encode(&t, "\xe8\xaa\x9e", 3, 1, 1, ids, 64, &n, &e) == LISA_OK && n == 6 &&
              ids[0] == 1 && ids[2] == 0xe8 + 3 && ids[3] == 0xaa + 3 && ids[4] == 0x9e + 3 && ids[5] == 2,
          "byte fallback for a 3-byte character");
    {
        const char nul[3] = {'a', 0, 'b'};
        CHECK(lisa_tokenizer_encode(&t, nul, 3, 1, 0, ids, 64, &n, &e) == LISA_OK &&
                  lisa_tokenizer_decode(&t, ids, n, (char *)ref, sizeof ref, &len, &e) == LISA_OK && len == 3 &&
                  memcmp(ref, nul, 3) == 0,
              "a NUL byte is text");
    }
    nr = ref_encode(&v, (const unsigned char *)"abc abc", 7, 1, 1, ref);
    CHECK(lisa_tokenizer_encode(&t, "abc abc", 7, 1, 1, ids, 64, &n, &e) == LISA_OK && same_ids(ids, n, ref, (size_t)nr),
          "\"abc abc\" matches the reference");
    /* Output too small: the needed count comes back. */
    r = lisa_tokenizer_encode(&t, "abc abc", 7, 1, 1, ids, (size_t)nr - 1, &n, &e);
    CHECK(r == LISA_ERR_INVALID && n == (size_t)nr && strstr(e.message, "needs"), "short output: %d %s", (int)r, e.message);
    CHECK(lisa_tokenizer_encode(&t, NULL, 3, 0, 0, ids, 64, &n, &e) == LISA_ERR_INVALID, "NULL text");
    /* Pieces: the space after BOS goes, byte tokens become bytes. */
    p = lisa_tokenizer_piece(&t, 1, 259, &len);
    CHECK(p && len == 0 && p[0] == 0, "space after BOS is dropped");
    p = lisa_tokenizer_piece(&t, 5, 259, &len);
    CHECK(p && len == 1 && p[0] == ' ', "space elsewhere stays");
    p = lisa_tokenizer_piece(&t, 1, 3 + 0xE6, &len);
    CHECK(p && len == 1 && (unsigned char)p[0] == 0xE6, "<0xE6> decodes to the byte");
    CHECK(lisa_tokenizer_piece(&t, -1, v.n, &len) == NULL && len == 0 && lisa_tokenizer_piece(&t, -1, -1, NULL) == NULL,
          "ids outside the vocabulary give NULL");
    ids[0] = 1;
    ids[1] = v.n;
    CHECK(lisa_tokenizer_decode(&t, ids, 2, (char *)ref, sizeof ref, &len, &e) == LISA_ERR_INVALID &&
              strstr(e.message, "outside"),
          "decode of a bad id: %s", e.message);
    ids[1] = 259 + 1;  /* "a" */
    CHECK(lisa_tokenizer_decode(&t, ids, 2, (char *)ref, 1, &len, &e) == LISA_ERR_INVALID && len == 1,
          "decode into too small a buffer");
    CHECK(lisa_tokenizer_decode(&t, ids, 2, NULL, 0, &len, &e) == LISA_OK && len == 1, "decode size query");

    test_encode_against_reference(&t, &v, 3000, 80, "file");
    test_encode_against_reference(&tm, &v, 300, 600, "memory, longer");
    test_encode_against_reference(&t, &v, 4, 4000, "long");

    /* Long runs of one piece: the tie-break picks the leftmost pair each time. */
    {
        static unsigned char run[700];
        int *got = (int *)malloc(sizeof(int) * 710), *want = (int *)malloc(sizeof(int) * 710), k, bad = 0;
        for (k = 1; k < 700; k += 37) {
            memset(run, 'a', (size_t)k);
            lisa_tokenizer_encode(&t, (const char *)run, (size_t)k, 0, 0, got, 710, &n, NULL);
            nr = ref_encode(&v, run, k, 0, 0, want);
            if (!same_ids(got, n, want, (size_t)nr)) bad++;
        }
        CHECK(bad == 0, "runs of 'a': %d lengths differ from the reference", bad);
        free(got);
        free(want);
    }

    /* BOS takes part in merging, as in run.c. */
    v2 = v;
    for (i = 0; i < v.n; i++) {
        v2.piece[i] = (char *)malloc((size_t)v.len[i] + 1);
        memcpy(v2.piece[i], v.piece[i], (size_t)v.len[i] + 1);
    }
    vocab_add(&v2, "\n<s>\n ", 6, 50.0f);
    vocab_sort(&v2);
    free(bin);
    bin = vocab_bytes(&v2, v2.max_len, &size);
    CHECK(lisa_tokenizer_load_llama2c_memory(&t2, bin, size, v2.n, "v2", NULL, &e) == LISA_OK, "%s", e.message);
    nr = ref_encode(&v2, (const unsigned char *)"hi", 2, 1, 0, ref);
    CHECK(lisa_tokenizer_encode(&t2, "hi", 2, 1, 0, ids, 64, &n, &e) == LISA_OK && same_ids(ids, n, ref, (size_t)nr) &&
              ids[0] == v2.n - 1,
          "BOS merges with the dummy prefix when the vocabulary says so");
    lisa_tokenizer_free(&t2);
    vocab_free(&v2);

    /* Speed: 1 MB of text. */
    {
        size_t big = (size_t)1 << 20, o = 0;
        char *text = (char *)malloc(big);
        int *out = (int *)malloc((big + 3) * sizeof(int));
        clock_t c0;
        double secs;
        while (o < big) {
            /* pieces of the vocabulary, so that merges are plentiful */
            int id = 259 + (int)(rnd() % (unsigned)(v.n - 259));
            int space = rnd() % 4 == 0;
            const char *s = space ? " " : v.piece[id];
            size_t k = space ? 1 : (size_t)v.len[id];
            if (o + k > big) break;
            memcpy(text + o, s, k);
            o += k;
        }
        c0 = clock();
        r = lisa_tokenizer_encode(&t, text, o, 1, 1, out, big + 3, &n, &e);
        secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
        printf("encode: %.0f bytes -> %lu ids in %.3f s\n", (double)o, (unsigned long)n, secs);
        CHECK(r == LISA_OK && n > 2 && n < o / 2, "1 MB encodes (%d, %lu ids)", (int)r, (unsigned long)n);
        CHECK(secs < 3.0, "1 MB took %.2f s to encode", secs);
        {
            char *back = (char *)malloc(o + 1);
            CHECK(lisa_tokenizer_decode(&t, out, n, back, o + 1, &len, &e) == LISA_OK && len == o &&
                      memcmp(back, text, o) == 0,
                  "1 MB round trip");
            free(back);
        }
        free(text);
        free(out);
    }

    lisa_tokenizer_free(&t);
    lisa_tokenizer_free(&tm);
    CHECK(t.bytes == 0 && tm.bytes == 0, "free returns every byte");
    lisa_tokenizer_free(&t);  /* twice is harmless */
    free(bin);
    vocab_free(&v);
}

static void test_byte_tokenizer(void) {
    lisa_tokenizer t;
    unsigned char text[300];
    int ids[310], i, bad = 0;
    size_t n, len;
    char back[320];
    const char *p;
    lisa_tokenizer_init_bytes(&t);
    CHECK(t.kind == LISA_TOKENIZER_BYTES && t.vocab_size == 258 && t.bos_id == 256 && t.eos_id == 257 && t.bytes == 0,
          "byte tokenizer: vocab %d bos %d eos %d", t.vocab_size, t.bos_id, t.eos_id);
    for (i = 0; i < 200; i++) {
        int k, len_i = (int)(rnd() % 300), bos = i % 2, eos = (i / 2) % 2;
        for (k = 0; k < len_i; k++) text[k] = (unsigned char)rnd();
        if (lisa_tokenizer_encode(&t, (const char *)text, (size_t)len_i, bos, eos, ids, 310, &n, NULL) != LISA_OK ||
            n != (size_t)(len_i + bos + eos)) {
            bad++;
            continue;
        }
        if (bos && ids[0] != 256) bad++;
        if (eos && ids[n - 1] != 257) bad++;
        for (k = 0; k < len_i; k++)
            if (ids[bos + k] != text[k]) bad++;
        if (lisa_tokenizer_decode(&t, ids, n, back, sizeof back, &len, NULL) != LISA_OK || len != (size_t)len_i ||
            memcmp(back, text, len) != 0)
            bad++;
    }
    CHECK(bad == 0, "byte tokenizer: %d bad round trips", bad);
    p = lisa_tokenizer_piece(&t, -1, 0, &len);
    CHECK(p && len == 1 && p[0] == 0, "byte 0 decodes to a NUL byte");
    p = lisa_tokenizer_piece(&t, 256, 200, &len);
    CHECK(p && len == 1 && (unsigned char)p[0] == 200 && p[1] == 0, "byte 200 after BOS");
    p = lisa_tokenizer_piece(&t, -1, 257, &len);
    CHECK(p && len == 0 && p[0] == 0, "EOS decodes to nothing");
    CHECK(lisa_tokenizer_piece(&t, -1, 258, &len) == NULL, "258 is outside");
    CHECK(lisa_tokenizer_find(&t, "A", 1) == 'A' && lisa_tokenizer_find(&t, "AB", 2) == -1, "byte find");
    CHECK(lisa_tokenizer_encode(&t, "abc", 3, 1, 1, ids, 4, &n, NULL) == LISA_ERR_INVALID && n == 5, "short output");
    CHECK(lisa_tokenizer_encode(&t, "abc", 3, 1, 1, NULL, 0, &n, NULL) == LISA_OK && n == 5, "size query");
    lisa_tokenizer_free(&t);
}

/* ------------------------------------------------------------------------- */
/* Malformed tokenizer files                                                  */
/* ------------------------------------------------------------------------- */

/* A buffer of little-endian words and bytes. */
typedef struct buf {
    unsigned char b[8192];
    size_t n;
} buf;
static void b32(buf *b, uint32_t u) {
    put32(b->b + b->n, u);
    b->n += 4;
}
static void bstr(buf *b, const char *s, size_t n) {
    memcpy(b->b + b->n, s, n);
    b->n += n;
}
static void btok(buf *b, float score, const char *s) {
    uint32_t bits;
    memcpy(&bits, &score, 4);
    b32(b, bits);
    b32(b, (uint32_t)strlen(s));
    bstr(b, s, strlen(s));
}
static void small_tok(buf *b) {
    b->n = 0;
    b32(b, 8);
    btok(b, 0, "<unk>");
    btok(b, 0, "<s>");
    btok(b, 0, "</s>");
    btok(b, -1, " ");
    btok(b, -2, "a");
}

static void expect_tok_error(const buf *b, int vocab, lisa_result want, const char *phrase, const char *label) {
    char path[512];
    lisa_tokenizer t;
    lisa_error e;
    lisa_result r;
    path_in_dir(path, sizeof path, "bad_tokenizer.bin");
    write_file(path, b->b, b->n);
    memset(&e, 0, sizeof e);
    r = lisa_tokenizer_load_llama2c(&t, path, vocab, NULL, &e);
    CHECK(r == want && e.code == want && strstr(e.message, path) && strstr(e.message, phrase),
          "%s: got %d \"%s\", want %d with \"%s\"", label, (int)r, e.message, (int)want, phrase);
    CHECK(t.buffer == NULL && t.bytes == 0, "%s: nothing held after failure", label);
    lisa_tokenizer_free(&t);
}

static void test_bad_tokenizer_files(void) {
    buf b;
    char path[512];
    lisa_tokenizer t;
    lisa_error e;
    size_t cut, base;
    int i, bad = 0, ok = 0;

    b.n = 0;
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "truncated header", "empty file");
    b.n = 3;
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "truncated header", "3-byte file");
    small_tok(&b);
    put32(b.b, 0);
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "max_token_length 0 is out of range", "max_token_length 0");
    put32(b.b, (uint32_t)-5);
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "max_token_length -5", "negative max_token_length");
    put32(b.b, 0x7fffffffu);
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "max_token_length 2147483647", "huge max_token_length");
    small_tok(&b);
    put32(b.b, 4);
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "token 0 has length 5, more than max_token_length 4", "piece too long");
    small_tok(&b);
    put32(b.b + 4 + 4, (uint32_t)-1);
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "token 0 has negative length -1", "negative length");
    small_tok(&b);
    put32(b.b + 4 + 4, 0x7fffffffu);
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "token 0 has length 2147483647, more than max_token_length", "huge length");
    small_tok(&b);
    put32(b.b, 1 << 20);
    put32(b.b + 4 + 4, 1 << 20);
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "truncated: token 0 has length 1048576", "length past the end");
    small_tok(&b);
    b.n -= 1;
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "truncated: token 4 has length 1, 0 bytes are left", "last piece cut");
    small_tok(&b);
    b.n -= 7;
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "truncated: token 4", "cut in score and length");
    small_tok(&b);
    expect_tok_error(&b, 6, LISA_ERR_FORMAT, "holds 5 tokens, vocab_size 6 was expected", "vocab too large");
    expect_tok_error(&b, 4, LISA_ERR_FORMAT, "9 bytes of trailing data after 4 tokens", "vocab too small");
    expect_tok_error(&b, -1, LISA_ERR_INVALID, "vocab_size -1 is out of range", "negative vocab_size");
    b.n = 0;
    b32(&b, 8);
    btok(&b, 0, "<unk>");
    btok(&b, 0, "<s>");
    expect_tok_error(&b, 0, LISA_ERR_FORMAT, "holds 2 tokens; at least 3", "two tokens");

    path_in_dir(path, sizeof path, "no_such_tokenizer.bin");
    CHECK(lisa_tokenizer_load_llama2c(&t, path, 0, NULL, &e) == LISA_ERR_IO && strstr(e.message, path) &&
              strstr(e.message, "cannot open"),
          "missing file: %s", e.message);
    CHECK(lisa_tokenizer_load_llama2c(&t, g_dir, 0, NULL, &e) == LISA_ERR_IO && strstr(e.message, g_dir),
          "a directory: %s", e.message);

    /* Small vocabulary without byte tokens: a byte with no piece is an error. */
    small_tok(&b);
    CHECK(lisa_tokenizer_load_llama2c_memory(&t, b.b, b.n, 5, NULL, NULL, &e) == LISA_OK, "%s", e.message);
    {
        int ids[16];
        size_t n;
        CHECK(lisa_tokenizer_encode(&t, "aa", 2, 1, 0, ids, 16, &n, &e) == LISA_OK && n == 4 && ids[1] == 3 &&
                  ids[2] == 4 && ids[3] == 4,
              "tiny vocabulary encodes its own pieces");
        CHECK(lisa_tokenizer_encode(&t, "ab", 2, 1, 0, ids, 16, &n, &e) == LISA_ERR_INVALID &&
                  strstr(e.message, "byte 0x62 at offset 1"),
              "no byte token: %s", e.message);
    }
    lisa_tokenizer_free(&t);
    CHECK(lisa_tokenizer_load_llama2c_memory(&t, NULL, 10, 0, NULL, NULL, &e) == LISA_ERR_FORMAT &&
              strstr(e.message, "<memory>"),
          "NULL data: %s", e.message);

    /* Every truncation, with and without the count. */
    small_tok(&b);
    base = b.n;
    for (cut = 0; cut < base; cut++) {
        lisa_result r1 = lisa_tokenizer_load_llama2c_memory(&t, b.b, cut, 5, "cut", NULL, &e);
        lisa_result r0;
        if (r1 != LISA_ERR_FORMAT || !strstr(e.message, "cut")) bad++;
        lisa_tokenizer_free(&t);
        r0 = lisa_tokenizer_load_llama2c_memory(&t, b.b, cut, 0, "cut", NULL, &e);
        if (r0 == LISA_OK) ok++;
        else if (r0 != LISA_ERR_FORMAT) bad++;
        lisa_tokenizer_free(&t);
    }
    CHECK(bad == 0, "%d truncations were not format errors", bad);
    CHECK(ok == 2, "exactly two truncations (3 and 4 whole tokens) load without a count: %d", ok);

    /* Random corruption: never a crash; whatever loads encodes safely. */
    bad = 0;
    for (i = 0; i < 3000; i++) {
        buf c;
        int k, flips = 1 + (int)(rnd() % 4);
        small_tok(&c);
        for (k = 0; k < flips; k++) c.b[rnd() % c.n] = (unsigned char)rnd();
        if (rnd() % 3 == 0) c.n -= rnd() % c.n;
        if (lisa_tokenizer_load_llama2c_memory(&t, c.b, c.n, (int)(rnd() % 7), "fuzz", NULL, &e) == LISA_OK) {
            int ids[40];
            size_t n;
            lisa_result r = lisa_tokenizer_encode(&t, "a a aa<s>", 9, 1, 1, ids, 40, &n, &e);
            if (r == LISA_OK) {
                size_t j;
                for (j = 0; j < n; j++)
                    if (ids[j] < 0 || ids[j] >= t.vocab_size) bad++;
            } else if (r != LISA_ERR_INVALID) {
                bad++;
            }
        } else if (!strstr(e.message, "fuzz")) {
            bad++;
        }
        lisa_tokenizer_free(&t);
    }
    CHECK(bad == 0, "random corruption: %d bad outcomes", bad);
}

/* ------------------------------------------------------------------------- */
/* llama2.c version-1 checkpoints                                             */
/* ------------------------------------------------------------------------- */

/* File order written out independently of the library. */
typedef struct v1_entry {
    char name[40];
    size_t n;
} v1_entry;

static int v1_order(const lisa_config *c, v1_entry *e) {
    static const char *const mats[7] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};
    size_t D = (size_t)c->dim, H = (size_t)c->hidden_dim, KV = D / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    size_t sizes[7];
    int k = 0, l, i;
    sizes[0] = D * D;
    sizes[1] = KV * D;
    sizes[2] = KV * D;
    sizes[3] = D * D;
    sizes[4] = H * D;
    sizes[5] = D * H;
    sizes[6] = H * D;
    for (l = 0; l < c->n_layers; l++, k++) {
        snprintf(e[k].name, sizeof e[k].name, "layers.%d.attn_norm", l);
        e[k].n = D;
    }
    for (l = 0; l < c->n_layers; l++, k++) {
        snprintf(e[k].name, sizeof e[k].name, "layers.%d.mlp_norm", l);
        e[k].n = D;
    }
    strcpy(e[k].name, "final_norm");
    e[k++].n = D;
    strcpy(e[k].name, "embed");
    e[k++].n = (size_t)c->vocab_size * D;
    for (i = 0; i < 7; i++)
        for (l = 0; l < c->n_layers; l++, k++) {
            snprintf(e[k].name, sizeof e[k].name, "layers.%d.%s", l, mats[i]);
            e[k].n = sizes[i];
        }
    if (!c->tied_head) {
        strcpy(e[k].name, "head");
        e[k++].n = (size_t)c->vocab_size * D;
    }
    return k;
}

/* A v1 file with element j of file tensor k equal to k * 1000 + j. */
static unsigned char *v1_file(const lisa_config *c, size_t *size) {
    v1_entry e[128];
    int n = v1_order(c, e), k;
    size_t total = 256, o = 256, j;
    unsigned char *b;
    for (k = 0; k < n; k++) total += e[k].n * 4;
    b = (unsigned char *)calloc(1, total);
    put32(b, 0x616b3432u);
    put32(b + 4, 1);
    put32(b + 8, (uint32_t)c->dim);
    put32(b + 12, (uint32_t)c->hidden_dim);
    put32(b + 16, (uint32_t)c->n_layers);
    put32(b + 20, (uint32_t)c->n_heads);
    put32(b + 24, (uint32_t)c->n_kv_heads);
    put32(b + 28, (uint32_t)c->vocab_size);
    put32(b + 32, (uint32_t)c->max_seq_len);
    b[36] = (unsigned char)c->tied_head;
    for (k = 0; k < n; k++)
        for (j = 0; j < e[k].n; j++, o += 4) {
            float f = (float)(k * 1000 + (int)j);
            uint32_t bits;
            memcpy(&bits, &f, 4);
            put32(b + o, bits);
        }
    *size = total;
    return b;
}

static void check_v1_tensors(const lisa_model *m, const lisa_config *c, const char *label) {
    v1_entry e[128];
    int n = v1_order(c, e), i, k, bad = 0, found = 0;
    CHECK(lisa_model_n_tensors(m) == n, "%s: %d tensors, file order has %d", label, lisa_model_n_tensors(m), n);
    for (i = 0; i < lisa_model_n_tensors(m); i++) {
        lisa_param p = lisa_model_tensor(m, i);
        size_t j, numel = lisa_tensor_numel(&p.tensor);
        for (k = 0; k < n; k++)
            if (strcmp(e[k].name, p.name) == 0) break;
        if (k == n || e[k].n != numel) {
            bad++;
            continue;
        }
        found++;
        for (j = 0; j < numel; j++)
            if (p.tensor.data[j] != (float)(k * 1000 + (int)j)) {
                bad++;
                break;
            }
    }
    CHECK(bad == 0 && found == n, "%s: %d tensors misplaced, %d of %d found", label, bad, found, n);
}

static void test_v1(void) {
    lisa_config cs[2];
    int ci;
    memset(cs, 0, sizeof cs);
    cs[0].dim = 8;
    cs[0].hidden_dim = 12;
    cs[0].n_layers = 2;
    cs[0].n_heads = 2;
    cs[0].n_kv_heads = 1;
    cs[0].vocab_size = 11;
    cs[0].max_seq_len = 16;
    cs[1] = cs[0];
    cs[1].n_layers = 3;
    cs[1].n_kv_heads = 2;
    cs[1].tied_head = 1;
    for (ci = 0; ci < 2; ci++) {
        const lisa_config *c = &cs[ci];
        lisa_model m, m2;
        lisa_error e;
        size_t size, size2, n_params;
        unsigned char *b = v1_file(c, &size), *b2;
        char path[512], path2[512], label[64];
        FILE *f;
        snprintf(label, sizeof label, "v1 %s", c->tied_head ? "tied" : "untied");
        path_in_dir(path, sizeof path, "model_v1.bin");
        path_in_dir(path2, sizeof path2, "model_v1_saved.bin");
        write_file(path, b, size);
        CHECK(lisa_model_load_llama2c_v1(&m, path, NULL, &e) == LISA_OK, "%s: %s", label, e.message);
        CHECK(m.config.dim == c->dim && m.config.hidden_dim == c->hidden_dim && m.config.n_layers == c->n_layers &&
                  m.config.n_heads == c->n_heads && m.config.n_kv_heads == c->n_kv_heads &&
                  m.config.vocab_size == c->vocab_size && m.config.max_seq_len == c->max_seq_len &&
                  m.config.tied_head == c->tied_head && m.config.norm_eps == 1e-5f && m.config.rope_theta == 10000.0f,
              "%s: config", label);
        check_v1_tensors(&m, c, label);
        /* Saving gives the same bytes back. */
        CHECK(lisa_model_save_llama2c_v1(&m, path2, &e) == LISA_OK, "%s save: %s", label, e.message);
        f = fopen(path2, "rb");
        b2 = (unsigned char *)malloc(size + 16);
        size2 = f ? fread(b2, 1, size + 16, f) : 0;
        if (f) fclose(f);
        CHECK(size2 == size && memcmp(b, b2, size) == 0, "%s: saved file differs (%lu vs %lu bytes)", label,
              (unsigned long)size2, (unsigned long)size);
        free(b2);
        CHECK(lisa_model_load_llama2c_v1_memory(&m2, b, size, NULL, NULL, &e) == LISA_OK &&
                  memcmp(m.params, m2.params, m.layout.n_params * sizeof(float)) == 0,
              "%s: memory load equals file load", label);
        n_params = m.layout.n_params;
        lisa_model_free(&m2);
        lisa_model_free(&m);
        CHECK(m.bytes == 0, "%s: model freed", label);
        /* lisa_model_load_llama2c() either refuses a v1 file cleanly or
           recognises the magic and loads the same model. */
        {
            lisa_result r = lisa_model_load_llama2c(&m, path, NULL, &e);
            CHECK(r == LISA_ERR_FORMAT || (r == LISA_OK && m.layout.n_params == n_params),
                  "%s: lisa_model_load_llama2c: %d %s", label, (int)r, e.message);
            if (r == LISA_OK) check_v1_tensors(&m, c, label);
            lisa_model_free(&m);
        }

        /* Malformed. */
        {
            unsigned char *x = (unsigned char *)malloc(size + 8);
            lisa_result r;
            size_t cut;
            int bad = 0;
#define V1_BAD(len, want, phrase, what)                                                                    \
    do {                                                                                                   \
        write_file(path, x, (len));                                                                        \
        memset(&e, 0, sizeof e);                                                                           \
        r = lisa_model_load_llama2c_v1(&m, path, NULL, &e);                                                \
        CHECK(r == (want) && strstr(e.message, path) && strstr(e.message, phrase) && m.params == NULL,     \
              "%s, %s: got %d \"%s\", want \"%s\"", label, what, (int)r, e.message, phrase);              \
        lisa_model_free(&m);                                                                               \
        memcpy(x, b, size);                                                                                \
    } while (0)
            memcpy(x, b, size);
            V1_BAD(size - 4, LISA_ERR_FORMAT, "truncated: the header implies", "4 bytes short");
            V1_BAD(200, LISA_ERR_FORMAT, "truncated header: the file has 200 bytes, a version-1 header needs 256", "short header");
            V1_BAD(2, LISA_ERR_FORMAT, "truncated header", "2 bytes");
            memset(x + size, 0, 8);
            V1_BAD(size + 8, LISA_ERR_FORMAT, "8 bytes of trailing data", "trailing");
            x[0] = 'x';
            V1_BAD(size, LISA_ERR_FORMAT, "is not a llama2.c version-1 checkpoint", "bad magic");
            x[0] = 'x';
            V1_BAD(100, LISA_ERR_FORMAT, "is not a llama2.c version-1 checkpoint", "bad magic, short file");
            put32(x + 4, 2);
            V1_BAD(size, LISA_ERR_FORMAT, "version 2 is not supported", "version 2");
            put32(x + 4, 0);
            V1_BAD(size, LISA_ERR_FORMAT, "version 0 is not supported", "version 0");
            x[36] = 2;
            V1_BAD(size, LISA_ERR_FORMAT, "shared_classifier flag 2", "flag 2");
            put32(x + 24, 0);
            V1_BAD(size, LISA_ERR_FORMAT, "n_kv_heads is 0", "kv 0");
            put32(x + 20, 3);
            V1_BAD(size, LISA_ERR_FORMAT, "bad header: n_heads 3 does not divide dim 8", "heads");
            put32(x + 8, (uint32_t)-8);
            V1_BAD(size, LISA_ERR_FORMAT, "bad header: dim -8", "negative dim");
            put32(x + 28, 0);
            V1_BAD(size, LISA_ERR_FORMAT, "vocab_size 0", "vocab 0");
            put32(x + 16, 0x7fffffffu);
            V1_BAD(size, LISA_ERR_FORMAT, "n_layers 2147483647", "huge layers");
            x[36] = (unsigned char)(1 - c->tied_head);
            V1_BAD(size, LISA_ERR_FORMAT, c->tied_head ? "truncated" : "trailing data", "flag flipped");
#undef V1_BAD
            for (cut = 0; cut < size; cut += (cut < 300 ? 1 : 61)) {
                r = lisa_model_load_llama2c_v1_memory(&m, b, cut, "cutv1", NULL, &e);
                if (r != LISA_ERR_FORMAT || !strstr(e.message, "cutv1") || m.params) bad++;
                lisa_model_free(&m);
            }
            CHECK(bad == 0, "%s: %d truncations were not format errors", label, bad);
            free(x);
        }
        remove(path);
        remove(path2);
        free(b);
    }
}

int main(void) {
    char tmpl[] = "/tmp/lisa_test_tokenizer_XXXXXX";
    char path[512];
    if (!mkdtemp(tmpl)) {
        fprintf(stderr, "cannot make a temporary directory\n");
        return 1;
    }
    snprintf(g_dir, sizeof g_dir, "%s", tmpl);
    test_byte_tokenizer();
    test_llama2c_tokenizer();
    test_bad_tokenizer_files();
    test_v1();
    path_in_dir(path, sizeof path, "tokenizer.bin");
    remove(path);
    path_in_dir(path, sizeof path, "bad_tokenizer.bin");
    remove(path);
    rmdir(g_dir);
    return test_report("tokenizer");
}
