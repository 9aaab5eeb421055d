/* cuda_emu.h: runs lisa_cuda.h's device code on the CPU, for machines without a
   GPU. It emulates exactly the subset of CUDA and cuBLAS that lisa_cuda.h
   uses, with g++ (C++17), no CUDA toolkit and no other library:

       g++ -x c++ -std=c++17 -DLISA_CUDA_EMULATE -include tests/cuda_emu.h -I. file.cu

   (add -Wno-unknown-pragmas: g++ does not know `#pragma unroll`).

   Execution. Blocks run one at a time (so `__shared__` is a static
   variable); the threads of a block run as fibers on their own stacks (64 KiB
   each, with a guard page below; on x86-64 a switch is a few instructions,
   elsewhere or with -DLISA_CUDA_EMU_UCONTEXT it is swapcontext, correct but
   several times slower). A fiber runs until it reaches a barrier
   (__syncthreads, __syncwarp, a shuffle), then the next one runs. The order
   in which threads run between barriers, and blocks within a grid, comes from
   LISA_CUDA_EMU_ORDER = forward (default) | reverse | shuffle (with
   LISA_CUDA_EMU_SEED), so that a missing barrier or a reliance on warps
   running in lockstep gives a wrong result in one of the orders.

   Reported as a launch failure (message on stderr, cudaGetLastError() and
   cudaDeviceSynchronize() return cudaErrorLaunchFailure; the launch's
   remaining blocks are dropped): deadlock (threads waiting at different
   barriers), a thread that exits while others of its block wait at
   __syncthreads or reach one later (or of its warp, at a warp barrier), lanes
   of a warp shuffling from different lines, a launch configuration CUDA
   refuses, a write past the end of a device allocation (a 256-byte guard
   after each one, checked after every launch and product). Device memory
   starts as 0xFF bytes (NaN in fp32 and bf16), so a read of memory never
   written gives NaN; the non-template functions' __shared__ arrays are set to
   0xFF at every block start.

   What it cannot show: timing and occupancy; races between threads that run
   between the same two barriers (a fiber runs alone until it blocks, so
   unsynchronised read-modify-writes of shared or global memory look atomic);
   __shared__ arrays of template kernels are not refilled per block (g++ puts
   them where the fill cannot find them): a block sees what the previous block
   of that kernel left, and the first block of the program sees zeros;
   reads past an allocation (they read the guard: NaN) are found only through
   their effect; coalescing, bank conflicts, register spills, the 48 KiB
   static shared-memory limit (nvcc checks that); the GPU's own arithmetic:
   bf16 conversions are round-to-nearest-even as on the hardware, but expf,
   rsqrtf and friends are the host's, fused multiply-adds are contracted as
   g++ decides and cuBLAS's summation order and algorithms are not
   reproduced (products here accumulate in fp32 in index order).

   Hooks for tests: lisa_emu_fail_malloc_after(n) makes the (n+1)-th
   cudaMalloc from now fail (-1: never); lisa_emu_device_bytes() is what is
   allocated; lisa_emu_stack_peak() the deepest fiber stack use so far. */
#ifndef LISA_CUDA_EMU_H
#define LISA_CUDA_EMU_H

#ifndef __cplusplus
#error "cuda_emu.h is C++17: compile with g++ -x c++ -std=c++17"
#endif

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <vector>

#if !defined(__x86_64__) || defined(LISA_CUDA_EMU_UCONTEXT)
#define LISA_EMU_UCONTEXT 1
#include <ucontext.h>
#endif

/* ------------------------------------------------------------------------- */
/* Qualifiers, built-in variables, device math                                */
/* ------------------------------------------------------------------------- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
/* One block runs at a time, so a static is the block's shared memory. The
   section lets each block start with 0xFF bytes in it (non-templates only). */
#define __shared__ __attribute__((section("lisa_emu_shared"), used)) static

extern "C" __attribute__((weak)) char __start_lisa_emu_shared[], __stop_lisa_emu_shared[];

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* The running thread's: the scheduler sets them before resuming a fiber. */
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
constexpr int warpSize = 32;

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
/* __expf and __logf: glibc declares them already. */
static inline float __fdividef(float a, float b) { return a / b; }

struct __nv_bfloat16 {
    unsigned short x;
};

