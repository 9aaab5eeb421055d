/* libFuzzer harness: lisa_gguf_parse_memory and the GGUF accessors.

   Every input is parsed through a counting allocator and checked against a
   decoder written here, independently of lisa.h's GGUF code, from the format
   as the header documents it: "GGUF", a little-endian uint32 version 2 or 3,
   uint64 tensor and key counts; each key a uint64 length of 1 to 65535 bytes
   none of which is a control byte (< 0x20 or 0x7f), a uint32 value type below
   13 and a value (bools 0 or 1, strings a uint64 length and bytes, arrays a
   uint32 element type, a uint64 count and the elements, at most
   LISA_GGUF_MAX_DEPTH array levels); general.alignment, when there, a uint32
   power of two (default 32); each tensor info a name (as keys), a uint32
   dimension count of at most 4, uint64 dimensions each and their product at
   most INT64_MAX, a uint32 ggml type, a uint64 offset that is a multiple of
   the alignment and, for types lisa_ggml_type_size() knows, rows of whole
   blocks, a size within int64 and no overlap with the tensor before; keys
   unique, tensor names unique. lisa.h must accept exactly such inputs (the
   data after the tensor infos is not looked at). A failure must be
   LISA_ERR_FORMAT (or LISA_ERR_NOMEM) with a message naming the input and
   nothing left allocated. A success must give the decoder's keys (name, type,
   element type, count, value position and size) and tensor infos in file
   order, the header size and data offset; lisa_gguf_find and
   lisa_gguf_find_tensor must find each one; every scalar and every array
   element is read through the typed accessors, each of which must agree with
   the type (success for the right one, LISA_ERR_FORMAT otherwise) and with the
   bytes; the byte count is what the allocator saw. Then each allocation is
   made to fail in turn, and the input is parsed again with the default
   allocator, no name and no error struct.

   Every input that parses is then read as a tokenizer by
   lisa_tokenizer_load_gguf_metadata (the metadata parsed with the default
   allocator, the tokenizer through the counting one): a failure must be a
   clean error naming the input, a success a BPE tokenizer with one id per
   element of tokenizer.ggml.tokens and the allocator's byte count, which
   encodes a short text (with BOS/EOS as configured) to ids within the
   vocabulary and decodes them; then each of the load's allocations is made
   to fail in turn.

   A tokenizer that loads is then written as tokenizer.json and
   tokenizer_config.json (lisa_gguf_save_hf_tokenizer, into a temporary
   directory): a failure must be a clean error naming the input or the file;
   a success must load again with lisa_tokenizer_load_hf, to a vocabulary of
   the same size, and for model "gpt2" encode the short text to the same ids
   as the GGUF tokenizer.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument (it reads
   tests/fixtures/gguf/). */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#define I64_MAX 0x7FFFFFFFFFFFFFFFull

typedef struct ref_kv {
    size_t key, key_len;  /* in the input */
    uint32_t type, elem_type;
    uint64_t count;
    size_t value, value_size;
} ref_kv;

typedef struct ref_tensor {
    size_t name, name_len;
    uint32_t n_dims, type;
    uint64_t dims[4], offset, size;
} ref_tensor;

typedef struct ref_gguf {
    const uint8_t *p;
    size_t n, pos;
    uint64_t n_kv, n_t;
    ref_kv *kv;
    ref_tensor *t;
    uint32_t alignment;
    size_t header_size;
} ref_gguf;

