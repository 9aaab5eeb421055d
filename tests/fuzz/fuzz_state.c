/* libFuzzer harness: lisa_trainer_load_state_memory (training state files, "LSST").

   Every input is loaded through a counting allocator. A failure must return
   LISA_ERR_FORMAT or LISA_ERR_NOMEM (a read from memory cannot fail), with a
   message that names the input, leave the model and the trainer freed,
   nothing allocated, and the data position untouched.

   A success must match the file, decoded here independently of lisa.h (see
   the layout above lisa__state_header): "LSST", version 1, 26 int32 and 9
   float32 settings, 3 uint64 (LISA seed, sampler RNG, data position), the
   active layers, the LISA weights when flagged, the parameters, per block
   int32 flags (1 trains, 2 has moments) and step and the moments, then the
   uint64 checksum. Checked: the settings (defaults filled in), step >= 0,
   the active layers (sorted, distinct, in range, all of them in full mode),
   every block's active flag against the active set and the freeze settings,
   gradients and moments present exactly where they should be, parameters,
   moments and steps equal to the file's, byte counts (the trainer's tables,
   gradients and moments, the activations as lisa_acts_size says, the model)
   adding up to lisa_trainer_total_bytes and to what the allocator holds.
   lisa_trainer_save_state (to a file under /tmp named with the pid) must
   reproduce the input byte for byte, except that settings whose 0 means the
   default (n_kv_heads, norm_eps, rope_theta, lisa_layers, lisa_interval) come
   back resolved (with the checksum to match). Then one lisa_trainer_step on a fixed
   batch (small models only, to keep the fuzzer fast) must keep every
   invariant and advance the step; its state, saved, must load again from the
   file (lisa_trainer_load_state) and save to the same bytes. Then the trainer
   and model are freed (to zero), every allocation of the load is made to fail
   in turn (each must give LISA_ERR_NOMEM cleanly), and the input is loaded
   again with the default allocator, no name, no error struct and no data
   position.

   The checksum: random mutations almost never keep it right, so when the
   independent walk finds where the checksum sits and it does not match, the
   input is also run with the checksum recomputed (lisa.h's own hash, the one
   place this harness is not independent), to reach the checks behind it.

   The bugs found so far (regressions/state/README.md) are fixed in lisa.h;
   their inputs are replayed as regression tests.

   Build and run: tests/fuzz/run.sh. Seeds: build with -DFUZZ_MAKE_SEEDS (no
   -fsanitize=fuzzer) and
   run with the corpus directory as argument. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

#include <unistd.h>

#define ST_INTS 26
#define ST_FLOATS 9
#define ST_U64S 3
#define ST_HEADER (16 + 4 * ST_INTS + 4 * ST_FLOATS + 8 * ST_U64S)
#define ST_MAX_LAYERS (1 << 12)
#define ST_STEP_WORK ((uint64_t)1 << 22) /* bigger models load but take no step */

static uint64_t st_le64(const uint8_t *b) {
    uint64_t w = 0;
    int i;
    for (i = 7; i >= 0; i--) w = w << 8 | b[i];
    return w;
}