/* Round to nearest even, as the hardware's cvt.rn.bf16.f32; NaN stays NaN. */
static inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u;
    __nv_bfloat16 h;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) h.x = (unsigned short)((u >> 16) | 0x40u);
    else h.x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return h;
}
static inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------------------------------- */
/* Runtime types                                                              */
/* ------------------------------------------------------------------------- */

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorLaunchFailure = 719,
};
typedef cudaError_t cudaError;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

typedef enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16BF = 14 } cudaDataType;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor, multiProcessorCount, warpSize, maxThreadsPerBlock;
};

/* ------------------------------------------------------------------------- */
/* The emulator's state                                                       */
/* ------------------------------------------------------------------------- */

namespace lisa_emu {

enum { RUN, WAIT_BLOCK, WAIT_WARP, DONE };
enum { ORDER_FORWARD, ORDER_REVERSE, ORDER_SHUFFLE };
const size_t STACK_BYTES = 64 << 10;
const size_t GUARD_BYTES = 256;           /* after each device allocation */
const size_t CARD_BYTES = (size_t)80 << 30;
const int MAX_THREADS = 1024;

struct fiber {
#ifdef LISA_EMU_UCONTEXT
    ucontext_t uc;
#endif
    void *sp;
    unsigned char *stack; /* STACK_BYTES, lowest address */
    int state, line;
    uint3 tid;
};

union lane_slot {
    double d;
    float f;
    int i;
    unsigned u;
};

struct state {
    std::vector<fiber> fibers;
    void *sched_sp = nullptr;
#ifdef LISA_EMU_UCONTEXT
    ucontext_t sched_uc;
#endif
    int cur = -1, n = 0, live = 0, block_waiting = 0, block_exited = 0, failed = 0;
    int warp_live[MAX_THREADS / 32], warp_waiting[MAX_THREADS / 32], warp_exited[MAX_THREADS / 32];
    int warp_phase[MAX_THREADS / 32];
    lane_slot slots[MAX_THREADS / 32][2][32];
    void (*body)(void *) = nullptr;
    void *arg = nullptr;
    const char *kernel = "";
    uint3 block;
    int order = -1;
    uint64_t rng = 0;
    cudaError_t pending = cudaSuccess;
    std::map<unsigned char *, size_t> allocs; /* device pointer -> bytes */
    size_t allocated = 0;
    long malloc_countdown = -1;
};

inline state &st() {
    static state s;
    return s;
}

inline uint64_t next_random(state &s) {
    s.rng ^= s.rng << 13;
    s.rng ^= s.rng >> 7;
    s.rng ^= s.rng << 17;
    return s.rng;
}

inline void read_order(state &s) {
    const char *o = getenv("LISA_CUDA_EMU_ORDER"), *seed = getenv("LISA_CUDA_EMU_SEED");
    s.order = !o || !strcmp(o, "forward") ? ORDER_FORWARD : !strcmp(o, "reverse") ? ORDER_REVERSE : ORDER_SHUFFLE;
    if (o && s.order == ORDER_SHUFFLE && strcmp(o, "shuffle"))
        fprintf(stderr, "cuda_emu: unknown LISA_CUDA_EMU_ORDER '%s', using shuffle\n", o);
    s.rng = seed ? strtoull(seed, NULL, 10) * 0x9e3779b97f4a7c15ull + 1 : 0x1234567ull;
}

inline state &ready() {
    state &s = st();
    if (s.order < 0) read_order(s);
    return s;
}

/* An order over 0..n-1 as the mode asks. */
inline void make_order(state &s, std::vector<unsigned> &order, unsigned n) {
    order.resize(n);
    for (unsigned i = 0; i < n; i++) order[i] = s.order == ORDER_REVERSE ? n - 1 - i : i;
    if (s.order == ORDER_SHUFFLE)
        for (unsigned i = n; i > 1; i--) {
            unsigned j = (unsigned)(next_random(s) % i), t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
}

/* The first failure of a launch: on stderr, and the launch fails. */
inline void fail(const char *fmt, ...) {
    state &s = st();
    va_list ap;
    s.pending = cudaErrorLaunchFailure;
    if (s.failed++) return;
    fprintf(stderr, "cuda_emu: %s, block (%u,%u,%u)", s.kernel, s.block.x, s.block.y, s.block.z);
    if (s.cur >= 0) fprintf(stderr, ", thread %d", s.cur);
    fprintf(stderr, ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

/* ------------------------------------------------------------------------- */
/* Fibers                                                                     */
/* ------------------------------------------------------------------------- */

const unsigned char STACK_FILL = 0xa5; /* to measure how deep stacks go */

inline unsigned char *new_stack() {
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *p = (unsigned char *)mmap(NULL, STACK_BYTES + page, PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "cuda_emu: no memory for fiber stacks\n");
        abort();
    }
    mprotect(p, page, PROT_NONE); /* an overflow faults instead of corrupting */
    memset(p + page, STACK_FILL, STACK_BYTES);
    return p + page;
}

inline void fiber_main();

#ifdef LISA_EMU_UCONTEXT
inline void start_fiber(state &s, fiber &f) {
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = f.stack;
    f.uc.uc_stack.ss_size = STACK_BYTES;
    f.uc.uc_link = NULL;
    makecontext(&f.uc, fiber_main, 0);
    (void)s;
}
inline void resume(state &s, fiber &f) { swapcontext(&s.sched_uc, &f.uc); }
inline void yield(state &s, fiber &f) { swapcontext(&f.uc, &s.sched_uc); }
#else
/* Saves the callee-saved registers on the current stack, stores the stack
   pointer in *save and continues on the stack at load (swapcontext without
   its signal-mask system call, which would dominate the run time). */
__attribute__((naked, noinline)) static void swap_stacks(void ** /* save */, void * /* load */) {
    __asm__ volatile("pushq %rbp\n\t"
                     "pushq %rbx\n\t"
                     "pushq %r12\n\t"
                     "pushq %r13\n\t"
                     "pushq %r14\n\t"
                     "pushq %r15\n\t"
                     "movq %rsp, (%rdi)\n\t"
                     "movq %rsi, %rsp\n\t"
                     "popq %r15\n\t"
                     "popq %r14\n\t"
                     "popq %r13\n\t"
                     "popq %r12\n\t"
                     "popq %rbx\n\t"
                     "popq %rbp\n\t"
                     "ret\n\t");
}
/* A frame that swap_stacks "returns" into fiber_main from, entered with the
   stack aligned as after a call. */
inline void start_fiber(state &, fiber &f) {
    void **top = (void **)(f.stack + STACK_BYTES);
    top[-1] = NULL;                      /* fiber_main's return address: never used */
    top[-2] = (void *)fiber_main;
    for (int i = 3; i <= 8; i++) top[-i] = NULL; /* rbp rbx r12..r15 */
    f.sp = top - 8;
}
inline void resume(state &s, fiber &f) { swap_stacks(&s.sched_sp, f.sp); }
inline void yield(state &s, fiber &f) { swap_stacks(&f.sp, s.sched_sp); }
#endif

inline fiber &current(state &s) { return s.fibers[(size_t)s.cur]; }

inline void release(state &s, int kind, int first, int count) {
    for (int i = first; i < first + count && i < s.n; i++)
        if (s.fibers[(size_t)i].state == kind) s.fibers[(size_t)i].state = RUN;
}

inline void release_warp_if_complete(state &s, int w) {
    if (s.warp_waiting[w] == 0 || s.warp_waiting[w] < s.warp_live[w]) return;
    int line = -1;
    for (int i = w * 32; i < w * 32 + 32 && i < s.n; i++) {
        fiber &f = s.fibers[(size_t)i];
        if (f.state != WAIT_WARP) continue;
        if (line >= 0 && f.line != line)
            fail("lanes of warp %d meet at different warp barriers (lines %d and %d): divergent shuffles", w, line,
                 f.line);
        line = f.line;
    }
    s.warp_waiting[w] = 0;
    s.warp_phase[w] ^= 1;
    release(s, WAIT_WARP, w * 32, 32);
}

inline void release_block_if_complete(state &s) {
    if (s.block_waiting == 0 || s.block_waiting < s.live) return;
    s.block_waiting = 0;
    release(s, WAIT_BLOCK, 0, s.n);
}

/* A thread's arrival at __syncthreads. */
inline void block_barrier() {
    state &s = st();
    fiber &f = current(s);
    if (s.block_exited) fail("__syncthreads after other threads of the block exited");
    f.state = WAIT_BLOCK;
    s.block_waiting++;
    release_block_if_complete(s);
    yield(s, f);
}

/* A lane's arrival at a warp barrier (__syncwarp or a shuffle at line). */
inline void warp_barrier(unsigned mask, int line) {
    state &s = st();
    fiber &f = current(s);
    int w = s.cur >> 5;
    if (mask != 0xffffffffu) fail("warp mask %#x: only full warps are emulated", mask);
    if (s.warp_exited[w]) fail("warp barrier after other lanes of the warp exited");
    f.state = WAIT_WARP;
    f.line = line;
    s.warp_waiting[w]++;
    release_warp_if_complete(s, w);
    yield(s, f);
}

inline void fiber_exit(state &s) {
    fiber &f = current(s);
    int w = s.cur >> 5;
    f.state = DONE;
    s.live--;
    s.warp_live[w]--;
    s.block_exited = s.warp_exited[w] = 1;
    if (s.block_waiting) fail("a thread exits while others wait at __syncthreads");
    if (s.warp_waiting[w]) fail("a lane exits while others of its warp wait at a warp barrier");
    release_warp_if_complete(s, w);
    release_block_if_complete(s);
}

inline void fiber_main() {
    state &s = st();
    s.body(s.arg);
    fiber_exit(s);
    yield(s, current(s));
    abort(); /* a finished fiber is never resumed */
}

inline void ensure_fibers(state &s, int n) {
    while ((int)s.fibers.size() < n) {
        fiber f;
        memset(&f, 0, sizeof f);
        f.stack = new_stack();
        s.fibers.push_back(f);
    }
}

inline void reset_block(state &s, int n, dim3 block) {
    s.n = s.live = n;
    s.block_waiting = s.block_exited = 0;
    for (int w = 0; w < (n + 31) / 32; w++) {
        s.warp_live[w] = n - w * 32 < 32 ? n - w * 32 : 32;
        s.warp_waiting[w] = s.warp_exited[w] = s.warp_phase[w] = 0;
    }
    for (int i = 0; i < n; i++) {
        fiber &f = s.fibers[(size_t)i];
        f.state = RUN;
        f.tid.x = (unsigned)i % block.x;
        f.tid.y = (unsigned)i / block.x % block.y;
        f.tid.z = (unsigned)i / (block.x * block.y);
        start_fiber(s, f);
    }
    unsigned char *lo = (unsigned char *)__start_lisa_emu_shared, *hi = (unsigned char *)__stop_lisa_emu_shared;
    if (lo && hi > lo) memset(lo, 0xff, (size_t)(hi - lo));
}

inline void report_deadlock(state &s) {
    int at_block = 0, at_warp = 0, line = -1;
    for (int i = 0; i < s.n; i++) {
        at_block += s.fibers[(size_t)i].state == WAIT_BLOCK;
        if (s.fibers[(size_t)i].state == WAIT_WARP) {
            at_warp++;
            line = s.fibers[(size_t)i].line;
        }
    }
    s.cur = -1;
    fail("deadlock: %d threads wait at __syncthreads, %d at warp barriers (line %d), %d running", at_block, at_warp,
         line, s.live - at_block - at_warp);
}

/* Runs the threads of one block to the end; 0 on deadlock. */
inline int run_block(state &s, int n, dim3 block) {
    std::vector<unsigned> order;
    reset_block(s, n, block);
    while (s.live > 0) {
        int ran = 0;
        make_order(s, order, (unsigned)n);
        for (unsigned k = 0; k < (unsigned)n; k++) {
            fiber &f = s.fibers[order[k]];
            if (f.state != RUN) continue;
            s.cur = (int)order[k];
            threadIdx = f.tid;
            resume(s, f);
            ran = 1;
        }
        if (!ran) {
            report_deadlock(s);
            return 0;
        }
    }
    s.cur = -1;
    return 1;
}

inline int shape_ok(dim3 grid, dim3 block) {
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    return threads >= 1 && threads <= MAX_THREADS && block.z <= 64 && grid.x >= 1 && grid.y >= 1 && grid.z >= 1 &&
           grid.x <= 0x7fffffffu && grid.y <= 65535 && grid.z <= 65535;
}

inline void check_guards(const char *after);

inline void launch(const char *name, dim3 grid, dim3 block, void (*body)(void *), void *arg) {
    state &s = ready();
    std::vector<unsigned> blocks;
    int n = (int)(block.x * block.y * block.z);
    if (!shape_ok(grid, block)) {
        fprintf(stderr, "cuda_emu: %s: launch of (%u,%u,%u) blocks of (%u,%u,%u) threads refused\n", name, grid.x,
                grid.y, grid.z, block.x, block.y, block.z);
        s.pending = cudaErrorInvalidConfiguration;
        return;
    }
    ensure_fibers(s, n);
    s.kernel = name;
    s.body = body;
    s.arg = arg;
    s.failed = 0;
    gridDim = grid;
    blockDim = block;
    make_order(s, blocks, grid.x * grid.y * grid.z);
    for (unsigned b : blocks) {
        s.block.x = b % grid.x;
        s.block.y = b / grid.x % grid.y;
        s.block.z = b / (grid.x * grid.y);
        blockIdx = s.block;
        if (!run_block(s, n, block)) break;
    }
    check_guards(name);
}

/* ------------------------------------------------------------------------- */
/* Device memory                                                              */
/* ------------------------------------------------------------------------- */

inline int guard_intact(const unsigned char *p, size_t bytes) {
    for (size_t i = 0; i < GUARD_BYTES; i++)
        if (p[bytes + i] != 0xff) return 0;
    return 1;
}

inline void check_guards(const char *after) {
    state &s = st();
    for (auto &a : s.allocs)
        if (!guard_intact(a.first, a.second)) {
            fprintf(stderr, "cuda_emu: %s wrote past the end of a %zu-byte device allocation\n", after, a.second);
            memset(a.first + a.second, 0xff, GUARD_BYTES);
            s.pending = cudaErrorLaunchFailure;
        }
}

/* Is [p, p + bytes) inside one live allocation? */
inline int in_device(const void *p, size_t bytes) {
    state &s = st();
    unsigned char *q = (unsigned char *)p;
    auto it = s.allocs.upper_bound(q);
    if (it == s.allocs.begin()) return 0;
    --it;
    return q >= it->first && q + bytes <= it->first + it->second;
}

} /* namespace lisa_emu */

/* Runs kernel body f on grid x block threads (lisa_cuda.h's LISA__CUDA_LAUNCH). */
template <class F> void lisa_emu_launch(const char *name, dim3 grid, dim3 block, F f) {
    lisa_emu::launch(name, grid, block, [](void *p) { (*(F *)p)(); }, &f);
}

static inline void __syncthreads() { lisa_emu::block_barrier(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu, int line = __builtin_LINE()) {
    lisa_emu::warp_barrier(mask, line);
}

/* Every lane publishes v, then reads lane src's (its own when src is outside
   the warp). Two slot sets alternate, so one barrier per shuffle suffices: a
   lane cannot write a set again before every lane has passed the next barrier. */
template <typename T> static T lisa_emu_shuffle(unsigned mask, T v, int src, int line) {
    lisa_emu::state &s = lisa_emu::st();
    int lane = s.cur & 31, w = s.cur >> 5, phase = s.warp_phase[w];
    T out;
    memcpy(&s.slots[w][phase][lane], &v, sizeof v);
    lisa_emu::warp_barrier(mask, line);
    if (src < 0 || src > 31 || w * 32 + src >= s.n) return v;
    memcpy(&out, &s.slots[w][phase][src], sizeof out);
    return out;
}
template <typename T> static T __shfl_sync(unsigned mask, T v, int src, int width = 32, int line = __builtin_LINE()) {
    return lisa_emu_shuffle(mask, v, (lisa_emu::st().cur & 31 & ~(width - 1)) + (src & (width - 1)), line);
}
template <typename T>
static T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, int line = __builtin_LINE()) {
    int lane = lisa_emu::st().cur & 31, src = lane ^ lane_mask;
    return lisa_emu_shuffle(mask, v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane, line);
}
template <typename T>
static T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, int line = __builtin_LINE()) {
    int lane = lisa_emu::st().cur & 31, src = lane + (int)delta;
    return lisa_emu_shuffle(mask, v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane, line);
}
template <typename T>
static T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, int line = __builtin_LINE()) {
    int lane = lisa_emu::st().cur & 31, src = lane - (int)delta;
    return lisa_emu_shuffle(mask, v, src >= (lane & ~(width - 1)) ? src : lane, line);
}

