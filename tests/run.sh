#!/bin/sh
# Runs each test program of build dir $1, then the compile matrix, the CLI
# test and the examples, and adds up their "name: N passed, M failed" lines into one summary.
build=$1
shift
log=$(mktemp)
status=0
for t in "$@"; do
    echo "== $t"
    "$build/$t" > "$log.out" 2>&1 || status=1
    cat "$log.out"
    grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed$' "$log.out" >> "$log" ||
        { echo "$t: 0 passed, 1 failed (crashed or printed no summary)"; echo "$t: 0 passed, 1 failed" >> "$log"; }
done
for s in tests/compile.sh tests/test_cli.sh tests/test_examples.sh tests/cuda.sh tests/cuda_emu.sh; do
    echo "== $s"
    sh "$s" "$build" > "$log.out" 2>&1 || status=1
    cat "$log.out"
    grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed$' "$log.out" >> "$log" ||
        { echo "$s: 0 passed, 1 failed (printed no summary)"; echo "x: 0 passed, 1 failed" >> "$log"; }
done
passed=$(awk '{p += $2} END {print p + 0}' "$log")
failed=$(awk '{f += $4} END {print f + 0}' "$log")
rm -f "$log" "$log.out"
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
