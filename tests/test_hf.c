/* Hugging Face checkpoints: the JSON reader, safetensors, config.json.

   - JSON: values, escapes and surrogate pairs, numbers, accessors, every
     malformed case with its message (line and column), every truncation of a
     document, depth and memory bounds
   - fp16 / bf16 conversions: every 16-bit value back and forth, ties to even
     at every midpoint (subnormals included), overflow, NaN
   - safetensors parsing from memory: each malformed header or layout with its
     message, every truncation of a valid file
   - model loading from files this test writes by hand (its own names, layout
     and RoPE row order): F32, F16, BF16, shards with an index, tied heads,
     skipped buffers; every missing, unexpected, misplaced or misshapen tensor
     and every unsupported config field with its message
   - saving: F32 load -> save -> load is bit-exact, the bytes of a transformers
     file (single or sharded, F32 or BF16) come back unchanged in its dtype,
     F16 / BF16 round exactly, files are atomic; lisa_model_save_hf_sharded:
     shards as transformers' rule splits (index, total_size, weight_map),
     bit-exact loads, the other layout's and earlier shards removed, failed
     saves (tests/save_fail.h)
   - the oracle: checkpoints written by transformers itself
     (tools/make_hf_fixture.py) give LlamaForCausalLM's logits and loss */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"
#include "fixture.h"
#include "save_fail.h"

#include <dirent.h>
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------- */

typedef struct counter {
    size_t live, peak;
} counter;

static void *cnt_alloc(void *user, size_t size) {
    counter *c = (counter *)user;
    void *p = malloc(size);
    if (p) {
        c->live += size;
        if (c->live > c->peak) c->peak = c->live;
    }
    return p;
}

static void cnt_free(void *user, void *p, size_t size) {
    counter *c = (counter *)user;
    c->live -= size;
    free(p);
}

static char g_tmp[256];

static void path_in(char *out, size_t size, const char *dir, const char *name) {
    snprintf(out, size, "%s/%s", dir, name);
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    long n;
    unsigned char *buf;
    *size = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *size = (size_t)n;
    }
    return buf;
}

static int write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    struct stat st;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int has(const char *msg, const char *needle) { return strstr(msg, needle) != NULL; }

/* ------------------------------------------------------------------------- */
/* JSON                                                                       */
/* ------------------------------------------------------------------------- */

/* Parses from an exactly sized copy, so ASan sees any read past the end. */
static lisa_result parse_exact(lisa_json *j, const char *text, size_t len, lisa_error *err) {
    char *copy = (char *)malloc(len ? len : 1);
    lisa_result r;
    memcpy(copy, text, len);
    r = lisa_json_parse(j, copy, len, "doc.json", NULL, err);
    free(copy);
    return r;
}

static void test_json_values(void) {
    const char *text =
        "\xEF\xBB\xBF { \"a\" : [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\"],\n"
        "  \"b\": {\"c\": {}, \"d\": []}, \"dup\": 1, \"dup\": 2, \"z\\u0000\": \"nul\\u0000in\", \"\xC3\xA9\": 0 } \r\n";
    lisa_json j;
    lisa_error err;
    int root, a, b, e;
    size_t len;
    const char *s;
    CHECK(parse_exact(&j, text, strlen(text), &err) == LISA_OK, "valid document parses: %s", err.message);
    root = lisa_json_root(&j);
    CHECK(root == 0 && lisa_json_type_of(&j, root) == LISA_JSON_OBJECT, "root is an object");
    CHECK(lisa_json_length(&j, root) == 6, "6 members (duplicates kept), got %d", lisa_json_length(&j, root));
    a = lisa_json_get(&j, root, "a");
    CHECK(lisa_json_type_of(&j, a) == LISA_JSON_ARRAY && lisa_json_length(&j, a) == 6, "a is a 6-array");
    CHECK(lisa_json_number(&j, lisa_json_at(&j, a, 0)) == 1.0, "a[0] = 1");
    CHECK(lisa_json_number(&j, lisa_json_at(&j, a, 1)) == -2500.0, "a[1] = -2500");
    CHECK(lisa_json_type_of(&j, lisa_json_at(&j, a, 2)) == LISA_JSON_TRUE, "a[2] true");
    CHECK(lisa_json_type_of(&j, lisa_json_at(&j, a, 3)) == LISA_JSON_FALSE, "a[3] false");
    CHECK(lisa_json_type_of(&j, lisa_json_at(&j, a, 4)) == LISA_JSON_NULL, "a[4] null");
    s = lisa_json_string(&j, lisa_json_at(&j, a, 5), &len);
    CHECK(s && len == 1 + 2 + 4 + 8 && memcmp(s, "x\xC3\xA9\xF0\x9F\x98\x80\n\"\\/\b\f\r\t", len) == 0,
          "escapes and a surrogate pair decode to UTF-8");
    CHECK(lisa_json_at(&j, a, 6) == -1 && lisa_json_at(&j, a, -1) == -1, "out-of-range index gives -1");
    b = lisa_json_get(&j, root, "b");
    CHECK(lisa_json_type_of(&j, lisa_json_get(&j, b, "c")) == LISA_JSON_OBJECT &&
              lisa_json_length(&j, lisa_json_get(&j, b, "c")) == 0, "empty object");
    CHECK(lisa_json_type_of(&j, lisa_json_get(&j, b, "d")) == LISA_JSON_ARRAY &&
              lisa_json_first(&j, lisa_json_get(&j, b, "d")) == -1, "empty array");
    CHECK(lisa_json_number(&j, lisa_json_get(&j, root, "dup")) == 2.0, "a repeated key gives its last value");
    CHECK(lisa_json_get(&j, root, "z") == -1, "a key with a NUL does not match its prefix");
    e = lisa_json_at(&j, root, 4);
    s = lisa_json_key(&j, e, &len);
    CHECK(s && len == 2 && memcmp(s, "z\0", 2) == 0, "key with \\u0000 keeps its length");
    s = lisa_json_string(&j, e, &len);
    CHECK(s && len == 6 && memcmp(s, "nul\0in", 6) == 0, "string with \\u0000 keeps its length");
    CHECK(lisa_json_number(&j, lisa_json_get(&j, root, "\xC3\xA9")) == 0.0 &&
              lisa_json_get(&j, root, "\xC3\xA9") >= 0, "UTF-8 key");
    /* iteration and chaining */
    {
        int c, n = 0;
        for (c = lisa_json_first(&j, root); c >= 0; c = lisa_json_next(&j, c)) n++;
        CHECK(n == 6, "first/next visit 6 members, got %d", n);
        CHECK(lisa_json_next(&j, root) == -1, "the root has no sibling");
        CHECK(lisa_json_key(&j, a, NULL) && strcmp(lisa_json_key(&j, a, NULL), "a") == 0, "key of a member");
        CHECK(lisa_json_key(&j, lisa_json_at(&j, a, 0), NULL) == NULL, "array elements have no key");
    }
    CHECK(lisa_json_type_of(&j, -1) == LISA_JSON_NONE && lisa_json_get(&j, -1, "a") == -1 &&
              lisa_json_get(&j, a, "a") == -1 && lisa_json_string(&j, a, NULL) == NULL &&
              lisa_json_number(&j, -1) == 0.0 && lisa_json_length(&j, 12345) == 0 &&
              lisa_json_type_of(&j, j.n_nodes) == LISA_JSON_NONE,
          "accessors take -1 and out-of-range nodes");
    lisa_json_free(&j);
    lisa_json_free(&j); /* twice is harmless */
}

static void test_json_numbers(void) {
    static const struct {
        const char *text;
        double want;
    } cases[] = {
        {"0", 0.0}, {"-0", -0.0}, {"1e-05", 1e-05}, {"1e-06", 1e-06}, {"0.02", 0.02}, {"0.1", 0.1},
        {"10000.0", 10000.0}, {"500000", 500000.0}, {"1E+2", 100.0}, {"123.456e-2", 1.23456},
        {"9007199254740993", 9007199254740992.0}, {"2147483647", 2147483647.0},
        {"123456789012345678901234567890", 1.2345678901234568e29}, {"1e308", 1e308}, {"1e-400", 0.0},
        {"0.000000000000000000000000000001", 1e-30}, {"4.9406564584124654e-324", 4.9406564584124654e-324},
        {"1.7976931348623157e308", 1.7976931348623157e308}, {"-12.5", -12.5},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lisa_json j;
        lisa_error err;
        double v;
        int ok = parse_exact(&j, cases[i].text, strlen(cases[i].text), &err) == LISA_OK;
        v = lisa_json_number(&j, 0);
        CHECK(ok && lisa_json_type_of(&j, 0) == LISA_JSON_NUMBER, "%s parses", cases[i].text);
        CHECK(test_close(v, cases[i].want, 0.0, 4e-16) && signbit(v) == signbit(cases[i].want),
              "%s = %.17g, got %.17g", cases[i].text, cases[i].want, v);
        lisa_json_free(&j);
    }
    {
        /* float fields (rms_norm_eps) read exactly as Python writes them */
        lisa_json j;
        lisa_error err;
        CHECK(parse_exact(&j, "[1e-05, 1e-06, 3.14159]", 23, &err) == LISA_OK, "float list");
        CHECK((float)lisa_json_number(&j, 1) == 1e-5f && (float)lisa_json_number(&j, 2) == 1e-6f &&
                  lisa_json_number(&j, 3) == 3.14159,
              "correctly rounded short decimals");
        lisa_json_free(&j);
    }
}

