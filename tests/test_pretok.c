/* test_pretok.c - UTF-8 decoding and encoding, the Unicode class tables and the
   pre-tokenizer scanners of lisa.h.

   - every split of tests/fixtures/pretok.jsonl (tokenizers' own splits of a
     hard corpus, by tools/make_pretok_fixtures.py) is reproduced exactly;
   - classes of known code points;
   - encode then decode gives back every code point, and decode accepts exactly
     the encodings: all 1-, 2- and 3-byte inputs and a sample of 4-byte ones;
   - bytes that are not UTF-8 split as a one-byte character of no class would,
     and no scanner reads past the end (buffers are exactly sized for ASan);
   - pattern texts and GGUF pre names map to scanners, unknown ones to 0.

   Build: make build/test_pretok (includes the implementation: the functions
   under test are private). */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <string.h>

#define FIXTURE "tests/fixtures/pretok.jsonl"

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = (char *)malloc((size_t)size + 1);
        if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)size;
    }
    fclose(f);
    return buf;
}

/* The ends of the pieces the scanner makes of s[0..n), at most max of them. */
static size_t split(int kind, const unsigned char *s, size_t n, size_t *ends, size_t max) {
    size_t count = 0, pos = 0;
    while (pos < n && count < max) {
        size_t next = lisa__pretok_next(kind, s, n, pos);
        if (next <= pos || next > n) return (size_t)-1;   /* no progress, or past the end */
        ends[count++] = pos = next;
    }
    return count;
}

static void print_piece_ends(const char *label, const size_t *ends, size_t n) {
    size_t i;
    fprintf(stderr, "  %s:", label);
    for (i = 0; i < n; i++) fprintf(stderr, " %lu", (unsigned long)ends[i]);
    fprintf(stderr, "\n");
}

/* One fixture line: the text and, for every scanner, the expected ends. */
static void check_line(const char *line, size_t len, int line_no, int *n_splits) {
    lisa_json j;
    lisa_error err;
    size_t n_text, want[512], got[512];
    const unsigned char *text;
    int kind, root;
    if (lisa_json_parse(&j, line, len, FIXTURE, NULL, &err) != LISA_OK) {
        CHECK(0, "line %d parses: %s", line_no, err.message);
        lisa_json_free(&j);
        return;
    }
    root = lisa_json_root(&j);
    text = (const unsigned char *)lisa_json_string(&j, lisa_json_get(&j, root, "text"), &n_text);
    for (kind = 1; kind < LISA__PRETOK_N_KINDS; kind++) {
        int ends = lisa_json_get(&j, root, lisa__pretok_name(kind));
        size_t i, n_want = (size_t)lisa_json_length(&j, ends), n_got;
        if (!text || ends < 0 || n_want > 512) {
            CHECK(0, "line %d has the text and the %s ends", line_no, lisa__pretok_name(kind));
            continue;
        }
        for (i = 0; i < n_want; i++) want[i] = (size_t)lisa_json_number(&j, lisa_json_at(&j, ends, (int)i));
        n_got = split(kind, text, n_text, got, 512);
        CHECK(n_got == n_want && memcmp(got, want, n_want * sizeof want[0]) == 0,
              "line %d: %s splits \"%.*s\" as tokenizers does", line_no, lisa__pretok_name(kind), (int)n_text,
              (const char *)text);
        if (n_got != n_want || memcmp(got, want, n_want * sizeof want[0]) != 0) {
            print_piece_ends("want", want, n_want);
            print_piece_ends("got", got, n_got == (size_t)-1 ? 0 : n_got);
        }
        (*n_splits)++;
    }
    lisa_json_free(&j);
}

static void test_fixture(void) {
    size_t len = 0, at = 0;
    char *buf = read_file(FIXTURE, &len);
    int line_no = 0, n_splits = 0;
    CHECK(buf != NULL, "%s can be read (run from the repository root)", FIXTURE);
    if (!buf) return;
    while (at < len) {
        const char *nl = (const char *)memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line_no++;
        if (end > at) check_line(buf + at, end - at, line_no, &n_splits);
        at = end + 1;
    }
    CHECK(line_no >= 500 && n_splits == line_no * (LISA__PRETOK_N_KINDS - 1),
          "the fixture has every scanner's splits of 500+ texts (%d lines, %d splits)", line_no, n_splits);
    free(buf);
}

