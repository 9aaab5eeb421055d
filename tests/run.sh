#!/bin/sh
# Runs each test program of build dir $1, then the compile matrix, the CLI
# test, the examples, the GPU and MPI scripts, and adds up their "name: N passed, M failed" lines into one summary.
build=$1
shift
log=$(mktemp)
status=0
# count NAME STATUS: adds the summary lines of $log.out (the output of NAME,
# which exited with STATUS) to $log. A run that printed none (a crash before
# its summary), or that exited non-zero while its lines report no failure (a
# crash after it, a leak found at exit), counts as one failure more.
count() {
    if ! grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed$' "$log.out" > "$log.lines"; then
        echo "$1: 0 passed, 1 failed (crashed or printed no summary; exit status $2)"
        echo "x: 0 passed, 1 failed" >> "$log"
        return
    fi
    cat "$log.lines" >> "$log"
    if [ "$2" -ne 0 ] && [ "$(awk '{f += $4} END {print f + 0}' "$log.lines")" -eq 0 ]; then
        echo "$1: 0 passed, 1 failed (exit status $2 after a summary with no failure)"
        echo "x: 0 passed, 1 failed" >> "$log"
    fi
}
for t in "$@"; do
    echo "== $t"
    "$build/$t" > "$log.out" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || status=1
    cat "$log.out"
    count "$t" "$rc"
done
for s in tests/compile.sh tests/test_cli.sh tests/test_examples.sh tests/embedded_arm.sh tests/cuda.sh tests/cuda_emu.sh tests/test_mpi.sh; do
    echo "== $s"
    sh "$s" "$build" > "$log.out" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || status=1
    cat "$log.out"
    count "$s" "$rc"
done
passed=$(awk '{p += $2} END {print p + 0}' "$log")
failed=$(awk '{f += $4} END {print f + 0}' "$log")
rm -f "$log" "$log.out" "$log.lines"
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
