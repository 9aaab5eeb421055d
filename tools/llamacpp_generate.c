/* llamacpp_generate: llama.cpp's greedy continuation of a prompt with a GGUF model, the outside
   reference tools/check_gguf_out.py compares `lisa generate --temperature 0` with.

   Built by tools/check_gguf_out.py, which links it against llama.cpp's static `llama` library
   (built by tools/make_llamacpp_fixtures.py's steps, outside the repository); not part of
   lisa.h's build.

   Usage: llamacpp_generate MODEL.gguf STEPS [THREADS] < prompt

   The prompt is the whole of stdin, bytes as they are (a chat-rendered prompt holds newlines),
   tokenized with llama_tokenize(add_special=true, parse_special=true): BOS only when the GGUF's
   tokenizer.ggml.add_bos_token says so, and special tokens such as ChatML's <|im_start|> read
   as themselves. The model runs on the CPU backend with an F32 KV cache and flash attention off
   (the closest llama.cpp comes to plain fp32 arithmetic). Each step takes the most likely next
   token (the lowest id among equal logits), up to STEPS tokens or an end-of-generation token
   (llama_vocab_is_eog: EOS, ChatML's <|im_end|>, ...), which is kept as the last id, as
   `lisa generate --show-ids` lists it.

   Output, one JSON line on stdout:
       {"prompt_ids": [...], "ids": [...], "text": "...", "stopped": "eog" | "steps" | "context"}
   text is the generated tokens' pieces (llama_token_to_piece, special tokens not rendered),
   the end-of-generation token's excepted; its bytes are written as they are (only '"', '\\'
   and control bytes escaped), so a byte-level token may leave invalid UTF-8 for the reader to
   replace. Exit status 0 on success, 1 with the reason on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

/* llama.cpp's loader logs every key and tensor it reads; only its warnings and errors matter. */
static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) fputs(text, stderr);
}

/* All of stdin into a malloc'd, NUL-terminated buffer; NULL when it cannot be read. */
static char *read_stdin(long *len) {
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap), *grown;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
    }
    if (!buf || ferror(stdin)) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = (long)n;
    return buf;
}

/* The prompt's ids into a malloc'd array (count in *n); NULL on failure. A negative result of
   llama_tokenize is the room it needs, so a second call with that much succeeds. */
static llama_token *tokenize_prompt(const struct llama_vocab *vocab, const char *text, long len, int *n) {
    int cap = (int)len + 8;
    llama_token *ids = malloc(sizeof(llama_token) * (size_t)cap);
    if (!ids) return NULL;
    *n = llama_tokenize(vocab, text, (int32_t)len, ids, cap, true, true);
    if (*n < 0 && *n != INT32_MIN) {
        cap = -*n;
        free(ids);
        ids = malloc(sizeof(llama_token) * (size_t)cap);
        if (!ids) return NULL;
        *n = llama_tokenize(vocab, text, (int32_t)len, ids, cap, true, true);
    }
    if (*n < 0) {
        free(ids);
        return NULL;
    }
    return ids;
}

