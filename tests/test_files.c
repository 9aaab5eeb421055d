/* Files: llama2.c checkpoints and llm.c token files.

   - round trips (tied and untied heads, grouped-query attention)
   - a llama2.c file written by hand here, tensor-major, with a recognisable
     value in every element: the loader must put each tensor where
     lisa_model_tensor() says it is, and saving the model must give the same
     bytes back (the RoPE tables are checked against cos/sin separately)
   - malformed files: each gives a specific code and a message that names the
     file and the problem, leaks nothing and leaves a model that can be freed
   - every truncation of a small valid file, from memory
   - every reader of a llama2.c file (either kind, from a file or memory, and
     lisa_model_read_config) agrees on every changed header field; a negative
     vocab_size is an untied head in the legacy format and an error in version 1
   - llm.c token files in both widths, their errors, lisa_tokens_batch
   - atomic saving: no temporary file left behind, failures leave nothing
   - saves that fail over existing files (llama2.c versions 0 and 1, token
     files in both widths, Hugging Face directories): the old bytes survive,
     no temporary file stays (tests/save_fail.h) */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "save_fail.h"

/* ------------------------------------------------------------------------- */
/* A counting allocator: every allocation recorded, every free checked        */
/* ------------------------------------------------------------------------- */

typedef struct alloc_rec {
    void *ptr;
    size_t size;
} alloc_rec;

typedef struct counter {
    alloc_rec *recs;
    size_t n, cap;
    size_t live;           /* bytes allocated and not yet freed */
    size_t max_single;     /* largest single request */
    size_t requested;      /* bytes requested in total */
    size_t n_alloc, n_free;
    size_t bad_frees;      /* pointer never allocated (or freed twice) */
    size_t size_mismatch;  /* free with a size other than the one allocated */
} counter;

static counter g_cnt;

static void *cnt_alloc(void *user, size_t size) {
    counter *c = (counter *)user;
    void *p;
    c->requested += size;
    if (size > c->max_single) c->max_single = size;
    /* Refuse absurd requests instead of letting the test die: they are
       counted in max_single and checked. */
    if (size > ((size_t)1 << 34)) return NULL;
    p = malloc(size ? size : 1);
    if (!p) return NULL;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        alloc_rec *r = (alloc_rec *)realloc(c->recs, cap * sizeof *r);
        if (!r) {
            free(p);
            return NULL;
        }
        c->recs = r;
        c->cap = cap;
    }
    c->recs[c->n].ptr = p;
    c->recs[c->n].size = size;
    c->n++;
    c->live += size;
    c->n_alloc++;
    return p;
}

static void cnt_free(void *user, void *ptr, size_t size) {
    counter *c = (counter *)user;
    size_t i;
    if (!ptr) return;
    for (i = c->n; i-- > 0;) {
        if (c->recs[i].ptr == ptr) {
            if (c->recs[i].size != size) c->size_mismatch++;
            c->live -= c->recs[i].size;
            c->recs[i] = c->recs[c->n - 1];
            c->n--;
            c->n_free++;
            free(ptr);
            return;
        }
    }
    c->bad_frees++; /* not ours: never hand it to free() */
}

static lisa_allocator g_alloc;

static void cnt_reset(void) {
    free(g_cnt.recs);
    memset(&g_cnt, 0, sizeof g_cnt);
    g_alloc.alloc = cnt_alloc;
    g_alloc.free = cnt_free;
    g_alloc.user = &g_cnt;
}

/* After everything was freed: nothing live, every free matched. */
#define CHECK_CLEAN(what)                                                             \
    CHECK(g_cnt.live == 0 && g_cnt.n == 0 && g_cnt.bad_frees == 0 &&                  \
              g_cnt.size_mismatch == 0,                                               \
          "%s: allocator clean after free (live %zu bytes in %zu blocks, bad frees "  \
          "%zu, size mismatches %zu)",                                                \
          what, g_cnt.live, g_cnt.n, g_cnt.bad_frees, g_cnt.size_mismatch)

/* ------------------------------------------------------------------------- */
/* Paths and files                                                            */
/* ------------------------------------------------------------------------- */

static char g_dir[256];

