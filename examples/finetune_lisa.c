/* finetune_lisa.c - pre-train a small LLaMA, then fine-tune it with LISA.

   Build and run, from the repository root:
       cc -O2 -I. -o finetune_lisa examples/finetune_lisa.c -lm
       ./finetune_lisa

   LISA (Layerwise Importance Sampled AdamW, Pan et al. 2024) always trains
   the embedding and the output head, but of the n decoder layers only gamma
   sampled ones at a time, drawing a new set every K steps. Frozen layers need
   no gradient and no AdamW moments, so that memory scales with gamma, not n.

   Task A (pre-training, every layer): the alphabet forwards, "abc...z ".
   Task B (fine-tuning, LISA):         the alphabet backwards, "zyx...a ".
   After task A the model is confidently wrong on task B; LISA fixes that while
   touching only 2 of the 4 layers at any one time. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include <stdio.h>
#include <string.h>

#define BATCH 4
#define SEQ 32

static const char task_a[] = "abcdefghijklmnopqrstuvwxyz ";
static const char task_b[] = "zyxwvutsrqponmlkjihgfedcba ";

/* Rows are windows of the repeated text at random offsets; targets are the
   next token (ids are bytes). */
static void make_batch(const char *text, lisa_rng *rng, int *inputs, int *targets) {
    int len = (int)strlen(text), b, t;
    for (b = 0; b < BATCH; b++) {
        int start = (int)(lisa_rng_next(rng) % (uint64_t)len);
        for (t = 0; t < SEQ; t++) {
            inputs[b * SEQ + t] = (unsigned char)text[(start + t) % len];
            targets[b * SEQ + t] = (unsigned char)text[(start + t + 1) % len];
        }
    }
}

/* Trains m for `steps` steps on text in the given mode; returns 0 on success.
   *held gets the bytes the trainer, its activations and the model held. */
static int train(lisa_model *m, const char *text, lisa_mode mode, int steps, uint64_t seed,
                   size_t *held) {
    lisa_train_config tc = lisa_train_config_default();
    lisa_trainer t;
    lisa_rng rng;
    int inputs[BATCH * SEQ], targets[BATCH * SEQ], s, i, failed = 0;
    tc.batch = BATCH;
    tc.seq = SEQ;
    tc.schedule.lr = 1e-2f;
    tc.mode = mode;
    tc.lisa_layers = 2;       /* gamma: layers trained at a time */
    tc.lisa_interval = 10;    /* K: steps between draws */
    tc.lisa_seed = seed;      /* the sampler has its own RNG */
    if (lisa_trainer_init(&t, m, &tc, NULL, NULL) != LISA_OK) return 1;
    lisa_rng_seed(&rng, seed);
    for (s = 0; s < steps; s++) {
        lisa_step_info info;
        make_batch(text, &rng, inputs, targets);
        if (lisa_trainer_step(&t, inputs, targets, &info) != LISA_OK) {
            failed = 1;
            break;
        }
        /* A LISA draw happens before steps 1, K + 1, 2K + 1, ... (counting from 1)
           and may repeat the last set. Leaving layers free their gradient and
           moments and entering ones start from zero, so the bytes held stay at
           gamma layers' worth however often the set changes. */
        if (info.switched) {
            printf("  step %3d: loss %.3f, now training layers [", info.step, info.loss);
            for (i = 0; i < t.n_active; i++) printf(i ? " %d" : "%d", t.active_layers[i]);
            printf("], %lu bytes held\n", (unsigned long)lisa_trainer_total_bytes(&t));
        } else if (mode == LISA_MODE_FULL && info.step % 20 == 0) {
            printf("  step %3d: loss %.3f, training every layer\n", info.step, info.loss);
        }
    }
    *held = lisa_trainer_total_bytes(&t);
    lisa_trainer_free(&t);
    return failed;
}

/* Mean loss of m on one fixed batch of text (-1: out of memory). Forward only:
   nothing in the model changes. */
