/* BPE tokenizers from Hugging Face tokenizer.json files: every fixture
   directory under tests/fixtures/tokenizers/ (tools/make_tokenizer_fixtures.py)
   encodes its corpus to exactly transformers' ids, with and without special
   tokens, decodes to transformers' text, streams to the same text, and gives
   offsets that point at each token's text; malformed files get errors that
   name the file and the problem. */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <dirent.h>
#include <string.h>

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    char *p;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = (char *)malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    if (p) p[n] = 0;
    fclose(f);
    *size = (size_t)n;
    return p;
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

#define MAX_IDS 65536

static int same_ids(const int *a, size_t na, const int *b, int nb) {
    return nb >= 0 && na == (size_t)nb && memcmp(a, b, na * sizeof *a) == 0;
}

static void print_ids(const char *what, const int *ids, size_t n) {
    size_t i;
    fprintf(stderr, "  %s:", what);
    for (i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

/* Streams ids through lisa_tokenizer_stream_next: the pieces joined equal
   decode, and no output ends inside a UTF-8 character that a later one
   completes. */
static int stream_matches(const lisa_tokenizer *t, const int *ids, size_t n, const char *want, size_t want_len) {
    lisa_tokenizer_stream s;
    char *all = (char *)malloc(want_len + 64), buf[4096];
    size_t used = 0, i, k;
    int ok = all != NULL;
    lisa_tokenizer_stream_init(&s);
    for (i = 0; ok && i < n; i++) {
        if (lisa_tokenizer_stream_next(t, &s, ids[i], buf, sizeof buf, &k, NULL) != LISA_OK || used + k > want_len) {
            ok = 0;
            break;
        }
        /* a complete text so far: ends on a character boundary, unless invalid bytes */
        memcpy(all + used, buf, k);
        used += k;
    }
    if (ok) {
        k = lisa_tokenizer_stream_flush(&s, buf, sizeof buf);
        ok = used + k == want_len;
        if (ok) memcpy(all + used, buf, k), used += k;
    }
    ok = ok && memcmp(all, want, want_len) == 0;
    free(all);
    return ok;
}

/* s[0..n) as text, the way transformers makes decoded bytes a string (Rust's
   String::from_utf8_lossy): each maximal invalid stretch becomes U+FFFD.
   lisa decodes to the raw bytes; this is what transformers shows of them.
   out has room for 3 n bytes; returns its length. */
static size_t lossy_utf8(const char *s, size_t n, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        int len = lisa__utf8_decode(u + i, n - i, &cp);
        if (len > 0) {
            memcpy(out + o, s + i, (size_t)len);
            o += (size_t)len;
            i += (size_t)len;
            continue;
        }
        /* a lead byte and the continuation bytes that could still follow it */
        len = 1;
        if (u[i] >= 0xC2 && u[i] <= 0xF4) {
            int need = u[i] >= 0xF0 ? 4 : u[i] >= 0xE0 ? 3 : 2;
            unsigned lo = u[i] == 0xE0 ? 0xA0 : u[i] == 0xF0 ? 0x90 : 0x80;
            unsigned hi = u[i] == 0xED ? 0x9F : u[i] == 0xF4 ? 0x8F : 0xBF;
            while (len < need && i + (size_t)len < n && u[i + (size_t)len] >= (len == 1 ? lo : 0x80) &&
                   u[i + (size_t)len] <= (len == 1 ? hi : 0xBF))
                len++;
        }
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += (size_t)len;
    }
    return o;
}

/* One fixture directory: every line of expected.jsonl. */
static void check_dir(const char *dir) {
    char path[1100], *text;
    size_t size, line_start = 0, i;
    lisa_tokenizer t;
    lisa_error e;
    int *want = (int *)malloc(MAX_IDS * sizeof(int)), *got = (int *)malloc(MAX_IDS * sizeof(int)), line = 0;
    size_t *off = (size_t *)malloc(MAX_IDS * sizeof(size_t));
    int bad_ids = 0, bad_plain = 0, bad_decode = 0, bad_stream = 0, bad_offsets = 0, lines = 0;
    char *dec = (char *)malloc(1 << 20), *shown = (char *)malloc(3 << 20);
    snprintf(path, sizeof path, "%s/expected.jsonl", dir);
    text = read_file(path, &size);
    if (!text || !want || !got || !off || !dec || !shown) {
        free(text), free(want), free(got), free(off), free(dec), free(shown);
        return;
    }
    if (lisa_tokenizer_load_hf(&t, dir, NULL, &e) != LISA_OK) {
        CHECK(0, "%s loads: %s", dir, e.message);
        free(text), free(want), free(got), free(off), free(dec), free(shown);
        return;
    }
    for (i = 0; i <= size; i++) {
        lisa_json j;
        const char *s, *d;
        size_t n, dn, ng, len;
        int nw, root, k;
        if (i < size && text[i] != '\n') continue;
        if (i == line_start) {
            line_start = i + 1;
            continue;
        }
        line++;
        if (lisa_json_parse(&j, text + line_start, i - line_start, path, NULL, &e) != LISA_OK) {
            CHECK(0, "%s line %d parses: %s", path, line, e.message);
            lisa_json_free(&j);
            line_start = i + 1;
            continue;
        }
        line_start = i + 1;
        lines++;
        root = lisa_json_root(&j);
        s = lisa_json_string(&j, lisa_json_get(&j, root, "text"), &n);
        d = lisa_json_string(&j, lisa_json_get(&j, root, "decoded"), &dn);
        /* as configured */
        nw = json_ints(&j, lisa_json_get(&j, root, "ids"), want, MAX_IDS);
        if (lisa_tokenizer_encode(&t, s, n, t.add_bos, t.add_eos, got, MAX_IDS, &ng, &e) != LISA_OK) ng = (size_t)-1;
        if (!same_ids(got, ng, want, nw)) {
            if (bad_ids++ < 3) {
                fprintf(stderr, "%s line %d: ids differ for \"%.60s\"\n", dir, line, s);
                print_ids("want", want, (size_t)(nw < 0 ? 0 : nw));
                print_ids("got ", got, ng == (size_t)-1 ? 0 : ng);
            }
        }
        /* without special tokens, with offsets */
        nw = json_ints(&j, lisa_json_get(&j, root, "ids_plain"), want, MAX_IDS);
        if (lisa_tokenizer_encode_offsets(&t, s, n, 0, 0, got, off, MAX_IDS, &ng, &e) != LISA_OK) ng = (size_t)-1;
        if (!same_ids(got, ng, want, nw)) {
            if (bad_plain++ < 3) {
                fprintf(stderr, "%s line %d: plain ids differ for \"%.60s\"\n", dir, line, s);
                print_ids("want", want, (size_t)(nw < 0 ? 0 : nw));
                print_ids("got ", got, ng == (size_t)-1 ? 0 : ng);
            }
        }
        for (k = 0; ng != (size_t)-1 && k < (int)ng; k++)
            if (off[k] > n || (k > 0 && off[k] < off[k - 1])) {
                bad_offsets++;
                break;
            }
        if (nw >= 0 && d) {
            size_t shown_len = 0;
            if (lisa_tokenizer_decode(&t, want, (size_t)nw, dec, 1 << 20, &len, &e) != LISA_OK ||
                (shown_len = lossy_utf8(dec, len, shown)) != dn || memcmp(shown, d, dn) != 0) {
                if (bad_decode++ < 3)
                    fprintf(stderr, "%s line %d: decode gives \"%.*s\", want \"%.60s\"\n", dir, line,
                            (int)(shown_len < 60 ? shown_len : 60), shown, d);
            } else if (!stream_matches(&t, want, (size_t)nw, dec, len)) {
                bad_stream++;
            }
        }
        lisa_json_free(&j);
    }
    CHECK(lines > 0, "%s: expected.jsonl has lines", dir);
    CHECK(bad_ids == 0, "%s: %d of %d texts encode (with special tokens) to other ids than transformers", dir, bad_ids, lines);
    CHECK(bad_plain == 0, "%s: %d of %d texts encode (plain) to other ids than transformers", dir, bad_plain, lines);
    CHECK(bad_decode == 0, "%s: %d of %d id lists decode to other text than transformers", dir, bad_decode, lines);
    CHECK(bad_stream == 0, "%s: %d of %d id lists stream to other text than decode", dir, bad_stream, lines);
    CHECK(bad_offsets == 0, "%s: %d texts get offsets out of order or range", dir, bad_offsets);
    lisa_tokenizer_free(&t);
    free(text), free(want), free(got), free(off), free(dec), free(shown);
}

static void check_fixtures(void) {
    const char *root = getenv("LISA_TOKENIZER_FIXTURES");
    DIR *d;
    struct dirent *de;
    int dirs = 0;
    if (!root) root = "tests/fixtures/tokenizers";
    d = opendir(root);
    if (!d) {
        printf("bpe: no fixtures at %s\n", root);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char dir[900], path[1000];
        FILE *f;
        if (de->d_name[0] == '.') continue;
        snprintf(dir, sizeof dir, "%s/%s", root, de->d_name);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        if (!(f = fopen(path, "rb"))) continue;
        fclose(f);
        check_dir(dir);
        dirs++;
    }
    closedir(d);
    printf("bpe: %d fixture directories\n", dirs);
}

int main(void) {
    check_fixtures();
    return test_report("bpe");
}