static const char *tpath(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static int write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(data, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    return ok;
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    *size = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *size = (size_t)n;
    return buf;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Names in a directory other than . and .., sorted-insensitive: joined with
   spaces in discovery order; returns the count. */
static int list_dir(const char *dir, char *out, size_t out_size) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (out_size) out[0] = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (strlen(out) + strlen(e->d_name) + 2 < out_size) {
            if (out[0]) strcat(out, " ");
            strcat(out, e->d_name);
        }
    }
    closedir(d);
    return n;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    struct stat st;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Case-insensitive substring. */
static int contains_ci(const char *hay, const char *needle) {
    size_t i, j, nh = strlen(hay), nn = strlen(needle);
    if (nn == 0) return 1;
    for (i = 0; i + nn <= nh; i++) {
        for (j = 0; j < nn; j++)
            if (tolower((unsigned char)hay[i + j]) != tolower((unsigned char)needle[j])) break;
        if (j == nn) return 1;
    }
    return 0;
}

/* Does msg, with every occurrence of name taken out (so that the path cannot
   supply the word), contain any of the words in a NULL-terminated list? */
static int contains_any(const char *msg, const char *name, const char *const *words) {
    char rest[512];
    size_t o = 0, nn = strlen(name);
    const char *p = msg;
    while (*p && o + 1 < sizeof rest) {
        if (nn && !strncmp(p, name, nn)) {
            p += nn;
            continue;
        }
        rest[o++] = *p++;
    }
    rest[o] = 0;
    for (; *words; words++)
        if (contains_ci(rest, *words)) return 1;
    return 0;
}

static void words_join(const char *const *words, char *out, size_t n) {
    out[0] = 0;
    for (; *words; words++) {
        if (strlen(out) + strlen(*words) + 2 >= n) break;
        if (out[0]) strcat(out, "|");
        strcat(out, *words);
    }
}

/* Checks a failure: the code, err.code, the name in the message, a key word. */
static void check_failure(const char *what, lisa_result r, const lisa_error *err,
                          lisa_result want, const char *name, const char *const *words) {
    char joined[256];
    if (getenv("LISA_TEST_VERBOSE")) printf("  %-28s -> [%d] %s\n", what, (int)r, err->message);
    CHECK(r == want, "%s: result %s (%d), want %s", what, lisa_result_string(r), (int)r,
          lisa_result_string(want));
    CHECK(err->code == r, "%s: err.code %d equals the result %d", what, (int)err->code, (int)r);
    CHECK(strstr(err->message, name) != NULL, "%s: message names \"%s\": \"%s\"", what, name,
          err->message);
    if (words) {
        words_join(words, joined, sizeof joined);
        CHECK(contains_any(err->message, name, words), "%s: message mentions one of {%s}: \"%s\"",
              what, joined, err->message);
    }
}

/* ------------------------------------------------------------------------- */
/* llama2.c files written by hand                                             */
/* ------------------------------------------------------------------------- */

typedef struct l2cfg {
    int dim, hidden, layers, heads, kv, vocab, seq; /* vocab > 0; tied says the sign */
    int tied;
} l2cfg;

/* Tensor ids in the file's order. */
enum {
    T_EMB, T_RMS_ATT, T_WQ, T_WK, T_WV, T_WO, T_RMS_FFN, T_W1, T_W2, T_W3, T_RMS_FINAL,
    T_FCR, T_FCI, T_WCLS, T_COUNT
};

/* A distinct, exactly representable value per (tensor, layer, element). */
static float l2_val(int t, int layer, size_t e) {
    return (float)(t * 100000 + layer * 10000 + (long)e) + 0.5f;
}

/* Size in floats of one layer's slice (or of the whole tensor if it has no layers). */
static size_t l2_tensor_size(const l2cfg *c, int t) {
    size_t D = (size_t)c->dim, H = (size_t)c->hidden, hs = D / (size_t)c->heads;
    size_t kvd = D * (size_t)c->kv / (size_t)c->heads;
    switch (t) {
    case T_EMB: return (size_t)c->vocab * D;
    case T_RMS_ATT: return D;
    case T_WQ: return D * D;
    case T_WK: return kvd * D;
    case T_WV: return kvd * D;
    case T_WO: return D * D;
    case T_RMS_FFN: return D;
    case T_W1: return H * D;
    case T_W2: return D * H;
    case T_W3: return H * D;
    case T_RMS_FINAL: return D;
    case T_FCR: return (size_t)c->seq * hs / 2;
    case T_FCI: return (size_t)c->seq * hs / 2;
    case T_WCLS: return c->tied ? 0 : (size_t)c->vocab * D;
    }
    return 0;
}

static int l2_per_layer(int t) { return t >= T_RMS_ATT && t <= T_W3; }

static double rope_ref(int cos_table, int pos, int i, int head_size) {
    double freq = pow(10000.0, -2.0 * i / head_size);
    return cos_table ? cos(pos * freq) : sin(pos * freq);
}

/* Builds the file in memory: header, then every tensor. rope_off / rope_bytes
   give the byte range of the two RoPE tables. */
static unsigned char *l2_build(const l2cfg *c, size_t *size, size_t *rope_off,
                               size_t *rope_bytes) {
    size_t total = 0, pos;
    int t, l;
    int32_t hdr[7];
    unsigned char *buf;
    for (t = 0; t < T_COUNT; t++) total += l2_tensor_size(c, t) * (l2_per_layer(t) ? (size_t)c->layers : 1);
    *size = 28 + total * 4;
    buf = (unsigned char *)malloc(*size);
    hdr[0] = c->dim;
    hdr[1] = c->hidden;
    hdr[2] = c->layers;
    hdr[3] = c->heads;
    hdr[4] = c->kv;
    hdr[5] = c->tied ? c->vocab : -c->vocab;
    hdr[6] = c->seq;
    memcpy(buf, hdr, 28);
    pos = 28;
    for (t = 0; t < T_COUNT; t++) {
        size_t n = l2_tensor_size(c, t), e;
        int nl = l2_per_layer(t) ? c->layers : 1;
        if (t == T_FCR) *rope_off = pos;
        for (l = 0; l < nl; l++) {
            for (e = 0; e < n; e++) {
                float v;
                if (t == T_FCR || t == T_FCI) {
                    int half = c->dim / c->heads / 2;
                    v = (float)rope_ref(t == T_FCR, (int)(e / (size_t)half), (int)(e % (size_t)half),
                                        c->dim / c->heads);
                } else {
                    v = l2_val(t, l, e);
                }
                memcpy(buf + pos, &v, 4);
                pos += 4;
            }
        }
        if (t == T_FCI) *rope_bytes = pos - *rope_off;
    }
    return buf;
}

/* Name of a lisa tensor -> (file tensor id, layer). */
static int l2_id_of(const char *name, int *layer) {
    static const char *const names[] = {"attn_norm", "wq", "wk", "wv", "wo",
                                        "mlp_norm", "w1", "w2", "w3"};
    static const int ids[] = {T_RMS_ATT, T_WQ, T_WK, T_WV, T_WO, T_RMS_FFN, T_W1, T_W2, T_W3};
    int i, n = 0;
    char rest[32];
    *layer = 0;
    if (!strcmp(name, "embed")) return T_EMB;
    if (!strcmp(name, "final_norm")) return T_RMS_FINAL;
    if (!strcmp(name, "head")) return T_WCLS;
    if (sscanf(name, "layers.%d.%31s%n", layer, rest, &n) == 2) {
        for (i = 0; i < 9; i++)
            if (!strcmp(rest, names[i])) return ids[i];
    }
    return -1;
}

/* Expected shape (rows, cols; cols 0 for a vector) of file tensor t. */
static void l2_shape(const l2cfg *c, int t, int *rows, int *cols) {
    int kvd = c->dim / c->heads * c->kv;
    *cols = c->dim;
    switch (t) {
    case T_EMB: case T_WCLS: *rows = c->vocab; break;
    case T_WQ: case T_WO: *rows = c->dim; break;
    case T_WK: case T_WV: *rows = kvd; break;
    case T_W1: case T_W3: *rows = c->hidden; break;
    case T_W2: *rows = c->dim; *cols = c->hidden; break;
    default: *rows = c->dim; *cols = 0; break;
    }
}

static float *layer_ptr(const lisa_layer_weights *w, int t) {
    switch (t) {
    case T_RMS_ATT: return w->attn_norm;
    case T_WQ: return w->wq;
    case T_WK: return w->wk;
    case T_WV: return w->wv;
    case T_WO: return w->wo;
    case T_RMS_FFN: return w->mlp_norm;
    case T_W1: return w->w1;
    case T_W2: return w->w2;
    case T_W3: return w->w3;
    }
    return NULL;
}

static void test_hand_written(const l2cfg *c, const char *label) {
    size_t size, rope_off = 0, rope_bytes = 0, saved_size = 0, i;
    unsigned char *file = l2_build(c, &size, &rope_off, &rope_bytes), *saved;
    char fname[64], sname[64];
    const char *path, *spath;
    lisa_model m;
    lisa_error err;
    lisa_result r;
    int k, n_tensors, seen[T_COUNT] = {0}, mismatches = 0, mism_first = -1;

    snprintf(fname, sizeof fname, "hand_%s.bin", label);
    snprintf(sname, sizeof sname, "hand_%s_saved.bin", label);
    path = tpath(fname);
    spath = tpath(sname);
    CHECK(write_file(path, file, size), "%s: write %s", label, path);

    cnt_reset();
    memset(&m, 0, sizeof m);
    memset(&err, 0, sizeof err);
    r = lisa_model_load_llama2c(&m, path, &g_alloc, &err);
    CHECK(r == LISA_OK, "%s: load hand-written file: %s", label, err.message);
    if (r != LISA_OK) {
        lisa_model_free(&m);
        free(file);
        return;
    }
    CHECK(m.config.dim == c->dim && m.config.hidden_dim == c->hidden &&
              m.config.n_layers == c->layers && m.config.n_heads == c->heads &&
              m.config.n_kv_heads == c->kv && m.config.vocab_size == c->vocab &&
              m.config.max_seq_len == c->seq && m.config.tied_head == c->tied,
          "%s: config from the header (dim %d hidden %d layers %d heads %d kv %d vocab %d "
          "seq %d tied %d)",
          label, m.config.dim, m.config.hidden_dim, m.config.n_layers, m.config.n_heads,
          m.config.n_kv_heads, m.config.vocab_size, m.config.max_seq_len, m.config.tied_head);
    CHECK(m.config.norm_eps == 1e-5f && m.config.rope_theta == 10000.0f,
          "%s: defaults for norm_eps (%g) and rope_theta (%g)", label, (double)m.config.norm_eps,
          (double)m.config.rope_theta);
    CHECK(m.bytes == g_cnt.live, "%s: model.bytes %zu equals live bytes %zu", label, m.bytes,
          g_cnt.live);

    n_tensors = lisa_model_n_tensors(&m);
    CHECK(n_tensors == 2 + 9 * c->layers + (c->tied ? 0 : 1), "%s: %d tensors", label, n_tensors);
    {
        size_t prev_end = 0;
        for (k = 0; k < n_tensors; k++) {
            lisa_param p = lisa_model_tensor(&m, k);
            int layer, t = l2_id_of(p.name, &layer), rows, cols, want_block;
            size_t n, e, want_n;
            CHECK(t >= 0, "%s: known tensor name \"%s\"", label, p.name);
            if (t < 0) continue;
            if (!l2_per_layer(t)) seen[t]++;
            n = lisa_tensor_numel(&p.tensor);
            want_n = l2_tensor_size(c, t == T_WCLS ? T_EMB : t);
            CHECK(n == want_n, "%s: %s has %zu floats, want %zu", label, p.name, n, want_n);
            l2_shape(c, t, &rows, &cols);
            if (cols)
                CHECK(p.tensor.ndim == 2 && p.tensor.shape[0] == rows && p.tensor.shape[1] == cols,
                      "%s: %s shape (%d: %d, %d), want (%d, %d)", label, p.name, p.tensor.ndim,
                      p.tensor.shape[0], p.tensor.shape[1], rows, cols);
            else
                CHECK(p.tensor.ndim == 1 && p.tensor.shape[0] == rows,
                      "%s: %s shape (%d: %d), want (%d)", label, p.name, p.tensor.ndim,
                      p.tensor.shape[0], rows);
            CHECK(p.tensor.data == m.params + p.offset, "%s: %s data is params + offset", label,
                  p.name);
            CHECK(p.offset == prev_end, "%s: %s at offset %zu follows the previous tensor (%zu)",
                  label, p.name, p.offset, prev_end);
            prev_end = p.offset + n;
            want_block = t == T_EMB ? 0 : t == T_RMS_FINAL ? c->layers + 1
                                      : t == T_WCLS        ? c->layers + 2
                                                           : 1 + layer;
            CHECK(p.block == want_block, "%s: %s in block %d, want %d", label, p.name, p.block,
                  want_block);
            CHECK(p.decay == (cols != 0), "%s: %s decay %d", label, p.name, p.decay);
            if (n != want_n) continue;
            for (e = 0; e < n; e++) {
                if (p.tensor.data[e] != l2_val(t, layer, e)) {
                    if (mismatches == 0) {
                        fprintf(stderr, "  %s: %s[%zu] = %.1f, want %.1f\n", label, p.name, e,
                                (double)p.tensor.data[e], (double)l2_val(t, layer, e));
                        mism_first = k;
                    }
                    mismatches++;
                }
            }
            /* the named pointers agree with the table */
            if (t == T_EMB) CHECK(m.embed == p.tensor.data, "%s: m.embed", label);
            if (t == T_RMS_FINAL) CHECK(m.final_norm == p.tensor.data, "%s: m.final_norm", label);
            if (t == T_WCLS) CHECK(m.head == p.tensor.data, "%s: m.head", label);
            if (l2_per_layer(t) && layer >= 0 && layer < c->layers)
                CHECK(layer_ptr(&m.layers[layer], t) == p.tensor.data, "%s: m.layers[%d] pointer for %s",
                      label, layer, p.name);
        }
        CHECK(prev_end == m.layout.n_params, "%s: tensors cover %zu of %zu params", label, prev_end,
              m.layout.n_params);
    }
    CHECK(mismatches == 0, "%s: %d elements in the wrong place (first in tensor %d)", label,
          mismatches, mism_first);
    CHECK(seen[T_EMB] == 1 && seen[T_RMS_FINAL] == 1 && seen[T_WCLS] == (c->tied ? 0 : 1),
          "%s: embed, final_norm once; head %s", label, c->tied ? "absent" : "once");
    if (c->tied) CHECK(m.head == m.embed, "%s: tied head is the embedding", label);

    /* Saving gives the same bytes, except the RoPE tables, which hold cos/sin. */
    memset(&err, 0, sizeof err);
    r = lisa_model_save_llama2c(&m, spath, &err);
    CHECK(r == LISA_OK, "%s: save: %s", label, err.message);
    saved = read_file(spath, &saved_size);
    CHECK(saved && saved_size == size, "%s: saved file has %zu bytes, want %zu", label, saved_size,
          size);
    if (saved && saved_size == size) {
        size_t first_diff = (size_t)-1;
        int bad_rope = 0, half = c->dim / c->heads / 2, hs = c->dim / c->heads;
        double worst = 0;
        for (i = 0; i < size; i++) {
            if (i >= rope_off && i < rope_off + rope_bytes) continue;
            if (file[i] != saved[i]) {
                first_diff = i;
                break;
            }
        }
        CHECK(first_diff == (size_t)-1,
              "%s: saved file equals the hand-written one outside the RoPE tables (first "
              "difference at byte %zu)",
              label, first_diff);
        for (i = 0; i < rope_bytes / 4; i++) {
            size_t per_table = (size_t)c->seq * (size_t)half;
            int is_cos = i < per_table;
            size_t j = is_cos ? i : i - per_table;
            int pos = (int)(j / (size_t)half), fi = (int)(j % (size_t)half);
            float v;
            double ref = rope_ref(is_cos, pos, fi, hs);
            memcpy(&v, saved + rope_off + 4 * i, 4);
            if (fabs((double)v - ref) > worst) worst = fabs((double)v - ref);
            if (!test_close(v, ref, 1e-6, 0)) {
                if (!bad_rope)
                    fprintf(stderr, "  %s: %s[pos %d][%d] = %.9g, want %.9g\n", label,
                            is_cos ? "freq_cis_real" : "freq_cis_imag", pos, fi, (double)v, ref);
                bad_rope++;
            }
        }
        CHECK(bad_rope == 0, "%s: RoPE tables hold cos/sin of pos*10000^(-2i/hs) (%d off, worst %.3g)",
              label, bad_rope, worst);
    }
    free(saved);
    lisa_model_free(&m);
    CHECK_CLEAN(label);

    /* The same through the memory loader, from an unaligned address. */
    {
        unsigned char *mis = (unsigned char *)malloc(size + 1);
        memcpy(mis + 1, file, size);
        memset(&m, 0, sizeof m);
        r = lisa_model_load_llama2c_memory(&m, mis + 1, size, "hand-mem", &g_alloc, &err);
        CHECK(r == LISA_OK, "%s: load from unaligned memory: %s", label, err.message);
        if (r == LISA_OK) {
            for (k = 0; k < n_tensors; k++) {
                lisa_param p = lisa_model_tensor(&m, k);
                int layer, t = l2_id_of(p.name, &layer);
                size_t e, n = lisa_tensor_numel(&p.tensor);
                int bad = 0;
                if (t < 0) continue;
                for (e = 0; e < n; e++) bad += p.tensor.data[e] != l2_val(t, layer, e);
                CHECK(bad == 0, "%s: memory loader: %s has %d wrong elements", label, p.name, bad);
            }
        }
        lisa_model_free(&m);
        CHECK_CLEAN(label);
        free(mis);
    }
    unlink(path);
    unlink(spath);
    free(file);
}

/* ------------------------------------------------------------------------- */
/* Round trip of random models                                                */
/* ------------------------------------------------------------------------- */

static void test_roundtrip(int dim, int hidden, int layers, int heads, int kv, int vocab, int seq,
                           int tied, const char *label) {
    lisa_config c;
    lisa_model a, b;
    lisa_error err;
    lisa_result r;
    const char *path = tpath("roundtrip.bin"), *path2 = tpath("roundtrip2.bin");
    size_t size1 = 0, size2 = 0;
    unsigned char *f1, *f2;

    memset(&c, 0, sizeof c);
    c.dim = dim;
    c.hidden_dim = hidden;
    c.n_layers = layers;
    c.n_heads = heads;
    c.n_kv_heads = kv;
    c.vocab_size = vocab;
    c.max_seq_len = seq;
    c.tied_head = tied;
    cnt_reset();
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&err, 0, sizeof err);
    r = lisa_model_init(&a, &c, &g_alloc, &err);
    CHECK(r == LISA_OK, "%s: init: %s", label, err.message);
    if (r != LISA_OK) return;
    lisa_model_init_random(&a, 1234);
    r = lisa_model_save_llama2c(&a, path, &err);
    CHECK(r == LISA_OK, "%s: save: %s", label, err.message);
    r = lisa_model_load_llama2c(&b, path, &g_alloc, &err);
    CHECK(r == LISA_OK, "%s: load: %s", label, err.message);
    if (r == LISA_OK) {
        size_t hs = (size_t)dim / (size_t)heads;
        size_t want = 28 + 4 * (a.layout.n_params + (size_t)seq * hs);
        f1 = read_file(path, &size1);
        CHECK(size1 == want, "%s: file has %zu bytes, want %zu", label, size1, want);
        CHECK(a.config.dim == b.config.dim &&
                  a.config.hidden_dim == b.config.hidden_dim &&
                  a.config.n_layers == b.config.n_layers && a.config.n_heads == b.config.n_heads &&
                  a.config.n_kv_heads == b.config.n_kv_heads &&
                  a.config.vocab_size == b.config.vocab_size &&
                  a.config.max_seq_len == b.config.max_seq_len &&
                  a.config.norm_eps == b.config.norm_eps &&
                  a.config.rope_theta == b.config.rope_theta &&
                  a.config.tied_head == b.config.tied_head,
              "%s: config survives the round trip", label);
        CHECK(a.config.n_kv_heads == (kv ? kv : heads), "%s: n_kv_heads resolved to %d", label,
              a.config.n_kv_heads);
        CHECK(a.layout.n_params == b.layout.n_params &&
                  memcmp(a.params, b.params, a.layout.n_params * sizeof(float)) == 0,
              "%s: parameters bitwise identical", label);
        CHECK(tied ? b.head == b.embed : b.head != b.embed, "%s: head %s", label,
              tied ? "is the embedding" : "is its own matrix");
        /* Saving the loaded model gives the same file. */
        r = lisa_model_save_llama2c(&b, path2, &err);
        CHECK(r == LISA_OK, "%s: save again: %s", label, err.message);
        f2 = read_file(path2, &size2);
        CHECK(f1 && f2 && size1 == size2 && memcmp(f1, f2, size1) == 0,
              "%s: saving the loaded model gives the same bytes", label);
        free(f1);
        free(f2);
    }
    lisa_model_free(&a);
    lisa_model_free(&b);
    CHECK_CLEAN(label);
    unlink(path);
    unlink(path2);
}

