/* Chat templates: renderings equal transformers' apply_chat_template (the
   fixtures of tools/make_chat_fixtures.py), recognition of the real Jinja
   texts, loss spans and masks with the bytes and a llama2.c tokenizer, ids
   and masks with real tokenizer.json files equal to transformers',
   conversation data (JSON Lines messages, LMFlow conversation) and its errors. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <string.h>

#define BOS LISA_BYTES_BOS
#define EOS LISA_BYTES_EOS

static char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = (char *)malloc((size_t)n + 1)) && fread(b, 1, (size_t)n, f) == (size_t)n) {
        b[n] = 0;
        *size = (size_t)n;
    } else {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static lisa_chat_message msg(lisa_chat_role role, const char *s) {
    lisa_chat_message m;
    m.role = role;
    m.content = s;
    m.content_len = strlen(s);
    return m;
}

/* A JSON array of {"role", "content"} into m (at most max). */
static int json_messages(const lisa_json *j, int arr, lisa_chat_message *m, int max) {
    int k, n = lisa_json_length(j, arr);
    for (k = 0; k < n && k < max; k++) {
        int e = lisa_json_at(j, arr, k);
        const char *role = lisa_json_string(j, lisa_json_get(j, e, "role"), NULL);
        m[k].role = strcmp(role, "system") == 0 ? LISA_CHAT_SYSTEM : strcmp(role, "user") == 0 ? LISA_CHAT_USER
                                                                                               : LISA_CHAT_ASSISTANT;
        m[k].content = lisa_json_string(j, lisa_json_get(j, e, "content"), &m[k].content_len);
    }
    return n;
}

typedef struct known {
    char name[32], bos[32], eos[32];
} known;

static known g_known[16];
static int g_n_known;

static const known *known_find(const char *name) {
    int i;
    for (i = 0; i < g_n_known; i++)
        if (strcmp(g_known[i].name, name) == 0) return &g_known[i];
    return NULL;
}

/* templates.jsonl: every real Jinja text is recognised as its template; a
   changed one is refused, naming the choices. */
static void test_recognition(void) {
    size_t size, at = 0;
    char *text = read_all("tests/fixtures/chat/templates.jsonl", &size);
    int lines = 0;
    CHECK(text != NULL, "read tests/fixtures/chat/templates.jsonl");
    if (!text) return;
    while (at < size) {
        size_t end = at, jl;
        lisa_json j;
        lisa_error e;
        const lisa_chat_template *t = NULL;
        const char *name, *jinja;
        while (end < size && text[end] != '\n') end++;
        if (end > at && lisa_json_parse(&j, text + at, end - at, "templates.jsonl", NULL, &e) == LISA_OK) {
            int root = lisa_json_root(&j);
            char *copy;
            name = lisa_json_string(&j, lisa_json_get(&j, root, "template"), NULL);
            jinja = lisa_json_string(&j, lisa_json_get(&j, root, "jinja"), &jl);
            CHECK(lisa_chat_template_recognize(&t, jinja, jl, "tokenizer_config.json", &e) == LISA_OK && t &&
                      strcmp(t->name, name) == 0,
                  "%s's real template is recognised (got %s: %s)", name, t ? t->name : "none", e.message);
            CHECK(lisa_chat_template_find(name) == t, "lisa_chat_template_find(\"%s\") gives the same template", name);
            if (g_n_known < 16) {
                known *k = &g_known[g_n_known++];
                snprintf(k->name, sizeof k->name, "%s", name);
                snprintf(k->bos, sizeof k->bos, "%s", lisa_json_string(&j, lisa_json_get(&j, root, "bos"), NULL));
                snprintf(k->eos, sizeof k->eos, "%s", lisa_json_string(&j, lisa_json_get(&j, root, "eos"), NULL));
            }
            copy = (char *)malloc(jl + 8);
            /* a changed character: refused */
            memcpy(copy, jinja, jl);
            copy[jl / 2] = copy[jl / 2] == 'x' ? 'y' : 'x';
            CHECK(lisa_chat_template_recognize(&t, copy, jl, "tokenizer_config.json", &e) == LISA_ERR_FORMAT && !t &&
                      strstr(e.message, "tokenizer_config.json") && strstr(e.message, lisa_chat_template_names()),
                  "a changed %s template is refused naming the choices: %s", name, e.message);
            /* white space around it (a chat_template.jinja file's last newline): the same template */
            copy[0] = '\n';
            memcpy(copy + 1, jinja, jl);
            copy[jl + 1] = ' ';
            copy[jl + 2] = '\n';
            CHECK(lisa_chat_template_recognize(&t, copy, jl + 3, "chat_template.jinja", &e) == LISA_OK && t &&
                      strcmp(t->name, name) == 0, "%s with white space around it", name);
            copy[0] = 'x';
            CHECK(lisa_chat_template_recognize(&t, copy, jl + 3, "chat_template.jinja", &e) == LISA_ERR_FORMAT,
                  "%s with a byte in front is not it", name);
            free(copy);
            lines++;
        }
        lisa_json_free(&j);
        at = end + 1;
    }
    CHECK(lines == 10, "10 real templates, read %d", lines);
    free(text);
}

