/* Training state files: a run stopped and resumed from a state file is bitwise
   the run that never stopped (full and LISA modes, mid-interval, kept moments,
   weighted sampling, checkpointing); malformed files are rejected without a
   leak; a save that fails over an existing state file leaves it intact
   (tests/save_fail.h); a writer killed mid-save, as it must be at least once,
   leaves the previous file or a complete new one. */
#define _POSIX_C_SOURCE 200809L
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "test.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "save_fail.h"

#define STEPS 11
#define B 2
#define T 8

/* Counts live bytes, so every failure path can be checked for leaks. */
typedef struct counter {
    long long live;
} counter;

static void *count_alloc(void *user, size_t size) {
    void *p = malloc(size);
    if (p) ((counter *)user)->live += (long long)size;
    return p;
}

static void count_free(void *user, void *p, size_t size) {
    ((counter *)user)->live -= (long long)size;
    free(p);
}

static lisa_config small_config(void) {
    lisa_config c;
    memset(&c, 0, sizeof c);
    c.dim = 16; c.hidden_dim = 24; c.n_layers = 4; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 29; c.max_seq_len = T; c.tied_head = 0;
    return c;
}

/* The batch of step s: a deterministic function of s, like a token file. */
static void batch_of(int s, int *in, int *tg) {
    int i;
    for (i = 0; i < B * T; i++) {
        in[i] = (s * 7 + i * 3) % 29;
        tg[i] = i % 5 == 4 ? LISA_IGNORE : (s * 5 + i * 11 + 1) % 29;
    }
}

typedef struct setup {
    const char *name;
    lisa_train_config tc;
} setup;

static float weights4[4] = {1.0f, 0.0f, 2.0f, 3.0f};

static int make_setups(setup *s) {
    lisa_train_config base = lisa_train_config_default();
    int n = 0;
    base.batch = B;
    base.seq = T;
    base.schedule.kind = LISA_SCHEDULE_COSINE;
    base.schedule.lr = 1e-2f;
    base.schedule.min_lr = 1e-3f;
    base.schedule.warmup = 2;
    base.schedule.total_steps = STEPS;
    base.weight_decay = 0.1f;
    base.grad_clip = 1.0f;
    s[n].name = "full";
    s[n++].tc = base;
    s[n].name = "lisa";
    s[n].tc = base;
    s[n].tc.mode = LISA_MODE_LISA;
    s[n].tc.lisa_layers = 2;
    s[n].tc.lisa_interval = 3;
    s[n++].tc.lisa_seed = 5;
    s[n] = s[n - 1];
    s[n].name = "lisa keep-state checkpointing";
    s[n].tc.keep_state = 1;
    s[n++].tc.checkpointing = 1;
    s[n] = s[n - 2];
    s[n].name = "lisa weighted, frozen embedding";
    s[n].tc.lisa_probs = weights4;
    s[n].tc.lisa_layers = 1;
    s[n++].tc.freeze_embed = 1;
    s[n] = s[n - 3];
    s[n].name = "lisa cyclic";
    s[n++].tc.lisa_order = LISA_ORDER_CYCLIC;
    return n;
}

/* Steps from..to-1 of trainer t, losses into out. */
static void run_steps(lisa_trainer *t, int from, int to, float *out) {
    int in[B * T], tg[B * T], s;
    for (s = from; s < to; s++) {
        lisa_step_info info;
        batch_of(s, in, tg);
        lisa_trainer_step(t, in, tg, &info);
        out[s] = info.loss;
    }
}