/* ------------------------------------------------------------------------- */
/* Malformed llama2.c files                                                   */
/* ------------------------------------------------------------------------- */

static const char *const W_HEADER[] = {"header", "truncated", "short", "empty", "size", "bytes", NULL};
static const char *const W_DIM[] = {"dim", NULL};
static const char *const W_HIDDEN[] = {"hidden", NULL};
static const char *const W_LAYERS[] = {"layer", NULL};
static const char *const W_HEADS[] = {"n_heads", "heads", "head size", "head_size", "head dim", NULL};
static const char *const W_VOCAB[] = {"vocab", NULL};
static const char *const W_SEQ[] = {"seq", NULL};
static const char *const W_BIG[] = {"overflow", "large", "big", "huge", "size", "too many", "range", "dim", "parameters",
                                    "truncated", "expected", "bytes", NULL};
static const char *const W_TRUNC[] = {"truncated", "expected", "short", "size", "bytes", NULL};
static const char *const W_TRAIL[] = {"trailing", "extra", "expected", "size", "long", "bytes", NULL};
static const char *const W_MISSING[] = {"open", "no such", "exist", "not found", "cannot", "can't",
                                        "read", NULL};

/* Writes data to a file, loads it both ways, checks the failure. */
static void expect_bad_l2(const char *label, const void *data, size_t size, lisa_result want,
                          const char *const *words) {
    static int serial;
    char fname[96], mname[96];
    const char *path;
    lisa_model m;
    lisa_error err;
    lisa_result r;
    unsigned char *copy;

    /* numbered names, so that no key word can come from the path */
    snprintf(fname, sizeof fname, "case_%03d.bin", serial++);
    path = tpath(fname);
    write_file(path, data, size);

    cnt_reset();
    memset(&m, 0, sizeof m);
    memset(&err, 0, sizeof err);
    r = lisa_model_load_llama2c(&m, path, &g_alloc, &err);
    check_failure(label, r, &err, want, path, words);
    CHECK(g_cnt.max_single < ((size_t)1 << 24), "%s: no large allocation (largest %zu bytes)", label,
          g_cnt.max_single);
    lisa_model_free(&m);
    CHECK_CLEAN(label);
    /* NULL err is allowed */
    memset(&m, 0, sizeof m);
    r = lisa_model_load_llama2c(&m, path, &g_alloc, NULL);
    CHECK(r == want, "%s: same result without an error struct", label);
    lisa_model_free(&m);
    CHECK_CLEAN(label);
    unlink(path);

    /* memory, from an exactly sized copy so the sanitizer sees overreads */
    snprintf(mname, sizeof mname, "mem:%03d", serial++);
    copy = (unsigned char *)malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    cnt_reset();
    memset(&m, 0, sizeof m);
    memset(&err, 0, sizeof err);
    r = lisa_model_load_llama2c_memory(&m, copy, size, mname, &g_alloc, &err);
    check_failure(label, r, &err, want, mname, words);
    CHECK(g_cnt.max_single < ((size_t)1 << 24), "%s: no large allocation (largest %zu bytes)", mname,
          g_cnt.max_single);
    lisa_model_free(&m);
    CHECK_CLEAN(mname);
    free(copy);
}

static void set_hdr(unsigned char *file, int field, int32_t v) { memcpy(file + 4 * field, &v, 4); }