static uint64_t rd(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    int i;
    for (i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int ref_take(ref_gguf *r, int bytes, uint64_t *v) {
    if (r->n - r->pos < (size_t)bytes) return 0;
    *v = rd(r->p + r->pos, bytes);
    r->pos += (size_t)bytes;
    return 1;
}

static int ref_fixed(uint32_t t) {
    static const int sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sizes[t] : -1;
}

static int ref_name(ref_gguf *r, size_t *at, size_t *len) {
    uint64_t n, i;
    if (!ref_take(r, 8, &n) || n == 0 || n > 65535 || n > r->n - r->pos) return 0;
    for (i = 0; i < n; i++)
        if (r->p[r->pos + i] < 0x20 || r->p[r->pos + i] == 0x7f) return 0;
    *at = r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return 1;
}

/* A value of type t; levels: the array levels around it. */
static int ref_value(ref_gguf *r, uint32_t t, int levels) {
    uint64_t et, count, k, len;
    int size = ref_fixed(t);
    if (size < 0) return 0;
    if (t == LISA_GGUF_STRING) {
        if (!ref_take(r, 8, &len) || len > r->n - r->pos) return 0;
        r->pos += (size_t)len;
        return 1;
    }
    if (t == LISA_GGUF_ARRAY) {
        if (levels + 1 > LISA_GGUF_MAX_DEPTH) return 0;
        if (!ref_take(r, 4, &et) || !ref_take(r, 8, &count) || ref_fixed((uint32_t)et) < 0) return 0;
        for (k = 0; k < count; k++) /* ends as soon as the bytes do: every element takes at least one */
            if (!ref_value(r, (uint32_t)et, levels + 1)) return 0;
        return 1;
    }
    if ((size_t)size > r->n - r->pos) return 0;
    if (t == LISA_GGUF_BOOL && r->p[r->pos] > 1) return 0;
    r->pos += (size_t)size;
    return 1;
}

static int same(const uint8_t *p, size_t a, size_t al, size_t b, size_t bl) {
    return al == bl && memcmp(p + a, p + b, al) == 0;
}

/* 1 when the input is a valid header; ref->kv and ref->t are the caller's to free. */
static int ref_parse(ref_gguf *r, const uint8_t *p, size_t n) {
    uint64_t v, i, k;
    uint64_t prev_end = 0;
    memset(r, 0, sizeof *r);
    r->p = p;
    r->n = n;
    r->alignment = 32;
    if (n < 24 || memcmp(p, "GGUF", 4) != 0) return 0;
    v = rd(p + 4, 4);
    if (v != 2 && v != 3) return 0;
    r->n_t = rd(p + 8, 8);
    r->n_kv = rd(p + 16, 8);
    r->pos = 24;
    if (r->n_kv > n || r->n_t > n) return 0; /* cannot fit: a key or tensor takes more than one byte */
    r->kv = (ref_kv *)calloc((size_t)r->n_kv + 1, sizeof *r->kv);
    r->t = (ref_tensor *)calloc((size_t)r->n_t + 1, sizeof *r->t);
    FUZZ_CHECK(r->kv && r->t, "out of memory in the harness");
    for (i = 0; i < r->n_kv; i++) {
        ref_kv *e = &r->kv[i];
        uint64_t t;
        if (!ref_name(r, &e->key, &e->key_len) || !ref_take(r, 4, &t) || t >= 13) return 0;
        e->type = e->elem_type = (uint32_t)t;
        e->count = 1;
        e->value = r->pos;
        if (t == LISA_GGUF_STRING) e->value += 8;
        if (t == LISA_GGUF_ARRAY) {
            if (r->n - r->pos < 12) return 0;
            e->elem_type = (uint32_t)rd(p + r->pos, 4);
            e->count = rd(p + r->pos + 4, 8);
            e->value += 12;
        }
        if (!ref_value(r, (uint32_t)t, 0)) return 0;
        e->value_size = r->pos - e->value;
        if (e->key_len == 17 && memcmp(p + e->key, "general.alignment", 17) == 0) {
            uint32_t a;
            if (t != LISA_GGUF_UINT32) return 0;
            a = (uint32_t)rd(p + e->value, 4);
            if (a == 0 || (a & (a - 1))) return 0;
            r->alignment = a;
        }
    }
    for (i = 0; i < r->n_t; i++) {
        ref_tensor *t = &r->t[i];
        uint64_t nd, d, n_el = 1, x;
        uint32_t block, bytes;
        if (!ref_name(r, &t->name, &t->name_len) || !ref_take(r, 4, &nd) || nd > 4) return 0;
        t->n_dims = (uint32_t)nd;
        for (d = 0; d < 4; d++) {
            if (d < nd) {
                if (!ref_take(r, 8, &x) || x > I64_MAX) return 0;
            } else {
                x = 1;
            }
            if (x && n_el > I64_MAX / x) return 0;
            n_el *= x;
            t->dims[d] = x;
        }
        if (!ref_take(r, 4, &x)) return 0;
        t->type = (uint32_t)x;
        if (!ref_take(r, 8, &t->offset)) return 0;
        if (lisa_ggml_type_size(t->type, &block, &bytes)) {
            if (t->dims[0] % block) return 0;
            if (n_el / block > I64_MAX / bytes) return 0;
            t->size = n_el / block * bytes;
        }
        if (t->offset % r->alignment || t->offset > I64_MAX - t->size || t->offset < prev_end) return 0;
        prev_end = t->offset + t->size;
    }
    /* Unique keys and names (quadratic: inputs are small). */
    for (i = 0; i < r->n_kv; i++)
        for (k = 0; k < i; k++)
            if (same(p, r->kv[i].key, r->kv[i].key_len, r->kv[k].key, r->kv[k].key_len)) return 0;
    for (i = 0; i < r->n_t; i++)
        for (k = 0; k < i; k++)
            if (same(p, r->t[i].name, r->t[i].name_len, r->t[k].name, r->t[k].name_len)) return 0;
    r->header_size = r->pos;
    return 1;
}

static void check_failure(lisa_result r, const lisa_error *err, const char *name, lisa_gguf *g) {
    FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "result %s", lisa_result_string(r));
    FUZZ_CHECK(g->bytes == 0 && g->n_kv == 0 && g->n_tensors == 0 && g->kv == NULL, "a failed parse holds something");
    fuzz_check_failure(r, err, name);
    lisa_gguf_free(g);
    fuzz_check_nothing_live("after lisa_gguf_free of a failure");
}

static int is_int(uint32_t t) {
    return t <= LISA_GGUF_INT32 || t == LISA_GGUF_UINT64 || t == LISA_GGUF_INT64;
}

/* The accessors on a scalar (k < 0) or element k of key i, of type t at p. */
static void check_accessors(const lisa_gguf *g, int i, int64_t k, uint32_t t, const uint8_t *p) {
    lisa_error err;
    lisa_result r;
    int64_t iv = 0;
    double fv = 0;
    int bv = -1;
    const char *s = NULL;
    size_t len = 0;
    uint64_t ku = (uint64_t)k;
    r = k < 0 ? lisa_gguf_get_int(g, i, &iv, &err) : lisa_gguf_array_int(g, i, ku, &iv, &err);
    if (!is_int(t)) {
        FUZZ_CHECK(r == LISA_ERR_FORMAT, "get_int on a %s", lisa_gguf_type_name((lisa_gguf_type)t));
    } else {
        int size = ref_fixed(t);
        uint64_t u = rd(p, size);
        int sign = t == LISA_GGUF_INT8 || t == LISA_GGUF_INT16 || t == LISA_GGUF_INT32 || t == LISA_GGUF_INT64;
        if (t == LISA_GGUF_UINT64 && u > I64_MAX) {
            FUZZ_CHECK(r == LISA_ERR_FORMAT, "a uint64 above INT64_MAX is out of range");
        } else {
            int64_t want = (int64_t)(u & I64_MAX);
            if (sign && (u >> (8 * size - 1))) /* negative: u - 2^(8 size) */
                want = size == 8 ? -(int64_t)(~u) - 1 : (int64_t)u - ((int64_t)1 << (8 * size));
            FUZZ_CHECK(r == LISA_OK, "get_int: %s", err.message);
            FUZZ_CHECK(iv == want, "%d-byte integer %lld, expected %lld", size, (long long)iv, (long long)want);
        }
    }
    r = k < 0 ? lisa_gguf_get_float(g, i, &fv, &err) : lisa_gguf_array_float(g, i, ku, &fv, &err);
    FUZZ_CHECK((r == LISA_OK) == (t == LISA_GGUF_FLOAT32 || t == LISA_GGUF_FLOAT64), "get_float on a %s",
               lisa_gguf_type_name((lisa_gguf_type)t));
    if (r == LISA_OK && t == LISA_GGUF_FLOAT32) {
        uint32_t bits = (uint32_t)rd(p, 4);
        float f;
        memcpy(&f, &bits, 4);
        FUZZ_CHECK((fv == (double)f) || (fv != fv && f != f), "float32 value");
    }
    r = k < 0 ? lisa_gguf_get_bool(g, i, &bv, &err) : lisa_gguf_array_bool(g, i, ku, &bv, &err);
    FUZZ_CHECK((r == LISA_OK) == (t == LISA_GGUF_BOOL), "get_bool");
    if (r == LISA_OK) FUZZ_CHECK(bv == p[0], "bool value");
    r = k < 0 ? lisa_gguf_get_string(g, i, &s, &len, &err) : lisa_gguf_array_string(g, i, ku, &s, &len, &err);
    FUZZ_CHECK((r == LISA_OK) == (t == LISA_GGUF_STRING), "get_string");
    if (r == LISA_OK) FUZZ_CHECK(len == rd(p, 8) && (const uint8_t *)s == p + 8, "string at its place");
    if (r != LISA_OK) FUZZ_CHECK(err.code == r && strstr(err.message, g->name) != NULL, "type error names the input");
}

static void check_success(const lisa_gguf *g, const ref_gguf *ref, const uint8_t *data, size_t size) {
    int i;
    FUZZ_CHECK(g->bytes == fuzz_cnt.live_bytes, "g says %lu bytes, the allocator holds %lu", (unsigned long)g->bytes,
               (unsigned long)fuzz_cnt.live_bytes);
    FUZZ_CHECK((uint64_t)g->n_kv == ref->n_kv && (uint64_t)g->n_tensors == ref->n_t, "%d keys, %d tensors", g->n_kv,
               g->n_tensors);
    FUZZ_CHECK(g->header_size == ref->header_size && g->alignment == ref->alignment, "header size %lu, alignment %u",
               (unsigned long)g->header_size, g->alignment);
    FUZZ_CHECK(g->data_offset % g->alignment == 0 && g->data_offset >= g->header_size &&
                   g->data_offset - g->header_size < g->alignment,
               "data offset");
    FUZZ_CHECK(g->buffer == data && g->buffer_size == size && g->file_size == size, "buffer");
    for (i = 0; i < g->n_kv; i++) {
        const lisa_gguf_kv *kv = &g->kv[i];
        const ref_kv *e = &ref->kv[i];
        lisa_gguf_type et;
        uint64_t count, k;
        FUZZ_CHECK(kv->key_len == e->key_len && memcmp(kv->key, data + e->key, e->key_len) == 0 && kv->key[kv->key_len] == 0,
                   "key %d", i);
        FUZZ_CHECK(lisa_gguf_find(g, kv->key) == i, "find key %d", i);
        FUZZ_CHECK((uint32_t)kv->type == e->type && (uint32_t)kv->elem_type == e->elem_type && kv->count == e->count,
                   "key %d: types and count", i);
        FUZZ_CHECK(kv->value == e->value && kv->value_size == e->value_size, "key %d: value at %lu, %lu bytes", i,
                   (unsigned long)kv->value, (unsigned long)kv->value_size);
        if (kv->type != LISA_GGUF_ARRAY) {
            const uint8_t *p = data + kv->value - (kv->type == LISA_GGUF_STRING ? 8 : 0);
            check_accessors(g, i, -1, kv->type, p);
            FUZZ_CHECK(lisa_gguf_array(g, i, &et, &count, NULL) == LISA_ERR_FORMAT, "array() on a scalar");
            continue;
        }
        FUZZ_CHECK(lisa_gguf_array(g, i, &et, &count, NULL) == LISA_OK && et == kv->elem_type && count == kv->count,
                   "array()");
        if (kv->elem_type == LISA_GGUF_ARRAY) continue; /* nested: checked by the reference's walk */
        {
            size_t pos = kv->value;
            for (k = 0; k < count; k++) {
                check_accessors(g, i, (int64_t)k, kv->elem_type, data + pos);
                pos += kv->elem_type == LISA_GGUF_STRING ? 8 + (size_t)rd(data + pos, 8) : (size_t)ref_fixed(kv->elem_type);
            }
            FUZZ_CHECK(pos == kv->value + kv->value_size, "elements fill the value");
            FUZZ_CHECK(lisa_gguf_array_int(g, i, count, NULL, NULL) == LISA_ERR_INVALID, "element count is out of range");
        }
    }
    for (i = 0; i < g->n_tensors; i++) {
        const lisa_gguf_tensor *t = &g->tensors[i];
        const ref_tensor *e = &ref->t[i];
        FUZZ_CHECK(t->name_len == e->name_len && memcmp(t->name, data + e->name, e->name_len) == 0 && t->name[t->name_len] == 0,
                   "tensor %d name", i);
        FUZZ_CHECK(lisa_gguf_find_tensor(g, t->name) == i, "find tensor %d", i);
        FUZZ_CHECK((uint32_t)t->n_dims == e->n_dims && t->type == e->type && t->offset == e->offset && t->size == e->size &&
                       memcmp(t->dims, e->dims, sizeof t->dims) == 0,
                   "tensor %d info", i);
        FUZZ_CHECK(t->n_elements == t->dims[0] * t->dims[1] * t->dims[2] * t->dims[3], "tensor %d elements", i);
    }
    FUZZ_CHECK(lisa_gguf_get_int(g, -1, NULL, NULL) == LISA_ERR_INVALID && lisa_gguf_get_int(g, g->n_kv, NULL, NULL) == LISA_ERR_INVALID,
               "indices out of range");
}

/* The directory the written tokenizers go to, made once per process and
   removed at exit. */
static char written[64];

static void remove_written(void) {
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json"};
    char path[128];
    size_t i;
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", written, files[i]);
        remove(path);
    }
    remove(written);
}

