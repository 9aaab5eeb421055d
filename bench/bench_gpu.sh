#!/bin/sh
# bench/bench_gpu.sh: every GPU measurement of lisa_cuda.h in one command, in under 10 minutes.
#
#   sh bench/bench_gpu.sh
#
# Needs an NVIDIA GPU (compute capability 8.0 or newer) with its driver, the CUDA Toolkit
# (nvcc, cuBLAS), gcc, and for the comparison python3 with torch, transformers and peft
# (no network: every model is a random one built from its shape).
#
# In order, the GPU-only claims first:
#   0. sanity: a tiny model, LISA over two switches
#   1. memory, LLaMA-2-7B shape, LISA, bf16, batch 1, gradient checkpointing, 25 steps over
#      a switch of the active layers (K 20): gamma 2 seq 1024, gamma 4, seq 2048, and --fit
#      (the longest seq whose planned peak fits in 24 GiB, then run over a switch)
#   2. speed, 1B-class shape: lisa_cuda full and LISA, PyTorch + transformers full and peft LoRA
#   3. speed, 7B shape: the same four (full fine-tuning may not fit the card: then "oom")
# Each run's JSON line goes to bench/results/<date>.jsonl; a markdown table for
# bench/RESULTS.md is printed at the end. A run that fails is recorded as failed and the
# rest go on; the exit status is 1 if any run failed for a reason other than memory.
#
# Environment: BENCH_BUDGET_S (seconds for everything, default 570), PYTHON (python3),
# NVCC (nvcc), CUDA_ARCH (e.g. 90; default: the card's, from nvidia-smi).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
START=$(date +%s)
BUDGET=${BENCH_BUDGET_S:-570}
PYTHON=${PYTHON:-python3}
NVCC=${NVCC:-nvcc}

# Speed settings: large enough batches for the matmuls to run near the card's rate, small
# enough step counts for the whole script to stay under 10 minutes.
SPEED_WARMUP=3
SPEED_STEPS=10
B1=4 T1=2048 CKPT1=0    # 1B-class shape: fits every mode on an 80 GB card without checkpointing
B7=1 T7=2048 CKPT7=1    # 7B shape: checkpointing, so that full fine-tuning can fit 141 GB

elapsed() { echo $(($(date +%s) - START)); }
left() { echo $((BUDGET - $(elapsed))); }
die() { echo "bench_gpu.sh: $*" >&2; exit 1; }

# A JSON string body: quotes and backslashes escaped, control characters dropped.
json_escape() { printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g'; }

# --- the card ---------------------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: this needs an NVIDIA GPU and driver"
nvidia-smi -L >/dev/null 2>&1 || die "nvidia-smi sees no GPU"
query() { nvidia-smi --query-gpu="$1" --format=csv,noheader 2>/dev/null | head -n 1; }
CARD=$(query name)
DRIVER=$(query driver_version)
CARD_MEM=$(query memory.total)
CAP=${CUDA_ARCH:-$(query compute_cap | tr -d '. ')}
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
STAMP=$(date -u +%Y-%m-%d-%H%M%S)
echo "card:   $CARD ($CARD_MEM), driver $DRIVER, compute capability ${CAP:-unknown}"
echo "date:   $DATE"
echo "host:   $(uname -n), $(nproc 2>/dev/null || echo '?') CPUs"

mkdir -p build bench/results
OUT=bench/results/$STAMP.jsonl
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
: >"$OUT"

# --- build ------------------------------------------------------------------------------
command -v "$NVCC" >/dev/null 2>&1 || NVCC=/usr/local/cuda/bin/nvcc
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v "$NVCC" 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")}
case "$CAP" in
    [0-9][0-9] | [0-9][0-9][0-9]) GENCODE="-gencode arch=compute_$CAP,code=sm_$CAP" ;;
    *) GENCODE="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90" ;;
esac
LIBDIRS=""
for d in "$CUDA_HOME/lib64" "$CUDA_HOME/targets/x86_64-linux/lib" "$CUDA_HOME/targets/sbsa-linux/lib"; do
    [ -d "$d" ] && LIBDIRS="$LIBDIRS -L$d -Wl,-rpath,$d"
