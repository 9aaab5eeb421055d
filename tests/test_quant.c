/* ggml tensor data: lisa_ggml_dequantize and lisa_ggml_quantize.
     - the fixtures of tools/make_quant_fixtures.py: for each of the 13 types,
       raw blocks (quantized by gguf-py, random bytes, edge blocks) and gguf-py's
       gguf.quants.dequantize of them; every float must be equal bit for bit.
       Each type is also dequantized block by block, and from an odd address,
       always from a buffer of exactly the bytes that many blocks take, so
       that the sanitizer build catches a read past them
     - quantize to F16, BF16 and Q8_0 equal to gguf-py's gguf.quants.quantize,
       byte for byte (ties, NaNs, infinities, huge and tiny values, zeros, a
       negative maximum); F32 is a copy
     - other types and counts that are not whole blocks: 0, dst untouched; no
       elements: 1, dst untouched
     - with LISA_SMOLLM2_GGUF (the real SmolLM2-135M-Instruct Q4_1 GGUF, see
       test_gguf.c): every tensor dequantized, its hash equal to the hash of
       gguf-py's dequantization (tests/fixtures/quant/smollm2.txt), and timed. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIX "tests/fixtures/quant/"

typedef struct blob {
    unsigned char *p;
    size_t n;
} blob;

/* The whole file in a buffer of exactly its size (1 byte when empty). */
static blob read_blob(const char *path) {
    blob b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    long size;
    if (!f) return b;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        b.p = (unsigned char *)malloc(size ? (size_t)size : 1);
        if (b.p && fread(b.p, 1, (size_t)size, f) == (size_t)size) {
            b.n = (size_t)size;
        } else {
            free(b.p);
            b.p = NULL;
        }
    }
    fclose(f);
    return b;
}

static blob fixture(const char *type, const char *ext) {
    char path[256];
    blob b;
    snprintf(path, sizeof path, FIX "%s%s", type, ext);
    b = read_blob(path);
    if (!b.p) fprintf(stderr, "cannot read %s\n", path);
    return b;
}

static const struct {
    uint32_t type;
    const char *name;
} dequant_types[] = {{0, "F32"},   {1, "F16"},   {30, "BF16"}, {8, "Q8_0"}, {2, "Q4_0"},
                     {3, "Q4_1"},  {6, "Q5_0"},  {7, "Q5_1"},  {10, "Q2_K"}, {11, "Q3_K"},
                     {12, "Q4_K"}, {13, "Q5_K"}, {14, "Q6_K"}};
#define N_DEQUANT_TYPES (sizeof dequant_types / sizeof dequant_types[0])

/* Index of the first float of got that differs from want in its bits, or -1. */
static long first_mismatch(const float *got, const unsigned char *want, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (memcmp(&got[i], want + 4 * i, 4) != 0) return (long)i;
    return -1;
}

/* got[at] and want's float at differ; got[0] is element `first` of the fixture. */
static void report_mismatch(const char *what, const char *type, size_t first, long at, const float *got,
                            const unsigned char *want, uint32_t block) {
    uint32_t g, w;
    size_t e = first + (size_t)at;
    memcpy(&g, &got[at], 4);
    memcpy(&w, want + 4 * at, 4);
    fprintf(stderr, "  %s %s: block %zu element %zu: 0x%08lx (%.9g), gguf-py 0x%08lx\n", type, what, e / block,
            e % block, (unsigned long)g, (double)got[at], (unsigned long)w);
}

