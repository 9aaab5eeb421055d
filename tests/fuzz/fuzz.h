/* Shared by the libFuzzer harnesses in tests/fuzz/fuzz_*.c (see README.md).

   fuzz_alloc: a counting lisa_allocator. Every block carries a small header
   with its size, so a free with the wrong size or a foreign pointer is caught;
   any single allocation above FUZZ_ALLOC_CAP is refused (a hostile header must
   then give LISA_ERR_NOMEM, not an out-of-memory kill); fuzz_alloc_fail_after()
   refuses every allocation after the first N, to walk the NOMEM paths.

   FUZZ_CHECK(cond, fmt, ...): on failure prints the message and aborts, which
   libFuzzer reports as a crash and saves the input. */
#ifndef LISA_FUZZ_H
#define LISA_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_ALLOC_CAP
#define FUZZ_ALLOC_CAP ((size_t)64 << 20)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FUZZ_UNUSED __attribute__((unused))
#else
#define FUZZ_UNUSED
#endif

#define FUZZ_CHECK(cond, ...)                                                \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FUZZ CHECK FAILED %s:%d: %s: ", __FILE__,       \
                    __LINE__, #cond);                                        \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
            abort();                                                         \
        }                                                                    \
    } while (0)

typedef struct fuzz_counter {
    size_t live_bytes;   /* requested bytes not yet freed */
    long live_blocks;
    long n_ok, n_refused;
    long fail_after;     /* < 0: no limit; else refuse once n_ok reaches it */
} fuzz_counter;

static fuzz_counter fuzz_cnt;

#define FUZZ_HDR 16 /* keeps the returned pointer 16-byte aligned */
#define FUZZ_MAGIC 0x6c697361u

static void *fuzz_alloc_fn(void *user, size_t size) {
    fuzz_counter *c = (fuzz_counter *)user;
    unsigned char *p;
    uint32_t magic = FUZZ_MAGIC;
    FUZZ_CHECK(size > 0, "the library asked for 0 bytes");
    if (size > FUZZ_ALLOC_CAP || (c->fail_after >= 0 && c->n_ok >= c->fail_after)) {
        c->n_refused++;
        return NULL;
    }
    p = (unsigned char *)malloc(FUZZ_HDR + size);
    if (!p) {
        c->n_refused++;
        return NULL;
    }
    memcpy(p, &size, sizeof size);
    memcpy(p + 8, &magic, sizeof magic);
    c->live_bytes += size;
    c->live_blocks++;
    c->n_ok++;
    return p + FUZZ_HDR;
}

static void fuzz_free_fn(void *user, void *ptr, size_t size) {
    fuzz_counter *c = (fuzz_counter *)user;
    unsigned char *p;
    size_t had;
    uint32_t magic;
    FUZZ_CHECK(ptr != NULL, "free of NULL through the allocator hook");
    p = (unsigned char *)ptr - FUZZ_HDR;
    memcpy(&had, p, sizeof had);
    memcpy(&magic, p + 8, sizeof magic);
    FUZZ_CHECK(magic == FUZZ_MAGIC, "free of a pointer this allocator did not return");
    FUZZ_CHECK(had == size, "free says %lu bytes, the block has %lu", (unsigned long)size, (unsigned long)had);
    FUZZ_CHECK(c->live_blocks > 0 && c->live_bytes >= size, "more freed than allocated");
    magic = 0;
    memcpy(p + 8, &magic, sizeof magic);
    c->live_bytes -= size;
    c->live_blocks--;
    free(p);
}

static FUZZ_UNUSED lisa_allocator fuzz_allocator(void) {
    lisa_allocator a;
    a.alloc = fuzz_alloc_fn;
    a.free = fuzz_free_fn;
    a.user = &fuzz_cnt;
    return a;
}

/* Starts a fresh count; every earlier allocation must be gone. */
static FUZZ_UNUSED void fuzz_alloc_reset(long fail_after) {
    FUZZ_CHECK(fuzz_cnt.live_blocks == 0 && fuzz_cnt.live_bytes == 0, "%ld blocks (%lu bytes) still allocated",
               fuzz_cnt.live_blocks, (unsigned long)fuzz_cnt.live_bytes);
    memset(&fuzz_cnt, 0, sizeof fuzz_cnt);
    fuzz_cnt.fail_after = fail_after;
}

static FUZZ_UNUSED void fuzz_check_nothing_live(const char *when) {
    FUZZ_CHECK(fuzz_cnt.live_blocks == 0 && fuzz_cnt.live_bytes == 0, "%s: %ld blocks (%lu bytes) still allocated",
               when, fuzz_cnt.live_blocks, (unsigned long)fuzz_cnt.live_bytes);
}

/* A failed load: a real error code, a message that names the input, nothing allocated. */
static FUZZ_UNUSED void fuzz_check_failure(lisa_result r, const lisa_error *err, const char *name) {
    FUZZ_CHECK(r == LISA_ERR_NOMEM || r == LISA_ERR_INVALID || r == LISA_ERR_IO || r == LISA_ERR_FORMAT,
               "unknown result %d", (int)r);
    FUZZ_CHECK(err->code == r, "err.code %d, returned %d", (int)err->code, (int)r);
    FUZZ_CHECK(err->message[0] != 0, "empty error message for result %d", (int)r);
    FUZZ_CHECK(memchr(err->message, 0, sizeof err->message) != NULL, "error message not terminated");
    FUZZ_CHECK(strstr(err->message, name) != NULL, "error message does not name the input: \"%s\"", err->message);
    FUZZ_CHECK(r != LISA_ERR_NOMEM || fuzz_cnt.n_refused > 0, "NOMEM though no allocation was refused: \"%s\"",
               err->message);
    fuzz_check_nothing_live("after a failed load");
}

/* Little-endian int32 at b, independent of lisa.h's reader. */
static FUZZ_UNUSED int32_t fuzz_le32(const uint8_t *b) {
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

static FUZZ_UNUSED int fuzz_little_endian(void) {
    const uint32_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* Seed writing (harnesses built with -DFUZZ_MAKE_SEEDS have a main() that
   writes their seed corpus into the directory given as argv[1]). */
static FUZZ_UNUSED int fuzz_write_seed(const char *dir, const char *file, const void *data, size_t size) {
    char path[1024];
    FILE *f;
    int ok;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    f = fopen(path, "wb");
    ok = f != NULL && fwrite(data, 1, size, f) == size;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) {
        fprintf(stderr, "cannot write %s\n", path);
        return 1;
    }
    printf("%s (%lu bytes)\n", path, (unsigned long)size);
    return 0;
}

#endif