/* CRLF line ends (a Windows-edited chat_template.jinja) read as LF. */
static void test_recognition_crlf(void) {
    const lisa_chat_template *t = lisa_chat_template_find("llama3.1"), *got = NULL;
    size_t size = 0, i, n = 0;
    char *text = NULL;
    lisa_error e;
    const char *const *p;
    for (i = 0; i < 2; i++) {
        for (p = lisa__jinja_llama31, n = 0; *p; p++) {
            const char *c;
            for (c = *p; *c; c++) {
                if (*c == '\n') {
                    if (text) text[n] = '\r';
                    n++;
                }
                if (text) text[n] = *c;
                n++;
            }
        }
        if (!text) text = (char *)malloc(size = n);
    }
    CHECK(lisa_chat_template_recognize(&got, text, n, "crlf", &e) == LISA_OK && got == t, "CRLF: %s", e.message);
    CHECK(lisa_chat_template_recognize(&got, NULL, 0, "none.json", &e) == LISA_ERR_FORMAT &&
              strstr(e.message, "none.json") && strstr(e.message, "chatml"),
          "no template text: an error naming the choices: %s", e.message);
    CHECK(lisa_chat_template_find("nonesuch") == NULL && lisa_chat_template_find(NULL) == NULL, "unknown names");
    free(text);
    (void)size;
}

/* renderings.jsonl: every rendering equals transformers' byte for byte, and
   the loss spans are each answer and its end of turn. */
static void test_renderings(void) {
    size_t size, at = 0;
    char *text = read_all("tests/fixtures/chat/renderings.jsonl", &size);
    int lines = 0, equal = 0, errors = 0;
    CHECK(text != NULL, "read tests/fixtures/chat/renderings.jsonl");
    if (!text) return;
    while (at < size) {
        size_t end = at;
        lisa_json j;
        lisa_error e;
        while (end < size && text[end] != '\n') end++;
        if (end > at && lisa_json_parse(&j, text + at, end - at, "renderings.jsonl", NULL, &e) == LISA_OK) {
            int root = lisa_json_root(&j), n, gen, k, answers = 0, ok;
            const char *name = lisa_json_string(&j, lisa_json_get(&j, root, "template"), NULL);
            const lisa_chat_template *t = lisa_chat_template_find(name);
            const known *kn = known_find(name);
            lisa_chat_message m[16];
            lisa_chat_text c;
            size_t want_len;
            const char *want = lisa_json_string(&j, lisa_json_get(&j, root, "text"), &want_len);
            lisa_result r;
            n = json_messages(&j, lisa_json_get(&j, root, "messages"), m, 16);
            gen = lisa_json_type_of(&j, lisa_json_get(&j, root, "add_generation_prompt")) == LISA_JSON_TRUE;
            lines++;
            if (!t || !kn) {
                CHECK(0, "template %s", name);
            } else {
                r = lisa_chat_render(&c, t, m, n, gen, kn->bos, kn->eos, NULL, &e);
                if (!want) {
                    errors++;
                    CHECK(r == LISA_ERR_INVALID && strstr(e.message, name),
                          "line %d: %s refuses what transformers' template raises on (got %d)", lines, name, (int)r);
                } else {
                    ok = r == LISA_OK && c.len == want_len && memcmp(c.text, want, want_len) == 0;
                    equal += ok;
                    CHECK(ok, "line %d: %s renders as transformers (gen %d): got \"%s\" (%s)", lines, name, gen,
                          r == LISA_OK ? c.text : "", r == LISA_OK ? "" : e.message);
                    for (k = 0; k < n; k++) answers += m[k].role == LISA_CHAT_ASSISTANT;
                    if (r == LISA_OK) {
                        int s, spans_ok = c.n_loss == answers;
                        for (s = 0, k = 0; spans_ok && s < c.n_loss; s++) {
                            const lisa_chat_span *sp = &c.loss[s];
                            const char *eot = t->end_of_turn ? t->end_of_turn : kn->eos;
                            size_t el = strlen(eot);
                            while (m[k].role != LISA_CHAT_ASSISTANT) k++;
                            /* the answer (stripped where the template strips), then the end of turn */
                            spans_ok = sp->end - sp->begin >= el && memcmp(c.text + sp->end - el, eot, el) == 0 &&
                                       sp->end - sp->begin - el <= m[k].content_len + 1;
                            if (spans_ok && m[k].content_len > 0 && sp->end - sp->begin > el)
                                spans_ok = memchr(m[k].content, (unsigned char)c.text[sp->begin], m[k].content_len) != NULL;
                            k++;
                        }
                        CHECK(spans_ok, "line %d: %s: one loss span per answer, each ending with the end of turn",
                              lines, name);
                        lisa_chat_text_free(&c);
                        CHECK(c.bytes == 0, "the rendering frees what it took");
                    }
                }
            }
        }
        lisa_json_free(&j);
        at = end + 1;
    }
    CHECK(lines == 260 && equal + errors == lines && errors == 32, "%d renderings: %d equal, %d refused", lines, equal,
          errors);
    free(text);
}