static void test_resume(const char *dir) {
    setup setups[8];
    int n = make_setups(setups), k, stop;
    lisa_config c = small_config();
    char path[512];
    snprintf(path, sizeof path, "%s/state.lsst", dir);
    for (k = 0; k < n; k++)
        for (stop = 1; stop < STEPS; stop += 3) { /* stops at 1, 4, 7, 10: mid-interval and on it */
            lisa_model m, m2;
            lisa_trainer t, t2;
            lisa_error err;
            lisa_memory_plan plan;
            float whole[STEPS], resumed[STEPS];
            float *final_whole;
            uint64_t pos = 0;
            counter cnt = {0};
            lisa_allocator al;
            al.alloc = count_alloc;
            al.free = count_free;
            al.user = &cnt;
            /* uninterrupted */
            lisa_model_init(&m, &c, NULL, NULL);
            lisa_model_init_random(&m, 3);
            lisa_trainer_init(&t, &m, &setups[k].tc, NULL, NULL);
            run_steps(&t, 0, STEPS, whole);
            final_whole = (float *)malloc(m.layout.n_params * sizeof(float));
            memcpy(final_whole, m.params, m.layout.n_params * sizeof(float));
            lisa_trainer_free(&t);
            lisa_model_free(&m);
            /* stopped after `stop` steps, saved, freed, loaded, continued */
            lisa_model_init(&m, &c, NULL, NULL);
            lisa_model_init_random(&m, 3);
            lisa_trainer_init(&t, &m, &setups[k].tc, NULL, NULL);
            run_steps(&t, 0, stop, resumed);
            CHECK(lisa_trainer_save_state(&t, path, (uint64_t)stop * 1000 + 7, &err) == LISA_OK, "%s: save: %s",
                  setups[k].name, err.message);
            lisa_trainer_free(&t);
            lisa_model_free(&m);
            if (lisa_trainer_load_state(&t2, &m2, path, &al, &pos, &err) != LISA_OK) {
                CHECK(0, "%s: load after %d steps: %s", setups[k].name, stop, err.message);
                free(final_whole);
                continue;
            }
            CHECK(pos == (uint64_t)stop * 1000 + 7, "%s: data position round trip", setups[k].name);
            CHECK(t2.step == stop, "%s: resumed at step %d, expected %d", setups[k].name, t2.step, stop);
            CHECK(lisa_plan_memory(&m2.config, &t2.config, LISA_DTYPE_F32, &plan, NULL) == LISA_OK &&
                      (setups[k].tc.keep_state || (long long)plan.peak == cnt.live),
                  "%s: a resumed trainer holds the planned bytes (%lld vs %lu)", setups[k].name, cnt.live,
                  (unsigned long)plan.peak);
            run_steps(&t2, stop, STEPS, resumed);
            CHECK(memcmp(whole + stop, resumed + stop, (STEPS - stop) * sizeof(float)) == 0,
                  "%s: losses after resuming at step %d differ from the uninterrupted run", setups[k].name, stop);
            CHECK(memcmp(final_whole, m2.params, m2.layout.n_params * sizeof(float)) == 0,
                  "%s: final weights after resuming at step %d differ from the uninterrupted run", setups[k].name, stop);
            lisa_trainer_free(&t2);
            lisa_model_free(&m2);
            CHECK(cnt.live == 0, "%s: loaded state freed completely (%lld bytes left)", setups[k].name, cnt.live);
            free(final_whole);
        }
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc((size_t)n + 1);
    *size = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

/* A small LISA state with kept moments, weights, and a mid-interval stop. */
static void write_sample_state(const char *path, uint64_t pos) {
    setup setups[8];
    lisa_config c = small_config();
    lisa_model m;
    lisa_trainer t;
    float losses[STEPS];
    make_setups(setups);
    setups[2].tc.lisa_probs = weights4;
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 3);
    lisa_trainer_init(&t, &m, &setups[2].tc, NULL, NULL);
    run_steps(&t, 0, 5, losses);
    lisa_trainer_save_state(&t, path, pos, NULL);
    lisa_trainer_free(&t);
    lisa_model_free(&m);
}