static float st_f32(const uint8_t *b) {
    uint32_t u = (uint32_t)fuzz_le32(b);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int same_f(float a, float b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

/* The file walked through, from the header alone plus the block flags. */
typedef struct st_walk {
    int32_t i[ST_INTS];
    float f[ST_FLOATS];
    uint64_t u[ST_U64S];
    uint64_t D, H, L, NH, KV, V, kv, layer, n_params, block_size[ST_MAX_LAYERS + 3];
    int tied, n_blocks, n_active;
    size_t active_at, probs_at, params_at, blocks_at[ST_MAX_LAYERS + 3], checksum_at;
} st_walk;

static st_walk g_w;

/* 1 when the header's sizes make sense and every part up to and including the
   checksum lies inside the data; w->checksum_at then says where it is. */
static int st_walk_file(st_walk *w, const uint8_t *d, size_t size) {
    uint64_t pos;
    int k, b;
    if (size < ST_HEADER || memcmp(d, "LSST", 4) != 0) return 0;
    for (k = 0; k < ST_INTS; k++) w->i[k] = fuzz_le32(d + 16 + 4 * k);
    for (k = 0; k < ST_FLOATS; k++) w->f[k] = st_f32(d + 16 + 4 * ST_INTS + 4 * k);
    for (k = 0; k < ST_U64S; k++) w->u[k] = st_le64(d + 16 + 4 * ST_INTS + 4 * ST_FLOATS + 8 * k);
    if (w->i[0] <= 0 || w->i[1] <= 0 || w->i[2] <= 0 || w->i[2] > ST_MAX_LAYERS || w->i[3] <= 0 || w->i[4] < 0 ||
        w->i[5] <= 0 || w->i[25] < 0 || w->i[25] > w->i[2] || (w->i[7] != 0 && w->i[7] != 1))
        return 0;
    w->D = (uint64_t)w->i[0];
    w->H = (uint64_t)w->i[1];
    w->L = (uint64_t)w->i[2];
    w->NH = (uint64_t)w->i[3];
    w->KV = w->i[4] ? (uint64_t)w->i[4] : w->NH;
    w->V = (uint64_t)w->i[5];
    w->tied = w->i[7];
    if (w->D > ((uint64_t)1 << 20) || w->H > ((uint64_t)1 << 22) || w->V > ((uint64_t)1 << 24)) return 0;
    w->kv = w->D / w->NH * w->KV;
    w->layer = 2 * w->D + 2 * w->D * w->D + 2 * w->kv * w->D + 3 * w->D * w->H;
    w->n_params = w->V * w->D * (w->tied ? 1 : 2) + w->D + w->L * w->layer;
    if (w->n_params > size) return 0; /* 4 bytes each: cannot fit */
    w->n_blocks = (int)w->L + 3;
    w->block_size[0] = w->V * w->D;
    for (b = 1; b <= (int)w->L; b++) w->block_size[b] = w->layer;
    w->block_size[w->L + 1] = w->D;
    w->block_size[w->L + 2] = w->tied ? 0 : w->V * w->D;
    w->n_active = w->i[25];
    pos = ST_HEADER;
    w->active_at = (size_t)pos;
    pos += 4 * (uint64_t)w->n_active;
    w->probs_at = (size_t)pos;
    if (w->i[18] == 1) pos += 4 * w->L;
    w->params_at = (size_t)pos;
    pos += 4 * w->n_params;
    for (b = 0; b < w->n_blocks; b++) {
        if (pos + 8 > size) return 0;
        w->blocks_at[b] = (size_t)pos;
        if (fuzz_le32(d + pos) & 2) pos += 2 * 4 * w->block_size[b];
        pos += 8;
    }
    if (pos + 8 > size) return 0;
    w->checksum_at = (size_t)pos;
    return 1;
}

/* lisa.h's checksum of the first n bytes. */
static uint64_t st_checksum(const uint8_t *d, size_t n) {
    lisa__hash h;
    memset(&h, 0, sizeof h);
    lisa__hash_bytes(&h, d, n);
    return lisa__hash_value(&h);
}

static void st_put64(uint8_t *b, uint64_t v) {
    int i;
    for (i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static void st_put32(uint8_t *b, uint32_t v) {
    int i;
    for (i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static int st_layer_active(const lisa_trainer *t, int l) {
    int i;
    for (i = 0; i < t->n_active; i++)
        if (t->active_layers[i] == l) return 1;
    return 0;
}

/* Invariants that hold for any loaded or stepped trainer. */
static void check_invariants(const lisa_trainer *t, const lisa_model *m, const char *when) {
    const lisa_config *c = &m->config;
    const lisa_train_config *tc = &t->config;
    int L = c->n_layers, nb = L + 3, b, i;
    size_t grads = 0, moments = 0, tables, act, scratch;
    FUZZ_CHECK(t->model == m, "%s: the trainer's model is elsewhere", when);
    FUZZ_CHECK(t->step >= 0, "%s: step %d", when, t->step);
    FUZZ_CHECK(t->n_active >= 0 && t->n_active <= L, "%s: n_active %d of %d layers", when, t->n_active, L);
    FUZZ_CHECK(tc->mode != LISA_MODE_FULL || t->n_active == L, "%s: full mode with %d of %d layers active", when,
               t->n_active, L);
    for (i = 0; i < t->n_active; i++)
        FUZZ_CHECK(t->active_layers[i] >= 0 && t->active_layers[i] < L &&
                       (i == 0 || t->active_layers[i - 1] < t->active_layers[i]),
                   "%s: active layers not sorted, distinct and in range at %d", when, i);
    for (b = 0; b < nb; b++) {
        const lisa_block_state *s = &t->blocks[b];
        size_t n = lisa_block_size(c, b);
        int want;
        if (b >= 1 && b <= L) want = st_layer_active(t, b - 1);
        else if (n == 0) want = 0;
        else if (b == 0) want = !tc->freeze_embed && !(c->tied_head && tc->freeze_head);
        else if (b == L + 1) want = !tc->freeze_final_norm;
        else want = !tc->freeze_head;
        FUZZ_CHECK(t->block_sizes[b] == n, "%s: block %d size %lu, expected %lu", when, b,
                   (unsigned long)t->block_sizes[b], (unsigned long)n);
        FUZZ_CHECK(s->active == want, "%s: block %d active %d, expected %d", when, b, s->active, want);
        FUZZ_CHECK(t->grad_ptrs[b] == s->grad, "%s: block %d: grad_ptrs differs from grad", when, b);
        if (s->active) {
            FUZZ_CHECK(s->grad != NULL && s->m != NULL && s->v == s->m + n, "%s: active block %d lacks state", when, b);
        } else {
            FUZZ_CHECK(s->grad == NULL, "%s: inactive block %d has a gradient", when, b);
            FUZZ_CHECK(s->m == NULL || tc->keep_state, "%s: inactive block %d kept moments without keep_state", when,
                       b);
        }
        FUZZ_CHECK(s->m == NULL || (n > 0 && s->v == s->m + n), "%s: block %d moments misplaced", when, b);
        FUZZ_CHECK(s->step >= 0 && (s->m != NULL || s->step == 0), "%s: block %d step %d", when, b, s->step);
        if (s->grad) grads += n;
        if (s->m) moments += 2 * n;
    }
    tables = (size_t)nb * (sizeof(lisa_block_state) + sizeof(float *) + sizeof(size_t)) + 2 * (size_t)L * sizeof(int) +
             (t->probs ? (size_t)L * sizeof(float) : 0);
    FUZZ_CHECK(t->bytes == tables + (grads + moments) * sizeof(float),
               "%s: trainer says %lu bytes: tables %lu, gradients %lu floats, moments %lu floats", when,
               (unsigned long)t->bytes, (unsigned long)tables, (unsigned long)grads, (unsigned long)moments);
    lisa_acts_size(c, tc->batch, tc->seq, tc->checkpointing, &act, &scratch);
    FUZZ_CHECK(t->acts.bytes == act + scratch, "%s: activations hold %lu bytes, lisa_acts_size says %lu", when,
               (unsigned long)t->acts.bytes, (unsigned long)(act + scratch));
    /* At least the layer inputs, the logits and each kept layer's MLP values,
       in 64 bits: where size_t is 32 bits a wrapped size shows here. */
    {
        uint64_t BT = (uint64_t)tc->batch * (uint64_t)tc->seq, sets = tc->checkpointing ? 1 : (uint64_t)L;
        uint64_t least = 4 * BT * ((uint64_t)(L + 1) * (uint64_t)c->dim + (uint64_t)c->vocab_size +
                                   sets * 3 * (uint64_t)c->hidden_dim);
        FUZZ_CHECK((uint64_t)t->acts.bytes >= least, "%s: activations hold %lu bytes, batch %d x seq %d needs %.0f",
                   when, (unsigned long)t->acts.bytes, tc->batch, tc->seq, (double)least);
    }
    FUZZ_CHECK(m->bytes == m->layout.n_params * sizeof(float) + (size_t)L * sizeof(lisa_layer_weights),
               "%s: model says %lu bytes", when, (unsigned long)m->bytes);
    FUZZ_CHECK(lisa_trainer_total_bytes(t) == t->bytes + t->acts.bytes + m->bytes &&
                   lisa_trainer_total_bytes(t) == fuzz_cnt.live_bytes,
               "%s: total %lu bytes, the allocator holds %lu", when, (unsigned long)lisa_trainer_total_bytes(t),
               (unsigned long)fuzz_cnt.live_bytes);
    FUZZ_CHECK(t->peak_bytes >= lisa_trainer_total_bytes(t), "%s: peak %lu below the total %lu", when,
               (unsigned long)t->peak_bytes, (unsigned long)lisa_trainer_total_bytes(t));
    if (tc->mode != LISA_MODE_FULL)
        FUZZ_CHECK(t->sampler.next >= 0 && t->sampler.next < L, "%s: sampler at %d", when, t->sampler.next);
}

/* The loaded trainer and model against the file (walked in w). */
static void check_loaded(const lisa_trainer *t, const lisa_model *m, const st_walk *w, const uint8_t *d,
                         size_t size, uint64_t position) {
    const lisa_config *c = &m->config;
    const lisa_train_config *tc = &t->config;
    const int32_t *i = w->i;
    const float *f = w->f;
    int active[ST_MAX_LAYERS], k, j, b, L = c->n_layers;
    FUZZ_CHECK(w->checksum_at + 8 == size, "loaded %lu bytes, the walk ends at %lu", (unsigned long)size,
               (unsigned long)(w->checksum_at + 8));
    FUZZ_CHECK(st_le64(d + w->checksum_at) == st_checksum(d, w->checksum_at), "loaded with a wrong checksum");
    FUZZ_CHECK(fuzz_le32(d + 4) == 1 && fuzz_le32(d + 8) == ST_INTS && fuzz_le32(d + 12) == ST_FLOATS,
               "accepted version %d (%d ints, %d floats)", fuzz_le32(d + 4), fuzz_le32(d + 8), fuzz_le32(d + 12));
    /* the model's settings, defaults filled in */
    FUZZ_CHECK(c->dim == i[0] && c->hidden_dim == i[1] && c->n_layers == i[2] && c->n_heads == i[3] &&
                   c->n_kv_heads == (i[4] ? i[4] : i[3]) && c->vocab_size == i[5] && c->max_seq_len == i[6] &&
                   c->tied_head == i[7],
               "model config differs from the file");
    FUZZ_CHECK(same_f(c->norm_eps, f[0] == 0.0f ? 1e-5f : f[0]) && same_f(c->rope_theta, f[1] == 0.0f ? 10000.0f : f[1]),
               "norm_eps %g rope_theta %g, the file says %g %g", (double)c->norm_eps, (double)c->rope_theta,
               (double)f[0], (double)f[1]);
    FUZZ_CHECK(m->layout.n_params == w->n_params, "n_params %lu, the file implies %lu",
               (unsigned long)m->layout.n_params, (unsigned long)w->n_params);
    /* the training settings */
    FUZZ_CHECK(tc->batch == i[8] && tc->seq == i[9] && (int)tc->schedule.kind == i[10] &&
                   tc->schedule.warmup == i[11] && tc->schedule.total_steps == i[12] &&
                   tc->checkpointing == i[13] && (int)tc->mode == i[14],
               "training config differs from the file (ints 8..14)");
    FUZZ_CHECK(tc->lisa_layers == (i[15] ? i[15] : 2) && tc->lisa_interval == (i[16] ? i[16] : 20) &&
                   (int)tc->lisa_order == i[17] && tc->freeze_embed == i[19] && tc->freeze_final_norm == i[20] &&
                   tc->freeze_head == i[21] && tc->keep_state == i[22],
               "training config differs from the file (ints 15..22)");
    FUZZ_CHECK(same_f(tc->schedule.lr, f[2]) && same_f(tc->schedule.min_lr, f[3]) && same_f(tc->beta1, f[4]) &&
                   same_f(tc->beta2, f[5]) && same_f(tc->eps, f[6]) && same_f(tc->weight_decay, f[7]) &&
                   same_f(tc->grad_clip, f[8]) && tc->lisa_seed == w->u[0],
               "training config differs from the file (floats, seed)");
    FUZZ_CHECK(i[18] == 0 || i[18] == 1, "accepted weights flag %d", i[18]);
    if (i[18] && tc->mode != LISA_MODE_FULL) {
        FUZZ_CHECK(tc->lisa_probs == t->probs && t->probs != NULL, "LISA weights not kept");
        for (k = 0; k < L; k++)
            FUZZ_CHECK(same_f(t->probs[k], st_f32(d + w->probs_at + 4 * (size_t)k)) && t->probs[k] >= 0.0f,
                       "LISA weight %d differs from the file's", k);
    } else {
        FUZZ_CHECK(tc->lisa_probs == NULL && t->probs == NULL, "LISA weights without the flag (or in full mode)");
    }
    /* progress */
    FUZZ_CHECK(t->step == i[23] && i[23] >= 0, "step %d, the file says %d", t->step, i[23]);
    FUZZ_CHECK(t->sampler.next == i[24] && t->sampler.rng.state == w->u[1], "sampler position or RNG differs");
    FUZZ_CHECK(position == w->u[2], "data position %lu, the file says %lu", (unsigned long)position,
               (unsigned long)w->u[2]);
    /* the active layers: the file's, sorted */
    FUZZ_CHECK(t->n_active == w->n_active, "%d active layers, the file lists %d", t->n_active, w->n_active);
    for (k = 0; k < w->n_active; k++) active[k] = fuzz_le32(d + w->active_at + 4 * (size_t)k);
    for (k = 0; k < w->n_active; k++) {
        FUZZ_CHECK(active[k] >= 0 && active[k] < L, "accepted active layer %d", active[k]);
        for (j = 0; j < k; j++) FUZZ_CHECK(active[j] != active[k], "accepted active layer %d twice", active[k]);
        FUZZ_CHECK(st_layer_active(t, active[k]), "file's active layer %d is not active", active[k]);
    }
    /* parameters and per-block state */
    if (fuzz_little_endian()) {
        FUZZ_CHECK(memcmp(m->params, d + w->params_at, w->n_params * 4) == 0, "parameters differ from the file's");
    }
    for (b = 0; b < w->n_blocks; b++) {
        const lisa_block_state *s = &t->blocks[b];
        int32_t flags = fuzz_le32(d + w->blocks_at[b]), step = fuzz_le32(d + w->blocks_at[b] + 4);
        FUZZ_CHECK((flags & ~3) == 0, "block %d: accepted flags %d", b, flags);
        FUZZ_CHECK((flags & 1) == s->active, "block %d: flags %d, active %d", b, flags, s->active);
        FUZZ_CHECK(((flags & 2) != 0) == (s->m != NULL), "block %d: flags %d, moments %s", b, flags,
                   s->m ? "present" : "absent");
        if (s->m) {
            FUZZ_CHECK(s->step == step, "block %d: step %d, the file says %d", b, s->step, step);
            if (fuzz_little_endian())
                FUZZ_CHECK(memcmp(s->m, d + w->blocks_at[b] + 8, 2 * 4 * w->block_size[b]) == 0,
                           "block %d: moments differ from the file's", b);
        }
    }
}

static char g_path[256];

static void remove_temp(void) {
    if (g_path[0]) remove(g_path);
}

static uint8_t *read_whole(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;
    *size = 0;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = (uint8_t *)malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            *size = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* Saves t (data position pos) and returns the file's bytes; the file is
   removed unless keep (a crash between the two leaves it behind). */
static uint8_t *save_bytes(const lisa_trainer *t, uint64_t pos, size_t *size, int keep) {
    lisa_error err;
    lisa_result r;
    uint8_t *bytes;
    if (!g_path[0]) {
        snprintf(g_path, sizeof g_path, "/tmp/lisa-fuzz-state-%ld.lsst", (long)getpid());
        atexit(remove_temp);
    }
    r = lisa_trainer_save_state(t, g_path, pos, &err);
    FUZZ_CHECK(r == LISA_OK, "save to %s: %s", g_path, err.message);
    bytes = read_whole(g_path, size);
    FUZZ_CHECK(bytes != NULL, "cannot read back %s", g_path);
    if (!keep) remove(g_path);
    return bytes;
}

/* One step on a fixed batch, then save, load from the file, save again. */
static void step_and_resume(lisa_trainer *t, lisa_model *m) {
    const lisa_train_config *tc = &t->config;
    size_t BT = (size_t)tc->batch * (size_t)tc->seq, k, size1, size2;
    int *inputs, *targets, before = t->step;
    lisa_step_info info;
    lisa_result r;
    lisa_allocator a = fuzz_allocator();
    lisa_model m2;
    lisa_trainer t2;
    lisa_error err;
    uint64_t pos = 0;
    uint8_t *saved1, *saved2;
    if ((uint64_t)BT * (m->layout.n_params + (uint64_t)BT * (uint64_t)m->config.dim * (uint64_t)m->config.n_layers) >
        ST_STEP_WORK)
        return;
    inputs = (int *)malloc(BT * sizeof(int));
    targets = (int *)malloc(BT * sizeof(int));
    FUZZ_CHECK(inputs && targets, "out of memory");
    for (k = 0; k < BT; k++) {
        inputs[k] = (int)((k * 5 + 1) % (size_t)m->config.vocab_size);
        targets[k] = k % 7 == 6 ? LISA_IGNORE : (int)((k * 3 + 2) % (size_t)m->config.vocab_size);
    }
    r = lisa_trainer_step(t, inputs, targets, &info);
    free(inputs);
    free(targets);
    FUZZ_CHECK(r == LISA_OK || r == LISA_ERR_NOMEM, "step: %s", lisa_result_string(r));
    if (r == LISA_OK)
        FUZZ_CHECK(t->step == before + 1 && info.step == t->step, "step %d after a step from %d", t->step, before);
    else
        FUZZ_CHECK(t->step == before, "a refused step moved the step from %d to %d", before, t->step);
    check_invariants(t, m, "after a step");
    /* resume: the saved state loads from its file and saves to the same bytes */
    saved1 = save_bytes(t, 12345, &size1, 1);
    r = lisa_trainer_load_state(&t2, &m2, g_path, &a, &pos, &err);
    remove(g_path);
    FUZZ_CHECK(r == LISA_OK && pos == 12345, "loading the state saved after a step: %s", err.message);
    saved2 = save_bytes(&t2, pos, &size2, 0);
    FUZZ_CHECK(size1 == size2 && memcmp(saved1, saved2, size1) == 0, "load + save after a step changes the file");
    free(saved1);
    free(saved2);
    lisa_trainer_free(&t2);
    lisa_model_free(&m2);
}

/* The input as lisa_trainer_save_state should write it back: the settings
   whose 0 means "the default" (n_kv_heads, norm_eps, rope_theta, lisa_layers,
   lisa_interval) with the default filled in, and the checksum recomputed. */
static uint8_t *canonical_copy(const st_walk *w, const uint8_t *d, size_t size) {
    uint8_t *c = (uint8_t *)malloc(size);
    const float eps = 1e-5f, theta = 10000.0f;
    uint32_t u;
    FUZZ_CHECK(c != NULL, "out of memory");
    memcpy(c, d, size);
    if (w->i[4] == 0) memcpy(c + 16 + 4 * 4, d + 16 + 4 * 3, 4);
    if (w->i[15] == 0) c[16 + 4 * 15] = 2;
    if (w->i[16] == 0) c[16 + 4 * 16] = 20;
    if (w->f[0] == 0.0f) {
        memcpy(&u, &eps, 4);
        st_put32(c + 16 + 4 * ST_INTS, u);
    }
    if (w->f[1] == 0.0f) {
        memcpy(&u, &theta, 4);
        st_put32(c + 16 + 4 * ST_INTS + 4, u);
    }
    st_put64(c + w->checksum_at, st_checksum(c, w->checksum_at));
    return c;
}

static void run_state(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input.lsst";
    lisa_allocator a = fuzz_allocator();
    lisa_model m;
    lisa_trainer t;
    lisa_error err;
    lisa_result r, r2;
    uint64_t pos = 0x5ca1ab1e;
    long k, n_allocs;
    int walked = st_walk_file(&g_w, data, size);

    fuzz_alloc_reset(-1);
    memset(&err, 'x', sizeof err); /* no terminator: the loader must write one */
    r = lisa_trainer_load_state_memory(&t, &m, data, size, name, &a, &pos, &err);
    if (r != LISA_OK) {
        fuzz_check_failure(r, &err, name);
        FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM,
                   "result %s from memory: \"%s\"",
                   lisa_result_string(r), err.message);
        FUZZ_CHECK(m.params == NULL && m.layers == NULL && m.bytes == 0, "failed load left a model behind");
        FUZZ_CHECK(t.model == NULL && t.blocks == NULL && t.bytes == 0 && t.acts.bytes == 0 && t.acts.buffer == NULL,
                   "failed load left a trainer behind");
        FUZZ_CHECK(pos == 0x5ca1ab1e, "failed load wrote the data position");
        lisa_trainer_free(&t); /* harmless on a failed load */
        lisa_model_free(&m);
        fuzz_check_nothing_live("after freeing a failed load");
    } else {
        uint8_t *saved, *canonical;
        size_t saved_size;
        FUZZ_CHECK(err.code == LISA_OK && err.message[0] == 0, "success with error \"%.*s\"",
                   (int)sizeof err.message, err.message);
        FUZZ_CHECK(walked, "loaded a file whose layout does not add up");
        check_invariants(&t, &m, "after loading");
        check_loaded(&t, &m, &g_w, data, size, pos);
        n_allocs = fuzz_cnt.n_ok;
        saved = save_bytes(&t, pos, &saved_size, 0);
        canonical = canonical_copy(&g_w, data, size);
        FUZZ_CHECK(saved_size == size && memcmp(saved, canonical, size) == 0,
                   "load + save does not reproduce the input (%lu bytes saved, %lu loaded)",
                   (unsigned long)saved_size, (unsigned long)size);
        free(saved);
        free(canonical);
        step_and_resume(&t, &m);
        lisa_trainer_free(&t);
        lisa_model_free(&m);
        FUZZ_CHECK(t.bytes == 0 && t.acts.bytes == 0 && m.bytes == 0, "bytes left after freeing: %lu %lu %lu",
                   (unsigned long)t.bytes, (unsigned long)t.acts.bytes, (unsigned long)m.bytes);
        fuzz_check_nothing_live("after lisa_trainer_free and lisa_model_free");
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = lisa_trainer_load_state_memory(&t, &m, data, size, name, &a, &pos, &err);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: result %s", k, lisa_result_string(r2));
            fuzz_check_failure(r2, &err, name);
        }
    }
    /* Default allocator, no name, no error struct, no data position: the same
       outcome. Not after LISA_ERR_NOMEM: the activations' size comes from the
       settings (batch x seq), not from the data, so a small file may ask for
       gigabytes that only the counting allocator refuses. */
    if (r != LISA_ERR_NOMEM) {
        r2 = lisa_trainer_load_state_memory(&t, &m, data, size, NULL, NULL, NULL, NULL);
        FUZZ_CHECK(r2 == r, "result %s without allocator/error, %s with", lisa_result_string(r2),
                   lisa_result_string(r));
        if (r2 == LISA_OK) {
            lisa_trainer_free(&t);
            lisa_model_free(&m);
        }
    }
    fuzz_alloc_reset(-1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    run_state(data, size);
    /* Past the checksum: the same input with the checksum made right. */
    if (st_walk_file(&g_w, data, size) && st_le64(data + g_w.checksum_at) != st_checksum(data, g_w.checksum_at)) {
        uint8_t *copy = (uint8_t *)malloc(size);
        FUZZ_CHECK(copy != NULL, "out of memory");
        memcpy(copy, data, size);
        st_put64(copy + g_w.checksum_at, st_checksum(copy, g_w.checksum_at));
        run_state(copy, size);
        free(copy);
    }
    return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* Seed corpus: small valid states (dim 8, 2 layers, vocab 16, batch 1, seq 4)
   in each mode, and near misses. */

static lisa_config seed_config(int tied) {
    lisa_config c;
    memset(&c, 0, sizeof c);
    c.dim = 8;
    c.hidden_dim = 8;
    c.n_layers = 2;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.vocab_size = 16;
    c.max_seq_len = 4;
    c.tied_head = tied;
    return c;
}

static const float seed_probs[2] = {1.0f, 3.0f};

/* A state after n_steps of tc on a fixed batch. Returns malloc'd bytes. */
static uint8_t *make_state(const lisa_config *c, const lisa_train_config *tc, int n_steps, const int *manual,
                           int n_manual, uint64_t pos, size_t *size) {
    lisa_model m;
    lisa_trainer t;
    lisa_error err;
    int in[4] = {1, 5, 9, 2}, tg[4] = {5, 9, 2, LISA_IGNORE}, s;
    uint8_t *bytes;
    if (lisa_model_init(&m, c, NULL, &err) != LISA_OK || lisa_trainer_init(&t, &m, tc, NULL, &err) != LISA_OK) {
        fprintf(stderr, "seed setup: %s\n", err.message);
        exit(1);
    }
    lisa_model_init_random(&m, 7);
    if (manual && lisa_trainer_set_active_layers(&t, manual, n_manual) != LISA_OK) exit(1);
    for (s = 0; s < n_steps; s++) lisa_trainer_step(&t, in, tg, NULL);
    fuzz_alloc_reset(-1);
    bytes = save_bytes(&t, pos, size, 0);
    lisa_trainer_free(&t);
    lisa_model_free(&m);
    return bytes;
}

static int write_checked(const char *dir, const char *file, const uint8_t *data, size_t size, int valid) {
    lisa_model m;
    lisa_trainer t;
    lisa_error err;
    lisa_result r = lisa_trainer_load_state_memory(&t, &m, data, size, file, NULL, NULL, &err);
    if ((r == LISA_OK) != valid) {
        fprintf(stderr, "%s: expected %s, got %s (%s)\n", file, valid ? "a valid state" : "an error",
                lisa_result_string(r), r ? err.message : "");
        return 1;
    }
    if (r == LISA_OK) {
        lisa_trainer_free(&t);
        lisa_model_free(&m);
    }
    LLVMFuzzerTestOneInput(data, size);
    return fuzz_write_seed(dir, file, data, size);
}

/* Recomputes the checksum after an edit (the walk must still add up). */
static void fix_checksum(uint8_t *d, size_t size) {
    if (!st_walk_file(&g_w, d, size)) {
        fprintf(stderr, "fix_checksum: the walk fails\n");
        exit(1);
    }
    st_put64(d + g_w.checksum_at, st_checksum(d, g_w.checksum_at));
}

static void set32(uint8_t *b, int32_t v) {
    uint32_t u = (uint32_t)v;
    b[0] = (uint8_t)u;
    b[1] = (uint8_t)(u >> 8);
    b[2] = (uint8_t)(u >> 16);
    b[3] = (uint8_t)(u >> 24);
}

#define INT_AT(k) (16 + 4 * (k))

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/state";
    lisa_config tied = seed_config(1), untied = seed_config(0);
    lisa_train_config tc;
    uint8_t *d, *e;
    size_t n;
    int bad = 0, one = 1;
    if (!fuzz_little_endian()) {
        fprintf(stderr, "seeds are written on little-endian hosts only\n");
        return 1;
    }
    /* valid */
    tc = lisa_train_config_default();
    tc.batch = 1;
    tc.seq = 4;
    tc.schedule.lr = 1e-2f;
    d = make_state(&tied, &tc, 1, NULL, 0, 7, &n); /* full mode */
    bad |= write_checked(dir, "full_tied.lsst", d, n, 1);
    /* near misses of it */
    bad |= write_checked(dir, "full_truncated_by_1.lsst", d, n - 1, 0);
    e = (uint8_t *)malloc(n + 1);
    memcpy(e, d, n);
    e[n] = 0;
    bad |= write_checked(dir, "full_trailing_1.lsst", e, n + 1, 0);
    e[n - 1] ^= 1;
    bad |= write_checked(dir, "full_checksum_flipped.lsst", e, n, 0);
    memcpy(e, d, n);
    set32(e + 4, 2);
    bad |= write_checked(dir, "version_2.lsst", e, n, 0);
    memcpy(e, d, n);
    e[0] = 'X';
    bad |= write_checked(dir, "magic.lsst", e, n, 0);
    memcpy(e, d, n);
    set32(e + INT_AT(23), -1);
    fix_checksum(e, n);
    bad |= write_checked(dir, "full_step_negative.lsst", e, n, 0);
    memcpy(e, d, n);
    set32(e + INT_AT(25), 1); /* full mode needs every layer; the walk moves */
    bad |= write_checked(dir, "full_one_active.lsst", e, n, 0);
    memcpy(e, d, n);
    set32(e + INT_AT(20), 1); /* freeze_final_norm, while the file's final norm trains */
    fix_checksum(e, n);
    bad |= write_checked(dir, "full_flags_disagree.lsst", e, n, 0);
    free(e);
    free(d);

    /* LISA, mid-interval: gamma 1, K 3, 4 steps; untied, cosine, clipping, checkpointing */
    tc = lisa_train_config_default();
    tc.batch = 1;
    tc.seq = 4;
    tc.mode = LISA_MODE_LISA;
    tc.lisa_layers = 1;
    tc.lisa_interval = 3;
    tc.lisa_seed = 11;
    tc.schedule.kind = LISA_SCHEDULE_COSINE;
    tc.schedule.warmup = 1;
    tc.schedule.total_steps = 10;
    tc.schedule.lr = 1e-2f;
    tc.schedule.min_lr = 1e-3f;
    tc.grad_clip = 1.0f;
    tc.checkpointing = 1;
    d = make_state(&untied, &tc, 4, NULL, 0, 123456789, &n);
    bad |= write_checked(dir, "lisa_mid_interval.lsst", d, n, 1);
    e = (uint8_t *)malloc(n);
    memcpy(e, d, n);
    set32(e + INT_AT(15), 3); /* gamma 3 of 2 layers */
    fix_checksum(e, n);
    bad |= write_checked(dir, "lisa_gamma_over.lsst", e, n, 0);
    memcpy(e, d, n);
    set32(e + ST_HEADER, 2); /* active layer 2 of 2 */
    fix_checksum(e, n);
    bad |= write_checked(dir, "lisa_active_out_of_range.lsst", e, n, 0);
    memcpy(e, d, n);
    set32(e + INT_AT(24), 2); /* sampler position 2 of 2 */
    fix_checksum(e, n);
    bad |= write_checked(dir, "lisa_sampler_next_over.lsst", e, n, 0);
    free(e);
    free(d);

    /* LISA with keep_state and weights: gamma 1, K 1, 3 steps (switches keep moments) */
    tc = lisa_train_config_default();
    tc.batch = 1;
    tc.seq = 4;
    tc.mode = LISA_MODE_LISA;
    tc.lisa_layers = 1;
    tc.lisa_interval = 1;
    tc.lisa_probs = seed_probs;
    tc.lisa_seed = 5;
    tc.keep_state = 1;
    tc.weight_decay = 0.1f;
    tc.freeze_final_norm = 1;
    d = make_state(&tied, &tc, 3, NULL, 0, 3, &n);
    bad |= write_checked(dir, "lisa_keep_state_probs.lsst", d, n, 1);
    e = (uint8_t *)malloc(n);
    memcpy(e, d, n);
    set32(e + ST_HEADER + 4, (int32_t)0xbf800000u); /* weight -1 for layer 0 (after the one active layer) */
    fix_checksum(e, n);
    bad |= write_checked(dir, "lisa_probs_negative.lsst", e, n, 0);
    memcpy(e, d, n);
    set32(e + INT_AT(22), 0); /* keep_state off, yet an inactive layer has moments */
    fix_checksum(e, n);
    bad |= write_checked(dir, "lisa_moments_without_keep_state.lsst", e, n, 0);
    free(e);
    free(d);

    /* LISA in cyclic order, saved before its first step: no layer active yet */
    tc = lisa_train_config_default();
    tc.batch = 1;
    tc.seq = 4;
    tc.mode = LISA_MODE_LISA;
    tc.lisa_order = LISA_ORDER_CYCLIC;
    tc.lisa_layers = 2;
    tc.lisa_interval = 2;
    d = make_state(&untied, &tc, 0, NULL, 0, 0, &n);
    bad |= write_checked(dir, "lisa_cyclic_fresh.lsst", d, n, 1);
    free(d);

    /* manual: layer 1 only, embedding frozen, one step */
    tc = lisa_train_config_default();
    tc.batch = 1;
    tc.seq = 4;
    tc.mode = LISA_MODE_MANUAL;
    tc.freeze_embed = 1;
    tc.schedule.kind = LISA_SCHEDULE_LINEAR;
    tc.schedule.total_steps = 5;
    d = make_state(&tied, &tc, 1, &one, 1, 1, &n);
    bad |= write_checked(dir, "manual_layer1.lsst", d, n, 1);
    free(d);

    bad |= write_checked(dir, "header_only.lsst", (const uint8_t *)"LSST\1\0\0\0\32\0\0\0\11\0\0\0", 16, 0);
    return bad;
}
#endif
