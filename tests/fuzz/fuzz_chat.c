/* libFuzzer harness: conversation data (lisa_sft_for_each_chat,
   lisa_sft_load_chat_memory) and its rendering (lisa_chat_render,
   lisa_chat_encode) with the byte-level tokenizer.

   The input's first byte picks the template (one of NAMES, by byte % count),
   the second gives seq = 1 + byte % 128 (and its top bit pack); the rest is
   the text. The conversations are rebuilt here from lisa.h's documentation,
   independently of its code: the text is LMFlow when it parses as an object
   with "instances", or "type" and neither "prompt" nor "messages" ("type"
   "conversation": an array "instances" of
   objects with an optional string "system", absent/null/empty "tools" and an
   array "messages"; "type" "text2text": objects with string "input" and
   "output", each a user message and an answer), else JSON Lines (each line
   that is not blank an object; with "messages" and no "prompt" a
   conversation, else string "prompt" and "response"). A message is an object with a string "role" of
   system, user or assistant, a string "content" and absent/null/empty
   "tool_calls"; a conversation needs an answer. lisa_sft_for_each_chat must
   hand over exactly these conversations, or fail exactly when they are not
   valid. Each conversation is then rendered: the loss spans must lie in
   order inside the text, one per answer, each ending with the template's end
   of turn, and for the templates that do not strip white space (all but
   llama2, llama3, llama3.1) the rest of each span is the answer itself. Its
   tokens (lisa_chat_encode) must be the text's bytes with BOS and EOS where
   bos_token and eos_token were written, a token carrying loss exactly when
   it is in a span or is an EOS ending one. Loading the text must succeed
   unless some example was refused by the template or every example was
   skipped; rows must then hold ids below 258 and count their bytes, and each
   allocation made to fail in turn must give LISA_ERR_NOMEM cleanly. A
   failure must name the input and leave nothing allocated.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#define BOS 256
#define EOS 257
#define MAX_MSG 64

static const char *const NAMES[] = {"chatml", "llama2", "llama3", "zephyr", "mistral", "plain",
                                    "smollm2", "qwen2.5", "llama3.1", "mistral-v0.1"};
#define N_NAMES ((int)(sizeof NAMES / sizeof NAMES[0]))

typedef struct conv {
    lisa_chat_role role[MAX_MSG];
    const char *content[MAX_MSG];
    size_t len[MAX_MSG];
    int n;
} conv;

typedef struct ref {
    conv *c;
    int n, cap, too_big;
} ref;

static conv *ref_add(ref *r) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->c = (conv *)realloc(r->c, (size_t)r->cap * sizeof(conv));
        FUZZ_CHECK(r->c != NULL, "out of memory in the harness");
    }
    memset(&r->c[r->n], 0, sizeof(conv));
    return &r->c[r->n++];
}

static int str_is(const char *s, size_t len, const char *want) { return s && len == strlen(want) && memcmp(s, want, len) == 0; }

static const char *member(const lisa_json *j, int node, const char *key, size_t *len) {
    return lisa_json_string(j, lisa_json_get(j, node, key), len);
}

static int absent_or_empty(const lisa_json *j, int node) {
    lisa_json_type t = lisa_json_type_of(j, node);
    return t == LISA_JSON_NONE || t == LISA_JSON_NULL || (t == LISA_JSON_ARRAY && lisa_json_length(j, node) == 0);
}

static int ref_push(conv *c, lisa_chat_role role, const char *s, size_t len) {
    if (c->n == MAX_MSG) return 0;
    c->role[c->n] = role;
    c->content[c->n] = s;
    c->len[c->n++] = len;
    return 1;
}

/* The messages array of obj after system (NULL: none); 1 when valid. */
static int ref_conversation(ref *r, const lisa_json *j, int obj, const char *system, size_t system_len) {
    int msgs = lisa_json_get(j, obj, "messages"), k, answers = 0;
    conv *c;
    if (lisa_json_type_of(j, msgs) != LISA_JSON_ARRAY) return 0;
    c = ref_add(r);
    if (system && system_len > 0 && !ref_push(c, LISA_CHAT_SYSTEM, system, system_len)) r->too_big = 1;
    for (k = 0; k < lisa_json_length(j, msgs); k++) {
        int e = lisa_json_at(j, msgs, k);
        size_t rl, cl;
        const char *role = member(j, e, "role", &rl), *content = member(j, e, "content", &cl);
        lisa_chat_role ro;
        if (lisa_json_type_of(j, e) != LISA_JSON_OBJECT || !role) return 0;
        if (str_is(role, rl, "system")) ro = LISA_CHAT_SYSTEM;
        else if (str_is(role, rl, "user")) ro = LISA_CHAT_USER;
        else if (str_is(role, rl, "assistant")) ro = LISA_CHAT_ASSISTANT;
        else return 0;
        if (!absent_or_empty(j, lisa_json_get(j, e, "tool_calls")) || !content) return 0;
        if (!ref_push(c, ro, content, cl)) r->too_big = 1;
        answers += ro == LISA_CHAT_ASSISTANT;
    }
    return answers > 0;
}