static void test_malformed_llama2c(void) {
    l2cfg c;
    size_t size, ro, rb;
    unsigned char *base, *f, hb[64];
    int32_t hdr[7];
    lisa_model m;
    lisa_error err;
    lisa_result r;
    char missing[600];

    c.dim = 8; c.hidden = 16; c.layers = 2; c.heads = 2; c.kv = 1; c.vocab = 16; c.seq = 4;
    c.tied = 0;
    snprintf(missing, sizeof missing, "%s", tpath("no_such_model.bin"));
    base = l2_build(&c, &size, &ro, &rb);
    f = (unsigned char *)malloc(size + 8);

    /* sanity: the base file loads */
    cnt_reset();
    memset(&m, 0, sizeof m);
    r = lisa_model_load_llama2c_memory(&m, base, size, "base", &g_alloc, &err);
    CHECK(r == LISA_OK, "base file for the malformed cases loads: %s", err.message);
    lisa_model_free(&m);
    CHECK_CLEAN("base");

#define CASE(label, field, value, want, words)      \
    do {                                            \
        memcpy(f, base, size);                      \
        set_hdr(f, field, value);                   \
        expect_bad_l2(label, f, size, want, words); \
    } while (0)

    expect_bad_l2("empty", base, 0, LISA_ERR_FORMAT, W_HEADER);
    expect_bad_l2("header12", base, 12, LISA_ERR_FORMAT, W_HEADER);
    expect_bad_l2("header27", base, 27, LISA_ERR_FORMAT, W_HEADER);
    CASE("dim0", 0, 0, LISA_ERR_FORMAT, W_DIM);
    CASE("dimneg", 0, -8, LISA_ERR_FORMAT, W_DIM);
    CASE("hidden0", 1, 0, LISA_ERR_FORMAT, W_HIDDEN);
    CASE("hiddenneg", 1, -16, LISA_ERR_FORMAT, W_HIDDEN);
    CASE("layersneg", 2, -1, LISA_ERR_FORMAT, W_LAYERS);
    CASE("heads0", 3, 0, LISA_ERR_FORMAT, W_HEADS);
    CASE("headsneg", 3, -2, LISA_ERR_FORMAT, W_HEADS);
    CASE("heads3", 3, 3, LISA_ERR_FORMAT, W_HEADS);          /* 3 does not divide 8 */
    CASE("kv0", 4, 0, LISA_ERR_FORMAT, W_HEADS);
    CASE("kvneg", 4, -1, LISA_ERR_FORMAT, W_HEADS);
    CASE("kv_gt_heads", 4, 4, LISA_ERR_FORMAT, W_HEADS);     /* 4 kv heads > 2 heads */
    CASE("vocab0", 5, 0, LISA_ERR_FORMAT, W_VOCAB);
    CASE("vocabmin", 5, INT32_MIN, LISA_ERR_FORMAT, W_VOCAB); /* -INT_MIN overflows */
    CASE("seq0", 6, 0, LISA_ERR_FORMAT, W_SEQ);
    CASE("seqneg", 6, -4, LISA_ERR_FORMAT, W_SEQ);

    /* kv heads not dividing heads: 4 heads, 3 kv heads */
    memcpy(f, base, size);
    set_hdr(f, 3, 4);
    set_hdr(f, 4, 3);
    expect_bad_l2("kv3_heads4", f, size, LISA_ERR_FORMAT, W_HEADS);

    /* odd head size: dim 6, 2 heads -> 3 */
    memcpy(f, base, size);
    set_hdr(f, 0, 6);
    expect_bad_l2("odd_head", f, size, LISA_ERR_FORMAT, W_HEADS);

    /* dim = hidden = 2^30: the byte count overflows 64 bits; nothing may be allocated */
    hdr[0] = 1 << 30; hdr[1] = 1 << 30; hdr[2] = 1; hdr[3] = 1 << 4; hdr[4] = 1 << 4;
    hdr[5] = 1 << 30; hdr[6] = 1 << 30;
    memcpy(hb, hdr, 28);
    expect_bad_l2("overflow", hb, 28, LISA_ERR_FORMAT, W_BIG);
    hdr[2] = INT32_MAX; hdr[5] = -INT32_MAX;
    memcpy(hb, hdr, 28);
    expect_bad_l2("overflow_layers", hb, 28, LISA_ERR_FORMAT, W_BIG);

    /* dim = hidden = 65536: dim*dim overflows 32 bits but not 64; the file is short */
    hdr[0] = 65536; hdr[1] = 65536; hdr[2] = 1; hdr[3] = 2; hdr[4] = 2; hdr[5] = 1; hdr[6] = 1;
    memcpy(hb, hdr, 28);
    memcpy(hb + 28, base + 28, 8);
    expect_bad_l2("int32_overflow", hb, 36, LISA_ERR_FORMAT, W_BIG);

    /* A crafted header whose byte count wraps modulo 2^64 to exactly the 8 bytes
       that follow (and whose parameter count wraps to 0): dim 2^30, hidden
       1431655764, 1 layer, 2^29 heads and kv heads (head size 2), vocab 1, seq 1.
       4 * (2^62 + 2^30 * (4 + 3 * hidden) + 2) = 8 (mod 2^64). */
    hdr[0] = 1 << 30; hdr[1] = 1431655764; hdr[2] = 1; hdr[3] = 1 << 29; hdr[4] = 1 << 29;
    hdr[5] = 1; hdr[6] = 1;
    memcpy(hb, hdr, 28);
    memset(hb + 28, 0, 8);
    expect_bad_l2("wrapping_size", hb, 36, LISA_ERR_FORMAT, W_BIG);

    /* weights short by one byte; one extra byte; four extra bytes */
    expect_bad_l2("trunc1", base, size - 1, LISA_ERR_FORMAT, W_TRUNC);
    expect_bad_l2("trunc4", base, size - 4, LISA_ERR_FORMAT, W_TRUNC);
    memcpy(f, base, size);
    memset(f + size, 0, 8);
    expect_bad_l2("trailing1", f, size + 1, LISA_ERR_FORMAT, W_TRAIL);
    expect_bad_l2("trailing4", f, size + 4, LISA_ERR_FORMAT, W_TRAIL);
    /* a tied header on an untied file: the classifier is then trailing data */
    memcpy(f, base, size);
    set_hdr(f, 5, c.vocab);
    expect_bad_l2("tied_with_head", f, size, LISA_ERR_FORMAT, W_TRAIL);
    /* an untied header on a tied-size file: the classifier is missing */
    memcpy(f, base, size);
    expect_bad_l2("untied_without_head", f, size - (size_t)c.vocab * (size_t)c.dim * 4,
                  LISA_ERR_FORMAT, W_TRUNC);
#undef CASE

    /* missing file */
    cnt_reset();
    memset(&m, 0, sizeof m);
    memset(&err, 0, sizeof err);
    r = lisa_model_load_llama2c(&m, missing, &g_alloc, &err);
    check_failure("missing", r, &err, LISA_ERR_IO, missing, W_MISSING);
    lisa_model_free(&m);
    CHECK_CLEAN("missing");
    memset(&m, 0, sizeof m);
    r = lisa_model_load_llama2c(&m, missing, NULL, NULL);
    CHECK(r == LISA_ERR_IO, "missing file without allocator or error struct: %d", (int)r);
    lisa_model_free(&m);

    /* a directory instead of a file */
    memset(&m, 0, sizeof m);
    memset(&err, 0, sizeof err);
    cnt_reset();
    r = lisa_model_load_llama2c(&m, g_dir, &g_alloc, &err);
    CHECK(r == LISA_ERR_IO, "a directory as a model cannot be read: LISA_ERR_IO, got %d (%s)",
          (int)r, err.message);
    CHECK(strstr(err.message, g_dir) != NULL, "directory as a model: message names it: \"%s\"",
          err.message);
    lisa_model_free(&m);
    CHECK_CLEAN("directory");
    {
        lisa_tokens d;
        memset(&d, 0, sizeof d);
        memset(&err, 0, sizeof err);
        r = lisa_tokens_load(&d, g_dir, &g_alloc, &err);
        CHECK(r == LISA_ERR_IO, "a directory as a token file cannot be read: LISA_ERR_IO, got %d (%s)",
              (int)r, err.message);
        lisa_tokens_free(&d);
        CHECK_CLEAN("directory tokens");
    }

    /* memory loader without a name still explains itself */
    memset(&m, 0, sizeof m);
    memset(&err, 0, sizeof err);
    r = lisa_model_load_llama2c_memory(&m, base, 10, NULL, &g_alloc, &err);
    CHECK(r == LISA_ERR_FORMAT && err.message[0] != 0, "memory loader, NULL name: %d \"%s\"", (int)r,
          err.message);
    lisa_model_free(&m);
    CHECK_CLEAN("null name");

    free(f);
    free(base);
}

/* Every truncation of a small valid file, from memory, and of the same file
   with a tied head. */
static void test_truncations(int tied) {
    l2cfg c;
    size_t size, ro, rb, len;
    unsigned char *base;
    lisa_model m;
    lisa_error err;
    lisa_result r;
    size_t wrong_code = 0, no_name = 0, unclean = 0, first_wrong = (size_t)-1,
           first_unclean = (size_t)-1;
    lisa_result first_r = LISA_OK;

    c.dim = 8; c.hidden = 12; c.layers = 2; c.heads = 4; c.kv = 2; c.vocab = 10; c.seq = 3;
    c.tied = tied;
    base = l2_build(&c, &size, &ro, &rb);
    for (len = 0; len < size; len++) {
        unsigned char *copy = (unsigned char *)malloc(len ? len : 1);
        memcpy(copy, base, len);
        cnt_reset();
        memset(&m, 0, sizeof m);
        memset(&err, 0, sizeof err);
        r = lisa_model_load_llama2c_memory(&m, copy, len, "trunc.bin", &g_alloc, &err);
        if (r != LISA_ERR_FORMAT || err.code != r) {
            if (!wrong_code) {
                first_wrong = len;
                first_r = r;
            }
            wrong_code++;
        }
        if (!strstr(err.message, "trunc.bin")) no_name++;
        lisa_model_free(&m);
        if (g_cnt.live || g_cnt.bad_frees || g_cnt.size_mismatch) {
            if (!unclean) first_unclean = len;
            unclean++;
        }
        free(copy);
    }
    CHECK(wrong_code == 0, "truncations (tied %d): %zu of %zu lengths not LISA_ERR_FORMAT (first: "
          "length %zu gave %d)", tied, wrong_code, size, first_wrong, (int)first_r);
    CHECK(no_name == 0, "truncations (tied %d): %zu messages without the name", tied, no_name);
    CHECK(unclean == 0, "truncations (tied %d): %zu lengths leaked or freed wrongly (first %zu)", tied,
          unclean, first_unclean);
    /* and the full length loads */
    cnt_reset();
    memset(&m, 0, sizeof m);
    r = lisa_model_load_llama2c_memory(&m, base, size, "full.bin", &g_alloc, &err);
    CHECK(r == LISA_OK, "untruncated file loads (tied %d): %s", tied, err.message);
    lisa_model_free(&m);
    CHECK_CLEAN("truncations");
    free(base);
}

/* ------------------------------------------------------------------------- */
/* llm.c token files                                                          */
/* ------------------------------------------------------------------------- */

#define MAGIC16 20240520
#define MAGIC32 20240801

/* header (magic, version, count) then n_data tokens of width bytes each */
static unsigned char *tok_build(int32_t magic, int32_t version, int32_t count, const uint32_t *ids,
                                size_t n_data, int width, size_t *size) {
    int32_t hdr[256];
    unsigned char *buf;
    size_t i;
    memset(hdr, 0, sizeof hdr);
    hdr[0] = magic;
    hdr[1] = version;
    hdr[2] = count;
    *size = 1024 + n_data * (size_t)width;
    buf = (unsigned char *)malloc(*size);
    memcpy(buf, hdr, 1024);
    for (i = 0; i < n_data; i++) {
        if (width == 2) {
            uint16_t v = (uint16_t)ids[i];
            memcpy(buf + 1024 + 2 * i, &v, 2);
        } else {
            memcpy(buf + 1024 + 4 * i, &ids[i], 4);
        }
    }
    return buf;
}

static const char *const W_MAGIC[] = {"magic", NULL};
static const char *const W_VERSION[] = {"version", NULL};
static const char *const W_MAGVER[] = {"version", "magic", NULL};
static const char *const W_TCOUNT_SHORT[] = {"truncated", "expected", "count", "size", "short", "bytes", NULL};
static const char *const W_TCOUNT_LONG[] = {"trailing", "extra", "expected", "count", "size", "long", "bytes", NULL};
static const char *const W_TNEG[] = {"count", "negative", "invalid", "size", NULL};
static const char *const W_TFEW[] = {"few", "count", "token", "least", "empty", "need", NULL};

