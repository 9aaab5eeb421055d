/* libFuzzer harness: lisa__nfc and lisa__nfc_quick (Unicode NFC) on any bytes.

   Buffers are exactly the sizes lisa.h states (LISA__NFC_GROWTH times the
   input, LISA__NFC_WORK characters of work), so ASan catches an overrun. The
   output must be NFC already (normalizing it again changes nothing), each
   output byte's origin must lie in the input and never go back, text the
   quick check passes must come out unchanged, and bytes that are not UTF-8
   must all come out (as many invalid bytes out as in).

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

/* The bytes of s that do not start or continue a valid character. */
static size_t invalid_bytes(const unsigned char *s, size_t n) {
    size_t i = 0, bad = 0;
    while (i < n) {
        uint32_t cp;
        int len = lisa__utf8_decode(s + i, n - i, &cp);
        if (len == 0) bad++, len = 1;
        i += (size_t)len;
    }
    return bad;
}

/* NFC of s in exactly sized buffers; *from (freed by the caller) the origins. */
static unsigned char *nfc_of(const unsigned char *s, size_t n, size_t *out_n, size_t **from) {
    size_t cap = LISA__NFC_GROWTH * n + 1;
    lisa__nfc_char *work = (lisa__nfc_char *)malloc(LISA__NFC_WORK(n) * sizeof *work);
    unsigned char *out = (unsigned char *)malloc(cap);
    *from = (size_t *)malloc(cap * sizeof(size_t));
    FUZZ_CHECK(work && out && *from, "out of memory for %lu bytes", (unsigned long)n);
    *out_n = lisa__nfc(s, n, out, *from, work);
    free(work);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n1, n2, i, *from1, *from2;
    unsigned char *once, *twice;
    if (size > 1 << 16) return 0;
    once = nfc_of(data, size, &n1, &from1);
    FUZZ_CHECK(n1 <= LISA__NFC_GROWTH * size, "NFC wrote %lu bytes for %lu", (unsigned long)n1, (unsigned long)size);
    for (i = 0; i < n1; i++)
        FUZZ_CHECK(from1[i] < size && (i == 0 || from1[i] >= from1[i - 1]), "origin %lu of byte %lu", (unsigned long)from1[i],
                   (unsigned long)i);
    FUZZ_CHECK(invalid_bytes(once, n1) == invalid_bytes(data, size), "invalid bytes kept");
    if (lisa__nfc_quick(data, size))
        FUZZ_CHECK(n1 == size && memcmp(once, data, size) == 0, "the quick check passed a text NFC changes");
    twice = nfc_of(once, n1, &n2, &from2);
    FUZZ_CHECK(n2 == n1 && memcmp(twice, once, n1) == 0, "NFC of NFC differs");
    free(once), free(twice), free(from1), free(from2);
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
int main(int argc, char **argv) {
    static const char *const seeds[] = {
        "plain ASCII", "cafe\xCC\x81 na\xC3\xAFve", "x\xCC\x95\xCC\x81\xCC\xA3y", "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8",
        "\xE2\x84\xAB\xE2\x84\xA6\xCD\x84", "e\xFF\xCC\x81\xC0\xAF\xED\xA0\x80", "\xE0\xAD\x87\xE0\xAC\xBE\xE0\xA4\x95\xE0\xA4\xBC"};
    size_t i;
    for (i = 0; argc > 1 && i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[1024];
        FILE *f;
        snprintf(path, sizeof path, "%s/seed%lu", argv[1], (unsigned long)i);
        if (!(f = fopen(path, "wb"))) return 1;
        fwrite(seeds[i], 1, strlen(seeds[i]), f);
        fclose(f);
    }
    return 0;
}
#endif