/* Exact spans on a known rendering. */
static void test_spans(void) {
    lisa_chat_message m[4];
    lisa_chat_text c;
    lisa_error e;
    m[0] = msg(LISA_CHAT_USER, "Hi");
    m[1] = msg(LISA_CHAT_ASSISTANT, "  Hello  ");
    m[2] = msg(LISA_CHAT_USER, "Bye");
    m[3] = msg(LISA_CHAT_ASSISTANT, "Ciao");
    CHECK(lisa_chat_render(&c, lisa_chat_template_find("chatml"), m, 4, 0, NULL, NULL, NULL, &e) == LISA_OK, "%s",
          e.message);
    CHECK(c.n_loss == 2 && c.loss[0].end - c.loss[0].begin == 19 &&
              memcmp(c.text + c.loss[0].begin, "  Hello  <|im_end|>", 19) == 0 &&
              memcmp(c.text + c.loss[1].begin, "Ciao<|im_end|>", 14) == 0 && c.loss[1].end == c.len - 1,
          "chatml: each answer and its <|im_end|>, not the newline after it");
    lisa_chat_text_free(&c);
    CHECK(lisa_chat_render(&c, lisa_chat_template_find("llama2"), m, 4, 1, NULL, NULL, NULL, &e) == LISA_OK, "%s",
          e.message);
    CHECK(c.n_loss == 2 && c.n_bos == 2 && c.n_eos == 2 &&
              memcmp(c.text + c.loss[0].begin, "Hello </s>", 10) == 0 && c.loss[0].end - c.loss[0].begin == 10 &&
              c.eos[0].end == c.loss[0].end && c.bos[1].begin == c.loss[0].end,
          "llama2: the stripped answer, the space and </s>; BOS before each [INST]");
    lisa_chat_text_free(&c);
    CHECK(lisa_chat_render(&c, lisa_chat_template_find("plain"), m, 2, 0, "<B>", "<E>", NULL, &e) == LISA_OK &&
              strcmp(c.text, "<B>Hi  Hello  <E>") == 0 && c.n_loss == 1 && c.loss[0].begin == 5 && c.loss[0].end == c.len,
          "plain: BOS PROMPT RESPONSE EOS, loss on RESPONSE EOS");
    lisa_chat_text_free(&c);
    CHECK(lisa_chat_render(&c, lisa_chat_template_find("chatml"), m, 0, 0, NULL, NULL, NULL, &e) == LISA_ERR_INVALID,
          "an empty conversation is refused");
    m[1].role = (lisa_chat_role)7;
    CHECK(lisa_chat_render(&c, lisa_chat_template_find("chatml"), m, 2, 0, NULL, NULL, NULL, &e) == LISA_ERR_INVALID,
          "a role outside the enum is refused");
}

/* Tokens whose bytes are in a loss span carry loss, with the bytes tokenizer:
   exactly the answers' bytes and end-of-turn bytes; BOS / EOS written by the
   template become ids 256 / 257. */
static void test_encode_bytes(void) {
    lisa_tokenizer tok;
    lisa_chat_message m[3];
    lisa_chat_tokens ct;
    lisa_chat_text c;
    lisa_error e;
    size_t i, n_loss = 0;
    int mask_ok = 1;
    lisa_tokenizer_init_bytes(&tok);
    m[0] = msg(LISA_CHAT_SYSTEM, "S");
    m[1] = msg(LISA_CHAT_USER, "q");
    m[2] = msg(LISA_CHAT_ASSISTANT, "ans");
    CHECK(lisa_chat_encode(&ct, lisa_chat_template_find("chatml"), &tok, m, 3, 0, NULL, &e) == LISA_OK, "%s", e.message);
    lisa_chat_render(&c, lisa_chat_template_find("chatml"), m, 3, 0, NULL, NULL, NULL, &e);
    CHECK(ct.n == c.len, "bytes: one token per byte (%lu, %lu)", (unsigned long)ct.n, (unsigned long)c.len);
    for (i = 0; i < ct.n && i < c.len; i++) {
        int in = i >= c.loss[0].begin && i < c.loss[0].end;
        mask_ok &= ct.ids[i] == (unsigned char)c.text[i] && ct.loss[i] == in;
        n_loss += ct.loss[i];
    }
    CHECK(mask_ok && n_loss == strlen("ans<|im_end|>"), "chatml: loss on \"ans<|im_end|>\" exactly (%lu)",
          (unsigned long)n_loss);
    CHECK(lisa_chat_end_of_turn_id(lisa_chat_template_find("chatml"), &tok) == -1,
          "no single end-of-turn token for chatml with the bytes tokenizer");
    lisa_chat_text_free(&c);
    lisa_chat_tokens_free(&ct);
    CHECK(ct.bytes == 0, "tokens freed");

    CHECK(lisa_chat_encode(&ct, lisa_chat_template_find("llama2"), &tok, m, 3, 0, NULL, &e) == LISA_OK, "%s", e.message);
    /* <s>[INST] <<SYS>>\nS\n<</SYS>>\n\nq [/INST] ans </s> */
    CHECK(ct.n > 5 && ct.ids[0] == BOS && ct.ids[ct.n - 1] == EOS && ct.loss[ct.n - 1] && !ct.loss[0],
          "llama2: bos_token and eos_token are ids BOS and EOS");
    CHECK(ct.n > 5 && ct.loss[ct.n - 2] && ct.ids[ct.n - 2] == ' ' && ct.loss[ct.n - 5] && ct.ids[ct.n - 5] == 'a' &&
              !ct.loss[ct.n - 6],
          "llama2: loss on \"ans </s>\", not the space before");
    CHECK(lisa_chat_end_of_turn_id(lisa_chat_template_find("llama2"), &tok) == EOS, "llama2 ends a turn with EOS");
    lisa_chat_tokens_free(&ct);
    m[2] = msg(LISA_CHAT_ASSISTANT, "a");
    CHECK(lisa_chat_encode(&ct, lisa_chat_template_find("plain"), &tok, m + 1, 2, 0, NULL, &e) == LISA_OK && ct.n == 4 &&
              ct.ids[0] == BOS && ct.ids[1] == 'q' && ct.ids[2] == 'a' && ct.ids[3] == EOS && !ct.loss[0] &&
              !ct.loss[1] && ct.loss[2] && ct.loss[3],
          "plain with the bytes tokenizer: BOS q a EOS, loss on a EOS");
    lisa_chat_tokens_free(&ct);
    CHECK(lisa_chat_encode(&ct, lisa_chat_template_find("plain"), &tok, m + 1, 1, 1, NULL, &e) == LISA_OK && ct.n == 2 &&
              ct.ids[0] == BOS && ct.ids[1] == 'q',
          "plain: one user message with the generation prompt is BOS and the prompt");
    lisa_chat_tokens_free(&ct);
}