static void expect_bad_tokens(const char *label, const void *data, size_t size, lisa_result want,
                              const char *const *words) {
    static int serial;
    char fname[96], mname[96];
    const char *path;
    lisa_tokens d;
    lisa_error err;
    lisa_result r;
    unsigned char *copy;

    snprintf(fname, sizeof fname, "tcase_%03d.bin", serial++);
    path = tpath(fname);
    write_file(path, data, size);
    cnt_reset();
    memset(&d, 0, sizeof d);
    memset(&err, 0, sizeof err);
    r = lisa_tokens_load(&d, path, &g_alloc, &err);
    check_failure(label, r, &err, want, path, words);
    lisa_tokens_free(&d);
    CHECK_CLEAN(label);
    unlink(path);

    snprintf(mname, sizeof mname, "tmem:%03d", serial++);
    copy = (unsigned char *)malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    cnt_reset();
    memset(&d, 0, sizeof d);
    memset(&err, 0, sizeof err);
    r = lisa_tokens_load_memory(&d, copy, size, mname, &g_alloc, &err);
    check_failure(label, r, &err, want, mname, words);
    lisa_tokens_free(&d);
    CHECK_CLEAN(mname);
    free(copy);
}

static void check_tokens_equal(const char *label, const lisa_tokens *d, const int *ids, size_t n) {
    size_t i, bad = 0;
    CHECK(d->n == n, "%s: %zu tokens, want %zu", label, d->n, n);
    if (d->n != n) return;
    for (i = 0; i < n; i++) bad += d->ids[i] != ids[i];
    CHECK(bad == 0, "%s: %zu ids differ", label, bad);
}

static void test_tokens_roundtrip(void) {
    int small[100], large[50];
    size_t i, size;
    const char *p16 = tpath("tok16.bin"), *p32 = tpath("tok32.bin");
    unsigned char *file;
    int32_t hdr[3];
    lisa_tokens d;
    lisa_error err;
    lisa_result r;

    for (i = 0; i < 100; i++) small[i] = (int)((i * 7919u) % 65536u);
    small[3] = 65535; /* the largest uint16 */
    small[4] = 0;
    for (i = 0; i < 50; i++) large[i] = (int)(i * 1000003u % 200000u);
    large[7] = 65536; /* the smallest id that needs uint32 */
    large[8] = INT_MAX;

    memset(&err, 0, sizeof err);
    r = lisa_tokens_save(small, 100, p16, &err);
    CHECK(r == LISA_OK, "save uint16 tokens: %s", err.message);
    file = read_file(p16, &size);
    CHECK(file && size == 1024 + 200, "uint16 token file has %zu bytes, want 1224", size);
    if (file && size >= 12) {
        memcpy(hdr, file, 12);
        CHECK(hdr[0] == MAGIC16 && hdr[1] == 1 && hdr[2] == 100,
              "uint16 header: magic %d version %d count %d", hdr[0], hdr[1], hdr[2]);
    }
    if (file && size == 1224) {
        uint16_t v;
        memcpy(&v, file + 1024 + 2 * 3, 2);
        CHECK(v == 65535, "token 3 stored as uint16 65535 (%u)", (unsigned)v);
    }
    free(file);
    cnt_reset();
    memset(&d, 0, sizeof d);
    r = lisa_tokens_load(&d, p16, &g_alloc, &err);
    CHECK(r == LISA_OK, "load uint16 tokens: %s", err.message);
    if (r == LISA_OK) check_tokens_equal("uint16 round trip", &d, small, 100);
    CHECK(d.bytes == g_cnt.live, "tokens.bytes %zu equals live bytes %zu", d.bytes, g_cnt.live);
    lisa_tokens_free(&d);
    CHECK_CLEAN("uint16 round trip");

    r = lisa_tokens_save(large, 50, p32, &err);
    CHECK(r == LISA_OK, "save uint32 tokens: %s", err.message);
    file = read_file(p32, &size);
    CHECK(file && size == 1024 + 200, "uint32 token file has %zu bytes, want 1224", size);
    if (file && size >= 12) {
        memcpy(hdr, file, 12);
        CHECK(hdr[0] == MAGIC32 && hdr[1] == 7 && hdr[2] == 50,
              "uint32 header: magic %d version %d count %d", hdr[0], hdr[1], hdr[2]);
    }
    free(file);
    cnt_reset();
    memset(&d, 0, sizeof d);
    r = lisa_tokens_load(&d, p32, &g_alloc, &err);
    CHECK(r == LISA_OK, "load uint32 tokens: %s", err.message);
    if (r == LISA_OK) check_tokens_equal("uint32 round trip", &d, large, 50);
    lisa_tokens_free(&d);
    CHECK_CLEAN("uint32 round trip");
    unlink(p16);
    unlink(p32);
}

static void test_tokens_hand_written(void) {
    uint32_t ids[12] = {5, 0, 65535, 17, 300, 2, 9, 9, 1, 40000, 3, 8};
    uint32_t big[6] = {70000, 0, 4000000000u, 123456789, 65536, 1};
    int want[12];
    size_t size, i;
    unsigned char *file;
    const char *path = tpath("hand_tokens.bin");
    lisa_tokens d;
    lisa_error err;
    lisa_result r;

    for (i = 0; i < 12; i++) want[i] = (int)ids[i];
    file = tok_build(MAGIC16, 1, 12, ids, 12, 2, &size);
    write_file(path, file, size);
    cnt_reset();
    memset(&d, 0, sizeof d);
    memset(&err, 0, sizeof err);
    r = lisa_tokens_load(&d, path, &g_alloc, &err);
    CHECK(r == LISA_OK, "hand-written uint16 file: %s", err.message);
    if (r == LISA_OK) check_tokens_equal("hand uint16", &d, want, 12);
    lisa_tokens_free(&d);
    CHECK_CLEAN("hand uint16");
    /* memory loader from an odd address */
    {
        unsigned char *mis = (unsigned char *)malloc(size + 1);
        memcpy(mis + 1, file, size);
        memset(&d, 0, sizeof d);
        r = lisa_tokens_load_memory(&d, mis + 1, size, "hand16-mem", &g_alloc, &err);
        CHECK(r == LISA_OK, "hand-written uint16, unaligned memory: %s", err.message);
        if (r == LISA_OK) check_tokens_equal("hand uint16 memory", &d, want, 12);
        lisa_tokens_free(&d);
        CHECK_CLEAN("hand uint16 memory");
        free(mis);
    }
    free(file);

    /* uint32 with ids that fit an int */
    big[2] = 2000000000u;
    for (i = 0; i < 6; i++) want[i] = (int)big[i];
    file = tok_build(MAGIC32, 7, 6, big, 6, 4, &size);
    write_file(path, file, size);
    memset(&d, 0, sizeof d);
    r = lisa_tokens_load(&d, path, &g_alloc, &err);
    CHECK(r == LISA_OK, "hand-written uint32 file: %s", err.message);
    if (r == LISA_OK) check_tokens_equal("hand uint32", &d, want, 6);
    lisa_tokens_free(&d);
    CHECK_CLEAN("hand uint32");
    {
        unsigned char *mis = (unsigned char *)malloc(size + 3);
        memcpy(mis + 3, file, size);
        memset(&d, 0, sizeof d);
        r = lisa_tokens_load_memory(&d, mis + 3, size, "hand32-mem", &g_alloc, &err);
        CHECK(r == LISA_OK, "hand-written uint32, unaligned memory: %s", err.message);
        if (r == LISA_OK) check_tokens_equal("hand uint32 memory", &d, want, 6);
        lisa_tokens_free(&d);
        CHECK_CLEAN("hand uint32 memory");
        free(mis);
    }
    free(file);

    /* a uint32 id above INT_MAX cannot be an int: the load fails, or the id
       stays non-negative and the vocabulary check rejects it */
    big[2] = 4000000000u;
    file = tok_build(MAGIC32, 7, 6, big, 6, 4, &size);
    memset(&d, 0, sizeof d);
    memset(&err, 0, sizeof err);
    r = lisa_tokens_load_memory(&d, file, size, "huge-id", &g_alloc, &err);
    if (r == LISA_OK) {
        lisa_result rv = lisa_tokens_check_vocab(&d, INT_MAX, "huge-id", &err);
        CHECK(rv == LISA_ERR_FORMAT && d.ids[2] != -1,
              "uint32 id 4000000000 loaded as %d and passed the vocabulary check", d.ids[2]);
    } else {
        CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "huge-id"),
              "uint32 id above INT_MAX: %d \"%s\"", (int)r, err.message);
    }
    lisa_tokens_free(&d);
    CHECK_CLEAN("huge id");
    free(file);
    unlink(path);
}

