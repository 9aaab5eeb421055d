#!/bin/sh
# The GPU tests on the CPU. Builds tests/test_cuda.cu with g++ against
# tests/cuda_emu.h (CUDA and cuBLAS emulated: no GPU, no CUDA toolkit) into
# BUILD/test_cuda_emu (one check), and runs it twice at once, the threads of
# each block in forward and in reverse order; each run prints its own
# "test_cuda_emu_<order>: N passed, M failed", which the test runner adds.
# Then builds examples/lisa_cuda_impl.cu the same way into an object that a
# C99 program links to train a few steps on the emulated GPU (one check).
# Skipped under sanitizers (a BUILD_DIR named *san*): the fibers switch stacks
# behind AddressSanitizer's back.
# Usage: sh tests/cuda_emu.sh BUILD_DIR   (CXX=... to choose the C++ compiler)
build=${1:-build}
cxx=${CXX:-g++}
case "$build" in
*san*)
    echo "cuda_emu: skipped under sanitizers (not counted)"
    echo "cuda_emu: 0 passed, 0 failed"
    exit 0
    ;;
esac
mkdir -p "$build" || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
# The same flags as the Makefile's $(BUILD)/test_cuda_emu rule.
emu="-x c++ -std=c++17 -O2 -DLISA_CUDA_EMULATE -include tests/cuda_emu.h -I. -Itests"
passed=0
failed=0
status=0
start=$(date +%s)
if $cxx $emu -Wall -Wextra -Werror -Wno-unknown-pragmas -o "$build/test_cuda_emu" tests/test_cuda.cu -lm \
        > "$tmp/out" 2>&1; then
    passed=$((passed + 1))
    for order in forward reverse; do
        LISA_CUDA_EMU_ORDER=$order "$build/test_cuda_emu" > "$tmp/$order" 2>&1 &
        echo $! > "$tmp/$order.pid"
    done
    for order in forward reverse; do
        wait "$(cat "$tmp/$order.pid")" || status=1
        cat "$tmp/$order"
        grep -Eq "^test_cuda_emu_$order: [0-9]+ passed, [0-9]+ failed\$" "$tmp/$order" ||
            { echo "FAIL: test_cuda_emu ($order) crashed or printed no summary"; failed=$((failed + 1)); }
    done
else
    failed=$((failed + 1))
    echo "FAIL: g++ build of tests/test_cuda.cu against tests/cuda_emu.h"
    cat "$tmp/out"
fi
cat > "$tmp/steps.c" <<'C'
#define LISA_IMPLEMENTATION
#include "lisa_cuda.h"
#include <stdio.h>
#include <string.h>

int main(void) {
    lisa_config c;
    lisa_train_config tc = lisa_train_config_default();
    lisa_cuda_config cc = lisa_cuda_config_default();
    lisa_cuda_trainer *t;
    lisa_error err;
    lisa_step_info info;
    int in[32], tg[32], i, s;
    float first = 0.0f;
    memset(&c, 0, sizeof c);
    c.dim = 32;
    c.hidden_dim = 48;
    c.n_layers = 2;
    c.n_heads = 4;
    c.vocab_size = 64;
    c.max_seq_len = 16;
    tc.batch = 2;
    tc.seq = 16;
    tc.schedule.lr = 1e-2f;
    tc.mode = LISA_MODE_LISA;
    tc.lisa_layers = 1;
    tc.lisa_interval = 2;
    if (lisa_cuda_trainer_create(&t, &c, NULL, 1, &tc, &cc, &err) != LISA_OK) {
        printf("create: %s\n", err.message);
        return 1;
    }
    for (i = 0; i < 32; i++) {
        in[i] = i * 7 % 64;
        tg[i] = (i * 7 + 1) % 64;
    }
    for (s = 0; s < 6; s++) {
        if (lisa_cuda_trainer_step(t, in, tg, &info) != LISA_OK) {
            printf("step %d: %s\n", s, lisa_cuda_trainer_message(t));
            return 1;
        }
        if (s == 0) first = info.loss;
    }
    printf("6 steps on the emulated GPU: loss %.4f -> %.4f\n", first, info.loss);
    lisa_cuda_trainer_free(t);
    return !(info.loss < first);
}
C
if $cxx $emu -c -o "$tmp/lisa_cuda_emu.o" examples/lisa_cuda_impl.cu > "$tmp/out" 2>&1 &&
        ${CC:-cc} -std=c99 -Wall -Wextra -Wpedantic -Werror -I. -o "$tmp/steps" "$tmp/steps.c" \
            "$tmp/lisa_cuda_emu.o" -lstdc++ -lm >> "$tmp/out" 2>&1 &&
        "$tmp/steps" >> "$tmp/out" 2>&1; then
    passed=$((passed + 1))
    cat "$tmp/out"
else
    failed=$((failed + 1))
    echo "FAIL: a C program linked with the emulated lisa_cuda object"
    cat "$tmp/out"
fi
echo "cuda_emu: emulated GPU tests took $(($(date +%s) - start)) s"
echo "cuda_emu: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