static void test_json_errors(void) {
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"", "line 1 column 1: unexpected end of input"},
        {"   ", "line 1 column 4: unexpected end of input"},
        {"{", "unterminated object"},
        {"[1, 2", "unterminated array"},
        {"[1,]", "line 1 column 4: unexpected character ']'"},
        {"[1 2]", "expected ',' or ']'"},
        {"{\"a\" 1}", "expected ':'"},
        {"{\"a\":1 \"b\":2}", "expected ',' or '}'"},
        {"{1:2}", "expected a string key"},
        {"{\"a\":}", "unexpected character '}'"},
        {"\"abc", "line 1 column 1: unterminated string"},
        {"\"abc\\", "unterminated string"},
        {"\"a\\x\"", "invalid escape"},
        {"\"\\u12G4\"", "four hex digits"},
        {"\"\\u12\"", "four hex digits"},
        {"\"\\ud800\"", "high surrogate without a low surrogate"},
        {"\"\\ud800\\u0041\"", "high surrogate without a low surrogate"},
        {"\"\\ud800\\n\"", "high surrogate without a low surrogate"},
        {"\"\\udc00\"", "unpaired low surrogate"},
        {"\"\xff\"", "invalid UTF-8"},
        {"\"\xc0\xaf\"", "invalid UTF-8"},
        {"\"\xe0\x80\xaf\"", "invalid UTF-8"},
        {"\"\xed\xa0\x80\"", "invalid UTF-8"},
        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8"},
        {"\"\xe2\x82\"", "invalid UTF-8"},
        {"\"\x80\"", "invalid UTF-8"},
        {"\"a\tb\"", "line 1 column 3: control character"},
        {"01", "leading zeros"},
        {"-", "invalid number"},
        {"-a", "invalid number"},
        {"1.", "digits expected after '.'"},
        {"1.e5", "digits expected after '.'"},
        {"1e", "digits expected in the exponent"},
        {"1e+", "digits expected in the exponent"},
        {".5", "unexpected character '.'"},
        {"+1", "unexpected character '+'"},
        {"1e309", "number out of range"},
        {"-1e999999999999", "number out of range"},
        {"tru", "unexpected character 't'"},
        {"nul", "unexpected character 'n'"},
        {"True", "unexpected character 'T'"},
        {"truex", "line 1 column 5: unexpected data after the JSON value"},
        {"{} {}", "unexpected data after"},
        {"[1]\n\n  x", "line 3 column 3: unexpected data after"},
        {"{\n  \"a\": tru\n}", "line 2 column 8: unexpected character 't'"},
        {"\x01", "unexpected byte 0x01"},
        {"[1,\x00]", "unexpected byte 0x00"},
        {"\xEF\xBB", "unexpected byte 0xEF"},
        {"NaN", "unexpected character 'N'"},
        {"[Infinity]", "unexpected character 'I'"},
        {"'a'", "unexpected character '''"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lisa_json j;
        lisa_error err;
        size_t len = strlen(cases[i].text);
        lisa_result r;
        if (strstr(cases[i].want, "0x00")) len = 5; /* "[1,\0]" */
        r = parse_exact(&j, cases[i].text, len, &err);
        CHECK(r == LISA_ERR_FORMAT && err.code == LISA_ERR_FORMAT, "case %lu (%s) fails", (unsigned long)i, cases[i].text);
        CHECK(r != LISA_OK && has(err.message, cases[i].want) && has(err.message, "doc.json: line "),
              "case %lu: message \"%s\" has \"%s\"", (unsigned long)i, err.message, cases[i].want);
        CHECK(j.nodes == NULL && j.bytes == 0, "case %lu: nothing held after a failure", (unsigned long)i);
        lisa_json_free(&j);
    }
}

static void test_json_limits(void) {
    char deep[300];
    lisa_json j;
    lisa_error err;
    int d;
    counter cnt = {0, 0};
    lisa_allocator al;
    /* 64 levels parse, 65 do not */
    for (d = 0; d < 64; d++) deep[d] = '[';
    for (d = 0; d < 64; d++) deep[64 + d] = ']';
    CHECK(parse_exact(&j, deep, 128, &err) == LISA_OK, "depth 64 parses: %s", err.message);
    lisa_json_free(&j);
    for (d = 0; d < 65; d++) deep[d] = '[';
    for (d = 0; d < 65; d++) deep[65 + d] = ']';
    CHECK(parse_exact(&j, deep, 130, &err) == LISA_ERR_FORMAT && has(err.message, "column 65: nesting deeper than 64"),
          "depth 65 fails: %s", err.message);
    lisa_json_free(&j);
    /* every truncation of a document fails without reading past its end */
    {
        const char *doc = "{\"k\": [1.5e2, -0, \"\\ud83d\\ude00\xc3\xa9\", {\"x\": null}, true, false], \"s\": \"\\n\"}";
        size_t n = strlen(doc), k, fails = 0;
        for (k = 0; k < n; k++) {
            if (parse_exact(&j, doc, k, &err) != LISA_OK) fails++;
            lisa_json_free(&j);
        }
        CHECK(fails == n, "all %lu truncations fail, %lu did", (unsigned long)n, (unsigned long)fails);
        CHECK(parse_exact(&j, doc, n, &err) == LISA_OK, "the whole document parses");
        lisa_json_free(&j);
    }
    /* memory: proportional to the text, all given back */
    al.alloc = cnt_alloc;
    al.free = cnt_free;
    al.user = &cnt;
    {
        size_t n = 20000, k;
        char *text = (char *)malloc(2 * n + 2);
        text[0] = '[';
        for (k = 0; k < n; k++) {
            text[1 + 2 * k] = '0';
            text[2 + 2 * k] = ',';
        }
        text[2 * n] = ']';
        CHECK(lisa_json_parse(&j, text, 2 * n + 1, "big", &al, &err) == LISA_OK, "20000-element array");
        CHECK(lisa_json_length(&j, 0) == (int)n && j.bytes == cnt.live, "length and byte count");
        CHECK(cnt.peak <= 40 * (2 * n + 1) + 64, "memory %lu bytes for %lu bytes of text",
              (unsigned long)cnt.peak, (unsigned long)(2 * n + 1));
        lisa_json_free(&j);
        CHECK(cnt.live == 0, "everything freed");
        free(text);
    }
}

/* ------------------------------------------------------------------------- */
/* Half-precision conversions                                                 */
/* ------------------------------------------------------------------------- */

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_halves(void) {
    uint32_t h;
    int bad_f16 = 0, bad_bf16 = 0, bad_mid = 0, bad_bmid = 0;
    CHECK(lisa_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "smallest f16 subnormal is 2^-24");
    CHECK(lisa_f16_to_f32(0x03FF) == 1023.0f * ldexpf(1.0f, -24), "largest f16 subnormal");
    CHECK(lisa_f16_to_f32(0x0400) == ldexpf(1.0f, -14), "smallest f16 normal");
    CHECK(lisa_f16_to_f32(0x7BFF) == 65504.0f && lisa_f16_to_f32(0x3C00) == 1.0f &&
              lisa_f16_to_f32(0xC000) == -2.0f, "65504, 1, -2");
    CHECK(isinf(lisa_f16_to_f32(0x7C00)) && lisa_f16_to_f32(0xFC00) < 0 && isinf(lisa_f16_to_f32(0xFC00)), "infinities");
    CHECK(isnan(lisa_f16_to_f32(0x7E00)) && isnan(lisa_f16_to_f32(0x7C01)), "NaNs");
    CHECK(bits(lisa_f16_to_f32(0x8000)) == 0x80000000u, "-0");
    for (h = 0; h < 0x10000; h++) {
        float f = lisa_f16_to_f32((uint16_t)h), b = lisa_bf16_to_f32((uint16_t)h);
        if (isnan(f) ? !isnan(lisa_f16_to_f32(lisa_f32_to_f16(f))) : lisa_f32_to_f16(f) != h) bad_f16++;
        if (isnan(b) ? !isnan(lisa_bf16_to_f32(lisa_f32_to_bf16(b))) : lisa_f32_to_bf16(b) != h) bad_bf16++;
    }
    CHECK(bad_f16 == 0, "every f16 value converts back to itself (%d did not)", bad_f16);
    CHECK(bad_bf16 == 0, "every bf16 value converts back to itself (%d did not)", bad_bf16);
    /* Midpoints between neighbours round to the even one; a float to either side
       rounds to the nearer. Covers subnormals, the normal boundary, 65504. */
    for (h = 0; h < 0x7BFF; h++) {
        float lo = lisa_f16_to_f32((uint16_t)h), hi = lisa_f16_to_f32((uint16_t)(h + 1));
        float mid = (lo + hi) / 2, neg = -mid;
        uint16_t even = (uint16_t)((h & 1) ? h + 1 : h);
        if (lisa_f32_to_f16(mid) != even || lisa_f32_to_f16(nextafterf(mid, 0.0f)) != h ||
            lisa_f32_to_f16(nextafterf(mid, 1e9f)) != h + 1 || lisa_f32_to_f16(neg) != (even | 0x8000))
            bad_mid++;
    }
    CHECK(bad_mid == 0, "f16 ties to even at every midpoint (%d wrong)", bad_mid);
    CHECK(lisa_f32_to_f16(65519.99f) == 0x7BFF && lisa_f32_to_f16(65520.0f) == 0x7C00 &&
              lisa_f32_to_f16(1e10f) == 0x7C00 && lisa_f32_to_f16(-1e10f) == 0xFC00 &&
              lisa_f32_to_f16(from_bits(0x7F800000u)) == 0x7C00,
          "overflow to infinity at 65520");
    CHECK(lisa_f32_to_f16(ldexpf(1.0f, -25)) == 0 && lisa_f32_to_f16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 1 &&
              lisa_f32_to_f16(1e-30f) == 0 && lisa_f32_to_f16(-1e-30f) == 0x8000 &&
              lisa_f32_to_f16(ldexpf(3.0f, -25)) == 2,
          "underflow and the smallest subnormals");
    CHECK((lisa_f32_to_f16(from_bits(0x7FC00000u)) & 0x7FFF) > 0x7C00 &&
              (lisa_f32_to_f16(from_bits(0x7F800001u)) & 0x7FFF) > 0x7C00, "NaN stays NaN (signalling too)");
    for (h = 0; h < 0x7F7F; h += 7) {
        float mid = from_bits(h << 16 | 0x8000);
        uint16_t even = (uint16_t)((h & 1) ? h + 1 : h);
        if (lisa_f32_to_bf16(mid) != even || lisa_f32_to_bf16(from_bits(h << 16 | 0x7FFF)) != h ||
            lisa_f32_to_bf16(from_bits(h << 16 | 0x8001)) != h + 1)
            bad_bmid++;
    }
    CHECK(bad_bmid == 0, "bf16 ties to even (%d wrong)", bad_bmid);
    CHECK(lisa_f32_to_bf16(FLT_MAX) == 0x7F80 && lisa_f32_to_bf16(-FLT_MAX) == 0xFF80 &&
              (lisa_f32_to_bf16(from_bits(0x7F800001u)) & 0x7FFF) > 0x7F80 && lisa_f32_to_bf16(1.0f) == 0x3F80,
          "bf16 overflow and NaN");
}