static int load_memory_fails(const unsigned char *data, size_t size, lisa_result want, const char *word) {
    lisa_model m;
    lisa_trainer t;
    lisa_error err;
    counter cnt = {0};
    lisa_allocator al;
    lisa_result r;
    al.alloc = count_alloc;
    al.free = count_free;
    al.user = &cnt;
    memset(&err, 0, sizeof err);
    r = lisa_trainer_load_state_memory(&t, &m, data, size, "bad.lsst", &al, NULL, &err);
    if (r == LISA_OK) {
        lisa_trainer_free(&t);
        lisa_model_free(&m);
        return 0;
    }
    return r == want && cnt.live == 0 && strstr(err.message, "bad.lsst") && (!word || strstr(err.message, word));
}

static uint32_t le32_at(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static float f32_at(const unsigned char *b) {
    uint32_t u = le32_at(b);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The header on disk, field by field at its byte offset, as the layout above
   lisa__state_header gives it: files written before keep loading only while
   every field stays where it is. */
static void test_header_layout(const char *dir) {
    static const int32_t ints[26] = {16, 24, 4, 4, 2, 29, T, 0, B, T, (int32_t)LISA_SCHEDULE_COSINE, 2, STEPS, 1,
                                     (int32_t)LISA_MODE_LISA, 2, 3, (int32_t)LISA_ORDER_RANDOM, 1, 0, 0, 0, 1, 5, 0, 2};
    static const float floats[9] = {1e-5f, 10000.0f, 1e-2f, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f};
    /* each a header field (int32 index) set out of range */
    static const struct { int field; int32_t value; const char *what; } bad[] = {
        {23, -1, "a negative step"}, {23, 0x7fffffff, "a step beyond the limit"}, {24, 4, "a sampler position past the layers"},
        {24, -1, "a negative sampler position"}, {25, 5, "more active layers than layers"}, {25, -1, "a negative active count"},
        {18, 2, "a weights flag other than 0 or 1"}, {14, 7, "an unknown mode"}};
    const uint64_t position = 0x0123456789abcdefull;
    char path[512];
    unsigned char *data, *copy;
    size_t size, i;
    int ok = 1, bad_field = -1, k;
    snprintf(path, sizeof path, "%s/layout.lsst", dir);
    write_sample_state(path, position);
    data = read_file(path, &size);
    CHECK(data && size > 180 + 8 + 16, "layout: the sample state was written");
    if (!data) return;
    CHECK(memcmp(data, "LSST", 4) == 0 && le32_at(data + 4) == 1 && le32_at(data + 8) == 26 && le32_at(data + 12) == 9,
          "layout: \"LSST\", version 1, 26 int32 and 9 float32 fields");
    for (i = 0; i < 26; i++)
        if ((int32_t)le32_at(data + 16 + 4 * i) != ints[i]) {
            ok = 0;
            bad_field = (int)i;
        }
    CHECK(ok, "layout: every int32 field at its offset (first wrong: %d)", bad_field);
    ok = 1;
    for (i = 0; i < 9; i++) ok &= f32_at(data + 120 + 4 * i) == floats[i];
    CHECK(ok, "layout: every float32 field at its offset");
    CHECK(le32_at(data + 156) == 5 && le32_at(data + 160) == 0, "layout: the LISA seed at byte 156");
    CHECK(le32_at(data + 172) == (uint32_t)position && le32_at(data + 176) == (uint32_t)(position >> 32),
          "layout: the data position at byte 172");
    CHECK(le32_at(data + 180) < le32_at(data + 184) && le32_at(data + 184) < 4, "layout: two active layers follow the header");
    ok = 1;
    for (i = 0; i < 4; i++) ok &= f32_at(data + 188 + 4 * i) == weights4[i];
    CHECK(ok, "layout: the sampling weights follow the active layers");
    copy = (unsigned char *)malloc(size);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(copy, data, size);
        for (k = 0; k < 4; k++) copy[16 + 4 * bad[i].field + k] = (unsigned char)((uint32_t)bad[i].value >> (8 * k));
        CHECK(load_memory_fails(copy, size, LISA_ERR_FORMAT, "bad state header"), "layout: %s is a bad state header",
              bad[i].what);
    }
    free(copy);
    free(data);
    remove(path);
}

static void test_malformed(const char *dir) {
    char path[512], path2[512];
    unsigned char *data, *copy;
    size_t size, size2, cut;
    int all_truncations_fail = 1;
    lisa_model m;
    lisa_trainer t;
    lisa_error err;
    snprintf(path, sizeof path, "%s/sample.lsst", dir);
    snprintf(path2, sizeof path2, "%s/sample2.lsst", dir);
    write_sample_state(path, 42);
    data = read_file(path, &size);
    CHECK(data && size > 1000, "the sample state was written");
    if (!data) return;
    /* load, save again: the same bytes */
    CHECK(lisa_trainer_load_state(&t, &m, path, NULL, NULL, &err) == LISA_OK, "load sample: %s", err.message);
    CHECK(lisa_trainer_save_state(&t, path2, 42, &err) == LISA_OK, "save again: %s", err.message);
    lisa_trainer_free(&t);
    lisa_model_free(&m);
    copy = read_file(path2, &size2);
    CHECK(copy && size2 == size && memcmp(copy, data, size) == 0, "load + save reproduces the file byte for byte");
    free(copy);
    for (cut = 0; cut < size; cut++)
        if (!load_memory_fails(data, cut, LISA_ERR_FORMAT, NULL)) {
            all_truncations_fail = 0;
            fprintf(stderr, "truncation to %lu bytes was not rejected cleanly\n", (unsigned long)cut);
            break;
        }
    CHECK(all_truncations_fail, "every truncation fails with a format error naming the file, leaking nothing");
    copy = (unsigned char *)malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = 0;
    CHECK(load_memory_fails(copy, size + 1, LISA_ERR_FORMAT, "trailing"), "a trailing byte is rejected");
    copy[size / 2] ^= 0x10;
    CHECK(load_memory_fails(copy, size, LISA_ERR_FORMAT, "checksum"), "a flipped bit in the weights fails the checksum");
    memcpy(copy, data, size);
    copy[0] = 'X';
    CHECK(load_memory_fails(copy, size, LISA_ERR_FORMAT, "LSST"), "bad magic");
    memcpy(copy, data, size);
    copy[4] = 9;
    CHECK(load_memory_fails(copy, size, LISA_ERR_FORMAT, "version"), "unsupported version");
    memcpy(copy, data, size);
    memset(copy + 16, 0, 4); /* dim 0 */
    CHECK(load_memory_fails(copy, size, LISA_ERR_FORMAT, "dim"), "a bad model config in the header");
    memcpy(copy, data, size);
    memset(copy + 16 + 4 * 15, 0x7f, 4); /* gamma huge */
    CHECK(load_memory_fails(copy, size, LISA_ERR_FORMAT, "LISA layers"), "a bad LISA setting in the header");
    memcpy(copy, data, size);
    memset(copy + 16 + 4 * 2, 0x7f, 4); /* n_layers huge: must not allocate */
    CHECK(load_memory_fails(copy, size, LISA_ERR_FORMAT, NULL), "a huge layer count is rejected before allocating");
    free(copy);
    free(data);
    CHECK(lisa_trainer_load_state(&t, &m, "/nonexistent/dir/x.lsst", NULL, NULL, &err) == LISA_ERR_IO &&
              strstr(err.message, "/nonexistent/dir/x.lsst"),
          "a missing file is an I/O error naming it");
}

/* A save of state that fails over an old state file keeps it. */
typedef struct saved_state {
    const lisa_trainer *t;
    uint64_t pos;
} saved_state;

static lisa_result save_state(const void *p, const char *path, lisa_error *err) {
    const saved_state *s = (const saved_state *)p;
    return lisa_trainer_save_state(s->t, path, s->pos, err);
}

static void test_failed_saves(const char *dir) {
    setup setups[8];
    lisa_config c = small_config();
    lisa_model m;
    lisa_trainer t;
    float losses[STEPS];
    saved_state s;
    save_fail_case fc;
    char work[600];
    make_setups(setups);
    lisa_model_init(&m, &c, NULL, NULL);
    lisa_model_init_random(&m, 3);
    lisa_trainer_init(&t, &m, &setups[2].tc, NULL, NULL);
    run_steps(&t, 0, 4, losses);
    s.t = &t;
    s.pos = 77;
    memset(&fc, 0, sizeof fc);
    fc.label = "state save";
    fc.save = save_state;
    fc.obj = &s;
    fc.files[0] = "train.lsst";
    snprintf(work, sizeof work, "%s/failed_saves", dir);
    mkdir(work, 0700);
    save_fail_check(&fc, work);
    rmdir(work);
    lisa_trainer_free(&t);
    lisa_model_free(&m);
}

/* Waits up to 2 s for path to exist with at least one byte in it. */
static int wait_for_bytes(const char *path) {
    struct timespec tick;
    struct stat st;
    int i;
    tick.tv_sec = 0;
    tick.tv_nsec = 100000L;
    for (i = 0; i < 20000; i++) {
        if (stat(path, &st) == 0 && st.st_size > 0) return 1;
        nanosleep(&tick, NULL);
    }
    return 0;
}

/* A writer killed in the middle of saving leaves a loadable file behind:
   either the old state or a new one, never half of one. Each kill waits
   until the writer's temporary file has bytes in it, and at least one kill
   must find that file still there (a save cut short), or nothing was tested. */
static void test_killed_writer(const char *dir) {
    char path[512], tmp[600];
    int round, intact = 1, killed_mid_save = 0;
    lisa_config c = small_config();
    snprintf(path, sizeof path, "%s/killed.lsst", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    c.dim = 128; c.hidden_dim = 512; c.n_layers = 4; c.n_heads = 4; c.n_kv_heads = 4; c.vocab_size = 2000;
    for (round = 0; round < 6; round++) {
        pid_t child;
        struct timespec delay;
        lisa_model m;
        lisa_trainer t;
        uint64_t pos = 0;
        lisa_train_config tc = lisa_train_config_default();
        tc.batch = 1;
        tc.seq = 4;
        /* the previous state: position 1 */
        lisa_model_init(&m, &c, NULL, NULL);
        lisa_model_init_random(&m, 1);
        lisa_trainer_init(&t, &m, &tc, NULL, NULL);
        lisa_trainer_save_state(&t, path, 1, NULL);
        remove(tmp);
        fflush(NULL);
        child = fork();
        if (child == 0) { /* saves new states (positions 2, 3, ...) until killed */
            uint64_t i;
            for (i = 2;; i++) lisa_trainer_save_state(&t, path, i, NULL);
        }
        lisa_trainer_free(&t);
        lisa_model_free(&m);
        /* into a save, then a little further each round: 0 to 2.5 ms */
        wait_for_bytes(tmp);
        delay.tv_sec = 0;
        delay.tv_nsec = 500000L * round;
        nanosleep(&delay, NULL);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        if (access(tmp, F_OK) == 0) killed_mid_save++;
        if (lisa_trainer_load_state(&t, &m, path, NULL, &pos, NULL) != LISA_OK || pos < 1) intact = 0;
        else {
            lisa_trainer_free(&t);
            lisa_model_free(&m);
        }
        remove(tmp);
    }
    CHECK(intact, "after killing a writer the state file always loads");
    CHECK(killed_mid_save > 0, "some kill landed in the middle of a save (%d of 6 did)", killed_mid_save);
    printf("state: %d of 6 kills landed in the middle of a save\n", killed_mid_save);
}

int main(void) {
    char dir[] = "/tmp/lisa_state_XXXXXX";
    char cmd[600];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_resume(dir);
    test_header_layout(dir);
    test_malformed(dir);
    test_failed_saves(dir);
    test_killed_writer(dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_report("state");
}
