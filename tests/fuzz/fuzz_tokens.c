/* libFuzzer harness: lisa_tokens_load_memory (llm.c token files).

   Every input is loaded through a counting allocator. A failure must return
   LISA_ERR_FORMAT or LISA_ERR_NOMEM (a read from memory cannot fail once the
   size is checked), with a message that names the input, and leave nothing
   allocated. A success must match the file exactly: the header's magic,
   version and count (decoded here independently of lisa.h), a size of 1024 +
   count * width bytes, every id equal to the file's, the byte count equal to
   what the allocator saw, lisa_tokens_check_vocab and lisa_tokens_batch
   consistent with the ids, and freeing to zero. Then the allocation is made to
   fail (LISA_ERR_NOMEM, cleanly), and the input is loaded again with the
   default allocator, no name and no error struct.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#define TOK_HEADER 1024
#define TOK_MAGIC_U16 20240520
#define TOK_MAGIC_U32 20240801

static void check_tokens(const lisa_tokens *d, const uint8_t *data, size_t size, const char *name) {
    int32_t magic, version, count;
    size_t width, i;
    int max_id = 0;
    lisa_error e;
    int inputs[6], targets[6];
    long long index;
    size_t start;

    FUZZ_CHECK(size >= TOK_HEADER, "loaded from %lu bytes", (unsigned long)size);
    magic = fuzz_le32(data);
    version = fuzz_le32(data + 4);
    count = fuzz_le32(data + 8);
    FUZZ_CHECK((magic == TOK_MAGIC_U16 && version == 1) || (magic == TOK_MAGIC_U32 && version == 7),
               "accepted magic %d version %d", magic, version);
    width = magic == TOK_MAGIC_U16 ? 2 : 4;
    FUZZ_CHECK(count >= 2, "accepted count %d", count);
    FUZZ_CHECK(size == TOK_HEADER + (size_t)count * width, "accepted %lu bytes for %d tokens of %lu bytes",
               (unsigned long)size, count, (unsigned long)width);
    FUZZ_CHECK(d->n == (size_t)count, "n %lu, header count %d", (unsigned long)d->n, count);
    FUZZ_CHECK(d->ids != NULL, "no ids");
    FUZZ_CHECK(d->bytes == d->n * sizeof(int), "tokens say %lu bytes for %lu ids", (unsigned long)d->bytes,
               (unsigned long)d->n);
    FUZZ_CHECK(d->bytes == fuzz_cnt.live_bytes, "tokens say %lu bytes, the allocator holds %lu",
               (unsigned long)d->bytes, (unsigned long)fuzz_cnt.live_bytes);
    for (i = 0; i < d->n; i++) {
        const uint8_t *b = data + TOK_HEADER + i * width;
        uint32_t v = width == 2 ? (uint32_t)b[0] | (uint32_t)b[1] << 8 : (uint32_t)fuzz_le32(b);
        FUZZ_CHECK(v <= 0x7fffffffu, "accepted id %lu at %lu", (unsigned long)v, (unsigned long)i);
        FUZZ_CHECK(d->ids[i] == (int)v, "id %lu is %d, the file says %lu", (unsigned long)i, d->ids[i],
                   (unsigned long)v);
        if (d->ids[i] > max_id) max_id = d->ids[i];
    }
    if (max_id < 0x7fffffff)
        FUZZ_CHECK(lisa_tokens_check_vocab(d, max_id + 1, name, &e) == LISA_OK, "vocab %d rejected: %s",
                   max_id + 1, e.message);
    if (max_id > 0) {
        FUZZ_CHECK(lisa_tokens_check_vocab(d, max_id, name, &e) == LISA_ERR_FORMAT, "vocab %d accepted id %d",
                   max_id, max_id);
        FUZZ_CHECK(e.code == LISA_ERR_FORMAT && strstr(e.message, name) != NULL, "vocab error: \"%s\"", e.message);
    }
    /* Batch 2 x 3 at an index taken from the header's spare words. */
    index = (long long)fuzz_le32(data + 12);
    lisa_tokens_batch(d, index, 2, 3, inputs, targets);
    start = (size_t)((unsigned long long)index * 6 % d->n);
    for (i = 0; i < 6; i++) {
        FUZZ_CHECK(inputs[i] == d->ids[(start + i) % d->n], "batch input %lu", (unsigned long)i);
        FUZZ_CHECK(targets[i] == d->ids[(start + i + 1) % d->n], "batch target %lu", (unsigned long)i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.tok";
    lisa_allocator a = fuzz_allocator();
    lisa_tokens d;
    lisa_error err;
    lisa_result r, r2;
    long k, n_allocs;

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err); /* no terminator: the loader must write one */
    r = lisa_tokens_load_memory(&d, data, size, name, &a, &err);
    if (r != LISA_OK) {
        fuzz_check_failure(r, &err, name);
        FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "result %s from memory: \"%s\"",
                   lisa_result_string(r), err.message);
        FUZZ_CHECK(d.ids == NULL && d.n == 0 && d.bytes == 0, "failed load left tokens behind");
        lisa_tokens_free(&d); /* harmless on a failed load */
        fuzz_check_nothing_live("after freeing a failed load");
    } else {
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with error \"%.*s\"",
                   (int)sizeof err.message, err.message);
        check_tokens(&d, data, size, name);
        n_allocs = fuzz_cnt.n_ok;
        lisa_tokens_free(&d);
        FUZZ_CHECK(d.bytes == 0 && d.ids == NULL && d.n == 0, "tokens not cleared by free");
        fuzz_check_nothing_live("after lisa_tokens_free");
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = lisa_tokens_load_memory(&d, data, size, name, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s", k, lisa_result_string(r2));
            fuzz_check_failure(r2, &err, name);
        }
    }
    r2 = lisa_tokens_load_memory(&d, data, size, NULL, NULL, NULL);
    /* (Only the counting allocator refuses big blocks: its NOMEM may be OK here.) */
    FUZZ_CHECK(r2 == r || (r == LISA_ERR_NOMEM && r2 == LISA_OK), "result %s without allocator/error, %s with",
               lisa_result_string(r2), lisa_result_string(r));
    if (r2 == LISA_OK) lisa_tokens_free(&d);
    fuzz_alloc_reset(-1);
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: small valid files of both widths and a few near misses. */