static void test_classes(void) {
    static const struct {
        uint32_t cp;
        unsigned cls;
    } known[] = {
        {'a', LISA__UC_LETTER | LISA__UC_LOWER}, {'Z', LISA__UC_LETTER | LISA__UC_UPPER},
        {'7', LISA__UC_NUMBER | LISA__UC_NUMERIC}, {' ', LISA__UC_SPACE}, {'\n', LISA__UC_SPACE},
        {'!', LISA__UC_PUNCT}, {'$', LISA__UC_SYMBOL}, {0, 0}, {0x7F, 0}, {0x85, LISA__UC_SPACE},
        {0xA0, LISA__UC_SPACE}, {0xB2, LISA__UC_NUMBER | LISA__UC_NUMERIC}, {0xDF, LISA__UC_LETTER | LISA__UC_LOWER},
        {0x17F, LISA__UC_LETTER | LISA__UC_LOWER}, {0x1C5, LISA__UC_LETTER | LISA__UC_UPPER},
        {0x301, LISA__UC_MARK}, {0x663, LISA__UC_NUMBER | LISA__UC_NUMERIC}, {0x93F, LISA__UC_MARK},
        {0x1680, LISA__UC_SPACE}, {0x1C89, LISA__UC_LETTER | LISA__UC_UPPER}, /* new in Unicode 16 */
        {0x200B, 0}, {0x200D, 0}, {0x2028, LISA__UC_SPACE}, {0x202F, LISA__UC_SPACE}, {0x2160, LISA__UC_NUMBER | LISA__UC_NUMERIC},
        {0x3000, LISA__UC_SPACE}, {0x4E00, LISA__UC_LETTER}, {0xD800, 0}, {0xFE0F, LISA__UC_MARK},
        {0xFEFF, 0}, {0xFF15, LISA__UC_NUMBER | LISA__UC_NUMERIC}, {0x1F600, LISA__UC_SYMBOL},
        {0x1F3FD, LISA__UC_SYMBOL}, {0x11DE0, LISA__UC_NUMERIC}, /* a number only to Rust's newer tables */
        {0x20000, LISA__UC_LETTER}, {0xE0001, 0}, {0x10FFFF, 0}, {0x110000, 0}, {0xFFFFFFFFu, 0},
    };
    size_t k;
    for (k = 0; k < sizeof known / sizeof known[0]; k++)
        CHECK(lisa__uc_class(known[k].cp) == known[k].cls, "U+%04lX has class 0x%X, not 0x%X",
              (unsigned long)known[k].cp, known[k].cls, lisa__uc_class(known[k].cp));
}

static int expected_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

static void test_utf8_round_trip(void) {
    uint32_t cp;
    long bad = 0, truncated_accepted = 0;
    for (cp = 0; cp <= 0x10FFFF; cp++) {
        unsigned char b[4];
        uint32_t back = 0xFFFFFFFFu;
        int len, k;
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        len = lisa__utf8_encode(cp, b);
        if (len != expected_length(cp) || lisa__utf8_decode(b, (size_t)len, &back) != len || back != cp) bad++;
        for (k = 1; k < len; k++)
            if (lisa__utf8_decode(b, (size_t)k, &back) != 0) truncated_accepted++;
    }
    CHECK(bad == 0, "every code point encodes to its length and decodes back (%ld did not)", bad);
    CHECK(truncated_accepted == 0, "no truncated encoding decodes (%ld did)", truncated_accepted);
}

/* Marks every valid 2- and 3-byte encoding, made by the encoder from all code points. */
static void mark_encodings(unsigned char *valid2, unsigned char *valid3) {
    uint32_t cp;
    for (cp = 0x80; cp < 0x10000; cp++) {
        unsigned char b[4];
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        if (lisa__utf8_encode(cp, b) == 2) valid2[b[0] << 8 | b[1]] = 1;
        else valid3[(size_t)b[0] << 16 | (size_t)b[1] << 8 | b[2]] = 1;
    }
}