/* ------------------------------------------------------------------------- */
/* A safetensors writer of this test's own                                    */
/* ------------------------------------------------------------------------- */

typedef struct tdesc {
    char name[96];
    char dtype[8];      /* "F32", "F16", "BF16" or anything, for errors */
    int ndim;
    long shape[3];
    const float *src;   /* rows of the model's tensor, or NULL for zeros */
    int rope_hd;        /* 0, or the head size: write rows in transformers' order */
} tdesc;

typedef struct tlist {
    tdesc t[64];
    int n;
} tlist;

static const char *const hf_layer[9] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj",
                                        "mlp.down_proj", "mlp.up_proj"};

static void tl_add(tlist *l, const char *name, const char *dtype, int ndim, long s0, long s1, const float *src, int rope) {
    tdesc *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->ndim = ndim;
    t->shape[0] = s0;
    t->shape[1] = s1;
    t->src = src;
    t->rope_hd = rope;
}

/* Every tensor of m, with transformers' names and shapes. */
static void tl_model(tlist *l, const lisa_model *m, const char *dtype) {
    const lisa_config *c = &m->config;
    int D = c->dim, H = c->hidden_dim, hd = c->dim / c->n_heads, kv = hd * c->n_kv_heads, i;
    char name[96];
    l->n = 0;
    tl_add(l, "model.embed_tokens.weight", dtype, 2, c->vocab_size, D, m->embed, 0);
    for (i = 0; i < c->n_layers; i++) {
        const lisa_layer_weights *w = &m->layers[i];
        const float *src[9] = {w->attn_norm, w->wq, w->wk, w->wv, w->wo, w->mlp_norm, w->w1, w->w2, w->w3};
        const long rows[9] = {D, D, kv, kv, D, D, H, D, H}, cols[9] = {0, D, D, D, D, 0, D, H, D};
        int k;
        for (k = 0; k < 9; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", i, hf_layer[k]);
            tl_add(l, name, dtype, cols[k] ? 2 : 1, rows[k], cols[k], src[k], (k == 1 || k == 2) ? hd : 0);
        }
    }
    tl_add(l, "model.norm.weight", dtype, 1, D, 0, m->final_norm, 0);
    if (!c->tied_head) tl_add(l, "lm_head.weight", dtype, 2, c->vocab_size, D, m->head, 0);
}

static int tl_find(const tlist *l, const char *name) {
    int i;
    for (i = 0; i < l->n; i++)
        if (strcmp(l->t[i].name, name) == 0) return i;
    return -1;
}

static void tl_remove(tlist *l, const char *name) {
    int i = tl_find(l, name);
    if (i < 0) return;
    memmove(&l->t[i], &l->t[i + 1], (size_t)(l->n - i - 1) * sizeof l->t[0]);
    l->n--;
}

static void put16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

/* The whole file; *size gets its bytes. Transformers' q/k row order: head h,
   row i < hd/2 is this header's row 2i, row hd/2 + i its row 2i + 1. */
static unsigned char *tl_build(const tlist *l, size_t *size, const char *metadata) {
    char *header = (char *)malloc(65536);
    size_t at = 0, off = 0, total, hlen;
    unsigned char *buf, *p;
    int i;
    at += (size_t)sprintf(header + at, "{");
    if (metadata) at += (size_t)sprintf(header + at, "\"__metadata__\":%s,", metadata);
    for (i = 0; i < l->n; i++) {
        const tdesc *t = &l->t[i];
        size_t es = strcmp(t->dtype, "F32") == 0 ? 4 : 2, n = 1, bytes;
        int d;
        for (d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
        bytes = n * es;
        at += (size_t)sprintf(header + at, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t->name, t->dtype);
        for (d = 0; d < t->ndim; d++) at += (size_t)sprintf(header + at, "%s%ld", d ? "," : "", t->shape[d]);
        at += (size_t)sprintf(header + at, "],\"data_offsets\":[%lu,%lu]}", (unsigned long)off, (unsigned long)(off + bytes));
        off += bytes;
    }
    at += (size_t)sprintf(header + at, "}");
    hlen = at;
    total = 8 + hlen + off;
    buf = (unsigned char *)calloc(total, 1);
    for (i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    p = buf + 8 + hlen;
    for (i = 0; i < l->n; i++) {
        const tdesc *t = &l->t[i];
        size_t es = strcmp(t->dtype, "F32") == 0 ? 4 : 2;
        size_t rows = (size_t)t->shape[0], cols = t->ndim == 2 ? (size_t)t->shape[1] : 1, r, k;
        if (t->ndim == 0) rows = 1;
        for (r = 0; r < rows; r++) {
            size_t src_row = r;
            if (t->rope_hd) {
                size_t hd = (size_t)t->rope_hd, h = r / hd, j = r % hd;
                src_row = h * hd + (j < hd / 2 ? 2 * j : 2 * (j - hd / 2) + 1);
            }
            for (k = 0; k < cols; k++) {
                float v = t->src ? t->src[src_row * cols + k] : 0.0f;
                if (es == 4) {
                    uint32_t u = bits(v);
                    p[0] = (unsigned char)u;
                    p[1] = (unsigned char)(u >> 8);
                    p[2] = (unsigned char)(u >> 16);
                    p[3] = (unsigned char)(u >> 24);
                } else {
                    put16(p, strcmp(t->dtype, "F16") == 0 ? lisa_f32_to_f16(v) : lisa_f32_to_bf16(v));
                }
                p += es;
            }
        }
    }
    free(header);
    *size = total;
    return buf;
}

/* ------------------------------------------------------------------------- */
/* safetensors                                                                */
/* ------------------------------------------------------------------------- */

/* A file from a header text and n zero data bytes; length field as given
   (or the header's when hlen_override < 0). */
static unsigned char *st_raw(const char *header, size_t n_data, long long hlen_override, size_t *size) {
    size_t h = strlen(header), i;
    uint64_t hl = hlen_override < 0 ? (uint64_t)h : (uint64_t)hlen_override;
    unsigned char *b = (unsigned char *)calloc(8 + h + n_data + 1, 1);
    for (i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8, header, h);
    *size = 8 + h + n_data;
    return b;
}

static void test_safetensors(void) {
    static const struct {
        const char *header;
        size_t n_data;
        long long hlen;
        const char *want;
    } bad[] = {
        {"{}", 0, 1000, "header length 1000 exceeds the 2 bytes after it"},
        {"", 0, 0, "header length 0"},
        {"{\"a\": ", 0, -1, "x.safetensors: header: line 1 column 7: unexpected end of input"},
        {"[1]", 0, -1, "the header is not a JSON object"},
        {"{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, -1, "tensor a: dtype \"I64\" is not supported"},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, "dtype \"f32\" is not supported"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, "tensor a: no dtype"},
        {"{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, "tensor a: no dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, -1, "tensor a: no shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -1, "shape must hold non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, -1, "shape must hold non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, -1, "shape must hold"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, -1, "9 dimensions (at most 8)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, -1, "data_offsets must be two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, -1, "data_offsets must be two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4, -1, "data_offsets must be two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, -1, "data_offsets [0, 8] lie outside the 4 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, -1, "lie outside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", 4, -1, "data_offsets must be two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1, "hold 8 bytes, its dtype and shape need 12"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,8]}}", 8, -1, "hold 8 bytes, its dtype and shape need 12"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, -1, "its dtype and shape need"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, -1, "tensor b overlaps tensor a"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1, "4 unused bytes before tensor a"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, -1, "the tensors cover 4 bytes, the data section has 8"},
        {"{}", 4, -1, "the tensors cover 0 bytes, the data section has 4"},
        {"{\"a\":[]}", 0, -1, "tensor a: an object with dtype, shape and data_offsets expected"},
        {"{\"__metadata__\":[]}", 0, -1, "__metadata__ is not an object"},
        {"{\"__metadata__\":{\"format\":1}}", 0, -1, "__metadata__ entry \"format\" is not a string"},
    };
    size_t i, size;
    lisa_safetensors st;
    lisa_error err;
    unsigned char *b;
    counter cnt = {0, 0};
    lisa_allocator al;
    al.alloc = cnt_alloc;
    al.free = cnt_free;
    al.user = &cnt;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lisa_result r;
        b = st_raw(bad[i].header, bad[i].n_data, bad[i].hlen, &size);
        r = lisa_safetensors_parse_memory(&st, b, size, "x.safetensors", &al, &err);
        CHECK(r == LISA_ERR_FORMAT && has(err.message, bad[i].want) && has(err.message, "x.safetensors: "),
              "bad safetensors %lu: \"%s\" has \"%s\"", (unsigned long)i, err.message, bad[i].want);
        lisa_safetensors_free(&st);
        CHECK(cnt.live == 0 && st.bytes == 0, "case %lu: all freed", (unsigned long)i);
        free(b);
    }
    {
        unsigned char four[4] = {1, 0, 0, 0};
        CHECK(lisa_safetensors_parse_memory(&st, four, 4, "x.safetensors", NULL, &err) == LISA_ERR_FORMAT &&
                  has(err.message, "truncated: the file has 4 bytes"), "4-byte file: %s", err.message);
        lisa_safetensors_free(&st);
        b = st_raw("{}", 0, 100000001, &size);
        b = (unsigned char *)realloc(b, 100000001 + 8);
        CHECK(lisa_safetensors_parse_memory(&st, b, 100000001 + 8, "x.safetensors", NULL, &err) == LISA_ERR_FORMAT &&
                  has(err.message, "over the limit"), "header over 100 MB: %s", err.message);
        lisa_safetensors_free(&st);
        free(b);
    }
    /* a valid file: fields, sorting, zero-size tensors, padding spaces */
    {
        const char *h = "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"BF16\",\"shape\":[2,1],\"data_offsets\":[4,8]},"
                        "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}    ";
        size_t k, full;
        b = st_raw(h, 8, -1, &size);
        CHECK(lisa_safetensors_parse_memory(&st, b, size, "ok.safetensors", &al, &err) == LISA_OK, "valid file: %s", err.message);
        CHECK(st.n_tensors == 3 && strcmp(st.tensors[0].name, "a") == 0 && st.tensors[0].ndim == 0 &&
                  strcmp(st.tensors[1].name, "b") == 0 && st.tensors[1].dtype == LISA_FILE_BF16 &&
                  st.tensors[1].shape[0] == 2 && st.tensors[1].begin == 4 && st.tensors[1].end == 8 &&
                  st.tensors[2].shape[1] == 3,
              "tensors sorted by offset with their fields");
        CHECK(st.data == b + 8 + strlen(h) && st.data_size == 8 && st.data_offset == 8 + strlen(h), "data section");
        CHECK(strcmp(lisa_json_string(&st.header, lisa_json_get(&st.header, st.metadata, "format"), NULL), "pt") == 0,
              "metadata");
        CHECK(st.bytes == cnt.live, "bytes counted");
        lisa_safetensors_free(&st);
        CHECK(cnt.live == 0, "freed");
        /* every truncation fails, reading nothing past its end */
        full = size;
        for (k = 0; k < full; k++) {
            unsigned char *cut = (unsigned char *)malloc(k ? k : 1);
            memcpy(cut, b, k);
            if (lisa_safetensors_parse_memory(&st, cut, k, "cut", NULL, &err) == LISA_OK) {
                CHECK(0, "a %lu-byte truncation parses", (unsigned long)k);
            }
            lisa_safetensors_free(&st);
            free(cut);
        }
        free(b);
    }
}

