/* libFuzzer harness: lisa_json_parse and the JSON accessors.

   Every input is parsed through a counting allocator and, independently, by a
   small reference parser here (RFC 8259, written without looking at lisa.h's:
   UTF-8 decoded to code points, escapes, depth limit LISA_JSON_MAX_DEPTH, an
   optional leading UTF-8 BOM, numbers through strtod). The two must agree on
   accept or reject (a number within a few ulps of the double range may go
   either way). A failure must be LISA_ERR_FORMAT (or LISA_ERR_NOMEM), with a
   message "name: line L column C: ...", and leave nothing allocated once
   lisa_json_free() is called. A success must give the reference's tree node
   for node (type, parent, subtree end, member count, keys, decoded strings,
   numbers: exact for at most 15 significant digits with an exponent within
   22, else within 8 ulps), and the accessors must agree with the nodes:
   first/next walk exactly the children that length/at count, parents link
   back, keys exist exactly for object members, strings and keys are
   NUL-terminated at their length inside the string table, numbers are
   finite, lisa_json_get finds the last member with a key; the byte count is
   what the allocator saw and frees to zero. Then each allocation is made to
   fail (LISA_ERR_NOMEM, cleanly), and the input is parsed again with the
   default allocator and no error struct.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#include <float.h>
#include <math.h>

/* ---- reference parser ---------------------------------------------------- */

typedef struct ref_node {
    int type, parent, end, count, has_key;
    size_t key, key_len, str, str_len;
    double number;
    int exact;         /* the number must be bit-exact */
} ref_node;

typedef struct ref_json {
    const unsigned char *s;
    size_t len, pos;
    ref_node *nodes;
    int n;
    unsigned char *buf; /* decoded keys and strings */
    size_t nbuf;
    int depth;
    int unsure;         /* a number at the edge of the double range */
} ref_json;

static int ref_value(ref_json *p, int parent, int has_key, size_t key, size_t key_len);