/* A llama2.c vocabulary: unk, "\n<s>\n", "\n</s>\n", the 256 byte pieces,
   then pieces for some characters and merges. */
static size_t build_llama2c(unsigned char *b, size_t cap) {
    static const char *const extra[] = {" ", "a", "n", "s", "q", "I", "[", "]", "N", "T", "/", "an", "ans", " ans", " q",
                                        "[I", "[IN", "[INS", "[INST", "[INST]", " [", " [/", " [/INST]", "<", ">", "S",
                                        "<<", "\n", NULL};
    size_t n = 0;
    int i, k;
    int32_t v = 16;
    memcpy(b, &v, 4);
    n = 4;
    for (i = 0; i < 3 + 256 || extra[i - 259]; i++) {
        char piece[16];
        float score = i < 259 ? 0.0f : (float)strlen(extra[i - 259]);
        int32_t len;
        if (i == 0) strcpy(piece, "<unk>");
        else if (i == 1) strcpy(piece, "\n<s>\n");
        else if (i == 2) strcpy(piece, "\n</s>\n");
        else if (i < 259) snprintf(piece, sizeof piece, "<0x%02X>", i - 3);
        else strcpy(piece, extra[i - 259]);
        len = (int32_t)strlen(piece);
        if (n + 8 + (size_t)len > cap) return 0;
        memcpy(b + n, &score, 4);
        memcpy(b + n + 4, &len, 4);
        memcpy(b + n + 8, piece, (size_t)len);
        n += 8 + (size_t)len;
        k = i;
        (void)k;
    }
    return n;
}

/* With a llama2.c tokenizer the text is encoded between BOS and EOS; a token
   carries loss when it covers a byte of an answer or the end of turn (the
   merged " ans" does, though its space is the template's). */
static void test_encode_llama2c(void) {
    static unsigned char bin[8192];
    size_t size = build_llama2c(bin, sizeof bin), i, n_loss = 0;
    lisa_tokenizer tok;
    lisa_chat_message m[2];
    lisa_chat_tokens ct;
    lisa_error e;
    char dec[256];
    size_t dl = 0, at = 0;
    int loss_run_ok = 1;
    CHECK(size > 0 && lisa_tokenizer_load_llama2c_memory(&tok, bin, size, 0, "vocab", NULL, &e) == LISA_OK, "%s",
          e.message);
    m[0] = msg(LISA_CHAT_USER, "q");
    m[1] = msg(LISA_CHAT_ASSISTANT, "ans");
    CHECK(lisa_chat_encode(&ct, lisa_chat_template_find("llama2"), &tok, m, 2, 0, NULL, &e) == LISA_OK, "%s", e.message);
    /* <s> | " [INST] q [/INST] ans " (dummy prefix) | </s> */
    CHECK(ct.n > 4 && ct.ids[0] == tok.bos_id && ct.ids[ct.n - 1] == tok.eos_id, "BOS first, EOS last");
    for (i = 0; i < ct.n; i++) {
        n_loss += ct.loss[i];
        if (i > 0 && ct.loss[i - 1] && !ct.loss[i]) loss_run_ok = 0;
    }
    for (i = 0; i < ct.n; i++)
        if (ct.loss[i] && ct.ids[i] != tok.eos_id) {
            size_t pl;
            const char *p = lisa_tokenizer_piece(&tok, -1, ct.ids[i], &pl);
            if (at + pl < sizeof dec) memcpy(dec + at, p, pl);
            at += pl;
        }
    dl = at;
    CHECK(loss_run_ok && ct.loss[ct.n - 1] && dl == 5 && memcmp(dec, " ans ", 5) == 0,
          "loss on \" ans\", \" \" and EOS (%lu tokens, \"%.*s\")", (unsigned long)n_loss, (int)(dl < 256 ? dl : 0), dec);
    CHECK(lisa_chat_end_of_turn_id(lisa_chat_template_find("llama2"), &tok) == tok.eos_id &&
              lisa_chat_end_of_turn_id(lisa_chat_template_find("chatml"), &tok) == -1,
          "end of turn: EOS for llama2, none for chatml");
    lisa_chat_tokens_free(&ct);
    lisa_tokenizer_free(&tok);
}

