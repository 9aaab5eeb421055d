/* embedded.c - LISA on a target with no files and one fixed arena.

   Build and run, from the repository root:
       cc -O2 -I. -o embedded examples/embedded.c -lm
       ./embedded

   The same program cross-compiled for 32-bit ARM runs under qemu in the
   tests (tests/embedded_arm.sh). An embedded toolchain usually has no heap
   worth the name: the program hands the library one static arena through a
   bump allocator, whose free does nothing. With tc.reserve_slots = 1 the
   trainer takes every byte it will ever need at init (the planner's peak),
   so 600 steps and 30 LISA switches later the arena has not grown by a byte.
   Without it, each switch frees a layer's gradient and moments (lost, in a
   bump arena) and allocates the next layer's: the arena fills up. Both runs
   compute the same bits. */
#define LISA_NO_STDIO          /* no file functions: nothing here touches a file system */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include <stdio.h>
#include <string.h>

#define BATCH 2
#define SEQ 16
#define STEPS 600
#define ARENA_BYTES (6u << 20)
#define ALIGN 16

typedef struct arena {
    unsigned char *base;
    size_t used, size, allocations;
} arena;

static unsigned char arena_memory[ARENA_BYTES];

static void *bump_alloc(void *user, size_t size) {
    arena *a = (arena *)user;
    size_t at = (a->used + ALIGN - 1) / ALIGN * ALIGN;
    if (size > a->size || at > a->size - size) return NULL;
    a->used = at + size;
    a->allocations++;
    return a->base + at;
}

static void bump_free_nothing(void *user, void *ptr, size_t size) {
    (void)user;
    (void)ptr;
    (void)size;
}

/* The next-byte task on a fixed sentence, a window per row. */
static void make_batch(lisa_rng *rng, int *inputs, int *targets) {
    static const char text[] = "small chips learn too. ";
    int len = (int)strlen(text), b, t;
    for (b = 0; b < BATCH; b++) {
        int start = (int)(lisa_rng_next(rng) % (uint64_t)len);
        for (t = 0; t < SEQ; t++) {
            inputs[b * SEQ + t] = (unsigned char)text[(start + t) % len] % 64;
            targets[b * SEQ + t] = (unsigned char)text[(start + t + 1) % len] % 64;
        }
    }
}

typedef struct run_result {
    size_t after_init, after_60, after_all;
    size_t allocations_at_init, allocations_after_init;
    float last_loss;
    int ok;
} run_result;

/* Trains a 4-layer model from seed 1 for STEPS steps in a fresh arena. */
static run_result run(int reserve_slots, const lisa_config *c, const lisa_train_config *base) {
    arena a = {arena_memory, 0, ARENA_BYTES, 0};
    lisa_allocator al = {bump_alloc, bump_free_nothing, NULL};
    lisa_train_config tc = *base;
    lisa_model m;
    lisa_trainer t;
    lisa_rng rng;
    run_result r;
    int inputs[BATCH * SEQ], targets[BATCH * SEQ], step;
    memset(&r, 0, sizeof r);
    al.user = &a;
    tc.reserve_slots = reserve_slots;
    if (lisa_model_init(&m, c, &al, NULL) != LISA_OK) return r;
    lisa_model_init_random(&m, 1);
    if (lisa_trainer_init(&t, &m, &tc, &al, NULL) != LISA_OK) return r;
    r.after_init = a.used;
    r.allocations_at_init = a.allocations;
    lisa_rng_seed(&rng, 7);
    for (step = 0; step < STEPS; step++) {
        lisa_step_info info;
        make_batch(&rng, inputs, targets);
        if (lisa_trainer_step(&t, inputs, targets, &info) != LISA_OK) return r; /* the arena ran out */
        r.last_loss = info.loss;
        if (step + 1 == 60) r.after_60 = a.used;
    }
    r.after_all = a.used;
    r.allocations_after_init = a.allocations - r.allocations_at_init;
    r.ok = 1;
    return r;
}

int main(void) {
    lisa_config c;
    lisa_train_config tc = lisa_train_config_default();
    lisa_memory_plan plan;
    run_result with, without;
    memset(&c, 0, sizeof c);
    c.dim = 32; c.hidden_dim = 96; c.n_layers = 4; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 64; c.max_seq_len = SEQ; c.tied_head = 1;
    tc.batch = BATCH;
    tc.seq = SEQ;
    tc.schedule.lr = 3e-3f;
    tc.mode = LISA_MODE_LISA;      /* 2 of 4 layers at a time, a new draw every 20 steps */
    tc.reserve_slots = 1;
    if (lisa_plan_memory(&c, &tc, LISA_DTYPE_F32, &plan, NULL) != LISA_OK) return 1;
    with = run(1, &c, &tc);
    without = run(0, &c, &tc);
    printf("arena (bytes)          after init  after 60 steps  after %d steps  allocations after init\n", STEPS);
    printf("reserve_slots = 1  %14zu %15zu %16zu %23zu\n", with.after_init, with.after_60, with.after_all,
           with.allocations_after_init);
    printf("reserve_slots = 0  %14zu %15zu %16zu %23zu\n", without.after_init, without.after_60,
           without.after_all, without.allocations_after_init);
    printf("planned peak %zu bytes; final loss %.4f (reserved) and %.4f\n", plan.peak, (double)with.last_loss,
           (double)without.last_loss);
    if (!with.ok || !without.ok) {
        printf("FAIL: a run stopped early (the arena of %u bytes ran out)\n", ARENA_BYTES);
        return 1;
    }
    /* Reserved: the planner's peak (plus each allocation's alignment padding) taken at init, nothing after. */
    if (with.after_all != with.after_init || with.allocations_after_init != 0 || with.after_init < plan.peak ||
        with.after_init > plan.peak + with.allocations_at_init * (ALIGN - 1)) {
        printf("FAIL: with reserve_slots the arena moved after init or differs from the plan\n");
        return 1;
    }
    if (without.after_all <= without.after_60 || memcmp(&with.last_loss, &without.last_loss, sizeof(float)) != 0) {
        printf("FAIL: without reserve_slots the arena should grow, and both runs should compute the same loss\n");
        return 1;
    }
    printf("ok: %d steps, 30 switches, the arena held at %zu bytes from init on (%zu bytes without reserve_slots)\n",
           STEPS, with.after_all, without.after_all);
    return 0;
}
