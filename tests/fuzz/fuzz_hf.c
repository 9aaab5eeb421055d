/* libFuzzer harness: lisa_model_load_hf_memory (config.json + model.safetensors).

   The input is split in two: a 2-byte little-endian length L, then L bytes of
   config.json (fewer when the input ends first), then the safetensors file.
   Every input is loaded through a counting allocator and judged here against
   the rules lisa.h's documentation gives, worked out independently: the
   config (read with lisa_json_parse) must be an object whose model_type,
   hidden_act and architectures are absent, null or exactly "llama", "silu",
   ["LlamaForCausalLM", ...]; rope_scaling absent, null or of type "default";
   attention_bias and mlp_bias absent, null or false; the sizes positive
   integers (num_key_value_heads defaulting to the heads,
   max_position_embeddings to 2048), head_dim absent or hidden_size /
   num_attention_heads, rms_norm_eps and rope_theta positive floats
   (defaults 1e-6, 10000), tie_word_embeddings a boolean; the sizes within
   lisa_config_resolve's limits. The safetensors file (read with
   lisa_safetensors_parse_memory, which fuzz_safetensors.c checks) must hold
   exactly the model's tensors under their transformers names (exact bytes:
   a name with a NUL in it is another name) with their shapes, plus any
   "*.rotary_emb.inv_freq" and, when tied, lm_head.weight. lisa.h must load
   every such input (or run out of memory under the allocator's 64 MB cap)
   and nothing else. A failure must be LISA_ERR_FORMAT or LISA_ERR_NOMEM, with
   a message that names the input, and leave nothing allocated. A success
   must have the config's values, resolve unchanged, hold in every parameter
   exactly the file's value (F32 bits; F16 and BF16 widened here) with the
   q_proj and k_proj rows moved from rotate-half to interleaved order, have
   n_params and the byte count right and free to zero. Then each allocation
   is made to fail in turn (LISA_ERR_NOMEM, cleanly), and the input is loaded
   again with the default allocator, no name and no error struct.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and run with the corpus directory as argument. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#include <float.h>
#include <math.h>

static const char *const layer_names[9] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight", "mlp.down_proj.weight", "mlp.up_proj.weight"};

/* The config as the documentation reads it. */
typedef struct ref_cfg {
    int ok;
    long dim, hidden, layers, heads, kv, vocab, seq, head_dim;
    float eps, theta;
    int tied;
} ref_cfg;

static int key_is(const char *s, size_t len, const char *want) { return s && len == strlen(want) && memcmp(s, want, len) == 0; }

static int field(const lisa_json *j, const char *name) {
    /* The last member with exactly this key (lisa_json_get, which fuzz_json.c checks). */
    return lisa_json_get(j, lisa_json_root(j), name);
}

static int absent(const lisa_json *j, int node) {
    lisa_json_type t = lisa_json_type_of(j, node);
    return t == LISA_JSON_NONE || t == LISA_JSON_NULL;
}

static int want_string(const lisa_json *j, const char *name, const char *want) {
    size_t len;
    int node = field(j, name);
    const char *s = lisa_json_string(j, node, &len);
    return absent(j, node) || key_is(s, len, want);
}

static int get_int(const lisa_json *j, const char *name, long def, long *out) {
    int node = field(j, name);
    double v;
    if (absent(j, node)) {
        *out = def;
        return def >= 0;
    }
    if (lisa_json_type_of(j, node) != LISA_JSON_NUMBER) return 0;
    v = lisa_json_number(j, node);
    if (!(v >= 1 && v <= 2147483647.0) || v != floor(v)) return 0;
    *out = (long)v;
    return 1;
}

static int get_float(const lisa_json *j, const char *name, float def, float *out) {
    int node = field(j, name);
    double v;
    if (absent(j, node)) {
        *out = def;
        return 1;
    }
    if (lisa_json_type_of(j, node) != LISA_JSON_NUMBER) return 0;
    v = lisa_json_number(j, node);
    if (!(v > 0 && v <= FLT_MAX) || (float)v == 0.0f) return 0;
    *out = (float)v;
    return 1;
}

