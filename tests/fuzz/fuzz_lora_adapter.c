/* libFuzzer harness: the peft LoRA adapter loader (lisa_lora_config_from_peft
   and lisa_lora_load_peft_weights_memory).

   The first byte picks the part: even, the rest is an adapter_config.json; odd,
   the rest (after a rank byte) is an adapter_model.safetensors for the model of
   tools/make_lora_fixture.py (dim 32, hidden 48, 2 layers, 4 heads, 2 kv
   heads), with every projection targeted, or those of the first byte's upper
   bits. A failure must be LISA_ERR_FORMAT or LISA_ERR_NOMEM with a message
   naming the input and leave nothing allocated; a config that loads has a
   rank in 1..4096, alpha > 0 and known targets only; weights that load came
   from a file holding exactly the 2 x layers x targets tensors, A (rank, in),
   B (out, rank), every loaded float finite-or-not as the file's own. Then each
   allocation is refused in turn (LISA_ERR_NOMEM, nothing left).

   Build and run: tests/fuzz/run.sh. Seeds (tests/fuzz/corpus/lora_adapter):
   the fixture adapter's two files behind their selector bytes. */
#define LISA_IMPLEMENTATION
#include "lisa.h"
#include "fuzz.h" /* after lisa.h */

static lisa_config fixture_config(void) {
    lisa_config c;
    memset(&c, 0, sizeof c);
    c.dim = 32; c.hidden_dim = 48; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 64; c.max_seq_len = 64;
    lisa_config_resolve(&c, NULL);
    return c;
}

static lisa_result load_config(const uint8_t *data, size_t size, const lisa_allocator *a, lisa_error *err,
                               lisa_lora_config *lc) {
    return lisa_lora_config_from_peft(lc, (const char *)data, size, "fuzz/adapter_config.json", a, err);
}

static lisa_result load_weights(const uint8_t *data, size_t size, const lisa_lora_config *lc, const lisa_allocator *a,
                                lisa_error *err, lisa_lora *l) {
    lisa_config c = fixture_config();
    lisa_result r = lisa_lora_init(l, &c, lc, 0, 0, 0, a, err);
    if (r != LISA_OK) return r;
    return lisa_lora_load_peft_weights_memory(l, data, size, "fuzz/adapter_model.safetensors", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lisa_allocator a = fuzz_allocator();
    lisa_error err;
    lisa_result r, r2;
    long k, n_allocs;
    if (size < 2) return 0;
    if (!(data[0] & 1)) {
        lisa_lora_config lc;
        fuzz_alloc_reset(-1);
        r = load_config(data + 1, size - 1, &a, &err, &lc);
        if (r != LISA_OK) {
            FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "result %s", lisa_result_string(r));
            fuzz_check_failure(r, &err, "fuzz/adapter_config.json");
            return 0;
        }
        FUZZ_CHECK(lc.rank >= 1 && lc.rank <= 4096 && lc.alpha > 0.0f && lc.targets && !(lc.targets & ~LISA_LORA_ALL),
                   "loaded config r %d alpha %g targets 0x%x", lc.rank, (double)lc.alpha, lc.targets);
        fuzz_check_nothing_live("after a loaded config");
        n_allocs = fuzz_cnt.n_ok;
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = load_config(data + 1, size - 1, &a, &err, &lc);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: %s", k, lisa_result_string(r2));
            fuzz_check_failure(r2, &err, "fuzz/adapter_config.json");
        }
    } else {
        lisa_lora_config lc;
        lisa_lora l;
        memset(&lc, 0, sizeof lc);
        lc.rank = 1 + data[1] % 8;
        lc.alpha = 8.0f;
        lc.targets = (unsigned)(data[0] >> 1) & LISA_LORA_ALL;
        fuzz_alloc_reset(-1);
        r = load_weights(data + 2, size - 2, &lc, &a, &err, &l);
        if (r != LISA_OK) {
            FUZZ_CHECK(r == LISA_ERR_FORMAT || r == LISA_ERR_NOMEM, "result %s", lisa_result_string(r));
            lisa_lora_free(&l);
            fuzz_check_failure(r, &err, "fuzz/adapter_model.safetensors");
            return 0;
        }
        {
            lisa_safetensors st;
            int i;
            FUZZ_CHECK(lisa_safetensors_parse_memory(&st, data + 2, size - 2, "ref", NULL, NULL) == LISA_OK,
                       "loaded weights that are not a safetensors file");
            FUZZ_CHECK(st.n_tensors == 2 * l.n_layers * l.n_targets, "%d tensors loaded as %d layers x %d targets",
                       st.n_tensors, l.n_layers, l.n_targets);
            for (i = 0; i < st.n_tensors; i++)
                FUZZ_CHECK(st.tensors[i].ndim == 2 && strstr(st.tensors[i].name, ".lora_"), "tensor %s",
                           st.tensors[i].name);
            lisa_safetensors_free(&st);
        }
        n_allocs = fuzz_cnt.n_ok;
        lisa_lora_free(&l);
        fuzz_check_nothing_live("after lisa_lora_free");
        for (k = 0; k < n_allocs; k++) {
            fuzz_alloc_reset(k);
            r2 = load_weights(data + 2, size - 2, &lc, &a, &err, &l);
            FUZZ_CHECK(r2 == LISA_ERR_NOMEM, "allocation %ld refused: %s", k, lisa_result_string(r2));
            lisa_lora_free(&l);
            fuzz_check_nothing_live("after a refused allocation");
        }
    }
    fuzz_alloc_reset(-1);
    return 0;
}
