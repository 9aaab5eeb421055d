/* libFuzzer harness: lisa_model_load_hf on a sharded directory, the input being
   the text of model.safetensors.index.json.

   Once per process the harness makes a private directory (mkdtemp under /tmp)
   holding config.json and the two shards of tests/fixtures/hf_tiny_tied/ (read
   from the repository root, where run.sh runs; a missing fixture is a loud
   failure), loads the fixture directory itself once as the reference model,
   and parses the shards (lisa_safetensors_parse_memory, which
   fuzz_safetensors.c checks) to learn which shard holds each tensor.

   Per input the index is written into the directory (overwriting) and loaded
   through the counting allocator. It is judged against the rules lisa.h's
   documentation and loader give, worked out independently: the text (read
   with lisa_json_parse, which fuzz_json.c checks) is an object whose
   "weight_map" (the last member of that name) is an object; every member's
   key holds no NUL and is one of the model's tensor names or one the loader
   skips (any "*.rotary_emb.inv_freq"; lm_head.weight, as the model is tied);
   every value is a string naming a file in the directory (non-empty, no NUL,
   no '/' or '\\', not "." or ".."); every model tensor is mapped (the last
   mapping wins) to the shard that holds it; and every file named anywhere
   is one of the two shards (any other file is missing or is not a shard of
   this model). lisa.h must load exactly those inputs. A failure must be
   LISA_ERR_FORMAT or LISA_ERR_IO, with a message that names a file in the
   directory (the index or a shard: "<dir>/..."), and leave nothing
   allocated. A success must equal the reference model (config and every
   parameter bitwise), hold as many bytes as the allocator and free to zero;
   then each allocation is made to fail in turn (LISA_ERR_NOMEM, cleanly, the
   message naming the directory), and the input is loaded again with the
   default allocator and no error struct.

   The directory is removed at exit (not after a crash: /tmp/lisa-fuzz-hf-index.*).

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, unlink, rmdir */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#include <stdlib.h>
#include <unistd.h>

#define FIXTURE "tests/fixtures/hf_tiny_tied"
#define INDEX "model.safetensors.index.json"

static const char *const fixture_files[3] = {"config.json", "model-00001-of-00002.safetensors",
                                             "model-00002-of-00002.safetensors"};
static const char *const layer_names[9] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight", "mlp.down_proj.weight", "mlp.up_proj.weight"};

#define MAX_T 64

static struct {
    int ready;
    char dir[64];            /* the private directory */
    char dir_slash[80];      /* "<dir>/": a failure names a file in it */
    char index_path[128];
    lisa_model ref;          /* the fixture, loaded from its own directory */
    int n_t;                 /* the model's tensors */
    char names[MAX_T][96];   /* their transformers names, in lisa_model_tensor() order */
    int holder[MAX_T];       /* which shard (0, 1) holds each */
} H;

static int key_is(const char *s, size_t len, const char *want) { return s && len == strlen(want) && memcmp(s, want, len) == 0; }

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        !(buf = (unsigned char *)malloc((size_t)n + 1)) || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "fuzz_hf_index: cannot read %s (run from the repository root, as tests/fuzz/run.sh does)\n",
                path);
        exit(1);
    }
    fclose(f);
    buf[n] = 0;
    *size = (size_t)n;
    return buf;
}

static void spit(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    int ok = f != NULL && fwrite(data, 1, size, f) == size;
    if (f && fclose(f) != 0) ok = 0;
    FUZZ_CHECK(ok, "cannot write %s", path);
}

static void cleanup(void) {
    char path[256];
    int i;
    if (!H.ready) return;
    for (i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", H.dir, fixture_files[i]);
        unlink(path);
    }
    unlink(H.index_path);
    rmdir(H.dir);
}