static int get_false(const lisa_json *j, const char *name, int *out) {
    lisa_json_type t = lisa_json_type_of(j, field(j, name));
    *out = t == LISA_JSON_TRUE;
    return t == LISA_JSON_NONE || t == LISA_JSON_NULL || t == LISA_JSON_TRUE || t == LISA_JSON_FALSE;
}

static void ref_config(ref_cfg *c, const char *text, size_t len) {
    lisa_json j;
    int node, k, flag;
    double n_params, kv_dim;
    memset(c, 0, sizeof *c);
    if (lisa_json_parse(&j, text, len, "ref", NULL, NULL) != LISA_OK) goto done;
    if (lisa_json_type_of(&j, lisa_json_root(&j)) != LISA_JSON_OBJECT) goto done;
    if (!want_string(&j, "model_type", "llama") || !want_string(&j, "hidden_act", "silu")) goto done;
    node = field(&j, "architectures");
    if (lisa_json_type_of(&j, node) == LISA_JSON_ARRAY) {
        for (k = 0; k < lisa_json_length(&j, node); k++) {
            size_t sl;
            const char *s = lisa_json_string(&j, lisa_json_at(&j, node, k), &sl);
            if (!key_is(s, sl, "LlamaForCausalLM")) goto done;
        }
    } else if (!absent(&j, node)) {
        goto done;
    }
    node = field(&j, "rope_scaling");
    if (!absent(&j, node)) {
        size_t sl;
        const char *s = lisa_json_string(&j, lisa_json_get(&j, node, "rope_type"), &sl);
        if (!s) s = lisa_json_string(&j, lisa_json_get(&j, node, "type"), &sl);
        if (!key_is(s, sl, "default")) goto done;
    }
    if (!get_false(&j, "attention_bias", &flag) || flag || !get_false(&j, "mlp_bias", &flag) || flag) goto done;
    if (!get_int(&j, "hidden_size", -1, &c->dim) || !get_int(&j, "intermediate_size", -1, &c->hidden) ||
        !get_int(&j, "num_hidden_layers", -1, &c->layers) || !get_int(&j, "num_attention_heads", -1, &c->heads) ||
        !get_int(&j, "num_key_value_heads", c->heads, &c->kv) || !get_int(&j, "vocab_size", -1, &c->vocab) ||
        !get_int(&j, "max_position_embeddings", 2048, &c->seq) || !get_int(&j, "head_dim", 0, &c->head_dim) ||
        !get_float(&j, "rms_norm_eps", 1e-6f, &c->eps) || !get_float(&j, "rope_theta", 10000.0f, &c->theta) ||
        !get_false(&j, "tie_word_embeddings", &c->tied))
        goto done;
    if (c->head_dim != 0 && (c->dim % c->heads != 0 || c->head_dim != c->dim / c->heads)) goto done;
    /* lisa_config_resolve's limits, as documented in lisa.h */
    if (c->dim > (1L << 20) || c->hidden > (4L << 20) || c->layers > 4096 || c->dim % c->heads != 0 ||
        (c->dim / c->heads) % 2 != 0 || c->kv > c->heads || c->heads % c->kv != 0 || c->vocab > (1L << 24) ||
        c->seq > (1L << 24))
        goto done;
    kv_dim = (double)(c->dim / c->heads * c->kv);
    n_params = (double)c->vocab * c->dim * (c->tied ? 1 : 2) + c->dim +
               (double)c->layers * (2.0 * c->dim + 2.0 * c->dim * c->dim + 2.0 * kv_dim * c->dim + 3.0 * c->dim * c->hidden);
    if (n_params > (double)(1ull << 40) || n_params * 4 > (double)SIZE_MAX / 2) goto done;
    c->ok = 1;
done:
    lisa_json_free(&j);
}