/* Test hooks. */
static inline void lisa_emu_fail_malloc_after(long n) { lisa_emu::st().malloc_countdown = n; }
static inline size_t lisa_emu_device_bytes(void) { return lisa_emu::st().allocated; }
static inline size_t lisa_emu_stack_peak(void) {
    size_t peak = 0;
    for (auto &f : lisa_emu::st().fibers) {
        size_t untouched = 0;
        while (untouched < lisa_emu::STACK_BYTES && f.stack[untouched] == lisa_emu::STACK_FILL) untouched++;
        if (lisa_emu::STACK_BYTES - untouched > peak) peak = lisa_emu::STACK_BYTES - untouched;
    }
    return peak;
}
static inline const char *lisa_emu_order_name(void) {
    static const char *names[] = {"forward", "reverse", "shuffle"};
    return names[lisa_emu::ready().order];
}

/* ------------------------------------------------------------------------- */
/* Runtime API                                                                */
/* ------------------------------------------------------------------------- */

static inline cudaError_t cudaMalloc(void **p, size_t bytes) {
    lisa_emu::state &s = lisa_emu::ready();
    size_t total = (bytes + lisa_emu::GUARD_BYTES + 255) / 256 * 256;
    unsigned char *q;
    *p = NULL;
    /* As the runtime does, a failed allocation also stays the last error until read. */
    if (s.malloc_countdown == 0 || bytes > lisa_emu::CARD_BYTES - s.allocated)
        return s.pending = cudaErrorMemoryAllocation;
    if (s.malloc_countdown > 0) s.malloc_countdown--;
    q = (unsigned char *)aligned_alloc(256, total);
    if (!q) return s.pending = cudaErrorMemoryAllocation;
    memset(q, 0xff, total); /* NaN: reading memory never written shows */
    s.allocs[q] = bytes;
    s.allocated += bytes;
    *p = q;
    return cudaSuccess;
}
template <typename T> static inline cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc((void **)p, bytes); }

