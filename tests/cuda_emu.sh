#!/bin/sh
# The GPU tests on the CPU. Builds tests/test_cuda.cu with g++ against
# tests/cuda_emu.h (CUDA and cuBLAS emulated: no GPU, no CUDA toolkit) into
# BUILD/test_cuda_emu (one check), and runs it twice at once, the threads of
# each block in forward and in reverse order; each run prints its own
# "test_cuda_emu_<order>: N passed, M failed", which the test runner adds.
# Then the emulator's own checks (deadlock, early exit, divergent shuffles,
# writes past an allocation, a missing barrier: each must be reported, in each
# order; "cuda_emu_self_<order>: N passed, M failed"). Then builds
# examples/lisa_cuda_impl.cu the same way into an object that a
# C99 program links to train a few steps on the emulated GPU (one check).
# Then build/lisa-cuda against that object: its training on the emulated GPU
# against build/lisa on the CPU (losses, active layers, the saved model), its
# state files (a run stopped with --save-state and resumed continues bitwise;
# a GPU state resumes on the CPU), and its plan against build/lisa plan
# --device gpu. Last, the README's GPU program (3 of its steps), and
# bench/bench_cuda.c on a tiny shape: it runs, and its own count of device
# memory and the emulator's equal the plan.
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
# counted NAME STATUS FILE: the run that wrote FILE and exited with STATUS must
# have printed "NAME: N passed, M failed", and a non-zero exit must come with a
# failure among them; else (a crash, an abort after the summary) it counts as
# one failure here, so the summary cannot say "0 failed" for it.
counted() {
    if ! grep -Eq "^$1: [0-9]+ passed, [0-9]+ failed\$" "$3"; then
        echo "FAIL: $1 crashed or printed no summary (exit status $2)"
        failed=$((failed + 1))
    elif [ "$2" -ne 0 ] && [ "$(grep -E "^$1: " "$3" | awk '{f += $4} END {print f + 0}')" -eq 0 ]; then
        echo "FAIL: $1 exited with status $2 after reporting no failure"
        failed=$((failed + 1))
    fi
}
if $cxx $emu -Wall -Wextra -Werror -Wno-unknown-pragmas -o "$build/test_cuda_emu" tests/test_cuda.cu -lm \
        > "$tmp/out" 2>&1; then
    passed=$((passed + 1))
    for order in forward reverse; do
        LISA_CUDA_EMU_ORDER=$order "$build/test_cuda_emu" > "$tmp/$order" 2>&1 &
        echo $! > "$tmp/$order.pid"
    done
    for order in forward reverse; do
        wait "$(cat "$tmp/$order.pid")"
        rc=$?
        [ "$rc" -eq 0 ] || status=1
        cat "$tmp/$order"
        counted "test_cuda_emu_$order" "$rc" "$tmp/$order"
    done
else
    failed=$((failed + 1))
    echo "FAIL: g++ build of tests/test_cuda.cu against tests/cuda_emu.h"
    cat "$tmp/out"
fi
# The emulator's own checks: broken kernels are reported, in every order.
cat > "$tmp/self.cu" <<'C'
/* The emulator's own checks: each broken kernel must be reported. */
#include <stdio.h>
#define LAUNCH(kernel, grid, block, ...) lisa_emu_launch(#kernel, grid, block, [=] { kernel(__VA_ARGS__); })

static int passed, failed;
static void expect(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    ok ? passed++ : failed++;
}

__global__ void deadlock(void) {
    if (threadIdx.x == 0) __syncwarp();
    else __syncthreads();
}
__global__ void early_exit(void) {
    if (threadIdx.x >= 32) return;
    __syncthreads();
}
__global__ void divergent_shuffle(float *out) {
    float v;
    if (threadIdx.x & 1)
        v = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
    else
        v = __shfl_xor_sync(0xffffffffu, 2.0f, 1);
    out[threadIdx.x] = v;
}
__global__ void reverse_copy(int *out, int sync) {
    __shared__ int s[64];
    s[threadIdx.x] = (int)threadIdx.x;
    if (sync) __syncthreads();
    out[threadIdx.x] = s[63 - threadIdx.x];
}
__global__ void write_past_end(float *out, int n) { out[n + threadIdx.x] = 1.0f; }
__global__ void warp_sum(float *out) {
    float x = (float)threadIdx.x;
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    out[threadIdx.x] = x;
}