static void test_tokens_malformed(void) {
    uint32_t ids[16];
    size_t size, i;
    unsigned char *file;
    char missing[600];
    lisa_tokens d;
    lisa_error err;
    lisa_result r;

    snprintf(missing, sizeof missing, "%s", tpath("no_such_tokens.bin"));
    for (i = 0; i < 16; i++) ids[i] = (uint32_t)(i * 3 + 1);

    file = tok_build(12345, 1, 16, ids, 16, 2, &size);
    expect_bad_tokens("bad_magic", file, size, LISA_ERR_FORMAT, W_MAGIC);
    free(file);
    file = tok_build(MAGIC16, 2, 16, ids, 16, 2, &size);
    expect_bad_tokens("bad_version16", file, size, LISA_ERR_FORMAT, W_VERSION);
    free(file);
    file = tok_build(MAGIC32, 3, 16, ids, 16, 4, &size);
    expect_bad_tokens("bad_version32", file, size, LISA_ERR_FORMAT, W_VERSION);
    free(file);
    file = tok_build(MAGIC16, 7, 16, ids, 16, 4, &size);
    expect_bad_tokens("magic16_version7", file, size, LISA_ERR_FORMAT, W_MAGVER);
    free(file);
    file = tok_build(MAGIC32, 1, 16, ids, 16, 2, &size);
    expect_bad_tokens("magic32_version1", file, size, LISA_ERR_FORMAT, W_MAGVER);
    free(file);
    file = tok_build(MAGIC16, 1, 17, ids, 16, 2, &size);
    expect_bad_tokens("count_gt_data16", file, size, LISA_ERR_FORMAT, W_TCOUNT_SHORT);
    free(file);
    file = tok_build(MAGIC16, 1, 16, ids, 16, 2, &size);
    expect_bad_tokens("data_short_1byte", file, size - 1, LISA_ERR_FORMAT, W_TCOUNT_SHORT);
    free(file);
    file = tok_build(MAGIC32, 7, 16, ids, 15, 4, &size);
    expect_bad_tokens("count_gt_data32", file, size, LISA_ERR_FORMAT, W_TCOUNT_SHORT);
    free(file);
    file = tok_build(MAGIC16, 1, 15, ids, 16, 2, &size);
    expect_bad_tokens("data_gt_count16", file, size, LISA_ERR_FORMAT, W_TCOUNT_LONG);
    free(file);
    file = tok_build(MAGIC16, 1, 16, ids, 16, 2, &size);
    {
        unsigned char *longer = (unsigned char *)malloc(size + 1);
        memcpy(longer, file, size);
        longer[size] = 0;
        expect_bad_tokens("data_gt_count_1byte", longer, size + 1, LISA_ERR_FORMAT, W_TCOUNT_LONG);
        free(longer);
    }
    free(file);
    file = tok_build(MAGIC32, 7, 15, ids, 16, 4, &size);
    expect_bad_tokens("data_gt_count32", file, size, LISA_ERR_FORMAT, W_TCOUNT_LONG);
    free(file);
    file = tok_build(MAGIC16, 1, -1, ids, 16, 2, &size);
    expect_bad_tokens("count_neg", file, size, LISA_ERR_FORMAT, W_TNEG);
    free(file);
    file = tok_build(MAGIC32, 7, INT32_MIN, ids, 16, 4, &size);
    expect_bad_tokens("count_intmin", file, size, LISA_ERR_FORMAT, W_TNEG);
    free(file);
    file = tok_build(MAGIC16, 1, 16, ids, 16, 2, &size);
    expect_bad_tokens("header_1000", file, 1000, LISA_ERR_FORMAT, W_HEADER);
    expect_bad_tokens("header_1023", file, 1023, LISA_ERR_FORMAT, W_HEADER);
    expect_bad_tokens("header_8", file, 8, LISA_ERR_FORMAT, W_HEADER);
    expect_bad_tokens("tokens_empty", file, 0, LISA_ERR_FORMAT, W_HEADER);
    free(file);
    file = tok_build(MAGIC16, 1, 0, ids, 0, 2, &size);
    expect_bad_tokens("count0", file, size, LISA_ERR_FORMAT, W_TFEW);
    free(file);
    file = tok_build(MAGIC16, 1, 1, ids, 1, 2, &size);
    expect_bad_tokens("count1", file, size, LISA_ERR_FORMAT, W_TFEW);
    free(file);
    file = tok_build(MAGIC32, 7, 1, ids, 1, 4, &size);
    expect_bad_tokens("count1_32", file, size, LISA_ERR_FORMAT, W_TFEW);
    free(file);
    /* two tokens make one pair: fine */
    file = tok_build(MAGIC16, 1, 2, ids, 2, 2, &size);
    cnt_reset();
    memset(&d, 0, sizeof d);
    r = lisa_tokens_load_memory(&d, file, size, "two", &g_alloc, &err);
    CHECK(r == LISA_OK && d.n == 2, "two tokens load: %s", err.message);
    lisa_tokens_free(&d);
    CHECK_CLEAN("two tokens");
    free(file);

    cnt_reset();
    memset(&d, 0, sizeof d);
    memset(&err, 0, sizeof err);
    r = lisa_tokens_load(&d, missing, &g_alloc, &err);
    check_failure("missing tokens", r, &err, LISA_ERR_IO, missing, W_MISSING);
    lisa_tokens_free(&d);
    CHECK_CLEAN("missing tokens");
    memset(&d, 0, sizeof d);
    r = lisa_tokens_load(&d, missing, NULL, NULL);
    CHECK(r == LISA_ERR_IO, "missing token file without allocator or error struct");
    lisa_tokens_free(&d);

    /* every truncation of a small uint32 file fails cleanly */
    file = tok_build(MAGIC32, 7, 8, ids, 8, 4, &size);
    {
        size_t len, wrong = 0, unclean = 0, first = (size_t)-1;
        for (len = 0; len < size; len++) {
            unsigned char *copy = (unsigned char *)malloc(len ? len : 1);
            memcpy(copy, file, len);
            cnt_reset();
            memset(&d, 0, sizeof d);
            r = lisa_tokens_load_memory(&d, copy, len, "t", &g_alloc, &err);
            if (r != LISA_ERR_FORMAT) {
                if (!wrong) first = len;
                wrong++;
            }
            lisa_tokens_free(&d);
            unclean += g_cnt.live != 0 || g_cnt.bad_frees != 0;
            free(copy);
        }
        CHECK(wrong == 0, "token truncations: %zu lengths not LISA_ERR_FORMAT (first %zu)", wrong, first);
        CHECK(unclean == 0, "token truncations: %zu unclean", unclean);
    }
    free(file);
}

static void test_tokens_vocab(void) {
    int ids[6] = {0, 5, 12345, 3, 9, 2};
    lisa_tokens d;
    lisa_error err;
    lisa_result r;

    memset(&d, 0, sizeof d);
    d.ids = ids;
    d.n = 6;
    memset(&err, 0, sizeof err);
    r = lisa_tokens_check_vocab(&d, 12346, "train.bin", &err);
    CHECK(r == LISA_OK, "all ids below 12346: %d %s", (int)r, err.message);
    r = lisa_tokens_check_vocab(&d, 12345, "train.bin", &err);
    CHECK(r == LISA_ERR_FORMAT && err.code == r, "id 12345 with vocab 12345 rejected: %d", (int)r);
    CHECK(strstr(err.message, "train.bin") && strstr(err.message, "12345"),
          "vocab message names the file and the id: \"%s\"", err.message);
    r = lisa_tokens_check_vocab(&d, 100, "val.bin", &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "val.bin") && strstr(err.message, "12345"),
          "the first bad id (12345) is named: \"%s\"", err.message);
    r = lisa_tokens_check_vocab(&d, 100, "val.bin", NULL);
    CHECK(r == LISA_ERR_FORMAT, "check_vocab without an error struct");
    ids[1] = -1;
    r = lisa_tokens_check_vocab(&d, 1 << 20, "neg.bin", &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "neg.bin") && strstr(err.message, "-1"),
          "a negative id is rejected and named: %d \"%s\"", (int)r, err.message);
}

static void check_batch(const char *label, const int *ids, size_t n, long long index, int B, int T) {
    int *in = (int *)malloc(sizeof(int) * (size_t)(B * T));
    int *tg = (int *)malloc(sizeof(int) * (size_t)(B * T));
    lisa_tokens d;
    int j, bad = 0, first = -1;
    size_t start = (size_t)((unsigned long long)index * (unsigned long long)(B * T) % n);
    memset(&d, 0, sizeof d);
    d.ids = (int *)ids;
    d.n = n;
    for (j = 0; j < B * T; j++) in[j] = tg[j] = -7;
    lisa_tokens_batch(&d, index, B, T, in, tg);
    for (j = 0; j < B * T; j++) {
        int wi = ids[(start + (size_t)j) % n], wt = ids[(start + (size_t)j + 1) % n];
        if (in[j] != wi || tg[j] != wt) {
            if (first < 0) {
                first = j;
                fprintf(stderr, "  %s: position %d: input %d target %d, want %d %d\n", label, j,
                        in[j], tg[j], wi, wt);
            }
            bad++;
        }
    }
    CHECK(bad == 0, "%s: batch %lld (B %d, T %d, n %zu): %d wrong positions", label, index, B, T, n,
          bad);
    free(in);
    free(tg);
}

static void test_tokens_batch(void) {
    int ids[23], i;
    for (i = 0; i < 23; i++) ids[i] = 100 + i;
    /* explicit expectations for B 2, T 4, n 23 */
    {
        lisa_tokens d;
        int in[8], tg[8];
        static const int in0[8] = {100, 101, 102, 103, 104, 105, 106, 107};
        static const int tg0[8] = {101, 102, 103, 104, 105, 106, 107, 108};
        static const int in1[8] = {108, 109, 110, 111, 112, 113, 114, 115};
        static const int tg1[8] = {109, 110, 111, 112, 113, 114, 115, 116};
        /* batch 2 starts at 16: 116..122 then wraps to 100 */
        static const int in2[8] = {116, 117, 118, 119, 120, 121, 122, 100};
        static const int tg2[8] = {117, 118, 119, 120, 121, 122, 100, 101};
        /* batch 3 starts at 24 mod 23 = 1 */
        static const int in3[8] = {101, 102, 103, 104, 105, 106, 107, 108};
        memset(&d, 0, sizeof d);
        d.ids = ids;
        d.n = 23;
        lisa_tokens_batch(&d, 0, 2, 4, in, tg);
        CHECK(!memcmp(in, in0, sizeof in) && !memcmp(tg, tg0, sizeof tg), "batch 0");
        lisa_tokens_batch(&d, 1, 2, 4, in, tg);
        CHECK(!memcmp(in, in1, sizeof in) && !memcmp(tg, tg1, sizeof tg), "batch 1");
        lisa_tokens_batch(&d, 2, 2, 4, in, tg);
        CHECK(!memcmp(in, in2, sizeof in) && !memcmp(tg, tg2, sizeof tg), "batch 2 wraps: %d %d / %d %d",
              in[6], in[7], tg[6], tg[7]);
        lisa_tokens_batch(&d, 3, 2, 4, in, tg);
        CHECK(!memcmp(in, in3, sizeof in), "batch 3 starts at 24 mod 23 = 1: %d", in[0]);
    }
    check_batch("general", ids, 23, 0, 2, 4);
    check_batch("general", ids, 23, 2, 2, 4);
    check_batch("general", ids, 23, 5, 3, 3);
    check_batch("large index", ids, 23, 1000000007LL, 2, 4);
    check_batch("exact multiple", ids, 16, 1, 2, 4);       /* starts at 8, target wraps at the end */
    check_batch("exact multiple end", ids, 16, 3, 2, 4);   /* starts at 24 mod 16 = 8 */
    check_batch("batch longer than data", ids, 5, 1, 2, 4); /* reading wraps more than once */
    check_batch("two tokens", ids, 2, 3, 1, 3);
}

/* ------------------------------------------------------------------------- */
/* Atomic saving                                                              */
/* ------------------------------------------------------------------------- */

/* ------------------------------------------------------------------------- */
/* One header decoder: every path that reads a llama2.c file agrees          */
/* ------------------------------------------------------------------------- */

