/* test_nfc.c - lisa.h's Unicode NFC (lisa__nfc, lisa__nfc_quick).

   - every case of tests/fixtures/nfc.txt (unicodedata2 16.0.0's NFC, by
     tools/make_nfc.py: every code point with a canonical decomposition or a
     nonzero combining class, bases with marks in shuffled orders, Hangul
     jamo, exclusions, singletons, blocked compositions, long runs of marks,
     real-language text) comes out exactly; the output buffers are sized to
     lisa.h's stated bounds so that ASan catches an overrun;
   - text the quick check passes is the expected text unchanged;
   - each output byte's origin lies in the input and never goes back;
   - bytes that are not UTF-8 are kept and nothing composes across them;
   - origins of composed and reordered characters;
   - the tokenizer.json NFC normalizer: the qwen2-split tokenizer encodes the
     texts of tests/fixtures/nfc_tokens.jsonl to tokenizers' ids (the added
     token "caf\u00e9", normalized, matched in decomposed text too), offsets
     at the original bytes; in a Sequence too; NFD, NFKC, NFKD refused by name.

   Build: make build/test_nfc (includes the implementation: the functions
   under test are private). */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <string.h>

#define FIXTURE "tests/fixtures/nfc.txt"
#define TOKEN_FIXTURE "tests/fixtures/nfc_tokens.jsonl"
#define QWEN2_DIR "tests/fixtures/tokenizers/qwen2-split"

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
        if (buf) {
            buf[size] = 0;
            *len = (size_t)size;
        }
    }
    fclose(f);
    return buf;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Hex digits p[0..n) as bytes into out; their number, or -1. */