/* One type's fixture: all at once, block by block and from an odd address. */
static void test_dequant_type(uint32_t type, const char *name) {
    blob raw = fixture(name, ".bin"), want = fixture(name, ".f32");
    uint32_t block = 0, bytes = 0;
    size_t n, nb, i;
    float *y, *y1;
    unsigned char *odd;
    long at = -1;
    int ok;
    CHECK(raw.p && want.p && lisa_ggml_type_size(type, &block, &bytes), "%s: fixtures and block size", name);
    if (!raw.p || !want.p || !block) goto done;
    nb = raw.n / bytes;
    n = nb * block;
    CHECK(raw.n == nb * bytes && want.n == 4 * n && nb > 0, "%s: %zu bytes of blocks, %zu of floats", name,
          raw.n, want.n);
    if (raw.n != nb * bytes || want.n != 4 * n) goto done;

    y = (float *)malloc(4 * n);
    CHECK(lisa_ggml_dequantize(type, raw.p, y, n) == 1, "%s: dequantize returns 1", name);
    at = first_mismatch(y, want.p, n);
    CHECK(at < 0, "%s: %zu floats equal gguf-py's bit for bit", name, n);
    if (at >= 0) report_mismatch("all at once", name, 0, at, y, want.p, block);

    /* Block by block, each from a buffer of exactly one block's bytes. */
    y1 = (float *)malloc(4 * block);
    ok = 1;
    for (i = 0; i < nb && ok; i++) {
        unsigned char *one = (unsigned char *)malloc(bytes);
        memcpy(one, raw.p + i * bytes, bytes);
        ok = lisa_ggml_dequantize(type, one, y1, block) == 1 &&
             (at = first_mismatch(y1, want.p + 4 * block * i, block)) < 0;
        if (!ok && at >= 0) report_mismatch("block by block", name, i * block, at, y1, want.p + 4 * block * i, block);
        free(one);
    }
    CHECK(ok, "%s: block by block from %u-byte buffers", name, bytes);
    free(y1);

    /* From an odd address: nothing may assume alignment. */
    odd = (unsigned char *)malloc(raw.n + 1);
    memcpy(odd + 1, raw.p, raw.n);
    memset(y, 0, 4 * n);
    CHECK(lisa_ggml_dequantize(type, odd + 1, y, n) == 1 && first_mismatch(y, want.p, n) < 0,
          "%s: from an odd address", name);
    free(odd);
    free(y);
done:
    free(raw.p);
    free(want.p);
}

static void test_dequant_fixtures(void) {
    size_t i;
    for (i = 0; i < N_DEQUANT_TYPES; i++) {
        CHECK(strcmp(lisa_ggml_type_name(dequant_types[i].type), dequant_types[i].name) == 0, "type %u is %s",
              (unsigned)dequant_types[i].type, dequant_types[i].name);
        test_dequant_type(dequant_types[i].type, dequant_types[i].name);
    }
}

/* Quantize <type>.in.f32 and compare with <type>.q, gguf-py's bytes. */
static void test_quant_type(uint32_t type, const char *name, uint32_t block, uint32_t bytes) {
    blob in = fixture(name, ".in.f32"), want = fixture(name, ".q");
    size_t n, i;
    float *x;
    unsigned char *q;
    CHECK(in.p && want.p, "%s: quantize fixtures", name);
    if (!in.p || !want.p) goto done;
    n = in.n / 4;
    CHECK(n % block == 0 && want.n == n / block * bytes, "%s: %zu inputs, %zu bytes", name, n, want.n);
    if (n % block != 0 || want.n != n / block * bytes) goto done;
    x = (float *)malloc(in.n);
    memcpy(x, in.p, in.n);
    q = (unsigned char *)malloc(want.n);
    CHECK(lisa_ggml_quantize(type, x, q, n) == 1, "%s: quantize returns 1", name);
    for (i = 0; i < want.n && q[i] == want.p[i]; i++) {}
    CHECK(i == want.n, "%s: %zu bytes equal gguf-py's", name, want.n);
    if (i < want.n) {
        size_t in_block = i % bytes;   /* F16, BF16: 2 bytes an element; Q8_0: d, then 1 byte an element */
        size_t e = i / bytes * block + (block == 1 ? 0 : in_block < 2 ? 0 : in_block - 2);
        uint32_t u;
        memcpy(&u, &x[e], 4);
        fprintf(stderr, "  %s: byte %zu (block %zu, element %zu, input 0x%08lx %.9g): 0x%02x, gguf-py 0x%02x\n",
                name, i, i / bytes, e % block, (unsigned long)u, (double)x[e], q[i], want.p[i]);
    }
    free(x);
    free(q);
done:
    free(in.p);
    free(want.p);
}