static int ref_pair(ref *r, const char *p, size_t pl, const char *q, size_t ql) {
    conv *c;
    if (!p || !q) return 0;
    c = ref_add(r);
    ref_push(c, LISA_CHAT_USER, p, pl);
    ref_push(c, LISA_CHAT_ASSISTANT, q, ql);
    return 1;
}

/* The conversations of the text (json holds the parsed documents so their
   strings stay valid); returns 1 when the text is valid. */
static int ref_load(ref *r, lisa_json *docs, int *n_docs, int max_docs, const char *text, size_t len) {
    lisa_json *j = &docs[0];
    size_t at;
    int ok = 1;
    *n_docs = 0;
    if (lisa_json_parse(j, text, len, "ref", NULL, NULL) == LISA_OK) {
        int root = lisa_json_root(j), inst = lisa_json_get(j, root, "instances"), k;
        size_t tl;
        const char *type = member(j, root, "type", &tl);
        int example = lisa_json_get(j, root, "prompt") >= 0 || lisa_json_get(j, root, "messages") >= 0;
        if (inst >= 0 || (lisa_json_get(j, root, "type") >= 0 && !example)) {
            int chat = str_is(type, tl, "conversation");
            *n_docs = 1;
            if ((!chat && !str_is(type, tl, "text2text")) || lisa_json_type_of(j, inst) != LISA_JSON_ARRAY) return 0;
            for (k = 0; ok && k < lisa_json_length(j, inst); k++) {
                int e = lisa_json_at(j, inst, k), sys = lisa_json_get(j, e, "system");
                lisa_json_type st = lisa_json_type_of(j, sys);
                size_t sl = 0, il, ol;
                const char *s = lisa_json_string(j, sys, &sl);
                if (chat) {
                    ok = lisa_json_type_of(j, e) == LISA_JSON_OBJECT &&
                         (st == LISA_JSON_NONE || st == LISA_JSON_NULL || st == LISA_JSON_STRING) &&
                         absent_or_empty(j, lisa_json_get(j, e, "tools")) && ref_conversation(r, j, e, s, sl);
                } else {
                    const char *in = member(j, e, "input", &il), *out = member(j, e, "output", &ol);
                    ok = ref_pair(r, in, il, out, ol);
                }
            }
            return ok;
        }
    }
    lisa_json_free(j);
    for (at = 0; at < len && ok;) {
        size_t end = at, k;
        int blank = 1;
        while (end < len && text[end] != '\n') end++;
        for (k = at; k < end; k++)
            if (text[k] != ' ' && text[k] != '\t' && text[k] != '\r') blank = 0;
        if (!blank) {
            if (*n_docs == max_docs) {
                r->too_big = 1;
                return 0;
            }
            j = &docs[(*n_docs)++];
            if (lisa_json_parse(j, text + at, end - at, "ref", NULL, NULL) != LISA_OK) {
                ok = 0;
            } else {
                int root = lisa_json_root(j);
                size_t pl = 0, ql = 0;
                const char *p = member(j, root, "prompt", &pl), *q = member(j, root, "response", &ql);
                if (lisa_json_get(j, root, "messages") >= 0 && lisa_json_get(j, root, "prompt") < 0)
                    ok = ref_conversation(r, j, root, NULL, 0);
                else ok = ref_pair(r, p, pl, q, ql);
            }
        }
        at = end + 1;
    }
    return ok;
}