static long unhex(const char *p, size_t n, unsigned char *out) {
    size_t i;
    if (n % 2) return -1;
    for (i = 0; i < n; i += 2) {
        int hi = hex_digit(p[i]), lo = hex_digit(p[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i / 2] = (unsigned char)(hi * 16 + lo);
    }
    return (long)(n / 2);
}

typedef struct result {
    unsigned char *out;
    size_t *from;
    size_t n;
} result;

/* NFC of s[0..n) in buffers of exactly the sizes lisa.h asks for (freed by result_free). */
static result run_nfc(const unsigned char *s, size_t n) {
    result r;
    size_t cap = LISA__NFC_GROWTH * n;
    lisa__nfc_char *work = (lisa__nfc_char *)malloc(LISA__NFC_WORK(n) * sizeof *work);
    r.out = (unsigned char *)malloc(cap ? cap : 1);
    r.from = (size_t *)malloc((cap ? cap : 1) * sizeof(size_t));
    r.n = (work && r.out && r.from) ? lisa__nfc(s, n, r.out, r.from, work) : (size_t)-1;
    free(work);
    return r;
}

static void result_free(result *r) {
    free(r->out);
    free(r->from);
}

static int origins_ok(const result *r, size_t n) {
    size_t i;
    for (i = 0; i < r->n; i++)
        if (r->from[i] >= n || (i > 0 && r->from[i] < r->from[i - 1])) return 0;
    return 1;
}

static void print_hex(const char *what, const unsigned char *s, size_t n) {
    size_t i;
    fprintf(stderr, "  %s:", what);
    for (i = 0; i < n && i < 48; i++) fprintf(stderr, " %02x", s[i]);
    fprintf(stderr, "%s\n", n > 48 ? " ..." : "");
}

static void check_fixture(void) {
    size_t size, pos = 0;
    char *text = read_file(FIXTURE, &size);
    int cases = 0, bad = 0, bad_quick = 0, bad_from = 0, quick_yes = 0, line = 0;
    CHECK(text != NULL, "%s is readable", FIXTURE);
    if (!text) return;
    while (pos < size) {
        char *end = memchr(text + pos, '\n', size - pos), *tab;
        size_t len = (end ? (size_t)(end - text) : size) - pos;
        unsigned char *in, *want;
        long n_in, n_want;
        result r;
        line++;
        tab = memchr(text + pos, '\t', len);
        if (!tab) {
            CHECK(len == 0, "%s line %d has a tab", FIXTURE, line);
            pos += len + 1;
            continue;
        }
        in = (unsigned char *)malloc(len / 2 + 1);
        want = (unsigned char *)malloc(len / 2 + 1);
        n_in = unhex(text + pos, (size_t)(tab - (text + pos)), in);
        n_want = unhex(tab + 1, len - (size_t)(tab - (text + pos)) - 1, want);
        CHECK(n_in >= 0 && n_want >= 0, "%s line %d is hex", FIXTURE, line);
        if (n_in >= 0 && n_want >= 0) {
            cases++;
            r = run_nfc(in, (size_t)n_in);
            if (r.n != (size_t)n_want || memcmp(r.out, want, r.n) != 0) {
                if (bad++ < 5) {
                    fprintf(stderr, "%s line %d: NFC differs from unicodedata2\n", FIXTURE, line);
                    print_hex("input", in, (size_t)n_in);
                    print_hex("want ", want, (size_t)n_want);
                    print_hex("got  ", r.out, r.n == (size_t)-1 ? 0 : r.n);
                }
            }
            if (r.n != (size_t)-1 && !origins_ok(&r, (size_t)n_in)) bad_from++;
            if (lisa__nfc_quick(in, (size_t)n_in)) {
                quick_yes++;
                if (n_in != n_want || memcmp(in, want, (size_t)n_in) != 0) bad_quick++;
            }
            result_free(&r);
        }
        free(in);
        free(want);
        pos += len + 1;
    }
    free(text);
    CHECK(cases > 10000, "%s has %d cases", FIXTURE, cases);
    CHECK(bad == 0, "%d of %d cases differ from unicodedata2's NFC", bad, cases);
    CHECK(bad_quick == 0, "%d of %d texts the quick check passes are not NFC", bad_quick, quick_yes);
    CHECK(bad_from == 0, "%d cases give origins out of range or going back", bad_from);
    CHECK(quick_yes > 0 && quick_yes < cases, "the quick check passes some cases, not all (%d of %d)", quick_yes, cases);
}

/* NFC of s (n bytes) is want (wn bytes). */
static void expect(const char *s, size_t n, const char *want, size_t wn, const char *what) {
    result r = run_nfc((const unsigned char *)s, n);
    CHECK(r.n == wn && memcmp(r.out, want, wn) == 0, "%s: NFC gives %lu bytes, want %lu", what, (unsigned long)r.n,
          (unsigned long)wn);
    CHECK(r.n == (size_t)-1 || origins_ok(&r, n), "%s: origins in range and in order", what);
    result_free(&r);
}

#define EXPECT(s, want, what) expect(s, sizeof s - 1, want, sizeof want - 1, what)

static void check_invalid_utf8(void) {
    unsigned char b[1];
    int c, kept = 0;
    /* every byte from 0x80 on, alone, is no character: kept */
    for (c = 0x80; c < 0x100; c++) {
        result r;
        b[0] = (unsigned char)c;
        r = run_nfc(b, 1);
        kept += r.n == 1 && r.out[0] == b[0] && r.from[0] == 0;
        result_free(&r);
    }
    CHECK(kept == 128, "lone bytes from 0x80 on are kept (%d of 128)", kept);
    EXPECT("e\xFF\xCC\x81", "e\xFF\xCC\x81", "no composition across an invalid byte");
    EXPECT("e\xCC\x81\x80", "\xC3\xA9\x80", "a composition before a stray continuation byte");
    EXPECT("a\xCC\x81\xFE\xCC\xA3", "\xC3\xA1\xFE\xCC\xA3", "no reordering across an invalid byte");
    EXPECT("e\xCC", "e\xCC", "a truncated mark at the end");
    EXPECT("\xED\xA0\x80\xCC\x81", "\xED\xA0\x80\xCC\x81", "an encoded surrogate stays three bytes");
    EXPECT("\xC0\xAF" "A\xCC\x8A", "\xC0\xAF\xC3\x85", "an overlong sequence, then a composition");
    EXPECT("\xF4\x90\x80\x80", "\xF4\x90\x80\x80", "beyond U+10FFFF");
    CHECK(lisa__nfc_quick((const unsigned char *)"\xFF\xFE plain", 8), "invalid bytes pass the quick check");
}

static void check_origins(void) {
    /* x U+0315 (class 232) U+0301 (230): reordered; both marks stand at byte 1 */
    result r = run_nfc((const unsigned char *)"x\xCC\x95\xCC\x81", 5);
    static const size_t want_from[5] = {0, 1, 1, 1, 1};
    CHECK(r.n == 5 && memcmp(r.out, "x\xCC\x81\xCC\x95", 5) == 0 && memcmp(r.from, want_from, sizeof want_from) == 0,
          "reordered marks: the one moved ahead stands where the first stood");
    result_free(&r);
    /* "ae" U+0301 "b": the composite at its starter */
    r = run_nfc((const unsigned char *)"ae\xCC\x81" "b", 5);
    {
        static const size_t want[4] = {0, 1, 1, 4};
        CHECK(r.n == 4 && memcmp(r.out, "a\xC3\xA9" "b", 4) == 0 && memcmp(r.from, want, sizeof want) == 0,
              "a composite stands at its starter, the text around at its own bytes");
    }
    result_free(&r);
    /* U+0344 (two bytes) decomposes to U+0308 U+0301, both kept, at byte 0 */
    r = run_nfc((const unsigned char *)"\xCD\x84", 2);
    CHECK(r.n == 4 && memcmp(r.out, "\xCC\x88\xCC\x81", 4) == 0 && r.from[0] == 0 && r.from[3] == 0,
          "U+0344 becomes U+0308 U+0301 at its byte");
    result_free(&r);
    /* Hangul: U+1100 U+1161 U+11A8 composes to U+AC01 */
    EXPECT("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81", "L V T jamo compose to one syllable");
    EXPECT("", "", "the empty text");
}

static void check_quick(void) {
    CHECK(lisa__nfc_quick((const unsigned char *)"plain ASCII text", 16), "ASCII is NFC");
    CHECK(lisa__nfc_quick((const unsigned char *)"caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xEA\xB0\x80", 14),
          "precomposed Latin, CJK and Hangul syllables pass");
    CHECK(!lisa__nfc_quick((const unsigned char *)"cafe\xCC\x81", 6), "a combining acute does not pass");
    CHECK(!lisa__nfc_quick((const unsigned char *)"\xE2\x84\xAB", 3), "U+212B ANGSTROM SIGN does not pass");
    CHECK(!lisa__nfc_quick((const unsigned char *)"a\xCC\xA3\xCC\x95\xCC\x81", 7), "marks out of order do not pass");
}

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

#define MAX_IDS 1024

static void check_tokenizer_texts(const lisa_tokenizer *t) {
    size_t size, pos = 0;
    char *text = read_file(TOKEN_FIXTURE, &size);
    int lines = 0, bad_ids = 0, bad_off = 0;
    CHECK(text != NULL, "%s is readable", TOKEN_FIXTURE);
    while (text && pos < size) {
        char *end = memchr(text + pos, '\n', size - pos);
        size_t len = (end ? (size_t)(end - text) : size) - pos, n, ng = 0, k;
        int want[MAX_IDS], got[MAX_IDS], nw;
        size_t off[MAX_IDS];
        lisa_json j;
        lisa_error e;
        const char *s;
        if (lisa_json_parse(&j, text + pos, len, TOKEN_FIXTURE, NULL, &e) == LISA_OK) {
            int root = lisa_json_root(&j);
            lines++;
            s = lisa_json_string(&j, lisa_json_get(&j, root, "text"), &n);
            nw = json_ints(&j, lisa_json_get(&j, root, "ids"), want, MAX_IDS);
            if (lisa_tokenizer_encode_offsets(t, s, n, 0, 0, got, off, MAX_IDS, &ng, &e) != LISA_OK || nw < 0 ||
                ng != (size_t)nw || memcmp(got, want, ng * sizeof *got) != 0) {
                if (bad_ids++ < 3) fprintf(stderr, "%s line %d: ids differ from tokenizers' for \"%.60s\"\n", TOKEN_FIXTURE, lines, s);
            } else {
                for (k = 0; k < ng; k++)
                    if (off[k] >= n || (k > 0 && off[k] < off[k - 1])) {
                        bad_off++;
                        break;
                    }
            }
        } else {
            CHECK(0, "%s line %d parses: %s", TOKEN_FIXTURE, lines + 1, e.message);
        }
        lisa_json_free(&j);
        pos += len + 1;
    }
    free(text);
    CHECK(lines >= 20, "%s has %d texts", TOKEN_FIXTURE, lines);
    CHECK(bad_ids == 0, "%d of %d NFC texts encode to other ids than tokenizers'", bad_ids, lines);
    CHECK(bad_off == 0, "%d texts get offsets out of order or range", bad_off);
}

/* Offsets through NFC: each token at the first original byte it came from. */
static void check_tokenizer_offsets(const lisa_tokenizer *t) {
    static const char text[] = "cafe\xCC\x81 au x\xCC\x95\xCC\x81";   /* "cafe\u0301 au x\u0315\u0301" */
    int ids[32];
    size_t off[32], n = 0;
    lisa_error e;
    int ok = lisa_tokenizer_encode_offsets(t, text, sizeof text - 1, 0, 0, ids, off, 32, &n, &e) == LISA_OK;
    CHECK(ok && n >= 4 && ids[0] == 1005 && off[0] == 0 && off[1] == 6, "the added token \"caf\u00e9\" at byte 0, \" au\" at 6");
    CHECK(ok && off[n - 1] == 11 && off[n - 2] == 11, "the reordered marks stand at the first one's byte (11), got %lu",
          ok ? (unsigned long)off[n - 1] : 0ul);
}

/* tokenizer.json's text with its normalizer {"type": "NFC"} replaced by repl. */
static char *with_normalizer(const char *json, size_t len, const char *repl, size_t *out_len) {
    const char *at = strstr(json, "\"type\": \"NFC\"");
    size_t old = strlen("\"type\": \"NFC\""), nr = strlen(repl), head;
    char *p;
    if (!at) return NULL;
    head = (size_t)(at - json);
    p = (char *)malloc(len - old + nr + 1);
    if (!p) return NULL;
    memcpy(p, json, head);
    memcpy(p + head, repl, nr);
    memcpy(p + head + nr, at + old, len - head - old);
    *out_len = len - old + nr;
    p[*out_len] = 0;
    return p;
}

static void check_tokenizer(void) {
    lisa_tokenizer t;
    lisa_error e;
    size_t len, n2, n_ids = 0;
    char *json = read_file(QWEN2_DIR "/tokenizer.json", &len), *other;
    static const char *const refused[3] = {"NFD", "NFKC", "NFKD"};
    int i, ids[8];
    CHECK(json != NULL, "%s/tokenizer.json is readable", QWEN2_DIR);
    if (!json) return;
    CHECK(strstr(json, "\"type\": \"NFC\"") != NULL, "qwen2-split's normalizer is NFC");
    if (lisa_tokenizer_load_hf(&t, QWEN2_DIR, NULL, &e) == LISA_OK) {
        check_tokenizer_texts(&t);
        check_tokenizer_offsets(&t);
        lisa_tokenizer_free(&t);
    } else {
        CHECK(0, "%s loads: %s", QWEN2_DIR, e.message);
    }
    other = with_normalizer(json, len, "\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}]", &n2);
    if (other && lisa_tokenizer_load_hf_memory(&t, other, n2, NULL, 0, "seq.json", NULL, &e) == LISA_OK) {
        CHECK(lisa_tokenizer_encode(&t, "cafe\xCC\x81", 6, 0, 0, ids, 8, &n_ids, &e) == LISA_OK && n_ids == 1 && ids[0] == 1005,
              "NFC inside a Sequence: cafe + U+0301 is the added token");
        lisa_tokenizer_free(&t);
    } else {
        CHECK(0, "a Sequence holding NFC loads: %s", other ? e.message : "no memory");
    }
    free(other);
    for (i = 0; i < 3; i++) {
        char repl[64], want[64];
        snprintf(repl, sizeof repl, "\"type\": \"%s\"", refused[i]);
        snprintf(want, sizeof want, "normalizer \"%s\" is not supported", refused[i]);
        other = with_normalizer(json, len, repl, &n2);
        CHECK(other && lisa_tokenizer_load_hf_memory(&t, other, n2, NULL, 0, "x.json", NULL, &e) != LISA_OK &&
                  strstr(e.message, want) && strstr(e.message, "x.json"),
              "%s is refused by name: %s", refused[i], other ? e.message : "no memory");
        free(other);
    }
    free(json);
}

int main(void) {
    check_fixture();
    check_tokenizer();
    check_invalid_utf8();
    check_origins();
    check_quick();
    return test_report("nfc");
}