static void test_utf8_rejects(void) {
    static const unsigned char cont[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xF5, 0xFF};
    unsigned char *valid2 = (unsigned char *)calloc(1 << 16, 1), *valid3 = (unsigned char *)calloc(1 << 24, 1);
    long wrong = 0, wrong4 = 0;
    unsigned a, b, c, d, i, j, k;
    CHECK(valid2 && valid3, "memory for the encoding tables");
    if (!valid2 || !valid3) {
        free(valid2);
        free(valid3);
        return;
    }
    mark_encodings(valid2, valid3);
    /* Every 3-byte input: the decoder takes exactly the valid prefix, if any. */
    for (a = 0; a < 256; a++)
        for (b = 0; b < 256; b++)
            for (c = 0; c < 256; c++) {
                unsigned char s[3];
                uint32_t cp;
                int want, got;
                s[0] = (unsigned char)a, s[1] = (unsigned char)b, s[2] = (unsigned char)c;
                want = a < 0x80 ? 1 : valid2[a << 8 | b] ? 2 : valid3[a << 16 | b << 8 | c] ? 3 : 0;
                got = lisa__utf8_decode(s, 3, &cp);
                if (got != want) wrong++;
            }
    CHECK(wrong == 0, "all 16M 3-byte inputs decode as exactly their valid prefix (%ld did not)", wrong);
    /* 4-byte leads with continuations sampled around every boundary. */
    for (a = 0xF0; a < 0x100; a++)
        for (i = 0; i < sizeof cont; i++)
            for (j = 0; j < sizeof cont; j++)
                for (k = 0; k < sizeof cont; k++) {
                    unsigned char s[4];
                    uint32_t cp = 0, v;
                    int want = 0, got;
                    b = cont[i], c = cont[j], d = cont[k];
                    s[0] = (unsigned char)a, s[1] = (unsigned char)b, s[2] = (unsigned char)c, s[3] = (unsigned char)d;
                    v = (a & 7u) << 18 | (b & 0x3Fu) << 12 | (c & 0x3Fu) << 6 | (d & 0x3Fu);
                    if (a <= 0xF4 && (b & 0xC0) == 0x80 && (c & 0xC0) == 0x80 && (d & 0xC0) == 0x80 &&
                        v >= 0x10000 && v <= 0x10FFFF)
                        want = 4;
                    got = lisa__utf8_decode(s, 4, &cp);
                    if (got != want || (want && cp != v)) wrong4++;
                }
    CHECK(wrong4 == 0, "4-byte inputs decode only when valid, to their code point (%ld did not)", wrong4);
    free(valid2);
    free(valid3);
}

/* Text with bytes that are not UTF-8 splits as the same text with each of
   those bytes replaced by '#' (one character, not a letter, number or space). */
static void test_invalid_bytes(void) {
    static const char *const parts[] = {"a", "bc", " ", "  ", "\n", "\r\n", "'s", "'", "7", "123", ".", "!",
                                        "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xCC\x81",
                                        "\x80", "\xBF", "\xC3", "\xE2\x82", "\xF0\x9F\x98", "\xFF", "\xC0\xAF",
                                        "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE0\x80\xAF", "\xF5"};
    lisa_rng rng;
    int trial, kind;
    long mismatched = 0, broken = 0;
    lisa_rng_seed(&rng, 7);
    for (trial = 0; trial < 3000; trial++) {
        char text[256], fixed[256];
        size_t n = 0, at = 0, want[256], got[256], n_want, n_got;
        int count = 1 + (int)(lisa_rng_next(&rng) % 12);
        unsigned char *exact;
        while (count-- > 0) {
            const char *p = parts[lisa_rng_next(&rng) % (sizeof parts / sizeof parts[0])];
            memcpy(text + n, p, strlen(p));
            n += strlen(p);
        }
        memcpy(fixed, text, n);
        while (at < n) {   /* each byte that starts no valid sequence becomes '#' */
            uint32_t cp;
            int len = lisa__utf8_decode((const unsigned char *)text + at, n - at, &cp);
            if (len == 0) {
                fixed[at] = '#';
                len = 1;
            }
            at += (size_t)len;
        }
        exact = (unsigned char *)malloc(n);   /* exactly n bytes: ASan sees any read past them */
        if (!exact) continue;
        memcpy(exact, text, n);
        for (kind = 1; kind < LISA__PRETOK_N_KINDS; kind++) {
            n_want = split(kind, (const unsigned char *)fixed, n, want, 256);
            n_got = split(kind, exact, n, got, 256);
            if (n_got == (size_t)-1 || n_want == (size_t)-1) broken++;
            else if (n_got != n_want || memcmp(got, want, n_got * sizeof got[0]) != 0) mismatched++;
        }
        free(exact);
    }
    CHECK(broken == 0, "every scanner moves forward and stays inside the text (%ld did not)", broken);
    CHECK(mismatched == 0, "bytes that are not UTF-8 split as one character of no class each (%ld texts did not)",
          mismatched);
}