/* Conversation data: both layouts give the same rows; pairs under a template
   are one-turn conversations. */
static void test_conversation_data(void) {
    const char *jl = "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"q\"},"
                     " {\"role\": \"assistant\", \"content\": \"a\"}]}\n"
                     "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": \"y\"}]}\n";
    const char *lm = "{\"type\": \"conversation\", \"instances\": ["
                     "{\"conversation_id\": 1, \"system\": \"S\", \"tools\": [], \"messages\": [{\"role\": \"user\", "
                     "\"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]},"
                     "{\"system\": \"\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\","
                     " \"content\": \"y\"}]}]}";
    const char *pairs = "{\"prompt\": \"q\", \"response\": \"a\"}\n{\"prompt\": \"x\", \"response\": \"y\"}\n";
    lisa_tokenizer tok;
    lisa_sft_data a, b, c, d;
    lisa_error e;
    const lisa_chat_template *zephyr = lisa_chat_template_find("zephyr"), *plain = lisa_chat_template_find("plain");
    size_t i, n_counted = 0;
    lisa_tokenizer_init_bytes(&tok);
    CHECK(lisa_sft_load_chat_memory(&a, jl, strlen(jl), "c.jsonl", &tok, zephyr, 64, 0, NULL, &e) == LISA_OK,
          "messages: %s", e.message);
    CHECK(lisa_sft_load_chat_memory(&b, lm, strlen(lm), "c.json", &tok, zephyr, 64, 0, NULL, &e) == LISA_OK,
          "LMFlow conversation: %s", e.message);
    CHECK(a.n_rows == 2 && b.n_rows == 2 && memcmp(a.inputs, b.inputs, 2 * 2 * 64 * sizeof(int)) == 0,
          "LMFlow conversations give the rows of JSON Lines messages");
    /* row 0: "<|system|>\nS" EOS "\n<|user|>\nq" EOS "\n<|assistant|>\na" EOS "\n": loss targets a, EOS */
    for (i = 0; i < 64; i++) n_counted += a.targets[i] != LISA_IGNORE;
    CHECK(n_counted == 2 && a.inputs[12] == EOS && a.inputs[40] == 'a' && a.targets[39] == 'a' && a.targets[40] == EOS,
          "zephyr row: the targets a and EOS carry loss, nothing else (%lu)", (unsigned long)n_counted);
    CHECK(lisa_sft_load_chat_memory(&c, pairs, strlen(pairs), "p.jsonl", &tok, plain, 8, 0, NULL, &e) == LISA_OK &&
              lisa_sft_load_memory(&d, pairs, strlen(pairs), "p.jsonl", &tok, 8, 0, NULL, &e) == LISA_OK,
          "pairs: %s", e.message);
    CHECK(c.n_rows == d.n_rows && memcmp(c.inputs, d.inputs, 2 * c.n_rows * 8 * sizeof(int)) == 0 &&
              c.n_counted == d.n_counted,
          "pairs under plain are today's prompt/response rows (bytes tokenizer)");
    lisa_sft_free(&a);
    lisa_sft_free(&b);
    lisa_sft_free(&c);
    lisa_sft_free(&d);
    CHECK(lisa_sft_load_chat_memory(&c, pairs, strlen(pairs), "p.jsonl", &tok, zephyr, 64, 1, NULL, &e) == LISA_OK &&
              c.n_examples == 2 && c.n_counted == 4,
          "pairs under zephyr: one-turn conversations, loss on each answer and EOS");
    lisa_sft_free(&c);
}

typedef struct counter {
    int n, users;
} counter;

static lisa_result count_chat(void *user, const lisa_chat_message *m, int n, lisa_error *err) {
    counter *c = (counter *)user;
    (void)err;
    c->n++;
    c->users += n == 2 && m[0].role == LISA_CHAT_USER && m[1].role == LISA_CHAT_ASSISTANT;
    return LISA_OK;
}

static void test_for_each_chat(void) {
    const char *pairs = "{\"prompt\": \"q\", \"response\": \"a\"}\n{\"prompt\": \"x\", \"response\": \"y\"}\n";
    counter c = {0, 0};
    lisa_error e;
    CHECK(lisa_sft_for_each_chat(pairs, strlen(pairs), "p.jsonl", NULL, count_chat, &c, &e) == LISA_OK && c.n == 2 &&
              c.users == 2,
          "lisa_sft_for_each_chat hands pairs over as user + assistant");
}