static int all(const int *x, int n, int want_reversed) {
    for (int i = 0; i < n; i++)
        if (x[i] != (want_reversed ? 63 - i : i)) return 0;
    return 1;
}

int main(void) {
    float *f, h[64];
    int *d, hi[64];
    cudaMalloc(&f, 64 * sizeof(float));
    cudaMalloc(&d, 64 * sizeof(int));
    LAUNCH(deadlock, 1, 32);
    expect(cudaGetLastError() == cudaErrorLaunchFailure, "deadlock between __syncwarp and __syncthreads");
    LAUNCH(early_exit, 1, 64);
    expect(cudaGetLastError() == cudaErrorLaunchFailure, "threads exit, others reach __syncthreads");
    LAUNCH(divergent_shuffle, 1, 32, f);
    expect(cudaGetLastError() == cudaErrorLaunchFailure, "shuffles from different lines");
    LAUNCH(write_past_end, 1, 1, f, 64);
    expect(cudaGetLastError() == cudaErrorLaunchFailure, "a write past the end of an allocation");
    LAUNCH(reverse_copy, 1, 64, d, 0);
    cudaMemcpy(hi, d, sizeof hi, cudaMemcpyDeviceToHost);
    expect(cudaGetLastError() == cudaSuccess && !all(hi, 64, 1), "a missing __syncthreads gives a wrong result");
    LAUNCH(reverse_copy, 1, 64, d, 1);
    cudaMemcpy(hi, d, sizeof hi, cudaMemcpyDeviceToHost);
    expect(cudaGetLastError() == cudaSuccess && all(hi, 64, 1), "with the __syncthreads, the right one");
    LAUNCH(warp_sum, 1, 64, f);
    cudaMemcpy(h, f, sizeof h, cudaMemcpyDeviceToHost);
    expect(cudaGetLastError() == cudaSuccess && h[0] == 496.0f && h[31] == 496.0f && h[32] == 1520.0f,
           "butterfly warp sums");
    expect(__bfloat162float(__float2bfloat16(1.0f + 1.0f / 256.0f)) == 1.0f &&
               __bfloat162float(__float2bfloat16(1.0f + 3.0f / 256.0f)) == 1.0f + 4.0f / 256.0f,
           "bf16 rounds to nearest even");
    cudaFree(f);
    cudaFree(d);
    expect(lisa_emu_device_bytes() == 0, "every byte freed");
    printf("cuda_emu_self_%s: %d passed, %d failed\n", lisa_emu_order_name(), passed, failed);
    return failed != 0;
}
C
if $cxx $emu -Wall -Wextra -Werror -Wno-unknown-pragmas -o "$tmp/self" "$tmp/self.cu" > "$tmp/out" 2>&1; then
    for order in forward reverse shuffle; do
        LISA_CUDA_EMU_ORDER=$order "$tmp/self" > "$tmp/out" 2> "$tmp/err"
        rc=$?
        [ "$rc" -eq 0 ] || { status=1; cat "$tmp/err"; }
        grep -v '^ok: ' "$tmp/out"
        counted "cuda_emu_self_$order" "$rc" "$tmp/out"
    done