static void test_quant_fixtures(void) {
    blob in = fixture("F16", ".in.f32");
    test_quant_type(1, "F16", 1, 2);
    test_quant_type(30, "BF16", 1, 2);
    test_quant_type(8, "Q8_0", 32, 34);
    /* F32: gguf-py's quantize is astype(float32), the same bits (NaNs too). */
    if (in.p) {
        float *x = (float *)malloc(in.n);
        unsigned char *q = (unsigned char *)malloc(in.n);
        memcpy(x, in.p, in.n);
        CHECK(lisa_ggml_quantize(0, x, q, in.n / 4) == 1 && memcmp(q, in.p, in.n) == 0,
              "F32: quantize copies %zu floats", in.n / 4);
        free(x);
        free(q);
    }
    free(in.p);
}

/* Calls that must fail leave dst as it was: a pattern no call writes. */
#define GUARD 0xA5
static int untouched(const unsigned char *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != GUARD) return 0;
    return 1;
}

static int known_dequant(uint32_t type) {
    size_t i;
    for (i = 0; i < N_DEQUANT_TYPES; i++)
        if (dequant_types[i].type == type) return 1;
    return 0;
}

static void test_refusals(void) {
    static const unsigned char src[4096];   /* zeros: a valid block of every type */
    float x[600];
    unsigned char dst[4096];
    uint32_t t, block, bytes;
    int refused = 0, kept = 0, types = 0;
    size_t i;
    for (i = 0; i < 600; i++) x[i] = (float)i;
    /* Every other type number, known to lisa_ggml_type_size or not. */
    for (t = 0; t < 64; t++) {
        if (known_dequant(t)) continue;
        types++;
        memset(dst, GUARD, sizeof dst);
        refused += lisa_ggml_dequantize(t, src, (float *)(void *)dst, 256) == 0;
        refused += lisa_ggml_quantize(t, x, dst, 256) == 0 || t == 0 || t == 1 || t == 8 || t == 30;
        kept += untouched(dst, sizeof dst);
    }
    memset(dst, GUARD, sizeof dst);
    refused += lisa_ggml_dequantize(1000, src, (float *)(void *)dst, 1) == 0;
    refused += lisa_ggml_dequantize(0xFFFFFFFFu, src, (float *)(void *)dst, 1) == 0;
    refused += lisa_ggml_quantize(0xFFFFFFFFu, x, dst, 1) == 0;
    kept += untouched(dst, sizeof dst);
    CHECK(refused == 2 * types + 3 && kept == types + 1, "other types: %d of %d refused, %d of %d dst untouched",
          refused, 2 * types + 3, kept, types + 1);

    /* Counts that are not whole blocks; and no blocks at all. */
    for (i = 0; i < N_DEQUANT_TYPES; i++) {
        uint32_t type = dequant_types[i].type;
        const char *name = dequant_types[i].name;
        lisa_ggml_type_size(type, &block, &bytes);
        memset(dst, GUARD, sizeof dst);
        if (block > 1) {
            CHECK(lisa_ggml_dequantize(type, src, (float *)(void *)dst, block - 1) == 0 &&
                      lisa_ggml_dequantize(type, src, (float *)(void *)dst, block + 1) == 0 &&
                      lisa_ggml_dequantize(type, src, (float *)(void *)dst, 1) == 0 &&
                      lisa_ggml_dequantize(type, src, (float *)(void *)dst, 2 * (uint64_t)block + block / 2) == 0 &&
                      untouched(dst, sizeof dst),
                  "%s: n not a multiple of %u refused, dst untouched", name, block);
        }
        CHECK(lisa_ggml_dequantize(type, src, (float *)(void *)dst, 0) == 1 && untouched(dst, sizeof dst),
              "%s: n = 0 returns 1 and writes nothing", name);
    }
    memset(dst, GUARD, sizeof dst);
    CHECK(lisa_ggml_quantize(8, x, dst, 31) == 0 && lisa_ggml_quantize(8, x, dst, 33) == 0 &&
              lisa_ggml_quantize(8, x, dst, 1) == 0 && untouched(dst, sizeof dst),
          "Q8_0: quantizing n not a multiple of 32 refused, dst untouched");
    CHECK(lisa_ggml_quantize(8, x, dst, 0) == 1 && lisa_ggml_quantize(1, x, dst, 0) == 1 &&
              lisa_ggml_quantize(0, x, dst, 0) == 1 && lisa_ggml_quantize(30, x, dst, 0) == 1 &&
              untouched(dst, sizeof dst),
          "quantize n = 0 returns 1 and writes nothing");
    /* Writes stay within n: the byte after the last block is not written. */
    memset(dst, GUARD, sizeof dst);
    CHECK(lisa_ggml_quantize(8, x, dst, 64) == 1 && untouched(dst + 68, sizeof dst - 68) &&
              lisa_ggml_dequantize(8, src, (float *)(void *)(dst + 1024), 32) == 1 &&
              untouched(dst + 1024 + 128, sizeof dst - 1024 - 128),
          "Q8_0: quantize and dequantize write only n elements' bytes");
}

