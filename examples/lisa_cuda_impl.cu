/* The GPU trainer's implementation as one object to link into a program:

       nvcc -std=c++17 -O3 -gencode arch=compute_80,code=sm_80 -I. -c examples/lisa_cuda_impl.cu -o lisa_cuda.o

   (make cuda builds it for compute capability 8.0, 8.6, 8.9 and 9.0 into
   build/lisa_cuda.o). Link it with a program that compiles lisa.h's
   implementation once, and with -lcublas -lcudart. */
#define LISA_CUDA_IMPLEMENTATION
#include "lisa_cuda.h"
