/* The GPU trainer for bench_cuda.c (lisa.h's implementation is compiled there). */
#ifndef LISA_CUDA_EMULATE
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#endif /* else the tests' emulator of them is included first */
#include <stddef.h>
#include <unordered_map>

/* Device memory measured apart from the trainer's own tally: every cudaMalloc
   and cudaFree of lisa_cuda.h comes through these two, which keep each
   allocation's size, the bytes held now and the most held at once. */
static std::unordered_map<void *, size_t> bench_sizes;
static size_t bench_device_now, bench_device_peak;

static cudaError_t bench_counted_malloc(void **p, size_t bytes) {
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess && *p) {
        bench_sizes[*p] = bytes;
        bench_device_now += bytes;
        if (bench_device_now > bench_device_peak) bench_device_peak = bench_device_now;
    }
    return e;
}

static cudaError_t bench_counted_free(void *p) {
    std::unordered_map<void *, size_t>::iterator it = bench_sizes.find(p);
    if (it != bench_sizes.end()) {
        bench_device_now -= it->second;
        bench_sizes.erase(it);
    }
    return cudaFree(p);
}

#define cudaMalloc bench_counted_malloc
#define cudaFree bench_counted_free
#define LISA_CUDA_IMPLEMENTATION
#include "lisa_cuda.h"
#undef cudaMalloc
#undef cudaFree

/* Lets the C benchmark wait for the GPU, so a step's time includes its last kernels. */
extern "C" int bench_cuda_synchronize(void) { return (int)cudaDeviceSynchronize(); }
/* The counted device bytes: held now, and the most held at once since the last restart. */
extern "C" size_t bench_cuda_bytes(void) { return bench_device_now; }
extern "C" size_t bench_cuda_peak_bytes(void) { return bench_device_peak; }
extern "C" void bench_cuda_restart_peak(void) { bench_device_peak = bench_device_now; }