static void expect_error(const char *text, const char *tmpl, const char *want) {
    lisa_tokenizer tok;
    lisa_sft_data d;
    lisa_error err;
    lisa_result r;
    lisa_tokenizer_init_bytes(&tok);
    r = lisa_sft_load_chat_memory(&d, text, strlen(text), "bad.jsonl", &tok, tmpl ? lisa_chat_template_find(tmpl) : NULL,
                                  64, 0, NULL, &err);
    CHECK(r == LISA_ERR_FORMAT && strstr(err.message, "bad.jsonl") && strstr(err.message, want),
          "'%s' fails with '%s' (got %d: %s)", text, want, (int)r, r ? err.message : "ok");
    if (r == LISA_OK) lisa_sft_free(&d);
}

#define U "{\"role\": \"user\", \"content\": \"q\"}"
#define A "{\"role\": \"assistant\", \"content\": \"a\"}"

static void test_errors(void) {
    expect_error("{\"messages\": [" U ", " A "]}", NULL, "line 1: a conversation: conversations need a chat template (--chat-template");
    expect_error("{\"type\": \"conversation\", \"instances\": [{\"messages\": [" U ", " A "]}]}", NULL, "instance 0: a conversation");
    expect_error("{\"prompt\": \"p\", \"response\": \"r\"}\n{\"messages\": [" U ", {\"role\": \"assistant\"}]}", "chatml",
                 "line 2: message 1: expected a string \"content\"");
    expect_error("{\"messages\": [" U ", {\"role\": \"tool\", \"content\": \"x\"}, " A "]}", "chatml",
                 "line 1: message 1: role \"tool\" is not supported");
    expect_error("{\"messages\": [" U "]}", "chatml", "line 1: no assistant message");
    expect_error("{\"messages\": []}", "chatml", "line 1: no assistant message");
    expect_error("{\"messages\": {\"role\": \"user\"}}", "chatml", "line 1: expected \"messages\": an array");
    expect_error("{\"messages\": [" U ", {\"role\": 3, \"content\": \"a\"}]}", "chatml", "message 1: expected a string \"role\"");
    expect_error("{\"messages\": [" U ", {\"role\": \"assistant\", \"content\": 7}]}", "chatml", "message 1: expected a string \"content\"");
    expect_error("{\"messages\": [" U ", \"a\"]}", "chatml", "message 1: expected an object");
    expect_error("{\"messages\": [" U ", {\"role\": \"assistant\", \"content\": \"a\", \"tool_calls\": [{}]}]}", "chatml",
                 "message 1: tool calls are not supported");
    expect_error("{\"messages\": [" U ", " U ", " A "]}", "llama2", "line 1: llama2: message 1: user and assistant messages must alternate");
    expect_error("{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, " U ", " A "]}", "mistral", "line 1: mistral: message 0: a system message");
    expect_error("{\"type\": \"conversation\", \"instances\": [{\"tools\": [\"t\"], \"messages\": [" U ", " A "]}]}", "chatml",
                 "instance 0: \"tools\" are not supported");
    expect_error("{\"type\": \"conversation\", \"instances\": [{\"system\": 1, \"messages\": [" U ", " A "]}]}", "chatml",
                 "instance 0: expected \"system\" to be a string");
    expect_error("{\"type\": \"conversation\", \"instances\": [\"x\"]}", "chatml", "instance 0: expected an object");
    expect_error("{\"type\": \"chat\", \"instances\": []}", "chatml", "\"conversation\"");
}

/* Every allocation failing in turn is a clean LISA_ERR_NOMEM with nothing left. */
typedef struct failing {
    long long live;
    int left;
} failing;

static void *f_alloc(void *u, size_t n) {
    failing *f = (failing *)u;
    void *p;
    if (f->left-- <= 0) return NULL;
    p = malloc(n);
    if (p) f->live += (long long)n;
    return p;
}

static void f_free(void *u, void *p, size_t n) {
    ((failing *)u)->live -= (long long)n;
    free(p);
}

static void test_allocation_failures(void) {
    const char *text = "{\"type\": \"conversation\", \"instances\": [{\"system\": \"S\", \"messages\": [" U ", " A "]}]}";
    lisa_tokenizer tok;
    int k, clean = 1, succeeded = 0;
    lisa_tokenizer_init_bytes(&tok);
    for (k = 0; k < 200 && !succeeded; k++) {
        failing f = {0, 0};
        lisa_allocator a;
        lisa_sft_data d;
        lisa_result r;
        f.left = k;
        a.alloc = f_alloc;
        a.free = f_free;
        a.user = &f;
        r = lisa_sft_load_chat_memory(&d, text, strlen(text), "a.json", &tok, lisa_chat_template_find("llama3"), 512, 0,
                                      &a, NULL);
        if (r == LISA_OK) {
            succeeded = 1;
            CHECK(d.bytes == (size_t)f.live, "the data counts its bytes");
            lisa_sft_free(&d);
        } else if (r != LISA_ERR_NOMEM) {
            clean = 0;
        }
        if (f.live != 0) clean = 0;
    }
    CHECK(succeeded && clean && k > 5, "every allocation failure is LISA_ERR_NOMEM and leaks nothing (%d)", k);
}

