#!/bin/sh
# Builds and runs the example programs: every examples/*.c except examples/lisa.c
# (the Makefile builds that one). Usage: sh tests/test_examples.sh BUILD_DIR
#
# Each example carries its build command near its top: the first line of its
# first 30 that starts (after blanks) with "cc ", less a closing "*/" if the
# comment ends on it. By convention the command is
# typed at the repository root, names paths relative to it, and writes its
# program into the current directory (-o NAME, no slash). For each example:
#   1. build: the command runs exactly as written, in a scratch directory whose
#      entries are symbolic links to the repository root's, so every relative
#      path resolves as at the root and the root gets no stray program. It must
#      build examples/<its own name>.c. The program goes to BUILD_DIR/<name>.
#   2. strict: the file compiles warning-free with gcc and clang as C99, and
#      with g++ (and clang++ when installed) as C++, all with -Wall -Wextra
#      -Wpedantic -Werror; gcc at -O2, whose flow analysis warns of more (an
#      uninitialized variable), the others at -O0, which saves most of the time.
#   3. run: the program exits 0 within 120 s and prints a line starting "ok:".
# Ends with "examples: N passed, M failed"; exits non-zero when M > 0.

if [ $# -ne 1 ]; then
    echo "usage: sh tests/test_examples.sh BUILD_DIR" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
build=$(cd "$1" && pwd) || exit 2
root=$(cd "$(dirname "$0")/.." && pwd) || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
W="-Wall -Wextra -Wpedantic -Werror"
if command -v timeout > /dev/null; then limit="timeout 120"; else limit=""; fi

pass() { passed=$((passed + 1)); echo "  ok    $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL  $1"; [ -s "$tmp/log" ] && sed 's/^/        /' "$tmp/log"; }

# $1 = label, then a command; its output goes to $tmp/log.
try() {
    label=$1
    shift
    if "$@" > "$tmp/log" 2>&1; then pass "$label"; else fail "$label"; fi
}

count=0
for src in "$root"/examples/*.c; do
    name=$(basename "$src" .c)
    [ "$name" = lisa ] && continue
    [ -f "$src" ] || continue
    count=$((count + 1))
    echo "== examples/$name.c"

    # 1. The command as written. A failed build must not leave an old program to run.
    rm -f "$build/$name"
    cmd=$(awk 'NR > 30 { exit }
               /^[ \t]*cc[ \t]/ { sub(/^[ \t]+/, ""); sub(/[ \t]*(\*\/)?[ \t]*$/, ""); print; exit }' "$src")
    out=$(set -f; set -- $cmd; while [ $# -gt 1 ]; do [ "$1" = -o ] && echo "$2"; shift; done)
    : > "$tmp/log"
    if [ -z "$cmd" ]; then
        echo "no line starting with \"cc \" in the first 30 lines" > "$tmp/log"
        fail "build"
    elif [ -z "$out" ] || [ "$out" != "$(basename "$out")" ]; then
        echo "the command must name its program with -o NAME, no slash: $cmd" > "$tmp/log"
        fail "build: $cmd"
    elif ! printf '%s\n' "$cmd" | grep -q "examples/$name\.c"; then
        echo "the command does not build examples/$name.c: $cmd" > "$tmp/log"
        fail "build: $cmd"
    else
        scratch="$tmp/root"
        rm -rf "$scratch"
        mkdir "$scratch"
        for f in "$root"/* "$root"/.[!.]*; do
            [ -e "$f" ] || continue
            [ "$(basename "$f")" = "$out" ] && continue   # never write through a link
            ln -s "$f" "$scratch/"
        done
        if (cd "$scratch" && sh -c "$cmd") > "$tmp/log" 2>&1 && [ -f "$scratch/$out" ] &&
            mv "$scratch/$out" "$build/$name"; then
            pass "build: $cmd"
        else
            [ -f "$scratch/$out" ] || echo "(no $out was written)" >> "$tmp/log"
            fail "build: $cmd"
        fi
    fi

    # 2. Warning-free every way.
    # $flags and $W are split into words on purpose (so is $cmd above).
    for flags in "gcc -std=c99 -O2" "clang -std=c99 -O0" "g++ -x c++ -O0" "clang++ -x c++ -O0"; do
        cc=${flags%% *}
        if command -v "$cc" > /dev/null; then
            try "$flags $W" $flags $W -I"$root" -o "$tmp/strict" "$src" -lm
        elif [ "$cc" != clang++ ]; then   # clang++ is optional
            echo "$cc is not installed" > "$tmp/log"
            fail "$flags $W"
        fi
    done

    # 3. The program does what it says.
    if [ -x "$build/$name" ]; then
        if (cd "$tmp" && $limit "$build/$name") > "$tmp/log" 2>&1 && grep -q '^ok:' "$tmp/log"; then
            pass "run: $(grep '^ok:' "$tmp/log" | head -n 1)"
        else
            fail "run: $build/$name"
        fi
    else
        : > "$tmp/log"
        fail "run: not built"
    fi
done
if [ "$count" -eq 0 ]; then
    echo "no examples found in $root/examples"
    failed=$((failed + 1))
fi
echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