static void put32(uint8_t *b, int32_t v) {
    uint32_t u = (uint32_t)v;
    b[0] = (uint8_t)u;
    b[1] = (uint8_t)(u >> 8);
    b[2] = (uint8_t)(u >> 16);
    b[3] = (uint8_t)(u >> 24);
}

/* Header (magic, version, count), then the ids at width 2 or 4. Returns the size. */
static size_t make_tokens(uint8_t *buf, int32_t magic, int32_t version, const uint32_t *ids, int n, size_t width) {
    size_t at = TOK_HEADER;
    int i;
    memset(buf, 0, TOK_HEADER);
    put32(buf, magic);
    put32(buf + 4, version);
    put32(buf + 8, n);
    for (i = 0; i < n; i++) {
        buf[at] = (uint8_t)ids[i];
        buf[at + 1] = (uint8_t)(ids[i] >> 8);
        if (width == 4) {
            buf[at + 2] = (uint8_t)(ids[i] >> 16);
            buf[at + 3] = (uint8_t)(ids[i] >> 24);
        }
        at += width;
    }
    return at;
}

static int write_checked(const char *dir, const char *file, const uint8_t *data, size_t size, int valid) {
    lisa_tokens d;
    lisa_result r = lisa_tokens_load_memory(&d, data, size, file, NULL, NULL);
    if ((r == LISA_OK) != valid) {
        fprintf(stderr, "%s: expected %s, got %s\n", file, valid ? "valid tokens" : "an error", lisa_result_string(r));
        return 1;
    }
    if (r == LISA_OK) lisa_tokens_free(&d);
    LLVMFuzzerTestOneInput(data, size);
    return fuzz_write_seed(dir, file, data, size);
}

int main(int argc, char **argv) {
    static uint8_t buf[4096];
    static const uint32_t small[8] = {1, 5, 0, 255, 256, 65535, 7, 3};
    static const uint32_t wide[6] = {0, 70000, 1, 0x7fffffffu, 42, 65536};
    static const uint32_t bad_id[3] = {4, 0x80000000u, 9};
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/tokens";
    size_t n;
    int bad = 0;
    n = make_tokens(buf, TOK_MAGIC_U16, 1, small, 8, 2);
    bad |= write_checked(dir, "u16_v1.bin", buf, n, 1);
    n = make_tokens(buf, TOK_MAGIC_U16, 1, small, 2, 2);
    bad |= write_checked(dir, "u16_v1_two.bin", buf, n, 1);
    n = make_tokens(buf, TOK_MAGIC_U32, 7, wide, 6, 4);
    bad |= write_checked(dir, "u32_v7.bin", buf, n, 1);
    /* near misses */
    n = make_tokens(buf, TOK_MAGIC_U16, 1, small, 1, 2);
    bad |= write_checked(dir, "count_1.bin", buf, n, 0);
    n = make_tokens(buf, TOK_MAGIC_U16, 1, small, 8, 2);
    bad |= write_checked(dir, "truncated_by_1.bin", buf, n - 1, 0);
    n = make_tokens(buf, TOK_MAGIC_U32, 7, wide, 6, 4);
    buf[n] = 0;
    bad |= write_checked(dir, "trailing_1.bin", buf, n + 1, 0);
    n = make_tokens(buf, TOK_MAGIC_U16, 7, small, 8, 2);
    bad |= write_checked(dir, "u16_wrong_version.bin", buf, n, 0);
    n = make_tokens(buf, TOK_MAGIC_U32, 7, bad_id, 3, 4);
    bad |= write_checked(dir, "u32_id_too_big.bin", buf, n, 0);
    n = make_tokens(buf, 20240519, 1, small, 8, 2);
    bad |= write_checked(dir, "wrong_magic.bin", buf, n, 0);
    n = make_tokens(buf, TOK_MAGIC_U16, 1, small, 0, 2);
    bad |= write_checked(dir, "header_only.bin", buf, n, 0);
    return bad;
}
#endif