/* tools/make_chat_fixtures.py's bpe_encodings.jsonl: conversations rendered
   and tokenized by transformers with real tokenizer.json files give the same
   ids through lisa_chat_encode, and the loss mask computed there from the
   tokenizer's offsets (each answer's content up to and including the end of
   turn after it). */
static int json_int_array(const lisa_json *j, int arr, int *out, int cap) {
    int k, n = lisa_json_length(j, arr);
    if (lisa_json_type_of(j, arr) != LISA_JSON_ARRAY || n > cap) return -1;
    for (k = 0; k < n; k++) out[k] = (int)lisa_json_number(j, lisa_json_at(j, arr, k));
    return n;
}

static void test_encode_bpe(void) {
    static int want_ids[4096], want_loss[4096];
    size_t size, at = 0;
    char *text = read_all("tests/fixtures/chat/bpe_encodings.jsonl", &size), loaded[64] = "";
    int lines = 0, same_ids = 0, same_loss = 0, have_tok = 0;
    lisa_tokenizer tok;
    CHECK(text != NULL, "read tests/fixtures/chat/bpe_encodings.jsonl");
    if (!text) return;
    while (at < size) {
        size_t end = at;
        lisa_json j;
        lisa_error e;
        while (end < size && text[end] != '\n') end++;
        if (end > at && lisa_json_parse(&j, text + at, end - at, "bpe_encodings.jsonl", NULL, &e) == LISA_OK) {
            int root = lisa_json_root(&j), n, gen, nw, nl, k, runs_end_ok = 1;
            const char *dir = lisa_json_string(&j, lisa_json_get(&j, root, "tokenizer"), NULL);
            const char *name = lisa_json_string(&j, lisa_json_get(&j, root, "template"), NULL);
            const lisa_chat_template *t = lisa_chat_template_find(name);
            lisa_chat_message m[16];
            lisa_chat_tokens ct;
            lisa_result r;
            lines++;
            if (strcmp(loaded, dir) != 0) {
                char path[256];
                if (have_tok) lisa_tokenizer_free(&tok);
                snprintf(path, sizeof path, "tests/fixtures/tokenizers/%s", dir);
                have_tok = lisa_tokenizer_load_hf(&tok, path, NULL, &e) == LISA_OK;
                CHECK(have_tok, "load %s: %s", path, e.message);
                snprintf(loaded, sizeof loaded, "%s", have_tok ? dir : "");
            }
            n = json_messages(&j, lisa_json_get(&j, root, "messages"), m, 16);
            gen = lisa_json_type_of(&j, lisa_json_get(&j, root, "add_generation_prompt")) == LISA_JSON_TRUE;
            nw = json_int_array(&j, lisa_json_get(&j, root, "ids"), want_ids, 4096);
            nl = json_int_array(&j, lisa_json_get(&j, root, "loss"), want_loss, 4096);
            CHECK(t != NULL && nw > 0 && nl == nw, "line %d: template %s, %d ids, %d mask entries", lines, name, nw, nl);
            if (!t || !have_tok || nw <= 0 || nl != nw) {
                lisa_json_free(&j);
                at = end + 1;
                continue;
            }
            {
                size_t want_len;
                const char *want = lisa_json_string(&j, lisa_json_get(&j, root, "text"), &want_len);
                lisa_chat_text c;
                r = lisa_chat_render(&c, t, m, n, gen, NULL, NULL, NULL, &e);
                CHECK(r == LISA_OK && want && c.len == want_len && memcmp(c.text, want, want_len) == 0,
                      "line %d: %s renders as transformers: \"%s\"", lines, name, r == LISA_OK ? c.text : e.message);
                if (r == LISA_OK) lisa_chat_text_free(&c);
            }
            r = lisa_chat_encode(&ct, t, &tok, m, n, gen, NULL, &e);
            CHECK(r == LISA_OK, "line %d: %s with %s encodes: %s", lines, name, dir, e.message);
            if (r == LISA_OK) {
                int ids_ok = ct.n == (size_t)nw, loss_ok = ct.n == (size_t)nw, eot = lisa_chat_end_of_turn_id(t, &tok);
                for (k = 0; ids_ok && k < nw; k++) ids_ok = ct.ids[k] == want_ids[k];
                for (k = 0; loss_ok && k < nw; k++) loss_ok = ct.loss[k] == want_loss[k];
                /* every stretch that carries loss ends with the end-of-turn token */
                for (k = 0; k < (int)ct.n; k++)
                    if (ct.loss[k] && (k + 1 == (int)ct.n || !ct.loss[k + 1]) && ct.ids[k] != eot) runs_end_ok = 0;
                same_ids += ids_ok;
                same_loss += loss_ok;
                CHECK(ids_ok, "line %d: %s with %s: %lu ids equal transformers' apply_chat_template (%d)", lines, name,
                      dir, (unsigned long)ct.n, nw);
                CHECK(loss_ok, "line %d: %s with %s: the loss mask is 1 on each answer and its end of turn", lines,
                      name, dir);
                CHECK(eot >= 0 && runs_end_ok, "line %d: %s with %s: each answer's loss ends with end-of-turn id %d",
                      lines, name, dir, eot);
                if (!ids_ok || !loss_ok)
                    for (k = 0; k < (int)ct.n || k < nw; k++)
                        fprintf(stderr, "  %d: got %d/%d want %d/%d\n", k, k < (int)ct.n ? ct.ids[k] : -1,
                                k < (int)ct.n ? ct.loss[k] : -1, k < nw ? want_ids[k] : -1, k < nw ? want_loss[k] : -1);
                lisa_chat_tokens_free(&ct);
            }
        }
        lisa_json_free(&j);
        at = end + 1;
    }
    if (have_tok) lisa_tokenizer_free(&tok);
    CHECK(lines == 24 && same_ids == lines && same_loss == lines, "%d BPE encodings: %d ids equal, %d masks equal",
          lines, same_ids, same_loss);
    free(text);
}

