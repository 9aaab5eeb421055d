#!/bin/sh
# lisa.h must compile warning-free every way a user may build it.
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#define LISA_IMPLEMENTATION\n#include "lisa.h"\nint main(void) { return lisa_result_string(LISA_OK)[0] == 0; }\n' > "$tmp/impl.c"
printf '#include "lisa.h"\nint use(void) { return (int)LISA_OK; }\n' > "$tmp/decl.c"
try() {
    if "$@" > "$tmp/out" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $*"
        cat "$tmp/out"
    fi
}
W="-Wall -Wextra -Wpedantic -Werror"
for cc in gcc clang; do
    if ! command -v $cc > /dev/null; then
        echo "compile: $cc is not installed: its checks skipped, not counted (CI installs it)"
        continue
    fi
    try $cc -std=c99 $W -I. -c "$tmp/impl.c" -o "$tmp/a.o"
    try $cc -std=c99 $W -O2 -I. -c "$tmp/impl.c" -o "$tmp/a.o"
    try $cc -std=c99 $W -DLISA_STATIC -I. -c "$tmp/impl.c" -o "$tmp/a.o"
    try $cc -std=c99 $W -DLISA_NO_STDIO -I. -c "$tmp/impl.c" -o "$tmp/a.o"
    try $cc -std=c99 $W -DLISA_NO_STDIO -DLISA_STATIC -O2 -I. -c "$tmp/impl.c" -o "$tmp/a.o"
    try $cc -std=c99 $W -I. -c "$tmp/decl.c" -o "$tmp/d.o"
    try $cc -std=c11 $W -O2 -fopenmp -I. -c "$tmp/impl.c" -o "$tmp/a.o"
done
try g++ -x c++ $W -I. -c "$tmp/impl.c" -o "$tmp/a.o"
try g++ -x c++ -std=c++11 $W -O2 -fopenmp -DLISA_STATIC -I. -c "$tmp/impl.c" -o "$tmp/a.o"
if command -v clang++ > /dev/null; then
    try clang++ -x c++ $W -I. -c "$tmp/impl.c" -o "$tmp/a.o"
fi
# A program links with libc and libm only.
try gcc -std=c99 $W -I. "$tmp/impl.c" -o "$tmp/a.out" -lm
# The README's example program builds with the command the README gives, and runs.
# The first C block is the CPU program; the second, the GPU one (run on the
# emulated GPU by tests/cuda_emu.sh), must compile as C99 here too.
awk '/^```c$/ { n++; f = n == 1; next } /^```$/ { f = 0 } f' README.md > "$tmp/readme.c"
awk '/^```c$/ { n++; f = n == 2; next } /^```$/ { f = 0 } f' README.md > "$tmp/readme_gpu.c"
try gcc -std=c99 $W -O2 -I. -c "$tmp/readme_gpu.c" -o "$tmp/readme_gpu.o"
try gcc -std=c99 $W -O2 -I. "$tmp/readme.c" -o "$tmp/readme" -lm
try sh -c "cd '$tmp' && ./readme | grep -q '^step 100 loss' && test -s model.bin"
echo "compile: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