else
    failed=$((failed + 1))
    echo "FAIL: g++ build of the emulator's own checks"
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
# build/lisa-cuda on the emulated GPU: the program's GPU path end to end,
# against build/lisa on the CPU.
. tests/check.sh
lisa="$build/lisa"
gpu="$tmp/lisa-cuda-emu"
init="dim=32,hidden=64,layers=4,heads=4,kv_heads=2,vocab=258,seq=32"
run="--init $init --data $tmp/text.tok --steps 12 --batch 2 --seq 32 --lr 3e-3 --mode lisa --lisa-layers 2 --lisa-interval 5"
# "loss active_layers" of each step of a --log file
losses() { sed 's/.*"loss":\([0-9.e+-]*\).*"active_layers":\(\[[0-9,]*\]\).*/\1 \2/' "$1"; }
same_losses() {
    losses "$tmp/cpu.jsonl" > "$tmp/cpu.txt" && losses "$tmp/gpu.jsonl" > "$tmp/gpu.txt" &&
        [ "$(wc -l < "$tmp/cpu.txt")" -eq 12 ] && [ "$(wc -l < "$tmp/gpu.txt")" -eq 12 ] &&
        paste -d ' ' "$tmp/cpu.txt" "$tmp/gpu.txt" |
        awk '{ d = $1 - $3; if (d < 0) d = -d; if (d > 1e-4 * $1 || $2 != $4) { print "differs: " $0; bad++ } }
             END { exit bad > 0 }'
}
loss_falls() {
    losses "$1" | awk 'NR == 1 { first = $1 } { last = $1 } END { print first, "->", last; exit !(last < first) }'
}
eval_loss() { "$lisa" eval --model "$1" --data "$tmp/text.tok" --batch 2 --seq 32 2> /dev/null | sed 's/^loss \([0-9.]*\).*/\1/'; }
same_eval() {
    awk -v a="$(eval_loss "$tmp/gpu.bin")" -v b="$(eval_loss "$tmp/cpu.bin")" \
        'BEGIN { print a, b; d = a - b; if (d < 0) d = -d; exit !(a > 0 && d < 1e-3 * b) }'
}
same_plan() {
    "$gpu" plan --init llama2-7b --mode lisa --batch 1 --seq 1024 --checkpointing > "$tmp/p1" &&
        "$lisa" plan --init llama2-7b --mode lisa --batch 1 --seq 1024 --checkpointing --device gpu > "$tmp/p2" &&
        cmp "$tmp/p1" "$tmp/p2" && grep -q 'GPU trainer' "$tmp/p1"
}
# The bf16 run stopped at step 6 and resumed gives the straight run's losses and layers (as logged).
same_resumed_losses() {
    cat "$tmp/half.jsonl" "$tmp/rest.jsonl" > "$tmp/both.jsonl" && losses "$tmp/bf.jsonl" > "$tmp/l1" &&
        losses "$tmp/both.jsonl" > "$tmp/l2" && [ "$(wc -l < "$tmp/l1")" -eq 12 ] && cmp "$tmp/l1" "$tmp/l2"
}
# Steps 7 to 12 of the CPU run resumed from the GPU's fp32 state, against the straight GPU run.
cpu_continues() {
    losses "$tmp/gpu.jsonl" | tail -n 6 > "$tmp/g6" && losses "$tmp/cpu_rest.jsonl" > "$tmp/c6" &&
        [ "$(wc -l < "$tmp/c6")" -eq 6 ] && paste -d ' ' "$tmp/g6" "$tmp/c6" |
        awk '{ d = $1 - $3; if (d < 0) d = -d; if (d > 1e-4 * $1 || $2 != $4) { print "differs: " $0; bad++ } }
             END { exit bad > 0 }'
}
awk 'BEGIN { for (i = 0; i < 3000; i++) printf "%c", 97 + (i * i + 3 * i) % 26 }' > "$tmp/text.txt"
check "tokenize the text" "$lisa" tokenize --tokenizer bytes "$tmp/text.txt" "$tmp/text.tok"
check "build/lisa-cuda against the emulated GPU builds" ${CC:-cc} -std=c99 -Wall -Wextra -Wpedantic -Werror -I. \
    -DLISA_WITH_CUDA -o "$gpu" examples/lisa.c "$tmp/lisa_cuda_emu.o" -lstdc++ -lm
check "lisa train on the CPU" "$lisa" train $run --log "$tmp/cpu.jsonl" --out "$tmp/cpu.bin"
check "lisa-cuda train --dtype fp32 on the emulated GPU" "$gpu" train $run --dtype fp32 --log "$tmp/gpu.jsonl" --out "$tmp/gpu.bin"
check "fp32 GPU losses equal the CPU's to 1e-4 relative, with the same active layers" same_losses
check "lisa-cuda train (bf16) runs" "$gpu" train $run --log "$tmp/bf.jsonl" --out "$tmp/bf.bin"
check "... and lowers the loss" loss_falls "$tmp/bf.jsonl"
check "the GPU-trained model evaluates on the CPU as the CPU-trained one" same_eval
check "lisa-cuda plan equals lisa plan --device gpu" same_plan
check "lisa-cuda train --help lists the GPU options" sh -c "'$gpu' train --help | grep -q -- '--dtype D'"
check "lisa-cuda train stops at step 6 with --save-state and --save-every" "$gpu" train $run --steps 6 \
    --schedule-steps 12 --save-state "$tmp/bf.lsst" --save-every 4 --log "$tmp/half.jsonl" --out "$tmp/half.bin"
