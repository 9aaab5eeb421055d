#!/bin/sh
# The embedded example on a 32-bit embedded-class target: examples/embedded.c
# (LISA_NO_STDIO, one bump arena, reserve_slots) cross-compiled for 32-bit ARM
# (arm-linux-gnueabihf-gcc, static) and run under qemu-arm. It checks what a
# 32-bit size_t and another ABI could break: the arena stays at the planner's
# peak from init through 600 steps and 30 LISA switches, and grows without
# reserve_slots. Skipped (not counted) where the cross compiler or qemu-arm is
# missing; .ci/run installs both. Skipped under sanitizers (a BUILD_DIR named
# *san*): the host build of the same program already runs in tests/test_examples.sh.
# Usage: sh tests/embedded_arm.sh BUILD_DIR
build=${1:-build}
case "$build" in
*san*)
    echo "embedded_arm: skipped under sanitizers (not counted)"
    echo "embedded_arm: 0 passed, 0 failed"
    exit 0 ;;
esac
cc=${ARM_CC:-arm-linux-gnueabihf-gcc}
if ! command -v "$cc" > /dev/null 2>&1 || ! command -v qemu-arm > /dev/null 2>&1; then
    echo "embedded_arm: $cc or qemu-arm not installed, skipped (not counted)"
    echo "embedded_arm: 0 passed, 0 failed"
    exit 0
fi
mkdir -p "$build" || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
. tests/check.sh
check "embedded.c builds for 32-bit ARM, warning-free" \
    "$cc" -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -static -I. -o "$build/embedded_arm" examples/embedded.c -lm
check "under qemu-arm, the arena holds the planned peak from init through 30 switches" \
    sh -c "qemu-arm '$build/embedded_arm' > '$tmp/out.txt' && grep -q '^ok:' '$tmp/out.txt'"
cat "$tmp/out.txt" 2>/dev/null
echo "embedded_arm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
