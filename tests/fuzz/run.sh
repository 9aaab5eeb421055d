#!/bin/sh
# Fuzzes every loader harness, tests/fuzz/fuzz_<name>.c, with libFuzzer under
# AddressSanitizer and UBSan:
#   tests/fuzz/run.sh [SECONDS]      (default 30 seconds per harness)
# For each harness: build it, fuzz it for SECONDS on a temporary copy of
# tests/fuzz/corpus/<name>/ (the committed corpus never grows), then replay
# every file in tests/fuzz/regressions/<name>/. A crash, leak or timeout found
# while fuzzing is copied into tests/fuzz/regressions/<name>/, to be committed
# as a regression test. Ends with "fuzz: N passed, M failed" (N: harnesses
# that built, fuzzed and replayed clean) and fails if M > 0.
# Installs nothing: it needs clang with libFuzzer (Debian: apt-get install clang).
# FUZZ_CC overrides the compiler, FUZZ_MAX_LEN the largest input (65536), and
# FUZZ_CFLAGS adds flags (e.g. -m32, which needs 32-bit libc and libstdc++).
set -u
secs=${1:-30}
case $secs in
'' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../.." || exit 2
cc=${FUZZ_CC:-clang}
max_len=${FUZZ_MAX_LEN:-65536}
cflags="-std=c99 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I. ${FUZZ_CFLAGS:-}"
fuzz_opts="-max_total_time=$secs -rss_limit_mb=2048 -max_len=$max_len -timeout=20 -print_final_stats=1"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lisa-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

harnesses=
for src in tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] && harnesses="$harnesses $src"
done
total=$(echo $harnesses | wc -w)
if [ "$total" -eq 0 ]; then
    echo "fuzz: no harnesses (tests/fuzz/fuzz_*.c)"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi

# The toolchain: clang, and libFuzzer with the sanitizers (a tiny compile tells).
if ! command -v "$cc" > /dev/null 2>&1; then
    echo "fuzz: $cc not found. Install clang, which brings libFuzzer (Debian: apt-get install clang)."
    echo "fuzz: 0 passed, $total failed"
    exit 1
fi
cat > "$tmp/probe.c" << 'PROBE'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return data && size > 1000000; }
PROBE
if ! $cc $cflags "$tmp/probe.c" -o "$tmp/probe" > "$tmp/probe.log" 2>&1; then
    cat "$tmp/probe.log"
    echo "fuzz: $cc cannot build a libFuzzer program (-fsanitize=fuzzer,address,undefined)."
    echo "fuzz: install clang with its runtime libraries (Debian: apt-get install clang; elsewhere compiler-rt)."
    echo "fuzz: 0 passed, $total failed"
    exit 1
fi

# lf_stat NAME LOG: the value of libFuzzer's final "stat::NAME: value" line.
lf_stat() {
    sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

passed=0
failed=0
for src in $harnesses; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    bin="$tmp/fuzz_$name"
    log="$tmp/$name.log"
    echo "== $name"
    if ! $cc $cflags "$src" -o "$bin" -lm > "$log" 2>&1; then
        cat "$log"
        echo "$name: FAILED to build"
        failed=$((failed + 1))
        continue
    fi
    ok=1

    # Fuzz on a copy of the seed corpus.
    corpus="$tmp/corpus/$name"
    artifacts="$tmp/artifacts/$name"
    mkdir -p "$corpus" "$artifacts"
    seeds=0
    if [ -d "tests/fuzz/corpus/$name" ]; then
        cp -R "tests/fuzz/corpus/$name/." "$corpus/"
        seeds=$(find "$corpus" -type f | wc -l)
    fi
    dict=
    [ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
    "$bin" $fuzz_opts $dict -artifact_prefix="$artifacts/" "$corpus" > "$log" 2>&1
    rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    cov=$(echo "$done_line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$done_line" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    inputs=$(find "$corpus" -type f | wc -l)
    echo "$name: $(lf_stat number_of_executed_units "$log") runs (limit ${secs} s)," \
        "$(lf_stat average_exec_per_sec "$log") exec/s, cov ${cov:-?} ft ${ft:-?}," \
        "corpus $seeds seeds -> $inputs inputs, peak rss $(lf_stat peak_rss_mb "$log") MB"
    if [ "$rc" -ne 0 ]; then
        ok=0
        tail -n 60 "$log"
        echo "$name: FAILED while fuzzing (exit $rc)"
        for f in "$artifacts"/*; do
            [ -f "$f" ] || continue
            mkdir -p "tests/fuzz/regressions/$name"
            cp "$f" "tests/fuzz/regressions/$name/"
            echo "$name: saved tests/fuzz/regressions/$name/$(basename "$f") (commit it as a regression test)"
        done
    fi

    # Replay every regression input.
    replayed=0
    for f in "tests/fuzz/regressions/$name"/*; do
        [ -f "$f" ] || continue
        case $(basename "$f") in README*) continue ;; esac
        replayed=$((replayed + 1))
        if ! "$bin" -rss_limit_mb=2048 -timeout=20 "$f" > "$log" 2>&1; then
            ok=0
            tail -n 40 "$log"
            echo "$name: FAILED on regression input $f"
        fi
    done
    echo "$name: $replayed regression inputs replayed"

    if [ "$ok" -eq 1 ]; then
        passed=$((passed + 1))
        echo "$name: ok"
    else
        failed=$((failed + 1))
    fi
done

echo "fuzz: $(($(date +%s) - start)) s in all"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