static void setup(void) {
    lisa_error err;
    lisa_result r;
    int i, k, s;
    if (H.ready) return;
    strcpy(H.dir, "/tmp/lisa-fuzz-hf-index.XXXXXX");
    FUZZ_CHECK(mkdtemp(H.dir) != NULL, "mkdtemp failed");
    snprintf(H.dir_slash, sizeof H.dir_slash, "%s/", H.dir);
    snprintf(H.index_path, sizeof H.index_path, "%s/%s", H.dir, INDEX);
    H.ready = 1;
    atexit(cleanup);
    for (i = 0; i < 3; i++) {
        char src[256], dst[256];
        size_t size;
        unsigned char *data;
        snprintf(src, sizeof src, "%s/%s", FIXTURE, fixture_files[i]);
        snprintf(dst, sizeof dst, "%s/%s", H.dir, fixture_files[i]);
        data = slurp(src, &size);
        spit(dst, data, size);
        if (i > 0) { /* which tensors this shard holds */
            lisa_safetensors st;
            r = lisa_safetensors_parse_memory(&st, data, size, src, NULL, &err);
            FUZZ_CHECK(r == LISA_OK, "%s", err.message);
            for (k = 0; k < st.n_tensors; k++) {
                size_t len = strlen(st.tensors[k].name);
                FUZZ_CHECK(len < sizeof H.names[0], "long tensor name in the fixture");
                memcpy(H.names[H.n_t < MAX_T ? H.n_t : 0], st.tensors[k].name, len + 1);
                H.holder[H.n_t < MAX_T ? H.n_t : 0] = i - 1;
                FUZZ_CHECK(H.n_t < MAX_T, "too many tensors in the fixture");
                H.n_t++;
            }
            lisa_safetensors_free(&st);
        }
        free(data);
    }
    r = lisa_model_load_hf(&H.ref, FIXTURE, NULL, &err);
    FUZZ_CHECK(r == LISA_OK, "the fixture does not load: %s", err.message);
    /* Put the shard tensors in lisa_model_tensor() order (names made here, not by lisa.h). */
    {
        const lisa_config *c = &H.ref.config;
        int n = 9 * c->n_layers + (c->tied_head ? 2 : 3), holder[MAX_T];
        char nm[96];
        FUZZ_CHECK(c->tied_head, "the fixture is meant to be tied");
        FUZZ_CHECK(n == lisa_model_n_tensors(&H.ref) && n == H.n_t, "fixture: %d tensors in the shards, %d expected",
                   H.n_t, n);
        for (i = 0; i < n; i++) {
            if (i == 0) snprintf(nm, sizeof nm, "model.embed_tokens.weight");
            else if (i <= 9 * c->n_layers) snprintf(nm, sizeof nm, "model.layers.%d.%s", (i - 1) / 9, layer_names[(i - 1) % 9]);
            else snprintf(nm, sizeof nm, "model.norm.weight");
            for (k = 0; k < H.n_t && strcmp(H.names[k], nm) != 0; k++) {
            }
            FUZZ_CHECK(k < H.n_t, "fixture: no tensor %s in the shards", nm);
            holder[i] = H.holder[k];
        }
        for (i = 0; i < n; i++) {
            if (i == 0) snprintf(H.names[i], sizeof H.names[i], "model.embed_tokens.weight");
            else if (i <= 9 * c->n_layers)
                snprintf(H.names[i], sizeof H.names[i], "model.layers.%d.%s", (i - 1) / 9, layer_names[(i - 1) % 9]);
            else snprintf(H.names[i], sizeof H.names[i], "model.norm.weight");
            H.holder[i] = holder[i];
        }
        for (s = 0; s < 2; s++) {
            for (i = 0; i < n && H.holder[i] != s; i++) {
            }
            FUZZ_CHECK(i < n, "fixture: shard %d holds nothing", s);
        }
    }
}

/* Does the loader skip a tensor of this name? */
static int skipped(const char *s, size_t len) {
    return (len >= 20 && memcmp(s + len - 20, ".rotary_emb.inv_freq", 20) == 0) || key_is(s, len, "lm_head.weight");
}

/* 1 when the index must load (see the top of the file). */
static int ref_valid(const char *text, size_t size) {
    lisa_json j;
    int map, e, i, ok = 0, want[MAX_T];
    if (lisa_json_parse(&j, text, size, "ref", NULL, NULL) != LISA_OK) return 0;
    map = lisa_json_get(&j, lisa_json_root(&j), "weight_map");
    if (lisa_json_type_of(&j, map) != LISA_JSON_OBJECT) goto done;
    for (i = 0; i < H.n_t; i++) want[i] = -1;
    for (e = lisa_json_first(&j, map); e >= 0; e = lisa_json_next(&j, e)) {
        size_t kl, fl;
        const char *key = lisa_json_key(&j, e, &kl), *file = lisa_json_string(&j, e, &fl);
        int s, idx = -1;
        if (!key || memchr(key, 0, kl) || !file || fl == 0 || memchr(file, 0, fl) || memchr(file, '/', fl) ||
            memchr(file, '\\', fl) || key_is(file, fl, ".") || key_is(file, fl, ".."))
            goto done;
        for (s = 0; s < 2 && !key_is(file, fl, fixture_files[1 + s]); s++) {
        }
        if (s == 2) goto done; /* not a shard: missing, or not one of this model */
        for (i = 0; i < H.n_t; i++)
            if (key_is(key, kl, H.names[i])) idx = i;
        if (idx < 0 && !skipped(key, kl)) goto done;
        if (idx >= 0) want[idx] = s;
    }
    for (i = 0; i < H.n_t; i++)
        if (want[i] != H.holder[i]) goto done;
    ok = 1;
done:
    lisa_json_free(&j);
    return ok;
}

