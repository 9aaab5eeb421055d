/* libFuzzer harness: lisa_safetensors_parse_memory.

   Every input is parsed through a counting allocator and checked, here and
   independently of lisa.h's safetensors code, against the format as the
   header documents it: an 8-byte little-endian header length N with
   0 < N <= size - 8 and N <= LISA_SAFETENSORS_MAX_HEADER, N bytes of JSON
   (read with lisa_json_parse, which fuzz_json.c checks) holding an object
   whose members are "__metadata__" (exactly that key: an object of strings)
   or tensors: objects with a dtype string F32, F16 or BF16, a shape array of
   at most LISA_SAFETENSORS_MAX_DIMS non-negative integers, and data_offsets,
   two non-negative integers [begin, end] with end - begin = dtype bytes x the
   shape's product; the tensors must tile the data section (size - 8 - N
   bytes) with no gap, no overlap and nothing left over. lisa.h must accept
   exactly such files. A failure must be LISA_ERR_FORMAT (or LISA_ERR_NOMEM)
   with a message that names the input, and leave nothing allocated once
   lisa_safetensors_free() is called. A success must list every tensor of the
   header (name, dtype, shape, begin, end) sorted by begin, each [begin, end)
   inside the data section, the sizes right, no two overlapping; data_offset,
   data_size, data and metadata right; the byte count what the allocator saw,
   freeing to zero. Then each allocation is made to fail in turn (each must
   give LISA_ERR_NOMEM cleanly), and the input is parsed again with the
   default allocator, no name and no error struct.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#include <math.h>

#define MAX_HEADER 100000000u

typedef struct ref_tensor {
    const char *name; /* in the reference's own lisa_json */
    size_t name_len;
    int dtype, ndim;
    uint64_t shape[LISA_SAFETENSORS_MAX_DIMS];
    uint64_t begin, end;
} ref_tensor;

typedef struct ref_st {
    lisa_json j;
    ref_tensor *t;
    int n, metadata;
    uint64_t header_len, data_size;
} ref_st;