/* The id of the largest logit; the first one wins a tie. */
static llama_token argmax(const float *logits, int n_vocab) {
    int i, best = 0;
    for (i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    return (llama_token)best;
}

static void print_ids(const char *key, const llama_token *ids, int n) {
    int i;
    printf("\"%s\": [", key);
    for (i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    printf("]");
}

/* A JSON string of bytes: quote, backslash and control bytes escaped, the rest as they are. */
static void print_json_bytes(const char *s, size_t n) {
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') printf("\\n");
        else if (c < 0x20 || c == 0x7f) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* Appends token's piece (special tokens not rendered) to *text; 0 on success. */
static int append_piece(const struct llama_vocab *vocab, llama_token token, char **text, size_t *len,
                        size_t *cap) {
    char piece[256];
    int n = llama_token_to_piece(vocab, token, piece, (int32_t)sizeof piece, 0, false);
    if (n < 0) return -1; /* no vocabulary this tool meets has a piece over 256 bytes */
    if (*len + (size_t)n > *cap) {
        size_t want = (*cap ? *cap * 2 : 256) + (size_t)n;
        char *grown = realloc(*text, want);
        if (!grown) return -1;
        *text = grown;
        *cap = want;
    }
    memcpy(*text + *len, piece, (size_t)n);
    *len += (size_t)n;
    return 0;
}

static struct llama_context *make_context(struct llama_model *model, int n_ctx, int n_batch, int threads) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_ubatch = (uint32_t)n_batch;
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    return llama_init_from_model(model, cp);
}

int main(int argc, char **argv) {
    struct llama_model_params mp;
    struct llama_model *model;
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    llama_token *prompt, *out, next;
    char *input, *text = NULL;
    size_t text_len = 0, text_cap = 0;
    long input_len;
    int steps, threads, n_prompt = 0, n_out = 0, n_vocab, n_ctx;
    const char *stopped = "steps";
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.gguf STEPS [THREADS] < prompt\n", argv[0]);
        return 1;
    }
    steps = atoi(argv[2]);
    threads = argc > 3 ? atoi(argv[3]) : 2;
    if (steps < 1 || threads < 1) {
        fprintf(stderr, "%s: STEPS and THREADS must be positive\n", argv[0]);
        return 1;
    }
    input = read_stdin(&input_len);
    if (!input) {
        fprintf(stderr, "%s: cannot read the prompt from stdin\n", argv[0]);
        return 1;
    }
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "%s: cannot load %s\n", argv[0], argv[1]);
        return 1;
    }
    vocab = llama_model_get_vocab(model);
    n_vocab = llama_vocab_n_tokens(vocab);
    prompt = tokenize_prompt(vocab, input, input_len, &n_prompt);
    if (!prompt || n_prompt < 1) {
        fprintf(stderr, "%s: the prompt gives no tokens (or tokenizing failed)\n", argv[0]);
        return 1;
    }
    n_ctx = n_prompt + steps;
    if (n_ctx > llama_model_n_ctx_train(model)) n_ctx = llama_model_n_ctx_train(model);
    ctx = make_context(model, n_ctx, n_prompt, threads);
    out = malloc(sizeof(llama_token) * (size_t)steps);
    if (!ctx || !out) {
        fprintf(stderr, "%s: cannot make a context of %d tokens\n", argv[0], n_ctx);
        return 1;
    }
    /* The prompt in one batch, then one token per step; each decode leaves the last
       position's logits. */
    if (llama_decode(ctx, llama_batch_get_one(prompt, n_prompt)) != 0) {
        fprintf(stderr, "%s: llama_decode failed on the prompt\n", argv[0]);
        return 1;
    }
    while (n_out < steps) {
        const float *logits = llama_get_logits_ith(ctx, -1);
        if (!logits) {
            fprintf(stderr, "%s: no logits after llama_decode\n", argv[0]);
            return 1;
        }
        next = argmax(logits, n_vocab);
        out[n_out++] = next;
        if (llama_vocab_is_eog(vocab, next)) {
            stopped = "eog";
            break;
        }
        if (append_piece(vocab, next, &text, &text_len, &text_cap) != 0) {
            fprintf(stderr, "%s: cannot render token %d\n", argv[0], next);
            return 1;
        }
        if (n_out == steps) break;
        if (n_prompt + n_out >= n_ctx) {
            stopped = "context";
            break;
        }
        if (llama_decode(ctx, llama_batch_get_one(&out[n_out - 1], 1)) != 0) {
            fprintf(stderr, "%s: llama_decode failed at step %d\n", argv[0], n_out);
            return 1;
        }
    }
    printf("{");
    print_ids("prompt_ids", prompt, n_prompt);
    printf(", ");
    print_ids("ids", out, n_out);
    printf(", \"text\": ");
    print_json_bytes(text ? text : "", text_len);
    printf(", \"stopped\": \"%s\"}\n", stopped);
    free(text);
    free(out);
    free(prompt);
    free(input);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return fflush(stdout) == 0 ? 0 : 1;
}
