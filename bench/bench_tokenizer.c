/* Speed of a tokenizer on one thread: loading it (a Hugging Face
   tokenizer.json or directory, a GGUF file: any lisa_tokenizer_load takes),
   encoding about 8 MB of mixed text (the texts of
   tests/fixtures/tokenizers/corpus.jsonl, one chunk each, and train.txt as one
   chunk, repeated: several scripts, code, digits, emoji, runs of white space),
   decoding the ids back, and decoding them again one id at a time through
   lisa_tokenizer_stream_next. bench/bench_tokenizer.py encodes the same chunks
   with the `tokenizers` library on one thread, for a ratio on one machine.

   Build and run:  make build/bench_tokenizer && build/bench_tokenizer [TOKENIZER] [MB]
   or:             cc -O3 -march=native -I. -o bench_tokenizer bench/bench_tokenizer.c -lm
   TOKENIZER is what lisa_tokenizer_load takes (default
   tests/fixtures/tokenizers/smollm2); MB the amount of text (default 8). */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURES "tests/fixtures/tokenizers/"

typedef struct chunk {
    const char *text;
    size_t len;
} chunk;

static char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = (char *)malloc((size_t)n + 1);
        if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
            free(p);
            p = NULL;
        }
        if (p) p[n] = 0, *size = (size_t)n;
    }
    fclose(f);
    return p;
}

/* "model name" from /proc/cpuinfo, or "unknown CPU". */
static void cpu_model(char *out, size_t cap) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(out, cap, "unknown CPU");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        colon++;
        while (*colon == ' ') colon++;
        colon[strcspn(colon, "\n")] = 0;
        snprintf(out, cap, "%s", colon);
        break;
    }
    fclose(f);
}

/* The unit of text that is repeated: each corpus.jsonl line's string, then
   train.txt. The JSON parses stay alive in js (the strings point into them). */