static int configs_equal(const lisa_config *a, const lisa_config *b) {
    return a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->vocab_size == b->vocab_size &&
           a->max_seq_len == b->max_seq_len && a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta &&
           a->tied_head == b->tied_head;
}

/* A small untied model saved as a legacy (v1 = 0) or version-1 file; its bytes. */
static unsigned char *saved_llama2c(int v1, size_t *size) {
    lisa_config c;
    lisa_model m;
    const char *path = tpath("decoder_src.bin");
    unsigned char *bytes = NULL;
    memset(&c, 0, sizeof c);
    c.dim = 8; c.hidden_dim = 12; c.n_layers = 2; c.n_heads = 2; c.n_kv_heads = 1; c.vocab_size = 11;
    c.max_seq_len = 5;
    *size = 0;
    if (lisa_model_init(&m, &c, NULL, NULL) != LISA_OK) return NULL;
    lisa_model_init_random(&m, 5);
    if ((v1 ? lisa_model_save_llama2c_v1(&m, path, NULL) : lisa_model_save_llama2c(&m, path, NULL)) == LISA_OK)
        bytes = read_file(path, size);
    lisa_model_free(&m);
    unlink(path);
    return bytes;
}

/* Every reader of a llama2.c file given these bytes: the file loaders (either
   kind, version 1 only, lisa_model_load), the memory loaders and
   lisa_model_read_config. All must give the same result (version-1-only
   readers a format error for a legacy file) and, on success, the same config.
   Returns how many disagreed; *r gets the generic loader's result and err its error. */
static int readers_disagree(const unsigned char *data, size_t size, int v1, const char *label, lisa_result *r,
                            lisa_error *err) {
    const char *path = tpath("decoder.bin");
    lisa_model m;
    lisa_config c;
    lisa_error e;
    lisa_result got[6];
    int i, bad = 0;
    memset(err, 0, sizeof *err);
    if (!write_file(path, data, size)) return 1;
    cnt_reset();
    *r = lisa_model_load_llama2c(&m, path, &g_alloc, err);
    c = m.config;
    if (*r == LISA_OK) lisa_model_free(&m);
    got[0] = lisa_model_load(&m, path, &g_alloc, &e);
    if (got[0] == LISA_OK) {
        if (!configs_equal(&m.config, &c)) bad++;
        lisa_model_free(&m);
    }
    got[1] = lisa_model_load_llama2c_memory(&m, data, size, "decoder.bin", &g_alloc, &e);
    if (got[1] == LISA_OK) lisa_model_free(&m);
    got[2] = lisa_model_load_llama2c_v1(&m, path, &g_alloc, &e);
    if (got[2] == LISA_OK) lisa_model_free(&m);
    got[3] = lisa_model_load_llama2c_v1_memory(&m, data, size, "decoder.bin", &g_alloc, &e);
    if (got[3] == LISA_OK) lisa_model_free(&m);
    got[4] = lisa_model_read_config(path, &m.config, &g_alloc, &e);
    if (got[4] == LISA_OK && !configs_equal(&m.config, &c)) bad++;
    got[5] = *r;
    for (i = 0; i < 6; i++) {
        lisa_result want = (i == 2 || i == 3) && !v1 ? LISA_ERR_FORMAT : *r;
        if (got[i] != want) {
            bad++;
            fprintf(stderr, "%s: reader %d gives %s, the llama2.c loader %s (%s)\n", label, i,
                    lisa_result_string(got[i]), lisa_result_string(*r), err->message);
        }
    }
    if (g_cnt.live != 0) bad++;
    unlink(path);
    return bad;
}

static void set_i32(unsigned char *b, int32_t v) { memcpy(b, &v, 4); }

/* Each header field of either kind set to values a broken or hostile file
   might hold: the readers must agree on every one. */
static void test_readers_agree(void) {
    static const int32_t values[] = {0, 1, -1, 2, 3, 4, 16, -11, 11, 1 << 20, 1 << 30, INT32_MIN, INT32_MAX};
    int v1, field, k, n_cases = 0, n_ok = 0, n_bad = 0;
    for (v1 = 0; v1 < 2; v1++) {
        size_t size, base = v1 ? 8 : 0;
        unsigned char *file = saved_llama2c(v1, &size), *copy;
        lisa_result r;
        lisa_error err;
        CHECK(file != NULL, "agree: a %s file was written", v1 ? "version-1" : "legacy");
        if (!file) continue;
        copy = (unsigned char *)malloc(size + 8);
        memcpy(copy, file, size);
        n_bad += readers_disagree(copy, size, v1, "the file as saved", &r, &err);
        CHECK(r == LISA_OK, "agree: the %s file as saved loads: %s", v1 ? "version-1" : "legacy", err.message);
        for (field = 0; field < 7; field++)
            for (k = 0; k < (int)(sizeof values / sizeof values[0]); k++) {
                memcpy(copy, file, size);
                set_i32(copy + base + 4 * field, values[k]);
                n_bad += readers_disagree(copy, size, v1, "a header field", &r, &err);
                n_cases++;
                n_ok += r == LISA_OK;
            }
        if (v1) { /* version, the shared-classifier flag */
            for (k = 0; k < 3; k++) {
                memcpy(copy, file, size);
                if (k < 2) set_i32(copy + 4, k == 0 ? 0 : 2);
                else copy[36] = 2;
                n_bad += readers_disagree(copy, size, v1, "version or flag", &r, &err);
                CHECK(r == LISA_ERR_FORMAT, "agree: version-1 %s is refused: %s",
                      k < 2 ? "version field" : "flag 2", err.message);
            }
        }
        memcpy(copy, file, size);
        n_bad += readers_disagree(copy, size - 4, v1, "truncated", &r, &err);
        CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "truncated"), "agree: a truncated %s file: %s",
              v1 ? "version-1" : "legacy", err.message);
        memset(copy + size, 0, 8);
        n_bad += readers_disagree(copy, size + 8, v1, "trailing", &r, &err);
        CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "trailing"), "agree: trailing bytes after a %s file: %s",
              v1 ? "version-1" : "legacy", err.message);
        free(copy);
        free(file);
    }
    CHECK(n_bad == 0, "agree: every reader gives the same result and config (%d disagreements)", n_bad);
    /* Some changes must still load (an untied head's sign in the legacy vocab_size, a length the
       file still fits) and most must not: the loop tried both kinds of case. */
    CHECK(n_ok > 0 && n_ok < n_cases, "agree: %d of %d changed headers load", n_ok, n_cases);
}

/* The legacy format marks an own head with a negative vocab_size; version 1
   has a flag for it, and there a negative vocab_size is an error on every path. */
static void test_negative_vocab(void) {
    static const char *const W_NEG[] = {"vocab_size", NULL};
    const char *path = tpath("negvocab.bin");
    lisa_model m;
    lisa_config c;
    lisa_error err;
    lisa_result r;
    size_t size;
    unsigned char *file = saved_llama2c(1, &size);
    int32_t vocab;
    CHECK(file != NULL, "negative vocab: a version-1 file was written");
    if (!file) return;
    memcpy(&vocab, file + 28, 4);
    CHECK(vocab == 11 && file[36] == 0, "negative vocab: the saved untied file has vocab_size 11 (%d), flag 0 (%d)",
          (int)vocab, file[36]);
    set_i32(file + 28, -vocab); /* what the legacy format would mean by "untied": the size still fits */
    CHECK(write_file(path, file, size), "negative vocab: file written");
    cnt_reset();
    r = lisa_model_load_llama2c(&m, path, &g_alloc, &err);
    check_failure("negative v1 vocab: lisa_model_load_llama2c", r, &err, LISA_ERR_FORMAT, "negvocab.bin", W_NEG);
    r = lisa_model_load_llama2c_v1(&m, path, &g_alloc, &err);
    check_failure("negative v1 vocab: lisa_model_load_llama2c_v1", r, &err, LISA_ERR_FORMAT, "negvocab.bin", W_NEG);
    r = lisa_model_load(&m, path, &g_alloc, &err);
    check_failure("negative v1 vocab: lisa_model_load", r, &err, LISA_ERR_FORMAT, "negvocab.bin", W_NEG);
    r = lisa_model_read_config(path, &c, &g_alloc, &err);
    check_failure("negative v1 vocab: lisa_model_read_config", r, &err, LISA_ERR_FORMAT, "negvocab.bin", W_NEG);
    r = lisa_model_load_llama2c_memory(&m, file, size, "negvocab.bin", &g_alloc, &err);
    check_failure("negative v1 vocab: lisa_model_load_llama2c_memory", r, &err, LISA_ERR_FORMAT, "negvocab.bin", W_NEG);
    r = lisa_model_load_llama2c_v1_memory(&m, file, size, "negvocab.bin", &g_alloc, &err);
    check_failure("negative v1 vocab: lisa_model_load_llama2c_v1_memory", r, &err, LISA_ERR_FORMAT, "negvocab.bin",
                  W_NEG);
    CHECK(strstr(err.message, "-11") != NULL, "negative v1 vocab: the message gives the value: \"%s\"", err.message);
    CHECK_CLEAN("negative v1 vocab");
    free(file);
    /* The same sign in a legacy file: an untied model of vocabulary 11. */
    file = saved_llama2c(0, &size);
    CHECK(file != NULL, "negative vocab: a legacy file was written");
    if (!file) return;
    memcpy(&vocab, file + 20, 4);
    CHECK(vocab == -11, "negative vocab: the legacy writer marks the untied head by the sign (%d)", (int)vocab);
    CHECK(write_file(path, file, size), "negative vocab: legacy file written");
    r = lisa_model_read_config(path, &c, NULL, &err);
    CHECK(r == LISA_OK && c.vocab_size == 11 && c.tied_head == 0, "negative legacy vocab: untied, 11: %s",
          err.message);
    free(file);
    unlink(path);
}