/* Tensor index of a name (exact bytes), -2 for one to skip, -1 for none. */
static int ref_index(const ref_cfg *c, const char *name, size_t len) {
    static const char layers[] = "model.layers.";
    size_t i, at;
    long l = 0;
    int w;
    if (len >= 20 && memcmp(name + len - 20, ".rotary_emb.inv_freq", 20) == 0) return -2;
    if (key_is(name, len, "model.embed_tokens.weight")) return 0;
    if (key_is(name, len, "model.norm.weight")) return (int)(9 * c->layers + 1);
    if (key_is(name, len, "lm_head.weight")) return c->tied ? -2 : (int)(9 * c->layers + 2);
    if (len < sizeof layers || memcmp(name, layers, sizeof layers - 1) != 0) return -1;
    at = sizeof layers - 1;
    for (i = at; i < len && name[i] >= '0' && name[i] <= '9' && i - at < 6; i++) l = l * 10 + (name[i] - '0');
    if (i == at || i >= len || name[i] != '.' || (name[at] == '0' && i - at > 1) || l >= c->layers) return -1;
    i++;
    for (w = 0; w < 9; w++)
        if (key_is(name + i, len - i, layer_names[w])) return (int)(1 + 9 * l + w);
    return -1;
}

/* Rows and columns of tensor index (cols 1: a vector). */
static void ref_shape(const ref_cfg *c, int idx, long *rows, long *cols) {
    long D = c->dim, H = c->hidden, kv = c->dim / c->heads * c->kv;
    if (idx == 0 || idx == 9 * c->layers + 2) {
        *rows = c->vocab;
        *cols = D;
    } else if (idx == 9 * c->layers + 1) {
        *rows = D;
        *cols = 1;
    } else {
        static const int r_[9] = {0, 0, 1, 1, 0, 0, 2, 0, 2}, c_[9] = {1, 0, 0, 0, 0, 1, 0, 2, 0};
        int w = (idx - 1) % 9;
        long v[3];
        v[0] = D, v[1] = kv, v[2] = H;
        *rows = v[r_[w]];
        *cols = c_[w] == 1 ? 1 : v[c_[w] == 2 ? 2 : 0];
    }
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
    float f;
    if (e == 31) {
        bits = sign | 0x7F800000u | m << 13;
        memcpy(&f, &bits, 4);
        return f;
    }
    f = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 1024), (int)e - 25);
    return sign ? -f : f;
}

static uint32_t elem_bits(const uint8_t *p, lisa_file_dtype dt) {
    uint32_t u;
    float f;
    if (dt == LISA_FILE_F32) return (uint32_t)fuzz_le32(p);
    if (dt == LISA_FILE_BF16) return (uint32_t)(p[0] | p[1] << 8) << 16;
    f = half_to_float((uint16_t)(p[0] | p[1] << 8));
    memcpy(&u, &f, 4);
    return u;
}

/* Returns 1 when the safetensors part holds exactly the model's tensors; with m
   (a loaded model) also checks every value. */
static int ref_tensors(const ref_cfg *c, const lisa_safetensors *st, const lisa_model *m) {
    long n_t = 9 * c->layers + (c->tied ? 2 : 3), i;
    int root = lisa_json_root(&st->header), k, ok = 1;
    char *seen = (char *)calloc((size_t)n_t, 1);
    FUZZ_CHECK(seen != NULL, "out of memory in the harness");
    for (k = 0; k < st->n_tensors && ok; k++) {
        const lisa_safetensors_tensor *t = &st->tensors[k];
        size_t len = 0, r, col, es = t->dtype == LISA_FILE_F32 ? 4 : 2;
        long rows, cols, hd = c->dim / c->heads;
        int node, idx, w;
        for (node = lisa_json_first(&st->header, root); node >= 0; node = lisa_json_next(&st->header, node))
            if (lisa_json_key(&st->header, node, &len) == t->name) break;
        FUZZ_CHECK(node >= 0, "tensor %s is not a key of the header", t->name);
        idx = ref_index(c, t->name, len);
        if (idx == -2) continue;
        if (idx < 0 || seen[idx]) {
            ok = 0;
            break;
        }
        seen[idx] = 1;
        ref_shape(c, idx, &rows, &cols);
        if (t->ndim != (cols == 1 ? 1 : 2) || t->shape[0] != (uint64_t)rows ||
            (cols != 1 && t->shape[1] != (uint64_t)cols)) {
            ok = 0;
            break;
        }
        if (!m) continue;
        w = (idx - 1) % 9;
        for (r = 0; r < (size_t)rows; r++) {
            size_t dst_row = r;
            const float *dst;
            if (idx >= 1 && idx <= 9 * c->layers && (w == 1 || w == 2)) { /* rotate-half to interleaved */
                size_t h = r / (size_t)hd, jj = r % (size_t)hd, half = (size_t)hd / 2;
                dst_row = h * (size_t)hd + (jj < half ? 2 * jj : 2 * (jj - half) + 1);
            }
            dst = lisa_model_tensor(m, idx).tensor.data + dst_row * (size_t)cols;
            for (col = 0; col < (size_t)cols; col++) {
                uint32_t want = elem_bits(st->data + t->begin + (r * (size_t)cols + col) * es, t->dtype), got;
                memcpy(&got, dst + col, 4);
                FUZZ_CHECK(got == want, "%s[%lu][%lu] is 0x%08lx, the file says 0x%08lx", t->name, (unsigned long)r,
                           (unsigned long)col, (unsigned long)got, (unsigned long)want);
            }
        }
    }
    for (i = 0; i < n_t && ok; i++)
        if (!seen[i]) ok = 0;
    free(seen);
    return ok;
}

