#!/bin/sh
# GPU tests: builds tests/test_cuda.cu warning-free for compute capability
# 8.0, 8.6, 8.9 and 9.0 into BUILD/test_cuda (one check), compiles a C99 file
# that includes lisa_cuda.h with gcc -Wall -Wextra -Wpedantic -Werror (one
# check), builds the program (lisa-cuda: the object for one target, then
# gcc; with mpicc and NCCL also the NCCL program) and runs what needs no GPU, then runs BUILD/test_cuda, whose own
# "test_cuda: N passed, M failed" line the test runner adds separately. Without a GPU test_cuda runs only its
# host checks (the planner). Without nvcc everything is skipped.
# Usage: sh tests/cuda.sh BUILD_DIR   (NVCC=/path/to/nvcc to choose the compiler)
build=${1:-build}
nvcc=${NVCC:-nvcc}
if ! command -v "$nvcc" > /dev/null 2>&1; then
    if [ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
        nvcc=/usr/local/cuda/bin/nvcc
    else
        echo "cuda: nvcc not installed, skipped"
        echo "cuda: 0 passed, 0 failed"
        exit 0
    fi
fi
mkdir -p "$build" || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
arch="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86"
arch="$arch -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90"
if "$nvcc" -std=c++17 -O3 -Xcompiler -Wall,-Wextra -Werror all-warnings $arch -I. -Itests \
        -o "$build/test_cuda" tests/test_cuda.cu -lcublas > "$tmp/out" 2>&1; then
    passed=$((passed + 1))
    built=1
else
    failed=$((failed + 1))
    built=0
    echo "FAIL: nvcc build of tests/test_cuda.cu"
    cat "$tmp/out"
fi
printf '#include "lisa_cuda.h"\nint use(void) { return lisa_cuda_device_count(); }\n' > "$tmp/decl.c"
if gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -I. -c "$tmp/decl.c" -o "$tmp/decl.o" > "$tmp/out" 2>&1; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL: gcc -std=c99 on a file including lisa_cuda.h"
    cat "$tmp/out"
fi
# The program: build/lisa-cuda links the implementation as an object (one
# target is enough here: test_cuda above compiles the same code for all four).
. tests/check.sh
cuda_home=$(dirname "$(dirname "$(command -v "$nvcc")")")
check "nvcc builds examples/lisa_cuda_impl.cu into an object" "$nvcc" -std=c++17 -O3 -Xcompiler -Wall,-Wextra \
    -Werror all-warnings -gencode arch=compute_80,code=sm_80 -I. -c -o "$tmp/lisa_cuda.o" examples/lisa_cuda_impl.cu
check "build/lisa-cuda links with gcc -Werror" ${CC:-cc} -std=c99 -Wall -Wextra -Wpedantic -Werror -I. \
    -DLISA_WITH_CUDA -o "$tmp/lisa-cuda" examples/lisa.c "$tmp/lisa_cuda.o" -L"$cuda_home/lib64" \
    -Wl,-rpath,"$cuda_home/lib64" -lcublas -lcudart -lstdc++ -lm
# The NCCL program (data parallelism, one GPU per MPI rank), where mpicc and
# the toolkit's NCCL are there: it must build and link; it is not run here.
nccl_lib=
for d in "$cuda_home/lib" "$cuda_home/lib64"; do [ -e "$d/libnccl.so" ] && nccl_lib=$d && break; done
if command -v "${MPICC:-mpicc}" > /dev/null 2>&1 && [ -f "$cuda_home/include/nccl.h" ] && [ -n "$nccl_lib" ]; then
    check "lisa-cuda with NCCL (LISA_WITH_NCCL) builds and links with mpicc -Werror" "${MPICC:-mpicc}" -std=c99 -Wall \
        -Wextra -Wpedantic -Werror -I. -isystem "$cuda_home/include" -DLISA_WITH_CUDA -DLISA_WITH_NCCL \
        -o "$tmp/lisa-cuda-nccl" examples/lisa.c "$tmp/lisa_cuda.o" -L"$nccl_lib" -Wl,-rpath,"$nccl_lib" -lnccl \
        -L"$cuda_home/lib64" -Wl,-rpath,"$cuda_home/lib64" -lcublas -lcudart -lstdc++ -lm
else
    echo "cuda: mpicc or NCCL not found, the NCCL program not built (not counted)"
fi
check "lisa-cuda plan needs no GPU" sh -c "'$tmp/lisa-cuda' plan --init llama2-7b --mode lisa --batch 1 --seq 1024 --checkpointing --budget 24 | grep -q '^fits in 24.0 GiB'"
if [ -x "$tmp/lisa-cuda" ] && ! command -v nvidia-smi > /dev/null 2>&1; then
    printf 'abcdefgh%.0s' $(seq 1 64) > "$tmp/t.txt"
    "$tmp/lisa-cuda" tokenize --tokenizer bytes "$tmp/t.txt" "$tmp/t.tok" > /dev/null 2>&1
    check "without a GPU, lisa-cuda train says so" sh -c "! '$tmp/lisa-cuda' train --init dim=32,hidden=64,layers=2,heads=4,vocab=258,seq=16 --data '$tmp/t.tok' --out '$tmp/x.bin' --steps 1 --batch 1 --seq 16 2> '$tmp/err' && grep -q 'no CUDA device' '$tmp/err'"
fi
status=0
if [ "$built" -eq 1 ]; then
    "$build/test_cuda" > "$tmp/run" 2>&1 || status=1
    cat "$tmp/run"
    if ! grep -Eq '^test_cuda: [0-9]+ passed, [0-9]+ failed$' "$tmp/run"; then
        echo "FAIL: test_cuda crashed or printed no summary"
        failed=$((failed + 1))
    fi
fi
echo "cuda: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
