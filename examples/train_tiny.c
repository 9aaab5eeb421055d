/* train_tiny.c - train a tiny LLaMA from scratch on one built-in sentence.

   Build and run, from the repository root:
       cc -O2 -I. -o train_tiny examples/train_tiny.c -lm
       ./train_tiny

   The smallest useful program with lisa.h: make a model, make a trainer,
   feed it batches of token ids, watch the loss fall. Every parameter trains
   (full fine-tuning, LISA_MODE_FULL); finetune_lisa.c shows LISA itself.
   Tokens are bytes: id = the byte's value, so the vocabulary is 256. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include <stdio.h>
#include <string.h>

#define BATCH 4     /* rows per step */
#define SEQ 32      /* tokens per row */
#define STEPS 150

static const char text[] = "the quick brown fox jumps over the lazy dog. ";

/* A batch for next-token prediction: each row is a window of the (endlessly
   repeated) text starting at a random offset, and the target of position t
   is the token at t + 1. */
static void make_batch(lisa_rng *rng, int *inputs, int *targets) {
    int len = (int)strlen(text), b, t;
    for (b = 0; b < BATCH; b++) {
        int start = (int)(lisa_rng_next(rng) % (uint64_t)len);
        for (t = 0; t < SEQ; t++) {
            inputs[b * SEQ + t] = (unsigned char)text[(start + t) % len];
            targets[b * SEQ + t] = (unsigned char)text[(start + t + 1) % len];
        }
    }
}

int main(void) {
    lisa_config c;
    lisa_model m;
    lisa_trainer t;
    lisa_train_config tc = lisa_train_config_default();
    lisa_error err;
    lisa_rng rng;
    int inputs[BATCH * SEQ], targets[BATCH * SEQ];
    float first_loss = 0, last_loss = 0;
    int step;

    /* The model's shape. Fields left 0 take defaults (norm eps 1e-5, RoPE theta
       10000); n_kv_heads < n_heads is grouped-query attention. */
    memset(&c, 0, sizeof c);
    c.dim = 32;
    c.hidden_dim = 96;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 256;
    c.max_seq_len = SEQ;
    c.tied_head = 1;          /* the output head reuses the embedding matrix */
    if (lisa_model_init(&m, &c, NULL, &err) != LISA_OK) {
        fprintf(stderr, "model: %s\n", err.message);
        return 1;
    }
    lisa_model_init_random(&m, 42);

    /* Training settings: defaults (AdamW, betas 0.9/0.999, full mode), a batch
       shape, and a learning rate large enough for a model this small. */
    tc.batch = BATCH;
    tc.seq = SEQ;
    tc.schedule.lr = 1e-2f;
    tc.mode = LISA_MODE_FULL;
    if (lisa_trainer_init(&t, &m, &tc, NULL, &err) != LISA_OK) {
        fprintf(stderr, "trainer: %s\n", err.message);
        lisa_model_free(&m);
        return 1;
    }
    printf("model: %lu parameters, %d layers; training on \"%s\"\n",
           (unsigned long)m.layout.n_params, c.n_layers, text);

    lisa_rng_seed(&rng, 1);   /* the data's own RNG: runs are reproducible */
    for (step = 0; step < STEPS; step++) {
        lisa_step_info info;
        make_batch(&rng, inputs, targets);
        /* One forward, backward and AdamW update. info.loss is this batch's
           loss before the update. */
        if (lisa_trainer_step(&t, inputs, targets, &info) != LISA_OK) {
            fprintf(stderr, "step failed\n");
            break;
        }
        if (step == 0) first_loss = info.loss;
        last_loss = info.loss;
        if (info.step == 1 || info.step % 25 == 0)
            printf("step %3d  loss %.4f  grad norm %.3f\n", info.step, info.loss, info.grad_norm);
    }
    lisa_trainer_free(&t);
    lisa_model_free(&m);

    /* ln(256) = 5.55 is a uniform guess; a memorised sentence gets near 0. */
    if (step == STEPS && last_loss < 0.5f) {
        printf("ok: loss fell from %.3f to %.3f\n", first_loss, last_loss);
        return 0;
    }
    printf("FAILED: loss %.3f after %d steps (want < 0.5)\n", last_loss, step);
    return 1;
}