static void check_model(const lisa_model *m, const ref_cfg *c) {
    const lisa_config *mc = &m->config;
    lisa_config rc = *mc;
    uint64_t D = (uint64_t)c->dim, H = (uint64_t)c->hidden, kv = D / (uint64_t)c->heads * (uint64_t)c->kv, n_params;
    FUZZ_CHECK(mc->dim == c->dim && mc->hidden_dim == c->hidden && mc->n_layers == c->layers &&
                   mc->n_heads == c->heads && mc->n_kv_heads == c->kv && mc->vocab_size == c->vocab &&
                   mc->max_seq_len == c->seq && mc->tied_head == c->tied,
               "config %d %d %d %d %d %d %d tied %d differs from config.json", mc->dim, mc->hidden_dim, mc->n_layers,
               mc->n_heads, mc->n_kv_heads, mc->vocab_size, mc->max_seq_len, mc->tied_head);
    FUZZ_CHECK(mc->norm_eps == c->eps && mc->rope_theta == c->theta, "norm_eps %g rope_theta %g, config.json %g %g",
               (double)mc->norm_eps, (double)mc->rope_theta, (double)c->eps, (double)c->theta);
    FUZZ_CHECK(lisa_config_resolve(&rc, NULL) == LISA_OK && memcmp(&rc, mc, sizeof rc) == 0,
               "the config does not resolve unchanged");
    n_params = D * (uint64_t)c->vocab * (c->tied ? 1 : 2) + D +
               (uint64_t)c->layers * (2 * D + 2 * D * D + 2 * kv * D + 3 * D * H);
    FUZZ_CHECK((uint64_t)m->layout.n_params == n_params, "n_params %lu, expected %lu",
               (unsigned long)m->layout.n_params, (unsigned long)n_params);
    FUZZ_CHECK(m->bytes == (size_t)n_params * sizeof(float) + (size_t)c->layers * sizeof(lisa_layer_weights),
               "model bytes %lu for %lu parameters", (unsigned long)m->bytes, (unsigned long)n_params);
    FUZZ_CHECK(m->bytes == fuzz_cnt.live_bytes, "model says %lu bytes, the allocator holds %lu",
               (unsigned long)m->bytes, (unsigned long)fuzz_cnt.live_bytes);
    FUZZ_CHECK(m->embed == m->params && (c->tied ? m->head == m->embed : m->head != m->embed),
               "embed/head pointers");
    FUZZ_CHECK(lisa_model_n_tensors(m) == 9 * c->layers + (c->tied ? 2 : 3), "%d tensors", lisa_model_n_tensors(m));
}