/* ------------------------------------------------------------------------- */
/* Models                                                                     */
/* ------------------------------------------------------------------------- */

static void make_model(lisa_model *m, int tied, uint64_t seed) {
    lisa_config c;
    memset(&c, 0, sizeof c);
    c.dim = 32;
    c.hidden_dim = 40;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 50;
    c.max_seq_len = 64;
    c.norm_eps = 1e-5f;
    c.rope_theta = 500.0f;
    c.tied_head = tied;
    lisa_model_init(m, &c, NULL, NULL);
    lisa_model_init_random(m, seed);
}

static void round_params(lisa_model *m, lisa_file_dtype d) {
    size_t i;
    for (i = 0; i < m->layout.n_params; i++) {
        float v = m->params[i];
        m->params[i] = d == LISA_FILE_F16 ? lisa_f16_to_f32(lisa_f32_to_f16(v))
                                          : d == LISA_FILE_BF16 ? lisa_bf16_to_f32(lisa_f32_to_bf16(v)) : v;
    }
}

static int same_params(const lisa_model *a, const lisa_model *b) {
    return a->layout.n_params == b->layout.n_params && a->params && b->params &&
           memcmp(&a->config, &b->config, sizeof a->config) == 0 &&
           memcmp(a->params, b->params, a->layout.n_params * sizeof(float)) == 0;
}

/* config.json for m; extra (may be "") goes last, so a key repeated there wins. */
static void config_text(char *out, size_t size, const lisa_config *c, const char *extra) {
    snprintf(out, size,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": %d, "
             "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
             "\"num_key_value_heads\": %d, \"vocab_size\": %d, \"max_position_embeddings\": %d, "
             "\"rms_norm_eps\": 1e-05, \"rope_theta\": 500.0, \"tie_word_embeddings\": %s, \"hidden_act\": \"silu\", "
             "\"rope_scaling\": null, \"attention_bias\": false, \"torch_dtype\": \"float32\"%s%s}",
             c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->max_seq_len,
             c->tied_head ? "true" : "false", extra[0] ? ", " : "", extra);
}

