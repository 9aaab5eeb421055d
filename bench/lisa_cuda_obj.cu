/* The GPU trainer for bench_cuda.c (lisa.h's implementation is compiled there). */
#define LISA_CUDA_IMPLEMENTATION
#include "lisa_cuda.h" /* its implementation brings the CUDA runtime (or the tests' emulator of it) */
/* Lets the C benchmark wait for the GPU, so a step's time includes its last kernels. */
extern "C" int bench_cuda_synchronize(void) { return (int)cudaDeviceSynchronize(); }