check "lisa-cuda train --resume runs to step 12" "$gpu" train --resume "$tmp/bf.lsst" --data "$tmp/text.tok" \
    --steps 12 --log "$tmp/rest.jsonl" --out "$tmp/resumed.bin"
check "on the GPU, 6 steps + resume give the straight run's losses" same_resumed_losses
check "... and the straight run's model file" cmp "$tmp/bf.bin" "$tmp/resumed.bin"
check "lisa-cuda train --dtype fp32 stops at step 6 with --save-state" "$gpu" train $run --dtype fp32 --steps 6 \
    --schedule-steps 12 --save-state "$tmp/f32.lsst" --out "$tmp/half32.bin"
check "build/lisa resumes the GPU's state on the CPU" "$lisa" train --resume "$tmp/f32.lsst" --data "$tmp/text.tok" \
    --steps 12 --log "$tmp/cpu_rest.jsonl" --out "$tmp/cpu_rest.bin"
check "... and continues within 1e-4 of the straight GPU run" cpu_continues
# The README's GPU program, cut from 100 steps to 3 (emulated steps are slow),
# runs on the emulated GPU and saves its model.
readme_gpu_runs() {
    awk '/^```c$/ { n++; f = n == 2; next } /^```$/ { f = 0 } f' README.md | sed 's/step < 100;/step < 3;/' > "$tmp/readme_gpu.c" &&
        grep -q 'step < 3;' "$tmp/readme_gpu.c" &&
        ${CC:-cc} -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -I. -o "$tmp/readme_gpu" "$tmp/readme_gpu.c" \
            "$tmp/lisa_cuda_emu.o" -lstdc++ -lm &&
        (cd "$tmp" && ./readme_gpu && test -s model.bin)
}
check "the README's GPU program runs on the emulated GPU" readme_gpu_runs
# The GPU benchmark program (bench/bench_gpu.sh runs it on a card) on the
# emulated GPU: it runs; the peak it counts itself (every cudaMalloc and
# cudaFree of the trainer) equals the planner's and the trainer's own tally,
# all of it is freed, and the emulator's own count of device memory (what
# cudaMemGetInfo reports here) reaches the planned peak exactly.
json_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2"; }
bench_matches_plan() {
    "$tmp/bench_cuda" --shape tiny --batch 1 --seq 32 --warmup 1 --steps 2 --interval 2 --json > "$tmp/bench.json" &&
        grep -q '"status":"ok"' "$tmp/bench.json" && grep -q '"plan_match":true' "$tmp/bench.json" &&
        grep -q '"tally_match":true' "$tmp/bench.json" && grep -q '"device_left":0,' "$tmp/bench.json" &&
        [ -n "$(json_field plan_peak "$tmp/bench.json")" ] &&
        [ "$(json_field device_delta "$tmp/bench.json")" = "$(json_field plan_peak "$tmp/bench.json")" ] ||
        { cat "$tmp/bench.json"; return 1; }
}
check "bench/bench_cuda.c builds against the emulated GPU" sh -c "$cxx $emu -Wall -Wextra -Werror -Wno-unknown-pragmas -c -o '$tmp/bench_obj.o' bench/lisa_cuda_obj.cu &&
    ${CC:-cc} -std=c99 -Wall -Wextra -Wpedantic -Werror -I. -o '$tmp/bench_cuda' bench/bench_cuda.c '$tmp/bench_obj.o' -lstdc++ -lm"
check "bench_cuda runs a tiny LISA benchmark: its counted peak, the trainer's tally and the emulator's count equal the plan" bench_matches_plan
echo "cuda_emu: emulated GPU tests took $(($(date +%s) - start)) s"
echo "cuda_emu: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