static void test_model_memory(void) {
    lisa_model m, got;
    lisa_error err;
    tlist l;
    char cfg[2048];
    unsigned char *st;
    size_t size;
    int d, tied;
    counter cnt = {0, 0};
    lisa_allocator al;
    al.alloc = cnt_alloc;
    al.free = cnt_free;
    al.user = &cnt;
    /* each dtype, tied and untied */
    for (tied = 0; tied < 2; tied++)
        for (d = 0; d < 3; d++) {
            static const char *const names[3] = {"F32", "F16", "BF16"};
            make_model(&m, tied, 7 + (uint64_t)d);
            round_params(&m, (lisa_file_dtype)d);
            tl_model(&l, &m, names[d]);
            st = tl_build(&l, &size, "{\"format\":\"pt\"}");
            config_text(cfg, sizeof cfg, &m.config, "");
            CHECK(lisa_model_load_hf_memory(&got, cfg, strlen(cfg), st, size, "mem", &al, &err) == LISA_OK,
                  "%s tied %d loads: %s", names[d], tied, err.message);
            CHECK(same_params(&m, &got), "%s tied %d: every parameter bit-exact, q/k rows reordered", names[d], tied);
            CHECK(got.bytes == cnt.live, "only the model's bytes remain");
            lisa_model_free(&got);
            CHECK(cnt.live == 0, "all freed");
            free(st);
            lisa_model_free(&m);
        }
    /* defaults: no num_key_value_heads, eps, theta, tie flag; head_dim equal is fine */
    {
        lisa_config c;
        memset(&c, 0, sizeof c);
        c.dim = 16; c.hidden_dim = 24; c.n_layers = 1; c.n_heads = 2; c.vocab_size = 10; c.max_seq_len = 2048;
        lisa_model_init(&m, &c, NULL, NULL);
        lisa_model_init_random(&m, 3);
        tl_model(&l, &m, "F32");
        st = tl_build(&l, &size, NULL);
        snprintf(cfg, sizeof cfg, "{\"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1, "
                 "\"num_attention_heads\": 2, \"vocab_size\": 10, \"head_dim\": 8, \"num_key_value_heads\": null}");
        CHECK(lisa_model_load_hf_memory(&got, cfg, strlen(cfg), st, size, NULL, NULL, &err) == LISA_OK,
              "minimal config loads: %s", err.message);
        CHECK(got.config.n_kv_heads == 2 && got.config.norm_eps == 1e-6f && got.config.rope_theta == 10000.0f &&
                  got.config.tied_head == 0 && got.config.max_seq_len == 2048,
              "transformers' defaults");
        CHECK(got.params && memcmp(got.params, m.params, m.layout.n_params * 4) == 0, "weights");
        lisa_model_free(&got);
        free(st);
        lisa_model_free(&m);
    }
    /* tensors: skipped, missing, unexpected, misshapen, repeated */
    make_model(&m, 0, 11);
    config_text(cfg, sizeof cfg, &m.config, "");
    {
        static const struct {
            int op;              /* 0 remove, 1 add, 2 reshape, 3 add a copy */
            const char *name;
            int ndim;
            long s0, s1;
            const char *want;    /* NULL: loads */
        } cases[] = {
            {1, "model.layers.0.self_attn.rotary_emb.inv_freq", 1, 4, 0, NULL},
            {1, "model.layers.1.self_attn.rotary_emb.inv_freq", 1, 4, 0, NULL},
            {0, "model.layers.1.mlp.up_proj.weight", 0, 0, 0, "mem/model.safetensors: missing tensor model.layers.1.mlp.up_proj.weight"},
            {0, "model.embed_tokens.weight", 0, 0, 0, "missing tensor model.embed_tokens.weight"},
            {0, "lm_head.weight", 0, 0, 0, "missing tensor lm_head.weight"},
            {0, "model.norm.weight", 0, 0, 0, "missing tensor model.norm.weight"},
            {1, "model.layers.0.self_attn.q_proj.bias", 1, 32, 0, "unexpected tensor model.layers.0.self_attn.q_proj.bias"},
            {1, "model.layers.2.mlp.up_proj.weight", 2, 40, 32, "unexpected tensor model.layers.2.mlp.up_proj.weight"},
            {1, "model.layers.01.mlp.up_proj.weight", 2, 40, 32, "unexpected tensor model.layers.01.mlp.up_proj.weight"},
            {1, "model.layers..mlp.up_proj.weight", 2, 40, 32, "unexpected tensor"},
            {1, "model.layers.0", 1, 1, 0, "unexpected tensor model.layers.0 "},
            {1, "transformer.wte.weight", 1, 1, 0, "unexpected tensor transformer.wte.weight"},
            {2, "model.layers.0.self_attn.q_proj.weight", 2, 32, 16, "tensor model.layers.0.self_attn.q_proj.weight has shape [32, 16], the config needs [32, 32]"},
            {2, "model.layers.1.self_attn.k_proj.weight", 2, 32, 32, "has shape [32, 32], the config needs [16, 32]"},
            {2, "model.norm.weight", 2, 32, 1, "tensor model.norm.weight has shape [32, 1], the config needs [32]"},
            {2, "lm_head.weight", 2, 51, 32, "lm_head.weight has shape [51, 32], the config needs [50, 32]"},
            {3, "model.layers.1.input_layernorm.weight", 0, 0, 0, "tensor model.layers.1.input_layernorm.weight appears twice"},
        };
        size_t i;
        for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            lisa_result r;
            tl_model(&l, &m, "F32");
            if (cases[i].op == 0) tl_remove(&l, cases[i].name);
            else if (cases[i].op == 1) tl_add(&l, cases[i].name, "F32", cases[i].ndim, cases[i].s0, cases[i].s1, NULL, 0);
            else if (cases[i].op == 2) {
                tdesc *t = &l.t[tl_find(&l, cases[i].name)];
                t->ndim = cases[i].ndim;
                t->shape[0] = cases[i].s0;
                t->shape[1] = cases[i].s1;
                t->src = NULL;
                t->rope_hd = 0;
            } else {
                l.t[l.n] = l.t[tl_find(&l, cases[i].name)];
                l.n++;
            }
            st = tl_build(&l, &size, NULL);
            r = lisa_model_load_hf_memory(&got, cfg, strlen(cfg), st, size, "mem", &al, &err);
            if (cases[i].want) {
                CHECK(r == LISA_ERR_FORMAT && has(err.message, cases[i].want), "tensor case %lu: \"%s\" has \"%s\"",
                      (unsigned long)i, err.message, cases[i].want);
                CHECK(got.params == NULL, "case %lu: no model after a failure", (unsigned long)i);
            } else {
                CHECK(r == LISA_OK && same_params(&m, &got), "tensor case %lu loads: %s", (unsigned long)i, err.message);
            }
            lisa_model_free(&got);
            CHECK(cnt.live == 0, "case %lu: all freed", (unsigned long)i);
            free(st);
        }
    }
    /* tied: lm_head.weight is skipped when present */
    {
        lisa_model t;
        char tcfg[2048];
        make_model(&t, 1, 12);
        config_text(tcfg, sizeof tcfg, &t.config, "");
        tl_model(&l, &t, "F32");
        tl_add(&l, "lm_head.weight", "F32", 2, 50, 32, NULL, 0);
        st = tl_build(&l, &size, NULL);
        CHECK(lisa_model_load_hf_memory(&got, tcfg, strlen(tcfg), st, size, "mem", NULL, &err) == LISA_OK &&
                  same_params(&t, &got), "tied model with an lm_head.weight loads it as tied: %s", err.message);
        lisa_model_free(&got);
        free(st);
        lisa_model_free(&t);
    }
    /* config fields */
    {
        static const struct {
            const char *extra;
            const char *want;
        } cases[] = {
            {"\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "mem/config.json: rope_scaling (type \"linear\") is not supported"},
            {"\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}", "rope_scaling (type \"llama3\") is not supported"},
            {"\"rope_scaling\": {\"factor\": 8.0}", "rope_scaling (type \"?\") is not supported"},
            {"\"rope_scaling\": {\"rope_type\": \"default\"}", NULL},
            {"\"attention_bias\": true", "attention_bias true is not supported"},
            {"\"attention_bias\": 0", "attention_bias must be true or false"},
            {"\"mlp_bias\": true", "mlp_bias true is not supported"},
            {"\"mlp_bias\": false", NULL},
            {"\"model_type\": \"mistral\"", "model_type \"mistral\" is not supported (only \"llama\")"},
            {"\"model_type\": 1", "model_type must be a string"},
            {"\"architectures\": [\"MistralForCausalLM\"]", "architectures entry \"MistralForCausalLM\" is not supported"},
            {"\"architectures\": \"LlamaForCausalLM\"", "architectures must be an array"},
            {"\"hidden_act\": \"gelu\"", "hidden_act \"gelu\" is not supported (only \"silu\")"},
            {"\"head_dim\": 16", "head_dim 16 is not supported: it must be hidden_size / num_attention_heads"},
            {"\"head_dim\": 8", NULL},
            {"\"hidden_size\": -32", "hidden_size must be a positive integer"},
            {"\"hidden_size\": 32.5", "hidden_size must be a positive integer"},
            {"\"hidden_size\": \"32\"", "hidden_size must be a positive integer"},
            {"\"hidden_size\": 0", "hidden_size must be a positive integer"},
            {"\"hidden_size\": 1e10", "hidden_size must be a positive integer"},
            {"\"vocab_size\": null", "vocab_size is missing"},
            {"\"num_key_value_heads\": 3", "mem/config.json: n_kv_heads 3 does not divide n_heads 4"},
            {"\"num_attention_heads\": 5", "n_heads 5 does not divide dim 32"},
            {"\"rms_norm_eps\": -1", "rms_norm_eps must be a positive number"},
            {"\"rms_norm_eps\": 1e300", "rms_norm_eps must be a positive number"},
            {"\"rope_theta\": \"big\"", "rope_theta must be a positive number"},
            {"\"tie_word_embeddings\": \"no\"", "tie_word_embeddings must be true or false"},
            {"\"pretraining_tp\": 1, \"transformers_version\": \"4.39.3\"", NULL},
        };
        size_t i;
        for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            lisa_result r;
            tl_model(&l, &m, "F32");
            st = tl_build(&l, &size, NULL);
            config_text(cfg, sizeof cfg, &m.config, cases[i].extra);
            r = lisa_model_load_hf_memory(&got, cfg, strlen(cfg), st, size, "mem", &al, &err);
            if (cases[i].want)
                CHECK(r == LISA_ERR_FORMAT && has(err.message, cases[i].want), "config case %lu: \"%s\" has \"%s\"",
                      (unsigned long)i, err.message, cases[i].want);
            else
                CHECK(r == LISA_OK && same_params(&m, &got), "config case %lu loads: %s", (unsigned long)i, err.message);
            lisa_model_free(&got);
            CHECK(cnt.live == 0, "config case %lu: all freed", (unsigned long)i);
            free(st);
        }
        tl_model(&l, &m, "F32");
        st = tl_build(&l, &size, NULL);
        CHECK(lisa_model_load_hf_memory(&got, "{\"hidden_size\": 32,", 19, st, size, "mem", NULL, &err) == LISA_ERR_FORMAT &&
                  has(err.message, "mem/config.json: line 1 column 20: unterminated object"), "broken JSON: %s", err.message);
        CHECK(lisa_model_load_hf_memory(&got, "[]", 2, st, size, "mem", NULL, &err) == LISA_ERR_FORMAT &&
                  has(err.message, "mem/config.json: not a JSON object"), "array config: %s", err.message);
        config_text(cfg, sizeof cfg, &m.config, "");
        CHECK(lisa_model_load_hf_memory(&got, cfg, strlen(cfg), st, 7, "mem", NULL, &err) == LISA_ERR_FORMAT &&
                  has(err.message, "mem/model.safetensors: truncated"), "7-byte weights: %s", err.message);
        CHECK(lisa_model_load_hf_memory(&got, cfg, strlen(cfg), st, size - 1, "mem", NULL, &err) == LISA_ERR_FORMAT &&
                  has(err.message, "lie outside"), "one byte short: %s", err.message);
        free(st);
    }
    /* every header byte replaced by a few others: errors or loads, never a
       crash or a read out of bounds (ASan), never a leak */
    {
        static const unsigned char subs[] = {'"', '}', ']', ',', '9', 0xFF};
        size_t k, hlen, n_ok = 0, n_bad = 0;
        unsigned q;
        tl_model(&l, &m, "F16");
        st = tl_build(&l, &size, "{\"format\":\"pt\"}");
        config_text(cfg, sizeof cfg, &m.config, "");
        hlen = (size_t)st[0] | (size_t)st[1] << 8;
        for (k = 0; k < 8 + hlen; k++)
            for (q = 0; q < sizeof subs; q++) {
                unsigned char keep = st[k];
                if (keep == subs[q]) continue;
                st[k] = subs[q];
                if (lisa_model_load_hf_memory(&got, cfg, strlen(cfg), st, size, "mem", &al, &err) == LISA_OK) n_ok++;
                else n_bad++;
                lisa_model_free(&got);
                st[k] = keep;
            }
        CHECK(n_bad > 0 && cnt.live == 0, "%lu header mutations: %lu load, %lu fail, nothing leaks",
              (unsigned long)(n_ok + n_bad), (unsigned long)n_ok, (unsigned long)n_bad);
        free(st);
    }
    lisa_model_free(&m);
}