static uint64_t le64(const uint8_t *b) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* A non-negative integer up to 2^53 in node, or 0. */
static int ref_uint(const lisa_json *j, int node, uint64_t *out) {
    double v;
    if (lisa_json_type_of(j, node) != LISA_JSON_NUMBER) return 0;
    v = lisa_json_number(j, node);
    if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int ref_cmp(const ref_tensor *x, const ref_tensor *y) {
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    c = memcmp(x->name, y->name, n);
    if (c != 0) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static void ref_sort(ref_tensor *t, int n) { /* insertion sort: a handful of tensors */
    int i, k;
    for (i = 1; i < n; i++) {
        ref_tensor x = t[i];
        for (k = i; k > 0 && ref_cmp(&t[k - 1], &x) > 0; k--) t[k] = t[k - 1];
        t[k] = x;
    }
}

/* Decodes the file; returns 1 when it is a valid safetensors file. The caller
   frees ref->j and ref->t. */
static int ref_parse(ref_st *ref, const uint8_t *data, size_t size) {
    int root, c, i;
    uint64_t at = 0;
    memset(ref, 0, sizeof *ref);
    ref->metadata = -1;
    if (size < 8) return 0;
    ref->header_len = le64(data);
    if (ref->header_len == 0 || ref->header_len > size - 8 || ref->header_len > MAX_HEADER) return 0;
    ref->data_size = size - 8 - ref->header_len;
    if (lisa_json_parse(&ref->j, (const char *)data + 8, (size_t)ref->header_len, "ref", NULL, NULL) != LISA_OK)
        return 0;
    root = lisa_json_root(&ref->j);
    if (lisa_json_type_of(&ref->j, root) != LISA_JSON_OBJECT) return 0;
    ref->t = (ref_tensor *)calloc((size_t)lisa_json_length(&ref->j, root) + 1, sizeof(ref_tensor));
    FUZZ_CHECK(ref->t != NULL, "out of memory in the harness");
    for (c = lisa_json_first(&ref->j, root); c >= 0; c = lisa_json_next(&ref->j, c)) {
        size_t kl;
        const char *key = lisa_json_key(&ref->j, c, &kl), *dt;
        int d, sh, off;
        ref_tensor *t;
        uint64_t bytes;
        int over = 0;
        if (kl == 12 && memcmp(key, "__metadata__", 12) == 0) {
            int m;
            if (lisa_json_type_of(&ref->j, c) != LISA_JSON_OBJECT) return 0;
            for (m = lisa_json_first(&ref->j, c); m >= 0; m = lisa_json_next(&ref->j, m))
                if (lisa_json_type_of(&ref->j, m) != LISA_JSON_STRING) return 0;
            ref->metadata = c;
            continue;
        }
        t = &ref->t[ref->n++];
        t->name = key;
        t->name_len = kl;
        if (lisa_json_type_of(&ref->j, c) != LISA_JSON_OBJECT) return 0;
        dt = lisa_json_string(&ref->j, lisa_json_get(&ref->j, c, "dtype"), &kl);
        if (!dt) return 0;
        if (kl == 3 && memcmp(dt, "F32", 3) == 0) t->dtype = LISA_FILE_F32;
        else if (kl == 3 && memcmp(dt, "F16", 3) == 0) t->dtype = LISA_FILE_F16;
        else if (kl == 4 && memcmp(dt, "BF16", 4) == 0) t->dtype = LISA_FILE_BF16;
        else return 0;
        bytes = t->dtype == LISA_FILE_F32 ? 4 : 2;
        sh = lisa_json_get(&ref->j, c, "shape");
        if (lisa_json_type_of(&ref->j, sh) != LISA_JSON_ARRAY) return 0;
        t->ndim = lisa_json_length(&ref->j, sh);
        if (t->ndim > LISA_SAFETENSORS_MAX_DIMS) return 0;
        for (d = 0; d < t->ndim; d++) {
            if (!ref_uint(&ref->j, lisa_json_at(&ref->j, sh, d), &t->shape[d])) return 0;
            if (t->shape[d] != 0 && bytes > UINT64_MAX / t->shape[d]) over = 1;
            else bytes *= t->shape[d];
        }
        for (d = 0; d < t->ndim; d++)
            if (t->shape[d] == 0) over = 0, bytes = 0;
        off = lisa_json_get(&ref->j, c, "data_offsets");
        if (lisa_json_type_of(&ref->j, off) != LISA_JSON_ARRAY || lisa_json_length(&ref->j, off) != 2 ||
            !ref_uint(&ref->j, lisa_json_at(&ref->j, off, 0), &t->begin) ||
            !ref_uint(&ref->j, lisa_json_at(&ref->j, off, 1), &t->end))
            return 0;
        if (t->begin > t->end || t->end > ref->data_size || over || t->end - t->begin != bytes) return 0;
    }
    ref_sort(ref->t, ref->n);
    for (i = 0; i < ref->n; i++) {
        if (ref->t[i].begin != at) return 0; /* a gap or an overlap */
        at = ref->t[i].end;
    }
    return at == ref->data_size;
}

static void check_failure(lisa_result r, const lisa_error *err, const char *name, lisa_safetensors *st) {
    FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "result %s", lisa_result_string(r));
    FUZZ_CHECK(err->code == r, "err.code %d, returned %d", (int)err->code, (int)r);
    FUZZ_CHECK(err->message[0] != 0 && memchr(err->message, 0, sizeof err->message) != NULL, "bad error message");
    FUZZ_CHECK(strstr(err->message, name) != NULL, "error message does not name the input: \"%s\"", err->message);
    FUZZ_CHECK(r != LISA_ERR_NOMEM || fuzz_cnt.n_refused > 0, "NOMEM though nothing was refused: \"%s\"",
               err->message);
    lisa_safetensors_free(st);
    FUZZ_CHECK(st->bytes == 0 && st->tensors == NULL && st->n_tensors == 0, "not cleared by free after a failure");
    fuzz_check_nothing_live("after freeing a failed parse");
}

static void check_success(const lisa_safetensors *st, const ref_st *ref, const uint8_t *data, size_t size) {
    int i, d, root = lisa_json_root(&st->header);
    ref_tensor *got;
    FUZZ_CHECK(st->bytes == fuzz_cnt.live_bytes, "st says %lu bytes, the allocator holds %lu",
               (unsigned long)st->bytes, (unsigned long)fuzz_cnt.live_bytes);
    FUZZ_CHECK(st->bytes == st->header.bytes + (size_t)st->n_tensors * sizeof(lisa_safetensors_tensor),
               "bytes %lu: header %lu + %d tensors", (unsigned long)st->bytes, (unsigned long)st->header.bytes,
               st->n_tensors);
    FUZZ_CHECK((uint64_t)st->data_offset == 8 + ref->header_len, "data_offset %lu", (unsigned long)st->data_offset);
    FUZZ_CHECK((uint64_t)st->data_size == ref->data_size && st->data_offset + st->data_size == size,
               "data_size %lu of %lu bytes", (unsigned long)st->data_size, (unsigned long)size);
    FUZZ_CHECK(st->data == data + st->data_offset, "data pointer not into the input");
    FUZZ_CHECK(st->n_tensors == ref->n, "%d tensors, the header has %d", st->n_tensors, ref->n);
    FUZZ_CHECK(st->n_tensors == 0 || st->tensors != NULL, "no tensor table");
    FUZZ_CHECK((st->metadata < 0) == (ref->metadata < 0), "metadata %d, reference %d", st->metadata, ref->metadata);
    if (st->metadata >= 0) {
        size_t kl;
        const char *k = lisa_json_key(&st->header, st->metadata, &kl);
        FUZZ_CHECK(k && kl == 12 && memcmp(k, "__metadata__", 12) == 0 &&
                       lisa_json_type_of(&st->header, st->metadata) == LISA_JSON_OBJECT &&
                       st->header.nodes[st->metadata].parent == root,
                   "metadata node %d is not the __metadata__ object", st->metadata);
    }
    got = (ref_tensor *)calloc((size_t)st->n_tensors + 1, sizeof(ref_tensor));
    FUZZ_CHECK(got != NULL, "out of memory in the harness");
    for (i = 0; i < st->n_tensors; i++) {
        const lisa_safetensors_tensor *t = &st->tensors[i];
        uint64_t bytes = t->dtype == LISA_FILE_F32 ? 4 : 2;
        int c, found = 0;
        FUZZ_CHECK(t->dtype == LISA_FILE_F32 || t->dtype == LISA_FILE_F16 || t->dtype == LISA_FILE_BF16,
                   "tensor %d: dtype %d", i, (int)t->dtype);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= LISA_SAFETENSORS_MAX_DIMS, "tensor %d: ndim %d", i, t->ndim);
        FUZZ_CHECK(t->begin <= t->end && t->end <= st->data_size, "tensor %d: [%lu, %lu) outside %lu bytes", i,
                   (unsigned long)t->begin, (unsigned long)t->end, (unsigned long)st->data_size);
        for (d = 0; d < t->ndim; d++) bytes *= t->shape[d]; /* within data_size: no overflow unless a 0 dim */
        if (t->end - t->begin > 0)
            FUZZ_CHECK(bytes == t->end - t->begin, "tensor %d: %lu bytes for its shape, [%lu, %lu)", i,
                       (unsigned long)bytes, (unsigned long)t->begin, (unsigned long)t->end);
        if (i > 0)
            FUZZ_CHECK(st->tensors[i - 1].begin <= t->begin && st->tensors[i - 1].end <= t->begin,
                       "tensors %d and %d overlap or are out of order", i - 1, i);
        /* The name is a key of the header's root object. */
        for (c = lisa_json_first(&st->header, root); c >= 0; c = lisa_json_next(&st->header, c)) {
            size_t kl;
            const char *k = lisa_json_key(&st->header, c, &kl);
            if (k == t->name) {
                got[i].name_len = kl;
                found = 1;
            }
        }
        FUZZ_CHECK(found, "tensor %d: its name is not a key of the header", i);
        got[i].name = t->name;
        got[i].dtype = (int)t->dtype;
        got[i].ndim = t->ndim;
        memcpy(got[i].shape, t->shape, sizeof t->shape);
        got[i].begin = t->begin;
        got[i].end = t->end;
    }
    if (st->n_tensors > 0) FUZZ_CHECK(st->tensors[st->n_tensors - 1].end == st->data_size, "data left over");
    ref_sort(got, st->n_tensors); /* ties (empty tensors) in name order, as the reference */
    for (i = 0; i < st->n_tensors; i++) {
        const ref_tensor *x = &got[i], *y = &ref->t[i];
        FUZZ_CHECK(x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0,
                   "tensor %d: name \"%s\", the reference \"%.*s\"", i, x->name, (int)y->name_len, y->name);
        FUZZ_CHECK(x->dtype == y->dtype && x->ndim == y->ndim && x->begin == y->begin && x->end == y->end,
                   "tensor %s: dtype/ndim/offsets differ from the reference", x->name);
        for (d = 0; d < x->ndim; d++)
            FUZZ_CHECK(x->shape[d] == y->shape[d], "tensor %s: dimension %d", x->name, d);
    }
    free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.safetensors";
    lisa_allocator a = fuzz_allocator();
    lisa_safetensors st;
    lisa_error err;
    lisa_result r, r2;
    ref_st ref;
    int valid;
    long k, n_allocs;

    memset(&ref, 0, sizeof ref);
    valid = ref_parse(&ref, data, size);
    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err);
    r = lisa_safetensors_parse_memory(&st, data, size, name, &a, &err);
    if (r != LISA_OK) {
        FUZZ_CHECK(!valid, "rejected a valid file: \"%s\"", err.message);
        check_failure(r, &err, name, &st);
    } else {
        FUZZ_CHECK(valid, "accepted an invalid file (%d tensors)", st.n_tensors);
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with an error message");
        check_success(&st, &ref, data, size);
        n_allocs = fuzz_cnt.n_ok;
        lisa_safetensors_free(&st);
        FUZZ_CHECK(st.bytes == 0 && st.tensors == NULL && st.n_tensors == 0, "not cleared by free");
        fuzz_check_nothing_live("after lisa_safetensors_free");
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = lisa_safetensors_parse_memory(&st, data, size, name, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s", k, lisa_result_string(r2));
            check_failure(r2, &err, name, &st);
        }
    }
    lisa_json_free(&ref.j);
    free(ref.t);
    fuzz_alloc_reset(-1);
    r2 = lisa_safetensors_parse_memory(&st, data, size, NULL, NULL, NULL);
    FUZZ_CHECK(r2 == r, "result %s without allocator/error, %s with", lisa_result_string(r2), lisa_result_string(r));
    lisa_safetensors_free(&st);
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: small valid files and near misses. */