static float evaluate(const lisa_model *m, const char *text) {
    lisa_acts a;
    lisa_rng rng;
    int inputs[BATCH * SEQ], targets[BATCH * SEQ];
    float loss;
    if (lisa_acts_init(&a, &m->config, BATCH, SEQ, 0, NULL, NULL) != LISA_OK) return -1;
    lisa_rng_seed(&rng, 99);
    make_batch(text, &rng, inputs, targets);
    loss = lisa_model_forward(m, &a, inputs, targets, BATCH, SEQ);
    lisa_acts_free(&a);
    return loss;
}

static void row(const char *what, size_t lisa, size_t full) {
    printf("   %-28s %10lu %9lu\n", what, (unsigned long)lisa, (unsigned long)full);
}

int main(void) {
    lisa_config c;
    lisa_model m;
    lisa_train_config tc = lisa_train_config_default();
    lisa_memory_plan lisa_plan, full_plan;
    float before, after;
    size_t full_held, lisa_held;

    memset(&c, 0, sizeof c);
    c.dim = 32; c.hidden_dim = 96; c.n_layers = 4; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 256; c.max_seq_len = SEQ; c.tied_head = 1;
    if (lisa_model_init(&m, &c, NULL, NULL) != LISA_OK) return 1;
    lisa_model_init_random(&m, 7);

    printf("1. pre-training on \"%s\" with every layer\n", task_a);
    if (train(&m, task_a, LISA_MODE_FULL, 60, 1, &full_held)) return 1;
    before = evaluate(&m, task_b);
    printf("   loss on task A %.3f, on task B %.3f\n\n", evaluate(&m, task_a), before);

    printf("2. fine-tuning on \"%s\" with LISA: embedding, final norm and head\n"
           "   always, 2 of the %d layers at a time, a new draw every 10 steps\n", task_b, c.n_layers);
    if (train(&m, task_b, LISA_MODE_LISA, 60, 0, &lisa_held)) return 1;
    after = evaluate(&m, task_b);
    printf("   loss on task B: %.3f before fine-tuning, %.3f after\n\n", before, after);

    /* The planner computes bytes with the same functions the allocations use,
       so for fp32 its peak is what the trainer above held, byte for byte. */
    tc.batch = BATCH;
    tc.seq = SEQ;
    tc.mode = LISA_MODE_LISA;
    tc.lisa_layers = 2;
    if (lisa_plan_memory(&c, &tc, LISA_DTYPE_F32, &lisa_plan, NULL) != LISA_OK) return 1;
    tc.mode = LISA_MODE_FULL;
    if (lisa_plan_memory(&c, &tc, LISA_DTYPE_F32, &full_plan, NULL) != LISA_OK) return 1;
    printf("3. memory planned for these runs (lisa_plan_memory)\n   %-28s %10s %9s\n", "bytes",
           "LISA", "full");
    row("weights", lisa_plan.weights, full_plan.weights);
    row("gradients", lisa_plan.gradients, full_plan.gradients);
    row("AdamW moments", lisa_plan.optimizer, full_plan.optimizer);
    row("peak", lisa_plan.peak, full_plan.peak);
    row("the trainers above held", lisa_held, full_held);
    row("parameters trained", lisa_plan.trained_params, full_plan.trained_params);
    lisa_model_free(&m);

    if (after >= 0 && after < 0.5f * before && lisa_plan.gradients < full_plan.gradients &&
        lisa_plan.optimizer < full_plan.optimizer && lisa_held == lisa_plan.peak &&
        full_held == full_plan.peak) {
        printf("ok: LISA cut the task B loss from %.3f to %.3f with %.0f%% of full training's "
               "gradient + optimizer memory\n", before, after,
               100.0 * (double)(lisa_plan.gradients + lisa_plan.optimizer) /
                   (double)(full_plan.gradients + full_plan.optimizer));
        return 0;
    }
    printf("FAILED: task B loss %.3f -> %.3f (want under half), or memory not as planned\n",
           before, after);
    return 1;
}