static void check_failure(lisa_result r, const lisa_error *err, const char *name) {
    FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "result %s: \"%s\"", lisa_result_string(r), err->message);
    fuzz_check_failure(r, err, name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input";
    lisa_allocator a = fuzz_allocator();
    lisa_model m;
    lisa_error err;
    lisa_result r, r2;
    ref_cfg c;
    lisa_safetensors st;
    size_t clen = 0, slen;
    const char *cfg = (const char *)data;
    const uint8_t *stb;
    int valid = 0, st_ok;
    long k, n_allocs, refused;

    if (size >= 2) {
        clen = (size_t)data[0] | (size_t)data[1] << 8;
        cfg += 2;
        size -= 2;
        if (clen > size) clen = size;
    } else {
        size = 0;
    }
    stb = (const uint8_t *)cfg + clen;
    slen = size - clen;

    ref_config(&c, cfg, clen);
    st_ok = lisa_safetensors_parse_memory(&st, stb, slen, "ref", NULL, NULL) == LISA_OK;
    if (c.ok && st_ok) valid = ref_tensors(&c, &st, NULL);

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err);
    r = lisa_model_load_hf_memory(&m, cfg, clen, stb, slen, name, &a, &err);
    refused = fuzz_cnt.n_refused;
    if (r != LISA_OK) {
        FUZZ_CHECK(!valid || r == LISA_ERR_NOMEM, "rejected a valid model: \"%s\"", err.message);
        check_failure(r, &err, name);
        FUZZ_CHECK(m.params == NULL && m.layers == NULL, "failed load left a model behind");
    } else {
        FUZZ_CHECK(c.ok, "accepted a config.json that breaks the documented rules");
        FUZZ_CHECK(st_ok && valid, "accepted a safetensors part that does not hold exactly the model's tensors");
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with an error message");
        check_model(&m, &c);
        ref_tensors(&c, &st, &m);
        n_allocs = fuzz_cnt.n_ok;
        lisa_model_free(&m);
        FUZZ_CHECK(m.bytes == 0 && m.params == NULL, "not cleared by lisa_model_free");
        fuzz_check_nothing_live("after lisa_model_free");
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = lisa_model_load_hf_memory(&m, cfg, clen, stb, slen, name, &a, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s", k, lisa_result_string(r2));
            check_failure(r2, &err, name);
        }
    }
    lisa_safetensors_free(&st);
    fuzz_alloc_reset(-1);
    if (refused == 0) { /* (a model over the cap would really be allocated) */
        r2 = lisa_model_load_hf_memory(&m, cfg, clen, stb, slen, NULL, NULL, NULL);
        FUZZ_CHECK(r2 == r, "result %s without allocator/error, %s with", lisa_result_string(r2), lisa_result_string(r));
        if (r2 == LISA_OK) lisa_model_free(&m);
    }
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: tiny valid models in each dtype and near misses. */

typedef struct seed_model {
    int D, H, L, NH, KV, V, tied;
    lisa_file_dtype dtype;
} seed_model;

static uint8_t out[65536];
static char hdr[16384];

static size_t put_json(char *b, size_t at, size_t cap, const char *fmt, const char *nm, const char *dt, long r,
                       long cl, size_t begin, size_t end) {
    int n = cl > 0 ? snprintf(b + at, cap - at, fmt, nm, dt, r, cl, (unsigned long)begin, (unsigned long)end)
                   : snprintf(b + at, cap - at, fmt, nm, dt, r, (unsigned long)begin, (unsigned long)end);
    if (n < 0 || (size_t)n >= cap - at) {
        fprintf(stderr, "header too large\n");
        exit(1);
    }
    return at + (size_t)n;
}

/* The input: length-prefixed config, then a safetensors file holding the model's
   tensors (in a scrambled order), plus `extra` tensors, minus tensor `drop`
   (-1: none); `bad_shape` (>= 0) gives that tensor one more row. */