/* A SentencePiece-style BPE tokenizer.json whose normalizer turns each
   space into U+2581 (3 bytes) while its vocabulary lacks that piece: byte
   fallback spells it out, so a text of spaces needs 3 ids per byte, more
   than the len + 3 that suffices elsewhere. Conversations and instruction
   data must still encode (the tokenizer says how many ids it needs). */
static void test_encode_lengthening_bpe(void) {
    static char json[16384];
    size_t used, k;
    int i;
    lisa_tokenizer tok;
    lisa_error e;
    lisa_chat_message m[2];
    lisa_chat_tokens ct;
    lisa_chat_text c;
    lisa_sft_data d;
    lisa_result r;
    static const char sft[] = "{\"prompt\": \"a   a\", \"response\": \"     a      \"}\n";
    static const char config[] = "{\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}";
    used = (size_t)snprintf(json, sizeof json,
                            "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
                            "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
                            "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
                            "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
                            "\"pre_tokenizer\":null,\"post_processor\":null,\"decoder\":{\"type\":\"Sequence\",\"decoders\":["
                            "{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},"
                            "{\"type\":\"Fuse\"}]},\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\","
                            "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2");
    for (i = 0; i < 256; i++) used += (size_t)snprintf(json + used, sizeof json - used, ",\"<0x%02X>\":%d", i, 3 + i);
    snprintf(json + used, sizeof json - used, ",\"a\":259},\"merges\":[]}}");
    r = lisa_tokenizer_load_hf_memory(&tok, json, strlen(json), config, sizeof config - 1, "spaces/tokenizer.json", NULL,
                                      &e);
    CHECK(r == LISA_OK, "the lengthening tokenizer loads: %s", e.message);
    if (r != LISA_OK) return;
    CHECK(lisa_tokenizer_encode(&tok, "    ", 4, 0, 0, NULL, 0, &k, &e) == LISA_OK && k == 15,
          "4 spaces become 5 U+2581, 15 byte tokens (%lu)", (unsigned long)k);
    m[0] = msg(LISA_CHAT_USER, "a         a");
    m[1] = msg(LISA_CHAT_ASSISTANT, "a          a");
    r = lisa_chat_encode(&ct, lisa_chat_template_find("llama2"), &tok, m, 2, 0, NULL, &e);
    CHECK(r == LISA_OK, "llama2 encodes a conversation of spaces: %s", e.message);
    if (r == LISA_OK) {
        size_t n_text = 0, counted = 0;
        if (lisa_chat_render(&c, lisa_chat_template_find("llama2"), m, 2, 0, NULL, NULL, NULL, &e) == LISA_OK) {
            lisa_tokenizer_encode(&tok, c.text, c.len, 0, 0, NULL, 0, &n_text, &e);
            CHECK(ct.n == n_text && ct.n > c.len + 4, "%lu ids, as the rendered text's %lu bytes give (%lu)",
                  (unsigned long)ct.n, (unsigned long)c.len, (unsigned long)n_text);
            lisa_chat_text_free(&c);
        }
        for (k = 0; k < ct.n; k++) counted += ct.loss[k];
        CHECK(counted > 0 && ct.ids[ct.n - 1] == 2 && ct.loss[ct.n - 1], "the answer carries loss, up to its </s>");
        lisa_chat_tokens_free(&ct);
    }
    /* a response of 500 spaces: 1500 ids, more than the store's first 1024 */
    used = (size_t)snprintf(json, sizeof json, "%s", sft);
    used -= 3; /* before "\"}\n" */
    for (i = 0; i < 500; i++) json[used++] = ' ';
    used += (size_t)snprintf(json + used, sizeof json - used, "\"}\n");
    r = lisa_sft_load_memory(&d, json, used, "spaces.jsonl", &tok, 64, 0, NULL, &e);
    CHECK(r == LISA_OK && d.n_examples == 1, "instruction data of spaces loads: %s", e.message);
    if (r == LISA_OK) lisa_sft_free(&d);
    lisa_tokenizer_free(&tok);
}

int main(void) {
    test_recognition();
    test_recognition_crlf();
    test_renderings();
    test_spans();
    test_encode_bytes();
    test_encode_llama2c();
    test_encode_bpe();
    test_encode_lengthening_bpe();
    test_conversation_data();
    test_for_each_chat();
    test_errors();
    test_allocation_failures();
    return test_report("chat");
}