static int load_unit(chunk *unit, int cap, lisa_json *js, char **train) {
    size_t size, start = 0, i, tlen;
    char *lines = read_all(FIXTURES "corpus.jsonl", &size);
    int n = 0;
    lisa_error err;
    if (!lines) return -1;
    for (i = 0; i <= size && n + 1 < cap; i++) {
        if (i < size && lines[i] != '\n') continue;
        if (i > start) {
            lisa_result r = lisa_json_parse(&js[n], lines + start, i - start, "corpus.jsonl", NULL, &err);
            unit[n].text = r == LISA_OK ? lisa_json_string(&js[n], lisa_json_root(&js[n]), &unit[n].len) : NULL;
            if (unit[n].text && unit[n].len > 0) n++;
            else lisa_json_free(&js[n]);
        }
        start = i + 1;
    }
    free(lines);
    *train = read_all(FIXTURES "train.txt", &tlen);
    if (!*train) return -1;
    unit[n].text = *train;
    unit[n].len = tlen;
    return n + 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : FIXTURES "smollm2";
    double mb = argc > 2 ? atof(argv[2]) : 8.0, t0, t_load[3], t_enc, t_dec, t_stream;
    static chunk unit[512];
    static lisa_json js[512];
    chunk *chunks;
    char *train = NULL, cpu[256], *out;
    int n_unit, n_chunks, i, k, *ids;
    size_t total = 0, n_tokens = 0, cap_ids = 0, *id_start, decoded = 0, streamed = 0, n, out_cap = 0;
    lisa_tokenizer t;
    lisa_error err;

    cpu_model(cpu, sizeof cpu);
    n_unit = load_unit(unit, 512, js, &train);
    if (n_unit < 1) {
        fprintf(stderr, "bench_tokenizer: cannot read " FIXTURES "corpus.jsonl and train.txt (run from the repository root)\n");
        return 1;
    }
    {
        size_t unit_bytes = 0;
        for (i = 0; i < n_unit; i++) unit_bytes += unit[i].len;
        n_chunks = (int)((mb * 1e6 + unit_bytes - 1) / unit_bytes) * n_unit;
    }
    chunks = (chunk *)malloc((size_t)n_chunks * sizeof *chunks);
    id_start = (size_t *)malloc(((size_t)n_chunks + 1) * sizeof *id_start);
    if (!chunks || !id_start) return 1;
    for (i = 0; i < n_chunks; i++) {
        chunks[i] = unit[i % n_unit];
        total += chunks[i].len;
        if (chunks[i].len + 3 > out_cap) out_cap = chunks[i].len + 3;
        cap_ids += chunks[i].len + 3;
    }

    for (k = 0; k < 3; k++) {
        t0 = now_seconds();
        if (lisa_tokenizer_load(&t, path, 0, NULL, &err) != LISA_OK) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.message);
            return 1;
        }
        t_load[k] = now_seconds() - t0;
        if (k < 2) lisa_tokenizer_free(&t);
    }
    ids = (int *)malloc(cap_ids * sizeof *ids);
    out = (char *)malloc(out_cap * 8 + 64);
    if (!ids || !out) return 1;

    t0 = now_seconds();
    for (i = 0; i < n_chunks; i++) {
        id_start[i] = n_tokens;
        if (lisa_tokenizer_encode(&t, chunks[i].text, chunks[i].len, 0, 0, ids + n_tokens, cap_ids - n_tokens, &n,
                                  &err) != LISA_OK) {
            fprintf(stderr, "bench_tokenizer: encode: %s\n", err.message);
            return 1;
        }
        n_tokens += n;
    }
    id_start[n_chunks] = n_tokens;
    t_enc = now_seconds() - t0;

    t0 = now_seconds();
    for (i = 0; i < n_chunks; i++) {
        if (lisa_tokenizer_decode(&t, ids + id_start[i], id_start[i + 1] - id_start[i], out, out_cap * 8 + 64, &n,
                                  &err) != LISA_OK) {
            fprintf(stderr, "bench_tokenizer: decode: %s\n", err.message);
            return 1;
        }
        decoded += n;
    }
    t_dec = now_seconds() - t0;

    t0 = now_seconds();
    for (i = 0; i < n_chunks; i++) {
        lisa_tokenizer_stream s;
        size_t j;
        lisa_tokenizer_stream_init(&s);
        for (j = id_start[i]; j < id_start[i + 1]; j++) {
            if (lisa_tokenizer_stream_next(&t, &s, ids[j], out, out_cap * 8 + 64, &n, &err) != LISA_OK) {
                fprintf(stderr, "bench_tokenizer: stream: %s\n", err.message);
                return 1;
            }
            streamed += n;
        }
        streamed += lisa_tokenizer_stream_flush(&s, out, 64);
    }
    t_stream = now_seconds() - t0;

    printf("tokenizer: %s (vocabulary %d)\n", path, t.vocab_size);
    printf("cpu: %s, 1 thread\n", cpu);
    printf("text: %.2f MB in %d chunks, %lu tokens (%.2f bytes/token)\n", total / 1e6, n_chunks,
           (unsigned long)n_tokens, (double)total / (double)(n_tokens ? n_tokens : 1));
    printf("load:          %8.1f ms (median of 3)\n", median(t_load, 3) * 1e3);
    printf("encode:        %8.2f MB/s  %10.0f tokens/s\n", total / 1e6 / t_enc, n_tokens / t_enc);
    printf("decode:        %8.2f MB/s  (%.2f MB out)\n", decoded / 1e6 / t_dec, decoded / 1e6);
    printf("stream decode: %8.2f MB/s  (%.2f MB out%s)\n", streamed / 1e6 / t_stream, streamed / 1e6,
           streamed == decoded ? "" : ", differs from decode!");
    lisa_tokenizer_free(&t);
    for (i = 0; i + 1 < n_unit; i++) lisa_json_free(&js[i]);
    free(train), free(chunks), free(id_start), free(ids), free(out);
    return streamed == decoded ? 0 : 1;
}