static inline cudaError_t cudaFree(void *p) {
    lisa_emu::state &s = lisa_emu::st();
    auto it = s.allocs.find((unsigned char *)p);
    if (!p) return cudaSuccess;
    if (it == s.allocs.end()) {
        fprintf(stderr, "cuda_emu: cudaFree of %p, which cudaMalloc did not return (or already freed)\n", p);
        return cudaErrorInvalidValue;
    }
    if (!lisa_emu::guard_intact(it->first, it->second)) {
        fprintf(stderr, "cuda_emu: a %zu-byte device allocation was written past its end\n", it->second);
        s.pending = cudaErrorLaunchFailure;
    }
    s.allocated -= it->second;
    s.allocs.erase(it);
    free(p);
    return cudaSuccess;
}

static inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    int to_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    int from_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((to_device && !lisa_emu::in_device(dst, bytes)) || (from_device && !lisa_emu::in_device(src, bytes)) ||
        kind == cudaMemcpyHostToHost || kind == cudaMemcpyDefault) {
        fprintf(stderr, "cuda_emu: cudaMemcpy of %zu bytes (kind %d) outside device memory\n", bytes, (int)kind);
        return cudaErrorInvalidValue;
    }
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}

static inline cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    if (!lisa_emu::in_device(p, bytes)) {
        fprintf(stderr, "cuda_emu: cudaMemset of %zu bytes outside device memory\n", bytes);
        return cudaErrorInvalidValue;
    }
    memset(p, value, bytes);
    return cudaSuccess;
}