static const char *written_dir(void) {
    if (!written[0]) {
        snprintf(written, sizeof written, "%s", "/tmp/lisa-fuzz-hftok.XXXXXX");
        FUZZ_CHECK(mkdtemp(written) != NULL, "cannot make a temporary directory");
        atexit(remove_written);
    }
    return written;
}

/* g's tokenizer (t, which encoded text to ids) written as tokenizer.json and
   read back (see the top). */
static void check_written_tokenizer(const lisa_gguf *g, const lisa_tokenizer *t, const int *ids, size_t n,
                                    const char *text, size_t text_len, const char *name) {
    lisa_tokenizer back;
    lisa_error err;
    lisa_result r;
    int ids2[512];
    size_t n2 = 0;
    const char *model = NULL;
    size_t model_len = 0;
    int gpt2;
    memset(&err, 'x', sizeof err);
    r = lisa_gguf_save_hf_tokenizer(g, written_dir(), &err);
    if (r != LISA_OK) {
        FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_INVALID || r == LISA_ERR_NOMEM, "writing: result %s",
                   lisa_result_string(r));
        FUZZ_CHECK(err.code == r && (strstr(err.message, name) != NULL || strstr(err.message, written_dir()) != NULL),
                   "writing: the error names neither the input nor the file: %s", err.message);
        return;
    }
    r = lisa_tokenizer_load_hf(&back, written_dir(), NULL, &err);
    FUZZ_CHECK(r == LISA_OK, "the written tokenizer.json does not load: %s", err.message);
    FUZZ_CHECK(back.vocab_size == t->vocab_size, "written: %d ids, the GGUF's %d", back.vocab_size, t->vocab_size);
    lisa_gguf_get_string(g, lisa_gguf_find(g, "tokenizer.ggml.model"), &model, &model_len, NULL);
    gpt2 = model_len == 4 && memcmp(model, "gpt2", 4) == 0;
    if (gpt2) {
        r = lisa_tokenizer_encode(&back, text, text_len, back.add_bos, back.add_eos, ids2, 512, &n2, &err);
        FUZZ_CHECK(r == LISA_OK && n2 == n && memcmp(ids, ids2, n * sizeof *ids) == 0,
                   "the written tokenizer.json encodes to %lu other ids than the GGUF's %lu", (unsigned long)n2,
                   (unsigned long)n);
    }
    lisa_tokenizer_free(&back);
}