typedef struct seen {
    const ref *r;
    int n;
} seen;

static lisa_result check_conversation(void *user, const lisa_chat_message *m, int n, lisa_error *err) {
    seen *s = (seen *)user;
    const conv *c;
    int k;
    (void)err;
    FUZZ_CHECK(s->n < s->r->n, "more conversations than the text has (%d)", s->n + 1);
    c = &s->r->c[s->n++];
    FUZZ_CHECK(n == c->n, "conversation %d: %d messages, expected %d", s->n - 1, n, c->n);
    for (k = 0; k < n; k++)
        FUZZ_CHECK(m[k].role == c->role[k] && m[k].content_len == c->len[k] &&
                       memcmp(m[k].content, c->content[k], c->len[k]) == 0,
                   "conversation %d message %d differs", s->n - 1, k);
    return LISA_OK;
}

static int in_spans(const lisa_chat_text *c, size_t p) {
    int s;
    for (s = 0; s < c->n_loss; s++)
        if (p >= c->loss[s].begin && p < c->loss[s].end) return 1;
    return 0;
}

/* An EOS mark that closes a span (its text may be empty). */
static int ends_span(const lisa_chat_text *c, const lisa_chat_span *mk) {
    int s;
    for (s = 0; s < c->n_loss; s++)
        if (mk->end == c->loss[s].end && mk->begin >= c->loss[s].begin) return 1;
    return 0;
}

/* Renders and encodes one conversation; 0 when the template refuses it. */
static int check_render(const lisa_chat_template *t, const conv *cv, int gen) {
    lisa_chat_message m[MAX_MSG];
    lisa_allocator a = fuzz_allocator();
    lisa_tokenizer tok;
    lisa_chat_text c;
    lisa_chat_tokens ct;
    lisa_error err;
    lisa_result r;
    int k, s, answers = 0, strips = t->style == LISA_CHAT_LLAMA2 || t->style == LISA_CHAT_LLAMA3;
    const char *eot = t->end_of_turn ? t->end_of_turn : t->eos;
    size_t el = strlen(eot), i, n_tok = 0, ib = 0, ie = 0, pos;
    for (k = 0; k < cv->n; k++) {
        m[k].role = cv->role[k];
        m[k].content = cv->content[k];
        m[k].content_len = cv->len[k];
        answers += cv->role[k] == LISA_CHAT_ASSISTANT;
    }
    fuzz_alloc_reset(-1);
    r = lisa_chat_render(&c, t, m, cv->n, gen, NULL, NULL, &a, &err);
    if (r != LISA_OK) {
        FUZZ_CHECK(r == LISA_ERR_INVALID && strstr(err.message, t->name), "render: %s", err.message);
        fuzz_check_nothing_live("after a refused rendering");
        return 0;
    }
    FUZZ_CHECK(c.text[c.len] == 0 && c.bytes == fuzz_cnt.live_bytes, "text terminated, bytes counted");
    FUZZ_CHECK(c.n_loss == answers || (t->style == LISA_CHAT_LLAMA2 && answers == 0), "%d spans for %d answers",
               c.n_loss, answers);
    for (s = 0, k = 0; s < c.n_loss; s++) {
        const lisa_chat_span *sp = &c.loss[s];
        FUZZ_CHECK(sp->begin <= sp->end && sp->end <= c.len && (s == 0 || c.loss[s - 1].end <= sp->begin),
                   "span %d out of order", s);
        FUZZ_CHECK(sp->end - sp->begin >= el && memcmp(c.text + sp->end - el, eot, el) == 0, "span %d: no end of turn", s);
        while (m[k].role != LISA_CHAT_ASSISTANT) k++;
        if (!strips)
            FUZZ_CHECK(sp->end - sp->begin - el == m[k].content_len &&
                           memcmp(c.text + sp->begin, m[k].content, m[k].content_len) == 0,
                       "span %d is not answer %d", s, k);
        k++;
    }
    lisa_tokenizer_init_bytes(&tok);
    r = lisa_chat_encode(&ct, t, &tok, m, cv->n, gen, &a, &err);
    FUZZ_CHECK(r == LISA_OK, "encode after a rendering: %s", err.message);
    /* the text's bytes, with BOS and EOS for the marks (bytes tokenizer: no dummy prefix, no merges) */
    for (pos = 0;;) {
        const lisa_chat_span *mk = NULL;
        int is_eos = 0;
        if (ib < (size_t)c.n_bos && (ie >= (size_t)c.n_eos || c.bos[ib].begin <= c.eos[ie].begin)) {
            mk = &c.bos[ib++];
        } else if (ie < (size_t)c.n_eos) {
            mk = &c.eos[ie++];
            is_eos = 1;
        }
        for (i = pos; i < (mk ? mk->begin : c.len); i++, n_tok++)
            FUZZ_CHECK(n_tok < ct.n && ct.ids[n_tok] == (unsigned char)c.text[i] && ct.loss[n_tok] == in_spans(&c, i),
                       "token %lu: byte %lu", (unsigned long)n_tok, (unsigned long)i);
        if (!mk) break;
        FUZZ_CHECK(n_tok < ct.n && ct.ids[n_tok] == (is_eos ? EOS : BOS) &&
                       ct.loss[n_tok] == (in_spans(&c, mk->begin) || (is_eos && ends_span(&c, mk))),
                   "token %lu: a mark", (unsigned long)n_tok);
        n_tok++;
        pos = mk->end;
    }
    FUZZ_CHECK(n_tok == ct.n, "%lu tokens, expected %lu", (unsigned long)ct.n, (unsigned long)n_tok);
    lisa_chat_tokens_free(&ct);
    lisa_chat_text_free(&c);
    fuzz_check_nothing_live("after freeing a rendering");
    return 1;
}