static inline cudaError_t cudaGetLastError(void) {
    cudaError_t e = lisa_emu::st().pending;
    lisa_emu::st().pending = cudaSuccess;
    return e;
}
static inline cudaError_t cudaPeekAtLastError(void) { return lisa_emu::st().pending; }
static inline cudaError_t cudaDeviceSynchronize(void) { return lisa_emu::st().pending; }

static inline cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
static inline cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
static inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

static inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulation");
    p->totalGlobalMem = lisa_emu::CARD_BYTES;
    p->major = 8;
    p->minor = 0;
    p->multiProcessorCount = 1;
    p->warpSize = 32;
    p->maxThreadsPerBlock = lisa_emu::MAX_THREADS;
    return cudaSuccess;
}

static inline cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    *total = lisa_emu::CARD_BYTES;
    *free_bytes = lisa_emu::CARD_BYTES - lisa_emu::st().allocated;
    return cudaSuccess;
}

static inline const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

/* ------------------------------------------------------------------------- */
/* cuBLAS                                                                     */
/* ------------------------------------------------------------------------- */

enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_PEDANTIC_MATH = 2 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };

struct lisa_emu_blas {
    cublasMath_t math;
    void *workspace;
    size_t workspace_bytes;
};
typedef lisa_emu_blas *cublasHandle_t;