/* The tokenizer in the metadata, when the input parses (see the top). */
static void check_tokenizer(const uint8_t *data, size_t size, const char *name) {
    static const char text[] = "Hello w\xc3\xb6rld  123 <s></s><|endoftext|>\n\xe2\x96\x81x\xff";
    lisa_allocator a = fuzz_allocator();
    lisa_gguf g;
    lisa_tokenizer t;
    lisa_error err;
    lisa_result r;
    int ids[512], tokens;
    size_t n = 0, len = 0, i;
    uint64_t n_tokens = 0;
    long k, n_allocs;
    char *out;
    if (lisa_gguf_parse_memory(&g, data, size, name, NULL, NULL) != LISA_OK) {
        lisa_gguf_free(&g);
        return;
    }
    tokens = lisa_gguf_find(&g, "tokenizer.ggml.tokens");
    if (tokens >= 0) lisa_gguf_array(&g, tokens, NULL, &n_tokens, NULL);
    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err);
    r = lisa_tokenizer_load_gguf_metadata(&t, &g, &a, &err);
    if (r != LISA_OK) {
        fuzz_check_failure(r, &err, name);
        FUZZ_CHECK(t.vocab_size == 0 && t.buffer == NULL, "a failed tokenizer load left a tokenizer");
        lisa_gguf_free(&g);
        return;
    }
    FUZZ_CHECK(t.kind == LISA_TOKENIZER_BPE && tokens >= 0 && (uint64_t)t.vocab_size == n_tokens,
               "a tokenizer of %d ids from %.0f tokens", t.vocab_size, (double)n_tokens);
    FUZZ_CHECK(t.bytes == fuzz_cnt.live_bytes, "tokenizer.bytes %lu, the allocator %lu", (unsigned long)t.bytes,
               (unsigned long)fuzz_cnt.live_bytes);
    n_allocs = fuzz_cnt.n_ok;
    r = lisa_tokenizer_encode(&t, text, sizeof text - 1, t.add_bos, t.add_eos, ids, 512, &n, &err);
    FUZZ_CHECK(r == LISA_OK && n <= 512, "encoding failed: %s", err.message);
    for (i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < t.vocab_size, "id %d outside the vocabulary", ids[i]);
    r = lisa_tokenizer_decode(&t, ids, n, NULL, 0, &len, &err);
    FUZZ_CHECK(r == LISA_OK, "decoding (the size) failed: %s", err.message);
    out = (char *)malloc(len + 1);
    FUZZ_CHECK(out != NULL, "out of memory");
    r = lisa_tokenizer_decode(&t, ids, n, out, len + 1, &i, &err);
    FUZZ_CHECK(r == LISA_OK && i == len, "decoding failed: %s", err.message);
    free(out);
    check_written_tokenizer(&g, &t, ids, n, text, sizeof text - 1, name);
    lisa_tokenizer_free(&t);
    fuzz_check_nothing_live("after lisa_tokenizer_free");
    for (k = 0; k < n_allocs; k++) {
        fuzz_alloc_reset(k);
        r = lisa_tokenizer_load_gguf_metadata(&t, &g, &a, &err);
        FUZZ_CHECK(r == LISA_ERR_NOMEM, "tokenizer allocation %ld refused: result %s", k, lisa_result_string(r));
        fuzz_check_failure(r, &err, name);
    }
    fuzz_alloc_reset(-1);
    lisa_gguf_free(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.gguf";
    lisa_allocator a = fuzz_allocator();
    lisa_gguf g;
    lisa_error err;
    lisa_result r, r2;
    ref_gguf ref;
    int valid;
    long k, n_allocs;

    valid = ref_parse(&ref, data, size);
    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err);
    r = lisa_gguf_parse_memory(&g, data, size, name, &a, &err);
    if (r != LISA_OK) {
        FUZZ_CHECK(!valid || r == LISA_ERR_NOMEM, "rejected a valid header: \"%s\"", err.message);
        check_failure(r, &err, name, &g);
    } else {
        FUZZ_CHECK(valid, "accepted an invalid header (%d keys, %d tensors)", g.n_kv, g.n_tensors);
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with an error message");
        check_success(&g, &ref, data, size);
        n_allocs = fuzz_cnt.n_ok;
        lisa_gguf_free(&g);
        FUZZ_CHECK(g.bytes == 0 && g.kv == NULL && g.n_kv == 0 && lisa_gguf_find(&g, "a") == -1, "not cleared by free");
        fuzz_check_nothing_live("after lisa_gguf_free");
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = lisa_gguf_parse_memory(&g, data, size, name, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s", k, lisa_result_string(r2));
            check_failure(r2, &err, name, &g);
        }
    }
    free(ref.kv);
    free(ref.t);
    fuzz_alloc_reset(-1);
    r2 = lisa_gguf_parse_memory(&g, data, size, NULL, NULL, NULL);
    FUZZ_CHECK(r2 == r || r == LISA_ERR_NOMEM, "result %s without allocator/error, %s with", lisa_result_string(r2),
               lisa_result_string(r));
    lisa_gguf_free(&g);
    if (r == LISA_OK) check_tokenizer(data, size, name);
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: the fixtures of tools/make_gguf_fixtures.py, small headers built
   here, and near misses. */