static size_t make_input(const char *config, const seed_model *s, const char *extra, int drop, int bad_shape) {
    static const char *const dts[3] = {"F32", "F16", "BF16"};
    ref_cfg c;
    size_t clen = strlen(config), at = 0, data = 0, es = s->dtype == LISA_FILE_F32 ? 4 : 2, hl, i, total;
    long n_t = 9L * s->L + (s->tied ? 2 : 3), k;
    uint8_t *base;
    memset(&c, 0, sizeof c);
    c.dim = s->D, c.hidden = s->H, c.layers = s->L, c.heads = s->NH, c.kv = s->KV, c.vocab = s->V, c.tied = s->tied;
    at = (size_t)snprintf(hdr, sizeof hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (k = 0; k < n_t; k++) {
        long idx = (k * 11 + 3) % n_t, rows, cols; /* a permutation: n_t is prime to 11 here */
        char nm[96];
        if (idx == drop) continue;
        if (idx == 0) snprintf(nm, sizeof nm, "model.embed_tokens.weight");
        else if (idx <= 9 * s->L) snprintf(nm, sizeof nm, "model.layers.%ld.%s", (idx - 1) / 9, layer_names[(idx - 1) % 9]);
        else if (idx == 9 * s->L + 1) snprintf(nm, sizeof nm, "model.norm.weight");
        else snprintf(nm, sizeof nm, "lm_head.weight");
        ref_shape(&c, (int)idx, &rows, &cols);
        if (idx == bad_shape) rows++;
        if (cols == 1)
            at = put_json(hdr, at, sizeof hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%ld],\"data_offsets\":[%lu,%lu]}", nm,
                          dts[s->dtype], rows, 0, data, data + (size_t)rows * es);
        else
            at = put_json(hdr, at, sizeof hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%ld,%ld],\"data_offsets\":[%lu,%lu]}",
                          nm, dts[s->dtype], rows, cols, data, data + (size_t)(rows * cols) * es);
        data += (size_t)(rows * (cols == 1 ? 1 : cols)) * es;
    }
    if (extra) {
        /* extra: a name and a dtype/shape of 4 bytes */
        at = put_json(hdr, at, sizeof hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%ld],\"data_offsets\":[%lu,%lu]}", extra,
                      "F32", 1, 0, data, data + 4);
        data += 4;
    }
    at += (size_t)snprintf(hdr + at, sizeof hdr - at, "}");
    hl = at;
    total = 2 + clen + 8 + hl + data;
    if (total > sizeof out) {
        fprintf(stderr, "seed too large\n");
        exit(1);
    }
    out[0] = (uint8_t)clen;
    out[1] = (uint8_t)(clen >> 8);
    memcpy(out + 2, config, clen);
    base = out + 2 + clen;
    for (i = 0; i < 8; i++) base[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(base + 8, hdr, hl);
    for (i = 0; i < data / es; i++) {
        float f = (float)((int)(i * 37 % 101) - 50) / 64.0f;
        uint8_t *p = base + 8 + hl + i * es;
        if (s->dtype == LISA_FILE_F32) {
            memcpy(p, &f, 4); /* the generator runs on little-endian hosts */
        } else {
            uint16_t h = s->dtype == LISA_FILE_F16 ? lisa_f32_to_f16(f) : lisa_f32_to_bf16(f);
            p[0] = (uint8_t)h;
            p[1] = (uint8_t)(h >> 8);
        }
    }
    return total;
}

static int write_checked(const char *dir, const char *file, size_t size, int valid) {
    lisa_model m;
    size_t clen = (size_t)out[0] | (size_t)out[1] << 8;
    lisa_error e;
    lisa_result r = lisa_model_load_hf_memory(&m, (const char *)out + 2, clen, out + 2 + clen, size - 2 - clen, file,
                                              NULL, &e);
    if (r == LISA_OK) lisa_model_free(&m);
    if ((r == LISA_OK) != valid) {
        fprintf(stderr, "%s: expected %s, got %s: %s\n", file, valid ? "a model" : "an error", lisa_result_string(r),
                e.message);
        return 1;
    }
    LLVMFuzzerTestOneInput(out, size);
    return fuzz_write_seed(dir, file, out, size);
}