static void test_atomic_save(void) {
    char sub[600], names[1024], path[700], nodir[700], isdir[700];
    lisa_config c;
    lisa_model m;
    lisa_error err;
    lisa_result r;
    int n, ids[5] = {1, 2, 3, 4, 5};

    snprintf(sub, sizeof sub, "%s/atomic", g_dir);
    mkdir(sub, 0700);
    memset(&c, 0, sizeof c);
    c.dim = 8; c.hidden_dim = 16; c.n_layers = 1; c.n_heads = 2; c.vocab_size = 12;
    c.max_seq_len = 4;
    memset(&m, 0, sizeof m);
    r = lisa_model_init(&m, &c, NULL, &err);
    CHECK(r == LISA_OK, "atomic: init: %s", err.message);
    if (r != LISA_OK) return;
    lisa_model_init_random(&m, 7);

    snprintf(path, sizeof path, "%s/model.bin", sub);
    r = lisa_model_save_llama2c(&m, path, &err);
    CHECK(r == LISA_OK, "atomic: save: %s", err.message);
    n = list_dir(sub, names, sizeof names);
    CHECK(n == 1 && !strcmp(names, "model.bin"), "atomic: only model.bin after saving: [%s]", names);
    r = lisa_model_save_llama2c(&m, path, &err); /* overwrite */
    CHECK(r == LISA_OK, "atomic: save over an existing file: %s", err.message);
    n = list_dir(sub, names, sizeof names);
    CHECK(n == 1 && !strcmp(names, "model.bin"), "atomic: only model.bin after overwriting: [%s]",
          names);
    unlink(path);

    snprintf(path, sizeof path, "%s/tokens.bin", sub);
    r = lisa_tokens_save(ids, 5, path, &err);
    CHECK(r == LISA_OK, "atomic: save tokens: %s", err.message);
    n = list_dir(sub, names, sizeof names);
    CHECK(n == 1 && !strcmp(names, "tokens.bin"), "atomic: only tokens.bin after saving: [%s]", names);
    unlink(path);

    /* a directory that does not exist */
    snprintf(nodir, sizeof nodir, "%s/missing_dir/model.bin", sub);
    memset(&err, 0, sizeof err);
    r = lisa_model_save_llama2c(&m, nodir, &err);
    CHECK(r == LISA_ERR_IO && err.code == r, "atomic: save into a missing directory: %d", (int)r);
    CHECK(strstr(err.message, "missing_dir") != NULL, "atomic: the message names the path: \"%s\"",
          err.message);
    snprintf(nodir, sizeof nodir, "%s/missing_dir", sub);
    CHECK(!file_exists(nodir), "atomic: the missing directory was not created");
    n = list_dir(sub, names, sizeof names);
    CHECK(n == 0, "atomic: nothing left after a failed save: [%s]", names);
    snprintf(nodir, sizeof nodir, "%s/missing_dir/tokens.bin", sub);
    memset(&err, 0, sizeof err);
    r = lisa_tokens_save(ids, 5, nodir, &err);
    CHECK(r == LISA_ERR_IO && err.code == r, "atomic: save tokens into a missing directory: %d", (int)r);
    n = list_dir(sub, names, sizeof names);
    CHECK(n == 0, "atomic: nothing left after a failed token save: [%s]", names);

    /* the target is a directory: the temporary file is written, the rename
       fails, and the temporary file must be removed */
    snprintf(isdir, sizeof isdir, "%s/adir", sub);
    mkdir(isdir, 0700);
    memset(&err, 0, sizeof err);
    r = lisa_model_save_llama2c(&m, isdir, &err);
    CHECK(r == LISA_ERR_IO, "atomic: save onto a directory fails with LISA_ERR_IO: %d", (int)r);
    n = list_dir(sub, names, sizeof names);
    CHECK(n == 1 && !strcmp(names, "adir"), "atomic: no temporary file left after a failed rename: [%s]",
          names);
    n = list_dir(isdir, names, sizeof names);
    CHECK(n == 0, "atomic: nothing written inside the directory: [%s]", names);
    r = lisa_tokens_save(ids, 5, isdir, &err);
    CHECK(r == LISA_ERR_IO, "atomic: token save onto a directory fails with LISA_ERR_IO: %d", (int)r);
    n = list_dir(sub, names, sizeof names);
    CHECK(n == 1 && !strcmp(names, "adir"), "atomic: no temporary token file left: [%s]", names);
    rmdir(isdir);

    lisa_model_free(&m);
    rmdir(sub);
}

/* ------------------------------------------------------------------------- */
/* Saves that fail over existing files                                        */
/* ------------------------------------------------------------------------- */

typedef struct token_list {
    const int *ids;
    size_t n;
} token_list;

static lisa_result save_l2c(const void *m, const char *path, lisa_error *err) {
    return lisa_model_save_llama2c((const lisa_model *)m, path, err);
}

static lisa_result save_l2c_v1(const void *m, const char *path, lisa_error *err) {
    return lisa_model_save_llama2c_v1((const lisa_model *)m, path, err);
}

static lisa_result save_tokens(const void *l, const char *path, lisa_error *err) {
    const token_list *t = (const token_list *)l;
    return lisa_tokens_save(t->ids, t->n, path, err);
}

static lisa_result save_hf_bf16(const void *m, const char *dir, lisa_error *err) {
    return lisa_model_save_hf((const lisa_model *)m, dir, LISA_FILE_BF16, err);
}

/* An allocator that refuses everything: the Hugging Face save's header. */
static void *refuse_alloc(void *user, size_t size) {
    (void)user;
    (void)size;
    return NULL;
}

static void refuse_free(void *user, void *ptr, size_t size) {
    (void)user;
    (void)size;
    free(ptr);
}

static void test_save_failures(void) {
    char work[600], dir[700], path[800], names[256];
    int ids16[600], ids32[600], i;
    token_list t16, t32;
    lisa_config c;
    lisa_model m, refusing;
    lisa_error err;
    lisa_result r;
    save_fail_case cases[5];
    memset(cases, 0, sizeof cases);
    memset(&c, 0, sizeof c);
    c.dim = 16; c.hidden_dim = 24; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.vocab_size = 40;
    c.max_seq_len = 8;
    if (lisa_model_init(&m, &c, NULL, &err) != LISA_OK) {
        CHECK(0, "save failures: init: %s", err.message);
        return;
    }
    lisa_model_init_random(&m, 11);
    for (i = 0; i < 600; i++) {
        ids16[i] = (i * 37) % 40000;
        ids32[i] = i * 1001;
    }
    t16.ids = ids16;
    t16.n = 600;
    t32.ids = ids32;
    t32.n = 600;
    cases[0].label = "llama2.c save";
    cases[0].save = save_l2c;
    cases[0].obj = &m;
    cases[0].files[0] = "model.bin";
    cases[1] = cases[0];
    cases[1].label = "llama2.c version 1 save";
    cases[1].save = save_l2c_v1;
    cases[2].label = "uint16 token save";
    cases[2].save = save_tokens;
    cases[2].obj = &t16;
    cases[2].files[0] = "data.tok";
    cases[3] = cases[2];
    cases[3].label = "uint32 token save";
    cases[3].obj = &t32;
    cases[4].label = "Hugging Face save";
    cases[4].save = save_hf_bf16;
    cases[4].obj = &m;
    cases[4].files[0] = "model.safetensors";
    cases[4].files[1] = "config.json";
    cases[4].into_dir = 1;
    snprintf(work, sizeof work, "%s/save_failures", g_dir);
    mkdir(work, 0700);
    for (i = 0; i < 5; i++) save_fail_check(&cases[i], work);

    /* the Hugging Face save's own allocation fails: nothing is touched */
    snprintf(dir, sizeof dir, "%s/hf", work);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(write_file(path, "old", 3), "save failures: an old config.json");
    refusing = m;
    refusing.allocator.alloc = refuse_alloc;
    refusing.allocator.free = refuse_free;
    refusing.allocator.user = NULL;
    memset(&err, 0, sizeof err);
    r = lisa_model_save_hf(&refusing, dir, LISA_FILE_F32, &err);
    CHECK(r == LISA_ERR_NOMEM && err.code == r, "Hugging Face save without memory: LISA_ERR_NOMEM, got %d", (int)r);
    {
        size_t n;
        unsigned char *back = read_file(path, &n);
        CHECK(back && n == 3 && memcmp(back, "old", 3) == 0, "Hugging Face save without memory keeps config.json");
        free(back);
    }
    CHECK(list_dir(dir, names, sizeof names) == 1 && !strcmp(names, "config.json"),
          "Hugging Face save without memory writes nothing: [%s]", names);
    unlink(path);
    rmdir(dir);
    CHECK(list_dir(work, names, sizeof names) == 0, "save failures: nothing left: [%s]", names);
    rmdir(work);
    lisa_model_free(&m);
}

int main(void) {
    char tmpl[] = "/tmp/lisa_test_files_XXXXXX";
    l2cfg c;
    char names[1024];
    if (!mkdtemp(tmpl)) {
        snprintf(g_dir, sizeof g_dir, "/tmp/lisa_test_files_%ld", (long)getpid());
        mkdir(g_dir, 0700);
    } else {
        snprintf(g_dir, sizeof g_dir, "%s", tmpl);
    }

    /* hand-written files: untied with GQA, tied with GQA, tied without GQA */
    c.dim = 8; c.hidden = 12; c.layers = 2; c.heads = 4; c.kv = 2; c.vocab = 10; c.seq = 6; c.tied = 0;
    test_hand_written(&c, "untied_gqa");
    c.tied = 1;
    test_hand_written(&c, "tied_gqa");
    c.dim = 12; c.hidden = 20; c.layers = 3; c.heads = 3; c.kv = 1; c.vocab = 7; c.seq = 5; c.tied = 1;
    test_hand_written(&c, "tied_mqa");
    c.dim = 16; c.hidden = 24; c.layers = 1; c.heads = 2; c.kv = 2; c.vocab = 9; c.seq = 4; c.tied = 0;
    test_hand_written(&c, "untied_mha");

    test_roundtrip(16, 40, 2, 4, 2, 32, 16, 1, "roundtrip tied gqa");
    test_roundtrip(16, 40, 3, 4, 1, 33, 8, 0, "roundtrip untied mqa");
    test_roundtrip(24, 64, 2, 4, 0, 50, 12, 0, "roundtrip untied mha");
    test_roundtrip(32, 48, 1, 8, 4, 17, 4, 1, "roundtrip tied gqa 8 heads");

    test_malformed_llama2c();
    test_truncations(0);
    test_truncations(1);
    test_readers_agree();
    test_negative_vocab();

    test_tokens_roundtrip();
    test_tokens_hand_written();
    test_tokens_malformed();
    test_tokens_vocab();
    test_tokens_batch();

    test_atomic_save();
    test_save_failures();

    list_dir(g_dir, names, sizeof names);
    CHECK(names[0] == 0, "temporary directory empty at the end: [%s]", names);
    remove_tree(g_dir);
    free(g_cnt.recs);
    return test_report("files");
}