static void check_same_model(const lisa_model *m, int counted) {
    int i, n = lisa_model_n_tensors(&H.ref);
    FUZZ_CHECK(memcmp(&m->config, &H.ref.config, sizeof m->config) == 0, "config differs from the fixture's");
    FUZZ_CHECK(m->layout.n_params == H.ref.layout.n_params && lisa_model_n_tensors(m) == n, "layout differs");
    FUZZ_CHECK(memcmp(m->params, H.ref.params, H.ref.layout.n_params * sizeof(float)) == 0,
               "parameters differ from the fixture's");
    for (i = 0; i < n; i++) {
        lisa_param p = lisa_model_tensor(m, i), q = lisa_model_tensor(&H.ref, i);
        FUZZ_CHECK(p.tensor.data - m->params == q.tensor.data - H.ref.params && p.tensor.ndim == q.tensor.ndim &&
                       p.tensor.shape[0] == q.tensor.shape[0] && p.tensor.shape[1] == q.tensor.shape[1],
                   "tensor %d placed differently", i);
    }
    FUZZ_CHECK(m->bytes == H.ref.bytes, "model bytes %lu, the fixture's %lu", (unsigned long)m->bytes,
               (unsigned long)H.ref.bytes);
    FUZZ_CHECK(!counted || m->bytes == fuzz_cnt.live_bytes, "model says %lu bytes, the allocator holds %lu",
               (unsigned long)m->bytes, (unsigned long)fuzz_cnt.live_bytes);
    FUZZ_CHECK(m->head == m->embed && m->embed == m->params, "embed/head pointers");
}

static void check_failure(lisa_result r, const lisa_error *err, const lisa_model *m) {
    FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_IO || r == LISA_ERR_NOMEM, "result %s: \"%s\"",
               lisa_result_string(r), err->message);
    /* Every path lisa.h reads lies in the directory; a NOMEM may name just the directory. */
    fuzz_check_failure(r, err, r == LISA_ERR_NOMEM ? H.dir : H.dir_slash);
    FUZZ_CHECK(m->params == NULL && m->layers == NULL && m->bytes == 0, "failed load left a model behind");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lisa_allocator a = fuzz_allocator();
    lisa_model m;
    lisa_error err;
    lisa_result r, r2;
    long k, n_allocs, refused;
    int valid;

    setup();
    spit(H.index_path, data, size);
    valid = ref_valid((const char *)data, size);

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err);
    r = lisa_model_load_hf(&m, H.dir, &a, &err);
    refused = fuzz_cnt.n_refused;
    if (r != LISA_OK) {
        FUZZ_CHECK(!valid || r == LISA_ERR_NOMEM, "rejected a valid index: \"%s\"", err.message);
        check_failure(r, &err, &m);
    } else {
        FUZZ_CHECK(valid, "accepted an index that breaks the rules");
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with an error message");
        check_same_model(&m, 1);
        n_allocs = fuzz_cnt.n_ok;
        lisa_model_free(&m);
        FUZZ_CHECK(m.bytes == 0 && m.params == NULL, "not cleared by lisa_model_free");
        fuzz_check_nothing_live("after lisa_model_free");
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = lisa_model_load_hf(&m, H.dir, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s (%s)", k, lisa_result_string(r2),
                       r2 == LISA_OK ? "" : err.message);
            check_failure(r2, &err, &m);
        }
    }
    fuzz_alloc_reset(-1);
    if (refused == 0) {
        r2 = lisa_model_load_hf(&m, H.dir, NULL, NULL);
        FUZZ_CHECK(r2 == r, "result %s without allocator/error, %s with", lisa_result_string(r2), lisa_result_string(r));
        if (r2 == LISA_OK) {
            check_same_model(&m, 0); /* (the default allocator: no count to compare) */
            lisa_model_free(&m);
        }
    }
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: the fixture's index and near misses made from it. */

static char seed[8192];