static int write_checked(const char *dir, const char *file, const uint8_t *data, size_t size, int valid) {
    lisa_gguf g;
    lisa_result r = lisa_gguf_parse_memory(&g, data, size, file, NULL, NULL);
    lisa_gguf_free(&g);
    if ((r == LISA_OK) != valid) {
        fprintf(stderr, "%s: expected %s, got %s\n", file, valid ? "a valid header" : "an error", lisa_result_string(r));
        return 1;
    }
    LLVMFuzzerTestOneInput(data, size);
    return fuzz_write_seed(dir, file, data, size);
}

static size_t put(uint8_t *b, size_t n, uint64_t v, int bytes) {
    int i;
    for (i = 0; i < bytes; i++) b[n + i] = (uint8_t)(v >> (8 * i));
    return n + (size_t)bytes;
}

static size_t put_s(uint8_t *b, size_t n, const char *s) {
    n = put(b, n, strlen(s), 8);
    memcpy(b + n, s, strlen(s));
    return n + strlen(s);
}

/* A small header: a string key, a token array, a scores array, a bool, one tensor. */
static size_t small(uint8_t *b, int dup_key, int bad_bool) {
    size_t n = 0;
    memcpy(b, "GGUF", 4);
    n = put(b, 4, 3, 4);
    n = put(b, n, 1, 8);
    n = put(b, n, 5, 8);
    n = put_s(b, n, "tokenizer.ggml.model");
    n = put(b, n, LISA_GGUF_STRING, 4);
    n = put_s(b, n, "gpt2");
    n = put_s(b, n, "tokenizer.ggml.tokens");
    n = put(b, n, LISA_GGUF_ARRAY, 4);
    n = put(b, n, LISA_GGUF_STRING, 4);
    n = put(b, n, 3, 8);
    n = put_s(b, n, "a");
    n = put_s(b, n, "b");
    n = put_s(b, n, "ab");
    n = put_s(b, n, "tokenizer.ggml.scores");
    n = put(b, n, LISA_GGUF_ARRAY, 4);
    n = put(b, n, LISA_GGUF_FLOAT32, 4);
    n = put(b, n, 3, 8);
    n = put(b, n, 0x3f800000u, 4);
    n = put(b, n, 0xbf800000u, 4);
    n = put(b, n, 0, 4);
    n = put_s(b, n, dup_key ? "tokenizer.ggml.model" : "tokenizer.ggml.add_bos_token");
    n = put(b, n, LISA_GGUF_BOOL, 4);
    n = put(b, n, bad_bool ? 2 : 1, 1);
    n = put_s(b, n, "general.alignment");
    n = put(b, n, LISA_GGUF_UINT32, 4);
    n = put(b, n, 64, 4);
    n = put_s(b, n, "token_embd.weight");
    n = put(b, n, 2, 4);
    n = put(b, n, 32, 8);
    n = put(b, n, 3, 8);
    n = put(b, n, 8, 4);  /* Q8_0 */
    n = put(b, n, 0, 8);
    return n;
}