static void test_names(void) {
    static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    static const char llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
                                 " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
                                " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const struct {
        const char *name;
        int n, kinds[2];
    } gguf[] = {
        {"smollm", 2, {LISA__PRETOK_DIGITS_EACH, LISA__PRETOK_GPT2}},
        {"starcoder", 2, {LISA__PRETOK_DIGITS_EACH, LISA__PRETOK_GPT2}},
        {"llama-bpe", 1, {LISA__PRETOK_LLAMA3, 0}},
        {"llama3", 1, {LISA__PRETOK_LLAMA3, 0}},
        {"gpt-2", 1, {LISA__PRETOK_GPT2, 0}},
        {"default", 1, {LISA__PRETOK_GPT2, 0}},
        {"qwen2", 1, {LISA__PRETOK_QWEN2, 0}},
        {"deepseek-r1-qwen", 1, {LISA__PRETOK_QWEN2, 0}},
        {"llama", 0, {0, 0}}, {"", 0, {0, 0}}, {"smollm2", 0, {0, 0}}, {"smol", 0, {0, 0}},
        {"GPT-2", 0, {0, 0}}, {"deepseek-coder", 0, {0, 0}}, {"tekken", 0, {0, 0}},
    };
    size_t k;
    int kind;
    CHECK(lisa__pretok_from_pattern(gpt2, strlen(gpt2)) == LISA__PRETOK_GPT2, "the GPT-2 regex");
    CHECK(lisa__pretok_from_pattern(llama3, strlen(llama3)) == LISA__PRETOK_LLAMA3, "the Llama 3 regex");
    CHECK(lisa__pretok_from_pattern(qwen2, strlen(qwen2)) == LISA__PRETOK_QWEN2, "the Qwen2 regex");
    CHECK(lisa__pretok_from_pattern(gpt2, strlen(gpt2) - 1) == 0, "a regex one character short is unknown");
    CHECK(lisa__pretok_from_pattern("", 0) == 0, "the empty regex is unknown");
    CHECK(lisa__pretok_from_pattern("\\s+", 3) == 0, "another regex is unknown");
    for (k = 0; k < sizeof gguf / sizeof gguf[0]; k++) {
        int kinds[4] = {-1, -1, -1, -1};
        int n = lisa__pretok_from_gguf(gguf[k].name, strlen(gguf[k].name), kinds);
        CHECK(n == gguf[k].n && (n == 0 || (kinds[0] == gguf[k].kinds[0] && kinds[1] == gguf[k].kinds[1])),
              "GGUF pre \"%s\": %d scanners (got %d: %d %d)", gguf[k].name, gguf[k].n, n, kinds[0], kinds[1]);
    }
    for (kind = 1; kind < LISA__PRETOK_N_KINDS; kind++)
        CHECK(strcmp(lisa__pretok_name(kind), "none") != 0 &&
                  (kind == 1 || strcmp(lisa__pretok_name(kind), lisa__pretok_name(kind - 1)) != 0),
              "scanner %d has a name of its own", kind);
    CHECK(strcmp(lisa__pretok_name(0), "none") == 0 && strcmp(lisa__pretok_name(99), "none") == 0,
          "no scanner is \"none\"");
}

int main(void) {
    test_fixture();
    test_classes();
    test_utf8_round_trip();
    test_utf8_rejects();
    test_invalid_bytes();
    test_names();
    return test_report("test_pretok");
}