/* ------------------------------------------------------------------------- */
/* Files                                                                      */
/* ------------------------------------------------------------------------- */

static void test_files_roundtrip(void) {
    lisa_model m, got, again;
    lisa_error err;
    char dir[300], p[400], p2[400];
    unsigned char *a, *b;
    size_t na, nb;
    int d;
    snprintf(dir, sizeof dir, "%s/rt", g_tmp);
    mkdir(dir, 0700);
    make_model(&m, 0, 21);
    /* F32: bit-exact; saving what was loaded gives the same bytes */
    CHECK(lisa_model_save_hf(&m, dir, LISA_FILE_F32, &err) == LISA_OK, "save F32: %s", err.message);
    CHECK(count_files(dir) == 2, "config.json and model.safetensors, no temporary left (%d files)", count_files(dir));
    CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_OK && same_params(&m, &got), "F32 load is bit-exact: %s", err.message);
    path_in(p, sizeof p, dir, "model.safetensors");
    a = read_file(p, &na);
    CHECK(lisa_model_save_hf(&got, dir, LISA_FILE_F32, &err) == LISA_OK, "save again");
    b = read_file(p, &nb);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0, "load -> save gives the same bytes");
    CHECK(lisa_model_load(&again, dir, NULL, &err) == LISA_OK && same_params(&m, &again),
          "lisa_model_load takes the directory: %s", err.message);
    lisa_model_free(&again);
    free(b);
    /* the layout written: transformers' names, shapes and q/k row order */
    {
        lisa_safetensors st;
        int i, ok = 1, hd = 8, found = 0;
        CHECK(lisa_safetensors_parse_memory(&st, a, na, p, NULL, &err) == LISA_OK, "saved file parses");
        CHECK((st.data_offset % 8) == 0, "header padded to 8 bytes");
        CHECK(strcmp(lisa_json_string(&st.header, lisa_json_get(&st.header, st.metadata, "format"), NULL), "pt") == 0,
              "metadata format pt, which transformers requires");
        for (i = 0; i < st.n_tensors; i++) {
            const lisa_safetensors_tensor *t = &st.tensors[i];
            if (strcmp(t->name, "model.layers.1.self_attn.k_proj.weight") == 0) {
                const unsigned char *data = st.data + t->begin;
                int r, k;
                found = 1;
                ok = t->ndim == 2 && t->shape[0] == 16 && t->shape[1] == 32;
                for (r = 0; ok && r < 16; r++) {
                    int h = r / hd, j = r % hd;
                    int lr = h * hd + (j < hd / 2 ? 2 * j : 2 * (j - hd / 2) + 1);
                    for (k = 0; k < 32; k++) {
                        float v;
                        memcpy(&v, data + 4 * (r * 32 + k), 4);
                        if (bits(v) != bits(m.layers[1].wk[lr * 32 + k])) ok = 0;
                    }
                }
            }
        }
        CHECK(found && ok, "k_proj row hd/2 + i of each head is row 2i + 1 here");
        CHECK(st.n_tensors == lisa_model_n_tensors(&m), "one tensor per parameter");
        lisa_safetensors_free(&st);
    }
    free(a);
    lisa_model_free(&got);
    path_in(p, sizeof p, dir, "config.json");
    a = read_file(p, &na);
    CHECK(a && has((char *)a, "\"rms_norm_eps\": 1e-05,") && has((char *)a, "\"rope_theta\": 500.0,") &&
              has((char *)a, "\"num_key_value_heads\": 2,") && has((char *)a, "\"tie_word_embeddings\": false"),
          "config.json fields: %s", a ? (char *)a : "");
    free(a);
    /* F16, BF16: what is representable comes back exactly */
    for (d = 1; d < 3; d++) {
        lisa_model r;
        make_model(&r, d == 2, 30 + (uint64_t)d);
        round_params(&r, (lisa_file_dtype)d);
        CHECK(lisa_model_save_hf(&r, dir, (lisa_file_dtype)d, &err) == LISA_OK, "save dtype %d", d);
        path_in(p, sizeof p, dir, "model.safetensors");
        a = read_file(p, &na);
        CHECK(a && na < 8 + 4096 + r.layout.n_params * 2 + 1, "16-bit file size");
        free(a);
        CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_OK && same_params(&r, &got), "dtype %d round trip: %s", d, err.message);
        lisa_model_free(&got);
        lisa_model_free(&r);
    }
    /* rounding on save: nearest even */
    {
        lisa_model r;
        make_model(&r, 0, 40);
        CHECK(lisa_model_save_hf(&r, dir, LISA_FILE_BF16, &err) == LISA_OK, "save bf16");
        round_params(&r, LISA_FILE_BF16);
        CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_OK && same_params(&r, &got), "bf16 rounds to nearest even");
        lisa_model_free(&got);
        lisa_model_free(&r);
    }
    /* failures: a missing directory, a truncated file; the old files survive */
    CHECK(lisa_model_save_hf(&m, "/nonexistent/dir", LISA_FILE_F32, &err) == LISA_ERR_IO &&
              has(err.message, "/nonexistent/dir/model.safetensors"), "save into a missing directory: %s", err.message);
    CHECK(lisa_model_save_hf(&m, dir, (lisa_file_dtype)7, &err) == LISA_ERR_INVALID, "unknown dtype");
    CHECK(lisa_model_load_hf(&got, "/nonexistent/dir", NULL, &err) == LISA_ERR_IO &&
              has(err.message, "/nonexistent/dir/config.json: cannot open"), "load a missing directory: %s", err.message);
    CHECK(lisa_model_save_hf(&m, dir, LISA_FILE_F32, &err) == LISA_OK, "save");
    path_in(p, sizeof p, dir, "model.safetensors");
    a = read_file(p, &na);
    write_file(p, a, na - 3);
    CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_ERR_FORMAT && has(err.message, p) &&
              has(err.message, "lie outside"), "truncated file: %s", err.message);
    CHECK(got.params == NULL, "no model");
    unlink(p);
    CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_ERR_IO &&
              has(err.message, "neither model.safetensors nor model.safetensors.index.json"), "no weights: %s", err.message);
    free(a);
    /* lisa_model_load on a llama2.c file */
    path_in(p2, sizeof p2, g_tmp, "m.bin");
    CHECK(lisa_model_save_llama2c(&m, p2, &err) == LISA_OK, "llama2.c save");
    CHECK(lisa_model_load(&got, p2, NULL, &err) == LISA_OK && got.layout.n_params == m.layout.n_params &&
              memcmp(got.params, m.params, m.layout.n_params * sizeof(float)) == 0,
          "lisa_model_load takes a .bin: %s", err.message);
    lisa_model_free(&got);
    unlink(p2);
    remove_tree(dir);
    lisa_model_free(&m);
}

/* Two shards and an index, written here. */
static void write_sharded(const char *dir, const lisa_model *m, const char *index_extra, int move, int drop_from_shard) {
    tlist all, s1, s2;
    char p[400], *index;
    unsigned char *b;
    size_t n, at = 0;
    int i;
    tl_model(&all, m, "F32");
    s1.n = s2.n = 0;
    for (i = 0; i < all.n; i++) {
        tlist *dst = i < all.n / 2 ? &s1 : &s2;
        if (move && strcmp(all.t[i].name, "model.norm.weight") == 0) dst = &s1;  /* index says shard 2 */
        if (drop_from_shard && strcmp(all.t[i].name, "model.layers.1.mlp.down_proj.weight") == 0) continue;
        dst->t[dst->n++] = all.t[i];
    }
    b = tl_build(&s1, &n, "{\"format\":\"pt\"}");
    path_in(p, sizeof p, dir, "model-00001-of-00002.safetensors");
    write_file(p, b, n);
    free(b);
    b = tl_build(&s2, &n, "{\"format\":\"pt\"}");
    path_in(p, sizeof p, dir, "model-00002-of-00002.safetensors");
    write_file(p, b, n);
    free(b);
    index = (char *)malloc(65536);
    at += (size_t)sprintf(index + at, "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {");
    for (i = 0; i < all.n; i++)
        at += (size_t)sprintf(index + at, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "",
                              all.t[i].name, i < all.n / 2 ? 1 : 2);
    at += (size_t)sprintf(index + at, "%s}}", index_extra);
    path_in(p, sizeof p, dir, "model.safetensors.index.json");
    write_file(p, index, at);
    free(index);
}