/* A small tokenizer: gpt2 (merges) or llama (scores, byte tokens), control
   tokens, ids, flags and a chat template. */
static size_t small_tokenizer(uint8_t *b, int llama) {
    static const char *const gpt2_tokens[] = {"<|endoftext|>", "H", "e", "l", "o", "\xc4\xa0", "w", "He", "ll",
                                              "Hell", "Hello", "\xc4\xa0w", "1", "2", "3"};
    static const char *const merges[] = {"H e", "l l", "He ll", "Hell o", "\xc4\xa0 w"};
    static const char *const spm_tokens[] = {"<unk>", "<s>", "</s>", "<0x0A>", "<0xFF>", "\xe2\x96\x81", "H", "e",
                                             "l", "o", "He", "ll", "\xe2\x96\x81H", "Hello", "x"};
    const char *const *tokens = llama ? spm_tokens : gpt2_tokens;
    size_t n = 0, k;
    memcpy(b, "GGUF", 4);
    n = put(b, 4, 3, 4);
    n = put(b, n, 0, 8);
    n = put(b, n, 8, 8);
    n = put_s(b, n, "tokenizer.ggml.model");
    n = put(b, n, LISA_GGUF_STRING, 4);
    n = put_s(b, n, llama ? "llama" : "gpt2");
    n = put_s(b, n, llama ? "tokenizer.ggml.add_space_prefix" : "tokenizer.ggml.pre");
    if (llama) {
        n = put(b, n, LISA_GGUF_BOOL, 4);
        n = put(b, n, 1, 1);
    } else {
        n = put(b, n, LISA_GGUF_STRING, 4);
        n = put_s(b, n, "smollm");
    }
    n = put_s(b, n, "tokenizer.ggml.tokens");
    n = put(b, n, LISA_GGUF_ARRAY, 4);
    n = put(b, n, LISA_GGUF_STRING, 4);
    n = put(b, n, 15, 8);
    for (k = 0; k < 15; k++) n = put_s(b, n, tokens[k]);
    n = put_s(b, n, "tokenizer.ggml.token_type");
    n = put(b, n, LISA_GGUF_ARRAY, 4);
    n = put(b, n, LISA_GGUF_INT32, 4);
    n = put(b, n, 15, 8);
    for (k = 0; k < 15; k++) n = put(b, n, llama ? (k == 0 ? 2 : k < 3 ? 3 : k < 5 ? 6 : 1) : (k == 0 ? 3 : 1), 4);
    if (llama) {
        n = put_s(b, n, "tokenizer.ggml.scores");
        n = put(b, n, LISA_GGUF_ARRAY, 4);
        n = put(b, n, LISA_GGUF_FLOAT32, 4);
        n = put(b, n, 15, 8);
        for (k = 0; k < 15; k++) {
            float f = -(float)k;
            uint32_t u;
            memcpy(&u, &f, 4);
            n = put(b, n, u, 4);
        }
    } else {
        n = put_s(b, n, "tokenizer.ggml.merges");
        n = put(b, n, LISA_GGUF_ARRAY, 4);
        n = put(b, n, LISA_GGUF_STRING, 4);
        n = put(b, n, 5, 8);
        for (k = 0; k < 5; k++) n = put_s(b, n, merges[k]);
    }
    n = put_s(b, n, "tokenizer.ggml.bos_token_id");
    n = put(b, n, LISA_GGUF_UINT32, 4);
    n = put(b, n, llama ? 1 : 0, 4);
    n = put_s(b, n, "tokenizer.ggml.add_bos_token");
    n = put(b, n, LISA_GGUF_BOOL, 4);
    n = put(b, n, 1, 1);
    n = put_s(b, n, "tokenizer.chat_template");
    n = put(b, n, LISA_GGUF_STRING, 4);
    n = put_s(b, n, "{% for m in messages %}{{ m['content'] }}{% endfor %}");
    return n;
}