static void check_rows(const lisa_sft_data *d) {
    size_t i, n = d->n_rows * (size_t)d->seq, counted = 0;
    FUZZ_CHECK(d->n_rows > 0 && d->inputs && d->targets, "rows");
    FUZZ_CHECK(d->bytes == 2 * n * sizeof(int) && d->bytes == fuzz_cnt.live_bytes, "bytes");
    for (i = 0; i < n; i++) {
        FUZZ_CHECK(d->inputs[i] >= 0 && d->inputs[i] < LISA_BYTES_VOCAB, "input %lu", (unsigned long)i);
        FUZZ_CHECK(d->targets[i] == LISA_IGNORE || (d->targets[i] >= 0 && d->targets[i] < LISA_BYTES_VOCAB), "target");
        counted += d->targets[i] != LISA_IGNORE;
    }
    FUZZ_CHECK(counted == d->n_counted, "n_counted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.jsonl";
    static lisa_json docs[64];
    lisa_allocator a = fuzz_allocator();
    const lisa_chat_template *t;
    lisa_tokenizer tok;
    lisa_sft_data d;
    lisa_error err;
    lisa_result r, r2;
    ref rf;
    seen sn;
    const char *text = (const char *)data + 2;
    size_t len;
    int valid, n_docs, k, seq, pack, refused = 0;
    long n_allocs, step, i;

    if (size < 2) return 0;
    t = lisa_chat_template_find(NAMES[data[0] % N_NAMES]);
    FUZZ_CHECK(t != NULL, "template %s", NAMES[data[0] % N_NAMES]);
    seq = 1 + (data[1] & 127);
    pack = data[1] >> 7;
    len = size - 2;
    memset(&rf, 0, sizeof rf);
    valid = ref_load(&rf, docs, &n_docs, 64, text, len);

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err);
    memset(&sn, 0, sizeof sn);
    sn.r = &rf;
    r = lisa_sft_for_each_chat(text, len, name, &a, check_conversation, &sn, &err);
    if (!rf.too_big) {
        if (r == LISA_OK) FUZZ_CHECK(valid && sn.n == rf.n, "accepted invalid data (%d of %d)", sn.n, rf.n);
        else FUZZ_CHECK(!valid || r == LISA_ERR_NOMEM, "rejected valid data: %s", err.message);
    }
    if (r != LISA_OK) fuzz_check_failure(r, &err, name);
    fuzz_check_nothing_live("after lisa_sft_for_each_chat");

    if (r == LISA_OK && !rf.too_big)
        for (k = 0; k < rf.n; k++) refused |= !check_render(t, &rf.c[k], data[1] & 1);

    lisa_tokenizer_init_bytes(&tok);
    fuzz_alloc_reset(-1);
    r2 = lisa_sft_load_chat_memory(&d, text, len, name, &tok, t, seq, pack, &a, &err);
    if (r2 != LISA_OK) {
        FUZZ_CHECK(r2 == LISA_ERR_FORMAT, "load: %s", err.message);
        FUZZ_CHECK(r != LISA_OK || rf.too_big || refused || strstr(err.message, "no usable examples"),
                   "load failed on data that renders: %s", err.message);
        fuzz_check_failure(r2, &err, name);
        FUZZ_CHECK(d.inputs == NULL, "failed load left rows");
    } else {
        FUZZ_CHECK(r == LISA_OK, "loaded what lisa_sft_for_each_chat refused");
        check_rows(&d);
        n_allocs = fuzz_cnt.n_ok;
        lisa_sft_free(&d);
        fuzz_check_nothing_live("after lisa_sft_free");
        step = n_allocs > 96 ? n_allocs / 96 + 1 : 1;
        for (i = 0; i < n_allocs; i += i < 32 || i >= n_allocs - 32 ? 1 : step) {
            fuzz_alloc_reset(i);
            r2 = lisa_sft_load_chat_memory(&d, text, len, name, &tok, t, seq, pack, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld of %ld refused: %s", i, n_allocs, lisa_result_string(r2));
            fuzz_check_failure(r2, &err, name);
        }
    }
    fuzz_alloc_reset(-1);
    for (k = 0; k < n_docs; k++) lisa_json_free(&docs[k]);
    free(rf.c);
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: both layouts under several templates, and near misses. */
static int write_seed(const char *dir, const char *file, int tmpl, int seq_byte, const char *text) {
    static uint8_t buf[8192];
    size_t n = strlen(text);
    if (n + 2 > sizeof buf) return 1;
    buf[0] = (uint8_t)tmpl;
    buf[1] = (uint8_t)seq_byte;
    memcpy(buf + 2, text, n);
    LLVMFuzzerTestOneInput(buf, n + 2);
    return fuzz_write_seed(dir, file, buf, n + 2);
}

int main(int argc, char **argv) {
    static const char jsonl[] =
        "{\"messages\": [{\"role\": \"system\", \"content\": \"  Be brief.  \"}, {\"role\": \"user\", \"content\": \"Hi\"},"
        " {\"role\": \"assistant\", \"content\": \" Hello! \"}, {\"role\": \"user\", \"content\": \"2+2?\"},"
        " {\"role\": \"assistant\", \"content\": \"4\"}]}\n"
        "\n"
        "{\"prompt\": \"p\", \"response\": \"r\"}\r\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"\\u00e9\\u4e16\"}, {\"role\": \"assistant\", \"content\": \"\"}]}\n";
    static const char lmflow[] =
        "{\"type\": \"conversation\", \"instances\": [{\"conversation_id\": \"a\", \"system\": \"S\", \"tools\": [],"
        " \"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]},"
        " {\"system\": null, \"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\","
        " \"content\": \"y\", \"tool_calls\": []}]}]}";
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/chat";
    int bad = 0, k;
    for (k = 0; k < N_NAMES; k++) {
        char file[64];
        snprintf(file, sizeof file, "jsonl_%s.bin", NAMES[k]);
        bad |= write_seed(dir, file, k, 127, jsonl);
        snprintf(file, sizeof file, "lmflow_%s_pack.bin", NAMES[k]);
        bad |= write_seed(dir, file, k, 128 + 40, lmflow);
    }
    bad |= write_seed(dir, "no_answer.bin", 0, 63, "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}");
    bad |= write_seed(dir, "bad_role.bin", 0, 63,
                      "{\"messages\": [{\"role\": \"tool\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}");
    bad |= write_seed(dir, "not_alternating.bin", 1, 63,
                      "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"user\", \"content\": \"a\"},"
                      " {\"role\": \"assistant\", \"content\": \"a\"}]}");
    bad |= write_seed(dir, "tools.bin", 0, 63,
                      "{\"type\": \"conversation\", \"instances\": [{\"tools\": [1], \"messages\": []}]}");
    bad |= write_seed(dir, "short_seq.bin", 2, 3, jsonl);
    return bad;
}
#endif