/* The fixture's index with the first `from` replaced by `to`. */
static const char *edit(const char *base, const char *from, const char *to) {
    const char *at = strstr(base, from);
    if (!at || strlen(base) - strlen(from) + strlen(to) >= sizeof seed) {
        fprintf(stderr, "seed edit: \"%s\" not found or too large\n", from);
        exit(1);
    }
    snprintf(seed, sizeof seed, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    return seed;
}

static int put(const char *dir, const char *file, const char *text, int want_valid) {
    static char copy[8192];
    lisa_model m;
    lisa_error e;
    lisa_result r;
    size_t n = strlen(text);
    memcpy(copy, text, n + 1); /* text may be seed[], which edit() reuses */
    setup();
    spit(H.index_path, copy, n);
    r = lisa_model_load_hf(&m, H.dir, NULL, &e);
    if (r == LISA_OK) lisa_model_free(&m);
    if ((r == LISA_OK) != want_valid || ref_valid(copy, n) != want_valid) {
        fprintf(stderr, "%s: expected %s, got %s: %s\n", file, want_valid ? "a model" : "an error",
                lisa_result_string(r), r == LISA_OK ? "" : e.message);
        return 1;
    }
    if (r != LISA_OK) printf("  %s\n", e.message);
    LLVMFuzzerTestOneInput((const uint8_t *)copy, n);
    return fuzz_write_seed(dir, file, copy, n);
}

int main(int argc, char **argv) {
    static const char s1[] = "model-00001-of-00002.safetensors", s2[] = "model-00002-of-00002.safetensors";
    static const char norm2[] = "\"model.norm.weight\": \"model-00002-of-00002.safetensors\"";
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/hf_index";
    size_t size;
    char *real = (char *)slurp(FIXTURE "/" INDEX, &size);
    char base[4096];
    int bad = 0;
    (void)s2;
    snprintf(base, sizeof base, "%s", real);
    free(real);
    /* valid */
    bad |= put(dir, "fixture_index.json", base, 1);
    bad |= put(dir, "skipped_entries.json",
               edit(base, norm2,
                    "\"lm_head.weight\": \"model-00001-of-00002.safetensors\",\n"
                    "    \"model.layers.0.self_attn.rotary_emb.inv_freq\": \"model-00002-of-00002.safetensors\",\n    "
                    "\"model.norm\\u002eweight\": \"model-00002-of-00002.safetensors\""),
               1);
    bad |= put(dir, "duplicate_key_last_right.json",
               edit(base, norm2, "\"model.norm.weight\": \"model-00001-of-00002.safetensors\",\n    " /**/
                                 "\"model.norm.weight\": \"model-00002-of-00002.safetensors\""),
               1);
    /* near misses */
    bad |= put(dir, "no_weight_map.json", "{\"metadata\":{\"total_size\":35136}}", 0);
    bad |= put(dir, "empty_object.json", "{}", 0);
    bad |= put(dir, "empty_weight_map.json", "{\"metadata\":{},\"weight_map\":{}}", 0);
    bad |= put(dir, "weight_map_array.json", "{\"weight_map\":[\"model-00001-of-00002.safetensors\"]}", 0);
    bad |= put(dir, "missing_shard.json",
               edit(base, norm2, "\"model.norm.weight\": \"model-00003-of-00003.safetensors\""), 0);
    bad |= put(dir, "dotdot_path.json", edit(base, norm2, "\"model.norm.weight\": \"../model-00002-of-00002.safetensors\""), 0);
    bad |= put(dir, "dotdot.json", edit(base, norm2, "\"model.norm.weight\": \"..\""), 0);
    bad |= put(dir, "wrong_shard.json", edit(base, norm2, "\"model.norm.weight\": \"model-00001-of-00002.safetensors\""), 0);
    bad |= put(dir, "extra_tensor.json",
               edit(base, norm2,
                    "\"model.layers.2.input_layernorm.weight\": \"model-00002-of-00002.safetensors\",\n    " /**/
                    "\"model.norm.weight\": \"model-00002-of-00002.safetensors\""),
               0);
    bad |= put(dir, "missing_tensor.json", edit(base, ",\n    \"model.norm.weight\": \"model-00002-of-00002.safetensors\"", ""), 0);
    bad |= put(dir, "duplicate_key_last_wrong.json",
               edit(base, norm2, "\"model.norm.weight\": \"model-00002-of-00002.safetensors\",\n    " /**/
                                 "\"model.norm.weight\": \"model-00001-of-00002.safetensors\""),
               0);
    bad |= put(dir, "non_string_value.json", edit(base, norm2, "\"model.norm.weight\": 2"), 0);
    bad |= put(dir, "key_with_nul.json", edit(base, norm2, "\"model.norm.weight\\u0000\": \"model-00002-of-00002.safetensors\""), 0);
    bad |= put(dir, "value_with_nul.json",
               edit(base, norm2, "\"model.norm.weight\": \"model-00002-of-00002.safetensors\\u0000x\""), 0);
    bad |= put(dir, "config_as_shard.json",
               edit(base, norm2,
                    "\"lm_head.weight\": \"config.json\",\n    " /**/
                    "\"model.norm.weight\": \"model-00002-of-00002.safetensors\""),
               0);
    bad |= put(dir, "truncated.json", edit(base, "\n  }\n}", ""), 0);
    (void)s1;
    return bad;
}
#endif