int main(int argc, char **argv) {
    static const char *const fixtures[] = {"all_types.gguf", "tensors.gguf", "v2.gguf", "big_endian.gguf"};
    static uint8_t buf[8192];
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/gguf";
    size_t n, i;
    int bad = 0;
    for (i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char path[256];
        FILE *f;
        snprintf(path, sizeof path, "tests/fixtures/gguf/%s", fixtures[i]);
        f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "cannot read %s (run from the repository root)\n", path);
            return 1;
        }
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        bad |= write_checked(dir, fixtures[i], buf, n, i != 3);
    }
    n = small(buf, 0, 0);
    bad |= write_checked(dir, "small.gguf", buf, n, 1);
    bad |= write_checked(dir, "small_truncated.gguf", buf, n - 1, 0);
    n = small(buf, 1, 0);
    bad |= write_checked(dir, "duplicate_key.gguf", buf, n, 0);
    n = small(buf, 0, 1);
    bad |= write_checked(dir, "bool_2.gguf", buf, n, 0);
    n = small(buf, 0, 0);
    buf[4] = 1;
    bad |= write_checked(dir, "version_1.gguf", buf, n, 0);
    n = small_tokenizer(buf, 0);
    bad |= write_checked(dir, "tokenizer_gpt2.gguf", buf, n, 1);
    n = small_tokenizer(buf, 1);
    bad |= write_checked(dir, "tokenizer_llama.gguf", buf, n, 1);
    return bad;
}
#endif
