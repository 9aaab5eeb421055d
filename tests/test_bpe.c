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

static void check_malformed(void);

int main(void) {
    check_fixtures();
    check_malformed();
    return test_report("bpe");
}


/* ---- malformed tokenizer.json files -------------------------------------- */

/* A small valid byte-level tokenizer.json, its parts replaceable: the
   normalizer, pre-tokenizer, post-processor, decoder, added tokens, model. */
#define MAL_NORM "null"
#define MAL_PRE "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"
#define MAL_POST "null"
#define MAL_DEC "{\"type\":\"ByteLevel\"}"
#define MAL_ADDED "[{\"id\":5,\"content\":\"<s>\",\"special\":true}]"
#define MAL_VOCAB "{\"a\":0,\"b\":1,\"ab\":2,\"c\":3,\"\xc4\xa0\":4}"
#define MAL_MERGES "[\"a b\"]"
#define MAL_MODEL "{\"type\":\"BPE\",\"vocab\":" MAL_VOCAB ",\"merges\":" MAL_MERGES "}"

static char mal_json[4096];

static const char *mal_build(const char *norm, const char *pre, const char *post, const char *dec, const char *added,
                             const char *model) {
    snprintf(mal_json, sizeof mal_json,
             "{\"version\":\"1.0\",\"added_tokens\":%s,\"normalizer\":%s,\"pre_tokenizer\":%s,"
             "\"post_processor\":%s,\"decoder\":%s,\"model\":%s}",
             added ? added : MAL_ADDED, norm ? norm : MAL_NORM, pre ? pre : MAL_PRE, post ? post : MAL_POST,
             dec ? dec : MAL_DEC, model ? model : MAL_MODEL);
    return mal_json;
}

/* Loads json (and config, may be NULL): the result must be want, and the
   message must name the file and hold each of up to two substrings. */
static void mal_expect(const char *what, const char *json, size_t len, const char *config, lisa_result want,
                       const char *has, const char *has2) {
    static const char name[] = "bad/tokenizer.json";
    lisa_tokenizer t;
    lisa_error e;
    lisa_result r;
    memset(&e, 0, sizeof e);
    r = lisa_tokenizer_load_hf_memory(&t, json, len, config, config ? strlen(config) : 0, name, NULL, &e);
    CHECK(r == want, "%s: result %s, want %s (%s)", what, lisa_result_string(r), lisa_result_string(want), e.message);
    if (r == LISA_OK) {
        lisa_tokenizer_free(&t);
        return;
    }
    CHECK(e.code == r && strstr(e.message, name) != NULL, "%s: the message names the file: \"%s\"", what, e.message);
    CHECK(!has || strstr(e.message, has) != NULL, "%s: the message says \"%s\": \"%s\"", what, has, e.message);
    CHECK(!has2 || strstr(e.message, has2) != NULL, "%s: the message says \"%s\": \"%s\"", what, has2, e.message);
    CHECK(t.buffer == NULL && t.bytes == 0, "%s: a failed load holds nothing", what);
    lisa_tokenizer_free(&t); /* harmless after a failure */
}

#define MAL(what, json, has, has2) mal_expect(what, json, strlen(json), NULL, LISA_ERR_FORMAT, has, has2)
#define MAL_MODEL_WITH(vocab, merges) "{\"type\":\"BPE\",\"vocab\":" vocab ",\"merges\":" merges "}"