static void ref_ws(ref_json *p) {
    while (p->pos < p->len &&
           (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static void ref_put_cp(ref_json *p, unsigned long cp) {
    if (cp < 0x80) {
        p->buf[p->nbuf++] = (unsigned char)cp;
    } else if (cp < 0x800) {
        p->buf[p->nbuf++] = (unsigned char)(0xC0 | (cp >> 6));
        p->buf[p->nbuf++] = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        p->buf[p->nbuf++] = (unsigned char)(0xE0 | (cp >> 12));
        p->buf[p->nbuf++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        p->buf[p->nbuf++] = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        p->buf[p->nbuf++] = (unsigned char)(0xF0 | (cp >> 18));
        p->buf[p->nbuf++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        p->buf[p->nbuf++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        p->buf[p->nbuf++] = (unsigned char)(0x80 | (cp & 0x3F));
    }
}

static int ref_hex(ref_json *p, size_t at, unsigned long *out) {
    unsigned long v = 0;
    size_t i;
    if (at + 4 > p->len) return 0;
    for (i = at; i < at + 4; i++) {
        int c = p->s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* One UTF-8 character at p->pos, decoded and checked (shortest form, no
   surrogates, at most U+10FFFF). */
static int ref_utf8(ref_json *p, unsigned long *cp) {
    unsigned c = p->s[p->pos];
    int n, i;
    unsigned long v, min;
    if (c < 0x80) {
        *cp = c;
        p->pos++;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) n = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 3, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) n = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (p->pos + (size_t)n > p->len) return 0;
    for (i = 1; i < n; i++) {
        unsigned d = p->s[p->pos + (size_t)i];
        if ((d & 0xC0) != 0x80) return 0;
        v = v << 6 | (d & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    p->pos += (size_t)n;
    return 1;
}

static int ref_string(ref_json *p, size_t *off, size_t *n) {
    p->pos++; /* the quote */
    *off = p->nbuf;
    for (;;) {
        unsigned c;
        unsigned long cp;
        if (p->pos >= p->len) return 0;
        c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return 0;
        if (c != '\\') {
            if (!ref_utf8(p, &cp)) return 0;
            ref_put_cp(p, cp);
            continue;
        }
        if (p->pos + 1 >= p->len) return 0;
        c = p->s[p->pos + 1];
        p->pos += 2;
        if (c == 'u') {
            if (!ref_hex(p, p->pos, &cp)) return 0;
            p->pos += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return 0;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned long lo;
                if (p->pos + 2 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') return 0;
                if (!ref_hex(p, p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) return 0;
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            ref_put_cp(p, cp);
            continue;
        }
        switch (c) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'n': cp = 10; break;
        case 'r': cp = 13; break;
        case 't': cp = 9; break;
        default: return 0;
        }
        ref_put_cp(p, cp);
    }
    *n = p->nbuf - *off;
    p->buf[p->nbuf++] = 0;
    return 1;
}

static int ref_digit(ref_json *p) { return p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'; }

/* Number grammar, then strtod on a copy; exactness from the digits. */
static int ref_number(ref_json *p, ref_node *node) {
    size_t start = p->pos, i, n_sig = 0, len;
    long exp10 = 0, e = 0;
    int seen_nonzero = 0, in_frac = 0, eneg = 0;
    char *tmp;
    double v;
    if (p->s[p->pos] == '-') p->pos++;
    if (!ref_digit(p)) return 0;
    if (p->s[p->pos] == '0') {
        p->pos++;
    } else {
        while (ref_digit(p)) p->pos++;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (!ref_digit(p)) return 0;
        while (ref_digit(p)) p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) eneg = p->s[p->pos++] == '-';
        if (!ref_digit(p)) return 0;
        while (ref_digit(p)) {
            if (e < 1000000) e = e * 10 + (p->s[p->pos] - '0');
            p->pos++;
        }
    }
    len = p->pos - start;
    /* Significant digits (first non-zero to last digit) and the exponent of the last one. */
    for (i = start; i < p->pos; i++) {
        int c = p->s[i];
        if (c == '.') {
            in_frac = 1;
        } else if (c == 'e' || c == 'E') {
            break;
        } else if (c >= '0' && c <= '9') {
            if (c != '0') seen_nonzero = 1;
            if (seen_nonzero) n_sig++;
            if (in_frac) exp10--;
        }
    }
    exp10 += eneg ? -e : e;
    tmp = (char *)malloc(len + 1);
    FUZZ_CHECK(tmp != NULL, "out of memory in the harness");
    memcpy(tmp, p->s + start, len);
    tmp[len] = 0;
    v = strtod(tmp, NULL);
    if (LDBL_MAX_EXP > DBL_MAX_EXP) {
        long double lv = strtold(tmp, NULL);
        if (lv < 0) lv = -lv;
        if (lv > (long double)DBL_MAX * (1.0L - 1e-14L) && lv < (long double)DBL_MAX * (1.0L + 1e-14L))
            p->unsure = 1;
    } else if (isinf(v) || fabs(v) > DBL_MAX * (1.0 - 1e-14)) {
        p->unsure = 1;
    }
    free(tmp);
    if (isinf(v)) return 0; /* beyond double range */
    if (node) {
        node->number = v;
        node->exact = !seen_nonzero || (n_sig <= 15 && exp10 >= -22 && exp10 <= 22);
    }
    return 1;
}

static int ref_value(ref_json *p, int parent, int has_key, size_t key, size_t key_len) {
    int idx;
    ref_node *node;
    unsigned c;
    ref_ws(p);
    if (p->pos >= p->len) return 0;
    idx = p->n++;
    node = &p->nodes[idx];
    memset(node, 0, sizeof *node);
    node->parent = parent;
    node->has_key = has_key;
    node->key = key;
    node->key_len = key_len;
    c = p->s[p->pos];
    if (c == '[' || c == '{') {
        unsigned close = c == '[' ? ']' : '}';
        int count = 0;
        if (++p->depth > LISA_JSON_MAX_DEPTH) return 0;
        node->type = c == '[' ? LISA_JSON_ARRAY : LISA_JSON_OBJECT;
        p->pos++;
        ref_ws(p);
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
        } else {
            for (;;) {
                size_t koff = 0, klen = 0;
                if (c == '{') {
                    ref_ws(p);
                    if (p->pos >= p->len || p->s[p->pos] != '"' || !ref_string(p, &koff, &klen)) return 0;
                    ref_ws(p);
                    if (p->pos >= p->len || p->s[p->pos] != ':') return 0;
                    p->pos++;
                }
                if (!ref_value(p, idx, c == '{', koff, klen)) return 0;
                count++;
                ref_ws(p);
                if (p->pos >= p->len) return 0;
                if (p->s[p->pos] == ',') {
                    p->pos++;
                    continue;
                }
                if (p->s[p->pos] != close) return 0;
                p->pos++;
                break;
            }
        }
        p->depth--;
        p->nodes[idx].count = count;
    } else if (c == '"') {
        size_t off, n;
        if (!ref_string(p, &off, &n)) return 0;
        node->type = LISA_JSON_STRING;
        node->str = off;
        node->str_len = n;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        if (!ref_number(p, node)) return 0;
        node->type = LISA_JSON_NUMBER;
    } else if (p->len - p->pos >= 4 && memcmp(p->s + p->pos, "null", 4) == 0) {
        node->type = LISA_JSON_NULL;
        p->pos += 4;
    } else if (p->len - p->pos >= 4 && memcmp(p->s + p->pos, "true", 4) == 0) {
        node->type = LISA_JSON_TRUE;
        p->pos += 4;
    } else if (p->len - p->pos >= 5 && memcmp(p->s + p->pos, "false", 5) == 0) {
        node->type = LISA_JSON_FALSE;
        p->pos += 5;
    } else {
        return 0;
    }
    p->nodes[idx].end = p->n;
    return 1;
}

/* Parses text into p (the caller frees p->nodes and p->buf). Returns 1 when valid. */
static int ref_parse(ref_json *p, const uint8_t *text, size_t len) {
    memset(p, 0, sizeof *p);
    p->s = text;
    p->len = len;
    p->nodes = (ref_node *)malloc((len + 1) * sizeof(ref_node));
    p->buf = (unsigned char *)malloc(4 * len + 1);
    FUZZ_CHECK(p->nodes && p->buf, "out of memory in the harness");
    if (len >= 3 && text[0] == 0xEF && text[1] == 0xBB && text[2] == 0xBF) p->pos = 3;
    if (!ref_value(p, -1, 0, 0, 0)) return 0;
    ref_ws(p);
    return p->pos == p->len;
}

/* ---- checks -------------------------------------------------------------- */

static int valid_utf8_nul_ok(const unsigned char *s, size_t n) {
    ref_json p;
    unsigned long cp;
    memset(&p, 0, sizeof p);
    p.s = s;
    p.len = n;
    while (p.pos < n)
        if (!ref_utf8(&p, &cp)) return 0;
    return 1;
}

static int numbers_close(double a, double b) {
    double d = fabs(a - b), tiny = nextafter(0.0, 1.0);
    if (a == b && signbit(a) == signbit(b)) return 1;
    if (signbit(a) != signbit(b) && !(a == 0.0 && b == 0.0)) return 0;
    return d <= 8 * tiny || d <= fabs(b) * ldexp(1.0, -49);
}

/* Tree j against the reference and the accessors against the nodes. */
static void check_tree(const lisa_json *j, const ref_json *ref) {
    int i, n = j->n_nodes;
    FUZZ_CHECK(n == ref->n, "%d nodes, the reference has %d", n, ref->n);
    FUZZ_CHECK(j->nodes != NULL && j->strings != NULL, "no node or string table");
    FUZZ_CHECK(j->strings_size >= 1 && j->strings[j->strings_size - 1] == 0, "string table not NUL-terminated");
    FUZZ_CHECK(lisa_json_root(j) == 0, "root %d", lisa_json_root(j));
    FUZZ_CHECK(lisa_json_type_of(j, -1) == LISA_JSON_NONE && lisa_json_type_of(j, n) == LISA_JSON_NONE,
               "a type for a node out of range");
    FUZZ_CHECK(lisa_json_next(j, 0) == -1 && lisa_json_key(j, 0, NULL) == NULL, "the root has a sibling or key");
    FUZZ_CHECK(lisa_json_first(j, -1) == -1 && lisa_json_length(j, -1) == 0 && lisa_json_at(j, -1, 0) == -1 &&
                   lisa_json_get(j, -1, "") == -1 && lisa_json_string(j, -1, NULL) == NULL &&
                   lisa_json_number(j, n) == 0.0,
               "accessors on node -1 or n");
    for (i = 0; i < n; i++) {
        const lisa_json_node *x = &j->nodes[i];
        const ref_node *r = &ref->nodes[i];
        lisa_json_type t = lisa_json_type_of(j, i);
        const char *s, *k;
        size_t sl = 12345, kl = 12345;
        int len = lisa_json_length(j, i), c, idx, last_end = i + 1;
        FUZZ_CHECK((int)t == r->type, "node %d: type %d, the reference says %d", i, (int)t, r->type);
        FUZZ_CHECK(x->parent == r->parent, "node %d: parent %d, the reference says %d", i, x->parent, r->parent);
        FUZZ_CHECK(x->end == r->end, "node %d: end %d, the reference says %d", i, x->end, r->end);
        FUZZ_CHECK(x->end > i && x->end <= n, "node %d: end %d of %d", i, x->end, n);
        FUZZ_CHECK(i == 0 || (x->parent >= 0 && x->parent < i), "node %d: parent %d", i, x->parent);
        /* strings */
        s = lisa_json_string(j, i, &sl);
        if (t == LISA_JSON_STRING) {
            FUZZ_CHECK(s != NULL, "node %d: string NULL", i);
            FUZZ_CHECK(s >= j->strings && (size_t)(s - j->strings) + sl < j->strings_size,
                       "node %d: string outside the table", i);
            FUZZ_CHECK(s[sl] == 0, "node %d: string not NUL-terminated at its length %lu", i, (unsigned long)sl);
            FUZZ_CHECK(sl == r->str_len && memcmp(s, ref->buf + r->str, sl) == 0,
                       "node %d: string of %lu bytes differs from the reference's %lu", i, (unsigned long)sl,
                       (unsigned long)r->str_len);
            FUZZ_CHECK(valid_utf8_nul_ok((const unsigned char *)s, sl), "node %d: string not UTF-8", i);
        } else {
            FUZZ_CHECK(s == NULL && sl == 0, "node %d: a string for type %d", i, (int)t);
        }
        /* numbers */
        if (t == LISA_JSON_NUMBER) {
            double v = lisa_json_number(j, i);
            FUZZ_CHECK(isfinite(v), "node %d: number not finite", i);
            if (r->exact)
                FUZZ_CHECK(v == r->number && signbit(v) == signbit(r->number), "node %d: %.17g, strtod says %.17g",
                           i, v, r->number);
            else
                FUZZ_CHECK(numbers_close(v, r->number), "node %d: %.17g, strtod says %.17g", i, v, r->number);
        } else {
            FUZZ_CHECK(lisa_json_number(j, i) == 0.0, "node %d: a number for type %d", i, (int)t);
        }
        /* keys */
        k = lisa_json_key(j, i, &kl);
        if (r->has_key) {
            FUZZ_CHECK(lisa_json_type_of(j, x->parent) == LISA_JSON_OBJECT, "node %d: key but parent not an object", i);
            FUZZ_CHECK(k != NULL, "node %d: object member without a key", i);
            FUZZ_CHECK(k >= j->strings && (size_t)(k - j->strings) + kl < j->strings_size,
                       "node %d: key outside the table", i);
            FUZZ_CHECK(k[kl] == 0, "node %d: key not NUL-terminated at its length", i);
            FUZZ_CHECK(kl == r->key_len && memcmp(k, ref->buf + r->key, kl) == 0,
                       "node %d: key differs from the reference's", i);
            if (strlen(k) == kl) { /* lisa_json_get takes a C string */
                int g = lisa_json_get(j, x->parent, k), c2;
                size_t gl;
                const char *gk = lisa_json_key(j, g, &gl);
                FUZZ_CHECK(g >= i && gk != NULL && gl == kl && memcmp(gk, k, kl) == 0 && j->nodes[g].parent == x->parent,
                           "node %d: lisa_json_get gives %d", i, g);
                for (c2 = lisa_json_next(j, g); c2 >= 0; c2 = lisa_json_next(j, c2)) {
                    const char *k2 = lisa_json_key(j, c2, &gl);
                    FUZZ_CHECK(!(gl == kl && memcmp(k2, k, kl) == 0), "node %d: lisa_json_get gives %d, %d comes later",
                               i, g, c2);
                }
            }
        } else {
            FUZZ_CHECK(k == NULL && kl == 0, "node %d: a key outside an object", i);
        }
        /* children */
        if (t == LISA_JSON_ARRAY || t == LISA_JSON_OBJECT) {
            FUZZ_CHECK(len == x->count && len == r->count, "node %d: length %d, count %d, reference %d", i, len,
                       x->count, r->count);
            FUZZ_CHECK(lisa_json_first(j, i) == (len > 0 ? i + 1 : -1), "node %d: first %d", i, lisa_json_first(j, i));
            idx = 0;
            for (c = lisa_json_first(j, i); c >= 0; c = lisa_json_next(j, c)) {
                FUZZ_CHECK(idx < len, "node %d: more children than its length %d", i, len);
                FUZZ_CHECK(c == last_end, "node %d: child %d at %d, expected %d", i, idx, c, last_end);
                FUZZ_CHECK(j->nodes[c].parent == i, "node %d: child %d has parent %d", i, c, j->nodes[c].parent);
                FUZZ_CHECK(lisa_json_at(j, i, idx) == c, "node %d: at(%d) %d, walk %d", i, idx, lisa_json_at(j, i, idx), c);
                last_end = j->nodes[c].end;
                idx++;
            }
            FUZZ_CHECK(idx == len, "node %d: walked %d children of %d", i, idx, len);
            FUZZ_CHECK(last_end == x->end, "node %d: children end at %d, the node at %d", i, last_end, x->end);
            FUZZ_CHECK(lisa_json_at(j, i, len) == -1 && lisa_json_at(j, i, -1) == -1, "node %d: at out of range", i);
        } else {
            FUZZ_CHECK(len == 0 && lisa_json_first(j, i) == -1 && lisa_json_at(j, i, 0) == -1,
                       "node %d: children for type %d", i, (int)t);
            FUZZ_CHECK(x->end == i + 1, "node %d: a leaf ending at %d", i, x->end);
        }
        if (t != LISA_JSON_OBJECT) FUZZ_CHECK(lisa_json_get(j, i, "") == -1, "node %d: get on a non-object", i);
    }
}

/* A failed parse: the code, "name: line L column C: ...", nothing left once freed. */
static void check_failure(lisa_result r, const lisa_error *err, const char *name, lisa_json *j) {
    unsigned long line = 0, col = 0;
    char prefix[64];
    FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "result %s", lisa_result_string(r));
    FUZZ_CHECK(err->code == r, "err.code %d, returned %d", (int)err->code, (int)r);
    FUZZ_CHECK(memchr(err->message, 0, sizeof err->message) != NULL, "error message not terminated");
    FUZZ_CHECK(r != LISA_ERR_NOMEM || fuzz_cnt.n_refused > 0, "NOMEM though nothing was refused: \"%s\"", err->message);
    snprintf(prefix, sizeof prefix, "%s: ", name);
    FUZZ_CHECK(strncmp(err->message, prefix, strlen(prefix)) == 0, "message does not start with the name: \"%s\"",
               err->message);
    if (r == LISA_ERR_FORMAT)
        FUZZ_CHECK(sscanf(err->message + strlen(prefix), "line %lu column %lu: ", &line, &col) == 2 && line >= 1 &&
                       col >= 1,
                   "message without line and column: \"%s\"", err->message);
    lisa_json_free(j);
    FUZZ_CHECK(j->nodes == NULL && j->strings == NULL && j->n_nodes == 0, "lisa_json_free left the tree");
    fuzz_check_nothing_live("after a failed parse");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.json";
    lisa_allocator a = fuzz_allocator();
    lisa_json j;
    lisa_error err;
    lisa_result r, r2;
    ref_json ref;
    int valid;
    long k, n_allocs;

    valid = ref_parse(&ref, data, size);
    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err);
    r = lisa_json_parse(&j, (const char *)data, size, name, &a, &err);
    if (r != LISA_OK) {
        FUZZ_CHECK(!valid || ref.unsure, "rejected valid JSON: \"%s\"", err.message);
        check_failure(r, &err, name, &j);
    } else {
        FUZZ_CHECK(valid || ref.unsure, "accepted invalid JSON (%d nodes)", j.n_nodes);
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with an error message");
        FUZZ_CHECK(j.bytes == fuzz_cnt.live_bytes, "json says %lu bytes, the allocator holds %lu",
                   (unsigned long)j.bytes, (unsigned long)fuzz_cnt.live_bytes);
        FUZZ_CHECK(j.bytes == (size_t)j.n_nodes * sizeof(lisa_json_node) + j.strings_size +
                                  j.index_slots * sizeof(int32_t),
                   "bytes %lu for %d nodes, %lu string bytes and %lu index slots", (unsigned long)j.bytes,
                   j.n_nodes, (unsigned long)j.strings_size, (unsigned long)j.index_slots);
        FUZZ_CHECK(j.bytes <= 32 * size + 64, "%lu bytes for %lu bytes of text", (unsigned long)j.bytes,
                   (unsigned long)size);
        if (valid) check_tree(&j, &ref);
        n_allocs = fuzz_cnt.n_ok;
        lisa_json_free(&j);
        FUZZ_CHECK(j.bytes == 0 && j.nodes == NULL && j.n_nodes == 0, "not cleared by lisa_json_free");
        fuzz_check_nothing_live("after lisa_json_free");
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = lisa_json_parse(&j, (const char *)data, size, name, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s", k, lisa_result_string(r2));
            check_failure(r2, &err, name, &j);
        }
    }
    free(ref.nodes);
    free(ref.buf);
    fuzz_alloc_reset(-1);
    r2 = lisa_json_parse(&j, (const char *)data, size, NULL, NULL, NULL);
    FUZZ_CHECK(r2 == r, "result %s without allocator/error, %s with", lisa_result_string(r2), lisa_result_string(r));
    lisa_json_free(&j);
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: small valid documents covering every construct, and near misses. */

static int write_checked(const char *dir, const char *file, const char *text, int valid) {
    lisa_json j;
    size_t n = strlen(text);
    lisa_result r = lisa_json_parse(&j, text, n, file, NULL, NULL);
    lisa_json_free(&j);
    if ((r == LISA_OK) != valid) {
        fprintf(stderr, "%s: expected %s, got %s\n", file, valid ? "valid JSON" : "an error", lisa_result_string(r));
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)text, n);
    return fuzz_write_seed(dir, file, text, n);
}

int main(int argc, char **argv) {
    static char deep[200];
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/json";
    int bad = 0, i;
    bad |= write_checked(dir, "config.json",
                         "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"hidden_size\": 32,\n"
                         "  \"rms_norm_eps\": 1e-05,\n  \"rope_scaling\": null,\n  \"tie_word_embeddings\": false,\n"
                         "  \"attention_bias\": true,\n  \"rope_theta\": 500.0\n}\n", 1);
    bad |= write_checked(dir, "safetensors_header.json",
                         "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                         "\"data_offsets\":[0,24]},\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[24,26]}}", 1);
    bad |= write_checked(dir, "sft_line.json", "{\"prompt\": \"Hi\\n\", \"response\": \"Hello \\u00e9\\ud83d\\ude00!\"}", 1);
    bad |= write_checked(dir, "numbers.json",
                         "[0, -0, 1, -1, 0.5, 1e22, 1E-22, 123456789012345678901234567890, 4.9e-324, 2.2250738585072014e-308,"
                         " 1.7976931348623157e308, -2.5e+3, 0.000001, 1e-400, 9007199254740993]", 1);
    bad |= write_checked(dir, "escapes.json", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u007f\\u0800\\uFFFF\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", 1);
    bad |= write_checked(dir, "literals.json", "\xef\xbb\xbf [true, false, null, {}, [], {\"\": {\"\": []}}, \"\"] ", 1);
    bad |= write_checked(dir, "dup_keys.json", "{\"a\": 1, \"b\": 2, \"a\": 3}", 1);
    for (i = 0; i < 64; i++) deep[i] = '[';
    for (i = 0; i < 64; i++) deep[64 + i] = ']';
    deep[128] = 0;
    bad |= write_checked(dir, "depth_64.json", deep, 1);
    /* near misses */
    for (i = 0; i < 65; i++) deep[i] = '[';
    for (i = 0; i < 65; i++) deep[65 + i] = ']';
    deep[130] = 0;
    bad |= write_checked(dir, "depth_65.json", deep, 0);
    bad |= write_checked(dir, "trailing_comma.json", "[1, 2,]", 0);
    bad |= write_checked(dir, "leading_zero.json", "[01]", 0);
    bad |= write_checked(dir, "lone_surrogate.json", "\"\\ud800\"", 0);
    bad |= write_checked(dir, "overlong_utf8.json", "\"\xc0\xaf\"", 0);
    bad |= write_checked(dir, "control_char.json", "\"a\tb\"", 0);
    bad |= write_checked(dir, "too_big.json", "1e309", 0);
    bad |= write_checked(dir, "two_values.json", "{} {}", 0);
    bad |= write_checked(dir, "unterminated.json", "{\"a\": [1, 2", 0);
    bad |= write_checked(dir, "bare_word.json", "nul", 0);
    return bad;
}
#endif