static void test_sharded(void) {
    lisa_model m, got;
    lisa_error err;
    char dir[300], p[400], cfg[2048];
    counter cnt = {0, 0};
    lisa_allocator al;
    al.alloc = cnt_alloc;
    al.free = cnt_free;
    al.user = &cnt;
    snprintf(dir, sizeof dir, "%s/sh", g_tmp);
    mkdir(dir, 0700);
    make_model(&m, 0, 50);
    config_text(cfg, sizeof cfg, &m.config, "");
    path_in(p, sizeof p, dir, "config.json");
    write_file(p, cfg, strlen(cfg));
    write_sharded(dir, &m, "", 0, 0);
    CHECK(lisa_model_load_hf(&got, dir, &al, &err) == LISA_OK && same_params(&m, &got), "sharded load: %s", err.message);
    lisa_model_free(&got);
    CHECK(cnt.live == 0, "all freed");
    {
        static const struct {
            const char *extra;
            int move, drop;
            const char *want;
        } cases[] = {
            {", \"model.layers.0.self_attn.rotary_emb.inv_freq\": \"model-00001-of-00002.safetensors\"", 0, 0, NULL},
            {", \"extra.weight\": \"model-00001-of-00002.safetensors\"", 0, 0, "model.safetensors.index.json: unexpected tensor extra.weight"},
            {", \"model.norm.weight\": \"../evil.safetensors\"", 0, 0, "weight_map entry model.norm.weight: a file name in this directory expected"},
            {", \"model.norm.weight\": 3", 0, 0, "a file name in this directory expected"},
            {", \"model.layers.0.self_attn.rotary_emb.inv_freq\": \"missing.safetensors\"", 0, 0, "missing.safetensors: cannot open"},
            {", \"model.norm.weight\": \"model-00001-of-00002.safetensors\"", 0, 0, "which the index puts in model-00001-of-00002.safetensors"},
            {"", 1, 0, "model-00001-of-00002.safetensors: holds tensor model.norm.weight, which the index puts in model-00002-of-00002.safetensors"},
            {"", 0, 1, "tensor model.layers.1.mlp.down_proj.weight is not in model-00002-of-00002.safetensors, where the index puts it"},
        };
        size_t i;
        for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            lisa_result r;
            write_sharded(dir, &m, cases[i].extra, cases[i].move, cases[i].drop);
            r = lisa_model_load_hf(&got, dir, &al, &err);
            if (cases[i].want)
                CHECK(r != LISA_OK && has(err.message, cases[i].want), "shard case %lu: \"%s\" has \"%s\"",
                      (unsigned long)i, err.message, cases[i].want);
            else
                CHECK(r == LISA_OK && same_params(&m, &got), "shard case %lu loads: %s", (unsigned long)i, err.message);
            lisa_model_free(&got);
            CHECK(cnt.live == 0, "shard case %lu: all freed", (unsigned long)i);
        }
    }
    /* an index whose weight_map lacks a tensor, or is missing */
    path_in(p, sizeof p, dir, "model.safetensors.index.json");
    write_file(p, "{\"weight_map\": {\"model.norm.weight\": \"a.safetensors\"}}", 54);
    CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_ERR_FORMAT && has(err.message, "missing tensor model.embed_tokens.weight"),
          "index without most tensors: %s", err.message);
    write_file(p, "{\"metadata\": {}}", 16);
    CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_ERR_FORMAT && has(err.message, "no weight_map object"),
          "index without weight_map: %s", err.message);
    write_file(p, "{\"weight_map\": ", 15);
    CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_ERR_FORMAT && has(err.message, "index.json: line 1 column 16"),
          "broken index: %s", err.message);
    /* model.safetensors wins over an index, as in transformers */
    CHECK(lisa_model_save_hf(&m, dir, LISA_FILE_F32, &err) == LISA_OK, "save next to the index");
    CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_OK && same_params(&m, &got), "model.safetensors preferred");
    lisa_model_free(&got);
    remove_tree(dir);
    lisa_model_free(&m);
}

/* ------------------------------------------------------------------------- */
/* Saving in shards                                                           */
/* ------------------------------------------------------------------------- */

/* The shard of each tensor as transformers' rule has it (tensors whole, in
   order; a new shard when the next would pass max); returns the count. */
static int expected_shards(const lisa_model *m, uint64_t max, int *shard_of) {
    int i, n = 0;
    uint64_t bytes = 0;
    for (i = 0; i < lisa_model_n_tensors(m); i++) {
        lisa_param p = lisa_model_tensor(m, i);
        uint64_t b = (uint64_t)lisa_tensor_numel(&p.tensor) * 4;
        if (n == 0 || bytes + b > max) {
            n++;
            bytes = 0;
        }
        bytes += b;
        shard_of[i] = n;
    }
    return n;
}

/* transformers' name of tensor i (lisa_model_tensor() order), written out here. */
static void hf_name(const lisa_model *m, int i, char *out, size_t size) {
    static const char *const layer[9] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                         "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj",
                                         "mlp.down_proj", "mlp.up_proj"};
    int L = m->config.n_layers;
    if (i == 0) snprintf(out, size, "model.embed_tokens.weight");
    else if (i <= 9 * L) snprintf(out, size, "model.layers.%d.%s.weight", (i - 1) / 9, layer[(i - 1) % 9]);
    else if (i == 9 * L + 1) snprintf(out, size, "model.norm.weight");
    else snprintf(out, size, "lm_head.weight");
}

static int exists_in(const char *dir, const char *name) {
    char p[600];
    struct stat st;
    path_in(p, sizeof p, dir, name);
    return stat(p, &st) == 0;
}

/* A sharded save of m into dir: the shard files and the index as expected,
   nothing else of either layout left, and a bit-exact load. */
static void check_sharded_save(const lisa_model *m, const char *dir, uint64_t max, const char *label) {
    int shard_of[64], n, i, k, c;
    char p[600], name[64];
    size_t size;
    unsigned char *text;
    lisa_json j;
    lisa_error err;
    lisa_model got;
    double total = 0;
    n = expected_shards(m, max, shard_of);
    CHECK(lisa_model_save_hf_sharded(m, dir, LISA_FILE_F32, max, &err) == LISA_OK, "%s: save: %s", label, err.message);
    for (k = 1; k <= n; k++) {
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, n);
        CHECK(n == 1 || exists_in(dir, name), "%s: %s is there", label, name);
    }
    CHECK(exists_in(dir, "model.safetensors") == (n == 1), "%s: model.safetensors %s", label, n == 1 ? "written" : "gone");
    CHECK(exists_in(dir, "model.safetensors.index.json") == (n > 1), "%s: the index %s", label, n > 1 ? "written" : "gone");
    if (n > 1) {
        path_in(p, sizeof p, dir, "model.safetensors.index.json");
        text = read_file(p, &size);
        CHECK(text && lisa_json_parse(&j, (const char *)text, size, p, NULL, &err) == LISA_OK, "%s: the index parses", label);
        if (text) {
            int map = lisa_json_get(&j, lisa_json_root(&j), "weight_map");
            for (i = 0; i < lisa_model_n_tensors(m); i++) {
                lisa_param t = lisa_model_tensor(m, i);
                size_t len = 0;
                char tname[96];
                const char *file;
                hf_name(m, i, tname, sizeof tname);
                file = lisa_json_string(&j, lisa_json_get(&j, map, tname), &len);
                snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", shard_of[i], n);
                CHECK(file && len == strlen(name) && !memcmp(file, name, len), "%s: %s in %s", label, tname, name);
                total += (double)lisa_tensor_numel(&t.tensor) * 4;
            }
            CHECK(lisa_json_length(&j, map) == lisa_model_n_tensors(m), "%s: %d tensors in the weight_map", label,
                  lisa_json_length(&j, map));
            c = lisa_json_get(&j, lisa_json_get(&j, lisa_json_root(&j), "metadata"), "total_size");
            CHECK(lisa_json_number(&j, c) == total, "%s: total_size %.0f, the tensors %.0f", label, lisa_json_number(&j, c), total);
            lisa_json_free(&j);
        }
        free(text);
    }
    CHECK(lisa_model_load_hf(&got, dir, NULL, &err) == LISA_OK && same_params(m, &got), "%s: loads bit for bit: %s", label,
          err.message);
    lisa_model_free(&got);
}

typedef struct sharded_save {
    const lisa_model *m;
    uint64_t max;
} sharded_save;

static lisa_result save_sharded_fn(const void *obj, const char *dir, lisa_error *err) {
    const sharded_save *s = (const sharded_save *)obj;
    return lisa_model_save_hf_sharded(s->m, dir, LISA_FILE_F32, s->max, err);
}

static void test_save_sharded(void) {
    lisa_model m;
    lisa_error err;
    char dir[300], work[300], names[512];
    int shard_of[64], n;
    sharded_save ss;
    save_fail_case fc;
    snprintf(dir, sizeof dir, "%s/save_sh", g_tmp);
    mkdir(dir, 0700);
    make_model(&m, 0, 77);
    CHECK(lisa_model_save_hf(&m, dir, LISA_FILE_F32, &err) == LISA_OK, "a first save, as model.safetensors");
    n = expected_shards(&m, 10000, shard_of);
    CHECK(n > 3 && shard_of[1] == 1 && shard_of[2] == 2, "10 kB shards: %d of them", n);
    check_sharded_save(&m, dir, 10000, "10 kB shards over model.safetensors");
    n = expected_shards(&m, 5000, shard_of);
    CHECK(shard_of[0] == 1 && shard_of[1] == 2, "5 kB: the 6400-byte embedding alone (%d shards)", n);
    check_sharded_save(&m, dir, 5000, "5 kB shards over 10 kB ones");
    {
        int n10 = expected_shards(&m, 10000, shard_of), k, left = 0;
        char name[64];
        for (k = 1; k <= n10; k++) {
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, n10);
            left += exists_in(dir, name);
        }
        CHECK(n10 != n && left == 0, "the %d shards of the 10 kB save are gone (%d left)", n10, left);
    }
    check_sharded_save(&m, dir, 1, "a shard per tensor");
    check_sharded_save(&m, dir, LISA_HF_SHARD_DEFAULT, "one file over shards");
    memset(&fc, 0, sizeof fc);
    fc.files[0] = "model.safetensors";
    fc.files[1] = "config.json";
    CHECK(save_fail_only_files(dir, &fc, names, sizeof names), "only model.safetensors and config.json are left:%s", names);
    CHECK(lisa_model_save_hf_sharded(&m, dir, LISA_FILE_F32, 0, &err) == LISA_ERR_INVALID && has(err.message, "0 bytes"),
          "a shard size of 0: %s", err.message);
    remove_tree(dir);
    /* failed saves: two shards, the index and config.json */
    ss.m = &m;
    ss.max = 40000;
    CHECK(expected_shards(&m, ss.max, shard_of) == 2, "40 kB: two shards");
    memset(&fc, 0, sizeof fc);
    fc.label = "sharded Hugging Face save";
    fc.save = save_sharded_fn;
    fc.obj = &ss;
    fc.files[0] = "model-00001-of-00002.safetensors";
    fc.files[1] = "model-00002-of-00002.safetensors";
    fc.files[2] = "model.safetensors.index.json";
    fc.files[3] = "config.json";
    fc.into_dir = 1;
    snprintf(work, sizeof work, "%s/save_sh_fail", g_tmp);
    mkdir(work, 0700);
    save_fail_check(&fc, work);
    remove_tree(work);
    lisa_model_free(&m);
}