static void check_malformed(void) {
    static char ok[sizeof mal_json];
    size_t n;
    char seq[1024];
    int i;
    lisa_tokenizer t;
    lisa_error e;
    size_t k;
    int ids[8];
    snprintf(ok, sizeof ok, "%s", mal_build(NULL, NULL, NULL, NULL, NULL, NULL));
    n = strlen(ok);
    /* the base file is valid: the failures below are each one change's */
    CHECK(lisa_tokenizer_load_hf_memory(&t, ok, n, NULL, 0, "good/tokenizer.json", NULL, &e) == LISA_OK,
          "the base file loads: %s", e.message);
    if (t.kind == LISA_TOKENIZER_BPE) {
        CHECK(lisa_tokenizer_encode(&t, "ab c", 4, 0, 0, ids, 8, &k, &e) == LISA_OK && k == 3 && ids[0] == 2 &&
                  ids[1] == 4 && ids[2] == 3,
              "the base file encodes \"ab c\" as ab, space, c");
        lisa_tokenizer_free(&t);
    }

    /* not JSON, or cut short */
    for (i = 1; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %d/4", i);
        mal_expect(what, ok, n * (size_t)i / 4, NULL, LISA_ERR_FORMAT, "line 1", NULL);
    }
    mal_expect("empty", ok, 0, NULL, LISA_ERR_FORMAT, NULL, NULL);
    MAL("an array", "[1,2]", "not a JSON object", NULL);
    mal_expect("config truncated", ok, n, "{\"bos_token\": \"<s>\"", LISA_ERR_FORMAT, "tokenizer_config.json", NULL);

    /* the model */
    MAL("no model", "{\"added_tokens\":[]}", "no \"model\" object", NULL);
    MAL("Unigram", mal_build(NULL, NULL, NULL, NULL, NULL, "{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}"),
        "model type \"Unigram\" is not supported", NULL);
    MAL("WordPiece", mal_build(NULL, NULL, NULL, NULL, NULL, "{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}"),
        "model type \"WordPiece\" is not supported", NULL);
    MAL("vocab an array", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH("[\"a\",\"b\"]", "[]")),
        "model.vocab is not an object", NULL);
    MAL("vocab id a string", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH("{\"a\":\"0\"}", "[]")),
        "model.vocab id", "whole number");
    MAL("vocab id a fraction", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH("{\"a\":0.5}", "[]")),
        "model.vocab id", "whole number");
    MAL("vocab id negative", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH("{\"a\":0,\"b\":-1}", "[]")),
        "model.vocab id", "whole number");
    MAL("vocab id 1e30", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH("{\"a\":1e30}", "[]")),
        "model.vocab id", "whole number");
    /* an id far beyond the file's entries would size the vocabulary by itself */
    MAL("vocab id 16777215",
        mal_build(NULL, NULL, NULL, NULL, "[]", MAL_MODEL_WITH("{\"a\":0,\"b\":1,\"c\":16777215}", "[]")),
        "model.vocab id", "whole number in 0..2");
    MAL("vocab id 2^31", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH("{\"a\":2147483648}", "[]")),
        "model.vocab id", "whole number");
    MAL("vocab id twice", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH("{\"a\":0,\"b\":0}", "[]")),
        "token id 0 is given twice", NULL);
    MAL("vocab empty token", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH("{\"a\":0,\"\":1}", "[]")),
        "token 1 is the empty string", NULL);
    MAL("merge of an unknown token", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH(MAL_VOCAB, "[\"a x\"]")),
        "merge 0", "\"x\", which is not in the vocabulary");
    MAL("merge making an unknown token", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH(MAL_VOCAB, "[\"b c\"]")),
        "merge 0", "makes a token that is not in the vocabulary");
    MAL("merge a number", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH(MAL_VOCAB, "[\"a b\",7]")),
        "model.merges[1] is not two tokens", NULL);
    MAL("merge of three", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH(MAL_VOCAB, "[[\"a\",\"b\",\"c\"]]")),
        "model.merges[0] is not two tokens", NULL);
    MAL("merge string of three", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH(MAL_VOCAB, "[\"a b c\"]")),
        "model.merges[0] is not two tokens", NULL);
    MAL("merges an object", mal_build(NULL, NULL, NULL, NULL, NULL, MAL_MODEL_WITH(MAL_VOCAB, "{}")),
        "model.merges is not an array", NULL);
    MAL("dropout", mal_build(NULL, NULL, NULL, NULL, NULL,
                             "{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":" MAL_VOCAB ",\"merges\":[]}"),
        "dropout", "not supported");
    MAL("unk_token unknown", mal_build(NULL, NULL, NULL, NULL, NULL,
                                       "{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":" MAL_VOCAB ",\"merges\":[]}"),
        "model.unk_token \"<unk>\" is not in the vocabulary", NULL);

    /* added tokens */
    MAL("added id out of range", mal_build(NULL, NULL, NULL, NULL, "[{\"id\":16777216,\"content\":\"<s>\"}]", NULL),
        "added token's id", "whole number");
    MAL("added id far beyond the file", mal_build(NULL, NULL, NULL, NULL, "[{\"id\":99999,\"content\":\"<s>\"}]", NULL),
        "added token's id", "0..5");
    MAL("added id negative", mal_build(NULL, NULL, NULL, NULL, "[{\"id\":-3,\"content\":\"<s>\"}]", NULL),
        "added token's id", NULL);
    MAL("added token conflicting", mal_build(NULL, NULL, NULL, NULL, "[{\"id\":0,\"content\":\"<s>\"}]", NULL),
        "id 0 is the vocabulary's \"a\" and the added token \"<s>\"", NULL);
    MAL("added token twice", mal_build(NULL, NULL, NULL, NULL,
                                       "[{\"id\":5,\"content\":\"<s>\"},{\"id\":5,\"content\":\"</s>\"}]", NULL),
        "token id 5 is given twice", NULL);
    MAL("added token without content", mal_build(NULL, NULL, NULL, NULL, "[{\"id\":5}]", NULL),
        "added_tokens[0] has no \"content\" string", NULL);
    MAL("added flag not a boolean", mal_build(NULL, NULL, NULL, NULL, "[{\"id\":5,\"content\":\"<s>\",\"lstrip\":1}]", NULL),
        "lstrip is not true or false", NULL);

    /* normalizers, pre-tokenizers, decoders */
    MAL("normalizer Lowercase", mal_build("{\"type\":\"Lowercase\"}", NULL, NULL, NULL, NULL, NULL),
        "normalizer \"Lowercase\" is not supported", NULL);
    MAL("normalizer NFD", mal_build("{\"type\":\"NFD\"}", NULL, NULL, NULL, NULL, NULL),
        "normalizer \"NFD\" is not supported", NULL);
    MAL("normalizer NFD in a Sequence",
        mal_build("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"x\"},{\"type\":\"NFD\"}]}",
                  NULL, NULL, NULL, NULL, NULL),
        "normalizer \"NFD\" is not supported", NULL);
    MAL("normalizer without a type", mal_build("{\"prepend\":\"x\"}", NULL, NULL, NULL, NULL, NULL),
        "normalizer is not an object with a \"type\" string", NULL);
    MAL("normalizer Replace with a regex",
        mal_build("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\" \"}", NULL, NULL, NULL, NULL, NULL),
        "normalizer Replace with a regex", "\" +\"");
    MAL("pre_tokenizer Whitespace", mal_build(NULL, "{\"type\":\"Whitespace\"}", NULL, NULL, NULL, NULL),
        "pre_tokenizer \"Whitespace\" is not supported", NULL);
    MAL("pre_tokenizer Split with an unknown regex",
        mal_build(NULL,
                  "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+|[^\\\\w\\\\s]+\"},"
                  "\"behavior\":\"Isolated\",\"invert\":false}," MAL_PRE "]}",
                  NULL, NULL, NULL, NULL),
        "pre_tokenizer Split regex", "\"\\w+|[^\\w\\s]+\"");
    MAL("pre_tokenizer Split behavior", mal_build(NULL,
                  "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},\"behavior\":\"Removed\",\"invert\":false}",
                  NULL, NULL, NULL, NULL),
        "Split behavior \"Removed\" is not supported", NULL);
    MAL("pre_tokenizer Sequence without its list", mal_build(NULL, "{\"type\":\"Sequence\"}", NULL, NULL, NULL, NULL),
        "pre_tokenizer Sequence has no \"pretokenizers\" array", NULL);
    MAL("decoder WordPiece", mal_build(NULL, NULL, NULL, "{\"type\":\"WordPiece\",\"prefix\":\"##\"}", NULL, NULL),
        "decoder \"WordPiece\" is not supported", NULL);
    MAL("decoder CTC in a Sequence",
        mal_build(NULL, NULL, NULL, "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"CTC\"}]}", NULL, NULL),
        "decoder \"CTC\" is not supported", NULL);
    MAL("decoder Strip start huge",
        mal_build(NULL, NULL, NULL, "{\"type\":\"Strip\",\"content\":\" \",\"start\":1e12,\"stop\":0}", NULL, NULL),
        "decoder Strip's start is not a whole number", NULL);
    /* more steps than a tokenizer keeps */
    {
        size_t used = (size_t)snprintf(seq, sizeof seq, "{\"type\":\"Sequence\",\"pretokenizers\":[");
        for (i = 0; i < 9; i++)
            used += (size_t)snprintf(seq + used, sizeof seq - used, "%s{\"type\":\"Digits\",\"individual_digits\":true}",
                                     i ? "," : "");
        snprintf(seq + used, sizeof seq - used, "]}");
        MAL("nine pre-tokenizers", mal_build(NULL, seq, NULL, NULL, NULL, NULL), "more than 8 pre_tokenizer steps", NULL);
    }
    MAL("post_processor BertProcessing", mal_build(NULL, NULL, "{\"type\":\"BertProcessing\"}", NULL, NULL, NULL),
        "post_processor \"BertProcessing\" is not supported", NULL);
    MAL("TemplateProcessing naming an unknown token",
        mal_build(NULL, NULL,
                  "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<bos>\",\"type_id\":0}},"
                  "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],"
                  "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[5],\"tokens\":[\"<s>\"]}}}",
                  NULL, NULL, NULL),
        "post_processor special token \"<bos>\" is not one id", NULL);
    MAL("TemplateProcessing with an id outside the vocabulary",
        mal_build(NULL, NULL,
                  "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
                  "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],"
                  "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[4000],\"tokens\":[\"<s>\"]}}}",
                  NULL, NULL, NULL),
        "adds id 4000, outside the vocabulary of 6", NULL);
    MAL("TemplateProcessing without $A",
        mal_build(NULL, NULL,
                  "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}}],"
                  "\"pair\":[],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[5],\"tokens\":[\"<s>\"]}}}",
                  NULL, NULL, NULL),
        "single template has no $A", NULL);
    MAL("truncation set", "{\"truncation\":{\"max_length\":8},\"model\":" MAL_MODEL "}", "setting \"truncation\"", NULL);
    mal_expect("config add_bos_token not a boolean", ok, n, "{\"add_bos_token\": 1}", LISA_ERR_FORMAT,
               "add_bos_token / add_eos_token is not true or false", NULL);
    mal_expect("config an array", ok, n, "[]", LISA_ERR_FORMAT, "tokenizer_config.json is not an object", NULL);
}