/* tools/make_quant_fixtures.py's weighted_hash: the sum of each float's
   bits times an odd weight that depends on its position, mod 2^64. */
static uint64_t weighted_hash(const float *y, uint64_t n) {
    uint64_t h = 0, i;
    for (i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &y[i], 4);
        h += (uint64_t)u * ((i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) | 1);
    }
    return h;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Every tensor of the real SmolLM2-135M-Instruct Q4_1 GGUF (see
   test_gguf.c's test_real_smollm2), against gguf-py's hashes. */
static void test_real_smollm2(void) {
    const char *path = getenv("LISA_SMOLLM2_GGUF");
    lisa_gguf g;
    lisa_error err;
    FILE *f, *ref;
    char name[256];
    unsigned long long want;
    uint64_t elems = 0, qelems = 0;
    double t_all = 0, t_q = 0;
    int matched = 0, listed = 0, ok_meta;
    if (!path || !*path) {
        printf("  real SmolLM2 tensors: skipped (LISA_SMOLLM2_GGUF not set; not counted)\n");
        return;
    }
    f = fopen(path, "rb");
    ref = fopen(FIX "smollm2.txt", "r");
    CHECK(f && ref, "%s and " FIX "smollm2.txt open", path);
    ok_meta = lisa_gguf_read_metadata(&g, path, NULL, &err) == LISA_OK;
    CHECK(ok_meta, "%s: %s", path, err.message);
    if (!f || !ref || !ok_meta) goto done;
    while (fscanf(ref, "%255s %llx", name, &want) == 2) {
        int j = lisa_gguf_find_tensor(&g, name);
        const lisa_gguf_tensor *t = j >= 0 ? &g.tensors[j] : NULL;
        unsigned char *raw;
        float *y;
        double t0;
        int ok;
        listed++;
        if (!t || !t->size) continue;
        raw = (unsigned char *)malloc(t->size);
        y = (float *)malloc(4 * t->n_elements);
        if (!raw || !y || fseek(f, (long)(g.data_offset + t->offset), SEEK_SET) != 0 ||
            fread(raw, 1, t->size, f) != t->size) {
            free(raw);
            free(y);
            continue;
        }
        t0 = seconds();
        ok = lisa_ggml_dequantize(t->type, raw, y, t->n_elements);
        t0 = seconds() - t0;
        t_all += t0;
        elems += t->n_elements;
        if (t->type == 3) {
            t_q += t0;
            qelems += t->n_elements;
        }
        if (ok && weighted_hash(y, t->n_elements) == want) {
            matched++;
        } else {
            fprintf(stderr, "  %s (%s, %llu elements): differs from gguf-py\n", name, lisa_ggml_type_name(t->type),
                    (unsigned long long)t->n_elements);
        }
        free(raw);
        free(y);
    }
    CHECK(listed == g.n_tensors && matched == listed, "SmolLM2: %d of %d tensors (%d listed) equal gguf-py's", matched,
          g.n_tensors, listed);
    printf("  real SmolLM2 tensors: %llu elements dequantized in %.3f s (%.0f M/s); Q4_1: %llu in %.3f s (%.0f M/s)\n",
           (unsigned long long)elems, t_all, (double)elems / t_all * 1e-6, (unsigned long long)qelems, t_q,
           t_q > 0 ? (double)qelems / t_q * 1e-6 : 0.0);
done:
    if (f) fclose(f);
    if (ref) fclose(ref);
    lisa_gguf_free(&g);
}

int main(void) {
    test_dequant_fixtures();
    test_quant_fixtures();
    test_refusals();
    test_real_smollm2();
    return test_report("quant");
}
