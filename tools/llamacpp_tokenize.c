/* llamacpp_tokenize: llama.cpp's own tokenization of texts with a vocabulary-only GGUF, the
   reference for tests/fixtures/tokenizers/gguf/<name>.gguf.llamacpp.jsonl.

   Built and run by tools/make_llamacpp_fixtures.sh (which builds llama.cpp's `llama` library
   outside the repository and links this file against it); not part of lisa.h's build.

   Usage: llamacpp_tokenize MODEL.gguf < texts > results

   Input: records "<byte count>\n<bytes>\n", one per text (lengths, not delimiters, so texts may
   hold newlines, NUL and invalid UTF-8 exactly as given).
   Output, one record per text, in the same order:
       ids N id... \n        llama_tokenize(add_special=true,  parse_special=true)
       plain N id... \n      llama_tokenize(add_special=false, parse_special=true)
       decoded L\n<L bytes>\n  llama_detokenize(plain, remove_special=false, unparse_special=true)
   The decoded bytes are raw (a byte token can leave a partial UTF-8 sequence); the driver turns
   them into a JSON string. Exit status 0 when every text was tokenized, 1 on any failure, with
   the reason on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

/* llama.cpp's loader logs every key it reads; only its errors matter here. */
static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) fputs(text, stderr);
}

/* One "<count>\n<bytes>\n" record into a malloc'd buffer; 0 at the end of input, -1 on bad input. */
static int read_text(char **text, long *len) {
    long n;
    int c = scanf("%ld", &n);
    if (c == EOF) return 0;
    if (c != 1 || n < 0 || getchar() != '\n') return -1;
    *text = malloc((size_t)n + 1);
    if (!*text) return -1;
    if (fread(*text, 1, (size_t)n, stdin) != (size_t)n || getchar() != '\n') {
        free(*text);
        return -1;
    }
    (*text)[n] = 0;
    *len = n;
    return 1;
}

/* llama_tokenize into a malloc'd array; a negative result is the size it needs, so ask twice. */
static int tokenize(const struct llama_vocab *vocab, const char *text, long len, int add_special,
                    llama_token **out) {
    int cap = (int)len + 8;
    int n;
    *out = malloc(sizeof(llama_token) * (size_t)cap);
    if (!*out) return -1;
    n = llama_tokenize(vocab, text, (int32_t)len, *out, cap, add_special, true);
    if (n < 0 && n != INT32_MIN) {
        cap = -n;
        free(*out);
        *out = malloc(sizeof(llama_token) * (size_t)cap);
        if (!*out) return -1;
        n = llama_tokenize(vocab, text, (int32_t)len, *out, cap, add_special, true);
    }
    if (n < 0) {
        free(*out);
        *out = NULL;
    }
    return n;
}

static void print_ids(const char *label, const llama_token *ids, int n) {
    int i;
    printf("%s %d", label, n);
    for (i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
}

static int print_decoded(const struct llama_vocab *vocab, const llama_token *ids, int n) {
    int cap = 64 + n * 32;
    char *buf = malloc((size_t)cap);
    int len;
    if (!buf) return -1;
    len = llama_detokenize(vocab, ids, n, buf, cap, false, true);
    if (len < 0) {
        cap = -len;
        free(buf);
        buf = malloc((size_t)cap);
        if (!buf) return -1;
        len = llama_detokenize(vocab, ids, n, buf, cap, false, true);
    }
    if (len >= 0) {
        printf("decoded %d\n", len);
        fwrite(buf, 1, (size_t)len, stdout);
        printf("\n");
    }
    free(buf);
    return len < 0 ? -1 : 0;
}

static int tokenize_one(const struct llama_vocab *vocab, const char *text, long len, long index) {
    llama_token *ids = NULL, *plain = NULL;
    int n_ids = tokenize(vocab, text, len, 1, &ids);
    int n_plain = tokenize(vocab, text, len, 0, &plain);
    int ok = n_ids >= 0 && n_plain >= 0;
    if (ok) {
        print_ids("ids", ids, n_ids);
        print_ids("plain", plain, n_plain);
        ok = print_decoded(vocab, plain, n_plain) == 0;
    }
    if (!ok) fprintf(stderr, "llamacpp_tokenize: text %ld: llama_tokenize/detokenize failed\n", index + 1);
    free(ids);
    free(plain);
    return ok;
}

int main(int argc, char **argv) {
    struct llama_model_params params;
    struct llama_model *model;
    const struct llama_vocab *vocab;
    char *text;
    long len, index = 0;
    int r, failed = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf < texts\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    params = llama_model_default_params();
    params.vocab_only = true;
    model = llama_model_load_from_file(argv[1], params);
    if (!model) {
        fprintf(stderr, "llamacpp_tokenize: %s: llama.cpp did not load it (vocab_only)\n", argv[1]);
        return 1;
    }
    vocab = llama_model_get_vocab(model);
    while ((r = read_text(&text, &len)) == 1) {
        failed |= !tokenize_one(vocab, text, len, index++);
        free(text);
    }
    if (r < 0) {
        fprintf(stderr, "llamacpp_tokenize: input record %ld is malformed\n", index + 1);
        failed = 1;
    }
    fflush(stdout);
    llama_model_free(model);
    llama_backend_free();
    return failed;
}