static size_t make_st(uint8_t *buf, size_t cap, const char *header, size_t data_bytes, size_t pad_to) {
    size_t n = strlen(header), i;
    uint64_t hl = n;
    while (pad_to && hl % pad_to) hl++; /* padded with spaces, as the Python writer does */
    if (8 + hl + data_bytes > cap) {
        fprintf(stderr, "seed too large\n");
        exit(1);
    }
    for (i = 0; i < 8; i++) buf[i] = (uint8_t)(hl >> (8 * i));
    memcpy(buf + 8, header, n);
    memset(buf + 8 + n, ' ', (size_t)hl - n);
    for (i = 0; i < data_bytes; i++) buf[8 + hl + i] = (uint8_t)(i * 29 + 7);
    return 8 + (size_t)hl + data_bytes;
}

static int write_checked(const char *dir, const char *file, const uint8_t *data, size_t size, int valid) {
    lisa_safetensors st;
    lisa_result r = lisa_safetensors_parse_memory(&st, data, size, file, NULL, NULL);
    lisa_safetensors_free(&st);
    if ((r == LISA_OK) != valid) {
        fprintf(stderr, "%s: expected %s, got %s\n", file, valid ? "a valid file" : "an error", lisa_result_string(r));
        return 1;
    }
    LLVMFuzzerTestOneInput(data, size);
    return fuzz_write_seed(dir, file, data, size);
}