static inline cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = (cublasHandle_t)calloc(1, sizeof(lisa_emu_blas));
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
static inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}
static inline cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *w, size_t bytes) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && !lisa_emu::in_device(w, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
    h->workspace = w;
    h->workspace_bytes = bytes;
    return CUBLAS_STATUS_SUCCESS;
}

namespace lisa_emu {

inline float load(const void *p, cudaDataType t, size_t i) {
    return t == CUDA_R_32F ? ((const float *)p)[i] : __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}
inline void store(void *p, cudaDataType t, size_t i, float x) {
    if (t == CUDA_R_32F) ((float *)p)[i] = x;
    else ((__nv_bfloat16 *)p)[i] = __float2bfloat16(x);
}
inline size_t type_bytes(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

/* Does a column-major rows x cols matrix with leading dimension ld lie in device memory? */
inline int matrix_in_device(const void *p, cudaDataType t, int rows, int cols, int ld) {
    if (rows == 0 || cols == 0) return 1;
    return in_device(p, ((size_t)ld * (cols - 1) + rows) * type_bytes(t));
}

/* op(X) as a dense row-major (rows x k) float copy: row r holds op(X)'s row r. */
inline void gather(std::vector<float> &out, const void *x, cudaDataType t, int ld, int transposed, int rows, int k) {
    out.resize((size_t)rows * k);
    for (int r = 0; r < rows; r++)
        for (int l = 0; l < k; l++)
            out[(size_t)r * k + l] = transposed ? load(x, t, (size_t)r * ld + l) : load(x, t, r + (size_t)l * ld);
}

} /* namespace lisa_emu */

/* C (m x n) = alpha op(A) (m x k) op(B) (k x n) + beta C, column-major, fp32
   accumulation in index order; beta 0 does not read C. */
static inline cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType at, int lda,
                                          const void *B, cudaDataType bt, int ldb, const void *beta, void *C,
                                          cudaDataType ct, int ldc, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo) {
    std::vector<float> a, b;
    float al = *(const float *)alpha, be = *(const float *)beta;
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    (void)algo;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0 || lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (compute != CUBLAS_COMPUTE_32F || at != bt || (at == CUDA_R_32F && ct != CUDA_R_32F))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!lisa_emu::matrix_in_device(A, at, ar, ac, lda) || !lisa_emu::matrix_in_device(B, bt, br, bc, ldb) ||
        !lisa_emu::matrix_in_device(C, ct, m, n, ldc)) {
        fprintf(stderr, "cuda_emu: cublasGemmEx (m %d n %d k %d) reaches outside device memory\n", m, n, k);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    lisa_emu::gather(a, A, at, lda, ta == CUBLAS_OP_T, m, k);
    lisa_emu::gather(b, B, bt, ldb, tb == CUBLAS_OP_N, n, k); /* op(B)^T: column j of op(B) as a row */
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            const float *ar_ = &a[(size_t)i * k], *br_ = &b[(size_t)j * k];
            for (int l = 0; l < k; l++) acc += ar_[l] * br_[l];
            size_t at_c = i + (size_t)j * ldc;
            lisa_emu::store(C, ct, at_c, be == 0.0f ? al * acc : al * acc + be * lisa_emu::load(C, ct, at_c));
        }
    lisa_emu::check_guards("cublasGemmEx");
    return CUBLAS_STATUS_SUCCESS;
}

#endif /* LISA_CUDA_EMU_H */