done
NVCC_VERSION=$("$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' | head -n 1)
echo "build:  nvcc ${NVCC_VERSION:-?} $GENCODE, $(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)"
BUILD_OK=1
# No -Werror here, though bench_cuda.c is kept clean under it: a newer gcc's new warning on
# the GPU machine must not cost the one run there.
# shellcheck disable=SC2086  # GENCODE and LIBDIRS are lists of words
if ! "$NVCC" -std=c++17 -O3 -I. $GENCODE -c bench/lisa_cuda_obj.cu -o build/lisa_cuda_obj.o >"$TMP/build" 2>&1 ||
    ! gcc -std=c99 -O2 -Wall -Wextra -Wpedantic -I. -o build/bench_cuda bench/bench_cuda.c \
        build/lisa_cuda_obj.o $LIBDIRS -lcublas -lcudart -lstdc++ -lm >>"$TMP/build" 2>&1; then
    BUILD_OK=0
    tail -n 30 "$TMP/build"
    echo "build failed: the lisa_cuda runs are recorded as failed, the PyTorch ones still run"
fi
echo "built in $(elapsed) s"

printf '{"tool":"env","card":"%s","card_memory":"%s","driver":"%s","compute_capability":"%s","cuda":"%s","date":"%s","host":"%s","command":"sh bench/bench_gpu.sh","budget_s":%s}\n' \
    "$(json_escape "$CARD")" "$(json_escape "$CARD_MEM")" "$(json_escape "$DRIVER")" "$(json_escape "$CAP")" \
    "$(json_escape "$NVCC_VERSION")" "$DATE" "$(json_escape "$(uname -n)")" "$BUDGET" >>"$OUT"

# --- runs -------------------------------------------------------------------------------
record_failure() { # tool label status message
    printf '{"tool":"%s","label":"%s","status":"%s","error":"%s"}\n' "$1" "$(json_escape "$2")" "$3" \
        "$(json_escape "$4")" >>"$OUT"
    echo "   -> $3: $4"
}

# run_one TOOL LABEL LIMIT_S COMMAND...: runs with --json --label, keeps its JSON line.
run_one() {
    tool=$1 label=$2 limit=$3
    shift 3
    remaining=$(left)
    if [ "$remaining" -lt 30 ]; then
        record_failure "$tool" "$label" skipped "time budget spent after $(elapsed) s"
        return 0
    fi
    if [ "$limit" -gt $((remaining - 15)) ]; then limit=$((remaining - 15)); fi
    echo
    echo "== $label ($tool, at most $limit s; $(elapsed) s so far)"
    rc=0
    timeout -k 10 "$limit" "$@" --json --label "$label" >"$TMP/out" 2>"$TMP/err" || rc=$?
    cat "$TMP/err"
    line=$(grep '^{' "$TMP/out" | tail -n 1)
    if [ -n "$line" ]; then
        echo "$line" >>"$OUT"
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        record_failure "$tool" "$label" timeout "no result within $limit s"
    else
        record_failure "$tool" "$label" crashed "exit status $rc: $(tail -n 1 "$TMP/err")"
    fi
}

cuda() { # LABEL LIMIT_S OPTIONS...
    if [ "$BUILD_OK" -eq 0 ]; then
        record_failure lisa_cuda "$1" build_failed "bench_cuda did not build"
        return 0
    fi
    label=$1 limit=$2
    shift 2
    run_one lisa_cuda "$label" "$limit" build/bench_cuda "$@"
}

hf() { # LABEL LIMIT_S OPTIONS...
    label=$1 limit=$2
    shift 2
    run_one hf "$label" "$limit" "$PYTHON" bench/bench_hf.py "$@"
}

MEM="--shape 7b --mode lisa --interval 20 --batch 1 --dtype bf16 --ckpt 1"
# shellcheck disable=SC2086
{
    cuda sanity-tiny 60 --shape tiny --mode lisa --gamma 2 --interval 2 --batch 2 --seq 256 --warmup 1 --steps 4
    cuda mem-7b-g2-s1024 90 $MEM --gamma 2 --seq 1024 --warmup 3 --steps 22
    cuda mem-7b-g4-s1024 90 $MEM --gamma 4 --seq 1024 --warmup 3 --steps 22
    cuda mem-7b-g2-s2048 90 $MEM --gamma 2 --seq 2048 --warmup 3 --steps 22
    cuda fit-7b-g2 150 $MEM --gamma 2 --fit --warmup 2 --steps 20

    S1="--shape 1b --batch $B1 --seq $T1 --ckpt $CKPT1 --warmup $SPEED_WARMUP --steps $SPEED_STEPS"
    cuda speed-1b-full 90 $S1 --mode full
    cuda speed-1b-lisa 90 $S1 --mode lisa --gamma 2 --interval 20
    hf speed-1b-full 120 $S1 --mode full
    hf speed-1b-lora 120 $S1 --mode lora

    S7="--shape 7b --batch $B7 --seq $T7 --ckpt $CKPT7 --warmup $SPEED_WARMUP --steps $SPEED_STEPS"
    cuda speed-7b-lisa 90 $S7 --mode lisa --gamma 2 --interval 20
    hf speed-7b-lora 150 $S7 --mode lora
    cuda speed-7b-full 120 $S7 --mode full
    hf speed-7b-full 150 $S7 --mode full
}

echo
echo "all runs done in $(elapsed) s; results in $OUT"
echo
status=0
"$PYTHON" bench/bench_table.py "$OUT" || status=$?
echo
echo "total $(elapsed) s"
exit "$status"