/* ------------------------------------------------------------------------- */
/* The oracle: transformers' own files, logits and loss                       */
/* ------------------------------------------------------------------------- */

/* Every tensor of the safetensors file src has its dtype and bytes under its
   name in out; *checked counts the tensors compared. 0 on a difference,
   or when src cannot be read. */
static int same_tensors_as(const char *src, const lisa_safetensors *out, int *checked) {
    size_t na;
    unsigned char *a = read_file(src, &na);
    lisa_safetensors s1;
    lisa_error err;
    int k, same = 1;
    if (!a || lisa_safetensors_parse_memory(&s1, a, na, src, NULL, &err) != LISA_OK) {
        if (a) lisa_safetensors_free(&s1);
        free(a);
        fprintf(stderr, "%s: cannot be read as safetensors\n", src);
        return 0;
    }
    for (k = 0; k < s1.n_tensors; k++) {
        const lisa_safetensors_tensor *x = &s1.tensors[k];
        int q;
        for (q = 0; q < out->n_tensors; q++)
            if (strcmp(out->tensors[q].name, x->name) == 0) break;
        if (q == out->n_tensors || out->tensors[q].dtype != x->dtype ||
            out->tensors[q].end - out->tensors[q].begin != x->end - x->begin ||
            memcmp(s1.data + x->begin, out->data + out->tensors[q].begin, x->end - x->begin) != 0)
            same = 0;
        (*checked)++;
    }
    lisa_safetensors_free(&s1);
    free(a);
    return same;
}

/* same_tensors_as() over transformers' files in dir: model.safetensors, or
   else every shard its model.safetensors.index.json names. */
static int same_as_source_files(const char *dir, const lisa_safetensors *out, int *checked) {
    char path[600], shards[8][128];
    unsigned char *text;
    size_t n;
    lisa_json j;
    lisa_error err;
    int e, s, n_shards = 0, same = 1;
    path_in(path, sizeof path, dir, "model.safetensors");
    if (access(path, F_OK) == 0) return same_tensors_as(path, out, checked);
    path_in(path, sizeof path, dir, "model.safetensors.index.json");
    text = read_file(path, &n);
    if (!text || lisa_json_parse(&j, (const char *)text, n, path, NULL, &err) != LISA_OK) {
        if (text) lisa_json_free(&j);
        free(text);
        fprintf(stderr, "%s: no model.safetensors and no readable index\n", dir);
        return 0;
    }
    for (e = lisa_json_first(&j, lisa_json_get(&j, lisa_json_root(&j), "weight_map")); e >= 0; e = lisa_json_next(&j, e)) {
        const char *file = lisa_json_string(&j, e, NULL);
        if (!file || strlen(file) >= sizeof shards[0]) same = 0;
        else {
            for (s = 0; s < n_shards && strcmp(shards[s], file) != 0; s++) {}
            if (s == n_shards && n_shards < 8) strcpy(shards[n_shards++], file);
        }
    }
    lisa_json_free(&j);
    free(text);
    for (s = 0; s < n_shards; s++) {
        path_in(path, sizeof path, dir, shards[s]);
        if (!same_tensors_as(path, out, checked)) same = 0;
    }
    return same && n_shards > 0;
}

/* dtype: the fixture's tensors', which saving in it gives back byte for byte. */
static void test_transformers(const char *fixdir, const char *name, lisa_file_dtype dtype) {
    char dir[400], path[400], out[300];
    lisa_model m, back;
    lisa_error err;
    fixture f;
    const fixture_entry *ids, *logits, *loss;
    lisa_acts acts;
    int B, T, i, t, *inputs, *targets;
    double maxref = 0, maxdiff = 0;
    float got_loss;
    snprintf(dir, sizeof dir, "%s/%s", fixdir, name);
    snprintf(path, sizeof path, "%s/%s_logits.bin", fixdir, name);
    if (fixture_load(&f, path) != 0) {
        CHECK(0, "%s loads (regenerate with tools/make_hf_fixture.py)", path);
        return;
    }
    ids = fixture_find(&f, "inputs");
    logits = fixture_find(&f, "logits");
    loss = fixture_find(&f, "loss");
    CHECK(ids && logits && loss, "fixture entries");
    if (!ids || !logits || !loss) {
        fixture_free(&f);
        return;
    }
    CHECK(lisa_model_load_hf(&m, dir, NULL, &err) == LISA_OK, "%s loads: %s", dir, err.message);
    if (!m.params) {
        fixture_free(&f);
        return;
    }
    B = ids->shape[0];
    T = ids->shape[1];
    inputs = (int *)malloc(sizeof(int) * (size_t)B * T);
    targets = (int *)malloc(sizeof(int) * (size_t)B * T);
    for (i = 0; i < B; i++)
        for (t = 0; t < T; t++) {
            inputs[i * T + t] = ids->i32[i * T + t];
            targets[i * T + t] = t + 1 < T ? ids->i32[i * T + t + 1] : LISA_IGNORE;  /* transformers' shifted labels */
        }
    CHECK(lisa_acts_init(&acts, &m.config, B, T, 0, NULL, &err) == LISA_OK, "acts");
    got_loss = lisa_model_forward(&m, &acts, inputs, targets, B, T);
    CHECK(logits->n == (size_t)B * T * m.config.vocab_size, "logit count");
    for (i = 0; i < (int)logits->n; i++) {
        maxref = fmax(maxref, fabs(logits->f32[i]));
        maxdiff = fmax(maxdiff, fabs((double)acts.logits[i] - logits->f32[i]));
    }
    CHECK(maxdiff <= 1e-5 * maxref, "%s: logits match LlamaForCausalLM: max diff %.3g, max |logit| %.3g", name, maxdiff, maxref);
    CHECK(test_close(got_loss, loss->f32[0], 1e-5, 1e-5), "%s: loss %.7f, transformers %.7f", name, got_loss, loss->f32[0]);
    printf("%s: logits max diff %.3g (relative %.3g), loss %.7f vs %.7f\n", name, maxdiff, maxdiff / maxref, got_loss, loss->f32[0]);
    /* load -> save (F32) -> load is bit-exact; an F32 file's tensors keep their bytes */
    snprintf(out, sizeof out, "%s/%s_out", g_tmp, name);
    mkdir(out, 0700);
    CHECK(lisa_model_save_hf(&m, out, LISA_FILE_F32, &err) == LISA_OK, "save: %s", err.message);
    CHECK(lisa_model_load_hf(&back, out, NULL, &err) == LISA_OK && same_params(&m, &back), "%s: HF -> lisa -> HF -> lisa bit-exact", name);
    lisa_model_free(&back);
    {
        char p2[500];
        unsigned char *b;
        size_t nb;
        lisa_safetensors s2;
        int checked = 0, saved = -1, same = 0;
        snprintf(p2, sizeof p2, "%s/model.safetensors", out);
        CHECK(lisa_model_save_hf(&m, out, dtype, &err) == LISA_OK, "save in the fixture's dtype: %s", err.message);
        b = read_file(p2, &nb);
        if (b && lisa_safetensors_parse_memory(&s2, b, nb, p2, NULL, &err) == LISA_OK) {
            same = same_as_source_files(dir, &s2, &checked);
            saved = s2.n_tensors;
        }
        if (b) lisa_safetensors_free(&s2);
        CHECK(same && checked == saved && checked > 0,
              "%s: every tensor of transformers' files saved back byte for byte (%d of the saved file's compared)",
              name, checked);
        free(b);
    }
    remove_tree(out);
    lisa_acts_free(&acts);
    free(inputs);
    free(targets);
    lisa_model_free(&m);
    fixture_free(&f);
}

int main(int argc, char **argv) {
    const char *fixdir = argc > 1 ? argv[1] : "tests/fixtures";
    snprintf(g_tmp, sizeof g_tmp, "/tmp/lisa_test_hf_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "cannot make a temporary directory\n");
        return 1;
    }
    test_json_values();
    test_json_numbers();
    test_json_errors();
    test_json_limits();
    test_halves();
    test_safetensors();
    test_model_memory();
    test_files_roundtrip();
    test_sharded();
    test_save_sharded();
    test_transformers(fixdir, "hf_tiny", LISA_FILE_F32);
    test_transformers(fixdir, "hf_tiny_tied", LISA_FILE_BF16);
    remove_tree(g_tmp);
    return test_report("hf");
}