static char *read_file(const char *path) {
    static char buf[4096];
    FILE *f = fopen(path, "rb");
    size_t n;
    if (!f) return NULL;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

int main(int argc, char **argv) {
    static const char small[] =
        "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_act\":\"silu\","
        "\"hidden_size\":4,\"intermediate_size\":6,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
        "\"num_key_value_heads\":1,\"vocab_size\":5,\"max_position_embeddings\":8,\"rms_norm_eps\":1e-05,"
        "\"rope_theta\":500.0,\"rope_scaling\":null,\"attention_bias\":false,\"mlp_bias\":false,"
        "\"tie_word_embeddings\":false,\"head_dim\":2}";
    static const char tied[] =
        "{\"hidden_size\":4,\"intermediate_size\":4,\"num_hidden_layers\":2,\"num_attention_heads\":1,"
        "\"vocab_size\":3,\"tie_word_embeddings\":true,\"rope_scaling\":{\"rope_type\":\"default\"}}";
    static const seed_model s_small = {4, 6, 1, 2, 1, 5, 0, LISA_FILE_F32};
    static const seed_model s_tied = {4, 4, 2, 1, 1, 3, 1, LISA_FILE_F16};
    static const seed_model s_tied_bf = {4, 4, 2, 1, 1, 3, 1, LISA_FILE_BF16};
    static const seed_model s_tiny = {32, 48, 2, 4, 2, 64, 0, LISA_FILE_BF16};
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/hf";
    char cfg[2048];
    const char *tiny;
    int bad = 0;
    if (!fuzz_little_endian()) {
        fprintf(stderr, "seeds are written on little-endian hosts only\n");
        return 1;
    }
    /* valid */
    bad |= write_checked(dir, "small_f32.bin", make_input(small, &s_small, NULL, -1, -1), 1);
    bad |= write_checked(dir, "tied_f16_inv_freq.bin",
                         make_input(tied, &s_tied, "model.layers.1.self_attn.rotary_emb.inv_freq", -1, -1), 1);
    bad |= write_checked(dir, "tied_bf16_lm_head.bin", make_input(tied, &s_tied_bf, "lm_head.weight", -1, -1), 1);
    tiny = read_file("tests/fixtures/hf_tiny/config.json");
    if (tiny) bad |= write_checked(dir, "hf_tiny_config_bf16.bin", make_input(tiny, &s_tiny, NULL, -1, -1), 1);
    /* near misses */
    bad |= write_checked(dir, "missing_tensor.bin", make_input(small, &s_small, NULL, 5, -1), 0);
    bad |= write_checked(dir, "wrong_shape.bin", make_input(small, &s_small, NULL, -1, 2), 0);
    bad |= write_checked(dir, "extra_tensor.bin", make_input(small, &s_small, "model.layers.1.mlp.up_proj.weight", -1, -1), 0);
    bad |= write_checked(dir, "untied_lm_head_twice.bin", make_input(small, &s_small, "lm_head.weight", -1, -1), 0);
    snprintf(cfg, sizeof cfg, "%.*s,\"model_type\":\"mistral\"}", (int)strlen(small) - 1, small);
    bad |= write_checked(dir, "model_type_mistral.bin", make_input(cfg, &s_small, NULL, -1, -1), 0);
    snprintf(cfg, sizeof cfg, "%.*s,\"head_dim\":4}", (int)strlen(small) - 1, small);
    bad |= write_checked(dir, "head_dim_4.bin", make_input(cfg, &s_small, NULL, -1, -1), 0);
    snprintf(cfg, sizeof cfg, "%.*s,\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}", (int)strlen(small) - 1, small);
    bad |= write_checked(dir, "rope_scaling_linear.bin", make_input(cfg, &s_small, NULL, -1, -1), 0);
    snprintf(cfg, sizeof cfg, "%.*s,\"attention_bias\":true}", (int)strlen(small) - 1, small);
    bad |= write_checked(dir, "attention_bias_true.bin", make_input(cfg, &s_small, NULL, -1, -1), 0);
    snprintf(cfg, sizeof cfg, "%.*s,\"num_key_value_heads\":3}", (int)strlen(small) - 1, small);
    bad |= write_checked(dir, "kv_heads_3.bin", make_input(cfg, &s_small, NULL, -1, -1), 0);
    snprintf(cfg, sizeof cfg, "%.*s}", (int)strlen(small) - 20, small);
    bad |= write_checked(dir, "config_truncated.bin", make_input(cfg, &s_small, NULL, -1, -1), 0);
    return bad;
}
#endif