int main(int argc, char **argv) {
    static uint8_t buf[8192];
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/safetensors";
    size_t n;
    int bad = 0;
    n = make_st(buf, sizeof buf,
                "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[24,30]},"
                "\"h\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[30,32]}}",
                32, 8);
    bad |= write_checked(dir, "three_dtypes.safetensors", buf, n, 1);
    n = make_st(buf, sizeof buf,
                "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]},"
                "\"a\":{\"dtype\":\"BF16\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,4]},"
                "\"e\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                4, 0);
    bad |= write_checked(dir, "empty_tensors_8_dims.safetensors", buf, n, 1);
    n = make_st(buf, sizeof buf, "{}", 0, 0);
    bad |= write_checked(dir, "no_tensors.safetensors", buf, n, 1);
    n = make_st(buf, sizeof buf, "{\"__metadata__\":{}}", 0, 0);
    bad |= write_checked(dir, "metadata_only.safetensors", buf, n, 1);
    n = make_st(buf, sizeof buf,
                "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8e0]}}",
                16, 0);
    bad |= write_checked(dir, "out_of_order.safetensors", buf, n, 1);
    /* near misses */
    n = make_st(buf, sizeof buf, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24, 0);
    bad |= write_checked(dir, "truncated_by_1.safetensors", buf, n - 1, 0);
    n = make_st(buf, sizeof buf, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 25, 0);
    bad |= write_checked(dir, "trailing_1.safetensors", buf, n, 0);
    n = make_st(buf, sizeof buf,
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, 0);
    bad |= write_checked(dir, "overlap.safetensors", buf, n, 0);
    n = make_st(buf, sizeof buf,
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                12, 0);
    bad |= write_checked(dir, "gap.safetensors", buf, n, 0);
    n = make_st(buf, sizeof buf, "{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, 0);
    bad |= write_checked(dir, "dtype_i64.safetensors", buf, n, 0);
    n = make_st(buf, sizeof buf, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, 0);
    bad |= write_checked(dir, "negative_dim.safetensors", buf, n, 0);
    n = make_st(buf, sizeof buf,
                "{\"w\":{\"dtype\":\"F16\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,2]}}", 2, 0);
    bad |= write_checked(dir, "nine_dims.safetensors", buf, n, 0);
    n = make_st(buf, sizeof buf, "{\"__metadata__\":{\"n\":1}}", 0, 0);
    bad |= write_checked(dir, "metadata_number.safetensors", buf, n, 0);
    n = make_st(buf, sizeof buf, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0);
    buf[0] = (uint8_t)(buf[0] + 5); /* header length past the end */
    bad |= write_checked(dir, "header_too_long.safetensors", buf, n, 0);
    n = make_st(buf, sizeof buf, "[]", 0, 0);
    bad |= write_checked(dir, "header_array.safetensors", buf, n, 0);
    memset(buf, 0, 8);
    bad |= write_checked(dir, "header_length_0.safetensors", buf, 8, 0);
    bad |= write_checked(dir, "short_7.safetensors", buf, 7, 0);
    return bad;
}
#endif
